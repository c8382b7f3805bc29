/* http_server.c - HTTP/1.1 connection state machine and router (see http_server.h). */
#include "gateway/http/http_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { HC_HEAD, HC_BODY, HC_CHUNKED, HC_DEFERRED, HC_UPGRADED, HC_CLOSED };

/* ---- route table ---- */

struct http_route {
    http_handler_fn fn;
    uint32_t key;            /* specificity: lower wins (captures further left weigh more) */
    uint8_t nsegs;           /* literal + {} segments (the tail is not counted) */
    bool tail;               /* ends in {*} */
    uint8_t method_len;
    uint32_t capture_mask;   /* bit i: segment i is {} */
    uint16_t seg_off[HTTP_ROUTE_MAX_SEGS];
    uint16_t seg_len[HTTP_ROUTE_MAX_SEGS];
    char method[24];
    char pattern[HTTP_ROUTE_PATTERN_MAX];
};

static struct http_route g_routes[HTTP_MAX_ROUTES];
static size_t g_nroutes;

/* ---- request bodies: gate and budget (set at start-up, read-only after) ---- */
static http_gate_fn g_gate;
static uint64_t g_budget;
static atomic_uint_fast64_t g_buffered;  /* head + body bytes held by every connection's buf */

void http_set_body_gate(http_gate_fn gate) { g_gate = gate; }
void http_set_body_budget(uint64_t bytes) { g_budget = bytes; }
uint64_t http_body_buffered(void) { return atomic_load_explicit(&g_buffered, memory_order_relaxed); }

/* Count `n` more bytes of buffer against the budget; false (nothing counted) when they do not fit. */
static bool budget_take(struct http_conn *c, size_t n)
{
    if (g_budget) {
        uint64_t cur = atomic_load_explicit(&g_buffered, memory_order_relaxed);
        do {
            if (cur + n > g_budget) return false;
        } while (!atomic_compare_exchange_weak_explicit(&g_buffered, &cur, cur + n, memory_order_relaxed,
                                                        memory_order_relaxed));
    } else {
        atomic_fetch_add_explicit(&g_buffered, n, memory_order_relaxed);
    }
    c->charged += n;
    return true;
}

static void budget_give(struct http_conn *c)
{
    if (c->charged) atomic_fetch_sub_explicit(&g_buffered, c->charged, memory_order_relaxed);
    c->charged = 0;
}

/* What route_find looks at first, packed apart from the ~400-byte routes so that the scan of every request
 * touches 4 bytes per route: segment count, tail, and the lengths of the first two segments when literal. */
#define ROUTE_ANY_LEN 0xff
struct route_shape {
    uint8_t nsegs;
    uint8_t tail;
    uint8_t len0, len1;      /* ROUTE_ANY_LEN: a capture, absent, or longer than 254 */
};
static struct route_shape g_shapes[HTTP_MAX_ROUTES];

/* RFC 9110 tchar: ALPHA / DIGIT / "!#$%&'*+-.^_`|~" */
static const uint8_t g_tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1,
    ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1,
    ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1,
    ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1,
    ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1,
    ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static bool is_token(const char *s, size_t n)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (!g_tchar[(unsigned char)s[i]]) return false;
    return true;
}

/* The same paths reach both: the same literals and captures at the same places (capture names aside). */
static bool same_shape(const struct http_route *a, const struct http_route *b)
{
    if (a->nsegs != b->nsegs || a->tail != b->tail || a->capture_mask != b->capture_mask) return false;
    for (size_t k = 0; k < a->nsegs; k++) {
        if (a->capture_mask & (1u << k)) continue;
        if (a->seg_len[k] != b->seg_len[k] || memcmp(a->pattern + a->seg_off[k], b->pattern + b->seg_off[k],
                                                     a->seg_len[k]) != 0)
            return false;
    }
    return true;
}

