/* broker.h - the MQTT broker: sessions, subscriptions, retained messages, fan-out across shards.
 *
 * Ownership: a session lives on the shard that owns its identity, owner = hash(app, client id) % shards;
 * a CONNECT that arrives elsewhere is handed over with its socket (au_conn_handoff) before any state is
 * made. Each shard owns its sessions, its subscription index (for its own sessions) and a replica of the
 * retained store. A PUBLISH becomes one immutable, reference-counted `struct msg` that is posted to
 * every shard; each shard matches it against its own index and writes the same encoded bytes to all of
 * its recipients (docs/architecture.md walks through the path). */
#ifndef AU_MQTT_BROKER_H
#define AU_MQTT_BROKER_H

#include "core/common.h"
#include "core/loop.h"
#include "core/hash.h"
#include "core/timer.h"
#include "core/config.h"
#include "gateway/mqtt/codec.h"
#include "gateway/mqtt/retained.h"
#include "gateway/mqtt/subindex.h"
#include "gateway/mqtt/ident.h"
#include "store/store.h"

#include <stdatomic.h>

#define AU_DEFAULT_APP 1u
#define BROKER_PERSIST_LOG_MS 5000u  /* --log-level debug: store write figures this often per shard */
/* A QoS 1 message sent at once to an online persistent session is written to the store only if the
 * subscriber has not acknowledged it within this time (the publisher's PUBACK waits for either). */
#define BROKER_STORE_DEFER_MS 2u
/* Deferring pays only when subscribers acknowledge within that time (p2p: ~80 %; a 1 -> 1,000 fan-out: ~1 %,
 * as the fan-out itself takes longer). Per shard, after each BROKER_DEFER_SAMPLE outcomes: when fewer than
 * 1/BROKER_DEFER_MIN_HIT_DIV were acknowledged in time, the next BROKER_DEFER_SKIP eligible deliveries are
 * stored at once. */
#define BROKER_DEFER_SAMPLE 4096u
#define BROKER_DEFER_MIN_HIT_DIV 32u
#define BROKER_DEFER_SKIP 16384u
/* Broker extensions (ext.h): how many may register, and the per-shard pointer slots each gets. */
#define BROKER_EXT_MAX 4
/* Handler result: the CONNECT waits for an extension's verdict (run again then, ext.h login_authenticate). */
#define BROKER_PENDING 2

/* An application message as published: immutable after creation, shared by every shard that
 * delivers or retains it. Layout of data[]: topic, forwarded v5 properties (payload format,
 * content type, response topic, correlation data, user properties, already encoded without the
 * length prefix), payload, origin client id. */
struct msg {
    atomic_uint refs;
    uint32_t app;
    uint64_t origin;            /* session uid of the publisher (no-local); 0 for server-made */
    uint64_t expire_at;         /* CLOCK_MONOTONIC ms, 0 = never */
    uint64_t seq;               /* process-unique (origin shard << 48 | counter) */
    struct share_picks *picks;  /* shared subscriptions: which shard serves which group (origin decides) */
    struct pub_ticket *ticket;  /* PUBACK/PUBREC waiting until every shard made its part durable, or NULL */
    const char *wire_topic;     /* topic sent to subscribers when it differs from the matched one */
    uint16_t wire_len;
    uint64_t ext_data[2];       /* the extension's per-message data, when ext != 0 */
    uint32_t payload_len;
    uint32_t props_len;
    uint16_t topic_len;
    uint8_t qos;
    uint8_t retain;
    uint8_t ext;                /* 0: an MQTT message; else made by broker extension ext - 1 (ext.h) */
    uint8_t data[];
};
static inline const uint8_t *msg_topic(const struct msg *m) { return m->data; }
static inline const uint8_t *msg_wire_topic(const struct msg *m)
{
    return m->wire_topic ? (const uint8_t *)m->wire_topic : m->data;
}
static inline uint16_t msg_wire_len(const struct msg *m) { return m->wire_topic ? m->wire_len : m->topic_len; }
static inline const uint8_t *msg_props(const struct msg *m) { return m->data + m->topic_len; }
static inline const uint8_t *msg_payload(const struct msg *m) { return m->data + m->topic_len + m->props_len; }
/* What a retained message counts against its app's byte budget (max_retained_bytes): topic, properties, payload. */
size_t msg_retained_bytes(const void *msg);

