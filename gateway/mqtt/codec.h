/* codec.h - MQTT 3.1.1 / 5.0 wire codec: pure functions over bytes.
 *
 * Parsing never allocates and never reads past `len`; strings and binaries in the parsed
 * structures point into the caller's buffer (zero copy), so the buffer must outlive their use.
 * Parse results:  > 0  bytes consumed (one whole packet)
 *                 = 0  need more bytes
 *                 < 0  -(MQTT 5 reason code): -MQTT_RC_MALFORMED, -MQTT_RC_PROTOCOL_ERROR,
 *                      -MQTT_RC_PACKET_TOO_LARGE, -MQTT_RC_UNSUPPORTED_VERSION, ...
 * Encoders write into a caller buffer of `cap` bytes and return the bytes written, or 0 when
 * `cap` is too small (callers size with the matching *_size function or a generous stack buffer).
 */
#ifndef AU_MQTT_CODEC_H
#define AU_MQTT_CODEC_H

#include "core/common.h"
#include "core/limits.h"

enum mqtt_version { MQTT_V31 = 3, MQTT_V311 = 4, MQTT_V5 = 5 };

/* Largest value of a variable byte integer (remaining length, property length, subscription id). */
#define MQTT_VARINT_MAX 268435455u

enum mqtt_type {
    MQTT_CONNECT = 1, MQTT_CONNACK, MQTT_PUBLISH, MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL,
    MQTT_PUBCOMP, MQTT_SUBSCRIBE, MQTT_SUBACK, MQTT_UNSUBSCRIBE, MQTT_UNSUBACK,
    MQTT_PINGREQ, MQTT_PINGRESP, MQTT_DISCONNECT, MQTT_AUTH
};

/* MQTT 5 reason codes (also used internally as error codes). */
enum mqtt_rc {
    MQTT_RC_SUCCESS = 0x00, MQTT_RC_GRANTED_QOS1 = 0x01, MQTT_RC_GRANTED_QOS2 = 0x02,
    MQTT_RC_DISCONNECT_WITH_WILL = 0x04, MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
    MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11, MQTT_RC_CONTINUE_AUTH = 0x18, MQTT_RC_REAUTHENTICATE = 0x19,
    MQTT_RC_UNSPECIFIED = 0x80, MQTT_RC_MALFORMED = 0x81, MQTT_RC_PROTOCOL_ERROR = 0x82,
    MQTT_RC_IMPL_SPECIFIC = 0x83, MQTT_RC_UNSUPPORTED_VERSION = 0x84, MQTT_RC_CLIENT_ID_INVALID = 0x85,
    MQTT_RC_BAD_USER_PASS = 0x86, MQTT_RC_NOT_AUTHORIZED = 0x87, MQTT_RC_SERVER_UNAVAILABLE = 0x88,
    MQTT_RC_SERVER_BUSY = 0x89, MQTT_RC_BANNED = 0x8A, MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
    MQTT_RC_BAD_AUTH_METHOD = 0x8C, MQTT_RC_KEEPALIVE_TIMEOUT = 0x8D, MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
    MQTT_RC_TOPIC_FILTER_INVALID = 0x8F, MQTT_RC_TOPIC_NAME_INVALID = 0x90,
    MQTT_RC_PACKET_ID_IN_USE = 0x91, MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
    MQTT_RC_RECEIVE_MAX_EXCEEDED = 0x93, MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
    MQTT_RC_PACKET_TOO_LARGE = 0x95, MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
    MQTT_RC_QUOTA_EXCEEDED = 0x97, MQTT_RC_ADMIN_ACTION = 0x98, MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
    MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A, MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
    MQTT_RC_USE_ANOTHER_SERVER = 0x9C, MQTT_RC_SERVER_MOVED = 0x9D,
    MQTT_RC_SHARED_SUBS_NOT_SUPPORTED = 0x9E, MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
    MQTT_RC_MAX_CONNECT_TIME = 0xA0, MQTT_RC_SUB_IDS_NOT_SUPPORTED = 0xA1,
    MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED = 0xA2,
};