int http_route_add(const char *method, const char *path_pattern, http_handler_fn fn)
{
    AU_ASSERT(method && path_pattern && fn);
    size_t mlen = strlen(method), plen = strlen(path_pattern);
    if (g_nroutes == HTTP_MAX_ROUTES || !is_token(method, mlen) || mlen >= sizeof(g_routes[0].method))
        return -1;
    if (plen + 1 >= HTTP_ROUTE_PATTERN_MAX) return -1;

    struct http_route r;
    memset(&r, 0, sizeof(r));
    ssize_t n = http_path_normalize(path_pattern, plen, r.pattern, sizeof(r.pattern));
    if (n < 0) return -1;
    size_t nparams = 0, i = 1;
    while (n > 1 && i <= (size_t)n) {
        size_t s = i;
        while (i < (size_t)n && r.pattern[i] != '/') i++;
        const char *seg = r.pattern + s;
        size_t sl = i - s;
        bool last = i >= (size_t)n;
        i++;
        if ((sl == 3 && memcmp(seg, "{*}", 3) == 0) || (sl == 1 && seg[0] == '*')) {
            if (!last) return -1;
            r.tail = true;
            r.key |= 1u << (31 - r.nsegs);
            nparams++;
            break;
        }
        if (r.nsegs == HTTP_ROUTE_MAX_SEGS) return -1;
        bool cap = seg[0] == '{';
        if (cap && (seg[sl - 1] != '}' || memchr(seg + 1, '{', sl - 2) || memchr(seg + 1, '}', sl - 2)))
            return -1;
        if (!cap && (memchr(seg, '{', sl) || memchr(seg, '}', sl)))
            return -1;
        if (cap) {
            r.capture_mask |= 1u << r.nsegs;
            r.key |= 1u << (31 - r.nsegs);
            nparams++;
        }
        r.seg_off[r.nsegs] = (uint16_t)s;
        r.seg_len[r.nsegs] = (uint16_t)sl;
        r.nsegs++;
    }
    if (nparams > HTTP_MAX_PARAMS) return -1;
    memcpy(r.method, method, mlen + 1);
    r.method_len = (uint8_t)mlen;
    r.fn = fn;
    for (size_t k = 0; k < g_nroutes; k++)
        if (strcmp(g_routes[k].method, r.method) == 0 && same_shape(&g_routes[k], &r)) return -1;
    struct route_shape sh = { r.nsegs, r.tail, ROUTE_ANY_LEN, ROUTE_ANY_LEN };
    if (r.nsegs > 0 && !(r.capture_mask & 1u) && r.seg_len[0] < ROUTE_ANY_LEN) sh.len0 = (uint8_t)r.seg_len[0];
    if (r.nsegs > 1 && !(r.capture_mask & 2u) && r.seg_len[1] < ROUTE_ANY_LEN) sh.len1 = (uint8_t)r.seg_len[1];
    g_shapes[g_nroutes] = sh;
    g_routes[g_nroutes++] = r;
    return 0;
}

int http_routes_add(const struct http_routes *t, size_t *bad)
{
    for (size_t i = 0; i < t->n; i++) {
        if (http_route_add(t->r[i].method, t->r[i].pattern, t->r[i].fn) != 0) {
            if (bad) *bad = i;
            return -1;
        }
    }
    return 0;
}

void http_routes_clear(void)
{
    g_nroutes = 0;
}

/* ---- matching ---- */

struct path_segs {
    size_t n;                                   /* segments stored (<= MAX_SEGS + 1) */
    size_t total;                               /* segments in the path */
    uint16_t off[HTTP_ROUTE_MAX_SEGS + 1];
    uint16_t len[HTTP_ROUTE_MAX_SEGS + 1];
};

/* Segments of a normalised path ("/" has none). Paths are < 64 KiB (head limit). */
static void split_path(const char *p, size_t len, struct path_segs *ps)
{
    ps->n = ps->total = 0;
    size_t i = 1;
    while (len > 1 && i <= len) {
        size_t s = i;
        while (i < len && p[i] != '/') i++;
        if (ps->n < AU_ARRAY_LEN(ps->off)) {
            ps->off[ps->n] = (uint16_t)s;
            ps->len[ps->n] = (uint16_t)(i - s);
            ps->n++;
        }
        ps->total++;
        i++;
    }
}

static inline bool route_count_fits(const struct http_route *r, const struct path_segs *ps)
{
    return r->tail ? ps->total >= r->nsegs : ps->total == r->nsegs;
}

static bool route_path_matches(const struct http_route *r, const char *p, const struct path_segs *ps)
{
    if (!route_count_fits(r, ps)) return false;
    for (size_t k = 0; k < r->nsegs; k++) {
        if (r->capture_mask & (1u << k)) continue;
        if (ps->len[k] != r->seg_len[k] || memcmp(p + ps->off[k], r->pattern + r->seg_off[k], ps->len[k]) != 0)
            return false;
    }
    return true;
}

static bool method_is(const struct http_route *r, const char *m, size_t mlen)
{
    return r->method_len == mlen && memcmp(r->method, m, mlen) == 0;
}

/* Returns the route for (method, path), or NULL with *status 404 / 405. *via_get: HEAD served
 * by a GET route. */
