/* fuzz_topic.c - libFuzzer target for the topic layer (gateway/mqtt/topic.h).
 *
 * 1. The whole input goes through topic_name_valid / topic_filter_valid / topic_sub_parse /
 *    topic_matches, with invariants between them (a valid topic is a valid filter that matches
 *    itself; a parsed share's filter lies inside the input and is valid).
 * 2. The input is then read as a stream of operations on a small subscription index and retained
 *    store, checked against a shadow model that uses only topic_matches:
 *        [op][len][len bytes]...     op & 7:   0 sub_add   1 sub_remove  2 sub_match
 *                                              3 retained_set  4 retained delete  5 retained_match
 *                                    op >> 3 & 7: session   op >> 6 & 1: share group "g"
 *                                    op >> 7: app (0 or 1)
 *    At the end every shadowed subscription / message is removed and the trie must be empty.
 * Any disagreement aborts. */
#include "gateway/mqtt/retained.h"
#include "gateway/mqtt/subindex.h"
#include "gateway/mqtt/topic.h"

#include <stdlib.h>
#include <string.h>

#define MAX_STR  48
#define MAX_ROWS 64

struct srow { uint8_t s[MAX_STR]; size_t len; int sess, share; uint32_t app, sub_id; };
struct rrow { uint8_t s[MAX_STR]; size_t len; uint32_t app, id; };

static struct srow subs[MAX_ROWS];
static int nsubs;
static struct rrow rets[MAX_ROWS];
static int nrets;

#define FAIL(cond) do { if (!(cond)) abort(); } while (0)

static char sessions[8];
#define SESS(i) ((void *)&sessions[(i)])

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

struct got {
    uint32_t plain[MAX_ROWS], shared[MAX_ROWS];
    int np, ns, groups, bad;
};

static void on_sub(void *ctx, const struct sub_entry *e)
{
    struct got *g = ctx;
    if (g->np >= MAX_ROWS) { g->bad = 1; return; }
    g->plain[g->np++] = e->opts.sub_id;
}

static const uint8_t *match_topic;         /* topic of the sub_match in progress */
static size_t match_topic_len;

static void on_share(void *ctx, const uint8_t *share, size_t len, const uint8_t *filter,
                     size_t flen, const struct sub_entry *m, size_t n)
{
    struct got *g = ctx;
    if (len != 1 || share[0] != 'g' || n == 0 || !topic_filter_valid(filter, flen) ||
        !topic_matches(filter, flen, match_topic, match_topic_len))
        g->bad = 1;
    g->groups++;
    for (size_t i = 0; i < n; i++) {
        if (g->ns >= MAX_ROWS) { g->bad = 1; return; }
        g->shared[g->ns++] = m[i].opts.sub_id;
    }
}

struct rgot { uint32_t ids[MAX_ROWS]; int n; };

static bool on_ret(void *ctx, void *msg)
{
    struct rgot *r = ctx;
    FAIL(r->n < MAX_ROWS);
    r->ids[r->n++] = (uint32_t)(uintptr_t)msg;
    return true;
}

