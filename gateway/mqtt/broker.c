/* broker.c - per-shard broker state, messages, cross-shard fan-out, the broker's lifecycle steps and metrics. */
#include "gateway/mqtt/broker.h"
#include "gateway/mqtt/deliver.h"
#include "gateway/mqtt/handle.h"
#include "gateway/mqtt/ext.h"
#include "gateway/mqtt/session.h"
#include "gateway/mqtt/shared.h"
#include "gateway/mqtt/persist.h"
#include "gateway/metrics.h"
#include "gateway/services.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct broker *broker_of(struct au_shard *s) { return s->slot.broker; }

/* Owner shard of a client identity. A fixed seed (not the per-process table seed) so every shard
 * computes the same owner. */
int broker_owner_shard(const struct broker *b, uint32_t app, const uint8_t *cid, size_t len)
{
    if (b->shard->nshards == 1) return 0;
    uint64_t h = XXH3_64bits_withSeed(cid, len, 0x9e3779b97f4a7c15ull ^ app);
    return (int)(h % (uint64_t)b->shard->nshards);
}

/* ------------------------------------------------------------------ messages */

struct msg *msg_new(uint32_t app, const uint8_t *topic, uint16_t topic_len, const struct mqtt_props *props,
                    const uint8_t *payload, uint32_t payload_len, uint8_t qos, bool retain, uint64_t origin,
                    uint64_t now_ms)
{
    /* Properties forwarded unchanged to subscribers (MQTT 5 3.3.2.3). */
    struct mqtt_props fwd;
    memset(&fwd, 0, sizeof fwd);
    uint64_t expire_at = 0;
    if (props) {
        const uint64_t keep = MQTT_PBIT(MQTT_PROP_PAYLOAD_FORMAT) | MQTT_PBIT(MQTT_PROP_CONTENT_TYPE) |
                              MQTT_PBIT(MQTT_PROP_RESPONSE_TOPIC) | MQTT_PBIT(MQTT_PROP_CORRELATION_DATA);
        fwd.present = props->present & keep;
        fwd.payload_format = props->payload_format;
        fwd.content_type = props->content_type;
        fwd.response_topic = props->response_topic;
        fwd.correlation_data = props->correlation_data;
        fwd.n_user = props->n_user;
        if (props->n_user) fwd.present |= MQTT_PBIT(MQTT_PROP_USER);
        memcpy(fwd.user, props->user, sizeof(fwd.user[0]) * props->n_user);
        if (props->present & MQTT_PBIT(MQTT_PROP_MESSAGE_EXPIRY))
            expire_at = now_ms + (uint64_t)props->message_expiry * 1000u;
    }
    /* Encode the forwarded block once; keep it without its length prefix. */
    uint8_t tmp[512];
    uint8_t *w = tmp;
    uint32_t inner = 0, vlen = 0;
    if (fwd.present) {
        size_t block = mqtt_props_size(&fwd);
        if (block > sizeof tmp) w = malloc(block);
        AU_ASSERT(w != NULL);
        size_t n = mqtt_props_write(w, block, &fwd);
        AU_ASSERT(n == block);
        vlen = 1;
        while (vlen < 4 && (w[vlen - 1] & 0x80)) vlen++;
        inner = (uint32_t)n - vlen;
    }
    struct msg *m = msg_new_raw(app, topic, topic_len, inner ? w + vlen : NULL, inner, payload, payload_len, qos, retain, origin,
                                expire_at);
    if (w != tmp) free(w);
    return m;
}

struct msg *msg_new_raw(uint32_t app, const uint8_t *topic, uint16_t topic_len, const uint8_t *props,
                        uint32_t props_len, const uint8_t *payload, uint32_t payload_len, uint8_t qos, bool retain,
                        uint64_t origin, uint64_t expire_at)
{
    struct msg *m = malloc(sizeof *m + topic_len + props_len + payload_len);
    AU_ASSERT(m != NULL);
    atomic_init(&m->refs, 1);
    m->app = app;
    m->origin = origin;
    m->expire_at = expire_at;
    m->seq = 0;
    m->picks = NULL;
    m->ticket = NULL;
    m->wire_topic = NULL;
    m->wire_len = 0;
    m->ext_data[0] = m->ext_data[1] = 0;
    m->ext = 0;
    m->payload_len = payload_len;
    m->props_len = props_len;
    m->topic_len = topic_len;
    m->qos = qos;
    m->retain = retain;
    memcpy(m->data, topic, topic_len);
    if (props_len) memcpy(m->data + topic_len, props, props_len);
    if (payload_len) memcpy(m->data + topic_len + props_len, payload, payload_len);
    return m;
}

