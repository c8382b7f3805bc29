/* imjson.h - the IM JSON layer: validate JMessage-compatible requests, render responses.
 *
 * Pure functions: no I/O, no global state, re-entrant. Parsers take (bytes, length), parse with
 * jansson (JSON_REJECT_DUPLICATES; non-UTF-8, NUL in strings, trailing garbage, integers beyond
 * int64 and reals that overflow are rejected by jansson) after checking the size and the nesting
 * depth (AU_IM_JSON_MAX_DEPTH) with a pre-scan, and copy what they accept into plain C structs with
 * fixed-size, NUL-terminated char arrays sized by the limits below: nothing in a parsed struct
 * points into the input or into jansson, and nothing needs freeing. The structs are large (a
 * message carries its 4 KiB body, a group create its 500 members): allocate them on the heap or in
 * a per-core context, not on an event-loop thread's stack.
 *
 * Parsers return 0 on success, -1 on refusal with *err filled: err->code is the JMessage code to
 * answer with (see errors.h) and err->msg a one-line detail naming the field. Unknown keys are
 * ignored; JSON null for an optional field is treated as absent.
 *
 * Renderers write compact JSON into a caller buffer with snprintf semantics: they return the
 * length the complete text needs (excluding the NUL); the text is complete and NUL-terminated only
 * when that is < cap (retry with a bigger buffer otherwise; cap 0 with buf NULL measures).
 * Strings are escaped; bytes that are not valid UTF-8 become U+FFFD so the output is always JSON.
 *
 * The wire shapes, field rules and the error codes of every endpoint are in docs/rest-api.md.
 */
#ifndef AU_IM_IMJSON_H
#define AU_IM_IMJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"
#include "gateway/im/errors.h"

/* ---- IM limits (JMessage's string rules; move to core/limits.h when convenient) ---- */
#ifndef AU_IM_USERNAME_MIN
#define AU_IM_USERNAME_MIN      4       /* bytes */
#define AU_IM_USERNAME_MAX      128     /* bytes; [A-Za-z0-9] then [A-Za-z0-9_.-@] */
#define AU_IM_PASSWORD_MIN      4       /* bytes, any characters */
#define AU_IM_PASSWORD_MAX      128
#define AU_IM_NICKNAME_MAX      64      /* bytes, no CR/LF */
#define AU_IM_STR_MAX           250     /* signature, region, address, group desc, display names, other strings */
#define AU_IM_EXTRAS_MAX        512     /* user extras: compact JSON object, bytes */
#define AU_IM_GROUP_NAME_MAX    64      /* bytes, no CR/LF */
#define AU_IM_MEDIA_ID_MAX      250     /* media_id / avatar, bytes */
#define AU_IM_SHORT_STR_MAX     32      /* media format, from_platform, device platform */
#define AU_IM_HASH_MAX          64      /* media hash */
#define AU_IM_APPKEY_LEN        24      /* [A-Za-z0-9] */
#define AU_IM_CLIENT_MSG_ID_MAX 64      /* client_msg_id: 1..64 of [A-Za-z0-9_.:-] */
#define AU_IM_MSG_BODY_MAX      4096    /* msg_body, bytes of its compact serialization */
#define AU_IM_MSG_JSON_MAX      16384   /* a whole message object as received (escapes inflate the body) */
#define AU_IM_REST_JSON_MAX     (4u << 20) /* any other REST JSON body (a 500-user batch) */
#define AU_IM_JSON_MAX_DEPTH    32      /* nesting of arrays/objects in any IM JSON input */
#define AU_IM_BATCH_MAX         500     /* users per register batch, names per userstat/blacklist/friends body */
#define AU_IM_LIST_COUNT_MAX    500     /* count of a users/groups/admins list page */
#define AU_IM_HISTORY_COUNT_MAX 1000    /* count of a history page */
#define AU_IM_HISTORY_SPAN_S    (7 * 86400) /* begin_time..end_time window of a history query */
#endif
#define AU_IM_DATETIME_LEN      19      /* "yyyy-MM-dd HH:mm:ss" */

