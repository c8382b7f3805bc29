/* dir.c - the IM directory replica and its write transactions (see dir.h).
 *
 * On the writer shard a transaction's changes are applied to the writer's replica right after `prepare`
 * (so the next transaction, prepared before the first one's commit completes, sees it: one answer to
 * "does bob exist?"), and all transactions queued in one loop iteration share one store commit. The
 * other shards apply the changes when the commit is durable. A failed commit (disk error) is reported to
 * every caller, and the writer's replica is rolled back: each transaction records, at prepare, the changes
 * that restore what it changed (txn_undo); after a failure the writer refuses new transactions until those in
 * flight have completed, then applies the failed ones' undo changes, latest first, and accepts again. */
#include "gateway/im/dir.h"
#include "gateway/mqtt/broker.h"
#include "gateway/im/imconn.h"
#include "store/keyspace.h"
#include "core/log.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

struct im_counter {
    uint64_t value;
    uint8_t key[64];
    size_t kl;
};

struct im_dir_shard {
    struct im_dir dir;
    struct store *st;
    struct au_hash counters;             /* writer only: counter key -> im_counter */
    /* writer only: rolling back the replica after failed commits */
    uint32_t inflight;                   /* transactions submitted to the store, not completed */
    bool rollback;                       /* a commit failed: refuse new transactions until the undo is applied */
    struct im_changes undo;              /* failed transactions' undo changes, applied from the end */
};

struct im_dir *im_dir_of(struct au_shard *s) { return &s->slot.im_dir->dir; }
static struct im_dir_shard *dshard(struct au_shard *s) { return s->slot.im_dir; }

/* Bounded copy that always terminates (snprintf would warn about truncation it cannot prove away). */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* ------------------------------------------------------------------ lookups */

struct dir_app *im_dir_app(struct im_dir *d, uint32_t id) { return au_hash_get_u64(&d->apps, id); }

struct dir_app *im_dir_app_by_key(struct im_dir *d, const char *key, size_t len)
{
    if (len != IM_APPKEY_LEN) return NULL;
    return au_hash_get(&d->appkeys, key, len);
}

static size_t user_key(char *out, uint32_t app, const char *name, size_t len)
{
    memcpy(out, &app, 4);
    memcpy(out + 4, name, len);
    out[4 + len] = 0;
    return 4 + len;
}

struct dir_user *im_dir_user(struct im_dir *d, uint32_t app, const char *name, size_t len)
{
    char key[4 + 129];
    if (len > 128) return NULL;
    return au_hash_get(&d->users, key, user_key(key, app, name, len));
}

/* gids are allocated below 2^40 (im_dir_next_id), so (app, gid) -> u64 is exact for 2^24 apps. */
static uint64_t group_key(uint32_t app, uint64_t gid) { return ((uint64_t)app << 40) | (gid & ((1ull << 40) - 1)); }

struct dir_group *im_dir_group(struct im_dir *d, uint32_t app, uint64_t gid)
{
    struct dir_group *g = au_hash_get_u64(&d->groups, group_key(app, gid));
    return g && g->app == app && g->gid == gid ? g : NULL;
}

bool im_dir_is_member(const struct dir_group *g, const struct dir_user *u)
{
    for (uint32_t i = 0; i < u->ngids; i++)
        if (u->gids[i] == g->gid) return true;
    return false;
}

/* ------------------------------------------------------------------ applying changes */

struct im_change *im_changes_add(struct im_changes *c, uint8_t type)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 8;
        c->v = realloc(c->v, sizeof *c->v * c->cap);
        AU_ASSERT(c->v != NULL);
    }
    struct im_change *ch = &c->v[c->n++];
    memset(ch, 0, sizeof *ch);
    ch->type = type;
    return ch;
}

bool im_dir_is_muted(const struct dir_group *g, const struct dir_user *u)
{
    for (uint32_t i = 0; i < g->nmuted; i++)
        if (g->muted[i] == u) return true;
    return false;
}

