#include "reference/qk_norm_rope.h"
#include <math.h>
#include "harness/bf16.h"

void ref_rope_one(float *x, int64_t head_dim, int64_t pos, double theta) {
  int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; i++) {
    double freq = pow(theta, -2.0 * (double)i / (double)head_dim);
    double a = (double)pos * freq;
    double c = cos(a), s = sin(a);
    double x0 = x[i], x1 = x[i + half];
    x[i] = (float)(x0 * c - x1 * s);
    x[i + half] = (float)(x1 * c + x0 * s);
  }
}

/* RMSNorm of one head vector with a [head_dim] weight; result rounded to float (the activation dtype)
 * before RoPE, as the model stores it between the two steps. */
static void head_rmsnorm(float *x, const uint16_t *w, int64_t d, float eps) {
  double ss = 0.0;
  for (int64_t i = 0; i < d; i++) ss += (double)x[i] * (double)x[i];
  double inv = 1.0 / sqrt(ss / (double)d + (double)eps);
  for (int64_t i = 0; i < d; i++) x[i] = (float)((double)x[i] * inv * (double)klab_bf16_to_float(w[i]));
}

void ref_qk_norm_rope(float *q, float *k, const uint16_t *q_norm_w, const uint16_t *k_norm_w, int64_t T,
                      int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, const int32_t *positions,
                      double theta, float eps) {
  for (int64_t t = 0; t < T; t++) {
    for (int64_t h = 0; h < n_heads; h++) {
      float *v = q + (t * n_heads + h) * head_dim;
      head_rmsnorm(v, q_norm_w, head_dim, eps);
      ref_rope_one(v, head_dim, positions[t], theta);
    }
    for (int64_t h = 0; h < n_kv_heads; h++) {
      float *v = k + (t * n_kv_heads + h) * head_dim;
      head_rmsnorm(v, k_norm_w, head_dim, eps);
      ref_rope_one(v, head_dim, positions[t], theta);
    }
  }
}
