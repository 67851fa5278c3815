/* GPU gate tests: every variant of every registered op on its presets and >= 20 random shapes (awkward
 * sizes included) must PASS or decline; deliberately broken variants must FAIL; a short timing run
 * must produce a CUPTI-timed row. Skips (exit 77) where there is no GPU. */
#include <math.h>
#include <string.h>
#include "harness/run.h"
#include "harness/timing.h"
#include "kernels/gemv/gemv.h"
#include "test_util.h"

static int run_and_expect_pass(const klab_op *op, const int64_t *shape, const klab_run_opts *o) {
  klab_result rows[KLAB_MAX_VARIANTS];
  int n = 0;
  klab_err err = {{0}};
  char s[128];
  klab_format_shape(op, shape, ',', s, sizeof s);
  int rc = klab_run_shape(op, shape, o, NULL, rows, &n, &err);
  CHECK_MSG(rc == 0, "%s %s: rc %d %s", op->name, s, rc, rc < 0 ? err.msg : "");
  int passed = 0;
  for (int i = 0; i < n; i++) {
    CHECK_MSG(rows[i].status == KLAB_PASS || rows[i].status == KLAB_SKIP, "%s %s %s: %s %s", op->name, s, rows[i].variant,
              klab_status_name(rows[i].status), rows[i].note);
    passed += rows[i].status == KLAB_PASS;
  }
  printf("  %-8s %-26s %d/%d variants passed\n", op->name, s, passed, n);
  return passed;
}

static void test_all_ops(void) {
  klab_run_opts o;
  klab_run_opts_default(&o);
  o.time_it = 0;
  o.seeds = 3;
  for (int i = 0; i < klab_op_count(); i++) {
    const klab_op *op = klab_op_at(i);
    for (int p = 0; p < op->npresets; p++) {
      /* The gate's float64 CPU reference of the largest GEMM presets takes minutes; `klab bench` and the
       * sweeps gate those shapes. Here: presets up to 2e11 flops. */
      if (op->flops && op->flops(op->presets[p].d) > 2e11) {
        printf("  %-8s preset '%s' left to klab bench (%.2g flops of CPU reference)\n", op->name, op->presets[p].label,
               op->flops(op->presets[p].d));
        continue;
      }
      run_and_expect_pass(op, op->presets[p].d, &o);
    }
    uint64_t rng = 1234 + (uint64_t)i;
    for (int r = 0; r < 24; r++) {
      int64_t shape[KLAB_MAX_DIMS] = {0};
      op->random_shape(&rng, shape);
      run_and_expect_pass(op, shape, &o);
    }
  }
}

/* ---- deliberately broken gemv variants (M = 1 shapes) ---- */
enum { X, W, Y };
static int run_half(const klab_args *a, cudaStream_t st, klab_err *err) { /* leaves the second half unwritten */
  return gemv_optimized(a->t[X], a->t[W], a->t[Y], 1, a->shape[1] / 2, a->shape[2], st, err);
}
static int run_short_k(const klab_args *a, cudaStream_t st, klab_err *err) { /* ignores the last 8 columns of K */
  return gemv_optimized(a->t[X], a->t[W], a->t[Y], 1, a->shape[1], a->shape[2] - 8, st, err);
}
static int run_nothing(const klab_args *a, cudaStream_t st, klab_err *err) { return 0; } /* writes nothing */
static int run_error(const klab_args *a, cudaStream_t st, klab_err *err) { return klab_fail(err, "planted launch error"); }
static int declines(const int64_t *s, char *why, size_t n) { return snprintf(why, n, "planted: never supported"), 0; }

static const klab_variant v_half = {"half", KLAB_EXTRA, "", NULL, NULL, run_half};
static const klab_variant v_short = {"short_k", KLAB_EXTRA, "", NULL, NULL, run_short_k};
static const klab_variant v_nothing = {"nothing", KLAB_EXTRA, "", NULL, NULL, run_nothing};
static const klab_variant v_error = {"error", KLAB_EXTRA, "", NULL, NULL, run_error};
static const klab_variant v_declines = {"declines", KLAB_EXTRA, "", declines, NULL, run_nothing};

