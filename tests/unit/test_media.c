/* test_media.c - store/media (sniffing, CRC32, ids, file names, put/get/dedup/corruption on a real
 * temp directory) and store/iopool (asynchronous puts and gets from 2 shards of the real event loop,
 * au_loop_start with 0 listeners, completions on the submitting shard, detach at shutdown).
 *   test_media            run the tests
 *   test_media --measure  also time CRC32 / XXH3-128 / put / get on 8 MB items */
#include "store/media.h"
#include "store/iopool.h"
#include "core/buf.h"
#include "core/common.h"
#include "core/log.h"
#include "core/loop.h"
#include "test.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static bool g_measure;

/* ------------------------------------------------------------------ helpers */

static char *mktmp(void)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/aurora-media.XXXXXX");
    char *p = mkdtemp(path);
    if (!p) abort();
    return strdup(p);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void rmtree(char *p)
{
    nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(p);
}

static struct media_store *open_media(const char *dir)
{
    char err[256] = "";
    struct media_store *m = NULL;
    if (media_open(&m, dir, err, sizeof err) != 0) printf("  media_open: %s\n", err);
    return m;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(rng() >> 24);
}

static uint32_t crc_ref(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

/* A minimal PNG head: signature + IHDR for w x h (24 bytes used by the sniffer, 33 with CRC). */
static size_t make_png(uint8_t *p, uint32_t w, uint32_t h)
{
    static const uint8_t sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
    memcpy(p, sig, 8);
    au_wr32(p + 8, 13);
    memcpy(p + 12, "IHDR", 4);
    au_wr32(p + 16, w);
    au_wr32(p + 20, h);
    p[24] = 8;
    p[25] = 2;
    p[26] = p[27] = p[28] = 0;
    au_wr32(p + 29, crc_ref(p + 12, 17));
    return 33;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------ sniffing */

struct sniff_case {
    const char *name;
    const uint8_t *p;
    size_t len;
    enum media_format f;
    uint32_t w, h;
};

/* JPEG: SOI, APP0 JFIF, a DHT (0xC4 must not be read as a frame), fill bytes, SOF0 320x240. */
static const uint8_t jpeg_baseline[] = {
    0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00,
    0x00, 0xff, 0xc4, 0x00, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xc0, 0x00, 0x11, 0x08, 0x00, 0xf0, 0x01,
    0x40, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01, 0xff, 0xda,
};
/* JPEG: SOI, APP1 "Exif", RSTn standalone marker, SOF2 (progressive) 1x65535. */
static const uint8_t jpeg_progressive[] = {
    0xff, 0xd8, 0xff, 0xe1, 0x00, 0x08, 'E', 'x', 'i', 'f', 0x00, 0x00, 0xff, 0xd3, 0xff, 0xc2, 0x00, 0x0b, 0x08,
    0xff, 0xff, 0x00, 0x01, 0x01, 0x01, 0x11, 0x00,
};
static const uint8_t jpeg_sos_first[] = { 0xff, 0xd8, 0xff, 0xda, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 0xff, 0xc0, 0x00,
                                          0x11, 0x08, 0x00, 0x10, 0x00, 0x10 };
static const uint8_t jpeg_truncated_sof[] = { 0xff, 0xd8, 0xff, 0xc0, 0x00, 0x11, 0x08, 0x00, 0xf0, 0x01 };
static const uint8_t jpeg_seglen_past_end[] = { 0xff, 0xd8, 0xff, 0xe0, 0x40, 0x00, 'J', 'F', 'I', 'F' };
static const uint8_t jpeg_zero_height[] = { 0xff, 0xd8, 0xff, 0xc0, 0x00, 0x11, 0x08, 0x00, 0x00, 0x01, 0x40, 0x03 };
static const uint8_t jpeg_garbage_marker[] = { 0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0, 0, 0x12, 0xc0, 0, 0x11, 8, 0, 1,
                                               0, 1 };
static const uint8_t gif89[] = { 'G', 'I', 'F', '8', '9', 'a', 0x0a, 0x00, 0x14, 0x00, 0xf7, 0x00, 0x00 };
static const uint8_t gif87[] = { 'G', 'I', 'F', '8', '7', 'a', 0x00, 0x01, 0x01, 0x00 };
static const uint8_t gif_zero[] = { 'G', 'I', 'F', '8', '9', 'a', 0x00, 0x00, 0x14, 0x00 };
static const uint8_t gif_bad_version[] = { 'G', 'I', 'F', '8', '8', 'a', 0x0a, 0x00, 0x14, 0x00 };
/* WebP lossy: RIFF size WEBP "VP8 " chunk size, frame tag (key frame), start code, 14-bit sizes. */
static const uint8_t webp_vp8[] = { 'R', 'I', 'F', 'F', 0x24, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P', '8', ' ',
                                    0x18, 0, 0, 0, 0x30, 0x01, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x41 };
/* lossless: 0x2f then (w-1) | (h-1) << 14: 400 x 301 */
static const uint8_t webp_vp8l[] = { 'R', 'I', 'F', 'F', 0x1a, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P', '8', 'L',
                                     0x0d, 0, 0, 0, 0x2f, 0x8f, 0x01, 0x4b, 0x00 };
static const uint8_t webp_vp8x[] = { 'R', 'I', 'F', 'F', 0x24, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P', '8', 'X',
                                     0x0a, 0, 0, 0, 0x10, 0, 0, 0, 0xff, 0x0f, 0x00, 0x37, 0x04, 0x00 };
static const uint8_t webp_vp8_not_key[] = { 'R', 'I', 'F', 'F', 0x24, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P', '8',
                                            ' ', 0x18, 0, 0, 0, 0x31, 0x01, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02,
                                            0xe0, 0x01 };
static const uint8_t webp_vp8l_badsig[] = { 'R', 'I', 'F', 'F', 0x1a, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P', '8',
                                            'L', 0x0d, 0, 0, 0, 0x2e, 0x8f, 0x01, 0x4b, 0x00 };
/* BMP: BITMAPINFOHEADER 640 x -480 (top-down), BITMAPCOREHEADER 16 x 9, an unknown header size */
static const uint8_t bmp_info[] = { 'B', 'M', 0x36, 0, 0, 0, 0, 0, 0, 0, 0x36, 0, 0, 0, 40, 0, 0, 0,
                                    0x80, 0x02, 0, 0, 0x20, 0xfe, 0xff, 0xff, 1, 0, 24, 0 };
static const uint8_t bmp_core[] = { 'B', 'M', 0x1a, 0, 0, 0, 0, 0, 0, 0, 0x1a, 0, 0, 0, 12, 0, 0, 0,
                                    16, 0, 9, 0, 1, 0, 24, 0 };
static const uint8_t bmp_bad_dib[] = { 'B', 'M', 0x1a, 0, 0, 0, 0, 0, 0, 0, 0x1a, 0, 0, 0, 13, 0, 0, 0,
                                       16, 0, 0, 0, 9, 0, 0, 0 };
static const uint8_t bmp_min_height[] = { 'B', 'M', 0x36, 0, 0, 0, 0, 0, 0, 0, 0x36, 0, 0, 0, 40, 0, 0, 0,
                                          1, 0, 0, 0, 0, 0, 0, 0x80 };
/* audio */
static const uint8_t amr[] = { '#', '!', 'A', 'M', 'R', '\n', 0x3c, 0x48 };
static const uint8_t amr_wb[] = { '#', '!', 'A', 'M', 'R', '-', 'W', 'B', '\n', 0x04 };
static const uint8_t m4a[] = { 0, 0, 0, 0x20, 'f', 't', 'y', 'p', 'M', '4', 'A', ' ', 0, 0, 0, 0 };
static const uint8_t mp4[] = { 0, 0, 0, 0x18, 'f', 't', 'y', 'p', 'i', 's', 'o', 'm', 0, 0, 2, 0 };
static const uint8_t id3[] = { 'I', 'D', '3', 4, 0, 0, 0, 0, 0x0a, 0x00, 0xff, 0xfb };
static const uint8_t mp3_frame[] = { 0xff, 0xfb, 0x90, 0x64, 0x00 };
static const uint8_t aac_adts[] = { 0xff, 0xf1, 0x50, 0x80, 0x02, 0x1f, 0xfc };
static const uint8_t ogg[] = { 'O', 'g', 'g', 'S', 0, 2, 0, 0 };
static const uint8_t wav[] = { 'R', 'I', 'F', 'F', 0x24, 0, 0, 0, 'W', 'A', 'V', 'E', 'f', 'm', 't', ' ' };
static const uint8_t not_mp3[] = { 0xff, 0xfb, 0xf0, 0x64 }; /* bitrate index 15 */
static const uint8_t text[] = "hello, world\n";

TEST(sniff_table)
{
    uint8_t png[40], png_zero[40], png_big[40], png_noihdr[40];
    size_t pl = make_png(png, 16, 8);
    make_png(png_zero, 0, 8);
    make_png(png_big, 0x80000000u, 1);
    make_png(png_noihdr, 3, 3);
    memcpy(png_noihdr + 12, "IDAT", 4);
    const struct sniff_case cases[] = {
        { "png", png, pl, MEDIA_FMT_PNG, 16, 8 },
        { "png head only", png, 24, MEDIA_FMT_PNG, 16, 8 },
        { "png truncated", png, 23, MEDIA_FMT_NONE, 0, 0 },
        { "png zero width", png_zero, pl, MEDIA_FMT_NONE, 0, 0 },
        { "png width >= 2^31", png_big, pl, MEDIA_FMT_NONE, 0, 0 },
        { "png no IHDR", png_noihdr, pl, MEDIA_FMT_NONE, 0, 0 },
        { "jpeg baseline", jpeg_baseline, sizeof jpeg_baseline, MEDIA_FMT_JPEG, 320, 240 },
        { "jpeg progressive exif", jpeg_progressive, sizeof jpeg_progressive, MEDIA_FMT_JPEG, 1, 65535 },
        { "jpeg SOS before SOF", jpeg_sos_first, sizeof jpeg_sos_first, MEDIA_FMT_NONE, 0, 0 },
        { "jpeg truncated SOF", jpeg_truncated_sof, sizeof jpeg_truncated_sof, MEDIA_FMT_NONE, 0, 0 },
        { "jpeg segment past end", jpeg_seglen_past_end, sizeof jpeg_seglen_past_end, MEDIA_FMT_NONE, 0, 0 },
        { "jpeg zero height", jpeg_zero_height, sizeof jpeg_zero_height, MEDIA_FMT_NONE, 0, 0 },
        { "jpeg bytes where a marker belongs", jpeg_garbage_marker, sizeof jpeg_garbage_marker, MEDIA_FMT_NONE, 0, 0 },
        { "jpeg SOI only", jpeg_baseline, 3, MEDIA_FMT_NONE, 0, 0 },
        { "gif89a", gif89, sizeof gif89, MEDIA_FMT_GIF, 10, 20 },
        { "gif87a", gif87, sizeof gif87, MEDIA_FMT_GIF, 256, 1 },
        { "gif zero", gif_zero, sizeof gif_zero, MEDIA_FMT_NONE, 0, 0 },
        { "gif88a", gif_bad_version, sizeof gif_bad_version, MEDIA_FMT_NONE, 0, 0 },
        { "gif truncated", gif89, 9, MEDIA_FMT_NONE, 0, 0 },
        { "webp lossy", webp_vp8, sizeof webp_vp8, MEDIA_FMT_WEBP, 640, 480 },
        { "webp lossless", webp_vp8l, sizeof webp_vp8l, MEDIA_FMT_WEBP, 400, 301 },
        { "webp extended", webp_vp8x, sizeof webp_vp8x, MEDIA_FMT_WEBP, 4096, 1080 },
        { "webp not a key frame", webp_vp8_not_key, sizeof webp_vp8_not_key, MEDIA_FMT_NONE, 0, 0 },
        { "webp lossless bad signature", webp_vp8l_badsig, sizeof webp_vp8l_badsig, MEDIA_FMT_NONE, 0, 0 },
        { "webp truncated", webp_vp8, 29, MEDIA_FMT_NONE, 0, 0 },
        { "bmp info top-down", bmp_info, sizeof bmp_info, MEDIA_FMT_BMP, 640, 480 },
        { "bmp core", bmp_core, sizeof bmp_core, MEDIA_FMT_BMP, 16, 9 },
        { "bmp unknown header", bmp_bad_dib, sizeof bmp_bad_dib, MEDIA_FMT_NONE, 0, 0 },
        { "bmp INT32_MIN height", bmp_min_height, sizeof bmp_min_height, MEDIA_FMT_NONE, 0, 0 },
        { "amr", amr, sizeof amr, MEDIA_FMT_AMR, 0, 0 },
        { "amr-wb", amr_wb, sizeof amr_wb, MEDIA_FMT_AMR, 0, 0 },
        { "m4a", m4a, sizeof m4a, MEDIA_FMT_M4A, 0, 0 },
        { "mp4", mp4, sizeof mp4, MEDIA_FMT_MP4, 0, 0 },
        { "mp3 id3", id3, sizeof id3, MEDIA_FMT_MP3, 0, 0 },
        { "mp3 frame", mp3_frame, sizeof mp3_frame, MEDIA_FMT_MP3, 0, 0 },
        { "aac adts", aac_adts, sizeof aac_adts, MEDIA_FMT_AAC, 0, 0 },
        { "ogg", ogg, sizeof ogg, MEDIA_FMT_OGG, 0, 0 },
        { "wav", wav, sizeof wav, MEDIA_FMT_WAV, 0, 0 },
        { "not mp3", not_mp3, sizeof not_mp3, MEDIA_FMT_NONE, 0, 0 },
        { "text", text, sizeof text - 1, MEDIA_FMT_NONE, 0, 0 },
        { "empty", text, 0, MEDIA_FMT_NONE, 0, 0 },
    };
    for (size_t i = 0; i < AU_ARRAY_LEN(cases); i++) {
        const struct sniff_case *c = &cases[i];
        /* sniff a heap copy of exactly len bytes, so ASan catches any over-read */
        uint8_t *copy = malloc(c->len ? c->len : 1);
        memcpy(copy, c->p, c->len);
        struct media_sniff s;
        media_sniff(copy, c->len, &s);
        free(copy);
        if (s.format != c->f || s.width != c->w || s.height != c->h)
            printf("  %s: got %s %ux%u, want %s %ux%u\n", c->name, media_format_name(s.format), s.width, s.height,
                   media_format_name(c->f), c->w, c->h);
        CHECK(s.format == c->f && s.width == c->w && s.height == c->h);
        CHECK(media_format_is_image(s.format) == (s.width > 0));
    }
    CHECK(strcmp(media_format_name(MEDIA_FMT_JPEG), "jpg") == 0);
    CHECK(strcmp(media_format_mime(MEDIA_FMT_JPEG), "image/jpeg") == 0);
    CHECK(media_format_mime(MEDIA_FMT_NONE) == NULL);
    for (int f = 0; f < MEDIA_FMT_COUNT; f++) CHECK_EQ(media_format_parse(media_format_name((enum media_format)f)), f);
    CHECK_EQ(media_format_parse("tiff"), -1);
}

/* ------------------------------------------------------------------ CRC32, ids, names */

TEST(crc32_vectors)
{
    CHECK_EQ(media_crc32(0, "123456789", 9), 0xcbf43926u);
    CHECK_EQ(media_crc32(0, "", 0), 0);
    CHECK_EQ(media_crc32(0, "The quick brown fox jumps over the lazy dog", 43), 0x414fa339u);
    size_t n = 100000;
    uint8_t *buf = malloc(n + 8);
    fill_random(buf, n + 8);
    for (size_t off = 0; off < 8; off++) {
        size_t len = n - off * 13;
        CHECK_EQ(media_crc32(0, buf + off, len), crc_ref(buf + off, len));
        /* chaining at an odd split equals one pass */
        uint32_t c = media_crc32(0, buf + off, 777);
        CHECK_EQ(media_crc32(c, buf + off + 777, len - 777), crc_ref(buf + off, len));
    }
    free(buf);
}

TEST(ids)
{
    enum media_type t;
    char hex[MEDIA_HEX_LEN + 1];
    const char *good = "aurora/image/0123456789abcdef0123456789ABCDEF";
    CHECK_EQ(media_id_parse(good, strlen(good), &t, hex), 0);
    CHECK(t == MEDIA_IMAGE);
    CHECK(strcmp(hex, "0123456789abcdef0123456789abcdef") == 0);
    const char *v = "aurora/voice/00000000000000000000000000000000";
    CHECK_EQ(media_id_parse(v, strlen(v), &t, hex), 0);
    CHECK(t == MEDIA_VOICE);
    const char *bad[] = {
        "aurora/image/0123456789abcdef0123456789abcde",     /* 31 hex */
        "aurora/image/0123456789abcdef0123456789abcdef0",   /* 33 hex */
        "aurora/image/0123456789abcdef0123456789abcdeg",
        "aurora/video/0123456789abcdef0123456789abcdef",
        "aurora/Image/0123456789abcdef0123456789abcdef",
        "qiniu/image/j/8D57A18AD6926D6D879DFA36B4ED9CC4.jpg",
        "aurora//0123456789abcdef0123456789abcdef",
        "aurora/image0123456789abcdef0123456789abcdef",
        "aurora/image/../123456789abcdef0123456789abcdef",
        "",
    };
    for (size_t i = 0; i < AU_ARRAY_LEN(bad); i++) {
        int r = media_id_parse(bad[i], strlen(bad[i]), &t, hex);
        if (r != MEDIA_EBAD_ID) printf("  accepted %s\n", bad[i]);
        CHECK_EQ(r, MEDIA_EBAD_ID);
    }
    CHECK_EQ(media_type_parse("file", 4), MEDIA_FILE);
    CHECK_EQ(media_type_parse("files", 5), -1);
}

TEST(fname_sanitize)
{
    char out[MEDIA_FNAME_MAX];
    struct { const char *in; const char *want; } cases[] = {
        { "photo.jpg", "photo.jpg" },
        { "/home/u/photo.jpg", "photo.jpg" },
        { "C:\\Users\\me\\a b.png", "a b.png" },
        { "dir/", "" },
        { "a\r\nb\tc\x7f.txt", "abc.txt" },
        { "\xe4\xbd\xa0\xe5\xa5\xbd.txt", "\xe4\xbd\xa0\xe5\xa5\xbd.txt" },
        { "bad\xff\xc3(.txt", "bad__(.txt" },
        { "\xed\xa0\x80surrogate", "___surrogate" },
        { "", "" },
    };
    for (size_t i = 0; i < AU_ARRAY_LEN(cases); i++) {
        size_t n = media_fname_sanitize(cases[i].in, strlen(cases[i].in), out, sizeof out);
        if (strcmp(out, cases[i].want) != 0) printf("  '%s' -> '%s'\n", cases[i].in, out);
        CHECK(strcmp(out, cases[i].want) == 0 && n == strlen(out));
    }
    /* cut at a character boundary: 3-byte characters into a 8-byte buffer keep 2 (6 bytes + NUL) */
    char small[8];
    CHECK_EQ(media_fname_sanitize("\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xbd\xa0", 9, small, sizeof small), 6);
    CHECK_EQ(media_fname_sanitize(NULL, 0, small, sizeof small), 0);
    /* a long name is cut to MEDIA_FNAME_MAX - 1 */
    char longn[1000];
    memset(longn, 'x', sizeof longn);
    CHECK_EQ(media_fname_sanitize(longn, sizeof longn, out, sizeof out), MEDIA_FNAME_MAX - 1);
}

/* ------------------------------------------------------------------ the store, synchronously */

#define TAPP 7u /* the app the tests store for (items live in media/a00000007/) */

static bool file_exists(const char *dir, const char *hex, const char *suffix)
{
    char path[512];
    snprintf(path, sizeof path, "%s/media/a%08x/%c%c/%s%s", dir, TAPP, hex[0], hex[1], hex, suffix);
    struct stat sb;
    return stat(path, &sb) == 0;
}

static int count_tmp(const char *dir, const char *hex)
{
    char path[512];
    snprintf(path, sizeof path, "%s/media/a%08x/%c%c", dir, TAPP, hex[0], hex[1]);
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp")) n++;
    closedir(d);
    return n;
}

TEST(put_get_round_trip)
{
    char *dir = mktmp();
    struct media_store *m = open_media(dir);
    CHECK(m != NULL);
    if (!m) return;
    uint8_t img[1000];
    fill_random(img, sizeof img);
    make_png(img, 640, 480);
    struct media_info a, b;
    CHECK_EQ(media_put(m, TAPP, MEDIA_IMAGE, img, sizeof img, "/tmp/up/photo.png", "image/png", &a), 0);
    /* the id is aurora/image/<XXH3-128, canonical big-endian hex> */
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits(img, sizeof img));
    char want[MEDIA_HEX_LEN + 1];
    for (int i = 0; i < 16; i++) snprintf(want + 2 * i, 3, "%02x", c.digest[i]);
    CHECK(strcmp(a.hex, want) == 0);
    char wid[MEDIA_ID_MAX];
    snprintf(wid, sizeof wid, "aurora/image/%s", want);
    CHECK(strcmp(a.id, wid) == 0);
    CHECK(a.format == MEDIA_FMT_PNG && a.width == 640 && a.height == 480);
    CHECK_EQ(a.fsize, sizeof img);
    CHECK_EQ(a.crc32, crc_ref(img, sizeof img));
    CHECK(strcmp(a.fname, "photo.png") == 0);
    CHECK(strcmp(a.content_type, "image/png") == 0);
    CHECK(!a.existed);
    CHECK(a.ctime_ms > 0);
    CHECK(file_exists(dir, a.hex, ""));
    CHECK(file_exists(dir, a.hex, ".meta"));
    CHECK_EQ(count_tmp(dir, a.hex), 0);

    int fd = -1;
    CHECK_EQ(media_get(m, TAPP, a.id, strlen(a.id), MEDIA_GET_VERIFY, &b, &fd), 0);
    CHECK(fd >= 0);
    uint8_t back[1100];
    CHECK_EQ(read(fd, back, sizeof back), (ssize_t)sizeof img);
    CHECK(memcmp(back, img, sizeof img) == 0);
    close(fd);
    CHECK(strcmp(b.id, a.id) == 0 && b.crc32 == a.crc32 && b.fsize == a.fsize && b.ctime_ms == a.ctime_ms);
    CHECK(b.format == MEDIA_FMT_PNG && b.width == 640 && b.height == 480);
    CHECK(strcmp(b.fname, "photo.png") == 0 && strcmp(b.content_type, "image/png") == 0);
    /* upper-case hex in the id works too; metadata only (fd NULL) */
    char upper[MEDIA_ID_MAX];
    strcpy(upper, a.id);
    for (char *p = upper + 13; *p; p++)
        if (*p >= 'a' && *p <= 'f') *p = (char)(*p - 32);
    CHECK_EQ(media_get(m, TAPP, upper, strlen(upper), 0, &b, NULL), 0);
    /* the same bytes as a file: another id, the same stored bytes */
    CHECK_EQ(media_put(m, TAPP, MEDIA_FILE, img, sizeof img, "renamed.bin", NULL, &b), 0);
    CHECK(b.existed);
    CHECK(strncmp(b.id, "aurora/file/", 12) == 0 && strcmp(b.hex, a.hex) == 0);
    CHECK(strcmp(b.fname, "renamed.bin") == 0); /* this upload's name ... */
    struct media_info g;
    CHECK_EQ(media_get(m, TAPP, b.id, strlen(b.id), 0, &g, NULL), 0);
    CHECK(strcmp(g.fname, "photo.png") == 0);   /* ... the stored one is the first upload's */
    CHECK(g.type == MEDIA_FILE);

    /* voice: any bytes, the format is sniffed when known */
    CHECK_EQ(media_put(m, TAPP, MEDIA_VOICE, m4a, sizeof m4a, NULL, NULL, &b), 0);
    CHECK(b.format == MEDIA_FMT_M4A && b.width == 0 && strcmp(b.fname, "") == 0);
    CHECK_EQ(media_put(m, TAPP, MEDIA_VOICE, text, 5, NULL, NULL, &b), 0);
    CHECK(b.format == MEDIA_FMT_NONE);
    /* an empty file is allowed */
    CHECK_EQ(media_put(m, TAPP, MEDIA_FILE, "", 0, "empty.txt", "text/plain", &b), 0);
    CHECK_EQ(media_get(m, TAPP, b.id, strlen(b.id), MEDIA_GET_VERIFY, &g, NULL), 0);
    CHECK_EQ(g.fsize, 0);
    /* the image rule, on put and on get */
    CHECK_EQ(media_put(m, TAPP, MEDIA_IMAGE, text, sizeof text, "x.png", "image/png", &b), MEDIA_ENOT_IMAGE);
    CHECK_EQ(media_put(m, TAPP, MEDIA_FILE, text, sizeof text, "x.txt", "text/plain\r\nX: y", &b), 0);
    CHECK(strcmp(b.content_type, "text/plainX: y") == 0);
    char img_id[MEDIA_ID_MAX];
    snprintf(img_id, sizeof img_id, "aurora/image/%s", b.hex);
    CHECK_EQ(media_get(m, TAPP, img_id, strlen(img_id), 0, &g, NULL), MEDIA_ENOT_FOUND);
    /* unknown and malformed ids */
    const char *nf = "aurora/file/00000000000000000000000000000000";
    CHECK_EQ(media_get(m, TAPP, nf, strlen(nf), 0, &g, NULL), MEDIA_ENOT_FOUND);
    CHECK_EQ(media_get(m, TAPP, "aurora/file/xyz", 15, 0, &g, NULL), MEDIA_EBAD_ID);
    struct media_stats st;
    media_get_stats(m, &st);
    CHECK_EQ(st.puts, 7);
    CHECK_EQ(st.put_dedup, 1);
    CHECK_EQ(st.put_errors, 1);
    media_close(m);

    /* reopen: everything is still there */
    m = open_media(dir);
    CHECK_EQ(media_get(m, TAPP, a.id, strlen(a.id), MEDIA_GET_VERIFY, &g, NULL), 0);
    CHECK(g.crc32 == a.crc32);
    media_close(m);
    rmtree(dir);
}

TEST(size_limit)
{
    char *dir = mktmp();
    struct media_store *m = open_media(dir);
    size_t n = MEDIA_MAX_BYTES + 1;
    uint8_t *big = malloc(n);
    fill_random(big, n);
    struct media_info a;
    CHECK_EQ(media_put(m, TAPP, MEDIA_FILE, big, n, "big", NULL, &a), MEDIA_ETOO_LARGE);
    CHECK_EQ(media_put(m, TAPP, MEDIA_FILE, big, MEDIA_MAX_BYTES, "big", NULL, &a), 0);
    CHECK_EQ(a.fsize, MEDIA_MAX_BYTES);
    struct media_info g;
    CHECK_EQ(media_get(m, TAPP, a.id, strlen(a.id), MEDIA_GET_VERIFY, &g, NULL), 0);
    CHECK_EQ(g.crc32, a.crc32);
    free(big);
    media_close(m);
    rmtree(dir);
}

static void corrupt_byte(const char *dir, const char *hex, const char *suffix, off_t off)
{
    char path[512];
    snprintf(path, sizeof path, "%s/media/a%08x/%c%c/%s%s", dir, TAPP, hex[0], hex[1], hex, suffix);
    int fd = open(path, O_RDWR);
    uint8_t c;
    if (pread(fd, &c, 1, off) != 1) abort();
    c ^= 0x40;
    if (pwrite(fd, &c, 1, off) != 1) abort();
    close(fd);
}

static void write_file(const char *dir, const char *hex, const char *suffix, const char *content)
{
    char path[512];
    snprintf(path, sizeof path, "%s/media/a%08x/%c%c/%s%s", dir, TAPP, hex[0], hex[1], hex, suffix);
    FILE *f = fopen(path, "w");
    fputs(content, f);
    fclose(f);
}

static void remove_file(const char *dir, const char *hex, const char *suffix)
{
    char path[512];
    snprintf(path, sizeof path, "%s/media/a%08x/%c%c/%s%s", dir, TAPP, hex[0], hex[1], hex, suffix);
    unlink(path);
}

TEST(corruption_detected_and_repaired)
{
    char *dir = mktmp();
    struct media_store *m = open_media(dir);
    size_t n = 300000;
    uint8_t *data = malloc(n);
    fill_random(data, n);
    struct media_info a, g;
    CHECK_EQ(media_put(m, TAPP, MEDIA_FILE, data, n, "d.bin", NULL, &a), 0);
    /* a flipped bit: found with VERIFY only (the size still matches) */
    corrupt_byte(dir, a.hex, "", 123456);
    CHECK_EQ(media_get(m, TAPP, a.id, strlen(a.id), 0, &g, NULL), 0);
    CHECK_EQ(media_get(m, TAPP, a.id, strlen(a.id), MEDIA_GET_VERIFY, &g, NULL), MEDIA_ECORRUPT);
    /* uploading the same bytes again repairs them (dedup compares the stored bytes) */
    CHECK_EQ(media_put(m, TAPP, MEDIA_FILE, data, n, "d.bin", NULL, &g), 0);
    CHECK(!g.existed);
    CHECK_EQ(media_get(m, TAPP, a.id, strlen(a.id), MEDIA_GET_VERIFY, &g, NULL), 0);
    /* truncated bytes: found without VERIFY */
    char path[512];
    snprintf(path, sizeof path, "%s/media/a%08x/%c%c/%s", dir, TAPP, a.hex[0], a.hex[1], a.hex);
    CHECK_EQ(truncate(path, 1000), 0);
    int fd = 77;
    CHECK_EQ(media_get(m, TAPP, a.id, strlen(a.id), 0, &g, &fd), MEDIA_ECORRUPT);
    CHECK_EQ(fd, -1);
    /* bytes gone, sidecar present */
    remove_file(dir, a.hex, "");
    CHECK_EQ(media_get(m, TAPP, a.id, strlen(a.id), 0, &g, NULL), MEDIA_ECORRUPT);
    CHECK_EQ(media_put(m, TAPP, MEDIA_FILE, data, n, "d.bin", NULL, &g), 0);
    CHECK_EQ(media_get(m, TAPP, a.id, strlen(a.id), MEDIA_GET_VERIFY, &g, NULL), 0);
    /* damaged sidecars */
    write_file(dir, a.hex, ".meta", "{not json");
    CHECK_EQ(media_get(m, TAPP, a.id, strlen(a.id), 0, &g, NULL), MEDIA_ECORRUPT);
    write_file(dir, a.hex, ".meta", "{\"v\":1,\"fsize\":300000}");
    CHECK_EQ(media_get(m, TAPP, a.id, strlen(a.id), 0, &g, NULL), MEDIA_ECORRUPT);
    write_file(dir, a.hex, ".meta", "{\"v\":2,\"fsize\":300000,\"crc32\":1,\"format\":\"\",\"width\":0,\"height\":0,"
                                    "\"ctime\":1,\"fname\":\"\",\"content_type\":\"\"}");
    CHECK_EQ(media_get(m, TAPP, a.id, strlen(a.id), 0, &g, NULL), MEDIA_ECORRUPT);
    write_file(dir, a.hex, ".meta", "{\"v\":1,\"fsize\":300000,\"crc32\":1,\"format\":\"tiff\",\"width\":0,"
                                    "\"height\":0,\"ctime\":1,\"fname\":\"\",\"content_type\":\"\"}");
    CHECK_EQ(media_get(m, TAPP, a.id, strlen(a.id), 0, &g, NULL), MEDIA_ECORRUPT);
    /* a wrong CRC in an otherwise fine sidecar: VERIFY catches it */
    write_file(dir, a.hex, ".meta", "{\"v\":1,\"fsize\":300000,\"crc32\":1,\"format\":\"\",\"width\":0,\"height\":0,"
                                    "\"ctime\":1,\"fname\":\"\",\"content_type\":\"\"}");
    CHECK_EQ(media_get(m, TAPP, a.id, strlen(a.id), 0, &g, NULL), 0);
    CHECK_EQ(media_get(m, TAPP, a.id, strlen(a.id), MEDIA_GET_VERIFY, &g, NULL), MEDIA_ECORRUPT);
    /* no sidecar: not found (a put that crashed between bytes and sidecar); the next put commits */
    remove_file(dir, a.hex, ".meta");
    CHECK_EQ(media_get(m, TAPP, a.id, strlen(a.id), 0, &g, NULL), MEDIA_ENOT_FOUND);
    CHECK_EQ(media_put(m, TAPP, MEDIA_FILE, data, n, "d.bin", NULL, &g), 0);
    CHECK(!g.existed);
    CHECK_EQ(media_get(m, TAPP, a.id, strlen(a.id), MEDIA_GET_VERIFY, &g, NULL), 0);
    struct media_stats st;
    media_get_stats(m, &st);
    CHECK(st.corrupt >= 7);
    media_close(m);
    /* temp files left by a crash are swept on open */
    write_file(dir, a.hex, "", "x");
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s/media/a%08x/%c%c/.%s.1.2.tmp", dir, TAPP, a.hex[0], a.hex[1], a.hex);
    FILE *f = fopen(tmp, "w");
    fclose(f);
    CHECK_EQ(count_tmp(dir, a.hex), 1);
    m = open_media(dir);
    CHECK_EQ(count_tmp(dir, a.hex), 0);
    media_close(m);
    free(data);
    rmtree(dir);
}

TEST(apps_are_kept_apart)
{
    char *dir = mktmp();
    struct media_store *m = open_media(dir);
    CHECK(m != NULL);
    if (!m) return;
    uint8_t data[3000];
    fill_random(data, sizeof data);
    struct media_info a, b, g;
    /* the same bytes, two apps: two items, neither upload finds the other's (no dedup across apps) */
    CHECK_EQ(media_put(m, 1, MEDIA_VOICE, data, sizeof data, "one.mp3", "audio/mpeg", &a), 0);
    CHECK(!a.existed);
    CHECK_EQ(media_put(m, 2, MEDIA_VOICE, data, sizeof data, "two.ogg", "audio/ogg", &b), 0);
    CHECK(!b.existed);
    CHECK(strcmp(a.id, b.id) == 0); /* ids are content addresses */
    CHECK_EQ(media_put(m, 1, MEDIA_VOICE, data, sizeof data, "again.mp3", "audio/x", &g), 0);
    CHECK(g.existed);
    CHECK_EQ(media_get(m, 1, a.id, strlen(a.id), MEDIA_GET_VERIFY, &g, NULL), 0);
    CHECK(strcmp(g.content_type, "audio/mpeg") == 0 && strcmp(g.fname, "one.mp3") == 0);
    CHECK_EQ(media_get(m, 2, a.id, strlen(a.id), MEDIA_GET_VERIFY, &g, NULL), 0);
    CHECK(strcmp(g.content_type, "audio/ogg") == 0 && strcmp(g.fname, "two.ogg") == 0);
    CHECK_EQ(media_get(m, 3, a.id, strlen(a.id), 0, &g, NULL), MEDIA_ENOT_FOUND);
    /* an item stored before per-app scoping (media/<h0h1>/) is read when the app has no copy of its own */
    char from[512], to[512];
    snprintf(to, sizeof to, "%s/media/%c%c", dir, a.hex[0], a.hex[1]);
    CHECK_EQ(mkdir(to, 0755), 0);
    for (int i = 0; i < 2; i++) {
        const char *suf = i ? ".meta" : "";
        snprintf(from, sizeof from, "%s/media/a%08x/%c%c/%s%s", dir, 1u, a.hex[0], a.hex[1], a.hex, suf);
        snprintf(to, sizeof to, "%s/media/%c%c/%s%s", dir, a.hex[0], a.hex[1], a.hex, suf);
        CHECK_EQ(rename(from, to), 0);
    }
    CHECK_EQ(media_get(m, 3, a.id, strlen(a.id), MEDIA_GET_VERIFY, &g, NULL), 0);
    CHECK(strcmp(g.content_type, "audio/mpeg") == 0);
    CHECK_EQ(media_get(m, 2, a.id, strlen(a.id), 0, &g, NULL), 0);
    CHECK(strcmp(g.content_type, "audio/ogg") == 0);
    media_close(m);
    rmtree(dir);
}

TEST(open_errors)
{
    char err[256] = "";
    struct media_store *m = NULL;
    CHECK_EQ(media_open(&m, "/proc/no/such/dir", err, sizeof err), -1);
    CHECK(strlen(err) > 0);
    char *dir = mktmp();
    char sub[300];
    snprintf(sub, sizeof sub, "%s/new-data-dir", dir); /* a missing data dir is created */
    CHECK_EQ(media_open(&m, sub, err, sizeof err), 0);
    media_close(m);
    rmtree(dir);
}

/* ------------------------------------------------------------------ asynchronous, real loop */

#define AS_SHARDS 2
#define AS_PUTS 48          /* per shard */
#define AS_SHARED 8         /* of which the first AS_SHARED are the same bytes on both shards */
#define AS_LEN 20000

static struct media_store *g_m;
static struct iopool *g_pool;
static atomic_int g_started, g_bad, g_phase, g_tails;
static pid_t g_tid[AS_SHARDS];
#define SCHECK(c) do { if (!(c)) { printf("  shard check failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); atomic_fetch_add(&g_bad, 1); } } while (0)

struct as_shard {
    uint8_t data[AS_PUTS][AS_LEN];
    char ids[AS_PUTS][MEDIA_ID_MAX];
    int put_done, get_done, put_ok, get_ok, dedup, canceled;
    bool submitted_puts, submitted_gets, submitted_tail;
    int tail_done;
    atomic_int finished;
};
static struct as_shard *g_as;

static pid_t my_tid(void) { return (pid_t)syscall(SYS_gettid); }

static void as_get_cb(struct au_shard *s, void *arg, int err, const struct media_info *info, struct au_buf *bytes)
{
    if (!s) return;
    int i = (int)(intptr_t)arg;
    struct as_shard *a = &g_as[s->id];
    SCHECK(my_tid() == g_tid[s->id]);
    SCHECK(err == 0 && info && bytes);
    if (err == 0 && info && bytes) {
        SCHECK(strcmp(info->id, a->ids[i]) == 0);
        SCHECK(bytes->len == AS_LEN && memcmp(bytes->data, a->data[i], AS_LEN) == 0);
        a->get_ok++;
    }
    if (bytes) au_buf_unref(bytes);
    if (++a->get_done == AS_PUTS) atomic_store(&a->finished, 1);
}

static void as_put_cb(struct au_shard *s, void *arg, int err, const struct media_info *info)
{
    if (!s) return;
    int i = (int)(intptr_t)arg;
    struct as_shard *a = &g_as[s->id];
    SCHECK(my_tid() == g_tid[s->id]);
    SCHECK(err == 0 && info != NULL);
    if (err == 0 && info) {
        SCHECK(info->crc32 == media_crc32(0, a->data[i], AS_LEN));
        SCHECK(info->format == MEDIA_FMT_PNG && info->width == 7 && info->height == (uint32_t)(i + 1));
        snprintf(a->ids[i], sizeof a->ids[i], "%s", info->id);
        if (info->existed) a->dedup++;
        a->put_ok++;
    }
    a->put_done++;
}

static void tail_cb(struct au_shard *s, void *arg, int err, const struct media_info *info)
{
    (void)arg;
    (void)info;
    if (!s) {
        g_as[0].canceled++;
        return;
    }
    SCHECK(my_tid() == g_tid[s->id]);
    SCHECK(err == 0);
    g_as[s->id].tail_done++;
}

static void h_init(struct au_shard *s) { g_tid[s->id] = my_tid(); }

static int h_tick(struct au_shard *s, uint64_t now)
{
    (void)now;
    if (!atomic_load(&g_started)) return 5;
    struct as_shard *a = &g_as[s->id];
    if (!a->submitted_puts) {
        a->submitted_puts = true;
        for (int i = 0; i < AS_PUTS; i++) {
            char name[32];
            snprintf(name, sizeof name, "dir/img-%d-%d.png", s->id, i);
            media_put_async(g_m, g_pool, s->id, TAPP, MEDIA_IMAGE, a->data[i], AS_LEN, name, "image/png", as_put_cb,
                            (void *)(intptr_t)i);
        }
    } else if (!a->submitted_gets && a->put_done == AS_PUTS) {
        a->submitted_gets = true;
        for (int i = 0; i < AS_PUTS; i++)
            media_get_async(g_m, g_pool, s->id, TAPP, a->ids[i], strlen(a->ids[i]), MEDIA_GET_DATA | MEDIA_GET_VERIFY,
                            as_get_cb, (void *)(intptr_t)i);
    } else if (atomic_load(&g_phase) == 1 && !a->submitted_tail) {
        /* submitted right before the loop stops: completed by iopool_shard_detach in shard_fini */
        a->submitted_tail = true;
        for (int i = 0; i < 16; i++)
            media_put_async(g_m, g_pool, s->id, TAPP, MEDIA_FILE, a->data[i], AS_LEN, NULL, NULL, tail_cb, NULL);
        atomic_fetch_add(&g_tails, 1);
    }
    return 2;
}

static void h_fini(struct au_shard *s) { iopool_shard_detach(g_pool, s->id); }

static const struct au_loop_hooks g_hooks = { .shard_init = h_init, .shard_tick = h_tick, .shard_fini = h_fini };

TEST(async_two_shards)
{
    char *dir = mktmp();
    g_m = open_media(dir);
    g_as = calloc(AS_SHARDS, sizeof *g_as);
    for (int s = 0; s < AS_SHARDS; s++)
        for (int i = 0; i < AS_PUTS; i++) {
            uint8_t *d = g_as[s].data[i];
            fill_random(d, AS_LEN);
            if (i < AS_SHARED && s > 0) memcpy(d, g_as[0].data[i], AS_LEN); /* same bytes from both shards */
            make_png(d, 7, (uint32_t)i + 1);
        }
    g_pool = iopool_new(2);
    int ext_base = 1; /* a non-zero base: id 0 belongs to someone else */
    struct au_loop_opts lo = { .nshards = AS_SHARDS, .hooks = &g_hooks, .drain_ms = 2000,
                               .n_ext = ext_base + (int)iopool_threads(g_pool) };
    struct au_shard **shards = NULL;
    int r = au_loop_start(&lo, &shards);
    CHECK_EQ(r, 0);
    if (r != 0) return;
    iopool_start(g_pool, shards, AS_SHARDS, ext_base);
    double t0 = now_s();
    atomic_store(&g_started, 1);
    for (int w = 0; w < 30000; w++) {
        bool all = true;
        for (int s = 0; s < AS_SHARDS; s++) all = all && atomic_load(&g_as[s].finished);
        if (all) break;
        usleep(1000);
    }
    double t1 = now_s();
    atomic_store(&g_phase, 1);
    for (int w = 0; w < 5000 && atomic_load(&g_tails) < AS_SHARDS; w++) usleep(1000);
    au_loop_stop(shards, AS_SHARDS);
    struct iopool_stats ps;
    iopool_get_stats(g_pool, &ps);
    iopool_close(g_pool);
    int dedup = 0;
    for (int s = 0; s < AS_SHARDS; s++) {
        struct as_shard *a = &g_as[s];
        CHECK_EQ(a->put_ok, AS_PUTS);
        CHECK_EQ(a->get_ok, AS_PUTS);
        CHECK_EQ(a->tail_done, 16);
        dedup += a->dedup;
    }
    CHECK_EQ(g_as[0].canceled, 0);
    CHECK_EQ(atomic_load(&g_bad), 0);
    /* the shared bytes were put once per shard, concurrently: each is stored once, and each shard
     * names it with the same id */
    for (int i = 0; i < AS_SHARED; i++) CHECK(strcmp(g_as[0].ids[i], g_as[1].ids[i]) == 0);
    CHECK(dedup <= AS_SHARED);
    CHECK_EQ(ps.submitted, (uint64_t)AS_SHARDS * (2 * AS_PUTS + 16));
    CHECK_EQ(ps.completed, ps.submitted);
    CHECK_EQ(ps.canceled, 0);
    printf("  %d puts + %d verified gets of %d B from %d shards through 2 workers: %.1f ms; "
           "max queue wait %llu us; %d deduplicated\n", AS_SHARDS * AS_PUTS, AS_SHARDS * AS_PUTS, AS_LEN, AS_SHARDS,
           (t1 - t0) * 1e3, (unsigned long long)ps.max_queue_us, dedup);
    media_close(g_m);
    free(g_as);
    rmtree(dir);
}

/* ------------------------------------------------------------------ measurements */

TEST(measure)
{
    size_t n = MEDIA_MAX_BYTES;
    uint8_t *d = malloc(n);
    fill_random(d, n);
    double t0 = now_s();
    uint32_t c = 0;
    for (int i = 0; i < 10; i++) c = media_crc32(c, d, n);
    double t1 = now_s();
    uint64_t h = 0;
    for (int i = 0; i < 10; i++) h += XXH3_128bits(d, n).low64;
    double t2 = now_s();
    printf("  CRC32 %.2f GB/s, XXH3-128 %.2f GB/s (8 MB x 10; %08x %llx)\n", 10.0 * n / (t1 - t0) / 1e9,
           10.0 * n / (t2 - t1) / 1e9, c, (unsigned long long)h);
    char *dir = mktmp();
    struct media_store *m = open_media(dir);
    struct media_info a, g;
    double t3 = now_s();
    CHECK_EQ(media_put(m, TAPP, MEDIA_FILE, d, n, "big", NULL, &a), 0);
    double t4 = now_s();
    CHECK_EQ(media_put(m, TAPP, MEDIA_FILE, d, n, "big", NULL, &a), 0);
    CHECK(a.existed);
    double t5 = now_s();
    int fd;
    CHECK_EQ(media_get(m, TAPP, a.id, strlen(a.id), MEDIA_GET_VERIFY, &g, &fd), 0);
    close(fd);
    double t6 = now_s();
    printf("  8 MB: put (hash, CRC, write, 2x fsync file + dir) %.1f ms; dedup put %.1f ms; verified get %.1f ms\n",
           (t4 - t3) * 1e3, (t5 - t4) * 1e3, (t6 - t5) * 1e3);
    media_close(m);
    rmtree(dir);
    free(d);
}

int main(int argc, char **argv)
{
    g_measure = argc > 1 && strcmp(argv[1], "--measure") == 0;
    au_log_set_level(AU_LOG_ERROR);
    RUN(sniff_table);
    RUN(crc32_vectors);
    RUN(ids);
    RUN(fname_sanitize);
    RUN(put_get_round_trip);
    RUN(size_limit);
    RUN(corruption_detected_and_repaired);
    RUN(apps_are_kept_apart);
    RUN(open_errors);
    RUN(async_two_shards);
    if (g_measure) RUN(measure);
    TEST_MAIN_END();
}
