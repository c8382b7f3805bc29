/* test_timer.c - core/timer: ordering, never early / never late, cancel and re-arm inside callbacks,
 * lazy re-arm, many timers, big time jumps and wheel wrap-around, next_ms. */
#include "core/timer.h"
#include "core/common.h"
#include "test.h"

#include <stdint.h>

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

/* An owner object embedding its timer, as a connection would. */
struct obj {
    int id;
    int fired;
    uint64_t fired_at;
    uint64_t want;          /* reference deadline */
    uint64_t eff_tick;      /* reference: latest tick by which it must have fired */
    int armed;              /* reference armed state */
    struct au_timer t;
};

static uint64_t g_now;
static struct au_timer_wheel *g_w;
static int g_bad;

static uint64_t ceil_div(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }

/* ---- ordering ---- */
static int order_log[2000], order_n;
static void order_cb(struct au_timer *t)
{
    struct obj *o = AU_CONTAINER_OF(t, struct obj, t);
    o->fired++;
    o->fired_at = g_now;
    order_log[order_n++] = o->id;
    if (g_now < o->want) g_bad++; /* never early */
}

TEST(ordering_and_precision)
{
    static struct au_timer_wheel w;
    static struct obj o[2000];
    const uint64_t t0 = 1000000;
    au_timer_wheel_init(&w, 16, t0);
    g_bad = 0;
    order_n = 0;
    for (int i = 0; i < 2000; i++) {
        o[i] = (struct obj){ .id = i, .want = t0 + rnd() % 200000 };
        au_timer_init(&o[i].t, order_cb);
        au_timer_arm(&w, &o[i].t, o[i].want);
    }
    CHECK_EQ(w.count, 2000);
    uint64_t prev = t0;
    for (g_now = t0; order_n < 2000 && g_now < t0 + 300000; g_now += 1 + rnd() % 700) {
        au_timer_advance(&w, g_now);
        /* never late: everything whose tick has been reached fired in this call */
        for (int i = 0; i < 2000; i++)
            if (!o[i].fired && ceil_div(o[i].want, 16) * 16 <= g_now) g_bad++;
        prev = g_now;
    }
    (void)prev;
    CHECK_EQ(g_bad, 0);
    CHECK_EQ(order_n, 2000);
    CHECK_EQ(w.count, 0);
    CHECK_EQ(w.fired, 2000);
    /* fired in tick order */
    for (int i = 1; i < order_n; i++)
        if (ceil_div(o[order_log[i]].want, 16) < ceil_div(o[order_log[i - 1]].want, 16)) g_bad++;
    for (int i = 0; i < 2000; i++) if (o[i].fired != 1) g_bad++;
    CHECK_EQ(g_bad, 0);
}

/* ---- callbacks that cancel / re-arm ---- */
static struct obj cb_o[8];
static void cancel_others_cb(struct au_timer *t)
{
    struct obj *o = AU_CONTAINER_OF(t, struct obj, t);
    o->fired++;
    au_timer_cancel(g_w, t);              /* cancelling itself while firing: no-op */
    au_timer_cancel(g_w, &cb_o[1].t);     /* due in the same advance */
    au_timer_cancel(g_w, &cb_o[2].t);     /* due later */
    au_timer_arm(g_w, &cb_o[3].t, g_now + 5000); /* re-arm a timer due in the same advance to later */
}
static void count_cb(struct au_timer *t)
{
    struct obj *o = AU_CONTAINER_OF(t, struct obj, t);
    o->fired++;
    o->fired_at = g_now;
}
static void periodic_cb(struct au_timer *t)
{
    struct obj *o = AU_CONTAINER_OF(t, struct obj, t);
    o->fired++;
    o->fired_at = g_now;
    if (o->fired < 10) au_timer_arm(g_w, t, t->deadline + 100);
}
static void rearm_past_cb(struct au_timer *t)
{
    struct obj *o = AU_CONTAINER_OF(t, struct obj, t);
    o->fired++;
    if (o->fired < 3) au_timer_arm(g_w, t, 0); /* deadline in the past: next tick, not this advance */
}

