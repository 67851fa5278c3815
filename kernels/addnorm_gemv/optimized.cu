// addnorm_gemv, optimized for decode: the op is one pass over W (N*K*2 bytes) plus a tiny prologue, so the
// design is the gemv `cc_xs` streamer (kernels/gemv/optimized.cu) with the norm folded into its x staging:
//   - persistent grid, 2 blocks x 8 warps per SM, sized so every warp owns the same number of outputs (+-1);
//     a warp owns output j (and, silu, both W rows j and I+j) and walks them in stages of V 16-byte vectors
//     per lane, with two register buffers: the next stage's loads are issued before the current one is used.
//   - prologue, once per block (not per output, which is why the grid is persistent): issue the first stage
//     of W, then s = bf16(r + delta) from 16-byte loads (L2-resident, M*K*2 bytes), block-reduce the sums of
//     squares, and write h = bf16(s * inv_rms * norm_w) into shared memory (M*K*2 bytes, dynamic). Block 0
//     also writes r_out. The W loads in flight hide the prologue's L2 round trips.
//   - silu: the warp's two rows share every h load from shared memory; the epilogue writes silu(g)*u.
// Rows must be whole 16-byte vectors (K % 8 == 0) and pointers 16-byte aligned; the launcher rejects anything
// else with a message (op.c declines K % 8 first) - addnorm_gemv_naive runs those.
#include <cuda_bf16.h>
#include <stdint.h>
#include "kernels/addnorm_gemv/addnorm_gemv.h"
#include "kernels/common/launch.cuh"

#define OPT_THREADS 256
#define OPT_WARPS (OPT_THREADS / 32)
#ifndef KLAB_ADDNORM_GEMV_BLOCKS_PER_SM
#define KLAB_ADDNORM_GEMV_BLOCKS_PER_SM 2 /* a build-time knob for the PDL experiments: 1 leaves room for the next kernel */
#endif
#define OPT_BLOCKS_PER_SM KLAB_ADDNORM_GEMV_BLOCKS_PER_SM

// bf16 -> fp32 is exact: the bf16 bits are the high half of the float.
static __device__ __forceinline__ float bf16_lo(unsigned u) { return __uint_as_float(u << 16); }
static __device__ __forceinline__ float bf16_hi(unsigned u) { return __uint_as_float(u & 0xffff0000u); }
static __device__ __forceinline__ unsigned pack_bf16(float lo, float hi) {
  return (unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(lo)) | ((unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(hi)) << 16);
}
// Two residual elements: s = bf16(r + d), each one fp32 addition then one rounding (as add_rmsnorm).
static __device__ __forceinline__ unsigned add_pair(unsigned r, unsigned d) {
  return pack_bf16(bf16_lo(r) + bf16_lo(d), bf16_hi(r) + bf16_hi(d));
}
// Two normalised elements: h = bf16(s * inv * w), the add_rmsnorm kernels' expression and order.
static __device__ __forceinline__ unsigned norm_pair(unsigned s, unsigned w, float inv) {
  return pack_bf16(bf16_lo(s) * inv * bf16_lo(w), bf16_hi(s) * inv * bf16_hi(w));
}
static __device__ __forceinline__ float sumsq_pair(unsigned s, float acc) {
  acc = fmaf(bf16_lo(s), bf16_lo(s), acc);
  return fmaf(bf16_hi(s), bf16_hi(s), acc);
}

// One 16-byte load of streamed W (read once: L1::no_allocate; read-only for the kernel's lifetime: .nc). The
// predicate lives inside the asm: a false one gives zeros and touches no memory, so a stage's loads issue
// back to back without branches, and `volatile` keeps them ahead of the arithmetic on the previous stage.
static __device__ __forceinline__ uint4 load_w(const uint4 *p, bool ok) {
  uint4 v;
  asm volatile(
      "{\n\t.reg .pred p;\n\tsetp.ne.b32 p, %5, 0;\n\t"
      "mov.b32 %0, 0;\n\tmov.b32 %1, 0;\n\tmov.b32 %2, 0;\n\tmov.b32 %3, 0;\n\t"
      "@p ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n\t}"
      : "=&r"(v.x), "=&r"(v.y), "=&r"(v.z), "=&r"(v.w)
      : "l"(p), "r"((int)ok));
  return v;
}

