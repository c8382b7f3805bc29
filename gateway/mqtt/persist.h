/* persist.h - MQTT state in the store: retained messages and persistent sessions (record, will,
 * subscriptions, queued/in-flight QoS 1/2 messages, incoming QoS 2 ids). Keys: store/keyspace.h.
 * Everything is a no-op when the broker runs without a store. */
#ifndef AU_MQTT_PERSIST_H
#define AU_MQTT_PERSIST_H

#include "gateway/mqtt/broker.h"

void persist_set_store(struct store *st);
struct store *persist_store(void);
static inline bool persist_on(void) { return persist_store() != NULL; }
/* Start-up, on the shard's thread: load the retained replica and the sessions this shard owns. */
void persist_load(struct broker *b);

/* Writes go into the shard's batch of this loop iteration (b->ibatch), submitted in order by
 * persist_flush, which the shard calls once per loop iteration (shard_tick) and before it detaches
 * from the store. A write is durable once that batch's completion ran. */
void persist_retained(struct broker *b, const struct msg *m);
void persist_session(struct broker *b, struct session *s);           /* record + will */
void persist_session_delete(struct broker *b, struct session *s);    /* every key of the session */
void persist_sub(struct broker *b, struct session *s, const uint8_t *filter, uint16_t len, const struct sub_opts *o,
                 bool del);
void persist_out_add(struct broker *b, struct session *s, struct outmsg *om);
void persist_out_del(struct broker *b, struct session *s, struct outmsg *om);
void persist_out_pubrec(struct broker *b, struct session *s, struct outmsg *om); /* now awaiting PUBCOMP */
void persist_qos2in(struct broker *b, struct session *s, uint16_t pid, bool del);
/* Operations in the pending batch (0 = nothing pending). */
uint32_t persist_pending_ops(const struct broker *b);
/* Complete this shard's part of ticket t (ticket_done) once the pending batch is durable (there must be one). */
void persist_ticket(struct broker *b, struct pub_ticket *t);
/* Fan-out pass of m on this shard: start, and end with its ticket's part (done now, after the pending batch,
 * or after the deferred deliveries); ops0 = persist_pending_ops() when the pass began. */
void persist_pass_begin(struct broker *b, struct msg *m);
void persist_pass_end(struct broker *b, struct msg *m, uint32_t ops0);
/* Instead of persist_out_add for a QoS 1 delivery that goes out now to an online persistent session in a pass
 * with a ticket: store it only if no PUBACK came within BROKER_STORE_DEFER_MS. False = not deferrable. */
bool persist_defer(struct broker *b, struct session *s, struct outmsg *om);
/* The delivery is done with (acknowledged, dropped, session ended): called by outmsg_free. */
void persist_undefer(struct outmsg *om);
/* Store the deferred deliveries that are due; returns ms until the next one is due (-1 = none). */
int persist_defer_due(struct broker *b, uint64_t now_ms);
/* Submit the pending batch, if any. */
void persist_flush(struct broker *b);

#endif
