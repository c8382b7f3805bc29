/* limits.h - every limit of the gateway, named in one place.
 * Values here are compile-time ceilings and defaults; the ones marked (config) can be lowered
 * (never raised above the ceiling) in the config file. docs/configuration.md lists them all. */
#ifndef AU_LIMITS_H
#define AU_LIMITS_H

/* ---- shards and rings ---- */
#define AU_MAX_SHARDS              64      /* event-loop threads */
#define AU_RING_ENTRIES            4096    /* SQ entries per ring */
#define AU_RING_CQ_ENTRIES         65536   /* CQ entries per ring */
#define AU_FIXED_FILES_MAX         20000   /* ceiling of the sparse direct-descriptor table per ring */
#define AU_FIXED_FILES_RESERVE     64      /* slots kept free: accept pauses when fewer remain */
#define AU_LISTEN_BACKLOG          4096
#define AU_LISTEN_DEFER_ACCEPT_S   1       /* TCP_DEFER_ACCEPT: accept once the first bytes are there (a silent
                                            * client is accepted after about this long anyway) */
#define AU_ACCEPT_OVERSHOOT        32      /* connections taken past max_conns (accepted while a full shard's pause
                                            * takes effect, or by the last shard left listening when every shard is
                                            * full), only to be refused by the protocol (MQTT CONNACK server
                                            * unavailable) */
#define AU_ACCEPT_RESUME_GAP       64      /* a full shard accepts again below max_conns - min(this, max_conns / 8) */
#define AU_LISTEN_PROBE_MS         10000   /* wait for a previous instance's listening sockets to go */

/* ---- receive buffers (provided-buffer ring, multishot recv) ---- */
#define AU_RECV_BUF_SIZE           4096    /* bytes per provided buffer */
#define AU_RECV_BUF_COUNT          1024    /* buffers per shard (power of two) */
#define AU_RECV_BGID               1
#define AU_CONN_IN_MAX             (64u << 10) /* unconsumed input a connection may hold before receiving stops until
                                                * its protocol consumes it (au_conn_set_in_max; MQTT raises it to
                                                * max_packet + AU_MQTT_FIXED_HEADER_MAX but while a password is
                                                * verified) */

#define AU_HANDSHAKE_TIMEOUT_MS    10000   /* a transport handshake (TLS, test XOR) not finished by then: abort */
#define AU_XORT_FRAME_MAX          4096    /* test-only XOR transport: payload bytes per frame */
#define AU_XORT_BUF_MAX            (AU_CONN_IN_MAX + AU_XORT_FRAME_MAX + 2) /* its undecoded input bound */

/* ---- sending ---- */
#define AU_SEND_IOV_MAX            64      /* iovecs gathered into one sendmsg */
#define AU_SEND_QUEUE_BYTES        (8u << 20) /* (config) per-connection queued bytes before the slow-consumer policy applies */
#define AU_QOS0_QUEUE_BYTES        (256u << 10) /* QoS 0 is dropped past this much queued on a connection (min with send_queue_bytes): overload levels off instead of collapsing */

/* ---- cross-shard queues ---- */
#define AU_XQ_DEPTH                65536   /* entries per single-producer queue per shard pair (power of two) */

/* ---- worker pools (core/workpool.h: store threads, media io pool, auth pool) ---- */
#define AU_WP_WORKERS_MAX          8       /* threads of one pool (each takes one external producer id) */
#define AU_WP_IDLE_WAIT_MS         1000    /* an idle worker's futex wait is bounded by this (re-checks its queue) */
#define AU_WP_CLOSE_FLUSH_MS       5000    /* at close: how long a worker retries posting completions to a full queue */
#define AU_WP_DETACH_POLL_US       100     /* detach: pause between polls while the shard's jobs are still running */
#define AU_WP_SPIN_MAX             64      /* worker: spins on a half-done push before it yields */

