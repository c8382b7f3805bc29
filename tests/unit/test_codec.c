/* test_codec.c - MQTT codec: spec vectors (valid and malformed, both versions), the property table
 * checked against an independent oracle, encode -> parse round trips for every encoder, every prefix
 * of every valid packet, variable byte integers, max_packet, UTF-8. Every input is also parsed from
 * the end of a page followed by an inaccessible page, so any over-read crashes. */
#include <sys/mman.h>
#include <unistd.h>

#include "gateway/mqtt/codec.h"
#include "tests/unit/test.h"

#define OK 1                            /* expected: whole packet parsed */
#define MAL (-MQTT_RC_MALFORMED)
#define PROTO (-MQTT_RC_PROTOCOL_ERROR)

/* ---------------- helpers ---------------- */

static size_t unhex(const char *s, uint8_t *out)
{
    size_t n = 0;
    int hi = -1;
    for (; *s; s++) {
        int v;
        if (*s >= '0' && *s <= '9') v = *s - '0';
        else if (*s >= 'a' && *s <= 'f') v = *s - 'a' + 10;
        else if (*s >= 'A' && *s <= 'F') v = *s - 'A' + 10;
        else continue;
        if (hi < 0) hi = v;
        else { out[n++] = (uint8_t)(hi << 4 | v); hi = -1; }
    }
    if (hi >= 0) { printf("odd hex: %s\n", s); abort(); }
    return n;
}

/* Fixed header b0 + remaining length + body. */
static size_t frame_body(uint8_t b0, const uint8_t *body, size_t n, uint8_t *out)
{
    out[0] = b0;
    size_t h = 1 + mqtt_varint_write(out + 1, (uint32_t)n);
    memcpy(out + h, body, n);
    return h + n;
}

/* Guard page: the input ends exactly where an inaccessible page begins. */
static uint8_t *guard_base;
static size_t guard_page;

static void guard_init(void)
{
    guard_page = (size_t)sysconf(_SC_PAGESIZE);
    size_t span = guard_page * 64;         /* 63 usable pages, then the guard */
    guard_base = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard_base == MAP_FAILED) abort();
    if (mprotect(guard_base + span - guard_page, guard_page, PROT_NONE)) abort();
    guard_page = span - guard_page;        /* usable bytes */
}

static const uint8_t *at_guard(const uint8_t *p, size_t n)
{
    if (n > guard_page) return p;          /* too big for the guard area: parse in place */
    uint8_t *dst = guard_base + guard_page - n;
    if (n) memcpy(dst, p, n);
    return dst;
}

static int parse_g(const uint8_t *p, size_t n, int version, uint32_t max, struct mqtt_packet *pk)
{
    return mqtt_parse(at_guard(p, n), n, version, max, pk);
}

/* Every proper prefix of a whole packet needs more bytes; mqtt_frame never errors on it. */
static int prefixes_need_more(const uint8_t *p, size_t n, int version)
{
    struct mqtt_packet pk;
    int bad = 0;
    for (size_t k = 0; k < n; k++) {
        uint32_t total = 0;
        int f = mqtt_frame(at_guard(p, k), k, AU_MQTT_MAX_PACKET_CEIL, &total);
        int r = parse_g(p, k, version, AU_MQTT_MAX_PACKET_CEIL, &pk);
        if (f < 0 || (f == 1 && total != n) || r != 0) {
            printf("  prefix %zu/%zu: frame %d parse %d\n", k, n, f, r);
            bad = 1;
        }
    }
    return bad;
}

#define S(lit) ((struct mqtt_str){ (const uint8_t *)(lit), (uint16_t)(sizeof(lit) - 1) })
#define BIN(lit) ((struct mqtt_bin){ (const uint8_t *)(lit), (uint32_t)(sizeof(lit) - 1) })

