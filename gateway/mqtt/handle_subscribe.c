/* handle_subscribe.c - SUBSCRIBE and UNSUBSCRIBE: validation, ACL, quotas, retained delivery. */
#include "gateway/mqtt/broker.h"
#include "gateway/mqtt/deliver.h"
#include "gateway/mqtt/shared.h"
#include "gateway/mqtt/handle.h"
#include "gateway/mqtt/persist.h"
#include "gateway/mqtt/ext.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

static struct sess_sub *sess_sub_find(struct session *s, const uint8_t *f, size_t len)
{
    for (uint32_t i = 0; i < s->nsubs; i++)
        if (s->subs[i].len == len && memcmp(s->subs[i].filter, f, len) == 0) return &s->subs[i];
    return NULL;
}

struct retained_ctx {
    struct broker *b;
    struct session *s;
    uint8_t qos;
    uint32_t sub_id;
};

static bool send_retained(void *ctx, void *msg)
{
    struct retained_ctx *r = ctx;
    struct msg *m = msg;
    uint8_t qos = m->qos < r->qos ? m->qos : r->qos;
    session_deliver(r->b, r->s, m, qos, true, &r->sub_id, r->sub_id ? 1 : 0);
    return true;
}

enum mqtt_handled handle_subscribe(struct broker *b, struct mqtt_conn *mc, const struct mqtt_packet *p)
{
    const struct mqtt_subscribe *sub = &p->u.subscribe;
    struct session *s = mc->sess;
    const struct au_config *cfg = b->cfg;
    bool v5 = mc->version == MQTT_V5;
    uint32_t sub_id = (v5 && sub->props.n_sub_ids) ? sub->props.sub_ids[0] : 0;
    uint8_t codes[256];
    uint8_t *rc = sub->count <= sizeof codes ? codes : malloc(sub->count);
    AU_ASSERT(rc != NULL);
    /* Retained messages go out after the SUBACK: remember which entries want them. */
    uint8_t *want_retained = calloc(sub->count, 1);
    AU_ASSERT(want_retained != NULL);

    uint32_t off = 0, i = 0;
    uint32_t ops0 = persist_pending_ops(b);
    uint32_t want_ext = 0; /* extensions whose filters were subscribed (bit id): told after the SUBACK */
    struct mqtt_sub_entry e;
    while (mqtt_sub_next(sub, mc->version, false, &off, &e)) {
        struct topic_sub ts;
        uint8_t code;
        int ext = broker_nexts ? broker_ext_sub_claim(s, e.filter.p, e.filter.len) : 0;
        if (ext) {
            /* A filter an extension serves (e.g. the IM user's inbox): not a topic of the trie. */
            struct sess_sub *ss = sess_sub_find(s, e.filter.p, e.filter.len);
            if (!ss) {
                s->subs = realloc(s->subs, sizeof *s->subs * (s->nsubs + 1));
                AU_ASSERT(s->subs != NULL);
                ss = &s->subs[s->nsubs++];
                ss->filter = malloc(e.filter.len);
                AU_ASSERT(ss->filter != NULL);
                memcpy(ss->filter, e.filter.p, e.filter.len);
                ss->len = e.filter.len;
            }
            ss->opts = (struct sub_opts){ .qos = 1 };
            persist_sub(b, s, ss->filter, ss->len, &ss->opts, false);
            want_ext |= 1u << (ext - 1);
            code = e.qos ? 1 : 0;
        } else if (!topic_sub_parse(e.filter.p, e.filter.len, &ts)) {
            code = v5 ? MQTT_RC_TOPIC_FILTER_INVALID : 0x80;
        } else if (broker_ext_reserved(ts.filter, ts.filter_len)) {
            code = v5 ? MQTT_RC_NOT_AUTHORIZED : 0x80;
        } else if (ts.share && e.no_local) {
            free(want_retained);
            if (rc != codes) free(rc);
            mqtt_protocol_close(mc, MQTT_RC_PROTOCOL_ERROR, "no local on a shared subscription");
            return MQTT_HANDLED_CLOSE;
        } else if (!au_acl_check(cfg, AU_ACL_SUBSCRIBE, s->username, s->client_id, (const char *)ts.filter,
                                 ts.filter_len)) {
            code = v5 ? MQTT_RC_NOT_AUTHORIZED : 0x80;
        } else {
            struct sess_sub *ss = sess_sub_find(s, e.filter.p, e.filter.len);
            if (!ss && s->nsubs >= cfg->max_subs) {
                code = v5 ? MQTT_RC_QUOTA_EXCEEDED : 0x80;
            } else {
                struct sub_opts o = { .sub_id = sub_id, .qos = e.qos, .no_local = e.no_local,
                                      .retain_as_published = e.retain_as_published,
                                      .retain_handling = e.retain_handling };
                int r = sub_add(&b->subs, s->app, ts.filter, ts.filter_len, s, &o, ts.share, ts.share_len);
                if (r < 0) {
                    code = v5 ? MQTT_RC_UNSPECIFIED : 0x80;
                } else {
                    bool is_new = r == 0;
                    if (!ss) {
                        s->subs = realloc(s->subs, sizeof *s->subs * (s->nsubs + 1));
                        AU_ASSERT(s->subs != NULL);
                        ss = &s->subs[s->nsubs++];
                        ss->filter = malloc(e.filter.len);
                        AU_ASSERT(ss->filter != NULL);
                        memcpy(ss->filter, e.filter.p, e.filter.len);
                        ss->len = e.filter.len;
                        BS_INC(b, subscriptions);
                        if (ts.share) shared_member(b, s->app, ts.share, ts.share_len, ts.filter, ts.filter_len, +1);
                    }
                    ss->opts = o;
                    persist_sub(b, s, ss->filter, ss->len, &o, false);
                    code = e.qos;
                    /* MQTT 5 3.3.1.3: never retained messages for shared subscriptions. */
                    if (!ts.share && (e.retain_handling == 0 || (e.retain_handling == 1 && is_new)))
                        want_retained[i] = 1;
                }
            }
        }
        rc[i++] = code;
    }
    AU_ASSERT(i == sub->count);
    BS_INC(b, subscribes);
    uint8_t stackbuf[512];
    size_t cap = 64 + sub->count;
    uint8_t *out = cap <= sizeof stackbuf ? stackbuf : malloc(cap);
    AU_ASSERT(out != NULL);
    size_t n = mqtt_enc_suback(out, cap, mc->version, MQTT_SUBACK, sub->packet_id, rc, sub->count, NULL);
    AU_ASSERT(n > 0);
    /* A persistent session's subscriptions are acknowledged once durable (a crash must not lose them); retained
     * messages may precede that SUBACK (MQTT 3.8.4: permitted). */
    ack_after_batch(b, s, out, n, persist_pending_ops(b) != ops0);
    if (out != stackbuf) free(out);

