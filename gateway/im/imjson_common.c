/* imjson_common.c - JSON writer, validators, date-times and the jansson field getters. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/common.h"
#include "gateway/im/imjson_internal.h"

/* ======================================================================================
 * Writer
 * ====================================================================================== */
static void put(struct im_jw *w, const char *s, size_t n)
{
    if (w->len < w->cap) {
        size_t room = w->cap - w->len;
        memcpy(w->buf + w->len, s, n < room ? n : room);
    }
    w->len += n;
}

static void putc1(struct im_jw *w, char c)
{
    if (w->len < w->cap)
        w->buf[w->len] = c;
    w->len++;
}

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no surrogates, <= U+10FFFF),
 * 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return (n >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if (c == 0xE0 && s[1] < 0xA0)
            return 0; /* overlong */
        if (c == 0xED && s[1] >= 0xA0)
            return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90)
            return 0; /* overlong */
        if (c == 0xF4 && s[1] >= 0x90)
            return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

static void put_escaped(struct im_jw *w, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    putc1(w, '"');
    size_t start = 0, i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        put(w, str + start, i - start);
        if (c < 0x80) {
            switch (c) {
            case '"':  put(w, "\\\"", 2); break;
            case '\\': put(w, "\\\\", 2); break;
            case '\n': put(w, "\\n", 2); break;
            case '\r': put(w, "\\r", 2); break;
            case '\t': put(w, "\\t", 2); break;
            case '\b': put(w, "\\b", 2); break;
            case '\f': put(w, "\\f", 2); break;
            default: {
                char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
                put(w, u, 6);
            }
            }
            i++;
        } else {
            size_t l = utf8_len(s + i, n - i);
            if (l) {
                put(w, str + i, l);
                i += l;
            } else {
                put(w, "\xEF\xBF\xBD", 3); /* U+FFFD */
                i++;
            }
        }
        start = i;
    }
    put(w, str + start, i - start);
    putc1(w, '"');
}

void im_jw_init(struct im_jw *w, char *buf, size_t cap)
{
    AU_ASSERT(buf || cap == 0);
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->depth = 0;
    w->after_key = false;
    w->need_comma = 0;
    if (cap)
        buf[0] = '\0';
}

static void value_prefix(struct im_jw *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    uint64_t bit = 1ull << w->depth;
    if (w->need_comma & bit)
        putc1(w, ',');
    w->need_comma |= bit;
}

static void open_nest(struct im_jw *w, char c)
{
    value_prefix(w);
    putc1(w, c);
    AU_ASSERT(w->depth + 1 < IM_JW_MAX_DEPTH);
    w->depth++;
    w->need_comma &= ~(1ull << w->depth);
}

static void close_nest(struct im_jw *w, char c)
{
    AU_ASSERT(w->depth > 0 && !w->after_key);
    w->depth--;
    putc1(w, c);
}

void im_jw_obj_begin(struct im_jw *w) { open_nest(w, '{'); }
void im_jw_obj_end(struct im_jw *w) { close_nest(w, '}'); }
void im_jw_arr_begin(struct im_jw *w) { open_nest(w, '['); }
void im_jw_arr_end(struct im_jw *w) { close_nest(w, ']'); }

void im_jw_key(struct im_jw *w, const char *key)
{
    AU_ASSERT(w->depth > 0 && !w->after_key);
    value_prefix(w);
    put_escaped(w, key, strlen(key));
    putc1(w, ':');
    w->after_key = true;
}

void im_jw_strn(struct im_jw *w, const char *s, size_t n)
{
    value_prefix(w);
    put_escaped(w, s, n);
}

void im_jw_str(struct im_jw *w, const char *s)
{
    im_jw_strn(w, s ? s : "", s ? strlen(s) : 0);
}

void im_jw_u64(struct im_jw *w, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    value_prefix(w);
    put(w, tmp + i, sizeof tmp - i);
}

void im_jw_i64(struct im_jw *w, int64_t v)
{
    if (v >= 0) {
        im_jw_u64(w, (uint64_t)v);
        return;
    }
    uint64_t m = (uint64_t)(-(v + 1)) + 1;
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + m % 10);
        m /= 10;
    } while (m);
    tmp[--i] = '-';
    value_prefix(w);
    put(w, tmp + i, sizeof tmp - i);
}

