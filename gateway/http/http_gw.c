/* http_gw.c - HTTP on a gateway connection (see http_gw.h). */
#include "gateway/http/http_gw.h"
#include "gateway/http/http_server.h"
#include "gateway/mqtt/broker.h"
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct http_gw_conn {
    struct http_conn h;
    struct au_conn *conn;
    struct au_timer idle;          /* the connection's one deadline: idle, head, or body (see gw_deadline) */
    struct http_gw_defer *pending; /* the deferred response's handle, or NULL */
    uint64_t head_start;           /* ms: first byte of the head being received, 0 when none */
    uint64_t body_start;           /* ms: end of the head whose body is being received, 0 when none */
    uint8_t phase;                 /* enum gw_phase of the deadline armed */
};

enum gw_phase { GW_IDLE, GW_HEAD, GW_BODY };

struct http_gw_defer {
    struct http_gw_conn *g;        /* NULL once the connection closed */
};

static struct au_shard **g_shards;
static int g_nshards;
static const struct au_config *g_cfg;
static http_gw_auth_fn g_metrics_auth;

void http_gw_set_operator_auth(http_gw_auth_fn fn) { g_metrics_auth = fn; }

void http_gw_set_shards(struct au_shard **shards, int n)
{
    g_shards = shards;
    g_nshards = n;
}

static void gw_write(void *io, const void *data, size_t len) { au_conn_write(io, data, len); }

/* A deadline passed: between requests the connection just closes; a head or body that did not arrive in time
 * gets 408 and the connection closes (slow peers cannot hold connections and buffers indefinitely). */
static void idle_fire(struct au_timer *t)
{
    struct http_gw_conn *g = AU_CONTAINER_OF(t, struct http_gw_conn, idle);
    if (g->phase == GW_HEAD) http_conn_fail(&g->h, 408, "request head not received in time");
    else if (g->phase == GW_BODY) http_conn_fail(&g->h, 408, "request body not received in time");
    au_conn_close(g->conn);
}

static uint32_t cfg_or(uint32_t v, uint32_t dflt) { return g_cfg && v ? v : dflt; }

/* The one deadline of a connection, after every feed (`left`: bytes of a partial head kept unconsumed):
 *   between requests   AU_HTTP_IDLE_TIMEOUT_MS from now (each request starts it anew);
 *   head in progress   http_header_timeout_ms from the head's first byte (bytes trickling in do not extend it);
 *   body in progress   http_body_timeout_ms from the head's end + received bytes / http_body_min_rate (a body
 *                      must keep an average rate after its grace);
 *   answer deferred    none (http_gw_defer cancels it; http_gw_defer_finish re-arms). */
static void gw_deadline(struct http_gw_conn *g, size_t left)
{
    struct au_shard *s = g->conn->shard;
    uint64_t now = s->now_ms, at;
    if (http_conn_deferred(&g->h) || g->pending) return;
    if (http_conn_in_body(&g->h)) {
        g->head_start = 0;
        if (!g->body_start) g->body_start = now;
        uint64_t rate = cfg_or(g_cfg ? g_cfg->http_body_min_rate : 0, AU_HTTP_BODY_MIN_RATE);
        at = g->body_start + cfg_or(g_cfg ? g_cfg->http_body_timeout_ms : 0, AU_HTTP_BODY_TIMEOUT_MS) +
             (uint64_t)http_conn_body_received(&g->h) * 1000 / rate;
        g->phase = GW_BODY;
    } else if (left) {
        g->body_start = 0;
        if (!g->head_start) g->head_start = now;
        at = g->head_start + cfg_or(g_cfg ? g_cfg->http_header_timeout_ms : 0, AU_HTTP_HEADER_TIMEOUT_MS);
        g->phase = GW_HEAD;
    } else {
        g->head_start = g->body_start = 0;
        at = now + AU_HTTP_IDLE_TIMEOUT_MS;
        g->phase = GW_IDLE;
    }
    au_timer_arm(&broker_of(s)->timers, &g->idle, at);
}

static void gw_open(struct au_conn *c)
{
    struct http_gw_conn *g = calloc(1, sizeof *g);
    AU_ASSERT(g != NULL);
    g->conn = c;
    http_conn_init(&g->h, c, gw_write);
    http_conn_set_ctx(&g->h, c->shard);
    c->proto_state = g;
    au_timer_init(&g->idle, idle_fire);
    /* Accepted once bytes arrived (TCP_DEFER_ACCEPT: gw_data runs next and sets the head's deadline) or after a
     * second of silence: a connection that sends nothing is closed, silently, after http_header_timeout_ms. */
    gw_deadline(g, 1);
    g->head_start = 0;
    g->phase = GW_IDLE;
}

