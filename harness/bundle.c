/* Bundle files: load kernels.csv / env.json / shapes.csv; write aggregate.md and winners.json. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "harness/bundle.h"
#include "harness/env.h"
#include "harness/plot.h"

static char *slurp(const char *path, klab_err *err) {
  FILE *f = fopen(path, "rb");
  if (!f) { klab_fail(err, "%s: cannot open: %s", path, strerror(errno)); return NULL; }
  size_t cap = 8192, len = 0, got;
  char *buf = malloc(cap);
  if (!buf) { fclose(f); klab_fail(err, "out of memory"); return NULL; }
  while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
    len += got;
    if (len + 1 == cap) {
      char *nb = cap < (256u << 20) ? realloc(buf, cap * 2) : NULL;
      if (!nb) { free(buf); fclose(f); klab_fail(err, "%s: too large or out of memory", path); return NULL; }
      buf = nb, cap *= 2;
    }
  }
  if (ferror(f)) { free(buf); fclose(f); klab_fail(err, "%s: read error", path); return NULL; }
  fclose(f);
  buf[len] = 0;
  return buf;
}

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}
static int file_exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- shapes.csv: op,shape,label ---- */
static int split3(char *line, char **f) {
  int n = 0;
  char *p = line, *out = line;
  while (n < 3) {
    f[n++] = out;
    if (*p == '"') {
      p++;
      for (;;) {
        if (!*p) return -1;
        if (*p == '"' && p[1] == '"') { *out++ = '"'; p += 2; continue; }
        if (*p == '"') { p++; break; }
        *out++ = *p++;
      }
    } else {
      while (*p && *p != ',') *out++ = *p++;
    }
    if (*p == ',') { *out++ = 0; p++; continue; }
    *out = 0;
    return *p ? -1 : n;
  }
  return -1;
}

static int load_labels(klab_bundle *b, const char *path, klab_err *err) {
  FILE *f = fopen(path, "r");
  if (!f) return klab_fail(err, "%s: cannot open: %s", path, strerror(errno));
  char line[1024];
  int lineno = 0, cap = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    line[strcspn(line, "\r\n")] = 0;
    if (!line[0] || lineno == 1) continue; /* header */
    char *fl[3];
    if (split3(line, fl) != 3) { fclose(f); return klab_fail(err, "%s:%d: expected op,shape,label", path, lineno); }
    if (b->nlabels == cap) {
      cap = cap ? cap * 2 : 64;
      klab_shape_label *nl = realloc(b->labels, (size_t)cap * sizeof *nl);
      if (!nl) { fclose(f); return klab_fail(err, "out of memory"); }
      b->labels = nl;
    }
    klab_shape_label *l = &b->labels[b->nlabels++];
    snprintf(l->op, sizeof l->op, "%s", fl[0]);
    snprintf(l->shape, sizeof l->shape, "%s", fl[1]);
    snprintf(l->label, sizeof l->label, "%s", fl[2]);
  }
  fclose(f);
  return 0;
}

static void put_csv_text(FILE *f, const char *s) {
  if (!strpbrk(s, ",\"\n\r")) { fputs(s, f); return; }
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"') fputc('"', f);
    if (*s != '\n' && *s != '\r') fputc(*s, f);
  }
  fputc('"', f);
}

int klab_shape_labels_write(const char *path, const klab_shape_label *l, int n, klab_err *err) {
  FILE *f = fopen(path, "w");
  if (!f) return klab_fail(err, "%s: cannot write: %s", path, strerror(errno));
  fputs("op,shape,label\n", f);
  for (int i = 0; i < n; i++) {
    put_csv_text(f, l[i].op), fputc(',', f);
    put_csv_text(f, l[i].shape), fputc(',', f);
    put_csv_text(f, l[i].label), fputc('\n', f);
  }
  int bad = ferror(f);
  if (fclose(f) != 0 || bad) return klab_fail(err, "%s: write failed", path);
  return 0;
}