static void unmute(struct dir_group *g, const struct dir_user *u)
{
    for (uint32_t i = 0; i < g->nmuted; i++)
        if (g->muted[i] == u) {
            g->muted[i] = g->muted[--g->nmuted];
            return;
        }
}

static void user_drop_gid(struct dir_user *u, uint64_t gid)
{
    for (uint32_t i = 0; i < u->ngids; i++)
        if (u->gids[i] == gid) {
            u->gids[i] = u->gids[--u->ngids];
            return;
        }
}

static void group_drop_member(struct dir_group *g, struct dir_user *u)
{
    unmute(g, u);
    for (uint32_t i = 0; i < g->nmembers; i++)
        if (g->members[i] == u) {
            g->members[i] = g->members[--g->nmembers];
            return;
        }
}

static void member_add(struct dir_group *g, struct dir_user *u)
{
    if (im_dir_is_member(g, u)) return;
    if (g->nmembers == g->cap_members) {
        g->cap_members = g->cap_members ? g->cap_members * 2 : 8;
        g->members = realloc(g->members, sizeof *g->members * g->cap_members);
        AU_ASSERT(g->members != NULL);
    }
    g->members[g->nmembers++] = u;
    if (u->ngids == u->cap_gids) {
        u->cap_gids = u->cap_gids ? u->cap_gids * 2 : 4;
        u->gids = realloc(u->gids, sizeof *u->gids * u->cap_gids);
        AU_ASSERT(u->gids != NULL);
    }
    u->gids[u->ngids++] = g->gid;
}

static void group_free(struct im_dir *d, struct dir_group *g)
{
    for (uint32_t i = 0; i < g->nmembers; i++) user_drop_gid(g->members[i], g->gid);
    au_hash_del_u64(&d->groups, group_key(g->app, g->gid));
    free(g->members);
    free(g->muted);
    free(g);
    d->ngroups--;
}

static void user_free(struct im_dir *d, struct dir_user *u)
{
    while (u->ngids) {
        struct dir_group *g = im_dir_group(d, u->app, u->gids[u->ngids - 1]);
        u->ngids--;
        if (g) {
            group_drop_member(g, u);
            if (g->owner == u) g->owner = NULL;
        }
    }
    au_hash_del(&d->users, u->key, 4u + u->name_len);
    free(u->gids);
    free(u->key);
    free(u);
    d->nusers--;
}