static bool str_eq(struct mqtt_str a, struct mqtt_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}
static bool bin_eq(struct mqtt_bin a, struct mqtt_bin b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* ---------------- properties: an oracle written from the spec table (MQTT 5 2.2.2.2) ---------------- */

#define PBIT(id) MQTT_PBIT(id)
#define CTX_WILL 0
static const uint64_t ALL_PROPS = PBIT(0x01) | PBIT(0x02) | PBIT(0x03) | PBIT(0x08) | PBIT(0x09)
    | PBIT(0x0B) | PBIT(0x11) | PBIT(0x12) | PBIT(0x13) | PBIT(0x15) | PBIT(0x16) | PBIT(0x17)
    | PBIT(0x18) | PBIT(0x19) | PBIT(0x1A) | PBIT(0x1C) | PBIT(0x1F) | PBIT(0x21) | PBIT(0x22)
    | PBIT(0x23) | PBIT(0x24) | PBIT(0x25) | PBIT(0x26) | PBIT(0x27) | PBIT(0x28) | PBIT(0x29)
    | PBIT(0x2A);
static const uint64_t oracle[16] = {
    [CTX_WILL] = PBIT(0x01) | PBIT(0x02) | PBIT(0x03) | PBIT(0x08) | PBIT(0x09) | PBIT(0x18) | PBIT(0x26),
    [MQTT_CONNECT] = PBIT(0x11) | PBIT(0x21) | PBIT(0x27) | PBIT(0x22) | PBIT(0x19) | PBIT(0x17)
        | PBIT(0x26) | PBIT(0x15) | PBIT(0x16),
    [MQTT_CONNACK] = PBIT(0x11) | PBIT(0x21) | PBIT(0x24) | PBIT(0x25) | PBIT(0x27) | PBIT(0x12)
        | PBIT(0x22) | PBIT(0x1F) | PBIT(0x26) | PBIT(0x28) | PBIT(0x29) | PBIT(0x2A) | PBIT(0x13)
        | PBIT(0x1A) | PBIT(0x1C) | PBIT(0x15) | PBIT(0x16),
    [MQTT_PUBLISH] = PBIT(0x01) | PBIT(0x02) | PBIT(0x23) | PBIT(0x08) | PBIT(0x09) | PBIT(0x26)
        | PBIT(0x0B) | PBIT(0x03),
    [MQTT_PUBACK] = PBIT(0x1F) | PBIT(0x26), [MQTT_PUBREC] = PBIT(0x1F) | PBIT(0x26),
    [MQTT_PUBREL] = PBIT(0x1F) | PBIT(0x26), [MQTT_PUBCOMP] = PBIT(0x1F) | PBIT(0x26),
    [MQTT_SUBSCRIBE] = PBIT(0x0B) | PBIT(0x26),
    [MQTT_SUBACK] = PBIT(0x1F) | PBIT(0x26),
    [MQTT_UNSUBSCRIBE] = PBIT(0x26),
    [MQTT_UNSUBACK] = PBIT(0x1F) | PBIT(0x26),
    [MQTT_DISCONNECT] = PBIT(0x11) | PBIT(0x1F) | PBIT(0x26) | PBIT(0x1C),
    [MQTT_AUTH] = PBIT(0x15) | PBIT(0x16) | PBIT(0x1F) | PBIT(0x26),
};

static void all_props(struct mqtt_props *p)
{
    memset(p, 0, sizeof(*p));
    p->present = ALL_PROPS;
    p->payload_format = 1;
    p->message_expiry = 3600;
    p->content_type = S("text/plain; charset=\xc3\xa9");
    p->response_topic = S("resp/t");
    p->correlation_data = BIN("\x01\x02\x00\x03");
    p->session_expiry = 0xFFFFFFFFu;
    p->assigned_client_id = S("auto-1");
    p->server_keepalive = 30;
    p->auth_method = S("SCRAM-SHA-1");
    p->auth_data = BIN("\x00\xff");
    p->req_problem_info = 0;
    p->will_delay = 10;
    p->req_response_info = 1;
    p->response_info = S("info");
    p->server_reference = S("other:1883");
    p->reason_string = S("because");
    p->receive_max = 100;
    p->topic_alias_max = 10;
    p->topic_alias = 7;
    p->max_qos = 1;
    p->retain_available = 0;
    p->max_packet = 65536;
    p->wildcard_available = 1;
    p->sub_id_available = 1;
    p->shared_available = 0;
    static const uint32_t ids[] = { 1, 127, 128, 16383, 16384, 2097151, 2097152, MQTT_VARINT_MAX };
    for (unsigned i = 0; i < AU_ARRAY_LEN(ids); i++) p->sub_ids[i] = ids[i];
    p->n_sub_ids = AU_ARRAY_LEN(ids);
    p->user[0] = (struct mqtt_user_prop){ S("k"), S("v") };
    p->user[1] = (struct mqtt_user_prop){ S(""), S("") };
    p->user[2] = (struct mqtt_user_prop){ S("k"), S("\xe2\x82\xac \xf0\x9f\x98\x80") };
    p->n_user = 3;
}

/* Keep only what context ctx allows. */
static void restrict_props(struct mqtt_props *p, unsigned ctx)
{
    p->present &= oracle[ctx];
    if (!(oracle[ctx] & PBIT(MQTT_PROP_USER))) p->n_user = 0;
    if (!(oracle[ctx] & PBIT(MQTT_PROP_SUB_ID))) p->n_sub_ids = 0;
    if (ctx == MQTT_SUBSCRIBE && p->n_sub_ids > 1) p->n_sub_ids = 1;
}

static uint64_t written(const struct mqtt_props *p)
{
    return (p->present & ~(PBIT(MQTT_PROP_USER) | PBIT(MQTT_PROP_SUB_ID)))
           | (p->n_user ? PBIT(MQTT_PROP_USER) : 0) | (p->n_sub_ids ? PBIT(MQTT_PROP_SUB_ID) : 0);
}

static bool props_eq(const struct mqtt_props *a, const struct mqtt_props *b)
{
    uint64_t w = written(a);
    if (w != written(b) || a->n_user != b->n_user || a->n_sub_ids != b->n_sub_ids) return false;
#define F(id, field) if ((w & PBIT(id)) && a->field != b->field) return false;
#define FS(id, field) if ((w & PBIT(id)) && !str_eq(a->field, b->field)) return false;
#define FB(id, field) if ((w & PBIT(id)) && !bin_eq(a->field, b->field)) return false;
    F(0x01, payload_format) F(0x02, message_expiry) FS(0x03, content_type) FS(0x08, response_topic)
    FB(0x09, correlation_data) F(0x11, session_expiry) FS(0x12, assigned_client_id)
    F(0x13, server_keepalive) FS(0x15, auth_method) FB(0x16, auth_data) F(0x17, req_problem_info)
    F(0x18, will_delay) F(0x19, req_response_info) FS(0x1A, response_info) FS(0x1C, server_reference)
    FS(0x1F, reason_string) F(0x21, receive_max) F(0x22, topic_alias_max) F(0x23, topic_alias)
    F(0x24, max_qos) F(0x25, retain_available) F(0x27, max_packet) F(0x28, wildcard_available)
    F(0x29, sub_id_available) F(0x2A, shared_available)
#undef F
#undef FS
#undef FB
    for (unsigned i = 0; i < a->n_sub_ids; i++)
        if (a->sub_ids[i] != b->sub_ids[i]) return false;
    for (unsigned i = 0; i < a->n_user; i++)
        if (!str_eq(a->user[i].key, b->user[i].key) || !str_eq(a->user[i].val, b->user[i].val)) return false;
    return true;
}

/* A v5 packet of each context with a property block spliced in: b0, bytes before, bytes after. */
struct ptmpl { unsigned ctx; uint8_t b0; const char *pre, *post; };
static const struct ptmpl templates[] = {
    { CTX_WILL, 0x10, "0004 4d515454 05 06 003c 00 0001 63", "0001 74 0000" },
    { MQTT_CONNECT, 0x10, "0004 4d515454 05 02 003c", "0001 63" },
    { MQTT_CONNACK, 0x20, "00 00", "" },
    { MQTT_PUBLISH, 0x30, "0001 74", "6869" },
    { MQTT_PUBACK, 0x40, "0001 00", "" },
    { MQTT_PUBREC, 0x50, "0001 00", "" },
    { MQTT_PUBREL, 0x62, "0001 00", "" },
    { MQTT_PUBCOMP, 0x70, "0001 00", "" },
    { MQTT_SUBSCRIBE, 0x82, "0001", "0001 74 00" },
    { MQTT_SUBACK, 0x90, "0001", "00" },
    { MQTT_UNSUBSCRIBE, 0xa2, "0001", "0001 74" },
    { MQTT_UNSUBACK, 0xb0, "0001", "00" },
    { MQTT_DISCONNECT, 0xe0, "00", "" },
    { MQTT_AUTH, 0xf0, "00", "" },
};

/* Build the packet of template t around the raw property bytes `body` (length prefix added). */
static size_t splice(const struct ptmpl *t, const uint8_t *body, size_t blen, uint8_t *out)
{
    static uint8_t tmp[70000];
    size_t n = unhex(t->pre, tmp);
    n += mqtt_varint_write(tmp + n, (uint32_t)blen);
    memcpy(tmp + n, body, blen);
    n += blen;
    n += unhex(t->post, tmp + n);
    return frame_body(t->b0, tmp, n, out);
}

static const struct mqtt_props *parsed_props(const struct mqtt_packet *pk, unsigned ctx)
{
    switch (ctx) {
    case CTX_WILL: return &pk->u.connect.will_props;
    case MQTT_CONNECT: return &pk->u.connect.props;
    case MQTT_CONNACK: return &pk->u.connack.props;
    case MQTT_PUBLISH: return &pk->u.publish.props;
    case MQTT_SUBSCRIBE: case MQTT_UNSUBSCRIBE: return &pk->u.subscribe.props;
    case MQTT_SUBACK: case MQTT_UNSUBACK: return &pk->u.suback.props;
    case MQTT_DISCONNECT: case MQTT_AUTH: return &pk->u.disconnect.props;
    default: return &pk->u.ack.props;
    }
}

TEST(props_allowed_table)
{
    static uint8_t pkt[70100], block[4096];
    struct mqtt_packet pk;
    for (unsigned t = 0; t < AU_ARRAY_LEN(templates); t++) {
        const struct ptmpl *tp = &templates[t];
        for (unsigned id = 1; id < 64; id++) {
            if (!(ALL_PROPS & PBIT(id))) continue;
            struct mqtt_props p;
            all_props(&p);
            p.present = PBIT(id);
            if (id == MQTT_PROP_AUTH_DATA) p.present |= PBIT(MQTT_PROP_AUTH_METHOD);
            p.n_user = id == MQTT_PROP_USER ? 1 : 0;
            p.n_sub_ids = id == MQTT_PROP_SUB_ID ? 1 : 0;
            size_t bl = mqtt_props_write(block, sizeof(block), &p);
            size_t hl = mqtt_varint_size((uint32_t)(bl - 1));
            size_t n = splice(tp, block + hl, bl - hl, pkt);
            int r = parse_g(pkt, n, MQTT_V5, 0, &pk);
            bool allowed = oracle[tp->ctx] & PBIT(id);
            if (allowed ? r != (int)n : r != MAL) {
                printf("  ctx %u prop 0x%02x: parse %d (allowed %d)\n", tp->ctx, id, r, allowed);
                CHECK(0);
            }
            if (!allowed) continue;
            /* a duplicate: allowed only for user properties and PUBLISH subscription ids */
            uint8_t dbl[512];
            memcpy(dbl, block + hl, bl - hl);
            memcpy(dbl + bl - hl, block + hl, bl - hl);
            n = splice(tp, dbl, 2 * (bl - hl), pkt);
            r = parse_g(pkt, n, MQTT_V5, 0, &pk);
            bool may_repeat = id == MQTT_PROP_USER || (id == MQTT_PROP_SUB_ID && tp->ctx == MQTT_PUBLISH);
            if (may_repeat ? r != (int)n : r != PROTO) {
                printf("  ctx %u duplicate prop 0x%02x: parse %d\n", tp->ctx, id, r);
                CHECK(0);
            }
        }
        /* every allowed property at once: round trip */
        struct mqtt_props p;
        all_props(&p);
        restrict_props(&p, tp->ctx);
        size_t bl = mqtt_props_write(block, sizeof(block), &p);
        CHECK_EQ(bl, mqtt_props_size(&p));
        size_t hl = mqtt_varint_size((uint32_t)(bl - 1));
        size_t n = splice(tp, block + hl, bl - hl, pkt);
        int r = parse_g(pkt, n, MQTT_V5, 0, &pk);
        CHECK_EQ(r, (int)n);
        if (r == (int)n) {
            CHECK(props_eq(&p, parsed_props(&pk, tp->ctx)));
            CHECK_EQ(parsed_props(&pk, tp->ctx)->raw_len, bl - hl);
        }
        CHECK(!prefixes_need_more(pkt, n, MQTT_V5));
    }
}

TEST(props_values_and_limits)
{
    static uint8_t pkt[4096];
    struct mqtt_packet pk;
    const struct ptmpl *connect = &templates[1], *connack = &templates[2], *publish = &templates[3];
    const struct ptmpl *subscribe = &templates[8], *auth = &templates[13];
    struct { const struct ptmpl *t; const char *props; int expect; } v[] = {
        { publish, "01 00", OK }, { publish, "01 01", OK }, { publish, "01 02", PROTO },
        { publish, "23 0000", -MQTT_RC_TOPIC_ALIAS_INVALID }, { publish, "23 ffff", OK },
        { publish, "0b 00", PROTO }, { publish, "0b 80 00", MAL }, { publish, "0b ff ff ff 7f", OK },
        { publish, "0b ff ff ff ff 01", MAL }, { publish, "08 0001 23", PROTO }, { publish, "08 0003 612f2b", PROTO },
        { publish, "08 0000", PROTO }, { publish, "08 0001 61", OK }, { publish, "02 000000", MAL },
        { publish, "03 0002 c0 80", MAL }, { publish, "26 0001 6b 0001 ff", MAL }, { publish, "26 0001 6b", MAL },
        { publish, "09 0003 0000", MAL }, { publish, "05 00", MAL }, { publish, "00", MAL },
        { publish, "81 00 00", MAL },            /* identifier 1 as an overlong varint */
        { publish, "ff 7f 00", MAL },            /* identifier 16383: not a property */
        { connect, "21 0000", PROTO }, { connect, "21 0001", OK }, { connect, "27 00000000", PROTO },
        { connect, "27 00000001", OK }, { connect, "17 02", PROTO }, { connect, "19 02", PROTO },
        { connect, "17 01 19 00", OK }, { connect, "16 0001 61", PROTO }, { connect, "15 0001 61 16 0001 61", OK },
        { connect, "16 0000 15 0000", OK }, { connack, "24 02", PROTO }, { connack, "24 00", OK },
        { connack, "25 02", PROTO }, { connack, "28 02", PROTO }, { connack, "29 02", PROTO },
        { connack, "2a 02", PROTO }, { connack, "2a 01 29 00 28 01 25 01", OK }, { connack, "21 0000", PROTO },
        { subscribe, "0b 01 0b 02", PROTO }, { subscribe, "0b 00", PROTO }, { subscribe, "0b 7f", OK },
        { auth, "16 0001 61", PROTO }, { auth, "15 0003 616263", OK },
    };
    for (unsigned i = 0; i < AU_ARRAY_LEN(v); i++) {
        uint8_t body[256];
        size_t bl = unhex(v[i].props, body);
        size_t n = splice(v[i].t, body, bl, pkt);
        int r = parse_g(pkt, n, MQTT_V5, 0, &pk);
        int want = v[i].expect == OK ? (int)n : v[i].expect;
        if (r != want) { printf("  case %u (%s): %d != %d\n", i, v[i].props, r, want); CHECK(0); }
    }
    /* user properties: AU_MQTT_MAX_USER_PROPS accepted, one more is an implementation limit */
    for (unsigned extra = 0; extra < 2; extra++) {
        uint8_t body[2048];
        size_t bl = 0;
        for (unsigned i = 0; i < AU_MQTT_MAX_USER_PROPS + extra; i++) bl += unhex("26 0001 6b 0001 76", body + bl);
        size_t n = splice(publish, body, bl, pkt);
        int r = parse_g(pkt, n, MQTT_V5, 0, &pk);
        CHECK_EQ(r, extra ? -MQTT_RC_IMPL_SPECIFIC : (int)n);
        if (!extra) CHECK_EQ(pk.u.publish.props.n_user, AU_MQTT_MAX_USER_PROPS);
    }
    for (unsigned extra = 0; extra < 2; extra++) {
        uint8_t body[512];
        size_t bl = 0;
        for (unsigned i = 0; i < AU_MQTT_MAX_SUB_IDS + extra; i++) bl += unhex("0b 05", body + bl);
        size_t n = splice(publish, body, bl, pkt);
        CHECK_EQ(parse_g(pkt, n, MQTT_V5, 0, &pk), extra ? -MQTT_RC_IMPL_SPECIFIC : (int)n);
    }
    /* the property length must fit the packet */
    size_t n = unhex("30 05 0001 74 09 01", pkt);
    CHECK_EQ(parse_g(pkt, n, MQTT_V5, 0, &pk), MAL);
    n = unhex("30 05 0001 74 80 00", pkt);                 /* overlong property length */
    CHECK_EQ(parse_g(pkt, n, MQTT_V5, 0, &pk), MAL);
}

/* ---------------- spec vectors ---------------- */

struct vec {
    int version;
    int b0;                 /* fixed header byte, or -1: `hex` is the whole packet */
    const char *hex;
    int expect;             /* OK or a negative reason code */
};

#define C311 "0004 4d515454 04"
#define C5 "0004 4d515454 05"
static const struct vec vecs[] = {
    /* CONNECT */
    { 4, 0x10, C311 " 02 003c 0000", OK },
    { 4, 0x10, "0006 4d5149736470 03 02 003c 0003 616263", OK },                 /* 3.1 */
    { 4, 0x10, C311 " ee 003c 0001 63 0003 612f62 0002 6869 0001 75 0002 7077", OK },
    { 4, 0x10, C311 " 00 0000 0000", OK },                                          /* clean 0, empty id */
    { 4, 0x10, C311 " 36 003c 0001 63 0001 74 0000", OK },                          /* will qos 2 retain */
    { 5, 0x10, C5 " 02 003c 00 0000", OK },
    { 5, 0x10, C5 " 02 003c 0f 11 00000e10 21 0010 26 0001 6b 0001 76 0001 63", OK },
    { 5, 0x10, C5 " 06 003c 00 0001 63 07 18 0000000a 01 01 0003 612f62 0000", OK },
    { 5, 0x10, C5 " 42 003c 00 0001 63 0002 7077", OK },                           /* v5: password alone */
    { 4, 0x10, "0004 4d515458 04 02 003c 0000", PROTO },                           /* name "MQTX" */
    { 4, 0x10, "0004 6d717474 04 02 003c 0000", PROTO },                           /* lower case */
    { 4, 0x10, "0004 4d515454 06 02 003c 0000", -MQTT_RC_UNSUPPORTED_VERSION },
    { 4, 0x10, "0004 4d515454 03 02 003c 0000", -MQTT_RC_UNSUPPORTED_VERSION },
    { 4, 0x10, "0004 4d515454 84 02 003c 0000", -MQTT_RC_UNSUPPORTED_VERSION },    /* bridge bit */
    { 4, 0x10, "0006 4d5149736470 04 02 003c 0000", -MQTT_RC_UNSUPPORTED_VERSION },
    { 4, 0x10, C311 " 03 003c 0000", MAL },                                         /* reserved bit */
    { 5, 0x10, C5 " 03 003c 00 0000", MAL },
    { 4, 0x10, C311 " 1e 003c 0001 63 0001 74 0000", MAL },                         /* will qos 3 */
    { 4, 0x10, C311 " 0a 003c 0000", MAL },                                         /* qos, no will */
    { 4, 0x10, C311 " 22 003c 0000", MAL },                                         /* retain, no will */
    { 5, 0x10, C5 " 12 003c 00 0000", MAL },
    { 4, 0x10, C311 " 42 003c 0001 63 0002 7077", MAL },                            /* password, no user */
    { 4, 0x10, "0006 4d5149736470 03 42 003c 0001 63 0002 7077", MAL },
    { 4, 0x10, C311 " 02 003c 0000 00", MAL },                                      /* trailing byte */
    { 5, 0x10, C5 " 02 003c 00 0000 00", MAL },
    { 4, 0x10, C311 " 02 003c", MAL },                                              /* no client id */
    { 4, 0x10, C311 " 02 003c 0002 63", MAL },                                      /* short client id */
    { 4, 0x10, C311 " 06 003c 0001 63 0001 74", MAL },                              /* no will payload */
    { 4, 0x10, C311 " 06 003c 0001 63 0001 23 0000", MAL },                         /* will topic # */
    { 4, 0x10, C311 " 06 003c 0001 63 0000 0000", MAL },                            /* empty will topic */
    { 4, 0x10, C311 " 82 003c 0001 63", MAL },                                      /* no user name */
    { 4, 0x10, C311 " c2 003c 0001 63 0001 75", MAL },                              /* no password */
    { 4, 0x10, C311 " 02 003c 0001 00", MAL },                                      /* U+0000 in id */
    { 4, 0x10, C311 " 82 003c 0001 63 0002 c0af", MAL },                            /* overlong '/' */
    { 5, 0x10, C5 " 02 003c 03 23 0001 0001 63", MAL },                             /* topic alias */
    { 5, 0x10, C5 " 06 003c 00 0001 63 05 11 00000001 0001 74 0000", MAL },         /* will: session exp */
    { 5, 0x10, C5 " 02 003c", MAL },                                                /* no properties */
    { 4, 0x11, C311 " 02 003c 0000", MAL },                                         /* header flags */
    /* CONNACK */
    { 4, 0x20, "00 00", OK }, { 4, 0x20, "01 00", OK }, { 4, 0x20, "00 05", OK },
    { 4, 0x20, "00 00 00", MAL }, { 4, 0x20, "00", MAL }, { 4, 0x20, "02 00", MAL },
    { 4, 0x20, "80 00", MAL }, { 4, 0x20, "00 06", PROTO }, { 4, 0x20, "01 05", PROTO },
    { 4, 0x28, "00 00", MAL },
    { 5, 0x20, "00 00 00", OK }, { 5, 0x20, "01 00 04 24 01 25 00", OK }, { 5, 0x20, "00 9f 00", OK },
    { 5, 0x20, "00 00", MAL }, { 5, 0x20, "00 01 00", PROTO }, { 5, 0x20, "00 8b 00", PROTO },
    { 5, 0x20, "01 80 00", PROTO }, { 5, 0x20, "00 00 00 00", MAL }, { 5, 0x20, "fe 00 00", MAL },
    /* PUBLISH */
    { 4, 0x30, "0003 612f62 68656c6c6f", OK },
    { 4, 0x3b, "0003 612f62 0001 7061796c6f6164", OK },
    { 4, 0x34, "0001 74 ffff", OK },
    { 4, 0x38, "0001 74", OK },                       /* 3.1.1: DUP on QoS 0 tolerated */
    { 4, 0x30, "0004 24535953", OK },                 /* $SYS */
    { 4, 0x30, "0001 2f", OK },                       /* "/" */
    { 4, 0x30, "0003 e282ac", OK },                   /* U+20AC */
    { 4, 0x30, "0004 f09f9880", OK },                 /* U+1F600 */
    { 4, 0x30, "0003 efbfbf", OK },                   /* U+FFFF (a non-character, allowed) */
    { 4, 0x30, "0004 f48fbfbf", OK },                 /* U+10FFFF */
    { 5, 0x30, "0001 74 00 6869", OK },
    { 5, 0x30, "0000 03 23 0001 6869", OK },          /* alias, empty topic */
    { 5, 0x32, "0001 74 0007 05 0b01 0bff7f", OK },
    { 5, 0x30, "0001 74 23 0101 02 0000003c 03 0004 74657874 08 0003 722f74 09 0002 abcd 23 0005"
               " 26 0001 6b 0001 76", OK },
    { 4, 0x36, "0001 74 0001", MAL },                 /* QoS 3 */
    { 5, 0x36, "0001 74 0001 00", MAL },
    { 5, 0x38, "0001 74 00", PROTO },                 /* v5: DUP on QoS 0 */
    { 4, 0x30, "0003 612f2b", MAL }, { 4, 0x30, "0001 23", MAL }, { 5, 0x30, "0003 2b2f61 00", MAL },
    { 4, 0x30, "0000 6869", MAL },                    /* empty topic, 3.1.1 */
    { 5, 0x30, "0000 00", PROTO },                    /* empty topic, no alias */
    { 5, 0x30, "0001 74 03 23 0000", -MQTT_RC_TOPIC_ALIAS_INVALID },
    { 4, 0x32, "0001 74 0000", PROTO }, { 5, 0x34, "0001 74 0000 00", PROTO },  /* packet id 0 */
    { 4, 0x30, "0005 74", MAL }, { 4, 0x32, "0001 74", MAL }, { 4, 0x32, "0001 74 00", MAL },
    { 4, 0x30, "00", MAL }, { 5, 0x30, "0001 74", MAL },
    { 4, 0x30, "0002 c080", MAL }, { 4, 0x30, "0001 00", MAL }, { 4, 0x30, "0003 eda080", MAL },
    { 4, 0x30, "0003 edbfbf", MAL }, { 4, 0x30, "0004 f4908080", MAL }, { 4, 0x30, "0001 80", MAL },
    { 4, 0x30, "0002 e282", MAL }, { 4, 0x30, "0003 e08080", MAL }, { 4, 0x30, "0004 f0808080", MAL },
    { 4, 0x30, "0001 ff", MAL }, { 4, 0x30, "0002 c1bf", MAL }, { 4, 0x30, "0004 f8888080", MAL },
    /* PUBACK PUBREC PUBREL PUBCOMP */
    { 4, 0x40, "0001", OK }, { 4, 0x50, "0002", OK }, { 4, 0x62, "0003", OK }, { 4, 0x70, "ffff", OK },
    { 4, 0x40, "0001 00", MAL }, { 4, 0x40, "00", MAL }, { 4, 0x40, "", MAL }, { 4, 0x40, "0000", PROTO },
    { 4, 0x60, "0001", MAL }, { 4, 0x63, "0001", MAL }, { 4, 0x41, "0001", MAL }, { 4, 0x52, "0001", MAL },
    { 4, 0x78, "0001", MAL },
    { 5, 0x40, "0001", OK }, { 5, 0x40, "0001 10", OK }, { 5, 0x40, "0001 10 00", OK },
    { 5, 0x40, "0001 80 04 1f 0001 78", OK }, { 5, 0x50, "0001 99", OK }, { 5, 0x62, "0001 92", OK },
    { 5, 0x70, "0001 00 00", OK }, { 5, 0x70, "0001 92 00", OK },
    { 5, 0x40, "0001 92", PROTO }, { 5, 0x62, "0001 10", PROTO }, { 5, 0x70, "0001 80", PROTO },
    { 5, 0x40, "0001 00 00 00", MAL }, { 5, 0x40, "0001 00 05 1f 0001 78", MAL }, { 5, 0x40, "00", MAL },
    { 5, 0x40, "0000", PROTO }, { 5, 0x50, "0001 00 03 23 0001", MAL },
    /* SUBSCRIBE */
    { 4, 0x82, "0001 0003 612f23 01 0001 2b 02", OK },
    { 4, 0x82, "0001 0001 23 00", OK },
    { 4, 0x82, "0001 000a 2473686172652f672f74 01", OK },
    { 5, 0x82, "0001 00 0003 612f23 2e", OK },
    { 5, 0x82, "0001 02 0b 05 0001 74 00", OK },
    { 5, 0x82, "0001 00 000a 2473686172652f672f74 08", OK },  /* $share, RAP */
    { 4, 0x82, "0001", PROTO }, { 5, 0x82, "0001 00", PROTO }, { 4, 0x82, "0000 0001 74 00", PROTO },
    { 4, 0x82, "", MAL }, { 4, 0x82, "00", MAL },
    { 4, 0x82, "0001 0000 00", MAL }, { 5, 0x82, "0001 00 0000 00", MAL },
    { 4, 0x82, "0001 0001 74 04", MAL }, { 4, 0x82, "0001 0001 74 03", MAL }, { 4, 0x82, "0001 0001 74 80", MAL },
    { 5, 0x82, "0001 00 0001 74 03", MAL }, { 5, 0x82, "0001 00 0001 74 40", MAL },
    { 5, 0x82, "0001 00 0001 74 80", MAL }, { 5, 0x82, "0001 00 0001 74 30", PROTO },
    { 5, 0x82, "0001 00 000a 2473686172652f672f74 04", PROTO },  /* No Local on $share */
    { 4, 0x82, "0001 0001 74", MAL }, { 4, 0x82, "0001 0001 74 00 0001", MAL }, { 4, 0x82, "0001 0001 00 00", MAL },
    { 5, 0x82, "0001 04 1f 0001 78 0001 74 00", MAL },
    { 4, 0x80, "0001 0001 74 00", MAL }, { 4, 0x83, "0001 0001 74 00", MAL }, { 4, 0x8a, "0001 0001 74 00", MAL },
    /* SUBACK */
    { 4, 0x90, "0001 00 01 02 80", OK }, { 5, 0x90, "0001 00 00 8f a2", OK }, { 5, 0x90, "0001 00 9e", OK },
    { 4, 0x90, "0001", PROTO }, { 4, 0x90, "0001 03", PROTO }, { 4, 0x90, "0001 87", PROTO },
    { 4, 0x90, "0000 00", PROTO }, { 5, 0x90, "0001 00 11", PROTO }, { 5, 0x90, "0001 00", PROTO },
    { 5, 0x90, "0001", MAL }, { 4, 0x92, "0001 00", MAL },
    /* UNSUBSCRIBE */
    { 4, 0xa2, "0001 0003 612f62 0001 63", OK }, { 5, 0xa2, "0001 00 0003 612f62", OK },
    { 5, 0xa2, "0001 07 26 0001 6b 0001 76 0001 2b", OK },
    { 4, 0xa2, "0001", PROTO }, { 5, 0xa2, "0001 00", PROTO }, { 4, 0xa2, "0000 0001 74", PROTO },
    { 4, 0xa2, "0001 0000", MAL }, { 4, 0xa2, "0001 0002 74", MAL }, { 5, 0xa2, "0001 02 0b 01 0001 74", MAL },
    { 4, 0xa0, "0001 0001 74", MAL },
    /* UNSUBACK */
    { 4, 0xb0, "0001", OK }, { 5, 0xb0, "0001 00 00 11", OK }, { 5, 0xb0, "0001 00 8f 91 87 83 80", OK },
    { 4, 0xb0, "0001 00", MAL }, { 4, 0xb0, "0000", PROTO }, { 5, 0xb0, "0001 00", PROTO },
    { 5, 0xb0, "0001 00 01", PROTO }, { 4, 0xb1, "0001", MAL },
    /* PINGREQ PINGRESP */
    { 4, 0xc0, "", OK }, { 5, 0xd0, "", OK }, { 4, 0xc0, "00", MAL }, { 5, 0xd0, "00", MAL },
    { 4, 0xc2, "", MAL }, { 5, 0xd1, "", MAL },
    /* DISCONNECT */
    { 4, 0xe0, "", OK }, { 4, 0xe0, "00", MAL }, { 4, 0xe2, "", MAL },
    { 5, 0xe0, "", OK }, { 5, 0xe0, "04", OK }, { 5, 0xe0, "8e 00", OK }, { 5, 0xe0, "00 05 11 00000000", OK },
    { 5, 0xe0, "05", PROTO }, { 5, 0xe0, "00 03 23 0001", MAL }, { 5, 0xe0, "00 00 00", MAL },
    { 5, 0xe0, "00 05 11 000000", MAL },
    /* AUTH */
    { 5, 0xf0, "", OK }, { 5, 0xf0, "18", OK }, { 5, 0xf0, "18 06 15 0003 616263", OK },
    { 5, 0xf0, "19 0b 15 0003 616263 16 0002 0001", OK },
    { 4, 0xf0, "", MAL }, { 3, 0xf0, "", MAL }, { 5, 0xf1, "", MAL }, { 5, 0xf0, "80", PROTO },
    { 5, 0xf0, "18 04 16 0001 61", PROTO },
    /* reserved type 0 */
    { 4, 0x00, "", MAL }, { 5, 0x00, "", MAL },
    /* variable byte integers in the fixed header */
    { 4, -1, "c0 80 00", MAL },                   /* overlong zero */
    { 4, -1, "30 83 00 0001 74 00", MAL },        /* overlong 3 */
    { 4, -1, "30 80 80 80 00", MAL },
    { 4, -1, "30 ff ff ff ff 01", MAL },          /* fifth byte */
    { 4, -1, "30 80 80 80 80 00", MAL },
};

static size_t vec_bytes(const struct vec *v, uint8_t *out)
{
    if (v->b0 < 0) return unhex(v->hex, out);
    uint8_t body[1024];
    size_t n = unhex(v->hex, body);
    return frame_body((uint8_t)v->b0, body, n, out);
}

TEST(spec_vectors)
{
    struct mqtt_packet pk;
    for (unsigned i = 0; i < AU_ARRAY_LEN(vecs); i++) {
        uint8_t buf[1100];
        size_t n = vec_bytes(&vecs[i], buf);
        int want = vecs[i].expect == OK ? (int)n : vecs[i].expect;
        int r = parse_g(buf, n, vecs[i].version, 0, &pk);
        if (r != want) {
            printf("  vector %u (v%d %02x %s): %d != %d\n", i, vecs[i].version, vecs[i].b0 & 0xff,
                   vecs[i].hex, r, want);
            CHECK(0);
            continue;
        }
        if (vecs[i].expect == OK) {
            CHECK_EQ(pk.type, buf[0] >> 4);
            CHECK(!prefixes_need_more(buf, n, vecs[i].version));
            /* the same packet followed by another: only the first is consumed */
            uint8_t two[2200];
            memcpy(two, buf, n);
            memcpy(two + n, buf, n);
            CHECK_EQ(mqtt_parse(two, 2 * n, vecs[i].version, 0, &pk), (int)n);
            /* exactly at max_packet passes, one byte less is too large */
            CHECK_EQ(parse_g(buf, n, vecs[i].version, (uint32_t)n, &pk), (int)n);
            CHECK_EQ(parse_g(buf, n, vecs[i].version, (uint32_t)n - 1, &pk), -MQTT_RC_PACKET_TOO_LARGE);
        }
    }
}

TEST(parsed_fields)
{
    struct mqtt_packet pk;
    uint8_t buf[512], body[512];
    size_t n = frame_body(0x10, body, unhex(C311 " ee 012c 0001 63 0003 612f62 0002 6869 0001 75 0002 7077", body), buf);
    CHECK_EQ(mqtt_parse(buf, n, 0, 0, &pk), (int)n);
    struct mqtt_connect *c = &pk.u.connect;
    CHECK_EQ(c->version, MQTT_V311);
    CHECK(c->clean_start && c->will_flag && c->will_retain && c->has_username && c->has_password);
    CHECK_EQ(c->will_qos, 1);
    CHECK_EQ(c->keepalive, 300);
    CHECK(str_eq(c->client_id, S("c")) && str_eq(c->will_topic, S("a/b")) && str_eq(c->username, S("u")));
    CHECK(bin_eq(c->will_payload, BIN("hi")) && bin_eq(c->password, BIN("pw")));
    CHECK_EQ(c->props.present, 0);

    n = unhex("10 0c 0004 4d515454 07 02 003c 0000", buf);     /* version reported with the error */
    CHECK_EQ(mqtt_parse(buf, n, 0, 0, &pk), -MQTT_RC_UNSUPPORTED_VERSION);
    CHECK_EQ(pk.type, MQTT_CONNECT);
    CHECK_EQ(pk.u.connect.version, 7);
    n = frame_body(0x10, body, unhex(C5 " 03 003c 00 0000", body), buf);
    CHECK_EQ(mqtt_parse(buf, n, 0, 0, &pk), MAL);
    CHECK_EQ(pk.u.connect.version, MQTT_V5);

    n = frame_body(0x3d, body, unhex("0003 612f62 1234 00 7061796c6f6164", body), buf);
    CHECK_EQ(mqtt_parse(buf, n, MQTT_V5, 0, &pk), (int)n);
    CHECK(pk.u.publish.qos == 2 && pk.u.publish.dup && pk.u.publish.retain);
    CHECK_EQ(pk.u.publish.packet_id, 0x1234);
    CHECK(bin_eq(pk.u.publish.payload, BIN("payload")));
    CHECK_EQ(pk.flags, 0xd);
    CHECK_EQ(pk.remaining, n - 2);

    n = frame_body(0x82, body, unhex("0007 00 0003 612f23 2e 0001 2b 01", body), buf);
    CHECK_EQ(mqtt_parse(buf, n, MQTT_V5, 0, &pk), (int)n);
    CHECK_EQ(pk.u.subscribe.count, 2);
    uint32_t off = 0;
    struct mqtt_sub_entry e;
    CHECK(mqtt_sub_next(&pk.u.subscribe, MQTT_V5, false, &off, &e));
    CHECK(str_eq(e.filter, S("a/#")) && e.qos == 2 && e.no_local && e.retain_as_published && e.retain_handling == 2);
    CHECK(mqtt_sub_next(&pk.u.subscribe, MQTT_V5, false, &off, &e));
    CHECK(str_eq(e.filter, S("+")) && e.qos == 1 && !e.no_local && !e.retain_as_published && !e.retain_handling);
    CHECK(!mqtt_sub_next(&pk.u.subscribe, MQTT_V5, false, &off, &e));

    n = frame_body(0x90, body, unhex("0009 00 01 02 80", body), buf);
    CHECK_EQ(mqtt_parse(buf, n, MQTT_V311, 0, &pk), (int)n);
    CHECK(pk.u.suback.packet_id == 9 && pk.u.suback.count == 4 && pk.u.suback.codes[3] == 0x80);
    n = frame_body(0xb0, body, unhex("0009", body), buf);
    CHECK_EQ(mqtt_parse(buf, n, MQTT_V311, 0, &pk), (int)n);
    CHECK_EQ(pk.u.suback.count, 0);

    n = frame_body(0x40, body, unhex("0102 97", body), buf);
    CHECK_EQ(mqtt_parse(buf, n, MQTT_V5, 0, &pk), (int)n);
    CHECK(pk.u.ack.packet_id == 0x102 && pk.u.ack.reason == MQTT_RC_QUOTA_EXCEEDED && pk.u.ack.props.present == 0);
    n = frame_body(0xe0, body, unhex("", body), buf);
    CHECK_EQ(mqtt_parse(buf, n, MQTT_V5, 0, &pk), (int)n);
    CHECK_EQ(pk.u.disconnect.reason, 0);
}

/* ---------------- framing, variable byte integers, max_packet ---------------- */

TEST(varint_and_frame)
{
    static const uint32_t vals[] = { 0, 1, 127, 128, 16383, 16384, 2097151, 2097152, MQTT_VARINT_MAX };
    static const size_t sizes[] = { 1, 1, 1, 2, 2, 3, 3, 4, 4 };
    for (unsigned i = 0; i < AU_ARRAY_LEN(vals); i++) {
        uint8_t b[8] = { 0x30 };
        size_t n = mqtt_varint_write(b + 1, vals[i]);
        CHECK_EQ(n, sizes[i]);
        CHECK_EQ(mqtt_varint_size(vals[i]), sizes[i]);
        uint32_t total = 0;
        CHECK_EQ(mqtt_frame(b, 1 + n, 0, &total), 1);
        CHECK_EQ(total, 1 + n + vals[i]);
        for (size_t k = 0; k <= n; k++) CHECK_EQ(mqtt_frame(b, k, 0, &total), 0);
        struct mqtt_packet pk;
        if (vals[i] > 0) CHECK_EQ(mqtt_parse(b, 1 + n, MQTT_V311, 0, &pk), 0);   /* body missing */
    }
    uint8_t b[8];
    uint32_t total;
    size_t n = unhex("30 ff ff ff ff", b);
    CHECK_EQ(mqtt_frame(b, n, 0, &total), MAL);
    n = unhex("30 80 00", b);
    CHECK_EQ(mqtt_frame(b, n, 0, &total), MAL);
    n = unhex("30 ff 80 80 00", b);
    CHECK_EQ(mqtt_frame(b, n, 0, &total), MAL);
    n = unhex("30 ff ff ff 7f", b);
    CHECK_EQ(mqtt_frame(b, n, AU_MQTT_MAX_PACKET, &total), -MQTT_RC_PACKET_TOO_LARGE);
    CHECK_EQ(mqtt_frame(b, n, 0, &total), 1);
    CHECK_EQ(total, 5 + MQTT_VARINT_MAX);

    /* too large is known before the length is complete: "30 ff ..." is at least 2+1+127+128 */
    n = unhex("30 ff", b);
    CHECK_EQ(mqtt_frame(b, n, 258, &total), 0);
    CHECK_EQ(mqtt_frame(b, n, 257, &total), -MQTT_RC_PACKET_TOO_LARGE);
    struct mqtt_packet pk;
    CHECK_EQ(mqtt_parse(b, n, MQTT_V311, 100, &pk), -MQTT_RC_PACKET_TOO_LARGE);
    n = unhex("30 80 80 80", b);       /* at least 128^3 */
    CHECK_EQ(mqtt_frame(b, n, AU_MQTT_MAX_PACKET, &total), -MQTT_RC_PACKET_TOO_LARGE);
    CHECK_EQ(mqtt_frame(b, n, 0, &total), 0);

    /* size is refused before anything else is looked at, even an invalid type */
    n = unhex("00 7f", b);
    CHECK_EQ(mqtt_parse(b, n, MQTT_V311, 64, &pk), -MQTT_RC_PACKET_TOO_LARGE);
    CHECK_EQ(mqtt_parse(b, n, MQTT_V311, 0, &pk), 0);
}

/* ---------------- UTF-8 ---------------- */

TEST(utf8)
{
    static const struct { const char *hex; bool ok; } v[] = {
        { "", true }, { "61", true }, { "7f", true }, { "c280", true }, { "dfbf", true },
        { "e0a080", true }, { "ed9fbf", true }, { "ee8080", true }, { "efbfbf", true },
        { "f0908080", true }, { "f48fbfbf", true }, { "6162636465666768696a6b", true },
        { "61626364656667e282ac68", true }, { "01", true },
        { "00", false }, { "6162636465666700", false }, { "61626364656667680069", false },
        { "80", false }, { "bf", false }, { "c0", false }, { "c080", false }, { "c1bf", false },
        { "c2", false }, { "c261", false }, { "e080", false }, { "e08080", false }, { "e09fbf", false },
        { "eda080", false }, { "edbfbf", false }, { "f08f bfbf", false }, { "f4908080", false },
        { "f5808080", false }, { "ff", false }, { "fe", false }, { "f8 88808080", false },
        { "e282ac e282", false }, { "f09f98", false }, { "c2 c2", false },
    };
    for (unsigned i = 0; i < AU_ARRAY_LEN(v); i++) {
        uint8_t b[64];
        size_t n = unhex(v[i].hex, b);
        if (mqtt_utf8_valid(at_guard(b, n), n) != v[i].ok) { printf("  utf8 %s\n", v[i].hex); CHECK(0); }
    }
    /* every code point: valid unless a surrogate or U+0000 */
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        uint8_t b[4];
        size_t n;
        if (cp < 0x80) { b[0] = (uint8_t)cp; n = 1; }
        else if (cp < 0x800) { b[0] = (uint8_t)(0xC0 | cp >> 6); b[1] = (uint8_t)(0x80 | (cp & 0x3f)); n = 2; }
        else if (cp < 0x10000) {
            b[0] = (uint8_t)(0xE0 | cp >> 12); b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
            b[2] = (uint8_t)(0x80 | (cp & 0x3f)); n = 3;
        } else {
            b[0] = (uint8_t)(0xF0 | cp >> 18); b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
            b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f)); b[3] = (uint8_t)(0x80 | (cp & 0x3f)); n = 4;
        }
        bool want = cp != 0 && !(cp >= 0xD800 && cp <= 0xDFFF);
        if (mqtt_utf8_valid(b, n) != want) { printf("  code point %x\n", cp); CHECK(0); break; }
    }
}

