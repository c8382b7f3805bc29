/* topic_impl.h - private helpers shared by topic.c, subindex.c and retained.c (not a public API).
 *
 * - topic levels: a topic split into (pointer, length, hash) per level, on the caller's stack;
 * - topic_ntab: open-addressed hash table (linear probing, backward-shift deletion) of
 *   struct topic_name pointers, each embedded in a trie node or share group that owns its key bytes.
 */
#ifndef AU_MQTT_TOPIC_IMPL_H
#define AU_MQTT_TOPIC_IMPL_H

#include "gateway/mqtt/topic.h"

#include <string.h>

/* Key of a named object (trie node, share group); embedded, the key bytes live in the owner. */
struct topic_name {
    uint64_t hash;
    const uint8_t *key;
    uint32_t len;
};

struct topic_level {
    const uint8_t *p;
    uint32_t len;
    uint64_t hash;
};

/* Random 64-bit seed for a new table owner (hash-flooding resistance). */
uint64_t topic_seed(void);
/* XXH3_64bits with `seed` over `len` bytes. */
uint64_t topic_hash(uint64_t seed, const uint8_t *p, size_t len);

/* Key bytes of an app root (4 bytes, little-endian). */
static inline void topic_app_key(uint32_t app, uint8_t out[4])
{
    out[0] = (uint8_t)app; out[1] = (uint8_t)(app >> 8);
    out[2] = (uint8_t)(app >> 16); out[3] = (uint8_t)(app >> 24);
}

/* Splits `t` into levels (no validation of the characters). Returns the level count, or 0 when
 * len is 0 / above AU_MQTT_MAX_TOPIC or there are more than AU_MQTT_MAX_TOPIC_LEVELS levels.
 * Hashes each level with `seed` when `hash` is true. */
unsigned topic_split(const uint8_t *t, size_t len, uint64_t seed, bool hash,
                     struct topic_level lv[AU_MQTT_MAX_TOPIC_LEVELS]);

static inline bool topic_level_is(const struct topic_level *l, char c)
{
    return l->len == 1 && l->p[0] == (uint8_t)c;
}

struct topic_name *topic_ntab_find(const struct topic_ntab *t, uint64_t hash, const uint8_t *key,
                                   size_t len);
/* Inserts `e` (absent from the table). Returns false on allocation failure (table unchanged). */
bool topic_ntab_insert(struct topic_ntab *t, struct topic_name *e);
/* Removes `e` (present in the table); may shrink or free the slot array. */
void topic_ntab_remove(struct topic_ntab *t, struct topic_name *e);
/* Frees the slot array (not the entries). */
void topic_ntab_free(struct topic_ntab *t);

#endif
