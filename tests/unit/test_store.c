/* test_store.c - store/: group commit from several shards (every completion exactly once, in order per
 * shard, commits < batches, data present, completions submitted during shutdown still delivered), async
 * get/scan/paging/reverse, sync API, reopen persistence, format-version check, keyspace ordering and
 * record codec, and a kill -9 durability test (a child process prints each key as its completion
 * arrives; the parent SIGKILLs it and checks every printed key is in the reopened DB); write failures (a torn
 * log record under a file-size limit: reopen on a fresh log, nothing acknowledged lost) and a damaged log at
 * open (refused, then repaired).
 *
 * Real LevelDB in a mkdtemp directory, real event loop (au_loop_start with 0 listeners).
 *   test_store                          run the tests
 *   test_store --bench [shards] [batches per shard] [window] [value bytes 4..256]   group-commit throughput */
#include "store/store.h"
#include "store/keyspace.h"
#include "core/loop.h"
#include "core/log.h"
#include "test.h"

#include <leveldb/c.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ helpers */

static char *mktmp(void)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/aurora-store.XXXXXX");
    char *p = mkdtemp(path);
    if (!p) abort();
    return strdup(p);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}
static void rmtree(char *p)
{
    nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(p);
}

static struct store *open_store(const char *dir, unsigned readers, bool sync)
{
    struct store_opts o = { .dir = dir, .readers = readers, .sync = sync, .write_buffer = 4u << 20,
                            .cache_bytes = 8u << 20 };
    char err[256] = "";
    struct store *st = NULL;
    int r = store_open(&st, &o, err, sizeof err);
    if (r != 0) printf("  store_open: %s\n", err);
    return st;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------ loop harness */

/* The test's per-shard driver: called from shard_tick / shard_stop on the shard's thread. */
struct driver {
    void (*tick)(struct au_shard *s);
    void (*stop)(struct au_shard *s);
};
static const struct driver *g_drv;
static int g_tick_ms = 50;    /* shard_tick's wait bound (1 when pacing a benchmark) */
static struct store *g_st;
static atomic_int g_bad;      /* failures seen on shard threads */
#define SCHECK(c) do { if (!(c)) { printf("  shard check failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); atomic_fetch_add(&g_bad, 1); } } while (0)

static int h_tick(struct au_shard *s, uint64_t now)
{
    (void)now;
    if (g_drv->tick) g_drv->tick(s);
    return g_tick_ms;
}
static void h_stop(struct au_shard *s)
{
    if (g_drv->stop) g_drv->stop(s);
}
static void h_fini(struct au_shard *s) { store_shard_detach(g_st, s->id); }
static const struct au_loop_hooks g_hooks = { .shard_tick = h_tick, .shard_stop = h_stop, .shard_fini = h_fini };

static struct au_shard **start_loop(struct store *st, int nshards, const struct driver *d)
{
    g_st = st;
    g_drv = d;
    struct au_loop_opts lo = { .nshards = nshards, .hooks = &g_hooks, .drain_ms = 2000, .n_ext = (int)AU_MAX_EXT };
    struct au_shard **shards = NULL;
    int r = au_loop_start(&lo, &shards);
    if (r != 0) {
        printf("  au_loop_start: %d\n", r);
        return NULL;
    }
    store_start(st, shards, nshards, 1); /* ext id 0 left unused: a non-zero base must work */
    return shards;
}

/* ------------------------------------------------------------------ group commit */

#define GC_MAX_SHARDS 8
struct gc_shard {
    uint32_t submitted, completed, next_expected, stop_submitted, stop_completed;
    uint8_t *seen;
    uint64_t *t_sub;     /* submit time (us) per batch, for latency */
    uint32_t *lat;       /* completion latency (us) per batch */
    uint64_t t0;
    int errs;
    atomic_int done;
};
static struct gc_shard g_gc[GC_MAX_SHARDS];
static uint32_t g_gc_n = 10000, g_gc_window = 1000, g_gc_vsize = 32;
static uint32_t g_gc_rate; /* batches/s per shard (0 = as fast as the window allows) */
static uint64_t **g_bench_ts; /* --bench: per shard submit times / latencies */
static uint32_t **g_bench_lat;
#define GC_STOP_WRITES 100u

static size_t gc_key(uint8_t *k, int shard, uint32_t i)
{
    k[0] = 'g';
    k[1] = (uint8_t)shard;
    au_wr32(k + 2, i);
    return 6;
}

static void gc_done(struct au_shard *s, void *arg, int err)
{
    struct gc_shard *g = &g_gc[s->id];
    uint32_t i = (uint32_t)(uintptr_t)arg;
    if (err) g->errs++;
    if (i >= g_gc_n) { /* written from shard_stop */
        g->stop_completed++;
        return;
    }
    SCHECK(i == g->next_expected); /* completions of one shard arrive in submission order */
    g->next_expected = i + 1;
    SCHECK(!g->seen[i]);
    g->seen[i]++;
    g->completed++;
    if (g->lat) g->lat[i] = (uint32_t)(au_now_us() - g->t_sub[i]);
    if (g->completed == g_gc_n) atomic_store(&g->done, 1);
}

static void gc_submit(struct au_shard *s, uint32_t i)
{
    uint8_t k[8], v[256];
    size_t kl = gc_key(k, s->id, i);
    memset(v, (int)(i & 0xff), sizeof v);
    au_wr32(v, i);
    struct store_batch *b = store_batch_new();
    store_batch_put(b, k, kl, v, g_gc_vsize);
    if (i % 7 == 0) { /* a batch with several operations, one of them a delete of a key never written */
        uint8_t k2[8] = { 'x', (uint8_t)s->id, 0, 0, 0, 0, 0, 1 };
        store_batch_del(b, k2, sizeof k2);
    }
    if (i < g_gc_n && g_gc[s->id].t_sub) g_gc[s->id].t_sub[i] = au_now_us();
    store_write(g_st, s->id, b, gc_done, (void *)(uintptr_t)i);
}

static void gc_tick(struct au_shard *s)
{
    struct gc_shard *g = &g_gc[s->id];
    uint32_t cap = g_gc_n;
    if (g_gc_rate) {
        if (!g->t0) g->t0 = au_now_us();
        uint64_t allowed = (au_now_us() - g->t0) * g_gc_rate / 1000000u + 1;
        if (allowed < cap) cap = (uint32_t)allowed;
    }
    while (g->submitted < cap && g->submitted - g->completed < g_gc_window) gc_submit(s, g->submitted++);
}

static void gc_stop(struct au_shard *s)
{
    struct gc_shard *g = &g_gc[s->id];
    while (g->stop_submitted < GC_STOP_WRITES) gc_submit(s, g_gc_n + g->stop_submitted++);
}

static const struct driver gc_driver = { .tick = gc_tick, .stop = gc_stop };

static bool count_cb(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    long *n = arg;
    if (kl == 6 && vl == g_gc_vsize && au_rd32(v) == au_rd32(k + 2)) ++*n;
    return true;
}

/* Runs nshards x n batches; returns seconds taken (or -1). */
static double gc_run(struct store *st, int nshards, bool stop_writes)
{
    memset(g_gc, 0, sizeof g_gc);
    for (int i = 0; i < nshards; i++) {
        g_gc[i].seen = calloc(g_gc_n, 1);
        if (g_bench_ts) {
            g_gc[i].t_sub = g_bench_ts[i];
            g_gc[i].lat = g_bench_lat[i];
        }
    }
    atomic_store(&g_bad, 0);
    uint64_t t0 = au_now_us();
    struct au_shard **shards = start_loop(st, nshards, stop_writes ? &gc_driver : &(struct driver){ .tick = gc_tick });
    if (!shards) return -1;
    uint64_t deadline = au_now_ms() + 120000;
    for (;;) {
        int done = 0;
        for (int i = 0; i < nshards; i++) done += atomic_load(&g_gc[i].done);
        if (done == nshards || au_now_ms() > deadline) break;
        sleep_ms(1);
    }
    double secs = (double)(au_now_us() - t0) / 1e6;
    au_loop_stop(shards, nshards);
    return secs;
}

TEST(group_commit_many_shards)
{
    char *dir = mktmp();
    struct store *st = open_store(dir, 1, true);
    CHECK(st != NULL);
    if (!st) return;
    const int ns = 4;
    g_gc_n = 10000;
    g_gc_window = 1000;
    double secs = gc_run(st, ns, true);
    CHECK(secs > 0);
    CHECK_EQ(atomic_load(&g_bad), 0);
    for (int i = 0; i < ns; i++) {
        CHECK_EQ(g_gc[i].completed, g_gc_n);
        CHECK_EQ(g_gc[i].errs, 0);
        /* written from shard_stop during au_loop_stop: completed through store_shard_detach */
        CHECK_EQ(g_gc[i].stop_completed, GC_STOP_WRITES);
        uint32_t once = 0;
        for (uint32_t j = 0; j < g_gc_n; j++) once += g_gc[i].seen[j] == 1;
        CHECK_EQ(once, g_gc_n);
        free(g_gc[i].seen);
    }
    struct store_stats ss;
    store_get_stats(st, &ss);
    uint64_t total = (uint64_t)ns * (g_gc_n + GC_STOP_WRITES);
    CHECK_EQ(ss.batches, total);
    CHECK(ss.commits < ss.batches);
    CHECK(ss.commits > 0);
    printf("  %llu batches in %llu commits (%.1f per commit) in %.2f s, commit latency max %llu us\n",
           (unsigned long long)ss.batches, (unsigned long long)ss.commits, store_stats_avg_batch(&ss), secs,
           (unsigned long long)ss.commit_us_max);
    long n = 0;
    uint8_t lo[1] = { 'g' }, hi[1] = { 'h' };
    CHECK_EQ(store_scan_sync(st, lo, 1, hi, 1, 0, count_cb, &n), (long)total);
    CHECK_EQ(n, (long)total);
    store_close(st);

    /* reopen: everything is still there */
    st = open_store(dir, 0, true);
    CHECK(st != NULL);
    if (st) {
        n = 0;
        CHECK_EQ(store_scan_sync(st, lo, 1, hi, 1, 0, count_cb, &n), (long)total);
        CHECK_EQ(n, (long)total);
        store_close(st);
    }
    rmtree(dir);
}

/* ------------------------------------------------------------------ async reads */

static int g_rd_step;
static atomic_int g_rd_done;
static uint32_t g_rd_seen;
static int g_rd_pages;
static uint8_t g_rd_last[16];
static size_t g_rd_lastl;
static void rd_next(struct au_shard *s);

static size_t rd_key(uint8_t *k, unsigned i) { return (size_t)snprintf((char *)k, 16, "r/%04u", i); }

static void rd_get_ok(struct au_shard *s, void *arg, int err, const void *v, size_t vl)
{
    SCHECK(arg == (void *)0x1234);
    SCHECK(err == 0 && vl == 6 && memcmp(v, "v-0042", 6) == 0);
    rd_next(s);
}
static void rd_get_missing(struct au_shard *s, void *arg, int err, const void *v, size_t vl)
{
    SCHECK(err == STORE_ENOTFOUND && v == NULL && vl == 0);
    rd_next(s);
}
static void rd_scan_range(struct au_shard *s, void *arg, int err, const struct store_kv *kv, uint32_t n, bool more)
{
    SCHECK(err == 0 && n == 100 && !more);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t k[16];
        size_t kl = rd_key(k, 100 + i);
        SCHECK(kv[i].kl == kl && memcmp(kv[i].k, k, kl) == 0);
        SCHECK(kv[i].vl == 6 && memcmp(kv[i].v, "v-", 2) == 0 && memcmp(kv[i].v + 2, k + 2, 4) == 0);
    }
    rd_next(s);
}
/* forward paging: 64 per page, STORE_SCAN_AFTER from the last key */
static void rd_page(struct au_shard *s, void *arg, int err, const struct store_kv *kv, uint32_t n, bool more)
{
    SCHECK(err == 0);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t k[16];
        size_t kl = rd_key(k, g_rd_seen + i);
        SCHECK(kv[i].kl == kl && memcmp(kv[i].k, k, kl) == 0);
    }
    g_rd_seen += n;
    g_rd_pages++;
    SCHECK(more == (g_rd_seen < 1000));
    if (more) {
        memcpy(g_rd_last, kv[n - 1].k, kv[n - 1].kl);
        g_rd_lastl = kv[n - 1].kl;
        store_scan(g_st, s->id, g_rd_last, g_rd_lastl, "r0", 2, 64, STORE_SCAN_AFTER, rd_page, NULL);
        return;
    }
    rd_next(s);
}
/* reverse paging: 300 per page from the end, then `end` = last key seen */
static void rd_rpage(struct au_shard *s, void *arg, int err, const struct store_kv *kv, uint32_t n, bool more)
{
    SCHECK(err == 0);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t k[16];
        size_t kl = rd_key(k, 999 - (g_rd_seen + i));
        SCHECK(kv[i].kl == kl && memcmp(kv[i].k, k, kl) == 0);
    }
    g_rd_seen += n;
    g_rd_pages++;
    SCHECK(more == (g_rd_seen < 1000));
    if (more) {
        memcpy(g_rd_last, kv[n - 1].k, kv[n - 1].kl);
        g_rd_lastl = kv[n - 1].kl;
        store_scan(g_st, s->id, "r/", 2, g_rd_last, g_rd_lastl, 300, STORE_SCAN_REVERSE, rd_rpage, NULL);
        return;
    }
    rd_next(s);
}
static void rd_scan_empty(struct au_shard *s, void *arg, int err, const struct store_kv *kv, uint32_t n, bool more)
{
    SCHECK(err == 0 && n == 0 && !more);
    rd_next(s);
}
static void rd_written(struct au_shard *s, void *arg, int err)
{
    SCHECK(err == 0);
    rd_next(s);
}
static void rd_get_after_write(struct au_shard *s, void *arg, int err, const void *v, size_t vl)
{
    SCHECK(err == 0 && vl == 3 && memcmp(v, "new", 3) == 0);
    rd_next(s);
}
static void rd_get_deleted(struct au_shard *s, void *arg, int err, const void *v, size_t vl)
{
    SCHECK(err == STORE_ENOTFOUND);
    rd_next(s);
}

