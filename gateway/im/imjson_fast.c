/* imjson_fast.c - im/send's common case without jansson: one pass over the bytes that validates a text
 * message and writes its stored form (im_msg_parse_canon's output) at the same time.
 *
 * It is only ever a shortcut: it accepts a message only when the general path (jansson load, parse_msg,
 * canonical dump) would accept it AND it can produce the very same bytes; for anything else (any error,
 * any construct whose jansson round trip changes the bytes: \u escapes, reals, "-0", integers of 19+
 * digits, escaped keys, other msg_types, a notification object, deep nesting) it answers "not handled"
 * and the caller runs the general path, which gives the verdict and the error. tests/unit/test_im_canon.c
 * checks the two against each other on seeds and random mutations.
 *
 * What jansson's compact dump does and this file reproduces: no whitespace between tokens; strings
 * written with `\"` `\\` `\b` `\f` `\n` `\r` `\t` escaped, other bytes < 0x20 as \u00XX (never reached: a raw
 * control byte is invalid input and `\u` is not handled here), `/` and UTF-8 written raw (so an input
 * `\/` becomes `/`); integers as %lld; true/false/null as such. */
#include <string.h>

#include "core/common.h"
#include "gateway/im/imjson_internal.h"

#define FAST_MAX_DEPTH 8u   /* deeper inputs take the general path (AU_IM_JSON_MAX_DEPTH is the limit there) */
#define FAST_MAX_KEYS  32u  /* keys per object checked for duplicates here; more: the general path */
_Static_assert(FAST_MAX_DEPTH <= AU_IM_JSON_MAX_DEPTH, "the shortcut must not accept what the pre-scan refuses");

struct fw {                 /* the writer: out[0..cap), overflow = not handled */
    char *p, *end;
};

struct fstr {               /* a string token: raw bytes between the quotes */
    const char *s;
    size_t raw_len, len;    /* len: decoded bytes */
    bool esc;               /* has escapes */
};

struct fr {                 /* reader */
    const char *p, *end;
};

static inline void ws(struct fr *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static inline bool put(struct fw *w, const char *s, size_t n)
{
    if ((size_t)(w->end - w->p) < n)
        return false;
    memcpy(w->p, s, n);
    w->p += n;
    return true;
}

static inline bool putc1(struct fw *w, char ch)
{
    if (w->p >= w->end)
        return false;
    *w->p++ = ch;
    return true;
}

/* Strict UTF-8 sequence at p (first byte >= 0x80): its length, 0 when invalid (overlong, surrogate,
 * > U+10FFFF, truncated), as jansson's utf8_check_full. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* A string at r->p (the opening quote); copies its dump form to w when w != NULL. */
static bool str(struct fr *r, struct fw *w, struct fstr *o)
{
    if (r->p >= r->end || *r->p != '"')
        return false;
    const char *s = ++r->p;
    size_t dec = 0;
    bool esc = false;
    while (r->p < r->end) {
        unsigned char c = (unsigned char)*r->p;
        if (c == '"')
            break;
        if (c < 0x20)
            return false;
        if (c == '\\') {
            if (r->end - r->p < 2)
                return false;
            char e = r->p[1];
            if (!(e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't'))
                return false; /* \u and invalid escapes: the general path */
            esc = true;
            r->p += 2;
            dec++;
            continue;
        }
        if (c >= 0x80) {
            size_t n = utf8_len((const unsigned char *)r->p, (const unsigned char *)r->end);
            if (!n)
                return false;
            r->p += n;
            dec += n;
            continue;
        }
        r->p++;
        dec++;
    }
    if (r->p >= r->end)
        return false;
    o->s = s;
    o->raw_len = (size_t)(r->p - s);
    o->len = dec;
    o->esc = esc;
    r->p++; /* closing quote */
    if (!w)
        return true;
    if (!putc1(w, '"'))
        return false;
    if (!esc) {
        if (!put(w, s, o->raw_len))
            return false;
    } else {
        for (const char *q = s; q < s + o->raw_len; q++) {
            if (*q == '\\' && q[1] == '/') { /* jansson writes '/' unescaped */
                q++;
                if (!putc1(w, '/'))
                    return false;
            } else if (*q == '\\') {
                if (!put(w, q, 2))
                    return false;
                q++;
            } else if (!putc1(w, *q)) {
                return false;
            }
        }
    }
    return putc1(w, '"');
}

/* An integer: -?(0|[1-9][0-9]*) of at most 18 digits, not "-0"; anything else number-like (reals, big
 * values) is not handled. *out set; the bytes are what jansson prints. */
static bool integer(struct fr *r, int64_t *out, const char **s, size_t *n)
{
    const char *b = r->p;
    bool neg = false;
    if (r->p < r->end && *r->p == '-') {
        neg = true;
        r->p++;
    }
    const char *d = r->p;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
        r->p++;
    size_t nd = (size_t)(r->p - d);
    if (nd == 0 || nd > 18 || (d[0] == '0' && nd > 1) || (neg && d[0] == '0'))
        return false;
    if (r->p < r->end && (*r->p == '.' || *r->p == 'e' || *r->p == 'E'))
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < nd; i++)
        v = v * 10 + (d[i] - '0');
    *out = neg ? -v : v;
    *s = b;
    *n = (size_t)(r->p - b);
    return true;
}

