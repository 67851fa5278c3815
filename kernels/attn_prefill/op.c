/* attn_prefill op descriptor: causal GQA attention over T prompt tokens, P0 tokens already in the cache.
 * Tensors: q [T, HQ, D], k_cache and v_cache [HKV, P0+T, D] (the gate's cache_stride is P0+T, every
 * position filled), out [T, HQ, D]; all bf16. */
#include <stdlib.h>
#include "harness/bf16.h"
#include "harness/klab.h"
#include "kernels/attn_prefill/attn_prefill.h"
#include "reference/attention.h"
#include "reference/rng.h"

enum { D_T, D_P0, D_HQ, D_HKV, D_D };
enum { Q, K_CACHE, V_CACHE, OUT };

static int64_t count_q(const int64_t *s) { return s[D_T] * s[D_HQ] * s[D_D]; } /* q and out */
static int64_t count_cache(const int64_t *s) { return s[D_HKV] * (s[D_P0] + s[D_T]) * s[D_D]; }

static int validate(const int64_t *s, char *why, size_t n) {
  if (s[D_T] < 1 || s[D_HQ] < 1 || s[D_HKV] < 1 || s[D_D] < 1)
    return snprintf(why, n, "T, HQ, HKV and D must be >= 1"), 0;
  if (s[D_P0] < 0) return snprintf(why, n, "P0=%lld must be >= 0", (long long)s[D_P0]), 0;
  if (s[D_HQ] % s[D_HKV] != 0)
    return snprintf(why, n, "HQ=%lld is not a multiple of HKV=%lld (GQA groups must be whole)", (long long)s[D_HQ],
                    (long long)s[D_HKV]), 0;
  /* Bounds that keep every element count and position far from overflow. */
  if (s[D_P0] + s[D_T] > (1 << 30) || s[D_HQ] > 65536 || s[D_D] > 65536)
    return snprintf(why, n, "P0+T=%lld, HQ=%lld or D=%lld out of range (P0+T <= 2^30, HQ and D <= 65536)",
                    (long long)(s[D_P0] + s[D_T]), (long long)s[D_HQ], (long long)s[D_D]), 0;
  return 1;
}

/* The reference: ref_attention (float64 softmax and sums) run per (query head, chunk of tokens), in
 * parallel when OpenMP is there. A chunk of tokens t0..t0+n-1 is itself a prefill with p0' = P0 + t0,
 * so each task is one ref_attention call with one head; results do not depend on the thread count. */
enum { REF_TOKENS_PER_TASK = 64 };

static int reference(const void *const *host, double *const *ref, const int64_t *s, klab_err *err) {
  const int64_t T = s[D_T], P0 = s[D_P0], HQ = s[D_HQ], HKV = s[D_HKV], D = s[D_D];
  const int64_t stride = P0 + T, group = HQ / HKV;
  const int64_t nq = count_q(s), ncache = count_cache(s);
  float *qf = malloc((size_t)nq * sizeof *qf), *kf = malloc((size_t)ncache * sizeof *kf),
        *vf = malloc((size_t)ncache * sizeof *vf);
  if (!qf || !kf || !vf) {
    free(qf), free(kf), free(vf);
    return klab_fail(err, "attn_prefill reference: out of memory");
  }
  const uint16_t *qb = host[Q], *kb = host[K_CACHE], *vb = host[V_CACHE];
  for (int64_t i = 0; i < nq; i++) qf[i] = klab_bf16_to_float(qb[i]);
  for (int64_t i = 0; i < ncache; i++) kf[i] = klab_bf16_to_float(kb[i]), vf[i] = klab_bf16_to_float(vb[i]);

  const int64_t chunks = (T + REF_TOKENS_PER_TASK - 1) / REF_TOKENS_PER_TASK;
  const int64_t tasks = HQ * chunks;
  int failed = 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1)
