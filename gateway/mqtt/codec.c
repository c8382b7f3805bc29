/* codec.c - MQTT codec shared parts: UTF-8 validation, variable byte integers, reason codes, and
 * the MQTT 5 property block (which properties each packet may carry, reading, sizing, writing).
 * Packet parsing is in codec_parse.c, packet encoding in codec_enc.c. */
#include "gateway/mqtt/codec_internal.h"

/* ---------------- UTF-8 (MQTT 1.5.4) ---------------- */

bool mqtt_utf8_valid(const uint8_t *p, size_t len)
{
    const uint64_t hi = 0x8080808080808080ull, ones = 0x0101010101010101ull;
    size_t i = 0;
    while (i < len) {
        if (len - i >= 8) {            /* fast path: 8 ASCII bytes, none of them NUL */
            uint64_t v;
            memcpy(&v, p + i, 8);
            if (!(v & hi) && !((v - ones) & ~v & hi)) {
                i += 8;
                continue;
            }
        }
        uint8_t c = p[i];
        if (c < 0x80) {
            if (c == 0) return false;  /* U+0000 [MQTT-1.5.4-2] */
            i++;
            continue;
        }
        /* Well-formed sequences per RFC 3629 / Unicode table 3-7: no overlongs (C0, C1, E0 80..9F,
         * F0 80..8F), no surrogates (ED A0..BF), nothing above U+10FFFF (F4 90.., F5..FF). */
        size_t n;
        uint8_t lo = 0x80, hi1 = 0xBF;
        if (c < 0xC2) return false;
        else if (c < 0xE0) n = 1;
        else if (c < 0xF0) {
            n = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi1 = 0x9F;
        } else if (c < 0xF5) {
            n = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi1 = 0x8F;
        } else return false;
        if (len - i - 1 < n) return false;
        if (p[i + 1] < lo || p[i + 1] > hi1) return false;
        for (size_t k = 2; k <= n; k++)
            if ((p[i + k] & 0xC0) != 0x80) return false;
        i += n + 1;
    }
    return true;
}

/* ---------------- variable byte integers ---------------- */

size_t mqtt_varint_size(uint32_t v)
{
    AU_ASSERT(v <= MQTT_VARINT_MAX);
    return v < 128u ? 1 : v < 16384u ? 2 : v < 2097152u ? 3 : 4;
}

size_t mqtt_varint_write(uint8_t *out, uint32_t v)
{
    AU_ASSERT(v <= MQTT_VARINT_MAX);
    size_t n = 0;
    do {
        uint8_t b = v & 0x7f;
        v >>= 7;
        out[n++] = (uint8_t)(v ? (b | 0x80) : b);
    } while (v);
    return n;
}

/* ---------------- reason codes ---------------- */

uint8_t mqtt_v3_connack_code(uint8_t rc)
{
    switch (rc) {
    case MQTT_RC_SUCCESS:
        return MQTT3_ACCEPTED;
    case MQTT3_BAD_VERSION: case MQTT3_ID_REJECTED: case MQTT3_SERVER_UNAVAILABLE:
    case MQTT3_BAD_USER_PASS: case MQTT3_NOT_AUTHORIZED:
        return rc;                     /* already a 3.1.1 code: 1..5 are no v5 CONNACK reasons */
    case MQTT_RC_UNSUPPORTED_VERSION:
        return MQTT3_BAD_VERSION;
    case MQTT_RC_CLIENT_ID_INVALID:
        return MQTT3_ID_REJECTED;
    case MQTT_RC_BAD_USER_PASS:
        return MQTT3_BAD_USER_PASS;
    case MQTT_RC_UNSPECIFIED: case MQTT_RC_IMPL_SPECIFIC: case MQTT_RC_SERVER_UNAVAILABLE:
    case MQTT_RC_SERVER_BUSY: case MQTT_RC_SERVER_SHUTTING_DOWN: case MQTT_RC_QUOTA_EXCEEDED:
    case MQTT_RC_USE_ANOTHER_SERVER: case MQTT_RC_SERVER_MOVED: case MQTT_RC_CONNECTION_RATE_EXCEEDED:
        return MQTT3_SERVER_UNAVAILABLE;
    default:                           /* 0x87 Not authorized, 0x8A Banned, 0x8C, client faults */
        return MQTT3_NOT_AUTHORIZED;
    }
}

