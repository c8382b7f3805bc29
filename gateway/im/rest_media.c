/* rest_media.c - media REST endpoints (see rest_media.h, docs/media.md). */
#include "gateway/im/rest_internal.h"

#include "gateway/im/rest_media.h"

#include "core/buf.h"
#include "core/loop.h"
#include "gateway/http/multipart.h"
#include "store/iopool.h"
#include "store/media.h"

#include <ctype.h>
#include <strings.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIG_HEX_LEN 64                    /* HMAC-SHA256 in hex */
#define PATH_MAX_   (AU_CONFIG_PATH_MAX + 64)

_Static_assert(sizeof "https://" - 1 + REST_MEDIA_HOST_MAX + sizeof "/v1/resource/raw?mediaId=" - 1 + MEDIA_ID_MAX +
                       sizeof "&app=4294967295&expires=18446744073709551615&sig=" - 1 + SIG_HEX_LEN <
                   REST_MEDIA_URL_MAX,
               "a download link fits REST_MEDIA_URL_MAX");
/* The raw answer's header lines: Content-Type, ETag, Cache-Control, X-Content-Type-Options and
 * Content-Disposition with the longest encoded name (each line's name, ": " and CRLF included). */
_Static_assert(sizeof "Content-Type: \r\n" + MEDIA_CTYPE_MAX + sizeof "ETag: \"\"\r\n" + MEDIA_HEX_LEN +
                       sizeof "Cache-Control: public, max-age=31536000, immutable\r\n" +
                       sizeof "X-Content-Type-Options: nosniff\r\n" +
                       sizeof "Content-Disposition: attachment; filename*=UTF-8''\r\n" + REST_MEDIA_DISP_NAME_MAX <=
                   HTTP_RESP_HEADERS_MAX,
               "the raw answer's headers fit the response builder");
_Static_assert(MEDIA_ID_MAX <= AU_IM_MEDIA_ID_MAX, "media ids fit msg_body.media_id");
_Static_assert(AU_IM_STR_MAX + 1 <= MEDIA_FNAME_MAX, "an answer's fname is a stored name");

/* Process-wide, set by rest_media_init before the shards start, read-only afterwards. */
static struct media_store *g_ms;
static struct iopool *g_io;
static const struct au_config *g_cfg;
static uint8_t g_key[REST_MEDIA_KEY_LEN];
/* Set by rest_media_start once the pool runs (shards serve from au_loop_start on, a moment earlier). */
static atomic_bool g_started;
/* Per shard, touched only by that shard's thread: set by rest_media_shard_detach. */
static bool g_detached[AU_MAX_SHARDS];

/* ------------------------------------------------------------------ answers */

static void answer(struct http_resp *r, int status, int code, const char *detail)
{
    rest_error(r, code, detail);
    http_resp_status(r, status);
}

/* Finish a deferred request with an error (status overrides the code's default when non-zero). */
static void finish_error(struct rest_async *a, int status, int code, const char *detail)
{
    struct http_resp *r = http_gw_defer_resp(a->defer);
    if (r) answer(r, status ? status : im_err_http_status(code), code, detail);
    http_gw_defer_finish(a->defer);
    a->defer = NULL;
}

static int media_status(int err)
{
    switch (err) {
    case MEDIA_ETOO_LARGE: return 413;
    case MEDIA_ENOT_IMAGE: case MEDIA_EBAD_ID: return 400;
    case MEDIA_ENOT_FOUND: return 404;
    default: return 500;
    }
}

static int media_code(int err)
{
    return media_status(err) == 500 ? IM_E_SYSTEM : IM_E_PARAM;
}

/* ------------------------------------------------------------------ signed links */

static void hex_of(const uint8_t *p, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[p[i] >> 4];
        out[2 * i + 1] = hx[p[i] & 15];
    }
    out[2 * n] = 0;
}

