/* rmsnorm op descriptor: tensors, reference adapter, traffic model, variants, default shapes. */
#include <stdlib.h>
#include "harness/bf16.h"
#include "harness/klab.h"
#include "kernels/rmsnorm/rmsnorm.h"
#include "reference/rmsnorm.h"
#include "reference/rng.h"

enum { D_T, D_H };
enum { X, W, Y };

static int64_t count_rows(const int64_t *s) { return s[D_T] * s[D_H]; }
static int64_t count_w(const int64_t *s) { return s[D_H]; }

static int validate(const int64_t *s, char *why, size_t n) {
  if (s[D_T] < 1 || s[D_H] < 1) return snprintf(why, n, "T and H must be >= 1"), 0;
  if (s[D_T] > 2147483647) return snprintf(why, n, "T=%lld exceeds 2^31-1 rows", (long long)s[D_T]), 0;
  return 1;
}

static int reference(const void *const *host, double *const *ref, const int64_t *s, klab_err *err) {
  int64_t n = s[D_T] * s[D_H];
  float *x = calloc((size_t)n, sizeof *x), *y = calloc((size_t)n, sizeof *y);
  if (!x || !y) { free(x), free(y); return klab_fail(err, "rmsnorm reference: out of memory"); }
  const uint16_t *xb = host[X];
  for (int64_t i = 0; i < n; i++) x[i] = klab_bf16_to_float(xb[i]);
  ref_rmsnorm(x, host[W], y, s[D_T], s[D_H], KLAB_RMSNORM_EPS);
  for (int64_t i = 0; i < n; i++) ref[Y][i] = y[i];
  free(x), free(y);
  return 0;
}

static double bytes(const int64_t *s) { return 2.0 * (2.0 * (double)s[D_T] * (double)s[D_H] + (double)s[D_H]); }
static double flops(const int64_t *s) { return 4.0 * (double)s[D_T] * (double)s[D_H]; } /* square+add, scale, weight */

static void random_shape(uint64_t *rng, int64_t *s) {
  static const int64_t H_awkward[] = {1, 7, 100, 128, 1000, 1024, 2560, 4095, 4096, 5120, 8192, 12345, 65536, 70000};
  uint64_t r = klab_mix64((*rng)++);
  s[D_T] = (int64_t)(r % 64) + 1;
  if (r % 7 == 0) s[D_T] = 4096 + (int64_t)(r % 333);
  s[D_H] = H_awkward[(r >> 20) % (sizeof H_awkward / sizeof H_awkward[0])];
  if (s[D_H] >= 65536) s[D_T] = (int64_t)(r % 4) + 1;
}

static int run_naive(const klab_args *a, cudaStream_t st, klab_err *err) {
  return rmsnorm_naive(a->t[X], a->t[W], a->t[Y], a->shape[D_T], a->shape[D_H], KLAB_RMSNORM_EPS, st, err);
}
static int run_optimized(const klab_args *a, cudaStream_t st, klab_err *err) {
  return rmsnorm_optimized(a->t[X], a->t[W], a->t[Y], a->shape[D_T], a->shape[D_H], KLAB_RMSNORM_EPS, st, err);
}

static const klab_variant naive = {"naive", KLAB_NAIVE, "block per row, scalar loads, x read twice", NULL, NULL, run_naive};
static const klab_variant optimized = {"optimized", KLAB_OPTIMIZED,
                                       "row in registers via 16-byte loads, shuffle reduction, one read + one write",
                                       NULL, NULL, run_optimized};

static const klab_shape_preset presets[] = {
    {"decode qwen3-4b hidden", {1, 2560}},
    {"decode qwen3-8b hidden", {1, 4096}},
    {"prefill 4096 qwen3-4b", {4096, 2560}},
    {"DRAM-sized 16384x8192", {16384, 8192}},
};

const klab_op klab_op_rmsnorm = {
    .name = "rmsnorm",
    .summary = "y = x / sqrt(mean(x^2) + 1e-6) * w over rows; bf16 in/out, fp32 math",
    .ndims = 2,
    .dim_names = {"T", "H"},
    .ntensors = 3,
    .tensors = {{"x", KLAB_DT_BF16, KLAB_IN, count_rows, 1.0f, 0.0f, NULL},
                {"w", KLAB_DT_BF16, KLAB_IN, count_w, 0.1f, 1.0f, NULL},
                {"y", KLAB_DT_BF16, KLAB_OUT, count_rows, 0.0f, 0.0f, NULL}},
    .validate = validate,
    .reference = reference,
    .bytes = bytes,
    .flops = flops,
    .random_shape = random_shape,
    .nvariants = 2,
    .variants = {&naive, &optimized},
    .npresets = 4,
    .presets = presets,
};
