/* auth.c - password hashes (PBKDF2-HMAC-SHA256), app credentials, login tokens (HMAC-SHA256),
 * username / password syntax. See auth.h for the formats and docs/auth.md for the reasoning. */
#include "gateway/im/auth.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PW_SCHEME      "pbkdf2-sha256$"
#define PW_SCHEME_LEN  (sizeof PW_SCHEME - 1)
#define SEC_SCHEME     "sha256$"
#define SEC_SCHEME_LEN (sizeof SEC_SCHEME - 1)
#define SALT_B64       22 /* auth_b64_len(AUTH_SALT_LEN) */
#define HASH_B64       43 /* auth_b64_len(AUTH_HASH_LEN) */
#define ITER_DIGITS_MAX 8 /* "10000000" */

_Static_assert(SALT_B64 == (AUTH_SALT_LEN / 3 * 4 + (AUTH_SALT_LEN % 3 ? AUTH_SALT_LEN % 3 + 1 : 0)), "salt b64");
_Static_assert(HASH_B64 == (AUTH_HASH_LEN / 3 * 4 + (AUTH_HASH_LEN % 3 ? AUTH_HASH_LEN % 3 + 1 : 0)), "hash b64");
_Static_assert(PW_SCHEME_LEN + ITER_DIGITS_MAX + 1 + SALT_B64 + 1 + HASH_B64 + 1 <= AUTH_HASH_STR_MAX,
               "password hash string fits");
_Static_assert(SEC_SCHEME_LEN + SALT_B64 + 1 + HASH_B64 + 1 <= AUTH_SECRET_HASH_STR_MAX, "secret hash string fits");
_Static_assert(AUTH_PBKDF2_ITER >= AUTH_PBKDF2_ITER_MIN && AUTH_PBKDF2_ITER <= AUTH_PBKDF2_ITER_MAX, "iterations");
_Static_assert(AUTH_PBKDF2_ITER_MAX < 100000000u, "iteration count fits ITER_DIGITS_MAX digits");
_Static_assert(AUTH_TOKEN_PREFIX_LEN + (AUTH_TOKEN_PAYLOAD_MAX + 2) / 3 * 4 + 1 + HASH_B64 + 1 <= AUTH_TOKEN_MAX,
               "longest token fits");
_Static_assert(AUTH_TOKEN_APP_MAX <= 255 && AUTH_USERNAME_MAX <= 255, "one length byte each in the token payload");

/* ------------------------------------------------------------------ base64 */

