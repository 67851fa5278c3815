/* gnuplot scripts for a bundle: roofline, speedup vs cuBLAS, % of peak bandwidth. Each script renders a
 * PNG (pngcairo, or libgd png when cairo is absent) and an SVG, and is kept in the bundle so anyone can
 * re-render or restyle it. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include "harness/plot.h"

const char *klab_plot_name(int bit) {
  switch (bit) {
    case KLAB_PLOT_ROOFLINE: return "roofline";
    case KLAB_PLOT_SPEEDUP: return "speedup_vs_cublas";
    case KLAB_PLOT_BANDWIDTH: return "bandwidth";
  }
  return "?";
}

/* gnuplot single-quoted string (no escapes inside; '' is a quote) */
static void gp_str(FILE *f, const char *s) {
  fputc('\'', f);
  for (; *s; s++) {
    if (*s == '\'') fputs("''", f);
    else if (*s != '\n' && *s != '\r') fputc(*s, f);
  }
  fputc('\'', f);
}
/* data-file string column: double quotes, none inside */
static void dat_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) fputc(*s == '"' ? '\'' : (*s == '\n' ? ' ' : *s), f);
  fputc('"', f);
}

static void preamble(FILE *f, const char *name, int w, int h) {
  fprintf(f, "# %s: written by `klab plot` from this bundle's kernels.csv; re-render with\n"
             "#   cd <bundle> && gnuplot plots/%s.gp\n", name, name);
  fprintf(f, "W = %d; H = %d\n", w, h);
  fprintf(f, "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
             "  set terminal pngcairo size W,H noenhanced font 'Sans,11' background rgb 'white'\n"
             "} else {\n"
             "  set terminal png size W,H noenhanced\n"
             "}\n");
  fprintf(f, "set output '%s.png'\n", name);
  fprintf(f, "set encoding utf8\nset border lw 1.2\nset grid xtics ytics mxtics mytics lc rgb '#dddddd' lw 1\n");
}

static void finish(FILE *f, const char *name, int multiplot_free) {
  (void)multiplot_free;
  fprintf(f, "set terminal svg size W,H noenhanced font 'Sans,11' background rgb 'white'\n");
  fprintf(f, "set output '%s.svg'\nreplot\nunset output\n", name);
}

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
                                      "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"};
enum { NPAL = sizeof palette / sizeof palette[0] };

static int timed_pass(const klab_result *r) { return r->status == KLAB_PASS && isfinite(r->median_us) && r->median_us > 0; }

/* (op, variant) series in order of first appearance */
typedef struct {
  char op[32], variant[32];
  int vendor;
} series;

static int collect_series(const klab_bundle *b, int (*keep)(const klab_bundle *, const klab_result *, const void *),
                          const void *ctx, series **out, int *n) {
  series *s = calloc((size_t)(b->nrows ? b->nrows : 1), sizeof *s);
  if (!s) return -1;
  int m = 0;
  for (int i = 0; i < b->nrows; i++) {
    const klab_result *r = &b->rows[i];
    if (!keep(b, r, ctx)) continue;
    int have = 0;
    for (int j = 0; j < m && !have; j++) have = !strcmp(s[j].op, r->op) && !strcmp(s[j].variant, r->variant);
    if (have) continue;
    snprintf(s[m].op, sizeof s[m].op, "%s", r->op);
    snprintf(s[m].variant, sizeof s[m].variant, "%s", r->variant);
    s[m].vendor = r->vendor;
    m++;
  }
  *out = s;
  *n = m;
  return 0;
}

static int point_type(const series *s) {
  if (s->vendor) return 5;                       /* filled square */
  if (!strcmp(s->variant, "naive")) return 6;    /* open circle */
  if (!strcmp(s->variant, "optimized")) return 7; /* filled circle */
  return 9;                                      /* filled triangle */
}

static const char *point_label(const klab_bundle *b, const klab_result *r, char *buf, size_t len) {
  const char *l = klab_bundle_label(b, r->op, r->shape);
  snprintf(buf, len, "%s", *l ? l : r->shape);
  return buf;
}

/* ---- roofline ---- */
static int keep_roof(const klab_bundle *b, const klab_result *r, const void *ctx) {
  (void)b, (void)ctx;
  return timed_pass(r) && r->ai > 0 && r->tflops > 0 && isfinite(r->ai) && isfinite(r->tflops);
}

