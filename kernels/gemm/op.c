/* gemm op descriptor: C[M,N] = A[M,K] . W[N,K]^T (prefill projections), bf16, fp32 accumulation. */
#include <stdlib.h>
#include "harness/klab.h"
#include "kernels/gemm/gemm.h"
#include "kernels/gemv/gemv.h"
#include "reference/gemm.h"
#include "reference/rng.h"

enum { D_M, D_N, D_K };
enum { A, W, C };

static int64_t count_a(const int64_t *s) { return s[D_M] * s[D_K]; }
static int64_t count_w(const int64_t *s) { return s[D_N] * s[D_K]; }
static int64_t count_c(const int64_t *s) { return s[D_M] * s[D_N]; }

static int validate(const int64_t *s, char *why, size_t n) {
  if (s[D_M] < 1 || s[D_N] < 1 || s[D_K] < 1) return snprintf(why, n, "M, N and K must be >= 1"), 0;
  /* cuBLAS takes int dimensions and leading dimensions */
  if (s[D_M] > 2147483647 || s[D_N] > 2147483647 || s[D_K] > 2147483647)
    return snprintf(why, n, "M=%lld N=%lld K=%lld: each must fit in int32", (long long)s[D_M], (long long)s[D_N], (long long)s[D_K]), 0;
  return 1;
}

static int reference(const void *const *host, double *const *ref, const int64_t *s, klab_err *err) {
  if (ref_gemm_bf16(host[A], host[W], ref[C], s[D_M], s[D_N], s[D_K]))
    return klab_fail(err, "gemm reference M=%lld N=%lld K=%lld: out of memory", (long long)s[D_M], (long long)s[D_N], (long long)s[D_K]);
  return 0;
}

static double bytes(const int64_t *s) { return 2.0 * ((double)count_a(s) + (double)count_w(s) + (double)count_c(s)); }
static double flops(const int64_t *s) { return 2.0 * (double)s[D_M] * (double)s[D_N] * (double)s[D_K]; }

/* Awkward sizes: 1, primes and near-multiples of the tiles (128, 256) and of the k-block (64); K mostly a
 * multiple of 8 (the tensor-core variants decline the rest) but not always. M*N*K stays <= 2e9 so the
 * CPU reference takes well under a second. */
static void random_shape(uint64_t *rng, int64_t *s) {
  static const int64_t ms[] = {1, 7, 64, 100, 129, 300, 1000, 2048, 2568};
  static const int64_t ns[] = {1, 7, 8, 64, 100, 129, 136, 1000, 2048, 2568};
  static const int64_t ks[] = {8, 64, 72, 128, 136, 520, 1000, 2048, 2568, 4104, 7, 129};
  for (int tries = 0; tries < 32; tries++) {
    uint64_t r = klab_mix64((*rng)++);
    s[D_M] = ms[r % (sizeof ms / sizeof ms[0])];
    s[D_N] = ns[(r >> 16) % (sizeof ns / sizeof ns[0])];
    s[D_K] = ks[(r >> 32) % (sizeof ks / sizeof ks[0])];
    if ((double)s[D_M] * (double)s[D_N] * (double)s[D_K] <= 2e9) return;
  }
  s[D_M] = 129, s[D_N] = 2568, s[D_K] = 1000; /* not reached in practice; a valid, awkward fallback */
}

static int supports_mma(const int64_t *s, char *why, size_t n) { return gemm_mma_supports(s[D_M], s[D_N], s[D_K], why, n); }
static int supports_optimized(const int64_t *s, char *why, size_t n) {
  return gemm_optimized_supports(s[D_M], s[D_N], s[D_K], why, n);
}
static size_t vendor_ws(const int64_t *s) { return gemm_workspace_bytes(s[D_M], s[D_N], s[D_K]); }