/* MQTT 3.1.1 CONNACK return codes. */
enum mqtt_v3_connack { MQTT3_ACCEPTED = 0, MQTT3_BAD_VERSION = 1, MQTT3_ID_REJECTED = 2,
                       MQTT3_SERVER_UNAVAILABLE = 3, MQTT3_BAD_USER_PASS = 4, MQTT3_NOT_AUTHORIZED = 5 };

/* The one place an MQTT 5 reason code becomes a 3.1.1 CONNACK return code:
 * 0x00->0, 0x84->1, 0x85->2, 0x86->4, server-side failures (0x80, 0x83, 0x88, 0x89, 0x8B, 0x97, 0x9C,
 * 0x9D, 0x9F)->3, everything else (0x87, 0x8A, 0x8C, client faults)->5. Values 1..5, which are not
 * v5 CONNACK reasons, are returned unchanged, so mapping an already-mapped code is harmless. */
uint8_t mqtt_v3_connack_code(uint8_t v5_reason);
/* Human-readable reason string for a reason code ("Malformed Packet", ...): the MQTT 5 spec name
 * (0x00 is "Success"); "Unknown reason code" for values the spec does not define. */
const char *mqtt_rc_string(uint8_t rc);

/* MQTT 5 property identifiers. */
enum mqtt_prop_id {
    MQTT_PROP_PAYLOAD_FORMAT = 0x01, MQTT_PROP_MESSAGE_EXPIRY = 0x02, MQTT_PROP_CONTENT_TYPE = 0x03,
    MQTT_PROP_RESPONSE_TOPIC = 0x08, MQTT_PROP_CORRELATION_DATA = 0x09, MQTT_PROP_SUB_ID = 0x0B,
    MQTT_PROP_SESSION_EXPIRY = 0x11, MQTT_PROP_ASSIGNED_CLIENT_ID = 0x12, MQTT_PROP_SERVER_KEEPALIVE = 0x13,
    MQTT_PROP_AUTH_METHOD = 0x15, MQTT_PROP_AUTH_DATA = 0x16, MQTT_PROP_REQ_PROBLEM_INFO = 0x17,
    MQTT_PROP_WILL_DELAY = 0x18, MQTT_PROP_REQ_RESPONSE_INFO = 0x19, MQTT_PROP_RESPONSE_INFO = 0x1A,
    MQTT_PROP_SERVER_REFERENCE = 0x1C, MQTT_PROP_REASON_STRING = 0x1F, MQTT_PROP_RECEIVE_MAX = 0x21,
    MQTT_PROP_TOPIC_ALIAS_MAX = 0x22, MQTT_PROP_TOPIC_ALIAS = 0x23, MQTT_PROP_MAX_QOS = 0x24,
    MQTT_PROP_RETAIN_AVAILABLE = 0x25, MQTT_PROP_USER = 0x26, MQTT_PROP_MAX_PACKET = 0x27,
    MQTT_PROP_WILDCARD_AVAILABLE = 0x28, MQTT_PROP_SUB_ID_AVAILABLE = 0x29,
    MQTT_PROP_SHARED_AVAILABLE = 0x2A,
};

/* Bit for property id `id` in mqtt_props.present (ids are < 64). */
#define MQTT_PBIT(id) (1ull << (id))

struct mqtt_str { const uint8_t *p; uint16_t len; };
struct mqtt_bin { const uint8_t *p; uint32_t len; };
struct mqtt_user_prop { struct mqtt_str key, val; };

