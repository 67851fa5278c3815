/* Bundle comparison: median ratios, noise bands from p10/p90, regressions beyond noise and threshold. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "harness/compare.h"
#include "harness/bundle.h"

const char *klab_cmp_verdict_name(klab_cmp_verdict v) {
  switch (v) {
    case KLAB_CMP_SAME: return "same";
    case KLAB_CMP_FASTER: return "faster";
    case KLAB_CMP_SLOWER: return "slower (within threshold)";
    case KLAB_CMP_REGRESSED: return "REGRESSED";
    case KLAB_CMP_NOW_FAILS: return "NOW FAILS";
    case KLAB_CMP_NOW_PASSES: return "now passes";
    case KLAB_CMP_UNTIMED: return "not timed";
    case KLAB_CMP_MISSING: return "missing in new";
    case KLAB_CMP_NEW: return "new";
  }
  return "?";
}

static int timed_pass(const klab_result *r) { return r && r->status == KLAB_PASS && isfinite(r->median_us) && r->median_us > 0; }

double klab_row_noise(const klab_result *r) {
  if (!timed_pass(r) || !isfinite(r->p10_us) || !isfinite(r->p90_us) || r->p90_us < r->p10_us) return 0.0;
  return (r->p90_us - r->p10_us) / (2.0 * r->median_us);
}

klab_cmp_verdict klab_compare_rows(const klab_result *o, const klab_result *n, double threshold, double *ratio, double *noise) {
  *ratio = *noise = NAN;
  if (!n) return KLAB_CMP_MISSING;
  if (!o) return KLAB_CMP_NEW;
  int op = o->status == KLAB_PASS, np = n->status == KLAB_PASS;
  if (op && (n->status == KLAB_FAIL || n->status == KLAB_ERROR)) return KLAB_CMP_NOW_FAILS;
  if ((o->status == KLAB_FAIL || o->status == KLAB_ERROR) && np) return KLAB_CMP_NOW_PASSES;
  if (!timed_pass(o) || !timed_pass(n)) return KLAB_CMP_UNTIMED;
  double r = n->median_us / o->median_us;
  double h = hypot(klab_row_noise(o), klab_row_noise(n));
  *ratio = r;
  *noise = h;
  if (r - 1.0 > h) return (r - 1.0 > threshold) ? KLAB_CMP_REGRESSED : KLAB_CMP_SLOWER;
  if (1.0 - r > h) return KLAB_CMP_FASTER;
  return KLAB_CMP_SAME;
}

static const klab_result *find(const klab_bundle *b, const klab_result *k) {
  for (int i = 0; i < b->nrows; i++) {
    const klab_result *r = &b->rows[i];
    if (!strcmp(r->op, k->op) && !strcmp(r->shape, k->shape) && !strcmp(r->dtype, k->dtype) && !strcmp(r->variant, k->variant))
      return r;
  }
  return NULL;
}

static void print_row(FILE *out, const klab_result *key, const klab_result *o, const klab_result *n, klab_cmp_verdict v,
                      double ratio, double noise) {
  char os[32] = "-", ns[32] = "-", rs[32] = "-", hs[32] = "-";
  if (timed_pass(o)) snprintf(os, sizeof os, "%.2f", o->median_us);
  else if (o) snprintf(os, sizeof os, "%s", klab_status_name(o->status));
  if (timed_pass(n)) snprintf(ns, sizeof ns, "%.2f", n->median_us);
  else if (n) snprintf(ns, sizeof ns, "%s", klab_status_name(n->status));
  if (isfinite(ratio)) snprintf(rs, sizeof rs, "%.3f", ratio);
  if (isfinite(noise)) snprintf(hs, sizeof hs, "%.1f%%", noise * 100.0);
  fprintf(out, "| %s | %s | %s%s | %s | %s | %s | %s | %s |\n", key->op, key->shape, key->variant, key->vendor ? " (vendor)" : "",
          os, ns, rs, hs, klab_cmp_verdict_name(v));
}

int klab_compare_bundles(const char *old_path, const char *new_path, const klab_compare_opts *opt, FILE *out, klab_err *err) {
  klab_bundle a, b;
  if (klab_bundle_load(old_path, &a, err)) return -1;
  if (klab_bundle_load(new_path, &b, err)) { klab_bundle_free(&a); return -1; }
  fprintf(out, "# klab compare\n\n- old: %s (%s%s%s)\n- new: %s (%s%s%s)\n", old_path, a.gpu[0] ? a.gpu : "GPU unknown",
          ", ", a.arch, new_path, b.gpu[0] ? b.gpu : "GPU unknown", ", ", b.arch);
  if (strcmp(a.arch, b.arch) || strcmp(a.gpu, b.gpu))
    fprintf(out, "- WARNING: the bundles come from different GPUs; ratios compare hardware as well as code\n");
  fprintf(out, "- ratio = new median / old median (> 1: slower); noise = hypot of each run's (p90 - p10) / (2 median);\n"
               "  REGRESSED = ratio - 1 beyond the noise and beyond the threshold %.1f%%\n\n",
          opt->threshold * 100.0);
  fprintf(out, "| op | shape | variant | old us | new us | ratio | noise | verdict |\n|---|---|---|---:|---:|---:|---:|---|\n");
  int counts[KLAB_CMP_NEW + 1] = {0};
  int gated_regressions = 0, vendor_regressions = 0;
  for (int i = 0; i < b.nrows; i++) {
    const klab_result *n = &b.rows[i], *o = find(&a, n);
    double ratio, noise;
    klab_cmp_verdict v = klab_compare_rows(o, n, opt->threshold, &ratio, &noise);
    counts[v]++;
    if (v == KLAB_CMP_REGRESSED || v == KLAB_CMP_NOW_FAILS) {
      if (n->vendor) vendor_regressions++;
      else gated_regressions++;
    }
    if (opt->only_changes && (v == KLAB_CMP_SAME || v == KLAB_CMP_UNTIMED)) continue;
    print_row(out, n, o, n, v, ratio, noise);
  }
  for (int i = 0; i < a.nrows; i++) {
    const klab_result *o = &a.rows[i];
    if (find(&b, o)) continue;
    counts[KLAB_CMP_MISSING]++;
    print_row(out, o, o, NULL, KLAB_CMP_MISSING, NAN, NAN);
  }
  fprintf(out, "\nSummary: %d same, %d faster, %d slower within threshold, %d regressed (%d vendor), %d now fail, %d now pass, "
               "%d not timed, %d missing in new, %d new.\n",
          counts[KLAB_CMP_SAME], counts[KLAB_CMP_FASTER], counts[KLAB_CMP_SLOWER], counts[KLAB_CMP_REGRESSED],
          vendor_regressions, counts[KLAB_CMP_NOW_FAILS], counts[KLAB_CMP_NOW_PASSES], counts[KLAB_CMP_UNTIMED], counts[KLAB_CMP_MISSING],
          counts[KLAB_CMP_NEW]);
  if (vendor_regressions)
    fprintf(out, "Vendor baselines slower or failing: %d (not counted for the exit status; a sign of a noisier or "
                 "slower machine, or a different library).\n", vendor_regressions);
  fprintf(out, "%s\n", gated_regressions ? "RESULT: regression" : "RESULT: no regression");
  klab_bundle_free(&a);
  klab_bundle_free(&b);
  return gated_regressions ? 1 : 0;
}
