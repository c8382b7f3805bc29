/* uring_ceiling.c - the "raw ceiling" row of the benchmark tables: bytes moved over loopback TCP by io_uring
 * with no protocol at all, so a broker's numbers can be read against what the machine does without MQTT.
 *
 * Two threads, each with its own ring. The sender owns the accepted (server-side) ends of N connections, as a
 * broker owns its subscribers' sockets; the receiver owns the client ends and counts bytes with multishot recv
 * into a provided-buffer ring (an idle connection holds no buffer). A "message" is --size bytes; the receiver
 * counts messages as bytes / size.
 *
 *   stream mode (default): every connection sends on its own, one send in flight per socket, each send
 *       carrying --batch messages (1 = one send per message, as a broker that does not coalesce), as fast as
 *       possible or at --rate messages/s in total.
 *   fan-out mode (--fanout N): one publisher; each publish is the same buffer written to all N sockets (N
 *       deliveries). A socket is at most --window publishes behind the newest; --rate is publishes/s. This gives
 *       a deliveries/s ceiling for small messages.
 *
 * Output: one human-readable table line and one `JSON:{...}` line. Every run is bounded: --duration at most
 * 120 s, plus a watchdog (SIGALRM) over setup and teardown. */
#include "core/common.h"

#include <errno.h>
#include <liburing.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

/* ---- limits of this tool ---- */
#define UC_DEFAULT_DURATION_S   5.0
#define UC_MAX_DURATION_S       120.0
#define UC_DEFAULT_WARMUP_S     0.5
#define UC_MAX_WARMUP_S         10.0
#define UC_MAX_CONNS            1000000u
#define UC_MAX_SIZE             (16u << 20)     /* bytes per message */
#define UC_MAX_SEND_BYTES       (64u << 20)     /* batch * size: bytes in one send */
#define UC_MAX_BATCH            4096u
#define UC_DEFAULT_WINDOW       64u             /* fan-out: publishes a socket may lag behind */
#define UC_MAX_WINDOW           65536u
#define UC_RING_ENTRIES         4096u
#define UC_RING_CQ_ENTRIES      65536u
#define UC_RBUF_SIZE_DEFAULT    16384u          /* provided receive buffer size */
#define UC_RBUF_COUNT_DEFAULT   1024u           /* provided receive buffers (power of two) */
#define UC_RBUF_COUNT_MAX       32768u
#define UC_RBUF_BGID            7
#define UC_CONNS_PER_SRC_ADDR   25000u          /* client sockets per 127.0.0.x source address */
#define UC_TICK_US              1000u           /* wake-up period when rate-limited */
#define UC_MAX_WAIT_US          10000u          /* longest wait in the event loops */
#define UC_SETUP_WATCHDOG_S     120u            /* extra seconds for setup + teardown before SIGALRM */

_Static_assert((UC_RBUF_COUNT_DEFAULT & (UC_RBUF_COUNT_DEFAULT - 1)) == 0, "buffer ring size: power of two");
_Static_assert((uint64_t)UC_MAX_BATCH * 1 <= UC_MAX_SEND_BYTES, "batch of 1-byte messages fits a send");
_Static_assert(UC_DEFAULT_WINDOW >= 2 && UC_DEFAULT_WINDOW % 2 == 0, "window advances in halves");

struct uc_opts {
    uint32_t conns;
    uint32_t size;
    uint32_t batch;
    uint32_t window;
    uint32_t rbuf_size;
    uint32_t rbuf_count;
    double rate;            /* msgs/s (stream) or publishes/s (fan-out); 0 = as fast as possible */
    double duration_s;
    double warmup_s;
    uint16_t port;
    bool fanout;
    bool nodelay;
    bool pin;
    bool quiet;
};

/* Measurement window shared by both threads (CLOCK_MONOTONIC microseconds). */
struct uc_clock {
    uint64_t t0;            /* both threads start */
    uint64_t t_begin;       /* t0 + warmup: counting starts */
    uint64_t t_end;         /* t_begin + duration: counting and sending stop */
};