/* ---------------- reason codes ---------------- */

TEST(reason_codes)
{
    CHECK_EQ(mqtt_v3_connack_code(0x00), 0);
    CHECK_EQ(mqtt_v3_connack_code(0x84), 1);
    CHECK_EQ(mqtt_v3_connack_code(0x85), 2);
    CHECK_EQ(mqtt_v3_connack_code(0x88), 3);
    CHECK_EQ(mqtt_v3_connack_code(0x89), 3);
    CHECK_EQ(mqtt_v3_connack_code(0x9F), 3);
    CHECK_EQ(mqtt_v3_connack_code(0x80), 3);
    CHECK_EQ(mqtt_v3_connack_code(0x86), 4);
    CHECK_EQ(mqtt_v3_connack_code(0x87), 5);
    CHECK_EQ(mqtt_v3_connack_code(0x8A), 5);
    CHECK_EQ(mqtt_v3_connack_code(0x8C), 5);
    CHECK_EQ(mqtt_v3_connack_code(0x81), 5);
    for (uint8_t c = 1; c <= 5; c++) CHECK_EQ(mqtt_v3_connack_code(c), c);
    for (unsigned c = 0; c < 256; c++) CHECK(mqtt_v3_connack_code((uint8_t)c) <= 5);
    CHECK(!strcmp(mqtt_rc_string(0x81), "Malformed Packet"));
    CHECK(!strcmp(mqtt_rc_string(0x82), "Protocol Error"));
    CHECK(!strcmp(mqtt_rc_string(0x00), "Success"));
    CHECK(!strcmp(mqtt_rc_string(0x97), "Quota exceeded"));
    CHECK(!strcmp(mqtt_rc_string(0xA2), "Wildcard Subscriptions not supported"));
    CHECK(!strcmp(mqtt_rc_string(0x03), "Unknown reason code"));
}

