/* iopool.c - worker threads for blocking file work (see iopool.h).
 *
 * Each worker owns one Vyukov MPSC queue (store/mpsc.h) that shards push jobs onto, and one
 * external-producer handle (au_ext) that it posts finished jobs through. Shards pick a worker round
 * robin. Waking follows the store's protocol: a worker announces sleep by storing 1 to its futex
 * word (seq_cst), re-checks its queue, then waits; a shard pushes (seq_cst exchange) then reads the
 * word and wakes the worker only when it was 1, so one of the two always sees the other.
 *
 * Shutdown: a worker collects up to IOPOOL_ROUND_MAX finished jobs, then posts them in one phase
 * (post_epoch odd while posting). iopool_shard_detach (on the shard's thread, from shard_fini) runs
 * the completions of the shard's jobs still in flight itself, popping them from the shard's inbound
 * queues for our producer ids, marks the shard detached, and waits out a post phase in progress;
 * later phases see `detached` and never touch the shard (the loop frees it after join). */
#include "store/iopool.h"
#include "core/log.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct worker {
    _Alignas(64) struct mpsc q;
    _Alignas(64) atomic_int sleeping;   /* futex word: 1 while (about to be) asleep */
    atomic_uint post_epoch;             /* odd while posting completions */
    struct iopool *pool;
    struct au_ext *ext;
    unsigned novf;                      /* completions au_ext could not push yet */
    unsigned idx;
    pthread_t tid;
    bool running;
};

struct pshard {
    _Alignas(64) uint64_t outstanding;  /* shard thread only: submitted, done not run yet */
    uint64_t submitted, completed;      /* shard thread writes, stats read (relaxed) */
    unsigned rr;
    atomic_int detached;
};

struct iopool {
    unsigned nworkers;
    struct worker w[IOPOOL_WORKERS_MAX];
    struct pshard sh[AU_MAX_SHARDS];
    struct au_shard **shards;
    int nshards, ext_base;
    bool started;
    atomic_int stopping;
    atomic_uint_fast64_t max_queue_us, canceled;
};

/* ------------------------------------------------------------------ futex */

static void futex_wait(atomic_int *w, int val, unsigned ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    (void)syscall(SYS_futex, (int *)w, FUTEX_WAIT_PRIVATE, val, &ts, NULL, 0);
}

static void futex_wake(atomic_int *w) { (void)syscall(SYS_futex, (int *)w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0); }

static void wake(struct worker *w)
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

static void comp_handler(struct au_shard *s, struct au_xmsg *m)
{
    struct iopool_job *j = (struct iopool_job *)(void *)m;
    struct iopool *p = j->pool;
    AU_ASSERT(j->shard == s->id);
    struct pshard *ps = &p->sh[s->id];
    AU_ASSERT(ps->outstanding > 0);
    ps->outstanding--;
    __atomic_store_n(&ps->completed, ps->completed + 1, __ATOMIC_RELAXED);
    j->done(s, j);
}

void iopool_submit(struct iopool *p, int shard, struct iopool_job *j)
{
    AU_ASSERT(p->started && shard >= 0 && shard < p->nshards);
    AU_ASSERT(j->work && j->done);
    struct pshard *ps = &p->sh[shard];
    AU_ASSERT(!atomic_load_explicit(&ps->detached, memory_order_relaxed));
    j->pool = p;
    j->shard = shard;
    j->submit_us = au_now_us();
    j->xm.handler = comp_handler;
    j->xm.next = NULL;
    ps->outstanding++;
    __atomic_store_n(&ps->submitted, ps->submitted + 1, __ATOMIC_RELAXED);
    struct worker *w = &p->w[ps->rr++ % p->nworkers];
    mpsc_push(&w->q, &j->qn);
    wake(w);
}

void iopool_shard_detach(struct iopool *p, int shard)
{
    if (!p || !p->started) return;
    AU_ASSERT(shard >= 0 && shard < p->nshards);
    struct au_shard *s = p->shards[shard];
    AU_ASSERT(s->id == shard);
    struct pshard *ps = &p->sh[shard];
    /* We are the shard's thread, the only consumer of its inbound queues, and its loop no longer
     * drains them: run the completions of our producers' messages here until none is in flight. */
    while (ps->outstanding) {
        bool got = false;
        for (unsigned i = 0; i < p->nworkers; i++) {
            struct au_xq *q = &s->inq[s->nshards + p->ext_base + (int)i];
            struct au_xmsg *m;
            while ((m = au_xq_pop(q))) {
                m->handler(s, m);
                got = true;
            }
        }
        if (!got) nap_us(100);
    }
    atomic_store_explicit(&ps->detached, 1, memory_order_seq_cst);
    /* A worker may still be inside the post phase that delivered our last job (between the queue
     * push and its doorbell): wait for that phase to end. */
    for (unsigned i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->w[i];
        unsigned e = atomic_load_explicit(&w->post_epoch, memory_order_seq_cst);
        if (!(e & 1)) continue;
        while (atomic_load_explicit(&w->post_epoch, memory_order_seq_cst) == e) sched_yield();
    }
}

/* ------------------------------------------------------------------ worker side */