const char *mqtt_rc_string(uint8_t rc)
{
    switch (rc) {
    case 0x00: return "Success";
    case 0x01: return "Granted QoS 1";
    case 0x02: return "Granted QoS 2";
    case 0x04: return "Disconnect with Will Message";
    case 0x10: return "No matching subscribers";
    case 0x11: return "No subscription existed";
    case 0x18: return "Continue authentication";
    case 0x19: return "Re-authenticate";
    case 0x80: return "Unspecified error";
    case 0x81: return "Malformed Packet";
    case 0x82: return "Protocol Error";
    case 0x83: return "Implementation specific error";
    case 0x84: return "Unsupported Protocol Version";
    case 0x85: return "Client Identifier not valid";
    case 0x86: return "Bad User Name or Password";
    case 0x87: return "Not authorized";
    case 0x88: return "Server unavailable";
    case 0x89: return "Server busy";
    case 0x8A: return "Banned";
    case 0x8B: return "Server shutting down";
    case 0x8C: return "Bad authentication method";
    case 0x8D: return "Keep Alive timeout";
    case 0x8E: return "Session taken over";
    case 0x8F: return "Topic Filter invalid";
    case 0x90: return "Topic Name invalid";
    case 0x91: return "Packet Identifier in use";
    case 0x92: return "Packet Identifier not found";
    case 0x93: return "Receive Maximum exceeded";
    case 0x94: return "Topic Alias invalid";
    case 0x95: return "Packet too large";
    case 0x96: return "Message rate too high";
    case 0x97: return "Quota exceeded";
    case 0x98: return "Administrative action";
    case 0x99: return "Payload format invalid";
    case 0x9A: return "Retain not supported";
    case 0x9B: return "QoS not supported";
    case 0x9C: return "Use another server";
    case 0x9D: return "Server moved";
    case 0x9E: return "Shared Subscriptions not supported";
    case 0x9F: return "Connection rate exceeded";
    case 0xA0: return "Maximum connect time";
    case 0xA1: return "Subscription Identifiers not supported";
    case 0xA2: return "Wildcard Subscriptions not supported";
    default:   return "Unknown reason code";
    }
}

/* ---------------- properties ---------------- */

/* Every single-valued property: X(id suffix, wire kind, field). Subscription identifiers and user
 * properties (repeatable, counted) are handled apart. Reading, sizing and writing all expand this
 * one list, so they cannot disagree. */
#define MQTT_PROP_FIELDS(X) \
    X(PAYLOAD_FORMAT, BYTE, payload_format) \
    X(MESSAGE_EXPIRY, U32, message_expiry) \
    X(CONTENT_TYPE, STR, content_type) \
    X(RESPONSE_TOPIC, STR, response_topic) \
    X(CORRELATION_DATA, BIN, correlation_data) \
    X(SESSION_EXPIRY, U32, session_expiry) \
    X(ASSIGNED_CLIENT_ID, STR, assigned_client_id) \
    X(SERVER_KEEPALIVE, U16, server_keepalive) \
    X(AUTH_METHOD, STR, auth_method) \
    X(AUTH_DATA, BIN, auth_data) \
    X(REQ_PROBLEM_INFO, BYTE, req_problem_info) \
    X(WILL_DELAY, U32, will_delay) \
    X(REQ_RESPONSE_INFO, BYTE, req_response_info) \
    X(RESPONSE_INFO, STR, response_info) \
    X(SERVER_REFERENCE, STR, server_reference) \
    X(REASON_STRING, STR, reason_string) \
    X(RECEIVE_MAX, U16, receive_max) \
    X(TOPIC_ALIAS_MAX, U16, topic_alias_max) \
    X(TOPIC_ALIAS, U16, topic_alias) \
    X(MAX_QOS, BYTE, max_qos) \
    X(RETAIN_AVAILABLE, BYTE, retain_available) \
    X(MAX_PACKET, U32, max_packet) \
    X(WILDCARD_AVAILABLE, BYTE, wildcard_available) \
    X(SUB_ID_AVAILABLE, BYTE, sub_id_available) \
    X(SHARED_AVAILABLE, BYTE, shared_available)

#define PB(x) MQTT_PBIT(MQTT_PROP_##x)
#define P_FIELD_BIT(id, kind, field) | PB(id)
static const uint64_t fields_mask = 0 MQTT_PROP_FIELDS(P_FIELD_BIT);
#define P_COUNTED (PB(USER) | PB(SUB_ID))

