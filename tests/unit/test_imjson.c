/* test_imjson.c - the IM JSON layer: error table, writer, validators, every parser (tables of
 * valid and invalid inputs with the exact code), render -> parse round trips, strictness. */
#include <jansson.h>
#include <stdint.h>

#include "gateway/im/errors.h"
#include "gateway/im/imjson.h"
#include "test.h"

#define DEV IM_SRC_DEVICE
#define REST IM_SRC_REST

/* ---- helpers ---- */
static int g_case_failed;
#define CASE_CHECK(c, ...) do { if (!(c)) { printf("  case failed: " __VA_ARGS__); printf(" (%s:%d)\n", __FILE__, __LINE__); t_cur_failed = 1; g_case_failed++; } } while (0)

static char g_buf[1 << 20];

static json_t *load(const char *s, size_t n)
{
    json_error_t je;
    json_t *v = json_loadb(s, n, JSON_REJECT_DUPLICATES, &je);
    if (!v)
        printf("  render is not JSON: %s: %.200s\n", je.text, s);
    return v;
}

/* ======================================================================================
 * errors
 * ====================================================================================== */
TEST(test_errors_table)
{
    static const int codes[] = {
        899000, 899001, 899002, 899003, 899006, 899007, 899008, 899009, 899011, 899012, 899013,
        899014, 899015, 899016, 899017, 899018, 899019, 899020, 899021, 899030, 899043, 899044,
        899045, 899046, 899047, 899048, 899049, 899050, 899051, 899052, 899053, 899070, 899071,
        899081, 899082, 801003, 801004, 801006, 803001, 803002, 803003, 803004, 803005, 803006,
        803007, 803008, 803009, 803010, 803011, 803012, 855001, 855002, 855003, 855004,
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        CASE_CHECK(im_err_known(codes[i]), "code %d not in table", codes[i]);
        CASE_CHECK(strcmp(im_err_message(codes[i]), "unknown error") != 0, "%d", codes[i]);
        int st = im_err_http_status(codes[i]);
        CASE_CHECK(st == 400 || st == 401 || st == 403 || st == 429 || st == 500 || st == 503,
                   "%d -> %d", codes[i], st);
        uint8_t rc = im_err_mqtt_reason(codes[i]);
        /* only codes MQTT 5 allows in PUBACK, plus CONNACK codes for the 801xxx logins */
        bool puback_ok = rc == 0x80 || rc == 0x83 || rc == 0x87 || rc == 0x97 || rc == 0x99;
        bool connack_ok = rc == 0x86 || rc == 0x8A;
        CASE_CHECK(codes[i] / 1000 == 801 ? connack_ok : puback_ok, "%d -> 0x%x", codes[i], rc);
    }
    CHECK_EQ(im_err_http_status(IM_E_PARAM), 400);
    CHECK_EQ(im_err_http_status(IM_E_AUTH_FAILED), 401);
    CHECK_EQ(im_err_http_status(IM_E_USER_EXIST), 403);
    CHECK_EQ(im_err_http_status(IM_E_SYSTEM), 500);
    CHECK_EQ(im_err_http_status(123), 500);
    CHECK_EQ(im_err_mqtt_reason(IM_E_SEND_NOT_MEMBER), 0x87);
    CHECK_EQ(im_err_mqtt_reason(IM_E_SEND_JSON), 0x99);
    CHECK_EQ(im_err_mqtt_reason(IM_E_SEND_TOO_LONG), 0x99);
    CHECK_EQ(im_err_mqtt_reason(IM_E_SEND_RATE), 0x97);
    CHECK_EQ(im_err_mqtt_reason(IM_E_SEND_NO_USER), 0x83);
    CHECK_EQ(im_err_mqtt_reason(IM_E_SEND_STORE), 0x80);
    CHECK_EQ(im_err_mqtt_reason(IM_OK), 0x00);
    CHECK_EQ(im_err_mqtt_reason(42), 0x80);
    CHECK_EQ(im_err_known(42), 0);
    CHECK(strcmp(im_err_message(IM_E_USER_EXIST), "User exist") == 0);
    CHECK(strcmp(im_err_message(42), "unknown error") == 0);
}

TEST(test_errors_render)
{
    char b[256];
    size_t n = im_err_render(899008, NULL, b, sizeof b);
    CHECK(strcmp(b, "{\"error\":{\"code\":899008,\"message\":\"Basic authentication failed\"}}") == 0);
    CHECK_EQ(n, strlen(b));
    n = im_err_render(899003, "msg_body.text: \"x\"\n", b, sizeof b);
    CHECK(strcmp(b, "{\"error\":{\"code\":899003,\"message\":\"msg_body.text: \\\"x\\\"\\n\"}}") == 0);
    /* snprintf semantics */
    char small[10];
    size_t need = im_err_render(899001, NULL, small, sizeof small);
    CHECK(need > sizeof small);
    CHECK_EQ(strlen(small), sizeof small - 1);
    CHECK_EQ(im_err_render(899001, NULL, NULL, 0), need);
}

/* ======================================================================================
 * writer
 * ====================================================================================== */
TEST(test_writer)
{
    char b[256];
    struct im_jw w;
    im_jw_init(&w, b, sizeof b);
    im_jw_obj_begin(&w);
    im_jw_key(&w, "a");
    im_jw_str(&w, "q\"b\\s/\x01\t\x7f");
    im_jw_key(&w, "n");
    im_jw_i64(&w, INT64_MIN);
    im_jw_key(&w, "u");
    im_jw_u64(&w, UINT64_MAX);
    im_jw_key(&w, "l");
    im_jw_arr_begin(&w);
    im_jw_bool(&w, true);
    im_jw_null(&w);
    im_jw_arr_begin(&w);
    im_jw_arr_end(&w);
    im_jw_obj_begin(&w);
    im_jw_obj_end(&w);
    im_jw_raw(&w, "{\"x\":1}", 7);
    im_jw_arr_end(&w);
    im_jw_obj_end(&w);
    size_t n = im_jw_finish(&w);
    const char *want = "{\"a\":\"q\\\"b\\\\s/\\u0001\\t\x7f\",\"n\":-9223372036854775808,"
                       "\"u\":18446744073709551615,\"l\":[true,null,[],{},{\"x\":1}]}";
    CHECK(strcmp(b, want) == 0);
    CHECK_EQ(n, strlen(want));

    /* invalid UTF-8 becomes U+FFFD; valid multi-byte passes */
    im_jw_init(&w, b, sizeof b);
    im_jw_strn(&w, "\xe4\xb8\xad\xff\xc0\xaf\xed\xa0\x80\xf0\x9f\x98\x80\xe4", 14);
    im_jw_finish(&w);
    CHECK(strcmp(b, "\"\xe4\xb8\xad\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                    "\xef\xbf\xbd\xf0\x9f\x98\x80\xef\xbf\xbd\"") == 0);
    json_error_t je;
    json_t *v = json_loads(b, JSON_DECODE_ANY, &je);
    CHECK(v != NULL && json_is_string(v));
    json_decref(v);

    /* every cap gives a NUL-terminated prefix and the same needed length */
    for (size_t cap = 1; cap < 40; cap++) {
        char t[40];
        memset(t, 'Z', sizeof t);
        size_t need = im_err_render(803011, "abc", t, cap);
        CASE_CHECK(need == 41, "need %zu", need); /* {"error":{"code":803011,"message":"abc"}} */
        CASE_CHECK(strlen(t) == cap - 1, "cap %zu", cap);
    }
}

/* ======================================================================================
 * validators and date-times
 * ====================================================================================== */
