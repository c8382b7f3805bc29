/* loop.c - thread-per-core io_uring event loop (see loop.h).
 *
 * user_data of every SQE = (op << 56) | pointer-or-index: the op says what completed, the low bits
 * say for whom. A connection is freed only when no operation referencing it is in flight (c->ops),
 * so a stale completion always finds its connection alive and no generation counters are needed. */
#include "core/loop.h"
#include "core/log.h"
#include "core/uring_compat.h"

#include <xxhash.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

enum {
    OP_ACCEPT = 1,   /* low: listener index */
    OP_RECV,         /* low: conn */
    OP_SEND,         /* low: send context */
    OP_CLOSE,        /* low: conn */
    OP_WAKE,         /* doorbell from another shard or the main thread */
    OP_HANDOFF_IN,   /* low: handoff record (target side) */
    OP_HANDOFF_OUT,  /* low: conn (source side) */
    OP_CANCEL,       /* completion of a cancel request (ignored) */
    OP_CLOSE_SLOT,   /* close of a slot with no conn (ignored) */
    OP_PEER,         /* low: peer query (SO_PEERNAME of an accepted socket) */
};
#define UD(op, p) (((uint64_t)(op) << 56) | (uint64_t)(uintptr_t)(p))
#define UD_OP(u) ((unsigned)((u) >> 56))
#define UD_PTR(u) ((void *)(uintptr_t)((u) & ((1ull << 56) - 1)))

#define SEND_MAX_BYTES (256u * 1024u)  /* bytes gathered into one sendmsg */
#define CLOSE_FLUSH_MS 5000u           /* flush deadline for a closing connection */

struct sendctx {
    struct sendctx *next_free;
    struct au_conn *conn;
    struct msghdr msg;
    struct iovec iov[AU_SEND_IOV_MAX];
};

/* What travels with a connection to another shard: the protocol's state (arg), the transport and its state, the
 * decoded bytes the protocol did not consume (in) and, apart from them, raw bytes received after the move began
 * (raw: not yet seen by the transport). */
struct handoff {
    void *arg;
    const struct au_proto *proto; /* not necessarily the listener's: au_conn_upgrade may have switched it */
    const struct au_transport *tp;
    void *tp_state;
    uint8_t *in;
    uint32_t in_len, in_cap;
    uint8_t *raw;
    uint32_t raw_len, raw_cap;
    uint8_t listener;
    bool sent;                    /* the descriptor is on its way (send_fd ran) */
    bool recv_cancelled;          /* the cancel of our multishot recv is submitted */
    uint64_t id;
    uint32_t peer_ip4;
    int to;
};

/* The peer address of an accepted socket, asked of the kernel (SO_PEERNAME through IORING_OP_URING_CMD,
 * a direct descriptor has no fd for getpeername) in the same submission as, and hard-linked before, the
 * first recv: it completes before any byte of the connection is seen. */
struct peer_query {
    struct au_conn *c;
    struct peer_query *next_free;
    union {
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
    } a;
};
#define PEER_QUERY_FREE_KEEP 256 /* finished queries a shard keeps for reuse (no allocation per accept) */
static __thread struct peer_query *t_pq_free;
static __thread unsigned t_pq_nfree;

static atomic_int g_peer_warned; /* the peer-address query failed once (an old kernel): said so */
static int g_main_ring_ok;
static struct au_listener_spec g_lspec[8]; /* the listeners of the running loop (with the test transport override) */
static struct io_uring g_main_ring; /* main thread: sends stop doorbells */

/* ------------------------------------------------------------------ helpers */

static struct io_uring_sqe *get_sqe(struct au_shard *s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (AU_UNLIKELY(!sqe)) {
        io_uring_submit(&s->ring);
        sqe = io_uring_get_sqe(&s->ring);
    }
    AU_ASSERT(sqe != NULL);
    return sqe;
}

uint32_t au_loop_fixed_files(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    uint64_t n = rl.rlim_cur;
    if (n > AU_FIXED_FILES_MAX) n = AU_FIXED_FILES_MAX;
    return (uint32_t)n;
}

static struct au_outseg *seg_get(struct au_shard *s)
{
    struct au_outseg *g = s->seg_free;
    if (g) {
        s->seg_free = g->next;
        s->nseg_free--;
    } else {
        g = malloc(sizeof *g);
        AU_ASSERT(g != NULL);
    }
    g->next = NULL;
    return g;
}

static void seg_put(struct au_shard *s, struct au_outseg *g)
{
    au_buf_unref(g->buf);
    if (s->nseg_free >= 4096) {
        free(g);
        return;
    }
    g->next = s->seg_free;
    s->seg_free = g;
    s->nseg_free++;
}

static void mark_dirty(struct au_conn *c)
{
    if (c->flags & AU_CONN_DIRTY) return;
    c->flags |= AU_CONN_DIRTY;
    c->dirty_next = c->shard->dirty;
    c->shard->dirty = c;
}

/* ------------------------------------------------------------------ receive */

/* poll_first: the socket was just drained (its bytes were read a moment ago), so skip the receive attempt that
 * would only find it empty and arm the poll at once (IORING_RECVSEND_POLL_FIRST; bytes already there are
 * still received at once: the poll finds them ready). */
static void arm_recv_ex(struct au_conn *c, bool poll_first)
{
    if (c->flags & (AU_CONN_RECV_ARMED | AU_CONN_CLOSED | AU_CONN_PAUSED | AU_CONN_IN_FULL)) return;
    struct io_uring_sqe *sqe = get_sqe(c->shard);
    au_prep_recv_multishot_fixed(sqe, c->slot, AU_RECV_BGID);
    if (poll_first) sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    io_uring_sqe_set_data64(sqe, UD(OP_RECV, c));
    c->flags |= AU_CONN_RECV_ARMED;
    c->ops++;
}

static void arm_recv(struct au_conn *c) { arm_recv_ex(c, false); }

/* peer_ip4 from a peer address: IPv4 (also v4-mapped IPv6) as is; other IPv6 peers by a non-zero 32-bit
 * digest of their /64 (one host usually holds a whole /64: keying by the full address would give it 2^64
 * throttle identities). */
static uint32_t peer_key(const struct peer_query *q, int len)
{
    if (len == (int)sizeof q->a.v4 && q->a.v4.sin_family == AF_INET) return q->a.v4.sin_addr.s_addr;
    if (len != (int)sizeof q->a.v6 || q->a.v6.sin6_family != AF_INET6) return 0;
    const uint8_t *b = q->a.v6.sin6_addr.s6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&q->a.v6.sin6_addr)) {
        uint32_t v;
        memcpy(&v, b + 12, 4);
        return v;
    }
    uint32_t h = XXH32(b, 8, 0x61757236u);
    return h ? h : 1;
}

static struct peer_query *pq_get(void)
{
    struct peer_query *q = t_pq_free;
    if (q) {
        t_pq_free = q->next_free;
        t_pq_nfree--;
    } else {
        q = malloc(sizeof *q);
        AU_ASSERT(q != NULL);
    }
    memset(q, 0, sizeof *q);
    return q;
}

static void pq_put(struct peer_query *q)
{
    if (t_pq_nfree >= PEER_QUERY_FREE_KEEP) {
        free(q);
        return;
    }
    q->next_free = t_pq_free;
    t_pq_free = q;
    t_pq_nfree++;
}

static void on_peer(struct peer_query *q, int res)
{
    struct au_conn *c = q->c;
    if (res > 0) c->peer_ip4 = peer_key(q, res);
    else if (res != -ECANCELED && res != -EBADF && res != -ENOTCONN && !atomic_exchange(&g_peer_warned, 1))
        au_warn("peer addresses unavailable (SO_PEERNAME through io_uring: %s): logins are not throttled per "
                "address", strerror(-res));
    pq_put(q);
    c->ops--;
}

/* The first receive of an accepted connection is a single-shot recv: the listener defers accepting until the
 * first bytes are there (TCP_DEFER_ACCEPT), so it completes at once, without arming a poll, and the protocol
 * decides on those bytes whether the connection stays here (then the multishot recv is armed) or moves to
 * another shard (then nothing armed here has to be cancelled first). */
static void arm_recv_once(struct au_conn *c)
{
    if (c->flags & (AU_CONN_RECV_ARMED | AU_CONN_CLOSED | AU_CONN_PAUSED | AU_CONN_IN_FULL)) return;
    struct io_uring_sqe *sqe = get_sqe(c->shard);
    io_uring_prep_recv(sqe, (int)c->slot, NULL, 0, 0);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    sqe->buf_group = AU_RECV_BGID;
    io_uring_sqe_set_data64(sqe, UD(OP_RECV, c));
    c->flags |= AU_CONN_RECV_ARMED;
    c->ops++;
}

static void recycle_buf(struct au_shard *s, unsigned bid)
{
    io_uring_buf_ring_add(s->br, s->bufs + (size_t)bid * AU_RECV_BUF_SIZE, AU_RECV_BUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(AU_RECV_BUF_COUNT), 0);
    io_uring_buf_ring_advance(s->br, 1);
}

