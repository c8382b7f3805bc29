/* config.h - every setting of the gateway, its defaults (core/limits.h), the config file and command-line
 * parsers, listen-address parsing and topic ACL rules. docs/configuration.md documents every key.
 *
 * Lifecycle: main() calls au_config_defaults(), au_config_parse_args() (which loads --config files), and
 * au_config_free() at exit. After startup the config is immutable and may be read from every thread. */
#ifndef AU_CONFIG_H
#define AU_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "core/limits.h"

enum au_acl_action { AU_ACL_PUBLISH = 1, AU_ACL_SUBSCRIBE = 2, AU_ACL_ALL = 3 };
enum au_acl_result { AU_ACL_DENY = 0, AU_ACL_ALLOW = 1 };
enum au_acl_who { AU_ACL_WHO_ANY = 0, AU_ACL_WHO_ANONYMOUS, AU_ACL_WHO_USER };

/* One `acl allow|deny <publish|subscribe|all> <user|*|anonymous> <filter>` rule. */
struct au_acl_rule {
    uint8_t allow;           /* 1 allow, 0 deny */
    uint8_t actions;         /* AU_ACL_PUBLISH | AU_ACL_SUBSCRIBE */
    uint8_t who;             /* enum au_acl_who */
    uint8_t subst;           /* filter contains %u or %c */
    uint32_t user_len, filter_len;
    char *user;              /* NUL-terminated, for AU_ACL_WHO_USER */
    char *filter;            /* NUL-terminated topic filter */
};

struct au_config {
    /* listeners and files */
    char mqtt_listen[AU_CONFIG_ADDR_MAX];
    char http_listen[AU_CONFIG_ADDR_MAX];
    /* Not supported yet (TLS arrives with issue 11): parsed, and refused by au_config_validate when set. */
    char mqtts_listen[AU_CONFIG_ADDR_MAX];   /* "" = off */
    char https_listen[AU_CONFIG_ADDR_MAX];   /* "" = off */
    char tls_cert[AU_CONFIG_PATH_MAX];
    char tls_key[AU_CONFIG_PATH_MAX];
    char data_dir[AU_CONFIG_PATH_MAX];
    /* process */
    uint32_t shards;                         /* 0 = online CPUs (see au_config_shards) */
    int log_level;                           /* enum au_log_level */
    uint32_t max_connections;                /* 0 = derived (see au_config_max_connections) */
    /* MQTT */
    uint32_t max_packet;
    uint32_t max_topic;
    uint32_t max_subs;
    uint32_t max_inflight;
    uint32_t receive_max;
    uint32_t max_queued_msgs;
    uint32_t send_queue_bytes;
    uint32_t topic_alias_max;
    uint32_t connect_timeout_ms;
    uint32_t mqtt_connect_budget;            /* bytes, whole process: CONNECTs above AU_MQTT_CONNECT_FREE */
    uint32_t max_keepalive;                  /* seconds; 0 = no server cap */
    uint32_t max_session_expiry;             /* seconds */
    uint32_t persistent_session_expiry;      /* seconds an MQTT 3.1/3.1.1 clean-session-0 session is kept; 0 = never ends */
    uint32_t max_retained;
    uint32_t max_retained_bytes;             /* per app; over it: PUBACK/PUBREC 0x97 or disconnect */
    bool retain_available;
    bool allow_anonymous;
    /* HTTP */
    uint32_t http_header_timeout_ms;
    uint32_t http_body_timeout_ms;
    uint32_t http_body_min_rate;             /* bytes/s */
    uint32_t http_body_budget;               /* bytes, whole process */
    /* IM */
    uint32_t im_max_group_members;
    uint32_t im_max_groups_per_user;
    uint32_t im_offline_msgs;
    uint32_t im_offline_days;
    uint32_t im_event_days;
    /* ACL rules in file order (first match wins, no match = allow) */
    struct au_acl_rule *acl;
    size_t n_acl, cap_acl;
};

/* Return codes of the loaders / argument parser. */
enum { AU_CONFIG_OK = 0, AU_CONFIG_ERR = -1, AU_CONFIG_HELP = 1 };

