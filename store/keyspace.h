/* keyspace.h - the versioned keyspace of Aurora's LevelDB store: prefixes, key builders, and a
 * bounded byte writer/reader for record values. docs/storage.md documents every key and value.
 *
 * Keys: one prefix byte naming the family, then big-endian fixed-width integers (so numeric ranges
 * sort) and byte strings. A byte string that is followed by more key fields carries a u16 length
 * prefix (so "alice" and "alice2" never share a prefix scan); a string that ends the key does not.
 * Builders write into a caller buffer of at least KS_KEY_MAX bytes and return the key length.
 *
 * Values: binary records start with a one-byte record version (KS_V1); low-rate records (apps, users,
 * groups, media) are JSON objects (first byte '{'). A reader refuses a record version it does not know. */
#ifndef AU_STORE_KEYSPACE_H
#define AU_STORE_KEYSPACE_H

#include "core/common.h"
#include "store/store.h"

#include <string.h>

/* Format of the whole keyspace. Bump when a layout changes incompatibly; store_open refuses a DB
 * written by a newer format and (until migrations exist) any other one.
 * 2: per-user IM state keyed by the user's incarnation id (uid) instead of the username (1b, 1c, 1e),
 *    single-chat conversation ids exact from the two uids, user records carry "uid" (docs/storage.md). */
#define STORE_FORMAT_VERSION 2u

#define KS_STR_MAX     1024u   /* longest variable string in a key (topic, filter, client id, username) */
#define KS_KEY_MAX     (2u * KS_STR_MAX + 64u) /* longest key any builder makes (checked) */
_Static_assert(KS_KEY_MAX <= STORE_KEY_MAX, "keyspace keys must fit the store's key limit");
/* widest: prefix | app | str16 | kind | string (session subscription, client message id) */
_Static_assert(1 + 4 + 2 + KS_STR_MAX + 1 + KS_STR_MAX <= KS_KEY_MAX, "widest key must fit");

enum ks_prefix {
    KS_META          = 0x00, /* 0x00 | name                                   -> meta value */
    /* MQTT broker */
    KS_MQTT_RETAINED = 0x01, /* 0x01 | app u32 | topic                         -> retained record (binary) */
    KS_MQTT_SESSION  = 0x02, /* 0x02 | app u32 | cidlen u16 | cid | kind u8 ... (enum ks_sess_kind) */
    /* IM service (reserved; layouts in docs/storage.md) */
    KS_IM_APP        = 0x10, /* 0x10 | app u32                                 -> app record (JSON) */
    KS_IM_APPKEY     = 0x11, /* 0x11 | appkey (24 bytes)                       -> app u32 */
    KS_IM_USER       = 0x12, /* 0x12 | app u32 | username                      -> user record (JSON) */
    KS_IM_ADMIN      = 0x13, /* 0x13 | app u32 | username                      -> admin record (JSON) */
    KS_IM_GROUP      = 0x14, /* 0x14 | app u32 | gid u64                       -> group record (JSON) */
    KS_IM_GMEMBER    = 0x15, /* 0x15 | app u32 | gid u64 | username            -> membership (binary) */
    KS_IM_UGROUP     = 0x16, /* 0x16 | app u32 | ulen u16 | username | gid u64 -> membership (binary) */
    KS_IM_CONV       = 0x17, /* 0x17 | app u32 | conv u64                      -> conversation (binary) */
    KS_IM_CONVIDX    = 0x18, /* 0x18 | app u32 | type u8 | ids...              -> conv u64 */
    KS_IM_MSG        = 0x19, /* 0x19 | app u32 | conv u64 | seq u64            -> message (binary+JSON) */
    KS_IM_MSGID      = 0x1a, /* 0x1a | app u32 | msgid u64                     -> conv u64 | seq u64 */
    KS_IM_CLIMSG     = 0x1b, /* 0x1b | app u32 | uid u64 | client msg id       -> msgid u64 */
    KS_IM_CURSOR     = 0x1c, /* 0x1c | app u32 | uid u64 | dlen u16 | device | conv u64 -> acked seq u64 */
    KS_IM_MEDIA      = 0x1d, /* 0x1d | app u32 | media id                      -> media record (JSON) */
    KS_IM_UCONV      = 0x1e, /* 0x1e | app u32 | uid u64 | conv u64            -> (empty) user's conversations */
    KS_IM_COUNTER    = 0x1f, /* 0x1f | app u32 | name                          -> u64 (id allocators: gid, msgid) */
    KS_IM_BLACKLIST  = 0x20, /* 0x20 | app u32 | ulen u16 | owner | blocked    -> owner uid u64 | blocked uid u64 */
    KS_IM_BLACKLIST_REV = 0x21, /* 0x21 | app u32 | ulen u16 | blocked | owner -> (empty) reverse index */
    /* 0x22..0x2f reserved for IM, 0x30..0x3f for push (devices, tags, aliases). */
};

