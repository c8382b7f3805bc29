/* rest_apps.c - the operator API: apps (tenants). docs/rest-api.md "Operator API".
 *
 *   POST   /ops/v1/apps            {"name": "..."}  -> 201 {"app_id", "appkey", "master_secret", "name"}
 *   GET    /ops/v1/apps                             -> 200 {"apps": [{"app_id", "appkey", "name", "ctime_ms",
 *                                                                     "users", "admins", "groups"}]}
 *   DELETE /ops/v1/apps/{appkey}                    -> 200 {"app_id", "appkey", "deleted_keys"}
 *
 * Authentication: `Authorization: Bearer <token>`, the token being the content of <data>/operator.token
 * (64 hex chars = 32 random bytes, created mode 0600 at the first start). The master secret is shown
 * once, at creation; only its salted hash is stored.
 *
 * Deleting an app: one directory transaction removes the app record and its appkey index and drops
 * the app from every replica (REST and MQTT logins with its key fail from then on, connected devices
 * are closed); then every key of the app (MQTT retained and sessions, IM, push: every per-app family)
 * is removed by prefix, in pages of REST_DEL_PAGE keys: scan, delete, rescan. App ids are never
 * reused, so a crash half-way leaves only unreachable keys. The default app (AU_DEFAULT_APP, the
 * topic space of plain MQTT clients) cannot be deleted. */
#include "gateway/im/rest_internal.h"

#include "gateway/im/apps.h"
#include "gateway/im/auth.h"
#include "gateway/mqtt/broker.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define APP_ID_MAX ((1u << 24) - 1) /* the directory packs (app, gid) into 64 bits: 24 bits of app */

static char g_token[REST_OPERATOR_TOKEN_LEN + 1];
static bool g_token_ok;

/* ------------------------------------------------------------------ the operator token */

static int token_read(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return errno == ENOENT ? 1 : -1;
    }
    struct stat st;
    char buf[REST_OPERATOR_TOKEN_LEN + 8];
    ssize_t n = -1;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) snprintf(err, errlen, "%s: not a regular file", path);
    else if (st.st_mode & 077) snprintf(err, errlen, "%s: readable by others (chmod 600 it)", path);
    else n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) {
        if (!err[0]) snprintf(err, errlen, "%s: cannot read", path);
        return -1;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) n--;
    bool hex = n == REST_OPERATOR_TOKEN_LEN;
    for (ssize_t i = 0; hex && i < n; i++) hex = isxdigit((unsigned char)buf[i]);
    if (!hex) {
        snprintf(err, errlen, "%s: not %d hex characters", path, REST_OPERATOR_TOKEN_LEN);
        return -1;
    }
    memcpy(g_token, buf, (size_t)n);
    g_token[n] = 0;
    explicit_bzero(buf, sizeof buf);
    return 0;
}

