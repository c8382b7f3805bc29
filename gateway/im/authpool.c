/* authpool.c - password hashing / verification workers (see authpool.h).
 *
 * The workers are one core/workpool.h pool: it owns the queues (the request block, from the shard's
 * own free list, is the pool's job and the completion message posted back), the sleep/wake protocol
 * and the detach fence. A worker's round is one request (hash or verify, then its completion is posted
 * at once: a login waits for nothing else). This file is the policy on top:
 * Fairness: a shard does not hand every request to the workers at once. It keeps at most
 * AU_AUTHPOOL_SHARD_INFLIGHT per worker thread there; the rest wait on the shard in one FIFO per
 * flow (app, kind), and each free place goes to the next flow in round robin. So one app's bulk
 * registration or one burst of guesses waits in its own queue, while another app's login (or the same
 * app's logins, a flow of their own) is at most one round behind: worker queues stay short (at most
 * nshards * AU_AUTHPOOL_SHARD_INFLIGHT per thread, served FIFO, so every shard gets its share). */
#include "gateway/im/authpool.h"
#include "gateway/im/auth.h"
#include "core/workpool.h"
#include "core/log.h"

#include <openssl/crypto.h>

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

enum { REQ_VERIFY = 1, REQ_HASH = 2 };

struct ap_req {
    struct au_wp_job job;        /* first: the pool's job, posted back to the shard as is */
    struct ap_req *next;         /* shard flow queue / shard free list */
    struct authpool *pool;
    union {
        authpool_verify_cb verify;
        authpool_hash_cb hash;
    } cb;
    void *arg;
    uint16_t shard;
    uint16_t flow;               /* index in the shard's flows */
    uint8_t kind;
    int result;                  /* verify: auth_password_verify's; hash: 0 ok, -1 failed; or CANCELED */
    uint32_t pw_len, stored_len;
    char stored[AUTH_HASH_STR_MAX]; /* verify: in; hash: out */
    uint8_t pw[AUTH_PASSWORD_MAX];
};

struct ap_worker {
    _Alignas(64) atomic_uint queued;     /* submitted, not yet completed: shards pick the least loaded */
};

/* A shard's queue of one (app, kind): requests not yet handed to a worker. */
struct ap_flow {
    struct ap_req *head, *tail;
    struct ap_flow *next_active; /* in the shard's round robin while it has queued requests */
    uint32_t pending;            /* accepted, not yet called back (queued + at a worker) */
    bool active;
};

/* Shard-thread-only state. */
struct ap_shard {
    _Alignas(64) uint32_t pending;
    uint32_t inflight;           /* handed to workers, not yet called back */
    uint32_t nfree;
    uint32_t rr;
    struct ap_req *free;
    struct ap_flow *active_head, *active_tail;
    struct ap_flow *flows;       /* [AU_AUTHPOOL_FLOWS], allocated at the first submit */
    bool detached;               /* authpool_shard_detach began: submissions are refused */
};

struct authpool {
    unsigned nthreads;
    uint32_t hash_iter;
    struct au_wp *wp;
    struct au_shard **shards;
    struct ap_worker w[AUTHPOOL_MAX_THREADS];
    struct ap_shard sh[AU_MAX_SHARDS];
};

/* ------------------------------------------------------------------ the work */

static void run(struct authpool *p, struct ap_req *r)
{
    if (p && au_wp_job_canceled(&r->job)) {
        r->result = AUTHPOOL_CANCELED;
    } else if (r->kind == REQ_VERIFY) {
        r->result = auth_password_verify(r->stored, r->stored_len, r->pw, r->pw_len);
    } else {
        uint32_t iter = p ? p->hash_iter : AUTH_PBKDF2_ITER;
        r->result = auth_password_hash_iter(r->pw, r->pw_len, iter, r->stored) < 0 ? -1 : 0;
    }
    OPENSSL_cleanse(r->pw, sizeof r->pw);
}

static void call_back(struct au_shard *s, struct ap_req *r)
{
    if (r->kind == REQ_VERIFY) r->cb.verify(s, r->arg, r->result);
    else r->cb.hash(s, r->arg, r->result == 0 ? r->stored : NULL);
}

/* ------------------------------------------------------------------ shard side */

static struct ap_req *req_get(struct ap_shard *sh)
{
    struct ap_req *r = sh->free;
    if (r) {
        sh->free = r->next;
        sh->nfree--;
    } else {
        r = malloc(sizeof *r);
        if (!r) return NULL;
    }
    memset(r, 0, offsetof(struct ap_req, stored));
    return r;
}

static void req_put(struct ap_shard *sh, struct ap_req *r)
{
    if (sh->nfree >= AUTHPOOL_FREE_KEEP) {
        free(r);
        return;
    }
    r->next = sh->free;
    sh->free = r;
    sh->nfree++;
}

