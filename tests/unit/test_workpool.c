/* test_workpool.c - core/workpool: the shutdown and detach races of the one worker-pool primitive.
 *
 * Real shards (au_loop_start with 0 listeners) submit jobs from their ticks and from done callbacks
 * to several workers; the loop is stopped while jobs are in flight, so every shard detaches (from
 * shard_fini) with work outstanding, some after submitting a last burst, one while the workers are
 * still busy for the others. Every job is checked to complete exactly once, on its own shard's
 * thread, in submission order per (shard, worker), never after its shard's detach returned, and the
 * pool's queues into a detached shard stay empty. Also: work submitted before start, a pool closed
 * without starting, and completions that spill past a full shard queue while the shard detaches.
 *
 * Run it under ThreadSanitizer with `make tsan-workpool` (build-tsan/), under ASan+UBSan with
 * `make all SAN=address,undefined` (build-san/tests/test_workpool). WP_ITERS=n sets the stress rounds. */
#include "test.h"
#include "core/workpool.h"
#include "core/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

enum {
    NSH = 8,               /* shards */
    NW = 3,                /* workers */
    EXT_BASE = 1,          /* a non-zero base: ids 1..3 of n_ext = 4 */
    PER_SHARD = 6000,      /* jobs one shard may submit in one stress round (bounds memory) */
    ROUND_MAX = 16,        /* jobs per worker round */
    LAST_BURST = 48,       /* slow jobs a shard submits from shard_fini right before detaching */
};

struct tjob {
    struct au_wp_job wj;   /* first */
    uint32_t id;
    uint16_t shard, worker;
    uint32_t seq;          /* per (shard, worker) submission order */
    uint32_t work_us;      /* busy time on the worker */
    bool saw_cancel;       /* au_wp_job_canceled() on the worker */
    bool chain;            /* its done submits one more job */
};

static struct au_wp *g_wp;
static struct tjob *g_jobs;                 /* [NSH * PER_SHARD] */
static atomic_int *g_calls;                 /* done calls per job id */
static atomic_int g_bad, g_go, g_saw_cancel_total, g_null_done;
static atomic_int g_detached[NSH];          /* set right after au_wp_shard_detach returned */
static atomic_int g_ran;                    /* jobs run by workers */
static uint32_t g_used[NSH];                /* shard thread: jobs taken from its slice */
static uint32_t g_seq[NSH][NW];             /* shard thread: next seq to submit */
static uint32_t g_next[NSH][NW];            /* shard thread: next seq expected to complete */
static unsigned g_rng[NSH];

static void bad(const char *what, int a, int b)
{
    if (atomic_fetch_add(&g_bad, 1) < 10) printf("  bad: %s (%d, %d)\n", what, a, b);
}

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 8) & 0xffffu;
}

static void busy_us(uint32_t us)
{
    if (!us) return;
    uint64_t end = au_now_us() + us;
    while (au_now_us() < end) {
    }
}

/* ------------------------------------------------------------------ pool callbacks */

static unsigned round_max = ROUND_MAX;

static unsigned t_round(struct au_wp_worker *w)
{
    unsigned n = 0;
    struct au_wp_job *wj;
    while (n < round_max && (wj = au_wp_pop(w))) {
        struct tjob *j = (struct tjob *)(void *)wj;
        if (j->worker != au_wp_worker_index(w)) bad("job on the wrong worker", j->worker, (int)au_wp_worker_index(w));
        busy_us(j->work_us);
        j->saw_cancel = au_wp_job_canceled(wj);
        atomic_fetch_add_explicit(&g_ran, 1, memory_order_relaxed);
        au_wp_complete(w, wj);
        n++;
    }
    return n;
}

static const struct au_wp_ops t_ops = { .round = t_round };

static void submit_one(struct au_shard *s, uint32_t work_us, bool chain);

static void t_done(struct au_shard *s, struct au_wp_job *wj)
{
    struct tjob *j = (struct tjob *)(void *)wj;
    if (!s) {
        atomic_fetch_add(&g_null_done, 1);
        atomic_fetch_add(&g_calls[j->id], 1);
        return;
    }
    if (s->id != j->shard || !pthread_equal(pthread_self(), s->thread)) bad("done off its shard", j->shard, s->id);
    if (atomic_load(&g_detached[s->id])) bad("done after detach", s->id, (int)j->id);
    if (j->seq != g_next[j->shard][j->worker]) bad("out of order", (int)j->seq, (int)g_next[j->shard][j->worker]);
    g_next[j->shard][j->worker] = j->seq + 1;
    if (j->saw_cancel) atomic_fetch_add(&g_saw_cancel_total, 1);
    if (atomic_fetch_add(&g_calls[j->id], 1) != 0) bad("done twice", (int)j->id, 0);
    if (j->chain) submit_one(s, 0, rnd(&g_rng[s->id]) % 4 == 0); /* also while detaching: allowed */
}

