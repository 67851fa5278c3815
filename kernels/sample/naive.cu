// sample, naive: one block of 1024 threads walks the whole row for every question it asks, and finds each
// boundary of the reference's sorted order by bisection over the 64-bit composite keys
// (kernels/sample/sample_common.cuh): "the element at position p" is the largest key T with
// #{keys >= T} >= p + 1, and "the first element whose cumulative weight reaches theta" is the largest T with
// sum{w : key >= T} >= theta. Both predicates are monotone in T, so 64 halvings land exactly on an element's
// key; nothing is sorted and nothing is clever. Weights are computed once into the workspace (double [V]).
// Slow on purpose (a few milliseconds at V = 151936): it is the correctness baseline the optimized
// variant is checked against besides the CPU reference, and it shares none of its search logic.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include "kernels/sample/sample_common.cuh"
#include "reference/rng.h"

#define NAIVE_THREADS 1024

typedef struct {
  const void *logits;
  int is_bf16;
  int64_t V;
  const double *w;     // weights [V], written by this block before any search
  uint64_t *red_u64;   // shared scratch [32]
  double *red_f64;     // shared scratch [32]
} naive_row;

static __device__ uint64_t naive_key(const naive_row *r, int64_t i) {
  return sample_composite(sample_load_logit(r->logits, r->is_bf16, i), i);
}

// #{i : key_i >= T}
static __device__ uint64_t naive_count_ge(const naive_row *r, uint64_t T) {
  uint64_t n = 0;
  for (int64_t i = threadIdx.x; i < r->V; i += blockDim.x) n += naive_key(r, i) >= T;
  return sample_block_sum_u64(n, r->red_u64);
}

// sum{w_i : key_i >= T}: the cumulative weight of the order up to and including the element with key T.
static __device__ double naive_weight_ge(const naive_row *r, uint64_t T) {
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < r->V; i += blockDim.x)
    if (naive_key(r, i) >= T) s += r->w[i];
  return sample_block_sum_f64(s, r->red_f64);
}

// Key of the element at 0-based position pos of the order (pos < V). Invariant: count_ge(lo) >= pos + 1 and
// count_ge(hi) < pos + 1 (no key is all ones: the largest order key of a number is 0xff800000).
static __device__ uint64_t naive_select_position(const naive_row *r, uint64_t pos) {
  uint64_t lo = 0, hi = UINT64_MAX;
  while (hi - lo > 1) {
    const uint64_t mid = lo + (hi - lo) / 2;
    if (naive_count_ge(r, mid) >= pos + 1) lo = mid;
    else hi = mid;
  }
  return lo;
}

static __device__ __forceinline__ int naive_reaches(double cum, double theta, int strict) {
  return strict ? cum > theta : cum >= theta;
}

// The first element of the order (key >= lo_bound) whose inclusive cumulative weight reaches theta
// (> theta when strict). 0 when even the cumulative weight at lo_bound does not reach it. theta >= 0, and
// > 0 when not strict, so the weight above the largest key (0) never reaches it.
static __device__ int naive_select_weight(const naive_row *r, double theta, int strict, uint64_t lo_bound, uint64_t *key) {
  if (!naive_reaches(naive_weight_ge(r, lo_bound), theta, strict)) return 0;
  uint64_t lo = lo_bound, hi = UINT64_MAX;
  while (hi - lo > 1) {
    const uint64_t mid = lo + (hi - lo) / 2;
    if (naive_reaches(naive_weight_ge(r, mid), theta, strict)) lo = mid;
    else hi = mid;
  }
  *key = lo;
  return 1;
}

