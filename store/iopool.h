/* iopool.h - worker threads for blocking file work (media files), completions on the submitting shard.
 *
 * An event-loop shard never blocks on a file: it fills a job (its own memory: a struct that embeds
 * struct iopool_job FIRST), submits it without blocking (lock-free MPSC push, a futex wake only
 * when the worker sleeps), a worker runs job->work, then posts the job back to the submitting shard
 * through the loop's external-producer queue (au_ext_post / au_ext_flush, one producer id per
 * worker) and job->done runs there. One job = one cross-shard message, no allocation by the pool.
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
 * the pool shuts down without that shard (it was detached first: a caller bug, logged) - then done
 * must only release the job, on whatever thread it runs. */
#ifndef AU_STORE_IOPOOL_H
#define AU_STORE_IOPOOL_H

#include "core/loop.h"
#include "store/mpsc.h"

#define IOPOOL_WORKERS_MAX  4u     /* worker threads (each takes one external producer id) */
#define IOPOOL_ROUND_MAX    64u    /* jobs a worker runs before it posts their completions */
#define IOPOOL_CLOSE_FLUSH_MS 5000u /* iopool_close: how long to retry posting completions */

_Static_assert(IOPOOL_WORKERS_MAX <= AU_MAX_EXT, "each worker needs an external producer id");

struct iopool;

struct iopool_job {
    struct au_xmsg xm;                                      /* must stay first (see loop.h) */
    struct mpsc_node qn;
    void (*work)(struct iopool_job *j);                     /* worker thread: may block */
    void (*done)(struct au_shard *s, struct iopool_job *j); /* submitting shard: owns j afterwards */
    /* set by iopool_submit */
    struct iopool *pool;
    uint64_t submit_us;
    int shard;
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
