/* deliver.c - PUBLISH encoding (once per variant per shard), session queues and in-flight windows. */
#include "gateway/mqtt/deliver.h"
#include "gateway/mqtt/persist.h"
#include "core/limits.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

#define COPY_MAX 512u  /* packets up to this size are copied into the connection's tail buffer */

/* ------------------------------------------------------------------ encoding */

static uint32_t expiry_left_s(const struct msg *m, uint64_t now_ms)
{
    if (m->expire_at <= now_ms) return 0;
    return (uint32_t)((m->expire_at - now_ms + 999) / 1000);
}

/* Build the whole PUBLISH into a new buffer; *head_len = bytes before the packet id. */
static struct au_buf *encode_publish(const struct msg *m, bool v5, uint8_t qos, bool retain, bool dup, uint16_t pid,
                                     const uint32_t *ids, uint8_t n_ids, uint64_t now_ms, uint32_t *head_len)
{
    uint32_t inner = 0;
    if (v5) {
        if (m->expire_at) inner += 5;
        inner += m->props_len;
        for (uint8_t i = 0; i < n_ids; i++) inner += 1 + (uint32_t)mqtt_varint_size(ids[i]);
    }
    uint32_t block = v5 ? (uint32_t)mqtt_varint_size(inner) + inner : 0;
    uint32_t tail = (qos ? 2u : 0u) + block + m->payload_len;
    size_t hsz = mqtt_publish_head_size(msg_wire_len(m), tail);
    struct au_buf *b = au_buf_new((uint32_t)hsz + tail);
    uint8_t *p = b->data;
    size_t h = mqtt_enc_publish_head(p, hsz, qos, retain, dup, msg_wire_topic(m), msg_wire_len(m), tail);
    AU_ASSERT(h == hsz);
    p += h;
    if (qos) {
        au_wr16(p, pid);
        p += 2;
    }
    if (v5) {
        p += mqtt_varint_write(p, inner);
        if (m->expire_at) {
            *p++ = MQTT_PROP_MESSAGE_EXPIRY;
            au_wr32(p, expiry_left_s(m, now_ms));
            p += 4;
        }
        memcpy(p, msg_props(m), m->props_len);
        p += m->props_len;
        for (uint8_t i = 0; i < n_ids; i++) {
            *p++ = MQTT_PROP_SUB_ID;
            p += mqtt_varint_write(p, ids[i]);
        }
    }
    memcpy(p, msg_payload(m), m->payload_len);
    p += m->payload_len;
    b->len = (uint32_t)(p - b->data);
    AU_ASSERT(b->len == hsz + tail);
    *head_len = (uint32_t)h;
    return b;
}

void deliver_begin(struct broker *b, struct msg *m)
{
    b->dc.m = m;
    b->dc.now_ms = b->shard->now_ms;
}

void deliver_end(struct broker *b)
{
    struct deliver_cache *dc = &b->dc;
    for (int v = 0; v < 2; v++)
        for (int q = 0; q < 3; q++)
            for (int r = 0; r < 2; r++)
                if (dc->v[v][q][r]) {
                    au_buf_unref(dc->v[v][q][r]);
                    dc->v[v][q][r] = NULL;
                }
    dc->m = NULL;
}

static void write_packet(struct au_conn *c, struct au_buf *buf, uint32_t head, bool has_pid, uint16_t pid)
{
    uint32_t total = buf->len;
    if (total <= COPY_MAX) {
        /* Small packets are copied once, straight into the connection's tail buffer, pid patched in place. */
        uint8_t *p = au_conn_reserve(c, total);
        if (p) {
            memcpy(p, buf->data, total);
            if (has_pid) au_wr16(p + head, pid);
            return;
        }
        if (!c->tp->encode) return; /* closing: dropped like any write */
        uint8_t tmp[COPY_MAX];
        memcpy(tmp, buf->data, total);
        if (has_pid) au_wr16(tmp + head, pid);
        au_conn_write(c, tmp, total);
    } else if (!has_pid) {
        au_conn_write_buf(c, buf, 0, total);
    } else {
        uint8_t hp[AU_MQTT_MAX_TOPIC + 16];
        if (head + 2 <= sizeof hp) {
            memcpy(hp, buf->data, head);
            au_wr16(hp + head, pid);
            au_conn_write(c, hp, head + 2);
        } else {
            au_conn_write(c, buf->data, head);
            uint8_t id[2];
            au_wr16(id, pid);
            au_conn_write(c, id, 2);
        }
        au_conn_write_buf(c, buf, head + 2, total - head - 2);
    }
}