_Static_assert(AU_IM_MSG_BODY_MAX < AU_IM_MSG_JSON_MAX, "a message must hold its body");
_Static_assert(AU_IM_MSG_JSON_MAX <= AU_MQTT_MAX_PACKET, "an im/send payload must fit an MQTT packet");
_Static_assert(AU_IM_REST_JSON_MAX <= AU_HTTP_MAX_BODY, "IM REST bodies must fit the HTTP body limit");
_Static_assert(AU_IM_BATCH_MAX >= AU_IM_MAX_GROUP_MEMBERS, "a member list fits one batch");

/* ---- errors from parsers ---- */
#define IM_ERR_MSG_MAX 160
struct im_err {
    int code;                   /* enum im_code */
    char msg[IM_ERR_MSG_MAX];   /* detail, e.g. "msg_body.width: must be an integer" */
};

/* Where a message object came from: decides the error family (803xxx vs 899xxx) and the
 * from_type / required-field rules (docs/rest-api.md "Message object"). */
enum im_src { IM_SRC_DEVICE = 1, IM_SRC_REST = 2 };

/* ---- small validators and helpers ---- */
bool im_username_valid(const char *s, size_t len);
bool im_password_valid(const char *s, size_t len);
/* Decimal group id, 1..INT64_MAX, no sign/leading zero/spaces. */
bool im_gid_parse(const char *s, size_t len, uint64_t *gid);
/* "yyyy-MM-dd HH:mm:ss" (UTC) -> Unix seconds. Also "yyyy-MM-dd" when date_only_ok. */
bool im_datetime_parse(const char *s, size_t len, bool date_only_ok, int64_t *unix_s);
/* Unix milliseconds -> "yyyy-MM-dd HH:mm:ss" (UTC); out holds AU_IM_DATETIME_LEN + 1. */
void im_datetime_format(uint64_t unix_ms, char out[AU_IM_DATETIME_LEN + 1]);

/* ---- JSON writer (used by every renderer; exposed for handlers composing responses) ---- */
#define IM_JW_MAX_DEPTH 32
struct im_jw {
    char *buf;
    size_t cap;
    size_t len;         /* bytes the full output needs so far (may exceed cap) */
    uint32_t depth;
    bool after_key;
    uint64_t need_comma; /* bit d: a value was already written at depth d */
};
void im_jw_init(struct im_jw *w, char *buf, size_t cap);
void im_jw_obj_begin(struct im_jw *w);
void im_jw_obj_end(struct im_jw *w);
void im_jw_arr_begin(struct im_jw *w);
void im_jw_arr_end(struct im_jw *w);
void im_jw_key(struct im_jw *w, const char *key);
void im_jw_str(struct im_jw *w, const char *s);
void im_jw_strn(struct im_jw *w, const char *s, size_t n);
void im_jw_u64(struct im_jw *w, uint64_t v);
void im_jw_i64(struct im_jw *w, int64_t v);
void im_jw_bool(struct im_jw *w, bool v);
void im_jw_null(struct im_jw *w);
/* A value that is already JSON text (e.g. a stored msg_body or a pre-rendered message). */
void im_jw_raw(struct im_jw *w, const char *json, size_t n);
/* NUL-terminates (when it fits) and returns the needed length; asserts the nesting is closed. */
size_t im_jw_finish(struct im_jw *w);

/* ======================================================================================
 * Messages (JMessage message object: POST /v1/messages body, MQTT im/send payload,
 * im/inbox delivery, history entries)
 * ====================================================================================== */
enum im_target_type { IM_TARGET_SINGLE = 1, IM_TARGET_GROUP = 2 };
enum im_from_type { IM_FROM_NONE = 0, IM_FROM_USER = 1, IM_FROM_ADMIN = 2 };
enum im_msg_type {
    IM_MSG_TEXT = 1, IM_MSG_IMAGE, IM_MSG_VOICE, IM_MSG_FILE, IM_MSG_VIDEO, IM_MSG_LOCATION,
    IM_MSG_CUSTOM,
};

