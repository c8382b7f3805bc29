/* handle_ack.c - PUBACK, PUBREC, PUBREL, PUBCOMP from clients, and DISCONNECT. */
#include "gateway/mqtt/broker.h"
#include "gateway/mqtt/deliver.h"
#include "gateway/mqtt/handle.h"
#include "gateway/mqtt/persist.h"
#include "gateway/mqtt/ext.h"
#include "core/log.h"

#include <stdlib.h>


/* Find the in-flight message with this packet id in `state`; unlink it when `unlink`. */
static struct outmsg *inflight_find(struct session *s, uint16_t pid, uint8_t state, bool unlink)
{
    struct outmsg *prev = NULL;
    for (struct outmsg *o = s->if_head; o; prev = o, o = o->next) {
        if (o->pid != pid || o->state != state) continue;
        if (unlink) {
            if (prev) prev->next = o->next;
            else s->if_head = o->next;
            if (s->if_tail == o) s->if_tail = prev;
            o->next = NULL;
            s->inflight--;
        }
        return o;
    }
    return NULL;
}

enum mqtt_handled handle_ack(struct broker *b, struct mqtt_conn *mc, const struct mqtt_packet *p)
{
    struct session *s = mc->sess;
    uint16_t pid = p->u.ack.packet_id;
    struct outmsg *o;
    switch (p->type) {
    case MQTT_PUBACK:
        o = inflight_find(s, pid, OUT_WAIT_PUBACK, true);
        if (o) { /* an unknown id is ignored (it may be a late duplicate) */
            if (o->m && o->m->ext) broker_ext_ack(b, s, o->m); /* e.g. IM: the device's cursor moves */
            persist_out_del(b, s, o);
            outmsg_free(o);
        }
        break;
    case MQTT_PUBREC:
        if (p->u.ack.reason >= 0x80) {
            o = inflight_find(s, pid, OUT_WAIT_PUBREC, true); /* the receiver refused it: done */
            if (o) {
                persist_out_del(b, s, o);
                outmsg_free(o);
            }
            break;
        }
        o = inflight_find(s, pid, OUT_WAIT_PUBREC, false);
        if (!o) o = inflight_find(s, pid, OUT_WAIT_PUBCOMP, false); /* duplicate PUBREC */
        if (o) {
            bool first = o->state == OUT_WAIT_PUBREC;
            o->state = OUT_WAIT_PUBCOMP;
            msg_unref(o->m); /* the payload is delivered; only the id is kept until PUBCOMP */
            o->m = NULL;
            if (first) persist_out_pubrec(b, s, o);
            send_ack(mc, MQTT_PUBREL, pid, MQTT_RC_SUCCESS, NULL);
        } else {
            send_ack(mc, MQTT_PUBREL, pid, MQTT_RC_PACKET_ID_NOT_FOUND, "unknown packet id");
        }
        break;
    case MQTT_PUBCOMP:
        o = inflight_find(s, pid, OUT_WAIT_PUBCOMP, true);
        if (o) {
            persist_out_del(b, s, o);
            outmsg_free(o);
        }
        break;
    case MQTT_PUBREL: {
        bool found = qos2_release(s, pid);
        if (found) persist_qos2in(b, s, pid, true);
        send_ack(mc, MQTT_PUBCOMP, pid, found ? MQTT_RC_SUCCESS : MQTT_RC_PACKET_ID_NOT_FOUND,
                 found ? NULL : "unknown packet id");
        return MQTT_HANDLED_OK;
    }
    default: return MQTT_HANDLED_CLOSE;
    }
    session_pump(b, s);
    return MQTT_HANDLED_OK;
}

enum mqtt_handled handle_disconnect(struct broker *b, struct mqtt_conn *mc, const struct mqtt_packet *p)
{
    struct session *s = mc->sess;
    const struct mqtt_disconnect *d = &p->u.disconnect;
    if (mc->version == MQTT_V5 && (d->props.present & MQTT_PBIT(MQTT_PROP_SESSION_EXPIRY))) {
        if (s->expiry == 0 && d->props.session_expiry != 0) {
            /* MQTT 5 3.14.2.2.2: cannot turn a non-persistent session into a persistent one. */
            mqtt_protocol_close(mc, MQTT_RC_PROTOCOL_ERROR, "session expiry was zero at CONNECT");
            return MQTT_HANDLED_CLOSE;
        }
        s->expiry = d->props.session_expiry > b->cfg->max_session_expiry ? b->cfg->max_session_expiry
                                                                          : d->props.session_expiry;
        s->persistent = s->expiry != 0;
        if (!s->persistent) persist_session_delete(b, s);
    }
    if (!(mc->version == MQTT_V5 && d->reason == MQTT_RC_DISCONNECT_WITH_WILL) && s->will.m) {
        msg_unref(s->will.m); /* normal disconnect: the will is discarded */
        s->will.m = NULL;
    }
    BS_INC(b, disconnects);
    mc->state = MC_CLOSING;
    return MQTT_HANDLED_CLOSE;
}