const char *klab_bundle_label(const klab_bundle *b, const char *op, const char *shape) {
  for (int i = 0; i < b->nlabels; i++)
    if (!strcmp(b->labels[i].op, op) && !strcmp(b->labels[i].shape, shape)) return b->labels[i].label;
  return "";
}

static int same_key(const klab_result *a, const klab_result *b) {
  return !strcmp(a->op, b->op) && !strcmp(a->shape, b->shape) && !strcmp(a->dtype, b->dtype) && !strcmp(a->variant, b->variant);
}

static double json_num(const cJSON *o, const char *k) {
  const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsNumber(j) ? j->valuedouble : NAN;
}
static const char *json_str(const cJSON *o, const char *k) {
  const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(j) ? j->valuestring : NULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int klab_bundle_load(const char *path, klab_bundle *b, klab_err *err) {
  memset(b, 0, sizeof *b);
  b->peak_bw_gbps = b->peak_tflops = NAN;
  if (is_dir(path)) {
    snprintf(b->dir, sizeof b->dir, "%s", path);
    snprintf(b->csv_path, sizeof b->csv_path, "%s/kernels.csv", path);
  } else {
    snprintf(b->csv_path, sizeof b->csv_path, "%s", path);
    snprintf(b->dir, sizeof b->dir, "%s", path);
    char *slash = strrchr(b->dir, '/');
    if (slash) *slash = 0;
    else snprintf(b->dir, sizeof b->dir, ".");
  }
  if (!file_exists(b->csv_path)) return klab_fail(err, "%s: no kernels.csv (not a bundle?)", b->csv_path);
  klab_result *rows;
  int n;
  if (klab_csv_read(b->csv_path, &rows, &n, err)) return -1;
  /* last row of a key wins, in the position of its first appearance */
  int m = 0;
  for (int i = 0; i < n; i++) {
    int j = 0;
    while (j < m && !same_key(&rows[j], &rows[i])) j++;
    rows[j] = rows[i];
    if (j == m) m++;
  }
  b->rows = rows;
  b->nrows = m;

  char p[1200];
  snprintf(p, sizeof p, "%s/shapes.csv", b->dir);
  if (file_exists(p) && load_labels(b, p, err)) { klab_bundle_free(b); return -1; }

  const char *base = strrchr(b->dir, '/');
  snprintf(b->name, sizeof b->name, "%s", base && base[1] ? base + 1 : b->dir);
  snprintf(b->arch, sizeof b->arch, "unknown");
  snprintf(p, sizeof p, "%s/env.json", b->dir);
  if (file_exists(p)) {
    char *text = slurp(p, err);
    if (!text) { klab_bundle_free(b); return -1; }
    b->env = cJSON_Parse(text);
    free(text);
    if (!b->env || !cJSON_IsObject(b->env)) {
      klab_bundle_free(b);
      return klab_fail(err, "%s: not a JSON object", p);
    }
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(b->env, "gpu");
    if (json_str(g, "arch")) snprintf(b->arch, sizeof b->arch, "%s", json_str(g, "arch"));
    if (json_str(g, "name")) snprintf(b->gpu, sizeof b->gpu, "%s", json_str(g, "name"));
    if (json_str(b->env, "spec_name")) snprintf(b->name, sizeof b->name, "%s", json_str(b->env, "spec_name"));
    const cJSON *pk = cJSON_GetObjectItemCaseSensitive(b->env, "peaks");
    double bw = json_num(pk, "read_bw_gbps"), tf = json_num(pk, "gemm_bf16_tflops");
    if (bw > 0 && tf > 0) {
      b->peak_bw_gbps = bw, b->peak_tflops = tf;
      snprintf(b->peaks_source, sizeof b->peaks_source, "env.json (measured by klab peaks)");
    }
  }
  if (!(b->peak_bw_gbps > 0)) {
    /* derive from the % columns: peak = achieved / (pct/100); the median over rows is robust to rounding */
    double *bw = malloc(sizeof(double) * (size_t)(m ? m : 1)), *tf = malloc(sizeof(double) * (size_t)(m ? m : 1));
    if (!bw || !tf) { free(bw), free(tf), klab_bundle_free(b); return klab_fail(err, "out of memory"); }
    int nb = 0, nt = 0;
    for (int i = 0; i < m; i++) {
      const klab_result *r = &rows[i];
      if (r->pct_peak_bw > 0.5 && r->gbps > 0) bw[nb++] = r->gbps * 100.0 / r->pct_peak_bw;
      if (r->pct_peak_flops > 0.5 && r->tflops > 0) tf[nt++] = r->tflops * 100.0 / r->pct_peak_flops;
    }
    if (nb && nt) {
      qsort(bw, (size_t)nb, sizeof *bw, cmp_double);
      qsort(tf, (size_t)nt, sizeof *tf, cmp_double);
      b->peak_bw_gbps = bw[nb / 2];
      b->peak_tflops = tf[nt / 2];
      snprintf(b->peaks_source, sizeof b->peaks_source, "derived from kernels.csv %% columns");
    } else {
      snprintf(b->peaks_source, sizeof b->peaks_source, "none (run klab peaks)");
    }
    free(bw), free(tf);
  }
  return 0;
}

void klab_bundle_free(klab_bundle *b) {
  free(b->rows);
  free(b->labels);
  if (b->env) cJSON_Delete(b->env);
  memset(b, 0, sizeof *b);
}

double klab_row_pct_roofline(const klab_bundle *b, const klab_result *r) {
  double bw = r->pct_peak_bw, fl = r->pct_peak_flops;
  if (!isfinite(bw) && b->peak_bw_gbps > 0 && isfinite(r->gbps)) bw = 100.0 * r->gbps / b->peak_bw_gbps;
  if (!isfinite(fl) && b->peak_tflops > 0 && isfinite(r->tflops)) fl = 100.0 * r->tflops / b->peak_tflops;
  if (isfinite(bw) && isfinite(fl)) return bw > fl ? bw : fl;
  return isfinite(bw) ? bw : fl;
}

/* ---- groups: (op, dtype, shape) in order of first appearance ---- */
typedef struct {
  int first;   /* row index of the first row */
  int *idx;    /* rows of the group */
  int n;
} group;

static int make_groups(const klab_bundle *b, group **out, int *ng) {
  group *g = calloc((size_t)(b->nrows ? b->nrows : 1), sizeof *g);
  int *all = malloc(sizeof(int) * (size_t)(b->nrows ? b->nrows : 1));
  if (!g || !all) { free(g), free(all); return -1; }
  int n = 0, used = 0;
  /* two passes keep each group's indices contiguous in `all` */
  char *done = calloc((size_t)(b->nrows ? b->nrows : 1), 1);
  if (!done) { free(g), free(all); return -1; }
  for (int i = 0; i < b->nrows; i++) {
    if (done[i]) continue;
    const klab_result *r = &b->rows[i];
    g[n].first = i;
    g[n].idx = all + used;
    for (int j = i; j < b->nrows; j++) {
      const klab_result *s = &b->rows[j];
      if (!done[j] && !strcmp(r->op, s->op) && !strcmp(r->shape, s->shape) && !strcmp(r->dtype, s->dtype)) {
        all[used++] = j;
        done[j] = 1;
        g[n].n++;
      }
    }
    n++;
  }
  free(done);
  if (n == 0) g[0].idx = all; /* free_groups frees through g[0].idx */
  *out = g;
  *ng = n;
  return 0;
}
static void free_groups(group *g) {
  if (g) free(g[0].idx);
  free(g);
}

static int timed_pass(const klab_result *r) { return r->status == KLAB_PASS && isfinite(r->median_us) && r->median_us > 0; }

int klab_winners_compute(const klab_bundle *b, klab_winner **w, int *n, klab_err *err) {
  *w = NULL;
  *n = 0;
  group *g;
  int ng;
  if (make_groups(b, &g, &ng)) return klab_fail(err, "out of memory");
  klab_winner *out = calloc((size_t)(ng ? ng : 1), sizeof *out);
  if (!out) { free_groups(g); return klab_fail(err, "out of memory"); }
  int m = 0;
  for (int k = 0; k < ng; k++) {
    int best = -1, second = -1, passed = 0;
    for (int t = 0; t < g[k].n; t++) {
      const klab_result *r = &b->rows[g[k].idx[t]];
      if (!timed_pass(r)) continue;
      passed++;
      int i = g[k].idx[t];
      if (best < 0 || r->median_us < b->rows[best].median_us) second = best, best = i;
      else if (second < 0 || r->median_us < b->rows[second].median_us) second = i;
    }
    if (best < 0) continue;
    klab_winner *x = &out[m++];
    const klab_result *r = &b->rows[best];
    snprintf(x->op, sizeof x->op, "%s", r->op);
    snprintf(x->shape, sizeof x->shape, "%s", r->shape);
    snprintf(x->dtype, sizeof x->dtype, "%s", r->dtype);
    snprintf(x->variant, sizeof x->variant, "%s", r->variant);
    x->vendor = r->vendor;
    x->passed = passed;
    x->median_us = r->median_us;
    x->runner_up_us = x->margin = NAN;
    if (second >= 0) {
      snprintf(x->runner_up, sizeof x->runner_up, "%s", b->rows[second].variant);
      x->runner_up_us = b->rows[second].median_us;
      x->margin = x->runner_up_us / x->median_us - 1.0;
    }
  }
  free_groups(g);
  *w = out;
  *n = m;
  return 0;
}

/* "M=1;N=6144;K=2560" -> {"M":1,...} */
static cJSON *shape_dims_json(const char *shape) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  const char *p = shape;
  while (*p) {
    size_t l = strcspn(p, ";,");
    const char *eq = memchr(p, '=', l);
    if (eq) {
      char name[32];
      snprintf(name, sizeof name, "%.*s", (int)(eq - p), p);
      cJSON_AddNumberToObject(o, name, strtod(eq + 1, NULL));
    }
    p += l;
    if (*p) p++;
  }
  return o;
}

