/* A loaded Qwen3 checkpoint: config plus bf16 weight pointers (into the mmap'd safetensors files, or
 * into buffers converted at load time from fp16/fp32). The tensor list here is the one definition of
 * the checkpoint layout: the loader checks against it and the random-checkpoint writer emits it. */
#ifndef QWEN3_MODEL_H
#define QWEN3_MODEL_H
#include <stdint.h>
#include "engine/qwen3_config.h"
#include "engine/safetensors.h"

/* One expected tensor: Hugging Face name and shape ([out, in] for linears). */
typedef struct {
  char name[96];
  int ndim;
  int64_t shape[2];
  int is_norm; /* RMSNorm weight: initialised to 1 by the writer */
} qwen3_tensor_desc;

/* Number of tensors the checkpoint of cfg holds (lm_head.weight only when untied). */
int qwen3_tensor_count(const qwen3_config *cfg);
/* Descriptor i in checkpoint order (embed, layers 0.., norm, lm_head). */
void qwen3_tensor_desc_at(const qwen3_config *cfg, int i, qwen3_tensor_desc *d);

typedef struct {
  const uint16_t *input_norm, *q, *k, *v, *o, *q_norm, *k_norm, *post_norm, *gate, *up, *down;
} qwen3_layer_weights;

typedef struct {
  qwen3_config cfg;
  char dir[1024];
  int nfiles;
  st_file *files;
  const uint16_t *embed, *final_norm, *lm_head; /* lm_head == embed when tied */
  qwen3_layer_weights *layers;
  int nowned;
  void **owned; /* converted / realigned tensor buffers */
  int converted; /* tensors converted from F16/F32 */
} qwen3_model;

/* Load DIR/config.json (+ generation_config.json) and DIR/model.safetensors or the shards listed in
 * DIR/model.safetensors.index.json. Every tensor is checked (name, dtype, shape) against the config;
 * missing and unexpected tensors are errors. 0 ok, -1 with err (model left empty). */
int qwen3_model_load(const char *dir, qwen3_model *m, klab_err *err);
void qwen3_model_free(qwen3_model *m);
#endif
