/* topic.h - MQTT topic layer: topic / filter validation and matching (topic.c), and what the per-shard
 * subscription index (subindex.h) and retained-message store (retained.h) share.
 *
 * Thread model: every shard owns its own sub_index and retained_store; nothing here is shared
 * between threads, so there are no locks and no atomics. Callbacks run synchronously and must not
 * modify the structure they are called from (asserted).
 *
 * Apps (tenants) have private topic spaces: every index / store call takes a `uint32_t app`, which
 * is the root level of the trie, so topics of different apps never match.
 *
 * Topics and filters are byte strings (pointer + length, no NUL terminator needed). UTF-8
 * well-formedness is the codec's job; this layer checks the MQTT topic grammar and the limits of
 * core/limits.h (AU_MQTT_MAX_TOPIC bytes, AU_MQTT_MAX_TOPIC_LEVELS levels).
 *
 * Matching rules (MQTT 3.1.1 4.7 / 5.0 4.7): `+` matches exactly one level, which may be empty
 * ("a/+/b" matches "a//b"); `#` matches the parent level and any number of levels below it
 * ("a/#" matches "a", "a/", "a/b/c"); a topic whose first character is `$` is not matched by a
 * filter whose first level is `+` or `#`.
 */
#ifndef AU_MQTT_TOPIC_H
#define AU_MQTT_TOPIC_H

#include "core/common.h"
#include "core/limits.h"

/* Negative results shared by the index and the store. */
enum topic_err {
    TOPIC_OK     = 0,
    TOPIC_EINVAL = -1,  /* invalid topic / filter / share name */
    TOPIC_ENOMEM = -2,  /* allocation failed; the structure is unchanged */
    TOPIC_EQUOTA = -3,  /* retained store: the app already holds max_per_app messages */
};

/* ------------------------------------------------------------------------------------------- */
/* Validation and single matching: pure functions over bytes, no allocation.                  */

/* A topic name usable in PUBLISH: 1..AU_MQTT_MAX_TOPIC bytes, at most AU_MQTT_MAX_TOPIC_LEVELS
 * levels, no `+`, `#` or NUL. */
bool topic_name_valid(const uint8_t *topic, size_t len);

/* A plain topic filter: 1..AU_MQTT_MAX_TOPIC bytes, at most AU_MQTT_MAX_TOPIC_LEVELS levels, no
 * NUL; `+` only as a whole level; `#` only as the whole last level. Does not treat `$share/`
 * specially (use topic_sub_parse for what a client sends in SUBSCRIBE / UNSUBSCRIBE). */
bool topic_filter_valid(const uint8_t *filter, size_t len);

/* A SUBSCRIBE / UNSUBSCRIBE topic filter, split into its parts (pointers into `s`). */
struct topic_sub {
    const uint8_t *filter;  /* the topic filter proper */
    size_t filter_len;
    const uint8_t *share;   /* share name of a shared subscription, NULL when not shared */
    size_t share_len;       /* 0 when not shared */
};

/* Parses what a client subscribes to. `$share/{ShareName}/{filter}` is a shared subscription:
 * ShareName non-empty without `+ # /`, filter a valid plain filter. Any other string whose first
 * level is exactly `$share` is rejected. Anything else must be a valid plain filter (share NULL).
 * The whole string is at most AU_MQTT_MAX_TOPIC bytes. Returns false (out undefined) if invalid. */
bool topic_sub_parse(const uint8_t *s, size_t len, struct topic_sub *out);

/* Does `filter` match `topic`, including the `$` rule? Both are assumed valid (filter by
 * topic_filter_valid, topic by topic_name_valid); for other input the result is unspecified but
 * the function never reads outside the given bytes. */
bool topic_matches(const uint8_t *filter, size_t flen, const uint8_t *topic, size_t tlen);

/* Private: open-addressed table of named trie nodes (linear probing, power-of-two capacity). */
struct topic_name;
struct topic_ntab {
    struct topic_name **slot;
    uint32_t cap, n;
};

/* The subscription index is in subindex.h (subindex.c), the retained-message store in retained.h
 * (retained.c). */

#endif
