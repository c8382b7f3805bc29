/* test_bench.c - aurora-bench's pure parts: the latency histogram and the command-line / address
 * validation (loopback only). The load generator's sources are not in libaurora.a, so the two
 * files under test are compiled in here. */
#include "perf/bench/hist.c"
#include "perf/bench/args.c"

#include "tests/unit/test.h"

TEST(hist_exact_below_sub_count)
{
    for (uint64_t v = 0; v < HIST_SUB_COUNT; v++) {
        CHECK_EQ(hist_index(v), v);
        CHECK_EQ(hist_bucket_high(hist_index(v)), v);
    }
}

TEST(hist_relative_error_bounded)
{
    /* Every value lands in a bucket whose range holds it, and the bucket is narrow (< 1/128). */
    uint64_t v = HIST_SUB_COUNT;
    uint32_t prev = hist_index(v - 1);
    for (int i = 0; i < 200000; i++) {
        uint32_t idx = hist_index(v);
        CHECK(idx >= prev);
        CHECK(idx < HIST_BUCKETS);
        uint64_t hi = hist_bucket_high(idx);
        CHECK(hi >= v);
        CHECK((double)(hi - v) <= (double)v / 128.0 + 1);
        prev = idx;
        v += 1 + v / 97;               /* walk all octaves, not only powers of two */
        if (v > (UINT64_MAX >> 2)) break;
    }
    CHECK(hist_index(UINT64_MAX) == HIST_BUCKETS - 1);
    CHECK_EQ(hist_bucket_high(HIST_BUCKETS - 1) == UINT64_MAX, 1);
}

TEST(hist_quantiles_uniform)
{
    static struct hist h;
    hist_init(&h);
    CHECK_EQ(hist_quantile(&h, 0.5), 0);
    for (uint64_t v = 1; v <= 100000; v++) hist_record(&h, v * 1000);   /* 1 us .. 100 ms in ns */
    CHECK_EQ(h.count, 100000);
    CHECK_EQ(h.min, 1000);
    CHECK_EQ(h.max, 100000000);
    double p50 = (double)hist_quantile(&h, 0.5), p99 = (double)hist_quantile(&h, 0.99);
    double p999 = (double)hist_quantile(&h, 0.999);
    CHECK(p50 >= 50000000.0 && p50 <= 50000000.0 * 1.01);
    CHECK(p99 >= 99000000.0 && p99 <= 99000000.0 * 1.01);
    CHECK(p999 >= 99900000.0 && p999 <= 100000000.0);
    CHECK_EQ(hist_quantile(&h, 1.0), 100000000);
    CHECK(hist_mean(&h) > 50000000.0 && hist_mean(&h) < 50001000.0);
}

TEST(hist_merge_adds)
{
    static struct hist a, b;
    hist_init(&a);
    hist_init(&b);
    for (int i = 0; i < 1000; i++) hist_record(&a, 10);
    for (int i = 0; i < 1000; i++) hist_record(&b, 1000000);
    hist_merge(&a, &b);
    CHECK_EQ(a.count, 2000);
    CHECK_EQ(a.min, 10);
    CHECK_EQ(a.max, 1000000);
    CHECK_EQ(hist_quantile(&a, 0.5), 10);
    CHECK(hist_quantile(&a, 0.51) >= 1000000);
}

TEST(target_loopback_only)
{
    struct sockaddr_storage ss;
    socklen_t len;
    CHECK_EQ(bench_parse_target("127.0.0.1", 1883, &ss, &len), 0);
    CHECK_EQ(len, sizeof(struct sockaddr_in));
    CHECK_EQ(bench_parse_target("127.255.0.9", 1883, &ss, &len), 0);
    CHECK_EQ(bench_parse_target("localhost", 1883, &ss, &len), 0);
    CHECK_EQ(bench_parse_target("::1", 1883, &ss, &len), 0);
    CHECK_EQ(len, sizeof(struct sockaddr_in6));
    CHECK_EQ(bench_parse_target("10.0.0.1", 1883, &ss, &len), -1);
    CHECK_EQ(bench_parse_target("192.168.1.1", 1883, &ss, &len), -1);
    CHECK_EQ(bench_parse_target("8.8.8.8", 1883, &ss, &len), -1);
    CHECK_EQ(bench_parse_target("128.0.0.1", 1883, &ss, &len), -1);
    CHECK_EQ(bench_parse_target("::2", 1883, &ss, &len), -1);
    CHECK_EQ(bench_parse_target("::ffff:10.0.0.1", 1883, &ss, &len), -1);
    CHECK_EQ(bench_parse_target("example.com", 1883, &ss, &len), -1);
    CHECK_EQ(bench_parse_target("", 1883, &ss, &len), -1);
}

