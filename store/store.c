/* store.c - LevelDB behind store threads with group commit (see store.h, docs/storage.md).
 *
 * The store threads are one core/workpool.h pool (worker 0 = the writer, workers 1.. = readers):
 * requests are allocated by the submitting shard and submitted to the writer (writes) or to a reader
 * (reads, round robin per shard); the pool owns the queues, the sleep/wake protocol, posting the
 * completions back to the submitting shard (one message per shard per round, the callbacks run in
 * order there) and the detach fence. This file is the policy: the writer's round is the group commit
 * (and the reopen after a failed write), a reader's round serves gets and scans. No lock is ever
 * shared with a shard. */
#include "store/store.h"
#include "store/keyspace.h"
#include "core/workpool.h"
#include "core/log.h"
#include "core/loop.h"

#include <leveldb/c.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

_Static_assert(1 + STORE_READERS_MAX <= AU_WP_WORKERS_MAX, "store threads must fit one pool (external producers)");
_Static_assert(STORE_COMMIT_MAX_BYTES >= STORE_VALUE_MAX / 64, "a commit must hold reasonable values");

enum { REQ_WRITE = 1, REQ_GET, REQ_SCAN };
enum { OP_PUT = 1, OP_DEL = 2 };

struct store_batch {
    uint8_t *buf;
    size_t len, cap;
    uint32_t count;
};

struct store_req {
    struct au_wp_job job;        /* first: the pool's job (and completion message); job.shard = submitter */
    struct store_req *rnext;     /* a round's own lists (writes, reads) */
    void *arg;
    union {
        store_done_fn done;
        store_get_fn get;
        store_scan_fn scan;
    } cb;
    uint64_t t_submit;           /* us, for queue-wait stats */
    int32_t err;
    uint8_t kind;
    bool more;
    union {
        struct store_batch *batch;
        struct {
            char *v;             /* leveldb_get result (leveldb_free) */
            size_t vl;
            uint32_t kl;
        } g;
        struct {
            uint32_t sl, el, limit, flags;
            struct store_kv *kv; /* result: kv array followed by the bytes (one allocation) */
            uint32_t n;
        } s;
    } u;
    uint8_t data[];              /* get: key; scan: start then end */
};

struct store_shard {
    _Alignas(64) unsigned rr;          /* next reader (round robin); the shard's thread only */
};

struct store {
    /* NULL while the DB is closed after a failed write and could not be reopened yet. Only the writer
     * thread changes it (write-locking dblock); readers use it under the read lock. */
    leveldb_t *db;
    pthread_rwlock_t dblock;
    char *path;                         /* dir/db, for reopening */
    atomic_bool need_reopen;            /* a write failed: commit nothing more before a reopen */
    uint64_t reopen_next_ms;            /* writer: earliest next reopen attempt */
    leveldb_options_t *opt;
    leveldb_cache_t *cache;
    leveldb_filterpolicy_t *filter;
    leveldb_readoptions_t *ro;
    leveldb_writeoptions_t *wo;
    struct store_opts o;
    unsigned nthreads;                  /* pool workers: the writer (0), then the readers */
    struct au_wp *wp;
    leveldb_writebatch_t *wb;           /* writer: the group commit */
    struct store_shard *sh;             /* [AU_MAX_SHARDS] */
    uint64_t reopen_failures;           /* writer: failed reopen attempts since the last success */
    struct store_stats stats;           /* written with relaxed atomics */
};

#define ST_ADD(st, f, n) __atomic_fetch_add(&(st)->stats.f, (uint64_t)(n), __ATOMIC_RELAXED)
#define ST_SET(st, f, n) __atomic_store_n(&(st)->stats.f, (uint64_t)(n), __ATOMIC_RELAXED)
#define ST_GET(st, f) __atomic_load_n(&(st)->stats.f, __ATOMIC_RELAXED)

/* ------------------------------------------------------------------ batches */

struct store_batch *store_batch_new(void)
{
    struct store_batch *b = calloc(1, sizeof *b);
    AU_ASSERT(b != NULL);
    return b;
}

static uint8_t *batch_room(struct store_batch *b, size_t n)
{
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n) cap *= 2;
        b->buf = realloc(b->buf, cap);
        AU_ASSERT(b->buf != NULL);
        b->cap = cap;
    }
    uint8_t *p = b->buf + b->len;
    b->len += n;
    return p;
}

void store_batch_put(struct store_batch *b, const void *k, size_t kl, const void *v, size_t vl)
{
    AU_ASSERT(kl > 0 && kl <= STORE_KEY_MAX && vl <= STORE_VALUE_MAX);
    uint32_t k32 = (uint32_t)kl, v32 = (uint32_t)vl;
    uint8_t *p = batch_room(b, 9 + kl + vl);
    p[0] = OP_PUT;
    memcpy(p + 1, &k32, 4);
    memcpy(p + 5, &v32, 4);
    memcpy(p + 9, k, kl);
    if (vl) memcpy(p + 9 + kl, v, vl);
    b->count++;
}

