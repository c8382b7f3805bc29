/* http_parse.c - HTTP/1.1 request parser, chunked decoder and helpers (see http_parse.h). */
#include "gateway/http/http_parse.h"

#include <string.h>
#include <strings.h>

/* ---- character classes ---- */

static inline bool is_tchar(uint8_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
        return true;
    default:
        return false;
    }
}

/* field-vchar / SP / HT / obs-text: everything but CTLs (except HT) and DEL */
static inline bool is_value_char(uint8_t c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }
/* request-target bytes: VCHAR and obs-text (lenient for raw UTF-8), no SP, CTL or DEL */
static inline bool is_target_char(uint8_t c) { return c > 0x20 && c != 0x7f; }
static inline bool is_ows(uint8_t c) { return c == ' ' || c == '\t'; }

static inline int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool eq_ci(const char *a, size_t alen, const char *lit)
{
    size_t n = strlen(lit);
    return alen == n && strncasecmp(a, lit, n) == 0;
}

/* ---- request line and headers ---- */

static enum http_method method_id(const char *m, size_t n)
{
    switch (n) {
    case 3:
        if (memcmp(m, "GET", 3) == 0) return HTTP_M_GET;
        if (memcmp(m, "PUT", 3) == 0) return HTTP_M_PUT;
        break;
    case 4:
        if (memcmp(m, "POST", 4) == 0) return HTTP_M_POST;
        if (memcmp(m, "HEAD", 4) == 0) return HTTP_M_HEAD;
        break;
    case 5:
        if (memcmp(m, "PATCH", 5) == 0) return HTTP_M_PATCH;
        break;
    case 6:
        if (memcmp(m, "DELETE", 6) == 0) return HTTP_M_DELETE;
        break;
    case 7:
        if (memcmp(m, "OPTIONS", 7) == 0) return HTTP_M_OPTIONS;
        break;
    default:
        break;
    }
    return HTTP_M_OTHER;
}

/* Split r->target into path / query; accepts origin-form, absolute-form and "*". */
static int split_target(struct http_request *r)
{
    const char *t = r->target;
    size_t len = r->target_len;
    const char *p;
    size_t plen;

    if (t[0] == '/') {
        p = t;
        plen = len;
    } else if (len == 1 && t[0] == '*') {
        p = t;
        plen = 1;
    } else {
        size_t k;
        if (len >= 7 && strncasecmp(t, "http://", 7) == 0)
            k = 7;
        else if (len >= 8 && strncasecmp(t, "https://", 8) == 0)
            k = 8;
        else
            return HTTP_ETARGET;
        size_t auth = k;
        while (k < len && t[k] != '/' && t[k] != '?' && t[k] != '#')
            k++;
        if (k == auth)
            return HTTP_ETARGET;
        p = t + k;
        plen = len - k;
    }
    const char *hash = plen ? memchr(p, '#', plen) : NULL;
    if (hash)
        plen = (size_t)(hash - p);
    const char *q = plen ? memchr(p, '?', plen) : NULL;
    if (q) {
        r->query = q + 1;
        r->query_len = (size_t)(p + plen - (q + 1));
        plen = (size_t)(q - p);
    } else {
        r->query = NULL;
        r->query_len = 0;
    }
    if (plen == 0) {
        p = "/";
        plen = 1;
    }
    r->path = p;
    r->path_len = plen;
    return 0;
}

/* Parse at most n bytes. Returns consumed (>0), 0 need more, <0 error. *line_done is set once
 * the request line is complete. */
