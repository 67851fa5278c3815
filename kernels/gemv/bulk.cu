// gemv through the bulk-copy engine (M = 1..4): W streams into a shared-memory ring by 1-D TMA copies.
//
// Why: on the small decode projections (Qwen3-4B qkv 31 MB, o 21 MB) every register-fed kernel here stays
// below 80% of the read ceiling. Their bytes in flight per SM are bounded by registers (2 stages of a few
// 16-byte vectors per lane), so the DRAM pipe fills only after a ramp, and a block's last round trip is a
// tail. With bulk copies one thread keeps up to ~200 KB per SM in flight - for 4B o that is the whole matrix
// requested in the first microsecond - and the 512 consumer threads only read shared memory.
//
// Layout: a persistent grid of min(N, SMs) blocks, one per SM (the ring takes the shared memory); block b
// owns the contiguous rows [b*N/G, (b+1)*N/G), i.e. one contiguous range of W. A stage is R whole rows
// (R*K*2 bytes, about the stage target), so a stage never splits a row. Warp 16, lane 0 is the producer: it
// issues the first ring-full of stages, then refills slot s as soon as the consumers release it ("empty"
// mbarrier); the copy completes the slot's "full" mbarrier by its byte count. Warps 0-15 consume: each takes
// a contiguous 32-vector-aligned share of the stage's vectors. K % 256 == 0 (K/8 a multiple of 32), so the
// 32 vectors one warp reads per step lie in one row: the row is uniform across the warp and a row change is
// a warp-wide shuffle reduction, stored per (row, warp) in shared memory. After a barrier of the 512
// consumers, thread r adds the 16 warp partials of row r in warp order (deterministic) and writes y.
// x is staged once per block in shared memory, after the programmatic-dependent-launch wait (W, read-only
// weights, is requested before it).
#include <cuda_bf16.h>
#include <stdint.h>
#include <stdio.h>
#include "kernels/common/launch.cuh"
#include "kernels/common/mbarrier.cuh"
#include "kernels/gemv/gemv.h"

#define BULK_CONSUMER_WARPS 16
#define BULK_CONSUMERS (BULK_CONSUMER_WARPS * 32)
#define BULK_THREADS (BULK_CONSUMERS + 32)
#define BULK_MAX_ROWS_PER_STAGE 64
#define BULK_MAX_SLOTS 32

static __device__ __forceinline__ float bulk_dot8(const uint4 &a, const uint4 &b) {
  const __nv_bfloat162 *ha = reinterpret_cast<const __nv_bfloat162 *>(&a);
  const __nv_bfloat162 *hb = reinterpret_cast<const __nv_bfloat162 *>(&b);
  // Two independent chains: the consumers are latency-bound on dependent FMAs, not issue-bound.
  float s0 = 0.f, s1 = 0.f;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const float2 fa = __bfloat1622float2(ha[i]), fb = __bfloat1622float2(hb[i]);
    s0 = fmaf(fa.x, fb.x, s0);
    s1 = fmaf(fa.y, fb.y, s1);
  }
  return s0 + s1;
}

static __device__ __forceinline__ void consumers_sync(void) {
  asm volatile("bar.sync 1, %0;\n" ::"n"(BULK_CONSUMERS) : "memory");
}