/* ---- MQTT ---- */
#define AU_MQTT_MAX_PACKET         (1u << 20)  /* (config) maximum packet size accepted, bytes */
#define AU_MQTT_MAX_PACKET_CEIL    (256u << 20) /* protocol ceiling: 268,435,455 */
#define AU_MQTT_FIXED_HEADER_MAX   5       /* type byte + at most 4 bytes of remaining length */
#define AU_MQTT_MAX_TOPIC          1024    /* (config) topic / filter length, bytes (protocol allows 65535) */
#define AU_MQTT_MAX_TOPIC_LEVELS   64      /* levels in one topic / filter */
#define AU_MQTT_MAX_CLIENT_ID      256     /* client identifier length, bytes */
#define AU_MQTT_MAX_SUBS           256     /* (config) subscriptions per session */
#define AU_MQTT_MAX_INFLIGHT       256     /* (config) outgoing QoS 1/2 messages awaiting ack, per session (== our receive-maximum towards clients) */
#define AU_MQTT_RECEIVE_MAX        256     /* (config) incoming QoS 1/2 in flight we allow a client (our Receive Maximum) */
#define AU_MQTT_MAX_QUEUED_MSGS    1000    /* (config) messages queued for an offline or full-window session */
#define AU_MQTT_TOPIC_ALIAS_MAX    64      /* (config) topic aliases a client may use towards us */
#define AU_MQTT_MAX_USER_PROPS     32      /* user properties per packet */
#define AU_MQTT_MAX_SUB_IDS        16      /* subscription identifiers attached to one delivery */
#define AU_MQTT_CONNECT_TIMEOUT_MS 10000   /* (config) time from TCP accept to a complete CONNECT */
#define AU_MQTT_CONNECT_FREE       (16u << 10) /* a CONNECT up to this size is received without the budget below */
#define AU_MQTT_CONNECT_BUDGET     (64u << 20) /* (config) bytes of larger CONNECTs being received (or waiting for
                                                * their password check), all connections together */
#define AU_MQTT_DEFAULT_KEEPALIVE  60      /* seconds, when a client asks 0 and server keep-alive is forced */
#define AU_MQTT_MAX_KEEPALIVE      65535   /* (config) server keep-alive ceiling; above it, MQTT 5 clients are told the lower value */
#define AU_MQTT_MAX_SESSION_EXPIRY 86400u * 7u /* (config) seconds a disconnected persistent session is kept */
#define AU_MQTT_PERSISTENT_SESSION_EXPIRY (86400u * 7u) /* (config) default expiry of 3.1.1 clean-session-0 sessions */
#define AU_MQTT_MAX_WILL_DELAY     86400u  /* seconds */
#define AU_MQTT_MAX_RETAINED       1000000 /* (config) retained messages per app */
#define AU_MQTT_RETAINED_BYTES     (64u << 20) /* (config) retained bytes (topic + properties + payload) per app */
#define AU_CONFIG_MIN_RETAINED_BYTES 1024  /* lowest accepted max_retained_bytes */
#define AU_EXT_QUEUE_HARD_MAX      20000   /* messages of a broker extension (IM) queued for one device before it is disconnected (slow consumer) */

/* ---- HTTP ---- */
#define AU_HTTP_MAX_HEADERS        64
#define AU_HTTP_MAX_HEADER_BYTES   16384   /* request line + headers */
#define AU_HTTP_MAX_BODY           (9u << 20) /* bodies (media upload 8 MB + multipart framing) */
#define AU_HTTP_IDLE_TIMEOUT_MS    60000   /* a kept-alive connection between requests (no byte of a next request) */
#define AU_HTTP_HEADER_TIMEOUT_MS  10000   /* (config) from the first byte of a request head to its end */
#define AU_HTTP_BODY_TIMEOUT_MS    10000   /* (config) a body's grace: it must be complete by end of head + this
                                            * + received bytes / http_body_min_rate */
#define AU_HTTP_BODY_MIN_RATE      8192    /* (config) bytes/s a body must average after its grace */
#define AU_HTTP_TIMEOUT_CEIL_MS    3600000 /* highest accepted http_*_timeout_ms */
#define AU_HTTP_PREAUTH_BODY_MAX   (16u << 10) /* a larger (or chunked) body is read only once its head passed the
                                                * body gate (REST: valid app or operator credentials) */
