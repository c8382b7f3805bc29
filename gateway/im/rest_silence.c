/* rest_silence.c - group member silence (JMessage "群成员禁言"):
 *   PUT /v1/groups/messages/{gid}/silence?status=true|false   body ["username", ...]
 * Silenced members stay in the group and receive its messages, but an im/send to the group is refused with
 * 803012. Kept in the group record (`silenced` array) and in every shard's directory replica. */
#include "gateway/im/rest_internal.h"
#include "gateway/im/im.h"
#include "gateway/im/dir.h"
#include "gateway/im/errors.h"
#include "gateway/im/imjson.h"
#include "store/keyspace.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define SILENCE_BATCH_MAX 500u /* usernames in one request (a group's members at most) */

struct silence {
    struct rest_async a;         /* first: rest_defer */
    uint64_t gid;
    bool on;
    size_t n;
    char (*names)[AU_IM_USERNAME_MAX + 1];
};

static int silence_fn(struct im_dir *d, void *arg, json_t *rec, struct store_batch *b, struct im_changes *ch)
{
    (void)b;
    struct silence *x = arg;
    struct dir_group *g = im_dir_group(d, x->a.app, x->gid);
    if (!g || !rec) return -IM_E_NO_GROUP;
    for (size_t i = 0; i < x->n; i++) {
        struct dir_user *u = im_dir_user(d, x->a.app, x->names[i], strlen(x->names[i]));
        if (!u) return -IM_E_NO_USER;
        if (!im_dir_is_member(g, u)) return -IM_E_PARAM;
    }
    json_t *arr = json_array();
    for (uint32_t i = 0; i < g->nmuted; i++) {
        bool drop = false;
        for (size_t k = 0; !x->on && k < x->n; k++) drop = drop || strcmp(im_user_name(g->muted[i]), x->names[k]) == 0;
        if (!drop) json_array_append_new(arr, json_string(im_user_name(g->muted[i])));
    }
    for (size_t k = 0; x->on && k < x->n; k++) {
        struct dir_user *u = im_dir_user(d, x->a.app, x->names[k], strlen(x->names[k]));
        if (!im_dir_is_muted(g, u)) json_array_append_new(arr, json_string(x->names[k]));
    }
    json_object_set_new(rec, "silenced", arr);
    for (size_t k = 0; k < x->n; k++) {
        struct im_change *c = im_changes_add(ch, IM_CH_GROUP_MUTE);
        c->app = x->a.app;
        c->gid = x->gid;
        c->forbidden = x->on;
        memcpy(c->name, x->names[k], strlen(x->names[k]) + 1);
    }
    return 0;
}

static void silence_done(struct au_shard *s, void *arg, int err)
{
    (void)s;
    struct silence *x = arg;
    if (err) rest_finish_error(&x->a, rest_code_of(err), NULL);
    else rest_finish_empty(&x->a, 204);
    free(x->names);
    free(x);
}

static void put_silence(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct rest_ctx c;
    uint64_t gid;
    if (!rest_group_param(req, resp, ctx, &c, &gid)) return;
    char st[8];
    ssize_t sl = http_query_get(req->query, req->query_len, "status", st, sizeof st);
    if (sl < 0 || (strcmp(st, "true") != 0 && strcmp(st, "false") != 0)) {
        rest_error(resp, IM_E_PARAM, "status must be true or false");
        return;
    }
    size_t bl;
    const char *body = rest_body(req, &bl);
    json_t *arr = json_loadb(body, bl, JSON_REJECT_DUPLICATES, NULL);
    size_t n = json_is_array(arr) ? json_array_size(arr) : 0;
    if (!n || n > SILENCE_BATCH_MAX) {
        json_decref(arr);
        rest_error(resp, IM_E_PARAM, "a JSON array of 1..500 usernames is required");
        return;
    }
    struct silence *x = calloc(1, sizeof *x);
    AU_ASSERT(x != NULL);
    x->names = calloc(n, sizeof *x->names);
    AU_ASSERT(x->names != NULL);
    for (size_t i = 0; i < n; i++) {
        const char *u = json_string_value(json_array_get(arr, i));
        if (!u || !im_username_valid(u, strlen(u))) {
            json_decref(arr);
            free(x->names);
            free(x);
            rest_error(resp, IM_E_PARAM, "usernames must be valid strings");
            return;
        }
        memcpy(x->names[i], u, strlen(u) + 1);
    }
    json_decref(arr);
    x->n = n;
    x->gid = gid;
    x->on = st[0] == 't';
    rest_defer(&x->a, &c, resp);
    uint8_t key[KS_KEY_MAX];
    rest_rmw(c.s, key, ks_im_id(key, KS_IM_GROUP, c.app, gid), silence_fn, silence_done, x);
}

static const struct http_route_def routes[] = {
    { "PUT", "/v1/groups/messages/{gid}/silence", put_silence },
};
const struct http_routes rest_silence_routes = { routes, AU_ARRAY_LEN(routes) };
