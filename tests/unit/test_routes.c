/* test_routes.c - the gateway's one route table (gateway/routes.h): every module's table registers, the
 * patterns use the one placeholder style, and each route is the one the router picks for its own paths
 * (with the same captures), so no route shadows another. Also http_routes_add's refusal report. */
#include "tests/unit/test.h"

#include "gateway/http/http_server.h"
#include "gateway/routes.h"

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

static struct sink g_out;

/* One stub per route: records which one ran and what it captured. */
#define STUBS 64
static int g_hit;
static size_t g_nparams;
static char g_params[HTTP_MAX_PARAMS][64];
static void stub(int n, const struct http_req *q)
{
    g_hit = n;
    g_nparams = q->nparams;
    for (size_t i = 0; i < q->nparams && i < HTTP_MAX_PARAMS; i++)
        snprintf(g_params[i], sizeof g_params[i], "%s", q->params[i].p);
}
#define S(n) static void s##n(const struct http_req *q, struct http_resp *r, void *c) { (void)r; (void)c; stub(n, q); }
#define S8(a) S(a##0) S(a##1) S(a##2) S(a##3) S(a##4) S(a##5) S(a##6) S(a##7)
S8(10) S8(11) S8(12) S8(13) S8(14) S8(15) S8(16) S8(17)
#undef S8
#undef S
static const http_handler_fn g_stubs[STUBS] = {
#define S8(a) s##a##0, s##a##1, s##a##2, s##a##3, s##a##4, s##a##5, s##a##6, s##a##7,
    S8(10) S8(11) S8(12) S8(13) S8(14) S8(15) S8(16) S8(17)
#undef S8
};
static int stub_id(size_t i) { return 100 + (int)(i / 8) * 10 + (int)(i % 8); }

/* Every route of every table, flattened. */
static const struct http_route_def *g_all[STUBS];
static size_t g_nall;

static void flatten(void)
{
    g_nall = 0;
    for (size_t t = 0; gateway_routes[t]; t++)
        for (size_t i = 0; i < gateway_routes[t]->n; i++) {
            if (g_nall == STUBS) {
                CHECK(!"more routes than stubs: raise STUBS");
                return;
            }
            g_all[g_nall++] = &gateway_routes[t]->r[i];
        }
}

/* The capture names in use and a sample value for each (what the handlers accept). */
static const struct {
    const char *name, *sample;
} g_names[] = {
    { "{username}", "alice_01" },
    { "{gid}", "12345" },
    { "{msgid}", "678" },
    { "{appkey}", "0123456789abcdef01234567" },
};

/* Concrete path for a pattern: every capture replaced by its sample; the samples in order in want[].
 * -1 when a capture is not one of the known names. */
static int concrete(const char *pat, char *out, size_t cap, const char *want[HTTP_MAX_PARAMS], size_t *nwant)
{
    size_t o = 0;
    *nwant = 0;
    while (*pat) {
        if (*pat == '{') {
            const char *end = strchr(pat, '}');
            if (!end) return -1;
            size_t k;
            for (k = 0; k < AU_ARRAY_LEN(g_names); k++)
                if (strlen(g_names[k].name) == (size_t)(end - pat + 1) &&
                    memcmp(g_names[k].name, pat, (size_t)(end - pat + 1)) == 0)
                    break;
            if (k == AU_ARRAY_LEN(g_names) || *nwant == HTTP_MAX_PARAMS) return -1;
            want[(*nwant)++] = g_names[k].sample;
            o += (size_t)snprintf(out + o, cap - o, "%s", g_names[k].sample);
            pat = end + 1;
        } else {
            if (o + 1 < cap) out[o++] = *pat;
            pat++;
        }
        if (o >= cap) return -1;
    }
    out[o] = '\0';
    return 0;
}

static int route_of(const char *method, const char *path)
{
    char req[1024];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\n\r\n", method, path);
    struct http_conn c;
    g_out.len = 0;
    g_out.buf[0] = '\0';
    g_hit = 0;
    http_conn_init(&c, &g_out, sink_write);
    ssize_t n = http_conn_feed(&c, (const uint8_t *)req, strlen(req));
    http_conn_free(&c);
    if (n != (ssize_t)strlen(req)) return -1;
    if (g_hit) return g_hit;
    return strncmp(g_out.buf, "HTTP/1.1 405", 12) == 0 ? 405 : strncmp(g_out.buf, "HTTP/1.1 404", 12) == 0 ? 404 : -2;
}