void msg_unref(struct msg *m)
{
    if (!m) return;
    unsigned prev = atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel);
    AU_ASSERT(prev > 0);
    if (prev == 1) {
        free(m->picks);
        free(m);
    }
}

static void retained_release(void *ctx, void *msg)
{
    (void)ctx;
    msg_unref(msg);
}

size_t msg_retained_bytes(const void *msg)
{
    const struct msg *m = msg;
    return (size_t)m->topic_len + m->props_len + m->payload_len;
}

/* ------------------------------------------------------------------ fan-out */

struct fan_x {
    struct au_xmsg x;
    struct msg *m;
};

static void fan_handler(struct au_shard *self, struct au_xmsg *x)
{
    struct fan_x *f = (struct fan_x *)x;
    broker_deliver_local(broker_of(self), f->m);
    msg_unref(f->m);
    free(f);
}

static void fan_dispose(struct au_xmsg *x)
{
    struct fan_x *f = (struct fan_x *)x;
    msg_unref(f->m);
    free(f);
}

void broker_publish(struct broker *b, struct msg *m)
{
    struct au_shard *s = b->shard;
    m->seq = ((uint64_t)s->id << 48) | ++b->next_seq;
    BS_INC(b, pub_in);
    BS_ADD(b, pub_in_bytes, m->payload_len);
    shared_pick(b, m); /* before the message is shared: it is immutable afterwards */
    for (int i = 0; i < s->nshards; i++) {
        if (i == s->id) continue;
        struct fan_x *f = malloc(sizeof *f);
        AU_ASSERT(f != NULL);
        f->x.handler = fan_handler;
        f->m = msg_ref(m);
        au_shard_post_disposable(s, i, &f->x, fan_dispose);
    }
    broker_deliver_local(b, m);
}

static struct fan_target *fan_push(struct broker *b)
{
    if (b->fan_n == b->fan_cap) {
        b->fan_cap = b->fan_cap ? b->fan_cap * 2 : 256;
        b->fan = realloc(b->fan, sizeof *b->fan * b->fan_cap);
        AU_ASSERT(b->fan != NULL);
    }
    return &b->fan[b->fan_n++];
}

struct match_ctx {
    struct broker *b;
    struct msg *m;
};

static void add_target(struct broker *b, struct msg *m, const struct sub_entry *e)
{
    struct session *s = e->session;
    if (e->opts.no_local && s->uid == m->origin) return;
    struct fan_target *t;
    if (s->mark_seq == m->seq && s->mark_idx < b->fan_n && b->fan[s->mark_idx].s == s) {
        t = &b->fan[s->mark_idx];
        if (e->opts.qos > t->qos) t->qos = e->opts.qos;
        t->rap |= e->opts.retain_as_published;
    } else {
        s->mark_seq = m->seq;
        s->mark_idx = b->fan_n;
        t = fan_push(b);
        t->s = s;
        t->qos = e->opts.qos;
        t->rap = e->opts.retain_as_published;
        t->n_ids = 0;
    }
    if (e->opts.sub_id && t->n_ids < AU_MQTT_MAX_SUB_IDS) t->ids[t->n_ids++] = e->opts.sub_id;
}

static void on_sub(void *ctx, const struct sub_entry *e)
{
    struct match_ctx *mc = ctx;
    add_target(mc->b, mc->m, e);
}

static void on_share(void *ctx, const uint8_t *share, size_t share_len, const uint8_t *filter, size_t filter_len,
                     const struct sub_entry *members, size_t n)
{
    struct match_ctx *mc = ctx;
    if (!shared_choose_here(mc->b, mc->m, share, share_len, filter, filter_len)) return;
    /* One member of the group: rotate from the message sequence, preferring an online member with room. */
    size_t start = (size_t)(mc->m->seq % n);
    for (size_t k = 0; k < n; k++) {
        const struct sub_entry *e = &members[(start + k) % n];
        struct session *s = e->session;
        if (s->mc && s->mc->state == MC_CONNECTED) {
            add_target(mc->b, mc->m, e);
            return;
        }
    }
    add_target(mc->b, mc->m, &members[start]);
}

