/* worker.c - one io_uring per worker thread: the transport under aurora-bench's MQTT clients.
 *
 * Sockets live only as direct descriptors: each is made with socket() + bind() to its source
 * address, installed in the ring's sparse fixed-file table (slot == local connection index) with
 * one files_update per batch, and its normal fd closed at once, so a process holds far more
 * connections than RLIMIT_NOFILE. Receives are multishot into a provided-buffer ring (an idle
 * connection holds no buffer); each connection has one send in flight and a queue behind it;
 * teardown is cancel (receive, connect) -> close_direct. No allocation per I/O. */
#include "perf/bench/conn.h"

#include "core/log.h"
#include "gateway/mqtt/codec.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum op { OP_CONNECT = 1, OP_SEND, OP_RECV, OP_CANCEL, OP_CLOSE };
#define UD(op, idx) (((uint64_t)(op) << 32) | (uint64_t)(idx))
#define UD_OP(ud)   ((uint32_t)((ud) >> 32))
#define UD_IDX(ud)  ((uint32_t)(ud))

const char *const bench_err_names[E__COUNT] = {
    [E_SOCKET] = "socket", [E_CONNECT] = "connect", [E_CONNACK] = "connack", [E_SUBACK] = "suback",
    [E_PROTOCOL] = "protocol", [E_PEER_CLOSED] = "peer_closed", [E_SEND] = "send", [E_RECV] = "recv",
    [E_ACK] = "ack", [E_FOREIGN] = "foreign_publish", [E_TIMEOUT] = "setup_timeout", [E_MISROUTED] = "misrouted",
};

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint32_t slot_of(const struct bench_worker *w, const struct bench_conn *c)
{
    return (uint32_t)(c - w->conns);
}

void bench_err(struct bench_worker *w, enum bench_err e)
{
    AU_ASSERT(e < E__COUNT);
    stat_add(&w->st.errors[e], 1);
}

static struct io_uring_sqe *get_sqe(struct bench_worker *w)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
    if (AU_UNLIKELY(!sqe)) {
        io_uring_submit(&w->ring);
        sqe = io_uring_get_sqe(&w->ring);
    }
    AU_ASSERT(sqe);
    return sqe;
}

/* ---------------- buffers ---------------- */

static bool buf_reserve(struct bench_buf *b, size_t extra, size_t limit)
{
    size_t need = (size_t)b->len + extra;
    if (need <= b->cap) return true;
    if (need > limit) return false;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    if (cap > limit) cap = limit;
    uint8_t *p = realloc(b->p, cap);
    if (!p) return false;
    b->p = p;
    b->cap = (uint32_t)cap;
    return true;
}

static void buf_free(struct bench_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

uint8_t *conn_reserve(struct bench_conn *c, size_t len)
{
    if (!buf_reserve(&c->txq, len, BENCH_TX_MAX)) return NULL;
    return c->txq.p + c->txq.len;
}

void conn_commit(struct bench_conn *c, size_t len)
{
    AU_ASSERT((size_t)c->txq.len + len <= c->txq.cap);
    c->txq.len += (uint32_t)len;
}

bool conn_queue(struct bench_conn *c, const void *p, size_t len)
{
    uint8_t *o = conn_reserve(c, len);
    if (!o) return false;
    memcpy(o, p, len);
    conn_commit(c, len);
    return true;
}

/* ---------------- submission helpers ---------------- */

static void submit_send(struct bench_worker *w, struct bench_conn *c)
{
    AU_ASSERT(!(c->flags & CF_SEND) && c->tx_off < c->txf.len);
    struct io_uring_sqe *sqe = get_sqe(w);
    io_uring_prep_send(sqe, (int)slot_of(w, c), c->txf.p + c->tx_off, c->txf.len - c->tx_off, MSG_NOSIGNAL);
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, UD(OP_SEND, slot_of(w, c)));
    c->pending++;
    c->flags |= CF_SEND;
    c->last_tx_s = (uint32_t)((bench_now_ns() - w->run->t0_ns) / 1000000000u);
}

