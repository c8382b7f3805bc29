/* imconn.c - the IM service on a device connection: login at CONNECT, `im/send`, reserved topics.
 *
 * CONNECT username forms:
 *   "<appkey>:<username>"  IM login: the user's password (verified on an auth worker thread, never on
 *                          the loop) or a login token (au1.…, an HMAC checked in microseconds).
 *   "<appkey>"             push-only device of that app: no IM topics. Password = a device token bound
 *                          to (appkey, client id) (HMAC, microseconds); without one only where
 *                          allow_anonymous, and then any non-empty password must be a valid token.
 *   anything else / none   plain MQTT in the default app, unverified: only where allow_anonymous.
 * The identity a login proves (imconn_identity) owns the session it opens (gateway/mqtt/ident.h).
 * While a password is being verified the connection reads nothing further; when the answer comes the
 * CONNECT (kept unconsumed in the connection's input) is processed again with the verdict. */
#include "gateway/im/imconn.h"
#include "gateway/im/dir.h"
#include "gateway/im/im.h"
#include "gateway/im/auth.h"
#include "gateway/im/authpool.h"
#include "gateway/im/throttle.h"
#include "gateway/im/imjson.h"
#include "gateway/im/errors.h"
#include "gateway/mqtt/deliver.h"
#include "gateway/mqtt/ext.h"
#include "gateway/mqtt/session.h"
#include "core/log.h"
#include "store/keyspace.h"
#include "gateway/mqtt/persist.h"

#include <jansson.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static struct authpool *g_pool;
static struct auth_token_key g_tkey;
static bool g_tkey_ok;

void imconn_setup(struct authpool *pool, const struct auth_token_key *key)
{
    g_pool = pool;
    if (key) {
        g_tkey = *key;
        g_tkey_ok = true;
    }
}

/* A password check in flight, or a login parked until checks of its account or address in flight end.
 * A check outlives its connection (mc = NULL once that went): its result is recorded in the throttle
 * either way, so a guesser who hangs up still spends his budget. A parked login goes with its connection. */
struct auth_wait {
    struct mqtt_conn *mc;        /* NULL once the connection went away */
    struct auth_wait *park_prev, *park_next;
    bool parked;
    uint32_t ip4;                /* the throttle keys */
    uint16_t tkl;
    char tkey[4 + AUTH_USERNAME_MAX];
};

static _Thread_local struct login_throttle *t_throttle;
/* Parked logins of this shard, oldest first (at most AU_LOGIN_PARKED_MAX). */
static _Thread_local struct auth_wait *t_park_head, *t_park_tail;
static _Thread_local uint32_t t_nparked;

static void park_unlink(struct auth_wait *w)
{
    if (w->park_prev) w->park_prev->park_next = w->park_next;
    else t_park_head = w->park_next;
    if (w->park_next) w->park_next->park_prev = w->park_prev;
    else t_park_tail = w->park_prev;
    w->park_prev = w->park_next = NULL;
    w->parked = false;
    t_nparked--;
}

/* Checks of (tkey, ip4) ended: the parked logins sharing either key run again, oldest first (each is
 * admitted, parked again, or refused if the results blocked the key). */
static void unpark(const char *tkey, size_t tkl, uint32_t ip4)
{
    struct auth_wait *list = NULL, **tail = &list, *next;
    for (struct auth_wait *w = t_park_head; w; w = next) {
        next = w->park_next;
        if ((w->tkl == tkl && memcmp(w->tkey, tkey, tkl) == 0) || (ip4 && w->ip4 == ip4)) {
            park_unlink(w);
            *tail = w;
            tail = &w->park_next;
        }
    }
    while (list) {
        struct auth_wait *w = list;
        list = w->park_next;
        struct mqtt_conn *mc = w->mc; /* NULL: closed while on this list (imconn_conn_gone) */
        free(w);
        if (!mc) continue;
        mc->ext_login = NULL;
        mc->state = MC_NEW;
        au_conn_kick(mc->conn); /* runs the kept CONNECT again */
    }
}

static struct login_throttle *throttle_of(void)
{
    if (!t_throttle) {
        t_throttle = calloc(1, sizeof *t_throttle);
        AU_ASSERT(t_throttle != NULL && login_throttle_init(t_throttle) == 0);
    }
    return t_throttle;
}

