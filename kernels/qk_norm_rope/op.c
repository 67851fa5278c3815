/* qk_norm_rope op descriptor: tensors, reference adapter, traffic model, variants, default shapes.
 * In the gate the caches hold exactly the positions 0 .. P0+T-1 (cache_stride = P0 + T); they are
 * INOUT, so positions < P0 must come back unchanged. The p0 tensor (one int32 = P0) lets the
 * optimized_devpos variant read the start position from device memory, as the engine's decode graph does. */
#include <stdlib.h>
#include "harness/bf16.h"
#include "harness/klab.h"
#include "kernels/qk_norm_rope/qk_norm_rope.h"
#include "reference/qk_norm_rope.h"
#include "reference/rng.h"

enum { D_T, D_HQ, D_HKV, D_D, D_P0 };
enum { QKV, QW, KW, P0_DEV, Q_OUT, K_CACHE, V_CACHE };

static int64_t n_items(const int64_t *s) { return s[D_HQ] + 2 * s[D_HKV]; }
static int64_t count_qkv(const int64_t *s) { return s[D_T] * n_items(s) * s[D_D]; }
static int64_t count_w(const int64_t *s) { return s[D_D]; }
static int64_t count_p0(const int64_t *s) { return 1; }
static int64_t count_q_out(const int64_t *s) { return s[D_T] * s[D_HQ] * s[D_D]; }
static int64_t count_cache(const int64_t *s) { return s[D_HKV] * (s[D_P0] + s[D_T]) * s[D_D]; }

static void fill_p0(void *host, int64_t count, const int64_t *s, uint64_t seed) {
  for (int64_t i = 0; i < count; i++) ((int32_t *)host)[i] = (int32_t)s[D_P0];
}

static int validate(const int64_t *s, char *why, size_t n) {
  if (s[D_T] < 1 || s[D_HQ] < 1 || s[D_HKV] < 1 || s[D_D] < 1 || s[D_P0] < 0)
    return snprintf(why, n, "T, HQ, HKV, D must be >= 1 and P0 >= 0"), 0;
  if (s[D_D] % 2 != 0) return snprintf(why, n, "D=%lld must be even (rotate-half RoPE)", (long long)s[D_D]), 0;
  if (s[D_HQ] % s[D_HKV] != 0)
    return snprintf(why, n, "HQ=%lld must be a multiple of HKV=%lld", (long long)s[D_HQ], (long long)s[D_HKV]), 0;
  if (n_items(s) > KLAB_QK_NORM_ROPE_MAX_ITEMS)
    return snprintf(why, n, "HQ + 2*HKV = %lld exceeds %d", (long long)n_items(s), KLAB_QK_NORM_ROPE_MAX_ITEMS), 0;
  if (s[D_P0] + s[D_T] > 2147483647)
    return snprintf(why, n, "P0 + T = %lld exceeds the int32 position range", (long long)(s[D_P0] + s[D_T])), 0;
  return 1;
}

static int reference(const void *const *host, double *const *ref, const int64_t *s, klab_err *err) {
  const int64_t T = s[D_T], HQ = s[D_HQ], HKV = s[D_HKV], D = s[D_D], P0 = s[D_P0], S = P0 + T, NI = n_items(s);
  float *q = malloc((size_t)(T * HQ * D) * sizeof *q), *k = malloc((size_t)(T * HKV * D) * sizeof *k);
  int32_t *positions = malloc((size_t)T * sizeof *positions);
  if (!q || !k || !positions) {
    free(q), free(k), free(positions);
    return klab_fail(err, "qk_norm_rope reference: out of memory");
  }
  const uint16_t *qkv = host[QKV], *kc = host[K_CACHE], *vc = host[V_CACHE];
  for (int64_t t = 0; t < T; t++) {
    positions[t] = (int32_t)(P0 + t);
    for (int64_t h = 0; h < HQ; h++)
      for (int64_t i = 0; i < D; i++) q[(t * HQ + h) * D + i] = klab_bf16_to_float(qkv[(t * NI + h) * D + i]);
    for (int64_t h = 0; h < HKV; h++)
      for (int64_t i = 0; i < D; i++) k[(t * HKV + h) * D + i] = klab_bf16_to_float(qkv[(t * NI + HQ + h) * D + i]);
  }
  ref_qk_norm_rope(q, k, host[QW], host[KW], T, HQ, HKV, D, positions, (double)KLAB_QWEN3_ROPE_THETA, KLAB_QK_NORM_EPS);
  for (int64_t i = 0; i < T * HQ * D; i++) ref[Q_OUT][i] = q[i];
  /* caches: every position keeps its initial value except P0 .. P0+T-1 */
  for (int64_t i = 0; i < HKV * S * D; i++) {
    ref[K_CACHE][i] = klab_bf16_to_float(kc[i]);
    ref[V_CACHE][i] = klab_bf16_to_float(vc[i]);
  }
  for (int64_t t = 0; t < T; t++)
    for (int64_t h = 0; h < HKV; h++)
      for (int64_t i = 0; i < D; i++) {
        const int64_t dst = (h * S + P0 + t) * D + i;
        ref[K_CACHE][dst] = k[(t * HKV + h) * D + i];
        ref[V_CACHE][dst] = klab_bf16_to_float(qkv[(t * NI + HQ + HKV + h) * D + i]);
      }
  free(q), free(k), free(positions);
  return 0;
}

