/* loop.h - the thread-per-core io_uring event loop: shards, connections, cross-shard messages.
 *
 * Each shard is one thread owning one io_uring (SINGLE_ISSUER | DEFER_TASKRUN), a sparse table of
 * direct descriptors, a provided-buffer ring for multishot receive, its connections and its memory.
 * Protocol code (MQTT, HTTP) sees a connection only through au_proto callbacks and the au_conn_*
 * output calls; a transport (plain TCP now, TLS / WebSocket next) sits between the socket and the
 * protocol and may transform bytes in both directions. Shards talk through one single-producer queue
 * per ordered pair, with a msg_ring doorbell when the consumer may be asleep. */
#ifndef AU_LOOP_H
#define AU_LOOP_H

#include "core/common.h"
#include "core/buf.h"
#include "core/xq.h"
#include "core/limits.h"
#include "core/timer.h"

#include <liburing.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <pthread.h>

struct au_shard;
struct au_conn;

/* Protocol callbacks. on_data returns the bytes it consumed (the loop keeps the rest and presents
 * it again, prefixed, with the next bytes) or -1 to close the connection (after flushing output). */
struct au_proto {
    const char *name;
    void (*on_open)(struct au_conn *c);
    ssize_t (*on_data)(struct au_conn *c, const uint8_t *data, size_t len);
    void (*on_drain)(struct au_conn *c);            /* send queue became empty (optional) */
    void (*on_close)(struct au_conn *c);            /* connection is going away; no more output */
    /* A connection handed over from another shard (au_conn_handoff) has arrived here; `arg` is
     * what the sender passed; the carried input bytes are presented through on_data next. */
    void (*on_handoff)(struct au_conn *c, void *arg);
    /* Optional, on the source shard: the target could not take a connection given to au_conn_handoff (its
     * descriptor table is full). proto_state is `arg` again and the kept input is back in the connection; the
     * protocol may queue a refusal (MQTT: CONNACK "server unavailable"); the loop then closes the connection
     * after flushing. NULL = close at once. */
    void (*on_handoff_failed)(struct au_conn *c, int err);
};

/* Transport between socket and protocol, in the spirit of redis' ConnectionType and nginx's post-handshake
 * recv/send swap. Plain TCP (au_transport_tcp) has every hook NULL: received bytes go straight to the protocol
 * and output straight to the send queue (no copy, no call). A transforming transport (TLS, WebSocket framing, the
 * test-only XOR transport) sees every raw byte through decode and every protocol byte through encode.
 *
 * Life of a connection on a transport:
 *   open      on accept (or au_conn_upgrade): allocate c->tp_state; return AU_TP_READY or AU_TP_HANDSHAKE.
 *   handshake while AU_CONN_HANDSHAKE is set, raw input goes to decode only; the protocol is not opened. The
 *             transport answers with au_conn_raw_write and calls au_conn_handshake_done() when done: the
 *             protocol's on_open runs then, and decoded bytes delivered during the handshake (early data) follow.
 *             A handshake not done within the loop's handshake deadline (AU_HANDSHAKE_TIMEOUT_MS) is aborted.
 *   data      decode gets raw bytes (data NULL, len 0: "deliver what you hold") and calls au_conn_deliver()
 *             with decoded bytes; encode gets protocol output and queues it with au_conn_raw_write*().
 *   pending   decoded bytes the transport holds without having delivered them (a TLS library's buffered records;
 *             a transport that stops delivering once the protocol handed the connection off). The loop calls
 *             decode(c, NULL, 0) when pending() says so and the protocol can take input: after the handshake,
 *             after a hand-off arrived, on au_conn_kick / au_conn_resume.
 *   shutdown  au_conn_close (not abort, not a vanished peer): queue the close-notify (TLS close_notify, WebSocket
 *             close frame) with au_conn_raw_write; it is flushed with the rest before the socket closes.
 *   free      release c->tp_state (called only when it is non-NULL).
 * A hand-off carries the transport and its state to the target shard with the decoded bytes the protocol did not
 * consume (c->in) and, apart from them, the raw bytes that arrived after the protocol asked for the move; the
 * target presents the decoded bytes, then what the transport holds, then decodes the raw bytes: it continues
 * exactly where the source stopped. Protocols ask au_conn_secure() / au_conn_transport_name(), never compare the
 * transport pointer. */
