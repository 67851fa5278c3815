#include "reference/gemm.h"
#include <stdlib.h>
#include <string.h>
#include "harness/bf16.h"

/* Tile of C computed by one thread at a time, and the K slice converted to float64 per step. The two
 * converted panels (64x64 doubles, 32 KiB each) stay in L1/L2 while the micro-kernel walks them: measured
 * 17 GMAC/s per core with AVX2 (TILE_K 128: 12, 256: 10). */
enum { TILE_M = 64, TILE_N = 64, TILE_K = 64, MICRO_M = 4, MICRO_N = 8 };

/* acc[4x8] += a[4 rows, k] * wt[k, 8 cols] for k = 0..kr-1, each output summed in k order. a's rows are
 * TILE_K apart; W is stored transposed (wt rows TILE_N apart) so the 8 columns are contiguous. */
static void micro_portable(const double *a, const double *wt, double *acc, int kr) {
  /* two 4x4 halves: 16 accumulators fit the 16 SSE registers, and the compiler pairs them (2-wide) */
  for (int half = 0; half < MICRO_N; half += 4) {
    double c[4][4];
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 4; j++) c[i][j] = acc[i * TILE_N + half + j];
    for (int k = 0; k < kr; k++) {
      const double *w = wt + (size_t)k * TILE_N + half;
      const double w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
      for (int i = 0; i < 4; i++) {
        const double x = a[(size_t)i * TILE_K + k];
        c[i][0] += x * w0;
        c[i][1] += x * w1;
        c[i][2] += x * w2;
        c[i][3] += x * w3;
      }
    }
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 4; j++) acc[i * TILE_N + half + j] = c[i][j];
  }
}

/* The build targets baseline x86-64 (2-wide SSE2, no FMA). Where the CPU has AVX2+FMA, a 4-wide fused
 * version of the same loop runs several times faster; that matters because the gate runs the reference
 * for every seed of every shape. Written with intrinsics so the 8 accumulators surely stay in registers.
 * FMA keeps float64 (one rounding per step instead of two). */
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define HAVE_AVX2_PATH 1
__attribute__((target("avx2,fma"))) static void micro_avx2(const double *a, const double *wt, double *acc, int kr) {
  __m256d c00 = _mm256_loadu_pd(acc + 0 * TILE_N), c01 = _mm256_loadu_pd(acc + 0 * TILE_N + 4);
  __m256d c10 = _mm256_loadu_pd(acc + 1 * TILE_N), c11 = _mm256_loadu_pd(acc + 1 * TILE_N + 4);
  __m256d c20 = _mm256_loadu_pd(acc + 2 * TILE_N), c21 = _mm256_loadu_pd(acc + 2 * TILE_N + 4);
  __m256d c30 = _mm256_loadu_pd(acc + 3 * TILE_N), c31 = _mm256_loadu_pd(acc + 3 * TILE_N + 4);
  for (int k = 0; k < kr; k++) {
    const __m256d w0 = _mm256_loadu_pd(wt + (size_t)k * TILE_N), w1 = _mm256_loadu_pd(wt + (size_t)k * TILE_N + 4);
    __m256d x = _mm256_broadcast_sd(a + k);
    c00 = _mm256_fmadd_pd(x, w0, c00), c01 = _mm256_fmadd_pd(x, w1, c01);
    x = _mm256_broadcast_sd(a + TILE_K + k);
    c10 = _mm256_fmadd_pd(x, w0, c10), c11 = _mm256_fmadd_pd(x, w1, c11);
    x = _mm256_broadcast_sd(a + 2 * TILE_K + k);
    c20 = _mm256_fmadd_pd(x, w0, c20), c21 = _mm256_fmadd_pd(x, w1, c21);
    x = _mm256_broadcast_sd(a + 3 * TILE_K + k);
    c30 = _mm256_fmadd_pd(x, w0, c30), c31 = _mm256_fmadd_pd(x, w1, c31);
  }
  _mm256_storeu_pd(acc + 0 * TILE_N, c00), _mm256_storeu_pd(acc + 0 * TILE_N + 4, c01);
  _mm256_storeu_pd(acc + 1 * TILE_N, c10), _mm256_storeu_pd(acc + 1 * TILE_N + 4, c11);
  _mm256_storeu_pd(acc + 2 * TILE_N, c20), _mm256_storeu_pd(acc + 2 * TILE_N + 4, c21);
  _mm256_storeu_pd(acc + 3 * TILE_N, c30), _mm256_storeu_pd(acc + 3 * TILE_N + 4, c31);
}
#endif

