/* imjson_msg.c - JMessage message objects (parse, render), send answer, history page, events. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "gateway/im/imjson_internal.h"

const char *im_target_type_name(enum im_target_type t)
{
    switch (t) {
    case IM_TARGET_SINGLE: return "single";
    case IM_TARGET_GROUP:  return "group";
    }
    return "";
}

const char *im_from_type_name(enum im_from_type t)
{
    switch (t) {
    case IM_FROM_USER:  return "user";
    case IM_FROM_ADMIN: return "admin";
    case IM_FROM_NONE:  break;
    }
    return "";
}

static const char *const k_msg_types[] = {
    [IM_MSG_TEXT] = "text", [IM_MSG_IMAGE] = "image", [IM_MSG_VOICE] = "voice",
    [IM_MSG_FILE] = "file", [IM_MSG_VIDEO] = "video", [IM_MSG_LOCATION] = "location",
    [IM_MSG_CUSTOM] = "custom",
};

const char *im_msg_type_name(enum im_msg_type t)
{
    if ((unsigned)t < AU_ARRAY_LEN(k_msg_types) && k_msg_types[t])
        return k_msg_types[t];
    return "";
}

/* ---- msg_body rules per msg_type (docs/rest-api.md "Message bodies") ---- */
enum fty { F_STR, F_INT, F_NUM, F_OBJ };
#define RQ_DEV  1u  /* required when src = device */
#define RQ_REST 2u  /* required when src = rest */
#define RQ_ALL  3u

struct fspec {
    const char *key;
    enum fty type;
    unsigned req;
    int64_t min, max;           /* F_INT range; F_STR length range */
    enum im_str_rule rule;      /* F_STR */
    const struct fspec *sub;    /* F_OBJ: rules of the nested object (NULL: any object) */
};

#define S(k, rq, mn, mx, rl) { k, F_STR, rq, mn, mx, rl, NULL }
#define I(k, rq, mn, mx)     { k, F_INT, rq, mn, mx, IM_S_ANY, NULL }
#define N(k, rq)             { k, F_NUM, rq, 0, 0, IM_S_ANY, NULL }
#define O(k, rq, sb)         { k, F_OBJ, rq, 0, 0, IM_S_ANY, sb }
#define END                  { NULL, F_STR, 0, 0, 0, IM_S_ANY, NULL }

#define MEDIA_ID   S("media_id", RQ_ALL, 1, AU_IM_MEDIA_ID_MAX, IM_S_TOKEN)
#define MEDIA_CRC  I("media_crc32", RQ_ALL, 0, UINT32_MAX)
#define FSIZE      I("fsize", RQ_ALL, 0, INT64_MAX)
#define HASH       S("hash", 0, 0, AU_IM_HASH_MAX, IM_S_TOKEN)
#define EXTRAS     O("extras", 0, NULL)
#define DIM(k)     I(k, RQ_ALL, 0, INT32_MAX)

