/* retained.c - per-shard retained-message store: a trie of topic levels per app, each node
 * optionally holding one opaque message. A filter query walks only the branches its levels can
 * match: an exact level is one hash lookup, `+` visits the children, `#` the whole subtree. */
#include "gateway/mqtt/retained.h"
#include "gateway/mqtt/topic_impl.h"

#include <stdlib.h>

struct rnode {
    struct topic_name name;        /* this level, or the app id for an app root */
    struct rnode *parent;          /* NULL for an app root */
    struct topic_ntab kids;        /* struct rnode */
    void *msg;                     /* retained message of this exact topic, or NULL */
    size_t count;                  /* app roots only: messages held in the app */
    size_t bytes;                  /* app roots only: their bytes (st->size) */
    uint8_t key[];
};

static inline struct rnode *rnode_of(struct topic_name *e)
{
    return e ? AU_CONTAINER_OF(e, struct rnode, name) : NULL;
}

static struct rnode *rnode_new(struct retained_store *st, struct topic_ntab *tab,
                               struct rnode *parent, const uint8_t *key, uint32_t len, uint64_t h)
{
    struct rnode *n = calloc(1, sizeof *n + len);
    if (!n)
        return NULL;
    memcpy(n->key, key, len);
    n->name.key = n->key;
    n->name.len = len;
    n->name.hash = h;
    n->parent = parent;
    if (!topic_ntab_insert(tab, &n->name)) {
        free(n);
        return NULL;
    }
    st->nodes++;
    return n;
}

static struct rnode *app_find(const struct retained_store *st, uint32_t app)
{
    uint8_t key[4];
    topic_app_key(app, key);
    return rnode_of(topic_ntab_find(&st->apps, topic_hash(st->seed, key, sizeof key), key,
                                    sizeof key));
}

static struct rnode *app_root(struct retained_store *st, uint32_t app, bool create)
{
    struct rnode *n = app_find(st, app);
    if (!n && create) {
        uint8_t key[4];
        topic_app_key(app, key);
        n = rnode_new(st, &st->apps, NULL, key, sizeof key, topic_hash(st->seed, key, sizeof key));
    }
    return n;
}

/* Frees `n` and then each ancestor while they hold nothing. */
static void rnode_prune(struct retained_store *st, struct rnode *n)
{
    while (n && !n->msg && n->kids.n == 0) {
        struct rnode *p = n->parent;
        AU_ASSERT(n->count == 0);
        topic_ntab_remove(p ? &p->kids : &st->apps, &n->name);
        free(n);
        st->nodes--;
        n = p;
    }
}

/* The node of `topic`; NULL if absent (create false) or out of memory (nodes created on the way
 * are freed again). *root receives the app root when there is one. */
static struct rnode *walk(struct retained_store *st, uint32_t app, const struct topic_level *lv,
                          unsigned nl, bool create, struct rnode **root)
{
    struct rnode *n = *root = app_root(st, app, create);
    for (unsigned i = 0; n && i < nl; i++) {
        struct rnode *c = rnode_of(topic_ntab_find(&n->kids, lv[i].hash, lv[i].p, lv[i].len));
        if (!c && create && !(c = rnode_new(st, &n->kids, n, lv[i].p, lv[i].len, lv[i].hash)))
            rnode_prune(st, n);
        n = c;
    }
    return n;
}

static void release(struct retained_store *st, void *msg)
{
    if (st->release)
        st->release(st->release_ctx, msg);
}

/* Frees the subtree of `n` (not unlinking it), releasing its messages; returns how many. */
static size_t rnode_free_all(struct retained_store *st, struct rnode *n)
{
    size_t released = 0;
    for (uint32_t i = 0; i < n->kids.cap; i++)
        if (n->kids.slot[i])
            released += rnode_free_all(st, rnode_of(n->kids.slot[i]));
    if (n->msg) {
        release(st, n->msg);
        released++;
    }
    topic_ntab_free(&n->kids);
    free(n);
    st->nodes--;
    return released;
}

void retained_init(struct retained_store *st, retained_release_fn rel, void *release_ctx,
                   size_t max_per_app)
{
    memset(st, 0, sizeof *st);
    st->seed = topic_seed();
    st->release = rel;
    st->release_ctx = release_ctx;
    st->max_per_app = max_per_app ? max_per_app : AU_MQTT_MAX_RETAINED;
}

void retained_set_budget(struct retained_store *st, retained_size_fn size, size_t max_bytes)
{
    AU_ASSERT(st->msgs == 0);
    st->size = size;
    st->max_bytes_per_app = max_bytes;
}

static size_t msg_size(const struct retained_store *st, const void *msg)
{
    return msg && st->size ? st->size(msg) : 0;
}

/* Within the app's budgets once `old` (may be NULL) is replaced by a message of `size` bytes? */
static bool within(const struct retained_store *st, const struct rnode *root, const void *old, size_t size)
{
    size_t count = root ? root->count : 0, bytes = root ? root->bytes : 0;
    if (!old && count >= st->max_per_app)
        return false;
    return !st->max_bytes_per_app || bytes - msg_size(st, old) + size <= st->max_bytes_per_app;
}

