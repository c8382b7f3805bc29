/* auth.h - IM authentication building blocks: password hashes, app credentials, login tokens,
 * username / password syntax. Pure functions over bytes (OpenSSL 3 EVP / KDF / MAC), no mutable
 * globals, safe to call from any thread. docs/auth.md describes the formats and the threat model.
 *
 * Stored formats (all ASCII, self-describing so costs and algorithms can change later):
 *   password hash  pbkdf2-sha256$<iter>$<salt b64>$<hash b64>     (16-byte salt, 32-byte hash)
 *   secret hash    sha256$<salt b64>$<hash b64>                   (16-byte salt, SHA-256(salt || secret))
 *   login token    au1.<payload b64url>.<HMAC-SHA256 b64url>      (payload: app, user, uid, iat, exp, gen)
 * "b64" is the standard alphabet without '=' padding, "b64url" the URL-safe one without padding;
 * decoders accept only the canonical encoding (unused trailing bits must be zero).
 *
 * Password hashing is slow on purpose (AUTH_PBKDF2_ITER): never call auth_password_hash/verify on
 * an event-loop thread; gateway/im/authpool.h runs them on worker threads. Everything else here
 * costs microseconds. */
#ifndef AU_IM_AUTH_H
#define AU_IM_AUTH_H

#include "core/common.h"

#include <stddef.h>
#include <stdint.h>

/* ---- limits (spec §1) ---- */
#define AUTH_USERNAME_MIN       4
#define AUTH_USERNAME_MAX       128
#define AUTH_PASSWORD_MIN       4
#define AUTH_PASSWORD_MAX       128

/* ---- password hashing ---- */
/* PBKDF2-HMAC-SHA256 iterations of new hashes: ~32 ms of CPU per hash on the 2-core dev host
 * (measured by tests/unit/test_auth.c, which prints it). Raise it here; stored hashes keep their
 * own count and auth_password_needs_rehash() tells when to re-hash one after a successful login. */
#define AUTH_PBKDF2_ITER        100000u
#define AUTH_PBKDF2_ITER_MIN    1000u       /* verify refuses weaker stored strings (tests use the minimum) */
#define AUTH_PBKDF2_ITER_MAX    10000000u   /* verify refuses dearer ones: bounds what one stored string costs */
#define AUTH_SALT_LEN           16          /* bytes of salt (RAND_bytes) */
#define AUTH_HASH_LEN           32          /* bytes of PBKDF2 output / SHA-256 */
#define AUTH_HASH_STR_MAX       128         /* a stored password-hash string, bytes incl. NUL */

/* ---- app credentials ---- */
#define AUTH_KEY_LEN            24          /* AppKey and Master Secret: [A-Za-z0-9], 62^24 ~ 2^142.9 */
#define AUTH_SECRET_HASH_STR_MAX 96         /* a stored secret-hash string, bytes incl. NUL */

/* ---- login tokens ---- */
#define AUTH_TOKEN_PREFIX       "au1."
#define AUTH_TOKEN_PREFIX_LEN   4
#define AUTH_TOKEN_KEY_LEN      32          /* HMAC key bytes (<data>/token.key, mode 0600) */
#define AUTH_TOKEN_KEY_FILE     "token.key"
#define AUTH_TOKEN_APP_MAX      64          /* app identifier bytes bound into a token */
/* decoded payload bytes */
#define AUTH_TOKEN_PAYLOAD_MAX  (1 + AUTH_TOKEN_APP_MAX + 1 + AUTH_USERNAME_MAX + 8 + 8 + 8 + 4)
#define AUTH_TOKEN_MAX          512         /* token bytes incl. NUL (longest: 4 + 296 + 1 + 43 + 1) */
#define AUTH_TOKEN_TTL_S        (30u * 86400u) /* default lifetime the gateway should issue (seconds) */
#define AUTH_PATH_MAX           1024        /* data-directory path + file name, bytes incl. NUL */

/* ---- syntax (spec §1) ---- */
/* username: 4..128 bytes, first an ASCII letter or digit, then letters, digits, '_', '.', '-', '@'. */
bool auth_username_ok(const char *u, size_t len);
/* password: 4..128 bytes, any bytes but NUL (HMAC zero-pads its key: "pass" and "pass\0" would be
 * the same PBKDF2 password). */
