/* rest_users.c - JMessage REST v1: users and admins (register, get, update, delete, list, password,
 * online status, forbid), a user's groups, blacklist. docs/rest-api.md §2.
 *
 * Reads are local (the directory replica answers "exists?") plus store reads for profiles. Writes are
 * directory transactions (gateway/im/dir.h): creations and deletions directly, changes of an existing
 * record as a read-modify-write serialised on the directory writer (rest_rmw). Passwords are hashed on
 * the authpool threads before the transaction. */
#include "gateway/im/rest_internal.h"

#include "gateway/im/auth.h"
#include "gateway/im/authpool.h"
#include "gateway/mqtt/broker.h"
#include "gateway/im/imconn.h"
#include "gateway/mqtt/codec.h"

#include <errno.h>

/* The identity check of a read-modify-write: the record read belongs to the user the writer's replica
 * knows (not to an earlier user of the same name deleted and re-created in between). */
static struct dir_user *rmw_user(struct im_dir *d, uint32_t app, const char *name, bool admin, const json_t *rec)
{
    struct dir_user *u = im_dir_user(d, app, name, strlen(name));
    if (!u || !rec || (bool)u->admin != admin || rest_json_u64(rec, "uid") != u->uid ||
        strcmp(u->pw_hash, rest_json_str(rec, "password")) != 0)
        return NULL;
    return u;
}

static void user_change(struct im_changes *ch, uint32_t app, const char *name, const json_t *rec, bool admin)
{
    struct im_change *c = im_changes_add(ch, IM_CH_USER_PUT);
    c->app = app;
    c->admin = admin;
    c->forbidden = json_is_true(json_object_get(rec, "forbidden"));
    c->token_gen = (uint32_t)rest_json_u64(rec, "token_gen");
    c->uid = rest_json_u64(rec, "uid");
    c->ctime_ms = rest_json_u64(rec, "ctime");
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->str, sizeof c->str, "%s", rest_json_str(rec, "password"));
}

/* ================================================================== register (users, admins) */

struct reg {
    struct rest_async a;
    bool admin, pumping, submitted;
    size_t n, next, hashing;
    uint64_t now;
    struct im_user_reg *items;
    char (*hash)[AUTH_HASH_STR_MAX];
    struct reg_slot {
        struct reg *r;
        size_t i;
    } *slots;
};

static void reg_free(struct reg *r)
{
    explicit_bzero(r->items, sizeof r->items[0] * (r->admin ? 1 : AU_IM_BATCH_MAX));
    free(r->items);
    free(r->hash);
    free(r->slots);
    free(r);
}

static void reg_answer(struct reg *r, int err)
{
    if (err) {
        rest_finish_error(&r->a, rest_code_of(err), NULL);
    } else if (r->admin) {
        if (r->items[0].err.code) rest_finish_error(&r->a, r->items[0].err.code, r->items[0].err.msg);
        else rest_finish_empty(&r->a, 201);
    } else {
        char *b;
        size_t n;
        REST_RENDER(b, n, im_users_reg_render(r->items, r->n, RB, RC));
        rest_finish_take(&r->a, 201, b, n);
    }
    reg_free(r);
}

static void item_fail(struct im_user_reg *it, int code, const char *msg)
{
    it->err.code = code;
    snprintf(it->err.msg, sizeof it->err.msg, "%s", msg ? msg : im_err_message(code));
}

static int reg_prepare(struct im_dir *d, void *arg, struct store_batch *b, struct im_changes *ch)
{
    struct reg *r = arg;
    if (!im_dir_app(d, r->a.app)) return -IM_E_AUTH_FAILED; /* the app was deleted meanwhile */
    uint8_t key[KS_KEY_MAX];
    for (size_t i = 0; i < r->n; i++) {
        struct im_user_reg *it = &r->items[i];
        if (it->err.code) continue;
        if (im_dir_user(d, r->a.app, it->username, strlen(it->username))) {
            item_fail(it, IM_E_USER_EXIST, NULL);
            continue;
        }
        /* A new incarnation id, never reused (also not by a later user of the same name). */
        uint64_t uid = im_dir_next_id(d, r->a.app, IM_UID_COUNTER, b);
        if (uid > IM_UID_MAX) {
            item_fail(it, IM_E_SYSTEM, "the app's user id space is exhausted");
            continue;
        }
        json_t *rec = rest_user_rec_new(it->username, uid, r->hash[i], &it->profile, r->now);
        rest_put_json(b, key, ks_im_user(key, r->a.app, r->admin, it->username, strlen(it->username)), rec);
        user_change(ch, r->a.app, it->username, rec, r->admin);
        json_decref(rec);
    }
    return 0;
}

static void reg_done(struct au_shard *s, void *arg, int err)
{
    (void)s;
    reg_answer(arg, err);
}

static void reg_submit(struct reg *r)
{
    r->submitted = true;
    bool any = false;
    for (size_t i = 0; i < r->n && !any; i++) any = r->items[i].err.code == 0;
    if (!any) {
        reg_answer(r, 0);
        return;
    }
    rest_txn(r->a.s, reg_prepare, reg_done, r);
}

static void reg_pump(struct reg *r);

static void reg_hashed(struct au_shard *s, void *arg, const char *hash)
{
    (void)s;
    struct reg_slot *sl = arg;
    struct reg *r = sl->r;
    struct im_user_reg *it = &r->items[sl->i];
    explicit_bzero(it->password, sizeof it->password);
    if (!hash || strlen(hash) >= sizeof r->hash[0]) item_fail(it, IM_E_SYSTEM, "password hashing failed");
    else memcpy(r->hash[sl->i], hash, strlen(hash) + 1);
    r->hashing--;
    reg_pump(r);
}

