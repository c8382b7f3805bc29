/* persist.c - MQTT retained messages and persistent sessions in the store (see persist.h).
 *
 * Record values (all start with KS_V1, layouts also in docs/storage.md):
 *   session record : v | version u8 | expiry u32 | last_seen_ms u64 (wall) | has_user u8 | username str16 |
 *                    owner kind u8 | owner name str16 | owner incarnation u64     (the owner: ident.h; the
 *                    app is the key's. A record without readable owner fields is resumed by nobody:
 *                    store format 2 has them in every record, format 1 is refused at open)
 *   will           : v | qos u8 | retain u8 | delay u32 | msg_expiry u32 | topic str16 | props str32 | payload
 *   subscription   : v | qos u8 | no_local u8 | rap u8 | retain_handling u8 | sub_id u32
 *   outgoing msg   : v | qos u8 | retain u8 | state u8 | pid u16 | expire_ms u64 (wall, 0 = never) |
 *                    topic str16 | props str32 | payload            (state OUT_WAIT_PUBCOMP: no message)
 *   incoming QoS 2 : empty value
 * Subscription identifiers of queued messages are not stored (a restored message is delivered without them). */
#include "gateway/mqtt/persist.h"
#include "gateway/mqtt/deliver.h"
#include "gateway/mqtt/shared.h"
#include "gateway/mqtt/session.h"
#include "store/keyspace.h"
#include "gateway/mqtt/ext.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

static struct store *g_store;

void persist_set_store(struct store *st) { g_store = st; }
struct store *persist_store(void) { return g_store; }

/* Every write of this shard goes into the loop iteration's batch (applied in order, atomically), which
 * persist_flush submits once per iteration: one store request and one completion per iteration instead of
 * one per message, acknowledgement and delete. */
static struct store_batch *ib(struct broker *b)
{
    if (!b->ibatch) b->ibatch = store_batch_new();
    return b->ibatch;
}

uint32_t persist_pending_ops(const struct broker *b) { return b->ibatch ? store_batch_count(b->ibatch) : 0; }

static void wait_push(struct broker *b, uintptr_t w)
{
    AU_ASSERT(b->ibatch != NULL);
    if (b->iwait_n == b->iwait_cap) {
        b->iwait_cap = b->iwait_cap ? b->iwait_cap * 2 : 64;
        b->iwait = realloc(b->iwait, sizeof *b->iwait * b->iwait_cap);
        AU_ASSERT(b->iwait != NULL);
    }
    b->iwait[b->iwait_n++] = w;
}

void persist_ticket(struct broker *b, struct pub_ticket *t) { wait_push(b, (uintptr_t)t); }

static void rec_dec(struct defer_rec *r)
{
    AU_ASSERT(r->waiting > 0);
    if (--r->waiting) return;
    if (r->t) ticket_done(r->b, r->t);
    free(r);
}

struct flush_arg {
    uint64_t t0_us;
    uint32_t ops, n;
    uintptr_t w[];
};

static void flush_done(struct au_shard *sh, void *arg, int err)
{
    struct flush_arg *fa = arg;
    struct broker *b = broker_of(sh);
    uint64_t dt = au_now_us() - fa->t0_us;
    BS_INC(b, persist_flushes);
    BS_ADD(b, persist_ops, fa->ops);
    BS_ADD(b, persist_tickets, fa->n);
    BS_ADD(b, persist_us_total, dt);
    if (dt > b->stats.persist_us_max) __atomic_store_n(&b->stats.persist_us_max, dt, __ATOMIC_RELAXED);
    /* A failed write completes its tickets too, as refusals (ticket_fail): the publisher gets a negative
     * PUBACK/PUBREC (5.0) or is disconnected (3.1.1), and its later acknowledgements are not held behind it. */
    if (err) au_error("store write failed (%d): %u acknowledgement(s) become refusals", err, fa->n);
    for (uint32_t i = 0; i < fa->n; i++) {
        if (fa->w[i] & 1u) {
            struct defer_rec *r = (struct defer_rec *)(fa->w[i] & ~(uintptr_t)1);
            if (err && r->t) ticket_fail(r->t);
            rec_dec(r);
        } else {
            struct pub_ticket *t = (struct pub_ticket *)fa->w[i];
            if (err) ticket_fail(t);
            ticket_done(b, t);
        }
    }
    free(fa);
}