TEST(callbacks_cancel_and_rearm)
{
    static struct au_timer_wheel w;
    g_w = &w;
    au_timer_wheel_init(&w, 10, 0);
    memset(cb_o, 0, sizeof cb_o);
    au_timer_init(&cb_o[0].t, cancel_others_cb);
    for (int i = 1; i < 8; i++) au_timer_init(&cb_o[i].t, count_cb);
    /* cb_o[0] and cb_o[1] and cb_o[3] in the same tick: whichever order, [0] fires and cancels [1] unless [1]
     * fired first; put [1] one tick later so the cancel always hits a pending-in-this-advance timer. */
    au_timer_arm(&w, &cb_o[0].t, 100);
    au_timer_arm(&w, &cb_o[1].t, 110);
    au_timer_arm(&w, &cb_o[2].t, 50000);
    au_timer_arm(&w, &cb_o[3].t, 120);
    CHECK_EQ(w.count, 4);
    g_now = 200;
    size_t n = au_timer_advance(&w, g_now);
    CHECK_EQ(n, 1);
    CHECK_EQ(cb_o[0].fired, 1);
    CHECK_EQ(cb_o[1].fired, 0);
    CHECK_EQ(cb_o[2].fired, 0);
    CHECK_EQ(cb_o[3].fired, 0);
    CHECK(!au_timer_armed(&cb_o[0].t));
    CHECK(!au_timer_armed(&cb_o[1].t));
    CHECK(!au_timer_armed(&cb_o[2].t));
    CHECK(au_timer_armed(&cb_o[3].t));
    CHECK_EQ(w.count, 1);
    g_now = 5199;
    CHECK_EQ(au_timer_advance(&w, g_now), 0);
    g_now = 5200;
    CHECK_EQ(au_timer_advance(&w, g_now), 1);
    CHECK_EQ(cb_o[3].fired, 1);
    g_now = 100000;
    CHECK_EQ(au_timer_advance(&w, g_now), 0); /* [1] and [2] stay cancelled */
    CHECK_EQ(w.count, 0);

    /* periodic self re-arm */
    au_timer_init(&cb_o[4].t, periodic_cb);
    au_timer_arm(&w, &cb_o[4].t, g_now + 100);
    uint64_t start = g_now;
    for (int i = 0; i < 2000; i++) { g_now += 7; au_timer_advance(&w, g_now); }
    CHECK_EQ(cb_o[4].fired, 10);
    CHECK(cb_o[4].fired_at >= start + 1000 && cb_o[4].fired_at < start + 1000 + 10 + 7);
    CHECK(!au_timer_armed(&cb_o[4].t));

    /* re-arming with a past deadline inside a callback fires once per advance, never loops */
    au_timer_init(&cb_o[5].t, rearm_past_cb);
    au_timer_arm(&w, &cb_o[5].t, g_now);
    g_now += 1000;
    CHECK_EQ(au_timer_advance(&w, g_now), 1);
    CHECK_EQ(cb_o[5].fired, 1);
    CHECK(au_timer_armed(&cb_o[5].t));
    CHECK_EQ(au_timer_next_ms(&w, g_now, 1000), 10 - g_now % 10);
    g_now += 10;
    CHECK_EQ(au_timer_advance(&w, g_now), 1);
    g_now += 10;
    CHECK_EQ(au_timer_advance(&w, g_now), 1);
    CHECK_EQ(cb_o[5].fired, 3);
    CHECK_EQ(w.count, 0);

    /* cancel from outside and double cancel */
    au_timer_arm(&w, &cb_o[6].t, g_now + 50);
    au_timer_cancel(&w, &cb_o[6].t);
    au_timer_cancel(&w, &cb_o[6].t);
    CHECK_EQ(w.count, 0);
    g_now += 100;
    CHECK_EQ(au_timer_advance(&w, g_now), 0);
    CHECK_EQ(cb_o[6].fired, 0);
}

