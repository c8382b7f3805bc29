/* store.h - Aurora's storage engine: LevelDB behind store threads, group commit, asynchronous API.
 *
 * Shards (event-loop threads) never block on the store: they push requests onto lock-free MPSC
 * queues (one per store thread) and get their results back ON THE SUBMITTING SHARD through the
 * loop's external-producer queues (au_ext_*): the store threads are a core/workpool.h pool, with its
 * detach fence and memory-ordering story. One writer thread drains every queued write, applies
 * them as ONE leveldb_write(sync=true) (group commit), then completes them; `readers` reader threads
 * serve gets and scans so a long scan never delays a commit. docs/storage.md has the details.
 *
 * Lifecycle (main thread):
 *   store_open()                               -> creates dir, opens/creates the DB, checks the format
 *   au_loop_opts.n_ext >= ext_base + store_threads(&opts)
 *   au_loop_start(); store_start(st, shards, n, ext_base)
 *   ... serving ...
 *   au_loop_stop(): every shard's shard_fini hook calls store_shard_detach(st, s->id) FIRST
 *   store_close()                              -> finishes queued work, joins threads, closes the DB
 *
 * Threads: store_write/store_get/store_scan are called on shard `shard`'s thread (or on the main
 * thread before store_start, with the shard index whose thread will receive the completion).
 * Callbacks run on that shard's thread. Every submission gets exactly one callback (when one was
 * given), also at shutdown, as long as the order above is followed. */
#ifndef AU_STORE_H
#define AU_STORE_H

#include "core/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct au_shard;
struct store;
struct store_batch;

/* ---- limits (programmer-checked with AU_ASSERT; callers validate peer input before) ---- */
#define STORE_KEY_MAX            4096u           /* bytes in one key */
#define STORE_VALUE_MAX          (512u << 20)    /* bytes in one value (u32 framing) */
#define STORE_READERS_MAX        7u              /* reader threads (1 writer + readers <= AU_MAX_EXT) */
#define STORE_COMMIT_MAX_BYTES   (16u << 20)     /* bytes of puts merged into one group commit */
#define STORE_COMMIT_MAX_BATCHES 65536u          /* batches merged into one group commit */
#define STORE_READ_ROUND_MAX     256u            /* reads served by a thread before it posts completions */
#define STORE_SCAN_MAX           10000u          /* entries one asynchronous scan may return */
#define STORE_SCAN_MAX_BYTES     (4u << 20)      /* key+value bytes one asynchronous scan may return */
#define STORE_DEFAULT_CACHE      (64u << 20)     /* LevelDB block cache */
#define STORE_DEFAULT_WBUF       (32u << 20)     /* LevelDB write buffer (memtable) */
#define STORE_REOPEN_RETRY_MS    500u            /* after a failed write: at most one reopen attempt per interval */
#define STORE_REOPEN_LOG_EVERY   20u             /* log one failed reopen attempt in this many */
#define STORE_REOPEN_MIN_FREE    (1u << 20)      /* bytes free beyond the logs' size before a reopen is tried */
#define STORE_EXIT_CORRUPT       70              /* exit status when a reopen finds the DB corrupted (EX_SOFTWARE) */

/* Error codes passed to callbacks / returned (negative errno values). */
#define STORE_OK         0
#define STORE_ENOTFOUND  (-2)    /* -ENOENT: get of a missing key */
#define STORE_EIO        (-5)    /* -EIO: LevelDB reported an error (logged with its message) */

struct store_opts {
    const char *dir;         /* data directory; the DB lives in dir/db (both created) */
    size_t cache_bytes;      /* 0 = STORE_DEFAULT_CACHE */
    size_t write_buffer;     /* 0 = STORE_DEFAULT_WBUF */
    unsigned readers;        /* reader threads; 0 = reads are served by the writer thread */
    bool sync;               /* fsync every group commit (true in production; false = page cache only) */
};

/* Open (creating dir, dir/db and the format key when new). Refuses a DB whose format version is
 * newer than this build (or that has data but no format key). Returns 0 or -1 with a message. */
int store_open(struct store **out, const struct store_opts *o, char *err, size_t errlen);

/* Offline repair of dir/db (Aurora stopped; LevelDB's lock refuses a DB in use): LevelDB's RepairDB, which
 * keeps every intact record of the logs and tables and drops the damaged ones (listed in dir/db/LOG). For the
 * operator after store_open refused a damaged DB (aurora-ctl store repair). 0 or -1 with a message. */
int store_repair(const char *dir, char *err, size_t errlen);

/* External producer ids the store needs: 1 writer + readers. */
unsigned store_threads(const struct store_opts *o);

/* Start the store threads once shards exist. They use external producer ids ext_base ..
 * ext_base + store_threads() - 1. Work submitted before is kept and served now. */
void store_start(struct store *st, struct au_shard **shards, int nshards, int ext_base);

/* Call on shard `shard`'s thread from its shard_fini hook (the loop no longer runs): waits for the
 * shard's outstanding store work and runs those callbacks here, then the store never touches this
 * shard again. The shard must not submit afterwards. No-op when the store was never started. */
void store_shard_detach(struct store *st, int shard);