enum au_tp_open { AU_TP_READY = 0, AU_TP_HANDSHAKE = 1 };
struct au_transport {
    const char *name;               /* "tcp", "tls", "ws", "xor-test": logs, metrics */
    bool secure;                    /* protects the bytes on the wire: the protocol says "https" / "mqtts" */
    int (*open)(struct au_conn *c); /* AU_TP_READY, AU_TP_HANDSHAKE or -1 (close); NULL = ready, no state */
    /* Raw received bytes; decoded ones go to au_conn_deliver(). Returns -1 to close (after flushing output). */
    int (*decode)(struct au_conn *c, const uint8_t *data, size_t len);
    /* Protocol output; queues encoded bytes with au_conn_raw_write*(). */
    void (*encode)(struct au_conn *c, const uint8_t *data, size_t len);
    bool (*pending)(const struct au_conn *c);
    void (*shutdown)(struct au_conn *c);
    void (*free)(struct au_conn *c);
};
extern const struct au_transport au_transport_tcp;
/* Test only (core/transport_xor.c): 2-byte length frames whose payload is XORed with a position-dependent key,
 * after a 5-byte handshake each way; a zero-length frame is its close-notify. It holds decoded frames while its
 * connection is being handed off (pending). Selected only by the environment variable AURORA_TEST_TRANSPORT
 * (see au_loop_start); tests/integration/test_transport.py and tests/unit/test_transport.c speak it. */
extern const struct au_transport au_transport_xor_test;

struct au_outseg {
    struct au_outseg *next;
    struct au_buf *buf;
    uint32_t off, len;
};

enum au_conn_flags {
    AU_CONN_RECV_ARMED = 1u << 0,
    AU_CONN_SEND_BUSY  = 1u << 1,
    AU_CONN_CLOSING    = 1u << 2,   /* no more input; close once output is flushed */
    AU_CONN_CLOSED     = 1u << 3,   /* close submitted */
    AU_CONN_DIRTY      = 1u << 4,   /* on the shard's flush list */
    AU_CONN_HANDOFF    = 1u << 5,   /* being handed to another shard */
    AU_CONN_IN_DATA    = 1u << 6,   /* inside on_data (re-entrancy guard) */
    AU_CONN_PAUSED     = 1u << 7,   /* receive paused (back-pressure) */
    AU_CONN_ON_CLOSING = 1u << 8,   /* on the shard's closing list */
    AU_CONN_IN_FULL    = 1u << 9,   /* receive stopped: more than in_max bytes of unconsumed input */
    AU_CONN_HANDSHAKE  = 1u << 10,  /* transport handshake running: input to the transport only, protocol not open */
    AU_CONN_ON_HS      = 1u << 11,  /* on the shard's handshaking list (deadline) */
    AU_CONN_IN_DECODE  = 1u << 12,  /* inside the transport's decode (a hand-off starts when it returns) */
    AU_CONN_UPGRADED   = 1u << 13,  /* au_conn_upgrade inside on_data: kept input goes to the new protocol */
    AU_CONN_UPGRADE_TP = 1u << 14,  /* ... through the new transport's decode (it changed) */
};

struct au_conn {
    struct au_shard *shard;
    const struct au_proto *proto;
    const struct au_transport *tp;
    void *proto_state;            /* owned by the protocol */
    void *tp_state;               /* owned by the transport */
    struct au_conn *dirty_next;
    struct au_conn *all_next, *all_prev; /* every connection of the shard */
    struct au_conn *close_next;   /* on the shard's flushing-before-close list */
    struct au_conn *hs_next;      /* on the shard's handshaking list */
    uint64_t close_deadline;      /* ms: abort if output is not flushed by then (handshaking: if the handshake is
                                   * not done by then) */
    struct au_outseg *out_head, *out_tail;
    uint8_t *in;                  /* unconsumed decoded input (partial frame); raw bytes never land here unless
                                   * the transport passes them through */
    uint32_t in_len, in_cap;
    uint32_t in_max;              /* unconsumed input above which receiving stops (0 = AU_CONN_IN_MAX) */
    uint32_t out_bytes;           /* queued, not yet sent */
    uint32_t slot;                /* direct-descriptor index */
    uint32_t flags;
    uint16_t ops;                 /* io_uring operations in flight referencing this conn */
    uint8_t listener;             /* index of the listener it came from */
    uint8_t _pad;
    uint32_t peer_ip4;            /* peer IPv4 (network order; v4-mapped too), or a non-zero digest of an IPv6
                                   * peer's /64; 0 until known (asked at accept, before the first recv) */
    uint64_t id;                  /* process-unique connection id */
};

/* Cross-shard message: the producer allocates, the consumer's handler runs on the consumer shard and
 * owns the message afterwards (frees or forwards it). */
