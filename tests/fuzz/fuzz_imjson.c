/* fuzz_imjson.c - libFuzzer target for the IM JSON layer (gateway/im/imjson*.c, errors.c).
 *
 * The first byte selects the parser, the rest is its input:
 *   0 im_msg_parse (device)     1 im_msg_parse (rest)      2 im_users_reg_parse
 *   3 im_admin_reg_parse        4 im_user_update_parse     5 im_password_parse
 *   6 im_usernames_parse        7 im_group_create_parse    8 im_group_update_parse
 *   9 im_members_update_parse  10 validators (username, gid, date-time)
 *  11 writer: arbitrary bytes as a JSON string
 *  12 im/send's jansson-free shortcut (im_msg_canon_fast) against the general path: it never accepts what
 *     the general path refuses, and what it accepts has the general path's struct and stored bytes
 * Invariants: a refusal carries a code of the right family and a detail; an accepted input obeys
 * the documented limits; render -> parse gives back the same struct and the same bytes again;
 * every render is valid JSON (jansson) and its length matches the measuring call.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/im/imjson.h"
#include "gateway/im/imjson_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(c) do { if (!(c)) { fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); abort(); } } while (0)

static char g_out[1 << 21];

static void check_json(const char *s, size_t n, size_t flags)
{
    json_error_t je;
    json_t *v = json_loadb(s, n, JSON_REJECT_DUPLICATES | flags, &je);
    if (!v)
        fprintf(stderr, "render is not JSON: %s\n%.*s\n", je.text, (int)(n > 400 ? 400 : n), s);
    FZ_CHECK(v != NULL);
    json_decref(v);
}

/* render with a measuring call first; the two must agree */
#define RENDER(call_null, call_buf) do { \
        size_t need_ = (call_null); \
        FZ_CHECK(need_ < sizeof g_out); \
        size_t got_ = (call_buf); \
        FZ_CHECK(got_ == need_ && strlen(g_out) == got_); \
        check_json(g_out, got_, 0); \
    } while (0)

static void check_err(const struct im_err *e, enum im_src src)
{
    FZ_CHECK(e->msg[0] != '\0');
    FZ_CHECK(memchr(e->msg, '\0', sizeof e->msg) != NULL);
    if (src == IM_SRC_DEVICE)
        FZ_CHECK(e->code == IM_E_SEND_JSON || e->code == IM_E_SEND_TOO_LONG ||
                 e->code == IM_E_SEND_NO_USER || e->code == IM_E_SEND_NO_GROUP ||
                 e->code == IM_E_SEND_NOT_PERMITTED);
    else
        FZ_CHECK(e->code == IM_E_PARAM || e->code == IM_E_NO_SEND_AUTH ||
                 e->code == IM_E_USER_LIST_TOO_LONG || e->code == IM_E_GROUP_FULL ||
                 e->code == IM_E_MEMBER_REPEAT);
    FZ_CHECK(im_err_known(e->code));
    char b[512];
    size_t n = im_err_render(e->code, e->msg, b, sizeof b);
    FZ_CHECK(n < sizeof b);
    check_json(b, n, 0);
}