static const struct http_route *route_find(const struct http_request *m, const char *p,
                                           const struct path_segs *ps, int *status, bool *via_get)
{
    const struct http_route *best = NULL, *get = NULL;
    bool any = false;
    /* the path's first two segment lengths (ROUTE_ANY_LEN when absent: no literal can match then) */
    uint8_t l0 = ps->n > 0 && ps->len[0] < ROUTE_ANY_LEN ? (uint8_t)ps->len[0] : ROUTE_ANY_LEN - 1;
    uint8_t l1 = ps->n > 1 && ps->len[1] < ROUTE_ANY_LEN ? (uint8_t)ps->len[1] : ROUTE_ANY_LEN - 1;
    for (size_t k = 0; k < g_nroutes; k++) {
        const struct route_shape *sh = &g_shapes[k];
        if (sh->tail ? ps->total < sh->nsegs : ps->total != sh->nsegs) continue;
        if ((sh->len0 != ROUTE_ANY_LEN && sh->len0 != l0) || (sh->len1 != ROUTE_ANY_LEN && sh->len1 != l1)) continue;
        const struct http_route *r = &g_routes[k];
        if (!route_path_matches(r, p, ps)) continue;
        any = true;
        if (method_is(r, m->method, m->method_len)) {
            if (!best || r->key < best->key) best = r;
        } else if (m->method_id == HTTP_M_HEAD && method_is(r, "GET", 3)) {
            if (!get || r->key < get->key) get = r;
        }
    }
    *via_get = false;
    if (best) return best;
    if (get) {
        *via_get = true;
        return get;
    }
    *status = any ? 405 : 404;
    return NULL;
}

/* "GET, HEAD, PUT" for the routes matching the path. */
static void allow_list(const char *p, const struct path_segs *ps, char *out, size_t cap)
{
    size_t o = 0;
    bool get = false, head = false;
    out[0] = '\0';
    for (size_t k = 0; k < g_nroutes; k++) {
        const struct http_route *r = &g_routes[k];
        if (!route_path_matches(r, p, ps)) continue;
        bool dup = false;
        for (size_t j = 0; j < k && !dup; j++)
            dup = route_path_matches(&g_routes[j], p, ps) && strcmp(g_routes[j].method, r->method) == 0;
        if (dup) continue;
        get |= strcmp(r->method, "GET") == 0;
        head |= strcmp(r->method, "HEAD") == 0;
        int w = snprintf(out + o, cap - o, "%s%s", o ? ", " : "", r->method);
        if (w < 0 || (size_t)w >= cap - o) break;
        o += (size_t)w;
    }
    if (get && !head) {
        int w = snprintf(out + o, cap - o, "%sHEAD", o ? ", " : "");
        if (w > 0 && (size_t)w < cap - o) o += (size_t)w;
    }
    out[o] = '\0';
}

/* Normalised path + decoded captures live in a scratch area: on the stack for ordinary paths. */
struct route_ctx {
    char *scratch;
    size_t cap;
    bool heap;
    ssize_t plen;
    struct path_segs ps;
    char sbuf[1024];
};

/* 0: scratch ready with the normalised path; 400: bad path; 503: no memory. */
static int route_ctx_init(struct route_ctx *rc, const struct http_request *m)
{
    rc->cap = 2 * m->path_len + 4 + HTTP_MAX_PARAMS;
    rc->heap = rc->cap > sizeof(rc->sbuf);
    rc->scratch = rc->heap ? malloc(rc->cap) : rc->sbuf;
    rc->plen = -1;
    if (!rc->scratch) return 503;
    rc->plen = http_path_normalize(m->path, m->path_len, rc->scratch, m->path_len + 2);
    if (rc->plen < 0) return 400;
    split_path(rc->scratch, (size_t)rc->plen, &rc->ps);
    return 0;
}

/* The request a handler (or the body gate) sees: the head's fields and the normalised path (the body and the
 * parameters are the caller's: fill_params, or zeroed for the gate). */
static void req_init(struct http_req *q, struct http_conn *c, const struct http_request *m, const struct route_ctx *rc)
{
    q->conn = c;
    q->msg = m;
    q->method = m->method_id;
    q->method_str = m->method;
    q->method_len = m->method_len;
    q->path = rc->scratch;
    q->path_len = (size_t)rc->plen;
    q->query = m->query;
    q->query_len = m->query_len;
}


static void route_ctx_free(struct route_ctx *rc)
{
    if (rc->heap) free(rc->scratch);
}

