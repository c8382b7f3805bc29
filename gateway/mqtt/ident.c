/* ident.c - session owner identities (see ident.h). */
#include "gateway/mqtt/ident.h"
#include "core/common.h"

#include <stdlib.h>
#include <string.h>

bool sess_ident_eq(const struct sess_ident *a, const struct sess_ident *b)
{
    if (a->kind == SESS_ID_NONE || b->kind == SESS_ID_NONE) return false;
    return a->kind == b->kind && a->app == b->app && a->incarnation == b->incarnation && a->name_len == b->name_len &&
           (a->name_len == 0 || memcmp(a->name, b->name, a->name_len) == 0);
}

void sess_ident_set(struct sess_ident *d, uint8_t kind, uint32_t app, const char *name, size_t name_len,
                    uint64_t incarnation)
{
    AU_ASSERT(name_len <= UINT16_MAX);
    free(d->name);
    d->kind = kind;
    d->app = app;
    d->incarnation = incarnation;
    d->name_len = (uint16_t)name_len;
    d->name = NULL;
    if (kind == SESS_ID_PLAIN || kind == SESS_ID_USER) {
        d->name = malloc(name_len + 1);
        AU_ASSERT(d->name != NULL);
        if (name_len) memcpy(d->name, name, name_len);
        d->name[name_len] = 0;
    } else {
        d->name_len = 0;
    }
}

void sess_ident_move(struct sess_ident *d, struct sess_ident *src)
{
    free(d->name);
    *d = *src;
    memset(src, 0, sizeof *src);
}

void sess_ident_free(struct sess_ident *id)
{
    free(id->name);
    id->name = NULL;
    id->name_len = 0;
}

const char *sess_ident_kind_name(uint8_t kind)
{
    switch (kind) {
    case SESS_ID_ANON: return "anonymous";
    case SESS_ID_PLAIN: return "plain username";
    case SESS_ID_PUSH: return "push-only device (no token)";
    case SESS_ID_DEVICE: return "push-only device (device token)";
    case SESS_ID_USER: return "IM user";
    default: return "unknown";
    }
}
