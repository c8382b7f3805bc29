/* http_server.h - HTTP/1.1 connection state machine and router, independent of sockets.
 *
 * The event loop owns the socket; per connection it embeds (or allocates) a struct http_conn,
 * calls http_conn_init() once, feeds every received byte range to http_conn_feed(), and queues
 * whatever the write callback hands it. Nothing here reads or writes a socket.
 *
 *   ssize_t n = http_conn_feed(c, data, len);
 *     n >= 0   bytes consumed. Unconsumed bytes (a partial head) must be kept by the caller and
 *              fed again, in front of newly received bytes. http_conn_feed consumes everything it
 *              can: a partial head is left unconsumed (at most AU_HTTP_MAX_HEADER_BYTES, beyond
 *              that the peer gets 431/414), a partial body is consumed and buffered inside the
 *              connection (growing only as bytes arrive, up to AU_HTTP_MAX_BODY).
 *              Every complete pipelined request in the bytes is answered in one call (no
 *              AU_HTTP_MAX_PIPELINE yield: the input of one call is already bounded by one read
 *              plus a retained partial head, and a yield would need a re-feed without new data).
 *              It returns early with bytes left over only when
 *                - a handler deferred its response (http_conn_deferred()): the caller keeps the
 *                  rest and feeds it after http_resp_finish() (new data alone is not needed);
 *                - the connection was upgraded (http_conn_upgraded()): the rest belongs to the new
 *                  protocol.
 *     n == -1  close the connection once what was written has been flushed (Connection: close,
 *              HTTP/1.0 without keep-alive, a protocol error answered with 4xx/5xx + close, ...).
 *              Later calls return -1 again.
 *
 * Responses are written in request order through write(io, data, len), which must copy (queue)
 * the bytes before returning. Each response carries Content-Length (except 1xx and 204), a
 * "Connection: close" when the connection closes after it and "Connection: keep-alive" for a
 * kept HTTP/1.0 connection. No Date header. An "Expect: 100-continue" request with a body gets
 * "HTTP/1.1 100 Continue" before its final response (always, even if the body was already
 * received: deterministic whatever the read boundaries); when no route matches such a request it
 * gets its 404/405 at once, without reading the body, and the connection closes.
 *
 * Routing: a process-wide table filled at start-up, before any shard runs, and read-only after.
 * Patterns are normalised like request paths; a segment "{}" (or "{name}") captures exactly one
 * segment, a last segment "{*}" captures the rest of the path (zero or more segments, '/' kept).
 * On several matches the most literal route wins: the one whose first capture comes later.
 * A GET route also answers HEAD (body suppressed, Content-Length kept). No route for the path:
 * 404 {"error":{"code":404,"message":"not found"}}; routes for the path but none for the method:
 * 405 with Allow.
 */
#ifndef AU_HTTP_SERVER_H
#define AU_HTTP_SERVER_H

#include <stdatomic.h>
#include <sys/types.h>

#include "gateway/http/http_parse.h"

/* Limits of this module (compile-time; candidates for core/limits.h). */
#define HTTP_MAX_ROUTES         128  /* entries in the route table */
#define HTTP_ROUTE_MAX_SEGS     16   /* segments of a route pattern */
#define HTTP_ROUTE_PATTERN_MAX  256  /* bytes of a route pattern */
#define HTTP_MAX_PARAMS         8    /* captured segments of one route */
#define HTTP_RESP_HEADERS_MAX   1024 /* bytes of handler-added header lines in one response */

struct http_conn;

struct http_str {
    const char *p;
    size_t len;
};

/* What a handler sees. Valid only during the handler call: everything points into the
 * connection's buffers or the caller's feed buffer, so a deferring handler copies what it needs. */
struct http_req {
    struct http_conn *conn;
    const struct http_request *msg;  /* parsed head: raw target, headers, version, flags */
    enum http_method method;
    const char *method_str;
    size_t method_len;
    const char *path;                /* normalised, NUL-terminated */
    size_t path_len;
    const char *query;               /* raw, still encoded, without '?'; NULL when absent */
    size_t query_len;
    size_t nparams;
    struct http_str params[HTTP_MAX_PARAMS]; /* captures, %-decoded, NUL-terminated */
    const uint8_t *body;             /* de-chunked body; NULL when empty */
    size_t body_len;
};

/* Response builder, one per connection (embedded in http_conn). */
struct http_resp {
    struct http_conn *conn;
    int status;
    bool close;        /* Connection: close, then close */
    bool head;         /* HEAD: send headers only */
    bool deferred;     /* completed later with http_resp_finish() */
    bool upgrade;      /* 101 Switching Protocols */
    bool failed;       /* allocation failed while building: a 500 is sent instead */
    bool ka10;         /* HTTP/1.0 request with keep-alive */
    bool req_body;     /* the request had a body */
    uint8_t minor;     /* request's HTTP/1.<minor> */
    uint16_t hdr_len;
    const uint8_t *body;
    size_t body_len;
    uint8_t *body_buf; /* owned copy of the body, released after sending */
    size_t body_cap;
    char hdr[HTTP_RESP_HEADERS_MAX]; /* "Name: value\r\n" lines added by the handler */
};

typedef void (*http_write_fn)(void *io, const void *data, size_t len);
typedef void (*http_handler_fn)(const struct http_req *req, struct http_resp *resp, void *ctx);
/* Body gate: asked about a request whose body is larger than AU_HTTP_PREAUTH_BODY_MAX (or chunked) once its
 * head is parsed and before any of the body is buffered. `req` has the head only (method, path, query,
 * headers; no params, no body). Returns true to read the body; false after filling `resp` (an error): that
 * answer is sent with Connection: close and the body is never read. */