static void push_worker(struct authpool *p, struct ap_shard *sh, struct ap_req *r)
{
    /* least loaded worker; ties rotate */
    unsigned best = sh->rr++ % p->nthreads, bq = UINT_MAX;
    for (unsigned k = 0; k < p->nthreads; k++) {
        unsigned i = (best + k) % p->nthreads;
        unsigned q = atomic_load_explicit(&p->w[i].queued, memory_order_relaxed);
        if (q < bq) {
            bq = q;
            best = i;
        }
    }
    atomic_fetch_add_explicit(&p->w[best].queued, 1, memory_order_relaxed);
    au_wp_submit(p->wp, best, r->shard, &r->job);
}

/* Hand queued requests to the workers while the shard has room there, one per flow in turn. */
static void dispatch(struct authpool *p, struct ap_shard *sh)
{
    uint32_t room = AU_AUTHPOOL_SHARD_INFLIGHT * p->nthreads;
    if (sh->detached) return;
    while (sh->inflight < room && sh->active_head) {
        struct ap_flow *f = sh->active_head;
        sh->active_head = f->next_active;
        if (!sh->active_head) sh->active_tail = NULL;
        struct ap_req *r = f->head;
        f->head = r->next;
        if (!f->head) f->tail = NULL;
        if (f->head) { /* more of this flow: back of the round */
            f->next_active = NULL;
            if (sh->active_tail) sh->active_tail->next_active = f;
            else sh->active_head = f;
            sh->active_tail = f;
        } else {
            f->active = false;
        }
        sh->inflight++;
        push_worker(p, sh, r);
    }
}

/* Runs on the submitting shard (from the loop's inbox, or from detach). */
static void on_done(struct au_shard *s, struct ap_req *r)
{
    struct authpool *p = r->pool;
    struct ap_shard *sh = &p->sh[r->shard];
    struct ap_flow *f = &sh->flows[r->flow];
    AU_ASSERT(s->id == r->shard);
    AU_ASSERT(sh->pending > 0 && sh->inflight > 0 && f->pending > 0);
    sh->pending--;
    sh->inflight--;
    f->pending--;
    call_back(s, r);
    req_put(sh, r);
    dispatch(p, sh);
}

/* The pool's done call. s == NULL: the request can no longer complete on its shard (the pool closed
 * before it started): released without a callback. */
static void ap_done(struct au_shard *s, struct au_wp_job *j)
{
    struct ap_req *r = (struct ap_req *)(void *)j;
    if (!s) {
        OPENSSL_cleanse(r->pw, sizeof r->pw);
        free(r);
        return;
    }
    on_done(s, r);
}

static unsigned flow_of(uint32_t app, uint8_t kind)
{
    return ((app << 1) | (kind == REQ_HASH)) & (AU_AUTHPOOL_FLOWS - 1);
}

static int submit(struct authpool *p, int shard, uint32_t app, struct ap_req *tmpl, const void *pw, size_t len,
                  const char *stored, size_t stored_len)
{
    if (!auth_password_ok(pw, len) || stored_len >= AUTH_HASH_STR_MAX) return -EINVAL;
    if (!p) { /* synchronous: a tool without an event loop */
        struct ap_req r = *tmpl;
        memcpy(r.pw, pw, len);
        r.pw_len = (uint32_t)len;
        if (stored_len) memcpy(r.stored, stored, stored_len);
        r.stored[stored_len] = '\0';
        r.stored_len = (uint32_t)stored_len;
        run(NULL, &r);
        call_back(NULL, &r);
        return 0;
    }
    AU_ASSERT(shard >= 0 && shard < AU_MAX_SHARDS);
    struct ap_shard *sh = &p->sh[shard];
    if (sh->detached) return -EAGAIN; /* a callback run by detach */
    if (!sh->flows) {
        sh->flows = calloc(AU_AUTHPOOL_FLOWS, sizeof *sh->flows);
        if (!sh->flows) return -EAGAIN;
    }
    unsigned fi = flow_of(app, tmpl->kind);
    struct ap_flow *f = &sh->flows[fi];
    if (sh->pending >= AUTHPOOL_MAX_PENDING || f->pending >= AU_AUTHPOOL_FLOW_MAX_PENDING) return -EAGAIN;
    struct ap_req *r = req_get(sh);
    if (!r) return -EAGAIN;
    r->job.done = ap_done;
    r->pool = p;
    r->cb = tmpl->cb;
    r->arg = tmpl->arg;
    r->kind = tmpl->kind;
    r->shard = (uint16_t)shard;
    r->flow = (uint16_t)fi;
    memcpy(r->pw, pw, len);
    r->pw_len = (uint32_t)len;
    if (stored_len) memcpy(r->stored, stored, stored_len);
    r->stored[stored_len] = '\0';
    r->stored_len = (uint32_t)stored_len;
    sh->pending++;
    f->pending++;
    r->next = NULL;
    if (f->tail) f->tail->next = r;
    else f->head = r;
    f->tail = r;
    if (!f->active) {
        f->active = true;
        f->next_active = NULL;
        if (sh->active_tail) sh->active_tail->next_active = f;
        else sh->active_head = f;
        sh->active_tail = f;
    }
    dispatch(p, sh);
    return 0;
}

