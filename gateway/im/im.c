/* im.c - IM messages: sequencing on the conversation's owner shard, durable storage, delivery to every
 * online device of the recipients, offline replay from per-device cursors (see im.h for the records).
 *
 * The path of one message:
 *   1. im/send PUBLISH (or POST /v1/messages) on shard X: validated there (imsend.c / REST).
 *   2. im_send posts it to the conversation's owner shard Y (conv % shards), which gives it the next
 *      sequence number, a msgid and a time, renders the JSON the devices get, and writes message, msgid
 *      index, conversation head, participants and client-msg-id in one batch (group commit).
 *   3. Once durable, Y posts one immutable `struct msg` to every shard; each delivers it as QoS 1 on
 *      im/inbox to the local online devices of the recipients (the inbox index), and Y answers X (PUBACK /
 *      HTTP 201). Devices that were away get it at their next login by replay from the store.
 *   4. A device's PUBACK moves its cursor (KS_IM_CURSOR) for that conversation. */
#include "gateway/im/im.h"
#include "gateway/im/dir.h"
#include "gateway/im/imconn.h"
#include "gateway/im/imjson.h"
#include "gateway/im/auth.h"
#include "gateway/mqtt/broker.h"
#include "gateway/mqtt/deliver.h"
#include "gateway/mqtt/session.h"
#include "gateway/mqtt/persist.h"
#include "store/keyspace.h"
#include "core/log.h"
#include "gateway/im/rest.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

static const char k_inbox[] = "im/inbox";

#define INBOX_KEY_LEN 12u        /* the inbox index key: app u32 + uid u64 */
#define CONV_KEY_LEN  12u        /* the owner shard's conversation key: app u32 + conv u64 */

/* ------------------------------------------------------------------ per-shard state */

struct inbox_entry {             /* the online IM sessions of one user incarnation on this shard */
    struct session **v;
    uint32_t n, cap;
    uint8_t key[INBOX_KEY_LEN];  /* app u32 + uid u64 */
};

struct conv_state {              /* owner shard: sequence of a conversation of an app */
    uint8_t key[CONV_KEY_LEN];   /* app u32 + conv u64: apps never share a conversation's state */
    uint32_t app;
    uint64_t conv;
    uint64_t last_seq;
    bool loaded, loading;
    bool uconv_stored;           /* both users' KS_IM_UCONV keys are durable (written by a committed message) */
    struct send_job *waiting, *waiting_tail;
    struct send_job *head_job;   /* latest message of the batch being built: its head is written at the flush */
    struct conv_state *dirty_next;
};

struct cursor_pend {             /* a cursor move not written yet: the latest acknowledged sequence */
    uint64_t seq;
    uint32_t kl;
    uint8_t key[];               /* KS_IM_CURSOR key */
};

struct im_shard {
    struct au_timer sweep_timer; /* shard 0: retention sweep */
    struct au_shard *shard;
    bool sweeping;
    uint64_t swept;              /* messages deleted by the retention sweep (total) */
    struct au_hash inbox;        /* app + uid -> inbox_entry */
    struct au_hash convs;        /* app + conv -> conv_state (this shard owns them) */
    uint32_t msgid_counter;
    uint64_t msgid_ms;
    struct au_hash cursors;      /* KS_IM_CURSOR key -> cursor_pend, waiting for the write in flight */
    bool cursor_busy;            /* a cursor write is in flight */
    /* Messages sequenced here go into one store batch per commit round (see "sending"). */
    struct store_batch *mb;      /* being built (NULL: empty) */
    struct send_job *mb_jobs, **mb_tail;
    struct conv_state *mb_dirty; /* conversations with a message in mb: their head is added at the flush */
    unsigned mb_inflight;        /* batches submitted, not completed */
    bool mb_posted;              /* a flush is posted to this shard's next loop iteration */
};

/* struct im_sess (per IM session, in the session's extension slot): imconn.h */

static struct im_shard *ims(struct au_shard *s) { return s->slot.im; }

uint64_t im_conv_single_peer(uint64_t conv, uint64_t uid)
{
    if (im_conv_is_group(conv)) return 0;
    /* hi = the largest h with h * (h + 1) / 2 <= conv: a double estimate, then exact integer steps */
    uint64_t hi = (uint64_t)((sqrt(8.0 * (double)conv + 1.0) - 1.0) / 2.0);
    while (hi > 0 && hi * (hi + 1) / 2 > conv) hi--;
    while ((hi + 1) * (hi + 2) / 2 <= conv) hi++;
    uint64_t lo = conv - hi * (hi + 1) / 2;
    if (uid == hi) return lo;
    if (uid == lo) return hi;
    return 0;
}

/* The inbox index key (a deleted user's sessions never get a later same-name user's mail). */
static void inbox_key(uint8_t *out, uint32_t app, uint64_t uid)
{
    memcpy(out, &app, 4);
    memcpy(out + 4, &uid, 8);
}

/* ------------------------------------------------------------------ the inbox index */

static void inbox_add(struct au_shard *sh, struct session *s)
{
    struct im_shard *st = ims(sh);
    uint8_t key[INBOX_KEY_LEN];
    inbox_key(key, s->app, im_sess_of(s)->uid);
    struct inbox_entry *e = au_hash_get(&st->inbox, key, INBOX_KEY_LEN);
    if (!e) {
        e = calloc(1, sizeof *e);
        AU_ASSERT(e != NULL);
        memcpy(e->key, key, INBOX_KEY_LEN);
        au_hash_put(&st->inbox, e->key, INBOX_KEY_LEN, e);
    }
    for (uint32_t i = 0; i < e->n; i++)
        if (e->v[i] == s) return;
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 2;
        e->v = realloc(e->v, sizeof *e->v * e->cap);
        AU_ASSERT(e->v != NULL);
    }
    e->v[e->n++] = s;
}

static void inbox_del(struct au_shard *sh, struct session *s)
{
    struct im_shard *st = ims(sh);
    uint8_t key[INBOX_KEY_LEN];
    inbox_key(key, s->app, im_sess_of(s)->uid);
    struct inbox_entry *e = au_hash_get(&st->inbox, key, INBOX_KEY_LEN);
    if (!e) return;
    for (uint32_t i = 0; i < e->n; i++)
        if (e->v[i] == s) {
            e->v[i] = e->v[--e->n];
            break;
        }
    if (!e->n) {
        au_hash_del(&st->inbox, e->key, INBOX_KEY_LEN);
        free(e->v);
        free(e);
    }
}

