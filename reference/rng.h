/* Counter-based random numbers shared by the CPU reference and GPU kernels: the value depends only on
 * (seed, counter), so the same seed gives the same draw on both sides and in any order (used by the
 * input generator and by the `sample` op). SplitMix64 finaliser over a combined key: integer-only,
 * bit-identical everywhere. */
#ifndef KLAB_RNG_H
#define KLAB_RNG_H
#include <stdint.h>
#include "harness/bf16.h" /* KLAB_HD */

static inline KLAB_HD uint64_t klab_mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* 64 random bits for (seed, counter). */
static inline KLAB_HD uint64_t klab_rand_u64(uint64_t seed, uint64_t counter) {
  return klab_mix64(klab_mix64(seed) ^ (counter * 0xd1b54a32d192ed03ull));
}

/* Uniform double in [0, 1) with 53 random bits. */
static inline KLAB_HD double klab_rand_uniform(uint64_t seed, uint64_t counter) {
  return (double)(klab_rand_u64(seed, counter) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform float in [0, 1) with 24 random bits. */
static inline KLAB_HD float klab_rand_uniform_f(uint64_t seed, uint64_t counter) {
  return (float)(klab_rand_u64(seed, counter) >> 40) * (1.0f / 16777216.0f);
}

#endif