/* ------------------------------------------------------------------ deferred deliveries */

void persist_pass_begin(struct broker *b, struct msg *m)
{
    b->pass_m = m;
    b->pass_rec = NULL;
}

void persist_pass_end(struct broker *b, struct msg *m, uint32_t ops0)
{
    struct defer_rec *r = b->pass_rec;
    bool wrote = persist_pending_ops(b) != ops0;
    b->pass_m = NULL;
    b->pass_rec = NULL;
    if (r) {
        if (wrote) {
            r->waiting++;
            wait_push(b, (uintptr_t)r | 1u);
        }
        rec_dec(r); /* the pass's own hold */
    } else if (m->ticket) {
        if (wrote) persist_ticket(b, m->ticket);
        else ticket_done(b, m->ticket);
    }
}

/* One more outcome of a deferred delivery: acknowledged in time (hit) or stored at its deadline. */
static void defer_outcome(struct broker *b, bool hit)
{
    if (hit) b->defer_hit++;
    else b->defer_miss++;
    if (b->defer_hit + b->defer_miss < BROKER_DEFER_SAMPLE) return;
    if (b->defer_hit * BROKER_DEFER_MIN_HIT_DIV < BROKER_DEFER_SAMPLE) b->defer_skip = BROKER_DEFER_SKIP;
    b->defer_hit = b->defer_miss = 0;
}

static void unlink_node(struct broker *b, struct defer_node *n)
{
    if (n->prev) n->prev->next = n->next;
    else b->dhead = n->next;
    if (n->next) n->next->prev = n->prev;
    else b->dtail = n->prev;
}

bool persist_defer(struct broker *b, struct session *s, struct outmsg *om)
{
    struct msg *m = om->m;
    if (!g_store || !s->persistent || om->qos != 1 || m != b->pass_m || !m->ticket || m->ext) return false;
    if (b->defer_skip) {
        b->defer_skip--;
        return false;
    }
    struct defer_rec *r = b->pass_rec;
    if (!r) {
        r = malloc(sizeof *r);
        AU_ASSERT(r != NULL);
        r->b = b;
        r->t = m->ticket;
        r->waiting = 1; /* the pass's own hold, released by persist_pass_end */
        b->pass_rec = r;
    }
    struct defer_node *n = malloc(sizeof *n);
    AU_ASSERT(n != NULL);
    n->om = om;
    n->s = s;
    n->rec = r;
    n->at = b->shard->now_ms + BROKER_STORE_DEFER_MS;
    n->next = NULL;
    n->prev = b->dtail;
    if (b->dtail) b->dtail->next = n;
    else b->dhead = n;
    b->dtail = n;
    om->dn = n;
    r->waiting++;
    BS_INC(b, persist_deferred);
    return true;
}

void persist_undefer(struct outmsg *om)
{
    struct defer_node *n = om->dn;
    if (!n) return;
    struct broker *b = n->rec->b;
    om->dn = NULL;
    unlink_node(b, n);
    BS_INC(b, persist_defer_acked);
    defer_outcome(b, true);
    rec_dec(n->rec);
    free(n);
}

int persist_defer_due(struct broker *b, uint64_t now_ms)
{
    struct defer_node *n;
    while ((n = b->dhead) && n->at <= now_ms) {
        unlink_node(b, n);
        n->om->dn = NULL;
        uint32_t ops0 = persist_pending_ops(b);
        persist_out_add(b, n->s, n->om);
        BS_INC(b, persist_defer_stored);
        defer_outcome(b, false);
        if (persist_pending_ops(b) != ops0) wait_push(b, (uintptr_t)n->rec | 1u); /* done when durable */
        else rec_dec(n->rec);                                                     /* no longer kept */
        free(n);
    }
    return n ? (int)(n->at - now_ms) : -1;
}