/* ------------------------------------------------------------------ durable acknowledgements */

/* The acknowledgement of something that could not be stored. An MQTT 5 PUBACK/PUBREC carries the refusal
 * (0x80 unspecified error: the client may publish again; a PUBREC >= 0x80 also ends that QoS 2 exchange). A
 * 3.1.1 PUBACK/PUBREC has no failure code and a SUBACK/UNSUBACK written ahead cannot carry one: the connection
 * is closed instead (DISCONNECT 0x80 first on 5.0), so the client publishes or subscribes again after it
 * reconnects, with its session (nothing is acknowledged that was not stored). Returns true when it closed the
 * connection: the close ran the protocol's on_close, which may have freed the session. */
static bool ack_failed(struct mqtt_conn *mc, struct pend_ack *a)
{
    if (!a->raw && mc->version == MQTT_V5) {
        send_ack(mc, a->type, a->pid, MQTT_RC_UNSPECIFIED, "storage unavailable");
        return false;
    }
    au_warn("conn=%llx closing: a store write failed and MQTT %s cannot refuse the %s", (unsigned long long)mc->conn->id,
            mc->version == MQTT_V5 ? "5" : "3.1.1", a->raw ? "SUBSCRIBE/UNSUBSCRIBE" : "PUBLISH");
    mqtt_send_disconnect(mc, MQTT_RC_UNSPECIFIED, "storage unavailable");
    mc->state = MC_CLOSING;
    au_conn_close(mc->conn);
    return true;
}

/* A refusal that closes a 3.1.1 connection may free a non-persistent session: callers do not touch `s` after
 * this returns (a failed acknowledgement only becomes ready in a store completion or a posted reply). */
void ack_flush(struct session *s)
{
    while (s->ack_head && s->ack_head->ready) {
        struct pend_ack *a = s->ack_head;
        s->ack_head = a->next;
        if (!s->ack_head) s->ack_tail = NULL;
        if (s->mc && s->mc->state == MC_CONNECTED) {
            if (a->store_failed) {
                struct broker *b = broker_of(s->mc->conn->shard);
                uint64_t uid = s->uid;
                if (ack_failed(s->mc, a) && !session_by_uid(b, uid)) {
                    /* the close ended a non-persistent session: its acknowledgements went with it */
                    free(a->raw);
                    free(a);
                    return;
                }
            } else if (a->raw) au_conn_write(s->mc->conn, a->raw, a->raw_len);
            else send_ack(s->mc, a->type, a->pid, a->reason, a->reason >= 0x80 ? "not authorized" : NULL);
        }
        free(a->raw);
        free(a);
    }
}

void ack_after_batch(struct broker *b, struct session *s, const uint8_t *pkt, size_t n, bool wrote)
{
    if (!wrote && !s->ack_head) {
        au_conn_write(s->mc->conn, pkt, n);
        return;
    }
    struct pend_ack *a = calloc(1, sizeof *a);
    AU_ASSERT(a != NULL);
    a->raw = malloc(n);
    AU_ASSERT(a->raw != NULL);
    memcpy(a->raw, pkt, n);
    a->raw_len = (uint32_t)n;
    a->s = s;
    a->ready = !wrote;
    if (s->ack_tail) s->ack_tail->next = a;
    else s->ack_head = a;
    s->ack_tail = a;
    if (wrote) {
        persist_ticket(b, ticket_new(b, a, 1));
    }
    ack_flush(s);
}

void ack_release_all(struct session *s)
{
    struct pend_ack *a = s->ack_head;
    while (a) {
        struct pend_ack *n = a->next;
        if (a->ready) {
            free(a->raw);
            free(a);
        } else {
            a->s = NULL; /* its ticket frees it */
        }
        a = n;
    }
    s->ack_head = s->ack_tail = NULL;
}

