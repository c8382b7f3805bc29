/* rest-ceiling.c - the least an HTTP/1.1 keep-alive server can do per request on this host: answer every
 * "\r\n\r\n" with a fixed 86-byte response (Aurora's /healthz answer, byte for byte). No parsing, no
 * routing, no allocation: the "raw ceiling" of the REST rows (wrk and loopback TCP on the same cores).
 *   uring (default): one io_uring per thread (SINGLE_ISSUER | DEFER_TASKRUN), multishot accept into direct
 *          descriptors, multishot recv into a provided-buffer ring, one send (IORING_OP_SEND, completion
 *          skipped on success) per received batch: Aurora's loop minus everything else
 *   epoll: epoll_wait + read + write per ready socket
 * It takes Aurora's command line so that `perf/compare --scenario rest --baseline build/rest-ceiling` runs it
 * in alternation with Aurora: --http and --mqtt ADDR:PORT (both answered; only 127.0.0.1), --shards N
 * (threads), anything else ignored; REST_CEILING_MODE=epoll selects the epoll variant.
 * Built by `make` as build/rest-ceiling. */
#include <errno.h>
#include <sys/mman.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char RESP[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n"
                           "{\"status\":\"ok\"}";
#define RL (sizeof(RESP) - 1)
#define MAXC 65536
#define BUFSZ 4096
#define NBUF 1024

static int g_ports[2], g_nports;
static int g_uring;

static int listener(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(0x7f000001) };
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 1024)) {
        perror("listen");
        exit(1);
    }
    return fd;
}

/* requests completed in data, with a carried state of how many bytes of "\r\n\r\n" matched */
static unsigned count_req(const char *p, size_t n, unsigned *st)
{
    static const char pat[] = "\r\n\r\n";
    unsigned k = 0, s = *st;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == pat[s]) {
            if (++s == 4) {
                k++;
                s = 0;
            }
        } else {
            s = p[i] == '\r' ? 1 : 0;
        }
    }
    *st = s;
    return k;
}

struct conn {
    unsigned st;
    char out[64 * RL];
};

static void *epoll_thread(void *arg)
{
    (void)arg;
    int lfds[2], ep = epoll_create1(0);
    struct epoll_event ev, evs[256];
    for (int i = 0; i < g_nports; i++) {
        lfds[i] = listener(g_ports[i]);
        ev.events = EPOLLIN;
        ev.data.fd = lfds[i];
        epoll_ctl(ep, EPOLL_CTL_ADD, lfds[i], &ev);
    }
    static __thread unsigned st[MAXC];
    char buf[BUFSZ], out[64 * RL];
    for (unsigned i = 0; i < 64; i++) memcpy(out + i * RL, RESP, RL);
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfds[0] || (g_nports > 1 && fd == lfds[1])) {
                int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK);
                if (c >= 0 && c < MAXC) {
                    st[c] = 0;
                    ev.events = EPOLLIN;
                    ev.data.fd = c;
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
                }
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) continue;
                close(fd);
                continue;
            }
            unsigned k = count_req(buf, (size_t)r, &st[fd]);
            while (k) {
                unsigned m = k > 64 ? 64 : k;
                if (write(fd, out, m * RL) < 0) break;
                k -= m;
            }
        }
    }
    return NULL;
}