// Shared memory (dynamic): ring [slots][stage_bytes] | x [M][K8] uint4 | partials [2][R][8][M] float |
// full[slots], empty[slots] mbarriers.
template <int M>
__global__ void __launch_bounds__(BULK_THREADS, 1)
gemv_bulk_kernel(const uint4 *__restrict__ x, const uint4 *__restrict__ W, __nv_bfloat16 *__restrict__ y, int N, int K8, int R,
                 int slots, uint32_t stage_bytes) {
  extern __shared__ __align__(128) uint8_t smem[];
  uint8_t *ring = smem;
  uint4 *xs = reinterpret_cast<uint4 *>(smem + (size_t)slots * stage_bytes);
  float *part = reinterpret_cast<float *>(xs + (size_t)M * K8);
  uint64_t *bars_ptr = reinterpret_cast<uint64_t *>(part + 2 * R * BULK_CONSUMER_WARPS * M);
  const uint32_t ring_addr = (uint32_t)__cvta_generic_to_shared(ring);
  const uint32_t full0 = (uint32_t)__cvta_generic_to_shared(bars_ptr), empty0 = full0 + 8u * (uint32_t)slots;

  const int G = gridDim.x, b = blockIdx.x;
  const int row0 = (int)((int64_t)b * N / G), row1 = (int)((int64_t)(b + 1) * N / G);
  const int nrows = row1 - row0;
  const int nstages = (nrows + R - 1) / R;

  if (threadIdx.x == 0) {
    for (int s = 0; s < slots; s++) mbar_init(full0 + 8u * s, 1), mbar_init(empty0 + 8u * s, 1);
    mbar_init_fence();
  }
  __syncthreads();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (warp == BULK_CONSUMER_WARPS) {
    // ---- producer ----
    if (lane == 0) {
      const uint8_t *src0 = reinterpret_cast<const uint8_t *>(W + (int64_t)row0 * K8);
      const int first = nstages < slots ? nstages : slots;
      for (int j = 0; j < nstages; j++) {
        if (j == first) klab_pdl_enter();  // after the first ring-full of weight loads is in flight
        const int s = j % slots;
        if (j >= slots) mbar_wait(empty0 + 8u * s, (uint32_t)((j / slots) - 1) & 1u);
        const int rows = (nrows - j * R) < R ? (nrows - j * R) : R;
        const uint32_t bytes = (uint32_t)rows * (uint32_t)K8 * 16u;
        mbar_arrive_expect_tx(full0 + 8u * s, bytes);
        bulk_load_1d_evict_first(ring_addr + (uint32_t)s * stage_bytes, src0 + (int64_t)j * R * K8 * 16, bytes, full0 + 8u * s);
      }
      if (first == nstages) klab_pdl_enter();
    } else {
      klab_pdl_enter();
    }
    return;
  }

  // ---- consumers ----
  klab_pdl_enter();
  for (int i = threadIdx.x; i < M * K8; i += BULK_CONSUMERS) xs[i] = __ldg(x + i);
  consumers_sync();

  for (int j = 0; j < nstages; j++) {
    const int s = j % slots;
    const int rows = (nrows - j * R) < R ? (nrows - j * R) : R;
    const int nvec = rows * K8;
    const int share = (nvec + BULK_CONSUMERS - 1) / BULK_CONSUMERS * 32;  // per warp, a multiple of 32
    const int begin = warp * share, end = begin + share < nvec ? begin + share : nvec;
    float *pt = part + (j & 1) * R * BULK_CONSUMER_WARPS * M;
    for (int i = lane; i < rows * M; i += 32) pt[((i / M) * BULK_CONSUMER_WARPS + warp) * M + i % M] = 0.f;
    __syncwarp();
    mbar_wait(full0 + 8u * s, (uint32_t)(j / slots) & 1u);
    const uint4 *sw = reinterpret_cast<const uint4 *>(ring + (size_t)s * stage_bytes);
    if (begin < end) {
      int row = begin / K8, col = begin - row * K8;  // of the warp's first vector; uniform across the warp
      float acc[M];
#pragma unroll
      for (int m = 0; m < M; m++) acc[m] = 0.f;
#pragma unroll 8
      for (int v = begin; v < end; v += 32) {
        if (col == K8) {  // warp-uniform: the previous step ended row `row`
#pragma unroll
          for (int m = 0; m < M; m++) {
            float t = acc[m];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
            if (lane == 0) pt[(row * BULK_CONSUMER_WARPS + warp) * M + m] = t;
            acc[m] = 0.f;
          }
          row++, col = 0;
        }
        const uint4 wv = sw[v + lane];
#pragma unroll
        for (int m = 0; m < M; m++) acc[m] += bulk_dot8(wv, xs[m * K8 + col + lane]);
        col += 32;
      }
#pragma unroll
      for (int m = 0; m < M; m++) {
        float t = acc[m];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
        if (lane == 0) pt[(row * BULK_CONSUMER_WARPS + warp) * M + m] = t;
      }
    }
    consumers_sync();  // every warp's partials written and every read of slot s done
    if (threadIdx.x == 0) mbar_arrive(empty0 + 8u * s);
    for (int i = threadIdx.x; i < rows * M; i += BULK_CONSUMERS) {
      const int r = i / M, m = i % M;
      float sum = 0.f;
#pragma unroll
      for (int w = 0; w < BULK_CONSUMER_WARPS; w++) sum += pt[(r * BULK_CONSUMER_WARPS + w) * M + m];
      y[(int64_t)m * N + row0 + j * R + r] = __float2bfloat16(sum);
    }
  }
}

// Geometry of one launch; 0 when it fits, else -1 with the reason in why.
typedef struct {
  int R, slots;
  uint32_t stage_bytes;
  size_t smem;
} bulk_plan;

#define BULK_SMEM_LIMIT (227 * 1024)