/* Properties each packet may carry (MQTT 5 section 2.2.2.2); index 0 = will properties. */
static const uint64_t allowed[16] = {
    [MQTT_PCTX_WILL] = PB(PAYLOAD_FORMAT) | PB(MESSAGE_EXPIRY) | PB(CONTENT_TYPE) | PB(RESPONSE_TOPIC)
        | PB(CORRELATION_DATA) | PB(WILL_DELAY) | PB(USER),
    [MQTT_CONNECT] = PB(SESSION_EXPIRY) | PB(RECEIVE_MAX) | PB(MAX_PACKET) | PB(TOPIC_ALIAS_MAX)
        | PB(REQ_RESPONSE_INFO) | PB(REQ_PROBLEM_INFO) | PB(USER) | PB(AUTH_METHOD) | PB(AUTH_DATA),
    [MQTT_CONNACK] = PB(SESSION_EXPIRY) | PB(RECEIVE_MAX) | PB(MAX_QOS) | PB(RETAIN_AVAILABLE)
        | PB(MAX_PACKET) | PB(ASSIGNED_CLIENT_ID) | PB(TOPIC_ALIAS_MAX) | PB(REASON_STRING) | PB(USER)
        | PB(WILDCARD_AVAILABLE) | PB(SUB_ID_AVAILABLE) | PB(SHARED_AVAILABLE) | PB(SERVER_KEEPALIVE)
        | PB(RESPONSE_INFO) | PB(SERVER_REFERENCE) | PB(AUTH_METHOD) | PB(AUTH_DATA),
    [MQTT_PUBLISH] = PB(PAYLOAD_FORMAT) | PB(MESSAGE_EXPIRY) | PB(TOPIC_ALIAS) | PB(RESPONSE_TOPIC)
        | PB(CORRELATION_DATA) | PB(USER) | PB(SUB_ID) | PB(CONTENT_TYPE),
    [MQTT_PUBACK] = PB(REASON_STRING) | PB(USER),
    [MQTT_PUBREC] = PB(REASON_STRING) | PB(USER),
    [MQTT_PUBREL] = PB(REASON_STRING) | PB(USER),
    [MQTT_PUBCOMP] = PB(REASON_STRING) | PB(USER),
    [MQTT_SUBSCRIBE] = PB(SUB_ID) | PB(USER),
    [MQTT_SUBACK] = PB(REASON_STRING) | PB(USER),
    [MQTT_UNSUBSCRIBE] = PB(USER),
    [MQTT_UNSUBACK] = PB(REASON_STRING) | PB(USER),
    [MQTT_PINGREQ] = 0,
    [MQTT_PINGRESP] = 0,
    [MQTT_DISCONNECT] = PB(SESSION_EXPIRY) | PB(REASON_STRING) | PB(USER) | PB(SERVER_REFERENCE),
    [MQTT_AUTH] = PB(AUTH_METHOD) | PB(AUTH_DATA) | PB(REASON_STRING) | PB(USER),
};

static int rd_prop_BYTE(struct mqtt_rd *r, uint8_t *v) { return mqtt_rd_u8(r, v); }
static int rd_prop_U16(struct mqtt_rd *r, uint16_t *v) { return mqtt_rd_u16(r, v); }
static int rd_prop_U32(struct mqtt_rd *r, uint32_t *v) { return mqtt_rd_u32(r, v); }
static int rd_prop_STR(struct mqtt_rd *r, struct mqtt_str *v) { return mqtt_rd_str(r, v); }
static int rd_prop_BIN(struct mqtt_rd *r, struct mqtt_bin *v) { return mqtt_rd_bin(r, v); }

/* Value rules a well-formed property can still break (Protocol Error unless noted). */
static int prop_check(const struct mqtt_props *p, uint32_t id)
{
    switch (id) {
    case MQTT_PROP_PAYLOAD_FORMAT:     return p->payload_format > 1 ? -MQTT_RC_PROTOCOL_ERROR : 0;
    case MQTT_PROP_REQ_PROBLEM_INFO:   return p->req_problem_info > 1 ? -MQTT_RC_PROTOCOL_ERROR : 0;
    case MQTT_PROP_REQ_RESPONSE_INFO:  return p->req_response_info > 1 ? -MQTT_RC_PROTOCOL_ERROR : 0;
    case MQTT_PROP_MAX_QOS:            return p->max_qos > 1 ? -MQTT_RC_PROTOCOL_ERROR : 0;
    case MQTT_PROP_RETAIN_AVAILABLE:   return p->retain_available > 1 ? -MQTT_RC_PROTOCOL_ERROR : 0;
    case MQTT_PROP_WILDCARD_AVAILABLE: return p->wildcard_available > 1 ? -MQTT_RC_PROTOCOL_ERROR : 0;
    case MQTT_PROP_SUB_ID_AVAILABLE:   return p->sub_id_available > 1 ? -MQTT_RC_PROTOCOL_ERROR : 0;
    case MQTT_PROP_SHARED_AVAILABLE:   return p->shared_available > 1 ? -MQTT_RC_PROTOCOL_ERROR : 0;
    case MQTT_PROP_RECEIVE_MAX:        return p->receive_max == 0 ? -MQTT_RC_PROTOCOL_ERROR : 0;
    case MQTT_PROP_MAX_PACKET:         return p->max_packet == 0 ? -MQTT_RC_PROTOCOL_ERROR : 0;
    case MQTT_PROP_TOPIC_ALIAS:        return p->topic_alias == 0 ? -MQTT_RC_TOPIC_ALIAS_INVALID : 0;
    case MQTT_PROP_RESPONSE_TOPIC:     /* a Topic Name: non-empty, no wildcards [MQTT-3.3.2-14] */
        return p->response_topic.len == 0
                       || mqtt_has_wildcard(p->response_topic.p, p->response_topic.len)
                   ? -MQTT_RC_PROTOCOL_ERROR : 0;
    default:
        return 0;
    }
}