/* ---------------- encoders: round trips ---------------- */

/* Encoded with cap = exact size works, every smaller cap returns 0; then parse it back. */
#define ENC_CHECK(buf, size, call_with_cap) do { \
        for (size_t cap_ = 0; cap_ < (size); cap_ += ((size) > 300 ? (size) / 97 + 1 : 1)) { \
            size_t cap = cap_; CHECK_EQ(call_with_cap, 0); } \
        { size_t cap = (size); CHECK_EQ(call_with_cap, (size)); } \
    } while (0)

/* Prefixes first: they reuse the guard area, and the parsed packet points into it. */
static int rt_parse(const uint8_t *b, size_t n, int version, struct mqtt_packet *pk)
{
    if (n < 5000 && prefixes_need_more(b, n, version)) return -1;
    int r = parse_g(b, n, version, 0, pk);
    if (r != (int)n) printf("  round trip parse: %d != %zu\n", r, n);
    return r;
}

TEST(roundtrip_publish)
{
    static uint8_t payload[70000], buf[80000], head[32];
    for (size_t i = 0; i < sizeof(payload); i++) payload[i] = (uint8_t)(i * 7);
    static const uint32_t plens[] = { 0, 1, 100, 16000, 70000 };
    struct mqtt_props props;
    all_props(&props);
    restrict_props(&props, MQTT_PUBLISH);
    struct mqtt_packet pk;
    for (int version = MQTT_V31; version <= MQTT_V5; version++)
    for (uint8_t qos = 0; qos <= 2; qos++)
    for (int flags = 0; flags < 4; flags++)
    for (unsigned pl = 0; pl < AU_ARRAY_LEN(plens); pl++)
    for (int wp = 0; wp < 2; wp++) {
        bool retain = flags & 1, dup = flags & 2;
        if (version == MQTT_V5 && qos == 0 && dup) continue;
        const struct mqtt_props *pp = wp ? &props : NULL;
        uint16_t pid = qos ? (uint16_t)(0xfff0 + flags) : 0;
        const uint8_t *topic = (const uint8_t *)"dev/\xe2\x82\xac/x";
        uint16_t tl = 9;
        size_t size = mqtt_publish_size(version, qos, tl, pp, plens[pl]);
        ENC_CHECK(buf, size, mqtt_enc_publish(buf, cap, version, qos, retain, dup, pid, topic, tl, pp,
                                              payload, plens[pl]));
        if (rt_parse(buf, size, version, &pk) != (int)size) { CHECK(0); continue; }
        struct mqtt_publish *p = &pk.u.publish;
        CHECK_EQ(pk.type, MQTT_PUBLISH);
        CHECK(p->qos == qos && p->retain == retain && p->dup == dup && p->packet_id == pid);
        CHECK(p->topic.len == tl && !memcmp(p->topic.p, topic, tl));
        CHECK(p->payload.len == plens[pl] && (!plens[pl] || !memcmp(p->payload.p, payload, plens[pl])));
        struct mqtt_props none = { 0 };
        if (version == MQTT_V5) CHECK(props_eq(wp ? &props : &none, &p->props));
        else CHECK_EQ(p->props.present, 0);
        /* head + tail in parts is byte-identical to the whole */
        uint32_t tail = (qos ? 2u : 0u) + (version == MQTT_V5 ? (uint32_t)mqtt_props_size(pp) : 0u) + plens[pl];
        size_t hs = mqtt_publish_head_size(tl, tail);
        CHECK_EQ(hs + tail, size);
        CHECK_EQ(mqtt_enc_publish_head(head, hs - 1, qos, retain, dup, topic, tl, tail), 0);
        CHECK_EQ(mqtt_enc_publish_head(head, sizeof(head), qos, retain, dup, topic, tl, tail), hs);
        CHECK(!memcmp(head, buf, hs));
    }
    /* a 4-byte remaining length */
    size_t big = 2100000;
    uint8_t *bp = malloc(big), *bo = malloc(big + 64);
    memset(bp, 'x', big);
    size_t size = mqtt_publish_size(MQTT_V311, 1, 1, NULL, (uint32_t)big);
    CHECK_EQ(mqtt_enc_publish(bo, big + 64, MQTT_V311, 1, false, false, 1, (const uint8_t *)"t", 1, NULL, bp,
                              (uint32_t)big), size);
    CHECK_EQ(bo[4] & 0x80, 0);
    CHECK_EQ(bo[3] & 0x80, 0x80);
    CHECK_EQ(mqtt_parse(bo, size, MQTT_V311, 0, &pk), (int)size);
    CHECK_EQ(mqtt_parse(bo, size, MQTT_V311, AU_MQTT_MAX_PACKET, &pk), -MQTT_RC_PACKET_TOO_LARGE);
    CHECK_EQ(mqtt_parse(bo, size - 1, MQTT_V311, 0, &pk), 0);
    free(bp);
    free(bo);
}