void persist_flush(struct broker *b)
{
    struct store_batch *sb = b->ibatch;
    if (!sb) return;
    b->ibatch = NULL;
    AU_ASSERT(g_store != NULL);
    struct flush_arg *fa = malloc(sizeof *fa + sizeof fa->w[0] * b->iwait_n);
    AU_ASSERT(fa != NULL);
    fa->t0_us = au_now_us();
    fa->ops = store_batch_count(sb);
    fa->n = b->iwait_n;
    if (fa->n) memcpy(fa->w, b->iwait, sizeof fa->w[0] * fa->n);
    b->iwait_n = 0;
    store_write(g_store, b->shard->id, sb, flush_done, fa);
}

static uint64_t wall_from_mono(const struct broker *b, uint64_t mono)
{
    if (!mono) return 0;
    return au_wall_ms() + (mono > b->shard->now_ms ? mono - b->shard->now_ms : 0);
}

static uint64_t mono_from_wall(const struct broker *b, uint64_t wall)
{
    if (!wall) return 0;
    uint64_t now = au_wall_ms();
    return b->shard->now_ms + (wall > now ? wall - now : 0) + 1;
}

/* ------------------------------------------------------------------ retained */

void persist_retained(struct broker *b, const struct msg *m)
{
    if (!g_store) return;
    uint8_t key[KS_KEY_MAX];
    size_t kl = ks_retained(key, m->app, msg_topic(m), m->topic_len);
    struct store_batch *sb = ib(b);
    if (!m->payload_len) {
        store_batch_del(sb, key, kl);
    } else {
        struct ks_retained_rec r = { .qos = m->qos, .stored_ms = au_wall_ms(), .expire_ms = wall_from_mono(b, m->expire_at),
                                     .props = msg_props(m), .props_len = m->props_len, .payload = msg_payload(m),
                                     .payload_len = m->payload_len };
        size_t n = ks_retained_size(m->props_len, m->payload_len);
        uint8_t *v = malloc(n);
        AU_ASSERT(v != NULL);
        AU_ASSERT(ks_retained_encode(v, n, &r) == n);
        store_batch_put(sb, key, kl, v, n);
        free(v);
    }
}

/* ------------------------------------------------------------------ sessions */

void persist_session(struct broker *b, struct session *s)
{
    if (!g_store || !s->persistent) return;
    uint8_t key[KS_KEY_MAX];
    struct store_batch *sb = ib(b);
    size_t kl = ks_session_kind(key, s->app, s->client_id, s->cid_len, KS_SESS_RECORD);
    uint8_t stackv[64 + 1024 + 1024];
    size_t vcap = 64 + 1024 + (size_t)s->ident.name_len;
    uint8_t *v = vcap <= sizeof stackv ? stackv : malloc(vcap);
    AU_ASSERT(v != NULL);
    struct ks_w w = ks_w_init(v, vcap);
    ks_w_u8(&w, KS_V1);
    ks_w_u8(&w, s->version);
    ks_w_u32(&w, s->expiry);
    ks_w_u64(&w, au_wall_ms());
    size_t ul = s->username ? strlen(s->username) : 0;
    if (ul > 1024) ul = 1024;
    ks_w_u8(&w, s->username ? 1 : 0);
    ks_w_str16(&w, s->username ? s->username : "", ul);
    ks_w_u8(&w, s->ident.kind);
    ks_w_str16(&w, s->ident.name ? s->ident.name : "", s->ident.name_len);
    ks_w_u64(&w, s->ident.incarnation);
    AU_ASSERT(!w.err);
    store_batch_put(sb, key, kl, v, w.len);
    if (v != stackv) free(v);

    kl = ks_session_kind(key, s->app, s->client_id, s->cid_len, KS_SESS_WILL);
    if (s->will.m) {
        const struct msg *m = s->will.m;
        size_t n = 32 + m->topic_len + m->props_len + m->payload_len;
        uint8_t *wv = malloc(n);
        AU_ASSERT(wv != NULL);
        struct ks_w ww = ks_w_init(wv, n);
        ks_w_u8(&ww, KS_V1);
        ks_w_u8(&ww, m->qos);
        ks_w_u8(&ww, m->retain);
        ks_w_u32(&ww, s->will.delay);
        ks_w_u32(&ww, s->will_expiry);
        ks_w_str16(&ww, msg_topic(m), m->topic_len);
        ks_w_str32(&ww, msg_props(m), m->props_len);
        ks_w_bytes(&ww, msg_payload(m), m->payload_len);
        AU_ASSERT(!ww.err);
        store_batch_put(sb, key, kl, wv, ww.len);
        free(wv);
    } else {
        store_batch_del(sb, key, kl);
    }
    s->stored = 1;
}