/* sig = hex(HMAC-SHA256(key, id "\n" app "\n" expires)). */
static void link_sig(const char *id, uint32_t app, uint64_t expires, char out[SIG_HEX_LEN + 1])
{
    char msg[MEDIA_ID_MAX + 48];
    int n = snprintf(msg, sizeof msg, "%s\n%u\n%llu", id, app, (unsigned long long)expires);
    AU_ASSERT(n > 0 && (size_t)n < sizeof msg);
    uint8_t mac[32];
    size_t ml = 0;
    bool ok = EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, g_key, sizeof g_key, (const uint8_t *)msg, (size_t)n, mac,
                        sizeof mac, &ml) != NULL;
    AU_ASSERT(ok && ml == sizeof mac);
    hex_of(mac, sizeof mac, out);
}

static int key_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int key_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* 1 loaded, 0 absent, -1 error. */
static int key_read(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return errno == ENOENT ? 0 : key_fail(err, errlen, "%s: %s", path, strerror(errno));
    struct stat st;
    int r = -1;
    if (fstat(fd, &st) != 0) key_fail(err, errlen, "%s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode) || st.st_size != REST_MEDIA_KEY_LEN)
        key_fail(err, errlen, "%s: not a regular file of %u bytes", path, REST_MEDIA_KEY_LEN);
    else if (st.st_mode & 077)
        key_fail(err, errlen, "%s: group/other may access it (mode %03o); chmod 600 it", path,
                 (unsigned)(st.st_mode & 0777));
    else if (read(fd, g_key, sizeof g_key) != (ssize_t)sizeof g_key)
        key_fail(err, errlen, "%s: short read", path);
    else
        r = 1;
    close(fd);
    return r;
}

/* Write a fresh key to a temp file, fsync, link() into place (EEXIST: another starter won; read its key). */
static int key_create(const char *dir, const char *path, char *err, size_t errlen)
{
    char tmp[PATH_MAX_];
    int n = snprintf(tmp, sizeof tmp, "%s/.%s.%ld.tmp", dir, REST_MEDIA_KEY_FILE, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp) return key_fail(err, errlen, "%s: path too long", dir);
    uint8_t k[REST_MEDIA_KEY_LEN];
    if (RAND_priv_bytes(k, sizeof k) != 1) return key_fail(err, errlen, "RAND_priv_bytes failed");
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return key_fail(err, errlen, "%s: %s", tmp, strerror(errno));
    bool ok = write(fd, k, sizeof k) == (ssize_t)sizeof k && fsync(fd) == 0;
    int e = errno;
    OPENSSL_cleanse(k, sizeof k);
    close(fd);
    if (!ok) {
        unlink(tmp);
        return key_fail(err, errlen, "%s: write: %s", tmp, strerror(e));
    }
    int lr = link(tmp, path);
    e = errno;
    unlink(tmp);
    if (lr != 0 && e != EEXIST) return key_fail(err, errlen, "%s: %s", path, strerror(e));
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return 0;
}

static int key_load(const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX_];
    int n = snprintf(path, sizeof path, "%s/%s", dir, REST_MEDIA_KEY_FILE);
    if (n < 0 || (size_t)n >= sizeof path) return key_fail(err, errlen, "%s: path too long", dir);
    int r = key_read(path, err, errlen);
    if (r == 0) {
        if (key_create(dir, path, err, errlen) != 0) return -1;
        r = key_read(path, err, errlen);
        if (r == 0) return key_fail(err, errlen, "%s: vanished after creation", path);
    }
    return r > 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ request helpers */

/* ?mediaId= parsed and put in canonical form ("aurora/<type>/<lowercase hex>"). 0, or -1 absent, -2 bad. */
static int query_media_id(const struct http_req *req, char id[MEDIA_ID_MAX], char hex[MEDIA_HEX_LEN + 1],
                          enum media_type *type)
{
    char raw[MEDIA_ID_MAX];
    ssize_t n = req->query ? http_query_get(req->query, req->query_len, "mediaId", raw, sizeof raw) : -1;
    if (n == -1) return -1;
    if (n < 0 || media_id_parse(raw, (size_t)n, type, hex) != 0) return -2;
    int l = snprintf(id, MEDIA_ID_MAX, MEDIA_ID_PREFIX "%s/%s", media_type_name(*type), hex);
    AU_ASSERT(l > 0 && l < MEDIA_ID_MAX);
    return 0;
}

static bool detached(const struct au_shard *s) { return g_detached[s->id]; }

/* Run go(s, arg) once the pool is started: at once, or (a request in the moment between au_loop_start
 * and rest_media_start) from the shard's next loop iterations. */
typedef void (*go_fn)(struct au_shard *s, void *arg);
struct start_wait {
    struct au_xmsg x;          /* first */
    go_fn go;
    void *arg;
    uint64_t since_ms;
};

static void start_wait_dispose(struct au_xmsg *x) { free(x); }

static void start_wait_run(struct au_shard *s, struct au_xmsg *x)
{
    struct start_wait *w = (struct start_wait *)x;
    if (!atomic_load_explicit(&g_started, memory_order_acquire)) {
        AU_ASSERT(s->now_ms - w->since_ms < REST_MEDIA_START_WAIT_MS); /* rest_media_start never called */
        au_shard_post_disposable(s, s->id, x, start_wait_dispose);
        return;
    }
    w->go(s, w->arg);
    free(w);
}

static void when_started(struct au_shard *s, go_fn go, void *arg)
{
    if (atomic_load_explicit(&g_started, memory_order_acquire)) {
        go(s, arg);
        return;
    }
    struct start_wait *w = calloc(1, sizeof *w);
    AU_ASSERT(w != NULL);
    w->x.handler = start_wait_run;
    w->go = go;
    w->arg = arg;
    w->since_ms = s->now_ms;
    au_shard_post_disposable(s, s->id, &w->x, start_wait_dispose);
}

/* ------------------------------------------------------------------ POST /v1/resource */

struct upload {
    struct rest_async a;       /* first */
    enum im_media_kind kind;
    enum media_type type;
    uint8_t *data;             /* our copy of the part's bytes, freed once stored */
    size_t len;
    bool has_name, has_ctype;
    char fname[AU_IM_STR_MAX + 1];
    char ctype[MEDIA_CTYPE_MAX];
    struct im_media m;         /* the answer, filled when the bytes are stored */
};

static void upload_free(struct upload *u)
{
    free(u->data);
    free(u);
}

static void upload_recorded(struct au_shard *s, void *arg, int err)
{
    (void)s;
    struct upload *u = arg;
    if (err) {
        au_error("media: ownership record of %s: store error %d", u->m.media_id, err);
        finish_error(&u->a, 500, IM_E_SYSTEM, "the media record could not be stored");
    } else {
        char buf[1024];
        size_t n = im_media_render(&u->m, buf, sizeof buf);
        AU_ASSERT(n < sizeof buf);
        rest_finish_json(&u->a, 200, buf, n);
    }
    upload_free(u);
}

/* Voice without a sniffed format: the file name's extension, lower case ("" when none or odd). */
static void ext_format(const char *fname, char *out, size_t cap)
{
    out[0] = 0;
    const char *dot = strrchr(fname, '.');
    if (!dot || !dot[1]) return;
    size_t n = strlen(dot + 1);
    if (n >= cap || n > 8) return;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)dot[1 + i];
        if (!isalnum(c)) {
            out[0] = 0;
            return;
        }
        out[i] = (char)tolower(c);
    }
    out[n] = 0;
}

