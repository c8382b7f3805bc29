/* imjson_user.c - users and admins: register batch, profile update, password, username lists,
 * user objects, lists and online status. */
#include <string.h>

#include "core/common.h"
#include "gateway/im/imjson_internal.h"

static void reset_err(struct im_err *err)
{
    err->code = IM_OK;
    err->msg[0] = '\0';
}

/* The profile fields of a user object (register items and PUT /v1/users/{u}). */
static int parse_profile(struct pctx *c, json_t *o, struct im_profile *p)
{
    int rc;
    memset(p, 0, sizeof *p);
    if ((rc = im_get_str(c, o, "", "nickname", IM_OPT, 0, AU_IM_NICKNAME_MAX, IM_S_NO_CRLF,
                         p->nickname, NULL)) < 0)
        return -1;
    if (rc)
        p->set |= IM_PF_NICKNAME;
    if ((rc = im_get_str(c, o, "", "avatar", IM_OPT, 0, AU_IM_MEDIA_ID_MAX, IM_S_TOKEN, p->avatar,
                         NULL)) < 0)
        return -1;
    if (rc)
        p->set |= IM_PF_AVATAR;

    char bd[AU_IM_DATETIME_LEN + 1];
    size_t bl = 0;
    if ((rc = im_get_str(c, o, "", "birthday", IM_OPT, 0, AU_IM_DATETIME_LEN, IM_S_ANY, bd,
                         &bl)) < 0)
        return -1;
    if (rc) {
        int64_t t;
        if (bl > 0 && !im_datetime_parse(bd, bl, true, &t))
            return im_fail(c, IM_F_FORMAT, "birthday: must be yyyy-MM-dd or yyyy-MM-dd HH:mm:ss");
        memcpy(p->birthday, bd, bl + 1);
        if (bl == 10)
            memcpy(p->birthday + 10, " 00:00:00", 10); /* normalised to the long form */
        p->set |= IM_PF_BIRTHDAY;
    }

    int64_t g;
    if ((rc = im_get_int(c, o, "", "gender", IM_OPT, 0, 2, &g)) < 0)
        return -1;
    if (rc) {
        p->gender = (int)g;
        p->set |= IM_PF_GENDER;
    }
    static const struct { const char *key; size_t off; uint32_t bit; } k_strs[] = {
        { "signature", offsetof(struct im_profile, signature), IM_PF_SIGNATURE },
        { "region", offsetof(struct im_profile, region), IM_PF_REGION },
        { "address", offsetof(struct im_profile, address), IM_PF_ADDRESS },
    };
    for (size_t i = 0; i < AU_ARRAY_LEN(k_strs); i++) {
        char *dst = (char *)p + k_strs[i].off;
        if ((rc = im_get_str(c, o, "", k_strs[i].key, IM_OPT, 0, AU_IM_STR_MAX, IM_S_ANY, dst,
                             NULL)) < 0)
            return -1;
        if (rc)
            p->set |= k_strs[i].bit;
    }
    json_t *ex = NULL;
    if ((rc = im_get_obj(c, o, "", "extras", IM_OPT, &ex)) < 0)
        return -1;
    if (rc) {
        if (im_dump(ex, p->extras, sizeof p->extras) == (size_t)-1)
            return im_fail(c, IM_F_FORMAT, "extras: longer than %d bytes", AU_IM_EXTRAS_MAX);
        p->set |= IM_PF_EXTRAS;
    }
    return 0;
}

/* One register item: username, password, profile. On failure the error is in it->err and the
 * username (as given, cut) is kept for the answer. */
static void parse_reg_item(json_t *o, struct im_user_reg *it)
{
    struct pctx c = { IM_SRC_REST, &it->err };
    memset(it, 0, sizeof *it);
    if (!json_is_object(o)) {
        im_fail(&c, IM_F_FORMAT, "user: must be a JSON object");
        return;
    }
    json_t *u = json_object_get(o, "username");
    if (u && json_is_string(u))
        im_copy_cut(it->username, AU_IM_USERNAME_MAX, json_string_value(u), json_string_length(u));
    char keep[AU_IM_USERNAME_MAX + 1];
    memcpy(keep, it->username, sizeof keep);
    if (im_get_username(&c, o, "", "username", IM_REQ, IM_F_FORMAT, it->username) < 0)
        goto fail;
    if (im_get_str(&c, o, "", "password", IM_REQ, AU_IM_PASSWORD_MIN, AU_IM_PASSWORD_MAX, IM_S_ANY,
                   it->password, NULL) < 0)
        goto fail;
    if (parse_profile(&c, o, &it->profile) < 0)
        goto fail;
    return;
fail:
    /* keep only the error and the name: no half-parsed credentials */
    {
        struct im_err e = it->err;
        memset(it, 0, sizeof *it);
        it->err = e;
        memcpy(it->username, keep, sizeof keep);
    }
}