static int write_roofline(const klab_bundle *b, const char *pdir, FILE *gp, FILE *dat, int *npoints) {
  series *s;
  int ns;
  if (collect_series(b, keep_roof, NULL, &s, &ns)) return -1;
  double amin = INFINITY, amax = 0, tmin = INFINITY, tmax = 0;
  int total = 0;
  for (int k = 0; k < ns; k++) {
    fprintf(dat, "# %s %s%s: ai flop_per_byte, tflops, label\n", s[k].op, s[k].variant, s[k].vendor ? " (vendor)" : "");
    for (int i = 0; i < b->nrows; i++) {
      const klab_result *r = &b->rows[i];
      if (!keep_roof(b, r, NULL) || strcmp(r->op, s[k].op) || strcmp(r->variant, s[k].variant)) continue;
      char lb[160];
      fprintf(dat, "%.6g %.6g ", r->ai, r->tflops);
      dat_str(dat, point_label(b, r, lb, sizeof lb));
      fputc('\n', dat);
      if (r->ai < amin) amin = r->ai;
      if (r->ai > amax) amax = r->ai;
      if (r->tflops < tmin) tmin = r->tflops;
      if (r->tflops > tmax) tmax = r->tflops;
      total++;
    }
    fprintf(dat, "\n\n");
  }
  *npoints = total;
  if (!total) { free(s); return 0; }
  int peaks = b->peak_bw_gbps > 0 && b->peak_tflops > 0;
  preamble(gp, "roofline", 1280, 820);
  fprintf(gp, "set logscale xy\nset format x '%%g'\nset format y '%%g'\n");
  fprintf(gp, "set xlabel 'arithmetic intensity (FLOP / byte of minimal traffic)'\n");
  fprintf(gp, "set ylabel 'achieved TFLOP/s'\n");
  fprintf(gp, "set key outside right top vertical Left reverse box spacing 1.2\n");
  double xlo = amin / 3, xhi = amax * 3, ylo = tmin / 3, yhi = tmax * 3;
  if (peaks) {
    fprintf(gp, "B = %.6g  # measured streaming-read bandwidth, GB/s\n", b->peak_bw_gbps);
    fprintf(gp, "P = %.6g  # measured bf16 GEMM rate, TFLOP/s\n", b->peak_tflops);
    fprintf(gp, "ridge = P * 1000.0 / B\n");
    double ridge = b->peak_tflops * 1000.0 / b->peak_bw_gbps;
    if (ridge * 8 > xhi) xhi = ridge * 8;
    if (ridge / 4 < xlo) xlo = ridge / 4;
    if (b->peak_tflops * 2.5 > yhi) yhi = b->peak_tflops * 2.5;
    double ymin_roof = xlo * b->peak_bw_gbps / 1000.0;
    if (ymin_roof / 2 < ylo) ylo = ymin_roof / 2;
  }
  fprintf(gp, "set xrange [%.6g:%.6g]\nset yrange [%.6g:%.6g]\n", xlo, xhi, ylo, yhi);
  fprintf(gp, "set title ");
  char title[512];
  snprintf(title, sizeof title, "Roofline: %s on %s (%s)%s", b->name, b->gpu[0] ? b->gpu : "unknown GPU", b->arch,
           peaks ? "" : " - no measured peaks, ceilings not drawn (run klab peaks)");
  gp_str(gp, title);
  fprintf(gp, "\n");
  if (peaks) {
    fprintf(gp, "roof(x) = (x * B / 1000.0 < P) ? x * B / 1000.0 : P\n");
    fprintf(gp, "set arrow 1 from ridge, graph 0 to ridge, first P nohead dt 3 lw 1.5 lc rgb '#555555'\n");
    fprintf(gp, "set label 1 sprintf(\"ridge point %%.0f FLOP/B\", ridge) at ridge * 1.15, first P / 4 left tc rgb '#333333'\n");
    fprintf(gp, "set label 2 sprintf('bf16 GEMM peak %%.0f TFLOP/s', P) at ridge / 1.15, first P * 1.3 right tc rgb '#000000'\n");
    /* the bandwidth slope's on-screen angle: plot area about 930 x 700 px of the 1280 x 820 canvas */
    double dx = log10(xhi / xlo), dy = log10(yhi / ylo);
    double angle = atan((700.0 / dy) / (930.0 / dx)) * 180.0 / 3.14159265358979;
    fprintf(gp, "lx = ridge / 40.0\n");
    fprintf(gp, "set label 3 sprintf('HBM read %%.2f TB/s', B / 1000.0) at lx, first roof(lx) * %.4g left rotate by %.1f tc rgb '#000000'\n",
            pow(10.0, dy * 0.025), angle);
  }
  /* one text label per series at its fastest point (the "labelled point") */
  int tag = 10;
  for (int k = 0; k < ns; k++) {
    int best = -1;
    for (int i = 0; i < b->nrows; i++) {
      const klab_result *r = &b->rows[i];
      if (!keep_roof(b, r, NULL) || strcmp(r->op, s[k].op) || strcmp(r->variant, s[k].variant)) continue;
      if (best < 0 || r->tflops > b->rows[best].tflops) best = i;
    }
    if (best < 0) continue;
    char t[96];
    snprintf(t, sizeof t, "%s/%s", s[k].op, s[k].variant);
    fprintf(gp, "set label %d ", tag++);
    gp_str(gp, t);
    fprintf(gp, " at %.6g, %.6g offset 0.8,0.6 left font ',9' tc rgb '%s'\n", b->rows[best].ai, b->rows[best].tflops,
            s[k].vendor ? "#000000" : palette[k % NPAL]);
  }
  fprintf(gp, "plot \\\n");
  int first = 1;
  if (peaks) {
    fprintf(gp, "  roof(x) with lines lw 2.5 lc rgb '#000000' title 'roofline (measured)'");
    first = 0;
  }
  (void)pdir;
  for (int k = 0; k < ns; k++) {
    char t[96];
    snprintf(t, sizeof t, "%s/%s%s", s[k].op, s[k].variant, s[k].vendor ? " (vendor)" : "");
    fprintf(gp, "%s  'plots/roofline.dat' index %d using 1:2 with points pt %d ps %s lc rgb '%s' title ", first ? "" : ", \\\n",
            k, point_type(&s[k]), s[k].vendor ? "1.8" : "1.4", s[k].vendor ? "#000000" : palette[k % NPAL]);
    gp_str(gp, t);
    first = 0;
  }
  fprintf(gp, "\n");
  finish(gp, "roofline", 0);
  free(s);
  return 0;
}

