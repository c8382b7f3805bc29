/* timer.c - hierarchical timer wheel; see timer.h.
 *
 * Placement: a timer's tick is k = ceil(deadline / tick_ms), at least w->cur. With delta = k - cur, level
 * l is the one with 2^(8l) <= delta < 2^(8(l+1)) (level 0 for delta < 256), slot (k >> 8l) & 255. A level-l
 * slot is processed at the first tick of its 2^(8l)-tick period, which is <= k: its timers are placed again
 * (into a lower level, or fired when the level-0 slot comes due). Ticks with nothing to do are skipped. */
#include "core/timer.h"
#include "core/common.h"

#include <string.h>

#define SLOT_MASK ((uint64_t)AU_TIMER_SLOTS - 1)
#define SPAN_TICKS ((uint64_t)1 << (AU_TIMER_SLOT_BITS * AU_TIMER_LEVELS))

_Static_assert(AU_TIMER_SLOT_BITS * AU_TIMER_LEVELS < 64, "wheel span must fit in 64-bit ticks");

void au_timer_wheel_init(struct au_timer_wheel *w, uint32_t tick_ms, uint64_t now_ms)
{
    AU_ASSERT(tick_ms >= 1 && tick_ms <= AU_TIMER_MAX_TICK_MS);
    memset(w, 0, sizeof *w);
    w->tick_ms = tick_ms;
    w->now_ms = now_ms;
    w->cur = now_ms / tick_ms + 1; /* the tick containing now_ms counts as processed */
}

static inline void list_push(struct au_timer **head, struct au_timer *t)
{
    t->next = *head;
    if (t->next) t->next->pprev = &t->next;
    *head = t;
    t->pprev = head;
}

static inline void list_unlink(struct au_timer *t)
{
    *t->pprev = t->next;
    if (t->next) t->next->pprev = t->pprev;
    t->next = NULL;
    t->pprev = NULL;
}

static inline uint64_t deadline_tick(const struct au_timer_wheel *w, uint64_t deadline)
{
    return deadline / w->tick_ms + (deadline % w->tick_ms != 0);
}

/* Links an unlinked timer into the slot for its deadline. */
static void place(struct au_timer_wheel *w, struct au_timer *t)
{
    uint64_t k = deadline_tick(w, t->deadline);
    if (k < w->cur) k = w->cur;
    uint64_t delta = k - w->cur;
    if (delta >= SPAN_TICKS) { /* beyond the span: park at its far edge, re-placed when reached */
        delta = SPAN_TICKS - 1;
        k = w->cur + delta;
    }
    unsigned level = delta < AU_TIMER_SLOTS ? 0 : (unsigned)(63 - __builtin_clzll(delta)) / AU_TIMER_SLOT_BITS;
    AU_ASSERT(level < AU_TIMER_LEVELS);
    list_push(&w->slots[level][(k >> (AU_TIMER_SLOT_BITS * level)) & SLOT_MASK], t);
}

void au_timer_arm(struct au_timer_wheel *w, struct au_timer *t, uint64_t deadline_ms)
{
    AU_ASSERT(t->cb != NULL);
    if (au_timer_armed(t)) {
        if (deadline_ms >= t->deadline) { /* lazy: its slot comes due no later than the new deadline */
            t->deadline = deadline_ms;
            return;
        }
        list_unlink(t);
        t->deadline = deadline_ms;
        place(w, t);
        return;
    }
    t->deadline = deadline_ms;
    place(w, t);
    w->count++;
}

void au_timer_arm_in(struct au_timer_wheel *w, struct au_timer *t, uint64_t delay_ms)
{
    uint64_t d = w->now_ms + delay_ms;
    if (d < w->now_ms) d = UINT64_MAX;
    au_timer_arm(w, t, d);
}

void au_timer_cancel(struct au_timer_wheel *w, struct au_timer *t)
{
    if (!au_timer_armed(t)) return;
    list_unlink(t);
    AU_ASSERT(w->count > 0);
    w->count--;
}

