#include <math.h>
#include <stdlib.h>
#include "harness/timing.h"

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double percentile_sorted(const double *v, int n, double p) {
  if (n == 1) return v[0];
  double pos = p * (n - 1);
  int lo = (int)floor(pos);
  if (lo >= n - 1) return v[n - 1];
  double frac = pos - lo;
  return v[lo] + frac * (v[lo + 1] - v[lo]);
}

double klab_percentile(double *v, int n, double p) {
  if (n <= 0) return NAN;
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return percentile_sorted(v, n, p);
}

void klab_stats_compute(double *v, int n, klab_stats *s) {
  s->n = n;
  if (n <= 0) {
    s->median = s->p10 = s->p90 = s->mean = s->stdev = NAN;
    return;
  }
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  s->median = percentile_sorted(v, n, 0.5);
  s->p10 = percentile_sorted(v, n, 0.1);
  s->p90 = percentile_sorted(v, n, 0.9);
  double sum = 0;
  for (int i = 0; i < n; i++) sum += v[i];
  s->mean = sum / n;
  double ss = 0;
  for (int i = 0; i < n; i++) ss += (v[i] - s->mean) * (v[i] - s->mean);
  s->stdev = n > 1 ? sqrt(ss / (n - 1)) : 0.0;
}

double klab_rel_stderr(const double *v, int n) {
  if (n < 2) return INFINITY;
  double sum = 0;
  for (int i = 0; i < n; i++) sum += v[i];
  double mean = sum / n, ss = 0;
  for (int i = 0; i < n; i++) ss += (v[i] - mean) * (v[i] - mean);
  return mean > 0 ? sqrt(ss / (n - 1)) / sqrt((double)n) / mean : INFINITY;
}
