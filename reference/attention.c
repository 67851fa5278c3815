#include "reference/attention.h"
#include <math.h>
#include <stdlib.h>

/* One query row against its KV head: scores, a max-subtracted softmax and the weighted sum of V, all in
 * float64; the output is rounded to float once. */
static void attend_one(const float *q, const float *kc, const float *vc, float *out, int64_t n_ctx, int64_t d,
                       double scale, double *scores, double *acc) {
  double mx = -INFINITY;
  for (int64_t j = 0; j < n_ctx; j++) {
    const float *kr = kc + j * d;
    double s = 0.0;
    for (int64_t i = 0; i < d; i++) s += (double)q[i] * (double)kr[i];
    scores[j] = s * scale;
    if (scores[j] > mx) mx = scores[j];
  }
  double sum = 0.0;
  for (int64_t j = 0; j < n_ctx; j++) {
    scores[j] = exp(scores[j] - mx);
    sum += scores[j];
  }
  for (int64_t i = 0; i < d; i++) acc[i] = 0.0;
  for (int64_t j = 0; j < n_ctx; j++) {
    const float *vr = vc + j * d;
    double p = scores[j] / sum;
    for (int64_t i = 0; i < d; i++) acc[i] += p * (double)vr[i];
  }
  for (int64_t i = 0; i < d; i++) out[i] = (float)acc[i];
}

void ref_attention(const float *q, const float *k_cache, const float *v_cache, float *out, int64_t T, int64_t p0,
                   int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t cache_stride) {
  int64_t group = n_heads / n_kv_heads;
  double scale = 1.0 / sqrt((double)head_dim);
  double *scores = malloc((size_t)(p0 + T) * sizeof *scores);
  double *acc = malloc((size_t)head_dim * sizeof *acc);
  if (!scores || !acc) abort(); /* reference code: no way to report; sizes are tiny next to the cache */
  for (int64_t t = 0; t < T; t++) {
    int64_t n_ctx = p0 + t + 1; /* causal: positions 0 .. p0+t */
    for (int64_t h = 0; h < n_heads; h++) {
      int64_t kvh = h / group;
      const float *kc = k_cache + kvh * cache_stride * head_dim;
      const float *vc = v_cache + kvh * cache_stride * head_dim;
      attend_one(q + (t * n_heads + h) * head_dim, kc, vc, out + (t * n_heads + h) * head_dim, n_ctx, head_dim, scale,
                 scores, acc);
    }
  }
  free(scores);
  free(acc);
}
