/* ext.c - the broker's extension table (ext.h): registration and the dispatch loops. */
#include "gateway/mqtt/ext.h"

const struct broker_ext *broker_exts[BROKER_EXT_MAX];
int broker_nexts;

int broker_ext_register(const struct broker_ext *e)
{
    if (broker_nexts >= BROKER_EXT_MAX) return -1;
    broker_exts[broker_nexts] = e;
    return broker_nexts++;
}

int broker_ext_count(void) { return broker_nexts; }

void broker_ext_reset(void)
{
    for (int i = 0; i < BROKER_EXT_MAX; i++) broker_exts[i] = NULL;
    broker_nexts = 0;
}

#define EACH(hook, ...)                                                                                               \
    for (int i_ = 0; i_ < broker_nexts; i_++)                                                                         \
        if (broker_exts[i_]->hook) broker_exts[i_]->hook(__VA_ARGS__)

void broker_ext_session_login(struct broker *b, struct session *s, const struct broker_login *l)
{
    EACH(session_login, b, s, l);
}
void broker_ext_session_online(struct broker *b, struct session *s) { EACH(session_online, b, s); }
void broker_ext_session_offline(struct broker *b, struct session *s) { EACH(session_offline, b, s); }
void broker_ext_session_restored(struct broker *b, struct session *s) { EACH(session_restored, b, s); }
void broker_ext_session_free(struct broker *b, struct session *s) { EACH(session_free, b, s); }
void broker_ext_conn_gone(struct mqtt_conn *mc) { EACH(conn_gone, mc); }

const char *broker_ext_reserved(const uint8_t *t, size_t len)
{
    for (int i = 0; i < broker_nexts; i++) {
        const char *r = broker_exts[i]->reserved ? broker_exts[i]->reserved(t, len) : NULL;
        if (r) return r;
    }
    return NULL;
}

int broker_ext_publish(struct broker *b, struct mqtt_conn *mc, const struct mqtt_publish *pub, const uint8_t *topic,
                       size_t topic_len)
{
    for (int i = 0; i < broker_nexts; i++) {
        if (!broker_exts[i]->on_publish) continue;
        int r = broker_exts[i]->on_publish(b, mc, pub, topic, topic_len);
        if (r != BROKER_EXT_PASS) return r;
    }
    return BROKER_EXT_PASS;
}

int broker_ext_sub_claim(const struct session *s, const uint8_t *f, size_t len)
{
    for (int i = 0; i < broker_nexts; i++)
        if (broker_exts[i]->sub_claim && broker_exts[i]->sub_claim(s, f, len)) return i + 1;
    return 0;
}
