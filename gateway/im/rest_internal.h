/* rest_internal.h - shared by gateway/im/rest_*.c: authentication, answers (immediate and deferred),
 * store helpers (paged scans, many gets), serialised record updates on the directory writer, and
 * fan-out to every shard. Include it FIRST in every rest_*.c.
 *
 * (imjson's view structs `struct im_user` / `struct im_group` are the rendering side; dir.h's
 * `struct dir_user` / `struct dir_group` are the replica.) */
#ifndef AU_IM_REST_INTERNAL_H
#define AU_IM_REST_INTERNAL_H

#include "gateway/im/imjson.h"

#include "core/common.h"
#include "core/config.h"
#include "core/log.h"
#include "gateway/http/http_gw.h"
#include "gateway/http/http_server.h"
#include "gateway/im/dir.h"
#include "gateway/im/errors.h"
#include "gateway/im/rest.h"
#include "store/keyspace.h"
#include "store/store.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define REST_SCAN_PAGE      STORE_SCAN_MAX  /* entries one paged-scan step asks for */
#define REST_BLACKLIST_MAX  10000           /* names one user may blacklist (and GET returns) */
#define REST_HASH_WINDOW    8               /* passwords of one request being hashed at once */
#define REST_DEL_PAGE       5000            /* keys per delete batch (app deletion) */
_Static_assert(REST_BLACKLIST_MAX <= STORE_SCAN_MAX, "a blacklist is read in one scan");

/* ---- process-wide (set at start-up, read-only afterwards) ---- */
const struct au_config *rest_cfg(void);
struct store *rest_store(void);
struct authpool *rest_authpool(void);
/* The operator API's start-up (rest_apps.c): loads or creates the operator token, guards GET /metrics with it. */
void rest_apps_init(const struct au_config *cfg);
/* The operator token check (Authorization: Bearer <data>/operator.token): true, or false after a 401 in resp.
 * Also what GET /metrics requires. */
bool rest_ops_auth(const struct http_req *req, struct http_resp *resp);

/* ---- one authenticated request ---- */
struct rest_ctx {
    struct au_shard *s;
    struct im_dir *d;
    uint32_t app;
    char appkey[IM_APPKEY_LEN + 1];
};

/* Basic appKey:masterSecret against the local replica. False: a 401 was answered. */
bool rest_auth(const struct http_req *req, struct http_resp *resp, void *ctx, struct rest_ctx *c);

/* Immediate answers. */
void rest_error(struct http_resp *resp, int code, const char *detail); /* JMessage error body + status */
void rest_json(struct http_resp *resp, int status, const char *json, size_t len);
void rest_empty(struct http_resp *resp, int status);                   /* 201/204 without a body */

/* Deferred answers: embed struct rest_async first in a request's heap state. */
struct rest_async {
    struct http_gw_defer *defer;
    struct au_shard *s;
    uint32_t app;
    char appkey[IM_APPKEY_LEN + 1];
};
void rest_defer(struct rest_async *a, const struct rest_ctx *c, struct http_resp *resp);
bool rest_alive(const struct rest_async *a);                           /* the client still waits */
void rest_finish_error(struct rest_async *a, int code, const char *detail);
void rest_finish_json(struct rest_async *a, int status, const char *json, size_t len);
void rest_finish_empty(struct rest_async *a, int status);
/* Finish with a rendered body taken over (free()d here). */
void rest_finish_take(struct rest_async *a, int status, char *json, size_t len);

/* ---- request parts ---- */
static inline const char *rest_body(const struct http_req *req, size_t *len)
{
    *len = req->body_len;
    return req->body ? (const char *)req->body : "";
}
/* ?name=N (decimal, <= max): 1 found, 0 absent, -1 malformed. */
int rest_query_u64(const struct http_req *req, const char *name, uint64_t max, uint64_t *out);
/* ?start=&count= of list endpoints (count 1..AU_IM_LIST_COUNT_MAX required). False: answered 899003. */
bool rest_paging(const struct http_req *req, struct http_resp *resp, uint64_t *start, uint64_t *count);
/* A {u} path parameter that must be a valid username. False: answered 899003. */
bool rest_username_param(const struct http_req *req, size_t i, struct http_resp *resp, const char **name,
                         size_t *len);
/* Basic auth, then the {gid} path parameter (params[0]) of a group of this app that the local replica
 * knows. NULL: answered (401, 899003 for a malformed gid, 899006 for an unknown group). */
struct dir_group *rest_group_param(const struct http_req *req, struct http_resp *resp, void *ctx,
                                   struct rest_ctx *c, uint64_t *gid);

