/* main.c - aurora: parse configuration, start the shards, wait for SIGTERM/SIGINT, stop gracefully. */
#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "gateway/mqtt/broker.h"
#include "gateway/http/http_gw.h"
#include "gateway/mqtt/persist.h"
#include "store/store.h"
#include "gateway/im/apps.h"
#include "gateway/im/auth.h"
#include "gateway/im/authpool.h"
#include "gateway/im/imconn.h"
#include "gateway/im/im.h"
#include "gateway/im/rest.h"
#include "gateway/im/rest_media.h"
#include "gateway/routes.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    static struct au_config cfg;
    char err[512];
    au_config_defaults(&cfg);
    int r = au_config_parse_args(&cfg, argc, argv, err, sizeof err);
    if (r == AU_CONFIG_HELP) {
        au_config_usage(stdout);
        return 0;
    }
    if (r != AU_CONFIG_OK || au_config_validate(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "aurora: %s\n", err);
        return 2;
    }
    au_log_set_level((enum au_log_level)cfg.log_level);

    /* Signals are handled on the main thread only: block them before any shard thread starts. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (mkdir(cfg.data_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "aurora: cannot create data dir %s: %s\n", cfg.data_dir, strerror(errno));
        return 1;
    }

    struct au_listener_spec ls[4];
    uint32_t nl = 0;
    memset(ls, 0, sizeof ls);
    if (au_parse_hostport(cfg.mqtt_listen, &ls[nl].addr, &ls[nl].addrlen) != 0) {
        fprintf(stderr, "aurora: bad mqtt address %s\n", cfg.mqtt_listen);
        return 2;
    }
    ls[nl].proto = &mqtt_proto;
    ls[nl].tp = &au_transport_tcp;
    ls[nl].name = "mqtt";
    nl++;
    if (au_parse_hostport(cfg.http_listen, &ls[nl].addr, &ls[nl].addrlen) != 0) {
        fprintf(stderr, "aurora: bad http address %s\n", cfg.http_listen);
        return 2;
    }
    ls[nl].proto = &http_gw_proto;
    ls[nl].tp = &au_transport_tcp;
    ls[nl].name = "http";
    nl++;

    /* The embedded store: LevelDB in <data>/db behind group-committing store threads. */
    struct store *st = NULL;
    struct store_opts so = { .dir = cfg.data_dir, .readers = 1, .sync = true };
    if (store_open(&st, &so, err, sizeof err) != 0) {
        fprintf(stderr, "aurora: store: %s\n", err);
        return 1;
    }
    persist_set_store(st);
    if (im_apps_bootstrap(st, cfg.data_dir, err, sizeof err) != 0) {
        fprintf(stderr, "aurora: %s\n", err);
        return 1;
    }
    /* Password hashing runs on its own threads; login tokens are HMACs with a key kept in the data dir. */
    static struct auth_token_key tkey;
    if (auth_token_key_load(cfg.data_dir, &tkey, err, sizeof err) != 0) {
        fprintf(stderr, "aurora: %s\n", err);
        return 1;
    }
    struct authpool *pool = authpool_new(NULL);
    imconn_setup(pool, &tkey);
    broker_set_config(&cfg);
    http_gw_init(&cfg);
    rest_init(&cfg);            /* REST body gate + operator token (gateway/im/rest.h) */
    rest_set_authpool(pool);
    if (rest_media_init(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "aurora: media: %s\n", err);
        return 1;
    }
    gateway_routes_register();  /* every module's route table (gateway/routes.h) */

    uint32_t nshards = au_config_shards(&cfg);
    uint32_t per_shard = 0;
    if (cfg.max_connections) per_shard = (cfg.max_connections + nshards - 1) / nshards;
    struct au_loop_opts lo = {
        .nshards = (int)nshards,
        .max_conns_per_shard = per_shard,
        .listeners = ls,
        .nlisteners = nl,
        .hooks = &broker_hooks,
        .drain_ms = 3000,
        .n_ext = (int)(store_threads(&so) + authpool_threads(pool) + rest_media_threads()),
    };
    struct au_shard **shards;
    r = au_loop_start(&lo, &shards);
    if (r != 0) {
        fprintf(stderr, "aurora: cannot start: %s\n", strerror(-r));
        return 1;
    }
    store_start(st, shards, (int)nshards, 0);
    authpool_start(pool, shards, (int)nshards, (int)store_threads(&so));
    rest_media_start(shards, (int)nshards, (int)(store_threads(&so) + authpool_threads(pool)));
    http_gw_set_shards(shards, (int)nshards);
    au_info("aurora started shards=%u mqtt=%s http=%s data=%s fixed_files_per_shard=%u", nshards, cfg.mqtt_listen,
            cfg.http_listen, cfg.data_dir, au_loop_fixed_files());

    int sig = 0;
    sigwait(&set, &sig);
    au_info("signal %d: shutting down", sig);
    au_loop_stop(shards, (int)nshards); /* shard_fini detaches each shard from the store */
    authpool_stop(pool);
    rest_media_stop();
    store_close(st);
    au_info("stopped");
    au_config_free(&cfg);
    return 0;
}