static void fuzz_msg(const char *in, size_t n, enum im_src src)
{
    static struct im_msg a, b;
    struct im_err err;
    if (im_msg_parse(in, n, src, &a, &err) < 0) {
        check_err(&err, src);
        return;
    }
    FZ_CHECK(err.code == IM_OK);
    FZ_CHECK(a.body_len > 0 && a.body_len <= AU_IM_MSG_BODY_MAX && strlen(a.body) == a.body_len);
    FZ_CHECK(im_username_valid(a.target_id, strlen(a.target_id)) || a.target_type == IM_TARGET_GROUP);
    if (a.target_type == IM_TARGET_GROUP) {
        uint64_t g;
        FZ_CHECK(im_gid_parse(a.target_id, strlen(a.target_id), &g) && g == a.target_gid);
    }
    if (src == IM_SRC_REST)
        FZ_CHECK(a.from_type == IM_FROM_ADMIN && a.from_id[0]);
    else
        FZ_CHECK(a.from_type != IM_FROM_ADMIN);
    check_json(a.body, a.body_len, 0);
    if (a.from_type == IM_FROM_NONE)
        a.from_type = IM_FROM_USER;
    if (!a.from_id[0])
        strcpy(a.from_id, "fuzzuser");
    const uint64_t ctime = 1700000000999ull;
    RENDER(im_msg_render(&a, 42, ctime, 7, NULL, 0), im_msg_render(&a, 42, ctime, 7, g_out, sizeof g_out));
    size_t len = strlen(g_out);
    FZ_CHECK(len <= AU_IM_MSG_JSON_MAX * 4);
    struct im_err err2;
    if (im_msg_parse(g_out, len, src, &b, &err2) < 0) {
        /* only the size limit may refuse our own rendering of an accepted message */
        FZ_CHECK(len > AU_IM_MSG_JSON_MAX);
        return;
    }
    if (!a.create_time)
        a.create_time = ctime / 1000;
    FZ_CHECK(a.target_type == b.target_type && a.from_type == b.from_type &&
             a.msg_type == b.msg_type && a.target_gid == b.target_gid &&
             a.create_time == b.create_time && a.no_offline == b.no_offline &&
             a.no_notification == b.no_notification && a.has_notification == b.has_notification);
    FZ_CHECK(a.body_len == b.body_len && memcmp(a.body, b.body, a.body_len) == 0);
    FZ_CHECK(strcmp(a.target_id, b.target_id) == 0 && strcmp(a.from_id, b.from_id) == 0 &&
             strcmp(a.target_name, b.target_name) == 0 && strcmp(a.from_name, b.from_name) == 0 &&
             strcmp(a.from_platform, b.from_platform) == 0 &&
             strcmp(a.target_appkey, b.target_appkey) == 0 &&
             strcmp(a.from_appkey, b.from_appkey) == 0 &&
             strcmp(a.client_msg_id, b.client_msg_id) == 0 &&
             strcmp(a.notif_title, b.notif_title) == 0 && strcmp(a.notif_alert, b.notif_alert) == 0);
    static char again[AU_IM_MSG_JSON_MAX * 4];
    size_t len2 = im_msg_render(&b, 42, ctime, 7, again, sizeof again);
    FZ_CHECK(len2 == len && memcmp(again, g_out, len) == 0);
}

static void check_profile_roundtrip(const struct im_profile *p)
{
    static struct im_user u;
    memset(&u, 0, sizeof u);
    strcpy(u.username, "fuzzuser");
    u.profile = *p;
    u.ctime_ms = 1;
    u.mtime_ms = 2;
    RENDER(im_user_render(&u, -1, NULL, 0), im_user_render(&u, -1, g_out, sizeof g_out));
    struct im_profile q;
    struct im_err err;
    int rc = im_user_update_parse(g_out, strlen(g_out), &q, &err);
    /* empty strings are not rendered: a profile of only empty fields renders as no field */
    if (rc < 0) {
        FZ_CHECK(err.code == IM_E_PARAM);
        return;
    }
    if ((p->set & IM_PF_NICKNAME) && p->nickname[0])
        FZ_CHECK(strcmp(p->nickname, q.nickname) == 0);
    if ((p->set & IM_PF_AVATAR) && p->avatar[0])
        FZ_CHECK(strcmp(p->avatar, q.avatar) == 0);
    if ((p->set & IM_PF_BIRTHDAY) && p->birthday[0])
        FZ_CHECK(strcmp(p->birthday, q.birthday) == 0);
    if (p->set & IM_PF_GENDER)
        FZ_CHECK(q.gender == p->gender && (q.set & IM_PF_GENDER));
    if ((p->set & IM_PF_SIGNATURE) && p->signature[0])
        FZ_CHECK(strcmp(p->signature, q.signature) == 0);
    if ((p->set & IM_PF_REGION) && p->region[0])
        FZ_CHECK(strcmp(p->region, q.region) == 0);
    if ((p->set & IM_PF_ADDRESS) && p->address[0])
        FZ_CHECK(strcmp(p->address, q.address) == 0);
    if (p->set & IM_PF_EXTRAS)
        FZ_CHECK(strcmp(p->extras, q.extras) == 0);
}

