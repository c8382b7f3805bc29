/* test_topic.c - topic validation, matching, the subscription index and the retained store. */
#include "gateway/mqtt/retained.h"
#include "gateway/mqtt/subindex.h"
#include "gateway/mqtt/topic.h"
#include "tests/unit/test.h"

#include <stdint.h>

#define S(str) (const uint8_t *)(str), strlen(str)

/* ---- helpers -------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static char sess_mem[1 << 17];                   /* sessions are addresses in here */
#define SESS(i) ((void *)&sess_mem[(i)])
#define SESS_ID(p) ((int)((char *)(p) - sess_mem))

/* Records what sub_match reports. */
#define REC_MAX 4096
struct rec {
    int n_sub, n_share;
    int sess[REC_MAX];             /* plain: session ids */
    uint32_t sub_id[REC_MAX];
    uint8_t qos[REC_MAX];
    int share_members[REC_MAX];    /* per share callback: member count */
    char share_name[REC_MAX][16];
    char share_filter[REC_MAX][16];
    uint32_t share_ids[REC_MAX];   /* sub ids of all members of all groups */
    int n_share_ids;
};

static void rec_sub(void *ctx, const struct sub_entry *e)
{
    struct rec *r = ctx;
    if (r->n_sub < REC_MAX) {
        r->sess[r->n_sub] = SESS_ID(e->session);
        r->sub_id[r->n_sub] = e->opts.sub_id;
        r->qos[r->n_sub] = e->opts.qos;
    }
    r->n_sub++;
}

static void rec_share(void *ctx, const uint8_t *share, size_t len, const uint8_t *filter,
                      size_t flen, const struct sub_entry *m, size_t n)
{
    struct rec *r = ctx;
    if (r->n_share < REC_MAX) {
        r->share_members[r->n_share] = (int)n;
        snprintf(r->share_name[r->n_share], sizeof r->share_name[0], "%.*s", (int)len, share);
        snprintf(r->share_filter[r->n_share], sizeof r->share_filter[0], "%.*s", (int)flen, filter);
    }
    r->n_share++;
    for (size_t i = 0; i < n; i++)
        if (r->n_share_ids < REC_MAX)
            r->share_ids[r->n_share_ids++] = m[i].opts.sub_id;
}

static int match(struct sub_index *idx, uint32_t app, const char *topic, struct rec *r)
{
    memset(r, 0, sizeof *r);
    return sub_match(idx, app, S(topic), rec_sub, rec_share, r);
}

static struct sub_opts opts(uint8_t qos, uint32_t sub_id)
{
    struct sub_opts o = { .qos = qos, .sub_id = sub_id };
    return o;
}

static int add(struct sub_index *idx, uint32_t app, const char *filter, int sess, uint8_t qos,
               uint32_t sub_id, const char *share)
{
    struct sub_opts o = opts(qos, sub_id);
    return sub_add(idx, app, S(filter), SESS(sess), &o, (const uint8_t *)share,
                   share ? strlen(share) : 0);
}