struct uc_sconn {
    int fd;
    bool inflight;
    uint32_t mark;          /* fan-out: epoch in which this socket was counted as caught up */
    uint64_t target;        /* bytes this socket should have sent */
    uint64_t sent;          /* bytes completed */
};

struct uc_sender {
    const struct uc_opts *o;
    const struct uc_clock *clk;
    struct io_uring ring;
    struct uc_sconn *c;
    uint32_t n;
    uint8_t *buf;           /* (batch + 1) messages back to back: any window of batch*size bytes is contiguous */
    /* stream + rate: FIFO of idle connections waiting for tokens */
    uint32_t *idle;
    uint32_t idle_head, idle_len;
    uint64_t issued_msgs;
    /* fan-out */
    uint64_t published;     /* P: publishes made so far */
    uint64_t t_done;        /* every socket has delivered >= t_done publishes */
    uint64_t t_next;        /* next threshold (t_done + window/2) */
    uint32_t caught;        /* sockets with delivered >= t_next in this epoch */
    uint32_t epoch;
    /* counters */
    uint64_t sends, bytes, errors;
    uint64_t sends_b, bytes_b, pub_b, cpu_b;    /* snapshots at t_begin */
    uint64_t sends_e, bytes_e, pub_e, cpu_e;    /* snapshots at t_end */
    uint64_t tb, te;
    const char *err;
};

struct uc_receiver {
    const struct uc_opts *o;
    const struct uc_clock *clk;
    struct io_uring ring;
    int *fd;
    uint32_t n;
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    uint8_t *bufs;
    uint32_t nbufs;
    uint64_t bytes, recvs, rearms, enobufs, errors, eofs;
    uint64_t bytes_b, recvs_b, cpu_b;
    uint64_t bytes_e, recvs_e, cpu_e;
    uint64_t tb, te;
    const char *err;
};

static atomic_int g_ready;          /* threads that have set up their rings */

static void die(const char *what)
{
    fprintf(stderr, "uring-ceiling: %s: %s\n", what, strerror(errno));
    exit(1);
}

static uint64_t thread_cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int ring_init(struct io_uring *ring, uint32_t cq_entries)
{
    struct io_uring_params p;
    const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < AU_ARRAY_LEN(tries); i++) {
        memset(&p, 0, sizeof p);
        p.flags = tries[i] | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        p.cq_entries = cq_entries;
        rc = io_uring_queue_init_params(UC_RING_ENTRIES, ring, &p);
        if (rc == 0)
            return 0;
    }
    return rc;
}

static struct io_uring_sqe *get_sqe(struct io_uring *ring)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (AU_UNLIKELY(sqe == NULL)) {
        io_uring_submit(ring);
        sqe = io_uring_get_sqe(ring);
    }
    AU_ASSERT(sqe != NULL);
    return sqe;
}

static void wait_cqes(struct io_uring *ring, uint64_t wait_us)
{
    struct __kernel_timespec ts = { .tv_sec = (long long)(wait_us / 1000000u),
                                    .tv_nsec = (long long)(wait_us % 1000000u) * 1000 };
    struct io_uring_cqe *cqe = NULL;
    int rc = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
    AU_ASSERT(rc >= 0 || rc == -ETIME || rc == -EINTR || rc == -EAGAIN || rc == -EBUSY);
}

