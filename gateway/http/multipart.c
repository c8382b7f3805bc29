/* multipart.c - multipart/form-data parser (see multipart.h for the accepted grammar). */
#include "gateway/http/multipart.h"
#include "core/common.h"

#include <string.h>

/* ------------------------------------------------------------------ character classes */

static bool is_tchar(uint8_t c)
{
    if (c >= '0' && c <= '9') return true;
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ows(uint8_t c) { return c == ' ' || c == '\t'; }

static uint8_t lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c; }

static bool ieq(const char *a, size_t alen, const char *lit)
{
    size_t n = strlen(lit);
    if (alen != n) return false;
    for (size_t i = 0; i < n; i++)
        if (lower((uint8_t)a[i]) != (uint8_t)lit[i]) return false;
    return true;
}

static size_t skip_ows(const char *s, size_t i, size_t len)
{
    while (i < len && is_ows((uint8_t)s[i])) i++;
    return i;
}

/* ------------------------------------------------------------------ Content-Type */

/* Scan a quoted-string starting at s[i] == '"'. Sets *vs and *ve to the inside; returns the index after
 * the closing quote, or (size_t)-1 when unterminated. Escapes: \" and \\ only. */
static size_t scan_quoted(const char *s, size_t i, size_t len, size_t *vs, size_t *ve)
{
    AU_ASSERT(i < len && s[i] == '"');
    size_t j = i + 1;
    *vs = j;
    while (j < len) {
        if (s[j] == '\\' && j + 1 < len && (s[j + 1] == '"' || s[j + 1] == '\\')) {
            j += 2;
            continue;
        }
        if (s[j] == '"') {
            *ve = j;
            return j + 1;
        }
        j++;
    }
    return (size_t)-1;
}

static bool boundary_byte_ok(uint8_t c, bool quoted)
{
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') return false;
    if (!quoted && (c == ' ' || c == ';' || c == ',')) return false;
    return true;
}

int mp_boundary(const char *ct, size_t len, const char **b, size_t *blen)
{
    size_t i = skip_ows(ct, 0, len);
    size_t ts = i;
    while (i < len && is_tchar((uint8_t)ct[i])) i++;
    if (!ieq(ct + ts, i - ts, "multipart")) return MP_ENOT_MULTIPART;
    i = skip_ows(ct, i, len);
    if (i >= len || ct[i] != '/') return MP_ENOT_MULTIPART;
    i = skip_ows(ct, i + 1, len);
    size_t ss = i;
    while (i < len && is_tchar((uint8_t)ct[i])) i++;
    if (i == ss) return MP_ENOT_MULTIPART;
    /* parameters */
    for (;;) {
        i = skip_ows(ct, i, len);
        if (i >= len) return MP_ENO_BOUNDARY;
        if (ct[i] != ';') {
            /* junk between parameters: skip to the next ';' (lenient) */
            while (i < len && ct[i] != ';') i++;
            continue;
        }
        i = skip_ows(ct, i + 1, len);
        size_t ns = i;
        while (i < len && is_tchar((uint8_t)ct[i])) i++;
        size_t ne = i;
        i = skip_ows(ct, i, len);
        if (i >= len || ct[i] != '=') continue; /* parameter without a value: skipped */
        i = skip_ows(ct, i + 1, len);
        size_t vs, ve;
        bool quoted = i < len && ct[i] == '"';
        if (quoted) {
            size_t k = scan_quoted(ct, i, len, &vs, &ve);
            if (k == (size_t)-1) {
                if (ieq(ct + ns, ne - ns, "boundary")) return MP_EBAD_BOUNDARY;
                return MP_ENO_BOUNDARY; /* the rest of the value is swallowed by the quote */
            }
            i = k;
        } else {
            vs = i;
            while (i < len && ct[i] != ';' && !is_ows((uint8_t)ct[i])) i++;
            ve = i;
        }
        if (!ieq(ct + ns, ne - ns, "boundary")) continue;
        size_t n = ve - vs;
        if (n == 0 || n > MP_MAX_BOUNDARY) return MP_EBAD_BOUNDARY;
        for (size_t k = vs; k < ve; k++)
            if (!boundary_byte_ok((uint8_t)ct[k], quoted)) return MP_EBAD_BOUNDARY;
        *b = ct + vs;
        *blen = n;
        return 0;
    }
}

/* ------------------------------------------------------------------ delimiters */

enum { DELIM_NONE = 0, DELIM_OPEN, DELIM_CLOSE, DELIM_EOF };

/* Classify what follows "--boundary" at q: a part follows (OPEN, *next = after the line end), the
 * close delimiter (CLOSE, *next = after its line or end), the body ends (EOF), or not a delimiter. */
