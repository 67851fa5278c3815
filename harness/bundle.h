/* Result bundles (results/<name>/): reading kernels.csv (+ env.json, shapes.csv) and writing the derived
 * files aggregate.md and winners.json. Everything here works from the files alone, on any machine. */
#ifndef KLAB_BUNDLE_H
#define KLAB_BUNDLE_H
#include <stdio.h>
#include <cjson/cJSON.h>
#include "harness/klab.h"

typedef struct {
  char op[32];
  char shape[128];
  char label[128]; /* e.g. "qwen3-4b qkv" */
} klab_shape_label;

typedef struct {
  char dir[1024];      /* the bundle folder ("." for a bare CSV path's folder) */
  char csv_path[1100];
  klab_result *rows;   /* one row per (op, shape, dtype, variant): the last one in the file wins (resume) */
  int nrows;
  klab_shape_label *labels; /* shapes.csv, when present */
  int nlabels;
  cJSON *env;          /* env.json, NULL when absent */
  char arch[32];       /* "sm_90"; "unknown" without env.json */
  char gpu[256];
  char name[128];      /* the sweep's name (env.json "spec_name"), else the folder's name */
  double peak_bw_gbps, peak_tflops; /* NaN when unknown */
  char peaks_source[96];
} klab_bundle;

/* path: a bundle folder or a kernels.csv file. 0 ok, -1 with err. */
int klab_bundle_load(const char *path, klab_bundle *b, klab_err *err);
void klab_bundle_free(klab_bundle *b);
/* The shape's label from shapes.csv, "" when none. */
const char *klab_bundle_label(const klab_bundle *b, const char *op, const char *shape);
/* Write shapes.csv (op,shape,label). */
int klab_shape_labels_write(const char *path, const klab_shape_label *l, int n, klab_err *err);

/* Fastest PASS variant of one (op, shape, dtype). */
typedef struct {
  char op[32], shape[128], dtype[16], variant[32], runner_up[32];
  int vendor;           /* the winner is the vendor baseline */
  int passed;           /* variants that passed and were timed */
  double median_us;
  double runner_up_us;  /* NaN when only one passed */
  double margin;        /* runner_up_us / median_us - 1; NaN when only one passed */
} klab_winner;
/* Winners in order of first appearance; groups with no timed PASS are left out. */
int klab_winners_compute(const klab_bundle *b, klab_winner **w, int *n, klab_err *err);
int klab_winners_write(const klab_bundle *b, const char *path, klab_err *err);
int klab_aggregate_write(const klab_bundle *b, const char *path, klab_err *err);
/* % of the roofline at the row's arithmetic intensity (max of % peak bw and % peak FLOP/s), NaN unknown. */
double klab_row_pct_roofline(const klab_bundle *b, const klab_result *r);

/* Re-derive aggregate.md and winners.json of a bundle folder; render plots when `plots` and gnuplot
 * exists (plots_note says what happened). 0 ok, -1 with err. */
int klab_bundle_summarize(const char *dir, int plots, char *plots_note, size_t note_len, klab_err *err);


#endif