bool retained_fits(struct retained_store *st, uint32_t app, const uint8_t *topic, size_t len, size_t size)
{
    struct topic_level lv[AU_MQTT_MAX_TOPIC_LEVELS];
    unsigned nl = topic_split(topic, len, st->seed, true, lv);
    AU_ASSERT(nl > 0);
    struct rnode *root;
    struct rnode *n = walk(st, app, lv, nl, false, &root);
    return within(st, root, n ? n->msg : NULL, size);
}

void retained_free(struct retained_store *st)
{
    AU_ASSERT(!st->busy);
    for (uint32_t i = 0; i < st->apps.cap; i++)
        if (st->apps.slot[i])
            st->msgs -= rnode_free_all(st, rnode_of(st->apps.slot[i]));
    topic_ntab_free(&st->apps);
    AU_ASSERT(st->nodes == 0 && st->msgs == 0);
}

int retained_set(struct retained_store *st, uint32_t app, const uint8_t *topic, size_t len,
                 void *msg)
{
    AU_ASSERT(!st->busy);
    if (!topic_name_valid(topic, len))
        return TOPIC_EINVAL;
    struct topic_level lv[AU_MQTT_MAX_TOPIC_LEVELS];
    unsigned nl = topic_split(topic, len, st->seed, true, lv);
    AU_ASSERT(nl > 0);
    struct rnode *root;
    struct rnode *n = walk(st, app, lv, nl, msg != NULL, &root);
    void *old = n ? n->msg : NULL;
    if (!msg) {                                     /* delete */
        if (!old)
            return 0;
        n->msg = NULL;
        root->count--;
        root->bytes -= msg_size(st, old);
        st->msgs--;
        rnode_prune(st, n);
        release(st, old);
        return 1;
    }
    if (!n)
        return TOPIC_ENOMEM;
    size_t size = msg_size(st, msg);
    if (!within(st, root, old, size)) {
        if (!old)
            rnode_prune(st, n);
        return TOPIC_EQUOTA;
    }
    root->bytes = root->bytes - msg_size(st, old) + size;
    if (old) {                                      /* replace */
        n->msg = msg;
        release(st, old);
        return 1;
    }
    n->msg = msg;
    root->count++;
    st->msgs++;
    return 0;
}

struct rmatch_ctx {
    const struct topic_level *lv;
    unsigned nl;
    retained_match_fn cb;
    void *ctx;
    int calls;
};

/* Each walk returns false once the callback asked to stop. */
static bool emit(struct rmatch_ctx *m, const struct rnode *n)
{
    if (!n->msg)
        return true;
    m->calls++;
    return m->cb(m->ctx, n->msg);
}

static inline bool dollar_child(const struct rnode *c)
{
    return c->name.len > 0 && c->key[0] == '$';
}

/* `n` and everything below it; `top`: n is an app root, whose '$' children '#' does not match. */
static bool walk_subtree(struct rmatch_ctx *m, const struct rnode *n, bool top)
{
    if (!emit(m, n))
        return false;
    for (uint32_t i = 0; i < n->kids.cap; i++) {
        const struct rnode *c = rnode_of(n->kids.slot[i]);
        if (c && !(top && dollar_child(c)) && !walk_subtree(m, c, false))
            return false;
    }
    return true;
}

/* `n` is the node reached after i filter levels. */
static bool walk_filter(struct rmatch_ctx *m, const struct rnode *n, unsigned i)
{
    if (i == m->nl)
        return emit(m, n);
    const struct topic_level *l = &m->lv[i];
    if (topic_level_is(l, '#'))
        return walk_subtree(m, n, i == 0);          /* includes n itself: the parent level */
    if (topic_level_is(l, '+')) {
        for (uint32_t k = 0; k < n->kids.cap; k++) {
            const struct rnode *c = rnode_of(n->kids.slot[k]);
            if (c && !(i == 0 && dollar_child(c)) && !walk_filter(m, c, i + 1))
                return false;
        }
        return true;
    }
    const struct rnode *c = rnode_of(topic_ntab_find(&n->kids, l->hash, l->p, l->len));
    return c ? walk_filter(m, c, i + 1) : true;
}

int retained_match(struct retained_store *st, uint32_t app, const uint8_t *filter, size_t len,
                   retained_match_fn cb, void *ctx)
{
    if (!topic_filter_valid(filter, len))
        return TOPIC_EINVAL;
    struct rnode *root = app_find(st, app);
    if (!root)
        return 0;
    struct topic_level lv[AU_MQTT_MAX_TOPIC_LEVELS];
    struct rmatch_ctx m = { .lv = lv, .cb = cb, .ctx = ctx };
    m.nl = topic_split(filter, len, st->seed, true, lv);
    AU_ASSERT(m.nl > 0);
    st->busy++;
    (void)walk_filter(&m, root, 0);
    st->busy--;
    return m.calls;
}

size_t retained_count(const struct retained_store *st, uint32_t app)
{
    const struct rnode *root = app_find(st, app);
    return root ? root->count : 0;
}

size_t retained_bytes(const struct retained_store *st, uint32_t app)
{
    const struct rnode *root = app_find(st, app);
    return root ? root->bytes : 0;
}

size_t retained_clear_app(struct retained_store *st, uint32_t app)
{
    AU_ASSERT(!st->busy);
    struct rnode *root = app_find(st, app);
    if (!root)
        return 0;
    size_t count = root->count;
    topic_ntab_remove(&st->apps, &root->name);
    size_t n = rnode_free_all(st, root);
    AU_ASSERT(n == count);
    st->msgs -= n;
    return n;
}