bool send_publish(struct broker *b, struct mqtt_conn *mc, struct msg *m, uint8_t qos, bool retain, bool dup,
                  uint16_t pid, const uint32_t *ids, uint8_t n_ids)
{
    bool v5 = mc->version == MQTT_V5;
    struct au_buf *buf;
    uint32_t head;
    bool cached = b->dc.m == m && !dup && n_ids == 0;
    if (cached) {
        struct au_buf **slot = &b->dc.v[v5][qos][retain];
        if (!*slot) *slot = encode_publish(m, v5, qos, retain, false, 0, NULL, 0, b->dc.now_ms, &b->dc.head[v5][qos][retain]);
        buf = *slot;
        head = b->dc.head[v5][qos][retain];
    } else {
        buf = encode_publish(m, v5, qos, retain, dup, pid, ids, n_ids, b->shard->now_ms, &head);
    }
    bool ok = !(mc->client_max_packet && buf->len > mc->client_max_packet);
    if (ok) {
        write_packet(mc->conn, buf, head, qos > 0, pid);
        BS_INC(b, deliveries);
        if (qos == 0) BS_INC(b, deliveries_qos0);
        else if (qos == 1) BS_INC(b, deliveries_qos1);
        else BS_INC(b, deliveries_qos2);
    } else {
        BS_INC(b, dropped_too_large);
    }
    if (!cached) au_buf_unref(buf);
    return ok;
}

void send_ack(struct mqtt_conn *mc, uint8_t type, uint16_t pid, uint8_t reason, const char *reason_str)
{
    if (!(mc->version == MQTT_V5 && reason_str && mc->req_problem_info)) {
        /* No properties (the common case, one per QoS 1/2 message): the 4- or 5-byte packet, written in place
         * (same bytes as mqtt_enc_ack: 3.1.1 has no reason code; MQTT 5 omits a success one). */
        AU_ASSERT(type >= MQTT_PUBACK && type <= MQTT_PUBCOMP && pid != 0);
        bool rc = mc->version == MQTT_V5 && reason != MQTT_RC_SUCCESS;
        uint8_t out[5] = { (uint8_t)(type << 4 | (type == MQTT_PUBREL ? 2 : 0)), rc ? 3 : 2, (uint8_t)(pid >> 8),
                           (uint8_t)pid, reason };
        au_conn_write(mc->conn, out, rc ? 5u : 4u);
        return;
    }
    uint8_t out[512];
    struct mqtt_props pr;
    memset(&pr, 0, sizeof pr);
    if (mc->version == MQTT_V5 && reason_str && mc->req_problem_info) {
        pr.present = MQTT_PBIT(MQTT_PROP_REASON_STRING);
        pr.reason_string.p = (const uint8_t *)reason_str;
        pr.reason_string.len = (uint16_t)strlen(reason_str);
    }
    size_t n = mqtt_enc_ack(out, sizeof out, mc->version, type, pid, reason, &pr);
    AU_ASSERT(n > 0);
    au_conn_write(mc->conn, out, n);
}

/* ------------------------------------------------------------------ sessions' outgoing queues */

void outmsg_free(struct outmsg *om)
{
    persist_undefer(om);
    msg_unref(om->m);
    free(om->sub_ids);
    free(om);
}

static uint32_t session_window(const struct broker *b, const struct mqtt_conn *mc)
{
    uint32_t window = mc->client_recv_max;
    return window > b->cfg->max_inflight ? b->cfg->max_inflight : window;
}

static bool expired(const struct msg *m, uint64_t now)
{
    return m->expire_at && m->expire_at <= now;
}

