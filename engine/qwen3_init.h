/* Random-initialised Qwen3 checkpoints in the Hugging Face layout (`qwen3 init`): config.json,
 * generation_config.json, sharded safetensors + model.safetensors.index.json, tokenizer files copied
 * on request. Weights are N(0, 0.02) (the transformers initializer), RMSNorm weights 1, all bf16,
 * and a pure function of (seed, tensor name, element index) via reference/rng.h, so any tensor can be
 * regenerated alone and the files are identical on every run. Data is streamed to disk in chunks. */
#ifndef QWEN3_INIT_H
#define QWEN3_INIT_H
#include <stdint.h>
#include "engine/qwen3_config.h"

typedef struct {
  const char *preset;        /* qwen3_preset() name */
  uint64_t seed;
  const char *out_dir;       /* created if missing (parent must exist) */
  const char *tokenizer_dir; /* NULL: no tokenizer files */
  int64_t layers;            /* > 0: override num_hidden_layers (small goldens of big presets) */
  uint64_t max_shard_bytes;  /* 0: default 2 GB */
  int threads;               /* 0: number of online CPUs (at most 16) */
  int quiet;                 /* no progress on stderr */
} qwen3_init_opts;

int qwen3_init_checkpoint(const qwen3_init_opts *o, klab_err *err);

/* Elements [first, first+n) of the tensor `name` as bf16 bits: N(0, std) or, for norms, 1.0. */
void qwen3_init_fill(uint64_t seed, const char *name, int is_norm, float std, uint64_t first, int64_t n,
                     uint16_t *out);
#endif
