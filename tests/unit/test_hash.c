/* test_hash.c - core/hash: randomized differential test against a reference, growth, iteration,
 * forced collisions and wrap-around clusters, u64 keys, precomputed hashes. */
#include "core/hash.h"
#include "test.h"

#include <stdint.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

/* Checks the Robin Hood invariants over the raw slots: every entry's psl is its distance from home + 1,
 * the count matches, and an entry is never further from home than its predecessor + 1. */
static int table_valid(const struct au_hash *h)
{
    size_t cap = h->mask + 1, n = 0;
    for (size_t i = 0; i < cap; i++) {
        const struct au_hash_slot *s = &h->slots[i];
        if (!s->psl) continue;
        n++;
        size_t home = s->hash & h->mask;
        size_t dist = (i - home) & h->mask;
        if (s->psl != dist + 1) return 0;
        const struct au_hash_slot *p = &h->slots[(i - 1) & h->mask];
        if (s->psl > 1 && p->psl + 1 < s->psl) return 0;
    }
    return n == h->count && h->count <= h->grow_at && h->grow_at < cap;
}

#define NKEYS 40000
static char keybuf[NKEYS][24];
static size_t keylen[NKEYS];
static int present[NKEYS];
static uintptr_t refval[NKEYS];

/* Key 0 is empty; key i > 0 starts with i in 3 bytes (unique), then filler bytes including NULs, for a
 * length of 3..22 bytes. */
static void make_keys(void)
{
    for (int i = 0; i < NKEYS; i++) {
        memset(keybuf[i], 0, sizeof keybuf[i]);
        keylen[i] = i == 0 ? 0 : 3 + (size_t)(i % 20);
        if (i == 0) continue;
        keybuf[i][0] = (char)(i & 0xff);
        keybuf[i][1] = (char)((i >> 8) & 0xff);
        keybuf[i][2] = (char)((i >> 16) & 0xff);
        for (size_t j = 3; j < keylen[i]; j++) keybuf[i][j] = (char)(j % 3 == 0 ? 0 : i * 7 + (int)j);
    }
}

TEST(random_ops_vs_reference)
{
    make_keys();
    memset(present, 0, sizeof present);
    struct au_hash h;
    CHECK_EQ(au_hash_init(&h, 0), 0);
    size_t refcount = 0;
    int bad = 0;
    for (long op = 0; op < 1000000; op++) {
        int k = (int)(rnd() % NKEYS);
        unsigned what = (unsigned)(rnd() % 10);
        if (what < 4) {
            uintptr_t v = (uintptr_t)(rnd() | 1);
            void *prev = au_hash_put(&h, keybuf[k], keylen[k], (void *)v);
            if (present[k] ? prev != (void *)refval[k] : prev != NULL) bad++;
            if (!present[k]) refcount++;
            present[k] = 1;
            refval[k] = v;
        } else if (what < 7) {
            void *v = au_hash_del(&h, keybuf[k], keylen[k]);
            if (present[k] ? v != (void *)refval[k] : v != NULL) bad++;
            if (present[k]) refcount--;
            present[k] = 0;
        } else {
            void *v = au_hash_get(&h, keybuf[k], keylen[k]);
            if (present[k] ? v != (void *)refval[k] : v != NULL) bad++;
        }
        if (au_hash_count(&h) != refcount) bad++;
        if (op % 100000 == 0 && !table_valid(&h)) bad++;
    }
    CHECK_EQ(bad, 0);
    CHECK(table_valid(&h));
    for (int k = 0; k < NKEYS; k++) {
        void *v = au_hash_get(&h, keybuf[k], keylen[k]);
        if (present[k] ? v != (void *)refval[k] : v != NULL) bad++;
    }
    CHECK_EQ(bad, 0);
    au_hash_free(&h);
}

