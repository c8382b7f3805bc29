/* test_auth.c - gateway/im auth building blocks: password hashes, app credentials, login tokens,
 * the token key file, syntax checks, the auth worker pool driven by the real event loop (2 shards,
 * no listeners), and login throttling over time. */
#include "gateway/im/auth.h"
#include "gateway/im/authpool.h"
#include "gateway/im/throttle.h"
#include "core/loop.h"
#include "core/log.h"
#include "test.h"
#include <openssl/evp.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOW_ITER AUTH_PBKDF2_ITER_MIN /* cheap hashes for bulk tests */

static double now_ms_f(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------------------ base64 */

TEST(b64_roundtrip_and_strict)
{
    uint8_t in[64], out[64];
    char enc[100];
    for (size_t n = 0; n <= sizeof in; n++) {
        for (size_t i = 0; i < n; i++) in[i] = (uint8_t)(i * 37 + n);
        for (int url = 0; url < 2; url++) {
            size_t e = auth_b64_enc(in, n, enc, url);
            CHECK_EQ(e, auth_b64_len(n));
            CHECK_EQ(strlen(enc), e);
            CHECK_EQ(auth_b64_dec(enc, e, out, sizeof out, url), n);
            CHECK(memcmp(in, out, n) == 0);
        }
    }
    CHECK_EQ(auth_b64_dec("QQ", 2, out, sizeof out, false), 1);  /* "A" */
    CHECK_EQ(auth_b64_dec("QR", 2, out, sizeof out, false), -1); /* non-canonical trailing bits */
    CHECK_EQ(auth_b64_dec("QQ==", 4, out, sizeof out, false), -1); /* padding refused */
    CHECK_EQ(auth_b64_dec("Q", 1, out, sizeof out, false), -1);
    CHECK_EQ(auth_b64_dec("-_", 2, out, sizeof out, false), -1); /* url chars in std */
    CHECK_EQ(auth_b64_dec("+/", 2, out, sizeof out, true), -1);  /* std chars in url */
    CHECK_EQ(auth_b64_dec("QUJD", 4, out, 2, false), -1);        /* does not fit */
}

/* ------------------------------------------------------------------ passwords */

TEST(password_roundtrip)
{
    char h[AUTH_HASH_STR_MAX];
    int n = auth_password_hash_iter("correct horse", 13, LOW_ITER, h);
    CHECK(n > 0 && (size_t)n == strlen(h));
    CHECK(strncmp(h, "pbkdf2-sha256$1000$", 19) == 0);
    CHECK(auth_password_stored_ok(h, (size_t)n));
    CHECK_EQ(auth_password_verify(h, (size_t)n, "correct horse", 13), 1);
    CHECK_EQ(auth_password_verify(h, (size_t)n, "correct horsf", 13), 0);
    CHECK_EQ(auth_password_verify(h, (size_t)n, "correct hors", 12), 0);
    CHECK_EQ(auth_password_verify(h, (size_t)n, "correct horse!", 14), 0);
    CHECK_EQ(auth_password_verify(h, (size_t)n, "abc", 3), 0); /* too short to be anyone's password */
    CHECK(auth_password_needs_rehash(h, (size_t)n));
    /* any bytes but NUL: HMAC pads its key with zeros, so PBKDF2 would take "pass" and "pass\0"
     * for the same password; NUL is refused instead */
    const char bin[6] = { 'a', '\x01', 'b', (char)0xff, 'c', '\n' };
    n = auth_password_hash_iter(bin, sizeof bin, LOW_ITER, h);
    CHECK(n > 0);
    CHECK_EQ(auth_password_verify(h, (size_t)n, bin, sizeof bin), 1);
    CHECK_EQ(auth_password_verify(h, (size_t)n, bin, 5), 0);
    CHECK_EQ(auth_password_hash_iter("abcd\0", 5, LOW_ITER, h), -1);
    n = auth_password_hash_iter("abcd", 4, LOW_ITER, h);
    CHECK_EQ(auth_password_verify(h, (size_t)n, "abcd", 4), 1);
    CHECK_EQ(auth_password_verify(h, (size_t)n, "abcd\0", 5), 0);
    /* bad lengths and iteration counts refused by hash */
    CHECK_EQ(auth_password_hash_iter("abc", 3, LOW_ITER, h), -1);
    char big[AUTH_PASSWORD_MAX + 1];
    memset(big, 'x', sizeof big);
    CHECK_EQ(auth_password_hash_iter(big, sizeof big, LOW_ITER, h), -1);
    CHECK(auth_password_hash_iter(big, AUTH_PASSWORD_MAX, LOW_ITER, h) > 0);
    CHECK_EQ(auth_password_verify(h, strlen(h), big, AUTH_PASSWORD_MAX), 1);
    CHECK_EQ(auth_password_hash_iter("abcd", 4, LOW_ITER - 1, h), -1);
    CHECK_EQ(auth_password_hash_iter("abcd", 4, AUTH_PBKDF2_ITER_MAX + 1, h), -1);
}

TEST(password_malformed)
{
    char good[AUTH_HASH_STR_MAX];
    int n = auth_password_hash_iter("password1", 9, LOW_ITER, good);
    CHECK(n > 0);
    const char *salt = strchr(good + 15, '$') + 1; /* after the iterations */
    char b[256];
    const char *bad[] = {
        "",
        "pbkdf2-sha256$",
        "pbkdf2-sha256$1000$",
        "pbkdf2-sha1$1000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "pbkdf2-sha256$01000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",   /* leading zero */
        "pbkdf2-sha256$999$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",     /* too weak */
        "pbkdf2-sha256$10000001$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", /* too dear */
        "pbkdf2-sha256$123456789$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "pbkdf2-sha256$-1000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",     /* short salt */
        "pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",     /* short hash */
        "pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",   /* long hash */
        "pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAB$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",    /* non-canonical */
        "pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",    /* padding */
        "pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-",    /* url char */
        "pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA$",
        "PBKDF2-SHA256$1000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "sha256$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    };
    for (size_t i = 0; i < AU_ARRAY_LEN(bad); i++) {
        if (auth_password_verify(bad[i], strlen(bad[i]), "password1", 9) != -1) printf("  accepted bad[%zu]\n", i);
        CHECK_EQ(auth_password_verify(bad[i], strlen(bad[i]), "password1", 9), -1);
        CHECK(!auth_password_stored_ok(bad[i], strlen(bad[i])));
        CHECK(!auth_password_needs_rehash(bad[i], strlen(bad[i])));
    }
    /* every truncation of a good string is malformed */
    for (int k = 0; k < n; k++) CHECK_EQ(auth_password_verify(good, (size_t)k, "password1", 9), -1);
    /* a NUL inside, or bytes after the end */
    memcpy(b, good, (size_t)n);
    b[n] = 'A';
    CHECK_EQ(auth_password_verify(b, (size_t)n + 1, "password1", 9), -1);
    b[n] = '\0';
    CHECK_EQ(auth_password_verify(b, (size_t)n + 1, "password1", 9), -1);
    /* the well-formed one verifies, and changing any byte of salt or hash breaks the match or the form */
    CHECK_EQ(auth_password_verify(good, (size_t)n, "password1", 9), 1);
    for (const char *p = salt; p < good + n; p++) {
        if (*p == '$') continue;
        memcpy(b, good, (size_t)n);
        b[p - good] = *p == 'A' ? 'B' : 'A';
        CHECK(auth_password_verify(b, (size_t)n, "password1", 9) != 1);
    }
    CHECK_EQ(auth_password_verify(NULL, 0, "password1", 9), -1);
}

TEST(password_salt_unique)
{
    enum { N = 40 };
    static char h[N][AUTH_HASH_STR_MAX];
    for (int i = 0; i < N; i++) CHECK(auth_password_hash_iter("same-password", 13, LOW_ITER, h[i]) > 0);
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++) {
            CHECK(strcmp(h[i], h[j]) != 0);
            CHECK(memcmp(h[i] + 19, h[j] + 19, 22) != 0); /* the salts themselves differ */
        }
    for (int i = 0; i < N; i++) CHECK_EQ(auth_password_verify(h[i], strlen(h[i]), "same-password", 13), 1);
}

