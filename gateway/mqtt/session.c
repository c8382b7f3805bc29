/* session.c - session lifecycle (see session.h) and wills. */
#include "gateway/mqtt/session.h"
#include "gateway/mqtt/deliver.h"
#include "gateway/mqtt/shared.h"
#include "gateway/mqtt/persist.h"
#include "gateway/mqtt/ext.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

static void exp_fire(struct au_timer *t);

static size_t make_key(char *out, uint32_t app, const uint8_t *cid, size_t len)
{
    memcpy(out, &app, 4);
    memcpy(out + 4, cid, len);
    out[4 + len] = 0;
    return 4 + len;
}

uint32_t session_v3_expiry(const struct au_config *cfg)
{
    if (!cfg->persistent_session_expiry) return UINT32_MAX;
    return AU_MIN(cfg->persistent_session_expiry, cfg->max_session_expiry);
}

struct session *session_by_uid(struct broker *b, uint64_t uid) { return au_hash_get_u64(&b->by_uid, uid); }

struct session *session_find(struct broker *b, uint32_t app, const uint8_t *cid, size_t len)
{
    char key[4 + AU_MQTT_MAX_CLIENT_ID + 1];
    AU_ASSERT(len <= AU_MQTT_MAX_CLIENT_ID);
    size_t k = make_key(key, app, cid, len);
    return au_hash_get(&b->sessions, key, k);
}

struct session *session_create(struct broker *b, uint32_t app, const uint8_t *cid, size_t len)
{
    struct session *s = calloc(1, sizeof *s);
    AU_ASSERT(s != NULL);
    s->key = malloc(4 + len + 1);
    AU_ASSERT(s->key != NULL);
    make_key(s->key, app, cid, len);
    s->client_id = s->key + 4;
    s->cid_len = (uint16_t)len;
    s->app = app;
    s->uid = ((uint64_t)b->shard->id << 48) | ++b->next_uid;
    s->owner = b;
    s->ident.kind = SESS_ID_NONE; /* until a login (or its stored record) says who owns it */
    au_timer_init(&s->exp_timer, exp_fire);
    void *prev = au_hash_put(&b->sessions, s->key, 4 + len, s);
    AU_ASSERT(prev == NULL);
    au_hash_put_u64(&b->by_uid, s->uid, s);
    BS_ADD(b, sessions, 1);
    return s;
}

void session_drop_subs(struct broker *b, struct session *s)
{
    for (uint32_t i = 0; i < s->nsubs; i++) {
        struct sess_sub *ss = &s->subs[i];
        struct topic_sub ts;
        if (topic_sub_parse(ss->filter, ss->len, &ts)) {
            if (sub_remove(&b->subs, s->app, ts.filter, ts.filter_len, s, ts.share, ts.share_len) == 1 && ts.share)
                shared_member(b, s->app, ts.share, ts.share_len, ts.filter, ts.filter_len, -1);
        }
        free(ss->filter);
    }
    BS_ADD(b, subscriptions, (uint64_t)0 - s->nsubs);
    free(s->subs);
    s->subs = NULL;
    s->nsubs = 0;
}

static void free_list(struct outmsg *o)
{
    while (o) {
        struct outmsg *n = o->next;
        outmsg_free(o);
        o = n;
    }
}

void session_free(struct broker *b, struct session *s)
{
    AU_ASSERT(s->mc == NULL);
    au_timer_cancel(&b->shard->timers, &s->exp_timer);
    au_hash_del_u64(&b->by_uid, s->uid);
    broker_ext_session_free(b, s);
    ack_release_all(s);
    session_drop_subs(b, s);
    free_list(s->if_head);
    free_list(s->q_head);
    msg_unref(s->will.m);
    free(s->qos2_in);
    free(s->username);
    sess_ident_free(&s->ident);
    free(s->key);
    free(s);
    BS_ADD(b, sessions, (uint64_t)-1);
}

void broker_publish_will(struct broker *b, struct session *s)
{
    struct msg *m = s->will.m;
    s->will.m = NULL;
    s->will_at = 0;
    if (!m) return;
    /* A will on a reserved topic is refused at CONNECT; one restored from a record written before that is dropped. */
    if (!broker_ext_reserved(msg_topic(m), m->topic_len) &&
        au_acl_check(b->cfg, AU_ACL_PUBLISH, s->username, s->client_id, (const char *)msg_topic(m), m->topic_len)) {
        /* Message expiry runs from when the will is published, not from CONNECT. */
        m->expire_at = s->will_expiry ? b->shard->now_ms + (uint64_t)s->will_expiry * 1000u : 0;
        BS_INC(b, wills_sent);
        broker_publish(b, m);
    }
    msg_unref(m);
}

void session_end(struct broker *b, struct session *s)
{
    if (s->will.m) broker_publish_will(b, s);
    persist_session_delete(b, s);
    void *v = au_hash_del(&b->sessions, s->key, 4u + s->cid_len);
    AU_ASSERT(v == s);
    session_free(b, s);
}

void session_resume(struct broker *b, struct session *s)
{
    au_timer_cancel(&b->shard->timers, &s->exp_timer);
    s->expire_at = 0;
    s->will_at = 0; /* a reconnect within the will delay cancels the will */
}

static void arm_exp(struct broker *b, struct session *s)
{
    uint64_t at = s->expire_at;
    if (s->will_at && (!at || s->will_at < at)) at = s->will_at;
    if (at) au_timer_arm(&b->shard->timers, &s->exp_timer, at);
    else au_timer_cancel(&b->shard->timers, &s->exp_timer);
}

static void exp_fire(struct au_timer *t)
{
    struct session *s = AU_CONTAINER_OF(t, struct session, exp_timer);
    struct broker *b = s->owner;
    uint64_t now = b->shard->now_ms;
    if (s->mc) return;
    if (s->will_at && now >= s->will_at) broker_publish_will(b, s);
    if (s->expire_at && now >= s->expire_at) {
        session_end(b, s);
        return;
    }
    arm_exp(b, s);
}

void session_detach(struct broker *b, struct session *s, bool send_will)
{
    uint64_t now = b->shard->now_ms;
    broker_ext_session_offline(b, s); /* e.g. IM: offline devices get messages by replay at their next login */
    s->owner = b;
    if (!send_will && s->will.m) {
        msg_unref(s->will.m);
        s->will.m = NULL;
    }
    if (s->expiry == 0) {
        session_end(b, s); /* publishes the will, if any */
        return;
    }
    if (s->will.m) {
        if (s->will.delay == 0) broker_publish_will(b, s);
        else s->will_at = now + (uint64_t)s->will.delay * 1000u;
    }
    s->expire_at = s->expiry == UINT32_MAX ? 0 : now + (uint64_t)s->expiry * 1000u;
    persist_session(b, s); /* last seen now: the expiry counts from here, across restarts too */
    arm_exp(b, s);
}