void persist_session_delete(struct broker *b, struct session *s)
{
    if (!g_store || !s->stored) return;
    uint8_t key[KS_KEY_MAX];
    struct store_batch *sb = ib(b);
    store_batch_del(sb, key, ks_session_kind(key, s->app, s->client_id, s->cid_len, KS_SESS_RECORD));
    store_batch_del(sb, key, ks_session_kind(key, s->app, s->client_id, s->cid_len, KS_SESS_WILL));
    for (uint32_t i = 0; i < s->nsubs; i++)
        store_batch_del(sb, key, ks_session_sub(key, s->app, s->client_id, s->cid_len, s->subs[i].filter, s->subs[i].len));
    for (struct outmsg *o = s->if_head; o; o = o->next)
        if (o->store_seq) store_batch_del(sb, key, ks_session_out(key, s->app, s->client_id, s->cid_len, o->store_seq));
    for (struct outmsg *o = s->q_head; o; o = o->next)
        if (o->store_seq) store_batch_del(sb, key, ks_session_out(key, s->app, s->client_id, s->cid_len, o->store_seq));
    for (uint16_t i = 0; i < s->qos2_in_n; i++)
        store_batch_del(sb, key, ks_session_qos2in(key, s->app, s->client_id, s->cid_len, s->qos2_in[i]));
    s->stored = 0;
}

void persist_sub(struct broker *b, struct session *s, const uint8_t *filter, uint16_t len, const struct sub_opts *o,
                 bool del)
{
    if (!g_store || !s->persistent) return;
    uint8_t key[KS_KEY_MAX];
    size_t kl = ks_session_sub(key, s->app, s->client_id, s->cid_len, filter, len);
    struct store_batch *sb = ib(b);
    if (del) {
        store_batch_del(sb, key, kl);
    } else {
        uint8_t v[16];
        struct ks_w w = ks_w_init(v, sizeof v);
        ks_w_u8(&w, KS_V1);
        ks_w_u8(&w, o->qos);
        ks_w_u8(&w, o->no_local);
        ks_w_u8(&w, o->retain_as_published);
        ks_w_u8(&w, o->retain_handling);
        ks_w_u32(&w, o->sub_id);
        store_batch_put(sb, key, kl, v, w.len);
    }
}

static void put_out(struct broker *b, struct store_batch *sb, struct session *s, const struct outmsg *om)
{
    uint8_t key[KS_KEY_MAX];
    size_t kl = ks_session_out(key, s->app, s->client_id, s->cid_len, om->store_seq);
    const struct msg *m = om->m;
    size_t n = 32 + (m ? m->topic_len + m->props_len + m->payload_len : 0u);
    uint8_t stackv[512];
    uint8_t *v = n <= sizeof stackv ? stackv : malloc(n);
    AU_ASSERT(v != NULL);
    struct ks_w w = ks_w_init(v, n);
    ks_w_u8(&w, KS_V1);
    ks_w_u8(&w, om->qos);
    ks_w_u8(&w, om->retain);
    ks_w_u8(&w, om->state);
    ks_w_u16(&w, om->pid);
    ks_w_u64(&w, m ? wall_from_mono(b, m->expire_at) : 0);
    if (m) {
        ks_w_str16(&w, msg_topic(m), m->topic_len);
        ks_w_str32(&w, msg_props(m), m->props_len);
        ks_w_bytes(&w, msg_payload(m), m->payload_len);
    }
    AU_ASSERT(!w.err);
    store_batch_put(sb, key, kl, v, w.len);
    if (v != stackv) free(v);
}

void persist_out_add(struct broker *b, struct session *s, struct outmsg *om)
{
    if (!g_store || !s->persistent) return;
    om->store_seq = ++s->out_seq;
    put_out(b, ib(b), s, om);
}

