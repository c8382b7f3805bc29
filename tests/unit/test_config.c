/* test_config.c - core/config + core/acl: defaults, config files, flags and overrides, every error path,
 * listen addresses, ACL rule order / users / filters / substitution, docs coverage. */
#include "core/config.h"
#include "core/common.h"
#include "core/log.h"
#include "test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

static char err[512];

static int load(struct au_config *c, const char *text)
{
    err[0] = '\0';
    return au_config_load_buf(c, "t.conf", text, strlen(text), err, sizeof err);
}

/* Loads `text` into a fresh default config; expects an error whose message contains `want`. */
static int load_fails_with(const char *text, const char *want)
{
    struct au_config c;
    au_config_defaults(&c);
    int rc = load(&c, text);
    au_config_free(&c);
    if (rc != AU_CONFIG_ERR) { printf("  no error for: %s\n", text); return 0; }
    if (!strstr(err, want)) { printf("  error '%s' lacks '%s'\n", err, want); return 0; }
    return 1;
}

static char tmpdir[64];
static const char *write_tmp(const char *name, const char *text, size_t len)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    fwrite(text, 1, len, f);
    fclose(f);
    return path;
}

static int args(struct au_config *c, const char *const *argv)
{
    int argc = 0;
    while (argv[argc]) argc++;
    err[0] = '\0';
    return au_config_parse_args(c, argc, (char **)argv, err, sizeof err);
}

TEST(defaults)
{
    struct au_config c;
    au_config_defaults(&c);
    CHECK(strcmp(c.mqtt_listen, "0.0.0.0:1883") == 0);
    CHECK(strcmp(c.http_listen, "0.0.0.0:8080") == 0);
    CHECK(strcmp(c.data_dir, "./data") == 0);
    CHECK_EQ(c.mqtts_listen[0], 0);
    CHECK_EQ(c.shards, 0);
    CHECK_EQ(c.log_level, AU_LOG_INFO);
    CHECK_EQ(c.max_packet, AU_MQTT_MAX_PACKET);
    CHECK_EQ(c.max_topic, AU_MQTT_MAX_TOPIC);
    CHECK_EQ(c.max_subs, AU_MQTT_MAX_SUBS);
    CHECK_EQ(c.max_inflight, AU_MQTT_MAX_INFLIGHT);
    CHECK_EQ(c.receive_max, AU_MQTT_RECEIVE_MAX);
    CHECK_EQ(c.max_queued_msgs, AU_MQTT_MAX_QUEUED_MSGS);
    CHECK_EQ(c.send_queue_bytes, AU_SEND_QUEUE_BYTES);
    CHECK_EQ(c.topic_alias_max, AU_MQTT_TOPIC_ALIAS_MAX);
    CHECK_EQ(c.connect_timeout_ms, AU_MQTT_CONNECT_TIMEOUT_MS);
    CHECK_EQ(c.max_keepalive, AU_MQTT_MAX_KEEPALIVE);
    CHECK_EQ(c.max_session_expiry, AU_MQTT_MAX_SESSION_EXPIRY);
    CHECK_EQ(c.persistent_session_expiry, AU_MQTT_PERSISTENT_SESSION_EXPIRY);
    CHECK_EQ(c.max_retained, AU_MQTT_MAX_RETAINED);
    CHECK_EQ(c.max_retained_bytes, AU_MQTT_RETAINED_BYTES);
    CHECK_EQ(c.mqtt_connect_budget, AU_MQTT_CONNECT_BUDGET);
    CHECK_EQ(c.http_header_timeout_ms, AU_HTTP_HEADER_TIMEOUT_MS);
    CHECK_EQ(c.http_body_timeout_ms, AU_HTTP_BODY_TIMEOUT_MS);
    CHECK_EQ(c.http_body_min_rate, AU_HTTP_BODY_MIN_RATE);
    CHECK_EQ(c.http_body_budget, AU_HTTP_BODY_BUDGET);
    CHECK(c.retain_available);
    CHECK(c.allow_anonymous);
    CHECK_EQ(c.max_connections, 0);
    CHECK_EQ(c.im_max_group_members, AU_IM_MAX_GROUP_MEMBERS);
    CHECK_EQ(c.n_acl, 0);
    CHECK_EQ(au_config_validate(&c, err, sizeof err), AU_CONFIG_OK);
    uint32_t n = au_config_shards(&c);
    CHECK(n >= 1 && n <= AU_MAX_SHARDS);
    CHECK_EQ(au_config_max_connections(&c, 2), 2 * (AU_FIXED_FILES_MAX - AU_FIXED_FILES_RESERVE));
    c.shards = 3;
    c.max_connections = 1234;
    CHECK_EQ(au_config_shards(&c), 3);
    CHECK_EQ(au_config_max_connections(&c, 2), 1234);
    au_config_free(&c);
}