void conn_flush(struct bench_worker *w, struct bench_conn *c)
{
    if ((c->flags & CF_SEND) || c->txq.len == 0 || c->state >= CS_CLOSING) return;
    struct bench_buf t = c->txf;      /* swap: the queue goes in flight, the old in-flight buffer is reused */
    c->txf = c->txq;
    c->txq = t;
    c->txq.len = 0;
    c->tx_off = 0;
    submit_send(w, c);
}

static void arm_recv(struct bench_worker *w, struct bench_conn *c)
{
    AU_ASSERT(!(c->flags & CF_RECV));
    struct io_uring_sqe *sqe = get_sqe(w);
    io_uring_prep_recv_multishot(sqe, (int)slot_of(w, c), NULL, 0, 0);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    sqe->buf_group = BENCH_BGID;
    io_uring_sqe_set_data64(sqe, UD(OP_RECV, slot_of(w, c)));
    c->pending++;
    c->flags |= CF_RECV;
}

/* ---------------- connection lifecycle ---------------- */

static void conn_release(struct bench_worker *w, struct bench_conn *c)
{
    /* im-replay: the away device is gone (the gateway closed it after our DISCONNECT): senders may start */
    if (w->cfg->scenario == SC_IM_REPLAY && c->role == ROLE_SUB)
        atomic_store_explicit(&w->run->im_gate, 1, memory_order_release);
    buf_free(&c->txq);
    buf_free(&c->txf);
    buf_free(&c->rx);
    c->state = CS_CLOSED;
    AU_ASSERT(stat_get(&w->st.open) > 0);
    stat_sub(&w->st.open, 1);
}

static void maybe_finish(struct bench_worker *w, struct bench_conn *c)
{
    if (c->state != CS_CLOSING || c->pending) return;
    if (c->flags & CF_SLOT) {
        if (c->flags & CF_CLOSE) return;
        struct io_uring_sqe *sqe = get_sqe(w);
        io_uring_prep_close_direct(sqe, slot_of(w, c));
        io_uring_sqe_set_data64(sqe, UD(OP_CLOSE, slot_of(w, c)));
        c->pending++;
        c->flags |= CF_CLOSE;
        return;
    }
    conn_release(w, c);
}

static void cancel_op(struct bench_worker *w, struct bench_conn *c, enum op op)
{
    /* By user_data: a hash lookup. (Cancel by fd walks every pending request of the ring, and a
     * shutdown SQE is punted to an io-wq thread: both are slow with tens of thousands of sockets.) */
    struct io_uring_sqe *sqe = get_sqe(w);
    io_uring_prep_cancel64(sqe, UD(op, slot_of(w, c)), 0);
    io_uring_sqe_set_data64(sqe, UD(OP_CANCEL, slot_of(w, c)));
    c->pending++;
}

static void conn_close(struct bench_worker *w, struct bench_conn *c)
{
    if (c->state >= CS_CLOSING) return;
    bool connecting = c->state == CS_CONNECTING;
    if (connecting || c->state == CS_CONNACK_WAIT) {
        AU_ASSERT(w->connecting > 0);
        w->connecting--;
    }
    if (c->flags & CF_UP) {
        stat_sub(&w->st.alive, 1);
        c->flags &= (uint8_t)~CF_UP;
    }
    c->state = CS_CLOSING;
    if ((c->flags & CF_SLOT) && !(c->flags & CF_SHUT)) {
        c->flags |= CF_SHUT;
        if (c->flags & CF_RECV) cancel_op(w, c, OP_RECV);
        if (connecting) cancel_op(w, c, OP_CONNECT);
    }
    maybe_finish(w, c);
}

