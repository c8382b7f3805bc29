/* im.c - aurora-bench's IM scenarios on the client side: JMessage message objects on `im/send`,
 * arrivals on `im/inbox` checked for exactly-once and per-conversation order.
 *
 * Users are <user-prefix><user-base + n>, registered beforehand (perf/im-setup). Per scenario:
 *   im-single  publisher p is user p and writes to user P+p (single chat); subscriber s is user P+s.
 *   im-group   subscriber s is user s, a member of group s / M (members g*M .. g*M+M-1); publisher p is
 *              a second device of member (p / G) % M of group p % G and posts to that group.
 *   im-replay  publishers p = users 0..P-1 write to user P; subscriber 0 is user P's device before it goes
 *              away, the returning device (ROLE_REPLAY) is the same device (same client id) afterwards.
 *
 * Every message text starts with a marker the receiver parses:
 *   aub1.<run 8 hex>.<publisher 8 hex>.<sequence 8 hex>.<CLOCK_MONOTONIC ns 16 hex><x padding>
 * The run id tells this run's messages from those of earlier runs, which a device may get replayed at
 * login (counted as `stale`). Per (device, publisher) a bitmap of sequences gives duplicates, and the
 * highest sequence seen gives out-of-order arrivals; the server's own `sequence` field must increase
 * within the conversation too. At the end, messages that were committed (PUBACK with success, which the
 * gateway sends once the message is durable) and never arrived are counted as missing. */
#include "perf/bench/conn.h"

#include "core/log.h"
#include "gateway/mqtt/codec.h"

#include <stdlib.h>
#include <string.h>

#define MARK     "aub1."
#define MARK_LEN 5u
#define MARK_ALL (MARK_LEN + 8 + 1 + 8 + 1 + 8 + 1 + 16)
_Static_assert(MARK_ALL <= BENCH_IM_MIN_TEXT, "the marker fits the shortest text");

/* ---------------- users, devices ---------------- */

uint32_t im_user_of(const struct bench_cfg *cfg, const struct bench_conn *c, uint32_t pub_id)
{
    uint32_t P = cfg->publishers;
    switch (cfg->scenario) {
    case SC_IM_SINGLE:
        return c->role == ROLE_PUB ? pub_id : P + c->role_idx;
    case SC_IM_GROUP:
        if (c->role == ROLE_PUB) return (pub_id % cfg->groups) * cfg->members + (pub_id / cfg->groups) % cfg->members;
        return c->role_idx;
    case SC_IM_REPLAY:
        return c->role == ROLE_PUB ? pub_id : P;
    default:
        return 0;
    }
}

int im_user_name(const struct bench_cfg *cfg, uint32_t n, char *out, size_t cap)
{
    return snprintf(out, cap, "%s%llu", cfg->user_prefix, (unsigned long long)cfg->user_base + n);
}

int im_client_id(const struct bench_cfg *cfg, const struct bench_conn *c, uint32_t pub_id, char *out, size_t cap)
{
    char u[BENCH_IM_MAX_USER_PREFIX + 24];
    int un = im_user_name(cfg, im_user_of(cfg, c, pub_id), u, sizeof u);
    AU_ASSERT(un > 0 && (size_t)un < sizeof u);
    if (c->role == ROLE_PUB) return snprintf(out, cap, "%s-%s-s%u", cfg->client_prefix, u, pub_id);
    return snprintf(out, cap, "%s-%s", cfg->client_prefix, u);
}

/* ---------------- who hears whom ---------------- */

uint32_t im_track_count(const struct bench_cfg *cfg, const struct bench_conn *c)
{
    switch (cfg->scenario) {
    case SC_IM_SINGLE:
        return 1;
    case SC_IM_GROUP: {
        uint32_t g = c->role_idx / cfg->members, G = cfg->groups, P = cfg->publishers;
        return g < P ? (P - g + G - 1) / G : 0;      /* publishers p with p % G == g */
    }
    case SC_IM_REPLAY:
        return c->role == ROLE_REPLAY ? cfg->publishers : 0;   /* the away device must get nothing */
    default:
        return 0;
    }
}

