/* media.h - media files (images, voice, files) stored under the data directory.
 *
 * A media item is content-addressed: its id is "aurora/<type>/<32 hex>" where the hex is the
 * XXH3-128 digest of the bytes (canonical big-endian form, lowercase; the same as `xxhsum -H2`).
 * The same bytes always get the same id (uploads are deduplicated), and the id says which rules
 * the bytes passed (image: they sniff as PNG/JPEG/GIF/WebP/BMP with non-zero dimensions; voice and
 * file: any bytes). CRC32 (IEEE 802.3 / zlib polynomial) is computed on upload, stored, returned
 * to clients as media_crc32 and optionally re-checked on read. docs/media.md has the details.
 *
 * Items are kept per app: the same bytes uploaded by two apps are two items, each with its own
 * metadata (name, content type, time), and an upload only ever finds (deduplicates against) its own
 * app's copy, so neither its answer nor its timing says anything about another app's uploads.
 *
 * On disk (<data> = the configured data directory, <app> = "a" + the app id in 8 lowercase hex):
 *     <data>/media/<app>/<h0h1>/<32 hex>        the bytes, immutable once renamed into place
 *     <data>/media/<app>/<h0h1>/<32 hex>.meta   JSON sidecar, written after the bytes: its presence
 *                                               commits the item
 *     <data>/media/<app>/<h0h1>/.<32 hex>.<n>.tmp  a write in progress (swept by media_open)
 *     <data>/media/<h0h1>/...                   items stored before per-app scoping: read (never
 *                                               written) when the app has no copy of its own
 * Writes go to a temp file in the same directory, fsync, rename, fsync the directory.
 *
 * Threads: every function that touches files BLOCKS (open, write, fsync, read). On an event-loop
 * shard use the *_async versions: the work runs on an iopool worker and the callback runs on the
 * submitting shard. The synchronous versions are for tools, tests and start-up. The pure helpers
 * (media_sniff, media_crc32, media_id_*) never block.
 */
#ifndef AU_STORE_MEDIA_H
#define AU_STORE_MEDIA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct au_shard;
struct au_buf;
struct iopool;
struct media_store;

/* ---- limits ---- */
#define MEDIA_MAX_BYTES         (8u << 20)  /* one item (JMessage: 8 MB) */
#define MEDIA_FNAME_MAX         256         /* stored file name incl. NUL (longer names are cut at a UTF-8 boundary) */
#define MEDIA_CTYPE_MAX         128         /* stored content type incl. NUL */
#define MEDIA_META_MAX          4096        /* sidecar file size */
#define MEDIA_SNIFF_JPEG_SEGS   256         /* JPEG marker segments walked before giving up on SOF */
#define MEDIA_ID_PREFIX         "aurora/"
#define MEDIA_HEX_LEN           32          /* XXH3-128 digest in hex */
#define MEDIA_ID_MAX            48          /* "aurora/image/" + 32 hex + NUL, rounded up */
#define MEDIA_APP_LEGACY        UINT32_MAX  /* not an app: the unscoped items of older versions (read only) */

enum media_type { MEDIA_IMAGE = 0, MEDIA_VOICE = 1, MEDIA_FILE = 2 };

enum media_format {
    MEDIA_FMT_NONE = 0,
    /* images */
    MEDIA_FMT_PNG, MEDIA_FMT_JPEG, MEDIA_FMT_GIF, MEDIA_FMT_WEBP, MEDIA_FMT_BMP,
    /* audio (recorded for voice, so clients get a format; never required) */
    MEDIA_FMT_AMR, MEDIA_FMT_MP3, MEDIA_FMT_M4A, MEDIA_FMT_MP4, MEDIA_FMT_OGG, MEDIA_FMT_WAV, MEDIA_FMT_AAC,
    MEDIA_FMT_COUNT
};

/* Errors (negative). */
#define MEDIA_OK          0
#define MEDIA_ETOO_LARGE  (-1)   /* more than MEDIA_MAX_BYTES */
#define MEDIA_ENOT_IMAGE  (-2)   /* type image, but the bytes are no PNG/JPEG/GIF/WebP/BMP we can measure */
#define MEDIA_EBAD_ID     (-3)   /* not an "aurora/<type>/<32 hex>" id */
#define MEDIA_ENOT_FOUND  (-4)   /* no such item (or an image id for bytes that are not an image) */
#define MEDIA_ECORRUPT    (-5)   /* stored bytes or sidecar do not match (size, CRC32, JSON) */
#define MEDIA_EIO         (-6)   /* a file operation failed (logged with errno) */
#define MEDIA_ECANCELED   (-7)   /* async only: the pool shut down without the submitting shard */

struct media_info {
    char id[MEDIA_ID_MAX];          /* "aurora/image/0123...ef" */
    char hex[MEDIA_HEX_LEN + 1];    /* digest in hex (file name) */
    enum media_type type;
    enum media_format format;       /* sniffed; MEDIA_FMT_NONE when unknown */
    uint32_t crc32;
    uint32_t width, height;         /* images; 0 otherwise */
    uint64_t fsize;
    uint64_t ctime_ms;              /* wall clock when the bytes were first stored */
    char fname[MEDIA_FNAME_MAX];    /* sanitised file name ("" when none) */
    char content_type[MEDIA_CTYPE_MAX]; /* as uploaded, sanitised ("" when none) */
    bool existed;                   /* put: the bytes were already stored (deduplicated) */
};

