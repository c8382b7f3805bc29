/* http_gw.c - HTTP on a gateway connection (see http_gw.h). */
#include "gateway/http/http_gw.h"
#include "gateway/http/http_server.h"
#include "gateway/metrics.h"
#include "gateway/services.h"
#include "core/log.h"

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

static http_gw_auth_fn g_metrics_auth;

void http_gw_set_operator_auth(http_gw_auth_fn fn) { g_metrics_auth = fn; }

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

static uint32_t cfg_or(const struct au_config *cfg, uint32_t v, uint32_t dflt) { return cfg && v ? v : dflt; }

/* The one deadline of a connection, after every feed (`left`: bytes of a partial head kept unconsumed):
 *   between requests   AU_HTTP_IDLE_TIMEOUT_MS from now (each request starts it anew);
 *   head in progress   http_header_timeout_ms from the head's first byte (bytes trickling in do not extend it);
 *   body in progress   http_body_timeout_ms from the head's end + received bytes / http_body_min_rate (a body
 *                      must keep an average rate after its grace);
 *   answer deferred    none (http_gw_defer cancels it; http_gw_defer_finish re-arms). */
static void gw_deadline(struct http_gw_conn *g, size_t left)
{
    struct au_shard *s = g->conn->shard;
    const struct au_config *cfg = s->slot.services ? s->slot.services->cfg : NULL;
    uint64_t now = s->now_ms, at;
    if (http_conn_deferred(&g->h) || g->pending) return;
    if (http_conn_in_body(&g->h)) {
        g->head_start = 0;
        if (!g->body_start) g->body_start = now;
        uint64_t rate = cfg_or(cfg, cfg ? cfg->http_body_min_rate : 0, AU_HTTP_BODY_MIN_RATE);
        at = g->body_start + cfg_or(cfg, cfg ? cfg->http_body_timeout_ms : 0, AU_HTTP_BODY_TIMEOUT_MS) +
             (uint64_t)http_conn_body_received(&g->h) * 1000 / rate;
        g->phase = GW_BODY;
    } else if (left) {
        g->body_start = 0;
        if (!g->head_start) g->head_start = now;
        at = g->head_start + cfg_or(cfg, cfg ? cfg->http_header_timeout_ms : 0, AU_HTTP_HEADER_TIMEOUT_MS);
        g->phase = GW_HEAD;
    } else {
        g->head_start = g->body_start = 0;
        at = now + AU_HTTP_IDLE_TIMEOUT_MS;
        g->phase = GW_IDLE;
    }
    au_timer_arm(&s->timers, &g->idle, at);
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
    au_timer_cancel(&c->shard->timers, &g->idle);
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
    au_timer_cancel(&g->conn->shard->timers, &g->idle);
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

/* HTTP's /metrics provider. */
void http_gw_metrics(struct gw_metrics *m, struct au_shard *const *shards, int nshards)
{
    (void)shards;
    (void)nshards;
    gw_metrics_printf(m, "# HELP aurora_http_body_buffered_bytes Request heads and bodies buffered (budget http_body_budget).\n"
                         "# TYPE aurora_http_body_buffered_bytes gauge\naurora_http_body_buffered_bytes %llu\n",
                      (unsigned long long)http_body_buffered());
}

/* Process-wide counters of every app: for the operator only (Authorization: Bearer <operator token>). */
static void metrics(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    if (!g_metrics_auth) {
        http_resp_error(resp, 401, 401, "metrics need the operator token, and the operator API is not set up");
        return;
    }
    if (!g_metrics_auth(req, resp)) return;
    /* every shard's counters, from the providers the gateway registered (gateway/metrics.h) */
    struct au_shard *self = ctx;
    struct gw_metrics m = { malloc(8192), 0, 8192 };
    AU_ASSERT(m.p != NULL);
    if (self->slot.services) gw_metrics_render(&self->slot.services->metrics, &m, self->all, self->nshards);
    http_resp_status(resp, 200);
    http_resp_header(resp, "Content-Type", "text/plain; version=0.0.4");
    http_resp_body(resp, m.p, m.len);
    free(m.p);
}

void http_gw_init(const struct au_config *cfg)
{
    http_set_body_budget(cfg->http_body_budget);
}

static const struct http_route_def routes[] = {
    { "GET", "/healthz", healthz },
    { "GET", "/metrics", metrics },
};
const struct http_routes http_gw_routes = { routes, AU_ARRAY_LEN(routes) };
