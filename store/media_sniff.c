/* media_sniff.c - the pure part of the media module: format sniffing, CRC32, ids, file names.
 * No I/O, no allocation: fuzzed by tests/fuzz/fuzz_media_sniff.c. */
#include "store/media.h"
#include "core/common.h"

#include <pthread.h>
#include <string.h>

/* ------------------------------------------------------------------ byte readers */

static uint32_t le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le24(const uint8_t *p) { return le16(p) | (uint32_t)p[2] << 16; }
static uint32_t le32(const uint8_t *p) { return le24(p) | (uint32_t)p[3] << 24; }
static uint32_t be16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }

/* ------------------------------------------------------------------ images */

static bool sniff_png(const uint8_t *p, size_t len, struct media_sniff *o)
{
    static const uint8_t sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
    if (len < 24 || memcmp(p, sig, 8) != 0) return false;
    if (au_rd32(p + 8) != 13 || memcmp(p + 12, "IHDR", 4) != 0) return false;
    uint32_t w = au_rd32(p + 16), h = au_rd32(p + 20);
    if (!w || !h || w > 0x7fffffffu || h > 0x7fffffffu) return false; /* PNG: 1 .. 2^31-1 */
    *o = (struct media_sniff){ MEDIA_FMT_PNG, w, h };
    return true;
}

static bool sniff_gif(const uint8_t *p, size_t len, struct media_sniff *o)
{
    if (len < 10 || (memcmp(p, "GIF87a", 6) != 0 && memcmp(p, "GIF89a", 6) != 0)) return false;
    uint32_t w = le16(p + 6), h = le16(p + 8);
    if (!w || !h) return false;
    *o = (struct media_sniff){ MEDIA_FMT_GIF, w, h };
    return true;
}

static bool sniff_bmp(const uint8_t *p, size_t len, struct media_sniff *o)
{
    if (len < 26 || p[0] != 'B' || p[1] != 'M') return false;
    uint32_t dib = le32(p + 14), w, h;
    if (dib == 12) { /* BITMAPCOREHEADER: unsigned 16-bit */
        w = le16(p + 18);
        h = le16(p + 20);
    } else if (dib == 40 || dib == 52 || dib == 56 || dib == 64 || dib == 108 || dib == 124) {
        int32_t sw = (int32_t)le32(p + 18), sh = (int32_t)le32(p + 22);
        if (sw <= 0 || sh == 0 || sh == INT32_MIN) return false;
        w = (uint32_t)sw;
        h = sh < 0 ? (uint32_t)-sh : (uint32_t)sh; /* negative: top-down rows */
    } else {
        return false;
    }
    if (!w || !h) return false;
    *o = (struct media_sniff){ MEDIA_FMT_BMP, w, h };
    return true;
}

static bool sniff_webp(const uint8_t *p, size_t len, struct media_sniff *o)
{
    if (len < 16 || memcmp(p, "RIFF", 4) != 0 || memcmp(p + 8, "WEBP", 4) != 0) return false;
    uint32_t w, h;
    if (memcmp(p + 12, "VP8 ", 4) == 0) { /* lossy: key frame header after the 3-byte frame tag */
        if (len < 30 || (p[20] & 1) != 0 || p[23] != 0x9d || p[24] != 0x01 || p[25] != 0x2a) return false;
        w = le16(p + 26) & 0x3fff;
        h = le16(p + 28) & 0x3fff;
    } else if (memcmp(p + 12, "VP8L", 4) == 0) { /* lossless: 0x2f, then 14-bit w-1, 14-bit h-1 */
        if (len < 25 || p[20] != 0x2f) return false;
        uint32_t bits = le32(p + 21);
        w = (bits & 0x3fff) + 1;
        h = ((bits >> 14) & 0x3fff) + 1;
    } else if (memcmp(p + 12, "VP8X", 4) == 0) { /* extended: 24-bit canvas w-1, h-1 */
        if (len < 30) return false;
        w = le24(p + 24) + 1;
        h = le24(p + 27) + 1;
    } else {
        return false;
    }
    if (!w || !h) return false;
    *o = (struct media_sniff){ MEDIA_FMT_WEBP, w, h };
    return true;
}

static bool is_sof(uint8_t m)
{
    return m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc; /* DHT, JPG, DAC are not frames */
}