void store_batch_del(struct store_batch *b, const void *k, size_t kl)
{
    AU_ASSERT(kl > 0 && kl <= STORE_KEY_MAX);
    uint32_t k32 = (uint32_t)kl;
    uint8_t *p = batch_room(b, 5 + kl);
    p[0] = OP_DEL;
    memcpy(p + 1, &k32, 4);
    memcpy(p + 5, k, kl);
    b->count++;
}

uint32_t store_batch_count(const struct store_batch *b) { return b->count; }
size_t store_batch_bytes(const struct store_batch *b) { return b->len; }

void store_batch_free(struct store_batch *b)
{
    if (!b) return;
    free(b->buf);
    free(b);
}

/* Append the batch's operations to a LevelDB write batch (our own encoding: trusted). */
static void batch_apply(const struct store_batch *b, leveldb_writebatch_t *wb)
{
    size_t off = 0;
    while (off < b->len) {
        uint8_t op = b->buf[off];
        uint32_t kl, vl = 0;
        memcpy(&kl, b->buf + off + 1, 4);
        if (op == OP_PUT) {
            memcpy(&vl, b->buf + off + 5, 4);
            const char *k = (const char *)b->buf + off + 9;
            leveldb_writebatch_put(wb, k, kl, k + kl, vl);
            off += 9 + (size_t)kl + vl;
        } else {
            AU_ASSERT(op == OP_DEL);
            leveldb_writebatch_delete(wb, (const char *)b->buf + off + 5, kl);
            off += 5 + (size_t)kl;
        }
    }
    AU_ASSERT(off == b->len);
}

/* ------------------------------------------------------------------ scans */

static int key_cmp(const void *a, size_t al, const void *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c) return c;
    return al < bl ? -1 : al > bl ? 1 : 0;
}

/* visit returns 1 = continue, 0 = stop (entry taken), -1 = stop before this entry (more = true). */
typedef int (*visit_fn)(void *arg, const char *k, size_t kl, const char *v, size_t vl);

/* Iterate [start, end) (see store_scan flags). Returns entries taken or -1 on a LevelDB error;
 * *more = an in-range entry exists past the last one taken (only known when the visitor stopped). */
static long scan_iter(struct store *st, const uint8_t *start, size_t sl, const uint8_t *end, size_t el, unsigned flags,
                      visit_fn visit, void *arg, bool *more)
{
    *more = false;
    if (!st->db) return -1; /* closed after a failed write, not reopened yet (logged by the writer) */
    leveldb_iterator_t *it = leveldb_create_iterator(st->db, st->ro);
    bool rev = flags & STORE_SCAN_REVERSE, after = flags & STORE_SCAN_AFTER;
    if (!rev) {
        if (sl) leveldb_iter_seek(it, (const char *)start, sl);
        else leveldb_iter_seek_to_first(it);
    } else if (el) {
        leveldb_iter_seek(it, (const char *)end, el);
        if (leveldb_iter_valid(it)) leveldb_iter_prev(it);
        else leveldb_iter_seek_to_last(it);
    } else {
        leveldb_iter_seek_to_last(it);
    }
    long n = 0;
    while (leveldb_iter_valid(it)) {
        size_t kl, vl;
        const char *k = leveldb_iter_key(it, &kl);
        if (!rev) {
            if (el && key_cmp(k, kl, end, el) >= 0) break;
            if (after && key_cmp(k, kl, start, sl) == 0) {
                leveldb_iter_next(it);
                continue;
            }
        } else {
            int c = key_cmp(k, kl, start, sl);
            if (c < 0 || (after && c == 0)) break;
        }
        const char *v = leveldb_iter_value(it, &vl);
        int r = visit(arg, k, kl, v, vl);
        if (r < 0) {
            *more = true;
            break;
        }
        n++;
        if (rev) leveldb_iter_prev(it);
        else leveldb_iter_next(it);
        if (r == 0) {
            /* is there another in-range key? */
            if (leveldb_iter_valid(it)) {
                k = leveldb_iter_key(it, &kl);
                if (!rev) *more = !el || key_cmp(k, kl, end, el) < 0;
                else {
                    int c = key_cmp(k, kl, start, sl);
                    *more = c > 0 || (c == 0 && !after);
                }
            }
            break;
        }
    }
    char *err = NULL;
    leveldb_iter_get_error(it, &err);
    leveldb_iter_destroy(it);
    if (err) {
        au_error("store scan: %s", err);
        leveldb_free(err);
        return -1;
    }
    return n;
}

/* Collects a scan result into one growing allocation: kv[cap] then bytes. */
struct collect {
    uint32_t limit, n, cap;
    size_t bytes, bytes_cap;
    struct store_kv *kv;   /* kl/vl set, k/v hold offsets until finish */
    uint8_t *data;
};

