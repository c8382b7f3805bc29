/* codec_parse.c - MQTT 3.1 / 3.1.1 / 5.0 packet parsing: pure, re-entrant, no allocation.
 * Every packet parser reads through a bounded struct mqtt_rd limited to the packet's own bytes. */
#include "gateway/mqtt/codec_internal.h"

#define TRY(expr) do { int rc_ = (expr); if (rc_ < 0) return rc_; } while (0)
#define MALFORMED_IF(c) do { if (c) return -MQTT_RC_MALFORMED; } while (0)
#define PROTOCOL_IF(c) do { if (c) return -MQTT_RC_PROTOCOL_ERROR; } while (0)

/* Fixed header: sets *hdr (1 + varint bytes) and *total. Same results as mqtt_frame. */
static int frame(const uint8_t *buf, size_t len, uint32_t max_packet, uint32_t *hdr, uint32_t *total)
{
    if (len < 2) return 0;
    uint32_t rem;
    int n = mqtt_varint_decode(buf + 1, len - 1, &rem);
    if (n < 0) return n;
    if (max_packet == 0) max_packet = UINT32_MAX;
    if (n == 0) {
        /* Incomplete length: the value is already at least acc + 128^k (its next byte, or a later
         * one, must be non-zero), so an oversized declaration is refused before it is complete. */
        size_t k = len - 1;                        /* continuation bytes seen, 1..3 */
        uint64_t acc = 0;
        for (size_t i = 0; i < k; i++) acc |= (uint64_t)(buf[1 + i] & 0x7f) << (7 * i);
        uint64_t least = 1 + (k + 1) + acc + (1ull << (7 * k));
        return least > max_packet ? -MQTT_RC_PACKET_TOO_LARGE : 0;
    }
    uint64_t t = 1u + (uint32_t)n + (uint64_t)rem;
    if (t > max_packet) return -MQTT_RC_PACKET_TOO_LARGE;
    *hdr = 1u + (uint32_t)n;
    *total = (uint32_t)t;
    return 1;
}

int mqtt_frame(const uint8_t *buf, size_t len, uint32_t max_packet, uint32_t *total)
{
    uint32_t hdr;
    return frame(buf, len, max_packet, &hdr, total);
}

/* ---------------- reason codes valid per packet (MQTT 5 sections 3.x) ---------------- */

static bool rc_in(uint8_t rc, const uint8_t *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (set[i] == rc) return true;
    return false;
}

static bool rc_valid(uint8_t type, uint8_t rc)
{
    static const uint8_t connack[] = { 0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
                                       0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F };
    static const uint8_t puback[] = { 0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99 };
    static const uint8_t pubrel[] = { 0x00, 0x92 };
    static const uint8_t suback[] = { 0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2 };
    static const uint8_t unsuback[] = { 0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91 };
    static const uint8_t disconnect[] = { 0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D,
                                          0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
                                          0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2 };
    static const uint8_t auth[] = { 0x00, 0x18, 0x19 };
#define IN(set) rc_in(rc, set, sizeof(set))
    switch (type) {
    case MQTT_CONNACK: return IN(connack);
    case MQTT_PUBACK: case MQTT_PUBREC: return IN(puback);
    case MQTT_PUBREL: case MQTT_PUBCOMP: return IN(pubrel);
    case MQTT_SUBACK: return IN(suback);
    case MQTT_UNSUBACK: return IN(unsuback);
    case MQTT_DISCONNECT: return IN(disconnect);
    case MQTT_AUTH: return IN(auth);
    default: return false;
    }
#undef IN
}

/* ---------------- packets ---------------- */

static bool str_eq(struct mqtt_str s, const char *lit, uint16_t n)
{
    return s.len == n && memcmp(s.p, lit, n) == 0;
}

