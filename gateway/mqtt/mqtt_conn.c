/* mqtt_conn.c - the MQTT protocol on a connection: framing, dispatch, keep-alive, close. */
#include "gateway/mqtt/broker.h"
#include "gateway/mqtt/deliver.h"
#include "gateway/mqtt/ext.h"
#include "gateway/mqtt/handle.h"
#include "gateway/mqtt/session.h"
#include "core/log.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>


static struct broker *conn_broker(struct mqtt_conn *mc) { return broker_of(mc->conn->shard); }

/* CONNECTs larger than AU_MQTT_CONNECT_FREE are received only within one process-wide budget
 * (mqtt_connect_budget): an unauthenticated peer announcing a large CONNECT and sending it slowly holds at most
 * AU_MQTT_CONNECT_FREE of memory on its own, and all of them together at most the budget, for at most
 * connect_timeout_ms. The charge is the announced size, taken when the packet is seen partial and given back
 * once it is processed (the session is connected) or the connection goes. */
static atomic_uint_fast64_t g_connect_bytes;

static bool connect_charge(struct broker *b, struct mqtt_conn *mc, uint32_t total)
{
    uint64_t budget = b->cfg->mqtt_connect_budget ? b->cfg->mqtt_connect_budget : AU_MQTT_CONNECT_BUDGET;
    uint64_t cur = atomic_load_explicit(&g_connect_bytes, memory_order_relaxed);
    do {
        if (cur + total > budget) return false;
    } while (!atomic_compare_exchange_weak_explicit(&g_connect_bytes, &cur, cur + total, memory_order_relaxed,
                                                    memory_order_relaxed));
    mc->connect_charged = total;
    return true;
}

static void connect_release(struct mqtt_conn *mc)
{
    if (!mc->connect_charged) return;
    atomic_fetch_sub_explicit(&g_connect_bytes, mc->connect_charged, memory_order_relaxed);
    mc->connect_charged = 0;
}

void mqtt_send_disconnect(struct mqtt_conn *mc, uint8_t reason, const char *why)
{
    if (mc->version != MQTT_V5 || mc->state != MC_CONNECTED) return; /* 3.1.1 servers never send DISCONNECT */
    uint8_t out[512];
    struct mqtt_props pr;
    memset(&pr, 0, sizeof pr);
    if (why && mc->req_problem_info) {
        pr.present = MQTT_PBIT(MQTT_PROP_REASON_STRING);
        pr.reason_string.p = (const uint8_t *)why;
        pr.reason_string.len = (uint16_t)strlen(why);
    }
    size_t n = mqtt_enc_disconnect(out, sizeof out, MQTT_V5, MQTT_DISCONNECT, reason, &pr);
    AU_ASSERT(n > 0);
    au_conn_write(mc->conn, out, n);
}

void mqtt_protocol_close(struct mqtt_conn *mc, uint8_t reason, const char *why)
{
    struct broker *b = conn_broker(mc);
    BS_INC(b, protocol_errors);
    au_debug("conn=%llx closing: %s (%s)", (unsigned long long)mc->conn->id, mqtt_rc_string(reason), why ? why : "");
    mqtt_send_disconnect(mc, reason, why ? why : mqtt_rc_string(reason));
    mc->state = MC_CLOSING;
    au_conn_close(mc->conn);
}

static void ka_fire(struct au_timer *t)
{
    struct mqtt_conn *mc = AU_CONTAINER_OF(t, struct mqtt_conn, ka_timer);
    struct broker *b = conn_broker(mc);
    if (mc->state == MC_NEW) {
        au_debug("conn=%llx CONNECT timeout", (unsigned long long)mc->conn->id);
        mc->state = MC_CLOSING;
        au_conn_abort(mc->conn);
    } else if (mc->state == MC_CONNECTED) {
        BS_INC(b, keepalive_timeouts);
        mqtt_send_disconnect(mc, MQTT_RC_KEEPALIVE_TIMEOUT, "keep alive timeout");
        mc->state = MC_CLOSING;
        au_conn_close(mc->conn);
    }
}

/* Unconsumed input a connection may hold: one whole packet of the largest size we accept. mc_data consumes
 * every complete packet unless it waits for a password verdict (MC_AUTH): then the bound is AU_CONN_IN_MAX (the
 * CONNECT is whole already) and the loop stops receiving until the verdict (au_conn_kick) lets the packets be
 * consumed. */
static uint32_t in_max(const struct broker *b)
{
    uint32_t p = b->cfg->max_packet ? b->cfg->max_packet : AU_MQTT_MAX_PACKET_CEIL;
    return AU_MAX(p + AU_MQTT_FIXED_HEADER_MAX, AU_CONN_IN_MAX);
}

static void mc_open(struct au_conn *c)
{
    struct broker *b = broker_of(c->shard);
    struct mqtt_conn *mc = calloc(1, sizeof *mc);
    AU_ASSERT(mc != NULL);
    mc->conn = c;
    mc->req_problem_info = 1;
    c->proto_state = mc;
    au_conn_set_in_max(c, in_max(b));
    au_timer_init(&mc->ka_timer, ka_fire);
    au_timer_arm(&b->shard->timers, &mc->ka_timer, c->shard->now_ms + b->cfg->connect_timeout_ms);
}