/* ---- response building ---- */

const char *http_status_reason(int code)
{
    switch (code) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default:
        if (code >= 200 && code < 300) return "OK";
        if (code >= 300 && code < 400) return "Redirect";
        if (code >= 400 && code < 500) return "Client Error";
        return "Server Error";
    }
}

static void resp_reset(struct http_resp *r, const struct http_request *m)
{
    r->status = 200;
    r->close = m ? !m->keep_alive : true;
    r->head = m ? m->method_id == HTTP_M_HEAD : false;
    r->deferred = false;
    r->upgrade = false;
    r->failed = false;
    r->ka10 = m ? m->minor_version == 0 && m->keep_alive : false;
    r->req_body = m ? m->chunked || m->content_length > 0 : false;
    r->minor = m ? (uint8_t)m->minor_version : 1;
    r->hdr_len = 0;
    r->body = NULL;
    r->body_len = 0;
}

static void resp_release(struct http_resp *r)
{
    free(r->body_buf);
    r->body_buf = NULL;
    r->body_cap = 0;
    r->body = NULL;
    r->body_len = 0;
}

void http_resp_status(struct http_resp *resp, int code)
{
    AU_ASSERT(code >= 200 && code <= 599);
    resp->status = code;
}

static bool hdr_name_managed(const char *name, size_t n)
{
    switch (n) {
    case 10: return strcasecmp(name, "connection") == 0;
    case 14: return strcasecmp(name, "content-length") == 0;
    case 17: return strcasecmp(name, "transfer-encoding") == 0;
    default: return false;
    }
}

/* A whole "Name: value\r\n" line the caller vouches for (a constant of this file). */
static int hdr_line(struct http_resp *r, const char *line, size_t n)
{
    if (n > sizeof(r->hdr) - r->hdr_len) return -1;
    memcpy(r->hdr + r->hdr_len, line, n);
    r->hdr_len = (uint16_t)(r->hdr_len + n);
    return 0;
}
#define HDR_JSON "Content-Type: application/json\r\n"

static int hdr_append_n(struct http_resp *r, const char *name, size_t nl, const char *value)
{
    size_t vl = strlen(value);
    if (!is_token(name, nl)) return -1;
    for (size_t i = 0; i < vl; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) return -1;
    }
    size_t need = nl + 2 + vl + 2;
    if (need > sizeof(r->hdr) - r->hdr_len) return -1;
    char *p = r->hdr + r->hdr_len;
    memcpy(p, name, nl);
    memcpy(p + nl, ": ", 2);
    memcpy(p + nl + 2, value, vl);
    memcpy(p + nl + 2 + vl, "\r\n", 2);
    r->hdr_len = (uint16_t)(r->hdr_len + need);
    return 0;
}

static int hdr_append(struct http_resp *r, const char *name, const char *value)
{
    return hdr_append_n(r, name, strlen(name), value);
}

int http_resp_header(struct http_resp *resp, const char *name, const char *value)
{
    size_t nl = strlen(name);
    if (hdr_name_managed(name, nl)) return -1;
    return hdr_append_n(resp, name, nl, value);
}

static int body_reserve(struct http_resp *r, size_t need)
{
    if (need <= r->body_cap) return 0;
    size_t cap = r->body_cap ? r->body_cap * 2 : 512;
    if (cap < need) cap = need;
    uint8_t *nb = realloc(r->body_buf, cap);
    if (!nb) {
        r->failed = true;
        return -1;
    }
    r->body_buf = nb;
    r->body_cap = cap;
    return 0;
}

int http_resp_append(struct http_resp *resp, const void *data, size_t len)
{
    if (resp->body && resp->body != resp->body_buf) {
        /* body was a reference: turn it into an owned copy first */
        const uint8_t *old = resp->body;
        size_t olen = resp->body_len;
        if (body_reserve(resp, olen + len) < 0) return -1;
        memmove(resp->body_buf, old, olen);
    }
    if (body_reserve(resp, resp->body_len + len) < 0) return -1;
    if (len) memcpy(resp->body_buf + resp->body_len, data, len);
    resp->body = resp->body_buf;
    resp->body_len += len;
    return 0;
}

int http_resp_body(struct http_resp *resp, const void *data, size_t len)
{
    resp->body = NULL;
    resp->body_len = 0;
    return http_resp_append(resp, data, len);
}

void http_resp_body_ref(struct http_resp *resp, const void *data, size_t len)
{
    resp->body = data;
    resp->body_len = len;
}

