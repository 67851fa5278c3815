/* gemv op descriptor: y[M,N] = x[M,K] . W[N,K]^T (M = 1..16), bf16, fp32 accumulation. */
#include <stdlib.h>
#include "harness/bf16.h"
#include "harness/klab.h"
#include "kernels/gemm/gemm.h"
#include "kernels/gemv/gemv.h"
#include "reference/gemv.h"
#include "reference/rng.h"

enum { D_M, D_N, D_K };
enum { X, W, Y };

static int64_t count_x(const int64_t *s) { return s[D_M] * s[D_K]; }
static int64_t count_w(const int64_t *s) { return s[D_N] * s[D_K]; }
static int64_t count_y(const int64_t *s) { return s[D_M] * s[D_N]; }

static int validate(const int64_t *s, char *why, size_t n) {
  if (s[D_M] < 1 || s[D_M] > KLAB_GEMV_MAX_M) return snprintf(why, n, "M=%lld: gemv is for M = 1..%d (use gemm above)", (long long)s[D_M], KLAB_GEMV_MAX_M), 0;
  if (s[D_N] < 1 || s[D_K] < 1) return snprintf(why, n, "N and K must be >= 1"), 0;
  if (s[D_N] > 2147483647 / 8 || s[D_K] > 2147483647) return snprintf(why, n, "N=%lld or K=%lld too large", (long long)s[D_N], (long long)s[D_K]), 0;
  return 1;
}

static int reference(const void *const *host, double *const *ref, const int64_t *s, klab_err *err) {
  int64_t nx = count_x(s), ny = count_y(s);
  float *x = malloc((size_t)nx * sizeof *x), *y = malloc((size_t)ny * sizeof *y);
  if (!x || !y) { free(x), free(y); return klab_fail(err, "gemv reference: out of memory"); }
  const uint16_t *xb = host[X];
  for (int64_t i = 0; i < nx; i++) x[i] = klab_bf16_to_float(xb[i]);
  ref_gemv(x, host[W], y, s[D_M], s[D_N], s[D_K]);
  for (int64_t i = 0; i < ny; i++) ref[Y][i] = y[i];
  free(x), free(y);
  return 0;
}

static double bytes(const int64_t *s) { return 2.0 * ((double)count_w(s) + (double)count_x(s) + (double)count_y(s)); }
static double flops(const int64_t *s) { return 2.0 * (double)s[D_M] * (double)s[D_N] * (double)s[D_K]; }

static void random_shape(uint64_t *rng, int64_t *s) {
  static const int64_t dims[] = {1, 7, 8, 64, 100, 128, 1000, 1024, 2560, 3001, 4096, 6144, 9728, 12288};
  const int nd = (int)(sizeof dims / sizeof dims[0]);
  uint64_t r = klab_mix64((*rng)++);
  s[D_M] = (int64_t)(r % 16) + 1;
  s[D_N] = dims[(r >> 8) % nd];
  s[D_K] = dims[(r >> 16) % nd];
  if (r % 11 == 0) s[D_N] = 151936, s[D_K] = 1024; /* a vocabulary-sized N */
  if (r % 13 == 0) s[D_K] += 3;                    /* K not a multiple of 8 */
}

static size_t vendor_ws(const int64_t *s) { return KLAB_GEMV_VENDOR_WORKSPACE; }

static int run_naive(const klab_args *a, cudaStream_t st, klab_err *err) {
  return gemv_naive(a->t[X], a->t[W], a->t[Y], a->shape[D_M], a->shape[D_N], a->shape[D_K], st, err);
}
static int run_optimized(const klab_args *a, cudaStream_t st, klab_err *err) {
  return gemv_optimized(a->t[X], a->t[W], a->t[Y], a->shape[D_M], a->shape[D_N], a->shape[D_K], st, err);
}
static int run_cublas(const klab_args *a, cudaStream_t st, klab_err *err) {
  return gemv_cublas(a->t[X], a->t[W], a->t[Y], a->shape[D_M], a->shape[D_N], a->shape[D_K], a->workspace, a->workspace_bytes, st, err);
}
static int run_cublaslt(const klab_args *a, cudaStream_t st, klab_err *err) {
  return gemv_cublaslt(a->t[X], a->t[W], a->t[Y], a->shape[D_M], a->shape[D_N], a->shape[D_K], a->workspace, a->workspace_bytes, st, err);
}

/* The candidates (gemv.h) handle whole 16-byte rows only and their own ranges of M; gemv_optimized's
 * scalar path covers the rest. */