#endif
  for (int64_t task = 0; task < tasks; task++) {
    /* Last chunks first: they are the longest, so the dynamic schedule ends balanced. */
    const int64_t h = task % HQ, chunk = chunks - 1 - task / HQ;
    const int64_t t0 = chunk * REF_TOKENS_PER_TASK;
    const int64_t n = T - t0 < REF_TOKENS_PER_TASK ? T - t0 : REF_TOKENS_PER_TASK;
    float *q_rows = malloc((size_t)(n * D) * sizeof *q_rows), *o_rows = malloc((size_t)(n * D) * sizeof *o_rows);
    if (!q_rows || !o_rows) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
      failed = 1;
      free(q_rows), free(o_rows);
      continue;
    }
    for (int64_t i = 0; i < n; i++)
      for (int64_t d = 0; d < D; d++) q_rows[i * D + d] = qf[((t0 + i) * HQ + h) * D + d];
    const int64_t kv_head = h / group;
    ref_attention(q_rows, kf + kv_head * stride * D, vf + kv_head * stride * D, o_rows, n, P0 + t0, 1, 1, D, stride);
    for (int64_t i = 0; i < n; i++)
      for (int64_t d = 0; d < D; d++) ref[OUT][((t0 + i) * HQ + h) * D + d] = o_rows[i * D + d];
    free(q_rows), free(o_rows);
  }
  free(qf), free(kf), free(vf);
  if (failed) return klab_fail(err, "attn_prefill reference: out of memory in a worker");
  return 0;
}

/* Minimal traffic: q read and out written once, K and V of positions 0..P0+T-1 of every KV head read once. */
static double bytes(const int64_t *s) {
  return 2.0 * (2.0 * (double)count_q(s) + 2.0 * (double)count_cache(s));
}
/* FlashAttention's causal count: 2 flops per multiply-add in Q K^T and in P V (4*D per query-key pair),
 * over the pairs actually attended: sum over t of (P0 + t + 1) = T*P0 + T(T+1)/2. */
static double flops(const int64_t *s) {
  const double T = (double)s[D_T], P0 = (double)s[D_P0];
  return 4.0 * (double)s[D_D] * (double)s[D_HQ] * (T * P0 + T * (T + 1.0) / 2.0);
}

/* Awkward sizes around the kernel's 64-row / 64-key tiles; GQA groups of 4, 2, 1 and 5 (rows of a token's
 * heads straddle tile edges when 5). Every sixth shape is large enough that the optimized variant takes
 * its 128-row blocks. The CPU reference stays below ~6e9 multiply-adds (T*(P0+T)*HQ*D). */
static void random_shape(uint64_t *rng, int64_t *s) {
  static const int64_t Ts[] = {1, 2, 17, 100, 300};
  static const int64_t P0s[] = {0, 1, 63, 500};
  static const int64_t heads[][2] = {{32, 8}, {16, 8}, {8, 8}, {40, 8}};
  uint64_t r = klab_mix64((*rng)++);
  s[D_T] = Ts[r % 5];
  s[D_P0] = P0s[(r >> 8) % 4];
  s[D_HQ] = heads[(r >> 16) % 4][0];
  s[D_HKV] = heads[(r >> 16) % 4][1];
  s[D_D] = 128;
  if ((r >> 24) % 6 == 0) { /* T*G >= 4096 rows per KV head: the 128-row path */
    s[D_T] = 1031;
    s[D_P0] = (r >> 32) % 2 ? 63 : 0;
    s[D_HQ] = (r >> 40) % 2 ? 40 : 32;
    s[D_HKV] = 8;
  }
  if ((r >> 48) % 10 == 0) s[D_D] = 64; /* naive only: the optimized variant declines it */
}