/* ---- speedup vs vendor (gemv, gemm) ---- */
static int is_gemm_like(const char *op) { return !strcmp(op, "gemv") || !strcmp(op, "gemm"); }

static int keep_speed(const klab_bundle *b, const klab_result *r, const void *ctx) {
  (void)b, (void)ctx;
  return is_gemm_like(r->op) && !r->vendor && timed_pass(r);
}

static double vendor_best(const klab_bundle *b, const klab_result *r) {
  double best = NAN;
  for (int i = 0; i < b->nrows; i++) {
    const klab_result *v = &b->rows[i];
    if (v->vendor && timed_pass(v) && !strcmp(v->op, r->op) && !strcmp(v->shape, r->shape) && !strcmp(v->dtype, r->dtype) &&
        !(v->median_us >= best))
      best = v->median_us;
  }
  return best;
}

static double speedup_of(const klab_bundle *b, const klab_result *r) {
  if (isfinite(r->speedup_vs_vendor) && r->speedup_vs_vendor > 0) return r->speedup_vs_vendor;
  double v = vendor_best(b, r);
  return isfinite(v) ? v / r->median_us : NAN;
}

static int write_speedup(const klab_bundle *b, FILE *gp, FILE *dat, int *nbars) {
  /* columns: non-vendor variants of gemv/gemm; rows: shapes with at least one speedup */
  char vars[KLAB_MAX_VARIANTS * 2][32];
  int nv = 0;
  for (int i = 0; i < b->nrows; i++) {
    const klab_result *r = &b->rows[i];
    if (!keep_speed(b, r, NULL) || !isfinite(speedup_of(b, r))) continue;
    int have = 0;
    for (int v = 0; v < nv; v++) have |= !strcmp(vars[v], r->variant);
    if (!have && nv < KLAB_MAX_VARIANTS * 2) snprintf(vars[nv++], sizeof vars[0], "%s", r->variant);
  }
  *nbars = 0;
  if (!nv) return 0;
  int ops_seen = 0; /* 1 gemv, 2 gemm */
  for (int i = 0; i < b->nrows; i++)
    if (keep_speed(b, &b->rows[i], NULL)) ops_seen |= strcmp(b->rows[i].op, "gemv") ? 2 : 1;
  fprintf(dat, "# shape");
  for (int v = 0; v < nv; v++) fprintf(dat, " %s", vars[v]);
  fprintf(dat, "   (speedup = vendor median / variant median; ? = no timed PASS)\n");
  int nshapes = 0, maxlen = 10;
  double ymax = 1.0;
  for (int i = 0; i < b->nrows; i++) {
    const klab_result *r = &b->rows[i];
    if (!is_gemm_like(r->op)) continue;
    /* first row of its (op, shape, dtype) only */
    int dup = 0;
    for (int j = 0; j < i && !dup; j++)
      dup = !strcmp(b->rows[j].op, r->op) && !strcmp(b->rows[j].shape, r->shape) && !strcmp(b->rows[j].dtype, r->dtype);
    if (dup) continue;
    double sp[KLAB_MAX_VARIANTS * 2];
    int any = 0;
    for (int v = 0; v < nv; v++) {
      sp[v] = NAN;
      for (int j = 0; j < b->nrows; j++) {
        const klab_result *q = &b->rows[j];
        if (keep_speed(b, q, NULL) && !strcmp(q->op, r->op) && !strcmp(q->shape, r->shape) && !strcmp(q->dtype, r->dtype) &&
            !strcmp(q->variant, vars[v]))
          sp[v] = speedup_of(b, q);
      }
      if (isfinite(sp[v])) {
        any = 1;
        if (sp[v] > ymax) ymax = sp[v];
      }
    }
    if (!any) continue;
    char xt[256], sh[128];
    snprintf(sh, sizeof sh, "%s", r->shape);
    for (char *c = sh; *c; c++)
      if (*c == ';') *c = ' ';
    const char *l = klab_bundle_label(b, r->op, r->shape);
    snprintf(xt, sizeof xt, "%s%s%s%s%s", ops_seen == 3 ? r->op : "", ops_seen == 3 ? " " : "", l, *l ? "  " : "", sh);
    dat_str(dat, xt);
    if ((int)strlen(xt) > maxlen) maxlen = (int)strlen(xt);
    for (int v = 0; v < nv; v++) {
      if (isfinite(sp[v])) fprintf(dat, " %.4f", sp[v]);
      else fprintf(dat, " ?");
    }
    fputc('\n', dat);
    nshapes++;
  }
  *nbars = nshapes;
  if (!nshapes) return 0;
  int w = 260 + nshapes * (nv * 16 + 14);
  if (w < 1000) w = 1000;
  if (w > 12000) w = 12000;
  int bmargin = 3 + (maxlen * 45) / 100;
  preamble(gp, "speedup_vs_cublas", w, 640 + bmargin * 14);
  fprintf(gp, "set datafile missing '?'\n");
  fprintf(gp, "set style data histograms\nset style histogram clustered gap 1\n");
  fprintf(gp, "set style fill solid 0.85 border rgb '#333333'\nset boxwidth 0.9\n");
  fprintf(gp, "set xtics rotate by 60 right font ',9' nomirror\nset grid noxtics\n");
  fprintf(gp, "set ylabel 'speedup vs vendor (cuBLAS/cuBLASLt median / variant median)'\n");
  fprintf(gp, "set yrange [0:%.4g]\n", ymax * 1.15);
  fprintf(gp, "set key top left box opaque\n");
  fprintf(gp, "set bmargin %d\n", bmargin);
  char title[400];
  snprintf(title, sizeof title, "%s vs vendor: %s on %s (%s); above 1.0 = faster than cuBLAS",
           ops_seen == 3 ? "gemv and gemm" : (ops_seen == 1 ? "gemv" : "gemm"), b->name, b->gpu[0] ? b->gpu : "unknown GPU",
           b->arch);
  fprintf(gp, "set title ");
  gp_str(gp, title);
  fprintf(gp, "\nset arrow 1 from graph 0, first 1 to graph 1, first 1 nohead lw 2 dt 2 lc rgb '#000000' front\n");
  fprintf(gp, "set label 1 'vendor = 1.0' at graph 1, first 1 offset -1,0.7 right front font ',10'\n");
  fprintf(gp, "plot \\\n");
  for (int v = 0; v < nv; v++) {
    fprintf(gp, "%s  'plots/speedup_vs_cublas.dat' using %d%s lc rgb '%s' title ", v ? ", \\\n" : "", v + 2,
            v == 0 ? ":xtic(1)" : "", palette[(v + 1) % NPAL]);
    gp_str(gp, vars[v]);
  }
  fprintf(gp, "\n");
  finish(gp, "speedup_vs_cublas", 0);
  return 0;
}

