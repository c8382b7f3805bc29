/* test_hooks.c - the broker's extension table (gateway/mqtt/ext.h): registration up to BROKER_EXT_MAX, hooks run
 * in registration order, the first extension that takes a PUBLISH / claims a filter / reserves a topic wins,
 * missing hooks are skipped, and the per-message tag finds the extension that made a message (on_ack). */
#include "gateway/mqtt/ext.h"
#include "test.h"

static char trace[64];
static size_t ntrace;
static void mark(char c)
{
    if (ntrace < sizeof trace - 1) trace[ntrace++] = c;
    trace[ntrace] = 0;
}
static void reset_trace(void)
{
    ntrace = 0;
    trace[0] = 0;
}

static void a_online(struct broker *b, struct session *s) { mark('a'); }
static void b_online(struct broker *b, struct session *s) { mark('b'); }
static void a_offline(struct broker *b, struct session *s) { mark('A'); }
static void b_offline(struct broker *b, struct session *s) { mark('B'); }
static const char *a_reserved(const uint8_t *t, size_t n) { return n >= 2 && memcmp(t, "a/", 2) == 0 ? "a/" : NULL; }
static const char *b_reserved(const uint8_t *t, size_t n) { return n >= 1 && t[0] == 'a' ? "a*" : NULL; }
static int a_publish(struct broker *b, struct mqtt_conn *mc, const struct mqtt_publish *p, const uint8_t *t, size_t n)
{
    mark('p');
    return n == 4 && memcmp(t, "a/in", 4) == 0 ? 7 : BROKER_EXT_PASS;
}
static int b_publish(struct broker *b, struct mqtt_conn *mc, const struct mqtt_publish *p, const uint8_t *t, size_t n)
{
    mark('q');
    return n == 4 && memcmp(t, "b/in", 4) == 0 ? 0 : BROKER_EXT_PASS;
}
static bool b_claim(const struct session *s, const uint8_t *f, size_t n) { return n == 5 && memcmp(f, "b/box", 5) == 0; }
static void a_ack(struct broker *b, struct session *s, const struct msg *m) { mark('1'); }
static void b_ack(struct broker *b, struct session *s, const struct msg *m) { mark('2'); }

static const struct broker_ext ext_a = { .name = "a", .session_online = a_online, .session_offline = a_offline,
                                         .reserved = a_reserved, .on_publish = a_publish, .on_ack = a_ack };
static const struct broker_ext ext_b = { .name = "b", .session_online = b_online, .session_offline = b_offline,
                                         .reserved = b_reserved, .on_publish = b_publish, .sub_claim = b_claim,
                                         .on_ack = b_ack };
static const struct broker_ext ext_empty = { .name = "empty" };

TEST(registration_is_bounded_and_ordered)
{
    broker_ext_reset();
    CHECK_EQ(broker_ext_count(), 0);
    CHECK_EQ(broker_ext_register(&ext_a), 0);
    CHECK_EQ(broker_ext_register(&ext_b), 1);
    for (int i = 2; i < BROKER_EXT_MAX; i++) CHECK_EQ(broker_ext_register(&ext_empty), i);
    CHECK_EQ(broker_ext_register(&ext_empty), -1); /* full */
    CHECK_EQ(broker_ext_count(), BROKER_EXT_MAX);
    broker_ext_reset();
    CHECK_EQ(broker_ext_count(), 0);
}

TEST(hooks_run_in_order_and_missing_ones_are_skipped)
{
    broker_ext_reset();
    CHECK_EQ(broker_ext_register(&ext_a), 0);
    CHECK_EQ(broker_ext_register(&ext_empty), 1);
    CHECK_EQ(broker_ext_register(&ext_b), 2);
    reset_trace();
    broker_ext_session_online(NULL, NULL);
    broker_ext_session_offline(NULL, NULL);
    broker_ext_session_restored(NULL, NULL); /* nobody has one */
    CHECK(strcmp(trace, "abAB") == 0);
    broker_ext_reset();
}

TEST(first_extension_decides)
{
    broker_ext_reset();
    CHECK_EQ(broker_ext_register(&ext_a), 0);
    CHECK_EQ(broker_ext_register(&ext_b), 1);
    /* reserved: the first that reserves names it; none = NULL */
    const char *r = broker_ext_reserved((const uint8_t *)"a/x", 3);
    CHECK(r && strcmp(r, "a/") == 0);
    r = broker_ext_reserved((const uint8_t *)"ax", 2);
    CHECK(r && strcmp(r, "a*") == 0);
    CHECK(broker_ext_reserved((const uint8_t *)"t/x", 3) == NULL);
    /* on_publish: a takes a/in (b not asked), b takes b/in (after a passed), nobody takes t/x */
    reset_trace();
    CHECK_EQ(broker_ext_publish(NULL, NULL, NULL, (const uint8_t *)"a/in", 4), 7);
    CHECK(strcmp(trace, "p") == 0);
    reset_trace();
    CHECK_EQ(broker_ext_publish(NULL, NULL, NULL, (const uint8_t *)"b/in", 4), 0);
    CHECK(strcmp(trace, "pq") == 0);
    CHECK_EQ(broker_ext_publish(NULL, NULL, NULL, (const uint8_t *)"t/xx", 4), BROKER_EXT_PASS);
    /* sub_claim: the claiming extension's id + 1; 0 = an ordinary filter */
    CHECK_EQ(broker_ext_sub_claim(NULL, (const uint8_t *)"b/box", 5), 2);
    CHECK_EQ(broker_ext_sub_claim(NULL, (const uint8_t *)"a/box", 5), 0);
    broker_ext_reset();
}

TEST(message_tag_finds_its_extension)
{
    broker_ext_reset();
    CHECK_EQ(broker_ext_register(&ext_a), 0);
    CHECK_EQ(broker_ext_register(&ext_b), 1);
    struct msg *m = msg_new_raw(1, (const uint8_t *)"t", 1, NULL, 0, (const uint8_t *)"x", 1, 1, false, 0, 0);
    CHECK_EQ(m->ext, 0); /* a plain MQTT message */
    CHECK_EQ(m->ext_data[0], 0);
    CHECK_EQ(m->ext_data[1], 0);
    reset_trace();
    m->ext = 2;
    broker_ext_ack(NULL, NULL, m);
    m->ext = 1;
    broker_ext_ack(NULL, NULL, m);
    CHECK(strcmp(trace, "21") == 0);
    msg_unref(m);
    broker_ext_reset();
}

int main(void)
{
    RUN(registration_is_bounded_and_ordered);
    RUN(hooks_run_in_order_and_missing_ones_are_skipped);
    RUN(first_extension_decides);
    RUN(message_tag_finds_its_extension);
    TEST_MAIN_END();
}
