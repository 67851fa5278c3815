/* The bundle commands: env, sweep, aggregate, plot, compare. Exit status: 0 all passed, 1 a FAIL (or a
 * regression), 2 bad usage or an error. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "harness/commands.h"
#include "harness/bundle.h"
#include "harness/compare.h"
#include "harness/env.h"
#include "harness/plot.h"
#include "harness/sweep.h"

static int is_help(const char *a) { return !strcmp(a, "--help") || !strcmp(a, "-h"); }

/* ---- klab env ---- */
static void usage_env(FILE *f) {
  fprintf(f, "usage: klab env\n"
             "Prints the measurement environment as JSON: GPU (name, UUID, arch, SMs, L2, memory), driver state\n"
             "(SM/memory clocks current and max, temperature, power; from NVML or nvidia-smi, null with\n"
             "driver_state_error when neither is present), CUDA driver/runtime, cuBLAS and CUPTI versions, git commit\n"
             "and dirty flag, UTC date, hostname. Without a GPU the gpu fields are null and gpu_error says why\n"
             "(exit status 0).\n");
}

static int cmd_env(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (is_help(argv[i])) { usage_env(stdout); return 0; }
    fprintf(stderr, "klab env: unexpected argument '%s'\n", argv[i]);
    usage_env(stderr);
    return 2;
  }
  cJSON *env = klab_env_json();
  char *text = env ? cJSON_Print(env) : NULL;
  cJSON_Delete(env);
  if (!text) { fprintf(stderr, "klab env: out of memory\n"); return 2; }
  int ok = puts(text) >= 0;
  free(text);
  return ok && fflush(stdout) == 0 ? 0 : 2;
}

/* The exact command line of this process (for env.json), shell-quoted. */
static void command_line(int argc, char **argv, char *buf, size_t len) {
  buf[0] = 0;
  char raw[8192];
  size_t n = 0;
  FILE *f = fopen("/proc/self/cmdline", "rb");
  if (f) {
    n = fread(raw, 1, sizeof raw - 1, f);
    fclose(f);
  }
  const char *args[256];
  int na = 0;
  if (n > 0) {
    raw[n] = 0;
    for (size_t p = 0; p < n && na < 256; p += strlen(raw + p) + 1) args[na++] = raw + p;
  } else {
    args[na++] = "klab";
    for (int i = 0; i < argc && na < 256; i++) args[na++] = argv[i];
  }
  for (int i = 0; i < na; i++) {
    size_t u = strlen(buf);
    if (u + 4 >= len) return;
    if (i) buf[u++] = ' ', buf[u] = 0;
    const char *a = args[i];
    int plain = *a != 0;
    for (const char *c = a; *c; c++)
      if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%", *c)) plain = 0;
    if (plain) {
      snprintf(buf + u, len - u, "%s", a);
    } else {
      size_t j = u;
      buf[j++] = '\'';
      for (const char *c = a; *c && j + 6 < len; c++) {
        if (*c == '\'') { memcpy(buf + j, "'\\''", 4); j += 4; }
        else buf[j++] = *c;
      }
      if (j + 2 < len) buf[j++] = '\'';
      buf[j] = 0;
    }
  }
}

/* ---- klab sweep ---- */
static void usage_sweep(FILE *f) {
  fprintf(f, "usage: klab sweep SPEC.json [--out DIR] [--resume | --force] [--peaks FILE] [--no-plots] [--dry-run]\n"
             "Runs a sweep spec (sweeps/*.json; format in docs/bundles.md) into a result bundle:\n"
             "  DIR/kernels.csv   one row per (op, shape, dtype, variant), written as it goes\n"
             "  DIR/env.json      GPU, clocks/temperature/power before and after, versions, commit, command line, peaks\n"
             "  DIR/shapes.csv    shape labels (e.g. \"qwen3-4b qkv\")\n"
             "  DIR/aggregate.md  per-op tables, geometric-mean speedups, every FAIL\n"
             "  DIR/winners.json  per op and shape: the fastest variant that passed the gate (keyed by GPU arch)\n"
             "  DIR/*.png, *.svg  plots when gnuplot is installed (scripts in DIR/plots/)\n"
             "The whole spec is validated before any GPU work (file, JSON path and reason on error).\n"
             "  --out DIR      bundle folder (default results/<spec name>)\n"
             "  --resume       continue an interrupted sweep: keep kernels.csv, skip what it already holds\n"
             "  --force        start over even though DIR/kernels.csv exists\n"
             "  --peaks FILE   measured ceilings (default: results/peaks/<gpu>.json when present)\n"
             "  --no-plots     skip the gnuplot rendering\n"
             "  --dry-run      validate and list the shapes; no GPU needed\n"
             "Exit status: 0 every variant passed or was skipped, 1 a FAIL/ERROR row, 2 usage or error.\n");
}

