/* multipart.h - multipart/form-data parser (RFC 7578 over RFC 2046 section 5.1), pure and zero-copy.
 *
 * Shape of picohttpparser: no allocation, no I/O, no global state, re-entrant. The caller hands
 * over the complete request body (the HTTP layer has buffered it, at most AU_HTTP_MAX_BODY) and a
 * caller-sized array of parts; every string in the result is a pointer+length pair into the body
 * or the Content-Type value (NOT NUL-terminated), so those buffers must outlive the parts.
 *
 *   const char *b; size_t bl;
 *   if (mp_boundary(ctype, ctype_len, &b, &bl) < 0) ...400
 *   struct mp_part parts[MP_MAX_PARTS]; struct mp_body info;
 *   int n = mp_parse(body, body_len, b, bl, parts, MP_MAX_PARTS, &info);
 *   n >= 0: parts[0..n) are valid;  n < 0: enum mp_err (mp_strerror)
 *
 * What is accepted (lenient where real clients are sloppy, strict where ambiguity could change
 * which bytes a part holds):
 *   - Content-Type: type "multipart" with any subtype, case-insensitive; parameters in any order
 *     and case, OWS around ';' and '=', a quoted or a bare boundary (first one wins when repeated).
 *     The boundary is 1..MP_MAX_BOUNDARY bytes of printable ASCII without '"', '\' (and, bare,
 *     without ';', ',' and spaces), compared byte for byte.
 *   - Preamble: any bytes before the first delimiter are skipped; the first delimiter may start the
 *     body or follow a line feed. Epilogue: anything after the close delimiter "--b--" is ignored.
 *   - Delimiter line: "--" boundary, then optional spaces/tabs (transport padding), then CRLF or a
 *     bare LF. A "--" boundary match followed by anything else is not a delimiter (scanning goes on).
 *   - Line ends: CRLF everywhere, bare LF tolerated everywhere (delimiter lines, part header lines,
 *     the blank line). The line end before a delimiter belongs to the delimiter: "\r\n--b" or
 *     "\n--b" ends the data, so a part whose data really ends in '\r' before a bare-LF delimiter
 *     loses that '\r' (no real client mixes the two). A blank line directly followed by a delimiter
 *     gives a part with empty data.
 *   - Part headers: "Name: value" with a token name (no space before ':'), OWS trimmed, any order
 *     and case; bytes >= 0x80 are allowed in values (browsers send raw UTF-8 file names); control
 *     bytes other than HT, a bare CR and obsolete line folding are MP_EHEADER. Unknown headers are
 *     kept in the raw block (mp_header_find). Content-Transfer-Encoding is ignored (RFC 7578 4.7).
 *     A part may have no headers at all.
 *   - Content-Disposition: disposition type then ';'-separated parameters; name, filename and
 *     filename* (RFC 8187 ext-value, decoded by mp_filename) are recorded, others skipped; values
 *     are a token or a quoted-string in which only \" and \\ are escapes (so a Windows path sent
 *     unescaped by old clients keeps its backslashes). An unterminated quote or bytes after a
 *     closing quote other than OWS and ';' are MP_EDISPOSITION; a parameter without '=' is skipped.
 *   - End of body: the close delimiter "--b--" ends the parts (closed = true). A body that ends
 *     right after a delimiter line without the closing "--" is accepted (closed = false: every part
 *     was fully delimited). A body that ends inside a part's headers or data is MP_ETRUNCATED.
 *   - Nested multipart (a part of type multipart/mixed) is not descended into: its data is the
 *     nested body; call mp_boundary on its content_type and mp_parse on its data.
 */
#ifndef AU_MULTIPART_H
#define AU_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- limits ---- */
#define MP_MAX_BOUNDARY          70     /* boundary length (RFC 2046 5.1.1) */
#define MP_MAX_PARTS             64     /* parts one body may have (ceiling for the caller's array) */
#define MP_MAX_PART_HEADERS      16     /* header fields in one part */
#define MP_MAX_PART_HEADER_BYTES 8192   /* one part's header block, line ends and blank line included */