static int plan_bulk(int64_t M, int64_t K, int stage_target, bulk_plan *p) {
  const int64_t K8 = K / 8, row_bytes = K8 * 16;
  int64_t R = stage_target / row_bytes;
  if (R < 1) R = 1;
  if (R > BULK_MAX_ROWS_PER_STAGE) R = BULK_MAX_ROWS_PER_STAGE;
  const int64_t stage = R * row_bytes; /* a multiple of 512: K % 256 == 0 */
  const int64_t fixed = M * K8 * 16 + 2 * R * BULK_CONSUMER_WARPS * M * 4;
  int64_t slots = (BULK_SMEM_LIMIT - fixed) / (stage + 16);
  if (slots > BULK_MAX_SLOTS) slots = BULK_MAX_SLOTS;
  if (slots < 2) return -1;
  p->R = (int)R, p->slots = (int)slots, p->stage_bytes = (uint32_t)stage;
  p->smem = (size_t)(slots * stage + fixed + slots * 16);
  return 0;
}

extern "C" int gemv_bulk_supports(int64_t M, int64_t N, int64_t K, int stage_target, char *why, size_t n) {
  bulk_plan p;
  if (M < 1 || M > KLAB_GEMV_BULK_MAX_M) return snprintf(why, n, "M=%lld: this kernel handles M = 1..%d", (long long)M, KLAB_GEMV_BULK_MAX_M), 0;
  if (K % 256 != 0) return snprintf(why, n, "K=%lld: needs K %% 256 == 0 (a warp's 32 vectors in one row)", (long long)K), 0;
  if (N < 1 || N > 2147483647LL / 8) return snprintf(why, n, "N=%lld out of range", (long long)N), 0;
  if (plan_bulk(M, K, stage_target, &p))
    return snprintf(why, n, "K=%lld: two stages of one row plus x do not fit in %d bytes of shared memory", (long long)K, BULK_SMEM_LIMIT), 0;
  return 1;
}

template <int M>
static int launch_bulk(const char *name, const uint16_t *x, const uint16_t *W, uint16_t *y, int N, int K8, int sms, const bulk_plan *p,
                       cudaStream_t stream, klab_err *err) {
  static int attr_set = 0;
  if (!attr_set) {
    KLAB_CUDA(err, cudaFuncSetAttribute(gemv_bulk_kernel<M>, cudaFuncAttributeMaxDynamicSharedMemorySize, BULK_SMEM_LIMIT), name);
    attr_set = 1;
  }
  const unsigned grid = (unsigned)(N < sms ? N : sms);
  KLAB_LAUNCH(err, name, grid, BULK_THREADS, p->smem, stream, gemv_bulk_kernel<M>, (const uint4 *)x, (const uint4 *)W, (__nv_bfloat16 *)y, N,
              K8, p->R, p->slots, p->stage_bytes);
  return 0;
}

extern "C" int gemv_bulk_stage(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K, int stage_target,
                               cudaStream_t stream, klab_err *err) {
  char why[160], name[160];
  snprintf(name, sizeof name, "gemv bulk (stage %d B) M=%lld N=%lld K=%lld", stage_target, (long long)M, (long long)N, (long long)K);
  if (!gemv_bulk_supports(M, N, K, stage_target, why, sizeof why)) return klab_fail(err, "%s: %s", name, why);
  if (!x || !W || !y || (uintptr_t)x % 16 != 0 || (uintptr_t)W % 16 != 0)
    return klab_fail(err, "%s: x and W must be non-NULL and 16-byte aligned, y non-NULL", name);
  bulk_plan p;
  plan_bulk(M, K, stage_target, &p);
  int dev = 0, sms = 0;
  KLAB_CUDA(err, cudaGetDevice(&dev), name);
  KLAB_CUDA(err, cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), name);
  if (sms < 1) return klab_fail(err, "%s: device reports %d SMs", name, sms);
  const int n = (int)N, k8 = (int)(K / 8);
  switch (M) {
    case 1: return launch_bulk<1>(name, x, W, y, n, k8, sms, &p, stream, err);
    case 2: return launch_bulk<2>(name, x, W, y, n, k8, sms, &p, stream, err);
    case 3: return launch_bulk<3>(name, x, W, y, n, k8, sms, &p, stream, err);
    default: return launch_bulk<4>(name, x, W, y, n, k8, sms, &p, stream, err);
  }
}

extern "C" int gemv_bulk(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K, cudaStream_t stream, klab_err *err) {
  return gemv_bulk_stage(x, W, y, M, N, K, KLAB_GEMV_BULK_STAGE, stream, err);
}
extern "C" int gemv_bulk32(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K, cudaStream_t stream, klab_err *err) {
  return gemv_bulk_stage(x, W, y, M, N, K, 2 * KLAB_GEMV_BULK_STAGE, stream, err);
}
