/* shared.c - shared subscriptions ($share/{group}/{filter}) across shards.
 *
 * Members of one share group can live on any shard, and exactly one member must get each message.
 * Every shard keeps a replica of which shards have members of which group (a bit per shard), kept up
 * to date by a broadcast whenever a shard's local member count of a group goes 0 -> 1 or 1 -> 0.
 * The shard where a message is published (the origin) matches its topic against the replica, picks
 * one shard per matching group (round robin over shards with members) and attaches the picks to the
 * immutable message before posting it; each shard then serves only the groups picked for it, choosing
 * one of its local members. While a membership change is still travelling (microseconds), a message
 * may be served by the shard the origin believed had members; if it has none left, the message is not
 * delivered to that group (documented in docs/architecture.md). */
#include "gateway/mqtt/broker.h"
#include "gateway/mqtt/deliver.h"
#include "gateway/mqtt/shared.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct share_group {
    uint64_t gh;            /* group hash (fixed seed: identical on every shard) */
    uint64_t shard_mask;    /* shards with at least one member */
    uint32_t local;         /* members on this shard */
    uint32_t rr;            /* origin-side round robin */
    uint32_t app;
    uint16_t filter_len;
    uint8_t filter[];       /* the plain filter (for the replica index) */
};

struct shared_state {
    struct au_hash groups;  /* gh -> share_group */
    struct sub_index rep;   /* replica: one plain "subscription" per group, session = group */
};

struct share_picks {
    uint32_t n;
    struct { uint64_t gh; int shard; } e[];
};

struct member_x {
    struct au_xmsg x;
    int shard;
    int present;
    uint32_t app;
    uint64_t gh;
    uint16_t filter_len;
    uint8_t filter[];
};

static uint64_t group_hash(uint32_t app, const uint8_t *share, size_t share_len, const uint8_t *filter, size_t flen)
{
    uint8_t key[4 + 2 + 2 * AU_MQTT_MAX_TOPIC];
    AU_ASSERT(share_len + flen <= 2 * AU_MQTT_MAX_TOPIC);
    memcpy(key, &app, 4);
    au_wr16(key + 4, (uint16_t)share_len);
    memcpy(key + 6, share, share_len);
    memcpy(key + 6 + share_len, filter, flen);
    return XXH3_64bits_withSeed(key, 6 + share_len + flen, 0x5eed5eedull);
}

void shared_init(struct broker *b)
{
    struct shared_state *st = calloc(1, sizeof *st);
    AU_ASSERT(st != NULL);
    AU_ASSERT(au_hash_init(&st->groups, 16) == 0);
    sub_index_init(&st->rep);
    b->shared = st;
}

void shared_fini(struct broker *b)
{
    struct shared_state *st = b->shared;
    struct au_hash_iter it;
    au_hash_iter_init(&st->groups, &it);
    while (au_hash_next(&st->groups, &it)) free(it.value);
    au_hash_free(&st->groups);
    sub_index_free(&st->rep);
    free(st);
    b->shared = NULL;
}

/* Apply "shard has / has no members of group gh" to this shard's replica. */
static void apply(struct broker *b, int shard, int present, uint32_t app, uint64_t gh, const uint8_t *filter,
                  uint16_t flen)
{
    struct shared_state *st = b->shared;
    struct share_group *g = au_hash_get_u64(&st->groups, gh);
    if (present) {
        if (!g) {
            g = calloc(1, sizeof *g + flen);
            AU_ASSERT(g != NULL);
            g->gh = gh;
            g->app = app;
            g->filter_len = flen;
            memcpy(g->filter, filter, flen);
            au_hash_put_u64(&st->groups, gh, g);
            struct sub_opts o = { 0 };
            AU_ASSERT(sub_add(&st->rep, app, filter, flen, g, &o, NULL, 0) >= 0);
        }
        g->shard_mask |= 1ull << shard;
    } else if (g) {
        g->shard_mask &= ~(1ull << shard);
        if (!g->shard_mask && !g->local) {
            sub_remove(&st->rep, app, g->filter, g->filter_len, g, NULL, 0);
            au_hash_del_u64(&st->groups, gh);
            free(g);
        }
    }
}