enum mp_err {
    MP_ENOT_MULTIPART     = -1,  /* Content-Type is not multipart/... */
    MP_ENO_BOUNDARY       = -2,  /* no boundary parameter */
    MP_EBAD_BOUNDARY      = -3,  /* empty, longer than MP_MAX_BOUNDARY, bad bytes, unterminated quote */
    MP_ENO_DELIMITER      = -4,  /* the body holds no delimiter line at all */
    MP_ETOO_MANY_PARTS    = -5,  /* more parts than max_parts (or MP_MAX_PARTS) */
    MP_EHEADER            = -6,  /* malformed part header line */
    MP_ETOO_MANY_HEADERS  = -7,  /* more than MP_MAX_PART_HEADERS fields in one part */
    MP_EHEADERS_TOO_LARGE = -8,  /* a part's header block is longer than MP_MAX_PART_HEADER_BYTES */
    MP_EDISPOSITION       = -9,  /* malformed Content-Disposition value */
    MP_ETRUNCATED         = -10, /* the body ends inside a part's headers or data */
};

/* A Content-Disposition parameter value. For a quoted-string, p/len are the bytes between the
 * quotes with escapes still in (mp_param_value removes them). */
struct mp_param {
    const char *p;
    size_t len;
    bool present;
    bool quoted;
};

struct mp_part {
    const char *headers;        /* raw header block: the header lines, without the blank line */
    size_t headers_len;
    uint32_t nheaders;
    bool has_disposition;       /* a Content-Disposition field was present */
    const char *disposition;    /* its disposition type ("form-data"), OWS trimmed */
    size_t disposition_len;
    struct mp_param name, filename, filename_star;
    const char *content_type;   /* value, OWS trimmed; NULL/0 when absent (text/plain by default) */
    size_t content_type_len;
    const uint8_t *data;        /* the part's bytes, inside the body */
    size_t len;
};

struct mp_body {
    size_t preamble_len;        /* bytes before the first delimiter */
    size_t end;                 /* offset just past the close delimiter line (== body length when
                                   the body ends at a delimiter without "--") */
    bool closed;                /* the close delimiter "--boundary--" was seen */
};

/* Boundary of a Content-Type header value. On success *b / *blen point into ctype (a quoted
 * boundary without its quotes) and it returns 0; else MP_ENOT_MULTIPART, MP_ENO_BOUNDARY or
 * MP_EBAD_BOUNDARY. */
int mp_boundary(const char *ctype, size_t len, const char **b, size_t *blen);

/* Parse body[0..len) with boundary b[0..blen) into parts[0..max_parts) (max_parts is capped at
 * MP_MAX_PARTS). Returns the number of parts (0 for a body with only the close delimiter) or a
 * negative enum mp_err; `info` (may be NULL) is filled on success. blen must be 1..MP_MAX_BOUNDARY. */
int mp_parse(const uint8_t *body, size_t len, const char *b, size_t blen, struct mp_part *parts,
             size_t max_parts, struct mp_body *info);

/* Short text for an error code. */
const char *mp_strerror(int rc);

/* First part whose name parameter (after unescaping) equals name; NULL when none. */
const struct mp_part *mp_find(const struct mp_part *parts, size_t n, const char *name);

/* First header field `name` (case-insensitive) of the part: *val / *vlen get its OWS-trimmed value.
 * Returns false when absent. */
bool mp_header_find(const struct mp_part *p, const char *name, const char **val, size_t *vlen);

/* Unescape a parameter value (\" -> ", \\ -> \ in a quoted-string) into out and NUL-terminate.
 * Returns the length, or -1 when absent or when out (cap bytes) is too small. */
ssize_t mp_param_value(const struct mp_param *v, char *out, size_t cap);

/* The part's file name, NUL-terminated in out: filename* when it is a well-formed UTF-8 or
 * ISO-8859-1 ext-value (percent-decoded, Latin-1 converted to UTF-8), else filename unescaped.
 * Returns its length (0 for filename=""), or -1 when the part has neither or cap is too small.
 * The name is returned as sent (it may hold a path or any bytes): callers sanitise it. */
ssize_t mp_filename(const struct mp_part *p, char *out, size_t cap);

#endif
