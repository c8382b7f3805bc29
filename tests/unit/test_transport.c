/* test_transport.c - the transport interface of core/loop.c on a real loop (2 shards, loopback sockets):
 * au_conn_upgrade from a plain-TCP line protocol to an echo protocol over the test XOR transport (the bytes behind
 * the upgrade request in the same read go through the new transport) and between two protocols on that transport,
 * hand-offs between shards in the middle of a stream split at random byte boundaries (the transport's state and
 * the bytes that arrive during the move travel; queued output is flushed first), the close-notify before the
 * close, and the handshake deadline. */
#include "test.h"

#include "core/loop.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ server side: two test protocols */

struct echo {
    uint32_t lines;
};

static const struct au_proto echo_proto, echo2_proto;

static void echo_open(struct au_conn *c)
{
    struct echo *e = calloc(1, sizeof *e);
    AU_ASSERT(e != NULL);
    c->proto_state = e;
    char hi[32];
    int n = snprintf(hi, sizeof hi, "HELLO %d %s\n", c->shard->id, au_conn_transport_name(c));
    au_conn_write(c, hi, (size_t)n);
}

/* The second echo protocol (au_conn_upgrade without a transport change: WebSocket framing -> MQTT). */
static void echo2_open(struct au_conn *c)
{
    struct echo *e = calloc(1, sizeof *e);
    AU_ASSERT(e != NULL);
    c->proto_state = e;
    char hi[32];
    int n = snprintf(hi, sizeof hi, "SWAPPED %d\n", c->shard->id);
    au_conn_write(c, hi, (size_t)n);
}

/* Lines: "MOVE" hands the connection to the other shard (the rest of the input travels), "SWAP" switches to the
 * other echo protocol (the rest goes to it), "BYE" closes, anything else comes back as "<shard>:<line>" (echo) or
 * "<shard>=<line>" (echo2). */
static ssize_t echo_data(struct au_conn *c, const uint8_t *data, size_t len)
{
    bool two = c->proto == &echo2_proto;
    struct echo *e = c->proto_state;
    size_t used = 0;
    for (;;) {
        const uint8_t *nl = memchr(data + used, '\n', len - used);
        if (!nl) return (ssize_t)used;
        size_t ll = (size_t)(nl - (data + used));
        const char *line = (const char *)data + used;
        used += ll + 1;
        if (ll == 4 && memcmp(line, "MOVE", 4) == 0) {
            if (au_conn_handoff(c, 1 - c->shard->id, e) != 0) return -1;
            return (ssize_t)used;
        }
        if (ll == 3 && memcmp(line, "BYE", 3) == 0) return -1;
        if (ll == 4 && memcmp(line, "SWAP", 4) == 0) {
            free(e);
            c->proto_state = NULL;
            if (au_conn_upgrade(c, two ? &echo_proto : &echo2_proto, NULL, NULL) != 0) return -1;
            return (ssize_t)used;
        }
        char out[256];
        if (ll > 200) return -1;
        int n = snprintf(out, sizeof out, "%d%c%.*s\n", c->shard->id, two ? '=' : ':', (int)ll, line);
        au_conn_write(c, out, (size_t)n);
        e->lines++;
    }
}

static void echo_handoff(struct au_conn *c, void *arg)
{
    c->proto_state = arg;
    char out[32];
    int n = snprintf(out, sizeof out, "MOVED %d\n", c->shard->id);
    au_conn_write(c, out, (size_t)n);
}

static void echo_close(struct au_conn *c)
{
    free(c->proto_state);
    c->proto_state = NULL;
}

static const struct au_proto echo_proto = {
    .name = "echo", .on_open = echo_open, .on_data = echo_data, .on_close = echo_close, .on_handoff = echo_handoff,
};
static const struct au_proto echo2_proto = {
    .name = "echo2", .on_open = echo2_open, .on_data = echo_data, .on_close = echo_close, .on_handoff = echo_handoff,
};

/* Plain-TCP line protocol: "UP" switches the connection to the echo protocol over the XOR transport. */
static ssize_t line_data(struct au_conn *c, const uint8_t *data, size_t len)
{
    const uint8_t *nl = memchr(data, '\n', len);
    if (!nl) return 0;
    if (nl - data != 2 || memcmp(data, "UP", 2) != 0) return -1;
    au_conn_write(c, "OK\n", 3);
    if (au_conn_upgrade(c, &echo_proto, &au_transport_xor_test, NULL) != 0) return -1;
    return 3;
}

static const struct au_proto line_proto = { .name = "line", .on_data = line_data };

/* ------------------------------------------------------------------ client side: the XOR transport */

static uint8_t xkey(uint8_t seed, uint64_t n) { return (uint8_t)(seed + n * 131u + (n >> 8)); }

struct xcli {
    int fd;
    uint8_t seed_out, seed_in;
    bool have_seed;
    uint64_t n_out, n_in;
    uint8_t raw[1 << 16];
    size_t raw_len;
    char plain[1 << 16];
    size_t plain_len;
    bool close_notify, eof;
    size_t skip;      /* plain bytes expected before the server's hello (the line protocol's "OK\n") */
};