TEST(growth_and_capacity)
{
    struct au_hash h;
    CHECK_EQ(au_hash_init(&h, 0), 0);
    CHECK_EQ(au_hash_capacity(&h), AU_HASH_MIN_CAPACITY);
    size_t last_cap = au_hash_capacity(&h);
    int grew = 0;
    for (uint64_t i = 0; i < 200000; i++) {
        CHECK(au_hash_put_u64(&h, i * 7919, (void *)(uintptr_t)(i + 1)) == NULL);
        if (au_hash_capacity(&h) != last_cap) {
            CHECK_EQ(au_hash_capacity(&h), last_cap * 2); /* doubles */
            CHECK(i >= last_cap - last_cap / 8);           /* only once 7/8 full */
            last_cap = au_hash_capacity(&h);
            grew++;
        }
    }
    CHECK(grew >= 14);
    CHECK(table_valid(&h));
    CHECK_EQ(au_hash_count(&h), 200000);
    int bad = 0;
    for (uint64_t i = 0; i < 200000; i++)
        if (au_hash_get_u64(&h, i * 7919) != (void *)(uintptr_t)(i + 1)) bad++;
    CHECK_EQ(bad, 0);
    CHECK(au_hash_get_u64(&h, 1) == NULL);
    /* clear keeps capacity */
    size_t cap = au_hash_capacity(&h);
    au_hash_clear(&h);
    CHECK_EQ(au_hash_count(&h), 0);
    CHECK_EQ(au_hash_capacity(&h), cap);
    CHECK(au_hash_get_u64(&h, 7919) == NULL);
    au_hash_free(&h);

    /* initial capacity and reserve avoid growth */
    CHECK_EQ(au_hash_init(&h, 1000), 0);
    cap = au_hash_capacity(&h);
    for (uint64_t i = 0; i < 1000; i++) au_hash_put_u64(&h, i, (void *)1);
    CHECK_EQ(au_hash_capacity(&h), cap);
    CHECK_EQ(au_hash_reserve(&h, 100000), 0);
    cap = au_hash_capacity(&h);
    CHECK(cap - cap / 8 >= 100000);
    for (uint64_t i = 1000; i < 100000; i++) au_hash_put_u64(&h, i, (void *)1);
    CHECK_EQ(au_hash_capacity(&h), cap);
    CHECK_EQ(au_hash_count(&h), 100000);
    CHECK(table_valid(&h));
    au_hash_free(&h);

    /* a zero-initialised table works without init (lazy allocation) */
    struct au_hash z = {0};
    CHECK(au_hash_get(&z, "a", 1) == NULL);
    CHECK(au_hash_del(&z, "a", 1) == NULL);
    CHECK(au_hash_put(&z, "a", 1, (void *)5) == NULL);
    CHECK(au_hash_get(&z, "a", 1) == (void *)5);
    au_hash_free(&z);
}

