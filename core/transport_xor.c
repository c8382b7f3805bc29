/* transport_xor.c - a transforming transport for tests only (see au_transport_xor_test in loop.h).
 *
 * It exercises every part of the transport interface the way TLS or WebSocket will, with a wire format a test
 * client writes in a few lines:
 *   handshake  each side sends "AXT1" and a one-byte seed; the server answers once it has the client's 5 bytes
 *              and only then opens the protocol (au_conn_handshake_done). Bytes after them in the same read are
 *              frames (early data).
 *   frames     a 2-byte big-endian payload length L (at most AU_XORT_FRAME_MAX), then L payload bytes, each XORed
 *              with xort_key(seed of the sending side, n), n = the payload bytes that side sent before: a byte
 *              decoded with the wrong state (a fresh transport after a hand-off, a lost or repeated byte) decodes
 *              to garbage.
 *   close      a zero-length frame is the close-notify: sent by au_transport.shutdown before the socket closes;
 *              received, the connection closes.
 * It delivers no frame while its connection is being handed off: the rest stays in its state (pending) and the
 * target shard delivers it (the loop asks pending() after the move). Not for production: selected only through
 * the AURORA_TEST_TRANSPORT environment variable or by a test program. */
#include "core/loop.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

#define XORT_MAGIC "AXT1"
#define XORT_HELLO 5 /* magic + seed */

struct xort {
    uint8_t *buf;           /* raw bytes not decoded yet (partial frame, or frames held during a hand-off) */
    uint32_t len, cap;
    uint64_t n_in, n_out;   /* payload bytes decoded / encoded so far */
    uint8_t seed_in, seed_out;
    bool hs_done;
};

static inline uint8_t xort_key(uint8_t seed, uint64_t n) { return (uint8_t)(seed + n * 131u + (n >> 8)); }

static int xort_open(struct au_conn *c)
{
    struct xort *x = calloc(1, sizeof *x);
    if (!x) return -1;
    x->seed_out = (uint8_t)(c->id * 37u + 11u);
    c->tp_state = x;
    return AU_TP_HANDSHAKE;
}

static void xort_free(struct au_conn *c)
{
    struct xort *x = c->tp_state;
    free(x->buf);
    free(x);
    c->tp_state = NULL;
}

static bool xort_frame_ready(const struct xort *x)
{
    return x->hs_done && x->len >= 2 && x->len >= 2u + (((uint32_t)x->buf[0] << 8) | x->buf[1]);
}

static bool xort_pending(const struct au_conn *c) { return xort_frame_ready(c->tp_state); }

static int xort_decode(struct au_conn *c, const uint8_t *data, size_t len)
{
    struct xort *x = c->tp_state;
    if (x->len + len > AU_XORT_BUF_MAX) return -1;
    if (len) {
        if (x->len + len > x->cap) {
            uint32_t cap = x->cap ? x->cap : 512;
            while (cap < x->len + len) cap *= 2;
            uint8_t *nb = realloc(x->buf, cap);
            if (!nb) return -1;
            x->buf = nb;
            x->cap = cap;
        }
        memcpy(x->buf + x->len, data, len);
        x->len += (uint32_t)len;
    }
    uint32_t off = 0;
    int r = 0;
    if (!x->hs_done) {
        if (x->len < XORT_HELLO) return 0;
        if (memcmp(x->buf, XORT_MAGIC, 4) != 0) return -1;
        x->seed_in = x->buf[4];
        x->hs_done = true;
        off = XORT_HELLO;
        uint8_t hello[XORT_HELLO] = { 'A', 'X', 'T', '1', x->seed_out };
        au_conn_raw_write(c, hello, sizeof hello);
        au_conn_handshake_done(c);
    }
    /* Frames, in order; none while the connection moves (the target delivers them: pending). */
    while (!au_conn_handing_off(c) && !(c->flags & (AU_CONN_CLOSING | AU_CONN_CLOSED)) && x->len - off >= 2) {
        uint32_t flen = ((uint32_t)x->buf[off] << 8) | x->buf[off + 1];
        if (flen > AU_XORT_FRAME_MAX) {
            r = -1;
            break;
        }
        if (x->len - off < 2 + flen) break;
        if (flen == 0) { /* the peer's close-notify */
            r = -1;
            break;
        }
        uint8_t *p = x->buf + off + 2;
        for (uint32_t i = 0; i < flen; i++) p[i] ^= xort_key(x->seed_in, x->n_in + i);
        x->n_in += flen;
        off += 2 + flen;
        if (au_conn_deliver(c, p, flen) < 0) {
            r = -1;
            break;
        }
    }
    if (off) {
        memmove(x->buf, x->buf + off, x->len - off);
        x->len -= off;
    }
    if (x->len == 0 && x->cap > 4096) {
        free(x->buf);
        x->buf = NULL;
        x->cap = 0;
    }
    return r;
}

static void xort_encode(struct au_conn *c, const uint8_t *data, size_t len)
{
    struct xort *x = c->tp_state;
    uint8_t frame[2 + AU_XORT_FRAME_MAX];
    while (len) {
        uint32_t n = len > AU_XORT_FRAME_MAX ? AU_XORT_FRAME_MAX : (uint32_t)len;
        frame[0] = (uint8_t)(n >> 8);
        frame[1] = (uint8_t)n;
        for (uint32_t i = 0; i < n; i++) frame[2 + i] = data[i] ^ xort_key(x->seed_out, x->n_out + i);
        x->n_out += n;
        au_conn_raw_write(c, frame, 2 + n);
        data += n;
        len -= n;
    }
}

static void xort_shutdown(struct au_conn *c)
{
    struct xort *x = c->tp_state;
    static const uint8_t notify[2] = { 0, 0 };
    if (x && x->hs_done) au_conn_raw_write(c, notify, sizeof notify);
}

const struct au_transport au_transport_xor_test = {
    .name = "xor-test",
    .secure = false,
    .open = xort_open,
    .decode = xort_decode,
    .encode = xort_encode,
    .pending = xort_pending,
    .shutdown = xort_shutdown,
    .free = xort_free,
};