static void bytes_append(uint8_t **buf, uint32_t *blen, uint32_t *bcap, const uint8_t *data, size_t len)
{
    if (*blen + len > *bcap) {
        size_t cap = *bcap ? *bcap : 256;
        while (cap < *blen + len) cap *= 2;
        *buf = realloc(*buf, cap);
        AU_ASSERT(*buf != NULL);
        *bcap = (uint32_t)cap;
    }
    memcpy(*buf + *blen, data, len);
    *blen += (uint32_t)len;
}

static void in_append(struct au_conn *c, const uint8_t *data, size_t len)
{
    bytes_append(&c->in, &c->in_len, &c->in_cap, data, len);
}

static void in_release(struct au_conn *c)
{
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
}

static void start_handoff(struct au_conn *c);
static void begin_close(struct au_conn *c, bool flush);
static void maybe_free(struct au_conn *c);

/* The unconsumed-input bound (au_conn_set_in_max): past it stop receiving (cancel the multishot recv; its
 * last completion does not re-arm while AU_CONN_IN_FULL is set), back at or under it receive again. */
static void in_bound(struct au_conn *c)
{
    uint32_t max = c->in_max ? c->in_max : AU_CONN_IN_MAX;
    if (c->in_len > max) {
        if (c->flags & AU_CONN_IN_FULL) return;
        c->flags |= AU_CONN_IN_FULL;
        AU_STAT_INC(c->shard, in_full);
        if (c->flags & AU_CONN_RECV_ARMED) {
            struct io_uring_sqe *sqe = get_sqe(c->shard);
            io_uring_prep_cancel64(sqe, UD(OP_RECV, c), 0);
            io_uring_sqe_set_data64(sqe, UD(OP_CANCEL, 0));
        }
    } else if (c->flags & AU_CONN_IN_FULL) {
        c->flags &= ~AU_CONN_IN_FULL;
        if (!(c->flags & (AU_CONN_CLOSING | AU_CONN_CLOSED))) arm_recv(c); /* no-op until a cancelled recv ended */
    }
}

static void upgrade_input(struct au_conn *c);

int au_conn_deliver(struct au_conn *c, const uint8_t *data, size_t len)
{
    if (c->flags & (AU_CONN_CLOSING | AU_CONN_CLOSED)) return -1;
    if (c->flags & (AU_CONN_HANDOFF | AU_CONN_HANDSHAKE)) {
        /* kept for the target shard / for the protocol once the handshake is done */
        if (len) in_append(c, data, len);
        return 0;
    }
    ssize_t k;
    c->flags |= AU_CONN_IN_DATA;
    if (c->in_len == 0) {
        k = c->proto->on_data(c, data, len);
        if (k >= 0 && (size_t)k < len) in_append(c, data + k, len - (size_t)k);
    } else {
        if (len) in_append(c, data, len);
        k = c->proto->on_data(c, c->in, c->in_len);
        if (k > 0) {
            AU_ASSERT((size_t)k <= c->in_len);
            memmove(c->in, c->in + k, c->in_len - (size_t)k);
            c->in_len -= (uint32_t)k;
        }
        if (c->in_len == 0 && c->in_cap > 4096) in_release(c); /* idle connections give big buffers back */
    }
    c->flags &= ~AU_CONN_IN_DATA;
    if (k < 0) {
        begin_close(c, true);
        return -1;
    }
    if (c->in_len == 0 && c->in && c->in_cap > 0 && !(c->flags & AU_CONN_HANDOFF)) in_release(c);
    if (AU_UNLIKELY(c->flags & (AU_CONN_HANDOFF | AU_CONN_UPGRADED))) {
        if (c->flags & AU_CONN_UPGRADED) upgrade_input(c);
        /* Inside the transport's decode the move starts when decode returns (tp_decode): it may still deliver
         * bytes, and its state must not travel while it runs. */
        if ((c->flags & AU_CONN_HANDOFF) && !(c->flags & AU_CONN_IN_DECODE)) start_handoff(c);
    } else {
        in_bound(c);
    }
    return 0;
}

/* Raw bytes through the transport's decode (data NULL, len 0: what it holds). */
static void tp_decode(struct au_conn *c, const uint8_t *data, size_t len)
{
    c->flags |= AU_CONN_IN_DECODE;
    int r = c->tp->decode(c, data, len);
    c->flags &= ~AU_CONN_IN_DECODE;
    if (r < 0) begin_close(c, true);
    else if (c->flags & AU_CONN_HANDOFF) start_handoff(c);
}

/* Decoded bytes the transport holds, now that the protocol can take them. */
static void tp_pending(struct au_conn *c)
{
    if (c->tp->pending && !(c->flags & (AU_CONN_IN_DATA | AU_CONN_IN_DECODE | AU_CONN_CLOSING | AU_CONN_CLOSED |
                                        AU_CONN_HANDOFF | AU_CONN_HANDSHAKE)) &&
        c->tp->pending(c))
        tp_decode(c, NULL, 0);
}

void au_conn_kick(struct au_conn *c)
{
    if (c->in_len && !(c->flags & (AU_CONN_IN_DATA | AU_CONN_CLOSING | AU_CONN_CLOSED | AU_CONN_HANDOFF)))
        (void)au_conn_deliver(c, NULL, 0);
    tp_pending(c);
}

static void handoff_raw_append(struct au_conn *c, const uint8_t *data, size_t len)
{
    struct handoff *h = c->proto_state;
    AU_ASSERT(!h->sent);
    bytes_append(&h->raw, &h->raw_len, &h->raw_cap, data, len);
}

static void conn_input(struct au_conn *c, const uint8_t *data, size_t len)
{
    AU_STAT_ADD(c->shard, bytes_in, len);
    if (AU_LIKELY(!c->tp->decode)) {
        (void)au_conn_deliver(c, data, len); /* raw == decoded; during a hand-off kept in c->in */
    } else if (c->flags & AU_CONN_HANDOFF) {
        handoff_raw_append(c, data, len); /* the transport's state is on its way: decoded over there */
    } else {
        tp_decode(c, data, len);
    }
}

/* ------------------------------------------------------------------ handshake, upgrade */

static void hs_track(struct au_conn *c)
{
    struct au_shard *s = c->shard;
    c->flags |= AU_CONN_HANDSHAKE;
    if (c->flags & AU_CONN_ON_HS) return;
    c->flags |= AU_CONN_ON_HS;
    c->close_deadline = s->now_ms + s->handshake_ms;
    c->hs_next = s->handshaking;
    s->handshaking = c;
}

/* Open the connection's transport: the protocol's on_open now, or once the handshake is done. */
static void conn_open(struct au_conn *c)
{
    int r = c->tp->open ? c->tp->open(c) : AU_TP_READY;
    if (r == AU_TP_READY) {
        if (c->proto->on_open) c->proto->on_open(c);
    } else if (r == AU_TP_HANDSHAKE) {
        hs_track(c);
    } else {
        c->flags |= AU_CONN_HANDSHAKE; /* the protocol was never opened: no on_close */
        begin_close(c, false);
    }
}

void au_conn_handshake_done(struct au_conn *c)
{
    if (!(c->flags & AU_CONN_HANDSHAKE) || (c->flags & (AU_CONN_CLOSING | AU_CONN_CLOSED))) return;
    c->flags &= ~AU_CONN_HANDSHAKE; /* the handshaking list drops it at its next check */
    if (c->proto->on_open) c->proto->on_open(c);
    if (c->in_len && !(c->flags & (AU_CONN_IN_DATA | AU_CONN_CLOSING | AU_CONN_CLOSED)))
        (void)au_conn_deliver(c, NULL, 0); /* early data decoded during the handshake */
}

/* Abort handshakes past their deadline; drop connections that finished theirs or are closing. */
static void reap_handshaking(struct au_shard *s)
{
    s->hs_scan_ms = s->now_ms + 100;
    struct au_conn **pp = &s->handshaking;
    while (*pp) {
        struct au_conn *c = *pp;
        bool drop = !(c->flags & AU_CONN_HANDSHAKE) || (c->flags & (AU_CONN_CLOSING | AU_CONN_CLOSED));
        if (!drop && s->now_ms >= c->close_deadline) {
            au_debug("conn %llu: %s handshake not done in %u ms: closing", (unsigned long long)c->id, c->tp->name,
                     s->handshake_ms);
            begin_close(c, false);
            drop = true;
        }
        if (drop) {
            *pp = c->hs_next;
            c->hs_next = NULL;
            c->flags &= ~AU_CONN_ON_HS;
            maybe_free(c);
        } else {
            pp = &c->hs_next;
        }
    }
}

