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

/* Basic appKey:masterSecret -> the app, or NULL (and the 401 answer written). */
static struct dir_app *rest_app(const struct http_req *req, struct http_resp *resp, struct au_shard *sh)
{
    size_t hl;
    const char *h = http_req_header(req, "Authorization", &hl);
    char user[128], pass[128];
    if (!h || http_basic_auth_decode(h, hl, user, sizeof user, pass, sizeof pass) != 0) {
        error(resp, IM_E_NO_AUTH_INFO, "basic authentication required");
        return NULL;
    }
    struct dir_app *a = im_dir_app_by_key(im_dir_of(sh), user, strlen(user));
    if (!a || auth_secret_verify(a->secret_hash, strlen(a->secret_hash), pass, strlen(pass)) != 1) {
        error(resp, IM_E_AUTH_FAILED, "appkey or master secret is wrong");
        return NULL;
    }
    return a;
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

void rest_messages_init(void)
{
    AU_ASSERT(http_route_add("POST", "/v1/messages", post_message) == 0);
    AU_ASSERT(http_route_add("GET", "/v2/users/{}/messages", user_messages) == 0);
    AU_ASSERT(http_route_add("GET", "/v2/groups/{}/messages", group_messages) == 0);
}
