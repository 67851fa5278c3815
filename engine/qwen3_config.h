/* Qwen3 model configuration: the family presets and config.json. The one place model shapes come from:
 * the engine and the sweeps' shape derivation both read this. (Compiled into the lab library.) */
#ifndef QWEN3_CONFIG_H
#define QWEN3_CONFIG_H
#include <stdint.h>
#include "harness/klab.h"

#define QWEN3_MAX_EOS 8

typedef struct {
  char name[32];            /* preset name, or "config.json" */
  int64_t hidden;           /* hidden_size */
  int64_t intermediate;     /* intermediate_size */
  int64_t layers;           /* num_hidden_layers */
  int64_t heads;            /* num_attention_heads */
  int64_t kv_heads;         /* num_key_value_heads */
  int64_t head_dim;         /* head_dim */
  int64_t vocab;            /* vocab_size */
  double rms_norm_eps;
  double rope_theta;
  int64_t max_position;     /* max_position_embeddings */
  int tie_word_embeddings;
  char torch_dtype[16];     /* "bfloat16", "float16", "float32" */
  int64_t bos_token_id;     /* -1 if none */
  int n_eos;
  int64_t eos_token_ids[QWEN3_MAX_EOS];
} qwen3_config;

/* Presets: "0.6b" "1.7b" "4b" "8b" "14b" "32b" "tiny". 0 ok, -1 with err naming the known presets. */
int qwen3_preset(const char *name, qwen3_config *cfg, klab_err *err);
int qwen3_preset_count(void);
const char *qwen3_preset_name(int i);
/* Read a Hugging Face config.json (and generation_config.json beside it when present).
 * Unsupported features and missing/mistyped keys are refused with a message naming the key. */
int qwen3_config_load(const char *config_json_path, qwen3_config *cfg, klab_err *err);
/* Checks the invariants the engine relies on (heads % kv_heads == 0, even head_dim, ...). */
int qwen3_config_validate(const qwen3_config *cfg, klab_err *err);
#endif