typedef void (*micro_fn)(const double *, const double *, double *, int);

static void one_tile(const uint16_t *A, const uint16_t *W, double *C, int64_t M, int64_t N, int64_t K, int64_t m0,
                     int64_t n0, double *a, double *wt, double *acc, micro_fn micro) {
  const int rows = (int)(M - m0 < TILE_M ? M - m0 : TILE_M);
  const int cols = (int)(N - n0 < TILE_N ? N - n0 : TILE_N);
  /* padded to whole micro tiles; the pads are zero and never stored */
  const int rows_p = (rows + MICRO_M - 1) / MICRO_M * MICRO_M, cols_p = (cols + MICRO_N - 1) / MICRO_N * MICRO_N;
  memset(acc, 0, sizeof(double) * TILE_M * TILE_N);
  for (int64_t k0 = 0; k0 < K; k0 += TILE_K) {
    const int kr = (int)(K - k0 < TILE_K ? K - k0 : TILE_K);
    for (int i = 0; i < rows_p; i++) {
      const uint16_t *src = A + (m0 + i) * K + k0;
      for (int k = 0; k < kr; k++) a[(size_t)i * TILE_K + k] = i < rows ? (double)klab_bf16_to_float(src[k]) : 0.0;
    }
    for (int j = 0; j < cols_p; j++) {
      const uint16_t *src = W + (n0 + j) * K + k0;
      for (int k = 0; k < kr; k++) wt[(size_t)k * TILE_N + j] = j < cols ? (double)klab_bf16_to_float(src[k]) : 0.0;
    }
    for (int i = 0; i < rows_p; i += MICRO_M)
      for (int j = 0; j < cols_p; j += MICRO_N) micro(a + (size_t)i * TILE_K, wt + j, acc + i * TILE_N + j, kr);
  }
  for (int i = 0; i < rows; i++)
    for (int j = 0; j < cols; j++) C[(m0 + i) * N + n0 + j] = acc[i * TILE_N + j];
}

int ref_gemm_bf16(const uint16_t *A, const uint16_t *W, double *C, int64_t M, int64_t N, int64_t K) {
  micro_fn micro = micro_portable;
#ifdef HAVE_AVX2_PATH
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) micro = micro_avx2;
#endif
  const int64_t tiles_m = (M + TILE_M - 1) / TILE_M, tiles_n = (N + TILE_N - 1) / TILE_N;
  const int64_t tiles = tiles_m * tiles_n;
  int failed = 0;
#pragma omp parallel if (tiles > 1 && M * N * K > (1 << 22))
  {
    double *a = malloc(sizeof(double) * TILE_M * TILE_K);
    double *wt = malloc(sizeof(double) * TILE_K * TILE_N);
    double *acc = malloc(sizeof(double) * TILE_M * TILE_N);
    if (!a || !wt || !acc) {
#pragma omp atomic write
      failed = 1;
    }
    /* Tiles of one row of C are neighbours: threads working at the same time share the A panel. */
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tiles; t++)
      if (a && wt && acc) one_tile(A, W, C, M, N, K, (t / tiles_n) * TILE_M, (t % tiles_n) * TILE_N, a, wt, acc, micro);
    free(a), free(wt), free(acc);
  }
  return failed ? -1 : 0;
}
