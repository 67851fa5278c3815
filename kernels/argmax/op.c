/* argmax op descriptor: the index of the maximum of fp32 logits x[N] (greedy decoding), lowest index on
 * ties, first NaN wins. The bf16 path of the same launchers is gated by tests/test_gpu_argmax.c. */
#include <stdlib.h>
#include "harness/klab.h"
#include "kernels/argmax/argmax.h"
#include "reference/argmax.h"
#include "reference/rng.h"

enum { D_N };
enum { X, INDEX };

static int64_t count_x(const int64_t *s) { return s[D_N]; }
static int64_t count_one(const int64_t *s) { return 1; }

static int validate(const int64_t *s, char *why, size_t n) {
  if (s[D_N] < 1 || s[D_N] > 2147483647)
    return snprintf(why, n, "N=%lld must be in [1, 2^31-1] (the index is int32)", (long long)s[D_N]), 0;
  return 1;
}

static int reference(const void *const *host, double *const *ref, const int64_t *s, klab_err *err) {
  ref[INDEX][0] = (double)ref_argmax(host[X], s[D_N]);
  return 0;
}

/* Minimal traffic: x read once, the index written. */
static double bytes(const int64_t *s) { return 4.0 * (double)s[D_N] + 4.0; }
static double flops(const int64_t *s) { return (double)s[D_N]; } /* one comparison per element */

static void random_shape(uint64_t *rng, int64_t *s) {
  static const int64_t N_awkward[] = {1,    2,     3,     7,      31,     32,      33,      1000,     4095,    8192,
                                      8193, 12345, 65536, 151936, 151937, 1000003, 1 << 20, 16777217, 1 << 24};
  uint64_t r = klab_mix64((*rng)++);
  s[D_N] = N_awkward[(r >> 8) % (sizeof N_awkward / sizeof N_awkward[0])];
}

static size_t workspace(const int64_t *s) { return argmax_workspace_bytes(s[D_N]); }

static int run_naive(const klab_args *a, cudaStream_t st, klab_err *err) {
  return argmax_naive(a->t[X], KLAB_DT_F32, a->shape[D_N], a->t[INDEX], a->workspace, a->workspace_bytes, st, err);
}
static int run_optimized(const klab_args *a, cudaStream_t st, klab_err *err) {
  return argmax_optimized(a->t[X], KLAB_DT_F32, a->shape[D_N], a->t[INDEX], a->workspace, a->workspace_bytes, st, err);
}

static const klab_variant naive = {"naive", KLAB_NAIVE, "one block, scalar loads, shared-memory tree of (value, index)",
                                   NULL, NULL, run_naive};
static const klab_variant optimized = {"optimized", KLAB_OPTIMIZED,
                                       "16-byte loads, shuffle reductions, last block (atomic ticket) reduces the partials",
                                       NULL, workspace, run_optimized};

static const klab_shape_preset presets[] = {
    {"qwen3 vocab logits (launch-latency bound)", {151936}},
    {"DRAM-sized 256 MiB", {1 << 26}},
};

const klab_op klab_op_argmax = {
    .name = "argmax",
    .summary = "index of the max of fp32 x[N]; lowest index on ties, first NaN wins (torch.argmax)",
    .ndims = 1,
    .dim_names = {"N"},
    .ntensors = 2,
    .tensors = {{"x", KLAB_DT_F32, KLAB_IN, count_x, 1.0f, 0.0f, NULL},
                {"index", KLAB_DT_I32, KLAB_OUT, count_one, 0.0f, 0.0f, NULL}},
    .validate = validate,
    .reference = reference,
    .bytes = bytes,
    .flops = flops,
    .random_shape = random_shape,
    .nvariants = 2,
    .variants = {&naive, &optimized},
    .npresets = 2,
    .presets = presets,
};
