/* metrics.c - /metrics text from registered providers (see metrics.h). */
#include "gateway/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* Written before the shards start, read-only afterwards. */
static gw_metrics_fn g_providers[GW_METRICS_PROVIDERS_MAX];
static int g_nproviders;

void gw_metrics_printf(struct gw_metrics *m, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(m->p + m->len, m->cap - m->len, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if ((size_t)n < m->cap - m->len) {
            m->len += (size_t)n;
            return;
        }
        m->cap = m->cap * 2 + (size_t)n;
        m->p = realloc(m->p, m->cap);
        AU_ASSERT(m->p != NULL);
    }
}

void gw_metrics_register(gw_metrics_fn fn)
{
    AU_ASSERT(fn != NULL && g_nproviders < GW_METRICS_PROVIDERS_MAX);
    g_providers[g_nproviders++] = fn;
}

void gw_metrics_render(struct gw_metrics *m, struct au_shard *const *shards, int nshards)
{
    for (int i = 0; i < g_nproviders; i++) g_providers[i](m, shards, nshards);
}