static int parse_connect(struct mqtt_rd *r, struct mqtt_connect *c)
{
    struct mqtt_str name;
    uint8_t level, fl;
    c->version = 0;
    TRY(mqtt_rd_str(r, &name));
    TRY(mqtt_rd_u8(r, &level));
    c->version = level;                /* reported even when refused, for the CONNACK's format */
    if (str_eq(name, "MQTT", 4)) {
        if (level != MQTT_V311 && level != MQTT_V5) return -MQTT_RC_UNSUPPORTED_VERSION;
    } else if (str_eq(name, "MQIsdp", 6)) {
        if (level != MQTT_V31) return -MQTT_RC_UNSUPPORTED_VERSION;
    } else {
        return -MQTT_RC_PROTOCOL_ERROR; /* not MQTT at all [MQTT-3.1.2-1]: close, no CONNACK */
    }
    bool v5 = level == MQTT_V5;

    TRY(mqtt_rd_u8(r, &fl));
    MALFORMED_IF(fl & 0x01);           /* reserved [MQTT-3.1.2-3] */
    c->clean_start = fl & 0x02;
    c->will_flag = fl & 0x04;
    c->will_qos = (fl >> 3) & 3;
    c->will_retain = fl & 0x20;
    c->has_password = fl & 0x40;
    c->has_username = fl & 0x80;
    MALFORMED_IF(c->will_qos == 3);
    MALFORMED_IF(!c->will_flag && (c->will_qos || c->will_retain)); /* [MQTT-3.1.2-11/13/15] */
    MALFORMED_IF(!v5 && c->has_password && !c->has_username);      /* 3.1.1 [MQTT-3.1.2-22] */
    TRY(mqtt_rd_u16(r, &c->keepalive));

    mqtt_props_clear(&c->props);
    mqtt_props_clear(&c->will_props);
    if (v5) TRY(mqtt_rd_props(r, MQTT_CONNECT, &c->props));

    TRY(mqtt_rd_str(r, &c->client_id));
    c->will_topic = (struct mqtt_str){ NULL, 0 };
    c->will_payload = (struct mqtt_bin){ NULL, 0 };
    if (c->will_flag) {
        if (v5) TRY(mqtt_rd_props(r, MQTT_PCTX_WILL, &c->will_props));
        TRY(mqtt_rd_str(r, &c->will_topic));
        MALFORMED_IF(c->will_topic.len == 0 || mqtt_has_wildcard(c->will_topic.p, c->will_topic.len));
        TRY(mqtt_rd_bin(r, &c->will_payload));
    }
    c->username = (struct mqtt_str){ NULL, 0 };
    c->password = (struct mqtt_bin){ NULL, 0 };
    if (c->has_username) TRY(mqtt_rd_str(r, &c->username));
    if (c->has_password) TRY(mqtt_rd_bin(r, &c->password));
    MALFORMED_IF(mqtt_rd_left(r) != 0);
    return 0;
}

static int parse_connack(struct mqtt_rd *r, bool v5, struct mqtt_connack *c)
{
    uint8_t fl;
    mqtt_props_clear(&c->props);
    MALFORMED_IF(!v5 && mqtt_rd_left(r) != 2);
    TRY(mqtt_rd_u8(r, &fl));
    TRY(mqtt_rd_u8(r, &c->reason));
    MALFORMED_IF(fl & 0xFE);           /* reserved acknowledge flags [MQTT-3.2.2-1] */
    c->session_present = fl & 1;
    if (v5) {
        PROTOCOL_IF(!rc_valid(MQTT_CONNACK, c->reason));
        PROTOCOL_IF(c->session_present && c->reason >= 0x80);  /* [MQTT-3.2.2-6] */
        TRY(mqtt_rd_props(r, MQTT_CONNACK, &c->props));
        MALFORMED_IF(mqtt_rd_left(r) != 0);
    } else {
        PROTOCOL_IF(c->reason > MQTT3_NOT_AUTHORIZED);           /* 6..255 reserved */
        PROTOCOL_IF(c->session_present && c->reason != 0);      /* [MQTT-3.2.2-4] */
    }
    return 0;
}