static void rd_next(struct au_shard *s)
{
    uint8_t k[16];
    size_t kl;
    switch (g_rd_step++) {
    case 0:
        kl = rd_key(k, 42);
        store_get(g_st, s->id, k, kl, rd_get_ok, (void *)0x1234);
        break;
    case 1:
        store_get(g_st, s->id, "r/zzzz", 6, rd_get_missing, NULL);
        break;
    case 2: {
        uint8_t e[16];
        size_t el = rd_key(e, 200);
        kl = rd_key(k, 100);
        store_scan(g_st, s->id, k, kl, e, el, 100, 0, rd_scan_range, NULL); /* limit == rows: more is false */
        break;
    }
    case 3:
        g_rd_seen = 0;
        g_rd_pages = 0;
        store_scan(g_st, s->id, "r/", 2, "r0", 2, 64, 0, rd_page, NULL);
        break;
    case 4:
        SCHECK(g_rd_pages == 16);
        g_rd_seen = 0;
        g_rd_pages = 0;
        store_scan(g_st, s->id, "r/", 2, "r0", 2, 300, STORE_SCAN_REVERSE, rd_rpage, NULL);
        break;
    case 5:
        SCHECK(g_rd_pages == 4);
        store_scan(g_st, s->id, "q", 1, "r", 1, 10, 0, rd_scan_empty, NULL);
        break;
    case 6: { /* read your writes: put + delete, then get both after the completion */
        struct store_batch *b = store_batch_new();
        store_batch_put(b, "r/new", 5, "new", 3);
        kl = rd_key(k, 7);
        store_batch_del(b, k, kl);
        store_write(g_st, s->id, b, rd_written, NULL);
        break;
    }
    case 7:
        store_get(g_st, s->id, "r/new", 5, rd_get_after_write, NULL);
        break;
    case 8:
        kl = rd_key(k, 7);
        store_get(g_st, s->id, k, kl, rd_get_deleted, NULL);
        break;
    default:
        atomic_store(&g_rd_done, 1);
        break;
    }
}