int im_track_index(const struct bench_cfg *cfg, const struct bench_conn *c, uint32_t pub_id)
{
    if (pub_id >= cfg->publishers) return -1;
    switch (cfg->scenario) {
    case SC_IM_SINGLE:
        return pub_id == c->role_idx ? 0 : -1;
    case SC_IM_GROUP:
        return pub_id % cfg->groups == c->role_idx / cfg->members ? (int)(pub_id / cfg->groups) : -1;
    case SC_IM_REPLAY:
        return c->role == ROLE_REPLAY ? (int)pub_id : -1;
    default:
        return -1;
    }
}

/* ---------------- sending ---------------- */

int im_pub_init(struct bench_worker *w, struct bench_pub *p)
{
    const struct bench_cfg *cfg = w->cfg;
    char target[BENCH_IM_MAX_USER_PREFIX + 24];
    const char *type = "single";
    if (cfg->scenario == SC_IM_GROUP) {
        type = "group";
        snprintf(target, sizeof target, "%llu", (unsigned long long)cfg->gids[p->pub_id % cfg->groups]);
    } else {
        uint32_t peer = cfg->scenario == SC_IM_SINGLE ? cfg->publishers + p->pub_id : cfg->publishers;
        im_user_name(cfg, peer, target, sizeof target);
    }
    size_t cap = 160 + strlen(target);
    p->im_head = malloc(cap);
    if (!p->im_head) return -1;
    int n = snprintf(p->im_head, cap,
                     "{\"version\":1,\"target_type\":\"%s\",\"target_id\":\"%s\",\"msg_type\":\"text\","
                     "\"msg_body\":{\"text\":\"", type, target);
    AU_ASSERT(n > 0 && (size_t)n < cap);
    p->im_head_len = (uint32_t)n;
    free(p->topic_name);
    p->topic_name = strdup("im/send");
    if (!p->topic_name) return -1;
    p->topic_len = 7;
    return 0;
}

static void hex(char *out, uint64_t v, int digits)
{
    static const char k[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--) {
        out[i] = k[v & 15];
        v >>= 4;
    }
}

size_t im_encode_publish(struct bench_worker *w, struct bench_pub *p, uint16_t id, uint64_t now, uint8_t *out, size_t cap)
{
    const struct bench_cfg *cfg = w->cfg;
    uint8_t *pl = w->payload;                       /* payload + 1024 bytes: head + text + tail */
    AU_ASSERT(p->im_head_len + cfg->payload + 3 <= cfg->payload + 1024u);
    memcpy(pl, p->im_head, p->im_head_len);
    char *t = (char *)pl + p->im_head_len;
    memcpy(t, MARK, MARK_LEN);
    hex(t + 5, w->run->im_run_id, 8);
    t[13] = '.';
    hex(t + 14, p->pub_id, 8);
    t[22] = '.';
    hex(t + 23, p->seq, 8);
    t[31] = '.';
    hex(t + 32, now, 16);
    memset(t + MARK_ALL, 'x', cfg->payload - MARK_ALL);
    memcpy(t + cfg->payload, "\"}}", 3);
    size_t len = p->im_head_len + cfg->payload + 3;
    return mqtt_enc_publish(out, cap, cfg->version, 1, false, false, id, (const uint8_t *)p->topic_name, p->topic_len,
                            NULL, pl, (uint32_t)len);
}

/* ---------------- arrivals ---------------- */

static bool unhex(const uint8_t *p, int digits, uint64_t *v)
{
    uint64_t x = 0;
    for (int i = 0; i < digits; i++) {
        uint8_t ch = p[i];
        uint8_t d;
        if (ch >= '0' && ch <= '9') d = (uint8_t)(ch - '0');
        else if (ch >= 'a' && ch <= 'f') d = (uint8_t)(ch - 'a' + 10);
        else return false;
        x = (x << 4) | d;
    }
    *v = x;
    return true;
}