int au_conn_upgrade(struct au_conn *c, const struct au_proto *proto, const struct au_transport *tp,
                    void *proto_state)
{
    if (c->flags & (AU_CONN_CLOSING | AU_CONN_CLOSED | AU_CONN_HANDOFF | AU_CONN_HANDSHAKE | AU_CONN_UPGRADED))
        return -1;
    bool new_tp = tp && tp != c->tp;
    if (new_tp && (c->tp->decode || c->tp->encode)) return -1;
    int r = AU_TP_READY;
    if (new_tp) {
        const struct au_transport *old = c->tp;
        void *old_state = c->tp_state;
        c->tp = tp;
        c->tp_state = NULL;
        r = tp->open ? tp->open(c) : AU_TP_READY;
        if (r == AU_TP_HANDSHAKE && proto_state) {
            /* nobody would release proto_state should the connection close before the handshake is done */
            if (c->tp_state && tp->free) tp->free(c);
            r = -1;
        }
        if (r < 0) {
            c->tp = old;
            c->tp_state = old_state;
            return -1;
        }
        if (old_state && old->free) {
            void *st = c->tp_state;
            c->tp_state = old_state;
            old->free(c);
            c->tp_state = st;
        }
    }
    c->proto = proto;
    c->proto_state = proto_state;
    /* The kept input is presented again: to the new transport (raw for it) or the new protocol. Inside on_data
     * au_conn_deliver does it when on_data returns (the rest of this on_data's bytes are kept by then). */
    c->flags |= AU_CONN_UPGRADED | (new_tp ? AU_CONN_UPGRADE_TP : 0);
    if (r == AU_TP_HANDSHAKE) hs_track(c);
    else if (proto->on_open) proto->on_open(c);
    if (!(c->flags & AU_CONN_IN_DATA)) upgrade_input(c);
    return 0;
}

/* After au_conn_upgrade: the input the old protocol left goes to the new transport (it changed: the bytes are
 * raw for it) or to the new protocol. */
static void upgrade_input(struct au_conn *c)
{
    bool raw = c->flags & AU_CONN_UPGRADE_TP;
    c->flags &= ~(AU_CONN_UPGRADED | AU_CONN_UPGRADE_TP);
    if (c->flags & (AU_CONN_CLOSING | AU_CONN_CLOSED | AU_CONN_IN_DATA)) return;
    if (raw && c->tp->decode) {
        uint8_t *kept = c->in;
        uint32_t n = c->in_len;
        c->in = NULL;
        c->in_len = c->in_cap = 0;
        if (n && (c->flags & AU_CONN_HANDOFF)) handoff_raw_append(c, kept, n); /* moved right after the upgrade */
        else if (n) tp_decode(c, kept, n);
        free(kept);
    } else if (c->in_len) {
        (void)au_conn_deliver(c, NULL, 0);
    }
    if (!(c->flags & (AU_CONN_CLOSING | AU_CONN_CLOSED | AU_CONN_HANDOFF))) in_bound(c);
}

/* ------------------------------------------------------------------ send */

static void maybe_free(struct au_conn *c);

static void submit_send(struct au_conn *c)
{
    struct au_shard *s = c->shard;
    struct sendctx *x = s->sendctx_free;
    if (x) s->sendctx_free = x->next_free;
    else {
        x = malloc(sizeof *x);
        AU_ASSERT(x != NULL);
    }
    x->conn = c;
    unsigned n = 0;
    uint32_t bytes = 0;
    for (struct au_outseg *g = c->out_head; g && n < AU_SEND_IOV_MAX && bytes < SEND_MAX_BYTES; g = g->next) {
        x->iov[n].iov_base = g->buf->data + g->off;
        x->iov[n].iov_len = g->len;
        bytes += g->len;
        n++;
    }
    AU_ASSERT(n > 0);
    memset(&x->msg, 0, sizeof x->msg);
    x->msg.msg_iov = x->iov;
    x->msg.msg_iovlen = n;
    struct io_uring_sqe *sqe = get_sqe(s);
    io_uring_prep_sendmsg(sqe, (int)c->slot, &x->msg, MSG_NOSIGNAL);
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, UD(OP_SEND, x));
    c->flags |= AU_CONN_SEND_BUSY;
    c->ops++;
    AU_STAT_INC(s, sends);
}

static void flush_dirty(struct au_shard *s)
{
    while (s->dirty) {
        struct au_conn *c = s->dirty;
        s->dirty = c->dirty_next;
        c->flags &= ~AU_CONN_DIRTY;
        if (!(c->flags & (AU_CONN_SEND_BUSY | AU_CONN_CLOSED)) && c->out_head) submit_send(c);
        maybe_free(c);
    }
}

/* Room for len bytes at the end of the send queue (raw: after the transport), or NULL when the connection
 * is closing (the bytes would be dropped). */
static uint8_t *raw_reserve(struct au_conn *c, size_t len)
{
    if (c->flags & (AU_CONN_CLOSING | AU_CONN_CLOSED) || len == 0) return NULL;
    struct au_outseg *t = c->out_tail;
    uint8_t *p;
    /* Append to a private tail buffer when it has room: small packets share one buffer and one iovec.
     * (Appending behind bytes a send has in flight is safe: they are neither moved nor changed.) */
    if (t && atomic_load_explicit(&t->buf->refs, memory_order_relaxed) == 1 && t->off + t->len == t->buf->len &&
        t->buf->cap - t->buf->len >= len) {
        p = t->buf->data + t->buf->len;
        t->buf->len += (uint32_t)len;
        t->len += (uint32_t)len;
    } else {
        uint32_t cap = len > 1024 ? (uint32_t)len : 1024;
        struct au_buf *b = au_buf_new(cap);
        p = b->data;
        b->len = (uint32_t)len;
        struct au_outseg *g = seg_get(c->shard);
        g->buf = b;
        g->off = 0;
        g->len = (uint32_t)len;
        if (t) t->next = g;
        else c->out_head = g;
        c->out_tail = g;
    }
    c->out_bytes += (uint32_t)len;
    mark_dirty(c);
    return p;
}

void au_conn_raw_write(struct au_conn *c, const void *data, size_t len)
{
    uint8_t *p = raw_reserve(c, len);
    if (p) memcpy(p, data, len);
}

uint8_t *au_conn_reserve(struct au_conn *c, size_t len)
{
    return c->tp->encode ? NULL : raw_reserve(c, len);
}

void au_conn_raw_write_buf(struct au_conn *c, struct au_buf *b, uint32_t off, uint32_t len)
{
    if (c->flags & (AU_CONN_CLOSING | AU_CONN_CLOSED) || len == 0) return;
    struct au_outseg *g = seg_get(c->shard);
    g->buf = au_buf_ref(b);
    g->off = off;
    g->len = len;
    if (c->out_tail) c->out_tail->next = g;
    else c->out_head = g;
    c->out_tail = g;
    c->out_bytes += len;
    mark_dirty(c);
}

void au_conn_write(struct au_conn *c, const void *data, size_t len)
{
    if (c->tp->encode) c->tp->encode(c, data, len);
    else au_conn_raw_write(c, data, len);
}

void au_conn_write_buf(struct au_conn *c, struct au_buf *b, uint32_t off, uint32_t len)
{
    if (c->tp->encode) c->tp->encode(c, b->data + off, len);
    else au_conn_raw_write_buf(c, b, off, len);
}

static void drop_output(struct au_conn *c)
{
    /* Segments referenced by an in-flight send stay until it completes. */
    if (c->flags & AU_CONN_SEND_BUSY) return;
    while (c->out_head) {
        struct au_outseg *g = c->out_head;
        c->out_head = g->next;
        seg_put(c->shard, g);
    }
    c->out_tail = NULL;
    c->out_bytes = 0;
}

/* ------------------------------------------------------------------ close / free */

static void update_accepting(struct au_shard *s);
static void arm_accept(struct au_shard *s, unsigned i);

static void maybe_free(struct au_conn *c)
{
    /* Still referenced by a completion in flight, or by a shard list walked later this iteration. */
    if (c->ops || !(c->flags & AU_CONN_CLOSED) || (c->flags & (AU_CONN_DIRTY | AU_CONN_ON_CLOSING | AU_CONN_ON_HS)))
        return;
    struct au_shard *s = c->shard;
    if (c->all_prev) c->all_prev->all_next = c->all_next;
    else s->conns = c->all_next;
    if (c->all_next) c->all_next->all_prev = c->all_prev;
    drop_output(c);
    in_release(c);
    if (c->tp_state && c->tp->free) c->tp->free(c);
    free(c);
    AU_ASSERT(s->nconns > 0);
    s->nconns--;
    AU_STAT_ADD(s, conns, (uint64_t)-1);
    AU_STAT_INC(s, closed);
    if (!s->accepting && !s->stopping && s->nconns < s->max_conns) update_accepting(s); /* room again */
    if (s->refusing && s->nconns < s->max_conns + AU_ACCEPT_OVERSHOOT)
        for (unsigned i = 0; i < s->nlisteners; i++) arm_accept(s, i);
}

/* Cancel a pending multishot recv (it holds a reference to the socket, so closing the slot alone would
 * leave the socket open until the peer sends), then close our slot: the socket closes (FIN) when the last
 * reference goes. Cancelling runs inline; IORING_OP_SHUTDOWN, used before, always went to an io-wq worker
 * (~20 % of the CPU of a connection storm with its disconnects). A connection handed to another shard
 * only releases its slot: the socket itself lives on over there (nothing is armed on it here then). */