int im_users_reg_parse(const char *json, size_t len, struct im_user_reg *items, size_t cap,
                       size_t *n, struct im_err *err)
{
    struct pctx c = { IM_SRC_REST, err };
    reset_err(err);
    *n = 0;
    json_t *root = im_load(&c, json, len, AU_IM_REST_JSON_MAX, IM_F_FORMAT);
    if (!root)
        return -1;
    int rc = -1;
    size_t lim = cap < AU_IM_BATCH_MAX ? cap : AU_IM_BATCH_MAX;
    if (!json_is_array(root)) {
        im_fail(&c, IM_F_FORMAT, "body: must be a JSON array of users");
    } else if (json_array_size(root) == 0) {
        im_fail(&c, IM_F_FORMAT, "body: no users");
    } else if (json_array_size(root) > lim) {
        im_fail_code(&c, IM_E_USER_LIST_TOO_LONG, "body: more than %zu users", lim);
    } else {
        size_t count = json_array_size(root);
        for (size_t i = 0; i < count; i++)
            parse_reg_item(json_array_get(root, i), &items[i]);
        *n = count;
        rc = 0;
    }
    json_decref(root);
    return rc;
}

int im_admin_reg_parse(const char *json, size_t len, struct im_user_reg *out, struct im_err *err)
{
    struct pctx c = { IM_SRC_REST, err };
    reset_err(err);
    json_t *root = im_load(&c, json, len, AU_IM_REST_JSON_MAX, IM_F_FORMAT);
    if (!root) {
        memset(out, 0, sizeof *out);
        out->err = *err;
        return -1;
    }
    parse_reg_item(root, out);
    json_decref(root);
    if (out->err.code != IM_OK) {
        *err = out->err;
        return -1;
    }
    return 0;
}

size_t im_users_reg_render(const struct im_user_reg *items, size_t n, char *buf, size_t cap)
{
    struct im_jw w;
    im_jw_init(&w, buf, cap);
    im_jw_arr_begin(&w);
    for (size_t i = 0; i < n; i++) {
        im_jw_obj_begin(&w);
        im_jw_kstr(&w, "username", items[i].username);
        if (items[i].err.code != IM_OK)
            im_jw_error(&w, items[i].err.code, items[i].err.msg);
        im_jw_obj_end(&w);
    }
    im_jw_arr_end(&w);
    return im_jw_finish(&w);
}

int im_user_update_parse(const char *json, size_t len, struct im_profile *out, struct im_err *err)
{
    struct pctx c = { IM_SRC_REST, err };
    reset_err(err);
    memset(out, 0, sizeof *out);
    json_t *root = im_load(&c, json, len, AU_IM_REST_JSON_MAX, IM_F_FORMAT);
    if (!root)
        return -1;
    int rc = -1;
    if (!json_is_object(root))
        im_fail(&c, IM_F_FORMAT, "body: must be a JSON object");
    else if (parse_profile(&c, root, out) == 0) {
        if (out->set == 0)
            im_fail(&c, IM_F_FORMAT, "body: no profile field to update");
        else
            rc = 0;
    }
    json_decref(root);
    if (rc < 0)
        memset(out, 0, sizeof *out);
    return rc;
}

int im_password_parse(const char *json, size_t len, char out[AU_IM_PASSWORD_MAX + 1],
                      struct im_err *err)
{
    struct pctx c = { IM_SRC_REST, err };
    reset_err(err);
    out[0] = '\0';
    json_t *root = im_load(&c, json, len, AU_IM_REST_JSON_MAX, IM_F_FORMAT);
    if (!root)
        return -1;
    int rc = -1;
    if (!json_is_object(root))
        im_fail(&c, IM_F_FORMAT, "body: must be a JSON object");
    else if (im_get_str(&c, root, "", "new_password", IM_REQ, AU_IM_PASSWORD_MIN,
                        AU_IM_PASSWORD_MAX, IM_S_ANY, out, NULL) == 1)
        rc = 0;
    if (rc < 0)
        out[0] = '\0';
    json_decref(root);
    return rc;
}

int im_usernames_parse(const char *json, size_t len, struct im_name *out, size_t cap, size_t *n,
                       struct im_err *err)
{
    struct pctx c = { IM_SRC_REST, err };
    reset_err(err);
    *n = 0;
    json_t *root = im_load(&c, json, len, AU_IM_REST_JSON_MAX, IM_F_FORMAT);
    if (!root)
        return -1;
    int rc = -1;
    size_t lim = cap < AU_IM_BATCH_MAX ? cap : AU_IM_BATCH_MAX;
    if (!json_is_array(root))
        im_fail(&c, IM_F_FORMAT, "body: must be a JSON array of usernames");
    else if (json_array_size(root) == 0)
        im_fail(&c, IM_F_FORMAT, "body: no usernames");
    else
        rc = im_names_from_array(&c, root, "body", out, lim, IM_E_USER_LIST_TOO_LONG, 0, n);
    json_decref(root);
    if (rc < 0)
        *n = 0;
    return rc;
}

