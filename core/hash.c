/* hash.c - Robin Hood open addressing with backward-shift deletion; see hash.h. */
#include "core/hash.h"
#include "core/common.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

/* Written once before main() runs, read-only afterwards: safe to read from every thread. */
static uint64_t g_seed;

__attribute__((constructor)) static void au_hash_seed_init(void)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s)
        s = au_now_us() ^ (uint64_t)(uintptr_t)&s; /* early boot without entropy: still varies per run */
    g_seed = s;
}

uint64_t au_hash_bytes(const void *key, size_t len)
{
    return XXH3_64bits_withSeed(key, len, g_seed);
}

uint64_t au_hash_u64(uint64_t key)
{
    return XXH3_64bits_withSeed(&key, sizeof key, g_seed);
}

/* A key being looked up: either a byte string (len <= AU_HASH_MAX_KEY_LEN) or an inline u64 (len == TAG). */
struct hkey {
    const void *ptr;
    uint64_t u64;
    uint32_t len;
};

static inline bool slot_eq(const struct au_hash_slot *s, uint64_t hash, const struct hkey *k)
{
    if (s->hash != hash || s->len != k->len) return false;
    if (k->len == AU_HASH_U64_TAG) return s->key.u64 == k->u64;
    return k->len == 0 || memcmp(s->key.ptr, k->ptr, k->len) == 0;
}

/* Capacity whose growth threshold admits n entries. 0 on overflow. */
static size_t cap_for(size_t n)
{
    size_t cap = AU_HASH_MIN_CAPACITY;
    while (cap - cap / 8 < n) {
        if (cap > SIZE_MAX / 2 / sizeof(struct au_hash_slot)) return 0;
        cap <<= 1;
    }
    return cap;
}

static int alloc_table(struct au_hash *h, size_t cap)
{
    AU_ASSERT(cap >= AU_HASH_MIN_CAPACITY && (cap & (cap - 1)) == 0);
    struct au_hash_slot *s = calloc(cap, sizeof *s);
    if (!s) return -1;
    h->slots = s;
    h->mask = cap - 1;
    h->grow_at = cap - cap / 8;
    return 0;
}

int au_hash_init(struct au_hash *h, size_t initial_capacity)
{
    memset(h, 0, sizeof *h);
    size_t cap = cap_for(initial_capacity);
    if (cap == 0) return -1;
    return alloc_table(h, cap);
}

void au_hash_free(struct au_hash *h)
{
    free(h->slots);
    memset(h, 0, sizeof *h);
}

void au_hash_clear(struct au_hash *h)
{
    if (h->slots) memset(h->slots, 0, (h->mask + 1) * sizeof *h->slots);
    h->count = 0;
}

/* Inserts an entry known to be absent into a table known to have room. */
static void insert_new(struct au_hash *h, struct au_hash_slot e)
{
    size_t i = e.hash & h->mask;
    e.psl = 1;
    for (;;) {
        struct au_hash_slot *s = &h->slots[i];
        if (s->psl == 0) {
            *s = e;
            return;
        }
        if (s->psl < e.psl) { /* rob the rich: the displaced entry continues probing */
            struct au_hash_slot t = *s;
            *s = e;
            e = t;
        }
        e.psl++;
        i = (i + 1) & h->mask;
    }
}

static int resize(struct au_hash *h, size_t cap)
{
    struct au_hash old = *h;
    if (alloc_table(h, cap) != 0) {
        *h = old;
        return -1;
    }
    h->count = old.count;
    if (old.slots) {
        for (size_t i = 0; i <= old.mask; i++)
            if (old.slots[i].psl) insert_new(h, old.slots[i]);
        free(old.slots);
    }
    return 0;
}

int au_hash_reserve(struct au_hash *h, size_t n)
{
    if (h->slots && n <= h->grow_at) return 0;
    size_t cap = cap_for(n);
    if (cap == 0) return -1;
    return resize(h, cap);
}

static inline struct au_hash_slot *find(const struct au_hash *h, uint64_t hash, const struct hkey *k)
{
    if (AU_UNLIKELY(!h->slots)) return NULL;
    size_t i = hash & h->mask;
    for (uint32_t d = 1;; d++) {
        struct au_hash_slot *s = &h->slots[i];
        if (s->psl < d) return NULL; /* empty, or an entry richer than we would be: key absent */
        if (slot_eq(s, hash, k)) return s;
        i = (i + 1) & h->mask;
    }
}

/* Removes slot i by shifting the following displaced entries one step back. */
static void remove_at(struct au_hash *h, size_t i)
{
    for (;;) {
        size_t j = (i + 1) & h->mask;
        struct au_hash_slot *n = &h->slots[j];
        if (n->psl <= 1) break;
        h->slots[i] = *n;
        h->slots[i].psl--;
        i = j;
    }
    h->slots[i].psl = 0;
    h->count--;
}

static int put_common(struct au_hash *h, uint64_t hash, const struct hkey *k, void *value, void **prev)
{
    AU_ASSERT(value != NULL);
    struct au_hash_slot *s = find(h, hash, k);
    if (s) {
        if (prev) *prev = s->value;
        s->value = value;
        if (k->len != AU_HASH_U64_TAG) s->key.ptr = k->ptr;
        return 0;
    }
    if (AU_UNLIKELY(!h->slots || h->count >= h->grow_at)) {
        size_t cap = h->slots ? (h->mask + 1) * 2 : AU_HASH_MIN_CAPACITY;
        if (cap > SIZE_MAX / 2 / sizeof(struct au_hash_slot) || resize(h, cap) != 0) return -1;
    }
    struct au_hash_slot e = { .hash = hash, .value = value, .len = k->len };
    if (k->len == AU_HASH_U64_TAG) e.key.u64 = k->u64;
    else e.key.ptr = k->ptr;
    insert_new(h, e);
    h->count++;
    if (prev) *prev = NULL;
    return 0;
}

