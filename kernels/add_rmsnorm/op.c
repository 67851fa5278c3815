/* add_rmsnorm op descriptor: tensors, reference adapter, traffic model, variants, default shapes. */
#include <stdlib.h>
#include "harness/bf16.h"
#include "harness/klab.h"
#include "kernels/add_rmsnorm/add_rmsnorm.h"
#include "reference/rmsnorm.h"
#include "reference/rng.h"

enum { D_T, D_H };
enum { R, X, W, Y };

static int64_t count_rows(const int64_t *s) { return s[D_T] * s[D_H]; }
static int64_t count_w(const int64_t *s) { return s[D_H]; }

static int validate(const int64_t *s, char *why, size_t n) {
  if (s[D_T] < 1 || s[D_H] < 1) return snprintf(why, n, "T and H must be >= 1"), 0;
  if (s[D_T] > 2147483647) return snprintf(why, n, "T=%lld exceeds 2^31-1 rows", (long long)s[D_T]), 0;
  return 1;
}

/* The residual stream is bf16: the expected r is the sum rounded to bf16 (one float addition, then
 * round-to-nearest-even, as the kernels do), and y is ref_rmsnorm (float64) of that ROUNDED residual.
 * reference/add_rmsnorm.c keeps the sum in float32 (the engine's CPU path), so it is not used here. */
static int reference(const void *const *host, double *const *ref, const int64_t *s, klab_err *err) {
  const int64_t n = s[D_T] * s[D_H];
  /* calloc: gcc cannot see that the loop below fills r (n >= 1) and warns on malloc */
  float *r = calloc((size_t)n, sizeof *r), *y = malloc((size_t)n * sizeof *y);
  if (!r || !y) { free(r), free(y); return klab_fail(err, "add_rmsnorm reference: out of memory"); }
  const uint16_t *rb = host[R], *xb = host[X];
  for (int64_t i = 0; i < n; i++) {
    r[i] = klab_round_bf16(klab_bf16_to_float(rb[i]) + klab_bf16_to_float(xb[i]));
    ref[R][i] = r[i];
  }
  ref_rmsnorm(r, host[W], y, s[D_T], s[D_H], KLAB_ADD_RMSNORM_EPS);
  for (int64_t i = 0; i < n; i++) ref[Y][i] = y[i];
  free(r), free(y);
  return 0;
}

/* read r, x, w once; write r, y once */
static double bytes(const int64_t *s) { return 2.0 * (4.0 * (double)s[D_T] * (double)s[D_H] + (double)s[D_H]); }
/* add, square+accumulate, scale by 1/rms, scale by w */
static double flops(const int64_t *s) { return 5.0 * (double)s[D_T] * (double)s[D_H]; }

static void random_shape(uint64_t *rng, int64_t *s) {
  static const int64_t H_awkward[] = {1, 7, 8, 100, 128, 1000, 1024, 2560, 4095, 4096, 5120, 8192, 12345, 65536, 70000};
  const uint64_t r = klab_mix64((*rng)++);
  s[D_T] = (int64_t)(r % 64) + 1;
  if (r % 7 == 0) s[D_T] = 4096 + (int64_t)(r % 333);
  s[D_H] = H_awkward[(r >> 20) % (sizeof H_awkward / sizeof H_awkward[0])];
  if (s[D_H] >= 65536) s[D_T] = (int64_t)(r % 4) + 1;
}

static int run_naive(const klab_args *a, cudaStream_t st, klab_err *err) {
  return add_rmsnorm_naive(a->t[R], a->t[X], a->t[W], a->t[Y], a->shape[D_T], a->shape[D_H], KLAB_ADD_RMSNORM_EPS, st, err);
}
static int run_optimized(const klab_args *a, cudaStream_t st, klab_err *err) {
  return add_rmsnorm_optimized(a->t[R], a->t[X], a->t[W], a->t[Y], a->shape[D_T], a->shape[D_H], KLAB_ADD_RMSNORM_EPS, st, err);
}

static const klab_variant naive = {"naive", KLAB_NAIVE, "block per row, scalar loads, tree reduction, r re-read",
                                   NULL, NULL, run_naive};
static const klab_variant optimized = {"optimized", KLAB_OPTIMIZED,
                                       "rounded residual kept in registers from 16-byte loads, shuffle reduction, "
                                       "each byte moved once",
                                       NULL, NULL, run_optimized};

static const klab_shape_preset presets[] = {
    {"decode qwen3-4b hidden", {1, 2560}},
    {"decode qwen3-8b hidden", {1, 4096}},
    {"prefill 4096 qwen3-4b", {4096, 2560}},
    {"DRAM-sized 16384x8192", {16384, 8192}},
};

const klab_op klab_op_add_rmsnorm = {
    .name = "add_rmsnorm",
    .summary = "r = bf16(r + x); y = r / sqrt(mean(r^2) + 1e-6) * w over rows; bf16 in/out, fp32 math",
    .ndims = 2,
    .dim_names = {"T", "H"},
    .ntensors = 4,
    .tensors = {{"r", KLAB_DT_BF16, KLAB_INOUT, count_rows, 1.0f, 0.0f, NULL},
                {"x", KLAB_DT_BF16, KLAB_IN, count_rows, 1.0f, 0.0f, NULL},
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
