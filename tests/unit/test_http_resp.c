/* test_http_resp.c - the fast paths of the REST request cycle: response header checks (token table,
 * managed names), http_resp_json_len, and the app-secret check in two steps (auth_secret_parse once,
 * auth_secret_check per request) with its table-driven base64. */
#include "tests/unit/test.h"

#include "gateway/http/http_server.h"
#include "gateway/im/auth.h"

#include <time.h>

struct sink {
    char buf[4096];
    size_t len;
};

static void sink_write(void *io, const void *data, size_t len)
{
    struct sink *s = io;
    if (s->len + len < sizeof s->buf) {
        memcpy(s->buf + s->len, data, len);
        s->len += len;
    }
    s->buf[s->len] = '\0';
}

static bool rfc_tchar(unsigned c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", (int)c) != NULL;
}

static struct sink g_out;
static int g_hdr_rc[256];
static int g_managed[8];

static void h_names(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    (void)req;
    (void)ctx;
    for (unsigned c = 1; c < 256; c++) {
        char name[3] = { 'X', (char)c, '\0' };
        g_hdr_rc[c] = http_resp_header(resp, name, "v");
        resp->hdr_len = 0; /* keep the header space free for the next name */
    }
    static const char *const managed[] = { "CONNECTION", "content-LENGTH", "Transfer-Encoding", "connection",
                                           "Connections", "Content-Lengthx", "Transfer-Encodin", "Content-Type" };
    for (size_t i = 0; i < AU_ARRAY_LEN(managed); i++) {
        g_managed[i] = http_resp_header(resp, managed[i], "1");
        resp->hdr_len = 0;
    }
    http_resp_json_len(resp, 200, "{\"a\":\"b\0c\"}", 11); /* a NUL inside: the length says, not strlen */
}

static int run_one(const char *req)
{
    struct http_conn c;
    g_out.len = 0;
    g_out.buf[0] = '\0';
    http_conn_init(&c, &g_out, sink_write);
    ssize_t n = http_conn_feed(&c, (const uint8_t *)req, strlen(req));
    http_conn_free(&c);
    return n == (ssize_t)strlen(req) ? 0 : -1;
}

TEST(resp_header_names)
{
    http_routes_clear();
    CHECK_EQ(http_route_add("GET", "/names", h_names), 0);
    CHECK_EQ(run_one("GET /names HTTP/1.1\r\n\r\n"), 0);
    for (unsigned c = 1; c < 256; c++)
        if ((g_hdr_rc[c] == 0) != rfc_tchar(c)) {
            printf("  byte 0x%02x: rc %d\n", c, g_hdr_rc[c]);
            CHECK(0);
        }
    static const int want[] = { -1, -1, -1, -1, 0, 0, 0, 0 };
    for (size_t i = 0; i < AU_ARRAY_LEN(want); i++) CHECK_EQ(g_managed[i], want[i]);
    CHECK_EQ(g_out.len, strlen(g_out.buf) + 1 + 3); /* the body's NUL and what follows it were sent */
    CHECK(strncmp(g_out.buf, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\":\"b",
                  g_out.len) == 0);
    CHECK(memcmp(g_out.buf + g_out.len - 4, "\0c\"}", 4) == 0);
    http_routes_clear();
}

TEST(b64_alphabets)
{
    uint8_t all[256], back[256];
    char enc[400];
    for (size_t i = 0; i < sizeof all; i++) all[i] = (uint8_t)i;
    for (int url = 0; url < 2; url++) {
        size_t n = auth_b64_enc(all, sizeof all, enc, url);
        CHECK_EQ(auth_b64_dec(enc, n, back, sizeof back, url), 256);
        CHECK(memcmp(all, back, sizeof all) == 0);
        /* the other alphabet's two symbols are refused */
        CHECK_EQ(auth_b64_dec(url ? "ab+d" : "ab-d", 4, back, sizeof back, url), -1);
        CHECK_EQ(auth_b64_dec(url ? "ab/d" : "ab_d", 4, back, sizeof back, url), -1);
        CHECK_EQ(auth_b64_dec("ab=d", 4, back, sizeof back, url), -1);
        CHECK_EQ(auth_b64_dec("ab\x80" "d", 4, back, sizeof back, url), -1);
        CHECK_EQ(auth_b64_dec("abcd", 4, back, sizeof back, url), 3);
    }
}

/* ---- routing: the shape prefilter (segment count, first two literal lengths) must not change a match ---- */
static int g_hit;
#define H(n) static void h##n(const struct http_req *q, struct http_resp *r, void *c) { (void)q; (void)r; (void)c; g_hit = n; }
H(1) H(2) H(3) H(4) H(5) H(6) H(7) H(8) H(9) H(10)
#undef H

