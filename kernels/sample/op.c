/* sample op descriptor: one token drawn from fp32 logits [V] with temperature, top-k, top-p and min-p
 * (reference/sample.h). The sampling parameters are integer dims so the gate covers them like sizes:
 *   TOPK     top_k; 0 (or >= V) = off
 *   TOPP_PM  top_p in per-mille; 1000 (or 0) = off (the reference applies it for 0 < top_p < 1)
 *   MINP_PM  min_p in per-mille; 0 or 1000 = off (the reference applies it for 0 < min_p < 1)
 *   TEMP_PM  temperature in per-mille; 0 = greedy
 * The gate compares the renormalised distribution (probs, fp32) and the token (exact). The draw's step is an
 * input tensor (read by the kernels from device memory, the CUDA-graph path); its value comes from the gate
 * seed, so every seed draws a different u = klab_rand_uniform(KLAB_SAMPLE_OP_SEED, step). The bf16 path and
 * the host-step path are gated by tests/test_gpu_sample.c. */
#include <stdlib.h>
#include "harness/klab.h"
#include "kernels/sample/sample.h"
#include "reference/rng.h"
#include "reference/sample.h"

#define KLAB_SAMPLE_OP_SEED 0x5a3d1e5eedull /* the sampler seed of every gated draw */

enum { D_V, D_TOPK, D_TOPP, D_MINP, D_TEMP };
enum { LOGITS, PROBS, TOKEN, STEP };

static int64_t count_v(const int64_t *s) { return s[D_V]; }
static int64_t count_one(const int64_t *s) { return 1; }

/* The step of the draw: a different, non-negative step for every gate seed. */
static void fill_step(void *host, int64_t count, const int64_t *shape, uint64_t seed) {
  for (int64_t i = 0; i < count; i++) ((int32_t *)host)[i] = (int32_t)(klab_mix64(seed + (uint64_t)i) % 1000000007u);
}

static ref_sample_params params_of(const int64_t *s) {
  ref_sample_params p;
  p.temperature = (float)s[D_TEMP] / 1000.0f;
  p.top_k = (int32_t)s[D_TOPK];
  p.top_p = (float)s[D_TOPP] / 1000.0f;
  p.min_p = (float)s[D_MINP] / 1000.0f;
  return p;
}

static int validate(const int64_t *s, char *why, size_t n) {
  if (s[D_V] < 1 || s[D_V] > 2147483647) return snprintf(why, n, "V=%lld must be in [1, 2^31-1] (token ids are int32)", (long long)s[D_V]), 0;
  if (s[D_TOPK] < 0 || s[D_TOPK] > 2147483647) return snprintf(why, n, "TOPK=%lld must be in [0, 2^31-1] (0 = off)", (long long)s[D_TOPK]), 0;
  if (s[D_TOPP] < 0 || s[D_TOPP] > 1000) return snprintf(why, n, "TOPP_PM=%lld must be in [0, 1000] (per-mille, 0 or 1000 = off)", (long long)s[D_TOPP]), 0;
  if (s[D_MINP] < 0 || s[D_MINP] > 1000) return snprintf(why, n, "MINP_PM=%lld must be in [0, 1000] (per-mille, 0 or 1000 = off)", (long long)s[D_MINP]), 0;
  if (s[D_TEMP] < 0 || s[D_TEMP] > 1000000) return snprintf(why, n, "TEMP_PM=%lld must be in [0, 1000000] (per-mille, 0 = greedy)", (long long)s[D_TEMP]), 0;
  return 1;
}

static int reference(const void *const *host, double *const *ref, const int64_t *s, klab_err *err) {
  const ref_sample_params p = params_of(s);
  const int64_t step = ((const int32_t *)host[STEP])[0];
  const double u = klab_rand_uniform(KLAB_SAMPLE_OP_SEED, (uint64_t)step);
  ref[TOKEN][0] = (double)ref_sample(host[LOGITS], s[D_V], &p, u, ref[PROBS]);
  return 0;
}

/* Minimal traffic: the logits read once, the distribution written once (plus the token and the step). */
static double bytes(const int64_t *s) { return 8.0 * (double)s[D_V] + 8.0; }
/* One division and one exponential per logit when sampling; one comparison when greedy. */
static double flops(const int64_t *s) { return (s[D_TEMP] > 0 ? 2.0 : 1.0) * (double)s[D_V]; }

