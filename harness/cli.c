/* klab list | check | bench | peaks. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "harness/commands.h"
#include "harness/klab.h"
#include "harness/peaks.h"
#include "harness/run.h"
#include "harness/timing.h"

#define MAX_SHAPES 64

typedef struct {
  const klab_op *op;
  int nshapes;
  int64_t shapes[MAX_SHAPES][KLAB_MAX_DIMS];
  char labels[MAX_SHAPES][64];
  const char *csv;
  const char *peaks_path;
  klab_run_opts run;
} cli_opts;

static int parse_int(const char *flag, const char *v, long long lo, long long hi, long long *out) {
  char *end;
  errno = 0;
  long long x = v ? strtoll(v, &end, 10) : 0;
  if (!v || end == v || *end || errno || x < lo || x > hi) {
    fprintf(stderr, "klab: %s needs an integer in [%lld, %lld], got '%s'\n", flag, lo, hi, v ? v : "(nothing)");
    return -1;
  }
  *out = x;
  return 0;
}

static int parse_double(const char *flag, const char *v, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double x = v ? strtod(v, &end) : 0;
  if (!v || end == v || *end || errno || !(x >= lo && x <= hi)) {
    fprintf(stderr, "klab: %s needs a number in [%g, %g], got '%s'\n", flag, lo, hi, v ? v : "(nothing)");
    return -1;
  }
  *out = x;
  return 0;
}

static void usage_run(const char *cmd, FILE *f) {
  fprintf(f,
          "usage: klab %s OP [--shape D=V,...]... [--variant V] [--seeds N] [--seed S]%s\n"
          "  OP            an op from `klab list`\n"
          "  --shape S     e.g. M=1,N=6144,K=2560 (repeatable); default: the op's preset shapes\n"
          "  --variant V   only this variant%s\n"
          "  --seeds N     gate checks per variant (distributions cycle uniform/normal/outliers; default 3)\n"
          "  --seed S      first seed (default 20261122); every result row names the seed it was checked with\n",
          cmd, strcmp(cmd, "bench") == 0 ? " [--csv FILE] [--peaks FILE] [--graph] [--spaced] [timing options]" : "",
          strcmp(cmd, "bench") == 0 ? " (the vendor baseline still runs, for the speedup column)" : "");
  if (strcmp(cmd, "bench") == 0)
    fprintf(f,
            "  --csv FILE    write the CSV rows to FILE ('-' for stdout); columns in docs/methodology.md\n"
            "  --peaks FILE  measured ceilings (default results/peaks/<gpu>.json; `klab peaks` makes it)\n"
            "  --graph       time replays of a CUDA graph of each launch\n"
            "  --spaced      wait for every timed launch before the next (each starts on an idle GPU; by default\n"
            "                launches run back-to-back, where a kernel may overlap or queue behind the previous one)\n"
            "  --max-noise X stop when the relative standard error of the mean is below X (default 0.005)\n"
            "  --min-samples N / --max-samples N / --max-seconds S   sampling bounds per round (default 50 / 2000 / 3)\n"
            "  --rounds N    time every variant N times in alternating order, pooling the samples (default 1):\n"
            "                clock and temperature drift then falls on every variant alike\n"
            "exit status: 0 every variant passed (or declined the shape), 1 a variant failed, 2 usage or error\n");
  else
    fprintf(f, "exit status: 0 every variant passed (or declined the shape), 1 a variant failed, 2 usage or error\n");
}

static int parse_run_args(int argc, char **argv, int bench, cli_opts *o) {
  memset(o, 0, sizeof *o);
  klab_run_opts_default(&o->run);
  o->run.time_it = bench;
  const char *cmd = bench ? "bench" : "check";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    long long n;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { usage_run(cmd, stdout); return 1; }
    if (a[0] != '-') {
      if (o->op) { fprintf(stderr, "klab %s: unexpected argument '%s'\n", cmd, a); return -1; }
      o->op = klab_find_op(a);
      if (!o->op) { fprintf(stderr, "klab %s: unknown op '%s' (see `klab list`)\n", cmd, a); return -1; }
      continue;
    }
    if (!v && strcmp(a, "--graph") != 0 && strcmp(a, "--spaced") != 0 && strcmp(a, "--verbose") != 0) {
      fprintf(stderr, "klab %s: %s needs a value\n", cmd, a);
      return -1;
    }
    if (strcmp(a, "--shape") == 0) {
      if (!o->op) { fprintf(stderr, "klab %s: name the op before --shape\n", cmd); return -1; }
      if (o->nshapes == MAX_SHAPES) { fprintf(stderr, "klab %s: at most %d shapes\n", cmd, MAX_SHAPES); return -1; }
      klab_err err;
      if (klab_parse_shape(o->op, v, o->shapes[o->nshapes], &err)) { fprintf(stderr, "klab %s: %s\n", cmd, err.msg); return -1; }
      snprintf(o->labels[o->nshapes], sizeof o->labels[0], "--shape");
      o->nshapes++;
      i++;
    } else if (strcmp(a, "--variant") == 0) o->run.variant = v, i++;
    else if (strcmp(a, "--seeds") == 0) { if (parse_int(a, v, 1, 1000, &n)) return -1; o->run.seeds = (int)n; i++; }
    else if (strcmp(a, "--seed") == 0) {
      char *end;
      errno = 0;
      unsigned long long s = strtoull(v, &end, 10);
      if (end == v || *end || errno || v[0] == '-') { fprintf(stderr, "klab %s: --seed needs a non-negative integer, got '%s'\n", cmd, v); return -1; }
      o->run.seed = s;
      i++;
    } else if (bench && strcmp(a, "--csv") == 0) o->csv = v, i++;
    else if (bench && strcmp(a, "--peaks") == 0) o->peaks_path = v, i++;
    else if (bench && strcmp(a, "--graph") == 0) o->run.use_graph = 1;
    else if (bench && strcmp(a, "--spaced") == 0) o->run.spaced = 1;
    else if (strcmp(a, "--verbose") == 0) o->run.verbose = 1;
    else if (bench && strcmp(a, "--max-noise") == 0) { if (parse_double(a, v, 1e-6, 1.0, &o->run.max_noise)) return -1; i++; }
    else if (bench && strcmp(a, "--min-samples") == 0) { if (parse_int(a, v, 1, 1000000, &n)) return -1; o->run.min_samples = (int)n; i++; }
    else if (bench && strcmp(a, "--max-samples") == 0) { if (parse_int(a, v, 1, 1000000, &n)) return -1; o->run.max_samples = (int)n; i++; }
    else if (bench && strcmp(a, "--max-seconds") == 0) { if (parse_double(a, v, 0.001, 3600, &o->run.max_seconds)) return -1; i++; }
    else if (bench && strcmp(a, "--rounds") == 0) { if (parse_int(a, v, 1, 100, &n)) return -1; o->run.rounds = (int)n; i++; }
    else { fprintf(stderr, "klab %s: unknown option '%s' (see klab %s --help)\n", cmd, a, cmd); return -1; }
  }
  if (!o->op) { fprintf(stderr, "klab %s: which op? (see `klab list`)\n", cmd); usage_run(cmd, stderr); return -1; }
  if (o->run.min_samples > o->run.max_samples) { fprintf(stderr, "klab %s: --min-samples exceeds --max-samples\n", cmd); return -1; }
  if (o->run.variant && !klab_find_variant(o->op, o->run.variant)) {
    fprintf(stderr, "klab %s: op %s has no variant '%s' (variants:", cmd, o->op->name, o->run.variant);
    for (int i = 0; i < o->op->nvariants; i++) fprintf(stderr, " %s", o->op->variants[i]->name);
    fprintf(stderr, ")\n");
    return -1;
  }
  if (o->nshapes == 0) {
    for (int p = 0; p < o->op->npresets && p < MAX_SHAPES; p++) {
      memcpy(o->shapes[p], o->op->presets[p].d, sizeof o->shapes[p]);
      snprintf(o->labels[p], sizeof o->labels[0], "%s", o->op->presets[p].label);
    }
    o->nshapes = o->op->npresets;
  }
  return 0;
}

static void fmt_num(char *buf, size_t n, double v, const char *fmt) {
  if (isfinite(v)) snprintf(buf, n, fmt, v);
  else snprintf(buf, n, "-");
}

static void print_check_row(const klab_result *r) {
  char a[32], b[32], c[32];
  fmt_num(a, sizeof a, r->max_abs_err, "%.3e");
  fmt_num(b, sizeof b, r->max_rel_err, "%.3e");
  fmt_num(c, sizeof c, r->rel_l2, "%.3e");
  printf("  %-10s %-5s max_abs %-10s max_rel %-10s rel_l2 %-10s seed %llu%s%s\n", r->variant, klab_status_name(r->status), a, b, c,
         (unsigned long long)r->seed, r->note[0] ? "  " : "", r->note);
}

static void print_bench_row(const klab_result *r) {
  char med[32], p10[32], p90[32], ev[32], gb[32], pbw[32], psz[32], tf[32], sp[32];
  fmt_num(med, sizeof med, r->median_us, "%.2f");
  fmt_num(p10, sizeof p10, r->p10_us, "%.2f");
  fmt_num(p90, sizeof p90, r->p90_us, "%.2f");
  fmt_num(ev, sizeof ev, r->event_median_us, "%.2f");
  fmt_num(gb, sizeof gb, r->gbps, "%.0f");
  fmt_num(pbw, sizeof pbw, r->pct_peak_bw, "%.1f%%");
  fmt_num(psz, sizeof psz, r->pct_size_bw, "%.1f%%");
  fmt_num(tf, sizeof tf, r->tflops, "%.3g");
  fmt_num(sp, sizeof sp, r->speedup_vs_vendor, "%.2fx");
  printf("  %-10s %-5s %9s us [p10 %s p90 %s, n %d, events %s]  %7s GB/s %7s of bw (%s of a read this size)  %6s TFLOP/s  vs vendor %s%s%s\n",
         r->variant, klab_status_name(r->status), med, p10, p90, r->n, ev, gb, pbw, psz, tf, sp, r->note[0] ? "  " : "", r->note);
}

static int run_command(int argc, char **argv, int bench) {
  cli_opts o;
  int pr = parse_run_args(argc, argv, bench, &o);
  if (pr) return pr > 0 ? 0 : 2;
  char why[256];
  if (!klab_have_gpu(why, sizeof why)) {
    fprintf(stderr, "klab %s: %s\n", bench ? "bench" : "check", why);
    return 2;
  }
  /* CUPTI before any kernel (cuBLAS's included) runs, so every launch is recorded. */
  if (bench && !klab_cupti_start(why, sizeof why)) fprintf(stderr, "klab bench: %s\n", why);
  klab_device_info dev;
  klab_err err;
  if (klab_device_query(&dev, &err)) {
    fprintf(stderr, "klab %s: %s\n", bench ? "bench" : "check", err.msg);
    return 2;
  }
  klab_peaks peaks = {0};
  if (bench) {
    char path[512];
    if (o.peaks_path) snprintf(path, sizeof path, "%s", o.peaks_path);
    else klab_peaks_default_path(dev.name, path, sizeof path);
    if (klab_peaks_load(path, &peaks, &err)) {
      if (o.peaks_path) { fprintf(stderr, "klab bench: %s\n", err.msg); return 2; }
      fprintf(stderr, "klab bench: no measured peaks for this GPU (%s): %% of roofline columns stay empty; run `klab peaks` to measure them\n", path);
    } else if (strcmp(peaks.gpu, dev.name) != 0) {
      fprintf(stderr, "klab bench: peaks file %s was measured on '%s', this GPU is '%s'\n", path, peaks.gpu, dev.name);
    }
  }
  FILE *csv = NULL;
  if (o.csv) {
    csv = strcmp(o.csv, "-") == 0 ? stdout : fopen(o.csv, "w");
    if (!csv) { fprintf(stderr, "klab bench: cannot write %s: %s\n", o.csv, strerror(errno)); return 2; }
    klab_csv_header(csv);
  }
  int worst = 0;
  printf("%s on %s (sm_%d%d, %d SMs, L2 %zu MiB)%s\n", o.op->name, dev.name, dev.cc_major, dev.cc_minor, dev.sm_count, dev.l2_bytes >> 20,
         bench ? (klab_cupti_active() ? ", timer: CUPTI kernel records" : ", timer: CUDA events (CUPTI unavailable)") : "");
  for (int s = 0; s < o.nshapes; s++) {
    klab_result rows[KLAB_MAX_VARIANTS];
    int nrows = 0;
    char shape[128];
    klab_format_shape(o.op, o.shapes[s], ',', shape, sizeof shape);
    printf("%s %s%s%s%s\n", o.op->name, shape, o.labels[s][0] && strcmp(o.labels[s], "--shape") ? " (" : "",
           strcmp(o.labels[s], "--shape") ? o.labels[s] : "", o.labels[s][0] && strcmp(o.labels[s], "--shape") ? ")" : "");
    int rc = klab_run_shape(o.op, o.shapes[s], &o.run, &peaks, rows, &nrows, &err);
    if (rc < 0) {
      fprintf(stderr, "klab: %s\n", err.msg);
      if (csv && csv != stdout) fclose(csv);
      return 2;
    }
    for (int i = 0; i < nrows; i++) {
      if (bench) print_bench_row(&rows[i]);
      else print_check_row(&rows[i]);
      if (csv) klab_csv_row(csv, &rows[i]);
    }
    if (csv) fflush(csv);
    if (rc > worst) worst = rc;
  }
  if (csv && csv != stdout && fclose(csv) != 0) { fprintf(stderr, "klab bench: writing %s failed\n", o.csv); return 2; }
  return worst;
}