#define GEMM_ARGS(a) (a)->t[A], (a)->t[W], (a)->t[C], (a)->shape[D_M], (a)->shape[D_N], (a)->shape[D_K], (a)->workspace, (a)->workspace_bytes
static int run_naive(const klab_args *a, cudaStream_t st, klab_err *err) { return gemm_naive(GEMM_ARGS(a), st, err); }
static int run_mma(const klab_args *a, cudaStream_t st, klab_err *err) { return gemm_mma(GEMM_ARGS(a), st, err); }
static int run_optimized(const klab_args *a, cudaStream_t st, klab_err *err) { return gemm_optimized(GEMM_ARGS(a), st, err); }
static int run_wgmma_mc2(const klab_args *a, cudaStream_t st, klab_err *err) { return gemm_wgmma_mc2(GEMM_ARGS(a), st, err); }
#define WGMMA_WIDTH_ARGS(a) (a)->t[A], (a)->t[W], (a)->t[C], (a)->shape[D_M], (a)->shape[D_N], (a)->shape[D_K]
static int run_wgmma_n80(const klab_args *a, cudaStream_t st, klab_err *err) {
  return gemm_wgmma_tile(WGMMA_WIDTH_ARGS(a), 128, 80, a->workspace, a->workspace_bytes, st, err);
}
static int run_wgmma_n128(const klab_args *a, cudaStream_t st, klab_err *err) {
  return gemm_wgmma_tile(WGMMA_WIDTH_ARGS(a), 128, 128, a->workspace, a->workspace_bytes, st, err);
}
static int run_wgmma_n160(const klab_args *a, cudaStream_t st, klab_err *err) {
  return gemm_wgmma_tile(WGMMA_WIDTH_ARGS(a), 128, 160, a->workspace, a->workspace_bytes, st, err);
}
static int run_wgmma_n192(const klab_args *a, cudaStream_t st, klab_err *err) {
  return gemm_wgmma_tile(WGMMA_WIDTH_ARGS(a), 128, 192, a->workspace, a->workspace_bytes, st, err);
}
static int run_wgmma_64x160(const klab_args *a, cudaStream_t st, klab_err *err) {
  return gemm_wgmma_tile(WGMMA_WIDTH_ARGS(a), 64, 160, a->workspace, a->workspace_bytes, st, err);
}
static int run_cublas(const klab_args *a, cudaStream_t st, klab_err *err) { return gemv_cublas(GEMM_ARGS(a), st, err); }
static int run_cublaslt(const klab_args *a, cudaStream_t st, klab_err *err) { return gemv_cublaslt(GEMM_ARGS(a), st, err); }

static const klab_variant naive = {"naive", KLAB_NAIVE, "64x64 smem tiles, 4x4 outputs per thread, CUDA-core fp32 FMA", NULL, NULL, run_naive};
static const klab_variant mma = {"mma", KLAB_OPTIMIZED,
                                 "mma.sync m16n8k16 + ldmatrix, 128x128x32 tiles, 8 warps, 4-stage cp.async ring",
                                 supports_mma, NULL, run_mma};
static const klab_variant optimized = {"optimized", KLAB_OPTIMIZED,
                                       "sm_90a: TMA ring, producer + 2 consumer warpgroups, wgmma m64nBNk16 (BN 80..256 by waves; 64x160 tiles at small M), TMA-store epilogue, persistent",
                                       supports_optimized, NULL, run_optimized};
/* EXTRA: the same kernel with more tile widths, to compare against `optimized` in one benchmark. */
static const klab_variant wgmma_n80 = {"wgmma_n80", KLAB_EXTRA, "optimized's kernel at a fixed 128x80 tile, 7 stages",
                                       supports_optimized, NULL, run_wgmma_n80};
static const klab_variant wgmma_n128 = {"wgmma_n128", KLAB_EXTRA, "optimized's kernel at a fixed 128x128 tile, 6 stages",
                                        supports_optimized, NULL, run_wgmma_n128};
static const klab_variant wgmma_n160 = {"wgmma_n160", KLAB_EXTRA, "optimized's kernel at a fixed 128x160 tile, 5 stages",
                                        supports_optimized, NULL, run_wgmma_n160};