static void *del_common(struct au_hash *h, uint64_t hash, const struct hkey *k)
{
    struct au_hash_slot *s = find(h, hash, k);
    if (!s) return NULL;
    void *v = s->value;
    remove_at(h, (size_t)(s - h->slots));
    return v;
}

static inline struct hkey bkey(const void *key, size_t len)
{
    AU_ASSERT(len <= AU_HASH_MAX_KEY_LEN);
    AU_ASSERT(key != NULL || len == 0);
    return (struct hkey){ .ptr = key, .len = (uint32_t)len };
}

static inline struct hkey ukey(uint64_t key)
{
    return (struct hkey){ .u64 = key, .len = AU_HASH_U64_TAG };
}

void *au_hash_get_h(const struct au_hash *h, uint64_t hash, const void *key, size_t len)
{
    struct hkey k = bkey(key, len);
    struct au_hash_slot *s = find(h, hash, &k);
    return s ? s->value : NULL;
}

int au_hash_try_put_h(struct au_hash *h, uint64_t hash, const void *key, size_t len, void *value, void **prev)
{
    struct hkey k = bkey(key, len);
    return put_common(h, hash, &k, value, prev);
}

void *au_hash_put_h(struct au_hash *h, uint64_t hash, const void *key, size_t len, void *value)
{
    void *prev = NULL;
    int rc = au_hash_try_put_h(h, hash, key, len, value, &prev);
    AU_ASSERT(rc == 0 && "hash table growth failed");
    return prev;
}

void *au_hash_del_h(struct au_hash *h, uint64_t hash, const void *key, size_t len)
{
    struct hkey k = bkey(key, len);
    return del_common(h, hash, &k);
}

void *au_hash_get(const struct au_hash *h, const void *key, size_t len)
{
    return au_hash_get_h(h, au_hash_bytes(key, len), key, len);
}

void *au_hash_put(struct au_hash *h, const void *key, size_t len, void *value)
{
    return au_hash_put_h(h, au_hash_bytes(key, len), key, len, value);
}

int au_hash_try_put(struct au_hash *h, const void *key, size_t len, void *value, void **prev)
{
    return au_hash_try_put_h(h, au_hash_bytes(key, len), key, len, value, prev);
}

void *au_hash_del(struct au_hash *h, const void *key, size_t len)
{
    return au_hash_del_h(h, au_hash_bytes(key, len), key, len);
}

void *au_hash_get_u64(const struct au_hash *h, uint64_t key)
{
    struct hkey k = ukey(key);
    struct au_hash_slot *s = find(h, au_hash_u64(key), &k);
    return s ? s->value : NULL;
}

int au_hash_try_put_u64(struct au_hash *h, uint64_t key, void *value, void **prev)
{
    struct hkey k = ukey(key);
    return put_common(h, au_hash_u64(key), &k, value, prev);
}

void *au_hash_put_u64(struct au_hash *h, uint64_t key, void *value)
{
    void *prev = NULL;
    int rc = au_hash_try_put_u64(h, key, value, &prev);
    AU_ASSERT(rc == 0 && "hash table growth failed");
    return prev;
}

void *au_hash_del_u64(struct au_hash *h, uint64_t key)
{
    struct hkey k = ukey(key);
    return del_common(h, au_hash_u64(key), &k);
}

/* Iteration starts at an empty slot (one always exists: load <= 7/8). Backward shifts triggered by
 * au_hash_iter_del() never cross an empty slot, so they only pull not-yet-visited entries one step back. */
void au_hash_iter_init(const struct au_hash *h, struct au_hash_iter *it)
{
    memset(it, 0, sizeof *it);
    if (!h->slots || h->count == 0) return;
    size_t i = 0;
    while (h->slots[i].psl) i++;
    AU_ASSERT(i <= h->mask);
    it->pos = i;
    it->left = h->mask + 1;
}

bool au_hash_next(const struct au_hash *h, struct au_hash_iter *it)
{
    while (it->left) {
        size_t i = it->pos;
        it->pos = (i + 1) & h->mask;
        it->left--;
        const struct au_hash_slot *s = &h->slots[i];
        if (!s->psl) continue;
        it->cur = i;
        it->hash = s->hash;
        it->value = s->value;
        it->is_u64 = s->len == AU_HASH_U64_TAG;
        if (it->is_u64) {
            it->key = NULL;
            it->len = 0;
            it->u64 = s->key.u64;
        } else {
            it->key = s->key.ptr;
            it->len = s->len;
            it->u64 = 0;
        }
        return true;
    }
    return false;
}

void *au_hash_iter_del(struct au_hash *h, struct au_hash_iter *it)
{
    struct au_hash_slot *s = &h->slots[it->cur];
    AU_ASSERT(s->psl != 0 && s->value == it->value);
    void *v = s->value;
    remove_at(h, it->cur);
    /* The entry shifted into `cur` (if any) has not been visited yet: look at `cur` again. */
    it->pos = it->cur;
    it->left++;
    it->value = NULL;
    return v;
}