struct ticket_x {
    struct au_xmsg x;
    struct pub_ticket *t;
};

struct pub_ticket *ticket_new(struct broker *b, struct pend_ack *a, int parts)
{
    struct pub_ticket *t = malloc(sizeof *t);
    AU_ASSERT(t != NULL);
    atomic_init(&t->pending, parts);
    atomic_init(&t->failed, false);
    t->origin = b->shard->id;
    t->ack = a;
    return t;
}

void ticket_fail(struct pub_ticket *t) { atomic_store_explicit(&t->failed, true, memory_order_relaxed); }

/* On the origin shard (the publisher's session lives there). */
static void ticket_fire(struct broker *b, struct pub_ticket *t)
{
    struct pend_ack *a = t->ack;
    bool failed = atomic_load_explicit(&t->failed, memory_order_relaxed); /* ordered by pending's acq_rel */
    free(t);
    if (failed) {
        a->store_failed = 1;
        a->reason = MQTT_RC_UNSPECIFIED;
        if (a->s && !a->raw && a->type == MQTT_PUBREC && qos2_release(a->s, a->pid)) {
            /* the exchange ends here: a resend of this packet id is a new message, stored again */
            persist_qos2in(b, a->s, a->pid, true);
        }
    }
    a->ready = 1;
    if (!a->s) {
        free(a->raw);
        free(a);
    } else {
        ack_flush(a->s);
    }
}

static void ticket_x_handler(struct au_shard *self, struct au_xmsg *x)
{
    struct ticket_x *tx = (struct ticket_x *)x;
    ticket_fire(broker_of(self), tx->t);
    free(tx);
}

static void ticket_x_dispose(struct au_xmsg *x)
{
    struct ticket_x *tx = (struct ticket_x *)x;
    struct pend_ack *a = tx->t->ack;
    free(tx->t);
    if (!a->s) { /* the session was freed at shutdown: nobody else owns the orphaned ack */
        free(a->raw);
        free(a);
    }
    free(tx);
}

void ticket_done(struct broker *b, struct pub_ticket *t)
{
    if (atomic_fetch_sub_explicit(&t->pending, 1, memory_order_acq_rel) != 1) return;
    if (t->origin == b->shard->id) {
        ticket_fire(b, t);
        return;
    }
    struct ticket_x *tx = malloc(sizeof *tx);
    AU_ASSERT(tx != NULL);
    tx->x.handler = ticket_x_handler;
    tx->t = t;
    au_shard_post_disposable(b->shard, t->origin, &tx->x, ticket_x_dispose);
}

void broker_deliver_local(struct broker *b, struct msg *m)
{
    uint32_t ops0 = persist_pending_ops(b);
    persist_pass_begin(b, m);
    if (m->retain) {
        /* Every shard keeps a replica of the retained store: apply the update here. The origin writes it once,
         * and only what its replica took: a message over the app's budget (publishers are refused before, this
         * is a race between shards) is neither held nor stored. */
        int r = retained_set(&b->retained, m->app, msg_topic(m), m->topic_len, m->payload_len ? msg_ref(m) : NULL);
        if (r == TOPIC_EQUOTA || r == TOPIC_ENOMEM) {
            msg_unref(m);
            au_warn("retained store full app=%u (max_retained_bytes / max_retained)", m->app);
        }
        if (r >= 0 && (int)(m->seq >> 48) == b->shard->id) persist_retained(b, m);
        __atomic_store_n(&b->stats.retained, b->retained.msgs, __ATOMIC_RELAXED);
    }
    if (m->expire_at && m->expire_at <= b->shard->now_ms) {
        persist_pass_end(b, m, ops0);
        return;
    }
    b->fan_n = 0;
    struct match_ctx mc = { b, m };
    sub_match(&b->subs, m->app, msg_topic(m), m->topic_len, on_sub, on_share, &mc);
    deliver_begin(b, m);
    for (uint32_t i = 0; i < b->fan_n; i++) {
        struct fan_target *t = &b->fan[i];
        uint8_t qos = t->qos < m->qos ? t->qos : m->qos;
        session_deliver(b, t->s, m, qos, t->rap ? m->retain : 0, t->ids, t->n_ids);
    }
    deliver_end(b);
    b->fan_n = 0;
    persist_pass_end(b, m, ops0);
}

