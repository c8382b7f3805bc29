/* metrics.c - /metrics text from registered providers (see metrics.h). */
#include "gateway/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

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

void gw_metrics_register(struct gw_metrics_providers *p, gw_metrics_fn fn)
{
    AU_ASSERT(fn != NULL && p->n < GW_METRICS_PROVIDERS_MAX);
    p->fn[p->n++] = fn;
}

void gw_metrics_render(const struct gw_metrics_providers *p, struct gw_metrics *m, struct au_shard *const *shards,
                       int nshards)
{
    for (int i = 0; i < p->n; i++) p->fn[i](m, shards, nshards);
}