static void reg_pump(struct reg *r)
{
    if (r->pumping || r->submitted) return;
    r->pumping = true;
    while (r->hashing < REST_HASH_WINDOW && r->next < r->n) {
        size_t i = r->next++;
        struct im_user_reg *it = &r->items[i];
        if (it->err.code) continue;
        r->slots[i].r = r;
        r->slots[i].i = i;
        r->hashing++;
        int rc = authpool_hash(rest_authpool(), r->a.s->id, r->a.app, it->password, strlen(it->password), reg_hashed,
                               &r->slots[i]);
        if (rc == -EAGAIN && r->hashing > 1) { /* the app's queue is full: go on when one of ours is done */
            r->hashing--;
            r->next--;
            break;
        }
        if (rc < 0) {
            r->hashing--;
            explicit_bzero(it->password, sizeof it->password);
            item_fail(it, rc == -EAGAIN ? IM_E_BUSY : IM_E_PARAM, NULL);
        }
    }
    r->pumping = false;
    if (r->hashing == 0 && r->next == r->n) reg_submit(r);
}

static void do_register(const struct http_req *req, struct http_resp *resp, void *ctx, bool admin)
{
    struct rest_ctx c;
    if (!rest_auth(req, resp, ctx, &c)) return;
    size_t bl;
    const char *body = rest_body(req, &bl);
    struct reg *r = calloc(1, sizeof *r);
    AU_ASSERT(r != NULL);
    r->admin = admin;
    size_t cap = admin ? 1 : AU_IM_BATCH_MAX;
    r->items = calloc(cap, sizeof r->items[0]);
    AU_ASSERT(r->items != NULL);
    struct im_err err;
    int rc = admin ? im_admin_reg_parse(body, bl, r->items, &err) : im_users_reg_parse(body, bl, r->items, cap, &r->n, &err);
    if (admin) r->n = 1;
    if (rc < 0) {
        rest_error(resp, err.code, err.msg);
        reg_free(r);
        return;
    }
    r->hash = calloc(r->n, sizeof r->hash[0]);
    r->slots = calloc(r->n, sizeof r->slots[0]);
    AU_ASSERT(r->hash != NULL && r->slots != NULL);
    r->now = au_wall_ms();
    /* Fast answers from the local replica (the writer checks again): taken names, repeats in the batch. */
    for (size_t i = 0; i < r->n; i++) {
        struct im_user_reg *it = &r->items[i];
        if (it->err.code) continue;
        if (im_dir_user(c.d, c.app, it->username, strlen(it->username))) {
            item_fail(it, IM_E_USER_EXIST, NULL);
            continue;
        }
        for (size_t j = 0; j < i; j++)
            if (r->items[j].err.code == 0 && strcmp(r->items[j].username, it->username) == 0) {
                item_fail(it, IM_E_USER_EXIST, "username given twice in the batch");
                break;
            }
        if (it->err.code) explicit_bzero(it->password, sizeof it->password);
    }
    rest_defer(&r->a, &c, resp);
    reg_pump(r);
}

static void post_users(const struct http_req *req, struct http_resp *resp, void *ctx) { do_register(req, resp, ctx, false); }
static void post_admins(const struct http_req *req, struct http_resp *resp, void *ctx) { do_register(req, resp, ctx, true); }

/* ================================================================== get one user */

struct uget {
    struct rest_async a;
    char name[AU_IM_USERNAME_MAX + 1];
};

static void uget_done(struct au_shard *s, void *arg, int err, const void *v, size_t vl)
{
    (void)s;
    struct uget *g = arg;
    json_t *rec = err ? NULL : json_loadb(v, vl, 0, NULL);
    if (err == STORE_ENOTFOUND) {
        rest_finish_error(&g->a, IM_E_NO_USER, NULL);
    } else if (!json_is_object(rec)) {
        rest_finish_error(&g->a, IM_E_SYSTEM, NULL);
    } else {
        struct im_user *u = malloc(sizeof *u);
        AU_ASSERT(u != NULL);
        rest_user_view(rec, g->name, u);
        char *b;
        size_t n;
        REST_RENDER(b, n, im_user_render(u, -1, RB, RC));
        free(u);
        rest_finish_take(&g->a, 200, b, n);
    }
    json_decref(rec);
    free(g);
}

/* Authenticate, check the {u} parameter and that the user exists in the local replica. */
static struct dir_user *user_param(const struct http_req *req, struct http_resp *resp, void *ctx, struct rest_ctx *c,
                                   const char **name)
{
    size_t nl;
    if (!rest_auth(req, resp, ctx, c) || !rest_username_param(req, 0, resp, name, &nl)) return NULL;
    struct dir_user *u = im_dir_user(c->d, c->app, *name, nl);
    if (!u) rest_error(resp, IM_E_NO_USER, NULL);
    return u;
}

static void get_user(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct rest_ctx c;
    const char *name;
    struct dir_user *u = user_param(req, resp, ctx, &c, &name);
    if (!u) return;
    struct uget *g = calloc(1, sizeof *g);
    AU_ASSERT(g != NULL);
    snprintf(g->name, sizeof g->name, "%s", name);
    uint8_t key[KS_KEY_MAX];
    size_t kl = rest_user_key(key, c.app, u);
    rest_defer(&g->a, &c, resp);
    store_get(rest_store(), c.s->id, key, kl, uget_done, g);
}

/* ================================================================== record updates (profile, password, forbid) */

enum upd_kind { UPD_PROFILE = 1, UPD_PASSWORD, UPD_FORBID };

struct upd {
    struct rest_async a;
    enum upd_kind kind;
    bool admin, disable;
    uint64_t now;
    char name[AU_IM_USERNAME_MAX + 1];
    char new_hash[AUTH_HASH_STR_MAX];
    struct im_profile profile;
};

