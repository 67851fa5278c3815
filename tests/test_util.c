#include "test_util.h"
#include <stdint.h>
#include "harness/bf16.h"

int klab_test_failures = 0;
int klab_test_checks = 0;

int klab_test_finish(const char *name) {
  printf("%s: %d checks, %d failed\n", name, klab_test_checks, klab_test_failures);
  return klab_test_failures ? 1 : 0;
}

void klab_test_skip(const char *name, const char *why) {
  printf("%s: SKIP: %s\n", name, why);
  fflush(stdout);
  exit(77);
}

double klab_test_rel_l2(const float *x, const float *ref, long long n) {
  double num = 0, den = 0;
  for (long long i = 0; i < n; i++) {
    double d = (double)x[i] - ref[i];
    num += d * d;
    den += (double)ref[i] * ref[i];
  }
  return sqrt(num / (den > 0 ? den : 1));
}

void *klab_test_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "out of host memory (%zu bytes)\n", n);
    exit(1);
  }
  return p;
}

void klab_test_store_values(int bf16, const float *vals, long long n, void *raw, float *stored) {
  for (long long i = 0; i < n; i++) {
    if (bf16) {
      uint16_t b = klab_float_to_bf16(vals[i]);
      ((uint16_t *)raw)[i] = b;
      stored[i] = klab_bf16_to_float(b);
    } else {
      ((float *)raw)[i] = vals[i];
      stored[i] = vals[i];
    }
  }
}
