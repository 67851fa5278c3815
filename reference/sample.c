#include "reference/sample.h"
#include <math.h>
#include <stdlib.h>
#include "reference/argmax.h"

/* Edge cases the header leaves open, fixed here so the GPU op can match them:
 *  - a NaN anywhere in the logits makes the result ref_argmax(logits) (the first NaN), greedy or not;
 *  - when every kept z is -inf the first token of the order is returned with probability 1. */

typedef struct {
  double z;
  int64_t i;
} cand;

/* z descending, then index ascending: a strict total order, so qsort's instability cannot matter. */
static int cand_cmp(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->z > y->z) return -1;
  if (x->z < y->z) return 1;
  return (x->i > y->i) - (x->i < y->i);
}

static int64_t greedy(const float *logits, int64_t V, double *probs_out) {
  int64_t best = ref_argmax(logits, V);
  if (probs_out) {
    for (int64_t i = 0; i < V; i++) probs_out[i] = 0.0;
    probs_out[best] = 1.0;
  }
  return best;
}

/* Steps 4-5: softmax over the first n candidates, then top-p and min-p cut the prefix. Returns the kept
 * count; p[0..kept) holds the (unnormalised within the kept set) probabilities. */
static int64_t cut_prefix(const cand *c, int64_t n, const ref_sample_params *prm, double *p) {
  double zmax = c[0].z, sum = 0.0;
  for (int64_t j = 0; j < n; j++) {
    p[j] = exp(c[j].z - zmax);
    sum += p[j];
  }
  for (int64_t j = 0; j < n; j++) p[j] /= sum;
  int64_t kept = n;
  if (prm->top_p > 0.0f && prm->top_p < 1.0f) {
    double cum = 0.0;
    for (int64_t j = 0; j < n; j++) {
      cum += p[j];
      if (cum >= (double)prm->top_p) {
        kept = j + 1;
        break;
      }
    }
  }
  if (prm->min_p > 0.0f && prm->min_p < 1.0f) {
    /* p_max is p[0]; the candidates are sorted, so the survivors stay a prefix. Scaling by the
     * renormalisation after top-p would not change the comparison. */
    double thresh = (double)prm->min_p * p[0];
    int64_t j = 1;
    while (j < kept && !(p[j] < thresh)) j++;
    kept = j;
  }
  return kept;
}

int64_t ref_sample(const float *logits, int64_t V, const ref_sample_params *prm, double u, double *probs_out) {
  for (int64_t i = 0; i < V; i++)
    if (isnan(logits[i])) return greedy(logits, V, probs_out);
  if (!(prm->temperature > 0.0f)) return greedy(logits, V, probs_out);
  cand *c = malloc((size_t)V * sizeof *c);
  double *p = malloc((size_t)V * sizeof *p);
  if (!c || !p) abort(); /* reference code: V floats' worth, cannot be reported through this API */
  for (int64_t i = 0; i < V; i++) {
    c[i].z = (double)logits[i] / (double)prm->temperature;
    c[i].i = i;
  }
  qsort(c, (size_t)V, sizeof *c, cand_cmp);
  int64_t n = (prm->top_k > 0 && prm->top_k < V) ? prm->top_k : V;
  int64_t kept;
  if (c[0].z == -INFINITY) {
    kept = 1;
    p[0] = 1.0;
  } else {
    kept = cut_prefix(c, n, prm, p);
  }
  double total = 0.0;
  for (int64_t j = 0; j < kept; j++) total += p[j];
  int64_t chosen = c[kept - 1].i;
  double cum = 0.0, target = u * total;
  for (int64_t j = 0; j < kept; j++) {
    cum += p[j];
    if (cum > target) {
      chosen = c[j].i;
      break;
    }
  }
  if (probs_out) {
    for (int64_t i = 0; i < V; i++) probs_out[i] = 0.0;
    for (int64_t j = 0; j < kept; j++) probs_out[c[j].i] = p[j] / total;
  }
  free(c);
  free(p);
  return chosen;
}
