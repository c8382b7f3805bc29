/* conn.h - one benchmark connection, and the interface between worker.c (io_uring transport)
 * and client.c (MQTT client logic). Both run on the worker thread that owns the connection. */
#ifndef AU_BENCH_CONN_H
#define AU_BENCH_CONN_H

#include "perf/bench/bench.h"

enum conn_state {
    CS_NEW = 0,          /* not started */
    CS_CONNECTING,       /* TCP connect submitted */
    CS_CONNACK_WAIT,     /* CONNECT sent */
    CS_SUBACK_WAIT,      /* SUBSCRIBE sent (subscribers) */
    CS_SETTLE,           /* IM: subscribed to im/inbox, waiting for the login replay of old messages to end */
    CS_READY,            /* session up (and subscribed) */
    CS_DISCONNECTING,    /* DISCONNECT queued; closes once sent */
    CS_CLOSING,          /* shutdown/close in progress */
    CS_CLOSED,           /* slot free, nothing in flight */
};

enum conn_flag {
    CF_RECV = 1u << 0,   /* multishot receive armed */
    CF_SEND = 1u << 1,   /* a send is in flight */
    CF_SHUT = 1u << 2,   /* cancel of in-flight operations submitted */
    CF_CLOSE = 1u << 3,  /* close_direct submitted */
    CF_SLOT = 1u << 4,   /* the fixed-file slot holds our socket */
    CF_UP = 1u << 5,     /* counted in stats.alive */
    CF_READY = 1u << 6,  /* counted in stats.ready */
    CF_FAILED = 1u << 7, /* counted in stats.failed */
};

struct bench_buf {
    uint8_t *p;
    uint32_t len, cap;
};

/* IM: what one device got from one publisher (one conversation): exactly once, in order. */
struct im_track {
    uint32_t next;                /* one past the highest sequence seen */
    uint32_t got;                 /* distinct sequences seen */
    uint64_t last_sseq;           /* the server's `sequence` of the last arrival */
    uint32_t cap;                 /* bits in `bits` */
    uint8_t *bits;                /* sequences seen */
};

struct bench_conn {
    uint32_t gidx;                /* global connection index */
    uint32_t role_idx;            /* publisher / subscriber index within its role */
    uint8_t role, state;
    uint8_t flags;
    uint8_t pending;              /* SQEs in flight for this connection */
    uint32_t last_tx_s;           /* seconds since run t0 of the last send, for keep-alive */
    uint32_t tx_off;              /* bytes of txf already sent */
    uint64_t t_connect_ns;
    struct bench_buf txq;         /* queued, not yet handed to the kernel */
    struct bench_buf txf;         /* in flight (immutable until its send completes) */
    struct bench_buf rx;          /* partial packet carried between receive buffers */
    /* IM devices subscribed to im/inbox */
    uint64_t settle_ns;           /* CS_SETTLE: ready once this passes without an arrival */
    struct im_track *trk;         /* one per publisher this device hears (im_track_index) */
    uint32_t ntrk;
};

/* Publisher state (one per publisher connection on this worker). */
struct bench_pub {
    uint32_t pub_id;              /* global publisher index */
    uint32_t topic;
    uint32_t conn;                /* local connection index */
    uint32_t window;              /* min(--window, broker's Receive Maximum) */
    uint32_t inflight;            /* QoS 1/2 messages awaiting PUBACK/PUBCOMP */
    uint32_t cursor;              /* next window slot to try */
    uint32_t seq;
    uint16_t topic_len;
    char *topic_name;
    uint8_t *slots;               /* per window slot (packet id = slot + 1): 0 free, 1 PUBACK/PUBREC due, 2 PUBCOMP due */
    uint64_t sent, acked, skipped;
    uint64_t acked_ok;            /* IM: PUBACK with success */
    char *im_head;                /* IM: the message JSON up to the text: {...,"msg_body":{"text":" */
    uint32_t im_head_len;
    uint64_t stall_since_ns;
    uint64_t last_progress;       /* delivered count at the last check */
};