int mqtt_rd_props(struct mqtt_rd *r, unsigned ctx, struct mqtt_props *p)
{
    AU_ASSERT(ctx < AU_ARRAY_LEN(allowed));
    mqtt_props_clear(p);
    uint32_t plen;
    if (mqtt_rd_varint(r, &plen) < 0 || plen > mqtt_rd_left(r)) return -MQTT_RC_MALFORMED;
    p->raw = r->b + r->pos;
    p->raw_len = plen;
    struct mqtt_rd pr = { r->b, r->pos, r->pos + plen };
    r->pos += plen;

    while (pr.pos < pr.end) {
        uint32_t id;
        int rc;
        if (mqtt_rd_varint(&pr, &id) < 0) return -MQTT_RC_MALFORMED;
        /* An identifier not valid for the packet is a Malformed Packet (MQTT 5 2.2.2.2). */
        if (id >= 64 || !(allowed[ctx] & MQTT_PBIT(id))) return -MQTT_RC_MALFORMED;
        if ((p->present & MQTT_PBIT(id)) && id != MQTT_PROP_USER
            && !(id == MQTT_PROP_SUB_ID && ctx == MQTT_PUBLISH))
            return -MQTT_RC_PROTOCOL_ERROR;             /* may appear once */
        switch (id) {
#define P_READ_CASE(pid, kind, field) \
        case MQTT_PROP_##pid: rc = rd_prop_##kind(&pr, &p->field); break;
        MQTT_PROP_FIELDS(P_READ_CASE)
#undef P_READ_CASE
        case MQTT_PROP_SUB_ID: {
            uint32_t v;
            if (mqtt_rd_varint(&pr, &v) < 0) return -MQTT_RC_MALFORMED;
            if (v == 0) return -MQTT_RC_PROTOCOL_ERROR;
            if (p->n_sub_ids >= AU_MQTT_MAX_SUB_IDS) return -MQTT_RC_IMPL_SPECIFIC;
            p->sub_ids[p->n_sub_ids++] = v;
            rc = 0;
            break;
        }
        case MQTT_PROP_USER: {
            struct mqtt_user_prop u;
            if (mqtt_rd_str(&pr, &u.key) < 0 || mqtt_rd_str(&pr, &u.val) < 0) return -MQTT_RC_MALFORMED;
            if (p->n_user >= AU_MQTT_MAX_USER_PROPS) return -MQTT_RC_IMPL_SPECIFIC;
            p->user[p->n_user++] = u;
            rc = 0;
            break;
        }
        default:
            AU_ASSERT(!"property allowed in a packet but unknown to the reader");
            return -MQTT_RC_MALFORMED;
        }
        if (rc < 0) return rc;
        p->present |= MQTT_PBIT(id);
        if ((rc = prop_check(p, id)) < 0) return rc;
    }
    /* Authentication Data without an Authentication Method (MQTT 5 3.1.2.11.10, 3.2.2.3.18). */
    if ((p->present & PB(AUTH_DATA)) && !(p->present & PB(AUTH_METHOD))) return -MQTT_RC_PROTOCOL_ERROR;
    return 0;
}

/* Which properties an encoder writes: the single-valued ones marked in `present`, and the
 * counted ones (user properties, subscription identifiers) whenever their count is non-zero. */