static uint32_t rnd_state = 12345;
static uint32_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 17;
    rnd_state ^= rnd_state << 5;
    return rnd_state;
}

static int dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(0x7f000001) };
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Append XOR frames of random lengths carrying data to out. */
static size_t xencode(struct xcli *x, uint8_t *out, const char *data, size_t len)
{
    size_t o = 0;
    while (len) {
        size_t n = 1 + rnd() % 9;
        if (n > len) n = len;
        out[o++] = (uint8_t)(n >> 8);
        out[o++] = (uint8_t)n;
        for (size_t i = 0; i < n; i++) out[o++] = (uint8_t)data[i] ^ xkey(x->seed_out, x->n_out + i);
        x->n_out += n;
        data += n;
        len -= n;
    }
    return o;
}

/* Send in chunks split at random boundaries, with short pauses now and then. */
static void send_split(int fd, const uint8_t *p, size_t len)
{
    while (len) {
        size_t n = 1 + rnd() % 16;
        if (n > len) n = len;
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        p += w;
        len -= (size_t)w;
        if (rnd() % 4 == 0) usleep(rnd() % 3 * 300);
    }
}

/* Read until `want` plain bytes are there, the server closed, or 5 s passed. */
static void xread(struct xcli *x, size_t want)
{
    uint64_t deadline = au_now_ms() + 5000;
    while (x->plain_len < want && !x->eof && au_now_ms() < deadline) {
        struct pollfd pf = { .fd = x->fd, .events = POLLIN };
        if (poll(&pf, 1, 100) <= 0) continue;
        ssize_t r = recv(x->fd, x->raw + x->raw_len, sizeof x->raw - x->raw_len, 0);
        if (r <= 0) {
            x->eof = true;
            break;
        }
        x->raw_len += (size_t)r;
        size_t off = 0;
        while (x->skip && off < x->raw_len) { /* plain bytes before the upgrade */
            x->plain[x->plain_len++] = (char)x->raw[off++];
            x->skip--;
        }
        if (!x->skip && !x->have_seed && x->raw_len - off >= 5) {
            CHECK(memcmp(x->raw + off, "AXT1", 4) == 0);
            x->seed_in = x->raw[off + 4];
            x->have_seed = true;
            off += 5;
        }
        while (x->have_seed && x->raw_len - off >= 2) {
            size_t n = ((size_t)x->raw[off] << 8) | x->raw[off + 1];
            if (x->raw_len - off < 2 + n) break;
            if (n == 0) x->close_notify = true;
            for (size_t i = 0; i < n && x->plain_len < sizeof x->plain; i++)
                x->plain[x->plain_len++] = (char)(x->raw[off + 2 + i] ^ xkey(x->seed_in, x->n_in + i));
            x->n_in += n;
            off += 2 + n;
        }
        memmove(x->raw, x->raw + off, x->raw_len - off);
        x->raw_len -= off;
    }
}

/* ------------------------------------------------------------------ loop */

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
    socklen_t al = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    return ntohs(a.sin_port);
}

static struct au_shard **g_shards;
static uint16_t g_port_line, g_port_xor;
static struct au_listener_spec g_ls[2];

static int start_loop(void)
{
    g_port_line = free_port();
    g_port_xor = free_port();
    const uint16_t ports[2] = { g_port_line, g_port_xor };
    for (int i = 0; i < 2; i++) {
        struct sockaddr_in *a = (struct sockaddr_in *)&g_ls[i].addr;
        a->sin_family = AF_INET;
        a->sin_port = htons(ports[i]);
        a->sin_addr.s_addr = htonl(0x7f000001);
        g_ls[i].addrlen = sizeof *a;
    }
    g_ls[0].proto = &line_proto;
    g_ls[0].tp = &au_transport_tcp;
    g_ls[0].name = "line";
    g_ls[1].proto = &echo_proto;
    g_ls[1].tp = &au_transport_xor_test;
    g_ls[1].name = "xor";
    static struct au_loop_opts o;
    o = (struct au_loop_opts){ .nshards = 2, .listeners = g_ls, .nlisteners = 2, .drain_ms = 500,
                               .handshake_ms = 300 };
    return au_loop_start(&o, &g_shards);
}

/* A session: 2 * `moves` protocol switches or hand-offs (chosen at random), lines in between, all sent at once
 * (frames of 1..9 bytes, chunks of 1..16 bytes); the answers must come back in order, from the right shard and
 * protocol, then the close-notify and the close. */
