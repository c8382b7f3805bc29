/* iopool.h - worker threads for blocking file work (media files), completions on the submitting shard.
 *
 * An event-loop shard never blocks on a file: it fills a job (its own memory: a struct that embeds
 * struct iopool_job FIRST), submits it without blocking, a worker runs job->work, then job->done runs
 * on the submitting shard. One job = one allocation by the caller, none by the pool. The threads,
 * queues, completion path and shutdown are core/workpool.h's (one protocol for every pool); this
 * file adds the policy: shards pick workers round robin, a worker runs at most IOPOOL_ROUND_MAX jobs
 * before their completions are posted, and the longest queue wait is recorded.
 *
 * Lifecycle (main thread), the same shape as the store's:
 *   p = iopool_new(workers)
 *   au_loop_opts.n_ext >= ext_base + iopool_threads(p)   (ids ext_base .. ext_base + workers - 1)
 *   au_loop_start(); iopool_start(p, shards, nshards, ext_base)
 *   ... shards submit ...
 *   au_loop_stop(): every shard's shard_fini hook calls iopool_shard_detach(p, s->id)
 *   iopool_close(p)
 *
 * Every submitted job gets exactly one done call: on its shard (s != NULL), or with s == NULL when
 * it cannot complete there (submitted after its shard detached: a caller bug, logged) - then done
 * must only release the job, on whatever thread it runs. */
#ifndef AU_STORE_IOPOOL_H
#define AU_STORE_IOPOOL_H

#include "core/workpool.h"

#define IOPOOL_WORKERS_MAX  4u     /* worker threads (each takes one external producer id) */
#define IOPOOL_ROUND_MAX    64u    /* jobs a worker runs before it posts their completions */

_Static_assert(IOPOOL_WORKERS_MAX <= AU_WP_WORKERS_MAX, "each worker needs an external producer id");

struct iopool;

struct iopool_job {
    struct au_wp_job wj;                                    /* must stay first (see workpool.h) */
    void (*work)(struct iopool_job *j);                     /* worker thread: may block */
    void (*done)(struct au_shard *s, struct iopool_job *j); /* submitting shard: owns j afterwards */
    uint64_t submit_us;                                     /* set by iopool_submit */
};

struct iopool *iopool_new(unsigned workers);               /* 1 .. IOPOOL_WORKERS_MAX */
unsigned iopool_threads(const struct iopool *p);           /* external producer ids needed */
void iopool_start(struct iopool *p, struct au_shard **shards, int nshards, int ext_base);
/* Shard `shard`'s thread only, after iopool_start. Never blocks. */
void iopool_submit(struct iopool *p, int shard, struct iopool_job *j);
/* From shard `shard`'s shard_fini hook (its loop no longer runs): waits for its jobs in flight and
 * runs their done callbacks here; afterwards the pool never touches this shard again. */
void iopool_shard_detach(struct iopool *p, int shard);
/* Run what is still queued, join the workers, free. After au_loop_stop. */
void iopool_close(struct iopool *p);

struct iopool_stats {
    uint64_t submitted, completed, max_queue_us, canceled;
};
void iopool_get_stats(const struct iopool *p, struct iopool_stats *out);

#endif