TEST(password_cost_measured)
{
    char h[AUTH_HASH_STR_MAX];
    double best_cpu = 1e9, best_wall = 1e9;
    int n = 0;
    for (int i = 0; i < 3; i++) {
        double w0 = now_ms_f(CLOCK_MONOTONIC), c0 = now_ms_f(CLOCK_THREAD_CPUTIME_ID);
        n = auth_password_hash("measure-me", 10, h);
        double c1 = now_ms_f(CLOCK_THREAD_CPUTIME_ID), w1 = now_ms_f(CLOCK_MONOTONIC);
        CHECK(n > 0);
        if (c1 - c0 < best_cpu) best_cpu = c1 - c0;
        if (w1 - w0 < best_wall) best_wall = w1 - w0;
    }
    double v0 = now_ms_f(CLOCK_THREAD_CPUTIME_ID);
    CHECK_EQ(auth_password_verify(h, (size_t)n, "measure-me", 10), 1);
    double v1 = now_ms_f(CLOCK_THREAD_CPUTIME_ID);
    printf("  password hash (PBKDF2-SHA256, %u iterations): %.1f ms CPU, %.1f ms wall (best of 3); verify %.1f ms CPU\n",
           AUTH_PBKDF2_ITER, best_cpu, best_wall, v1 - v0);
    CHECK(!auth_password_needs_rehash(h, (size_t)n));
    CHECK(strncmp(h, "pbkdf2-sha256$100000$", 21) == 0 || AUTH_PBKDF2_ITER != 100000);
    /* the dummy for unknown usernames: well-formed, full cost, matches nothing */
    char d[AUTH_HASH_STR_MAX];
    int dn = auth_password_dummy(d);
    CHECK(auth_password_stored_ok(d, (size_t)dn));
    CHECK(!auth_password_needs_rehash(d, (size_t)dn));
    double d0 = now_ms_f(CLOCK_THREAD_CPUTIME_ID);
    CHECK_EQ(auth_password_verify(d, (size_t)dn, "measure-me", 10), 0);
    double d1 = now_ms_f(CLOCK_THREAD_CPUTIME_ID);
    printf("  dummy verify (unknown user) %.1f ms CPU\n", d1 - d0);
}

/* ------------------------------------------------------------------ app credentials */

static bool in_alphabet(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

TEST(app_keys)
{
    enum { N = 2000 };
    static char k[N][AUTH_KEY_LEN + 1];
    static unsigned count[256];
    memset(count, 0, sizeof count);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(auth_gen_key(k[i]), 0);
        CHECK_EQ(strlen(k[i]), AUTH_KEY_LEN);
        CHECK(auth_key_ok(k[i], AUTH_KEY_LEN));
        for (int j = 0; j < AUTH_KEY_LEN; j++) {
            CHECK(in_alphabet(k[i][j]));
            count[(unsigned char)k[i][j]]++;
        }
    }
    /* unique (sort-free: compare against every earlier one; 2M memcmp) */
    int dup = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < i; j++) dup += memcmp(k[i], k[j], AUTH_KEY_LEN) == 0;
    CHECK_EQ(dup, 0);
    /* every symbol used, none far off its expected 48000/62 = 774 (sd ~ 27.6; bounds are > 6 sd) */
    unsigned lo = 1u << 30, hi = 0, used = 0;
    for (int c = 0; c < 256; c++) {
        if (!count[c]) continue;
        used++;
        if (count[c] < lo) lo = count[c];
        if (count[c] > hi) hi = count[c];
    }
    printf("  %d keys: %u symbols, per-symbol count %u..%u (expected 774)\n", N, used, lo, hi);
    CHECK_EQ(used, 62);
    CHECK(lo > 600 && hi < 950);
    CHECK(!auth_key_ok("abc", 3));
    CHECK(!auth_key_ok("ABCDEFGHIJKLMNOPQRSTUVW_", 24));
    CHECK(!auth_key_ok("ABCDEFGHIJKLMNOPQRSTUVWXY", 25));
}

TEST(secret_hash)
{
    char sec[AUTH_KEY_LEN + 1], h[AUTH_SECRET_HASH_STR_MAX], h2[AUTH_SECRET_HASH_STR_MAX];
    CHECK_EQ(auth_gen_key(sec), 0);
    int n = auth_secret_hash(sec, AUTH_KEY_LEN, h);
    CHECK(n > 0 && strncmp(h, "sha256$", 7) == 0 && (size_t)n == strlen(h));
    CHECK(auth_secret_hash(sec, AUTH_KEY_LEN, h2) == n && strcmp(h, h2) != 0); /* salted */
    CHECK_EQ(auth_secret_verify(h, (size_t)n, sec, AUTH_KEY_LEN), 1);
    CHECK_EQ(auth_secret_verify(h2, (size_t)n, sec, AUTH_KEY_LEN), 1);
    for (int i = 0; i < AUTH_KEY_LEN; i++) {
        char w[AUTH_KEY_LEN + 1];
        memcpy(w, sec, sizeof w);
        w[i] = w[i] == 'a' ? 'b' : 'a';
        CHECK_EQ(auth_secret_verify(h, (size_t)n, w, AUTH_KEY_LEN), 0);
    }
    CHECK_EQ(auth_secret_verify(h, (size_t)n, sec, AUTH_KEY_LEN - 1), 0);
    CHECK_EQ(auth_secret_verify(h, (size_t)n - 1, sec, AUTH_KEY_LEN), -1);
    CHECK_EQ(auth_secret_verify("sha256$x$y", 10, sec, AUTH_KEY_LEN), -1);
    CHECK_EQ(auth_secret_hash("short", 5, h2), -1);
    char b[AUTH_SECRET_HASH_STR_MAX];
    memcpy(b, h, (size_t)n + 1);
    b[6] = ':';
    CHECK_EQ(auth_secret_verify(b, (size_t)n, sec, AUTH_KEY_LEN), -1);
}

/* ------------------------------------------------------------------ tokens */

static const char APP[] = "4f7aef34fb361292c566a1cd";
static const uint64_t UID = 0x1234567890ull; /* the user's incarnation id bound into the tokens */

static int issue(const struct auth_token_key *k, const char *user, uint64_t iat, uint64_t exp, uint32_t gen,
                 char *out)
{
    struct auth_token_claims c = { .app = APP, .app_len = strlen(APP), .user = user, .user_len = strlen(user),
                                   .uid = UID, .iat = iat, .exp = exp, .gen = gen };
    return auth_token_issue(k, &c, out, AUTH_TOKEN_MAX);
}

static int verify(const struct auth_token_key *k, const char *tok, size_t len, const char *user, uint32_t gen,
                  uint64_t now)
{
    return auth_token_verify(k, tok, len, APP, strlen(APP), user, strlen(user), UID, gen, now, NULL);
}

