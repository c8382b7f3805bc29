/* fuzz_mqtt.c - libFuzzer target for the MQTT codec.
 *
 * Input: byte 0 selects max_packet (bits 0-1) and the 3.x version used for non-CONNECT packets
 * (bit 2: 3.1 or 3.1.1); the rest is a stream of packets, parsed one after another both as
 * MQTT 3.x and as MQTT 5 (the stream advances with the 3.x parse, or the v5 one if that fails).
 * For every packet parsed:
 *   - mqtt_frame agrees with mqtt_parse; an error is one of the codes the parser documents;
 *   - shorter prefixes need more bytes;
 *   - it is re-encoded with the matching encoder (exact size: one byte less returns 0), the
 *     encoding parses to the same packet, and encoding that again gives identical bytes;
 *     for 3.x the encoding is canonical, so it must equal the input bytes exactly;
 *   - PUBLISH in parts (head + tail) equals the whole encoding.
 * Also a differential check of mqtt_utf8_valid against a slow reference decoder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/mqtt/codec.h"

#define REQUIRE(c) do { if (!(c)) { fprintf(stderr, "REQUIRE failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---------------- reference UTF-8 (MQTT 1.5.4), written for clarity, not speed ---------------- */

static bool ref_utf8(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp, min;
        size_t len;
        uint8_t c = p[i];
        if (c < 0x80) { cp = c; len = 1; min = 0; }
        else if ((c & 0xE0) == 0xC0) { cp = c & 0x1F; len = 2; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { cp = c & 0x0F; len = 3; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { cp = c & 0x07; len = 4; min = 0x10000; }
        else return false;
        if (n - i < len) return false;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0) return false;
        i += len;
    }
    return true;
}

/* ---------------- comparison of parsed packets ---------------- */

