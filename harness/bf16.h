/* bf16 <-> float on the host (and in device code), bit-exact with CUDA's __float2bfloat16_rn:
 * round to nearest even, NaN kept quiet. bf16 values are carried as uint16_t in host C code. */
#ifndef KLAB_BF16_H
#define KLAB_BF16_H
#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define KLAB_HD __host__ __device__
#else
#define KLAB_HD
#endif

static inline KLAB_HD float klab_bf16_to_float(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static inline KLAB_HD uint16_t klab_float_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); /* quiet NaN */
  u += 0x7fffu + ((u >> 16) & 1u);                                             /* nearest even */
  return (uint16_t)(u >> 16);
}

/* Round a float to the nearest bf16 value and back: what storing it in bf16 does to it. */
static inline KLAB_HD float klab_round_bf16(float f) { return klab_bf16_to_float(klab_float_to_bf16(f)); }

#endif