static void submit_one(struct au_shard *s, uint32_t work_us, bool chain)
{
    int sh = s ? s->id : 0;
    if (g_used[sh] >= PER_SHARD) return;
    struct tjob *j = &g_jobs[sh * PER_SHARD + (int)g_used[sh]];
    j->id = (uint32_t)(sh * PER_SHARD) + g_used[sh]++;
    j->shard = (uint16_t)sh;
    j->worker = (uint16_t)(rnd(&g_rng[sh]) % NW);
    j->seq = g_seq[sh][j->worker]++;
    j->work_us = work_us;
    j->chain = chain;
    j->saw_cancel = false;
    j->wj.done = t_done;
    au_wp_submit(g_wp, j->worker, sh, &j->wj);
}

/* ------------------------------------------------------------------ stress: detach with work in flight */

static int st_tick(struct au_shard *s, uint64_t now)
{
    if (!atomic_load(&g_go)) return 2;
    unsigned burst = 1 + rnd(&g_rng[s->id]) % 32;
    for (unsigned i = 0; i < burst; i++) submit_one(s, rnd(&g_rng[s->id]) % 8 == 0 ? 20 : 0, rnd(&g_rng[s->id]) % 8 == 0);
    return 1;
}

static bool pool_queues_empty(struct au_shard *s)
{
    for (int i = 0; i < NW; i++)
        if (!au_xq_empty(&s->inq[s->nshards + EXT_BASE + i])) return false;
    return true;
}

static void st_fini(struct au_shard *s)
{
    if (s->id != 0) /* a last burst of slow jobs: the workers are busy while shard 0 detaches */
        for (int i = 0; i < LAST_BURST; i++) submit_one(s, 30, i % 3 == 0);
    au_wp_shard_detach(g_wp, s->id);
    atomic_store(&g_detached[s->id], 1);
    if (au_wp_outstanding(g_wp, s->id) != 0) bad("outstanding after detach", s->id, (int)au_wp_outstanding(g_wp, s->id));
    if (au_wp_shard_attached(g_wp, s->id)) bad("attached after detach", s->id, 0);
    if (s->id == 0) { /* while the others detach: nothing more may arrive from the pool */
        uint64_t end = au_now_ms() + 30;
        while (au_now_ms() < end) {
            if (!pool_queues_empty(s)) {
                bad("message for a detached shard", s->id, 0);
                break;
            }
            struct timespec ts = { 0, 200000 };
            nanosleep(&ts, NULL);
        }
    } else if (!pool_queues_empty(s)) {
        bad("message for a detached shard", s->id, 0);
    }
}

static const struct au_loop_hooks st_hooks = { .shard_tick = st_tick, .shard_fini = st_fini };

static void reset(void)
{
    atomic_store(&g_bad, 0);
    atomic_store(&g_go, 0);
    atomic_store(&g_null_done, 0);
    atomic_store(&g_ran, 0);
    for (int i = 0; i < NSH; i++) {
        atomic_store(&g_detached[i], 0);
        g_used[i] = 0;
        g_rng[i] = 0x9e3779b9u * (unsigned)(i + 1) + (unsigned)au_now_us();
        for (int k = 0; k < NW; k++) g_seq[i][k] = g_next[i][k] = 0;
    }
    for (int i = 0; i < NSH * PER_SHARD; i++) atomic_store(&g_calls[i], 0);
    memset(g_jobs, 0, sizeof *g_jobs * NSH * PER_SHARD);
}

static struct au_shard **start_loop(int nshards, const struct au_loop_hooks *h)
{
    struct au_loop_opts lo = { .nshards = nshards, .hooks = h, .drain_ms = 1000, .n_ext = EXT_BASE + NW };
    struct au_shard **shards = NULL;
    int r = au_loop_start(&lo, &shards);
    CHECK_EQ(r, 0);
    return r == 0 ? shards : NULL;
}

static struct au_wp *new_pool(unsigned workers)
{
    struct au_wp_opts o = { .name = "test", .workers = workers, .ops = &t_ops };
    return au_wp_new(&o);
}

/* Every job taken was called back exactly once; returns how many were taken. */
static long check_exactly_once(int nshards)
{
    long n = 0;
    for (int sh = 0; sh < nshards; sh++)
        for (uint32_t k = 0; k < g_used[sh]; k++) {
            int c = atomic_load(&g_calls[sh * PER_SHARD + (int)k]);
            if (c != 1) bad("calls != 1", sh * PER_SHARD + (int)k, c);
            n++;
        }
    return n;
}