void imconn_shard_detach(struct au_shard *s)
{
    while (t_park_head) { /* parked logins of connections not closed yet: forgotten */
        struct auth_wait *w = t_park_head;
        park_unlink(w);
        if (w->mc) w->mc->ext_login = NULL;
        free(w);
    }
    if (g_pool) authpool_shard_detach(g_pool, s->id); /* pending verifications complete (or cancel) here */
    if (t_throttle) {
        login_throttle_free(t_throttle);
        free(t_throttle);
        t_throttle = NULL;
    }
}

void imconn_conn_gone(struct mqtt_conn *mc)
{
    struct auth_wait *w = mc->ext_login;
    if (!w) return;
    mc->ext_login = NULL;
    if (w->parked) {
        park_unlink(w);
        free(w);
    } else {
        w->mc = NULL; /* a check in flight (or a parked login being run again): ends without us */
    }
}

static void verified(struct au_shard *s, void *arg, int ok)
{
    struct auth_wait *w = arg;
    struct mqtt_conn *mc = w->mc;
    char tkey[sizeof w->tkey];
    size_t tkl = w->tkl;
    uint32_t ip4 = w->ip4;
    memcpy(tkey, w->tkey, tkl);
    if (t_throttle)
        login_throttle_end(t_throttle, tkey, tkl, ip4, s ? s->now_ms : au_now_ms(),
                           ok == 1 ? LOGIN_OK : ok == AUTHPOOL_CANCELED ? LOGIN_CANCELED : LOGIN_FAILED);
    free(w);
    if (mc) {
        mc->ext_login = NULL;
        mc->login_verdict = ok == 1 ? 1 : 2; /* 2 = refused */
        mc->state = MC_NEW;
        au_conn_kick(mc->conn); /* runs the kept CONNECT again, now with the verdict */
    }
    if (s && ok != AUTHPOOL_CANCELED) unpark(tkey, tkl, ip4);
}

/* Which app / user a CONNECT is for (no verification yet): 1 = an IM login (out filled), 0 = not one (no
 * username, or a username that is no AppKey form: the broker's plain login), -(reason code) = refused. */
static int imconn_resolve(struct broker *b, struct mqtt_conn *mc, const struct mqtt_connect *c,
                          struct broker_login *out)
{
    if (!c->has_username) return 0;
    const char *u = (const char *)c->username.p;
    size_t ul = c->username.len;
    const char *colon = memchr(u, ':', ul);
    struct im_dir *d = im_dir_of(b->shard);
    if (!colon) {
        struct dir_app *a = ul == IM_APPKEY_LEN ? im_dir_app_by_key(d, u, ul) : NULL;
        if (!a) return 0;
        out->app = a->id;
        out->kind = IM_LOGIN_PUSH;
        return 1;
    }
    struct dir_app *a = im_dir_app_by_key(d, u, (size_t)(colon - u));
    if (!a) return -MQTT_RC_BAD_USER_PASS;
    out->app = a->id;
    out->kind = IM_LOGIN_USER;
    out->user = colon + 1;
    out->user_len = ul - (size_t)(colon - u) - 1;
    if (!auth_username_ok(out->user, out->user_len)) return -MQTT_RC_BAD_USER_PASS;
    return 1;
}

/* The stored hash unknown users are checked against: an unknown user goes down the same path, at the
 * same cost, as a known one. */
static const char *dummy_hash(void)
{
    static _Thread_local char dummy[AUTH_HASH_STR_MAX];
    if (!dummy[0]) auth_password_dummy(dummy);
    return dummy;
}

/* "<appkey>" with a non-empty password: it must be a device token for this client id. */
static int device_authenticate(struct broker *b, const struct mqtt_connect *c, struct broker_login *l,
                               const uint8_t *cid, size_t cid_len)
{
    l->flags &= (uint8_t)~IM_LOGIN_DEVICE_TOKEN;
    if (!c->has_password || c->password.len == 0) return 0; /* no credential: handle_connect decides */
    struct dir_app *a = im_dir_app(im_dir_of(b->shard), l->app);
    if (!a || !g_tkey_ok) return -MQTT_RC_BAD_USER_PASS;
    int r = auth_device_token_verify(&g_tkey, (const char *)c->password.p, c->password.len, a->key, IM_APPKEY_LEN, cid,
                                     cid_len, au_wall_ms() / 1000);
    if (r != AUTH_TOKEN_OK) return -MQTT_RC_BAD_USER_PASS;
    l->flags |= IM_LOGIN_DEVICE_TOKEN;
    return 0;
}

