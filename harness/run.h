/* Gate and time one (op, shape) over its variants: the engine of `klab check`, `klab bench` and sweeps. */
#ifndef KLAB_RUN_H
#define KLAB_RUN_H
#include "harness/klab.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  uint64_t seed;         /* first seed; seed i of the gate is seed + i */
  int seeds;             /* gate checks before timing (distributions cycle: uniform, normal, outliers) */
  const char *variant;   /* only this variant (NULL: all); the vendor is still timed for speedups */
  int time_it;           /* 0: gate only (klab check) */
  int use_graph;         /* time replays of a captured CUDA graph of the launch */
  int spaced;            /* host sync after every timed launch: each starts on an idle GPU, none overlaps or
                          * queues behind the previous one (by default launches run back-to-back in batches) */
  double max_noise;      /* stop when the relative standard error of the mean < this (e.g. 0.005) */
  int min_samples, max_samples;
  double max_seconds;    /* time cap per variant (wall) */
  double warmup_ms;      /* warm-up time per variant */
  int rounds;            /* timing rounds (>= 1): every round times each passing variant once more (the sample
                          * bounds above apply per round), in alternating order, and the statistics pool all
                          * rounds; so slow drift (clocks, temperature) falls on every variant alike */
  int verbose;
} klab_run_opts;

void klab_run_opts_default(klab_run_opts *o);

/* Runs the gate (and timing) for every selected variant at `shape`; fills rows[0..*nrows) (one per
 * variant, SKIP/FAIL/ERROR included) and computes derived columns (GB/s, % of peaks, speedup vs the
 * fastest vendor variant). Returns 0 when every selected variant PASSed or was SKIPped, 1 when any
 * FAILed, -1 on an error that stopped the run (err says why). peaks may be NULL or invalid. */
int klab_run_shape(const klab_op *op, const int64_t *shape, const klab_run_opts *o, const klab_peaks *peaks,
                   klab_result *rows, int *nrows, klab_err *err);

/* Device facts the harness needs (L2 size for rotation); 0 ok, -1 with err (e.g. no GPU). */
typedef struct {
  int device;
  char name[256];
  int sm_count, cc_major, cc_minor;
  size_t l2_bytes, total_mem;
} klab_device_info;
int klab_device_query(klab_device_info *d, klab_err *err);
/* 1 when a usable CUDA device exists; else 0 and why (for tests that skip). */
int klab_have_gpu(char *why, size_t len);

#ifdef __cplusplus
}
#endif
#endif
