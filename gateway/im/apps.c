/* apps.c - app records and the default app (see apps.h). */
#include "gateway/im/apps.h"
#include "gateway/im/auth.h"
#include "store/keyspace.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void im_app_records(struct store_batch *b, uint32_t app, const char *appkey, const char *secret_hash,
                    const char *name, uint64_t ctime_ms)
{
    uint8_t key[KS_KEY_MAX];
    json_t *o = json_pack("{s:s,s:s,s:s,s:I}", "appkey", appkey, "secret_hash", secret_hash, "name", name, "ctime_ms",
                          (json_int_t)ctime_ms);
    char *js = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    AU_ASSERT(js != NULL);
    store_batch_put(b, key, ks_im_app(key, app), js, strlen(js));
    free(js);
    uint8_t id[4];
    au_wr32(id, app);
    store_batch_put(b, key, ks_im_appkey(key, appkey, strlen(appkey)), id, 4);
}

static bool any(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    (void)k, (void)kl, (void)v, (void)vl;
    *(bool *)arg = true;
    return false;
}

int im_apps_bootstrap(struct store *st, const char *data_dir, char *err, size_t errlen)
{
    uint8_t p = KS_IM_APP, e = KS_IM_APP + 1;
    bool found = false;
    if (store_scan_sync(st, &p, 1, &e, 1, 0, any, &found) < 0) {
        snprintf(err, errlen, "cannot read the app table");
        return -1;
    }
    if (found) return 0;
    char appkey[AUTH_KEY_LEN + 1], secret[AUTH_KEY_LEN + 1], hash[AUTH_SECRET_HASH_STR_MAX];
    if (auth_gen_key(appkey) != 0 || auth_gen_key(secret) != 0 || auth_secret_hash(secret, strlen(secret), hash) < 0) {
        snprintf(err, errlen, "cannot generate the default app's credentials");
        return -1;
    }
    struct store_batch *b = store_batch_new();
    im_app_records(b, 1, appkey, hash, "default", au_wall_ms());
    if (store_write_sync(st, b) != 0) {
        snprintf(err, errlen, "cannot store the default app");
        return -1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/default-app.json", data_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    char body[256];
    int n = snprintf(body, sizeof body, "{\"appkey\":\"%s\",\"master_secret\":\"%s\"}\n", appkey, secret);
    bool ok = write(fd, body, (size_t)n) == n && fsync(fd) == 0;
    close(fd);
    if (!ok) {
        snprintf(err, errlen, "cannot write %s", path);
        return -1;
    }
    printf("default app created: appkey=%s master_secret=%s (saved in %s)\n", appkey, secret, path);
    fflush(stdout);
    return 0;
}
