/* shared.h - MQTT 5 shared subscriptions ($share/{group}/{filter}) across shards (shared.c): each message goes
 * to exactly one member of each group; the origin shard picks the serving shard per group. */
#ifndef AU_MQTT_SHARED_H
#define AU_MQTT_SHARED_H

#include "gateway/mqtt/broker.h"

void shared_init(struct broker *b);
void shared_fini(struct broker *b);
/* Origin side: decide which shard serves each matching share group; attaches the picks to m. */
void shared_pick(struct broker *b, struct msg *m);
/* Target side: does this shard serve group (share, filter) for m? */
bool shared_choose_here(struct broker *b, struct msg *m, const uint8_t *share, size_t share_len,
                        const uint8_t *filter, size_t filter_len);
/* A local member joined (+1) or left (-1) group (share, filter) of app. */
void shared_member(struct broker *b, uint32_t app, const uint8_t *share, size_t share_len, const uint8_t *filter,
                   size_t filter_len, int delta);

#endif
