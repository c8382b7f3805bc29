/* hist.c - log-linear latency histogram: see hist.h. */
#include "perf/bench/hist.h"

#include "core/common.h"

#include <string.h>

_Static_assert(HIST_SUB_BITS >= 2 && HIST_SUB_BITS < 32, "sub-bucket bits out of range");

void hist_init(struct hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

uint32_t hist_index(uint64_t v)
{
    if (v < HIST_SUB_COUNT) return (uint32_t)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);     /* >= HIST_SUB_BITS */
    unsigned shift = msb - (HIST_SUB_BITS - 1);             /* keeps HIST_SUB_BITS significant bits */
    uint32_t sub = (uint32_t)(v >> shift);                  /* in [HIST_HALF, HIST_SUB_COUNT) */
    uint32_t idx = HIST_SUB_COUNT + (msb - HIST_SUB_BITS) * HIST_HALF + (sub - HIST_HALF);
    AU_ASSERT(idx < HIST_BUCKETS);
    return idx;
}

uint64_t hist_bucket_high(uint32_t idx)
{
    AU_ASSERT(idx < HIST_BUCKETS);
    if (idx < HIST_SUB_COUNT) return idx;
    uint32_t rel = idx - HIST_SUB_COUNT;
    unsigned msb = HIST_SUB_BITS + rel / HIST_HALF;
    unsigned shift = msb - (HIST_SUB_BITS - 1);
    uint64_t sub = HIST_HALF + rel % HIST_HALF;
    uint64_t low = sub << shift;
    return low + ((1ull << shift) - 1);
}

void hist_record(struct hist *h, uint64_t v)
{
    h->buckets[hist_index(v)]++;
    h->count++;
    h->sum += (long double)v;
    if (v < h->min) h->min = v;
    if (v > h->max) h->max = v;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
    if (src->count == 0) return;
    for (uint32_t i = 0; i < HIST_BUCKETS; i++) dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
    if (h->count == 0) return 0;
    if (q <= 0) return h->min;
    if (q >= 1) return h->max;
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if ((double)rank < q * (double)h->count) rank++;        /* ceil */
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = hist_bucket_high(i);
            return v > h->max ? h->max : (v < h->min ? h->min : v);
        }
    }
    return h->max;
}

double hist_mean(const struct hist *h)
{
    return h->count ? (double)(h->sum / (long double)h->count) : 0.0;
}
