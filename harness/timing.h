/* Kernel timing: CUPTI activity records (kernel durations per invocation) and sample statistics. */
#ifndef KLAB_TIMING_H
#define KLAB_TIMING_H
#include "harness/klab.h"
#ifdef __cplusplus
extern "C" {
#endif

/* Enable CUPTI CONCURRENT_KERNEL + EXTERNAL_CORRELATION activity. Call before the first kernel runs.
 * Returns 1 when CUPTI records kernels, 0 when it cannot (why says so: e.g. another profiler holds it). */
int klab_cupti_start(char *why, size_t len);
int klab_cupti_active(void);
/* Bracket the launches of invocation `id`: every kernel launched in between (cuBLAS's own included) is
 * attributed to id. */
int klab_cupti_push(uint64_t id, klab_err *err);
int klab_cupti_pop(klab_err *err);
/* Flush CUPTI (after a device sync) and return the summed kernel time (us) and kernel count of each
 * invocation id in [first, first+n). Invocations with no kernel record get count 0. Drops the records. */
int klab_cupti_collect(uint64_t first, int n, double *us, int *kernels, klab_err *err);

typedef struct {
  double median, p10, p90, mean, stdev;
  int n;
} klab_stats;
/* Percentile p in [0,1] of v[0..n) (sorted in place), by linear interpolation; NaN when n <= 0. */
double klab_percentile(double *v, int n, double p);
/* Statistics of v[0..n) (sorted in place). Percentiles by linear interpolation. */
void klab_stats_compute(double *v, int n, klab_stats *s);
/* Relative standard error of the mean: stdev / sqrt(n) / mean (the stopping criterion's noise). */
double klab_rel_stderr(const double *v, int n);
#ifdef __cplusplus
}
#endif
#endif