struct im_msg {
    enum im_target_type target_type;
    enum im_from_type from_type;    /* IM_FROM_NONE: a device left it out, the server sets USER */
    enum im_msg_type msg_type;
    uint64_t target_gid;            /* group target: the gid (target_id holds it in decimal); else 0 */
    uint64_t create_time;           /* sender's create_time (Unix seconds), 0 when absent */
    bool no_offline;                /* REST option: do not keep for offline devices */
    bool no_notification;           /* REST option: no notification-bar display */
    bool has_notification;          /* REST: notification {title, alert} given */
    uint32_t body_len;
    char target_id[AU_IM_USERNAME_MAX + 1];   /* username, or decimal gid */
    char target_name[AU_IM_STR_MAX + 1];
    char target_appkey[AU_IM_APPKEY_LEN + 1]; /* "" or the (own) appkey; the handler compares */
    char from_id[AU_IM_USERNAME_MAX + 1];     /* "" when a device left it out: server fills */
    char from_name[AU_IM_STR_MAX + 1];
    char from_platform[AU_IM_SHORT_STR_MAX + 1];
    char from_appkey[AU_IM_APPKEY_LEN + 1];
    char client_msg_id[AU_IM_CLIENT_MSG_ID_MAX + 1]; /* "" = none; de-duplication key per sender */
    char notif_title[AU_IM_STR_MAX + 1];
    char notif_alert[AU_IM_STR_MAX + 1];
    char body[AU_IM_MSG_BODY_MAX + 1];  /* msg_body as compact JSON (key order kept), validated */
};

const char *im_target_type_name(enum im_target_type t);
const char *im_from_type_name(enum im_from_type t);
const char *im_msg_type_name(enum im_msg_type t);

/* Validate a message object. src picks the error codes (803xxx / 899xxx) and the rules:
 * device: from_type must be "user" (or absent), from_id may be absent; rest: from_type must be
 * "admin" ("user"/"robot" -> 899016), from_id required. */
int im_msg_parse(const char *json, size_t len, enum im_src src, struct im_msg *out,
                 struct im_err *err);

/* JMessage's cross-app fields: true when target_appkey or from_appkey is set and is not `own_key` (the
 * sender's app). Aurora has no cross-app messaging: the caller refuses such a message (REST 899020, device
 * 803006); naming the own app is accepted, as if the field were absent. */
bool im_msg_names_other_app(const struct im_msg *m, const char *own_key);

/* im_msg_parse, then the stored form in the same pass (im/send: parsed and rendered once): the
 * sender's object with its key order kept, "from_type" / "from_id" / "version" set to from_type /
 * from_id / 1 (in place when present), the keys the server sets (msgid, msg_ctime, create_time,
 * sequence) removed, as compact JSON into *canon (malloc'd, NUL-terminated; caller frees).
 * out->from_id / from_type are what the sender wrote (the caller checks them). -1 with err set. */
int im_msg_parse_canon(const char *json, size_t len, enum im_src src, enum im_from_type from_type,
                       const char *from_id, struct im_msg *out, struct im_err *err, char **canon,
                       size_t *canon_len);
/* Bytes im_msg_canon_finish adds at most: ,"msgid":N,"msg_ctime":N,"create_time":N,"sequence":N} + NUL. */
#define IM_MSG_SERVER_FIELDS_MAX (sizeof ",\"msgid\":,\"msg_ctime\":,\"create_time\":,\"sequence\":}" + 4 * 20 + 1)
/* The delivered form of a canonical object (im_msg_parse_canon output): its bytes with the server's
 * fields appended before the closing brace, in this order: msgid, msg_ctime, create_time (seconds),
 * sequence. out may be canon itself (memmove); cap >= len + IM_MSG_SERVER_FIELDS_MAX. Returns the
 * length (NUL-terminated). */
size_t im_msg_canon_finish(const char *canon, size_t len, uint64_t msgid, uint64_t ctime_ms, uint64_t seq,
                           char *out, size_t cap);