TEST(roundtrip_connack_ack_suback_disconnect)
{
    uint8_t buf[4096];
    struct mqtt_packet pk;
    struct mqtt_props none = { 0 };
    for (int version = MQTT_V31; version <= MQTT_V5; version++) {
        bool v5 = version == MQTT_V5;
        /* CONNACK */
        static const uint8_t reasons[] = { 0x00, 0x80, 0x84, 0x85, 0x86, 0x87, 0x88, 0x8A, 0x9F };
        for (unsigned i = 0; i < AU_ARRAY_LEN(reasons); i++)
        for (int sp = 0; sp < 2; sp++)
        for (int wp = 0; wp < 2; wp++) {
            struct mqtt_props p;
            all_props(&p);
            restrict_props(&p, MQTT_CONNACK);
            const struct mqtt_props *pp = wp ? &p : NULL;
            size_t size = v5 ? 1 + mqtt_varint_size((uint32_t)(2 + mqtt_props_size(pp))) + 2 + mqtt_props_size(pp) : 4;
            ENC_CHECK(buf, size, mqtt_enc_connack(buf, cap, version, sp, reasons[i], pp));
            if (rt_parse(buf, size, version, &pk) != (int)size) { CHECK(0); continue; }
            CHECK_EQ(pk.u.connack.reason, v5 ? reasons[i] : mqtt_v3_connack_code(reasons[i]));
            CHECK_EQ(pk.u.connack.session_present, sp && reasons[i] == 0);
            if (v5) CHECK(props_eq(wp ? &p : &none, &pk.u.connack.props));
        }
        /* PUBACK .. PUBCOMP */
        for (uint8_t type = MQTT_PUBACK; type <= MQTT_PUBCOMP; type++)
        for (int rc = 0; rc < 2; rc++)
        for (int wp = 0; wp < 2; wp++) {
            struct mqtt_props p;
            all_props(&p);
            restrict_props(&p, type);
            const struct mqtt_props *pp = wp ? &p : NULL;
            uint8_t reason = rc ? (type <= MQTT_PUBREC ? 0x97 : 0x92) : 0;
            size_t size = !v5 ? 4 : (!wp && !rc) ? 4 : !wp ? 5 : 2 + 3 + mqtt_props_size(pp);
            ENC_CHECK(buf, size, mqtt_enc_ack(buf, cap, version, type, 0x4242, reason, pp));
            if (rt_parse(buf, size, version, &pk) != (int)size) { CHECK(0); continue; }
            CHECK_EQ(pk.type, type);
            CHECK_EQ(pk.u.ack.packet_id, 0x4242);
            CHECK_EQ(pk.u.ack.reason, v5 ? reason : 0);
            if (v5) CHECK(props_eq(wp ? &p : &none, &pk.u.ack.props));
        }
        /* SUBACK / UNSUBACK */
        static const uint8_t sub_codes[] = { 0, 1, 2, 0x80 }, unsub_codes[] = { 0, 0x11, 0x87 };
        for (uint8_t type = MQTT_SUBACK; type <= MQTT_UNSUBACK; type += 2)
        for (int wp = 0; wp < 2; wp++) {
            struct mqtt_props p;
            all_props(&p);
            restrict_props(&p, type);
            const struct mqtt_props *pp = wp ? &p : NULL;
            const uint8_t *codes = type == MQTT_SUBACK ? sub_codes : unsub_codes;
            uint32_t n = type == MQTT_SUBACK ? 4 : 3;
            uint32_t sent = (!v5 && type == MQTT_UNSUBACK) ? 0 : n;
            size_t rem = 2 + (v5 ? mqtt_props_size(pp) : 0) + sent;
            size_t size = 1 + mqtt_varint_size((uint32_t)rem) + rem;
            ENC_CHECK(buf, size, mqtt_enc_suback(buf, cap, version, type, 7, codes, n, pp));
            if (rt_parse(buf, size, version, &pk) != (int)size) { CHECK(0); continue; }
            CHECK(pk.u.suback.packet_id == 7 && pk.u.suback.count == sent);
            CHECK(!sent || !memcmp(pk.u.suback.codes, codes, sent));
            if (v5) CHECK(props_eq(wp ? &p : &none, &pk.u.suback.props));
        }
        /* PINGREQ / PINGRESP */
        ENC_CHECK(buf, 2, mqtt_enc_pingreq(buf, cap));
        CHECK(rt_parse(buf, 2, version, &pk) == 2 && pk.type == MQTT_PINGREQ);
        ENC_CHECK(buf, 2, mqtt_enc_pingresp(buf, cap));
        CHECK(rt_parse(buf, 2, version, &pk) == 2 && pk.type == MQTT_PINGRESP);
        /* DISCONNECT / AUTH */
        for (uint8_t type = MQTT_DISCONNECT; type <= (v5 ? MQTT_AUTH : MQTT_DISCONNECT); type++)
        for (int rc = 0; rc < 2; rc++)
        for (int wp = 0; wp < 2; wp++) {
            struct mqtt_props p;
            all_props(&p);
            restrict_props(&p, type);
            const struct mqtt_props *pp = wp ? &p : NULL;
            uint8_t reason = rc ? (type == MQTT_AUTH ? 0x18 : 0x8E) : 0;
            size_t rem = !v5 ? 0 : (!wp && !rc) ? 0 : !wp ? 1 : 1 + mqtt_props_size(pp);
            size_t size = 1 + mqtt_varint_size((uint32_t)rem) + rem;
            ENC_CHECK(buf, size, mqtt_enc_disconnect(buf, cap, version, type, reason, pp));
            if (rt_parse(buf, size, version, &pk) != (int)size) { CHECK(0); continue; }
            CHECK_EQ(pk.type, type);
            CHECK_EQ(pk.u.disconnect.reason, v5 ? reason : 0);
            if (v5) CHECK(props_eq(wp ? &p : &none, &pk.u.disconnect.props));
        }
    }
}

