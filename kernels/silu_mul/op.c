/* silu_mul op descriptor: out[t,i] = silu(gu[t,i]) * gu[t,I+i] (the MLP activation after the fused gate|up
 * projection); bf16 in/out, fp32 math. */
#include <stdlib.h>
#include "harness/bf16.h"
#include "harness/klab.h"
#include "kernels/silu_mul/silu_mul.h"
#include "reference/rng.h"
#include "reference/silu_mul.h"

enum { D_T, D_I };
enum { GU, OUT };

static int64_t count_gu(const int64_t *s) { return s[D_T] * 2 * s[D_I]; }
static int64_t count_out(const int64_t *s) { return s[D_T] * s[D_I]; }

static int validate(const int64_t *s, char *why, size_t n) {
  if (s[D_T] < 1 || s[D_I] < 1) return snprintf(why, n, "T and I must be >= 1"), 0;
  if (s[D_T] > 2147483647 || s[D_I] > 2147483647)
    return snprintf(why, n, "T=%lld and I=%lld must each be <= 2^31-1", (long long)s[D_T], (long long)s[D_I]), 0;
  return 1;
}

static int reference(const void *const *host, double *const *ref, const int64_t *s, klab_err *err) {
  const int64_t ngu = count_gu(s), nout = count_out(s);
  /* calloc: every element is written below, but the compiler cannot see that through the loop bound */
  float *gu = calloc((size_t)ngu, sizeof *gu), *out = malloc((size_t)nout * sizeof *out);
  if (!gu || !out) {
    free(gu), free(out);
    return klab_fail(err, "silu_mul reference: out of memory (T=%lld I=%lld)", (long long)s[D_T], (long long)s[D_I]);
  }
  const uint16_t *gub = host[GU];
  for (int64_t i = 0; i < ngu; i++) gu[i] = klab_bf16_to_float(gub[i]);
  ref_silu_mul(gu, out, s[D_T], s[D_I]);
  for (int64_t i = 0; i < nout; i++) ref[OUT][i] = out[i];
  free(gu), free(out);
  return 0;
}

/* Minimal traffic: gate and up read once (4 bytes per output), out written once (2 bytes). */
static double bytes(const int64_t *s) { return 6.0 * (double)s[D_T] * (double)s[D_I]; }
/* Per output: negate, exp, add, divide, multiply (exp counted as one). */
static double flops(const int64_t *s) { return 5.0 * (double)s[D_T] * (double)s[D_I]; }

static void random_shape(uint64_t *rng, int64_t *s) {
  static const int64_t I_awkward[] = {1, 7, 8, 100, 128, 1000, 1024, 3072, 4095, 6144, 9728, 12345, 17408, 25600};
  uint64_t r = klab_mix64((*rng)++);
  s[D_T] = (int64_t)(r % 64) + 1;
  if (r % 7 == 0) s[D_T] = 4096 + (int64_t)(r % 333);
  s[D_I] = I_awkward[(r >> 20) % (sizeof I_awkward / sizeof I_awkward[0])];
}

static int run_naive(const klab_args *a, cudaStream_t st, klab_err *err) {
  return silu_mul_naive(a->t[GU], a->t[OUT], a->shape[D_T], a->shape[D_I], st, err);
}
static int run_optimized(const klab_args *a, cudaStream_t st, klab_err *err) {
  return silu_mul_optimized(a->t[GU], a->t[OUT], a->shape[D_T], a->shape[D_I], st, err);
}

static const klab_variant naive = {"naive", KLAB_NAIVE, "thread per element, flat index, scalar bf16", NULL, NULL, run_naive};
static const klab_variant optimized = {"optimized", KLAB_OPTIMIZED,
                                       "16-byte loads/stores, 2 rows per thread, 2-D grid (no index division)", NULL, NULL,
                                       run_optimized};

static const klab_shape_preset presets[] = {
    {"decode qwen3-4b mlp act", {1, 9728}},
    {"decode qwen3-8b mlp act", {1, 12288}},
    {"prefill 4096 qwen3-4b", {4096, 9728}},
    {"prefill 4096 qwen3-32b", {4096, 25600}},
};

const klab_op klab_op_silu_mul = {
    .name = "silu_mul",
    .summary = "out[t,i] = silu(gu[t,i]) * gu[t,I+i] over the fused gate|up output; bf16 in/out, fp32 math",
    .ndims = 2,
    .dim_names = {"T", "I"},
    .ntensors = 2,
    .tensors = {{"gu", KLAB_DT_BF16, KLAB_IN, count_gu, 1.0f, 0.0f, NULL},
                {"out", KLAB_DT_BF16, KLAB_OUT, count_out, 0.0f, 0.0f, NULL}},
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
