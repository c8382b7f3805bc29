/* config.c - defaults, the key table, config-file and command-line parsing, listen addresses. */
#include "core/config.h"
#include "core/common.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static int errf(char *errbuf, size_t errlen, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int errf(char *errbuf, size_t errlen, const char *where, const char *fmt, ...)
{
    if (errbuf && errlen) {
        int n = where ? snprintf(errbuf, errlen, "%s: ", where) : 0;
        if (n >= 0 && (size_t)n < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(errbuf + n, errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return AU_CONFIG_ERR;
}

/* ---------------------------------------------------------------------------------------- key table */

enum ktype {
    K_U32,       /* decimal integer in [min, max] */
    K_BYTES,     /* K_U32 that also takes a k/m/g suffix (x1024) */
    K_BOOL,      /* true/false, yes/no, on/off, 1/0 */
    K_ADDR,      /* listen address (au_parse_hostport) */
    K_ADDR_OPT,  /* listen address or "" (off) */
    K_PATH,      /* non-empty path */
    K_PATH_OPT,  /* path or "" */
    K_LOGLEVEL,  /* debug|info|warn|error */
    K_ACL,       /* appends a rule */
};

struct key {
    const char *name;
    enum ktype type;
    size_t off, size;
    uint32_t min, max;
};

#define F(field) offsetof(struct au_config, field), sizeof(((struct au_config *)0)->field)
static const struct key k_keys[] = {
    { "mqtt_listen",            K_ADDR,     F(mqtt_listen), 0, 0 },
    { "http_listen",            K_ADDR,     F(http_listen), 0, 0 },
    { "mqtts_listen",           K_ADDR_OPT, F(mqtts_listen), 0, 0 },
    { "https_listen",           K_ADDR_OPT, F(https_listen), 0, 0 },
    { "tls_cert",               K_PATH_OPT, F(tls_cert), 0, 0 },
    { "tls_key",                K_PATH_OPT, F(tls_key), 0, 0 },
    { "data_dir",               K_PATH,     F(data_dir), 0, 0 },
    { "shards",                 K_U32,      F(shards), 0, AU_MAX_SHARDS },
    { "log_level",              K_LOGLEVEL, F(log_level), 0, 0 },
    { "max_connections",        K_U32,      F(max_connections), 0, AU_CONFIG_MAX_CONNECTIONS },
    { "max_packet",             K_BYTES,    F(max_packet), AU_CONFIG_MIN_PACKET, AU_MQTT_MAX_PACKET_CEIL },
    { "max_topic",              K_U32,      F(max_topic), 1, AU_MQTT_MAX_TOPIC },
    { "max_subs",               K_U32,      F(max_subs), 1, AU_MQTT_MAX_SUBS },
    { "max_inflight",           K_U32,      F(max_inflight), 1, AU_MQTT_MAX_INFLIGHT },
    { "receive_max",            K_U32,      F(receive_max), 1, AU_MQTT_RECEIVE_MAX },
    { "max_queued_msgs",        K_U32,      F(max_queued_msgs), 0, AU_MQTT_MAX_QUEUED_MSGS },
    { "send_queue_bytes",       K_BYTES,    F(send_queue_bytes), AU_CONFIG_MIN_SEND_QUEUE, AU_SEND_QUEUE_BYTES },
    { "topic_alias_max",        K_U32,      F(topic_alias_max), 0, AU_MQTT_TOPIC_ALIAS_MAX },
    { "connect_timeout_ms",     K_U32,      F(connect_timeout_ms), AU_CONFIG_MIN_CONNECT_TIMEOUT_MS, AU_MQTT_CONNECT_TIMEOUT_MS },
    { "mqtt_connect_budget",    K_BYTES,    F(mqtt_connect_budget), AU_MQTT_CONNECT_FREE, UINT32_MAX },
    { "max_keepalive",          K_U32,      F(max_keepalive), 0, AU_MQTT_MAX_KEEPALIVE },
    { "max_session_expiry",     K_U32,      F(max_session_expiry), 0, AU_MQTT_MAX_SESSION_EXPIRY },
    { "persistent_session_expiry", K_U32,   F(persistent_session_expiry), 0, AU_MQTT_MAX_SESSION_EXPIRY },
    { "max_retained",           K_U32,      F(max_retained), 0, AU_MQTT_MAX_RETAINED },
    { "max_retained_bytes",     K_BYTES,    F(max_retained_bytes), AU_CONFIG_MIN_RETAINED_BYTES, UINT32_MAX },
    { "retain_available",       K_BOOL,     F(retain_available), 0, 0 },
    { "allow_anonymous",        K_BOOL,     F(allow_anonymous), 0, 0 },
    { "http_header_timeout_ms", K_U32,      F(http_header_timeout_ms), AU_CONFIG_MIN_CONNECT_TIMEOUT_MS, AU_HTTP_TIMEOUT_CEIL_MS },
    { "http_body_timeout_ms",   K_U32,      F(http_body_timeout_ms), AU_CONFIG_MIN_CONNECT_TIMEOUT_MS, AU_HTTP_TIMEOUT_CEIL_MS },
    { "http_body_min_rate",     K_BYTES,    F(http_body_min_rate), 1, UINT32_MAX },
    { "http_body_budget",       K_BYTES,    F(http_body_budget), AU_CONFIG_MIN_BODY_BUDGET, UINT32_MAX },
    { "im_max_group_members",   K_U32,      F(im_max_group_members), 1, AU_IM_MAX_GROUP_MEMBERS },
    { "im_max_groups_per_user", K_U32,      F(im_max_groups_per_user), 1, AU_IM_MAX_GROUPS_PER_USER },
    { "im_offline_msgs",        K_U32,      F(im_offline_msgs), 0, AU_IM_OFFLINE_MSGS },
    { "im_offline_days",        K_U32,      F(im_offline_days), 0, AU_IM_OFFLINE_DAYS },
    { "im_event_days",          K_U32,      F(im_event_days), 0, AU_IM_EVENT_DAYS },
    { "acl",                    K_ACL,      0, 0, 0, 0 },
};
#undef F

_Static_assert(AU_MQTT_MAX_PACKET_CEIL <= UINT32_MAX && AU_CONFIG_MAX_CONNECTIONS <= UINT32_MAX,
               "config values are 32-bit");
_Static_assert(AU_CONFIG_MIN_PACKET <= AU_MQTT_MAX_PACKET, "default max_packet below its minimum");
_Static_assert(AU_CONFIG_MIN_SEND_QUEUE <= AU_SEND_QUEUE_BYTES, "default send_queue_bytes below its minimum");
_Static_assert(AU_CONFIG_MIN_CONNECT_TIMEOUT_MS <= AU_MQTT_CONNECT_TIMEOUT_MS, "default connect timeout below its minimum");

const char *au_config_key_name(size_t i)
{
    return i < AU_ARRAY_LEN(k_keys) ? k_keys[i].name : NULL;
}

static const struct key *find_key(const char *name)
{
    for (size_t i = 0; i < AU_ARRAY_LEN(k_keys); i++)
        if (strcmp(k_keys[i].name, name) == 0) return &k_keys[i];
    return NULL;
}

void au_config_defaults(struct au_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->mqtt_listen, sizeof cfg->mqtt_listen, "0.0.0.0:1883");
    snprintf(cfg->http_listen, sizeof cfg->http_listen, "0.0.0.0:8080");
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "./data");
    cfg->shards = 0;
    cfg->log_level = AU_LOG_INFO;
    cfg->max_connections = 0;
    cfg->max_packet = AU_MQTT_MAX_PACKET;
    cfg->max_topic = AU_MQTT_MAX_TOPIC;
    cfg->max_subs = AU_MQTT_MAX_SUBS;
    cfg->max_inflight = AU_MQTT_MAX_INFLIGHT;
    cfg->receive_max = AU_MQTT_RECEIVE_MAX;
    cfg->max_queued_msgs = AU_MQTT_MAX_QUEUED_MSGS;
    cfg->send_queue_bytes = AU_SEND_QUEUE_BYTES;
    cfg->topic_alias_max = AU_MQTT_TOPIC_ALIAS_MAX;
    cfg->connect_timeout_ms = AU_MQTT_CONNECT_TIMEOUT_MS;
    cfg->mqtt_connect_budget = AU_MQTT_CONNECT_BUDGET;
    cfg->max_keepalive = AU_MQTT_MAX_KEEPALIVE;
    cfg->max_session_expiry = AU_MQTT_MAX_SESSION_EXPIRY;
    cfg->persistent_session_expiry = AU_MQTT_PERSISTENT_SESSION_EXPIRY;
    cfg->max_retained = AU_MQTT_MAX_RETAINED;
    cfg->max_retained_bytes = AU_MQTT_RETAINED_BYTES;
    cfg->http_header_timeout_ms = AU_HTTP_HEADER_TIMEOUT_MS;
    cfg->http_body_timeout_ms = AU_HTTP_BODY_TIMEOUT_MS;
    cfg->http_body_min_rate = AU_HTTP_BODY_MIN_RATE;
    cfg->http_body_budget = AU_HTTP_BODY_BUDGET;
    cfg->retain_available = true;
    cfg->allow_anonymous = true;
    cfg->im_max_group_members = AU_IM_MAX_GROUP_MEMBERS;
    cfg->im_max_groups_per_user = AU_IM_MAX_GROUPS_PER_USER;
    cfg->im_offline_msgs = AU_IM_OFFLINE_MSGS;
    cfg->im_offline_days = AU_IM_OFFLINE_DAYS;
    cfg->im_event_days = AU_IM_EVENT_DAYS;
}

void au_config_free(struct au_config *cfg)
{
    au_acl_free(cfg);
}

/* ---------------------------------------------------------------------------------------- values */

static int parse_u32(const char *v, bool bytes, uint64_t *out)
{
    if (*v < '0' || *v > '9') return -1;
    uint64_t x = 0;
    while (*v >= '0' && *v <= '9') {
        x = x * 10 + (uint64_t)(*v++ - '0');
        if (x > UINT32_MAX) return -1;
    }
    if (bytes && *v) {
        unsigned shift = 0;
        switch (*v) {
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        default: return -1;
        }
        v++;
        if (*v == 'i' && v[1] == 'B') v += 2;     /* KiB, MiB, GiB */
        else if (*v == 'B' || *v == 'b') v++;      /* KB, MB, GB (still x1024) */
        x <<= shift;
        if (x > UINT32_MAX) return -1;
    }
    if (*v) return -1;
    *out = x;
    return 0;
}

static int parse_bool(const char *v, bool *out)
{
    static const char *const t[] = { "true", "yes", "on", "1" }, *const f[] = { "false", "no", "off", "0" };
    for (size_t i = 0; i < AU_ARRAY_LEN(t); i++) {
        if (strcasecmp(v, t[i]) == 0) { *out = true; return 0; }
        if (strcasecmp(v, f[i]) == 0) { *out = false; return 0; }
    }
    return -1;
}

int au_config_set(struct au_config *cfg, const char *key, const char *value, const char *where,
                  char *errbuf, size_t errlen)
{
    const struct key *k = find_key(key);
    if (!k) return errf(errbuf, errlen, where, "unknown key '%s'", key);
    char *field = (char *)cfg + k->off;
    switch (k->type) {
    case K_U32:
    case K_BYTES: {
        uint64_t x;
        if (parse_u32(value, k->type == K_BYTES, &x) != 0)
            return errf(errbuf, errlen, where, "%s: '%s' is not a%s number", key, value,
                        k->type == K_BYTES ? " byte count (digits with optional k/m/g suffix)" : " non-negative decimal");
        if (x < k->min || x > k->max)
            return errf(errbuf, errlen, where, "%s: %llu out of range %u..%u", key, (unsigned long long)x,
                        (unsigned)k->min, (unsigned)k->max);
        uint32_t v = (uint32_t)x;
        memcpy(field, &v, sizeof v);
        return AU_CONFIG_OK;
    }
    case K_BOOL: {
        bool b;
        if (parse_bool(value, &b) != 0)
            return errf(errbuf, errlen, where, "%s: '%s' is not a boolean (true/false, yes/no, on/off, 1/0)", key, value);
        memcpy(field, &b, sizeof b);
        return AU_CONFIG_OK;
    }
    case K_ADDR:
    case K_ADDR_OPT: {
        if (*value == '\0' && k->type == K_ADDR_OPT) {
            field[0] = '\0';
            return AU_CONFIG_OK;
        }
        struct sockaddr_storage ss;
        socklen_t sl;
        if (strlen(value) >= k->size || au_parse_hostport(value, &ss, &sl) != 0)
            return errf(errbuf, errlen, where, "%s: '%s' is not a listen address (IPv4:port, [IPv6]:port, :port)", key, value);
        memcpy(field, value, strlen(value) + 1);
        return AU_CONFIG_OK;
    }
    case K_PATH:
    case K_PATH_OPT: {
        size_t n = strlen(value);
        if (n == 0 && k->type == K_PATH) return errf(errbuf, errlen, where, "%s: empty path", key);
        if (n >= k->size) return errf(errbuf, errlen, where, "%s: path longer than %zu bytes", key, k->size - 1);
        memcpy(field, value, n + 1);
        return AU_CONFIG_OK;
    }
    case K_LOGLEVEL: {
        int l = au_log_parse_level(value);
        if (l < 0) return errf(errbuf, errlen, where, "%s: '%s' is not debug, info, warn or error", key, value);
        cfg->log_level = l;
        return AU_CONFIG_OK;
    }
    case K_ACL:
        return au_acl_add(cfg, value, where, errbuf, errlen);
    }
    return errf(errbuf, errlen, where, "%s: unhandled key type", key);
}

/* ---------------------------------------------------------------------------------------- files */

static bool is_ws(char c) { return c == ' ' || c == '\t'; }

int au_config_load_buf(struct au_config *cfg, const char *name, const char *buf, size_t len,
                       char *errbuf, size_t errlen)
{
    char line[AU_CONFIG_LINE_MAX + 1];
    char where[AU_CONFIG_PATH_MAX + 32];
    size_t pos = 0;
    unsigned lineno = 0;
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) pos = 3; /* UTF-8 byte order mark */
    while (pos < len) {
        lineno++;
        snprintf(where, sizeof where, "%s:%u", name, lineno);
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        size_t n = end - pos;
        if (n && buf[pos + n - 1] == '\r') n--;
        if (n > AU_CONFIG_LINE_MAX) return errf(errbuf, errlen, where, "line longer than %d bytes", AU_CONFIG_LINE_MAX);
        if (memchr(buf + pos, '\0', n)) return errf(errbuf, errlen, where, "NUL byte in line");
        memcpy(line, buf + pos, n);
        line[n] = '\0';
        pos = end + 1;

        /* trim */
        char *s = line;
        while (is_ws(*s)) s++;
        char *e = s + strlen(s);
        while (e > s && is_ws(e[-1])) e--;
        *e = '\0';
        if (*s == '\0' || *s == '#') continue;
        for (const char *c = s; *c; c++)
            if ((unsigned char)*c < 0x20 && *c != '\t') return errf(errbuf, errlen, where, "control character in line");

        char *key = s, *value;
        if (strncmp(s, "acl", 3) == 0 && is_ws(s[3])) { /* acl rules: the filter may contain '=' */
            s[3] = '\0';
            value = s + 4;
            while (is_ws(*value)) value++;
            if (*value == '=') value++;
        } else {
            char *eq = strchr(s, '=');
            if (!eq) return errf(errbuf, errlen, where, "expected 'key = value', got '%.80s'", s);
            value = eq + 1;
            while (eq > s && is_ws(eq[-1])) eq--;
            *eq = '\0';
            if (*key == '\0') return errf(errbuf, errlen, where, "missing key before '='");
        }
        while (is_ws(*value)) value++;
        if (au_config_set(cfg, key, value, where, errbuf, errlen) != AU_CONFIG_OK) return AU_CONFIG_ERR;
    }
    return AU_CONFIG_OK;
}