static int supports_vectors(const int64_t *s, int max_m, char *why, size_t n) {
  if (s[D_K] % 8 != 0) return snprintf(why, n, "K=%lld: needs K %% 8 == 0 (whole 16-byte rows)", (long long)s[D_K]), 0;
  if (s[D_M] > max_m) return snprintf(why, n, "M=%lld: this kernel handles M = 1..%d", (long long)s[D_M], max_m), 0;
  return 1;
}
static int supports_x_in_smem(const int64_t *s, char *why, size_t n) {
  if (s[D_M] * s[D_K] * 2 > KLAB_GEMV_XS_MAX_BYTES)
    return snprintf(why, n, "x is M*K*2 = %lld bytes, more than the %d it stages in shared memory", (long long)(s[D_M] * s[D_K] * 2),
                    KLAB_GEMV_XS_MAX_BYTES), 0;
  return 1;
}
static int supports_cc(const int64_t *s, char *why, size_t n) { return supports_vectors(s, KLAB_GEMV_CC_MAX_M, why, n); }
static int supports_cc_xs(const int64_t *s, char *why, size_t n) {
  return supports_vectors(s, KLAB_GEMV_CC_MAX_M, why, n) && supports_x_in_smem(s, why, n);
}
static int supports_cc_xs_b4(const int64_t *s, char *why, size_t n) {
  return supports_vectors(s, KLAB_GEMV_CC_B4_MAX_M, why, n) && supports_x_in_smem(s, why, n);
}
static int supports_mma(const int64_t *s, char *why, size_t n) { return supports_vectors(s, KLAB_GEMV_MAX_M, why, n); }
static int supports_mma_xs(const int64_t *s, char *why, size_t n) {
  if (!supports_vectors(s, KLAB_GEMV_MAX_M, why, n)) return 0;
  if (s[D_M] * (s[D_K] + 8) * 2 > KLAB_GEMV_MMA_XS_MAX_BYTES(s[D_M]))
    return snprintf(why, n, "x is M*(K+8)*2 = %lld bytes (rows padded), more than the %d it stages in shared memory",
                    (long long)(s[D_M] * (s[D_K] + 8) * 2), (int)KLAB_GEMV_MMA_XS_MAX_BYTES(s[D_M])), 0;
  return 1;
}

/* The gemm kernel with the roles swapped (gemm_wgmma_skinny): sm_90a, K % 8 == 0 (TMA row strides). */
static int supports_wgmma(const int64_t *s, char *why, size_t n) { return gemm_optimized_supports(s[D_N], s[D_M], s[D_K], why, n); }
static int supports_wgmma_xs(const int64_t *s, char *why, size_t n) {
  if (s[D_K] > KLAB_GEMM_SKINNY_RESIDENT_MAX_K)
    return snprintf(why, n, "K=%lld: x stays resident in shared memory for K <= %d", (long long)s[D_K], KLAB_GEMM_SKINNY_RESIDENT_MAX_K), 0;
  return supports_wgmma(s, why, n);
}
/* One run function per configuration of gemm_wgmma_skinny (x resident, k split, ring stages; gemm.h). */
#define RUN_SKINNY(name, resident, k_split, max_stages)                                                                   \
  static int run_##name(const klab_args *a, cudaStream_t st, klab_err *err) {                                            \
    return gemm_wgmma_skinny(a->t[X], a->t[W], a->t[Y], a->shape[D_M], a->shape[D_N], a->shape[D_K], resident, k_split, \
                             max_stages, st, err);                                                                       \
  }
RUN_SKINNY(wgmma, 0, 1, 16)
RUN_SKINNY(wgmma_xs, 1, 1, 16)
RUN_SKINNY(wgmma_r10, 0, 1, 10)
RUN_SKINNY(wgmma_k2, 0, 2, 16)

#define RUN_CANDIDATE(fn)                                                                                   \
  static int run_##fn(const klab_args *a, cudaStream_t st, klab_err *err) {                                 \
    return gemv_##fn(a->t[X], a->t[W], a->t[Y], a->shape[D_M], a->shape[D_N], a->shape[D_K], st, err);     \
  }
RUN_CANDIDATE(v3)
RUN_CANDIDATE(cc)
RUN_CANDIDATE(cc_xs)
RUN_CANDIDATE(cc_xs_b4)
RUN_CANDIDATE(mma)
RUN_CANDIDATE(mma_pf)
RUN_CANDIDATE(mma_xs)
static const klab_variant naive = {"naive", KLAB_NAIVE, "thread per output, serial K, uncoalesced W reads", NULL, NULL, run_naive};
static const klab_variant optimized = {"optimized", KLAB_OPTIMIZED,
                                       "dispatch: M=1 mma_pf (N,K <= 4096) or v3; M>=2 on sm_90a wgmma_k2 / wgmma_r10 / wgmma_xs by tiles per SM, else mma_xs (K <= 3072, N > 4096) or mma_pf; scalar kernel for K%8 or unaligned",
                                       NULL, NULL, run_optimized};
