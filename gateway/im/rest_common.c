/* rest_common.c - what every REST handler shares: authentication, answers, deferred answers, paged
 * store scans, many gets, serialised read-modify-write on the directory writer, fan-out to shards,
 * user and group records. See rest_internal.h. */
#include "gateway/im/rest_internal.h"

#include "core/loop.h"
#include "gateway/im/auth.h"
#include "gateway/mqtt/persist.h"

#include <ctype.h>
#include <strings.h>

static const struct au_config *g_cfg;
static struct authpool *g_authpool;

const struct au_config *rest_cfg(void) { return g_cfg; }
struct authpool *rest_authpool(void) { return g_authpool; }
void rest_set_authpool(struct authpool *p) { g_authpool = p; }

/* persist.c owns the process-wide store pointer (set by main before the shards start). */
struct store *rest_store(void) { return persist_store(); }

/* The HTTP body gate (http_set_body_gate): a body larger than AU_HTTP_PREAUTH_BODY_MAX is read only for a
 * request whose head carries valid credentials, checked the way its handler will check them: the operator token
 * (Bearer) or an app's key and master secret (Basic). Anything else gets the handler's own 401 answer at once,
 * with Connection: close, and not one byte of the body is buffered. */
static bool body_gate(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    size_t hl = 0;
    const char *h = http_req_header(req, "Authorization", &hl);
    while (h && hl && (*h == ' ' || *h == '\t')) h++, hl--;
    if (h && hl >= 6 && strncasecmp(h, "Bearer", 6) == 0) return rest_ops_auth(req, resp);
    struct rest_ctx c;
    return rest_auth(req, resp, ctx, &c);
}

void rest_init(const struct au_config *cfg)
{
    g_cfg = cfg;
    http_set_body_gate(body_gate);
    rest_apps_init(cfg);
}

/* ------------------------------------------------------------------ answers */

void rest_error(struct http_resp *resp, int code, const char *detail)
{
    char buf[512];
    size_t n = im_err_render(code, detail, buf, sizeof buf);
    if (n >= sizeof buf) n = im_err_render(code, NULL, buf, sizeof buf);
    rest_json(resp, im_err_http_status(code), buf, n);
}

void rest_json(struct http_resp *resp, int status, const char *json, size_t len)
{
    http_resp_status(resp, status);
    http_resp_header(resp, "Content-Type", "application/json; charset=utf-8");
    if (http_resp_body(resp, json, len) != 0) http_resp_status(resp, 500);
}

void rest_empty(struct http_resp *resp, int status)
{
    http_resp_status(resp, status);
    http_resp_header(resp, "Content-Type", "application/json; charset=utf-8");
}

void rest_defer(struct rest_async *a, const struct rest_ctx *c, struct http_resp *resp)
{
    a->s = c->s;
    a->app = c->app;
    memcpy(a->appkey, c->appkey, sizeof a->appkey);
    a->defer = http_gw_defer(resp);
}

bool rest_alive(const struct rest_async *a) { return a->defer && http_gw_defer_resp(a->defer) != NULL; }

static struct http_resp *finish_resp(struct rest_async *a)
{
    AU_ASSERT(a->defer != NULL);
    return http_gw_defer_resp(a->defer);
}

static void finish(struct rest_async *a)
{
    struct http_gw_defer *d = a->defer;
    a->defer = NULL;
    http_gw_defer_finish(d);
}

void rest_finish_error(struct rest_async *a, int code, const char *detail)
{
    struct http_resp *r = finish_resp(a);
    if (r) rest_error(r, code, detail);
    finish(a);
}

void rest_finish_json(struct rest_async *a, int status, const char *json, size_t len)
{
    struct http_resp *r = finish_resp(a);
    if (r) rest_json(r, status, json, len);
    finish(a);
}

void rest_finish_take(struct rest_async *a, int status, char *json, size_t len)
{
    rest_finish_json(a, status, json, len);
    free(json);
}

void rest_finish_empty(struct rest_async *a, int status)
{
    struct http_resp *r = finish_resp(a);
    if (r) rest_empty(r, status);
    finish(a);
}

