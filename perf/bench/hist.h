/* hist.h - log-linear latency histogram (HdrHistogram-like) for aurora-bench.
 *
 * Values are unsigned 64-bit (nanoseconds here). Values below 2^HIST_SUB_BITS are counted exactly;
 * above, every power-of-two octave is split into 2^(HIST_SUB_BITS-1) linear sub-buckets, so a
 * reported value is within 1/2^(HIST_SUB_BITS-1) (< 0.8 %) of the true one. The bucket array is
 * part of the struct: recording never allocates, and two histograms merge by adding counts. */
#ifndef AU_BENCH_HIST_H
#define AU_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS  8                                    /* 256 exact values, 128 sub-buckets per octave */
#define HIST_SUB_COUNT (1u << HIST_SUB_BITS)
#define HIST_HALF      (HIST_SUB_COUNT / 2)
#define HIST_BUCKETS   (HIST_SUB_COUNT + (64 - HIST_SUB_BITS) * HIST_HALF)

struct hist {
    uint64_t count, min, max;
    long double sum;
    uint64_t buckets[HIST_BUCKETS];
};

void hist_init(struct hist *h);
void hist_record(struct hist *h, uint64_t v);
void hist_merge(struct hist *dst, const struct hist *src);
/* Value at quantile q in [0, 1] (0 when empty): the highest value of the bucket holding the
 * ceil(q * count)-th smallest sample, clamped to the exact max. */
uint64_t hist_quantile(const struct hist *h, double q);
double hist_mean(const struct hist *h);
/* Bucket index of v and the highest value that bucket holds (exposed for the unit test). */
uint32_t hist_index(uint64_t v);
uint64_t hist_bucket_high(uint32_t idx);

#endif