static int cmd_check(int argc, char **argv) { return run_command(argc, argv, 0); }
static int cmd_bench(int argc, char **argv) { return run_command(argc, argv, 1); }

static int cmd_list(int argc, char **argv) {
  int tolerances = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      printf("usage: klab list [--tolerances]\n  ops, their dims, variants and preset shapes; --tolerances prints the gate's tolerance table\n");
      return 0;
    }
    if (strcmp(argv[i], "--tolerances") == 0) tolerances = 1;
    else { fprintf(stderr, "klab list: unknown option '%s'\n", argv[i]); return 2; }
  }
  if (tolerances) {
    printf("%-14s %-5s %-9s %-9s %-9s %-9s\n", "op", "dtype", "rtol", "atol_rms", "atol_abs", "rel_l2");
    for (int i = 0; i < klab_tolerance_rows(); i++) {
      const char *op;
      klab_dtype dt;
      klab_tolerance t;
      klab_tolerance_row(i, &op, &dt, &t);
      printf("%-14s %-5s %-9.3g %-9.3g %-9.3g %-9.3g\n", op, klab_dtype_name(dt), t.rtol, t.atol_rms, t.atol_abs, t.rel_l2);
    }
    return 0;
  }
  for (int i = 0; i < klab_op_count(); i++) {
    const klab_op *op = klab_op_at(i);
    printf("%s: %s\n  dims:", op->name, op->summary);
    for (int d = 0; d < op->ndims; d++) printf(" %s", op->dim_names[d]);
    printf("\n  tensors:");
    for (int t = 0; t < op->ntensors; t++)
      printf(" %s(%s,%s)", op->tensors[t].name, klab_dtype_name(op->tensors[t].dtype),
             op->tensors[t].role == KLAB_IN ? "in" : op->tensors[t].role == KLAB_OUT ? "out" : "inout");
    printf("\n  variants:\n");
    for (int v = 0; v < op->nvariants; v++)
      printf("    %-10s %-9s %s\n", op->variants[v]->name, klab_variant_kind_name(op->variants[v]->kind), op->variants[v]->summary);
    printf("  preset shapes:\n");
    for (int p = 0; p < op->npresets; p++) {
      char s[128];
      klab_format_shape(op, op->presets[p].d, ',', s, sizeof s);
      printf("    %-28s %s\n", s, op->presets[p].label);
    }
  }
  return 0;
}

