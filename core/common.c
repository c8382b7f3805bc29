/* common.c - assertion failure path and clocks. */
#include "common.h"
#include "log.h"

#include <execinfo.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

void au_assert_fail(const char *expr, const char *file, int line, const char *func)
{
    void *frames[32];
    int n = backtrace(frames, 32);
    fprintf(stderr, "ASSERTION FAILED: %s at %s:%d (%s)\n", expr, file, line, func);
    backtrace_symbols_fd(frames, n, STDERR_FILENO);
    abort();
}

uint64_t au_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t au_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t au_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
