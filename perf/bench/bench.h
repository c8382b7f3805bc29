/* bench.h - aurora-bench, the io_uring MQTT load generator: shared types and limits.
 *
 * Layout: main.c runs the phases and prints; args.c parses and validates the command line;
 * worker.c owns one io_uring per thread (sockets as direct descriptors, provided-buffer ring,
 * multishot receive, one send in flight per connection); client.c is the MQTT client state
 * machine on top of it (CONNECT/SUBSCRIBE, publishing with windows, QoS 1/2 handshakes, latency);
 * hist.c is the latency histogram; report.c prints the summary table and the JSON object. */
#ifndef AU_BENCH_H
#define AU_BENCH_H

#include "core/common.h"
#include "perf/bench/hist.h"

#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>

/* ---- limits of the load generator (every bound it has, named here) ---- */
#define BENCH_CONNS_PER_RING     19000u   /* direct descriptors per ring: the table is capped by RLIMIT_NOFILE (20000) */
#define BENCH_MAX_THREADS        128u
#define BENCH_MAX_CONNECTIONS    2000000u
#define BENCH_MAX_SRC_ADDRS      4096u
#define BENCH_MAX_DURATION_S     600u
#define BENCH_DEFAULT_DURATION_S 10u
#define BENCH_DEFAULT_SETUP_S    60u      /* connect/subscribe phase bound */
#define BENCH_MAX_SETUP_S        600u
#define BENCH_DRAIN_MS           5000u    /* after publishing stops: wait for outstanding deliveries/acks */
#define BENCH_TEARDOWN_MS        5000u    /* DISCONNECT + close of every connection */
#define BENCH_MIN_PAYLOAD        16u      /* send timestamp (8) + publisher index (4) + sequence (4) */
#define BENCH_MAX_PAYLOAD        (1u << 20)
#define BENCH_MAX_TOPIC_PREFIX   200u
#define BENCH_MAX_CLIENT_PREFIX  200u
#define BENCH_MAX_SESSION_EXPIRY 4294967295u /* MQTT 5 Session Expiry Interval (UINT32_MAX = never) */
#define BENCH_MAX_WINDOW         4096u    /* in-flight messages per publisher (packet ids are 1..window) */
#define BENCH_DEFAULT_WINDOW     20u      /* = common brokers' in-flight limit (Mosquitto max_inflight_messages): 3.1.1 has no Receive Maximum */
#define BENCH_DEFAULT_CONN_WIN   32u      /* connects in progress per thread */
#define BENCH_MAX_CONN_WIN       20000u
#define BENCH_RING_ENTRIES       4096u
#define BENCH_CQ_ENTRIES         65536u
#define BENCH_RECV_BUF_SIZE      8192u    /* bytes per provided receive buffer */
#define BENCH_RECV_BUF_COUNT     1024u    /* provided buffers per ring (power of two) */
#define BENCH_BGID               1
#define BENCH_TX_BATCH           (64u << 10) /* a publisher stops encoding when this much is queued */
#define BENCH_TX_MAX             (8u << 20)  /* queued bytes per connection before it is declared stuck */
#define BENCH_SOCKET_BATCH       64u      /* sockets created and registered with one files_update */
#define BENCH_STALL_MS           1000u    /* window without progress for this long: count a resync, move on */
/* Without --rate, a publisher also waits for its messages to be delivered (end-to-end window):
 * at most --window messages, further limited so that one publisher has at most
 * BENCH_E2E_DELIVERIES deliveries outstanding (fan-out queues stay short, latency stays meaningful)
 * and one subscriber has at most BENCH_E2E_PER_SUB messages outstanding from all publishers it
 * hears (below broker queue limits such as Mosquitto's max_queued_messages 1000: no drops). */