static void rd_tick(struct au_shard *s)
{
    if (s->id == 1 && g_rd_step == 0) rd_next(s);
}
static const struct driver rd_driver = { .tick = rd_tick };

static void reads_with(unsigned readers)
{
    char *dir = mktmp();
    struct store *st = open_store(dir, readers, true);
    CHECK(st != NULL);
    if (!st) return;
    struct store_batch *b = store_batch_new();
    for (unsigned i = 0; i < 1000; i++) {
        uint8_t k[16], v[16];
        size_t kl = rd_key(k, i);
        memcpy(v, "v-", 2);
        memcpy(v + 2, k + 2, 4);
        store_batch_put(b, k, kl, v, 6);
    }
    CHECK_EQ(store_write_sync(st, b), 0);
    g_rd_step = 0;
    atomic_store(&g_rd_done, 0);
    atomic_store(&g_bad, 0);
    struct au_shard **shards = start_loop(st, 2, &rd_driver);
    CHECK(shards != NULL);
    uint64_t deadline = au_now_ms() + 20000;
    while (!atomic_load(&g_rd_done) && au_now_ms() < deadline) sleep_ms(1);
    au_loop_stop(shards, 2);
    CHECK_EQ(atomic_load(&g_rd_done), 1);
    CHECK_EQ(atomic_load(&g_bad), 0);
    struct store_stats ss;
    store_get_stats(st, &ss);
    CHECK(ss.gets >= 4);
    CHECK(ss.scans >= 22);
    store_close(st);
    rmtree(dir);
}