static int supports_naive(const int64_t *s, char *why, size_t n) {
  if (s[D_D] > ATTN_PREFILL_NAIVE_MAX_D) return snprintf(why, n, "D=%lld above %d", (long long)s[D_D], ATTN_PREFILL_NAIVE_MAX_D), 0;
  if (s[D_HQ] > 65535) return snprintf(why, n, "HQ=%lld above the grid's y limit 65535", (long long)s[D_HQ]), 0;
  if (attn_prefill_workspace_bytes(s[D_T], s[D_P0], s[D_HQ], s[D_HKV], s[D_D]) == 0)
    return snprintf(why, n, "one query row of fp32 scores (HQ x (P0+T)) exceeds %zu bytes", (size_t)ATTN_PREFILL_NAIVE_ROW_LIMIT), 0;
  return 1;
}

static int supports_optimized(const int64_t *s, char *why, size_t n) {
  if (s[D_D] != ATTN_PREFILL_OPT_HEAD_DIM)
    return snprintf(why, n, "D=%lld: compiled for D=%d only (Qwen3's head dim)", (long long)s[D_D], ATTN_PREFILL_OPT_HEAD_DIM), 0;
  if (s[D_T] * (s[D_HQ] / s[D_HKV]) > 2147483647 - 256)
    return snprintf(why, n, "T*HQ/HKV=%lld rows per KV head: above 2^31-256", (long long)(s[D_T] * (s[D_HQ] / s[D_HKV]))), 0;
  return 1;
}

static size_t naive_ws(const int64_t *s) { return attn_prefill_workspace_bytes(s[D_T], s[D_P0], s[D_HQ], s[D_HKV], s[D_D]); }

static int run_naive(const klab_args *a, cudaStream_t st, klab_err *err) {
  const int64_t *s = a->shape;
  return attn_prefill_naive(a->t[Q], a->t[K_CACHE], a->t[V_CACHE], a->t[OUT], s[D_T], s[D_P0], s[D_HQ], s[D_HKV], s[D_D],
                            s[D_P0] + s[D_T], a->workspace, a->workspace_bytes, st, err);
}
static int run_optimized(const klab_args *a, cudaStream_t st, klab_err *err) {
  const int64_t *s = a->shape;
  return attn_prefill_optimized(a->t[Q], a->t[K_CACHE], a->t[V_CACHE], a->t[OUT], s[D_T], s[D_P0], s[D_HQ], s[D_HKV],
                                s[D_D], s[D_P0] + s[D_T], a->workspace, a->workspace_bytes, st, err);
}

/* `optimized` with one step undone (attn_prefill.h): what each step bought, measured on the same code. */
#define UNDO_RUNNER(name, bit)                                                                                          \
  static int run_##name(const klab_args *a, cudaStream_t st, klab_err *err) {                                          \
    const int64_t *s = a->shape;                                                                                       \
    return attn_prefill_optimized_undo(a->t[Q], a->t[K_CACHE], a->t[V_CACHE], a->t[OUT], s[D_T], s[D_P0], s[D_HQ],     \
                                       s[D_HKV], s[D_D], s[D_P0] + s[D_T], a->workspace, a->workspace_bytes, bit, st, err); \
  }
UNDO_RUNNER(undo_rows128, ATTN_PREFILL_UNDO_ROWS128)
UNDO_RUNNER(undo_gqa_sharing, ATTN_PREFILL_UNDO_GQA_SHARING)
UNDO_RUNNER(undo_causal_skip, ATTN_PREFILL_UNDO_CAUSAL_SKIP)
UNDO_RUNNER(undo_diagonal_mask, ATTN_PREFILL_UNDO_DIAGONAL_MASK)
UNDO_RUNNER(undo_heavy_first, ATTN_PREFILL_UNDO_HEAVY_FIRST)
UNDO_RUNNER(undo_prefetch, ATTN_PREFILL_UNDO_PREFETCH)

static const klab_variant naive = {"naive", KLAB_NAIVE,
                                   "block per (query row, head); fp32 scores in the workspace, fp32 softmax and P.V",
                                   supports_naive, naive_ws, run_naive};
