/* handle_connect.c - CONNECT: ownership hand-off, authentication, session create/resume/takeover, CONNACK. */
#include "gateway/mqtt/broker.h"
#include "gateway/mqtt/deliver.h"
#include "gateway/mqtt/handle.h"
#include "gateway/mqtt/session.h"
#include "gateway/mqtt/persist.h"
#include "gateway/mqtt/ext.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static enum mqtt_handled refuse(struct broker *b, struct mqtt_conn *mc, uint8_t version, uint8_t reason,
                                const char *why)
{
    uint8_t out[512];
    struct mqtt_props pr;
    memset(&pr, 0, sizeof pr);
    if (version == MQTT_V5 && why) {
        pr.present = MQTT_PBIT(MQTT_PROP_REASON_STRING);
        pr.reason_string.p = (const uint8_t *)why;
        pr.reason_string.len = (uint16_t)strlen(why);
    }
    uint8_t code = version == MQTT_V5 ? reason : mqtt_v3_connack_code(reason);
    size_t n = mqtt_enc_connack(out, sizeof out, version == MQTT_V5 ? MQTT_V5 : MQTT_V311, false, code, &pr);
    AU_ASSERT(n > 0);
    au_conn_write(mc->conn, out, n);
    BS_INC(b, connacks_refused);
    au_info("CONNECT refused: %s (%s)", mqtt_rc_string(reason), why ? why : "");
    mc->state = MC_CLOSING;
    return MQTT_HANDLED_CLOSE;
}

/* A server-assigned client id that this shard owns (so the session needs no hand-off). */
static size_t assign_client_id(struct broker *b, uint32_t app, char *out, size_t cap)
{
    for (;;) {
        uint64_t r = XXH3_64bits_withSeed(&b->next_uid, sizeof b->next_uid, au_now_us());
        b->next_uid++;
        int n = snprintf(out, cap, "auto-%016llx", (unsigned long long)r);
        if (broker_owner_shard(b, app, (const uint8_t *)out, (size_t)n) == b->shard->id) return (size_t)n;
    }
}

static struct msg *make_will(const struct mqtt_connect *c, uint32_t app, uint64_t origin, uint64_t now, uint32_t *delay)
{
    *delay = 0;
    if (!c->will_flag) return NULL;
    struct msg *m = msg_new(app, c->will_topic.p, c->will_topic.len, c->version == MQTT_V5 ? &c->will_props : NULL,
                            c->will_payload.p, c->will_payload.len, c->will_qos, c->will_retain, origin, now);
    if (c->version == MQTT_V5 && (c->will_props.present & MQTT_PBIT(MQTT_PROP_WILL_DELAY)))
        *delay = c->will_props.will_delay > AU_MQTT_MAX_WILL_DELAY ? AU_MQTT_MAX_WILL_DELAY : c->will_props.will_delay;
    return m;
}

/* Who the CONNECT logs in as: the first extension that claims the username decides (ext.h); otherwise the
 * broker's own unverified login in the default app. 0 or -(reason code) (l->why: reason string, or NULL). */
static int login_resolve(struct broker *b, struct mqtt_conn *mc, const struct mqtt_connect *c, struct broker_login *l)
{
    for (int i = 0; i < broker_nexts; i++) {
        if (!broker_exts[i]->login_resolve) continue;
        memset(l, 0, sizeof *l);
        l->app = AU_DEFAULT_APP;
        int r = broker_exts[i]->login_resolve(b, mc, c, l);
        if (r < 0) return r;
        if (r > 0) {
            l->ext = (uint8_t)(i + 1);
            return 0;
        }
    }
    memset(l, 0, sizeof *l);
    l->app = AU_DEFAULT_APP;
    l->kind = c->has_username ? BROKER_LOGIN_PLAIN : BROKER_LOGIN_ANON;
    return 0;
}