struct au_xmsg {
    struct au_xmsg *next;         /* producer-side overflow list */
    void (*handler)(struct au_shard *self, struct au_xmsg *m);
    /* Releases a message that was never handled because its target shard stopped first (process
     * shutdown); NULL = nothing to release beyond what the producer frees itself. Set it on messages
     * that hold references (messages, buffers) so a graceful stop frees everything. */
    void (*dispose)(struct au_xmsg *m);
};

struct au_listener_spec {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    const struct au_proto *proto;
    const struct au_transport *tp;
    const char *name;
};

/* Per-shard counters, written by the owner thread only, readable from any thread (relaxed). */
struct au_shard_stats {
    uint64_t accepted, closed, handoffs_out, handoffs_in, accept_paused;
    uint64_t bytes_in, bytes_out, recv_cqes, sends, send_partial;
    uint64_t xmsgs_in, xmsgs_out, doorbells, xq_overflow, nobufs;
    uint64_t in_full;             /* times a connection's receive stopped at its unconsumed-input limit */
    uint64_t conns;               /* current */
};
#define AU_STAT_ADD(s, field, n) __atomic_store_n(&(s)->stats.field, (s)->stats.field + (n), __ATOMIC_RELAXED)
#define AU_STAT_INC(s, field) AU_STAT_ADD(s, field, 1)
#define AU_STAT_READ(s, field) __atomic_load_n(&(s)->stats.field, __ATOMIC_RELAXED)

struct au_loop_hooks {
    /* Called on the shard's thread before it accepts anything / after it stopped. */
    void (*shard_init)(struct au_shard *s);
    void (*shard_fini)(struct au_shard *s);
    /* Called on every loop iteration before waiting (deferred work), after the shard's timers fired. Returns ms
     * the loop may sleep at most (-1 = no limit); the next timer deadline bounds it too. */
    int (*shard_tick)(struct au_shard *s, uint64_t now_ms);
    /* Graceful stop requested: stop producing work; the loop exits once connections are closed or
     * the drain deadline passes. */
    void (*shard_stop)(struct au_shard *s);
};

/* Per-shard service state: one typed slot per service instead of an untyped pointer. Each is set and cleared on
 * the shard's thread by that service's step of the per-shard lifecycle (gateway/gateway.c). */
struct gw_services;
struct broker;
struct im_dir_shard;
struct im_shard;
struct au_shard_slots {
    const struct gw_services *services; /* process-wide services (gateway/services.h); set before shard_init */
    struct broker *broker;              /* MQTT broker state (gateway/mqtt/broker.h) */
    struct im_dir_shard *im_dir;        /* IM directory replica (gateway/im/dir.c) */
    struct im_shard *im;                /* IM message service state (gateway/im/im.c) */
};

/* Tick of every shard's timer wheel (keep-alives, session expiry, HTTP deadlines, IM sweeps). */
#define AU_SHARD_TIMER_TICK_MS 16

struct au_shard {
    int id;
    int nshards;
    struct io_uring ring;
    int ring_fd;
    struct au_shard **all;        /* all shards, for cross-shard posting */
    struct au_xq *inq;            /* inq[from]: queue from shard `from` (or external producer nshards + id) */
    int ninq;                     /* nshards + external producers */
    struct au_xmsg **ovf_head;    /* per target shard: messages waiting for queue room */
    struct au_xmsg **ovf_tail;
    uint32_t novf;                /* targets with a non-empty overflow list */
    atomic_int doorbell_armed;    /* 1 when a doorbell is already on its way (consumer resets) */
    atomic_int sleeping;          /* 1 while the shard waits in the kernel */
    atomic_int stop;              /* graceful stop requested */
    uint32_t max_conns;           /* accept pauses at this many connections */
    uint32_t nconns;
    uint32_t nlisteners;
    int listen_fd[8];
    const struct au_listener_spec *lspec;
    uint8_t accept_armed[8];
    struct io_uring_buf_ring *br;
    uint8_t *bufs;
    struct au_conn *dirty;        /* connections with output to flush this iteration */
    struct au_conn *closing;      /* connections flushing before close */
    struct au_conn *handshaking;  /* connections in a transport handshake (deadline checked every 100 ms) */
    uint64_t hs_scan_ms;          /* next check of the handshaking list */
    uint32_t handshake_ms;        /* handshake deadline (au_loop_opts.handshake_ms) */
    struct au_conn *conns;        /* every open connection */
    struct au_outseg *seg_free;   /* freelist of out segments */
    void *sendctx_free;           /* freelist of sendmsg contexts */
    uint32_t nseg_free;
    bool accepting;               /* listeners armed (not paused, not stopping) */
    bool stopping;
    bool in_group;                /* our listening sockets are in the port's SO_REUSEPORT group */
    bool refusing;                /* full, but the last shard in the group: accepts to refuse (see below) */
    atomic_int *in_group_count;   /* shards with in_group set (shared by all shards) */
    uint64_t capacity_log_ms[4];  /* last capacity transition of each kind logged (rate limit) */
    uint64_t stop_deadline;
    uint64_t next_conn_id;
    uint64_t now_ms;              /* updated every iteration */
    struct au_shard_slots slot;   /* per-shard service state */
    const struct au_loop_hooks *hooks;
    struct au_shard_stats stats;
    pthread_t thread;
    /* The shard's timers: initialised before shard_init, advanced by the loop before shard_tick every iteration
     * (its next deadline bounds the sleep); shard thread only. */
    struct au_timer_wheel timers;
};