static void test_broken_variants(void) {
  const klab_op *gemv = klab_find_op("gemv");
  klab_op broken = *gemv;
  broken.nvariants = 6;
  broken.variants[0] = gemv->variants[1]; /* optimized: must still pass beside them */
  broken.variants[1] = &v_half;
  broken.variants[2] = &v_short;
  broken.variants[3] = &v_nothing;
  broken.variants[4] = &v_error;
  broken.variants[5] = &v_declines;
  klab_run_opts o;
  klab_run_opts_default(&o);
  o.time_it = 0;
  int64_t shape[KLAB_MAX_DIMS] = {1, 4096, 2560};
  klab_result rows[KLAB_MAX_VARIANTS];
  int n = 0;
  klab_err err;
  int rc = klab_run_shape(&broken, shape, &o, NULL, rows, &n, &err);
  CHECK_MSG(rc == 1, "a failing variant makes the run return 1 (got %d)", rc);
  CHECK(n == 6);
  if (n != 6) return;
  CHECK_MSG(rows[0].status == KLAB_PASS, "optimized: %s", rows[0].note);
  CHECK_MSG(rows[1].status == KLAB_FAIL && strstr(rows[1].note, "NaN"), "half-written output fails as unwritten: %s", rows[1].note);
  CHECK_MSG(rows[2].status == KLAB_FAIL && strstr(rows[2].note, "tolerance"), "wrong values fail: %s", rows[2].note);
  CHECK_MSG(rows[3].status == KLAB_FAIL, "no write fails: %s", rows[3].note);
  CHECK_MSG(rows[4].status == KLAB_ERROR && strstr(rows[4].note, "planted"), "launch error is reported: %s", rows[4].note);
  CHECK_MSG(rows[5].status == KLAB_SKIP && strstr(rows[5].note, "planted"), "decline is SKIP with reason: %s", rows[5].note);
  for (int i = 1; i < 5; i++) CHECK_MSG(isnan(rows[i].median_us), "failures are never timed (%s)", rows[i].variant);
}

static void test_timing(void) {
  char why[256];
  int cupti = klab_cupti_start(why, sizeof why);
  if (!cupti) printf("  note: %s\n", why);
  const klab_op *op = klab_find_op("gemv");
  klab_run_opts o;
  klab_run_opts_default(&o);
  o.seeds = 1;
  o.min_samples = 20;
  o.max_samples = 200;
  o.max_seconds = 1.0;
  int64_t shape[KLAB_MAX_DIMS] = {1, 6144, 2560};
  klab_result rows[KLAB_MAX_VARIANTS];
  int n = 0;
  klab_err err;
  for (int graph = 0; graph < 2; graph++) {
    o.use_graph = graph;
    int rc = klab_run_shape(op, shape, &o, NULL, rows, &n, &err);
    CHECK_MSG(rc == 0, "timed run: %s", rc < 0 ? err.msg : "a variant failed");
    for (int i = 0; i < n; i++) {
      CHECK_MSG(rows[i].status == KLAB_PASS && rows[i].median_us > 0 && rows[i].n >= 20, "%s timed (%s)", rows[i].variant, rows[i].note);
      CHECK(rows[i].p10_us <= rows[i].median_us && rows[i].median_us <= rows[i].p90_us);
      CHECK(strncmp(rows[i].timer, cupti ? "cupti" : "events", 5) == 0);
      /* CUPTI kernel time and event time of the same launches agree within launch overheads. */
      CHECK_MSG(rows[i].event_median_us > 0.5 * rows[i].median_us, "%s events %.2f vs kernel %.2f", rows[i].variant, rows[i].event_median_us, rows[i].median_us);
      CHECK(rows[i].bytes > 0 && rows[i].gbps > 0);
      if (!rows[i].vendor) CHECK(rows[i].speedup_vs_vendor > 0);
      printf("  timing%s %-10s median %.2f us events %.2f us n %d (%s)\n", graph ? "(graph)" : "", rows[i].variant, rows[i].median_us,
             rows[i].event_median_us, rows[i].n, rows[i].timer);
    }
  }
  /* Rounds: every variant is timed once per round and the samples are pooled (30 per round here). */
  o.use_graph = 0;
  o.rounds = 3;
  o.min_samples = o.max_samples = 30;
  int rc = klab_run_shape(op, shape, &o, NULL, rows, &n, &err);
  CHECK_MSG(rc == 0, "run in rounds: %s", rc < 0 ? err.msg : "a variant failed");
  for (int i = 0; i < n; i++)
    CHECK_MSG(rows[i].status == KLAB_PASS && rows[i].n == 90 && rows[i].median_us > 0, "%s: %d samples over 3 rounds of 30 (%s)",
              rows[i].variant, rows[i].n, rows[i].note);
  /* Spaced: a host sync after every launch; the timer says so and every launch is still one sample. */
  o.rounds = 1;
  o.spaced = 1;
  rc = klab_run_shape(op, shape, &o, NULL, rows, &n, &err);
  CHECK_MSG(rc == 0, "spaced run: %s", rc < 0 ? err.msg : "a variant failed");
  for (int i = 0; i < n; i++) {
    CHECK_MSG(rows[i].status == KLAB_PASS && rows[i].n == 30 && rows[i].median_us > 0 && strstr(rows[i].timer, "+spaced"),
              "%s: spaced, %d samples, timer %s (%s)", rows[i].variant, rows[i].n, rows[i].timer, rows[i].note);
    printf("  timing(spaced) %-10s median %.2f us events %.2f us n %d (%s)\n", rows[i].variant, rows[i].median_us,
           rows[i].event_median_us, rows[i].n, rows[i].timer);
  }
}

int main(void) {
  char why[256];
  if (!klab_have_gpu(why, sizeof why)) klab_test_skip("test_gpu_ops", why);
  test_timing(); /* first: CUPTI must be enabled before the first kernel */
  test_broken_variants();
  test_all_ops();
  return klab_test_finish("test_gpu_ops");
}
