/* args.c - aurora-bench command line: parsing, per-scenario defaults and validation.
 * The target must be a loopback address (127.0.0.0/8 or ::1), and so must every source address. */
#include "perf/bench/bench.h"

#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BENCH_PORTS_PER_SRC 28000u       /* about the default ephemeral range per source address */

void bench_usage(FILE *f)
{
    fprintf(f,
"usage: aurora-bench --scenario hold|storm|p2p|fanout|fanin [options]\n"
"\n"
"target and addresses\n"
"  --host ADDR            broker address, loopback only: 127.0.0.0/8, ::1, localhost (127.0.0.1)\n"
"  --port N               broker port (1883)\n"
"  --src RANGES           source addresses, round robin per connection: 127.0.0.1-127.0.0.50[,127.0.1.1]\n"
"                         (each gives ~28k ports towards one target; needed past ~28k connections)\n"
"population\n"
"  --connections N        hold/storm: connections (1000); pub/sub: total, extra ones stay idle\n"
"  --publishers N         p2p 10, fanout 1, fanin 100\n"
"  --subscribers N        p2p = publishers, fanout 100, fanin 1 (wildcard subscribers)\n"
"  --topics N             fanout 1 (subscribers and publishers round robin); p2p/fanin: one per publisher\n"
"MQTT\n"
"  --version 4|5          protocol version (4 = 3.1.1)\n"
"  --qos 0|1|2            QoS of publishes and subscriptions (0)\n"
"  --payload BYTES        payload size, %u..%u (64)\n"
"  --keepalive S          keep-alive seconds; PINGREQ after S/2 idle (60, 0 = off)\n"
"  --username U, --password P\n"
"  --client-prefix S      client ids are S-<index> (bench-<pid>)\n"
"  --topic-prefix S       topics are S/<n> (bench/<pid>)\n"
"pacing and bounds\n"
"  --rate R               pub/sub: messages/s in total; hold/storm: connects/s (0 = as fast as possible)\n"
"  --window N             in-flight messages per publisher (%u, max %u): QoS 1/2 unacknowledged, and\n"
"                         with --rate 0 also not yet delivered to every subscriber\n"
"  --connect-window N     connects in progress per thread (%u)\n"
"  --duration S           measured phase in seconds: hold time or publishing time (%u, max %u)\n"
"  --setup-timeout S      bound of the connect/subscribe phase (%u, max %u)\n"
"  --threads N            worker threads, one io_uring each (2; raised so a ring holds <= %u connections)\n"
"output\n"
"  --json FILE            write the summary JSON object to FILE (it is also the last stdout line, after 'JSON: ')\n"
"  --quiet                no per-second progress lines\n"
"  --log-level L          debug|info|warn|error (info)\n"
"  --help\n",
            BENCH_MIN_PAYLOAD, BENCH_MAX_PAYLOAD, BENCH_DEFAULT_WINDOW, BENCH_MAX_WINDOW,
            BENCH_DEFAULT_CONN_WIN, BENCH_DEFAULT_DURATION_S, BENCH_MAX_DURATION_S,
            BENCH_DEFAULT_SETUP_S, BENCH_MAX_SETUP_S, BENCH_CONNS_PER_RING);
}

bool bench_is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        return IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
    }
    return false;
}