TEST(test_validators)
{
    static const struct { const char *s; bool ok; } names[] = {
        { "abcd", true }, { "dev_fang", true }, { "a.b-c@d_e", true }, { "0abc", true },
        { "ABCD", true }, { "abc", false }, { "", false }, { "_abc", false }, { ".abc", false },
        { "@abc", false }, { "ab cd", false }, { "ab+cd", false }, { "abc\xe4\xb8\xad", false },
        { "abc/", false }, { "abc:", false },
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        CASE_CHECK(im_username_valid(names[i].s, strlen(names[i].s)) == names[i].ok, "%s", names[i].s);
    char long_name[200];
    memset(long_name, 'a', sizeof long_name);
    CHECK(im_username_valid(long_name, 128));
    CHECK(!im_username_valid(long_name, 129));
    CHECK(im_password_valid("1234", 4));
    CHECK(!im_password_valid("123", 3));
    CHECK(im_password_valid(long_name, 128));
    CHECK(!im_password_valid(long_name, 129));

    uint64_t g = 0;
    CHECK(im_gid_parse("12345", 5, &g) && g == 12345);
    CHECK(im_gid_parse("9223372036854775807", 19, &g) && g == INT64_MAX);
    CHECK(!im_gid_parse("9223372036854775808", 19, &g));
    CHECK(!im_gid_parse("0", 1, &g));
    CHECK(!im_gid_parse("012", 3, &g));
    CHECK(!im_gid_parse("-1", 2, &g));
    CHECK(!im_gid_parse("1 ", 2, &g));
    CHECK(!im_gid_parse("", 0, &g));
    CHECK(!im_gid_parse("12345678901234567890", 20, &g));
}

TEST(test_datetime)
{
    int64_t t = 0;
    CHECK(im_datetime_parse("1970-01-01 00:00:00", 19, false, &t) && t == 0);
    CHECK(im_datetime_parse("2015-11-02 10:10:10", 19, false, &t) && t == 1446459010);
    CHECK(im_datetime_parse("2000-02-29", 10, true, &t) && t == 951782400);
    CHECK(!im_datetime_parse("2000-02-29", 10, false, &t));
    CHECK(!im_datetime_parse("1900-02-29", 10, true, &t));
    CHECK(!im_datetime_parse("2015-13-01", 10, true, &t));
    CHECK(!im_datetime_parse("2015-04-31", 10, true, &t));
    CHECK(!im_datetime_parse("2015-01-01 24:00:00", 19, false, &t));
    CHECK(!im_datetime_parse("2015-01-01T00:00:00", 19, false, &t));
    CHECK(!im_datetime_parse("2015/01/01", 10, true, &t));
    CHECK(!im_datetime_parse("15-01-01", 8, true, &t));
    CHECK(im_datetime_parse("1960-05-06", 10, true, &t) && t < 0);
    char out[AU_IM_DATETIME_LEN + 1];
    im_datetime_format(0, out);
    CHECK(strcmp(out, "1970-01-01 00:00:00") == 0);
    im_datetime_format(1446459010123ull, out);
    CHECK(strcmp(out, "2015-11-02 10:10:10") == 0);
    im_datetime_format(951868799000ull, out);
    CHECK(strcmp(out, "2000-02-29 23:59:59") == 0);
    im_datetime_format(UINT64_MAX, out);
    CHECK(strcmp(out, "9999-12-31 23:59:59") == 0);
    /* round trip over a spread of days */
    for (uint64_t s = 0; s < 253402300800ull; s += 86400ull * 97 + 3671) {
        im_datetime_format(s * 1000, out);
        CASE_CHECK(im_datetime_parse(out, 19, false, &t) && (uint64_t)t == s, "%s", out);
    }
}

/* ======================================================================================
 * messages
 * ====================================================================================== */
#define HDR_DEV "\"version\":1,\"target_type\":\"single\",\"target_id\":\"javen\","
#define HDR_REST "\"version\":1,\"target_type\":\"single\",\"target_id\":\"javen\",\"from_type\":\"admin\",\"from_id\":\"fang\","

struct mcase { enum im_src src; const char *json; int code; };

static const struct mcase k_msg_valid[] = {
    /* the JMessage REST examples */
    { REST, "{\"version\":1,\"target_type\":\"single\",\"target_id\":\"javen\",\"from_type\":\"admin\","
            "\"from_id\":\"fang\",\"msg_type\":\"text\",\"msg_body\":{\"extras\":{},\"text\":\"Hello, JMessage!\"}}", 0 },
    { REST, "{" HDR_REST "\"msg_type\":\"image\",\"msg_body\":{\"media_id\":\"qiniu/image/CE0ACD035CBF71F8\","
            "\"media_crc32\":2778919613,\"width\":3840,\"height\":2160,\"fsize\":3328738,\"format\":\"jpg\"}}", 0 },
    { REST, "{\"version\":1,\"target_type\":\"single\",\"target_id\":\"ppppp\",\"from_type\":\"admin\","
            "\"from_id\":\"admin_caiyh\",\"msg_type\":\"voice\",\"msg_body\":{\"media_id\":"
            "\"qiniu/voice/j/A96B61EB3AF0E5CDE66D377DEA4F76B8\",\"media_crc32\":1882116055,"
            "\"hash\":\"FoYn15bAGRUM9gZCAkvf9dolVH7h\",\"fsize\":12344,\"duration\":6}}", 0 },
    { REST, "{" HDR_REST "\"msg_type\":\"custom\",\"msg_body\":{\"any\":[1,2,{\"x\":null}]}}", 0 },
    { REST, "{\"version\":1,\"target_type\":\"group\",\"target_id\":\"10055201\",\"from_type\":\"admin\","
            "\"from_id\":\"fang\",\"msg_type\":\"text\",\"msg_body\":{\"text\":\"hi\"},\"no_offline\":true,"
            "\"no_notification\":false,\"notification\":{\"title\":\"T\",\"alert\":\"A\"},"
            "\"from_name\":\"Fang\",\"target_name\":\"Group\",\"client_msg_id\":\"c-1:2.3_x\"}", 0 },
    /* the message-protocol examples (device) */
    { DEV, "{\"version\":1,\"target_type\":\"single\",\"target_id\":\"javen\",\"target_name\":\"Javen Fang\","
           "\"from_type\":\"user\",\"from_id\":\"fang\",\"from_name\":\"Fang Javen\",\"create_time\":135432432187,"
           "\"msg_type\":\"text\",\"msg_body\":{\"text\":\"Hello, JPush IM!\"}}", 0 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"location\",\"msg_body\":{\"latitude\":111.2,\"longitude\":22.3,"
           "\"scale\":500,\"label\":\"xx\xe7\x9c\x81\"}}", 0 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"video\",\"msg_body\":{\"duration\":10,\"thumb\":{\"fsize\":20736,"
           "\"width\":72,\"format\":\"png\",\"media_crc32\":2565087609,\"media_id\":"
           "\"qiniu/image/a/707F13B42CEDB275702938DD13ED76E8.png\",\"height\":72},\"video\":{\"fname\":"
           "\"testvideo\",\"fsize\":2900883,\"media_crc32\":428957395,\"media_id\":"
           "\"qiniu/file/a/2745EACC984972A4F914C7614CEC1572\"}}}", 0 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"file\",\"msg_body\":{\"media_id\":\"m/1\",\"media_crc32\":0,"
           "\"fsize\":1,\"fname\":\"a b.txt\"}}", 0 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"image\",\"msg_body\":{\"media_id\":\"m/1\",\"media_crc32\":4294967295,"
           "\"width\":1,\"height\":1,\"fsize\":1}}", 0 },              /* format optional for devices */
    { DEV, "{" HDR_DEV "\"msg_type\":\"voice\",\"msg_body\":{\"media_id\":\"m\",\"media_crc32\":1,"
           "\"duration\":3,\"format\":\"m4a\",\"fsize\":9}}", 0 },
    { DEV, "{\"version\":1,\"target_type\":\"group\",\"target_id\":42,\"msg_type\":\"text\","
           "\"msg_body\":{\"text\":\"x\"}}", 0 },                         /* gid as integer, no from */
    { DEV, "{" HDR_DEV "\"from_type\":null,\"from_id\":null,\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"},"
           "\"unknown_key\":[1],\"msgid\":5,\"sequence\":9}", 0 },          /* nulls and unknown keys */
    { DEV, "  {" HDR_DEV "\"msg_type\":\"custom\",\"msg_body\":{}} \n", 0 },
};

