/* test_multipart.c - multipart/form-data parser (gateway/http/multipart.h).
 * Every body is parsed from a copy placed against a PROT_NONE guard page, so an over-read crashes. */
#include "gateway/http/multipart.h"
#include "core/common.h"
#include "test.h"

#include <sys/mman.h>
#include <unistd.h>

/* ------------------------------------------------------------------ guard-page copies */

static uint8_t *g_map;
static size_t g_maplen;

/* Copy s[0..n) so that it ends exactly at a PROT_NONE page. */
static const uint8_t *guarded(const void *s, size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    if (g_map) munmap(g_map, g_maplen);
    size_t data_pages = (n + pg - 1) / pg + 1;
    g_maplen = (data_pages + 1) * pg;
    g_map = mmap(NULL, g_maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g_map == MAP_FAILED) abort();
    uint8_t *guard = g_map + data_pages * pg;
    if (mprotect(guard, pg, PROT_NONE) != 0) abort();
    uint8_t *p = guard - n;
    memcpy(p, s, n);
    return p;
}

static struct mp_part parts[MP_MAX_PARTS];
static struct mp_body info;

static int parse(const char *body, size_t n, const char *b)
{
    memset(&info, 0, sizeof info);
    return mp_parse(guarded(body, n), n, b, strlen(b), parts, MP_MAX_PARTS, &info);
}
#define PARSE(lit, b) parse(lit, sizeof(lit) - 1, b)

static bool data_is(const struct mp_part *p, const char *s)
{
    return p->len == strlen(s) && memcmp(p->data, s, p->len) == 0;
}

static bool span_is(const char *p, size_t n, const char *s)
{
    return p && n == strlen(s) && memcmp(p, s, n) == 0;
}

static bool pval_is(const struct mp_param *v, const char *s)
{
    char out[512];
    return mp_param_value(v, out, sizeof out) == (ssize_t)strlen(s) && strcmp(out, s) == 0;
}

/* ------------------------------------------------------------------ boundary */

struct bcase { const char *ct; int rc; const char *b; };