/* The identity an accepted login proves: the claiming extension's, else anonymous / the plain username. */
static void login_identity(struct broker *b, const struct mqtt_connect *c, const struct broker_login *l,
                           struct sess_ident *out)
{
    if (l->ext && broker_exts[l->ext - 1]->login_identity) {
        broker_exts[l->ext - 1]->login_identity(b, c, l, out);
    } else if (!l->ext && l->kind == BROKER_LOGIN_PLAIN) {
        sess_ident_set(out, SESS_ID_PLAIN, l->app, (const char *)c->username.p, c->username.len, 0);
    } else {
        sess_ident_set(out, SESS_ID_ANON, l->app, NULL, 0, 0);
    }
}

enum mqtt_handled handle_connect(struct broker *b, struct mqtt_conn *mc, const struct mqtt_packet *p)
{
    const struct mqtt_connect *c = &p->u.connect;
    const struct au_config *cfg = b->cfg;
    struct au_shard *sh = b->shard;
    uint32_t app = AU_DEFAULT_APP;
    uint8_t ver = c->version;
    char cidbuf[AU_MQTT_MAX_CLIENT_ID + 1];
    const uint8_t *cid = c->client_id.p;
    size_t cid_len = c->client_id.len;
    bool assigned = false;

    if (cid_len > AU_MQTT_MAX_CLIENT_ID) return refuse(b, mc, ver, MQTT_RC_CLIENT_ID_INVALID, "client id too long");
    if (cid_len == 0) {
        if (ver != MQTT_V5 && (!c->clean_start || ver == MQTT_V31))
            return refuse(b, mc, ver, MQTT_RC_CLIENT_ID_INVALID, "empty client id needs clean session");
        cid_len = assign_client_id(b, app, cidbuf, sizeof cidbuf);
        cid = (const uint8_t *)cidbuf;
        assigned = true;
    }
    /* Which app (and user) this is: client ids are unique per app. An extension may claim the username. */
    struct broker_login login;
    int lr = login_resolve(b, mc, c, &login);
    if (lr < 0) return refuse(b, mc, ver, (uint8_t)-lr, login.why ? login.why : "bad user name or password");
    if (login.app != app && assigned) {
        cid_len = assign_client_id(b, login.app, cidbuf, sizeof cidbuf);
        cid = (const uint8_t *)cidbuf;
    }
    app = login.app;
    /* The session lives on the shard that owns the identity: move the connection there first. */
    int owner = broker_owner_shard(b, app, cid, cid_len);
    if (owner != sh->id) {
        /* A full owner shard cannot take the session: refuse here rather than move the connection for
         * nothing (the owner checks again, and a failed move is refused the same way: mc_handoff_failed). */
        if (!au_shard_has_room(sh->all[owner]))
            return refuse(b, mc, ver, MQTT_RC_SERVER_UNAVAILABLE, "server full");
        au_timer_cancel(&b->shard->timers, &mc->ka_timer);
        mc->version = ver; /* the CONNACK's format, should the move fail */
        if (au_conn_handoff(mc->conn, owner, mc) == 0) return MQTT_HANDLED_HANDOFF;
        au_warn("handoff to shard %d refused", owner);
        return MQTT_HANDLED_CLOSE;
    }
    if (au_shard_over_limit(sh)) {
        /* Taken past max_conns (in the accept queue when the shard filled, or moved here meanwhile). A
         * takeover may go on: it releases the connection it replaces. */
        struct session *cur = session_find(b, app, cid, cid_len);
        if (!cur || !cur->mc) return refuse(b, mc, ver, MQTT_RC_SERVER_UNAVAILABLE, "server full");
    }
    if (c->version == MQTT_V5 && (c->props.present & MQTT_PBIT(MQTT_PROP_AUTH_METHOD)))
        return refuse(b, mc, ver, MQTT_RC_BAD_AUTH_METHOD, "no enhanced authentication methods are supported");
    /* With allow_anonymous = false nothing unverified gets in: no username and a plain username (no credential
     * source yet) are refused; an extension's login is verified by the extension (which applies the same rule
     * to its own unverified forms). */
    if (!cfg->allow_anonymous && !login.ext)
        return refuse(b, mc, ver, MQTT_RC_NOT_AUTHORIZED,
                      "unverified connections are not allowed: log in as <appkey>:<user> or <appkey> with a device token");
    if (login.ext) {
        const struct broker_ext *e = broker_exts[login.ext - 1];
        int ar = e->login_authenticate ? e->login_authenticate(b, mc, c, &login, cid, cid_len) : 0;
        if (ar == BROKER_PENDING) return MQTT_HANDLED_PENDING;
        if (ar < 0) return refuse(b, mc, ver, (uint8_t)-ar, login.why ? login.why : "bad user name or password");
    }
    if (c->will_flag) {
        if (!topic_name_valid(c->will_topic.p, c->will_topic.len))
            return refuse(b, mc, ver, MQTT_RC_TOPIC_NAME_INVALID, "invalid will topic");
        const char *rsv = broker_ext_reserved(c->will_topic.p, c->will_topic.len);
        if (rsv) {
            char why[96];
            snprintf(why, sizeof why, "will topic is reserved to the service (%s)", rsv);
            return refuse(b, mc, ver, MQTT_RC_TOPIC_NAME_INVALID, why);
        }
        if (c->will_retain && !cfg->retain_available)
            return refuse(b, mc, ver, MQTT_RC_RETAIN_NOT_SUPPORTED, "retain not available");
    }

