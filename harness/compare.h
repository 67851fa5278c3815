/* `klab compare OLD NEW`: per-row median ratios between two bundles with each row's noise band. */
#ifndef KLAB_COMPARE_H
#define KLAB_COMPARE_H
#include <stdio.h>
#include "harness/klab.h"

typedef struct {
  double threshold; /* a slowdown counts as a regression when new/old - 1 exceeds this AND the noise band */
  int only_changes; /* print only rows whose verdict is not "same" */
} klab_compare_opts;

typedef enum {
  KLAB_CMP_SAME = 0,   /* within noise */
  KLAB_CMP_FASTER,     /* faster beyond noise */
  KLAB_CMP_SLOWER,     /* slower beyond noise, not beyond the threshold */
  KLAB_CMP_REGRESSED,  /* slower beyond noise and the threshold */
  KLAB_CMP_NOW_FAILS,  /* passed the gate in OLD, not in NEW */
  KLAB_CMP_NOW_PASSES,
  KLAB_CMP_UNTIMED,    /* not timed in one of them (SKIP/FAIL in both...) */
  KLAB_CMP_MISSING,    /* only in OLD */
  KLAB_CMP_NEW         /* only in NEW */
} klab_cmp_verdict;
const char *klab_cmp_verdict_name(klab_cmp_verdict v);

/* Relative half-width of a row's p10..p90 band: (p90 - p10) / (2 median); 0 when unknown. */
double klab_row_noise(const klab_result *r);
/* Verdict for two rows of one key (either may be NULL); ratio and noise out (NaN when not timed in both). */
klab_cmp_verdict klab_compare_rows(const klab_result *old_row, const klab_result *new_row, double threshold, double *ratio,
                                   double *noise);

/* Compare two bundles (folders or kernels.csv files), print the table to out. Returns 0 no regression,
 * 1 a non-vendor variant regressed beyond the threshold or now fails the gate, -1 error (err). */
int klab_compare_bundles(const char *old_path, const char *new_path, const klab_compare_opts *o, FILE *out, klab_err *err);

#endif