static void submit_close_ex(struct au_conn *c, bool cancel_recv)
{
    if (c->flags & AU_CONN_CLOSED) return;
    c->flags |= AU_CONN_CLOSED | AU_CONN_CLOSING;
    struct au_shard *s = c->shard;
    struct io_uring_sqe *sqe;
    if (cancel_recv && (c->flags & AU_CONN_RECV_ARMED)) {
        sqe = get_sqe(s);
        io_uring_prep_cancel64(sqe, UD(OP_RECV, c), 0);
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        io_uring_sqe_set_data64(sqe, UD(OP_CANCEL, 0));
    }
    sqe = get_sqe(s);
    io_uring_prep_close_direct(sqe, c->slot);
    io_uring_sqe_set_data64(sqe, UD(OP_CLOSE, c));
    c->ops++;
}

static void submit_close(struct au_conn *c) { submit_close_ex(c, true); }

static void begin_close(struct au_conn *c, bool flush)
{
    if (!(c->flags & AU_CONN_CLOSING)) {
        /* The transport's close-notify, queued before CLOSING refuses output, after all protocol output; not
         * during a hand-off (the transport state is on its way) nor for a peer that is gone (flush false). */
        if (flush && c->tp->shutdown && !(c->flags & (AU_CONN_HANDOFF | AU_CONN_CLOSED))) c->tp->shutdown(c);
        c->flags |= AU_CONN_CLOSING;
        /* During a hand-off proto_state is the hand-off record, not the protocol's state: the protocol state
         * travels to the target shard (or comes back through on_handoff_out on failure). During a handshake
         * the protocol was never opened. */
        if (c->proto->on_close && !(c->flags & (AU_CONN_HANDOFF | AU_CONN_HANDSHAKE))) c->proto->on_close(c);
    }
    if (c->flags & AU_CONN_CLOSED) return;
    if (flush && (c->out_head || (c->flags & AU_CONN_SEND_BUSY))) {
        if (!(c->flags & AU_CONN_ON_CLOSING)) {
            c->flags |= AU_CONN_ON_CLOSING;
            c->close_deadline = c->shard->now_ms + CLOSE_FLUSH_MS;
            c->close_next = c->shard->closing;
            c->shard->closing = c;
        }
        return; /* submit_close once the send queue drains, or at the deadline */
    }
    drop_output(c);
    submit_close(c);
}

void au_conn_close(struct au_conn *c) { begin_close(c, true); }
void au_conn_abort(struct au_conn *c) { begin_close(c, false); }

void au_conn_pause(struct au_conn *c)
{
    c->flags |= AU_CONN_PAUSED;
    if (c->flags & AU_CONN_RECV_ARMED) {
        struct io_uring_sqe *sqe = get_sqe(c->shard);
        io_uring_prep_cancel64(sqe, UD(OP_RECV, c), 0);
        io_uring_sqe_set_data64(sqe, UD(OP_CANCEL, 0));
    }
}

void au_conn_resume(struct au_conn *c)
{
    if (!(c->flags & AU_CONN_PAUSED)) return;
    c->flags &= ~AU_CONN_PAUSED;
    if (!(c->flags & (AU_CONN_CLOSING | AU_CONN_CLOSED))) arm_recv(c);
    tp_pending(c);
}

static void reap_closing(struct au_shard *s)
{
    struct au_conn **pp = &s->closing;
    while (*pp) {
        struct au_conn *c = *pp;
        bool done = c->flags & AU_CONN_CLOSED;
        if (!done && !c->out_head && !(c->flags & AU_CONN_SEND_BUSY)) {
            submit_close(c);
            done = true;
        } else if (!done && s->now_ms >= c->close_deadline) {
            drop_output(c);
            submit_close(c);
            done = true;
        }
        if (done) {
            *pp = c->close_next;
            c->close_next = NULL;
            c->flags &= ~AU_CONN_ON_CLOSING;
            maybe_free(c);
        } else {
            pp = &c->close_next;
        }
    }
}

/* ------------------------------------------------------------------ accept */

static void arm_accept(struct au_shard *s, unsigned i)
{
    if (s->accept_armed[i] || s->listen_fd[i] < 0) return;
    struct io_uring_sqe *sqe = get_sqe(s);
    /* A refusing shard takes one connection per accept: a multishot accept would empty the whole queue at once,
     * past the slots it may use for refusals (those would be closed without an answer). */
    if (s->refusing) io_uring_prep_accept_direct(sqe, s->listen_fd[i], NULL, NULL, 0, IORING_FILE_INDEX_ALLOC - 1);
    else io_uring_prep_multishot_accept_direct(sqe, s->listen_fd[i], NULL, NULL, 0);
    io_uring_sqe_set_data64(sqe, UD(OP_ACCEPT, (uintptr_t)i));
    s->accept_armed[i] = 1;
}

static void pause_accept(struct au_shard *s)
{
    for (unsigned i = 0; i < s->nlisteners; i++) {
        if (!s->accept_armed[i]) continue;
        struct io_uring_sqe *sqe = get_sqe(s);
        io_uring_prep_cancel64(sqe, UD(OP_ACCEPT, (uintptr_t)i), 0);
        io_uring_sqe_set_data64(sqe, UD(OP_CANCEL, 0));
    }
}

/* A listening socket of this shard, in the port's SO_REUSEPORT group. Options set here are inherited by every
 * accepted socket (no per-connection setsockopt). Returns the descriptor or -errno. */
static int open_listener(const struct au_listener_spec *l)
{
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1, defer = AU_LISTEN_DEFER_ACCEPT_S;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof defer);
    if (bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) < 0 || listen(fd, AU_LISTEN_BACKLOG) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

/* Leave the SO_REUSEPORT group: shutdown() takes the socket out of LISTEN at once, even while an accept of the
 * ring still holds a reference to the file (connections still in its accept queue are reset). */
static void close_listeners(struct au_shard *s)
{
    for (unsigned i = 0; i < s->nlisteners; i++) {
        if (s->listen_fd[i] < 0) continue;
        shutdown(s->listen_fd[i], SHUT_RDWR);
        close(s->listen_fd[i]);
        s->listen_fd[i] = -1;
    }
}

static uint32_t resume_below(const struct au_shard *s)
{
    uint32_t gap = s->max_conns / 8 < AU_ACCEPT_RESUME_GAP ? s->max_conns / 8 : AU_ACCEPT_RESUME_GAP;
    return s->max_conns - gap;
}

static void leave_group(struct au_shard *s)
{
    pause_accept(s);
    close_listeners(s);
    if (s->in_group) {
        s->in_group = false;
        atomic_fetch_sub_explicit(s->in_group_count, 1, memory_order_acq_rel);
    }
}

/* Capacity transitions can flap many times a second at the limit (each refused connection frees its slot):
 * log them at most once a second per shard (the counters keep the exact count). */
enum { CAP_LOG_LEAVE, CAP_LOG_REFUSING, CAP_LOG_RESUME, CAP_LOG_YIELD };
static bool capacity_log_ok(struct au_shard *s, unsigned kind)
{
    AU_ASSERT(kind < AU_ARRAY_LEN(s->capacity_log_ms));
    if (s->capacity_log_ms[kind] && s->now_ms < s->capacity_log_ms[kind] + 1000) return false;
    s->capacity_log_ms[kind] = s->now_ms;
    return true;
}

/* A refusing shard (full, last in the group) leaves the group once another shard is back in it. */
static void check_refusing(struct au_shard *s)
{
    if (!s->refusing || atomic_load_explicit(s->in_group_count, memory_order_acquire) < 2) return;
    s->refusing = false;
    if (capacity_log_ok(s, CAP_LOG_YIELD))
        au_info("another shard accepts again: leaving the port group conns=%u max=%u", s->nconns, s->max_conns);
    leave_group(s);
}

static void update_accepting(struct au_shard *s)
{
    bool want;
    if (s->stopping) want = false;
    else if (s->accepting) want = s->nconns < s->max_conns;
    else want = s->nconns < resume_below(s) || (s->nconns < s->max_conns && s->in_group);
    if (want == s->accepting) return;
    s->accepting = want;
    if (want) {
        s->refusing = false;
        for (unsigned i = 0; i < s->nlisteners; i++) {
            if (s->listen_fd[i] >= 0) continue;
            int fd = open_listener(&s->lspec[i]);
            if (fd < 0) au_warn("listen %s again: %s", s->lspec[i].name, strerror(-fd));
            s->listen_fd[i] = fd;
        }
        if (!s->in_group) {
            s->in_group = true;
            atomic_fetch_add_explicit(s->in_group_count, 1, memory_order_acq_rel);
        }
        for (unsigned i = 0; i < s->nlisteners; i++) arm_accept(s, i);
        if (s->stats.accept_paused && capacity_log_ok(s, CAP_LOG_RESUME))
            au_info("accepting again conns=%u max=%u", s->nconns, s->max_conns);
    } else if (s->stopping) {
        pause_accept(s);
    } else {
        AU_STAT_INC(s, accept_paused);
        /* Leave the group unless we are the last one in it: then stay and refuse (accept stays armed). */
        if (s->in_group && atomic_fetch_sub_explicit(s->in_group_count, 1, memory_order_acq_rel) == 1) {
            atomic_fetch_add_explicit(s->in_group_count, 1, memory_order_acq_rel);
            s->refusing = true;
            pause_accept(s); /* the multishot accept ends; on_accept arms single accepts from now on */
            if (capacity_log_ok(s, CAP_LOG_REFUSING))
                au_warn("every shard full: refusing new connections conns=%u max=%u", s->nconns, s->max_conns);
        } else {
            s->in_group = false; /* counted out above */
            if (capacity_log_ok(s, CAP_LOG_LEAVE))
                au_warn("shard full: accept paused, listeners leave the port group conns=%u max=%u", s->nconns,
                        s->max_conns);
            pause_accept(s);
            close_listeners(s);
        }
    }
}

