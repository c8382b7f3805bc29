/* deliver.h - encoding and sending PUBLISH to sessions; outgoing QoS 1/2 windows (deliver.c). */
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
/* Deliver m to session s (queued when offline or beyond the window; ids: subscription identifiers). */
void session_deliver(struct broker *b, struct session *s, struct msg *m, uint8_t qos, bool retain,
                     const uint32_t *ids, uint8_t n_ids);
void session_pump(struct broker *b, struct session *s);               /* send queued within the window */
void session_resend_inflight(struct broker *b, struct session *s);

#endif