static int parse_head(const uint8_t *b, size_t n, struct http_request *r, bool *line_done)
{
    size_t i = 0, s;

    /* RFC 9112 2.2: ignore empty lines before the request line */
    for (;;) {
        if (i >= n) return HTTP_NEED_MORE;
        if (b[i] == '\n') { i++; continue; }
        if (b[i] == '\r') {
            if (i + 1 >= n) return HTTP_NEED_MORE;
            if (b[i + 1] != '\n') return HTTP_EMETHOD;
            i += 2;
            continue;
        }
        break;
    }

    /* method SP */
    s = i;
    while (i < n && is_tchar(b[i])) i++;
    if (i >= n) return HTTP_NEED_MORE;
    if (b[i] != ' ' || i == s) return HTTP_EMETHOD;
    r->method = (const char *)b + s;
    r->method_len = i - s;
    r->method_id = method_id(r->method, r->method_len);
    i++;

    /* request-target SP */
    s = i;
    while (i < n && is_target_char(b[i])) i++;
    if (i >= n) return HTTP_NEED_MORE;
    if (b[i] != ' ') {
        if (i > s && (b[i] == '\r' || b[i] == '\n'))
            return HTTP_EVERSION; /* "GET /" with no version (HTTP/0.9) */
        return HTTP_ETARGET;
    }
    if (i == s) return HTTP_ETARGET;
    r->target = (const char *)b + s;
    r->target_len = i - s;
    int rc = split_target(r);
    if (rc < 0) return rc;
    i++;

    /* "HTTP/" DIGIT "." DIGIT CRLF */
    static const char vpre[] = "HTTP/";
    for (size_t k = 0; k < 8; k++) {
        if (i + k >= n) return HTTP_NEED_MORE;
        uint8_t c = b[i + k];
        bool ok = k < 5 ? c == (uint8_t)vpre[k] : k == 6 ? c == '.' : (c >= '0' && c <= '9');
        if (!ok) return HTTP_EVERSION;
    }
    int major = b[i + 5] - '0';
    r->minor_version = b[i + 7] - '0';
    i += 8;
    if (i >= n) return HTTP_NEED_MORE;
    if (b[i] == '\r') {
        if (i + 1 >= n) return HTTP_NEED_MORE;
        if (b[i + 1] != '\n') return HTTP_EVERSION;
        i += 2;
    } else if (b[i] == '\n') {
        i++;
    } else {
        return HTTP_EVERSION;
    }
    if (major != 1) return HTTP_EVERSION_UNSUPPORTED;
    *line_done = true;

    /* header fields, then the blank line */
    r->num_headers = 0;
    for (;;) {
        if (i >= n) return HTTP_NEED_MORE;
        uint8_t c = b[i];
        if (c == '\r') {
            if (i + 1 >= n) return HTTP_NEED_MORE;
            if (b[i + 1] != '\n') return HTTP_EHEADER;
            return (int)(i + 2);
        }
        if (c == '\n') return (int)(i + 1);
        if (c == ' ' || c == '\t') return HTTP_EHEADER; /* obs-fold, or whitespace before a name */
        if (r->num_headers == AU_HTTP_MAX_HEADERS) return HTTP_ETOO_MANY_HEADERS;

        s = i;
        while (i < n && is_tchar(b[i])) i++;
        if (i >= n) return HTTP_NEED_MORE;
        if (b[i] != ':' || i == s) return HTTP_EHEADER;
        struct http_header *h = &r->headers[r->num_headers];
        h->name = (const char *)b + s;
        h->name_len = i - s;
        i++;
        while (i < n && is_ows(b[i])) i++;
        s = i;
        while (i < n && is_value_char(b[i])) i++;
        if (i >= n) return HTTP_NEED_MORE;
        size_t e = i;
        if (b[i] == '\r') {
            if (i + 1 >= n) return HTTP_NEED_MORE;
            if (b[i + 1] != '\n') return HTTP_EHEADER;
            i += 2;
        } else if (b[i] == '\n') {
            i++;
        } else {
            return HTTP_EHEADER;
        }
        while (e > s && is_ows(b[e - 1])) e--;
        h->value = (const char *)b + s;
        h->value_len = e - s;
        r->num_headers++;
    }
}

/* Calls fn(el, el_len, arg) for each non-empty element of a comma list (OWS trimmed);
 * stops and returns fn's value when it is non-zero. */
static int list_each(const char *v, size_t len, int (*fn)(const char *, size_t, void *), void *arg)
{
    size_t i = 0;
    while (i < len) {
        size_t s = i;
        while (i < len && v[i] != ',') i++;
        size_t e = i;
        while (s < e && is_ows((uint8_t)v[s])) s++;
        while (e > s && is_ows((uint8_t)v[e - 1])) e--;
        if (e > s) {
            int rc = fn(v + s, e - s, arg);
            if (rc) return rc;
        }
        i++; /* skip ',' */
    }
    return 0;
}

struct cl_state { uint64_t value; bool seen; };