static int parse_ip(const char *s, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (strcmp(s, "localhost") == 0) s = "127.0.0.1";
    if (inet_pton(AF_INET, s, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, s, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        return 0;
    }
    return -1;
}

int bench_parse_target(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    if (parse_ip(host, ss) < 0 || !bench_is_loopback(ss)) return -1;
    if (ss->ss_family == AF_INET) {
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
        *len = sizeof(struct sockaddr_in);
    } else {
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
        *len = sizeof(struct sockaddr_in6);
    }
    return 0;
}

int bench_parse_src(const char *spec, int family, struct sockaddr_storage **out)
{
    *out = NULL;
    char buf[512];
    if (strlen(spec) >= sizeof buf) return -1;
    strcpy(buf, spec);
    struct sockaddr_storage *v = NULL;
    uint32_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *dash = strchr(tok, '-');
        struct sockaddr_storage lo, hi;
        if (dash) *dash = '\0';
        if (parse_ip(tok, &lo) < 0 || !bench_is_loopback(&lo) || lo.ss_family != family) goto bad;
        hi = lo;
        if (dash && (parse_ip(dash + 1, &hi) < 0 || !bench_is_loopback(&hi) || hi.ss_family != family ||
                     family != AF_INET))
            goto bad;
        uint32_t a = 0, b = 0;
        if (family == AF_INET) {
            a = ntohl(((struct sockaddr_in *)&lo)->sin_addr.s_addr);
            b = ntohl(((struct sockaddr_in *)&hi)->sin_addr.s_addr);
            if (b < a || b - a >= BENCH_MAX_SRC_ADDRS) goto bad;
        }
        if (n + (b - a) + 1 > BENCH_MAX_SRC_ADDRS) goto bad;
        struct sockaddr_storage *nv = realloc(v, (n + (b - a) + 1) * sizeof *v);
        if (!nv) goto bad;
        v = nv;
        for (uint64_t x = a; x <= b; x++) {
            struct sockaddr_storage *s = &v[n++];
            *s = lo;
            if (family == AF_INET) ((struct sockaddr_in *)s)->sin_addr.s_addr = htonl((uint32_t)x);
        }
    }
    if (!n) goto bad;
    *out = v;
    return (int)n;
bad:
    free(v);
    return -1;
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (!s || !*s || *s == '-') return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

enum {
    O_SCENARIO = 256, O_HOST, O_PORT, O_SRC, O_CONNS, O_PUBS, O_SUBS, O_TOPICS, O_VERSION, O_QOS,
    O_PAYLOAD, O_KEEPALIVE, O_USER, O_PASS, O_CPREFIX, O_TPREFIX, O_RATE, O_WINDOW, O_CWINDOW,
    O_DURATION, O_SETUP, O_THREADS, O_JSON, O_QUIET, O_LOGLEVEL, O_HELP,
};

static const struct option k_opts[] = {
    { "scenario", required_argument, NULL, O_SCENARIO }, { "host", required_argument, NULL, O_HOST },
    { "port", required_argument, NULL, O_PORT },         { "src", required_argument, NULL, O_SRC },
    { "connections", required_argument, NULL, O_CONNS }, { "publishers", required_argument, NULL, O_PUBS },
    { "subscribers", required_argument, NULL, O_SUBS },  { "topics", required_argument, NULL, O_TOPICS },
    { "version", required_argument, NULL, O_VERSION },   { "qos", required_argument, NULL, O_QOS },
    { "payload", required_argument, NULL, O_PAYLOAD },   { "keepalive", required_argument, NULL, O_KEEPALIVE },
    { "username", required_argument, NULL, O_USER },     { "password", required_argument, NULL, O_PASS },
    { "client-prefix", required_argument, NULL, O_CPREFIX }, { "topic-prefix", required_argument, NULL, O_TPREFIX },
    { "rate", required_argument, NULL, O_RATE },         { "window", required_argument, NULL, O_WINDOW },
    { "connect-window", required_argument, NULL, O_CWINDOW }, { "duration", required_argument, NULL, O_DURATION },
    { "setup-timeout", required_argument, NULL, O_SETUP }, { "threads", required_argument, NULL, O_THREADS },
    { "json", required_argument, NULL, O_JSON },         { "quiet", no_argument, NULL, O_QUIET },
    { "log-level", required_argument, NULL, O_LOGLEVEL }, { "help", no_argument, NULL, O_HELP },
    { NULL, 0, NULL, 0 },
};

#define USAGE_ERR(...) do { fprintf(stderr, "aurora-bench: " __VA_ARGS__); fputc('\n', stderr); \
                            fprintf(stderr, "try --help\n"); return -1; } while (0)