void session_deliver(struct broker *b, struct session *s, struct msg *m, uint8_t qos, bool retain, const uint32_t *ids,
                     uint8_t n_ids)
{
    if (expired(m, b->shard->now_ms)) {
        BS_INC(b, dropped_expired);
        return;
    }
    struct mqtt_conn *mc = s->mc;
    bool online = mc && mc->state == MC_CONNECTED;
    if (qos == 0) {
        if (!online) return; /* QoS 0 is not queued for offline sessions */
        uint32_t budget = b->cfg->send_queue_bytes < AU_QOS0_QUEUE_BYTES ? b->cfg->send_queue_bytes : AU_QOS0_QUEUE_BYTES;
        if (au_conn_queued(mc->conn) > budget) {
            BS_INC(b, dropped_qos0_slow); /* slow consumer: QoS 0 is dropped, never buffered without bound */
            return;
        }
        send_publish(b, mc, m, 0, retain, false, 0, ids, n_ids);
        return;
    }
    if (m->ext) {
        /* An extension's messages are never dropped from a queue (ext.h): for IM a dropped one would be skipped
         * for good once a later one of its conversation is acknowledged (the cursor). A device that falls this
         * far behind is disconnected instead; everything not acknowledged comes back by replay at its next login. */
        if (online && s->queued >= AU_EXT_QUEUE_HARD_MAX) {
            BS_INC(b, dropped_queue_full);
            mqtt_protocol_close(mc, MQTT_RC_QUOTA_EXCEEDED, "too far behind: reconnect to catch up");
            return;
        }
        if (!online) return; /* offline devices get them by the extension's replay */
    } else if (s->queued >= b->cfg->max_queued_msgs) {
        BS_INC(b, dropped_queue_full);
        return;
    }
    struct outmsg *om = calloc(1, sizeof *om);
    AU_ASSERT(om != NULL);
    om->m = msg_ref(m);
    om->qos = qos;
    om->retain = retain;
    if (n_ids) {
        om->sub_ids = malloc(sizeof(uint32_t) * n_ids);
        AU_ASSERT(om->sub_ids != NULL);
        memcpy(om->sub_ids, ids, sizeof(uint32_t) * n_ids);
        om->n_sub_ids = n_ids;
    }
    /* Goes out now (session_pump below sends it): nothing queued before it, room in the window and the
     * send queue. Then its store write may wait for the subscriber's PUBACK (persist_defer). */
    bool now = online && !s->q_head && s->inflight < session_window(b, mc) &&
               au_conn_queued(mc->conn) <= b->cfg->send_queue_bytes;
    if (s->q_tail) s->q_tail->next = om;
    else s->q_head = om;
    s->q_tail = om;
    s->queued++;
    if (!m->ext && !(now && persist_defer(b, s, om))) persist_out_add(b, s, om); /* ext: replayed by the extension */
    if (online) session_pump(b, s);
}

static bool pid_in_use(const struct session *s, uint16_t pid)
{
    for (const struct outmsg *o = s->if_head; o; o = o->next)
        if (o->pid == pid) return true;
    return false;
}

static uint16_t next_pid(struct session *s)
{
    for (;;) {
        if (++s->next_pid == 0) s->next_pid = 1;
        if (!s->inflight || !pid_in_use(s, s->next_pid)) return s->next_pid;
    }
}

void session_pump(struct broker *b, struct session *s)
{
    struct mqtt_conn *mc = s->mc;
    if (!mc || mc->state != MC_CONNECTED) return;
    uint32_t window = session_window(b, mc);
    while (s->q_head && s->inflight < window && au_conn_queued(mc->conn) <= b->cfg->send_queue_bytes) {
        struct outmsg *om = s->q_head;
        s->q_head = om->next;
        if (!s->q_head) s->q_tail = NULL;
        om->next = NULL;
        s->queued--;
        if (expired(om->m, b->shard->now_ms)) {
            BS_INC(b, dropped_expired);
            persist_out_del(b, s, om);
            outmsg_free(om);
            continue;
        }
        om->pid = next_pid(s);
        om->state = om->qos == 1 ? OUT_WAIT_PUBACK : OUT_WAIT_PUBREC;
        if (!send_publish(b, mc, om->m, om->qos, om->retain, false, om->pid, om->sub_ids, om->n_sub_ids)) {
            persist_out_del(b, s, om);
            outmsg_free(om);
            continue;
        }
        if (s->if_tail) s->if_tail->next = om;
        else s->if_head = om;
        s->if_tail = om;
        s->inflight++;
    }
}

void session_resend_inflight(struct broker *b, struct session *s)
{
    struct mqtt_conn *mc = s->mc;
    for (struct outmsg *o = s->if_head; o; o = o->next) {
        if (o->state == OUT_WAIT_PUBCOMP) send_ack(mc, MQTT_PUBREL, o->pid, MQTT_RC_SUCCESS, NULL);
        else send_publish(b, mc, o->m, o->qos, o->retain, true, o->pid, o->sub_ids, o->n_sub_ids);
    }
}