static int cl_element(const char *el, size_t len, void *arg)
{
    struct cl_state *st = arg;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (el[i] < '0' || el[i] > '9') return HTTP_ECONTENT_LENGTH;
        if (v <= AU_HTTP_MAX_BODY) /* saturate: anything above the limit is 413 anyway */
            v = v * 10 + (uint64_t)(el[i] - '0');
    }
    if (st->seen && st->value != v) return HTTP_ECONTENT_LENGTH;
    st->value = v;
    st->seen = true;
    return 0;
}

struct te_state { int chunked; int other; };

static int te_element(const char *el, size_t len, void *arg)
{
    struct te_state *st = arg;
    if (eq_ci(el, len, "chunked")) st->chunked++;
    else st->other++;
    return 0;
}

struct conn_state { bool close, keep_alive, upgrade; };

static int conn_element(const char *el, size_t len, void *arg)
{
    struct conn_state *st = arg;
    if (eq_ci(el, len, "close")) st->close = true;
    else if (eq_ci(el, len, "keep-alive")) st->keep_alive = true;
    else if (eq_ci(el, len, "upgrade")) st->upgrade = true;
    return 0;
}

static int derive(struct http_request *r)
{
    struct cl_state cl = { 0, false };
    struct te_state te = { 0, 0 };
    struct conn_state cs = { false, false, false };
    bool has_te = false, has_upgrade = false, expect = false;

    for (size_t k = 0; k < r->num_headers; k++) {
        const struct http_header *h = &r->headers[k];
        switch (h->name_len) {
        case 14:
            if (eq_ci(h->name, 14, "content-length")) {
                if (h->value_len == 0) return HTTP_ECONTENT_LENGTH;
                /* a list of elements is allowed only if all agree; an empty element is not */
                if (h->value[0] == ',' || h->value[h->value_len - 1] == ',') return HTTP_ECONTENT_LENGTH;
                int rc = list_each(h->value, h->value_len, cl_element, &cl);
                if (rc) return rc;
            }
            break;
        case 17:
            if (eq_ci(h->name, 17, "transfer-encoding")) {
                has_te = true;
                list_each(h->value, h->value_len, te_element, &te);
            }
            break;
        case 10:
            if (eq_ci(h->name, 10, "connection"))
                list_each(h->value, h->value_len, conn_element, &cs);
            break;
        case 6:
            if (eq_ci(h->name, 6, "expect") && eq_ci(h->value, h->value_len, "100-continue"))
                expect = true;
            break;
        case 7:
            if (eq_ci(h->name, 7, "upgrade") && h->value_len > 0)
                has_upgrade = true;
            break;
        default:
            break;
        }
    }

    r->has_content_length = cl.seen;
    r->content_length = cl.value;
    r->chunked = false;
    if (has_te) {
        if (cl.seen || r->minor_version == 0) return HTTP_EFRAMING;
        if (te.chunked != 1 || te.other != 0) return HTTP_ETRANSFER_CODING;
        r->chunked = true;
    }
    if (cl.seen && cl.value > AU_HTTP_MAX_BODY) return HTTP_EBODY_TOO_LARGE;
    r->keep_alive = r->minor_version >= 1 ? !cs.close : (cs.keep_alive && !cs.close);
    r->expect_continue = expect && r->minor_version >= 1;
    r->upgrade = cs.upgrade && has_upgrade;
    return 0;
}

int http_parse_request(const uint8_t *buf, size_t len, struct http_request *req)
{
    AU_ASSERT(req != NULL);
    AU_ASSERT(buf != NULL || len == 0);
    const size_t n = len < AU_HTTP_MAX_HEADER_BYTES ? len : AU_HTTP_MAX_HEADER_BYTES;
    bool line_done = false;

    req->num_headers = 0;
    int rc = parse_head(buf, n, req, &line_done);
    if (rc == HTTP_NEED_MORE && n == AU_HTTP_MAX_HEADER_BYTES)
        return line_done ? HTTP_EHEADERS_TOO_LARGE : HTTP_EURI_TOO_LONG;
    if (rc <= 0) return rc;
    int drc = derive(req);
    if (drc < 0) return drc;
    AU_ASSERT((size_t)rc <= n);
    return rc;
}

int http_parse_status(int rc)
{
    switch (rc) {
    case HTTP_EVERSION_UNSUPPORTED: return 505;
    case HTTP_ETOO_MANY_HEADERS:
    case HTTP_EHEADERS_TOO_LARGE:   return 431;
    case HTTP_EURI_TOO_LONG:        return 414;
    case HTTP_EBODY_TOO_LARGE:      return 413;
    case HTTP_ETRANSFER_CODING:     return 501;
    default:                        return rc < 0 ? 400 : 0;
    }
}