static int parse_publish(struct mqtt_rd *r, bool v5, uint8_t flags, struct mqtt_publish *p)
{
    p->qos = (flags >> 1) & 3;
    p->dup = flags & 8;
    p->retain = flags & 1;
    MALFORMED_IF(p->qos == 3);         /* [MQTT-3.3.1-4] */
    PROTOCOL_IF(v5 && p->qos == 0 && p->dup); /* [MQTT-3.3.1-2] */
    TRY(mqtt_rd_str(r, &p->topic));
    MALFORMED_IF(mqtt_has_wildcard(p->topic.p, p->topic.len)); /* [MQTT-3.3.2-2] */
    p->packet_id = 0;
    if (p->qos) {
        TRY(mqtt_rd_u16(r, &p->packet_id));
        PROTOCOL_IF(p->packet_id == 0); /* [MQTT-2.2.1-3] */
    }
    mqtt_props_clear(&p->props);
    if (v5) {
        TRY(mqtt_rd_props(r, MQTT_PUBLISH, &p->props));
        /* Zero-length topic only with a Topic Alias (MQTT 5 3.3.2.3.4). */
        PROTOCOL_IF(p->topic.len == 0 && !(p->props.present & MQTT_PBIT(MQTT_PROP_TOPIC_ALIAS)));
    } else {
        MALFORMED_IF(p->topic.len == 0); /* [MQTT-4.7.3-1] */
    }
    p->payload.p = r->b + r->pos;
    p->payload.len = mqtt_rd_left(r);
    r->pos = r->end;
    return 0;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
static int parse_ack(struct mqtt_rd *r, bool v5, uint8_t type, struct mqtt_ack *a)
{
    a->reason = MQTT_RC_SUCCESS;
    mqtt_props_clear(&a->props);
    MALFORMED_IF(!v5 && mqtt_rd_left(r) != 2);
    TRY(mqtt_rd_u16(r, &a->packet_id));
    PROTOCOL_IF(a->packet_id == 0);
    if (v5 && mqtt_rd_left(r) > 0) {   /* reason and properties may be omitted (3.4.2.1) */
        TRY(mqtt_rd_u8(r, &a->reason));
        PROTOCOL_IF(!rc_valid(type, a->reason));
        if (mqtt_rd_left(r) > 0) TRY(mqtt_rd_props(r, type, &a->props));
        MALFORMED_IF(mqtt_rd_left(r) != 0);
    }
    return 0;
}

/* Shared Subscription filters start with "$share/" (MQTT 5 4.8.2). */
static bool is_shared(struct mqtt_str f)
{
    return f.len >= 7 && memcmp(f.p, "$share/", 7) == 0;
}

/* SUBSCRIBE and UNSUBSCRIBE: validate the whole payload, count the entries. */
static int parse_subscribe(struct mqtt_rd *r, bool v5, uint8_t type, struct mqtt_subscribe *s)
{
    TRY(mqtt_rd_u16(r, &s->packet_id));
    PROTOCOL_IF(s->packet_id == 0);    /* [MQTT-2.2.1-3] */
    mqtt_props_clear(&s->props);
    if (v5) TRY(mqtt_rd_props(r, type, &s->props));
    s->list = r->b + r->pos;
    s->list_len = mqtt_rd_left(r);
    s->count = 0;
    while (mqtt_rd_left(r) > 0) {
        struct mqtt_str f;
        TRY(mqtt_rd_str(r, &f));
        MALFORMED_IF(f.len == 0);      /* [MQTT-4.7.3-1] */
        if (type == MQTT_SUBSCRIBE) {
            uint8_t o;
            TRY(mqtt_rd_u8(r, &o));
            MALFORMED_IF((o & 3) == 3);                        /* QoS 3 */
            if (v5) {
                MALFORMED_IF(o & 0xC0);                        /* reserved [MQTT-3.8.3-5] */
                PROTOCOL_IF(((o >> 4) & 3) == 3);              /* Retain Handling 3 */
                PROTOCOL_IF((o & 0x04) && is_shared(f));       /* No Local on shared [MQTT-3.8.3-4] */
            } else {
                MALFORMED_IF(o & 0xFC);                        /* reserved 3.1.1 [MQTT-3.8.3-4] */
            }
        }
        s->count++;
    }
    PROTOCOL_IF(s->count == 0);        /* [MQTT-3.8.3-2], [MQTT-3.10.3-2] */
    return 0;
}

/* SUBACK and UNSUBACK. */
static int parse_suback(struct mqtt_rd *r, bool v5, uint8_t type, struct mqtt_suback *s)
{
    MALFORMED_IF(!v5 && type == MQTT_UNSUBACK && mqtt_rd_left(r) != 2);
    TRY(mqtt_rd_u16(r, &s->packet_id));
    PROTOCOL_IF(s->packet_id == 0);
    mqtt_props_clear(&s->props);
    if (v5) TRY(mqtt_rd_props(r, type, &s->props));
    s->codes = r->b + r->pos;
    s->count = mqtt_rd_left(r);
    r->pos = r->end;
    if (!v5 && type == MQTT_UNSUBACK) return 0;
    PROTOCOL_IF(s->count == 0);        /* one code per filter, and a request has at least one */
    for (uint32_t i = 0; i < s->count; i++) {
        uint8_t c = s->codes[i];
        if (v5) PROTOCOL_IF(!rc_valid(type, c));
        else PROTOCOL_IF(c > 2 && c != 0x80);
    }
    return 0;
}

/* DISCONNECT and AUTH (v5 only for AUTH). */
static int parse_disconnect(struct mqtt_rd *r, bool v5, uint8_t type, struct mqtt_disconnect *d)
{
    d->reason = MQTT_RC_SUCCESS;
    mqtt_props_clear(&d->props);
    MALFORMED_IF(!v5 && mqtt_rd_left(r) != 0);
    if (mqtt_rd_left(r) > 0) {         /* reason and properties may be omitted (3.14.2.1, 3.15.2.1) */
        TRY(mqtt_rd_u8(r, &d->reason));
        PROTOCOL_IF(!rc_valid(type, d->reason));
        if (mqtt_rd_left(r) > 0) TRY(mqtt_rd_props(r, type, &d->props));
        MALFORMED_IF(mqtt_rd_left(r) != 0);
    }
    return 0;
}

int mqtt_parse(const uint8_t *buf, size_t len, int version, uint32_t max_packet,
               struct mqtt_packet *out)
{
    uint32_t hdr, total;
    int rc = frame(buf, len, max_packet, &hdr, &total);
    if (rc <= 0) return rc;
    if (len < total) return 0;

    uint8_t type = buf[0] >> 4, flags = buf[0] & 0x0F;
    bool v5 = version == MQTT_V5;
    out->type = type;
    out->flags = flags;
    out->remaining = total - hdr;
    struct mqtt_rd r = { buf, hdr, total };

    /* Fixed-header flags (MQTT 2.1.3): PUBLISH carries DUP/QoS/RETAIN, PUBREL/SUBSCRIBE/UNSUBSCRIBE
     * must be 0010, every other packet 0000. Type 0 is reserved; 15 (AUTH) is reserved before v5. */
    switch (type) {
    case MQTT_PUBLISH:
        break;
    case MQTT_PUBREL: case MQTT_SUBSCRIBE: case MQTT_UNSUBSCRIBE:
        MALFORMED_IF(flags != 0x2);
        break;
    case MQTT_CONNECT: case MQTT_CONNACK: case MQTT_PUBACK: case MQTT_PUBREC: case MQTT_PUBCOMP:
    case MQTT_SUBACK: case MQTT_UNSUBACK: case MQTT_PINGREQ: case MQTT_PINGRESP: case MQTT_DISCONNECT:
        MALFORMED_IF(flags != 0);
        break;
    case MQTT_AUTH:
        MALFORMED_IF(!v5 || flags != 0);
        break;
    default:
        return -MQTT_RC_MALFORMED;
    }

    switch (type) {
    case MQTT_CONNECT:      rc = parse_connect(&r, &out->u.connect); break;
    case MQTT_CONNACK:      rc = parse_connack(&r, v5, &out->u.connack); break;
    case MQTT_PUBLISH:      rc = parse_publish(&r, v5, flags, &out->u.publish); break;
    case MQTT_PUBACK: case MQTT_PUBREC: case MQTT_PUBREL: case MQTT_PUBCOMP:
        rc = parse_ack(&r, v5, type, &out->u.ack);
        break;
    case MQTT_SUBSCRIBE: case MQTT_UNSUBSCRIBE:
        rc = parse_subscribe(&r, v5, type, &out->u.subscribe);
        break;
    case MQTT_SUBACK: case MQTT_UNSUBACK:
        rc = parse_suback(&r, v5, type, &out->u.suback);
        break;
    case MQTT_PINGREQ: case MQTT_PINGRESP:
        rc = mqtt_rd_left(&r) ? -MQTT_RC_MALFORMED : 0;
        break;
    default:                /* DISCONNECT, AUTH */
        rc = parse_disconnect(&r, v5, type, &out->u.disconnect);
        break;
    }
    if (rc < 0) return rc;
    AU_ASSERT(r.pos == r.end);
    return (int)total;
}

bool mqtt_sub_next(const struct mqtt_subscribe *s, int version, bool is_unsub, uint32_t *off,
                   struct mqtt_sub_entry *e)
{
    if (*off >= s->list_len) return false;
    uint32_t left = s->list_len - *off;
    const uint8_t *p = s->list + *off;
    AU_ASSERT(left >= 2);
    uint16_t n = au_rd16(p);
    AU_ASSERT(left >= 2u + n + (is_unsub ? 0u : 1u));  /* the list was validated by mqtt_parse */
    e->filter.p = p + 2;
    e->filter.len = n;
    e->qos = 0;
    e->no_local = e->retain_as_published = false;
    e->retain_handling = 0;
    *off += 2u + n;
    if (!is_unsub) {
        uint8_t o = p[2 + n];
        (*off)++;
        e->qos = o & 3;
        if (version == MQTT_V5) {
            e->no_local = o & 0x04;
            e->retain_as_published = o & 0x08;
            e->retain_handling = (o >> 4) & 3;
        }
    }
    return true;
}
