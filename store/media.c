/* media.c - media files under <data>/media (see media.h and docs/media.md).
 *
 * Every function here except the *_async submitters blocks on the file system and runs on an
 * iopool worker (or a tool / test thread), never on an event-loop shard. All paths are relative
 * to one directory descriptor (<data>/media) opened at start, so no path is ever longer than
 * "a0000002a/ab/." + 32 hex + ".meta". Items are stored per app (a<app>/<h0h1>/): one app's upload neither
 * finds nor reveals another app's copy of the same bytes. */
#include "store/media.h"
#include "store/iopool.h"
#include "core/buf.h"
#include "core/log.h"

#define XXH_INLINE_ALL
#include <xxhash.h>
#include <jansson.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define META_SUFFIX  ".meta"
#define META_VERSION 1
#define VERIFY_CHUNK (64u << 10)  /* bytes read per pread when verifying through an fd */

_Static_assert(MEDIA_MAX_BYTES <= UINT32_MAX, "au_buf lengths are 32 bit");
_Static_assert(MEDIA_MAX_BYTES + (64u << 10) <= AU_HTTP_MAX_BODY, "an 8 MB upload plus multipart framing must fit a body");
_Static_assert(sizeof MEDIA_ID_PREFIX - 1 + 5 + 1 + MEDIA_HEX_LEN + 1 <= MEDIA_ID_MAX, "id buffer too small");

struct media_store {
    int root_fd;                 /* <data>/media */
    atomic_uint tmp_seq;
    atomic_uint_fast64_t puts, put_dedup, put_bytes, put_errors, gets, get_bytes, get_errors, corrupt;
};

#define STAT_ADD(m, f, n) atomic_fetch_add_explicit(&(m)->f, (n), memory_order_relaxed)

const char *media_strerror(int err)
{
    switch (err) {
    case MEDIA_OK: return "ok";
    case MEDIA_ETOO_LARGE: return "media too large";
    case MEDIA_ENOT_IMAGE: return "not a supported image";
    case MEDIA_EBAD_ID: return "bad media id";
    case MEDIA_ENOT_FOUND: return "no such media";
    case MEDIA_ECORRUPT: return "media corrupt";
    case MEDIA_EIO: return "media i/o error";
    case MEDIA_ECANCELED: return "media operation canceled";
    default: return "unknown media error";
    }
}

/* ------------------------------------------------------------------ open / sweep */

/* Remove the temp files of one "<h0h1>" directory. */
static unsigned sweep_sub(int dfd)
{
    unsigned removed = 0;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return 0;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' && n > 5 && strcmp(e->d_name + n - 4, ".tmp") == 0 && unlinkat(dirfd(d), e->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}

static bool is_sub_name(const char *n)
{
    return strlen(n) == 2 && isxdigit((unsigned char)n[0]) && isxdigit((unsigned char)n[1]);
}

/* An app's directory: "a" and 8 lowercase hex digits of the app id. */
static bool is_app_name(const char *n)
{
    if (strlen(n) != 1 + 8 || n[0] != 'a') return false;
    for (int i = 1; i < 9; i++)
        if (!isxdigit((unsigned char)n[i])) return false;
    return true;
}

/* Every "<h0h1>" under dir_fd (the media root: items stored before per-app scoping; or an app's directory). */
static unsigned sweep_subs(int dir_fd)
{
    unsigned removed = 0;
    int fd = dup(dir_fd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) close(fd);
        return 0;
    }
    rewinddir(d); /* a dup shares the position of dir_fd, which an earlier walk left at the end */
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_sub_name(e->d_name)) continue;
        int sfd = openat(dir_fd, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (sfd >= 0) removed += sweep_sub(sfd);
    }
    closedir(d);
    return removed;
}

static unsigned sweep_tmp(int root_fd)
{
    unsigned removed = sweep_subs(root_fd);
    int fd = dup(root_fd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) close(fd);
        return removed;
    }
    rewinddir(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_app_name(e->d_name)) continue;
        int afd = openat(root_fd, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (afd < 0) continue;
        removed += sweep_subs(afd);
        close(afd);
    }
    closedir(d);
    return removed;
}

