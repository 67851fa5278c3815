/* addnorm_gemv and addnorm_gemv_silu op descriptors: residual add + RMSNorm fused into the projection that
 * consumes it (kernels/addnorm_gemv/addnorm_gemv.h has the math). Two ops, one set of tensors and shape
 * rules; they differ in y's size ([M, N] vs [M, N/2]) and the silu flag handed to the launchers. */
#include <stdlib.h>
#include "harness/bf16.h"
#include "harness/klab.h"
#include "kernels/add_rmsnorm/add_rmsnorm.h" /* KLAB_ADD_RMSNORM_EPS: Qwen3's rms_norm_eps */
#include "kernels/addnorm_gemv/addnorm_gemv.h"
#include "reference/gemv.h"
#include "reference/rmsnorm.h"
#include "reference/silu_mul.h"
#include "reference/rng.h"

enum { D_M, D_N, D_K };
enum { R, DELTA, NORM_W, W, R_OUT, Y };

static int64_t count_rows(const int64_t *s) { return s[D_M] * s[D_K]; }
static int64_t count_norm_w(const int64_t *s) { return s[D_K]; }
static int64_t count_w(const int64_t *s) { return s[D_N] * s[D_K]; }
static int64_t count_y(const int64_t *s) { return s[D_M] * s[D_N]; }
static int64_t count_y_silu(const int64_t *s) { return s[D_M] * (s[D_N] / 2); }

static int validate_common(const int64_t *s, char *why, size_t n) {
  if (s[D_M] < 1 || s[D_M] > KLAB_ADDNORM_GEMV_MAX_M)
    return snprintf(why, n, "M=%lld: addnorm_gemv is for decode, M = 1..%d", (long long)s[D_M], KLAB_ADDNORM_GEMV_MAX_M), 0;
  if (s[D_N] < 1 || s[D_K] < 1) return snprintf(why, n, "N and K must be >= 1"), 0;
  if (s[D_N] > 2147483647 / 8 || s[D_K] > 2147483647) return snprintf(why, n, "N=%lld or K=%lld too large", (long long)s[D_N], (long long)s[D_K]), 0;
  return 1;
}
static int validate(const int64_t *s, char *why, size_t n) { return validate_common(s, why, n); }
static int validate_silu(const int64_t *s, char *why, size_t n) {
  if (!validate_common(s, why, n)) return 0;
  if (s[D_N] % 2 != 0) return snprintf(why, n, "N=%lld: the fused gate|up weight has 2*I rows (N must be even)", (long long)s[D_N]), 0;
  return 1;
}

/* Composition of the unfused references: s = bf16(r + delta) (one float addition, round-to-nearest-even, as
 * the add_rmsnorm op's gate does); h = bf16(ref_rmsnorm(s)) - the kernels store h in bf16 before the dot
 * products, as the unfused add_rmsnorm -> gemv chain does; y = ref_gemv(h, W) in float64, and for silu
 * ref_silu_mul of the unrounded float projection (the fused kernel rounds once, after silu * up). */
static int reference_impl(const void *const *host, double *const *ref, const int64_t *s, int silu, klab_err *err) {
  const int64_t M = s[D_M], N = s[D_N], K = s[D_K], rows = M * K, I = N / 2;
  float *h = calloc((size_t)rows, sizeof *h), *proj = calloc((size_t)(M * N), sizeof *proj);
  float *act = silu ? calloc((size_t)(M * I), sizeof *act) : NULL;
  if (!h || !proj || (silu && !act)) {
    free(h), free(proj), free(act);
    return klab_fail(err, "addnorm_gemv reference: out of memory (M=%lld N=%lld K=%lld)", (long long)M, (long long)N, (long long)K);
  }
  const uint16_t *rb = host[R], *db = host[DELTA];
  for (int64_t i = 0; i < rows; i++) {
    h[i] = klab_round_bf16(klab_bf16_to_float(rb[i]) + klab_bf16_to_float(db[i]));
    ref[R_OUT][i] = h[i];
  }
  ref_rmsnorm(h, host[NORM_W], h, M, K, KLAB_ADD_RMSNORM_EPS); /* in place is allowed */
  for (int64_t i = 0; i < rows; i++) h[i] = klab_round_bf16(h[i]);
  ref_gemv(h, host[W], proj, M, N, K);
  if (silu) {
    ref_silu_mul(proj, act, M, I);
    for (int64_t i = 0; i < M * I; i++) ref[Y][i] = act[i];
  } else {
    for (int64_t i = 0; i < M * N; i++) ref[Y][i] = proj[i];
  }
  free(h), free(proj), free(act);
  return 0;
}
static int reference(const void *const *host, double *const *ref, const int64_t *s, klab_err *err) { return reference_impl(host, ref, s, 0, err); }
static int reference_silu(const void *const *host, double *const *ref, const int64_t *s, klab_err *err) {
  return reference_impl(host, ref, s, 1, err);
}