void im_jw_bool(struct im_jw *w, bool v)
{
    value_prefix(w);
    if (v)
        put(w, "true", 4);
    else
        put(w, "false", 5);
}

void im_jw_null(struct im_jw *w)
{
    value_prefix(w);
    put(w, "null", 4);
}

void im_jw_raw(struct im_jw *w, const char *json, size_t n)
{
    AU_ASSERT(n > 0);
    value_prefix(w);
    put(w, json, n);
}

size_t im_jw_finish(struct im_jw *w)
{
    AU_ASSERT(w->depth == 0 && !w->after_key);
    if (w->cap)
        w->buf[w->len < w->cap ? w->len : w->cap - 1] = '\0';
    return w->len;
}

void im_jw_kstr(struct im_jw *w, const char *key, const char *s)
{
    im_jw_key(w, key);
    im_jw_str(w, s);
}

void im_jw_kstr_opt(struct im_jw *w, const char *key, const char *s)
{
    if (s && s[0])
        im_jw_kstr(w, key, s);
}

void im_jw_ku64(struct im_jw *w, const char *key, uint64_t v)
{
    im_jw_key(w, key);
    im_jw_u64(w, v);
}

void im_jw_ktime(struct im_jw *w, const char *key, uint64_t unix_ms)
{
    char t[AU_IM_DATETIME_LEN + 1];
    im_datetime_format(unix_ms, t);
    im_jw_kstr(w, key, t);
}

void im_jw_error(struct im_jw *w, int code, const char *message)
{
    im_jw_key(w, "error");
    im_jw_obj_begin(w);
    im_jw_key(w, "code");
    im_jw_i64(w, code);
    im_jw_kstr(w, "message", (message && message[0]) ? message : im_err_message(code));
    im_jw_obj_end(w);
}

/* ======================================================================================
 * Validators
 * ====================================================================================== */
static bool is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool im_username_valid(const char *s, size_t len)
{
    if (len < AU_IM_USERNAME_MIN || len > AU_IM_USERNAME_MAX || !is_alnum((unsigned char)s[0]))
        return false;
    for (size_t i = 1; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!is_alnum(c) && c != '_' && c != '.' && c != '-' && c != '@')
            return false;
    }
    return true;
}

bool im_password_valid(const char *s, size_t len)
{
    if (len < AU_IM_PASSWORD_MIN || len > AU_IM_PASSWORD_MAX)
        return false;
    return memchr(s, '\0', len) == NULL;
}

bool im_gid_parse(const char *s, size_t len, uint64_t *gid)
{
    if (len == 0 || len > 19 || s[0] == '0')
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return false;
    *gid = v;
    return true;
}

/* ---- date-times (proleptic Gregorian, UTC; H. Hinnant's civil algorithms) ---- */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int digits(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

bool im_datetime_parse(const char *s, size_t len, bool date_only_ok, int64_t *unix_s)
{
    if (!(len == AU_IM_DATETIME_LEN || (date_only_ok && len == 10)))
        return false;
    if (s[4] != '-' || s[7] != '-')
        return false;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = 0, mi = 0, se = 0;
    if (len == AU_IM_DATETIME_LEN) {
        if (s[10] != ' ' || s[13] != ':' || s[16] != ':')
            return false;
        h = digits(s + 11, 2);
        mi = digits(s + 14, 2);
        se = digits(s + 17, 2);
    }
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 59)
        return false;
    static const unsigned char mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap))
        return false;
    *unix_s = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se;
    return true;
}

void im_datetime_format(uint64_t unix_ms, char out[AU_IM_DATETIME_LEN + 1])
{
    /* 9999-12-31 23:59:59 is the last time that fits the format: later times clamp to it. */
    const uint64_t max_s = 253402300799ull;
    uint64_t t = unix_ms / 1000;
    if (t > max_s)
        t = max_s;
    int64_t days = (int64_t)(t / 86400);
    unsigned sod = (unsigned)(t % 86400);
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    unsigned yy = (unsigned)y;
    AU_ASSERT(y >= 1970 && y <= 9999);
    unsigned f[6] = { yy / 100, yy % 100, m, d, sod / 3600, sod / 60 % 60 };
    char *o = out;
    for (int i = 0; i < 6; i++) {
        *o++ = (char)('0' + f[i] / 10);
        *o++ = (char)('0' + f[i] % 10);
        if (i >= 1)
            *o++ = " -- ::"[i];
    }
    *o++ = (char)('0' + sod % 60 / 10);
    *o++ = (char)('0' + sod % 10);
    *o = '\0';
    AU_ASSERT(o == out + AU_IM_DATETIME_LEN);
}

