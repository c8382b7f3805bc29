/* rest_groups.c - JMessage REST v1: groups (create, get, update, delete, list) and their members (add,
 * remove, list). docs/rest-api.md §5.
 *
 * Membership lives in the directory replica (every shard knows who is in which group); group records
 * (name, desc, avatar, times) in the store. Creation, deletion and member changes are directory
 * transactions validated on the writer's replica, which is where the limits are enforced
 * (im_max_group_members, im_max_groups_per_user). The members concerned get group events through the
 * message pipeline (im_send, IM_KIND_EVENT) once the change is durable. */
#include "gateway/im/rest_internal.h"

#include "gateway/im/im.h"

#include <stdarg.h>

/* ================================================================== helpers */

static uint32_t max_members(void)
{
    const struct au_config *cfg = rest_cfg();
    return cfg && cfg->im_max_group_members ? cfg->im_max_group_members : AU_IM_MAX_GROUP_MEMBERS;
}

static uint32_t max_groups_per_user(void)
{
    const struct au_config *cfg = rest_cfg();
    return cfg && cfg->im_max_groups_per_user ? cfg->im_max_groups_per_user : AU_IM_MAX_GROUPS_PER_USER;
}

/* Error detail produced on the writer (read by the submitting shard after done). */
struct gerr {
    char msg[200];
};

