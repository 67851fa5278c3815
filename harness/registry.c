/* The op registry: one line per op. An op's descriptor lives in kernels/<op>/op.c. */
#include <string.h>
#include "harness/klab.h"

extern const klab_op klab_op_rmsnorm;
extern const klab_op klab_op_gemv;

static const klab_op *const registry[] = {
    &klab_op_rmsnorm,
    &klab_op_gemv,
};

int klab_op_count(void) { return (int)(sizeof registry / sizeof registry[0]); }

const klab_op *klab_op_at(int i) { return (i >= 0 && i < klab_op_count()) ? registry[i] : NULL; }

const klab_op *klab_find_op(const char *name) {
  for (int i = 0; i < klab_op_count(); i++)
    if (strcmp(registry[i]->name, name) == 0) return registry[i];
  return NULL;
}

const klab_variant *klab_find_variant(const klab_op *op, const char *name) {
  for (int i = 0; i < op->nvariants; i++)
    if (strcmp(op->variants[i]->name, name) == 0) return op->variants[i];
  return NULL;
}