static void session(bool upgrade, int moves)
{
    struct xcli *x = calloc(1, sizeof *x);
    x->fd = dial(upgrade ? g_port_line : g_port_xor);
    CHECK(x->fd >= 0);
    if (x->fd < 0) {
        free(x);
        return;
    }
    x->seed_out = (uint8_t)rnd();
    static uint8_t wire[1 << 16];
    size_t w = 0;
    if (upgrade) {
        memcpy(wire, "UP\n", 3); /* the upgrade request, and the new transport's bytes behind it in one send */
        w = 3;
        x->skip = 3;
    }
    memcpy(wire + w, "AXT1", 4);
    wire[w + 4] = x->seed_out;
    w += 5;
    char text[8192];
    size_t tl = 0;
    int nseg = moves * 2 + 1;
    bool swap[16]; /* after segment m: SWAP (true) or MOVE */
    for (int m = 0; m < nseg; m++) {
        int k = 1 + (int)(rnd() % 6);
        for (int i = 0; i < k; i++) tl += (size_t)snprintf(text + tl, sizeof text - tl, "l%d-%d\n", m, i);
        swap[m] = rnd() % 2;
        if (m < nseg - 1) tl += (size_t)snprintf(text + tl, sizeof text - tl, swap[m] ? "SWAP\n" : "MOVE\n");
    }
    tl += (size_t)snprintf(text + tl, sizeof text - tl, "BYE\n");
    w += xencode(x, wire + w, text, tl);
    send_split(x->fd, wire, w);

    xread(x, sizeof x->plain);
    CHECK(x->eof);
    CHECK(x->close_notify);
    x->plain[x->plain_len < sizeof x->plain ? x->plain_len : sizeof x->plain - 1] = 0;
    /* expected: [OK] HELLO s xor-test, then per segment its lines from shard s, MOVED t, ... */
    char *p = x->plain;
    if (upgrade) {
        CHECK(strncmp(p, "OK\n", 3) == 0);
        p += 3;
    }
    int shard = -1;
    char name[32];
    CHECK(sscanf(p, "HELLO %d %31s\n", &shard, name) == 2);
    CHECK(strcmp(name, "xor-test") == 0);
    p = strchr(p, '\n');
    if (!p) {
        CHECK(p != NULL);
        goto out;
    }
    p++;
    char sep = ':';
    for (int m = 0; m < nseg; m++) {
        for (int i = 0;; i++) {
            char want[64];
            snprintf(want, sizeof want, "%d%cl%d-%d\n", shard, sep, m, i);
            if (strncmp(p, want, strlen(want)) != 0) break;
            p += strlen(want);
        }
        if (m == nseg - 1) break;
        int to = -1;
        /* a switch opens the other protocol: echo2 says SWAPPED, echo says HELLO again */
        const char *what = !swap[m] ? "MOVED" : sep == ':' ? "SWAPPED" : "HELLO";
        size_t wl = strlen(what);
        if (strncmp(p, what, wl) != 0 || p[wl] != ' ' || sscanf(p + wl + 1, "%d", &to) != 1 ||
            to != (swap[m] ? shard : 1 - shard)) {
            printf("  segment %d: expected %s at: %.60s\n", m, what, p);
            CHECK(0);
            goto out;
        }
        if (swap[m]) sep = sep == ':' ? '=' : ':';
        shard = to;
        p = strchr(p, '\n') + 1;
    }
    if (*p) printf("  unexpected rest: %.80s\n", p);
    CHECK(*p == 0);
out:
    close(x->fd);
    free(x);
}

TEST(upgrade_then_handoffs)
{
    for (int i = 0; i < 20; i++) session(true, 1 + i % 4);
}

TEST(handshake_at_accept_then_handoffs)
{
    for (int i = 0; i < 20; i++) session(false, i % 4);
}

/* Half a handshake and silence: closed at the handshake deadline (300 ms here), not before. */
TEST(handshake_deadline)
{
    int fd = dial(g_port_xor);
    CHECK(fd >= 0);
    uint64_t t0 = au_now_ms();
    CHECK(send(fd, "AX", 2, MSG_NOSIGNAL) == 2);
    struct pollfd pf = { .fd = fd, .events = POLLIN };
    char b[16];
    ssize_t r = -1;
    if (poll(&pf, 1, 3000) == 1) r = recv(fd, b, sizeof b, 0);
    uint64_t dt = au_now_ms() - t0;
    CHECK_EQ(r, 0);
    CHECK(dt >= 250 && dt < 2500);
    close(fd);
}

/* A wrong handshake is refused at once (no protocol output: the protocol was never opened). */
TEST(bad_handshake_closes)
{
    int fd = dial(g_port_xor);
    CHECK(send(fd, "HTTP/", 5, MSG_NOSIGNAL) == 5);
    struct pollfd pf = { .fd = fd, .events = POLLIN };
    char b[16];
    ssize_t r = -1;
    if (poll(&pf, 1, 2000) == 1) r = recv(fd, b, sizeof b, 0);
    CHECK_EQ(r, 0);
    close(fd);
}

int main(void)
{
    au_log_set_level(AU_LOG_WARN);
    const char *seed = getenv("TEST_SEED");
    rnd_state = seed ? (uint32_t)strtoul(seed, NULL, 10) : (uint32_t)time(NULL);
    if (!rnd_state) rnd_state = 1;
    printf("seed %u (TEST_SEED to repeat)\n", rnd_state);
    if (start_loop() != 0) {
        printf("loop did not start\n");
        return 1;
    }
    RUN(upgrade_then_handoffs);
    RUN(handshake_at_accept_then_handoffs);
    RUN(handshake_deadline);
    RUN(bad_handshake_closes);
    au_loop_stop(g_shards, 2);
    TEST_MAIN_END();
}