static int upd_fn(struct im_dir *d, void *arg, json_t *rec, struct store_batch *b, struct im_changes *ch)
{
    (void)b;
    struct upd *u = arg;
    if (!rmw_user(d, u->a.app, u->name, u->admin, rec)) return -IM_E_NO_USER;
    switch (u->kind) {
    case UPD_PROFILE: rest_user_rec_profile(rec, &u->profile); break;
    case UPD_PASSWORD:
        json_object_set_new(rec, "password", json_string(u->new_hash));
        json_object_set_new(rec, "token_gen", json_integer((json_int_t)rest_json_u64(rec, "token_gen") + 1));
        break;
    case UPD_FORBID:
        if (u->disable && !json_is_true(json_object_get(rec, "forbidden")))
            json_object_set_new(rec, "token_gen", json_integer((json_int_t)rest_json_u64(rec, "token_gen") + 1));
        json_object_set_new(rec, "forbidden", json_boolean(u->disable));
        break;
    }
    json_object_set_new(rec, "mtime", json_integer((json_int_t)u->now));
    if (u->kind != UPD_PROFILE) user_change(ch, u->a.app, u->name, rec, u->admin);
    return 0;
}

static void upd_done(struct au_shard *s, void *arg, int err)
{
    struct upd *u = arg;
    if (!err && u->kind == UPD_FORBID && u->disable) rest_drop_user_devices(s, u->a.app, u->name);
    if (err) rest_finish_error(&u->a, rest_code_of(err), NULL);
    else rest_finish_empty(&u->a, 204);
    explicit_bzero(u, sizeof *u);
    free(u);
}

static void upd_submit(struct upd *u)
{
    uint8_t key[KS_KEY_MAX];
    size_t kl = ks_im_user(key, u->a.app, u->admin, u->name, strlen(u->name));
    rest_rmw(u->a.s, key, kl, upd_fn, upd_done, u);
}

/* Common start of the three updates; NULL when answered already. */
static struct upd *upd_new(const struct http_req *req, struct http_resp *resp, void *ctx, struct rest_ctx *c,
                           enum upd_kind kind)
{
    const char *name;
    struct dir_user *du = user_param(req, resp, ctx, c, &name);
    if (!du) return NULL;
    struct upd *u = calloc(1, sizeof *u);
    AU_ASSERT(u != NULL);
    u->kind = kind;
    u->admin = du->admin;
    u->now = au_wall_ms();
    snprintf(u->name, sizeof u->name, "%s", name);
    return u;
}

static void put_user(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct rest_ctx c;
    struct upd *u = upd_new(req, resp, ctx, &c, UPD_PROFILE);
    if (!u) return;
    size_t bl;
    const char *body = rest_body(req, &bl);
    struct im_err err;
    if (im_user_update_parse(body, bl, &u->profile, &err) < 0) {
        rest_error(resp, err.code, err.msg);
        free(u);
        return;
    }
    rest_defer(&u->a, &c, resp);
    upd_submit(u);
}

static void pw_hashed(struct au_shard *s, void *arg, const char *hash)
{
    (void)s;
    struct upd *u = arg;
    if (!hash || strlen(hash) >= sizeof u->new_hash) {
        rest_finish_error(&u->a, IM_E_SYSTEM, "password hashing failed");
        free(u);
        return;
    }
    memcpy(u->new_hash, hash, strlen(hash) + 1);
    upd_submit(u);
}

static void put_password(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct rest_ctx c;
    struct upd *u = upd_new(req, resp, ctx, &c, UPD_PASSWORD);
    if (!u) return;
    size_t bl;
    const char *body = rest_body(req, &bl);
    struct im_err err;
    char pw[AU_IM_PASSWORD_MAX + 1];
    if (im_password_parse(body, bl, pw, &err) < 0) {
        rest_error(resp, err.code, err.msg);
        free(u);
        return;
    }
    rest_defer(&u->a, &c, resp);
    int rc = authpool_hash(rest_authpool(), c.s->id, c.app, pw, strlen(pw), pw_hashed, u);
    explicit_bzero(pw, sizeof pw);
    if (rc < 0) {
        rest_finish_error(&u->a, rc == -EAGAIN ? IM_E_BUSY : IM_E_PARAM, NULL);
        free(u);
    }
}

static void put_forbidden(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct rest_ctx c;
    struct upd *u = upd_new(req, resp, ctx, &c, UPD_FORBID);
    if (!u) return;
    char v[8];
    ssize_t n = req->query ? http_query_get(req->query, req->query_len, "disable", v, sizeof v) : -1;
    if (n == 4 && memcmp(v, "true", 4) == 0) u->disable = true;
    else if (n == 5 && memcmp(v, "false", 5) == 0) u->disable = false;
    else {
        rest_error(resp, IM_E_PARAM, "disable: must be true or false");
        free(u);
        return;
    }
    rest_defer(&u->a, &c, resp);
    upd_submit(u);
}

/* ================================================================== delete */

struct udel {
    struct rest_async a;
    char name[AU_IM_USERNAME_MAX + 1];
    uint64_t uid;                 /* the deleted incarnation (set on the writer) */
    /* blacklist entries to remove: names this user blacklisted, names that blacklisted this user */
    struct im_name *mine, *theirs;
    size_t nmine, ntheirs, cap_mine, cap_theirs;
    bool scanning_theirs;
};

static void udel_free(struct udel *u)
{
    free(u->mine);
    free(u->theirs);
    free(u);
}

static bool udel_row(void *arg, const struct store_kv *kv)
{
    struct udel *u = arg;
    size_t head = 1 + 4 + 2 + strlen(u->name);
    if (kv->kl <= head || kv->kl - head > AU_IM_USERNAME_MAX) return true;
    struct im_name **v = u->scanning_theirs ? &u->theirs : &u->mine;
    size_t *n = u->scanning_theirs ? &u->ntheirs : &u->nmine, *cap = u->scanning_theirs ? &u->cap_theirs : &u->cap_mine;
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *v = realloc(*v, *cap * sizeof **v);
        AU_ASSERT(*v != NULL);
    }
    memcpy((*v)[*n].s, kv->k + head, kv->kl - head);
    (*v)[*n].s[kv->kl - head] = 0;
    (*n)++;
    return true;
}

