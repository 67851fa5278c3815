/* attn_decode op descriptor: one query token (batch-1 decode) attending causally to a bf16 KV cache with
 * GQA. Gate tensors: q [HQ, D], k_cache and v_cache [HKV, CTX, D] (cache_stride = CTX, every position
 * valid), out [HQ, D], and ctx (one int32 = CTX) so the device-ctx path used inside CUDA graphs is gated too.
 * tests/test_gpu_attn_decode.c covers cache_stride > ctx (garbage past ctx) and device ctx < cache_stride. */
#include <stdlib.h>
#include "harness/bf16.h"
#include "harness/klab.h"
#include "kernels/attn_decode/attn_decode.h"
#include "kernels/attn_decode/variants.h"
#include "reference/attention.h"
#include "reference/rng.h"

enum { D_HQ, D_HKV, D_D, D_CTX };
enum { Q, K_CACHE, V_CACHE, OUT, CTX };

static int64_t count_heads(const int64_t *s) { return s[D_HQ] * s[D_D]; }
static int64_t count_cache(const int64_t *s) { return s[D_HKV] * s[D_CTX] * s[D_D]; }
static int64_t count_one(const int64_t *s) { return 1; }

/* The ctx tensor holds the context length itself: every position of the gate's cache is valid. */
static void fill_ctx(void *host, int64_t count, const int64_t *s, uint64_t seed) {
  for (int64_t i = 0; i < count; i++) ((int32_t *)host)[i] = (int32_t)s[D_CTX];
}

static int validate(const int64_t *s, char *why, size_t n) {
  if (s[D_HQ] < 1 || s[D_HKV] < 1 || s[D_D] < 1 || s[D_CTX] < 1)
    return snprintf(why, n, "HQ, HKV, D and CTX must be >= 1"), 0;
  if (s[D_HQ] % s[D_HKV] != 0)
    return snprintf(why, n, "HQ=%lld is not a multiple of HKV=%lld (GQA groups)", (long long)s[D_HQ], (long long)s[D_HKV]), 0;
  if (s[D_HQ] > 65535) return snprintf(why, n, "HQ=%lld exceeds 65535 heads", (long long)s[D_HQ]), 0;
  if (s[D_CTX] > KLAB_ATTN_DECODE_MAX_CTX)
    return snprintf(why, n, "CTX=%lld exceeds %d", (long long)s[D_CTX], KLAB_ATTN_DECODE_MAX_CTX), 0;
  return 1;
}

static int reference(const void *const *host, double *const *ref, const int64_t *s, klab_err *err) {
  const int64_t nq = count_heads(s), nc = count_cache(s);
  /* calloc: the conversion loops below fill every element; zeroed memory keeps -Wmaybe-uninitialized quiet */
  float *q = calloc((size_t)nq, sizeof *q), *out = calloc((size_t)nq, sizeof *out);
  float *k = calloc((size_t)nc, sizeof *k), *v = calloc((size_t)nc, sizeof *v);
  if (!q || !out || !k || !v) {
    free(q), free(out), free(k), free(v);
    return klab_fail(err, "attn_decode reference: out of memory (cache of %lld elements)", (long long)nc);
  }
  const uint16_t *qb = host[Q], *kb = host[K_CACHE], *vb = host[V_CACHE];
  for (int64_t i = 0; i < nq; i++) q[i] = klab_bf16_to_float(qb[i]);
  for (int64_t i = 0; i < nc; i++) k[i] = klab_bf16_to_float(kb[i]), v[i] = klab_bf16_to_float(vb[i]);
  /* One token at position CTX-1: it attends to positions 0 .. CTX-1. */
  ref_attention(q, k, v, out, 1, s[D_CTX] - 1, s[D_HQ], s[D_HKV], s[D_D], s[D_CTX]);
  for (int64_t i = 0; i < nq; i++) ref[OUT][i] = out[i];
  free(q), free(out), free(k), free(v);
  return 0;
}

/* Minimal traffic: the valid K and V rows once, q once, out once (bf16). */
static double bytes(const int64_t *s) {
  return 2.0 * (2.0 * (double)s[D_HKV] * (double)s[D_CTX] * (double)s[D_D] + 2.0 * (double)s[D_HQ] * (double)s[D_D]);
}
/* q.k and p.v: 2 multiply-adds per (head, position, dim); the softmax is not counted. */
static double flops(const int64_t *s) { return 4.0 * (double)s[D_HQ] * (double)s[D_CTX] * (double)s[D_D]; }