static bool sniff_jpeg(const uint8_t *p, size_t len, struct media_sniff *o)
{
    if (len < 4 || p[0] != 0xff || p[1] != 0xd8 || p[2] != 0xff) return false;
    size_t i = 2;
    for (unsigned seg = 0; seg < MEDIA_SNIFF_JPEG_SEGS; seg++) {
        if (i >= len || p[i] != 0xff) return false;
        while (i < len && p[i] == 0xff) i++; /* fill bytes */
        if (i >= len) return false;
        uint8_t m = p[i++];
        if ((m >= 0xd0 && m <= 0xd7) || m == 0x01) continue; /* standalone markers */
        if (m == 0xd8 || m == 0xd9 || m == 0xda || m == 0x00) return false; /* SOI again, EOI/SOS before a frame */
        if (len - i < 2) return false;
        uint32_t seglen = be16(p + i);
        if (seglen < 2) return false;
        if (is_sof(m)) {
            if (seglen < 8 || len - i < 7) return false;
            uint32_t h = be16(p + i + 3), w = be16(p + i + 5);
            if (!w || !h) return false; /* height 0 (DNL) is legal JPEG but unmeasurable here */
            *o = (struct media_sniff){ MEDIA_FMT_JPEG, w, h };
            return true;
        }
        if (len - i < seglen) return false;
        i += seglen;
    }
    return false;
}

/* ------------------------------------------------------------------ audio */

static enum media_format sniff_audio(const uint8_t *p, size_t len)
{
    if (len >= 6 && memcmp(p, "#!AMR\n", 6) == 0) return MEDIA_FMT_AMR;
    if (len >= 9 && memcmp(p, "#!AMR-WB\n", 9) == 0) return MEDIA_FMT_AMR;
    if (len >= 4 && memcmp(p, "OggS", 4) == 0) return MEDIA_FMT_OGG;
    if (len >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WAVE", 4) == 0) return MEDIA_FMT_WAV;
    if (len >= 12 && memcmp(p + 4, "ftyp", 4) == 0) {
        if (memcmp(p + 8, "M4A ", 4) == 0 || memcmp(p + 8, "M4B ", 4) == 0 || memcmp(p + 8, "M4P ", 4) == 0)
            return MEDIA_FMT_M4A;
        return MEDIA_FMT_MP4;
    }
    if (len >= 10 && memcmp(p, "ID3", 3) == 0 && p[3] < 0xff && p[4] < 0xff) return MEDIA_FMT_MP3;
    if (len >= 4 && p[0] == 0xff) {
        if ((p[1] & 0xf6) == 0xf0) return MEDIA_FMT_AAC; /* ADTS: sync, layer 00 */
        uint8_t ver = (p[1] >> 3) & 3, layer = (p[1] >> 1) & 3, br = p[2] >> 4, sr = (p[2] >> 2) & 3;
        if ((p[1] & 0xe0) == 0xe0 && ver != 1 && layer != 0 && br != 15 && sr != 3) return MEDIA_FMT_MP3;
    }
    return MEDIA_FMT_NONE;
}

void media_sniff(const uint8_t *p, size_t len, struct media_sniff *out)
{
    *out = (struct media_sniff){ MEDIA_FMT_NONE, 0, 0 };
    if (!p || !len) return;
    if (sniff_png(p, len, out) || sniff_jpeg(p, len, out) || sniff_gif(p, len, out) || sniff_webp(p, len, out) ||
        sniff_bmp(p, len, out))
        return;
    *out = (struct media_sniff){ sniff_audio(p, len), 0, 0 };
}

bool media_format_is_image(enum media_format f) { return f >= MEDIA_FMT_PNG && f <= MEDIA_FMT_BMP; }

static const char *const fmt_names[MEDIA_FMT_COUNT] = {
    [MEDIA_FMT_NONE] = "", [MEDIA_FMT_PNG] = "png", [MEDIA_FMT_JPEG] = "jpg", [MEDIA_FMT_GIF] = "gif",
    [MEDIA_FMT_WEBP] = "webp", [MEDIA_FMT_BMP] = "bmp", [MEDIA_FMT_AMR] = "amr", [MEDIA_FMT_MP3] = "mp3",
    [MEDIA_FMT_M4A] = "m4a", [MEDIA_FMT_MP4] = "mp4", [MEDIA_FMT_OGG] = "ogg", [MEDIA_FMT_WAV] = "wav",
    [MEDIA_FMT_AAC] = "aac",
};
static const char *const fmt_mimes[MEDIA_FMT_COUNT] = {
    [MEDIA_FMT_NONE] = NULL, [MEDIA_FMT_PNG] = "image/png", [MEDIA_FMT_JPEG] = "image/jpeg",
    [MEDIA_FMT_GIF] = "image/gif", [MEDIA_FMT_WEBP] = "image/webp", [MEDIA_FMT_BMP] = "image/bmp",
    [MEDIA_FMT_AMR] = "audio/amr", [MEDIA_FMT_MP3] = "audio/mpeg", [MEDIA_FMT_M4A] = "audio/mp4",
    [MEDIA_FMT_MP4] = "video/mp4", [MEDIA_FMT_OGG] = "audio/ogg", [MEDIA_FMT_WAV] = "audio/wav",
    [MEDIA_FMT_AAC] = "audio/aac",
};

const char *media_format_name(enum media_format f)
{
    return (unsigned)f < MEDIA_FMT_COUNT ? fmt_names[f] : "";
}

const char *media_format_mime(enum media_format f)
{
    return (unsigned)f < MEDIA_FMT_COUNT ? fmt_mimes[f] : NULL;
}

int media_format_parse(const char *s)
{
    for (int f = 0; f < MEDIA_FMT_COUNT; f++)
        if (strcmp(fmt_names[f], s) == 0) return f;
    return -1;
}

static const char *const type_names[] = { "image", "voice", "file" };

const char *media_type_name(enum media_type t)
{
    return (unsigned)t < AU_ARRAY_LEN(type_names) ? type_names[t] : "?";
}

int media_type_parse(const char *s, size_t len)
{
    for (unsigned t = 0; t < AU_ARRAY_LEN(type_names); t++)
        if (strlen(type_names[t]) == len && memcmp(type_names[t], s, len) == 0) return (int)t;
    return -1;
}

/* ------------------------------------------------------------------ CRC32 (slicing-by-8) */

static uint32_t crc_tab[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0xedb88320u : c >> 1;
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xff];
}

