/* CPU reference ops against values computed by hand (the formulas are in each test's comments), so a
 * change of definition in the reference/ sources is caught here before the GPU gates inherit it. */
#include <math.h>
#include <string.h>
#include "harness/bf16.h"
#include "reference/add_rmsnorm.h"
#include "reference/argmax.h"
#include "reference/attention.h"
#include "reference/embedding.h"
#include "reference/qk_norm_rope.h"
#include "reference/sample.h"
#include "reference/silu_mul.h"
#include "test_util.h"

#define TOL 1e-6

static void bf16_array(const float *v, uint16_t *out, int n) {
  for (int i = 0; i < n; i++) out[i] = klab_float_to_bf16(v[i]);
}

static void test_embedding(void) {
  const float tv[] = {1, 2, 3, -4, 0.5f, 0.25f}; /* V=3, H=2; exact in bf16 */
  uint16_t table[6];
  bf16_array(tv, table, 6);
  float out[4] = {9, 9, 9, 9};
  int32_t ids[] = {2, 0};
  CHECK(ref_embedding(ids, 2, table, 3, 2, out) == -1);
  CHECK(out[0] == 0.5f && out[1] == 0.25f && out[2] == 1 && out[3] == 2);
  int32_t bad[] = {1, 3};
  float o2[4] = {9, 9, 9, 9};
  CHECK(ref_embedding(bad, 2, table, 3, 2, o2) == 1); /* position of the first bad id */
  CHECK(o2[0] == 3 && o2[1] == -4 && o2[2] == 9);      /* rows before it written, from it untouched */
  int32_t neg[] = {-1};
  CHECK(ref_embedding(neg, 1, table, 3, 2, o2) == 0);
}

static void test_add_rmsnorm(void) {
  /* r = [1,2] + [2,2] = [3,4]; mean square 12.5; y = r / sqrt(12.5) * w, w = [1, 2]. */
  float r[2] = {1, 2}, x[2] = {2, 2}, y[2];
  const float wv[2] = {1, 2};
  uint16_t w[2];
  bf16_array(wv, w, 2);
  ref_add_rmsnorm(r, x, w, y, 1, 2, 0.0f);
  CHECK(r[0] == 3 && r[1] == 4);
  CHECK_NEAR(y[0], 3 / sqrt(12.5), TOL);
  CHECK_NEAR(y[1], 8 / sqrt(12.5), TOL);
  /* eps enters under the root; two rows are independent. */
  float r2[4] = {0, 0, 1, 1}, x2[4] = {0, 0, 0, 0}, y2[4];
  uint16_t w2[2] = {0x3f80, 0x3f80};
  ref_add_rmsnorm(r2, x2, w2, y2, 2, 2, 1.0f);
  CHECK(y2[0] == 0 && y2[1] == 0);
  CHECK_NEAR(y2[2], 1 / sqrt(2.0), TOL);
}

static void test_rope(void) {
  /* d=4, pos=2, theta=100: pair (0,2) turns by 2 rad (f0 = 1), pair (1,3) by 0.2 rad (f1 = 100^-0.5). */
  float x[4] = {1, 2, 3, 4};
  ref_rope_one(x, 4, 2, 100.0);
  CHECK_NEAR(x[0], 1 * cos(2.0) - 3 * sin(2.0), TOL);
  CHECK_NEAR(x[2], 3 * cos(2.0) + 1 * sin(2.0), TOL);
  CHECK_NEAR(x[1], 2 * cos(0.2) - 4 * sin(0.2), TOL);
  CHECK_NEAR(x[3], 4 * cos(0.2) + 2 * sin(0.2), TOL);
  float z[4] = {1, 2, 3, 4};
  ref_rope_one(z, 4, 0, 1e6); /* position 0: identity */
  CHECK(z[0] == 1 && z[1] == 2 && z[2] == 3 && z[3] == 4);
}

