/* client.c - the MQTT client side of aurora-bench: CONNECT / SUBSCRIBE, publishing under a
 * window and a rate, QoS 1/2 handshakes in both directions, keep-alive and latency recording.
 *
 * Payload layout of every PUBLISH this tool sends (native byte order, same process):
 *   [0..8)  CLOCK_MONOTONIC send timestamp, ns      [8..12) publisher index      [12..16) sequence
 *   [16..)  filler
 * A subscriber records now - timestamp into its worker's histogram and counts the delivery
 * against the publisher, which is how the end-to-end window and the expected count work. */
#include "perf/bench/conn.h"

#include "core/log.h"
#include "gateway/mqtt/codec.h"

#include <stdlib.h>
#include <string.h>

enum bench_role bench_role_of(const struct bench_cfg *cfg, uint32_t gidx)
{
    if (gidx < cfg->subscribers) return ROLE_SUB;
    if (gidx < cfg->subscribers + cfg->publishers) return ROLE_PUB;
    if (cfg->scenario == SC_IM_REPLAY && gidx == cfg->connections - 1) return ROLE_REPLAY;
    return ROLE_IDLE;
}

uint32_t bench_pub_topic(const struct bench_cfg *cfg, uint32_t pub_id)
{
    if (cfg->scenario == SC_IM_REPLAY) return 0;
    return cfg->topics ? pub_id % cfg->topics : 0;   /* im-single: the pair; im-group: the group */
}

uint32_t bench_sub_topic(const struct bench_cfg *cfg, uint32_t sub_id)
{
    if (cfg->scenario == SC_FANIN) return UINT32_MAX;
    if (cfg->scenario == SC_IM_GROUP) return sub_id / cfg->members;   /* members g*M .. g*M+M-1 */
    if (cfg->scenario == SC_IM_REPLAY) return 0;
    return cfg->topics ? sub_id % cfg->topics : 0;
}

uint32_t bench_deferred(const struct bench_cfg *cfg)
{
    return cfg->scenario == SC_IM_REPLAY ? 1 : 0;
}

static int topic_name(const struct bench_cfg *cfg, uint32_t topic, char *out, size_t cap)
{
    if (topic == UINT32_MAX) return snprintf(out, cap, "%s/#", cfg->topic_prefix);
    return snprintf(out, cap, "%s/%u", cfg->topic_prefix, topic);
}

int client_init(struct bench_worker *w)
{
    const struct bench_cfg *cfg = w->cfg;
    uint32_t n_pubs = 0;
    for (uint32_t i = 0; i < w->n_conns; i++) {
        struct bench_conn *c = &w->conns[i];
        c->gidx = i * w->run->n_workers + w->id;
        AU_ASSERT(c->gidx < cfg->connections);
        c->role = (uint8_t)bench_role_of(cfg, c->gidx);
        c->role_idx = c->role == ROLE_SUB ? c->gidx
                    : c->role == ROLE_PUB ? c->gidx - cfg->subscribers
                    : c->gidx - cfg->subscribers - cfg->publishers;
        if (c->role == ROLE_PUB) n_pubs++;
        if (c->role == ROLE_REPLAY) w->defer_idx = i;
        if (cfg->im && (c->role == ROLE_SUB || c->role == ROLE_REPLAY)) {
            c->ntrk = im_track_count(cfg, c);
            c->trk = c->ntrk ? calloc(c->ntrk, sizeof *c->trk) : NULL;
            if (c->ntrk && !c->trk) goto oom;
        }
    }
    w->max_packet = AU_MAX(BENCH_MAX_PACKET_MIN, cfg->payload + BENCH_MAX_TOPIC_PREFIX + 1024u);
    /* IM: the payload buffer holds a whole message JSON (head + text + tail) */
    size_t pl_cap = cfg->im ? cfg->payload + 1024u : cfg->payload;
    w->payload = malloc(pl_cap ? pl_cap : 1);
    if (!w->payload) goto oom;
    for (uint32_t i = 0; i < cfg->payload; i++) w->payload[i] = (uint8_t)('a' + i % 26);
    hist_init(&w->lat);
    hist_init(&w->conn_lat);
    if (!n_pubs) return 0;
    w->pubs = calloc(n_pubs, sizeof *w->pubs);
    if (!w->pubs) goto oom;
    for (uint32_t i = 0; i < w->n_conns; i++) {
        struct bench_conn *c = &w->conns[i];
        if (c->role != ROLE_PUB) continue;
        struct bench_pub *p = &w->pubs[w->n_pubs];
        p->pub_id = c->role_idx;
        p->topic = bench_pub_topic(cfg, p->pub_id);
        p->conn = i;
        p->window = cfg->window;
        char name[BENCH_MAX_TOPIC_PREFIX + 16];
        int n = topic_name(cfg, p->topic, name, sizeof name);
        AU_ASSERT(n > 0 && (size_t)n < sizeof name);
        p->topic_name = strdup(name);
        p->topic_len = (uint16_t)n;
        p->slots = calloc(cfg->window, 1);
        w->n_pubs++;                            /* counted before the check so client_free sees it */
        if (!p->topic_name || !p->slots) goto oom;
        if (cfg->im && im_pub_init(w, p) < 0) goto oom;
        c->role_idx = w->n_pubs - 1;            /* publishers: index into w->pubs from here on */
    }
    return 0;
oom:
    snprintf(w->err_msg, sizeof w->err_msg, "out of memory for client state");
    return -1;
}