const char *http_parse_strerror(int rc)
{
    switch (rc) {
    case HTTP_NEED_MORE:            return "need more";
    case HTTP_EMETHOD:              return "bad method";
    case HTTP_ETARGET:              return "bad request target";
    case HTTP_EVERSION:             return "bad request line";
    case HTTP_EVERSION_UNSUPPORTED: return "http version not supported";
    case HTTP_EHEADER:              return "bad header";
    case HTTP_ETOO_MANY_HEADERS:    return "too many headers";
    case HTTP_EHEADERS_TOO_LARGE:   return "headers too large";
    case HTTP_EURI_TOO_LONG:        return "uri too long";
    case HTTP_ECONTENT_LENGTH:      return "bad content-length";
    case HTTP_EBODY_TOO_LARGE:      return "payload too large";
    case HTTP_ETRANSFER_CODING:     return "transfer-encoding not implemented";
    case HTTP_EFRAMING:             return "bad message framing";
    case HTTP_ECHUNK:               return "bad chunked encoding";
    default:                        return rc > 0 ? "ok" : "unknown error";
    }
}

const struct http_header *http_header_find(const struct http_request *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t k = 0; k < req->num_headers; k++) {
        const struct http_header *h = &req->headers[k];
        if (h->name_len == n && strncasecmp(h->name, name, n) == 0)
            return h;
    }
    return NULL;
}

static int token_match(const char *el, size_t len, void *arg)
{
    return eq_ci(el, len, (const char *)arg) ? 1 : 0;
}

bool http_list_has_token(const char *value, size_t len, const char *token)
{
    return list_each(value, len, token_match, (void *)(uintptr_t)token) == 1;
}

/* ---- chunked decoder ---- */

enum {
    CH_SIZE0,    /* first hex digit of a chunk size */
    CH_SIZE,     /* more hex digits, or the end of the size */
    CH_EXT,      /* whitespace / chunk extensions up to the line end */
    CH_SIZE_LF,  /* CR seen on the size line */
    CH_DATA,
    CH_DATA_END, /* CRLF (or LF) after chunk data */
    CH_DATA_LF,
    CH_TR_START, /* start of a trailer line, or the final blank line */
    CH_TR_NAME,
    CH_TR_VALUE,
    CH_TR_LF,
    CH_END_LF,   /* CR of the final blank line seen */
    CH_DONE,
};

void http_chunked_init(struct http_chunked *d, uint64_t max_body)
{
    memset(d, 0, sizeof(*d));
    d->max_body = max_body;
    d->state = CH_SIZE0;
}