#define BENCH_E2E_DELIVERIES     4096u
#define BENCH_E2E_PER_SUB        512u
#define BENCH_MAX_PACKET_MIN     (64u << 10) /* largest packet accepted from the broker (at least) */
/* IM scenarios (im-single, im-group, im-replay: perf/bench/im.c) */
#define BENCH_IM_MIN_TEXT        48u      /* "aub1." + run, publisher, sequence (8 hex each) + timestamp (16 hex) + dots */
#define BENCH_IM_MAX_TEXT        4000u    /* msg_body.text: the gateway takes a msg_body of at most 4096 bytes */
#define BENCH_IM_DEFAULT_TEXT    64u
#define BENCH_IM_MAX_USER_PREFIX 100u     /* usernames are <prefix><number>, 4..128 bytes */
#define BENCH_IM_MAX_APPKEY      64u
#define BENCH_IM_MAX_GROUPS      1000u    /* --groups / --group-ids entries */
#define BENCH_IM_MAX_MEMBERS     100000u  /* --members (the gateway's own default limit is 500 per group) */
#define BENCH_IM_SETTLE_MS       300u     /* after SUBACK on im/inbox: quiet this long (old messages replayed) before ready */
#define BENCH_IM_SETTLE_SCAN_MS  20u      /* how often a worker looks for settled devices (setup phase) */
#define BENCH_IM_MAX_SEQ         (1u << 28) /* sequences tracked per publisher (exactly-once bitmaps) */
#define BENCH_IM_OFFLINE_MSGS    100u     /* im-replay: messages replayed per conversation (gateway im_offline_msgs) */
#define BENCH_IM_REPLAY_TIMEOUT_S 60u     /* im-replay: bound of the replay phase (--replay-timeout) */
#define BENCH_IM_MAX_REPLAY_S    600u
#define BENCH_IM_REPLAY_STALL_MS 5000u    /* im-replay: replay phase ends after this long without an arrival */
#define BENCH_IM_REPLAY_EMPTY_MS 1000u    /* im-replay with nothing committed: wait this long after SUBSCRIBE */
#define BENCH_IM_MAX_MESSAGES    10000000u /* --messages per publisher */
#define BENCH_IM_DEVICE_RATE     1000u    /* the gateway refuses im/send beyond this many msgs/s per device (803010,
                                           * burst 2000): measure peak rates with enough publishers */

_Static_assert((BENCH_RECV_BUF_COUNT & (BENCH_RECV_BUF_COUNT - 1)) == 0, "buffer ring size must be a power of two");
_Static_assert(BENCH_RECV_BUF_COUNT <= 32768, "buffer ids are 16 bit");
_Static_assert(BENCH_MAX_WINDOW <= 65535, "packet ids are 16 bit");
_Static_assert(BENCH_CONNS_PER_RING < 20000, "fixed file table must fit RLIMIT_NOFILE");
_Static_assert(BENCH_SOCKET_BATCH < 1024, "socket batch must leave fds for the rest of the process");

/* Pub/sub scenarios are >= SC_P2P; the IM scenarios (JMessage JSON over im/send -> im/inbox) >= SC_IM_SINGLE. */
enum bench_scenario { SC_HOLD, SC_STORM, SC_P2P, SC_FANOUT, SC_FANIN, SC_IM_SINGLE, SC_IM_GROUP, SC_IM_REPLAY };
enum bench_phase { PH_SETUP, PH_RUN, PH_DRAIN, PH_TEARDOWN, PH_DONE };
/* ROLE_REPLAY: im-replay's returning device (the last connection), connected only after the sends. */
enum bench_role { ROLE_IDLE, ROLE_SUB, ROLE_PUB, ROLE_REPLAY };

/* Non-fatal errors, counted per kind and reported. */
enum bench_err {
    E_SOCKET,        /* socket()/bind()/register failed */
    E_CONNECT,       /* TCP connect failed */
    E_CONNACK,       /* CONNACK refused, or missing */
    E_SUBACK,        /* SUBACK refused a filter */
    E_PROTOCOL,      /* unparsable or unexpected packet from the broker */
    E_PEER_CLOSED,   /* broker closed or reset the connection before teardown */
    E_SEND,          /* send error */
    E_RECV,          /* receive error */
    E_ACK,           /* PUBACK/PUBREC/PUBCOMP for an id not in flight, or a failure reason code */
    E_FOREIGN,       /* PUBLISH whose payload was not made by this run */
    E_TIMEOUT,       /* connection not ready when the setup phase ended */
    E_MISROUTED,     /* IM: a message of this run reached a device that should not get it */
    E__COUNT
};
extern const char *const bench_err_names[E__COUNT];