static void upload_stored(struct au_shard *s, void *arg, int err, const struct media_info *info)
{
    struct upload *u = arg;
    free(u->data);
    u->data = NULL;
    if (!s) { /* the pool shut down without this shard (a wiring bug): release only */
        free(u);
        return;
    }
    if (err) {
        const char *why = err == MEDIA_ENOT_IMAGE ? "type=image: the file is not a PNG, JPEG, GIF, WebP or BMP image"
                        : err == MEDIA_ETOO_LARGE ? "the file is larger than 8 MB"
                                                  : media_strerror(err);
        finish_error(&u->a, media_status(err), media_code(err), why);
        upload_free(u);
        return;
    }
    struct im_media *m = &u->m;
    memset(m, 0, sizeof *m);
    m->kind = u->kind;
    m->crc32 = info->crc32;
    m->fsize = info->fsize;
    m->width = info->width;
    m->height = info->height;
    snprintf(m->media_id, sizeof m->media_id, "%s", info->id);
    snprintf(m->hash, sizeof m->hash, "%s", info->hex);
    media_fname_sanitize(info->fname, strlen(info->fname), m->fname, sizeof m->fname); /* cut already (post) */
    snprintf(m->format, sizeof m->format, "%s", media_format_name(info->format));
    if (u->kind == IM_MEDIA_VOICE && !m->format[0]) ext_format(info->fname, m->format, sizeof m->format);

    json_t *rec = json_pack("{s:s,s:I,s:I,s:s,s:I,s:I,s:s,s:I}", "type", media_type_name(info->type), "fsize",
                            (json_int_t)m->fsize, "crc32", (json_int_t)m->crc32, "format", m->format, "width",
                            (json_int_t)m->width, "height", (json_int_t)m->height, "fname", m->fname, "ctime",
                            (json_int_t)au_wall_ms());
    AU_ASSERT(rec != NULL);
    uint8_t key[KS_KEY_MAX];
    size_t kl = ks_im_media(key, u->a.app, m->media_id, strlen(m->media_id));
    struct store_batch *b = store_batch_new();
    rest_put_json(b, key, kl, rec);
    json_decref(rec);
    store_write(rest_store(), s->id, b, upload_recorded, u);
}

