/* throttle.c - failed-login throttling tables (see throttle.h). */
#include "gateway/im/throttle.h"

#include <openssl/rand.h>
#include <xxhash.h>

#include <stdlib.h>
#include <string.h>

_Static_assert((THROTTLE_WAYS & (THROTTLE_WAYS - 1)) == 0, "ways must be a power of two");
_Static_assert(LOGIN_BASE_DELAY_MS <= LOGIN_MAX_DELAY_MS && LOGIN_MAX_DELAY_MS <= LOGIN_WINDOW_MS,
               "delay cap within the window: a waiting attacker stays remembered");
_Static_assert((LOGIN_USER_SLOTS & (LOGIN_USER_SLOTS - 1)) == 0 && (LOGIN_IP_SLOTS & (LOGIN_IP_SLOTS - 1)) == 0,
               "slot counts are powers of two");

int throttle_init(struct throttle *t, uint32_t nslots, const struct throttle_policy *pol)
{
    memset(t, 0, sizeof *t);
    if (nslots < THROTTLE_SLOTS_MIN || nslots > THROTTLE_SLOTS_MAX || (nslots & (nslots - 1))) return -1;
    if (pol->free_fails < 1 || pol->base_delay_ms < 1 || pol->max_delay_ms < pol->base_delay_ms ||
        pol->window_ms < pol->max_delay_ms)
        return -1;
    if (RAND_bytes((unsigned char *)&t->seed, sizeof t->seed) != 1) return -1;
    t->slots = calloc(nslots, sizeof *t->slots);
    if (!t->slots) return -1;
    t->set_mask = nslots / THROTTLE_WAYS - 1;
    t->pol = *pol;
    return 0;
}

void throttle_free(struct throttle *t)
{
    free(t->slots);
    t->slots = NULL;
}

static uint64_t tag_of(const struct throttle *t, const void *key, size_t len)
{
    return XXH3_64bits_withSeed(key, len, t->seed) | 1;
}

static struct throttle_slot *set_of(const struct throttle *t, uint64_t tag)
{
    return &t->slots[(size_t)((tag >> 32) & t->set_mask) * THROTTLE_WAYS];
}

/* The live record for the key, or NULL. A record past its window counts as absent, unless guesses of
 * it are still in flight. */
static struct throttle_slot *find(const struct throttle *t, uint64_t tag, uint64_t now_ms)
{
    struct throttle_slot *set = set_of(t, tag);
    for (unsigned w = 0; w < THROTTLE_WAYS; w++) {
        struct throttle_slot *s = &set[w];
        if (s->tag == tag) return s->pending == 0 && now_ms - s->last_fail_ms > t->pol.window_ms ? NULL : s;
    }
    return NULL;
}

static bool expired(const struct throttle *t, const struct throttle_slot *s, uint64_t now_ms)
{
    return now_ms - s->last_fail_ms > t->pol.window_ms;
}

/* The slot a new record of this set would take: an empty one, else the least recently failed one with
 * no guess in flight; NULL when every slot has guesses in flight. */
static struct throttle_slot *victim_of(struct throttle_slot *set)
{
    struct throttle_slot *v = NULL;
    for (unsigned w = 0; w < THROTTLE_WAYS; w++) {
        struct throttle_slot *s = &set[w];
        if (s->tag == 0) return s;
        if (s->pending == 0 && (!v || s->last_fail_ms < v->last_fail_ms)) v = s;
    }
    return v;
}

static uint32_t pending_max(const struct throttle *t) { return t->pol.pending_max ? t->pol.pending_max : 1; }

/* throttle_check; *held (optional) tells whether a wait is only for the key's own checks in flight (their
 * results may admit it) rather than a block or a full set. */
static uint32_t check_ex(const struct throttle *t, const void *key, size_t len, uint64_t now_ms, bool *held)
{
    if (held) *held = false;
    uint64_t tag = tag_of(t, key, len);
    const struct throttle_slot *s = find(t, tag, now_ms);
    if (!s) {
        /* no record: admitted, if a record can be made for its guess */
        struct throttle_slot *set = set_of(t, tag);
        bool room = false;
        for (unsigned w = 0; w < THROTTLE_WAYS && !room; w++) room = set[w].tag == tag || set[w].pending == 0;
        return room ? 0 : THROTTLE_PENDING_WAIT_MS;
    }
    bool old = expired(t, s, now_ms);
    uint32_t fails = old ? 0 : s->fails;
    if (!old && s->blocked_until_ms > now_ms) {
        uint64_t w = s->blocked_until_ms - now_ms;
        return w > UINT32_MAX ? UINT32_MAX : (uint32_t)w;
    }
    /* guesses in flight count as failures already: admitted only while all of them failing would leave
     * this one within the free budget */
    if (s->pending >= pending_max(t) || (s->pending && fails + s->pending >= t->pol.free_fails)) {
        if (held) *held = true;
        return THROTTLE_PENDING_WAIT_MS;
    }
    return 0;
}