// Prologue: h (M rows of K8 vectors) into shared memory; r_out from block 0. Every thread of the block calls
// it (it holds two barriers). Pass 2 reads only the shared-memory vectors the same thread wrote in pass 1.
static __device__ __forceinline__ void norm_prologue(const uint4 *__restrict__ r, const uint4 *__restrict__ delta,
                                                     const uint4 *__restrict__ norm_w, uint4 *__restrict__ r_out, uint4 *h,
                                                     float (*ss_part)[OPT_WARPS], int M, int K8, int K, float eps) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const bool write_r = r_out != nullptr && blockIdx.x == 0;
  for (int m = 0; m < M; m++) {
    float ss = 0.f;
    for (int v = threadIdx.x; v < K8; v += OPT_THREADS) {
      const int idx = m * K8 + v;
      uint4 s = __ldg(r + idx);
      if (delta) {
        const uint4 d = __ldg(delta + idx);
        s.x = add_pair(s.x, d.x), s.y = add_pair(s.y, d.y), s.z = add_pair(s.z, d.z), s.w = add_pair(s.w, d.w);
      }
      h[idx] = s;
      if (write_r) r_out[idx] = s;
      ss = sumsq_pair(s.x, ss), ss = sumsq_pair(s.y, ss), ss = sumsq_pair(s.z, ss), ss = sumsq_pair(s.w, ss);
    }
#pragma unroll
    for (int o = 16; o > 0; o /= 2) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if (lane == 0) ss_part[m][warp] = ss;
  }
  __syncthreads();
  for (int m = 0; m < M; m++) {
    float total = 0.f;
#pragma unroll
    for (int w = 0; w < OPT_WARPS; w++) total += ss_part[m][w];
    const float inv = rsqrtf(total / (float)K + eps);
    for (int v = threadIdx.x; v < K8; v += OPT_THREADS) {
      const int idx = m * K8 + v;
      const uint4 s = h[idx], w = __ldg(norm_w + v);
      h[idx] = make_uint4(norm_pair(s.x, w.x, inv), norm_pair(s.y, w.y, inv), norm_pair(s.z, w.z, inv), norm_pair(s.w, w.w, inv));
    }
  }
  __syncthreads();
}

// Stage `stage` of item j: R rows (j, and silu j + up_offset), V vectors per lane; lane l, u < V reads vector
// stage*32V + 32u + l, so each load instruction covers 512 contiguous bytes of a row.
template <int R, int V>
static __device__ __forceinline__ void load_stage(uint4 (&buf)[R][V], const uint4 *__restrict__ W, int j, int up_offset, int K8,
                                                  int stage, int lane) {
  const int base = stage * 32 * V + lane;
#pragma unroll
  for (int rr = 0; rr < R; rr++) {
    const uint4 *wrow = W + (int64_t)(j + rr * up_offset) * K8;
#pragma unroll
    for (int u = 0; u < V; u++) {
      const int v = base + 32 * u;
      buf[rr][u] = load_w(wrow + min(v, K8 - 1), v < K8);
    }
  }
}

template <int MT, int R, int V>
static __device__ __forceinline__ void use_stage(const uint4 (&buf)[R][V], const uint4 *h, int M, int K8, int stage, int lane,
                                                 float (&acc)[R][MT]) {
  const int base = stage * 32 * V + lane;
#pragma unroll
  for (int u = 0; u < V; u++) {
    const int v = base + 32 * u;
    if (v >= K8) continue;
    float wf[R][8];
#pragma unroll
    for (int rr = 0; rr < R; rr++) {
      const unsigned w[4] = {buf[rr][u].x, buf[rr][u].y, buf[rr][u].z, buf[rr][u].w};
#pragma unroll
      for (int i = 0; i < 4; i++) wf[rr][2 * i] = bf16_lo(w[i]), wf[rr][2 * i + 1] = bf16_hi(w[i]);
    }
#pragma unroll
    for (int m = 0; m < MT; m++) {
      if (m >= M) break;  // uniform: M is the same for every thread
      const uint4 hv = h[m * K8 + v];
      const unsigned hw[4] = {hv.x, hv.y, hv.z, hv.w};
#pragma unroll
      for (int rr = 0; rr < R; rr++) {
        float s = acc[rr][m];
#pragma unroll
        for (int i = 0; i < 4; i++) {
          s = fmaf(bf16_lo(hw[i]), wf[rr][2 * i], s);
          s = fmaf(bf16_hi(hw[i]), wf[rr][2 * i + 1], s);
        }
        acc[rr][m] = s;
      }
    }
  }
}