/* ---- % of peak bandwidth vs bytes for memory-bound ops ---- */
typedef struct {
  double ridge;
  const char *const *ops; /* memory-bound ops */
  int nops;
} bw_ctx;

static int keep_bw(const klab_bundle *b, const klab_result *r, const void *vctx) {
  const bw_ctx *c = vctx;
  if (!timed_pass(r) || !(r->bytes > 0) || !(r->gbps > 0)) return 0;
  for (int i = 0; i < c->nops; i++)
    if (!strcmp(c->ops[i], r->op)) return 1;
  (void)b;
  return 0;
}

static int cmp_bytes(const void *a, const void *b) {
  double x = (*(const klab_result *const *)a)->bytes, y = (*(const klab_result *const *)b)->bytes;
  return (x > y) - (x < y);
}

static int write_bandwidth(const klab_bundle *b, FILE *gp, FILE *dat, int *npoints) {
  int peaks = b->peak_bw_gbps > 0 && b->peak_tflops > 0;
  double ridge = peaks ? b->peak_tflops * 1000.0 / b->peak_bw_gbps : 50.0;
  /* memory-bound ops: every timed row's AI below the ridge point */
  const char *ops[64];
  int nops = 0;
  for (int i = 0; i < b->nrows; i++) {
    const klab_result *r = &b->rows[i];
    int have = 0;
    for (int k = 0; k < nops; k++) have |= !strcmp(ops[k], r->op);
    if (have || nops == 64) continue;
    int mem = 1, any = 0;
    for (int j = 0; j < b->nrows; j++) {
      const klab_result *q = &b->rows[j];
      if (strcmp(q->op, r->op) || !timed_pass(q)) continue;
      any = 1;
      if (isfinite(q->ai) && q->ai >= ridge) mem = 0;
    }
    if (mem && any) ops[nops++] = r->op;
  }
  bw_ctx c = {ridge, ops, nops};
  series *s;
  int ns;
  *npoints = 0;
  if (collect_series(b, keep_bw, &c, &s, &ns)) return -1;
  const klab_result **pts = malloc(sizeof *pts * (size_t)(b->nrows ? b->nrows : 1));
  if (!pts) { free(s); return -1; }
  /* percent when every point can be expressed as one, else GB/s */
  int pct = 1;
  for (int i = 0; i < b->nrows; i++)
    if (keep_bw(b, &b->rows[i], &c) && !isfinite(b->rows[i].pct_peak_bw) && !(b->peak_bw_gbps > 0)) pct = 0;
  double ymax = 0, xmin = INFINITY, xmax = 0;
  for (int k = 0; k < ns; k++) {
    int np = 0;
    for (int i = 0; i < b->nrows; i++) {
      const klab_result *r = &b->rows[i];
      if (keep_bw(b, r, &c) && !strcmp(r->op, s[k].op) && !strcmp(r->variant, s[k].variant)) pts[np++] = r;
    }
    qsort(pts, (size_t)np, sizeof *pts, cmp_bytes);
    fprintf(dat, "# %s %s%s: MB moved, %s, label\n", s[k].op, s[k].variant, s[k].vendor ? " (vendor)" : "",
            pct ? "% of peak bandwidth" : "GB/s");
    for (int i = 0; i < np; i++) {
      const klab_result *r = pts[i];
      double y = pct ? (isfinite(r->pct_peak_bw) ? r->pct_peak_bw : 100.0 * r->gbps / b->peak_bw_gbps) : r->gbps;
      char lb[160];
      fprintf(dat, "%.6g %.6g ", r->bytes / 1e6, y);
      dat_str(dat, point_label(b, r, lb, sizeof lb));
      fputc('\n', dat);
      if (y > ymax) ymax = y;
      if (r->bytes / 1e6 < xmin) xmin = r->bytes / 1e6;
      if (r->bytes / 1e6 > xmax) xmax = r->bytes / 1e6;
      (*npoints)++;
    }
    fprintf(dat, "\n\n");
  }
  free(pts);
  if (!*npoints) { free(s); return 0; }
  preamble(gp, "bandwidth", 1280, 800);
  fprintf(gp, "set logscale x\nset format x '%%g'\n");
  fprintf(gp, "set xrange [%.6g:%.6g]\n", xmin / 1.6, xmax * 1.6);
  fprintf(gp, "set xlabel 'minimal traffic per invocation (MB, log scale)'\n");
  if (pct) {
    fprintf(gp, "set ylabel '%% of measured streaming-read bandwidth'\n");
    fprintf(gp, "set yrange [0:%.4g]\n", ymax > 100 ? ymax * 1.1 : 110.0);
    fprintf(gp, "set arrow 1 from graph 0, first 100 to graph 1, first 100 nohead lw 2 dt 2 lc rgb '#000000'\n");
    fprintf(gp, "set label 1 '100%% = %.2f TB/s (measured streaming read)' at graph 0.01, first 100 offset 0,0.7 left\n",
            b->peak_bw_gbps / 1000.0);
  } else {
    fprintf(gp, "set ylabel 'achieved GB/s (no measured peak: run klab peaks)'\n");
    fprintf(gp, "set yrange [0:%.4g]\n", ymax * 1.15);
  }
  fprintf(gp, "set key outside right top vertical Left reverse box spacing 1.2\n");
  char title[400];
  snprintf(title, sizeof title, "Bandwidth of memory-bound ops: %s on %s (%s)", b->name, b->gpu[0] ? b->gpu : "unknown GPU",
           b->arch);
  fprintf(gp, "set title ");
  gp_str(gp, title);
  fprintf(gp, "\nplot \\\n");
  for (int k = 0; k < ns; k++) {
    char t[96];
    snprintf(t, sizeof t, "%s/%s%s", s[k].op, s[k].variant, s[k].vendor ? " (vendor)" : "");
    fprintf(gp, "%s  'plots/bandwidth.dat' index %d using 1:2 with linespoints pt %d ps 1.2 lw 2 %slc rgb '%s' title ",
            k ? ", \\\n" : "", k, point_type(&s[k]), s[k].vendor ? "dt 2 " : "", palette[k % NPAL]);
    gp_str(gp, t);
  }
  fprintf(gp, "\n");
  finish(gp, "bandwidth", 0);
  free(s);
  return 0;
}

