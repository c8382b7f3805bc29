/* retained.h - the per-shard retained-message store (retained.c): per app, topic -> opaque message, with a
 * message and byte budget per app. Matching rules and threading: topic.h. */
#ifndef AU_MQTT_RETAINED_H
#define AU_MQTT_RETAINED_H

#include "gateway/mqtt/topic.h"


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
