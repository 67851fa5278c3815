#include "reference/argmax.h"
#include <math.h>

int64_t ref_argmax(const float *x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 0; i < n; i++) {
    if (isnan(x[i])) return i; /* first NaN wins, like torch.argmax */
    if (x[i] > x[best]) best = i; /* strict: lowest index on ties */
  }
  return best;
}