TEST(file_syntax)
{
    struct au_config c;
    au_config_defaults(&c);
    const char *text =
        "\xef\xbb\xbf# Aurora test config\n"
        "\n"
        "   # indented comment\n"
        "mqtt_listen = 127.0.0.1:1884\r\n"
        "http_listen=[::1]:8081\n"
        "\tdata_dir =   /var/lib/aurora dir  \n"
        "shards = 4\n"
        "log_level = debug\n"
        "max_packet = 64k\n"
        "send_queue_bytes = 2MiB\n"
        "max_topic = 512\n"
        "max_subs = 10\n"
        "max_inflight = 20\n"
        "receive_max = 30\n"
        "max_queued_msgs = 0\n"
        "topic_alias_max = 0\n"
        "connect_timeout_ms = 5000\n"
        "max_keepalive = 0\n"
        "max_session_expiry = 3600\n"
        "persistent_session_expiry = 0\n"
        "max_retained = 10\n"
        "max_retained_bytes = 2M\n"
        "http_header_timeout_ms = 2500\n"
        "http_body_min_rate = 1k\n"
        "http_body_budget = 1G\n"
        "retain_available = no\n"
        "allow_anonymous = OFF\n"
        "max_connections = 5000\n"
        "im_offline_days = 3\n"
        "acl deny publish * a=b/#\n"
        "acl = allow subscribe alice sensors/+/temp\n"
        "acl=deny all anonymous #\n"
        "   acl\tallow  publish   bob   topic with spaces/x  \n"
        "mqtts_listen = :8883\n"
        "tls_cert = /etc/cert.pem\n"
        "tls_key = /etc/key.pem\n"
        "https_listen =\n"
        "no_newline_at_end = 1"; /* unknown: checked below separately */
    /* all but the last line */
    size_t len = (size_t)(strstr(text, "no_newline") - text);
    err[0] = '\0';
    CHECK_EQ(au_config_load_buf(&c, "t.conf", text, len, err, sizeof err), AU_CONFIG_OK);
    if (err[0]) printf("  %s\n", err);
    CHECK(strcmp(c.mqtt_listen, "127.0.0.1:1884") == 0);
    CHECK(strcmp(c.http_listen, "[::1]:8081") == 0);
    CHECK(strcmp(c.data_dir, "/var/lib/aurora dir") == 0);
    CHECK_EQ(c.shards, 4);
    CHECK_EQ(c.log_level, AU_LOG_DEBUG);
    CHECK_EQ(c.max_packet, 65536);
    CHECK_EQ(c.send_queue_bytes, 2u << 20);
    CHECK_EQ(c.max_topic, 512);
    CHECK_EQ(c.max_subs, 10);
    CHECK_EQ(c.max_inflight, 20);
    CHECK_EQ(c.receive_max, 30);
    CHECK_EQ(c.max_queued_msgs, 0);
    CHECK_EQ(c.topic_alias_max, 0);
    CHECK_EQ(c.connect_timeout_ms, 5000);
    CHECK_EQ(c.max_keepalive, 0);
    CHECK_EQ(c.max_session_expiry, 3600);
    CHECK_EQ(c.persistent_session_expiry, 0);
    CHECK_EQ(c.max_retained, 10);
    CHECK_EQ(c.max_retained_bytes, 2u << 20);
    CHECK_EQ(c.http_header_timeout_ms, 2500);
    CHECK_EQ(c.http_body_min_rate, 1024);
    CHECK_EQ(c.http_body_budget, 1u << 30);
    CHECK(!c.retain_available);
    CHECK(!c.allow_anonymous);
    CHECK_EQ(c.max_connections, 5000);
    CHECK_EQ(c.im_offline_days, 3);
    CHECK(strcmp(c.mqtts_listen, ":8883") == 0);
    CHECK_EQ(c.https_listen[0], 0);
    CHECK_EQ(c.n_acl, 4);
    if (c.n_acl == 4) {
        CHECK(c.acl[0].allow == 0 && c.acl[0].actions == AU_ACL_PUBLISH && c.acl[0].who == AU_ACL_WHO_ANY);
        CHECK(strcmp(c.acl[0].filter, "a=b/#") == 0);
        CHECK(c.acl[1].allow == 1 && c.acl[1].actions == AU_ACL_SUBSCRIBE && c.acl[1].who == AU_ACL_WHO_USER);
        CHECK(strcmp(c.acl[1].user, "alice") == 0 && strcmp(c.acl[1].filter, "sensors/+/temp") == 0);
        CHECK(c.acl[2].actions == AU_ACL_ALL && c.acl[2].who == AU_ACL_WHO_ANONYMOUS);
        CHECK(strcmp(c.acl[3].user, "bob") == 0 && strcmp(c.acl[3].filter, "topic with spaces/x") == 0);
    }
    /* TLS keys parse (a clear refusal, not "unknown key") but are refused at start: TLS arrives with issue 11 */
    CHECK_EQ(au_config_validate(&c, err, sizeof err), AU_CONFIG_ERR);
    CHECK(strstr(err, "mqtts_listen: not supported yet") != NULL);
    memset(c.mqtts_listen, 0, sizeof c.mqtts_listen);
    memset(c.tls_cert, 0, sizeof c.tls_cert);
    memset(c.tls_key, 0, sizeof c.tls_key);
    CHECK_EQ(au_config_validate(&c, err, sizeof err), AU_CONFIG_OK);

    /* write + reload gives the same config */
    char *dump = NULL;
    size_t dlen = 0;
    FILE *m = open_memstream(&dump, &dlen);
    au_config_write(&c, m);
    fclose(m);
    struct au_config d;
    au_config_defaults(&d);
    CHECK_EQ(au_config_load_buf(&d, "dump", dump, dlen, err, sizeof err), AU_CONFIG_OK);
    CHECK(memcmp(&c, &d, offsetof(struct au_config, acl)) == 0);
    CHECK_EQ(d.n_acl, c.n_acl);
    for (size_t i = 0; i < c.n_acl && i < d.n_acl; i++) {
        CHECK(c.acl[i].allow == d.acl[i].allow && c.acl[i].actions == d.acl[i].actions);
        CHECK(c.acl[i].who == d.acl[i].who && c.acl[i].subst == d.acl[i].subst);
        CHECK(strcmp(c.acl[i].filter, d.acl[i].filter) == 0 && strcmp(c.acl[i].user, d.acl[i].user) == 0);
    }
    free(dump);
    au_config_free(&d);
    au_config_free(&c);
    CHECK(c.acl == NULL && c.n_acl == 0);

    /* number forms */
    au_config_defaults(&c);
    CHECK_EQ(load(&c, "max_packet = 1M\nsend_queue_bytes=4096\n"), AU_CONFIG_OK);
    CHECK_EQ(c.max_packet, 1u << 20);
    CHECK_EQ(load(&c, "max_packet = 512KB\n"), AU_CONFIG_OK);
    CHECK_EQ(c.max_packet, 512u << 10);
    CHECK_EQ(load(&c, "max_packet = 256m\n"), AU_CONFIG_OK); /* the ceiling */
    CHECK_EQ(c.max_packet, AU_MQTT_MAX_PACKET_CEIL);
    CHECK_EQ(load(&c, "max_subs = 0256\n"), AU_CONFIG_OK); /* decimal, leading zero is not octal */
    CHECK_EQ(c.max_subs, 256);
    CHECK_EQ(load(&c, "allow_anonymous = TRUE\nretain_available = 1\n"), AU_CONFIG_OK);
    CHECK(c.allow_anonymous && c.retain_available);
    CHECK_EQ(load(&c, ""), AU_CONFIG_OK);
    CHECK_EQ(load(&c, "\n\n# only comments\n"), AU_CONFIG_OK);
    au_config_free(&c);
}