static int udel_prepare(struct im_dir *d, void *arg, struct store_batch *b, struct im_changes *ch)
{
    struct udel *u = arg;
    uint32_t app = u->a.app;
    size_t nl = strlen(u->name);
    struct dir_user *du = im_dir_user(d, app, u->name, nl);
    if (!du) return -IM_E_NO_USER;
    u->uid = du->uid;
    uint8_t key[KS_KEY_MAX];
    store_batch_del(b, key, rest_user_key(key, app, du));
    for (uint32_t i = 0; i < du->ngids; i++) {
        store_batch_del(b, key, ks_im_str_id(key, KS_IM_UGROUP, app, u->name, nl, true, du->gids[i]));
        store_batch_del(b, key, ks_im_gmember(key, app, du->gids[i], u->name, nl));
    }
    for (size_t i = 0; i < u->nmine; i++) {
        const char *o = u->mine[i].s;
        store_batch_del(b, key, ks_im_blacklist(key, app, u->name, nl, o, strlen(o)));
        store_batch_del(b, key, ks_im_blacklist_rev(key, app, o, strlen(o), u->name, nl));
    }
    for (size_t i = 0; i < u->ntheirs; i++) {
        const char *o = u->theirs[i].s;
        store_batch_del(b, key, ks_im_blacklist_rev(key, app, u->name, nl, o, strlen(o)));
        store_batch_del(b, key, ks_im_blacklist(key, app, o, strlen(o), u->name, nl));
    }
    struct im_change *c = im_changes_add(ch, IM_CH_USER_DEL);
    c->app = app;
    snprintf(c->name, sizeof c->name, "%s", u->name);
    return 0;
}

/* After a delete: the user's per-incarnation keys (conversation list 1e, device cursors 1c, client message ids
 * 1b, all under `family | app | uid`) are removed in the background, page by page (scan, delete, scan again
 * until empty). Nothing can reach them any more (uids are never reused), so the 204 does not wait; a crash
 * half-way leaves unreachable keys that the app's deletion removes. Messages stay: they belong to the
 * conversation, which the peer still has (docs/storage.md, "Deleting users and groups"). */
static const uint8_t k_uid_families[] = { KS_IM_UCONV, KS_IM_CURSOR, KS_IM_CLIMSG };

struct upurge {
    uint32_t app;
    uint64_t uid;
    size_t fam;
    uint64_t deleted;
};

static void upurge_scan(struct au_shard *s, struct upurge *p);

static void upurge_written(struct au_shard *s, void *arg, int err)
{
    struct upurge *p = arg;
    if (err) {
        au_error("user %llu of app %u: deleting its keys failed (%d): left unreachable", (unsigned long long)p->uid,
                 p->app, err);
        free(p);
        return;
    }
    if (broker_of(s)->stopping) { /* shutdown: what is left stays unreachable (uids are never reused) */
        free(p);
        return;
    }
    upurge_scan(s, p);
}

static void upurge_scanned(struct au_shard *s, void *arg, int err, const struct store_kv *kv, uint32_t n, bool more)
{
    (void)more;
    struct upurge *p = arg;
    if (err || broker_of(s)->stopping) {
        free(p);
        return;
    }
    if (n == 0) {
        p->fam++;
        upurge_scan(s, p);
        return;
    }
    struct store_batch *b = store_batch_new();
    for (uint32_t i = 0; i < n; i++) store_batch_del(b, kv[i].k, kv[i].kl);
    p->deleted += n;
    store_write(rest_store(), s->id, b, upurge_written, p);
}

static void upurge_scan(struct au_shard *s, struct upurge *p)
{
    if (p->fam == sizeof k_uid_families) {
        au_debug("user %llu of app %u: %llu keys deleted", (unsigned long long)p->uid, p->app,
                 (unsigned long long)p->deleted);
        free(p);
        return;
    }
    uint8_t k[KS_KEY_MAX], e[KS_KEY_MAX];
    size_t kl = ks_im_uid_prefix(k, (enum ks_prefix)k_uid_families[p->fam], p->app, p->uid);
    size_t el = store_prefix_end(k, kl, e);
    store_scan(rest_store(), s->id, k, kl, e, el, REST_DEL_PAGE, 0, upurge_scanned, p);
}

static void upurge_start(struct au_shard *s, uint32_t app, uint64_t uid)
{
    if (!uid || !rest_store()) return;
    struct upurge *p = calloc(1, sizeof *p);
    AU_ASSERT(p != NULL);
    p->app = app;
    p->uid = uid;
    upurge_scan(s, p);
}

static void udel_done(struct au_shard *s, void *arg, int err)
{
    struct udel *u = arg;
    if (err) {
        rest_finish_error(&u->a, rest_code_of(err), NULL);
    } else {
        rest_drop_user_devices(s, u->a.app, u->name);
        rest_finish_empty(&u->a, 204);
        upurge_start(s, u->a.app, u->uid);
    }
    udel_free(u);
}

static void udel_scanned(struct au_shard *s, void *arg, int err)
{
    struct udel *u = arg;
    if (err) {
        rest_finish_error(&u->a, IM_E_SYSTEM, NULL);
        udel_free(u);
        return;
    }
    if (!u->scanning_theirs) {
        u->scanning_theirs = true;
        uint8_t p[KS_KEY_MAX], e[KS_KEY_MAX];
        size_t pl = ks_im_blacklist_rev(p, u->a.app, u->name, strlen(u->name), "", 0);
        size_t el = store_prefix_end(p, pl, e);
        rest_scan(s, p, pl, e, el, 0, 0, udel_row, udel_scanned, u);
        return;
    }
    rest_txn(s, udel_prepare, udel_done, u);
}

static void delete_user(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct rest_ctx c;
    const char *name;
    if (!user_param(req, resp, ctx, &c, &name)) return;
    struct udel *u = calloc(1, sizeof *u);
    AU_ASSERT(u != NULL);
    snprintf(u->name, sizeof u->name, "%s", name);
    rest_defer(&u->a, &c, resp);
    uint8_t p[KS_KEY_MAX], e[KS_KEY_MAX];
    size_t pl = ks_im_blacklist(p, c.app, name, strlen(name), "", 0);
    size_t el = store_prefix_end(p, pl, e);
    rest_scan(c.s, p, pl, e, el, 0, 0, udel_row, udel_scanned, u);
}