TEST(detach_with_jobs_in_flight)
{
    const char *e = getenv("WP_ITERS");
    int iters = e ? atoi(e) : 6;
    long total = 0, canceled_seen = 0;
    for (int it = 0; it < iters; it++) {
        reset();
        g_wp = new_pool(NW);
        CHECK_EQ(au_wp_threads(g_wp), NW);
        struct au_shard **shards = start_loop(NSH, &st_hooks);
        if (!shards) return;
        au_wp_start(g_wp, shards, NSH, EXT_BASE);
        atomic_store(&g_go, 1);
        struct timespec ts = { 0, (long)(20 + 15 * (it % 4)) * 1000000L };
        nanosleep(&ts, NULL);
        au_loop_stop(shards, NSH); /* every shard detaches in shard_fini with jobs in flight */
        struct au_wp_stats ws;
        au_wp_get_stats(g_wp, &ws);
        long n = check_exactly_once(NSH);
        CHECK_EQ(ws.submitted, n);
        CHECK_EQ(ws.completed, n);
        CHECK_EQ(ws.canceled, 0);
        CHECK_EQ(atomic_load(&g_null_done), 0);
        CHECK_EQ(atomic_load(&g_ran), n);
        au_wp_close(g_wp);
        g_wp = NULL;
        total += n;
        CHECK_EQ(atomic_load(&g_bad), 0);
        if (atomic_load(&g_bad)) break;
    }
    canceled_seen = atomic_load(&g_saw_cancel_total);
    printf("  %d rounds, %ld jobs from %d shards on %d workers: each done once on its shard, in order; "
           "%ld ran after their shard began detaching\n", iters, total, NSH, NW, canceled_seen);
    CHECK(total > 0);
    CHECK(canceled_seen > 0); /* the last bursts are slow: the cancel hint was seen */
}

/* ------------------------------------------------------------------ before start, never started */

static void plain_fini(struct au_shard *s)
{
    au_wp_shard_detach(g_wp, s->id);
    atomic_store(&g_detached[s->id], 1);
    if (au_wp_outstanding(g_wp, s->id) != 0 || !pool_queues_empty(s)) bad("not clean after detach", s->id, 0);
}

static const struct au_loop_hooks plain_hooks = { .shard_fini = plain_fini };

TEST(submitted_before_start_and_closed_unstarted)
{
    reset();
    g_wp = new_pool(2);
    /* before the shards exist (main thread): kept, served once the pool starts */
    for (int sh = 0; sh < NSH; sh++) {
        for (int i = 0; i < 100; i++) {
            struct tjob *j = &g_jobs[sh * PER_SHARD + (int)g_used[sh]];
            j->id = (uint32_t)(sh * PER_SHARD) + g_used[sh]++;
            j->shard = (uint16_t)sh;
            j->worker = (uint16_t)(i % 2);
            j->seq = g_seq[sh][j->worker]++;
            j->wj.done = t_done;
            au_wp_submit(g_wp, j->worker, sh, &j->wj);
        }
    }
    CHECK_EQ(au_wp_outstanding(g_wp, 3), 100);
    struct au_shard **shards = start_loop(NSH, &plain_hooks);
    if (!shards) return;
    au_wp_start(g_wp, shards, NSH, EXT_BASE);
    for (int i = 0; i < 5000 && atomic_load(&g_ran) < NSH * 100; i++) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    au_loop_stop(shards, NSH);
    CHECK_EQ(check_exactly_once(NSH), NSH * 100);
    CHECK_EQ(atomic_load(&g_null_done), 0);
    au_wp_close(g_wp);

    /* never started: every queued job gets done(NULL, job) in au_wp_close, once */
    reset();
    g_wp = new_pool(3);
    for (int i = 0; i < 300; i++) {
        struct tjob *j = &g_jobs[g_used[0]];
        j->id = g_used[0]++;
        j->wj.done = t_done;
        au_wp_submit(g_wp, (unsigned)i % 3, i % NSH, &j->wj);
    }
    au_wp_shard_detach(g_wp, 2); /* no-op: never started */
    struct au_wp_stats ws;
    au_wp_get_stats(g_wp, &ws);
    CHECK_EQ(ws.submitted, 300);
    au_wp_close(g_wp);
    g_wp = NULL;
    CHECK_EQ(atomic_load(&g_null_done), 300);
    CHECK_EQ(check_exactly_once(1), 300);
    CHECK_EQ(atomic_load(&g_bad), 0);
}

/* ------------------------------------------------------------------ spill past a full queue, then detach */