/* ------------------------------------------------------------------ authentication */

static bool auth_fail(struct http_resp *resp, int code, const char *detail)
{
    rest_error(resp, code, detail);
    return false;
}

/* Parsed secret hashes of the apps this thread (shard) authenticated lately, so that a request costs one
 * SHA-256 and no base64 decoding of the stored string. Direct-mapped by app id; an entry is used only while
 * the replica's stored string is still the one it was parsed from (a changed secret re-parses). Holds no
 * secret: only what the replica holds already. Fixed size, per thread: no allocation, no locking. */
#define REST_SECRET_CACHE 16
struct secret_ent {
    uint32_t app;
    uint8_t len;                            /* 0 = empty */
    char stored[IM_SECRET_HASH_MAX];
    struct auth_secret sec;
};
static __thread struct secret_ent t_secrets[REST_SECRET_CACHE];

static const struct auth_secret *app_secret(const struct dir_app *a)
{
    struct secret_ent *e = &t_secrets[a->id % REST_SECRET_CACHE];
    size_t len = strnlen(a->secret_hash, sizeof a->secret_hash);
    if (e->len && e->app == a->id && e->len == len && memcmp(e->stored, a->secret_hash, len) == 0) return &e->sec;
    e->len = 0;
    if (len == 0 || len >= sizeof e->stored || auth_secret_parse(a->secret_hash, len, &e->sec) != 0) return NULL;
    memcpy(e->stored, a->secret_hash, len);
    e->len = (uint8_t)len;
    e->app = a->id;
    return &e->sec;
}

bool rest_auth(const struct http_req *req, struct http_resp *resp, void *ctx, struct rest_ctx *c)
{
    size_t hl = 0;
    const char *h = http_req_header(req, "Authorization", &hl);
    if (!h || hl == 0) return auth_fail(resp, IM_E_NO_AUTH_INFO, "Authorization: Basic base64(appKey:masterSecret) required");
    while (hl && (*h == ' ' || *h == '\t')) h++, hl--;
    if (hl < 6 || strncasecmp(h, "Basic", 5) != 0 || (h[5] != ' ' && h[5] != '\t'))
        return auth_fail(resp, IM_E_AUTH_FAILED, NULL);
    h += 6;
    hl -= 6;
    while (hl && (*h == ' ' || *h == '\t')) h++, hl--;
    while (hl && (h[hl - 1] == ' ' || h[hl - 1] == '\t')) hl--;
    size_t pad = 0;
    while (pad < 2 && hl > pad && h[hl - 1 - pad] == '=') pad++;
    /* appKey (24) + ':' + secret (24): anything much longer is not a credential of ours */
    uint8_t raw[128];
    int n = hl - pad <= 160 ? auth_b64_dec(h, hl - pad, raw, sizeof raw - 1, false) : -1;
    if (n < 0) return auth_fail(resp, IM_E_AUTH_FAILED, NULL);
    const uint8_t *colon = memchr(raw, ':', (size_t)n);
    if (!colon) return auth_fail(resp, IM_E_AUTH_FAILED, NULL);
    size_t kl = (size_t)(colon - raw), sl = (size_t)n - kl - 1;
    struct au_shard *s = ctx;
    struct im_dir *d = im_dir_of(s);
    /* Unknown app keys get the same answer as wrong secrets, after the same work (a check against a
     * secret no input matches): no oracle, by answer or by time, for which keys exist. */
    static const struct auth_secret no_secret; /* zero salt and hash: matching it needs a SHA-256 preimage */
    struct dir_app *a = im_dir_app_by_key(d, (const char *)raw, kl);
    const struct auth_secret *sec = a ? app_secret(a) : NULL;
    int ok = auth_secret_check(sec ? sec : &no_secret, (const char *)colon + 1, sl);
    if (!sec || ok != 1) {
        explicit_bzero(raw, sizeof raw);
        return auth_fail(resp, IM_E_AUTH_FAILED, NULL);
    }
    explicit_bzero(raw, sizeof raw);
    c->s = s;
    c->d = d;
    c->app = a->id;
    memcpy(c->appkey, a->key, sizeof c->appkey);
    return true;
}

