/* gateway.h - the composition root: builds the services, wires the modules, runs the shards.
 *
 *   gw_open(&gw, cfg, err)   data dir, store, apps, token key, auth pool, module inits, routes, metrics providers,
 *                            listeners from the configuration, external-producer ids from the loop
 *   gw_start(&gw)            starts the shards (each runs the lifecycle table's init steps), then the worker
 *                            pools (store, auth, media)
 *   gw_stop(&gw)             graceful stop of the shards (fini steps in reverse order), then the pools
 *
 * The per-shard lifecycle is ONE ordered table (gateway.c): init and tick steps run in table order, stop steps
 * in table order, fini steps in reverse table order. */
#ifndef AU_GATEWAY_H
#define AU_GATEWAY_H

#include "gateway/services.h"

#include <stddef.h>
#include <stdint.h>

/* One step of the per-shard lifecycle; every callback optional, all run on the shard's thread. */
struct gw_step {
    const char *name;
    void (*init)(struct au_shard *s);              /* before the shard accepts, in table order */
    void (*stop)(struct au_shard *s);              /* graceful stop requested, in table order */
    int (*tick)(struct au_shard *s, uint64_t now); /* every iteration after timers: ms it may sleep, -1 = any */
    void (*fini)(struct au_shard *s);              /* after the loop ended, in REVERSE table order */
};

/* Runners of a lifecycle table (exported for tests). gw_steps_tick returns the smallest non-negative tick
 * answer, or -1. */
void gw_steps_init(const struct gw_step *t, size_t n, struct au_shard *s);
void gw_steps_stop(const struct gw_step *t, size_t n, struct au_shard *s);
int gw_steps_tick(const struct gw_step *t, size_t n, struct au_shard *s, uint64_t now);
void gw_steps_fini(const struct gw_step *t, size_t n, struct au_shard *s);

/* The gateway's per-shard lifecycle table (for tests and docs). */
const struct gw_step *gw_lifecycle(size_t *n);

#define GW_LISTENERS_MAX 8

struct gateway {
    struct gw_services svc;
    struct au_listener_spec ls[GW_LISTENERS_MAX];
    uint32_t nl;
    struct au_loop_opts lo;
    int ext_store, ext_auth, ext_media;   /* first external-producer id of each pool (au_loop_ext_alloc) */
};

/* Returns 0, or the process exit code (1 or 2) with a message in err. On failure what was opened stays open:
 * the process exits. */
int gw_open(struct gateway *gw, const struct au_config *cfg, char *err, size_t errlen);
int gw_start(struct gateway *gw, char *err, size_t errlen);
void gw_stop(struct gateway *gw);

#endif