#define AU_HTTP_BODY_BUDGET        (256u << 20) /* (config) request heads + bodies buffered by all connections */
#define AU_CONFIG_MIN_BODY_BUDGET  (AU_HTTP_MAX_BODY + AU_HTTP_MAX_HEADER_BYTES) /* one largest request fits */
#define AU_HTTP_MAX_PIPELINE       64      /* requests parsed from one read before yielding */

/* ---- IM (config) ---- */
#define AU_IM_MAX_GROUP_MEMBERS    500     /* (config) members per group */
#define AU_IM_MAX_GROUPS_PER_USER  100     /* (config) groups one user may be in */
#define AU_IM_OFFLINE_MSGS         100     /* (config) latest messages kept per conversation for offline devices */
#define AU_IM_OFFLINE_DAYS         15      /* (config) days offline messages are kept */
#define AU_IM_EVENT_DAYS           7       /* (config) days offline events are kept */

/* ---- logins and the auth workers (gateway/im/throttle.h, gateway/im/authpool.h, docs/auth.md) ---- */
#define AU_LOGIN_USER_PENDING_MAX  4       /* password checks of one app+username in flight, per shard (a guess counts
                                            * against the failure budget from the moment it is admitted) */
#define AU_LOGIN_IP_PENDING_MAX    4       /* password checks from one peer address in flight, per shard */
#define AU_LOGIN_PARKED_MAX        256     /* logins per shard waiting for those caps (queued, not refused: they run
                                            * when a check of their account or address ends); beyond it refused */
#define AU_AUTHPOOL_SHARD_INFLIGHT 1       /* per worker thread: requests one shard keeps at the workers; the rest
                                            * wait in the shard's per-app queues (fair: served round robin) */
#define AU_AUTHPOOL_FLOWS          256     /* per shard: queues by (app, kind) (kind: login check / new hash); apps
                                            * whose ids collide share one queue */
#define AU_AUTHPOOL_FLOW_MAX_PENDING 256   /* requests of one queue accepted, not yet answered, per shard; beyond it
                                            * a submit is refused (-EAGAIN: "server busy") */

/* ---- configuration (core/config.c) ---- */
#define AU_CONFIG_ADDR_MAX         128     /* listen address string, bytes incl. NUL */
#define AU_CONFIG_PATH_MAX         1024    /* data_dir / tls paths, bytes incl. NUL */
#define AU_CONFIG_FILE_MAX         (1u << 20) /* config file size */
#define AU_CONFIG_LINE_MAX         8192    /* one config line */
#define AU_CONFIG_MAX_ACL_RULES    10000   /* acl lines */
#define AU_CONFIG_ACL_USER_MAX     256     /* username in an acl rule, bytes */
#define AU_CONFIG_MIN_PACKET       128     /* lowest accepted max_packet */
#define AU_CONFIG_MIN_SEND_QUEUE   4096    /* lowest accepted send_queue_bytes */
#define AU_CONFIG_MIN_CONNECT_TIMEOUT_MS 100
#define AU_CONFIG_MAX_CONNECTIONS  (AU_MAX_SHARDS * (AU_FIXED_FILES_MAX - AU_FIXED_FILES_RESERVE))

_Static_assert((AU_RECV_BUF_COUNT & (AU_RECV_BUF_COUNT - 1)) == 0, "buffer ring size must be a power of two");
_Static_assert((AU_XQ_DEPTH & (AU_XQ_DEPTH - 1)) == 0, "queue depth must be a power of two");
_Static_assert(AU_MQTT_MAX_PACKET <= AU_MQTT_MAX_PACKET_CEIL, "packet limit above ceiling");
_Static_assert(AU_MQTT_MAX_TOPIC <= 65535, "MQTT strings are 16-bit length prefixed");
_Static_assert(AU_FIXED_FILES_RESERVE < AU_FIXED_FILES_MAX, "reserve must leave room");
_Static_assert(AU_ACCEPT_OVERSHOOT < AU_FIXED_FILES_RESERVE, "over-limit connections need reserved slots");
_Static_assert(AU_MQTT_MAX_INFLIGHT <= 65535, "packet ids are 16 bit");

#endif
