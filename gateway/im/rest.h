/* rest.h - the JMessage-compatible REST API v1 (users, admins, groups, blacklist) and the operator API
 * (apps). docs/rest-api.md describes the wire contract, docs/storage.md the records.
 *
 * Start-up (main thread, before the shards start):
 *   http_gw_init(&cfg); rest_init(&cfg)      body gate; loads or creates <data>/operator.token
 *   rest_set_authpool(pool)                  password hashing for register / password change
 *   gateway_routes_register()                (gateway/routes.h) every module's route table below
 * (im_apps_bootstrap() in apps.h creates the default app; every shard runs im_dir_init().)
 * Handlers run on the shard that received the request; everything that waits (store reads, password
 * hashing, directory transactions) completes on that shard and finishes a deferred HTTP response. */
#ifndef AU_IM_REST_H
#define AU_IM_REST_H

#include "core/common.h"
#include "core/config.h"
#include "store/keyspace.h"

struct au_shard;
struct authpool;

#define REST_OPERATOR_TOKEN_FILE "operator.token" /* <data>/operator.token: 64 hex chars, mode 0600 */
#define REST_OPERATOR_TOKEN_LEN  64
#define REST_APP_NAME_MAX        64                 /* operator API: app name bytes (no CR/LF) */

/* Install the body gate and load (or create) the operator token. Before shards start. */
void rest_init(const struct au_config *cfg);

/* Route tables of the REST modules (gateway/http/http_server.h struct http_routes), one per rest_*.c; the
 * composition (gateway/routes.c) registers them. */
struct http_routes;
extern const struct http_routes rest_users_routes;    /* /v1/users, /v1/admins (rest_users.c) */
extern const struct http_routes rest_groups_routes;   /* /v1/groups (rest_groups.c) */
extern const struct http_routes rest_apps_routes;     /* /ops/v1/apps (rest_apps.c) */
extern const struct http_routes rest_devices_routes;  /* /v1/devices (rest_devices.c) */
extern const struct http_routes rest_messages_routes; /* /v1/messages, /v2/.../messages (rest_messages.c) */
extern const struct http_routes rest_silence_routes;  /* /v1/groups/messages/{gid}/silence (rest_silence.c) */
/* The password-hashing pool (register, password change). Before shards serve. */
void rest_set_authpool(struct authpool *p);

/* Close the connected devices of IM user `user` of app `app` on every shard (forbidden / deleted user;
 * user NULL: every device of the app, deleted app); MQTT 5 devices get DISCONNECT 0x98 (administrative
 * action) first. Call on a shard thread. */
void rest_drop_user_devices(struct au_shard *from, uint32_t app, const char *user);

/* The blacklist records (0x20 / 0x21) and their builders are in store/keyspace.h. */

#endif
