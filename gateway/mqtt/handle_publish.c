/* handle_publish.c - PUBLISH from a client: topic aliases, limits, ACL, fan-out, PUBACK/PUBREC. */
#include "gateway/mqtt/broker.h"
#include "gateway/mqtt/deliver.h"
#include "gateway/mqtt/handle.h"
#include "gateway/mqtt/persist.h"
#include "gateway/mqtt/ext.h"
#include "gateway/mqtt/persist.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

static bool qos2_pending(const struct session *mc, uint16_t pid)
{
    for (uint16_t i = 0; i < mc->qos2_in_n; i++)
        if (mc->qos2_in[i] == pid) return true;
    return false;
}

void qos2_add(struct session *mc, uint16_t pid)
{
    if (mc->qos2_in_n == mc->qos2_in_cap) {
        mc->qos2_in_cap = mc->qos2_in_cap ? (uint16_t)(mc->qos2_in_cap * 2) : 8;
        mc->qos2_in = realloc(mc->qos2_in, sizeof(uint16_t) * mc->qos2_in_cap);
        AU_ASSERT(mc->qos2_in != NULL);
    }
    mc->qos2_in[mc->qos2_in_n++] = pid;
}

bool qos2_release(struct session *mc, uint16_t pid)
{
    for (uint16_t i = 0; i < mc->qos2_in_n; i++)
        if (mc->qos2_in[i] == pid) {
            mc->qos2_in[i] = mc->qos2_in[--mc->qos2_in_n];
            return true;
        }
    return false;
}

/* Resolve the topic through the client's topic aliases (MQTT 5 3.3.2.3.4). */
static int resolve_alias(struct mqtt_conn *mc, const struct mqtt_publish *pub, struct mqtt_str *topic)
{
    *topic = pub->topic;
    if (mc->version != MQTT_V5 || !(pub->props.present & MQTT_PBIT(MQTT_PROP_TOPIC_ALIAS))) {
        if (topic->len == 0) {
            mqtt_protocol_close(mc, MQTT_RC_PROTOCOL_ERROR, "empty topic without a topic alias");
            return -1;
        }
        return 0;
    }
    uint16_t a = pub->props.topic_alias;
    if (a == 0 || a > mc->alias_max) {
        mqtt_protocol_close(mc, MQTT_RC_TOPIC_ALIAS_INVALID, "topic alias out of range");
        return -1;
    }
    if (!mc->aliases) {
        mc->aliases = calloc((size_t)mc->alias_max + 1, sizeof *mc->aliases);
        AU_ASSERT(mc->aliases != NULL);
    }
    struct mqtt_str *slot = &mc->aliases[a];
    if (topic->len) {
        uint8_t *copy = malloc(topic->len);
        AU_ASSERT(copy != NULL);
        memcpy(copy, topic->p, topic->len);
        free((void *)slot->p);
        slot->p = copy;
        slot->len = topic->len;
    } else if (!slot->p) {
        mqtt_protocol_close(mc, MQTT_RC_PROTOCOL_ERROR, "unknown topic alias");
        return -1;
    } else {
        *topic = *slot;
    }
    return 0;
}