TEST(roundtrip_connect)
{
    uint8_t buf[4096];
    struct mqtt_packet pk;
    struct mqtt_props none = { 0 };
    struct mqtt_props p, wp;
    all_props(&p);
    restrict_props(&p, MQTT_CONNECT);
    all_props(&wp);
    restrict_props(&wp, CTX_WILL);
    static const uint8_t will_payload[] = { 0, 1, 2, 0xff };
    for (int version = MQTT_V31; version <= MQTT_V5; version++)
    for (int mask = 0; mask < 64; mask++) {
        bool will = mask & 1, user = mask & 2, pass = mask & 4, withp = mask & 8, clean = mask & 16;
        bool empty_id = mask & 32;
        if (pass && !user && version != MQTT_V5) continue;
        struct mqtt_connect_opts o = {
            .version = (uint8_t)version, .clean_start = clean, .keepalive = (uint16_t)(mask * 1000),
            .client_id = empty_id ? NULL : "dev-\xc3\xa9", .username = user ? "app:user" : NULL,
            .password = pass ? "secret" : NULL, .will_topic = will ? "will/t" : NULL,
            .will_payload = will_payload, .will_payload_len = sizeof(will_payload),
            .will_qos = (uint8_t)(mask % 3), .will_retain = mask & 8,
            .props = withp ? &p : NULL, .will_props = withp ? &wp : NULL,
        };
        size_t size = mqtt_enc_connect(buf, sizeof(buf), &o);
        CHECK(size > 0);
        ENC_CHECK(buf, size, mqtt_enc_connect(buf, cap, &o));
        if (rt_parse(buf, size, 0, &pk) != (int)size) { CHECK(0); continue; }
        struct mqtt_connect *c = &pk.u.connect;
        CHECK_EQ(pk.type, MQTT_CONNECT);
        CHECK_EQ(c->version, version);
        CHECK(c->clean_start == clean && c->keepalive == o.keepalive);
        CHECK(c->will_flag == will && c->has_username == user && c->has_password == pass);
        CHECK(str_eq(c->client_id, empty_id ? S("") : S("dev-\xc3\xa9")));
        if (will) {
            CHECK(str_eq(c->will_topic, S("will/t")) && c->will_qos == o.will_qos && c->will_retain == o.will_retain);
            CHECK(c->will_payload.len == 4 && !memcmp(c->will_payload.p, will_payload, 4));
        } else {
            CHECK(c->will_qos == 0 && !c->will_retain);
        }
        if (user) CHECK(str_eq(c->username, S("app:user")));
        if (pass) CHECK(bin_eq(c->password, BIN("secret")));
        if (version == MQTT_V5) {
            CHECK(props_eq(withp ? &p : &none, &c->props));
            CHECK(props_eq(withp && will ? &wp : &none, &c->will_props));
        }
    }
}