static const struct mcase k_msg_invalid[] = {
    /* not JSON / wrong shape */
    { DEV, "", 803011 }, { REST, "", 899003 },
    { DEV, "{", 803011 }, { REST, "[1]", 899003 }, { DEV, "[]", 803011 }, { DEV, "\"x\"", 803011 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}} x", 803011 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"},}", 803011 },
    /* duplicates (top level and nested) */
    { DEV, "{" HDR_DEV "\"msg_type\":\"text\",\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}", 803011 },
    { REST, "{" HDR_REST "\"msg_type\":\"custom\",\"msg_body\":{\"a\":{\"b\":1,\"b\":2}}}", 899003 },
    /* non-UTF-8, NUL */
    { DEV, "{" HDR_DEV "\"msg_type\":\"text\",\"msg_body\":{\"text\":\"\xff\"}}", 803011 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"text\",\"msg_body\":{\"text\":\"a\\u0000b\"}}", 803011 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"text\",\"msg_body\":{\"text\":\"\\ud800\"}}", 803011 },
    /* huge numbers */
    { DEV, "{\"version\":99999999999999999999,\"target_type\":\"single\",\"target_id\":\"javen\","
           "\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}", 803011 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"custom\",\"msg_body\":{\"n\":1e999}}", 803011 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"image\",\"msg_body\":{\"media_id\":\"m\",\"media_crc32\":4294967296,"
           "\"width\":1,\"height\":1,\"fsize\":1}}", 803011 },
    /* version */
    { DEV, "{\"version\":2,\"target_type\":\"single\",\"target_id\":\"javen\",\"msg_type\":\"text\","
           "\"msg_body\":{\"text\":\"x\"}}", 803011 },
    { REST, "{\"version\":\"1\",\"target_type\":\"single\",\"target_id\":\"javen\",\"from_type\":\"admin\","
            "\"from_id\":\"fang\",\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}", 899003 },
    { DEV, "{\"target_type\":\"single\",\"target_id\":\"javen\",\"msg_type\":\"text\","
           "\"msg_body\":{\"text\":\"x\"}}", 803011 },
    /* target */
    { DEV, "{\"version\":1,\"target_type\":\"chatroom\",\"target_id\":\"1\",\"msg_type\":\"text\","
           "\"msg_body\":{\"text\":\"x\"}}", 803011 },
    { DEV, "{\"version\":1,\"target_type\":\"single\",\"target_id\":\"ab\",\"msg_type\":\"text\","
           "\"msg_body\":{\"text\":\"x\"}}", 803003 },
    { REST, "{\"version\":1,\"target_type\":\"single\",\"target_id\":\"ab\",\"from_type\":\"admin\","
            "\"from_id\":\"fang\",\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}", 899003 },
    { DEV, "{\"version\":1,\"target_type\":\"group\",\"target_id\":\"g1\",\"msg_type\":\"text\","
           "\"msg_body\":{\"text\":\"x\"}}", 803004 },
    { DEV, "{\"version\":1,\"target_type\":\"group\",\"target_id\":0,\"msg_type\":\"text\","
           "\"msg_body\":{\"text\":\"x\"}}", 803004 },
    { DEV, "{\"version\":1,\"target_type\":\"group\",\"target_id\":1.5,\"msg_type\":\"text\","
           "\"msg_body\":{\"text\":\"x\"}}", 803011 },
    { DEV, "{\"version\":1,\"target_type\":\"single\",\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}", 803011 },
    { DEV, "{\"version\":1,\"target_type\":\"single\",\"target_id\":7,\"msg_type\":\"text\","
           "\"msg_body\":{\"text\":\"x\"}}", 803011 },
    /* from */
    { DEV, "{" HDR_DEV "\"from_type\":\"admin\",\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}", 803006 },
    { DEV, "{" HDR_DEV "\"from_type\":\"robot\",\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}", 803006 },
    { DEV, "{" HDR_DEV "\"from_type\":\"alien\",\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}", 803011 },
    { DEV, "{" HDR_DEV "\"from_id\":\"a b\",\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}", 803006 },
    { REST, "{\"version\":1,\"target_type\":\"single\",\"target_id\":\"javen\",\"from_type\":\"user\","
            "\"from_id\":\"fang\",\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}", 899016 },
    { REST, "{\"version\":1,\"target_type\":\"single\",\"target_id\":\"javen\",\"from_id\":\"fang\","
            "\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}", 899003 },
    { REST, "{\"version\":1,\"target_type\":\"single\",\"target_id\":\"javen\",\"from_type\":\"admin\","
            "\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}", 899003 },
    { REST, "{\"version\":1,\"target_type\":\"single\",\"target_id\":\"javen\",\"from_type\":\"admin\","
            "\"from_id\":\"_x\",\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}", 899003 },
    /* msg_type / msg_body */
    { DEV, "{" HDR_DEV "\"msg_type\":\"sticker\",\"msg_body\":{}}", 803011 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"Text\",\"msg_body\":{\"text\":\"x\"}}", 803011 },
    { DEV, "{" HDR_DEV "\"msg_type\":5,\"msg_body\":{\"text\":\"x\"}}", 803011 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"text\"}", 803011 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"text\",\"msg_body\":\"hello\"}", 803011 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"text\",\"msg_body\":{}}", 803011 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"text\",\"msg_body\":{\"text\":\"\"}}", 803011 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"text\",\"msg_body\":{\"text\":1}}", 803011 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\",\"extras\":[]}}", 803011 },
    { REST, "{" HDR_REST "\"msg_type\":\"image\",\"msg_body\":{\"media_id\":\"m\",\"media_crc32\":1,"
            "\"width\":1,\"height\":1,\"fsize\":1}}", 899003 },           /* format required for REST */
    { DEV, "{" HDR_DEV "\"msg_type\":\"image\",\"msg_body\":{\"media_id\":\"m\",\"media_crc32\":1,"
           "\"width\":-1,\"height\":1,\"fsize\":1}}", 803011 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"image\",\"msg_body\":{\"media_id\":\"m\",\"media_crc32\":1.5,"
           "\"width\":1,\"height\":1,\"fsize\":1}}", 803011 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"image\",\"msg_body\":{\"media_id\":\"\",\"media_crc32\":1,"
           "\"width\":1,\"height\":1,\"fsize\":1}}", 803011 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"image\",\"msg_body\":{\"media_id\":\"a b\",\"media_crc32\":1,"
           "\"width\":1,\"height\":1,\"fsize\":1}}", 803011 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"voice\",\"msg_body\":{\"media_id\":\"m\",\"media_crc32\":1,"
           "\"duration\":3,\"fsize\":9}}", 803011 },                   /* format required for devices */
    { DEV, "{" HDR_DEV "\"msg_type\":\"file\",\"msg_body\":{\"media_id\":\"m\",\"media_crc32\":1,"
           "\"fsize\":1}}", 803011 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"file\",\"msg_body\":{\"media_id\":\"m\",\"media_crc32\":1,"
           "\"fsize\":1,\"fname\":\"a\\nb\"}}", 803011 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"video\",\"msg_body\":{\"duration\":1,\"video\":{\"media_id\":\"m\","
           "\"media_crc32\":1,\"fsize\":1}}}", 803011 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"video\",\"msg_body\":{\"duration\":1,\"video\":{\"media_id\":\"m\","
           "\"media_crc32\":1,\"fsize\":1,\"fname\":\"f\"},\"thumb\":{\"media_id\":\"m\"}}}", 803011 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"location\",\"msg_body\":{\"latitude\":\"1\",\"longitude\":2,"
           "\"scale\":1,\"label\":\"x\"}}", 803011 },
    { DEV, "{" HDR_DEV "\"msg_type\":\"location\",\"msg_body\":{\"latitude\":1,\"longitude\":2,"
           "\"scale\":1}}", 803011 },
    /* other fields */
    { DEV, "{" HDR_DEV "\"client_msg_id\":\"\",\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}", 803011 },
    { DEV, "{" HDR_DEV "\"client_msg_id\":\"a/b\",\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}", 803011 },
    { DEV, "{" HDR_DEV "\"client_msg_id\":7,\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}", 803011 },
    { DEV, "{" HDR_DEV "\"create_time\":-1,\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}", 803011 },
    { DEV, "{" HDR_DEV "\"no_offline\":1,\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}", 803011 },
    { REST, "{" HDR_REST "\"notification\":\"x\",\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}", 899003 },
    { REST, "{" HDR_REST "\"target_appkey\":\"short\",\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}", 899003 },
    { DEV, "{" HDR_DEV "\"from_platform\":\"a b\",\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}", 803011 },
};

TEST(test_msg_tables)
{
    struct im_msg *m = malloc(sizeof *m);
    struct im_err err;
    for (size_t i = 0; i < sizeof k_msg_valid / sizeof k_msg_valid[0]; i++) {
        const struct mcase *k = &k_msg_valid[i];
        int rc = im_msg_parse(k->json, strlen(k->json), k->src, m, &err);
        CASE_CHECK(rc == 0 && err.code == 0, "valid[%zu] refused %d %s", i, err.code, err.msg);
    }
    for (size_t i = 0; i < sizeof k_msg_invalid / sizeof k_msg_invalid[0]; i++) {
        const struct mcase *k = &k_msg_invalid[i];
        int rc = im_msg_parse(k->json, strlen(k->json), k->src, m, &err);
        CASE_CHECK(rc == -1 && err.code == k->code, "invalid[%zu] %s: got %d (%s), want %d", i,
                   k->json, err.code, err.msg, k->code);
        CASE_CHECK(err.msg[0] != '\0', "invalid[%zu] no detail", i);
    }
    free(m);
}