struct msg *msg_new(uint32_t app, const uint8_t *topic, uint16_t topic_len, const struct mqtt_props *props,
                    const uint8_t *payload, uint32_t payload_len, uint8_t qos, bool retain, uint64_t origin,
                    uint64_t now_ms);
static inline struct msg *msg_ref(struct msg *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}
/* Same with the forwarded properties already encoded (no length prefix); expire_at absolute (0 = never). */
struct msg *msg_new_raw(uint32_t app, const uint8_t *topic, uint16_t topic_len, const uint8_t *props,
                        uint32_t props_len, const uint8_t *payload, uint32_t payload_len, uint8_t qos, bool retain,
                        uint64_t origin, uint64_t expire_at);
void msg_unref(struct msg *m);

/* Outgoing QoS 1/2 message awaiting acknowledgement, or queued behind the window. */
enum { OUT_QUEUED = 0, OUT_WAIT_PUBACK, OUT_WAIT_PUBREC, OUT_WAIT_PUBCOMP };
struct outmsg {
    struct outmsg *next;
    struct msg *m;
    uint64_t store_seq;         /* key of its record in the store (persistent sessions), 0 = not stored */
    uint32_t *sub_ids;          /* malloc'd when n_sub_ids > 0 */
    struct defer_node *dn;      /* not yet stored: waiting for the subscriber's PUBACK (persist.c), or NULL */
    uint16_t pid;
    uint8_t qos, state, retain, n_sub_ids;
};

struct will {
    struct msg *m;              /* the will as a message (topic, payload, props, qos, retain) */
    uint32_t delay;             /* seconds */
};

struct session;

/* Per-connection MQTT state (lives while the connection lives). */
struct mqtt_conn {
    struct au_conn *conn;
    struct session *sess;       /* NULL until CONNECT accepted */
    struct au_timer ka_timer;   /* connect timeout, then keep-alive */
    uint64_t last_rx_ms;
    uint32_t ka_ms;             /* keep-alive * 1.5, 0 = none */
    uint32_t client_max_packet; /* client's Maximum Packet Size (0 = protocol max) */
    uint16_t client_recv_max;   /* client's Receive Maximum */
    uint16_t alias_max;         /* topic aliases we accept from the client */
    struct mqtt_str *aliases;   /* [alias_max + 1] topic per alias (malloc'd copies) */
    uint8_t version;
    uint8_t state;              /* MC_* */
    uint8_t req_problem_info;
    uint8_t disconnect_will;    /* DISCONNECT 0x04: publish the will */
    uint8_t login_verdict;      /* an extension's verification of the pending CONNECT ended: 1 ok, 2 refused */
    void *ext_login;            /* that extension's verification in flight (cleared if the connection goes first) */
    uint32_t connect_charged;   /* bytes of a large CONNECT counted against mqtt_connect_budget (mqtt_conn.c) */
    uint32_t app;               /* app resolved from the username at CONNECT */
};
enum { MC_NEW = 0, MC_CONNECTED, MC_CLOSING, MC_AUTH /* CONNECT waiting for its password check */ };

/* A session: survives disconnects when persistent (clean start 0 + expiry > 0). */
struct session {
    uint64_t uid;                /* shard-unique id (no-local, logs) */
    struct broker *owner;        /* the broker (shard) this session lives on */
    uint32_t app;
    uint16_t cid_len;
    uint8_t version;
    uint8_t persistent;
    uint8_t stored;              /* has records in the store */
    char *key;                   /* hash key: 4-byte app id + client id */
    char *client_id;             /* NUL-terminated, inside key */
    char *username;
    struct sess_ident ident;     /* who owns it: only the same identity resumes it (ident.h) */
    void *ext[BROKER_EXT_MAX];   /* per-session state of each broker extension (ext.h), NULL = none */
    struct mqtt_conn *mc;        /* NULL while offline */
    uint32_t expiry;             /* session expiry interval, seconds (UINT32_MAX = never) */
    struct au_timer exp_timer;   /* session expiry / will delay while offline */
    struct will will;
    uint64_t will_at;            /* monotonic ms when a delayed will is due, 0 = none pending */
    uint64_t expire_at;          /* monotonic ms when an offline session ends, 0 = online / never */
    uint32_t will_expiry;        /* will's Message Expiry Interval, seconds (0 = none) */
    /* subscriptions of this session (for removal and for UNSUBSCRIBE codes) */
    struct sess_sub *subs;
    uint32_t nsubs;
    /* outgoing QoS > 0: in flight (sent, awaiting ack, in send order) and queued behind the window */
    struct outmsg *if_head, *if_tail;
    struct outmsg *q_head, *q_tail;
    uint32_t inflight, queued;
    uint16_t next_pid;
    uint64_t out_seq;            /* last store sequence given to an outgoing message */
    struct pend_ack *ack_head, *ack_tail; /* PUBACK/PUBREC in publish order, some waiting for durability */
    uint16_t qos2_in_n;          /* incoming QoS 2 ids received, awaiting PUBREL (session state) */
    uint16_t qos2_in_cap;
    uint16_t *qos2_in;
    /* fan-out de-duplication of overlapping subscriptions */
    uint64_t mark_seq;
    uint32_t mark_idx;
};