struct au_loop_opts {
    int nshards;
    uint32_t max_conns_per_shard;  /* 0 = derived from the fixed-file table size */
    const struct au_listener_spec *listeners;
    uint32_t nlisteners;
    const struct au_loop_hooks *hooks;
    uint32_t drain_ms;             /* graceful-stop drain deadline */
    int n_ext;                     /* external producer ids handed out (au_loop_ext_alloc), at most AU_MAX_EXT */
    const struct gw_services *services; /* copied to every shard's slot.services */
    uint32_t handshake_ms;         /* transport handshake deadline; 0 = AU_HANDSHAKE_TIMEOUT_MS */
};

/* ---- external producers ----
 * A thread that is not a shard (a store thread, say) posts completions to shards through its own
 * single-producer queue per shard, with a msg_ring doorbell from a small private ring. Producer ids
 * are 0 .. n_ext-1 (au_loop_opts.n_ext); one thread per id. Never blocks: a full queue spills to an
 * overflow list that au_ext_flush retries. */
#define AU_MAX_EXT 8
struct au_ext;
struct au_ext *au_ext_new(struct au_shard **shards, int nshards, int id);
void au_ext_post(struct au_ext *e, int to, struct au_xmsg *m);
/* Retry spilled messages and submit doorbells; returns the number still waiting. Call after posting. */
unsigned au_ext_flush(struct au_ext *e);
void au_ext_free(struct au_ext *e);
/* Before au_loop_start: hands out n consecutive external-producer ids from o (o->n_ext grows by n); returns the
 * first, or -1 (nothing handed out) when more than AU_MAX_EXT ids would be in use. */
int au_loop_ext_alloc(struct au_loop_opts *o, int n);

/* Create shards, bind listeners (SO_REUSEPORT, one socket per shard), start threads. Returns 0 or -errno
 * (with a log line saying why). */
int au_loop_start(const struct au_loop_opts *o, struct au_shard ***shards_out);
/* Ask every shard to stop gracefully and join them. */
void au_loop_stop(struct au_shard **shards, int nshards);
/* Number of fixed-file slots a ring can have here (bounded by RLIMIT_NOFILE and AU_FIXED_FILES_MAX). */
uint32_t au_loop_fixed_files(void);

/* ---- output (shard thread only) ---- */
/* Copy bytes into the connection's send queue (through the transport). */
void au_conn_write(struct au_conn *c, const void *data, size_t len);
/* Queue a reference to shared bytes (takes its own reference; the caller keeps its own). */
void au_conn_write_buf(struct au_conn *c, struct au_buf *b, uint32_t off, uint32_t len);
/* Room for len bytes at the end of the send queue, to be filled before returning to the loop (the bytes are
 * written in place: no intermediate copy). NULL when the transport transforms output (use au_conn_write) or
 * the connection is closing. */
uint8_t *au_conn_reserve(struct au_conn *c, size_t len);
/* Bytes queued and not yet sent. */
static inline uint32_t au_conn_queued(const struct au_conn *c) { return c->out_bytes; }
/* Transport-level: queue already-encoded bytes. */
void au_conn_raw_write(struct au_conn *c, const void *data, size_t len);
void au_conn_raw_write_buf(struct au_conn *c, struct au_buf *b, uint32_t off, uint32_t len);
/* Transport decode path: hand decoded bytes to the protocol. */
int au_conn_deliver(struct au_conn *c, const uint8_t *data, size_t len);

/* Present the kept (unconsumed) input to the protocol again without new bytes: for a protocol that
 * stopped consuming while waiting for something (a deferred HTTP response) and can go on now. */
