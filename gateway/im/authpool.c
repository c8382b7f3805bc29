/* authpool.c - password hashing / verification workers (see authpool.h).
 *
 * Queue: one Treiber stack per worker. Shards push with a CAS (lock-free, no allocation beyond the
 * request block, which comes from the shard's own free list); the worker takes the whole stack with
 * one exchange and reverses it (FIFO). Taking everything at once means no ABA problem.
 * Sleep/wake: the worker announces `sleeping` (seq_cst), re-checks the stack, then futex-waits on
 * `wake_seq`; a producer pushes (seq_cst CAS), then reads `sleeping`; the one that flips it back to 0
 * bumps wake_seq and wakes. Dekker: either the worker sees the request or the producer sees it asleep.
 * Results: the request block itself is the au_xmsg posted back (it starts with the au_xmsg, and the
 * loop frees messages it can no longer deliver with free(), which a malloc'ed block allows).
 * Fairness: a shard does not hand every request to the workers at once. It keeps at most
 * AU_AUTHPOOL_SHARD_INFLIGHT per worker thread there; the rest wait on the shard in one FIFO per
 * flow (app, kind), and each free place goes to the next flow in round robin. So one app's bulk
 * registration or one burst of guesses waits in its own queue, while another app's login (or the same
 * app's logins, a flow of their own) is at most one round behind: worker queues stay short (at most
 * nshards * AU_AUTHPOOL_SHARD_INFLIGHT per thread, served FIFO, so every shard gets its share). */
#include "gateway/im/authpool.h"
#include "gateway/im/auth.h"
#include "core/loop.h"
#include "core/log.h"

#include <openssl/crypto.h>

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { REQ_VERIFY = 1, REQ_HASH = 2 };

struct ap_req {
    struct au_xmsg x;            /* first: posted back to the shard as is */
    struct ap_req *next;         /* worker stack / shard free list */
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
    _Alignas(64) _Atomic(struct ap_req *) head;
    _Alignas(64) atomic_uint wake_seq;   /* futex word */
    atomic_int sleeping;
    atomic_uint round;                   /* odd while posting a result (detach waits for even) */
    atomic_uint queued;                  /* submitted, not yet posted back: shards pick the least loaded */
    struct authpool *pool;
    unsigned idx;
    pthread_t thread;
    struct au_ext *ext;
};

/* A shard's queue of one (app, kind): requests not yet handed to a worker. */
struct ap_flow {
    struct ap_req *head, *tail;
    struct ap_flow *next_active; /* in the shard's round robin while it has queued requests */
    uint32_t pending;            /* accepted, not yet called back (queued + at a worker) */
    bool active;
};

/* Shard-thread-only state, except `detached` (read by workers). */
struct ap_shard {
    _Alignas(64) uint32_t pending;
    uint32_t inflight;           /* handed to workers, not yet called back */
    uint32_t nfree;
    uint32_t rr;
    struct ap_req *free;
    struct ap_flow *active_head, *active_tail;
    struct ap_flow *flows;       /* [AU_AUTHPOOL_FLOWS], allocated at the first submit */
    atomic_bool detached;
};

struct authpool {
    unsigned nthreads;
    uint32_t hash_iter;
    int started;
    atomic_int stop;
    struct au_shard **shards;
    int nshards, ext_base;
    struct ap_worker w[AUTHPOOL_MAX_THREADS];
    struct ap_shard sh[AU_MAX_SHARDS];
};