TEST(device_token_bound_to_app_and_client_id)
{
    struct auth_token_key k;
    CHECK_EQ(auth_token_key_random(&k), 0);
    char t[AUTH_TOKEN_MAX];
    const uint64_t now = 1700000000;
    const char cid[] = "phone 42 \xc3\xa9/#+"; /* any client id, not a username */
    int n = auth_device_token_issue(&k, APP, 24, cid, strlen(cid), now, now + 60, t, sizeof t);
    CHECK(n > 0 && auth_token_like(t, (size_t)n));
    CHECK_EQ(auth_device_token_verify(&k, t, (size_t)n, APP, 24, cid, strlen(cid), now + 1), AUTH_TOKEN_OK);
    CHECK_EQ(auth_device_token_verify(&k, t, (size_t)n, APP, 24, cid, strlen(cid), now + 60), AUTH_TOKEN_EXPIRED);
    CHECK_EQ(auth_device_token_verify(&k, t, (size_t)n, APP, 24, "phone 43", 8, now + 1), AUTH_TOKEN_WRONG_USER);
    CHECK_EQ(auth_device_token_verify(&k, t, (size_t)n, "4f7aef34fb361292c566a1ce", 24, cid, strlen(cid), now + 1),
             AUTH_TOKEN_WRONG_USER);
    struct auth_token_key k2;
    CHECK_EQ(auth_token_key_random(&k2), 0);
    CHECK_EQ(auth_device_token_verify(&k2, t, (size_t)n, APP, 24, cid, strlen(cid), now + 1), AUTH_TOKEN_BAD_MAC);
    /* a user's login token is no device token, and a device token is no login token */
    char u[AUTH_TOKEN_MAX];
    int un = issue(&k, "phone42x", now, now + 60, 0, u);
    CHECK(un > 0);
    CHECK_EQ(auth_device_token_verify(&k, u, (size_t)un, APP, 24, "phone42x", 8, now + 1), AUTH_TOKEN_WRONG_USER);
    CHECK(verify(&k, t, (size_t)n, "phone42x", 0, now + 1) != AUTH_TOKEN_OK);
    /* bad arguments */
    CHECK_EQ(auth_device_token_issue(&k, APP, 24, "", 0, now, now + 60, t, sizeof t), -1);
    CHECK_EQ(auth_device_token_issue(&k, "short", 5, cid, strlen(cid), now, now + 60, t, sizeof t), -1);
    CHECK_EQ(auth_device_token_verify(&k, t, (size_t)n, APP, 24, "", 0, now + 1), AUTH_TOKEN_WRONG_USER);
}

TEST(token_issue_verify)
{
    struct auth_token_key k;
    CHECK_EQ(auth_token_key_random(&k), 0);
    char t[AUTH_TOKEN_MAX];
    const uint64_t now = 1700000000;
    int n = issue(&k, "alice", now, now + 3600, 7, t);
    CHECK(n > 0 && (size_t)n == strlen(t));
    CHECK(auth_token_like(t, (size_t)n));
    CHECK(strncmp(t, "au1.", 4) == 0);
    for (int i = 0; i < n; i++) CHECK(in_alphabet(t[i]) || t[i] == '.' || t[i] == '-' || t[i] == '_');
    struct auth_token_claims c;
    CHECK_EQ(auth_token_verify(&k, t, (size_t)n, APP, strlen(APP), "alice", 5, UID, 7, now + 10, &c), AUTH_TOKEN_OK);
    CHECK_EQ(c.uid, UID);
    CHECK_EQ(c.iat, now);
    CHECK_EQ(c.exp, now + 3600);
    CHECK_EQ(c.gen, 7);
    /* expiry: valid up to exp - 1, expired from exp on */
    CHECK_EQ(verify(&k, t, (size_t)n, "alice", 7, now + 3599), AUTH_TOKEN_OK);
    CHECK_EQ(verify(&k, t, (size_t)n, "alice", 7, now + 3600), AUTH_TOKEN_EXPIRED);
    CHECK_EQ(verify(&k, t, (size_t)n, "alice", 7, now + 86400 * 365), AUTH_TOKEN_EXPIRED);
    /* generation: a password change / ban bumps it, every older token is revoked */
    CHECK_EQ(verify(&k, t, (size_t)n, "alice", 8, now + 10), AUTH_TOKEN_REVOKED);
    CHECK_EQ(verify(&k, t, (size_t)n, "alice", 6, now + 10), AUTH_TOKEN_REVOKED);
    /* another incarnation of the same name (the user was deleted and registered again): revoked */
    CHECK_EQ(auth_token_verify(&k, t, (size_t)n, APP, strlen(APP), "alice", 5, UID + 1, 7, now + 10, NULL),
             AUTH_TOKEN_REVOKED);
    CHECK_EQ(auth_token_verify(&k, t, (size_t)n, APP, strlen(APP), "alice", 5, 0, 7, now + 10, NULL),
             AUTH_TOKEN_REVOKED);
    /* another user or app */
    CHECK_EQ(verify(&k, t, (size_t)n, "alicf", 7, now + 10), AUTH_TOKEN_WRONG_USER);
    CHECK_EQ(verify(&k, t, (size_t)n, "alice2", 7, now + 10), AUTH_TOKEN_WRONG_USER);
    CHECK_EQ(auth_token_verify(&k, t, (size_t)n, "4f7aef34fb361292c566a1ce", 24, "alice", 5, UID, 7, now, NULL),
             AUTH_TOKEN_WRONG_USER);
    /* wrong key */
    struct auth_token_key k2;
    CHECK_EQ(auth_token_key_random(&k2), 0);
    CHECK_EQ(verify(&k2, t, (size_t)n, "alice", 7, now + 10), AUTH_TOKEN_BAD_MAC);
    /* bad claims refused at issue */
    CHECK_EQ(issue(&k, "a b c d", now, now + 1, 0, t), -1);
    CHECK_EQ(issue(&k, "alice", now, now, 0, t), -1);
    struct auth_token_claims bad = { .app = "", .app_len = 0, .user = "alice", .user_len = 5, .iat = 1, .exp = 2 };
    CHECK_EQ(auth_token_issue(&k, &bad, t, sizeof t), -1);
    CHECK_EQ(issue(&k, "alice", now, now + 5, 0, t) > 0, 1);
    char small[40];
    struct auth_token_claims ok = { .app = APP, .app_len = 24, .user = "alice", .user_len = 5, .iat = 1, .exp = 2 };
    CHECK_EQ(auth_token_issue(&k, &ok, small, sizeof small), -1);
    /* the longest claims fit AUTH_TOKEN_MAX */
    char app[AUTH_TOKEN_APP_MAX], user[AUTH_USERNAME_MAX + 1];
    memset(app, 'Z', sizeof app);
    memset(user, 'u', AUTH_USERNAME_MAX);
    user[AUTH_USERNAME_MAX] = '\0';
    struct auth_token_claims big = { .app = app, .app_len = sizeof app, .user = user, .user_len = AUTH_USERNAME_MAX,
                                     .uid = UINT64_MAX, .iat = UINT64_MAX - 1, .exp = UINT64_MAX, .gen = UINT32_MAX };
    n = auth_token_issue(&k, &big, t, sizeof t);
    CHECK(n > 0 && n < AUTH_TOKEN_MAX);
    printf("  longest token: %d bytes (AUTH_TOKEN_MAX %d)\n", n, AUTH_TOKEN_MAX);
    CHECK_EQ(auth_token_verify(&k, t, (size_t)n, app, sizeof app, user, AUTH_USERNAME_MAX, UINT64_MAX, UINT32_MAX, 5,
                               NULL),
             AUTH_TOKEN_OK);
}

