/* subindex.c - per-shard subscription index: a trie of topic-filter levels per app.
 *
 * Node children live in a name table (hash of the level, xxh3 seeded per index); the `+` and `#`
 * children are separate pointers. Each node holds its plain subscriptions in a sub_set and its
 * share groups in a name table keyed by ShareName, each group with its own sub_set of members.
 *
 * sub_set: a dense array of entries (what matching iterates, cache-friendly, and what a share
 * callback receives as-is) plus, once it holds more than SET_LINEAR entries, an open-addressed
 * table session -> array position. Adding, replacing and removing one session's entry is O(1)
 * whatever the number of subscribers; removal swaps the last entry into the hole.
 */
#include "gateway/mqtt/subindex.h"
#include "gateway/mqtt/topic_impl.h"

#include <stdlib.h>

#define SET_LINEAR   8u            /* up to this many entries a linear scan finds a session */
#define SET_POS_MIN  16u           /* smallest position table */
#define SET_MIN_CAP  4u
#define POS_EMPTY    UINT32_MAX

struct sub_set {
    struct sub_entry *v;           /* v[0..n) */
    uint32_t n, cap;
    uint32_t *pos;                 /* NULL or pcap slots of positions in v (POS_EMPTY = free) */
    uint32_t pcap;
};

enum snode_kind { SN_LEVEL, SN_PLUS, SN_HASH, SN_APP };

struct snode {
    struct topic_name name;        /* this level (SN_LEVEL) or the app id (SN_APP) */
    struct snode *parent;          /* NULL for an app root */
    struct snode *plus, *hash;     /* '+' and '#' children */
    struct topic_ntab kids;        /* other children, struct snode */
    struct topic_ntab groups;      /* share groups, struct sgroup */
    struct sub_set subs;           /* plain subscriptions whose filter ends here */
    uint8_t kind;
    uint8_t key[];
};

struct sgroup {
    struct topic_name name;        /* ShareName */
    struct sub_set members;
    uint32_t filter_len;           /* the group's filter follows the name in key[] */
    uint8_t key[];
};

/* ---- sub_set ------------------------------------------------------------------------------- */

static inline uint32_t ptr_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;    /* murmur3 fmix64 */
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return (uint32_t)x;
}

/* Slot of `session` in the position table, or the free slot where it would go. */
static uint32_t set_slot(const struct sub_set *s, const void *session)
{
    uint32_t mask = s->pcap - 1;
    for (uint32_t i = ptr_hash(session) & mask;; i = (i + 1) & mask) {
        uint32_t p = s->pos[i];
        if (p == POS_EMPTY || s->v[p].session == session)
            return i;
    }
}

/* Position of `session` in v, or POS_EMPTY. */
static uint32_t set_find(const struct sub_set *s, const void *session)
{
    if (s->pos)
        return s->pos[set_slot(s, session)];
    for (uint32_t i = 0; i < s->n; i++)
        if (s->v[i].session == session)
            return i;
    return POS_EMPTY;
}

static uint32_t pos_cap_for(uint32_t n)
{
    AU_ASSERT(n < (1u << 30));
    uint32_t c = SET_POS_MIN;
    while (c < 2 * n)
        c *= 2;
    return c;
}

static bool set_rebuild(struct sub_set *s, uint32_t pcap)
{
    uint32_t *pos = malloc((size_t)pcap * sizeof *pos);
    if (!pos)
        return false;
    memset(pos, 0xff, (size_t)pcap * sizeof *pos);
    free(s->pos);
    s->pos = pos;
    s->pcap = pcap;
    for (uint32_t i = 0; i < s->n; i++)
        pos[set_slot(s, s->v[i].session)] = i;
    return true;
}

/* Appends `e` (whose session is absent). False on allocation failure, set unchanged. */
static bool set_insert(struct sub_set *s, const struct sub_entry *e)
{
    if (s->n == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : SET_MIN_CAP;
        struct sub_entry *v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v)
            return false;
        s->v = v;
        s->cap = cap;
    }
    uint32_t n1 = s->n + 1;
    if (n1 > SET_LINEAR && (!s->pos || (uint64_t)n1 * 2 > s->pcap) &&
        !set_rebuild(s, pos_cap_for(n1)))
        return false;
    s->v[s->n] = *e;
    if (s->pos)
        s->pos[set_slot(s, e->session)] = s->n;
    s->n = n1;
    return true;
}