static const struct fspec k_file_object[] = {
    MEDIA_ID, MEDIA_CRC, FSIZE, S("fname", RQ_ALL, 1, AU_IM_STR_MAX, IM_S_NO_CRLF), HASH, END,
};
static const struct fspec k_image_object[] = {
    MEDIA_ID, MEDIA_CRC, S("format", RQ_ALL, 1, AU_IM_SHORT_STR_MAX, IM_S_TOKEN),
    DIM("width"), DIM("height"), FSIZE, HASH, END,
};
static const struct fspec k_body_text[] = {
    S("text", RQ_ALL, 1, AU_IM_MSG_BODY_MAX, IM_S_ANY), EXTRAS, END,
};
/* image.format: required by the REST send table, optional in the message protocol. */
static const struct fspec k_body_image[] = {
    MEDIA_ID, MEDIA_CRC, DIM("width"), DIM("height"),
    S("format", RQ_REST, 1, AU_IM_SHORT_STR_MAX, IM_S_TOKEN), FSIZE, HASH,
    S("img_link", 0, 0, AU_IM_STR_MAX, IM_S_TOKEN), EXTRAS, END,
};
/* voice.format: required in the message protocol, absent from the REST send table. */
static const struct fspec k_body_voice[] = {
    MEDIA_ID, MEDIA_CRC, I("duration", RQ_ALL, 0, INT32_MAX),
    S("format", RQ_DEV, 1, AU_IM_SHORT_STR_MAX, IM_S_TOKEN), FSIZE, HASH, EXTRAS, END,
};
static const struct fspec k_body_file[] = {
    MEDIA_ID, MEDIA_CRC, FSIZE, S("fname", RQ_ALL, 1, AU_IM_STR_MAX, IM_S_NO_CRLF), HASH, EXTRAS,
    END,
};
static const struct fspec k_body_video[] = {
    O("video", RQ_ALL, k_file_object), I("duration", RQ_ALL, 0, INT32_MAX),
    O("thumb", 0, k_image_object), EXTRAS, END,
};
static const struct fspec k_body_location[] = {
    N("latitude", RQ_ALL), N("longitude", RQ_ALL), N("scale", RQ_ALL),
    S("label", RQ_ALL, 0, AU_IM_STR_MAX, IM_S_ANY), EXTRAS, END,
};

static const struct fspec *const k_bodies[] = {
    [IM_MSG_TEXT] = k_body_text, [IM_MSG_IMAGE] = k_body_image, [IM_MSG_VOICE] = k_body_voice,
    [IM_MSG_FILE] = k_body_file, [IM_MSG_VIDEO] = k_body_video,
    [IM_MSG_LOCATION] = k_body_location, [IM_MSG_CUSTOM] = NULL,
};

static int check_fields(struct pctx *c, json_t *obj, const char *where, const struct fspec *spec,
                        unsigned depth)
{
    unsigned need = c->src == IM_SRC_DEVICE ? RQ_DEV : RQ_REST;
    AU_ASSERT(depth < 4);
    for (const struct fspec *f = spec; f->key; f++) {
        int req = (f->req & need) ? IM_REQ : IM_OPT;
        int rc;
        switch (f->type) {
        case F_STR:
            rc = im_get_str(c, obj, where, f->key, req, (size_t)f->min, (size_t)f->max, f->rule,
                            NULL, NULL);
            break;
        case F_INT: {
            int64_t v;
            rc = im_get_int(c, obj, where, f->key, req, f->min, f->max, &v);
            break;
        }
        case F_NUM: {
            double d;
            rc = im_get_num(c, obj, where, f->key, req, &d);
            break;
        }
        case F_OBJ: {
            json_t *sub = NULL;
            rc = im_get_obj(c, obj, where, f->key, req, &sub);
            if (rc == 1 && f->sub) {
                char w2[64];
                snprintf(w2, sizeof w2, "%s%s.", where, f->key);
                rc = check_fields(c, sub, w2, f->sub, depth + 1) < 0 ? -1 : 1;
            }
            break;
        }
        default:
            rc = -1;
            AU_ASSERT(0);
        }
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int enum_index(const char *s, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (names[i] && strcmp(s, names[i]) == 0)
            return (int)i;
    return -1;
}

static bool appkey_ok(const char *s)
{
    size_t n = strlen(s);
    if (n != AU_IM_APPKEY_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')))
            return false;
    }
    return true;
}

static bool client_msg_id_ok(const char *s, size_t n)
{
    if (n == 0 || n > AU_IM_CLIENT_MSG_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              ch == '_' || ch == '.' || ch == ':' || ch == '-'))
            return false;
    }
    return true;
}

