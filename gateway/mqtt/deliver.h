/* deliver.h - encoding and sending PUBLISH to sessions; outgoing QoS 1/2 windows. */
#ifndef AU_MQTT_DELIVER_H
#define AU_MQTT_DELIVER_H

#include "gateway/mqtt/broker.h"

/* Start / end one fan-out pass of `m` on this shard (enables the encoded-variant cache). */
void deliver_begin(struct broker *b, struct msg *m);
void deliver_end(struct broker *b);
/* Encode (or reuse) and queue a PUBLISH on the connection. False when it exceeds the client's
 * Maximum Packet Size (the message is then dropped for this client, MQTT 5 3.1.2.11.4). */
bool send_publish(struct broker *b, struct mqtt_conn *mc, struct msg *m, uint8_t qos, bool retain, bool dup,
                  uint16_t pid, const uint32_t *ids, uint8_t n_ids);
void send_ack(struct mqtt_conn *mc, uint8_t type, uint16_t pid, uint8_t reason, const char *reason_str);
void outmsg_free(struct outmsg *om);
/* Incoming QoS 2: forget a packet id at PUBREL; false when it was unknown. */
bool qos2_release(struct session *s, uint16_t pid);
/* An incoming QoS 2 packet id taken (awaiting PUBREL): recorded in the session (handle_publish.c). */
void qos2_add(struct session *s, uint16_t pid);

/* Shared subscriptions across shards (shared.c). */
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