static int route_of(const char *method, const char *path)
{
    char req[1024];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\n\r\n", method, path);
    g_hit = 0;
    if (run_one(req) < 0) return -1;
    if (g_hit) return g_hit;
    return strncmp(g_out.buf, "HTTP/1.1 405", 12) == 0 ? 405 : strncmp(g_out.buf, "HTTP/1.1 404", 12) == 0 ? 404 : -2;
}

TEST(routes_prefilter)
{
    char lit250[300], lit255[300], path[700];
    memset(lit250, 'a', 250);
    lit250[250] = '\0';
    memset(lit255, 'b', 255);
    lit255[255] = '\0';
    http_routes_clear();
    CHECK_EQ(http_route_add("GET", "/v1/users/{u}", h1), 0);
    CHECK_EQ(http_route_add("GET", "/v1/users/userstat", h2), 0);
    CHECK_EQ(http_route_add("GET", "/v1/{x}/groups", h3), 0);
    CHECK_EQ(http_route_add("GET", "/{a}/{b}", h4), 0);
    CHECK_EQ(http_route_add("GET", "/static/{*}", h5), 0);
    CHECK_EQ(http_route_add("GET", "/", h6), 0);
    snprintf(path, sizeof path, "/%s", lit250);             /* patterns are < HTTP_ROUTE_PATTERN_MAX bytes */
    CHECK_EQ(http_route_add("GET", path, h7), 0);
    snprintf(path, sizeof path, "/%s", lit255);
    CHECK_EQ(http_route_add("GET", path, h8), -1);
    CHECK_EQ(http_route_add("PUT", "/v1/users/{u}/groups", h9), 0);
    CHECK_EQ(http_route_add("GET", "/v1/usersX/{u}", h10), 0);

    CHECK_EQ(route_of("GET", "/v1/users/bob"), 1);
    CHECK_EQ(route_of("GET", "/v1/users/userstat"), 2);      /* most literal wins */
    CHECK_EQ(route_of("GET", "/v1/users/userstat/"), 2);
    CHECK_EQ(route_of("GET", "/v1/users/groups"), 1);
    CHECK_EQ(route_of("GET", "/v1/abc/groups"), 3);
    CHECK_EQ(route_of("GET", "/v1/usersX/q"), 10);
    CHECK_EQ(route_of("GET", "/v2/users"), 4);
    CHECK_EQ(route_of("GET", "/x/y"), 4);
    CHECK_EQ(route_of("GET", "/static"), 5);                  /* {*} takes zero segments too */
    CHECK_EQ(route_of("GET", "/static/a/b/c/d/e"), 5);
    CHECK_EQ(route_of("GET", "/"), 6);
    CHECK_EQ(route_of("GET", "/x"), 404);
    CHECK_EQ(route_of("GET", "/v1/users/bob/groups"), 405);   /* only PUT there */
    CHECK_EQ(route_of("PUT", "/v1/users/bob/groups"), 9);
    snprintf(path, sizeof path, "/%s", lit250);
    CHECK_EQ(route_of("GET", path), 7);
    snprintf(path, sizeof path, "/%sa", lit250);
    CHECK_EQ(route_of("GET", path), 404);
    snprintf(path, sizeof path, "/%s", lit255);               /* segments of 255+ bytes */
    CHECK_EQ(route_of("GET", path), 404);
    snprintf(path, sizeof path, "/%s/x", lit255);
    CHECK_EQ(route_of("GET", path), 4);
    snprintf(path, sizeof path, "/%s/%s", lit255, lit255);
    CHECK_EQ(route_of("GET", path), 4);
    http_routes_clear();
}