/* ------------------------------------------------------------------ request parts */

int rest_query_u64(const struct http_req *req, const char *name, uint64_t max, uint64_t *out)
{
    char v[32];
    ssize_t n = req->query ? http_query_get(req->query, req->query_len, name, v, sizeof v) : -1;
    if (n == -1) return 0;
    if (n <= 0 || n > 19) return -1;
    uint64_t x = 0;
    for (ssize_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)v[i])) return -1;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    if (x > max) return -1;
    *out = x;
    return 1;
}

bool rest_paging(const struct http_req *req, struct http_resp *resp, uint64_t *start, uint64_t *count)
{
    *start = 0;
    int r = rest_query_u64(req, "start", INT64_MAX, start);
    if (r < 0) {
        rest_error(resp, IM_E_PARAM, "start: must be an integer >= 0");
        return false;
    }
    r = rest_query_u64(req, "count", AU_IM_LIST_COUNT_MAX, count);
    if (r <= 0 || *count == 0) {
        rest_error(resp, IM_E_PARAM, "count: must be an integer 1..500");
        return false;
    }
    return true;
}

bool rest_username_param(const struct http_req *req, size_t i, struct http_resp *resp, const char **name,
                         size_t *len)
{
    AU_ASSERT(i < req->nparams);
    *name = req->params[i].p;
    *len = req->params[i].len;
    if (!im_username_valid(*name, *len)) {
        rest_error(resp, IM_E_PARAM, "username: 4-128 bytes, letters, digits, _ . - @, starting with a letter or digit");
        return false;
    }
    return true;
}

struct dir_group *rest_group_param(const struct http_req *req, struct http_resp *resp, void *ctx,
                                   struct rest_ctx *c, uint64_t *gid)
{
    if (!rest_auth(req, resp, ctx, c)) return NULL;
    AU_ASSERT(req->nparams >= 1);
    if (!im_gid_parse(req->params[0].p, req->params[0].len, gid)) {
        rest_error(resp, IM_E_PARAM, "gid: must be a decimal group id");
        return NULL;
    }
    struct dir_group *g = im_dir_group(c->d, c->app, *gid);
    if (!g) rest_error(resp, IM_E_NO_GROUP, NULL);
    return g;
}

/* ------------------------------------------------------------------ paged scans */

struct scan {
    rest_row_fn row;
    rest_done_fn done;
    void *arg;
    uint64_t skip, left;        /* left: rows still wanted (UINT64_MAX = all) */
    size_t el, ll;
    uint8_t end[KS_KEY_MAX], last[KS_KEY_MAX];
};

static void scan_next(struct au_shard *s, struct scan *sc, bool after);

static void scan_cb(struct au_shard *s, void *arg, int err, const struct store_kv *kv, uint32_t n, bool more)
{
    struct scan *sc = arg;
    bool stop = false;
    if (err) {
        sc->done(s, sc->arg, err);
        free(sc);
        return;
    }
    for (uint32_t i = 0; i < n && !stop; i++) {
        if (sc->skip) {
            sc->skip--;
            continue;
        }
        if (!sc->row(sc->arg, &kv[i]) || --sc->left == 0) stop = true;
    }
    if (n) {
        AU_ASSERT(kv[n - 1].kl <= sizeof sc->last);
        memcpy(sc->last, kv[n - 1].k, kv[n - 1].kl);
        sc->ll = kv[n - 1].kl;
    }
    if (!stop && more && n) {
        scan_next(s, sc, true);
        return;
    }
    sc->done(s, sc->arg, 0);
    free(sc);
}

static void scan_next(struct au_shard *s, struct scan *sc, bool after)
{
    uint64_t want = sc->left == UINT64_MAX ? REST_SCAN_PAGE : sc->skip + sc->left;
    uint32_t lim = want > REST_SCAN_PAGE ? REST_SCAN_PAGE : (uint32_t)want;
    store_scan(rest_store(), s->id, sc->last, sc->ll, sc->el ? sc->end : NULL, sc->el, lim,
               after ? STORE_SCAN_AFTER : 0, scan_cb, sc);
}