/* The delivered form (im/inbox, history, REST callbacks): every JMessage field plus msgid,
 * msg_ctime (ms), create_time (s; the sender's if it gave one, else ctime_ms / 1000), msg_level 0,
 * sequence (per conversation) and client_msg_id when set. Requires from_type and from_id set. */
size_t im_msg_render(const struct im_msg *m, uint64_t msgid, uint64_t ctime_ms, uint64_t seq,
                     char *buf, size_t cap);
/* The same into a malloc'd NUL-terminated string (caller frees); NULL on allocation failure. */
char *im_msg_render_alloc(const struct im_msg *m, uint64_t msgid, uint64_t ctime_ms, uint64_t seq,
                          size_t *len_out);
/* POST /v1/messages answer: {"msg_id":N,"msg_ctime":MS} */
size_t im_msg_sent_render(uint64_t msgid, uint64_t ctime_ms, char *buf, size_t cap);
/* History page: {"total":T,"cursor":"..","count":n,"messages":[msgs...]} where msgs[i] are
 * pre-rendered messages (im_msg_render output). cursor NULL/"" omits the key. */
size_t im_history_render(uint64_t total, const char *cursor, const char *const *msgs,
                         const size_t *lens, size_t n, char *buf, size_t cap);

/* ---- events on im/inbox ---- */
enum im_event_type {
    IM_EV_CREATE_GROUP = 1, IM_EV_ADD_MEMBERS, IM_EV_REMOVE_MEMBERS, IM_EV_EXIT_GROUP,
    IM_EV_UPDATE_GROUP, IM_EV_DELETE_GROUP, IM_EV_MSG_RETRACT, IM_EV_SEND_ERROR,
};
struct im_event {
    enum im_event_type type;
    uint64_t gid;                   /* group events */
    uint64_t msgid;                 /* msg_retract: the retracted message */
    uint64_t ctime_ms;
    const char *from_username;      /* who did it ("" / NULL: the server/admin API) */
    const char *group_name;         /* create_group / update_group (optional) */
    const char *const *usernames;   /* members concerned (create/add/remove/exit) */
    size_t n_usernames;
    int err_code;                   /* send_error */
    const char *err_message;        /* send_error; NULL = default message */
    const char *client_msg_id;      /* send_error / msg_retract (optional) */
};
const char *im_event_type_name(enum im_event_type t);
/* {"event":"add_members","gid":..,"from_username":..,"usernames":[..],"ctime":..,"sequence":..}
 * Pointers in ev are read only during the call. */
size_t im_event_render(const struct im_event *ev, uint64_t seq, char *buf, size_t cap);

/* ======================================================================================
 * Users and admins
 * ====================================================================================== */
#define IM_PF_NICKNAME  (1u << 0)
#define IM_PF_AVATAR    (1u << 1)
#define IM_PF_BIRTHDAY  (1u << 2)
#define IM_PF_GENDER    (1u << 3)
#define IM_PF_SIGNATURE (1u << 4)
#define IM_PF_REGION    (1u << 5)
#define IM_PF_ADDRESS   (1u << 6)
#define IM_PF_EXTRAS    (1u << 7)

struct im_profile {
    uint32_t set;                           /* IM_PF_* of the fields present */
    int gender;                             /* 0 unknown, 1 male, 2 female */
    char nickname[AU_IM_NICKNAME_MAX + 1];
    char avatar[AU_IM_MEDIA_ID_MAX + 1];
    char birthday[AU_IM_DATETIME_LEN + 1];  /* normalised "yyyy-MM-dd HH:mm:ss", "" = cleared */
    char signature[AU_IM_STR_MAX + 1];
    char region[AU_IM_STR_MAX + 1];
    char address[AU_IM_STR_MAX + 1];
    char extras[AU_IM_EXTRAS_MAX + 1];      /* compact JSON object */
};

/* One item of a register batch. err.code == 0: valid; else the item's error (the handler may
 * later set 899001 when the username is taken). username holds the given name even when invalid
 * (cut to AU_IM_USERNAME_MAX bytes at a character boundary), "" when it was not a string. */
