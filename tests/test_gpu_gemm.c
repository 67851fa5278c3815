/* gemm beyond what test_gpu_ops covers. On the CPU (always): the blocked float64 reference against a
 * plain triple loop. On a GPU: shapes chosen to drive each code path of the tensor-core kernels (both
 * wgmma tile widths (80 to 256), persistent CTAs wrapping the stage ring across tiles, M/N/K tails, odd N, K < 64),
 * the launchers' refusals (K % 8, misaligned pointers, bad dims: an error, never a launch), and
 * gemm_vendor (times cuBLAS vs cuBLASLt once per shape, then reuses the choice) through the gate.
 * Without a GPU the GPU part skips (exit 77) after the CPU part has run. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "harness/bf16.h"
#include "harness/run.h"
#include "kernels/gemm/gemm.h"
#include "reference/gemm.h"
#include "reference/rng.h"
#include "test_util.h"

/* ---- CPU: ref_gemm_bf16 == the definition (float64 sums; FMA vs mul+add differ in the last bits) ---- */
static void test_reference(void) {
  static const int64_t shapes[][3] = {{1, 1, 1}, {1, 3, 7}, {7, 129, 100}, {67, 13, 600}, {130, 70, 1000}, {64, 64, 64}, {5, 200, 129}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    const int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
    uint16_t *A = malloc((size_t)(M * K) * 2), *W = malloc((size_t)(N * K) * 2);
    double *C = malloc((size_t)(M * N) * sizeof *C);
    if (!A || !W || !C) { CHECK_MSG(0, "out of memory"); free(A), free(W), free(C); return; }
    for (int64_t i = 0; i < M * K; i++) A[i] = klab_float_to_bf16(2.0f * klab_rand_uniform_f(11 + (uint64_t)s, (uint64_t)i) - 1.0f);
    for (int64_t i = 0; i < N * K; i++) W[i] = klab_float_to_bf16(0.04f * klab_rand_uniform_f(99 + (uint64_t)s, (uint64_t)i) - 0.02f);
    CHECK(ref_gemm_bf16(A, W, C, M, N, K) == 0);
    double worst = 0.0;
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = 0; n < N; n++) {
        double exact = 0.0, scale = 0.0;
        for (int64_t k = 0; k < K; k++) {
          const double p = (double)klab_bf16_to_float(A[m * K + k]) * (double)klab_bf16_to_float(W[n * K + k]);
          exact += p, scale += fabs(p);
        }
        const double e = fabs(C[m * N + n] - exact) / (scale > 0 ? scale : 1.0);
        if (e > worst) worst = e;
      }
    CHECK_MSG(worst < 1e-13, "ref_gemm_bf16 M=%lld N=%lld K=%lld: error %.3g of sum|a*w|", (long long)M, (long long)N, (long long)K, worst);
    free(A), free(W), free(C);
  }
}

/* ---- GPU: every variant through the gate at path-driving shapes ---- */
static int gate_all(const klab_op *op, const int64_t *shape, int seeds) {
  klab_run_opts o;
  klab_run_opts_default(&o);
  o.time_it = 0;
  o.seeds = seeds;
  klab_result rows[KLAB_MAX_VARIANTS];
  int n = 0, passed = 0;
  klab_err err = {{0}};
  char s[128];
  klab_format_shape(op, shape, ',', s, sizeof s);
  int rc = klab_run_shape(op, shape, &o, NULL, rows, &n, &err);
  CHECK_MSG(rc == 0, "%s %s: rc %d %s", op->name, s, rc, rc < 0 ? err.msg : "");
  for (int i = 0; i < n; i++) {
    CHECK_MSG(rows[i].status == KLAB_PASS || rows[i].status == KLAB_SKIP, "%s %s %s: %s %s", op->name, s, rows[i].variant,
              klab_status_name(rows[i].status), rows[i].note);
    passed += rows[i].status == KLAB_PASS;
  }
  printf("  %-6s %-26s %d/%d variants passed\n", op->name, s, passed, n);
  return passed;
}

static void test_paths(void) {
  const klab_op *op = klab_find_op("gemm");
  CHECK_MSG(op != NULL, "gemm is registered");
  if (!op) return;
  /* M, N, K; comments: which wgmma path (tile width, tiles vs 132 SMs, k-blocks) each one drives */
  static const int64_t shapes[][3] = {
      {2048, 2568, 136}, /* BN=128: 336 tiles > SMs (persistent, 6-stage ring wraps across tiles), k-blocks 3 (tail 8) */
      {4000, 4000, 120}, /* BN=256: 512 tiles, 4-stage ring, M tail 32 (one consumer all out of range), N tail 160 */
      {1000, 2568, 200}, /* BN=256 single partial wave, k tail 8 */
      {300, 2560, 72},   /* 3 tile rows: a 2-CTA cluster's second row lies outside M (its TMA-store boxes are skipped) */
      {512, 2560, 1000}, /* BN=80 (128 tiles: 16-column C boxes in 32B swizzle, 7-stage ring), as for Qwen3-4B o/down at M = 512 */
      {260, 2568, 264},  /* BN=80: N tail 8 (a C box half outside), M tail 4, mc2 pairs with an odd third tile row */
      {129, 1001, 8},    /* odd N: direct (element-wise) stores instead of TMA stores; K < 64: one zero-filled k-block */
      {64, 8, 4104},     /* N far below the tile; 65 k-blocks */
      {7, 136, 2568},    /* decode-like M */
      {1, 1, 8},         /* the smallest runnable shape */
  };
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    int64_t shape[KLAB_MAX_DIMS] = {shapes[i][0], shapes[i][1], shapes[i][2]};
    int passed = gate_all(op, shape, 2);
    CHECK_MSG(passed >= 4, "naive, mma and the vendors run every shape here (%d passed)", passed);
  }
}