static int collect_visit(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    struct collect *c = arg;
    if (c->n >= c->limit) return -1;
    if (c->n > 0 && c->bytes + kl + vl > STORE_SCAN_MAX_BYTES) return -1;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        if (c->cap > c->limit) c->cap = c->limit;
        c->kv = realloc(c->kv, (size_t)c->cap * sizeof *c->kv);
        AU_ASSERT(c->kv != NULL);
    }
    if (c->bytes_cap - c->bytes < kl + vl) {
        size_t cap = c->bytes_cap ? c->bytes_cap : 1024;
        while (cap - c->bytes < kl + vl) cap *= 2;
        c->data = realloc(c->data, cap);
        AU_ASSERT(c->data != NULL);
        c->bytes_cap = cap;
    }
    struct store_kv *e = &c->kv[c->n++];
    e->k = (const uint8_t *)(uintptr_t)c->bytes;
    e->kl = (uint32_t)kl;
    memcpy(c->data + c->bytes, k, kl);
    c->bytes += kl;
    e->v = (const uint8_t *)(uintptr_t)c->bytes;
    e->vl = (uint32_t)vl;
    if (vl) memcpy(c->data + c->bytes, v, vl);
    c->bytes += vl;
    return c->n >= c->limit ? 0 : 1;
}

/* One allocation: kv[n] followed by the bytes; pointers fixed up. */
static struct store_kv *collect_finish(struct collect *c)
{
    size_t head = (size_t)c->n * sizeof(struct store_kv);
    struct store_kv *out = malloc(head + c->bytes + 1);
    AU_ASSERT(out != NULL);
    uint8_t *bytes = (uint8_t *)out + head;
    if (c->bytes) memcpy(bytes, c->data, c->bytes);
    for (uint32_t i = 0; i < c->n; i++) {
        out[i] = c->kv[i];
        out[i].k = bytes + (uintptr_t)c->kv[i].k;
        out[i].v = bytes + (uintptr_t)c->kv[i].v;
    }
    free(c->kv);
    free(c->data);
    return out;
}

/* ------------------------------------------------------------------ serving */

static void serve_get(struct store *st, struct store_req *r)
{
    char *err = NULL;
    size_t vl = 0;
    if (!st->db) { /* closed after a failed write, not reopened yet (logged by the writer) */
        ST_ADD(st, gets, 1);
        ST_ADD(st, read_errors, 1);
        r->err = STORE_EIO;
        r->u.g.v = NULL;
        r->u.g.vl = 0;
        return;
    }
    char *v = leveldb_get(st->db, st->ro, (const char *)r->data, r->u.g.kl, &vl, &err);
    ST_ADD(st, gets, 1);
    if (err) {
        au_error("store get: %s", err);
        leveldb_free(err);
        ST_ADD(st, read_errors, 1);
        r->err = STORE_EIO;
        if (v) leveldb_free(v);
        v = NULL;
    } else {
        r->err = v ? STORE_OK : STORE_ENOTFOUND;
    }
    r->u.g.v = v;
    r->u.g.vl = vl;
}

static void serve_scan(struct store *st, struct store_req *r)
{
    struct collect c = { .limit = r->u.s.limit };
    bool more = false;
    long n = scan_iter(st, r->data, r->u.s.sl, r->data + r->u.s.sl, r->u.s.el, r->u.s.flags, collect_visit, &c,
                       &more);
    ST_ADD(st, scans, 1);
    if (n < 0) {
        ST_ADD(st, read_errors, 1);
        free(c.kv);
        free(c.data);
        r->err = STORE_EIO;
        r->u.s.kv = NULL;
        r->u.s.n = 0;
        return;
    }
    ST_ADD(st, scan_entries, c.n);
    r->err = STORE_OK;
    r->more = more;
    r->u.s.n = c.n;
    r->u.s.kv = collect_finish(&c);
}

static void req_release(struct store_req *r)
{
    if (r->kind == REQ_WRITE) store_batch_free(r->u.batch);
    else if (r->kind == REQ_GET) {
        if (r->u.g.v) leveldb_free(r->u.g.v);
    } else {
        free(r->u.s.kv);
    }
    free(r);
}

/* The pool's done call for every request: on the submitting shard (s != NULL), in completion order;
 * with s == NULL when it can no longer complete there (the store closed before it started: a write
 * never served is applied now, since it was accepted; or submitted after its shard detached: served,
 * its callback dropped). */
static void req_done(struct au_shard *s, struct au_wp_job *j)
{
    struct store_req *r = (struct store_req *)(void *)j;
    if (!s) {
        if (r->kind == REQ_WRITE && r->u.batch) {
            (void)store_write_sync(au_wp_ctx(j->pool), r->u.batch);
            r->u.batch = NULL;
        }
        req_release(r);
        return;
    }
    switch (r->kind) {
    case REQ_WRITE:
        if (r->cb.done) r->cb.done(s, r->arg, r->err);
        break;
    case REQ_GET:
        r->cb.get(s, r->arg, r->err, r->u.g.v, r->u.g.v ? r->u.g.vl : 0);
        break;
    default:
        r->cb.scan(s, r->arg, r->err, r->u.s.kv, r->u.s.n, r->more);
        break;
    }
    req_release(r);
}

