/* test.h - minimal unit-test harness: each tests/unit/test_*.c is a standalone program.
 * Use CHECK(cond) / CHECK_EQ(a, b) inside TEST(name) functions listed in main via RUN(name).
 * Prints "ok"/"FAIL" per test and a final "N passed, N failed"; exit status 1 on any failure. */
#ifndef AU_TEST_H
#define AU_TEST_H
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

static int t_passed, t_failed, t_cur_failed;
#define TEST(name) static void name(void)
#define CHECK(c) do { if (!(c)) { printf("  check failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); t_cur_failed = 1; } } while (0)
#define CHECK_EQ(a, b) do { long long _a = (long long)(a), _b = (long long)(b); \
    if (_a != _b) { printf("  check failed: %s == %s (%lld != %lld) (%s:%d)\n", #a, #b, _a, _b, __FILE__, __LINE__); t_cur_failed = 1; } } while (0)
#define RUN(name) do { t_cur_failed = 0; name(); if (t_cur_failed) { t_failed++; printf("FAIL %s\n", #name); } \
    else { t_passed++; printf("ok   %s\n", #name); } } while (0)
#define TEST_MAIN_END() do { printf("%d passed, %d failed\n", t_passed, t_failed); return t_failed ? 1 : 0; } while (0)
#endif