/* Sets every default. Does not free: call au_config_free() on a config that holds ACL rules. */
void au_config_defaults(struct au_config *cfg);
void au_config_free(struct au_config *cfg);

/* Parses `key = value` lines (blank lines and lines starting with '#' ignored; `acl ...` lines also accepted
 * without '='). `name` is used in messages ("name:line: ..."). On error returns AU_CONFIG_ERR with a message
 * in errbuf; cfg may then be partly updated (the caller exits). Pure: no I/O. */
int au_config_load_buf(struct au_config *cfg, const char *name, const char *buf, size_t len,
                       char *errbuf, size_t errlen);
/* Reads the file (at most AU_CONFIG_FILE_MAX bytes) and parses it as above. */
int au_config_load_file(struct au_config *cfg, const char *path, char *errbuf, size_t errlen);
/* Sets one key from its text value (the `--set key=value` path); `where` prefixes error messages. */
int au_config_set(struct au_config *cfg, const char *key, const char *value, const char *where,
                  char *errbuf, size_t errlen);
/* Command line: --config FILE files are loaded first (in order), then every other flag applies on top,
 * whatever the order. Then au_config_validate() runs. Returns AU_CONFIG_OK, AU_CONFIG_ERR (message in
 * errbuf) or AU_CONFIG_HELP (--help / -h: the caller prints au_config_usage() and exits 0).
 * argv[0] is the program name and is skipped. */
int au_config_parse_args(struct au_config *cfg, int argc, char **argv, char *errbuf, size_t errlen);
/* Start-up checks: a key of a feature that does not exist yet (mqtts_listen, https_listen, tls_cert, tls_key:
 * TLS arrives with issue 11) is refused when set, with "KEY: not supported yet (...)". */
int au_config_validate(const struct au_config *cfg, char *errbuf, size_t errlen);
void au_config_usage(FILE *out);
/* Writes the effective configuration in config-file syntax (loadable again). */
void au_config_write(const struct au_config *cfg, FILE *out);
/* Name of the i-th config key (i = 0, 1, ...), NULL past the last one. */
const char *au_config_key_name(size_t i);

/* Resolved values: shards = online CPUs when 0 (1..AU_MAX_SHARDS); max_connections derived from the
 * fixed-file table when 0: nshards * (AU_FIXED_FILES_MAX - AU_FIXED_FILES_RESERVE). */
uint32_t au_config_shards(const struct au_config *cfg);
uint32_t au_config_max_connections(const struct au_config *cfg, uint32_t nshards);

/* "1.2.3.4:1883", "[::1]:1883", "[::]:1883", ":1883" / "*:1883" / "1883" (0.0.0.0), "localhost:1883"
 * (127.0.0.1). Numeric only (no DNS). Port 0..65535. Returns 0 or -1. */
int au_parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len);

/* First matching rule decides; no rule matches -> AU_ACL_ALLOW. username NULL = anonymous client.
 * client_id may be NULL (rules using %c then never match). For AU_ACL_PUBLISH `topic` is a topic name; for
 * AU_ACL_SUBSCRIBE it is the requested filter ("$share/<group>/" is stripped first): an allow rule matches
 * when its filter covers every topic the requested filter can match, a deny rule when the two filters can
 * match a common topic. %u / %c in a rule filter stand for the username / client id; a rule whose
 * substitution is impossible (anonymous, or a value containing '/', '+', '#' or nothing) does not match. */
/* Appends one rule given as "allow|deny publish|subscribe|all <user|*|anonymous> <filter>" (the text after
 * `acl`). Returns AU_CONFIG_OK or AU_CONFIG_ERR with "where: acl: ..." in errbuf. */
int au_acl_add(struct au_config *cfg, const char *rule, const char *where, char *errbuf, size_t errlen);
/* Frees the rules (part of au_config_free). */
void au_acl_free(struct au_config *cfg);

enum au_acl_result au_acl_check(const struct au_config *cfg, enum au_acl_action action, const char *username,
                                const char *client_id, const char *topic, size_t len);

#endif