/* A genuine token of the layout before incarnations (payload without uid, as 899750c issued it) is refused as
 * revoked: it names a user but not which incarnation of the name. */
TEST(token_without_uid_is_revoked)
{
    struct auth_token_key k;
    CHECK_EQ(auth_token_key_random(&k), 0);
    const uint64_t now = 1700000000;
    uint8_t pl[128];
    size_t n = 0;
    pl[n++] = 24;
    memcpy(pl + n, APP, 24);
    n += 24;
    pl[n++] = 5;
    memcpy(pl + n, "alice", 5);
    n += 5;
    for (int i = 0; i < 8; i++) pl[n++] = (uint8_t)(now >> (56 - 8 * i));
    for (int i = 0; i < 8; i++) pl[n++] = (uint8_t)((now + 3600) >> (56 - 8 * i));
    memset(pl + n, 0, 4); /* gen 0 */
    n += 4;
    char t[AUTH_TOKEN_MAX];
    memcpy(t, "au1.", 4);
    size_t o = 4 + auth_b64_enc(pl, n, t + 4, true);
    uint8_t mac[32];
    size_t ml = 0;
    CHECK(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, k.key, sizeof k.key, (const unsigned char *)t, o, mac,
                    sizeof mac, &ml) != NULL);
    t[o++] = '.';
    o += auth_b64_enc(mac, sizeof mac, t + o, true);
    CHECK_EQ(auth_token_verify(&k, t, o, APP, strlen(APP), "alice", 5, UID, 0, now + 10, NULL), AUTH_TOKEN_REVOKED);
    CHECK_EQ(auth_token_verify(&k, t, o, APP, strlen(APP), "alice", 5, 0, 0, now + 10, NULL), AUTH_TOKEN_REVOKED);
    t[o - 1] ^= 1; /* and a forged one still fails its MAC first */
    CHECK(auth_token_verify(&k, t, o, APP, strlen(APP), "alice", 5, UID, 0, now + 10, NULL) != AUTH_TOKEN_OK);
}

TEST(token_tamper)
{
    struct auth_token_key k;
    CHECK_EQ(auth_token_key_random(&k), 0);
    char t[AUTH_TOKEN_MAX], m[AUTH_TOKEN_MAX + 8];
    const uint64_t now = 1700000000;
    int n = issue(&k, "bob.smith@example", now, now + 600, 3, t);
    CHECK(n > 0);
    static const uint8_t masks[] = { 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff };
    int accepted = 0, tried = 0;
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < sizeof masks; j++) {
            memcpy(m, t, (size_t)n);
            m[i] = (char)(m[i] ^ masks[j]);
            tried++;
            accepted += verify(&k, m, (size_t)n, "bob.smith@example", 3, now + 1) == AUTH_TOKEN_OK;
        }
    CHECK_EQ(accepted, 0);
    /* truncations and extensions */
    for (int len = 0; len < n; len++) CHECK(verify(&k, t, (size_t)len, "bob.smith@example", 3, now + 1) != 0);
    memcpy(m, t, (size_t)n);
    memcpy(m + n, "A", 1);
    CHECK(verify(&k, m, (size_t)n + 1, "bob.smith@example", 3, now + 1) != 0);
    CHECK_EQ(verify(&k, t, (size_t)n, "bob.smith@example", 3, now + 1), AUTH_TOKEN_OK);
    printf("  %d single-byte alterations: none accepted\n", tried);
}

TEST(token_vs_password)
{
    struct auth_token_key k;
    CHECK_EQ(auth_token_key_random(&k), 0);
    /* a password that happens to start with au1. is not a token: the caller falls back to hashing */
    const char *pw[] = { "au1.", "au1.password", "au1.abc.def", "au1..", "au1.QUJD.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" };
    for (size_t i = 0; i < AU_ARRAY_LEN(pw); i++)
        CHECK_EQ(verify(&k, pw[i], strlen(pw[i]), "alice", 0, 1), AUTH_TOKEN_NOT_TOKEN);
    CHECK(!auth_token_like("hunter2", 7));
    CHECK(!auth_token_like("au1", 3));
    CHECK(!auth_token_like("au1.", 4));
    CHECK(auth_token_like("au1.x", 5));
    /* cost of one verification (the reconnect path) */
    char t[AUTH_TOKEN_MAX];
    int n = issue(&k, "alice", 1000, 2000, 1, t);
    enum { N = 20000 };
    int ok = 0;
    double c0 = now_ms_f(CLOCK_THREAD_CPUTIME_ID);
    for (int i = 0; i < N; i++) ok += verify(&k, t, (size_t)n, "alice", 1, 1500) == AUTH_TOKEN_OK;
    double c1 = now_ms_f(CLOCK_THREAD_CPUTIME_ID);
    CHECK_EQ(ok, N);
    printf("  token verify: %.2f us CPU each\n", (c1 - c0) * 1000.0 / N);
}

TEST(token_key_file)
{
    char dir[] = "/tmp/aurora-auth-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[512], err[256] = "";
    snprintf(path, sizeof path, "%s/token.key", dir);
    struct auth_token_key a, b;
    CHECK_EQ(auth_token_key_load(dir, &a, err, sizeof err), 0);
    struct stat st;
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0600);
    CHECK_EQ(st.st_size, AUTH_TOKEN_KEY_LEN);
    CHECK_EQ(auth_token_key_load(dir, &b, err, sizeof err), 0);
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    /* a token issued with the loaded key verifies with the reloaded one */
    char t[AUTH_TOKEN_MAX];
    int n = issue(&a, "carol", 10, 20, 0, t);
    CHECK_EQ(verify(&b, t, (size_t)n, "carol", 0, 15), AUTH_TOKEN_OK);
    /* no temporary files left behind */
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s/.token.key.%ld.tmp", dir, (long)getpid());
    CHECK(access(tmp, F_OK) != 0);
    /* readable by others: refused */
    CHECK_EQ(chmod(path, 0644), 0);
    CHECK_EQ(auth_token_key_load(dir, &b, err, sizeof err), -1);
    CHECK(strstr(err, "chmod 600") != NULL);
    printf("  refused: %s\n", err);
    /* wrong size: refused */
    CHECK_EQ(chmod(path, 0600), 0);
    int fd = open(path, O_WRONLY | O_APPEND);
    CHECK(fd >= 0);
    CHECK_EQ(write(fd, "x", 1), 1);
    close(fd);
    CHECK_EQ(auth_token_key_load(dir, &b, err, sizeof err), -1);
    /* missing directory: refused with a message */
    char nodir[600];
    snprintf(nodir, sizeof nodir, "%s/missing", dir);
    err[0] = '\0';
    CHECK_EQ(auth_token_key_load(nodir, &b, err, sizeof err), -1);
    CHECK(err[0] != '\0');
    unlink(path);
    rmdir(dir);
}

/* ------------------------------------------------------------------ syntax */

