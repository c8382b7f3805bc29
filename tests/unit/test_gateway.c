/* test_gateway.c - the composition root's pieces: the lifecycle runners (init/stop/tick in order, fini in
 * reverse), the gateway's own lifecycle order, external-producer ids handed out by the loop, /metrics providers
 * in order, and the shard's timer wheel advanced by the loop (no service tick needed) with typed slots. */
#include "gateway/gateway.h"
#include "gateway/metrics.h"
#include "gateway/mqtt/broker.h"
#include "gateway/im/im.h"
#include "gateway/im/imconn.h"
#include "gateway/im/rest_media.h"
#include "core/common.h"
#include "test.h"

#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ runners */

static char g_trace[64];
static size_t g_ntrace;
static void mark(char c)
{
    if (g_ntrace + 1 < sizeof g_trace) g_trace[g_ntrace++] = c;
    g_trace[g_ntrace] = '\0';
}
static void init_a(struct au_shard *s) { (void)s; mark('A'); }
static void init_b(struct au_shard *s) { (void)s; mark('B'); }
static void init_c(struct au_shard *s) { (void)s; mark('C'); }
static void fini_a(struct au_shard *s) { (void)s; mark('a'); }
static void fini_c(struct au_shard *s) { (void)s; mark('c'); }
static void fini_d(struct au_shard *s) { (void)s; mark('d'); }
static void stop_b(struct au_shard *s) { (void)s; mark('s'); }
static void stop_d(struct au_shard *s) { (void)s; mark('t'); }
static int tick_none(struct au_shard *s, uint64_t now) { (void)s; (void)now; mark('1'); return -1; }
static int tick_40(struct au_shard *s, uint64_t now) { (void)s; (void)now; mark('2'); return 40; }
static int tick_7(struct au_shard *s, uint64_t now) { (void)s; (void)now; mark('3'); return 7; }

TEST(runners_order)
{
    const struct gw_step t[] = {
        { "a", init_a, NULL, tick_none, fini_a },
        { "b", init_b, stop_b, tick_40, NULL },
        { "c", init_c, NULL, NULL, fini_c },
        { "d", NULL, stop_d, tick_7, fini_d },
    };
    struct au_shard s;
    memset(&s, 0, sizeof s);
    g_ntrace = 0;
    gw_steps_init(t, AU_ARRAY_LEN(t), &s);
    CHECK(strcmp(g_trace, "ABC") == 0);
    g_ntrace = 0;
    gw_steps_stop(t, AU_ARRAY_LEN(t), &s);
    CHECK(strcmp(g_trace, "st") == 0);
    g_ntrace = 0;
    CHECK_EQ(gw_steps_tick(t, AU_ARRAY_LEN(t), &s, 0), 7); /* the smallest answer; every tick runs */
    CHECK(strcmp(g_trace, "123") == 0);
    CHECK_EQ(gw_steps_tick(t, 1, &s, 0), -1);               /* nobody bounds the sleep */
    g_ntrace = 0;
    gw_steps_fini(t, AU_ARRAY_LEN(t), &s);
    CHECK(strcmp(g_trace, "dca") == 0);                     /* reverse order */
    g_ntrace = 0;
    gw_steps_fini(t, 0, &s);
    CHECK_EQ(g_ntrace, 0);
}

static size_t step_at(const struct gw_step *t, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].name, name) == 0) return i;
    return SIZE_MAX;
}

/* The ordering constraints of a shard's services, checked on the gateway's own table. */
TEST(gateway_lifecycle_order)
{
    size_t n = 0;
    const struct gw_step *t = gw_lifecycle(&n);
    size_t broker = step_at(t, n, "broker"), im = step_at(t, n, "im"), sessions = step_at(t, n, "sessions");
    size_t imconn = step_at(t, n, "imconn"), persist = step_at(t, n, "persist"), media = step_at(t, n, "media");
    CHECK(broker < n && im < n && sessions < n && imconn < n && persist < n && media < n);
    if (broker >= n || im >= n || sessions >= n || imconn >= n || persist >= n || media >= n) return;
    CHECK(t[broker].init == broker_shard_init && t[broker].fini == broker_shard_fini);
    CHECK(t[broker].stop == broker_shard_stop);
    CHECK(t[im].init == im_shard_init && t[im].fini == im_shard_fini);
    CHECK(t[sessions].init == broker_shard_load && t[sessions].fini == broker_shard_drop_sessions);
    CHECK(t[imconn].fini == imconn_shard_detach);
    CHECK(t[persist].tick == broker_shard_tick && t[persist].fini == broker_shard_store_detach);
    CHECK(t[media].fini == rest_media_shard_detach);
    /* init: the broker's state first, the IM directory before restored IM sessions refer to it */
    CHECK(broker < im && im < sessions);
    /* fini runs bottom-up: media before the store detach (a finished upload still writes its record), the store
     * detach before sessions are freed (its completions refer to them), IM state after the sessions, the
     * broker's state last */
    CHECK(media > persist && persist > sessions && imconn > sessions && sessions > im && im > broker);
    int ticks = 0, stops = 0;
    for (size_t i = 0; i < n; i++) {
        ticks += t[i].tick != NULL;
        stops += t[i].stop != NULL;
    }
    CHECK_EQ(ticks, 1);
    CHECK_EQ(stops, 1);
}

