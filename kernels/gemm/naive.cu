// gemm, naive: the correctness baseline on CUDA cores. A 64x64 block of C per 256 threads; K advances in
// slices of 16 staged through shared memory as fp32; each thread accumulates a 4x4 set of outputs in fp32
// (rows ty + 16i, columns tx + 16j, so a warp's shared-memory reads are broadcasts or distinct banks).
// Scalar, bounds-checked loads: any M, N, K and any alignment.
#include <cuda_bf16.h>
#include <stdint.h>
#include "kernels/gemm/gemm.h"

#define NAIVE_TILE 64
#define NAIVE_KSLICE 16

__global__ void __launch_bounds__(256)
gemm_naive_kernel(const __nv_bfloat16 *__restrict__ A, const __nv_bfloat16 *__restrict__ W, __nv_bfloat16 *__restrict__ C,
                  int64_t M, int64_t N, int64_t K) {
  // +1 column of padding: the 16 threads of a half-warp read 16 different rows of w_tile at one k.
  __shared__ float a_tile[NAIVE_TILE][NAIVE_KSLICE + 1];
  __shared__ float w_tile[NAIVE_TILE][NAIVE_KSLICE + 1];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t m0 = (int64_t)blockIdx.y * NAIVE_TILE, n0 = (int64_t)blockIdx.x * NAIVE_TILE;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < 4; j++) acc[i][j] = 0.f;

  for (int64_t k0 = 0; k0 < K; k0 += NAIVE_KSLICE) {
    // 64 rows x 16 k of each operand = 1024 elements: 4 per thread; 16 consecutive threads read one row.
#pragma unroll
    for (int r = 0; r < 4; r++) {
      const int e = threadIdx.x + 256 * r;
      const int row = e / NAIVE_KSLICE, col = e % NAIVE_KSLICE;
      const int64_t k = k0 + col;
      const int64_t m = m0 + row, n = n0 + row;
      a_tile[row][col] = (m < M && k < K) ? __bfloat162float(A[m * K + k]) : 0.f;
      w_tile[row][col] = (n < N && k < K) ? __bfloat162float(W[n * K + k]) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < NAIVE_KSLICE; kk++) {
      float a[4], w[4];
#pragma unroll
      for (int i = 0; i < 4; i++) a[i] = a_tile[ty + 16 * i][kk];
#pragma unroll
      for (int j = 0; j < 4; j++) w[j] = w_tile[tx + 16 * j][kk];
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], w[j], acc[i][j]);
    }
    __syncthreads();  // the next slice overwrites the tiles
  }
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int64_t m = m0 + ty + 16 * i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int64_t n = n0 + tx + 16 * j;
      if (n < N) C[m * N + n] = __float2bfloat16(acc[i][j]);
    }
  }
}

extern "C" int gemm_naive(const uint16_t *A, const uint16_t *W, uint16_t *C, int64_t M, int64_t N, int64_t K,
                          void *workspace, size_t workspace_bytes, cudaStream_t stream, klab_err *err) {
  (void)workspace, (void)workspace_bytes; /* needs none (the parameters keep one signature for all gemm_*) */
  if (M < 1 || N < 1 || K < 1)
    return klab_fail(err, "gemm naive: bad shape M=%lld N=%lld K=%lld (all must be >= 1)", (long long)M, (long long)N, (long long)K);
  if (!A || !W || !C) return klab_fail(err, "gemm naive M=%lld N=%lld K=%lld: NULL tensor pointer", (long long)M, (long long)N, (long long)K);
  const int64_t blocks_n = (N + NAIVE_TILE - 1) / NAIVE_TILE, blocks_m = (M + NAIVE_TILE - 1) / NAIVE_TILE;
  if (blocks_n > 2147483647LL || blocks_m > 65535)
    return klab_fail(err, "gemm naive: shape M=%lld N=%lld too large for the grid (M <= %d)", (long long)M, (long long)N, 65535 * NAIVE_TILE);
  dim3 grid((unsigned)blocks_n, (unsigned)blocks_m);
  gemm_naive_kernel<<<grid, 256, 0, stream>>>((const __nv_bfloat16 *)A, (const __nv_bfloat16 *)W, (__nv_bfloat16 *)C, M, N, K);
  KLAB_CHECK_LAUNCH(err, "gemm naive");
  return 0;
}