bool auth_password_ok(const void *pw, size_t len);

/* ---- passwords ----
 * hash: writes a NUL-terminated stored string into out (AUTH_HASH_STR_MAX bytes); returns its length
 * or -1 (password not auth_password_ok, RNG or KDF failure). _iter takes the iteration count
 * (AUTH_PBKDF2_ITER_MIN..AUTH_PBKDF2_ITER_MAX), for tests and cost migrations.
 * verify: 1 = matches, 0 = does not (or password not auth_password_ok), -1 = stored string malformed.
 * Constant time in the password and the hash (CRYPTO_memcmp). */
int auth_password_hash(const void *pw, size_t len, char *out);
int auth_password_hash_iter(const void *pw, size_t len, uint32_t iter, char *out);
int auth_password_verify(const char *stored, size_t stored_len, const void *pw, size_t len);
/* A well-formed stored string at today's cost that no password matches: verify against it when the
 * username does not exist, so the answer takes as long as for a real user. Returns its length. */
int auth_password_dummy(char *out);
/* true when `stored` parses (cheap: no hashing). */
bool auth_password_stored_ok(const char *stored, size_t stored_len);
/* true when `stored` is well-formed but weaker than today's AUTH_PBKDF2_ITER. */
bool auth_password_needs_rehash(const char *stored, size_t stored_len);

/* ---- app credentials ----
 * gen_key: AUTH_KEY_LEN chars of [A-Za-z0-9] from RAND_bytes by rejection sampling (unbiased),
 * NUL-terminated (out holds AUTH_KEY_LEN + 1). Returns 0 or -1 (RNG failure). Used for both the
 * AppKey and the Master Secret. */
int auth_gen_key(char *out);
/* true when s is exactly AUTH_KEY_LEN chars of [A-Za-z0-9]. */
bool auth_key_ok(const char *s, size_t len);
/* Salted SHA-256 of a master secret (a 143-bit random string needs no slow hash: nobody can
 * enumerate it). Writes a NUL-terminated string (AUTH_SECRET_HASH_STR_MAX); returns length or -1. */
int auth_secret_hash(const char *secret, size_t len, char *out);
/* 1 = matches, 0 = does not, -1 = stored string malformed. Constant time. Microseconds: fine on a shard. */
int auth_secret_verify(const char *stored, size_t stored_len, const char *secret, size_t len);
/* The same in two steps, for a caller that checks one app's secret on every request: parse the stored
 * string once (0, or -1 malformed), then check (1 = matches, 0 = does not; one SHA-256, ~0.3-0.5 µs). */
struct auth_secret {
    uint8_t salt[AUTH_SALT_LEN];
    uint8_t hash[AUTH_HASH_LEN];
};
int auth_secret_parse(const char *stored, size_t stored_len, struct auth_secret *out);
int auth_secret_check(const struct auth_secret *sec, const char *secret, size_t len);

/* ---- login tokens ---- */
struct auth_token_key {
    uint8_t key[AUTH_TOKEN_KEY_LEN];
};

/* Load <data_dir>/token.key, or create it (32 bytes from RAND_priv_bytes, mode 0600, written to a
 * temporary file, fsync'ed and linked into place so a concurrent starter never reads half a key).
 * Refuses a key file that is not a regular file of exactly 32 bytes or that group/others can
 * access. Returns 0, or -1 with a message in err. */
int auth_token_key_load(const char *data_dir, struct auth_token_key *k, char *err, size_t errlen);
/* A fresh random key in memory (tests, tools). 0 or -1. */
int auth_token_key_random(struct auth_token_key *k);

/* What a token binds. app: the AppKey (1..AUTH_TOKEN_APP_MAX bytes); user: a valid username; uid: the
 * user's incarnation id (never reused: a token of a deleted user never logs in a later user of the same
 * name); times in wall-clock seconds; gen: the user's token generation (bumped on password change and ban:
 * every older token stops verifying). */
struct auth_token_claims {
    const char *app;
    size_t app_len;
    const char *user;
    size_t user_len;
    uint64_t uid;
    uint64_t iat, exp;
    uint32_t gen;
};

