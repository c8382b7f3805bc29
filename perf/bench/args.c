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
"usage: aurora-bench --scenario hold|storm|p2p|fanout|fanin|im-single|im-group|im-replay [options]\n"
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
"  --clean 0|1            subscribers' Clean Session (3.1.1) / Clean Start (5) flag (1). With --clean 0 on 3.1.1,\n"
"                         or --session-expiry S > 0 on 5, subscribers have persistent sessions: a broker with\n"
"                         persistence stores every QoS 1/2 message for them before it acknowledges the PUBLISH\n"
"  --session-expiry S     subscribers' Session Expiry Interval, MQTT 5 only (0; 4294967295 = never)\n"
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
"  --help\n"
"IM scenarios (users registered beforehand, e.g. by perf/im-setup; MQTT 5 and QoS 1 by default)\n"
"  --appkey K             app key: logins are <K>:<user> with --password\n"
"  --user-prefix P        usernames are P<n> (n from --user-base; 4..128 bytes in all)\n"
"  --user-base N          first user number (0)\n"
"  im-single: --publishers P pairs (10): user n sends to user P+n, whose device subscribes im/inbox\n"
"  im-group:  --groups G (1) --members M (100) --group-ids ID,... : group g's members are users g*M..g*M+M-1,\n"
"             every member's device subscribes; --publishers (G) second devices of members post to group p%%G\n"
"  im-replay: --publishers P (100) --messages N (100): user P's device subscribes, goes away; users 0..P-1 send\n"
"             N each to user P; then the device returns and the replay is timed (--replay-timeout S, %u)\n"
"  --messages N           messages per publisher, then stop (0 = until --duration ends; im-replay 100)\n"
"  --offline-msgs N       im-replay: messages the gateway replays per conversation (%u = its im_offline_msgs)\n"
"  --payload BYTES        IM: length of msg_body.text, %u..%u (%u)\n",
            BENCH_MIN_PAYLOAD, BENCH_MAX_PAYLOAD, BENCH_DEFAULT_WINDOW, BENCH_MAX_WINDOW,
            BENCH_DEFAULT_CONN_WIN, BENCH_DEFAULT_DURATION_S, BENCH_MAX_DURATION_S,
            BENCH_DEFAULT_SETUP_S, BENCH_MAX_SETUP_S, BENCH_CONNS_PER_RING, BENCH_IM_REPLAY_TIMEOUT_S,
            BENCH_IM_OFFLINE_MSGS, BENCH_IM_MIN_TEXT, BENCH_IM_MAX_TEXT, BENCH_IM_DEFAULT_TEXT);
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
    O_DURATION, O_SETUP, O_THREADS, O_CLEAN, O_SEXPIRY, O_JSON, O_QUIET, O_LOGLEVEL, O_HELP,
    O_APPKEY, O_UPREFIX, O_UBASE, O_GROUPS, O_MEMBERS, O_GIDS, O_MESSAGES, O_OFFLINE, O_REPLAY_TO,
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
    { "appkey", required_argument, NULL, O_APPKEY },     { "user-prefix", required_argument, NULL, O_UPREFIX },
    { "user-base", required_argument, NULL, O_UBASE },   { "groups", required_argument, NULL, O_GROUPS },
    { "members", required_argument, NULL, O_MEMBERS },   { "group-ids", required_argument, NULL, O_GIDS },
    { "messages", required_argument, NULL, O_MESSAGES }, { "offline-msgs", required_argument, NULL, O_OFFLINE },
    { "replay-timeout", required_argument, NULL, O_REPLAY_TO },
    { "clean", required_argument, NULL, O_CLEAN },        { "session-expiry", required_argument, NULL, O_SEXPIRY },
    { NULL, 0, NULL, 0 },
};

/* A username part: first byte alphanumeric, then alphanumerics and _ . - @ (the gateway's rule). */
static bool im_prefix_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > BENCH_IM_MAX_USER_PREFIX) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-' && c != '@'))) return false;
    }
    return true;
}