TEST(iteration_visits_each_once)
{
    struct au_hash h;
    CHECK_EQ(au_hash_init(&h, 0), 0);
    struct au_hash_iter it;
    au_hash_iter_init(&h, &it);
    CHECK(!au_hash_next(&h, &it)); /* empty */

    enum { N = 5000 };
    static unsigned char seen[N];
    static char keys[N][8];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "%d", i);
        au_hash_put(&h, keys[i], strlen(keys[i]), (void *)(uintptr_t)(i + 1));
        au_hash_put_u64(&h, (uint64_t)i << 40, (void *)(uintptr_t)(N + i + 1));
    }
    memset(seen, 0, sizeof seen);
    int n = 0, bad = 0, nu = 0;
    au_hash_iter_init(&h, &it);
    while (au_hash_next(&h, &it)) {
        n++;
        uintptr_t v = (uintptr_t)it.value;
        if (it.is_u64) {
            nu++;
            if (it.key != NULL || it.u64 != (uint64_t)(v - N - 1) << 40) bad++;
            if (it.hash != au_hash_u64(it.u64)) bad++;
        } else {
            if (v < 1 || v > N) { bad++; continue; }
            if (it.key != keys[v - 1] || it.len != strlen(keys[v - 1])) bad++;
            if (it.hash != au_hash_bytes(it.key, it.len)) bad++;
            if (seen[v - 1]++) bad++;
        }
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(n, 2 * N);
    CHECK_EQ(nu, N);

    /* delete every other string entry while iterating: each entry still visited exactly once */
    memset(seen, 0, sizeof seen);
    n = 0;
    au_hash_iter_init(&h, &it);
    while (au_hash_next(&h, &it)) {
        n++;
        uintptr_t v = (uintptr_t)it.value;
        if (it.is_u64) {
            if (au_hash_iter_del(&h, &it) != (void *)v) bad++; /* drop all u64 entries */
            continue;
        }
        if (seen[v - 1]++) bad++;
        if (v % 2 == 0 && au_hash_iter_del(&h, &it) != (void *)v) bad++;
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(n, 2 * N);
    CHECK_EQ(au_hash_count(&h), N / 2);
    CHECK(table_valid(&h));
    for (int i = 0; i < N; i++) {
        void *v = au_hash_get(&h, keys[i], strlen(keys[i]));
        if ((i + 1) % 2 == 0 ? v != NULL : v != (void *)(uintptr_t)(i + 1)) bad++;
        if (!seen[i]) bad++;
    }
    CHECK_EQ(bad, 0);

    /* delete everything while iterating */
    au_hash_iter_init(&h, &it);
    n = 0;
    while (au_hash_next(&h, &it)) { au_hash_iter_del(&h, &it); n++; }
    CHECK_EQ(n, N / 2);
    CHECK_EQ(au_hash_count(&h), 0);
    au_hash_free(&h);
}

/* Forced collisions through the precomputed-hash API: every key shares a few hash values, and the homes sit
 * at the end of the table so probe runs wrap around slot 0. */
TEST(collisions_and_wraparound)
{
    struct au_hash h;
    CHECK_EQ(au_hash_init(&h, 100), 0);
    size_t cap = au_hash_capacity(&h);
    enum { N = 100 };
    static char keys[N][8];
    int bad = 0;
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < N; i++) {
            snprintf(keys[i], sizeof keys[i], "c%d", i);
            uint64_t hv = (cap - 3) + (uint64_t)(i % 4); /* homes cap-3 .. cap */
            void *prev = au_hash_put_h(&h, hv, keys[i], strlen(keys[i]), (void *)(uintptr_t)(i + 1));
            if (prev != NULL) bad++;
        }
        CHECK_EQ(au_hash_capacity(&h), cap); /* init(100) room, no growth */
        if (!table_valid(&h)) bad++;
        /* delete in a scrambled order and verify the rest stays reachable */
        for (int j = 0; j < N; j++) {
            int i = (j * 37 + round) % N;
            uint64_t hv = (cap - 3) + (uint64_t)(i % 4);
            if (au_hash_del_h(&h, hv, keys[i], strlen(keys[i])) != (void *)(uintptr_t)(i + 1)) bad++;
            if (au_hash_get_h(&h, hv, keys[i], strlen(keys[i])) != NULL) bad++;
            for (int k = 0; k < N; k++) {
                int gone = 0;
                for (int m = 0; m <= j; m++) if ((m * 37 + round) % N == k) gone = 1;
                uint64_t hk = (cap - 3) + (uint64_t)(k % 4);
                void *v = au_hash_get_h(&h, hk, keys[k], strlen(keys[k]));
                if (gone ? v != NULL : v != (void *)(uintptr_t)(k + 1)) bad++;
            }
            if (!table_valid(&h)) bad++;
        }
        CHECK_EQ(au_hash_count(&h), 0);
    }
    CHECK_EQ(bad, 0);

    /* same hash, different keys, different lengths; prefix keys */
    au_hash_clear(&h);
    au_hash_put_h(&h, 42, "ab", 2, (void *)1);
    au_hash_put_h(&h, 42, "abc", 3, (void *)2);
    au_hash_put_h(&h, 42, "", 0, (void *)3);
    CHECK(au_hash_get_h(&h, 42, "ab", 2) == (void *)1);
    CHECK(au_hash_get_h(&h, 42, "abc", 3) == (void *)2);
    CHECK(au_hash_get_h(&h, 42, "", 0) == (void *)3);
    CHECK(au_hash_get_h(&h, 42, "abd", 3) == NULL);
    CHECK(au_hash_get_h(&h, 43, "ab", 2) == NULL);
    au_hash_free(&h);
}