TEST(roundtrip_subscribe)
{
    uint8_t buf[4096];
    struct mqtt_packet pk;
    struct mqtt_props none = { 0 };
    const struct mqtt_sub_entry e[] = {
        { S("a/+/c"), 0, false, false, 0 }, { S("#"), 1, true, false, 1 },
        { S("$share/g/x/#"), 2, false, true, 2 }, { S("\xe2\x82\xac/\xf0\x9f\x98\x80"), 1, true, true, 0 },
    };
    for (int version = MQTT_V31; version <= MQTT_V5; version++)
    for (uint8_t type = MQTT_SUBSCRIBE; type <= MQTT_UNSUBSCRIBE; type += 2)
    for (uint32_t n = 1; n <= AU_ARRAY_LEN(e); n++)
    for (int wp = 0; wp < 2; wp++) {
        bool v5 = version == MQTT_V5, sub = type == MQTT_SUBSCRIBE;
        struct mqtt_props p;
        all_props(&p);
        restrict_props(&p, type);
        const struct mqtt_props *pp = wp ? &p : NULL;
        size_t rem = 2 + (v5 ? mqtt_props_size(pp) : 0);
        for (uint32_t i = 0; i < n; i++) rem += 2 + e[i].filter.len + (sub ? 1 : 0);
        size_t size = 1 + mqtt_varint_size((uint32_t)rem) + rem;
        ENC_CHECK(buf, size, mqtt_enc_subscribe(buf, cap, version, type, 99, e, n, pp));
        if (rt_parse(buf, size, version, &pk) != (int)size) { CHECK(0); continue; }
        CHECK_EQ(pk.type, type);
        CHECK_EQ(pk.flags, 2);
        CHECK(pk.u.subscribe.packet_id == 99 && pk.u.subscribe.count == n);
        if (v5) CHECK(props_eq(wp ? &p : &none, &pk.u.subscribe.props));
        uint32_t off = 0, i = 0;
        struct mqtt_sub_entry got;
        while (mqtt_sub_next(&pk.u.subscribe, version, !sub, &off, &got)) {
            CHECK(i < n);
            if (i >= n) break;
            CHECK(str_eq(got.filter, e[i].filter));
            CHECK_EQ(got.qos, sub ? e[i].qos : 0);
            CHECK_EQ(got.no_local, sub && v5 && e[i].no_local);
            CHECK_EQ(got.retain_as_published, sub && v5 && e[i].retain_as_published);
            CHECK_EQ(got.retain_handling, sub && v5 ? e[i].retain_handling : 0);
            i++;
        }
        CHECK_EQ(i, n);
    }
}