static void check_reg_item(const struct im_user_reg *it)
{
    if (it->err.code != IM_OK) {
        check_err(&it->err, IM_SRC_REST);
        FZ_CHECK(strlen(it->username) <= AU_IM_USERNAME_MAX && it->password[0] == '\0');
        return;
    }
    FZ_CHECK(im_username_valid(it->username, strlen(it->username)));
    FZ_CHECK(im_password_valid(it->password, strlen(it->password)));
    check_profile_roundtrip(&it->profile);
}

static void fuzz_users_reg(const char *in, size_t n)
{
    static struct im_user_reg items[AU_IM_BATCH_MAX];
    struct im_err err;
    size_t count = 99999;
    if (im_users_reg_parse(in, n, items, AU_IM_BATCH_MAX, &count, &err) < 0) {
        check_err(&err, IM_SRC_REST);
        FZ_CHECK(count == 0);
        return;
    }
    FZ_CHECK(count >= 1 && count <= AU_IM_BATCH_MAX);
    for (size_t i = 0; i < count; i++)
        check_reg_item(&items[i]);
    RENDER(im_users_reg_render(items, count, NULL, 0),
           im_users_reg_render(items, count, g_out, sizeof g_out));
}

static void fuzz_admin_reg(const char *in, size_t n)
{
    static struct im_user_reg it;
    struct im_err err;
    int rc = im_admin_reg_parse(in, n, &it, &err);
    if (rc < 0) {
        check_err(&err, IM_SRC_REST);
        FZ_CHECK(it.err.code == err.code);
    }
    check_reg_item(&it);
}

static void fuzz_user_update(const char *in, size_t n)
{
    struct im_profile p;
    struct im_err err;
    if (im_user_update_parse(in, n, &p, &err) < 0) {
        check_err(&err, IM_SRC_REST);
        return;
    }
    FZ_CHECK(p.set != 0 && p.gender >= 0 && p.gender <= 2);
    FZ_CHECK(strlen(p.nickname) <= AU_IM_NICKNAME_MAX && strlen(p.extras) <= AU_IM_EXTRAS_MAX);
    FZ_CHECK(!strchr(p.nickname, '\n') && !strchr(p.nickname, '\r'));
    if (p.birthday[0]) {
        int64_t t;
        FZ_CHECK(im_datetime_parse(p.birthday, strlen(p.birthday), false, &t));
    }
    check_profile_roundtrip(&p);
}

static void fuzz_password(const char *in, size_t n)
{
    char pw[AU_IM_PASSWORD_MAX + 1];
    struct im_err err;
    if (im_password_parse(in, n, pw, &err) < 0) {
        check_err(&err, IM_SRC_REST);
        FZ_CHECK(pw[0] == '\0');
        return;
    }
    FZ_CHECK(im_password_valid(pw, strlen(pw)));
}

static void check_names(const struct im_name *names, size_t n, bool unique)
{
    for (size_t i = 0; i < n; i++) {
        FZ_CHECK(im_username_valid(names[i].s, strlen(names[i].s)));
        if (unique)
            for (size_t j = 0; j < i; j++)
                FZ_CHECK(strcmp(names[i].s, names[j].s) != 0);
    }
}

static void fuzz_usernames(const char *in, size_t n)
{
    static struct im_name names[AU_IM_BATCH_MAX];
    struct im_err err;
    size_t count = 99999;
    if (im_usernames_parse(in, n, names, AU_IM_BATCH_MAX, &count, &err) < 0) {
        check_err(&err, IM_SRC_REST);
        FZ_CHECK(count == 0);
        return;
    }
    FZ_CHECK(count >= 1 && count <= AU_IM_BATCH_MAX);
    check_names(names, count, false);
}