static int parse_target(struct pctx *c, json_t *root, struct im_msg *m)
{
    char tmp[16];
    if (im_get_str(c, root, "", "target_type", IM_REQ, 1, sizeof tmp - 1, IM_S_ANY, NULL, NULL) < 0)
        return -1;
    const char *tt = json_string_value(json_object_get(root, "target_type"));
    if (strcmp(tt, "single") == 0)
        m->target_type = IM_TARGET_SINGLE;
    else if (strcmp(tt, "group") == 0)
        m->target_type = IM_TARGET_GROUP;
    else
        return im_fail(c, IM_F_FORMAT, "target_type: must be single or group");

    json_t *v = json_object_get(root, "target_id");
    if (!v || json_is_null(v))
        return im_fail(c, IM_F_FORMAT, "target_id: missing");
    if (m->target_type == IM_TARGET_SINGLE) {
        return im_get_username(c, root, "", "target_id", IM_REQ, IM_F_TARGET_USER, m->target_id) < 0
                   ? -1 : 0;
    }
    /* group: the gid as a decimal string (JMessage) or, leniently, a JSON integer */
    if (json_is_integer(v)) {
        json_int_t g = json_integer_value(v);
        if (g <= 0)
            return im_fail(c, IM_F_TARGET_GROUP, "target_id: not a valid group id");
        m->target_gid = (uint64_t)g;
        snprintf(m->target_id, sizeof m->target_id, "%llu", (unsigned long long)g);
        return 0;
    }
    if (!json_is_string(v))
        return im_fail(c, IM_F_FORMAT, "target_id: must be a string");
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (!im_gid_parse(s, n, &m->target_gid))
        return im_fail(c, IM_F_TARGET_GROUP, "target_id: not a valid group id");
    memcpy(m->target_id, s, n);
    m->target_id[n] = '\0';
    return 0;
}

static int parse_from(struct pctx *c, json_t *root, struct im_msg *m)
{
    bool dev = c->src == IM_SRC_DEVICE;
    char ft[16];
    int rc = im_get_str(c, root, "", "from_type", dev ? IM_OPT : IM_REQ, 1, sizeof ft - 1,
                        IM_S_ANY, ft, NULL);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        m->from_type = IM_FROM_NONE;
    } else if (strcmp(ft, "user") == 0) {
        if (!dev)
            return im_fail(c, IM_F_PERM, "from_type: the REST API sends as admin only");
        m->from_type = IM_FROM_USER;
    } else if (strcmp(ft, "admin") == 0) {
        if (dev)
            return im_fail(c, IM_F_PERM, "from_type: devices send as user only");
        m->from_type = IM_FROM_ADMIN;
    } else if (strcmp(ft, "robot") == 0) {
        return im_fail(c, IM_F_PERM, "from_type: robot senders are not supported");
    } else {
        return im_fail(c, IM_F_FORMAT, "from_type: unknown value");
    }
    rc = im_get_username(c, root, "", "from_id", dev ? IM_OPT : IM_REQ,
                         dev ? IM_F_PERM : IM_F_FORMAT, m->from_id);
    return rc < 0 ? -1 : 0;
}

static int parse_appkey(struct pctx *c, json_t *root, const char *key, char out[AU_IM_APPKEY_LEN + 1])
{
    int rc = im_get_str(c, root, "", key, IM_OPT, 0, AU_IM_APPKEY_LEN, IM_S_TOKEN, out, NULL);
    if (rc < 0)
        return -1;
    if (rc == 1 && out[0] && !appkey_ok(out))
        return im_fail(c, IM_F_FORMAT, "%s: not a valid appkey", key);
    return 0;
}