int imconn_device_token(const char *appkey, const uint8_t *cid, size_t cid_len, uint32_t ttl_s, char *out, size_t cap,
                        uint64_t *exp)
{
    if (!g_tkey_ok || ttl_s == 0) return -1;
    uint64_t now = au_wall_ms() / 1000;
    *exp = now + ttl_s;
    return auth_device_token_issue(&g_tkey, appkey, strlen(appkey), cid, cid_len, now, *exp, out, cap);
}

/* The identity an accepted login proves (the owner recorded in its session, compared on resume). */
static void imconn_identity(struct broker *b, const struct mqtt_connect *c, const struct broker_login *l,
                            struct sess_ident *out)
{
    switch (l->kind) {
    case IM_LOGIN_USER: {
        /* The user's never-reused id: a later user of the same name is another owner. */
        struct dir_user *u = im_dir_user(im_dir_of(b->shard), l->app, l->user, l->user_len);
        sess_ident_set(out, SESS_ID_USER, l->app, l->user, l->user_len, u ? u->uid : 0);
        break;
    }
    case IM_LOGIN_PUSH:
        sess_ident_set(out, (l->flags & IM_LOGIN_DEVICE_TOKEN) ? SESS_ID_DEVICE : SESS_ID_PUSH, l->app, NULL, 0, 0);
        break;
    default:
        sess_ident_set(out, SESS_ID_ANON, l->app, NULL, 0, 0);
        break;
    }
}

/* Verify an IM login: 0 = accepted, BROKER_PENDING = the verdict comes later (the CONNECT is run again),
 * -(reason code) = refused. */
static int imconn_authenticate(struct broker *b, struct mqtt_conn *mc, const struct mqtt_connect *c,
                               struct broker_login *l, const uint8_t *cid, size_t cid_len)
{
    if (l->kind == IM_LOGIN_PUSH) return device_authenticate(b, c, l, cid, cid_len);
    if (l->kind != IM_LOGIN_USER) return 0;
    struct im_dir *d = im_dir_of(b->shard);
    struct dir_app *a = im_dir_app(d, l->app);
    struct dir_user *u = im_dir_user(d, l->app, l->user, l->user_len);
    uint64_t now = b->shard->now_ms;
    uint32_t ip4 = mc->conn->peer_ip4;
    char tkey[4 + AUTH_USERNAME_MAX];
    AU_ASSERT(l->user_len <= AUTH_USERNAME_MAX); /* imconn_resolve checked the syntax */
    memcpy(tkey, &l->app, 4);
    memcpy(tkey + 4, l->user, l->user_len);
    size_t tkl = 4 + l->user_len;
    if (mc->login_verdict == 1) { /* verified off the loop (and recorded in the throttle by verified()) */
        mc->login_verdict = 0;
        if (!u) return -MQTT_RC_BAD_USER_PASS; /* deleted meanwhile */
        /* Only a caller who proved the password learns that the user is forbidden. */
        return u->forbidden ? -MQTT_RC_BANNED : 0;
    }
    if (mc->login_verdict == 2) {
        mc->login_verdict = 0;
        return -MQTT_RC_BAD_USER_PASS;
    }
    if (!a || !c->has_password) return -MQTT_RC_BAD_USER_PASS;
    /* A login token: an HMAC checked here in microseconds, for known and unknown users alike (an unknown
     * one is checked as if it existed with generation 0, and refused). A valid token is accepted even
     * while the account is throttled (a guesser cannot lock out a device holding one); a refused token
     * is a throttled failure like a wrong password. */
    if (g_tkey_ok && auth_token_like(c->password.p, c->password.len)) {
        int r = auth_token_verify(&g_tkey, (const char *)c->password.p, c->password.len, a->key, IM_APPKEY_LEN,
                                  l->user, l->user_len, u ? u->uid : 0, u ? u->token_gen : 0, au_wall_ms() / 1000, NULL);
        if (r == AUTH_TOKEN_OK && u) return u->forbidden ? -MQTT_RC_BANNED : 0;
        if (r != AUTH_TOKEN_NOT_TOKEN) {
            struct login_throttle *lt = throttle_of();
            if (login_throttle_check(lt, tkey, tkl, ip4, now)) return -MQTT_RC_CONNECTION_RATE_EXCEEDED;
            login_throttle_fail(lt, tkey, tkl, ip4, now);
            return -MQTT_RC_BAD_USER_PASS;
        }
    }
    /* A password: admitted by the throttle before it is checked; it counts as a failure from now until
     * its result says otherwise (concurrent guesses cannot exceed the budget). A login that only waits for
     * checks of its account or address in flight is parked (the connection reads nothing meanwhile) and
     * runs again when one of them ends: concurrency is queued, only spent budgets are refused. */
    bool held = false;
    bool admitted = login_throttle_begin(throttle_of(), tkey, tkl, ip4, now, &held) == 0;
    if (!admitted && (!held || t_nparked >= AU_LOGIN_PARKED_MAX)) return -MQTT_RC_CONNECTION_RATE_EXCEEDED;
    struct auth_wait *w = calloc(1, sizeof *w);
    AU_ASSERT(w != NULL);
    w->mc = mc;
    w->ip4 = ip4;
    w->tkl = (uint16_t)tkl;
    memcpy(w->tkey, tkey, tkl);
    if (!admitted) {
        w->parked = true;
        w->park_prev = t_park_tail;
        if (t_park_tail) t_park_tail->park_next = w;
        else t_park_head = w;
        t_park_tail = w;
        t_nparked++;
        mc->ext_login = w;
        mc->state = MC_AUTH;
        return BROKER_PENDING;
    }
    /* Unknown users are verified against a dummy hash too, so timing does not tell who exists. */
    const char *stored = u ? u->pw_hash : dummy_hash();
    int r = authpool_verify(g_pool, b->shard->id, l->app, stored, strlen(stored), c->password.p, c->password.len,
                            verified, w);
    if (r != 0) {
        login_throttle_end(throttle_of(), tkey, tkl, ip4, now, LOGIN_CANCELED);
        free(w);
        return r == -EAGAIN ? -MQTT_RC_SERVER_BUSY : -MQTT_RC_BAD_USER_PASS;
    }
    if (!g_pool) return -MQTT_RC_BAD_USER_PASS; /* unreachable: no pool means the callback ran already */
    mc->ext_login = w;
    mc->state = MC_AUTH;
    return BROKER_PENDING;
}