/* Kinds under one MQTT session: 0x02 | app | cidlen | cid | kind | ... */
enum ks_sess_kind {
    KS_SESS_RECORD = 0x01, /* (nothing more)        -> session record */
    KS_SESS_SUB    = 0x02, /* | filter              -> subscription record */
    KS_SESS_OUT    = 0x03, /* | seq u64             -> outgoing QoS 1/2 message (queued or in flight) */
    KS_SESS_QOS2IN = 0x04, /* | packet id u16       -> (empty) incoming QoS 2 id awaiting PUBREL */
    KS_SESS_WILL   = 0x05, /* (nothing more)        -> will message record */
};

/* Conversation index types (KS_IM_CONVIDX). */
enum ks_conv_type { KS_CONV_SINGLE = 1, KS_CONV_GROUP = 2 };

#define KS_V1 1u  /* first record version of every binary value */

/* ---- byte writer / reader ---- */

/* Writer into a fixed buffer: writes past cap set `err` and are dropped (check once at the end). */
struct ks_w {
    uint8_t *p;
    size_t len, cap;
    bool err;
};
static inline struct ks_w ks_w_init(uint8_t *buf, size_t cap) { return (struct ks_w){ buf, 0, cap, false }; }
static inline void ks_w_bytes(struct ks_w *w, const void *d, size_t n)
{
    if (w->err || n > w->cap - w->len) {
        w->err = true;
        return;
    }
    if (n) memcpy(w->p + w->len, d, n);
    w->len += n;
}
static inline void ks_w_u8(struct ks_w *w, uint8_t v) { ks_w_bytes(w, &v, 1); }
static inline void ks_w_u16(struct ks_w *w, uint16_t v)
{
    uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
    ks_w_bytes(w, b, 2);
}
static inline void ks_w_u32(struct ks_w *w, uint32_t v)
{
    uint8_t b[4];
    au_wr32(b, v);
    ks_w_bytes(w, b, 4);
}
static inline void ks_w_u64(struct ks_w *w, uint64_t v)
{
    uint8_t b[8];
    au_wr32(b, (uint32_t)(v >> 32));
    au_wr32(b + 4, (uint32_t)v);
    ks_w_bytes(w, b, 8);
}
/* u16 length + bytes (a string followed by more key fields, or a short value field). */
static inline void ks_w_str16(struct ks_w *w, const void *s, size_t n)
{
    if (n > 0xffff) {
        w->err = true;
        return;
    }
    ks_w_u16(w, (uint16_t)n);
    ks_w_bytes(w, s, n);
}
/* u32 length + bytes (value fields only). */
static inline void ks_w_str32(struct ks_w *w, const void *s, size_t n)
{
    if (n > UINT32_MAX) {
        w->err = true;
        return;
    }
    ks_w_u32(w, (uint32_t)n);
    ks_w_bytes(w, s, n);
}

/* Reader over untrusted bytes (the DB may be damaged): reads past the end set `err` and return 0 /
 * NULL; check err once after decoding. */