int http_resp_json(struct http_resp *resp, int code, const char *json)
{
    return http_resp_json_len(resp, code, json, strlen(json));
}

int http_resp_json_len(struct http_resp *resp, int code, const char *json, size_t len)
{
    http_resp_status(resp, code);
    if (hdr_line(resp, HDR_JSON, sizeof(HDR_JSON) - 1) < 0) return -1;
    return http_resp_body(resp, json, len);
}

int http_resp_error(struct http_resp *resp, int status, long code, const char *message)
{
    char head[64];
    int n = snprintf(head, sizeof(head), "{\"error\":{\"code\":%ld,\"message\":\"", code);
    AU_ASSERT(n > 0 && (size_t)n < sizeof(head));
    http_resp_status(resp, status);
    if (hdr_line(resp, HDR_JSON, sizeof(HDR_JSON) - 1) < 0) return -1;
    if (http_resp_body(resp, head, (size_t)n) < 0) return -1;
    for (const unsigned char *p = (const unsigned char *)message; *p; p++) {
        char esc[8];
        size_t el;
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            el = 2;
        } else if (*p < 0x20) {
            el = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", *p);
        } else {
            esc[0] = (char)*p;
            el = 1;
        }
        if (http_resp_append(resp, esc, el) < 0) return -1;
    }
    return http_resp_append(resp, "\"}}", 3);
}

void http_resp_close(struct http_resp *resp)
{
    resp->close = true;
}

int http_resp_upgrade(struct http_resp *resp, const char *protocol)
{
    struct http_conn *c = resp->conn;
    if (!c->in_handler || resp->minor < 1 || resp->req_body) return -1;
    if (hdr_append(resp, "Upgrade", protocol) < 0) return -1;
    if (hdr_append(resp, "Connection", "Upgrade") < 0) return -1;
    resp->status = 101;
    resp->upgrade = true;
    return 0;
}

void http_resp_defer(struct http_resp *resp)
{
    AU_ASSERT(resp->conn->in_handler);
    resp->deferred = true;
}