static void test_qk_norm_rope(void) {
  /* q head [1,0,0,0]: mean square 0.25 -> normalised [2,0,0,0], times w=[1,..]; at position 1 with theta
   * 1e4 the pair (0,2) turns by 1 rad: [2cos1, 0, 2sin1, 0]. k [0,0,0,3] with w=[1,1,1,0.5]:
   * mean square 2.25 -> [0,0,0,2] * 0.5 = [0,0,0,1]; pair (1,3) turns by 1e4^-0.5 = 0.01 rad. */
  float q[4] = {1, 0, 0, 0}, k[4] = {0, 0, 0, 3};
  const float qw[4] = {1, 1, 1, 1}, kw[4] = {1, 1, 1, 0.5f};
  uint16_t qwb[4], kwb[4];
  bf16_array(qw, qwb, 4);
  bf16_array(kw, kwb, 4);
  int32_t pos[1] = {1};
  ref_qk_norm_rope(q, k, qwb, kwb, 1, 1, 1, 4, pos, 1e4, 0.0f);
  CHECK_NEAR(q[0], 2 * cos(1.0), TOL);
  CHECK_NEAR(q[1], 0, TOL);
  CHECK_NEAR(q[2], 2 * sin(1.0), TOL);
  CHECK_NEAR(q[3], 0, TOL);
  CHECK_NEAR(k[1], -sin(0.01), TOL);
  CHECK_NEAR(k[3], cos(0.01), TOL);
  CHECK_NEAR(k[0], 0, TOL);
}

static void test_attention(void) {
  /* One head, d=2, cache stride 3 (one spare slot). k0=[1,0], k1=[0,1]; v0=[1,2], v1=[3,4].
   * Query [1,0] at position 1 (p0=1, T=1): scores [1, 0]/sqrt(2); p = softmax; out = p0 v0 + p1 v1. */
  float kc[6] = {1, 0, 0, 1, 99, 99}, vc[6] = {1, 2, 3, 4, 99, 99};
  float q[2] = {1, 0}, out[2];
  ref_attention(q, kc, vc, out, 1, 1, 1, 1, 2, 3);
  double p0 = exp(1 / sqrt(2.0)) / (exp(1 / sqrt(2.0)) + 1);
  CHECK_NEAR(out[0], p0 * 1 + (1 - p0) * 3, TOL);
  CHECK_NEAR(out[1], p0 * 2 + (1 - p0) * 4, TOL);
  /* Causal prefill (T=2, p0=0): token 0 sees only position 0 -> exactly v0. */
  float q2[4] = {0, 5, 1, 0}, out2[4];
  ref_attention(q2, kc, vc, out2, 2, 0, 1, 1, 2, 3);
  CHECK(out2[0] == 1 && out2[1] == 2);
  CHECK_NEAR(out2[2], p0 * 1 + (1 - p0) * 3, TOL);
  /* GQA: 4 query heads on 2 KV heads; heads 2,3 read KV head 1 (whose only value is [7,8]). */
  float kc2[2 * 1 * 2] = {1, 0, 0, 1}, vc2[4] = {5, 6, 7, 8};
  float q3[8] = {1, 1, 1, 1, 1, 1, 1, 1}, out3[8];
  ref_attention(q3, kc2, vc2, out3, 1, 0, 4, 2, 2, 1);
  CHECK(out3[0] == 5 && out3[1] == 6 && out3[2] == 5 && out3[3] == 6);
  CHECK(out3[4] == 7 && out3[5] == 8 && out3[6] == 7 && out3[7] == 8);
}

static void test_silu_mul(void) {
  /* gu row = [g | u]: silu(0)*5 = 0, silu(1)*2 = 2/(1+e^-1), silu(-1)*3 = -3/(1+e). */
  float gu[6] = {0, 1, -1, 5, 2, 3}, out[3];
  ref_silu_mul(gu, out, 1, 3);
  CHECK_NEAR(out[0], 0, TOL);
  CHECK_NEAR(out[1], 2 / (1 + exp(-1.0)), TOL);
  CHECK_NEAR(out[2], -3 / (1 + exp(1.0)), TOL);
}