/* Launchers refuse what supports() declines, with a reason, and launch nothing. */
static void test_refusals(void) {
  uint16_t *buf = NULL;
  if (cudaMalloc((void **)&buf, 1 << 20) != cudaSuccess) { CHECK_MSG(0, "cudaMalloc"); return; }
  klab_err err = {{0}};
  CHECK(gemm_mma(buf, buf, buf, 16, 16, 100, NULL, 0, 0, &err) == -1 && strstr(err.msg, "multiple of 8"));
  CHECK(gemm_optimized(buf, buf, buf, 16, 16, 100, NULL, 0, 0, &err) == -1 && strstr(err.msg, "multiple of 8"));
  CHECK(gemm_mma(buf + 1, buf, buf, 16, 16, 64, NULL, 0, 0, &err) == -1 && strstr(err.msg, "aligned"));
  CHECK(gemm_optimized(buf, buf + 4, buf, 16, 16, 64, NULL, 0, 0, &err) == -1 &&
        (strstr(err.msg, "16-byte aligned") || strstr(err.msg, "sm_90a"))); /* sm_90a: declined before the pointer check */
  CHECK(gemm_naive(buf, buf, buf, 0, 16, 16, NULL, 0, 0, &err) == -1 && strstr(err.msg, "bad shape"));
  /* the skinny (swapped) launcher: M = 1..16 only, and a resident x only up to K = 4096 (on sm_90a) */
  CHECK(gemm_wgmma_skinny(buf, buf, buf, 17, 64, 64, 0, 1, 16, 0, &err) == -1 && strstr(err.msg, "M must be 1..16"));
  CHECK(gemm_wgmma_skinny(buf, buf, buf, 4, 16, 4160, 1, 1, 16, 0, &err) == -1 &&
        (strstr(err.msg, "K <= 4096") || strstr(err.msg, "sm_90a")));
  /* only the configurations gemv uses exist: a resident x with a k split is refused, not run as another one */
  CHECK(gemm_wgmma_skinny(buf, buf, buf, 4, 64, 256, 1, 2, 16, 0, &err) == -1 &&
        (strstr(err.msg, "no configuration") || strstr(err.msg, "sm_90a")));
  CHECK(gemm_vendor(buf, buf, buf, 4, -1, 16, NULL, 0, 0, &err) == -1 && strstr(err.msg, "bad shape"));
  char why[200];
  CHECK(gemm_mma_supports(8, 8, 12, why, sizeof why) == 0 && strstr(why, "multiple of 8"));
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
  cudaFree(buf);
}

/* gemm_vendor through the gate: the first call times cuBLAS and cuBLASLt, later calls reuse the choice. */
enum { TA, TW, TC };
static int run_vendor(const klab_args *a, cudaStream_t st, klab_err *err) {
  return gemm_vendor(a->t[TA], a->t[TW], a->t[TC], a->shape[0], a->shape[1], a->shape[2], a->workspace, a->workspace_bytes, st, err);
}
static size_t vendor_ws(const int64_t *s) { return gemm_workspace_bytes(s[0], s[1], s[2]); }
static const klab_variant v_vendor = {"vendor", KLAB_EXTRA, "gemm_vendor", NULL, vendor_ws, run_vendor};

static void test_vendor(void) {
  const klab_op *gemm = klab_find_op("gemm");
  if (!gemm) return;
  klab_op op = *gemm;
  op.nvariants = 1;
  op.variants[0] = &v_vendor;
  static const int64_t shapes[][3] = {{1, 7, 8}, {300, 2568, 64}, {2048, 2048, 2048}, {129, 1001, 7}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    int64_t shape[KLAB_MAX_DIMS] = {shapes[i][0], shapes[i][1], shapes[i][2]};
    CHECK(gate_all(&op, shape, 3) == 1);
  }
}

int main(void) {
  test_reference();
  char why[256];
  if (!klab_have_gpu(why, sizeof why)) {
    if (klab_test_failures) return klab_test_finish("test_gpu_gemm"); /* a CPU failure is a failure, GPU or not */
    klab_test_skip("test_gpu_gemm", why);
  }
  test_refusals();
  test_paths();
  test_vendor();
  return klab_test_finish("test_gpu_gemm");
}