TEST(username_password_syntax)
{
    struct { const char *s; bool ok; } u[] = {
        { "abcd", true }, { "a_b.c-d@e", true }, { "0user", true }, { "User_01", true }, { "abc", false },
        { "", false }, { "_abc", false }, { ".abc", false }, { "-abc", false }, { "@abc", false },
        { "ab cd", false }, { "abc!", false }, { "abc/", false }, { "ab:cd", false }, { "ab\xc3\xa9" "cd", false },
        { "a+bc", false }, { "1234", true }, { "a...", true }, { "Z@@@", true },
    };
    for (size_t i = 0; i < AU_ARRAY_LEN(u); i++) {
        if (auth_username_ok(u[i].s, strlen(u[i].s)) != u[i].ok) printf("  username %zu '%s'\n", i, u[i].s);
        CHECK_EQ(auth_username_ok(u[i].s, strlen(u[i].s)), u[i].ok);
    }
    char l[AUTH_USERNAME_MAX + 2];
    memset(l, 'a', sizeof l);
    CHECK(auth_username_ok(l, AUTH_USERNAME_MAX));
    CHECK(!auth_username_ok(l, AUTH_USERNAME_MAX + 1));
    CHECK(!auth_username_ok("ab\0d", 4));
    CHECK(!auth_username_ok(NULL, 4));
    CHECK(!auth_password_ok("abc", 3));
    CHECK(auth_password_ok("abcd", 4));
    CHECK(!auth_password_ok("\0\0\0\0", 4));
    CHECK(!auth_password_ok("abcd\0", 5));
    CHECK(auth_password_ok("\x01\xff\x7f ", 4));
    CHECK(auth_password_ok(l, AUTH_PASSWORD_MAX));
    CHECK(!auth_password_ok(l, AUTH_PASSWORD_MAX + 1));
    CHECK(!auth_password_ok(NULL, 8));
}

/* ------------------------------------------------------------------ pool: synchronous */

static int g_sync_ok = -9;
static struct au_shard *g_sync_s = (struct au_shard *)1;
static void sync_cb(struct au_shard *s, void *arg, int ok)
{
    g_sync_s = s;
    g_sync_ok = ok;
    *(int *)arg += 1;
}
static char g_sync_hash[AUTH_HASH_STR_MAX];
static void sync_hash_cb(struct au_shard *s, void *arg, const char *h)
{
    *(int *)arg += 1;
    snprintf(g_sync_hash, sizeof g_sync_hash, "%s", h ? h : "");
}

TEST(pool_sync)
{
    char h[AUTH_HASH_STR_MAX];
    int n = auth_password_hash_iter("toolpass", 8, LOW_ITER, h);
    int calls = 0;
    CHECK_EQ(authpool_verify(NULL, 0, 1, h, (size_t)n, "toolpass", 8, sync_cb, &calls), 0);
    CHECK_EQ(calls, 1);
    CHECK_EQ(g_sync_ok, 1);
    CHECK(g_sync_s == NULL);
    CHECK_EQ(authpool_verify(NULL, 0, 1, h, (size_t)n, "toolpasz", 8, sync_cb, &calls), 0);
    CHECK_EQ(g_sync_ok, 0);
    CHECK_EQ(authpool_verify(NULL, 0, 1, "junk", 4, "toolpass", 8, sync_cb, &calls), 0);
    CHECK_EQ(g_sync_ok, -1);
    CHECK_EQ(authpool_verify(NULL, 0, 1, h, (size_t)n, "abc", 3, sync_cb, &calls), -EINVAL);
    CHECK_EQ(calls, 3);
    CHECK_EQ(authpool_hash(NULL, 0, 1, "toolpass", 8, sync_hash_cb, &calls), 0); /* full cost */
    CHECK_EQ(calls, 4);
    CHECK_EQ(auth_password_verify(g_sync_hash, strlen(g_sync_hash), "toolpass", 8), 1);
    CHECK(!auth_password_needs_rehash(g_sync_hash, strlen(g_sync_hash)));
}

/* ------------------------------------------------------------------ pool: with the real loop */

enum { PER_SHARD = 500, NSHARD = 2, NHASH = 2 };
static struct authpool *g_pool;
static atomic_int g_go, g_submitted[NSHARD], g_done, g_bad, g_hash_done;
static atomic_int g_calls[AU_MAX(NSHARD * PER_SHARD, AUTHPOOL_MAX_PENDING)];
static char g_stored[AUTH_HASH_STR_MAX];
static int g_mode; /* 1 = bulk, 2 = back-pressure + detach, 3 = fairness */
static atomic_int g_order, g_other_at; /* mode 3: completions so far; position of the other app's */

static void bulk_cb(struct au_shard *s, void *arg, int ok)
{
    int idx = (int)(uintptr_t)arg;
    int want = idx % 3 != 0;
    if (!s || s->id != idx / PER_SHARD || !pthread_equal(pthread_self(), s->thread) || ok != want) {
        atomic_fetch_add(&g_bad, 1);
        printf("  bad completion idx=%d shard=%d ok=%d\n", idx, s ? s->id : -1, ok);
    }
    atomic_fetch_add(&g_calls[idx], 1);
    atomic_fetch_add(&g_done, 1);
}

static void hash_cb(struct au_shard *s, void *arg, const char *h)
{
    int sid = (int)(uintptr_t)arg;
    char pw[16];
    snprintf(pw, sizeof pw, "hashpw-%d", sid);
    /* cheap: the pool was made with hash_iter = LOW_ITER */
    if (!s || s->id != sid || !h || auth_password_verify(h, strlen(h), pw, strlen(pw)) != 1 ||
        auth_password_verify(h, strlen(h), "hashpw-x", 8) != 0 || strncmp(h, "pbkdf2-sha256$1000$", 19) != 0)
        atomic_fetch_add(&g_bad, 1);
    atomic_fetch_add(&g_hash_done, 1);
}

static void detach_cb(struct au_shard *s, void *arg, int ok)
{
    int idx = (int)(uintptr_t)arg;
    if (!s || s->id != 0 || !pthread_equal(pthread_self(), s->thread) || (ok != 1 && ok != AUTHPOOL_CANCELED))
        atomic_fetch_add(&g_bad, 1);
    if (ok == AUTHPOOL_CANCELED) atomic_fetch_add(&g_hash_done, 1); /* counts cancels in mode 2 */
    atomic_fetch_add(&g_calls[idx], 1);
    atomic_fetch_add(&g_done, 1);
}

static void fair_cb(struct au_shard *s, void *arg, int ok)
{
    int pos = atomic_fetch_add(&g_order, 1);
    if (!s || ok != 1) atomic_fetch_add(&g_bad, 1);
    if (arg) atomic_store(&g_other_at, pos);
    atomic_fetch_add(&g_done, 1);
}

enum { FAIR_BULK = 200 };