void conn_fail(struct bench_worker *w, struct bench_conn *c, int err)
{
    if (c->state >= CS_CLOSING) return;
    if (err >= 0) bench_err(w, (enum bench_err)err);
    int phase = atomic_load_explicit(&w->run->phase, memory_order_relaxed);
    if (!(c->flags & (CF_READY | CF_FAILED)) && phase == PH_SETUP) {
        c->flags |= CF_FAILED;
        stat_add(&w->st.failed, 1);
    }
    if ((c->flags & CF_UP) && phase < PH_TEARDOWN) stat_add(&w->st.lost, 1);
    conn_close(w, c);
}

void conn_mark_ready(struct bench_worker *w, struct bench_conn *c)
{
    c->state = CS_READY;
    if (!(c->flags & (CF_READY | CF_FAILED))) {
        c->flags |= CF_READY;
        stat_add(&w->st.ready, 1);
    }
}

void conn_disconnect(struct bench_worker *w, struct bench_conn *c)
{
    if (c->state >= CS_DISCONNECTING) return;
    if (!(c->flags & CF_UP)) {          /* no session yet: just close */
        conn_close(w, c);
        return;
    }
    uint8_t pkt[8];
    size_t n = mqtt_enc_disconnect(pkt, sizeof pkt, w->cfg->version, MQTT_DISCONNECT, MQTT_RC_SUCCESS, NULL);
    AU_ASSERT(n > 0);
    if (!conn_queue(c, pkt, n)) {
        conn_close(w, c);
        return;
    }
    c->state = CS_DISCONNECTING;
    conn_flush(w, c);
}

/* ---------------- connecting ---------------- */

static void log_first(struct bench_worker *w, enum bench_err e, const char *what, int res)
{
    if (stat_get(&w->st.errors[e]) == 1)
        au_warn("worker=%u first %s error: %s (%s)", w->id, bench_err_names[e], what, strerror(-res));
}

/* Create, bind and register sockets for local connections [first, first + n), then connect them. */
static void open_batch(struct bench_worker *w, uint32_t first, uint32_t n, uint64_t now)
{
    const struct bench_cfg *cfg = w->cfg;
    int fds[BENCH_SOCKET_BATCH];
    AU_ASSERT(n <= BENCH_SOCKET_BATCH);
    int first_errno = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct bench_conn *c = &w->conns[first + i];
        int fd = socket(cfg->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0) {
            int one = 1;
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (cfg->n_src) {
                const struct sockaddr_storage *src = &cfg->src[c->gidx % cfg->n_src];
                /* The port is chosen at connect time per 4-tuple: ~28k connections per source address. */
                (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
                socklen_t sl = src->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
                if (bind(fd, (const struct sockaddr *)src, sl) < 0) {
                    if (!first_errno) first_errno = errno;
                    close(fd);
                    fd = -1;
                }
            }
        } else if (!first_errno) {
            first_errno = errno;
        }
        fds[i] = fd;
    }
    int r = io_uring_register_files_update(&w->ring, first, fds, n);
    for (uint32_t i = 0; i < n; i++)
        if (fds[i] >= 0) close(fds[i]);          /* the fixed table holds its own reference */
    if (r < 0 && !first_errno) first_errno = -r;
    for (uint32_t i = 0; i < n; i++) {
        struct bench_conn *c = &w->conns[first + i];
        stat_add(&w->st.connects, 1);
        if (r < 0 || i >= (uint32_t)r || fds[i] < 0) {
            c->state = CS_CLOSING;               /* never had a slot: releases at once */
            c->flags |= CF_FAILED;
            stat_add(&w->st.failed, 1);
            bench_err(w, E_SOCKET);
            log_first(w, E_SOCKET, r < 0 ? "files_update" : "socket/bind", -first_errno);
            maybe_finish(w, c);
            continue;
        }
        c->flags |= CF_SLOT;
        c->state = CS_CONNECTING;
        c->t_connect_ns = now;
        w->connecting++;
        struct io_uring_sqe *sqe = get_sqe(w);
        io_uring_prep_connect(sqe, (int)(first + i), (const struct sockaddr *)&cfg->target, cfg->target_len);
        sqe->flags |= IOSQE_FIXED_FILE;
        io_uring_sqe_set_data64(sqe, UD(OP_CONNECT, first + i));
        c->pending++;
    }
    if (!stat_get(&w->st.first_connect_ns))
        atomic_store_explicit(&w->st.first_connect_ns, now, memory_order_relaxed);
}

