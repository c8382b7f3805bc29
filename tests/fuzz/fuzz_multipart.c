/* fuzz_multipart.c - libFuzzer target for the multipart/form-data parser (gateway/http/multipart.h).
 *
 * Input: "<Content-Type value>\n<body>" (no '\n': the whole input is the Content-Type, body empty).
 * 1. mp_boundary on the first line: on success the boundary lies inside it, 1..MP_MAX_BOUNDARY bytes.
 * 2. mp_parse of the body with that boundary (or "b" when there is none): every span lies inside
 *    the body, parts are in order and do not overlap, the helpers stay in bounds, and the count
 *    is consistent with max_parts (n parts fit in n, not in n - 1).
 * 3. Round trip: the parts are re-serialised with a fresh boundary (raw header block, a bare-LF
 *    blank line, data) and parsed again: the same number of parts with the same bytes and names.
 * 4. Nested multipart parts are parsed too (one level).
 * Any violation aborts. */
#include "gateway/http/multipart.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(c) do { if (!(c)) { fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); abort(); } } while (0)

static bool inside(const void *p, size_t len, const void *buf, size_t size)
{
    const uint8_t *q = p, *b = buf;
    return q >= b && q + len <= b + size;
}

static struct mp_part g_parts[MP_MAX_PARTS], g_parts2[MP_MAX_PARTS], g_inner[MP_MAX_PARTS];
static uint8_t g_rt[1u << 20];

static const char RT_B[] = "RT-fuzz-boundary-7e1f";

static void check_param(const struct mp_param *v, const uint8_t *body, size_t len)
{
    if (!v->present) return;
    FZ_CHECK(inside(v->p, v->len, body, len));
    char out[64];
    ssize_t r = mp_param_value(v, out, sizeof out);
    FZ_CHECK(r == -1 || ((size_t)r < sizeof out && out[r] == 0 && (size_t)r <= v->len));
    char one[1];
    FZ_CHECK(mp_param_value(v, one, 1) == (v->len == 0 ? 0 : -1));
}

static int check_parse(const uint8_t *body, size_t len, const char *b, size_t bl, struct mp_part *parts, int depth)
{
    struct mp_body info;
    int n = mp_parse(body, len, b, bl, parts, MP_MAX_PARTS, &info);
    if (n < 0) {
        FZ_CHECK(n >= MP_ETRUNCATED && n != MP_ENOT_MULTIPART && n != MP_ENO_BOUNDARY && n != MP_EBAD_BOUNDARY);
        return n;
    }
    FZ_CHECK(n <= MP_MAX_PARTS);
    FZ_CHECK(info.preamble_len <= len && info.end <= len && info.preamble_len <= info.end);
    const uint8_t *prev_end = body + info.preamble_len;
    for (int i = 0; i < n; i++) {
        const struct mp_part *p = &parts[i];
        FZ_CHECK(inside(p->headers, p->headers_len, body, len));
        FZ_CHECK(inside(p->data, p->len, body, len));
        FZ_CHECK((const uint8_t *)p->headers >= prev_end);
        FZ_CHECK(p->data >= (const uint8_t *)p->headers + p->headers_len);
        FZ_CHECK(p->nheaders <= MP_MAX_PART_HEADERS);
        FZ_CHECK(p->headers_len <= MP_MAX_PART_HEADER_BYTES);
        prev_end = p->data + p->len;
        if (p->has_disposition) FZ_CHECK(inside(p->disposition, p->disposition_len, p->headers, p->headers_len));
        else FZ_CHECK(!p->name.present && !p->filename.present && !p->filename_star.present);
        check_param(&p->name, (const uint8_t *)p->headers, p->headers_len);
        check_param(&p->filename, (const uint8_t *)p->headers, p->headers_len);
        check_param(&p->filename_star, (const uint8_t *)p->headers, p->headers_len);
        const char *v;
        size_t vl;
        bool has_ct = mp_header_find(p, "content-type", &v, &vl);
        FZ_CHECK(has_ct == (p->content_type != NULL));
        if (has_ct) FZ_CHECK(v == p->content_type && vl == p->content_type_len);
        if (p->content_type) FZ_CHECK(inside(p->content_type, p->content_type_len, p->headers, p->headers_len));
        char fn[128];
        ssize_t r = mp_filename(p, fn, sizeof fn);
        FZ_CHECK(r < (ssize_t)sizeof fn);
        if (r >= 0) FZ_CHECK(fn[r] == 0 && (p->filename.present || p->filename_star.present));
        else FZ_CHECK(r == -1);
        (void)mp_filename(p, fn, 3);
        if (p->name.present) {
            char nm[256];
            ssize_t nl = mp_param_value(&p->name, nm, sizeof nm);
            if (nl >= 0 && strlen(nm) == (size_t)nl) { /* no NUL inside: findable as a C string */
                const struct mp_part *f = mp_find(parts, (size_t)n, nm);
                FZ_CHECK(f != NULL && f <= p);
            }
        }
        /* nested multipart */
        const char *ib;
        size_t ibl;
        if (depth == 0 && p->content_type && mp_boundary(p->content_type, p->content_type_len, &ib, &ibl) == 0)
            (void)check_parse(p->data, p->len, ib, ibl, g_inner, 1);
    }
    FZ_CHECK(prev_end <= body + info.end || n == 0);
    /* the count is consistent with max_parts */
    if (depth == 0 && n > 0) {
        static struct mp_part tmp[MP_MAX_PARTS];
        FZ_CHECK(mp_parse(body, len, b, bl, tmp, (size_t)n, NULL) == n);
        FZ_CHECK(mp_parse(body, len, b, bl, tmp, (size_t)n - 1, NULL) == MP_ETOO_MANY_PARTS);
    }
    return n;
}

