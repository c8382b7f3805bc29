/* ident.h - who owns a session: the identity a CONNECT proved (or did not prove), compared whenever a
 * CONNECT names an existing session. Only the same identity resumes or takes over a session; any other
 * identity ends it and starts a fresh one (docs/protocol.md "Sessions and identities"). */
#ifndef AU_MQTT_IDENT_H
#define AU_MQTT_IDENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sess_ident_kind {
    SESS_ID_ANON = 0,            /* no username (allow_anonymous) */
    SESS_ID_PLAIN = 1,           /* a username that is no AppKey form, unverified (allow_anonymous) */
    SESS_ID_PUSH = 2,            /* "<appkey>" push-only device without a device token (allow_anonymous) */
    SESS_ID_DEVICE = 3,          /* "<appkey>" push-only device with a verified device token for its client id */
    SESS_ID_USER = 4,            /* "<appkey>:<user>" IM user, password or login token verified */
    SESS_ID_NONE = 255,          /* matches nothing (a stored record whose identity cannot be read) */
};

struct sess_ident {
    uint8_t kind;                /* enum sess_ident_kind */
    uint32_t app;
    uint16_t name_len;
    char *name;                  /* PLAIN: the username; USER: the IM user name; NULL otherwise (malloc'd) */
    uint64_t incarnation;        /* USER: the user's never-reused id (0 until the directory has one) */
};

/* Same owner: kind, app, name and incarnation all equal (SESS_ID_NONE equals nothing). */
bool sess_ident_eq(const struct sess_ident *a, const struct sess_ident *b);
/* Set *d to kind/app/name/incarnation (name copied, NULL when name_len is 0 and the kind has none). */
void sess_ident_set(struct sess_ident *d, uint8_t kind, uint32_t app, const char *name, size_t name_len,
                    uint64_t incarnation);
void sess_ident_move(struct sess_ident *d, struct sess_ident *src); /* d takes src's name; src emptied */
void sess_ident_free(struct sess_ident *id);
const char *sess_ident_kind_name(uint8_t kind);

#endif