void im_dir_apply(struct im_dir *d, const struct im_change *ch)
{
    switch (ch->type) {
    case IM_CH_APP_PUT: {
        struct dir_app *a = im_dir_app(d, ch->app);
        if (!a) {
            a = calloc(1, sizeof *a);
            AU_ASSERT(a != NULL);
            a->id = ch->app;
            au_hash_put_u64(&d->apps, a->id, a);
        } else {
            au_hash_del(&d->appkeys, a->key, IM_APPKEY_LEN);
        }
        copy_str(a->key, sizeof a->key, ch->str);
        copy_str(a->secret_hash, sizeof a->secret_hash, ch->str2);
        copy_str(a->name, sizeof a->name, ch->name);
        a->ctime_ms = ch->ctime_ms;
        au_hash_put(&d->appkeys, a->key, IM_APPKEY_LEN, a);
        break;
    }
    case IM_CH_APP_DEL: {
        struct dir_app *a = im_dir_app(d, ch->app);
        if (!a) break;
        /* Everything of the app goes: users (and with them memberships) and groups. */
        struct au_hash_iter it;
        au_hash_iter_init(&d->groups, &it);
        while (au_hash_next(&d->groups, &it)) {
            struct dir_group *g = it.value;
            if (g->app != ch->app) continue;
            for (uint32_t i = 0; i < g->nmembers; i++) user_drop_gid(g->members[i], g->gid);
            au_hash_iter_del(&d->groups, &it);
            free(g->members);
            free(g->muted);
            free(g);
            d->ngroups--;
        }
        au_hash_iter_init(&d->users, &it);
        while (au_hash_next(&d->users, &it)) {
            struct dir_user *u = it.value;
            if (u->app != ch->app) continue;
            au_hash_iter_del(&d->users, &it);
            free(u->gids);
            free(u->key);
            free(u);
            d->nusers--;
        }
        au_hash_del(&d->appkeys, a->key, IM_APPKEY_LEN);
        au_hash_del_u64(&d->apps, a->id);
        free(a);
        break;
    }
    case IM_CH_USER_PUT: {
        size_t nl = strlen(ch->name);
        struct dir_user *u = im_dir_user(d, ch->app, ch->name, nl);
        if (!u) {
            u = calloc(1, sizeof *u);
            AU_ASSERT(u != NULL);
            u->app = ch->app;
            u->name_len = (uint16_t)nl;
            u->key = malloc(4 + nl + 1);
            AU_ASSERT(u->key != NULL);
            user_key(u->key, ch->app, ch->name, nl);
            au_hash_put(&d->users, u->key, 4 + nl, u);
            d->nusers++;
        }
        u->uid = ch->uid;
        u->ctime_ms = ch->ctime_ms;
        u->forbidden = ch->forbidden;
        u->admin = ch->admin;
        u->token_gen = ch->token_gen;
        copy_str(u->pw_hash, sizeof u->pw_hash, ch->str);
        break;
    }
    case IM_CH_USER_DEL: {
        struct dir_user *u = im_dir_user(d, ch->app, ch->name, strlen(ch->name));
        if (u) user_free(d, u);
        break;
    }
    case IM_CH_GROUP_PUT: {
        struct dir_group *g = im_dir_group(d, ch->app, ch->gid);
        if (!g) {
            g = calloc(1, sizeof *g);
            AU_ASSERT(g != NULL);
            g->app = ch->app;
            g->gid = ch->gid;
            au_hash_put_u64(&d->groups, group_key(ch->app, ch->gid), g);
            d->ngroups++;
        }
        g->owner = im_dir_user(d, ch->app, ch->name, strlen(ch->name));
        g->max_members = ch->max_members;
        copy_str(g->name, sizeof g->name, ch->str);
        break;
    }
    case IM_CH_GROUP_DEL: {
        struct dir_group *g = im_dir_group(d, ch->app, ch->gid);
        if (g) group_free(d, g);
        break;
    }
    case IM_CH_MEMBER_ADD:
    case IM_CH_MEMBER_DEL: {
        struct dir_group *g = im_dir_group(d, ch->app, ch->gid);
        struct dir_user *u = im_dir_user(d, ch->app, ch->name, strlen(ch->name));
        if (!g || !u) break;
        if (ch->type == IM_CH_MEMBER_ADD) {
            member_add(g, u);
        } else {
            group_drop_member(g, u);
            user_drop_gid(u, g->gid);
        }
        break;
    }
    case IM_CH_GROUP_MUTE: {
        struct dir_group *g = im_dir_group(d, ch->app, ch->gid);
        struct dir_user *u = im_dir_user(d, ch->app, ch->name, strlen(ch->name));
        if (!g || !u) break;
        if (!ch->forbidden) {
            unmute(g, u);
        } else if (!im_dir_is_muted(g, u)) {
            if (g->nmuted == g->cap_muted) {
                g->cap_muted = g->cap_muted ? g->cap_muted * 2 : 4;
                g->muted = realloc(g->muted, sizeof *g->muted * g->cap_muted);
                AU_ASSERT(g->muted != NULL);
            }
            g->muted[g->nmuted++] = u;
        }
        break;
    }
    default: au_warn("unknown directory change %u", ch->type); break;
    }
}

/* ------------------------------------------------------------------ undo (failed commits) */

static void undo_user_put(struct im_changes *b, const struct dir_user *u)
{
    struct im_change *c = im_changes_add(b, IM_CH_USER_PUT);
    c->app = u->app;
    copy_str(c->name, sizeof c->name, im_user_name(u));
    c->forbidden = u->forbidden;
    c->admin = u->admin;
    c->token_gen = u->token_gen;
    copy_str(c->str, sizeof c->str, u->pw_hash);
}