void persist_out_del(struct broker *b, struct session *s, struct outmsg *om)
{
    if (!g_store || !om->store_seq) return;
    uint8_t key[KS_KEY_MAX];
    store_batch_del(ib(b), key, ks_session_out(key, s->app, s->client_id, s->cid_len, om->store_seq));
    om->store_seq = 0;
}

void persist_out_pubrec(struct broker *b, struct session *s, struct outmsg *om)
{
    if (!g_store || !om->store_seq) return;
    put_out(b, ib(b), s, om); /* om->m is gone: the record keeps only the id and the state */
}

void persist_qos2in(struct broker *b, struct session *s, uint16_t pid, bool del)
{
    if (!g_store || !s->persistent) return;
    uint8_t key[KS_KEY_MAX];
    size_t kl = ks_session_qos2in(key, s->app, s->client_id, s->cid_len, pid);
    if (del) store_batch_del(ib(b), key, kl);
    else store_batch_put(ib(b), key, kl, "", 0);
}

/* ------------------------------------------------------------------ loading */

struct rload {
    struct broker *b;
    uint32_t over;                /* records not loaded: over their app's budget (count or bytes) */
};

/* Every shard loads its replica from the same records in the same (key) order under the same budget, so the
 * replicas agree on which messages fit; the ones that do not stay on disk, unserved (a raised budget loads
 * them again at the next start). */
static bool load_retained(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct rload *rl = arg;
    struct broker *b = rl->b;
    struct ks_retained_rec r;
    if (kl < 5 || kl - 5 > AU_MQTT_MAX_TOPIC || ks_retained_decode(v, vl, &r) != 0) {
        au_warn("skipping a damaged retained record");
        return true;
    }
    uint32_t app = au_rd32(k + 1);
    if (r.expire_ms && r.expire_ms <= au_wall_ms()) return true;
    const char *rsv = broker_ext_reserved(k + 5, kl - 5);
    if (rsv) { /* set by a will before those were refused: never served */
        if (b->shard->id == 0) { /* every shard loads the replica; one deletes the record */
            au_warn("deleting a retained message on a reserved topic (%s)", rsv);
            store_batch_del(ib(b), k, kl);
        }
        return true;
    }
    struct msg *m = msg_new_raw(app, k + 5, (uint16_t)(kl - 5), r.props, r.props_len, r.payload, (uint32_t)r.payload_len,
                                r.qos, true, 0, mono_from_wall(b, r.expire_ms));
    int rc = retained_set(&b->retained, app, msg_topic(m), m->topic_len, m);
    if (rc < 0) {
        if (rc == TOPIC_EQUOTA) rl->over++;
        msg_unref(m);
    }
    return true;
}

struct load_ctx {
    struct broker *b;
    struct session *cur;
    uint32_t sessions, subs, outs;
};

static struct outmsg *out_from_record(struct broker *b, struct session *s, uint64_t seq, const uint8_t *v, size_t vl)
{
    struct ks_r r = ks_r_init(v, vl);
    if (ks_r_u8(&r) != KS_V1) return NULL;
    struct outmsg *om = calloc(1, sizeof *om);
    AU_ASSERT(om != NULL);
    om->store_seq = seq;
    om->qos = ks_r_u8(&r);
    om->retain = ks_r_u8(&r);
    om->state = ks_r_u8(&r);
    om->pid = ks_r_u16(&r);
    uint64_t exp = ks_r_u64(&r);
    if (om->state != OUT_WAIT_PUBCOMP) {
        uint16_t tl;
        uint32_t pl;
        size_t payl;
        const uint8_t *t = ks_r_str16(&r, &tl);
        const uint8_t *pr = ks_r_str32(&r, &pl);
        const uint8_t *pay = ks_r_rest(&r, &payl);
        if (r.err || !t) {
            free(om);
            return NULL;
        }
        om->m = msg_new_raw(s->app, t, tl, pr, pl, pay, (uint32_t)payl, om->qos, om->retain, 0, mono_from_wall(b, exp));
        om->state = OUT_QUEUED;
        om->pid = 0;
    }
    if (r.err || om->qos < 1 || om->qos > 2) {
        msg_unref(om->m);
        free(om);
        return NULL;
    }
    return om;
}

