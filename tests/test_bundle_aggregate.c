/* kernels.csv -> winners.json and aggregate.md on the fixture bundles in tests/data/bundles. */
#include <math.h>
#include <string.h>
#include <stdlib.h>
#include <cjson/cJSON.h>
#include "test_util.h"
#include "harness/bundle.h"

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  rewind(f);
  char *b = malloc((size_t)n + 1);
  if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
  if (b) b[n] = 0;
  fclose(f);
  return b;
}

static const klab_winner *winner(const klab_winner *w, int n, const char *op, const char *shape) {
  for (int i = 0; i < n; i++)
    if (!strcmp(w[i].op, op) && !strcmp(w[i].shape, shape)) return &w[i];
  return NULL;
}

int main(void) {
  char dir[600], tmp[600], path[700];
  snprintf(dir, sizeof dir, "%s/tests/data/bundles/h100-old", KLAB_SOURCE_DIR);
  snprintf(tmp, sizeof tmp, "%s/test_bundle_aggregate_tmp", KLAB_BINARY_DIR);
  CHECK(klab_mkdir_p(tmp) == 0);
  klab_bundle b;
  klab_err err = {{0}};
  int rc = klab_bundle_load(dir, &b, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc) return klab_test_finish("test_bundle_aggregate");
  /* 23 records, one (gemv optimized M=1;N=2560;K=4096) written twice: the later PASS replaces the ERROR */
  CHECK_MSG(b.nrows == 22, "rows %d", b.nrows);
  int errors = 0;
  for (int i = 0; i < b.nrows; i++)
    if (!strcmp(b.rows[i].variant, "optimized") && !strcmp(b.rows[i].shape, "M=1;N=2560;K=4096")) {
      CHECK(b.rows[i].status == KLAB_PASS);
      CHECK_NEAR(b.rows[i].median_us, 8.2, 1e-9);
    } else if (b.rows[i].status == KLAB_ERROR) errors++;
  CHECK(errors == 1);
  CHECK(!strcmp(b.arch, "sm_90"));
  CHECK(!strcmp(b.gpu, "NVIDIA H100 80GB HBM3"));
  CHECK(!strcmp(b.name, "fixture"));
  CHECK_NEAR(b.peak_bw_gbps, 3100, 1e-9);
  CHECK_NEAR(b.peak_tflops, 798, 1e-9);
  CHECK(!strcmp(klab_bundle_label(&b, "gemv", "M=1;N=151936;K=2560"), "qwen3-4b lm_head"));
  CHECK(!strcmp(klab_bundle_label(&b, "gemv", "M=3;N=1;K=1"), ""));

  klab_winner *w;
  int nw;
  CHECK(klab_winners_compute(&b, &w, &nw, &err) == 0);
  CHECK_MSG(nw == 7, "winners %d", nw); /* 8 shapes, one with no timed PASS */
  struct { const char *op, *shape, *variant, *runner; double med, margin; int passed, vendor; } want[] = {
      {"rmsnorm", "T=1;H=2560", "optimized", "naive", 2.6, 4.1 / 2.6 - 1, 2, 0},
      {"rmsnorm", "T=16384;H=8192", "optimized", "naive", 180, 420.0 / 180 - 1, 2, 0},
      {"gemv", "M=1;N=6144;K=2560", "optimized", "cublas", 12.0, 15.8 / 12.0 - 1, 3, 0},
      {"gemv", "M=1;N=2560;K=4096", "optimized", "cublas", 8.2, 18.7 / 8.2 - 1, 3, 0},
      {"gemv", "M=1;N=19456;K=2560", "optimized", "cublas", 34.0, 39.5 / 34.0 - 1, 2, 0},
      {"gemv", "M=1;N=151936;K=2560", "optimized", "cublas", 260, 272.0 / 260 - 1, 3, 0},
      {"gemv", "M=8;N=2560;K=9728", "cublas", "naive", 20, 60.0 / 20 - 1, 2, 1}, /* optimized FAILed: never chosen */
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    const klab_winner *x = winner(w, nw, want[i].op, want[i].shape);
    CHECK_MSG(x != NULL, "no winner for %s %s", want[i].op, want[i].shape);
    if (!x) continue;
    CHECK_MSG(!strcmp(x->variant, want[i].variant), "%s %s: winner %s", want[i].op, want[i].shape, x->variant);
    CHECK_MSG(!strcmp(x->runner_up, want[i].runner), "%s %s: runner-up %s", want[i].op, want[i].shape, x->runner_up);
    CHECK_NEAR(x->median_us, want[i].med, 1e-9);
    CHECK_NEAR(x->margin, want[i].margin, 1e-9);
    CHECK(x->passed == want[i].passed);
    CHECK(x->vendor == want[i].vendor);
  }
  CHECK(winner(w, nw, "gemv", "M=2;N=6144;K=2560") == NULL);
  free(w);

  /* winners.json */
  snprintf(path, sizeof path, "%s/winners.json", tmp);
  CHECK(klab_winners_write(&b, path, &err) == 0);
  char *text = slurp(path);
  cJSON *j = text ? cJSON_Parse(text) : NULL;
  CHECK(j != NULL);
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "archs"), "sm_90");
  CHECK(a != NULL);
  const cJSON *gemv = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(a, "ops"), "gemv");
  CHECK(cJSON_GetArraySize(gemv) == 5);
  const cJSON *e0 = cJSON_GetArrayItem(gemv, 0);
  CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(e0, "variant")->valuestring, "optimized"));
  CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(e0, "label")->valuestring, "qwen3-4b qkv"));
  CHECK(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e0, "dims"), "N")->valuedouble == 6144);
  CHECK_NEAR(cJSON_GetObjectItemCaseSensitive(e0, "margin")->valuedouble, 0.3167, 1e-4);
  const cJSON *nw_ = cJSON_GetObjectItemCaseSensitive(a, "no_winner");
  CHECK(cJSON_GetArraySize(nw_) == 1);
  CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(nw_, 0), "shape")->valuestring, "M=2;N=6144;K=2560"));
  CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(a, "gpu")->valuestring, "NVIDIA H100 80GB HBM3"));
  cJSON_Delete(j);
  free(text);

  /* aggregate.md */
  snprintf(path, sizeof path, "%s/aggregate.md", tmp);
  CHECK(klab_aggregate_write(&b, path, &err) == 0);
  text = slurp(path);
  CHECK(text != NULL);
  if (text) {
    CHECK(strstr(text, "## rmsnorm") && strstr(text, "## gemv"));
    CHECK(strstr(text, "GPU: NVIDIA H100 80GB HBM3 (sm_90)") != NULL);
    CHECK(strstr(text, "Reproduce: `./build/klab sweep") != NULL);
    CHECK(strstr(text, "Rows: 22 (PASS 17, FAIL 2, SKIP 2, ERROR 1)") != NULL);
    CHECK(strstr(text, "| M=1;N=6144;K=2560 | qwen3-4b qkv | 40.00 | **12.00** | 15.80 | optimized | 31.7% |") != NULL);
    CHECK(strstr(text, "| M=8;N=2560;K=9728 | qwen3-4b down | 60.00 | FAIL | **20.00** | cublas | 200.0% |") != NULL);
    /* details: GB/s, % roofline, vs vendor, vs naive for the qkv optimized row */
    CHECK(strstr(text, "| M=1;N=6144;K=2560 | optimized | PASS | 12.00 | 11.76-12.36 | 200 | 2623 | 2.62 | 84.6 | - | 1.32x | 3.33x |") != NULL);
    /* the failure is listed with its errors and note */
    CHECK(strstr(text, "| gemv | M=8;N=2560;K=9728 | optimized | FAIL | 2.500e-01 | 3.200e-01 | 9.100e-02 | 20261122 | max rel err 3.2e-01") != NULL);
    CHECK(strstr(text, "launch failed: fixture, error text") != NULL);
    CHECK(strstr(text, "declined: fixture: naive skips this shape") != NULL);
    /* geometric mean of optimized vs vendor over its 4 passing shapes (the CSV's rounded speedups) */
    const char *gm = strstr(text, "| optimized | ");
    const char *geo_sec = strstr(text, "### Geometric-mean speedups");
    const char *gemv_sec = strstr(text, "## gemv");
    if (gemv_sec) geo_sec = strstr(gemv_sec, "### Geometric-mean speedups");
    gm = geo_sec ? strstr(geo_sec, "| optimized | ") : NULL;
    double g = 0;
    int ns = 0;
    CHECK(gm && sscanf(gm, "| optimized | %lfx | %d |", &g, &ns) == 2);
    double want_g = exp((log(1.317) + log(2.280) + log(1.162) + log(1.046)) / 4);
    CHECK_NEAR(g, want_g, 1.5e-3);
    CHECK(ns == 4);
    free(text);
  }
  klab_bundle_free(&b);

  /* a bundle without peaks (env.json peaks null, no % columns) */
  snprintf(dir, sizeof dir, "%s/tests/data/bundles/h100-new", KLAB_SOURCE_DIR);
  CHECK(klab_bundle_load(dir, &b, &err) == 0);
  CHECK(!(b.peak_bw_gbps > 0));
  CHECK(strstr(b.peaks_source, "none") != NULL);
  CHECK(isnan(klab_row_pct_roofline(&b, &b.rows[0])));
  snprintf(path, sizeof path, "%s/aggregate-new.md", tmp);
  CHECK(klab_aggregate_write(&b, path, &err) == 0);
  text = slurp(path);
  CHECK(text && strstr(text, "Peaks: unknown"));
  free(text);
  klab_bundle_free(&b);

  /* errors: missing bundle, broken CSV */
  CHECK(klab_bundle_load("/nonexistent/bundle", &b, &err) == -1 && strstr(err.msg, "kernels.csv"));
  snprintf(path, sizeof path, "%s/broken.csv", tmp);
  FILE *f = fopen(path, "w");
  if (f) {
    fputs("op,variant\ngemv,naive\n", f);
    fclose(f);
  }
  CHECK(klab_bundle_load(path, &b, &err) == -1 && strstr(err.msg, "broken.csv"));
  return klab_test_finish("test_bundle_aggregate");
}