/* Error codes travel through directory transactions as -code (JMessage codes are > 800000); any
 * other negative value (a store error) is a system error. */
static inline int rest_code_of(int err) { return err == 0 ? 0 : (-err >= 800000 ? -err : IM_E_SYSTEM); }

/* im_txn() plus a wake-up of the writer when it submits to itself (see rest_common.c). */
void rest_txn(struct au_shard *s, im_txn_prepare_fn prepare, im_txn_done_fn done, void *arg);

/* ---- store helpers (results on the calling shard) ---- */
typedef void (*rest_done_fn)(struct au_shard *s, void *arg, int err);
/* Every key in [start, end) after skipping `skip` entries, at most `limit` (0 = all), paged; row()
 * returns false to stop early. done(err) afterwards. The key buffers are copied. */
typedef bool (*rest_row_fn)(void *arg, const struct store_kv *kv);
void rest_scan(struct au_shard *s, const uint8_t *start, size_t sl, const uint8_t *end, size_t el, uint64_t skip,
               uint64_t limit, rest_row_fn row, rest_done_fn done, void *arg);
/* n gets at once: keyf(arg, i, buf) builds key i (returns its length), got(arg, i, err, v, vl) takes
 * each result (any order), done(err = 0) after the last. n = 0 calls done at once. */
typedef size_t (*rest_key_fn)(void *arg, size_t i, uint8_t *buf);
typedef void (*rest_got_fn)(void *arg, size_t i, int err, const void *v, size_t vl);
void rest_get_many(struct au_shard *s, size_t n, rest_key_fn keyf, rest_got_fn got, rest_done_fn done, void *arg);

/* Read-modify-write of one JSON record, serialised per key on the directory writer: the record is
 * read there (rec NULL when absent), fn runs inside a directory transaction's prepare (validate
 * against the writer's replica, change rec in place, add other writes and replica changes), rec is
 * then written back to `key`, and done(err) runs on `from` after the change is applied there. */
typedef int (*rest_rmw_fn)(struct im_dir *d, void *arg, json_t *rec, struct store_batch *b, struct im_changes *ch);
void rest_rmw(struct au_shard *from, const uint8_t *key, size_t kl, rest_rmw_fn fn, rest_done_fn done, void *arg);

/* each(shard, arg) on every shard (each writes only its own slot of arg), then done(from, arg, 0) on
 * `from`. The local part runs inside the call (and done too with one shard). */
typedef void (*rest_each_fn)(struct au_shard *s, void *arg);
void rest_fanout(struct au_shard *from, rest_each_fn each, rest_done_fn done, void *arg);

/* ---- records ---- */
char *rest_json_dump(const json_t *o, size_t *len);                    /* compact; malloc'd */
uint64_t rest_json_u64(const json_t *o, const char *key);
const char *rest_json_str(const json_t *o, const char *key);           /* "" when absent */
void rest_put_json(struct store_batch *b, const uint8_t *k, size_t kl, const json_t *o);

/* User record <-> imjson view. */
json_t *rest_user_rec_new(const char *name, uint64_t uid, const char *pw_hash, const struct im_profile *p,
                          uint64_t now_ms);
void rest_user_rec_profile(json_t *rec, const struct im_profile *p);    /* set the fields present in p */
void rest_user_view(const json_t *rec, const char *name, struct im_user *out);
size_t rest_user_key(uint8_t *buf, uint32_t app, const struct dir_user *u); /* user or admin family */

/* Group record <-> imjson view. */
void rest_group_view(const json_t *rec, uint64_t gid, const char *appkey, struct im_group *out);

/* Counting (local replica; O(entries of every app)). */
uint64_t rest_count_users(struct im_dir *d, uint32_t app, bool admins);
uint64_t rest_count_groups(struct im_dir *d, uint32_t app);

/* Render with a two-pass snprintf-style renderer into a malloc'd buffer: REST_RENDER(buf, len, fn(args, RB, RC))
 * where the call names the buffer RB and its capacity RC. */
#define REST_RENDER(out, outlen, call)                                                                 \
    do {                                                                                               \
        char *RB = NULL;                                                                               \
        size_t RC = 0;                                                                                 \
        size_t need_ = (call);                                                                         \
        RB = malloc(need_ + 1);                                                                        \
        AU_ASSERT(RB != NULL);                                                                         \
        RC = need_ + 1;                                                                                \
        size_t got_ = (call);                                                                          \
        AU_ASSERT(got_ == need_);                                                                      \
        (out) = RB;                                                                                    \
        (outlen) = need_;                                                                              \
    } while (0)

#endif