int im_user_online_devices(struct au_shard *sh, uint32_t app, const char *user)
{
    struct dir_user *u = im_dir_user(im_dir_of(sh), app, user, strlen(user));
    if (!u) return 0;
    uint8_t key[INBOX_KEY_LEN];
    inbox_key(key, app, u->uid);
    struct inbox_entry *e = au_hash_get(&ims(sh)->inbox, key, INBOX_KEY_LEN);
    return e ? (int)e->n : 0;
}

/* ------------------------------------------------------------------ delivery */

static void deliver_to_session(struct broker *b, struct session *s, struct msg *m)
{
    struct im_sess *is = im_sess_of(s);
    if (!is || !is->registered) return;
    if (is->replaying) {
        /* Held until the replay of stored messages is done, so a conversation stays in order. */
        if (is->nheld == is->capheld) {
            is->capheld = is->capheld ? is->capheld * 2 : 8;
            is->held = realloc(is->held, sizeof *is->held * is->capheld);
            AU_ASSERT(is->held != NULL);
        }
        is->held[is->nheld++] = msg_ref(m);
        return;
    }
    session_deliver(b, s, m, 1, false, NULL, 0);
}

static void deliver_user(struct broker *b, struct msg *m, uint64_t uid)
{
    uint8_t key[INBOX_KEY_LEN];
    inbox_key(key, m->app, uid);
    struct inbox_entry *e = au_hash_get(&ims(b->shard)->inbox, key, INBOX_KEY_LEN);
    if (!e) return;
    for (uint32_t i = 0; i < e->n; i++) deliver_to_session(b, e->v[i], m);
}

/* ------------------------------------------------------------------ sending */

struct send_job {
    struct au_xmsg x;
    struct send_job *next;       /* waiting for the conversation's sequence to load */
    struct im_send_req *req;
    struct conv_state *cs;       /* set when this job wrote the KS_IM_UCONV keys */
    uint64_t conv;
    int from;
    im_send_done_fn done;
    void *arg;
    /* result */
    int err;
    uint64_t msgid, ctime_ms, seq;
    struct msg *m;
    uint64_t *uids;              /* recipients by incarnation (single chat: both users; events: + extras) */
    uint32_t nuids;
    uint64_t uids_inline[2];     /* uids for a single chat without extras (no allocation) */
};

static void job_uids_free(struct send_job *j)
{
    if (j->uids != j->uids_inline) free(j->uids);
    j->uids = NULL;
    j->nuids = 0;
}

static void req_free(struct im_send_req *r)
{
    if (!r) return;
    free(r->json);
    free(r->extra_recipients);
    free(r);
}

static void job_reply_handler(struct au_shard *self, struct au_xmsg *x)
{
    struct send_job *j = (struct send_job *)x;
    if (j->done) j->done(self, j->arg, j->err, j->msgid, j->ctime_ms);
    req_free(j->req);
    free(j);
}

/* A job still queued when its target shard stopped (shutdown): release what it holds. */
static void job_dispose(struct au_xmsg *x)
{
    struct send_job *j = (struct send_job *)x;
    if (j->done) j->done(NULL, j->arg, IM_ECANCELED, 0, 0);
    req_free(j->req);
    msg_unref(j->m);
    job_uids_free(j);
    free(j);
}

static void job_reply(struct au_shard *owner, struct send_job *j)
{
    j->x.handler = job_reply_handler;
    if (j->from == owner->id) job_reply_handler(owner, &j->x);
    else au_shard_post_disposable(owner, j->from, &j->x, job_dispose);
}

/* Answers of a committed batch for one sending shard: a chain of jobs (->next), one post. */
static void job_chain_handler(struct au_shard *self, struct au_xmsg *x)
{
    for (struct send_job *j = (struct send_job *)x, *n; j; j = n) {
        n = j->next;
        job_reply_handler(self, &j->x);
    }
}

static void job_chain_dispose(struct au_xmsg *x)
{
    for (struct send_job *j = (struct send_job *)x, *n; j; j = n) {
        n = j->next;
        job_dispose(&j->x);
    }
}

static uint64_t next_msgid(struct au_shard *sh)
{
    struct im_shard *st = ims(sh);
    uint64_t ms = au_wall_ms();
    if (ms <= st->msgid_ms) {
        if (++st->msgid_counter > 0xffff) { /* 65536 per ms per shard: borrow the next millisecond */
            st->msgid_ms++;
            st->msgid_counter = 0;
        }
        ms = st->msgid_ms;
    } else {
        st->msgid_ms = ms;
        st->msgid_counter = 0;
    }
    return (ms << 22) | ((uint64_t)(sh->id & 0x3f) << 16) | st->msgid_counter;
}

/* The deliveries of a committed message batch: one message per shard for the whole batch (instead of one per
 * message), each entry delivered in batch order, i.e. in sequence order per conversation. */
struct deliver_ent {
    struct msg *m;
    uint64_t gid;
    uint32_t uoff, nuids;        /* recipients (incarnations) in the batch's uids[] */
};

struct deliver_batch {
    struct au_xmsg x;
    uint32_t n;
    struct deliver_ent *e;       /* [n], in the same allocation */
    uint64_t *uids;              /* in the same allocation */
};

static void deliver_batch_handler(struct au_shard *self, struct au_xmsg *x)
{
    struct deliver_batch *db = (struct deliver_batch *)x;
    struct broker *b = broker_of(self);
    for (uint32_t k = 0; k < db->n; k++) {
        struct deliver_ent *e = &db->e[k];
        struct msg *m = e->m;
        deliver_begin(b, m);
        if (e->gid) {
            struct dir_group *g = im_dir_group(im_dir_of(self), m->app, e->gid);
            if (g)
                for (uint32_t i = 0; i < g->nmembers; i++) deliver_user(b, m, g->members[i]->uid);
        }
        for (uint32_t i = 0; i < e->nuids; i++) deliver_user(b, m, db->uids[e->uoff + i]);
        deliver_end(b);
        msg_unref(m);
    }
    free(db);
}