// End of item j: warp sums, lane 0 writes y[m, j] (silu: silu(gate) * up), accumulators reset.
template <int MT, int R>
static __device__ __forceinline__ void finish_item(float (&acc)[R][MT], __nv_bfloat16 *__restrict__ y, int M, int n_out, int j,
                                                   int lane) {
#pragma unroll
  for (int m = 0; m < MT; m++) {
    float sum[R];
#pragma unroll
    for (int rr = 0; rr < R; rr++) {
      float s = acc[rr][m];
#pragma unroll
      for (int o = 16; o > 0; o /= 2) s += __shfl_xor_sync(0xffffffffu, s, o);
      sum[rr] = s;
      acc[rr][m] = 0.f;
    }
    if (lane == 0 && m < M) {
      float out = sum[0];
      if (R == 2) out = sum[0] / (1.0f + expf(-sum[0])) * sum[R - 1];
      y[(int64_t)m * n_out + j] = __float2bfloat16_rn(out);
    }
  }
}

// One step of the warp's walk over (item, stage): prefetch the next step into `next`, use `cur`, finish the
// item at its last stage, advance. Returns 0 when the warp has no items left.
template <int MT, int R, int V>
static __device__ __forceinline__ int walk_step(const uint4 (&cur)[R][V], uint4 (&next)[R][V], const uint4 *__restrict__ W,
                                                const uint4 *h, __nv_bfloat16 *__restrict__ y, int M, int n_out, int up_offset,
                                                int K8, int stages, int gw, int tw, int my_items, int lane, int &item, int &stage,
                                                float (&acc)[R][MT]) {
  int next_item = item, next_stage = stage + 1;
  if (next_stage == stages) next_item++, next_stage = 0;
  if (next_item < my_items) load_stage<R, V>(next, W, gw + next_item * tw, up_offset, K8, next_stage, lane);
  use_stage<MT, R, V>(cur, h, M, K8, stage, lane, acc);
  if (stage == stages - 1) finish_item<MT, R>(acc, y, M, n_out, gw + item * tw, lane);
  item = next_item, stage = next_stage;
  return item < my_items;
}

// n_out outputs per row of h (N, or I = N/2 for silu); up_offset = I for silu (row of W of the up half).
template <int MT, int V, bool SILU>
__global__ void __launch_bounds__(OPT_THREADS, OPT_BLOCKS_PER_SM)
addnorm_gemv_kernel(const uint4 *__restrict__ r, const uint4 *__restrict__ delta, const uint4 *__restrict__ norm_w,
                    const uint4 *__restrict__ W, uint4 *__restrict__ r_out, __nv_bfloat16 *__restrict__ y, int M, int n_out,
                    int up_offset, int K8, int K, float eps) {
  constexpr int R = SILU ? 2 : 1;
  extern __shared__ uint4 h_smem[];  // [M][K8]
  __shared__ float ss_part[KLAB_ADDNORM_GEMV_MAX_M][OPT_WARPS];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int gw = blockIdx.x * OPT_WARPS + warp, tw = gridDim.x * OPT_WARPS;
  const int stages = (K8 + 32 * V - 1) / (32 * V);
  const int my_items = gw < n_out ? (n_out - 1 - gw) / tw + 1 : 0;
  uint4 buf_a[R][V], buf_b[R][V];
  if (my_items > 0) load_stage<R, V>(buf_a, W, gw, up_offset, K8, 0, lane);  // in flight during the prologue
  klab_pdl_enter();  // W is read-only: its first stage may load before the kernel before us has finished
  norm_prologue(r, delta, norm_w, r_out, h_smem, ss_part, M, K8, K, eps);
  float acc[R][MT];
#pragma unroll
  for (int rr = 0; rr < R; rr++)
#pragma unroll
    for (int m = 0; m < MT; m++) acc[rr][m] = 0.f;
  int item = 0, stage = 0;
  while (item < my_items) {  // no barriers past the prologue: warps leave independently
    if (!walk_step<MT, R, V>(buf_a, buf_b, W, h_smem, y, M, n_out, up_offset, K8, stages, gw, tw, my_items, lane, item, stage, acc)) break;
    if (!walk_step<MT, R, V>(buf_b, buf_a, W, h_smem, y, M, n_out, up_offset, K8, stages, gw, tw, my_items, lane, item, stage, acc)) break;
  }
}

