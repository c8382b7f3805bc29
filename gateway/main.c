/* main.c - aurora: parse the configuration, build the gateway, run until SIGTERM/SIGINT, stop gracefully. */
#include "core/config.h"
#include "core/log.h"
#include "gateway/gateway.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    static struct au_config cfg;
    static struct gateway gw;
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

    if ((r = gw_open(&gw, &cfg, err, sizeof err)) != 0 || (r = gw_start(&gw, err, sizeof err)) != 0) {
        fprintf(stderr, "aurora: %s\n", err);
        return r;
    }
    int sig = 0;
    sigwait(&set, &sig);
    au_info("signal %d: shutting down", sig);
    gw_stop(&gw);
    au_info("stopped");
    au_config_free(&cfg);
    return 0;
}