static int parse_msg(struct pctx *c, json_t *root, struct im_msg *m)
{
    if (!json_is_object(root))
        return im_fail(c, IM_F_FORMAT, "message: must be a JSON object");

    int64_t ver;
    if (im_get_int(c, root, "", "version", IM_REQ, INT64_MIN, INT64_MAX, &ver) < 0)
        return -1;
    if (ver != 1)
        return im_fail(c, IM_F_FORMAT, "version: must be 1");
    if (parse_target(c, root, m) < 0 || parse_from(c, root, m) < 0)
        return -1;
    if (im_get_str(c, root, "", "target_name", IM_OPT, 0, AU_IM_STR_MAX, IM_S_ANY,
                   m->target_name, NULL) < 0 ||
        im_get_str(c, root, "", "from_name", IM_OPT, 0, AU_IM_STR_MAX, IM_S_ANY,
                   m->from_name, NULL) < 0 ||
        im_get_str(c, root, "", "from_platform", IM_OPT, 0, AU_IM_SHORT_STR_MAX, IM_S_TOKEN,
                   m->from_platform, NULL) < 0 ||
        parse_appkey(c, root, "target_appkey", m->target_appkey) < 0 ||
        parse_appkey(c, root, "from_appkey", m->from_appkey) < 0)
        return -1;

    int64_t ct;
    int rc = im_get_int(c, root, "", "create_time", IM_OPT, 0, INT64_MAX, &ct);
    if (rc < 0)
        return -1;
    m->create_time = rc == 1 ? (uint64_t)ct : 0;

    size_t n = 0;
    rc = im_get_str(c, root, "", "client_msg_id", IM_OPT, 0, AU_IM_CLIENT_MSG_ID_MAX, IM_S_TOKEN,
                    m->client_msg_id, &n);
    if (rc < 0)
        return -1;
    if (rc == 1 && !client_msg_id_ok(m->client_msg_id, n))
        return im_fail(c, IM_F_FORMAT, "client_msg_id: 1..%d of [A-Za-z0-9_.:-]",
                       AU_IM_CLIENT_MSG_ID_MAX);

    if (im_get_bool(c, root, "", "no_offline", IM_OPT, &m->no_offline) < 0 ||
        im_get_bool(c, root, "", "no_notification", IM_OPT, &m->no_notification) < 0)
        return -1;
    json_t *notif = NULL;
    rc = im_get_obj(c, root, "", "notification", IM_OPT, &notif);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        m->has_notification = true;
        if (im_get_str(c, notif, "notification.", "title", IM_OPT, 0, AU_IM_STR_MAX, IM_S_ANY,
                       m->notif_title, NULL) < 0 ||
            im_get_str(c, notif, "notification.", "alert", IM_OPT, 0, AU_IM_STR_MAX, IM_S_ANY,
                       m->notif_alert, NULL) < 0)
            return -1;
    }

    char mt[16];
    if (im_get_str(c, root, "", "msg_type", IM_REQ, 1, sizeof mt - 1, IM_S_ANY, mt, NULL) < 0)
        return -1;
    int t = enum_index(mt, k_msg_types, AU_ARRAY_LEN(k_msg_types));
    if (t <= 0)
        return im_fail(c, IM_F_FORMAT, "msg_type: unknown value");
    m->msg_type = (enum im_msg_type)t;

    json_t *body = NULL;
    if (im_get_obj(c, root, "", "msg_body", IM_REQ, &body) < 0)
        return -1;
    size_t bl = im_dump(body, m->body, sizeof m->body);
    if (bl == (size_t)-1)
        return im_fail(c, IM_F_TOO_LONG, "msg_body: longer than %d bytes", AU_IM_MSG_BODY_MAX);
    m->body_len = (uint32_t)bl;
    if (k_bodies[t] && check_fields(c, body, "msg_body.", k_bodies[t], 0) < 0)
        return -1;
    return 0;
}

bool im_msg_names_other_app(const struct im_msg *m, const char *own_key)
{
    return (m->target_appkey[0] && strcmp(m->target_appkey, own_key) != 0) ||
           (m->from_appkey[0] && strcmp(m->from_appkey, own_key) != 0);
}

