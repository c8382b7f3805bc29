/* test_im_canon.c - im/send's one-pass stored form (im_msg_parse_canon + im_msg_canon_finish) against the
 * two jansson rounds it replaced (load, force the sender, dump; load, add the server's fields, dump). */
#include "tests/unit/test.h"
#include "gateway/im/imjson.h"
#include "gateway/im/imjson_internal.h"

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

/* The general path alone (what im_msg_parse_canon does when the shortcut declines): verdict, struct, bytes. */
static char *slow_canon(const char *in, size_t len, const char *from, struct im_msg *m)
{
    struct im_err e;
    if (im_msg_parse(in, len, IM_SRC_DEVICE, m, &e) != 0) return NULL;
    json_t *o = json_loadb(in, len, JSON_REJECT_DUPLICATES, NULL);
    if (!o) return NULL;
    static const char *const sk[] = { "msgid", "msg_ctime", "create_time", "sequence" };
    for (size_t i = 0; i < 4; i++) json_object_del(o, sk[i]);
    json_object_set_new(o, "from_type", json_string("user"));
    json_object_set_new(o, "from_id", json_string(from));
    json_object_set_new(o, "version", json_integer(1));
    char *out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return out;
}

static const char *k_seeds[] = {
    "{\"version\":1,\"target_type\":\"single\",\"target_id\":\"bobby1\",\"msg_type\":\"text\","
    "\"msg_body\":{\"text\":\"hello\"}}",
    " {\"version\" : 1,\"from_type\":\"user\",\"from_id\":\"alice1\",\"target_type\":\"group\",\"target_id\":\"10001\","
    "\"msg_type\":\"text\",\"msg_body\":{\"extras\":{\"a\":[1,-2,true,false,null,{\"b\":\"c\"}]},\"text\":\"q\\\"\\\\\\/\\n\\t\\b\\f\\r\"}} ",
    "{\"msgid\":5,\"version\":1,\"target_type\":\"group\",\"target_id\":42,\"create_time\":17,\"msg_type\":\"text\","
    "\"msg_body\":{\"text\":\"\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\",\"extras\":null},\"client_msg_id\":\"c-1\",\"sequence\":null,"
    "\"from_name\":\"Al B\",\"from_platform\":\"a\",\"target_appkey\":\"abcdefghijklmnopqrstuvwx\",\"no_offline\":true,"
    "\"no_notification\":false,\"notification\":null,\"x\":{},\"y\":[],\"from_id\":null,\"from_type\":null}",
    "{\"target_type\":\"single\",\"target_id\":\"bobby1\",\"msg_type\":\"text\",\"msg_body\":{\"text\":\"hi\"},\"version\":1,"
    "\"msg_ctime\":1.5,\"target_name\":\"\",\"from_appkey\":\"\"}",
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* The shortcut never accepts what the general path refuses, and when it accepts, its bytes and its struct
 * are the general path's: seeds plus random mutations (bytes from a JSON-ish alphabet, deletions, copies). */
TEST(shortcut_agrees_with_the_general_path)
{
    static const char alpha[] = "{}[]\":,\\/ 0123456789-.eEtrufalsn\"xyz\n\t\xc3\xa9\x80\xff";
    struct im_msg *m1 = malloc(sizeof *m1), *m2 = malloc(sizeof *m2);
    char buf[2048], out[4096];
    unsigned accepted = 0, agree_refuse = 0, seeds_fast = 0;
    for (unsigned it = 0; it < 200000; it++) {
        const char *seed = k_seeds[it % (sizeof k_seeds / sizeof k_seeds[0])];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        unsigned muts = it < 4 ? 0 : 1 + rnd() % 3;
        for (unsigned k = 0; k < muts && n > 2; k++) {
            size_t at = rnd() % n;
            switch (rnd() % 4) {
            case 0: buf[at] = alpha[rnd() % (sizeof alpha - 1)]; break;
            case 1: memmove(buf + at, buf + at + 1, n - at - 1); n--; break;
            case 2:
                if (n + 1 < sizeof buf) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = alpha[rnd() % (sizeof alpha - 1)];
                    n++;
                }
                break;
            default: {
                size_t from = rnd() % n, l = 1 + rnd() % 12;
                if (from + l > n) l = n - from;
                if (n + l < sizeof buf) {
                    memmove(buf + at + l, buf + at, n - at);
                    memmove(buf + at, buf + (from >= at ? from + l : from), l);
                    n += l;
                }
            }
            }
        }
        size_t ol = 0;
        memset(m1, 0x5a, sizeof *m1);
        int f = im_msg_canon_fast(buf, n, "alice1", m1, out, n + 64 + 2 * 6, &ol) /* the cap im_msg_parse_canon gives */;
        char *slow = slow_canon(buf, n, "alice1", m2);
        if (it < 4 && f) seeds_fast++;
        if (f) {
            accepted++;
            bool same = slow && strlen(slow) == ol && memcmp(slow, out, ol) == 0 && memcmp(m1, m2, sizeof *m1) == 0;
            CHECK(same);
            if (!same) {
                printf("  input  %.*s\n  fast   %.*s\n  slow   %s\n", (int)n, buf, (int)ol, out, slow ? slow : "(refused)");
                free(slow);
                break;
            }
        } else if (!slow) {
            agree_refuse++;
        }
        free(slow);
    }
    printf("  shortcut took %u of 200000 (%u of the 4 seeds), both refused %u\n", accepted, seeds_fast, agree_refuse);
    CHECK(seeds_fast == 3); /* the fourth carries a real: general path */
    CHECK(accepted > 1000);
    free(m1);
    free(m2);
}

int main(void)
{
    RUN(same_bytes_as_the_two_pass_render);
    RUN(server_keys_from_the_sender_are_replaced);
    RUN(sender_forced_and_reported);
    RUN(refusals_match_im_msg_parse);
    RUN(finish_extremes_and_in_place);
    RUN(shortcut_agrees_with_the_general_path);
    TEST_MAIN_END();
}