/* ---- pure helpers ---- */

struct media_sniff {
    enum media_format format;
    uint32_t width, height;         /* images only; both > 0 when format is an image */
};
/* Recognise an image (with its dimensions) or an audio container from the first bytes.
 * Reads only p[0..len); a truncated or inconsistent header gives MEDIA_FMT_NONE. */
void media_sniff(const uint8_t *p, size_t len, struct media_sniff *out);
bool media_format_is_image(enum media_format f);
const char *media_format_name(enum media_format f);   /* "png", "jpg", ... ("" for none) */
const char *media_format_mime(enum media_format f);   /* "image/png", ... (NULL for none) */
int media_format_parse(const char *name);             /* enum media_format by name ("" = none), or -1 */
const char *media_type_name(enum media_type t);       /* "image" | "voice" | "file" */
int media_type_parse(const char *s, size_t len);      /* enum media_type, or -1 */

/* CRC32 (zlib's crc32(): reflected 0xEDB88320, init and final xor 0xffffffff). Chain with
 * crc = media_crc32(crc, p, n) starting from 0. */
uint32_t media_crc32(uint32_t crc, const void *p, size_t n);

/* Parse an id; fills type and hex (lowercased, NUL-terminated). Returns 0 or MEDIA_EBAD_ID.
 * Hex digits may be upper or lower case. */
int media_id_parse(const char *id, size_t len, enum media_type *type, char hex[MEDIA_HEX_LEN + 1]);

/* Sanitise a client file name into out (cap >= 1): the part after the last '/' or '\', control
 * bytes dropped, invalid UTF-8 bytes replaced by '_', cut at a character boundary to fit.
 * Returns the length. */
size_t media_fname_sanitize(const char *in, size_t len, char *out, size_t cap);

/* ---- the store ---- */

/* Open (creating <data_dir> and <data_dir>/media when missing) and remove temp files left by a
 * crash. Returns 0 or -1 with a message in err. */
int media_open(struct media_store **out, const char *data_dir, char *err, size_t errlen);
void media_close(struct media_store *m);

/* Store bytes for `app` (synchronous, blocking). fname and content_type may be NULL. On success `out`
 * holds the item (existed = true when the app had the bytes already: nothing is rewritten, and the
 * stored metadata of the app's first upload is kept, but out->fname / content_type are this call's).
 * Errors: MEDIA_ETOO_LARGE, MEDIA_ENOT_IMAGE, MEDIA_EIO. */
int media_put(struct media_store *m, uint32_t app, enum media_type type, const void *data, size_t len,
              const char *fname, const char *content_type, struct media_info *out);

enum media_get_flags {
    MEDIA_GET_VERIFY = 1u << 0,     /* read the bytes and check size and CRC32 (MEDIA_ECORRUPT) */
};
/* Look up `app`'s item (synchronous, blocking); an app without its own copy gets one stored before
 * per-app scoping, if there is one. On success `out` holds its metadata and, when fd is not NULL,
 * *fd is an O_RDONLY descriptor of the bytes at offset 0 (the caller closes it).
 * Errors: MEDIA_EBAD_ID, MEDIA_ENOT_FOUND, MEDIA_ECORRUPT, MEDIA_EIO. */
int media_get(struct media_store *m, uint32_t app, const char *id, size_t id_len, unsigned flags,
              struct media_info *out, int *fd);

/* Stats (any thread; relaxed). */
struct media_stats {
    uint64_t puts, put_dedup, put_bytes, put_errors;
    uint64_t gets, get_bytes, get_errors, corrupt;
};
void media_get_stats(const struct media_store *m, struct media_stats *out);

/* ---- asynchronous (event-loop shards) ----
 * Called on shard `shard`'s thread; the work runs on an iopool worker; cb runs on that shard.
 * s == NULL in the callback (with err MEDIA_ECANCELED) means the pool shut down without the shard:
 * release `arg` only. */

/* data must stay valid and unchanged until cb runs (zero copy); fname / content_type are copied. */
typedef void (*media_put_fn)(struct au_shard *s, void *arg, int err, const struct media_info *info);
void media_put_async(struct media_store *m, struct iopool *p, int shard, uint32_t app, enum media_type type,
                     const void *data, size_t len, const char *fname, const char *content_type, media_put_fn cb,
                     void *arg);

/* With MEDIA_GET_DATA the bytes are read into `bytes` (one reference owned by the callback:
 * queue it with au_conn_write_buf and au_buf_unref it); else bytes is NULL (metadata only). */
enum { MEDIA_GET_DATA = 1u << 8 };
typedef void (*media_get_fn)(struct au_shard *s, void *arg, int err, const struct media_info *info,
                             struct au_buf *bytes);
void media_get_async(struct media_store *m, struct iopool *p, int shard, uint32_t app, const char *id, size_t id_len,
                     unsigned flags, media_get_fn cb, void *arg);

const char *media_strerror(int err);

#endif