/* ================================================================== lists */

struct ulist {
    struct rest_async a;
    uint64_t start, total;
    size_t n, cap;
    struct im_user *users;
};

static bool ulist_row(void *arg, const struct store_kv *kv)
{
    struct ulist *l = arg;
    if (kv->kl <= 5 || kv->kl - 5 > AU_IM_USERNAME_MAX || l->n == l->cap) return l->n < l->cap;
    char name[AU_IM_USERNAME_MAX + 1];
    memcpy(name, kv->k + 5, kv->kl - 5);
    name[kv->kl - 5] = 0;
    json_t *rec = json_loadb((const char *)kv->v, kv->vl, 0, NULL);
    if (!json_is_object(rec)) {
        json_decref(rec);
        return true;
    }
    rest_user_view(rec, name, &l->users[l->n++]);
    json_decref(rec);
    return true;
}

static void ulist_done(struct au_shard *s, void *arg, int err)
{
    (void)s;
    struct ulist *l = arg;
    if (err) {
        rest_finish_error(&l->a, IM_E_SYSTEM, NULL);
    } else {
        char *b;
        size_t n;
        REST_RENDER(b, n, im_user_list_render(l->start, l->total, l->users, l->n, RB, RC));
        rest_finish_take(&l->a, 200, b, n);
    }
    free(l->users);
    free(l);
}

static void list_users_of(const struct http_req *req, struct http_resp *resp, void *ctx, bool admins)
{
    struct rest_ctx c;
    uint64_t start, count;
    if (!rest_auth(req, resp, ctx, &c) || !rest_paging(req, resp, &start, &count)) return;
    struct ulist *l = calloc(1, sizeof *l);
    AU_ASSERT(l != NULL);
    l->start = start;
    l->cap = (size_t)count;
    l->users = calloc(l->cap, sizeof l->users[0]);
    AU_ASSERT(l->users != NULL);
    l->total = rest_count_users(c.d, c.app, admins);
    rest_defer(&l->a, &c, resp);
    uint8_t p[KS_KEY_MAX], e[KS_KEY_MAX];
    size_t pl = ks_app_prefix(p, admins ? KS_IM_ADMIN : KS_IM_USER, c.app);
    size_t el = store_prefix_end(p, pl, e);
    rest_scan(c.s, p, pl, e, el, start, count, ulist_row, ulist_done, l);
}

static void list_users(const struct http_req *req, struct http_resp *resp, void *ctx) { list_users_of(req, resp, ctx, false); }
static void list_admins(const struct http_req *req, struct http_resp *resp, void *ctx) { list_users_of(req, resp, ctx, true); }

/* ================================================================== online status */

struct ustat_dev {
    uint32_t idx;
    bool online;
};

struct ustat_slot {                /* what one shard found (written by that shard only) */
    struct ustat_dev *v;
    size_t n, cap;
};

struct ustat {
    struct rest_async a;
    bool single;
    size_t n;
    struct im_name *names;
    struct au_hash idx;            /* name -> index + 1; read-only while the shards look */
    struct ustat_slot sh[AU_MAX_SHARDS];
};

static void ustat_each(struct au_shard *s, void *arg)
{
    struct ustat *st = arg;
    struct broker *b = broker_of(s);
    struct au_hash_iter it;
    au_hash_iter_init(&b->sessions, &it);
    while (au_hash_next(&b->sessions, &it)) {
        const struct session *ss = it.value;
        const char *user = ss->app == st->a.app ? im_session_user(ss) : NULL;
        if (!user) continue;
        uintptr_t i = (uintptr_t)au_hash_get(&st->idx, user, strlen(user));
        if (!i) continue;
        struct ustat_slot *sl = &st->sh[s->id];
        if (sl->n == sl->cap) {
            sl->cap = sl->cap ? sl->cap * 2 : 8;
            sl->v = realloc(sl->v, sl->cap * sizeof sl->v[0]);
            AU_ASSERT(sl->v != NULL);
        }
        sl->v[sl->n].idx = (uint32_t)(i - 1);
        sl->v[sl->n].online = ss->mc && ss->mc->state == MC_CONNECTED;
        sl->n++;
    }
}

static void ustat_done(struct au_shard *s, void *arg, int err)
{
    struct ustat *st = arg;
    (void)err;
    size_t ndev = 0;
    for (int i = 0; i < s->nshards; i++) ndev += st->sh[i].n;
    char *b;
    size_t n;
    if (st->single) {
        bool login = ndev > 0, online = false;
        for (int i = 0; i < s->nshards; i++)
            for (size_t k = 0; k < st->sh[i].n; k++) online |= st->sh[i].v[k].online;
        REST_RENDER(b, n, im_userstat_render(login, online, RB, RC));
    } else {
        /* devices grouped per name: count, then place */
        size_t *off = calloc(st->n + 1, sizeof *off);
        struct im_device_stat *dev = calloc(ndev ? ndev : 1, sizeof *dev);
        struct im_userstat *us = calloc(st->n, sizeof *us);
        AU_ASSERT(off && dev && us);
        for (int i = 0; i < s->nshards; i++)
            for (size_t k = 0; k < st->sh[i].n; k++) off[st->sh[i].v[k].idx + 1]++;
        for (size_t k = 0; k < st->n; k++) off[k + 1] += off[k];
        for (size_t k = 0; k < st->n; k++) {
            us[k].username = st->names[k].s;
            us[k].devices = dev + off[k];
        }
        for (int i = 0; i < s->nshards; i++)
            for (size_t k = 0; k < st->sh[i].n; k++) {
                uint32_t x = st->sh[i].v[k].idx;
                struct im_device_stat *d = &dev[off[x] + us[x].n_devices++];
                d->login = true;
                d->online = st->sh[i].v[k].online;
            }
        REST_RENDER(b, n, im_userstats_render(us, st->n, RB, RC));
        free(off);
        free(dev);
        free(us);
    }
    rest_finish_take(&st->a, 200, b, n);
    for (int i = 0; i < s->nshards; i++) free(st->sh[i].v);
    au_hash_free(&st->idx);
    free(st->names);
    free(st);
}