int media_open(struct media_store **out, const char *data_dir, char *err, size_t errlen)
{
    if (mkdir(data_dir, 0755) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "mkdir %s: %s", data_dir, strerror(errno));
        return -1;
    }
    int dfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        snprintf(err, errlen, "open %s: %s", data_dir, strerror(errno));
        return -1;
    }
    if (mkdirat(dfd, "media", 0755) == 0) {
        (void)fsync(dfd);
    } else if (errno != EEXIST) {
        snprintf(err, errlen, "mkdir %s/media: %s", data_dir, strerror(errno));
        close(dfd);
        return -1;
    }
    int root = openat(dfd, "media", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int e = errno;
    close(dfd);
    if (root < 0) {
        snprintf(err, errlen, "open %s/media: %s", data_dir, strerror(e));
        return -1;
    }
    struct media_store *m = calloc(1, sizeof *m);
    AU_ASSERT(m != NULL);
    m->root_fd = root;
    unsigned swept = sweep_tmp(root);
    if (swept) au_info("media: removed %u unfinished temp files", swept);
    *out = m;
    return 0;
}

void media_close(struct media_store *m)
{
    if (!m) return;
    close(m->root_fd);
    free(m);
}

void media_get_stats(const struct media_store *m, struct media_stats *o)
{
    struct media_store *w = (struct media_store *)m;
    o->puts = atomic_load_explicit(&w->puts, memory_order_relaxed);
    o->put_dedup = atomic_load_explicit(&w->put_dedup, memory_order_relaxed);
    o->put_bytes = atomic_load_explicit(&w->put_bytes, memory_order_relaxed);
    o->put_errors = atomic_load_explicit(&w->put_errors, memory_order_relaxed);
    o->gets = atomic_load_explicit(&w->gets, memory_order_relaxed);
    o->get_bytes = atomic_load_explicit(&w->get_bytes, memory_order_relaxed);
    o->get_errors = atomic_load_explicit(&w->get_errors, memory_order_relaxed);
    o->corrupt = atomic_load_explicit(&w->corrupt, memory_order_relaxed);
}

/* ------------------------------------------------------------------ small helpers */

static void hex_of_digest(const void *data, size_t len, char hex[MEDIA_HEX_LEN + 1])
{
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits(data, len));
    static const char dig[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        hex[2 * i] = dig[c.digest[i] >> 4];
        hex[2 * i + 1] = dig[c.digest[i] & 15];
    }
    hex[MEDIA_HEX_LEN] = 0;
}

static void make_id(struct media_info *in)
{
    snprintf(in->id, sizeof in->id, "%s%s/%s", MEDIA_ID_PREFIX, media_type_name(in->type), in->hex);
}

/* Printable ASCII only, trimmed, cut to fit. */
static void ctype_sanitize(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    if (in)
        for (const char *p = in; *p && o + 1 < cap; p++)
            if (*p >= 0x20 && *p < 0x7f && !(o == 0 && *p == ' ')) out[o++] = *p;
    while (o && out[o - 1] == ' ') o--;
    out[o] = 0;
}

static int write_all(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static ssize_t pread_all(int fd, void *buf, size_t len, off_t off)
{
    uint8_t *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, p + got, len - got, off + (off_t)got);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Write dfd/name atomically: temp file in the same directory, fsync, rename, fsync directory. */
static int write_atomic(struct media_store *m, int dfd, const char *name, const void *data, size_t len)
{
    char tmp[MEDIA_HEX_LEN + 48];
    unsigned seq = atomic_fetch_add_explicit(&m->tmp_seq, 1, memory_order_relaxed);
    snprintf(tmp, sizeof tmp, ".%s.%d.%u.tmp", name, (int)getpid(), seq);
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        au_warn("media: create %s: %s", tmp, strerror(errno));
        return MEDIA_EIO;
    }
    if (write_all(fd, data, len) < 0 || fsync(fd) < 0) {
        au_warn("media: write %s: %s", tmp, strerror(errno));
        close(fd);
        unlinkat(dfd, tmp, 0);
        return MEDIA_EIO;
    }
    if (close(fd) < 0 || renameat(dfd, tmp, dfd, name) < 0) {
        au_warn("media: rename %s: %s", tmp, strerror(errno));
        unlinkat(dfd, tmp, 0);
        return MEDIA_EIO;
    }
    if (fsync(dfd) < 0) {
        au_warn("media: fsync dir: %s", strerror(errno));
        return MEDIA_EIO;
    }
    return MEDIA_OK;
}

/* ------------------------------------------------------------------ sidecar */

