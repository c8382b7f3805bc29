/* rest_messages.c - JMessage REST: send a message (POST /v1/messages), history (GET /v2/messages,
 * /v2/users/{u}/messages, /v2/groups/{gid}/messages) and retract (POST /v1/messages/{u}/{msgid}/retract).
 *
 * Sending goes through the same pipeline as a device's im/send (im_send): sequenced on the conversation's
 * owner shard, stored durably, delivered to every online device; the 201 leaves once it is durable.
 * History reads the conversation records of the store (newest first within the requested window). */
#include "gateway/im/im.h"
#include "gateway/im/dir.h"
#include "gateway/im/auth.h"
#include "gateway/im/imjson.h"
#include "gateway/im/errors.h"
#include "gateway/im/rest_internal.h"
#include "gateway/http/http_server.h"
#include "gateway/http/http_parse.h"
#include "gateway/http/http_gw.h"
#include "gateway/mqtt/broker.h"
#include "gateway/mqtt/persist.h"
#include "store/keyspace.h"
#include "core/log.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define REST_HISTORY_MAX 1000u          /* messages one history page may return (JMessage: count <= 1000) */

static void error(struct http_resp *resp, int code, const char *detail)
{
    http_resp_error(resp, im_err_http_status(code), code, detail && detail[0] ? detail : im_err_message(code));
}

/* Basic appKey:masterSecret -> the app (rest_common.c), or NULL with the 401 answered. */
static struct dir_app *rest_app(const struct http_req *req, struct http_resp *resp, struct au_shard *sh)
{
    struct rest_ctx c;
    if (!rest_auth(req, resp, sh, &c)) return NULL;
    return im_dir_app(c.d, c.app);
}

/* ------------------------------------------------------------------ POST /v1/messages */

struct send_wait {
    struct http_gw_defer *d;
};

static void sent(struct au_shard *sh, void *arg, int err, uint64_t msgid, uint64_t ctime_ms)
{
    (void)sh;
    struct send_wait *w = arg;
    struct http_resp *resp = http_gw_defer_resp(w->d);
    if (resp) {
        if (err < 0) {
            error(resp, IM_E_SYSTEM, "the message could not be stored");
        } else {
            char body[128];
            snprintf(body, sizeof body, "{\"msg_id\":%llu,\"msg_ctime\":%llu}", (unsigned long long)msgid,
                     (unsigned long long)ctime_ms);
            http_resp_json(resp, 201, body);
        }
    }
    http_gw_defer_finish(w->d);
    free(w);
}

static void post_message(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct au_shard *sh = ctx;
    struct dir_app *a = rest_app(req, resp, sh);
    if (!a) return;
    struct im_msg *m = malloc(sizeof *m);
    AU_ASSERT(m != NULL);
    struct im_err e;
    if (!req->body || im_msg_parse((const char *)req->body, req->body_len, IM_SRC_REST, m, &e) != 0) {
        if (!req->body) e.code = IM_E_PARAM, snprintf(e.msg, sizeof e.msg, "a message object is required");
        error(resp, e.code, e.msg);
        free(m);
        return;
    }
    struct im_dir *d = im_dir_of(sh);
    struct dir_user *from = im_dir_user(d, a->id, m->from_id, strlen(m->from_id));
    int code = 0;
    struct dir_group *g = NULL;
    if (!from || !from->admin) code = IM_E_NO_USER; /* REST messages come from an admin user */
    else if (m->target_type == IM_TARGET_GROUP && !(g = im_dir_group(d, a->id, m->target_gid))) code = IM_E_NO_GROUP;
    else if (m->target_type == IM_TARGET_SINGLE && !im_dir_user(d, a->id, m->target_id, strlen(m->target_id)))
        code = IM_E_NO_USER;
    if (code) {
        error(resp, code, NULL);
        free(m);
        return;
    }
    struct im_send_req *r = calloc(1, sizeof *r);
    AU_ASSERT(r != NULL);
    r->app = a->id;
    r->kind = IM_KIND_MESSAGE;
    r->target_group = g != NULL;
    r->gid = g ? g->gid : 0;
    memcpy(r->from, m->from_id, strlen(m->from_id) + 1);
    if (!g) memcpy(r->target, m->target_id, strlen(m->target_id) + 1);
    memcpy(r->client_msg_id, m->client_msg_id, sizeof r->client_msg_id - 1);
    free(m);
    r->json = malloc(req->body_len + 1);
    AU_ASSERT(r->json != NULL);
    memcpy(r->json, req->body, req->body_len);
    r->json[req->body_len] = 0;
    r->json_len = req->body_len;
    struct send_wait *w = malloc(sizeof *w);
    AU_ASSERT(w != NULL);
    w->d = http_gw_defer(resp);
    im_send(sh, r, sent, w);
}

