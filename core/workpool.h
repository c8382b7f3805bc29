/* workpool.h - worker threads that run jobs for the shards and complete them on the submitting shard.
 *
 * The one primitive behind every "blocking work off the event loop" in Aurora: the store's writer
 * and reader threads (store/store.c), the media io pool (store/iopool.c) and the password workers
 * (gateway/im/authpool.c). Each user keeps its policy on top (group commit, fair queues, ...); the
 * pool owns the threads, the queues, the sleep/wake protocol, the completion path and the detach
 * fence, so there is one of each to audit.
 *
 *   shard k ── au_wp_submit(p, worker, k, job) ──► worker's MPSC queue (core/mpsc.h; futex wake only
 *      ▲                                           when the worker announced sleep)
 *      │                                           worker: ops->round() takes jobs (au_wp_pop), runs
 *      │                                           them, au_wp_complete() links each into a per-shard list
 *      └── job->done(shard, job), in order ◄────── after the round: ONE au_xmsg per shard (the list's first
 *          (the loop's inbox, or detach)           job) through the worker's external-producer queue
 *                                                  (core/loop.h au_ext_post), one au_ext_flush (doorbells)
 *
 * A job is the caller's memory: a struct that embeds struct au_wp_job FIRST. The pool allocates
 * nothing per job. Every submitted job gets exactly one done call:
 *   - done(s, job) on the submitting shard's thread, s being that shard: from the loop's inbox while
 *     the shard runs, or from au_wp_shard_detach when it stops;
 *   - done(NULL, job) on whatever thread notices it can no longer complete on its shard: the pool was
 *     closed before it was started (au_wp_close), or the job was submitted after its shard detached
 *     (a caller bug, logged). done(NULL, ...) must only release the job.
 * The done calls of one shard's jobs completed by one worker run in the order the worker completed them
 * (a round's completions in au_wp_complete order, rounds in order).
 *
 * Lifecycle (main thread):
 *   p = au_wp_new(&opts)                            queues exist: submitting is allowed from here on
 *   au_loop_opts.n_ext >= ext_base + au_wp_threads(p)  (ids ext_base .. ext_base + workers - 1)
 *   au_loop_start(); au_wp_start(p, shards, nshards, ext_base)
 *   ... shards submit ...
 *   au_loop_stop(): every shard's shard_fini hook calls au_wp_shard_detach(p, s->id)
 *   au_wp_close(p)                                  workers finish what is queued, exit, are joined
 *
 * Detach fence (au_wp_shard_detach, on the shard's own thread from shard_fini: its loop no longer
 * drains its inbox, and the loop frees the shard after au_loop_stop joined it):
 *   1. state = DETACHING: au_wp_job_canceled() turns true for the shard's jobs (a hint a round may use
 *      to skip work; the job still completes); submitting stays allowed (a done callback may submit);
 *   2. the shard pops the pool's queues into itself (inq[nshards + ext_base + i]) and runs those done
 *      calls until none of its jobs is outstanding (submitted, done not yet run);
 *   3. state = DETACHED; then, for every worker whose post phase was in progress (post_epoch odd),
 *      wait until that phase ends: it may still be between pushing our last list and ringing our
 *      doorbell (au_ext_flush reads the shard's doorbell word and ring fd).
 * Afterwards no worker touches the shard: it has no job left at the pool, and a post phase that
 * began after step 3 sees DETACHED (see the ordering below) and completes with done(NULL, ...)
 * instead of posting. The shard must not submit after detaching (asserted).
 *
 * Memory ordering (the one story for every pool; core/mpsc.h and core/xq.h give the queue halves):
 *   - Submit -> worker: the job's fields are written, then mpsc_push (seq_cst exchange of the tail,
 *     release store of the link); the worker's mpsc_pop loads links with acquire: a popped job's
 *     fields are visible to the worker.
 *   - Sleep/wake (Dekker pair): the worker stores sleeping = 1 (seq_cst), then re-checks its queue
 *     (mpsc_idle: seq_cst load of the tail) before FUTEX_WAIT; the submitter's seq_cst exchange is
 *     followed by a seq_cst load of `sleeping`, and only a submitter that saw 1 (and exchanged it to 0)
 *     calls FUTEX_WAKE. In the single total order one of the two sees the other: no lost wake-up. The
 *     wait has a timeout anyway (AU_WP_IDLE_WAIT_MS), so a wake-up lost to a bug costs latency, not a hang.
 *   - Worker -> shard: results are written to the job, then au_ext_post pushes it on the single-producer
 *     queue (core/xq.h: release store of tail; the shard pops with an acquire load): everything the
 *     worker wrote before posting is visible to the done callback. The msg_ring doorbell is only a
 *     wake-up and carries no ordering.
 *   - Detach fence (Dekker pair): a worker's post phase does fetch_add(post_epoch) (odd, seq_cst)
 *     BEFORE it loads the shard's state (seq_cst); the detacher stores DETACHED (seq_cst) BEFORE it loads
 *     post_epoch (seq_cst). So either the phase sees DETACHED, or the detacher sees the phase's odd
 *     epoch and waits for the closing fetch_add (even). The outstanding count is the shard's own
 *     (submitted and completed are written by the shard thread only; relaxed atomics so that stats may
 *     read them): step 2 needs no ordering beyond the queue's.
 *   - The cancel hint is an acquire load of the state (never needed for correctness).
 *   - Stop: `stopping` is stored seq_cst, then every worker's sleeping word is reset and woken; a worker
 *     exits only after a round took nothing, its queue is idle (no push half done) and it read
 *     `stopping`; pthread_join orders everything it did before au_wp_close frees the pool.
 *   - Submitting before au_wp_start (from one thread, before the shards submit) is ordered for the
 *     workers by pthread_create and for the shards by the queue's release/acquire chain.
 *
 * Threads: au_wp_submit / au_wp_shard_detach / au_wp_outstanding / au_wp_shard_attached on the shard's
 * thread; round callbacks and au_wp_pop / au_wp_complete / au_wp_job_canceled on the worker thread that
 * runs the round; au_wp_new / start / close on the main thread; au_wp_get_stats anywhere. */