/* The file: the first part with a filename (any field name), else a part named filename, file or media. */
static const struct mp_part *file_part(const struct mp_part *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i].filename.present || p[i].filename_star.present) return &p[i];
    static const char *const names[] = { "filename", "file", "media" };
    for (size_t i = 0; i < AU_ARRAY_LEN(names); i++) {
        const struct mp_part *f = mp_find(p, n, names[i]);
        if (f) return f;
    }
    return NULL;
}

static void upload_go(struct au_shard *s, void *arg)
{
    struct upload *u = arg;
    media_put_async(g_ms, g_io, s->id, u->a.app, u->type, u->data, u->len, u->has_name ? u->fname : NULL,
                    u->has_ctype ? u->ctype : NULL, upload_stored, u);
}

static void post_resource(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct rest_ctx c;
    if (!rest_auth(req, resp, ctx, &c)) return;
    char tv[8];
    ssize_t tl = req->query ? http_query_get(req->query, req->query_len, "type", tv, sizeof tv) : -1;
    enum im_media_kind kind = tl > 0 ? im_media_kind_parse(tv, (size_t)tl) : (enum im_media_kind)0;
    if (!kind) {
        rest_error(resp, IM_E_PARAM, "type: image, voice or file");
        return;
    }
    size_t ctl = 0;
    const char *ct = http_req_header(req, "Content-Type", &ctl);
    const char *bnd;
    size_t bl;
    int r = ct ? mp_boundary(ct, ctl, &bnd, &bl) : MP_ENOT_MULTIPART;
    if (r < 0) {
        answer(resp, 400, IM_E_PARAM, r == MP_ENOT_MULTIPART ? "Content-Type: multipart/form-data required"
                                                              : mp_strerror(r));
        return;
    }
    struct mp_part parts[MP_MAX_PARTS];
    size_t body_len;
    const char *body = rest_body(req, &body_len);
    int n = mp_parse((const uint8_t *)body, body_len, bnd, bl, parts, MP_MAX_PARTS, NULL);
    if (n < 0) {
        rest_error(resp, IM_E_PARAM, mp_strerror(n));
        return;
    }
    const struct mp_part *f = file_part(parts, (size_t)n);
    if (!f) {
        rest_error(resp, IM_E_PARAM, "no file part (curl -F \"filename=@path\")");
        return;
    }
    if (f->len > MEDIA_MAX_BYTES) {
        answer(resp, 413, IM_E_PARAM, "the file is larger than 8 MB");
        return;
    }
    /* The body lives in the connection's buffers only during this call: copy the file. */
    struct upload *u = calloc(1, sizeof *u);
    AU_ASSERT(u != NULL);
    u->kind = kind;
    u->type = kind == IM_MEDIA_IMAGE ? MEDIA_IMAGE : kind == IM_MEDIA_VOICE ? MEDIA_VOICE : MEDIA_FILE;
    /* File name: at most twice the header block (ISO-8859-1 filename* doubles when made UTF-8). Cut
     * here to what an answer (and a msg_body) carries, so the stored and the answered names agree. */
    if (f->filename.present || f->filename_star.present) {
        size_t cap = 2 * f->headers_len + 1;
        char *raw = malloc(cap);
        AU_ASSERT(raw != NULL);
        ssize_t fl = mp_filename(f, raw, cap);
        if (fl >= 0) {
            media_fname_sanitize(raw, (size_t)fl, u->fname, sizeof u->fname);
            u->has_name = true;
        }
        free(raw);
    }
    size_t cl = f->content_type_len < sizeof u->ctype ? f->content_type_len : sizeof u->ctype - 1;
    if (cl) memcpy(u->ctype, f->content_type, cl);
    u->ctype[cl] = 0;
    u->has_ctype = cl > 0;
    u->len = f->len;
    u->data = malloc(f->len ? f->len : 1);
    AU_ASSERT(u->data != NULL);
    if (f->len) memcpy(u->data, f->data, f->len);
    rest_defer(&u->a, &c, resp);
    when_started(c.s, upload_go, u);
}

