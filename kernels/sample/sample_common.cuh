// Device helpers shared by the sample variants: the order of candidates, the weights, block reductions.
//
// The order. The reference sorts candidates by z = (double)logit / (double)temperature descending, ties by
// lower index. For a finite temperature > 0 that is exactly the order of the fp32 logits themselves:
// dividing by a positive constant is monotone, and two different floats stay different doubles after the
// division (they differ by at least 2^-24 relatively; the quotient is rounded to 2^-53). So the kernels never
// compute z to order anything: they order by a 64-bit composite key
//     (order_key(logit) << 32) | (0xffffffff - index)
// where order_key maps a float's bits to an unsigned integer in the same order (-0 is mapped like +0, the
// two compare equal). Larger composite = earlier in the order, equal logits fall back to the lower index,
// and every composite is distinct. A NaN gets the all-ones order key, above +inf: the maximum composite is
// then exactly ref_argmax (the first NaN if any, else the lowest index of the maximum).
//
// The weights. w_i = exp(z_i - zmax) in double, the reference's own formula and precision (the only
// difference is the libm: CUDA's exp is within 1 ulp), so probabilities, cumulative sums and thresholds
// agree with the float64 reference to ~1e-15 relative, not to fp32's 1e-7 (docs/ops/sample.md, near-ties).
#ifndef KLAB_KERNELS_SAMPLE_COMMON_CUH
#define KLAB_KERNELS_SAMPLE_COMMON_CUH
#include <math.h>
#include <stdint.h>
#include "kernels/sample/sample.h"

#define SAMPLE_FULL_MASK 0xffffffffu
#define SAMPLE_NAN_ORDER_KEY 0xffffffffu /* above every number's key (+inf is 0xff800000) */

// Monotone float -> uint32 (non-NaN): a > b <=> key(a) > key(b), a == b <=> key(a) == key(b).
static __device__ __forceinline__ uint32_t sample_order_key(float f) {
  uint32_t u = __float_as_uint(f);
  if (u == 0x80000000u) u = 0u;  // -0 orders like +0
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Inverse of sample_order_key (for keys of non-NaN values).
static __device__ __forceinline__ float sample_key_value(uint32_t key) {
  return __uint_as_float((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key);
}

static __device__ __forceinline__ float sample_load_logit(const void *logits, int is_bf16, int64_t i) {
  if (is_bf16) return __uint_as_float((uint32_t)((const uint16_t *)logits)[i] << 16);
  return ((const float *)logits)[i];
}

// The composite key of element i (see the top of this file). i < 2^31, so the low half never wraps.
static __device__ __forceinline__ uint64_t sample_composite(float logit, int64_t i) {
  const uint32_t key = isnan(logit) ? SAMPLE_NAN_ORDER_KEY : sample_order_key(logit);
  return ((uint64_t)key << 32) | (uint64_t)(0xffffffffu - (uint32_t)i);
}

static __device__ __forceinline__ int64_t sample_composite_index(uint64_t c) { return (int64_t)(0xffffffffu - (uint32_t)c); }

// What the maximum composite says about the row: greedy or not, and the numbers the weights need.
typedef struct {
  int greedy;   // a NaN in the logits, temperature <= 0 or NaN, or every logit -inf (reference: first of the order)
  int64_t argmax;
  float lmax;   // the largest logit (valid when !greedy)
  double zmax;  // (double)lmax / (double)temperature, as the reference computes c[0].z
} sample_stats;

static __device__ __forceinline__ sample_stats sample_decode_stats(uint64_t best, float temperature) {
  sample_stats s;
  const uint32_t key = (uint32_t)(best >> 32);
  s.argmax = sample_composite_index(best);
  s.lmax = key == SAMPLE_NAN_ORDER_KEY ? 0.0f : sample_key_value(key);
  s.greedy = key == SAMPLE_NAN_ORDER_KEY || !(temperature > 0.0f) || s.lmax == -INFINITY;
  s.zmax = s.greedy ? 0.0 : (double)s.lmax / (double)temperature;
  return s;
}

// w = exp(z - zmax) with z = (double)logit / (double)temperature: the reference's p before normalisation.
// Elements equal to the maximum get exactly 1 = exp(0), which the formula gives anyway for a finite maximum;
// for lmax = +inf it is the limit (all mass on the +inf logits) where the formula would give NaN.
static __device__ __forceinline__ double sample_weight(float logit, float lmax, float temperature, double zmax) {
  if (logit == lmax) return 1.0;
  return exp((double)logit / (double)temperature - zmax);
}

// ---- block-wide reductions: blockDim.x a multiple of 32, at most 1024; every thread gets the result, and
// the scratch array (32 entries) may be reused right after the call. Deterministic: every thread reduces
// the same values in the same order, so all threads hold bit-identical results.
static __device__ __forceinline__ uint64_t sample_block_max_u64(uint64_t v, uint64_t *scratch) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) {
    const uint64_t other = __shfl_xor_sync(SAMPLE_FULL_MASK, v, o);
    v = other > v ? other : v;
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nwarps ? scratch[lane] : 0;
#pragma unroll
  for (int o = 16; o > 0; o /= 2) {
    const uint64_t other = __shfl_xor_sync(SAMPLE_FULL_MASK, v, o);
    v = other > v ? other : v;
  }
  __syncthreads();
  return v;
}

static __device__ __forceinline__ uint64_t sample_block_sum_u64(uint64_t v, uint64_t *scratch) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(SAMPLE_FULL_MASK, v, o);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nwarps ? scratch[lane] : 0;
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(SAMPLE_FULL_MASK, v, o);
  __syncthreads();
  return v;
}

static __device__ __forceinline__ double sample_block_sum_f64(double v, double *scratch) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(SAMPLE_FULL_MASK, v, o);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nwarps ? scratch[lane] : 0.0;
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(SAMPLE_FULL_MASK, v, o);
  __syncthreads();
  return v;
}

// ---- host-side argument checks shared by both launchers ----
static inline int sample_check_args(const char *variant, const void *logits, klab_dtype dtype, int64_t V,
                                    const ref_sample_params *params, int32_t *token_out, klab_err *err) {
  if (!logits || !token_out || !params)
    return klab_fail(err, "sample %s: logits, token_out and params must not be NULL", variant);
  if (V < 1 || V > 2147483647) return klab_fail(err, "sample %s: V=%lld must be in [1, 2^31-1]", variant, (long long)V);
  if (dtype != KLAB_DT_F32 && dtype != KLAB_DT_BF16)
    return klab_fail(err, "sample %s V=%lld: logits dtype %s not supported (f32 or bf16)", variant, (long long)V, klab_dtype_name(dtype));
  if (isinf(params->temperature) && params->temperature > 0.0f)
    return klab_fail(err, "sample %s V=%lld: temperature +inf is not a distribution the reference orders (every z is 0)",
                     variant, (long long)V);
  return 0;
}
#endif