static void undo_group_put(struct im_changes *b, const struct dir_group *g)
{
    struct im_change *c = im_changes_add(b, IM_CH_GROUP_PUT);
    c->app = g->app;
    c->gid = g->gid;
    if (g->owner) copy_str(c->name, sizeof c->name, im_user_name(g->owner));
    c->max_members = g->max_members;
    copy_str(c->str, sizeof c->str, g->name);
}

static void undo_member(struct im_changes *b, const struct dir_group *g, const struct dir_user *u, uint8_t type)
{
    struct im_change *c = im_changes_add(b, type);
    c->app = g->app;
    c->gid = g->gid;
    copy_str(c->name, sizeof c->name, im_user_name(u));
    if (type == IM_CH_GROUP_MUTE) c->forbidden = 1;
}

/* A group as it is: record, members, muted members (forward order). */
static void undo_group_all(struct im_changes *b, const struct dir_group *g)
{
    undo_group_put(b, g);
    for (uint32_t i = 0; i < g->nmembers; i++) undo_member(b, g, g->members[i], IM_CH_MEMBER_ADD);
    for (uint32_t i = 0; i < g->nmuted; i++) undo_member(b, g, g->muted[i], IM_CH_GROUP_MUTE);
}

/* The changes (forward order) that bring replica d back to its current state after ch is applied to it. */
static void undo_block(struct im_dir *d, const struct im_change *ch, struct im_changes *b)
{
    switch (ch->type) {
    case IM_CH_APP_PUT:
    case IM_CH_APP_DEL: {
        struct dir_app *a = im_dir_app(d, ch->app);
        if (!a) {
            if (ch->type == IM_CH_APP_PUT) im_changes_add(b, IM_CH_APP_DEL)->app = ch->app;
            break;
        }
        struct im_change *c = im_changes_add(b, IM_CH_APP_PUT);
        c->app = a->id;
        copy_str(c->str, sizeof c->str, a->key);
        copy_str(c->str2, sizeof c->str2, a->secret_hash);
        copy_str(c->name, sizeof c->name, a->name);
        c->ctime_ms = a->ctime_ms;
        if (ch->type == IM_CH_APP_PUT) break;
        struct au_hash_iter it; /* deleting the app drops its users and groups: all of them come back */
        au_hash_iter_init(&d->users, &it);
        while (au_hash_next(&d->users, &it))
            if (((struct dir_user *)it.value)->app == a->id) undo_user_put(b, it.value);
        au_hash_iter_init(&d->groups, &it);
        while (au_hash_next(&d->groups, &it))
            if (((struct dir_group *)it.value)->app == a->id) undo_group_all(b, it.value);
        break;
    }
    case IM_CH_USER_PUT:
    case IM_CH_USER_DEL: {
        struct dir_user *u = im_dir_user(d, ch->app, ch->name, strlen(ch->name));
        if (!u) {
            if (ch->type == IM_CH_USER_PUT) {
                struct im_change *c = im_changes_add(b, IM_CH_USER_DEL);
                c->app = ch->app;
                copy_str(c->name, sizeof c->name, ch->name);
            }
            break;
        }
        undo_user_put(b, u);
        if (ch->type == IM_CH_USER_PUT) break;
        for (uint32_t i = 0; i < u->ngids; i++) { /* deleting a user drops it from its groups */
            struct dir_group *g = im_dir_group(d, u->app, u->gids[i]);
            if (!g) continue;
            undo_member(b, g, u, IM_CH_MEMBER_ADD);
            if (im_dir_is_muted(g, u)) undo_member(b, g, u, IM_CH_GROUP_MUTE);
            if (g->owner == u) undo_group_put(b, g);
        }
        break;
    }
    case IM_CH_GROUP_PUT:
    case IM_CH_GROUP_DEL: {
        struct dir_group *g = im_dir_group(d, ch->app, ch->gid);
        if (!g) {
            if (ch->type == IM_CH_GROUP_PUT) {
                struct im_change *c = im_changes_add(b, IM_CH_GROUP_DEL);
                c->app = ch->app;
                c->gid = ch->gid;
            }
            break;
        }
        if (ch->type == IM_CH_GROUP_PUT) undo_group_put(b, g);
        else undo_group_all(b, g);
        break;
    }
    case IM_CH_MEMBER_ADD:
    case IM_CH_MEMBER_DEL:
    case IM_CH_GROUP_MUTE: {
        struct dir_group *g = im_dir_group(d, ch->app, ch->gid);
        struct dir_user *u = im_dir_user(d, ch->app, ch->name, strlen(ch->name));
        if (!g || !u) break; /* the change does nothing */
        bool member = im_dir_is_member(g, u), muted = im_dir_is_muted(g, u);
        if (ch->type == IM_CH_MEMBER_ADD && !member) undo_member(b, g, u, IM_CH_MEMBER_DEL);
        if (ch->type == IM_CH_MEMBER_DEL && member) {
            undo_member(b, g, u, IM_CH_MEMBER_ADD);
            if (muted) undo_member(b, g, u, IM_CH_GROUP_MUTE);
        }
        if (ch->type == IM_CH_GROUP_MUTE && muted != (ch->forbidden != 0)) {
            undo_member(b, g, u, IM_CH_GROUP_MUTE);
            b->v[b->n - 1].forbidden = muted;
        }
        break;
    }
    default: break;
    }
}

