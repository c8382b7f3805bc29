/* services.h - the process-wide services, built once by the composition root (gateway/gateway.c).
 *
 * One struct handed to each module's init and reachable on every shard as s->slot.services (set by the loop
 * before shard_init). Read-only once the shards run, except `shards`/`nshards`, written once after au_loop_start
 * (before any worker pool starts). Modules keep per-shard state in their typed slot of struct au_shard_slots. */
#ifndef AU_GW_SERVICES_H
#define AU_GW_SERVICES_H

#include "core/config.h"
#include "core/loop.h"
#include "gateway/metrics.h"

struct store;
struct authpool;
struct auth_token_key;

struct gw_services {
    const struct au_config *cfg;              /* parsed and validated configuration */
    struct store *store;                      /* LevelDB in <data_dir>/db behind the store threads */
    struct authpool *authpool;                /* password hashing threads */
    const struct auth_token_key *token_key;   /* HMAC key of login tokens (<data_dir>/token.key) */
    /* the media store and its io pool live in gateway/im/rest_media.c (rest_media_init/start/stop) */
    struct gw_metrics_providers metrics;      /* GET /metrics, in order */
    struct au_shard **shards;                 /* after au_loop_start */
    int nshards;
};

#endif