/* ------------------------------------------------------------------ GET /v1/resource */

struct link {
    struct rest_async a;       /* first */
    char id[MEDIA_ID_MAX];
    char base[sizeof "https://" + REST_MEDIA_HOST_MAX];  /* scheme://host */
};

static void link_checked(struct au_shard *s, void *arg, int err, const struct media_info *info, struct au_buf *bytes)
{
    (void)info;
    AU_ASSERT(bytes == NULL);
    struct link *l = arg;
    if (!s) {
        free(l);
        return;
    }
    if (err) {
        finish_error(&l->a, media_status(err), media_code(err), err == MEDIA_ENOT_FOUND ? "media not found"
                                                                                         : media_strerror(err));
    } else {
        uint64_t expires = au_wall_ms() / 1000 + REST_MEDIA_URL_TTL_S;
        char sig[SIG_HEX_LEN + 1], url[REST_MEDIA_URL_MAX], buf[2 * REST_MEDIA_URL_MAX + 32];
        link_sig(l->id, l->a.app, expires, sig);
        int un = snprintf(url, sizeof url, "%s/v1/resource/raw?mediaId=%s&app=%u&expires=%llu&sig=%s", l->base, l->id,
                          l->a.app, (unsigned long long)expires, sig);
        AU_ASSERT(un > 0 && (size_t)un < sizeof url);
        size_t n = im_media_url_render(url, buf, sizeof buf);
        AU_ASSERT(n < sizeof buf);
        rest_finish_json(&l->a, 200, buf, n);
    }
    free(l);
}

static void link_go(struct au_shard *s, void *arg)
{
    struct link *l = arg;
    media_get_async(g_ms, g_io, s->id, l->a.app, l->id, strlen(l->id), 0, link_checked, l);
}