/* ------------------------------------------------------------------ history */

struct hist {
    struct http_gw_defer *d;
    uint64_t begin_ms, end_ms;   /* window, 0 = open */
    uint32_t count;
    json_t *out;                 /* array of message objects */
};

static void hist_read(struct au_shard *sh, void *arg, int err, const struct store_kv *kv, uint32_t n, bool more)
{
    (void)sh;
    struct hist *h = arg;
    struct http_resp *resp = http_gw_defer_resp(h->d);
    if (resp) {
        if (err) {
            error(resp, IM_E_SYSTEM, "history could not be read");
        } else {
            json_t *arr = json_array();
            /* kv is newest first: return oldest first like JMessage's pages. */
            for (uint32_t k = n; k-- > 0;) {
                struct ks_r r = ks_r_init(kv[k].v, kv[k].vl);
                if (ks_r_u8(&r) != KS_V1) continue;
                uint64_t ctime = ks_r_u64(&r);
                (void)ks_r_u64(&r);
                (void)ks_r_u8(&r);
                uint16_t fl;
                (void)ks_r_str16(&r, &fl);
                size_t jl;
                const uint8_t *js = ks_r_rest(&r, &jl);
                if (r.err || (h->begin_ms && ctime < h->begin_ms) || (h->end_ms && ctime > h->end_ms)) continue;
                if (kv[k].vl > 17 && (kv[k].v[17] & IM_KIND_RETRACTED)) continue;
                json_t *o = json_loadb((const char *)js, jl, 0, NULL);
                if (o) json_array_append_new(arr, o);
            }
            json_t *body = json_pack("{s:I,s:o}", "total", (json_int_t)json_array_size(arr), "messages", arr);
            if (more) json_object_set_new(body, "more", json_true());
            char *s = json_dumps(body, JSON_COMPACT);
            json_decref(body);
            http_resp_json(resp, 200, s);
            free(s);
        }
    }
    http_gw_defer_finish(h->d);
    free(h);
}

static bool query_u64(const struct http_req *req, const char *name, uint64_t *out)
{
    char v[32];
    ssize_t n = http_query_get(req->query, req->query_len, name, v, sizeof v);
    if (n < 0) return n == -1; /* absent is fine, malformed is not */
    char *e;
    unsigned long long x = strtoull(v, &e, 10);
    if (e == v || *e) return false;
    *out = x;
    return true;
}

static void history(const struct http_req *req, struct http_resp *resp, struct au_shard *sh, const struct dir_app *a,
                    uint64_t conv)
{
    uint64_t count = 100, begin = 0, end = 0;
    if (!query_u64(req, "count", &count) || count == 0 || count > REST_HISTORY_MAX || !query_u64(req, "begin_time", &begin) ||
        !query_u64(req, "end_time", &end)) {
        error(resp, IM_E_PARAM, "count must be 1..1000; begin_time/end_time are unix milliseconds");
        return;
    }
    if (!persist_store()) {
        error(resp, IM_E_SYSTEM, "no store");
        return;
    }
    struct hist *h = calloc(1, sizeof *h);
    AU_ASSERT(h != NULL);
    h->begin_ms = begin;
    h->end_ms = end;
    h->count = (uint32_t)count;
    h->d = http_gw_defer(resp);
    uint8_t start[KS_KEY_MAX], stop[KS_KEY_MAX];
    size_t sl = ks_im_msg(start, a->id, conv, 1);
    size_t el = ks_im_msg(stop, a->id, conv, UINT64_MAX);
    store_scan(persist_store(), sh->id, start, sl, stop, el, h->count, STORE_SCAN_REVERSE, hist_read, h);
}