TEST(boundary_table)
{
    static const char b70[] = "boundary=1234567890123456789012345678901234567890123456789012345678901234567890";
    static const char b71[] = "boundary=12345678901234567890123456789012345678901234567890123456789012345678901";
    char ct70[200], ct71[200];
    snprintf(ct70, sizeof ct70, "multipart/form-data; %s", b70);
    snprintf(ct71, sizeof ct71, "multipart/form-data; %s", b71);
    const struct bcase cases[] = {
        { "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW", 0,
          "----WebKitFormBoundary7MA4YWxkTrZu0gW" },
        { "multipart/form-data; boundary=------------------------d74496d66958873e", 0,
          "------------------------d74496d66958873e" },
        { "multipart/form-data;boundary=abc", 0, "abc" },
        { "multipart/form-data; boundary=========7d4a6d158c9", 0, "========7d4a6d158c9" },
        { "Multipart/Form-Data; charset=UTF-8; BOUNDARY=\"a b:c\"", 0, "a b:c" },
        { "  multipart / form-data ;  boundary = xyz ; charset=utf-8", 0, "xyz" },
        { "multipart/form-data;\tcharset=utf-8;boundary=\"q(1)=?,\"", 0, "q(1)=?," },
        { "multipart/mixed; boundary=\"abc\"", 0, "abc" },
        { "multipart/form-data; foo=\"x;boundary=no\"; boundary=yes", 0, "yes" },
        { "multipart/form-data; foo=\"a\\\"b; boundary=no\"; boundary=yes", 0, "yes" },
        { "multipart/form-data; boundary=first; boundary=second", 0, "first" },
        { "multipart/form-data; novalue; boundary=z", 0, "z" },
        { "multipart/form-data; boundary=abc;", 0, "abc" },
        { ct70, 0, b70 + 9 },
        { ct71, MP_EBAD_BOUNDARY, NULL },
        { "application/json", MP_ENOT_MULTIPART, NULL },
        { "multipartx/form-data; boundary=a", MP_ENOT_MULTIPART, NULL },
        { "multipart", MP_ENOT_MULTIPART, NULL },
        { "multipart/", MP_ENOT_MULTIPART, NULL },
        { "", MP_ENOT_MULTIPART, NULL },
        { "multipart/form-data", MP_ENO_BOUNDARY, NULL },
        { "multipart/form-data; charset=utf-8", MP_ENO_BOUNDARY, NULL },
        { "multipart/form-data; boundaryx=abc", MP_ENO_BOUNDARY, NULL },
        { "multipart/form-data; boundary=", MP_EBAD_BOUNDARY, NULL },
        { "multipart/form-data; boundary=\"\"", MP_EBAD_BOUNDARY, NULL },
        { "multipart/form-data; boundary=\"abc", MP_EBAD_BOUNDARY, NULL },
        { "multipart/form-data; boundary=a\"b", MP_EBAD_BOUNDARY, NULL },
        { "multipart/form-data; boundary=\"a\\\\b\"", MP_EBAD_BOUNDARY, NULL },
        { "multipart/form-data; boundary=a\001b", MP_EBAD_BOUNDARY, NULL },
        { "multipart/form-data; boundary=\xc3\xa9", MP_EBAD_BOUNDARY, NULL },
    };
    for (size_t i = 0; i < AU_ARRAY_LEN(cases); i++) {
        const char *b = NULL;
        size_t bl = 0;
        int rc = mp_boundary(cases[i].ct, strlen(cases[i].ct), &b, &bl);
        if (rc != cases[i].rc) printf("  case %zu (%s): rc %d want %d\n", i, cases[i].ct, rc, cases[i].rc);
        CHECK_EQ(rc, cases[i].rc);
        if (rc == 0 && cases[i].b) {
            if (!span_is(b, bl, cases[i].b)) printf("  case %zu: got '%.*s'\n", i, (int)bl, b);
            CHECK(span_is(b, bl, cases[i].b));
        }
    }
}

/* ------------------------------------------------------------------ real clients */

TEST(curl_single_file)
{
    /* curl -F "filename=@test.jpg" */
    int n = PARSE("--------------------------d74496d66958873e\r\n"
                  "Content-Disposition: form-data; name=\"filename\"; filename=\"test.jpg\"\r\n"
                  "Content-Type: image/jpeg\r\n"
                  "\r\n"
                  "\xff\xd8\xff\xe0\0\x10JFIF\r\n\r\n--not-a-delimiter\r\n"
                  "\r\n"
                  "--------------------------d74496d66958873e--\r\n",
                  "------------------------d74496d66958873e");
    CHECK_EQ(n, 1);
    CHECK(info.closed);
    CHECK_EQ(info.preamble_len, 0);
    CHECK(parts[0].has_disposition);
    CHECK(span_is(parts[0].disposition, parts[0].disposition_len, "form-data"));
    CHECK(pval_is(&parts[0].name, "filename"));
    CHECK(pval_is(&parts[0].filename, "test.jpg"));
    CHECK(span_is(parts[0].content_type, parts[0].content_type_len, "image/jpeg"));
    CHECK_EQ(parts[0].nheaders, 2);
    CHECK_EQ(parts[0].len, 33);
    CHECK(memcmp(parts[0].data, "\xff\xd8\xff\xe0\0\x10JFIF\r\n\r\n--not-a-delimiter\r\n", 33) == 0);
    char fn[64];
    CHECK_EQ(mp_filename(&parts[0], fn, sizeof fn), 8);
    CHECK(strcmp(fn, "test.jpg") == 0);
}