TEST(test_msg_fields)
{
    struct im_msg *m = malloc(sizeof *m);
    struct im_err err;
    const char *j = k_msg_valid[4].json;
    CHECK_EQ(im_msg_parse(j, strlen(j), REST, m, &err), 0);
    CHECK_EQ(m->target_type, IM_TARGET_GROUP);
    CHECK_EQ(m->target_gid, 10055201);
    CHECK(strcmp(m->target_id, "10055201") == 0);
    CHECK_EQ(m->from_type, IM_FROM_ADMIN);
    CHECK(strcmp(m->from_id, "fang") == 0);
    CHECK_EQ(m->msg_type, IM_MSG_TEXT);
    CHECK(m->no_offline && !m->no_notification && m->has_notification);
    CHECK(strcmp(m->notif_title, "T") == 0 && strcmp(m->notif_alert, "A") == 0);
    CHECK(strcmp(m->client_msg_id, "c-1:2.3_x") == 0);
    CHECK(strcmp(m->body, "{\"text\":\"hi\"}") == 0);
    CHECK_EQ(m->body_len, strlen(m->body));

    /* body is re-serialized compactly, key order kept */
    const char *j2 = "{" HDR_DEV "\"msg_type\":\"custom\",\"msg_body\":{ \"z\" : 1 , \"a\" : [ 1, 2.5, \"\\u00e9\" ] }}";
    CHECK_EQ(im_msg_parse(j2, strlen(j2), DEV, m, &err), 0);
    CHECK(strcmp(m->body, "{\"z\":1,\"a\":[1,2.5,\"\xc3\xa9\"]}") == 0);
    CHECK_EQ(m->from_type, IM_FROM_NONE);
    CHECK(m->from_id[0] == '\0');

    /* group gid as integer is normalised to the decimal string */
    const char *j3 = k_msg_valid[11].json;
    CHECK_EQ(im_msg_parse(j3, strlen(j3), DEV, m, &err), 0);
    CHECK(strcmp(m->target_id, "42") == 0 && m->target_gid == 42);

    /* failure leaves the struct zeroed */
    CHECK_EQ(im_msg_parse("{}", 2, DEV, m, &err), -1);
    CHECK_EQ(m->body_len, 0);
    free(m);
}

/* body size: exactly AU_IM_MSG_BODY_MAX bytes serialized is accepted, one more is 803007/899003;
 * a raw message over AU_IM_MSG_JSON_MAX is refused before parsing. */
TEST(test_msg_limits)
{
    struct im_msg *m = malloc(sizeof *m);
    struct im_err err;
    static char j[AU_IM_MSG_JSON_MAX + 64];
    const char *pre = "{" HDR_DEV "\"msg_type\":\"text\",\"msg_body\":{\"text\":\"";
    /* {"text":"<n>"} is n + 11 bytes */
    for (int extra = 0; extra <= 1; extra++) {
        size_t n = AU_IM_MSG_BODY_MAX - 11 + (size_t)extra;
        size_t p = (size_t)sprintf(j, "%s", pre);
        memset(j + p, 'x', n);
        p += n;
        p += (size_t)sprintf(j + p, "\"}}");
        int rc = im_msg_parse(j, p, DEV, m, &err);
        if (extra == 0) {
            CHECK_EQ(rc, 0);
            CHECK_EQ(m->body_len, AU_IM_MSG_BODY_MAX);
        } else {
            CHECK_EQ(rc, -1);
            CHECK_EQ(err.code, IM_E_SEND_TOO_LONG);
            CHECK_EQ(im_msg_parse(j, p, REST, m, &err), -1);
            CHECK_EQ(err.code, IM_E_PARAM);
        }
    }
    /* escapes count once decoded: 1000 \u4e2d (6 bytes each raw, 3 bytes UTF-8) fit */
    size_t p = (size_t)sprintf(j, "%s", pre);
    for (int i = 0; i < 1000; i++)
        p += (size_t)sprintf(j + p, "\\u4e2d");
    p += (size_t)sprintf(j + p, "\"}}");
    CHECK_EQ(im_msg_parse(j, p, DEV, m, &err), 0);
    CHECK_EQ(m->body_len, 3000 + 11);
    /* raw size limit */
    memset(j, ' ', AU_IM_MSG_JSON_MAX + 1);
    CHECK_EQ(im_msg_parse(j, AU_IM_MSG_JSON_MAX + 1, DEV, m, &err), -1);
    CHECK_EQ(err.code, IM_E_SEND_TOO_LONG);
    /* long header strings are format errors */
    p = (size_t)sprintf(j, "{" HDR_DEV "\"from_name\":\"");
    memset(j + p, 'n', AU_IM_STR_MAX + 1);
    p += AU_IM_STR_MAX + 1;
    p += (size_t)sprintf(j + p, "\",\"msg_type\":\"text\",\"msg_body\":{\"text\":\"x\"}}");
    CHECK_EQ(im_msg_parse(j, p, DEV, m, &err), -1);
    CHECK_EQ(err.code, IM_E_SEND_JSON);
    free(m);
}

static size_t nest(char *j, int depth, const char *pre, const char *post)
{
    size_t p = (size_t)sprintf(j, "%s", pre);
    for (int i = 0; i < depth; i++)
        j[p++] = '[';
    for (int i = 0; i < depth; i++)
        j[p++] = ']';
    p += (size_t)sprintf(j + p, "%s", post);
    return p;
}

TEST(test_msg_depth)
{
    struct im_msg *m = malloc(sizeof *m);
    struct im_err err;
    static char j[8192];
    const char *pre = "{" HDR_DEV "\"msg_type\":\"custom\",\"msg_body\":{\"d\":";
    /* the root object and msg_body make 2 levels */
    size_t n = nest(j, AU_IM_JSON_MAX_DEPTH - 2, pre, "}}");
    CHECK_EQ(im_msg_parse(j, n, DEV, m, &err), 0);
    n = nest(j, AU_IM_JSON_MAX_DEPTH - 1, pre, "}}");
    CHECK_EQ(im_msg_parse(j, n, DEV, m, &err), -1);
    CHECK_EQ(err.code, IM_E_SEND_JSON);
    n = nest(j, 3000, pre, "}}");
    CHECK_EQ(im_msg_parse(j, n, REST, m, &err), -1);
    CHECK_EQ(err.code, IM_E_PARAM);
    /* brackets inside strings do not count */
    n = (size_t)sprintf(j, "{" HDR_DEV "\"msg_type\":\"text\",\"msg_body\":{\"text\":\"");
    for (int i = 0; i < 100; i++)
        j[n++] = '[';
    n += (size_t)sprintf(j + n, "\\\"{{{\"}}");
    CHECK_EQ(im_msg_parse(j, n, DEV, m, &err), 0);
    free(m);
}

static bool msg_equal(const struct im_msg *a, const struct im_msg *b)
{
    return a->target_type == b->target_type && a->from_type == b->from_type &&
           a->msg_type == b->msg_type && a->target_gid == b->target_gid &&
           a->create_time == b->create_time && a->no_offline == b->no_offline &&
           a->no_notification == b->no_notification && a->has_notification == b->has_notification &&
           a->body_len == b->body_len && strcmp(a->target_id, b->target_id) == 0 &&
           strcmp(a->target_name, b->target_name) == 0 &&
           strcmp(a->target_appkey, b->target_appkey) == 0 && strcmp(a->from_id, b->from_id) == 0 &&
           strcmp(a->from_name, b->from_name) == 0 &&
           strcmp(a->from_platform, b->from_platform) == 0 &&
           strcmp(a->from_appkey, b->from_appkey) == 0 &&
           strcmp(a->client_msg_id, b->client_msg_id) == 0 &&
           strcmp(a->notif_title, b->notif_title) == 0 &&
           strcmp(a->notif_alert, b->notif_alert) == 0 && strcmp(a->body, b->body) == 0;
}

TEST(test_msg_roundtrip)
{
    struct im_msg *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    struct im_err err;
    for (size_t i = 0; i < sizeof k_msg_valid / sizeof k_msg_valid[0]; i++) {
        const struct mcase *k = &k_msg_valid[i];
        CASE_CHECK(im_msg_parse(k->json, strlen(k->json), k->src, a, &err) == 0, "%zu", i);
        if (a->from_type == IM_FROM_NONE)
            a->from_type = IM_FROM_USER; /* what the handler does for devices */
        if (!a->from_id[0])
            strcpy(a->from_id, "loggedin");
        uint64_t ctime = 1700000000123ull;
        size_t len = 0;
        char *out = im_msg_render_alloc(a, 987654321, ctime, 7, &len);
        CHECK(out != NULL && strlen(out) == len);
        CHECK_EQ(im_msg_render(a, 987654321, ctime, 7, NULL, 0), len);
        json_t *v = load(out, len);
        CASE_CHECK(v != NULL, "%zu", i);
        if (v) {
            CHECK_EQ(json_integer_value(json_object_get(v, "msgid")), 987654321);
            CHECK_EQ(json_integer_value(json_object_get(v, "msg_ctime")), (json_int_t)ctime);
            CHECK_EQ(json_integer_value(json_object_get(v, "sequence")), 7);
            CHECK_EQ(json_integer_value(json_object_get(v, "version")), 1);
            CHECK_EQ(json_integer_value(json_object_get(v, "create_time")),
                     a->create_time ? (json_int_t)a->create_time : (json_int_t)(ctime / 1000));
            json_decref(v);
        }
        CASE_CHECK(im_msg_parse(out, len, k->src, b, &err) == 0, "reparse %zu: %d %s\n%s", i,
                   err.code, err.msg, out);
        if (!a->create_time)
            a->create_time = ctime / 1000;
        if (k->src == DEV && b->from_type == IM_FROM_USER)
            CHECK_EQ(b->from_type, a->from_type);
        CASE_CHECK(msg_equal(a, b), "roundtrip %zu differs\n%s", i, out);
        size_t len2 = 0;
        char *out2 = im_msg_render_alloc(b, 987654321, ctime, 7, &len2);
        CASE_CHECK(len == len2 && memcmp(out, out2, len) == 0, "render not stable %zu", i);
        free(out);
        free(out2);
    }
    free(a);
    free(b);
}