static const klab_variant v3 = {"v3", KLAB_EXTRA, "previous optimized: split-K CUDA cores (M=1), x-as-A mma.sync (M>=2)", NULL, NULL, run_v3};
static const klab_variant cc = {"cc", KLAB_EXTRA, "CUDA cores, warp per row, persistent grid, 2 stages of W in flight; x via L1 (M<=4)",
                                supports_cc, NULL, run_cc};
static const klab_variant cc_xs = {"cc_xs", KLAB_EXTRA, "cc with x staged in shared memory (M<=4, M*K*2 <= 48 KiB)", supports_cc_xs, NULL,
                                   run_cc_xs};
static const klab_variant cc_xs_b4 = {"cc_xs_b4", KLAB_EXTRA, "cc_xs, 4 vectors/lane/stage, 4 blocks/SM (M<=2)", supports_cc_xs_b4, NULL,
                                      run_cc_xs_b4};
static const klab_variant mma = {"mma", KLAB_EXTRA, "mma.sync, 16 W rows as A, split-K over 8 warps, persistent grid, 2 stages in flight",
                                 supports_mma, NULL, run_mma};
static const klab_variant mma_pf = {"mma_pf", KLAB_EXTRA, "mma with the L2::256B prefetch hint on W loads", supports_mma, NULL, run_mma_pf};
static const klab_variant mma_xs = {"mma_xs", KLAB_EXTRA, "mma_pf with x staged in shared memory (M*(K+8)*2 <= 40 KiB, M>8: 32 KiB)", supports_mma_xs, NULL,
                                    run_mma_xs};
static const klab_variant wgmma = {"wgmma", KLAB_EXTRA,
                                   "gemm's wgmma+TMA kernel swapped: W as 64-row m64n16k16 operand through a 16-stage TMA ring, y^T stored",
                                   supports_wgmma, NULL, run_wgmma};
static const klab_variant wgmma_xs = {"wgmma_xs", KLAB_EXTRA, "wgmma with x loaded once per block into shared memory (K <= 4096)",
                                      supports_wgmma_xs, NULL, run_wgmma_xs};
static const klab_variant wgmma_r10 = {"wgmma_r10", KLAB_EXTRA, "wgmma with a 10-stage ring (100 KiB in flight per SM instead of 160)",
                                       supports_wgmma, NULL, run_wgmma_r10};
static const klab_variant wgmma_k2 = {"wgmma_k2", KLAB_EXTRA,
                                      "wgmma with each tile's k-blocks split over a 2-CTA cluster, partial tiles added through distributed shared memory",
                                      supports_wgmma, NULL, run_wgmma_k2};
static const klab_variant cublas = {"cublas", KLAB_VENDOR, "cublasGemmEx bf16, fp32 compute", NULL, vendor_ws, run_cublas};
static const klab_variant cublaslt = {"cublaslt", KLAB_VENDOR, "cublasLtMatmul, heuristic's first algorithm", NULL, vendor_ws, run_cublaslt};

/* Qwen3-4B and -8B decode projections (design.md §4), M = 1. */
static const klab_shape_preset presets[] = {
    {"qwen3-4b qkv", {1, 6144, 2560}},      {"qwen3-4b o", {1, 2560, 4096}},
    {"qwen3-4b gate|up", {1, 19456, 2560}}, {"qwen3-4b down", {1, 2560, 9728}},
    {"qwen3-4b lm_head", {1, 151936, 2560}}, {"qwen3-8b qkv", {1, 6144, 4096}},
    {"qwen3-8b o", {1, 4096, 4096}},        {"qwen3-8b gate|up", {1, 24576, 4096}},
    {"qwen3-8b down", {1, 4096, 12288}},    {"qwen3-8b lm_head", {1, 151936, 4096}},
};

const klab_op klab_op_gemv = {
    .name = "gemv",
    .summary = "y[M,N] = x[M,K] . W[N,K]^T, M = 1..16; bf16, fp32 accumulation",
    .ndims = 3,
    .dim_names = {"M", "N", "K"},
    .ntensors = 3,
    .tensors = {{"x", KLAB_DT_BF16, KLAB_IN, count_x, 1.0f, 0.0f, NULL},
                {"W", KLAB_DT_BF16, KLAB_IN, count_w, 0.02f, 0.0f, NULL},
                {"y", KLAB_DT_BF16, KLAB_OUT, count_y, 0.0f, 0.0f, NULL}},
    .validate = validate,
    .reference = reference,
    .bytes = bytes,
    .flops = flops,
    .random_shape = random_shape,
    .nvariants = 15,
    .variants = {&naive, &optimized, &cublas, &cublaslt, &v3, &cc, &cc_xs, &cc_xs_b4, &mma, &mma_pf, &mma_xs, &wgmma, &wgmma_xs, &wgmma_r10, &wgmma_k2},
    .npresets = 10,
    .presets = presets,
};
