/* authpool.h - worker threads that hash and verify passwords off the event loops.
 *
 * A shard submits a request without blocking and gets the result back ON THE SUBMITTING SHARD: the
 * workers are a core/workpool.h pool (its queues, wake-ups, completion path and detach fence), so the
 * callback runs on the shard's thread like any cross-shard message. Each worker thread is one
 * external producer: the main program reserves authpool_threads() ids.
 *
 * Lifecycle (main thread), the same order as the store's:
 *   p = authpool_new(&opts)                 threads = opts.threads (default 2)
 *   au_loop_opts.n_ext >= ext_base + authpool_threads(p)
 *   au_loop_start(); authpool_start(p, shards, n, ext_base)
 *   ... serving: authpool_verify / authpool_hash on shard threads ...
 *   au_loop_stop(): every shard's shard_fini hook calls authpool_shard_detach(p, s->id)
 *   authpool_stop(p)                        joins the workers, frees
 * Every accepted submission gets exactly one callback, on the submitting shard's thread, also at
 * shutdown (detach runs the remaining ones; requests still queued then complete as CANCELED).
 *
 * Fair queueing: each shard keeps at most AU_AUTHPOOL_SHARD_INFLIGHT requests per worker thread at
 * the workers; the others wait on the shard in one queue per (app, kind), served round robin, so one
 * app's registrations or one burst of guesses cannot delay another app's logins by more than a round
 * (docs/auth.md "The auth worker pool").
 *
 * Tools without an event loop pass p == NULL: the work runs in the calling thread and the callback
 * is called (with s == NULL) before the submit function returns. */
#ifndef AU_IM_AUTHPOOL_H
#define AU_IM_AUTHPOOL_H

#include "core/common.h"
#include "core/limits.h"

#include <stddef.h>
#include <stdint.h>

struct au_shard;
struct authpool;

#define AUTHPOOL_DEFAULT_THREADS 2
#define AUTHPOOL_MAX_THREADS     4      /* leaves AU_MAX_EXT ids for the store */
#define AUTHPOOL_MAX_PENDING     1024   /* per shard: accepted, not yet called back; beyond -> -EAGAIN */
#define AUTHPOOL_FREE_KEEP       64     /* finished request blocks a shard keeps for reuse */

_Static_assert(AUTHPOOL_MAX_PENDING <= AU_XQ_DEPTH, "a worker's results for one shard always fit its queue");
_Static_assert((AU_AUTHPOOL_FLOWS & (AU_AUTHPOOL_FLOWS - 1)) == 0 && AU_AUTHPOOL_FLOWS <= 65536, "flow index");
_Static_assert(AU_AUTHPOOL_FLOW_MAX_PENDING <= AUTHPOOL_MAX_PENDING, "a flow's cap within the shard's");
_Static_assert(AUTHPOOL_MAX_THREADS <= AU_WP_WORKERS_MAX, "one pool (external producers)");

/* Verify result passed to authpool_verify_cb: 1 = matches, 0 = does not (or bad password length),
 * -1 = stored string malformed, AUTHPOOL_CANCELED = the shard detached before the work ran. */
#define AUTHPOOL_CANCELED (-2)

/* `s` is the submitting shard (NULL when p == NULL). hash: the new stored string, valid only during
 * the call, NULL on failure or cancel. */
typedef void (*authpool_verify_cb)(struct au_shard *s, void *arg, int ok);
typedef void (*authpool_hash_cb)(struct au_shard *s, void *arg, const char *hash);

struct authpool_opts {
    unsigned threads;     /* 0 = AUTHPOOL_DEFAULT_THREADS; at most AUTHPOOL_MAX_THREADS */
    uint32_t hash_iter;   /* iterations of new hashes; 0 = AUTH_PBKDF2_ITER (tests lower it) */
};

/* opts may be NULL (defaults). Aborts on allocation failure like the rest of the gateway's setup. */
struct authpool *authpool_new(const struct authpool_opts *opts);
/* External producer ids the pool needs (= its threads). */
unsigned authpool_threads(const struct authpool *p);
/* Start the workers; they use external producer ids ext_base .. ext_base + authpool_threads() - 1.
 * Requests submitted before are kept and served now. */
void authpool_start(struct authpool *p, struct au_shard **shards, int nshards, int ext_base);

/* Submit on shard `shard`'s thread, for app `app` (the fairness key with the kind: login check or new
 * hash). The password (and stored string) are copied; the copy is wiped once used. Returns 0 (cb will
 * be called), -EINVAL (password not 4..128 bytes, stored string longer than AUTH_HASH_STR_MAX - 1),
 * -EAGAIN (AUTHPOOL_MAX_PENDING requests of this shard, or AU_AUTHPOOL_FLOW_MAX_PENDING of this app and
 * kind, are in flight, or the shard detached: answer "server busy"). On error cb is not called. */
int authpool_verify(struct authpool *p, int shard, uint32_t app, const char *stored, size_t stored_len, const void *pw,
                    size_t len, authpool_verify_cb cb, void *arg);
int authpool_hash(struct authpool *p, int shard, uint32_t app, const void *pw, size_t len, authpool_hash_cb cb,
                  void *arg);
/* Requests of this shard in flight (shard thread). */
uint32_t authpool_pending(const struct authpool *p, int shard);

/* From shard `shard`'s shard_fini hook: requests of this shard still queued complete as canceled,
 * the ones being computed are waited for, and every remaining callback runs here, on this thread.
 * The shard must not submit afterwards. No-op when p is NULL or was never started. */
void authpool_shard_detach(struct authpool *p, int shard);
/* Join the workers and free (after au_loop_stop, every shard detached; or when nothing is in flight). */
void authpool_stop(struct authpool *p);

#endif