__global__ void __launch_bounds__(NAIVE_THREADS)
sample_naive_kernel(const void *logits, int is_bf16, int64_t V, ref_sample_params p, uint64_t seed, const int32_t *step_dev,
                    int64_t step, int32_t *token_out, float *probs_out, double *w) {
  __shared__ uint64_t red_u64[32];
  __shared__ double red_f64[32];
  const naive_row row = {logits, is_bf16, V, w, red_u64, red_f64};

  // The first element of the order (with NaN above everything): the argmax, and greedy or not.
  uint64_t best = 0;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
    const uint64_t k = naive_key(&row, i);
    best = k > best ? k : best;
  }
  best = sample_block_max_u64(best, red_u64);
  const sample_stats st = sample_decode_stats(best, p.temperature);
  if (st.greedy) {
    if (threadIdx.x == 0) *token_out = (int32_t)st.argmax;
    if (probs_out)
      for (int64_t i = threadIdx.x; i < V; i += blockDim.x) probs_out[i] = i == st.argmax ? 1.0f : 0.0f;
    return;
  }
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x)
    w[i] = sample_weight(sample_load_logit(logits, is_bf16, i), st.lmax, p.temperature, st.zmax);
  __syncthreads();  // the block's own global writes are visible to it after the barrier

  // Step 3 of the reference: top-k keeps the first n_k of the order; S is the softmax denominator over them.
  const int64_t n_k = (p.top_k > 0 && (int64_t)p.top_k < V) ? (int64_t)p.top_k : V;
  const uint64_t key_k = n_k < V ? naive_select_position(&row, (uint64_t)(n_k - 1)) : 0;
  const double S = naive_weight_ge(&row, key_k);

  // Step 4: top-p keeps the shortest prefix whose cumulative p = w / S reaches top_p (cum_w >= top_p * S).
  int64_t n_p = V;
  if (p.top_p > 0.0f && p.top_p < 1.0f) {
    uint64_t key_p;
    if (naive_select_weight(&row, (double)p.top_p * S, 0, key_k, &key_p)) n_p = (int64_t)naive_count_ge(&row, key_p);
  }

  // Step 5: min-p drops p_j < min_p * p_max (p_max = 1 / S). The survivors are a prefix of the order (w does
  // not increase along it), so their count is the prefix length.
  int64_t n_m = V;
  if (p.min_p > 0.0f && p.min_p < 1.0f) {
    const double thresh = (double)p.min_p * (1.0 / S);
    uint64_t n = 0;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) n += !(w[i] / S < thresh);
    n_m = (int64_t)sample_block_sum_u64(n, red_u64);
  }

  // The kept set is the prefix of n_kept >= 1 elements (the first element passes every filter).
  int64_t n_kept = n_k < n_p ? n_k : n_p;
  n_kept = n_m < n_kept ? n_m : n_kept;
  if (n_kept < 1) n_kept = 1;
  const uint64_t key_last = naive_select_position(&row, (uint64_t)(n_kept - 1));
  const double w_kept = naive_weight_ge(&row, key_last);

  // Step 6: the first kept element whose cumulative weight exceeds u * total; the last kept one if none does.
  const int64_t s = step_dev ? (int64_t)*step_dev : step;
  const double u = klab_rand_uniform(seed, (uint64_t)s);
  uint64_t chosen = key_last, hit;
  if (naive_select_weight(&row, u * w_kept, 1, key_last, &hit)) chosen = hit;
  if (threadIdx.x == 0) *token_out = (int32_t)sample_composite_index(chosen);
  if (probs_out)
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) probs_out[i] = naive_key(&row, i) >= key_last ? (float)(w[i] / w_kept) : 0.0f;
}

// ---- host launcher ----
extern "C" int sample_naive(const void *logits, klab_dtype dtype, int64_t V, const ref_sample_params *params, uint64_t seed,
                            const int32_t *step_dev, int64_t step, int32_t *token_out, float *probs_out, void *workspace,
                            size_t workspace_bytes, cudaStream_t stream, klab_err *err) {
  if (sample_check_args("naive", logits, dtype, V, params, token_out, err)) return -1;
  const size_t need = (size_t)V * sizeof(double);
  if (!workspace || workspace_bytes < need || (uintptr_t)workspace % 16 != 0)
    return klab_fail(err, "sample naive V=%lld: needs a 16-byte aligned workspace of %zu bytes (got %zu at %p)", (long long)V,
                     need, workspace_bytes, workspace);
  char ctx[64];
  snprintf(ctx, sizeof ctx, "sample naive V=%lld", (long long)V);
  sample_naive_kernel<<<1, NAIVE_THREADS, 0, stream>>>(logits, dtype == KLAB_DT_BF16, V, *params, seed, step_dev, step,
                                                       token_out, probs_out, (double *)workspace);
  KLAB_CHECK_LAUNCH(err, ctx);
  return 0;
}