static int t_tick(struct au_shard *s, uint64_t now)
{
    if (!atomic_load(&g_go)) return 5;
    if (atomic_load(&g_submitted[s->id])) return -1;
    if (g_mode == 1) {
        for (int i = 0; i < PER_SHARD; i++) {
            int idx = s->id * PER_SHARD + i;
            const char *pw = idx % 3 ? "right-password" : "wrong-password";
            int r = authpool_verify(g_pool, s->id, (uint32_t)(idx % 4), g_stored, strlen(g_stored), pw, strlen(pw), bulk_cb,
                                    (void *)(uintptr_t)idx);
            if (r != 0) atomic_fetch_add(&g_bad, 1);
        }
        char pw[16];
        snprintf(pw, sizeof pw, "hashpw-%d", s->id);
        for (int i = 0; i < NHASH; i++)
            if (authpool_hash(g_pool, s->id, 1, pw, strlen(pw), hash_cb, (void *)(uintptr_t)s->id) != 0)
                atomic_fetch_add(&g_bad, 1);
        if (authpool_pending(g_pool, s->id) == 0) atomic_fetch_add(&g_bad, 1);
    } else if (g_mode == 3) {
        if (s->id == 0) {
            /* app 1 queues a bulk (its flow's cap refuses beyond), then app 2 asks once: served in the next round */
            for (int i = 0; i < FAIR_BULK; i++)
                if (authpool_verify(g_pool, 0, 1, g_stored, strlen(g_stored), "right-password", 14, fair_cb, NULL) != 0)
                    atomic_fetch_add(&g_bad, 1);
            if (authpool_verify(g_pool, 0, 2, g_stored, strlen(g_stored), "right-password", 14, fair_cb, &g_order) != 0)
                atomic_fetch_add(&g_bad, 1);
            for (int i = FAIR_BULK; i < AU_AUTHPOOL_FLOW_MAX_PENDING; i++)
                if (authpool_verify(g_pool, 0, 1, g_stored, strlen(g_stored), "right-password", 14, fair_cb, NULL) != 0)
                    atomic_fetch_add(&g_bad, 1);
            /* app 1's login flow is full now: one more is refused, app 3's is not */
            if (authpool_verify(g_pool, 0, 1, g_stored, strlen(g_stored), "right-password", 14, fair_cb, NULL) !=
                -EAGAIN)
                atomic_fetch_add(&g_bad, 1);
            if (authpool_verify(g_pool, 0, 3, g_stored, strlen(g_stored), "right-password", 14, fair_cb, NULL) != 0)
                atomic_fetch_add(&g_bad, 1);
        }
    } else if (s->id == 0) {
        for (int i = 0; i < AUTHPOOL_MAX_PENDING; i++)
            if (authpool_verify(g_pool, 0, (uint32_t)(i % 8), g_stored, strlen(g_stored), "right-password", 14,
                                detach_cb, (void *)(uintptr_t)i) != 0)
                atomic_fetch_add(&g_bad, 1);
        if (authpool_verify(g_pool, 0, 9, g_stored, strlen(g_stored), "right-password", 14, detach_cb, NULL) != -EAGAIN)
            atomic_fetch_add(&g_bad, 1);
        if (authpool_hash(g_pool, 0, 1, "abc", 3, hash_cb, NULL) != -EINVAL) atomic_fetch_add(&g_bad, 1);
        if (authpool_pending(g_pool, 0) != AUTHPOOL_MAX_PENDING) atomic_fetch_add(&g_bad, 1);
    }
    atomic_store(&g_submitted[s->id], 1);
    return -1;
}

static void t_fini(struct au_shard *s)
{
    authpool_shard_detach(g_pool, s->id);
    if (authpool_pending(g_pool, s->id) != 0) atomic_fetch_add(&g_bad, 1);
}

static const struct au_loop_hooks t_hooks = { .shard_tick = t_tick, .shard_fini = t_fini };

static void reset_state(int mode)
{
    g_mode = mode;
    atomic_store(&g_go, 0);
    atomic_store(&g_done, 0);
    atomic_store(&g_bad, 0);
    atomic_store(&g_hash_done, 0);
    atomic_store(&g_order, 0);
    atomic_store(&g_other_at, -1);
    for (int i = 0; i < NSHARD; i++) atomic_store(&g_submitted[i], 0);
    for (size_t i = 0; i < AU_ARRAY_LEN(g_calls); i++) atomic_store(&g_calls[i], 0);
}

static struct au_shard **start_loop(int n_ext)
{
    struct au_loop_opts lo = { .nshards = NSHARD, .nlisteners = 0, .hooks = &t_hooks, .drain_ms = 1000,
                               .n_ext = n_ext };
    struct au_shard **shards = NULL;
    int r = au_loop_start(&lo, &shards);
    CHECK_EQ(r, 0);
    return r == 0 ? shards : NULL;
}

static bool wait_for(atomic_int *v, int want, int timeout_ms)
{
    for (int i = 0; i < timeout_ms; i++) {
        if (atomic_load(v) >= want) return true;
        usleep(1000);
    }
    return atomic_load(v) >= want;
}

TEST(pool_bulk_on_loop)
{
    reset_state(1);
    CHECK(auth_password_hash_iter("right-password", 14, LOW_ITER, g_stored) > 0);
    struct authpool_opts po = { .threads = 2, .hash_iter = LOW_ITER };
    g_pool = authpool_new(&po);
    CHECK_EQ(authpool_threads(g_pool), 2);
    const int ext_base = 1; /* as if the store held id 0 */
    struct au_shard **shards = start_loop(ext_base + (int)authpool_threads(g_pool));
    if (!shards) return;
    authpool_start(g_pool, shards, NSHARD, ext_base);
    double t0 = now_ms_f(CLOCK_MONOTONIC);
    atomic_store(&g_go, 1);
    bool all = wait_for(&g_done, NSHARD * PER_SHARD, 120000) && wait_for(&g_hash_done, NSHARD * NHASH, 30000);
    double t1 = now_ms_f(CLOCK_MONOTONIC);
    CHECK(all);
    usleep(20000); /* anything extra would show up now */
    au_loop_stop(shards, NSHARD);
    authpool_stop(g_pool);
    g_pool = NULL;
    CHECK_EQ(atomic_load(&g_done), NSHARD * PER_SHARD);
    CHECK_EQ(atomic_load(&g_hash_done), NSHARD * NHASH);
    CHECK_EQ(atomic_load(&g_bad), 0);
    int once = 0;
    for (size_t i = 0; i < AU_ARRAY_LEN(g_calls); i++) once += atomic_load(&g_calls[i]) == 1;
    CHECK_EQ(once, NSHARD * PER_SHARD);
    printf("  %d verifications (%u iterations) + %d hashes from %d shards on 2 workers: %.0f ms\n",
           NSHARD * PER_SHARD, LOW_ITER, NSHARD * NHASH, NSHARD, t1 - t0);
}

TEST(pool_backpressure_and_detach)
{
    reset_state(2);
    /* dearer hashes so that most requests are still queued when the loop stops */
    CHECK(auth_password_hash_iter("right-password", 14, 20000, g_stored) > 0);
    struct authpool_opts po = { .threads = 1, .hash_iter = LOW_ITER };
    g_pool = authpool_new(&po);
    struct au_shard **shards = start_loop(1);
    if (!shards) return;
    authpool_start(g_pool, shards, NSHARD, 0);
    atomic_store(&g_go, 1);
    CHECK(wait_for(&g_submitted[0], 1, 10000));
    usleep(30000); /* let a few complete normally */
    au_loop_stop(shards, NSHARD); /* shard_fini detaches: the rest complete there, canceled */
    authpool_stop(g_pool);
    g_pool = NULL;
    CHECK_EQ(atomic_load(&g_bad), 0);
    CHECK_EQ(atomic_load(&g_done), AUTHPOOL_MAX_PENDING);
    int once = 0;
    for (int i = 0; i < AUTHPOOL_MAX_PENDING; i++) once += atomic_load(&g_calls[i]) == 1;
    CHECK_EQ(once, AUTHPOOL_MAX_PENDING);
    int canceled = atomic_load(&g_hash_done);
    printf("  %d in flight at stop: %d verified, %d canceled, each called back once\n", AUTHPOOL_MAX_PENDING,
           AUTHPOOL_MAX_PENDING - canceled, canceled);
    CHECK(canceled > 0);
}

