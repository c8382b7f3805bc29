/* codec_enc.c - MQTT 3.1 / 3.1.1 / 5.0 packet encoders. Each computes its exact size first and
 * returns 0 without writing anything when `cap` is too small. Arguments the caller controls
 * (QoS range, packet id 0, properties not allowed in the packet, counts) are asserted. */
#include "gateway/mqtt/codec_internal.h"

/* Whole packet size for a remaining length (64-bit so that sums of caller lengths cannot wrap). */
static size_t packet_size(uint64_t rem)
{
    AU_ASSERT(rem <= MQTT_VARINT_MAX);
    return 1 + mqtt_varint_size((uint32_t)rem) + (size_t)rem;
}

static uint8_t *wr_fixed(uint8_t *o, uint8_t b0, uint64_t rem)
{
    o[0] = b0;
    return o + 1 + mqtt_varint_write(o + 1, (uint32_t)rem);
}

static uint8_t *wr_data(uint8_t *o, const void *p, size_t n)
{
    AU_ASSERT(n <= 65535);
    au_wr16(o, (uint16_t)n);
    if (n) memcpy(o + 2, p, n);
    return o + 2 + n;
}

static uint8_t *wr_props(uint8_t *o, const struct mqtt_props *p, size_t psz)
{
    size_t n = mqtt_props_write(o, psz, p);
    AU_ASSERT(n == psz);
    return o + n;
}

/* ---------------- PUBLISH ---------------- */

size_t mqtt_publish_head_size(uint16_t topic_len, uint32_t tail_len)
{
    uint64_t rem = 2u + (uint64_t)topic_len + tail_len;
    return packet_size(rem) - tail_len;
}

size_t mqtt_enc_publish_head(uint8_t *out, size_t cap, uint8_t qos, bool retain, bool dup,
                             const uint8_t *topic, uint16_t topic_len, uint32_t tail_len)
{
    AU_ASSERT(qos <= 2);
    size_t size = mqtt_publish_head_size(topic_len, tail_len);
    if (cap < size) return 0;
    uint8_t b0 = (uint8_t)(MQTT_PUBLISH << 4 | (dup ? 8 : 0) | qos << 1 | (retain ? 1 : 0));
    uint8_t *o = wr_fixed(out, b0, 2u + (uint64_t)topic_len + tail_len);
    o = wr_data(o, topic, topic_len);
    AU_ASSERT((size_t)(o - out) == size);
    return size;
}

static uint64_t publish_tail(int version, uint8_t qos, const struct mqtt_props *props, uint32_t payload_len)
{
    return (qos ? 2u : 0u) + (version == MQTT_V5 ? mqtt_props_size(props) : 0u) + (uint64_t)payload_len;
}

size_t mqtt_publish_size(int version, uint8_t qos, uint16_t topic_len, const struct mqtt_props *props,
                         uint32_t payload_len)
{
    uint64_t tail = publish_tail(version, qos, props, payload_len);
    return packet_size(2u + topic_len + tail);
}

size_t mqtt_enc_publish(uint8_t *out, size_t cap, int version, uint8_t qos, bool retain, bool dup,
                        uint16_t packet_id, const uint8_t *topic, uint16_t topic_len,
                        const struct mqtt_props *props, const uint8_t *payload, uint32_t payload_len)
{
    bool v5 = version == MQTT_V5;
    AU_ASSERT(qos <= 2 && (qos == 0 || packet_id != 0));
    AU_ASSERT(!v5 || mqtt_props_allowed(props, MQTT_PUBLISH));
    uint64_t tail = publish_tail(version, qos, props, payload_len);
    size_t size = packet_size(2u + topic_len + tail);
    if (cap < size) return 0;
    uint8_t *o = out + mqtt_enc_publish_head(out, cap, qos, retain, dup, topic, topic_len, (uint32_t)tail);
    if (qos) {
        au_wr16(o, packet_id);
        o += 2;
    }
    if (v5) o = wr_props(o, props, mqtt_props_size(props));
    if (payload_len) memcpy(o, payload, payload_len);
    o += payload_len;
    AU_ASSERT((size_t)(o - out) == size);
    return size;
}

/* ---------------- acknowledgements ---------------- */

