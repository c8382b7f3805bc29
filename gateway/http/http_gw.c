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
    struct au_timer idle;
    struct http_gw_defer *pending; /* the deferred response's handle, or NULL */
};

struct http_gw_defer {
    struct http_gw_conn *g;        /* NULL once the connection closed */
};

static struct au_shard **g_shards;
static int g_nshards;
static uint64_t g_started_ms;

void http_gw_set_shards(struct au_shard **shards, int n)
{
    g_shards = shards;
    g_nshards = n;
}

static void gw_write(void *io, const void *data, size_t len) { au_conn_write(io, data, len); }

static void idle_fire(struct au_timer *t)
{
    struct http_gw_conn *g = AU_CONTAINER_OF(t, struct http_gw_conn, idle);
    au_conn_close(g->conn);
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
    au_timer_arm(&broker_of(c->shard)->timers, &g->idle, c->shard->now_ms + AU_HTTP_IDLE_TIMEOUT_MS);
}

static ssize_t gw_data(struct au_conn *c, const uint8_t *data, size_t len)
{
    struct http_gw_conn *g = c->proto_state;
    au_timer_arm(&broker_of(c->shard)->timers, &g->idle, c->shard->now_ms + AU_HTTP_IDLE_TIMEOUT_MS);
    return http_conn_feed(&g->h, data, len);
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
    struct au_shard *s = g->conn->shard;
    au_timer_arm(&broker_of(s)->timers, &g->idle, s->now_ms + AU_HTTP_IDLE_TIMEOUT_MS);
    bool in_handler = g->h.in_handler;
    if (http_resp_finish(&g->h.resp) < 0) au_conn_close(g->conn);
    else if (!in_handler) au_conn_kick(g->conn); /* pipelined requests kept while deferred */
}

/* ------------------------------------------------------------------ endpoints */

/* Decimal digits of v at p; returns the end. */
static char *put_u64(char *p, uint64_t v)
{
    char d[20];
    size_t n = 0;
    do {
        d[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) *p++ = d[--n];
    return p;
}

static char *put_str(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}
#define PUT_LIT(p, lit) put_str(p, lit, sizeof(lit) - 1)

/* Served on every shard as fast as a request can be: no formatted printing, a constant header line. */
static void healthz(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    (void)req;
    struct au_shard *s = ctx;
    uint64_t conns = 0;
    for (int i = 0; i < g_nshards; i++) conns += AU_STAT_READ(g_shards[i], conns);
    char body[128], *p = body;
    p = PUT_LIT(p, "{\"status\":\"ok\",\"shards\":");
    p = put_u64(p, (uint64_t)g_nshards);
    p = PUT_LIT(p, ",\"connections\":");
    p = put_u64(p, conns);
    p = PUT_LIT(p, ",\"uptime_s\":");
    p = put_u64(p, (s->now_ms - g_started_ms) / 1000);
    *p++ = '}';
    AU_ASSERT((size_t)(p - body) <= sizeof body);
    http_resp_json_len(resp, 200, body, (size_t)(p - body));
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

static void metrics(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    (void)req;
    (void)ctx;
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
    BROKER_METRIC("mqtt_protocol_errors_total", protocol_errors, "counter", "Connections closed for protocol errors.");
    BROKER_METRIC("mqtt_keepalive_timeouts_total", keepalive_timeouts, "counter", "Keep-alive timeouts.");
    http_resp_status(resp, 200);
    http_resp_header(resp, "Content-Type", "text/plain; version=0.0.4");
    http_resp_body(resp, m.p, m.len);
    free(m.p);
}

void http_gw_init(const struct au_config *cfg)
{
    (void)cfg;
    g_started_ms = au_now_ms();
    AU_ASSERT(http_route_add("GET", "/healthz", healthz) == 0);
    AU_ASSERT(http_route_add("GET", "/metrics", metrics) == 0);
}
