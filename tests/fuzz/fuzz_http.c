/* fuzz_http.c - libFuzzer target for the HTTP layer.
 *
 * 1. http_parse_request on the input: invariants on what it fills (pointers inside the input,
 *    counts and limits), then the helpers on the parsed fields.
 * 2. The chunked decoder on the input, whole and in pseudo-random pieces: both must agree
 *    (result, decoded bytes, end offset).
 * 3. A server connection fed the input whole and in pseudo-random splits (kept-unconsumed bytes
 *    re-fed like the event loop does): the output bytes and the close decision must be identical
 *    (the answer never depends on read boundaries).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/http/http_parse.h"
#include "gateway/http/http_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(c) do { if (!(c)) { fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); abort(); } } while (0)

static bool inside(const void *p, size_t len, const uint8_t *buf, size_t size)
{
    const uint8_t *q = p;
    return q >= buf && q + len <= buf + size;
}

static uint32_t g_rng;
static uint32_t rnd(void)
{
    g_rng = g_rng * 1103515245u + 12345u;
    return g_rng >> 8;
}

static void check_parse(const uint8_t *data, size_t size)
{
    struct http_request r;
    int rc = http_parse_request(data, size, &r);
    FZ_CHECK(rc <= (int)size && rc <= (int)AU_HTTP_MAX_HEADER_BYTES);
    FZ_CHECK(rc >= HTTP_ECHUNK);
    if (rc < 0) {
        int st = http_parse_status(rc);
        FZ_CHECK(st >= 400 && st <= 505);
        return;
    }
    if (rc == 0) {
        FZ_CHECK(size < AU_HTTP_MAX_HEADER_BYTES);
        return;
    }
    FZ_CHECK(inside(r.method, r.method_len, data, size) && r.method_len > 0);
    FZ_CHECK(inside(r.target, r.target_len, data, size) && r.target_len > 0);
    FZ_CHECK(r.path_len > 0);
    FZ_CHECK(inside(r.path, r.path_len, data, size) || (r.path_len == 1 && r.path[0] == '/'));
    if (r.query) FZ_CHECK(inside(r.query, r.query_len, data, size));
    FZ_CHECK(r.num_headers <= AU_HTTP_MAX_HEADERS);
    FZ_CHECK(r.minor_version >= 0 && r.minor_version <= 9);
    FZ_CHECK(r.content_length <= AU_HTTP_MAX_BODY);
    FZ_CHECK(!(r.chunked && r.has_content_length));
    for (size_t k = 0; k < r.num_headers; k++) {
        const struct http_header *h = &r.headers[k];
        FZ_CHECK(inside(h->name, h->name_len, data, size) && h->name_len > 0);
        FZ_CHECK(h->value_len == 0 || inside(h->value, h->value_len, data, size));
        FZ_CHECK(memchr(h->value, '\r', h->value_len) == NULL && memchr(h->value, '\n', h->value_len) == NULL);
    }
    /* the same head alone parses to the same length */
    struct http_request r2;
    FZ_CHECK(http_parse_request(data, (size_t)rc, &r2) == rc);
    FZ_CHECK(r2.num_headers == r.num_headers && r2.content_length == r.content_length);

    /* helpers on the parsed fields */
    char *tmp = malloc(r.path_len + 2);
    ssize_t n = http_path_normalize(r.path, r.path_len, tmp, r.path_len + 2);
    if (n >= 0) {
        FZ_CHECK(tmp[0] == '/' && (size_t)n <= r.path_len && tmp[n] == '\0');
        FZ_CHECK(n == 1 || tmp[n - 1] != '/');
        FZ_CHECK(strstr(tmp, "//") == NULL);
        /* idempotent */
        char *t2 = malloc((size_t)n + 2);
        FZ_CHECK(http_path_normalize(tmp, (size_t)n, t2, (size_t)n + 2) == n && memcmp(t2, tmp, (size_t)n) == 0);
        free(t2);
    } else {
        FZ_CHECK(r.path[0] != '/');
    }
    free(tmp);
    if (r.query) {
        char *q = malloc(r.query_len + 1);
        ssize_t d = http_url_decode(r.query, r.query_len, q, r.query_len, true);
        FZ_CHECK(d <= (ssize_t)r.query_len);
        char v[64];
        static const char *names[] = { "start", "count", "mediaId", "type", "a" };
        for (size_t k = 0; k < 5; k++) {
            ssize_t g = http_query_get(r.query, r.query_len, names[k], v, sizeof(v));
            FZ_CHECK(g >= -2 && g < (ssize_t)sizeof(v));
            if (g >= 0) FZ_CHECK(v[g] == '\0');
        }
        free(q);
    }
    const struct http_header *auth = http_header_find(&r, "authorization");
    if (auth) {
        char u[64], p[64];
        if (http_basic_auth_decode(auth->value, auth->value_len, u, sizeof(u), p, sizeof(p)) == 0)
            FZ_CHECK(strlen(u) < sizeof(u) && strlen(p) < sizeof(p));
    }
}

