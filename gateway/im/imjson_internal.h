/* imjson_internal.h - helpers shared by the imjson_*.c files (not part of the public API). */
#ifndef AU_IM_IMJSON_INTERNAL_H
#define AU_IM_IMJSON_INTERNAL_H

#include <jansson.h>

#include "gateway/im/imjson.h"

/* What went wrong, independent of the source; pctx maps it to a code. */
enum im_fail {
    IM_F_FORMAT,        /* bad JSON, wrong type, missing field, unknown enum, bad syntax/length */
    IM_F_TOO_LONG,      /* message body / whole message over its limit */
    IM_F_TARGET_USER,   /* single target_id cannot name a user */
    IM_F_TARGET_GROUP,  /* group target_id cannot name a group */
    IM_F_PERM,          /* from_type / from_id not allowed for this source */
};

struct pctx {
    enum im_src src;
    struct im_err *err;
};

int im_fail(struct pctx *c, enum im_fail k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int im_fail_code(struct pctx *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Size check, depth pre-scan, jansson load (JSON_REJECT_DUPLICATES). too_long_kind: the failure
 * reported when len > max_len. Returns NULL with the error set. */
json_t *im_load(struct pctx *c, const char *json, size_t len, size_t max_len,
                enum im_fail too_long_kind);

/* Field getters (im_get_str: out may be NULL to only check). Return 1 when present and valid, 0 when absent (or null) and not required,
 * -1 on error (set). where: prefix for messages ("" or "msg_body."). */
enum { IM_OPT = 0, IM_REQ = 1 };
enum im_str_rule {
    IM_S_ANY = 0,       /* any characters */
    IM_S_NO_CRLF,       /* no CR or LF */
    IM_S_TOKEN,         /* printable ASCII without spaces/quotes (media ids, formats) */
};
int im_get_str(struct pctx *c, json_t *obj, const char *where, const char *key, int req,
               size_t min, size_t max, enum im_str_rule rule, char *out, size_t *out_len);
int im_get_int(struct pctx *c, json_t *obj, const char *where, const char *key, int req,
               int64_t min, int64_t max, int64_t *out);
int im_get_num(struct pctx *c, json_t *obj, const char *where, const char *key, int req,
               double *out);
int im_get_bool(struct pctx *c, json_t *obj, const char *where, const char *key, int req,
                bool *out);
/* Object/array getters: *out borrowed from obj. */
int im_get_obj(struct pctx *c, json_t *obj, const char *where, const char *key, int req,
               json_t **out);
int im_get_arr(struct pctx *c, json_t *obj, const char *where, const char *key, int req,
               json_t **out);
/* Username field (syntax checked); k = failure kind for a bad one. */
int im_get_username(struct pctx *c, json_t *obj, const char *where, const char *key, int req,
                    enum im_fail k, char out[AU_IM_USERNAME_MAX + 1]);

/* Compact dump of an object/array into out (cap bytes incl. NUL). Returns the length, or
 * (size_t)-1 when it does not fit. */
size_t im_dump(json_t *v, char *out, size_t cap);

/* Copy at most max bytes of s (cut at a UTF-8 character boundary), NUL-terminated. */
void im_copy_cut(char *out, size_t max, const char *s, size_t len);

/* Parse a usernames array into out (refusing duplicates with dup_code when dup_code != 0). */
int im_names_from_array(struct pctx *c, json_t *arr, const char *what, struct im_name *out,
                        size_t cap, int too_many_code, int dup_code, size_t *n);

/* im/send's shortcut (imjson_fast.c): a device's text message validated and written in its stored form
 * (im_msg_parse_canon's output for src = device, from_type = user) in one pass without jansson. 1 = done
 * (out NUL-terminated, *out_len, m filled as im_msg_parse would); 0 = not handled here (possibly invalid):
 * the caller runs the general path, which decides. Never accepts what the general path refuses. */
int im_msg_canon_fast(const char *json, size_t len, const char *from_id, struct im_msg *m, char *out, size_t cap,
                      size_t *out_len);

/* Writer helpers. */
void im_jw_kstr(struct im_jw *w, const char *key, const char *s);
void im_jw_kstr_opt(struct im_jw *w, const char *key, const char *s); /* skipped when "" */
void im_jw_ku64(struct im_jw *w, const char *key, uint64_t v);
void im_jw_ktime(struct im_jw *w, const char *key, uint64_t unix_ms);
void im_jw_profile(struct im_jw *w, const struct im_profile *p);
void im_jw_error(struct im_jw *w, int code, const char *message);

#endif
