/* sample: draw the next token from one row of logits with temperature, top-k, top-p (nucleus) and min-p,
 * exactly as reference/sample.h defines it (Hugging Face's warper order, then one inverse-CDF draw).
 *
 * logits [V] (dtype KLAB_DT_F32 or KLAB_DT_BF16), 1 <= V <= 2^31-1. The uniform draw is
 * u = klab_rand_uniform(seed, step) (reference/rng.h) with step = *step_dev when step_dev != NULL (decode
 * inside a captured CUDA graph reads the step from device memory), else `step`. The chosen id goes to
 * *token_out (device int32). When probs_out != NULL it receives the final renormalised distribution [V]
 * fp32: 0 for filtered tokens, and for greedy a 1 at the argmax. temperature <= 0 (or NaN) is greedy:
 * argmax, lowest index on ties; a NaN anywhere in the logits also gives the argmax (the first NaN), like
 * the reference. An infinite temperature is rejected (the reference's order would collapse to index order).
 *
 * workspace: sample_workspace_bytes(V) bytes of device memory, 16-byte aligned, not shared by launches
 * that can overlap; it needs no initialisation (every counter and histogram in it is cleared by the
 * launch itself). No host synchronisation inside; every launch sequence is CUDA-graph capturable (the
 * kernels launched depend only on V, the parameters and probs_out != NULL, never on the data).
 * docs/ops/sample.md describes both variants. */
#ifndef KLAB_KERNELS_SAMPLE_H
#define KLAB_KERNELS_SAMPLE_H
#include <stddef.h>
#include <stdint.h>
#include "harness/klab.h"
#include "reference/sample.h" /* ref_sample_params {temperature, top_k, top_p, min_p} */
#ifdef __cplusplus
extern "C" {
#endif

/* Enough for either variant (the optimized one needs the most: 16 bytes per logit plus fixed tables). */
size_t sample_workspace_bytes(int64_t V);

/* One block, obviously-right bisections over the full logits: correctness baseline, slow (milliseconds at
 * V = 151936). */
int sample_naive(const void *logits, klab_dtype dtype, int64_t V, const ref_sample_params *params, uint64_t seed,
                 const int32_t *step_dev, int64_t step, int32_t *token_out, float *probs_out, void *workspace,
                 size_t workspace_bytes, cudaStream_t stream, klab_err *err);

/* Bucket histogram over the float bit patterns, bucket-partitioned candidates, and a one-block radix select
 * inside the few buckets that hold a boundary: no sort. */
int sample_optimized(const void *logits, klab_dtype dtype, int64_t V, const ref_sample_params *params, uint64_t seed,
                     const int32_t *step_dev, int64_t step, int32_t *token_out, float *probs_out, void *workspace,
                     size_t workspace_bytes, cudaStream_t stream, klab_err *err);
#ifdef __cplusplus
}
#endif
#endif
