/* session.h - session lifecycle: create, resume, detach (will, expiry), end. */
#ifndef AU_MQTT_SESSION_H
#define AU_MQTT_SESSION_H

#include "gateway/mqtt/broker.h"

struct session *session_find(struct broker *b, uint32_t app, const uint8_t *cid, size_t len);
struct session *session_create(struct broker *b, uint32_t app, const uint8_t *cid, size_t len);
/* Expiry (seconds) of an MQTT 3.1/3.1.1 clean-session-0 session: persistent_session_expiry capped by
 * max_session_expiry as an MQTT 5 request would be, or UINT32_MAX (never) when persistent_session_expiry is 0. */
uint32_t session_v3_expiry(const struct au_config *cfg);
/* An offline session gets a connection again: stop its expiry timer and any pending delayed will. */
void session_resume(struct broker *b, struct session *s);
/* The session ends now: a pending will is published, subscriptions and queues are released. */
void session_end(struct broker *b, struct session *s);
void session_free(struct broker *b, struct session *s);
struct session *session_by_uid(struct broker *b, uint64_t uid);
/* The connection went away: keep the session (offline) or end it; send_will: publish (or schedule) the will. */
void session_detach(struct broker *b, struct session *s, bool send_will);
void session_drop_subs(struct broker *b, struct session *s);
void broker_publish_will(struct broker *b, struct session *s);

#endif