int au_config_load_file(struct au_config *cfg, const char *path, char *errbuf, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) return errf(errbuf, errlen, path, "cannot open: %s", strerror(errno));
    char *buf = malloc(AU_CONFIG_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        return errf(errbuf, errlen, path, "out of memory");
    }
    size_t n = fread(buf, 1, AU_CONFIG_FILE_MAX + 1, f);
    int rerr = ferror(f);
    fclose(f);
    int rc;
    if (rerr) rc = errf(errbuf, errlen, path, "read error");
    else if (n > AU_CONFIG_FILE_MAX) rc = errf(errbuf, errlen, path, "larger than %u bytes", AU_CONFIG_FILE_MAX);
    else rc = au_config_load_buf(cfg, path, buf, n, errbuf, errlen);
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------------------------------- flags */

struct flag {
    const char *name;
    const char *key; /* config key set by the flag; NULL = special */
};

static const struct flag k_flags[] = {
    { "--mqtt", "mqtt_listen" },
    { "--http", "http_listen" },
    { "--data", "data_dir" },
    { "--shards", "shards" },
    { "--log-level", "log_level" },
    { "--config", NULL },
    { "--set", NULL },
};

int au_config_parse_args(struct au_config *cfg, int argc, char **argv, char *errbuf, size_t errlen)
{
    /* Pass 1: structure (every flag known, every value present) and --help. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return AU_CONFIG_HELP;
        const struct flag *fl = NULL;
        for (size_t j = 0; j < AU_ARRAY_LEN(k_flags) && !fl; j++) {
            size_t n = strlen(k_flags[j].name);
            if (strncmp(a, k_flags[j].name, n) == 0 && (a[n] == '\0' || a[n] == '=')) fl = &k_flags[j];
        }
        if (!fl) {
            if (a[0] == '-') return errf(errbuf, errlen, NULL, "unknown option '%s' (try --help)", a);
            return errf(errbuf, errlen, NULL, "unexpected argument '%s' (try --help)", a);
        }
        if (!strchr(a, '=')) {
            if (i + 1 >= argc) return errf(errbuf, errlen, NULL, "%s needs a value", a);
            i++;
        }
    }
    /* Pass 2: config files, in order. Pass 3: every other flag, in order. */
    for (int pass = 2; pass <= 3; pass++) {
        for (int i = 1; i < argc; i++) {
            const char *a = argv[i], *v;
            const struct flag *fl = NULL;
            size_t n = 0;
            for (size_t j = 0; j < AU_ARRAY_LEN(k_flags) && !fl; j++) {
                n = strlen(k_flags[j].name);
                if (strncmp(a, k_flags[j].name, n) == 0 && (a[n] == '\0' || a[n] == '=')) fl = &k_flags[j];
            }
            AU_ASSERT(fl);
            if (a[n] == '=') v = a + n + 1;
            else v = argv[++i];
            bool is_config = strcmp(fl->name, "--config") == 0;
            if ((pass == 2) != is_config) continue;
            if (is_config) {
                if (au_config_load_file(cfg, v, errbuf, errlen) != AU_CONFIG_OK) return AU_CONFIG_ERR;
            } else if (fl->key) {
                if (au_config_set(cfg, fl->key, v, fl->name, errbuf, errlen) != AU_CONFIG_OK) return AU_CONFIG_ERR;
            } else { /* --set key=value */
                const char *eq = strchr(v, '=');
                if (!eq || eq == v) return errf(errbuf, errlen, "--set", "expected key=value, got '%s'", v);
                char key[64];
                size_t kn = (size_t)(eq - v);
                while (kn && is_ws(v[kn - 1])) kn--;
                if (kn >= sizeof key) return errf(errbuf, errlen, "--set", "unknown key '%.*s'", (int)AU_MIN(kn, 200), v);
                memcpy(key, v, kn);
                key[kn] = '\0';
                const char *val = eq + 1;
                while (is_ws(*val)) val++;
                if (au_config_set(cfg, key, val, "--set", errbuf, errlen) != AU_CONFIG_OK) return AU_CONFIG_ERR;
            }
        }
    }
    return au_config_validate(cfg, errbuf, errlen);
}

