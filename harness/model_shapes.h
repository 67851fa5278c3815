/* Op shapes derived from a Qwen3 model configuration: the one place that knows which (op, dims) a
 * Qwen3 forward pass runs. Sweeps use it; the engine's per-layer shapes are the same formulas
 * (klab_qwen3_projection below). Covers every op of the lab, registered yet or not. */
#ifndef KLAB_MODEL_SHAPES_H
#define KLAB_MODEL_SHAPES_H
#include <stdint.h>
#include "harness/klab.h"
#include "engine/qwen3_config.h"

/* The dims of every op the lab knows (the registry uses exactly these names, in this order). */
typedef struct {
  const char *op;
  int ndims;
  const char *dims[KLAB_MAX_DIMS];
  const char *phases; /* which model phases derive shapes for it: "decode", "prefill" or "decode,prefill" */
} klab_op_dims;

int klab_known_op_count(void);
const klab_op_dims *klab_known_op_at(int i);
const klab_op_dims *klab_known_op(const char *name); /* NULL if the lab has no such op */
/* "rmsnorm, gemv, ..." for error messages. */
void klab_known_op_list(char *buf, size_t len);

/* Qwen3 linear projections (y = x W^T, W [N, K]): fused q|k|v, o, fused gate|up, down, lm_head. */
typedef enum { KLAB_PROJ_QKV = 0, KLAB_PROJ_O, KLAB_PROJ_GATE_UP, KLAB_PROJ_DOWN, KLAB_PROJ_LM_HEAD, KLAB_PROJ_COUNT } klab_proj;
const char *klab_proj_name(klab_proj p); /* "qkv", "o", "gate_up", "down", "lm_head" */
int klab_proj_from_name(const char *name); /* -1 if unknown */
/* N (output features) and K (input features) of one projection. */
void klab_qwen3_projection(const qwen3_config *cfg, klab_proj p, int64_t *n, int64_t *k);

typedef enum { KLAB_PHASE_DECODE = 0, KLAB_PHASE_PREFILL } klab_phase;
const char *klab_phase_name(klab_phase p);

/* What to derive. Lists may be empty (count 0): then the defaults below apply. */
typedef struct {
  klab_phase phase;
  const int64_t *m;   int nm;   /* decode: rows per step (batch), default 1..16 */
  const int64_t *t;   int nt;   /* prefill: prompt tokens, default 512, 2048, 8192 */
  const int64_t *ctx; int nctx; /* decode attention / qk_norm_rope position: context length, default 128..32768 x2 */
  const int64_t *p0;  int np0;  /* prefill: tokens already in the cache, default 0 */
  unsigned proj_mask;           /* gemv/gemm projections (bit klab_proj); 0 = all */
} klab_model_phase;

typedef struct {
  int64_t d[KLAB_MAX_DIMS]; /* in the order of klab_op_dims.dims */
  char label[96];           /* e.g. "qwen3-4b qkv" */
} klab_derived_shape;

/* Shapes of `op` for the model `cfg` in phase ph; model_label prefixes each label ("qwen3-4b").
 * Appends to *out (realloc'd; *n updated). 0 ok, -1 with err (unknown op, op not used in this phase). */
int klab_model_shapes(const char *op, const qwen3_config *cfg, const char *model_label, const klab_model_phase *ph,
                      klab_derived_shape **out, int *n, klab_err *err);

#endif