/* read W, r, delta, norm_w once; write r_out and y once */
static double bytes_common(const int64_t *s, int64_t y_count) {
  return 2.0 * ((double)count_w(s) + 3.0 * (double)count_rows(s) + (double)count_norm_w(s) + (double)y_count);
}
static double bytes(const int64_t *s) { return bytes_common(s, count_y(s)); }
static double bytes_silu(const int64_t *s) { return bytes_common(s, count_y_silu(s)); }
/* the dot products, plus the add + norm (~5 per element) and silu * up (~5 per output) */
static double flops(const int64_t *s) { return 2.0 * (double)s[D_M] * (double)s[D_N] * (double)s[D_K] + 5.0 * (double)count_rows(s); }
static double flops_silu(const int64_t *s) { return flops(s) + 5.0 * (double)count_y_silu(s); }

static void random_shape_impl(uint64_t *rng, int64_t *s, int silu) {
  static const int64_t Ks[] = {8, 64, 1000, 2560, 4096}; /* 1000: K % 8 != 0, declined by optimized */
  static const int64_t Ns[] = {1, 2, 64, 1000, 6144};
  static const int64_t Ns_even[] = {2, 64, 1000, 6144};
  const uint64_t r = klab_mix64((*rng)++);
  s[D_M] = (int64_t)(r % 16) + 1;
  s[D_K] = Ks[(r >> 8) % (sizeof Ks / sizeof Ks[0])];
  s[D_N] = silu ? Ns_even[(r >> 16) % (sizeof Ns_even / sizeof Ns_even[0])] : Ns[(r >> 16) % (sizeof Ns / sizeof Ns[0])];
}
static void random_shape(uint64_t *rng, int64_t *s) { random_shape_impl(rng, s, 0); }
static void random_shape_silu(uint64_t *rng, int64_t *s) { random_shape_impl(rng, s, 1); }

static int supports_optimized(const int64_t *s, char *why, size_t n) {
  if (s[D_K] % 8 != 0) return snprintf(why, n, "K=%lld: needs K %% 8 == 0 (whole 16-byte rows)", (long long)s[D_K]), 0;
  if (s[D_M] * s[D_K] * 2 > KLAB_ADDNORM_GEMV_MAX_SMEM)
    return snprintf(why, n, "h is M*K*2 = %lld bytes, more than the %d it stages in shared memory", (long long)(s[D_M] * s[D_K] * 2),
                    KLAB_ADDNORM_GEMV_MAX_SMEM), 0;
  return 1;
}

#define RUN(variant, silu)                                                                                                    \
  static int run_##variant##_##silu(const klab_args *a, cudaStream_t st, klab_err *err) {                                    \
    return addnorm_gemv_##variant(a->t[R], a->t[DELTA], a->t[NORM_W], a->t[W], a->t[R_OUT], a->t[Y], a->shape[D_M],         \
                                  a->shape[D_N], a->shape[D_K], silu, KLAB_ADD_RMSNORM_EPS, st, err);                          \
  }
RUN(naive, 0)
RUN(naive, 1)
RUN(optimized, 0)
RUN(optimized, 1)

static const klab_variant naive = {"naive", KLAB_NAIVE, "warp per output, every block recomputes the norms, h rebuilt per element, scalar loads",
                                   NULL, NULL, run_naive_0};