/* After CONNACK: a login token for reconnects, as an MQTT 5 user property is not possible on CONNACK in
 * every client; devices get it on request instead (im/token, see docs/protocol.md). */

/* The session serves this incarnation of its user: false when the user it registered for im/inbox was deleted
 * (and maybe registered again under the same name). Sessions not registered yet have no incarnation to compare;
 * their login checked the directory of the time. */
static bool imconn_same_user(const struct session *s, const struct dir_user *u)
{
    uint64_t uid = im_session_uid(s);
    return !uid || uid == u->uid;
}

/* ------------------------------------------------------------------ reserved topics */

bool imconn_reserved_topic(const uint8_t *t, size_t len)
{
    return (len >= 3 && memcmp(t, "im/", 3) == 0) || (len >= 5 && memcmp(t, "push/", 5) == 0) ||
           (len == 2 && memcmp(t, "im", 2) == 0) || (len == 4 && memcmp(t, "push", 4) == 0);
}

/* ------------------------------------------------------------------ im/send */

struct send_ctx {
    struct pend_ack *pa;         /* NULL for QoS 0 */
    uint64_t suid;               /* session uid, to send an error event */
    char cmid[65];               /* the client's message id, echoed in an error event */
};

/* Deliver a server-made JSON object on the session's im/inbox (events: send errors, tokens, sync ends). */
static void inbox_json(struct broker *b, struct session *s, json_t *o)
{
    char *js = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!js) return;
    static const char inbox[] = "im/inbox";
    struct msg *m = msg_new_raw(s->app, (const uint8_t *)inbox, sizeof inbox - 1, NULL, 0, (const uint8_t *)js,
                                (uint32_t)strlen(js), 1, false, 0, 0);
    free(js);
    session_deliver(b, s, m, 1, false, NULL, 0);
    msg_unref(m);
}

static void error_event(struct broker *b, struct session *s, int code, const char *detail, const char *client_msg_id)
{
    if (!s->mc || !im_session_online(s)) return;
    json_t *o = json_pack("{s:s,s:i,s:s}", "event", "send_error", "code", code, "message",
                          detail && detail[0] ? detail : im_err_message(code));
    if (client_msg_id && client_msg_id[0]) json_object_set_new(o, "client_msg_id", json_string(client_msg_id));
    inbox_json(b, s, o);
}