/* read the q, k, v rows and both norm weights once; write q_out and the new k, v cache rows once */
static double bytes(const int64_t *s) {
  const double T = (double)s[D_T], HQ = (double)s[D_HQ], HKV = (double)s[D_HKV], D = (double)s[D_D];
  return 2.0 * (T * (HQ + 2 * HKV) * D + 2 * D + T * HQ * D + 2 * T * HKV * D);
}
/* per q/k element: square+accumulate (2), scale by 1/rms and weight (2), rotate (3); angles not counted */
static double flops(const int64_t *s) { return 7.0 * (double)s[D_T] * (double)(s[D_HQ] + s[D_HKV]) * (double)s[D_D]; }

static void random_shape(uint64_t *rng, int64_t *s) {
  static const int64_t heads[][2] = {{32, 8}, {40, 8}, {16, 8}, {6, 3}, {64, 8}, {1, 1}, {4, 1}, {12, 4}, {5, 5}, {8, 2}};
  static const int64_t dims[] = {128, 128, 64, 128, 256, 2, 6, 96, 100, 512};
  const uint64_t r = klab_mix64((*rng)++);
  const int nh = (int)(sizeof heads / sizeof heads[0]), nd = (int)(sizeof dims / sizeof dims[0]);
  s[D_HQ] = heads[r % (uint64_t)nh][0];
  s[D_HKV] = heads[r % (uint64_t)nh][1];
  s[D_D] = dims[(r >> 8) % (uint64_t)nd];
  switch ((r >> 16) % 4) {
    case 0: s[D_T] = 1; break;                                 /* decode */
    case 1: s[D_T] = (int64_t)((r >> 24) % 64) + 1; break;     /* short prefill */
    case 2: s[D_T] = (int64_t)((r >> 24) % 700) + 65; break;   /* longer prefill */
    default: s[D_T] = (int64_t)((r >> 24) % 16) + 1; break;
  }
  switch ((r >> 40) % 5) {
    case 0: s[D_P0] = 0; break;
    case 1: s[D_P0] = (int64_t)((r >> 44) % 2000) + 1; break;
    case 2: s[D_P0] = 1000; break;
    case 3: s[D_P0] = 32768 + (int64_t)((r >> 44) % 5000); break; /* long context: fast-math sin fails here */
    default: s[D_P0] = 131072 + (int64_t)((r >> 44) % 1000); break;
  }
  if (s[D_P0] > 4096) { /* keep the gate's caches (HKV x (P0+T) x D, INOUT) small: one kv head, short T */
    s[D_HQ] = (r >> 50) % 2 ? 8 : 1;
    s[D_HKV] = 1;
    if (s[D_D] > 128) s[D_D] = 128;
    if (s[D_T] > 16) s[D_T] = 16;
  }
}

static int optimized_supports(const int64_t *s, char *why, size_t n) {
  if (s[D_D] > 512) return snprintf(why, n, "D=%lld > 512: the per-token angle table is sized for D <= 512", (long long)s[D_D]), 0;
  return 1;
}

static int run_naive(const klab_args *a, cudaStream_t st, klab_err *err) {
  const int64_t *s = a->shape;
  return qk_norm_rope_naive(a->t[QKV], a->t[QW], a->t[KW], a->t[Q_OUT], a->t[K_CACHE], a->t[V_CACHE], NULL, s[D_P0],
                            s[D_T], s[D_HQ], s[D_HKV], s[D_D], s[D_P0] + s[D_T], KLAB_QWEN3_ROPE_THETA, KLAB_QK_NORM_EPS,
                            st, err);
}
static int run_optimized(const klab_args *a, cudaStream_t st, klab_err *err) {
  const int64_t *s = a->shape;
  return qk_norm_rope_optimized(a->t[QKV], a->t[QW], a->t[KW], a->t[Q_OUT], a->t[K_CACHE], a->t[V_CACHE], NULL,
                                s[D_P0], s[D_T], s[D_HQ], s[D_HKV], s[D_D], s[D_P0] + s[D_T], KLAB_QWEN3_ROPE_THETA,
                                KLAB_QK_NORM_EPS, st, err);
}
/* The host p0 passed here is deliberately wrong (-1): only the device value can make this variant pass. */
static int run_optimized_devpos(const klab_args *a, cudaStream_t st, klab_err *err) {
  const int64_t *s = a->shape;
  return qk_norm_rope_optimized(a->t[QKV], a->t[QW], a->t[KW], a->t[Q_OUT], a->t[K_CACHE], a->t[V_CACHE],
                                a->t[P0_DEV], -1, s[D_T], s[D_HQ], s[D_HKV], s[D_D], s[D_P0] + s[D_T],
                                KLAB_QWEN3_ROPE_THETA, KLAB_QK_NORM_EPS, st, err);
}