/* GET /v2/users/{u}/messages?peer=bob : the single chat of u and peer. */
static void user_messages(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct au_shard *sh = ctx;
    struct dir_app *a = rest_app(req, resp, sh);
    if (!a) return;
    const char *u = req->params[0].p;
    char peer[130];
    if (!im_dir_user(im_dir_of(sh), a->id, u, strlen(u))) {
        error(resp, IM_E_NO_USER, NULL);
        return;
    }
    if (http_query_get(req->query, req->query_len, "peer", peer, sizeof peer) < 0 ||
        !im_dir_user(im_dir_of(sh), a->id, peer, strlen(peer))) {
        error(resp, IM_E_PARAM, "peer (an existing username) is required");
        return;
    }
    history(req, resp, sh, a, im_conv_single(a->id, u, strlen(u), peer, strlen(peer)));
}

static void group_messages(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct au_shard *sh = ctx;
    struct dir_app *a = rest_app(req, resp, sh);
    if (!a) return;
    uint64_t gid;
    if (!im_gid_parse(req->params[0].p, req->params[0].len, &gid) || !im_dir_group(im_dir_of(sh), a->id, gid)) {
        error(resp, IM_E_NO_GROUP, NULL);
        return;
    }
    history(req, resp, sh, a, im_conv_group(gid));
}

/* ------------------------------------------------------------------ GET /v2/messages
 * Every message of the app in a time window: msgids are time ordered (unix ms << 22), so the msgid index
 * 1a|app|msgid is scanned from begin_time to end_time, then the records are fetched. */

struct apphist {
    struct rest_async a;         /* first: rest_defer */
    uint32_t app;
    uint32_t n, cap;
    struct { uint64_t conv, seq; } *ids;
    char **json;                 /* per id, the stored JSON (NULL if gone) */
};

static bool apphist_row(void *arg, const struct store_kv *kv)
{
    struct apphist *h = arg;
    if (kv->vl != 16) return true;
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->ids = realloc(h->ids, sizeof *h->ids * h->cap);
        AU_ASSERT(h->ids != NULL);
    }
    h->ids[h->n].conv = ((uint64_t)au_rd32(kv->v) << 32) | au_rd32(kv->v + 4);
    h->ids[h->n].seq = ((uint64_t)au_rd32(kv->v + 8) << 32) | au_rd32(kv->v + 12);
    h->n++;
    return true;
}

static size_t apphist_key(void *arg, size_t i, uint8_t *buf)
{
    struct apphist *h = arg;
    return ks_im_msg(buf, h->app, h->ids[i].conv, h->ids[i].seq);
}

static void apphist_got(void *arg, size_t i, int err, const void *v, size_t vl)
{
    struct apphist *h = arg;
    if (err) return;
    struct ks_r r = ks_r_init(v, vl);
    if (ks_r_u8(&r) != KS_V1) return;
    (void)ks_r_u64(&r);
    (void)ks_r_u64(&r);
    uint8_t kind = ks_r_u8(&r);
    uint16_t fl;
    (void)ks_r_str16(&r, &fl);
    size_t jl;
    const uint8_t *js = ks_r_rest(&r, &jl);
    if (r.err || kind != IM_KIND_MESSAGE) return;
    h->json[i] = strndup((const char *)js, jl);
}

static void apphist_done(struct au_shard *s, void *arg, int err)
{
    (void)s;
    struct apphist *h = arg;
    if (rest_alive(&h->a)) {
        if (err) {
            rest_finish_error(&h->a, IM_E_SYSTEM, "history could not be read");
        } else {
            json_t *arr = json_array();
            for (uint32_t i = 0; i < h->n; i++) {
                json_t *o = h->json && h->json[i] ? json_loads(h->json[i], 0, NULL) : NULL;
                if (o) json_array_append_new(arr, o);
            }
            json_t *body = json_pack("{s:I,s:I,s:o}", "total", (json_int_t)json_array_size(arr), "count",
                                     (json_int_t)json_array_size(arr), "messages", arr);
            char *js = json_dumps(body, JSON_COMPACT);
            json_decref(body);
            rest_finish_take(&h->a, 200, js, strlen(js));
        }
    } else {
        rest_finish_error(&h->a, IM_E_SYSTEM, NULL);
    }
    for (uint32_t i = 0; h->json && i < h->n; i++) free(h->json[i]);
    free(h->json);
    free(h->ids);
    free(h);
}