static int meta_encode(const struct media_info *in, char *buf, size_t cap, size_t *len)
{
    json_t *o = json_pack("{s:i, s:I, s:I, s:s, s:I, s:I, s:I, s:s, s:s}", "v", META_VERSION, "fsize",
                          (json_int_t)in->fsize, "crc32", (json_int_t)in->crc32, "format",
                          media_format_name(in->format), "width", (json_int_t)in->width, "height",
                          (json_int_t)in->height, "ctime", (json_int_t)in->ctime_ms, "fname", in->fname,
                          "content_type", in->content_type);
    if (!o) return MEDIA_EIO; /* strings are sanitised: cannot fail but for OOM */
    size_t n = json_dumpb(o, buf, cap, JSON_COMPACT);
    json_decref(o);
    if (n == 0 || n > cap) return MEDIA_EIO;
    *len = n;
    return MEDIA_OK;
}

/* Read <sub>/<hex>.meta into in (content fields, fname, content_type). MEDIA_ENOT_FOUND when
 * absent, MEDIA_ECORRUPT when unreadable as ours. */
static int meta_read(struct media_store *m, int dfd, const char *hex, struct media_info *in)
{
    char name[MEDIA_HEX_LEN + sizeof META_SUFFIX];
    snprintf(name, sizeof name, "%s%s", hex, META_SUFFIX);
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return MEDIA_ENOT_FOUND;
        au_warn("media: open %s: %s", name, strerror(errno));
        return MEDIA_EIO;
    }
    char buf[MEDIA_META_MAX + 1];
    ssize_t n = pread_all(fd, buf, sizeof buf, 0);
    close(fd);
    if (n < 0) {
        au_warn("media: read %s: %s", name, strerror(errno));
        return MEDIA_EIO;
    }
    if ((size_t)n > MEDIA_META_MAX) return MEDIA_ECORRUPT;
    json_error_t jerr;
    json_t *o = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
    if (!o) return MEDIA_ECORRUPT;
    json_int_t v, fsize, crc, w, h, ctime;
    const char *fmt, *fname, *ctype;
    int r = json_unpack(o, "{s:I, s:I, s:I, s:s, s:I, s:I, s:I, s:s, s:s}", "v", &v, "fsize", &fsize, "crc32", &crc,
                        "format", &fmt, "width", &w, "height", &h, "ctime", &ctime, "fname", &fname,
                        "content_type", &ctype);
    int f = r == 0 ? media_format_parse(fmt) : -1;
    if (r != 0 || v != META_VERSION || fsize < 0 || fsize > MEDIA_MAX_BYTES || crc < 0 || crc > UINT32_MAX || w < 0 ||
        w > UINT32_MAX || h < 0 || h > UINT32_MAX || ctime < 0 || f < 0) {
        json_decref(o);
        return MEDIA_ECORRUPT;
    }
    in->fsize = (uint64_t)fsize;
    in->crc32 = (uint32_t)crc;
    in->format = (enum media_format)f;
    in->width = (uint32_t)w;
    in->height = (uint32_t)h;
    in->ctime_ms = (uint64_t)ctime;
    media_fname_sanitize(fname, strlen(fname), in->fname, sizeof in->fname);
    ctype_sanitize(ctype, in->content_type, sizeof in->content_type);
    json_decref(o);
    return MEDIA_OK;
}

/* mkdirat + fsync of the parent when it was created; then open it. -1 with errno on failure. */
static int open_dir_at(int parent, const char *name, bool create)
{
    int dfd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0 || errno != ENOENT || !create) return dfd;
    if (mkdirat(parent, name, 0755) == 0) {
        if (fsync(parent) < 0) au_warn("media: fsync dir: %s", strerror(errno));
    } else if (errno != EEXIST) {
        return -1;
    }
    return openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* The directory of an item: <media>/a<app 8 hex>/<h0h1>, or (legacy: stored before per-app scoping, app
 * MEDIA_APP_LEGACY) <media>/<h0h1>. */
static int open_subdir(struct media_store *m, uint32_t app, const char *hex, bool create)
{
    char sub[3] = { hex[0], hex[1], 0 };
    if (app == MEDIA_APP_LEGACY) return open_dir_at(m->root_fd, sub, create);
    char an[16];
    snprintf(an, sizeof an, "a%08x", (unsigned)app);
    int afd = open_dir_at(m->root_fd, an, create);
    if (afd < 0) return -1;
    int dfd = open_dir_at(afd, sub, create);
    int e = errno;
    close(afd);
    errno = e;
    return dfd;
}

