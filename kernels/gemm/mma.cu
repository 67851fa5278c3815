// gemm on tensor cores with mma.sync (any sm_80+ GPU): the portable tensor-core design, and the step
// between the CUDA-core baseline and the Hopper wgmma kernel.
//
// Block tile 128x128, K in slices of 32; 8 warps as 2 (M) x 4 (N), each owning a 64x32 piece of C as
// 4 x 4 mma.sync.m16n8k16 tiles (64 fp32 accumulators per thread). Operands move global -> shared with
// 16-byte cp.async into a 4-stage ring (three slices in flight while one is consumed), shared ->
// registers with ldmatrix.x4. Shared rows are padded from 64 to 80 bytes so the 8 row addresses of an
// ldmatrix phase fall in 8 different 16-byte bank groups (80 = 5 x 16 and 5 is odd): conflict-free
// without a swizzle. Tails: rows past M or N and k past K are zero-filled by cp.async (src-size 0), and
// the store is masked. 16-byte cp.async rows need K % 8 == 0 and 16-byte aligned A and W.
#include <cuda_bf16.h>
#include <stdint.h>
#include "kernels/gemm/gemm.h"

#define MMA_BM 128
#define MMA_BN 128
#define MMA_BK 32
#define MMA_STAGES 4
#define MMA_LDS (MMA_BK + 8)  // shared row length in elements: 80 bytes
#define MMA_THREADS 256
#define MMA_GROUP_M 8  // tile raster: 8 tile-rows of C advance together so W tiles are reused from L2
#define MMA_SMEM_BYTES (MMA_STAGES * (MMA_BM + MMA_BN) * MMA_LDS * 2)

static __device__ __forceinline__ void cp_async_16(uint32_t smem_addr, const void *gptr, int src_bytes) {
  // src_bytes < 16 zero-fills the rest; 0 reads nothing (gptr must still be a valid address).
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr), "l"(gptr), "r"(src_bytes) : "memory");
}
static __device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int PENDING>
static __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING) : "memory"); }

static __device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], uint32_t smem_addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr)
               : "memory");
}

static __device__ __forceinline__ void mma_16816(float c[4], const uint32_t a[4], const uint32_t b[2]) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// Two neighbouring outputs of one row: one 4-byte store where the pair is aligned, else element-wise.
static __device__ __forceinline__ void store_pair(__nv_bfloat16 *C, int64_t M, int64_t N, int64_t row, int64_t col,
                                                  float v0, float v1, bool pair_ok) {
  if (row >= M) return;
  __nv_bfloat16 *p = C + row * N + col;
  if (pair_ok && col + 1 < N) {
    *reinterpret_cast<__nv_bfloat162 *>(p) = __floats2bfloat162_rn(v0, v1);
  } else {
    if (col < N) p[0] = __float2bfloat16(v0);
    if (col + 1 < N) p[1] = __float2bfloat16(v1);
  }
}

// One k-slice of both operands into ring stage `stage`: 128 rows x 4 chunks of 16 bytes per operand,
// 2 chunks per thread per operand.
static __device__ __forceinline__ void load_slice(const __nv_bfloat16 *A, const __nv_bfloat16 *W, int64_t M, int64_t N,
                                                  int64_t K, int64_t m0, int64_t n0, int64_t k_tile, uint32_t a_stage,
                                                  uint32_t w_stage) {
#pragma unroll
  for (int c = 0; c < 2; c++) {
    const int chunk = threadIdx.x + c * MMA_THREADS;
    const int row = chunk / 4, col = (chunk % 4) * 8;
    const int64_t k = k_tile * MMA_BK + col;  // K % 8 == 0: a chunk is wholly inside K or wholly outside
    const uint32_t offset = (uint32_t)(row * MMA_LDS + col) * 2;
    const int64_t m = m0 + row, n = n0 + row;
    const bool a_in = m < M && k < K, w_in = n < N && k < K;
    cp_async_16(a_stage + offset, a_in ? (const void *)(A + m * K + k) : (const void *)A, a_in ? 16 : 0);
    cp_async_16(w_stage + offset, w_in ? (const void *)(W + n * K + k) : (const void *)W, w_in ? 16 : 0);
  }
}