/* Backward-shift deletion of position-table slot i. */
static void pos_delete(struct sub_set *s, uint32_t i)
{
    uint32_t mask = s->pcap - 1;
    for (uint32_t j = i;;) {
        j = (j + 1) & mask;
        if (s->pos[j] == POS_EMPTY)
            break;
        uint32_t k = ptr_hash(s->v[s->pos[j]].session) & mask;
        if (j > i ? (k <= i || k > j) : (k <= i && k > j)) {
            s->pos[i] = s->pos[j];
            i = j;
        }
    }
    s->pos[i] = POS_EMPTY;
}

static void set_free(struct sub_set *s)
{
    free(s->v);
    free(s->pos);
    memset(s, 0, sizeof *s);
}

/* Removes v[r]: the last entry moves into its place. Shrinks the arrays as the set empties. */
static void set_remove_at(struct sub_set *s, uint32_t r)
{
    AU_ASSERT(r < s->n);
    uint32_t last = s->n - 1;
    if (s->pos) {
        pos_delete(s, set_slot(s, s->v[r].session));
        if (r != last)
            s->pos[set_slot(s, s->v[last].session)] = r;
    }
    s->v[r] = s->v[last];
    s->n = last;
    if (s->n == 0) {
        set_free(s);
        return;
    }
    if (s->pos && s->n <= SET_LINEAR / 2) {
        free(s->pos);
        s->pos = NULL;
        s->pcap = 0;
    } else if (s->pos && s->pcap > SET_POS_MIN && (uint64_t)s->n * 8 < s->pcap) {
        (void)set_rebuild(s, pos_cap_for(s->n));    /* on failure keep the larger table */
    }
    if (s->cap > SET_MIN_CAP && (uint64_t)s->n * 4 < s->cap) {
        struct sub_entry *v = realloc(s->v, (size_t)(s->cap / 2) * sizeof *v);
        if (v) {
            s->v = v;
            s->cap /= 2;
        }
    }
}

/* ---- nodes --------------------------------------------------------------------------------- */

static inline struct snode *snode_of(struct topic_name *e)
{
    return e ? AU_CONTAINER_OF(e, struct snode, name) : NULL;
}

static inline struct sgroup *sgroup_of(struct topic_name *e)
{
    return e ? AU_CONTAINER_OF(e, struct sgroup, name) : NULL;
}

static struct snode *snode_new(struct sub_index *idx, struct snode *parent, enum snode_kind kind,
                               const uint8_t *key, uint32_t len, uint64_t hash)
{
    struct snode *n = calloc(1, sizeof *n + len);
    if (!n)
        return NULL;
    memcpy(n->key, key, len);
    n->name.key = n->key;
    n->name.len = len;
    n->name.hash = hash;
    n->parent = parent;
    n->kind = (uint8_t)kind;
    idx->nodes++;
    return n;
}

static bool snode_empty(const struct snode *n)
{
    return !n->plus && !n->hash && n->kids.n == 0 && n->groups.n == 0 && n->subs.n == 0;
}

/* Frees `n` and then each ancestor while they hold nothing. */
static void snode_prune(struct sub_index *idx, struct snode *n)
{
    while (n && snode_empty(n)) {
        struct snode *p = n->parent;
        switch ((enum snode_kind)n->kind) {
        case SN_PLUS:  p->plus = NULL; break;
        case SN_HASH:  p->hash = NULL; break;
        case SN_LEVEL: topic_ntab_remove(&p->kids, &n->name); break;
        case SN_APP:   topic_ntab_remove(&idx->apps, &n->name); break;
        }
        AU_ASSERT(n->kids.slot == NULL && n->groups.slot == NULL && n->subs.v == NULL);
        free(n);
        idx->nodes--;
        n = p;
    }
}

static struct snode *app_root(struct sub_index *idx, uint32_t app, bool create)
{
    uint8_t key[4];
    topic_app_key(app, key);
    uint64_t h = topic_hash(idx->seed, key, sizeof key);
    struct snode *n = snode_of(topic_ntab_find(&idx->apps, h, key, sizeof key));
    if (n || !create)
        return n;
    if (!(n = snode_new(idx, NULL, SN_APP, key, sizeof key, h)))
        return NULL;
    if (!topic_ntab_insert(&idx->apps, &n->name)) {
        free(n);
        idx->nodes--;
        return NULL;
    }
    return n;
}