static const char B64_STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64_URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t auth_b64_enc(const uint8_t *in, size_t n, char *out, bool url)
{
    const char *a = url ? B64_URL : B64_STD;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        out[o++] = a[(v >> 6) & 63];
        out[o++] = a[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        out[o++] = a[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

/* value + 1 of each symbol (0 = not a symbol of that alphabet): standard "+/", URL-safe "-_". */
#define B64_COMMON                                                                                              \
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8, ['I'] = 9, ['J'] = 10, \
    ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18, ['S'] = 19,   \
    ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28,   \
    ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37,   \
    ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46,   \
    ['u'] = 47, ['v'] = 48, ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55,   \
    ['3'] = 56, ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62
static const uint8_t B64_DEC_STD[256] = { B64_COMMON, ['+'] = 63, ['/'] = 64 };
static const uint8_t B64_DEC_URL[256] = { B64_COMMON, ['-'] = 63, ['_'] = 64 };

/* Four symbols at a time (the REST path decodes a 68-symbol Authorization header on every request). */
int auth_b64_dec(const char *in, size_t n, uint8_t *out, size_t cap, bool url)
{
    if (n % 4 == 1) return -1;
    size_t olen = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    if (olen > cap) return -1;
    const uint8_t *t = url ? B64_DEC_URL : B64_DEC_STD;
    const unsigned char *p = (const unsigned char *)in;
    size_t i = 0, o = 0;
    for (; i + 4 <= n; i += 4) {
        unsigned a = t[p[i]], b = t[p[i + 1]], c = t[p[i + 2]], d = t[p[i + 3]];
        if (!a || !b || !c || !d) return -1;
        uint32_t v = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6 | (d - 1);
        out[o] = (uint8_t)(v >> 16);
        out[o + 1] = (uint8_t)(v >> 8);
        out[o + 2] = (uint8_t)v;
        o += 3;
    }
    size_t r = n - i; /* 0, 2 or 3 symbols left: 1 or 2 bytes, the unused low bits must be zero */
    if (r) {
        unsigned a = t[p[i]], b = t[p[i + 1]], c = r == 3 ? t[p[i + 2]] : 1;
        if (!a || !b || !c) return -1;
        uint32_t v = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6;
        if (v & (r == 2 ? 0xffffu : 0xffu)) return -1; /* non-canonical: unused trailing bits set */
        out[o++] = (uint8_t)(v >> 16);
        if (r == 3) out[o++] = (uint8_t)(v >> 8);
    }
    AU_ASSERT(o == olen);
    return (int)o;
}

/* ------------------------------------------------------------------ syntax */

static bool is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool auth_username_ok(const char *u, size_t len)
{
    if (!u || len < AUTH_USERNAME_MIN || len > AUTH_USERNAME_MAX) return false;
    if (!is_alnum((unsigned char)u[0])) return false;
    for (size_t i = 1; i < len; i++) {
        unsigned char c = (unsigned char)u[i];
        if (!is_alnum(c) && c != '_' && c != '.' && c != '-' && c != '@') return false;
    }
    return true;
}

bool auth_password_ok(const void *pw, size_t len)
{
    /* NUL is refused: HMAC zero-pads its key, so PBKDF2 would equate "pass" and "pass\0". */
    return pw && len >= AUTH_PASSWORD_MIN && len <= AUTH_PASSWORD_MAX && !memchr(pw, 0, len);
}

/* ------------------------------------------------------------------ passwords */

static int pbkdf2(const void *pw, size_t len, const uint8_t *salt, uint32_t iter, uint8_t out[AUTH_HASH_LEN])
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "PBKDF2", NULL);
    if (!kdf) return -1;
    EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
    EVP_KDF_free(kdf);
    if (!ctx) return -1;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)(uintptr_t)pw, len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)(uintptr_t)salt, AUTH_SALT_LEN),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_ITER, &iter),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    int r = EVP_KDF_derive(ctx, out, AUTH_HASH_LEN, params) == 1 ? 0 : -1;
    EVP_KDF_CTX_free(ctx);
    return r;
}

/* Parsed stored password string. */
struct pw_parsed {
    uint32_t iter;
    uint8_t salt[AUTH_SALT_LEN];
    uint8_t hash[AUTH_HASH_LEN];
};

/* Strict: exact scheme, decimal iterations without leading zero within bounds, canonical b64 of
 * exactly 16 + 32 bytes, nothing after. */
static bool pw_parse(const char *s, size_t n, struct pw_parsed *p)
{
    if (!s || n < PW_SCHEME_LEN || n >= AUTH_HASH_STR_MAX || memcmp(s, PW_SCHEME, PW_SCHEME_LEN) != 0) return false;
    size_t i = PW_SCHEME_LEN, d0 = i;
    uint64_t it = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9' && i - d0 < ITER_DIGITS_MAX) it = it * 10 + (uint64_t)(s[i++] - '0');
    if (i == d0 || s[d0] == '0' || i >= n || s[i] != '$') return false;
    if (it < AUTH_PBKDF2_ITER_MIN || it > AUTH_PBKDF2_ITER_MAX) return false;
    i++;
    if (n - i != SALT_B64 + 1 + HASH_B64 || s[i + SALT_B64] != '$') return false;
    if (auth_b64_dec(s + i, SALT_B64, p->salt, sizeof p->salt, false) != AUTH_SALT_LEN) return false;
    if (auth_b64_dec(s + i + SALT_B64 + 1, HASH_B64, p->hash, sizeof p->hash, false) != AUTH_HASH_LEN) return false;
    p->iter = (uint32_t)it;
    return true;
}