    /* Connection parameters. */
    mc->version = ver == MQTT_V5 ? MQTT_V5 : MQTT_V311;
    mc->client_recv_max = 65535;
    mc->client_max_packet = 0;
    uint32_t expiry;
    if (ver == MQTT_V5) {
        if (c->props.present & MQTT_PBIT(MQTT_PROP_RECEIVE_MAX)) mc->client_recv_max = c->props.receive_max;
        if (c->props.present & MQTT_PBIT(MQTT_PROP_MAX_PACKET)) mc->client_max_packet = c->props.max_packet;
        if (c->props.present & MQTT_PBIT(MQTT_PROP_REQ_PROBLEM_INFO)) mc->req_problem_info = c->props.req_problem_info;
        mc->alias_max = (uint16_t)cfg->topic_alias_max;
        expiry = (c->props.present & MQTT_PBIT(MQTT_PROP_SESSION_EXPIRY)) ? c->props.session_expiry : 0;
    } else {
        expiry = c->clean_start ? 0 : session_v3_expiry(cfg); /* persistent_session_expiry (0 = never) */
    }
    bool expiry_capped = false;
    if (ver == MQTT_V5 && expiry > cfg->max_session_expiry) {
        expiry = cfg->max_session_expiry;
        expiry_capped = true;
    }
    uint16_t keepalive = c->keepalive;
    bool ka_changed = false;
    if (ver == MQTT_V5 && cfg->max_keepalive && (keepalive == 0 || keepalive > cfg->max_keepalive)) {
        keepalive = (uint16_t)cfg->max_keepalive;
        ka_changed = true;
    }