int klab_winners_write(const klab_bundle *b, const char *path, klab_err *err) {
  klab_winner *w;
  int n;
  if (klab_winners_compute(b, &w, &n, err)) return -1;
  cJSON *root = cJSON_CreateObject();
  cJSON *archs = root ? cJSON_AddObjectToObject(root, "archs") : NULL;
  cJSON *a = archs ? cJSON_AddObjectToObject(archs, b->arch) : NULL;
  cJSON *ops = a ? cJSON_AddObjectToObject(a, "ops") : NULL;
  cJSON *unres = NULL;
  int rc = 0;
  if (!ops) rc = klab_fail(err, "out of memory");
  if (!rc) {
    cJSON_AddStringToObject(root, "schema", "klab-winners/1");
    cJSON_AddStringToObject(root, "rule", "per (op, shape, dtype): the fastest variant that passed the gate (median us); "
                                          "margin = runner-up median / winner median - 1");
    char now[40];
    klab_utc_now(now, sizeof now);
    cJSON_AddStringToObject(root, "generated_utc", now);
    cJSON_AddStringToObject(root, "bundle", b->name);
    cJSON_AddStringToObject(a, "gpu", b->gpu[0] ? b->gpu : "unknown");
    const char *commit = b->env ? json_str(b->env, "git_commit") : NULL;
    cJSON_AddStringToObject(a, "git_commit", commit ? commit : "unknown");
    /* move "ops" after the descriptive keys for readability */
    cJSON_DetachItemViaPointer(a, ops);
    cJSON_AddItemToObject(a, "ops", ops);
    unres = cJSON_AddArrayToObject(a, "no_winner");
  }
  for (int i = 0; i < n && !rc; i++) {
    cJSON *list = cJSON_GetObjectItemCaseSensitive(ops, w[i].op);
    if (!list) list = cJSON_AddArrayToObject(ops, w[i].op);
    cJSON *e = cJSON_CreateObject();
    cJSON *dims = shape_dims_json(w[i].shape);
    if (!list || !e || !dims) { cJSON_Delete(e), cJSON_Delete(dims); rc = klab_fail(err, "out of memory"); break; }
    cJSON_AddStringToObject(e, "shape", w[i].shape);
    cJSON_AddItemToObject(e, "dims", dims);
    cJSON_AddStringToObject(e, "dtype", w[i].dtype);
    const char *label = klab_bundle_label(b, w[i].op, w[i].shape);
    if (*label) cJSON_AddStringToObject(e, "label", label);
    cJSON_AddStringToObject(e, "variant", w[i].variant);
    cJSON_AddBoolToObject(e, "vendor", w[i].vendor);
    klab_json_add_num(e, "median_us", w[i].median_us);
    if (w[i].runner_up[0]) cJSON_AddStringToObject(e, "runner_up", w[i].runner_up);
    else cJSON_AddNullToObject(e, "runner_up");
    klab_json_add_num(e, "runner_up_median_us", w[i].runner_up_us);
    klab_json_add_num(e, "margin", isfinite(w[i].margin) ? round(w[i].margin * 10000.0) / 10000.0 : NAN);
    cJSON_AddNumberToObject(e, "passed", w[i].passed);
    cJSON_AddItemToArray(list, e);
  }
  /* groups without any timed PASS: listed so a missing winner is never silent */
  if (!rc) {
    group *g;
    int ng;
    if (make_groups(b, &g, &ng)) { g = NULL; ng = 0; rc = klab_fail(err, "out of memory"); }
    for (int k = 0; !rc && k < ng; k++) {
      int any = 0;
      for (int t = 0; t < g[k].n; t++) any |= timed_pass(&b->rows[g[k].idx[t]]);
      if (any) continue;
      const klab_result *r = &b->rows[g[k].first];
      cJSON *e = cJSON_CreateObject();
      if (!e) { rc = klab_fail(err, "out of memory"); break; }
      cJSON_AddStringToObject(e, "op", r->op);
      cJSON_AddStringToObject(e, "shape", r->shape);
      cJSON_AddStringToObject(e, "dtype", r->dtype);
      cJSON_AddItemToArray(unres, e);
    }
    free_groups(g);
  }
  free(w);
  if (!rc) {
    char msg[KLAB_ERR_LEN];
    if (klab_json_write_file(root, path, msg, sizeof msg)) rc = klab_fail(err, "%s", msg);
  }
  cJSON_Delete(root);
  return rc;
}