void client_free(struct bench_worker *w)
{
    for (uint32_t i = 0; i < w->n_pubs; i++) {
        free(w->pubs[i].topic_name);
        free(w->pubs[i].slots);
        free(w->pubs[i].im_head);
    }
    free(w->pubs);
    w->pubs = NULL;
    w->n_pubs = 0;
    free(w->payload);
    w->payload = NULL;
}

void client_on_tcp_connected(struct bench_worker *w, struct bench_conn *c)
{
    const struct bench_cfg *cfg = w->cfg;
    char id[BENCH_MAX_CLIENT_PREFIX + BENCH_IM_MAX_USER_PREFIX + 48];
    char user[BENCH_IM_MAX_APPKEY + BENCH_IM_MAX_USER_PREFIX + 24];
    int n;
    struct mqtt_connect_opts o;
    memset(&o, 0, sizeof o);
    o.username = cfg->username;
    if (cfg->im) {
        uint32_t pub_id = c->role == ROLE_PUB ? w->pubs[c->role_idx].pub_id : 0;
        n = im_client_id(cfg, c, pub_id, id, sizeof id);
        int ul = snprintf(user, sizeof user, "%s:", cfg->appkey);
        AU_ASSERT(ul > 0 && (size_t)ul < sizeof user);
        int un = im_user_name(cfg, im_user_of(cfg, c, pub_id), user + ul, sizeof user - (size_t)ul);
        AU_ASSERT(un > 0 && (size_t)(ul + un) < sizeof user);
        o.username = user;
        if (c->role == ROLE_REPLAY)
            atomic_store_explicit(&w->run->replay_connect_ns, c->t_connect_ns, memory_order_relaxed);
    } else {
        n = snprintf(id, sizeof id, "%s-%u", cfg->client_prefix, c->gidx);
    }
    AU_ASSERT(n > 0 && (size_t)n < sizeof id);
    o.version = cfg->version;
    o.clean_start = true;
    struct mqtt_props props;
    if (c->role == ROLE_SUB && !cfg->im) {
        o.clean_start = cfg->sub_clean;
        if (cfg->version == MQTT_V5 && cfg->sub_expiry) {
            memset(&props, 0, sizeof props);
            props.present = MQTT_PBIT(MQTT_PROP_SESSION_EXPIRY);
            props.session_expiry = cfg->sub_expiry;
            o.props = &props;
        }
    }
    o.keepalive = cfg->keepalive;
    o.client_id = id;
    o.password = cfg->password;
    size_t cap = 64 + (size_t)n + (o.username ? strlen(o.username) : 0) +
                 (cfg->password ? strlen(cfg->password) : 0);
    uint8_t *out = conn_reserve(c, cap);
    if (!out) {
        conn_fail(w, c, E_SEND);
        return;
    }
    size_t len = mqtt_enc_connect(out, cap, &o);
    AU_ASSERT(len > 0);
    conn_commit(c, len);
    conn_flush(w, c);
}