/* The candidates beside optimized: same contract and prototype, host p0 (as optimized). */
#define RUN_CANDIDATE(fn)                                                                                        \
  static int run_##fn(const klab_args *a, cudaStream_t st, klab_err *err) {                                      \
    const int64_t *s = a->shape;                                                                                 \
    return qk_norm_rope_##fn(a->t[QKV], a->t[QW], a->t[KW], a->t[Q_OUT], a->t[K_CACHE], a->t[V_CACHE], NULL,      \
                             s[D_P0], s[D_T], s[D_HQ], s[D_HKV], s[D_D], s[D_P0] + s[D_T], KLAB_QWEN3_ROPE_THETA, \
                             KLAB_QK_NORM_EPS, st, err);                                                         \
  }
RUN_CANDIDATE(w2s6)
RUN_CANDIDATE(w6s2)
RUN_CANDIDATE(w12s1)
RUN_CANDIDATE(v1)
RUN_CANDIDATE(pipe)

static const klab_variant naive = {"naive", KLAB_NAIVE, "block per (token, head), scalar loads, float64 pow/sin/cos per element",
                                   NULL, NULL, run_naive};
static const klab_variant optimized = {"optimized", KLAB_OPTIMIZED,
                                       "16-byte loads, D/16 lanes per head, 4 warps x 3 slots of heads per block (48 at "
                                       "D=128), block-shared float64-reduced angles; v1 kernel for other D",
                                       optimized_supports, NULL, run_optimized};
static const klab_variant w2s6 = {"w2s6", KLAB_EXTRA, "optimized with 2 warps x 6 slots per block (6 heads' loads per lane)",
                                  optimized_supports, NULL, run_w2s6};
static const klab_variant w6s2 = {"w6s2", KLAB_EXTRA, "optimized with 6 warps x 2 slots per block", optimized_supports, NULL,
                                  run_w6s2};
static const klab_variant w12s1 = {"w12s1", KLAB_EXTRA, "optimized with 12 warps x 1 slot per block (1 head per lane)",
                                   optimized_supports, NULL, run_w12s1};
static const klab_variant pipe = {"pipe", KLAB_EXTRA,
                                  "persistent blocks owning whole tokens, next 2 qkv rows streamed into shared memory "
                                  "by cp.async (rows <= 14 KB, else optimized's path)",
                                  optimized_supports, NULL, run_pipe};
static const klab_variant v1 = {"v1", KLAB_EXTRA,
                                "previous optimized: warp per head, 4 heads per warp, 4-byte bf16-pair loads, 16 heads "
                                "per block",
                                optimized_supports, NULL, run_v1};
static const klab_variant optimized_devpos = {"optimized_devpos", KLAB_OPTIMIZED,
                                              "the optimized kernel reading the start position from device memory "
                                              "(CUDA-graph decode)",
                                              optimized_supports, NULL, run_optimized_devpos};

static const klab_shape_preset presets[] = {
    {"decode qwen3-4b/8b pos 1000", {1, 32, 8, 128, 1000}},
    {"prefill 4096 qwen3-4b/8b", {4096, 32, 8, 128, 0}},
    {"decode qwen3-14b pos 1000", {1, 40, 8, 128, 1000}},
    {"decode qwen3-4b/8b pos 32768", {1, 32, 8, 128, 32768}},
};

const klab_op klab_op_qk_norm_rope = {
    .name = "qk_norm_rope",
    .summary = "per-head RMSNorm of q, k + RoPE (NeoX, theta 1e6) + KV-cache append from the fused qkv rows; bf16",
    .ndims = 5,
    .dim_names = {"T", "HQ", "HKV", "D", "P0"},
    .ntensors = 7,
    .tensors = {{"qkv", KLAB_DT_BF16, KLAB_IN, count_qkv, 1.0f, 0.0f, NULL},
                {"q_norm_w", KLAB_DT_BF16, KLAB_IN, count_w, 0.1f, 1.0f, NULL},
                {"k_norm_w", KLAB_DT_BF16, KLAB_IN, count_w, 0.1f, 1.0f, NULL},
                {"p0", KLAB_DT_I32, KLAB_IN, count_p0, 0.0f, 0.0f, fill_p0},
                {"q_out", KLAB_DT_BF16, KLAB_OUT, count_q_out, 0.0f, 0.0f, NULL},
                {"k_cache", KLAB_DT_BF16, KLAB_INOUT, count_cache, 1.0f, 0.0f, NULL},
                {"v_cache", KLAB_DT_BF16, KLAB_INOUT, count_cache, 1.0f, 0.0f, NULL}},
    .validate = validate,
    .reference = reference,
    .bytes = bytes,
    .flops = flops,
    .random_shape = random_shape,
    .nvariants = 8,
    .variants = {&naive, &optimized, &optimized_devpos, &w2s6, &w6s2, &w12s1, &pipe, &v1},
    .npresets = 4,
    .presets = presets,
};