size_t mqtt_enc_connack(uint8_t *out, size_t cap, int version, bool session_present, uint8_t reason,
                        const struct mqtt_props *props)
{
    if (version != MQTT_V5) {
        uint8_t code = mqtt_v3_connack_code(reason);
        if (cap < 4) return 0;
        out[0] = MQTT_CONNACK << 4;
        out[1] = 2;
        out[2] = (session_present && code == MQTT3_ACCEPTED) ? 1 : 0;   /* [MQTT-3.2.2-4] */
        out[3] = code;
        return 4;
    }
    AU_ASSERT(mqtt_props_allowed(props, MQTT_CONNACK));
    size_t psz = mqtt_props_size(props);
    size_t size = packet_size(2u + psz);
    if (cap < size) return 0;
    uint8_t *o = wr_fixed(out, MQTT_CONNACK << 4, 2u + psz);
    *o++ = (session_present && reason < 0x80) ? 1 : 0;                  /* [MQTT-3.2.2-6] */
    *o++ = reason;
    o = wr_props(o, props, psz);
    AU_ASSERT((size_t)(o - out) == size);
    return size;
}

size_t mqtt_enc_ack(uint8_t *out, size_t cap, int version, uint8_t type, uint16_t packet_id,
                    uint8_t reason, const struct mqtt_props *props)
{
    AU_ASSERT(type >= MQTT_PUBACK && type <= MQTT_PUBCOMP && packet_id != 0);
    uint8_t b0 = (uint8_t)(type << 4 | (type == MQTT_PUBREL ? 2 : 0));
    size_t psz = 0, rem = 2;
    if (version == MQTT_V5) {
        AU_ASSERT(mqtt_props_allowed(props, type));
        if (!mqtt_props_empty(props)) {
            psz = mqtt_props_size(props);
            rem = 3 + psz;
        } else if (reason != MQTT_RC_SUCCESS) {
            rem = 3;
        }
    }
    size_t size = packet_size(rem);
    if (cap < size) return 0;
    uint8_t *o = wr_fixed(out, b0, rem);
    au_wr16(o, packet_id);
    o += 2;
    if (rem > 2) *o++ = reason;
    if (psz) o = wr_props(o, props, psz);
    AU_ASSERT((size_t)(o - out) == size);
    return size;
}

size_t mqtt_enc_suback(uint8_t *out, size_t cap, int version, uint8_t type, uint16_t packet_id,
                       const uint8_t *codes, uint32_t n, const struct mqtt_props *props)
{
    AU_ASSERT((type == MQTT_SUBACK || type == MQTT_UNSUBACK) && packet_id != 0);
    bool v5 = version == MQTT_V5;
    if (!v5 && type == MQTT_UNSUBACK) n = 0;      /* 3.1.1 UNSUBACK has no payload */
    else AU_ASSERT(n > 0);
    AU_ASSERT(!v5 || mqtt_props_allowed(props, type));
    size_t psz = v5 ? mqtt_props_size(props) : 0;
    uint64_t rem = 2u + psz + (uint64_t)n;
    size_t size = packet_size(rem);
    if (cap < size) return 0;
    uint8_t *o = wr_fixed(out, (uint8_t)(type << 4), rem);
    au_wr16(o, packet_id);
    o += 2;
    if (v5) o = wr_props(o, props, psz);
    if (n) memcpy(o, codes, n);
    o += n;
    AU_ASSERT((size_t)(o - out) == size);
    return size;
}

static size_t enc_empty(uint8_t *out, size_t cap, uint8_t type)
{
    if (cap < 2) return 0;
    out[0] = (uint8_t)(type << 4);
    out[1] = 0;
    return 2;
}

size_t mqtt_enc_pingresp(uint8_t *out, size_t cap) { return enc_empty(out, cap, MQTT_PINGRESP); }
size_t mqtt_enc_pingreq(uint8_t *out, size_t cap) { return enc_empty(out, cap, MQTT_PINGREQ); }

size_t mqtt_enc_disconnect(uint8_t *out, size_t cap, int version, uint8_t type, uint8_t reason,
                           const struct mqtt_props *props)
{
    AU_ASSERT(type == MQTT_DISCONNECT || (type == MQTT_AUTH && version == MQTT_V5));
    if (version != MQTT_V5) return enc_empty(out, cap, type);
    AU_ASSERT(mqtt_props_allowed(props, type));
    size_t psz = 0, rem = 0;
    if (!mqtt_props_empty(props)) {
        psz = mqtt_props_size(props);
        rem = 1 + psz;
    } else if (reason != MQTT_RC_SUCCESS) {
        rem = 1;
    }
    size_t size = packet_size(rem);
    if (cap < size) return 0;
    uint8_t *o = wr_fixed(out, (uint8_t)(type << 4), rem);
    if (rem) *o++ = reason;
    if (psz) o = wr_props(o, props, psz);
    AU_ASSERT((size_t)(o - out) == size);
    return size;
}