static ssize_t gw_data(struct au_conn *c, const uint8_t *data, size_t len)
{
    struct http_gw_conn *g = c->proto_state;
    ssize_t n = http_conn_feed(&g->h, data, len);
    if (n >= 0) gw_deadline(g, len - (size_t)n);
    return n;
}

static void gw_close(struct au_conn *c)
{
    struct http_gw_conn *g = c->proto_state;
    if (!g) return;
    au_timer_cancel(&broker_of(c->shard)->timers, &g->idle);
    if (g->pending) g->pending->g = NULL; /* nobody finishes this response any more */
    http_conn_free(&g->h);
    free(g);
    c->proto_state = NULL;
}

const struct au_proto http_gw_proto = {
    .name = "http",
    .on_open = gw_open,
    .on_data = gw_data,
    .on_close = gw_close,
};

/* ------------------------------------------------------------------ deferred responses */

struct http_gw_defer *http_gw_defer(struct http_resp *resp)
{
    struct http_gw_conn *g = AU_CONTAINER_OF(resp->conn, struct http_gw_conn, h);
    AU_ASSERT(g->h.io == g->conn && g->pending == NULL);
    struct http_gw_defer *d = malloc(sizeof *d);
    AU_ASSERT(d != NULL);
    d->g = g;
    g->pending = d;
    /* not idle while the answer is being worked on (a 500-user registration hashes for seconds) */
    au_timer_cancel(&broker_of(g->conn->shard)->timers, &g->idle);
    http_resp_defer(resp);
    return d;
}

struct http_resp *http_gw_defer_resp(struct http_gw_defer *d) { return d->g ? &d->g->h.resp : NULL; }

void http_gw_defer_cancel(struct http_gw_defer *d) { free(d); }

void http_gw_defer_finish(struct http_gw_defer *d)
{
    struct http_gw_conn *g = d->g;
    free(d);
    if (!g) return;
    g->pending = NULL;
    bool in_handler = g->h.in_handler;
    if (http_resp_finish(&g->h.resp) < 0) {
        au_conn_close(g->conn);
        return;
    }
    /* the kept pipelined bytes (if any) are presented again by the kick, which sets the deadline they need */
    gw_deadline(g, 0);
    if (!in_handler) au_conn_kick(g->conn); /* pipelined requests kept while deferred */
}

/* ------------------------------------------------------------------ endpoints */

/* For load balancers, unauthenticated on the public port: the status only, nothing about the traffic (counts
 * of connections or messages would tell one app about the others). Served as fast as a request can be. */
static void healthz(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    (void)req;
    (void)ctx;
    static const char body[] = "{\"status\":\"ok\"}";
    http_resp_json_len(resp, 200, body, sizeof body - 1);
}

struct mbuf {
    char *p;
    size_t len, cap;
};

