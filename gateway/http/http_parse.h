/* http_parse.h - HTTP/1.1 request parser, chunked-body decoder and small helpers.
 *
 * Pure functions over bytes in picohttpparser's shape: no allocation, no I/O, no global state,
 * re-entrant. Strings in the parsed structures are pointer+length pairs into the caller's buffer
 * (zero copy), so the buffer must outlive their use; they are NOT NUL-terminated.
 *
 * http_parse_request() results:
 *     > 0  bytes consumed by the head (leading empty lines + request line + headers + blank line);
 *          the body, if any, starts there
 *     = 0  HTTP_NEED_MORE: the head is incomplete so far and valid as far as it goes
 *     < 0  one of enum http_parse_err; http_parse_status() gives the HTTP status to answer with
 *
 * Line endings: CRLF, and a bare LF is tolerated everywhere a CRLF is expected (request line,
 * header lines, the blank line, chunk-size lines, after chunk data, trailers), as RFC 9112 2.2
 * permits. A bare CR (CR not followed by LF) is always an error. Obsolete line folding (a header
 * line starting with SP or HT) is rejected. Empty lines before the request line are skipped.
 *
 * Framing rules (request smuggling defences):
 *   - Content-Length: digits only (OWS trimmed); repeated fields or comma lists must all agree;
 *     a value above AU_HTTP_MAX_BODY is HTTP_EBODY_TOO_LARGE (413).
 *   - Transfer-Encoding: only exactly one "chunked" is supported; anything else is
 *     HTTP_ETRANSFER_CODING (501). Transfer-Encoding together with Content-Length, or in an
 *     HTTP/1.0 request, is HTTP_EFRAMING (400).
 *   - No Content-Length and no Transfer-Encoding: the request has no body.
 * Host is not required (lenient); the request-target may be origin-form ("/p?q"), absolute-form
 * ("http://host/p?q", path taken from it) or "*"; a "#fragment" is dropped.
 */
#ifndef AU_HTTP_PARSE_H
#define AU_HTTP_PARSE_H

#include <sys/types.h>

#include "core/common.h"
#include "core/limits.h"

enum http_method {
    HTTP_M_OTHER = 0, /* a valid token that is none of the below */
    HTTP_M_GET, HTTP_M_HEAD, HTTP_M_POST, HTTP_M_PUT, HTTP_M_DELETE, HTTP_M_PATCH, HTTP_M_OPTIONS,
};

enum http_parse_err {
    HTTP_NEED_MORE            = 0,
    HTTP_EMETHOD              = -1,  /* 400: method is not a token */
    HTTP_ETARGET              = -2,  /* 400: request-target empty, bad bytes, unsupported form */
    HTTP_EVERSION             = -3,  /* 400: malformed "HTTP/x.y" or request line */
    HTTP_EVERSION_UNSUPPORTED = -4,  /* 505: well-formed version whose major is not 1 */
    HTTP_EHEADER              = -5,  /* 400: bad header line (no colon, bad bytes, folding, bare CR) */
    HTTP_ETOO_MANY_HEADERS    = -6,  /* 431: more than AU_HTTP_MAX_HEADERS fields */
    HTTP_EHEADERS_TOO_LARGE   = -7,  /* 431: head longer than AU_HTTP_MAX_HEADER_BYTES */
    HTTP_EURI_TOO_LONG        = -8,  /* 414: request line alone does not fit AU_HTTP_MAX_HEADER_BYTES */
    HTTP_ECONTENT_LENGTH      = -9,  /* 400: Content-Length not digits, or values disagree */
    HTTP_EBODY_TOO_LARGE      = -10, /* 413: body above the limit (declared or chunked total) */
    HTTP_ETRANSFER_CODING     = -11, /* 501: Transfer-Encoding other than a single "chunked" */
    HTTP_EFRAMING             = -12, /* 400: both Transfer-Encoding and Content-Length, or TE in 1.0 */
    HTTP_ECHUNK               = -13, /* 400: malformed chunked framing */
};

struct http_header {
    const char *name;
    size_t name_len;
    const char *value;  /* leading and trailing OWS trimmed */
    size_t value_len;
};

struct http_request {
    const char *method;
    size_t method_len;
    enum http_method method_id;
    const char *target;     /* raw request-target as sent */
    size_t target_len;
    const char *path;       /* target up to '?' (for absolute-form: the path part, "/" if empty) */
    size_t path_len;
    const char *query;      /* after '?', up to '#'; NULL when there is no '?' */
    size_t query_len;
    int minor_version;      /* HTTP/1.<minor> */
    size_t num_headers;
    struct http_header headers[AU_HTTP_MAX_HEADERS];
    /* derived */
    uint64_t content_length; /* 0 when absent */
    bool has_content_length;
    bool chunked;            /* Transfer-Encoding: chunked */
    bool keep_alive;         /* 1.1: unless "Connection: close"; 1.0: only with "Connection: keep-alive" */
    bool expect_continue;    /* "Expect: 100-continue" on an HTTP/1.1 request */
    bool upgrade;            /* "Connection: upgrade" token and an Upgrade field present */
};