static void apphist_scanned(struct au_shard *s, void *arg, int err)
{
    struct apphist *h = arg;
    if (err || !h->n) {
        apphist_done(s, h, err);
        return;
    }
    h->json = calloc(h->n, sizeof *h->json);
    AU_ASSERT(h->json != NULL);
    rest_get_many(s, h->n, apphist_key, apphist_got, apphist_done, h);
}

static void app_messages(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct rest_ctx c;
    if (!rest_auth(req, resp, ctx, &c)) return;
    uint64_t count = 100, begin = 0, end = 0;
    if (rest_query_u64(req, "count", REST_HISTORY_MAX, &count) < 0 || count == 0 ||
        rest_query_u64(req, "begin_time", UINT64_MAX >> 22, &begin) < 0 ||
        rest_query_u64(req, "end_time", UINT64_MAX >> 22, &end) < 0) {
        rest_error(resp, IM_E_PARAM, "count must be 1..1000; begin_time/end_time are unix milliseconds");
        return;
    }
    struct apphist *h = calloc(1, sizeof *h);
    AU_ASSERT(h != NULL);
    h->app = c.app;
    rest_defer(&h->a, &c, resp);
    uint8_t start[KS_KEY_MAX], stop[KS_KEY_MAX];
    size_t sl = ks_im_id(start, KS_IM_MSGID, c.app, begin << 22);
    size_t el = end ? ks_im_id(stop, KS_IM_MSGID, c.app, (end + 1) << 22) : store_prefix_end(start, 5, stop);
    rest_scan(c.s, start, sl, stop, el, 0, count, apphist_row, apphist_scanned, h);
}

/* ------------------------------------------------------------------ POST /v1/messages/{u}/{msgid}/retract
 * The sender may take a message back within IM_RETRACT_WINDOW_MS: the record is marked retracted (history
 * and replay skip it) and a "retract" event goes to the conversation like a message. */

#define IM_RETRACT_WINDOW_MS (3u * 60u * 1000u)

struct retract {
    struct rest_async a;
    uint32_t app;
    char user[129];
    char peer[129];              /* single chat: the other user */
    uint64_t msgid, conv, seq;
};

static void retract_sent(struct au_shard *s, void *arg, int err, uint64_t msgid, uint64_t ctime_ms)
{
    (void)s, (void)msgid, (void)ctime_ms;
    struct retract *r = arg;
    if (err < 0) rest_finish_error(&r->a, IM_E_SYSTEM, "the retraction could not be stored");
    else rest_finish_empty(&r->a, 204);
    free(r);
}

static void retract_marked(struct au_shard *s, void *arg, int err)
{
    struct retract *r = arg;
    if (err) {
        rest_finish_error(&r->a, IM_E_SYSTEM, NULL);
        free(r);
        return;
    }
    /* Tell every device of the conversation: an event stored and delivered like a message. */
    struct im_send_req *q = calloc(1, sizeof *q);
    AU_ASSERT(q != NULL);
    q->app = r->app;
    q->kind = IM_KIND_EVENT;
    bool group = im_conv_is_group(r->conv);
    q->target_group = group;
    q->gid = group ? r->conv & ~IM_CONV_GROUP_BIT : 0;
    memcpy(q->from, r->user, sizeof q->from);
    json_t *o = json_pack("{s:s,s:I,s:s}", "event", "retract", "retracted_msgid", (json_int_t)r->msgid, "from_id", r->user);
    q->json = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    q->json_len = strlen(q->json);
    if (!group) memcpy(q->target, r->peer, sizeof q->target); /* same conversation: sender + peer */
    im_send(s, q, retract_sent, r);
}

struct retract_rmw {
    struct retract *r;
    int code;
};