int bench_parse_args(int argc, char **argv, struct bench_cfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    const char *scenario = NULL, *host = "127.0.0.1", *src = NULL;
    uint64_t port = 1883, conns = 0, pubs = 0, subs = 0, topics = 0, version = 4, qos = 0, payload = 64;
    uint64_t keepalive = 60, window = BENCH_DEFAULT_WINDOW, cwindow = BENCH_DEFAULT_CONN_WIN;
    uint64_t duration = BENCH_DEFAULT_DURATION_S, setup = BENCH_DEFAULT_SETUP_S, threads = 2;
    bool have_conns = false, have_pubs = false, have_subs = false, have_topics = false;
    double rate = 0;
    snprintf(cfg->client_prefix, sizeof cfg->client_prefix, "bench-%d", (int)getpid());
    snprintf(cfg->topic_prefix, sizeof cfg->topic_prefix, "bench/%d", (int)getpid());
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "", k_opts, NULL)) != -1) {
        const char *a = optarg;
        switch (opt) {
        case O_SCENARIO: scenario = a; break;
        case O_HOST: host = a; break;
        case O_PORT: if (parse_u64(a, 1, 65535, &port)) USAGE_ERR("--port: 1..65535"); break;
        case O_SRC: src = a; break;
        case O_CONNS:
            if (parse_u64(a, 1, BENCH_MAX_CONNECTIONS, &conns)) USAGE_ERR("--connections: 1..%u", BENCH_MAX_CONNECTIONS);
            have_conns = true;
            break;
        case O_PUBS:
            if (parse_u64(a, 0, BENCH_MAX_CONNECTIONS, &pubs)) USAGE_ERR("--publishers: 0..%u", BENCH_MAX_CONNECTIONS);
            have_pubs = true;
            break;
        case O_SUBS:
            if (parse_u64(a, 0, BENCH_MAX_CONNECTIONS, &subs)) USAGE_ERR("--subscribers: 0..%u", BENCH_MAX_CONNECTIONS);
            have_subs = true;
            break;
        case O_TOPICS:
            if (parse_u64(a, 1, BENCH_MAX_CONNECTIONS, &topics)) USAGE_ERR("--topics: 1..%u", BENCH_MAX_CONNECTIONS);
            have_topics = true;
            break;
        case O_VERSION: if (parse_u64(a, 4, 5, &version)) USAGE_ERR("--version: 4 or 5"); break;
        case O_QOS: if (parse_u64(a, 0, 2, &qos)) USAGE_ERR("--qos: 0, 1 or 2"); break;
        case O_PAYLOAD:
            if (parse_u64(a, BENCH_MIN_PAYLOAD, BENCH_MAX_PAYLOAD, &payload))
                USAGE_ERR("--payload: %u..%u bytes (the first 16 carry timestamp, publisher, sequence)",
                          BENCH_MIN_PAYLOAD, BENCH_MAX_PAYLOAD);
            break;
        case O_KEEPALIVE: if (parse_u64(a, 0, 65535, &keepalive)) USAGE_ERR("--keepalive: 0..65535"); break;
        case O_USER: cfg->username = a; break;
        case O_PASS: cfg->password = a; break;
        case O_CPREFIX:
            if (!*a || strlen(a) > BENCH_MAX_CLIENT_PREFIX) USAGE_ERR("--client-prefix: 1..%u bytes", BENCH_MAX_CLIENT_PREFIX);
            snprintf(cfg->client_prefix, sizeof cfg->client_prefix, "%s", a);
            break;
        case O_TPREFIX:
            if (!*a || strlen(a) > BENCH_MAX_TOPIC_PREFIX || strpbrk(a, "+#"))
                USAGE_ERR("--topic-prefix: 1..%u bytes, no wildcards", BENCH_MAX_TOPIC_PREFIX);
            snprintf(cfg->topic_prefix, sizeof cfg->topic_prefix, "%s", a);
            break;
        case O_RATE: {
            char *end;
            errno = 0;
            rate = strtod(a, &end);
            if (errno || *end || !isfinite(rate) || rate < 0 || rate > 1e9) USAGE_ERR("--rate: 0..1e9");
            break;
        }
        case O_WINDOW: if (parse_u64(a, 1, BENCH_MAX_WINDOW, &window)) USAGE_ERR("--window: 1..%u", BENCH_MAX_WINDOW); break;
        case O_CWINDOW:
            if (parse_u64(a, 1, BENCH_MAX_CONN_WIN, &cwindow)) USAGE_ERR("--connect-window: 1..%u", BENCH_MAX_CONN_WIN);
            break;
        case O_DURATION:
            if (parse_u64(a, 1, BENCH_MAX_DURATION_S, &duration)) USAGE_ERR("--duration: 1..%u seconds", BENCH_MAX_DURATION_S);
            break;
        case O_SETUP:
            if (parse_u64(a, 1, BENCH_MAX_SETUP_S, &setup)) USAGE_ERR("--setup-timeout: 1..%u seconds", BENCH_MAX_SETUP_S);
            break;
        case O_THREADS: if (parse_u64(a, 1, BENCH_MAX_THREADS, &threads)) USAGE_ERR("--threads: 1..%u", BENCH_MAX_THREADS); break;
        case O_JSON: cfg->json_path = a; break;
        case O_QUIET: cfg->quiet = true; break;
        case O_LOGLEVEL: {
            int l = au_log_parse_level(a);
            if (l < 0) USAGE_ERR("--log-level: debug|info|warn|error");
            au_log_set_level((enum au_log_level)l);
            break;
        }
        case O_HELP: bench_usage(stdout); return 1;
        default: USAGE_ERR("unknown option");
        }
    }
    if (optind < argc) USAGE_ERR("unexpected argument '%s'", argv[optind]);
    if (!scenario) USAGE_ERR("--scenario is required");

    static const struct { const char *name; enum bench_scenario sc; } k_sc[] = {
        { "hold", SC_HOLD }, { "storm", SC_STORM }, { "p2p", SC_P2P }, { "fanout", SC_FANOUT }, { "fanin", SC_FANIN },
    };
    bool found = false;
    for (size_t i = 0; i < AU_ARRAY_LEN(k_sc); i++)
        if (strcmp(scenario, k_sc[i].name) == 0) {
            cfg->scenario = k_sc[i].sc;
            cfg->scenario_name = k_sc[i].name;
            found = true;
        }
    if (!found) USAGE_ERR("unknown scenario '%s' (hold, storm, p2p, fanout, fanin)", scenario);

    /* target: loopback only */
    snprintf(cfg->host, sizeof cfg->host, "%s", host);
    cfg->port = (uint16_t)port;
    if (bench_parse_target(host, cfg->port, &cfg->target, &cfg->target_len) < 0)
        USAGE_ERR("--host '%s': only loopback addresses are allowed (127.0.0.0/8, ::1, localhost)", host);
    cfg->family = cfg->target.ss_family;
    if (src) {
        int n = bench_parse_src(src, cfg->family, &cfg->src);
        if (n < 0)
            USAGE_ERR("--src '%s': loopback addresses or ranges (a-b, IPv4 only) of the target's family, at most %u",
                      src, BENCH_MAX_SRC_ADDRS);
        cfg->n_src = (uint32_t)n;
        snprintf(cfg->src_spec, sizeof cfg->src_spec, "%s", src);
    }

    /* population per scenario */
    switch (cfg->scenario) {
    case SC_HOLD:
    case SC_STORM:
        if (have_pubs || have_subs || have_topics)
            USAGE_ERR("--publishers/--subscribers/--topics do not apply to %s", cfg->scenario_name);
        if (!have_conns) conns = 1000;
        break;
    case SC_P2P:
        if (!have_pubs) pubs = have_subs ? subs : 10;
        if (!have_subs) subs = pubs;
        if (subs != pubs) USAGE_ERR("p2p: one subscriber per publisher (--subscribers = --publishers)");
        if (have_topics && topics != pubs) USAGE_ERR("p2p: one topic per publisher (--topics = --publishers)");
        topics = pubs;
        break;
    case SC_FANOUT:
        if (!have_pubs) pubs = 1;
        if (!have_subs) subs = 100;
        if (!have_topics) topics = 1;
        break;
    case SC_FANIN:
        if (!have_pubs) pubs = 100;
        if (!have_subs) subs = 1;
        if (have_topics && topics != pubs) USAGE_ERR("fanin: one topic per publisher (--topics = --publishers)");
        topics = pubs;
        break;
    }
    if (cfg->scenario >= SC_P2P) {
        if (pubs == 0 || subs == 0) USAGE_ERR("%s needs publishers and subscribers", cfg->scenario_name);
        if (pubs + subs > BENCH_MAX_CONNECTIONS) USAGE_ERR("at most %u connections", BENCH_MAX_CONNECTIONS);
        if (topics > pubs + subs) USAGE_ERR("--topics: at most one per connection");
        if (!have_conns || conns < pubs + subs) {
            if (have_conns) au_info("--connections %llu raised to publishers + subscribers = %llu",
                                    (unsigned long long)conns, (unsigned long long)(pubs + subs));
            conns = pubs + subs;
        }
    }
    cfg->connections = (uint32_t)conns;
    cfg->publishers = (uint32_t)pubs;
    cfg->subscribers = (uint32_t)subs;
    cfg->topics = (uint32_t)topics;
    cfg->idle = cfg->connections - cfg->publishers - cfg->subscribers;
    cfg->version = (uint8_t)version;
    cfg->qos = (uint8_t)qos;
    cfg->payload = (uint32_t)payload;
    cfg->keepalive = (uint16_t)keepalive;
    cfg->rate = rate;
    cfg->window = (uint32_t)window;
    cfg->connect_window = (uint32_t)cwindow;
    cfg->duration_s = (uint32_t)duration;
    cfg->setup_s = (uint32_t)setup;

    /* one ring per thread, each holding at most BENCH_CONNS_PER_RING direct descriptors */
    uint64_t need = (conns + BENCH_CONNS_PER_RING - 1) / BENCH_CONNS_PER_RING;
    if (need > BENCH_MAX_THREADS) USAGE_ERR("too many connections for %u rings", BENCH_MAX_THREADS);
    if (threads < need) {
        au_info("--threads raised from %llu to %llu (at most %u connections per ring)",
                (unsigned long long)threads, (unsigned long long)need, BENCH_CONNS_PER_RING);
        threads = need;
    }
    if (threads > conns) threads = conns;
    cfg->threads = (uint32_t)threads;

    uint64_t ports = (uint64_t)BENCH_PORTS_PER_SRC * (cfg->n_src ? cfg->n_src : 1);
    if (conns > ports)
        au_warn("%llu connections from %u source address(es): about %u ports each; add --src addresses",
                (unsigned long long)conns, cfg->n_src ? cfg->n_src : 1, BENCH_PORTS_PER_SRC);
    if (cfg->scenario == SC_HOLD && rate > 0 && (double)conns / rate > (double)setup)
        au_warn("ramp of %llu connections at %.0f/s needs more than --setup-timeout %llu s",
                (unsigned long long)conns, rate, (unsigned long long)setup);
    return 0;
}