TEST(file_errors)
{
    CHECK(load_fails_with("bogus = 1\n", "t.conf:1: unknown key 'bogus'"));
    CHECK(load_fails_with("# c\n\nshards 4\n", "t.conf:3: expected 'key = value'"));
    CHECK(load_fails_with("= 4\n", "t.conf:1: missing key"));
    CHECK(load_fails_with("shards = four\n", "t.conf:1: shards: 'four' is not"));
    CHECK(load_fails_with("shards = -1\n", "shards: '-1' is not"));
    CHECK(load_fails_with("shards = \n", "shards: '' is not"));
    CHECK(load_fails_with("shards = 4x\n", "shards: '4x' is not"));
    CHECK(load_fails_with("shards = 1k\n", "shards: '1k' is not")); /* suffixes only for byte sizes */
    CHECK(load_fails_with("shards = 99999999999\n", "is not"));
    CHECK(load_fails_with("shards = 65\n", "shards: 65 out of range 0..64"));
    CHECK(load_fails_with("max_packet = 127\n", "max_packet: 127 out of range 128..268435456"));
    CHECK(load_fails_with("max_packet = 257M\n", "out of range"));
    CHECK(load_fails_with("max_packet = 5G\n", "is not"));
    CHECK(load_fails_with("max_packet = 1Q\n", "is not"));
    CHECK(load_fails_with("max_topic = 0\n", "max_topic: 0 out of range 1..1024"));
    CHECK(load_fails_with("max_topic = 1025\n", "out of range"));
    CHECK(load_fails_with("max_subs = 257\n", "out of range"));
    CHECK(load_fails_with("max_inflight = 0\n", "out of range"));
    CHECK(load_fails_with("receive_max = 0\n", "out of range"));
    CHECK(load_fails_with("max_queued_msgs = 1001\n", "out of range"));
    CHECK(load_fails_with("send_queue_bytes = 100\n", "out of range"));
    CHECK(load_fails_with("send_queue_bytes = 9M\n", "out of range"));
    CHECK(load_fails_with("topic_alias_max = 65\n", "out of range"));
    CHECK(load_fails_with("connect_timeout_ms = 99\n", "out of range"));
    CHECK(load_fails_with("connect_timeout_ms = 10001\n", "out of range"));
    CHECK(load_fails_with("max_keepalive = 65536\n", "out of range"));
    CHECK(load_fails_with("max_session_expiry = 604801\n", "out of range"));
    CHECK(load_fails_with("persistent_session_expiry = 604801\n", "out of range"));
    CHECK(load_fails_with("max_retained = 1000001\n", "out of range"));
    CHECK(load_fails_with("max_retained_bytes = 1000\n", "out of range"));
    CHECK(load_fails_with("max_retained_bytes = 4G\n", "not a byte count"));
    CHECK(load_fails_with("http_header_timeout_ms = 99\n", "out of range"));
    CHECK(load_fails_with("http_body_timeout_ms = 3600001\n", "out of range"));
    CHECK(load_fails_with("http_body_min_rate = 0\n", "out of range"));
    CHECK(load_fails_with("http_body_budget = 9M\n", "out of range"));
    CHECK(load_fails_with("mqtt_connect_budget = 1000\n", "out of range"));
    CHECK(load_fails_with("max_connections = 99999999\n", "out of range"));
    CHECK(load_fails_with("im_max_group_members = 0\n", "out of range"));
    CHECK(load_fails_with("im_event_days = 8\n", "out of range"));
    CHECK(load_fails_with("allow_anonymous = maybe\n", "allow_anonymous: 'maybe' is not a boolean"));
    CHECK(load_fails_with("log_level = loud\n", "log_level: 'loud' is not"));
    CHECK(load_fails_with("mqtt_listen = 1883x\n", "mqtt_listen: '1883x' is not a listen address"));
    CHECK(load_fails_with("http_listen = \n", "http_listen: '' is not a listen address"));
    CHECK(load_fails_with("mqtts_listen = nowhere:1\n", "is not a listen address"));
    CHECK(load_fails_with("data_dir =\n", "data_dir: empty path"));
    CHECK(load_fails_with("ok = \x01\n", "t.conf:1: control character"));
    {
        static char big[AU_CONFIG_LINE_MAX + 64];
        memset(big, 'a', sizeof big - 1);
        memcpy(big, "data_dir = ", 11);
        CHECK(load_fails_with(big, "t.conf:1: line longer than"));
        /* a path that fits the line but not the field */
        big[11 + AU_CONFIG_PATH_MAX] = '\0';
        CHECK(load_fails_with(big, "data_dir: path longer than 1023 bytes"));
    }
    {
        struct au_config c;
        au_config_defaults(&c);
        const char nul[] = "shards = 1\nshards\0 = 2\n";
        CHECK_EQ(au_config_load_buf(&c, "n.conf", nul, sizeof nul - 1, err, sizeof err), AU_CONFIG_ERR);
        CHECK(strstr(err, "n.conf:2: NUL byte") != NULL);
        CHECK_EQ(c.shards, 1);
        au_config_free(&c);
    }
    /* acl syntax */
    CHECK(load_fails_with("acl\n", "expected 'key = value'"));
    CHECK(load_fails_with("acl \n", "expected 'key = value'"));
    CHECK(load_fails_with("acl = \n", "acl: expected 'allow' or 'deny'"));
    CHECK(load_fails_with("acl permit publish * a\n", "acl: 'permit' is not 'allow' or 'deny'"));
    CHECK(load_fails_with("acl allow\n", "acl: expected publish, subscribe or all"));
    CHECK(load_fails_with("acl allow read * a\n", "acl: 'read' is not publish"));
    CHECK(load_fails_with("acl allow publish\n", "acl: expected a user name"));
    CHECK(load_fails_with("acl allow publish *\n", "acl: missing topic filter"));
    CHECK(load_fails_with("acl allow publish * a/#/b\n", "'#' must be the last level"));
    CHECK(load_fails_with("acl allow publish * a/b#\n", "a wildcard must be a whole level"));
    CHECK(load_fails_with("acl allow publish * a/+b/c\n", "a wildcard must be a whole level"));
    CHECK(load_fails_with("acl allow publish * a\tb\n", "control character"));
    {
        static char u[AU_CONFIG_ACL_USER_MAX + 64];
        strcpy(u, "acl allow publish ");
        memset(u + strlen(u), 'u', AU_CONFIG_ACL_USER_MAX + 1);
        strcat(u, " a\n");
        CHECK(load_fails_with(u, "acl: user name longer than 256 bytes"));
        static char t[AU_MQTT_MAX_TOPIC + 64];
        strcpy(t, "acl allow publish * ");
        memset(t + strlen(t), 't', AU_MQTT_MAX_TOPIC + 1);
        CHECK(load_fails_with(t, "acl: topic filter too long"));
    }
    {
        /* too many rules */
        size_t n = (size_t)(AU_CONFIG_MAX_ACL_RULES + 1);
        char *many = malloc(n * 24 + 1), *p = many;
        for (size_t i = 0; i < n; i++) p += sprintf(p, "acl deny publish * a%zu\n", i % 10);
        struct au_config c;
        au_config_defaults(&c);
        CHECK_EQ(au_config_load_buf(&c, "m.conf", many, (size_t)(p - many), err, sizeof err), AU_CONFIG_ERR);
        CHECK(strstr(err, "m.conf:10001: acl: more than 10000 rules") != NULL);
        CHECK_EQ(c.n_acl, AU_CONFIG_MAX_ACL_RULES);
        au_config_free(&c);
        free(many);
    }
    /* validation */
    struct au_config c;
    au_config_defaults(&c);
    CHECK_EQ(load(&c, "https_listen = :8443\ntls_cert = /c.pem\n"), AU_CONFIG_OK);
    CHECK_EQ(au_config_validate(&c, err, sizeof err), AU_CONFIG_ERR);
    CHECK(strstr(err, "https_listen: not supported yet (TLS listeners arrive with issue 11)") != NULL);
    au_config_free(&c);
}