/* The server's "sequence":N of the message object (0 when absent). */
static uint64_t server_seq(const uint8_t *p, uint32_t n)
{
    static const char key[] = "\"sequence\":";
    const uint8_t *k = memmem(p, n, key, sizeof key - 1);
    if (!k) return 0;
    const uint8_t *d = k + sizeof key - 1, *end = p + n;
    uint64_t v = 0;
    while (d < end && *d >= '0' && *d <= '9' && v < UINT64_MAX / 10) v = v * 10 + (uint64_t)(*d++ - '0');
    return v;
}

/* Mark seq seen; returns false when it had been seen already. */
static bool track_set(struct im_track *t, uint32_t seq)
{
    if (seq >= t->cap) {
        uint32_t cap = t->cap ? t->cap : 1024;
        while (cap <= seq) cap *= 2;
        uint8_t *b = realloc(t->bits, cap / 8);
        AU_ASSERT(b != NULL);
        memset(b + t->cap / 8, 0, (cap - t->cap) / 8);
        t->bits = b;
        t->cap = cap;
    }
    uint8_t bit = (uint8_t)(1u << (seq & 7));
    if (t->bits[seq >> 3] & bit) return false;
    t->bits[seq >> 3] |= bit;
    return true;
}

static void warn_once(struct bench_worker *w, _Atomic uint64_t *ctr, const char *what, const struct bench_conn *c,
                      uint64_t pub, uint64_t seq, uint64_t sseq)
{
    if (stat_get(ctr) == 1)
        au_warn("worker=%u conn=%u first %s: publisher %llu sequence %llu (server sequence %llu)", w->id, c->gidx, what,
                (unsigned long long)pub, (unsigned long long)seq, (unsigned long long)sseq);
}

void im_on_inbox(struct bench_worker *w, struct bench_conn *c, const uint8_t *p, uint32_t n, uint64_t now)
{
    const struct bench_cfg *cfg = w->cfg;
    struct bench_run *run = w->run;
    if (c->state == CS_SETTLE) c->settle_ns = now + (uint64_t)BENCH_IM_SETTLE_MS * 1000000u;
    const uint8_t *m = memmem(p, n, MARK, MARK_LEN);
    uint64_t rid, pub, seq, ts;
    if (!m || (size_t)(p + n - m) < MARK_ALL || !unhex(m + 5, 8, &rid) || !unhex(m + 14, 8, &pub) ||
        !unhex(m + 23, 8, &seq) || !unhex(m + 32, 16, &ts)) {
        stat_add(&w->st.im_events, 1);             /* group events, send errors, tokens */
        return;
    }
    if (rid != run->im_run_id) {
        stat_add(&w->st.im_stale, 1);
        return;
    }
    stat_add(&w->st.received, 1);
    atomic_store_explicit(&w->st.last_recv_ns, now, memory_order_relaxed);
    int ti = im_track_index(cfg, c, (uint32_t)pub);
    if (ti < 0 || (uint32_t)ti >= c->ntrk || seq >= BENCH_IM_MAX_SEQ) {
        bench_err(w, E_MISROUTED);
        if (stat_get(&w->st.errors[E_MISROUTED]) == 1)
            au_warn("worker=%u conn=%u (role %u) got a message of publisher %llu it should not get", w->id, c->gidx,
                    c->role, (unsigned long long)pub);
        return;
    }
    struct im_track *t = &c->trk[ti];
    uint64_t sseq = server_seq(p, n);
    if (!track_set(t, (uint32_t)seq)) {
        stat_add(&w->st.im_dup, 1);
        warn_once(w, &w->st.im_dup, "duplicate", c, pub, seq, sseq);
        return;
    }
    t->got++;
    if (seq + 1 < t->next) {
        stat_add(&w->st.im_ooo, 1);
        warn_once(w, &w->st.im_ooo, "out-of-order arrival", c, pub, seq, sseq);
    }
    if (seq + 1 > t->next) t->next = (uint32_t)seq + 1;
    if (sseq <= t->last_sseq) {
        stat_add(&w->st.im_seq_err, 1);
        warn_once(w, &w->st.im_seq_err, "server sequence not increasing", c, pub, seq, sseq);
    }
    t->last_sseq = sseq;
    stat_add(&w->st.im_unique, 1);
    atomic_store_explicit(&w->st.im_last_ns, now, memory_order_relaxed);
    stat_add(&run->delivered[(size_t)w->id * cfg->publishers + pub], 1);
    if (c->role == ROLE_REPLAY) {   /* the latency histogram holds the arrival times after SUBSCRIBE */
        uint64_t sub = atomic_load_explicit(&run->replay_sub_ns, memory_order_relaxed);
        if (!atomic_load_explicit(&run->replay_first_ns, memory_order_relaxed))
            atomic_store_explicit(&run->replay_first_ns, now, memory_order_relaxed);
        if (sub && now >= sub) lat_record(w, now - sub);
    } else if (ts >= run->t0_ns && ts <= now) {
        lat_record(w, now - ts);
    }
}