int im_msg_parse(const char *json, size_t len, enum im_src src, struct im_msg *out,
                 struct im_err *err)
{
    AU_ASSERT(src == IM_SRC_DEVICE || src == IM_SRC_REST);
    struct pctx c = { src, err };
    memset(out, 0, sizeof *out);
    err->code = IM_OK;
    err->msg[0] = '\0';
    json_t *root = im_load(&c, json, len, AU_IM_MSG_JSON_MAX, IM_F_TOO_LONG);
    if (!root)
        return -1;
    int rc = parse_msg(&c, root, out);
    json_decref(root);
    if (rc < 0) {
        AU_ASSERT(err->code != IM_OK);
        memset(out, 0, sizeof *out);
        return -1;
    }
    AU_ASSERT(out->body_len > 0 && out->body[0] == '{' && out->msg_type != 0);
    return 0;
}

/* ---- the stored form of a device's message, parsed and rendered once ---- */
static const char *const k_server_keys[] = { "msgid", "msg_ctime", "create_time", "sequence" };

int im_msg_parse_canon(const char *json, size_t len, enum im_src src, enum im_from_type from_type,
                       const char *from_id, struct im_msg *out, struct im_err *err, char **canon,
                       size_t *canon_len)
{
    AU_ASSERT(src == IM_SRC_DEVICE || src == IM_SRC_REST);
    AU_ASSERT(from_type == IM_FROM_USER || from_type == IM_FROM_ADMIN);
    AU_ASSERT(from_id && from_id[0] && strlen(from_id) <= AU_IM_USERNAME_MAX);
    struct pctx c = { src, err };
    err->code = IM_OK;
    err->msg[0] = '\0';
    *canon = NULL;
    *canon_len = 0;
    size_t fidl = strlen(from_id);
    if (src == IM_SRC_DEVICE && from_type == IM_FROM_USER && len <= AU_IM_MSG_JSON_MAX) {
        /* the common case without jansson (imjson_fast.c); anything it does not take goes on below */
        size_t cap = len + 64 + 2 * fidl;
        char *s = malloc(cap);
        AU_ASSERT(s != NULL);
        if (im_msg_canon_fast(json, len, from_id, out, s, cap, canon_len)) {
            *canon = s;
            return 0;
        }
        free(s);
        *canon_len = 0;
    }
    memset(out, 0, sizeof *out);
    json_t *root = im_load(&c, json, len, AU_IM_MSG_JSON_MAX, IM_F_TOO_LONG);
    if (!root)
        return -1;
    if (parse_msg(&c, root, out) < 0) {
        json_decref(root);
        AU_ASSERT(err->code != IM_OK);
        return -1;
    }
    AU_ASSERT(out->body_len > 0 && out->body[0] == '{' && out->msg_type != 0);
    /* Set in place (a key the sender gave keeps its position), appended otherwise. */
    for (size_t i = 0; i < AU_ARRAY_LEN(k_server_keys); i++)
        (void)json_object_del(root, k_server_keys[i]);
    int r = json_object_set_new(root, "from_type", json_string(im_from_type_name(from_type)));
    r |= json_object_set_new(root, "from_id", json_string(from_id));
    r |= json_object_set_new(root, "version", json_integer(1));
    /* Compact output is about the input's size; a larger one (e.g. reals printed with 17 digits) is
     * measured first. */
    size_t cap = len + 64 + fidl + 1;
    char *s = r ? NULL : malloc(cap);
    size_t n = s ? json_dumpb(root, s, cap - 1, JSON_COMPACT) : 0;
    if (s && n > cap - 1) {
        cap = n + 1;
        char *t = realloc(s, cap);
        n = t ? json_dumpb(root, t, cap - 1, JSON_COMPACT) : 0;
        s = t;
    }
    json_decref(root);
    if (!s || n == 0 || n > cap - 1) {
        free(s);
        return im_fail(&c, IM_F_FORMAT, "message: cannot be stored");
    }
    AU_ASSERT(n >= 2 && s[0] == '{' && s[n - 1] == '}');
    s[n] = '\0';
    *canon = s;
    *canon_len = n;
    return 0;
}