enum { SPILL_N = AU_XQ_DEPTH + 4000 };
static struct tjob *g_spill;
static atomic_int g_spill_full;

static void spill_done(struct au_shard *s, struct au_wp_job *wj)
{
    struct tjob *j = (struct tjob *)(void *)wj;
    if (!s || s->id != 0 || !pthread_equal(pthread_self(), s->thread)) bad("spilled done off its shard", s ? s->id : -1, 0);
    else if (atomic_load(&g_detached[0])) bad("spilled done after detach", (int)j->id, 0);
    if (j->seq != g_next[0][0]) bad("spilled out of order", (int)j->seq, (int)g_next[0][0]);
    g_next[0][0] = j->seq + 1;
    if (atomic_fetch_add(&g_calls[j->id], 1) != 0) bad("spilled done twice", (int)j->id, 0);
}

static int spill_tick(struct au_shard *s, uint64_t now)
{
    if (s->id != 0 || atomic_load(&g_go) != 1) return 2;
    atomic_store(&g_go, 0);
    for (uint32_t i = 0; i < SPILL_N; i++) {
        struct tjob *j = &g_spill[i];
        j->id = i;
        j->seq = i;
        j->wj.done = spill_done;
        au_wp_submit(g_wp, 0, 0, &j->wj);
    }
    /* The loop does not drain while we are here: the worker fills our queue from it (one message per
     * one-job round) and spills the rest into its overflow list. */
    uint64_t end = au_now_ms() + 20000;
    while (atomic_load(&g_ran) < SPILL_N && au_now_ms() < end) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    struct au_xq *q = &s->inq[s->nshards + EXT_BASE];
    size_t depth = atomic_load(&q->tail) - atomic_load(&q->head);
    if (depth == AU_XQ_DEPTH) atomic_store(&g_spill_full, 1);
    atomic_store(&g_go, 2); /* main stops the loop now */
    while (!atomic_load(&s->stop) && au_now_ms() < end) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    return 0;
}

static void spill_fini(struct au_shard *s)
{
    au_wp_shard_detach(g_wp, s->id);
    atomic_store(&g_detached[s->id], 1);
    if (au_wp_outstanding(g_wp, s->id) != 0) bad("outstanding after detach", s->id, 0);
    if (!pool_queues_empty(s)) bad("message for a detached shard", s->id, 0);
}

static const struct au_loop_hooks spill_hooks = { .shard_tick = spill_tick, .shard_fini = spill_fini };

TEST(completions_spill_then_detach)
{
    reset();
    g_spill = calloc(SPILL_N, sizeof *g_spill);
    atomic_int *calls = calloc(SPILL_N, sizeof *calls);
    CHECK(g_spill && calls);
    if (!g_spill || !calls) return;
    atomic_int *saved = g_calls;
    g_calls = calls;
    round_max = 1; /* one completion message per job */
    g_wp = new_pool(1);
    struct au_shard **shards = start_loop(2, &spill_hooks);
    if (!shards) return;
    au_wp_start(g_wp, shards, 2, EXT_BASE);
    atomic_store(&g_go, 1);
    for (int i = 0; i < 30000 && atomic_load(&g_go) != 2; i++) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    au_loop_stop(shards, 2);
    long once = 0;
    for (int i = 0; i < SPILL_N; i++) once += atomic_load(&calls[i]) == 1;
    CHECK_EQ(once, SPILL_N);
    CHECK_EQ(g_next[0][0], SPILL_N);
    CHECK(atomic_load(&g_spill_full)); /* the overflow path was taken */
    struct au_wp_stats ws;
    au_wp_get_stats(g_wp, &ws);
    CHECK_EQ(ws.completed, SPILL_N);
    au_wp_close(g_wp);
    g_wp = NULL;
    round_max = ROUND_MAX;
    g_calls = saved;
    free(calls);
    free(g_spill);
    printf("  %d completions for one shard through a %d-deep queue (spilled, retried), detached: each once, in order\n",
           SPILL_N, AU_XQ_DEPTH);
    CHECK_EQ(atomic_load(&g_bad), 0);
}

int main(void)
{
    au_log_set_level(AU_LOG_WARN);
    g_jobs = calloc((size_t)NSH * PER_SHARD, sizeof *g_jobs);
    g_calls = calloc((size_t)NSH * PER_SHARD, sizeof *g_calls);
    if (!g_jobs || !g_calls) return 1;
    RUN(detach_with_jobs_in_flight);
    RUN(submitted_before_start_and_closed_unstarted);
    RUN(completions_spill_then_detach);
    free(g_jobs);
    free(g_calls);
    TEST_MAIN_END();
}