TEST(api_semantics)
{
    struct au_hash h;
    CHECK_EQ(au_hash_init(&h, 4), 0);
    /* keys are not copied: put stores the caller's pointer; replace updates the stored pointer */
    char k1[] = "client-1", k2[] = "client-1";
    CHECK(au_hash_put(&h, k1, 8, (void *)10) == NULL);
    CHECK(au_hash_put(&h, k2, 8, (void *)11) == (void *)10);
    struct au_hash_iter it;
    au_hash_iter_init(&h, &it);
    CHECK(au_hash_next(&h, &it));
    CHECK(it.key == k2);
    memset(k1, 'x', 8); /* old key memory may now change without affecting the table */
    CHECK(au_hash_get(&h, "client-1", 8) == (void *)11);
    CHECK_EQ(au_hash_count(&h), 1);

    /* precomputed-hash variants interoperate with the plain ones */
    uint64_t hv = au_hash_bytes("topic/a", 7);
    CHECK(au_hash_put_h(&h, hv, "topic/a", 7, (void *)20) == NULL);
    CHECK(au_hash_get(&h, "topic/a", 7) == (void *)20);
    CHECK(au_hash_get_h(&h, hv, "topic/a", 7) == (void *)20);
    CHECK(au_hash_del_h(&h, hv, "topic/a", 7) == (void *)20);
    CHECK(au_hash_get(&h, "topic/a", 7) == NULL);

    /* u64 keys never equal byte keys, even with the same bytes */
    uint64_t u = 0x3132333435363738ull;
    CHECK(au_hash_put_u64(&h, u, (void *)30) == NULL);
    CHECK(au_hash_put(&h, &u, 8, (void *)31) == NULL);
    CHECK(au_hash_get_u64(&h, u) == (void *)30);
    CHECK(au_hash_get(&h, &u, 8) == (void *)31);
    CHECK(au_hash_put_u64(&h, u, (void *)32) == (void *)30);
    CHECK(au_hash_del_u64(&h, u) == (void *)32);
    CHECK(au_hash_del_u64(&h, u) == NULL);
    CHECK(au_hash_get(&h, &u, 8) == (void *)31);
    CHECK(au_hash_put_u64(&h, 0, (void *)33) == NULL); /* key 0 is an ordinary key */
    CHECK(au_hash_get_u64(&h, 0) == (void *)33);

    void *prev = (void *)1;
    CHECK_EQ(au_hash_try_put(&h, "x", 1, (void *)40, &prev), 0);
    CHECK(prev == NULL);
    CHECK_EQ(au_hash_try_put(&h, "x", 1, (void *)41, &prev), 0);
    CHECK(prev == (void *)40);
    CHECK_EQ(au_hash_try_put_u64(&h, 9, (void *)42, NULL), 0);
    CHECK(au_hash_get_u64(&h, 9) == (void *)42);

    /* hashes are deterministic within the process */
    CHECK(au_hash_bytes("abc", 3) == au_hash_bytes("abc", 3));
    CHECK(au_hash_bytes("abc", 3) != au_hash_bytes("abd", 3));
    CHECK(au_hash_u64(1) != au_hash_u64(2));
    CHECK(table_valid(&h));
    au_hash_free(&h);
    CHECK(h.slots == NULL);
}

int main(void)
{
    RUN(random_ops_vs_reference);
    RUN(growth_and_capacity);
    RUN(iteration_visits_each_once);
    RUN(collisions_and_wraparound);
    RUN(api_semantics);
    TEST_MAIN_END();
}