int auth_password_hash_iter(const void *pw, size_t len, uint32_t iter, char *out)
{
    if (!auth_password_ok(pw, len) || iter < AUTH_PBKDF2_ITER_MIN || iter > AUTH_PBKDF2_ITER_MAX) return -1;
    uint8_t salt[AUTH_SALT_LEN], hash[AUTH_HASH_LEN];
    if (RAND_bytes(salt, sizeof salt) != 1) return -1;
    if (pbkdf2(pw, len, salt, iter, hash) != 0) return -1;
    int n = snprintf(out, AUTH_HASH_STR_MAX, PW_SCHEME "%u$", iter);
    AU_ASSERT(n > 0 && (size_t)n < AUTH_HASH_STR_MAX);
    size_t o = (size_t)n;
    o += auth_b64_enc(salt, sizeof salt, out + o, false);
    out[o++] = '$';
    o += auth_b64_enc(hash, sizeof hash, out + o, false);
    AU_ASSERT(o < AUTH_HASH_STR_MAX);
    OPENSSL_cleanse(hash, sizeof hash);
    return (int)o;
}

int auth_password_hash(const void *pw, size_t len, char *out)
{
    return auth_password_hash_iter(pw, len, AUTH_PBKDF2_ITER, out);
}

int auth_password_verify(const char *stored, size_t stored_len, const void *pw, size_t len)
{
    struct pw_parsed p;
    if (!pw_parse(stored, stored_len, &p)) return -1;
    if (!auth_password_ok(pw, len)) return 0;
    uint8_t h[AUTH_HASH_LEN];
    if (pbkdf2(pw, len, p.salt, p.iter, h) != 0) return 0;
    int ok = CRYPTO_memcmp(h, p.hash, sizeof h) == 0;
    OPENSSL_cleanse(h, sizeof h);
    return ok;
}

int auth_password_dummy(char *out)
{
    /* salt and hash all zero: matching it would need a PBKDF2 preimage of 32 zero bytes */
    int n = snprintf(out, AUTH_HASH_STR_MAX, PW_SCHEME "%u$%.*s$%.*s", AUTH_PBKDF2_ITER, SALT_B64,
                     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", HASH_B64,
                     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    AU_ASSERT(n > 0 && n < AUTH_HASH_STR_MAX);
    return n;
}

bool auth_password_stored_ok(const char *stored, size_t stored_len)
{
    struct pw_parsed p;
    return pw_parse(stored, stored_len, &p);
}

bool auth_password_needs_rehash(const char *stored, size_t stored_len)
{
    struct pw_parsed p;
    return pw_parse(stored, stored_len, &p) && p.iter < AUTH_PBKDF2_ITER;
}

/* ------------------------------------------------------------------ app credentials */

static const char KEY_ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
#define KEY_ALPHABET_N 62u
#define KEY_ACCEPT_BELOW (256u / KEY_ALPHABET_N * KEY_ALPHABET_N) /* 248: bytes >= are rejected */
_Static_assert(sizeof KEY_ALPHABET - 1 == KEY_ALPHABET_N, "alphabet");

int auth_gen_key(char *out)
{
    uint8_t rnd[64];
    size_t o = 0;
    while (o < AUTH_KEY_LEN) {
        if (RAND_bytes(rnd, sizeof rnd) != 1) return -1;
        for (size_t i = 0; i < sizeof rnd && o < AUTH_KEY_LEN; i++)
            if (rnd[i] < KEY_ACCEPT_BELOW) out[o++] = KEY_ALPHABET[rnd[i] % KEY_ALPHABET_N];
    }
    out[o] = '\0';
    OPENSSL_cleanse(rnd, sizeof rnd);
    return 0;
}

bool auth_key_ok(const char *s, size_t len)
{
    if (!s || len != AUTH_KEY_LEN) return false;
    for (size_t i = 0; i < len; i++)
        if (!is_alnum((unsigned char)s[i])) return false;
    return true;
}

/* SHA-256 fetched once from the default provider: EVP_sha256() in EVP_DigestInit_ex looks the algorithm up
 * under the provider store's lock on every call (~1 µs of a ~1.3 µs secret check here). The fetched object is
 * immutable and shared by every thread; it lives as long as the process. */
static EVP_MD *g_sha256;
static pthread_once_t g_sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void) { g_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL); }