TEST(async_get_scan_paging_readers2) { reads_with(2); }
TEST(async_get_scan_paging_no_readers) { reads_with(0); }

/* ------------------------------------------------------------------ sync API, before start, version */

static bool collect_cb(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    char *out = arg;
    strncat(out, (const char *)k, kl);
    strcat(out, ",");
    return strlen(out) < 20;
}

TEST(sync_api_and_work_before_start)
{
    char *dir = mktmp();
    struct store *st = open_store(dir, 1, false);
    CHECK(st != NULL);
    if (!st) return;
    struct store_batch *b = store_batch_new();
    const char *ks[] = { "a", "b", "ba", "c", "d" };
    for (unsigned i = 0; i < 5; i++) store_batch_put(b, ks[i], strlen(ks[i]), "x", 1);
    CHECK_EQ(store_batch_count(b), 5);
    CHECK_EQ(store_write_sync(st, b), 0);
    char out[64] = "";
    CHECK_EQ(store_scan_sync(st, "b", 1, "d", 1, 0, collect_cb, out), 3);
    CHECK(strcmp(out, "b,ba,c,") == 0);
    out[0] = 0;
    CHECK_EQ(store_scan_sync(st, "b", 1, NULL, 0, STORE_SCAN_AFTER, collect_cb, out), 3);
    CHECK(strcmp(out, "ba,c,d,") == 0);
    out[0] = 0;
    CHECK_EQ(store_scan_sync(st, "b", 1, "d", 1, STORE_SCAN_REVERSE, collect_cb, out), 3);
    CHECK(strcmp(out, "c,ba,b,") == 0);
    out[0] = 0;
    CHECK_EQ(store_scan_sync(st, "b", 1, "d", 1, STORE_SCAN_REVERSE | STORE_SCAN_AFTER, collect_cb, out), 2);
    CHECK(strcmp(out, "c,ba,") == 0);
    out[0] = 0; /* the callback stops the scan once out holds 20+ chars */
    CHECK(store_scan_sync(st, NULL, 0, NULL, 0, 0, collect_cb, out) < 10);
    void *v;
    size_t vl;
    CHECK_EQ(store_get_sync(st, "ba", 2, &v, &vl), 0);
    CHECK(vl == 1 && memcmp(v, "x", 1) == 0);
    free(v);
    CHECK_EQ(store_get_sync(st, "bb", 2, &v, &vl), STORE_ENOTFOUND);

    /* work submitted before store_start is kept and completed once shards exist */
    memset(g_gc, 0, sizeof g_gc);
    g_gc_n = 50;
    g_gc[0].seen = calloc(g_gc_n, 1);
    g_st = st;
    for (uint32_t i = 0; i < 50; i++) {
        uint8_t k[8];
        size_t kl = gc_key(k, 0, i);
        struct store_batch *w = store_batch_new();
        store_batch_put(w, k, kl, "early", 5);
        store_write(st, 0, w, gc_done, (void *)(uintptr_t)i);
    }
    /* the shard's callbacks need the shard: give it a loop with no driver */
    static const struct driver none = { 0 };
    struct au_shard **shards = start_loop(st, 1, &none);
    uint64_t deadline = au_now_ms() + 10000;
    while (!atomic_load(&g_gc[0].done) && au_now_ms() < deadline) sleep_ms(1);
    au_loop_stop(shards, 1);
    CHECK_EQ(g_gc[0].completed, 50);
    free(g_gc[0].seen);
    uint8_t k[8];
    size_t kl = gc_key(k, 0, 49);
    CHECK_EQ(store_get_sync(st, k, kl, &v, &vl), 0);
    free(v);
    store_close(st);

    /* closed without ever starting: queued writes are still applied */
    st = open_store(dir, 0, true);
    CHECK(st != NULL);
    if (!st) return;
    b = store_batch_new();
    store_batch_put(b, "late", 4, "y", 1);
    store_write(st, 0, b, NULL, NULL);
    store_close(st);
    st = open_store(dir, 0, true);
    CHECK(st != NULL);
    if (!st) return;
    CHECK_EQ(store_get_sync(st, "late", 4, &v, &vl), 0);
    free(v);
    store_close(st);
    rmtree(dir);
}

static void raw_put(const char *dir, const void *k, size_t kl, const void *v, size_t vl)
{
    char path[256];
    snprintf(path, sizeof path, "%s/db", dir);
    leveldb_options_t *o = leveldb_options_create();
    leveldb_options_set_create_if_missing(o, 1);
    char *err = NULL;
    leveldb_t *db = leveldb_open(o, path, &err);
    if (err) {
        printf("  raw open: %s\n", err);
        leveldb_free(err);
        leveldb_options_destroy(o);
        return;
    }
    leveldb_writeoptions_t *wo = leveldb_writeoptions_create();
    leveldb_put(db, wo, k, kl, v, vl, &err);
    if (err) leveldb_free(err);
    leveldb_writeoptions_destroy(wo);
    leveldb_close(db);
    leveldb_options_destroy(o);
}

