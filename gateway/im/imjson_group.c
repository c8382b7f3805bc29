/* imjson_group.c - groups: create / update / members bodies, group objects and lists; media
 * upload and download answers. */
#include <string.h>

#include "core/common.h"
#include "gateway/im/imjson_internal.h"

static json_t *load_object(struct pctx *c, const char *json, size_t len)
{
    c->err->code = IM_OK;
    c->err->msg[0] = '\0';
    json_t *root = im_load(c, json, len, AU_IM_REST_JSON_MAX, IM_F_FORMAT);
    if (root && !json_is_object(root)) {
        im_fail(c, IM_F_FORMAT, "body: must be a JSON object");
        json_decref(root);
        return NULL;
    }
    return root;
}

/* name / desc / avatar shared by create and update. name_req: create requires a non-empty name. */
static int group_fields(struct pctx *c, json_t *o, bool name_req, uint32_t *set, char *name,
                        char *desc, char *avatar)
{
    int rc = im_get_str(c, o, "", "name", name_req ? IM_REQ : IM_OPT, name_req ? 1 : 0,
                        AU_IM_GROUP_NAME_MAX, IM_S_NO_CRLF, name, NULL);
    if (rc < 0)
        return -1;
    if (rc)
        *set |= IM_GF_NAME;
    if ((rc = im_get_str(c, o, "", "desc", IM_OPT, 0, AU_IM_STR_MAX, IM_S_ANY, desc, NULL)) < 0)
        return -1;
    if (rc)
        *set |= IM_GF_DESC;
    if ((rc = im_get_str(c, o, "", "avatar", IM_OPT, 0, AU_IM_MEDIA_ID_MAX, IM_S_TOKEN, avatar,
                         NULL)) < 0)
        return -1;
    if (rc)
        *set |= IM_GF_AVATAR;
    return 0;
}

static int parse_create(struct pctx *c, json_t *o, struct im_group_create *g)
{
    if (im_get_username(c, o, "", "owner_username", IM_REQ, IM_F_FORMAT, g->owner) < 0)
        return -1;
    if (group_fields(c, o, true, &g->set, g->name, g->desc, g->avatar) < 0)
        return -1;
    int64_t flag;
    int rc = im_get_int(c, o, "", "flag", IM_OPT, IM_GROUP_PRIVATE, IM_GROUP_PUBLIC, &flag);
    if (rc < 0)
        return -1;
    g->flag = rc ? (int)flag : IM_GROUP_PRIVATE;
    if (rc)
        g->set |= IM_GF_FLAG;
    json_t *arr = NULL;
    if ((rc = im_get_arr(c, o, "", "members_username", IM_OPT, &arr)) < 0)
        return -1;
    if (rc && im_names_from_array(c, arr, "members_username", g->members, AU_IM_MAX_GROUP_MEMBERS,
                                  IM_E_GROUP_FULL, IM_E_MEMBER_REPEAT, &g->n_members) < 0)
        return -1;
    return 0;
}

int im_group_create_parse(const char *json, size_t len, struct im_group_create *out,
                          struct im_err *err)
{
    struct pctx c = { IM_SRC_REST, err };
    memset(out, 0, sizeof *out);
    json_t *root = load_object(&c, json, len);
    if (!root)
        return -1;
    int rc = parse_create(&c, root, out);
    json_decref(root);
    if (rc < 0)
        memset(out, 0, sizeof *out);
    return rc;
}

int im_group_update_parse(const char *json, size_t len, struct im_group_update *out,
                          struct im_err *err)
{
    struct pctx c = { IM_SRC_REST, err };
    memset(out, 0, sizeof *out);
    json_t *root = load_object(&c, json, len);
    if (!root)
        return -1;
    int rc = group_fields(&c, root, false, &out->set, out->name, out->desc, out->avatar);
    if (rc == 0 && (out->set & IM_GF_NAME) && out->name[0] == '\0')
        rc = im_fail(&c, IM_F_FORMAT, "name: must not be empty");
    if (rc == 0 && out->set == 0)
        rc = im_fail(&c, IM_F_FORMAT, "body: no group field to update (name, desc, avatar)");
    json_decref(root);
    if (rc < 0)
        memset(out, 0, sizeof *out);
    return rc;
}

int im_members_update_parse(const char *json, size_t len, struct im_members_update *out,
                            struct im_err *err)
{
    struct pctx c = { IM_SRC_REST, err };
    memset(out, 0, sizeof *out);
    json_t *root = load_object(&c, json, len);
    if (!root)
        return -1;
    json_t *add = NULL, *rem = NULL;
    int rc = -1;
    if (im_get_arr(&c, root, "", "add", IM_OPT, &add) < 0 ||
        im_get_arr(&c, root, "", "remove", IM_OPT, &rem) < 0)
        goto out;
    if (add && im_names_from_array(&c, add, "add", out->add, AU_IM_MAX_GROUP_MEMBERS,
                                   IM_E_GROUP_FULL, IM_E_MEMBER_REPEAT, &out->n_add) < 0)
        goto out;
    if (rem && im_names_from_array(&c, rem, "remove", out->remove, AU_IM_MAX_GROUP_MEMBERS,
                                   IM_E_PARAM, IM_E_PARAM, &out->n_remove) < 0)
        goto out;
    if (out->n_add == 0 && out->n_remove == 0) {
        im_fail(&c, IM_F_FORMAT, "body: add or remove must list at least one username");
        goto out;
    }
    for (size_t i = 0; i < out->n_add; i++)
        for (size_t j = 0; j < out->n_remove; j++)
            if (strcmp(out->add[i].s, out->remove[j].s) == 0) {
                im_fail(&c, IM_F_FORMAT, "\"%s\" is both added and removed", out->add[i].s);
                goto out;
            }
    rc = 0;
out:
    json_decref(root);
    if (rc < 0)
        memset(out, 0, sizeof *out);
    return rc;
}