static void start_connects(struct bench_worker *w, uint64_t now, bool deferred)
{
    /* A deferred connection (the last local one) starts only when asked (im-replay's replay phase). */
    uint32_t end = w->defer_idx < w->n_conns && !deferred ? w->defer_idx : w->n_conns;
    if (w->next_connect >= end) return;
    uint64_t budget = w->cfg->connect_window > w->connecting ? w->cfg->connect_window - w->connecting : 0;
    if (w->pace_rate > 0 && w->cfg->scenario < SC_P2P) {   /* --rate paces connects in hold/storm only */
        uint64_t allowed = (uint64_t)(w->pace_rate * (double)(now - w->pace_base_ns) / 1e9) + 1;
        uint64_t room = allowed > w->pace_done ? allowed - w->pace_done : 0;
        budget = AU_MIN(budget, room);
    }
    budget = AU_MIN(budget, (uint64_t)(end - w->next_connect));
    while (budget) {
        uint32_t n = (uint32_t)AU_MIN(budget, (uint64_t)BENCH_SOCKET_BATCH);
        open_batch(w, w->next_connect, n, now);
        w->next_connect += n;
        w->pace_done += n;
        budget -= n;
    }
}

/* ---------------- receive path ---------------- */

/* Feed received bytes: whole packets go to the client straight from the provided buffer; a
 * packet split across buffers is gathered in c->rx. Returns -1 when the connection was failed. */
static int feed(struct bench_worker *w, struct bench_conn *c, const uint8_t *p, uint32_t n)
{
    while (n) {
        if (c->state >= CS_CLOSING) return -1;
        uint32_t total = 0;
        if (c->rx.len) {
            int r = mqtt_frame(c->rx.p, c->rx.len, w->max_packet, &total);
            if (r < 0) goto bad;
            uint32_t take = r ? AU_MIN(total - c->rx.len, n) : 1;   /* header incomplete: byte by byte (<= 4) */
            if (!buf_reserve(&c->rx, take, w->max_packet)) goto bad;
            memcpy(c->rx.p + c->rx.len, p, take);
            c->rx.len += take;
            p += take;
            n -= take;
            if (r && c->rx.len == total) {
                c->rx.len = 0;
                if (client_on_packet(w, c, c->rx.p, total) < 0) return -1;
                if (c->rx.cap > BENCH_MAX_PACKET_MIN) buf_free(&c->rx);
            }
            continue;
        }
        int r = mqtt_frame(p, n, w->max_packet, &total);
        if (r < 0) goto bad;
        if (r == 0 || total > n) {
            if (!buf_reserve(&c->rx, r ? total : n, w->max_packet)) goto bad;
            memcpy(c->rx.p, p, n);
            c->rx.len = n;
            return 0;
        }
        if (client_on_packet(w, c, p, total) < 0) return -1;
        p += total;
        n -= total;
    }
    return 0;
bad:
    conn_fail(w, c, E_PROTOCOL);
    if (stat_get(&w->st.errors[E_PROTOCOL]) == 1)
        au_warn("worker=%u conn=%u bad frame from broker (over %u bytes or malformed length)",
                w->id, c->gidx, w->max_packet);
    return -1;
}