/* Writes the response. Returns 0 (keep going), 1 (upgraded) or -1 (close). */
static int resp_send(struct http_conn *c)
{
    struct http_resp *r = &c->resp;
    char buf[4096];
    size_t n;

    if (r->failed) {
        r->status = 500;
        r->hdr_len = 0;
        r->body = NULL;
        r->body_len = 0;
        r->upgrade = false;
        r->close = true;
    }
    bool no_len = r->status < 200 || r->status == 204;
    bool no_body = r->head || no_len || r->status == 304;
    const char *reason = http_status_reason(r->status);
    size_t rl = strlen(reason);
    AU_ASSERT(r->status >= 100 && r->status <= 599 && rl < 64);
    memcpy(buf, "HTTP/1.1 ", 9);
    buf[9] = (char)('0' + r->status / 100);
    buf[10] = (char)('0' + r->status / 10 % 10);
    buf[11] = (char)('0' + r->status % 10);
    buf[12] = ' ';
    memcpy(buf + 13, reason, rl);
    n = 13 + rl;
    memcpy(buf + n, "\r\n", 2);
    n += 2;
    AU_ASSERT(r->hdr_len <= sizeof(r->hdr) && n + r->hdr_len + 128 < sizeof(buf));
    memcpy(buf + n, r->hdr, r->hdr_len);
    n += r->hdr_len;
    if (!no_len) {
        char digits[24];
        size_t d = sizeof(digits), v = r->body_len;
        do {
            digits[--d] = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        memcpy(buf + n, "Content-Length: ", 16);
        n += 16;
        memcpy(buf + n, digits + d, sizeof(digits) - d);
        n += sizeof(digits) - d;
        memcpy(buf + n, "\r\n", 2);
        n += 2;
    }
    if (r->upgrade) {
        /* Connection: Upgrade is among the headers */
    } else if (r->close) {
        memcpy(buf + n, "Connection: close\r\n", 19);
        n += 19;
    } else if (r->ka10) {
        memcpy(buf + n, "Connection: keep-alive\r\n", 24);
        n += 24;
    }
    memcpy(buf + n, "\r\n", 2);
    n += 2;

    size_t blen = no_body ? 0 : r->body_len;
    if (blen && blen <= sizeof(buf) - n) {
        memcpy(buf + n, r->body, blen);
        n += blen;
        blen = 0;
    }
    c->write(c->io, buf, n);
    if (blen) c->write(c->io, r->body, blen);
    r->body = NULL;
    r->body_len = 0;
    if (r->body_cap > 16384) resp_release(r);
    if (r->upgrade) return 1;
    return r->close ? -1 : 0;
}

static void send_error(struct http_conn *c, int status, const char *msg)
{
    resp_reset(&c->resp, NULL);
    http_resp_error(&c->resp, status, status, msg);
    c->resp.close = true;
    resp_send(c);
}

static void send_route_error(struct http_conn *c, int status, struct route_ctx *rc)
{
    struct http_resp *r = &c->resp;
    if (status == 405) {
        char allow[256];
        allow_list(rc->scratch, &rc->ps, allow, sizeof(allow));
        hdr_append(r, "Allow", allow);
        http_resp_error(r, 405, 405, "method not allowed");
    } else if (status == 404) {
        http_resp_error(r, 404, 404, "not found");
    } else if (status == 400) {
        http_resp_error(r, 400, 400, "bad request target");
    } else {
        http_resp_error(r, status, status, http_status_reason(status));
        r->close = true;
    }
}

/* Percent-decode the captures into the scratch area after the normalised path. */
static int fill_params(const struct http_route *rt, struct route_ctx *rc, struct http_req *q)
{
    const char *p = rc->scratch;
    char *out = rc->scratch + rc->plen + 1;
    char *end = rc->scratch + rc->cap;
    q->nparams = 0;
    for (size_t k = 0; k <= rt->nsegs; k++) {
        const char *s;
        size_t sl;
        if (k == rt->nsegs) {
            if (!rt->tail) break;
            if (rc->ps.total > rt->nsegs) {
                s = p + rc->ps.off[k];
                sl = (size_t)rc->plen - rc->ps.off[k];
            } else {
                s = p + rc->plen;
                sl = 0;
            }
        } else {
            if (!(rt->capture_mask & (1u << k))) continue;
            s = p + rc->ps.off[k];
            sl = rc->ps.len[k];
        }
        AU_ASSERT(q->nparams < HTTP_MAX_PARAMS && out + sl + 1 <= end);
        ssize_t dl = http_url_decode(s, sl, out, (size_t)(end - out) - 1, false);
        if (dl < 0 || memchr(out, '\0', (size_t)dl)) return -1;
        out[dl] = '\0';
        q->params[q->nparams].p = out;
        q->params[q->nparams].len = (size_t)dl;
        q->nparams++;
        out += dl + 1;
    }
    return 0;
}

/* Route and answer one complete request. Returns 0 go on, 1 stop (deferred / upgraded),
 * -1 close. */
static int dispatch(struct http_conn *c, const struct http_request *m, const uint8_t *body, size_t blen)
{
    struct http_resp *r = &c->resp;
    struct route_ctx rc;
    int status;

    resp_reset(r, m);
    c->requests++;
    status = route_ctx_init(&rc, m);
    if (status == 0) {
        bool via_get;
        const struct http_route *rt = route_find(m, rc.scratch, &rc.ps, &status, &via_get);
        if (rt) {
            struct http_req q;
            req_init(&q, c, m, &rc);
            q.body = blen ? body : NULL;
            q.body_len = blen;
            if (fill_params(rt, &rc, &q) < 0) {
                status = 400;
            } else {
                c->in_handler = true;
                rt->fn(&q, r, c->ctx);
                c->in_handler = false;
            }
        }
    }
    if (status)
        send_route_error(c, status, &rc);
    route_ctx_free(&rc);
    if (r->deferred) {
        c->state = HC_DEFERRED;
        return 1;
    }
    int rv = resp_send(c);
    if (rv == 1) {
        c->state = HC_UPGRADED;
        return 1;
    }
    return rv;
}

/* A head announcing a large (or chunked) body: ask the gate before reading any of it. 0 go on, -1 answered
 * with Connection: close (the gate's error, or the 404/405 of a request no route takes: its body is not read
 * either). */
static int gate_refuses(struct http_conn *c, const struct http_request *m)
{
    if (!g_gate) return 0;
    struct route_ctx rc;
    int status = route_ctx_init(&rc, m);
    bool via_get = false;
    if (status == 0) (void)route_find(m, rc.scratch, &rc.ps, &status, &via_get);
    int out = 0;
    if (status) {
        resp_reset(&c->resp, m);
        send_route_error(c, status, &rc);
        c->resp.close = true;
        resp_send(c);
        out = -1;
    } else {
        struct http_req q;
        memset(&q, 0, sizeof q);
        req_init(&q, c, m, &rc);
        struct http_resp *r = &c->resp;
        resp_reset(r, m);
        c->in_handler = true;
        bool ok = g_gate(&q, r, c->ctx);
        c->in_handler = false;
        if (!ok) {
            if (r->status < 400) http_resp_error(r, 401, 401, "authentication required");
            r->close = true; /* the body is not read */
            r->deferred = false;
            resp_send(c);
            out = -1;
        }
    }
    route_ctx_free(&rc);
    return out;
}

/* A head was parsed and a body follows: 100-continue handling. 0 go on, -1 answered + close. */
static int expect_continue(struct http_conn *c, const struct http_request *m)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (!m->expect_continue || !(m->chunked || m->content_length > 0)) return 0;
    struct route_ctx rc;
    int status = route_ctx_init(&rc, m);
    if (status == 0) {
        bool via_get;
        if (route_find(m, rc.scratch, &rc.ps, &status, &via_get)) status = 0;
    }
    if (status) {
        resp_reset(&c->resp, m);
        send_route_error(c, status, &rc);
        c->resp.close = true; /* the body was not read */
        resp_send(c);
    }
    route_ctx_free(&rc);
    if (status) return -1;
    c->write(c->io, cont, sizeof(cont) - 1);
    return 0;
}