TEST(format_version_check)
{
    char *dir = mktmp();
    struct store *st = open_store(dir, 0, true);
    CHECK(st != NULL);
    uint8_t key[KS_KEY_MAX];
    size_t kl = ks_meta(key, KS_META_FORMAT);
    void *v;
    size_t vl;
    CHECK_EQ(store_get_sync(st, key, kl, &v, &vl), 0);
    CHECK(vl == 4 && au_rd32(v) == STORE_FORMAT_VERSION);
    free(v);
    store_close(st);
    /* a newer format is refused */
    uint8_t ver[4];
    au_wr32(ver, STORE_FORMAT_VERSION + 1);
    raw_put(dir, key, kl, ver, 4);
    struct store_opts o = { .dir = dir };
    char err[256] = "";
    st = NULL;
    CHECK_EQ(store_open(&st, &o, err, sizeof err), -1);
    CHECK(st == NULL);
    CHECK(strstr(err, "newer") != NULL);
    /* format 1 (IM state keyed by usernames, name-hash conversation ids) is refused, not migrated */
    au_wr32(ver, 1);
    raw_put(dir, key, kl, ver, 4);
    CHECK_EQ(store_open(&st, &o, err, sizeof err), -1);
    CHECK(st == NULL);
    CHECK(strstr(err, "older") != NULL);
    /* back to ours: opens */
    au_wr32(ver, STORE_FORMAT_VERSION);
    raw_put(dir, key, kl, ver, 4);
    CHECK_EQ(store_open(&st, &o, err, sizeof err), 0);
    store_close(st);
    rmtree(dir);
    /* foreign data without a format key is refused */
    dir = mktmp();
    raw_put(dir, "foo", 3, "bar", 3);
    err[0] = 0;
    o.dir = dir;
    CHECK_EQ(store_open(&st, &o, err, sizeof err), -1);
    CHECK(strstr(err, "format") != NULL);
    rmtree(dir);
}

/* ------------------------------------------------------------------ keyspace */

TEST(keyspace_order_and_codec)
{
    uint8_t a[KS_KEY_MAX], b[KS_KEY_MAX], e[KS_KEY_MAX];
    /* big-endian integers: numeric order == byte order */
    size_t al = ks_im_msg(a, 7, 3, 255), bl = ks_im_msg(b, 7, 3, 256);
    CHECK(al == bl && memcmp(a, b, al) < 0);
    al = ks_im_msg(a, 7, 3, UINT64_MAX);
    bl = ks_im_msg(b, 7, 4, 0);
    CHECK(memcmp(a, b, al) < 0);
    /* length-prefixed client ids: "ab" session keys are not inside "a"'s prefix range */
    size_t pl = ks_session_prefix(a, 1, "a", 1);
    size_t el = store_prefix_end(a, pl, e);
    CHECK(el == pl);
    bl = ks_session_kind(b, 1, "ab", 2, KS_SESS_RECORD);
    bool in = memcmp(b, a, pl) == 0;
    CHECK(!in);
    bl = ks_session_out(b, 1, "a", 1, 5);
    CHECK(memcmp(b, a, pl) == 0 && memcmp(b, e, el) < 0);
    /* apps are separated */
    al = ks_retained(a, 1, "t/x", 3);
    pl = ks_app_prefix(b, KS_MQTT_RETAINED, 2);
    CHECK(memcmp(a, b, pl) < 0);
    /* prefix end */
    uint8_t ff[3] = { 0x01, 0xff, 0xff };
    CHECK_EQ(store_prefix_end(ff, 3, e), 1);
    CHECK_EQ(e[0], 0x02);
    CHECK_EQ(store_prefix_end(ff + 1, 2, e), 0);
    /* retained record round trip, damaged records refused */
    struct ks_retained_rec r = { .qos = 1, .stored_ms = 123, .expire_ms = 456, .props = (const uint8_t *)"\x01\x01",
                                 .props_len = 2, .payload = (const uint8_t *)"hello", .payload_len = 5 };
    uint8_t buf[64];
    size_t n = ks_retained_encode(buf, sizeof buf, &r);
    CHECK_EQ(n, ks_retained_size(2, 5));
    struct ks_retained_rec d;
    CHECK_EQ(ks_retained_decode(buf, n, &d), 0);
    CHECK(d.qos == 1 && d.stored_ms == 123 && d.expire_ms == 456 && d.props_len == 2 && d.payload_len == 5);
    CHECK(memcmp(d.payload, "hello", 5) == 0);
    for (size_t cut = 0; cut < 23; cut++) CHECK_EQ(ks_retained_decode(buf, cut, &d), -1);
    buf[0] = 9;
    CHECK_EQ(ks_retained_decode(buf, n, &d), -1);
    CHECK_EQ(ks_retained_encode(buf, 10, &r), 0);
}

/* ------------------------------------------------------------------ kill -9 durability */

static int g_kill_fd = -1;
static uint32_t g_kill_next, g_kill_inflight;

static void kill_done(struct au_shard *s, void *arg, int err)
{
    g_kill_inflight--;
    if (err) return;
    char line[32];
    int n = snprintf(line, sizeof line, "%u\n", (unsigned)(uintptr_t)arg);
    if (write(g_kill_fd, line, (size_t)n) != n) _exit(3);
}
static void kill_tick(struct au_shard *s)
{
    while (g_kill_inflight < 64) {
        uint8_t k[8];
        uint32_t i = g_kill_next++;
        size_t kl = gc_key(k, 9, i);
        struct store_batch *b = store_batch_new();
        store_batch_put(b, k, kl, "durable!", 8);
        store_write(g_st, s->id, b, kill_done, (void *)(uintptr_t)i);
        g_kill_inflight++;
    }
}
static const struct driver kill_driver = { .tick = kill_tick };

