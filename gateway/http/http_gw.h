/* http_gw.h - the HTTP listener of the gateway: the HTTP protocol on a connection, and the
 * operational endpoints (GET /healthz, GET /metrics). The REST API registers its routes here too. */
#ifndef AU_HTTP_GW_H
#define AU_HTTP_GW_H

#include "core/config.h"
#include "core/loop.h"

extern const struct au_proto http_gw_proto;
/* Register the built-in routes (before the shards start). */
void http_gw_init(const struct au_config *cfg);
/* Give the endpoints the shard table (for process-wide counters). */
void http_gw_set_shards(struct au_shard **shards, int n);

#endif