static int del(struct sub_index *idx, uint32_t app, const char *filter, int sess, const char *share)
{
    return sub_remove(idx, app, S(filter), SESS(sess), (const uint8_t *)share,
                      share ? strlen(share) : 0);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* ---- validation ----------------------------------------------------------------------------- */

TEST(topic_names)
{
    static const char *valid[] = { "a", "a/b", "/", "//", "/finance", "a//b", "a/", "$SYS/x", "$",
                                   "sport/tennis/player1", " ", "a b/c", "ü/ñ", "$share/g/x" };
    static const char *invalid[] = { "", "+", "#", "a/+", "a/#", "a+", "sport/ten#nis", "+/a" };
    for (size_t i = 0; i < AU_ARRAY_LEN(valid); i++) {
        if (!topic_name_valid(S(valid[i])))
            printf("  expected valid: '%s'\n", valid[i]);
        CHECK(topic_name_valid(S(valid[i])));
    }
    for (size_t i = 0; i < AU_ARRAY_LEN(invalid); i++) {
        if (topic_name_valid(S(invalid[i])))
            printf("  expected invalid: '%s'\n", invalid[i]);
        CHECK(!topic_name_valid(S(invalid[i])));
    }
    CHECK(!topic_name_valid((const uint8_t *)"a\0b", 3));
    CHECK(!topic_name_valid(NULL, 0));

    /* length and level limits */
    static uint8_t buf[AU_MQTT_MAX_TOPIC + 2];
    memset(buf, 'x', sizeof buf);
    CHECK(topic_name_valid(buf, AU_MQTT_MAX_TOPIC));
    CHECK(!topic_name_valid(buf, AU_MQTT_MAX_TOPIC + 1));
    size_t n = 0;
    for (int i = 0; i < AU_MQTT_MAX_TOPIC_LEVELS - 1; i++)
        buf[n++] = '/';
    CHECK(topic_name_valid(buf, n));           /* 64 empty levels */
    buf[n++] = '/';
    CHECK(!topic_name_valid(buf, n));          /* 65 */
}

TEST(topic_filters)
{
    static const char *valid[] = { "#", "+", "+/+", "/+", "+/", "a/#", "a/+/b", "+/+/#", "/#",
                                   "//", "$SYS/#", "a", "a//b", "+/tennis/#", "sport/+", "$share" };
    static const char *invalid[] = { "", "a#", "#/a", "a/#/b", "a/b#", "a+", "+a", "a/+b/c",
                                     "a/b+/c", "##", "++", "a/##", "#/", "a/#/" };
    for (size_t i = 0; i < AU_ARRAY_LEN(valid); i++) {
        if (!topic_filter_valid(S(valid[i])))
            printf("  expected valid: '%s'\n", valid[i]);
        CHECK(topic_filter_valid(S(valid[i])));
    }
    for (size_t i = 0; i < AU_ARRAY_LEN(invalid); i++) {
        if (topic_filter_valid(S(invalid[i])))
            printf("  expected invalid: '%s'\n", invalid[i]);
        CHECK(!topic_filter_valid(S(invalid[i])));
    }
    CHECK(!topic_filter_valid((const uint8_t *)"a/\0", 3));
    static uint8_t buf[AU_MQTT_MAX_TOPIC + 2];
    memset(buf, '/', sizeof buf);
    CHECK(topic_filter_valid(buf, AU_MQTT_MAX_TOPIC_LEVELS - 1));
    CHECK(!topic_filter_valid(buf, AU_MQTT_MAX_TOPIC_LEVELS));
    memset(buf, 'x', sizeof buf);
    CHECK(topic_filter_valid(buf, AU_MQTT_MAX_TOPIC));
    CHECK(!topic_filter_valid(buf, AU_MQTT_MAX_TOPIC + 1));
}

TEST(share_parse)
{
    static const struct { const char *in; int ok; const char *share, *filter; } t[] = {
        { "$share/g/a/b", 1, "g", "a/b" },
        { "$share/group1/#", 1, "group1", "#" },
        { "$share/g/+", 1, "g", "+" },
        { "$share/g//", 1, "g", "/" },
        { "$share/g/$SYS/x", 1, "g", "$SYS/x" },
        { "a/b", 1, NULL, "a/b" },
        { "#", 1, NULL, "#" },
        { "$sharex/g/a", 1, NULL, "$sharex/g/a" },      /* not the $share prefix */
        { "$SHARE/g/a", 1, NULL, "$SHARE/g/a" },
        { "$share", 0, NULL, NULL },
        { "$share/", 0, NULL, NULL },
        { "$share/g", 0, NULL, NULL },                  /* no filter */
        { "$share/g/", 0, NULL, NULL },                 /* empty filter */
        { "$share//a", 0, NULL, NULL },                 /* empty share name */
        { "$share/g+/a", 0, NULL, NULL },
        { "$share/+/a", 0, NULL, NULL },
        { "$share/#/a", 0, NULL, NULL },
        { "$share/g#/a", 0, NULL, NULL },
        { "$share/g/a#", 0, NULL, NULL },               /* invalid filter */
        { "$share/g/#/a", 0, NULL, NULL },
        { "a/#/b", 0, NULL, NULL },
        { "", 0, NULL, NULL },
    };
    for (size_t i = 0; i < AU_ARRAY_LEN(t); i++) {
        struct topic_sub s;
        bool ok = topic_sub_parse(S(t[i].in), &s);
        if (ok != (bool)t[i].ok)
            printf("  '%s': got %d\n", t[i].in, ok);
        CHECK_EQ(ok, t[i].ok);
        if (!ok || !t[i].ok)
            continue;
        CHECK(s.filter_len == strlen(t[i].filter) && memcmp(s.filter, t[i].filter, s.filter_len) == 0);
        if (t[i].share)
            CHECK(s.share_len == strlen(t[i].share) && memcmp(s.share, t[i].share, s.share_len) == 0);
        else
            CHECK(s.share == NULL && s.share_len == 0);
    }
    CHECK(!topic_sub_parse((const uint8_t *)"$share/a\0/x", 11, &(struct topic_sub){0}));
}

/* ---- matching -------------------------------------------------------------------------------- */

static const struct { const char *f, *t; int m; } match_tab[] = {
    { "a", "a", 1 }, { "a", "b", 0 }, { "a", "a/b", 0 }, { "a/b", "a", 0 },
    { "#", "a", 1 }, { "#", "a/b/c", 1 }, { "#", "/", 1 }, { "#", "/finance", 1 },
    { "a/#", "a", 1 }, { "a/#", "a/", 1 }, { "a/#", "a/b", 1 }, { "a/#", "a/b/c", 1 },
    { "a/#", "ab", 0 }, { "a/#", "b/a", 0 }, { "a/b/#", "a", 0 },
    { "sport/tennis/player1/#", "sport/tennis/player1", 1 },
    { "sport/tennis/player1/#", "sport/tennis/player1/ranking", 1 },
    { "sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", 1 },
    { "sport/#", "sport", 1 },
    { "sport/tennis/+", "sport/tennis/player1", 1 }, { "sport/tennis/+", "sport/tennis/player1/ranking", 0 },
    { "sport/+", "sport", 0 }, { "sport/+", "sport/", 1 },
    { "+", "a", 1 }, { "+", "a/b", 0 }, { "+", "/", 0 }, { "+/+", "/", 1 },
    { "+/+", "/finance", 1 }, { "/+", "/finance", 1 }, { "+", "/finance", 0 },
    { "a/+/b", "a//b", 1 }, { "a/+/b", "a/x/b", 1 }, { "a/+/b", "a/b", 0 }, { "a//b", "a//b", 1 },
    { "+/#", "a", 1 }, { "+/#", "/", 1 }, { "+/+/#", "a", 0 },
    { "/", "/", 1 }, { "/#", "/", 1 }, { "/#", "/a", 1 }, { "/#", "a", 0 },
    /* the $ rule */
    { "#", "$SYS/x", 0 }, { "+/x", "$SYS/x", 0 }, { "+", "$SYS", 0 }, { "+/#", "$SYS/a", 0 },
    { "$SYS/#", "$SYS/x", 1 }, { "$SYS/#", "$SYS", 1 }, { "$SYS/+", "$SYS/x", 1 },
    { "$SYS/monitor/+", "$SYS/monitor/Clients", 1 }, { "a/+", "a/$x", 1 }, { "a/#", "a/$x", 1 },
    { "/#", "/$x", 1 }, { "+/$x", "a/$x", 1 }, { "$", "$", 1 }, { "#", "$", 0 },
    { "A", "a", 0 }, { "a ", "a", 0 },
};

TEST(matches_single)
{
    for (size_t i = 0; i < AU_ARRAY_LEN(match_tab); i++) {
        bool m = topic_matches(S(match_tab[i].f), S(match_tab[i].t));
        if (m != (bool)match_tab[i].m)
            printf("  '%s' vs '%s': got %d\n", match_tab[i].f, match_tab[i].t, m);
        CHECK_EQ(m, match_tab[i].m);
    }
}

/* The same table through the trie: one index, every filter a separate session. */
TEST(matches_index)
{
    struct sub_index idx;
    sub_index_init(&idx);
    for (size_t i = 0; i < AU_ARRAY_LEN(match_tab); i++)
        CHECK(add(&idx, 7, match_tab[i].f, (int)i, 0, (uint32_t)i, NULL) >= 0);
    for (size_t i = 0; i < AU_ARRAY_LEN(match_tab); i++) {
        static struct rec r;
        CHECK(match(&idx, 7, match_tab[i].t, &r) >= 0);
        int found = 0;
        for (int k = 0; k < r.n_sub; k++)
            found |= r.sess[k] == (int)i;
        if (found != match_tab[i].m)
            printf("  index '%s' vs '%s': got %d\n", match_tab[i].f, match_tab[i].t, found);
        CHECK_EQ(found, match_tab[i].m);
        /* every reported session must really match */
        for (int k = 0; k < r.n_sub; k++)
            CHECK(topic_matches(S(match_tab[r.sess[k]].f), S(match_tab[i].t)));
    }
    CHECK_EQ(sub_match(&idx, 7, S("a/+"), rec_sub, NULL, NULL), TOPIC_EINVAL);
    CHECK_EQ(sub_match(&idx, 7, S(""), rec_sub, NULL, NULL), TOPIC_EINVAL);
    sub_index_free(&idx);
    CHECK_EQ(idx.nodes, 0);
}

TEST(overlapping)
{
    struct sub_index idx;
    sub_index_init(&idx);
    static struct rec r;
    CHECK_EQ(add(&idx, 1, "a/b", 1, 0, 11, NULL), 0);
    CHECK_EQ(add(&idx, 1, "a/+", 1, 1, 12, NULL), 0);
    CHECK_EQ(add(&idx, 1, "a/#", 1, 2, 13, NULL), 0);
    CHECK_EQ(add(&idx, 1, "#", 1, 0, 14, NULL), 0);
    CHECK_EQ(add(&idx, 1, "+/b", 2, 1, 21, NULL), 0);
    CHECK_EQ(match(&idx, 1, "a/b", &r), 5);
    CHECK_EQ(r.n_sub, 5);
    CHECK_EQ(r.n_share, 0);
    uint32_t ids[5];
    memcpy(ids, r.sub_id, sizeof ids);
    qsort(ids, 5, sizeof ids[0], cmp_u32);
    CHECK(ids[0] == 11 && ids[1] == 12 && ids[2] == 13 && ids[3] == 14 && ids[4] == 21);
    CHECK_EQ(match(&idx, 1, "a", &r), 2);          /* a/# and # */
    CHECK_EQ(match(&idx, 1, "$SYS/b", &r), 0);
    sub_index_free(&idx);
}

TEST(share_groups)
{
    struct sub_index idx;
    sub_index_init(&idx);
    static struct rec r;
    CHECK_EQ(add(&idx, 1, "job/+", 1, 1, 1, "workers"), 0);
    CHECK_EQ(add(&idx, 1, "job/+", 2, 1, 2, "workers"), 0);
    CHECK_EQ(add(&idx, 1, "job/+", 3, 1, 3, "workers"), 0);
    CHECK_EQ(add(&idx, 1, "job/+", 3, 2, 4, "workers"), 1);      /* replaces session 3's options */
    CHECK_EQ(add(&idx, 1, "job/+", 4, 0, 5, "audit"), 0);
    CHECK_EQ(add(&idx, 1, "job/#", 5, 0, 6, "workers"), 0);      /* same name, other filter */
    CHECK_EQ(add(&idx, 1, "job/+", 1, 0, 7, NULL), 0);           /* session 1 also plain */
    CHECK_EQ(idx.groups, 3);
    CHECK_EQ(idx.subs, 6);

    CHECK_EQ(match(&idx, 1, "job/42", &r), 4);
    CHECK_EQ(r.n_sub, 1);
    CHECK_EQ(r.sess[0], 1);
    CHECK_EQ(r.n_share, 3);
    int workers = 0, audit = 0;
    for (int i = 0; i < r.n_share; i++) {
        if (!strcmp(r.share_name[i], "workers")) {
            workers++;
            if (!strcmp(r.share_filter[i], "job/+"))
                CHECK_EQ(r.share_members[i], 3);
            else
                CHECK(!strcmp(r.share_filter[i], "job/#") && r.share_members[i] == 1);
        } else {
            CHECK(!strcmp(r.share_name[i], "audit"));
            CHECK(!strcmp(r.share_filter[i], "job/+"));
            CHECK_EQ(r.share_members[i], 1);
            audit++;
        }
    }
    CHECK(workers == 2 && audit == 1);
    qsort(r.share_ids, (size_t)r.n_share_ids, sizeof r.share_ids[0], cmp_u32);
    CHECK_EQ(r.n_share_ids, 5);
    static const uint32_t want[] = { 1, 2, 4, 5, 6 };
    for (int i = 0; i < 5; i++)
        CHECK_EQ(r.share_ids[i], want[i]);

    /* the same session in a share group and as plain subscriber are distinct subscriptions */
    CHECK_EQ(del(&idx, 1, "job/+", 1, NULL), 1);
    CHECK_EQ(del(&idx, 1, "job/+", 1, NULL), 0);
    CHECK_EQ(del(&idx, 1, "job/+", 1, "audit"), 0);
    CHECK_EQ(del(&idx, 1, "job/+", 1, "workers"), 1);
    CHECK_EQ(del(&idx, 1, "job/+", 2, "workers"), 1);
    CHECK_EQ(match(&idx, 1, "job/1", &r), 3);
    CHECK_EQ(del(&idx, 1, "job/+", 3, "workers"), 1);
    CHECK_EQ(idx.groups, 2);                                     /* empty group freed */
    CHECK_EQ(del(&idx, 1, "job/+", 4, "audit"), 1);
    CHECK_EQ(del(&idx, 1, "job/#", 5, "workers"), 1);
    CHECK_EQ(idx.groups, 0);
    CHECK_EQ(idx.subs, 0);
    CHECK_EQ(idx.nodes, 0);

    /* share groups obey the $ rule; invalid share names are rejected */
    CHECK_EQ(add(&idx, 1, "#", 1, 0, 1, "g"), 0);
    CHECK_EQ(match(&idx, 1, "$SYS/x", &r), 0);
    CHECK_EQ(match(&idx, 1, "x", &r), 1);
    CHECK_EQ(add(&idx, 1, "#", 1, 0, 1, "a/b"), TOPIC_EINVAL);
    CHECK_EQ(add(&idx, 1, "#", 1, 0, 1, "a+"), TOPIC_EINVAL);
    CHECK_EQ(add(&idx, 1, "#", 1, 0, 1, "#"), TOPIC_EINVAL);
    sub_index_free(&idx);
}

TEST(add_replace_remove)
{
    struct sub_index idx;
    sub_index_init(&idx);
    static struct rec r;
    CHECK_EQ(add(&idx, 1, "a/b/c", 1, 0, 1, NULL), 0);
    CHECK_EQ(idx.nodes, 4);                                      /* app root + 3 levels */
    CHECK_EQ(add(&idx, 1, "a/b/d", 1, 0, 2, NULL), 0);
    CHECK_EQ(idx.nodes, 5);
    CHECK_EQ(add(&idx, 1, "a/+/#", 2, 0, 3, NULL), 0);
    CHECK_EQ(idx.nodes, 7);
    CHECK_EQ(add(&idx, 1, "a/b/c", 1, 2, 9, NULL), 1);           /* replace options */
    CHECK_EQ(idx.subs, 3);
    CHECK_EQ(idx.nodes, 7);
    CHECK_EQ(match(&idx, 1, "a/b/c", &r), 2);
    for (int i = 0; i < r.n_sub; i++)
        if (r.sess[i] == 1)
            CHECK(r.qos[i] == 2 && r.sub_id[i] == 9);
    CHECK_EQ(add(&idx, 1, "a/#/c", 1, 0, 1, NULL), TOPIC_EINVAL);
    CHECK_EQ(add(&idx, 1, "", 1, 0, 1, NULL), TOPIC_EINVAL);
    CHECK_EQ(idx.nodes, 7);

    CHECK_EQ(del(&idx, 1, "a/b/c", 2, NULL), 0);                 /* other session */
    CHECK_EQ(del(&idx, 2, "a/b/c", 1, NULL), 0);                 /* other app */
    CHECK_EQ(del(&idx, 1, "a/b", 1, NULL), 0);                   /* interior node */
    CHECK_EQ(del(&idx, 1, "a/#/c", 1, NULL), 0);                 /* invalid */
    CHECK_EQ(del(&idx, 1, "a/b/c", 1, NULL), 1);
    CHECK_EQ(idx.nodes, 6);
    CHECK_EQ(del(&idx, 1, "a/b/c", 1, NULL), 0);
    CHECK_EQ(del(&idx, 1, "a/+/#", 2, NULL), 1);
    CHECK_EQ(idx.nodes, 4);
    CHECK_EQ(del(&idx, 1, "a/b/d", 1, NULL), 1);
    CHECK_EQ(idx.nodes, 0);
    CHECK_EQ(idx.subs, 0);
    CHECK_EQ(match(&idx, 1, "a/b/c", &r), 0);

    /* many children under one node: table growth and shrink back to nothing */
    char f[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(f, sizeof f, "root/%d/x", i);
        CHECK_EQ(add(&idx, 3, f, i % 50, 1, (uint32_t)i, NULL), 0);
    }
    CHECK_EQ(idx.nodes, 2 + 2000);
    CHECK_EQ(match(&idx, 3, "root/777/x", &r), 1);
    CHECK_EQ(r.sub_id[0], 777);
    for (int i = 0; i < 1000; i += 2) {
        snprintf(f, sizeof f, "root/%d/x", i);
        CHECK_EQ(del(&idx, 3, f, i % 50, NULL), 1);
    }
    for (int i = 1; i < 1000; i += 2) {
        snprintf(f, sizeof f, "root/%d/x", i);
        CHECK_EQ(match(&idx, 3, f, &r), 1);
        CHECK_EQ(del(&idx, 3, f, i % 50, NULL), 1);
    }
    CHECK_EQ(idx.nodes, 0);
    sub_index_free(&idx);
}

TEST(app_isolation)
{
    struct sub_index idx;
    sub_index_init(&idx);
    static struct rec r;
    CHECK_EQ(add(&idx, 1, "#", 1, 0, 1, NULL), 0);
    CHECK_EQ(add(&idx, 2, "a/b", 2, 0, 2, NULL), 0);
    CHECK_EQ(add(&idx, 0xffffffffu, "a/+", 3, 0, 3, "g"), 0);
    CHECK_EQ(match(&idx, 1, "a/b", &r), 1);
    CHECK_EQ(r.sess[0], 1);
    CHECK_EQ(match(&idx, 2, "a/b", &r), 1);
    CHECK_EQ(r.sess[0], 2);
    CHECK_EQ(match(&idx, 0xffffffffu, "a/b", &r), 1);
    CHECK_EQ(r.n_share, 1);
    CHECK_EQ(match(&idx, 3, "a/b", &r), 0);
    CHECK_EQ(del(&idx, 2, "#", 1, NULL), 0);
    sub_index_free(&idx);

    struct retained_store st;
    retained_init(&st, NULL, NULL, 0);
    CHECK_EQ(retained_set(&st, 1, S("a/b"), SESS(1)), 0);
    CHECK_EQ(retained_set(&st, 2, S("a/b"), SESS(2)), 0);
    CHECK_EQ(retained_count(&st, 1), 1);
    CHECK_EQ(retained_count(&st, 2), 1);
    CHECK_EQ(retained_count(&st, 3), 0);
    CHECK_EQ(retained_match(&st, 3, S("#"), NULL, NULL), 0);
    retained_free(&st);
}

static void count_sub(void *ctx, const struct sub_entry *e)
{
    AU_UNUSED(e);
    (*(size_t *)ctx)++;
}

/* 100k subscribers on one topic: matching is linear in the matches; unrelated big topics do not
 * slow down a small match; removing them one by one is O(1) each. */
TEST(many_subscribers)
{
    enum { N = 100000 };
    struct sub_index idx;
    sub_index_init(&idx);
    for (int i = 0; i < N; i++)
        CHECK_EQ(add(&idx, 1, "chat/room/1", i, 1, (uint32_t)i, NULL), 0);
    for (int i = 0; i < N; i += 10)
        CHECK_EQ(add(&idx, 1, "chat/room/+", i, 1, (uint32_t)i, NULL), 0);
    CHECK_EQ(add(&idx, 1, "chat/room/2", 5, 1, 5, NULL), 0);
    CHECK_EQ(idx.subs, N + N / 10 + 1);

    size_t cnt = 0;
    uint64_t t0 = au_now_us();
    int rc = sub_match(&idx, 1, S("chat/room/1"), count_sub, NULL, &cnt);
    uint64_t t_big = au_now_us() - t0;
    CHECK_EQ(rc, N + N / 10);
    CHECK_EQ(cnt, (size_t)(N + N / 10));

    /* a topic with few subscribers: time independent of the 100k elsewhere */
    cnt = 0;
    t0 = au_now_us();
    for (int i = 0; i < 1000; i++)
        sub_match(&idx, 1, S("chat/other/1"), count_sub, NULL, &cnt);
    uint64_t t_small = au_now_us() - t0;
    CHECK_EQ(cnt, 0);
    printf("  match 110k subscribers: %llu us; 1000 x empty match: %llu us\n",
           (unsigned long long)t_big, (unsigned long long)t_small);
    CHECK(t_big < 200000);      /* generous: sanitizer builds, shared machine */
    CHECK(t_small < 50000);

    /* remove in a scattered order: each removal is O(1) */
    t0 = au_now_us();
    for (int k = 0; k < N; k++) {
        int i = (int)(((uint64_t)k * 7919) % N);
        CHECK_EQ(del(&idx, 1, "chat/room/1", i, NULL), 1);
        if (k == N / 2) {
            cnt = 0;
            CHECK_EQ(sub_match(&idx, 1, S("chat/room/1"), count_sub, NULL, &cnt), N / 2 - 1 + N / 10);
        }
    }
    uint64_t t_del = au_now_us() - t0;
    printf("  remove 100k: %llu us\n", (unsigned long long)t_del);
    CHECK(t_del < 2000000);
    CHECK_EQ(idx.subs, N / 10 + 1);
    cnt = 0;
    CHECK_EQ(sub_match(&idx, 1, S("chat/room/1"), count_sub, NULL, &cnt), N / 10);
    sub_index_free(&idx);
    CHECK_EQ(idx.nodes, 0);
}

/* ---- differential: trie vs topic_matches over the full list -------------------------------- */

static const char *lvl_words[] = { "a", "b", "c", "", "$s", "x y" };

/* A random topic (or filter) of 1..4 levels; never the empty string. */
static void gen(char *out, size_t cap, bool filter)
{
    size_t n = 0;
    while (n == 0) {                /* a single empty level is not a valid topic or filter */
        unsigned levels = 1 + rnd(4);
        for (unsigned i = 0; i < levels; i++) {
            const char *w;
            uint32_t k = rnd(10);
            if (filter && k < 2)
                w = "+";
            else if (filter && k == 2 && i == levels - 1)
                w = "#";
            else if (k < 5)
                w = lvl_words[rnd(2)];
            else
                w = lvl_words[rnd((uint32_t)AU_ARRAY_LEN(lvl_words))];
            if (i > 0)
                out[n++] = '/';
            size_t wl = strlen(w);
            AU_ASSERT(n + wl + 1 < cap);
            memcpy(out + n, w, wl);
            n += wl;
        }
    }
    out[n] = 0;
}

/* n distinct random strings (a shadow row per string must be one trie entry). */
static void gen_unique(char (*out)[64], int n, bool filter)
{
    for (int i = 0; i < n; i++) {
        bool dup;
        do {
            gen(out[i], sizeof out[0], filter);
            dup = false;
            for (int j = 0; j < i; j++)
                dup |= !strcmp(out[i], out[j]);
        } while (dup);
    }
}

#define DIFF_FILTERS 48
#define DIFF_SESS    24

struct shadow { bool live; uint32_t sub_id; };

TEST(differential_index)
{
    static char filters[DIFF_FILTERS][64];
    static const char *shares[] = { NULL, "g1", "g2" };
    /* shadow[filter][share][session] */
    static struct shadow sh[DIFF_FILTERS][3][DIFF_SESS];
    memset(sh, 0, sizeof sh);
    gen_unique(filters, DIFF_FILTERS, true);
    for (int i = 0; i < DIFF_FILTERS; i++)
        CHECK(topic_filter_valid(S(filters[i])));
    struct sub_index idx;
    sub_index_init(&idx);
    uint32_t next_id = 1;
    size_t live = 0;
    int mismatches = 0;
    for (int op = 0; op < 60000 && mismatches < 5; op++) {
        int f = (int)rnd(DIFF_FILTERS), s = (int)rnd(3), se = (int)rnd(DIFF_SESS);
        uint32_t k = rnd(100);
        if (k < 50) {
            uint32_t id = next_id++;
            int rc = add(&idx, 9, filters[f], se, 0, id, shares[s]);
            if (rc != (sh[f][s][se].live ? 1 : 0))
                mismatches++;
            live += !sh[f][s][se].live;
            sh[f][s][se].live = true;
            sh[f][s][se].sub_id = id;
        } else if (k < 85) {
            int rc = del(&idx, 9, filters[f], se, shares[s]);
            if (rc != (sh[f][s][se].live ? 1 : 0))
                mismatches++;
            live -= sh[f][s][se].live;
            sh[f][s][se].live = false;
        } else {
            char topic[64];
            gen(topic, sizeof topic, false);
            static struct rec r;
            int rc = match(&idx, 9, topic, &r);
            static uint32_t want_plain[REC_MAX], want_shared[REC_MAX];
            int np = 0, ns = 0, ngroups = 0;
            for (int fi = 0; fi < DIFF_FILTERS; fi++) {
                if (!topic_matches(S(filters[fi]), S(topic)))
                    continue;
                for (int si = 0; si < 3; si++) {
                    bool any = false;
                    for (int e = 0; e < DIFF_SESS; e++) {
                        if (!sh[fi][si][e].live)
                            continue;
                        any = true;
                        if (si == 0)
                            want_plain[np++] = sh[fi][si][e].sub_id;
                        else
                            want_shared[ns++] = sh[fi][si][e].sub_id;
                    }
                    if (si > 0 && any)
                        ngroups++;
                }
            }
            qsort(want_plain, (size_t)np, sizeof want_plain[0], cmp_u32);
            qsort(want_shared, (size_t)ns, sizeof want_shared[0], cmp_u32);
            qsort(r.sub_id, (size_t)r.n_sub, sizeof r.sub_id[0], cmp_u32);
            qsort(r.share_ids, (size_t)r.n_share_ids, sizeof r.share_ids[0], cmp_u32);
            bool ok = rc == r.n_sub + r.n_share && r.n_sub == np && r.n_share_ids == ns &&
                      r.n_share == ngroups &&
                      !memcmp(r.sub_id, want_plain, (size_t)np * sizeof want_plain[0]) &&
                      !memcmp(r.share_ids, want_shared, (size_t)ns * sizeof want_shared[0]);
            if (!ok) {
                printf("  mismatch on '%s': plain %d/%d shared %d/%d groups %d/%d\n", topic,
                       r.n_sub, np, r.n_share_ids, ns, r.n_share, ngroups);
                mismatches++;
            }
        }
    }
    CHECK_EQ(mismatches, 0);
    CHECK_EQ(idx.subs, live);
    /* remove everything: the trie must be empty again */
    for (int f = 0; f < DIFF_FILTERS; f++)
        for (int s = 0; s < 3; s++)
            for (int se = 0; se < DIFF_SESS; se++)
                if (sh[f][s][se].live) {
                    CHECK_EQ(del(&idx, 9, filters[f], se, shares[s]), 1);
                    sh[f][s][se].live = false;
                }
    CHECK_EQ(idx.subs, 0);
    CHECK_EQ(idx.groups, 0);
    CHECK_EQ(idx.nodes, 0);
    sub_index_free(&idx);
}

/* ---- retained store ------------------------------------------------------------------------- */

static int released;
static void rel(void *ctx, void *msg)
{
    AU_UNUSED(msg);
    (*(int *)ctx)++;
}

struct rrec { int n; int ids[REC_MAX]; int stop_after; };
static bool rrec_cb(void *ctx, void *msg)
{
    struct rrec *r = ctx;
    if (r->n < REC_MAX)
        r->ids[r->n] = SESS_ID(msg);
    r->n++;
    return !(r->stop_after && r->n >= r->stop_after);
}

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

static int rquery(struct retained_store *st, uint32_t app, const char *filter, struct rrec *r)
{
    memset(r, 0, sizeof *r);
    int rc = retained_match(st, app, S(filter), rrec_cb, r);
    qsort(r->ids, (size_t)AU_MIN(r->n, REC_MAX), sizeof r->ids[0], cmp_int);
    return rc;
}

TEST(retained_basic)
{
    struct retained_store st;
    released = 0;
    retained_init(&st, rel, &released, 0);
    static const char *topics[] = { "a", "a/b", "a/b/c", "a/c", "b", "/", "/finance", "a//b",
                                    "$SYS/uptime", "$SYS", "a/$x" };
    for (int i = 0; i < (int)AU_ARRAY_LEN(topics); i++)
        CHECK_EQ(retained_set(&st, 1, S(topics[i]), SESS(i + 1)), 0);
    CHECK_EQ(retained_count(&st, 1), AU_ARRAY_LEN(topics));
    static struct rrec r;

    static const struct { const char *f; int want[12]; } q[] = {
        { "#", { 1, 2, 3, 4, 5, 6, 7, 8, 11 } },
        { "a/#", { 1, 2, 3, 4, 8, 11 } },
        { "a/+", { 2, 4, 11 } },
        { "+", { 1, 5 } },
        { "+/+", { 2, 4, 6, 7, 11 } },
        { "/+", { 6, 7 } },
        { "a/+/b", { 8 } },
        { "a/b", { 2 } },
        { "$SYS/#", { 9, 10 } },
        { "$SYS/+", { 9 } },
        { "+/uptime", { 0 } },
        { "a/b/c/#", { 3 } },
        { "x/#", { 0 } },
        { "+/#", { 1, 2, 3, 4, 5, 6, 7, 8, 11 } },
    };
    for (size_t i = 0; i < AU_ARRAY_LEN(q); i++) {
        int n = 0;
        while (n < 12 && q[i].want[n])
            n++;
        int rc = rquery(&st, 1, q[i].f, &r);
        bool ok = rc == n && r.n == n && !memcmp(r.ids, q[i].want, (size_t)n * sizeof(int));
        if (!ok)
            printf("  retained '%s': got %d results\n", q[i].f, r.n);
        CHECK(ok);
    }
    CHECK_EQ(retained_match(&st, 1, S("a/#/b"), rrec_cb, &r), TOPIC_EINVAL);

    /* early stop */
    memset(&r, 0, sizeof r);
    r.stop_after = 2;
    CHECK_EQ(retained_match(&st, 1, S("#"), rrec_cb, &r), 2);

    /* replace, delete, node freeing */
    size_t nodes = st.nodes;
    CHECK_EQ(retained_set(&st, 1, S("a/b"), SESS(50)), 1);
    CHECK_EQ(released, 1);
    CHECK_EQ(rquery(&st, 1, "a/b", &r), 1);
    CHECK_EQ(r.ids[0], 50);
    CHECK_EQ(retained_set(&st, 1, S("a/b/c"), NULL), 1);
    CHECK_EQ(released, 2);
    CHECK_EQ(st.nodes, nodes - 1);
    CHECK_EQ(retained_set(&st, 1, S("a/b/c"), NULL), 0);
    CHECK_EQ(retained_set(&st, 1, S("zzz/y"), NULL), 0);
    CHECK_EQ(st.nodes, nodes - 1);
    CHECK_EQ(retained_set(&st, 1, S("a/+"), SESS(1)), TOPIC_EINVAL);
    CHECK_EQ(retained_set(&st, 1, S(""), SESS(1)), TOPIC_EINVAL);
    CHECK_EQ(retained_count(&st, 1), AU_ARRAY_LEN(topics) - 1);
    CHECK_EQ(retained_set(&st, 1, S("a/b"), NULL), 1);
    CHECK_EQ(rquery(&st, 1, "a/#", &r), 4);

    /* clearing an app releases everything in it */
    CHECK_EQ(retained_set(&st, 2, S("other"), SESS(3)), 0);
    released = 0;
    CHECK_EQ(retained_clear_app(&st, 1), AU_ARRAY_LEN(topics) - 2);
    CHECK_EQ(released, (int)AU_ARRAY_LEN(topics) - 2);
    CHECK_EQ(retained_count(&st, 1), 0);
    CHECK_EQ(st.msgs, 1);
    CHECK_EQ(st.nodes, 2);
    CHECK_EQ(retained_set(&st, 2, S("other"), NULL), 1);
    CHECK_EQ(st.nodes, 0);
    CHECK_EQ(st.msgs, 0);
    retained_free(&st);
}

TEST(retained_quota_and_free)
{
    struct retained_store st;
    released = 0;
    retained_init(&st, rel, &released, 3);
    CHECK_EQ(retained_set(&st, 1, S("a"), SESS(1)), 0);
    CHECK_EQ(retained_set(&st, 1, S("b"), SESS(2)), 0);
    CHECK_EQ(retained_set(&st, 1, S("c"), SESS(3)), 0);
    size_t nodes = st.nodes;
    CHECK_EQ(retained_set(&st, 1, S("d/e/f"), SESS(4)), TOPIC_EQUOTA);
    CHECK_EQ(st.nodes, nodes);                                   /* nothing left behind */
    CHECK_EQ(retained_set(&st, 1, S("c"), SESS(5)), 1);          /* replacing is fine */
    CHECK_EQ(retained_set(&st, 2, S("d"), SESS(6)), 0);          /* quota is per app */
    CHECK_EQ(released, 1);
    retained_free(&st);
    CHECK_EQ(released, 5);
    CHECK_EQ(st.nodes, 0);
}

/* A test message's size is its number (SESS(n)): the byte budget is easy to reason about. */
static size_t tsize(const void *msg) { return (size_t)SESS_ID(msg); }

TEST(retained_byte_budget)
{
    struct retained_store st;
    released = 0;
    retained_init(&st, rel, &released, 0);
    retained_set_budget(&st, tsize, 100);
    CHECK_EQ(retained_set(&st, 1, S("a"), SESS(40)), 0);
    CHECK_EQ(retained_set(&st, 1, S("b"), SESS(50)), 0);
    CHECK_EQ(retained_bytes(&st, 1), 90);
    CHECK(retained_fits(&st, 1, S("c"), 10) && !retained_fits(&st, 1, S("c"), 11));
    CHECK(retained_fits(&st, 1, S("b"), 60) && !retained_fits(&st, 1, S("b"), 61)); /* b's 50 is replaced */
    size_t nodes = st.nodes;
    CHECK_EQ(retained_set(&st, 1, S("c/d"), SESS(11)), TOPIC_EQUOTA);
    CHECK_EQ(st.nodes, nodes);
    CHECK_EQ(retained_set(&st, 1, S("b"), SESS(61)), TOPIC_EQUOTA);     /* the old one stays */
    CHECK_EQ(retained_bytes(&st, 1), 90);
    CHECK_EQ(released, 0);
    CHECK_EQ(retained_set(&st, 1, S("b"), SESS(60)), 1);
    CHECK_EQ(retained_bytes(&st, 1), 100);
    CHECK_EQ(retained_set(&st, 2, S("b"), SESS(100)), 0);                /* per app */
    CHECK_EQ(retained_set(&st, 1, S("a"), NULL), 1);                     /* a delete frees its bytes */
    CHECK_EQ(retained_bytes(&st, 1), 60);
    CHECK_EQ(retained_set(&st, 1, S("c/d"), SESS(40)), 0);
    CHECK_EQ(retained_bytes(&st, 1), 100);
    CHECK_EQ(retained_clear_app(&st, 1), 2);
    CHECK_EQ(retained_bytes(&st, 1), 0);
    retained_free(&st);
}

TEST(retained_differential)
{
    enum { T = 40 };
    static char topics[T][64];
    static int held[T];
    gen_unique(topics, T, false);
    struct retained_store st;
    retained_init(&st, NULL, NULL, 0);
    memset(held, 0, sizeof held);
    int mismatches = 0, next = 1;
    for (int op = 0; op < 20000 && mismatches < 5; op++) {
        int t = (int)rnd(T);
        uint32_t k = rnd(10);
        if (k < 4) {
            int rc = retained_set(&st, 4, S(topics[t]), SESS(next));
            mismatches += rc != (held[t] ? 1 : 0);
            held[t] = next++;
            if (next >= (int)sizeof sess_mem)
                next = 1;
        } else if (k < 6) {
            int rc = retained_set(&st, 4, S(topics[t]), NULL);
            mismatches += rc != (held[t] ? 1 : 0);
            held[t] = 0;
        } else {
            char f[64];
            gen(f, sizeof f, true);
            static struct rrec r;
            int rc = rquery(&st, 4, f, &r);
            int want[T], n = 0;
            for (int i = 0; i < T; i++)
                if (held[i] && topic_matches(S(f), S(topics[i])))
                    want[n++] = held[i];
            qsort(want, (size_t)n, sizeof want[0], cmp_int);
            if (rc != n || r.n != n || memcmp(want, r.ids, (size_t)n * sizeof want[0])) {
                printf("  retained mismatch on '%s': %d vs %d\n", f, r.n, n);
                mismatches++;
            }
        }
        size_t cnt = 0;
        for (int i = 0; i < T; i++)
            cnt += held[i] != 0;
        if (retained_count(&st, 4) != cnt)
            mismatches++;
    }
    CHECK_EQ(mismatches, 0);
    for (int i = 0; i < T; i++)
        if (held[i]) {
            CHECK_EQ(retained_set(&st, 4, S(topics[i]), NULL), 1);
            held[i] = 0;
        }
    CHECK_EQ(st.nodes, 0);
    retained_free(&st);
}

int main(void)
{
    RUN(topic_names);
    RUN(topic_filters);
    RUN(share_parse);
    RUN(matches_single);
    RUN(matches_index);
    RUN(overlapping);
    RUN(share_groups);
    RUN(add_replace_remove);
    RUN(app_isolation);
    RUN(many_subscribers);
    RUN(differential_index);
    RUN(retained_basic);
    RUN(retained_quota_and_free);
    RUN(retained_byte_budget);
    RUN(retained_differential);
    TEST_MAIN_END();
}