TEST(load_file)
{
    struct au_config c;
    au_config_defaults(&c);
    const char *text = "shards = 2\nacl deny subscribe * x/#\n";
    const char *p = write_tmp("a.conf", text, strlen(text));
    CHECK(p != NULL);
    CHECK_EQ(au_config_load_file(&c, p, err, sizeof err), AU_CONFIG_OK);
    CHECK_EQ(c.shards, 2);
    CHECK_EQ(c.n_acl, 1);
    const char *bad = "\nshards = 100\n";
    p = write_tmp("b.conf", bad, strlen(bad));
    CHECK_EQ(au_config_load_file(&c, p, err, sizeof err), AU_CONFIG_ERR);
    char want[200];
    snprintf(want, sizeof want, "%s:2: shards: 100 out of range", p);
    CHECK(strstr(err, want) != NULL);
    CHECK_EQ(au_config_load_file(&c, "/nonexistent/aurora.conf", err, sizeof err), AU_CONFIG_ERR);
    CHECK(strstr(err, "/nonexistent/aurora.conf: cannot open: No such file") != NULL);
    CHECK_EQ(au_config_load_file(&c, tmpdir, err, sizeof err), AU_CONFIG_ERR); /* a directory */
    /* too large */
    char *huge = malloc(AU_CONFIG_FILE_MAX + 2);
    memset(huge, '\n', AU_CONFIG_FILE_MAX + 1);
    p = write_tmp("huge.conf", huge, AU_CONFIG_FILE_MAX + 1);
    free(huge);
    CHECK_EQ(au_config_load_file(&c, p, err, sizeof err), AU_CONFIG_ERR);
    CHECK(strstr(err, "larger than 1048576 bytes") != NULL);
    au_config_free(&c);
}

