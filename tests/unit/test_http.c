/* test_http.c - HTTP/1.1 parser, chunked decoder, helpers and the connection state machine. */
#include "tests/unit/test.h"

#include <sys/mman.h>
#include <unistd.h>

#include "gateway/http/http_parse.h"
#include "gateway/http/http_server.h"

/* ---- guarded buffers: input ends right before a PROT_NONE page, so any over-read faults ---- */

static uint8_t *g_guard_base;
static size_t g_guard_size;

static const uint8_t *guarded(const void *data, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t need = ((len + page - 1) / page + 1) * page;
    if (g_guard_base) munmap(g_guard_base, g_guard_size);
    g_guard_base = mmap(NULL, need, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g_guard_base == MAP_FAILED) abort();
    g_guard_size = need;
    mprotect(g_guard_base + need - page, page, PROT_NONE);
    uint8_t *p = g_guard_base + need - page - len;
    if (len) memcpy(p, data, len);
    return p;
}

static int parse_n(const char *s, size_t len, struct http_request *r)
{
    return http_parse_request(guarded(s, len), len, r);
}

static int parse(const char *s, struct http_request *r)
{
    return parse_n(s, strlen(s), r);
}

static bool str_is(const char *p, size_t len, const char *lit)
{
    return p && len == strlen(lit) && memcmp(p, lit, len) == 0;
}

/* ---- parser: valid requests ---- */

struct valid_case {
    const char *in;
    const char *method, *path, *query; /* query NULL = none */
    int minor;
    size_t nhdr;
    long long cl;
    bool chunked, ka, expect;
};

