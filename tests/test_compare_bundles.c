/* klab compare on the fixture bundles: ratios, noise bands, regressions and the exit status. */
#include <math.h>
#include <string.h>
#include <stdlib.h>
#include "test_util.h"
#include "harness/compare.h"

static char *run(const char *a, const char *b, double threshold, int *rc) {
  FILE *f = tmpfile();
  if (!f) return NULL;
  klab_compare_opts o = {threshold, 0};
  klab_err err = {{0}};
  *rc = klab_compare_bundles(a, b, &o, f, &err);
  if (*rc < 0) fprintf(stderr, "compare: %s\n", err.msg);
  long n = ftell(f);
  rewind(f);
  char *t = malloc((size_t)n + 1);
  if (t && fread(t, 1, (size_t)n, f) != (size_t)n) { free(t); t = NULL; }
  if (t) t[n] = 0;
  fclose(f);
  return t;
}

static klab_result mk(klab_status st, double med, double p10, double p90) {
  klab_result r;
  klab_result_init(&r);
  r.status = st;
  r.median_us = med, r.p10_us = p10, r.p90_us = p90;
  return r;
}

int main(void) {
  /* unit: the verdict rules */
  double ratio, noise;
  klab_result o = mk(KLAB_PASS, 10, 9.9, 10.1), n = mk(KLAB_PASS, 11, 10.9, 11.1);
  CHECK_NEAR(klab_row_noise(&o), 0.01, 1e-12);
  CHECK(klab_compare_rows(&o, &n, 0.05, &ratio, &noise) == KLAB_CMP_REGRESSED);
  CHECK_NEAR(ratio, 1.1, 1e-12);
  CHECK_NEAR(noise, hypot(0.01, 0.2 / 22), 1e-12);
  CHECK(klab_compare_rows(&o, &n, 0.2, &ratio, &noise) == KLAB_CMP_SLOWER);
  klab_result wide = mk(KLAB_PASS, 11, 8, 14); /* +-27 %: a 10 % change is inside the noise */
  CHECK(klab_compare_rows(&o, &wide, 0.05, &ratio, &noise) == KLAB_CMP_SAME);
  klab_result fast = mk(KLAB_PASS, 9, 8.95, 9.05);
  CHECK(klab_compare_rows(&o, &fast, 0.05, &ratio, &noise) == KLAB_CMP_FASTER);
  klab_result fail = mk(KLAB_FAIL, NAN, NAN, NAN), skip = mk(KLAB_SKIP, NAN, NAN, NAN);
  CHECK(klab_compare_rows(&o, &fail, 0.05, &ratio, &noise) == KLAB_CMP_NOW_FAILS && isnan(ratio));
  CHECK(klab_compare_rows(&fail, &o, 0.05, &ratio, &noise) == KLAB_CMP_NOW_PASSES);
  CHECK(klab_compare_rows(&skip, &o, 0.05, &ratio, &noise) == KLAB_CMP_UNTIMED);
  CHECK(klab_compare_rows(NULL, &o, 0.05, &ratio, &noise) == KLAB_CMP_NEW);
  CHECK(klab_compare_rows(&o, NULL, 0.05, &ratio, &noise) == KLAB_CMP_MISSING);

  /* bundles */
  char a[600], b[600];
  snprintf(a, sizeof a, "%s/tests/data/bundles/h100-old", KLAB_SOURCE_DIR);
  snprintf(b, sizeof b, "%s/tests/data/bundles/h100-new", KLAB_SOURCE_DIR);
  int rc;
  char *t = run(a, b, 0.05, &rc);
  CHECK(rc == 1);
  CHECK(t != NULL);
  if (t) {
    /* gemv optimized qkv: 12.0 -> 13.5 us (+12.5 %, noise ~3 %) */
    CHECK(strstr(t, "| gemv | M=1;N=6144;K=2560 | optimized | 12.00 | 13.50 | 1.125 |") != NULL);
    const char *row = strstr(t, "| gemv | M=1;N=6144;K=2560 | optimized |");
    CHECK(row && strstr(row, "REGRESSED") && strstr(row, "REGRESSED") < strchr(row, '\n'));
    /* the vendor got slower too, but it does not decide the exit status */
    row = strstr(t, "| gemv | M=1;N=6144;K=2560 | cublas (vendor) |");
    CHECK(row && strstr(row, "REGRESSED") < strchr(row, '\n'));
    CHECK(strstr(t, "Vendor baselines slower or failing: 1") != NULL);
    CHECK(strstr(t, "| gemv | M=1;N=151936;K=2560 | optimized | 260.00 | 250.00 | 0.962 |") != NULL);
    row = strstr(t, "| gemv | M=1;N=151936;K=2560 | optimized |");
    CHECK(row && strstr(row, "faster") < strchr(row, '\n'));
    row = strstr(t, "| rmsnorm | T=1;H=2560 | optimized |");
    CHECK(row && strstr(row, "| same |") && strstr(row, "| same |") < strchr(row, '\n'));
    row = strstr(t, "| gemv | M=8;N=2560;K=9728 | optimized |");
    CHECK(row && strstr(row, "now passes") < strchr(row, '\n'));
    row = strstr(t, "| rmsnorm | T=16384;H=8192 | naive |");
    CHECK(row && strstr(row, "missing in new") < strchr(row, '\n'));
    CHECK(strstr(t, "2 regressed (1 vendor)") && strstr(t, "RESULT: regression"));
    free(t);
  }
  /* a looser threshold: the 12.5 % slowdown is reported but not a regression */
  t = run(a, b, 0.2, &rc);
  CHECK(rc == 0);
  CHECK(t && strstr(t, "slower (within threshold)") && strstr(t, "RESULT: no regression"));
  free(t);
  /* a bundle against itself */
  t = run(a, a, 0.05, &rc);
  CHECK(rc == 0);
  CHECK(t && strstr(t, "0 regressed (0 vendor)") && !strstr(t, "faster |"));
  free(t);
  /* a missing bundle is an error */
  t = run(a, "/nonexistent", 0.05, &rc);
  CHECK(rc == -1);
  free(t);
  return klab_test_finish("test_compare_bundles");
}