/* ======================================================================================
 * Parsing helpers
 * ====================================================================================== */
static int code_for(enum im_src src, enum im_fail k)
{
    if (src == IM_SRC_DEVICE) {
        switch (k) {
        case IM_F_FORMAT:       return IM_E_SEND_JSON;
        case IM_F_TOO_LONG:     return IM_E_SEND_TOO_LONG;
        case IM_F_TARGET_USER:  return IM_E_SEND_NO_USER;
        case IM_F_TARGET_GROUP: return IM_E_SEND_NO_GROUP;
        case IM_F_PERM:         return IM_E_SEND_NOT_PERMITTED;
        }
        return IM_E_SEND_JSON;
    }
    return k == IM_F_PERM ? IM_E_NO_SEND_AUTH : IM_E_PARAM;
}

__attribute__((format(printf, 3, 0)))
static int vfail(struct pctx *c, int code, const char *fmt, va_list ap)
{
    c->err->code = code;
    vsnprintf(c->err->msg, sizeof c->err->msg, fmt, ap);
    return -1;
}

int im_fail(struct pctx *c, enum im_fail k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(c, code_for(c->src, k), fmt, ap);
    va_end(ap);
    return -1;
}

int im_fail_code(struct pctx *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(c, code, fmt, ap);
    va_end(ap);
    return -1;
}

/* Nesting depth of arrays/objects, outside strings; stops early past max. */
static bool depth_ok(const char *s, size_t n, unsigned max)
{
    unsigned d = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = false;
            continue;
        }
        if (ch == '"') {
            in_str = true;
        } else if (ch == '[' || ch == '{') {
            if (++d > max)
                return false;
        } else if ((ch == ']' || ch == '}') && d) {
            d--;
        }
    }
    return true;
}

json_t *im_load(struct pctx *c, const char *json, size_t len, size_t max_len,
                enum im_fail too_long_kind)
{
    if (len == 0) {
        im_fail(c, IM_F_FORMAT, "empty body");
        return NULL;
    }
    if (len > max_len) {
        im_fail(c, too_long_kind, "body longer than %zu bytes", max_len);
        return NULL;
    }
    if (!depth_ok(json, len, AU_IM_JSON_MAX_DEPTH)) {
        im_fail(c, IM_F_FORMAT, "JSON nested deeper than %d", AU_IM_JSON_MAX_DEPTH);
        return NULL;
    }
    json_error_t je;
    json_t *v = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!v) {
        im_fail(c, IM_F_FORMAT, "invalid JSON at byte %d: %s", je.position, je.text);
        return NULL;
    }
    return v;
}

static json_t *field(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return (v && json_is_null(v)) ? NULL : v;
}

static int absent(struct pctx *c, const char *where, const char *key, int req)
{
    return req ? im_fail(c, IM_F_FORMAT, "%s%s: missing", where, key) : 0;
}

static bool str_rule_ok(const char *s, size_t n, enum im_str_rule rule)
{
    switch (rule) {
    case IM_S_ANY:
        return true;
    case IM_S_NO_CRLF:
        return memchr(s, '\n', n) == NULL && memchr(s, '\r', n) == NULL;
    case IM_S_TOKEN:
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)s[i];
            if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
                return false;
        }
        return true;
    }
    return false;
}

int im_get_str(struct pctx *c, json_t *obj, const char *where, const char *key, int req,
               size_t min, size_t max, enum im_str_rule rule, char *out, size_t *out_len)
{
    json_t *v = field(obj, key);
    if (!v)
        return absent(c, where, key, req);
    if (!json_is_string(v))
        return im_fail(c, IM_F_FORMAT, "%s%s: must be a string", where, key);
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n < min)
        return im_fail(c, IM_F_FORMAT, "%s%s: shorter than %zu bytes", where, key, min);
    if (n > max)
        return im_fail(c, IM_F_FORMAT, "%s%s: longer than %zu bytes", where, key, max);
    if (!str_rule_ok(s, n, rule))
        return im_fail(c, IM_F_FORMAT, "%s%s: characters not allowed", where, key);
    if (out) {
        memcpy(out, s, n);
        out[n] = '\0';
    }
    if (out_len)
        *out_len = n;
    return 1;
}