static int delim_tail(const uint8_t *q, const uint8_t *end, const uint8_t **next)
{
    if (end - q >= 2 && q[0] == '-' && q[1] == '-') {
        const uint8_t *nl = memchr(q + 2, '\n', (size_t)(end - q - 2));
        *next = nl ? nl + 1 : end;
        return DELIM_CLOSE;
    }
    while (q < end && is_ows(*q)) q++;
    if (q == end) {
        *next = end;
        return DELIM_EOF;
    }
    if (*q == '\n') {
        *next = q + 1;
        return DELIM_OPEN;
    }
    if (*q == '\r') {
        if (q + 1 == end) {
            *next = end;
            return DELIM_EOF;
        }
        if (q[1] == '\n') {
            *next = q + 2;
            return DELIM_OPEN;
        }
    }
    return DELIM_NONE;
}

/* Find the next delimiter "\n--boundary" + valid tail at or after `from`. Returns the position of
 * the '\n' (or NULL), its kind and where what follows begins. */
static const uint8_t *find_delim(const uint8_t *from, const uint8_t *end, const uint8_t *needle, size_t nlen,
                                 int *kind, const uint8_t **next)
{
    const uint8_t *p = from;
    while ((size_t)(end - p) >= nlen) {
        const uint8_t *hit = memmem(p, (size_t)(end - p), needle, nlen);
        if (!hit) return NULL;
        int k = delim_tail(hit + nlen, end, next);
        if (k != DELIM_NONE) {
            *kind = k;
            return hit;
        }
        p = hit + 1;
    }
    return NULL;
}

/* ------------------------------------------------------------------ part headers */

/* Parse a Content-Disposition value into the part. */
static int parse_disposition(struct mp_part *pt, const char *v, size_t len)
{
    size_t i = 0, ts = 0;
    while (i < len && v[i] != ';') i++;
    size_t te = i;
    while (te > ts && is_ows((uint8_t)v[te - 1])) te--;
    pt->has_disposition = true;
    pt->disposition = v;
    pt->disposition_len = te;
    while (i < len) {
        AU_ASSERT(v[i] == ';');
        i = skip_ows(v, i + 1, len);
        size_t ns = i;
        while (i < len && is_tchar((uint8_t)v[i])) i++;
        size_t ne = i;
        i = skip_ows(v, i, len);
        if (i >= len || v[i] != '=') {
            /* parameter without '=' (or junk): skipped */
            while (i < len && v[i] != ';') i++;
            continue;
        }
        i = skip_ows(v, i + 1, len);
        struct mp_param val = { .present = true };
        if (i < len && v[i] == '"') {
            size_t vs, ve;
            size_t k = scan_quoted(v, i, len, &vs, &ve);
            if (k == (size_t)-1) return MP_EDISPOSITION;
            val.p = v + vs;
            val.len = ve - vs;
            val.quoted = true;
            i = skip_ows(v, k, len);
            if (i < len && v[i] != ';') return MP_EDISPOSITION;
        } else {
            size_t vs = i;
            while (i < len && v[i] != ';') i++;
            size_t ve = i;
            while (ve > vs && is_ows((uint8_t)v[ve - 1])) ve--;
            for (size_t k = vs; k < ve; k++)
                if (v[k] == '"') return MP_EDISPOSITION; /* a quote inside a bare value */
            val.p = v + vs;
            val.len = ve - vs;
        }
        struct mp_param *dst = NULL;
        if (ieq(v + ns, ne - ns, "name")) dst = &pt->name;
        else if (ieq(v + ns, ne - ns, "filename")) dst = &pt->filename;
        else if (ieq(v + ns, ne - ns, "filename*")) dst = &pt->filename_star;
        if (dst && !dst->present) *dst = val;
    }
    return 0;
}

