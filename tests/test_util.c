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
