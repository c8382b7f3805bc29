/* timer.h - hashed hierarchical timer wheel with lazy re-arm, for one event-loop thread.
 *
 * Timers are intrusive: embed a struct au_timer in the owning object (connection, session) and recover the
 * owner in the callback with AU_CONTAINER_OF. Nothing is allocated per timer; the wheel itself is a fixed
 * array (AU_TIMER_LEVELS x AU_TIMER_SLOTS list heads) meant to live inside the shard struct.
 *
 * Time is absolute milliseconds of a monotonic clock (au_now_ms()). The wheel advances in ticks of tick_ms
 * milliseconds: a timer fires in the first au_timer_advance() whose now_ms >= its deadline and whose tick has
 * reached the deadline's tick, i.e. never before its deadline and at most one tick (plus loop latency) after.
 * Timers due in the same tick fire in unspecified order; timers in earlier ticks fire first.
 *
 * Costs: arm, cancel and re-arm are O(1). Re-arming to a LATER deadline (keep-alive refresh on every packet)
 * is a single store: the timer stays where it is and is moved only when its old slot comes due ("lazy
 * re-arm"). Re-arming to an earlier deadline unlinks and relinks it. Far timers sit in coarse levels and are
 * moved down a level at most once per level; deadlines beyond the wheel's span (2^32 ticks) are parked at
 * the span and re-placed when reached.
 *
 * Callbacks run from au_timer_advance() with the timer already disarmed; a callback may arm, re-arm or
 * cancel any timer, including itself and timers due in the same advance (a cancelled timer does not fire).
 * A timer armed from a callback with a deadline <= now fires in the next tick, not in the running advance. */
#ifndef AU_TIMER_H
#define AU_TIMER_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define AU_TIMER_SLOT_BITS       8
#define AU_TIMER_SLOTS           (1u << AU_TIMER_SLOT_BITS)
#define AU_TIMER_LEVELS          4       /* span: 2^32 ticks (2.2 years at 16 ms) */
#define AU_TIMER_DEFAULT_TICK_MS 16u
#define AU_TIMER_MAX_TICK_MS     60000u

struct au_timer {
    struct au_timer *next;
    struct au_timer **pprev; /* NULL when not armed */
    uint64_t deadline;       /* absolute ms */
    void (*cb)(struct au_timer *t);
};

struct au_timer_wheel {
    uint64_t cur;            /* next tick to process; every tick < cur has been processed */
    uint64_t now_ms;         /* now_ms of the last init/advance (never decreases) */
    uint32_t tick_ms;
    size_t count;            /* armed timers */
    uint64_t fired;          /* callbacks run (statistics) */
    uint64_t requeued;       /* timers re-placed because their deadline moved later or was far */
    struct au_timer *expired;/* timers collected by the running advance, not yet fired */
    struct au_timer *slots[AU_TIMER_LEVELS][AU_TIMER_SLOTS];
};

/* tick_ms: 1..AU_TIMER_MAX_TICK_MS; now_ms: the current monotonic time. */
void au_timer_wheel_init(struct au_timer_wheel *w, uint32_t tick_ms, uint64_t now_ms);

static inline void au_timer_init(struct au_timer *t, void (*cb)(struct au_timer *t))
{
    t->next = NULL;
    t->pprev = NULL;
    t->deadline = 0;
    t->cb = cb;
}
static inline bool au_timer_armed(const struct au_timer *t) { return t->pprev != NULL; }

/* Arms t to fire at deadline_ms, or re-arms it if already armed. */
void au_timer_arm(struct au_timer_wheel *w, struct au_timer *t, uint64_t deadline_ms);
/* Same with deadline = the wheel's now_ms (time of the last advance) + delay_ms: no clock read. */
void au_timer_arm_in(struct au_timer_wheel *w, struct au_timer *t, uint64_t delay_ms);
/* Disarms t; a no-op when it is not armed. */
void au_timer_cancel(struct au_timer_wheel *w, struct au_timer *t);

/* Fires every timer due at now_ms; returns the number of callbacks run. now_ms smaller than a previous call's
 * is treated as that previous value. Must not be called from a timer callback. */
size_t au_timer_advance(struct au_timer_wheel *w, uint64_t now_ms);

/* Milliseconds the loop may sleep before the next au_timer_advance() is needed: 0 when something is due,
 * max_ms when nothing is armed, never more than max_ms. May be early (a coarse slot or a lazily re-armed
 * timer comes due, nothing fires), never late. */
uint64_t au_timer_next_ms(const struct au_timer_wheel *w, uint64_t now_ms, uint64_t max_ms);

#endif