static void *uring_thread(void *arg)
{
    (void)arg;
    struct io_uring ring;
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
    p.cq_entries = 65536;
    if (io_uring_queue_init_params(4096, &ring, &p)) {
        perror("ring");
        exit(1);
    }
    io_uring_register_files_sparse(&ring, 4096);
    struct io_uring_buf_ring *br = mmap(NULL, NBUF * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
                                        MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)br;
    reg.ring_entries = NBUF;
    reg.bgid = 1;
    if (io_uring_register_buf_ring(&ring, &reg, 0)) {
        perror("buf ring");
        exit(1);
    }
    io_uring_buf_ring_init(br);
    char *bufs = malloc((size_t)NBUF * BUFSZ);
    for (unsigned i = 0; i < NBUF; i++)
        io_uring_buf_ring_add(br, bufs + (size_t)i * BUFSZ, BUFSZ, (unsigned short)i, io_uring_buf_ring_mask(NBUF), (int)i);
    io_uring_buf_ring_advance(br, NBUF);
    static __thread struct conn *conns[4096];
    char *multi = malloc(64 * RL);
    for (unsigned i = 0; i < 64; i++) memcpy(multi + i * RL, RESP, RL);
    struct io_uring_sqe *sqe;
    for (int i = 0; i < g_nports; i++) {
        sqe = io_uring_get_sqe(&ring);
        io_uring_prep_multishot_accept_direct(sqe, listener(g_ports[i]), NULL, NULL, 0);
        io_uring_sqe_set_data64(sqe, 1ull << 32);
    }
    for (;;) {
        struct io_uring_cqe *cqe;
        io_uring_submit_and_wait(&ring, 1);
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            seen++;
            uint64_t ud = cqe->user_data;
            unsigned kind = (unsigned)(ud >> 32), slot = (unsigned)ud;
            if (kind == 1) { /* accept */
                if (cqe->res >= 0) {
                    unsigned s = (unsigned)cqe->res;
                    if (!conns[s]) conns[s] = calloc(1, sizeof(struct conn));
                    conns[s]->st = 0;
                    sqe = io_uring_get_sqe(&ring);
                    io_uring_prep_recv_multishot(sqe, (int)s, NULL, 0, 0);
                    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
                    sqe->buf_group = 1;
                    io_uring_sqe_set_data64(sqe, (2ull << 32) | s);
                }
            } else if (kind == 2) { /* recv */
                struct conn *c = conns[slot];
                if (cqe->flags & IORING_CQE_F_BUFFER) {
                    unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
                    if (cqe->res > 0) {
                        unsigned k = count_req(bufs + (size_t)bid * BUFSZ, (size_t)cqe->res, &c->st);
                        if (k) {
                            if (k > 64) k = 64; /* wrk without pipelining never gets here */
                            sqe = io_uring_get_sqe(&ring);
                            io_uring_prep_send(sqe, (int)slot, multi, k * RL, MSG_NOSIGNAL);
                            sqe->flags |= IOSQE_FIXED_FILE | IOSQE_CQE_SKIP_SUCCESS;
                            io_uring_sqe_set_data64(sqe, 3ull << 32);
                        }
                    }
                    io_uring_buf_ring_add(br, bufs + (size_t)bid * BUFSZ, BUFSZ, (unsigned short)bid,
                                          io_uring_buf_ring_mask(NBUF), 0);
                    io_uring_buf_ring_advance(br, 1);
                }
                if (!(cqe->flags & IORING_CQE_F_MORE)) {
                    if (cqe->res > 0 || cqe->res == -ENOBUFS) {
                        sqe = io_uring_get_sqe(&ring);
                        io_uring_prep_recv_multishot(sqe, (int)slot, NULL, 0, 0);
                        sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
                        sqe->buf_group = 1;
                        io_uring_sqe_set_data64(sqe, (2ull << 32) | slot);
                    } else {
                        sqe = io_uring_get_sqe(&ring);
                        io_uring_prep_close_direct(sqe, slot);
                        io_uring_sqe_set_data64(sqe, 4ull << 32);
                    }
                }
            }
        }
        io_uring_cq_advance(&ring, seen);
    }
    return NULL;
}

static int port_of(const char *a)
{
    const char *c = strrchr(a, ':');
    if (!c || strncmp(a, "127.0.0.1:", 10) != 0) {
        fprintf(stderr, "rest-ceiling: only 127.0.0.1:PORT (%s)\n", a);
        exit(2);
    }
    return atoi(c + 1);
}

int main(int argc, char **argv)
{
    int n = 1;
    for (int i = 1; i + 1 < argc; i++) {
        if ((strcmp(argv[i], "--http") == 0 || strcmp(argv[i], "--mqtt") == 0) && g_nports < 2)
            g_ports[g_nports++] = port_of(argv[++i]);
        else if (strcmp(argv[i], "--shards") == 0)
            n = atoi(argv[++i]);
    }
    if (g_nports == 0 || n < 1 || n > 64) {
        fprintf(stderr, "usage: rest-ceiling --http 127.0.0.1:PORT [--mqtt 127.0.0.1:PORT] [--shards N]\n");
        return 2;
    }
    const char *mode = getenv("REST_CEILING_MODE");
    g_uring = !mode || strcmp(mode, "epoll") != 0;
    pthread_t t[64];
    for (int i = 0; i < n; i++) pthread_create(&t[i], NULL, g_uring ? uring_thread : epoll_thread, NULL);
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    return 0;
}
