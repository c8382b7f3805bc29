/* http_gw.h - the HTTP listener of the gateway: the HTTP protocol on a connection, and the
 * operational endpoints (GET /healthz: status only, unauthenticated; GET /metrics: operator token). The REST
 * API registers its routes here too. Deadlines per connection: idle between requests, a head, a body
 * (http_header_timeout_ms, http_body_timeout_ms, http_body_min_rate; docs/configuration.md). */
#ifndef AU_HTTP_GW_H
#define AU_HTTP_GW_H

#include "core/config.h"
#include "core/loop.h"

extern const struct au_proto http_gw_proto;
/* Register the built-in routes (before the shards start). Deadlines read the configuration from the
 * connection's shard (slot.services->cfg). GET /metrics renders the providers registered with
 * gw_metrics_register (gateway/metrics.h) over every shard. */
void http_gw_init(const struct au_config *cfg);
/* HTTP's own /metrics provider (request bodies buffered). */
struct gw_metrics;
void http_gw_metrics(struct gw_metrics *m, struct au_shard *const *shards, int nshards);
/* The built-in routes: GET /healthz, GET /metrics (registered by gateway/routes.c). */
struct http_routes;
extern const struct http_routes http_gw_routes;
/* GET /metrics answers only requests this accepts (the REST layer sets its operator-token check at start-up:
 * Authorization: Bearer <data>/operator.token); false after filling resp with the refusal. Unset: refused. */
struct http_req;
struct http_resp;
typedef bool (*http_gw_auth_fn)(const struct http_req *req, struct http_resp *resp);
void http_gw_set_operator_auth(http_gw_auth_fn fn);

/* Deferred responses that may outlive their connection. Inside a handler running on a gateway
 * connection, http_gw_defer() defers the response (http_resp_defer) and returns a handle. Later, on
 * the same shard: http_gw_defer_resp() gives the response to fill, or NULL when the connection went
 * away meanwhile (the handle is then only freed); http_gw_defer_finish() sends it, lets the
 * connection go on with pipelined requests it kept (au_conn_kick) or closes it, and frees the
 * handle. Exactly one finish per handle. Finishing inside the handler itself is allowed. */
struct http_resp;
struct http_gw_defer;
struct http_gw_defer *http_gw_defer(struct http_resp *resp);
struct http_resp *http_gw_defer_resp(struct http_gw_defer *d);
void http_gw_defer_finish(struct http_gw_defer *d);
/* Process shutdown, off the shards: release the handle without touching the connection. */
void http_gw_defer_cancel(struct http_gw_defer *d);

#endif
