/* fuzz_media_sniff.c - libFuzzer target for the pure media helpers (store/media_sniff.c).
 *
 * 1. media_sniff on the input (a copy that ends at its allocation, so any over-read is seen):
 *    an image format comes with both dimensions > 0, anything else with none; the format is known
 *    by name and back. An image found in a prefix is found, the same, in the whole input (the
 *    header readers are prefix-stable).
 * 2. media_crc32: split at a point derived from the input and chained equals one pass, and equals
 *    a bitwise reference for inputs up to 4 KB.
 * 3. media_id_parse: an accepted id prints back to itself (hex lowercased).
 * 4. media_fname_sanitize: the output is NUL-terminated, fits, holds no '/', '\\' or control byte,
 *    and sanitising it again changes nothing.
 * Any violation aborts. */
#include "store/media.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(c) do { if (!(c)) { fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); abort(); } } while (0)

static uint32_t crc_ref(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

static void sniff_exact(const uint8_t *data, size_t len, struct media_sniff *out)
{
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, data, len);
    media_sniff(copy, len, out);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* 1. sniffing */
    struct media_sniff s;
    sniff_exact(data, size, &s);
    FZ_CHECK((unsigned)s.format < MEDIA_FMT_COUNT);
    if (media_format_is_image(s.format)) {
        FZ_CHECK(s.width > 0 && s.height > 0);
        FZ_CHECK(media_format_mime(s.format) != NULL);
    } else {
        FZ_CHECK(s.width == 0 && s.height == 0);
    }
    FZ_CHECK(media_format_parse(media_format_name(s.format)) == (int)s.format);
    static const size_t cuts[] = { 3, 10, 16, 24, 26, 30, 64, 300 };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        if (cuts[i] >= size) break;
        struct media_sniff ps;
        sniff_exact(data, cuts[i], &ps);
        if (media_format_is_image(ps.format))
            FZ_CHECK(ps.format == s.format && ps.width == s.width && ps.height == s.height);
    }

    /* 2. CRC32 */
    size_t split = size ? (size_t)data[0] * 31u % (size + 1) : 0;
    uint32_t whole = media_crc32(0, data, size);
    FZ_CHECK(media_crc32(media_crc32(0, data, split), data + split, size - split) == whole);
    if (size <= 4096) FZ_CHECK(whole == crc_ref(data, size));

    /* 3. ids */
    enum media_type t;
    char hex[MEDIA_HEX_LEN + 1];
    if (media_id_parse((const char *)data, size, &t, hex) == 0) {
        char back[MEDIA_ID_MAX];
        int n = snprintf(back, sizeof back, "%s%s/%s", MEDIA_ID_PREFIX, media_type_name(t), hex);
        FZ_CHECK((size_t)n == size);
        for (size_t i = 0; i < size; i++) {
            char c = (char)data[i];
            if (c >= 'A' && c <= 'F') c = (char)(c + 32);
            FZ_CHECK(back[i] == c);
        }
    }

    /* 4. file names */
    char out[MEDIA_FNAME_MAX], again[MEDIA_FNAME_MAX];
    size_t cap = size ? 1 + data[size - 1] % MEDIA_FNAME_MAX : MEDIA_FNAME_MAX;
    size_t n = media_fname_sanitize((const char *)data, size, out, cap);
    FZ_CHECK(n < cap && out[n] == 0 && strlen(out) == n);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)out[i];
        FZ_CHECK(c >= 0x20 && c != 0x7f && c != '/' && c != '\\');
    }
    size_t n2 = media_fname_sanitize(out, n, again, sizeof again);
    FZ_CHECK(n2 == n && memcmp(out, again, n) == 0);
    return 0;
}