struct bench_cfg {
    enum bench_scenario scenario;
    const char *scenario_name;
    /* target */
    char host[64];
    uint16_t port;
    struct sockaddr_storage target;
    socklen_t target_len;
    int family;
    /* source addresses, round robin by connection */
    struct sockaddr_storage *src;
    uint32_t n_src;
    char src_spec[256];
    /* population */
    uint32_t connections;            /* total, = subscribers + publishers + idle */
    uint32_t publishers, subscribers, idle, topics;
    /* MQTT */
    uint8_t qos, version;
    uint16_t keepalive;
    bool sub_clean;                  /* subscribers' Clean Session (3.1.1) / Clean Start (5) flag (--clean) */
    uint32_t sub_expiry;             /* subscribers' MQTT 5 Session Expiry Interval, s (--session-expiry) */
    bool durable;                    /* subscribers have persistent sessions: QoS 1/2 is stored before PUBACK */
    const char *username, *password;
    char client_prefix[BENCH_MAX_CLIENT_PREFIX + 1];
    char topic_prefix[BENCH_MAX_TOPIC_PREFIX + 1];
    uint32_t payload;
    /* pacing */
    double rate;                     /* msgs/s total (pub/sub) or connects/s (hold, storm); 0 = max */
    uint32_t window;                 /* in-flight messages per publisher */
    uint32_t connect_window;         /* connects in progress per thread */
    uint32_t duration_s, setup_s;
    uint32_t threads;
    /* output */
    const char *json_path;
    bool quiet;
    /* IM scenarios */
    bool im;                         /* scenario >= SC_IM_SINGLE */
    char appkey[BENCH_IM_MAX_APPKEY + 1];
    char user_prefix[BENCH_IM_MAX_USER_PREFIX + 1];
    uint32_t user_base;              /* user n is <user_prefix><user_base + n> */
    uint32_t groups, members;        /* im-group: groups, members per group (every member's device subscribes) */
    uint64_t *gids;                  /* im-group: the groups' ids, one per group (--group-ids) */
    uint32_t messages;               /* per publisher; 0 = until --duration ends */
    uint32_t offline_msgs;           /* im-replay: latest messages per conversation the gateway replays */
    uint32_t replay_timeout_s;
};

/* Counters of one worker: written by that worker only (relaxed load+store), read by main. */
struct bench_stats {
    _Atomic uint64_t connects;       /* TCP connects started */
    _Atomic uint64_t connacks;       /* sessions established (CONNACK success) */
    _Atomic uint64_t ready;          /* connections ready (subscribers: SUBACK received) */
    _Atomic uint64_t failed;         /* connections given up before ready */
    _Atomic uint64_t alive;          /* sessions currently established */
    _Atomic uint64_t lost;           /* established sessions lost before teardown */
    _Atomic uint64_t open;           /* descriptors in use (not yet closed) */
    _Atomic uint64_t sent;           /* PUBLISH sent */
    _Atomic uint64_t acked;          /* PUBACK / PUBCOMP received */
    _Atomic uint64_t received;       /* PUBLISH received */
    _Atomic uint64_t pings;
    _Atomic uint64_t resyncs;        /* publisher windows reset after BENCH_STALL_MS without progress */
    _Atomic uint64_t first_connect_ns, last_connack_ns, last_recv_ns;
    _Atomic uint64_t lat_max_tick;   /* highest latency since main last took it (progress line; main swaps in 0) */
    /* IM: arrivals on im/inbox (only messages of this run count in `received`) */
    _Atomic uint64_t im_unique;      /* first arrival of a message */
    _Atomic uint64_t im_dup;         /* a message that had already arrived on that device */
    _Atomic uint64_t im_ooo;         /* arrived after a later message of the same conversation */
    _Atomic uint64_t im_seq_err;     /* the server's `sequence` did not increase within a conversation */
    _Atomic uint64_t im_stale;       /* messages of earlier runs (replayed to a device at login) */
    _Atomic uint64_t im_events;      /* other inbox objects: group events, send errors */
    _Atomic uint64_t im_refused;     /* PUBACK on im/send with a failure reason code */
    _Atomic uint64_t im_missing;     /* computed at the end: committed messages that never arrived */
    _Atomic uint64_t im_last_ns;     /* last first-arrival of a message of this run */
    _Atomic uint64_t errors[E__COUNT];
    _Atomic int done;                /* worker left its loop */
} __attribute__((aligned(64)));

struct bench_conn;
struct bench_pub;

struct bench_run;

struct bench_worker {
    uint32_t id;
    pthread_t thread;
    struct bench_run *run;
    const struct bench_cfg *cfg;
    struct io_uring ring;
    bool ring_ok;
    struct io_uring_buf_ring *br;
    size_t br_size;
    uint8_t *bufs;
    unsigned br_added;               /* buffers given back since the last advance */
    struct bench_conn *conns;        /* local index == fixed-file slot */
    uint32_t n_conns;
    uint32_t next_connect;           /* next local index to connect */
    uint32_t connecting;             /* connects or CONNACKs outstanding */
    struct bench_pub *pubs;
    uint32_t n_pubs, pub_cursor;
    uint32_t *rearm;                 /* connections whose multishot receive must be re-armed */
    uint32_t n_rearm;
    uint8_t *payload;                /* payload template */
    uint32_t max_packet;
    uint64_t pace_base_ns, pace_done;
    double pace_rate;                /* this worker's share of --rate */
    uint64_t last_scan_ns;
    uint64_t last_settle_ns;         /* IM: last scan for subscribers done settling */
    uint32_t defer_idx;              /* local index of a deferred connection (im-replay), or UINT32_MAX */
    int phase;                       /* last phase acted on */
    char err_msg[128];
    int fatal;
    struct hist lat;                 /* publish -> delivery latency, ns */
    struct hist conn_lat;            /* connect start -> CONNACK, ns */
    struct bench_stats st;
};

