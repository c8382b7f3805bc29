/* codec_internal.h - shared by codec.c, codec_parse.c and codec_enc.c only (not a public API).
 *
 * A reader is a bounded cursor over one packet: every read checks `end - pos` first and fails with
 * -MQTT_RC_MALFORMED when the field does not fit, so no parser can read past a packet's end. */
#ifndef AU_MQTT_CODEC_INTERNAL_H
#define AU_MQTT_CODEC_INTERNAL_H

#include <string.h>

#include "gateway/mqtt/codec.h"

/* Property contexts: a packet type (1..15), or this one for the will properties of a CONNECT. */
#define MQTT_PCTX_WILL 0u

struct mqtt_rd {
    const uint8_t *b;
    uint32_t pos, end;               /* invariant: pos <= end */
};

static inline uint32_t mqtt_rd_left(const struct mqtt_rd *r) { return r->end - r->pos; }

static inline int mqtt_rd_u8(struct mqtt_rd *r, uint8_t *v)
{
    if (mqtt_rd_left(r) < 1) return -MQTT_RC_MALFORMED;
    *v = r->b[r->pos++];
    return 0;
}

static inline int mqtt_rd_u16(struct mqtt_rd *r, uint16_t *v)
{
    if (mqtt_rd_left(r) < 2) return -MQTT_RC_MALFORMED;
    *v = au_rd16(r->b + r->pos);
    r->pos += 2;
    return 0;
}

static inline int mqtt_rd_u32(struct mqtt_rd *r, uint32_t *v)
{
    if (mqtt_rd_left(r) < 4) return -MQTT_RC_MALFORMED;
    *v = au_rd32(r->b + r->pos);
    r->pos += 4;
    return 0;
}

/* Decode a variable byte integer from p[0..len): returns the bytes used (1..4), 0 when len ends
 * inside it, -MQTT_RC_MALFORMED for a fifth byte or a non-minimal encoding (MQTT-1.5.5-1). */
static inline int mqtt_varint_decode(const uint8_t *p, size_t len, uint32_t *v)
{
    uint32_t val = 0;
    for (unsigned i = 0; i < 4; i++) {
        if (i >= len) return 0;
        uint8_t byte = p[i];
        val |= (uint32_t)(byte & 0x7f) << (7 * i);
        if (!(byte & 0x80)) {
            if (i > 0 && byte == 0) return -MQTT_RC_MALFORMED;
            *v = val;
            return (int)i + 1;
        }
    }
    return -MQTT_RC_MALFORMED;
}

static inline int mqtt_rd_varint(struct mqtt_rd *r, uint32_t *v)
{
    int n = mqtt_varint_decode(r->b + r->pos, mqtt_rd_left(r), v);
    if (n <= 0) return -MQTT_RC_MALFORMED;   /* inside a packet, "need more" is a truncation */
    r->pos += (uint32_t)n;
    return 0;
}

/* Two-byte length + bytes; not UTF-8 checked. */
static inline int mqtt_rd_bin(struct mqtt_rd *r, struct mqtt_bin *v)
{
    uint16_t n;
    if (mqtt_rd_u16(r, &n) < 0 || mqtt_rd_left(r) < n) return -MQTT_RC_MALFORMED;
    v->p = r->b + r->pos;
    v->len = n;
    r->pos += n;
    return 0;
}

/* UTF-8 Encoded String (MQTT 1.5.4): two-byte length + well-formed UTF-8 without U+0000. */
static inline int mqtt_rd_str(struct mqtt_rd *r, struct mqtt_str *v)
{
    uint16_t n;
    if (mqtt_rd_u16(r, &n) < 0 || mqtt_rd_left(r) < n) return -MQTT_RC_MALFORMED;
    v->p = r->b + r->pos;
    v->len = n;
    r->pos += n;
    return mqtt_utf8_valid(v->p, n) ? 0 : -MQTT_RC_MALFORMED;
}

/* True when a topic name / filter contains a wildcard character. */
static inline bool mqtt_has_wildcard(const uint8_t *p, size_t len)
{
    return len && (memchr(p, '+', len) || memchr(p, '#', len));
}

/* An empty property set (what a packet without a property block carries). */
static inline void mqtt_props_clear(struct mqtt_props *p)
{
    p->present = 0;
    p->n_user = 0;
    p->n_sub_ids = 0;
    p->raw = NULL;
    p->raw_len = 0;
}

/* Read a property block (length varint + properties) valid in context `ctx` into `p`. */
int mqtt_rd_props(struct mqtt_rd *r, unsigned ctx, struct mqtt_props *p);

/* Encoding side. */
bool mqtt_props_empty(const struct mqtt_props *p);             /* NULL or nothing to write */
bool mqtt_props_allowed(const struct mqtt_props *p, unsigned ctx); /* all marked props valid in ctx */

#endif