static void fuzz_group_create(const char *in, size_t n)
{
    static struct im_group_create g;
    struct im_err err;
    if (im_group_create_parse(in, n, &g, &err) < 0) {
        check_err(&err, IM_SRC_REST);
        return;
    }
    FZ_CHECK(im_username_valid(g.owner, strlen(g.owner)));
    FZ_CHECK(g.name[0] && strlen(g.name) <= AU_IM_GROUP_NAME_MAX);
    FZ_CHECK(g.flag == IM_GROUP_PRIVATE || g.flag == IM_GROUP_PUBLIC);
    FZ_CHECK(g.n_members <= AU_IM_MAX_GROUP_MEMBERS);
    check_names(g.members, g.n_members, true);
    static struct im_group gr;
    memset(&gr, 0, sizeof gr);
    gr.gid = 1;
    gr.flag = g.flag;
    gr.max_members = AU_IM_MAX_GROUP_MEMBERS;
    memcpy(gr.owner, g.owner, sizeof gr.owner);
    memcpy(gr.name, g.name, sizeof gr.name);
    memcpy(gr.desc, g.desc, sizeof gr.desc);
    memcpy(gr.avatar, g.avatar, sizeof gr.avatar);
    RENDER(im_group_created_render(&gr, g.members, g.n_members, NULL, 0),
           im_group_created_render(&gr, g.members, g.n_members, g_out, sizeof g_out));
    RENDER(im_group_render(&gr, NULL, 0), im_group_render(&gr, g_out, sizeof g_out));
    /* the created answer carries name and desc back */
    static struct im_group_update u;
    struct im_err e2;
    FZ_CHECK(im_group_update_parse(g_out, strlen(g_out), &u, &e2) == 0);
    FZ_CHECK(strcmp(u.name, g.name) == 0 && strcmp(u.desc, g.desc) == 0);
}

static void fuzz_group_update(const char *in, size_t n)
{
    static struct im_group_update u;
    struct im_err err;
    if (im_group_update_parse(in, n, &u, &err) < 0) {
        check_err(&err, IM_SRC_REST);
        return;
    }
    FZ_CHECK(u.set != 0 && (u.set & ~(unsigned)(IM_GF_NAME | IM_GF_DESC | IM_GF_AVATAR)) == 0);
    FZ_CHECK(!(u.set & IM_GF_NAME) || u.name[0]);
}

static void fuzz_members(const char *in, size_t n)
{
    static struct im_members_update m;
    struct im_err err;
    if (im_members_update_parse(in, n, &m, &err) < 0) {
        check_err(&err, IM_SRC_REST);
        return;
    }
    FZ_CHECK(m.n_add + m.n_remove > 0);
    FZ_CHECK(m.n_add <= AU_IM_MAX_GROUP_MEMBERS && m.n_remove <= AU_IM_MAX_GROUP_MEMBERS);
    check_names(m.add, m.n_add, true);
    check_names(m.remove, m.n_remove, true);
    for (size_t i = 0; i < m.n_add; i++)
        for (size_t j = 0; j < m.n_remove; j++)
            FZ_CHECK(strcmp(m.add[i].s, m.remove[j].s) != 0);
}

static void fuzz_validators(const char *in, size_t n)
{
    (void)im_username_valid(in, n);
    (void)im_password_valid(in, n);
    uint64_t g;
    if (im_gid_parse(in, n, &g)) {
        char b[24];
        int l = snprintf(b, sizeof b, "%llu", (unsigned long long)g);
        FZ_CHECK((size_t)l == n && memcmp(b, in, n) == 0);
    }
    int64_t t;
    if (im_datetime_parse(in, n, true, &t) && t >= 0) {
        char out[AU_IM_DATETIME_LEN + 1];
        im_datetime_format((uint64_t)t * 1000, out);
        int64_t t2;
        FZ_CHECK(im_datetime_parse(out, AU_IM_DATETIME_LEN, false, &t2) && t2 == t);
        if (n == AU_IM_DATETIME_LEN)
            FZ_CHECK(memcmp(out, in, n) == 0);
    }
    (void)im_media_kind_parse(in, n);
}

