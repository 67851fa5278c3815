/* The GPU runner of Qwen3: weights uploaded once in the layout the kernels want (q|k|v and gate|up fused
 * along the output dimension), a bf16 KV cache, preallocated activations, each op's variant chosen from
 * a winners.json, prefill in chunks of T tokens, decode as one captured CUDA graph replayed per token with
 * device-side sampling and asynchronous token copies. docs/engine.md explains the design. */
#ifndef QWEN3_GPU_H
#define QWEN3_GPU_H
#include <stdio.h>
#include "engine/qwen3_forward.h"

typedef struct {
  int64_t max_ctx;           /* KV cache capacity in tokens; 0: max_position_embeddings capped by free memory */
  int64_t prefill_chunk;     /* tokens per prefill pass (activations are sized for it); 0: 2048 */
  const char *variants_path; /* winners.json; NULL: QWEN3_DEFAULT_VARIANTS; "none": optimized everywhere */
  int verbose;               /* print every variant choice */
  int no_graph;              /* decode by plain launches instead of graph replays (debugging) */
  int no_fuse;               /* decode with the separate add_rmsnorm / gemv / silu_mul kernels */
  int no_pdl;                /* capture the decode graph without programmatic dependent launch */
} qwen3_gpu_opts;

/* The committed winners the engine uses when no --variants is given. */
#define QWEN3_DEFAULT_VARIANTS KLAB_SOURCE_DIR "/results/qwen3-engine/winners.json"

void qwen3_gpu_opts_default(qwen3_gpu_opts *o);

/* Uploads the model's weights. The model may be freed after this returns. 0 ok, -1 with err (no GPU, the
 * model plus cache do not fit: the message states the sizes). */
int qwen3_gpu_runner_create(const qwen3_model *m, const qwen3_gpu_opts *o, qwen3_runner **out, klab_err *err);

typedef struct {
  double weights_bytes;       /* on the device */
  double decode_read_bytes;   /* weights read by one decode step (linears, norms, lm_head) */
  double kv_bytes_per_token;  /* all layers, K and V */
  double activation_bytes;    /* activations + workspaces */
  int64_t max_ctx, prefill_chunk;
  size_t device_used_bytes;   /* total - free, now */
  size_t device_peak_used_bytes; /* the maximum of device_used_bytes seen at the runner's checkpoints */
} qwen3_gpu_memory;
void qwen3_gpu_memory_info(qwen3_runner *r, qwen3_gpu_memory *m);

/* --profile: fills the cache to ctx tokens (random ids), then times `steps` decode steps op by op
 * (plain launches under CUPTI) and `steps` graph replays; prints per-op time per step, share, GB/s and % of
 * the read ceiling (peak_gbps; <= 0: unknown), the graph-launch gap and the step against the
 * weights+KV roofline. */
int qwen3_gpu_profile(qwen3_runner *r, int64_t ctx, int steps, double peak_gbps, FILE *out, klab_err *err);
#endif