static uint64_t props_written(const struct mqtt_props *p)
{
    AU_ASSERT((p->present & ~(fields_mask | P_COUNTED)) == 0);
    AU_ASSERT(p->n_user <= AU_MQTT_MAX_USER_PROPS && p->n_sub_ids <= AU_MQTT_MAX_SUB_IDS);
    return (p->present & fields_mask) | (p->n_user ? PB(USER) : 0) | (p->n_sub_ids ? PB(SUB_ID) : 0);
}

bool mqtt_props_empty(const struct mqtt_props *p)
{
    return !p || props_written(p) == 0;
}

bool mqtt_props_allowed(const struct mqtt_props *p, unsigned ctx)
{
    AU_ASSERT(ctx < AU_ARRAY_LEN(allowed));
    if (!p) return true;
    if (ctx == MQTT_SUBSCRIBE && p->n_sub_ids > 1) return false;
    return (props_written(p) & ~allowed[ctx]) == 0;
}

static size_t sz_prop_BYTE(uint8_t v) { AU_UNUSED(v); return 1; }
static size_t sz_prop_U16(uint16_t v) { AU_UNUSED(v); return 2; }
static size_t sz_prop_U32(uint32_t v) { AU_UNUSED(v); return 4; }
static size_t sz_prop_STR(struct mqtt_str v) { return 2u + v.len; }
static size_t sz_prop_BIN(struct mqtt_bin v) { AU_ASSERT(v.len <= 65535); return 2u + v.len; }

/* Bytes of the properties themselves, without the length varint. */
static size_t props_body_size(const struct mqtt_props *p)
{
    if (!p) return 0;
    uint64_t w = props_written(p);
    size_t n = 0;
#define P_SIZE(pid, kind, field) \
    if (w & PB(pid)) n += 1 + sz_prop_##kind(p->field);
    MQTT_PROP_FIELDS(P_SIZE)
#undef P_SIZE
    for (unsigned i = 0; i < p->n_sub_ids; i++) {
        AU_ASSERT(p->sub_ids[i] >= 1 && p->sub_ids[i] <= MQTT_VARINT_MAX);
        n += 1 + mqtt_varint_size(p->sub_ids[i]);
    }
    for (unsigned i = 0; i < p->n_user; i++)
        n += 5u + p->user[i].key.len + p->user[i].val.len;
    AU_ASSERT(n <= MQTT_VARINT_MAX);
    return n;
}

size_t mqtt_props_size(const struct mqtt_props *p)
{
    size_t body = props_body_size(p);
    return mqtt_varint_size((uint32_t)body) + body;
}

static uint8_t *wr_bytes(uint8_t *o, const uint8_t *src, size_t n)
{
    if (n) memcpy(o, src, n);
    return o + n;
}
static uint8_t *wr_prop_BYTE(uint8_t *o, uint8_t v) { *o = v; return o + 1; }
static uint8_t *wr_prop_U16(uint8_t *o, uint16_t v) { au_wr16(o, v); return o + 2; }
static uint8_t *wr_prop_U32(uint8_t *o, uint32_t v) { au_wr32(o, v); return o + 4; }
static uint8_t *wr_prop_STR(uint8_t *o, struct mqtt_str v)
{
    au_wr16(o, v.len);
    return wr_bytes(o + 2, v.p, v.len);
}
static uint8_t *wr_prop_BIN(uint8_t *o, struct mqtt_bin v)
{
    au_wr16(o, (uint16_t)v.len);
    return wr_bytes(o + 2, v.p, v.len);
}

size_t mqtt_props_write(uint8_t *out, size_t cap, const struct mqtt_props *p)
{
    size_t body = props_body_size(p);
    size_t total = mqtt_varint_size((uint32_t)body) + body;
    if (cap < total) return 0;
    uint8_t *o = out + mqtt_varint_write(out, (uint32_t)body);
    if (!body) return total;
    uint64_t w = props_written(p);
#define P_WRITE(pid, kind, field) \
    if (w & PB(pid)) { *o++ = MQTT_PROP_##pid; o = wr_prop_##kind(o, p->field); }
    MQTT_PROP_FIELDS(P_WRITE)
#undef P_WRITE
    for (unsigned i = 0; i < p->n_sub_ids; i++) {
        *o++ = MQTT_PROP_SUB_ID;
        o += mqtt_varint_write(o, p->sub_ids[i]);
    }
    for (unsigned i = 0; i < p->n_user; i++) {
        *o++ = MQTT_PROP_USER;
        o = wr_prop_STR(o, p->user[i].key);
        o = wr_prop_STR(o, p->user[i].val);
    }
    AU_ASSERT((size_t)(o - out) == total);
    return total;
}