static size_t put_u64_dec(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

static size_t put_lit(char *p, const char *lit, size_t n)
{
    memcpy(p, lit, n);
    return n;
}

#define LIT(p, s) put_lit(p, s, sizeof s - 1)

size_t im_msg_canon_finish(const char *canon, size_t len, uint64_t msgid, uint64_t ctime_ms, uint64_t seq,
                           char *out, size_t cap)
{
    AU_ASSERT(len >= 2 && canon[0] == '{' && canon[len - 1] == '}');
    AU_ASSERT(cap >= len + IM_MSG_SERVER_FIELDS_MAX);
    size_t n = len - 1;
    memmove(out, canon, n);
    if (n > 1) /* not "{}" */
        out[n++] = ',';
    n += LIT(out + n, "\"msgid\":");
    n += put_u64_dec(out + n, msgid);
    n += LIT(out + n, ",\"msg_ctime\":");
    n += put_u64_dec(out + n, ctime_ms);
    n += LIT(out + n, ",\"create_time\":");
    n += put_u64_dec(out + n, ctime_ms / 1000);
    n += LIT(out + n, ",\"sequence\":");
    n += put_u64_dec(out + n, seq);
    out[n++] = '}';
    AU_ASSERT(n < cap);
    out[n] = '\0';
    return n;
}

/* ---- rendering ---- */
static void render_msg(struct im_jw *w, const struct im_msg *m, uint64_t msgid, uint64_t ctime_ms,
                       uint64_t seq)
{
    AU_ASSERT(m->from_type == IM_FROM_USER || m->from_type == IM_FROM_ADMIN);
    AU_ASSERT(m->from_id[0] && m->target_id[0]);
    AU_ASSERT(m->body_len > 0 && m->body_len <= AU_IM_MSG_BODY_MAX);
    im_jw_obj_begin(w);
    im_jw_ku64(w, "version", 1);
    im_jw_kstr(w, "target_type", im_target_type_name(m->target_type));
    im_jw_kstr(w, "target_id", m->target_id);
    im_jw_kstr_opt(w, "target_name", m->target_name);
    im_jw_kstr_opt(w, "target_appkey", m->target_appkey);
    im_jw_kstr(w, "from_type", im_from_type_name(m->from_type));
    im_jw_kstr(w, "from_id", m->from_id);
    im_jw_kstr_opt(w, "from_name", m->from_name);
    im_jw_kstr_opt(w, "from_platform", m->from_platform);
    im_jw_kstr_opt(w, "from_appkey", m->from_appkey);
    im_jw_ku64(w, "create_time", m->create_time ? m->create_time : ctime_ms / 1000);
    im_jw_kstr(w, "msg_type", im_msg_type_name(m->msg_type));
    im_jw_key(w, "msg_body");
    im_jw_raw(w, m->body, m->body_len);
    im_jw_ku64(w, "msgid", msgid);
    im_jw_ku64(w, "msg_ctime", ctime_ms);
    im_jw_ku64(w, "msg_level", 0);
    im_jw_ku64(w, "sequence", seq);
    im_jw_kstr_opt(w, "client_msg_id", m->client_msg_id);
    if (m->no_offline) {
        im_jw_key(w, "no_offline");
        im_jw_bool(w, true);
    }
    if (m->no_notification) {
        im_jw_key(w, "no_notification");
        im_jw_bool(w, true);
    }
    if (m->has_notification) {
        im_jw_key(w, "notification");
        im_jw_obj_begin(w);
        im_jw_kstr_opt(w, "title", m->notif_title);
        im_jw_kstr_opt(w, "alert", m->notif_alert);
        im_jw_obj_end(w);
    }
    im_jw_obj_end(w);
}

size_t im_msg_render(const struct im_msg *m, uint64_t msgid, uint64_t ctime_ms, uint64_t seq,
                     char *buf, size_t cap)
{
    struct im_jw w;
    im_jw_init(&w, buf, cap);
    render_msg(&w, m, msgid, ctime_ms, seq);
    return im_jw_finish(&w);
}

char *im_msg_render_alloc(const struct im_msg *m, uint64_t msgid, uint64_t ctime_ms, uint64_t seq,
                          size_t *len_out)
{
    size_t need = im_msg_render(m, msgid, ctime_ms, seq, NULL, 0);
    char *s = malloc(need + 1);
    if (!s)
        return NULL;
    size_t n = im_msg_render(m, msgid, ctime_ms, seq, s, need + 1);
    AU_ASSERT(n == need);
    if (len_out)
        *len_out = n;
    return s;
}

size_t im_msg_sent_render(uint64_t msgid, uint64_t ctime_ms, char *buf, size_t cap)
{
    struct im_jw w;
    im_jw_init(&w, buf, cap);
    im_jw_obj_begin(&w);
    im_jw_ku64(&w, "msg_id", msgid);
    im_jw_ku64(&w, "msg_ctime", ctime_ms);
    im_jw_obj_end(&w);
    return im_jw_finish(&w);
}

size_t im_history_render(uint64_t total, const char *cursor, const char *const *msgs,
                         const size_t *lens, size_t n, char *buf, size_t cap)
{
    struct im_jw w;
    im_jw_init(&w, buf, cap);
    im_jw_obj_begin(&w);
    im_jw_ku64(&w, "total", total);
    im_jw_kstr_opt(&w, "cursor", cursor);
    im_jw_ku64(&w, "count", n);
    im_jw_key(&w, "messages");
    im_jw_arr_begin(&w);
    for (size_t i = 0; i < n; i++)
        im_jw_raw(&w, msgs[i], lens[i]);
    im_jw_arr_end(&w);
    im_jw_obj_end(&w);
    return im_jw_finish(&w);
}

/* ---- events ---- */
static const char *const k_events[] = {
    [IM_EV_CREATE_GROUP] = "create_group", [IM_EV_ADD_MEMBERS] = "add_members",
    [IM_EV_REMOVE_MEMBERS] = "remove_members", [IM_EV_EXIT_GROUP] = "exit_group",
    [IM_EV_UPDATE_GROUP] = "update_group", [IM_EV_DELETE_GROUP] = "delete_group",
    [IM_EV_MSG_RETRACT] = "msg_retract", [IM_EV_SEND_ERROR] = "send_error",
};

const char *im_event_type_name(enum im_event_type t)
{
    if ((unsigned)t < AU_ARRAY_LEN(k_events) && k_events[t])
        return k_events[t];
    return "";
}

size_t im_event_render(const struct im_event *ev, uint64_t seq, char *buf, size_t cap)
{
    const char *name = im_event_type_name(ev->type);
    AU_ASSERT(name[0]);
    bool members = ev->type == IM_EV_CREATE_GROUP || ev->type == IM_EV_ADD_MEMBERS ||
                   ev->type == IM_EV_REMOVE_MEMBERS || ev->type == IM_EV_EXIT_GROUP;
    struct im_jw w;
    im_jw_init(&w, buf, cap);
    im_jw_obj_begin(&w);
    im_jw_kstr(&w, "event", name);
    if (ev->gid)
        im_jw_ku64(&w, "gid", ev->gid);
    if (ev->msgid)
        im_jw_ku64(&w, "msgid", ev->msgid);
    im_jw_kstr_opt(&w, "from_username", ev->from_username);
    im_jw_kstr_opt(&w, "group_name", ev->group_name);
    if (members) {
        im_jw_key(&w, "usernames");
        im_jw_arr_begin(&w);
        for (size_t i = 0; i < ev->n_usernames; i++)
            im_jw_str(&w, ev->usernames[i]);
        im_jw_arr_end(&w);
    }
    im_jw_kstr_opt(&w, "client_msg_id", ev->client_msg_id);
    if (ev->type == IM_EV_SEND_ERROR)
        im_jw_error(&w, ev->err_code, ev->err_message);
    im_jw_ku64(&w, "ctime", ev->ctime_ms);
    im_jw_ku64(&w, "sequence", seq);
    im_jw_obj_end(&w);
    return im_jw_finish(&w);
}