static void link_owned(struct au_shard *s, void *arg, int err, const void *v, size_t vl)
{
    (void)v;
    (void)vl;
    struct link *l = arg;
    if (err == STORE_ENOTFOUND) {
        finish_error(&l->a, 404, IM_E_PARAM, "media not found");
    } else if (err) {
        finish_error(&l->a, 500, IM_E_SYSTEM, NULL);
    } else if (detached(s)) {
        finish_error(&l->a, 503, IM_E_BUSY, NULL);
    } else {
        when_started(s, link_go, l); /* the record says the app uploaded it; the files must still be there */
        return;
    }
    free(l);
}

/* scheme://Host of this request ("http" on plain TCP). A missing or odd Host falls back to http_listen. */
static void link_base(const struct http_req *req, char *out, size_t cap)
{
    struct au_conn *conn = req->conn->io; /* gateway connections: io is the au_conn (http_gw.c) */
    const char *scheme = au_conn_secure(conn) ? "https" : "http";
    size_t hl = 0;
    const char *h = http_req_header(req, "Host", &hl);
    bool ok = h && hl > 0 && hl <= REST_MEDIA_HOST_MAX;
    for (size_t i = 0; ok && i < hl; i++) {
        unsigned char ch = (unsigned char)h[i];
        ok = isalnum(ch) || ch == '.' || ch == '-' || ch == ':' || ch == '[' || ch == ']' || ch == '_';
    }
    if (!ok) {
        h = g_cfg->http_listen;
        hl = strnlen(h, REST_MEDIA_HOST_MAX);
    }
    int n = snprintf(out, cap, "%s://%.*s", scheme, (int)hl, h);
    AU_ASSERT(n > 0 && (size_t)n < cap);
}

static void get_resource(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct rest_ctx c;
    if (!rest_auth(req, resp, ctx, &c)) return;
    struct link *l = calloc(1, sizeof *l);
    AU_ASSERT(l != NULL);
    char hex[MEDIA_HEX_LEN + 1];
    enum media_type type;
    int r = query_media_id(req, l->id, hex, &type);
    if (r < 0) {
        rest_error(resp, IM_E_PARAM, r == -1 ? "mediaId: required" : "mediaId: not a media id of this server");
        free(l);
        return;
    }
    link_base(req, l->base, sizeof l->base);
    rest_defer(&l->a, &c, resp);
    uint8_t key[KS_KEY_MAX];
    store_get(rest_store(), c.s->id, key, ks_im_media(key, c.app, l->id, strlen(l->id)), link_owned, l);
}

/* ------------------------------------------------------------------ GET /v1/resource/raw */

struct raw {
    struct rest_async a;       /* first */
    char id[MEDIA_ID_MAX];
    char hex[MEDIA_HEX_LEN + 1];
    enum media_type type;
    bool not_modified;         /* If-None-Match named this content */
    char fname[MEDIA_FNAME_MAX];
};

/* attr-char of RFC 8187 (what needs no percent-encoding in filename*). */
static bool attr_char(unsigned char c)
{
    return isalnum(c) || (c && strchr("!#$&+-.^_`|~", c));
}

/* "attachment; filename*=UTF-8''<pct-encoded name>", the name cut at a character boundary to fit. */
static void disposition(const char *fname, char *out, size_t cap)
{
    static const char hx[] = "0123456789ABCDEF";
    static const char head[] = "attachment; filename*=UTF-8''";
    AU_ASSERT(cap > sizeof head + REST_MEDIA_DISP_NAME_MAX);
    if (!fname[0]) {
        memcpy(out, "attachment", sizeof "attachment");
        return;
    }
    memcpy(out, head, sizeof head - 1);
    size_t o = sizeof head - 1, lim = o + REST_MEDIA_DISP_NAME_MAX;
    const unsigned char *p = (const unsigned char *)fname;
    while (*p) {
        size_t seq = *p < 0x80 ? 1 : *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : 2; /* the name is valid UTF-8 */
        size_t need = 0;
        for (size_t i = 0; i < seq && p[i]; i++) need += attr_char(p[i]) ? 1 : 3;
        if (o + need > lim) break;
        for (size_t i = 0; i < seq && *p; i++, p++) {
            if (attr_char(*p)) {
                out[o++] = (char)*p;
            } else {
                out[o++] = '%';
                out[o++] = hx[*p >> 4];
                out[o++] = hx[*p & 15];
            }
        }
    }
    out[o] = 0;
}