TEST(test_msg_render_exact)
{
    struct im_msg *m = malloc(sizeof *m);
    struct im_err err;
    const char *j = "{\"version\":1,\"target_type\":\"single\",\"target_id\":\"javen\",\"from_type\":\"user\","
                    "\"from_id\":\"fang\",\"msg_type\":\"text\",\"msg_body\":{\"text\":\"hi\"},"
                    "\"client_msg_id\":\"abc\"}";
    CHECK_EQ(im_msg_parse(j, strlen(j), DEV, m, &err), 0);
    char b[1024];
    size_t n = im_msg_render(m, 5, 1466866468352ull, 3, b, sizeof b);
    const char *want = "{\"version\":1,\"target_type\":\"single\",\"target_id\":\"javen\",\"from_type\":\"user\","
                       "\"from_id\":\"fang\",\"create_time\":1466866468,\"msg_type\":\"text\","
                       "\"msg_body\":{\"text\":\"hi\"},\"msgid\":5,\"msg_ctime\":1466866468352,"
                       "\"msg_level\":0,\"sequence\":3,\"client_msg_id\":\"abc\"}";
    CHECK(strcmp(b, want) == 0);
    CHECK_EQ(n, strlen(want));
    n = im_msg_sent_render(43143728109ull, 1493794522950ull, b, sizeof b);
    CHECK(strcmp(b, "{\"msg_id\":43143728109,\"msg_ctime\":1493794522950}") == 0);
    const char *msgs[2] = { "{\"a\":1}", "{\"b\":2}" };
    size_t lens[2] = { 7, 7 };
    im_history_render(3000, "APSK", msgs, lens, 2, b, sizeof b);
    CHECK(strcmp(b, "{\"total\":3000,\"cursor\":\"APSK\",\"count\":2,\"messages\":[{\"a\":1},{\"b\":2}]}") == 0);
    im_history_render(0, NULL, msgs, lens, 0, b, sizeof b);
    CHECK(strcmp(b, "{\"total\":0,\"count\":0,\"messages\":[]}") == 0);
    free(m);
}

TEST(test_events)
{
    char b[1024];
    const char *names[] = { "eddie", "annie" };
    struct im_event ev = { .type = IM_EV_ADD_MEMBERS, .gid = 12345, .ctime_ms = 1000,
                           .from_username = "tom", .usernames = names, .n_usernames = 2 };
    im_event_render(&ev, 9, b, sizeof b);
    CHECK(strcmp(b, "{\"event\":\"add_members\",\"gid\":12345,\"from_username\":\"tom\","
                    "\"usernames\":[\"eddie\",\"annie\"],\"ctime\":1000,\"sequence\":9}") == 0);
    struct im_event e2 = { .type = IM_EV_SEND_ERROR, .err_code = IM_E_SEND_NOT_MEMBER,
                           .client_msg_id = "c1", .ctime_ms = 5 };
    im_event_render(&e2, 10, b, sizeof b);
    CHECK(strcmp(b, "{\"event\":\"send_error\",\"client_msg_id\":\"c1\",\"error\":{\"code\":803005,"
                    "\"message\":\"user not in group\"},\"ctime\":5,\"sequence\":10}") == 0);
    for (int t = IM_EV_CREATE_GROUP; t <= IM_EV_SEND_ERROR; t++) {
        struct im_event e = { .type = (enum im_event_type)t, .gid = 7, .msgid = t == IM_EV_MSG_RETRACT ? 99 : 0,
                              .from_username = "tom", .group_name = "g\"n", .ctime_ms = 1,
                              .err_code = 803011, .err_message = "bad" };
        size_t n = im_event_render(&e, 1, b, sizeof b);
        json_t *v = load(b, n);
        CASE_CHECK(v && strcmp(json_string_value(json_object_get(v, "event")),
                               im_event_type_name(e.type)) == 0, "event %d", t);
        json_decref(v);
    }
    CHECK(strcmp(im_event_type_name(IM_EV_EXIT_GROUP), "exit_group") == 0);
}

/* ======================================================================================
 * users
 * ====================================================================================== */