static void random_shape(uint64_t *rng, int64_t *s) {
  static const int64_t Vs[] = {1, 2, 7, 1000, 32000, 151936};
  static const int64_t ks[] = {1, 2, 5, 20, 50, 1000};
  static const int64_t ps[] = {100, 500, 800, 900, 950, 999};
  static const int64_t ms[] = {10, 50, 100, 500};
  static const int64_t ts[] = {100, 500, 700, 1000, 1500, 3000};
  uint64_t r = klab_mix64((*rng)++);
  s[D_V] = Vs[r % 6];
  r >>= 3;
  switch (r % 4) { /* top-k off in both spellings, or on (it may exceed V: off again) */
    case 0: s[D_TOPK] = 0; break;
    case 1: s[D_TOPK] = s[D_V]; break;
    default: s[D_TOPK] = ks[(r >> 2) % 6];
  }
  r >>= 5;
  s[D_TOPP] = r % 3 == 0 ? 1000 : ps[(r >> 2) % 6];
  r >>= 5;
  s[D_MINP] = r % 3 == 0 ? ((r >> 2) % 2 ? 0 : 1000) : ms[(r >> 3) % 4];
  r >>= 5;
  s[D_TEMP] = r % 6 == 0 ? 0 : ts[(r >> 3) % 6];
}

static size_t workspace(const int64_t *s) { return sample_workspace_bytes(s[D_V]); }

static int run_naive(const klab_args *a, cudaStream_t st, klab_err *err) {
  const ref_sample_params p = params_of(a->shape);
  return sample_naive(a->t[LOGITS], KLAB_DT_F32, a->shape[D_V], &p, KLAB_SAMPLE_OP_SEED, a->t[STEP], 0, a->t[TOKEN], a->t[PROBS],
                      a->workspace, a->workspace_bytes, st, err);
}
static int run_optimized(const klab_args *a, cudaStream_t st, klab_err *err) {
  const ref_sample_params p = params_of(a->shape);
  return sample_optimized(a->t[LOGITS], KLAB_DT_F32, a->shape[D_V], &p, KLAB_SAMPLE_OP_SEED, a->t[STEP], 0, a->t[TOKEN],
                          a->t[PROBS], a->workspace, a->workspace_bytes, st, err);
}

static const klab_variant naive = {"naive", KLAB_NAIVE, "one block, full passes, every boundary found by 64-step bisection on (logit, index) keys",
                                   NULL, workspace, run_naive};
static const klab_variant optimized = {"optimized", KLAB_OPTIMIZED,
                                       "4096-bucket histogram + bucket partition, one-block radix select inside boundary buckets; no sort",
                                       NULL, workspace, run_optimized};

static const klab_shape_preset presets[] = {
    {"qwen3 vocab greedy (temperature 0)", {151936, 0, 1000, 0, 0}},
    {"qwen3 vocab, Qwen3 recommended: T 0.7, top-k 20, top-p 0.8", {151936, 20, 800, 0, 700}},
    {"qwen3 vocab, top-p 0.95 only", {151936, 0, 950, 0, 1000}},
    {"qwen3 vocab, min-p 0.05 only", {151936, 0, 1000, 50, 1000}},
    {"qwen3 vocab, top-k 1", {151936, 1, 1000, 0, 1000}},
    {"small vocab 1000, T 0.7, top-k 20, top-p 0.8", {1000, 20, 800, 0, 700}},
};

const klab_op klab_op_sample = {
    .name = "sample",
    .summary = "token from fp32 logits[V]: temperature, top-k, top-p, min-p, inverse-CDF draw; probs = kept distribution",
    .ndims = 5,
    .dim_names = {"V", "TOPK", "TOPP_PM", "MINP_PM", "TEMP_PM"},
    .ntensors = 4,
    .tensors = {{"logits", KLAB_DT_F32, KLAB_IN, count_v, 1.0f, 0.0f, NULL},
                {"probs", KLAB_DT_F32, KLAB_OUT, count_v, 0.0f, 0.0f, NULL},
                {"token", KLAB_DT_I32, KLAB_OUT, count_one, 0.0f, 0.0f, NULL},
                {"step", KLAB_DT_I32, KLAB_IN, count_one, 0.0f, 0.0f, fill_step}},
    .validate = validate,
    .reference = reference,
    .bytes = bytes,
    .flops = flops,
    .random_shape = random_shape,
    .nvariants = 2,
    .variants = {&naive, &optimized},
    .npresets = 6,
    .presets = presets,
};