static struct snode *child(struct sub_index *idx, struct snode *n, const struct topic_level *l,
                           bool create)
{
    struct snode **special = topic_level_is(l, '+') ? &n->plus :
                             topic_level_is(l, '#') ? &n->hash : NULL;
    if (special) {
        if (!*special && create)
            *special = snode_new(idx, n, &n->plus == special ? SN_PLUS : SN_HASH, l->p, 1, 0);
        return *special;
    }
    struct snode *c = snode_of(topic_ntab_find(&n->kids, l->hash, l->p, l->len));
    if (c || !create)
        return c;
    if (!(c = snode_new(idx, n, SN_LEVEL, l->p, l->len, l->hash)))
        return NULL;
    if (!topic_ntab_insert(&n->kids, &c->name)) {
        free(c);
        idx->nodes--;
        return NULL;
    }
    return c;
}

/* The node of a filter's last level; NULL if absent (create false) or out of memory (then the
 * nodes created on the way are freed again). */
static struct snode *walk(struct sub_index *idx, uint32_t app, const struct topic_level *lv,
                          unsigned nl, bool create)
{
    struct snode *n = app_root(idx, app, create);
    for (unsigned i = 0; n && i < nl; i++) {
        struct snode *c = child(idx, n, &lv[i], create);
        if (!c && create)
            snode_prune(idx, n);
        n = c;
    }
    return n;
}

static bool share_name_valid(const uint8_t *s, size_t len)
{
    if (len == 0 || len > AU_MQTT_MAX_TOPIC)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '+' || s[i] == '#' || s[i] == '/' || s[i] == 0)
            return false;
    return true;
}

static void group_remove(struct sub_index *idx, struct snode *n, struct sgroup *g)
{
    AU_ASSERT(g->members.n == 0);
    topic_ntab_remove(&n->groups, &g->name);
    set_free(&g->members);
    free(g);
    idx->groups--;
}

/* ---- API ----------------------------------------------------------------------------------- */

void sub_index_init(struct sub_index *idx)
{
    memset(idx, 0, sizeof *idx);
    idx->seed = topic_seed();
}

static void snode_free_all(struct sub_index *idx, struct snode *n)
{
    for (uint32_t i = 0; i < n->kids.cap; i++)
        if (n->kids.slot[i])
            snode_free_all(idx, snode_of(n->kids.slot[i]));
    if (n->plus)
        snode_free_all(idx, n->plus);
    if (n->hash)
        snode_free_all(idx, n->hash);
    for (uint32_t i = 0; i < n->groups.cap; i++) {
        struct sgroup *g = sgroup_of(n->groups.slot[i]);
        if (!g)
            continue;
        idx->subs -= g->members.n;
        idx->groups--;
        set_free(&g->members);
        free(g);
    }
    idx->subs -= n->subs.n;
    set_free(&n->subs);
    topic_ntab_free(&n->kids);
    topic_ntab_free(&n->groups);
    free(n);
    idx->nodes--;
}

void sub_index_free(struct sub_index *idx)
{
    AU_ASSERT(!idx->busy);
    for (uint32_t i = 0; i < idx->apps.cap; i++)
        if (idx->apps.slot[i])
            snode_free_all(idx, snode_of(idx->apps.slot[i]));
    topic_ntab_free(&idx->apps);
    AU_ASSERT(idx->nodes == 0 && idx->subs == 0 && idx->groups == 0);
}

int sub_add(struct sub_index *idx, uint32_t app, const uint8_t *filter, size_t len,
            void *session, const struct sub_opts *opts, const uint8_t *share, size_t share_len)
{
    AU_ASSERT(!idx->busy);
    AU_ASSERT(session != NULL);
    AU_ASSERT(opts->qos <= 2 && opts->retain_handling <= 2 && opts->no_local <= 1 &&
              opts->retain_as_published <= 1);
    if (!topic_filter_valid(filter, len) || (share_len && !share_name_valid(share, share_len)))
        return TOPIC_EINVAL;
    struct topic_level lv[AU_MQTT_MAX_TOPIC_LEVELS];
    unsigned nl = topic_split(filter, len, idx->seed, true, lv);
    AU_ASSERT(nl > 0);
    struct snode *n = walk(idx, app, lv, nl, true);
    if (!n)
        return TOPIC_ENOMEM;

    struct sgroup *g = NULL;
    struct sub_set *set = &n->subs;
    if (share_len) {
        uint64_t h = topic_hash(idx->seed, share, share_len);
        g = sgroup_of(topic_ntab_find(&n->groups, h, share, share_len));
        if (!g) {
            g = calloc(1, sizeof *g + share_len + len);
            if (!g) {
                snode_prune(idx, n);
                return TOPIC_ENOMEM;
            }
            memcpy(g->key, share, share_len);
            memcpy(g->key + share_len, filter, len);
            g->filter_len = (uint32_t)len;
            g->name.key = g->key;
            g->name.len = (uint32_t)share_len;
            g->name.hash = h;
            if (!topic_ntab_insert(&n->groups, &g->name)) {
                free(g);
                snode_prune(idx, n);
                return TOPIC_ENOMEM;
            }
            idx->groups++;
        }
        set = &g->members;
    }

    uint32_t at = set_find(set, session);
    if (at != POS_EMPTY) {
        set->v[at].opts = *opts;
        return 1;
    }
    struct sub_entry e = { .session = session, .opts = *opts };
    if (!set_insert(set, &e)) {
        if (g && g->members.n == 0)
            group_remove(idx, n, g);
        snode_prune(idx, n);
        return TOPIC_ENOMEM;
    }
    idx->subs++;
    return 0;
}