#ifndef AU_WORKPOOL_H
#define AU_WORKPOOL_H

#include "core/loop.h"
#include "core/mpsc.h"

_Static_assert(AU_WP_WORKERS_MAX <= AU_MAX_EXT, "each worker takes one external producer id");

struct au_wp;
struct au_wp_worker;

struct au_wp_job {
    struct au_xmsg xm;            /* must stay first: the completion message (see loop.h) */
    struct mpsc_node qn;          /* the worker's queue */
    struct au_wp_job *cnext;      /* the round's per-shard completion list */
    void (*done)(struct au_shard *s, struct au_wp_job *j); /* see above: set by the caller before submit */
    struct au_wp *pool;           /* set by au_wp_submit */
    int32_t shard;                /* set by au_wp_submit */
};

struct au_wp_ops {
    /* Worker thread: one round. Take jobs with au_wp_pop, finish each with au_wp_complete (results
     * written to the job before), at most a bounded number per round (the completions are posted after
     * the round returns). Returns the number of jobs taken; 0 = none was queued (the worker may sleep). */
    unsigned (*round)(struct au_wp_worker *w);
    /* Optional, first thing on each worker thread (thread name, log context). */
    void (*thread_init)(struct au_wp_worker *w);
    /* Optional: the longest an idle worker sleeps before it runs a round again, in ms (re-read before
     * every sleep; the store's writer retries a reopen). NULL or 0 = AU_WP_IDLE_WAIT_MS. */
    unsigned (*idle_ms)(struct au_wp_worker *w);
};

struct au_wp_opts {
    const char *name;             /* for log lines ("store", "iopool", "authpool") */
    unsigned workers;             /* 1 .. AU_WP_WORKERS_MAX */
    const struct au_wp_ops *ops;
    void *ctx;                    /* the user's, for the callbacks: au_wp_ctx() */
};

/* Aborts on allocation failure like the rest of the setup. */
struct au_wp *au_wp_new(const struct au_wp_opts *o);
unsigned au_wp_threads(const struct au_wp *p);      /* external producer ids needed (= workers) */
void *au_wp_ctx(const struct au_wp *p);
/* Start the workers once the shards exist. Jobs submitted before are served now. */
void au_wp_start(struct au_wp *p, struct au_shard **shards, int nshards, int ext_base);
bool au_wp_started(const struct au_wp *p);
/* Stop: the workers finish every queued job, post its completion (retrying a full shard queue for at
 * most AU_WP_CLOSE_FLUSH_MS), exit and are joined; jobs still queued (the pool never started) get
 * done(NULL, job) here; then free. After au_loop_stop (every shard detached), or before any shard
 * could submit. NULL is a no-op. */
void au_wp_close(struct au_wp *p);

/* ---- shard side ---- */
/* Submit job j (j->done set) from shard `shard`'s thread to worker `worker` (0 .. workers - 1: the
 * caller's policy picks it). Never blocks, never allocates. */
void au_wp_submit(struct au_wp *p, unsigned worker, int shard, struct au_wp_job *j);
/* The detach fence (see above). From shard `shard`'s shard_fini hook. No-op when p is NULL or was never
 * started. */
void au_wp_shard_detach(struct au_wp *p, int shard);
/* Jobs of this shard submitted and not yet done (shard thread). */
uint64_t au_wp_outstanding(const struct au_wp *p, int shard);
/* False once au_wp_shard_detach began for this shard (shard thread): a policy may refuse new work. */
bool au_wp_shard_attached(const struct au_wp *p, int shard);

/* ---- worker side (inside ops->round) ---- */
struct au_wp_job *au_wp_pop(struct au_wp_worker *w);     /* NULL: nothing queued (or a push half done) */
void au_wp_complete(struct au_wp_worker *w, struct au_wp_job *j);
unsigned au_wp_worker_index(const struct au_wp_worker *w);
struct au_wp *au_wp_worker_pool(const struct au_wp_worker *w);
/* The job's shard began detaching: the result will be thrown away by the policy (a hint). */
bool au_wp_job_canceled(const struct au_wp_job *j);

struct au_wp_stats {
    uint64_t submitted, completed;  /* done calls on a shard */
    uint64_t canceled;              /* done(NULL, ...) calls (closed before start, submitted after detach) */
};
void au_wp_get_stats(const struct au_wp *p, struct au_wp_stats *out);

#endif
