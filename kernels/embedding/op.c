/* embedding op descriptor: out[t,:] = table[ids[t],:]; ids int32 (custom fill in [0,V)), table/out bf16,
 * bad_ids: the count of ids outside [0,V) (0 for the gate's inputs). */
#include <stdlib.h>
#include "harness/bf16.h"
#include "harness/klab.h"
#include "kernels/embedding/embedding.h"
#include "reference/embedding.h"
#include "reference/rng.h"

enum { D_T, D_V, D_H };
enum { IDS, TABLE, OUT, BAD_IDS };

static int64_t count_ids(const int64_t *s) { return s[D_T]; }
static int64_t count_table(const int64_t *s) { return s[D_V] * s[D_H]; }
static int64_t count_out(const int64_t *s) { return s[D_T] * s[D_H]; }
static int64_t count_one(const int64_t *s) { return 1; }

/* Token ids uniform in [0,V): rows are read in random order, as a real prompt does. */
static void fill_ids(void *host, int64_t count, const int64_t *s, uint64_t seed) {
  int32_t *ids = host;
  for (int64_t t = 0; t < count; t++) ids[t] = (int32_t)(klab_rand_u64(seed, (uint64_t)t) % (uint64_t)s[D_V]);
}

static int validate(const int64_t *s, char *why, size_t n) {
  if (s[D_T] < 1 || s[D_V] < 1 || s[D_H] < 1) return snprintf(why, n, "T, V and H must be >= 1"), 0;
  if (s[D_T] > 2147483647 || s[D_V] > 2147483647 || s[D_H] > 2147483647)
    return snprintf(why, n, "T=%lld, V=%lld and H=%lld must each be <= 2^31-1 (ids are int32)", (long long)s[D_T],
                    (long long)s[D_V], (long long)s[D_H]),
           0;
  return 1;
}

/* The kernels' contract: a bad id gives a zero row and is counted. ref_embedding stops at a bad id, so it is
 * run one token at a time; the gate's ids are all valid, but the adapter states the full contract. */
static int reference(const void *const *host, double *const *ref, const int64_t *s, klab_err *err) {
  const int64_t T = s[D_T], V = s[D_V], H = s[D_H];
  const int32_t *ids = host[IDS];
  float *row = malloc((size_t)H * sizeof *row);
  if (!row) return klab_fail(err, "embedding reference: out of memory (H=%lld)", (long long)H);
  int64_t bad = 0;
  for (int64_t t = 0; t < T; t++) {
    int ok = ref_embedding(&ids[t], 1, host[TABLE], V, H, row) < 0;
    bad += !ok;
    for (int64_t i = 0; i < H; i++) ref[OUT][t * H + i] = ok ? (double)row[i] : 0.0;
  }
  ref[BAD_IDS][0] = (double)bad;
  free(row);
  return 0;
}

/* Minimal traffic: the T rows read, the T rows written, the ids, and the 4-byte bad-id count. */
static double bytes(const int64_t *s) { return 2.0 * 2.0 * (double)s[D_T] * (double)s[D_H] + 4.0 * (double)s[D_T] + 4.0; }
static double flops(const int64_t *s) { return 0.0; } /* a copy */

static void random_shape(uint64_t *rng, int64_t *s) {
  static const int64_t H_awkward[] = {1, 7, 8, 100, 128, 1000, 1024, 2560, 4095, 4096, 5120, 8200};
  static const int64_t V_choice[] = {1, 2, 3, 100, 5000, 32000, 151936};
  uint64_t r = klab_mix64((*rng)++);
  s[D_T] = (int64_t)(r % 64) + 1;
  if (r % 5 == 0) s[D_T] = 1000 + (int64_t)(r % 3333);
  s[D_V] = V_choice[(r >> 12) % (sizeof V_choice / sizeof V_choice[0])];
  s[D_H] = H_awkward[(r >> 24) % (sizeof H_awkward / sizeof H_awkward[0])];
  if (s[D_V] * s[D_H] > 400000000) s[D_H] = 2560; /* keep the table under 800 MB */
}