static void round_trip(const struct mp_part *parts, int n)
{
    size_t k = 0, bl = sizeof RT_B - 1;
    for (int i = 0; i < n; i++) {
        const struct mp_part *p = &parts[i];
        if (memmem(p->data, p->len, RT_B, bl) || memmem(p->headers, p->headers_len, RT_B, bl)) return;
        if (k + 2 + bl + 2 + p->headers_len + 2 + p->len + 2 > sizeof g_rt - 16 - bl) return;
        memcpy(g_rt + k, "--", 2);
        memcpy(g_rt + k + 2, RT_B, bl);
        memcpy(g_rt + k + 2 + bl, "\r\n", 2);
        k += 4 + bl;
        memcpy(g_rt + k, p->headers, p->headers_len);
        k += p->headers_len;
        g_rt[k++] = '\n'; /* blank line: never longer than the original one */
        memcpy(g_rt + k, p->data, p->len);
        k += p->len;
        memcpy(g_rt + k, "\r\n", 2);
        k += 2;
    }
    memcpy(g_rt + k, "--", 2);
    memcpy(g_rt + k + 2, RT_B, bl);
    memcpy(g_rt + k + 2 + bl, "--\r\n", 4);
    k += 6 + bl;
    struct mp_body info;
    int n2 = mp_parse(g_rt, k, RT_B, bl, g_parts2, MP_MAX_PARTS, &info);
    FZ_CHECK(n2 == n && info.closed && info.preamble_len == 0 && info.end == k);
    for (int i = 0; i < n; i++) {
        FZ_CHECK(g_parts2[i].len == parts[i].len && memcmp(g_parts2[i].data, parts[i].data, parts[i].len) == 0);
        FZ_CHECK(g_parts2[i].headers_len == parts[i].headers_len);
        FZ_CHECK(g_parts2[i].name.present == parts[i].name.present && g_parts2[i].name.len == parts[i].name.len);
        if (parts[i].name.present) FZ_CHECK(memcmp(g_parts2[i].name.p, parts[i].name.p, parts[i].name.len) == 0);
        FZ_CHECK(g_parts2[i].filename.present == parts[i].filename.present);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t ctl = nl ? (size_t)(nl - data) : size;
    const uint8_t *body = nl ? nl + 1 : data + size;
    size_t blen = nl ? size - ctl - 1 : 0;
    /* copy the body so that it ends exactly at its allocation (ASan sees any over-read) */
    uint8_t *copy = malloc(blen ? blen : 1);
    memcpy(copy, body, blen);
    const char *b = "b";
    size_t bl = 1;
    const char *fb;
    size_t fbl;
    int r = mp_boundary((const char *)data, ctl, &fb, &fbl);
    if (r == 0) {
        FZ_CHECK(inside(fb, fbl, data, ctl) && fbl >= 1 && fbl <= MP_MAX_BOUNDARY);
        b = fb;
        bl = fbl;
    } else {
        FZ_CHECK(r == MP_ENOT_MULTIPART || r == MP_ENO_BOUNDARY || r == MP_EBAD_BOUNDARY);
    }
    (void)mp_strerror(r);
    int n = check_parse(copy, blen, b, bl, g_parts, 0);
    (void)mp_strerror(n);
    if (n >= 0) round_trip(g_parts, n);
    free(copy);
    return 0;
}