static void mc_handoff(struct au_conn *c, void *arg)
{
    struct broker *b = broker_of(c->shard);
    struct mqtt_conn *mc = arg;
    mc->conn = c;
    mc->version = 0; /* set by the source only for a refusal; the CONNECT is parsed again here */
    c->proto_state = mc;
    au_conn_set_in_max(c, in_max(b));
    au_timer_init(&mc->ka_timer, ka_fire);
    au_timer_arm(&b->shard->timers, &mc->ka_timer, c->shard->now_ms + b->cfg->connect_timeout_ms);
}

/* The owner shard could not take the connection (its descriptor table is full): CONNACK "server unavailable"
 * (3.1.1 return code 3, 5.0 reason 0x88), then the loop closes the connection. */
static void mc_handoff_failed(struct au_conn *c, int err)
{
    struct mqtt_conn *mc = c->proto_state;
    struct broker *b = broker_of(c->shard);
    uint8_t out[64];
    struct mqtt_props pr;
    memset(&pr, 0, sizeof pr);
    if (mc->version == MQTT_V5) {
        static const char why[] = "server full";
        pr.present = MQTT_PBIT(MQTT_PROP_REASON_STRING);
        pr.reason_string.p = (const uint8_t *)why;
        pr.reason_string.len = (uint16_t)(sizeof why - 1);
    }
    size_t n = mqtt_enc_connack(out, sizeof out, mc->version == MQTT_V5 ? MQTT_V5 : MQTT_V311, false,
                                mc->version == MQTT_V5 ? MQTT_RC_SERVER_UNAVAILABLE : MQTT3_SERVER_UNAVAILABLE, &pr);
    AU_ASSERT(n > 0);
    au_conn_write(c, out, n);
    BS_INC(b, connacks_refused);
    au_info("CONNECT refused: owner shard full (%s)", strerror(-err));
    mc->state = MC_CLOSING;
}

static void mc_free(struct mqtt_conn *mc)
{
    if (mc->aliases) {
        for (uint32_t i = 0; i <= mc->alias_max; i++) free((void *)mc->aliases[i].p);
        free(mc->aliases);
    }
    free(mc);
}

static void mc_close(struct au_conn *c)
{
    struct mqtt_conn *mc = c->proto_state;
    if (!mc) return;
    struct broker *b = broker_of(c->shard);
    au_timer_cancel(&b->shard->timers, &mc->ka_timer);
    connect_release(mc);
    broker_ext_conn_gone(mc);
    mc->state = MC_CLOSING;
    if (mc->sess) {
        struct session *s = mc->sess;
        mc->sess = NULL;
        s->mc = NULL;
        BS_ADD(b, sessions_online, (uint64_t)-1);
        session_detach(b, s, !b->stopping);
    }
    c->proto_state = NULL;
    mc_free(mc);
}

static void mc_drain(struct au_conn *c)
{
    struct mqtt_conn *mc = c->proto_state;
    if (mc && mc->sess && (mc->sess->q_head)) session_pump(conn_broker(mc), mc->sess);
}

static enum mqtt_handled dispatch(struct broker *b, struct mqtt_conn *mc, const struct mqtt_packet *p)
{
    if (mc->state == MC_NEW) {
        if (p->type != MQTT_CONNECT) return MQTT_HANDLED_CLOSE; /* the first packet must be CONNECT: close, no answer */
        return handle_connect(b, mc, p);
    }
    if (mc->state != MC_CONNECTED) return MQTT_HANDLED_CLOSE;
    switch (p->type) {
    case MQTT_PUBLISH: return handle_publish(b, mc, p);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP: return handle_ack(b, mc, p);
    case MQTT_SUBSCRIBE: return handle_subscribe(b, mc, p);
    case MQTT_UNSUBSCRIBE: return handle_unsubscribe(b, mc, p);
    case MQTT_PINGREQ: {
        uint8_t out[2];
        au_conn_write(mc->conn, out, mqtt_enc_pingresp(out, sizeof out));
        return MQTT_HANDLED_OK;
    }
    case MQTT_DISCONNECT: return handle_disconnect(b, mc, p);
    case MQTT_CONNECT: mqtt_protocol_close(mc, MQTT_RC_PROTOCOL_ERROR, "second CONNECT"); return MQTT_HANDLED_CLOSE;
    case MQTT_AUTH:
        mqtt_protocol_close(mc, MQTT_RC_PROTOCOL_ERROR, "AUTH without an authentication method");
        return MQTT_HANDLED_CLOSE;
    default:
        mqtt_protocol_close(mc, MQTT_RC_PROTOCOL_ERROR, "packet type not sent by clients");
        return MQTT_HANDLED_CLOSE;
    }
}