TEST(lazy_rearm)
{
    static struct au_timer_wheel w;
    static struct obj o;
    g_w = &w;
    au_timer_wheel_init(&w, 16, 0);
    memset(&o, 0, sizeof o);
    au_timer_init(&o.t, count_cb);
    /* keep-alive pattern: armed for +60 s, refreshed every 100 ms for 10 minutes: nothing fires */
    uint64_t now = 0;
    au_timer_arm(&w, &o.t, now + 60000);
    struct au_timer *next0 = o.t.next;
    struct au_timer **pprev0 = o.t.pprev;
    for (int i = 0; i < 6000; i++) {
        now += 100;
        g_now = now;
        au_timer_advance(&w, now);
        CHECK_EQ(w.now_ms, now);
        au_timer_arm_in(&w, &o.t, 60000); /* relative to the last advance */
        if (i == 0) CHECK(o.t.pprev == pprev0 && o.t.next == next0); /* later deadline: not moved */
    }
    CHECK_EQ(o.fired, 0);
    CHECK(w.requeued > 0 && w.requeued < 200); /* moved only when its old slot came due */
    /* silence: fires ~60 s after the last refresh */
    uint64_t last = now;
    while (!o.fired && now < last + 70000) { now += 16; g_now = now; au_timer_advance(&w, now); }
    CHECK_EQ(o.fired, 1);
    CHECK(o.fired_at >= last + 60000 && o.fired_at < last + 60000 + 32);

    /* shortening moves the timer */
    au_timer_arm(&w, &o.t, now + 50000);
    au_timer_arm(&w, &o.t, now + 100);
    CHECK_EQ(o.t.deadline, now + 100);
    CHECK_EQ(w.count, 1);
    g_now = now + 99;
    CHECK_EQ(au_timer_advance(&w, g_now), 0);
    g_now = now + 112;
    CHECK_EQ(au_timer_advance(&w, g_now), 1);
    CHECK_EQ(o.fired, 2);
}

TEST(next_ms)
{
    static struct au_timer_wheel w;
    static struct obj o[4];
    au_timer_wheel_init(&w, 16, 1600);
    CHECK_EQ(au_timer_next_ms(&w, 1600, 1000), 1000); /* nothing armed */
    for (int i = 0; i < 4; i++) { memset(&o[i], 0, sizeof o[i]); au_timer_init(&o[i].t, count_cb); }
    au_timer_arm(&w, &o[0].t, 1600 + 160);
    CHECK_EQ(au_timer_next_ms(&w, 1600, 1000), 160);
    CHECK_EQ(au_timer_next_ms(&w, 1600, 100), 100); /* capped */
    CHECK_EQ(au_timer_next_ms(&w, 1700, 1000), 60);
    CHECK_EQ(au_timer_next_ms(&w, 5000, 1000), 0); /* overdue */
    au_timer_cancel(&w, &o[0].t);
    /* far timer in a coarse level: next_ms may be early, never late */
    au_timer_arm(&w, &o[1].t, 1600 + 3600000);
    uint64_t d = au_timer_next_ms(&w, 1600, UINT64_MAX);
    CHECK(d > 0 && d <= 3600000);
    /* sleeping exactly as told repeatedly reaches the deadline without firing early or late */
    uint64_t now = 1600;
    int iters = 0;
    g_now = now;
    while (!o[1].fired && iters < 10000) {
        now += au_timer_next_ms(&w, now, 60000);
        g_now = now;
        au_timer_advance(&w, now);
        iters++;
    }
    CHECK_EQ(o[1].fired, 1);
    CHECK(now >= 1600 + 3600000 && now < 1600 + 3600000 + 16);
    CHECK(iters < 100);
}

/* ---- randomized model test: arm / re-arm / cancel from outside and inside callbacks, random steps
 * including huge jumps, checked for never-early and never-late ---- */