/* ---- rendering ---- */
void im_jw_profile(struct im_jw *w, const struct im_profile *p)
{
    if (p->set & IM_PF_NICKNAME)
        im_jw_kstr_opt(w, "nickname", p->nickname);
    if (p->set & IM_PF_AVATAR)
        im_jw_kstr_opt(w, "avatar", p->avatar);
    if (p->set & IM_PF_BIRTHDAY)
        im_jw_kstr_opt(w, "birthday", p->birthday);
    if (p->set & IM_PF_GENDER) {
        im_jw_key(w, "gender");
        im_jw_i64(w, p->gender);
    }
    if (p->set & IM_PF_SIGNATURE)
        im_jw_kstr_opt(w, "signature", p->signature);
    if (p->set & IM_PF_REGION)
        im_jw_kstr_opt(w, "region", p->region);
    if (p->set & IM_PF_ADDRESS)
        im_jw_kstr_opt(w, "address", p->address);
    if ((p->set & IM_PF_EXTRAS) && p->extras[0]) {
        im_jw_key(w, "extras");
        im_jw_raw(w, p->extras, strlen(p->extras));
    }
}

static void user_obj(struct im_jw *w, const struct im_user *u, int flag)
{
    im_jw_obj_begin(w);
    im_jw_kstr(w, "username", u->username);
    im_jw_profile(w, &u->profile);
    if (flag >= 0) {
        im_jw_key(w, "flag");
        im_jw_i64(w, flag);
    }
    im_jw_ktime(w, "mtime", u->mtime_ms);
    im_jw_ktime(w, "ctime", u->ctime_ms);
    im_jw_obj_end(w);
}

size_t im_user_render(const struct im_user *u, int flag, char *buf, size_t cap)
{
    struct im_jw w;
    im_jw_init(&w, buf, cap);
    user_obj(&w, u, flag);
    return im_jw_finish(&w);
}

size_t im_user_list_render(uint64_t start, uint64_t total, const struct im_user *users, size_t n,
                           char *buf, size_t cap)
{
    struct im_jw w;
    im_jw_init(&w, buf, cap);
    im_jw_obj_begin(&w);
    im_jw_ku64(&w, "total", total);
    im_jw_ku64(&w, "start", start);
    im_jw_ku64(&w, "count", n);
    im_jw_key(&w, "users");
    im_jw_arr_begin(&w);
    for (size_t i = 0; i < n; i++)
        user_obj(&w, &users[i], -1);
    im_jw_arr_end(&w);
    im_jw_obj_end(&w);
    return im_jw_finish(&w);
}

size_t im_users_render(const struct im_user *users, const int *flags, size_t n, char *buf,
                       size_t cap)
{
    struct im_jw w;
    im_jw_init(&w, buf, cap);
    im_jw_arr_begin(&w);
    for (size_t i = 0; i < n; i++)
        user_obj(&w, &users[i], flags ? flags[i] : -1);
    im_jw_arr_end(&w);
    return im_jw_finish(&w);
}

size_t im_userstat_render(bool login, bool online, char *buf, size_t cap)
{
    struct im_jw w;
    im_jw_init(&w, buf, cap);
    im_jw_obj_begin(&w);
    im_jw_key(&w, "login");
    im_jw_bool(&w, login);
    im_jw_key(&w, "online");
    im_jw_bool(&w, online);
    im_jw_obj_end(&w);
    return im_jw_finish(&w);
}

size_t im_userstats_render(const struct im_userstat *st, size_t n, char *buf, size_t cap)
{
    struct im_jw w;
    im_jw_init(&w, buf, cap);
    im_jw_arr_begin(&w);
    for (size_t i = 0; i < n; i++) {
        im_jw_obj_begin(&w);
        im_jw_key(&w, "devices");
        im_jw_arr_begin(&w);
        for (size_t d = 0; d < st[i].n_devices; d++) {
            const struct im_device_stat *ds = &st[i].devices[d];
            im_jw_obj_begin(&w);
            im_jw_key(&w, "login");
            im_jw_bool(&w, ds->login);
            im_jw_key(&w, "online");
            im_jw_bool(&w, ds->online);
            im_jw_kstr(&w, "platform", ds->platform);
            im_jw_obj_end(&w);
        }
        im_jw_arr_end(&w);
        im_jw_kstr(&w, "username", st[i].username);
        im_jw_obj_end(&w);
    }
    im_jw_arr_end(&w);
    return im_jw_finish(&w);
}