static void check_single(const uint8_t *d, size_t n)
{
    bool tv = topic_name_valid(d, n), fv = topic_filter_valid(d, n);
    if (tv) {
        FAIL(fv);
        FAIL(topic_matches(d, n, d, n));
    }
    struct topic_sub ts;
    if (topic_sub_parse(d, n, &ts)) {
        FAIL(ts.filter >= d && ts.filter + ts.filter_len <= d + n);
        FAIL(topic_filter_valid(ts.filter, ts.filter_len));
        if (ts.share) {
            FAIL(ts.share_len > 0 && ts.share > d && ts.share + ts.share_len < ts.filter);
            FAIL(!memchr(ts.share, '/', ts.share_len) && !memchr(ts.share, '+', ts.share_len) &&
                 !memchr(ts.share, '#', ts.share_len));
        } else {
            FAIL(fv && ts.filter == d && ts.filter_len == n);
        }
    }
    /* filter 0xff topic */
    const uint8_t *sep = memchr(d, 0xff, n);
    if (sep) {
        size_t fl = (size_t)(sep - d);
        const uint8_t *t = sep + 1;
        size_t tl = n - fl - 1;
        bool m = topic_matches(d, fl, t, tl);
        if (topic_filter_valid(d, fl) && topic_name_valid(t, tl)) {
            /* the trie agrees with topic_matches, for a plain and a shared subscription */
            struct sub_index idx;
            sub_index_init(&idx);
            struct sub_opts o = { .sub_id = 1 };
            FAIL(sub_add(&idx, 5, d, fl, SESS(0), &o, NULL, 0) == 0);
            FAIL(sub_add(&idx, 5, d, fl, SESS(1), &o, (const uint8_t *)"g", 1) == 0);
            struct got g = { .np = 0 };
            match_topic = t;
            match_topic_len = tl;
            FAIL(sub_match(&idx, 5, t, tl, on_sub, on_share, &g) == (m ? 2 : 0));
            FAIL(!g.bad && g.np == (m ? 1 : 0) && g.groups == (m ? 1 : 0));
            FAIL(sub_remove(&idx, 5, d, fl, SESS(0), NULL, 0) == 1);
            FAIL(sub_remove(&idx, 5, d, fl, SESS(1), (const uint8_t *)"g", 1) == 1);
            FAIL(idx.nodes == 0);
            sub_index_free(&idx);

            struct retained_store st;
            retained_init(&st, NULL, NULL, 0);
            FAIL(retained_set(&st, 5, t, tl, (void *)(uintptr_t)7) == 0);
            struct rgot r = { .n = 0 };
            FAIL(retained_match(&st, 5, d, fl, on_ret, &r) == (m ? 1 : 0));
            FAIL(retained_set(&st, 5, t, tl, NULL) == 1);
            FAIL(st.nodes == 0);
            retained_free(&st);
        }
    }
}

static bool same(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    return al == bl && memcmp(a, b, al) == 0;
}

static int find_sub(uint32_t app, const uint8_t *s, size_t len, int sess, int share)
{
    for (int i = 0; i < nsubs; i++)
        if (subs[i].app == app && subs[i].sess == sess && subs[i].share == share &&
            same(subs[i].s, subs[i].len, s, len))
            return i;
    return -1;
}

static int find_ret(uint32_t app, const uint8_t *s, size_t len)
{
    for (int i = 0; i < nrets; i++)
        if (rets[i].app == app && same(rets[i].s, rets[i].len, s, len))
            return i;
    return -1;
}

static void check_match(struct sub_index *idx, uint32_t app, const uint8_t *t, size_t tl)
{
    struct got g = { .np = 0 };
    match_topic = t;
    match_topic_len = tl;
    int rc = sub_match(idx, app, t, tl, on_sub, on_share, &g);
    if (!topic_name_valid(t, tl)) {
        FAIL(rc == TOPIC_EINVAL && g.np == 0 && g.ns == 0);
        return;
    }
    uint32_t wp[MAX_ROWS], ws[MAX_ROWS];
    int np = 0, ns = 0, groups = 0;
    for (int i = 0; i < nsubs; i++) {
        if (subs[i].app != app || !topic_matches(subs[i].s, subs[i].len, t, tl))
            continue;
        if (!subs[i].share) {
            wp[np++] = subs[i].sub_id;
            continue;
        }
        ws[ns++] = subs[i].sub_id;
        bool first = true;                  /* one group per distinct filter */
        for (int j = 0; j < i; j++)
            if (subs[j].app == app && subs[j].share && same(subs[j].s, subs[j].len, subs[i].s, subs[i].len))
                first = false;
        groups += first;
    }
    FAIL(!g.bad && rc == g.np + g.groups && g.np == np && g.ns == ns && g.groups == groups);
    qsort(wp, (size_t)np, sizeof wp[0], cmp_u32);
    qsort(ws, (size_t)ns, sizeof ws[0], cmp_u32);
    qsort(g.plain, (size_t)np, sizeof wp[0], cmp_u32);
    qsort(g.shared, (size_t)ns, sizeof ws[0], cmp_u32);
    FAIL(!memcmp(wp, g.plain, (size_t)np * sizeof wp[0]));
    FAIL(!memcmp(ws, g.shared, (size_t)ns * sizeof ws[0]));
}