TEST(pool_fair_per_app)
{
    reset_state(3);
    CHECK(auth_password_hash_iter("right-password", 14, LOW_ITER, g_stored) > 0);
    struct authpool_opts po = { .threads = 2, .hash_iter = LOW_ITER };
    g_pool = authpool_new(&po);
    struct au_shard **shards = start_loop((int)authpool_threads(g_pool));
    if (!shards) return;
    authpool_start(g_pool, shards, NSHARD, 0);
    atomic_store(&g_go, 1);
    int total = AU_AUTHPOOL_FLOW_MAX_PENDING + 2;
    CHECK(wait_for(&g_done, total, 60000));
    au_loop_stop(shards, NSHARD);
    authpool_stop(g_pool);
    g_pool = NULL;
    CHECK_EQ(atomic_load(&g_bad), 0);
    CHECK_EQ(atomic_load(&g_done), total);
    /* queued behind 200 of app 1, app 2's check goes to a worker in the first round: after the requests
     * already there (AU_AUTHPOOL_SHARD_INFLIGHT per thread) and at most one of app 1's; it may finish a few
     * places later when its worker is slower than the other (FIFO over all of them: 201st) */
    int at = atomic_load(&g_other_at);
    printf("  app 2's check behind %d of app 1's: answered %d-th\n", FAIR_BULK, at + 1);
    CHECK(at >= 0 && at < 4 * AU_AUTHPOOL_SHARD_INFLIGHT * 2 + 4);
}

/* ------------------------------------------------------------------ throttle */

TEST(throttle_pending_counts_against_the_budget)
{
    struct throttle t;
    struct throttle_policy pol = { .free_fails = 5, .base_delay_ms = 1000, .max_delay_ms = 300000,
                                   .window_ms = 900000, .pending_max = 4 };
    CHECK_EQ(throttle_init(&t, 64, &pol), 0);
    const char *k = "APPKEY:alice";
    size_t kl = strlen(k);
    uint64_t now = 1000;
    /* a concurrent burst: pending_max admitted, the rest wait, nothing checked yet */
    for (int i = 0; i < 4; i++) CHECK_EQ(throttle_begin(&t, k, kl, now), 0);
    CHECK_EQ(throttle_pending(&t, k, kl), 4);
    CHECK_EQ(throttle_begin(&t, k, kl, now), THROTTLE_PENDING_WAIT_MS);
    for (int i = 0; i < 4; i++) throttle_end(&t, k, kl, now, true);
    CHECK_EQ(throttle_fails(&t, k, kl, now), 4);
    CHECK_EQ(throttle_pending(&t, k, kl), 0);
    /* 4 failed: one free guess left, and only one may be in flight for it */
    CHECK_EQ(throttle_begin(&t, k, kl, now), 0);
    CHECK_EQ(throttle_begin(&t, k, kl, now), THROTTLE_PENDING_WAIT_MS);
    throttle_end(&t, k, kl, now, true);
    /* the 6th (first beyond the free ones) runs alone and, failing, blocks */
    CHECK_EQ(throttle_begin(&t, k, kl, now), 0);
    CHECK_EQ(throttle_begin(&t, k, kl, now), THROTTLE_PENDING_WAIT_MS);
    throttle_end(&t, k, kl, now, true);
    CHECK_EQ(throttle_begin(&t, k, kl, now), 1000);
    CHECK_EQ(throttle_begin(&t, k, kl, now + 1000), 0);
    CHECK_EQ(throttle_begin(&t, k, kl, now + 1000), THROTTLE_PENDING_WAIT_MS);
    /* a success releases and clears */
    throttle_end(&t, k, kl, now + 1000, false);
    throttle_ok(&t, k, kl);
    CHECK_EQ(throttle_fails(&t, k, kl, now + 1000), 0);
    CHECK_EQ(throttle_begin(&t, k, kl, now + 1000), 0);
    /* a record with guesses in flight outlives its window */
    CHECK_EQ(throttle_pending(&t, k, kl), 1);
    CHECK_EQ(throttle_check(&t, k, kl, now + 1000 + 2 * 900000ull), 0);
    throttle_end(&t, k, kl, now + 1000 + 2 * 900000ull, false);
    CHECK_EQ(throttle_pending(&t, k, kl), 0);
    throttle_free(&t);

    /* one set (4 slots): records with guesses in flight are never evicted; a fifth key waits */
    CHECK_EQ(throttle_init(&t, 4, &pol), 0);
    char key[16];
    for (int i = 0; i < 4; i++) {
        int n = snprintf(key, sizeof key, "k%d", i);
        CHECK_EQ(throttle_begin(&t, key, (size_t)n, now), 0);
    }
    CHECK_EQ(throttle_begin(&t, "k9", 2, now), THROTTLE_PENDING_WAIT_MS);
    throttle_end(&t, "k0", 2, now, false);
    CHECK_EQ(throttle_begin(&t, "k9", 2, now), 0);
    for (int i = 1; i < 4; i++) {
        int n = snprintf(key, sizeof key, "k%d", i);
        CHECK_EQ(throttle_pending(&t, key, (size_t)n), 1);
    }
    throttle_free(&t);
}

TEST(login_throttle_pending_per_address)
{
    struct login_throttle lt;
    CHECK_EQ(login_throttle_init(&lt), 0);
    uint64_t now = 10;
    char key[32];
    /* one address, many accounts: LOGIN_IP_PENDING_MAX checks in flight, then it waits */
    for (unsigned i = 0; i < LOGIN_IP_PENDING_MAX; i++) {
        int n = snprintf(key, sizeof key, "APPKEY:user%u", i);
        CHECK_EQ(login_throttle_begin(&lt, key, (size_t)n, 0x0200000a, now, NULL), 0);
    }
    bool held = false;
    CHECK(login_throttle_begin(&lt, "APPKEY:other", 12, 0x0200000a, now, &held) > 0);
    CHECK(held); /* only waiting for the address's checks in flight */
    CHECK_EQ(login_throttle_begin(&lt, "APPKEY:other", 12, 0x0300000a, now, NULL), 0); /* another address is not held */
    login_throttle_end(&lt, "APPKEY:other", 12, 0x0300000a, now, LOGIN_CANCELED);
    /* results: failures count on both tables, a success clears the account only */
    login_throttle_end(&lt, "APPKEY:user0", 12, 0x0200000a, now, LOGIN_FAILED);
    CHECK_EQ(throttle_fails(&lt.user, "APPKEY:user0", 12, now), 1);
    CHECK_EQ(throttle_fails(&lt.ip, &(uint32_t){ 0x0200000a }, 4, now), 1);
    login_throttle_end(&lt, "APPKEY:user1", 12, 0x0200000a, now, LOGIN_OK);
    CHECK_EQ(throttle_fails(&lt.ip, &(uint32_t){ 0x0200000a }, 4, now), 1);
    CHECK_EQ(login_throttle_begin(&lt, "APPKEY:other", 12, 0x0200000a, now, NULL), 0); /* room again */
    /* blocked (failures, not checks in flight): not held */
    for (unsigned i = 0; i < LOGIN_USER_FREE_FAILS + 1; i++) login_throttle_fail(&lt, "APPKEY:vic", 10, 0x0400000a, now);
    CHECK(login_throttle_begin(&lt, "APPKEY:vic", 10, 0x0400000a, now, &held) > 0);
    CHECK(!held);
    login_throttle_free(&lt);
}