/* The protocol level of a (possibly partial) CONNECT: after the fixed header and the protocol name; 0 unknown. */
static uint8_t connect_level(const uint8_t *d, size_t n)
{
    size_t i = 1;
    while (i < n && i < 5 && (d[i] & 0x80)) i++;
    i++;
    uint8_t level = 0;
    if (i + 2 <= n) {
        size_t nl = au_rd16(d + i);
        if (i + 2 + nl < n) level = d[i + 2 + nl];
    }
    return level;
}

/* A CONNECT we cannot parse: answer what the client can understand, then close. */
static void refuse_bad_connect(struct mqtt_conn *mc, const uint8_t *d, size_t n, int err)
{
    uint8_t out[16];
    uint8_t level = connect_level(d, n);
    if (err == MQTT_RC_UNSUPPORTED_VERSION) {
        /* 3.1.1 3.1.2.2: return code 0x01 then close (a v5-looking client gets the v5 code) */
        size_t k = mqtt_enc_connack(out, sizeof out, level == MQTT_V5 ? MQTT_V5 : MQTT_V311, false,
                                    level == MQTT_V5 ? MQTT_RC_UNSUPPORTED_VERSION : MQTT3_BAD_VERSION, NULL);
        au_conn_write(mc->conn, out, k);
    } else if (level == MQTT_V5) {
        size_t k = mqtt_enc_connack(out, sizeof out, MQTT_V5, false, (uint8_t)err, NULL);
        au_conn_write(mc->conn, out, k);
    }
}

static ssize_t mc_data(struct au_conn *c, const uint8_t *data, size_t len)
{
    struct mqtt_conn *mc = c->proto_state;
    struct broker *b = broker_of(c->shard);
    size_t off = 0;
    while (off < len && mc->state != MC_CLOSING && mc->state != MC_AUTH) {
        uint32_t total;
        int r = mqtt_frame(data + off, len - off, b->cfg->max_packet, &total);
        if (r == 0) break;
        if (r < 0) {
            if (mc->state == MC_NEW) {
                refuse_bad_connect(mc, data + off, len - off, -r);
                return -1;
            }
            mqtt_protocol_close(mc, (uint8_t)-r, -r == MQTT_RC_PACKET_TOO_LARGE ? "packet too large" : "malformed packet");
            return -1;
        }
        if (total > len - off) { /* the loop keeps the partial packet and calls again */
            if (mc->state == MC_NEW && total > AU_MQTT_CONNECT_FREE && !mc->connect_charged &&
                !connect_charge(b, mc, total)) {
                /* too many large CONNECTs in progress: "server busy" (3.1.1: server unavailable), close */
                uint8_t out[16], level = connect_level(data + off, len - off);
                size_t k = mqtt_enc_connack(out, sizeof out, level == MQTT_V5 ? MQTT_V5 : MQTT_V311, false,
                                            level == MQTT_V5 ? MQTT_RC_SERVER_BUSY : MQTT3_SERVER_UNAVAILABLE, NULL);
                au_conn_write(mc->conn, out, k);
                BS_INC(b, connacks_refused);
                au_info("CONNECT of %u bytes refused: mqtt_connect_budget in use", total);
                return -1;
            }
            break;
        }
        struct mqtt_packet p;
        int pr = mqtt_parse(data + off, total, mc->version, b->cfg->max_packet, &p);
        if (pr <= 0) {
            if (mc->state == MC_NEW) {
                refuse_bad_connect(mc, data + off, total, pr < 0 ? -pr : MQTT_RC_MALFORMED);
                return -1;
            }
            mqtt_protocol_close(mc, pr < 0 ? (uint8_t)-pr : MQTT_RC_MALFORMED, "malformed packet");
            return -1;
        }
        enum mqtt_handled h = dispatch(b, mc, &p);
        if (h == MQTT_HANDLED_HANDOFF) return (ssize_t)off; /* the CONNECT travels unconsumed to its owner shard */
        if (h == MQTT_HANDLED_PENDING) {
            /* kept: run again when the password check answers. The CONNECT is whole, so nothing read meanwhile
             * is needed to go on: stop receiving past AU_CONN_IN_MAX until the verdict (back to in_max below). */
            au_conn_set_in_max(c, AU_CONN_IN_MAX);
            return (ssize_t)off;
        }
        off += total;
        if (h == MQTT_HANDLED_CLOSE) return -1; /* mc may be gone (a close frees it, gives the CONNECT budget back) */
        if (mc->connect_charged && mc->state == MC_CONNECTED) connect_release(mc);
    }
    if (mc->state == MC_CONNECTED && mc->ka_ms)
        au_timer_arm(&b->shard->timers, &mc->ka_timer, c->shard->now_ms + mc->ka_ms); /* lazy: one store */
    au_conn_set_in_max(c, mc->state == MC_AUTH ? AU_CONN_IN_MAX : in_max(b));
    return (ssize_t)off;
}

const struct au_proto mqtt_proto = {
    .name = "mqtt",
    .on_open = mc_open,
    .on_data = mc_data,
    .on_drain = mc_drain,
    .on_close = mc_close,
    .on_handoff = mc_handoff,
    .on_handoff_failed = mc_handoff_failed,
};