static void deliver_batch_dispose(struct au_xmsg *x)
{
    struct deliver_batch *db = (struct deliver_batch *)x;
    for (uint32_t k = 0; k < db->n; k++) msg_unref(db->e[k].m);
    free(db);
}

static void broadcast_batch(struct au_shard *sh, struct send_job *jobs)
{
    uint32_t n = 0;
    size_t nu = 0;
    for (struct send_job *j = jobs; j; j = j->next) {
        n++;
        nu += j->nuids;
    }
    size_t sz = sizeof(struct deliver_batch) + (size_t)n * sizeof(struct deliver_ent) + nu * sizeof(uint64_t);
    for (int i = 0; i < sh->nshards; i++) {
        struct deliver_batch *db = malloc(sz);
        AU_ASSERT(db != NULL);
        memset(&db->x, 0, sizeof db->x);
        db->x.handler = deliver_batch_handler;
        db->n = n;
        db->e = (struct deliver_ent *)(void *)(db + 1);
        db->uids = (uint64_t *)(void *)(db->e + n);
        uint32_t k = 0, uo = 0;
        for (struct send_job *j = jobs; j; j = j->next, k++) {
            db->e[k] = (struct deliver_ent){ msg_ref(j->m), j->req->target_group ? j->req->gid : 0, uo, j->nuids };
            if (j->nuids) memcpy(db->uids + uo, j->uids, j->nuids * sizeof(uint64_t));
            uo += j->nuids;
        }
        if (i == sh->id) deliver_batch_handler(sh, &db->x);
        else au_shard_post_disposable(sh, i, &db->x, deliver_batch_dispose);
    }
}

/* A message whose batch could not be stored: answered with the error, delivered to nobody. */
static void job_failed(struct au_shard *sh, struct send_job *j)
{
    j->err = IM_ESTORE;
    msg_unref(j->m);
    j->m = NULL;
    job_uids_free(j);
    job_reply(sh, j);
}

static void put_u64(uint8_t *p, uint64_t v)
{
    au_wr32(p, (uint32_t)(v >> 32));
    au_wr32(p + 4, (uint32_t)v);
}

/* Message batches. The owner shard puts the records of the messages it sequences during one loop iteration
 * into one store batch, submitted at the start of the next iteration (a message posted to itself), and
 * keeps at most IM_MSG_INFLIGHT such batches submitted; while that many are in flight, newly sequenced
 * messages gather in the next one, submitted when one completes. The store's writer commits whatever is
 * queued in one fsync anyway, so this costs no extra wait; it writes each conversation's head (KS_IM_CONV:
 * last_seq) once per batch instead of once per message, in the same atomic batch as the messages (a head
 * never lags a stored message), with one store request and one completion for the lot. */
#define IM_MSG_INFLIGHT 4u

struct mb_commit {
    struct send_job *jobs;
};

static void mb_flush(struct au_shard *sh, struct im_shard *st);

static void mb_tick(struct au_shard *sh, struct au_xmsg *x)
{
    struct im_shard *st = ims(sh);
    free(x);
    st->mb_posted = false;
    if (st->mb && st->mb_inflight < IM_MSG_INFLIGHT) mb_flush(sh, st);
}

static void mb_tick_dispose(struct au_xmsg *x) { free(x); } /* shutdown: im_shard_fini cancels the batch */

static void mb_schedule(struct au_shard *sh, struct im_shard *st)
{
    if (st->mb_posted || st->mb_inflight >= IM_MSG_INFLIGHT) return; /* a completion flushes it then */
    struct au_xmsg *x = calloc(1, sizeof *x);
    AU_ASSERT(x != NULL);
    x->handler = mb_tick;
    st->mb_posted = true;
    au_shard_post_disposable(sh, sh->id, x, mb_tick_dispose);
}

static void mb_committed(struct au_shard *sh, void *arg, int err)
{
    struct mb_commit *c = arg;
    struct im_shard *st = ims(sh);
    st->mb_inflight--;
    if (st->mb) mb_flush(sh, st);
    if (!err) broadcast_batch(sh, c->jobs);
    /* Answers: in batch order per sending shard; one chain (one post) per other shard. */
    struct send_job *chain[AU_MAX_SHARDS] = { NULL }, **tail[AU_MAX_SHARDS];
    for (struct send_job *j = c->jobs, *n; j; j = n) {
        n = j->next;
        if (err) {
            job_failed(sh, j);
            continue;
        }
        if (j->cs) j->cs->uconv_stored = true;
        msg_unref(j->m);
        j->m = NULL;
        job_uids_free(j);
        if (j->from == sh->id) {
            job_reply(sh, j);
            continue;
        }
        j->next = NULL;
        if (!chain[j->from]) chain[j->from] = j;
        else *tail[j->from] = j;
        tail[j->from] = &j->next;
    }
    for (int i = 0; i < sh->nshards; i++) {
        if (!chain[i]) continue;
        chain[i]->x.handler = job_chain_handler;
        au_shard_post_disposable(sh, i, &chain[i]->x, job_chain_dispose);
    }
    free(c);
}

static void put_head(struct store_batch *b, struct send_job *j)
{
    struct im_send_req *r = j->req;
    uint8_t key[KS_KEY_MAX], cv[32 + 2 * 130];
    struct ks_w cw = ks_w_init(cv, sizeof cv);
    ks_w_u8(&cw, KS_V1);
    ks_w_u8(&cw, r->target_group ? 2 : 1);
    ks_w_u64(&cw, j->seq);
    if (r->target_group) {
        ks_w_u64(&cw, r->gid);
    } else {
        ks_w_str16(&cw, r->from, strlen(r->from));
        ks_w_str16(&cw, r->target, strlen(r->target));
    }
    AU_ASSERT(!cw.err);
    store_batch_put(b, key, ks_im_id(key, KS_IM_CONV, r->app, j->conv), cv, cw.len);
}