static const struct valid_case valid_cases[] = {
    { "GET / HTTP/1.1\r\n\r\n", "GET", "/", NULL, 1, 0, 0, false, true, false },
    { "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "GET", "/healthz", NULL, 1, 1, 0, false, true, false },
    { "GET /v1/users/?start=0&count=10 HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\n\r\n",
      "GET", "/v1/users/", "start=0&count=10", 1, 2, 0, false, true, false },
    { "POST /v1/messages HTTP/1.1\r\nContent-Length: 12\r\n\r\n", "POST", "/v1/messages", NULL, 1, 1, 12, false, true, false },
    { "PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "PUT", "/x", NULL, 1, 1, 0, true, true, false },
    { "PUT /x HTTP/1.1\r\nTransfer-Encoding: Chunked \r\n\r\n", "PUT", "/x", NULL, 1, 1, 0, true, true, false },
    { "GET / HTTP/1.1\r\nConnection: close\r\n\r\n", "GET", "/", NULL, 1, 1, 0, false, false, false },
    { "GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n", "GET", "/", NULL, 1, 1, 0, false, false, false },
    { "GET / HTTP/1.0\r\n\r\n", "GET", "/", NULL, 0, 0, 0, false, false, false },
    { "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", "GET", "/", NULL, 0, 1, 0, false, true, false },
    { "POST /r HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n", "POST", "/r", NULL, 1, 2, 3, false, true, true },
    { "POST /r HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", "POST", "/r", NULL, 0, 2, 3, false, false, false },
    { "GET /a?b HTTP/1.1\r\n\r\n", "GET", "/a", "b", 1, 0, 0, false, true, false },
    { "GET /a? HTTP/1.1\r\n\r\n", "GET", "/a", "", 1, 0, 0, false, true, false },
    { "GET /a#frag HTTP/1.1\r\n\r\n", "GET", "/a", NULL, 1, 0, 0, false, true, false },
    { "GET http://example.com/p?q=1 HTTP/1.1\r\n\r\n", "GET", "/p", "q=1", 1, 0, 0, false, true, false },
    { "GET https://example.com HTTP/1.1\r\n\r\n", "GET", "/", NULL, 1, 0, 0, false, true, false },
    { "OPTIONS * HTTP/1.1\r\n\r\n", "OPTIONS", "*", NULL, 1, 0, 0, false, true, false },
    { "MKCOL /d HTTP/1.1\r\n\r\n", "MKCOL", "/d", NULL, 1, 0, 0, false, true, false },
    { "\r\n\r\nGET / HTTP/1.1\r\n\r\n", "GET", "/", NULL, 1, 0, 0, false, true, false },  /* leading empty lines */
    { "GET / HTTP/1.9\r\n\r\n", "GET", "/", NULL, 9, 0, 0, false, true, false },
    { "GET / HTTP/1.1\r\nX-Empty:\r\nX-Sp:   \r\n\r\n", "GET", "/", NULL, 1, 2, 0, false, true, false },
    { "POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 005\r\n\r\n", "POST", "/", NULL, 1, 2, 5, false, true, false },
    { "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", "POST", "/", NULL, 1, 1, 5, false, true, false },
    { "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "POST", "/", NULL, 1, 1, 0, false, true, false },
    { "GET /caf\xc3\xa9 HTTP/1.1\r\nX-Utf8: \xc3\xa9t\xc3\xa9\r\n\r\n", "GET", "/caf\xc3\xa9", NULL, 1, 1, 0, false, true, false },
    /* bare LF tolerated everywhere */
    { "GET /lf HTTP/1.1\nHost: x\nContent-Length: 2\n\n", "GET", "/lf", NULL, 1, 2, 2, false, true, false },
};

TEST(parse_valid)
{
    for (size_t k = 0; k < AU_ARRAY_LEN(valid_cases); k++) {
        const struct valid_case *v = &valid_cases[k];
        struct http_request r;
        int rc = parse(v->in, &r);
        if (rc != (int)strlen(v->in)) {
            printf("  case %zu: rc %d\n", k, rc);
            CHECK_EQ(rc, strlen(v->in));
            continue;
        }
        CHECK(str_is(r.method, r.method_len, v->method));
        CHECK(str_is(r.path, r.path_len, v->path));
        if (v->query) CHECK(r.query && str_is(r.query, r.query_len, v->query));
        else CHECK(r.query == NULL && r.query_len == 0);
        CHECK_EQ(r.minor_version, v->minor);
        CHECK_EQ(r.num_headers, v->nhdr);
        CHECK_EQ(r.content_length, v->cl);
        CHECK_EQ(r.chunked, v->chunked);
        CHECK_EQ(r.keep_alive, v->ka);
        CHECK_EQ(r.expect_continue, v->expect);
        if (t_cur_failed) { printf("  case %zu failed\n", k); break; }
    }
}

TEST(parse_fields)
{
    struct http_request r;
    const char *in = "POST /v1/users HTTP/1.1\r\nHost:  example.org \r\nAuthorization: Basic YTpi\r\n"
                     "Content-Type: application/json; charset=utf-8\r\n\r\n";
    CHECK_EQ(parse(in, &r), strlen(in));
    CHECK_EQ(r.method_id, HTTP_M_POST);
    CHECK(str_is(r.target, r.target_len, "/v1/users"));
    CHECK(str_is(r.headers[0].name, r.headers[0].name_len, "Host"));
    CHECK(str_is(r.headers[0].value, r.headers[0].value_len, "example.org"));
    const struct http_header *h = http_header_find(&r, "content-TYPE");
    CHECK(h && str_is(h->value, h->value_len, "application/json; charset=utf-8"));
    CHECK(http_header_find(&r, "X-Missing") == NULL);
    CHECK(http_header_find(&r, "Hos") == NULL);
    CHECK(!r.has_content_length);

    CHECK(parse("GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", &r) > 0);
    CHECK(r.upgrade);
    CHECK(parse("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", &r) > 0);
    CHECK(!r.upgrade);
    CHECK(http_list_has_token(" a , Keep-Alive,b", 17, "keep-alive"));
    CHECK(!http_list_has_token("keep-alivex", 11, "keep-alive"));

    static const struct { const char *m; enum http_method id; } ms[] = {
        { "GET", HTTP_M_GET }, { "HEAD", HTTP_M_HEAD }, { "POST", HTTP_M_POST }, { "PUT", HTTP_M_PUT },
        { "DELETE", HTTP_M_DELETE }, { "PATCH", HTTP_M_PATCH }, { "OPTIONS", HTTP_M_OPTIONS },
        { "get", HTTP_M_OTHER }, { "BREW", HTTP_M_OTHER },
    };
    for (size_t k = 0; k < AU_ARRAY_LEN(ms); k++) {
        char buf[64];
        snprintf(buf, sizeof(buf), "%s / HTTP/1.1\r\n\r\n", ms[k].m);
        CHECK(parse(buf, &r) > 0);
        CHECK_EQ(r.method_id, ms[k].id);
    }
}

/* ---- parser: errors ---- */

struct err_case { const char *in; size_t len; int rc; int status; };
#define E(s, rc, st) { s, sizeof(s) - 1, rc, st }

static const struct err_case err_cases[] = {
    E(" GET / HTTP/1.1\r\n\r\n", HTTP_EMETHOD, 400),
    E("G(T / HTTP/1.1\r\n\r\n", HTTP_EMETHOD, 400),
    E("GET\t/ HTTP/1.1\r\n\r\n", HTTP_EMETHOD, 400),
    E("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", HTTP_EMETHOD, 400),  /* TLS ClientHello */
    E("\r\rGET / HTTP/1.1\r\n\r\n", HTTP_EMETHOD, 400),
    E("GET  / HTTP/1.1\r\n\r\n", HTTP_ETARGET, 400),
    E("GET /a\x01 HTTP/1.1\r\n\r\n", HTTP_ETARGET, 400),
    E("GET /a\x7f HTTP/1.1\r\n\r\n", HTTP_ETARGET, 400),
    E("GET a/b HTTP/1.1\r\n\r\n", HTTP_ETARGET, 400),
    E("GET ftp://x/ HTTP/1.1\r\n\r\n", HTTP_ETARGET, 400),
    E("GET http:///p HTTP/1.1\r\n\r\n", HTTP_ETARGET, 400),
    E("CONNECT host:443 HTTP/1.1\r\n\r\n", HTTP_ETARGET, 400),
    E("GET /\r\n\r\n", HTTP_EVERSION, 400),
    E("GET / http/1.1\r\n\r\n", HTTP_EVERSION, 400),
    E("GET / HTTP/1.1 \r\n\r\n", HTTP_EVERSION, 400),
    E("GET / HTTP/1.10\r\n\r\n", HTTP_EVERSION, 400),
    E("GET / HTTP/11\r\n\r\n", HTTP_EVERSION, 400),
    E("GET / HTTP/1.1\rX\n\r\n", HTTP_EVERSION, 400),
    E("GET / HTTP/2.0\r\n\r\n", HTTP_EVERSION_UNSUPPORTED, 505),
    E("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", HTTP_EVERSION_UNSUPPORTED, 505),
    E("GET / HTTP/0.9\r\n\r\n", HTTP_EVERSION_UNSUPPORTED, 505),
    E("GET / HTTP/1.1\r\nNoColon\r\n\r\n", HTTP_EHEADER, 400),
    E("GET / HTTP/1.1\r\nName : v\r\n\r\n", HTTP_EHEADER, 400),
    E("GET / HTTP/1.1\r\n: v\r\n\r\n", HTTP_EHEADER, 400),
    E("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", HTTP_EHEADER, 400),   /* obs-fold */
    E("GET / HTTP/1.1\r\nA: b\r\n\tfolded\r\n\r\n", HTTP_EHEADER, 400),
    E("GET / HTTP/1.1\r\n Lead: v\r\n\r\n", HTTP_EHEADER, 400),
    E("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", HTTP_EHEADER, 400),            /* bare CR in value */
    E("GET / HTTP/1.1\r\nA: b\x01\r\n\r\n", HTTP_EHEADER, 400),
    E("GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n", HTTP_EHEADER, 400),
    E("GET / HTTP/1.1\r\nA: b\r\n\rX", HTTP_EHEADER, 400),
    E("GET / HTTP/1.1\r\nA\0: b\r\n\r\n", HTTP_EHEADER, 400),
    E("POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", HTTP_ECONTENT_LENGTH, 400),
    E("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", HTTP_ECONTENT_LENGTH, 400),
    E("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", HTTP_ECONTENT_LENGTH, 400),
    E("POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", HTTP_ECONTENT_LENGTH, 400),
    E("POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", HTTP_ECONTENT_LENGTH, 400),
    E("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", HTTP_ECONTENT_LENGTH, 400),
    E("POST / HTTP/1.1\r\nContent-Length: 5,\r\n\r\n", HTTP_ECONTENT_LENGTH, 400),
    E("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", HTTP_ECONTENT_LENGTH, 400),
    E("POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n", HTTP_ECONTENT_LENGTH, 400),
    E("POST / HTTP/1.1\r\nContent-Length: 9437185\r\n\r\n", HTTP_EBODY_TOO_LARGE, 413),
    E("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n", HTTP_EBODY_TOO_LARGE, 413),
    E("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", HTTP_ETRANSFER_CODING, 501),
    E("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", HTTP_ETRANSFER_CODING, 501),
    E("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_ETRANSFER_CODING, 501),
    E("POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n", HTTP_ETRANSFER_CODING, 501),
    E("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", HTTP_EFRAMING, 400),
    E("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_EFRAMING, 400),
};

TEST(parse_errors)
{
    for (size_t k = 0; k < AU_ARRAY_LEN(err_cases); k++) {
        const struct err_case *e = &err_cases[k];
        struct http_request r;
        int rc = parse_n(e->in, e->len, &r);
        if (rc != e->rc) printf("  case %zu (%s): rc %d want %d\n", k, http_parse_strerror(e->rc), rc, e->rc);
        CHECK_EQ(rc, e->rc);
        CHECK_EQ(http_parse_status(rc), e->status);
        CHECK(strcmp(http_parse_strerror(rc), "unknown error") != 0);
    }
}

TEST(parse_limits)
{
    struct http_request r;
    char *buf = malloc(AU_HTTP_MAX_HEADER_BYTES + 4096);
    size_t n;

    /* exactly AU_HTTP_MAX_HEADERS fields: fine; one more: 431 */
    n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\n");
    for (int k = 0; k < AU_HTTP_MAX_HEADERS; k++) n += (size_t)sprintf(buf + n, "X-H%d: %d\r\n", k, k);
    memcpy(buf + n, "\r\n", 2);
    CHECK_EQ(parse_n(buf, n + 2, &r), n + 2);
    CHECK_EQ(r.num_headers, AU_HTTP_MAX_HEADERS);
    n += (size_t)sprintf(buf + n, "X-Last: y\r\n\r\n");
    CHECK_EQ(parse_n(buf, n, &r), HTTP_ETOO_MANY_HEADERS);
    CHECK_EQ(http_parse_status(HTTP_ETOO_MANY_HEADERS), 431);

    /* a head of exactly AU_HTTP_MAX_HEADER_BYTES parses; one byte more is 431 */
    const char *pre = "GET / HTTP/1.1\r\nX-Big: ";
    size_t fill = AU_HTTP_MAX_HEADER_BYTES - strlen(pre) - 4;
    n = (size_t)sprintf(buf, "%s", pre);
    memset(buf + n, 'a', fill);
    n += fill;
    memcpy(buf + n, "\r\n\r\n", 4);
    n += 4;
    CHECK_EQ(n, AU_HTTP_MAX_HEADER_BYTES);
    CHECK_EQ(parse_n(buf, n, &r), AU_HTTP_MAX_HEADER_BYTES);
    memmove(buf + strlen(pre) + 1, buf + strlen(pre), n - strlen(pre));
    n++;
    CHECK_EQ(parse_n(buf, n, &r), HTTP_EHEADERS_TOO_LARGE);
    /* incomplete but already at the limit: error, not need-more */
    CHECK_EQ(parse_n(buf, AU_HTTP_MAX_HEADER_BYTES, &r), HTTP_EHEADERS_TOO_LARGE);
    CHECK_EQ(parse_n(buf, AU_HTTP_MAX_HEADER_BYTES - 1, &r), HTTP_NEED_MORE);

    /* request line alone longer than the limit: 414 */
    n = (size_t)sprintf(buf, "GET /");
    memset(buf + n, 'u', AU_HTTP_MAX_HEADER_BYTES);
    n += AU_HTTP_MAX_HEADER_BYTES;
    n += (size_t)sprintf(buf + n, " HTTP/1.1\r\n\r\n");
    CHECK_EQ(parse_n(buf, n, &r), HTTP_EURI_TOO_LONG);
    CHECK_EQ(http_parse_status(HTTP_EURI_TOO_LONG), 414);

    /* AU_HTTP_MAX_BODY itself is allowed */
    n = (size_t)sprintf(buf, "POST / HTTP/1.1\r\nContent-Length: %u\r\n\r\n", AU_HTTP_MAX_BODY);
    CHECK_EQ(parse_n(buf, n, &r), n);
    CHECK_EQ(r.content_length, AU_HTTP_MAX_BODY);
    free(buf);
}

/* Every proper prefix of a valid request is need-more (checked against a guard page). */
TEST(parse_prefixes)
{
    for (size_t k = 0; k < AU_ARRAY_LEN(valid_cases); k++) {
        const char *in = valid_cases[k].in;
        size_t len = strlen(in);
        for (size_t p = 0; p < len; p++) {
            struct http_request r;
            int rc = parse_n(in, p, &r);
            if (rc != HTTP_NEED_MORE) {
                printf("  case %zu prefix %zu: rc %d\n", k, p, rc);
                CHECK_EQ(rc, HTTP_NEED_MORE);
                break;
            }
        }
    }
}

TEST(parse_pipelined)
{
    const char *in = "POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /b?x=1 HTTP/1.1\r\n\r\n"
                     "\r\nDELETE /c HTTP/1.1\r\nConnection: close\r\n\r\n";
    const uint8_t *b = guarded(in, strlen(in));
    size_t len = strlen(in), off = 0;
    struct http_request r;
    int rc = http_parse_request(b, len, &r);
    CHECK(rc > 0 && str_is(r.path, r.path_len, "/a") && r.content_length == 5);
    off += (size_t)rc + 5;
    rc = http_parse_request(b + off, len - off, &r);
    CHECK(rc > 0 && str_is(r.path, r.path_len, "/b") && str_is(r.query, r.query_len, "x=1"));
    off += (size_t)rc;
    rc = http_parse_request(b + off, len - off, &r);
    CHECK(rc > 0 && r.method_id == HTTP_M_DELETE && !r.keep_alive);
    off += (size_t)rc;
    CHECK_EQ(off, len);
}

/* Bare LF is accepted consistently: same result as with CRLF; bare CR never is. */
TEST(parse_line_endings)
{
    struct http_request a, b;
    const char *crlf = "PUT /x?y HTTP/1.1\r\nA: 1\r\nB:2 \r\nTransfer-Encoding: chunked\r\n\r\n";
    const char *lf = "PUT /x?y HTTP/1.1\nA: 1\nB:2 \nTransfer-Encoding: chunked\n\n";
    const char *mixed = "PUT /x?y HTTP/1.1\r\nA: 1\nB:2 \r\nTransfer-Encoding: chunked\n\r\n";
    CHECK_EQ(parse(crlf, &a), strlen(crlf));
    char sa[256], sb[256];
    snprintf(sa, sizeof(sa), "%.*s|%.*s|%zu|%d", (int)a.path_len, a.path, (int)a.headers[1].value_len,
             a.headers[1].value, a.num_headers, a.chunked);
    CHECK_EQ(parse(lf, &b), strlen(lf));
    snprintf(sb, sizeof(sb), "%.*s|%.*s|%zu|%d", (int)b.path_len, b.path, (int)b.headers[1].value_len,
             b.headers[1].value, b.num_headers, b.chunked);
    CHECK(strcmp(sa, sb) == 0);
    CHECK_EQ(parse(mixed, &b), strlen(mixed));
    CHECK_EQ(parse("GET / HTTP/1.1\r\r\n\r\n", &b), HTTP_EVERSION);
    CHECK_EQ(parse("GET / HTTP/1.1\r\nA: 1\r\r\n\r\n", &b), HTTP_EHEADER);
    CHECK_EQ(parse("GET / HTTP/1.1\r\n\r\r\n", &b), HTTP_EHEADER);
}

/* ---- chunked decoder ---- */

/* Decode in pieces at the given split points; returns rc, collects data and the end offset. */
static int dechunk(const char *in, size_t len, const size_t *cuts, size_t ncuts, uint64_t max,
                   char *out, size_t *olen, size_t *end)
{
    struct http_chunked d;
    http_chunked_init(&d, max);
    size_t pos = 0, piece = 0;
    *olen = 0;
    while (pos < len) {
        size_t stop = piece < ncuts ? cuts[piece] : len;
        piece++;
        if (stop > len) stop = len;
        if (stop <= pos) continue;
        const uint8_t *b = guarded(in + pos, stop - pos);
        size_t blen = stop - pos, i = 0;
        for (;;) {
            size_t used;
            const uint8_t *p;
            size_t pl;
            int rc = http_chunked_decode(&d, b + i, blen - i, &used, &p, &pl);
            i += used;
            if (rc < 0) return rc;
            if (rc == HTTP_CHUNK_DATA) {
                memcpy(out + *olen, p, pl);
                *olen += pl;
                continue;
            }
            if (rc == HTTP_CHUNK_DONE) {
                *end = pos + i;
                return rc;
            }
            if (i != blen) return -100; /* need-more must consume everything */
            break;
        }
        pos = stop;
    }
    return HTTP_NEED_MORE;
}

TEST(chunked_basic)
{
    const char *in = "5\r\nhello\r\n7;ext=1;q=\"x\"\r\n, world\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\nNEXT";
    char out[64];
    size_t olen, end;
    CHECK_EQ(dechunk(in, strlen(in), NULL, 0, 1000, out, &olen, &end), HTTP_CHUNK_DONE);
    CHECK_EQ(olen, 12);
    CHECK(memcmp(out, "hello, world", 12) == 0);
    CHECK_EQ(end, strlen(in) - 4);

    /* LF-only, upper-case hex, leading zeros, size line whitespace */
    const char *lf = "000A \nabcdefghij\n0\n\n";
    CHECK_EQ(dechunk(lf, strlen(lf), NULL, 0, 1000, out, &olen, &end), HTTP_CHUNK_DONE);
    CHECK_EQ(olen, 10);
    CHECK_EQ(end, strlen(lf));

    /* empty body */
    CHECK_EQ(dechunk("0\r\n\r\n", 5, NULL, 0, 1000, out, &olen, &end), HTTP_CHUNK_DONE);
    CHECK_EQ(olen, 0);
    CHECK_EQ(end, 5);

    /* state stays DONE */
    struct http_chunked d;
    http_chunked_init(&d, 10);
    size_t used, pl;
    const uint8_t *p;
    CHECK_EQ(http_chunked_decode(&d, (const uint8_t *)"0\r\n\r\nxx", 7, &used, &p, &pl), HTTP_CHUNK_DONE);
    CHECK_EQ(used, 5);
    CHECK_EQ(http_chunked_decode(&d, (const uint8_t *)"xx", 2, &used, &p, &pl), HTTP_CHUNK_DONE);
    CHECK_EQ(used, 0);
}

TEST(chunked_splits)
{
    const char *in = "3;a=b\r\nabc\r\n10\r\n0123456789abcdef\r\n1\r\nZ\r\n0\r\nTrailer: v\r\n\r\n";
    size_t len = strlen(in);
    char ref[64], out[64];
    size_t rlen, olen, rend, end;
    CHECK_EQ(dechunk(in, len, NULL, 0, 1000, ref, &rlen, &rend), HTTP_CHUNK_DONE);
    CHECK_EQ(rlen, 20);
    CHECK_EQ(rend, len);
    /* one split at every position */
    for (size_t s = 0; s <= len; s++) {
        size_t cuts[1] = { s };
        int rc = dechunk(in, len, cuts, 1, 1000, out, &olen, &end);
        CHECK_EQ(rc, HTTP_CHUNK_DONE);
        CHECK(olen == rlen && memcmp(out, ref, rlen) == 0 && end == len);
    }
    /* byte by byte */
    size_t cuts[128];
    for (size_t s = 0; s < len; s++) cuts[s] = s + 1;
    CHECK_EQ(dechunk(in, len, cuts, len, 1000, out, &olen, &end), HTTP_CHUNK_DONE);
    CHECK(olen == rlen && memcmp(out, ref, rlen) == 0 && end == len);
    /* every proper prefix needs more */
    for (size_t s = 0; s < len; s++)
        CHECK_EQ(dechunk(in, s, NULL, 0, 1000, out, &olen, &end), HTTP_NEED_MORE);
}

TEST(chunked_errors)
{
    static const struct { const char *in; int rc; } cs[] = {
        { "g\r\n", HTTP_ECHUNK },
        { "\r\n", HTTP_ECHUNK },
        { " 5\r\n", HTTP_ECHUNK },
        { "5x\r\n", HTTP_ECHUNK },
        { "-5\r\n", HTTP_ECHUNK },
        { "5\rX", HTTP_ECHUNK },
        { "5\r\nhelloX", HTTP_ECHUNK },       /* data not followed by CRLF */
        { "5\r\nhello\rX", HTTP_ECHUNK },
        { "5;\x01\r\n", HTTP_ECHUNK },
        { "0\r\n folded: x\r\n\r\n", HTTP_ECHUNK },
        { "0\r\nBad Name: x\r\n\r\n", HTTP_ECHUNK },
        { "0\r\nA: \x01\r\n\r\n", HTTP_ECHUNK },
        { "0\r\n\rX", HTTP_ECHUNK },
        { "65\r\n", HTTP_EBODY_TOO_LARGE },   /* 101 > 100 */
        { "ffffffffffffffffffffffff\r\n", HTTP_EBODY_TOO_LARGE },
        { "32\r\n", 0 },                       /* 50: fine so far */
    };
    for (size_t k = 0; k < AU_ARRAY_LEN(cs); k++) {
        char out[256];
        size_t olen, end;
        int rc = dechunk(cs[k].in, strlen(cs[k].in), NULL, 0, 100, out, &olen, &end);
        if (rc != cs[k].rc) printf("  case %zu: rc %d\n", k, rc);
        CHECK_EQ(rc, cs[k].rc);
    }
    /* total over several chunks above the limit */
    char out[256];
    size_t olen, end;
    const char *two = "32\r\n01234567890123456789012345678901234567890123456789\r\n33\r\n";
    CHECK_EQ(dechunk(two, strlen(two), NULL, 0, 100, out, &olen, &end), HTTP_EBODY_TOO_LARGE);
    CHECK_EQ(olen, 50);

    /* too many trailers; trailer section too large */
    char *big = malloc(AU_HTTP_MAX_HEADER_BYTES * 2);
    size_t n = (size_t)sprintf(big, "0\r\n");
    for (int k = 0; k <= AU_HTTP_MAX_HEADERS; k++) n += (size_t)sprintf(big + n, "T%d: x\r\n", k);
    CHECK_EQ(dechunk(big, n, NULL, 0, 100, out, &olen, &end), HTTP_ETOO_MANY_HEADERS);
    n = (size_t)sprintf(big, "0\r\nT: ");
    memset(big + n, 'v', AU_HTTP_MAX_HEADER_BYTES);
    n += AU_HTTP_MAX_HEADER_BYTES;
    CHECK_EQ(dechunk(big, n, NULL, 0, 100, out, &olen, &end), HTTP_EHEADERS_TOO_LARGE);
    /* an endless extension */
    n = (size_t)sprintf(big, "1;");
    memset(big + n, 'e', AU_HTTP_MAX_HEADER_BYTES);
    n += AU_HTTP_MAX_HEADER_BYTES;
    CHECK_EQ(dechunk(big, n, NULL, 0, 100, out, &olen, &end), HTTP_ECHUNK);
    free(big);
}

/* ---- helpers ---- */

TEST(url_decode)
{
    char out[64];
    ssize_t n = http_url_decode("a%20b+c%2Fd%e4", 14, out, sizeof(out), false);
    CHECK_EQ(n, 8);
    CHECK(memcmp(out, "a b+c/d\xe4", 8) == 0);
    n = http_url_decode("a%20b+c", 7, out, sizeof(out), true);
    CHECK(n == 5 && memcmp(out, "a b c", 5) == 0);
    CHECK_EQ(http_url_decode("%", 1, out, sizeof(out), false), -1);
    CHECK_EQ(http_url_decode("%2", 2, out, sizeof(out), false), -1);
    CHECK_EQ(http_url_decode("%zz", 3, out, sizeof(out), false), -1);
    CHECK_EQ(http_url_decode("abc", 3, out, 2, false), -1);
    CHECK_EQ(http_url_decode("", 0, out, 0, false), 0);
    char inplace[] = "x%41y";
    CHECK_EQ(http_url_decode(inplace, 5, inplace, 5, false), 3);
    CHECK(memcmp(inplace, "xAy", 3) == 0);
}

TEST(query_params)
{
    const char *q = "start=0&count=10&name=J%C3%B6rg+M&flag&empty=&a%62c=x+y&count=99";
    size_t ql = strlen(q);
    char out[64];
    CHECK_EQ(http_query_get(q, ql, "start", out, sizeof(out)), 1);
    CHECK(strcmp(out, "0") == 0);
    CHECK_EQ(http_query_get(q, ql, "count", out, sizeof(out)), 2); /* first wins */
    CHECK(strcmp(out, "10") == 0);
    CHECK_EQ(http_query_get(q, ql, "name", out, sizeof(out)), 7);
    CHECK(strcmp(out, "J\xc3\xb6rg M") == 0);
    CHECK_EQ(http_query_get(q, ql, "flag", out, sizeof(out)), 0);
    CHECK_EQ(http_query_get(q, ql, "empty", out, sizeof(out)), 0);
    CHECK_EQ(http_query_get(q, ql, "abc", out, sizeof(out)), 3);
    CHECK(strcmp(out, "x y") == 0);
    CHECK_EQ(http_query_get(q, ql, "missing", out, sizeof(out)), -1);
    CHECK_EQ(http_query_get(q, ql, "star", out, sizeof(out)), -1);
    CHECK_EQ(http_query_get(q, ql, "name", out, 4), -2);
    CHECK_EQ(http_query_get("x=%zz", 5, "x", out, sizeof(out)), -2);
    CHECK_EQ(http_query_get(NULL, 0, "x", out, sizeof(out)), -1);
    CHECK_EQ(http_query_get("&&x=1&", 6, "x", out, sizeof(out)), 1);
    const char *v;
    size_t vl;
    CHECK(http_query_find(q, ql, "name", &v, &vl) && vl == 11 && memcmp(v, "J%C3%B6rg+M", 11) == 0);
}

TEST(path_normalize)
{
    static const struct { const char *in, *out; } cs[] = {
        { "/", "/" }, { "", "/" }, { "//", "/" }, { "/a", "/a" }, { "/a/", "/a" },
        { "/v1/users//x/", "/v1/users/x" }, { "//v1///users/x//", "/v1/users/x" },
        { "/a/./b", "/a/b" }, { "/a/../b", "/b" }, { "/../../a", "/a" }, { "/a/b/..", "/a" },
        { "/a/..", "/" }, { "/.", "/" }, { "/a/.b/..c", "/a/.b/..c" }, { "/%2e%2e/x", "/%2e%2e/x" },
    };
    for (size_t k = 0; k < AU_ARRAY_LEN(cs); k++) {
        char out[64];
        ssize_t n = http_path_normalize(cs[k].in, strlen(cs[k].in), out, strlen(cs[k].in) + 2);
        CHECK(n == (ssize_t)strlen(cs[k].out) && strcmp(out, cs[k].out) == 0);
        if (t_cur_failed) { printf("  case %zu: %s -> %s\n", k, cs[k].in, out); break; }
    }
    char out[8];
    CHECK_EQ(http_path_normalize("a/b", 3, out, sizeof(out)), -1);
    CHECK_EQ(http_path_normalize("*", 1, out, sizeof(out)), -1);
    CHECK_EQ(http_path_normalize("/abcdefgh", 9, out, sizeof(out)), -1);
}

TEST(base64_basic_auth)
{
    uint8_t out[64];
    CHECK_EQ(http_base64_decode("aGVsbG8=", 8, out, sizeof(out)), 5);
    CHECK(memcmp(out, "hello", 5) == 0);
    CHECK_EQ(http_base64_decode("aGVsbG8", 7, out, sizeof(out)), 5);
    CHECK_EQ(http_base64_decode("aGk=", 4, out, sizeof(out)), 2);
    CHECK_EQ(http_base64_decode("", 0, out, sizeof(out)), 0);
    CHECK_EQ(http_base64_decode("+/+/", 4, out, sizeof(out)), 3);
    CHECK(out[0] == 0xfb && out[1] == 0xff && out[2] == 0xbf);
    CHECK_EQ(http_base64_decode("aGVsbG8*", 8, out, sizeof(out)), -1);
    CHECK_EQ(http_base64_decode("a", 1, out, sizeof(out)), -1);
    CHECK_EQ(http_base64_decode("aGk==", 5, out, sizeof(out)), -1);
    CHECK_EQ(http_base64_decode("aGVsbG8=", 8, out, 4), -1);

    char u[32], p[32];
    /* "appkey:secret:with:colons" */
    const char *h = "Basic YXBwa2V5OnNlY3JldDp3aXRoOmNvbG9ucw==";
    CHECK_EQ(http_basic_auth_decode(h, strlen(h), u, sizeof(u), p, sizeof(p)), 0);
    CHECK(strcmp(u, "appkey") == 0 && strcmp(p, "secret:with:colons") == 0);
    h = "  basic   YTpi  ";
    CHECK_EQ(http_basic_auth_decode(h, strlen(h), u, sizeof(u), p, sizeof(p)), 0);
    CHECK(strcmp(u, "a") == 0 && strcmp(p, "b") == 0);
    h = "Basic Og=="; /* ":" */
    CHECK_EQ(http_basic_auth_decode(h, strlen(h), u, sizeof(u), p, sizeof(p)), 0);
    CHECK(u[0] == 0 && p[0] == 0);
    static const char *bad[] = { "Bearer YTpi", "Basic", "Basic ", "BasicYTpi", "Basic YWJj" /* "abc" */,
                                 "Basic YQBiOmM=" /* "a\0b:c" */, "Basic !!!!" };
    for (size_t k = 0; k < AU_ARRAY_LEN(bad); k++)
        CHECK_EQ(http_basic_auth_decode(bad[k], strlen(bad[k]), u, sizeof(u), p, sizeof(p)), -1);
    h = "Basic YXBwa2V5OnNlY3JldDp3aXRoOmNvbG9ucw==";
    CHECK_EQ(http_basic_auth_decode(h, strlen(h), u, 6, p, sizeof(p)), -1);  /* user does not fit */
    CHECK_EQ(http_basic_auth_decode(h, strlen(h), u, 7, p, 18), -1);         /* pass does not fit */
    CHECK_EQ(http_basic_auth_decode(h, strlen(h), u, 7, p, 19), 0);
}

/* ---- server ---- */

struct sink {
    char *p;
    size_t len, cap;
    int writes;
};

static void sink_write(void *io, const void *data, size_t len)
{
    struct sink *s = io;
    if (s->len + len + 1 > s->cap) {
        s->cap = (s->len + len + 1) * 2;
        s->p = realloc(s->p, s->cap);
    }
    memcpy(s->p + s->len, data, len);
    s->len += len;
    s->p[s->len] = '\0';
    s->writes++;
}

static void sink_reset(struct sink *s)
{
    s->len = 0;
    s->writes = 0;
    if (s->p) s->p[0] = '\0';
}

struct shard { int calls; struct http_resp *deferred; };

static void h_health(const struct http_req *q, struct http_resp *r, void *ctx)
{
    ((struct shard *)ctx)->calls++;
    http_resp_header(r, "Content-Type", "text/plain");
    http_resp_body(r, "ok\n", 3);
}

static void h_user(const struct http_req *q, struct http_resp *r, void *ctx)
{
    char buf[256];
    char start[16] = "-";
    http_query_get(q->query, q->query_len, "start", start, sizeof(start));
    snprintf(buf, sizeof(buf), "{\"method\":\"%.*s\",\"user\":\"%s\",\"path\":\"%s\",\"start\":\"%s\",\"n\":%zu}",
             (int)q->method_len, q->method_str, q->params[0].p, q->path, start, q->nparams);
    http_resp_json(r, 200, buf);
}

static void h_password(const struct http_req *q, struct http_resp *r, void *ctx)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "pw %s %zu:%.*s", q->params[0].p, q->body_len, (int)q->body_len,
             q->body ? (const char *)q->body : "");
    http_resp_status(r, 204);
    http_resp_body(r, buf, strlen(buf)); /* 204: never sent */
}

static void h_userstat(const struct http_req *q, struct http_resp *r, void *ctx)
{
    http_resp_json(r, 200, "{\"userstat\":true}");
}

static void h_echo(const struct http_req *q, struct http_resp *r, void *ctx)
{
    char head[64];
    snprintf(head, sizeof(head), "len=%zu;", q->body_len);
    http_resp_status(r, 201);
    http_resp_body(r, head, strlen(head));
    if (q->body_len) http_resp_append(r, q->body, q->body_len);
    size_t l;
    const char *ct = http_req_header(q, "content-type", &l);
    if (ct) http_resp_append(r, ct, l);
}

static void h_static(const struct http_req *q, struct http_resp *r, void *ctx)
{
    static const char body[] = "static:";
    http_resp_body_ref(r, body, sizeof(body) - 1);
    http_resp_append(r, q->params[0].p, q->params[0].len);
}

static void h_defer(const struct http_req *q, struct http_resp *r, void *ctx)
{
    ((struct shard *)ctx)->deferred = r;
    http_resp_defer(r);
}

static void h_ws(const struct http_req *q, struct http_resp *r, void *ctx)
{
    if (!q->msg->upgrade || http_resp_upgrade(r, "websocket") < 0) {
        http_resp_error(r, 400, 899003, "need \"upgrade\"\n");
        return;
    }
    http_resp_header(r, "Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void h_big(const struct http_req *q, struct http_resp *r, void *ctx)
{
    char *b = malloc(100000);
    memset(b, 'B', 100000);
    http_resp_body(r, b, 100000);
    free(b);
}

static void h_close(const struct http_req *q, struct http_resp *r, void *ctx)
{
    http_resp_close(r);
    CHECK_EQ(http_resp_header(r, "Connection", "keep-alive"), -1);
    CHECK_EQ(http_resp_header(r, "Content-Length", "5"), -1);
    CHECK_EQ(http_resp_header(r, "Bad Name", "x"), -1);
    CHECK_EQ(http_resp_header(r, "X-Inject", "a\r\nb: c"), -1);
    CHECK_EQ(http_resp_header(r, "X-Fine", "a b\tc"), 0);
    http_resp_json(r, 200, "{}");
}

static void routes_setup(void)
{
    http_routes_clear();
    CHECK_EQ(http_route_add("GET", "/healthz", h_health), 0);
    CHECK_EQ(http_route_add("GET", "/v1/users/{}", h_user), 0);
    CHECK_EQ(http_route_add("DELETE", "/v1/users/{username}/", h_user), 0);
    CHECK_EQ(http_route_add("PUT", "/v1/users/{}/password", h_password), 0);
    CHECK_EQ(http_route_add("POST", "/v1/users/userstat", h_userstat), 0);
    CHECK_EQ(http_route_add("POST", "/echo", h_echo), 0);
    CHECK_EQ(http_route_add("PUT", "//echo/", h_echo), 0);
    CHECK_EQ(http_route_add("GET", "/static/{*}", h_static), 0);
    CHECK_EQ(http_route_add("GET", "/defer", h_defer), 0);
    CHECK_EQ(http_route_add("GET", "/ws", h_ws), 0);
    CHECK_EQ(http_route_add("GET", "/big", h_big), 0);
    CHECK_EQ(http_route_add("GET", "/close", h_close), 0);
}

/* Drive a connection like an event loop: each piece is appended to what was left unconsumed,
 * then fed while progress is made. splits: piece sizes, cycled; NULL = all at once. */
static int drive(struct http_conn *c, const void *in, size_t len, const size_t *splits, size_t nsplits,
                 size_t *left)
{
    const uint8_t *src = in;
    uint8_t *pend = malloc(len + 1);
    size_t plen = 0, pos = 0, si = 0;
    int rc = 0;
    while (pos < len) {
        size_t piece = splits ? splits[si++ % nsplits] : len;
        if (piece == 0) piece = 1;
        if (piece > len - pos) piece = len - pos;
        memcpy(pend + plen, src + pos, piece);
        plen += piece;
        pos += piece;
        for (;;) {
            ssize_t n = http_conn_feed(c, guarded(pend, plen), plen);
            if (n < 0) { rc = -1; goto out; }
            memmove(pend, pend + n, plen - (size_t)n);
            plen -= (size_t)n;
            if (n == 0 || plen == 0) break;
        }
    }
out:
    if (left) *left = plen;
    free(pend);
    return rc;
}

/* Run input through a fresh connection; returns rc, output in *s. */
static int run(struct sink *s, struct shard *sh, const char *in, size_t len, const size_t *splits, size_t nsplits)
{
    struct http_conn c;
    sink_reset(s);
    http_conn_init(&c, s, sink_write);
    http_conn_set_ctx(&c, sh);
    int rc = drive(&c, in, len, splits, nsplits, NULL);
    http_conn_free(&c);
    return rc;
}

static const char PIPE3[] =
    "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
    "POST /echo HTTP/1.1\r\nContent-Length: 11\r\nContent-Type: text/x\r\n\r\nhello world"
    "PUT /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\nT: 1\r\n\r\n";

static const char PIPE3_OUT[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"
    "HTTP/1.1 201 Created\r\nContent-Length: 24\r\n\r\nlen=11;hello worldtext/x"
    "HTTP/1.1 201 Created\r\nContent-Length: 15\r\n\r\nlen=9;Wikipedia";

TEST(server_pipelining)
{
    struct sink s = { 0 };
    struct shard sh = { 0 };
    routes_setup();
    size_t len = sizeof(PIPE3) - 1;

    CHECK_EQ(run(&s, &sh, PIPE3, len, NULL, 0), 0);
    CHECK(strcmp(s.p, PIPE3_OUT) == 0);
    if (t_cur_failed) printf("  got:\n%s\n", s.p);
    CHECK_EQ(sh.calls, 1);
    char *all = strdup(s.p);

    /* byte by byte: identical output */
    size_t one = 1;
    CHECK_EQ(run(&s, &sh, PIPE3, len, &one, 1), 0);
    CHECK(strcmp(s.p, all) == 0);

    /* every two-piece split, and a few irregular patterns */
    for (size_t cut = 1; cut < len; cut++) {
        size_t sp[2] = { cut, len };
        run(&s, &sh, PIPE3, len, sp, 2);
        if (strcmp(s.p, all) != 0) { printf("  split at %zu differs\n", cut); CHECK(0); break; }
    }
    static const size_t pat[][4] = { { 2, 3, 5, 7 }, { 17, 1, 1, 40 }, { 64, 9, 33, 2 } };
    for (size_t k = 0; k < AU_ARRAY_LEN(pat); k++) {
        run(&s, &sh, PIPE3, len, pat[k], 4);
        CHECK(strcmp(s.p, all) == 0);
    }
    free(all);
    free(s.p);
}

TEST(server_routing)
{
    struct sink s = { 0 };
    struct shard sh = { 0 };
    routes_setup();
#define RUN_REQ(req) run(&s, &sh, req, strlen(req), NULL, 0)

    CHECK_EQ(RUN_REQ("GET /nope HTTP/1.1\r\n\r\n"), 0);
    CHECK(strcmp(s.p, "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 44\r\n\r\n"
                      "{\"error\":{\"code\":404,\"message\":\"not found\"}}") == 0);

    CHECK_EQ(RUN_REQ("POST /v1/users/bob HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), 0);
    CHECK(strstr(s.p, "HTTP/1.1 405 Method Not Allowed\r\n") == s.p);
    CHECK(strstr(s.p, "\r\nAllow: GET, DELETE, HEAD\r\n") != NULL);
    CHECK(strstr(s.p, "{\"error\":{\"code\":405,\"message\":\"method not allowed\"}}") != NULL);

    /* normalised path, captured + decoded segment, raw query */
    CHECK_EQ(RUN_REQ("GET /v1/users//a%40b/?start=5&x=1 HTTP/1.1\r\n\r\n"), 0);
    CHECK(strstr(s.p, "{\"method\":\"GET\",\"user\":\"a@b\",\"path\":\"/v1/users/a%40b\",\"start\":\"5\",\"n\":1}"));
    CHECK_EQ(RUN_REQ("DELETE http://h/v1/users/zed HTTP/1.1\r\n\r\n"), 0);
    CHECK(strstr(s.p, "\"method\":\"DELETE\",\"user\":\"zed\""));

    /* literal beats capture */
    CHECK_EQ(RUN_REQ("POST /v1/users/userstat HTTP/1.1\r\n\r\n"), 0);
    CHECK(strstr(s.p, "{\"userstat\":true}"));
    CHECK_EQ(RUN_REQ("GET /v1/users/userstat HTTP/1.1\r\n\r\n"), 0);
    CHECK(strstr(s.p, "\"user\":\"userstat\""));

    /* 204 has neither Content-Length nor body */
    CHECK_EQ(RUN_REQ("PUT /v1/users/u1/password/ HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"), 0);
    CHECK(strcmp(s.p, "HTTP/1.1 204 No Content\r\n\r\n") == 0);

    /* tail capture */
    CHECK_EQ(RUN_REQ("GET /static/js//app%20x.js HTTP/1.1\r\n\r\n"), 0);
    CHECK(strstr(s.p, "\r\n\r\nstatic:js/app x.js"));
    CHECK_EQ(RUN_REQ("GET /static HTTP/1.1\r\n\r\n"), 0);
    CHECK(strstr(s.p, "Content-Length: 7\r\n\r\nstatic:"));

    /* HEAD through a GET route: headers only, Content-Length kept */
    CHECK_EQ(RUN_REQ("HEAD /healthz HTTP/1.1\r\n\r\n"), 0);
    CHECK(strcmp(s.p, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n") == 0);

    /* bad escape in a captured segment; NUL in a capture; "*" target */
    CHECK_EQ(RUN_REQ("GET /v1/users/a%zz HTTP/1.1\r\n\r\n"), 0);
    CHECK(strstr(s.p, "HTTP/1.1 400 Bad Request\r\n") == s.p);
    CHECK_EQ(RUN_REQ("GET /v1/users/a%00 HTTP/1.1\r\n\r\n"), 0);
    CHECK(strstr(s.p, "HTTP/1.1 400 Bad Request\r\n") == s.p);
    CHECK_EQ(RUN_REQ("OPTIONS * HTTP/1.1\r\n\r\n"), 0);
    CHECK(strstr(s.p, "HTTP/1.1 400 Bad Request\r\n") == s.p);

    /* large response body: written without the coalescing copy */
    CHECK_EQ(RUN_REQ("GET /big HTTP/1.1\r\n\r\n"), 0);
    CHECK_EQ(s.writes, 2);
    CHECK(strstr(s.p, "Content-Length: 100000\r\n\r\nBBB"));
    CHECK_EQ(s.len, strlen("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n") + 100000);

    /* handler-set close; managed / invalid headers refused */
    CHECK_EQ(RUN_REQ("GET /close HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n"), -1);
    CHECK(strcmp(s.p, "HTTP/1.1 200 OK\r\nX-Fine: a b\tc\r\nContent-Type: application/json\r\n"
                      "Content-Length: 2\r\nConnection: close\r\n\r\n{}") == 0);

    /* route table errors */
    CHECK_EQ(http_route_add("GET", "/healthz/", h_health), -1);        /* duplicate after normalising */
    CHECK_EQ(http_route_add("G T", "/x", h_health), -1);
    CHECK_EQ(http_route_add("GET", "x", h_health), -1);
    CHECK_EQ(http_route_add("GET", "/a/{*}/b", h_health), -1);
    CHECK_EQ(http_route_add("GET", "/a/{x", h_health), -1);
    CHECK_EQ(http_route_add("GET", "/a/b}", h_health), -1);
    CHECK_EQ(http_route_add("GET", "/a/{}/{}/{}/{}/{}/{}/{}/{}/{}", h_health), -1);
    CHECK_EQ(http_route_add("HEAD", "/healthz", h_health), 0);
#undef RUN_REQ
    free(s.p);
}

TEST(server_keepalive_close)
{
    struct sink s = { 0 };
    struct shard sh = { 0 };
    routes_setup();
    struct http_conn c;
    http_conn_init(&c, &s, sink_write);
    http_conn_set_ctx(&c, &sh);
    const char *r1 = "GET /healthz HTTP/1.1\r\n\r\n";
    CHECK_EQ(http_conn_feed(&c, (const uint8_t *)r1, strlen(r1)), strlen(r1));
    CHECK(http_conn_idle(&c));
    CHECK(strstr(s.p, "Connection") == NULL);
    const char *r2 = "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n";
    sink_reset(&s);
    CHECK_EQ(http_conn_feed(&c, (const uint8_t *)r2, strlen(r2)), -1);
    CHECK(strcmp(s.p, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n") == 0);
    CHECK_EQ(http_conn_feed(&c, (const uint8_t *)r1, strlen(r1)), -1);
    CHECK_EQ(sh.calls, 2);
    http_conn_free(&c);

    /* HTTP/1.0: close by default, keep-alive on request */
    CHECK_EQ(run(&s, &sh, "GET /healthz HTTP/1.0\r\n\r\n", 25, NULL, 0), -1);
    CHECK(strstr(s.p, "\r\nConnection: close\r\n"));
    const char *ka = "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    CHECK_EQ(run(&s, &sh, ka, strlen(ka), NULL, 0), 0);
    CHECK(strstr(s.p, "\r\nConnection: keep-alive\r\n"));
    free(s.p);
}

TEST(server_continue)
{
    struct sink s = { 0 };
    struct shard sh = { 0 };
    routes_setup();
    struct http_conn c;
    http_conn_init(&c, &s, sink_write);
    const char *h = "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
    /* head alone: 100 Continue, head consumed, body awaited */
    CHECK_EQ(http_conn_feed(&c, (const uint8_t *)h, strlen(h)), strlen(h));
    CHECK(strcmp(s.p, "HTTP/1.1 100 Continue\r\n\r\n") == 0);
    CHECK(!http_conn_idle(&c));
    CHECK_EQ(http_conn_feed(&c, (const uint8_t *)"da", 2), 2);
    CHECK_EQ(http_conn_feed(&c, (const uint8_t *)"ta", 2), 2);
    CHECK(strcmp(s.p, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\nlen=4;data") == 0);
    CHECK(http_conn_idle(&c));
    http_conn_free(&c);

    /* the same bytes in one piece give the same output */
    char all[256];
    snprintf(all, sizeof(all), "%sdata", h);
    CHECK_EQ(run(&s, &sh, all, strlen(all), NULL, 0), 0);
    CHECK(strcmp(s.p, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\nlen=4;data") == 0);

    /* no route for it: final status at once, body not read, close */
    const char *nf = "POST /nope HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
    CHECK_EQ(run(&s, &sh, nf, strlen(nf), NULL, 0), -1);
    CHECK(strstr(s.p, "HTTP/1.1 404 Not Found\r\n") == s.p && strstr(s.p, "Connection: close\r\n"));
    CHECK(strstr(s.p, "100 Continue") == NULL);
    /* no body: no 100 */
    const char *nb = "GET /healthz HTTP/1.1\r\nExpect: 100-continue\r\n\r\n";
    CHECK_EQ(run(&s, &sh, nb, strlen(nb), NULL, 0), 0);
    CHECK(strstr(s.p, "HTTP/1.1 200 OK\r\n") == s.p);
    free(s.p);
}

TEST(server_errors)
{
    struct sink s = { 0 };
    struct shard sh = { 0 };
    routes_setup();
    static const struct { const char *in; const char *status; } cs[] = {
        { "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage", "400 Bad Request" },
        { "hello there\r\n\r\n", "400 Bad Request" },
        { "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", "400 Bad Request" },
        { "GET / HTTP/2.0\r\n\r\n", "505 HTTP Version Not Supported" },
        { "POST /echo HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", "413 Content Too Large" },
        { "POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "501 Not Implemented" },
        { "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "400 Bad Request" },
        { "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n900001\r\n", "413 Content Too Large" },
    };
    for (size_t k = 0; k < AU_ARRAY_LEN(cs); k++) {
        char want[128];
        snprintf(want, sizeof(want), "HTTP/1.1 %s\r\n", cs[k].status);
        size_t one = 1;
        for (int mode = 0; mode < 2; mode++) {
            int rc = run(&s, &sh, cs[k].in, strlen(cs[k].in), mode ? &one : NULL, 1);
            CHECK_EQ(rc, -1);
            CHECK(strstr(s.p, want) == s.p);
            CHECK(strstr(s.p, "\r\nConnection: close\r\n"));
            CHECK(strstr(s.p, "{\"error\":{\"code\":"));
            if (t_cur_failed) { printf("  case %zu mode %d: %s\n", k, mode, s.p); break; }
        }
    }
    /* a request that answered before the bad one keeps its response */
    const char *two = "GET /healthz HTTP/1.1\r\n\r\nBAD\x01 / HTTP/1.1\r\n\r\n";
    CHECK_EQ(run(&s, &sh, two, strlen(two), NULL, 0), -1);
    CHECK(strstr(s.p, "HTTP/1.1 200 OK\r\n") == s.p && strstr(s.p, "ok\nHTTP/1.1 400 Bad Request\r\n"));

    /* an endless head: 431 once the limit is passed (nothing consumed before) */
    char *big = malloc(AU_HTTP_MAX_HEADER_BYTES + 100);
    size_t n = (size_t)sprintf(big, "GET / HTTP/1.1\r\nX: ");
    memset(big + n, 'x', AU_HTTP_MAX_HEADER_BYTES + 100 - n);
    size_t piece = 1000, left;
    struct http_conn c;
    sink_reset(&s);
    http_conn_init(&c, &s, sink_write);
    CHECK_EQ(drive(&c, big, AU_HTTP_MAX_HEADER_BYTES - 1, &piece, 1, &left), 0);
    CHECK_EQ(left, AU_HTTP_MAX_HEADER_BYTES - 1);
    CHECK_EQ(s.len, 0);
    CHECK_EQ(http_conn_feed(&c, (const uint8_t *)big, AU_HTTP_MAX_HEADER_BYTES + 100), -1);
    CHECK(strstr(s.p, "HTTP/1.1 431 Request Header Fields Too Large\r\n") == s.p);
    http_conn_free(&c);
    free(big);
    free(s.p);
}

/* A body arriving in pieces is buffered inside the connection, growing with what arrived. */
TEST(server_large_body)
{
    struct sink s = { 0 };
    routes_setup();
    const size_t blen = 1u << 20;
    char head[128];
    size_t hl = (size_t)sprintf(head, "POST /echo HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", blen);
    uint8_t *body = malloc(blen);
    for (size_t i = 0; i < blen; i++) body[i] = (uint8_t)('a' + i % 26);

    struct http_conn c;
    http_conn_init(&c, &s, sink_write);
    CHECK_EQ(http_conn_feed(&c, (const uint8_t *)head, hl), hl);
    size_t got = 0;
    while (got < blen) {
        size_t n = AU_MIN((size_t)AU_RECV_BUF_SIZE, blen - got);
        CHECK_EQ(http_conn_feed(&c, body + got, n), n);
        got += n;
        if (got < blen) {
            CHECK(c.buf_cap <= AU_MAX(2 * (hl + got), (size_t)4096));
            CHECK(s.len == 0);
        }
    }
    CHECK(c.buf == NULL); /* given back after the request */
    CHECK(s.len > blen && strstr(s.p, "HTTP/1.1 201 Created\r\n") == s.p);
    char *lenstr = strstr(s.p, "len=1048576;abcdefghij");
    CHECK(lenstr != NULL && memcmp(s.p + s.len - 4, body + blen - 4, 4) == 0);
    http_conn_free(&c);

    /* declared size at the limit, but only a few bytes sent: no big allocation */
    http_conn_init(&c, &s, sink_write);
    hl = (size_t)sprintf(head, "POST /echo HTTP/1.1\r\nContent-Length: %u\r\n\r\nxyz", AU_HTTP_MAX_BODY);
    CHECK_EQ(http_conn_feed(&c, (const uint8_t *)head, hl), hl);
    CHECK(c.buf_cap <= 4096);
    http_conn_free(&c);

    /* chunked body over the limit in small chunks: 413 + close when the total passes it */
    http_conn_init(&c, &s, sink_write);
    sink_reset(&s);
    const char *ch = "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    CHECK_EQ(http_conn_feed(&c, (const uint8_t *)ch, strlen(ch)), strlen(ch));
    char size_line[32];
    size_t sl = (size_t)sprintf(size_line, "%x\r\n", (unsigned)blen);
    ssize_t rc = 0;
    for (int k = 0; k < 10 && rc >= 0; k++) {
        rc = http_conn_feed(&c, (const uint8_t *)size_line, sl);
        if (rc < 0) break;
        rc = http_conn_feed(&c, body, blen);
        if (rc < 0) break;
        rc = http_conn_feed(&c, (const uint8_t *)"\r\n", 2);
    }
    CHECK_EQ(rc, -1);
    CHECK(strstr(s.p, "HTTP/1.1 413 Content Too Large\r\n") == s.p);
    http_conn_free(&c);
    free(body);
    free(s.p);
}

/* The body gate and the body budget (http_set_body_gate / http_set_body_budget). */
static int g_gate_calls;
static bool t_gate(const struct http_req *q, struct http_resp *r, void *ctx)
{
    (void)ctx;
    g_gate_calls++;
    size_t l = 0;
    const char *a = http_req_header(q, "Authorization", &l);
    if (a && l == 2 && memcmp(a, "ok", 2) == 0) return true;
    http_resp_error(r, 401, 899008, "no");
    return false;
}

TEST(server_body_gate_and_budget)
{
    struct sink s = { 0 };
    routes_setup();
    http_set_body_gate(t_gate);
    struct http_conn c;
    char head[256];
    /* a large body without credentials: the gate's answer, close, not one byte of the body kept */
    http_conn_init(&c, &s, sink_write);
    sink_reset(&s);
    g_gate_calls = 0;
    size_t hl = (size_t)sprintf(head, "POST /echo HTTP/1.1\r\nContent-Length: %u\r\n\r\nxyz", AU_HTTP_MAX_BODY);
    CHECK_EQ(http_conn_feed(&c, (const uint8_t *)head, hl), -1);
    CHECK_EQ(g_gate_calls, 1);
    CHECK(strstr(s.p, "HTTP/1.1 401 Unauthorized\r\n") == s.p && strstr(s.p, "Connection: close\r\n"));
    CHECK(c.buf == NULL && http_body_buffered() == 0);
    http_conn_free(&c);
    /* chunked: gated too; an unrouted large body gets its 404 without being read */
    http_conn_init(&c, &s, sink_write);
    sink_reset(&s);
    const char *ch = "PUT /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n";
    CHECK_EQ(http_conn_feed(&c, (const uint8_t *)ch, strlen(ch)), -1);
    CHECK(strstr(s.p, "HTTP/1.1 401 ") == s.p);
    http_conn_free(&c);
    http_conn_init(&c, &s, sink_write);
    sink_reset(&s);
    hl = (size_t)sprintf(head, "POST /nowhere HTTP/1.1\r\nContent-Length: 100000\r\nAuthorization: ok\r\n\r\n");
    CHECK_EQ(http_conn_feed(&c, (const uint8_t *)head, hl), -1);
    CHECK(strstr(s.p, "HTTP/1.1 404 ") == s.p && strstr(s.p, "Connection: close\r\n"));
    http_conn_free(&c);
    /* small bodies are not gated */
    g_gate_calls = 0;
    const char *small = "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
    CHECK_EQ(run(&s, NULL, small, strlen(small), NULL, 0), 0);
    CHECK_EQ(g_gate_calls, 0);
    CHECK(strstr(s.p, "HTTP/1.1 201 ") == s.p);
    /* with credentials the body is read; it counts against the budget while buffered */
    http_set_body_budget(AU_CONFIG_MIN_BODY_BUDGET);
    http_conn_init(&c, &s, sink_write);
    sink_reset(&s);
    const size_t blen = 100000;
    hl = (size_t)sprintf(head, "POST /echo HTTP/1.1\r\nAuthorization: ok\r\nContent-Length: %zu\r\n\r\n", blen);
    CHECK_EQ(http_conn_feed(&c, (const uint8_t *)head, hl), hl);
    uint8_t *body = calloc(1, blen);
    CHECK_EQ(http_conn_feed(&c, body, 50000), 50000);
    CHECK(http_body_buffered() >= hl + 50000 && http_body_buffered() == c.charged);
    /* a second connection announcing more than what is left: 503, close, not read */
    struct sink s2 = { 0 };
    struct http_conn c2;
    http_conn_init(&c2, &s2, sink_write);
    hl = (size_t)sprintf(head, "POST /echo HTTP/1.1\r\nAuthorization: ok\r\nContent-Length: %u\r\n\r\n",
                         AU_HTTP_MAX_BODY);
    CHECK_EQ(http_conn_feed(&c2, (const uint8_t *)head, hl), -1);
    CHECK(strstr(s2.p, "HTTP/1.1 503 ") == s2.p && strstr(s2.p, "Connection: close\r\n"));
    http_conn_free(&c2);
    CHECK_EQ(http_conn_feed(&c, body, 50000), 50000);
    CHECK(strstr(s.p, "HTTP/1.1 201 ") == s.p);
    CHECK_EQ(http_body_buffered(), 0); /* given back with the buffer */
    http_conn_free(&c);
    http_set_body_budget(0);
    http_set_body_gate(NULL);
    free(body);
    free(s.p);
    free(s2.p);
}

TEST(server_pipeline_many)
{
    struct sink s = { 0 };
    struct shard sh = { 0 };
    routes_setup();
    const char *one = "GET /healthz HTTP/1.1\r\n\r\n";
    size_t ol = strlen(one), n = AU_HTTP_MAX_PIPELINE + 10;
    char *in = malloc(ol * n);
    for (size_t k = 0; k < n; k++) memcpy(in + k * ol, one, ol);
    struct http_conn c;
    http_conn_init(&c, &s, sink_write);
    http_conn_set_ctx(&c, &sh);
    /* all answered in one call: the event loop feeds each read once */
    ssize_t r = http_conn_feed(&c, (const uint8_t *)in, ol * n);
    CHECK_EQ(r, ol * n);
    CHECK_EQ(sh.calls, n);
    http_conn_free(&c);
    free(in);
    free(s.p);
}

TEST(server_defer_upgrade)
{
    struct sink s = { 0 };
    struct shard sh = { 0 };
    routes_setup();
    struct http_conn c;
    http_conn_init(&c, &s, sink_write);
    http_conn_set_ctx(&c, &sh);
    const char *in = "GET /defer HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n";
    size_t first = strlen("GET /defer HTTP/1.1\r\n\r\n");
    CHECK_EQ(http_conn_feed(&c, (const uint8_t *)in, strlen(in)), first);
    CHECK(http_conn_deferred(&c) && sh.deferred != NULL);
    CHECK_EQ(s.len, 0);
    CHECK_EQ(http_conn_feed(&c, (const uint8_t *)in + first, strlen(in) - first), 0);
    http_resp_json(sh.deferred, 201, "{\"msg_id\":1}");
    CHECK_EQ(http_resp_finish(sh.deferred), 0);
    CHECK(!http_conn_deferred(&c));
    CHECK(strstr(s.p, "HTTP/1.1 201 Created\r\n") == s.p && strstr(s.p, "{\"msg_id\":1}"));
    CHECK_EQ(http_conn_feed(&c, (const uint8_t *)in + first, strlen(in) - first), strlen(in) - first);
    CHECK(strstr(s.p, "{\"msg_id\":1}HTTP/1.1 200 OK\r\n"));
    http_conn_free(&c);

    /* upgrade: 101, feeding stops at the end of the request */
    sink_reset(&s);
    http_conn_init(&c, &s, sink_write);
    const char *up = "GET /ws HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n\x82\x05hello";
    size_t uh = strlen(up) - 7;
    CHECK_EQ(http_conn_feed(&c, (const uint8_t *)up, strlen(up)), uh);
    CHECK(http_conn_upgraded(&c));
    CHECK(strcmp(s.p, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n") == 0);
    CHECK_EQ(http_conn_feed(&c, (const uint8_t *)up + uh, 7), 0);
    http_conn_free(&c);
    /* not an upgrade request: the handler's error JSON, escaped */
    CHECK_EQ(run(&s, &sh, "GET /ws HTTP/1.1\r\n\r\n", 20, NULL, 0), 0);
    CHECK(strstr(s.p, "{\"error\":{\"code\":899003,\"message\":\"need \\\"upgrade\\\"\\u000a\"}}"));
    free(s.p);
}

/* Random request mixes in random splits: output must not depend on the read boundaries. */
TEST(server_random_splits)
{
    struct sink s = { 0 };
    struct shard sh = { 0 };
    routes_setup();
    static const char *reqs[] = {
        "GET /healthz HTTP/1.1\r\n\r\n",
        "POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        "PUT /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
        "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
        "GET /v1/users/x?start=2 HTTP/1.1\r\n\r\n",
        "DELETE /healthz HTTP/1.1\r\n\r\n",
        "GET /missing HTTP/1.1\r\n\r\n",
        "HEAD /static/a/b HTTP/1.1\r\n\r\n",
        "\r\nGET /healthz HTTP/1.1\n\n",
    };
    uint32_t seed = 12345;
    char in[4096];
    for (int round = 0; round < 200; round++) {
        size_t len = 0;
        int nreq = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 12;
        for (int k = 0; k < nreq; k++) {
            const char *r = reqs[((seed = seed * 1103515245u + 12345u) >> 16) % AU_ARRAY_LEN(reqs)];
            memcpy(in + len, r, strlen(r));
            len += strlen(r);
        }
        CHECK_EQ(run(&s, &sh, in, len, NULL, 0), 0);
        char *ref = strdup(s.p);
        size_t sp[8];
        for (int k = 0; k < 8; k++) sp[k] = 1 + ((seed = seed * 1103515245u + 12345u) >> 16) % 40;
        CHECK_EQ(run(&s, &sh, in, len, sp, 8), 0);
        CHECK(strcmp(s.p, ref) == 0);
        free(ref);
        if (t_cur_failed) break;
    }
    free(s.p);
}

int main(void)
{
    RUN(parse_valid);
    RUN(parse_fields);
    RUN(parse_errors);
    RUN(parse_limits);
    RUN(parse_prefixes);
    RUN(parse_pipelined);
    RUN(parse_line_endings);
    RUN(chunked_basic);
    RUN(chunked_splits);
    RUN(chunked_errors);
    RUN(url_decode);
    RUN(query_params);
    RUN(path_normalize);
    RUN(base64_basic_auth);
    RUN(server_pipelining);
    RUN(server_routing);
    RUN(server_keepalive_close);
    RUN(server_continue);
    RUN(server_errors);
    RUN(server_large_body);
    RUN(server_body_gate_and_budget);
    RUN(server_pipeline_many);
    RUN(server_defer_upgrade);
    RUN(server_random_splits);
    http_routes_clear();
    TEST_MAIN_END();
}