    /* Session: takeover, clean start, resume or create. Only the identity that owns a session resumes or
     * takes it over; any other identity ends it (connection, IM state, queue, stored records) and gets a
     * fresh one: nothing of it reaches another owner. */
    struct sess_ident ident = { 0 };
    login_identity(b, c, &login, &ident);
    struct session *s = session_find(b, app, cid, cid_len);
    bool same = s && sess_ident_eq(&s->ident, &ident);
    if (s && s->mc) {
        struct mqtt_conn *old = s->mc;
        BS_INC(b, takeovers);
        au_info("session takeover client=%s%s", s->client_id, same ? "" : " by another identity: session ended");
        mqtt_send_disconnect(old, MQTT_RC_SESSION_TAKEN_OVER, "another connection took over this session");
        old->sess = NULL;
        old->state = MC_CLOSING;
        s->mc = NULL;
        BS_ADD(b, sessions_online, (uint64_t)-1);
        au_conn_close(old->conn);
        /* The old connection's extension state goes with it (IM: the new one registers and replays afresh). */
        broker_ext_session_offline(b, s);
        /* The old connection ended abnormally: its will goes out now unless a delay is pending and the
         * session continues (a reconnect within the delay cancels it, MQTT 5 3.1.3.2.2). */
        if (s->will.m && (s->will.delay == 0 || c->clean_start || s->expiry == 0 || !same)) broker_publish_will(b, s);
    } else if (s && !same) {
        au_info("session of client=%s (%s) ended: a %s connected with its client id", s->client_id,
                sess_ident_kind_name(s->ident.kind), sess_ident_kind_name(ident.kind));
    }
    bool present = false;
    if (s && !same) {
        session_end(b, s);
        s = NULL;
    }
    if (s && c->clean_start) {
        session_end(b, s);
        s = NULL;
    }
    if (s) {
        present = true;
        session_resume(b, s);
    } else {
        s = session_create(b, app, cid, cid_len);
    }
    s->version = mc->version;
    s->expiry = expiry;
    s->persistent = expiry != 0;
    free(s->username);
    s->username = c->has_username ? strndup((const char *)c->username.p, c->username.len) : NULL;
    /* The extensions learn the session's login (IM: its state is keyed by the user, detached before the user
     * is replaced). */
    broker_ext_session_login(b, s, &login);
    sess_ident_move(&s->ident, &ident);
    uint32_t will_delay;
    if (s->will.m) msg_unref(s->will.m);
    s->will.m = make_will(c, app, s->uid, sh->now_ms, &will_delay);
    s->will.delay = will_delay;
    s->will_expiry = (ver == MQTT_V5 && (c->will_props.present & MQTT_PBIT(MQTT_PROP_MESSAGE_EXPIRY))) ? c->will_props.message_expiry : 0;

    if (s->persistent) {
        persist_session(b, s);
    } else if (s->stored) {
        persist_session_delete(b, s); /* resumed with expiry 0: no longer kept */
    }
    mc->sess = s;
    s->mc = mc;
    mc->state = MC_CONNECTED;
    BS_INC(b, connects);
    BS_ADD(b, sessions_online, 1);

    /* CONNACK */
    uint8_t out[1024];
    struct mqtt_props pr;
    memset(&pr, 0, sizeof pr);
    if (ver == MQTT_V5) {
        pr.present = MQTT_PBIT(MQTT_PROP_RECEIVE_MAX) | MQTT_PBIT(MQTT_PROP_MAX_PACKET) |
                     MQTT_PBIT(MQTT_PROP_TOPIC_ALIAS_MAX);
        pr.receive_max = (uint16_t)cfg->receive_max;
        pr.max_packet = cfg->max_packet;
        pr.topic_alias_max = (uint16_t)cfg->topic_alias_max;
        if (!cfg->retain_available) {
            pr.present |= MQTT_PBIT(MQTT_PROP_RETAIN_AVAILABLE);
            pr.retain_available = 0;
        }
        if (assigned) {
            pr.present |= MQTT_PBIT(MQTT_PROP_ASSIGNED_CLIENT_ID);
            pr.assigned_client_id.p = cid;
            pr.assigned_client_id.len = (uint16_t)cid_len;
        }
        if (ka_changed) {
            pr.present |= MQTT_PBIT(MQTT_PROP_SERVER_KEEPALIVE);
            pr.server_keepalive = keepalive;
        }
        if (expiry_capped) {
            pr.present |= MQTT_PBIT(MQTT_PROP_SESSION_EXPIRY);
            pr.session_expiry = expiry;
        }
    }
    size_t n = mqtt_enc_connack(out, sizeof out, mc->version, present, MQTT_RC_SUCCESS, &pr);
    AU_ASSERT(n > 0);
    au_conn_write(mc->conn, out, n);

    mc->ka_ms = keepalive ? (uint32_t)keepalive * 1500u : 0;
    if (mc->ka_ms) au_timer_arm(&b->shard->timers, &mc->ka_timer, sh->now_ms + mc->ka_ms);
    else au_timer_cancel(&b->shard->timers, &mc->ka_timer);

    if (present) session_resend_inflight(b, s);
    session_pump(b, s);
    broker_ext_session_online(b, s); /* e.g. IM: a resumed inbox subscription registers and replays */
    return MQTT_HANDLED_OK;
}