static void mb_flush(struct au_shard *sh, struct im_shard *st)
{
    AU_ASSERT(st->mb != NULL && st->mb_jobs != NULL);
    for (struct conv_state *cs = st->mb_dirty, *n; cs; cs = n) {
        n = cs->dirty_next;
        put_head(st->mb, cs->head_job);
        cs->head_job = NULL;
        cs->dirty_next = NULL;
    }
    struct mb_commit *c = malloc(sizeof *c);
    AU_ASSERT(c != NULL);
    c->jobs = st->mb_jobs;
    struct store_batch *b = st->mb;
    st->mb = NULL;
    st->mb_jobs = NULL;
    st->mb_tail = &st->mb_jobs;
    st->mb_dirty = NULL;
    st->mb_inflight++;
    store_write(persist_store(), sh->id, b, mb_committed, c);
}

/* Runs on the owner shard with the conversation's sequence loaded. */
static void job_sequence(struct au_shard *sh, struct conv_state *cs, struct send_job *j)
{
    struct im_send_req *r = j->req;
    j->seq = ++cs->last_seq;
    j->msgid = next_msgid(sh);
    j->ctime_ms = au_wall_ms();

    /* The record: header, then the JSON devices get (the validated object plus the server's fields),
     * rendered straight into it. */
    size_t fl = strlen(r->from);
    size_t hdr = 1 + 8 + 8 + 1 + 2 + fl;
    char *dumped = NULL;
    size_t jl;
    if (r->json_canon) {
        /* im_msg_parse_canon output: compact, without the server's keys; client_msg_id is in it already. */
        AU_ASSERT(r->kind == IM_KIND_MESSAGE);
        jl = r->json_len + IM_MSG_SERVER_FIELDS_MAX;
    } else {
        json_t *o = json_loadb(r->json, r->json_len, 0, NULL);
        if (!o) o = json_object();
        json_object_set_new(o, "msgid", json_integer((json_int_t)j->msgid));
        json_object_set_new(o, "msg_ctime", json_integer((json_int_t)j->ctime_ms));
        json_object_set_new(o, "create_time", json_integer((json_int_t)(j->ctime_ms / 1000)));
        json_object_set_new(o, "sequence", json_integer((json_int_t)j->seq));
        if (r->kind == IM_KIND_EVENT) json_object_set_new(o, "kind", json_string("event"));
        if (r->client_msg_id[0]) json_object_set_new(o, "client_msg_id", json_string(r->client_msg_id));
        dumped = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        AU_ASSERT(dumped != NULL);
        jl = strlen(dumped);
    }
    uint8_t *v = malloc(hdr + jl + 1);
    AU_ASSERT(v != NULL);
    struct ks_w w = ks_w_init(v, hdr);
    ks_w_u8(&w, KS_V1);
    ks_w_u64(&w, j->ctime_ms);
    ks_w_u64(&w, j->msgid);
    ks_w_u8(&w, r->kind);
    ks_w_str16(&w, r->from, fl);
    AU_ASSERT(!w.err && w.len == hdr);
    char *out = (char *)v + hdr;
    size_t outl;
    if (dumped) {
        memcpy(out, dumped, jl);
        outl = jl;
        free(dumped);
    } else {
        outl = im_msg_canon_finish(r->json, r->json_len, j->msgid, j->ctime_ms, j->seq, out, jl + 1);
    }

    struct im_shard *st = ims(sh);
    if (!st->mb) st->mb = store_batch_new();
    struct store_batch *batch = st->mb;
    uint8_t key[KS_KEY_MAX];
    store_batch_put(batch, key, ks_im_msg(key, r->app, j->conv, j->seq), v, hdr + outl);
    uint8_t cs16[16];
    put_u64(cs16, j->conv);
    put_u64(cs16 + 8, j->seq);
    store_batch_put(batch, key, ks_im_id(key, KS_IM_MSGID, r->app, j->msgid), cs16, 16);
    /* conversation head: at the flush, from the conversation's latest message in the batch */
    if (!cs->head_job) {
        cs->dirty_next = st->mb_dirty;
        st->mb_dirty = cs;
    }
    cs->head_job = j;
    /* The participants' conversation lists: written until one message of the conversation carrying them
     * has committed (deleted only with their user incarnation or app, whose ids are not reused). */
    if (!r->target_group && !cs->uconv_stored) {
        j->cs = cs;
        store_batch_put(batch, key, ks_im_uconv(key, r->app, r->from_uid, j->conv), "", 0);
        store_batch_put(batch, key, ks_im_uconv(key, r->app, r->target_uid, j->conv), "", 0);
    }
    if (r->client_msg_id[0] && r->from_uid) {
        uint8_t mid[8];
        put_u64(mid, j->msgid);
        store_batch_put(batch, key, ks_im_climsg(key, r->app, r->from_uid, r->client_msg_id, strlen(r->client_msg_id)),
                        mid, 8);
    }

    /* The delivered message and its recipients (single chat: both users, so the sender's other devices
     * get it too; group: the members, resolved on each shard; events: listed extras as well). */
    struct msg *m = msg_new_raw(r->app, (const uint8_t *)k_inbox, sizeof k_inbox - 1, NULL, 0, (const uint8_t *)out,
                                (uint32_t)outl, 1, false, 0, 0);
    free(v);
    im_msg_set(m, j->conv, j->seq);
    m->seq = ((uint64_t)sh->id << 48) | (j->msgid & 0xffffffffffffull);
    j->m = m;
    j->next = NULL;
    *st->mb_tail = j;
    st->mb_tail = &j->next;
    mb_schedule(sh, st);
}

static void conv_loaded(struct au_shard *sh, void *arg, int err, const void *v, size_t vl)
{
    struct conv_state *cs = arg;
    cs->loading = false;
    cs->loaded = true;
    if (!err && vl >= 10) {
        struct ks_r r = ks_r_init(v, vl);
        (void)ks_r_u8(&r);
        (void)ks_r_u8(&r);
        cs->last_seq = ks_r_u64(&r);
    } else if (err && err != STORE_ENOTFOUND) {
        au_error("conversation %llx of app %u: cannot read its head (%d)", (unsigned long long)cs->conv, cs->app, err);
    }
    while (cs->waiting) {
        struct send_job *j = cs->waiting;
        cs->waiting = j->next;
        job_sequence(sh, cs, j);
    }
    cs->waiting_tail = NULL;
}

/* A resend with a client message id seen before: answer with the original msgid, store nothing. */
static void climsg_checked(struct au_shard *sh, void *arg, int err, const void *v, size_t vl);