/* Apply ch to the writer's replica and append its undo block to `undo`, reversed (undo lists are applied
 * from the end: the last change is undone first, each block in its forward order). */
static void apply_with_undo(struct im_dir *d, const struct im_change *ch, struct im_changes *undo)
{
    struct im_changes blk = { 0 };
    undo_block(d, ch, &blk);
    for (uint32_t i = blk.n; i-- > 0;) *im_changes_add(undo, blk.v[i].type) = blk.v[i];
    free(blk.v);
    im_dir_apply(d, ch);
}

/* ------------------------------------------------------------------ transactions */

struct changeset {
    atomic_uint refs;
    uint32_t n;
    struct im_change v[];
};

struct txn {
    struct au_xmsg x;
    atomic_int pending;          /* shards that still have to apply the change */
    im_txn_prepare_fn prepare;
    im_txn_done_fn done;
    void *arg;
    int from;
    int err;
    struct changeset *cs;
    struct im_changes undo;      /* writer: restores its replica if the commit fails (apply_with_undo) */
};

struct apply_x {
    struct au_xmsg x;
    struct changeset *cs;
    struct txn *t;               /* answered once every shard applied the change */
};

static void cs_unref(struct changeset *cs)
{
    if (cs && atomic_fetch_sub_explicit(&cs->refs, 1, memory_order_acq_rel) == 1) free(cs);
}

static void done_handler(struct au_shard *self, struct au_xmsg *x);

/* The last shard to apply a change answers the submitter: a client that gets its answer then sees its
 * write on whichever shard it goes to next (its MQTT login may land on any shard). */
static void applied(struct au_shard *self, struct txn *t)
{
    if (atomic_fetch_sub_explicit(&t->pending, 1, memory_order_acq_rel) != 1) return;
    t->x.handler = done_handler;
    if (t->from == self->id) done_handler(self, &t->x);
    else au_shard_post(self, t->from, &t->x);
}

static void apply_handler(struct au_shard *self, struct au_xmsg *x)
{
    struct apply_x *a = (struct apply_x *)x;
    struct im_dir *d = im_dir_of(self);
    for (uint32_t i = 0; i < a->cs->n; i++) im_dir_apply(d, &a->cs->v[i]);
    cs_unref(a->cs);
    struct txn *t = a->t;
    free(a);
    applied(self, t);
}

static void apply_dispose(struct au_xmsg *x)
{
    struct apply_x *a = (struct apply_x *)x;
    cs_unref(a->cs);
    free(a);
}

static void done_handler(struct au_shard *self, struct au_xmsg *x)
{
    struct txn *t = (struct txn *)x;
    if (t->done) t->done(self, t->arg, t->err);
    free(t);
}