/* Parsed (or to-be-encoded) MQTT 5 properties. A field is meaningful only when its bit is in
 * `present`. The parser rejects, as the spec requires, a property identifier that is not valid in
 * the packet it appears in (MQTT_RC_MALFORMED, MQTT 5 2.2.2.2), a duplicate of a property that may
 * appear once (MQTT_RC_PROTOCOL_ERROR), out-of-range values (PROTOCOL_ERROR; Topic Alias 0:
 * TOPIC_ALIAS_INVALID), Authentication Data without Authentication Method (PROTOCOL_ERROR), and more
 * than AU_MQTT_MAX_USER_PROPS user properties or AU_MQTT_MAX_SUB_IDS subscription identifiers
 * (MQTT_RC_IMPL_SPECIFIC). The parser sets the USER / SUB_ID bits when at least one is present.
 * Encoders write the single-valued properties whose bit is in `present`, and the user properties /
 * subscription identifiers whenever n_user / n_sub_ids > 0 (their `present` bits are not consulted).
 * Only the fields `present`, n_user, n_sub_ids (and raw/raw_len) are initialised by the parser. */
struct mqtt_props {
    uint64_t present;
    uint8_t payload_format, req_problem_info, req_response_info, max_qos;
    uint8_t retain_available, wildcard_available, sub_id_available, shared_available;
    uint16_t receive_max, topic_alias_max, topic_alias, server_keepalive;
    uint32_t message_expiry, session_expiry, will_delay, max_packet;
    struct mqtt_str content_type, response_topic, assigned_client_id, auth_method;
    struct mqtt_str reason_string, response_info, server_reference;
    struct mqtt_bin correlation_data, auth_data;
    uint32_t sub_ids[AU_MQTT_MAX_SUB_IDS];
    uint8_t n_sub_ids;
    uint8_t n_user;
    struct mqtt_user_prop user[AU_MQTT_MAX_USER_PROPS];
    /* Parsing only: the raw property bytes (after the length varint), for forwarding as-is. */
    const uint8_t *raw;
    uint32_t raw_len;
};

struct mqtt_connect {
    uint8_t version;                 /* MQTT_V31 / MQTT_V311 / MQTT_V5 */
    bool clean_start, will_flag, will_retain, has_username, has_password;
    uint8_t will_qos;
    uint16_t keepalive;
    struct mqtt_str client_id, will_topic, username;
    struct mqtt_bin will_payload, password;
    struct mqtt_props props, will_props;
};

struct mqtt_connack {
    bool session_present;
    uint8_t reason;                  /* v5 reason code, or 3.1.1 return code when version < 5 */
    struct mqtt_props props;
};

