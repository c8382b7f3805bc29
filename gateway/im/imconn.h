/* imconn.h - the IM service on device connections: login at CONNECT, im/send, reserved topics. */
#ifndef AU_IM_IMCONN_H
#define AU_IM_IMCONN_H

#include "gateway/mqtt/broker.h"
#include "gateway/mqtt/handle.h"

struct authpool;
struct auth_token_key;

#define IMCONN_PENDING MQTT_HANDLED_PENDING /* handler result: waiting for the password check */

/* NONE: no username; PLAIN: a username that is no AppKey form (default app, never verified);
 * PUSH: "<appkey>" push-only device; USER: "<appkey>:<user>" IM login. */
enum im_login_kind { IM_LOGIN_NONE = 0, IM_LOGIN_PUSH, IM_LOGIN_USER, IM_LOGIN_PLAIN };
struct im_login {
    uint32_t app;
    uint8_t kind;
    uint8_t device_token;         /* IM_LOGIN_PUSH: a device token for this client id verified */
    const char *user;             /* IM_LOGIN_USER: points into the CONNECT */
    size_t user_len;
};

/* Process-wide: the password worker pool and the login-token key (main, before shards start). */
void imconn_setup(struct authpool *pool, const struct auth_token_key *key);
/* Which app / user a CONNECT is for (no verification yet). 0 or -(reason code). */
int imconn_resolve(struct broker *b, struct mqtt_conn *mc, const struct mqtt_connect *c, struct im_login *out);
/* Verify an IM login: 0 = accepted, IMCONN_PENDING = the verdict comes later (the CONNECT is run again),
 * -(reason code) = refused. */
int imconn_authenticate(struct broker *b, struct mqtt_conn *mc, const struct mqtt_connect *c, struct im_login *l,
                        const uint8_t *cid, size_t cid_len);
/* The identity an accepted login proves (the owner recorded in its session, compared on resume). */
void imconn_identity(struct broker *b, const struct mqtt_connect *c, const struct im_login *l, struct sess_ident *out);
/* A device token for push-only device `cid` of the app with AppKey `appkey`, valid ttl_s seconds from now:
 * written NUL-terminated into out (AUTH_TOKEN_MAX bytes is enough), *exp = its expiry (wall seconds).
 * Returns its length, or -1 (no token key, bad arguments). Any thread. */
int imconn_device_token(const char *appkey, const uint8_t *cid, size_t cid_len, uint32_t ttl_s, char *out, size_t cap,
                        uint64_t *exp);
/* The connection is going away: forget a pending verification. */
void imconn_conn_gone(struct mqtt_conn *mc);
/* shard_fini: finish or cancel this shard's password checks, free its throttle. */
void imconn_shard_detach(struct au_shard *s);
/* Topics reserved to the service: clients may not publish or subscribe to them directly
 * (except im/send, im/sync and im/inbox through the IM handlers). */
bool imconn_reserved_topic(const uint8_t *t, size_t len);
/* A PUBLISH on im/send from an IM session. */
int imconn_send(struct broker *b, struct mqtt_conn *mc, const struct mqtt_publish *pub);
/* im/sync: history of one conversation after a sequence (a new device catching up). */
int imconn_sync(struct broker *b, struct mqtt_conn *mc, const struct mqtt_publish *pub);
/* im/token: a login token for reconnects, delivered on im/inbox. */
void imconn_token(struct broker *b, struct mqtt_conn *mc);

/* IM sessions (im.c) */
void im_session_inbox(struct broker *b, struct session *s);     /* subscribed to im/inbox: register + replay */
void im_session_offline(struct broker *b, struct session *s);   /* connection gone: unregister */
void im_session_free(struct broker *b, struct session *s);
bool im_session_online(const struct session *s);          /* registered for im/inbox */
uint64_t im_session_uid(const struct session *s);         /* the user incarnation registered (0: none yet) */
void im_cursor_ack(struct broker *b, struct session *s, const struct msg *m);
int im_user_online_devices(struct au_shard *sh, uint32_t app, const char *user);

#endif
