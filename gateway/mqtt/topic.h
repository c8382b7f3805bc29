/* topic.h - MQTT topic layer: topic / filter validation, the per-shard subscription index and the
 * per-shard retained-message store.
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

/* ------------------------------------------------------------------------------------------- */
/* Subscription index: a trie keyed by topic levels per app; `+` and `#` children special-cased.*/

/* Subscription options (MQTT 5 SUBSCRIBE options; 3.1.1 uses qos only). */
struct sub_opts {
    uint32_t sub_id;              /* subscription identifier, 0 = none */
    uint8_t qos;                  /* maximum QoS, 0..2 */
    uint8_t no_local;             /* 0/1 */
    uint8_t retain_as_published;  /* 0/1 */
    uint8_t retain_handling;      /* 0..2 */
};

/* One subscription of one session on one filter (or one member of a share group). */
struct sub_entry {
    void *session;                /* opaque to the index; identifies the subscriber */
    struct sub_opts opts;
};

/* Private: open-addressed table of named trie nodes (linear probing, power-of-two capacity). */
struct topic_name;
struct topic_ntab {
    struct topic_name **slot;
    uint32_t cap, n;
};


/* Per-shard index; embed it and use sub_index_init. Counters are read-only for callers. */
struct sub_index {
    struct topic_ntab apps;       /* per-app root nodes (private) */
    uint64_t seed;                /* hash seed, random per index */
    size_t nodes;                 /* trie nodes allocated (app roots included) */
    size_t subs;                  /* subscriptions: plain entries + share-group members */
    size_t groups;                /* share groups (ShareName + filter) */
    unsigned busy;                /* > 0 while sub_match runs callbacks */
};

/* Called once per matching plain subscription. A session with several overlapping matching
 * filters gets one call per filter; the broker merges them (max QoS, all sub ids). */
typedef void (*sub_match_fn)(void *ctx, const struct sub_entry *e);
/* Called once per matching share group with its members (n >= 1), so the broker can pick one.
 * A group is identified by (app, ShareName, filter): `filter` is the group's topic filter, so
 * shards can agree on one group across their indexes. Pointers are valid during the call only. */
typedef void (*sub_share_fn)(void *ctx, const uint8_t *share, size_t share_len,
                             const uint8_t *filter, size_t filter_len,
                             const struct sub_entry *members, size_t n);

void sub_index_init(struct sub_index *idx);
/* Frees every node; sessions are opaque and not touched. */
void sub_index_free(struct sub_index *idx);

/* Subscribes `session` to `filter` (a valid plain filter, see topic_sub_parse) in `app`, as a
 * member of share group `share` when share_len > 0 (share NULL / 0 = plain subscription).
 * Returns 0 when added, 1 when the same session already had this filter (+ share group) and its
 * options were replaced, TOPIC_EINVAL for an invalid filter / share name, TOPIC_ENOMEM. */
int sub_add(struct sub_index *idx, uint32_t app, const uint8_t *filter, size_t len,
            void *session, const struct sub_opts *opts, const uint8_t *share, size_t share_len);

/* Removes that subscription in O(levels): returns 1 if it existed, 0 if not (invalid input is
 * simply not found). Trie nodes and share groups left empty are freed. */
int sub_remove(struct sub_index *idx, uint32_t app, const uint8_t *filter, size_t len,
               void *session, const uint8_t *share, size_t share_len);

/* Matches a PUBLISH topic (a valid topic name) of `app`: calls on_sub for every matching plain
 * subscription and on_share (may be NULL) for every matching share group. Cost is proportional to
 * the matching trie nodes and entries, with no allocation. Returns the number of callbacks made
 * (on_share counted once per group, even if NULL), or TOPIC_EINVAL for an invalid topic. */
int sub_match(struct sub_index *idx, uint32_t app, const uint8_t *topic, size_t len,
              sub_match_fn on_sub, sub_share_fn on_share, void *ctx);

/* ------------------------------------------------------------------------------------------- */
/* Retained-message store: per app, topic -> opaque message.                                  */

/* Called for every message the store drops: replaced, deleted, cleared or freed. */
typedef void (*retained_release_fn)(void *release_ctx, void *msg);
/* Called per matching retained message; return false to stop the walk. */
typedef bool (*retained_match_fn)(void *ctx, void *msg);
/* The bytes a message counts against its app's byte budget. */
typedef size_t (*retained_size_fn)(const void *msg);

/* Per-shard store; embed it and use retained_init. Counters are read-only for callers. */
struct retained_store {
    struct topic_ntab apps;       /* per-app root nodes (private) */
    uint64_t seed;
    retained_release_fn release;
    void *release_ctx;
    size_t max_per_app;           /* messages per app before TOPIC_EQUOTA */
    size_t max_bytes_per_app;     /* bytes (size_fn) per app before TOPIC_EQUOTA; 0 = no byte budget */
    retained_size_fn size;        /* NULL: messages count 0 bytes */
    size_t nodes;                 /* trie nodes allocated (app roots included) */
    size_t msgs;                  /* messages held, all apps */
    unsigned busy;                /* > 0 while retained_match runs callbacks */
};

/* max_per_app 0 means AU_MQTT_MAX_RETAINED. release may be NULL. */
void retained_init(struct retained_store *st, retained_release_fn release, void *release_ctx,
                   size_t max_per_app);
/* A byte budget per app: the sum of size(msg) over an app's messages stays <= max_bytes (0: none). */
void retained_set_budget(struct retained_store *st, retained_size_fn size, size_t max_bytes);
/* Releases every message and frees every node. */
void retained_free(struct retained_store *st);

/* Sets the retained message of `topic` (a valid topic name) in `app`; msg NULL deletes it. A
 * replaced or deleted message is released. Returns 1 if a message was replaced / deleted, 0 if
 * none was there, TOPIC_EINVAL, TOPIC_ENOMEM or TOPIC_EQUOTA (then `msg` is not taken: the app would
 * hold more than max_per_app messages or max_bytes_per_app bytes; a replaced message stays). */
int retained_set(struct retained_store *st, uint32_t app, const uint8_t *topic, size_t len,
                 void *msg);
/* Would setting a message of `size` bytes at `topic` (valid) keep `app` within its budgets (the message
 * already there, if any, replaced)? Changes nothing. */
bool retained_fits(struct retained_store *st, uint32_t app, const uint8_t *topic, size_t len, size_t size);

/* Calls cb for every retained message of `app` whose topic matches `filter` (a valid plain
 * filter), honouring the `$` rule; walks only the branches the filter can match. Returns the
 * number of callbacks made (including the one that returned false), or TOPIC_EINVAL. */
int retained_match(struct retained_store *st, uint32_t app, const uint8_t *filter, size_t len,
                   retained_match_fn cb, void *ctx);

/* Retained messages held for `app`, and their bytes. */
size_t retained_count(const struct retained_store *st, uint32_t app);
size_t retained_bytes(const struct retained_store *st, uint32_t app);

/* Releases every message of `app` (app deleted). Returns how many were released. */
size_t retained_clear_app(struct retained_store *st, uint32_t app);

#endif