TEST(flags_and_overrides)
{
    const char *text = "mqtt_listen = 127.0.0.1:2000\nhttp_listen = 127.0.0.1:2001\ndata_dir = /from/file\n"
                       "shards = 3\nlog_level = warn\nmax_subs = 5\nacl deny publish * file/#\n";
    const char *p = write_tmp("f.conf", text, strlen(text));
    char path[128];
    snprintf(path, sizeof path, "%s", p);
    char cfgeq[160];
    snprintf(cfgeq, sizeof cfgeq, "--config=%s", path);

    struct au_config c;
    au_config_defaults(&c);
    /* flags before --config still override it */
    const char *a1[] = { "aurora", "--mqtt", ":1999", "--shards=1", "--set", "max_subs=7", "--config", path,
                         "--data", "/from/flag", "--log-level", "error", "--set", "acl = allow publish * flag/#",
                         "--http=[::]:9000", NULL };
    CHECK_EQ(args(&c, a1), AU_CONFIG_OK);
    if (err[0]) printf("  %s\n", err);
    CHECK(strcmp(c.mqtt_listen, ":1999") == 0);
    CHECK(strcmp(c.http_listen, "[::]:9000") == 0);
    CHECK(strcmp(c.data_dir, "/from/flag") == 0);
    CHECK_EQ(c.shards, 1);
    CHECK_EQ(c.log_level, AU_LOG_ERROR);
    CHECK_EQ(c.max_subs, 7);
    CHECK_EQ(c.n_acl, 2); /* file rule first, then --set rules */
    if (c.n_acl == 2) {
        CHECK(strcmp(c.acl[0].filter, "file/#") == 0);
        CHECK(strcmp(c.acl[1].filter, "flag/#") == 0);
    }
    au_config_free(&c);

    /* file values apply where no flag overrides; several --config files load in order */
    const char *text2 = "max_subs = 9\n";
    p = write_tmp("g.conf", text2, strlen(text2));
    char path2[128];
    snprintf(path2, sizeof path2, "%s", p);
    au_config_defaults(&c);
    const char *a2[] = { "aurora", cfgeq, "--config", path2, NULL };
    CHECK_EQ(args(&c, a2), AU_CONFIG_OK);
    CHECK(strcmp(c.mqtt_listen, "127.0.0.1:2000") == 0);
    CHECK_EQ(c.shards, 3);
    CHECK_EQ(c.max_subs, 9);
    CHECK_EQ(c.log_level, AU_LOG_WARN);
    au_config_free(&c);

    /* no arguments: defaults */
    au_config_defaults(&c);
    const char *a3[] = { "aurora", NULL };
    CHECK_EQ(args(&c, a3), AU_CONFIG_OK);
    CHECK(strcmp(c.mqtt_listen, "0.0.0.0:1883") == 0);
    au_config_free(&c);

    /* help wins over everything, even bad flags */
    const char *h1[] = { "aurora", "--shards", "999", "--help", NULL };
    const char *h2[] = { "aurora", "-h", "--bogus", NULL };
    au_config_defaults(&c);
    CHECK_EQ(args(&c, h1), AU_CONFIG_HELP);
    CHECK_EQ(args(&c, h2), AU_CONFIG_HELP);
    au_config_free(&c);

    /* usage text names every flag */
    char *u = NULL;
    size_t ul = 0;
    FILE *m = open_memstream(&u, &ul);
    au_config_usage(m);
    fclose(m);
    const char *flags[] = { "--config", "--mqtt", "--http", "--data", "--shards", "--log-level", "--set", "--help", "-h" };
    for (size_t i = 0; i < AU_ARRAY_LEN(flags); i++) CHECK(strstr(u, flags[i]) != NULL);
    for (size_t i = 0; au_config_key_name(i); i++) CHECK(strstr(u, au_config_key_name(i)) != NULL);
    free(u);
}

static int args_fail(const char *const *argv, const char *want)
{
    struct au_config c;
    au_config_defaults(&c);
    int rc = args(&c, argv);
    au_config_free(&c);
    if (rc != AU_CONFIG_ERR) { printf("  no error (rc %d) for %s %s\n", rc, argv[1], argv[2] ? argv[2] : ""); return 0; }
    if (!strstr(err, want)) { printf("  error '%s' lacks '%s'\n", err, want); return 0; }
    return 1;
}

TEST(flag_errors)
{
    const char *e1[] = { "aurora", "--bogus", NULL };
    CHECK(args_fail(e1, "unknown option '--bogus'"));
    const char *e2[] = { "aurora", "stray", NULL };
    CHECK(args_fail(e2, "unexpected argument 'stray'"));
    const char *e3[] = { "aurora", "--shards", NULL };
    CHECK(args_fail(e3, "--shards needs a value"));
    const char *e4[] = { "aurora", "--shards", "65", NULL };
    CHECK(args_fail(e4, "--shards: shards: 65 out of range 0..64"));
    const char *e5[] = { "aurora", "--mqtt", "localhost", NULL };
    CHECK(args_fail(e5, "--mqtt: mqtt_listen: 'localhost' is not a listen address"));
    const char *e6[] = { "aurora", "--log-level", "verbose", NULL };
    CHECK(args_fail(e6, "--log-level: log_level: 'verbose'"));
    const char *e7[] = { "aurora", "--set", "max_subs", NULL };
    CHECK(args_fail(e7, "--set: expected key=value, got 'max_subs'"));
    const char *e8[] = { "aurora", "--set", "=5", NULL };
    CHECK(args_fail(e8, "--set: expected key=value"));
    const char *e9[] = { "aurora", "--set", "nokey=5", NULL };
    CHECK(args_fail(e9, "--set: unknown key 'nokey'"));
    const char *e10[] = { "aurora", "--set", "max_subs=1000", NULL };
    CHECK(args_fail(e10, "--set: max_subs: 1000 out of range"));
    const char *e11[] = { "aurora", "--config", "/nonexistent.conf", NULL };
    CHECK(args_fail(e11, "/nonexistent.conf: cannot open"));
    const char *e12[] = { "aurora", "--data", "", NULL };
    CHECK(args_fail(e12, "--data: data_dir: empty path"));
    const char *e13[] = { "aurora", "--set", "acl=allow publish *", NULL };
    CHECK(args_fail(e13, "--set: acl: missing topic filter"));
    const char *e14[] = { "aurora", "--set=mqtts_listen=:8883", NULL };
    CHECK(args_fail(e14, "mqtts_listen: not supported yet")); /* validation runs after flags */
    const char *e15[] = { "aurora", "--mqttx", "1", NULL };
    CHECK(args_fail(e15, "unknown option '--mqttx'"));
    static char longkey[200];
    memset(longkey, 'k', 150);
    strcpy(longkey + 150, "=1");
    const char *e16[] = { "aurora", "--set", longkey, NULL };
    CHECK(args_fail(e16, "--set: unknown key"));
    /* a bad --config stops before flags are applied; a bad flag is reported even after a good file */
    const char *bad = "shards = x\n";
    const char *p = write_tmp("bad.conf", bad, strlen(bad));
    const char *e17[] = { "aurora", "--shards", "2", "--config", p, NULL };
    CHECK(args_fail(e17, "bad.conf:1: shards: 'x' is not"));
}