TEST(src_ranges)
{
    struct sockaddr_storage *v;
    CHECK_EQ(bench_parse_src("127.0.0.1-127.0.0.50", AF_INET, &v), 50);
    CHECK_EQ(ntohl(((struct sockaddr_in *)&v[0])->sin_addr.s_addr), 0x7f000001u);
    CHECK_EQ(ntohl(((struct sockaddr_in *)&v[49])->sin_addr.s_addr), 0x7f000032u);
    CHECK_EQ(((struct sockaddr_in *)&v[3])->sin_port, 0);
    free(v);
    CHECK_EQ(bench_parse_src("127.0.0.1,127.0.1.1-127.0.1.3", AF_INET, &v), 4);
    free(v);
    CHECK_EQ(bench_parse_src("127.0.0.255-127.0.1.2", AF_INET, &v), 4);   /* crosses an octet */
    free(v);
    CHECK_EQ(bench_parse_src("::1", AF_INET6, &v), 1);
    free(v);
    CHECK_EQ(bench_parse_src("127.0.0.5-127.0.0.1", AF_INET, &v), -1);    /* reversed */
    CHECK_EQ(bench_parse_src("127.0.0.1-10.0.0.1", AF_INET, &v), -1);
    CHECK_EQ(bench_parse_src("10.0.0.1", AF_INET, &v), -1);
    CHECK_EQ(bench_parse_src("::1", AF_INET, &v), -1);                    /* family mismatch */
    CHECK_EQ(bench_parse_src("127.0.0.1", AF_INET6, &v), -1);
    CHECK_EQ(bench_parse_src("127.0.0.0-127.255.255.255", AF_INET, &v), -1); /* too many */
    CHECK_EQ(bench_parse_src("", AF_INET, &v), -1);
    CHECK_EQ(bench_parse_src(",", AF_INET, &v), -1);
}

static int parse(struct bench_cfg *cfg, const char *line)
{
    char buf[512], *argv[64];
    int argc = 0;
    snprintf(buf, sizeof buf, "aurora-bench %s", line);
    for (char *s = strtok(buf, " "); s && argc < 63; s = strtok(NULL, " ")) argv[argc++] = s;
    argv[argc] = NULL;
    free(cfg->src);
    cfg->src = NULL;
    return bench_parse_args(argc, argv, cfg);
}

TEST(args_defaults_and_bounds)
{
    static struct bench_cfg cfg;
    au_log_set_level(AU_LOG_ERROR);
    CHECK_EQ(parse(&cfg, "--scenario fanout"), 0);
    CHECK_EQ(cfg.publishers, 1);
    CHECK_EQ(cfg.subscribers, 100);
    CHECK_EQ(cfg.connections, 101);
    CHECK_EQ(cfg.topics, 1);
    CHECK_EQ(cfg.duration_s, BENCH_DEFAULT_DURATION_S);
    CHECK_EQ(cfg.threads, 2);
    CHECK_EQ(parse(&cfg, "--scenario p2p --publishers 7"), 0);
    CHECK_EQ(cfg.subscribers, 7);
    CHECK_EQ(cfg.topics, 7);
    CHECK_EQ(parse(&cfg, "--scenario fanin --publishers 30 --connections 100"), 0);
    CHECK_EQ(cfg.idle, 69);
    CHECK_EQ(parse(&cfg, "--scenario hold --connections 50000 --src 127.0.0.1-127.0.0.4"), 0);
    CHECK_EQ(cfg.threads, 3);                              /* <= 19000 per ring */
    CHECK_EQ(cfg.n_src, 4);
    CHECK_EQ(parse(&cfg, "--scenario storm --connections 1 --threads 8"), 0);
    CHECK_EQ(cfg.threads, 1);

    CHECK_EQ(parse(&cfg, ""), -1);                         /* scenario required */
    CHECK_EQ(parse(&cfg, "--scenario nope"), -1);
    CHECK_EQ(parse(&cfg, "--scenario hold --duration 0"), -1);
    CHECK_EQ(parse(&cfg, "--scenario hold --duration 601"), -1);
    CHECK_EQ(parse(&cfg, "--scenario hold --duration 600"), 0);
    CHECK_EQ(parse(&cfg, "--scenario hold --host 10.1.2.3"), -1);
    CHECK_EQ(parse(&cfg, "--scenario hold --src 192.168.0.1"), -1);
    CHECK_EQ(parse(&cfg, "--scenario hold --publishers 3"), -1);
    CHECK_EQ(parse(&cfg, "--scenario fanout --qos 3"), -1);
    CHECK_EQ(parse(&cfg, "--scenario fanout --version 3"), -1);
    CHECK_EQ(parse(&cfg, "--scenario fanout --payload 15"), -1);
    CHECK_EQ(parse(&cfg, "--scenario fanout --rate -1"), -1);
    CHECK_EQ(parse(&cfg, "--scenario fanout --window 0"), -1);
    CHECK_EQ(parse(&cfg, "--scenario fanout --topic-prefix a/#"), -1);
    CHECK_EQ(parse(&cfg, "--scenario p2p --publishers 3 --subscribers 4"), -1);
    CHECK_EQ(parse(&cfg, "--scenario fanout --connections 3000000"), -1);
    free(cfg.src);
    cfg.src = NULL;
}

int main(void)
{
    RUN(hist_exact_below_sub_count);
    RUN(hist_relative_error_bounded);
    RUN(hist_quantiles_uniform);
    RUN(hist_merge_adds);
    RUN(target_loopback_only);
    RUN(src_ranges);
    RUN(args_defaults_and_bounds);
    TEST_MAIN_END();
}