/* An acknowledgement owed to a publisher. Acks leave in the order the PUBLISH packets came (MQTT
 * 4.6), each once the message is durable everywhere (its ticket completed). */
struct pend_ack {
    struct pend_ack *next;
    struct session *s;           /* NULL once the session ended (the ticket then frees this) */
    uint16_t pid;
    uint8_t type;                /* MQTT_PUBACK / MQTT_PUBREC (unused when raw is set) */
    uint8_t reason;
    uint8_t ready;
    uint8_t store_failed;        /* its message could not be stored: a negative ack (5.0) or a close (3.1.1) */
    uint32_t raw_len;
    uint8_t *raw;                /* an encoded SUBACK/UNSUBACK written as is, or NULL (freed with the entry) */
};

/* One shard's part of a publish whose deliveries to online persistent sessions wait for the subscribers'
 * PUBACK before they are stored (persist.c): the ticket's part is done once every such delivery was
 * acknowledged, dropped or made durable, and the other writes of the pass are durable. */
struct defer_rec {
    struct broker *b;
    struct pub_ticket *t;
    uint32_t waiting;
};
struct defer_node {
    struct defer_node *prev, *next; /* the shard's list, by deadline */
    struct outmsg *om;
    struct session *s;
    struct defer_rec *rec;
    uint64_t at;                  /* stored at this time (shard ms) unless acknowledged before */
};

/* Counts the shards that still have to make their part of a publish durable. */
struct pub_ticket {
    atomic_int pending;
    atomic_bool failed;          /* a part could not be made durable (ticket_fail): never a positive ack */
    int origin;
    struct pend_ack *ack;
};

struct sess_sub {
    uint8_t *filter;             /* full filter as subscribed ($share/... included) */
    uint16_t len;
    struct sub_opts opts;
};

/* Broker-wide counters per shard (owner writes, anyone reads relaxed). */
struct broker_stats {
    uint64_t connects, connacks_refused, disconnects, takeovers, sessions, sessions_online;
    uint64_t pub_in, pub_in_bytes, deliveries, deliveries_qos0, deliveries_qos1, deliveries_qos2;
    uint64_t dropped_qos0_slow, dropped_queue_full, dropped_expired, dropped_too_large;
    uint64_t subscribes, unsubscribes, subscriptions, retained, wills_sent, protocol_errors, keepalive_timeouts;
    uint64_t retained_refused;    /* PUBLISHes refused: over the app's retained budget */
    /* store writes (persist_flush): batches submitted, their operations and tickets, submit -> durable time */
    uint64_t persist_flushes, persist_ops, persist_tickets, persist_us_total, persist_us_max;
    uint64_t persist_deferred, persist_defer_acked, persist_defer_stored; /* deliveries stored only if not acked */
};
#define BS_ADD(b, f, n) __atomic_store_n(&(b)->stats.f, (b)->stats.f + (n), __ATOMIC_RELAXED)
#define BS_INC(b, f) BS_ADD(b, f, 1)

/* One fan-out target collected while matching (overlapping subscriptions merged). */
struct fan_target {
    struct session *s;
    uint8_t qos;
    uint8_t rap;                 /* retain as published */
    uint8_t n_ids;
    uint32_t ids[AU_MQTT_MAX_SUB_IDS];
};

/* Encoded PUBLISH variants of the message being fanned out on this shard: serialised once per
 * (protocol, QoS, retain) and shared by every recipient that needs the same bytes. */
struct deliver_cache {
    struct msg *m;
    uint64_t now_ms;
    struct au_buf *v[2][3][2];   /* [v5][qos][retain] */
    uint32_t head[2][3][2];      /* bytes before the packet id */
};