struct ks_r {
    const uint8_t *p;
    size_t len, off;
    bool err;
};
static inline struct ks_r ks_r_init(const void *buf, size_t len) { return (struct ks_r){ buf, len, 0, false }; }
static inline const uint8_t *ks_r_bytes(struct ks_r *r, size_t n)
{
    if (r->err || n > r->len - r->off) {
        r->err = true;
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += n;
    return p;
}
static inline uint8_t ks_r_u8(struct ks_r *r)
{
    const uint8_t *p = ks_r_bytes(r, 1);
    return p ? p[0] : 0;
}
static inline uint16_t ks_r_u16(struct ks_r *r)
{
    const uint8_t *p = ks_r_bytes(r, 2);
    return p ? au_rd16(p) : 0;
}
static inline uint32_t ks_r_u32(struct ks_r *r)
{
    const uint8_t *p = ks_r_bytes(r, 4);
    return p ? au_rd32(p) : 0;
}
static inline uint64_t ks_r_u64(struct ks_r *r)
{
    const uint8_t *p = ks_r_bytes(r, 8);
    return p ? ((uint64_t)au_rd32(p) << 32) | au_rd32(p + 4) : 0;
}
static inline const uint8_t *ks_r_str16(struct ks_r *r, uint16_t *n)
{
    *n = ks_r_u16(r);
    return ks_r_bytes(r, *n);
}
static inline const uint8_t *ks_r_str32(struct ks_r *r, uint32_t *n)
{
    *n = ks_r_u32(r);
    return ks_r_bytes(r, *n);
}
/* The rest of the buffer. */
static inline const uint8_t *ks_r_rest(struct ks_r *r, size_t *n)
{
    *n = r->err ? 0 : r->len - r->off;
    return ks_r_bytes(r, *n);
}
static inline bool ks_r_done(const struct ks_r *r) { return !r->err && r->off == r->len; }

/* ---- key builders (buf: KS_KEY_MAX bytes; AU_ASSERT on strings over KS_STR_MAX) ---- */

static inline size_t ks_fin(struct ks_w *w)
{
    AU_ASSERT(!w->err);
    return w->len;
}
static inline void ks_chk(size_t n) { AU_ASSERT(n <= KS_STR_MAX); }

/* 0x00 | name */
static inline size_t ks_meta(uint8_t *buf, const char *name)
{
    struct ks_w w = ks_w_init(buf, KS_KEY_MAX);
    size_t n = strlen(name);
    ks_chk(n);
    ks_w_u8(&w, KS_META);
    ks_w_bytes(&w, name, n);
    return ks_fin(&w);
}
#define KS_META_FORMAT "format"   /* value: u32 STORE_FORMAT_VERSION */
#define KS_META_CREATED "created" /* value: u64 wall-clock ms when the DB was made */

/* prefix | app: every key of one app in one family (scan with store_prefix_end). */
static inline size_t ks_app_prefix(uint8_t *buf, enum ks_prefix p, uint32_t app)
{
    struct ks_w w = ks_w_init(buf, KS_KEY_MAX);
    ks_w_u8(&w, (uint8_t)p);
    ks_w_u32(&w, app);
    return ks_fin(&w);
}

/* 0x01 | app | topic */
static inline size_t ks_retained(uint8_t *buf, uint32_t app, const void *topic, size_t tl)
{
    ks_chk(tl);
    struct ks_w w = ks_w_init(buf, KS_KEY_MAX);
    ks_w_u8(&w, KS_MQTT_RETAINED);
    ks_w_u32(&w, app);
    ks_w_bytes(&w, topic, tl);
    return ks_fin(&w);
}

/* 0x02 | app | cidlen | cid : every key of one session (prefix) */
static inline size_t ks_session_prefix(uint8_t *buf, uint32_t app, const void *cid, size_t cl)
{
    ks_chk(cl);
    struct ks_w w = ks_w_init(buf, KS_KEY_MAX);
    ks_w_u8(&w, KS_MQTT_SESSION);
    ks_w_u32(&w, app);
    ks_w_str16(&w, cid, cl);
    return ks_fin(&w);
}
/* ... | kind (KS_SESS_RECORD, KS_SESS_WILL; or the prefix of all SUB / OUT / QOS2IN keys) */
static inline size_t ks_session_kind(uint8_t *buf, uint32_t app, const void *cid, size_t cl, enum ks_sess_kind k)
{
    size_t n = ks_session_prefix(buf, app, cid, cl);
    buf[n] = (uint8_t)k;
    return n + 1;
}
static inline size_t ks_session_sub(uint8_t *buf, uint32_t app, const void *cid, size_t cl, const void *filter,
                                    size_t fl)
{
    ks_chk(fl);
    size_t n = ks_session_kind(buf, app, cid, cl, KS_SESS_SUB);
    memcpy(buf + n, filter, fl);
    return n + fl;
}
static inline size_t ks_session_out(uint8_t *buf, uint32_t app, const void *cid, size_t cl, uint64_t seq)
{
    size_t n = ks_session_kind(buf, app, cid, cl, KS_SESS_OUT);
    struct ks_w w = ks_w_init(buf + n, KS_KEY_MAX - n);
    ks_w_u64(&w, seq);
    return n + ks_fin(&w);
}
static inline size_t ks_session_qos2in(uint8_t *buf, uint32_t app, const void *cid, size_t cl, uint16_t pid)
{
    size_t n = ks_session_kind(buf, app, cid, cl, KS_SESS_QOS2IN);
    struct ks_w w = ks_w_init(buf + n, KS_KEY_MAX - n);
    ks_w_u16(&w, pid);
    return n + ks_fin(&w);
}

/* IM keys (reserved family layouts; the IM service may add builders beside these). */
static inline size_t ks_im_app(uint8_t *buf, uint32_t app) { return ks_app_prefix(buf, KS_IM_APP, app); }
static inline size_t ks_im_appkey(uint8_t *buf, const void *appkey, size_t n)
{
    ks_chk(n);
    struct ks_w w = ks_w_init(buf, KS_KEY_MAX);
    ks_w_u8(&w, KS_IM_APPKEY);
    ks_w_bytes(&w, appkey, n);
    return ks_fin(&w);
}
/* KS_IM_USER / KS_IM_ADMIN / KS_IM_MEDIA / KS_IM_COUNTER: prefix | app | name (name ends the key) */
static inline size_t ks_im_named(uint8_t *buf, enum ks_prefix p, uint32_t app, const void *name, size_t n)
{
    ks_chk(n);
    size_t k = ks_app_prefix(buf, p, app);
    memcpy(buf + k, name, n);
    return k + n;
}
/* KS_IM_USER | app | username (admin: KS_IM_ADMIN | app | username) */
static inline size_t ks_im_user(uint8_t *buf, uint32_t app, bool admin, const void *name, size_t n)
{
    return ks_im_named(buf, admin ? KS_IM_ADMIN : KS_IM_USER, app, name, n);
}
/* KS_IM_MEDIA | app | media id ("aurora/<type>/<hex>") */
static inline size_t ks_im_media(uint8_t *buf, uint32_t app, const void *id, size_t n)
{
    return ks_im_named(buf, KS_IM_MEDIA, app, id, n);
}
/* KS_IM_GROUP | app | gid ; KS_IM_CONV | app | conv ; KS_IM_MSGID | app | msgid ; KS_IM_GMEMBER prefix */
static inline size_t ks_im_id(uint8_t *buf, enum ks_prefix p, uint32_t app, uint64_t id)
{
    struct ks_w w = ks_w_init(buf, KS_KEY_MAX);
    ks_w_u8(&w, (uint8_t)p);
    ks_w_u32(&w, app);
    ks_w_u64(&w, id);
    return ks_fin(&w);
}
static inline size_t ks_im_gmember(uint8_t *buf, uint32_t app, uint64_t gid, const void *user, size_t ul)
{
    ks_chk(ul);
    size_t n = ks_im_id(buf, KS_IM_GMEMBER, app, gid);
    memcpy(buf + n, user, ul);
    return n + ul;
}
/* KS_IM_UGROUP | app | ulen | user [| id]. with_id = false gives the prefix of one user's keys. */
static inline size_t ks_im_str_id(uint8_t *buf, enum ks_prefix p, uint32_t app, const void *s, size_t sl, bool with_id,
                                  uint64_t id)
{
    ks_chk(sl);
    struct ks_w w = ks_w_init(buf, KS_KEY_MAX);
    ks_w_u8(&w, (uint8_t)p);
    ks_w_u32(&w, app);
    ks_w_str16(&w, s, sl);
    if (with_id) ks_w_u64(&w, id);
    return ks_fin(&w);
}
static inline size_t ks_im_str_tail(uint8_t *buf, enum ks_prefix p, uint32_t app, const void *s, size_t sl,
                                    const void *tail, size_t tl)
{
    ks_chk(sl);
    ks_chk(tl);
    struct ks_w w = ks_w_init(buf, KS_KEY_MAX);
    ks_w_u8(&w, (uint8_t)p);
    ks_w_u32(&w, app);
    ks_w_str16(&w, s, sl);
    ks_w_bytes(&w, tail, tl);
    return ks_fin(&w);
}
/* Per-user IM state, keyed by the user's incarnation id (never reused: a deleted user's keys are unreachable to
 * a later user of the same name). prefix | app | uid: every key of one user incarnation in that family. */
static inline size_t ks_im_uid_prefix(uint8_t *buf, enum ks_prefix p, uint32_t app, uint64_t uid)
{
    return ks_im_id(buf, p, app, uid);
}
/* KS_IM_UCONV | app | uid | conv */
static inline size_t ks_im_uconv(uint8_t *buf, uint32_t app, uint64_t uid, uint64_t conv)
{
    struct ks_w w = ks_w_init(buf, KS_KEY_MAX);
    ks_w_u8(&w, KS_IM_UCONV);
    ks_w_u32(&w, app);
    ks_w_u64(&w, uid);
    ks_w_u64(&w, conv);
    return ks_fin(&w);
}
/* KS_IM_CLIMSG | app | uid | client message id */
static inline size_t ks_im_climsg(uint8_t *buf, uint32_t app, uint64_t uid, const void *cmid, size_t cl)
{
    ks_chk(cl);
    size_t n = ks_im_id(buf, KS_IM_CLIMSG, app, uid);
    memcpy(buf + n, cmid, cl);
    return n + cl;
}
/* KS_IM_CURSOR | app | uid | dlen | device [| conv] (with_conv = false: the prefix of one device's cursors) */
static inline size_t ks_im_cursor(uint8_t *buf, uint32_t app, uint64_t uid, const void *dev, size_t dl, bool with_conv,
                                  uint64_t conv)
{
    ks_chk(dl);
    struct ks_w w = ks_w_init(buf, KS_KEY_MAX);
    ks_w_u8(&w, KS_IM_CURSOR);
    ks_w_u32(&w, app);
    ks_w_u64(&w, uid);
    ks_w_str16(&w, dev, dl);
    if (with_conv) ks_w_u64(&w, conv);
    return ks_fin(&w);
}
/* KS_IM_MSG | app | conv | seq (seq = 0 with `n = 13` is the conversation's prefix) */
static inline size_t ks_im_msg(uint8_t *buf, uint32_t app, uint64_t conv, uint64_t seq)
{
    struct ks_w w = ks_w_init(buf, KS_KEY_MAX);
    ks_w_u8(&w, KS_IM_MSG);
    ks_w_u32(&w, app);
    ks_w_u64(&w, conv);
    ks_w_u64(&w, seq);
    return ks_fin(&w);
}

/* Blacklists (docs/storage.md "REST API records"):
 *   KS_IM_BLACKLIST     | app u32 | ulen u16 | owner | blocked  -> owner uid u64 | blocked uid u64: `owner`
 *                                                                 blacklisted `blocked`
 *   KS_IM_BLACKLIST_REV | app u32 | ulen u16 | blocked | owner  -> (empty) reverse index (cleanup on user delete)
 * An entry holds only between the two incarnations in its value: one left behind by a deleted user (or naming
 * one) is ignored by every reader, so it never applies to a later user of the same name.
 * The message path refuses a single message from A to B (803008) when 0x20|app|B|A holds for B's and A's uids.
 * other = "" (xl 0) gives the prefix of one owner's (blocked user's) entries. */
#define KS_IM_BLACKLIST_VLEN 16u
static inline void ks_im_blacklist_value(uint8_t v[KS_IM_BLACKLIST_VLEN], uint64_t owner_uid, uint64_t blocked_uid)
{
    au_wr32(v, (uint32_t)(owner_uid >> 32));
    au_wr32(v + 4, (uint32_t)owner_uid);
    au_wr32(v + 8, (uint32_t)(blocked_uid >> 32));
    au_wr32(v + 12, (uint32_t)blocked_uid);
}
/* The entry's value is for these two incarnations. */
static inline bool ks_im_blacklist_holds(const void *v, size_t vl, uint64_t owner_uid, uint64_t blocked_uid)
{
    uint8_t w[KS_IM_BLACKLIST_VLEN];
    ks_im_blacklist_value(w, owner_uid, blocked_uid);
    return vl == KS_IM_BLACKLIST_VLEN && memcmp(v, w, KS_IM_BLACKLIST_VLEN) == 0;
}
static inline size_t ks_im_blacklist(uint8_t *buf, uint32_t app, const char *owner, size_t ol, const char *other,
                                     size_t xl)
{
    return ks_im_str_tail(buf, KS_IM_BLACKLIST, app, owner, ol, other, xl);
}
static inline size_t ks_im_blacklist_rev(uint8_t *buf, uint32_t app, const char *blocked, size_t bl,
                                         const char *owner, size_t ol)
{
    return ks_im_str_tail(buf, KS_IM_BLACKLIST_REV, app, blocked, bl, owner, ol);
}

/* ---- MQTT record values (binary, KS_V1) ---- */

/* Retained message: ver u8 | qos u8 | flags u8 (0) | stored_ms u64 | expire_ms u64 (wall clock, 0 =
 * never) | props str32 (MQTT 5 properties to forward, encoded, no length prefix) | payload (rest). */
struct ks_retained_rec {
    uint8_t qos;
    uint64_t stored_ms, expire_ms;
    const uint8_t *props, *payload;
    uint32_t props_len;
    size_t payload_len;
};
static inline size_t ks_retained_size(uint32_t props_len, size_t payload_len)
{
    return 3 + 8 + 8 + 4 + (size_t)props_len + payload_len;
}
static inline size_t ks_retained_encode(uint8_t *buf, size_t cap, const struct ks_retained_rec *r)
{
    struct ks_w w = ks_w_init(buf, cap);
    ks_w_u8(&w, KS_V1);
    ks_w_u8(&w, r->qos);
    ks_w_u8(&w, 0);
    ks_w_u64(&w, r->stored_ms);
    ks_w_u64(&w, r->expire_ms);
    ks_w_str32(&w, r->props, r->props_len);
    ks_w_bytes(&w, r->payload, r->payload_len);
    return w.err ? 0 : w.len;
}
/* 0, or -1 for a damaged / unknown record. Pointers point into v. */
static inline int ks_retained_decode(const void *v, size_t vl, struct ks_retained_rec *out)
{
    struct ks_r r = ks_r_init(v, vl);
    if (ks_r_u8(&r) != KS_V1) return -1;
    out->qos = ks_r_u8(&r);
    (void)ks_r_u8(&r);
    out->stored_ms = ks_r_u64(&r);
    out->expire_ms = ks_r_u64(&r);
    out->props = ks_r_str32(&r, &out->props_len);
    out->payload = ks_r_rest(&r, &out->payload_len);
    if (r.err || out->qos > 2) return -1;
    return 0;
}

#endif
