/* acl.c - topic ACL rules of struct au_config: parsing one rule and checking an action against the list.
 * A small local topic-filter matcher (independent of gateway/mqtt/topic.c) with %u / %c substitution. */
#include "core/config.h"
#include "core/common.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define SUBST_USER   1u
#define SUBST_CLIENT 2u

static int errf(char *errbuf, size_t errlen, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int errf(char *errbuf, size_t errlen, const char *where, const char *fmt, ...)
{
    if (errbuf && errlen) {
        int n = snprintf(errbuf, errlen, "%s: ", where);
        if (n >= 0 && (size_t)n < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(errbuf + n, errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return AU_CONFIG_ERR;
}

/* ---------------------------------------------------------------------------------------- levels */

/* Cursor over the '/'-separated levels of a topic or filter. */
struct lvl {
    const char *s;
    size_t len, pos; /* pos > len: no more levels */
    const char *p;   /* current level */
    size_t n;
};

static inline void lvl_init(struct lvl *l, const char *s, size_t len)
{
    l->s = s;
    l->len = len;
    l->pos = 0;
}

/* Advances to the next level; false at the end. */
static inline bool lvl_next(struct lvl *l)
{
    if (l->pos > l->len) return false;
    const char *start = l->s + l->pos;
    const char *slash = memchr(start, '/', l->len - l->pos);
    size_t n = slash ? (size_t)(slash - start) : l->len - l->pos;
    l->p = start;
    l->n = n;
    l->pos += n + 1;
    return true;
}

static inline bool is_hash(const struct lvl *l) { return l->n == 1 && l->p[0] == '#'; }
static inline bool is_plus(const struct lvl *l) { return l->n == 1 && l->p[0] == '+'; }

struct subst {
    const char *user, *client;
    size_t ulen, clen;
};

/* Compares a literal rule level (with %u / %c expanded) to a literal topic/filter level. */
static bool level_eq(const char *r, size_t rn, const char *t, size_t tn, unsigned subst, const struct subst *sv)
{
    if (!subst) return rn == tn && memcmp(r, t, rn) == 0;
    size_t i = 0, j = 0;
    while (i < rn) {
        if (r[i] == '%' && i + 1 < rn && (r[i + 1] == 'u' || r[i + 1] == 'c')) {
            const char *v = r[i + 1] == 'u' ? sv->user : sv->client;
            size_t vn = r[i + 1] == 'u' ? sv->ulen : sv->clen;
            if (tn - j < vn || memcmp(t + j, v, vn) != 0) return false;
            j += vn;
            i += 2;
            continue;
        }
        if (j >= tn || r[i] != t[j]) return false;
        i++;
        j++;
    }
    return j == tn;
}

/* Topics starting with '$' are not matched by a wildcard first level ([MQTT-4.7.2-1]). */
static bool dollar_mismatch(const char *r, size_t rn, const char *t, size_t tn)
{
    bool r_wild = rn >= 1 && (r[0] == '#' || r[0] == '+') && (rn == 1 || r[1] == '/');
    bool t_wild = tn >= 1 && (t[0] == '#' || t[0] == '+') && (tn == 1 || t[1] == '/');
    bool r_dollar = rn >= 1 && r[0] == '$';
    bool t_dollar = tn >= 1 && t[0] == '$';
    return (r_wild && t_dollar) || (t_wild && r_dollar);
}

/* Rule filter r matches topic name t. */
static bool match_topic(const char *r, size_t rn, const char *t, size_t tn, unsigned subst,
                        const struct subst *sv)
{
    if (dollar_mismatch(r, rn, t, tn)) return false;
    struct lvl a, b;
    lvl_init(&a, r, rn);
    lvl_init(&b, t, tn);
    for (;;) {
        bool ha = lvl_next(&a);
        if (ha && is_hash(&a)) return true; /* also matches the parent level */
        bool hb = lvl_next(&b);
        if (!ha || !hb) return ha == hb;
        if (is_plus(&a)) continue;
        if (!level_eq(a.p, a.n, b.p, b.n, subst, sv)) return false;
    }
}

/* Every topic matched by filter f is matched by rule filter r. */
static bool filter_covers(const char *r, size_t rn, const char *f, size_t fn, unsigned subst,
                          const struct subst *sv)
{
    if (dollar_mismatch(r, rn, f, fn)) return false;
    struct lvl a, b;
    lvl_init(&a, r, rn);
    lvl_init(&b, f, fn);
    for (;;) {
        bool ha = lvl_next(&a);
        if (ha && is_hash(&a)) return true;
        bool hb = lvl_next(&b);
        if (!ha || !hb) return ha == hb;
        if (is_hash(&b)) return false;
        if (is_plus(&a)) continue;
        if (is_plus(&b)) return false;
        if (!level_eq(a.p, a.n, b.p, b.n, subst, sv)) return false;
    }
}

/* Some topic is matched by both rule filter r and filter f. */
static bool filter_intersects(const char *r, size_t rn, const char *f, size_t fn, unsigned subst,
                              const struct subst *sv)
{
    if (dollar_mismatch(r, rn, f, fn)) return false;
    struct lvl a, b;
    lvl_init(&a, r, rn);
    lvl_init(&b, f, fn);
    for (;;) {
        bool ha = lvl_next(&a), hb = lvl_next(&b);
        if ((ha && is_hash(&a)) || (hb && is_hash(&b))) return true;
        if (!ha || !hb) return ha == hb;
        if (is_plus(&a) || is_plus(&b)) continue;
        if (!level_eq(a.p, a.n, b.p, b.n, subst, sv)) return false;
    }
}

/* A substitution value may not be empty or contain a level separator or wildcard. */
static bool subst_ok(const char *v, size_t n)
{
    if (!v || n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (v[i] == '/' || v[i] == '+' || v[i] == '#') return false;
    return true;
}

enum au_acl_result au_acl_check(const struct au_config *cfg, enum au_acl_action action, const char *username,
                                const char *client_id, const char *topic, size_t len)
{
    AU_ASSERT(action == AU_ACL_PUBLISH || action == AU_ACL_SUBSCRIBE);
    if (cfg->n_acl == 0) return AU_ACL_ALLOW;
    if (action == AU_ACL_SUBSCRIBE && len > 7 && memcmp(topic, "$share/", 7) == 0) {
        const char *slash = memchr(topic + 7, '/', len - 7);
        if (slash) { /* the rules apply to the filter inside $share/<group>/ */
            len -= (size_t)(slash + 1 - topic);
            topic = slash + 1;
        }
    }
    struct subst sv = { username, client_id, username ? strlen(username) : 0, client_id ? strlen(client_id) : 0 };
    bool user_ok = subst_ok(sv.user, sv.ulen), client_ok = subst_ok(sv.client, sv.clen);
    for (size_t i = 0; i < cfg->n_acl; i++) {
        const struct au_acl_rule *r = &cfg->acl[i];
        if (!(r->actions & action)) continue;
        if (r->who == AU_ACL_WHO_ANONYMOUS && username) continue;
        if (r->who == AU_ACL_WHO_USER &&
            (!username || sv.ulen != r->user_len || memcmp(username, r->user, sv.ulen) != 0)) continue;
        if (((r->subst & SUBST_USER) && !user_ok) || ((r->subst & SUBST_CLIENT) && !client_ok)) continue;
        bool m;
        if (action == AU_ACL_PUBLISH)
            m = match_topic(r->filter, r->filter_len, topic, len, r->subst, &sv);
        else if (r->allow)
            m = filter_covers(r->filter, r->filter_len, topic, len, r->subst, &sv);
        else
            m = filter_intersects(r->filter, r->filter_len, topic, len, r->subst, &sv);
        if (m) return r->allow ? AU_ACL_ALLOW : AU_ACL_DENY;
    }
    return AU_ACL_ALLOW;
}

/* ---------------------------------------------------------------------------------------- parsing */

static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

/* Copies the next whitespace-delimited word into w (size wn); returns the rest or NULL if too long/absent. */
static const char *word(const char *s, char *w, size_t wn)
{
    s = skip_ws(s);
    size_t n = 0;
    while (s[n] && s[n] != ' ' && s[n] != '\t') n++;
    if (n == 0 || n >= wn) return NULL;
    memcpy(w, s, n);
    w[n] = '\0';
    return s + n;
}

static int check_filter(const char *f, size_t n, const char **why)
{
    if (n == 0) { *why = "empty topic filter"; return -1; }
    if (n > AU_MQTT_MAX_TOPIC) { *why = "topic filter too long"; return -1; }
    struct lvl l;
    lvl_init(&l, f, n);
    while (lvl_next(&l)) {
        for (size_t i = 0; i < l.n; i++) {
            if ((l.p[i] == '#' || l.p[i] == '+') && l.n != 1) {
                *why = "a wildcard must be a whole level";
                return -1;
            }
            if ((unsigned char)l.p[i] < 0x20 || l.p[i] == 0x7f) {
                *why = "control character in topic filter";
                return -1;
            }
        }
        if (is_hash(&l) && l.pos <= l.len) { *why = "'#' must be the last level"; return -1; }
    }
    return 0;
}

int au_acl_add(struct au_config *cfg, const char *value, const char *where, char *errbuf, size_t errlen)
{
    char perm[16], act[16], user[AU_CONFIG_ACL_USER_MAX + 1];
    const char *s = word(value, perm, sizeof perm);
    if (!s) return errf(errbuf, errlen, where, "acl: expected 'allow' or 'deny' (acl allow|deny publish|subscribe|all <user|*|anonymous> <topic filter>)");
    struct au_acl_rule r = {0};
    if (strcmp(perm, "allow") == 0) r.allow = 1;
    else if (strcmp(perm, "deny") == 0) r.allow = 0;
    else return errf(errbuf, errlen, where, "acl: '%s' is not 'allow' or 'deny'", perm);
    s = word(s, act, sizeof act);
    if (!s) return errf(errbuf, errlen, where, "acl: expected publish, subscribe or all after '%s'", perm);
    if (strcmp(act, "publish") == 0) r.actions = AU_ACL_PUBLISH;
    else if (strcmp(act, "subscribe") == 0) r.actions = AU_ACL_SUBSCRIBE;
    else if (strcmp(act, "all") == 0) r.actions = AU_ACL_ALL;
    else return errf(errbuf, errlen, where, "acl: '%s' is not publish, subscribe or all", act);
    const char *u = skip_ws(s);
    s = word(s, user, sizeof user);
    if (!s) {
        if (*u) return errf(errbuf, errlen, where, "acl: user name longer than %d bytes", AU_CONFIG_ACL_USER_MAX);
        return errf(errbuf, errlen, where, "acl: expected a user name, '*' or 'anonymous'");
    }
    if (strcmp(user, "*") == 0) r.who = AU_ACL_WHO_ANY;
    else if (strcmp(user, "anonymous") == 0) r.who = AU_ACL_WHO_ANONYMOUS;
    else r.who = AU_ACL_WHO_USER;
    const char *f = skip_ws(s);
    size_t fn = strlen(f);
    while (fn && (f[fn - 1] == ' ' || f[fn - 1] == '\t')) fn--;
    if (fn == 0) return errf(errbuf, errlen, where, "acl: missing topic filter");
    const char *why;
    if (check_filter(f, fn, &why) != 0) return errf(errbuf, errlen, where, "acl: %s: '%.*s'", why, (int)AU_MIN(fn, 200), f);
    if (cfg->n_acl >= AU_CONFIG_MAX_ACL_RULES)
        return errf(errbuf, errlen, where, "acl: more than %d rules", AU_CONFIG_MAX_ACL_RULES);
    for (size_t i = 0; i + 1 < fn; i++) {
        if (f[i] == '%' && f[i + 1] == 'u') r.subst |= SUBST_USER;
        if (f[i] == '%' && f[i + 1] == 'c') r.subst |= SUBST_CLIENT;
    }
    if (cfg->n_acl == cfg->cap_acl) {
        size_t cap = cfg->cap_acl ? cfg->cap_acl * 2 : 16;
        struct au_acl_rule *a = realloc(cfg->acl, cap * sizeof *a);
        if (!a) return errf(errbuf, errlen, where, "acl: out of memory");
        cfg->acl = a;
        cfg->cap_acl = cap;
    }
    size_t un = r.who == AU_ACL_WHO_USER ? strlen(user) : 0;
    char *mem = malloc(un + 1 + fn + 1);
    if (!mem) return errf(errbuf, errlen, where, "acl: out of memory");
    memcpy(mem, user, un);
    mem[un] = '\0';
    memcpy(mem + un + 1, f, fn);
    mem[un + 1 + fn] = '\0';
    r.user = mem;
    r.user_len = (uint32_t)un;
    r.filter = mem + un + 1;
    r.filter_len = (uint32_t)fn;
    cfg->acl[cfg->n_acl++] = r;
    return AU_CONFIG_OK;
}

void au_acl_free(struct au_config *cfg)
{
    for (size_t i = 0; i < cfg->n_acl; i++) free(cfg->acl[i].user);
    free(cfg->acl);
    cfg->acl = NULL;
    cfg->n_acl = cfg->cap_acl = 0;
}
