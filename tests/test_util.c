#include "test_util.h"

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