static void ustat_start(struct ustat *st, const struct rest_ctx *c, struct http_resp *resp)
{
    AU_ASSERT(au_hash_init(&st->idx, st->n * 2 + 8) == 0);
    for (size_t i = 0; i < st->n; i++)
        if (!au_hash_get(&st->idx, st->names[i].s, strlen(st->names[i].s)))
            au_hash_put(&st->idx, st->names[i].s, strlen(st->names[i].s), (void *)(uintptr_t)(i + 1));
    rest_defer(&st->a, c, resp);
    rest_fanout(c->s, ustat_each, ustat_done, st);
}

static void get_userstat(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct rest_ctx c;
    const char *name;
    if (!user_param(req, resp, ctx, &c, &name)) return;
    struct ustat *st = calloc(1, sizeof *st);
    AU_ASSERT(st != NULL);
    st->single = true;
    st->n = 1;
    st->names = calloc(1, sizeof *st->names);
    AU_ASSERT(st->names != NULL);
    snprintf(st->names[0].s, sizeof st->names[0].s, "%s", name);
    ustat_start(st, &c, resp);
}

static void post_userstat(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct rest_ctx c;
    if (!rest_auth(req, resp, ctx, &c)) return;
    size_t bl;
    const char *body = rest_body(req, &bl);
    struct ustat *st = calloc(1, sizeof *st);
    AU_ASSERT(st != NULL);
    st->names = calloc(AU_IM_BATCH_MAX, sizeof *st->names);
    AU_ASSERT(st->names != NULL);
    struct im_err err;
    if (im_usernames_parse(body, bl, st->names, AU_IM_BATCH_MAX, &st->n, &err) < 0) {
        rest_error(resp, err.code, err.msg);
        free(st->names);
        free(st);
        return;
    }
    for (size_t i = 0; i < st->n; i++)
        if (!im_dir_user(c.d, c.app, st->names[i].s, strlen(st->names[i].s))) {
            char msg[200];
            snprintf(msg, sizeof msg, "no such user: %s", st->names[i].s);
            rest_error(resp, IM_E_NO_USER, msg);
            free(st->names);
            free(st);
            return;
        }
    ustat_start(st, &c, resp);
}

/* ================================================================== dropping a user's devices */

struct drop {
    uint32_t app;
    char user[AU_IM_USERNAME_MAX + 1];
};

static void drop_each(struct au_shard *s, void *arg)
{
    struct drop *dr = arg;
    struct broker *b = broker_of(s);
    struct mqtt_conn **v = NULL;
    size_t n = 0, cap = 0;
    struct au_hash_iter it;
    au_hash_iter_init(&b->sessions, &it);
    while (au_hash_next(&b->sessions, &it)) {
        const struct session *ss = it.value;
        if (ss->app != dr->app || !ss->mc || ss->mc->state != MC_CONNECTED) continue;
        if (dr->user[0] && (!im_session_user(ss) || strcmp(im_session_user(ss), dr->user) != 0)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 4;
            v = realloc(v, cap * sizeof *v);
            AU_ASSERT(v != NULL);
        }
        v[n++] = ss->mc;
    }
    /* closing runs session code: not while walking the table */
    for (size_t i = 0; i < n; i++) {
        mqtt_send_disconnect(v[i], MQTT_RC_ADMIN_ACTION, "user forbidden or deleted");
        v[i]->state = MC_CLOSING;
        au_conn_close(v[i]->conn);
    }
    free(v);
}

static void drop_done(struct au_shard *s, void *arg, int err)
{
    (void)s;
    (void)err;
    free(arg);
}

void rest_drop_user_devices(struct au_shard *from, uint32_t app, const char *user)
{
    struct drop *dr = calloc(1, sizeof *dr);
    AU_ASSERT(dr != NULL);
    dr->app = app;
    snprintf(dr->user, sizeof dr->user, "%s", user ? user : "");
    rest_fanout(from, drop_each, drop_done, dr);
}

/* ================================================================== a user's groups */

struct ugroups {
    struct rest_async a;
    size_t n;
    uint64_t *gids;
    struct im_group *groups;
    bool *ok;
};

static size_t ugroups_key(void *arg, size_t i, uint8_t *buf)
{
    struct ugroups *g = arg;
    return ks_im_id(buf, KS_IM_GROUP, g->a.app, g->gids[i]);
}

static void ugroups_got(void *arg, size_t i, int err, const void *v, size_t vl)
{
    struct ugroups *g = arg;
    json_t *rec = err ? NULL : json_loadb(v, vl, 0, NULL);
    if (json_is_object(rec)) {
        rest_group_view(rec, g->gids[i], g->a.appkey, &g->groups[i]);
        g->ok[i] = true;
    }
    json_decref(rec);
}

static void ugroups_done(struct au_shard *s, void *arg, int err)
{
    (void)s;
    (void)err;
    struct ugroups *g = arg;
    size_t k = 0;
    for (size_t i = 0; i < g->n; i++) /* groups deleted meanwhile are left out */
        if (g->ok[i]) g->groups[k++] = g->groups[i];
    for (size_t i = 0; i < k; i++) g->groups[i].appkey = g->a.appkey;
    char *b;
    size_t n;
    REST_RENDER(b, n, im_groups_render(g->groups, k, RB, RC));
    rest_finish_take(&g->a, 200, b, n);
    free(g->gids);
    free(g->groups);
    free(g->ok);
    free(g);
}

