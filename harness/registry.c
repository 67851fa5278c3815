/* The op registry: one line per op. An op's descriptor lives in kernels/<op>/op.c. */
#include <string.h>
#include "harness/klab.h"

extern const klab_op klab_op_rmsnorm;
extern const klab_op klab_op_gemv;
extern const klab_op klab_op_gemm;
extern const klab_op klab_op_attn_decode;
extern const klab_op klab_op_add_rmsnorm;
extern const klab_op klab_op_qk_norm_rope;
extern const klab_op klab_op_embedding;
extern const klab_op klab_op_silu_mul;
extern const klab_op klab_op_argmax;
extern const klab_op klab_op_attn_prefill;
extern const klab_op klab_op_sample;
extern const klab_op klab_op_addnorm_gemv;
extern const klab_op klab_op_addnorm_gemv_silu;

static const klab_op *const registry[] = {
    &klab_op_rmsnorm,
    &klab_op_gemv,
    &klab_op_gemm,
    &klab_op_attn_decode,
    &klab_op_add_rmsnorm,
    &klab_op_qk_norm_rope,
    &klab_op_embedding,
    &klab_op_silu_mul,
    &klab_op_argmax,
    &klab_op_attn_prefill,
    &klab_op_sample,
    &klab_op_addnorm_gemv,
    &klab_op_addnorm_gemv_silu,
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