static ssize_t conn_close(struct http_conn *c);

static int buf_append(struct http_conn *c, const uint8_t *p, size_t n, size_t limit)
{
    if (n == 0) return 0;
    size_t need = c->buf_len + n;
    AU_ASSERT(need <= limit);
    if (need > c->buf_cap) {
        /* geometric growth, never past what may still legitimately arrive */
        size_t cap = c->buf_cap ? c->buf_cap * 2 : 4096;
        if (cap < need) cap = need;
        if (cap > limit) cap = limit;
        if (!budget_take(c, cap - c->buf_cap)) return -2;
        uint8_t *nb = realloc(c->buf, cap);
        if (!nb) return -1;
        c->buf = nb;
        c->buf_cap = cap;
    }
    memcpy(c->buf + c->buf_len, p, n);
    c->buf_len = need;
    return 0;
}

static void buf_release(struct http_conn *c)
{
    budget_give(c);
    free(c->buf);
    c->buf = NULL;
    c->buf_len = c->buf_cap = c->head_len = 0;
}

/* buf_append failed: -1 no memory, -2 over the process-wide body budget. */
static ssize_t buf_fail(struct http_conn *c, int r)
{
    if (r == -2) send_error(c, 503, "server busy: too many request bodies in progress, retry later");
    else send_error(c, 503, "out of memory");
    return conn_close(c);
}

static size_t body_limit(const struct http_conn *c)
{
    return c->head_len + (c->state == HC_BODY ? (size_t)c->body_left + (c->buf_len - c->head_len)
                                               : (size_t)AU_HTTP_MAX_BODY);
}

/* Dispatch the request buffered in c->buf (head re-parsed there: pointers into c->buf). */
static int dispatch_buffered(struct http_conn *c)
{
    struct http_request m;
    int rc = http_parse_request(c->buf, c->head_len, &m);
    AU_ASSERT(rc == (int)c->head_len);
    c->state = HC_HEAD;
    int rv = dispatch(c, &m, c->buf + c->head_len, c->buf_len - c->head_len);
    buf_release(c);
    return rv;
}

void http_conn_init(struct http_conn *c, void *io, http_write_fn write)
{
    AU_ASSERT(c && write);
    memset(c, 0, sizeof(*c));
    c->io = io;
    c->write = write;
    c->state = HC_HEAD;
    c->resp.conn = c;
}

void http_conn_set_ctx(struct http_conn *c, void *ctx)
{
    c->ctx = ctx;
}

void http_conn_free(struct http_conn *c)
{
    buf_release(c);
    resp_release(&c->resp);
    c->state = HC_CLOSED;
}

bool http_conn_idle(const struct http_conn *c) { return c->state == HC_HEAD; }
bool http_conn_in_body(const struct http_conn *c) { return c->state == HC_BODY || c->state == HC_CHUNKED; }
size_t http_conn_body_received(const struct http_conn *c)
{
    return http_conn_in_body(c) ? c->buf_len - c->head_len : 0;
}

void http_conn_fail(struct http_conn *c, int status, const char *msg)
{
    if (c->state == HC_CLOSED || c->state == HC_DEFERRED || c->state == HC_UPGRADED) return;
    send_error(c, status, msg);
    conn_close(c);
}
bool http_conn_deferred(const struct http_conn *c) { return c->state == HC_DEFERRED; }
bool http_conn_upgraded(const struct http_conn *c) { return c->state == HC_UPGRADED; }