static void random_shape(uint64_t *rng, int64_t *s) {
  static const int64_t heads[][2] = {{16, 8}, {32, 8}, {40, 8}, {64, 8}, {6, 6}};
  /* Chunk granules are 64 (opt_w4: 4 warps x 16) and 128 positions (8 warps): 65, 127, 129 straddle them;
   * 1 and 2 leave most of a tile empty; 1000, 2049, 4097, 5000 split into several chunks with a short
   * last one (4097: a lone position past the last full granule). */
  static const int64_t ctxs[] = {1, 2, 17, 65, 127, 129, 1000, 2049, 4097, 5000};
  uint64_t r = klab_mix64((*rng)++);
  const int nh = (int)(sizeof heads / sizeof heads[0]), nc = (int)(sizeof ctxs / sizeof ctxs[0]);
  s[D_HQ] = heads[r % (uint64_t)nh][0];
  s[D_HKV] = heads[r % (uint64_t)nh][1];
  s[D_D] = (r >> 16) % 4 == 0 ? 64 : 128;
  s[D_CTX] = ctxs[(r >> 24) % (uint64_t)nc];
}

static int supports_naive(const int64_t *s, char *why, size_t n) {
  if (s[D_D] > KLAB_ATTN_DECODE_NAIVE_MAX_D)
    return snprintf(why, n, "D=%lld: naive holds at most %d dims per head", (long long)s[D_D], KLAB_ATTN_DECODE_NAIVE_MAX_D), 0;
  return 1;
}
static int supports_optimized(const int64_t *s, char *why, size_t n) {
  if (s[D_D] != 64 && s[D_D] != 128)
    return snprintf(why, n, "D=%lld: the split-K kernel is built for D = 64 and 128", (long long)s[D_D]), 0;
  return 1;
}
static size_t workspace_optimized(const int64_t *s) {
  return attn_decode_workspace_bytes(s[D_HQ], s[D_HKV], s[D_D], s[D_CTX]);
}
static size_t workspace_nopf(const int64_t *s) {
  return attn_decode_opt_nopf_workspace_bytes(s[D_HQ], s[D_HKV], s[D_D], s[D_CTX]);
}
static size_t workspace_w4(const int64_t *s) { return attn_decode_opt_w4_workspace_bytes(s[D_HQ], s[D_HKV], s[D_D], s[D_CTX]); }

static int run_naive(const klab_args *a, cudaStream_t st, klab_err *err) {
  const int64_t *s = a->shape;
  return attn_decode_naive(a->t[Q], a->t[K_CACHE], a->t[V_CACHE], a->t[OUT], NULL, s[D_CTX], s[D_HQ], s[D_HKV], s[D_D],
                           s[D_CTX], a->workspace, a->workspace_bytes, st, err);
}
static int run_optimized(const klab_args *a, cudaStream_t st, klab_err *err) {
  const int64_t *s = a->shape;
  return attn_decode_optimized(a->t[Q], a->t[K_CACHE], a->t[V_CACHE], a->t[OUT], NULL, s[D_CTX], s[D_HQ], s[D_HKV], s[D_D],
                               s[D_CTX], a->workspace, a->workspace_bytes, st, err);
}
/* Candidates for the next step (kernels/attn_decode/variants.h), host ctx like `optimized`. */
typedef int (*attn_launcher)(const uint16_t *, const uint16_t *, const uint16_t *, uint16_t *, const int32_t *, int64_t,
                             int64_t, int64_t, int64_t, int64_t, void *, size_t, cudaStream_t, klab_err *);