static bool s_eq(struct mqtt_str a, struct mqtt_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}
static bool b_eq(struct mqtt_bin a, struct mqtt_bin b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static uint64_t written(const struct mqtt_props *p)
{
    const uint64_t counted = MQTT_PBIT(MQTT_PROP_USER) | MQTT_PBIT(MQTT_PROP_SUB_ID);
    return (p->present & ~counted) | (p->n_user ? MQTT_PBIT(MQTT_PROP_USER) : 0)
           | (p->n_sub_ids ? MQTT_PBIT(MQTT_PROP_SUB_ID) : 0);
}

static bool props_eq(const struct mqtt_props *a, const struct mqtt_props *b)
{
    uint64_t w = written(a);
    if (w != written(b) || a->n_user != b->n_user || a->n_sub_ids != b->n_sub_ids) return false;
#define F(id, f) if ((w & MQTT_PBIT(id)) && a->f != b->f) return false;
#define FS(id, f) if ((w & MQTT_PBIT(id)) && !s_eq(a->f, b->f)) return false;
#define FB(id, f) if ((w & MQTT_PBIT(id)) && !b_eq(a->f, b->f)) return false;
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
        if (!s_eq(a->user[i].key, b->user[i].key) || !s_eq(a->user[i].val, b->user[i].val)) return false;
    return true;
}

static bool packet_eq(const struct mqtt_packet *a, const struct mqtt_packet *b, int version)
{
    bool v5 = version == MQTT_V5;
    if (a->type != b->type || a->flags != b->flags) return false;
    switch (a->type) {
    case MQTT_CONNECT: {
        const struct mqtt_connect *x = &a->u.connect, *y = &b->u.connect;
        return x->version == y->version && x->clean_start == y->clean_start && x->will_flag == y->will_flag
               && x->will_retain == y->will_retain && x->has_username == y->has_username
               && x->has_password == y->has_password && x->will_qos == y->will_qos
               && x->keepalive == y->keepalive && s_eq(x->client_id, y->client_id)
               && s_eq(x->will_topic, y->will_topic) && s_eq(x->username, y->username)
               && b_eq(x->will_payload, y->will_payload) && b_eq(x->password, y->password)
               && props_eq(&x->props, &y->props) && props_eq(&x->will_props, &y->will_props);
    }
    case MQTT_CONNACK:
        return a->u.connack.session_present == b->u.connack.session_present
               && a->u.connack.reason == b->u.connack.reason && props_eq(&a->u.connack.props, &b->u.connack.props);
    case MQTT_PUBLISH: {
        const struct mqtt_publish *x = &a->u.publish, *y = &b->u.publish;
        return x->qos == y->qos && x->dup == y->dup && x->retain == y->retain && x->packet_id == y->packet_id
               && s_eq(x->topic, y->topic) && b_eq(x->payload, y->payload) && props_eq(&x->props, &y->props);
    }
    case MQTT_PUBACK: case MQTT_PUBREC: case MQTT_PUBREL: case MQTT_PUBCOMP:
        return a->u.ack.packet_id == b->u.ack.packet_id && a->u.ack.reason == b->u.ack.reason
               && props_eq(&a->u.ack.props, &b->u.ack.props);
    case MQTT_SUBSCRIBE: case MQTT_UNSUBSCRIBE: {
        const struct mqtt_subscribe *x = &a->u.subscribe, *y = &b->u.subscribe;
        if (x->packet_id != y->packet_id || x->count != y->count || !props_eq(&x->props, &y->props)) return false;
        bool unsub = a->type == MQTT_UNSUBSCRIBE;
        uint32_t ox = 0, oy = 0;
        struct mqtt_sub_entry ex, ey;
        while (mqtt_sub_next(x, version, unsub, &ox, &ex)) {
            if (!mqtt_sub_next(y, version, unsub, &oy, &ey)) return false;
            if (!s_eq(ex.filter, ey.filter) || ex.qos != ey.qos || ex.no_local != ey.no_local
                || ex.retain_as_published != ey.retain_as_published || ex.retain_handling != ey.retain_handling)
                return false;
        }
        return !mqtt_sub_next(y, version, unsub, &oy, &ey);
    }
    case MQTT_SUBACK: case MQTT_UNSUBACK:
        return a->u.suback.packet_id == b->u.suback.packet_id && a->u.suback.count == b->u.suback.count
               && (a->u.suback.count == 0 || !memcmp(a->u.suback.codes, b->u.suback.codes, a->u.suback.count))
               && props_eq(&a->u.suback.props, &b->u.suback.props);
    case MQTT_DISCONNECT: case MQTT_AUTH:
        return a->u.disconnect.reason == b->u.disconnect.reason
               && (!v5 || props_eq(&a->u.disconnect.props, &b->u.disconnect.props));
    default:
        return true;                                   /* PINGREQ, PINGRESP */
    }
}

/* ---------------- re-encoding ---------------- */

static uint8_t enc1[1u << 20], enc2[1u << 20];
static char cstr[4][65536];
#define MAX_ENTRIES 8192
static struct mqtt_sub_entry entries[MAX_ENTRIES];

static const char *to_cstr(int slot, const uint8_t *p, size_t n)
{
    memcpy(cstr[slot], p, n);
    cstr[slot][n] = 0;
    return cstr[slot];
}

/* Encode a parsed packet; 0 when there is no encoder for it. `cap` may be below the size. */
static size_t encode(const struct mqtt_packet *pk, int version, uint8_t *out, size_t cap)
{
    switch (pk->type) {
    case MQTT_CONNECT: {
        const struct mqtt_connect *c = &pk->u.connect;
        if (c->has_password && memchr(c->password.p, 0, c->password.len)) return 0; /* C-string API */
        struct mqtt_connect_opts o = {
            .version = c->version, .clean_start = c->clean_start, .keepalive = c->keepalive,
            .client_id = to_cstr(0, c->client_id.p, c->client_id.len),
            .username = c->has_username ? to_cstr(1, c->username.p, c->username.len) : NULL,
            .password = c->has_password ? to_cstr(2, c->password.p, c->password.len) : NULL,
            .will_topic = c->will_flag ? to_cstr(3, c->will_topic.p, c->will_topic.len) : NULL,
            .will_payload = c->will_payload.p, .will_payload_len = c->will_payload.len,
            .will_qos = c->will_qos, .will_retain = c->will_retain,
            .props = &c->props, .will_props = &c->will_props,
        };
        return mqtt_enc_connect(out, cap, &o);
    }
    case MQTT_CONNACK:
        return mqtt_enc_connack(out, cap, version, pk->u.connack.session_present, pk->u.connack.reason,
                                &pk->u.connack.props);
    case MQTT_PUBLISH: {
        const struct mqtt_publish *p = &pk->u.publish;
        return mqtt_enc_publish(out, cap, version, p->qos, p->retain, p->dup, p->packet_id, p->topic.p,
                                p->topic.len, &p->props, p->payload.p, p->payload.len);
    }
    case MQTT_PUBACK: case MQTT_PUBREC: case MQTT_PUBREL: case MQTT_PUBCOMP:
        return mqtt_enc_ack(out, cap, version, pk->type, pk->u.ack.packet_id, pk->u.ack.reason, &pk->u.ack.props);
    case MQTT_SUBSCRIBE: case MQTT_UNSUBSCRIBE: {
        const struct mqtt_subscribe *s = &pk->u.subscribe;
        if (s->count > MAX_ENTRIES) return 0;
        uint32_t off = 0, n = 0;
        while (mqtt_sub_next(s, version, pk->type == MQTT_UNSUBSCRIBE, &off, &entries[n])) n++;
        REQUIRE(n == s->count);
        return mqtt_enc_subscribe(out, cap, version, pk->type, s->packet_id, entries, n, &s->props);
    }
    case MQTT_SUBACK: case MQTT_UNSUBACK:
        return mqtt_enc_suback(out, cap, version, pk->type, pk->u.suback.packet_id, pk->u.suback.codes,
                               pk->u.suback.count, &pk->u.suback.props);
    case MQTT_PINGREQ:
        return mqtt_enc_pingreq(out, cap);
    case MQTT_PINGRESP:
        return mqtt_enc_pingresp(out, cap);
    default:                                           /* DISCONNECT, AUTH */
        return mqtt_enc_disconnect(out, cap, version, pk->type, pk->u.disconnect.reason, &pk->u.disconnect.props);
    }
}

static bool documented_error(int r)
{
    switch (-r) {
    case MQTT_RC_MALFORMED: case MQTT_RC_PROTOCOL_ERROR: case MQTT_RC_IMPL_SPECIFIC:
    case MQTT_RC_UNSUPPORTED_VERSION: case MQTT_RC_TOPIC_ALIAS_INVALID: case MQTT_RC_PACKET_TOO_LARGE:
        return true;
    default:
        return false;
    }
}

/* Parse one packet at buf with `version`; returns the parse result after checking everything. */
static int check_one(const uint8_t *buf, size_t len, int version, uint32_t max_packet)
{
    struct mqtt_packet pk, pk2;
    int r = mqtt_parse(buf, len, version, max_packet, &pk);
    uint32_t total = 0;
    int f = mqtt_frame(buf, len, max_packet, &total);
    if (r == 0) {
        REQUIRE(f == 0 || (f == 1 && total > len));
        return 0;
    }
    if (r < 0) {
        REQUIRE(documented_error(r));
        if (f < 0) REQUIRE(f == r);
        return r;
    }
    REQUIRE(f == 1 && total == (uint32_t)r && (size_t)r <= len);
    if (max_packet) REQUIRE((uint32_t)r <= max_packet);
    /* some shorter prefixes */
    size_t probes[] = { 0, 1, 2, (size_t)r / 2, (size_t)r - 1 };
    for (unsigned i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
        if (probes[i] < (size_t)r) REQUIRE(mqtt_parse(buf, probes[i], version, max_packet, &pk2) == 0);

    int ver = pk.type == MQTT_CONNECT ? pk.u.connect.version : version;
    size_t n1 = encode(&pk, ver, enc1, sizeof(enc1));
    if (n1 == 0) return r;                             /* no encoder / not representable */
    REQUIRE(encode(&pk, ver, enc2, n1 - 1) == 0);
    if (ver != MQTT_V5) REQUIRE(n1 == (size_t)r && memcmp(enc1, buf, n1) == 0);
    REQUIRE(mqtt_parse(enc1, n1, version, 0, &pk2) == (int)n1);
    REQUIRE(packet_eq(&pk, &pk2, ver));
    size_t n2 = encode(&pk2, ver, enc2, sizeof(enc2));
    REQUIRE(n2 == n1 && memcmp(enc1, enc2, n1) == 0);

    if (pk.type == MQTT_PUBLISH) {                     /* head + tail == whole */
        const struct mqtt_publish *p = &pk.u.publish;
        uint32_t tail = (p->qos ? 2u : 0u) + (ver == MQTT_V5 ? (uint32_t)mqtt_props_size(&p->props) : 0u)
                        + p->payload.len;
        size_t hs = mqtt_publish_head_size(p->topic.len, tail);
        REQUIRE(hs + tail == n1);
        REQUIRE(mqtt_publish_size(ver, p->qos, p->topic.len, &p->props, p->payload.len) == n1);
        REQUIRE(mqtt_enc_publish_head(enc2, hs, p->qos, p->retain, p->dup, p->topic.p, p->topic.len, tail) == hs);
        REQUIRE(memcmp(enc1, enc2, hs) == 0);
    }
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint32_t maxes[4] = { 0, AU_MQTT_MAX_PACKET, 64, 1024 };
    if (size < 1) return 0;
    uint32_t max_packet = maxes[data[0] & 3];
    int v3 = (data[0] & 4) ? MQTT_V31 : MQTT_V311;
    data++;
    size--;
    if (size > sizeof(enc1) / 2) return 0;

    REQUIRE(mqtt_utf8_valid(data, size) == ref_utf8(data, size));
    if (size >= 2) {                                   /* as a length-prefixed string, too */
        size_t n = (size_t)(data[0] << 8 | data[1]);
        if (n <= size - 2) REQUIRE(mqtt_utf8_valid(data + 2, n) == ref_utf8(data + 2, n));
    }

    size_t off = 0;
    while (off < size) {
        int r3 = check_one(data + off, size - off, v3, max_packet);
        int r5 = check_one(data + off, size - off, MQTT_V5, max_packet);
        int r = r3 > 0 ? r3 : r5;
        if (r <= 0) break;
        off += (size_t)r;
    }
    return 0;
}