static ssize_t conn_close(struct http_conn *c)
{
    buf_release(c);
    resp_release(&c->resp);
    c->state = HC_CLOSED;
    return -1;
}

ssize_t http_conn_feed(struct http_conn *c, const uint8_t *data, size_t len)
{
    size_t off = 0;
    int rv = 0;

    if (c->state == HC_CLOSED) return -1;
    if (c->state == HC_DEFERRED || c->state == HC_UPGRADED) return 0;
    AU_ASSERT(data != NULL || len == 0);

    while (off < len && rv == 0) {
        if (c->state == HC_HEAD) {
            struct http_request m;
            int rc = http_parse_request(data + off, len - off, &m);
            if (rc == HTTP_NEED_MORE) break;
            if (rc < 0) {
                send_error(c, http_parse_status(rc), http_parse_strerror(rc));
                return conn_close(c);
            }
            size_t head = (size_t)rc;
            size_t avail = len - off - head;
            bool has_body = m.chunked || m.content_length > 0;
            if ((m.chunked || m.content_length > AU_HTTP_PREAUTH_BODY_MAX) && gate_refuses(c, &m) < 0)
                return conn_close(c);
            if (has_body && expect_continue(c, &m) < 0) return conn_close(c);
            if (!m.chunked && avail >= m.content_length) {
                /* whole request in this buffer: zero copy */
                const uint8_t *body = data + off + head;
                off += head + (size_t)m.content_length;
                rv = dispatch(c, &m, body, (size_t)m.content_length);
                continue;
            }
            /* the body spans reads: keep the head, then collect the body (what is declared must fit the
             * budget now: refused at once rather than after reading part of it) */
            AU_ASSERT(c->buf == NULL);
            if (g_budget && !m.chunked && http_body_buffered() + head + m.content_length > g_budget) {
                send_error(c, 503, "server busy: too many request bodies in progress, retry later");
                return conn_close(c);
            }
            c->head_len = head;
            if (m.chunked) {
                c->state = HC_CHUNKED;
                http_chunked_init(&c->chunk, AU_HTTP_MAX_BODY);
            } else {
                c->state = HC_BODY;
                c->body_left = m.content_length;
            }
            int br = buf_append(c, data + off, head, head + AU_HTTP_MAX_BODY);
            if (br < 0) return buf_fail(c, br);
            off += head;
        } else if (c->state == HC_BODY) {
            size_t n = len - off;
            if (n > c->body_left) n = (size_t)c->body_left;
            int br = buf_append(c, data + off, n, body_limit(c));
            if (br < 0) return buf_fail(c, br);
            off += n;
            c->body_left -= n;
            if (c->body_left == 0) {
                rv = dispatch_buffered(c);
            }
        } else {
            AU_ASSERT(c->state == HC_CHUNKED);
            size_t used;
            const uint8_t *p;
            size_t plen;
            int rc = http_chunked_decode(&c->chunk, data + off, len - off, &used, &p, &plen);
            off += used;
            if (rc < 0) {
                send_error(c, http_parse_status(rc), http_parse_strerror(rc));
                return conn_close(c);
            }
            int br = rc == HTTP_CHUNK_DATA ? buf_append(c, p, plen, body_limit(c)) : 0;
            if (br < 0) return buf_fail(c, br);
            if (rc == HTTP_CHUNK_DONE) {
                rv = dispatch_buffered(c);
            }
        }
    }
    if (rv < 0) return conn_close(c);
    if (c->state != HC_DEFERRED) resp_release(&c->resp);
    AU_ASSERT(off <= len);
    return (ssize_t)off;
}

int http_resp_finish(struct http_resp *resp)
{
    struct http_conn *c = resp->conn;
    AU_ASSERT(resp->deferred);
    resp->deferred = false;
    if (c->in_handler) return 0; /* finished before the handler returned: dispatch sends it */
    AU_ASSERT(c->state == HC_DEFERRED);
    int rv = resp_send(c);
    resp_release(resp);
    if (rv < 0) {
        conn_close(c);
        return -1;
    }
    c->state = rv == 1 ? HC_UPGRADED : HC_HEAD;
    return 0;
}

const char *http_req_header(const struct http_req *req, const char *name, size_t *len)
{
    const struct http_header *h = http_header_find(req->msg, name);
    if (!h) return NULL;
    if (len) *len = h->value_len;
    return h->value;
}