TEST(test_users_reg)
{
    struct im_user_reg *items = calloc(AU_IM_BATCH_MAX + 1, sizeof *items);
    struct im_err err;
    size_t n = 0;
    const char *j = "[{\"username\":\"dev_fang\",\"password\":\"password\"},"
                    "{\"username\":\"ab\",\"password\":\"password\"},"
                    "{\"username\":\"good1\",\"password\":\"pw\"},"
                    "{\"password\":\"password\"},"
                    "7,"
                    "{\"username\":\"full_1\",\"password\":\"secret1\",\"nickname\":\"Nick\",\"avatar\":\"qiniu/a\","
                    "\"birthday\":\"1990-01-24\",\"gender\":2,\"signature\":\"\xf0\x9f\x98\x80\",\"region\":\"sz\","
                    "\"address\":\"addr\",\"extras\":{\"k\":[1,true]}},"
                    "{\"username\":\"bad_nick\",\"password\":\"secret1\",\"nickname\":\"a\\nb\"},"
                    "{\"username\":\"bad_g\",\"password\":\"secret1\",\"gender\":3},"
                    "{\"username\":\"bad_b\",\"password\":\"secret1\",\"birthday\":\"1990-02-30\"},"
                    "{\"username\":\"bad_x\",\"password\":\"secret1\",\"extras\":\"s\"}]";
    CHECK_EQ(im_users_reg_parse(j, strlen(j), items, AU_IM_BATCH_MAX, &n, &err), 0);
    CHECK_EQ(n, 10);
    static const int want[10] = { 0, 899003, 899003, 899003, 899003, 0, 899003, 899003, 899003, 899003 };
    for (size_t i = 0; i < 10; i++)
        CASE_CHECK(items[i].err.code == want[i], "item %zu: %d %s", i, items[i].err.code, items[i].err.msg);
    CHECK(strcmp(items[0].password, "password") == 0);
    CHECK(strcmp(items[1].username, "ab") == 0 && items[1].password[0] == '\0');
    const struct im_profile *p = &items[5].profile;
    CHECK_EQ(p->set, IM_PF_NICKNAME | IM_PF_AVATAR | IM_PF_BIRTHDAY | IM_PF_GENDER | IM_PF_SIGNATURE |
                     IM_PF_REGION | IM_PF_ADDRESS | IM_PF_EXTRAS);
    CHECK(strcmp(p->birthday, "1990-01-24 00:00:00") == 0);
    CHECK(strcmp(p->extras, "{\"k\":[1,true]}") == 0);
    CHECK_EQ(p->gender, 2);

    /* the handler marks a taken name, then renders */
    items[0].err.code = IM_E_USER_EXIST;
    items[0].err.msg[0] = '\0';
    char b[4096];
    im_users_reg_render(items, 2, b, sizeof b);
    CHECK(strncmp(b, "[{\"username\":\"dev_fang\",\"error\":{\"code\":899001,\"message\":\"User exist\"}},"
                     "{\"username\":\"ab\",\"error\":{\"code\":899003,\"message\":\"username: not a valid username\"}}]",
                  strlen(b)) == 0);
    items[0].err.code = 0;
    im_users_reg_render(items, 1, b, sizeof b);
    CHECK(strcmp(b, "[{\"username\":\"dev_fang\"}]") == 0);

    /* whole-request errors */
    static const struct { const char *j; int code; } bad[] = {
        { "", 899003 }, { "{}", 899003 }, { "[]", 899003 }, { "[1,", 899003 },
        { "{\"username\":\"abcd\",\"password\":\"abcd\"}", 899003 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CASE_CHECK(im_users_reg_parse(bad[i].j, strlen(bad[i].j), items, AU_IM_BATCH_MAX, &n, &err) == -1 &&
                   err.code == bad[i].code && n == 0, "bad[%zu] %d", i, err.code);
    }
    /* 500 ok, 501 -> 899013 */
    static char big[AU_IM_BATCH_MAX * 48 + 64];
    for (int count = AU_IM_BATCH_MAX; count <= AU_IM_BATCH_MAX + 1; count++) {
        size_t pos = 0;
        big[pos++] = '[';
        for (int i = 0; i < count; i++)
            pos += (size_t)sprintf(big + pos, "%s{\"username\":\"user%04d\",\"password\":\"pw%04d\"}",
                                   i ? "," : "", i, i);
        big[pos++] = ']';
        int rc = im_users_reg_parse(big, pos, items, AU_IM_BATCH_MAX + 1, &n, &err);
        if (count == AU_IM_BATCH_MAX) {
            CHECK(rc == 0 && n == AU_IM_BATCH_MAX);
            CHECK(items[499].err.code == 0 && strcmp(items[499].username, "user0499") == 0);
        } else {
            CHECK(rc == -1 && err.code == IM_E_USER_LIST_TOO_LONG);
        }
    }
    /* cap smaller than the batch */
    CHECK_EQ(im_users_reg_parse(j, strlen(j), items, 3, &n, &err), -1);
    CHECK_EQ(err.code, IM_E_USER_LIST_TOO_LONG);
    /* an over-long invalid username is kept cut, at a character boundary */
    static char lj[1024];
    size_t pos = (size_t)sprintf(lj, "[{\"username\":\"");
    for (int i = 0; i < 127; i++)
        lj[pos++] = 'a';
    pos += (size_t)sprintf(lj + pos, "\xe4\xb8\xad\",\"password\":\"abcd\"}]");
    CHECK_EQ(im_users_reg_parse(lj, pos, items, AU_IM_BATCH_MAX, &n, &err), 0);
    CHECK_EQ(items[0].err.code, 899003);
    CHECK_EQ(strlen(items[0].username), 127);
    free(items);
}

TEST(test_admin_reg)
{
    struct im_user_reg r;
    struct im_err err;
    const char *ok = "{\"username\":\"admin_1\",\"password\":\"password\",\"nickname\":\"Boss\"}";
    CHECK_EQ(im_admin_reg_parse(ok, strlen(ok), &r, &err), 0);
    CHECK(strcmp(r.username, "admin_1") == 0 && strcmp(r.profile.nickname, "Boss") == 0);
    static const char *bad[] = {
        "[{\"username\":\"admin_1\",\"password\":\"password\"}]", "{\"username\":\"admin_1\"}",
        "{\"username\":\"ad\",\"password\":\"password\"}", "{\"username\":\"admin_1\",\"password\":123}", "nope",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CASE_CHECK(im_admin_reg_parse(bad[i], strlen(bad[i]), &r, &err) == -1 && err.code == 899003 &&
                   r.err.code == 899003, "%s", bad[i]);
}

TEST(test_user_update)
{
    struct im_profile p;
    struct im_err err;
    static const struct { const char *j; int code; uint32_t set; } cases[] = {
        { "{\"nickname\":\"Hello JMessage\"}", 0, IM_PF_NICKNAME },
        { "{\"nickname\":\"\"}", 0, IM_PF_NICKNAME },
        { "{\"gender\":0,\"region\":\"r\",\"unknown\":1}", 0, IM_PF_GENDER | IM_PF_REGION },
        { "{\"birthday\":\"1990-01-24 10:20:30\"}", 0, IM_PF_BIRTHDAY },
        { "{\"birthday\":\"\"}", 0, IM_PF_BIRTHDAY },
        { "{\"extras\":{}}", 0, IM_PF_EXTRAS },
        { "{\"nickname\":null,\"address\":\"a\"}", 0, IM_PF_ADDRESS },
        { "{}", 899003, 0 },
        { "{\"unknown\":1}", 899003, 0 },
        { "[]", 899003, 0 },
        { "{\"nickname\":\"a\\rb\"}", 899003, 0 },
        { "{\"nickname\":1}", 899003, 0 },
        { "{\"gender\":\"1\"}", 899003, 0 },
        { "{\"gender\":-1}", 899003, 0 },
        { "{\"birthday\":\"1990-1-24\"}", 899003, 0 },
        { "{\"birthday\":\"24/01/1990\"}", 899003, 0 },
        { "{\"avatar\":\"a b\"}", 899003, 0 },
        { "{\"extras\":[1]}", 899003, 0 },
        { "{\"nickname\":\"a\",\"nickname\":\"b\"}", 899003, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = im_user_update_parse(cases[i].j, strlen(cases[i].j), &p, &err);
        CASE_CHECK(cases[i].code ? (rc == -1 && err.code == cases[i].code)
                                 : (rc == 0 && p.set == cases[i].set),
                   "%s: rc %d code %d set %x", cases[i].j, rc, err.code, p.set);
    }
    /* exact limits */
    char j[2048], s[600];
    memset(s, 'n', sizeof s);
    for (int over = 0; over <= 1; over++) {
        int n = sprintf(j, "{\"nickname\":\"%.*s\"}", AU_IM_NICKNAME_MAX + over, s);
        CHECK_EQ(im_user_update_parse(j, (size_t)n, &p, &err), over ? -1 : 0);
        n = sprintf(j, "{\"signature\":\"%.*s\"}", AU_IM_STR_MAX + over, s);
        CHECK_EQ(im_user_update_parse(j, (size_t)n, &p, &err), over ? -1 : 0);
        /* {"s":"..."} is len + 8 bytes */
        n = sprintf(j, "{\"extras\":{\"s\":\"%.*s\"}}", AU_IM_EXTRAS_MAX - 8 + over, s);
        CHECK_EQ(im_user_update_parse(j, (size_t)n, &p, &err), over ? -1 : 0);
    }
    /* multi-byte: 64 bytes of 3-byte characters would be 21.3 chars: 21 fit, 22 do not */
    char zh[256] = "{\"nickname\":\"";
    for (int i = 0; i < 22; i++)
        strcat(zh, "\xe4\xb8\xad");
    strcat(zh, "\"}");
    CHECK_EQ(im_user_update_parse(zh, strlen(zh), &p, &err), -1);
}

/* profile -> user object -> PUT body: the same profile comes back */
TEST(test_profile_roundtrip)
{
    const char *j = "{\"nickname\":\"N\\u00e9\",\"avatar\":\"qiniu/a\",\"birthday\":\"1960-05-06\",\"gender\":1,"
                    "\"signature\":\"s\\n\\\"q\\\"\",\"region\":\"r\",\"address\":\"a\","
                    "\"extras\":{\"x\":[1.5,\"y\",{\"z\":null}]}}";
    struct im_user u;
    memset(&u, 0, sizeof u);
    strcpy(u.username, "javen");
    struct im_err err;
    CHECK_EQ(im_user_update_parse(j, strlen(j), &u.profile, &err), 0);
    CHECK(strcmp(u.profile.birthday, "1960-05-06 00:00:00") == 0);
    char b[2048];
    size_t n = im_user_render(&u, -1, b, sizeof b);
    struct im_profile q;
    CHECK_EQ(im_user_update_parse(b, n, &q, &err), 0);
    CHECK(memcmp(&q, &u.profile, sizeof q) == 0);
}

TEST(test_password)
{
    char pw[AU_IM_PASSWORD_MAX + 1];
    struct im_err err;
    CHECK_EQ(im_password_parse("{\"new_password\":\"654321\"}", 25, pw, &err), 0);
    CHECK(strcmp(pw, "654321") == 0);
    static const char *bad[] = { "{\"new_password\":\"123\"}", "{\"new_password\":123456}", "{}",
                                 "{\"password\":\"654321\"}", "[\"654321\"]" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CASE_CHECK(im_password_parse(bad[i], strlen(bad[i]), pw, &err) == -1 && err.code == 899003 &&
                   pw[0] == '\0', "%s", bad[i]);
    char j[512], s[200];
    memset(s, 'p', sizeof s);
    int n = sprintf(j, "{\"new_password\":\"%.*s\"}", AU_IM_PASSWORD_MAX, s);
    CHECK_EQ(im_password_parse(j, (size_t)n, pw, &err), 0);
    n = sprintf(j, "{\"new_password\":\"%.*s\"}", AU_IM_PASSWORD_MAX + 1, s);
    CHECK_EQ(im_password_parse(j, (size_t)n, pw, &err), -1);
}

TEST(test_usernames)
{
    struct im_name names[AU_IM_BATCH_MAX];
    struct im_err err;
    size_t n = 0;
    CHECK_EQ(im_usernames_parse("[\"USER1\",\"USER2\",\"USER1\"]", 25, names, AU_IM_BATCH_MAX, &n, &err), 0);
    CHECK(n == 3 && strcmp(names[1].s, "USER2") == 0);
    static const char *bad[] = { "[]", "{}", "[\"ab\"]", "[1]", "[\"good1\",null]", "\"abcd\"" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CASE_CHECK(im_usernames_parse(bad[i], strlen(bad[i]), names, AU_IM_BATCH_MAX, &n, &err) == -1 &&
                   err.code == 899003 && n == 0, "%s", bad[i]);
    CHECK_EQ(im_usernames_parse("[\"USER1\",\"USER2\",\"USER3\"]", 25, names, 2, &n, &err), -1);
    CHECK_EQ(err.code, IM_E_USER_LIST_TOO_LONG);
}

TEST(test_user_render)
{
    struct im_user u;
    memset(&u, 0, sizeof u);
    strcpy(u.username, "javen");
    u.profile.set = IM_PF_NICKNAME | IM_PF_AVATAR | IM_PF_BIRTHDAY | IM_PF_GENDER | IM_PF_SIGNATURE |
                    IM_PF_REGION | IM_PF_ADDRESS;
    strcpy(u.profile.nickname, "hello");
    strcpy(u.profile.avatar, "/avatar");
    strcpy(u.profile.birthday, "1990-01-24 00:00:00");
    strcpy(u.profile.signature, "orz");
    strcpy(u.profile.region, "shenzhen");
    strcpy(u.profile.address, "shenzhen");
    u.mtime_ms = 1420070400000ull;
    u.ctime_ms = 1420070400000ull;
    char b[2048];
    im_user_render(&u, -1, b, sizeof b);
    CHECK(strcmp(b, "{\"username\":\"javen\",\"nickname\":\"hello\",\"avatar\":\"/avatar\","
                    "\"birthday\":\"1990-01-24 00:00:00\",\"gender\":0,\"signature\":\"orz\","
                    "\"region\":\"shenzhen\",\"address\":\"shenzhen\",\"mtime\":\"2015-01-01 00:00:00\","
                    "\"ctime\":\"2015-01-01 00:00:00\"}") == 0);
    /* only username/mtime/ctime when nothing else is stored */
    struct im_user bare;
    memset(&bare, 0, sizeof bare);
    strcpy(bare.username, "cai1");
    im_user_render(&bare, 1, b, sizeof b);
    CHECK(strcmp(b, "{\"username\":\"cai1\",\"flag\":1,\"mtime\":\"1970-01-01 00:00:00\","
                    "\"ctime\":\"1970-01-01 00:00:00\"}") == 0);
    struct im_user list[2] = { bare, u };
    size_t n = im_user_list_render(1100, 12580, list, 2, b, sizeof b);
    json_t *v = load(b, n);
    CHECK(v && json_integer_value(json_object_get(v, "total")) == 12580 &&
          json_integer_value(json_object_get(v, "start")) == 1100 &&
          json_integer_value(json_object_get(v, "count")) == 2 &&
          json_array_size(json_object_get(v, "users")) == 2);
    json_decref(v);
    int flags[2] = { 1, 0 };
    n = im_users_render(list, flags, 2, b, sizeof b);
    v = load(b, n);
    CHECK(v && json_is_array(v) &&
          json_integer_value(json_object_get(json_array_get(v, 1), "flag")) == 0);
    json_decref(v);
    /* extras are embedded as JSON */
    u.profile.set |= IM_PF_EXTRAS;
    strcpy(u.profile.extras, "{\"a\":1}");
    n = im_user_render(&u, -1, b, sizeof b);
    v = load(b, n);
    CHECK(v && json_integer_value(json_object_get(json_object_get(v, "extras"), "a")) == 1);
    json_decref(v);

    im_userstat_render(true, false, b, sizeof b);
    CHECK(strcmp(b, "{\"login\":true,\"online\":false}") == 0);
    struct im_device_stat ds = { false, false, "a" };
    struct im_userstat st[2] = { { "caiyh01", NULL, 0 }, { "Rauly", &ds, 1 } };
    im_userstats_render(st, 2, b, sizeof b);
    CHECK(strcmp(b, "[{\"devices\":[],\"username\":\"caiyh01\"},{\"devices\":[{\"login\":false,"
                    "\"online\":false,\"platform\":\"a\"}],\"username\":\"Rauly\"}]") == 0);
}

/* ======================================================================================
 * groups, media
 * ====================================================================================== */
TEST(test_group_create)
{
    struct im_group_create *g = malloc(sizeof *g);
    struct im_err err;
    const char *ok = "{\"owner_username\":\"tom\\u0031\",\"name\":\"\xe7\xbe\xa4\",\"members_username\":"
                     "[\"eddie\",\"annie\"],\"desc\":\"sport\",\"avatar\":\"qiniu/g\",\"flag\":2}";
    CHECK_EQ(im_group_create_parse(ok, strlen(ok), g, &err), 0);
    CHECK(strcmp(g->owner, "tom1") == 0 && g->n_members == 2 && g->flag == 2 &&
          strcmp(g->members[1].s, "annie") == 0);
    CHECK_EQ(g->set, IM_GF_NAME | IM_GF_DESC | IM_GF_AVATAR | IM_GF_FLAG);
    const char *min = "{\"owner_username\":\"tom1\",\"name\":\"n\"}";
    CHECK_EQ(im_group_create_parse(min, strlen(min), g, &err), 0);
    CHECK(g->flag == IM_GROUP_PRIVATE && g->n_members == 0 && g->set == IM_GF_NAME);
    static const struct { const char *j; int code; } bad[] = {
        { "{\"name\":\"n\"}", 899003 },
        { "{\"owner_username\":\"to\",\"name\":\"n\"}", 899003 },
        { "{\"owner_username\":\"tom1\"}", 899003 },
        { "{\"owner_username\":\"tom1\",\"name\":\"\"}", 899003 },
        { "{\"owner_username\":\"tom1\",\"name\":\"a\\nb\"}", 899003 },
        { "{\"owner_username\":\"tom1\",\"name\":\"n\",\"flag\":3}", 899003 },
        { "{\"owner_username\":\"tom1\",\"name\":\"n\",\"flag\":\"1\"}", 899003 },
        { "{\"owner_username\":\"tom1\",\"name\":\"n\",\"members_username\":\"eddie\"}", 899003 },
        { "{\"owner_username\":\"tom1\",\"name\":\"n\",\"members_username\":[\"ed\"]}", 899003 },
        { "{\"owner_username\":\"tom1\",\"name\":\"n\",\"members_username\":[\"eddie\",\"eddie\"]}", 899011 },
        { "[]", 899003 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CASE_CHECK(im_group_create_parse(bad[i].j, strlen(bad[i].j), g, &err) == -1 &&
                   err.code == bad[i].code, "%s: %d", bad[i].j, err.code);
    /* name and desc limits, member count */
    char j[AU_IM_MAX_GROUP_MEMBERS * 16 + 256], s[300];
    memset(s, 'x', sizeof s);
    int n = sprintf(j, "{\"owner_username\":\"tom1\",\"name\":\"%.*s\",\"desc\":\"%.*s\"}",
                    AU_IM_GROUP_NAME_MAX, s, AU_IM_STR_MAX, s);
    CHECK_EQ(im_group_create_parse(j, (size_t)n, g, &err), 0);
    n = sprintf(j, "{\"owner_username\":\"tom1\",\"name\":\"%.*s\"}", AU_IM_GROUP_NAME_MAX + 1, s);
    CHECK_EQ(im_group_create_parse(j, (size_t)n, g, &err), -1);
    n = sprintf(j, "{\"owner_username\":\"tom1\",\"name\":\"n\",\"desc\":\"%.*s\"}", AU_IM_STR_MAX + 1, s);
    CHECK_EQ(im_group_create_parse(j, (size_t)n, g, &err), -1);
    for (int count = AU_IM_MAX_GROUP_MEMBERS; count <= AU_IM_MAX_GROUP_MEMBERS + 1; count++) {
        size_t pos = (size_t)sprintf(j, "{\"owner_username\":\"tom1\",\"name\":\"n\",\"members_username\":[");
        for (int i = 0; i < count; i++)
            pos += (size_t)sprintf(j + pos, "%s\"m%05d\"", i ? "," : "", i);
        pos += (size_t)sprintf(j + pos, "]}");
        int rc = im_group_create_parse(j, pos, g, &err);
        if (count == AU_IM_MAX_GROUP_MEMBERS)
            CHECK(rc == 0 && g->n_members == AU_IM_MAX_GROUP_MEMBERS);
        else
            CHECK(rc == -1 && err.code == IM_E_GROUP_FULL);
    }
    free(g);
}

TEST(test_group_update_members)
{
    struct im_group_update u;
    struct im_err err;
    static const struct { const char *j; int code; uint32_t set; } cases[] = {
        { "{\"name\":\"n2\"}", 0, IM_GF_NAME },
        { "{\"desc\":\"\",\"avatar\":\"qiniu/x\"}", 0, IM_GF_DESC | IM_GF_AVATAR },
        { "{}", 899003, 0 }, { "{\"name\":\"\"}", 899003, 0 }, { "{\"name\":5}", 899003, 0 },
        { "{\"owner_username\":\"tom1\"}", 899003, 0 }, { "[]", 899003, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = im_group_update_parse(cases[i].j, strlen(cases[i].j), &u, &err);
        CASE_CHECK(cases[i].code ? (rc == -1 && err.code == cases[i].code) : (rc == 0 && u.set == cases[i].set),
                   "%s", cases[i].j);
    }
    struct im_members_update *m = malloc(sizeof *m);
    static const struct { const char *j; int code; size_t na, nr; } mc[] = {
        { "{\"add\":[\"test1\",\"test2\"],\"remove\":[\"test3\",\"test4\"]}", 0, 2, 2 },
        { "{\"add\":[\"test1\"]}", 0, 1, 0 },
        { "{\"remove\":[\"test3\"],\"add\":[]}", 0, 0, 1 },
        { "{}", 899003, 0, 0 }, { "{\"add\":[],\"remove\":[]}", 899003, 0, 0 },
        { "{\"add\":\"test1\"}", 899003, 0, 0 }, { "{\"add\":[\"t\"]}", 899003, 0, 0 },
        { "{\"add\":[\"test1\",\"test1\"]}", 899011, 0, 0 },
        { "{\"remove\":[\"test1\",\"test1\"]}", 899003, 0, 0 },
        { "{\"add\":[\"test1\"],\"remove\":[\"test1\"]}", 899003, 0, 0 },
        { "[\"test1\"]", 899003, 0, 0 },
    };
    for (size_t i = 0; i < sizeof mc / sizeof mc[0]; i++) {
        int rc = im_members_update_parse(mc[i].j, strlen(mc[i].j), m, &err);
        CASE_CHECK(mc[i].code ? (rc == -1 && err.code == mc[i].code)
                              : (rc == 0 && m->n_add == mc[i].na && m->n_remove == mc[i].nr),
                   "%s: %d %d", mc[i].j, rc, err.code);
    }
    free(m);
}

TEST(test_group_render)
{
    struct im_group g;
    memset(&g, 0, sizeof g);
    g.gid = 12345;
    g.flag = 1;
    g.max_members = 500;
    g.appkey = "dcf71ef5082057832bd44fbd";
    strcpy(g.name, "jpush");
    strcpy(g.desc, "push");
    g.ctime_ms = 1401926400000ull;
    g.mtime_ms = 1404172800000ull;
    char b[4096];
    im_group_render(&g, b, sizeof b);
    CHECK(strcmp(b, "{\"gid\":12345,\"name\":\"jpush\",\"desc\":\"push\",\"appkey\":\"dcf71ef5082057832bd44fbd\","
                    "\"MaxMemberCount\":500,\"flag\":1,\"mtime\":\"2014-07-01 00:00:00\","
                    "\"ctime\":\"2014-06-05 00:00:00\"}") == 0);
    strcpy(g.owner, "tom1");
    struct im_name mem[2] = { { "eddie" }, { "annie" } };
    im_group_created_render(&g, mem, 2, b, sizeof b);
    CHECK(strcmp(b, "{\"gid\":12345,\"owner_username\":\"tom1\",\"name\":\"jpush\",\"members_username\":"
                    "[\"eddie\",\"annie\"],\"desc\":\"push\",\"MaxMemberCount\":500,\"flag\":1}") == 0);
    struct im_group gs[2] = { g, g };
    size_t n = im_group_list_render(1100, 1233, gs, 2, b, sizeof b);
    json_t *v = load(b, n);
    CHECK(v && json_array_size(json_object_get(v, "groups")) == 2 &&
          json_integer_value(json_object_get(v, "total")) == 1233);
    json_decref(v);
    n = im_groups_render(gs, 2, b, sizeof b);
    v = load(b, n);
    CHECK(v && json_array_size(v) == 2);
    json_decref(v);
}

TEST(test_media)
{
    CHECK_EQ(im_media_kind_parse("image", 5), IM_MEDIA_IMAGE);
    CHECK_EQ(im_media_kind_parse("voice", 5), IM_MEDIA_VOICE);
    CHECK_EQ(im_media_kind_parse("file", 4), IM_MEDIA_FILE);
    CHECK_EQ(im_media_kind_parse("video", 5), 0);
    CHECK_EQ(im_media_kind_parse("imag", 4), 0);
    struct im_media m;
    memset(&m, 0, sizeof m);
    m.kind = IM_MEDIA_IMAGE;
    strcpy(m.media_id, "qiniu/image/F39AA12204DAB6A2");
    m.crc32 = 1338734977;
    m.width = 720;
    m.height = 1280;
    strcpy(m.format, "jpg");
    m.fsize = 52468;
    char b[1024];
    im_media_render(&m, b, sizeof b);
    CHECK(strcmp(b, "{\"media_id\":\"qiniu/image/F39AA12204DAB6A2\",\"media_crc32\":1338734977,"
                    "\"width\":720,\"height\":1280,\"format\":\"jpg\",\"fsize\":52468}") == 0);
    memset(&m, 0, sizeof m);
    m.kind = IM_MEDIA_FILE;
    strcpy(m.media_id, "qiniu/file/j/1BB3");
    m.crc32 = 1415584260;
    strcpy(m.fname, "0839d1c0.dmp");
    m.fsize = 176512;
    strcpy(m.hash, "FtH0kPT0YI89HAw1K9wv_vVKiNab");
    im_media_render(&m, b, sizeof b);
    CHECK(strcmp(b, "{\"media_id\":\"qiniu/file/j/1BB3\",\"media_crc32\":1415584260,\"fname\":\"0839d1c0.dmp\","
                    "\"fsize\":176512,\"hash\":\"FtH0kPT0YI89HAw1K9wv_vVKiNab\"}") == 0);
    m.kind = IM_MEDIA_VOICE;
    strcpy(m.format, "m4a");
    im_media_render(&m, b, sizeof b);
    CHECK(strcmp(b, "{\"media_id\":\"qiniu/file/j/1BB3\",\"media_crc32\":1415584260,\"format\":\"m4a\","
                    "\"fsize\":176512,\"hash\":\"FtH0kPT0YI89HAw1K9wv_vVKiNab\"}") == 0);
    im_media_url_render("http://h/x?a=\"b\"", b, sizeof b);
    CHECK(strcmp(b, "{\"url\":\"http://h/x?a=\\\"b\\\"\"}") == 0);
}

/* Every parser on junk: never crashes, always a code from the family. */
TEST(test_junk)
{
    static const char *junk[] = {
        "", " ", "null", "true", "0", "\"s\"", "[", "]", "{}", "[]", "[[[[", "{\"a\":}", "\xef\xbb\xbf{}",
        "{\"a\":1}\x00", "[null]", "[{}]", "{\"\":\"\"}", "1e400", "-", "{\"add\":null}",
    };
    struct im_msg *m = malloc(sizeof *m);
    struct im_user_reg *items = calloc(AU_IM_BATCH_MAX, sizeof *items);
    struct im_group_create *gc = malloc(sizeof *gc);
    struct im_members_update *mu = malloc(sizeof *mu);
    struct im_name names[AU_IM_BATCH_MAX];
    struct im_profile p;
    struct im_group_update gu;
    char pw[AU_IM_PASSWORD_MAX + 1];
    struct im_err err;
    size_t n;
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        size_t l = strlen(junk[i]) + (i == 13 ? 1 : 0);
        CASE_CHECK(im_msg_parse(junk[i], l, DEV, m, &err) == -1 && err.code / 1000 == 803, "%zu", i);
        CASE_CHECK(im_msg_parse(junk[i], l, REST, m, &err) == -1 && err.code == 899003, "%zu", i);
        int rc = im_users_reg_parse(junk[i], l, items, AU_IM_BATCH_MAX, &n, &err);
        CASE_CHECK(rc == -1 ? err.code == 899003 : items[0].err.code == 899003, "%zu", i);
        CASE_CHECK(im_user_update_parse(junk[i], l, &p, &err) == -1 && err.code == 899003, "%zu", i);
        CASE_CHECK(im_password_parse(junk[i], l, pw, &err) == -1 && err.code == 899003, "%zu", i);
        CASE_CHECK(im_usernames_parse(junk[i], l, names, AU_IM_BATCH_MAX, &n, &err) == -1, "%zu", i);
        CASE_CHECK(im_group_create_parse(junk[i], l, gc, &err) == -1 && err.code == 899003, "%zu", i);
        CASE_CHECK(im_group_update_parse(junk[i], l, &gu, &err) == -1 && err.code == 899003, "%zu", i);
        CASE_CHECK(im_members_update_parse(junk[i], l, mu, &err) == -1 && err.code == 899003, "%zu", i);
    }
    free(m);
    free(items);
    free(gc);
    free(mu);
}

int main(void)
{
    RUN(test_errors_table);
    RUN(test_errors_render);
    RUN(test_writer);
    RUN(test_validators);
    RUN(test_datetime);
    RUN(test_msg_tables);
    RUN(test_msg_fields);
    RUN(test_msg_limits);
    RUN(test_msg_depth);
    RUN(test_msg_roundtrip);
    RUN(test_msg_render_exact);
    RUN(test_events);
    RUN(test_users_reg);
    RUN(test_admin_reg);
    RUN(test_user_update);
    RUN(test_profile_roundtrip);
    RUN(test_password);
    RUN(test_usernames);
    RUN(test_user_render);
    RUN(test_group_create);
    RUN(test_group_update_members);
    RUN(test_group_render);
    RUN(test_media);
    RUN(test_junk);
    (void)g_buf;
    (void)g_case_failed;
    TEST_MAIN_END();
}
