/* CPU reference: Qwen3 per-head RMSNorm of q and k (weights [head_dim]) followed by RoPE in the
 * rotate-half (NeoX) layout: for i < d/2, with f_i = theta^(-2i/d) and a = pos * f_i,
 *   out[i] = x[i] cos a - x[i+d/2] sin a,  out[i+d/2] = x[i+d/2] cos a + x[i] sin a.
 * Angles and norms in float64. In place. */
#ifndef KLAB_REF_QK_NORM_ROPE_H
#define KLAB_REF_QK_NORM_ROPE_H
#include <stdint.h>
/* q: [T, n_heads, head_dim]; k: [T, n_kv_heads, head_dim] (float, in place);
 * q_norm_w, k_norm_w: [head_dim] bf16 bits; positions: [T]. head_dim must be even. */
void ref_qk_norm_rope(float *q, float *k, const uint16_t *q_norm_w, const uint16_t *k_norm_w, int64_t T,
                      int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, const int32_t *positions,
                      double theta, float eps);
/* RoPE alone on one vector of head_dim values at position pos (used by the above and by tests). */
void ref_rope_one(float *x, int64_t head_dim, int64_t pos, double theta);
#endif
