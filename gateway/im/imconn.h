/* imconn.h - the IM service on device connections: login at CONNECT, im/send, reserved topics. The IM service
 * is a broker extension (gateway/mqtt/ext.h): im_ext_register() plugs it into the broker; its per-session state
 * (struct im_sess) lives in the session's extension slot, its per-shard state in the broker's. */
#ifndef AU_IM_IMCONN_H
#define AU_IM_IMCONN_H

#include "gateway/mqtt/broker.h"
#include "gateway/mqtt/handle.h"

struct authpool;
struct auth_token_key;

/* The IM logins (struct broker_login's kind when the IM extension claims it): PUSH "<appkey>" push-only
 * device (flags: IM_LOGIN_DEVICE_TOKEN when a device token for its client id was verified); USER
 * "<appkey>:<user>" IM login. Other usernames (no AppKey form) are the broker's plain logins. */
enum im_login_kind { IM_LOGIN_PUSH = 1, IM_LOGIN_USER = 2 };
#define IM_LOGIN_DEVICE_TOKEN 1u

/* The IM extension's id in the broker's extension table (-1: not registered). */
extern int im_ext_id;

/* Per IM session (a session logged in as "<appkey>:<user>" at least once): in session->ext[im_ext_id]. */
struct im_sess {
    char *user;                  /* the IM user of the current login; NULL for plain MQTT / push-only */
    uint64_t tokens_ms;          /* im/send rate limit: last refill */
    uint32_t tokens;
    bool registered;             /* in the inbox index, under (app, uid): removed from exactly that entry,
                                  * whatever happens to the session's user meanwhile */
    bool replaying;
    uint32_t pending;            /* replay reads in flight */
    struct msg **held;           /* live messages that arrived during replay */
    uint32_t nheld, capheld;
    struct au_hash done_seq;     /* replay: conv -> highest seq sent (u64 keys, value = seq + 1 cast) */
    uint64_t gen;                /* replay generation (a new login restarts it) */
    uint64_t uid;                /* the user incarnation registered (inbox key, cursors, conversation list) */
};
static inline struct im_sess *im_sess_of(const struct session *s) { return s->ext[im_ext_id]; }
static inline const char *im_session_user(const struct session *s)
{
    const struct im_sess *is = im_sess_of(s);
    return is ? is->user : NULL;
}
struct im_sess *im_sess_make(struct session *s); /* im_sess_of(s), created when there is none */
/* IM messages (struct msg's ext slot): conversation and sequence (the device's ack moves its cursor). */
static inline bool im_msg_is(const struct msg *m) { return m->ext == (uint8_t)(im_ext_id + 1); }
static inline uint64_t im_msg_conv(const struct msg *m) { return im_msg_is(m) ? m->ext_data[0] : 0; }
static inline uint64_t im_msg_seq(const struct msg *m) { return m->ext_data[1]; }
static inline void im_msg_set(struct msg *m, uint64_t conv, uint64_t seq)
{
    m->ext = (uint8_t)(im_ext_id + 1);
    m->ext_data[0] = conv;
    m->ext_data[1] = seq;
}

/* Process-wide: the password worker pool and the login-token key (main, before shards start). */
void imconn_setup(struct authpool *pool, const struct auth_token_key *key);
/* Plug the IM service into the broker (main thread, before the shards start; once). 0, or -1 when the
 * broker's extension table is full. */
int im_ext_register(void);
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
void im_session_login(struct broker *b, struct session *s, const char *user, size_t user_len); /* NULL: not IM */
void im_session_inbox(struct broker *b, struct session *s);     /* subscribed to im/inbox: register + replay */
void im_session_offline(struct broker *b, struct session *s);   /* connection gone: unregister */
void im_session_free(struct broker *b, struct session *s);
bool im_session_online(const struct session *s);          /* registered for im/inbox */
uint64_t im_session_uid(const struct session *s);         /* the user incarnation registered (0: none yet) */
void im_cursor_ack(struct broker *b, struct session *s, const struct msg *m);
int im_user_online_devices(struct au_shard *sh, uint32_t app, const char *user);

#endif
