/* dir.h - the IM directory: apps, users, groups and memberships, as every shard sees them.
 *
 * Every shard keeps a replica of what the hot paths need (MQTT login, REST authentication, im/send
 * validation, fan-out to group members): apps (key, secret hash), users (password hash, forbidden flag,
 * token generation, groups), groups (owner, members). Profiles and everything else stay in the store.
 *
 * Writes are transactions serialised on ONE shard, the directory writer (shard 0): a transaction's
 * `prepare` runs there against the writer's replica (so "does this user exist?" has one answer), fills a
 * store batch and a list of changes, the batch is committed durably (group commit), then the changes are
 * applied on every shard (the writer first, then a broadcast), and finally `done` runs on the submitting
 * shard once EVERY shard applied them, so a client that gets its answer sees its write wherever it goes
 * next (a REST read on another connection, an MQTT login owned by another shard). Reads are local and
 * lock-free. */
#ifndef AU_IM_DIR_H
#define AU_IM_DIR_H

#include "core/common.h"
#include "core/hash.h"
#include "core/loop.h"
#include "store/store.h"

#define IM_DIR_WRITER 0                  /* the shard that serialises directory writes */
#define IM_APPKEY_LEN 24
#define IM_SECRET_HASH_MAX 128
#define IM_PW_HASH_MAX 160
/* User incarnation ids (dir_user.uid) come from the app's "uid" counter (im_dir_next_id): never reused, also
 * not after the user is deleted. They stay below 2^32 so that a single-chat conversation id packs the two
 * uids exactly into 63 bits (im_conv_single); registration refuses users beyond (IM_E_SYSTEM). */
#define IM_UID_COUNTER "uid"
/* hi * (hi + 3) / 2 < 2^63 for hi <= IM_UID_MAX: the largest single-chat id stays below the group bit */
#define IM_UID_MAX 0xfffffff0ull

struct dir_app {
    uint32_t id;
    char key[IM_APPKEY_LEN + 1];
    char secret_hash[IM_SECRET_HASH_MAX];
    char name[65];
    uint64_t ctime_ms;
};

struct dir_group;

struct dir_user {
    uint64_t uid;                        /* incarnation id: never reused within the app (see IM_UID_MAX) */
    uint64_t ctime_ms;                   /* registered (wall ms): older messages are of an earlier user of the name */
    uint32_t app;
    uint16_t name_len;
    uint8_t forbidden;
    uint8_t admin;                       /* an admin user (may send as from_type admin) */
    uint32_t token_gen;                  /* bumped on password change / ban: revokes login tokens */
    char pw_hash[IM_PW_HASH_MAX];
    uint64_t *gids;                      /* groups the user is in */
    uint32_t ngids, cap_gids;
    char *key;                           /* app u32 + name: the hash key; name NUL-terminated at key + 4 */
};
static inline const char *im_user_name(const struct dir_user *u) { return u->key + 4; }

struct dir_group {
    uint32_t app;
    uint64_t gid;
    struct dir_user *owner;
    struct dir_user **members;
    uint32_t nmembers, cap_members;
    uint32_t max_members;
    struct dir_user **muted;             /* members who may not send to the group (silenced) */
    uint32_t nmuted, cap_muted;
    char name[65];
};

struct im_dir {
    struct au_hash apps;                 /* id (u64) -> im_app */
    struct au_hash appkeys;              /* key (24 bytes) -> im_app */
    struct au_hash users;                /* app u32 + name -> im_user */
    struct au_hash groups;               /* (app << 40 ^ gid) hashed as bytes app+gid -> im_group */
    uint64_t nusers, ngroups;
};

/* ---- lookups (any shard, its own replica) ---- */
struct dir_app *im_dir_app(struct im_dir *d, uint32_t id);
struct dir_app *im_dir_app_by_key(struct im_dir *d, const char *key, size_t len);
struct dir_user *im_dir_user(struct im_dir *d, uint32_t app, const char *name, size_t len);
struct dir_group *im_dir_group(struct im_dir *d, uint32_t app, uint64_t gid);
bool im_dir_is_member(const struct dir_group *g, const struct dir_user *u);
bool im_dir_is_muted(const struct dir_group *g, const struct dir_user *u);

/* ---- changes (what a transaction does to every replica) ---- */
enum im_change_type {
    IM_CH_APP_PUT = 1,   /* app fields */
    IM_CH_APP_DEL,
    IM_CH_USER_PUT,      /* create, or update the replicated fields */
    IM_CH_USER_DEL,      /* also removes the user from its groups */
    IM_CH_GROUP_PUT,     /* create, or update owner / name / max */
    IM_CH_GROUP_DEL,
    IM_CH_MEMBER_ADD,
    IM_CH_MEMBER_DEL,
    IM_CH_GROUP_MUTE,    /* name = member, forbidden = 1 muted / 0 may speak again */
};

struct im_change {
    uint8_t type;
    uint8_t forbidden, admin;
    uint32_t app;
    uint32_t token_gen;
    uint32_t max_members;
    uint64_t gid;
    uint64_t uid;                        /* USER_PUT: the user's incarnation id */
    uint64_t ctime_ms;                   /* APP_PUT, USER_PUT: creation time (wall ms) */
    char name[129];                      /* user name, group owner name (GROUP_PUT), member name */
    char str[IM_PW_HASH_MAX];            /* password hash (USER_PUT) / app key (APP_PUT) / group name */
    char str2[IM_SECRET_HASH_MAX];       /* app secret hash (APP_PUT) */
};

struct im_changes {
    struct im_change *v;
    uint32_t n, cap;
};
struct im_change *im_changes_add(struct im_changes *c, uint8_t type);

/* Apply one change to a replica (used by the writer, the broadcast and start-up loading). */
void im_dir_apply(struct im_dir *d, const struct im_change *ch);

/* ---- transactions ---- */
/* Runs on the writer shard. Validate against `d` (the writer's replica), add store writes to `batch` and
 * replica changes to `ch`; return 0, or a negative error code of the caller's choosing (nothing is
 * written or applied, done gets it). The writer may also use `ctx` (the process-wide IM context). */
typedef int (*im_txn_prepare_fn)(struct im_dir *d, void *arg, struct store_batch *batch, struct im_changes *ch);
/* Runs on the submitting shard once the transaction is durable and applied there (err = 0), or failed. */
typedef void (*im_txn_done_fn)(struct au_shard *s, void *arg, int err);

/* Submit from any shard; `arg` must stay valid until done (it is read on the writer shard). */
void im_txn(struct au_shard *from, im_txn_prepare_fn prepare, im_txn_done_fn done, void *arg);

/* ---- per-shard setup ---- */
struct im_dir *im_dir_of(struct au_shard *s);
void im_dir_init(struct au_shard *s, struct store *st);  /* creates the replica and loads it from the store */
void im_dir_fini(struct au_shard *s);
/* Allocate the next id of a counter ("gid", ...) on the writer shard (prepare functions only): returns the id
 * and adds the counter update to the batch. */
uint64_t im_dir_next_id(struct im_dir *d, uint32_t app, const char *counter, struct store_batch *batch);

#endif