/* Finish all queued work (writes are applied and fsync'ed), join the threads, close the DB, free.
 * Completions for shards still attached are posted (they must be running or be detached); call
 * after au_loop_stop() whose shard_fini hooks detached every shard. */
void store_close(struct store *st);

/* ---- writes ---- */
/* done(shard, arg, err) runs on the submitting shard once the batch is durable (err = 0), or with a
 * negative error: the batch is not acknowledged (it is normally not applied, but after an fsync error its
 * bytes may still be found in the log at the next open; callers never rely on it being absent). After a
 * failed write nothing more is committed until the DB was closed and reopened on a fresh log. */
typedef void (*store_done_fn)(struct au_shard *s, void *arg, int err);

struct store_batch *store_batch_new(void);
void store_batch_put(struct store_batch *b, const void *k, size_t kl, const void *v, size_t vl);
void store_batch_del(struct store_batch *b, const void *k, size_t kl);
uint32_t store_batch_count(const struct store_batch *b);   /* operations in the batch */
size_t store_batch_bytes(const struct store_batch *b);     /* encoded size */
void store_batch_free(struct store_batch *b);              /* only for a batch never submitted */

/* Submit a batch (consumed: the store frees it). Applied atomically; batches from one shard are
 * applied and completed in submission order. done may be NULL (still durable, no callback). */
void store_write(struct store *st, int shard, struct store_batch *b, store_done_fn done, void *arg);

/* ---- reads (asynchronous, results on the submitting shard) ----
 * A read sees every write whose completion ran before the read was submitted; with readers > 0,
 * reads and writes in flight at the same time are not ordered with each other. */

/* err = 0 with the value, STORE_ENOTFOUND (v NULL), or STORE_EIO. The value is valid until cb returns. */
typedef void (*store_get_fn)(struct au_shard *s, void *arg, int err, const void *v, size_t vl);
void store_get(struct store *st, int shard, const void *k, size_t kl, store_get_fn cb, void *arg);

struct store_kv {
    const uint8_t *k, *v;
    uint32_t kl, vl;
};
/* n entries in key order (descending with STORE_SCAN_REVERSE); the array and the bytes are valid until
 * cb returns. more = the scan stopped at its limit (or STORE_SCAN_MAX / STORE_SCAN_MAX_BYTES) and
 * more keys may follow: continue from the last key (STORE_SCAN_AFTER forwards; as `end` in reverse). */
typedef void (*store_scan_fn)(struct au_shard *s, void *arg, int err, const struct store_kv *kv, uint32_t n,
                              bool more);

enum store_scan_flags {
    STORE_SCAN_AFTER   = 1u << 0,  /* start is exclusive (paging: pass the last key seen) */
    STORE_SCAN_REVERSE = 1u << 1,  /* from the end (exclusive) down to start (inclusive) */
};
/* Keys k with start <= k < end (end NULL/0 = no upper bound); at most `limit` entries (0 or more than
 * STORE_SCAN_MAX = STORE_SCAN_MAX). Reverse with no end starts from the last key. */
void store_scan(struct store *st, int shard, const void *start, size_t sl, const void *end, size_t el,
                uint32_t limit, unsigned flags, store_scan_fn cb, void *arg);

/* ---- synchronous versions: start-up and tools only, never on a serving event loop ---- */
/* 0 with *v malloc'd (free()), STORE_ENOTFOUND, or STORE_EIO. */
int store_get_sync(struct store *st, const void *k, size_t kl, void **v, size_t *vl);
/* Calls cb for each key in [start, end) (flags as store_scan) until it returns false.
 * Returns the number of entries visited, or STORE_EIO. */
typedef bool (*store_iter_fn)(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl);
long store_scan_sync(struct store *st, const void *start, size_t sl, const void *end, size_t el, unsigned flags,
                     store_iter_fn cb, void *arg);
/* Apply a batch durably (per opts.sync) and return 0 or STORE_EIO; consumes the batch. */
int store_write_sync(struct store *st, struct store_batch *b);

/* ---- stats for /metrics (any thread; relaxed snapshots) ---- */
struct store_stats {
    uint64_t commits;          /* leveldb_write calls by the writer thread */
    uint64_t batches;          /* store_write batches committed */
    uint64_t ops;              /* puts + deletes committed */
    uint64_t bytes;            /* encoded batch bytes committed */
    uint64_t write_errors;     /* batches failed */
    uint64_t gets, scans, scan_entries, read_errors;
    uint64_t commit_us_last;   /* latency of the last commit (leveldb_write incl. fsync), microseconds */
    uint64_t commit_us_max;
    uint64_t commit_us_total;  /* sum, for an average */
    uint64_t queue_wait_us_max; /* longest time a batch waited in the queue before its commit began */
    uint64_t reopens;          /* successful reopens after a failed write (each starts a fresh log) */
    uint64_t reopen_attempts;  /* reopen attempts, failed ones included */
};
void store_get_stats(const struct store *st, struct store_stats *out);
/* batches / commits (0 when no commit yet). */
double store_stats_avg_batch(const struct store_stats *s);

/* The first key after every key starting with prefix[0..len) ("prefix end" for scans): writes it to
 * out (len bytes) and returns its length, or 0 when there is none (prefix of 0xff bytes: no bound). */
size_t store_prefix_end(const void *prefix, size_t len, uint8_t *out);

#endif