void rest_scan(struct au_shard *s, const uint8_t *start, size_t sl, const uint8_t *end, size_t el, uint64_t skip,
               uint64_t limit, rest_row_fn row, rest_done_fn done, void *arg)
{
    struct scan *sc = calloc(1, sizeof *sc);
    AU_ASSERT(sc != NULL && sl <= sizeof sc->last && el <= sizeof sc->end);
    sc->row = row;
    sc->done = done;
    sc->arg = arg;
    sc->skip = skip;
    sc->left = limit ? limit : UINT64_MAX;
    memcpy(sc->last, start, sl);
    sc->ll = sl;
    if (el) memcpy(sc->end, end, el);
    sc->el = el;
    scan_next(s, sc, false);
}

/* ------------------------------------------------------------------ many gets */

struct many {
    rest_got_fn got;
    rest_done_fn done;
    void *arg;
    size_t pending;
    struct many_one {
        struct many *m;
        size_t i;
    } one[];
};

static void many_cb(struct au_shard *s, void *arg, int err, const void *v, size_t vl)
{
    struct many_one *o = arg;
    struct many *m = o->m;
    m->got(m->arg, o->i, err, v, vl);
    if (--m->pending == 0) {
        m->done(s, m->arg, 0);
        free(m);
    }
}

void rest_get_many(struct au_shard *s, size_t n, rest_key_fn keyf, rest_got_fn got, rest_done_fn done, void *arg)
{
    if (n == 0) {
        done(s, arg, 0);
        return;
    }
    struct many *m = malloc(sizeof *m + n * sizeof m->one[0]);
    AU_ASSERT(m != NULL);
    m->got = got;
    m->done = done;
    m->arg = arg;
    m->pending = n;
    uint8_t key[KS_KEY_MAX];
    for (size_t i = 0; i < n; i++) {
        m->one[i].m = m;
        m->one[i].i = i;
        size_t kl = keyf(arg, i, key);
        store_get(rest_store(), s->id, key, kl, many_cb, &m->one[i]);
    }
}

/* ------------------------------------------------------------------ transactions */

/* A message a shard posts to itself from inside the loop's queue drain (a store or authpool callback)
 * waits for the shard's next wake-up, up to a second: drain_inbox (core/loop.c) does not look at the
 * shard's own queue again, and a self-post rings no doorbell. im_txn always posts to the writer, so on
 * the writer we ask a neighbour shard to post an empty message back: its doorbell wakes us.
 * (Remove once drain_inbox re-checks its own queue.) */
struct wake_x {
    struct au_xmsg x;
    int back;
};

static void wake_noop(struct au_shard *s, struct au_xmsg *x)
{
    (void)s;
    free(x);
}

static void wake_dispose(struct au_xmsg *x) { free(x); }

static void wake_bounce(struct au_shard *s, struct au_xmsg *x)
{
    struct wake_x *w = (struct wake_x *)x;
    w->x.handler = wake_noop;
    au_shard_post_disposable(s, w->back, &w->x, wake_dispose);
}

void rest_txn(struct au_shard *s, im_txn_prepare_fn prepare, im_txn_done_fn done, void *arg)
{
    im_txn(s, prepare, done, arg);
    if (s->id != IM_DIR_WRITER || s->nshards < 2) return;
    struct wake_x *w = malloc(sizeof *w);
    AU_ASSERT(w != NULL);
    w->x.handler = wake_bounce;
    w->back = s->id;
    au_shard_post_disposable(s, (s->id + 1) % s->nshards, &w->x, wake_dispose);
}

/* ------------------------------------------------------------------ serialised read-modify-write */