struct mqtt_publish {
    uint8_t qos;
    bool dup, retain;
    uint16_t packet_id;              /* 0 for QoS 0 */
    struct mqtt_str topic;           /* may be empty in v5 when a topic alias is used */
    struct mqtt_props props;
    struct mqtt_bin payload;
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP (and the packet id of SUBACK/UNSUBACK). */
struct mqtt_ack {
    uint16_t packet_id;
    uint8_t reason;                  /* MQTT_RC_SUCCESS when absent */
    struct mqtt_props props;
};

/* SUBSCRIBE / UNSUBSCRIBE / SUBACK / UNSUBACK payloads are validated whole by the parser and
 * walked with an iterator; `count` entries. */
struct mqtt_subscribe {
    uint16_t packet_id;
    struct mqtt_props props;
    uint32_t count;
    const uint8_t *list;             /* payload bytes */
    uint32_t list_len;
};

struct mqtt_sub_entry {
    struct mqtt_str filter;
    uint8_t qos;                     /* max QoS requested */
    bool no_local, retain_as_published;
    uint8_t retain_handling;         /* 0, 1, 2 */
};

struct mqtt_suback {                 /* SUBACK and UNSUBACK */
    uint16_t packet_id;
    struct mqtt_props props;
    uint32_t count;
    const uint8_t *codes;            /* count reason/return codes (empty for 3.1.1 UNSUBACK) */
};

struct mqtt_disconnect {             /* DISCONNECT and AUTH */
    uint8_t reason;
    struct mqtt_props props;
};

struct mqtt_packet {
    uint8_t type;                    /* enum mqtt_type */
    uint8_t flags;                   /* low nibble of the fixed header */
    uint32_t remaining;              /* remaining length */
    union {
        struct mqtt_connect connect;
        struct mqtt_connack connack;
        struct mqtt_publish publish;
        struct mqtt_ack ack;
        struct mqtt_subscribe subscribe; /* SUBSCRIBE and UNSUBSCRIBE */
        struct mqtt_suback suback;       /* SUBACK and UNSUBACK */
        struct mqtt_disconnect disconnect; /* DISCONNECT and AUTH */
    } u;
};

/* Frame check: how long is the packet starting at buf?
 * Returns 1 and sets *total (fixed header + remaining length) when the fixed header is complete,
 * 0 when more header bytes are needed, -MQTT_RC_MALFORMED for a bad variable-length integer
 * (more than 4 bytes, or a non-minimal encoding such as 0x80 0x00), -MQTT_RC_PACKET_TOO_LARGE when
 * *total would exceed max_packet (already detected while the length bytes are incomplete, as soon
 * as the smallest value they can still encode is too large). max_packet 0 = no limit but the
 * protocol's. Only the length is checked here: type and flags are checked by mqtt_parse. */
int mqtt_frame(const uint8_t *buf, size_t len, uint32_t max_packet, uint32_t *total);

/* Parse one whole packet. `version` is the connection's negotiated version (ignored for CONNECT,
 * which carries its own); any value other than MQTT_V5 parses with the 3.1/3.1.1 rules (AUTH is
 * then a reserved type). Validates everything the spec makes a Malformed Packet or Protocol
 * Error: reserved flag bits, QoS 3, UTF-8 validity of strings (no U+0000, no surrogates, no
 * overlong forms), wildcard characters in topic names, empty filters, property ids/duplicates,
 * packet id 0 where one is required, trailing bytes, and so on. The main codes:
 *   MALFORMED: reserved type/flags, QoS 3, truncated or trailing fields, bad UTF-8, bad varints,
 *     CONNECT reserved flag / will rules / 3.1.1 password without user name, wildcard or (3.1.1)
 *     empty topic name, empty filter, SUBSCRIBE option reserved bits, property id not valid here.
 *   PROTOCOL_ERROR: packet id 0, v5 QoS 0 with DUP, v5 empty topic without Topic Alias, no filters
 *     in (UN)SUBSCRIBE, Retain Handling 3, No Local on a $share filter, reason code not valid for
 *     the packet, CONNACK session-present with a failure code, a protocol name that is neither
 *     "MQTT" nor "MQIsdp" (close without CONNACK).
 *   UNSUPPORTED_VERSION: "MQTT" with a level other than 4/5, or "MQIsdp" with a level other than 3.
 *   PACKET_TOO_LARGE: total size above max_packet (checked first, before any field is read).
 * For CONNECT, out->type is MQTT_CONNECT and out->u.connect.version is the protocol level byte as
 * soon as it has been read, also when an error is returned, so the caller can answer with a
 * CONNACK in the client's version. Not checked here (session state / policy): client id rules,
 * topic alias range, filter wildcard placement, Subscription Identifier sent by a client in
 * PUBLISH, payload UTF-8 when Payload Format Indicator = 1, AUTH without Authentication Method. */
int mqtt_parse(const uint8_t *buf, size_t len, int version, uint32_t max_packet,
               struct mqtt_packet *out);

/* Walk a parsed SUBSCRIBE (is_unsub=false) or UNSUBSCRIBE (is_unsub=true) list.
 * `*off` starts at 0; returns true and fills `e` (for UNSUBSCRIBE only e->filter) while entries remain. */
bool mqtt_sub_next(const struct mqtt_subscribe *s, int version, bool is_unsub, uint32_t *off,
                   struct mqtt_sub_entry *e);

/* UTF-8 validation per MQTT 1.5.4 (rejects U+0000, surrogates, overlongs; returns true if valid). */
bool mqtt_utf8_valid(const uint8_t *p, size_t len);

/* ---------------- encoding ---------------- */

/* Variable byte integer: bytes needed / write (returns bytes written, 1..4). */
size_t mqtt_varint_size(uint32_t v);
size_t mqtt_varint_write(uint8_t *out, uint32_t v);

/* Size of the encoded property block INCLUDING its length varint (1 for an empty block). */
size_t mqtt_props_size(const struct mqtt_props *p);
/* Write the property block (length varint + properties) from the fields marked in p->present. */
size_t mqtt_props_write(uint8_t *out, size_t cap, const struct mqtt_props *p);

/* PUBLISH in parts, for fan-out: the head is fixed header + remaining length + topic; the caller
 * then sends [packet id (2 bytes) if qos > 0] [property block if v5] [payload].
 * `tail_len` = (qos ? 2 : 0) + (v5 ? property block size : 0) + payload length. */
size_t mqtt_publish_head_size(uint16_t topic_len, uint32_t tail_len);
/* Exact size of the whole PUBLISH that mqtt_enc_publish writes (added to the original interface). */
size_t mqtt_publish_size(int version, uint8_t qos, uint16_t topic_len, const struct mqtt_props *props,
                         uint32_t payload_len);
size_t mqtt_enc_publish_head(uint8_t *out, size_t cap, uint8_t qos, bool retain, bool dup,
                             const uint8_t *topic, uint16_t topic_len, uint32_t tail_len);
/* Whole PUBLISH (props ignored for version < 5; NULL props = empty block). */
size_t mqtt_enc_publish(uint8_t *out, size_t cap, int version, uint8_t qos, bool retain, bool dup,
                        uint16_t packet_id, const uint8_t *topic, uint16_t topic_len,
                        const struct mqtt_props *props, const uint8_t *payload, uint32_t payload_len);

/* CONNACK. For version < 5, `reason` goes through mqtt_v3_connack_code (so a v5 reason or an
 * already-mapped 3.1.1 code both work) and props are ignored. session_present is sent as 0 with a
 * failure code, as the spec requires. */
size_t mqtt_enc_connack(uint8_t *out, size_t cap, int version, bool session_present, uint8_t reason,
                        const struct mqtt_props *props);
/* PUBACK/PUBREC/PUBREL/PUBCOMP. v5: reason and props omitted when SUCCESS and props empty; the
 * property length is omitted when only the reason is needed. */
size_t mqtt_enc_ack(uint8_t *out, size_t cap, int version, uint8_t type, uint16_t packet_id,
                    uint8_t reason, const struct mqtt_props *props);
/* SUBACK (codes = granted QoS / reason per filter) and UNSUBACK (codes ignored for < v5). */
size_t mqtt_enc_suback(uint8_t *out, size_t cap, int version, uint8_t type, uint16_t packet_id,
                       const uint8_t *codes, uint32_t n, const struct mqtt_props *props);
size_t mqtt_enc_pingresp(uint8_t *out, size_t cap);
size_t mqtt_enc_pingreq(uint8_t *out, size_t cap);
/* DISCONNECT (v5: reason + props, each omitted when not needed; < v5: the two-byte packet) and
 * AUTH (type = MQTT_AUTH, v5 only). */
size_t mqtt_enc_disconnect(uint8_t *out, size_t cap, int version, uint8_t type, uint8_t reason,
                           const struct mqtt_props *props);

/* Client side (load generator, tests). Encoders assert (programmer errors) QoS <= 2, packet id != 0
 * where one is required, n > 0 entries, and that the properties given are allowed in the packet. */
struct mqtt_connect_opts {
    uint8_t version;
    bool clean_start;
    uint16_t keepalive;
    const char *client_id, *username, *password;   /* NULL = absent */
    const char *will_topic;                          /* NULL = no will */
    const uint8_t *will_payload; uint32_t will_payload_len;
    uint8_t will_qos; bool will_retain;
    const struct mqtt_props *props, *will_props;     /* NULL = empty */
};
size_t mqtt_enc_connect(uint8_t *out, size_t cap, const struct mqtt_connect_opts *o);
/* SUBSCRIBE: n entries (filter + options); UNSUBSCRIBE: entries' filters only. */
size_t mqtt_enc_subscribe(uint8_t *out, size_t cap, int version, uint8_t type, uint16_t packet_id,
                          const struct mqtt_sub_entry *e, uint32_t n, const struct mqtt_props *props);

#endif