static void member_dispose(struct au_xmsg *x) { free(x); }

static void member_handler(struct au_shard *self, struct au_xmsg *x)
{
    struct member_x *m = (struct member_x *)x;
    apply(broker_of(self), m->shard, m->present, m->app, m->gh, m->filter, m->filter_len);
    free(m);
}

void shared_member(struct broker *b, uint32_t app, const uint8_t *share, size_t share_len, const uint8_t *filter,
                   size_t filter_len, int delta)
{
    struct shared_state *st = b->shared;
    struct au_shard *sh = b->shard;
    uint64_t gh = group_hash(app, share, share_len, filter, filter_len);
    struct share_group *g = au_hash_get_u64(&st->groups, gh);
    uint32_t before = g ? g->local : 0;
    if (delta > 0) {
        apply(b, sh->id, 1, app, gh, filter, (uint16_t)filter_len);
        g = au_hash_get_u64(&st->groups, gh);
        g->local++;
    } else {
        if (!g || !g->local) return;
        g->local--;
    }
    uint32_t after = g->local;
    if ((before == 0) == (after == 0)) return;
    int present = after > 0;
    if (!present) apply(b, sh->id, 0, app, gh, filter, (uint16_t)filter_len);
    for (int i = 0; i < sh->nshards; i++) {
        if (i == sh->id) continue;
        struct member_x *m = malloc(sizeof *m + filter_len);
        AU_ASSERT(m != NULL);
        m->x.handler = member_handler;
        m->shard = sh->id;
        m->present = present;
        m->app = app;
        m->gh = gh;
        m->filter_len = (uint16_t)filter_len;
        memcpy(m->filter, filter, filter_len);
        au_shard_post_disposable(sh, i, &m->x, member_dispose);
    }
}

struct pick_ctx {
    struct share_picks *p;
    uint32_t cap;
};

static void on_group(void *ctx, const struct sub_entry *e)
{
    struct pick_ctx *pc = ctx;
    struct share_group *g = e->session;
    if (!g->shard_mask) return;
    int n = __builtin_popcountll(g->shard_mask);
    int k = (int)(g->rr++ % (uint32_t)n);
    uint64_t mask = g->shard_mask;
    while (k--) mask &= mask - 1;
    int shard = __builtin_ctzll(mask);
    if (!pc->p || pc->p->n == pc->cap) {
        pc->cap = pc->cap ? pc->cap * 2 : 4;
        pc->p = realloc(pc->p, sizeof *pc->p + sizeof pc->p->e[0] * pc->cap);
        AU_ASSERT(pc->p != NULL);
        if (pc->cap == 4) pc->p->n = 0;
    }
    pc->p->e[pc->p->n].gh = g->gh;
    pc->p->e[pc->p->n].shard = shard;
    pc->p->n++;
}

void shared_pick(struct broker *b, struct msg *m)
{
    struct shared_state *st = b->shared;
    if (!au_hash_count(&st->groups)) return;
    struct pick_ctx pc = { NULL, 0 };
    sub_match(&st->rep, m->app, msg_topic(m), m->topic_len, on_group, NULL, &pc);
    m->picks = pc.p;
}

bool shared_choose_here(struct broker *b, struct msg *m, const uint8_t *share, size_t share_len,
                        const uint8_t *filter, size_t filter_len)
{
    if (b->shard->nshards == 1) return true;
    uint64_t gh = group_hash(m->app, share, share_len, filter, filter_len);
    if (m->picks)
        for (uint32_t i = 0; i < m->picks->n; i++)
            if (m->picks->e[i].gh == gh) return m->picks->e[i].shard == b->shard->id;
    /* The origin did not know this group yet: the lowest shard with members serves it. */
    struct share_group *g = au_hash_get_u64(&b->shared->groups, gh);
    if (!g || !g->shard_mask) return true;
    return __builtin_ctzll(g->shard_mask) == b->shard->id;
}
