/* metrics.h - the text of GET /metrics (Prometheus exposition format), written by providers.
 *
 * Each module that has counters registers one provider with the gateway (gateway/gateway.c, in the order their
 * blocks appear); the HTTP endpoint (gateway/http/http_gw.c) runs them in that order into one buffer. A provider
 * runs on the shard thread serving the request and reads other shards' counters with relaxed loads only. */
#ifndef AU_GW_METRICS_H
#define AU_GW_METRICS_H

#include "core/loop.h"

#include <stddef.h>

struct gw_metrics {
    char *p;
    size_t len, cap;
};

typedef void (*gw_metrics_fn)(struct gw_metrics *m, struct au_shard *const *shards, int nshards);

/* Appends formatted text (grows the buffer). */
void gw_metrics_printf(struct gw_metrics *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The providers, kept in the process's services (gateway/services.h); registered before the shards start, at
 * most GW_METRICS_PROVIDERS_MAX, run in registration order. */
#define GW_METRICS_PROVIDERS_MAX 16
struct gw_metrics_providers {
    gw_metrics_fn fn[GW_METRICS_PROVIDERS_MAX];
    int n;
};
void gw_metrics_register(struct gw_metrics_providers *p, gw_metrics_fn fn);
/* Runs every provider into m (m->p allocated by the caller, freed by the caller). */
void gw_metrics_render(const struct gw_metrics_providers *p, struct gw_metrics *m, struct au_shard *const *shards,
                       int nshards);

#endif