static const klab_variant optimized = {"optimized", KLAB_OPTIMIZED,
                                       "FlashAttention-2 on mma.sync bf16: GQA group per block, cp.async double buffer, "
                                       "online exp2 softmax, diagonal-only masking, heavy tiles first",
                                       supports_optimized, NULL, run_optimized};

static const klab_variant undo_rows128 = {"undo_rows128", KLAB_EXTRA, "optimized with 64-row blocks at every shape",
                                          supports_optimized, NULL, run_undo_rows128};
static const klab_variant undo_gqa_sharing = {"undo_gqa_sharing", KLAB_EXTRA,
                                              "optimized with a block per query head (K/V tiles not shared by the GQA group)",
                                              supports_optimized, NULL, run_undo_gqa_sharing};
static const klab_variant undo_causal_skip = {"undo_causal_skip", KLAB_EXTRA,
                                              "optimized visiting all P0+T keys in every block, every tile masked",
                                              supports_optimized, NULL, run_undo_causal_skip};
static const klab_variant undo_diagonal_mask = {"undo_diagonal_mask", KLAB_EXTRA,
                                                "optimized masking every tile, no per-warp skip of masked tiles",
                                                supports_optimized, NULL, run_undo_diagonal_mask};
static const klab_variant undo_heavy_first = {"undo_heavy_first", KLAB_EXTRA, "optimized with blocks in row order (lightest first)",
                                              supports_optimized, NULL, run_undo_heavy_first};
static const klab_variant undo_prefetch = {"undo_prefetch", KLAB_EXTRA,
                                           "optimized without double buffering (load a K/V tile, wait, compute)",
                                           supports_optimized, NULL, run_undo_prefetch};

static const klab_shape_preset presets[] = {
    {"qwen3-4b prefill T=512", {512, 0, 32, 8, 128}},
    {"qwen3-4b prefill T=2048", {2048, 0, 32, 8, 128}},
    {"qwen3-4b prefill T=8192", {8192, 0, 32, 8, 128}},
    {"qwen3-4b continued prompt T=128 P0=1000", {128, 1000, 32, 8, 128}},
    {"qwen3-8b prefill T=2048 (32/8 heads, as 4b)", {2048, 0, 32, 8, 128}},
    {"qwen3-14b prefill T=2048 (40/8 heads)", {2048, 0, 40, 8, 128}},
};

const klab_op klab_op_attn_prefill = {
    .name = "attn_prefill",
    .summary = "causal GQA attention of T prompt tokens (positions P0..P0+T-1) over the KV cache; bf16, fp32 softmax",
    .ndims = 5,
    .dim_names = {"T", "P0", "HQ", "HKV", "D"},
    .ntensors = 4,
    /* q scale 4: scores q.k/sqrt(D) then spread like a trained model's (std ~4 for normal inputs), so the
     * softmax is peaked, a masking error moves the output visibly, and the online max really changes
     * between key tiles. */
    .tensors = {{"q", KLAB_DT_BF16, KLAB_IN, count_q, 4.0f, 0.0f, NULL},
                {"k_cache", KLAB_DT_BF16, KLAB_IN, count_cache, 1.0f, 0.0f, NULL},
                {"v_cache", KLAB_DT_BF16, KLAB_IN, count_cache, 1.0f, 0.0f, NULL},
                {"out", KLAB_DT_BF16, KLAB_OUT, count_q, 0.0f, 0.0f, NULL}},
    .validate = validate,
    .reference = reference,
    .bytes = bytes,
    .flops = flops,
    .random_shape = random_shape,
    .nvariants = 8,
    .variants = {&naive, &optimized, &undo_rows128, &undo_gqa_sharing, &undo_causal_skip, &undo_diagonal_mask,
                 &undo_heavy_first, &undo_prefetch},
    .npresets = 6,
    .presets = presets,
};