static int cmd_sweep(int argc, char **argv) {
  const char *spec_path = NULL, *out = NULL, *peaks = NULL;
  int resume = 0, force = 0, plots = 1, dry = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (is_help(a)) { usage_sweep(stdout); return 0; }
    if (!strcmp(a, "--out") || !strcmp(a, "--peaks")) {
      if (i + 1 >= argc || !argv[i + 1][0]) { fprintf(stderr, "klab sweep: %s needs a value\n", a); return 2; }
      if (!strcmp(a, "--out")) out = argv[++i];
      else peaks = argv[++i];
    } else if (!strcmp(a, "--resume")) resume = 1;
    else if (!strcmp(a, "--force")) force = 1;
    else if (!strcmp(a, "--no-plots")) plots = 0;
    else if (!strcmp(a, "--dry-run")) dry = 1;
    else if (a[0] == '-' && a[1]) { fprintf(stderr, "klab sweep: unknown option '%s' (see klab sweep --help)\n", a); return 2; }
    else if (!spec_path) spec_path = a;
    else { fprintf(stderr, "klab sweep: more than one spec ('%s', '%s')\n", spec_path, a); return 2; }
  }
  if (!spec_path) { usage_sweep(stderr); return 2; }
  if (resume && force) { fprintf(stderr, "klab sweep: --resume and --force exclude each other\n"); return 2; }
  klab_sweep_spec spec;
  klab_err err;
  if (klab_sweep_parse_file(spec_path, 0, &spec, &err)) {
    fprintf(stderr, "klab sweep: invalid spec: %s\n", err.msg);
    return 2;
  }
  if (dry) {
    printf("spec %s (%s): %d op entries, %ld shapes\n", spec.path, spec.name, spec.nops, klab_sweep_total_shapes(&spec));
    for (int i = 0; i < spec.nops; i++) {
      const klab_sweep_op *so = &spec.ops[i];
      printf("%s %s: %d shapes, variants: ", so->json_path, so->op_name, so->nshapes);
      if (!so->nvariants) printf("all");
      for (int v = 0; v < so->nvariants; v++) printf("%s%s", v ? ", " : "", so->variants[v]);
      printf("\n");
      for (int s = 0; s < so->nshapes; s++) {
        char t[128];
        klab_format_shape(so->op, so->shapes[s], ';', t, sizeof t);
        printf("  %s%s%s\n", t, so->labels[s][0] ? "  # " : "", so->labels[s]);
      }
    }
    klab_sweep_free(&spec);
    return 0;
  }
  char outbuf[600];
  if (!out) {
    snprintf(outbuf, sizeof outbuf, "results/%s", spec.name);
    out = outbuf;
  }
  char cmd[8192];
  command_line(argc, argv, cmd, sizeof cmd);
  klab_sweep_run_opts o = {out, resume, force, peaks, cmd, plots};
  int rc = klab_sweep_run(&spec, &o, &err);
  klab_sweep_free(&spec);
  if (rc < 0) {
    fprintf(stderr, "klab sweep: %s\n", err.msg);
    return 2;
  }
  return rc ? 1 : 0;
}

/* ---- klab aggregate ---- */
static void usage_aggregate(FILE *f) {
  fprintf(f, "usage: klab aggregate BUNDLE [--plots]\n"
             "Re-derives BUNDLE/aggregate.md and BUNDLE/winners.json from BUNDLE/kernels.csv (+ env.json, shapes.csv);\n"
             "--plots also re-makes the plots. Exit status 1 when the CSV holds a FAIL/ERROR row.\n");
}

static int cmd_aggregate(int argc, char **argv) {
  const char *dir = NULL;
  int plots = 0;
  for (int i = 1; i < argc; i++) {
    if (is_help(argv[i])) { usage_aggregate(stdout); return 0; }
    if (!strcmp(argv[i], "--plots")) plots = 1;
    else if (argv[i][0] == '-') { fprintf(stderr, "klab aggregate: unknown option '%s'\n", argv[i]); return 2; }
    else if (!dir) dir = argv[i];
    else { fprintf(stderr, "klab aggregate: one bundle only\n"); return 2; }
  }
  if (!dir) { usage_aggregate(stderr); return 2; }
  klab_err err;
  char note[768];
  if (klab_bundle_summarize(dir, plots, note, sizeof note, &err)) {
    fprintf(stderr, "klab aggregate: %s\n", err.msg);
    return 2;
  }
  klab_bundle b;
  if (klab_bundle_load(dir, &b, &err)) { fprintf(stderr, "klab aggregate: %s\n", err.msg); return 2; }
  int fails = 0;
  for (int i = 0; i < b.nrows; i++) fails += b.rows[i].status == KLAB_FAIL || b.rows[i].status == KLAB_ERROR;
  printf("%s: wrote aggregate.md and winners.json (%d rows, %d FAIL/ERROR)%s%s\n", b.dir, b.nrows, fails, plots ? "; " : "",
         plots ? note : "");
  klab_bundle_free(&b);
  return fails ? 1 : 0;
}