/* The bit-at-a-time decoder auth_b64_dec replaced: the reference for the four-at-a-time one. */
static int ref_b64_dec(const char *in, size_t n, uint8_t *out, size_t cap, bool url)
{
    static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char urls[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if (n % 4 == 1) return -1;
    size_t olen = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    if (olen > cap) return -1;
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        const char *f = in[i] ? strchr(url ? urls : std, in[i]) : NULL;
        if (!f) return -1;
        acc = (acc << 6) | (uint32_t)(f - (url ? urls : std));
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return acc != 0 ? -1 : (int)o;
}

TEST(b64_against_reference)
{
    static const char sym[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_=\0\x80 .";
    uint64_t x = 0x9e3779b97f4a7c15ull;
    size_t mismatches = 0, accepted = 0;
    for (int k = 0; k < 200000; k++) {
        char in[16];
        uint8_t a[16], b[16];
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t n = (size_t)(x % 13);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            /* mostly valid symbols of either alphabet, some junk */
            in[i] = sym[x % (k % 3 ? 64 : sizeof sym - 1)];
        }
        bool url = k & 1;
        size_t cap = (size_t)(x >> 40) % 12;
        int ra = auth_b64_dec(in, n, a, cap, url), rb = ref_b64_dec(in, n, b, cap, url);
        if (ra != rb || (ra > 0 && memcmp(a, b, (size_t)ra) != 0)) mismatches++;
        accepted += ra >= 0;
    }
    CHECK_EQ(mismatches, 0);
    CHECK(accepted > 10000);
    uint8_t o[4];
    CHECK_EQ(auth_b64_dec("AA", 2, o, sizeof o, false), 1);
    CHECK_EQ(auth_b64_dec("AB", 2, o, sizeof o, false), -1);  /* unused bits set */
    CHECK_EQ(auth_b64_dec("AAE", 3, o, sizeof o, false), 2);
    CHECK_EQ(auth_b64_dec("AAB", 3, o, sizeof o, false), -1);
    CHECK_EQ(auth_b64_dec("A", 1, o, sizeof o, false), -1);
    CHECK_EQ(auth_b64_dec("", 0, o, sizeof o, false), 0);
}

TEST(secret_two_steps)
{
    char key[AUTH_KEY_LEN + 1], other[AUTH_KEY_LEN + 1], stored[AUTH_SECRET_HASH_STR_MAX];
    CHECK_EQ(auth_gen_key(key), 0);
    CHECK_EQ(auth_gen_key(other), 0);
    int sl = auth_secret_hash(key, AUTH_KEY_LEN, stored);
    CHECK(sl > 0);
    struct auth_secret sec;
    CHECK_EQ(auth_secret_parse(stored, (size_t)sl, &sec), 0);
    CHECK_EQ(auth_secret_check(&sec, key, AUTH_KEY_LEN), 1);
    CHECK_EQ(auth_secret_check(&sec, other, AUTH_KEY_LEN), 0);
    CHECK_EQ(auth_secret_check(&sec, key, AUTH_KEY_LEN - 1), 0);
    CHECK_EQ(auth_secret_check(&sec, NULL, 0), 0);
    for (size_t i = 0; i < AUTH_KEY_LEN; i++) { /* every single-character change is refused */
        char k2[AUTH_KEY_LEN + 1];
        memcpy(k2, key, sizeof k2);
        k2[i] = k2[i] == 'a' ? 'b' : 'a';
        CHECK_EQ(auth_secret_check(&sec, k2, AUTH_KEY_LEN), 0);
    }
    CHECK_EQ(auth_secret_verify(stored, (size_t)sl, key, AUTH_KEY_LEN), 1);
    CHECK_EQ(auth_secret_verify(stored, (size_t)sl, other, AUTH_KEY_LEN), 0);
    /* malformed stored strings: both entry points refuse them */
    char bad[AUTH_SECRET_HASH_STR_MAX];
    memcpy(bad, stored, (size_t)sl + 1);
    bad[8] = '-';                                        /* URL alphabet inside a standard-b64 salt */
    CHECK_EQ(auth_secret_parse(bad, (size_t)sl, &sec), -1);
    CHECK_EQ(auth_secret_verify(bad, (size_t)sl, key, AUTH_KEY_LEN), -1);
    CHECK_EQ(auth_secret_parse(stored, (size_t)sl - 1, &sec), -1);
    CHECK_EQ(auth_secret_parse("pbkdf2-sha256$1$x$y", 19, &sec), -1);
    CHECK_EQ(auth_secret_parse(NULL, 0, &sec), -1);
}

/* Prints what one check costs (the REST path runs one per request). */
TEST(secret_check_cost)
{
    char key[AUTH_KEY_LEN + 1], stored[AUTH_SECRET_HASH_STR_MAX];
    CHECK_EQ(auth_gen_key(key), 0);
    int sl = auth_secret_hash(key, AUTH_KEY_LEN, stored);
    struct auth_secret sec;
    CHECK_EQ(auth_secret_parse(stored, (size_t)sl, &sec), 0);
    enum { N = 20000 };
    struct timespec t0, t1, t2;
    int ok = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < N; i++) ok += auth_secret_check(&sec, key, AUTH_KEY_LEN);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    for (int i = 0; i < N; i++) ok += auth_secret_verify(stored, (size_t)sl, key, AUTH_KEY_LEN);
    clock_gettime(CLOCK_MONOTONIC, &t2);
    CHECK_EQ(ok, 2 * N);
    double a = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / N;
    double b = ((double)(t2.tv_sec - t1.tv_sec) * 1e9 + (double)(t2.tv_nsec - t1.tv_nsec)) / N;
    printf("  auth_secret_check %.0f ns, auth_secret_verify (parse + check) %.0f ns\n", a, b);
}

int main(void)
{
    RUN(resp_header_names);
    RUN(routes_prefilter);
    RUN(b64_alphabets);
    RUN(b64_against_reference);
    RUN(secret_two_steps);
    RUN(secret_check_cost);
    TEST_MAIN_END();
}