/* Keys of features that do not exist yet: parsed (a config file naming them gets this message, not "unknown
 * key"), never used, and refused at start when set, so nobody believes a listener or a certificate is active. */
static const struct {
    const char *key;
    const char *why;
} k_not_yet[] = {
    { "mqtts_listen", "TLS listeners arrive with issue 11" },
    { "https_listen", "TLS listeners arrive with issue 11" },
    { "tls_cert",     "TLS arrives with issue 11" },
    { "tls_key",      "TLS arrives with issue 11" },
};

int au_config_validate(const struct au_config *cfg, char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < AU_ARRAY_LEN(k_not_yet); i++) {
        const struct key *k = find_key(k_not_yet[i].key);
        AU_ASSERT(k != NULL && (k->type == K_ADDR_OPT || k->type == K_PATH_OPT));
        if (((const char *)cfg + k->off)[0])
            return errf(errbuf, errlen, "config", "%s: not supported yet (%s); remove the setting", k->name,
                        k_not_yet[i].why);
    }
    return AU_CONFIG_OK;
}

void au_config_usage(FILE *out)
{
    fprintf(out,
        "usage: aurora [options]\n"
        "  --config FILE        load a config file (key = value lines); loaded before every other flag\n"
        "  --mqtt ADDR:PORT     MQTT listener (default 0.0.0.0:1883)\n"
        "  --http ADDR:PORT     HTTP listener: REST API, /healthz, /metrics (default 0.0.0.0:8080)\n"
        "  --data DIR           data directory (default ./data)\n"
        "  --shards N           event-loop threads, 0 = one per online CPU (max %d)\n"
        "  --log-level LEVEL    debug | info | warn | error (default info)\n"
        "  --set KEY=VALUE      set any config key (repeatable; --set acl='deny publish * a/#' adds a rule)\n"
        "  -h, --help           this help\n"
        "ADDR:PORT is IPv4:port, [IPv6]:port or :port (all IPv4 addresses). Flags override the config file\n"
        "whatever their order. Keys: ",
        AU_MAX_SHARDS);
    const char *sep = "";
    for (size_t i = 0; i < AU_ARRAY_LEN(k_keys); i++) {
        bool later = false;
        for (size_t j = 0; j < AU_ARRAY_LEN(k_not_yet); j++) later |= strcmp(k_keys[i].name, k_not_yet[j].key) == 0;
        if (later) continue;
        fprintf(out, "%s%s", sep, k_keys[i].name);
        sep = ", ";
    }
    fprintf(out, ".\nNot supported yet, refused at start when set (TLS arrives with issue 11): ");
    for (size_t j = 0; j < AU_ARRAY_LEN(k_not_yet); j++)
        fprintf(out, "%s%s", k_not_yet[j].key, j + 1 < AU_ARRAY_LEN(k_not_yet) ? ", " : ".\n");
    fprintf(out, "See docs/configuration.md for every key, default and range.\n");
}