/* ------------------------------------------------------------------ put */

/* Does dfd/name hold exactly data[0..len)? (A dedup hit reads the stored copy once.) */
static bool same_bytes(int dfd, const char *name, const uint8_t *data, size_t len)
{
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat sb;
    bool same = fstat(fd, &sb) == 0 && (uint64_t)sb.st_size == len;
    uint8_t chunk[VERIFY_CHUNK];
    for (size_t off = 0; same && off < len;) {
        size_t want = AU_MIN(sizeof chunk, len - off);
        ssize_t n = pread_all(fd, chunk, want, (off_t)off);
        same = n == (ssize_t)want && memcmp(chunk, data + off, want) == 0;
        off += want;
    }
    close(fd);
    return same;
}

int media_put(struct media_store *m, uint32_t app, enum media_type type, const void *data, size_t len,
              const char *fname, const char *content_type, struct media_info *out)
{
    AU_ASSERT(app != MEDIA_APP_LEGACY);
    AU_ASSERT((unsigned)type <= MEDIA_FILE && (data != NULL || len == 0));
    memset(out, 0, sizeof *out);
    STAT_ADD(m, puts, 1);
    if (len > MEDIA_MAX_BYTES) {
        STAT_ADD(m, put_errors, 1);
        return MEDIA_ETOO_LARGE;
    }
    struct media_sniff sn;
    media_sniff(data, len, &sn);
    if (type == MEDIA_IMAGE && !media_format_is_image(sn.format)) {
        STAT_ADD(m, put_errors, 1);
        return MEDIA_ENOT_IMAGE;
    }
    out->type = type;
    out->format = sn.format;
    out->width = sn.width;
    out->height = sn.height;
    out->fsize = len;
    out->crc32 = media_crc32(0, data, len);
    hex_of_digest(data, len, out->hex);
    make_id(out);
    out->ctime_ms = au_wall_ms();
    media_fname_sanitize(fname, fname ? strlen(fname) : 0, out->fname, sizeof out->fname);
    ctype_sanitize(content_type, out->content_type, sizeof out->content_type);

    int dfd = open_subdir(m, app, out->hex, true);
    if (dfd < 0) {
        au_warn("media: subdir for %s: %s", out->hex, strerror(errno));
        STAT_ADD(m, put_errors, 1);
        return MEDIA_EIO;
    }
    /* Already stored (committed sidecar that agrees, and the stored bytes are these bytes)? Then
     * nothing is written; anything else (no sidecar, damaged bytes) is rewritten, which repairs it. */
    struct media_info st;
    memset(&st, 0, sizeof st);
    if (meta_read(m, dfd, out->hex, &st) == MEDIA_OK && st.fsize == len && st.crc32 == out->crc32 &&
        same_bytes(dfd, out->hex, data, len)) {
        close(dfd);
        out->ctime_ms = st.ctime_ms;
        out->existed = true;
        STAT_ADD(m, put_dedup, 1);
        return MEDIA_OK;
    }
    /* Bytes first, then the sidecar that commits them. A crash in between leaves bytes without a
     * sidecar: invisible to media_get, rewritten by the next put of the same bytes. */
    int r = write_atomic(m, dfd, out->hex, data, len);
    if (r == MEDIA_OK) {
        char meta[MEDIA_META_MAX];
        size_t mlen;
        char name[MEDIA_HEX_LEN + sizeof META_SUFFIX];
        snprintf(name, sizeof name, "%s%s", out->hex, META_SUFFIX);
        r = meta_encode(out, meta, sizeof meta, &mlen);
        if (r == MEDIA_OK) r = write_atomic(m, dfd, name, meta, mlen);
    }
    close(dfd);
    if (r != MEDIA_OK) {
        STAT_ADD(m, put_errors, 1);
        return r;
    }
    STAT_ADD(m, put_bytes, len);
    return MEDIA_OK;
}

/* ------------------------------------------------------------------ get */

