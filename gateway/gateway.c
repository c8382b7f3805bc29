/* gateway.c - the composition root (see gateway.h): the services, the module wiring, the per-shard lifecycle
 * table, the listeners and the /metrics providers. The only file that knows every module. */
#include "gateway/gateway.h"
#include "gateway/metrics.h"
#include "gateway/routes.h"
#include "gateway/http/http_gw.h"
#include "gateway/mqtt/broker.h"
#include "gateway/mqtt/persist.h"
#ifndef AU_BROKER_ONLY
#include "gateway/im/apps.h"
#include "gateway/im/auth.h"
#include "gateway/im/authpool.h"
#include "gateway/im/imconn.h"
#include "gateway/im/im.h"
#include "gateway/im/rest.h"
#include "gateway/im/rest_media.h"
#endif
#include "store/store.h"
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------ lifecycle runners */

void gw_steps_init(const struct gw_step *t, size_t n, struct au_shard *s)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].init) t[i].init(s);
}

void gw_steps_stop(const struct gw_step *t, size_t n, struct au_shard *s)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].stop) t[i].stop(s);
}

int gw_steps_tick(const struct gw_step *t, size_t n, struct au_shard *s, uint64_t now)
{
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        if (!t[i].tick) continue;
        int r = t[i].tick(s, now);
        if (r >= 0 && (best < 0 || r < best)) best = r;
    }
    return best;
}

void gw_steps_fini(const struct gw_step *t, size_t n, struct au_shard *s)
{
    for (size_t i = n; i-- > 0;)
        if (t[i].fini) t[i].fini(s);
}

/* ------------------------------------------------------------------ the per-shard lifecycle */

/* The one place that orders the services of a shard. Init top to bottom, fini bottom to top:
 *   init: broker state, IM directory (restored IM sessions refer to it), sessions restored from the store
 *   fini: media uploads detach BEFORE the store (a finished upload still writes its record); every write not
 *         acknowledged is stored and the shard leaves the store (its completions run there, before anything is
 *         freed); MQTT IM logins in flight are released; sessions freed; IM state freed; broker state freed.
 * The im, imconn and media rows are the IM service's (its broker extension is registered in gw_open); a build
 * with AU_BROKER_ONLY (build/aurora-broker, a test binary) has none of them. */
static const struct gw_step k_steps[] = {
    { "broker",   broker_shard_init, broker_shard_stop, NULL, broker_shard_fini },
#ifndef AU_BROKER_ONLY
    { "im",       im_shard_init, NULL, NULL, im_shard_fini },
#endif
    { "sessions", broker_shard_load, NULL, NULL, broker_shard_drop_sessions },
#ifndef AU_BROKER_ONLY
    { "imconn",   NULL, NULL, NULL, imconn_shard_detach },
#endif
    { "persist",  NULL, NULL, broker_shard_tick, broker_shard_store_detach },
#ifndef AU_BROKER_ONLY
    { "media",    NULL, NULL, NULL, rest_media_shard_detach },
#endif
};

const struct gw_step *gw_lifecycle(size_t *n)
{
    *n = AU_ARRAY_LEN(k_steps);
    return k_steps;
}

static void shard_init(struct au_shard *s)
{
    gw_steps_init(k_steps, AU_ARRAY_LEN(k_steps), s);
    au_info("shard ready max_conns=%u", s->max_conns);
}

static void shard_stop(struct au_shard *s) { gw_steps_stop(k_steps, AU_ARRAY_LEN(k_steps), s); }
static int shard_tick(struct au_shard *s, uint64_t now) { return gw_steps_tick(k_steps, AU_ARRAY_LEN(k_steps), s, now); }
static void shard_fini(struct au_shard *s) { gw_steps_fini(k_steps, AU_ARRAY_LEN(k_steps), s); }

static const struct au_loop_hooks k_hooks = {
    .shard_init = shard_init,
    .shard_fini = shard_fini,
    .shard_tick = shard_tick,
    .shard_stop = shard_stop,
};

/* ------------------------------------------------------------------ metrics */

#define LOOP_METRIC(name, field, type, help)                                                          \
    do {                                                                                              \
        gw_metrics_printf(m, "# HELP aurora_" name " " help "\n# TYPE aurora_" name " " type "\n");   \
        for (int i = 0; i < nshards; i++)                                                             \
            gw_metrics_printf(m, "aurora_" name "{shard=\"%d\"} %llu\n", i,                          \
                              (unsigned long long)AU_STAT_READ(shards[i], field));                    \
    } while (0)

static void loop_metrics(struct gw_metrics *m, struct au_shard *const *shards, int nshards)
{
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
}

/* ------------------------------------------------------------------ open / start / stop */