int sub_remove(struct sub_index *idx, uint32_t app, const uint8_t *filter, size_t len,
               void *session, const uint8_t *share, size_t share_len)
{
    AU_ASSERT(!idx->busy);
    struct topic_level lv[AU_MQTT_MAX_TOPIC_LEVELS];
    unsigned nl = topic_split(filter, len, idx->seed, true, lv);
    if (nl == 0)
        return 0;
    struct snode *n = walk(idx, app, lv, nl, false);
    if (!n)
        return 0;
    struct sgroup *g = NULL;
    struct sub_set *set = &n->subs;
    if (share_len) {
        g = sgroup_of(topic_ntab_find(&n->groups, topic_hash(idx->seed, share, share_len), share,
                                      share_len));
        if (!g)
            return 0;
        set = &g->members;
    }
    uint32_t at = set_find(set, session);
    if (at == POS_EMPTY)
        return 0;
    set_remove_at(set, at);
    idx->subs--;
    if (g && g->members.n == 0)
        group_remove(idx, n, g);
    snode_prune(idx, n);
    return 1;
}

struct match_ctx {
    const struct topic_level *lv;
    unsigned nl;
    sub_match_fn on_sub;
    sub_share_fn on_share;
    void *ctx;
    int calls;
};

static void emit(struct match_ctx *m, const struct snode *n)
{
    if (m->on_sub)
        for (uint32_t i = 0; i < n->subs.n; i++)
            m->on_sub(m->ctx, &n->subs.v[i]);
    m->calls += (int)n->subs.n;
    if (n->groups.n == 0)
        return;
    for (uint32_t i = 0; i < n->groups.cap; i++) {
        const struct sgroup *g = sgroup_of(n->groups.slot[i]);
        if (!g)
            continue;
        AU_ASSERT(g->members.n > 0);
        if (m->on_share)
            m->on_share(m->ctx, g->key, g->name.len, g->key + g->name.len, g->filter_len,
                        g->members.v, g->members.n);
        m->calls++;
    }
}

/* `n` is the node reached after i topic levels; `dollar`: at the app root of a '$' topic. */
static void match_node(struct match_ctx *m, const struct snode *n, unsigned i, bool dollar)
{
    if (n->hash && !dollar)
        emit(m, n->hash);               /* '#' matches the parent level and all below */
    if (i == m->nl) {
        emit(m, n);
        return;
    }
    const struct topic_level *l = &m->lv[i];
    const struct snode *c = snode_of(topic_ntab_find(&n->kids, l->hash, l->p, l->len));
    if (c)
        match_node(m, c, i + 1, false);
    if (n->plus && !dollar)
        match_node(m, n->plus, i + 1, false);
}

int sub_match(struct sub_index *idx, uint32_t app, const uint8_t *topic, size_t len,
              sub_match_fn on_sub, sub_share_fn on_share, void *ctx)
{
    if (!topic_name_valid(topic, len))
        return TOPIC_EINVAL;
    struct snode *root = app_root(idx, app, false);
    if (!root)
        return 0;
    struct topic_level lv[AU_MQTT_MAX_TOPIC_LEVELS];
    struct match_ctx m = { .lv = lv, .on_sub = on_sub, .on_share = on_share, .ctx = ctx };
    m.nl = topic_split(topic, len, idx->seed, true, lv);
    AU_ASSERT(m.nl > 0);
    idx->busy++;
    match_node(&m, root, 0, topic[0] == '$');
    idx->busy--;
    return m.calls;
}
