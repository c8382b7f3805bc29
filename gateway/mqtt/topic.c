/* topic.c - topic / filter validation, single matching, level splitting and the name table used
 * by the subscription index (subindex.c) and the retained store (retained.c). */
#include "gateway/mqtt/topic_impl.h"

#include <stdlib.h>
#include <sys/random.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

/* ---- validation ---------------------------------------------------------------------------- */

bool topic_name_valid(const uint8_t *topic, size_t len)
{
    if (len == 0 || len > AU_MQTT_MAX_TOPIC)
        return false;
    unsigned levels = 1;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = topic[i];
        if (c == '+' || c == '#' || c == 0)
            return false;
        if (c == '/' && ++levels > AU_MQTT_MAX_TOPIC_LEVELS)
            return false;
    }
    return true;
}

bool topic_filter_valid(const uint8_t *filter, size_t len)
{
    if (len == 0 || len > AU_MQTT_MAX_TOPIC)
        return false;
    unsigned levels = 1;
    size_t start = 0;                       /* first byte of the current level */
    for (size_t i = 0; i < len; i++) {
        uint8_t c = filter[i];
        if (c == '/') {
            if (++levels > AU_MQTT_MAX_TOPIC_LEVELS)
                return false;
            start = i + 1;
        } else if (c == '+' || c == '#') {
            if (i != start)                             /* not at the start of its level */
                return false;
            if (i + 1 < len && filter[i + 1] != '/')    /* not alone in its level */
                return false;
            if (c == '#' && i + 1 != len)               /* '#' not the last level */
                return false;
        } else if (c == 0) {
            return false;
        }
    }
    return true;
}

#define SHARE_PREFIX     "$share"
#define SHARE_PREFIX_LEN (sizeof(SHARE_PREFIX) - 1)

bool topic_sub_parse(const uint8_t *s, size_t len, struct topic_sub *out)
{
    if (len == 0 || len > AU_MQTT_MAX_TOPIC)
        return false;
    bool shared = len >= SHARE_PREFIX_LEN && memcmp(s, SHARE_PREFIX, SHARE_PREFIX_LEN) == 0 &&
                  (len == SHARE_PREFIX_LEN || s[SHARE_PREFIX_LEN] == '/');
    if (!shared) {
        out->filter = s;
        out->filter_len = len;
        out->share = NULL;
        out->share_len = 0;
        return topic_filter_valid(s, len);
    }
    size_t name = SHARE_PREFIX_LEN + 1, i = name;     /* "$share/" then ShareName */
    for (; i < len && s[i] != '/'; i++)
        if (s[i] == '+' || s[i] == '#' || s[i] == 0)
            return false;
    if (i >= len || i == name)                        /* no filter, or empty ShareName */
        return false;
    out->share = s + name;
    out->share_len = i - name;
    out->filter = s + i + 1;
    out->filter_len = len - i - 1;
    return topic_filter_valid(out->filter, out->filter_len);
}

bool topic_matches(const uint8_t *filter, size_t flen, const uint8_t *topic, size_t tlen)
{
    if (flen == 0 || tlen == 0)
        return false;
    if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
        return false;
    size_t fi = 0, ti = 0;                  /* start of the current filter / topic level */
    for (;;) {
        const uint8_t *fs = memchr(filter + fi, '/', flen - fi);
        const uint8_t *ts = memchr(topic + ti, '/', tlen - ti);
        size_t fe = fs ? (size_t)(fs - filter) : flen;
        size_t te = ts ? (size_t)(ts - topic) : tlen;
        size_t fl = fe - fi;
        if (fl == 1 && filter[fi] == '#')
            return true;                    /* '#' matches this level and everything below */
        if (!(fl == 1 && filter[fi] == '+') &&
            (fl != te - ti || memcmp(filter + fi, topic + ti, fl) != 0))
            return false;
        bool flast = fe == flen, tlast = te == tlen;
        if (flast || tlast) {
            if (flast)
                return tlast;
            /* topic exhausted: only a trailing "/#" still matches (the parent-level rule) */
            return flen - fe == 2 && filter[fe + 1] == '#';
        }
        fi = fe + 1;
        ti = te + 1;
    }
}

/* ---- levels and hashing -------------------------------------------------------------------- */