static void job_run_owner(struct au_shard *sh, struct send_job *j)
{
    struct im_shard *st = ims(sh);
    uint8_t ck[CONV_KEY_LEN];
    memcpy(ck, &j->req->app, 4);
    memcpy(ck + 4, &j->conv, 8);
    struct conv_state *cs = au_hash_get(&st->convs, ck, CONV_KEY_LEN);
    if (!cs) {
        cs = calloc(1, sizeof *cs);
        AU_ASSERT(cs != NULL);
        memcpy(cs->key, ck, CONV_KEY_LEN);
        cs->app = j->req->app;
        cs->conv = j->conv;
        au_hash_put(&st->convs, cs->key, CONV_KEY_LEN, cs);
    }
    if (cs->loaded) {
        job_sequence(sh, cs, j);
        return;
    }
    j->next = NULL;
    if (cs->waiting_tail) cs->waiting_tail->next = j;
    else cs->waiting = j;
    cs->waiting_tail = j;
    if (!cs->loading) {
        cs->loading = true;
        uint8_t key[KS_KEY_MAX];
        store_get(persist_store(), sh->id, key, ks_im_id(key, KS_IM_CONV, j->req->app, j->conv), conv_loaded, cs);
    }
}

static void climsg_checked(struct au_shard *sh, void *arg, int err, const void *v, size_t vl)
{
    struct send_job *j = arg;
    if (!err && vl == 8) {
        const uint8_t *p = v;
        j->msgid = ((uint64_t)au_rd32(p) << 32) | au_rd32(p + 4);
        j->ctime_ms = j->msgid >> 22;
        j->err = IM_EDUP;
        job_reply(sh, j);
        return;
    }
    job_run_owner(sh, j);
}

static void climsg_check(struct au_shard *self, struct send_job *j);

/* Single chat: the recipient may have blacklisted the sender (REST blacklist records). */
static void blacklist_checked(struct au_shard *sh, void *arg, int err, const void *v, size_t vl)
{
    struct send_job *j = arg;
    if (err == 0 && ks_im_blacklist_holds(v, vl, j->req->target_uid, j->req->from_uid)) {
        j->err = IM_EBLACKLISTED;
        job_reply(sh, j);
        return;
    }
    climsg_check(sh, j);
}

static void job_arrive(struct au_shard *self, struct au_xmsg *x)
{
    struct send_job *j = (struct send_job *)x;
    struct im_send_req *r = j->req;
    if (!r->target_group && r->kind == IM_KIND_MESSAGE && r->from[0] && r->target[0]) {
        uint8_t key[KS_KEY_MAX];
        size_t kl = ks_im_blacklist(key, r->app, r->target, strlen(r->target), r->from, strlen(r->from));
        store_get(persist_store(), self->id, key, kl, blacklist_checked, j);
        return;
    }
    climsg_check(self, j);
}

static void climsg_check(struct au_shard *self, struct send_job *j)
{
    struct im_send_req *r = j->req;
    if (r->client_msg_id[0] && r->from_uid) {
        uint8_t key[KS_KEY_MAX];
        size_t kl = ks_im_climsg(key, r->app, r->from_uid, r->client_msg_id, strlen(r->client_msg_id));
        store_get(persist_store(), self->id, key, kl, climsg_checked, j);
        return;
    }
    job_run_owner(self, j);
}

void im_send(struct au_shard *from, struct im_send_req *req, im_send_done_fn done, void *arg)
{
    struct send_job *j = calloc(1, sizeof *j);
    AU_ASSERT(j != NULL);
    j->req = req;
    j->done = done;
    j->arg = arg;
    j->from = from->id;
    j->conv = req->target_group ? im_conv_group(req->gid) : im_conv_single(req->from_uid, req->target_uid);
    /* Recipients by incarnation: a single chat's two users, plus an event's extra names resolved here (the
     * submitting shard's replica; a name that no longer exists gets nothing). */
    uint32_t nx = 0;
    for (size_t off = 0; off < req->extra_len; off += strlen(req->extra_recipients + off) + 1) nx++;
    uint32_t cap = (req->target_group ? 0 : 2) + nx;
    j->uids = cap <= 2 ? j->uids_inline : malloc(cap * sizeof *j->uids);
    AU_ASSERT(j->uids != NULL);
    if (!req->target_group) {
        j->uids[j->nuids++] = req->from_uid;
        if (req->target_uid != req->from_uid) j->uids[j->nuids++] = req->target_uid;
    }
    for (size_t off = 0; off < req->extra_len;) {
        const char *n = req->extra_recipients + off;
        size_t l = strlen(n);
        struct dir_user *u = l ? im_dir_user(im_dir_of(from), req->app, n, l) : NULL;
        if (u) j->uids[j->nuids++] = u->uid;
        off += l + 1;
    }
    if (!persist_store() || (!req->target_group && (!req->from_uid || !req->target_uid))) {
        j->err = IM_ESTORE;
        job_reply(from, j);
        return;
    }
    int owner = im_conv_owner(req->app, j->conv, from->nshards);
    j->x.handler = job_arrive;
    if (owner == from->id) job_arrive(from, &j->x);
    else au_shard_post_disposable(from, owner, &j->x, job_dispose);
}

bool im_msg_rec_decode(const void *v, size_t vl, struct im_msg_rec *out)
{
    struct ks_r r = ks_r_init(v, vl);
    if (ks_r_u8(&r) != KS_V1) return false;
    out->ctime_ms = ks_r_u64(&r);
    out->msgid = ks_r_u64(&r);
    out->kind = ks_r_u8(&r);
    out->from = ks_r_str16(&r, &out->from_len);
    out->json = ks_r_rest(&r, &out->json_len);
    return !r.err;
}

/* ------------------------------------------------------------------ cursors */

/* Cursor moves are coalesced per shard: one cursor write in flight at a time; acks that come meanwhile
 * only keep the latest sequence per (device, conversation), and all of them go out as one batch when the
 * write completes, i.e. once per group commit round instead of once per delivered message. A cursor is a
 * hint for replay (a device re-gets what lies after it), so a move written a commit round later costs
 * at most a re-delivery after a crash, never a loss. At shutdown store_shard_detach runs the completions,
 * which write what is left. */
static void cursors_written(struct au_shard *sh, void *arg, int err);