static struct store_req *pop_req(struct au_wp_worker *w)
{
    struct au_wp_job *j = au_wp_pop(w);
    return j ? (struct store_req *)(void *)j : NULL;
}

/* Reads hold dblock's read side: the writer swaps st->db (reopen after a failed write) under its write side. */
static void serve_read(struct store *st, struct store_req *r)
{
    pthread_rwlock_rdlock(&st->dblock);
    if (r->kind == REQ_GET) serve_get(st, r);
    else serve_scan(st, r);
    pthread_rwlock_unlock(&st->dblock);
}

/* Opens the DB at st->path with st->opt (paranoid checks on). NULL with *err (leveldb_free) on failure. */
static leveldb_t *db_open(struct store *st, char **err)
{
    *err = NULL;
    leveldb_t *db = leveldb_open(st->opt, st->path, err);
    if (*err) {
        if (db) leveldb_close(db);
        return NULL;
    }
    return db;
}

/* Is there room to reopen: free bytes on the DB's filesystem at least the size of its logs (which the open
 * turns into a table) plus STORE_REOPEN_MIN_FREE? True when it cannot be told (the attempt decides). */
static bool reopen_room(struct store *st, uint64_t *free_bytes, uint64_t *needed)
{
    struct statvfs vs;
    *free_bytes = *needed = 0;
    if (statvfs(st->path, &vs) != 0) return true;
    uint64_t logs = 0;
    DIR *d = opendir(st->path);
    if (!d) return true;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        struct stat sb;
        if (n < 5 || strcmp(e->d_name + n - 4, ".log") != 0 || fstatat(dirfd(d), e->d_name, &sb, 0) != 0) continue;
        logs += (uint64_t)sb.st_size;
    }
    closedir(d);
    *free_bytes = (uint64_t)vs.f_bavail * vs.f_frsize;
    *needed = logs + STORE_REOPEN_MIN_FREE;
    return *free_bytes >= *needed;
}

/* Writer thread only. A failed leveldb_write may leave a torn record at the end of LevelDB's log (a short
 * write on a full disk), and LevelDB's log writer would append the next records after it at offsets its
 * reader cannot follow: the next open would drop every later record, acknowledged or not ("checksum
 * mismatch ... dropping N bytes"). So after a failed write the handle commits nothing more: it is closed and
 * the DB opened again, which replays the log up to the tear (a torn tail reads as a clean end of log), writes
 * what it held to a table and starts a FRESH log; commits resume on that one. While the reopen fails (the disk
 * is still full) every write fails with STORE_EIO, and the attempt is repeated at most every
 * STORE_REOPEN_RETRY_MS. A reopen that finds the DB corrupted stops the process (nothing could be committed
 * or read safely). Returns true when writes may be committed. */
static bool writer_reopen(struct store *st)
{
    if (!atomic_load_explicit(&st->need_reopen, memory_order_seq_cst)) return true;
    uint64_t now = au_now_ms();
    if (now < st->reopen_next_ms) return false;
    st->reopen_next_ms = now + STORE_REOPEN_RETRY_MS;
    /* The damaged handle still serves reads (what it holds is committed): keep it until the reopen, which
     * writes the log's content to a table, has the room to succeed. */
    uint64_t free_bytes, needed;
    if (st->db && !reopen_room(st, &free_bytes, &needed)) {
        if (st->reopen_failures++ % STORE_REOPEN_LOG_EVERY == 0)
            au_error("store: %s: %" PRIu64 " bytes free, %" PRIu64 " needed to reopen after the failed write; every "
                     "write fails until there is room (checked every %u ms while writes come)", st->path, free_bytes,
                     needed, STORE_REOPEN_RETRY_MS);
        return false;
    }
    pthread_rwlock_wrlock(&st->dblock);
    if (st->db) {
        leveldb_close(st->db);
        st->db = NULL;
    }
    char *err = NULL;
    st->db = db_open(st, &err);
    pthread_rwlock_unlock(&st->dblock);
    ST_ADD(st, reopen_attempts, 1);
    if (!err) {
        atomic_store_explicit(&st->need_reopen, false, memory_order_seq_cst);
        ST_ADD(st, reopens, 1);
        au_warn("store: %s reopened after a failed write (%" PRIu64 " attempt(s)): commits resume on a fresh log",
                st->path, st->reopen_failures + 1);
        st->reopen_failures = 0;
        return true;
    }
    if (strncmp(err, "Corruption", 10) == 0) {
        au_error("store: FATAL: %s cannot be reopened after a failed write: %s. Stopping the process: nothing more "
                 "can be committed or read safely (docs/storage.md, \"Write failures\")", st->path, err);
        _exit(STORE_EXIT_CORRUPT);
    }
    if (st->reopen_failures++ % STORE_REOPEN_LOG_EVERY == 0)
        au_error("store: %s cannot be reopened after a failed write: %s; every write fails until it can (retrying "
                 "every %u ms)", st->path, err, STORE_REOPEN_RETRY_MS);
    leveldb_free(err);
    return false;
}