uint32_t throttle_check(const struct throttle *t, const void *key, size_t len, uint64_t now_ms)
{
    return check_ex(t, key, len, now_ms, NULL);
}

uint32_t throttle_begin(struct throttle *t, const void *key, size_t len, uint64_t now_ms)
{
    uint32_t w = throttle_check(t, key, len, now_ms);
    if (w) return w;
    uint64_t tag = tag_of(t, key, len);
    struct throttle_slot *set = set_of(t, tag), *s = NULL;
    for (unsigned i = 0; i < THROTTLE_WAYS && !s; i++)
        if (set[i].tag == tag) s = &set[i];
    if (s && s->pending == 0 && expired(t, s, now_ms)) *s = (struct throttle_slot){ .tag = tag };
    if (!s) {
        s = victim_of(set);
        AU_ASSERT(s != NULL); /* throttle_check saw room */
        if (s->tag != 0 && !expired(t, s, now_ms)) t->evictions++;
        *s = (struct throttle_slot){ .tag = tag, .last_fail_ms = now_ms };
    }
    if (expired(t, s, now_ms)) { /* forgotten failures; the record lives on for its guesses in flight */
        s->fails = 0;
        s->blocked_until_ms = 0;
        s->last_fail_ms = now_ms;
    }
    s->pending++;
    return 0;
}

uint32_t throttle_pending(const struct throttle *t, const void *key, size_t len)
{
    uint64_t tag = tag_of(t, key, len);
    const struct throttle_slot *set = set_of(t, tag);
    for (unsigned w = 0; w < THROTTLE_WAYS; w++)
        if (set[w].tag == tag) return set[w].pending;
    return 0;
}

uint32_t throttle_fails(const struct throttle *t, const void *key, size_t len, uint64_t now_ms)
{
    const struct throttle_slot *s = find(t, tag_of(t, key, len), now_ms);
    return s && !expired(t, s, now_ms) ? s->fails : 0;
}

uint32_t throttle_fail(struct throttle *t, const void *key, size_t len, uint64_t now_ms)
{
    uint64_t tag = tag_of(t, key, len);
    struct throttle_slot *set = set_of(t, tag), *s = NULL;
    for (unsigned w = 0; w < THROTTLE_WAYS && !s; w++)
        if (set[w].tag == tag) s = &set[w];
    if (s && expired(t, s, now_ms)) { /* forgotten: start again */
        s->fails = 0;
        s->blocked_until_ms = 0;
    }
    if (!s) {
        s = victim_of(set);
        if (!s) { /* every record of the set has guesses in flight: drop the oldest (its guesses end unseen) */
            s = &set[0];
            for (unsigned w = 1; w < THROTTLE_WAYS; w++)
                if (set[w].last_fail_ms < s->last_fail_ms) s = &set[w];
        }
        if (s->tag != 0 && (s->pending || !expired(t, s, now_ms))) t->evictions++;
        *s = (struct throttle_slot){ .tag = tag };
    }
    s->last_fail_ms = now_ms;
    if (s->fails < UINT32_MAX) s->fails++;
    if (s->fails <= t->pol.free_fails) return 0;
    uint32_t shift = AU_MIN(s->fails - t->pol.free_fails - 1, (uint32_t)THROTTLE_SHIFT_MAX);
    uint64_t d = (uint64_t)t->pol.base_delay_ms << shift;
    if (d > t->pol.max_delay_ms) d = t->pol.max_delay_ms;
    s->blocked_until_ms = now_ms + d;
    return (uint32_t)d;
}