/* ---- aggregate.md ---- */
static void fmt_num(char *buf, size_t len, double v, const char *fmt) {
  if (isfinite(v)) snprintf(buf, len, fmt, v);
  else snprintf(buf, len, "-");
}

static void md_text(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '|') fputs("\\|", f);
    else if (*s == '\n' || *s == '\r') fputc(' ', f);
    else fputc(*s, f);
  }
}

/* Fastest vendor / naive median of a group (NaN when none passed). */
static double group_ref(const klab_bundle *b, const group *g, int want_vendor) {
  double best = NAN;
  for (int t = 0; t < g->n; t++) {
    const klab_result *r = &b->rows[g->idx[t]];
    if (!timed_pass(r)) continue;
    int match = want_vendor ? r->vendor : !strcmp(r->variant, "naive");
    if (match && !(r->median_us >= best)) best = r->median_us;
  }
  return best;
}

typedef struct {
  double log_sum;
  int n;
} geo;

int klab_aggregate_write(const klab_bundle *b, const char *path, klab_err *err) {
  group *g;
  int ng;
  if (make_groups(b, &g, &ng)) return klab_fail(err, "out of memory");
  FILE *f = fopen(path, "w");
  if (!f) { free_groups(g); return klab_fail(err, "%s: cannot write: %s", path, strerror(errno)); }
  int counts[4] = {0};
  for (int i = 0; i < b->nrows; i++)
    if (b->rows[i].status >= KLAB_PASS && b->rows[i].status <= KLAB_ERROR) counts[b->rows[i].status]++;

  fprintf(f, "# Sweep `");
  md_text(f, b->name);
  fprintf(f, "`\n\n");
  if (b->env) {
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(b->env, "driver_state_before");
    const char *cmd = json_str(b->env, "command_line");
    const char *commit = json_str(b->env, "git_commit");
    const cJSON *dirty = cJSON_GetObjectItemCaseSensitive(b->env, "git_dirty");
    fprintf(f, "- GPU: %s (%s)", b->gpu[0] ? b->gpu : "unknown", b->arch);
    const char *drv = json_str(b->env, "driver_release");
    const char *cuda = json_str(b->env, "cuda_runtime_version");
    const char *cublas = json_str(b->env, "cublas_version");
    fprintf(f, ", driver %s, CUDA runtime %s, cuBLAS %s\n", drv ? drv : "?", cuda ? cuda : "?", cublas ? cublas : "?");
    double smc = json_num(ds, "sm_clock_mhz"), smmax = json_num(ds, "sm_clock_max_mhz"), t = json_num(ds, "temperature_c");
    if (isfinite(smc) || isfinite(t))
      fprintf(f, "- Before the sweep: SM clock %.0f / %.0f MHz, %.0f C\n", smc, smmax, t);
    fprintf(f, "- Source: commit %s%s\n", commit ? commit : "unknown", cJSON_IsTrue(dirty) ? " (dirty tree)" : "");
    if (cmd) fprintf(f, "- Reproduce: `%s`\n", cmd);
    const char *date = json_str(b->env, "date_utc");
    if (date) fprintf(f, "- Date: %s\n", date);
  } else {
    fprintf(f, "- (no env.json: GPU and versions unknown)\n");
  }
  if (b->peak_bw_gbps > 0)
    fprintf(f, "- Peaks: streaming read %.0f GB/s, bf16 GEMM %.0f TFLOP/s; source: %s\n", b->peak_bw_gbps, b->peak_tflops,
            b->peaks_source);
  else
    fprintf(f, "- Peaks: unknown (%s); %% of roofline columns are empty\n", b->peaks_source);
  fprintf(f, "- Rows: %d (PASS %d, FAIL %d, SKIP %d, ERROR %d)\n\n", b->nrows, counts[KLAB_PASS], counts[KLAB_FAIL],
          counts[KLAB_SKIP], counts[KLAB_ERROR]);
  fprintf(f, "Times are medians of CUPTI kernel durations per invocation (the `timer` column says when CUDA events were "
             "used). %% roofline = achieved / min(peak FLOP/s, AI x peak bandwidth). \"%% of a read this size\" = the time "
             "the fastest streaming read of the row's bytes takes (the peaks' size curve) / this median: what is left "
             "for a kernel of this size, launch and first-byte latency included (- without a curve). \"vs vendor\" = "
             "vendor median / this median (> 1: faster than cuBLAS); \"vs naive\" likewise.\n\n");

  /* ops in order of first appearance */
  for (int k = 0; k < ng; k++) {
    const char *op = b->rows[g[k].first].op;
    int seen = 0;
    for (int j = 0; j < k; j++) seen |= !strcmp(b->rows[g[j].first].op, op);
    if (seen) continue;
    /* variants of this op, in order */
    char vars[KLAB_MAX_VARIANTS * 2][32];
    int vendor_of[KLAB_MAX_VARIANTS * 2];
    int nv = 0;
    for (int i = 0; i < b->nrows; i++) {
      if (strcmp(b->rows[i].op, op)) continue;
      int have = 0;
      for (int v = 0; v < nv; v++) have |= !strcmp(vars[v], b->rows[i].variant);
      if (!have && nv < KLAB_MAX_VARIANTS * 2) {
        snprintf(vars[nv], sizeof vars[0], "%s", b->rows[i].variant);
        vendor_of[nv++] = b->rows[i].vendor;
      }
    }
    fprintf(f, "## %s\n\n### Median time (us); the winner in bold\n\n| shape | label |", op);
    for (int v = 0; v < nv; v++) fprintf(f, " %s%s |", vars[v], vendor_of[v] ? " (vendor)" : "");
    fprintf(f, " winner | margin |\n|---|---|");
    for (int v = 0; v < nv; v++) fprintf(f, "---:|");
    fprintf(f, "---|---:|\n");
    geo gv[KLAB_MAX_VARIANTS * 2], gn[KLAB_MAX_VARIANTS * 2];
    memset(gv, 0, sizeof gv), memset(gn, 0, sizeof gn);
    for (int j = k; j < ng; j++) {
      if (strcmp(b->rows[g[j].first].op, op)) continue;
      const klab_result *r0 = &b->rows[g[j].first];
      int best = -1, second = -1;
      for (int t = 0; t < g[j].n; t++) {
        int i = g[j].idx[t];
        if (!timed_pass(&b->rows[i])) continue;
        if (best < 0 || b->rows[i].median_us < b->rows[best].median_us) second = best, best = i;
        else if (second < 0 || b->rows[i].median_us < b->rows[second].median_us) second = i;
      }
      fprintf(f, "| %s | ", r0->shape);
      md_text(f, klab_bundle_label(b, op, r0->shape));
      fprintf(f, " |");
      for (int v = 0; v < nv; v++) {
        int i = -1;
        for (int t = 0; t < g[j].n; t++)
          if (!strcmp(b->rows[g[j].idx[t]].variant, vars[v])) i = g[j].idx[t];
        if (i < 0) { fprintf(f, " |"); continue; }
        const klab_result *r = &b->rows[i];
        if (timed_pass(r)) fprintf(f, i == best ? " **%.2f** |" : " %.2f |", r->median_us);
        else fprintf(f, " %s |", klab_status_name(r->status));
      }
      if (best >= 0) {
        char m[32];
        fmt_num(m, sizeof m, second >= 0 ? (b->rows[second].median_us / b->rows[best].median_us - 1) * 100 : NAN, "%.1f%%");
        fprintf(f, " %s | %s |\n", b->rows[best].variant, m);
      } else {
        fprintf(f, " none | - |\n");
      }
    }
    fprintf(f, "\n### Details\n\n| shape | variant | status | median us | p10-p90 us | n | GB/s | TFLOP/s | %% roofline | %% of a read this size | vs vendor | vs naive |\n"
               "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int j = k; j < ng; j++) {
      if (strcmp(b->rows[g[j].first].op, op)) continue;
      double vref = group_ref(b, &g[j], 1), nref = group_ref(b, &g[j], 0);
      for (int t = 0; t < g[j].n; t++) {
        const klab_result *r = &b->rows[g[j].idx[t]];
        char med[32], band[48], gb[32], tf[32], pr[32], ps[32], sv[32], sn[32];
        int tp = timed_pass(r);
        fmt_num(med, sizeof med, tp ? r->median_us : NAN, "%.2f");
        if (tp && isfinite(r->p10_us) && isfinite(r->p90_us)) snprintf(band, sizeof band, "%.2f-%.2f", r->p10_us, r->p90_us);
        else snprintf(band, sizeof band, "-");
        fmt_num(gb, sizeof gb, tp ? r->gbps : NAN, "%.0f");
        fmt_num(tf, sizeof tf, tp ? r->tflops : NAN, "%.3g");
        fmt_num(pr, sizeof pr, tp ? klab_row_pct_roofline(b, r) : NAN, "%.1f");
        fmt_num(ps, sizeof ps, tp ? r->pct_size_bw : NAN, "%.1f");
        double svv = tp ? (isfinite(r->speedup_vs_vendor) ? r->speedup_vs_vendor : vref / r->median_us) : NAN;
        double snv = tp ? nref / r->median_us : NAN;
        fmt_num(sv, sizeof sv, r->vendor ? NAN : svv, "%.2fx");
        fmt_num(sn, sizeof sn, strcmp(r->variant, "naive") ? snv : NAN, "%.2fx");
        fprintf(f, "| %s | %s%s | %s | %s | %s | %d | %s | %s | %s | %s | %s | %s |\n", r->shape, r->variant,
                r->vendor ? " (vendor)" : "", klab_status_name(r->status), med, band, r->n, gb, tf, pr, ps, sv, sn);
        for (int v = 0; v < nv; v++) {
          if (strcmp(vars[v], r->variant)) continue;
          if (isfinite(svv) && svv > 0 && !r->vendor) gv[v].log_sum += log(svv), gv[v].n++;
          if (isfinite(snv) && snv > 0 && strcmp(r->variant, "naive")) gn[v].log_sum += log(snv), gn[v].n++;
        }
      }
    }
    fprintf(f, "\n### Geometric-mean speedups\n\n| variant | vs vendor | shapes | vs naive | shapes |\n|---|---:|---:|---:|---:|\n");
    for (int v = 0; v < nv; v++) {
      char a[32], c[32];
      fmt_num(a, sizeof a, gv[v].n ? exp(gv[v].log_sum / gv[v].n) : NAN, "%.3fx");
      fmt_num(c, sizeof c, gn[v].n ? exp(gn[v].log_sum / gn[v].n) : NAN, "%.3fx");
      fprintf(f, "| %s%s | %s | %d | %s | %d |\n", vars[v], vendor_of[v] ? " (vendor)" : "", a, gv[v].n, c, gn[v].n);
    }
    fprintf(f, "\n");
  }

  fprintf(f, "## Failures\n\n");
  if (counts[KLAB_FAIL] + counts[KLAB_ERROR] == 0) {
    fprintf(f, "None: every variant that ran passed the gate.\n\n");
  } else {
    fprintf(f, "| op | shape | variant | status | max abs err | max rel err | rel L2 | seed | note |\n|---|---|---|---|---:|---:|---:|---:|---|\n");
    for (int i = 0; i < b->nrows; i++) {
      const klab_result *r = &b->rows[i];
      if (r->status != KLAB_FAIL && r->status != KLAB_ERROR) continue;
      char ea[32], er[32], el[32];
      fmt_num(ea, sizeof ea, r->max_abs_err, "%.3e");
      fmt_num(er, sizeof er, r->max_rel_err, "%.3e");
      fmt_num(el, sizeof el, r->rel_l2, "%.3e");
      fprintf(f, "| %s | %s | %s | %s | %s | %s | %s | %llu | ", r->op, r->shape, r->variant, klab_status_name(r->status),
              ea, er, el, (unsigned long long)r->seed);
      md_text(f, r->note);
      fprintf(f, " |\n");
    }
    fprintf(f, "\n");
  }
  if (counts[KLAB_SKIP]) {
    fprintf(f, "## Skipped (a variant declined the shape)\n\n| op | shape | variant | reason |\n|---|---|---|---|\n");
    for (int i = 0; i < b->nrows; i++) {
      const klab_result *r = &b->rows[i];
      if (r->status != KLAB_SKIP) continue;
      fprintf(f, "| %s | %s | %s | ", r->op, r->shape, r->variant);
      md_text(f, r->note);
      fprintf(f, " |\n");
    }
    fprintf(f, "\n");
  }
  free_groups(g);
  int bad = ferror(f);
  if (fclose(f) != 0 || bad) return klab_fail(err, "%s: write failed", path);
  return 0;
}

int klab_bundle_summarize(const char *dir, int plots, char *plots_note, size_t note_len, klab_err *err) {
  klab_bundle b;
  if (plots_note && note_len) plots_note[0] = 0;
  if (klab_bundle_load(dir, &b, err)) return -1;
  char p[1200];
  int rc = 0;
  snprintf(p, sizeof p, "%s/aggregate.md", b.dir);
  if (klab_aggregate_write(&b, p, err)) rc = -1;
  snprintf(p, sizeof p, "%s/winners.json", b.dir);
  if (!rc && klab_winners_write(&b, p, err)) rc = -1;
  if (!rc && plots) rc = klab_plot_bundle(&b, 1, plots_note, note_len, err);
  klab_bundle_free(&b);
  return rc;
}