/* ------------------------------------------------------------------ im/token */

#define IM_TOKEN_TTL_S (30u * 86400u) /* login tokens last 30 days (revoked earlier by password change / ban) */

void imconn_token(struct broker *b, struct mqtt_conn *mc)
{
    struct session *s = mc->sess;
    struct dir_user *u = im_dir_user(im_dir_of(b->shard), s->app, im_session_user(s), strlen(im_session_user(s)));
    struct dir_app *a = im_dir_app(im_dir_of(b->shard), s->app);
    if (!u || !a || !g_tkey_ok || !imconn_same_user(s, u)) return;
    uint64_t now = au_wall_ms() / 1000;
    struct auth_token_claims c = { .app = a->key, .app_len = IM_APPKEY_LEN, .user = im_session_user(s),
                                   .user_len = strlen(im_session_user(s)), .uid = u->uid, .iat = now,
                                   .exp = now + IM_TOKEN_TTL_S, .gen = u->token_gen };
    char tok[AUTH_TOKEN_MAX];
    if (auth_token_issue(&g_tkey, &c, tok, sizeof tok) < 0) return;
    inbox_json(b, s, json_pack("{s:s,s:s,s:I}", "event", "token", "token", tok, "expires", (json_int_t)c.exp));
}

/* ------------------------------------------------------------------ im/sync */

struct sync_ctx {
    uint64_t suid;
    uint64_t conv;
};

static void sync_read(struct au_shard *sh, void *arg, int err, const struct store_kv *kv, uint32_t n, bool more)
{
    struct sync_ctx *x = arg;
    struct broker *b = broker_of(sh);
    struct session *s = session_by_uid(b, x->suid);
    uint64_t last = 0;
    if (s && s->mc) {
        static const char inbox[] = "im/inbox";
        for (uint32_t k = 0; !err && k < n; k++) {
            struct im_msg_rec rec;
            uint64_t seq = im_msg_key_seq(kv[k].k, kv[k].kl);
            if (!seq || !im_msg_rec_decode(kv[k].v, kv[k].vl, &rec) || (rec.kind & IM_KIND_RETRACTED)) continue;
            struct msg *m = msg_new_raw(s->app, (const uint8_t *)inbox, sizeof inbox - 1, NULL, 0, rec.json,
                                        (uint32_t)rec.json_len, 1, false, 0, 0);
            session_deliver(b, s, m, 1, false, NULL, 0); /* not a cursor move: history, not new mail */
            msg_unref(m);
            last = seq;
        }
        inbox_json(b, s, json_pack("{s:s,s:I,s:b,s:I}", "event", "sync_end", "last_seq", (json_int_t)last, "more",
                                   more, "conversation", (json_int_t)(x->conv & 0x7fffffffffffffffull)));
    }
    free(x);
}

/* {"target_type":"single","target_id":"bob"} or {"target_type":"group","target_id":"10001"}, plus
 * "since_seq" (default 0) and "limit" (default and maximum im_offline_msgs): stored messages of that
 * conversation after since_seq, oldest first, then a sync_end event. */
