/* test_im_conv.c - single-chat conversation ids (gateway/im/im.h): exact for every pair of user incarnations
 * (issue 8 item 9: the old 64-bit hash of the two names could make two conversations share one history), below
 * the group bit up to IM_UID_MAX, symmetric, invertible; and the owner shard spreads both kinds. */
#include "gateway/im/im.h"
#include "gateway/im/dir.h"
#include "core/hash.h"
#include "test.h"

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* Every unordered pair of small uids gets its own id, in both orders, and the peer function inverts it. */
TEST(small_pairs_are_distinct_and_invertible)
{
    struct au_hash seen;
    CHECK_EQ(au_hash_init(&seen, 1 << 16), 0);
    const uint64_t n = 300;
    for (uint64_t a = 1; a <= n; a++)
        for (uint64_t b = a; b <= n; b++) {
            uint64_t c = im_conv_single(a, b);
            CHECK_EQ(c, im_conv_single(b, a));
            CHECK(!im_conv_is_group(c));
            CHECK(au_hash_get_u64(&seen, c) == NULL);
            au_hash_put_u64(&seen, c, (void *)1);
            CHECK_EQ(im_conv_single_peer(c, a), b);
            CHECK_EQ(im_conv_single_peer(c, b), a);
        }
    CHECK_EQ(au_hash_count(&seen), n * (n + 1) / 2);
    au_hash_free(&seen);
}

/* Large uids up to IM_UID_MAX: no overflow into the group bit, and the inverse is exact (the double estimate
 * of the square root is corrected). A uid that is not in the conversation gives 0. */
TEST(large_pairs_stay_below_the_group_bit)
{
    uint64_t edge[] = { 1, 2, 10001, 0xffffull, 0x10000ull, 0x7fffffffull, 0x80000000ull, IM_UID_MAX - 1, IM_UID_MAX };
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++)
        for (size_t j = 0; j < sizeof edge / sizeof edge[0]; j++) {
            uint64_t c = im_conv_single(edge[i], edge[j]);
            CHECK(!im_conv_is_group(c));
            CHECK_EQ(im_conv_single_peer(c, edge[i]), edge[j]);
            CHECK_EQ(im_conv_single_peer(c, edge[j]), edge[i]);
        }
    for (int k = 0; k < 200000; k++) {
        uint64_t a = rnd() % IM_UID_MAX + 1, b = rnd() % IM_UID_MAX + 1, x = rnd() % IM_UID_MAX + 1;
        uint64_t c = im_conv_single(a, b);
        CHECK(!im_conv_is_group(c));
        CHECK_EQ(im_conv_single_peer(c, a), b);
        CHECK_EQ(im_conv_single_peer(c, b), a);
        if (x != a && x != b) CHECK_EQ(im_conv_single_peer(c, x), 0);
        /* a different pair never has the same id */
        uint64_t a2 = a == IM_UID_MAX ? a - 1 : a + 1;
        CHECK(im_conv_single(a2, b) != c || a2 == b);
    }
    CHECK_EQ(im_conv_single_peer(im_conv_group(10001), 10001), 0);
}

/* The owner shard depends on the app too (two apps' group 10001 need not share a shard) and spreads
 * consecutive conversations over the shards. */
TEST(owner_shard_spreads)
{
    int count[4] = { 0 };
    for (uint64_t u = 10001; u < 10001 + 4000; u++) count[im_conv_owner(1, im_conv_single(u, u + 1), 4)]++;
    for (int i = 0; i < 4; i++) CHECK(count[i] > 800 && count[i] < 1200);
    int differ = 0;
    for (uint32_t app = 1; app < 64; app++)
        differ += im_conv_owner(app, im_conv_group(10001), 2) != im_conv_owner(app + 1, im_conv_group(10001), 2);
    CHECK(differ > 10);
}

int main(void)
{
    RUN(small_pairs_are_distinct_and_invertible);
    RUN(large_pairs_stay_below_the_group_bit);
    RUN(owner_shard_spreads);
    TEST_MAIN_END();
}