static const klab_variant wgmma_n192 = {"wgmma_n192", KLAB_EXTRA, "optimized's kernel at a fixed 128x192 tile, 5 stages",
                                        supports_optimized, NULL, run_wgmma_n192};
static const klab_variant wgmma_64x160 = {"wgmma_64x160", KLAB_EXTRA,
                                          "optimized's kernel at 64x160 tiles: one consumer warpgroup (m64n160k16), 7 stages",
                                          supports_optimized, NULL, run_wgmma_64x160};
static const klab_variant wgmma_mc2 = {"wgmma_mc2", KLAB_EXTRA,
                                       "optimized's kernel and widths in 2-CTA clusters: vertical tile pairs, W tile TMA-multicast",
                                       supports_optimized, NULL, run_wgmma_mc2};
static const klab_variant cublas = {"cublas", KLAB_VENDOR, "cublasGemmEx bf16, fp32 compute", NULL, vendor_ws, run_cublas};
static const klab_variant cublaslt = {"cublaslt", KLAB_VENDOR, "cublasLtMatmul, heuristic's first algorithm", NULL, vendor_ws, run_cublaslt};

/* Square sizes, then the Qwen3-4B and -8B prefill projections (design.md §4; klab_qwen3_projection gives
 * the same N, K) at M = 512, 2048, 4096 prompt tokens. */
#define PROJ_4B(m)                                                                                        \
  {"qwen3-4b qkv M=" #m, {m, 6144, 2560}}, {"qwen3-4b o M=" #m, {m, 2560, 4096}},                         \
  {"qwen3-4b gate|up M=" #m, {m, 19456, 2560}}, {"qwen3-4b down M=" #m, {m, 2560, 9728}},                 \
  {"qwen3-4b lm_head M=" #m, {m, 151936, 2560}}
#define PROJ_8B(m)                                                                                        \
  {"qwen3-8b qkv M=" #m, {m, 6144, 4096}}, {"qwen3-8b o M=" #m, {m, 4096, 4096}},                         \
  {"qwen3-8b gate|up M=" #m, {m, 24576, 4096}}, {"qwen3-8b down M=" #m, {m, 4096, 12288}},                \
  {"qwen3-8b lm_head M=" #m, {m, 151936, 4096}}
static const klab_shape_preset presets[] = {
    {"square 512", {512, 512, 512}},    {"square 1024", {1024, 1024, 1024}}, {"square 2048", {2048, 2048, 2048}},
    {"square 4096", {4096, 4096, 4096}}, {"square 8192", {8192, 8192, 8192}},
    PROJ_4B(512), PROJ_8B(512), PROJ_4B(2048), PROJ_8B(2048), PROJ_4B(4096), PROJ_8B(4096),
};

const klab_op klab_op_gemm = {
    .name = "gemm",
    .summary = "C[M,N] = A[M,K] . W[N,K]^T (prefill projections); bf16, fp32 accumulation",
    .ndims = 3,
    .dim_names = {"M", "N", "K"},
    .ntensors = 3,
    .tensors = {{"A", KLAB_DT_BF16, KLAB_IN, count_a, 1.0f, 0.0f, NULL},
                {"W", KLAB_DT_BF16, KLAB_IN, count_w, 0.02f, 0.0f, NULL},
                {"C", KLAB_DT_BF16, KLAB_OUT, count_c, 0.0f, 0.0f, NULL}},
    .validate = validate,
    .reference = reference,
    .bytes = bytes,
    .flops = flops,
    .random_shape = random_shape,
    .nvariants = 11,
    .variants = {&naive, &mma, &optimized, &cublas, &cublaslt, &wgmma_mc2, &wgmma_n80, &wgmma_n128, &wgmma_n160, &wgmma_n192,
                 &wgmma_64x160},
    .npresets = (int)(sizeof presets / sizeof presets[0]),
    .presets = presets,
};