int http_chunked_decode(struct http_chunked *d, const uint8_t *buf, size_t len, size_t *consumed,
                        const uint8_t **data, size_t *data_len)
{
    size_t i = 0;
    int rc = HTTP_NEED_MORE;

    *data = NULL;
    *data_len = 0;
    if (d->state == CH_DONE) {
        *consumed = 0;
        return HTTP_CHUNK_DONE;
    }
    while (i < len) {
        uint8_t c = buf[i];
        if (d->state >= CH_TR_START && ++d->trailer_bytes > AU_HTTP_MAX_HEADER_BYTES) {
            rc = HTTP_EHEADERS_TOO_LARGE;
            goto out;
        }
        switch (d->state) {
        case CH_SIZE0: {
            int h = hexval(c);
            if (h < 0) { rc = HTTP_ECHUNK; goto out; }
            d->remaining = (uint64_t)h;
            d->line_bytes = 1;
            d->state = CH_SIZE;
            i++;
            break;
        }
        case CH_SIZE: {
            int h = hexval(c);
            if (++d->line_bytes > AU_HTTP_MAX_HEADER_BYTES) { rc = HTTP_ECHUNK; goto out; }
            if (h >= 0) {
                /* remaining <= max_body - total here, so this cannot overflow */
                d->remaining = d->remaining * 16 + (uint64_t)h;
                if (d->remaining > d->max_body - d->total) { rc = HTTP_EBODY_TOO_LARGE; goto out; }
                i++;
                break;
            }
            if (c == ';' || is_ows(c)) {
                d->state = CH_EXT;
                i++;
                break;
            }
            if (c == '\r') {
                d->state = CH_SIZE_LF;
                i++;
                break;
            }
            if (c == '\n') {
                i++;
                d->state = d->remaining ? CH_DATA : CH_TR_START;
                break;
            }
            rc = HTTP_ECHUNK;
            goto out;
        }
        case CH_EXT:
            if (++d->line_bytes > AU_HTTP_MAX_HEADER_BYTES) { rc = HTTP_ECHUNK; goto out; }
            if (c == '\r') {
                d->state = CH_SIZE_LF;
            } else if (c == '\n') {
                d->state = d->remaining ? CH_DATA : CH_TR_START;
            } else if (!is_value_char(c)) {
                rc = HTTP_ECHUNK;
                goto out;
            }
            i++;
            break;
        case CH_SIZE_LF:
            if (c != '\n') { rc = HTTP_ECHUNK; goto out; }
            d->state = d->remaining ? CH_DATA : CH_TR_START;
            i++;
            break;
        case CH_DATA: {
            AU_ASSERT(d->remaining > 0);
            size_t span = len - i;
            if (span > d->remaining) span = (size_t)d->remaining;
            *data = buf + i;
            *data_len = span;
            i += span;
            d->remaining -= span;
            d->total += span;
            if (d->remaining == 0) d->state = CH_DATA_END;
            rc = HTTP_CHUNK_DATA;
            goto out;
        }
        case CH_DATA_END:
            if (c == '\r') d->state = CH_DATA_LF;
            else if (c == '\n') d->state = CH_SIZE0;
            else { rc = HTTP_ECHUNK; goto out; }
            i++;
            break;
        case CH_DATA_LF:
            if (c != '\n') { rc = HTTP_ECHUNK; goto out; }
            d->state = CH_SIZE0;
            i++;
            break;
        case CH_TR_START:
            if (c == '\r') {
                d->state = CH_END_LF;
            } else if (c == '\n') {
                d->state = CH_DONE;
                i++;
                rc = HTTP_CHUNK_DONE;
                goto out;
            } else if (is_tchar(c)) {
                if (++d->trailers > AU_HTTP_MAX_HEADERS) { rc = HTTP_ETOO_MANY_HEADERS; goto out; }
                d->state = CH_TR_NAME;
            } else {
                rc = HTTP_ECHUNK;
                goto out;
            }
            i++;
            break;
        case CH_TR_NAME:
            if (c == ':') d->state = CH_TR_VALUE;
            else if (!is_tchar(c)) { rc = HTTP_ECHUNK; goto out; }
            i++;
            break;
        case CH_TR_VALUE:
            if (c == '\r') d->state = CH_TR_LF;
            else if (c == '\n') d->state = CH_TR_START;
            else if (!is_value_char(c)) { rc = HTTP_ECHUNK; goto out; }
            i++;
            break;
        case CH_TR_LF:
            if (c != '\n') { rc = HTTP_ECHUNK; goto out; }
            d->state = CH_TR_START;
            i++;
            break;
        case CH_END_LF:
            if (c != '\n') { rc = HTTP_ECHUNK; goto out; }
            d->state = CH_DONE;
            i++;
            rc = HTTP_CHUNK_DONE;
            goto out;
        default:
            AU_ASSERT(!"bad chunked decoder state");
        }
    }
out:
    AU_ASSERT(i <= len);
    AU_ASSERT(d->total <= d->max_body);
    *consumed = i;
    return rc;
}

/* ---- helpers ---- */

ssize_t http_url_decode(const char *in, size_t len, char *out, size_t cap, bool plus_as_space)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)in[i];
        if (c == '%') {
            if (i + 2 >= len) return -1;
            int h = hexval((uint8_t)in[i + 1]), l = hexval((uint8_t)in[i + 2]);
            if (h < 0 || l < 0) return -1;
            c = (uint8_t)(h * 16 + l);
            i += 2;
        } else if (c == '+' && plus_as_space) {
            c = ' ';
        }
        if (o >= cap) return -1;
        out[o++] = (char)c;
    }
    return (ssize_t)o;
}