static int get_impl(struct media_store *m, uint32_t app, const char *id, size_t id_len, unsigned flags,
                    struct media_info *out, int *fd_out, struct au_buf **data_out)
{
    memset(out, 0, sizeof *out);
    if (fd_out) *fd_out = -1;
    if (data_out) *data_out = NULL;
    enum media_type type;
    if (media_id_parse(id, id_len, &type, out->hex) != 0) return MEDIA_EBAD_ID;
    out->type = type;
    make_id(out);
    /* The app's own copy; failing that one stored before per-app scoping (whose uploader is unknown: the caller
     * decides who may read it, as it decides for everything else). */
    int r = MEDIA_ENOT_FOUND, dfd = -1;
    for (int pass = 0; pass < 2 && r == MEDIA_ENOT_FOUND; pass++) {
        if (dfd >= 0) close(dfd);
        dfd = open_subdir(m, pass ? MEDIA_APP_LEGACY : app, out->hex, false);
        if (dfd < 0) r = errno == ENOENT ? MEDIA_ENOT_FOUND : MEDIA_EIO;
        else r = meta_read(m, dfd, out->hex, out);
    }
    if (r != MEDIA_OK) {
        if (dfd >= 0) close(dfd);
        if (r == MEDIA_ECORRUPT) au_warn("media: %s: bad sidecar", out->id);
        return r;
    }
    if (type == MEDIA_IMAGE && !media_format_is_image(out->format)) {
        close(dfd);
        return MEDIA_ENOT_FOUND;
    }
    if (!media_format_is_image(out->format)) out->width = out->height = 0;
    int fd = openat(dfd, out->hex, O_RDONLY | O_CLOEXEC);
    int e = errno;
    close(dfd);
    if (fd < 0) {
        au_warn("media: %s: bytes missing: %s", out->id, strerror(e));
        return e == ENOENT ? MEDIA_ECORRUPT : MEDIA_EIO;
    }
    struct stat sb;
    if (fstat(fd, &sb) < 0 || (uint64_t)sb.st_size != out->fsize) {
        au_warn("media: %s: size %lld, sidecar says %llu", out->id, (long long)sb.st_size,
                (unsigned long long)out->fsize);
        close(fd);
        return MEDIA_ECORRUPT;
    }
    struct au_buf *b = NULL;
    uint32_t crc = 0;
    if (data_out) {
        b = au_buf_new((uint32_t)out->fsize);
        ssize_t n = pread_all(fd, b->data, out->fsize, 0);
        if (n < 0 || (uint64_t)n != out->fsize) {
            au_warn("media: %s: read: %s", out->id, n < 0 ? strerror(errno) : "short");
            au_buf_unref(b);
            close(fd);
            return n < 0 ? MEDIA_EIO : MEDIA_ECORRUPT;
        }
        b->len = (uint32_t)n;
        if (flags & MEDIA_GET_VERIFY) crc = media_crc32(0, b->data, b->len);
    } else if (flags & MEDIA_GET_VERIFY) {
        uint8_t chunk[VERIFY_CHUNK];
        uint64_t off = 0;
        while (off < out->fsize) {
            size_t want = (size_t)AU_MIN((uint64_t)sizeof chunk, out->fsize - off);
            ssize_t n = pread_all(fd, chunk, want, (off_t)off);
            if (n < 0 || (size_t)n != want) {
                close(fd);
                return n < 0 ? MEDIA_EIO : MEDIA_ECORRUPT;
            }
            crc = media_crc32(crc, chunk, want);
            off += want;
        }
    }
    if ((flags & MEDIA_GET_VERIFY) && crc != out->crc32) {
        au_warn("media: %s: CRC32 %08x, sidecar says %08x", out->id, crc, out->crc32);
        if (b) au_buf_unref(b);
        close(fd);
        return MEDIA_ECORRUPT;
    }
    if (fd_out) *fd_out = fd;
    else close(fd);
    if (data_out) *data_out = b;
    return MEDIA_OK;
}

static int get_counted(struct media_store *m, uint32_t app, const char *id, size_t id_len, unsigned flags,
                       struct media_info *out, int *fd_out, struct au_buf **data_out)
{
    STAT_ADD(m, gets, 1);
    int r = get_impl(m, app, id, id_len, flags, out, fd_out, data_out);
    if (r == MEDIA_OK) STAT_ADD(m, get_bytes, data_out ? out->fsize : 0);
    else STAT_ADD(m, get_errors, 1);
    if (r == MEDIA_ECORRUPT) STAT_ADD(m, corrupt, 1);
    return r;
}

int media_get(struct media_store *m, uint32_t app, const char *id, size_t id_len, unsigned flags,
              struct media_info *out, int *fd)
{
    return get_counted(m, app, id, id_len, flags & MEDIA_GET_VERIFY, out, fd, NULL);
}