static int fail(char *err, size_t errlen, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

static int add_listener(struct gateway *gw, const char *addr, const struct au_proto *proto, const char *name,
                        char *err, size_t errlen)
{
    AU_ASSERT(gw->nl < GW_LISTENERS_MAX);
    struct au_listener_spec *l = &gw->ls[gw->nl];
    if (au_parse_hostport(addr, &l->addr, &l->addrlen) != 0) return fail(err, errlen, 2, "bad %s address %s", name, addr);
    l->proto = proto;
    l->tp = &au_transport_tcp;
    l->name = name;
    gw->nl++;
    return 0;
}

int gw_open(struct gateway *gw, const struct au_config *cfg, char *err, size_t errlen)
{
    memset(gw, 0, sizeof *gw);
    gw->svc.cfg = cfg;
    if (mkdir(cfg->data_dir, 0700) != 0 && errno != EEXIST)
        return fail(err, errlen, 1, "cannot create data dir %s: %s", cfg->data_dir, strerror(errno));

    /* Listeners, from the configuration. */
    int r;
    if ((r = add_listener(gw, cfg->mqtt_listen, &mqtt_proto, "mqtt", err, errlen)) != 0) return r;
    if ((r = add_listener(gw, cfg->http_listen, &http_gw_proto, "http", err, errlen)) != 0) return r;

    /* The embedded store: LevelDB in <data>/db behind group-committing store threads. */
    struct store_opts so = { .dir = cfg->data_dir, .readers = 1, .sync = true };
    char e[512];
    if (store_open(&gw->svc.store, &so, e, sizeof e) != 0) return fail(err, errlen, 1, "store: %s", e);
    persist_set_store(gw->svc.store);
    http_gw_init(cfg);          /* the HTTP body budget */
#ifndef AU_BROKER_ONLY
    if (im_apps_bootstrap(gw->svc.store, cfg->data_dir, e, sizeof e) != 0) return fail(err, errlen, 1, "%s", e);
    /* Password hashing runs on its own threads; login tokens are HMACs with a key kept in the data dir. */
    static struct auth_token_key tkey;
    if (auth_token_key_load(cfg->data_dir, &tkey, e, sizeof e) != 0) return fail(err, errlen, 1, "%s", e);
    gw->svc.token_key = &tkey;
    gw->svc.authpool = authpool_new(NULL);

    /* Modules and their routes; the IM service plugs into the broker as its extension. */
    imconn_setup(gw->svc.authpool, gw->svc.token_key);
    if (im_ext_register() != 0) return fail(err, errlen, 1, "broker extension table full");
    rest_init(cfg);             /* REST body gate + operator token (gateway/im/rest.h) */
    rest_set_authpool(gw->svc.authpool);
    if (rest_media_init(cfg, e, sizeof e) != 0) return fail(err, errlen, 1, "media: %s", e);
    gateway_routes_register();  /* every module's route table (gateway/routes.h) */
#else
    if (http_routes_add(&http_gw_routes, NULL) != 0) return fail(err, errlen, 1, "built-in routes refused");
#endif

    /* /metrics, in this order: the loop's counters, HTTP buffering, the broker's counters. */
    gw_metrics_register(&gw->svc.metrics, loop_metrics);
    gw_metrics_register(&gw->svc.metrics, http_gw_metrics);
    gw_metrics_register(&gw->svc.metrics, broker_metrics);

    /* The shards, and the external producers (worker threads posting completions to shards): ids from the loop. */
    uint32_t nshards = au_config_shards(cfg);
    gw->lo.nshards = (int)nshards;
    if (cfg->max_connections) gw->lo.max_conns_per_shard = (cfg->max_connections + nshards - 1) / nshards;
    gw->lo.listeners = gw->ls;
    gw->lo.nlisteners = gw->nl;
    gw->lo.hooks = &k_hooks;
    gw->lo.drain_ms = 3000;
    gw->lo.services = &gw->svc;
    gw->ext_store = au_loop_ext_alloc(&gw->lo, (int)store_threads(&so));
#ifndef AU_BROKER_ONLY
    gw->ext_auth = au_loop_ext_alloc(&gw->lo, (int)authpool_threads(gw->svc.authpool));
    gw->ext_media = au_loop_ext_alloc(&gw->lo, (int)rest_media_threads());
#endif
    if (gw->ext_store < 0 || gw->ext_auth < 0 || gw->ext_media < 0)
        return fail(err, errlen, 1, "more worker threads than external producer ids (%d)", AU_MAX_EXT);
    return 0;
}

int gw_start(struct gateway *gw, char *err, size_t errlen)
{
    int r = au_loop_start(&gw->lo, &gw->svc.shards);
    if (r != 0) return fail(err, errlen, 1, "cannot start: %s", strerror(-r));
    gw->svc.nshards = gw->lo.nshards;
    store_start(gw->svc.store, gw->svc.shards, gw->svc.nshards, gw->ext_store);
#ifndef AU_BROKER_ONLY
    authpool_start(gw->svc.authpool, gw->svc.shards, gw->svc.nshards, gw->ext_auth);
    rest_media_start(gw->svc.shards, gw->svc.nshards, gw->ext_media);
#endif
    const struct au_config *cfg = gw->svc.cfg;
    au_info("aurora started shards=%d mqtt=%s http=%s data=%s fixed_files_per_shard=%u", gw->svc.nshards,
            cfg->mqtt_listen, cfg->http_listen, cfg->data_dir, au_loop_fixed_files());
    return 0;
}

void gw_stop(struct gateway *gw)
{
    au_loop_stop(gw->svc.shards, gw->svc.nshards); /* each shard runs the fini steps (detaches from the store) */
#ifndef AU_BROKER_ONLY
    authpool_stop(gw->svc.authpool);
    rest_media_stop();
#endif
    store_close(gw->svc.store);
}
