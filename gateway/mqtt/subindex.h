/* subindex.h - the per-shard subscription index (subindex.c): a trie keyed by topic levels per app, with
 * `+` and `#` children special-cased, and MQTT 5 share groups. Matching rules and threading: topic.h. */
#ifndef AU_MQTT_SUBINDEX_H
#define AU_MQTT_SUBINDEX_H

#include "gateway/mqtt/topic.h"

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

#endif
