/* im.h - the IM service: conversations, messages, delivery, offline replay. Record layouts shared by the
 * MQTT side (im.c) and the REST side (rest_*.c); keys in store/keyspace.h, all documented in docs/storage.md.
 *
 * Conversations are per app (every key, and the owner shard's in-memory state, is (app, conv)). A single chat
 * between the user incarnations lo <= hi (dir_user.uid, never reused, < IM_UID_MAX) has the exact id
 *   conv = hi * (hi + 1) / 2 + lo          (< 2^63: a bijection of the unordered pair; IM_CONV_SINGLE)
 * and a group chat conv = (1 << 63) | gid  (gids are never reused either)     (IM_CONV_GROUP).
 * Each conversation has one owner shard (im_conv_owner) that assigns its sequence numbers 1, 2, 3, ...
 *
 * Records (values):
 *   KS_IM_MSG    | app | conv | seq   -> v1 u8 | ctime_ms u64 | msgid u64 | kind u8 (0 message, 1 event)
 *                                        | from str16 | rendered JSON (rest): exactly what im/inbox delivers
 *   KS_IM_MSGID  | app | msgid        -> conv u64 | seq u64
 *   KS_IM_CONV   | app | conv         -> v1 u8 | type u8 | last_seq u64 | a str16 | b str16 (single) / gid u64 (group)
 *   KS_IM_UCONV  | app | uid | conv    -> (empty)       conversations a user takes part in (single chats)
 *   KS_IM_CURSOR | app | uid | device | conv -> seq u64   last sequence the user's device acknowledged
 *   KS_IM_CLIMSG | app | uid | client_msg_id -> msgid u64   (de-duplication of resends)
 * msgid = (unix ms << 22) | (shard << 16) | counter: unique, roughly time ordered. */
#ifndef AU_IM_H
#define AU_IM_H

#include "core/common.h"
#include "core/loop.h"

#define IM_CONV_GROUP_BIT (1ull << 63)
static inline bool im_conv_is_group(uint64_t conv) { return (conv & IM_CONV_GROUP_BIT) != 0; }
static inline uint64_t im_conv_group(uint64_t gid) { return IM_CONV_GROUP_BIT | gid; }
/* The single chat of two user incarnations (either order; both 1..IM_UID_MAX, gateway/im/dir.h). */
static inline uint64_t im_conv_single(uint64_t a, uint64_t b)
{
    uint64_t lo = a < b ? a : b, hi = a < b ? b : a;
    return hi * (hi + 1) / 2 + lo;
}
/* The other participant of single chat `conv` given one of them (0 when `uid` is not in it). */
uint64_t im_conv_single_peer(uint64_t conv, uint64_t uid);
/* The shard that sequences a conversation of an app. */
static inline int im_conv_owner(uint32_t app, uint64_t conv, int nshards)
{
    uint64_t h = conv ^ ((uint64_t)app * 0x9e3779b97f4a7c15ull);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (int)(h % (uint64_t)nshards);
}

enum im_msg_kind { IM_KIND_MESSAGE = 0, IM_KIND_EVENT = 1 };
#define IM_KIND_RETRACTED 0x80u /* flag on a stored message: taken back by its sender (never delivered again) */

/* A stored message record (KS_IM_MSG value), decoded; pointers point into the value. */
struct im_msg_rec {
    uint64_t ctime_ms, msgid;
    uint8_t kind;               /* enum im_msg_kind, possibly | IM_KIND_RETRACTED */
    const uint8_t *from, *json;
    uint16_t from_len;
    size_t json_len;
};
/* false for a damaged or unknown record. */
bool im_msg_rec_decode(const void *v, size_t vl, struct im_msg_rec *out);
/* The sequence number in a KS_IM_MSG key (prefix | app u32 | conv u64 | seq u64); 0 for a short key. */
static inline uint64_t im_msg_key_seq(const uint8_t *k, size_t kl)
{
    return kl < 21 ? 0 : ((uint64_t)au_rd32(k + 13) << 32) | au_rd32(k + 17);
}

/* A message to store and deliver, from a device (im/send) or the REST API (POST /v1/messages), or an event. */
struct im_send_req {
    uint32_t app;
    uint8_t kind;               /* enum im_msg_kind */
    uint8_t target_group;       /* 1: conv is a group */
    uint64_t gid;               /* group target */
    char from[129];             /* sender username ("" for system events) */
    char target[129];           /* single-chat peer */
    uint64_t from_uid;          /* the sender's incarnation (dir_user.uid; 0 for system events) */
    uint64_t target_uid;        /* single-chat peer's incarnation */
    char client_msg_id[65];     /* "" = none */
    char *json;                 /* the validated message object as JSON (server fields are added) */
    size_t json_len;
    uint8_t json_canon;         /* 1: json is im_msg_parse_canon output (compact, none of the server's keys):
                                 * they are appended (im_msg_canon_finish) instead of parsing it again */
    char *extra_recipients;     /* events: NUL-separated usernames that also get it (e.g. removed members);
                                 * resolved to their current incarnations by im_send on the submitting shard */
    size_t extra_len;
};

/* Result of a send. err = 0, or a negative code (IM_E* below). At shutdown a send whose shard stopped first
 * is cancelled: done(NULL, arg, IM_ECANCELED, 0, 0) runs on the main thread and must only release arg. */
typedef void (*im_send_done_fn)(struct au_shard *s, void *arg, int err, uint64_t msgid, uint64_t ctime_ms);
enum { IM_EDUP = 1 /* not an error: a resend; msgid is the original's */ };
enum { IM_ESTORE = -1, IM_ENOCONV = -2, IM_EBLACKLISTED = -3 /* the recipient blacklisted the sender */,
       IM_ECANCELED = -4 /* process shutdown: s is NULL, release arg only */ };

/* Store durably and deliver to every online device of the recipients; done runs on `from` once durable.
 * The request is consumed (json and extra_recipients freed). */
void im_send(struct au_shard *from, struct im_send_req *req, im_send_done_fn done, void *arg);

/* Per-shard start/stop: the "im" row of the gateway's lifecycle table (gateway/gateway.c). */
void im_shard_init(struct au_shard *s);
void im_shard_fini(struct au_shard *s);

#endif