TEST(one_placeholder_style)
{
    flatten();
    CHECK(g_nall >= 30); /* users, admins, groups, apps, devices, messages, silence, media, healthz, metrics */
    for (size_t i = 0; i < g_nall; i++) {
        char path[512];
        const char *want[HTTP_MAX_PARAMS];
        size_t nw;
        if (concrete(g_all[i]->pattern, path, sizeof path, want, &nw) != 0) {
            printf("  %s %s: a capture that is not {username}, {gid}, {msgid} or {appkey}\n", g_all[i]->method,
                   g_all[i]->pattern);
            CHECK(0);
        }
        CHECK(strstr(g_all[i]->pattern, "{}") == NULL && strstr(g_all[i]->pattern, "{*}") == NULL);
        CHECK(g_all[i]->fn != NULL);
    }
}

TEST(register_all)
{
    http_routes_clear();
    gateway_routes_register(); /* aborts on a refused route (duplicate or malformed) */
    /* registering any table again is refused at its first route: everything is in the one table already */
    size_t bad = 99;
    CHECK_EQ(http_routes_add(gateway_routes[0], &bad), -1);
    CHECK_EQ(bad, 0);
    http_routes_clear();
}

/* Each route, registered with a stub in its place, is the one its own paths reach, with its captures. */
TEST(each_route_reaches_its_handler)
{
    flatten();
    http_routes_clear();
    for (size_t i = 0; i < g_nall; i++) {
        struct http_route_def d = { g_all[i]->method, g_all[i]->pattern, g_stubs[i] };
        struct http_routes one = { &d, 1 };
        CHECK_EQ(http_routes_add(&one, NULL), 0);
    }
    for (size_t i = 0; i < g_nall; i++) {
        char path[512];
        const char *want[HTTP_MAX_PARAMS];
        size_t nw;
        if (concrete(g_all[i]->pattern, path, sizeof path, want, &nw) != 0) continue; /* reported above */
        int got = route_of(g_all[i]->method, path);
        if (got != stub_id(i)) {
            printf("  %s %s (%s): got %d, want %d\n", g_all[i]->method, path, g_all[i]->pattern, got, stub_id(i));
            CHECK(0);
            continue;
        }
        CHECK_EQ(g_nparams, nw);
        for (size_t k = 0; k < nw && k < g_nparams; k++) CHECK(strcmp(g_params[k], want[k]) == 0);
    }
    /* the literal routes beside captures still win (most literal first) */
    CHECK(route_of("POST", "/v1/users/userstat") > 100);
    CHECK_EQ(route_of("GET", "/v1/users/userstat/x"), 404);
    CHECK_EQ(route_of("PATCH", "/v1/users/alice"), 405);
    http_routes_clear();
}

static void h_any(const struct http_req *q, struct http_resp *r, void *c)
{
    (void)q;
    (void)r;
    (void)c;
    g_hit = 1;
}

TEST(routes_add_reports_the_refused_one)
{
    http_routes_clear();
    static const struct http_route_def t[] = {
        { "GET", "/a/{x}", h_any },
        { "GET", "/b", h_any },
        { "GET", "/a/{y}", h_any }, /* the same pattern as the first: refused */
        { "GET", "/c", h_any },
    };
    struct http_routes rt = { t, AU_ARRAY_LEN(t) };
    size_t bad = 0;
    CHECK_EQ(http_routes_add(&rt, &bad), -1);
    CHECK_EQ(bad, 2);
    CHECK_EQ(route_of("GET", "/b"), 1);   /* registered before the refusal */
    CHECK_EQ(route_of("GET", "/c"), 404); /* not after it */
    static const struct http_route_def bad_pat[] = { { "GET", "/x/{a", h_any } };
    struct http_routes rb = { bad_pat, 1 };
    CHECK_EQ(http_routes_add(&rb, NULL), -1);
    http_routes_clear();
}

int main(void)
{
    RUN(one_placeholder_style);
    RUN(register_all);
    RUN(each_route_reaches_its_handler);
    RUN(routes_add_reports_the_refused_one);
    TEST_MAIN_END();
}