static void on_recv(struct bench_worker *w, struct bench_conn *c, const struct io_uring_cqe *cqe)
{
    int res = cqe->res;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        AU_ASSERT(bid < BENCH_RECV_BUF_COUNT);
        uint8_t *data = w->bufs + (size_t)bid * BENCH_RECV_BUF_SIZE;
        if (res > 0 && c->state < CS_CLOSING) {
            if (feed(w, c, data, (uint32_t)res) == 0) conn_flush(w, c);
        }
        io_uring_buf_ring_add(w->br, data, BENCH_RECV_BUF_SIZE, (unsigned short)bid,
                              io_uring_buf_ring_mask(BENCH_RECV_BUF_COUNT), (int)w->br_added++);
    }
    if (cqe->flags & IORING_CQE_F_MORE) return;
    c->flags &= (uint8_t)~CF_RECV;
    AU_ASSERT(c->pending > 0);
    c->pending--;
    if (c->state >= CS_CLOSING) {
        maybe_finish(w, c);
        return;
    }
    if (res == -ENOBUFS || res > 0) {         /* out of buffers or ended for another reason: re-arm later */
        w->rearm[w->n_rearm++] = slot_of(w, c);
        return;
    }
    if (c->state == CS_DISCONNECTING) {       /* broker closed after our DISCONNECT: fine */
        conn_close(w, c);
        return;
    }
    if (res == 0 || res == -ECONNRESET) {
        conn_fail(w, c, E_PEER_CLOSED);
        log_first(w, E_PEER_CLOSED, "receive", res ? res : -ECONNRESET);
    } else {
        conn_fail(w, c, E_RECV);
        log_first(w, E_RECV, "receive", res);
    }
}

static void on_send(struct bench_worker *w, struct bench_conn *c, int res)
{
    c->flags &= (uint8_t)~CF_SEND;
    AU_ASSERT(c->pending > 0);
    c->pending--;
    if (c->state >= CS_CLOSING) {
        maybe_finish(w, c);
        return;
    }
    if (res < 0) {
        enum bench_err e = (res == -EPIPE || res == -ECONNRESET) ? E_PEER_CLOSED : E_SEND;
        if (c->state == CS_DISCONNECTING) {
            conn_close(w, c);
            return;
        }
        conn_fail(w, c, e);
        log_first(w, e, "send", res);
        return;
    }
    c->tx_off += (uint32_t)res;
    if (c->tx_off < c->txf.len) {              /* short send: the rest */
        submit_send(w, c);
        return;
    }
    c->txf.len = 0;
    c->tx_off = 0;
    if (c->txq.len) {
        conn_flush(w, c);
    } else if (c->state == CS_DISCONNECTING) {
        conn_close(w, c);
    } else if (c->role == ROLE_IDLE) {         /* idle sessions keep no buffers between pings */
        buf_free(&c->txf);
        buf_free(&c->txq);
    }
}

static void on_connect(struct bench_worker *w, struct bench_conn *c, int res)
{
    AU_ASSERT(c->pending > 0);
    c->pending--;
    if (c->state != CS_CONNECTING) {
        maybe_finish(w, c);
        return;
    }
    if (res < 0) {
        conn_fail(w, c, E_CONNECT);
        log_first(w, E_CONNECT, "connect", res);
        return;
    }
    c->state = CS_CONNACK_WAIT;
    arm_recv(w, c);
    client_on_tcp_connected(w, c);
}

static void handle_cqe(struct bench_worker *w, const struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    uint32_t idx = UD_IDX(ud);
    AU_ASSERT(idx < w->n_conns);
    struct bench_conn *c = &w->conns[idx];
    switch (UD_OP(ud)) {
    case OP_CONNECT: on_connect(w, c, cqe->res); break;
    case OP_SEND:    on_send(w, c, cqe->res); break;
    case OP_RECV:    on_recv(w, c, cqe); break;
    case OP_CANCEL:
        AU_ASSERT(c->pending > 0);
        c->pending--;
        maybe_finish(w, c);
        break;
    case OP_CLOSE:
        AU_ASSERT(c->pending > 0);
        c->pending--;
        c->flags &= (uint8_t)~CF_SLOT;
        maybe_finish(w, c);
        break;
    default:
        AU_ASSERT(!"unknown op");
    }
}

/* ---------------- setup / loop ---------------- */