/* Parse the header block that starts at p. On success *hend = first byte after the blank line. */
static int parse_part_headers(struct mp_part *pt, const uint8_t *p, const uint8_t *end, const uint8_t **hend)
{
    const uint8_t *start = p;
    const uint8_t *limit = (size_t)(end - p) > MP_MAX_PART_HEADER_BYTES ? p + MP_MAX_PART_HEADER_BYTES : end;
    pt->headers = (const char *)p;
    for (;;) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(limit - p));
        if (!nl) return limit < end ? MP_EHEADERS_TOO_LARGE : MP_ETRUNCATED;
        const uint8_t *le = (nl > p && nl[-1] == '\r') ? nl - 1 : nl;
        if (le == p) { /* blank line */
            pt->headers_len = (size_t)(p - start);
            *hend = nl + 1;
            return 0;
        }
        if (is_ows(*p)) return MP_EHEADER; /* obsolete line folding */
        if (pt->nheaders == MP_MAX_PART_HEADERS) return MP_ETOO_MANY_HEADERS;
        const uint8_t *c = p;
        while (c < le && is_tchar(*c)) c++;
        if (c == p || c == le || *c != ':') return MP_EHEADER;
        for (const uint8_t *k = c + 1; k < le; k++)
            if ((*k < 0x20 && *k != '\t') || *k == 0x7f) return MP_EHEADER; /* incl. a bare CR */
        const uint8_t *vs = c + 1, *ve = le;
        while (vs < ve && is_ows(*vs)) vs++;
        while (ve > vs && is_ows(ve[-1])) ve--;
        const char *name = (const char *)p;
        size_t nlen = (size_t)(c - p);
        pt->nheaders++;
        if (ieq(name, nlen, "content-disposition")) {
            if (!pt->has_disposition) {
                int r = parse_disposition(pt, (const char *)vs, (size_t)(ve - vs));
                if (r < 0) return r;
            }
        } else if (ieq(name, nlen, "content-type")) {
            if (!pt->content_type) {
                pt->content_type = (const char *)vs;
                pt->content_type_len = (size_t)(ve - vs);
            }
        }
        p = nl + 1;
    }
}

/* ------------------------------------------------------------------ body */

int mp_parse(const uint8_t *body, size_t len, const char *b, size_t blen, struct mp_part *parts,
             size_t max_parts, struct mp_body *info)
{
    AU_ASSERT(blen >= 1 && blen <= MP_MAX_BOUNDARY);
    AU_ASSERT(body != NULL || len == 0);
    if (max_parts > MP_MAX_PARTS) max_parts = MP_MAX_PARTS;
    uint8_t needle[3 + MP_MAX_BOUNDARY];
    needle[0] = '\n';
    needle[1] = needle[2] = '-';
    memcpy(needle + 3, b, blen);
    size_t nlen = 3 + blen;
    const uint8_t *end = body + len;

    /* first delimiter: at the very start, or after a line feed */
    const uint8_t *delim, *next = NULL;
    int kind = DELIM_NONE;
    if (len >= nlen - 1 && memcmp(body, needle + 1, nlen - 1) == 0)
        kind = delim_tail(body + nlen - 1, end, &next);
    if (kind != DELIM_NONE) {
        delim = body;
    } else {
        delim = find_delim(body, end, needle, nlen, &kind, &next);
        if (!delim) return MP_ENO_DELIMITER;
        if (delim > body && delim[-1] == '\r') delim--;
    }
    size_t preamble = (size_t)(delim - body);

    size_t n = 0;
    for (;;) {
        if (kind == DELIM_CLOSE) break;
        if (kind == DELIM_EOF || next == end) break; /* no close delimiter: tolerated */
        if (n == max_parts) return MP_ETOO_MANY_PARTS;
        struct mp_part *pt = &parts[n];
        memset(pt, 0, sizeof *pt);
        const uint8_t *data;
        int r = parse_part_headers(pt, next, end, &data);
        if (r < 0) return r;
        /* the blank line's LF may double as the delimiter's LF (empty data) */
        const uint8_t *d = find_delim(data - 1, end, needle, nlen, &kind, &next);
        if (!d) return MP_ETRUNCATED;
        const uint8_t *dend = d;
        if (dend > data && dend[-1] == '\r') dend--;
        if (dend < data) dend = data;
        pt->data = data;
        pt->len = (size_t)(dend - data);
        n++;
    }
    if (info) {
        info->preamble_len = preamble;
        info->end = (size_t)(next - body);
        info->closed = kind == DELIM_CLOSE;
    }
    return (int)n;
}

const char *mp_strerror(int rc)
{
    switch (rc) {
    case MP_ENOT_MULTIPART: return "not a multipart content type";
    case MP_ENO_BOUNDARY: return "no boundary parameter";
    case MP_EBAD_BOUNDARY: return "bad boundary";
    case MP_ENO_DELIMITER: return "no multipart delimiter in body";
    case MP_ETOO_MANY_PARTS: return "too many parts";
    case MP_EHEADER: return "bad part header";
    case MP_ETOO_MANY_HEADERS: return "too many part headers";
    case MP_EHEADERS_TOO_LARGE: return "part headers too large";
    case MP_EDISPOSITION: return "bad Content-Disposition";
    case MP_ETRUNCATED: return "multipart body truncated";
    default: return rc >= 0 ? "ok" : "unknown error";
    }
}

/* ------------------------------------------------------------------ helpers */