/* Writer: drain queued writes into one LevelDB batch, commit once, complete them all. Reads that
 * reach the writer (readers == 0) are served after the commit. Returns requests handled. */
static unsigned writer_round(struct au_wp_worker *w, struct store *st)
{
    struct store_req *wh = NULL, **wt = &wh, *rh = NULL, **rt = &rh;
    unsigned nb = 0, nr = 0;
    uint32_t ops = 0;
    size_t bytes = 0;
    uint64_t oldest = UINT64_MAX;
    leveldb_writebatch_clear(st->wb);
    if (!st->db) (void)writer_reopen(st); /* closed and not reopened yet: retry, so that reads come back too */
    while (nb < STORE_COMMIT_MAX_BATCHES && bytes < STORE_COMMIT_MAX_BYTES && nr < STORE_READ_ROUND_MAX) {
        struct store_req *r = pop_req(w);
        if (!r) break;
        if (r->kind == REQ_WRITE) {
            batch_apply(r->u.batch, st->wb);
            bytes += r->u.batch->len;
            ops += r->u.batch->count;
            if (r->t_submit < oldest) oldest = r->t_submit;
            nb++;
            *wt = r;
            wt = &r->rnext;
        } else {
            nr++;
            *rt = r;
            rt = &r->rnext;
        }
    }
    if (nb) {
        uint64_t t0 = au_now_us();
        int res = STORE_OK;
        if (!writer_reopen(st)) {
            /* The damaged log is closed and the DB could not be reopened yet: refuse without touching it. */
            res = STORE_EIO;
            ST_ADD(st, write_errors, nb);
        } else {
            char *err = NULL;
            leveldb_write(st->db, st->wo, st->wb, &err);
            if (err) {
                au_error("store commit of %u batches failed: %s; nothing more is committed on this log: the database "
                         "is reopened first", nb, err);
                leveldb_free(err);
                res = STORE_EIO;
                ST_ADD(st, write_errors, nb);
                atomic_store_explicit(&st->need_reopen, true, memory_order_seq_cst);
                st->reopen_next_ms = 0; /* at the next round with writes */
            } else {
                ST_SET(st, commits, ST_GET(st, commits) + 1);
                ST_SET(st, batches, ST_GET(st, batches) + nb);
                ST_SET(st, ops, ST_GET(st, ops) + ops);
                ST_SET(st, bytes, ST_GET(st, bytes) + bytes);
            }
        }
        uint64_t dt = au_now_us() - t0;
        ST_SET(st, commit_us_last, dt);
        ST_SET(st, commit_us_total, ST_GET(st, commit_us_total) + dt);
        if (dt > ST_GET(st, commit_us_max)) ST_SET(st, commit_us_max, dt);
        if (t0 > oldest && t0 - oldest > ST_GET(st, queue_wait_us_max)) ST_SET(st, queue_wait_us_max, t0 - oldest);
        while (wh) {
            struct store_req *r = wh;
            wh = r->rnext;
            r->err = res;
            store_batch_free(r->u.batch);
            r->u.batch = NULL;
            au_wp_complete(w, &r->job);
        }
    }
    while (rh) {
        struct store_req *r = rh;
        rh = r->rnext;
        serve_read(st, r);
        au_wp_complete(w, &r->job);
    }
    return nb + nr;
}

static unsigned reader_round(struct au_wp_worker *w, struct store *st)
{
    unsigned n = 0;
    uint64_t t0 = 0;
    while (n < STORE_READ_ROUND_MAX) {
        struct store_req *r = pop_req(w);
        if (!r) break;
        if (!n) t0 = au_now_us();
        serve_read(st, r);
        au_wp_complete(w, &r->job);
        n++;
        if (r->kind == REQ_SCAN && au_now_us() - t0 > 1000) break; /* do not hold finished gets behind scans */
    }
    return n;
}

static unsigned store_round(struct au_wp_worker *w)
{
    struct store *st = au_wp_ctx(au_wp_worker_pool(w));
    return au_wp_worker_index(w) == 0 ? writer_round(w, st) : reader_round(w, st);
}

static void store_thread_init(struct au_wp_worker *w)
{
    char name[16];
    unsigned idx = au_wp_worker_index(w);
    if (idx) snprintf(name, sizeof name, "au-store-r%u", (idx - 1) & 0xffu);
    else snprintf(name, sizeof name, "au-store-w");
    pthread_setname_np(pthread_self(), name);
}

/* The writer retries a reopen every STORE_REOPEN_RETRY_MS while the DB is closed (reads come back). */
static unsigned store_idle_ms(struct au_wp_worker *w)
{
    struct store *st = au_wp_ctx(au_wp_worker_pool(w));
    return au_wp_worker_index(w) == 0 && !st->db ? STORE_REOPEN_RETRY_MS : 0;
}