struct im_user_reg {
    struct im_err err;
    char username[AU_IM_USERNAME_MAX + 1];
    char password[AU_IM_PASSWORD_MAX + 1];
    struct im_profile profile;
};

struct im_name { char s[AU_IM_USERNAME_MAX + 1]; };

/* POST /v1/users/: a JSON array of 1..AU_IM_BATCH_MAX user objects. Returns -1 only for the
 * whole request (not an array, empty, too long: 899013, bad JSON); items carry their own errors.
 * cap: room in items (n > cap is 899013). */
int im_users_reg_parse(const char *json, size_t len, struct im_user_reg *items, size_t cap,
                       size_t *n, struct im_err *err);
/* POST /v1/admins/: one user object. */
int im_admin_reg_parse(const char *json, size_t len, struct im_user_reg *out, struct im_err *err);
/* Register answer: [{"username":"a"},{"username":"b","error":{"code":899001,"message":".."}}] */
size_t im_users_reg_render(const struct im_user_reg *items, size_t n, char *buf, size_t cap);

/* PUT /v1/users/{u}: profile fields; at least one known field. */
int im_user_update_parse(const char *json, size_t len, struct im_profile *out, struct im_err *err);
/* PUT /v1/users/{u}/password: {"new_password":".."} */
int im_password_parse(const char *json, size_t len, char out[AU_IM_PASSWORD_MAX + 1],
                      struct im_err *err);
/* A JSON array of 1..cap usernames (POST /v1/users/userstat, blacklist PUT/DELETE, friends
 * POST/DELETE). cap is at most AU_IM_BATCH_MAX; more -> 899013. Duplicates are kept. */
int im_usernames_parse(const char *json, size_t len, struct im_name *out, size_t cap, size_t *n,
                       struct im_err *err);

struct im_user {
    char username[AU_IM_USERNAME_MAX + 1];
    struct im_profile profile;
    uint64_t ctime_ms, mtime_ms;
};
/* User object: username, the profile fields that are set, mtime, ctime ("yyyy-MM-dd HH:mm:ss").
 * flag >= 0 adds "flag" (group member lists: 0 member, 1 owner); -1 omits it. */
size_t im_user_render(const struct im_user *u, int flag, char *buf, size_t cap);
/* {"total":T,"start":S,"count":n,"users":[...]} (users and admins lists) */
size_t im_user_list_render(uint64_t start, uint64_t total, const struct im_user *users, size_t n,
                           char *buf, size_t cap);
/* Bare array of user objects (blacklist, friends); flags NULL or one per user (member list). */
size_t im_users_render(const struct im_user *users, const int *flags, size_t n, char *buf,
                       size_t cap);

struct im_device_stat { bool login, online; char platform[AU_IM_SHORT_STR_MAX + 1]; };
struct im_userstat {
    const char *username;
    const struct im_device_stat *devices;
    size_t n_devices;
};
/* GET /v1/users/{u}/userstat: {"login":b,"online":b} */
size_t im_userstat_render(bool login, bool online, char *buf, size_t cap);
/* POST /v1/users/userstat: [{"username":"..","devices":[{"login":b,"online":b,"platform":"a"}]}] */
size_t im_userstats_render(const struct im_userstat *st, size_t n, char *buf, size_t cap);

/* ======================================================================================
 * Groups
 * ====================================================================================== */
#define IM_GF_NAME   (1u << 0)
#define IM_GF_DESC   (1u << 1)
#define IM_GF_AVATAR (1u << 2)
#define IM_GF_FLAG   (1u << 3)

#define IM_GROUP_PRIVATE 1
#define IM_GROUP_PUBLIC  2

struct im_group_create {
    uint32_t set;                          /* IM_GF_* given (name is always given) */
    int flag;                              /* IM_GROUP_PRIVATE (default) or IM_GROUP_PUBLIC */
    size_t n_members;
    char owner[AU_IM_USERNAME_MAX + 1];
    char name[AU_IM_GROUP_NAME_MAX + 1];
    char desc[AU_IM_STR_MAX + 1];
    char avatar[AU_IM_MEDIA_ID_MAX + 1];
    struct im_name members[AU_IM_MAX_GROUP_MEMBERS]; /* as given, duplicates refused (899011) */
};
/* POST /v1/groups/ */
int im_group_create_parse(const char *json, size_t len, struct im_group_create *out,
                          struct im_err *err);