/* "10001,10002" -> gids (allocated). Returns the count or -1. */
static int parse_gids(const char *spec, uint64_t **out)
{
    *out = NULL;
    uint32_t n = 0;
    uint64_t *v = calloc(BENCH_IM_MAX_GROUPS, sizeof *v);
    if (!v) return -1;
    const char *p = spec;
    for (;;) {
        char *end;
        if (*p < '0' || *p > '9' || n == BENCH_IM_MAX_GROUPS) goto bad;
        errno = 0;
        unsigned long long g = strtoull(p, &end, 10);
        if (errno || g == 0) goto bad;
        v[n++] = g;
        if (*end == '\0') break;
        if (*end != ',') goto bad;
        p = end + 1;
    }
    *out = v;
    return (int)n;
bad:
    free(v);
    return -1;
}

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
    bool have_version = false, have_qos = false, have_payload = false, have_cprefix = false;
    bool have_groups = false, have_members = false, have_messages = false;
    uint64_t groups = 1, members = 100, messages = 0, offline = BENCH_IM_OFFLINE_MSGS, user_base = 0;
    uint64_t replay_to = BENCH_IM_REPLAY_TIMEOUT_S;
    uint64_t clean = 1, sexpiry = 0;
    bool have_clean = false, have_sexpiry = false;
    const char *gids = NULL;
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
        case O_VERSION:
            if (parse_u64(a, 4, 5, &version)) USAGE_ERR("--version: 4 or 5");
            have_version = true;
            break;
        case O_QOS:
            if (parse_u64(a, 0, 2, &qos)) USAGE_ERR("--qos: 0, 1 or 2");
            have_qos = true;
            break;
        case O_PAYLOAD:
            if (parse_u64(a, BENCH_MIN_PAYLOAD, BENCH_MAX_PAYLOAD, &payload))
                USAGE_ERR("--payload: %u..%u bytes (the first 16 carry timestamp, publisher, sequence)",
                          BENCH_MIN_PAYLOAD, BENCH_MAX_PAYLOAD);
            have_payload = true;
            break;
        case O_KEEPALIVE: if (parse_u64(a, 0, 65535, &keepalive)) USAGE_ERR("--keepalive: 0..65535"); break;
        case O_USER: cfg->username = a; break;
        case O_PASS: cfg->password = a; break;
        case O_CPREFIX:
            if (!*a || strlen(a) > BENCH_MAX_CLIENT_PREFIX) USAGE_ERR("--client-prefix: 1..%u bytes", BENCH_MAX_CLIENT_PREFIX);
            snprintf(cfg->client_prefix, sizeof cfg->client_prefix, "%s", a);
            have_cprefix = true;
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
        case O_CLEAN:
            if (parse_u64(a, 0, 1, &clean)) USAGE_ERR("--clean: 0 or 1");
            have_clean = true;
            break;
        case O_SEXPIRY:
            if (parse_u64(a, 0, BENCH_MAX_SESSION_EXPIRY, &sexpiry))
                USAGE_ERR("--session-expiry: 0..%u seconds", BENCH_MAX_SESSION_EXPIRY);
            have_sexpiry = true;
            break;
        case O_APPKEY:
            if (!*a || strlen(a) > BENCH_IM_MAX_APPKEY || strchr(a, ':')) USAGE_ERR("--appkey: 1..%u bytes, no ':'", BENCH_IM_MAX_APPKEY);
            snprintf(cfg->appkey, sizeof cfg->appkey, "%s", a);
            break;
        case O_UPREFIX:
            if (!im_prefix_ok(a))
                USAGE_ERR("--user-prefix: 1..%u bytes, a letter or digit first, then letters, digits, _ . - @",
                          BENCH_IM_MAX_USER_PREFIX);
            snprintf(cfg->user_prefix, sizeof cfg->user_prefix, "%s", a);
            break;
        case O_UBASE: if (parse_u64(a, 0, 1000000000u, &user_base)) USAGE_ERR("--user-base: 0..1000000000"); break;
        case O_GROUPS:
            if (parse_u64(a, 1, BENCH_IM_MAX_GROUPS, &groups)) USAGE_ERR("--groups: 1..%u", BENCH_IM_MAX_GROUPS);
            have_groups = true;
            break;
        case O_MEMBERS:
            if (parse_u64(a, 1, BENCH_IM_MAX_MEMBERS, &members)) USAGE_ERR("--members: 1..%u", BENCH_IM_MAX_MEMBERS);
            have_members = true;
            break;
        case O_GIDS: gids = a; break;
        case O_MESSAGES:
            if (parse_u64(a, 0, BENCH_IM_MAX_MESSAGES, &messages)) USAGE_ERR("--messages: 0..%u", BENCH_IM_MAX_MESSAGES);
            have_messages = true;
            break;
        case O_OFFLINE: if (parse_u64(a, 1, 100000, &offline)) USAGE_ERR("--offline-msgs: 1..100000"); break;
        case O_REPLAY_TO:
            if (parse_u64(a, 1, BENCH_IM_MAX_REPLAY_S, &replay_to)) USAGE_ERR("--replay-timeout: 1..%u seconds", BENCH_IM_MAX_REPLAY_S);
            break;
        default: USAGE_ERR("unknown option");
        }
    }
    if (optind < argc) USAGE_ERR("unexpected argument '%s'", argv[optind]);
    if (!scenario) USAGE_ERR("--scenario is required");

    static const struct { const char *name; enum bench_scenario sc; } k_sc[] = {
        { "hold", SC_HOLD }, { "storm", SC_STORM }, { "p2p", SC_P2P }, { "fanout", SC_FANOUT }, { "fanin", SC_FANIN },
        { "im-single", SC_IM_SINGLE }, { "im-group", SC_IM_GROUP }, { "im-replay", SC_IM_REPLAY },
    };
    bool found = false;
    for (size_t i = 0; i < AU_ARRAY_LEN(k_sc); i++)
        if (strcmp(scenario, k_sc[i].name) == 0) {
            cfg->scenario = k_sc[i].sc;
            cfg->scenario_name = k_sc[i].name;
            found = true;
        }
    if (!found) USAGE_ERR("unknown scenario '%s' (hold, storm, p2p, fanout, fanin, im-single, im-group, im-replay)", scenario);
    cfg->im = cfg->scenario >= SC_IM_SINGLE;
    if (!cfg->im && (cfg->appkey[0] || cfg->user_prefix[0] || gids || have_groups || have_members || have_messages))
        USAGE_ERR("--appkey/--user-prefix/--groups/--members/--group-ids/--messages are for the im-* scenarios");

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
    case SC_IM_SINGLE:
    case SC_IM_GROUP:
    case SC_IM_REPLAY:
        if (!cfg->appkey[0]) USAGE_ERR("%s: --appkey is required", cfg->scenario_name);
        if (!cfg->user_prefix[0]) USAGE_ERR("%s: --user-prefix is required", cfg->scenario_name);
        if (!cfg->password) USAGE_ERR("%s: --password is required (the users' password)", cfg->scenario_name);
        if (cfg->username) USAGE_ERR("%s: logins are <appkey>:<user>; --username does not apply", cfg->scenario_name);
        if (have_topics || have_conns) USAGE_ERR("%s: --topics/--connections do not apply", cfg->scenario_name);
        if (have_qos && qos != 1) USAGE_ERR("%s: im/send and im/inbox use QoS 1", cfg->scenario_name);
        qos = 1;
        if (!have_version) version = 5;             /* refusals carry reason codes */
        if (!have_payload) payload = BENCH_IM_DEFAULT_TEXT;
        if (payload < BENCH_IM_MIN_TEXT || payload > BENCH_IM_MAX_TEXT)
            USAGE_ERR("%s: --payload is the text length, %u..%u", cfg->scenario_name, BENCH_IM_MIN_TEXT, BENCH_IM_MAX_TEXT);
        if (!have_cprefix) snprintf(cfg->client_prefix, sizeof cfg->client_prefix, "imb"); /* same devices every run */
        if (cfg->scenario != SC_IM_GROUP && (have_groups || have_members || gids))
            USAGE_ERR("--groups/--members/--group-ids are for im-group");
        if (cfg->scenario == SC_IM_SINGLE) {
            if (!have_pubs) pubs = have_subs ? subs : 10;
            if (!have_subs) subs = pubs;
            if (subs != pubs) USAGE_ERR("im-single: one receiver per sender (--subscribers = --publishers)");
            topics = pubs;
        } else if (cfg->scenario == SC_IM_GROUP) {
            if (!gids) USAGE_ERR("im-group: --group-ids is required (one id per group, see perf/im-setup)");
            int n = parse_gids(gids, &cfg->gids);
            if (n < 0) USAGE_ERR("--group-ids: comma-separated decimal ids, at most %u", BENCH_IM_MAX_GROUPS);
            if (!have_groups) groups = (uint64_t)n;
            if ((uint64_t)n != groups) USAGE_ERR("im-group: --group-ids lists %d ids for --groups %llu", n, (unsigned long long)groups);
            if (have_subs && subs != groups * members) USAGE_ERR("im-group: the subscribers are the members (--groups x --members)");
            subs = groups * members;
            if (!have_pubs) pubs = groups;
            topics = groups;
        } else {
            if (!have_pubs) pubs = 100;
            if (have_subs && subs != 1) USAGE_ERR("im-replay: one returning device (--subscribers 1)");
            subs = 1;
            if (!have_messages) messages = 100;
            if (messages == 0) USAGE_ERR("im-replay: --messages must be at least 1");
            topics = 1;
        }
        if (pubs == 0) USAGE_ERR("%s needs publishers", cfg->scenario_name);
        if (pubs + subs + 1 > BENCH_MAX_CONNECTIONS) USAGE_ERR("at most %u connections", BENCH_MAX_CONNECTIONS);
        /* im-replay: the away device and the returning device are two connections of one device */
        conns = pubs + subs + (cfg->scenario == SC_IM_REPLAY ? 1 : 0);
        have_conns = true;
        {
            uint64_t users = cfg->scenario == SC_IM_SINGLE ? 2 * pubs : cfg->scenario == SC_IM_GROUP ? subs : pubs + 1;
            char last[BENCH_IM_MAX_USER_PREFIX + 24];
            int ln = snprintf(last, sizeof last, "%s%llu", cfg->user_prefix, (unsigned long long)(user_base + users - 1));
            char first[BENCH_IM_MAX_USER_PREFIX + 24];
            int fn = snprintf(first, sizeof first, "%s%llu", cfg->user_prefix, (unsigned long long)user_base);
            if (fn < 4 || ln > 128) USAGE_ERR("usernames %s..%s: the gateway takes 4..128 bytes", first, last);
        }
        if (rate > 0 && rate / (double)pubs > BENCH_IM_DEVICE_RATE)
            au_warn("--rate %.0f over %llu publishers is above the gateway's %u msgs/s per device: expect refusals (803010)",
                    rate, (unsigned long long)pubs, BENCH_IM_DEVICE_RATE);
        cfg->user_base = (uint32_t)user_base;
        cfg->groups = cfg->scenario == SC_IM_GROUP ? (uint32_t)groups : 0;
        cfg->members = cfg->scenario == SC_IM_GROUP ? (uint32_t)members : 0;
        cfg->messages = (uint32_t)messages;
        cfg->offline_msgs = (uint32_t)offline;
        cfg->replay_timeout_s = (uint32_t)replay_to;
        break;
    }
    if (cfg->scenario >= SC_P2P && !cfg->im) {
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
    cfg->idle = cfg->connections - cfg->publishers - cfg->subscribers;   /* im-replay: the returning device */
    cfg->version = (uint8_t)version;
    cfg->qos = (uint8_t)qos;
    cfg->payload = (uint32_t)payload;
    cfg->keepalive = (uint16_t)keepalive;
    if ((have_clean || have_sexpiry) && (cfg->im || cfg->scenario < SC_P2P))
        USAGE_ERR("--clean/--session-expiry are for the p2p, fanout and fanin subscribers");
    if (have_sexpiry && version != 5) USAGE_ERR("--session-expiry is an MQTT 5 property (--version 5)");
    cfg->sub_clean = clean != 0;
    cfg->sub_expiry = (uint32_t)sexpiry;
    cfg->durable = version == 5 ? sexpiry > 0 : clean == 0;
    if (have_clean && clean == 0 && version == 5 && sexpiry == 0)
        au_warn("--clean 0 with --session-expiry 0 (MQTT 5): the sessions end at disconnect and nothing is stored");
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