typedef bool (*http_gate_fn)(const struct http_req *req, struct http_resp *resp, void *ctx);

struct http_conn {
    void *io;
    size_t charged;       /* bytes of buf counted against the process-wide body budget */
    http_write_fn write;
    void *ctx;            /* passed to handlers (per-shard state) */
    uint8_t state;
    bool in_handler;
    uint8_t *buf;         /* head + body of a request whose body spans reads */
    size_t buf_len, buf_cap;
    size_t head_len;
    uint64_t body_left;   /* Content-Length bytes still to come */
    struct http_chunked chunk;
    uint64_t requests;    /* requests answered (or deferred) on this connection */
    struct http_resp resp;
};

/* ---- routes (start-up only; not thread-safe) ----
 * A module declares its routes as one static table (struct http_routes) and exports it; the composition
 * (gateway/routes.c) lists every module's table and registers them in order with http_routes_add. Captures are
 * written "{name}" (the name documents the parameter: {username}, {gid}, {msgid}, {appkey}); a handler reads
 * them by position in req->params. */
struct http_route_def {
    const char *method;
    const char *pattern;
    http_handler_fn fn;
};
struct http_routes {
    const struct http_route_def *r;
    size_t n;
};
/* Returns 0, or -1: table full, pattern invalid/too long/too many segments or captures,
 * method not a token, or the same method and pattern registered twice (capture names aside: "/a/{x}" and
 * "/a/{y}" are the same pattern). */
int http_route_add(const char *method, const char *path_pattern, http_handler_fn fn);
/* Every route of t in order: 0, or -1 at the first refused one (its index in *bad when bad is not NULL; the
 * routes before it stay registered). */
int http_routes_add(const struct http_routes *t, size_t *bad);
void http_routes_clear(void);

/* ---- request bodies (start-up only; process-wide) ----
 * A body that spans reads is buffered in the connection until complete. Unauthenticated peers must not make
 * the process buffer much: bodies above AU_HTTP_PREAUTH_BODY_MAX (and chunked ones) pass the gate first (NULL:
 * no gate, every body is read), and every connection's buffered head + body counts against one budget for the
 * whole process (0: none); a request whose declared body does not fit what is left, or whose chunked body
 * grows past it, is answered 503 with Connection: close. */
void http_set_body_gate(http_gate_fn gate);
void http_set_body_budget(uint64_t bytes);
uint64_t http_body_buffered(void);   /* bytes counted against the budget now (any thread) */

/* ---- connections ---- */
void http_conn_init(struct http_conn *c, void *io, http_write_fn write);
void http_conn_set_ctx(struct http_conn *c, void *ctx);
ssize_t http_conn_feed(struct http_conn *c, const uint8_t *data, size_t len);
/* Frees buffers. If a response is deferred, the owner must first make sure that nobody calls
 * http_resp_finish() on it any more. */
void http_conn_free(struct http_conn *c);
bool http_conn_idle(const struct http_conn *c);     /* between requests: nothing buffered */
bool http_conn_deferred(const struct http_conn *c); /* a handler's response is pending */
bool http_conn_upgraded(const struct http_conn *c); /* a 101 was sent: hand over the rest */
bool http_conn_in_body(const struct http_conn *c);  /* a request's body is being received */
size_t http_conn_body_received(const struct http_conn *c); /* its bytes so far (de-chunked) */
/* Give up on the request being received (a deadline passed): answer status (e.g. 408) with
 * Connection: close; later feeds return -1. Not while a response is deferred. */
void http_conn_fail(struct http_conn *c, int status, const char *msg);

/* ---- response builder (inside a handler, or on a deferred response) ---- */
void http_resp_status(struct http_resp *resp, int code);                 /* 200..599 */
/* Adds "name: value"; -1 (and nothing added) when name is not a token, value has CR/LF/CTLs,
 * the header space is full, or name is Content-Length/Transfer-Encoding/Connection (managed
 * here: see http_resp_close / http_resp_upgrade). */
int http_resp_header(struct http_resp *resp, const char *name, const char *value);
int http_resp_body(struct http_resp *resp, const void *data, size_t len);  /* copy; replaces */
int http_resp_append(struct http_resp *resp, const void *data, size_t len); /* copy; appends */
/* Body without a copy: data must stay valid until the response is written (static data). */
void http_resp_body_ref(struct http_resp *resp, const void *data, size_t len);
/* status + "Content-Type: application/json" + body = json (copied). */
int http_resp_json(struct http_resp *resp, int code, const char *json);
int http_resp_json_len(struct http_resp *resp, int code, const char *json, size_t len);
/* status + {"error":{"code":<code>,"message":"<message, JSON-escaped>"}} */
int http_resp_error(struct http_resp *resp, int status, long code, const char *message);
void http_resp_close(struct http_resp *resp);
/* Answer 101 Switching Protocols with "Upgrade: <protocol>" (add e.g. Sec-WebSocket-Accept with
 * http_resp_header). -1 unless the request is HTTP/1.1 with Connection: upgrade + Upgrade and
 * no body. After it, http_conn_feed stops at the end of this request; http_conn_upgraded(). */
int http_resp_upgrade(struct http_resp *resp, const char *protocol);
/* Complete the response later: http_conn_feed stops consuming after this request; the owner
 * keeps feeding nothing until http_resp_finish(resp) (same shard), which writes the response
 * and returns 0 (the caller then feeds any bytes it kept) or -1 (close after flushing). */
void http_resp_defer(struct http_resp *resp);
int http_resp_finish(struct http_resp *resp);

/* ---- small helpers ---- */
const char *http_status_reason(int code);
/* Case-insensitive header value lookup: pointer (not NUL-terminated) + *len, or NULL. */
const char *http_req_header(const struct http_req *req, const char *name, size_t *len);

#endif
