/* log.c - structured logging to stderr; one write() per line so lines from shards never interleave. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum au_log_level g_level = AU_LOG_INFO;
static _Thread_local int t_shard = -1;
static const char *const k_names[] = { "debug", "info", "warn", "error" };

void au_log_set_level(enum au_log_level lvl) { g_level = lvl; }
enum au_log_level au_log_get_level(void) { return g_level; }
void au_log_set_shard(int shard) { t_shard = shard; }

int au_log_parse_level(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, k_names[i]) == 0) return i;
    return -1;
}

void au_log(enum au_log_level lvl, const char *fmt, ...)
{
    if (lvl < g_level) return;
    char line[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s shard=%d ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, k_names[lvl], t_shard);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0) m = 0;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
