/* workpool.c - worker threads with completions on the submitting shard (see workpool.h, which has
 * the protocol, the detach fence and the memory-ordering story).
 *
 * Each worker owns one Vyukov MPSC queue (core/mpsc.h) that shards push jobs onto, a futex word it
 * sleeps on, and one external-producer handle (au_ext) it posts finished jobs through. A round's
 * completions are linked per shard and posted as one message per shard; the shard's handler runs
 * them in order. */
#include "core/workpool.h"
#include "core/log.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { WP_ATTACHED = 0, WP_DETACHING = 1, WP_DETACHED = 2 };

struct au_wp_worker {
    _Alignas(64) struct mpsc q;         /* its tail and head have cache lines of their own */
    _Alignas(64) atomic_int sleeping;   /* futex word: 1 while (about to be) asleep; read by every submit */
    atomic_uint post_epoch;             /* odd while posting completions (the detach fence) */
    _Alignas(64) struct au_wp *pool;    /* from here on: the worker's own, written every round */
    struct au_ext *ext;
    struct au_wp_job **ch, **ct;        /* per shard: this round's completion list head / tail */
    int *touched;                       /* shards with a non-empty list this round */
    int ntouched;
    unsigned novf;                      /* completions au_ext could not push yet */
    unsigned idx;
    pthread_t tid;
    bool running;
};

struct wp_shard {
    _Alignas(64) uint64_t submitted;    /* written by the shard's thread only (relaxed, for stats) */
    uint64_t completed;                 /* done calls run on the shard; same */
    atomic_int state;                   /* WP_ATTACHED / DETACHING / DETACHED */
};

struct au_wp {
    const char *name;
    const struct au_wp_ops *ops;
    void *ctx;
    unsigned nworkers;
    struct au_wp_worker w[AU_WP_WORKERS_MAX];
    struct wp_shard sh[AU_MAX_SHARDS];
    struct au_shard **shards;
    int nshards, ext_base;
    bool started;
    atomic_int stopping;
    atomic_uint_fast64_t canceled;
};

/* ------------------------------------------------------------------ futex */

static void futex_wait(atomic_int *w, int val, unsigned ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    (void)syscall(SYS_futex, (int *)w, FUTEX_WAIT_PRIVATE, val, &ts, NULL, 0);
}

static void futex_wake(atomic_int *w) { (void)syscall(SYS_futex, (int *)w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0); }

static void wake(struct au_wp_worker *w)
{
    if (atomic_load_explicit(&w->sleeping, memory_order_seq_cst) &&
        atomic_exchange_explicit(&w->sleeping, 0, memory_order_seq_cst))
        futex_wake(&w->sleeping);
}

static void nap_us(unsigned us)
{
    struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)us * 1000L };
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------ shard side */

/* Runs on the shard: every done call of one completion list, in order. */
static void comp_handler(struct au_shard *s, struct au_xmsg *m)
{
    struct au_wp_job *j = (struct au_wp_job *)(void *)m;
    struct wp_shard *ps = &j->pool->sh[s->id];
    while (j) {
        struct au_wp_job *next = j->cnext; /* done may free j */
        AU_ASSERT(j->shard == s->id);
        AU_ASSERT(ps->completed < ps->submitted);
        __atomic_store_n(&ps->completed, ps->completed + 1, __ATOMIC_RELAXED);
        j->done(s, j);
        j = next;
    }
}

void au_wp_submit(struct au_wp *p, unsigned worker, int shard, struct au_wp_job *j)
{
    AU_ASSERT(worker < p->nworkers && j->done != NULL);
    AU_ASSERT(shard >= 0 && shard < AU_MAX_SHARDS); /* < nshards: checked by au_wp_start / au_wp_complete */
    struct wp_shard *ps = &p->sh[shard];
    AU_ASSERT(atomic_load_explicit(&ps->state, memory_order_relaxed) != WP_DETACHED);
    j->pool = p;
    j->shard = shard;
    j->xm.handler = comp_handler;
    j->xm.next = NULL;
    j->cnext = NULL;
    __atomic_store_n(&ps->submitted, ps->submitted + 1, __ATOMIC_RELAXED);
    struct au_wp_worker *w = &p->w[worker];
    mpsc_push(&w->q, &j->qn);
    wake(w);
}

uint64_t au_wp_outstanding(const struct au_wp *p, int shard)
{
    AU_ASSERT(shard >= 0 && shard < AU_MAX_SHARDS);
    return p->sh[shard].submitted - p->sh[shard].completed;
}

bool au_wp_shard_attached(const struct au_wp *p, int shard)
{
    AU_ASSERT(shard >= 0 && shard < AU_MAX_SHARDS);
    return atomic_load_explicit(&p->sh[shard].state, memory_order_relaxed) == WP_ATTACHED;
}