static bool load_session_key(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct load_ctx *lc = arg;
    struct broker *b = lc->b;
    struct ks_r r = ks_r_init(k, kl);
    (void)ks_r_u8(&r);
    uint32_t app = ks_r_u32(&r);
    uint16_t cl;
    const uint8_t *cid = ks_r_str16(&r, &cl);
    uint8_t kind = ks_r_u8(&r);
    if (r.err || cl > AU_MQTT_MAX_CLIENT_ID) return true;
    if (broker_owner_shard(b, app, cid, cl) != b->shard->id) return true;
    struct session *s = lc->cur;
    if (!s || s->app != app || s->cid_len != cl || memcmp(s->client_id, cid, cl) != 0) {
        s = session_find(b, app, cid, cl);
        if (!s) {
            s = session_create(b, app, cid, cl);
            s->stored = 1;
            s->persistent = 1;
            lc->sessions++;
        }
        lc->cur = s;
    }
    struct ks_r vr = ks_r_init(v, vl);
    switch (kind) {
    case KS_SESS_RECORD: {
        if (ks_r_u8(&vr) != KS_V1) break;
        s->version = ks_r_u8(&vr);
        s->expiry = ks_r_u32(&vr);
        uint64_t last_seen = ks_r_u64(&vr);
        uint8_t has_user = ks_r_u8(&vr);
        uint16_t ul;
        const uint8_t *u = ks_r_str16(&vr, &ul);
        if (vr.err) break;
        free(s->username);
        s->username = has_user ? strndup((const char *)u, ul) : NULL;
        broker_ext_session_restored(b, s); /* e.g. IM: the user of an <appkey>:<user> login */
        uint8_t okind = ks_r_u8(&vr);
        uint16_t nl;
        const uint8_t *name = ks_r_str16(&vr, &nl);
        uint64_t inc = ks_r_u64(&vr);
        if (vr.err) sess_ident_set(&s->ident, SESS_ID_NONE, app, NULL, 0, 0); /* damaged: nobody resumes it */
        else sess_ident_set(&s->ident, okind, app, (const char *)name, nl, inc);
        /* Restored under today's limits (a 3.1.1 session kept forever before persistent_session_expiry). */
        uint32_t cap = s->version == MQTT_V5 ? b->cfg->max_session_expiry : session_v3_expiry(b->cfg);
        if (s->expiry > cap) s->expiry = cap;
        /* Offline since it was last seen: the expiry runs from then. */
        uint64_t now = au_wall_ms(), gone = now > last_seen ? now - last_seen : 0;
        uint64_t left = s->expiry == UINT32_MAX ? 0 : (uint64_t)s->expiry * 1000u;
        s->expire_at = s->expiry == UINT32_MAX ? 0 : b->shard->now_ms + (left > gone ? left - gone : 1);
        break;
    }
    case KS_SESS_WILL: {
        if (ks_r_u8(&vr) != KS_V1) break;
        uint8_t qos = ks_r_u8(&vr), retain = ks_r_u8(&vr);
        uint32_t delay = ks_r_u32(&vr), wexp = ks_r_u32(&vr);
        uint16_t tl;
        uint32_t pl;
        size_t payl;
        const uint8_t *t = ks_r_str16(&vr, &tl);
        const uint8_t *pr = ks_r_str32(&vr, &pl);
        const uint8_t *pay = ks_r_rest(&vr, &payl);
        if (vr.err) break;
        msg_unref(s->will.m);
        s->will.m = msg_new_raw(app, t, tl, pr, pl, pay, (uint32_t)payl, qos, retain, s->uid, 0);
        s->will.delay = delay;
        s->will_expiry = wexp;
        break;
    }
    case KS_SESS_SUB: {
        size_t fl;
        const uint8_t *f = ks_r_rest(&r, &fl);
        if (ks_r_u8(&vr) != KS_V1 || !f || fl > AU_MQTT_MAX_TOPIC) break;
        struct sub_opts o = { 0 };
        o.qos = ks_r_u8(&vr);
        o.no_local = ks_r_u8(&vr);
        o.retain_as_published = ks_r_u8(&vr);
        o.retain_handling = ks_r_u8(&vr);
        o.sub_id = ks_r_u32(&vr);
        struct topic_sub ts;
        bool ext = broker_ext_sub_claim(s, f, fl) != 0; /* served by an extension: not in the trie */
        if (vr.err || (!ext && !topic_sub_parse(f, fl, &ts))) break;
        if (!ext && sub_add(&b->subs, app, ts.filter, ts.filter_len, s, &o, ts.share, ts.share_len) < 0) break;
        s->subs = realloc(s->subs, sizeof *s->subs * (s->nsubs + 1));
        AU_ASSERT(s->subs != NULL);
        struct sess_sub *ss = &s->subs[s->nsubs++];
        ss->filter = malloc(fl);
        AU_ASSERT(ss->filter != NULL);
        memcpy(ss->filter, f, fl);
        ss->len = (uint16_t)fl;
        ss->opts = o;
        BS_INC(b, subscriptions);
        if (!ext && ts.share) shared_member(b, app, ts.share, ts.share_len, ts.filter, ts.filter_len, +1);
        lc->subs++;
        break;
    }
    case KS_SESS_OUT: {
        uint64_t seq = ks_r_u64(&r);
        if (r.err) break;
        struct outmsg *om = out_from_record(b, s, seq, v, vl);
        if (!om) break;
        if (seq > s->out_seq) s->out_seq = seq;
        if (om->state == OUT_WAIT_PUBCOMP) {
            if (s->if_tail) s->if_tail->next = om;
            else s->if_head = om;
            s->if_tail = om;
            s->inflight++;
        } else {
            if (s->q_tail) s->q_tail->next = om;
            else s->q_head = om;
            s->q_tail = om;
            s->queued++;
        }
        lc->outs++;
        break;
    }
    case KS_SESS_QOS2IN: {
        uint16_t pid = ks_r_u16(&r);
        if (r.err) break;
        if (s->qos2_in_n == s->qos2_in_cap) {
            s->qos2_in_cap = s->qos2_in_cap ? (uint16_t)(s->qos2_in_cap * 2) : 8;
            s->qos2_in = realloc(s->qos2_in, sizeof(uint16_t) * s->qos2_in_cap);
            AU_ASSERT(s->qos2_in != NULL);
        }
        s->qos2_in[s->qos2_in_n++] = pid;
        break;
    }
    default: break;
    }
    return true;
}