static const struct au_wp_ops store_ops = {
    .round = store_round, .thread_init = store_thread_init, .idle_ms = store_idle_ms,
};

/* ------------------------------------------------------------------ submit */

static void submit(struct store *st, unsigned worker, int shard, struct store_req *r)
{
    r->t_submit = au_now_us();
    r->job.done = req_done;
    au_wp_submit(st->wp, worker, shard, &r->job);
}

static unsigned reader_for(struct store *st, int shard)
{
    AU_ASSERT(shard >= 0 && shard < AU_MAX_SHARDS);
    if (st->nthreads == 1) return 0;
    struct store_shard *ss = &st->sh[shard];
    return 1 + ss->rr++ % (st->nthreads - 1);
}

void store_write(struct store *st, int shard, struct store_batch *b, store_done_fn done, void *arg)
{
    AU_ASSERT(b != NULL);
    struct store_req *r = calloc(1, sizeof *r);
    AU_ASSERT(r != NULL);
    r->kind = REQ_WRITE;
    r->cb.done = done;
    r->arg = arg;
    r->u.batch = b;
    submit(st, 0, shard, r);
}

void store_get(struct store *st, int shard, const void *k, size_t kl, store_get_fn cb, void *arg)
{
    AU_ASSERT(cb != NULL && kl > 0 && kl <= STORE_KEY_MAX);
    struct store_req *r = calloc(1, sizeof *r + kl);
    AU_ASSERT(r != NULL);
    r->kind = REQ_GET;
    r->cb.get = cb;
    r->arg = arg;
    r->u.g.kl = (uint32_t)kl;
    memcpy(r->data, k, kl);
    submit(st, reader_for(st, shard), shard, r);
}

void store_scan(struct store *st, int shard, const void *start, size_t sl, const void *end, size_t el,
                uint32_t limit, unsigned flags, store_scan_fn cb, void *arg)
{
    AU_ASSERT(cb != NULL && sl <= STORE_KEY_MAX && el <= STORE_KEY_MAX);
    if (!end) el = 0;
    if (!start) sl = 0;
    struct store_req *r = calloc(1, sizeof *r + sl + el);
    AU_ASSERT(r != NULL);
    r->kind = REQ_SCAN;
    r->cb.scan = cb;
    r->arg = arg;
    r->u.s.sl = (uint32_t)sl;
    r->u.s.el = (uint32_t)el;
    r->u.s.limit = limit == 0 || limit > STORE_SCAN_MAX ? STORE_SCAN_MAX : limit;
    r->u.s.flags = flags;
    if (sl) memcpy(r->data, start, sl);
    if (el) memcpy(r->data + sl, end, el);
    submit(st, reader_for(st, shard), shard, r);
}

/* ------------------------------------------------------------------ sync API */

int store_get_sync(struct store *st, const void *k, size_t kl, void **v, size_t *vl)
{
    char *err = NULL;
    size_t n = 0;
    *v = NULL;
    *vl = 0;
    pthread_rwlock_rdlock(&st->dblock);
    char *p = st->db ? leveldb_get(st->db, st->ro, k, kl, &n, &err) : NULL;
    bool down = !st->db;
    pthread_rwlock_unlock(&st->dblock);
    if (down) return STORE_EIO;
    if (err) {
        au_error("store get: %s", err);
        leveldb_free(err);
        if (p) leveldb_free(p);
        return STORE_EIO;
    }
    if (!p) return STORE_ENOTFOUND;
    void *out = malloc(n ? n : 1);
    AU_ASSERT(out != NULL);
    memcpy(out, p, n);
    leveldb_free(p);
    *v = out;
    *vl = n;
    return STORE_OK;
}

struct sync_visit {
    store_iter_fn cb;
    void *arg;
};

static int sync_visit(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    struct sync_visit *s = arg;
    return s->cb(s->arg, (const uint8_t *)k, kl, (const uint8_t *)v, vl) ? 1 : 0;
}

long store_scan_sync(struct store *st, const void *start, size_t sl, const void *end, size_t el, unsigned flags,
                     store_iter_fn cb, void *arg)
{
    struct sync_visit s = { cb, arg };
    bool more;
    pthread_rwlock_rdlock(&st->dblock);
    long n = scan_iter(st, start, start ? sl : 0, end, end ? el : 0, flags, sync_visit, &s, &more);
    pthread_rwlock_unlock(&st->dblock);
    return n < 0 ? STORE_EIO : n;
}