static bool lit(struct fr *r, const char *word, size_t n)
{
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return false;
    r->p += n;
    return true;
}

enum vkind { V_STR, V_INT, V_TRUE, V_FALSE, V_NULL, V_OBJ, V_ARR };

struct fval {
    enum vkind kind;
    struct fstr s;          /* V_STR */
    int64_t i;              /* V_INT */
    char *out;              /* its dump form in the writer ... */
    size_t out_len;         /* ... and length */
};

static bool value(struct fr *r, struct fw *w, struct fval *v, unsigned depth);

/* An object or array body after its opening bracket, copied compactly. */
static bool container(struct fr *r, struct fw *w, bool obj, unsigned depth)
{
    if (depth >= FAST_MAX_DEPTH)
        return false;
    const char *keys[FAST_MAX_KEYS];
    size_t klen[FAST_MAX_KEYS];
    unsigned nk = 0;
    char close = obj ? '}' : ']';
    if (!putc1(w, obj ? '{' : '['))
        return false;
    ws(r);
    if (r->p < r->end && *r->p == close) {
        r->p++;
        return putc1(w, close);
    }
    for (bool first = true;; first = false) {
        if (!first && !putc1(w, ','))
            return false;
        ws(r);
        if (obj) {
            struct fstr k;
            if (!str(r, w, &k) || k.esc || nk == FAST_MAX_KEYS)
                return false;
            for (unsigned i = 0; i < nk; i++)
                if (klen[i] == k.raw_len && memcmp(keys[i], k.s, k.raw_len) == 0)
                    return false; /* duplicate: the general path refuses it */
            keys[nk] = k.s;
            klen[nk++] = k.raw_len;
            ws(r);
            if (r->p >= r->end || *r->p != ':')
                return false;
            r->p++;
            if (!putc1(w, ':'))
                return false;
        }
        struct fval v;
        if (!value(r, w, &v, depth + 1))
            return false;
        ws(r);
        if (r->p >= r->end)
            return false;
        if (*r->p == ',') {
            r->p++;
            continue;
        }
        if (*r->p != close)
            return false;
        r->p++;
        return putc1(w, close);
    }
}

static bool value(struct fr *r, struct fw *w, struct fval *v, unsigned depth)
{
    ws(r);
    if (r->p >= r->end)
        return false;
    v->out = w->p;
    char c = *r->p;
    bool ok;
    if (c == '"') {
        v->kind = V_STR;
        ok = str(r, w, &v->s);
    } else if (c == '{' || c == '[') {
        v->kind = c == '{' ? V_OBJ : V_ARR;
        r->p++;
        ok = container(r, w, c == '{', depth);
    } else if (c == 't') {
        v->kind = V_TRUE;
        ok = lit(r, "true", 4) && put(w, "true", 4);
    } else if (c == 'f') {
        v->kind = V_FALSE;
        ok = lit(r, "false", 5) && put(w, "false", 5);
    } else if (c == 'n') {
        v->kind = V_NULL;
        ok = lit(r, "null", 4) && put(w, "null", 4);
    } else {
        const char *s;
        size_t n;
        v->kind = V_INT;
        ok = integer(r, &v->i, &s, &n) && put(w, s, n);
    }
    v->out_len = ok ? (size_t)(w->p - v->out) : 0;
    return ok;
}