static const EVP_MD *sha256_md(void)
{
    pthread_once(&g_sha256_once, sha256_fetch);
    return g_sha256 ? g_sha256 : EVP_sha256();
}

static int sha256_salted(const uint8_t *salt, const char *secret, size_t len, uint8_t out[AUTH_HASH_LEN])
{
    uint8_t in[AUTH_SALT_LEN + AUTH_KEY_LEN];
    if (len > AUTH_KEY_LEN) return -1;
    memcpy(in, salt, AUTH_SALT_LEN);
    memcpy(in + AUTH_SALT_LEN, secret, len);
    unsigned olen = 0;
    int ok = EVP_Digest(in, AUTH_SALT_LEN + len, out, &olen, sha256_md(), NULL) == 1 && olen == AUTH_HASH_LEN;
    OPENSSL_cleanse(in, sizeof in);
    return ok ? 0 : -1;
}

int auth_secret_hash(const char *secret, size_t len, char *out)
{
    if (!auth_key_ok(secret, len)) return -1;
    uint8_t salt[AUTH_SALT_LEN], h[AUTH_HASH_LEN];
    if (RAND_bytes(salt, sizeof salt) != 1 || sha256_salted(salt, secret, len, h) != 0) return -1;
    memcpy(out, SEC_SCHEME, SEC_SCHEME_LEN);
    size_t o = SEC_SCHEME_LEN;
    o += auth_b64_enc(salt, sizeof salt, out + o, false);
    out[o++] = '$';
    o += auth_b64_enc(h, sizeof h, out + o, false);
    AU_ASSERT(o < AUTH_SECRET_HASH_STR_MAX);
    return (int)o;
}

int auth_secret_parse(const char *stored, size_t stored_len, struct auth_secret *out)
{
    if (!stored || stored_len != SEC_SCHEME_LEN + SALT_B64 + 1 + HASH_B64 ||
        memcmp(stored, SEC_SCHEME, SEC_SCHEME_LEN) != 0 || stored[SEC_SCHEME_LEN + SALT_B64] != '$')
        return -1;
    if (auth_b64_dec(stored + SEC_SCHEME_LEN, SALT_B64, out->salt, sizeof out->salt, false) != AUTH_SALT_LEN ||
        auth_b64_dec(stored + SEC_SCHEME_LEN + SALT_B64 + 1, HASH_B64, out->hash, sizeof out->hash, false) !=
            AUTH_HASH_LEN)
        return -1;
    return 0;
}

int auth_secret_check(const struct auth_secret *sec, const char *secret, size_t len)
{
    uint8_t h[AUTH_HASH_LEN];
    if (!secret || len != AUTH_KEY_LEN) return 0; /* the length of a secret is public */
    if (sha256_salted(sec->salt, secret, len, h) != 0) return 0;
    return CRYPTO_memcmp(h, sec->hash, sizeof h) == 0;
}

int auth_secret_verify(const char *stored, size_t stored_len, const char *secret, size_t len)
{
    struct auth_secret sec;
    if (auth_secret_parse(stored, stored_len, &sec) != 0) return -1;
    return auth_secret_check(&sec, secret, len);
}

/* ------------------------------------------------------------------ token key file */

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int auth_token_key_random(struct auth_token_key *k)
{
    return RAND_priv_bytes(k->key, sizeof k->key) == 1 ? 0 : -1;
}