/* ---- rendering ---- */
static void group_obj(struct im_jw *w, const struct im_group *g)
{
    im_jw_obj_begin(w);
    im_jw_ku64(w, "gid", g->gid);
    im_jw_kstr(w, "name", g->name);
    im_jw_kstr(w, "desc", g->desc);
    im_jw_kstr_opt(w, "appkey", g->appkey);
    im_jw_ku64(w, "MaxMemberCount", g->max_members);
    im_jw_kstr_opt(w, "avatar", g->avatar);
    im_jw_kstr_opt(w, "owner_username", g->owner);
    im_jw_ku64(w, "flag", (uint64_t)(g->flag == IM_GROUP_PUBLIC ? IM_GROUP_PUBLIC : IM_GROUP_PRIVATE));
    im_jw_ktime(w, "mtime", g->mtime_ms);
    im_jw_ktime(w, "ctime", g->ctime_ms);
    im_jw_obj_end(w);
}

size_t im_group_render(const struct im_group *g, char *buf, size_t cap)
{
    struct im_jw w;
    im_jw_init(&w, buf, cap);
    group_obj(&w, g);
    return im_jw_finish(&w);
}

size_t im_group_created_render(const struct im_group *g, const struct im_name *members, size_t n,
                               char *buf, size_t cap)
{
    struct im_jw w;
    im_jw_init(&w, buf, cap);
    im_jw_obj_begin(&w);
    im_jw_ku64(&w, "gid", g->gid);
    im_jw_kstr(&w, "owner_username", g->owner);
    im_jw_kstr(&w, "name", g->name);
    im_jw_key(&w, "members_username");
    im_jw_arr_begin(&w);
    for (size_t i = 0; i < n; i++)
        im_jw_str(&w, members[i].s);
    im_jw_arr_end(&w);
    im_jw_kstr(&w, "desc", g->desc);
    im_jw_ku64(&w, "MaxMemberCount", g->max_members);
    im_jw_kstr_opt(&w, "avatar", g->avatar);
    im_jw_ku64(&w, "flag", (uint64_t)(g->flag == IM_GROUP_PUBLIC ? IM_GROUP_PUBLIC : IM_GROUP_PRIVATE));
    im_jw_obj_end(&w);
    return im_jw_finish(&w);
}

size_t im_group_list_render(uint64_t start, uint64_t total, const struct im_group *groups,
                            size_t n, char *buf, size_t cap)
{
    struct im_jw w;
    im_jw_init(&w, buf, cap);
    im_jw_obj_begin(&w);
    im_jw_ku64(&w, "total", total);
    im_jw_ku64(&w, "start", start);
    im_jw_ku64(&w, "count", n);
    im_jw_key(&w, "groups");
    im_jw_arr_begin(&w);
    for (size_t i = 0; i < n; i++)
        group_obj(&w, &groups[i]);
    im_jw_arr_end(&w);
    im_jw_obj_end(&w);
    return im_jw_finish(&w);
}

size_t im_groups_render(const struct im_group *groups, size_t n, char *buf, size_t cap)
{
    struct im_jw w;
    im_jw_init(&w, buf, cap);
    im_jw_arr_begin(&w);
    for (size_t i = 0; i < n; i++)
        group_obj(&w, &groups[i]);
    im_jw_arr_end(&w);
    return im_jw_finish(&w);
}

/* ---- media ---- */
enum im_media_kind im_media_kind_parse(const char *s, size_t len)
{
    if (len == 5 && memcmp(s, "image", 5) == 0)
        return IM_MEDIA_IMAGE;
    if (len == 5 && memcmp(s, "voice", 5) == 0)
        return IM_MEDIA_VOICE;
    if (len == 4 && memcmp(s, "file", 4) == 0)
        return IM_MEDIA_FILE;
    return (enum im_media_kind)0;
}

size_t im_media_render(const struct im_media *m, char *buf, size_t cap)
{
    AU_ASSERT(m->kind >= IM_MEDIA_IMAGE && m->kind <= IM_MEDIA_FILE);
    struct im_jw w;
    im_jw_init(&w, buf, cap);
    im_jw_obj_begin(&w);
    im_jw_kstr(&w, "media_id", m->media_id);
    im_jw_ku64(&w, "media_crc32", m->crc32);
    switch (m->kind) {
    case IM_MEDIA_IMAGE:
        im_jw_ku64(&w, "width", m->width);
        im_jw_ku64(&w, "height", m->height);
        im_jw_kstr(&w, "format", m->format);
        break;
    case IM_MEDIA_VOICE:
        im_jw_kstr_opt(&w, "format", m->format);
        break;
    case IM_MEDIA_FILE:
        im_jw_kstr(&w, "fname", m->fname);
        break;
    }
    im_jw_ku64(&w, "fsize", m->fsize);
    im_jw_kstr_opt(&w, "hash", m->hash);
    im_jw_obj_end(&w);
    return im_jw_finish(&w);
}

size_t im_media_url_render(const char *url, char *buf, size_t cap)
{
    struct im_jw w;
    im_jw_init(&w, buf, cap);
    im_jw_obj_begin(&w);
    im_jw_kstr(&w, "url", url);
    im_jw_obj_end(&w);
    return im_jw_finish(&w);
}