/* Decode the input as a chunked body, cut at the given points. */
static int dechunk(const uint8_t *data, size_t size, size_t piece_max, uint8_t *out, size_t *olen, size_t *end)
{
    struct http_chunked d;
    http_chunked_init(&d, 4096);
    size_t pos = 0;
    *olen = 0;
    *end = 0;
    while (pos < size) {
        size_t piece = piece_max ? 1 + rnd() % piece_max : size - pos;
        if (piece > size - pos) piece = size - pos;
        size_t i = 0;
        for (;;) {
            size_t used;
            const uint8_t *p;
            size_t pl;
            int rc = http_chunked_decode(&d, data + pos + i, piece - i, &used, &p, &pl);
            FZ_CHECK(used <= piece - i);
            i += used;
            if (rc < 0) return rc;
            if (rc == HTTP_CHUNK_DATA) {
                FZ_CHECK(inside(p, pl, data, size) && pl > 0 && *olen + pl <= 4096);
                memcpy(out + *olen, p, pl);
                *olen += pl;
                continue;
            }
            if (rc == HTTP_CHUNK_DONE) {
                *end = pos + i;
                return rc;
            }
            FZ_CHECK(rc == HTTP_NEED_MORE && i == piece);
            break;
        }
        pos += piece;
    }
    return HTTP_NEED_MORE;
}

static void check_chunked(const uint8_t *data, size_t size)
{
    static uint8_t a[4096], b[4096];
    size_t alen, aend, blen, bend;
    int ra = dechunk(data, size, 0, a, &alen, &aend);
    int rb = dechunk(data, size, 1 + rnd() % 16, b, &blen, &bend);
    FZ_CHECK(ra == rb && alen == blen && aend == bend && memcmp(a, b, alen) == 0);
}

/* ---- server ---- */

struct sink { uint8_t *p; size_t len, cap; };

static void sink_write(void *io, const void *d, size_t n)
{
    struct sink *s = io;
    if (s->len + n > s->cap) {
        s->cap = (s->len + n) * 2;
        s->p = realloc(s->p, s->cap);
        FZ_CHECK(s->p != NULL);
    }
    memcpy(s->p + s->len, d, n);
    s->len += n;
}

struct fz_ctx { struct http_resp *deferred; };

static void h_echo(const struct http_req *q, struct http_resp *r, void *ctx)
{
    char head[256];
    char start[32] = "";
    size_t hl;
    http_query_get(q->query, q->query_len, "start", start, sizeof(start));
    const char *ct = http_req_header(q, "content-type", &hl);
    snprintf(head, sizeof(head), "%s|%zu|%zu|%s|%.*s|", q->path, q->nparams, q->body_len, start,
             (int)(ct ? AU_MIN(hl, (size_t)32) : 0), ct ? ct : "");
    http_resp_status(r, 200);
    http_resp_header(r, "X-Start", start);
    http_resp_body(r, head, strlen(head));
    for (size_t k = 0; k < q->nparams; k++) {
        FZ_CHECK(strlen(q->params[k].p) == q->params[k].len);
        http_resp_append(r, q->params[k].p, q->params[k].len);
    }
    if (q->body_len) http_resp_append(r, q->body, q->body_len);
}