int imconn_sync(struct broker *b, struct mqtt_conn *mc, const struct mqtt_publish *pub)
{
    struct session *s = mc->sess;
    json_t *o = json_loadb((const char *)pub->payload.p, pub->payload.len, JSON_REJECT_DUPLICATES, NULL);
    const char *tt = json_string_value(json_object_get(o, "target_type"));
    const char *tid = json_string_value(json_object_get(o, "target_id"));
    json_int_t since = json_integer_value(json_object_get(o, "since_seq"));
    json_int_t limit = json_integer_value(json_object_get(o, "limit"));
    int code = 0;
    uint64_t conv = 0;
    struct im_dir *d = im_dir_of(b->shard);
    struct dir_user *me = im_dir_user(d, s->app, im_session_user(s), strlen(im_session_user(s)));
    if (!o || !tt || !tid || since < 0 || limit < 0) {
        code = IM_E_SEND_JSON;
    } else if (!me || !imconn_same_user(s, me)) {
        code = IM_E_SEND_NOT_PERMITTED; /* the session's user was deleted (and maybe registered again) */
    } else if (strcmp(tt, "group") == 0) {
        uint64_t gid = strtoull(tid, NULL, 10);
        struct dir_group *g = im_dir_group(d, s->app, gid);
        if (!g) code = IM_E_SEND_NO_GROUP;
        else if (!im_dir_is_member(g, me)) code = IM_E_SEND_NOT_MEMBER;
        else conv = im_conv_group(gid);
    } else if (strcmp(tt, "single") == 0) {
        struct dir_user *peer = im_dir_user(d, s->app, tid, strlen(tid));
        if (!peer) code = IM_E_SEND_NO_USER;
        else conv = im_conv_single(me->uid, peer->uid);
    } else {
        code = IM_E_SEND_JSON;
    }
    json_decref(o);
    if (pub->qos) send_ack(mc, pub->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, pub->packet_id,
                           code ? im_err_mqtt_reason(code) : MQTT_RC_SUCCESS, code ? im_err_message(code) : NULL);
    if (code) {
        error_event(b, s, code, NULL, NULL);
        return 0;
    }
    if (!persist_store()) return 0;
    uint32_t lim = b->cfg->im_offline_msgs;
    if (limit > 0 && (uint64_t)limit < lim) lim = (uint32_t)limit;
    struct sync_ctx *x = malloc(sizeof *x);
    AU_ASSERT(x != NULL);
    x->suid = s->uid;
    x->conv = conv;
    uint8_t start[KS_KEY_MAX], end[KS_KEY_MAX];
    size_t sl = ks_im_msg(start, s->app, conv, (uint64_t)since + 1);
    size_t el = ks_im_msg(end, s->app, conv, UINT64_MAX);
    store_scan(persist_store(), b->shard->id, start, sl, end, el, lim, 0, sync_read, x);
    return 0;
}

static void send_done(struct au_shard *sh, void *arg, int err, uint64_t msgid, uint64_t ctime_ms)
{
    (void)msgid;
    (void)ctime_ms;
    struct send_ctx *x = arg;
    if (!sh) { /* shutdown: the session is gone (its pending acks were orphaned) */
        if (x->pa && !x->pa->s) free(x->pa);
        free(x);
        return;
    }
    struct broker *b = broker_of(sh);
    int code = err == IM_EBLACKLISTED ? IM_E_SEND_BLACKLISTED : err < 0 ? IM_E_SEND_STORE : 0;
    if (x->pa) {
        struct pend_ack *pa = x->pa;
        pa->ready = 1;
        if (code) pa->reason = im_err_mqtt_reason(code);
        if (code == IM_E_SEND_STORE) {
            /* not stored: a refusal (5.0) or a close (3.1.1: its PUBACK cannot refuse) so the device sends again;
             * a QoS 2 exchange ends here (a resend with this packet id is stored again) */
            pa->store_failed = 1;
            if (pa->s && pa->type == MQTT_PUBREC && qos2_release(pa->s, pa->pid))
                persist_qos2in(b, pa->s, pa->pid, true);
        }
        if (!pa->s) free(pa);
        else ack_flush(pa->s);
    }
    if (code) {
        struct session *s = session_by_uid(b, x->suid);
        if (s) error_event(b, s, code, NULL, x->cmid);
    }
    free(x);
}

/* Per-device send rate: a token bucket of IM_SEND_BURST messages refilled at IM_SEND_RATE per second
 * (generous: it stops runaway clients, not chat; 803010 beyond it). */
#define IM_SEND_RATE  1000u
#define IM_SEND_BURST 2000u

static bool rate_ok(struct session *s, uint64_t now_ms)
{
    struct im_sess *is = im_sess_of(s); /* an IM session: it has a user */
    if (!is->tokens_ms) {
        is->tokens = IM_SEND_BURST;
        is->tokens_ms = now_ms;
    }
    uint64_t add = (now_ms - is->tokens_ms) * IM_SEND_RATE / 1000u;
    if (add) {
        is->tokens = (uint32_t)AU_MIN((uint64_t)IM_SEND_BURST, is->tokens + add);
        is->tokens_ms += add * 1000u / IM_SEND_RATE;
    }
    if (!is->tokens) return false;
    is->tokens--;
    return true;
}