void throttle_end(struct throttle *t, const void *key, size_t len, uint64_t now_ms, bool failed)
{
    uint64_t tag = tag_of(t, key, len);
    struct throttle_slot *set = set_of(t, tag);
    for (unsigned w = 0; w < THROTTLE_WAYS; w++) {
        struct throttle_slot *s = &set[w];
        if (s->tag != tag) continue;
        if (s->pending) s->pending--;
        if (!failed && s->pending == 0 && s->fails == 0) *s = (struct throttle_slot){ 0 }; /* nothing to keep */
        break;
    }
    if (failed) throttle_fail(t, key, len, now_ms);
}

void throttle_ok(struct throttle *t, const void *key, size_t len)
{
    uint64_t tag = tag_of(t, key, len);
    struct throttle_slot *set = set_of(t, tag);
    for (unsigned w = 0; w < THROTTLE_WAYS; w++) {
        struct throttle_slot *s = &set[w];
        if (s->tag != tag) continue;
        if (s->pending) { /* the failures go; the guesses in flight stay counted */
            s->fails = 0;
            s->blocked_until_ms = 0;
        } else {
            *s = (struct throttle_slot){ 0 };
        }
    }
}

/* ------------------------------------------------------------------ login pair */

int login_throttle_init(struct login_throttle *lt)
{
    const struct throttle_policy up = { .free_fails = LOGIN_USER_FREE_FAILS, .base_delay_ms = LOGIN_BASE_DELAY_MS,
                                        .max_delay_ms = LOGIN_MAX_DELAY_MS, .window_ms = LOGIN_WINDOW_MS,
                                        .pending_max = LOGIN_USER_PENDING_MAX };
    const struct throttle_policy ip = { .free_fails = LOGIN_IP_FREE_FAILS, .base_delay_ms = LOGIN_BASE_DELAY_MS,
                                        .max_delay_ms = LOGIN_MAX_DELAY_MS, .window_ms = LOGIN_WINDOW_MS,
                                        .pending_max = LOGIN_IP_PENDING_MAX };
    if (throttle_init(&lt->user, LOGIN_USER_SLOTS, &up) != 0) return -1;
    if (throttle_init(&lt->ip, LOGIN_IP_SLOTS, &ip) != 0) {
        throttle_free(&lt->user);
        return -1;
    }
    return 0;
}

void login_throttle_free(struct login_throttle *lt)
{
    throttle_free(&lt->user);
    throttle_free(&lt->ip);
}

uint32_t login_throttle_check(const struct login_throttle *lt, const void *key, size_t len, uint32_t ip4,
                              uint64_t now_ms)
{
    uint32_t w = throttle_check(&lt->user, key, len, now_ms);
    if (ip4) w = AU_MAX(w, throttle_check(&lt->ip, &ip4, sizeof ip4, now_ms));
    return w;
}

void login_throttle_fail(struct login_throttle *lt, const void *key, size_t len, uint32_t ip4, uint64_t now_ms)
{
    throttle_fail(&lt->user, key, len, now_ms);
    if (ip4) throttle_fail(&lt->ip, &ip4, sizeof ip4, now_ms);
}

uint32_t login_throttle_begin(struct login_throttle *lt, const void *key, size_t len, uint32_t ip4, uint64_t now_ms,
                              bool *held)
{
    bool hu = false, hi = false;
    uint32_t wu = check_ex(&lt->user, key, len, now_ms, &hu);
    uint32_t wi = ip4 ? check_ex(&lt->ip, &ip4, sizeof ip4, now_ms, &hi) : 0;
    uint32_t w = AU_MAX(wu, wi);
    /* held: every table that refuses does so only for its checks in flight */
    if (held) *held = w && (!wu || hu) && (!wi || hi);
    if (w) return w;
    AU_ASSERT(throttle_begin(&lt->user, key, len, now_ms) == 0);
    if (ip4) AU_ASSERT(throttle_begin(&lt->ip, &ip4, sizeof ip4, now_ms) == 0);
    return 0;
}

void login_throttle_end(struct login_throttle *lt, const void *key, size_t len, uint32_t ip4, uint64_t now_ms,
                        int result)
{
    throttle_end(&lt->user, key, len, now_ms, result == LOGIN_FAILED);
    if (ip4) throttle_end(&lt->ip, &ip4, sizeof ip4, now_ms, result == LOGIN_FAILED);
    if (result == LOGIN_OK) throttle_ok(&lt->user, key, len);
}

void login_throttle_ok(struct login_throttle *lt, const void *key, size_t len, uint32_t ip4)
{
    AU_UNUSED(ip4);
    throttle_ok(&lt->user, key, len);
}