static void test_argmax(void) {
  float a[] = {1, 3, 3, 2};
  CHECK(ref_argmax(a, 4) == 1); /* lowest index on ties */
  float b[] = {1, NAN, 5, NAN};
  CHECK(ref_argmax(b, 4) == 1); /* first NaN wins */
  float c[] = {-INFINITY, -INFINITY};
  CHECK(ref_argmax(c, 2) == 0);
}

static void test_sample(void) {
  /* logits [1,2,3,0], T=1: p = softmax = [e^1, e^2, e^3, 1]/S over order (2,1,0,3). */
  const float lg[4] = {1, 2, 3, 0};
  double S = exp(1) + exp(2) + exp(3) + 1, p2 = exp(3) / S, p1 = exp(2) / S;
  double probs[4];
  ref_sample_params greedy = {0, 0, 1, 0};
  CHECK(ref_sample(lg, 4, &greedy, 0.99, probs) == 2);
  CHECK(probs[2] == 1 && probs[0] == 0);
  ref_sample_params full = {1, 0, 1, 0};
  CHECK(ref_sample(lg, 4, &full, 0.0, NULL) == 2);
  CHECK(ref_sample(lg, 4, &full, p2 - 1e-9, NULL) == 2);
  CHECK(ref_sample(lg, 4, &full, p2 + 1e-9, NULL) == 1);
  CHECK(ref_sample(lg, 4, &full, 0.999999, probs) == 3); /* last in the order */
  CHECK_NEAR(probs[0], exp(1) / S, 1e-12);
  /* top-k 1: always the best. */
  ref_sample_params k1 = {1, 1, 1, 0};
  CHECK(ref_sample(lg, 4, &k1, 0.999, NULL) == 2);
  /* top-p 0.8: cumulative p2 = 0.644 < 0.8, p2 + p1 = 0.881 >= 0.8 -> keep {2, 1}, renormalised to
   * softmax([3, 2]) = [1/(1+e^-1), ...]. */
  ref_sample_params tp = {1, 0, 0.8f, 0};
  CHECK(ref_sample(lg, 4, &tp, 0.7, probs) == 2);
  CHECK_NEAR(probs[2], 1 / (1 + exp(-1.0)), 1e-12);
  CHECK(probs[0] == 0 && probs[3] == 0);
  CHECK(ref_sample(lg, 4, &tp, 0.75, NULL) == 1);
  CHECK(ref_sample(lg, 4, &tp, 0.999999, NULL) == 1);
  /* min-p 0.2: threshold 0.2 * p2 = 0.129 keeps p2, p1 (0.237), drops e/S = 0.087. */
  ref_sample_params mp = {1, 0, 1, 0.2f};
  ref_sample(lg, 4, &mp, 0.5, probs);
  CHECK(probs[0] == 0 && probs[3] == 0 && probs[1] > 0);
  CHECK_NEAR(probs[1], p1 / (p1 + p2), 1e-12);
  ref_sample_params mp2 = {1, 0, 1, 0.1f}; /* threshold 0.064 keeps e/S too */
  ref_sample(lg, 4, &mp2, 0.5, probs);
  CHECK(probs[0] > 0 && probs[3] == 0);
  /* temperature 2 flattens: z = [0.5, 1, 1.5, 0]. */
  ref_sample_params t2 = {2, 0, 1, 0};
  ref_sample(lg, 4, &t2, 0.5, probs);
  double S2 = exp(0.5) + exp(1) + exp(1.5) + 1;
  CHECK_NEAR(probs[2], exp(1.5) / S2, 1e-12);
  /* ties: lower index first in the order. */
  const float tie[2] = {1, 1};
  CHECK(ref_sample(tie, 2, &full, 0.25, NULL) == 0);
  CHECK(ref_sample(tie, 2, &full, 0.75, NULL) == 1);
  /* NaN anywhere: the first NaN, as greedy would pick. */
  const float nan_l[3] = {1, NAN, 2};
  CHECK(ref_sample(nan_l, 3, &full, 0.5, NULL) == 1);
}

int main(void) {
  test_embedding();
  test_add_rmsnorm();
  test_rope();
  test_qk_norm_rope();
  test_attention();
  test_silu_mul();
  test_argmax();
  test_sample();
  return klab_test_finish("test_ref_ops");
}