uint64_t topic_seed(void)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s)
        s = au_now_us() ^ ((uint64_t)(uintptr_t)&s << 16);
    return s;
}

uint64_t topic_hash(uint64_t seed, const uint8_t *p, size_t len)
{
    return XXH3_64bits_withSeed(p, len, seed);
}

unsigned topic_split(const uint8_t *t, size_t len, uint64_t seed, bool hash,
                     struct topic_level lv[AU_MQTT_MAX_TOPIC_LEVELS])
{
    if (len == 0 || len > AU_MQTT_MAX_TOPIC)
        return 0;
    unsigned n = 0;
    size_t start = 0;
    for (;;) {
        const uint8_t *sep = memchr(t + start, '/', len - start);
        size_t end = sep ? (size_t)(sep - t) : len;
        if (n == AU_MQTT_MAX_TOPIC_LEVELS)
            return 0;
        lv[n].p = t + start;
        lv[n].len = (uint32_t)(end - start);
        lv[n].hash = hash ? topic_hash(seed, lv[n].p, lv[n].len) : 0;
        n++;
        if (!sep)
            return n;
        start = end + 1;
    }
}

/* ---- name table ---------------------------------------------------------------------------- */

#define NTAB_MIN_CAP 4u

struct topic_name *topic_ntab_find(const struct topic_ntab *t, uint64_t hash, const uint8_t *key,
                                   size_t len)
{
    if (t->n == 0)
        return NULL;
    uint32_t mask = t->cap - 1;
    for (uint32_t i = (uint32_t)hash & mask;; i = (i + 1) & mask) {
        struct topic_name *e = t->slot[i];
        if (!e)
            return NULL;
        if (e->hash == hash && e->len == len && memcmp(e->key, key, len) == 0)
            return e;
    }
}

static bool ntab_resize(struct topic_ntab *t, uint32_t cap)
{
    AU_ASSERT((cap & (cap - 1)) == 0 && cap > t->n);
    struct topic_name **s = calloc(cap, sizeof *s);
    if (!s)
        return false;
    uint32_t mask = cap - 1;
    for (uint32_t i = 0; i < t->cap; i++) {
        struct topic_name *e = t->slot[i];
        if (!e)
            continue;
        uint32_t j = (uint32_t)e->hash & mask;
        while (s[j])
            j = (j + 1) & mask;
        s[j] = e;
    }
    free(t->slot);
    t->slot = s;
    t->cap = cap;
    return true;
}

bool topic_ntab_insert(struct topic_ntab *t, struct topic_name *e)
{
    if ((uint64_t)(t->n + 1) * 4 > (uint64_t)t->cap * 3 &&
        !ntab_resize(t, t->cap ? t->cap * 2 : NTAB_MIN_CAP))
        return false;
    uint32_t mask = t->cap - 1, i = (uint32_t)e->hash & mask;
    while (t->slot[i])
        i = (i + 1) & mask;
    t->slot[i] = e;
    t->n++;
    return true;
}

void topic_ntab_remove(struct topic_ntab *t, struct topic_name *e)
{
    AU_ASSERT(t->n > 0);
    uint32_t mask = t->cap - 1, i = (uint32_t)e->hash & mask;
    while (t->slot[i] != e) {
        AU_ASSERT(t->slot[i] != NULL);
        i = (i + 1) & mask;
    }
    /* backward-shift deletion: pull later entries of the cluster into the hole when their home
     * slot is not cyclically within (hole, j] */
    for (uint32_t j = i;;) {
        j = (j + 1) & mask;
        if (!t->slot[j])
            break;
        uint32_t k = (uint32_t)t->slot[j]->hash & mask;
        if (j > i ? (k <= i || k > j) : (k <= i && k > j)) {
            t->slot[i] = t->slot[j];
            i = j;
        }
    }
    t->slot[i] = NULL;
    if (--t->n == 0)
        topic_ntab_free(t);
    else if (t->cap > 2 * NTAB_MIN_CAP && (uint64_t)t->n * 8 < t->cap)
        (void)ntab_resize(t, t->cap / 2);   /* on failure keep the larger table */
}

void topic_ntab_free(struct topic_ntab *t)
{
    free(t->slot);
    t->slot = NULL;
    t->cap = t->n = 0;
}