int im_get_int(struct pctx *c, json_t *obj, const char *where, const char *key, int req,
               int64_t min, int64_t max, int64_t *out)
{
    json_t *v = field(obj, key);
    if (!v)
        return absent(c, where, key, req);
    if (!json_is_integer(v))
        return im_fail(c, IM_F_FORMAT, "%s%s: must be an integer", where, key);
    json_int_t x = json_integer_value(v);
    if (x < min || x > max)
        return im_fail(c, IM_F_FORMAT, "%s%s: out of range %lld..%lld", where, key,
                       (long long)min, (long long)max);
    *out = x;
    return 1;
}

int im_get_num(struct pctx *c, json_t *obj, const char *where, const char *key, int req,
               double *out)
{
    json_t *v = field(obj, key);
    if (!v)
        return absent(c, where, key, req);
    if (!json_is_number(v))
        return im_fail(c, IM_F_FORMAT, "%s%s: must be a number", where, key);
    double d = json_number_value(v);
    if (!isfinite(d))
        return im_fail(c, IM_F_FORMAT, "%s%s: not a finite number", where, key);
    *out = d;
    return 1;
}

int im_get_bool(struct pctx *c, json_t *obj, const char *where, const char *key, int req,
                bool *out)
{
    json_t *v = field(obj, key);
    if (!v)
        return absent(c, where, key, req);
    if (!json_is_boolean(v))
        return im_fail(c, IM_F_FORMAT, "%s%s: must be true or false", where, key);
    *out = json_is_true(v);
    return 1;
}

int im_get_obj(struct pctx *c, json_t *obj, const char *where, const char *key, int req,
               json_t **out)
{
    json_t *v = field(obj, key);
    if (!v)
        return absent(c, where, key, req);
    if (!json_is_object(v))
        return im_fail(c, IM_F_FORMAT, "%s%s: must be an object", where, key);
    *out = v;
    return 1;
}

int im_get_arr(struct pctx *c, json_t *obj, const char *where, const char *key, int req,
               json_t **out)
{
    json_t *v = field(obj, key);
    if (!v)
        return absent(c, where, key, req);
    if (!json_is_array(v))
        return im_fail(c, IM_F_FORMAT, "%s%s: must be an array", where, key);
    *out = v;
    return 1;
}

int im_get_username(struct pctx *c, json_t *obj, const char *where, const char *key, int req,
                    enum im_fail k, char out[AU_IM_USERNAME_MAX + 1])
{
    json_t *v = field(obj, key);
    if (!v)
        return absent(c, where, key, req);
    if (!json_is_string(v))
        return im_fail(c, IM_F_FORMAT, "%s%s: must be a string", where, key);
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (!im_username_valid(s, n))
        return im_fail(c, k, "%s%s: not a valid username", where, key);
    memcpy(out, s, n);
    out[n] = '\0';
    return 1;
}

size_t im_dump(json_t *v, char *out, size_t cap)
{
    AU_ASSERT(cap > 0);
    size_t n = json_dumpb(v, out, cap - 1, JSON_COMPACT);
    if (n == 0 || n > cap - 1)
        return (size_t)-1;
    out[n] = '\0';
    return n;
}

void im_copy_cut(char *out, size_t max, const char *s, size_t len)
{
    size_t n = len;
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--; /* s[n] continues a character: cut before the character starts */
    }
    memcpy(out, s, n);
    out[n] = '\0';
}

int im_names_from_array(struct pctx *c, json_t *arr, const char *what, struct im_name *out,
                        size_t cap, int too_many_code, int dup_code, size_t *n)
{
    size_t count = json_array_size(arr);
    if (count > cap)
        return im_fail_code(c, too_many_code, "%s: more than %zu usernames", what, cap);
    for (size_t i = 0; i < count; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_string(v) || !im_username_valid(json_string_value(v), json_string_length(v)))
            return im_fail_code(c, IM_E_PARAM, "%s[%zu]: not a valid username", what, i);
        size_t l = json_string_length(v);
        memcpy(out[i].s, json_string_value(v), l);
        out[i].s[l] = '\0';
        if (dup_code) {
            for (size_t j = 0; j < i; j++)
                if (strcmp(out[j].s, out[i].s) == 0)
                    return im_fail_code(c, dup_code, "%s: \"%s\" given twice", what, out[i].s);
        }
    }
    *n = count;
    return 0;
}