static void txn_finish(struct au_shard *writer, struct txn *t)
{
    /* Broadcast the changes (the writer applied them at prepare); the last shard to apply them answers. */
    atomic_init(&t->pending, 1);
    if (!t->err && t->cs) {
        atomic_store(&t->pending, writer->nshards);
        for (int i = 0; i < writer->nshards; i++) {
            if (i == writer->id) continue;
            struct apply_x *a = malloc(sizeof *a);
            AU_ASSERT(a != NULL);
            a->x.handler = apply_handler;
            atomic_fetch_add_explicit(&t->cs->refs, 1, memory_order_relaxed);
            a->cs = t->cs;
            a->t = t;
            au_shard_post_disposable(writer, i, &a->x, apply_dispose);
        }
    }
    cs_unref(t->cs);
    t->cs = NULL;
    applied(writer, t);
}

static void txn_committed(struct au_shard *s, void *arg, int err)
{
    struct txn *t = arg;
    struct im_dir_shard *ds = dshard(s);
    AU_ASSERT(ds->inflight > 0);
    ds->inflight--;
    if (err) {
        t->err = err;
        /* undone later, latest first, once nothing prepared on top of it is still in flight */
        for (uint32_t i = 0; i < t->undo.n; i++) *im_changes_add(&ds->undo, t->undo.v[i].type) = t->undo.v[i];
        if (!ds->rollback)
            au_error("directory commit failed (%d): refusing directory writes until the writer's replica is rolled "
                     "back", err);
        ds->rollback = true;
    }
    free(t->undo.v);
    t->undo.v = NULL;
    if (ds->rollback && ds->inflight == 0) {
        for (uint32_t i = ds->undo.n; i-- > 0;) im_dir_apply(&ds->dir, &ds->undo.v[i]);
        au_warn("directory: %u change(s) of failed commits rolled back on the writer's replica", ds->undo.n);
        free(ds->undo.v);
        memset(&ds->undo, 0, sizeof ds->undo);
        ds->rollback = false;
    }
    txn_finish(s, t);
}

static void txn_run(struct au_shard *writer, struct au_xmsg *x)
{
    struct txn *t = (struct txn *)x;
    struct im_dir_shard *ds = dshard(writer);
    if (ds->rollback) { /* a commit failed and is being rolled back: refused like a failed commit */
        t->err = STORE_EIO;
        txn_finish(writer, t);
        return;
    }
    struct store_batch *batch = store_batch_new();
    struct im_changes ch = { 0 };
    t->err = t->prepare(&ds->dir, t->arg, batch, &ch);
    if (t->err || (store_batch_count(batch) == 0 && ch.n == 0)) {
        store_batch_free(batch);
        free(ch.v);
        txn_finish(writer, t);
        return;
    }
    if (ch.n) {
        t->cs = malloc(sizeof *t->cs + sizeof ch.v[0] * ch.n);
        AU_ASSERT(t->cs != NULL);
        atomic_init(&t->cs->refs, 1);
        t->cs->n = ch.n;
        memcpy(t->cs->v, ch.v, sizeof ch.v[0] * ch.n);
        for (uint32_t i = 0; i < ch.n; i++) apply_with_undo(&ds->dir, &ch.v[i], &t->undo);
    }
    free(ch.v);
    ds->inflight++;
    store_write(ds->st, writer->id, batch, txn_committed, t);
}

void im_txn(struct au_shard *from, im_txn_prepare_fn prepare, im_txn_done_fn done, void *arg)
{
    struct txn *t = calloc(1, sizeof *t);
    AU_ASSERT(t != NULL);
    t->x.handler = txn_run;
    t->prepare = prepare;
    t->done = done;
    t->arg = arg;
    t->from = from->id;
    au_shard_post(from, IM_DIR_WRITER, &t->x); /* also when from is the writer: runs next iteration */
}