static void send_subscribe(struct bench_worker *w, struct bench_conn *c)
{
    const struct bench_cfg *cfg = w->cfg;
    char name[BENCH_MAX_TOPIC_PREFIX + 16];
    int n = cfg->im ? snprintf(name, sizeof name, "im/inbox")
                    : topic_name(cfg, bench_sub_topic(cfg, c->role_idx), name, sizeof name);
    AU_ASSERT(n > 0 && (size_t)n < sizeof name);
    struct mqtt_sub_entry e;
    memset(&e, 0, sizeof e);
    e.filter.p = (const uint8_t *)name;
    e.filter.len = (uint16_t)n;
    e.qos = cfg->qos;
    size_t cap = (size_t)n + 32;
    uint8_t *out = conn_reserve(c, cap);
    if (!out) {
        conn_fail(w, c, E_SEND);
        return;
    }
    size_t len = mqtt_enc_subscribe(out, cap, cfg->version, MQTT_SUBSCRIBE, 1, &e, 1, NULL);
    AU_ASSERT(len > 0);
    conn_commit(c, len);
    c->state = CS_SUBACK_WAIT;
    if (c->role == ROLE_REPLAY)   /* the replay is timed from here */
        atomic_store_explicit(&w->run->replay_sub_ns, bench_now_ns(), memory_order_relaxed);
}

static bool queue_ack(struct bench_worker *w, struct bench_conn *c, uint8_t type, uint16_t id)
{
    uint8_t pkt[16];
    size_t n = mqtt_enc_ack(pkt, sizeof pkt, w->cfg->version, type, id, MQTT_RC_SUCCESS, NULL);
    AU_ASSERT(n > 0);
    if (conn_queue(c, pkt, n)) return true;
    conn_fail(w, c, E_SEND);
    return false;
}

static int on_connack(struct bench_worker *w, struct bench_conn *c, const struct mqtt_connack *ca)
{
    if (c->state != CS_CONNACK_WAIT) {
        conn_fail(w, c, E_PROTOCOL);
        return -1;
    }
    if (ca->reason != 0) {
        conn_fail(w, c, E_CONNACK);
        if (stat_get(&w->st.errors[E_CONNACK]) == 1)
            au_warn("worker=%u conn=%u CONNACK refused: code 0x%02x", w->id, c->gidx, ca->reason);
        return -1;
    }
    uint64_t now = bench_now_ns();
    AU_ASSERT(w->connecting > 0);
    w->connecting--;
    c->flags |= CF_UP;
    stat_add(&w->st.alive, 1);
    stat_add(&w->st.connacks, 1);
    atomic_store_explicit(&w->st.last_connack_ns, now, memory_order_relaxed);
    hist_record(&w->conn_lat, now - c->t_connect_ns);
    if (c->role == ROLE_PUB) {
        struct bench_pub *p = &w->pubs[c->role_idx];
        if ((ca->props.present & MQTT_PBIT(MQTT_PROP_RECEIVE_MAX)) && ca->props.receive_max)
            p->window = AU_MIN(p->window, (uint32_t)ca->props.receive_max);
    }
    if (c->role == ROLE_REPLAY) atomic_store_explicit(&w->run->replay_connack_ns, now, memory_order_relaxed);
    if (c->role == ROLE_SUB || c->role == ROLE_REPLAY) {
        send_subscribe(w, c);
        return c->state >= CS_CLOSING ? -1 : 0;
    }
    conn_mark_ready(w, c);
    return 0;
}

static int on_suback(struct bench_worker *w, struct bench_conn *c, const struct mqtt_suback *sa)
{
    if (c->state != CS_SUBACK_WAIT || sa->packet_id != 1 || sa->count != 1) {
        conn_fail(w, c, E_PROTOCOL);
        return -1;
    }
    if (sa->codes[0] >= 0x80) {
        conn_fail(w, c, E_SUBACK);
        if (stat_get(&w->st.errors[E_SUBACK]) == 1)
            au_warn("worker=%u conn=%u SUBACK refused: code 0x%02x", w->id, c->gidx, sa->codes[0]);
        return -1;
    }
    if (w->cfg->im && c->role == ROLE_SUB) {   /* ready once the login replay of old messages is over */
        c->state = CS_SETTLE;
        c->settle_ns = bench_now_ns() + (uint64_t)BENCH_IM_SETTLE_MS * 1000000u;
        return 0;
    }
    if (c->role == ROLE_REPLAY) {
        conn_mark_ready(w, c);
        return 0;
    }
    uint32_t t = bench_sub_topic(w->cfg, c->role_idx);
    if (t == UINT32_MAX) atomic_fetch_add_explicit(&w->run->wild_subs, 1, memory_order_relaxed);
    else atomic_fetch_add_explicit(&w->run->topic_subs[t], 1, memory_order_relaxed);
    conn_mark_ready(w, c);
    return 0;
}