typedef int (*writer_fn)(const klab_bundle *, FILE *, FILE *, int *);
static int write_roofline_adapter(const klab_bundle *b, FILE *gp, FILE *dat, int *n) { return write_roofline(b, NULL, gp, dat, n); }

int klab_plot_scripts(const klab_bundle *b, int *written, char *why, size_t why_len, klab_err *err) {
  *written = 0;
  if (why && why_len) why[0] = 0;
  char pdir[1100];
  snprintf(pdir, sizeof pdir, "%s/plots", b->dir);
  if (klab_mkdir_p(pdir)) return klab_fail(err, "%s: cannot create: %s", pdir, strerror(errno));
  struct { int bit; writer_fn fn; const char *empty; } plots[] = {
      {KLAB_PLOT_ROOFLINE, write_roofline_adapter, "no timed PASS row with FLOPs"},
      {KLAB_PLOT_SPEEDUP, write_speedup, "no gemv/gemm row with a vendor baseline"},
      {KLAB_PLOT_BANDWIDTH, write_bandwidth, "no memory-bound op with a timed PASS"},
  };
  for (size_t i = 0; i < sizeof plots / sizeof plots[0]; i++) {
    const char *name = klab_plot_name(plots[i].bit);
    char gpath[1200], dpath[1200], tgp[1220], tdat[1220];
    snprintf(gpath, sizeof gpath, "%s/%s.gp", pdir, name);
    snprintf(dpath, sizeof dpath, "%s/%s.dat", pdir, name);
    snprintf(tgp, sizeof tgp, "%s.tmp", gpath);
    snprintf(tdat, sizeof tdat, "%s.tmp", dpath);
    FILE *gp = fopen(tgp, "w"), *dat = fopen(tdat, "w");
    if (!gp || !dat) {
      if (gp) fclose(gp);
      if (dat) fclose(dat);
      remove(tgp), remove(tdat);
      return klab_fail(err, "%s: cannot write: %s", pdir, strerror(errno));
    }
    fprintf(dat, "# %s data from %s (written by klab plot)\n", name, b->csv_path);
    int n = 0;
    int rc = plots[i].fn(b, gp, dat, &n);
    int bad = ferror(gp) || ferror(dat);
    bad |= fclose(gp) != 0;
    bad |= fclose(dat) != 0;
    if (rc || bad) {
      remove(tgp), remove(tdat);
      return klab_fail(err, "%s: writing %s failed (%s)", pdir, name, rc ? "out of memory" : "I/O error");
    }
    if (n == 0) {
      remove(tgp), remove(tdat);
      if (why && why_len) {
        size_t u = strlen(why);
        snprintf(why + u, why_len - u, "%s%s left out: %s", u ? "; " : "", name, plots[i].empty);
      }
      continue;
    }
    if (rename(tgp, gpath) || rename(tdat, dpath))
      return klab_fail(err, "%s: cannot rename into place: %s", gpath, strerror(errno));
    *written |= plots[i].bit;
  }
  return 0;
}