int store_write_sync(struct store *st, struct store_batch *b)
{
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    batch_apply(b, wb);
    char *err = NULL;
    pthread_rwlock_rdlock(&st->dblock);
    /* never on a log a failed write may have torn (the writer thread reopens it first) */
    bool down = !st->db || atomic_load_explicit(&st->need_reopen, memory_order_seq_cst);
    if (!down) leveldb_write(st->db, st->wo, wb, &err);
    if (err) atomic_store_explicit(&st->need_reopen, true, memory_order_seq_cst);
    pthread_rwlock_unlock(&st->dblock);
    leveldb_writebatch_destroy(wb);
    store_batch_free(b);
    if (down) {
        au_error("store write refused: the database is being reopened after a failed write");
        return STORE_EIO;
    }
    if (err) {
        au_error("store write: %s; nothing more is committed before the database is reopened", err);
        leveldb_free(err);
        return STORE_EIO;
    }
    return STORE_OK;
}

/* ------------------------------------------------------------------ open / start / close */

unsigned store_threads(const struct store_opts *o) { return 1 + (o->readers > STORE_READERS_MAX ? STORE_READERS_MAX : o->readers); }

static int mkdir_p(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) return -ENAMETOOLONG;
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0') continue;
        char c = tmp[i];
        tmp[i] = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST) return -errno;
        tmp[i] = c;
    }
    return 0;
}

/* Check (or write, for a new DB) the format version. */
static int check_format(struct store *st, char *errbuf, size_t errlen)
{
    uint8_t key[KS_KEY_MAX];
    size_t kl = ks_meta(key, KS_META_FORMAT);
    void *v;
    size_t vl;
    int r = store_get_sync(st, key, kl, &v, &vl);
    if (r == STORE_EIO) {
        snprintf(errbuf, errlen, "cannot read the format version");
        return -1;
    }
    if (r == STORE_ENOTFOUND) {
        leveldb_iterator_t *it = leveldb_create_iterator(st->db, st->ro); /* at open: no other thread yet */
        leveldb_iter_seek_to_first(it);
        bool empty = !leveldb_iter_valid(it);
        leveldb_iter_destroy(it);
        if (!empty) {
            snprintf(errbuf, errlen, "database has data but no format version key: not an Aurora store");
            return -1;
        }
        struct store_batch *b = store_batch_new();
        uint8_t ver[4], created[8];
        au_wr32(ver, STORE_FORMAT_VERSION);
        uint64_t now = au_wall_ms();
        au_wr32(created, (uint32_t)(now >> 32));
        au_wr32(created + 4, (uint32_t)now);
        store_batch_put(b, key, kl, ver, 4);
        kl = ks_meta(key, KS_META_CREATED);
        store_batch_put(b, key, kl, created, 8);
        if (store_write_sync(st, b) != STORE_OK) {
            snprintf(errbuf, errlen, "cannot write the format version");
            return -1;
        }
        au_info("store: new database, format version %u", STORE_FORMAT_VERSION);
        return 0;
    }
    uint32_t ver = vl == 4 ? au_rd32(v) : 0;
    free(v);
    if (ver == 0) {
        snprintf(errbuf, errlen, "damaged format version key");
        return -1;
    }
    if (ver > STORE_FORMAT_VERSION) {
        snprintf(errbuf, errlen, "database format version %u is newer than this build's %u: upgrade Aurora", ver,
                 STORE_FORMAT_VERSION);
        return -1;
    }
    if (ver < STORE_FORMAT_VERSION) {
        snprintf(errbuf, errlen, "database format version %u is older than %u and no migration exists", ver,
                 STORE_FORMAT_VERSION);
        return -1;
    }
    return 0;
}

static void store_free(struct store *st)
{
    if (st->db) leveldb_close(st->db);
    pthread_rwlock_destroy(&st->dblock);
    free(st->path);
    if (st->opt) leveldb_options_destroy(st->opt);
    if (st->cache) leveldb_cache_destroy(st->cache);
    if (st->filter) leveldb_filterpolicy_destroy(st->filter);
    if (st->ro) leveldb_readoptions_destroy(st->ro);
    if (st->wo) leveldb_writeoptions_destroy(st->wo);
    if (st->wb) leveldb_writebatch_destroy(st->wb);
    free(st->sh);
    free(st);
}