/* ---- worker.c: transport services used by client.c ---- */
/* Append bytes to the connection's queue; false when the queue would exceed BENCH_TX_MAX. */
bool conn_queue(struct bench_conn *c, const void *p, size_t len);
/* Reserve `len` bytes at the tail of the queue (grown as needed); NULL when too large. */
uint8_t *conn_reserve(struct bench_conn *c, size_t len);
void conn_commit(struct bench_conn *c, size_t len);
/* Hand the queue to the kernel when no send is in flight. */
void conn_flush(struct bench_worker *w, struct bench_conn *c);
/* Count an error of kind `err` (unless err < 0) and close the connection. */
void conn_fail(struct bench_worker *w, struct bench_conn *c, int err);
/* Graceful end: queue DISCONNECT, close once it is sent. */
void conn_disconnect(struct bench_worker *w, struct bench_conn *c);
void conn_mark_ready(struct bench_worker *w, struct bench_conn *c);
void bench_err(struct bench_worker *w, enum bench_err e);
static inline void stat_add(_Atomic uint64_t *v, uint64_t n)
{
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + n, memory_order_relaxed);
}
static inline void stat_sub(_Atomic uint64_t *v, uint64_t n)
{
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) - n, memory_order_relaxed);
}
static inline uint64_t stat_get(_Atomic uint64_t *v) { return atomic_load_explicit(v, memory_order_relaxed); }
/* A latency sample: the run's histogram and the progress line's per-second maximum. */
static inline void lat_record(struct bench_worker *w, uint64_t ns)
{
    hist_record(&w->lat, ns);
    if (ns > atomic_load_explicit(&w->st.lat_max_tick, memory_order_relaxed))
        atomic_store_explicit(&w->st.lat_max_tick, ns, memory_order_relaxed);   /* racing the swap: best effort */
}

/* ---- client.c: MQTT logic called by worker.c ---- */
int client_init(struct bench_worker *w);          /* per-worker publisher state; -1 on failure */
void client_free(struct bench_worker *w);
void client_on_tcp_connected(struct bench_worker *w, struct bench_conn *c);
/* One whole packet from the broker; returns 0, or -1 when the connection was failed. */
int client_on_packet(struct bench_worker *w, struct bench_conn *c, const uint8_t *pkt, uint32_t len);
/* Encode messages for publishers with credit (RUN phase). */
void client_publish_pass(struct bench_worker *w, uint64_t now_ns);
/* PINGREQ for sessions idle for keepalive/2. */
void client_keepalive(struct bench_worker *w, uint64_t now_ns);

/* ---- im.c: the IM scenarios' client side (JMessage JSON on im/send, arrivals on im/inbox) ---- */
/* User number (before --user-base) of a connection, and the peer a publisher writes to (single chat). */
uint32_t im_user_of(const struct bench_cfg *cfg, const struct bench_conn *c, uint32_t pub_id);
int im_user_name(const struct bench_cfg *cfg, uint32_t n, char *out, size_t cap);
/* Client id: <client-prefix>-<user> for receiving devices, <client-prefix>-<user>-s<publisher> for senders. */
int im_client_id(const struct bench_cfg *cfg, const struct bench_conn *c, uint32_t pub_id, char *out, size_t cap);
/* Publishers a receiving connection tracks, and the slot of publisher pub_id (-1: it should not hear it). */
uint32_t im_track_count(const struct bench_cfg *cfg, const struct bench_conn *c);
int im_track_index(const struct bench_cfg *cfg, const struct bench_conn *c, uint32_t pub_id);
int im_pub_init(struct bench_worker *w, struct bench_pub *p);
/* Encode one im/send PUBLISH (packet id `id`) for p into out; returns its length (0: does not fit). */
size_t im_encode_publish(struct bench_worker *w, struct bench_pub *p, uint16_t id, uint64_t now, uint8_t *out, size_t cap);
/* A PUBLISH on im/inbox: classify, check exactly-once and order, record latency. */
void im_on_inbox(struct bench_worker *w, struct bench_conn *c, const uint8_t *p, uint32_t n, uint64_t now);
/* Subscribers whose login replay went quiet become ready (setup phase). */
void im_settle_scan(struct bench_worker *w, uint64_t now);
/* At the worker's end: committed messages that never arrived (stats.im_missing); frees the tracking. */
void im_finish(struct bench_worker *w);

#endif