TEST(hostport)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;

    CHECK_EQ(au_parse_hostport("127.0.0.1:1883", &ss, &sl), 0);
    CHECK(ss.ss_family == AF_INET && sl == sizeof *a4);
    CHECK(ntohs(a4->sin_port) == 1883 && ntohl(a4->sin_addr.s_addr) == INADDR_LOOPBACK);
    CHECK_EQ(au_parse_hostport("0.0.0.0:0", &ss, &sl), 0);
    CHECK(ntohs(a4->sin_port) == 0 && a4->sin_addr.s_addr == htonl(INADDR_ANY));
    CHECK_EQ(au_parse_hostport(":8080", &ss, &sl), 0);
    CHECK(ss.ss_family == AF_INET && ntohs(a4->sin_port) == 8080 && a4->sin_addr.s_addr == htonl(INADDR_ANY));
    CHECK_EQ(au_parse_hostport("*:65535", &ss, &sl), 0);
    CHECK(ss.ss_family == AF_INET && ntohs(a4->sin_port) == 65535 && a4->sin_addr.s_addr == htonl(INADDR_ANY));
    CHECK_EQ(au_parse_hostport("1883", &ss, &sl), 0);
    CHECK(ss.ss_family == AF_INET && ntohs(a4->sin_port) == 1883);
    CHECK_EQ(au_parse_hostport("localhost:1", &ss, &sl), 0);
    CHECK(ntohl(a4->sin_addr.s_addr) == INADDR_LOOPBACK && ntohs(a4->sin_port) == 1);
    CHECK_EQ(au_parse_hostport("10.1.2.3:443", &ss, &sl), 0);
    CHECK(ntohl(a4->sin_addr.s_addr) == 0x0a010203u);

    CHECK_EQ(au_parse_hostport("[::1]:1883", &ss, &sl), 0);
    CHECK(ss.ss_family == AF_INET6 && sl == sizeof *a6 && ntohs(a6->sin6_port) == 1883);
    CHECK(memcmp(&a6->sin6_addr, &in6addr_loopback, 16) == 0);
    CHECK_EQ(au_parse_hostport("[::]:80", &ss, &sl), 0);
    CHECK(ss.ss_family == AF_INET6 && memcmp(&a6->sin6_addr, &in6addr_any, 16) == 0);
    CHECK_EQ(au_parse_hostport("[2001:db8::7]:9", &ss, &sl), 0);
    CHECK_EQ(au_parse_hostport("[::ffff:1.2.3.4]:9", &ss, &sl), 0);

    const char *bad[] = { "", ":", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:123456",
                          "127.0.0.1:-1", "127.0.0.1:+80", "127.0.0.1:80x", "127.0.0.1: 80", "1.2.3:80",
                          "256.0.0.1:80", "example.com:80", "::1:1883", "[::1]", "[::1]1883", "[::1]:",
                          "[]:80", "[1.2.3.4]:80", "[::1:80", "[::1]:80:80", "x", "*", "*:", "localhost",
                          " 1.2.3.4:80", "1.2.3.4 :80", "[fe80::1%eth0]:80" };
    for (size_t i = 0; i < AU_ARRAY_LEN(bad); i++) {
        if (au_parse_hostport(bad[i], &ss, &sl) != -1) { printf("  accepted '%s'\n", bad[i]); t_cur_failed = 1; }
    }
    char longaddr[300];
    memset(longaddr, '1', sizeof longaddr - 1);
    longaddr[sizeof longaddr - 1] = '\0';
    CHECK_EQ(au_parse_hostport(longaddr, &ss, &sl), -1);
}

/* ---- ACL ---- */
static struct au_config acl_cfg(const char *rules)
{
    struct au_config c;
    au_config_defaults(&c);
    if (load(&c, rules) != AU_CONFIG_OK) printf("  rules failed: %s\n", err);
    return c;
}
#define PUB(c, u, cid, t) au_acl_check(&(c), AU_ACL_PUBLISH, (u), (cid), (t), strlen(t))
#define SUB(c, u, cid, t) au_acl_check(&(c), AU_ACL_SUBSCRIBE, (u), (cid), (t), strlen(t))
#define A AU_ACL_ALLOW
#define D AU_ACL_DENY

TEST(acl_order_users_actions)
{
    struct au_config c = acl_cfg("");
    CHECK_EQ(PUB(c, NULL, "x", "anything"), A); /* no rules */
    CHECK_EQ(SUB(c, NULL, "x", "#"), A);
    au_config_free(&c);

    c = acl_cfg("acl allow publish * a/open\nacl deny publish * a/#\n");
    CHECK_EQ(PUB(c, "u", "c", "a/open"), A);
    CHECK_EQ(PUB(c, "u", "c", "a/closed"), D);
    CHECK_EQ(PUB(c, "u", "c", "a"), D);      /* a/# covers the parent */
    CHECK_EQ(PUB(c, "u", "c", "b/x"), A);    /* default allow */
    CHECK_EQ(SUB(c, "u", "c", "a/closed"), A); /* publish rules do not affect subscribe */
    au_config_free(&c);

    c = acl_cfg("acl deny publish * a/#\nacl allow publish * a/open\n");
    CHECK_EQ(PUB(c, "u", "c", "a/open"), D);  /* the earlier rule decides */
    au_config_free(&c);

    c = acl_cfg("acl allow publish alice alice/#\n"
                "acl deny publish * alice/#\n"
                "acl deny subscribe anonymous private/#\n"
                "acl allow subscribe bob private/bob/#\n"
                "acl deny subscribe * private/#\n"
                "acl deny all anonymous admin/#\n");
    CHECK_EQ(PUB(c, "alice", "c1", "alice/status"), A);
    CHECK_EQ(PUB(c, "bob", "c2", "alice/status"), D);
    CHECK_EQ(PUB(c, NULL, "c3", "alice/status"), D);
    CHECK_EQ(PUB(c, "alicex", "c1", "alice/status"), D); /* exact user name */
    CHECK_EQ(PUB(c, "alic", "c1", "alice/status"), D);
    CHECK_EQ(SUB(c, "bob", "c2", "private/bob/inbox"), A);
    CHECK_EQ(SUB(c, "bob", "c2", "private/alice/inbox"), D);
    CHECK_EQ(SUB(c, "alice", "c1", "private/bob/inbox"), D);
    CHECK_EQ(SUB(c, NULL, "c3", "private/bob/inbox"), D);
    CHECK_EQ(PUB(c, NULL, "c3", "admin/cmd"), D);
    CHECK_EQ(SUB(c, NULL, "c3", "admin/cmd"), D);
    CHECK_EQ(SUB(c, "alice", "c1", "admin/cmd"), A);
    CHECK_EQ(PUB(c, "bob", "c2", "admin/cmd"), A);
    CHECK_EQ(PUB(c, "anonymous", "c2", "admin/cmd"), A); /* a user literally named "anonymous" is not anonymous */
    au_config_free(&c);

    c = acl_cfg("acl deny all * both/#\n");
    CHECK_EQ(PUB(c, "u", "c", "both/x"), D);
    CHECK_EQ(SUB(c, "u", "c", "both/x"), D);
    CHECK_EQ(PUB(c, "u", "c", "other/x"), A);
    au_config_free(&c);
}