    off = 0;
    i = 0;
    while (mqtt_sub_next(sub, mc->version, false, &off, &e)) {
        if (want_retained[i++]) {
            struct retained_ctx r = { b, s, e.qos, sub_id };
            retained_match(&b->retained, s->app, e.filter.p, e.filter.len, send_retained, &r);
        }
    }
    free(want_retained);
    if (rc != codes) free(rc);
    for (int k = 0; want_ext && k < broker_nexts; k++) /* after the SUBACK: e.g. IM's offline messages follow it */
        if ((want_ext & (1u << k)) && broker_exts[k]->on_subscribe) broker_exts[k]->on_subscribe(b, s);
    return MQTT_HANDLED_OK;
}

enum mqtt_handled handle_unsubscribe(struct broker *b, struct mqtt_conn *mc, const struct mqtt_packet *p)
{
    const struct mqtt_subscribe *sub = &p->u.subscribe;
    struct session *s = mc->sess;
    uint8_t codes[256];
    uint8_t *rc = sub->count <= sizeof codes ? codes : malloc(sub->count);
    AU_ASSERT(rc != NULL);
    uint32_t off = 0, i = 0;
    uint32_t ops0 = persist_pending_ops(b);
    struct mqtt_sub_entry e;
    while (mqtt_sub_next(sub, mc->version, true, &off, &e)) {
        struct topic_sub ts;
        uint8_t code = MQTT_RC_NO_SUBSCRIPTION_EXISTED;
        struct sess_sub *ss = sess_sub_find(s, e.filter.p, e.filter.len);
        int ext = ss && broker_nexts ? broker_ext_sub_claim(s, ss->filter, ss->len) : 0;
        if (ext) {
            if (broker_exts[ext - 1]->on_unsubscribe) broker_exts[ext - 1]->on_unsubscribe(b, s);
            persist_sub(b, s, ss->filter, ss->len, NULL, true);
            free(ss->filter);
            *ss = s->subs[--s->nsubs];
            code = MQTT_RC_SUCCESS;
        } else if (!topic_sub_parse(e.filter.p, e.filter.len, &ts)) {
            code = MQTT_RC_TOPIC_FILTER_INVALID;
        } else if (ss) {
            if (sub_remove(&b->subs, s->app, ts.filter, ts.filter_len, s, ts.share, ts.share_len) == 1 && ts.share)
                shared_member(b, s->app, ts.share, ts.share_len, ts.filter, ts.filter_len, -1);
            persist_sub(b, s, ss->filter, ss->len, NULL, true);
            free(ss->filter);
            *ss = s->subs[--s->nsubs];
            BS_ADD(b, subscriptions, (uint64_t)-1);
            code = MQTT_RC_SUCCESS;
        }
        rc[i++] = code;
    }
    BS_INC(b, unsubscribes);
    uint8_t stackbuf[512];
    size_t cap = 64 + sub->count;
    uint8_t *out = cap <= sizeof stackbuf ? stackbuf : malloc(cap);
    AU_ASSERT(out != NULL);
    size_t n = mqtt_enc_suback(out, cap, mc->version, MQTT_UNSUBACK, sub->packet_id, rc, sub->count, NULL);
    AU_ASSERT(n > 0);
    ack_after_batch(b, s, out, n, persist_pending_ops(b) != ops0);
    if (out != stackbuf) free(out);
    if (rc != codes) free(rc);
    return MQTT_HANDLED_OK;
}