static void pin_self(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void start_barrier(void)
{
    atomic_fetch_add(&g_ready, 1);
    while (atomic_load(&g_ready) < 3)
        sched_yield();
}

/* ------------------------------------------------------------------------------------------------------------
 * sender
 * ---------------------------------------------------------------------------------------------------------- */
static void s_send(struct uc_sender *s, uint32_t i)
{
    struct uc_sconn *c = &s->c[i];
    const uint64_t size = s->o->size;
    AU_ASSERT(!c->inflight && c->target > c->sent);
    uint64_t len = AU_MIN(c->target - c->sent, (uint64_t)s->o->batch * size);
    uint64_t off = c->sent % size;
    struct io_uring_sqe *sqe = get_sqe(&s->ring);
    io_uring_prep_send(sqe, c->fd, s->buf + off, (size_t)len, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, i);
    c->inflight = true;
}

/* Fan-out: make publishes up to what the window and the rate allow, and start every idle socket that is behind. */
static void s_fanout_publish(struct uc_sender *s, uint64_t now)
{
    uint64_t limit = s->t_done + s->o->window;
    if (s->o->rate > 0) {
        uint64_t by_rate = (uint64_t)(s->o->rate * (double)(now - s->clk->t0) / 1e6);
        limit = AU_MIN(limit, by_rate);
    }
    if (limit <= s->published)
        return;
    s->published = limit;
    const uint64_t target = s->published * s->o->size;
    for (uint32_t i = 0; i < s->n; i++) {
        s->c[i].target = target;
        if (!s->c[i].inflight && s->c[i].sent < target)
            s_send(s, i);
    }
}

/* Fan-out: socket i delivered more; when every socket has reached t_next the window slides by half. */
static void s_fanout_progress(struct uc_sender *s, uint32_t i, uint64_t now)
{
    struct uc_sconn *c = &s->c[i];
    const uint64_t size = s->o->size;
    if (c->mark != s->epoch && c->sent / size >= s->t_next) {
        c->mark = s->epoch;
        s->caught++;
    }
    while (s->caught == s->n) {
        s->t_done = s->t_next;
        s->t_next += s->o->window / 2;
        s->epoch++;
        s->caught = 0;
        for (uint32_t j = 0; j < s->n; j++) {
            if (s->c[j].sent / size >= s->t_next) {
                s->c[j].mark = s->epoch;
                s->caught++;
            }
        }
        s_fanout_publish(s, now);
    }
}

/* Stream + rate: hand out the tokens earned so far to idle connections, oldest first. */
static void s_stream_tokens(struct uc_sender *s, uint64_t now)
{
    uint64_t earned = (uint64_t)(s->o->rate * (double)(now - s->clk->t0) / 1e6);
    while (s->idle_len > 0 && earned > s->issued_msgs) {
        uint64_t k = AU_MIN(earned - s->issued_msgs, (uint64_t)s->o->batch);
        uint32_t i = s->idle[s->idle_head];
        s->idle_head = (s->idle_head + 1) % s->n;
        s->idle_len--;
        s->c[i].target += k * s->o->size;
        s->issued_msgs += k;
        s_send(s, i);
    }
}

static void s_idle_push(struct uc_sender *s, uint32_t i)
{
    AU_ASSERT(s->idle_len < s->n);
    s->idle[(s->idle_head + s->idle_len) % s->n] = i;
    s->idle_len++;
}

static void s_complete(struct uc_sender *s, uint32_t i, int res, uint64_t now)
{
    struct uc_sconn *c = &s->c[i];
    AU_ASSERT(i < s->n && c->inflight);
    c->inflight = false;
    if (res <= 0) {
        if (res == -EAGAIN || res == -EINTR || res == -ENOBUFS) {
            s_send(s, i);
            return;
        }
        s->errors++;
        if (!s->err)
            s->err = res == 0 ? "send returned 0" : strerror(-res);
        return;                             /* the connection stays dead */
    }
    s->sends++;
    s->bytes += (uint64_t)res;
    c->sent += (uint64_t)res;
    AU_ASSERT(c->sent <= c->target);
    if (s->o->fanout) {
        if (c->sent < c->target)
            s_send(s, i);
        s_fanout_progress(s, i, now);
        return;
    }
    if (c->sent < c->target) {              /* short send: finish what was started */
        s_send(s, i);
    } else if (s->o->rate > 0) {
        s_idle_push(s, i);
    } else {
        c->target += (uint64_t)s->o->batch * s->o->size;
        s_send(s, i);
    }
}

static void *sender_main(void *arg)
{
    struct uc_sender *s = arg;
    const struct uc_opts *o = s->o;
    if (o->pin)
        pin_self(0);
    int rc = ring_init(&s->ring, UC_RING_CQ_ENTRIES);
    if (rc < 0) {
        fprintf(stderr, "uring-ceiling: sender io_uring_queue_init: %s\n", strerror(-rc));
        exit(1);
    }
    start_barrier();
    uint64_t now = au_now_us();
    bool in_window = false;

    if (o->fanout) {
        s->t_done = 0;
        s->t_next = o->window / 2;
        s->epoch = 1;                       /* marks start at 0: nobody counted yet */
        s_fanout_publish(s, now);
    } else if (o->rate > 0) {
        for (uint32_t i = 0; i < s->n; i++)
            s_idle_push(s, i);
        s_stream_tokens(s, now);
    } else {
        for (uint32_t i = 0; i < s->n; i++) {
            s->c[i].target = (uint64_t)o->batch * o->size;
            s_send(s, i);
        }
    }

    while (now < s->clk->t_end) {
        uint64_t wait = o->rate > 0 ? UC_TICK_US : UC_MAX_WAIT_US;
        if (!in_window)
            wait = AU_MIN(wait, s->clk->t_begin > now ? s->clk->t_begin - now : 0);
        wait = AU_MIN(wait, s->clk->t_end - now);
        wait_cqes(&s->ring, AU_MAX(wait, (uint64_t)1));
        now = au_now_us();
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&s->ring, head, cqe) {
            s_complete(s, (uint32_t)io_uring_cqe_get_data64(cqe), cqe->res, now);
            seen++;
        }
        io_uring_cq_advance(&s->ring, seen);
        if (o->rate > 0) {
            if (o->fanout)
                s_fanout_publish(s, now);
            else
                s_stream_tokens(s, now);
        }
        if (!in_window && now >= s->clk->t_begin) {
            in_window = true;
            s->tb = now;
            s->sends_b = s->sends;
            s->bytes_b = s->bytes;
            s->pub_b = s->published;
            s->cpu_b = thread_cpu_us();
        }
    }
    s->te = now;
    s->sends_e = s->sends;
    s->bytes_e = s->bytes;
    s->pub_e = s->published;
    s->cpu_e = thread_cpu_us();
    return NULL;
}