static int refuse(struct broker *b, struct mqtt_conn *mc, const struct mqtt_publish *pub, int code, const char *detail,
                  const char *cmid)
{
    struct session *s = mc->sess;
    if (pub->qos) {
        uint8_t rc = im_err_mqtt_reason(code);
        char why[96];
        snprintf(why, sizeof why, "%d %s", code, detail && detail[0] ? detail : im_err_message(code));
        struct pend_ack *pa = calloc(1, sizeof *pa);
        AU_ASSERT(pa != NULL);
        pa->s = s;
        pa->pid = pub->packet_id;
        pa->type = pub->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC;
        pa->reason = rc;
        pa->ready = 1;
        if (s->ack_tail) s->ack_tail->next = pa;
        else s->ack_head = pa;
        s->ack_tail = pa;
        ack_flush(s);
    }
    error_event(b, s, code, detail, cmid);
    return 0;
}

int imconn_send(struct broker *b, struct mqtt_conn *mc, const struct mqtt_publish *pub)
{
    struct session *s = mc->sess;
    static _Thread_local struct im_msg t_msg; /* 6 KB of fields, used only within this call */
    struct im_msg *m = &t_msg;
    struct im_err e;
    char *canon = NULL;
    size_t canon_len = 0;
    /* Parsed, validated and rendered in its stored form once: the sender forced to this session's user
     * (a different from_id the device wrote is refused below). */
    if (im_msg_parse_canon((const char *)pub->payload.p, pub->payload.len, IM_SRC_DEVICE, IM_FROM_USER, im_session_user(s), m,
                           &e, &canon, &canon_len) != 0) {
        int r = refuse(b, mc, pub, e.code, e.msg, NULL);
        return r;
    }
    struct im_dir *d = im_dir_of(b->shard);
    struct dir_user *me = im_dir_user(d, s->app, im_session_user(s), strlen(im_session_user(s)));
    int code = 0;
    struct dir_user *peer = NULL;
    if (!me || !imconn_same_user(s, me)) code = IM_E_SEND_NOT_PERMITTED;
    else if (me->forbidden) code = IM_E_SEND_SILENCED;
    else if (!rate_ok(s, b->shard->now_ms)) code = IM_E_SEND_RATE;
    else if (m->from_id[0] && strcmp(m->from_id, im_session_user(s)) != 0) code = IM_E_SEND_NOT_PERMITTED;
    else if (im_msg_names_other_app(m, im_dir_app(d, s->app) ? im_dir_app(d, s->app)->key : ""))
        code = IM_E_SEND_NOT_PERMITTED; /* no cross-app messaging */
    struct dir_group *g = NULL;
    if (!code && m->target_type == IM_TARGET_GROUP) {
        g = im_dir_group(d, s->app, m->target_gid);
        if (!g) code = IM_E_SEND_NO_GROUP;
        else if (!im_dir_is_member(g, me)) code = IM_E_SEND_NOT_MEMBER;
        else if (im_dir_is_muted(g, me)) code = IM_E_SEND_SILENCED;
    } else if (!code && !(peer = im_dir_user(d, s->app, m->target_id, strlen(m->target_id)))) {
        code = IM_E_SEND_NO_USER;
    }
    if (code) {
        int r = refuse(b, mc, pub, code, NULL, m->client_msg_id);
        free(canon);
        return r;
    }
    struct im_send_req *req = calloc(1, sizeof *req);
    AU_ASSERT(req != NULL);
    req->app = s->app;
    req->kind = IM_KIND_MESSAGE;
    req->target_group = g != NULL;
    req->gid = g ? g->gid : 0;
    memcpy(req->from, im_session_user(s), strlen(im_session_user(s)) + 1);
    req->from_uid = me->uid;
    if (!g) {
        memcpy(req->target, m->target_id, strlen(m->target_id) + 1);
        req->target_uid = peer->uid;
    }
    memcpy(req->client_msg_id, m->client_msg_id, sizeof req->client_msg_id - 1);
    /* The stored/delivered object: what the device sent, with the sender made explicit; the owner shard
     * appends msgid, msg_ctime, create_time and sequence. */
    req->json = canon;
    req->json_len = canon_len;
    req->json_canon = 1;
    struct send_ctx *x = calloc(1, sizeof *x);
    AU_ASSERT(x != NULL);
    x->suid = s->uid;
    memcpy(x->cmid, req->client_msg_id, sizeof x->cmid - 1);
    if (pub->qos) {
        /* Acknowledged once stored durably, in PUBLISH order with the session's other acks. */
        struct pend_ack *pa = calloc(1, sizeof *pa);
        AU_ASSERT(pa != NULL);
        pa->s = s;
        pa->pid = pub->packet_id;
        pa->type = pub->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC;
        if (s->ack_tail) s->ack_tail->next = pa;
        else s->ack_head = pa;
        s->ack_tail = pa;
        x->pa = pa;
    }
    im_send(b->shard, req, send_done, x);
    return 0;
}

