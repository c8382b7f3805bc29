/* hash.h - open-addressing hash table (Robin Hood probing, backward-shift deletion, no tombstones)
 * mapping byte-string keys or 64-bit integer keys to non-NULL `void *` values.
 *
 * Ownership and lifetime:
 *  - Keys are NOT copied. The table stores a pointer to the caller's key bytes, which must stay alive and
 *    unchanged for as long as the entry is in the table (typically the key lives inside the value struct).
 *  - Values are never dereferenced; NULL values are not allowed (NULL means "absent" in get/put/del).
 *  - u64 keys are stored inline in the slot (no caller memory). A table may hold both kinds; a u64 key never
 *    equals a byte-string key.
 *  - Single-threaded: one table is owned by one thread. No internal locking.
 *
 * Hashing: XXH3-64 with a per-process random seed (HashDoS resistance), so hash values differ between runs:
 * never persist them or send them to another process. Each slot stores the full 64-bit hash; keys are only
 * compared (memcmp) when the stored hash equals the probe hash. Callers that look a key up in several tables
 * or several times can hash once with au_hash_bytes()/au_hash_u64() and use the *_h variants.
 *
 * Memory: 32 bytes per slot; capacity is a power of two, grown by doubling when an insert would pass 7/8 load.
 * The table never shrinks (au_hash_clear keeps the capacity; au_hash_free releases it). */
#ifndef AU_HASH_H
#define AU_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define AU_HASH_MIN_CAPACITY 8u
/* Largest byte-string key length (UINT32_MAX is reserved to mark u64 keys). */
#define AU_HASH_MAX_KEY_LEN  0xfffffffeu
#define AU_HASH_U64_TAG      0xffffffffu

struct au_hash_slot {
    uint64_t hash;
    union { const void *ptr; uint64_t u64; } key;
    void *value;
    uint32_t len;   /* key length, or AU_HASH_U64_TAG for an inline u64 key */
    uint32_t psl;   /* probe sequence length + 1; 0 = empty slot */
};

struct au_hash {
    struct au_hash_slot *slots;
    size_t mask;    /* capacity - 1 */
    size_t count;
    size_t grow_at; /* count at which the next insert doubles the table */
};

/* Iteration: au_hash_iter_init(h, &it); while (au_hash_next(h, &it)) { it.key/it.len or it.u64, it.value }.
 * The table must not be modified while iterating except through au_hash_iter_del() (removes the entry just
 * returned; every other entry is still visited exactly once). Order is unspecified. */
struct au_hash_iter {
    /* public, valid after au_hash_next() returned true */
    const void *key;   /* NULL for u64 keys */
    uint32_t len;      /* 0 for u64 keys */
    bool is_u64;
    uint64_t u64;      /* the key when is_u64 */
    uint64_t hash;
    void *value;
    /* private */
    size_t pos, left, cur;
};

/* Per-process hash of a byte string / a 64-bit integer, as used by the table. */
uint64_t au_hash_bytes(const void *key, size_t len);
uint64_t au_hash_u64(uint64_t key);

/* Returns 0, or -1 when the initial allocation fails. initial_capacity is the number of entries the table
 * should hold without growing (0 = minimal). */
int au_hash_init(struct au_hash *h, size_t initial_capacity);
void au_hash_free(struct au_hash *h);
/* Removes every entry, keeps the capacity. */
void au_hash_clear(struct au_hash *h);
/* Makes room for n entries in total without growing later; 0 or -1 on allocation failure. */
int au_hash_reserve(struct au_hash *h, size_t n);

static inline size_t au_hash_count(const struct au_hash *h) { return h->count; }
static inline size_t au_hash_capacity(const struct au_hash *h) { return h->mask + 1; }

/* Byte-string keys (len <= AU_HASH_MAX_KEY_LEN). */
void *au_hash_get(const struct au_hash *h, const void *key, size_t len);
/* Inserts or replaces; returns the previous value or NULL. Aborts (AU_ASSERT) if growing fails: use
 * au_hash_try_put() or au_hash_reserve() where allocation failure must be handled. On replace, the stored key
 * pointer is updated to `key` (so the old key memory may be released after the call). */
void *au_hash_put(struct au_hash *h, const void *key, size_t len, void *value);
/* Same, returning 0 or -1 (allocation failure, table unchanged); *prev (may be NULL) gets the old value. */
int au_hash_try_put(struct au_hash *h, const void *key, size_t len, void *value, void **prev);
/* Removes the entry; returns its value or NULL when absent. */
void *au_hash_del(struct au_hash *h, const void *key, size_t len);

/* Same with a precomputed hash (must be au_hash_bytes(key, len)). */
void *au_hash_get_h(const struct au_hash *h, uint64_t hash, const void *key, size_t len);
void *au_hash_put_h(struct au_hash *h, uint64_t hash, const void *key, size_t len, void *value);
int au_hash_try_put_h(struct au_hash *h, uint64_t hash, const void *key, size_t len, void *value, void **prev);
void *au_hash_del_h(struct au_hash *h, uint64_t hash, const void *key, size_t len);

/* 64-bit integer keys, stored inline. */
void *au_hash_get_u64(const struct au_hash *h, uint64_t key);
void *au_hash_put_u64(struct au_hash *h, uint64_t key, void *value);
int au_hash_try_put_u64(struct au_hash *h, uint64_t key, void *value, void **prev);
void *au_hash_del_u64(struct au_hash *h, uint64_t key);

void au_hash_iter_init(const struct au_hash *h, struct au_hash_iter *it);
bool au_hash_next(const struct au_hash *h, struct au_hash_iter *it);
/* Removes the entry last returned by au_hash_next(); returns its value. */
void *au_hash_iter_del(struct au_hash *h, struct au_hash_iter *it);

#endif