static void mprintf(struct mbuf *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mprintf(struct mbuf *m, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(m->p + m->len, m->cap - m->len, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if ((size_t)n < m->cap - m->len) {
            m->len += (size_t)n;
            return;
        }
        m->cap = m->cap * 2 + (size_t)n;
        m->p = realloc(m->p, m->cap);
        AU_ASSERT(m->p != NULL);
    }
}

#define LOOP_METRIC(name, field, type, help)                                                          \
    do {                                                                                              \
        mprintf(&m, "# HELP aurora_" name " " help "\n# TYPE aurora_" name " " type "\n");            \
        for (int i = 0; i < g_nshards; i++)                                                           \
            mprintf(&m, "aurora_" name "{shard=\"%d\"} %llu\n", i,                                    \
                    (unsigned long long)AU_STAT_READ(g_shards[i], field));                            \
    } while (0)

#define BROKER_METRIC(name, field, type, help)                                                        \
    do {                                                                                              \
        mprintf(&m, "# HELP aurora_" name " " help "\n# TYPE aurora_" name " " type "\n");            \
        for (int i = 0; i < g_nshards; i++) {                                                         \
            struct broker *b = broker_of(g_shards[i]);                                                \
            mprintf(&m, "aurora_" name "{shard=\"%d\"} %llu\n", i,                                    \
                    b ? (unsigned long long)__atomic_load_n(&b->stats.field, __ATOMIC_RELAXED) : 0ull); \
        }                                                                                             \
    } while (0)

/* Process-wide counters of every app: for the operator only (Authorization: Bearer <operator token>). */
static void metrics(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    (void)ctx;
    if (!g_metrics_auth) {
        http_resp_error(resp, 401, 401, "metrics need the operator token, and the operator API is not set up");
        return;
    }
    if (!g_metrics_auth(req, resp)) return;
    struct mbuf m = { malloc(8192), 0, 8192 };
    AU_ASSERT(m.p != NULL);
    LOOP_METRIC("connections", conns, "gauge", "Open connections (all listeners).");
    LOOP_METRIC("connections_accepted_total", accepted, "counter", "Connections accepted.");
    LOOP_METRIC("connections_closed_total", closed, "counter", "Connections closed.");
    LOOP_METRIC("handoffs_out_total", handoffs_out, "counter", "Connections handed to their owner shard.");
    LOOP_METRIC("handoffs_in_total", handoffs_in, "counter", "Connections received from another shard.");
    LOOP_METRIC("accept_paused_total", accept_paused, "counter", "Times accepting paused at the connection limit.");
    LOOP_METRIC("bytes_received_total", bytes_in, "counter", "Bytes received.");
    LOOP_METRIC("bytes_sent_total", bytes_out, "counter", "Bytes sent.");
    LOOP_METRIC("sends_total", sends, "counter", "sendmsg operations submitted.");
    LOOP_METRIC("cross_shard_messages_total", xmsgs_in, "counter", "Messages received from other shards.");
    LOOP_METRIC("doorbells_total", doorbells, "counter", "msg_ring doorbells sent.");
    LOOP_METRIC("cross_shard_overflow_total", xq_overflow, "counter", "Cross-shard queue full events.");
    LOOP_METRIC("recv_nobufs_total", nobufs, "counter", "Receive buffer ring exhausted.");
    LOOP_METRIC("recv_input_full_total", in_full, "counter", "Receives stopped at a connection's unconsumed-input limit.");
    mprintf(&m, "# HELP aurora_http_body_buffered_bytes Request heads and bodies buffered (budget http_body_budget).\n"
                "# TYPE aurora_http_body_buffered_bytes gauge\naurora_http_body_buffered_bytes %llu\n",
            (unsigned long long)http_body_buffered());
    BROKER_METRIC("mqtt_sessions", sessions, "gauge", "MQTT sessions (online and offline).");
    BROKER_METRIC("mqtt_sessions_online", sessions_online, "gauge", "MQTT sessions with a connection.");
    BROKER_METRIC("mqtt_subscriptions", subscriptions, "gauge", "Subscriptions.");
    BROKER_METRIC("mqtt_retained_messages", retained, "gauge", "Retained messages (replica per shard).");
    BROKER_METRIC("mqtt_connects_total", connects, "counter", "Accepted CONNECTs.");
    BROKER_METRIC("mqtt_connects_refused_total", connacks_refused, "counter", "Refused CONNECTs.");
    BROKER_METRIC("mqtt_takeovers_total", takeovers, "counter", "Session takeovers.");
    BROKER_METRIC("mqtt_publish_received_total", pub_in, "counter", "PUBLISH packets received from clients.");
    BROKER_METRIC("mqtt_publish_received_bytes_total", pub_in_bytes, "counter", "Payload bytes received.");
    BROKER_METRIC("mqtt_deliveries_total", deliveries, "counter", "PUBLISH packets sent to subscribers.");
    BROKER_METRIC("mqtt_dropped_slow_qos0_total", dropped_qos0_slow, "counter", "QoS 0 dropped: slow consumer.");
    BROKER_METRIC("mqtt_dropped_queue_full_total", dropped_queue_full, "counter", "QoS 1/2 dropped: session queue full.");
    BROKER_METRIC("mqtt_dropped_expired_total", dropped_expired, "counter", "Messages dropped: expired.");
    BROKER_METRIC("mqtt_dropped_too_large_total", dropped_too_large, "counter", "Messages dropped: above client maximum packet size.");
    BROKER_METRIC("mqtt_wills_total", wills_sent, "counter", "Will messages published.");
    BROKER_METRIC("mqtt_retained_refused_total", retained_refused, "counter", "PUBLISHes refused: over the app's retained budget.");
    BROKER_METRIC("mqtt_protocol_errors_total", protocol_errors, "counter", "Connections closed for protocol errors.");
    BROKER_METRIC("mqtt_keepalive_timeouts_total", keepalive_timeouts, "counter", "Keep-alive timeouts.");
    http_resp_status(resp, 200);
    http_resp_header(resp, "Content-Type", "text/plain; version=0.0.4");
    http_resp_body(resp, m.p, m.len);
    free(m.p);
}

void http_gw_init(const struct au_config *cfg)
{
    g_cfg = cfg;
    http_set_body_budget(cfg->http_body_budget);
}

static const struct http_route_def routes[] = {
    { "GET", "/healthz", healthz },
    { "GET", "/metrics", metrics },
};
const struct http_routes http_gw_routes = { routes, AU_ARRAY_LEN(routes) };