/* 1 = loaded, 0 = does not exist, -1 = error (err set). */
static int key_read(const char *path, struct auth_token_key *k, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) return 0;
        return fail(err, errlen, "%s: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return fail(err, errlen, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode) || st.st_size != AUTH_TOKEN_KEY_LEN) {
        close(fd);
        return fail(err, errlen, "%s: not a regular file of %d bytes", path, AUTH_TOKEN_KEY_LEN);
    }
    if (st.st_mode & 077) {
        close(fd);
        return fail(err, errlen, "%s: group/other may access it (mode %03o); chmod 600 it", path,
                    (unsigned)(st.st_mode & 0777));
    }
    ssize_t r = read(fd, k->key, sizeof k->key);
    int e = errno;
    close(fd);
    if (r != (ssize_t)sizeof k->key) return fail(err, errlen, "%s: short read: %s", path, r < 0 ? strerror(e) : "eof");
    return 1;
}

static int key_create(const char *dir, const char *path, char *err, size_t errlen)
{
    char tmp[AUTH_PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s/.%s.%ld.tmp", dir, AUTH_TOKEN_KEY_FILE, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp) return fail(err, errlen, "%s: path too long", dir);
    struct auth_token_key k;
    if (auth_token_key_random(&k) != 0) return fail(err, errlen, "RAND_priv_bytes failed");
    unlink(tmp); /* a leftover of a crashed start with our pid */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return fail(err, errlen, "%s: %s", tmp, strerror(errno));
    ssize_t w = write(fd, k.key, sizeof k.key);
    int e = errno;
    OPENSSL_cleanse(&k, sizeof k);
    if (w != (ssize_t)sizeof k.key || fsync(fd) != 0) {
        if (w == (ssize_t)sizeof k.key) e = errno;
        close(fd);
        unlink(tmp);
        return fail(err, errlen, "%s: write: %s", tmp, strerror(e));
    }
    close(fd);
    /* link() fails with EEXIST when another process won the race: then we read its key. */
    int lr = link(tmp, path);
    e = errno;
    unlink(tmp);
    if (lr != 0 && e != EEXIST) return fail(err, errlen, "%s: %s", path, strerror(e));
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return 0;
}

int auth_token_key_load(const char *data_dir, struct auth_token_key *k, char *err, size_t errlen)
{
    char path[AUTH_PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s", data_dir, AUTH_TOKEN_KEY_FILE);
    if (n < 0 || (size_t)n >= sizeof path) return fail(err, errlen, "%s: path too long", data_dir);
    int r = key_read(path, k, err, errlen);
    if (r != 0) return r > 0 ? 0 : -1;
    if (key_create(data_dir, path, err, errlen) != 0) return -1;
    r = key_read(path, k, err, errlen);
    if (r == 0) return fail(err, errlen, "%s: vanished after creation", path);
    return r > 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ tokens */

static int hmac256(const struct auth_token_key *k, const void *data, size_t len, uint8_t out[AUTH_HASH_LEN])
{
    size_t olen = 0;
    if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, k->key, sizeof k->key, data, len, out, AUTH_HASH_LEN, &olen))
        return -1;
    return olen == AUTH_HASH_LEN ? 0 : -1;
}

static void put64(uint8_t *p, uint64_t v)
{
    au_wr32(p, (uint32_t)(v >> 32));
    au_wr32(p + 4, (uint32_t)v);
}

static uint64_t get64(const uint8_t *p) { return (uint64_t)au_rd32(p) << 32 | au_rd32(p + 4); }

/* Payload: u8 app_len, app, u8 user_len, user, u64 uid, u64 iat, u64 exp, u32 gen (big-endian). */
static size_t payload_len(size_t app_len, size_t user_len) { return 1 + app_len + 1 + user_len + 8 + 8 + 8 + 4; }
/* The layout before incarnations (no uid): still recognised, so such a token is refused as revoked instead of
 * being tried as a password. */
static size_t payload_len_v0(size_t app_len, size_t user_len) { return 1 + app_len + 1 + user_len + 8 + 8 + 4; }

int auth_token_issue(const struct auth_token_key *k, const struct auth_token_claims *c, char *out, size_t outcap)
{
    if (!c->app || c->app_len == 0 || c->app_len > AUTH_TOKEN_APP_MAX || !auth_username_ok(c->user, c->user_len) ||
        c->exp <= c->iat)
        return -1;
    uint8_t pl[AUTH_TOKEN_PAYLOAD_MAX];
    size_t n = 0;
    pl[n++] = (uint8_t)c->app_len;
    memcpy(pl + n, c->app, c->app_len);
    n += c->app_len;
    pl[n++] = (uint8_t)c->user_len;
    memcpy(pl + n, c->user, c->user_len);
    n += c->user_len;
    put64(pl + n, c->uid);
    put64(pl + n + 8, c->iat);
    put64(pl + n + 16, c->exp);
    au_wr32(pl + n + 24, c->gen);
    n += 28;
    AU_ASSERT(n == payload_len(c->app_len, c->user_len) && n <= sizeof pl);
    size_t need = AUTH_TOKEN_PREFIX_LEN + auth_b64_len(n) + 1 + HASH_B64 + 1;
    if (outcap < need) return -1;
    memcpy(out, AUTH_TOKEN_PREFIX, AUTH_TOKEN_PREFIX_LEN);
    size_t o = AUTH_TOKEN_PREFIX_LEN;
    o += auth_b64_enc(pl, n, out + o, true);
    uint8_t mac[AUTH_HASH_LEN];
    if (hmac256(k, out, o, mac) != 0) return -1;
    out[o++] = '.';
    o += auth_b64_enc(mac, sizeof mac, out + o, true);
    AU_ASSERT(o + 1 == need);
    return (int)o;
}

bool auth_token_like(const void *pw, size_t len)
{
    return pw && len > AUTH_TOKEN_PREFIX_LEN && memcmp(pw, AUTH_TOKEN_PREFIX, AUTH_TOKEN_PREFIX_LEN) == 0;
}

int auth_token_verify(const struct auth_token_key *k, const char *tok, size_t len, const char *app, size_t app_len,
                      const char *user, size_t user_len, uint64_t cur_uid, uint32_t cur_gen, uint64_t now_s,
                      struct auth_token_claims *out)
{
    /* structure: au1.<payload>.<43-char tag> */
    if (!auth_token_like(tok, len) || len >= AUTH_TOKEN_MAX || len < AUTH_TOKEN_PREFIX_LEN + 1 + 1 + HASH_B64)
        return AUTH_TOKEN_NOT_TOKEN;
    size_t dot = len - HASH_B64 - 1;
    if (tok[dot] != '.') return AUTH_TOKEN_NOT_TOKEN;
    uint8_t pl[AUTH_TOKEN_PAYLOAD_MAX];
    int n = auth_b64_dec(tok + AUTH_TOKEN_PREFIX_LEN, dot - AUTH_TOKEN_PREFIX_LEN, pl, sizeof pl, true);
    if (n < 2) return AUTH_TOKEN_NOT_TOKEN;
    size_t al = pl[0];
    if (al == 0 || al > AUTH_TOKEN_APP_MAX || (size_t)n < 1 + al + 1) return AUTH_TOKEN_NOT_TOKEN;
    size_t ul = pl[1 + al];
    bool v0 = (size_t)n == payload_len_v0(al, ul);
    if (((size_t)n != payload_len(al, ul) && !v0) || !auth_username_ok((const char *)pl + 2 + al, ul))
        return AUTH_TOKEN_NOT_TOKEN;
    for (size_t i = dot + 1; i < len; i++)
        if (!B64_DEC_URL[(unsigned char)tok[i]]) return AUTH_TOKEN_NOT_TOKEN;

    /* MAC: recompute over "au1.<payload>" and compare the encoded tag as a whole, in constant time
     * (comparing the text also rejects non-canonical encodings of the right tag). */
    uint8_t mac[AUTH_HASH_LEN];
    char want[HASH_B64 + 1];
    if (hmac256(k, tok, dot, mac) != 0) return AUTH_TOKEN_BAD_MAC;
    auth_b64_enc(mac, sizeof mac, want, true);
    if (CRYPTO_memcmp(want, tok + dot + 1, HASH_B64) != 0) return AUTH_TOKEN_BAD_MAC;

    const uint8_t *t = pl + 2 + al + ul;
    uint64_t uid = 0;
    if (!v0) {
        uid = get64(t);
        t += 8;
    }
    uint64_t iat = get64(t), exp = get64(t + 8);
    uint32_t gen = au_rd32(t + 16);
    if (out)
        *out = (struct auth_token_claims){ .app_len = al, .user_len = ul, .uid = uid, .iat = iat, .exp = exp,
                                           .gen = gen };
    if (exp <= now_s || exp <= iat) return AUTH_TOKEN_EXPIRED;
    if (al != app_len || ul != user_len || memcmp(pl + 1, app, al) != 0 || memcmp(pl + 2 + al, user, ul) != 0)
        return AUTH_TOKEN_WRONG_USER;
    if (v0 || uid != cur_uid || gen != cur_gen) return AUTH_TOKEN_REVOKED;
    return AUTH_TOKEN_OK;
}

/* ------------------------------------------------------------------ device tokens */

/* app claim "dev:<appkey>", user claim hex(SHA-256(client id)) */
static int device_claims(const char *appkey, size_t appkey_len, const void *cid, size_t cid_len,
                         char app[AUTH_TOKEN_APP_MAX + 1], char user[2 * AUTH_HASH_LEN + 1])
{
    if (!auth_key_ok(appkey, appkey_len) || !cid || cid_len == 0) return -1;
    memcpy(app, AUTH_DEVICE_APP_PREFIX, AUTH_DEVICE_APP_PREFIX_LEN);
    memcpy(app + AUTH_DEVICE_APP_PREFIX_LEN, appkey, appkey_len);
    app[AUTH_DEVICE_APP_PREFIX_LEN + appkey_len] = 0;
    uint8_t h[AUTH_HASH_LEN];
    unsigned olen = 0;
    if (EVP_Digest(cid, cid_len, h, &olen, sha256_md(), NULL) != 1 || olen != AUTH_HASH_LEN) return -1;
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < AUTH_HASH_LEN; i++) {
        user[2 * i] = hex[h[i] >> 4];
        user[2 * i + 1] = hex[h[i] & 15];
    }
    user[2 * AUTH_HASH_LEN] = 0;
    return 0;
}