uint32_t media_crc32(uint32_t crc, const void *buf, size_t n)
{
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = buf;
    crc = ~crc;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (n && ((uintptr_t)p & 7)) {
        crc = crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        n--;
    }
    while (n >= 8) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + 4, 4);
        a ^= crc;
        crc = crc_tab[7][a & 0xff] ^ crc_tab[6][(a >> 8) & 0xff] ^ crc_tab[5][(a >> 16) & 0xff] ^ crc_tab[4][a >> 24] ^
              crc_tab[3][b & 0xff] ^ crc_tab[2][(b >> 8) & 0xff] ^ crc_tab[1][(b >> 16) & 0xff] ^ crc_tab[0][b >> 24];
        p += 8;
        n -= 8;
    }
#endif
    while (n--) crc = crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ------------------------------------------------------------------ ids and names */

int media_id_parse(const char *id, size_t len, enum media_type *type, char hex[MEDIA_HEX_LEN + 1])
{
    size_t pl = sizeof MEDIA_ID_PREFIX - 1;
    if (len <= pl + MEDIA_HEX_LEN + 1 || memcmp(id, MEDIA_ID_PREFIX, pl) != 0) return MEDIA_EBAD_ID;
    size_t tl = len - pl - MEDIA_HEX_LEN - 1;
    const char *t = id + pl;
    if (t[tl] != '/') return MEDIA_EBAD_ID;
    int ty = media_type_parse(t, tl);
    if (ty < 0) return MEDIA_EBAD_ID;
    const char *h = t + tl + 1;
    for (size_t i = 0; i < MEDIA_HEX_LEN; i++) {
        char c = h[i];
        if (c >= 'A' && c <= 'F') c = (char)(c + 32);
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return MEDIA_EBAD_ID;
        hex[i] = c;
    }
    hex[MEDIA_HEX_LEN] = 0;
    *type = (enum media_type)ty;
    return 0;
}

/* Length of the well-formed UTF-8 sequence at s[0..n), or 0. */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    size_t k;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) { k = 1; cp = c & 0x1f; }
    else if (c >= 0xe0 && c <= 0xef) { k = 2; cp = c & 0x0f; }
    else if (c >= 0xf0 && c <= 0xf4) { k = 3; cp = c & 0x07; }
    else return 0;
    if (n <= k) return 0;
    for (size_t j = 1; j <= k; j++) {
        if ((s[j] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[j] & 0x3f);
    }
    if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return k + 1;
}

size_t media_fname_sanitize(const char *in, size_t len, char *out, size_t cap)
{
    AU_ASSERT(cap >= 1);
    const uint8_t *s = (const uint8_t *)in;
    if (!in) len = 0;
    for (size_t i = len; i > 0; i--)
        if (s[i - 1] == '/' || s[i - 1] == '\\') {
            s += i;
            len -= i;
            break;
        }
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_seq(s + i, len - i);
        if (k == 1 && (s[i] < 0x20 || s[i] == 0x7f)) {
            i++;
            continue;
        }
        const uint8_t *src = s + i;
        size_t n = k;
        if (k == 0) { /* invalid byte */
            src = (const uint8_t *)"_";
            n = 1;
            k = 1;
        }
        if (o + n + 1 > cap) break;
        memcpy(out + o, src, n);
        o += n;
        i += k;
    }
    out[o] = 0;
    return o;
}