// Persistent grid: n_out items over at most sms*OPT_BLOCKS_PER_SM*OPT_WARPS warps, spread evenly: each warp
// gets ceil(items / warps) or one fewer, and no warp is left with a second, partial round.
static unsigned even_grid(int64_t items, int sms) {
  const int64_t slots = (int64_t)sms * OPT_BLOCKS_PER_SM * OPT_WARPS;
  const int64_t per_slot = (items + slots - 1) / slots;
  const int64_t used = (items + per_slot - 1) / per_slot;
  return (unsigned)((used + OPT_WARPS - 1) / OPT_WARPS);
}

static int64_t stage_waste(int64_t n, int v) { return (n + v - 1) / v * v - n; }

// Stage width: the widest candidate that wastes at most 1/8 of a lane's vectors on the last, partly empty
// stage; else the one that wastes least (wider on ties). Wider stages = more bytes in flight per warp.
static int pick_stage(int64_t per_lane, const int *widths, int nwidths) {
  for (int i = 0; i < nwidths; i++)
    if (stage_waste(per_lane, widths[i]) * 8 <= per_lane) return widths[i];
  int best = widths[0];
  for (int i = 1; i < nwidths; i++)
    if (stage_waste(per_lane, widths[i]) < stage_waste(per_lane, best)) best = widths[i];
  return best;
}

typedef struct {
  const uint16_t *r, *delta, *norm_w, *W;
  uint16_t *r_out, *y;
  int M, n_out, up_offset, K8, K, sms;
  float eps;
  const char *name;
} launch_args;

template <int MT, int V, bool SILU>
static int launch_kernel(const launch_args *a, cudaStream_t stream, klab_err *err) {
  const size_t smem = (size_t)a->M * a->K8 * 16;
  // Dynamic shared memory beyond 48 KiB minus the kernel's static 512 bytes needs an opt-in (a host-side
  // attribute, legal during stream capture); 40 KiB leaves a margin for that static part.
  if (smem > 40 * 1024)
    KLAB_CUDA(err, cudaFuncSetAttribute(addnorm_gemv_kernel<MT, V, SILU>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem), a->name);
  KLAB_LAUNCH(err, a->name, even_grid(a->n_out, a->sms), OPT_THREADS, smem, stream, addnorm_gemv_kernel<MT, V, SILU>,
              (const uint4 *)a->r, (const uint4 *)a->delta, (const uint4 *)a->norm_w, (const uint4 *)a->W, (uint4 *)a->r_out,
              (__nv_bfloat16 *)a->y, a->M, a->n_out, a->up_offset, a->K8, a->K, a->eps);
  return 0;
}

// Registers: two buffers of R rows x V vectors (8R*V) plus R*MT accumulators within the 128 that 2 blocks of
// 256 threads per SM allow, so silu (two rows per stage) and MT >= 8 use narrower stages.
template <int MT, bool SILU>
static int launch_mt(const launch_args *a, cudaStream_t stream, klab_err *err) {
  const int64_t per_lane = (a->K8 + 31) / 32;
  if constexpr (MT <= 4 && !SILU) {
    static const int widths[] = {8, 6, 4};
    switch (pick_stage(per_lane, widths, 3)) {
      case 8: return launch_kernel<MT, 8, SILU>(a, stream, err);
      case 6: return launch_kernel<MT, 6, SILU>(a, stream, err);
      default: return launch_kernel<MT, 4, SILU>(a, stream, err);
    }
  } else if constexpr (MT == 1 && SILU) {
    // Two rows per stage: V = 5 keeps 5 KiB per warp in flight and covers K = 2560 (10 vectors per lane) exactly.
    static const int widths[] = {5, 4, 3, 2};
    switch (pick_stage(per_lane, widths, 4)) {
      case 5: return launch_kernel<MT, 5, SILU>(a, stream, err);
      case 4: return launch_kernel<MT, 4, SILU>(a, stream, err);
      case 3: return launch_kernel<MT, 3, SILU>(a, stream, err);
      default: return launch_kernel<MT, 2, SILU>(a, stream, err);
    }
  } else if constexpr (MT <= 4 || !SILU) {
    static const int widths[] = {4, 3, 2};
    switch (pick_stage(per_lane, widths, 3)) {
      case 4: return launch_kernel<MT, 4, SILU>(a, stream, err);
      case 3: return launch_kernel<MT, 3, SILU>(a, stream, err);
      default: return launch_kernel<MT, 2, SILU>(a, stream, err);
    }
  } else {
    static const int widths[] = {2, 1};
    if (pick_stage(per_lane, widths, 2) == 2) return launch_kernel<MT, 2, SILU>(a, stream, err);
    return launch_kernel<MT, 1, SILU>(a, stream, err);
  }
}