ssize_t mp_param_value(const struct mp_param *v, char *out, size_t cap)
{
    if (!v->present || cap == 0) return -1;
    size_t o = 0;
    for (size_t i = 0; i < v->len; i++) {
        char c = v->p[i];
        if (v->quoted && c == '\\' && i + 1 < v->len && (v->p[i + 1] == '"' || v->p[i + 1] == '\\')) c = v->p[++i];
        if (o + 1 >= cap) return -1;
        out[o++] = c;
    }
    out[o] = 0;
    return (ssize_t)o;
}

static bool param_eq(const struct mp_param *v, const char *s)
{
    if (!v->present) return false;
    size_t o = 0, n = strlen(s);
    for (size_t i = 0; i < v->len; i++) {
        char c = v->p[i];
        if (v->quoted && c == '\\' && i + 1 < v->len && (v->p[i + 1] == '"' || v->p[i + 1] == '\\')) c = v->p[++i];
        if (o >= n || s[o] != c) return false;
        o++;
    }
    return o == n;
}

const struct mp_part *mp_find(const struct mp_part *parts, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (param_eq(&parts[i].name, name)) return &parts[i];
    return NULL;
}

bool mp_header_find(const struct mp_part *p, const char *name, const char **val, size_t *vlen)
{
    const char *s = p->headers, *end = p->headers + p->headers_len;
    size_t nl = strlen(name);
    while (s < end) {
        const char *e = memchr(s, '\n', (size_t)(end - s));
        if (!e) e = end;
        const char *le = (e > s && e[-1] == '\r') ? e - 1 : e;
        const char *c = memchr(s, ':', (size_t)(le - s));
        if (c && (size_t)(c - s) == nl) {
            bool same = true;
            for (size_t i = 0; i < nl && same; i++) same = lower((uint8_t)s[i]) == lower((uint8_t)name[i]);
            if (same) {
                const char *vs = c + 1, *ve = le;
                while (vs < ve && is_ows((uint8_t)*vs)) vs++;
                while (ve > vs && is_ows((uint8_t)ve[-1])) ve--;
                *val = vs;
                *vlen = (size_t)(ve - vs);
                return true;
            }
        }
        s = e + 1;
    }
    return false;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = lower(c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Is s[0..n) well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF)? */
static bool utf8_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xc2 && c <= 0xdf) { k = 1; cp = c & 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { k = 2; cp = c & 0x0f; }
        else if (c >= 0xf0 && c <= 0xf4) { k = 3; cp = c & 0x07; }
        else return false;
        if (n - i <= k) return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

/* RFC 8187 ext-value: charset "'" [language] "'" pct-encoded value. */
static ssize_t decode_ext_value(const struct mp_param *v, char *out, size_t cap)
{
    const char *s = v->p;
    size_t len = v->len;
    const char *q1 = memchr(s, '\'', len);
    if (!q1) return -2;
    const char *q2 = memchr(q1 + 1, '\'', len - (size_t)(q1 + 1 - s));
    if (!q2) return -2;
    bool latin1;
    if (ieq(s, (size_t)(q1 - s), "utf-8")) latin1 = false;
    else if (ieq(s, (size_t)(q1 - s), "iso-8859-1")) latin1 = true;
    else return -2;
    size_t o = 0;
    for (const char *p = q2 + 1; p < s + len; p++) {
        uint8_t c = (uint8_t)*p;
        if (c == '%') {
            if (s + len - p < 3) return -2;
            int h = hexval((uint8_t)p[1]), l = hexval((uint8_t)p[2]);
            if (h < 0 || l < 0) return -2;
            c = (uint8_t)(h << 4 | l);
            p += 2;
        } else if (c <= 0x20 || c >= 0x7f) {
            return -2; /* attr-char or pct-encoded only */
        }
        if (latin1 && c >= 0x80) {
            if (o + 2 >= cap) return -1;
            out[o++] = (char)(0xc0 | (c >> 6));
            out[o++] = (char)(0x80 | (c & 0x3f));
            continue;
        }
        if (o + 1 >= cap) return -1;
        out[o++] = (char)c;
    }
    if (!latin1 && !utf8_ok((const uint8_t *)out, o)) return -2;
    out[o] = 0;
    return (ssize_t)o;
}

ssize_t mp_filename(const struct mp_part *p, char *out, size_t cap)
{
    if (cap == 0) return -1;
    if (p->filename_star.present) {
        ssize_t r = decode_ext_value(&p->filename_star, out, cap);
        if (r >= 0) return r;
        if (r == -1 && !p->filename.present) return -1;
    }
    return mp_param_value(&p->filename, out, cap);
}
