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

/* Writes go into *bt when bt is given (the caller submits it), else are submitted on their own. */
void persist_retained(struct broker *b, struct store_batch **bt, const struct msg *m);
void persist_session(struct broker *b, struct session *s);           /* record + will */
void persist_session_delete(struct broker *b, struct session *s);    /* every key of the session */
void persist_sub(struct broker *b, struct session *s, const uint8_t *filter, uint16_t len, const struct sub_opts *o,
                 bool del);
void persist_out_add(struct broker *b, struct store_batch **bt, struct session *s, struct outmsg *om);
void persist_out_del(struct broker *b, struct session *s, struct outmsg *om);
void persist_out_pubrec(struct broker *b, struct session *s, struct outmsg *om); /* now awaiting PUBCOMP */
void persist_qos2in(struct broker *b, struct store_batch **bt, struct session *s, uint16_t pid, bool del);

#endif