/* ------------------------------------------------------------------ per-shard lifecycle steps */

void broker_shard_init(struct au_shard *s)
{
    const struct au_config *cfg = s->slot.services ? s->slot.services->cfg : NULL;
    struct broker *b = calloc(1, sizeof *b);
    AU_ASSERT(b != NULL);
    b->shard = s;
    b->cfg = cfg;
    AU_ASSERT(au_hash_init(&b->sessions, 1024) == 0 && au_hash_init(&b->by_uid, 1024) == 0);
    sub_index_init(&b->subs);
    retained_init(&b->retained, retained_release, b, cfg ? cfg->max_retained : 0);
    retained_set_budget(&b->retained, msg_retained_bytes, cfg ? cfg->max_retained_bytes : AU_MQTT_RETAINED_BYTES);
    shared_init(b);
    s->slot.broker = b;
}

void broker_shard_load(struct au_shard *s) { persist_load(broker_of(s)); }

void broker_shard_stop(struct au_shard *s)
{
    struct broker *b = broker_of(s);
    b->stopping = true;
    /* Tell MQTT 5 clients the server is going away, then close every connection (flushing). */
    struct au_hash_iter it;
    au_hash_iter_init(&b->sessions, &it);
    while (au_hash_next(&b->sessions, &it)) {
        struct session *se = it.value;
        if (se->mc && se->mc->state == MC_CONNECTED) mqtt_send_disconnect(se->mc, MQTT_RC_SERVER_SHUTTING_DOWN, NULL);
        if (se->mc) au_conn_close(se->mc->conn);
    }
}

/* Debug log (--log-level debug), every BROKER_PERSIST_LOG_MS per shard: the store writes of the interval. */
static void persist_log(struct broker *b, uint64_t now_ms)
{
    if (au_log_get_level() > AU_LOG_DEBUG || now_ms < b->plog_ms + BROKER_PERSIST_LOG_MS) return;
    const struct broker_stats *st = &b->stats, *o = &b->plog;
    uint64_t f = st->persist_flushes - o->persist_flushes;
    if (f) {
        au_debug("persist: %llu batches in %llu ms, %.1f ops and %.1f tickets per batch, submit->durable avg %.0f us "
                 "max %llu us (since start)", (unsigned long long)f, (unsigned long long)(now_ms - b->plog_ms),
                 (double)(st->persist_ops - o->persist_ops) / (double)f,
                 (double)(st->persist_tickets - o->persist_tickets) / (double)f,
                 (double)(st->persist_us_total - o->persist_us_total) / (double)f, (unsigned long long)st->persist_us_max);
        au_debug("persist: %llu deliveries deferred, %llu acknowledged before their deadline, %llu stored",
                 (unsigned long long)(st->persist_deferred - o->persist_deferred),
                 (unsigned long long)(st->persist_defer_acked - o->persist_defer_acked),
                 (unsigned long long)(st->persist_defer_stored - o->persist_defer_stored));
        if (b->shard->id == 0 && persist_store()) {
            struct store_stats ss;
            store_get_stats(persist_store(), &ss);
            au_debug("store: %llu commits, %.1f batches and %.1f ops per commit, commit avg %.0f us max %llu us, "
                     "queue wait max %llu us (since start)", (unsigned long long)ss.commits, store_stats_avg_batch(&ss),
                     ss.commits ? (double)ss.ops / (double)ss.commits : 0.0,
                     ss.commits ? (double)ss.commit_us_total / (double)ss.commits : 0.0,
                     (unsigned long long)ss.commit_us_max, (unsigned long long)ss.queue_wait_us_max);
        }
    }
    b->plog = *st;
    b->plog_ms = now_ms;
}

int broker_shard_tick(struct au_shard *s, uint64_t now_ms)
{
    struct broker *b = broker_of(s);
    int due = persist_defer_due(b, now_ms);
    persist_flush(b); /* this iteration's store writes: one batch */
    persist_log(b, now_ms);
    return due;
}

void broker_shard_store_detach(struct au_shard *s)
{
    struct broker *b = broker_of(s);
    if (persist_store()) {
        persist_defer_due(b, UINT64_MAX); /* everything not acknowledged is stored before the detach */
        persist_flush(b);
        store_shard_detach(persist_store(), s->id); /* completions run here, before freeing */
    }
}