static void fuzz_writer(const char *in, size_t n)
{
    struct im_jw w;
    size_t need;
    im_jw_init(&w, NULL, 0);
    im_jw_strn(&w, in, n);
    need = im_jw_finish(&w);
    FZ_CHECK(need < sizeof g_out);
    im_jw_init(&w, g_out, sizeof g_out);
    im_jw_strn(&w, in, n);
    FZ_CHECK(im_jw_finish(&w) == need);
    json_error_t je;
    json_t *v = json_loadb(g_out, need, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    FZ_CHECK(v && json_is_string(v));
    /* valid UTF-8 comes back byte for byte */
    json_t *orig = json_stringn(in, n);
    if (orig)
        FZ_CHECK(json_string_length(v) == n && memcmp(json_string_value(v), in, n) == 0);
    json_decref(orig);
    json_decref(v);
    /* truncated outputs are NUL-terminated prefixes */
    char small[8];
    im_jw_init(&w, small, sizeof small);
    im_jw_strn(&w, in, n);
    FZ_CHECK(im_jw_finish(&w) == need && strlen(small) == (need < 7 ? need : 7));
}

static void fuzz_canon(const char *in, size_t n)
{
    static struct im_msg m1, m2;
    static char out[1 << 16];
    size_t cap = n + 64 + 2 * 6; /* what im_msg_parse_canon gives the shortcut for from_id "alice1" */
    if (cap > sizeof out)
        return;
    size_t ol = 0;
    memset(&m1, 0x5a, sizeof m1);
    int fast = im_msg_canon_fast(in, n, "alice1", &m1, out, cap, &ol);
    if (!fast)
        return;
    FZ_CHECK(ol < cap && out[ol] == '\0');
    /* the general path: im_msg_parse's verdict and struct, jansson's compact render with the sender forced */
    struct im_err e;
    FZ_CHECK(im_msg_parse(in, n, IM_SRC_DEVICE, &m2, &e) == 0);
    FZ_CHECK(memcmp(&m1, &m2, sizeof m1) == 0);
    json_t *o = json_loadb(in, n, JSON_REJECT_DUPLICATES, NULL);
    FZ_CHECK(o != NULL);
    static const char *const sk[] = { "msgid", "msg_ctime", "create_time", "sequence" };
    for (size_t i = 0; i < 4; i++)
        json_object_del(o, sk[i]);
    json_object_set_new(o, "from_type", json_string("user"));
    json_object_set_new(o, "from_id", json_string("alice1"));
    json_object_set_new(o, "version", json_integer(1));
    char *slow = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    FZ_CHECK(slow != NULL && strlen(slow) == ol && memcmp(slow, out, ol) == 0);
    free(slow);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] % 13) {
    case 0:  fuzz_msg(in, n, IM_SRC_DEVICE); break;
    case 1:  fuzz_msg(in, n, IM_SRC_REST); break;
    case 2:  fuzz_users_reg(in, n); break;
    case 3:  fuzz_admin_reg(in, n); break;
    case 4:  fuzz_user_update(in, n); break;
    case 5:  fuzz_password(in, n); break;
    case 6:  fuzz_usernames(in, n); break;
    case 7:  fuzz_group_create(in, n); break;
    case 8:  fuzz_group_update(in, n); break;
    case 9:  fuzz_members(in, n); break;
    case 10: fuzz_validators(in, n); break;
    case 12: fuzz_canon(in, n); break;
    default: fuzz_writer(in, n); break;
    }
    return 0;
}