static void futex_wait(atomic_uint *addr, unsigned val)
{
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(atomic_uint *addr, int n)
{
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static void sleep_us(long us)
{
    struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------ the work */

static void run(struct authpool *p, struct ap_req *r)
{
    if (p && atomic_load_explicit(&p->sh[r->shard].detached, memory_order_acquire)) {
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
    struct ap_worker *w = &p->w[best];
    atomic_fetch_add_explicit(&w->queued, 1, memory_order_relaxed);
    struct ap_req *h = atomic_load_explicit(&w->head, memory_order_relaxed);
    do {
        r->next = h;
    } while (!atomic_compare_exchange_weak_explicit(&w->head, &h, r, memory_order_seq_cst, memory_order_relaxed));
    if (atomic_load_explicit(&w->sleeping, memory_order_seq_cst) && atomic_exchange(&w->sleeping, 0)) {
        atomic_fetch_add(&w->wake_seq, 1);
        futex_wake(&w->wake_seq, 1);
    }
}

/* Hand queued requests to the workers while the shard has room there, one per flow in turn. */
static void dispatch(struct authpool *p, struct ap_shard *sh)
{
    uint32_t room = AU_AUTHPOOL_SHARD_INFLIGHT * p->nthreads;
    if (atomic_load_explicit(&sh->detached, memory_order_relaxed)) return;
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
static void on_done(struct au_shard *s, struct au_xmsg *m)
{
    struct ap_req *r = (struct ap_req *)(void *)m;
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
    if (atomic_load_explicit(&sh->detached, memory_order_relaxed)) return -EAGAIN; /* a callback run by detach */
    if (!sh->flows) {
        sh->flows = calloc(AU_AUTHPOOL_FLOWS, sizeof *sh->flows);
        if (!sh->flows) return -EAGAIN;
    }
    unsigned fi = flow_of(app, tmpl->kind);
    struct ap_flow *f = &sh->flows[fi];
    if (sh->pending >= AUTHPOOL_MAX_PENDING || f->pending >= AU_AUTHPOOL_FLOW_MAX_PENDING) return -EAGAIN;
    struct ap_req *r = req_get(sh);
    if (!r) return -EAGAIN;
    r->x.handler = on_done;
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

static void *worker_main(void *arg)
{
    struct ap_worker *w = arg;
    struct authpool *p = w->pool;
    au_log_set_shard(-1);
    for (;;) {
        struct ap_req *list = atomic_exchange_explicit(&w->head, NULL, memory_order_acquire);
        if (!list) {
            if (au_ext_flush(w->ext)) { /* cannot happen (AUTHPOOL_MAX_PENDING <= AU_XQ_DEPTH); be safe */
                sleep_us(1000);
                continue;
            }
            if (atomic_load(&p->stop)) break;
            unsigned seq = atomic_load(&w->wake_seq);
            atomic_store(&w->sleeping, 1);
            if (atomic_load(&w->head) || atomic_load(&p->stop)) {
                atomic_store(&w->sleeping, 0);
                continue;
            }
            futex_wait(&w->wake_seq, seq);
            atomic_store(&w->sleeping, 0);
            continue;
        }
        struct ap_req *fifo = NULL;
        while (list) {
            struct ap_req *n = list->next;
            list->next = fifo;
            fifo = list;
            list = n;
        }
        while (fifo) {
            struct ap_req *r = fifo;
            fifo = r->next;
            run(p, r);
            atomic_fetch_add(&w->round, 1); /* odd: posting */
            au_ext_post(w->ext, r->shard, &r->x);
            au_ext_flush(w->ext);
            atomic_fetch_add(&w->round, 1); /* even */
            atomic_fetch_sub_explicit(&w->queued, 1, memory_order_relaxed);
        }
    }
    return NULL;
}

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
    for (unsigned i = 0; i < n; i++) {
        p->w[i].pool = p;
        p->w[i].idx = i;
    }
    return p;
}

unsigned authpool_threads(const struct authpool *p) { return p->nthreads; }

void authpool_start(struct authpool *p, struct au_shard **shards, int nshards, int ext_base)
{
    AU_ASSERT(!p->started && nshards >= 1 && nshards <= AU_MAX_SHARDS);
    AU_ASSERT(ext_base >= 0 && ext_base + (int)p->nthreads <= AU_MAX_EXT);
    p->shards = shards;
    p->nshards = nshards;
    p->ext_base = ext_base;
    for (unsigned i = 0; i < p->nthreads; i++) {
        struct ap_worker *w = &p->w[i];
        w->ext = au_ext_new(shards, nshards, ext_base + (int)i);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            au_error("authpool: pthread_create failed");
            abort();
        }
    }
    p->started = 1;
}

void authpool_shard_detach(struct authpool *p, int shard)
{
    if (!p || !p->started) return;
    AU_ASSERT(shard >= 0 && shard < p->nshards);
    struct ap_shard *sh = &p->sh[shard];
    struct au_shard *s = p->shards[shard];
    atomic_store_explicit(&sh->detached, true, memory_order_release);
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
            on_done(s, &r->x);
        }
        f->tail = NULL;
    }
    sh->active_tail = NULL;
    /* Results of our workers arrive on our own queues inq[nshards + ext id]; the loop no longer
     * drains them, so run them here. Queued requests complete quickly as canceled; one being
     * computed takes at most one hash. */
    while (sh->pending) {
        bool got = false;
        for (unsigned i = 0; i < p->nthreads; i++) {
            struct au_xq *q = &s->inq[p->nshards + p->ext_base + (int)i];
            struct au_xmsg *m;
            while ((m = au_xq_pop(q))) {
                m->handler(s, m);
                got = true;
            }
        }
        if (!got && sh->pending) sleep_us(AUTHPOOL_DETACH_POLL_US);
    }
    /* A worker may still be between posting our last result and submitting its doorbell to our
     * ring: wait until it is out of that step before the ring goes away. */
    for (unsigned i = 0; i < p->nthreads; i++) {
        unsigned r0 = atomic_load(&p->w[i].round);
        while ((r0 & 1) && atomic_load(&p->w[i].round) == r0) sleep_us(AUTHPOOL_DETACH_POLL_US);
    }
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
    atomic_store(&p->stop, 1);
    for (unsigned i = 0; i < p->nthreads; i++) {
        struct ap_worker *w = &p->w[i];
        if (p->started) {
            atomic_fetch_add(&w->wake_seq, 1);
            futex_wake(&w->wake_seq, INT_MAX);
            pthread_join(w->thread, NULL);
            au_ext_free(w->ext);
        } else { /* never started: drop what was queued (no callbacks) */
            struct ap_req *r = atomic_exchange(&w->head, NULL);
            while (r) {
                struct ap_req *n = r->next;
                OPENSSL_cleanse(r->pw, sizeof r->pw);
                free(r);
                r = n;
            }
        }
    }
    for (int i = 0; i < AU_MAX_SHARDS; i++) {
        struct ap_shard *sh = &p->sh[i];
        if (p->started) AU_ASSERT(sh->pending == 0);
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