/* Served content type: the sniffed format's; else an uploaded audio/video type; else octet-stream (an
 * uploaded text/html or image/svg+xml would run script on the gateway's origin). */
static const char *raw_ctype(const struct media_info *info)
{
    const char *mime = media_format_mime(info->format);
    if (mime) return mime;
    const char *ct = info->content_type;
    if (strncasecmp(ct, "audio/", 6) == 0 || strncasecmp(ct, "video/", 6) == 0) return ct;
    return "application/octet-stream";
}

static void raw_headers(struct http_resp *r, const struct raw *w)
{
    char etag[MEDIA_HEX_LEN + 3];
    snprintf(etag, sizeof etag, "\"%s\"", w->hex);
    http_resp_header(r, "ETag", etag);
    http_resp_header(r, "Cache-Control", "public, max-age=31536000, immutable");
    http_resp_header(r, "X-Content-Type-Options", "nosniff");
}

static void raw_data(struct au_shard *s, void *arg, int err, const struct media_info *info, struct au_buf *bytes)
{
    struct raw *w = arg;
    if (!s) {
        if (bytes) au_buf_unref(bytes);
        free(w);
        return;
    }
    if (err) {
        if (bytes) au_buf_unref(bytes);
        finish_error(&w->a, media_status(err), media_code(err),
                     err == MEDIA_ENOT_FOUND ? "media not found" : media_strerror(err));
        free(w);
        return;
    }
    AU_ASSERT(bytes != NULL && bytes->len == info->fsize);
    struct http_resp *r = http_gw_defer_resp(w->a.defer);
    if (r) {
        http_resp_status(r, 200);
        if (http_resp_header(r, "Content-Type", raw_ctype(info)) != 0)
            http_resp_header(r, "Content-Type", "application/octet-stream");
        raw_headers(r, w);
        if (w->type == MEDIA_FILE) {
            char disp[sizeof "attachment; filename*=UTF-8''" + REST_MEDIA_DISP_NAME_MAX + 1];
            disposition(w->fname, disp, sizeof disp);
            http_resp_header(r, "Content-Disposition", disp);
        }
        /* No copy here; the connection's send queue copies it once (au_conn_write) when it is sent. */
        http_resp_body_ref(r, bytes->data, bytes->len);
    }
    http_gw_defer_finish(w->a.defer); /* writes the response now: we are not inside the handler */
    au_buf_unref(bytes);
    free(w);
}

static void raw_go(struct au_shard *s, void *arg)
{
    struct raw *w = arg;
    media_get_async(g_ms, g_io, s->id, w->a.app, w->id, strlen(w->id), MEDIA_GET_DATA | MEDIA_GET_VERIFY, raw_data, w);
}

static void raw_owned(struct au_shard *s, void *arg, int err, const void *v, size_t vl)
{
    struct raw *w = arg;
    if (err == STORE_ENOTFOUND) {
        finish_error(&w->a, 404, IM_E_PARAM, "media not found");
    } else if (err) {
        finish_error(&w->a, 500, IM_E_SYSTEM, NULL);
    } else if (w->not_modified) {
        struct http_resp *r = http_gw_defer_resp(w->a.defer);
        if (r) {
            http_resp_status(r, 304);
            raw_headers(r, w);
        }
        http_gw_defer_finish(w->a.defer);
    } else if (detached(s)) {
        finish_error(&w->a, 503, IM_E_BUSY, NULL);
    } else {
        json_t *rec = json_loadb(v, vl, 0, NULL);
        snprintf(w->fname, sizeof w->fname, "%s", rest_json_str(rec, "fname"));
        json_decref(rec);
        when_started(s, raw_go, w);
        return;
    }
    free(w);
}