struct broker {
    struct au_shard *shard;
    const struct au_config *cfg;
    struct au_hash sessions;     /* client id (with app prefix) -> session */
    struct sub_index subs;
    struct retained_store retained;
    uint64_t next_uid, next_seq;
    /* fan-out scratch */
    struct fan_target *fan;
    uint32_t fan_n, fan_cap;
    struct deliver_cache dc;
    /* Store writes of this loop iteration (persist.c): every MQTT write of the shard goes into ONE batch,
     * submitted once per loop iteration by persist_flush (shard_tick), in order; the tickets of the
     * publishes whose messages it stores complete when it is durable. */
    struct store_batch *ibatch;
    uintptr_t *iwait;            /* struct pub_ticket *, or struct defer_rec * | 1: done when ibatch is durable */
    uint32_t iwait_n, iwait_cap;
    struct defer_node *dhead, *dtail; /* deliveries not stored yet, by deadline */
    struct msg *pass_m;          /* message of the fan-out pass in progress */
    struct defer_rec *pass_rec;  /* its deferred deliveries on this shard, NULL = none */
    uint32_t defer_hit, defer_miss, defer_skip; /* outcomes of deferred deliveries (BROKER_DEFER_SAMPLE) */
    struct broker_stats plog;    /* stats at the last persist debug log line */
    uint64_t plog_ms;
    bool stopping;               /* graceful shutdown: wills are not published */
    struct shared_state *shared;
    struct au_hash by_uid;       /* session uid -> session */
    struct broker_stats stats;
};

extern const struct au_proto mqtt_proto;
/* Per-shard lifecycle steps, run by the gateway's lifecycle table (gateway/gateway.c) on the shard's thread:
 *   broker_shard_init          the broker's state (slot.broker; configuration from slot.services->cfg)
 *   broker_shard_load          restore sessions, subscriptions and retained messages from the store
 *   broker_shard_stop          graceful stop: DISCONNECT 0x8B to MQTT 5 clients, close every connection
 *   broker_shard_tick          every iteration: deferred deliveries due, the iteration's store batch
 *   broker_shard_store_detach  fini: everything not acknowledged is stored, then the shard leaves the store
 *   broker_shard_drop_sessions fini: free every session (after the store detach: no completion refers to one)
 *   broker_shard_fini          fini: free the broker's state */
void broker_shard_init(struct au_shard *s);
void broker_shard_load(struct au_shard *s);
void broker_shard_stop(struct au_shard *s);
int broker_shard_tick(struct au_shard *s, uint64_t now_ms);
void broker_shard_store_detach(struct au_shard *s);
void broker_shard_drop_sessions(struct au_shard *s);
void broker_shard_fini(struct au_shard *s);
/* The broker's /metrics provider (gateway/metrics.h): per-shard MQTT counters. */
struct gw_metrics;
void broker_metrics(struct gw_metrics *m, struct au_shard *const *shards, int nshards);

/* internal, shared by the broker's files */
struct broker *broker_of(struct au_shard *s);
int broker_owner_shard(const struct broker *b, uint32_t app, const uint8_t *cid, size_t len);
void broker_publish(struct broker *b, struct msg *m);                  /* fan out to every shard */
void broker_deliver_local(struct broker *b, struct msg *m);           /* match + deliver on this shard */
/* (session_* of deliver.c: deliver.h; of session.c: session.h; shared subscriptions: shared.h; packet
 * handlers: handle.h) */
void mqtt_send_disconnect(struct mqtt_conn *mc, uint8_t reason, const char *why);   /* mqtt_conn.c */
void mqtt_protocol_close(struct mqtt_conn *mc, uint8_t reason, const char *why);    /* mqtt_conn.c */

/* durability of publishes (broker.c) */
void ticket_done(struct broker *b, struct pub_ticket *t);
/* A part of t could not be made durable (a failed store write): its ack becomes a refusal. Call before that
 * part's ticket_done. */
void ticket_fail(struct pub_ticket *t);
struct pub_ticket *ticket_new(struct broker *b, struct pend_ack *a, int parts);
void ack_flush(struct session *s);
void ack_release_all(struct session *s);
/* Write packet pkt (a SUBACK/UNSUBACK) once the shard's pending store batch is durable, in order with the
 * session's other pending acknowledgements; wrote = the handler added writes to that batch (else: now). */
void ack_after_batch(struct broker *b, struct session *s, const uint8_t *pkt, size_t n, bool wrote);

#endif