void au_config_write(const struct au_config *cfg, FILE *out)
{
    static const char *const levels[] = { "debug", "info", "warn", "error" };
    for (size_t i = 0; i < AU_ARRAY_LEN(k_keys); i++) {
        const struct key *k = &k_keys[i];
        const char *field = (const char *)cfg + k->off;
        switch (k->type) {
        case K_U32:
        case K_BYTES: {
            uint32_t v;
            memcpy(&v, field, sizeof v);
            fprintf(out, "%s = %u\n", k->name, (unsigned)v);
            break;
        }
        case K_BOOL: {
            bool b;
            memcpy(&b, field, sizeof b);
            fprintf(out, "%s = %s\n", k->name, b ? "true" : "false");
            break;
        }
        case K_ADDR: case K_ADDR_OPT: case K_PATH: case K_PATH_OPT:
            fprintf(out, "%s = %s\n", k->name, field);
            break;
        case K_LOGLEVEL:
            fprintf(out, "%s = %s\n", k->name,
                    cfg->log_level >= 0 && cfg->log_level < 4 ? levels[cfg->log_level] : "info");
            break;
        case K_ACL:
            for (size_t j = 0; j < cfg->n_acl; j++) {
                const struct au_acl_rule *r = &cfg->acl[j];
                const char *act = r->actions == AU_ACL_ALL ? "all" : r->actions == AU_ACL_PUBLISH ? "publish" : "subscribe";
                const char *who = r->who == AU_ACL_WHO_ANY ? "*" : r->who == AU_ACL_WHO_ANONYMOUS ? "anonymous" : r->user;
                fprintf(out, "acl %s %s %s %s\n", r->allow ? "allow" : "deny", act, who, r->filter);
            }
            break;
        }
    }
}