void persist_load(struct broker *b)
{
    if (!g_store) return;
    uint8_t p[1], e[1];
    p[0] = KS_MQTT_RETAINED;
    e[0] = KS_MQTT_RETAINED + 1;
    struct rload rl = { .b = b };
    long n = store_scan_sync(g_store, p, 1, e, 1, 0, load_retained, &rl);
    if (rl.over)
        au_warn("retained: %u stored messages not loaded: over their app's budget (max_retained_bytes=%u, "
                "max_retained=%u)", rl.over, b->cfg ? b->cfg->max_retained_bytes : 0, b->cfg ? b->cfg->max_retained : 0);
    struct load_ctx lc = { .b = b };
    p[0] = KS_MQTT_SESSION;
    e[0] = KS_MQTT_SESSION + 1;
    store_scan_sync(g_store, p, 1, e, 1, 0, load_session_key, &lc);
    /* Restored sessions are offline: arm their expiry (or end the ones already expired). */
    struct au_hash_iter it;
    au_hash_iter_init(&b->sessions, &it);
    while (au_hash_next(&b->sessions, &it)) {
        struct session *s = it.value;
        if (!s->expiry) s->expiry = UINT32_MAX; /* a record-less session (damaged): keep until a clean connect */
        if (s->expire_at && s->expire_at <= b->shard->now_ms + 1) {
            au_hash_iter_del(&b->sessions, &it);
            persist_session_delete(b, s);
            session_free(b, s);
            continue;
        }
        if (s->expire_at) au_timer_arm(&b->shard->timers, &s->exp_timer, s->expire_at);
    }
    __atomic_store_n(&b->stats.retained, b->retained.msgs, __ATOMIC_RELAXED);
    au_info("loaded retained=%ld sessions=%u subscriptions=%u queued=%u", n, lc.sessions, lc.subs, lc.outs);
}