static void retract_got(struct au_shard *s, void *arg, int err, const void *v, size_t vl)
{
    struct retract *r = arg;
    if (err) {
        rest_finish_error(&r->a, err == STORE_ENOTFOUND ? IM_E_RETRACT_NO_MSG : IM_E_SYSTEM, NULL);
        free(r);
        return;
    }
    struct ks_r rd = ks_r_init(v, vl);
    uint8_t ver = ks_r_u8(&rd);
    uint64_t ctime = ks_r_u64(&rd);
    (void)ks_r_u64(&rd);
    uint8_t kind = ks_r_u8(&rd);
    uint16_t fl;
    const uint8_t *from = ks_r_str16(&rd, &fl);
    size_t jl;
    const uint8_t *js = ks_r_rest(&rd, &jl);
    int code = 0;
    if (rd.err || ver != KS_V1) code = IM_E_RETRACT_NO_MSG;
    else if (fl != strlen(r->user) || memcmp(from, r->user, fl) != 0) code = IM_E_RETRACT_NOT_SENDER;
    else if (kind & IM_KIND_RETRACTED) code = IM_E_RETRACT_DONE;
    else if (au_wall_ms() > ctime + IM_RETRACT_WINDOW_MS) code = IM_E_RETRACT_TIMEOUT;
    if (code) {
        rest_finish_error(&r->a, code, NULL);
        free(r);
        return;
    }
    if (!im_conv_is_group(r->conv)) {
        json_t *o = json_loadb((const char *)js, jl, 0, NULL);
        const char *t = json_string_value(json_object_get(o, "target_id"));
        snprintf(r->peer, sizeof r->peer, "%s", t ? t : "");
        json_decref(o);
    }
    /* Rewrite the record with the retracted flag (same bytes otherwise). */
    uint8_t *nv = malloc(vl);
    AU_ASSERT(nv != NULL);
    memcpy(nv, v, vl);
    nv[1 + 8 + 8] = kind | IM_KIND_RETRACTED;
    uint8_t key[KS_KEY_MAX];
    struct store_batch *b = store_batch_new();
    store_batch_put(b, key, ks_im_msg(key, r->app, r->conv, r->seq), nv, vl);
    free(nv);
    store_write(persist_store(), s->id, b, retract_marked, r);
}

static void retract_located(struct au_shard *s, void *arg, int err, const void *v, size_t vl)
{
    struct retract *r = arg;
    if (err || vl != 16) {
        rest_finish_error(&r->a, err && err != STORE_ENOTFOUND ? IM_E_SYSTEM : IM_E_RETRACT_NO_MSG, NULL);
        free(r);
        return;
    }
    const uint8_t *p = v;
    r->conv = ((uint64_t)au_rd32(p) << 32) | au_rd32(p + 4);
    r->seq = ((uint64_t)au_rd32(p + 8) << 32) | au_rd32(p + 12);
    uint8_t key[KS_KEY_MAX];
    store_get(persist_store(), s->id, key, ks_im_msg(key, r->app, r->conv, r->seq), retract_got, r);
}

static void retract_message(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct rest_ctx c;
    if (!rest_auth(req, resp, ctx, &c)) return;
    const char *u;
    size_t ul;
    if (!rest_username_param(req, 0, resp, &u, &ul)) return;
    char *e;
    unsigned long long msgid = strtoull(req->params[1].p, &e, 10);
    if (e == req->params[1].p || *e || !msgid) {
        rest_error(resp, IM_E_PARAM, "msgid must be a number");
        return;
    }
    if (!im_dir_user(c.d, c.app, u, ul)) {
        rest_error(resp, IM_E_NO_USER, NULL);
        return;
    }
    struct retract *r = calloc(1, sizeof *r);
    AU_ASSERT(r != NULL);
    r->app = c.app;
    memcpy(r->user, u, ul);
    r->msgid = msgid;
    rest_defer(&r->a, &c, resp);
    uint8_t key[KS_KEY_MAX];
    store_get(persist_store(), c.s->id, key, ks_im_id(key, KS_IM_MSGID, c.app, msgid), retract_located, r);
}

void rest_messages_init(void)
{
    AU_ASSERT(http_route_add("GET", "/v2/messages", app_messages) == 0);
    AU_ASSERT(http_route_add("POST", "/v1/messages/{}/{}/retract", retract_message) == 0);
    AU_ASSERT(http_route_add("POST", "/v1/messages", post_message) == 0);
    AU_ASSERT(http_route_add("GET", "/v2/users/{}/messages", user_messages) == 0);
    AU_ASSERT(http_route_add("GET", "/v2/groups/{}/messages", group_messages) == 0);
}