static struct au_conn *conn_new(struct au_shard *s, uint32_t slot, unsigned listener)
{
    struct au_conn *c = calloc(1, sizeof *c);
    AU_ASSERT(c != NULL);
    c->shard = s;
    c->slot = slot;
    c->listener = (uint8_t)listener;
    c->proto = s->lspec[listener].proto;
    c->tp = s->lspec[listener].tp ? s->lspec[listener].tp : &au_transport_tcp;
    c->id = ((uint64_t)s->id << 48) | ++s->next_conn_id;
    c->all_next = s->conns;
    if (s->conns) s->conns->all_prev = c;
    s->conns = c;
    s->nconns++;
    AU_STAT_ADD(s, conns, 1);
    return c;
}

/* The peer query, hard-linked (a failed query does not cancel the recv) before the first recv. */
static void arm_first_recv(struct au_conn *c)
{
    struct au_shard *s = c->shard;
    int fam = s->lspec[c->listener].addr.ss_family;
    if ((fam == AF_INET || fam == AF_INET6) && !(c->flags & (AU_CONN_RECV_ARMED | AU_CONN_CLOSED | AU_CONN_PAUSED))) {
        struct peer_query *q = pq_get();
        q->c = c;
        if (io_uring_sq_space_left(&s->ring) < 2) io_uring_submit(&s->ring); /* the linked pair in one submission */
        struct io_uring_sqe *sqe = get_sqe(s);
        au_prep_getsockopt_fixed(sqe, c->slot, SOL_SOCKET, SO_PEERNAME, &q->a,
                                 fam == AF_INET ? (unsigned)sizeof q->a.v4 : (unsigned)sizeof q->a.v6);
        sqe->flags |= IOSQE_IO_HARDLINK;
        io_uring_sqe_set_data64(sqe, UD(OP_PEER, q));
        c->ops++;
    }
    arm_recv_once(c);
}

static void close_slot(struct au_shard *s, uint32_t slot)
{
    struct io_uring_sqe *sqe = get_sqe(s);
    io_uring_prep_close_direct(sqe, slot);
    io_uring_sqe_set_data64(sqe, UD(OP_CLOSE_SLOT, 0));
}

static void on_accept(struct au_shard *s, struct io_uring_cqe *cqe, unsigned i)
{
    if (!(cqe->flags & IORING_CQE_F_MORE)) s->accept_armed[i] = 0;
    if (cqe->res >= 0) {
        /* Past max_conns (accepted before the pause took effect) the protocol sees au_shard_over_limit() and
         * refuses; past the overshoot there is no room even for that. */
        if (s->stopping || s->nconns >= s->max_conns + AU_ACCEPT_OVERSHOOT) {
            close_slot(s, (uint32_t)cqe->res);
        } else {
            struct au_conn *c = conn_new(s, (uint32_t)cqe->res, i);
            AU_STAT_INC(s, accepted);
            if (AU_LIKELY(!c->tp->open)) {
                if (c->proto->on_open) c->proto->on_open(c);
            } else {
                conn_open(c);
            }
            arm_first_recv(c);
        }
    } else if (cqe->res == -ENFILE || cqe->res == -EMFILE) {
        s->accepting = false; /* table full (slots held by closing/handed-off sockets): resume on close */
        AU_STAT_INC(s, accept_paused);
    } else if (cqe->res == -EINVAL && s->listen_fd[i] < 0) {
        /* the listener left the port group (shard full or stopping) */
    } else if (cqe->res != -ECANCELED) {
        au_warn("accept error listener=%u err=%s", i, strerror(-cqe->res));
    }
    if (s->nconns >= s->max_conns) update_accepting(s);
    check_refusing(s);
    if (s->refusing && s->nconns >= s->max_conns + AU_ACCEPT_OVERSHOOT) {
        pause_accept(s); /* refusing as fast as we can: the rest waits in the queue until some are gone */
    } else if (!s->accept_armed[i] && (s->accepting || s->refusing)) {
        arm_accept(s, i);
    }
}

/* ------------------------------------------------------------------ handoff */

int au_conn_handoff(struct au_conn *c, int to, void *arg)
{
    struct au_shard *s = c->shard;
    if (to == s->id || to < 0 || to >= s->nshards ||
        (c->flags & (AU_CONN_CLOSING | AU_CONN_HANDOFF | AU_CONN_HANDSHAKE)))
        return -1;
    struct handoff *h = calloc(1, sizeof *h);
    AU_ASSERT(h != NULL);
    h->arg = arg;
    h->proto = c->proto;
    h->to = to;
    h->listener = c->listener;
    h->id = c->id;
    h->peer_ip4 = c->peer_ip4;
    c->proto_state = h; /* the protocol gave its state away in `arg`; the loop keeps the record here */
    c->flags |= AU_CONN_HANDOFF;
    /* The actual move starts when on_data returns (au_conn_deliver) so that unconsumed bytes travel. */
    if (!(c->flags & (AU_CONN_IN_DATA | AU_CONN_IN_DECODE))) start_handoff(c); /* else when on_data / decode return */
    return 0;
}

static void send_fd(struct au_conn *c)
{
    struct au_shard *s = c->shard;
    struct handoff *h = c->proto_state;
    AU_ASSERT(!h->sent && !(c->flags & AU_CONN_RECV_ARMED));
    h->sent = true;
    h->in = c->in;
    h->in_len = c->in_len;
    h->in_cap = c->in_cap;
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    /* The transport and its state go too (the transport's decode is not running: tp_decode starts the move
     * when it returns); from here on only the target touches the state. */
    h->tp = c->tp;
    h->tp_state = c->tp_state;
    c->tp_state = NULL;
    if (io_uring_sq_space_left(&s->ring) < 2) io_uring_submit(&s->ring); /* the linked pair in one submission */
    struct io_uring_sqe *sqe = get_sqe(s);
    au_prep_msg_ring_fd_alloc(sqe, s->all[h->to]->ring_fd, c->slot, UD(OP_HANDOFF_IN, h));
    io_uring_sqe_set_data64(sqe, UD(OP_HANDOFF_OUT, c));
    /* Our slot is closed right behind a successful move, in the same submission and without a completion of
     * its own; a failed move cancels the close (-ECANCELED, ignored) and the slot stays ours. */
    sqe->flags |= IOSQE_IO_LINK;
    sqe = get_sqe(s);
    io_uring_prep_close_direct(sqe, c->slot);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, UD(OP_CLOSE_SLOT, 0));
    c->ops++;
    AU_STAT_INC(s, handoffs_out);
}

/* The descriptor moves once no receive is armed here (the bytes it still returns are kept: decoded ones in c->in,
 * raw ones in the record) and the send queue is flushed (its segments belong to this shard; a transport's
 * handshake answer may still be queued). Called again from on_recv / on_send until both hold. */
static void start_handoff(struct au_conn *c)
{
    struct handoff *h = c->proto_state;
    if (h->sent || (c->flags & AU_CONN_CLOSED)) return;
    if (c->flags & AU_CONN_RECV_ARMED) {
        if (!h->recv_cancelled) {
            h->recv_cancelled = true;
            struct io_uring_sqe *sqe = get_sqe(c->shard);
            io_uring_prep_cancel64(sqe, UD(OP_RECV, c), 0);
            io_uring_sqe_set_data64(sqe, UD(OP_CANCEL, 0));
        }
        return; /* continued from on_recv when the recv terminates */
    }
    if (c->out_head || (c->flags & AU_CONN_SEND_BUSY)) return; /* continued from on_send */
    send_fd(c);
}

/* The move failed (the target's table is full, or our socket broke while its output flushed): the protocol gets
 * its state back (on_handoff_failed may queue a refusal when `answer`), then the connection closes. */
static void handoff_fail(struct au_conn *c, int err, bool answer)
{
    struct handoff *h = c->proto_state;
    if (h->sent) { /* taken back from the record */
        c->in = h->in;
        c->in_len = h->in_len;
        c->in_cap = h->in_cap;
        c->tp_state = h->tp_state;
    }
    c->proto_state = h->arg;
    free(h->raw); /* raw bytes after the request that moved: the connection is refused and closed */
    free(h);
    c->flags &= ~AU_CONN_HANDOFF;
    if (answer && c->proto->on_handoff_failed && !(c->flags & (AU_CONN_CLOSING | AU_CONN_CLOSED))) {
        c->proto->on_handoff_failed(c, err); /* may queue a refusal, flushed before the close */
        begin_close(c, true);
    } else {
        begin_close(c, false);
    }
}