/* First tick >= w->cur that has work (a non-empty level-0 slot, or the start of a period whose higher-level
 * slot is non-empty), or UINT64_MAX. Stops looking past `limit`. */
static uint64_t next_work_tick(const struct au_timer_wheel *w, uint64_t limit)
{
    uint64_t best = UINT64_MAX;
    for (uint64_t i = 0; i < AU_TIMER_SLOTS; i++) {
        uint64_t tick = w->cur + i;
        if (tick > limit) break;
        if (w->slots[0][tick & SLOT_MASK]) { best = tick; break; }
    }
    for (unsigned l = 1; l < AU_TIMER_LEVELS; l++) {
        unsigned shift = AU_TIMER_SLOT_BITS * l;
        uint64_t period = (uint64_t)1 << shift;
        uint64_t first = ((w->cur + period - 1) >> shift) << shift; /* first period start >= cur */
        for (uint64_t i = 0; i < AU_TIMER_SLOTS; i++) {
            uint64_t tick = first + (i << shift);
            if (tick >= best || tick > limit) break;
            if (w->slots[l][((first >> shift) + i) & SLOT_MASK]) { best = tick; break; }
        }
    }
    return best;
}

/* Processes tick w->cur: moves due higher-level slots down, then appends the level-0 slot to *tail. */
static struct au_timer **collect_tick(struct au_timer_wheel *w, struct au_timer **tail)
{
    uint64_t tick = w->cur;
    for (unsigned l = AU_TIMER_LEVELS - 1; l >= 1; l--) {
        unsigned shift = AU_TIMER_SLOT_BITS * l;
        if (tick & (((uint64_t)1 << shift) - 1)) continue;
        struct au_timer **slot = &w->slots[l][(tick >> shift) & SLOT_MASK];
        struct au_timer *t = *slot;
        *slot = NULL;
        while (t) {
            struct au_timer *n = t->next;
            t->pprev = NULL;
            place(w, t); /* lands in a lower level, or a later period of a level >= 1 when parked */
            w->requeued++;
            t = n;
        }
    }
    struct au_timer **slot = &w->slots[0][tick & SLOT_MASK];
    struct au_timer *t = *slot;
    if (!t) return tail;
    *slot = NULL;
    *tail = t;
    t->pprev = tail;
    while (t->next) t = t->next;
    return &t->next;
}

size_t au_timer_advance(struct au_timer_wheel *w, uint64_t now_ms)
{
    AU_ASSERT(w->expired == NULL); /* not reentrant */
    if (now_ms < w->now_ms) now_ms = w->now_ms;
    w->now_ms = now_ms;
    uint64_t target = now_ms / w->tick_ms;
    if (target < w->cur) return 0;

    struct au_timer **tail = &w->expired;
    while (w->count && w->cur <= target) {
        uint64_t tick = next_work_tick(w, target);
        if (tick > target) break;
        w->cur = tick;
        tail = collect_tick(w, tail);
        w->cur = tick + 1;
    }
    w->cur = target + 1;

    size_t n = 0;
    struct au_timer *t;
    while ((t = w->expired) != NULL) {
        list_unlink(t);
        if (t->deadline > now_ms) { /* re-armed later since it was placed */
            place(w, t);
            w->requeued++;
            continue;
        }
        w->count--;
        w->fired++;
        n++;
        t->cb(t);
    }
    return n;
}

uint64_t au_timer_next_ms(const struct au_timer_wheel *w, uint64_t now_ms, uint64_t max_ms)
{
    if (w->count == 0) return max_ms;
    uint64_t limit_ms = now_ms + max_ms < now_ms ? UINT64_MAX : now_ms + max_ms;
    uint64_t tick = next_work_tick(w, limit_ms / w->tick_ms + 1);
    if (tick == UINT64_MAX) return max_ms;
    if (tick > UINT64_MAX / w->tick_ms) return max_ms;
    uint64_t at = tick * w->tick_ms;
    if (at <= now_ms) return 0;
    return AU_MIN(at - now_ms, max_ms);
}