static int token_create(const char *dir, const char *path, char *err, size_t errlen)
{
    uint8_t rnd[REST_OPERATOR_TOKEN_LEN / 2];
    char hex[REST_OPERATOR_TOKEN_LEN + 2];
    if (RAND_priv_bytes(rnd, sizeof rnd) != 1) {
        snprintf(err, errlen, "no randomness for the operator token");
        return -1;
    }
    for (size_t i = 0; i < sizeof rnd; i++) snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    hex[REST_OPERATOR_TOKEN_LEN] = '\n';
    char tmp[AU_CONFIG_PATH_MAX + 64];
    snprintf(tmp, sizeof tmp, "%s/.%s.%d", dir, REST_OPERATOR_TOKEN_FILE, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    bool ok = write(fd, hex, REST_OPERATOR_TOKEN_LEN + 1) == REST_OPERATOR_TOKEN_LEN + 1 && fsync(fd) == 0;
    close(fd);
    explicit_bzero(hex, sizeof hex);
    explicit_bzero(rnd, sizeof rnd);
    /* link(): a concurrent starter's file wins and both read the same token */
    if (!ok || (link(tmp, path) != 0 && errno != EEXIST)) {
        snprintf(err, errlen, "%s: cannot create", path);
        unlink(tmp);
        return -1;
    }
    unlink(tmp);
    return 0;
}

static void token_init(const char *dir)
{
    char path[AU_CONFIG_PATH_MAX + 32], err[AU_CONFIG_PATH_MAX + 96] = "";
    snprintf(path, sizeof path, "%s/%s", dir, REST_OPERATOR_TOKEN_FILE);
    int r = token_read(path, err, sizeof err);
    if (r == 1) {
        err[0] = 0;
        r = token_create(dir, path, err, sizeof err) == 0 ? token_read(path, err, sizeof err) : -1;
        if (r == 0) au_info("operator token created in %s", path);
    }
    g_token_ok = r == 0;
    if (!g_token_ok) au_error("operator API disabled: %s", err);
}

bool rest_ops_auth(const struct http_req *req, struct http_resp *resp)
{
    size_t hl = 0;
    const char *h = http_req_header(req, "Authorization", &hl);
    while (h && hl && (*h == ' ' || *h == '\t')) h++, hl--;
    while (h && hl && (h[hl - 1] == ' ' || h[hl - 1] == '\t')) hl--;
    bool ok = g_token_ok && h && hl > 7 && strncasecmp(h, "Bearer", 6) == 0 && (h[6] == ' ' || h[6] == '\t');
    if (ok) {
        h += 7, hl -= 7;
        while (hl && (*h == ' ' || *h == '\t')) h++, hl--;
        ok = hl == REST_OPERATOR_TOKEN_LEN && CRYPTO_memcmp(h, g_token, REST_OPERATOR_TOKEN_LEN) == 0;
    }
    if (!ok) {
        http_resp_header(resp, "WWW-Authenticate", "Bearer realm=\"aurora-operator\"");
        http_resp_error(resp, 401, 401, g_token_ok ? "operator token required (Authorization: Bearer <token>)"
                                                   : "operator API disabled (no operator token)");
    }
    return ok;
}

static void ops_ctx(void *ctx, struct rest_ctx *c)
{
    memset(c, 0, sizeof *c);
    c->s = ctx;
    c->d = im_dir_of(c->s);
}

/* ------------------------------------------------------------------ create */

struct acreate {
    struct rest_async a;
    uint32_t id;
    uint64_t now;
    char appkey[AUTH_KEY_LEN + 1], secret[AUTH_KEY_LEN + 1], hash[AUTH_SECRET_HASH_STR_MAX];
    char name[REST_APP_NAME_MAX + 1];
};

static int acreate_prepare(struct im_dir *d, void *arg, struct store_batch *b, struct im_changes *ch)
{
    struct acreate *ac = arg;
    if (im_dir_app_by_key(d, ac->appkey, strlen(ac->appkey))) return -IM_E_BUSY; /* 62^24 keys: never */
    uint64_t id;
    do id = im_dir_next_id(d, 0, "app", b);
    while (id == AU_DEFAULT_APP || (id <= APP_ID_MAX && im_dir_app(d, (uint32_t)id)));
    if (id > APP_ID_MAX) return -IM_E_SYSTEM;
    ac->id = (uint32_t)id;
    im_app_records(b, ac->id, ac->appkey, ac->hash, ac->name, ac->now);
    struct im_change *c = im_changes_add(ch, IM_CH_APP_PUT);
    c->app = ac->id;
    c->ctime_ms = ac->now;
    snprintf(c->str, sizeof c->str, "%s", ac->appkey);
    snprintf(c->str2, sizeof c->str2, "%s", ac->hash);
    snprintf(c->name, sizeof c->name, "%s", ac->name);
    return 0;
}

static void acreate_done(struct au_shard *s, void *arg, int err)
{
    (void)s;
    struct acreate *ac = arg;
    if (err) {
        rest_finish_error(&ac->a, rest_code_of(err), "the app could not be created");
    } else {
        char body[512];
        struct im_jw w;
        im_jw_init(&w, body, sizeof body);
        im_jw_obj_begin(&w);
        im_jw_key(&w, "app_id");
        im_jw_u64(&w, ac->id);
        im_jw_key(&w, "appkey");
        im_jw_str(&w, ac->appkey);
        im_jw_key(&w, "master_secret");
        im_jw_str(&w, ac->secret);
        im_jw_key(&w, "name");
        im_jw_str(&w, ac->name);
        im_jw_obj_end(&w);
        size_t n = im_jw_finish(&w);
        AU_ASSERT(n < sizeof body);
        rest_finish_json(&ac->a, 201, body, n);
        explicit_bzero(body, sizeof body);
    }
    explicit_bzero(ac, sizeof *ac);
    free(ac);
}

static void post_app(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    if (!rest_ops_auth(req, resp)) return;
    size_t bl;
    const char *body = rest_body(req, &bl);
    json_error_t je;
    json_t *o = bl <= 4096 ? json_loadb(body, bl, JSON_REJECT_DUPLICATES, &je) : NULL;
    json_t *nm = json_object_get(o, "name");
    const char *name = json_string_value(nm);
    size_t nl = name ? json_string_length(nm) : 0;
    if (!json_is_object(o) || !name || nl == 0 || nl > REST_APP_NAME_MAX || strlen(name) != nl ||
        strpbrk(name, "\r\n")) {
        json_decref(o);
        rest_error(resp, IM_E_PARAM, "body: {\"name\": 1-64 bytes, no CR/LF}");
        return;
    }
    struct acreate *ac = calloc(1, sizeof *ac);
    AU_ASSERT(ac != NULL);
    memcpy(ac->name, name, nl + 1);
    json_decref(o);
    if (auth_gen_key(ac->appkey) != 0 || auth_gen_key(ac->secret) != 0 ||
        auth_secret_hash(ac->secret, strlen(ac->secret), ac->hash) < 0) {
        rest_error(resp, IM_E_SYSTEM, "no randomness for the app credentials");
        free(ac);
        return;
    }
    ac->now = au_wall_ms();
    struct rest_ctx c;
    ops_ctx(ctx, &c);
    rest_defer(&ac->a, &c, resp);
    rest_txn(c.s, acreate_prepare, acreate_done, ac);
}

/* ------------------------------------------------------------------ list */

static int app_cmp(const void *a, const void *b)
{
    uint32_t x = (*(struct dir_app *const *)a)->id, y = (*(struct dir_app *const *)b)->id;
    return x < y ? -1 : x > y;
}

static size_t apps_render(struct im_dir *d, struct dir_app *const *v, size_t k, char *buf, size_t cap)
{
    struct im_jw w;
    im_jw_init(&w, buf, cap);
    im_jw_obj_begin(&w);
    im_jw_key(&w, "apps");
    im_jw_arr_begin(&w);
    for (size_t i = 0; i < k; i++) {
        im_jw_obj_begin(&w);
        im_jw_key(&w, "app_id");
        im_jw_u64(&w, v[i]->id);
        im_jw_key(&w, "appkey");
        im_jw_str(&w, v[i]->key);
        im_jw_key(&w, "name");
        im_jw_str(&w, v[i]->name);
        im_jw_key(&w, "ctime_ms");
        im_jw_u64(&w, v[i]->ctime_ms);
        im_jw_key(&w, "users");
        im_jw_u64(&w, rest_count_users(d, v[i]->id, false));
        im_jw_key(&w, "admins");
        im_jw_u64(&w, rest_count_users(d, v[i]->id, true));
        im_jw_key(&w, "groups");
        im_jw_u64(&w, rest_count_groups(d, v[i]->id));
        im_jw_obj_end(&w);
    }
    im_jw_arr_end(&w);
    im_jw_obj_end(&w);
    return im_jw_finish(&w);
}

static void get_apps(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    if (!rest_ops_auth(req, resp)) return;
    struct rest_ctx c;
    ops_ctx(ctx, &c);
    size_t n = au_hash_count(&c.d->apps), k = 0;
    struct dir_app **v = calloc(n + 1, sizeof *v);
    AU_ASSERT(v != NULL);
    struct au_hash_iter it;
    au_hash_iter_init(&c.d->apps, &it);
    while (au_hash_next(&c.d->apps, &it) && k < n) v[k++] = it.value;
    qsort(v, k, sizeof *v, app_cmp);
    char *body;
    size_t len;
    REST_RENDER(body, len, apps_render(c.d, v, k, RB, RC));
    rest_json(resp, 200, body, len);
    free(body);
    free(v);
}

/* ------------------------------------------------------------------ delete */

/* Per-app key families removed with an app (each key starts with prefix | app u32). */
static const uint8_t k_app_families[] = {
    KS_MQTT_RETAINED, KS_MQTT_SESSION, KS_IM_USER, KS_IM_ADMIN, KS_IM_GROUP, KS_IM_GMEMBER, KS_IM_UGROUP,
    KS_IM_CONV, KS_IM_CONVIDX, KS_IM_MSG, KS_IM_MSGID, KS_IM_CLIMSG, KS_IM_CURSOR, KS_IM_MEDIA, KS_IM_UCONV,
    KS_IM_COUNTER,
    /* 0x20..0x3f: the rest of the IM range and push */
    0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f,
    0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f,
};

struct adel {
    struct rest_async a;
    uint32_t id;
    char key[IM_APPKEY_LEN + 1];
    size_t fam;                   /* index into k_app_families being emptied */
    uint64_t deleted;
};

static void adel_scan(struct au_shard *s, struct adel *ad);

static void adel_answer(struct adel *ad, int code)
{
    if (code) {
        rest_finish_error(&ad->a, code, NULL);
    } else {
        char body[256];
        int n = snprintf(body, sizeof body, "{\"app_id\":%u,\"appkey\":\"%s\",\"deleted_keys\":%llu}", ad->id, ad->key,
                         (unsigned long long)ad->deleted);
        rest_finish_json(&ad->a, 200, body, (size_t)n);
    }
    free(ad);
}

static void adel_written(struct au_shard *s, void *arg, int err)
{
    struct adel *ad = arg;
    if (err) {
        au_error("app %u: deleting its keys failed (%d); %llu deleted", ad->id, err, (unsigned long long)ad->deleted);
        adel_answer(ad, IM_E_SYSTEM);
        return;
    }
    adel_scan(s, ad); /* the same family again until a scan finds nothing */
}

static void adel_scanned(struct au_shard *s, void *arg, int err, const struct store_kv *kv, uint32_t n, bool more)
{
    (void)more;
    struct adel *ad = arg;
    if (err) {
        adel_answer(ad, IM_E_SYSTEM);
        return;
    }
    if (n == 0) {
        ad->fam++;
        adel_scan(s, ad);
        return;
    }
    struct store_batch *b = store_batch_new();
    for (uint32_t i = 0; i < n; i++) store_batch_del(b, kv[i].k, kv[i].kl);
    ad->deleted += n;
    store_write(rest_store(), s->id, b, adel_written, ad);
}

static void adel_scan(struct au_shard *s, struct adel *ad)
{
    if (ad->fam == sizeof k_app_families) {
        au_info("app %u (%s) deleted: %llu keys", ad->id, ad->key, (unsigned long long)ad->deleted);
        adel_answer(ad, 0);
        return;
    }
    uint8_t p[8], e[KS_KEY_MAX];
    size_t pl = ks_app_prefix(p, (enum ks_prefix)k_app_families[ad->fam], ad->id);
    size_t el = store_prefix_end(p, pl, e);
    store_scan(rest_store(), s->id, p, pl, e, el, REST_DEL_PAGE, 0, adel_scanned, ad);
}

static int adel_prepare(struct im_dir *d, void *arg, struct store_batch *b, struct im_changes *ch)
{
    struct adel *ad = arg;
    struct dir_app *a = im_dir_app(d, ad->id);
    if (!a || strcmp(a->key, ad->key) != 0) return -IM_E_NO_APPKEY;
    uint8_t key[KS_KEY_MAX];
    store_batch_del(b, key, ks_im_app(key, ad->id));
    store_batch_del(b, key, ks_im_appkey(key, ad->key, IM_APPKEY_LEN));
    struct im_change *c = im_changes_add(ch, IM_CH_APP_DEL);
    c->app = ad->id;
    return 0;
}

static void adel_done(struct au_shard *s, void *arg, int err)
{
    struct adel *ad = arg;
    if (err) {
        if (rest_code_of(err) == IM_E_NO_APPKEY) {
            struct http_resp *r = rest_alive(&ad->a) ? http_gw_defer_resp(ad->a.defer) : NULL;
            if (r) http_resp_error(r, 404, 404, "no such app");
            http_gw_defer_finish(ad->a.defer);
            free(ad);
            return;
        }
        adel_answer(ad, rest_code_of(err));
        return;
    }
    rest_drop_user_devices(s, ad->id, NULL);
    adel_scan(s, ad);
}

static void delete_app(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    if (!rest_ops_auth(req, resp)) return;
    struct rest_ctx c;
    ops_ctx(ctx, &c);
    const char *key = req->params[0].p;
    struct dir_app *a = im_dir_app_by_key(c.d, key, req->params[0].len);
    if (!a) {
        http_resp_error(resp, 404, 404, "no such app");
        return;
    }
    if (a->id == AU_DEFAULT_APP) {
        http_resp_error(resp, 403, 403, "the default app cannot be deleted");
        return;
    }
    struct adel *ad = calloc(1, sizeof *ad);
    AU_ASSERT(ad != NULL);
    ad->id = a->id;
    memcpy(ad->key, a->key, sizeof ad->key);
    rest_defer(&ad->a, &c, resp);
    rest_txn(c.s, adel_prepare, adel_done, ad);
}

/* ------------------------------------------------------------------ routes */

static const struct http_route_def routes[] = {
    { "POST", "/ops/v1/apps", post_app },
    { "GET", "/ops/v1/apps", get_apps },
    { "DELETE", "/ops/v1/apps/{appkey}", delete_app },
};
const struct http_routes rest_apps_routes = { routes, AU_ARRAY_LEN(routes) };

void rest_apps_init(const struct au_config *cfg)
{
    token_init(cfg->data_dir);
    http_gw_set_operator_auth(rest_ops_auth); /* GET /metrics is the operator's too */
}