/* The child: writes until killed, printing each key once its completion ran. */
static int kill_child(const char *dir, int fd)
{
    g_kill_fd = fd;
    struct store *st = open_store(dir, 0, true);
    if (!st) return 2;
    struct au_shard **shards = start_loop(st, 1, &kill_driver);
    if (!shards) return 2;
    for (;;) pause();
}

/* Start this test binary again as a child (`flag` dir fd): exec gives a fresh process (LevelDB's background
 * thread does not survive fork). Returns the read end of the child's report pipe, or NULL. */
static FILE *spawn_child(const char *flag, const char *dir, pid_t *pid)
{
    int p[2];
    if (pipe(p) != 0) return NULL;
    *pid = fork();
    if (*pid == 0) {
        close(p[0]);
        char fd[16];
        snprintf(fd, sizeof fd, "%d", p[1]);
        execl("/proc/self/exe", "test_store", flag, dir, fd, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    return *pid < 0 ? NULL : fdopen(p[0], "r");
}

TEST(kill9_durability)
{
    char *dir = mktmp();
    pid_t pid;
    FILE *in = spawn_child("--kill-child", dir, &pid);
    CHECK(in != NULL);
    static uint8_t seen[1u << 22];
    memset(seen, 0, sizeof seen);
    unsigned printed = 0, maxk = 0;
    char line[64];
    bool killed = false;
    uint64_t deadline = au_now_ms() + 30000;
    while (fgets(line, sizeof line, in)) {
        unsigned k = (unsigned)strtoul(line, NULL, 10);
        if (k < sizeof seen) seen[k] = 1;
        if (k > maxk) maxk = k;
        printed++;
        if (!killed && (printed >= 3000 || au_now_ms() > deadline)) {
            kill(pid, SIGKILL); /* mid-stream: completions keep arriving until now */
            killed = true;
        }
    }
    fclose(in);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(killed);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    CHECK(printed >= 3000);
    struct store *st = open_store(dir, 0, true);
    CHECK(st != NULL);
    if (st) {
        unsigned missing = 0;
        for (unsigned k = 0; k <= maxk && k < sizeof seen; k++) {
            if (!seen[k]) continue;
            uint8_t key[8];
            size_t kl = gc_key(key, 9, k);
            void *v;
            size_t vl;
            if (store_get_sync(st, key, kl, &v, &vl) != 0) missing++;
            else free(v);
        }
        CHECK_EQ(missing, 0);
        printf("  child printed %u completions before SIGKILL; all present after reopen\n", printed);
        store_close(st);
    }
    rmtree(dir);
}

/* ------------------------------------------------------------------ write failures (a full disk) */

/* The child writes continuously and prints "A k" for each acknowledged key ("E k" for a refused one). The
 * disk fills up as the process's file-size limit (RLIMIT_FSIZE: a write past it fails, one across it is SHORT,
 * exactly what a full disk does to LevelDB's log): first just above the log's size (a torn record at the end
 * of the log, the commits after it refused until the store reopened on a fresh log), then far below every
 * file's size (reopen attempts fail too: every write refused, retried), then the limit is lifted (space is
 * back: the store reopens and acknowledges again). Then "DONE"; the parent SIGKILLs it and checks that the
 * DB opens with paranoid checks and holds every acknowledged key. */
static int g_full_fd = -1;
static const char *g_full_dir;
static uint32_t g_full_next, g_full_inflight, g_full_acks, g_full_errs, g_full_phase, g_full_acks3;
static uint64_t g_full_t;

static void full_limit(rlim_t cur)
{
    struct rlimit rl = { .rlim_cur = cur, .rlim_max = RLIM_INFINITY };
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(4);
}

static off_t newest_log_size(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/db", dir);
    DIR *d = opendir(path);
    off_t size = 0;
    unsigned long best = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        struct stat sb;
        if (n < 5 || strcmp(e->d_name + n - 4, ".log") != 0) continue;
        unsigned long num = strtoul(e->d_name, NULL, 10);
        if (num >= best && fstatat(dirfd(d), e->d_name, &sb, 0) == 0) {
            best = num;
            size = sb.st_size;
        }
    }
    if (d) closedir(d);
    return size;
}

static void full_done(struct au_shard *s, void *arg, int err)
{
    (void)s;
    g_full_inflight--;
    char line[32];
    int n = snprintf(line, sizeof line, "%c %u\n", err ? 'E' : 'A', (unsigned)(uintptr_t)arg);
    if (write(g_full_fd, line, (size_t)n) != n) _exit(3);
    if (err) g_full_errs++;
    else if (++g_full_acks, g_full_phase == 3) g_full_acks3++;
}

static void full_tick(struct au_shard *s)
{
    uint64_t now = au_now_ms();
    if (g_full_phase == 0 && g_full_acks >= 1500) {
        full_limit((rlim_t)newest_log_size(g_full_dir) + 1500); /* a few records fit, the next is torn */
        g_full_phase = 1;
    } else if (g_full_phase == 1 && g_full_errs > 0) {
        full_limit(4096); /* no file may grow: reopening (log -> table) fails as well */
        g_full_phase = 2;
        g_full_t = now;
    } else if (g_full_phase == 2 && now - g_full_t >= 1500) {
        full_limit(RLIM_INFINITY); /* space is back */
        g_full_phase = 3;
    } else if (g_full_phase == 3 && g_full_acks3 >= 1500) {
        struct store_stats ss;
        store_get_stats(g_st, &ss);
        char line[96];
        int n = snprintf(line, sizeof line, "DONE %llu %llu\n", (unsigned long long)ss.reopens,
                         (unsigned long long)ss.reopen_attempts);
        if (write(g_full_fd, line, (size_t)n) != n) _exit(3);
        g_full_phase = 4;
    }
    if (g_full_phase == 4) return;
    while (g_full_inflight < 16) {
        uint8_t k[8], v[200];
        uint32_t i = g_full_next++;
        size_t kl = gc_key(k, 7, i);
        memset(v, 'v', sizeof v);
        au_wr32(v, i);
        struct store_batch *b = store_batch_new();
        store_batch_put(b, k, kl, v, sizeof v);
        store_write(g_st, s->id, b, full_done, (void *)(uintptr_t)i);
        g_full_inflight++;
    }
}
static const struct driver full_driver = { .tick = full_tick };

static int full_child(const char *dir, int fd)
{
    g_full_fd = fd;
    g_full_dir = dir;
    signal(SIGXFSZ, SIG_IGN); /* a write past the limit fails with EFBIG instead of killing the process */
    g_tick_ms = 2;
    struct store *st = open_store(dir, 1, true);
    if (!st) return 2;
    struct au_shard **shards = start_loop(st, 1, &full_driver);
    if (!shards) return 2;
    for (;;) pause();
}

TEST(write_failure_reopens_and_loses_nothing_acknowledged)
{
    char *dir = mktmp();
    pid_t pid;
    FILE *in = spawn_child("--full-child", dir, &pid);
    CHECK(in != NULL);
    static uint8_t acked[1u << 20];
    memset(acked, 0, sizeof acked);
    unsigned nacked = 0, nerr = 0, maxk = 0, reopens = 0, attempts = 0, err_then_ack = 0;
    bool done = false, in_err = false;
    char line[64];
    while (fgets(line, sizeof line, in)) {
        if (strncmp(line, "DONE", 4) == 0) {
            sscanf(line + 5, "%u %u", &reopens, &attempts);
            done = true;
            kill(pid, SIGKILL);
            continue;
        }
        unsigned k = (unsigned)strtoul(line + 2, NULL, 10);
        if (line[0] == 'E') {
            nerr++;
            in_err = true;
            continue;
        }
        if (in_err) err_then_ack++; /* acknowledged again after refusals */
        in_err = false;
        if (k < sizeof acked) acked[k] = 1;
        if (k > maxk) maxk = k;
        nacked++;
    }
    fclose(in);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(done);
    CHECK(nerr > 0);
    CHECK(err_then_ack > 0);
    CHECK(reopens >= 1);
    CHECK(attempts > reopens); /* some attempts failed while no file could grow */
    struct store *st = open_store(dir, 0, true); /* paranoid checks: a torn record left behind fails this */
    CHECK(st != NULL);
    if (st) {
        unsigned missing = 0;
        for (unsigned k = 0; k <= maxk && k < sizeof acked; k++) {
            if (!acked[k]) continue;
            uint8_t key[8];
            size_t kl = gc_key(key, 7, k);
            void *v;
            size_t vl;
            if (store_get_sync(st, key, kl, &v, &vl) != 0) missing++;
            else free(v);
        }
        CHECK_EQ(missing, 0);
        printf("  %u acknowledged, %u refused, %u reopen(s) in %u attempt(s); acknowledged missing after kill -9 and "
               "a paranoid open: %u\n", nacked, nerr, reopens, attempts, missing);
        store_close(st);
    }
    rmtree(dir);
}

/* A log damaged in the middle (bit rot, a bad disk) is refused at open with the operator's way out, instead
 * of LevelDB's silent "dropping N bytes"; store_repair (aurora-ctl store repair) keeps every intact record. */
TEST(corrupted_log_refused_at_open_then_repaired)
{
    char *dir = mktmp();
    struct store *st = open_store(dir, 0, true);
    CHECK(st != NULL);
    if (!st) return;
    const unsigned n = 2000;
    for (unsigned i = 0; i < n; i++) {
        uint8_t k[8], v[100];
        size_t kl = gc_key(k, 5, i);
        memset(v, 'r', sizeof v);
        struct store_batch *b = store_batch_new();
        store_batch_put(b, k, kl, v, sizeof v);
        CHECK_EQ(store_write_sync(st, b), 0);
    }
    store_close(st); /* the records stay in the log (the memtable is not flushed at close) */
    char path[4096];
    snprintf(path, sizeof path, "%s/db", dir);
    DIR *d = opendir(path);
    char logname[300] = "";
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t nl = strlen(e->d_name);
        if (nl > 4 && strcmp(e->d_name + nl - 4, ".log") == 0) snprintf(logname, sizeof logname, "%s", e->d_name);
    }
    if (d) closedir(d);
    CHECK(logname[0] != 0);
    snprintf(path, sizeof path, "%s/db/%s", dir, logname);
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (f) {
        CHECK(fseek(f, 0, SEEK_END) == 0 && ftell(f) > 100000);
        CHECK(fseek(f, 50000, SEEK_SET) == 0);
        int c = fgetc(f);
        CHECK(fseek(f, 50000, SEEK_SET) == 0);
        fputc(c ^ 0x5a, f);
        fclose(f);
    }
    struct store_opts o = { .dir = dir, .readers = 0, .sync = true };
    char err[1024] = "";
    struct store *bad = NULL;
    CHECK_EQ(store_open(&bad, &o, err, sizeof err), -1);
    CHECK(bad == NULL);
    CHECK(strstr(err, "is damaged") != NULL && strstr(err, "store repair") != NULL);
    printf("  refused: %.160s...\n", err);
    CHECK_EQ(store_repair(dir, err, sizeof err), 0);
    st = open_store(dir, 0, true);
    CHECK(st != NULL);
    if (st) {
        unsigned present = 0;
        bool first = false, last = false;
        for (unsigned i = 0; i < n; i++) {
            uint8_t k[8];
            size_t kl = gc_key(k, 5, i);
            void *v;
            size_t vl;
            if (store_get_sync(st, k, kl, &v, &vl) != 0) continue;
            free(v);
            present++;
            if (i == 0) first = true;
            if (i == n - 1) last = true;
        }
        printf("  after repair: %u of %u records (the damaged ones dropped, the ones after them kept)\n", present, n);
        CHECK(first && last);
        CHECK(present < n && present > n / 2);
        store_close(st);
    }
    rmtree(dir);
}