static void cursors_flush(struct au_shard *sh, struct im_shard *st)
{
    struct store_batch *sb = store_batch_new();
    struct au_hash_iter it;
    au_hash_iter_init(&st->cursors, &it);
    while (au_hash_next(&st->cursors, &it)) {
        struct cursor_pend *p = it.value;
        uint8_t v[8];
        put_u64(v, p->seq);
        store_batch_put(sb, p->key, p->kl, v, 8);
        free(p);
    }
    au_hash_clear(&st->cursors);
    st->cursor_busy = true;
    store_write(persist_store(), sh->id, sb, cursors_written, NULL);
}

static void cursors_written(struct au_shard *sh, void *arg, int err)
{
    (void)arg;
    (void)err; /* a failed cursor write is logged by the store; replay re-delivers from the older cursor */
    struct im_shard *st = ims(sh);
    st->cursor_busy = false;
    if (au_hash_count(&st->cursors)) cursors_flush(sh, st);
}

void im_cursor_ack(struct broker *b, struct session *s, const struct msg *m)
{
    struct im_sess *is = im_sess_of(s);
    if (!persist_store() || !im_msg_conv(m) || !is || !is->uid) return;
    struct im_shard *st = ims(b->shard);
    uint8_t key[KS_KEY_MAX];
    size_t kl = ks_im_cursor(key, s->app, is->uid, s->client_id, s->cid_len, true, im_msg_conv(m));
    struct cursor_pend *p = au_hash_get(&st->cursors, key, kl);
    if (!p) {
        p = malloc(sizeof *p + kl);
        AU_ASSERT(p != NULL);
        p->kl = (uint32_t)kl;
        memcpy(p->key, key, kl);
        au_hash_put(&st->cursors, p->key, kl, p);
    }
    p->seq = im_msg_seq(m); /* acks of one device come in delivery order: the latest is the cursor */
    if (!st->cursor_busy) cursors_flush(b->shard, st);
}

/* ------------------------------------------------------------------ replay (offline messages) */

struct replay_ctx {
    struct session *s;
    uint64_t gen;
    uint64_t uid;                /* the session's uid when started: a freed-and-reused pointer does not match */
    uint64_t conv;
    uint64_t cursor;
};

static void replay_finish(struct broker *b, struct session *s)
{
    struct im_sess *is = im_sess_of(s);
    is->replaying = false;
    /* Live messages that came during the replay, minus what the replay already sent. */
    for (uint32_t i = 0; i < is->nheld; i++) {
        struct msg *m = is->held[i];
        uint64_t sent = (uint64_t)(uintptr_t)au_hash_get_u64(&is->done_seq, im_msg_conv(m));
        if (!sent || im_msg_seq(m) + 1 > sent) session_deliver(b, s, m, 1, false, NULL, 0);
        msg_unref(m);
    }
    is->nheld = 0;
    au_hash_clear(&is->done_seq);
}

static bool replay_alive(struct broker *b, struct replay_ctx *rc)
{
    struct session *s = session_by_uid(b, rc->uid);
    return s == rc->s && im_sess_of(s) && im_sess_of(s)->gen == rc->gen && im_sess_of(s)->replaying;
}

static void replay_step_done(struct broker *b, struct session *s)
{
    if (--im_sess_of(s)->pending == 0) replay_finish(b, s);
}

static void replay_msgs(struct au_shard *sh, void *arg, int err, const struct store_kv *kv, uint32_t n, bool more)
{
    (void)more;
    struct replay_ctx *rc = arg;
    struct broker *b = broker_of(sh);
    if (!replay_alive(b, rc)) {
        free(rc);
        return;
    }
    struct session *s = rc->s;
    const struct au_config *cfg = b->cfg;
    uint64_t now = au_wall_ms();
    uint64_t msg_keep = (uint64_t)cfg->im_offline_days * 86400000ull;
    uint64_t evt_keep = (uint64_t)cfg->im_event_days * 86400000ull;
    /* kv is newest first (reverse scan): deliver oldest first. */
    uint64_t maxseq = 0;
    for (uint32_t k = n; !err && k-- > 0;) {
        uint64_t seq = im_msg_key_seq(kv[k].k, kv[k].kl);
        struct im_msg_rec rec;
        if (!seq || seq <= rc->cursor || !im_msg_rec_decode(kv[k].v, kv[k].vl, &rec)) continue;
        uint64_t keep = (rec.kind & 0x7f) == IM_KIND_EVENT ? evt_keep : msg_keep;
        if ((rec.kind & IM_KIND_RETRACTED) || (now > rec.ctime_ms && now - rec.ctime_ms > keep)) continue;
        struct msg *m = msg_new_raw(s->app, (const uint8_t *)k_inbox, sizeof k_inbox - 1, NULL, 0, rec.json,
                                    (uint32_t)rec.json_len, 1, false, 0, 0);
        im_msg_set(m, rc->conv, seq);
        session_deliver(b, s, m, 1, false, NULL, 0);
        msg_unref(m);
        if (seq > maxseq) maxseq = seq;
    }
    if (maxseq) au_hash_put_u64(&im_sess_of(s)->done_seq, rc->conv, (void *)(uintptr_t)(maxseq + 1));
    replay_step_done(b, s);
    free(rc);
}

static void replay_conv(struct broker *b, struct session *s, uint64_t conv, uint64_t cursor)
{
    struct replay_ctx *rc = malloc(sizeof *rc);
    AU_ASSERT(rc != NULL);
    *rc = (struct replay_ctx){ s, im_sess_of(s)->gen, s->uid, conv, cursor };
    uint8_t start[KS_KEY_MAX], end[KS_KEY_MAX];
    size_t sl = ks_im_msg(start, s->app, conv, cursor + 1);
    size_t el = ks_im_msg(end, s->app, conv, UINT64_MAX);
    im_sess_of(s)->pending++;
    store_scan(persist_store(), b->shard->id, start, sl, end, el, b->cfg->im_offline_msgs, STORE_SCAN_REVERSE,
               replay_msgs, rc);
}

struct cursor_ctx {
    struct replay_ctx rc;
    uint64_t *convs;
    uint32_t nconvs;
};