int klab_gnuplot_find(char *path, size_t len) {
  const char *env = getenv("KLAB_GNUPLOT");
  if (env && *env) {
    snprintf(path, len, "%s", env);
    return access(path, X_OK) == 0;
  }
  const char *p = getenv("PATH");
  if (!p) return 0;
  while (*p) {
    size_t l = strcspn(p, ":");
    snprintf(path, len, "%.*s/gnuplot", (int)l, p);
    if (l && access(path, X_OK) == 0) return 1;
    p += l;
    if (*p == ':') p++;
  }
  return 0;
}

static int nonempty(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

int klab_plot_render(const klab_bundle *b, int which, klab_err *err) {
  char gnuplot[1024];
  if (!klab_gnuplot_find(gnuplot, sizeof gnuplot))
    return klab_fail(err, "gnuplot not found on PATH (Debian: apt-get install gnuplot-nox); scripts are in %s/plots", b->dir);
  for (int bit = 1; bit <= KLAB_PLOT_BANDWIDTH; bit <<= 1) {
    if (!(which & bit)) continue;
    const char *name = klab_plot_name(bit);
    char script[64];
    snprintf(script, sizeof script, "plots/%s.gp", name);
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return klab_fail(err, "fork for gnuplot failed: %s", strerror(errno));
    if (pid == 0) {
      if (chdir(b->dir) != 0) _exit(126);
      execl(gnuplot, "gnuplot", script, (char *)NULL);
      _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
      if (errno != EINTR) return klab_fail(err, "waitpid: %s", strerror(errno));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      return klab_fail(err, "gnuplot %s/%s failed (%s %d)", b->dir, script, WIFEXITED(st) ? "exit status" : "signal",
                       WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    char png[1200], svg[1200];
    snprintf(png, sizeof png, "%s/%s.png", b->dir, name);
    snprintf(svg, sizeof svg, "%s/%s.svg", b->dir, name);
    if (!nonempty(png) || !nonempty(svg)) return klab_fail(err, "gnuplot ran but %s or %s is missing or empty", png, svg);
  }
  return 0;
}

int klab_plot_bundle(const klab_bundle *b, int render, char *note, size_t note_len, klab_err *err) {
  int written;
  char why[512];
  if (klab_plot_scripts(b, &written, why, sizeof why, err)) return -1;
  char made[256] = "";
  for (int bit = 1; bit <= KLAB_PLOT_BANDWIDTH; bit <<= 1)
    if (written & bit) {
      size_t u = strlen(made);
      snprintf(made + u, sizeof made - u, "%s%s", u ? ", " : "", klab_plot_name(bit));
    }
  char gnuplot[1024];
  int have = klab_gnuplot_find(gnuplot, sizeof gnuplot);
  if (render && written && have) {
    if (klab_plot_render(b, written, err)) return -1;
  }
  if (note && note_len)
    snprintf(note, note_len, "%s%s%s%s%s", written ? "plots: " : "no plots", made,
             written ? (render && have ? " (png+svg rendered)" : (render ? " (scripts only: gnuplot not found)" : " (scripts only)")) : "",
             why[0] ? "; " : "", why);
  return 0;
}