/* ------------------------------------------------------------------ benchmark */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Group-commit throughput and completion latency (submit -> callback on the shard), production
 * LevelDB options (default cache and write buffer), 1 reader thread. */
static int bench(int argc, char **argv)
{
    int ns = argc > 2 ? atoi(argv[2]) : 2;
    uint32_t n = argc > 3 ? (uint32_t)atoi(argv[3]) : 20000;
    uint32_t win = argc > 4 ? (uint32_t)atoi(argv[4]) : 1000;
    g_gc_vsize = argc > 5 ? (uint32_t)atoi(argv[5]) : 32;
    if (ns < 1 || ns > GC_MAX_SHARDS || n < 20 || g_gc_vsize < 4 || g_gc_vsize > 256 || win < 1) return 2;
    struct {
        const char *name;
        bool sync;
        uint32_t window, n, rate;
    } runs[] = {
        { "sync, window 1 (no group commit)", true, 1, n / 20, 0 },
        { "sync, group commit", true, win, n, 0 },
        { "sync, paced 50k/s per shard", true, win, n, 50000 },
        { "no fsync, group commit", false, win, n, 0 },
    };
    printf("store bench: %d shards, %u batches per shard, window %u, value %u bytes\n", ns, n, win, g_gc_vsize);
    for (size_t r = 0; r < AU_ARRAY_LEN(runs); r++) {
        char *dir = mktmp();
        struct store_opts o = { .dir = dir, .readers = 1, .sync = runs[r].sync };
        char err[256];
        struct store *st = NULL;
        if (store_open(&st, &o, err, sizeof err) != 0) {
            printf("store_open: %s\n", err);
            return 1;
        }
        g_gc_window = runs[r].window;
        g_gc_n = runs[r].n;
        g_gc_rate = runs[r].rate;
        g_tick_ms = g_gc_rate ? 1 : 50;
        for (int i = 0; i < ns; i++) {
            g_gc[i].t_sub = calloc(g_gc_n, sizeof(uint64_t));
            g_gc[i].lat = calloc(g_gc_n, sizeof(uint32_t));
        }
        /* gc_run clears g_gc: keep the buffers aside */
        uint64_t *ts[GC_MAX_SHARDS];
        uint32_t *lat[GC_MAX_SHARDS];
        for (int i = 0; i < ns; i++) {
            ts[i] = g_gc[i].t_sub;
            lat[i] = g_gc[i].lat;
        }
        g_bench_ts = ts;
        g_bench_lat = lat;
        double secs = gc_run(st, ns, false);
        struct store_stats ss;
        store_get_stats(st, &ss);
        uint32_t *all = malloc(sizeof(uint32_t) * g_gc_n * (size_t)ns);
        size_t m = 0;
        for (int i = 0; i < ns; i++) {
            for (uint32_t j = 0; j < g_gc[i].completed && j < g_gc_n; j++) all[m++] = lat[i][j];
            free(g_gc[i].seen);
            free(ts[i]);
            free(lat[i]);
        }
        qsort(all, m, sizeof *all, cmp_u32);
        printf("  %-34s %7llu batches %6llu commits in %5.2f s: %8.0f batches/s %6.0f commits/s %7.1f batches/commit;"
               " commit avg %5.0f max %6llu us; latency p50 %5u p99 %6u max %6u us\n",
               runs[r].name, (unsigned long long)ss.batches, (unsigned long long)ss.commits, secs,
               (double)ss.batches / secs, (double)ss.commits / secs, store_stats_avg_batch(&ss),
               ss.commits ? (double)ss.commit_us_total / (double)ss.commits : 0.0,
               (unsigned long long)ss.commit_us_max, m ? all[m / 2] : 0, m ? all[m * 99 / 100] : 0,
               m ? all[m - 1] : 0);
        free(all);
        g_bench_ts = NULL;
        g_bench_lat = NULL;
        store_close(st);
        rmtree(dir);
    }
    g_gc_rate = 0;
    g_tick_ms = 50;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--kill-child") == 0) return kill_child(argv[2], atoi(argv[3]));
    if (argc == 4 && strcmp(argv[1], "--full-child") == 0) return full_child(argv[2], atoi(argv[3]));
    if (argc >= 2 && strcmp(argv[1], "--bench") == 0) return bench(argc, argv);
    au_log_set_level(AU_LOG_WARN);
    RUN(kill9_durability);
    RUN(write_failure_reopens_and_loses_nothing_acknowledged);
    RUN(corrupted_log_refused_at_open_then_repaired);
    RUN(keyspace_order_and_codec);
    RUN(format_version_check);
    RUN(sync_api_and_work_before_start);
    RUN(async_get_scan_paging_readers2);
    RUN(async_get_scan_paging_no_readers);
    RUN(group_commit_many_shards);
    TEST_MAIN_END();
}