TEST(acl_topic_matching)
{
    struct au_config c = acl_cfg("acl deny publish * +/secret\nacl deny publish * x/+/y/#\nacl deny publish * exact\n"
                                 "acl deny publish * trail/\nacl deny publish * /lead\n");
    CHECK_EQ(PUB(c, "u", "c", "x/secret"), D);
    CHECK_EQ(PUB(c, "u", "c", "/secret"), D);      /* + matches an empty level */
    CHECK_EQ(PUB(c, "u", "c", "x/y/secret"), A);   /* + is one level */
    CHECK_EQ(PUB(c, "u", "c", "secret"), A);
    CHECK_EQ(PUB(c, "u", "c", "x/secret/z"), A);
    CHECK_EQ(PUB(c, "u", "c", "x/1/y"), D);
    CHECK_EQ(PUB(c, "u", "c", "x/1/y/2/3"), D);
    CHECK_EQ(PUB(c, "u", "c", "x/1/z"), A);
    CHECK_EQ(PUB(c, "u", "c", "exact"), D);
    CHECK_EQ(PUB(c, "u", "c", "exactly"), A);
    CHECK_EQ(PUB(c, "u", "c", "exac"), A);
    CHECK_EQ(PUB(c, "u", "c", "exact/"), A);
    CHECK_EQ(PUB(c, "u", "c", "trail/"), D);
    CHECK_EQ(PUB(c, "u", "c", "trail"), A);
    CHECK_EQ(PUB(c, "u", "c", "/lead"), D);
    CHECK_EQ(PUB(c, "u", "c", "lead"), A);
    CHECK_EQ(PUB(c, "u", "c", ""), A);
    au_config_free(&c);

    /* $ topics are not matched by a leading wildcard */
    c = acl_cfg("acl deny all * #\n");
    CHECK_EQ(PUB(c, "u", "c", "a"), D);
    CHECK_EQ(PUB(c, "u", "c", "$SYS/x"), A);
    CHECK_EQ(SUB(c, "u", "c", "$SYS/#"), A);
    au_config_free(&c);
    c = acl_cfg("acl deny all * $SYS/#\nacl deny publish * +/+/dollar\n");
    CHECK_EQ(PUB(c, "u", "c", "$SYS/x"), D);
    CHECK_EQ(SUB(c, "u", "c", "$SYS/broker/load"), D);
    CHECK_EQ(SUB(c, "u", "c", "#"), A); /* '#' never receives $SYS topics: no overlap */
    CHECK_EQ(PUB(c, "u", "c", "$x/y/dollar"), A);
    CHECK_EQ(PUB(c, "u", "c", "x/y/dollar"), D);
    au_config_free(&c);
}

TEST(acl_subscribe_filters)
{
    /* allow rules must cover the requested filter; deny rules apply on any overlap */
    struct au_config c = acl_cfg("acl allow subscribe * sensors/#\nacl allow subscribe * room/+/temp\n"
                                 "acl allow subscribe * one/+\nacl deny subscribe * #\n");
    CHECK_EQ(SUB(c, "u", "c", "one/x"), A);
    CHECK_EQ(SUB(c, "u", "c", "one/+"), A);
    CHECK_EQ(SUB(c, "u", "c", "one/#"), D);        /* '#' also matches one/x/y and one */
    CHECK_EQ(SUB(c, "u", "c", "one"), D);
    CHECK_EQ(SUB(c, "u", "c", "sensors/a"), A);
    CHECK_EQ(SUB(c, "u", "c", "sensors/+/x"), A);
    CHECK_EQ(SUB(c, "u", "c", "sensors/#"), A);
    CHECK_EQ(SUB(c, "u", "c", "sensors"), A);
    CHECK_EQ(SUB(c, "u", "c", "room/1/temp"), A);
    CHECK_EQ(SUB(c, "u", "c", "room/+/temp"), A);
    CHECK_EQ(SUB(c, "u", "c", "room/#"), D);       /* wider than the rule */
    CHECK_EQ(SUB(c, "u", "c", "room/+/+"), D);
    CHECK_EQ(SUB(c, "u", "c", "room/1/temp/x"), D);
    CHECK_EQ(SUB(c, "u", "c", "+/1/temp"), D);
    CHECK_EQ(SUB(c, "u", "c", "#"), D);
    CHECK_EQ(SUB(c, "u", "c", "other"), D);
    au_config_free(&c);

    c = acl_cfg("acl deny subscribe * private/#\nacl deny subscribe * a/+/c\n");
    CHECK_EQ(SUB(c, "u", "c", "private/x"), D);
    CHECK_EQ(SUB(c, "u", "c", "private"), D);
    CHECK_EQ(SUB(c, "u", "c", "#"), D);            /* would receive private/... */
    CHECK_EQ(SUB(c, "u", "c", "+/x"), D);
    CHECK_EQ(SUB(c, "u", "c", "+"), D);            /* matches "private" */
    CHECK_EQ(SUB(c, "u", "c", "public/#"), A);
    CHECK_EQ(SUB(c, "u", "c", "privatex/#"), A);
    CHECK_EQ(SUB(c, "u", "c", "a/b/c"), D);
    CHECK_EQ(SUB(c, "u", "c", "a/#"), D);
    CHECK_EQ(SUB(c, "u", "c", "+/+/c"), D);
    CHECK_EQ(SUB(c, "u", "c", "a/b/d"), A);
    CHECK_EQ(SUB(c, "u", "c", "a/b"), A);
    CHECK_EQ(SUB(c, "u", "c", "a/b/c/d"), A);
    CHECK_EQ(SUB(c, "u", "c", "+/+/+/+"), D);       /* overlaps private/# */
    /* shared subscriptions: the rule applies to the filter inside $share/<group>/ */
    CHECK_EQ(SUB(c, "u", "c", "$share/g/private/x"), D);
    CHECK_EQ(SUB(c, "u", "c", "$share/g/public/x"), A);
    CHECK_EQ(SUB(c, "u", "c", "$share/g/#"), D);
    au_config_free(&c);
}