int authpool_verify(struct authpool *p, int shard, uint32_t app, const char *stored, size_t stored_len, const void *pw,
                    size_t len, authpool_verify_cb cb, void *arg)
{
    AU_ASSERT(cb != NULL);
    struct ap_req t = { .kind = REQ_VERIFY, .cb.verify = cb, .arg = arg };
    if (!stored) return -EINVAL;
    return submit(p, shard, app, &t, pw, len, stored, stored_len);
}

int authpool_hash(struct authpool *p, int shard, uint32_t app, const void *pw, size_t len, authpool_hash_cb cb,
                  void *arg)
{
    AU_ASSERT(cb != NULL);
    struct ap_req t = { .kind = REQ_HASH, .cb.hash = cb, .arg = arg };
    return submit(p, shard, app, &t, pw, len, NULL, 0);
}

uint32_t authpool_pending(const struct authpool *p, int shard)
{
    return p ? p->sh[shard].pending : 0;
}

/* ------------------------------------------------------------------ workers */

static unsigned ap_round(struct au_wp_worker *w)
{
    struct authpool *p = au_wp_ctx(au_wp_worker_pool(w));
    struct au_wp_job *j = au_wp_pop(w);
    if (!j) return 0;
    run(p, (struct ap_req *)(void *)j);
    au_wp_complete(w, j);
    atomic_fetch_sub_explicit(&p->w[au_wp_worker_index(w)].queued, 1, memory_order_relaxed);
    return 1;
}

static const struct au_wp_ops ap_ops = { .round = ap_round };

struct authpool *authpool_new(const struct authpool_opts *o)
{
    unsigned n = o && o->threads ? o->threads : AUTHPOOL_DEFAULT_THREADS;
    uint32_t iter = o && o->hash_iter ? o->hash_iter : AUTH_PBKDF2_ITER;
    AU_ASSERT(n <= AUTHPOOL_MAX_THREADS);
    AU_ASSERT(iter >= AUTH_PBKDF2_ITER_MIN && iter <= AUTH_PBKDF2_ITER_MAX);
    struct authpool *p = aligned_alloc(64, (sizeof *p + 63) & ~(size_t)63);
    AU_ASSERT(p != NULL);
    memset(p, 0, sizeof *p);
    p->nthreads = n;
    p->hash_iter = iter;
    struct au_wp_opts wo = { .name = "authpool", .workers = n, .ops = &ap_ops, .ctx = p };
    p->wp = au_wp_new(&wo);
    return p;
}

unsigned authpool_threads(const struct authpool *p) { return p->nthreads; }

void authpool_start(struct authpool *p, struct au_shard **shards, int nshards, int ext_base)
{
    AU_ASSERT(ext_base >= 0 && ext_base + (int)p->nthreads <= AU_MAX_EXT);
    p->shards = shards;
    au_wp_start(p->wp, shards, nshards, ext_base);
}

void authpool_shard_detach(struct authpool *p, int shard)
{
    if (!p || !au_wp_started(p->wp)) return;
    struct ap_shard *sh = &p->sh[shard];
    struct au_shard *s = p->shards[shard];
    AU_ASSERT(s->id == shard);
    sh->detached = true;
    /* Requests still waiting in our flows never reached a worker: they complete here, canceled. */
    while (sh->active_head) {
        struct ap_flow *f = sh->active_head;
        sh->active_head = f->next_active;
        f->active = false;
        while (f->head) {
            struct ap_req *r = f->head;
            f->head = r->next;
            OPENSSL_cleanse(r->pw, sizeof r->pw);
            r->result = AUTHPOOL_CANCELED;
            sh->inflight++; /* on_done counts it out like one that ran */
            on_done(s, r);
        }
        f->tail = NULL;
    }
    sh->active_tail = NULL;
    /* The pool's detach fence: requests queued at the workers complete quickly as canceled
     * (au_wp_job_canceled), one being computed takes at most one hash; every callback runs here. */
    au_wp_shard_detach(p->wp, shard);
    AU_ASSERT(sh->pending == 0 && sh->inflight == 0);
    while (sh->free) {
        struct ap_req *r = sh->free;
        sh->free = r->next;
        free(r);
    }
    sh->nfree = 0;
    free(sh->flows);
    sh->flows = NULL;
}

void authpool_stop(struct authpool *p)
{
    if (!p) return;
    bool started = au_wp_started(p->wp);
    au_wp_close(p->wp); /* joins the workers; never started: queued requests are released (ap_done) */
    for (int i = 0; i < AU_MAX_SHARDS; i++) {
        struct ap_shard *sh = &p->sh[i];
        if (started) AU_ASSERT(sh->pending == 0);
        for (struct ap_flow *f = sh->active_head; f; f = f->next_active) { /* never started: dropped, no callbacks */
            while (f->head) {
                struct ap_req *r = f->head;
                f->head = r->next;
                OPENSSL_cleanse(r->pw, sizeof r->pw);
                free(r);
            }
        }
        free(sh->flows);
        while (sh->free) {
            struct ap_req *r = sh->free;
            sh->free = r->next;
            free(r);
        }
    }
    free(p);
}