/* State shared by all threads. */
struct bench_run {
    const struct bench_cfg *cfg;
    _Atomic int phase;
    _Atomic bool interrupted;
    uint64_t t0_ns;
    _Atomic uint64_t setup_start_ns, run_start_ns, run_end_ns;
    _Atomic uint32_t *topic_subs;    /* per topic: subscribers that got their SUBACK */
    _Atomic uint32_t wild_subs;      /* wildcard subscribers (fanin) */
    uint32_t *deliv;                 /* per topic: deliveries per message, fixed when RUN starts */
    uint32_t *e2e;                   /* per topic: end-to-end window of each publisher, fixed when RUN starts */
    _Atomic uint64_t *delivered;     /* [worker * publishers + publisher]: deliveries seen by that worker */
    _Atomic uint64_t *pub_sent;      /* [publisher]: PUBLISH sent */
    /* IM */
    uint32_t im_run_id;              /* in every message text: tells this run's messages from earlier ones */
    _Atomic uint64_t *pub_acked;     /* [publisher]: PUBACK with success (= committed: durable) */
    _Atomic uint64_t *pub_refused;   /* [publisher]: PUBACK with a failure code (never stored, never delivered) */
    uint64_t *pub_acked_final;       /* [publisher]: pub_acked when the teardown started (for the missing count) */
    uint64_t *pub_refused_final;     /* [publisher]: pub_refused then; acks arrive in order: they cover the
                                      * sequences [0, acked + refused) */
    _Atomic int im_gate;             /* im-replay: the away device is gone, the senders may start */
    _Atomic uint64_t replay_expected;   /* im-replay: messages the returning device must get */
    _Atomic uint64_t replay_connect_ns, replay_connack_ns, replay_sub_ns, replay_first_ns;
    struct bench_worker *workers;
    uint32_t n_workers;
};

/* ---- time ---- */
uint64_t bench_now_ns(void);

/* ---- args.c ---- */
/* Parse argv into cfg. Returns 0, 1 when --help was printed, -1 on a usage error (printed). */
int bench_parse_args(int argc, char **argv, struct bench_cfg *cfg);
void bench_usage(FILE *f);
/* Address helpers (exposed for the unit test). */
int bench_parse_target(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len);
bool bench_is_loopback(const struct sockaddr_storage *ss);
/* Parse "127.0.0.1-127.0.0.50,127.0.1.1" into cfg->src (allocated). Returns count or -1. */
int bench_parse_src(const char *spec, int family, struct sockaddr_storage **out);

/* ---- roles (a pure function of the configuration) ---- */
enum bench_role bench_role_of(const struct bench_cfg *cfg, uint32_t gidx);
uint32_t bench_pub_topic(const struct bench_cfg *cfg, uint32_t pub_id);
/* Subscriber's topic, or UINT32_MAX for the wildcard subscriber of fanin. */
uint32_t bench_sub_topic(const struct bench_cfg *cfg, uint32_t sub_id);
/* Connections set up after the run phase (im-replay's returning device): not part of the setup phase. */
uint32_t bench_deferred(const struct bench_cfg *cfg);

/* ---- worker.c ---- */
void *bench_worker_main(void *arg);

/* ---- report.c ---- */
struct bench_result {
    const struct bench_cfg *cfg;
    uint64_t connects, connacks, ready, failed, alive_end, lost, sent, acked, received, expected;
    uint64_t pings, resyncs;
    uint64_t errors[E__COUNT], errors_total;
    double setup_s, run_s, connect_rate, msgs_out_s, msgs_in_s;
    struct hist lat, conn_lat;
    bool interrupted;
    /* IM */
    uint64_t committed, refused, unique, dups, ooo, seq_err, missing, stale, events;
    double committed_s;
    uint64_t replay_expected;
    double replay_ms, replay_first_ms, replay_login_ms, replay_msgs_s;
};
void bench_report_table(FILE *f, const struct bench_result *r);
/* One JSON object on one line (no trailing newline). */
void bench_report_json(FILE *f, const struct bench_result *r);

#endif
