/* iopool.c - worker threads for blocking file work (see iopool.h): the media policy on top of
 * core/workpool.c (round-robin workers, rounds of at most IOPOOL_ROUND_MAX jobs, queue-wait stats). */
#include "store/iopool.h"
#include "core/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pshard {
    _Alignas(64) unsigned rr;           /* shard thread only: next worker */
};

struct iopool {
    struct au_wp *wp;
    struct pshard sh[AU_MAX_SHARDS];
    atomic_uint_fast64_t max_queue_us;
};

static void note_wait(struct iopool *p, uint64_t waited)
{
    uint64_t cur = atomic_load_explicit(&p->max_queue_us, memory_order_relaxed);
    while (waited > cur &&
           !atomic_compare_exchange_weak_explicit(&p->max_queue_us, &cur, waited, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

static unsigned io_round(struct au_wp_worker *w)
{
    struct iopool *p = au_wp_ctx(au_wp_worker_pool(w));
    unsigned n = 0;
    struct au_wp_job *wj;
    while (n < IOPOOL_ROUND_MAX && (wj = au_wp_pop(w))) {
        struct iopool_job *j = (struct iopool_job *)(void *)wj;
        note_wait(p, au_now_us() - j->submit_us);
        j->work(j);
        au_wp_complete(w, wj);
        n++;
    }
    return n;
}

static void io_thread_init(struct au_wp_worker *w)
{
    char name[16];
    snprintf(name, sizeof name, "au-io%u", au_wp_worker_index(w));
    pthread_setname_np(pthread_self(), name);
}

static const struct au_wp_ops io_ops = { .round = io_round, .thread_init = io_thread_init };

static void io_done(struct au_shard *s, struct au_wp_job *wj)
{
    struct iopool_job *j = (struct iopool_job *)(void *)wj;
    j->done(s, j);
}

void iopool_submit(struct iopool *p, int shard, struct iopool_job *j)
{
    AU_ASSERT(au_wp_started(p->wp) && shard >= 0 && shard < AU_MAX_SHARDS);
    AU_ASSERT(j->work && j->done);
    j->submit_us = au_now_us();
    j->wj.done = io_done;
    au_wp_submit(p->wp, p->sh[shard].rr++ % au_wp_threads(p->wp), shard, &j->wj);
}

void iopool_shard_detach(struct iopool *p, int shard)
{
    if (p) au_wp_shard_detach(p->wp, shard);
}

struct iopool *iopool_new(unsigned workers)
{
    AU_ASSERT(workers >= 1 && workers <= IOPOOL_WORKERS_MAX);
    struct iopool *p = aligned_alloc(64, (sizeof *p + 63) & ~(size_t)63);
    AU_ASSERT(p != NULL);
    memset(p, 0, sizeof *p);
    struct au_wp_opts o = { .name = "iopool", .workers = workers, .ops = &io_ops, .ctx = p };
    p->wp = au_wp_new(&o);
    return p;
}

unsigned iopool_threads(const struct iopool *p) { return au_wp_threads(p->wp); }

void iopool_start(struct iopool *p, struct au_shard **shards, int nshards, int ext_base)
{
    au_wp_start(p->wp, shards, nshards, ext_base);
}

void iopool_close(struct iopool *p)
{
    if (!p) return;
    au_wp_close(p->wp);
    free(p);
}

void iopool_get_stats(const struct iopool *p, struct iopool_stats *out)
{
    struct au_wp_stats ws;
    au_wp_get_stats(p->wp, &ws);
    memset(out, 0, sizeof *out);
    out->submitted = ws.submitted;
    out->completed = ws.completed;
    out->canceled = ws.canceled;
    out->max_queue_us = atomic_load_explicit(&p->max_queue_us, memory_order_relaxed);
}