static int run_host_ctx(attn_launcher launch, const klab_args *a, cudaStream_t st, klab_err *err) {
  const int64_t *s = a->shape;
  return launch(a->t[Q], a->t[K_CACHE], a->t[V_CACHE], a->t[OUT], NULL, s[D_CTX], s[D_HQ], s[D_HKV], s[D_D], s[D_CTX],
                a->workspace, a->workspace_bytes, st, err);
}
static int run_nopf(const klab_args *a, cudaStream_t st, klab_err *err) { return run_host_ctx(attn_decode_opt_nopf, a, st, err); }
static int run_w4(const klab_args *a, cudaStream_t st, klab_err *err) { return run_host_ctx(attn_decode_opt_w4, a, st, err); }
static int run_cluster(const klab_args *a, cudaStream_t st, klab_err *err) {
  return run_host_ctx(attn_decode_opt_cluster, a, st, err);
}
/* The engine's graph path: ctx read on the device, grid sized from cache_stride. */
static int run_optimized_devctx(const klab_args *a, cudaStream_t st, klab_err *err) {
  const int64_t *s = a->shape;
  return attn_decode_optimized(a->t[Q], a->t[K_CACHE], a->t[V_CACHE], a->t[OUT], a->t[CTX], s[D_CTX], s[D_HQ], s[D_HKV],
                               s[D_D], s[D_CTX], a->workspace, a->workspace_bytes, st, err);
}

static const klab_variant naive = {"naive", KLAB_NAIVE, "block per query head, serial over ctx, online softmax, fp32",
                                   supports_naive, NULL, run_naive};
static const klab_variant optimized = {
    "optimized", KLAB_OPTIMIZED,
    "split-K flash-decoding: 8-warp block per (KV head, chunk), <= 16 chunks, K/V once per GQA group, mma scores, "
    "next tile prefetched, last block merges in one L2 pass",
    supports_optimized, workspace_optimized, run_optimized};
static const klab_variant optimized_devctx = {"optimized_devctx", KLAB_OPTIMIZED,
                                              "optimized with ctx read on the device (CUDA-graph decode)",
                                              supports_optimized, workspace_optimized, run_optimized_devctx};

static const klab_variant opt_nopf = {"opt_nopf", KLAB_EXTRA, "optimized without the next-tile prefetch",
                                      supports_optimized, workspace_nopf, run_nopf};
static const klab_variant opt_w4 = {"opt_w4", KLAB_EXTRA,
                                    "step-1 block shape (4 warps, <= 32 chunks, ~4 blocks/SM, no prefetch) with the new tail",
                                    supports_optimized, workspace_w4, run_w4};
static const klab_variant opt_cluster = {"opt_cluster", KLAB_EXTRA,
                                         "optimized with the chunks of a KV head in one cluster (<= 16 blocks), merged "
                                         "through distributed shared memory: no workspace, no memset",
                                         supports_optimized, NULL, run_cluster};

/* Qwen3-4B (32/8), -8B (32/8) and -32B (64/8) attention, head_dim 128. */
static const klab_shape_preset presets[] = {
    {"qwen3-4b ctx 128", {32, 8, 128, 128}},     {"qwen3-4b ctx 1024", {32, 8, 128, 1024}},
    {"qwen3-4b ctx 4096", {32, 8, 128, 4096}},   {"qwen3-4b ctx 16384", {32, 8, 128, 16384}},
    {"qwen3-4b ctx 32768", {32, 8, 128, 32768}}, {"qwen3-8b ctx 4096", {32, 8, 128, 4096}},
    {"qwen3-32b ctx 4096", {64, 8, 128, 4096}},
};

const klab_op klab_op_attn_decode = {
    .name = "attn_decode",
    .summary = "one query token, causal GQA over a bf16 KV cache [HKV, CTX, D]; fp32 softmax, bf16 out",
    .ndims = 4,
    .dim_names = {"HQ", "HKV", "D", "CTX"},
    .ntensors = 5,
    .tensors = {{"q", KLAB_DT_BF16, KLAB_IN, count_heads, 1.0f, 0.0f, NULL},
                {"k_cache", KLAB_DT_BF16, KLAB_IN, count_cache, 1.0f, 0.0f, NULL},
                {"v_cache", KLAB_DT_BF16, KLAB_IN, count_cache, 1.0f, 0.0f, NULL},
                {"out", KLAB_DT_BF16, KLAB_OUT, count_heads, 0.0f, 0.0f, NULL},
                {"ctx", KLAB_DT_I32, KLAB_IN, count_one, 0.0f, 0.0f, fill_ctx}},
    .validate = validate,
    .reference = reference,
    .bytes = bytes,
    .flops = flops,
    .random_shape = random_shape,
    .nvariants = 6,
    .variants = {&naive, &optimized, &optimized_devctx, &opt_nopf, &opt_w4, &opt_cluster},
    .npresets = 7,
    .presets = presets,
};
