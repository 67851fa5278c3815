/* Sweep specs (sweeps/NAME.json) and running them into a result bundle. docs/bundles.md describes the format.
 *
 * A spec is validated completely (every op registered, every variant known, every shape accepted by the
 * op's validate()) before any GPU work; errors name the file, the JSON path and the reason, e.g.
 *   sweeps/x.json: $.ops[2].shapes.range.mul: must be an integer >= 2 (got 1) */
#ifndef KLAB_SWEEP_H
#define KLAB_SWEEP_H
#include <stdint.h>
#include "harness/klab.h"
#include "harness/run.h"

#define KLAB_SWEEP_MAX_SHAPES 100000

typedef struct {
  char op_name[32];
  const klab_op *op;            /* NULL only when parsed with KLAB_SWEEP_ALLOW_UNREGISTERED and not registered */
  char json_path[32];           /* "$.ops[2]" */
  int nvariants;                /* 0: all of the op's variants */
  char variants[KLAB_MAX_VARIANTS][32];
  char dtype[16];
  klab_run_opts opts;
  int ndims;                    /* dims in the registry's order (the known-op table's when unregistered) */
  const char *dim_names[KLAB_MAX_DIMS];
  int nshapes;
  int64_t (*shapes)[KLAB_MAX_DIMS];
  char (*labels)[128];          /* "" when none; merged with ", " when two sources give one shape */
} klab_sweep_op;

typedef struct {
  char path[512];     /* the spec file ("<text>" when parsed from memory) */
  char name[64];      /* "name", or the file's base name without .json */
  char description[512];
  int nops;
  klab_sweep_op *ops;
} klab_sweep_spec;

/* Parse flags. */
#define KLAB_SWEEP_ALLOW_UNREGISTERED 1 /* accept ops the lab knows but has not registered (spec checks, tests) */

int klab_sweep_parse_file(const char *path, int flags, klab_sweep_spec *spec, klab_err *err);
/* `what` names the source in errors; relative config.json paths resolve against base_dir when not found
 * from the current directory (base_dir may be NULL). */
int klab_sweep_parse_text(const char *text, const char *what, const char *base_dir, int flags, klab_sweep_spec *spec,
                          klab_err *err);
void klab_sweep_free(klab_sweep_spec *spec);
/* Total shapes over all op entries. */
long klab_sweep_total_shapes(const klab_sweep_spec *spec);

typedef struct {
  const char *out_dir;       /* the bundle folder (created) */
  int resume;                /* keep kernels.csv and skip what it holds */
  int force;                 /* start over even when kernels.csv exists */
  const char *peaks_path;    /* NULL: results/peaks/<gpu>.json when present */
  const char *command_line;  /* recorded in env.json */
  int plots;                 /* render plots when gnuplot exists */
} klab_sweep_run_opts;

/* Run the sweep into o->out_dir. Returns 0 all PASS/SKIP, 1 when any row FAILed or ERRORed, -1 on an error
 * that stopped the sweep (no GPU, I/O), with err. */
int klab_sweep_run(const klab_sweep_spec *spec, const klab_sweep_run_opts *o, klab_err *err);

#endif
