/* session.h - session lifecycle: create, resume, detach (will, expiry), end. */
#ifndef AU_MQTT_SESSION_H
#define AU_MQTT_SESSION_H

#include "gateway/mqtt/broker.h"

struct session *session_find(struct broker *b, uint32_t app, const uint8_t *cid, size_t len);
struct session *session_create(struct broker *b, uint32_t app, const uint8_t *cid, size_t len);
/* An offline session gets a connection again: stop its expiry timer and any pending delayed will. */
void session_resume(struct broker *b, struct session *s);
/* The session ends now: a pending will is published, subscriptions and queues are released. */
void session_end(struct broker *b, struct session *s);

#endif