uint64_t im_dir_next_id(struct im_dir *d, uint32_t app, const char *counter, struct store_batch *batch)
{
    struct im_dir_shard *ds = AU_CONTAINER_OF(d, struct im_dir_shard, dir);
    uint8_t key[KS_KEY_MAX];
    size_t kl = ks_im_named(key, KS_IM_COUNTER, app, counter, strlen(counter));
    struct im_counter *c = au_hash_get(&ds->counters, key, kl);
    if (!c) {
        c = calloc(1, sizeof *c);
        AU_ASSERT(c != NULL && kl <= sizeof c->key);
        memcpy(c->key, key, kl);
        c->kl = kl;
        c->value = 10000; /* ids start above small numbers that look like test data */
        au_hash_put(&ds->counters, c->key, c->kl, c);
    }
    uint64_t id = ++c->value;
    uint8_t v[8];
    au_wr32(v, (uint32_t)(id >> 32));
    au_wr32(v + 4, (uint32_t)id);
    store_batch_put(batch, c->key, c->kl, v, 8);
    return id;
}

/* ------------------------------------------------------------------ loading */

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static bool load_app(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct im_dir *d = arg;
    if (kl != 5) return true;
    json_t *o = json_loadb((const char *)v, vl, 0, NULL);
    if (!o) return true;
    struct im_change ch = { .type = IM_CH_APP_PUT, .app = au_rd32(k + 1) };
    copy_str(ch.str, sizeof ch.str, jstr(o, "appkey"));
    copy_str(ch.str2, sizeof ch.str2, jstr(o, "secret_hash"));
    copy_str(ch.name, sizeof ch.name, jstr(o, "name"));
    ch.ctime_ms = (uint64_t)json_integer_value(json_object_get(o, "ctime_ms"));
    json_decref(o);
    if (strlen(ch.str) == IM_APPKEY_LEN) im_dir_apply(d, &ch);
    return true;
}

static bool load_user(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct im_dir *d = arg;
    if (kl <= 5 || kl - 5 > 128) return true;
    json_t *o = json_loadb((const char *)v, vl, 0, NULL);
    if (!o) return true;
    struct im_change ch = { .type = IM_CH_USER_PUT, .app = au_rd32(k + 1) };
    memcpy(ch.name, k + 5, kl - 5);
    ch.name[kl - 5] = 0;
    copy_str(ch.str, sizeof ch.str, jstr(o, "password"));
    ch.forbidden = json_is_true(json_object_get(o, "forbidden"));
    ch.admin = k[0] == KS_IM_ADMIN;
    ch.token_gen = (uint32_t)json_integer_value(json_object_get(o, "token_gen"));
    json_int_t uid = json_integer_value(json_object_get(o, "uid"));
    ch.ctime_ms = (uint64_t)json_integer_value(json_object_get(o, "ctime"));
    json_decref(o);
    if (uid <= 0 || (uint64_t)uid > IM_UID_MAX) { /* every format-2 record has one: a damaged record */
        au_error("im directory: user record of %s (app %u) has no valid uid: not loaded", ch.name, ch.app);
        return true;
    }
    ch.uid = (uint64_t)uid;
    im_dir_apply(d, &ch);
    return true;
}

static bool load_group(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct im_dir *d = arg;
    if (kl != 13) return true;
    json_t *o = json_loadb((const char *)v, vl, 0, NULL);
    if (!o) return true;
    struct im_change ch = { .type = IM_CH_GROUP_PUT, .app = au_rd32(k + 1) };
    ch.gid = ((uint64_t)au_rd32(k + 5) << 32) | au_rd32(k + 9);
    copy_str(ch.name, sizeof ch.name, jstr(o, "owner_username"));
    copy_str(ch.str, sizeof ch.str, jstr(o, "name"));
    ch.max_members = (uint32_t)json_integer_value(json_object_get(o, "max_member_count"));
    im_dir_apply(d, &ch);
    json_t *sil = json_object_get(o, "silenced");
    for (size_t i = 0; json_is_array(sil) && i < json_array_size(sil); i++) {
        struct im_change m = { .type = IM_CH_GROUP_MUTE, .app = ch.app, .gid = ch.gid, .forbidden = 1 };
        copy_str(m.name, sizeof m.name, json_string_value(json_array_get(sil, i)) ? json_string_value(json_array_get(sil, i)) : "");
        im_dir_apply(d, &m);
    }
    json_decref(o);
    return true;
}