TEST(acl_substitution)
{
    struct au_config c = acl_cfg("acl allow all * users/%u/#\nacl allow publish * devices/%c/state\n"
                                 "acl allow subscribe * mix/%u-%c/x\nacl deny all * users/#\n"
                                 "acl deny all * devices/#\nacl deny all * mix/#\n");
    CHECK_EQ(c.n_acl, 6);
    CHECK_EQ(PUB(c, "alice", "d1", "users/alice/inbox"), A);
    CHECK_EQ(PUB(c, "alice", "d1", "users/alice"), A);
    CHECK_EQ(PUB(c, "alice", "d1", "users/bob/inbox"), D);
    CHECK_EQ(PUB(c, "alice", "d1", "users/alicex/inbox"), D);
    CHECK_EQ(PUB(c, "alice", "d1", "users/alic/inbox"), D);
    CHECK_EQ(SUB(c, "alice", "d1", "users/alice/+"), A);
    CHECK_EQ(SUB(c, "alice", "d1", "users/+/inbox"), D); /* wider than users/alice/# */
    CHECK_EQ(PUB(c, NULL, "d1", "users/alice/inbox"), D);   /* anonymous: %u rules never match */
    CHECK_EQ(PUB(c, "", "d1", "users//inbox"), D);          /* empty user name */
    CHECK_EQ(PUB(c, "a/b", "d1", "users/a/b/inbox"), D);    /* '/' in the substituted value */
    CHECK_EQ(PUB(c, "#", "d1", "users/#"), D);
    CHECK_EQ(PUB(c, "+", "d1", "users/+/x"), D);
    CHECK_EQ(PUB(c, "bob", "dev-9", "devices/dev-9/state"), A);
    CHECK_EQ(PUB(c, "bob", "dev-9", "devices/dev-1/state"), D);
    CHECK_EQ(PUB(c, "bob", NULL, "devices/dev-9/state"), D);
    CHECK_EQ(SUB(c, "bob", "d7", "mix/bob-d7/x"), A);
    CHECK_EQ(SUB(c, "bob", "d7", "mix/bob-d8/x"), D);
    CHECK_EQ(SUB(c, "bob", "d7", "mix/bobd7/x"), D);
    au_config_free(&c);

    /* a literal '%' that is not %u/%c stays literal */
    c = acl_cfg("acl deny publish * a/%x/%\n");
    CHECK_EQ(c.acl[0].subst, 0);
    CHECK_EQ(PUB(c, "u", "c", "a/%x/%"), D);
    CHECK_EQ(PUB(c, "u", "c", "a/ux/%"), A);
    au_config_free(&c);
}

/* Robustness: arbitrary bytes as topics never crash the matcher (run under ASan via SAN=...). */
TEST(acl_arbitrary_input)
{
    struct au_config c = acl_cfg("acl allow subscribe * a/+/%u/#\nacl deny all * +/#\nacl deny publish * $x/+\n");
    static const char alphabet[] = "a/+#$%uc\0x";
    uint64_t s = 88172645463325252ull;
    for (int i = 0; i < 200000; i++) {
        char t[12];
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        size_t n = (size_t)(s % sizeof t);
        for (size_t j = 0; j < n; j++) t[j] = alphabet[(s >> (j * 5 + 4)) % (sizeof alphabet - 1)];
        char *heap = malloc(n ? n : 1); /* exact-size buffer: ASan catches any over-read */
        memcpy(heap, t, n);
        int r1 = au_acl_check(&c, AU_ACL_PUBLISH, (s & 1) ? "u" : NULL, "c", heap, n);
        int r2 = au_acl_check(&c, AU_ACL_SUBSCRIBE, (s & 2) ? "u" : NULL, "c", heap, n);
        CHECK(r1 == A || r1 == D);
        CHECK(r2 == A || r2 == D);
        free(heap);
    }
    au_config_free(&c);
}

TEST(docs_cover_every_key)
{
    FILE *f = fopen("docs/configuration.md", "r");
    if (!f) { printf("  (docs/configuration.md not found from cwd: skipped)\n"); return; }
    static char doc[1 << 17];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[n] = '\0';
    for (size_t i = 0; au_config_key_name(i); i++) {
        char k[80];
        snprintf(k, sizeof k, "`%s`", au_config_key_name(i));
        if (!strstr(doc, k)) { printf("  key %s not documented\n", k); t_cur_failed = 1; }
    }
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/au_test_config.XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    RUN(defaults);
    RUN(file_syntax);
    RUN(file_errors);
    RUN(load_file);
    RUN(flags_and_overrides);
    RUN(flag_errors);
    RUN(hostport);
    RUN(acl_order_users_actions);
    RUN(acl_topic_matching);
    RUN(acl_subscribe_filters);
    RUN(acl_substitution);
    RUN(acl_arbitrary_input);
    RUN(docs_cover_every_key);
    const char *files[] = { "a.conf", "b.conf", "f.conf", "g.conf", "bad.conf", "huge.conf" };
    for (size_t i = 0; i < AU_ARRAY_LEN(files); i++) {
        char p[128];
        snprintf(p, sizeof p, "%s/%s", tmpdir, files[i]);
        unlink(p);
    }
    rmdir(tmpdir);
    TEST_MAIN_END();
}