struct rmw_job {
    struct au_xmsg x;
    struct rmw_job *wait_head, *wait_tail; /* holder only: jobs queued behind it on the same key */
    struct rmw_job *wait_next;
    rest_rmw_fn fn;
    rest_done_fn done;
    void *arg;
    json_t *rec;
    int from;
    int err;
    size_t kl;
    uint8_t key[KS_KEY_MAX];
};

/* Key -> the job holding it. Touched only on the writer shard's thread. */
static struct au_hash g_rmw_locks;
static bool g_rmw_locks_init;

static void rmw_read(struct au_shard *w, struct rmw_job *j);

static void rmw_deliver(struct au_shard *s, struct au_xmsg *x)
{
    struct rmw_job *j = (struct rmw_job *)x;
    j->done(s, j->arg, j->err);
    free(j);
}

static void rmw_release(struct au_shard *w, struct rmw_job *j)
{
    au_hash_del(&g_rmw_locks, j->key, j->kl);
    struct rmw_job *next = j->wait_head;
    if (next) {
        next->wait_head = next->wait_next;
        next->wait_tail = next->wait_head ? j->wait_tail : NULL;
        au_hash_put(&g_rmw_locks, next->key, next->kl, next);
        rmw_read(w, next);
    }
    /* After the transaction's broadcast (FIFO per shard pair): the submitter applies the change before
     * it runs done. On the writer itself the change was applied at prepare: answer at once. */
    if (j->from == w->id) {
        rmw_deliver(w, &j->x);
        return;
    }
    j->x.handler = rmw_deliver;
    au_shard_post(w, j->from, &j->x);
}

static int rmw_prepare(struct im_dir *d, void *arg, struct store_batch *b, struct im_changes *ch)
{
    struct rmw_job *j = arg;
    int r = j->fn(d, j->arg, j->rec, b, ch);
    if (r == 0 && j->rec) rest_put_json(b, j->key, j->kl, j->rec);
    return r;
}

static void rmw_txn_done(struct au_shard *w, void *arg, int err)
{
    struct rmw_job *j = arg;
    j->err = err;
    json_decref(j->rec);
    j->rec = NULL;
    rmw_release(w, j);
}

static void rmw_got(struct au_shard *w, void *arg, int err, const void *v, size_t vl)
{
    struct rmw_job *j = arg;
    if (err && err != STORE_ENOTFOUND) {
        j->err = -IM_E_SYSTEM;
        rmw_release(w, j);
        return;
    }
    j->rec = NULL;
    if (!err) {
        j->rec = json_loadb(v, vl, 0, NULL);
        if (!json_is_object(j->rec)) {
            au_error("rest: damaged JSON record (%zu bytes) under prefix 0x%02x", vl, j->key[0]);
            json_decref(j->rec);
            j->err = -IM_E_SYSTEM;
            j->rec = NULL;
            rmw_release(w, j);
            return;
        }
    }
    rest_txn(w, rmw_prepare, rmw_txn_done, j);
}

static void rmw_read(struct au_shard *w, struct rmw_job *j) { store_get(rest_store(), w->id, j->key, j->kl, rmw_got, j); }

static void rmw_start(struct au_shard *w, struct au_xmsg *x)
{
    struct rmw_job *j = (struct rmw_job *)x;
    if (!g_rmw_locks_init) {
        AU_ASSERT(au_hash_init(&g_rmw_locks, 64) == 0);
        g_rmw_locks_init = true;
    }
    struct rmw_job *holder = au_hash_get(&g_rmw_locks, j->key, j->kl);
    if (holder) {
        if (holder->wait_tail) holder->wait_tail->wait_next = j;
        else holder->wait_head = j;
        holder->wait_tail = j;
        return;
    }
    au_hash_put(&g_rmw_locks, j->key, j->kl, j);
    rmw_read(w, j);
}

void rest_rmw(struct au_shard *from, const uint8_t *key, size_t kl, rest_rmw_fn fn, rest_done_fn done, void *arg)
{
    struct rmw_job *j = calloc(1, sizeof *j);
    AU_ASSERT(j != NULL && kl <= sizeof j->key);
    j->x.handler = rmw_start;
    j->fn = fn;
    j->done = done;
    j->arg = arg;
    j->from = from->id;
    memcpy(j->key, key, kl);
    j->kl = kl;
    au_shard_post(from, IM_DIR_WRITER, &j->x);
}