/* ---------------- client side ---------------- */

static size_t cstr_len(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    AU_ASSERT(n <= 65535);
    return n;
}

size_t mqtt_enc_connect(uint8_t *out, size_t cap, const struct mqtt_connect_opts *c)
{
    AU_ASSERT(c->version == MQTT_V31 || c->version == MQTT_V311 || c->version == MQTT_V5);
    bool v5 = c->version == MQTT_V5, will = c->will_topic != NULL;
    const char *name = c->version == MQTT_V31 ? "MQIsdp" : "MQTT";
    size_t name_len = strlen(name), cid_len = cstr_len(c->client_id), wt_len = cstr_len(c->will_topic);
    size_t user_len = cstr_len(c->username), pass_len = cstr_len(c->password);
    size_t psz = 0, wpsz = 0;
    if (v5) {
        AU_ASSERT(mqtt_props_allowed(c->props, MQTT_CONNECT));
        psz = mqtt_props_size(c->props);
        if (will) {
            AU_ASSERT(mqtt_props_allowed(c->will_props, MQTT_PCTX_WILL));
            wpsz = mqtt_props_size(c->will_props);
        }
    }
    AU_ASSERT(!will || (c->will_qos <= 2 && c->will_payload_len <= 65535));
    uint64_t rem = 2u + name_len + 1 + 1 + 2 + psz + 2 + cid_len;
    if (will) rem += wpsz + 2 + wt_len + 2 + c->will_payload_len;
    if (c->username) rem += 2 + user_len;
    if (c->password) rem += 2 + pass_len;
    size_t size = packet_size(rem);
    if (cap < size) return 0;

    uint8_t flags = (uint8_t)((c->username ? 0x80 : 0) | (c->password ? 0x40 : 0) | (c->clean_start ? 0x02 : 0));
    if (will) flags |= (uint8_t)(0x04 | c->will_qos << 3 | (c->will_retain ? 0x20 : 0));
    uint8_t *o = wr_fixed(out, MQTT_CONNECT << 4, rem);
    o = wr_data(o, name, name_len);
    *o++ = c->version;
    *o++ = flags;
    au_wr16(o, c->keepalive);
    o += 2;
    if (v5) o = wr_props(o, c->props, psz);
    o = wr_data(o, c->client_id, cid_len);
    if (will) {
        if (v5) o = wr_props(o, c->will_props, wpsz);
        o = wr_data(o, c->will_topic, wt_len);
        o = wr_data(o, c->will_payload, c->will_payload_len);
    }
    if (c->username) o = wr_data(o, c->username, user_len);
    if (c->password) o = wr_data(o, c->password, pass_len);
    AU_ASSERT((size_t)(o - out) == size);
    return size;
}

size_t mqtt_enc_subscribe(uint8_t *out, size_t cap, int version, uint8_t type, uint16_t packet_id,
                          const struct mqtt_sub_entry *e, uint32_t n, const struct mqtt_props *props)
{
    AU_ASSERT((type == MQTT_SUBSCRIBE || type == MQTT_UNSUBSCRIBE) && packet_id != 0 && n > 0);
    bool v5 = version == MQTT_V5, sub = type == MQTT_SUBSCRIBE;
    AU_ASSERT(!v5 || mqtt_props_allowed(props, type));
    size_t psz = v5 ? mqtt_props_size(props) : 0;
    uint64_t rem = 2u + psz;
    for (uint32_t i = 0; i < n; i++) rem += 2u + e[i].filter.len + (sub ? 1u : 0u);
    size_t size = packet_size(rem);
    if (cap < size) return 0;
    uint8_t *o = wr_fixed(out, (uint8_t)(type << 4 | 2), rem);
    au_wr16(o, packet_id);
    o += 2;
    if (v5) o = wr_props(o, props, psz);
    for (uint32_t i = 0; i < n; i++) {
        o = wr_data(o, e[i].filter.p, e[i].filter.len);
        if (sub) {
            AU_ASSERT(e[i].qos <= 2 && e[i].retain_handling <= 2);
            uint8_t opt = e[i].qos;
            if (v5)
                opt |= (uint8_t)((e[i].no_local ? 0x04 : 0) | (e[i].retain_as_published ? 0x08 : 0)
                                 | e[i].retain_handling << 4);
            *o++ = opt;
        }
    }
    AU_ASSERT((size_t)(o - out) == size);
    return size;
}