/* ---- the message ---- */

static bool key_is(const struct fstr *k, const char *name)
{
    size_t n = strlen(name);
    return k->raw_len == n && memcmp(k->s, name, n) == 0;
}

/* An optional plain string field: absent/null, or a string without escapes of at most max bytes that
 * passes the rule (copied to out). */
static bool opt_str(const struct fval *v, bool seen, size_t min, size_t max, bool token, char *out)
{
    if (!seen || v->kind == V_NULL)
        return true;
    if (v->kind != V_STR || v->s.esc || v->s.len < min || v->s.len > max)
        return false;
    if (token)
        for (size_t i = 0; i < v->s.len; i++) {
            unsigned char ch = (unsigned char)v->s.s[i];
            if (ch <= 0x20 || ch >= 0x7f)
                return false; /* '"' and '\\' cannot be here: no escapes */
        }
    memcpy(out, v->s.s, v->s.len);
    out[v->s.len] = '\0';
    return true;
}

static bool alnum(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

enum { K_VERSION, K_TTYPE, K_TID, K_FTYPE, K_FID, K_TNAME, K_FNAME, K_FPLAT, K_TAPP, K_FAPP, K_CTIME, K_CMID,
       K_NOOFF, K_NONOTIF, K_NOTIF, K_MTYPE, K_BODY, K_NKEYS };
static const char *const k_keys[K_NKEYS] = {
    "version", "target_type", "target_id", "from_type", "from_id", "target_name", "from_name", "from_platform",
    "target_appkey", "from_appkey", "create_time", "client_msg_id", "no_offline", "no_notification",
    "notification", "msg_type", "msg_body",
};

/* msg_body of a text message: {"text": 1..AU_IM_MSG_BODY_MAX bytes, "extras": optional object, others any}. */
static bool text_body_ok(const char *b, size_t n)
{
    struct fr r = { b + 1, b + n - 1 }; /* inside the braces of our own compact output */
    bool text = false;
    while (r.p < r.end) {
        struct fstr k;
        if (!str(&r, NULL, &k) || r.p >= r.end || *r.p != ':')
            return false;
        r.p++;
        const char *vs = r.p;
        if (key_is(&k, "text")) {
            struct fstr t;
            if (*vs != '"' || !str(&r, NULL, &t) || t.len < 1 || t.len > AU_IM_MSG_BODY_MAX)
                return false;
            text = true;
        } else {
            /* skip one compact value (our own output: balanced, no whitespace) */
            unsigned d = 0;
            bool is_extras = key_is(&k, "extras");
            if (is_extras && !(*vs == '{' || (r.end - vs >= 4 && memcmp(vs, "null", 4) == 0 &&
                                              (vs + 4 == r.end || vs[4] == ','))))
                return false;
            while (r.p < r.end) {
                char c = *r.p;
                if (c == '"') {
                    struct fstr s;
                    if (!str(&r, NULL, &s))
                        return false;
                    continue;
                }
                if (c == '{' || c == '[')
                    d++;
                else if (c == '}' || c == ']')
                    d--;
                else if (c == ',' && d == 0)
                    break;
                r.p++;
            }
        }
        if (r.p < r.end) {
            if (*r.p != ',')
                return false;
            r.p++;
        }
    }
    return text;
}

int im_msg_canon_fast(const char *json, size_t len, const char *from_id, struct im_msg *m, char *out, size_t cap,
                      size_t *out_len)
{
    if (len == 0 || len > AU_IM_MSG_JSON_MAX)
        return 0;
    size_t fidl = strlen(from_id);
    struct fr r = { json, json + len };
    struct fw w = { out, out + cap };
    struct fval v[K_NKEYS];
    bool seen[K_NKEYS] = { false };
    const char *keys[FAST_MAX_KEYS];
    size_t klen[FAST_MAX_KEYS];
    unsigned nk = 0;
    ws(&r);
    if (r.p >= r.end || *r.p != '{')
        return 0;
    r.p++;
    if (!putc1(&w, '{'))
        return 0;
    ws(&r);
    bool any = false;
    while (r.p < r.end && *r.p != '}') {
        struct fstr k;
        char *mark = w.p;
        if (any && !putc1(&w, ','))
            return 0;
        if (!str(&r, &w, &k) || k.esc || nk == FAST_MAX_KEYS)
            return 0;
        for (unsigned i = 0; i < nk; i++)
            if (klen[i] == k.raw_len && memcmp(keys[i], k.s, k.raw_len) == 0)
                return 0;
        keys[nk] = k.s;
        klen[nk++] = k.raw_len;
        ws(&r);
        if (r.p >= r.end || *r.p != ':')
            return 0;
        r.p++;
        if (!putc1(&w, ':'))
            return 0;
        int idx = -1;
        for (int i = 0; i < K_NKEYS; i++)
            if (key_is(&k, k_keys[i])) {
                idx = i;
                break;
            }
        struct fval tmp, *pv = idx >= 0 ? &v[idx] : &tmp;
        if (!value(&r, &w, pv, 1))
            return 0;
        if (idx >= 0)
            seen[idx] = true;
        /* The server's keys are dropped; the sender fields are forced in place. */
        if (key_is(&k, "msgid") || key_is(&k, "msg_ctime") || key_is(&k, "sequence") || idx == K_CTIME) {
            w.p = mark;
        } else if (idx == K_FTYPE) {
            w.p = pv->out;
            if (!put(&w, "\"user\"", 6))
                return 0;
        } else if (idx == K_FID) {
            w.p = pv->out;
            if (!putc1(&w, '"') || !put(&w, from_id, fidl) || !putc1(&w, '"'))
                return 0;
        } else if (idx == K_VERSION) {
            if (pv->kind != V_INT || pv->i != 1)
                return 0; /* required, exactly 1 */
        }
        if (w.p != mark)
            any = true;
        ws(&r);
        if (r.p < r.end && *r.p == ',') {
            r.p++;
            ws(&r);
            if (r.p < r.end && *r.p == '}')
                return 0; /* trailing comma */
            continue;
        }
        if (r.p >= r.end || *r.p != '}')
            return 0;
    }
    if (r.p >= r.end)
        return 0;
    r.p++;
    ws(&r);
    if (r.p != r.end)
        return 0;
    /* Sender fields the message did not carry, in the order the general path sets them. */
    if (!seen[K_FTYPE]) {
        if ((any && !putc1(&w, ',')) || !put(&w, "\"from_type\":\"user\"", 18))
            return 0;
        any = true;
    }
    if (!seen[K_FID]) {
        if ((any && !putc1(&w, ',')) || !put(&w, "\"from_id\":\"", 11) || !put(&w, from_id, fidl) || !putc1(&w, '"'))
            return 0;
        any = true;
    }
    if (!seen[K_VERSION])
        return 0; /* required */
    if (!putc1(&w, '}') || w.p >= w.end)
        return 0;

    /* Validation, as parse_msg (only what a text message from a device may carry; the rest: general path). */
    memset(m, 0, sizeof *m);
    if (!seen[K_TTYPE] || v[K_TTYPE].kind != V_STR || v[K_TTYPE].s.esc || !seen[K_TID])
        return 0;
    const struct fval *tt = &v[K_TTYPE], *tid = &v[K_TID];
    if (tt->s.len == 6 && memcmp(tt->s.s, "single", 6) == 0) {
        m->target_type = IM_TARGET_SINGLE;
        if (tid->kind != V_STR || tid->s.esc || !im_username_valid(tid->s.s, tid->s.len))
            return 0;
        memcpy(m->target_id, tid->s.s, tid->s.len);
    } else if (tt->s.len == 5 && memcmp(tt->s.s, "group", 5) == 0) {
        m->target_type = IM_TARGET_GROUP;
        if (tid->kind == V_INT && tid->i > 0) {
            m->target_gid = (uint64_t)tid->i;
            memcpy(m->target_id, tid->out, tid->out_len);
        } else if (tid->kind == V_STR && !tid->s.esc && tid->s.len <= AU_IM_USERNAME_MAX &&
                   im_gid_parse(tid->s.s, tid->s.len, &m->target_gid)) {
            memcpy(m->target_id, tid->s.s, tid->s.len);
        } else {
            return 0;
        }
    } else {
        return 0;
    }
    if (seen[K_FTYPE] && v[K_FTYPE].kind != V_NULL) {
        if (v[K_FTYPE].kind != V_STR || v[K_FTYPE].s.esc || v[K_FTYPE].s.len != 4 ||
            memcmp(v[K_FTYPE].s.s, "user", 4) != 0)
            return 0;
        m->from_type = IM_FROM_USER;
    }
    if (seen[K_FID] && v[K_FID].kind != V_NULL) {
        const struct fval *f = &v[K_FID];
        if (f->kind != V_STR || f->s.esc || !im_username_valid(f->s.s, f->s.len))
            return 0;
        memcpy(m->from_id, f->s.s, f->s.len);
    }
    if (!opt_str(&v[K_TNAME], seen[K_TNAME], 0, AU_IM_STR_MAX, false, m->target_name) ||
        !opt_str(&v[K_FNAME], seen[K_FNAME], 0, AU_IM_STR_MAX, false, m->from_name) ||
        !opt_str(&v[K_FPLAT], seen[K_FPLAT], 0, AU_IM_SHORT_STR_MAX, true, m->from_platform) ||
        !opt_str(&v[K_TAPP], seen[K_TAPP], 0, AU_IM_APPKEY_LEN, true, m->target_appkey) ||
        !opt_str(&v[K_FAPP], seen[K_FAPP], 0, AU_IM_APPKEY_LEN, true, m->from_appkey) ||
        !opt_str(&v[K_CMID], seen[K_CMID], 0, AU_IM_CLIENT_MSG_ID_MAX, true, m->client_msg_id))
        return 0;
    for (int a = 0; a < 2; a++) {
        const char *k = a ? m->from_appkey : m->target_appkey;
        size_t n = strlen(k);
        if (n && n != AU_IM_APPKEY_LEN)
            return 0;
        for (size_t i = 0; i < n; i++)
            if (!alnum((unsigned char)k[i]))
                return 0;
    }
    if (seen[K_CMID] && v[K_CMID].kind != V_NULL) {
        size_t n = strlen(m->client_msg_id);
        if (n == 0)
            return 0;
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)m->client_msg_id[i];
            if (!(alnum(ch) || ch == '_' || ch == '.' || ch == ':' || ch == '-'))
                return 0;
        }
    }
    if (seen[K_CTIME] && v[K_CTIME].kind != V_NULL) {
        if (v[K_CTIME].kind != V_INT || v[K_CTIME].i < 0)
            return 0;
        m->create_time = (uint64_t)v[K_CTIME].i;
    }
    for (int b = K_NOOFF; b <= K_NONOTIF; b++) {
        if (!seen[b] || v[b].kind == V_NULL)
            continue;
        if (v[b].kind != V_TRUE && v[b].kind != V_FALSE)
            return 0;
        if (b == K_NOOFF)
            m->no_offline = v[b].kind == V_TRUE;
        else
            m->no_notification = v[b].kind == V_TRUE;
    }
    if (seen[K_NOTIF] && v[K_NOTIF].kind != V_NULL)
        return 0; /* a notification object: the general path */
    if (!seen[K_MTYPE] || v[K_MTYPE].kind != V_STR || v[K_MTYPE].s.esc || v[K_MTYPE].s.len != 4 ||
        memcmp(v[K_MTYPE].s.s, "text", 4) != 0)
        return 0;
    m->msg_type = IM_MSG_TEXT;
    const struct fval *body = &v[K_BODY];
    if (!seen[K_BODY] || body->kind != V_OBJ || body->out_len > AU_IM_MSG_BODY_MAX ||
        !text_body_ok(body->out, body->out_len))
        return 0;
    memcpy(m->body, body->out, body->out_len);
    m->body[body->out_len] = '\0';
    m->body_len = (uint32_t)body->out_len;
    *out_len = (size_t)(w.p - out);
    *w.p = '\0';
    return 1;
}