#define NM 3000
static struct obj m[NM];
static uint64_t g_target;
static int g_quiet; /* callbacks have no side effects (final drain) */

static void model_cb(struct au_timer *t)
{
    struct obj *o = AU_CONTAINER_OF(t, struct obj, t);
    if (!o->armed) g_bad++;             /* fired while cancelled */
    if (o->want > g_now) g_bad++;       /* early */
    o->armed = 0;
    o->fired++;
    /* side effects on other timers */
    if (g_quiet) return;
    uint64_t r = rnd() % 8;
    struct obj *x = &m[rnd() % NM];
    if (r == 0) { au_timer_cancel(g_w, &x->t); x->armed = 0; }
    else if (r == 1 && x != o) {
        /* re-arm from a callback: must fire by max(tick(deadline), next tick) */
        uint64_t d = g_now + rnd() % 100000;
        int lazy = x->armed && d >= x->want;
        au_timer_arm(g_w, &x->t, d);
        uint64_t k = ceil_div(d, g_w->tick_ms);
        x->eff_tick = lazy ? AU_MAX(k, x->eff_tick) : AU_MAX(k, g_target + 1);
        x->want = d;
        x->armed = 1;
    }
}

static void model_arm(struct au_timer_wheel *w, struct obj *x, uint64_t d)
{
    int lazy = x->armed && d >= x->want;
    au_timer_arm(w, &x->t, d);
    uint64_t k = ceil_div(d, w->tick_ms);
    x->eff_tick = lazy ? AU_MAX(k, x->eff_tick) : AU_MAX(k, w->cur);
    x->want = d;
    x->armed = 1;
}

static void model_run(uint32_t tick, uint64_t start, uint64_t max_delay, int big_jumps)
{
    static struct au_timer_wheel w;
    g_w = &w;
    g_bad = 0;
    g_quiet = 0;
    au_timer_wheel_init(&w, tick, start);
    for (int i = 0; i < NM; i++) {
        m[i] = (struct obj){ .id = i };
        au_timer_init(&m[i].t, model_cb);
    }
    uint64_t now = start;
    for (int step = 0; step < 3000; step++) {
        /* outside operations */
        for (int j = 0; j < 20; j++) {
            struct obj *x = &m[rnd() % NM];
            uint64_t r = rnd() % 10;
            if (r < 6) model_arm(&w, x, now + rnd() % max_delay);
            else if (r < 7) model_arm(&w, x, now - AU_MIN(now, rnd() % 1000)); /* past */
            else if (r < 9 && x->armed) model_arm(&w, x, x->want + rnd() % 5000); /* extend: lazy */
            else { au_timer_cancel(&w, &x->t); x->armed = 0; }
        }
        size_t armed = 0;
        for (int i = 0; i < NM; i++) armed += (size_t)m[i].armed;
        if (armed != w.count) g_bad++;
        uint64_t sleep = au_timer_next_ms(&w, now, 1u << 30);
        /* no armed timer may be due before now + sleep */
        for (int i = 0; i < NM; i++)
            if (m[i].armed && m[i].eff_tick * tick < now + sleep && m[i].eff_tick * tick > now) g_bad++;
        uint64_t r = rnd() % 100;
        uint64_t adv = r < 50 ? rnd() % (tick * 3) : r < 90 ? rnd() % (tick * 300) : r < 98 ? sleep
                     : big_jumps ? rnd() % (max_delay * 4) : rnd() % 100000;
        now += adv;
        g_now = now;
        g_target = now / tick;
        au_timer_advance(&w, now);
        for (int i = 0; i < NM; i++)
            if (m[i].armed && m[i].eff_tick <= g_target) g_bad++; /* late */
        if (g_bad) break;
    }
    CHECK_EQ(g_bad, 0);
    size_t armed = 0;
    for (int i = 0; i < NM; i++) armed += (size_t)m[i].armed;
    CHECK_EQ(armed, w.count);
    /* drain: everything still armed eventually fires, each exactly once */
    uint64_t before = w.fired;
    g_quiet = 1;
    now += max_delay * 8 + ((uint64_t)1 << 33) * tick;
    g_now = now;
    g_target = now / tick;
    au_timer_advance(&w, now);
    CHECK_EQ(g_bad, 0);
    CHECK(w.fired - before >= armed);
    for (int i = 0; i < NM; i++) if (m[i].armed) g_bad++;
    CHECK_EQ(g_bad, 0);
}