static void on_handoff_out(struct au_shard *s, struct au_conn *c, int res)
{
    c->ops--;
    struct handoff *h = c->proto_state;
    if (res < 0) {
        au_warn("handoff to shard %d failed: %s", h->to, strerror(-res));
        /* The target never saw the record: give the protocol state back to be released. */
        handoff_fail(c, res, true);
    } else {
        c->proto_state = NULL;
        /* no on_close: the session continues on the target shard; our slot was closed by the linked close */
        c->flags |= AU_CONN_CLOSING | AU_CONN_CLOSED;
    }
    maybe_free(c);
}

static void on_handoff_in(struct au_shard *s, struct handoff *h, int res)
{
    if (res < 0) {
        au_warn("incoming handoff failed: %s", strerror(-res));
        /* The source sees its own error CQE and cleans up; nothing of ours to release but the record. */
        return;
    }
    struct au_conn *c = conn_new(s, (uint32_t)res, h->listener);
    c->id = h->id;
    c->peer_ip4 = h->peer_ip4;
    c->proto = h->proto; /* not the listener's: the ones (and the state) the connection had on the source */
    c->tp = h->tp;
    c->tp_state = h->tp_state;
    AU_STAT_INC(s, handoffs_in);
    if (c->proto->on_handoff) c->proto->on_handoff(c, h->arg);
    arm_recv_ex(c, true); /* the source read what had arrived */
    /* Continue exactly where the source stopped: the decoded bytes the protocol left, then the decoded bytes
     * the transport holds, then the raw bytes that arrived during the move (if the connection moves on again
     * meanwhile, they travel with it, still raw). */
    if (h->in_len) (void)au_conn_deliver(c, h->in, h->in_len);
    free(h->in);
    tp_pending(c);
    /* Raw bytes in receive-sized pieces, as if they arrived now (the transport buffers no more than it would). */
    for (uint32_t off = 0, n; off < h->raw_len; off += n) {
        n = h->raw_len - off < AU_RECV_BUF_SIZE ? h->raw_len - off : AU_RECV_BUF_SIZE;
        if (c->flags & (AU_CONN_CLOSING | AU_CONN_CLOSED)) break; /* dropped, like input after a close */
        if (c->flags & AU_CONN_HANDOFF) {
            handoff_raw_append(c, h->raw + off, h->raw_len - off);
            break;
        }
        tp_decode(c, h->raw + off, n);
    }
    free(h->raw);
    free(h);
    if (s->nconns >= s->max_conns) update_accepting(s);
}

/* ------------------------------------------------------------------ cross-shard */

static void ring_doorbell(struct au_shard *from, struct au_shard *to)
{
    if (atomic_exchange_explicit(&to->doorbell_armed, 1, memory_order_acq_rel)) return;
    struct io_uring_sqe *sqe = get_sqe(from);
    au_prep_msg_ring_data(sqe, to->ring_fd, 0, UD(OP_WAKE, 0));
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, UD(OP_CANCEL, 0));
    AU_STAT_INC(from, doorbells);
}

void au_shard_post(struct au_shard *self, int to, struct au_xmsg *m)
{
    m->dispose = NULL;
    au_shard_post_disposable(self, to, m, NULL);
}

void au_shard_post_disposable(struct au_shard *self, int to, struct au_xmsg *m, void (*dispose)(struct au_xmsg *))
{
    AU_ASSERT(to >= 0 && to < self->nshards);
    struct au_shard *t = self->all[to];
    m->dispose = dispose;
    m->next = NULL;
    AU_STAT_INC(self, xmsgs_out);
    if (!self->ovf_head[to] && au_xq_push(&t->inq[self->id], m)) {
        if (t != self) ring_doorbell(self, t);
        return;
    }
    AU_STAT_INC(self, xq_overflow);
    if (!self->ovf_head[to]) {
        self->ovf_head[to] = m;
        self->novf++;
    } else {
        self->ovf_tail[to]->next = m;
    }
    self->ovf_tail[to] = m;
}

static void retry_overflow(struct au_shard *s)
{
    if (!s->novf) return;
    for (int to = 0; to < s->nshards; to++) {
        struct au_shard *t = s->all[to];
        bool pushed = false;
        while (s->ovf_head[to]) {
            struct au_xmsg *m = s->ovf_head[to];
            if (!au_xq_push(&t->inq[s->id], m)) break;
            s->ovf_head[to] = m->next;
            pushed = true;
        }
        if (!s->ovf_head[to] && pushed) s->novf--;
        if (pushed && t != s) ring_doorbell(s, t);
    }
}

/* Returns true when a queue still holds messages (the caller must not sleep). */
static bool drain_inbox(struct au_shard *s)
{
    bool more = false;
    atomic_store_explicit(&s->doorbell_armed, 0, memory_order_release);
    for (int from = 0; from < s->ninq; from++) {
        struct au_xq *q = &s->inq[from];
        /* Bounded per iteration so one busy producer cannot starve our own connections. */
        for (unsigned n = 0; n < 65536; n++) {
            struct au_xmsg *m = au_xq_pop(q);
            if (!m) break;
            AU_STAT_INC(s, xmsgs_in);
            m->handler(s, m);
        }
        if (!au_xq_empty(q)) more = true;
    }
    return more;
}

/* ------------------------------------------------------------------ completions */

static void on_recv(struct au_shard *s, struct au_conn *c, struct io_uring_cqe *cqe)
{
    int res = cqe->res;
    bool ended = !(cqe->flags & IORING_CQE_F_MORE);
    AU_STAT_INC(s, recv_cqes);
    /* Nothing is armed any more once the last completion of a receive is here: a hand-off started by these
     * bytes sends the descriptor at once instead of cancelling a receive that no longer exists. */
    if (ended) c->flags &= ~AU_CONN_RECV_ARMED;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        if (res > 0 && !(c->flags & (AU_CONN_CLOSING | AU_CONN_CLOSED)))
            conn_input(c, s->bufs + (size_t)bid * AU_RECV_BUF_SIZE, (size_t)res);
        recycle_buf(s, bid);
    }
    if (ended) {
        c->ops--;
        if (c->flags & AU_CONN_HANDOFF) {
            start_handoff(c);
        } else if (c->flags & (AU_CONN_CLOSING | AU_CONN_CLOSED)) {
            /* already going away */
        } else if (res == -ENOBUFS) {
            AU_STAT_INC(s, nobufs);
            arm_recv(c);
        } else if (res > 0 || res == -ECANCELED) {
            /* -ECANCELED: stopped by au_conn_pause or the input bound (closing was handled above); re-arming
             * is a no-op while either still holds, and resumes a receive un-paused before this completion. */
            arm_recv_ex(c, res > 0 && res < (int)AU_RECV_BUF_SIZE); /* a short read drained the socket */
        } else {
            begin_close(c, false); /* EOF or error: the peer is gone */
        }
    }
    maybe_free(c);
}

static void on_send(struct au_shard *s, struct sendctx *x, int res)
{
    struct au_conn *c = x->conn;
    x->next_free = s->sendctx_free;
    s->sendctx_free = x;
    c->flags &= ~AU_CONN_SEND_BUSY;
    c->ops--;
    if (res < 0) {
        if (c->flags & AU_CONN_HANDOFF) handoff_fail(c, res, false); /* not sent yet: it waited for this send */
        else if (!(c->flags & AU_CONN_CLOSED)) begin_close(c, false);
        drop_output(c);
        maybe_free(c);
        return;
    }
    uint32_t left = (uint32_t)res;
    AU_STAT_ADD(s, bytes_out, left);
    while (left && c->out_head) {
        struct au_outseg *g = c->out_head;
        if (g->len > left) {
            g->off += left;
            g->len -= left;
            c->out_bytes -= left;
            left = 0;
            AU_STAT_INC(s, send_partial);
            break;
        }
        left -= g->len;
        c->out_bytes -= g->len;
        c->out_head = g->next;
        if (!c->out_head) c->out_tail = NULL;
        seg_put(s, g);
    }
    if (c->flags & AU_CONN_CLOSED) {
        drop_output(c);
    } else if (c->out_head) {
        submit_send(c);
    } else if (c->flags & AU_CONN_CLOSING) {
        submit_close(c);
    } else if (AU_UNLIKELY(c->flags & AU_CONN_HANDOFF)) {
        start_handoff(c); /* the output queued before the move is flushed: move now */
    } else if (c->proto->on_drain) {
        c->proto->on_drain(c);
    }
    maybe_free(c);
}

static void handle_cqe(struct au_shard *s, struct io_uring_cqe *cqe)
{
    uint64_t ud = cqe->user_data;
    void *p = UD_PTR(ud);
    switch (UD_OP(ud)) {
    case OP_ACCEPT: on_accept(s, cqe, (unsigned)(uintptr_t)p); break;
    case OP_RECV: on_recv(s, p, cqe); break;
    case OP_SEND: on_send(s, p, cqe->res); break;
    case OP_CLOSE: {
        struct au_conn *c = p;
        c->ops--;
        maybe_free(c);
        break;
    }
    case OP_WAKE: break; /* the inbox is drained at the top of every iteration */
    case OP_HANDOFF_IN: on_handoff_in(s, p, cqe->res); break;
    case OP_HANDOFF_OUT: on_handoff_out(s, p, cqe->res); break;
    case OP_PEER: {
        struct au_conn *c = ((struct peer_query *)p)->c;
        on_peer(p, cqe->res);
        maybe_free(c);
        break;
    }
    case OP_CANCEL:
    case OP_CLOSE_SLOT: break;
    default: au_error("unknown completion op=%u", UD_OP(ud)); break;
    }
}