__global__ void __launch_bounds__(MMA_THREADS, 2)
gemm_mma_kernel(const __nv_bfloat16 *__restrict__ A, const __nv_bfloat16 *__restrict__ W, __nv_bfloat16 *__restrict__ C,
                int64_t M, int64_t N, int64_t K, int tiles_m, int tiles_n, int pair_ok) {
  extern __shared__ __align__(128) uint8_t smem[];
  const uint32_t smem_base = (uint32_t)__cvta_generic_to_shared(smem);
  const uint32_t a_ring = smem_base, w_ring = smem_base + MMA_STAGES * MMA_BM * MMA_LDS * 2;
  const uint32_t stage_bytes = MMA_BM * MMA_LDS * 2;  // same for both operands (MMA_BM == MMA_BN)

  // Grouped raster: consecutive blocks walk down MMA_GROUP_M tile-rows before moving right, so blocks
  // resident together share W tiles (and A tiles) in L2.
  const int tile = blockIdx.x;
  const int tiles_per_group = MMA_GROUP_M * tiles_n;
  const int group = tile / tiles_per_group;
  const int first_m = group * MMA_GROUP_M;
  const int rows_in_group = min(MMA_GROUP_M, tiles_m - first_m);
  const int local = tile - group * tiles_per_group;
  const int tm = first_m + local % rows_in_group, tn = local / rows_in_group;
  const int64_t m0 = (int64_t)tm * MMA_BM, n0 = (int64_t)tn * MMA_BN;

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int warp_m = warp / 4, warp_n = warp % 4;  // warp tile: rows warp_m*64.., columns warp_n*32..
  const int64_t k_tiles = (K + MMA_BK - 1) / MMA_BK;

  float acc[4][4][4];
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) acc[i][j][e] = 0.f;

  // Prologue: slices 0..STAGES-2 in flight. Every step commits a group (empty past the end) so that
  // "wait until at most STAGES-2 groups are pending" always means "slice kt has landed".
#pragma unroll
  for (int s = 0; s < MMA_STAGES - 1; s++) {
    if (s < k_tiles) load_slice(A, W, M, N, K, m0, n0, s, a_ring + s * stage_bytes, w_ring + s * stage_bytes);
    cp_async_commit();
  }

  // ldmatrix row addresses, per lane (see the fragment layouts of mma.m16n8k16):
  // A x4: matrices (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15) = a0..a3;
  //       lane l addresses row l % 16, k offset 8 * (l / 16).
  // W x4: matrices (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15) = b0,b1 of two n8 tiles;
  //       lane l addresses n (l % 8) + 8 * (l / 16), k offset 8 * ((l / 8) % 2).
  const int a_row = warp_m * 64 + (lane % 16), a_kofs = (lane / 16) * 8;
  const int w_row = warp_n * 32 + (lane % 8) + (lane / 16) * 8, w_kofs = ((lane / 8) % 2) * 8;

  for (int64_t kt = 0; kt < k_tiles; kt++) {
    cp_async_wait<MMA_STAGES - 2>();
    // Slice kt is visible to all, and every warp is done with slice kt-1, whose stage is refilled next.
    __syncthreads();
    const int64_t next = kt + MMA_STAGES - 1;
    if (next < k_tiles) {
      const uint32_t s = (uint32_t)(next % MMA_STAGES);
      load_slice(A, W, M, N, K, m0, n0, next, a_ring + s * stage_bytes, w_ring + s * stage_bytes);
    }
    cp_async_commit();

    const uint32_t s = (uint32_t)(kt % MMA_STAGES);
    const uint32_t a_stage = a_ring + s * stage_bytes, w_stage = w_ring + s * stage_bytes;
#pragma unroll
    for (int kk = 0; kk < MMA_BK / 16; kk++) {
      uint32_t a[4][4], b[4][2];
#pragma unroll
      for (int mi = 0; mi < 4; mi++)
        ldmatrix_x4(a[mi], a_stage + (uint32_t)((a_row + mi * 16) * MMA_LDS + kk * 16 + a_kofs) * 2);
#pragma unroll
      for (int nj = 0; nj < 2; nj++) {
        uint32_t r[4];
        ldmatrix_x4(r, w_stage + (uint32_t)((w_row + nj * 16) * MMA_LDS + kk * 16 + w_kofs) * 2);
        b[2 * nj][0] = r[0], b[2 * nj][1] = r[1], b[2 * nj + 1][0] = r[2], b[2 * nj + 1][1] = r[3];
      }
#pragma unroll
      for (int mi = 0; mi < 4; mi++)
#pragma unroll
        for (int ni = 0; ni < 4; ni++) mma_16816(acc[mi][ni], a[mi], b[ni]);
    }
  }
  cp_async_wait<0>();  // only empty groups can remain; leave nothing in flight

  // Accumulator layout: c0,c1 = (row g, columns 2q, 2q+1), c2,c3 = (row g+8, same columns), g = lane/4, q = lane%4.
  const int g = lane / 4, q = lane % 4;