static int on_publish(struct bench_worker *w, struct bench_conn *c, const struct mqtt_publish *pb)
{
    const struct bench_cfg *cfg = w->cfg;
    uint64_t now = bench_now_ns();
    if (cfg->im && (c->role == ROLE_SUB || c->role == ROLE_REPLAY)) {
        im_on_inbox(w, c, pb->payload.p, pb->payload.len, now);
        return pb->qos == 1 && !queue_ack(w, c, MQTT_PUBACK, pb->packet_id) ? -1 : 0;   /* moves the cursor */
    }
    stat_add(&w->st.received, 1);
    atomic_store_explicit(&w->st.last_recv_ns, now, memory_order_relaxed);
    bool ours = false;
    if (pb->payload.len >= BENCH_MIN_PAYLOAD && c->role == ROLE_SUB) {
        uint64_t ts;
        uint32_t pub_id;
        memcpy(&ts, pb->payload.p, 8);
        memcpy(&pub_id, pb->payload.p + 8, 4);
        if (pub_id < cfg->publishers && ts >= w->run->t0_ns && ts <= now) {
            ours = true;
            lat_record(w, now - ts);
            _Atomic uint64_t *d = &w->run->delivered[(size_t)w->id * cfg->publishers + pub_id];
            stat_add(d, 1);
        }
    }
    if (!ours) {
        bench_err(w, E_FOREIGN);
        if (stat_get(&w->st.errors[E_FOREIGN]) == 1)
            au_warn("worker=%u conn=%u PUBLISH not made by this run (topic %.*s, %u bytes)",
                    w->id, c->gidx, (int)pb->topic.len, (const char *)pb->topic.p, pb->payload.len);
    }
    if (pb->qos == 1) return queue_ack(w, c, MQTT_PUBACK, pb->packet_id) ? 0 : -1;
    if (pb->qos == 2) return queue_ack(w, c, MQTT_PUBREC, pb->packet_id) ? 0 : -1;
    return 0;
}

/* PUBACK / PUBREC / PUBCOMP for one of our publishes. */
static int on_pub_ack(struct bench_worker *w, struct bench_conn *c, uint8_t type, const struct mqtt_ack *a)
{
    if (c->role != ROLE_PUB) {
        conn_fail(w, c, E_PROTOCOL);
        return -1;
    }
    struct bench_pub *p = &w->pubs[c->role_idx];
    uint32_t s = (uint32_t)a->packet_id - 1u;
    uint8_t want = type == MQTT_PUBCOMP ? 2 : 1;
    bool qos_ok = type == MQTT_PUBACK ? w->cfg->qos == 1 : w->cfg->qos == 2;
    if (a->packet_id == 0 || s >= w->cfg->window || p->slots[s] != want || !qos_ok) {
        bench_err(w, E_ACK);
        if (stat_get(&w->st.errors[E_ACK]) == 1)
            au_warn("worker=%u conn=%u unexpected ack type %u id %u", w->id, c->gidx, type, a->packet_id);
        return 0;
    }
    if (type == MQTT_PUBREC && a->reason < 0x80) {
        p->slots[s] = 2;
        return queue_ack(w, c, MQTT_PUBREL, a->packet_id) ? 0 : -1;
    }
    if (a->reason >= 0x80) {                  /* refused: the id is free again */
        bench_err(w, E_ACK);
        if (w->cfg->im) {
            stat_add(&w->st.im_refused, 1);
            stat_add(&w->run->pub_refused[p->pub_id], 1);
            if (stat_get(&w->st.im_refused) == 1)
                au_warn("worker=%u conn=%u im/send refused: reason 0x%02x", w->id, c->gidx, a->reason);
        }
    } else if (w->cfg->im) {                  /* committed: the message is durable */
        p->acked_ok++;
        atomic_store_explicit(&w->run->pub_acked[p->pub_id], p->acked_ok, memory_order_relaxed);
    }
    p->slots[s] = 0;
    AU_ASSERT(p->inflight > 0);
    p->inflight--;
    p->acked++;
    stat_add(&w->st.acked, 1);
    return 0;
}