TEST(model_small_delays) { model_run(16, 123456, 20000, 0); }
TEST(model_all_levels) { model_run(1, 7, 50000000, 1); }
/* start a few ticks before a level-3 boundary, deadlines beyond the wheel span (2^32 ticks) */
TEST(model_wraparound_far) { model_run(1, ((uint64_t)1 << 40) - 37, (uint64_t)1 << 34, 1); }

/* ---- many timers: keep-alive load ---- */
TEST(many_timers)
{
    enum { N = 300000 };
    static struct au_timer_wheel w;
    static struct obj o[N];
    g_w = &w;
    g_bad = 0;
    uint64_t now = 5000;
    au_timer_wheel_init(&w, 16, now);
    for (int i = 0; i < N; i++) {
        o[i] = (struct obj){ .id = i };
        au_timer_init(&o[i].t, count_cb);
        o[i].want = now + 30000 + rnd() % 90000;
        au_timer_arm(&w, &o[i].t, o[i].want);
    }
    CHECK_EQ(w.count, N);
    /* 2 minutes of traffic: every step, 5% of connections see a packet and push their deadline out */
    for (int s = 0; s < 120; s++) {
        for (int j = 0; j < N / 20; j++) {
            struct obj *x = &o[rnd() % N];
            if (x->fired) continue;
            x->want = now + 30000 + rnd() % 90000;
            if (x->want < x->t.deadline) x->want = x->t.deadline;
            au_timer_arm(&w, &x->t, x->want);
        }
        now += 1000;
        g_now = now;
        au_timer_advance(&w, now);
        for (int i = 0; i < N; i += 97)
            if (o[i].fired ? o[i].fired_at < o[i].want : ceil_div(o[i].want, 16) * 16 <= now) g_bad++;
    }
    CHECK_EQ(g_bad, 0);
    now += 200000;
    g_now = now;
    au_timer_advance(&w, now);
    CHECK_EQ(w.count, 0);
    for (int i = 0; i < N; i++)
        if (o[i].fired != 1 || o[i].fired_at < o[i].want) g_bad++;
    CHECK_EQ(g_bad, 0);
    CHECK_EQ(w.fired, N);
}

TEST(time_does_not_go_back)
{
    static struct au_timer_wheel w;
    static struct obj o;
    au_timer_wheel_init(&w, 16, 10000);
    memset(&o, 0, sizeof o);
    au_timer_init(&o.t, count_cb);
    au_timer_arm(&w, &o.t, 10100);
    CHECK_EQ(au_timer_advance(&w, 5000), 0); /* earlier than init: treated as 10000 */
    CHECK_EQ(w.now_ms, 10000);
    g_now = 10112;
    CHECK_EQ(au_timer_advance(&w, 10112), 1);
    /* a huge jump with nothing armed is O(1) */
    CHECK_EQ(au_timer_advance(&w, UINT64_MAX / 2), 0);
    CHECK_EQ(w.cur, UINT64_MAX / 2 / 16 + 1);
}

int main(void)
{
    RUN(ordering_and_precision);
    RUN(callbacks_cancel_and_rearm);
    RUN(lazy_rearm);
    RUN(next_ms);
    RUN(model_small_delays);
    RUN(model_all_levels);
    RUN(model_wraparound_far);
    RUN(many_timers);
    RUN(time_does_not_go_back);
    TEST_MAIN_END();
}