/* If-None-Match lists "<hex>" (or W/"<hex>", or is *). */
static bool etag_matches(const struct http_req *req, const char *hex)
{
    size_t hl = 0;
    const char *h = http_req_header(req, "If-None-Match", &hl);
    if (!h) return false;
    if (hl == 1 && h[0] == '*') return true;
    for (size_t i = 0; i + MEDIA_HEX_LEN + 2 <= hl; i++)
        if (h[i] == '"' && h[i + MEDIA_HEX_LEN + 1] == '"' && strncasecmp(h + i + 1, hex, MEDIA_HEX_LEN) == 0)
            return true;
    return false;
}

static void get_raw(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct au_shard *s = ctx;
    struct raw *w = calloc(1, sizeof *w);
    AU_ASSERT(w != NULL);
    uint64_t app = 0, expires = 0;
    char sig[SIG_HEX_LEN + 2];
    int ri = query_media_id(req, w->id, w->hex, &w->type);
    ssize_t sl = req->query ? http_query_get(req->query, req->query_len, "sig", sig, sizeof sig) : -1;
    if (ri < 0 || rest_query_u64(req, "app", UINT32_MAX, &app) != 1 ||
        rest_query_u64(req, "expires", INT64_MAX, &expires) != 1 || sl != SIG_HEX_LEN) {
        answer(resp, 400, IM_E_PARAM, "a media link needs mediaId, app, expires and sig");
        free(w);
        return;
    }
    char want[SIG_HEX_LEN + 1];
    link_sig(w->id, (uint32_t)app, expires, want);
    if (CRYPTO_memcmp(want, sig, SIG_HEX_LEN) != 0) {
        answer(resp, 403, IM_E_AUTH_FAILED, "media link signature invalid");
        free(w);
        return;
    }
    if (expires < au_wall_ms() / 1000) {
        answer(resp, 403, IM_E_AUTH_FAILED, "media link expired");
        free(w);
        return;
    }
    w->not_modified = etag_matches(req, w->hex);
    struct rest_ctx c = { .s = s, .app = (uint32_t)app };
    rest_defer(&w->a, &c, resp);
    uint8_t key[KS_KEY_MAX];
    store_get(rest_store(), s->id, key, ks_im_media(key, (uint32_t)app, w->id, strlen(w->id)), raw_owned, w);
}

/* ------------------------------------------------------------------ start-up */

int rest_media_init(const struct au_config *cfg, char *err, size_t errlen)
{
    AU_ASSERT(g_ms == NULL);
    g_cfg = cfg;
    if (key_load(cfg->data_dir, err, errlen) != 0) return -1;
    if (media_open(&g_ms, cfg->data_dir, err, errlen) != 0) return -1;
    g_io = iopool_new(REST_MEDIA_WORKERS);
    return 0;
}

static const struct http_route_def routes[] = {
    { "POST", "/v1/resource", post_resource },
    { "GET", "/v1/resource", get_resource },
    { "GET", "/v1/resource/raw", get_raw },
};
const struct http_routes rest_media_routes = { routes, AU_ARRAY_LEN(routes) };

unsigned rest_media_threads(void) { return iopool_threads(g_io); }

void rest_media_start(struct au_shard **shards, int n, int ext_base)
{
    iopool_start(g_io, shards, n, ext_base);
    atomic_store_explicit(&g_started, true, memory_order_release);
}

void rest_media_shard_detach(struct au_shard *s)
{
    if (!g_io) return; /* media not set up in this process (tests, tools) */
    AU_ASSERT(s->id >= 0 && s->id < AU_MAX_SHARDS);
    g_detached[s->id] = true;
    iopool_shard_detach(g_io, s->id);
}

void rest_media_stop(void)
{
    if (!g_io) return;
    iopool_close(g_io);
    g_io = NULL;
    media_close(g_ms);
    g_ms = NULL;
    OPENSSL_cleanse(g_key, sizeof g_key);
}
