/* test_ident.c - session owner identities (gateway/mqtt/ident.h): who counts as the same owner. */
#include "tests/unit/test.h"
#include "gateway/mqtt/ident.h"

#include <string.h>

TEST(same_owner_only_when_everything_matches)
{
    struct sess_ident a = { 0 }, b = { 0 };
    sess_ident_set(&a, SESS_ID_USER, 7, "alice", 5, 0);
    sess_ident_set(&b, SESS_ID_USER, 7, "alice", 5, 0);
    CHECK(sess_ident_eq(&a, &b));
    sess_ident_set(&b, SESS_ID_USER, 7, "alicf", 5, 0);   /* another user */
    CHECK(!sess_ident_eq(&a, &b));
    sess_ident_set(&b, SESS_ID_USER, 8, "alice", 5, 0);   /* same name in another app */
    CHECK(!sess_ident_eq(&a, &b));
    sess_ident_set(&b, SESS_ID_USER, 7, "alice", 5, 42);  /* a re-registered user of the same name */
    CHECK(!sess_ident_eq(&a, &b));
    sess_ident_set(&b, SESS_ID_PLAIN, 7, "alice", 5, 0);  /* a plain username is no IM login */
    CHECK(!sess_ident_eq(&a, &b));
    sess_ident_set(&b, SESS_ID_USER, 7, "alice2", 6, 0);
    CHECK(!sess_ident_eq(&a, &b));
    /* unnamed kinds: the app decides; names passed for them are ignored */
    sess_ident_set(&a, SESS_ID_PUSH, 7, "x", 1, 0);
    sess_ident_set(&b, SESS_ID_PUSH, 7, NULL, 0, 0);
    CHECK(sess_ident_eq(&a, &b));
    sess_ident_set(&b, SESS_ID_DEVICE, 7, NULL, 0, 0);    /* a tokened device is not a tokenless one */
    CHECK(!sess_ident_eq(&a, &b));
    sess_ident_set(&a, SESS_ID_ANON, 1, NULL, 0, 0);
    sess_ident_set(&b, SESS_ID_ANON, 1, NULL, 0, 0);
    CHECK(sess_ident_eq(&a, &b));
    /* an empty plain username is a name too, and differs from anonymous */
    sess_ident_set(&b, SESS_ID_PLAIN, 1, "", 0, 0);
    CHECK(!sess_ident_eq(&a, &b));
    sess_ident_set(&a, SESS_ID_PLAIN, 1, "", 0, 0);
    CHECK(sess_ident_eq(&a, &b));
    /* NONE (an unreadable stored owner) equals nothing, not even itself */
    sess_ident_set(&a, SESS_ID_NONE, 1, NULL, 0, 0);
    sess_ident_set(&b, SESS_ID_NONE, 1, NULL, 0, 0);
    CHECK(!sess_ident_eq(&a, &b));
    /* move hands the name over */
    sess_ident_set(&b, SESS_ID_USER, 3, "bobby", 5, 9);
    sess_ident_move(&a, &b);
    CHECK(a.kind == SESS_ID_USER && a.name_len == 5 && strcmp(a.name, "bobby") == 0 && a.incarnation == 9);
    CHECK(b.name == NULL && b.name_len == 0);
    sess_ident_free(&a);
    sess_ident_free(&b);
}

int main(void)
{
    RUN(same_owner_only_when_everything_matches);
    TEST_MAIN_END();
}