int client_on_packet(struct bench_worker *w, struct bench_conn *c, const uint8_t *pkt, uint32_t len)
{
    struct mqtt_packet pk;
    int r = mqtt_parse(pkt, len, w->cfg->version, w->max_packet, &pk);
    if (r <= 0) {
        conn_fail(w, c, E_PROTOCOL);
        if (stat_get(&w->st.errors[E_PROTOCOL]) == 1)
            au_warn("worker=%u conn=%u unparsable packet from broker (type %u, %u bytes): %d",
                    w->id, c->gidx, pkt[0] >> 4, len, r);
        return -1;
    }
    switch (pk.type) {
    case MQTT_CONNACK: return on_connack(w, c, &pk.u.connack);
    case MQTT_SUBACK: return on_suback(w, c, &pk.u.suback);
    case MQTT_PUBLISH: return on_publish(w, c, &pk.u.publish);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBCOMP: return on_pub_ack(w, c, pk.type, &pk.u.ack);
    case MQTT_PUBREL:  return queue_ack(w, c, MQTT_PUBCOMP, pk.u.ack.packet_id) ? 0 : -1;
    case MQTT_PINGRESP: return 0;
    case MQTT_DISCONNECT:
        if (stat_get(&w->st.errors[E_PEER_CLOSED]) == 0)
            au_warn("worker=%u conn=%u broker sent DISCONNECT: reason 0x%02x", w->id, c->gidx,
                    pk.u.disconnect.reason);
        conn_fail(w, c, E_PEER_CLOSED);
        return -1;
    default:
        conn_fail(w, c, E_PROTOCOL);
        return -1;
    }
}

/* ---------------- publishing ---------------- */

/* Messages publisher p may send now: QoS window slots, and (without --rate) the end-to-end
 * window run->e2e[topic] of messages not yet delivered to every subscriber of its topic
 * (counted on average over the subscribers). */
static uint64_t pub_credit(struct bench_worker *w, struct bench_pub *p, uint64_t now)
{
    const struct bench_cfg *cfg = w->cfg;
    uint64_t credit = UINT64_MAX;
    if (cfg->qos) credit = p->window > p->inflight ? p->window - p->inflight : 0;
    if (cfg->messages) credit = AU_MIN(credit, p->sent < cfg->messages ? cfg->messages - p->sent : 0);
    /* im-replay: nothing is sent before the away device is gone */
    if (cfg->scenario == SC_IM_REPLAY && !atomic_load_explicit(&w->run->im_gate, memory_order_acquire)) return 0;
    if (cfg->rate > 0 || credit == 0) return credit;
    uint32_t deliv = w->run->deliv[p->topic];
    if (!deliv) return credit;
    uint64_t d = 0;
    for (uint32_t k = 0; k < w->run->n_workers; k++)
        d += atomic_load_explicit(&w->run->delivered[(size_t)k * cfg->publishers + p->pub_id],
                                  memory_order_relaxed);
    uint64_t done = d / deliv + p->skipped;
    uint64_t out = p->sent > done ? p->sent - done : 0;
    uint32_t win = w->run->e2e[p->topic];
    uint64_t e2e = out < win ? win - out : 0;
    if (d != p->last_progress || e2e) {
        p->last_progress = d;
        p->stall_since_ns = now;
    } else if (now - p->stall_since_ns > (uint64_t)BENCH_STALL_MS * 1000000u) {
        p->skipped += out;                      /* lost (QoS 0 drop) or stuck: stop waiting for them */
        p->stall_since_ns = now;
        stat_add(&w->st.resyncs, 1);
        e2e = win;
    }
    return AU_MIN(credit, e2e);
}