static int run_naive(const klab_args *a, cudaStream_t st, klab_err *err) {
  return embedding_naive(a->t[IDS], a->t[TABLE], a->t[OUT], a->t[BAD_IDS], a->shape[D_T], a->shape[D_V], a->shape[D_H], st, err);
}
static int run_optimized(const klab_args *a, cudaStream_t st, klab_err *err) {
  return embedding_optimized(a->t[IDS], a->t[TABLE], a->t[OUT], a->t[BAD_IDS], a->shape[D_T], a->shape[D_V], a->shape[D_H], st,
                             err);
}

/* The candidates beside optimized: same contract, all shapes (H % 8 != 0 takes the shared scalar kernel). */
#define RUN_CANDIDATE(fn)                                                                                          \
  static int run_##fn(const klab_args *a, cudaStream_t st, klab_err *err) {                                        \
    return embedding_##fn(a->t[IDS], a->t[TABLE], a->t[OUT], a->t[BAD_IDS], a->shape[D_T], a->shape[D_V], a->shape[D_H], \
                          st, err);                                                                                \
  }
RUN_CANDIDATE(vpl4)
RUN_CANDIDATE(vpl16)
RUN_CANDIDATE(cached)
RUN_CANDIDATE(v1)
static const klab_variant naive = {"naive", KLAB_NAIVE, "block per token, scalar bf16 copies", NULL, NULL, run_naive};
static const klab_variant optimized = {"optimized", KLAB_OPTIMIZED,
                                       "warp per row segment, all <= 10 16-byte loads per lane in flight before the "
                                       "stores, balanced grid, next id prefetched, evict-first hints",
                                       NULL, NULL, run_optimized};
static const klab_variant vpl4 = {"vpl4", KLAB_EXTRA, "optimized with 4 vectors per lane per task (more, smaller tasks)",
                                  NULL, NULL, run_vpl4};
static const klab_variant vpl16 = {"vpl16", KLAB_EXTRA, "optimized with 16 vectors per lane per task (92 registers)", NULL,
                                   NULL, run_vpl16};
static const klab_variant cached = {"cached", KLAB_EXTRA, "previous optimized: the same kernel without the evict-first hints",
                                    NULL, NULL, run_cached};
static const klab_variant v1 = {"v1", KLAB_EXTRA, "previous optimized: warp per row, 8 + 2 loads per lane, capped grid",
                                NULL, NULL, run_v1};

static const klab_shape_preset presets[] = {
    {"decode qwen3-4b embed_tokens", {1, 151936, 2560}},
    {"prefill 4096 qwen3-4b", {4096, 151936, 2560}},
    {"prefill 4096 qwen3-8b", {4096, 151936, 4096}},
    {"prefill 16384 qwen3-4b (moves > 3x L2)", {16384, 151936, 2560}},
};

const klab_op klab_op_embedding = {
    .name = "embedding",
    .summary = "out[t,:] = table[ids[t],:]; bf16 rows gathered by int32 id, bad ids give zero rows and are counted",
    .ndims = 3,
    .dim_names = {"T", "V", "H"},
    .ntensors = 4,
    .tensors = {{"ids", KLAB_DT_I32, KLAB_IN, count_ids, 1.0f, 0.0f, fill_ids},
                {"table", KLAB_DT_BF16, KLAB_IN, count_table, 0.02f, 0.0f, NULL},
                {"out", KLAB_DT_BF16, KLAB_OUT, count_out, 0.0f, 0.0f, NULL},
                {"bad_ids", KLAB_DT_I32, KLAB_OUT, count_one, 0.0f, 0.0f, NULL}},
    .validate = validate,
    .reference = reference,
    .bytes = bytes,
    .flops = flops,
    .random_shape = random_shape,
    .nvariants = 6,
    .variants = {&naive, &optimized, &vpl4, &vpl16, &cached, &v1},
    .npresets = 4,
    .presets = presets,
};