static const klab_variant optimized = {"optimized", KLAB_OPTIMIZED,
                                       "gemv cc_xs streamer: persistent grid, warp per row, 2 stages of W in flight; h normed once per "
                                       "block into shared memory while the first W loads fly",
                                       supports_optimized, NULL, run_optimized_0};
static const klab_variant naive_silu = {"naive", KLAB_NAIVE, "warp per output (gate and up rows), every block recomputes the norms, scalar loads",
                                        NULL, NULL, run_naive_1};
static const klab_variant optimized_silu = {"optimized", KLAB_OPTIMIZED,
                                            "gemv cc_xs streamer, warp per (gate, up) row pair sharing each h load; h normed once per block "
                                            "into shared memory; silu(g)*u epilogue",
                                            supports_optimized, NULL, run_optimized_1};

/* Qwen3 decode (design.md §4): the attention input norm feeds qkv, the final norm feeds lm_head. */
static const klab_shape_preset presets[] = {
    {"qwen3-4b qkv", {1, 6144, 2560}},
    {"qwen3-8b qkv", {1, 6144, 4096}},
    {"qwen3-4b lm_head", {1, 151936, 2560}},
    {"qwen3-4b qkv M=4", {4, 6144, 2560}},
};
/* the post-attention norm feeds the fused gate|up projection */
static const klab_shape_preset presets_silu[] = {
    {"qwen3-4b gate|up", {1, 19456, 2560}},
    {"qwen3-8b gate|up", {1, 24576, 4096}},
    {"qwen3-4b gate|up M=4", {4, 19456, 2560}},
};

#define TENSORS(y_count)                                                                                                      \
  {{"r", KLAB_DT_BF16, KLAB_IN, count_rows, 1.0f, 0.0f, NULL},                                                                \
   {"delta", KLAB_DT_BF16, KLAB_IN, count_rows, 1.0f, 0.0f, NULL},                                                            \
   {"norm_w", KLAB_DT_BF16, KLAB_IN, count_norm_w, 0.1f, 1.0f, NULL},                                                         \
   {"W", KLAB_DT_BF16, KLAB_IN, count_w, 0.02f, 0.0f, NULL},                                                                  \
   {"r_out", KLAB_DT_BF16, KLAB_OUT, count_rows, 0.0f, 0.0f, NULL},                                                           \
   {"y", KLAB_DT_BF16, KLAB_OUT, y_count, 0.0f, 0.0f, NULL}}

const klab_op klab_op_addnorm_gemv = {
    .name = "addnorm_gemv",
    .summary = "s = bf16(r + delta) -> r_out; h = bf16(rmsnorm(s) * norm_w); y[M,N] = h . W[N,K]^T; M = 1..16, bf16, fp32 math",
    .ndims = 3,
    .dim_names = {"M", "N", "K"},
    .ntensors = 6,
    .tensors = TENSORS(count_y),
    .validate = validate,
    .reference = reference,
    .bytes = bytes,
    .flops = flops,
    .random_shape = random_shape,
    .nvariants = 2,
    .variants = {&naive, &optimized},
    .npresets = (int)(sizeof presets / sizeof presets[0]),
    .presets = presets,
};

const klab_op klab_op_addnorm_gemv_silu = {
    .name = "addnorm_gemv_silu",
    .summary = "addnorm_gemv with the fused gate|up weight (N = 2I): y[M,I] = silu(h . Wg^T) * (h . Wu^T); bf16, fp32 math",
    .ndims = 3,
    .dim_names = {"M", "N", "K"},
    .ntensors = 6,
    .tensors = TENSORS(count_y_silu),
    .validate = validate_silu,
    .reference = reference_silu,
    .bytes = bytes_silu,
    .flops = flops_silu,
    .random_shape = random_shape_silu,
    .nvariants = 2,
    .variants = {&naive_silu, &optimized_silu},
    .npresets = (int)(sizeof presets_silu / sizeof presets_silu[0]),
    .presets = presets_silu,
};