static void get_user_groups(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct rest_ctx c;
    const char *name;
    struct dir_user *u = user_param(req, resp, ctx, &c, &name);
    if (!u) return;
    struct ugroups *g = calloc(1, sizeof *g);
    AU_ASSERT(g != NULL);
    g->n = u->ngids;
    g->gids = calloc(g->n + 1, sizeof *g->gids);
    g->groups = calloc(g->n + 1, sizeof *g->groups);
    g->ok = calloc(g->n + 1, sizeof *g->ok);
    AU_ASSERT(g->gids && g->groups && g->ok);
    if (g->n) memcpy(g->gids, u->gids, g->n * sizeof *g->gids);
    for (size_t i = 1; i < g->n; i++) /* ascending gid: the order groups were created */
        for (size_t j = i; j > 0 && g->gids[j - 1] > g->gids[j]; j--) {
            uint64_t t = g->gids[j];
            g->gids[j] = g->gids[j - 1];
            g->gids[j - 1] = t;
        }
    rest_defer(&g->a, &c, resp);
    rest_get_many(c.s, g->n, ugroups_key, ugroups_got, ugroups_done, g);
}

/* ================================================================== blacklist */

enum bl_op { BL_PUT = 1, BL_DEL, BL_GET };

struct blk {
    struct rest_async a;
    enum bl_op op;
    char owner[AU_IM_USERNAME_MAX + 1];
    uint64_t owner_uid;
    struct im_dir *d;             /* the handling shard's replica (GET: which listed names are current) */
    uint64_t *uids;               /* PUT / DELETE: the listed users' incarnations */
    size_t n;
    struct im_name *names;
    bool *present;
    struct im_user *users;        /* GET: the profiles */
    bool *ok;
};

static void blk_free(struct blk *k)
{
    free(k->uids);
    free(k->names);
    free(k->present);
    free(k->users);
    free(k->ok);
    free(k);
}

static int blk_prepare(struct im_dir *d, void *arg, struct store_batch *b, struct im_changes *ch)
{
    (void)ch;
    struct blk *k = arg;
    uint32_t app = k->a.app;
    size_t ol = strlen(k->owner);
    struct dir_user *ou = im_dir_user(d, app, k->owner, ol);
    if (!ou || ou->uid != k->owner_uid) return -IM_E_NO_USER;
    uint8_t key[KS_KEY_MAX];
    for (size_t i = 0; i < k->n; i++) {
        const char *o = k->names[i].s;
        size_t xl = strlen(o);
        if (k->op == BL_PUT) {
            struct dir_user *u = im_dir_user(d, app, o, xl);
            if (!u) return -IM_E_NO_USER;
            if (u->admin) return -IM_E_ADMIN_BLACKLIST;
            uint8_t v[KS_IM_BLACKLIST_VLEN];
            ks_im_blacklist_value(v, ou->uid, u->uid);
            store_batch_put(b, key, ks_im_blacklist(key, app, k->owner, ol, o, xl), v, sizeof v);
            store_batch_put(b, key, ks_im_blacklist_rev(key, app, o, xl, k->owner, ol), "", 0);
        } else {
            store_batch_del(b, key, ks_im_blacklist(key, app, k->owner, ol, o, xl));
            store_batch_del(b, key, ks_im_blacklist_rev(key, app, o, xl, k->owner, ol));
        }
    }
    return 0;
}

static void blk_done(struct au_shard *s, void *arg, int err)
{
    (void)s;
    struct blk *k = arg;
    if (err) rest_finish_error(&k->a, rest_code_of(err), NULL);
    else rest_finish_empty(&k->a, 204);
    blk_free(k);
}

static size_t blk_key(void *arg, size_t i, uint8_t *buf)
{
    struct blk *k = arg;
    return ks_im_blacklist(buf, k->a.app, k->owner, strlen(k->owner), k->names[i].s, strlen(k->names[i].s));
}

static void blk_got(void *arg, size_t i, int err, const void *v, size_t vl)
{
    struct blk *k = arg;
    k->present[i] = err == 0 && ks_im_blacklist_holds(v, vl, k->owner_uid, k->uids[i]); /* stale entries: absent */
}

static void blk_checked(struct au_shard *s, void *arg, int err)
{
    struct blk *k = arg;
    (void)err;
    for (size_t i = 0; i < k->n; i++) {
        bool bad = k->op == BL_PUT ? k->present[i] : !k->present[i];
        if (bad) {
            char msg[200];
            snprintf(msg, sizeof msg, "%s: %s", k->op == BL_PUT ? "already in the blacklist" : "not in the blacklist",
                     k->names[i].s);
            rest_finish_error(&k->a, k->op == BL_PUT ? IM_E_IN_BLACKLIST : IM_E_NOT_IN_BLACKLIST, msg);
            blk_free(k);
            return;
        }
    }
    rest_txn(s, blk_prepare, blk_done, k);
}

static void blacklist_change(const struct http_req *req, struct http_resp *resp, void *ctx, enum bl_op op)
{
    struct rest_ctx c;
    const char *name;
    struct dir_user *owner = user_param(req, resp, ctx, &c, &name);
    if (!owner) return;
    size_t bl;
    const char *body = rest_body(req, &bl);
    struct blk *k = calloc(1, sizeof *k);
    AU_ASSERT(k != NULL);
    k->op = op;
    k->owner_uid = owner->uid;
    snprintf(k->owner, sizeof k->owner, "%s", name);
    k->names = calloc(AU_IM_BATCH_MAX, sizeof *k->names);
    AU_ASSERT(k->names != NULL);
    struct im_err err;
    if (im_usernames_parse(body, bl, k->names, AU_IM_BATCH_MAX, &k->n, &err) < 0) {
        rest_error(resp, err.code, err.msg);
        blk_free(k);
        return;
    }
    /* duplicates in the list are harmless: keep one */
    size_t m = 0;
    for (size_t i = 0; i < k->n; i++) {
        bool dup = false;
        for (size_t j = 0; j < m && !dup; j++) dup = strcmp(k->names[j].s, k->names[i].s) == 0;
        if (!dup) k->names[m++] = k->names[i];
    }
    k->n = m;
    k->uids = calloc(k->n + 1, sizeof *k->uids);
    AU_ASSERT(k->uids != NULL);
    for (size_t i = 0; i < k->n; i++) {
        const char *o = k->names[i].s;
        struct dir_user *u = im_dir_user(c.d, c.app, o, strlen(o));
        if (u) k->uids[i] = u->uid;
        int code = 0;
        if (strcmp(o, k->owner) == 0) code = IM_E_PARAM;
        else if (!u) code = IM_E_NO_USER;
        else if (op == BL_PUT && u->admin) code = IM_E_ADMIN_BLACKLIST;
        if (code) {
            char msg[200];
            snprintf(msg, sizeof msg, "%s%s", code == IM_E_PARAM ? "a user cannot blacklist itself: " : "", o);
            rest_error(resp, code, code == IM_E_PARAM ? msg : o);
            blk_free(k);
            return;
        }
    }
    k->present = calloc(k->n, sizeof *k->present);
    AU_ASSERT(k->present != NULL);
    rest_defer(&k->a, &c, resp);
    rest_get_many(c.s, k->n, blk_key, blk_got, blk_checked, k);
}