/* ---- klab plot ---- */
static void usage_plot(FILE *f) {
  fprintf(f, "usage: klab plot BUNDLE [--scripts-only]\n"
             "Makes the bundle's plots from its kernels.csv alone (+ env.json peaks and shapes.csv labels when present):\n"
             "  roofline.png/.svg           log-log arithmetic intensity vs TFLOP/s with the measured ceilings\n"
             "  speedup_vs_cublas.png/.svg  per-shape speedup of gemv/gemm variants over the vendor (1.0 marked)\n"
             "  bandwidth.png/.svg          %% of peak bandwidth vs bytes moved for memory-bound ops\n"
             "gnuplot scripts and data go to BUNDLE/plots/ (re-render: cd BUNDLE && gnuplot plots/NAME.gp).\n"
             "Needs gnuplot (Debian: gnuplot-nox) unless --scripts-only.\n");
}

static int cmd_plot(int argc, char **argv) {
  const char *dir = NULL;
  int render = 1;
  for (int i = 1; i < argc; i++) {
    if (is_help(argv[i])) { usage_plot(stdout); return 0; }
    if (!strcmp(argv[i], "--scripts-only")) render = 0;
    else if (argv[i][0] == '-') { fprintf(stderr, "klab plot: unknown option '%s'\n", argv[i]); return 2; }
    else if (!dir) dir = argv[i];
    else { fprintf(stderr, "klab plot: one bundle only\n"); return 2; }
  }
  if (!dir) { usage_plot(stderr); return 2; }
  klab_bundle b;
  klab_err err;
  if (klab_bundle_load(dir, &b, &err)) { fprintf(stderr, "klab plot: %s\n", err.msg); return 2; }
  char gp[1024];
  if (render && !klab_gnuplot_find(gp, sizeof gp)) {
    fprintf(stderr, "klab plot: gnuplot not found on PATH (Debian: apt-get install gnuplot-nox); use --scripts-only to "
                    "write the scripts alone\n");
    klab_bundle_free(&b);
    return 2;
  }
  char note[768];
  int rc = klab_plot_bundle(&b, render, note, sizeof note, &err);
  if (rc) fprintf(stderr, "klab plot: %s\n", err.msg);
  else printf("%s: %s\n", b.dir, note);
  klab_bundle_free(&b);
  return rc ? 2 : 0;
}

/* ---- klab compare ---- */
static void usage_compare(FILE *f) {
  fprintf(f, "usage: klab compare OLD NEW [--threshold 0.05] [--changes]\n"
             "Compares two bundles (folders or kernels.csv files) row by row (op, shape, dtype, variant): new/old median\n"
             "ratio and the noise band of each row (hypot of each run's (p90-p10)/(2 median)). A row REGRESSED when it is\n"
             "slower beyond its noise band and beyond the threshold (default 0.05 = 5%%).\n"
             "  --changes   print only rows whose verdict is not \"same\"\n"
             "Exit status: 1 when a non-vendor variant regressed or now fails the gate, 0 otherwise, 2 on error.\n");
}

static int cmd_compare(int argc, char **argv) {
  const char *paths[2] = {NULL, NULL};
  int np = 0;
  klab_compare_opts o = {0.05, 0};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (is_help(a)) { usage_compare(stdout); return 0; }
    if (!strcmp(a, "--threshold")) {
      if (i + 1 >= argc) { fprintf(stderr, "klab compare: --threshold needs a value\n"); return 2; }
      char *end;
      errno = 0;
      double t = strtod(argv[++i], &end);
      if (*end || end == argv[i] || errno || !(t >= 0 && t < 10)) {
        fprintf(stderr, "klab compare: --threshold: '%s' is not a fraction in [0, 10) (e.g. 0.05 for 5%%)\n", argv[i]);
        return 2;
      }
      o.threshold = t;
    } else if (!strcmp(a, "--changes")) o.only_changes = 1;
    else if (a[0] == '-' && a[1]) { fprintf(stderr, "klab compare: unknown option '%s'\n", a); return 2; }
    else if (np < 2) paths[np++] = a;
    else { fprintf(stderr, "klab compare: expected two bundles, got a third ('%s')\n", a); return 2; }
  }
  if (np != 2) { usage_compare(stderr); return 2; }
  klab_err err;
  int rc = klab_compare_bundles(paths[0], paths[1], &o, stdout, &err);
  if (rc < 0) { fprintf(stderr, "klab compare: %s\n", err.msg); return 2; }
  return rc;
}

const klab_command klab_bundle_commands[] = {
    {"env", cmd_env, "print the GPU, driver state, versions and git commit as JSON"},
    {"sweep", cmd_sweep, "run a sweep spec (sweeps/*.json) into a result bundle"},
    {"aggregate", cmd_aggregate, "re-derive a bundle's aggregate.md and winners.json from its kernels.csv"},
    {"plot", cmd_plot, "roofline, speedup-vs-cuBLAS and bandwidth plots of a bundle (gnuplot)"},
    {"compare", cmd_compare, "compare two bundles; non-zero exit on a regression beyond noise and threshold"},
    {NULL, NULL, NULL},
};