struct im_group_update {
    uint32_t set;                          /* IM_GF_NAME/DESC/AVATAR given; at least one */
    char name[AU_IM_GROUP_NAME_MAX + 1];
    char desc[AU_IM_STR_MAX + 1];
    char avatar[AU_IM_MEDIA_ID_MAX + 1];
};
/* PUT /v1/groups/{gid} */
int im_group_update_parse(const char *json, size_t len, struct im_group_update *out,
                          struct im_err *err);

struct im_members_update {
    size_t n_add, n_remove;
    struct im_name add[AU_IM_MAX_GROUP_MEMBERS];
    struct im_name remove[AU_IM_MAX_GROUP_MEMBERS];
};
/* POST /v1/groups/{gid}/members: {"add":[..],"remove":[..]}, at least one of them non-empty. */
int im_members_update_parse(const char *json, size_t len, struct im_members_update *out,
                            struct im_err *err);

struct im_group {
    uint64_t gid;
    int flag;                              /* 1 private, 2 public */
    uint32_t max_members;                  /* "MaxMemberCount" */
    uint64_t ctime_ms, mtime_ms;
    const char *appkey;                    /* NULL/"" omits "appkey" */
    char owner[AU_IM_USERNAME_MAX + 1];
    char name[AU_IM_GROUP_NAME_MAX + 1];
    char desc[AU_IM_STR_MAX + 1];
    char avatar[AU_IM_MEDIA_ID_MAX + 1];
};
/* Group object (GET /v1/groups/{gid}, list entries): {"gid","name","desc"[,"appkey"],
 * "MaxMemberCount"[,"avatar"][,"owner_username"],"flag","mtime","ctime"} */
size_t im_group_render(const struct im_group *g, char *buf, size_t cap);
/* POST /v1/groups/ answer: {"gid","owner_username","name","members_username":[..],"desc",
 * "MaxMemberCount"[,"avatar"],"flag"} */
size_t im_group_created_render(const struct im_group *g, const struct im_name *members, size_t n,
                               char *buf, size_t cap);
/* {"total","start","count","groups":[...]} */
size_t im_group_list_render(uint64_t start, uint64_t total, const struct im_group *groups,
                            size_t n, char *buf, size_t cap);
/* GET /v1/users/{u}/groups/: bare array of group objects */
size_t im_groups_render(const struct im_group *groups, size_t n, char *buf, size_t cap);

/* ======================================================================================
 * Media
 * ====================================================================================== */
enum im_media_kind { IM_MEDIA_IMAGE = 1, IM_MEDIA_VOICE, IM_MEDIA_FILE };
/* ?type= of POST /v1/resource: "image" | "voice" | "file"; 0 when not one of them. */
enum im_media_kind im_media_kind_parse(const char *s, size_t len);
struct im_media {
    enum im_media_kind kind;
    uint32_t crc32;
    uint64_t fsize;
    uint32_t width, height;                /* image */
    char media_id[AU_IM_MEDIA_ID_MAX + 1];
    char format[AU_IM_SHORT_STR_MAX + 1];  /* image, voice ("" omits) */
    char fname[AU_IM_STR_MAX + 1];         /* file */
    char hash[AU_IM_HASH_MAX + 1];         /* optional, "" omits */
};
/* Upload answer: image {media_id,media_crc32,width,height,format,fsize}; voice {media_id,
 * media_crc32,format,fsize[,hash]}; file {media_id,media_crc32,fname,fsize[,hash]}. */
size_t im_media_render(const struct im_media *m, char *buf, size_t cap);
/* GET /v1/resource?mediaId= answer: {"url":".."} */
size_t im_media_url_render(const char *url, char *buf, size_t cap);

#endif