TEST(props_block)
{
    uint8_t buf[4096];
    CHECK_EQ(mqtt_props_size(NULL), 1);
    CHECK_EQ(mqtt_props_write(buf, 1, NULL), 1);
    CHECK_EQ(buf[0], 0);
    CHECK_EQ(mqtt_props_write(buf, 0, NULL), 0);
    struct mqtt_props p = { 0 };
    p.present = PBIT(MQTT_PROP_USER) | PBIT(MQTT_PROP_SUB_ID);   /* bits alone write nothing */
    CHECK_EQ(mqtt_props_size(&p), 1);
    p.present = 0;
    p.n_user = 1;                                                /* counts alone are written */
    p.user[0] = (struct mqtt_user_prop){ S("a"), S("b") };
    CHECK_EQ(mqtt_props_size(&p), 1 + 7);
    all_props(&p);
    size_t n = mqtt_props_size(&p);
    CHECK(n > 128);                                              /* two-byte length prefix */
    for (size_t cap = 0; cap < n; cap++) CHECK_EQ(mqtt_props_write(buf, cap, &p), 0);
    CHECK_EQ(mqtt_props_write(buf, n, &p), n);
    CHECK_EQ(buf[0] & 0x80, 0x80);
}

int main(void)
{
    guard_init();
    RUN(spec_vectors);
    RUN(parsed_fields);
    RUN(props_allowed_table);
    RUN(props_values_and_limits);
    RUN(varint_and_frame);
    RUN(utf8);
    RUN(reason_codes);
    RUN(roundtrip_publish);
    RUN(roundtrip_connack_ack_suback_disconnect);
    RUN(roundtrip_connect);
    RUN(roundtrip_subscribe);
    RUN(props_block);
    TEST_MAIN_END();
}