int auth_device_token_issue(const struct auth_token_key *k, const char *appkey, size_t appkey_len, const void *cid,
                            size_t cid_len, uint64_t iat, uint64_t exp, char *out, size_t outcap)
{
    char app[AUTH_TOKEN_APP_MAX + 1], user[2 * AUTH_HASH_LEN + 1];
    if (device_claims(appkey, appkey_len, cid, cid_len, app, user) != 0) return -1;
    struct auth_token_claims c = { .app = app, .app_len = strlen(app), .user = user, .user_len = 2 * AUTH_HASH_LEN,
                                   .iat = iat, .exp = exp, .gen = 0 };
    return auth_token_issue(k, &c, out, outcap);
}

int auth_device_token_verify(const struct auth_token_key *k, const char *tok, size_t len, const char *appkey,
                             size_t appkey_len, const void *cid, size_t cid_len, uint64_t now_s)
{
    char app[AUTH_TOKEN_APP_MAX + 1], user[2 * AUTH_HASH_LEN + 1];
    if (device_claims(appkey, appkey_len, cid, cid_len, app, user) != 0) return AUTH_TOKEN_WRONG_USER;
    return auth_token_verify(k, tok, len, app, strlen(app), user, 2 * AUTH_HASH_LEN, 0, 0, now_s, NULL);
}