static int cmd_peaks(int argc, char **argv) {
  const char *out = NULL;
  int verbose = 0;
  long long read_mib = 4096, gemm_n = 8192;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      printf("usage: klab peaks [--out FILE] [--read-mib N] [--gemm-n N] [--verbose]\n"
             "  measures streaming-read bandwidth (N MiB buffer, default 4096, 16-byte loads) and the cuBLAS bf16\n"
             "  GEMM rate at N^3 (default 8192), prints them as JSON and saves them to FILE\n"
             "  (default results/peaks/<gpu>.json, where `klab bench` looks); with CUPTI also the size curve:\n"
             "  the best kernel time of a streaming read of 4 KiB .. 1 GiB from DRAM, which bench's\n"
             "  pct_size_bw column divides by\n");
      return 0;
    }
    if (strcmp(a, "--verbose") == 0) { verbose = 1; continue; }
    if (!v) { fprintf(stderr, "klab peaks: %s needs a value\n", a); return 2; }
    if (strcmp(a, "--out") == 0) out = v;
    else if (strcmp(a, "--read-mib") == 0) { if (parse_int(a, v, 64, 1 << 20, &read_mib)) return 2; }
    else if (strcmp(a, "--gemm-n") == 0) { if (parse_int(a, v, 256, 32768, &gemm_n)) return 2; }
    else { fprintf(stderr, "klab peaks: unknown option '%s'\n", a); return 2; }
    i++;
  }
  /* CUPTI before the first kernel: the size curve is timed like `klab bench`. */
  char why[256];
  int cupti = klab_cupti_start(why, sizeof why);
  klab_device_info dev;
  klab_err err;
  if (klab_device_query(&dev, &err)) { fprintf(stderr, "klab peaks: %s\n", err.msg); return 2; }
  klab_peaks p = {0};
  snprintf(p.gpu, sizeof p.gpu, "%s", dev.name);
  time_t now = time(NULL);
  strftime(p.date, sizeof p.date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
  if (klab_measure_read_bw((size_t)read_mib << 20, &p.read_bw_gbps, verbose, &err) ||
      klab_measure_gemm_bf16((int)gemm_n, &p.gemm_bf16_tflops, verbose, &err)) {
    fprintf(stderr, "klab peaks: %s\n", err.msg);
    return 2;
  }
  if (!cupti) fprintf(stderr, "klab peaks: %s: no size curve measured (pct_size_bw columns stay empty)\n", why);
  else if (klab_measure_read_curve(&p, verbose, &err)) {
    fprintf(stderr, "klab peaks: %s\n", err.msg);
    return 2;
  }
  p.valid = 1;
  char path[512];
  if (out) snprintf(path, sizeof path, "%s", out);
  else klab_peaks_default_path(dev.name, path, sizeof path);
  if (klab_peaks_save(path, &p, &err)) { fprintf(stderr, "klab peaks: %s\n", err.msg); return 2; }
  printf("{\"gpu\": \"%s\", \"read_bw_gbps\": %.1f, \"gemm_bf16_tflops\": %.1f, \"read_curve_points\": %d, \"date\": \"%s\", \"saved\": \"%s\"}\n",
         p.gpu, p.read_bw_gbps, p.gemm_bf16_tflops, p.ncurve, p.date, path);
  return 0;
}

const klab_command klab_core_commands[] = {
    {"list", cmd_list, "ops, their variants, dims and preset shapes"},
    {"check", cmd_check, "correctness gate only: PASS/FAIL per variant with errors and seed"},
    {"bench", cmd_bench, "gate, then time (CUPTI); one CSV row per variant"},
    {"peaks", cmd_peaks, "measure streaming-read bandwidth and cuBLAS bf16 GEMM rate; save as JSON"},
    {NULL, NULL, NULL},
};