static void put_blacklist(const struct http_req *req, struct http_resp *resp, void *ctx) { blacklist_change(req, resp, ctx, BL_PUT); }
static void del_blacklist(const struct http_req *req, struct http_resp *resp, void *ctx) { blacklist_change(req, resp, ctx, BL_DEL); }

/* GET: the blacklisted names (one scan), then their profiles. */
static size_t blk_user_key(void *arg, size_t i, uint8_t *buf)
{
    struct blk *k = arg;
    return ks_im_user(buf, k->a.app, false, k->names[i].s, strlen(k->names[i].s));
}

static void blk_user_got(void *arg, size_t i, int err, const void *v, size_t vl)
{
    struct blk *k = arg;
    json_t *rec = err ? NULL : json_loadb(v, vl, 0, NULL);
    if (json_is_object(rec)) {
        rest_user_view(rec, k->names[i].s, &k->users[i]);
        k->ok[i] = true;
    }
    json_decref(rec);
}

static void blk_users_done(struct au_shard *s, void *arg, int err)
{
    (void)s;
    (void)err;
    struct blk *k = arg;
    size_t m = 0;
    for (size_t i = 0; i < k->n; i++)
        if (k->ok[i]) k->users[m++] = k->users[i];
    char *b;
    size_t n;
    REST_RENDER(b, n, im_users_render(k->users, NULL, m, RB, RC));
    rest_finish_take(&k->a, 200, b, n);
    blk_free(k);
}

static bool blk_row(void *arg, const struct store_kv *kv)
{
    struct blk *k = arg;
    size_t head = 1 + 4 + 2 + strlen(k->owner);
    if (kv->kl <= head || kv->kl - head > AU_IM_USERNAME_MAX) return true;
    if (k->n == REST_BLACKLIST_MAX) return false;
    /* only entries between the owner and the current incarnation of the blocked name */
    struct dir_user *u = im_dir_user(k->d, k->a.app, (const char *)kv->k + head, kv->kl - head);
    if (!u || !ks_im_blacklist_holds(kv->v, kv->vl, k->owner_uid, u->uid)) return true;
    memcpy(k->names[k->n].s, kv->k + head, kv->kl - head);
    k->names[k->n].s[kv->kl - head] = 0;
    k->n++;
    return true;
}

static void blk_listed(struct au_shard *s, void *arg, int err)
{
    struct blk *k = arg;
    if (err) {
        rest_finish_error(&k->a, IM_E_SYSTEM, NULL);
        blk_free(k);
        return;
    }
    k->users = calloc(k->n + 1, sizeof *k->users);
    k->ok = calloc(k->n + 1, sizeof *k->ok);
    AU_ASSERT(k->users && k->ok);
    rest_get_many(s, k->n, blk_user_key, blk_user_got, blk_users_done, k);
}

static void get_blacklist(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct rest_ctx c;
    const char *name;
    struct dir_user *owner = user_param(req, resp, ctx, &c, &name);
    if (!owner) return;
    struct blk *k = calloc(1, sizeof *k);
    AU_ASSERT(k != NULL);
    k->op = BL_GET;
    k->owner_uid = owner->uid;
    k->d = c.d;
    snprintf(k->owner, sizeof k->owner, "%s", name);
    k->names = calloc(REST_BLACKLIST_MAX, sizeof *k->names);
    AU_ASSERT(k->names != NULL);
    rest_defer(&k->a, &c, resp);
    uint8_t p[KS_KEY_MAX], e[KS_KEY_MAX];
    size_t pl = ks_im_blacklist(p, c.app, name, strlen(name), "", 0);
    size_t el = store_prefix_end(p, pl, e);
    rest_scan(c.s, p, pl, e, el, 0, REST_BLACKLIST_MAX, blk_row, blk_listed, k);
}

/* ================================================================== routes */

static const struct http_route_def routes[] = {
    { "POST", "/v1/users/", post_users },
    { "GET", "/v1/users/", list_users },
    { "POST", "/v1/admins/", post_admins },
    { "GET", "/v1/admins/", list_admins },
    { "GET", "/v1/users/{username}", get_user },
    { "PUT", "/v1/users/{username}", put_user },
    { "DELETE", "/v1/users/{username}", delete_user },
    { "PUT", "/v1/users/{username}/password", put_password },
    { "GET", "/v1/users/{username}/userstat", get_userstat },
    { "POST", "/v1/users/userstat", post_userstat },
    { "PUT", "/v1/users/{username}/forbidden", put_forbidden },
    { "GET", "/v1/users/{username}/groups/", get_user_groups },
    { "PUT", "/v1/users/{username}/blacklist", put_blacklist },
    { "DELETE", "/v1/users/{username}/blacklist", del_blacklist },
    { "GET", "/v1/users/{username}/blacklist", get_blacklist },
};
const struct http_routes rest_users_routes = { routes, AU_ARRAY_LEN(routes) };