#pragma unroll
  for (int mi = 0; mi < 4; mi++) {
    const int64_t row = m0 + warp_m * 64 + mi * 16 + g;
#pragma unroll
    for (int ni = 0; ni < 4; ni++) {
      const int64_t col = n0 + warp_n * 32 + ni * 8 + 2 * q;
      store_pair(C, M, N, row, col, acc[mi][ni][0], acc[mi][ni][1], pair_ok);
      store_pair(C, M, N, row + 8, col, acc[mi][ni][2], acc[mi][ni][3], pair_ok);
    }
  }
}

extern "C" int gemm_mma_supports(int64_t M, int64_t N, int64_t K, char *why, size_t why_len) {
  if (M < 1 || N < 1 || K < 1) return snprintf(why, why_len, "M, N, K must be >= 1"), 0;
  if (K % 8 != 0)
    return snprintf(why, why_len, "K=%lld is not a multiple of 8 (rows are moved as 16-byte cp.async chunks)", (long long)K), 0;
  const int64_t tiles = ((M + MMA_BM - 1) / MMA_BM) * ((N + MMA_BN - 1) / MMA_BN);
  if (M > 2147483647LL || N > 2147483647LL || tiles > 2147483647LL)
    return snprintf(why, why_len, "M=%lld N=%lld: too many tiles for the grid", (long long)M, (long long)N), 0;
  return 1;
}

extern "C" int gemm_mma(const uint16_t *A, const uint16_t *W, uint16_t *C, int64_t M, int64_t N, int64_t K,
                        void *workspace, size_t workspace_bytes, cudaStream_t stream, klab_err *err) {
  (void)workspace, (void)workspace_bytes; /* needs none (the parameters keep one signature for all gemm_*) */
  char why[200];
  if (!gemm_mma_supports(M, N, K, why, sizeof why))
    return klab_fail(err, "gemm mma M=%lld N=%lld K=%lld: unsupported shape: %s", (long long)M, (long long)N, (long long)K, why);
  if (!A || !W || !C || (uintptr_t)A % 16 != 0 || (uintptr_t)W % 16 != 0)
    return klab_fail(err, "gemm mma M=%lld N=%lld K=%lld: A and W must be non-NULL and 16-byte aligned (A=%p W=%p C=%p)",
                     (long long)M, (long long)N, (long long)K, (const void *)A, (const void *)W, (void *)C);
  const int tiles_m = (int)((M + MMA_BM - 1) / MMA_BM), tiles_n = (int)((N + MMA_BN - 1) / MMA_BN);
  const int pair_ok = N % 2 == 0 && (uintptr_t)C % 4 == 0;
  // Set on every launch (a cheap host call) so a device switch or a fresh context cannot miss it.
  KLAB_CUDA(err, cudaFuncSetAttribute(gemm_mma_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, MMA_SMEM_BYTES),
            "gemm mma: shared memory opt-in");
  gemm_mma_kernel<<<(unsigned)((int64_t)tiles_m * tiles_n), MMA_THREADS, MMA_SMEM_BYTES, stream>>>(
      (const __nv_bfloat16 *)A, (const __nv_bfloat16 *)W, (__nv_bfloat16 *)C, M, N, K, tiles_m, tiles_n, pair_ok);
  KLAB_CHECK_LAUNCH(err, "gemm mma");
  return 0;
}