void au_conn_kick(struct au_conn *c);
/* Close: flush queued output first (bounded by a deadline), then close. Idempotent. */
void au_conn_close(struct au_conn *c);
/* Close now, dropping queued output. */
void au_conn_abort(struct au_conn *c);
/* Unconsumed input bound. A connection whose protocol leaves more than in_max bytes unconsumed (waiting for
 * something else: a password verdict, a deferred HTTP answer) stops receiving (its multishot recv is not
 * re-armed; the kernel's socket buffer and TCP flow control hold the sender back) until the protocol consumes
 * enough (au_conn_kick or new input presented) to go back to in_max or less; bytes of a receive already in
 * flight when it stops are still kept (at most a few provided buffers). A protocol sets the bound at or above
 * the largest frame it may need whole before it can consume it (MQTT: max_packet plus the fixed header), in
 * on_open and on_handoff; 0 means AU_CONN_IN_MAX. */
static inline void au_conn_set_in_max(struct au_conn *c, uint32_t max) { c->in_max = max; }
/* Stop / resume reading from the connection (back-pressure). */
void au_conn_pause(struct au_conn *c);
void au_conn_resume(struct au_conn *c);
/* Move the connection to shard `to` with its unconsumed input bytes, its transport and the transport's state
 * (see struct au_transport); `arg` reaches proto->on_handoff there. Valid after the transport's handshake; output
 * already queued (a transport's handshake answer: a few bytes the socket buffer takes at once) is flushed from
 * here before the descriptor moves, and the protocol queues no more. Returns 0 or -1. */
int au_conn_handoff(struct au_conn *c, int to, void *arg);
/* Switch a live connection to protocol `proto` (its on_open runs, with c->proto_state = proto_state already set)
 * and, when tp is not NULL and differs, to transport `tp` (opened now; a handshake defers on_open until it is
 * done, and then proto_state must be NULL: a connection that closes before on_open gets no on_close). The old
 * protocol releases its own state before the call and gets no on_close. Input it did not consume
 * (the rest of the bytes of this on_data, if called from there) goes to the new transport's decode, or to the new
 * protocol when the transport stays. The transport can only change from a pass-through one (decode NULL:
 * HTTP -> WebSocket framing); a layered transport (WebSocket inside TLS) wraps the state of the one below.
 * Returns 0, or -1 (nothing changed: closing, handing off, handshaking, a transforming transport, the new
 * transport's open failed, or it needs a handshake and proto_state is not NULL). */
int au_conn_upgrade(struct au_conn *c, const struct au_proto *proto, const struct au_transport *tp,
                    void *proto_state);
/* Transport side: the handshake is done (see struct au_transport). */
void au_conn_handshake_done(struct au_conn *c);
/* The connection is on its way to another shard: a transport may stop delivering and hold (pending). */
static inline bool au_conn_handing_off(const struct au_conn *c) { return c->flags & AU_CONN_HANDOFF; }
static inline bool au_conn_secure(const struct au_conn *c) { return c->tp->secure; }
static inline const char *au_conn_transport_name(const struct au_conn *c) { return c->tp->name; }

/* ---- capacity ----
 * A shard holds at most max_conns connections. At the limit it stops accepting and takes its listening
 * sockets out of the SO_REUSEPORT group, so the kernel gives new connections to the other shards. The last
 * shard in the group stays in it when it fills ("refusing"): it goes on accepting, up to AU_ACCEPT_OVERSHOOT
 * past its limit, so that the protocol refuses every new connection cleanly (MQTT: CONNACK "server
 * unavailable") instead of leaving it in an accept queue or the port without a listener; it leaves the group
 * as soon as another shard is back in it. Hand-offs that arrive at a full shard are taken too (the protocol
 * refuses them, au_shard_over_limit). Below the limit again (less AU_ACCEPT_RESUME_GAP) a shard rejoins. */
/* Any thread: shard `s` has room for one more connection (a relaxed read: a hint for routing decisions). */
static inline bool au_shard_has_room(const struct au_shard *s) { return AU_STAT_READ(s, conns) < s->max_conns; }
/* Shard thread: the shard holds more connections than max_conns (this one was taken over the limit). */
static inline bool au_shard_over_limit(const struct au_shard *s) { return s->nconns > s->max_conns; }

/* ---- cross-shard ---- */
/* Post a message from shard `self` to shard `to` (to may equal self: runs on the next iteration). */
void au_shard_post(struct au_shard *self, int to, struct au_xmsg *m);
/* The same, with a function that releases the message if the target stops before handling it. */
void au_shard_post_disposable(struct au_shard *self, int to, struct au_xmsg *m, void (*dispose)(struct au_xmsg *));

#endif