uint32_t au_config_shards(const struct au_config *cfg)
{
    if (cfg->shards) return cfg->shards;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > AU_MAX_SHARDS) n = AU_MAX_SHARDS;
    return (uint32_t)n;
}

uint32_t au_config_max_connections(const struct au_config *cfg, uint32_t nshards)
{
    if (cfg->max_connections) return cfg->max_connections;
    uint64_t n = (uint64_t)nshards * (AU_FIXED_FILES_MAX - AU_FIXED_FILES_RESERVE);
    return (uint32_t)AU_MIN(n, (uint64_t)AU_CONFIG_MAX_CONNECTIONS);
}

/* ---------------------------------------------------------------------------------------- addresses */

static int parse_port(const char *p, uint16_t *out)
{
    if (*p == '\0') return -1;
    uint32_t x = 0;
    for (int i = 0; p[i]; i++) {
        if (p[i] < '0' || p[i] > '9' || i >= 5) return -1;
        x = x * 10 + (uint32_t)(p[i] - '0');
    }
    if (x > 65535) return -1;
    *out = (uint16_t)x;
    return 0;
}

int au_parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[AU_CONFIG_ADDR_MAX];
    const char *port;
    size_t sl = strlen(s);
    if (sl == 0 || sl >= sizeof host) return -1;
    memset(ss, 0, sizeof *ss);
    uint16_t pn;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':') return -1;
        size_t hn = (size_t)(rb - s - 1);
        memcpy(host, s + 1, hn);
        host[hn] = '\0';
        port = rb + 2;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        if (hn == 0 || inet_pton(AF_INET6, host, &a6->sin6_addr) != 1) return -1;
        if (parse_port(port, &pn) != 0) return -1;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(pn);
        *len = sizeof *a6;
        return 0;
    }
    const char *colon = strrchr(s, ':');
    size_t hn = colon ? (size_t)(colon - s) : 0;
    port = colon ? colon + 1 : s;
    memcpy(host, s, hn);
    host[hn] = '\0';
    if (parse_port(port, &pn) != 0) return -1;
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    if (hn == 0 || strcmp(host, "*") == 0) a4->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (strcmp(host, "localhost") == 0) a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &a4->sin_addr) != 1) return -1;
    a4->sin_family = AF_INET;
    a4->sin_port = htons(pn);
    *len = sizeof *a4;
    return 0;
}