void im_settle_scan(struct bench_worker *w, uint64_t now)
{
    if (now - w->last_settle_ns < (uint64_t)BENCH_IM_SETTLE_SCAN_MS * 1000000u) return;
    w->last_settle_ns = now;
    for (uint32_t i = 0; i < w->n_conns; i++) {
        struct bench_conn *c = &w->conns[i];
        if (c->state != CS_SETTLE || now < c->settle_ns) continue;
        uint32_t t = bench_sub_topic(w->cfg, c->role_idx);
        atomic_fetch_add_explicit(&w->run->topic_subs[t], 1, memory_order_relaxed);
        conn_mark_ready(w, c);
    }
}

/* Unset bits in [lo, hi). */
static uint64_t missing_in(const struct im_track *t, uint64_t lo, uint64_t hi)
{
    uint64_t miss = 0;
    for (uint64_t s = lo; s < hi; s++)
        if (s >= t->cap || !(t->bits[s >> 3] & (1u << (s & 7)))) miss++;
    return miss;
}

void im_finish(struct bench_worker *w)
{
    const struct bench_cfg *cfg = w->cfg;
    const uint64_t *acked = w->run->pub_acked_final, *refused = w->run->pub_refused_final;
    uint64_t miss = 0;
    for (uint32_t i = 0; i < w->n_conns; i++) {
        struct bench_conn *c = &w->conns[i];
        if (!c->trk) continue;
        /* Devices that never got ready are not expected to get anything (they are in the setup errors);
         * the returning device of im-replay always is. */
        bool counted = (c->flags & CF_READY) != 0 || c->role == ROLE_REPLAY;
        for (uint32_t k = 0; counted && acked && k < cfg->publishers; k++) {
            int ti = im_track_index(cfg, c, k);
            if (ti < 0) continue;
            /* acks come in order: sequences [0, acked + refused) are answered; refused ones never arrive.
             * im-replay: the latest offline_msgs of them are due (refusals make this approximate) */
            uint64_t hi = acked[k] + refused[k], lo = 0, m;
            if (cfg->scenario == SC_IM_REPLAY) lo = hi > cfg->offline_msgs ? hi - cfg->offline_msgs : 0;
            m = missing_in(&c->trk[ti], lo, hi);
            miss += m > refused[k] ? m - refused[k] : 0;
        }
        for (uint32_t k = 0; k < c->ntrk; k++) free(c->trk[k].bits);
        free(c->trk);
        c->trk = NULL;
        c->ntrk = 0;
    }
    stat_add(&w->st.im_missing, miss);
}
