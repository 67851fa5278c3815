/* `qwen3 bench`: end-to-end prefill + decode timings of the GPU runner over (pp, tg) cells, written as an
 * engine bundle (engine.csv, aggregate.md, env.json, engine_plots.gp). docs/engine.md reads it. */
#ifndef QWEN3_BENCH_H
#define QWEN3_BENCH_H
#include <stdint.h>
#include "engine/qwen3_gpu.h"

#define QWEN3_BENCH_MAX_CELLS 16

typedef struct {
  const char *model_dir;
  const char *out_dir;     /* NULL: print the table only */
  const char *command;     /* the command line, recorded in env.json */
  int64_t pp[QWEN3_BENCH_MAX_CELLS];
  int npp;
  int64_t tg[QWEN3_BENCH_MAX_CELLS];
  int ntg;
  int reps, warmup;
  uint64_t seed;           /* prompt ids */
  qwen3_gpu_opts gpu;
} qwen3_bench_opts;

int qwen3_bench_run(const qwen3_bench_opts *o, klab_err *err);
#endif