/* Does the raw (encoded) key equal name once decoded? */
static bool key_equals(const char *k, size_t klen, const char *name, size_t nlen)
{
    size_t j = 0;
    for (size_t i = 0; i < klen; i++) {
        uint8_t c = (uint8_t)k[i];
        if (c == '%') {
            if (i + 2 >= klen) return false;
            int h = hexval((uint8_t)k[i + 1]), l = hexval((uint8_t)k[i + 2]);
            if (h < 0 || l < 0) return false;
            c = (uint8_t)(h * 16 + l);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (j >= nlen || (uint8_t)name[j] != c) return false;
        j++;
    }
    return j == nlen;
}

bool http_query_find(const char *query, size_t len, const char *name, const char **val, size_t *val_len)
{
    if (query == NULL || len == 0) return false;
    size_t nlen = strlen(name);
    size_t i = 0;
    for (;;) {
        const char *p = query + i;
        size_t rest = len - i;
        const char *amp = memchr(p, '&', rest);
        size_t plen = amp ? (size_t)(amp - p) : rest;
        const char *eq = plen ? memchr(p, '=', plen) : NULL;
        size_t klen = eq ? (size_t)(eq - p) : plen;
        if (plen > 0 && key_equals(p, klen, name, nlen)) {
            *val = eq ? eq + 1 : p + plen;
            *val_len = eq ? plen - klen - 1 : 0;
            return true;
        }
        if (!amp) return false;
        i += plen + 1;
    }
}

ssize_t http_query_get(const char *query, size_t len, const char *name, char *out, size_t cap)
{
    const char *v;
    size_t vlen;
    if (!http_query_find(query, len, name, &v, &vlen)) return -1;
    if (cap == 0) return -2;
    ssize_t n = http_url_decode(v, vlen, out, cap - 1, true);
    if (n < 0) return -2;
    out[n] = '\0';
    return n;
}

ssize_t http_path_normalize(const char *in, size_t len, char *out, size_t cap)
{
    if (len == 0) {
        if (cap < 2) return -1;
        out[0] = '/';
        out[1] = '\0';
        return 1;
    }
    if (in[0] != '/' || cap < len + 1) return -1;
    size_t o = 0, i = 0; /* out[0..o) is "/seg/seg" without a trailing '/'; o == 0 is the root */
    while (i < len) {
        while (i < len && in[i] == '/') i++;
        size_t s = i;
        while (i < len && in[i] != '/') i++;
        size_t sl = i - s;
        if (sl == 0) break;
        if (sl == 1 && in[s] == '.') continue;
        if (sl == 2 && in[s] == '.' && in[s + 1] == '.') {
            while (o > 0 && out[o - 1] != '/') o--;
            if (o > 0) o--;
            continue;
        }
        out[o++] = '/';
        memmove(out + o, in + s, sl);
        o += sl;
    }
    if (o == 0) out[o++] = '/';
    AU_ASSERT(o <= len);
    out[o] = '\0';
    return (ssize_t)o;
}

static int b64val(uint8_t c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

ssize_t http_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
    size_t n = len, pad = 0;
    while (n > 0 && in[n - 1] == '=' && pad < 2) {
        n--;
        pad++;
    }
    if (pad && len % 4 != 0) return -1;
    if (n % 4 == 1) return -1;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val((uint8_t)in[i]);
        if (v < 0) return -1;
        acc = ((acc << 6) | (uint32_t)v) & 0xffffffu;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap) return -1;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return (ssize_t)o;
}

int http_basic_auth_decode(const char *value, size_t len, char *user, size_t user_cap,
                           char *pass, size_t pass_cap)
{
    size_t i = 0;
    while (i < len && is_ows((uint8_t)value[i])) i++;
    if (len - i < 6 || strncasecmp(value + i, "basic", 5) != 0 || value[i + 5] != ' ') return -1;
    i += 6;
    while (i < len && value[i] == ' ') i++;
    size_t e = len;
    while (e > i && is_ows((uint8_t)value[e - 1])) e--;

    uint8_t dec[768];
    if (e - i > (sizeof(dec) / 3) * 4) return -1;
    ssize_t n = http_base64_decode(value + i, e - i, dec, sizeof(dec));
    if (n < 0) return -1;
    const uint8_t *colon = memchr(dec, ':', (size_t)n);
    if (!colon || memchr(dec, '\0', (size_t)n)) return -1;
    size_t ulen = (size_t)(colon - dec), plen = (size_t)n - ulen - 1;
    if (ulen >= user_cap || plen >= pass_cap) return -1;
    memcpy(user, dec, ulen);
    user[ulen] = '\0';
    memcpy(pass, colon + 1, plen);
    pass[plen] = '\0';
    return 0;
}
