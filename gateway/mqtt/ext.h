/* ext.h - broker extensions: services that plug into the MQTT broker through a table of hooks (the IM service
 * today, the push service next), in the spirit of mosquitto's plugin events. The broker knows no extension by
 * name: it calls the hooks of every registered extension, in registration order, at fixed points of a
 * connection's and a session's life (docs/architecture.md "Broker extensions" lists who calls what).
 *
 * Registration happens once, on the main thread, before the shards start (broker_ext_register); the table is
 * read-only afterwards, so shard threads read it without synchronisation. Every hook is optional (NULL). Hooks run
 * on the shard thread that owns the connection / session, and must not block.
 *
 * Extension state lives outside the broker's structs, in slots the broker keeps for each extension:
 *   per shard    a typed slot of struct au_shard (s->slot, core/loop.h), set and cleared by the service's own
 *                steps in the composition root's lifecycle table (gateway/gateway.c): the broker has no shard hooks
 *   per session  struct session's ext[id] (the extension allocates and frees it: session_free)
 *   per message  struct msg's ext (= id + 1 marks a message the extension made) and ext_data[2]; the broker
 *                treats such a message as the extension's: never dropped from a queue (a session that falls
 *                AU_EXT_QUEUE_HARD_MAX behind is disconnected instead), never queued for an offline session and
 *                never stored by the broker (the extension replays it), and its PUBACK is reported (on_ack).
 *   per login    struct broker_login (below), and struct mqtt_conn's ext_login / login_verdict while a
 *                verification runs off the loop. */
#ifndef AU_MQTT_EXT_H
#define AU_MQTT_EXT_H

#include "gateway/mqtt/broker.h"

/* Extensions that may be registered (BROKER_EXT_MAX in broker.h sizes the slots). */
#define BROKER_EXT_PASS (-1000)   /* on_publish: not this extension's PUBLISH, the broker goes on */

/* Who a CONNECT logs in as. The broker fills the defaults (no username: BROKER_LOGIN_ANON, any other username:
 * BROKER_LOGIN_PLAIN, both in the default app and unverified); an extension that recognises the username claims
 * the login (ext = its id + 1) and sets app, kind (its own values) and user. */
enum { BROKER_LOGIN_ANON = 0, BROKER_LOGIN_PLAIN = 1 };
struct broker_login {
    uint32_t app;                 /* the app the client id belongs to */
    uint8_t ext;                  /* 0: the broker's own login (unverified); else the claiming extension's id + 1 */
    uint8_t kind;                 /* ext 0: BROKER_LOGIN_*; else the extension's own */
    uint8_t flags;                /* the extension's own (e.g. a credential was verified) */
    const char *user;             /* the extension's user name, pointing into the CONNECT (or NULL) */
    size_t user_len;
    const char *why;              /* a refusal's reason string (hooks returning -(reason code) may set it) */
};

struct broker_ext {
    const char *name;
    /* CONNECT (handle_connect.c). resolve: 0 = not this extension's username, 1 = claimed (l filled),
     * -(reason code) = refused. Only the claiming extension's authenticate and identity are called. */
    int (*login_resolve)(struct broker *b, struct mqtt_conn *mc, const struct mqtt_connect *c, struct broker_login *l);
    /* 0 = accepted; BROKER_PENDING = the verdict comes later: the extension sets mc->state = MC_AUTH and keeps
     * what it needs in mc->ext_login, then sets mc->login_verdict, mc->state = MC_NEW and kicks the connection
     * (au_conn_kick), which runs the kept CONNECT again; -(reason code) = refused (l->why: reason string). */
    int (*login_authenticate)(struct broker *b, struct mqtt_conn *mc, const struct mqtt_connect *c,
                              struct broker_login *l, const uint8_t *cid, size_t cid_len);
    /* The identity an accepted login proves: the owner recorded in its session (ident.h). */
    void (*login_identity)(struct broker *b, const struct mqtt_connect *c, const struct broker_login *l,
                           struct sess_ident *out);
    /* Sessions (every extension, whichever claimed the login). */
    void (*session_login)(struct broker *b, struct session *s, const struct broker_login *l); /* CONNECT accepted */
    void (*session_online)(struct broker *b, struct session *s);    /* after the CONNACK and the queue's resend */
    void (*session_offline)(struct broker *b, struct session *s);   /* its connection went (or was taken over) */
    void (*session_restored)(struct broker *b, struct session *s);  /* a stored session record was loaded */
    void (*session_free)(struct broker *b, struct session *s);      /* the session ends: free ext[id] */
    void (*conn_gone)(struct mqtt_conn *mc);                        /* the connection closes (any state) */
    /* Topics reserved to the extension: clients may not publish, subscribe, or leave a will on them, and retained
     * messages on them are never served. Returns NULL, or a short text naming them (for reason strings / logs). */
    const char *(*reserved)(const uint8_t *t, size_t len);
    /* A PUBLISH of a connected session (topic resolved and valid, limits checked): BROKER_EXT_PASS = not this
     * extension's; else it was handled (acknowledged by the extension) and this is the handler's result. */
    int (*on_publish)(struct broker *b, struct mqtt_conn *mc, const struct mqtt_publish *pub, const uint8_t *topic,
                      size_t topic_len);
    /* A filter the extension serves itself (not in the subscription index): true = claimed. The broker records it
     * in the session's subscriptions (QoS 1, stored with the session), answers the SUBACK, then calls
     * on_subscribe; UNSUBSCRIBE of it calls on_unsubscribe. Also asked for filters of restored sessions. */
    bool (*sub_claim)(const struct session *s, const uint8_t *f, size_t len);
    void (*on_subscribe)(struct broker *b, struct session *s);
    void (*on_unsubscribe)(struct broker *b, struct session *s);
    /* A PUBACK of a message the extension made (m->ext == id + 1). */
    void (*on_ack)(struct broker *b, struct session *s, const struct msg *m);
};

/* Main thread, before the shards start. Returns the extension's id (0 .. BROKER_EXT_MAX - 1), or -1 when
 * BROKER_EXT_MAX are registered already. The table must outlive the shards. */
int broker_ext_register(const struct broker_ext *e);
int broker_ext_count(void);
/* Forget every registration (unit tests; never while shards run). */
void broker_ext_reset(void);

/* Dispatch, used by the broker's files. */
extern const struct broker_ext *broker_exts[BROKER_EXT_MAX];
extern int broker_nexts;
/* The reserved-topic text of the first extension reserving t, or NULL. */
const char *broker_ext_reserved(const uint8_t *t, size_t len);
int broker_ext_publish(struct broker *b, struct mqtt_conn *mc, const struct mqtt_publish *pub, const uint8_t *topic,
                       size_t topic_len);
/* The id + 1 of the extension serving filter f of session s, 0 = none (an ordinary filter). */
int broker_ext_sub_claim(const struct session *s, const uint8_t *f, size_t len);
void broker_ext_session_login(struct broker *b, struct session *s, const struct broker_login *l);
void broker_ext_session_online(struct broker *b, struct session *s);
void broker_ext_session_offline(struct broker *b, struct session *s);
void broker_ext_session_restored(struct broker *b, struct session *s);
void broker_ext_session_free(struct broker *b, struct session *s);
void broker_ext_conn_gone(struct mqtt_conn *mc);
static inline void broker_ext_ack(struct broker *b, struct session *s, const struct msg *m)
{
    const struct broker_ext *e = broker_exts[m->ext - 1];
    if (e->on_ack) e->on_ack(b, s, m);
}

#endif