/* ------------------------------------------------------------------ external-producer ids */

TEST(ext_ids)
{
    struct au_loop_opts o;
    memset(&o, 0, sizeof o);
    CHECK_EQ(au_loop_ext_alloc(&o, 3), 0);
    CHECK_EQ(au_loop_ext_alloc(&o, 0), 3);   /* a pool without threads takes none */
    CHECK_EQ(au_loop_ext_alloc(&o, 2), 3);
    CHECK_EQ(o.n_ext, 5);
    CHECK_EQ(au_loop_ext_alloc(&o, AU_MAX_EXT - 5 + 1), -1);
    CHECK_EQ(o.n_ext, 5);                    /* a refusal hands out nothing */
    CHECK_EQ(au_loop_ext_alloc(&o, -1), -1);
    CHECK_EQ(au_loop_ext_alloc(&o, AU_MAX_EXT - 5), 5);
    CHECK_EQ(o.n_ext, AU_MAX_EXT);
    CHECK_EQ(au_loop_ext_alloc(&o, 1), -1);
    CHECK_EQ(au_loop_ext_alloc(&o, 0), AU_MAX_EXT);
}

/* ------------------------------------------------------------------ metrics providers */

static void prov_one(struct gw_metrics *m, struct au_shard *const *shards, int n)
{
    (void)shards;
    gw_metrics_printf(m, "one %d\n", n);
}
static void prov_big(struct gw_metrics *m, struct au_shard *const *shards, int n)
{
    (void)shards;
    (void)n;
    for (int i = 0; i < 1000; i++) gw_metrics_printf(m, "big_%04d 1234567890\n", i); /* grows the buffer */
}
static void prov_two(struct gw_metrics *m, struct au_shard *const *shards, int n)
{
    (void)shards;
    (void)n;
    gw_metrics_printf(m, "two\n");
}

TEST(metrics_providers_in_order)
{
    struct gw_metrics_providers p;
    memset(&p, 0, sizeof p);
    gw_metrics_register(&p, prov_one);
    gw_metrics_register(&p, prov_big);
    gw_metrics_register(&p, prov_two);
    struct gw_metrics m = { malloc(16), 0, 16 };
    gw_metrics_render(&p, &m, NULL, 3);
    CHECK(m.len > 20000 && m.len < m.cap);
    CHECK(strncmp(m.p, "one 3\nbig_0000 1234567890\n", 26) == 0);
    CHECK(strstr(m.p, "big_0999 1234567890\ntwo\n") != NULL);
    CHECK(strcmp(m.p + m.len - 4, "two\n") == 0);
    free(m.p);
}

/* ------------------------------------------------------------------ the shard's timers and slots */

static const struct gw_services g_svc_marker; /* only its address is compared */
static atomic_int g_fired, g_slot_ok;
static struct au_timer g_t1, g_t2;
static uint64_t g_armed_at;

static void t1_fire(struct au_timer *t)
{
    (void)t;
    atomic_fetch_add(&g_fired, 1);
}
static void t2_fire(struct au_timer *t)
{
    (void)t;
    atomic_fetch_add(&g_fired, 100);
}
static void tm_init(struct au_shard *s)
{
    atomic_store(&g_slot_ok, s->slot.services == &g_svc_marker && s->slot.broker == NULL && s->slot.im == NULL);
    au_timer_init(&g_t1, t1_fire);
    au_timer_init(&g_t2, t2_fire);
    g_armed_at = s->now_ms;
    au_timer_arm(&s->timers, &g_t1, s->now_ms + 50);
    au_timer_arm(&s->timers, &g_t2, s->now_ms + 60000); /* cancelled at fini: never fires */
}
static void tm_fini(struct au_shard *s) { au_timer_cancel(&s->timers, &g_t2); }
/* no shard_tick: the loop itself advances the wheel and sleeps no longer than its next deadline */
static const struct au_loop_hooks g_tm_hooks = { .shard_init = tm_init, .shard_fini = tm_fini };

TEST(shard_timer_wheel)
{
    struct au_loop_opts lo = { .nshards = 1, .hooks = &g_tm_hooks, .drain_ms = 500, .services = &g_svc_marker };
    struct au_shard **shards = NULL;
    int r = au_loop_start(&lo, &shards);
    CHECK_EQ(r, 0);
    if (r != 0) return;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* the loop's idle wait is 1000 ms: a 50 ms timer firing well before that proves the wheel bounds the sleep */
    for (int i = 0; i < 400 && atomic_load(&g_fired) == 0; i++) usleep(2000);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    CHECK_EQ(atomic_load(&g_fired), 1);
    CHECK(ms < 700);
    CHECK_EQ(atomic_load(&g_slot_ok), 1);
    au_loop_stop(shards, 1);
    CHECK_EQ(atomic_load(&g_fired), 1);
}

int main(void)
{
    RUN(runners_order);
    RUN(gateway_lifecycle_order);
    RUN(ext_ids);
    RUN(metrics_providers_in_order);
    RUN(shard_timer_wheel);
    TEST_MAIN_END();
}
