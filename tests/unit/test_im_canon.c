/* test_im_canon.c - im/send's one-pass stored form (im_msg_parse_canon + im_msg_canon_finish) against the
 * two jansson rounds it replaced (load, force the sender, dump; load, add the server's fields, dump). */
#include "tests/unit/test.h"
#include "gateway/im/imjson.h"

#include <jansson.h>
#include <stdint.h>

/* The former path: imconn.c (sender forced) then im.c job_sequence (server fields added). */
static char *old_render(const char *in, const char *from, uint64_t msgid, uint64_t ctime_ms, uint64_t seq,
                        const char *cmid)
{
    json_t *o = json_loads(in, 0, NULL);
    if (!o) return NULL;
    json_object_set_new(o, "from_type", json_string("user"));
    json_object_set_new(o, "from_id", json_string(from));
    json_object_set_new(o, "version", json_integer(1));
    char *mid = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    o = json_loads(mid, 0, NULL);
    free(mid);
    json_object_set_new(o, "msgid", json_integer((json_int_t)msgid));
    json_object_set_new(o, "msg_ctime", json_integer((json_int_t)ctime_ms));
    json_object_set_new(o, "create_time", json_integer((json_int_t)(ctime_ms / 1000)));
    json_object_set_new(o, "sequence", json_integer((json_int_t)seq));
    if (cmid && cmid[0]) json_object_set_new(o, "client_msg_id", json_string(cmid));
    char *out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return out;
}

/* New path; returns the finished JSON (malloc'd) or NULL when refused (code in *code). */
static char *new_render(const char *in, const char *from, uint64_t msgid, uint64_t ctime_ms, uint64_t seq,
                        struct im_msg *m, int *code)
{
    struct im_err e;
    char *canon = NULL;
    size_t cl = 0;
    *code = 0;
    if (im_msg_parse_canon(in, strlen(in), IM_SRC_DEVICE, IM_FROM_USER, from, m, &e, &canon, &cl) != 0) {
        *code = e.code;
        CHECK(canon == NULL);
        return NULL;
    }
    CHECK(cl == strlen(canon));
    size_t cap = cl + IM_MSG_SERVER_FIELDS_MAX;
    char *out = malloc(cap);
    size_t n = im_msg_canon_finish(canon, cl, msgid, ctime_ms, seq, out, cap);
    CHECK(n == strlen(out));
    free(canon);
    return out;
}

static const char *k_plain[] = {
    "{\"version\":1,\"target_type\":\"single\",\"target_id\":\"bobby1\",\"msg_type\":\"text\","
    "\"msg_body\":{\"text\":\"hello\"}}",
    "{\"version\":1,\"target_type\":\"single\",\"target_id\":\"bobby1\",\"from_type\":\"user\",\"from_id\":\"alice1\","
    "\"msg_type\":\"text\",\"msg_body\":{\"text\":\"h\\u00e9 \\\"q\\\" \\/ \\n\",\"extras\":{\"k\":[1,2.5,true,null]}}}",
    "{\"msg_body\":{\"text\":\"x\"},\"msg_type\":\"text\",\"target_id\":\"bobby1\",\"target_type\":\"single\","
    "\"version\":1,\"client_msg_id\":\"c-1.2:3\",\"from_name\":\"Al\",\"unknown_key\":{\"a\":1}}",
    "{ \"version\" : 1 , \"target_type\":\"group\",\"target_id\":\"10001\",\"msg_type\":\"custom\","
    "\"msg_body\":{\"any\":{\"deep\":[{}]}},\"from_platform\":\"a\"}",
    "{\"version\":1,\"target_type\":\"single\",\"target_id\":\"bobby1\",\"msg_type\":\"location\","
    "\"msg_body\":{\"latitude\":1.25,\"longitude\":-3,\"scale\":1e2,\"label\":\"\"}}",
};

TEST(same_bytes_as_the_two_pass_render)
{
    struct im_msg *m = malloc(sizeof *m);
    for (size_t i = 0; i < sizeof k_plain / sizeof k_plain[0]; i++) {
        int code;
        char *n = new_render(k_plain[i], "alice1", 1234567890123ull << 22, 1234567890123ull, 42, m, &code);
        CHECK(n != NULL);
        if (!n) {
            printf("  refused %d: %s\n", code, k_plain[i]);
            continue;
        }
        char *o = old_render(k_plain[i], "alice1", 1234567890123ull << 22, 1234567890123ull, 42, m->client_msg_id);
        CHECK(o != NULL && strcmp(o, n) == 0);
        if (o && strcmp(o, n) != 0) printf("  old %s\n  new %s\n", o, n);
        free(o);
        free(n);
    }
    free(m);
}

