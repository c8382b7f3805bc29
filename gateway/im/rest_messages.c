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
    struct send_wait *w = arg;
    if (!sh) {
        http_gw_defer_cancel(w->d);
        free(w);
        return;
    }
    struct http_resp *resp = http_gw_defer_resp(w->d);
    if (resp) {
        if (err < 0) {
            rest_error(resp, IM_E_SYSTEM, "the message could not be stored");
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
        rest_error(resp, e.code, e.msg);
        free(m);
        return;
    }
    struct im_dir *d = im_dir_of(sh);
    struct dir_user *from = im_dir_user(d, a->id, m->from_id, strlen(m->from_id)), *to = NULL;
    int code = 0;
    struct dir_group *g = NULL;
    if (im_msg_names_other_app(m, a->key)) code = IM_E_CROSS_APP; /* no cross-app messaging */
    else if (!from || !from->admin) code = IM_E_NO_USER; /* REST messages come from an admin user */
    else if (m->target_type == IM_TARGET_GROUP && !(g = im_dir_group(d, a->id, m->target_gid))) code = IM_E_NO_GROUP;
    else if (m->target_type == IM_TARGET_SINGLE && !(to = im_dir_user(d, a->id, m->target_id, strlen(m->target_id))))
        code = IM_E_NO_USER;
    if (code) {
        rest_error(resp, code, NULL);
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
    r->from_uid = from->uid;
    if (!g) {
        memcpy(r->target, m->target_id, strlen(m->target_id) + 1);
        r->target_uid = to->uid;
    }
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

/* ------------------------------------------------------------------ history (JMessage v2)
 * GET /v2/messages, /v2/users/{u}/messages, /v2/groups/{gid}/messages with count + begin_time/end_time
 * ("yyyy-MM-dd HH:mm:ss" UTC, or unix milliseconds), then ?cursor= for the next pages. msgids are time ordered
 * (unix ms << 22), so every query is a walk of the msgid index 1a|app|msgid over the window, keeping the
 * entries whose conversation belongs to the query (all / the user's single chats and groups / the group),
 * then a fetch of the kept records. The cursor is the last msgid walked (stateless). */

#define HIST_SPAN_MAX_MS (7ull * 86400000ull) /* JMessage: begin..end at most 7 days */

enum { HQ_ALL, HQ_USER, HQ_GROUP };

struct hq {
    struct rest_async a;         /* first: rest_defer */
    uint32_t app;
    int kind;
    uint64_t conv_group;         /* HQ_GROUP */
    uint64_t *convs;             /* HQ_USER: the user's conversations (sorted) */
    uint32_t nconvs;
    uint64_t end_ms;
    uint32_t count, n, cap;
    bool stopped;                /* a full page: a cursor follows */
    uint64_t walk_from;          /* HQ_USER: where the walk starts once the conversations are read */
    bool walk_after;
    uint64_t last_msgid;
    struct { uint64_t conv, seq; } *ids;
    char **json;
    char user[129];
};

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static bool hq_wants(const struct hq *h, uint64_t conv)
{
    if (h->kind == HQ_ALL) return true;
    if (h->kind == HQ_GROUP) return conv == h->conv_group;
    return h->nconvs && bsearch(&conv, h->convs, h->nconvs, sizeof conv, cmp_u64) != NULL;
}

static bool hq_row(void *arg, const struct store_kv *kv)
{
    struct hq *h = arg;
    if (kv->vl != 16 || kv->kl != 13) return true;
    uint64_t msgid = ((uint64_t)au_rd32(kv->k + 5) << 32) | au_rd32(kv->k + 9);
    h->last_msgid = msgid;
    uint64_t conv = ((uint64_t)au_rd32(kv->v) << 32) | au_rd32(kv->v + 4);
    if (!hq_wants(h, conv)) return true;
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->ids = realloc(h->ids, sizeof *h->ids * h->cap);
        AU_ASSERT(h->ids != NULL);
    }
    h->ids[h->n].conv = conv;
    h->ids[h->n].seq = ((uint64_t)au_rd32(kv->v + 8) << 32) | au_rd32(kv->v + 12);
    h->n++;
    if (h->n >= h->count) {
        h->stopped = true;
        return false;
    }
    return true;
}

static size_t hq_key(void *arg, size_t i, uint8_t *buf)
{
    struct hq *h = arg;
    return ks_im_msg(buf, h->app, h->ids[i].conv, h->ids[i].seq);
}

static void hq_got(void *arg, size_t i, int err, const void *v, size_t vl)
{
    struct hq *h = arg;
    if (err) return;
    struct im_msg_rec rec;
    if (!im_msg_rec_decode(v, vl, &rec) || rec.kind != IM_KIND_MESSAGE) return; /* no events, no retracted */
    h->json[i] = strndup((const char *)rec.json, rec.json_len);
}

static void hq_free(struct hq *h)
{
    for (uint32_t i = 0; h->json && i < h->n; i++) free(h->json[i]);
    free(h->json);
    free(h->ids);
    free(h->convs);
    free(h);
}

static void hq_done(struct au_shard *s, void *arg, int err)
{
    (void)s;
    struct hq *h = arg;
    if (err) {
        rest_finish_error(&h->a, IM_E_SYSTEM, "history could not be read");
        hq_free(h);
        return;
    }
    json_t *arr = json_array();
    for (uint32_t i = 0; i < h->n; i++) {
        json_t *o = h->json && h->json[i] ? json_loads(h->json[i], 0, NULL) : NULL;
        if (o) json_array_append_new(arr, o);
    }
    size_t cnt = json_array_size(arr);
    json_t *body = json_pack("{s:I,s:I,s:o}", "total", (json_int_t)cnt, "count", (json_int_t)cnt, "messages", arr);
    if (h->stopped && h->last_msgid) {
        char cur[64];
        snprintf(cur, sizeof cur, "%llu.%llu", (unsigned long long)h->last_msgid, (unsigned long long)h->end_ms);
        json_object_set_new(body, "cursor", json_string(cur));
    }
    char *js = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    rest_finish_take(&h->a, 200, js, strlen(js));
    hq_free(h);
}

static void hq_scanned(struct au_shard *s, void *arg, int err)
{
    struct hq *h = arg;
    if (err || !h->n) {
        hq_done(s, h, err);
        return;
    }
    h->json = calloc(h->n, sizeof *h->json);
    AU_ASSERT(h->json != NULL);
    rest_get_many(s, h->n, hq_key, hq_got, hq_done, h);
}

static void hq_walk(struct hq *h, uint64_t from_msgid, bool after)
{
    uint8_t start[KS_KEY_MAX], stop[KS_KEY_MAX];
    size_t sl = ks_im_id(start, KS_IM_MSGID, h->app, from_msgid + (after ? 1 : 0));
    size_t el = ks_im_id(stop, KS_IM_MSGID, h->app, (h->end_ms + 1) << 22);
    rest_scan(h->a.s, start, sl, stop, el, 0, 0, hq_row, hq_scanned, h);
}

/* A time parameter: "yyyy-MM-dd HH:mm:ss" (UTC) or unix milliseconds. */
static bool hq_time(const struct http_req *req, const char *name, uint64_t *ms)
{
    char v[64];
    ssize_t n = http_query_get(req->query, req->query_len, name, v, sizeof v);
    if (n < 0) return false;
    bool digits = n > 0;
    for (ssize_t i = 0; i < n; i++) digits = digits && v[i] >= '0' && v[i] <= '9';
    if (digits) {
        *ms = strtoull(v, NULL, 10);
        return true;
    }
    int64_t sec;
    if (!im_datetime_parse(v, (size_t)n, false, &sec) || sec < 0) return false;
    *ms = (uint64_t)sec * 1000u;
    return true;
}

/* Parse count/begin/end or cursor and defer the answer; the walk starts at *from (exclusive when *after).
 * Returns false when it answered an error. */
static bool hq_parse(const struct http_req *req, struct http_resp *resp, const struct rest_ctx *c, struct hq *h,
                     uint64_t *from_out, bool *after_out)
{
    uint64_t count = 0, begin = 0, end = 0, from = 0;
    char cur[64];
    bool after = false;
    if (http_query_get(req->query, req->query_len, "cursor", cur, sizeof cur) > 0) {
        unsigned long long m, e;
        if (sscanf(cur, "%llu.%llu", &m, &e) != 2) {
            rest_error(resp, IM_E_PARAM, "unknown cursor");
            return false;
        }
        from = m;
        end = e;
        after = true;
        if (rest_query_u64(req, "count", REST_HISTORY_MAX, &count) < 1) count = 100;
    } else {
        if (rest_query_u64(req, "count", REST_HISTORY_MAX, &count) != 1 || count == 0 || !hq_time(req, "begin_time", &begin) ||
            !hq_time(req, "end_time", &end) || begin > end || end - begin > HIST_SPAN_MAX_MS) {
            rest_error(resp, IM_E_PARAM, "count (1..1000), begin_time and end_time (yyyy-MM-dd HH:mm:ss, at most 7 days "
                                         "apart) are required");
            return false;
        }
        from = begin << 22;
    }
    h->app = c->app;
    h->count = (uint32_t)count;
    h->end_ms = end;
    rest_defer(&h->a, c, resp);
    *from_out = from;
    *after_out = after;
    return true;
}

static bool hq_start(const struct http_req *req, struct http_resp *resp, const struct rest_ctx *c, struct hq *h)
{
    uint64_t from;
    bool after;
    if (!hq_parse(req, resp, c, h, &from, &after)) return false;
    hq_walk(h, from, after);
    return true;
}

static void app_messages(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct rest_ctx c;
    if (!rest_auth(req, resp, ctx, &c)) return;
    struct hq *h = calloc(1, sizeof *h);
    AU_ASSERT(h != NULL);
    h->kind = HQ_ALL;
    if (!hq_start(req, resp, &c, h)) hq_free(h);
}

static void group_messages(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct rest_ctx c;
    uint64_t gid;
    if (!rest_group_param(req, resp, ctx, &c, &gid)) return;
    struct hq *h = calloc(1, sizeof *h);
    AU_ASSERT(h != NULL);
    h->kind = HQ_GROUP;
    h->conv_group = im_conv_group(gid);
    if (!hq_start(req, resp, &c, h)) hq_free(h);
}

/* The user's conversations: single chats from 1e|app|uid (this incarnation's only), groups from the directory. */
static void hq_add_conv(struct hq *h, uint64_t conv)
{
    if (h->nconvs % 64 == 0) {
        h->convs = realloc(h->convs, sizeof *h->convs * (h->nconvs + 64));
        AU_ASSERT(h->convs != NULL);
    }
    h->convs[h->nconvs++] = conv;
}

static bool hq_uconv_row(void *arg, const struct store_kv *kv)
{
    struct hq *h = arg;
    if (kv->kl >= 8) {
        const uint8_t *ck = kv->k + kv->kl - 8;
        hq_add_conv(h, ((uint64_t)au_rd32(ck) << 32) | au_rd32(ck + 4));
    }
    return true;
}

static void hq_uconvs_read(struct au_shard *s, void *arg, int err)
{
    (void)s;
    struct hq *h = arg;
    if (err) {
        hq_done(s, h, err);
        return;
    }
    if (h->nconvs) qsort(h->convs, h->nconvs, sizeof *h->convs, cmp_u64); /* none: a user without conversations */
    hq_walk(h, h->walk_from, h->walk_after);
}

static void user_messages(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct rest_ctx c;
    if (!rest_auth(req, resp, ctx, &c)) return;
    const char *u;
    size_t ul;
    if (!rest_username_param(req, 0, resp, &u, &ul)) return;
    struct dir_user *du = im_dir_user(c.d, c.app, u, ul);
    if (!du) {
        rest_error(resp, IM_E_NO_USER, NULL);
        return;
    }
    struct hq *h = calloc(1, sizeof *h);
    AU_ASSERT(h != NULL);
    h->kind = HQ_USER;
    memcpy(h->user, u, ul);
    if (!hq_parse(req, resp, &c, h, &h->walk_from, &h->walk_after)) {
        hq_free(h);
        return;
    }
    char peer[130];
    ssize_t pl = http_query_get(req->query, req->query_len, "peer", peer, sizeof peer);
    if (pl > 0) {
        /* ?peer= narrows to one single chat (Aurora extension): of the two current incarnations */
        struct dir_user *pu = (size_t)pl < sizeof peer ? im_dir_user(c.d, c.app, peer, (size_t)pl) : NULL;
        if (pu) hq_add_conv(h, im_conv_single(du->uid, pu->uid));
        hq_walk(h, h->walk_from, h->walk_after);
        return;
    }
    for (uint32_t g = 0; g < du->ngids; g++) hq_add_conv(h, im_conv_group(du->gids[g]));
    uint8_t start[KS_KEY_MAX], stop[KS_KEY_MAX];
    size_t sl = ks_im_uid_prefix(start, KS_IM_UCONV, c.app, du->uid);
    size_t el = store_prefix_end(start, sl, stop);
    rest_scan(c.s, start, sl, stop, el, 0, 0, hq_uconv_row, hq_uconvs_read, h);
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
    uint64_t uid;                /* the retracting user's incarnation */
    uint64_t user_ctime_ms;      /* ... and when it was registered */
    uint64_t msgid, conv, seq;
};

static void retract_sent(struct au_shard *s, void *arg, int err, uint64_t msgid, uint64_t ctime_ms)
{
    (void)msgid, (void)ctime_ms;
    struct retract *r = arg;
    if (!s) {
        http_gw_defer_cancel(r->a.defer);
        free(r);
        return;
    }
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
    q->from_uid = r->uid;
    q->target_uid = group ? 0 : im_conv_single_peer(r->conv, r->uid);
    json_t *o = json_pack("{s:s,s:I,s:s}", "event", "msg_retract", "retracted_msgid", (json_int_t)r->msgid, "from_id", r->user);
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
    struct im_msg_rec rec;
    int code = 0;
    if (!im_msg_rec_decode(v, vl, &rec)) code = IM_E_RETRACT_NO_MSG;
    else if (rec.from_len != strlen(r->user) || memcmp(rec.from, r->user, rec.from_len) != 0) code = IM_E_RETRACT_NOT_SENDER;
    else if (rec.ctime_ms < r->user_ctime_ms || (!im_conv_is_group(r->conv) && !im_conv_single_peer(r->conv, r->uid)))
        code = IM_E_RETRACT_NOT_SENDER; /* a message of an earlier user of the same name */
    else if (rec.kind & IM_KIND_RETRACTED) code = IM_E_RETRACT_DONE;
    else if (au_wall_ms() > rec.ctime_ms + IM_RETRACT_WINDOW_MS) code = IM_E_RETRACT_TIMEOUT;
    uint8_t kind = rec.kind;
    const uint8_t *js = rec.json;
    size_t jl = rec.json_len;
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
    struct dir_user *du = im_dir_user(c.d, c.app, u, ul);
    if (!du) {
        rest_error(resp, IM_E_NO_USER, NULL);
        return;
    }
    struct retract *r = calloc(1, sizeof *r);
    AU_ASSERT(r != NULL);
    r->app = c.app;
    r->uid = du->uid;
    r->user_ctime_ms = du->ctime_ms;
    memcpy(r->user, u, ul);
    r->msgid = msgid;
    rest_defer(&r->a, &c, resp);
    uint8_t key[KS_KEY_MAX];
    store_get(persist_store(), c.s->id, key, ks_im_id(key, KS_IM_MSGID, c.app, msgid), retract_located, r);
}

static const struct http_route_def routes[] = {
    { "GET", "/v2/messages", app_messages },
    { "POST", "/v1/messages/{username}/{msgid}/retract", retract_message },
    { "POST", "/v1/messages", post_message },
    { "GET", "/v2/users/{username}/messages", user_messages },
    { "GET", "/v2/groups/{gid}/messages", group_messages },
};
const struct http_routes rest_messages_routes = { routes, AU_ARRAY_LEN(routes) };