static void h_defer(const struct http_req *q, struct http_resp *r, void *ctx)
{
    ((struct fz_ctx *)ctx)->deferred = r;
    http_resp_defer(r);
}

static void h_ws(const struct http_req *q, struct http_resp *r, void *ctx)
{
    if (http_resp_upgrade(r, "websocket") < 0) http_resp_error(r, 400, 899003, "no upgrade");
}

static void h_nocontent(const struct http_req *q, struct http_resp *r, void *ctx)
{
    http_resp_status(r, 204);
}

static void setup_routes(void)
{
    static bool done;
    if (done) return;
    done = true;
    FZ_CHECK(http_route_add("GET", "/healthz", h_echo) == 0);
    FZ_CHECK(http_route_add("POST", "/v1/messages", h_echo) == 0);
    FZ_CHECK(http_route_add("GET", "/v1/users/{}", h_echo) == 0);
    FZ_CHECK(http_route_add("PUT", "/v1/users/{}", h_echo) == 0);
    FZ_CHECK(http_route_add("DELETE", "/v1/users/{}", h_nocontent) == 0);
    FZ_CHECK(http_route_add("POST", "/v1/users/userstat", h_echo) == 0);
    FZ_CHECK(http_route_add("PUT", "/v1/users/{}/password", h_echo) == 0);
    FZ_CHECK(http_route_add("POST", "/v1/groups/{}/members", h_echo) == 0);
    FZ_CHECK(http_route_add("GET", "/static/{*}", h_echo) == 0);
    FZ_CHECK(http_route_add("POST", "/defer", h_defer) == 0);
    FZ_CHECK(http_route_add("GET", "/mqtt", h_ws) == 0);
}

/* Feed like the event loop; pieces of 1..piece_max bytes (0: all at once). Returns the output
 * with a trailing marker for how it ended. */
static void serve(const uint8_t *data, size_t size, size_t piece_max, struct sink *out)
{
    struct http_conn c;
    struct fz_ctx ctx = { NULL };
    uint8_t *pend = malloc(size + 1);
    size_t plen = 0, pos = 0;
    const char *end = "open";

    out->len = 0;
    http_conn_init(&c, out, sink_write);
    http_conn_set_ctx(&c, &ctx);
    while (pos < size) {
        size_t piece = piece_max ? 1 + rnd() % piece_max : size - pos;
        if (piece > size - pos) piece = size - pos;
        memcpy(pend + plen, data + pos, piece);
        plen += piece;
        pos += piece;
        for (;;) {
            ssize_t n = http_conn_feed(&c, pend, plen);
            if (n < 0) { end = "closed"; goto done; }
            FZ_CHECK((size_t)n <= plen);
            memmove(pend, pend + n, plen - (size_t)n);
            plen -= (size_t)n;
            if (http_conn_upgraded(&c)) { end = "upgraded"; goto done; }
            if (http_conn_deferred(&c)) {
                FZ_CHECK(ctx.deferred != NULL);
                http_resp_json(ctx.deferred, 201, "{\"deferred\":true}");
                if (http_resp_finish(ctx.deferred) < 0) { end = "closed"; goto done; }
                ctx.deferred = NULL;
                continue; /* feed what was kept */
            }
            if (n == 0 || plen == 0) break;
        }
        /* a partial head is never longer than the limit */
        FZ_CHECK(plen <= AU_HTTP_MAX_HEADER_BYTES);
    }
done:
    sink_write(out, end, strlen(end));
    http_conn_free(&c);
    free(pend);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sink a, b;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size; i++) h = (h ^ data[i]) * 16777619u;
    g_rng = h;

    check_parse(data, size);
    check_chunked(data, size);

    setup_routes();
    serve(data, size, 0, &a);
    serve(data, size, 1 + rnd() % 48, &b);
    if (a.len != b.len || memcmp(a.p, b.p, a.len) != 0) {
        fprintf(stderr, "whole:\n%.*s\n--- split:\n%.*s\n", (int)a.len, (const char *)a.p, (int)b.len,
                (const char *)b.p);
        abort();
    }
    return 0;
}