/* ------------------------------------------------------------------ the broker extension */

int im_ext_id = -1;

static int ext_authenticate(struct broker *b, struct mqtt_conn *mc, const struct mqtt_connect *c,
                            struct broker_login *l, const uint8_t *cid, size_t cid_len)
{
    /* With allow_anonymous = false a push-only device without a device token is unverified: refused. */
    if (!b->cfg->allow_anonymous && l->kind == IM_LOGIN_PUSH && (!c->has_password || c->password.len == 0)) {
        l->why = "push-only devices need a device token as password";
        return -MQTT_RC_NOT_AUTHORIZED;
    }
    int r = imconn_authenticate(b, mc, c, l, cid, cid_len);
    if (r < 0) l->why = r == -MQTT_RC_BANNED ? "user is forbidden" : "bad user name or password";
    return r;
}

static void ext_session_login(struct broker *b, struct session *s, const struct broker_login *l)
{
    bool user = l->ext == (uint8_t)(im_ext_id + 1) && l->kind == IM_LOGIN_USER;
    im_session_login(b, s, user ? l->user : NULL, user ? l->user_len : 0);
}

static bool ext_sub_claim(const struct session *s, const uint8_t *f, size_t len)
{
    static const char inbox[] = "im/inbox"; /* the user's inbox: delivered by the IM service (im.c) */
    return len == sizeof inbox - 1 && memcmp(f, inbox, len) == 0 && im_session_user(s);
}

/* A resumed session subscribed to its inbox: registered and replayed again. */
static void ext_session_online(struct broker *b, struct session *s)
{
    if (!im_session_user(s)) return;
    for (uint32_t i = 0; i < s->nsubs; i++)
        if (ext_sub_claim(s, s->subs[i].filter, s->subs[i].len)) im_session_inbox(b, s);
}

/* A stored session: an "<appkey>:<user>" login's user. */
static void ext_session_restored(struct broker *b, struct session *s)
{
    const char *colon = s->username ? strchr(s->username, ':') : NULL;
    if (colon) im_session_login(b, s, colon + 1, strlen(colon + 1));
    else im_session_login(b, s, NULL, 0);
}

static const char *ext_reserved(const uint8_t *t, size_t len)
{
    return imconn_reserved_topic(t, len) ? "im/, push/" : NULL;
}

static int ext_publish(struct broker *b, struct mqtt_conn *mc, const struct mqtt_publish *pub, const uint8_t *t,
                       size_t len)
{
    struct session *s = mc->sess;
    if (len < 7 || memcmp(t, "im/", 3) != 0 || !im_session_user(s)) return BROKER_EXT_PASS;
    if (len == 7 && memcmp(t, "im/send", 7) == 0) {
        if (pub->qos == 2) qos2_add(s, pub->packet_id);
        return imconn_send(b, mc, pub);
    }
    if (len == 7 && memcmp(t, "im/sync", 7) == 0) {
        if (pub->qos == 2) qos2_add(s, pub->packet_id);
        return imconn_sync(b, mc, pub);
    }
    if (len == 8 && memcmp(t, "im/token", 8) == 0) {
        if (pub->qos) send_ack(mc, pub->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, pub->packet_id, MQTT_RC_SUCCESS, NULL);
        if (pub->qos == 2) qos2_add(s, pub->packet_id);
        imconn_token(b, mc);
        return 0;
    }
    return BROKER_EXT_PASS;
}

static const struct broker_ext im_ext = {
    .name = "im",
    .login_resolve = imconn_resolve,
    .login_authenticate = ext_authenticate,
    .login_identity = imconn_identity,
    .session_login = ext_session_login,
    .session_online = ext_session_online,
    .session_offline = im_session_offline,
    .session_restored = ext_session_restored,
    .session_free = im_session_free,
    .conn_gone = imconn_conn_gone,
    .reserved = ext_reserved,
    .on_publish = ext_publish,
    .sub_claim = ext_sub_claim,
    .on_subscribe = im_session_inbox,
    .on_unsubscribe = im_session_offline,
    .on_ack = im_cursor_ack,
};

int im_ext_register(void)
{
    AU_ASSERT(im_ext_id < 0);
    im_ext_id = broker_ext_register(&im_ext);
    return im_ext_id < 0 ? -1 : 0;
}