static bool load_member(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    (void)v;
    (void)vl;
    struct im_dir *d = arg;
    if (kl <= 13 || kl - 13 > 128) return true;
    struct im_change ch = { .type = IM_CH_MEMBER_ADD, .app = au_rd32(k + 1) };
    ch.gid = ((uint64_t)au_rd32(k + 5) << 32) | au_rd32(k + 9);
    memcpy(ch.name, k + 13, kl - 13);
    ch.name[kl - 13] = 0;
    im_dir_apply(d, &ch);
    return true;
}

static bool load_counter(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct im_dir_shard *ds = arg;
    if (vl != 8 || kl > 64) return true;
    struct im_counter *c = calloc(1, sizeof *c);
    AU_ASSERT(c != NULL);
    memcpy(c->key, k, kl);
    c->kl = kl;
    c->value = ((uint64_t)au_rd32(v) << 32) | au_rd32(v + 4);
    au_hash_put(&ds->counters, c->key, c->kl, c);
    return true;
}

static void scan_prefix(struct store *st, uint8_t prefix, store_iter_fn fn, void *arg)
{
    uint8_t p = prefix, e = (uint8_t)(prefix + 1);
    store_scan_sync(st, &p, 1, &e, 1, 0, fn, arg);
}

void im_dir_init(struct au_shard *s, struct store *st)
{
    struct im_dir_shard *ds = calloc(1, sizeof *ds);
    AU_ASSERT(ds != NULL);
    ds->st = st;
    struct im_dir *d = &ds->dir;
    AU_ASSERT(au_hash_init(&d->apps, 8) == 0 && au_hash_init(&d->appkeys, 8) == 0 &&
              au_hash_init(&d->users, 1024) == 0 && au_hash_init(&d->groups, 64) == 0 &&
              au_hash_init(&ds->counters, 16) == 0);
    s->slot.im_dir = ds;
    if (!st) return;
    scan_prefix(st, KS_IM_APP, load_app, d);
    scan_prefix(st, KS_IM_USER, load_user, d);
    scan_prefix(st, KS_IM_ADMIN, load_user, d);
    scan_prefix(st, KS_IM_GROUP, load_group, d);
    scan_prefix(st, KS_IM_GMEMBER, load_member, d);
    if (s->id == IM_DIR_WRITER) scan_prefix(st, KS_IM_COUNTER, load_counter, ds);
    au_info("im directory: apps=%zu users=%llu groups=%llu", au_hash_count(&d->apps), (unsigned long long)d->nusers,
            (unsigned long long)d->ngroups);
}

void im_dir_fini(struct au_shard *s)
{
    struct im_dir_shard *ds = dshard(s);
    if (!ds) return;
    struct im_dir *d = &ds->dir;
    struct au_hash_iter it;
    au_hash_iter_init(&d->groups, &it);
    while (au_hash_next(&d->groups, &it)) {
        struct dir_group *g = it.value;
        free(g->members);
        free(g->muted);
        free(g);
    }
    au_hash_iter_init(&d->users, &it);
    while (au_hash_next(&d->users, &it)) {
        struct dir_user *u = it.value;
        free(u->gids);
        free(u->key);
        free(u);
    }
    au_hash_iter_init(&d->apps, &it);
    while (au_hash_next(&d->apps, &it)) free(it.value);
    au_hash_iter_init(&ds->counters, &it);
    while (au_hash_next(&ds->counters, &it)) free(it.value);
    au_hash_free(&d->apps);
    au_hash_free(&d->appkeys);
    au_hash_free(&d->users);
    au_hash_free(&d->groups);
    au_hash_free(&ds->counters);
    free(ds->undo.v);
    free(ds);
    s->slot.im_dir = NULL;
}
