/* throttle.h - failed-login throttling: per shard, no locks, bounded memory.
 *
 * A throttle is a fixed-size set-associative table (THROTTLE_WAYS slots per set, sets a power of
 * two) of records keyed by a 64-bit keyed hash (XXH3 with a per-table random seed, so a peer cannot
 * aim many keys at one set). A record counts failures; after policy.free_fails failures, each further
 * failure blocks the key for base_delay_ms << (failures beyond the free ones), capped at max_delay_ms.
 * A record whose last failure is older than window_ms is forgotten; a success (throttle_ok) clears
 * it. When a set is full the least recently failed record is overwritten (counted in `evictions`).
 *
 * Guesses in flight: throttle_begin admits a guess and counts it as pending until throttle_end reports
 * its result. A key with guesses pending is admitted again only while its failures plus its pending
 * guesses stay within the free ones (so a burst of concurrent guesses gets exactly the budget a
 * sequence of guesses would), and never beyond policy.pending_max at once. A record with guesses
 * pending is never forgotten nor evicted; when every record of a set has guesses pending, a new key
 * of that set waits (THROTTLE_PENDING_WAIT_MS).
 *
 * One table is owned by one shard thread; time is the caller's monotonic milliseconds (s->now_ms).
 * login_throttle pairs a table keyed by app+username with one keyed by the peer's IPv4 address. */
#ifndef AU_IM_THROTTLE_H
#define AU_IM_THROTTLE_H

#include "core/common.h"
#include "core/limits.h"

#include <stddef.h>
#include <stdint.h>

#define THROTTLE_WAYS            4       /* slots per set */
#define THROTTLE_SLOTS_MIN       THROTTLE_WAYS
#define THROTTLE_SLOTS_MAX       (1u << 24)
#define THROTTLE_SHIFT_MAX       30      /* delay doubling stops here (the cap applies long before) */
#define THROTTLE_PENDING_WAIT_MS 1000u   /* wait answered while a key's budget is held by guesses in flight */

/* Defaults of login_throttle (per shard). */
#define LOGIN_USER_SLOTS         16384u  /* app+username records: 16384 * 40 B = 640 KiB per shard */
#define LOGIN_USER_FREE_FAILS    5u      /* failures before the first delay */
#define LOGIN_IP_SLOTS           4096u   /* IPv4 records: 160 KiB per shard */
#define LOGIN_IP_FREE_FAILS      50u     /* higher: many users may share one NAT address */
#define LOGIN_BASE_DELAY_MS      1000u   /* first delay; doubles with each further failure */
#define LOGIN_MAX_DELAY_MS       300000u /* 5 min cap */
#define LOGIN_WINDOW_MS          900000u /* 15 min without a failure forgets the record */
#define LOGIN_USER_PENDING_MAX   AU_LOGIN_USER_PENDING_MAX
#define LOGIN_IP_PENDING_MAX     AU_LOGIN_IP_PENDING_MAX

struct throttle_policy {
    uint32_t free_fails;     /* failures allowed before delays start (>= 1) */
    uint32_t base_delay_ms;  /* first delay (>= 1) */
    uint32_t max_delay_ms;   /* cap (>= base_delay_ms) */
    uint32_t window_ms;      /* a record is forgotten this long after its last failure (>= max_delay_ms) */
    uint32_t pending_max;    /* guesses of one key in flight at once (>= 1; 0 is taken as 1) */
};

struct throttle_slot {
    uint64_t tag;            /* keyed hash | 1; 0 = empty */
    uint64_t last_fail_ms;
    uint64_t blocked_until_ms;
    uint32_t fails;
    uint32_t pending;        /* admitted by throttle_begin, result not yet reported */
};

struct throttle {
    struct throttle_slot *slots;
    uint32_t set_mask;       /* sets - 1 */
    uint64_t seed;
    struct throttle_policy pol;
    uint64_t evictions;      /* records overwritten while still remembered */
};

/* nslots: a power of two in THROTTLE_SLOTS_MIN..THROTTLE_SLOTS_MAX; allocates once. 0 or -1. */
int throttle_init(struct throttle *t, uint32_t nslots, const struct throttle_policy *pol);
void throttle_free(struct throttle *t);
/* 0 = the key may try now; otherwise the milliseconds it must wait. */
uint32_t throttle_check(const struct throttle *t, const void *key, size_t len, uint64_t now_ms);
/* throttle_check, and when it is 0 the guess is admitted: pending until throttle_end. */
uint32_t throttle_begin(struct throttle *t, const void *key, size_t len, uint64_t now_ms);
/* The result of an admitted guess: failed = 1 records a failure (throttle_fail), 0 only releases it
 * (a success: the caller decides whether to throttle_ok; or a check that never ran). */
void throttle_end(struct throttle *t, const void *key, size_t len, uint64_t now_ms, bool failed);
/* Guesses of the key in flight (tests, metrics). */
uint32_t throttle_pending(const struct throttle *t, const void *key, size_t len);
/* Record a failure; returns the wait it now imposes (0 while within free_fails). */
uint32_t throttle_fail(struct throttle *t, const void *key, size_t len, uint64_t now_ms);
/* Record a success: the key's record is cleared. */
void throttle_ok(struct throttle *t, const void *key, size_t len);
/* Failures currently remembered for the key (tests, metrics). */
uint32_t throttle_fails(const struct throttle *t, const void *key, size_t len, uint64_t now_ms);

/* ---- login pair ---- */
struct login_throttle {
    struct throttle user;    /* key: "<appkey>:<username>" (the CONNECT username as is) */
    struct throttle ip;      /* key: peer IPv4 (network order u32); skipped when 0 */
};
int login_throttle_init(struct login_throttle *lt);
void login_throttle_free(struct login_throttle *lt);
/* max of both tables' waits */
uint32_t login_throttle_check(const struct login_throttle *lt, const void *key, size_t len, uint32_t ip4,
                              uint64_t now_ms);
/* Admit a guess on both tables at once (0), or the wait (nothing recorded). *held (optional): the wait is
 * only for checks of the same account or address in flight, whose results may admit it (the caller may
 * queue the login until then instead of refusing it). */
uint32_t login_throttle_begin(struct login_throttle *lt, const void *key, size_t len, uint32_t ip4, uint64_t now_ms,
                              bool *held);
/* Result of an admitted guess: LOGIN_OK (releases it, clears the user record), LOGIN_FAILED (a failure on
 * both tables) or LOGIN_CANCELED (released: the check never ran). */
enum { LOGIN_OK = 1, LOGIN_FAILED = 0, LOGIN_CANCELED = -1 };
void login_throttle_end(struct login_throttle *lt, const void *key, size_t len, uint32_t ip4, uint64_t now_ms,
                        int result);
void login_throttle_fail(struct login_throttle *lt, const void *key, size_t len, uint32_t ip4, uint64_t now_ms);
/* Clears the user record only: a success on one account must not wash an address's failures on others. */
void login_throttle_ok(struct login_throttle *lt, const void *key, size_t len, uint32_t ip4);

#endif
