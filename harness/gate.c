/* The output comparison of the correctness gate (design.md §3) and host-side input generation. */
#include "harness/gate.h"
#include <math.h>
#include <string.h>
#include "harness/bf16.h"
#include "harness/gen.h"

double klab_load_as_double(const void *data, klab_dtype dt, int64_t i) {
  switch (dt) {
    case KLAB_DT_BF16: return (double)klab_bf16_to_float(((const uint16_t *)data)[i]);
    case KLAB_DT_F32: return (double)((const float *)data)[i];
    case KLAB_DT_I32: return (double)((const int32_t *)data)[i];
  }
  return NAN;
}

void klab_fill_host(void *dst, klab_dtype dt, int64_t n, uint64_t tseed, int dist, float scale, float offset) {
  for (int64_t i = 0; i < n; i++) {
    float v = offset + scale * klab_gen_value(dist, tseed, (uint64_t)i);
    if (dt == KLAB_DT_BF16) ((uint16_t *)dst)[i] = klab_float_to_bf16(v);
    else if (dt == KLAB_DT_F32) ((float *)dst)[i] = v;
    else ((int32_t *)dst)[i] = (int32_t)v;
  }
}

int klab_compare(const void *out, klab_dtype dt, const double *ref, int64_t n, klab_tolerance tol, klab_cmp *c) {
  memset(c, 0, sizeof *c);
  c->n = n;
  c->worst_index = -1;
  double ref_ss = 0.0, diff_ss = 0.0;
  for (int64_t i = 0; i < n; i++) ref_ss += ref[i] * ref[i];
  double rms = n ? sqrt(ref_ss / (double)n) : 0.0;
  double atol = tol.atol_abs + tol.atol_rms * rms;
  double worst_excess = -1.0;
  for (int64_t i = 0; i < n; i++) {
    double o = klab_load_as_double(out, dt, i), r = ref[i];
    if (!isfinite(o) || !isfinite(r)) {
      if (c->n_nonfinite++ == 0 && worst_excess < INFINITY) {
        worst_excess = INFINITY;
        c->worst_index = i, c->worst_out = o, c->worst_ref = r;
      }
      continue;
    }
    double d = fabs(o - r);
    diff_ss += d * d;
    if (d > c->max_abs_err) c->max_abs_err = d;
    if (fabs(r) > atol && d / fabs(r) > c->max_rel_err) c->max_rel_err = d / fabs(r);
    double allowed = dt == KLAB_DT_I32 ? 0.0 : atol + tol.rtol * fabs(r);
    if (d > allowed) {
      c->n_bad++;
      if (d - allowed > worst_excess) {
        worst_excess = d - allowed;
        c->worst_index = i, c->worst_out = o, c->worst_ref = r;
      }
    }
  }
  c->rel_l2 = ref_ss > 0 ? sqrt(diff_ss / ref_ss) : sqrt(diff_ss);
  if (c->n_nonfinite) {
    c->max_abs_err = c->max_rel_err = c->rel_l2 = INFINITY;
    return 0;
  }
  double l2_bound = dt == KLAB_DT_I32 ? 0.0 : tol.rel_l2;
  return c->n_bad == 0 && c->rel_l2 <= l2_bound;
}

void klab_cmp_describe(const klab_cmp *c, const klab_tolerance *tol, char *buf, size_t len) {
  if (c->n_nonfinite)
    snprintf(buf, len, "%lld of %lld elements NaN/Inf (unwritten or non-finite), first [%lld] out=%g ref=%g",
             (long long)c->n_nonfinite, (long long)c->n, (long long)c->worst_index, c->worst_out, c->worst_ref);
  else if (c->n_bad)
    snprintf(buf, len, "%lld of %lld elements out of tolerance, worst [%lld] out=%.6g ref=%.6g; rel-L2 %.3g (bound %.3g)",
             (long long)c->n_bad, (long long)c->n, (long long)c->worst_index, c->worst_out, c->worst_ref, c->rel_l2,
             tol->rel_l2);
  else if (c->rel_l2 > tol->rel_l2)
    snprintf(buf, len, "rel-L2 %.3g over its bound %.3g", c->rel_l2, tol->rel_l2);
  else
    snprintf(buf, len, "max abs %.3g, max rel %.3g, rel-L2 %.3g", c->max_abs_err, c->max_rel_err, c->rel_l2);
}