TEST(throttle_backoff)
{
    struct throttle t;
    struct throttle_policy pol = { .free_fails = 5, .base_delay_ms = 1000, .max_delay_ms = 300000,
                                   .window_ms = 900000 };
    CHECK_EQ(throttle_init(&t, 64, &pol), 0);
    const char *k = "APPKEY:alice";
    size_t kl = strlen(k);
    uint64_t now = 1000000;
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(throttle_check(&t, k, kl, now), 0);
        CHECK_EQ(throttle_fail(&t, k, kl, now), 0);
        now += 100;
    }
    CHECK_EQ(throttle_fails(&t, k, kl, now), 5);
    CHECK_EQ(throttle_check(&t, k, kl, now), 0);
    /* 6th failure: 1 s, then 2, 4, 8 ... capped at 300 s */
    uint32_t want = 1000;
    for (int i = 0; i < 12; i++) {
        CHECK_EQ(throttle_fail(&t, k, kl, now), want);
        CHECK_EQ(throttle_check(&t, k, kl, now), want);
        CHECK_EQ(throttle_check(&t, k, kl, now + want - 1), 1);
        CHECK_EQ(throttle_check(&t, k, kl, now + want), 0);
        now += want;
        want = want * 2 > 300000 ? 300000 : want * 2;
    }
    CHECK_EQ(want, 300000);
    /* another key is unaffected */
    CHECK_EQ(throttle_check(&t, "APPKEY:bob", 10, now), 0);
    /* success clears */
    throttle_ok(&t, k, kl);
    CHECK_EQ(throttle_fails(&t, k, kl, now), 0);
    CHECK_EQ(throttle_fail(&t, k, kl, now), 0);
    /* a quiet window forgets */
    for (int i = 0; i < 7; i++) throttle_fail(&t, k, kl, now);
    CHECK(throttle_check(&t, k, kl, now) > 0);
    now += 900001;
    CHECK_EQ(throttle_check(&t, k, kl, now), 0);
    CHECK_EQ(throttle_fails(&t, k, kl, now), 0);
    CHECK_EQ(throttle_fail(&t, k, kl, now), 0); /* counting starts again */
    CHECK_EQ(throttle_fails(&t, k, kl, now), 1);
    throttle_free(&t);
    /* bad parameters */
    CHECK_EQ(throttle_init(&t, 100, &pol), -1);
    CHECK_EQ(throttle_init(&t, 2, &pol), -1);
    struct throttle_policy p2 = pol;
    p2.window_ms = 1000;
    CHECK_EQ(throttle_init(&t, 64, &p2), -1);
}

TEST(throttle_bounded_lru)
{
    struct throttle t;
    struct throttle_policy pol = { .free_fails = 1, .base_delay_ms = 1000, .max_delay_ms = 60000,
                                   .window_ms = 600000 };
    CHECK_EQ(throttle_init(&t, 256, &pol), 0);
    uint64_t now = 5000;
    /* a blocked key, then a flood of other keys: memory stays 256 slots, the oldest records go */
    throttle_fail(&t, "victim", 6, now);
    CHECK_EQ(throttle_fail(&t, "victim", 6, now), 1000);
    char key[32];
    for (int i = 0; i < 10000; i++) {
        now++;
        int n = snprintf(key, sizeof key, "k%d", i);
        throttle_fail(&t, key, (size_t)n, now);
    }
    CHECK(t.evictions > 10000 - 256 - 10);
    int live = 0;
    for (int i = 10000 - 64; i < 10000; i++) {
        int n = snprintf(key, sizeof key, "k%d", i);
        live += throttle_fails(&t, key, (size_t)n, now) == 1;
    }
    CHECK(live >= 56); /* the most recent keys are (nearly all) remembered */
    printf("  256 slots, 10001 keys: %llu evictions, %d of the last 64 remembered\n",
           (unsigned long long)t.evictions, live);
    throttle_free(&t);
}

TEST(login_throttle_pair)
{
    struct login_throttle lt;
    CHECK_EQ(login_throttle_init(&lt), 0);
    const char *u = "APPKEY:alice";
    uint32_t ip = 0x0100007f;
    uint64_t now = 10;
    for (unsigned i = 0; i < LOGIN_USER_FREE_FAILS; i++) login_throttle_fail(&lt, u, strlen(u), ip, now);
    CHECK_EQ(login_throttle_check(&lt, u, strlen(u), ip, now), 0);
    login_throttle_fail(&lt, u, strlen(u), ip, now);
    CHECK_EQ(login_throttle_check(&lt, u, strlen(u), ip, now), LOGIN_BASE_DELAY_MS);
    CHECK_EQ(login_throttle_check(&lt, "APPKEY:bob", 10, ip, now), 0); /* the address still has budget */
    login_throttle_ok(&lt, u, strlen(u), ip);
    CHECK_EQ(login_throttle_check(&lt, u, strlen(u), ip, now), 0);
    /* one address guessing many accounts: blocked by the address table after LOGIN_IP_FREE_FAILS */
    char key[32];
    for (unsigned i = 0; i < LOGIN_IP_FREE_FAILS + 1; i++) {
        CHECK_EQ(login_throttle_check(&lt, "APPKEY:fresh", 12, 0x0200000a, now), 0);
        int n = snprintf(key, sizeof key, "APPKEY:user%u", i);
        login_throttle_fail(&lt, key, (size_t)n, 0x0200000a, now);
    }
    CHECK_EQ(login_throttle_check(&lt, "APPKEY:fresh", 12, 0x0200000a, now), LOGIN_BASE_DELAY_MS);
    CHECK_EQ(login_throttle_check(&lt, "APPKEY:fresh", 12, 0x0300000a, now), 0);
    CHECK_EQ(login_throttle_check(&lt, "APPKEY:fresh", 12, 0, now), 0); /* no address: user table only */
    /* a success on its own account does not wash the address's record */
    login_throttle_ok(&lt, "APPKEY:mine", 11, 0x0200000a);
    CHECK_EQ(login_throttle_check(&lt, "APPKEY:fresh", 12, 0x0200000a, now), LOGIN_BASE_DELAY_MS);
    CHECK_EQ(login_throttle_check(&lt, "APPKEY:fresh", 12, 0x0200000a, now + LOGIN_BASE_DELAY_MS), 0);
    login_throttle_free(&lt);
}

int main(void)
{
    au_log_set_level(AU_LOG_WARN);
    RUN(b64_roundtrip_and_strict);
    RUN(password_roundtrip);
    RUN(password_malformed);
    RUN(password_salt_unique);
    RUN(password_cost_measured);
    RUN(app_keys);
    RUN(secret_hash);
    RUN(token_issue_verify);
    RUN(device_token_bound_to_app_and_client_id);
    RUN(token_without_uid_is_revoked);
    RUN(token_tamper);
    RUN(token_vs_password);
    RUN(token_key_file);
    RUN(username_password_syntax);
    RUN(pool_sync);
    RUN(pool_bulk_on_loop);
    RUN(pool_backpressure_and_detach);
    RUN(pool_fair_per_app);
    RUN(throttle_backoff);
    RUN(throttle_bounded_lru);
    RUN(login_throttle_pair);
    RUN(throttle_pending_counts_against_the_budget);
    RUN(login_throttle_pending_per_address);
    TEST_MAIN_END();
}