static void post_round(struct worker *w, struct iopool_job **done, unsigned n)
{
    struct iopool *p = w->pool;
    if (!n && !w->novf) return;
    atomic_fetch_add_explicit(&w->post_epoch, 1, memory_order_seq_cst); /* odd: posting */
    for (unsigned i = 0; i < n; i++) {
        struct iopool_job *j = done[i];
        if (atomic_load_explicit(&p->sh[j->shard].detached, memory_order_seq_cst)) {
            au_warn("iopool: shard %d detached with a job in flight: completion canceled", j->shard);
            atomic_fetch_add_explicit(&p->canceled, 1, memory_order_relaxed);
            j->done(NULL, j);
            continue;
        }
        au_ext_post(w->ext, j->shard, &j->xm);
    }
    w->novf = au_ext_flush(w->ext);
    atomic_fetch_add_explicit(&w->post_epoch, 1, memory_order_seq_cst); /* even */
}

static void note_wait(struct iopool *p, uint64_t waited)
{
    uint64_t cur = atomic_load_explicit(&p->max_queue_us, memory_order_relaxed);
    while (waited > cur &&
           !atomic_compare_exchange_weak_explicit(&p->max_queue_us, &cur, waited, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct iopool *p = w->pool;
    char name[16];
    snprintf(name, sizeof name, "au-io%u", w->idx);
    pthread_setname_np(pthread_self(), name);
    struct iopool_job *done[IOPOOL_ROUND_MAX];
    uint64_t give_up_ms = 0;
    for (;;) {
        unsigned n = 0;
        struct mpsc_node *node;
        while (n < IOPOOL_ROUND_MAX && (node = mpsc_pop(&w->q))) {
            struct iopool_job *j = AU_CONTAINER_OF(node, struct iopool_job, qn);
            note_wait(p, au_now_us() - j->submit_us);
            j->work(j);
            done[n++] = j;
        }
        post_round(w, done, n);
        if (n) continue;
        if (!mpsc_idle(&w->q)) { /* a push is half done: it completes within instructions */
            sched_yield();
            continue;
        }
        if (atomic_load_explicit(&p->stopping, memory_order_seq_cst)) {
            if (!w->novf) break;
            uint64_t now = au_now_ms();
            if (!give_up_ms) give_up_ms = now + IOPOOL_CLOSE_FLUSH_MS;
            if (now >= give_up_ms) {
                au_error("iopool: worker %u gives up posting %u completions", w->idx, w->novf);
                break;
            }
            nap_us(1000);
            continue;
        }
        atomic_store_explicit(&w->sleeping, 1, memory_order_seq_cst);
        if (mpsc_idle(&w->q) && !atomic_load_explicit(&p->stopping, memory_order_seq_cst))
            futex_wait(&w->sleeping, 1, w->novf ? 1 : 1000);
        atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
    }
    return NULL;
}

/* ------------------------------------------------------------------ lifecycle */

struct iopool *iopool_new(unsigned workers)
{
    AU_ASSERT(workers >= 1 && workers <= IOPOOL_WORKERS_MAX);
    struct iopool *p = aligned_alloc(64, (sizeof *p + 63) & ~(size_t)63);
    AU_ASSERT(p != NULL);
    memset(p, 0, sizeof *p);
    p->nworkers = workers;
    for (unsigned i = 0; i < workers; i++) {
        mpsc_init(&p->w[i].q);
        p->w[i].pool = p;
        p->w[i].idx = i;
    }
    return p;
}

unsigned iopool_threads(const struct iopool *p) { return p->nworkers; }

void iopool_start(struct iopool *p, struct au_shard **shards, int nshards, int ext_base)
{
    AU_ASSERT(!p->started && nshards >= 1 && nshards <= AU_MAX_SHARDS && ext_base >= 0);
    AU_ASSERT(ext_base + (int)p->nworkers <= shards[0]->ninq - nshards);
    p->shards = shards;
    p->nshards = nshards;
    p->ext_base = ext_base;
    for (unsigned i = 0; i < p->nworkers; i++) p->w[i].ext = au_ext_new(shards, nshards, ext_base + (int)i);
    p->started = true;
    for (unsigned i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->w[i];
        if (pthread_create(&w->tid, NULL, worker_main, w) != 0) {
            au_error("iopool: pthread_create failed");
            abort();
        }
        w->running = true;
    }
}

void iopool_close(struct iopool *p)
{
    if (!p) return;
    atomic_store_explicit(&p->stopping, 1, memory_order_seq_cst);
    for (unsigned i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->w[i];
        if (!w->running) continue;
        atomic_store_explicit(&w->sleeping, 0, memory_order_seq_cst);
        futex_wake(&w->sleeping);
    }
    for (unsigned i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->w[i];
        if (!w->running) continue;
        pthread_join(w->tid, NULL);
        w->running = false;
        au_ext_free(w->ext);
        w->ext = NULL;
    }
    free(p);
}

void iopool_get_stats(const struct iopool *p, struct iopool_stats *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < p->nshards; i++) {
        out->submitted += __atomic_load_n(&p->sh[i].submitted, __ATOMIC_RELAXED);
        out->completed += __atomic_load_n(&p->sh[i].completed, __ATOMIC_RELAXED);
    }
    out->max_queue_us = atomic_load_explicit(&p->max_queue_us, memory_order_relaxed);
    out->canceled = atomic_load_explicit(&p->canceled, memory_order_relaxed);
}