template <bool SILU>
static int launch_silu(const launch_args *a, cudaStream_t stream, klab_err *err) {
  switch (a->M) {
    case 1: return launch_mt<1, SILU>(a, stream, err);
    case 2: return launch_mt<2, SILU>(a, stream, err);
    case 3: return launch_mt<3, SILU>(a, stream, err);
    case 4: return launch_mt<4, SILU>(a, stream, err);
  }
  if (a->M <= 8) return launch_mt<8, SILU>(a, stream, err);
  return launch_mt<16, SILU>(a, stream, err);
}

extern "C" int addnorm_gemv_optimized(const uint16_t *r, const uint16_t *delta, const uint16_t *norm_w, const uint16_t *W,
                                      uint16_t *r_out, uint16_t *y, int64_t M, int64_t N, int64_t K, int silu, float eps,
                                      cudaStream_t stream, klab_err *err) {
  const char *name = silu ? "addnorm_gemv_silu optimized" : "addnorm_gemv optimized";
  if (M < 1 || M > KLAB_ADDNORM_GEMV_MAX_M || N < 1 || K < 1)
    return klab_fail(err, "%s: bad shape M=%lld N=%lld K=%lld (M must be 1..%d)", name, (long long)M, (long long)N, (long long)K,
                     KLAB_ADDNORM_GEMV_MAX_M);
  if (silu && N % 2 != 0) return klab_fail(err, "%s: N=%lld must be even (gate rows then up rows)", name, (long long)N);
  if (N > 2147483647LL / 8 || K > 2147483647LL)
    return klab_fail(err, "%s: N=%lld or K=%lld too large", name, (long long)N, (long long)K);
  if (K % 8 != 0)
    return klab_fail(err, "%s: K=%lld is not a multiple of 8 (rows must be whole 16-byte vectors; addnorm_gemv_naive runs it)", name,
                     (long long)K);
  if (M * K * 2 > KLAB_ADDNORM_GEMV_MAX_SMEM)
    return klab_fail(err, "%s: h is M*K*2 = %lld bytes, more than the %d of shared memory it stages (M=%lld K=%lld)", name,
                     (long long)(M * K * 2), KLAB_ADDNORM_GEMV_MAX_SMEM, (long long)M, (long long)K);
  if (!r || !norm_w || !W || !y) return klab_fail(err, "%s M=%lld N=%lld K=%lld: NULL r, norm_w, W or y", name, (long long)M, (long long)N, (long long)K);
  if ((uintptr_t)r % 16 || (uintptr_t)delta % 16 || (uintptr_t)norm_w % 16 || (uintptr_t)W % 16 || (uintptr_t)r_out % 16)
    return klab_fail(err, "%s: r (%p), delta (%p), norm_w (%p), W (%p) and r_out (%p) must be 16-byte aligned (M=%lld N=%lld K=%lld)", name,
                     (const void *)r, (const void *)delta, (const void *)norm_w, (const void *)W, (const void *)r_out, (long long)M,
                     (long long)N, (long long)K);
  int dev = 0, sms = 0;
  KLAB_CUDA(err, cudaGetDevice(&dev), name);
  KLAB_CUDA(err, cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), name);
  if (sms < 1) return klab_fail(err, "%s: device reports %d SMs", name, sms);
  launch_args a;
  a.r = r, a.delta = delta, a.norm_w = norm_w, a.W = W, a.r_out = r_out, a.y = y;
  a.M = (int)M, a.n_out = (int)(silu ? N / 2 : N), a.up_offset = silu ? (int)(N / 2) : 0, a.K8 = (int)(K / 8), a.K = (int)K;
  a.sms = sms, a.eps = eps, a.name = name;
  return silu ? launch_silu<true>(&a, stream, err) : launch_silu<false>(&a, stream, err);
}