void broker_shard_drop_sessions(struct au_shard *s)
{
    struct broker *b = broker_of(s);
    struct au_hash_iter it;
    au_hash_iter_init(&b->sessions, &it);
    while (au_hash_next(&b->sessions, &it)) {
        struct session *se = it.value;
        au_hash_iter_del(&b->sessions, &it);
        if (se->mc) se->mc->sess = NULL;
        se->mc = NULL;
        session_free(b, se);
    }
}

void broker_shard_fini(struct au_shard *s)
{
    struct broker *b = broker_of(s);
    au_hash_free(&b->by_uid);
    sub_index_free(&b->subs);
    retained_free(&b->retained);
    shared_fini(b);
    au_hash_free(&b->sessions);
    free(b->fan);
    if (b->ibatch) store_batch_free(b->ibatch); /* written after the detach (nothing should be): dropped */
    free(b->iwait);
    /* Connections still open at this point are torn down with the ring. */
    s->slot.broker = NULL;
    free(b);
}

/* ------------------------------------------------------------------ metrics */

#define BROKER_METRIC(name, field, type, help)                                                        \
    do {                                                                                              \
        gw_metrics_printf(m, "# HELP aurora_" name " " help "\n# TYPE aurora_" name " " type "\n");   \
        for (int i = 0; i < nshards; i++) {                                                           \
            struct broker *b = broker_of(shards[i]);                                                  \
            gw_metrics_printf(m, "aurora_" name "{shard=\"%d\"} %llu\n", i,                           \
                    b ? (unsigned long long)__atomic_load_n(&b->stats.field, __ATOMIC_RELAXED) : 0ull); \
        }                                                                                             \
    } while (0)

void broker_metrics(struct gw_metrics *m, struct au_shard *const *shards, int nshards)
{
    BROKER_METRIC("mqtt_sessions", sessions, "gauge", "MQTT sessions (online and offline).");
    BROKER_METRIC("mqtt_sessions_online", sessions_online, "gauge", "MQTT sessions with a connection.");
    BROKER_METRIC("mqtt_subscriptions", subscriptions, "gauge", "Subscriptions.");
    BROKER_METRIC("mqtt_retained_messages", retained, "gauge", "Retained messages (replica per shard).");
    BROKER_METRIC("mqtt_connects_total", connects, "counter", "Accepted CONNECTs.");
    BROKER_METRIC("mqtt_connects_refused_total", connacks_refused, "counter", "Refused CONNECTs.");
    BROKER_METRIC("mqtt_takeovers_total", takeovers, "counter", "Session takeovers.");
    BROKER_METRIC("mqtt_publish_received_total", pub_in, "counter", "PUBLISH packets received from clients.");
    BROKER_METRIC("mqtt_publish_received_bytes_total", pub_in_bytes, "counter", "Payload bytes received.");
    BROKER_METRIC("mqtt_deliveries_total", deliveries, "counter", "PUBLISH packets sent to subscribers.");
    BROKER_METRIC("mqtt_dropped_slow_qos0_total", dropped_qos0_slow, "counter", "QoS 0 dropped: slow consumer.");
    BROKER_METRIC("mqtt_dropped_queue_full_total", dropped_queue_full, "counter", "QoS 1/2 dropped: session queue full.");
    BROKER_METRIC("mqtt_dropped_expired_total", dropped_expired, "counter", "Messages dropped: expired.");
    BROKER_METRIC("mqtt_dropped_too_large_total", dropped_too_large, "counter", "Messages dropped: above client maximum packet size.");
    BROKER_METRIC("mqtt_wills_total", wills_sent, "counter", "Will messages published.");
    BROKER_METRIC("mqtt_retained_refused_total", retained_refused, "counter", "PUBLISHes refused: over the app's retained budget.");
    BROKER_METRIC("mqtt_protocol_errors_total", protocol_errors, "counter", "Connections closed for protocol errors.");
    BROKER_METRIC("mqtt_keepalive_timeouts_total", keepalive_timeouts, "counter", "Keep-alive timeouts.");
}