/* ------------------------------------------------------------------ asynchronous */

struct put_job {
    struct iopool_job job;        /* first: the pool's and the loop's message */
    struct media_store *m;
    uint32_t app;
    enum media_type type;
    const void *data;
    size_t len;
    media_put_fn cb;
    void *arg;
    int err;
    bool has_fname, has_ctype;
    char fname[MEDIA_FNAME_MAX];
    char ctype[MEDIA_CTYPE_MAX];
    struct media_info info;
};

static void put_work(struct iopool_job *jb)
{
    struct put_job *j = (struct put_job *)(void *)jb;
    j->err = media_put(j->m, j->app, j->type, j->data, j->len, j->has_fname ? j->fname : NULL, j->has_ctype ? j->ctype : NULL,
                       &j->info);
}

static void put_done(struct au_shard *s, struct iopool_job *jb)
{
    struct put_job *j = (struct put_job *)(void *)jb;
    if (s) j->cb(s, j->arg, j->err, j->err == MEDIA_OK ? &j->info : NULL);
    else j->cb(NULL, j->arg, MEDIA_ECANCELED, NULL);
    free(j);
}

void media_put_async(struct media_store *m, struct iopool *p, int shard, uint32_t app, enum media_type type,
                     const void *data, size_t len, const char *fname, const char *content_type, media_put_fn cb,
                     void *arg)
{
    AU_ASSERT(cb != NULL && app != MEDIA_APP_LEGACY);
    struct put_job *j = malloc(sizeof *j);
    AU_ASSERT(j != NULL);
    memset(&j->job, 0, sizeof j->job);
    j->job.work = put_work;
    j->job.done = put_done;
    j->m = m;
    j->app = app;
    j->type = type;
    j->data = data;
    j->len = len;
    j->cb = cb;
    j->arg = arg;
    j->err = MEDIA_EIO;
    j->has_fname = fname != NULL;
    j->has_ctype = content_type != NULL;
    j->fname[0] = j->ctype[0] = 0;
    if (fname) media_fname_sanitize(fname, strlen(fname), j->fname, sizeof j->fname);
    if (content_type) ctype_sanitize(content_type, j->ctype, sizeof j->ctype);
    iopool_submit(p, shard, &j->job);
}

struct get_job {
    struct iopool_job job;        /* first */
    struct media_store *m;
    uint32_t app;
    unsigned flags;
    int err;
    media_get_fn cb;
    void *arg;
    struct au_buf *bytes;
    size_t id_len;
    char id[MEDIA_ID_MAX];
    struct media_info info;
};

static void get_work(struct iopool_job *jb)
{
    struct get_job *j = (struct get_job *)(void *)jb;
    if (j->id_len >= sizeof j->id) {
        j->err = MEDIA_EBAD_ID;
        return;
    }
    j->err = get_counted(j->m, j->app, j->id, j->id_len, j->flags & MEDIA_GET_VERIFY, &j->info, NULL,
                         (j->flags & MEDIA_GET_DATA) ? &j->bytes : NULL);
}

static void get_done(struct au_shard *s, struct iopool_job *jb)
{
    struct get_job *j = (struct get_job *)(void *)jb;
    if (s) {
        j->cb(s, j->arg, j->err, j->err == MEDIA_OK ? &j->info : NULL, j->bytes);
    } else {
        if (j->bytes) au_buf_unref(j->bytes);
        j->cb(NULL, j->arg, MEDIA_ECANCELED, NULL, NULL);
    }
    free(j);
}

void media_get_async(struct media_store *m, struct iopool *p, int shard, uint32_t app, const char *id, size_t id_len,
                     unsigned flags, media_get_fn cb, void *arg)
{
    AU_ASSERT(cb != NULL);
    struct get_job *j = malloc(sizeof *j);
    AU_ASSERT(j != NULL);
    memset(&j->job, 0, sizeof j->job);
    j->job.work = get_work;
    j->job.done = get_done;
    j->m = m;
    j->app = app;
    j->flags = flags;
    j->err = MEDIA_EIO;
    j->cb = cb;
    j->arg = arg;
    j->bytes = NULL;
    j->id_len = id_len;
    if (id_len < sizeof j->id) memcpy(j->id, id, id_len);
    j->id[AU_MIN(id_len, sizeof j->id - 1)] = 0;
    iopool_submit(p, shard, &j->job);
}