void au_wp_shard_detach(struct au_wp *p, int shard)
{
    if (!p || !p->started) return;
    AU_ASSERT(shard >= 0 && shard < p->nshards);
    struct au_shard *s = p->shards[shard];
    AU_ASSERT(s->id == shard);
    struct wp_shard *ps = &p->sh[shard];
    atomic_store_explicit(&ps->state, WP_DETACHING, memory_order_release);
    /* We are the shard's thread, the only consumer of its inbound queues, and its loop no longer
     * drains them: run the completions of our workers' messages here until none is outstanding. */
    while (ps->submitted != ps->completed) {
        bool got = false;
        for (unsigned i = 0; i < p->nworkers; i++) {
            struct au_xq *q = &s->inq[s->nshards + p->ext_base + (int)i];
            struct au_xmsg *m;
            while ((m = au_xq_pop(q))) {
                m->handler(s, m);
                got = true;
            }
        }
        if (!got) nap_us(AU_WP_DETACH_POLL_US);
    }
    atomic_store_explicit(&ps->state, WP_DETACHED, memory_order_seq_cst);
    /* A worker may still be inside the post phase that delivered our last list (between the queue
     * push and its doorbell): wait for that phase to end. Later phases see DETACHED. */
    for (unsigned i = 0; i < p->nworkers; i++) {
        struct au_wp_worker *w = &p->w[i];
        unsigned e = atomic_load_explicit(&w->post_epoch, memory_order_seq_cst);
        if (!(e & 1)) continue;
        while (atomic_load_explicit(&w->post_epoch, memory_order_seq_cst) == e) sched_yield();
    }
}

/* ------------------------------------------------------------------ worker side */

struct au_wp_job *au_wp_pop(struct au_wp_worker *w)
{
    struct mpsc_node *n = mpsc_pop(&w->q);
    return n ? AU_CONTAINER_OF(n, struct au_wp_job, qn) : NULL;
}

void au_wp_complete(struct au_wp_worker *w, struct au_wp_job *j)
{
    int sh = j->shard;
    AU_ASSERT(sh >= 0 && sh < w->pool->nshards);
    j->cnext = NULL;
    if (w->ch[sh]) {
        w->ct[sh]->cnext = j;
    } else {
        w->ch[sh] = j;
        w->touched[w->ntouched++] = sh;
    }
    w->ct[sh] = j;
}

unsigned au_wp_worker_index(const struct au_wp_worker *w) { return w->idx; }
struct au_wp *au_wp_worker_pool(const struct au_wp_worker *w) { return w->pool; }

bool au_wp_job_canceled(const struct au_wp_job *j)
{
    return atomic_load_explicit(&j->pool->sh[j->shard].state, memory_order_acquire) != WP_ATTACHED;
}

/* A list that can no longer complete on its shard: done(NULL, ...) here, on the worker. */
static void cancel_list(struct au_wp *p, int sh, struct au_wp_job *h)
{
    unsigned n = 0;
    while (h) {
        struct au_wp_job *next = h->cnext;
        h->done(NULL, h);
        n++;
        h = next;
    }
    atomic_fetch_add_explicit(&p->canceled, n, memory_order_relaxed);
    au_warn("%s: shard %d detached with %u job(s) in flight: their completions are canceled", p->name, sh, n);
}

/* Post this round's completion lists (one message per shard) and retry spilled ones. */
static void post_round(struct au_wp_worker *w)
{
    struct au_wp *p = w->pool;
    if (!w->ntouched && !w->novf) return;
    atomic_fetch_add_explicit(&w->post_epoch, 1, memory_order_seq_cst); /* odd: posting */
    for (int i = 0; i < w->ntouched; i++) {
        int sh = w->touched[i];
        struct au_wp_job *h = w->ch[sh];
        w->ch[sh] = w->ct[sh] = NULL;
        if (atomic_load_explicit(&p->sh[sh].state, memory_order_seq_cst) == WP_DETACHED) {
            cancel_list(p, sh, h); /* submitted after detach: a caller bug */
            continue;
        }
        au_ext_post(w->ext, sh, &h->xm);
    }
    w->ntouched = 0;
    w->novf = au_ext_flush(w->ext);
    atomic_fetch_add_explicit(&w->post_epoch, 1, memory_order_seq_cst); /* even */
}

static void *worker_main(void *arg)
{
    struct au_wp_worker *w = arg;
    struct au_wp *p = w->pool;
    if (p->ops->thread_init) p->ops->thread_init(w);
    unsigned idle_spins = 0;
    for (;;) {
        unsigned n = p->ops->round(w);
        post_round(w);
        if (n) {
            idle_spins = 0;
            continue;
        }
        if (!mpsc_idle(&w->q)) { /* a push is half done: it completes within instructions */
            if (++idle_spins > AU_WP_SPIN_MAX) sched_yield();
            continue;
        }
        if (atomic_load_explicit(&p->stopping, memory_order_seq_cst)) break;
        unsigned ms = p->ops->idle_ms ? p->ops->idle_ms(w) : 0;
        if (!ms) ms = AU_WP_IDLE_WAIT_MS;
        atomic_store_explicit(&w->sleeping, 1, memory_order_seq_cst);
        if (mpsc_idle(&w->q) && !atomic_load_explicit(&p->stopping, memory_order_seq_cst))
            futex_wait(&w->sleeping, 1, w->novf ? 1 : ms);
        atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
    }
    /* Completions au_ext could not push yet (a shard's queue was full): retry for a while. */
    uint64_t deadline = au_now_ms() + AU_WP_CLOSE_FLUSH_MS;
    while (w->novf && au_now_ms() < deadline) {
        nap_us(1000);
        post_round(w);
    }
    if (w->novf) au_error("%s: worker %u: %u completion message(s) could not be posted at close", p->name, w->idx, w->novf);
    return NULL;
}