/* Server keys the sender wrote are replaced (moved to the end): the same object, not the same bytes. */
TEST(server_keys_from_the_sender_are_replaced)
{
    static const char in[] = "{\"version\":1,\"create_time\":5,\"sequence\":999,\"msgid\":1,\"target_type\":\"single\","
                             "\"target_id\":\"bobby1\",\"msg_ctime\":7,\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"},"
                             "\"from_id\":\"alice1\"}";
    struct im_msg *m = malloc(sizeof *m);
    int code;
    char *n = new_render(in, "alice1", 77, 1700000000123ull, 3, m, &code);
    char *o = old_render(in, "alice1", 77, 1700000000123ull, 3, NULL);
    CHECK(n && o);
    json_t *jn = json_loads(n, JSON_REJECT_DUPLICATES, NULL), *jo = json_loads(o, 0, NULL);
    CHECK(jn != NULL && jo != NULL && json_equal(jn, jo));
    CHECK(json_integer_value(json_object_get(jn, "sequence")) == 3);
    CHECK(json_integer_value(json_object_get(jn, "create_time")) == 1700000000);
    CHECK(json_integer_value(json_object_get(jn, "msg_ctime")) == 1700000000123ll);
    CHECK(json_integer_value(json_object_get(jn, "msgid")) == 77);
    json_decref(jn);
    json_decref(jo);
    free(n);
    free(o);
    free(m);
}

/* The device's from_id is reported as written (the caller refuses a different one); the stored form
 * carries the session's user. */
TEST(sender_forced_and_reported)
{
    static const char in[] = "{\"version\":1,\"target_type\":\"single\",\"target_id\":\"bobby1\",\"from_id\":\"mallory1\","
                             "\"from_type\":\"user\",\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}";
    struct im_msg *m = malloc(sizeof *m);
    int code;
    char *n = new_render(in, "alice1", 1, 1000, 1, m, &code);
    CHECK(n != NULL && strcmp(m->from_id, "mallory1") == 0 && m->from_type == IM_FROM_USER);
    CHECK(n && strstr(n, "\"from_id\":\"alice1\"") && !strstr(n, "mallory1"));
    free(n);
    free(m);
}

/* Refusals are those of im_msg_parse, nothing allocated. */
TEST(refusals_match_im_msg_parse)
{
    static const char *bad[] = {
        "", "{", "[]", "{\"version\":2,\"target_type\":\"single\",\"target_id\":\"bobby1\",\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}",
        "{\"version\":1,\"target_type\":\"single\",\"target_id\":\"bobby1\",\"msg_type\":\"text\",\"msg_body\":{\"text\":\"\"}}",
        "{\"version\":1,\"target_type\":\"single\",\"target_id\":\"bobby1\",\"from_type\":\"admin\",\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}",
        "{\"version\":1,\"version\":1,\"target_type\":\"single\",\"target_id\":\"bobby1\",\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}",
    };
    struct im_msg *m = malloc(sizeof *m);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct im_err e1;
        int r1 = im_msg_parse(bad[i], strlen(bad[i]), IM_SRC_DEVICE, m, &e1);
        int code;
        char *n = new_render(bad[i], "alice1", 1, 1, 1, m, &code);
        CHECK(r1 != 0 && n == NULL && code == e1.code);
        free(n);
    }
    free(m);
}

TEST(finish_extremes_and_in_place)
{
    static const char canon[] = "{\"version\":1}";
    char buf[sizeof canon + IM_MSG_SERVER_FIELDS_MAX];
    memcpy(buf, canon, sizeof canon);
    size_t n = im_msg_canon_finish(buf, sizeof canon - 1, UINT64_MAX, UINT64_MAX, 0, buf, sizeof buf);
    static const char want[] = "{\"version\":1,\"msgid\":18446744073709551615,\"msg_ctime\":18446744073709551615,"
                               "\"create_time\":18446744073709551,\"sequence\":0}";
    CHECK(n == sizeof want - 1 && strcmp(buf, want) == 0);
    char e[2 + IM_MSG_SERVER_FIELDS_MAX];
    n = im_msg_canon_finish("{}", 2, 1, 2, 3, e, sizeof e);
    CHECK(strcmp(e, "{\"msgid\":1,\"msg_ctime\":2,\"create_time\":0,\"sequence\":3}") == 0 && n == strlen(e));
}

int main(void)
{
    RUN(same_bytes_as_the_two_pass_render);
    RUN(server_keys_from_the_sender_are_replaced);
    RUN(sender_forced_and_reported);
    RUN(refusals_match_im_msg_parse);
    RUN(finish_extremes_and_in_place);
    TEST_MAIN_END();
}
