// silu_mul, optimized: a streaming elementwise op (read 4 bytes, write 2 per output), so the design serves
// DRAM bandwidth: 16-byte loads of 8 gate and 8 up values, 16-byte stores of 8 outputs, and each thread
// handles ROWS rows at once so 2*ROWS loads are in flight before the first exp. The grid is 2-D: x walks the
// vectors of a row (one per thread, no division to find the row), y walks rows (grid-stride past 65535).
// Rows that are not whole 16-byte vectors (I % 8 != 0) or unaligned pointers take a scalar kernel of the
// same shape. Math in fp32 with the accurate expf and an IEEE division, then one rounding to bf16.
#include <cuda_bf16.h>
#include <stdint.h>
#include "kernels/silu_mul/silu_mul.h"

#define VEC_THREADS 128     /* small blocks: a decode row (I = 9728: 1216 vectors) still spreads over 10 SMs */
#define VEC_ROWS 2          /* rows per thread per step: 4 x 16-byte loads in flight */
#define SCALAR_THREADS 256
#define MAX_GRID_Y 65535

static __device__ __forceinline__ float silu_times(float g, float u) { return g / (1.0f + expf(-g)) * u; }

static __device__ __forceinline__ uint4 silu_mul8(const uint4 &g, const uint4 &u) {
  const __nv_bfloat162 *gh = reinterpret_cast<const __nv_bfloat162 *>(&g);
  const __nv_bfloat162 *uh = reinterpret_cast<const __nv_bfloat162 *>(&u);
  uint4 r;
  __nv_bfloat162 *rh = reinterpret_cast<__nv_bfloat162 *>(&r);
#pragma unroll
  for (int k = 0; k < 4; k++) {
    const float2 gf = __bfloat1622float2(gh[k]), uf = __bfloat1622float2(uh[k]);
    rh[k] = __floats2bfloat162_rn(silu_times(gf.x, uf.x), silu_times(gf.y, uf.y));
  }
  return r;
}

// gu rows are 2*I8 vectors (gate then up), out rows I8 vectors.
__global__ void __launch_bounds__(VEC_THREADS)
silu_mul_vec_kernel(const uint4 *__restrict__ gu, uint4 *__restrict__ out, int64_t T, int I8) {
  const int col = blockIdx.x * VEC_THREADS + threadIdx.x;
  if (col >= I8) return; // no barriers below
  for (int64_t row0 = (int64_t)blockIdx.y * VEC_ROWS; row0 < T; row0 += (int64_t)gridDim.y * VEC_ROWS) {
    uint4 g[VEC_ROWS], u[VEC_ROWS];
#pragma unroll
    for (int r = 0; r < VEC_ROWS; r++) {
      const int64_t row = row0 + r;
      if (row < T) {
        const uint4 *src = gu + row * 2 * I8;
        g[r] = __ldcs(src + col);      // read once: streaming
        u[r] = __ldcs(src + I8 + col);
      }
    }
#pragma unroll
    for (int r = 0; r < VEC_ROWS; r++) {
      const int64_t row = row0 + r;
      // A plain store: the down projection reads out next, so it may stay in L2 (decode-sized rows do).
      if (row < T) out[row * I8 + col] = silu_mul8(g[r], u[r]);
    }
  }
}

__global__ void __launch_bounds__(SCALAR_THREADS)
silu_mul_scalar_kernel(const __nv_bfloat16 *__restrict__ gu, __nv_bfloat16 *__restrict__ out, int64_t T, int64_t I) {
  const int64_t col = (int64_t)blockIdx.x * SCALAR_THREADS + threadIdx.x;
  if (col >= I) return;
  for (int64_t row = blockIdx.y; row < T; row += gridDim.y) {
    const float g = __bfloat162float(gu[row * 2 * I + col]);
    const float u = __bfloat162float(gu[row * 2 * I + I + col]);
    out[row * I + col] = __float2bfloat16(silu_times(g, u));
  }
}

extern "C" int silu_mul_optimized(const uint16_t *gu, uint16_t *out, int64_t T, int64_t I, cudaStream_t stream, klab_err *err) {
  if (T < 1 || I < 1 || T > 2147483647 || I > 2147483647) /* both <= 2^31-1: T*2I fits in int64 */
    return klab_fail(err, "silu_mul optimized: bad shape T=%lld I=%lld (each must be in [1, 2^31-1])", (long long)T, (long long)I);
  if (!gu || !out) return klab_fail(err, "silu_mul optimized: T=%lld I=%lld: NULL gu or out", (long long)T, (long long)I);
  if ((uintptr_t)gu % 2 != 0 || (uintptr_t)out % 2 != 0)
    return klab_fail(err, "silu_mul optimized: T=%lld I=%lld: gu or out not 2-byte aligned", (long long)T, (long long)I);
  const int vector_ok = I % 8 == 0 && (uintptr_t)gu % 16 == 0 && (uintptr_t)out % 16 == 0;
  if (vector_ok) {
    const int I8 = (int)(I / 8);
    int64_t grid_y = (T + VEC_ROWS - 1) / VEC_ROWS;
    if (grid_y > MAX_GRID_Y) grid_y = MAX_GRID_Y;
    const dim3 grid((unsigned)((I8 + VEC_THREADS - 1) / VEC_THREADS), (unsigned)grid_y);
    silu_mul_vec_kernel<<<grid, VEC_THREADS, 0, stream>>>((const uint4 *)gu, (uint4 *)out, T, I8);
    KLAB_CHECK_LAUNCH(err, "silu_mul optimized (vector)");
    return 0;
  }
  const int64_t grid_x = (I + SCALAR_THREADS - 1) / SCALAR_THREADS; // <= 2^23: within the grid's x limit
  const int64_t grid_y = T < MAX_GRID_Y ? T : MAX_GRID_Y;
  const dim3 grid((unsigned)grid_x, (unsigned)grid_y);
  silu_mul_scalar_kernel<<<grid, SCALAR_THREADS, 0, stream>>>((const __nv_bfloat16 *)gu, (__nv_bfloat16 *)out, T, I);
  KLAB_CHECK_LAUNCH(err, "silu_mul optimized (scalar path)");
  return 0;
}