/* ------------------------------------------------------------------ lifecycle */

struct au_wp *au_wp_new(const struct au_wp_opts *o)
{
    AU_ASSERT(o && o->ops && o->ops->round && o->name);
    AU_ASSERT(o->workers >= 1 && o->workers <= AU_WP_WORKERS_MAX);
    struct au_wp *p = aligned_alloc(64, (sizeof *p + 63) & ~(size_t)63);
    AU_ASSERT(p != NULL);
    memset(p, 0, sizeof *p);
    p->name = o->name;
    p->ops = o->ops;
    p->ctx = o->ctx;
    p->nworkers = o->workers;
    for (unsigned i = 0; i < o->workers; i++) {
        mpsc_init(&p->w[i].q);
        p->w[i].pool = p;
        p->w[i].idx = i;
    }
    return p;
}

unsigned au_wp_threads(const struct au_wp *p) { return p->nworkers; }
void *au_wp_ctx(const struct au_wp *p) { return p->ctx; }
bool au_wp_started(const struct au_wp *p) { return p->started; }

void au_wp_start(struct au_wp *p, struct au_shard **shards, int nshards, int ext_base)
{
    AU_ASSERT(!p->started && nshards >= 1 && nshards <= AU_MAX_SHARDS && ext_base >= 0);
    AU_ASSERT(ext_base + (int)p->nworkers <= shards[0]->ninq - nshards);
    for (int i = nshards; i < AU_MAX_SHARDS; i++) /* submitted before start for a shard that does not exist */
        AU_ASSERT(__atomic_load_n(&p->sh[i].submitted, __ATOMIC_RELAXED) == 0);
    p->shards = shards;
    p->nshards = nshards;
    p->ext_base = ext_base;
    for (unsigned i = 0; i < p->nworkers; i++) {
        struct au_wp_worker *w = &p->w[i];
        w->ext = au_ext_new(shards, nshards, ext_base + (int)i);
        w->ch = calloc((size_t)nshards, sizeof *w->ch);
        w->ct = calloc((size_t)nshards, sizeof *w->ct);
        w->touched = calloc((size_t)nshards, sizeof *w->touched);
        AU_ASSERT(w->ch && w->ct && w->touched);
    }
    p->started = true;
    for (unsigned i = 0; i < p->nworkers; i++) {
        struct au_wp_worker *w = &p->w[i];
        if (pthread_create(&w->tid, NULL, worker_main, w) != 0) {
            au_error("%s: pthread_create failed", p->name);
            abort();
        }
        w->running = true;
    }
}

void au_wp_close(struct au_wp *p)
{
    if (!p) return;
    atomic_store_explicit(&p->stopping, 1, memory_order_seq_cst);
    for (unsigned i = 0; i < p->nworkers; i++) {
        struct au_wp_worker *w = &p->w[i];
        if (!w->running) continue;
        atomic_store_explicit(&w->sleeping, 0, memory_order_seq_cst);
        futex_wake(&w->sleeping);
    }
    for (unsigned i = 0; i < p->nworkers; i++) {
        struct au_wp_worker *w = &p->w[i];
        if (!w->running) continue;
        pthread_join(w->tid, NULL);
        w->running = false;
    }
    /* Never started (workers exit only with an idle queue): every queued job is released. */
    unsigned dropped = 0;
    for (unsigned i = 0; i < p->nworkers; i++) {
        struct au_wp_worker *w = &p->w[i];
        struct au_wp_job *j;
        while ((j = au_wp_pop(w)) || !mpsc_idle(&w->q)) {
            if (!j) continue;
            j->done(NULL, j);
            dropped++;
        }
        au_ext_free(w->ext);
        free(w->ch);
        free(w->ct);
        free(w->touched);
    }
    if (dropped) {
        atomic_fetch_add_explicit(&p->canceled, dropped, memory_order_relaxed);
        au_warn("%s: %s: %u job(s) released without completion", p->name,
                p->started ? "submitted after close" : "closed before it was started", dropped);
    }
    free(p);
}

void au_wp_get_stats(const struct au_wp *p, struct au_wp_stats *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < AU_MAX_SHARDS; i++) {
        out->submitted += __atomic_load_n(&p->sh[i].submitted, __ATOMIC_RELAXED);
        out->completed += __atomic_load_n(&p->sh[i].completed, __ATOMIC_RELAXED);
    }
    out->canceled = atomic_load_explicit(&p->canceled, memory_order_relaxed);
}
