/* The gate's input distributions, one formula for host and device: element i of a tensor drawn with
 * (seed, dist) depends only on those, so a seed reproduces the inputs exactly on the same build. */
#ifndef KLAB_GEN_H
#define KLAB_GEN_H
#include <math.h>
#include <stdint.h>
#include "reference/rng.h"

enum { KLAB_DIST_UNIFORM = 0, KLAB_DIST_NORMAL = 1, KLAB_DIST_OUTLIERS = 2, KLAB_NDIST = 3 };

static inline const char *klab_dist_name(int dist) {
  return dist == KLAB_DIST_UNIFORM ? "uniform" : dist == KLAB_DIST_NORMAL ? "normal" : "normal+outliers";
}

/* Seed of tensor `t` under gate seed `seed`. */
static inline KLAB_HD uint64_t klab_tensor_seed(uint64_t seed, int t) { return klab_mix64(seed * 1000003ull + (uint64_t)t); }

/* uniform: U(-1,1); normal: N(0,1) (Box-Muller); outliers: N(0,1) with one element in 97 scaled by 32
 * (the activation outliers of real LLMs, which break kernels that accumulate in low precision). */
static inline KLAB_HD float klab_gen_value(int dist, uint64_t tseed, uint64_t i) {
  if (dist == KLAB_DIST_UNIFORM) return 2.0f * klab_rand_uniform_f(tseed, i) - 1.0f;
  float u1 = klab_rand_uniform_f(tseed, 2 * i), u2 = klab_rand_uniform_f(tseed, 2 * i + 1);
  float z = sqrtf(-2.0f * logf(u1 + 5.9604645e-8f)) * cosf(6.2831853f * u2);
  if (dist == KLAB_DIST_OUTLIERS && klab_rand_u64(tseed ^ 0x5bd1e995ull, i) % 97u == 0) z *= 32.0f;
  return z;
}
#endif