TEST(curl_788_captured)
{
    /* bytes captured from curl 7.88.1 -F "filename=@t.png" and -F type=file -F 'filename=@"we\"ird.txt"' */
    static const char ct0[] = "multipart/form-data; boundary=------------------------61f6e09233023ad7";
    static const char body0[] =
        "--------------------------61f6e09233023ad7\r\n"
        "Content-Disposition: form-data; name=\"filename\"; filename=\"t.png\"\r\n"
        "Content-Type: image/png\r\n"
        "\r\n"
        "\x89PNG\r\n"
        "\x1a\n"
        "\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x08\x08\x02\x00\x00\x00\r\n"
        "--------------------------61f6e09233023ad7--\r\n";
    static const char ct1[] = "multipart/form-data; boundary=------------------------0738828b13ab541a";
    static const char body1[] =
        "--------------------------0738828b13ab541a\r\n"
        "Content-Disposition: form-data; name=\"type\"\r\n"
        "\r\n"
        "file\r\n"
        "--------------------------0738828b13ab541a\r\n"
        "Content-Disposition: form-data; name=\"filename\"; filename=\"we%22ird.txt\"\r\n"
        "Content-Type: text/plain\r\n"
        "\r\n"
        "hello \"world\"\n"
        "\r\n"
        "--------------------------0738828b13ab541a--\r\n";
    CHECK_EQ(sizeof body0 - 1, 215);
    CHECK_EQ(sizeof body1 - 1, 305);
    const char *b;
    size_t bl;
    char bz[MP_MAX_BOUNDARY + 1];
    CHECK_EQ(mp_boundary(ct0, strlen(ct0), &b, &bl), 0);
    memcpy(bz, b, bl);
    bz[bl] = 0;
    CHECK_EQ(parse(body0, sizeof body0 - 1, bz), 1);
    CHECK_EQ(parts[0].len, 29);
    CHECK(memcmp(parts[0].data, "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 16) == 0);
    CHECK(info.closed && info.end == 215);
    CHECK_EQ(mp_boundary(ct1, strlen(ct1), &b, &bl), 0);
    memcpy(bz, b, bl);
    bz[bl] = 0;
    CHECK_EQ(parse(body1, sizeof body1 - 1, bz), 2);
    CHECK(data_is(&parts[0], "file"));
    CHECK(data_is(&parts[1], "hello \"world\"\n"));
    char fn[64];
    CHECK_EQ(mp_filename(&parts[1], fn, sizeof fn), 12);
    CHECK(strcmp(fn, "we%22ird.txt") == 0); /* browsers and curl >= 7.81 send '"' as %22: kept as sent */
}

TEST(browser_fields_and_files)
{
    /* Chrome: a text field, a file with a raw UTF-8 name, an empty file input (filename="") */
    int n = PARSE("------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n"
                  "Content-Disposition: form-data; name=\"type\"\r\n"
                  "\r\n"
                  "image\r\n"
                  "------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n"
                  "Content-Disposition: form-data; name=\"file\"; filename=\"\xe4\xbd\xa0\xe5\xa5\xbd %22x%22.png\"\r\n"
                  "Content-Type: image/png\r\n"
                  "\r\n"
                  "\x89PNG\r\n\x1a\n\r\n"
                  "------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n"
                  "Content-Disposition: form-data; name=\"other\"; filename=\"\"\r\n"
                  "Content-Type: application/octet-stream\r\n"
                  "\r\n"
                  "\r\n"
                  "------WebKitFormBoundary7MA4YWxkTrZu0gW--\r\n",
                  "----WebKitFormBoundary7MA4YWxkTrZu0gW");
    CHECK_EQ(n, 3);
    CHECK(data_is(&parts[0], "image"));
    CHECK(!parts[0].filename.present);
    CHECK(parts[0].content_type == NULL);
    char fn[64];
    CHECK_EQ(mp_filename(&parts[0], fn, sizeof fn), -1);
    CHECK(data_is(&parts[1], "\x89PNG\r\n\x1a\n"));
    CHECK(pval_is(&parts[1].filename, "\xe4\xbd\xa0\xe5\xa5\xbd %22x%22.png"));
    CHECK_EQ(parts[2].len, 0);
    CHECK(parts[2].filename.present);
    CHECK_EQ(mp_filename(&parts[2], fn, sizeof fn), 0);
    CHECK(mp_find(parts, 3, "file") == &parts[1]);
    CHECK(mp_find(parts, 3, "type") == &parts[0]);
    CHECK(mp_find(parts, 3, "fil") == NULL);
    CHECK(mp_find(parts, 3, "files") == NULL);
}

TEST(jmessage_java_client_shape)
{
    /* The JMessage Java SDK writes ';' without spaces, "Content-Type:" without a space, a local
     * path (Windows backslashes, unescaped) as filename, and CRLF before the close delimiter. */
    int n = PARSE("--========7d4a6d158c9\r\n"
                  "Content-Disposition: form-data;name=\"image\";filename=\"C:\\Users\\me\\a.jpg\"\r\n"
                  "Content-Type:application/octet-stream\r\n"
                  "\r\n"
                  "JPEGDATA\r\n"
                  "--========7d4a6d158c9--\r\n",
                  "========7d4a6d158c9");
    CHECK_EQ(n, 1);
    CHECK(pval_is(&parts[0].name, "image"));
    CHECK(pval_is(&parts[0].filename, "C:\\Users\\me\\a.jpg"));
    CHECK(span_is(parts[0].content_type, parts[0].content_type_len, "application/octet-stream"));
    CHECK(data_is(&parts[0], "JPEGDATA"));
}

TEST(escapes_and_filename_star)
{
    int n = PARSE("--b\r\n"
                  "content-disposition: FORM-DATA ; NAME=\"a\\\"b\\\\c\" ; Filename=plain.txt ; x=1\r\n"
                  "\r\n"
                  "1\r\n"
                  "--b\r\n"
                  "Content-Disposition: form-data; name=f; filename=\"fallback.txt\"; "
                  "filename*=UTF-8''%E4%BD%A0%20x.txt\r\n"
                  "\r\n"
                  "2\r\n"
                  "--b\r\n"
                  "Content-Disposition: form-data; name=g; filename*=iso-8859-1'en'caf%E9.txt\r\n"
                  "\r\n"
                  "3\r\n"
                  "--b\r\n"
                  "Content-Disposition: form-data; name=h; filename*=UTF-8''%ZZ; filename=\"ok.txt\"\r\n"
                  "\r\n"
                  "4\r\n"
                  "--b\r\n"
                  "Content-Disposition: form-data; name=i; filename*=UTF-8''%C3%28\r\n"
                  "\r\n"
                  "5\r\n"
                  "--b--",
                  "b");
    CHECK_EQ(n, 5);
    CHECK(pval_is(&parts[0].name, "a\"b\\c"));
    CHECK(!parts[0].filename.quoted);
    CHECK(mp_find(parts, 5, "a\"b\\c") == &parts[0]);
    char fn[64];
    CHECK_EQ(mp_filename(&parts[0], fn, sizeof fn), 9);
    CHECK(strcmp(fn, "plain.txt") == 0);
    CHECK_EQ(mp_filename(&parts[1], fn, sizeof fn), 9);
    CHECK(strcmp(fn, "\xe4\xbd\xa0 x.txt") == 0);
    CHECK_EQ(mp_filename(&parts[2], fn, sizeof fn), 9);
    CHECK(strcmp(fn, "caf\xc3\xa9.txt") == 0);
    CHECK_EQ(mp_filename(&parts[3], fn, sizeof fn), 6); /* bad filename*: falls back */
    CHECK(strcmp(fn, "ok.txt") == 0);
    CHECK_EQ(mp_filename(&parts[4], fn, sizeof fn), -1); /* invalid UTF-8, no fallback */
    CHECK_EQ(mp_filename(&parts[1], fn, 4), -1);         /* too small */
    CHECK_EQ(mp_param_value(&parts[0].name, fn, 5), -1);
    CHECK_EQ(mp_param_value(&parts[0].name, fn, 6), 5);
    CHECK(info.closed);
}

TEST(preamble_epilogue_padding)
{
    int n = PARSE("This is the preamble.\r\nIt says --b at the end of a line --b\r\n"
                  "--b   \t\r\n"
                  "Content-Disposition: form-data; name=x\r\n"
                  "\r\n"
                  "v\r\n"
                  "--b-- trailing\r\n"
                  "epilogue --b\r\n--b\r\n",
                  "b");
    CHECK_EQ(n, 1);
    CHECK_EQ(info.preamble_len, 59); /* the CRLF before the delimiter belongs to it */
    CHECK(data_is(&parts[0], "v"));
    CHECK(info.closed);
    CHECK_EQ(info.end, 131); /* just past "--b-- trailing\r\n" */
}

TEST(bare_lf_everywhere)
{
    int n = PARSE("--b\n"
                  "Content-Disposition: form-data; name=\"a\"\n"
                  "X-Custom:  some value \n"
                  "\n"
                  "line1\r\nline2\n"
                  "--b\n"
                  "Content-Disposition: form-data; name=\"c\"\n"
                  "\n"
                  "\n"
                  "--b--\n",
                  "b");
    CHECK_EQ(n, 2);
    CHECK(data_is(&parts[0], "line1\r\nline2"));
    CHECK_EQ(parts[1].len, 0);
    const char *v;
    size_t vl;
    CHECK(mp_header_find(&parts[0], "x-CUSTOM", &v, &vl));
    CHECK(span_is(v, vl, "some value"));
    CHECK(!mp_header_find(&parts[0], "content-type", &v, &vl));
    CHECK(mp_header_find(&parts[0], "Content-Disposition", &v, &vl));
    CHECK(span_is(v, vl, "form-data; name=\"a\""));
}

TEST(missing_final_boundary)
{
    /* ends after a delimiter line: accepted, not closed */
    CHECK_EQ(PARSE("--b\r\nContent-Disposition: form-data; name=a\r\n\r\nxyz\r\n--b\r\n", "b"), 1);
    CHECK(!info.closed);
    CHECK(data_is(&parts[0], "xyz"));
    CHECK_EQ(PARSE("--b\r\nContent-Disposition: form-data; name=a\r\n\r\nxyz\r\n--b", "b"), 1);
    CHECK(!info.closed);
    CHECK_EQ(PARSE("--b\r\nContent-Disposition: form-data; name=a\r\n\r\nxyz\r\n--b  \r", "b"), 1);
    /* close delimiter without a line end */
    CHECK_EQ(PARSE("--b\r\n\r\nxyz\r\n--b--", "b"), 1);
    CHECK(info.closed);
    CHECK_EQ(info.end, 17);
    /* ends inside data or headers */
    CHECK_EQ(PARSE("--b\r\nContent-Disposition: form-data; name=a\r\n\r\nxyz", "b"), MP_ETRUNCATED);
    CHECK_EQ(PARSE("--b\r\nContent-Disposition: form-data; name=a\r\n\r\nxyz\r\n--", "b"), MP_ETRUNCATED);
    CHECK_EQ(PARSE("--b\r\nContent-Disposition: form-data; name=a\r\n\r\nxyz\r\n--bb", "b"), MP_ETRUNCATED);
    CHECK_EQ(PARSE("--b\r\nContent-Disposition: form-data; name=a\r\n", "b"), MP_ETRUNCATED);
    CHECK_EQ(PARSE("--b\r\nContent-Disposition: form-data; na", "b"), MP_ETRUNCATED);
    CHECK_EQ(PARSE("--b\r\n\r\nxyz\r\n--b\r\nContent-Type: x\r\n", "b"), MP_ETRUNCATED);
}

TEST(delimiter_lookalikes)
{
    /* "--abc" inside data with a longer word, mid-line, or with junk after padding is data */
    int n = PARSE("--abc\r\n"
                  "\r\n"
                  "a\r\n--abcd\r\nb --abc\r\n\n--abc x\r\n--ab\r\n"
                  "--abc\r\n"
                  "\r\n"
                  "\r\n"
                  "--abc--\r\n",
                  "abc");
    CHECK_EQ(n, 2);
    CHECK(data_is(&parts[0], "a\r\n--abcd\r\nb --abc\r\n\n--abc x\r\n--ab"));
    CHECK_EQ(parts[0].headers_len, 0);
    CHECK_EQ(parts[0].nheaders, 0);
    CHECK(!parts[0].has_disposition);
    CHECK_EQ(parts[1].len, 0);
    /* blank line directly followed by the delimiter: empty data */
    CHECK_EQ(PARSE("--b\r\nA: 1\r\n\r\n--b\r\n\r\nz\r\n--b--", "b"), 2);
    CHECK_EQ(parts[0].len, 0);
    CHECK(data_is(&parts[1], "z"));
    /* only the close delimiter: zero parts */
    CHECK_EQ(PARSE("--b--\r\n", "b"), 0);
    CHECK(info.closed);
    CHECK_EQ(PARSE("preamble\r\n--b--", "b"), 0);
    CHECK_EQ(info.preamble_len, 8);
    /* the first delimiter must start a line */
    CHECK_EQ(PARSE("x--b\r\n\r\nz\r\n--b--", "b"), 0);
    CHECK_EQ(info.preamble_len, 9);
    CHECK(info.closed);
    CHECK_EQ(PARSE("", "b"), MP_ENO_DELIMITER);
    CHECK_EQ(PARSE("no delimiter here --b", "b"), MP_ENO_DELIMITER);
    CHECK_EQ(PARSE("--bb\r\n", "b"), MP_ENO_DELIMITER);
    CHECK_EQ(PARSE("--b", "b"), 0); /* a lone delimiter at EOF: nothing */
}

TEST(nested_multipart_mixed)
{
    int n = PARSE("--AaB03x\r\n"
                  "Content-Disposition: form-data; name=\"submit-name\"\r\n"
                  "\r\n"
                  "Larry\r\n"
                  "--AaB03x\r\n"
                  "Content-Disposition: form-data; name=\"files\"\r\n"
                  "Content-Type: multipart/mixed; boundary=BbC04y\r\n"
                  "\r\n"
                  "--BbC04y\r\n"
                  "Content-Disposition: file; filename=\"file1.txt\"\r\n"
                  "Content-Type: text/plain\r\n"
                  "\r\n"
                  "... contents of file1.txt ...\r\n"
                  "--BbC04y\r\n"
                  "Content-Disposition: file; filename=\"file2.gif\"\r\n"
                  "Content-Type: image/gif\r\n"
                  "Content-Transfer-Encoding: binary\r\n"
                  "\r\n"
                  "GIF89a...\r\n"
                  "--BbC04y--\r\n"
                  "--AaB03x--\r\n",
                  "AaB03x");
    CHECK_EQ(n, 2);
    const struct mp_part *f = mp_find(parts, 2, "files");
    CHECK(f != NULL);
    if (!f) return;
    const char *b;
    size_t bl;
    CHECK_EQ(mp_boundary(f->content_type, f->content_type_len, &b, &bl), 0);
    struct mp_part inner[4];
    struct mp_body ib;
    CHECK_EQ(mp_parse(f->data, f->len, b, bl, inner, 4, &ib), 2);
    CHECK(ib.closed);
    CHECK(span_is(inner[0].disposition, inner[0].disposition_len, "file"));
    CHECK(pval_is(&inner[1].filename, "file2.gif"));
    CHECK(data_is(&inner[1], "GIF89a..."));
    const char *v;
    size_t vl;
    CHECK(mp_header_find(&inner[1], "content-transfer-encoding", &v, &vl));
    CHECK(span_is(v, vl, "binary"));
}

/* ------------------------------------------------------------------ errors and limits */

TEST(header_errors)
{
    CHECK_EQ(PARSE("--b\r\nNoColonHere\r\n\r\nx\r\n--b--", "b"), MP_EHEADER);
    CHECK_EQ(PARSE("--b\r\nName : v\r\n\r\nx\r\n--b--", "b"), MP_EHEADER);
    CHECK_EQ(PARSE("--b\r\n: v\r\n\r\nx\r\n--b--", "b"), MP_EHEADER);
    CHECK_EQ(PARSE("--b\r\nA: 1\r\n folded\r\n\r\nx\r\n--b--", "b"), MP_EHEADER);
    CHECK_EQ(PARSE("--b\r\nA: 1\r2\r\n\r\nx\r\n--b--", "b"), MP_EHEADER);
    CHECK_EQ(PARSE("--b\r\nA: 1\0002\r\n\r\nx\r\n--b--", "b"), MP_EHEADER);
    CHECK_EQ(PARSE("--b\r\nA\x80: 1\r\n\r\nx\r\n--b--", "b"), MP_EHEADER);
    CHECK_EQ(PARSE("--b\r\n--b--\r\n", "b"), MP_EHEADER); /* no blank line before the next delimiter */
    /* Content-Disposition */
    CHECK_EQ(PARSE("--b\r\nContent-Disposition: form-data; name=\"x\r\n\r\nx\r\n--b--", "b"), MP_EDISPOSITION);
    CHECK_EQ(PARSE("--b\r\nContent-Disposition: form-data; name=\"x\"y\r\n\r\nx\r\n--b--", "b"), MP_EDISPOSITION);
    CHECK_EQ(PARSE("--b\r\nContent-Disposition: form-data; name=x\"y\r\n\r\nx\r\n--b--", "b"), MP_EDISPOSITION);
    /* lenient: parameter without '=', empty parameters, trailing ';', later duplicates ignored */
    CHECK_EQ(PARSE("--b\r\nContent-Disposition: form-data;; odd ; name=x; name=y;\r\n"
                   "Content-Disposition: form-data; name=z\r\n\r\nv\r\n--b--", "b"), 1);
    CHECK(pval_is(&parts[0].name, "x"));
    /* header block too large / too many headers */
    char big[MP_MAX_PART_HEADER_BYTES + 200];
    int k = snprintf(big, sizeof big, "--b\r\nX: ");
    memset(big + k, 'a', MP_MAX_PART_HEADER_BYTES);
    k += MP_MAX_PART_HEADER_BYTES;
    k += snprintf(big + k, sizeof big - (size_t)k, "\r\n\r\nx\r\n--b--");
    CHECK_EQ(parse(big, (size_t)k, "b"), MP_EHEADERS_TOO_LARGE);
    /* exactly at the limit: fine */
    k = snprintf(big, sizeof big, "--b\r\nX: ");
    int fill = MP_MAX_PART_HEADER_BYTES - 3 - 4;
    memset(big + k, 'a', (size_t)fill);
    k += fill;
    k += snprintf(big + k, sizeof big - (size_t)k, "\r\n\r\nx\r\n--b--");
    CHECK_EQ(parse(big, (size_t)k, "b"), 1);
    CHECK_EQ(parts[0].headers_len, MP_MAX_PART_HEADER_BYTES - 2);
    /* one byte more */
    k = snprintf(big, sizeof big, "--b\r\nX: ");
    memset(big + k, 'a', (size_t)fill + 1);
    k += fill + 1;
    k += snprintf(big + k, sizeof big - (size_t)k, "\r\n\r\nx\r\n--b--");
    CHECK_EQ(parse(big, (size_t)k, "b"), MP_EHEADERS_TOO_LARGE);
    k = snprintf(big, sizeof big, "--b\r\n");
    for (int i = 0; i <= MP_MAX_PART_HEADERS; i++) k += snprintf(big + k, sizeof big - (size_t)k, "H%d: v\r\n", i);
    k += snprintf(big + k, sizeof big - (size_t)k, "\r\nx\r\n--b--");
    CHECK_EQ(parse(big, (size_t)k, "b"), MP_ETOO_MANY_HEADERS);
}

TEST(part_counts)
{
    size_t cap = 20000 * 16 + 64;
    char *buf = malloc(cap);
    size_t k = 0;
    for (int i = 0; i < 20000; i++) k += (size_t)snprintf(buf + k, cap - k, "--b\r\n\r\n%d\r\n", i % 10);
    k += (size_t)snprintf(buf + k, cap - k, "--b--\r\n");
    CHECK_EQ(parse(buf, k, "b"), MP_ETOO_MANY_PARTS);
    /* exactly MP_MAX_PARTS */
    k = 0;
    for (int i = 0; i < MP_MAX_PARTS; i++) k += (size_t)snprintf(buf + k, cap - k, "--b\r\n\r\n%d\r\n", i % 10);
    size_t body_without_close = k;
    k += (size_t)snprintf(buf + k, cap - k, "--b--\r\n");
    CHECK_EQ(parse(buf, k, "b"), MP_MAX_PARTS);
    CHECK(data_is(&parts[MP_MAX_PARTS - 1], "3"));
    /* ending with a plain delimiter after MP_MAX_PARTS parts is still fine */
    k = body_without_close + (size_t)snprintf(buf + body_without_close, cap - body_without_close, "--b\r\n");
    CHECK_EQ(parse(buf, k, "b"), MP_MAX_PARTS);
    /* a caller array smaller than the body's part count */
    struct mp_part two[2];
    static const char three[] = "--b\r\n\r\n1\r\n--b\r\n\r\n2\r\n--b\r\n\r\n3\r\n--b--";
    const uint8_t *g = guarded(three, sizeof three - 1);
    CHECK_EQ(mp_parse(g, sizeof three - 1, "b", 1, two, 2, NULL), MP_ETOO_MANY_PARTS);
    CHECK_EQ(mp_parse(g, sizeof three - 1, "b", 1, parts, 3, NULL), 3);
    free(buf);
}

TEST(binary_data_and_long_boundary)
{
    /* 1 MB of every byte value with CR/LF and near-delimiters sprinkled in */
    const char *b = "1234567890123456789012345678901234567890123456789012345678901234567890";
    size_t dl = 1u << 20;
    size_t cap = dl + 512;
    uint8_t *buf = malloc(cap);
    size_t k = (size_t)snprintf((char *)buf, cap, "--%s\r\nContent-Disposition: form-data; name=f; filename=x.bin\r\n\r\n", b);
    size_t d0 = k;
    for (size_t i = 0; i < dl; i++) buf[k + i] = (uint8_t)(i * 7 + (i >> 9));
    for (size_t i = 1000; i + 80 < dl; i += 4099) memcpy(buf + k + i, "\r\n--1234567890", 14); /* prefix only */
    k += dl;
    k += (size_t)snprintf((char *)buf + k, cap - k, "\r\n--%s--\r\n", b);
    CHECK_EQ(parse((const char *)buf, k, b), 1);
    CHECK_EQ(parts[0].len, dl);
    CHECK(parts[0].len == dl && memcmp((const uint8_t *)parts[0].data, buf + d0, dl) == 0);
    free(buf);
}

TEST(strerror_distinct)
{
    const char *seen[16];
    int n = 0;
    for (int rc = -1; rc >= -10; rc--) {
        const char *s = mp_strerror(rc);
        CHECK(strcmp(s, "unknown error") != 0);
        for (int i = 0; i < n; i++) CHECK(strcmp(seen[i], s) != 0);
        seen[n++] = s;
    }
    CHECK(strcmp(mp_strerror(0), "ok") == 0);
}

int main(void)
{
    RUN(boundary_table);
    RUN(curl_single_file);
    RUN(curl_788_captured);
    RUN(browser_fields_and_files);
    RUN(jmessage_java_client_shape);
    RUN(escapes_and_filename_star);
    RUN(preamble_epilogue_padding);
    RUN(bare_lf_everywhere);
    RUN(missing_final_boundary);
    RUN(delimiter_lookalikes);
    RUN(nested_multipart_mixed);
    RUN(header_errors);
    RUN(part_counts);
    RUN(binary_data_and_long_boundary);
    RUN(strerror_distinct);
    TEST_MAIN_END();
}
