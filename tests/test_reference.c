/* CPU references of the lab core against hand-computed values. */
#include <math.h>
#include "harness/bf16.h"
#include "reference/gemv.h"
#include "reference/rmsnorm.h"
#include "test_util.h"

static void test_bf16(void) {
  CHECK(klab_float_to_bf16(1.0f) == 0x3f80);
  CHECK(klab_bf16_to_float(0x3f80) == 1.0f);
  CHECK(klab_float_to_bf16(-2.0f) == 0xc000);
  /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even -> 1.0 */
  CHECK(klab_float_to_bf16(1.00390625f) == 0x3f80);
  /* 1 + 3*2^-8 is halfway between 1+2^-7 (odd) and 1+2^-6: ties to even -> 1+2^-6 */
  CHECK(klab_float_to_bf16(1.01171875f) == 0x3f82);
  CHECK(isnan(klab_bf16_to_float(klab_float_to_bf16(NAN))));
  CHECK(klab_round_bf16(3.14159265f) == 3.140625f);
}

static void test_rmsnorm(void) {
  /* x = [3, 4]: mean(x^2) = 12.5, rms = 3.5355339; w = [1, 2] */
  float x[2] = {3.0f, 4.0f}, y[2];
  uint16_t w[2] = {klab_float_to_bf16(1.0f), klab_float_to_bf16(2.0f)};
  ref_rmsnorm(x, w, y, 1, 2, 0.0f);
  CHECK_NEAR(y[0], 3.0 / sqrt(12.5), 1e-6);
  CHECK_NEAR(y[1], 2.0 * 4.0 / sqrt(12.5), 1e-6);
  /* eps matters for tiny rows: x = [0, 0] -> y = 0, no NaN */
  float z[2] = {0, 0};
  ref_rmsnorm(z, w, y, 1, 2, 1e-6f);
  CHECK(y[0] == 0.0f && y[1] == 0.0f);
  /* two rows are independent; in place is allowed */
  float xx[4] = {1, 1, 2, -2};
  ref_rmsnorm(xx, w, xx, 2, 2, 0.0f);
  CHECK_NEAR(xx[0], 1.0, 1e-6);
  CHECK_NEAR(xx[1], 2.0, 1e-6);
  CHECK_NEAR(xx[2], 1.0, 1e-6);
  CHECK_NEAR(xx[3], -2.0, 1e-6);
}

static void test_gemv(void) {
  /* x [2,3], W [2,3]: y = x W^T */
  float x[6] = {1, 2, 3, -1, 0, 1};
  float wf[6] = {1, 0, -1, 0.5f, 0.25f, 2};
  uint16_t W[6];
  for (int i = 0; i < 6; i++) W[i] = klab_float_to_bf16(wf[i]);
  float y[4];
  ref_gemv(x, W, y, 2, 2, 3);
  CHECK_NEAR(y[0], 1 - 3, 1e-6);          /* row 0 . W0 */
  CHECK_NEAR(y[1], 0.5 + 0.5 + 6, 1e-6);  /* row 0 . W1 */
  CHECK_NEAR(y[2], -1 - 1, 1e-6);         /* row 1 . W0 */
  CHECK_NEAR(y[3], -0.5 + 2, 1e-6);       /* row 1 . W1 */
  /* float64 accumulation: 1e8 + many ones would be lost in fp32 */
  enum { K = 1001 };
  static float xl[K];
  static uint16_t wl[K];
  xl[0] = 1e8f;
  for (int k = 1; k < K; k++) xl[k] = 1.0f;
  for (int k = 0; k < K; k++) wl[k] = klab_float_to_bf16(1.0f);
  float yl;
  ref_gemv(xl, wl, &yl, 1, 1, K);
  CHECK_NEAR(yl, 1e8 + 1000, 8); /* float32 output rounding only */
}

int main(void) {
  test_bf16();
  test_rmsnorm();
  test_gemv();
  return klab_test_finish("test_reference");
}