static int ring_setup(struct bench_worker *w)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    p.cq_entries = BENCH_CQ_ENTRIES;
    int r = io_uring_queue_init_params(BENCH_RING_ENTRIES, &w->ring, &p);
    if (r == -EINVAL) {                       /* older kernel: no DEFER_TASKRUN */
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = BENCH_CQ_ENTRIES;
        r = io_uring_queue_init_params(BENCH_RING_ENTRIES, &w->ring, &p);
    }
    if (r < 0) {
        snprintf(w->err_msg, sizeof w->err_msg, "io_uring_queue_init: %s", strerror(-r));
        return -1;
    }
    w->ring_ok = true;
    r = io_uring_register_files_sparse(&w->ring, w->n_conns);
    if (r < 0) {
        snprintf(w->err_msg, sizeof w->err_msg, "register_files_sparse(%u): %s", w->n_conns, strerror(-r));
        return -1;
    }
    w->br_size = BENCH_RECV_BUF_COUNT * sizeof(struct io_uring_buf);
    void *br = mmap(NULL, w->br_size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (br == MAP_FAILED) {
        snprintf(w->err_msg, sizeof w->err_msg, "mmap buffer ring: %s", strerror(errno));
        return -1;
    }
    w->br = br;
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uintptr_t)br;
    reg.ring_entries = BENCH_RECV_BUF_COUNT;
    reg.bgid = BENCH_BGID;
    r = io_uring_register_buf_ring(&w->ring, &reg, 0);
    if (r < 0) {
        snprintf(w->err_msg, sizeof w->err_msg, "register_buf_ring: %s", strerror(-r));
        return -1;
    }
    w->bufs = aligned_alloc(4096, (size_t)BENCH_RECV_BUF_COUNT * BENCH_RECV_BUF_SIZE);
    if (!w->bufs) {
        snprintf(w->err_msg, sizeof w->err_msg, "out of memory for receive buffers");
        return -1;
    }
    io_uring_buf_ring_init(w->br);
    for (unsigned i = 0; i < BENCH_RECV_BUF_COUNT; i++)
        io_uring_buf_ring_add(w->br, w->bufs + (size_t)i * BENCH_RECV_BUF_SIZE, BENCH_RECV_BUF_SIZE,
                              (unsigned short)i, io_uring_buf_ring_mask(BENCH_RECV_BUF_COUNT), (int)i);
    io_uring_buf_ring_advance(w->br, BENCH_RECV_BUF_COUNT);
    return 0;
}

static void start_teardown(struct bench_worker *w)
{
    for (uint32_t i = 0; i < w->n_conns; i++) {
        struct bench_conn *c = &w->conns[i];
        if (c->state == CS_NEW) {
            c->state = CS_CLOSED;
            stat_sub(&w->st.open, 1);
        } else if (c->state < CS_DISCONNECTING) {
            conn_disconnect(w, c);
        }
    }
}

static void on_phase(struct bench_worker *w, int phase, uint64_t now)
{
    if (phase == w->phase) return;
    w->phase = phase;
    if (phase == PH_RUN) {
        w->pace_base_ns = atomic_load_explicit(&w->run->run_start_ns, memory_order_relaxed);
        if (!w->pace_base_ns) w->pace_base_ns = now;
        w->pace_done = 0;
        w->pace_rate = 0;
        if (w->cfg->rate > 0 && w->cfg->publishers)
            w->pace_rate = w->cfg->rate * (double)w->n_pubs / (double)w->cfg->publishers;
        if (w->cfg->scenario == SC_IM_REPLAY) {   /* the receiving device goes away before the sends */
            for (uint32_t i = 0; i < w->n_conns; i++) {
                struct bench_conn *c = &w->conns[i];
                if (c->role != ROLE_SUB) continue;
                if (c->state < CS_DISCONNECTING) conn_disconnect(w, c);
                else if (c->state == CS_CLOSED) atomic_store_explicit(&w->run->im_gate, 1, memory_order_release);
            }
        }
    } else if (phase >= PH_TEARDOWN) {
        start_teardown(w);
    }
}