/* Writes a NUL-terminated token into out (outcap bytes, AUTH_TOKEN_MAX is always enough); returns
 * its length or -1 (bad claims: empty/oversized app, invalid username, exp <= iat, outcap too small). */
int auth_token_issue(const struct auth_token_key *k, const struct auth_token_claims *c, char *out, size_t outcap);

enum auth_token_result {
    AUTH_TOKEN_OK         = 0,
    AUTH_TOKEN_NOT_TOKEN  = -1, /* no au1. prefix, or not a well-formed token: treat it as a password */
    AUTH_TOKEN_BAD_MAC    = -2, /* well-formed, but not issued with this key (or altered) */
    AUTH_TOKEN_EXPIRED    = -3,
    AUTH_TOKEN_WRONG_USER = -4, /* genuine, but for another app or user */
    AUTH_TOKEN_REVOKED    = -5, /* genuine, but the user's token generation moved on, or it is of another
                                 * incarnation of the user (deleted and registered again), or of the layout
                                 * before incarnations (no uid) */
};

/* Cheap test used to route a CONNECT password: true when it starts with "au1." (a password may
 * too: auth_token_verify answers AUTH_TOKEN_NOT_TOKEN for it, and the caller falls back to the
 * password path). */
bool auth_token_like(const void *pw, size_t len);

/* Verify a token for (app, user) whose current incarnation is cur_uid and generation cur_gen, at wall
 * time now_s. Checks, in order: structure, MAC (CRYPTO_memcmp over the whole encoded tag), expiry,
 * app/user, incarnation and generation. Every result but AUTH_TOKEN_OK means "refuse" (NOT_TOKEN: try it
 * as a password). A genuine token of the layout before incarnations (no uid) is AUTH_TOKEN_REVOKED.
 * out (optional) receives the decoded uid, times and generation (app/user pointers are set to NULL). */
int auth_token_verify(const struct auth_token_key *k, const char *tok, size_t len, const char *app, size_t app_len,
                      const char *user, size_t user_len, uint64_t cur_uid, uint32_t cur_gen, uint64_t now_s,
                      struct auth_token_claims *out);

/* ---- device tokens ----
 * A push-only device (CONNECT username "<appkey>") proves itself with a device token the app server got
 * from POST /v1/devices/token: a login token (same key, format and code as above) whose app claim is
 * AUTH_DEVICE_APP_PREFIX + AppKey and whose user claim is the lowercase hex SHA-256 of the device's client
 * id (any client id fits the username syntax that way), generation 0. A user's login token never verifies
 * as a device token, nor the other way round: their app claims differ. Results as auth_token_verify. */
#define AUTH_DEVICE_APP_PREFIX     "dev:"
#define AUTH_DEVICE_APP_PREFIX_LEN 4
#define AUTH_DEVICE_TOKEN_TTL_S    (30u * 86400u)  /* default lifetime of a device token (seconds) */
#define AUTH_DEVICE_TOKEN_TTL_MAX  (365u * 86400u) /* longest a caller may ask for */
_Static_assert(AUTH_DEVICE_APP_PREFIX_LEN + AUTH_KEY_LEN <= AUTH_TOKEN_APP_MAX, "device app claim fits");
int auth_device_token_issue(const struct auth_token_key *k, const char *appkey, size_t appkey_len, const void *cid,
                            size_t cid_len, uint64_t iat, uint64_t exp, char *out, size_t outcap);
int auth_device_token_verify(const struct auth_token_key *k, const char *tok, size_t len, const char *appkey,
                             size_t appkey_len, const void *cid, size_t cid_len, uint64_t now_s);

/* ---- base64 (exposed for tests and other modules) ----
 * url = false: standard alphabet; true: URL-safe. No padding. enc returns the output length and
 * NUL-terminates (out needs au_b64_len(n) + 1); dec returns the decoded length or -1 for anything
 * but the canonical unpadded encoding or when it does not fit in cap. */
static inline size_t auth_b64_len(size_t n) { return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0); }
size_t auth_b64_enc(const uint8_t *in, size_t n, char *out, bool url);
int auth_b64_dec(const char *in, size_t n, uint8_t *out, size_t cap, bool url);

#endif