/* ------------------------------------------------------------------ shard thread */

struct start_ctx {
    struct au_shard *s;
    const struct au_loop_opts *o;
    pthread_barrier_t *ready;
    int *err;
};

static int shard_setup(struct au_shard *s, const struct au_loop_opts *o)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE |
              IORING_SETUP_SUBMIT_ALL;
    p.cq_entries = AU_RING_CQ_ENTRIES;
    int r = io_uring_queue_init_params(AU_RING_ENTRIES, &s->ring, &p);
    if (r < 0) {
        au_error("io_uring_queue_init: %s", strerror(-r));
        return r;
    }
    s->ring_fd = s->ring.ring_fd;
    uint32_t nfixed = au_loop_fixed_files();
    r = io_uring_register_files_sparse(&s->ring, nfixed);
    if (r < 0) {
        au_error("register_files_sparse(%u): %s", nfixed, strerror(-r));
        return r;
    }
    uint32_t cap = nfixed > AU_FIXED_FILES_RESERVE ? nfixed - AU_FIXED_FILES_RESERVE : nfixed / 2;
    s->max_conns = o->max_conns_per_shard && o->max_conns_per_shard < cap ? o->max_conns_per_shard : cap;

    size_t ring_bytes = AU_RECV_BUF_COUNT * sizeof(struct io_uring_buf);
    s->br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (s->br == MAP_FAILED) return -errno;
    s->bufs = malloc((size_t)AU_RECV_BUF_COUNT * AU_RECV_BUF_SIZE);
    AU_ASSERT(s->bufs != NULL);
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)s->br;
    reg.ring_entries = AU_RECV_BUF_COUNT;
    reg.bgid = AU_RECV_BGID;
    r = io_uring_register_buf_ring(&s->ring, &reg, 0);
    if (r < 0) {
        au_error("register_buf_ring: %s", strerror(-r));
        return r;
    }
    io_uring_buf_ring_init(s->br);
    for (unsigned i = 0; i < AU_RECV_BUF_COUNT; i++)
        io_uring_buf_ring_add(s->br, s->bufs + (size_t)i * AU_RECV_BUF_SIZE, AU_RECV_BUF_SIZE, (unsigned short)i,
                              io_uring_buf_ring_mask(AU_RECV_BUF_COUNT), (int)i);
    io_uring_buf_ring_advance(s->br, AU_RECV_BUF_COUNT);

    s->lspec = g_lspec;
    s->nlisteners = o->nlisteners;
    s->handshake_ms = o->handshake_ms ? o->handshake_ms : AU_HANDSHAKE_TIMEOUT_MS;
    for (unsigned i = 0; i < o->nlisteners; i++) {
        int fd = open_listener(&o->listeners[i]);
        if (fd < 0) {
            au_error("listen %s: %s", o->listeners[i].name, strerror(-fd));
            return fd;
        }
        s->listen_fd[i] = fd;
    }
    s->in_group = true;
    return 0;
}

static void shard_run(struct au_shard *s, const struct au_loop_opts *o)
{
    s->now_ms = au_now_ms();
    au_timer_wheel_init(&s->timers, AU_SHARD_TIMER_TICK_MS, s->now_ms);
    if (s->hooks && s->hooks->shard_init) s->hooks->shard_init(s);
    update_accepting(s);
    bool stop_seen = false;
    for (;;) {
        s->now_ms = au_now_ms();
        bool more = drain_inbox(s);
        retry_overflow(s);
        if (!stop_seen && atomic_load_explicit(&s->stop, memory_order_acquire)) {
            stop_seen = true;
            s->stopping = true;
            s->stop_deadline = s->now_ms + (o->drain_ms ? o->drain_ms : 3000);
            update_accepting(s);
            s->refusing = false;
            close_listeners(s); /* a restarted instance can bind at once */
            if (s->hooks && s->hooks->shard_stop) s->hooks->shard_stop(s);
            for (struct au_conn *c = s->conns; c; c = c->all_next)
                if (!(c->flags & AU_CONN_HANDOFF)) begin_close(c, true); /* those finish moving first */
        }
        int wait_ms = 1000;
        au_timer_advance(&s->timers, s->now_ms);
        if (s->hooks && s->hooks->shard_tick) {
            int t = s->hooks->shard_tick(s, s->now_ms);
            if (t >= 0 && t < wait_ms) wait_ms = t;
        }
        wait_ms = (int)au_timer_next_ms(&s->timers, s->now_ms, (uint64_t)wait_ms);
        check_refusing(s);
        if (s->closing) {
            reap_closing(s);
            if (wait_ms > 100) wait_ms = 100;
        }
        if (AU_UNLIKELY(s->handshaking != NULL)) {
            if (s->now_ms >= s->hs_scan_ms) reap_handshaking(s);
            if (wait_ms > 100) wait_ms = 100;
        }
        flush_dirty(s);
        if (stop_seen) {
            if ((s->nconns == 0 && !s->novf) || s->now_ms >= s->stop_deadline) break;
            if (wait_ms > 50) wait_ms = 50;
        }
        /* A message this shard posted to itself after its queue was drained (from a timer, a flush or
         * a handler of another queue) gets no doorbell: do not sleep on it. */
        if (s->novf || more || !au_xq_empty(&s->inq[s->id])) wait_ms = 0;
        struct __kernel_timespec ts = { .tv_sec = wait_ms / 1000, .tv_nsec = (long long)(wait_ms % 1000) * 1000000 };
        struct io_uring_cqe *cqe;
        int r = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, &ts, NULL);
        if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY) au_warn("submit_and_wait: %s", strerror(-r));
        unsigned head, n = 0;
        io_uring_for_each_cqe(&s->ring, head, cqe) {
            handle_cqe(s, cqe);
            n++;
        }
        io_uring_cq_advance(&s->ring, n);
    }
    if (s->hooks && s->hooks->shard_fini) s->hooks->shard_fini(s);
    if (s->nconns) au_info("stopped with %u connections still open", s->nconns);
}

/* Release what the shard still holds once its loop ended (connections left after the drain deadline
 * are dropped without callbacks: the protocol state was released by shard_fini). */
static void shard_teardown(struct au_shard *s)
{
    for (unsigned i = 0; i < s->nlisteners; i++)
        if (s->listen_fd[i] >= 0) close(s->listen_fd[i]);
    if (s->ring_fd > 0) io_uring_queue_exit(&s->ring);
    while (s->conns) {
        struct au_conn *c = s->conns;
        s->conns = c->all_next;
        if (c->flags & AU_CONN_HANDOFF) {
            struct handoff *h = c->proto_state;
            if (!h->sent) free(h->raw);
            free(h);
        }
        if (c->tp_state && c->tp->free) c->tp->free(c);
        c->flags &= ~AU_CONN_SEND_BUSY;
        drop_output(c);
        in_release(c);
        free(c);
    }
    while (s->seg_free) {
        struct au_outseg *g = s->seg_free;
        s->seg_free = g->next;
        free(g);
    }
    while (s->sendctx_free) {
        struct sendctx *x = s->sendctx_free;
        s->sendctx_free = x->next_free;
        free(x);
    }
    while (t_pq_free) { /* on the shard's thread: its own free list */
        struct peer_query *q = t_pq_free;
        t_pq_free = q->next_free;
        free(q);
    }
    t_pq_nfree = 0;
    for (int to = 0; to < s->nshards; to++)
        while (s->ovf_head[to]) {
            struct au_xmsg *m = s->ovf_head[to];
            s->ovf_head[to] = m->next;
            if (m->dispose) m->dispose(m);
        }
    free(s->bufs);
    if (s->br && s->br != MAP_FAILED) munmap(s->br, AU_RECV_BUF_COUNT * sizeof(struct io_uring_buf));
}

static void *shard_main(void *arg)
{
    struct start_ctx *x = arg;
    struct au_shard *s = x->s;
    const struct au_loop_opts *o = x->o;
    au_log_set_shard(s->id);
    int r = shard_setup(s, o);
    if (r < 0) __atomic_store_n(x->err, r, __ATOMIC_SEQ_CST);
    pthread_barrier_wait(x->ready); /* every ring exists before anyone posts */
    pthread_barrier_wait(x->ready); /* main checked errors */
    bool failed = __atomic_load_n(x->err, __ATOMIC_SEQ_CST) != 0;
    free(x);
    if (!failed) shard_run(s, o);
    shard_teardown(s);
    return NULL;
}

/* Every shard binds its own socket with SO_REUSEPORT, which would also let a second process (another
 * instance, or the listening sockets of a killed one that its io_uring teardown still holds) share the
 * port silently. So first prove the address is free with a plain bind, waiting a bounded time for a
 * previous instance's sockets to go away. */