static int gfail(struct gerr *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int gfail(struct gerr *e, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -code;
}

static void ev_sent(struct au_shard *s, void *arg, int err, uint64_t msgid, uint64_t ctime_ms)
{
    (void)s, (void)arg, (void)msgid, (void)ctime_ms;
    if (err < 0 && err != IM_ECANCELED) au_warn("rest: a group event could not be stored (%d)", err);
}

/* Deliver a group event to the group's members (as the pipeline resolves them) and to `extra`. */
static void group_event(struct au_shard *s, uint32_t app, uint64_t gid, enum im_event_type type, const char *group_name,
                        const char *const *names, size_t n, const char *const *extra, size_t nextra)
{
    struct im_event ev = {
        .type = type,
        .gid = gid,
        .ctime_ms = au_wall_ms(),
        .group_name = group_name,
        .usernames = names,
        .n_usernames = n,
    };
    struct im_send_req *r = calloc(1, sizeof *r);
    AU_ASSERT(r != NULL);
    r->app = app;
    r->kind = IM_KIND_EVENT;
    r->target_group = 1;
    r->gid = gid;
    char *json;
    size_t jl;
    REST_RENDER(json, jl, im_event_render(&ev, 0, RB, RC));
    r->json = json;
    r->json_len = jl;
    size_t el = 0;
    for (size_t i = 0; i < nextra; i++) el += strlen(extra[i]) + 1;
    if (el) {
        r->extra_recipients = malloc(el);
        AU_ASSERT(r->extra_recipients != NULL);
        size_t o = 0;
        for (size_t i = 0; i < nextra; i++) {
            size_t l = strlen(extra[i]) + 1;
            memcpy(r->extra_recipients + o, extra[i], l);
            o += l;
        }
        r->extra_len = el;
    }
    im_send(s, r, ev_sent, NULL);
}

static void put_membership(struct store_batch *b, struct im_changes *ch, uint32_t app, uint64_t gid, const char *name,
                           bool add)
{
    uint8_t key[KS_KEY_MAX];
    size_t nl = strlen(name);
    if (add) {
        store_batch_put(b, key, ks_im_gmember(key, app, gid, name, nl), "", 0);
        store_batch_put(b, key, ks_im_str_id(key, KS_IM_UGROUP, app, name, nl, true, gid), "", 0);
    } else {
        store_batch_del(b, key, ks_im_gmember(key, app, gid, name, nl));
        store_batch_del(b, key, ks_im_str_id(key, KS_IM_UGROUP, app, name, nl, true, gid));
    }
    struct im_change *c = im_changes_add(ch, add ? IM_CH_MEMBER_ADD : IM_CH_MEMBER_DEL);
    c->app = app;
    c->gid = gid;
    snprintf(c->name, sizeof c->name, "%s", name);
}

static void group_put_change(struct im_changes *ch, uint32_t app, uint64_t gid, const char *owner, const char *name,
                             uint32_t maxm)
{
    struct im_change *c = im_changes_add(ch, IM_CH_GROUP_PUT);
    c->app = app;
    c->gid = gid;
    c->max_members = maxm;
    snprintf(c->name, sizeof c->name, "%s", owner);
    snprintf(c->str, sizeof c->str, "%s", name);
}

/* ================================================================== create */

struct gcreate {
    struct rest_async a;
    struct gerr e;
    uint64_t gid, now;
    uint32_t max;
    struct im_group_create g;
};

static int gcreate_prepare(struct im_dir *d, void *arg, struct store_batch *b, struct im_changes *ch)
{
    struct gcreate *gc = arg;
    struct im_group_create *g = &gc->g;
    uint32_t app = gc->a.app;
    if (!im_dir_app(d, app)) return -IM_E_AUTH_FAILED;
    struct dir_user *owner = im_dir_user(d, app, g->owner, strlen(g->owner));
    if (!owner) return gfail(&gc->e, IM_E_NO_USER, "owner_username: no such user: %s", g->owner);
    if (1 + g->n_members > gc->max) return gfail(&gc->e, IM_E_GROUP_FULL, "more members than the group limit (%u)", gc->max);
    uint32_t maxg = max_groups_per_user();
    if (owner->ngids >= maxg) return gfail(&gc->e, IM_E_USER_GROUPS_FULL, "%s is in too many groups", g->owner);
    for (size_t i = 0; i < g->n_members; i++) {
        struct dir_user *u = im_dir_user(d, app, g->members[i].s, strlen(g->members[i].s));
        if (!u) return gfail(&gc->e, IM_E_NO_USER, "members_username: no such user: %s", g->members[i].s);
        if (u->ngids >= maxg) return gfail(&gc->e, IM_E_USER_GROUPS_FULL, "%s is in too many groups", g->members[i].s);
    }
    gc->gid = im_dir_next_id(d, app, "gid", b);
    json_t *rec = json_object();
    json_object_set_new(rec, "gid", json_integer((json_int_t)gc->gid));
    json_object_set_new(rec, "owner_username", json_string(g->owner));
    json_object_set_new(rec, "name", json_string(g->name));
    json_object_set_new(rec, "desc", json_string(g->desc));
    json_object_set_new(rec, "avatar", json_string(g->avatar));
    json_object_set_new(rec, "max_member_count", json_integer(gc->max));
    json_object_set_new(rec, "ctime", json_integer((json_int_t)gc->now));
    json_object_set_new(rec, "mtime", json_integer((json_int_t)gc->now));
    json_object_set_new(rec, "flag", json_integer(g->flag));
    uint8_t key[KS_KEY_MAX];
    rest_put_json(b, key, ks_im_id(key, KS_IM_GROUP, app, gc->gid), rec);
    json_decref(rec);
    group_put_change(ch, app, gc->gid, g->owner, g->name, gc->max);
    put_membership(b, ch, app, gc->gid, g->owner, true);
    for (size_t i = 0; i < g->n_members; i++) put_membership(b, ch, app, gc->gid, g->members[i].s, true);
    return 0;
}

static void gcreate_done(struct au_shard *s, void *arg, int err)
{
    struct gcreate *gc = arg;
    if (err) {
        rest_finish_error(&gc->a, rest_code_of(err), gc->e.msg[0] ? gc->e.msg : NULL);
        free(gc);
        return;
    }
    struct im_group v = { .gid = gc->gid, .flag = gc->g.flag, .max_members = gc->max, .ctime_ms = gc->now,
                          .mtime_ms = gc->now };
    snprintf(v.owner, sizeof v.owner, "%s", gc->g.owner);
    snprintf(v.name, sizeof v.name, "%s", gc->g.name);
    snprintf(v.desc, sizeof v.desc, "%s", gc->g.desc);
    snprintf(v.avatar, sizeof v.avatar, "%s", gc->g.avatar);
    char *b;
    size_t n;
    REST_RENDER(b, n, im_group_created_render(&v, gc->g.members, gc->g.n_members, RB, RC));
    rest_finish_take(&gc->a, 201, b, n);
    const char **names = calloc(gc->g.n_members + 1, sizeof *names);
    AU_ASSERT(names != NULL);
    names[0] = gc->g.owner;
    for (size_t i = 0; i < gc->g.n_members; i++) names[i + 1] = gc->g.members[i].s;
    group_event(s, gc->a.app, gc->gid, IM_EV_CREATE_GROUP, gc->g.name, names, gc->g.n_members + 1, NULL, 0);
    free(names);
    free(gc);
}

static void post_group(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct rest_ctx c;
    if (!rest_auth(req, resp, ctx, &c)) return;
    size_t bl;
    const char *body = rest_body(req, &bl);
    struct gcreate *gc = calloc(1, sizeof *gc);
    AU_ASSERT(gc != NULL);
    struct im_err err;
    if (im_group_create_parse(body, bl, &gc->g, &err) < 0) {
        rest_error(resp, err.code, err.msg);
        free(gc);
        return;
    }
    /* the owner is a member anyway: a listed owner is not a second one */
    size_t m = 0;
    for (size_t i = 0; i < gc->g.n_members; i++)
        if (strcmp(gc->g.members[i].s, gc->g.owner) != 0) gc->g.members[m++] = gc->g.members[i];
    gc->g.n_members = m;
    gc->max = max_members();
    gc->now = au_wall_ms();
    if (1 + m > gc->max) {
        rest_error(resp, IM_E_GROUP_FULL, "more members than the group limit");
        free(gc);
        return;
    }
    rest_defer(&gc->a, &c, resp);
    rest_txn(c.s, gcreate_prepare, gcreate_done, gc);
}

/* ================================================================== get */

struct gget {
    struct rest_async a;
    uint64_t gid;
};

static void gget_done(struct au_shard *s, void *arg, int err, const void *v, size_t vl)
{
    (void)s;
    struct gget *g = arg;
    json_t *rec = err ? NULL : json_loadb(v, vl, 0, NULL);
    if (err == STORE_ENOTFOUND) {
        rest_finish_error(&g->a, IM_E_NO_GROUP, NULL);
    } else if (!json_is_object(rec)) {
        rest_finish_error(&g->a, IM_E_SYSTEM, NULL);
    } else {
        struct im_group view;
        rest_group_view(rec, g->gid, g->a.appkey, &view);
        char *b;
        size_t n;
        REST_RENDER(b, n, im_group_render(&view, RB, RC));
        rest_finish_take(&g->a, 200, b, n);
    }
    json_decref(rec);
    free(g);
}

static void get_group(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct rest_ctx c;
    uint64_t gid;
    if (!rest_group_param(req, resp, ctx, &c, &gid)) return;
    struct gget *g = calloc(1, sizeof *g);
    AU_ASSERT(g != NULL);
    g->gid = gid;
    rest_defer(&g->a, &c, resp);
    uint8_t key[KS_KEY_MAX];
    store_get(rest_store(), c.s->id, key, ks_im_id(key, KS_IM_GROUP, c.app, gid), gget_done, g);
}

/* ================================================================== update */

struct gupd {
    struct rest_async a;
    uint64_t gid, now;
    struct im_group_update u;
    char name[AU_IM_GROUP_NAME_MAX + 1]; /* after the update (event) */
};

static int gupd_fn(struct im_dir *d, void *arg, json_t *rec, struct store_batch *b, struct im_changes *ch)
{
    (void)b;
    struct gupd *gu = arg;
    struct dir_group *g = im_dir_group(d, gu->a.app, gu->gid);
    if (!g || !rec) return -IM_E_NO_GROUP;
    if (gu->u.set & IM_GF_NAME) json_object_set_new(rec, "name", json_string(gu->u.name));
    if (gu->u.set & IM_GF_DESC) json_object_set_new(rec, "desc", json_string(gu->u.desc));
    if (gu->u.set & IM_GF_AVATAR) json_object_set_new(rec, "avatar", json_string(gu->u.avatar));
    json_object_set_new(rec, "mtime", json_integer((json_int_t)gu->now));
    snprintf(gu->name, sizeof gu->name, "%s", rest_json_str(rec, "name"));
    group_put_change(ch, gu->a.app, gu->gid, rest_json_str(rec, "owner_username"), gu->name, g->max_members);
    return 0;
}

static void gupd_done(struct au_shard *s, void *arg, int err)
{
    struct gupd *gu = arg;
    if (err) {
        rest_finish_error(&gu->a, rest_code_of(err), NULL);
    } else {
        rest_finish_empty(&gu->a, 204);
        group_event(s, gu->a.app, gu->gid, IM_EV_UPDATE_GROUP, gu->name, NULL, 0, NULL, 0);
    }
    free(gu);
}

static void put_group(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct rest_ctx c;
    uint64_t gid;
    if (!rest_group_param(req, resp, ctx, &c, &gid)) return;
    struct gupd *gu = calloc(1, sizeof *gu);
    AU_ASSERT(gu != NULL);
    size_t bl;
    const char *body = rest_body(req, &bl);
    struct im_err err;
    if (im_group_update_parse(body, bl, &gu->u, &err) < 0) {
        rest_error(resp, err.code, err.msg);
        free(gu);
        return;
    }
    gu->gid = gid;
    gu->now = au_wall_ms();
    rest_defer(&gu->a, &c, resp);
    uint8_t key[KS_KEY_MAX];
    rest_rmw(c.s, key, ks_im_id(key, KS_IM_GROUP, c.app, gid), gupd_fn, gupd_done, gu);
}

/* ================================================================== delete */

struct gdel {
    struct rest_async a;
    uint64_t gid;
    size_t n;
    struct im_name *members;      /* filled on the writer: who gets the delete_group event */
};

static int gdel_prepare(struct im_dir *d, void *arg, struct store_batch *b, struct im_changes *ch)
{
    struct gdel *gd = arg;
    uint32_t app = gd->a.app;
    struct dir_group *g = im_dir_group(d, app, gd->gid);
    if (!g) return -IM_E_NO_GROUP;
    gd->members = calloc(g->nmembers + 1, sizeof *gd->members);
    AU_ASSERT(gd->members != NULL);
    uint8_t key[KS_KEY_MAX];
    store_batch_del(b, key, ks_im_id(key, KS_IM_GROUP, app, gd->gid));
    for (uint32_t i = 0; i < g->nmembers; i++) {
        const char *name = im_user_name(g->members[i]);
        snprintf(gd->members[gd->n++].s, sizeof gd->members[0].s, "%s", name);
        store_batch_del(b, key, ks_im_gmember(key, app, gd->gid, name, strlen(name)));
        store_batch_del(b, key, ks_im_str_id(key, KS_IM_UGROUP, app, name, strlen(name), true, gd->gid));
    }
    struct im_change *c = im_changes_add(ch, IM_CH_GROUP_DEL);
    c->app = app;
    c->gid = gd->gid;
    return 0;
}

static void gdel_done(struct au_shard *s, void *arg, int err)
{
    struct gdel *gd = arg;
    if (err) {
        rest_finish_error(&gd->a, rest_code_of(err), NULL);
    } else {
        rest_finish_empty(&gd->a, 204);
        const char **names = calloc(gd->n + 1, sizeof *names);
        AU_ASSERT(names != NULL);
        for (size_t i = 0; i < gd->n; i++) names[i] = gd->members[i].s;
        group_event(s, gd->a.app, gd->gid, IM_EV_DELETE_GROUP, NULL, NULL, 0, names, gd->n);
        free(names);
    }
    free(gd->members);
    free(gd);
}

static void delete_group(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct rest_ctx c;
    uint64_t gid;
    if (!rest_group_param(req, resp, ctx, &c, &gid)) return;
    struct gdel *gd = calloc(1, sizeof *gd);
    AU_ASSERT(gd != NULL);
    gd->gid = gid;
    rest_defer(&gd->a, &c, resp);
    rest_txn(c.s, gdel_prepare, gdel_done, gd);
}

/* ================================================================== add / remove members */

struct gmem {
    struct rest_async a;
    struct gerr e;
    uint64_t gid;
    struct im_members_update m;
};

static int gmem_prepare(struct im_dir *d, void *arg, struct store_batch *b, struct im_changes *ch)
{
    struct gmem *gm = arg;
    uint32_t app = gm->a.app;
    struct dir_group *g = im_dir_group(d, app, gm->gid);
    if (!g) return -IM_E_NO_GROUP;
    for (size_t i = 0; i < gm->m.n_remove; i++) {
        const char *n = gm->m.remove[i].s;
        struct dir_user *u = im_dir_user(d, app, n, strlen(n));
        if (!u) return gfail(&gm->e, IM_E_NO_USER, "remove: no such user: %s", n);
        if (!im_dir_is_member(g, u)) return gfail(&gm->e, IM_E_REMOVE_NOT_MEMBER, "remove: not a member: %s", n);
        if (g->owner == u)
            return gfail(&gm->e, IM_E_PARAM, "remove: %s is the owner (delete the group instead)", n);
    }
    uint32_t maxg = max_groups_per_user();
    for (size_t i = 0; i < gm->m.n_add; i++) {
        const char *n = gm->m.add[i].s;
        struct dir_user *u = im_dir_user(d, app, n, strlen(n));
        if (!u) return gfail(&gm->e, IM_E_NO_USER, "add: no such user: %s", n);
        if (im_dir_is_member(g, u)) return gfail(&gm->e, IM_E_MEMBER_REPEAT, "add: already a member: %s", n);
        if (u->ngids >= maxg) return gfail(&gm->e, IM_E_USER_GROUPS_FULL, "add: %s is in too many groups", n);
    }
    uint32_t maxm = g->max_members ? g->max_members : max_members();
    if ((uint64_t)g->nmembers - gm->m.n_remove + gm->m.n_add > maxm)
        return gfail(&gm->e, IM_E_GROUP_FULL, "the group would have more than %u members", maxm);
    for (size_t i = 0; i < gm->m.n_remove; i++) put_membership(b, ch, app, gm->gid, gm->m.remove[i].s, false);
    for (size_t i = 0; i < gm->m.n_add; i++) put_membership(b, ch, app, gm->gid, gm->m.add[i].s, true);
    return 0;
}

static void gmem_done(struct au_shard *s, void *arg, int err)
{
    struct gmem *gm = arg;
    if (err) {
        rest_finish_error(&gm->a, rest_code_of(err), gm->e.msg[0] ? gm->e.msg : NULL);
        free(gm);
        return;
    }
    rest_finish_empty(&gm->a, 204);
    const char **names = calloc(AU_IM_MAX_GROUP_MEMBERS + 1, sizeof *names);
    AU_ASSERT(names != NULL);
    if (gm->m.n_remove) {
        for (size_t i = 0; i < gm->m.n_remove; i++) names[i] = gm->m.remove[i].s;
        group_event(s, gm->a.app, gm->gid, IM_EV_REMOVE_MEMBERS, NULL, names, gm->m.n_remove, names, gm->m.n_remove);
    }
    if (gm->m.n_add) {
        for (size_t i = 0; i < gm->m.n_add; i++) names[i] = gm->m.add[i].s;
        group_event(s, gm->a.app, gm->gid, IM_EV_ADD_MEMBERS, NULL, names, gm->m.n_add, NULL, 0);
    }
    free(names);
    free(gm);
}

static void post_members(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct rest_ctx c;
    uint64_t gid;
    if (!rest_group_param(req, resp, ctx, &c, &gid)) return;
    struct gmem *gm = calloc(1, sizeof *gm);
    AU_ASSERT(gm != NULL);
    size_t bl;
    const char *body = rest_body(req, &bl);
    struct im_err err;
    if (im_members_update_parse(body, bl, &gm->m, &err) < 0) {
        rest_error(resp, err.code, err.msg);
        free(gm);
        return;
    }
    gm->gid = gid;
    rest_defer(&gm->a, &c, resp);
    rest_txn(c.s, gmem_prepare, gmem_done, gm);
}

/* ================================================================== list members */

struct gmlist {
    struct rest_async a;
    size_t n;
    struct im_name *names;
    bool *admin, *ok;
    int *flags;
    struct im_user *users;
};

static size_t gmlist_key(void *arg, size_t i, uint8_t *buf)
{
    struct gmlist *l = arg;
    return ks_im_user(buf, l->a.app, l->admin[i], l->names[i].s, strlen(l->names[i].s));
}

static void gmlist_got(void *arg, size_t i, int err, const void *v, size_t vl)
{
    struct gmlist *l = arg;
    json_t *rec = err ? NULL : json_loadb(v, vl, 0, NULL);
    if (json_is_object(rec)) {
        rest_user_view(rec, l->names[i].s, &l->users[i]);
        l->ok[i] = true;
    }
    json_decref(rec);
}

static void gmlist_done(struct au_shard *s, void *arg, int err)
{
    (void)s, (void)err;
    struct gmlist *l = arg;
    size_t m = 0;
    for (size_t i = 0; i < l->n; i++)
        if (l->ok[i]) {
            l->users[m] = l->users[i];
            l->flags[m++] = l->flags[i];
        }
    char *b;
    size_t n;
    REST_RENDER(b, n, im_users_render(l->users, l->flags, m, RB, RC));
    rest_finish_take(&l->a, 200, b, n);
    free(l->names);
    free(l->admin);
    free(l->ok);
    free(l->flags);
    free(l->users);
    free(l);
}

static void get_members(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct rest_ctx c;
    uint64_t gid;
    struct dir_group *g = rest_group_param(req, resp, ctx, &c, &gid);
    if (!g) return;
    struct gmlist *l = calloc(1, sizeof *l);
    AU_ASSERT(l != NULL);
    size_t cap = g->nmembers + 1;
    l->names = calloc(cap, sizeof *l->names);
    l->admin = calloc(cap, sizeof *l->admin);
    l->ok = calloc(cap, sizeof *l->ok);
    l->flags = calloc(cap, sizeof *l->flags);
    l->users = calloc(cap, sizeof *l->users);
    AU_ASSERT(l->names && l->admin && l->ok && l->flags && l->users);
    /* the owner first, then the others by name */
    if (g->owner && im_dir_is_member(g, g->owner)) {
        snprintf(l->names[0].s, sizeof l->names[0].s, "%s", im_user_name(g->owner));
        l->admin[0] = g->owner->admin;
        l->flags[0] = 1;
        l->n = 1;
    }
    size_t first = l->n;
    for (uint32_t i = 0; i < g->nmembers; i++) {
        struct dir_user *u = g->members[i];
        if (u == g->owner) continue;
        size_t k = l->n++;
        snprintf(l->names[k].s, sizeof l->names[k].s, "%s", im_user_name(u));
        l->admin[k] = u->admin;
        for (; k > first && strcmp(l->names[k - 1].s, l->names[k].s) > 0; k--) {
            struct im_name t = l->names[k];
            bool ta = l->admin[k];
            l->names[k] = l->names[k - 1];
            l->admin[k] = l->admin[k - 1];
            l->names[k - 1] = t;
            l->admin[k - 1] = ta;
        }
    }
    rest_defer(&l->a, &c, resp);
    rest_get_many(c.s, l->n, gmlist_key, gmlist_got, gmlist_done, l);
}

/* ================================================================== list groups */

struct glist {
    struct rest_async a;
    uint64_t start, total;
    size_t n, cap;
    struct im_group *groups;
};

static bool glist_row(void *arg, const struct store_kv *kv)
{
    struct glist *l = arg;
    if (kv->kl != 13 || l->n == l->cap) return l->n < l->cap;
    uint64_t gid = ((uint64_t)au_rd32(kv->k + 5) << 32) | au_rd32(kv->k + 9);
    json_t *rec = json_loadb((const char *)kv->v, kv->vl, 0, NULL);
    if (json_is_object(rec)) rest_group_view(rec, gid, l->a.appkey, &l->groups[l->n++]);
    json_decref(rec);
    return true;
}

static void glist_done(struct au_shard *s, void *arg, int err)
{
    (void)s;
    struct glist *l = arg;
    if (err) {
        rest_finish_error(&l->a, IM_E_SYSTEM, NULL);
    } else {
        for (size_t i = 0; i < l->n; i++) l->groups[i].appkey = l->a.appkey;
        char *b;
        size_t n;
        REST_RENDER(b, n, im_group_list_render(l->start, l->total, l->groups, l->n, RB, RC));
        rest_finish_take(&l->a, 200, b, n);
    }
    free(l->groups);
    free(l);
}

static void list_groups(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct rest_ctx c;
    uint64_t start, count;
    if (!rest_auth(req, resp, ctx, &c) || !rest_paging(req, resp, &start, &count)) return;
    struct glist *l = calloc(1, sizeof *l);
    AU_ASSERT(l != NULL);
    l->start = start;
    l->cap = (size_t)count;
    l->groups = calloc(l->cap, sizeof *l->groups);
    AU_ASSERT(l->groups != NULL);
    l->total = rest_count_groups(c.d, c.app);
    rest_defer(&l->a, &c, resp);
    uint8_t p[KS_KEY_MAX], e[KS_KEY_MAX];
    size_t pl = ks_app_prefix(p, KS_IM_GROUP, c.app);
    size_t el = store_prefix_end(p, pl, e);
    rest_scan(c.s, p, pl, e, el, start, count, glist_row, glist_done, l);
}

/* ================================================================== routes */

static const struct http_route_def routes[] = {
    { "POST", "/v1/groups/", post_group },
    { "GET", "/v1/groups/", list_groups },
    { "GET", "/v1/groups/{gid}", get_group },
    { "PUT", "/v1/groups/{gid}", put_group },
    { "DELETE", "/v1/groups/{gid}", delete_group },
    { "POST", "/v1/groups/{gid}/members", post_members },
    { "GET", "/v1/groups/{gid}/members/", get_members },
};
const struct http_routes rest_groups_routes = { routes, AU_ARRAY_LEN(routes) };