static void loop(struct bench_worker *w)
{
    struct bench_run *run = w->run;
    for (;;) {
        uint64_t now = bench_now_ns();
        int phase = atomic_load_explicit(&run->phase, memory_order_acquire);
        on_phase(w, phase, now);
        if (phase == PH_DONE) break;
        if (phase >= PH_TEARDOWN && stat_get(&w->st.open) == 0) break;
        if (phase == PH_SETUP) start_connects(w, now, false);
        if (phase == PH_SETUP && w->cfg->im) im_settle_scan(w, now);
        if (phase == PH_DRAIN && w->cfg->scenario == SC_IM_REPLAY) start_connects(w, now, true);
        if (phase == PH_RUN) client_publish_pass(w, now);
        if (phase < PH_TEARDOWN) client_keepalive(w, now);

        /* Short waits while pacing or publishing (other workers' progress opens windows). */
        long wait_ns = (phase == PH_RUN || phase == PH_DRAIN || (phase == PH_SETUP && w->next_connect < w->n_conns))
                           ? 1000000L : 20000000L;
        struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = wait_ns };
        struct io_uring_cqe *cqe = NULL;
        int r = io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
        if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY && r != -EAGAIN) {
            snprintf(w->err_msg, sizeof w->err_msg, "io_uring_submit_and_wait: %s", strerror(-r));
            w->fatal = 1;
            break;
        }
        unsigned head, n = 0;
        io_uring_for_each_cqe(&w->ring, head, cqe) {
            handle_cqe(w, cqe);
            n++;
        }
        io_uring_cq_advance(&w->ring, n);
        if (w->br_added) {
            io_uring_buf_ring_advance(w->br, (int)w->br_added);
            w->br_added = 0;
        }
        for (uint32_t i = 0; i < w->n_rearm; i++) {
            struct bench_conn *c = &w->conns[w->rearm[i]];
            if (c->state < CS_CLOSING && !(c->flags & CF_RECV)) arm_recv(w, c);
        }
        w->n_rearm = 0;
    }
}

void *bench_worker_main(void *arg)
{
    struct bench_worker *w = arg;
    au_log_set_shard((int)w->id);
    w->phase = -1;
    w->defer_idx = UINT32_MAX;
    w->conns = calloc(w->n_conns ? w->n_conns : 1, sizeof *w->conns);
    w->rearm = calloc(w->n_conns ? w->n_conns : 1, sizeof *w->rearm);
    if (!w->conns || !w->rearm) {
        snprintf(w->err_msg, sizeof w->err_msg, "out of memory for %u connections", w->n_conns);
        w->fatal = 1;
    } else if (ring_setup(w) < 0 || client_init(w) < 0) {
        w->fatal = 1;
    }
    if (!w->fatal) {
        stat_add(&w->st.open, w->n_conns);
        w->pace_base_ns = atomic_load_explicit(&w->run->setup_start_ns, memory_order_relaxed);
        w->pace_rate = 0;
        if ((w->cfg->scenario == SC_HOLD || w->cfg->scenario == SC_STORM) && w->cfg->rate > 0)
            w->pace_rate = w->cfg->rate / (double)w->run->n_workers;
        loop(w);
    }
    if (w->ring_ok) io_uring_queue_exit(&w->ring);   /* cancels whatever is still in flight */
    if (w->conns && w->cfg->im) im_finish(w);        /* missing messages; frees the tracking */
    if (w->conns)
        for (uint32_t i = 0; i < w->n_conns; i++) {
            buf_free(&w->conns[i].txq);
            buf_free(&w->conns[i].txf);
            buf_free(&w->conns[i].rx);
        }
    client_free(w);
    if (w->br) munmap(w->br, w->br_size);
    free(w->bufs);
    free(w->conns);
    free(w->rearm);
    w->conns = NULL;
    atomic_store_explicit(&w->st.done, 1, memory_order_release);
    return NULL;
}