/* ------------------------------------------------------------------------------------------------------------
 * receiver
 * ---------------------------------------------------------------------------------------------------------- */
static void r_arm(struct uc_receiver *r, uint32_t i)
{
    struct io_uring_sqe *sqe = get_sqe(&r->ring);
    io_uring_prep_recv_multishot(sqe, r->fd[i], NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = UC_RBUF_BGID;
    io_uring_sqe_set_data64(sqe, i);
}

static int r_setup_bufs(struct uc_receiver *r)
{
    const uint32_t n = r->o->rbuf_count, sz = r->o->rbuf_size;
    r->nbufs = n;
    r->br_bytes = (size_t)n * sizeof(struct io_uring_buf);
    r->br = mmap(NULL, r->br_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (r->br == MAP_FAILED)
        return -errno;
    r->bufs = mmap(NULL, (size_t)n * sz, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (r->bufs == MAP_FAILED)
        return -errno;
    struct io_uring_buf_reg reg = { .ring_addr = (uint64_t)(uintptr_t)r->br, .ring_entries = n,
                                    .bgid = UC_RBUF_BGID };
    int rc = io_uring_register_buf_ring(&r->ring, &reg, 0);
    if (rc < 0)
        return rc;
    io_uring_buf_ring_init(r->br);
    int mask = io_uring_buf_ring_mask(n);
    for (uint32_t b = 0; b < n; b++)
        io_uring_buf_ring_add(r->br, r->bufs + (size_t)b * sz, sz, (unsigned short)b, mask, (int)b);
    io_uring_buf_ring_advance(r->br, (int)n);
    return 0;
}

static void *receiver_main(void *arg)
{
    struct uc_receiver *r = arg;
    const struct uc_opts *o = r->o;
    if (o->pin)
        pin_self(1);
    int rc = ring_init(&r->ring, UC_RING_CQ_ENTRIES);
    if (rc < 0) {
        fprintf(stderr, "uring-ceiling: receiver io_uring_queue_init: %s\n", strerror(-rc));
        exit(1);
    }
    rc = r_setup_bufs(r);
    if (rc < 0) {
        fprintf(stderr, "uring-ceiling: provided buffer ring: %s (kernel >= 5.19 needed)\n", strerror(-rc));
        exit(1);
    }
    for (uint32_t i = 0; i < r->n; i++)
        r_arm(r, i);
    io_uring_submit(&r->ring);
    start_barrier();

    const int mask = io_uring_buf_ring_mask(r->nbufs);
    const uint32_t sz = o->rbuf_size;
    uint64_t now = au_now_us();
    bool in_window = false;
    while (now < r->clk->t_end) {
        uint64_t wait = UC_MAX_WAIT_US;
        if (!in_window)
            wait = AU_MIN(wait, r->clk->t_begin > now ? r->clk->t_begin - now : 0);
        wait = AU_MIN(wait, r->clk->t_end - now);
        wait_cqes(&r->ring, AU_MAX(wait, (uint64_t)1));
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        int given = 0;
        io_uring_for_each_cqe(&r->ring, head, cqe) {
            uint32_t i = (uint32_t)io_uring_cqe_get_data64(cqe);
            AU_ASSERT(i < r->n);
            seen++;
            if (cqe->flags & IORING_CQE_F_BUFFER) {
                unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
                AU_ASSERT(bid < r->nbufs);
                io_uring_buf_ring_add(r->br, r->bufs + (size_t)bid * sz, sz, (unsigned short)bid, mask, given);
                given++;
            }
            if (cqe->res > 0) {
                r->bytes += (uint64_t)cqe->res;
                r->recvs++;
            } else if (cqe->res == -ENOBUFS) {
                r->enobufs++;
            } else if (cqe->res == 0) {
                r->eofs++;
                continue;                   /* peer closed: do not re-arm */
            } else {
                r->errors++;
                if (!r->err)
                    r->err = strerror(-cqe->res);
                continue;
            }
            if (!(cqe->flags & IORING_CQE_F_MORE)) {
                r->rearms++;
                r_arm(r, i);
            }
        }
        if (given)
            io_uring_buf_ring_advance(r->br, given);
        io_uring_cq_advance(&r->ring, seen);
        now = au_now_us();
        if (!in_window && now >= r->clk->t_begin) {
            in_window = true;
            r->tb = now;
            r->bytes_b = r->bytes;
            r->recvs_b = r->recvs;
            r->cpu_b = thread_cpu_us();
        }
    }
    r->te = now;
    r->bytes_e = r->bytes;
    r->recvs_e = r->recvs;
    r->cpu_e = thread_cpu_us();
    return NULL;
}

/* ------------------------------------------------------------------------------------------------------------
 * setup: N loopback connection pairs
 * ---------------------------------------------------------------------------------------------------------- */
static void raise_nofile(uint64_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        die("getrlimit");
    if (rl.rlim_max < need) {               /* root (CAP_SYS_RESOURCE) may raise the hard limit up to fs.nr_open */
        struct rlimit up = { .rlim_cur = need, .rlim_max = need };
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl = up;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < need) {
        fprintf(stderr, "uring-ceiling: need %llu open files, RLIMIT_NOFILE is %llu "
                        "(raise it: ulimit -n, kernel-tuning/limits.conf)\n",
                (unsigned long long)need, (unsigned long long)rl.rlim_cur);
        exit(1);
    }
}

static void make_pairs(const struct uc_opts *o, int *srv, int *cli)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(o->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0)
        die("bind listener");
    if (listen(lfd, 4096) != 0)
        die("listen");
    socklen_t alen = sizeof a;
    if (getsockname(lfd, (struct sockaddr *)&a, &alen) != 0)
        die("getsockname");
    for (uint32_t i = 0; i < o->conns; i++) {
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c < 0)
            die("socket");
        if (o->conns > UC_CONNS_PER_SRC_ADDR) {
            /* 127.0.0.1, .2, ...: one local port range per source address */
            struct sockaddr_in src = { .sin_family = AF_INET,
                                       .sin_addr.s_addr = htonl(INADDR_LOOPBACK + i / UC_CONNS_PER_SRC_ADDR) };
            setsockopt(c, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
            if (bind(c, (struct sockaddr *)&src, sizeof src) != 0)
                die("bind client source address");
        }
        if (connect(c, (struct sockaddr *)&a, sizeof a) != 0)
            die("connect");
        int s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (s < 0)
            die("accept");
        if (o->nodelay) {
            setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        srv[i] = s;
        cli[i] = c;
    }
    close(lfd);
}

/* ------------------------------------------------------------------------------------------------------------
 * options and report
 * ---------------------------------------------------------------------------------------------------------- */
static void usage(FILE *f)
{
    fprintf(f,
        "usage: uring-ceiling [options]\n"
        "  --conns N        connections (default 1; k/M suffixes)                        [stream mode]\n"
        "  --fanout N       fan-out mode: one publisher writes each message to N sockets\n"
        "  --size B         message size in bytes (default 64; k = 1024)\n"
        "  --batch K        messages per send (default 1: one send per message / delivery)\n"
        "  --rate R         msgs/s in total (stream) or publishes/s (fan-out); default: as fast as possible\n"
        "  --window W       fan-out: publishes a socket may lag behind (default %u, even)\n"
        "  --duration S     measured seconds (default %.0f, at most %.0f)\n"
        "  --warmup S       seconds before measuring (default %.1f)\n"
        "  --rbuf-size B    provided receive buffer size (default %u)\n"
        "  --rbufs N        provided receive buffers, power of two (default %u)\n"
        "  --port P         listen port on 127.0.0.1 (default: any free port)\n"
        "  --nagle          leave Nagle on (default: TCP_NODELAY on both ends, like a broker)\n"
        "  --pin            pin the sender to CPU 0 and the receiver to CPU 1\n"
        "  --quiet          print only the JSON line\n",
        UC_DEFAULT_WINDOW, UC_DEFAULT_DURATION_S, UC_MAX_DURATION_S, UC_DEFAULT_WARMUP_S,
        UC_RBUF_SIZE_DEFAULT, UC_RBUF_COUNT_DEFAULT);
}

/* "123", "64k", "2M"; k/M multiply by `unit` and unit^2 (1000 for counts, 1024 for bytes). */
static bool parse_num(const char *s, double unit, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s)
        return false;
    if (*end == 'k' || *end == 'K') {
        v *= unit;
        end++;
    } else if (*end == 'm' || *end == 'M') {
        v *= unit * unit;
        end++;
    }
    if (*end != '\0' || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

static void parse_opts(int argc, char **argv, struct uc_opts *o)
{
    *o = (struct uc_opts){ .conns = 1, .size = 64, .batch = 1, .window = UC_DEFAULT_WINDOW,
                           .rbuf_size = UC_RBUF_SIZE_DEFAULT, .rbuf_count = UC_RBUF_COUNT_DEFAULT,
                           .duration_s = UC_DEFAULT_DURATION_S, .warmup_s = UC_DEFAULT_WARMUP_S,
                           .nodelay = true };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        double d = 0;
        bool ok = true, takes = true;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--nagle")) {
            o->nodelay = false, takes = false;
        } else if (!strcmp(a, "--pin")) {
            o->pin = true, takes = false;
        } else if (!strcmp(a, "--quiet")) {
            o->quiet = true, takes = false;
        } else if (v == NULL) {
            ok = false;
        } else if (!strcmp(a, "--conns")) {
            ok = parse_num(v, 1000, 1, UC_MAX_CONNS, &d), o->conns = (uint32_t)d;
        } else if (!strcmp(a, "--fanout")) {
            ok = parse_num(v, 1000, 1, UC_MAX_CONNS, &d), o->conns = (uint32_t)d, o->fanout = true;
        } else if (!strcmp(a, "--size")) {
            ok = parse_num(v, 1024, 1, UC_MAX_SIZE, &d), o->size = (uint32_t)d;
        } else if (!strcmp(a, "--batch")) {
            ok = parse_num(v, 1000, 1, UC_MAX_BATCH, &d), o->batch = (uint32_t)d;
        } else if (!strcmp(a, "--rate")) {
            ok = parse_num(v, 1000, 0, 1e10, &d), o->rate = d;
        } else if (!strcmp(a, "--window")) {
            ok = parse_num(v, 1000, 2, UC_MAX_WINDOW, &d), o->window = (uint32_t)d & ~1u;
        } else if (!strcmp(a, "--duration")) {
            ok = parse_num(v, 1, 0.1, UC_MAX_DURATION_S, &d), o->duration_s = d;
        } else if (!strcmp(a, "--warmup")) {
            ok = parse_num(v, 1, 0, UC_MAX_WARMUP_S, &d), o->warmup_s = d;
        } else if (!strcmp(a, "--rbuf-size")) {
            ok = parse_num(v, 1024, 512, 1 << 20, &d), o->rbuf_size = (uint32_t)d;
        } else if (!strcmp(a, "--rbufs")) {
            ok = parse_num(v, 1024, 1, UC_RBUF_COUNT_MAX, &d), o->rbuf_count = (uint32_t)d;
            ok = ok && (o->rbuf_count & (o->rbuf_count - 1)) == 0;
        } else if (!strcmp(a, "--port")) {
            ok = parse_num(v, 1, 0, 65535, &d), o->port = (uint16_t)d;
        } else {
            fprintf(stderr, "uring-ceiling: unknown option %s\n", a);
            usage(stderr);
            exit(2);
        }
        if (!ok) {
            fprintf(stderr, "uring-ceiling: %s: bad or missing value, or unknown option (--help)\n", a);
            exit(2);
        }
        if (takes)
            i++;
    }
    if ((uint64_t)o->batch * o->size > UC_MAX_SEND_BYTES) {
        fprintf(stderr, "uring-ceiling: --batch * --size must be at most %u bytes\n", UC_MAX_SEND_BYTES);
        exit(2);
    }
}

static double per_s(uint64_t n, uint64_t us)
{
    return us ? (double)n * 1e6 / (double)us : 0.0;
}

int main(int argc, char **argv)
{
    struct uc_opts o;
    parse_opts(argc, argv, &o);
    signal(SIGPIPE, SIG_IGN);
    alarm((unsigned)ceil(o.duration_s + o.warmup_s) + UC_SETUP_WATCHDOG_S);   /* hard bound on the run */
    raise_nofile((uint64_t)o.conns * 2 + 64);

    int *srv = calloc(o.conns, sizeof *srv), *cli = calloc(o.conns, sizeof *cli);
    struct uc_sender *s = calloc(1, sizeof *s);
    struct uc_receiver *r = calloc(1, sizeof *r);
    struct uc_sconn *sc = calloc(o.conns, sizeof *sc);
    uint32_t *idle = calloc(o.conns, sizeof *idle);
    uint8_t *buf = malloc(((size_t)o.batch + 1) * o.size);
    if (!srv || !cli || !s || !r || !sc || !idle || !buf)
        die("out of memory");
    for (size_t i = 0; i < ((size_t)o.batch + 1) * o.size; i++)
        buf[i] = (uint8_t)('a' + (i % o.size) % 26);

    uint64_t t_setup = au_now_us();
    make_pairs(&o, srv, cli);
    double setup_s = (double)(au_now_us() - t_setup) / 1e6;
    for (uint32_t i = 0; i < o.conns; i++)
        sc[i].fd = srv[i];

    struct uc_clock clk;
    *s = (struct uc_sender){ .o = &o, .clk = &clk, .c = sc, .n = o.conns, .buf = buf, .idle = idle };
    *r = (struct uc_receiver){ .o = &o, .clk = &clk, .fd = cli, .n = o.conns };
    atomic_store(&g_ready, 0);
    clk.t0 = clk.t_begin = clk.t_end = UINT64_MAX;
    pthread_t ts, tr;
    if (pthread_create(&tr, NULL, receiver_main, r) != 0 || pthread_create(&ts, NULL, sender_main, s) != 0)
        die("pthread_create");
    while (atomic_load(&g_ready) < 2)
        sched_yield();
    /* Both rings exist and every recv is armed: start the clock, then release the threads. */
    uint64_t now = au_now_us();
    clk.t0 = now;
    clk.t_begin = now + (uint64_t)(o.warmup_s * 1e6);
    clk.t_end = clk.t_begin + (uint64_t)(o.duration_s * 1e6);
    atomic_fetch_add(&g_ready, 1);
    pthread_join(ts, NULL);
    pthread_join(tr, NULL);

    uint64_t r_us = r->te - r->tb, s_us = s->te - s->tb;
    uint64_t rbytes = r->bytes_e - r->bytes_b;
    double bps = per_s(rbytes, r_us);
    double mps = bps / o.size;
    double sends_ps = per_s(s->sends_e - s->sends_b, s_us);
    double pubs_ps = o.fanout ? per_s(s->pub_e - s->pub_b, s_us) : 0.0;
    double cpu_s = s_us ? (double)(s->cpu_e - s->cpu_b) / (double)s_us : 0.0;
    double cpu_r = r_us ? (double)(r->cpu_e - r->cpu_b) / (double)r_us : 0.0;
    uint64_t errors = s->errors + r->errors;
    struct utsname un;
    uname(&un);
    double load[1] = { -1 };
    (void)getloadavg(load, 1);              /* the machine may be shared: a busy one gives low numbers */

    if (!o.quiet) {
        char rate[32] = "max";
        if (o.rate > 0)
            snprintf(rate, sizeof rate, "%.0f", o.rate);
        printf("%-7s conns=%-7u size=%-6u batch=%-4u rate=%-9s %6.2fs  %12.0f msg/s  %9.1f MiB/s  %6.2f Gbit/s"
               "  %10.0f sends/s",
               o.fanout ? "fanout" : "stream", o.conns, o.size, o.batch, rate,
               (double)r_us / 1e6, mps, bps / (1024.0 * 1024.0), bps * 8 / 1e9, sends_ps);
        if (o.fanout)
            printf("  %10.0f pub/s", pubs_ps);
        printf("  cpu send %.0f%% recv %.0f%%  load %.1f  errors %llu\n", cpu_s * 100, cpu_r * 100, load[0],
               (unsigned long long)errors);
    }
    printf("JSON:{\"tool\":\"uring-ceiling\",\"mode\":\"%s\",\"conns\":%u,\"size\":%u,\"batch\":%u,"
           "\"window\":%u,\"rate\":%.0f,\"nodelay\":%s,\"duration\":%.3f,\"warmup\":%.3f,\"setup_s\":%.3f,"
           "\"bytes\":%llu,\"msgs\":%llu,\"bytes_per_s\":%.0f,\"msgs_per_s\":%.0f,\"gbit_per_s\":%.3f,"
           "\"sends_per_s\":%.0f,\"publishes_per_s\":%.0f,\"deliveries_per_s\":%.0f,"
           "\"recvs_per_s\":%.0f,\"cpu_send\":%.3f,\"cpu_recv\":%.3f,\"loadavg\":%.2f,\"enobufs\":%llu,"
           "\"errors\":%llu,\"kernel\":\"%s\"}\n",
           o.fanout ? "fanout" : "stream", o.conns, o.size, o.batch, o.fanout ? o.window : 0, o.rate,
           o.nodelay ? "true" : "false", (double)r_us / 1e6, o.warmup_s, setup_s,
           (unsigned long long)rbytes, (unsigned long long)(rbytes / o.size), bps, mps, bps * 8 / 1e9,
           sends_ps, pubs_ps, o.fanout ? mps : 0.0, per_s(r->recvs_e - r->recvs_b, r_us), cpu_s, cpu_r,
           load[0], (unsigned long long)r->enobufs, (unsigned long long)errors, un.release);
    if (s->err)
        fprintf(stderr, "uring-ceiling: first send error: %s\n", s->err);
    if (r->err)
        fprintf(stderr, "uring-ceiling: first recv error: %s\n", r->err);
    fflush(stdout);

    /* Teardown: closing the sockets fails whatever is still in flight; then the rings go. */
    for (uint32_t i = 0; i < o.conns; i++) {
        close(srv[i]);
        close(cli[i]);
    }
    io_uring_queue_exit(&s->ring);
    io_uring_queue_exit(&r->ring);
    munmap(r->bufs, (size_t)r->nbufs * o.rbuf_size);
    munmap(r->br, r->br_bytes);
    free(buf);
    free(idle);
    free(sc);
    free(s);
    free(r);
    free(srv);
    free(cli);
    return errors ? 1 : 0;
}