/* ------------------------------------------------------------------ fan-out */

struct fan {
    rest_each_fn each;
    rest_done_fn done;
    void *arg;
    int origin, pending;
    struct fan_msg {
        struct au_xmsg x;
        struct fan *f;
    } m[];
};

static void fan_back(struct au_shard *s, struct au_xmsg *x)
{
    struct fan *f = ((struct fan_msg *)x)->f;
    if (--f->pending == 0) {
        f->done(s, f->arg, 0);
        free(f);
    }
}

static void fan_run(struct au_shard *s, struct au_xmsg *x)
{
    struct fan *f = ((struct fan_msg *)x)->f;
    f->each(s, f->arg);
    x->handler = fan_back;
    au_shard_post(s, f->origin, x);
}

void rest_fanout(struct au_shard *from, rest_each_fn each, rest_done_fn done, void *arg)
{
    int n = from->nshards;
    struct fan *f = calloc(1, sizeof *f + (size_t)n * sizeof f->m[0]);
    AU_ASSERT(f != NULL);
    f->each = each;
    f->done = done;
    f->arg = arg;
    f->origin = from->id;
    f->pending = n;
    for (int i = 0; i < n; i++) {
        f->m[i].f = f;
        f->m[i].x.handler = fan_run;
        if (i != from->id) au_shard_post(from, i, &f->m[i].x);
    }
    /* the local part runs now (a post to oneself waits for the next loop iteration); done may run
     * before rest_fanout returns */
    each(from, arg);
    fan_back(from, &f->m[from->id].x);
}

/* ------------------------------------------------------------------ records */

char *rest_json_dump(const json_t *o, size_t *len)
{
    char *s = json_dumps(o, JSON_COMPACT);
    AU_ASSERT(s != NULL);
    if (len) *len = strlen(s);
    return s;
}

uint64_t rest_json_u64(const json_t *o, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(o, key));
    return v > 0 ? (uint64_t)v : 0;
}

const char *rest_json_str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

void rest_put_json(struct store_batch *b, const uint8_t *k, size_t kl, const json_t *o)
{
    size_t n;
    char *s = rest_json_dump(o, &n);
    store_batch_put(b, k, kl, s, n);
    free(s);
}

static void set_str(json_t *o, const char *key, const char *v) { json_object_set_new(o, key, json_string(v)); }

void rest_user_rec_profile(json_t *rec, const struct im_profile *p)
{
    if (p->set & IM_PF_NICKNAME) set_str(rec, "nickname", p->nickname);
    if (p->set & IM_PF_AVATAR) set_str(rec, "avatar", p->avatar);
    if (p->set & IM_PF_BIRTHDAY) set_str(rec, "birthday", p->birthday);
    if (p->set & IM_PF_GENDER) json_object_set_new(rec, "gender", json_integer(p->gender));
    if (p->set & IM_PF_SIGNATURE) set_str(rec, "signature", p->signature);
    if (p->set & IM_PF_REGION) set_str(rec, "region", p->region);
    if (p->set & IM_PF_ADDRESS) set_str(rec, "address", p->address);
    if (p->set & IM_PF_EXTRAS) {
        json_t *ex = json_loads(p->extras, 0, NULL);
        json_object_set_new(rec, "extras", json_is_object(ex) ? ex : json_object());
        if (ex && !json_is_object(ex)) json_decref(ex);
    }
}

json_t *rest_user_rec_new(const char *name, uint64_t uid, const char *pw_hash, const struct im_profile *p,
                          uint64_t now_ms)
{
    json_t *o = json_object();
    AU_ASSERT(o != NULL);
    set_str(o, "username", name);
    json_object_set_new(o, "uid", json_integer((json_int_t)uid));
    set_str(o, "password", pw_hash);
    rest_user_rec_profile(o, p);
    json_object_set_new(o, "ctime", json_integer((json_int_t)now_ms));
    json_object_set_new(o, "mtime", json_integer((json_int_t)now_ms));
    json_object_set_new(o, "forbidden", json_false());
    json_object_set_new(o, "token_gen", json_integer(0));
    return o;
}