static void replay_cursors(struct au_shard *sh, void *arg, int err, const struct store_kv *kv, uint32_t n, bool more)
{
    (void)more;
    struct cursor_ctx *cc = arg;
    struct broker *b = broker_of(sh);
    if (!replay_alive(b, &cc->rc)) {
        free(cc->convs);
        free(cc);
        return;
    }
    struct session *s = cc->rc.s;
    for (uint32_t i = 0; i < cc->nconvs; i++) {
        uint64_t conv = cc->convs[i], cursor = 0;
        for (uint32_t k = 0; !err && k < n; k++) {
            if (kv[k].kl < 8 || kv[k].vl != 8) continue;
            const uint8_t *ck = kv[k].k + kv[k].kl - 8;
            uint64_t c = ((uint64_t)au_rd32(ck) << 32) | au_rd32(ck + 4);
            if (c == conv) cursor = ((uint64_t)au_rd32(kv[k].v) << 32) | au_rd32(kv[k].v + 4);
        }
        replay_conv(b, s, conv, cursor);
    }
    replay_step_done(b, s);
    free(cc->convs);
    free(cc);
}

static void replay_uconvs(struct au_shard *sh, void *arg, int err, const struct store_kv *kv, uint32_t n, bool more)
{
    (void)more;
    struct cursor_ctx *cc = arg;
    struct broker *b = broker_of(sh);
    if (!replay_alive(b, &cc->rc)) {
        free(cc);
        return;
    }
    struct session *s = cc->rc.s;
    /* Single chats from the store, group chats from the directory (of this incarnation only). */
    const char *user = im_session_user(s);
    struct dir_user *u = user ? im_dir_user(im_dir_of(sh), s->app, user, strlen(user)) : NULL;
    if (u && u->uid != im_sess_of(s)->uid) u = NULL;
    uint32_t ng = u ? u->ngids : 0;
    cc->convs = malloc(sizeof(uint64_t) * (n + ng + 1));
    AU_ASSERT(cc->convs != NULL);
    for (uint32_t k = 0; !err && k < n; k++) {
        if (kv[k].kl < 8) continue;
        const uint8_t *ck = kv[k].k + kv[k].kl - 8;
        cc->convs[cc->nconvs++] = ((uint64_t)au_rd32(ck) << 32) | au_rd32(ck + 4);
    }
    for (uint32_t g = 0; g < ng; g++) cc->convs[cc->nconvs++] = im_conv_group(u->gids[g]);
    uint8_t start[KS_KEY_MAX], end[KS_KEY_MAX];
    size_t sl = ks_im_cursor(start, s->app, im_sess_of(s)->uid, s->client_id, s->cid_len, false, 0);
    size_t el = store_prefix_end(start, sl, end);
    store_scan(persist_store(), sh->id, start, sl, end, el, 0, 0, replay_cursors, cc);
}

static void replay_start(struct broker *b, struct session *s)
{
    struct im_sess *is = im_sess_of(s);
    if (!persist_store()) return;
    is->gen++;
    is->replaying = true;
    is->pending = 1;
    struct cursor_ctx *cc = calloc(1, sizeof *cc);
    AU_ASSERT(cc != NULL);
    cc->rc = (struct replay_ctx){ s, is->gen, s->uid, 0, 0 };
    uint8_t start[KS_KEY_MAX], end[KS_KEY_MAX];
    size_t sl = ks_im_uid_prefix(start, KS_IM_UCONV, s->app, is->uid);
    size_t el = store_prefix_end(start, sl, end);
    store_scan(persist_store(), b->shard->id, start, sl, end, el, 0, 0, replay_uconvs, cc);
}

/* ------------------------------------------------------------------ sessions */

void im_session_inbox(struct broker *b, struct session *s)
{
    const char *user = im_session_user(s);
    if (!user) return;
    /* The user incarnation the session serves now: a session owned by a deleted user's incarnation (or a
     * user deleted meanwhile) registers nothing. */
    struct dir_user *u = im_dir_user(im_dir_of(b->shard), s->app, user, strlen(user));
    if (!u || s->ident.kind != SESS_ID_USER || s->ident.incarnation != u->uid) return;
    struct im_sess *is = im_sess_of(s); /* not NULL: it has a user */
    if (is->registered && is->uid != u->uid) im_session_offline(b, s);
    if (is->registered) return;
    is->registered = true;
    is->uid = u->uid;
    inbox_add(b->shard, s);
    replay_start(b, s);
}

/* Queued (not yet sent) IM messages of a device that went away: they come back by replay. */
static void purge_queued_im(struct session *s)
{
    struct outmsg **pp = &s->q_head, *last = NULL;
    while (*pp) {
        struct outmsg *o = *pp;
        if (o->m && im_msg_conv(o->m)) {
            *pp = o->next;
            s->queued--;
            outmsg_free(o);
        } else {
            last = o;
            pp = &o->next;
        }
    }
    s->q_tail = last;
}

struct im_sess *im_sess_make(struct session *s)
{
    struct im_sess *is = im_sess_of(s);
    if (is) return is;
    is = calloc(1, sizeof *is);
    AU_ASSERT(is != NULL);
    AU_ASSERT(au_hash_init(&is->done_seq, 8) == 0);
    s->ext[im_ext_id] = is;
    return is;
}

void im_session_login(struct broker *b, struct session *s, const char *user, size_t user_len)
{
    /* The IM state is keyed by the user: detached before the user is replaced (a no-op when it is). */
    im_session_offline(b, s);
    struct im_sess *is = user ? im_sess_make(s) : im_sess_of(s);
    if (!is) return;
    free(is->user);
    is->user = user ? strndup(user, user_len) : NULL;
    AU_ASSERT(!user || is->user != NULL);
}

void im_session_offline(struct broker *b, struct session *s)
{
    struct im_sess *is = im_sess_of(s);
    if (!is || !is->registered) return;
    purge_queued_im(s);
    inbox_del(b->shard, s);
    is->registered = false;
    is->replaying = false;
    is->gen++;
    for (uint32_t i = 0; i < is->nheld; i++) msg_unref(is->held[i]);
    is->nheld = 0;
    au_hash_clear(&is->done_seq);
}

bool im_session_online(const struct session *s) { return im_sess_of(s) && im_sess_of(s)->registered; }

uint64_t im_session_uid(const struct session *s) { return im_sess_of(s) ? im_sess_of(s)->uid : 0; }