int store_open(struct store **out, const struct store_opts *o, char *errbuf, size_t errlen)
{
    *out = NULL;
    if (!o->dir || !*o->dir) {
        snprintf(errbuf, errlen, "no data directory");
        return -1;
    }
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/db", o->dir);
    if (n < 0 || (size_t)n >= sizeof path) {
        snprintf(errbuf, errlen, "data directory path too long");
        return -1;
    }
    int r = mkdir_p(path);
    if (r < 0) {
        snprintf(errbuf, errlen, "cannot create %s: %s", path, strerror(-r));
        return -1;
    }
    struct store *st = calloc(1, sizeof *st);
    AU_ASSERT(st != NULL);
    st->o = *o;
    st->o.dir = NULL; /* not kept */
    st->path = strdup(path);
    AU_ASSERT(st->path != NULL);
    pthread_rwlockattr_t ra; /* a reopen must not wait behind a stream of reads */
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&st->dblock, &ra);
    pthread_rwlockattr_destroy(&ra);
    atomic_init(&st->need_reopen, false);
    st->nthreads = store_threads(o);
    st->sh = aligned_alloc(64, sizeof *st->sh * AU_MAX_SHARDS);
    AU_ASSERT(st->sh);
    memset(st->sh, 0, sizeof *st->sh * AU_MAX_SHARDS);
    st->wb = leveldb_writebatch_create();

    st->opt = leveldb_options_create();
    st->cache = leveldb_cache_create_lru(o->cache_bytes ? o->cache_bytes : STORE_DEFAULT_CACHE);
    st->filter = leveldb_filterpolicy_create_bloom(10);
    leveldb_options_set_create_if_missing(st->opt, 1);
    leveldb_options_set_cache(st->opt, st->cache);
    leveldb_options_set_filter_policy(st->opt, st->filter);
    leveldb_options_set_write_buffer_size(st->opt, o->write_buffer ? o->write_buffer : STORE_DEFAULT_WBUF);
    leveldb_options_set_max_open_files(st->opt, 1000);
    leveldb_options_set_compression(st->opt, leveldb_snappy_compression);
    /* A damaged log or table found at open is an error, never silently dropped (docs/storage.md). */
    leveldb_options_set_paranoid_checks(st->opt, 1);
    st->ro = leveldb_readoptions_create();
    st->wo = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(st->wo, o->sync);

    char *err = NULL;
    st->db = db_open(st, &err);
    if (err) {
        if (strncmp(err, "Corruption", 10) == 0)
            snprintf(errbuf, errlen,
                     "%s is damaged: %s. Aurora refuses to start rather than silently drop what follows the damage. "
                     "Stop here, copy %s aside, then restore a backup, or run `aurora-ctl --data %s store repair` "
                     "(keeps every intact record, drops the damaged ones; see docs/storage.md, \"Write failures\")",
                     path, err, path, o->dir);
        else
            snprintf(errbuf, errlen, "leveldb open %s: %s", path, err);
        leveldb_free(err);
        store_free(st);
        return -1;
    }
    if (check_format(st, errbuf, errlen) < 0) {
        store_free(st);
        return -1;
    }
    struct au_wp_opts wo = { .name = "store", .workers = st->nthreads, .ops = &store_ops, .ctx = st };
    st->wp = au_wp_new(&wo);
    *out = st;
    return 0;
}

int store_repair(const char *dir, char *errbuf, size_t errlen)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/db", dir ? dir : "");
    if (!dir || !*dir || n < 0 || (size_t)n >= sizeof path) {
        snprintf(errbuf, errlen, "bad data directory");
        return -1;
    }
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(errbuf, errlen, "%s: no database there", path);
        return -1;
    }
    leveldb_options_t *opt = leveldb_options_create();
    leveldb_options_set_compression(opt, leveldb_snappy_compression);
    char *err = NULL;
    leveldb_repair_db(opt, path, &err);
    leveldb_options_destroy(opt);
    if (err) {
        snprintf(errbuf, errlen, "repair of %s failed: %s", path, err);
        leveldb_free(err);
        return -1;
    }
    return 0;
}

void store_start(struct store *st, struct au_shard **shards, int nshards, int ext_base)
{
    au_wp_start(st->wp, shards, nshards, ext_base);
}

void store_shard_detach(struct store *st, int shard)
{
    au_wp_shard_detach(st->wp, shard);
}

void store_close(struct store *st)
{
    if (!st) return;
    /* Queued work is finished (writes applied and fsync'ed) and completed; never started: queued
     * writes are applied by req_done(NULL, ...), the callbacks dropped. */
    au_wp_close(st->wp);
    st->wp = NULL;
    store_free(st);
}

/* ------------------------------------------------------------------ stats, helpers */

void store_get_stats(const struct store *st, struct store_stats *out)
{
    out->commits = ST_GET(st, commits);
    out->batches = ST_GET(st, batches);
    out->ops = ST_GET(st, ops);
    out->bytes = ST_GET(st, bytes);
    out->write_errors = ST_GET(st, write_errors);
    out->gets = ST_GET(st, gets);
    out->scans = ST_GET(st, scans);
    out->scan_entries = ST_GET(st, scan_entries);
    out->read_errors = ST_GET(st, read_errors);
    out->commit_us_last = ST_GET(st, commit_us_last);
    out->commit_us_max = ST_GET(st, commit_us_max);
    out->commit_us_total = ST_GET(st, commit_us_total);
    out->queue_wait_us_max = ST_GET(st, queue_wait_us_max);
    out->reopens = ST_GET(st, reopens);
    out->reopen_attempts = ST_GET(st, reopen_attempts);
}

double store_stats_avg_batch(const struct store_stats *s)
{
    return s->commits ? (double)s->batches / (double)s->commits : 0.0;
}

size_t store_prefix_end(const void *prefix, size_t len, uint8_t *out)
{
    const uint8_t *p = prefix;
    while (len > 0 && p[len - 1] == 0xff) len--;
    if (len == 0) return 0;
    memcpy(out, p, len);
    out[len - 1]++;
    return len;
}