enum mqtt_handled handle_publish(struct broker *b, struct mqtt_conn *mc, const struct mqtt_packet *p)
{
    const struct mqtt_publish *pub = &p->u.publish;
    const struct au_config *cfg = b->cfg;
    struct session *s = mc->sess;
    struct mqtt_str topic;
    if (resolve_alias(mc, pub, &topic) < 0) return MQTT_HANDLED_CLOSE;
    if (!topic_name_valid(topic.p, topic.len)) {
        mqtt_protocol_close(mc, MQTT_RC_TOPIC_NAME_INVALID, "invalid topic name");
        return MQTT_HANDLED_CLOSE;
    }
    if (pub->retain && !cfg->retain_available) {
        mqtt_protocol_close(mc, MQTT_RC_RETAIN_NOT_SUPPORTED, "retain not available");
        return MQTT_HANDLED_CLOSE;
    }
    if (pub->qos == 2) {
        if (qos2_pending(s, pub->packet_id)) {
            /* Duplicate of a QoS 2 message we already took: acknowledge again, deliver nothing. */
            send_ack(mc, MQTT_PUBREC, pub->packet_id, MQTT_RC_SUCCESS, NULL);
            return MQTT_HANDLED_OK;
        }
        if (s->qos2_in_n >= cfg->receive_max) {
            mqtt_protocol_close(mc, MQTT_RC_RECEIVE_MAX_EXCEEDED, "receive maximum exceeded");
            return MQTT_HANDLED_CLOSE;
        }
    }
    if (broker_nexts) { /* a PUBLISH an extension serves itself (e.g. IM: im/send): it acknowledges */
        int r = broker_ext_publish(b, mc, pub, topic.p, topic.len);
        if (r != BROKER_EXT_PASS) return r;
    }
    bool allowed = !broker_ext_reserved(topic.p, topic.len) &&
                   au_acl_check(cfg, AU_ACL_PUBLISH, s->username, s->client_id, (const char *)topic.p, topic.len);
    uint8_t reason = allowed ? MQTT_RC_SUCCESS : MQTT_RC_NOT_AUTHORIZED; /* 3.1.1: a normal ack, message dropped */
    struct msg *m = NULL;
    if (allowed) {
        m = msg_new(s->app, topic.p, topic.len, mc->version == MQTT_V5 ? &pub->props : NULL, pub->payload.p,
                    pub->payload.len, pub->qos, pub->retain, s->uid, b->shard->now_ms);
        if (pub->retain && pub->payload.len &&
            !retained_fits(&b->retained, s->app, topic.p, topic.len, msg_retained_bytes(m))) {
            /* Over the app's retained budget (max_retained_bytes / max_retained): neither retained nor delivered.
             * MQTT 5 QoS 1/2 hear it in the acknowledgement (0x97); a publisher that cannot (QoS 0, 3.1.1, which
             * has no negative acknowledgement) is disconnected (5: DISCONNECT 0x97) instead of acknowledged. */
            msg_unref(m);
            BS_INC(b, retained_refused);
            if (mc->version != MQTT_V5 || pub->qos == 0) {
                mqtt_protocol_close(mc, MQTT_RC_QUOTA_EXCEEDED, "retained messages over the app's byte budget");
                return MQTT_HANDLED_CLOSE;
            }
            m = NULL;
            allowed = false;
            reason = MQTT_RC_QUOTA_EXCEEDED;
        }
    }
    uint8_t ack_type = pub->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC;
    struct pend_ack *pa = NULL;
    if (pub->qos && (persist_on() || s->ack_head)) {
        /* Acks leave in PUBLISH order; with a store, each once its message is durable on every shard. */
        pa = calloc(1, sizeof *pa);
        AU_ASSERT(pa != NULL);
        pa->s = s;
        pa->pid = pub->packet_id;
        pa->type = ack_type;
        pa->reason = reason;
        pa->ready = !(allowed && persist_on());
        if (s->ack_tail) s->ack_tail->next = pa;
        else s->ack_head = pa;
        s->ack_tail = pa;
    }
    if (allowed) {
        uint32_t ops0 = persist_pending_ops(b);
        if (pub->qos == 2) {
            qos2_add(s, pub->packet_id);
            persist_qos2in(b, s, pub->packet_id, false); /* durable before the PUBREC, with the message */
        }
        bool wrote = persist_pending_ops(b) != ops0;
        if (pa && !pa->ready) {
            /* one part per shard (its deliveries), one more for the incoming QoS 2 state written here */
            struct pub_ticket *t = ticket_new(b, pa, b->shard->nshards + (wrote ? 1 : 0));
            m->ticket = t;
            if (wrote) persist_ticket(b, t);
        }
        broker_publish(b, m);
        msg_unref(m);
    }
    if (pa) ack_flush(s);
    else if (pub->qos)
        send_ack(mc, ack_type, pub->packet_id, reason,
                 allowed ? NULL : reason == MQTT_RC_QUOTA_EXCEEDED ? "retained messages over the app's byte budget"
                                                                   : "not authorized");
    return MQTT_HANDLED_OK;
}