static void copy_field(const json_t *rec, const char *key, char *dst, size_t cap, uint32_t bit, uint32_t *set)
{
    const char *s = json_string_value(json_object_get(rec, key));
    if (!s) return;
    snprintf(dst, cap, "%s", s);
    *set |= bit;
}

void rest_user_view(const json_t *rec, const char *name, struct im_user *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->username, sizeof out->username, "%s", name);
    struct im_profile *p = &out->profile;
    copy_field(rec, "nickname", p->nickname, sizeof p->nickname, IM_PF_NICKNAME, &p->set);
    copy_field(rec, "avatar", p->avatar, sizeof p->avatar, IM_PF_AVATAR, &p->set);
    copy_field(rec, "birthday", p->birthday, sizeof p->birthday, IM_PF_BIRTHDAY, &p->set);
    copy_field(rec, "signature", p->signature, sizeof p->signature, IM_PF_SIGNATURE, &p->set);
    copy_field(rec, "region", p->region, sizeof p->region, IM_PF_REGION, &p->set);
    copy_field(rec, "address", p->address, sizeof p->address, IM_PF_ADDRESS, &p->set);
    json_t *g = json_object_get(rec, "gender");
    if (json_is_integer(g)) {
        p->gender = (int)json_integer_value(g);
        p->set |= IM_PF_GENDER;
    }
    json_t *ex = json_object_get(rec, "extras");
    if (json_is_object(ex)) {
        char *s = json_dumps(ex, JSON_COMPACT);
        if (s && strlen(s) < sizeof p->extras) {
            memcpy(p->extras, s, strlen(s) + 1);
            p->set |= IM_PF_EXTRAS;
        }
        free(s);
    }
    out->ctime_ms = rest_json_u64(rec, "ctime");
    out->mtime_ms = rest_json_u64(rec, "mtime");
}

size_t rest_user_key(uint8_t *buf, uint32_t app, const struct dir_user *u)
{
    return ks_im_user(buf, app, u->admin, im_user_name(u), u->name_len);
}

void rest_group_view(const json_t *rec, uint64_t gid, const char *appkey, struct im_group *out)
{
    memset(out, 0, sizeof *out);
    out->gid = gid;
    out->flag = (int)rest_json_u64(rec, "flag");
    if (out->flag != IM_GROUP_PUBLIC) out->flag = IM_GROUP_PRIVATE;
    out->max_members = (uint32_t)rest_json_u64(rec, "max_member_count");
    out->ctime_ms = rest_json_u64(rec, "ctime");
    out->mtime_ms = rest_json_u64(rec, "mtime");
    out->appkey = appkey;
    snprintf(out->owner, sizeof out->owner, "%s", rest_json_str(rec, "owner_username"));
    snprintf(out->name, sizeof out->name, "%s", rest_json_str(rec, "name"));
    snprintf(out->desc, sizeof out->desc, "%s", rest_json_str(rec, "desc"));
    snprintf(out->avatar, sizeof out->avatar, "%s", rest_json_str(rec, "avatar"));
}

uint64_t rest_count_users(struct im_dir *d, uint32_t app, bool admins)
{
    uint64_t n = 0;
    struct au_hash_iter it;
    au_hash_iter_init(&d->users, &it);
    while (au_hash_next(&d->users, &it)) {
        const struct dir_user *u = it.value;
        if (u->app == app && (bool)u->admin == admins) n++;
    }
    return n;
}

uint64_t rest_count_groups(struct im_dir *d, uint32_t app)
{
    uint64_t n = 0;
    struct au_hash_iter it;
    au_hash_iter_init(&d->groups, &it);
    while (au_hash_next(&d->groups, &it))
        if (((const struct dir_group *)it.value)->app == app) n++;
    return n;
}