int http_parse_request(const uint8_t *buf, size_t len, struct http_request *req);

/* HTTP status to answer a parse error with (400, 413, 414, 431, 501, 505); 0 for rc >= 0. */
int http_parse_status(int rc);
/* Short text for a parse result ("bad header", ...). */
const char *http_parse_strerror(int rc);

/* Case-insensitive header lookup; NULL when absent (first match when repeated). */
const struct http_header *http_header_find(const struct http_request *req, const char *name);
/* Does the comma-separated list in value contain token (case-insensitive, OWS trimmed)? */
bool http_list_has_token(const char *value, size_t len, const char *token);

/* ---- chunked transfer coding: incremental decoder ------------------------------------------
 * The decoder keeps its own state between calls, so a caller hands it each byte exactly once
 * (nothing is re-fed). Each call consumes framing and returns at most one span of data:
 *     HTTP_CHUNK_DATA (1)  *data, *data_len: body bytes inside buf (never spans two chunks)
 *     HTTP_CHUNK_DONE (2)  last-chunk and trailer section consumed: body complete; bytes after
 *                          *consumed belong to the next request. Further calls return DONE, 0 used.
 *     HTTP_NEED_MORE  (0)  all of buf was consumed (all framing); call again with new bytes
 *     < 0                  HTTP_ECHUNK, HTTP_EBODY_TOO_LARGE (total data > max_body),
 *                          HTTP_EHEADERS_TOO_LARGE / HTTP_ETOO_MANY_HEADERS (trailer section)
 * *consumed is always set (bytes of buf used, also before an error).
 * Chunk extensions are skipped (chunk-size line limited to AU_HTTP_MAX_HEADER_BYTES). Trailer
 * fields are validated like header fields, counted and discarded (their bytes and number are in
 * trailer_bytes / trailers; limits AU_HTTP_MAX_HEADER_BYTES and AU_HTTP_MAX_HEADERS). */
enum { HTTP_CHUNK_DATA = 1, HTTP_CHUNK_DONE = 2 };

struct http_chunked {
    uint64_t remaining;  /* data bytes left in the current chunk, or the size being read */
    uint64_t total;      /* data bytes decoded so far */
    uint64_t max_body;
    uint32_t line_bytes; /* bytes of the current chunk-size line */
    uint32_t trailer_bytes;
    uint32_t trailers;
    uint8_t state;
};

void http_chunked_init(struct http_chunked *d, uint64_t max_body);
int http_chunked_decode(struct http_chunked *d, const uint8_t *buf, size_t len, size_t *consumed,
                        const uint8_t **data, size_t *data_len);

/* ---- helpers ---- */

/* Percent-decode in[0..len) into out (cap bytes; out == in is allowed: decoding never grows).
 * plus_as_space: '+' becomes ' ' (query strings). Returns the decoded length, or -1 on a bad
 * %-escape or when cap is too small. Does not NUL-terminate. */
ssize_t http_url_decode(const char *in, size_t len, char *out, size_t cap, bool plus_as_space);

/* Find query parameter `name` (compared after decoding) in query[0..len) ("a=1&b=2", ';' is not
 * a separator). On success *val, *val_len point at the raw (still encoded) value and it returns
 * true; a key without '=' has an empty value. */
bool http_query_find(const char *query, size_t len, const char *name, const char **val, size_t *val_len);
/* As http_query_find, then decode the value ('+' = space) into out and NUL-terminate it.
 * Returns the decoded length, -1 when absent, -2 on a bad escape or when cap is too small. */
ssize_t http_query_get(const char *query, size_t len, const char *name, char *out, size_t cap);

/* Normalise an absolute path: collapse repeated '/', drop "." segments, resolve ".." (never
 * above the root), drop a trailing '/' ("/v1/users//x/" -> "/v1/users/x"; "" or "/" -> "/").
 * Works on the raw (undecoded) path. out needs cap >= len + 1 (+1 for an empty path); out is
 * NUL-terminated. Returns the normalised length, or -1 (path not starting with '/', cap small). */
ssize_t http_path_normalize(const char *in, size_t len, char *out, size_t cap);

/* Decode standard base64 (padding optional, no whitespace). Returns bytes written or -1. */
ssize_t http_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap);

/* Decode an Authorization header value "Basic <base64(user:pass)>" (scheme case-insensitive).
 * user and pass are NUL-terminated; the password may contain ':'. Returns 0, or -1 when the
 * value is not Basic, the base64 is bad, there is no ':', a part contains NUL or does not fit. */
int http_basic_auth_decode(const char *value, size_t len, char *user, size_t user_cap,
                           char *pass, size_t pass_cap);

#endif
