/* CPU reference: sampling from logits with temperature, top-k, top-p (nucleus) and min-p, applied in
 * that order (Hugging Face's warper order), then one draw by inverse CDF.
 *
 * Definition (the GPU op must reproduce it exactly):
 *  1. temperature <= 0 means greedy: return ref_argmax(logits). Otherwise z_i = logits_i / temperature.
 *  2. Order candidates by z descending, ties by lower index first.
 *  3. top_k > 0: keep the first top_k candidates of that order (top_k <= 0 or >= V: keep all).
 *  4. p_i = softmax(z) over the kept set (float64). top_p in (0,1): keep the shortest prefix of the order
 *     whose cumulative p reaches top_p (at least one token); top_p >= 1 keeps all.
 *  5. min_p in (0,1): drop tokens with p_i < min_p * p_max (p over the set kept so far).
 *  6. Renormalise over the kept set; walk it in the order of step 2 accumulating p and return the first
 *     token whose cumulative p exceeds u * total (u in [0,1)); the last kept token if none does.
 * u comes from klab_rand_uniform(seed, step) (reference/rng.h), so CPU and GPU draw the same u. */
#ifndef KLAB_REF_SAMPLE_H
#define KLAB_REF_SAMPLE_H
#include <stdint.h>

typedef struct {
  float temperature; /* <= 0: greedy */
  int32_t top_k;     /* <= 0: off */
  float top_p;       /* >= 1: off */
  float min_p;       /* <= 0: off */
} ref_sample_params;

/* logits: [V] float. probs_out (optional, [V]): the final renormalised distribution, 0 for filtered
 * tokens (for greedy: 1 at the argmax). Returns the chosen token id. */
int64_t ref_sample(const float *logits, int64_t V, const ref_sample_params *p, double u, double *probs_out);
#endif
