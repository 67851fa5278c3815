/* The gate's tolerances: one table for every op and output dtype (docs/methodology.md repeats it).
 * An output element passes when |out-ref| <= atol_abs + atol_rms*rms(ref) + rtol*|ref|, and the
 * whole output when ||out-ref||/||ref|| <= rel_l2. Rows are matched by op name, then "*" for the dtype. */
#include <string.h>
#include "harness/klab.h"

typedef struct {
  const char *op;
  klab_dtype dtype;
  klab_tolerance tol;
} tol_row;

static const tol_row table[] = {
    /* Defaults. bf16 output: one rounding to bf16 is 2^-9 relative at most (rtol 1.6e-2 leaves room for
     * fp32 accumulation-order differences); rel-L2 of pure bf16 rounding is ~1.1e-3. */
    {"*", KLAB_DT_BF16, {1.6e-2, 1e-3, 0.0, 8e-3}},
    {"*", KLAB_DT_F32, {1e-5, 1e-6, 0.0, 1e-6}},
    {"*", KLAB_DT_I32, {0.0, 0.0, 0.0, 0.0}},
    /* gemv / rmsnorm: the defaults hold (fp32 accumulation, one bf16 rounding of the output). */
    {"gemv", KLAB_DT_BF16, {1.6e-2, 1e-3, 0.0, 8e-3}},
    {"rmsnorm", KLAB_DT_BF16, {1.6e-2, 1e-3, 0.0, 8e-3}},
};

klab_tolerance klab_tolerance_for(const char *op, klab_dtype out_dtype) {
  const tol_row *fallback = NULL;
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    if (table[i].dtype != out_dtype) continue;
    if (strcmp(table[i].op, op) == 0) return table[i].tol;
    if (strcmp(table[i].op, "*") == 0) fallback = &table[i];
  }
  return fallback ? fallback->tol : table[0].tol;
}

int klab_tolerance_rows(void) { return (int)(sizeof table / sizeof table[0]); }

void klab_tolerance_row(int i, const char **op, klab_dtype *dt, klab_tolerance *tol) {
  *op = table[i].op;
  *dt = table[i].dtype;
  *tol = table[i].tol;
}