void im_session_free(struct broker *b, struct session *s)
{
    struct im_sess *is = im_sess_of(s);
    if (!is) return;
    im_session_offline(b, s);
    free(is->held);
    au_hash_free(&is->done_seq);
    free(is->user);
    free(is);
    s->ext[im_ext_id] = NULL;
}

/* ------------------------------------------------------------------ retention sweep
 * Messages older than im_offline_days and events older than im_event_days stop being delivered at once
 * (replay filters them) and are deleted here in the background: shard 0 walks the message family in
 * pages every IM_SWEEP_INTERVAL_MS, deleting old records and their msgid index entries. */

#define IM_SWEEP_INTERVAL_MS (3600u * 1000u) /* one pass an hour */
#define IM_SWEEP_FIRST_MS    (60u * 1000u)   /* first pass a minute after start */
#define IM_SWEEP_PAGE        1000u           /* records read per step */

struct sweep_ctx {
    uint8_t last[KS_KEY_MAX];
    size_t last_len;
};

static void sweep_page(struct au_shard *sh, void *arg, int err, const struct store_kv *kv, uint32_t n, bool more);

static void sweep_next(struct au_shard *sh, struct sweep_ctx *x, bool first)
{
    uint8_t end = KS_IM_MSG + 1;
    if (first) {
        uint8_t start = KS_IM_MSG;
        store_scan(persist_store(), sh->id, &start, 1, &end, 1, IM_SWEEP_PAGE, 0, sweep_page, x);
    } else {
        store_scan(persist_store(), sh->id, x->last, x->last_len, &end, 1, IM_SWEEP_PAGE, STORE_SCAN_AFTER, sweep_page, x);
    }
}

static void sweep_page(struct au_shard *sh, void *arg, int err, const struct store_kv *kv, uint32_t n, bool more)
{
    struct sweep_ctx *x = arg;
    struct im_shard *st = ims(sh);
    if (err || !broker_of(sh)->cfg || broker_of(sh)->stopping) {
        st->sweeping = false;
        free(x);
        return;
    }
    const struct au_config *cfg = broker_of(sh)->cfg;
    uint64_t now = au_wall_ms();
    uint64_t msg_keep = (uint64_t)cfg->im_offline_days * 86400000ull, evt_keep = (uint64_t)cfg->im_event_days * 86400000ull;
    struct store_batch *b = NULL;
    uint8_t key[KS_KEY_MAX];
    for (uint32_t k = 0; k < n; k++) {
        struct im_msg_rec rec;
        if (kv[k].kl < 21 || !im_msg_rec_decode(kv[k].v, kv[k].vl, &rec)) continue;
        uint64_t keep = (rec.kind & 0x7f) == IM_KIND_EVENT ? evt_keep : msg_keep;
        if (now <= rec.ctime_ms || now - rec.ctime_ms <= keep) continue;
        if (!b) b = store_batch_new();
        store_batch_del(b, kv[k].k, kv[k].kl);
        store_batch_del(b, key, ks_im_id(key, KS_IM_MSGID, au_rd32(kv[k].k + 1), rec.msgid));
        st->swept++;
    }
    if (b) store_write(persist_store(), sh->id, b, NULL, NULL);
    if (!more || n == 0) {
        st->sweeping = false;
        free(x);
        return;
    }
    memcpy(x->last, kv[n - 1].k, kv[n - 1].kl);
    x->last_len = kv[n - 1].kl;
    sweep_next(sh, x, false);
}

static void sweep_fire(struct au_timer *t)
{
    struct im_shard *st = AU_CONTAINER_OF(t, struct im_shard, sweep_timer);
    struct au_shard *sh = st->shard;
    au_timer_arm(&sh->timers, t, sh->now_ms + IM_SWEEP_INTERVAL_MS);
    if (st->sweeping || !persist_store()) return;
    st->sweeping = true;
    struct sweep_ctx *x = calloc(1, sizeof *x);
    AU_ASSERT(x != NULL);
    sweep_next(sh, x, true);
}

/* ------------------------------------------------------------------ shard hooks */

void im_shard_init(struct au_shard *sh)
{
    struct im_shard *st = calloc(1, sizeof *st);
    AU_ASSERT(st != NULL);
    AU_ASSERT(au_hash_init(&st->inbox, 256) == 0 && au_hash_init(&st->convs, 256) == 0 &&
              au_hash_init(&st->cursors, 256) == 0);
    st->shard = sh;
    st->mb_tail = &st->mb_jobs;
    sh->slot.im = st;
    au_timer_init(&st->sweep_timer, sweep_fire);
    if (sh->id == 0) au_timer_arm(&sh->timers, &st->sweep_timer, sh->now_ms + IM_SWEEP_FIRST_MS);
    im_dir_init(sh, persist_store());
}

void im_shard_fini(struct au_shard *sh)
{
    struct im_shard *st = ims(sh);
    if (!st) return;
    au_timer_cancel(&sh->timers, &st->sweep_timer);
    struct au_hash_iter it;
    au_hash_iter_init(&st->inbox, &it);
    while (au_hash_next(&st->inbox, &it)) {
        struct inbox_entry *e = it.value;
        free(e->v);
        free(e);
    }
    au_hash_iter_init(&st->convs, &it);
    while (au_hash_next(&st->convs, &it)) {
        struct conv_state *cs = it.value;
        while (cs->waiting) { /* the store was detached: these never got a sequence */
            struct send_job *j = cs->waiting;
            cs->waiting = j->next;
            req_free(j->req);
            free(j);
        }
        free(cs);
    }
    /* A batch still being built (its flush was posted to an iteration that never ran, or waited for a
     * completion): never submitted, nothing of it was acknowledged. */
    for (struct send_job *j = st->mb_jobs, *n; j; j = n) {
        n = j->next;
        job_dispose(&j->x);
    }
    if (st->mb) store_batch_free(st->mb);
    au_hash_iter_init(&st->cursors, &it); /* empty: the store's detach ran the flushes */
    while (au_hash_next(&st->cursors, &it)) free(it.value);
    au_hash_free(&st->inbox);
    au_hash_free(&st->convs);
    au_hash_free(&st->cursors);
    free(st);
    sh->slot.im = NULL;
    im_dir_fini(sh);
}
