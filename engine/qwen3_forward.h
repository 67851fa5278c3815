/* The forward pass behind one interface, so the CPU reference and a GPU backend are interchangeable
 * for generation, the CLI and parity tests. A runner owns its KV cache: each call runs T new tokens at
 * positions pos .. pos+T-1 (prefill: T = prompt length; decode: T = 1) and appends them to the cache. */
#ifndef QWEN3_FORWARD_H
#define QWEN3_FORWARD_H
#include <stdint.h>
#include "engine/qwen3_model.h"

struct qwen3_gen_opts;
struct qwen3_gen_stats;
struct qwen3_ids;

typedef struct qwen3_runner qwen3_runner;
struct qwen3_runner {
  const char *name;         /* e.g. "cpu-reference" */
  const qwen3_config *cfg;
  int64_t pos;              /* tokens already in the KV cache */
  int64_t max_ctx;          /* cache capacity in tokens */
  /* logits: [T, vocab] when all_logits, else [1, vocab] for the last token. 0 ok, -1 with err (cache
   * unchanged on a bad id or a full cache). */
  int (*forward)(qwen3_runner *r, const int32_t *ids, int64_t T, int all_logits, float *logits, klab_err *err);
  void (*reset)(qwen3_runner *r); /* empty the cache */
  /* Optional whole-generation fast path (the GPU runner: device sampling, CUDA-graph decode); NULL: the
   * generic loop of qwen3_generate over forward(). Same contract as qwen3_generate. */
  int (*generate)(qwen3_runner *r, const int32_t *prompt, int64_t n_prompt, const struct qwen3_gen_opts *o,
                  int (*on_token)(void *user, int32_t id, klab_err *err), void *user, struct qwen3_ids *out,
                  struct qwen3_gen_stats *stats, klab_err *err);
  void (*destroy)(qwen3_runner *r);
  void *impl;
};

/* CPU reference: built only from the reference/ ops, float32 activations, bf16 weights as stored, float32
 * head-major KV cache ([layer][kv_head][max_ctx][head_dim], the layout of reference/attention.h).
 * max_ctx <= max_position_embeddings. The model must outlive the runner. */
int qwen3_cpu_runner_create(const qwen3_model *m, int64_t max_ctx, qwen3_runner **out, klab_err *err);

static inline int qwen3_forward(qwen3_runner *r, const int32_t *ids, int64_t T, int all_logits, float *logits,
                                klab_err *err) {
  return r->forward(r, ids, T, all_logits, logits, err);
}
static inline void qwen3_runner_destroy(qwen3_runner *r) {
  if (r) r->destroy(r);
}
#endif