static bool publish_one(struct bench_worker *w, struct bench_pub *p, struct bench_conn *c, uint64_t now)
{
    const struct bench_cfg *cfg = w->cfg;
    uint16_t id = 0;
    uint32_t s = 0;
    if (cfg->qos) {
        AU_ASSERT(p->inflight < p->window);
        for (uint32_t i = 0; i < p->window; i++) {
            s = (p->cursor + i) % p->window;
            if (!p->slots[s]) break;
        }
        AU_ASSERT(!p->slots[s]);
        id = (uint16_t)(s + 1);
    }
    if (cfg->im) {
        size_t icap = (size_t)cfg->payload + p->im_head_len + p->topic_len + 64;
        uint8_t *o = conn_reserve(c, icap);
        if (!o) return false;
        size_t n = im_encode_publish(w, p, id, now, o, icap);
        if (!n) return false;
        conn_commit(c, n);
        p->slots[s] = 1;
        p->inflight++;
        p->cursor = (s + 1) % p->window;
        p->seq++;
        p->sent++;
        return true;
    }
    size_t cap = (size_t)cfg->payload + p->topic_len + 16;
    uint8_t *out = conn_reserve(c, cap);
    if (!out) return false;
    size_t n = mqtt_enc_publish(out, cap, cfg->version, cfg->qos, false, false, id,
                                (const uint8_t *)p->topic_name, p->topic_len, NULL, w->payload, cfg->payload);
    AU_ASSERT(n > cfg->payload);
    uint8_t *pl = out + n - cfg->payload;
    memcpy(pl, &now, 8);
    memcpy(pl + 8, &p->pub_id, 4);
    memcpy(pl + 12, &p->seq, 4);
    conn_commit(c, n);
    if (cfg->qos) {
        p->slots[s] = 1;
        p->inflight++;
        p->cursor = (s + 1) % p->window;
    }
    p->seq++;
    p->sent++;
    return true;
}

void client_publish_pass(struct bench_worker *w, uint64_t now)
{
    if (!w->n_pubs) return;
    uint64_t budget = UINT64_MAX, per_pub = UINT64_MAX;
    if (w->pace_rate > 0) {
        uint64_t allowed = (uint64_t)(w->pace_rate * (double)(now - w->pace_base_ns) / 1e9);
        budget = allowed > w->pace_done ? allowed - w->pace_done : 0;
        uint64_t max_backlog = (uint64_t)w->pace_rate + w->n_pubs;   /* one second behind at most */
        if (budget > max_backlog) {
            w->pace_done += budget - max_backlog;
            budget = max_backlog;
        }
        if (!budget) return;
        per_pub = (budget + w->n_pubs - 1) / w->n_pubs;
    }
    uint64_t total = 0;
    uint32_t start = w->pub_cursor;
    for (uint32_t k = 0; k < w->n_pubs && budget; k++) {
        uint32_t i = (start + k) % w->n_pubs;
        struct bench_pub *p = &w->pubs[i];
        struct bench_conn *c = &w->conns[p->conn];
        if (c->state != CS_READY || c->txq.len >= BENCH_TX_BATCH) continue;
        uint64_t n = AU_MIN(AU_MIN(pub_credit(w, p, now), budget), per_pub);
        uint64_t done = 0;
        while (done < n && c->txq.len < BENCH_TX_BATCH) {
            if (!publish_one(w, p, c, now)) break;
            done++;
        }
        if (!done) continue;
        budget -= done;
        total += done;
        atomic_store_explicit(&w->run->pub_sent[p->pub_id], p->sent, memory_order_relaxed);
        conn_flush(w, c);
        w->pub_cursor = (i + 1) % w->n_pubs;
    }
    w->pace_done += total;
    stat_add(&w->st.sent, total);
}

void client_keepalive(struct bench_worker *w, uint64_t now)
{
    uint16_t ka = w->cfg->keepalive;
    if (!ka || now - w->last_scan_ns < 1000000000u) return;
    w->last_scan_ns = now;
    uint32_t now_s = (uint32_t)((now - w->run->t0_ns) / 1000000000u);
    uint32_t every = ka / 2 ? ka / 2u : 1u;
    uint8_t ping[2];
    size_t n = mqtt_enc_pingreq(ping, sizeof ping);
    AU_ASSERT(n == 2);
    for (uint32_t i = 0; i < w->n_conns; i++) {
        struct bench_conn *c = &w->conns[i];
        if (!(c->flags & CF_UP) || c->state >= CS_DISCONNECTING || (c->flags & CF_SEND) || c->txq.len) continue;
        if (c->last_tx_s >= now_s || now_s - c->last_tx_s < every) continue;   /* sent since `now` */
        if (!conn_queue(c, ping, n)) {
            conn_fail(w, c, E_SEND);
            continue;
        }
        stat_add(&w->st.pings, 1);
        conn_flush(w, c);
    }
}