static void check_retained(struct retained_store *st, uint32_t app, const uint8_t *f, size_t fl)
{
    struct rgot r = { .n = 0 };
    int rc = retained_match(st, app, f, fl, on_ret, &r);
    if (!topic_filter_valid(f, fl)) {
        FAIL(rc == TOPIC_EINVAL && r.n == 0);
        return;
    }
    uint32_t w[MAX_ROWS];
    int n = 0;
    for (int i = 0; i < nrets; i++)
        if (rets[i].app == app && topic_matches(f, fl, rets[i].s, rets[i].len))
            w[n++] = rets[i].id;
    FAIL(rc == n && r.n == n);
    qsort(w, (size_t)n, sizeof w[0], cmp_u32);
    qsort(r.ids, (size_t)n, sizeof w[0], cmp_u32);
    FAIL(!memcmp(w, r.ids, (size_t)n * sizeof w[0]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_single(data, size);

    struct sub_index idx;
    struct retained_store st;
    sub_index_init(&idx);
    retained_init(&st, NULL, NULL, 0);
    nsubs = nrets = 0;
    uint32_t next_id = 1;
    static const uint8_t g[] = "g";

    for (size_t i = 0; i + 2 <= size;) {
        uint8_t op = data[i];
        size_t len = AU_MIN((size_t)data[i + 1] % MAX_STR, size - i - 2);
        const uint8_t *s = data + i + 2;
        i += 2 + len;
        int sess = (op >> 3) & 7, share = (op >> 6) & 1;
        uint32_t app = op >> 7;
        const uint8_t *sh = share ? g : NULL;
        size_t shl = share ? 1 : 0;
        switch (op & 7) {
        case 0: {                                           /* sub_add */
            int at = find_sub(app, s, len, sess, share);
            if (at < 0 && nsubs == MAX_ROWS)
                break;
            struct sub_opts o = { .sub_id = next_id, .qos = (uint8_t)(op % 3) };
            int rc = sub_add(&idx, app, s, len, SESS(sess), &o, sh, shl);
            if (!topic_filter_valid(s, len)) {
                FAIL(rc == TOPIC_EINVAL);
                break;
            }
            FAIL(rc == (at >= 0 ? 1 : 0));
            if (at < 0) {
                at = nsubs++;
                memcpy(subs[at].s, s, len);
                subs[at].len = len;
                subs[at].app = app;
                subs[at].sess = sess;
                subs[at].share = share;
            }
            subs[at].sub_id = next_id++;
            break;
        }
        case 1: {                                           /* sub_remove */
            int at = find_sub(app, s, len, sess, share);
            FAIL(sub_remove(&idx, app, s, len, SESS(sess), sh, shl) == (at >= 0 ? 1 : 0));
            if (at >= 0)
                subs[at] = subs[--nsubs];
            break;
        }
        case 2:
            check_match(&idx, app, s, len);
            break;
        case 3: {                                           /* retained_set */
            int at = find_ret(app, s, len);
            if (at < 0 && nrets == MAX_ROWS)
                break;
            int rc = retained_set(&st, app, s, len, (void *)(uintptr_t)next_id);
            if (!topic_name_valid(s, len)) {
                FAIL(rc == TOPIC_EINVAL);
                break;
            }
            FAIL(rc == (at >= 0 ? 1 : 0));
            if (at < 0) {
                at = nrets++;
                memcpy(rets[at].s, s, len);
                rets[at].len = len;
                rets[at].app = app;
            }
            rets[at].id = next_id++;
            break;
        }
        case 4: {                                           /* retained delete */
            int at = find_ret(app, s, len);
            int rc = retained_set(&st, app, s, len, NULL);
            if (!topic_name_valid(s, len)) {
                FAIL(rc == TOPIC_EINVAL);
                break;
            }
            FAIL(rc == (at >= 0 ? 1 : 0));
            if (at >= 0)
                rets[at] = rets[--nrets];
            break;
        }
        case 5:
            check_retained(&st, app, s, len);
            break;
        default:
            break;
        }
        FAIL(idx.subs == (size_t)nsubs && st.msgs == (size_t)nrets);
        FAIL(retained_count(&st, 0) + retained_count(&st, 1) == (size_t)nrets);
    }

    /* drain: every node must be freed again */
    while (nsubs) {
        struct srow *r = &subs[--nsubs];
        FAIL(sub_remove(&idx, r->app, r->s, r->len, SESS(r->sess), r->share ? g : NULL,
                        r->share ? 1 : 0) == 1);
    }
    while (nrets) {
        struct rrow *r = &rets[--nrets];
        FAIL(retained_set(&st, r->app, r->s, r->len, NULL) == 1);
    }
    FAIL(idx.nodes == 0 && idx.subs == 0 && idx.groups == 0);
    FAIL(st.nodes == 0 && st.msgs == 0);
    sub_index_free(&idx);
    retained_free(&st);
    return 0;
}