static int probe_listen_addr(const struct au_listener_spec *l)
{
    uint64_t deadline = au_now_ms() + AU_LISTEN_PROBE_MS;
    for (;;) {
        int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return -errno;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        int r = bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) == 0 ? 0 : -errno;
        close(fd);
        if (r != -EADDRINUSE || au_now_ms() >= deadline) {
            if (r) au_error("listen %s: %s", l->name, strerror(-r));
            return r;
        }
        usleep(50 * 1000);
    }
}

int au_loop_start(const struct au_loop_opts *o, struct au_shard ***shards_out)
{
    for (uint32_t i = 0; i < o->nlisteners; i++) {
        int r = probe_listen_addr(&o->listeners[i]);
        if (r) return r;
    }
    int n = o->nshards;
    AU_ASSERT(n >= 1 && n <= AU_MAX_SHARDS);
    AU_ASSERT(o->nlisteners <= 8);
    if (o->nlisteners) memcpy(g_lspec, o->listeners, o->nlisteners * sizeof *g_lspec); /* unit tests: none */
    /* TEST ONLY: AURORA_TEST_TRANSPORT=<listener name> runs that listener (e.g. "mqtt") over the XOR test transport
     * (au_transport_xor_test), so that tests can drive a transforming transport through the real protocols and
     * hand-offs. Not a configuration setting: no client outside the tests speaks it. */
    const char *tt = getenv("AURORA_TEST_TRANSPORT");
    for (uint32_t i = 0; tt && *tt && i < o->nlisteners; i++)
        if (g_lspec[i].name && strcmp(g_lspec[i].name, tt) == 0) {
            g_lspec[i].tp = &au_transport_xor_test;
            au_warn("listener %s: test-only transport %s (AURORA_TEST_TRANSPORT)", tt, au_transport_xor_test.name);
        }
    AU_ASSERT(o->n_ext >= 0 && o->n_ext <= AU_MAX_EXT);
    struct au_shard **all = calloc((size_t)n, sizeof *all);
    atomic_int *in_group_count = malloc(sizeof *in_group_count);
    AU_ASSERT(all != NULL && in_group_count != NULL);
    atomic_init(in_group_count, n);
    for (int i = 0; i < n; i++) {
        struct au_shard *s = aligned_alloc(64, (sizeof *s + 63) & ~(size_t)63);
        AU_ASSERT(s != NULL);
        memset(s, 0, sizeof *s);
        s->id = i;
        s->nshards = n;
        s->all = all;
        s->hooks = o->hooks;
        s->slot.services = o->services;
        s->in_group_count = in_group_count;
        s->ninq = n + o->n_ext;
        s->inq = calloc((size_t)s->ninq, sizeof *s->inq);
        s->ovf_head = calloc((size_t)n, sizeof *s->ovf_head);
        s->ovf_tail = calloc((size_t)n, sizeof *s->ovf_tail);
        AU_ASSERT(s->inq && s->ovf_head && s->ovf_tail);
        for (int j = 0; j < s->ninq; j++) au_xq_init(&s->inq[j], AU_XQ_DEPTH);
        for (unsigned l = 0; l < 8; l++) s->listen_fd[l] = -1;
        all[i] = s;
    }
    if (!g_main_ring_ok && io_uring_queue_init(8, &g_main_ring, 0) == 0) g_main_ring_ok = 1;
    static pthread_barrier_t ready;
    pthread_barrier_init(&ready, NULL, (unsigned)n + 1);
    static int err;
    err = 0;
    for (int i = 0; i < n; i++) {
        struct start_ctx *x = malloc(sizeof *x);
        AU_ASSERT(x != NULL);
        *x = (struct start_ctx){ .s = all[i], .o = o, .ready = &ready, .err = &err };
        if (pthread_create(&all[i]->thread, NULL, shard_main, x) != 0) {
            au_error("pthread_create failed");
            abort();
        }
    }
    pthread_barrier_wait(&ready);
    int e = __atomic_load_n(&err, __ATOMIC_SEQ_CST);
    pthread_barrier_wait(&ready);
    if (e) {
        for (int i = 0; i < n; i++) pthread_join(all[i]->thread, NULL);
        return e;
    }
    *shards_out = all;
    return 0;
}

void au_loop_stop(struct au_shard **shards, int nshards)
{
    atomic_int *in_group_count = shards[0]->in_group_count;
    for (int i = 0; i < nshards; i++) {
        atomic_store(&shards[i]->stop, 1);
        if (g_main_ring_ok) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&g_main_ring);
            if (!sqe) {
                io_uring_submit(&g_main_ring);
                sqe = io_uring_get_sqe(&g_main_ring);
            }
            au_prep_msg_ring_data(sqe, shards[i]->ring_fd, 0, UD(OP_WAKE, 0));
            sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        }
    }
    if (g_main_ring_ok) io_uring_submit(&g_main_ring);
    for (int i = 0; i < nshards; i++) pthread_join(shards[i]->thread, NULL);
    for (int i = 0; i < nshards; i++) {
        struct au_shard *s = shards[i];
        for (int j = 0; j < s->ninq; j++) {
            struct au_xmsg *m; /* messages still queued towards a stopped shard */
            while ((m = au_xq_pop(&s->inq[j])))
                if (m->dispose) m->dispose(m);
            au_xq_free(&s->inq[j]);
        }
        free(s->inq);
        free(s->ovf_head);
        free(s->ovf_tail);
        free(s);
    }
    free(shards);
    free(in_group_count);
    if (g_main_ring_ok) {
        io_uring_queue_exit(&g_main_ring);
        g_main_ring_ok = 0;
    }
}

/* ------------------------------------------------------------------ external producers */

struct au_ext {
    struct au_shard **shards;
    int nshards, id;
    struct io_uring ring;
    struct au_xmsg **ovf_head, **ovf_tail;
    unsigned novf, pending_sqes;
};

struct au_ext *au_ext_new(struct au_shard **shards, int nshards, int id)
{
    AU_ASSERT(id >= 0 && nshards > 0 && nshards + id < shards[0]->ninq);
    struct au_ext *e = calloc(1, sizeof *e);
    AU_ASSERT(e != NULL);
    e->shards = shards;
    e->nshards = nshards;
    e->id = id;
    e->ovf_head = calloc((size_t)nshards, sizeof *e->ovf_head);
    e->ovf_tail = calloc((size_t)nshards, sizeof *e->ovf_tail);
    AU_ASSERT(e->ovf_head && e->ovf_tail);
    int r = io_uring_queue_init(64, &e->ring, 0);
    AU_ASSERT(r == 0);
    return e;
}

static void ext_doorbell(struct au_ext *e, struct au_shard *t)
{
    if (atomic_exchange_explicit(&t->doorbell_armed, 1, memory_order_acq_rel)) return;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&e->ring);
    if (!sqe) {
        io_uring_submit(&e->ring);
        sqe = io_uring_get_sqe(&e->ring);
    }
    AU_ASSERT(sqe != NULL);
    au_prep_msg_ring_data(sqe, t->ring_fd, 0, UD(OP_WAKE, 0));
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    e->pending_sqes++;
}

void au_ext_post(struct au_ext *e, int to, struct au_xmsg *m)
{
    AU_ASSERT(to >= 0 && to < e->nshards);
    struct au_shard *t = e->shards[to];
    m->dispose = NULL;
    m->next = NULL;
    if (!e->ovf_head[to] && au_xq_push(&t->inq[e->nshards + e->id], m)) {
        ext_doorbell(e, t);
        return;
    }
    if (!e->ovf_head[to]) {
        e->ovf_head[to] = m;
        e->novf++;
    } else {
        e->ovf_tail[to]->next = m;
    }
    e->ovf_tail[to] = m;
}

unsigned au_ext_flush(struct au_ext *e)
{
    for (int to = 0; to < e->nshards && e->novf; to++) {
        struct au_shard *t = e->shards[to];
        bool pushed = false;
        while (e->ovf_head[to] && au_xq_push(&t->inq[e->nshards + e->id], e->ovf_head[to])) {
            e->ovf_head[to] = e->ovf_head[to]->next;
            pushed = true;
        }
        if (pushed && !e->ovf_head[to]) e->novf--;
        if (pushed) ext_doorbell(e, t);
    }
    if (e->pending_sqes) {
        io_uring_submit(&e->ring);
        e->pending_sqes = 0;
        /* Reap completions of failed doorbells (successful ones post none). */
        struct io_uring_cqe *cqe;
        while (io_uring_peek_cqe(&e->ring, &cqe) == 0) io_uring_cqe_seen(&e->ring, cqe);
    }
    return e->novf;
}

int au_loop_ext_alloc(struct au_loop_opts *o, int n)
{
    if (n < 0 || o->n_ext < 0 || o->n_ext > AU_MAX_EXT - n) return -1;
    int first = o->n_ext;
    o->n_ext += n;
    return first;
}

void au_ext_free(struct au_ext *e)
{
    if (!e) return;
    io_uring_queue_exit(&e->ring);
    free(e->ovf_head);
    free(e->ovf_tail);
    free(e);
}

/* Plain TCP: every hook NULL, the loop's fast path (no copy, no call between socket and protocol). */
const struct au_transport au_transport_tcp = { .name = "tcp", .secure = false };
