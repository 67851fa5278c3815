/* gnuplot script generation from the fixture bundles, and a render when gnuplot is installed. */
#include <math.h>
#include <string.h>
#include <stdlib.h>
#include "test_util.h"
#include "harness/plot.h"

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  rewind(f);
  char *b = malloc((size_t)n + 1);
  if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
  if (b) b[n] = 0;
  fclose(f);
  return b;
}

static int count(const char *text, const char *needle) {
  int n = 0;
  for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
  return n;
}

/* Copy a fixture bundle's inputs into a scratch folder (plots are written into the bundle). */
static int copy_bundle(const char *name, char *dst, size_t len) {
  snprintf(dst, len, "%s/test_plot_tmp/%s", KLAB_BINARY_DIR, name);
  if (klab_mkdir_p(dst)) return -1;
  const char *files[] = {"kernels.csv", "env.json", "shapes.csv"};
  for (int i = 0; i < 3; i++) {
    char s[800], d[800];
    snprintf(s, sizeof s, "%s/tests/data/bundles/%s/%s", KLAB_SOURCE_DIR, name, files[i]);
    snprintf(d, sizeof d, "%s/%s", dst, files[i]);
    char *t = slurp(s);
    if (!t) return -1;
    FILE *f = fopen(d, "w");
    if (!f) { free(t); return -1; }
    fputs(t, f);
    fclose(f);
    free(t);
  }
  return 0;
}

static int file_starts_with(const char *path, const char *magic, size_t n) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  char buf[16] = {0};
  size_t got = fread(buf, 1, n, f);
  fclose(f);
  return got == n && memcmp(buf, magic, n) == 0;
}

int main(void) {
  char dir[700], p[800];
  klab_err err = {{0}};
  klab_bundle b;
  CHECK(copy_bundle("h100-old", dir, sizeof dir) == 0);
  CHECK(klab_bundle_load(dir, &b, &err) == 0);
  int written = 0;
  char why[512];
  CHECK_MSG(klab_plot_scripts(&b, &written, why, sizeof why, &err) == 0, "%s", err.msg);
  CHECK(written == (KLAB_PLOT_ROOFLINE | KLAB_PLOT_SPEEDUP | KLAB_PLOT_BANDWIDTH));

  snprintf(p, sizeof p, "%s/plots/roofline.gp", dir);
  char *gp = slurp(p);
  CHECK(gp != NULL);
  if (gp) {
    CHECK(strstr(gp, "B = 3100") && strstr(gp, "P = 798"));
    CHECK(strstr(gp, "set logscale xy") != NULL);
    CHECK(strstr(gp, "ridge = P * 1000.0 / B") != NULL);
    CHECK(strstr(gp, "roof(x) with lines") != NULL);
    CHECK(strstr(gp, "'gemv/cublas (vendor)'") != NULL);
    CHECK(strstr(gp, "pt 5") != NULL); /* the vendor's marker */
    CHECK(count(gp, "'plots/roofline.dat' index") == 5); /* rmsnorm x2, gemv x3 */
    CHECK(strstr(gp, "set output 'roofline.png'") && strstr(gp, "set output 'roofline.svg'"));
    CHECK(strstr(gp, "set label 10 'rmsnorm/naive'") != NULL);
    free(gp);
  }
  snprintf(p, sizeof p, "%s/plots/roofline.dat", dir);
  char *dat = slurp(p);
  CHECK(dat && count(dat, "\n\n\n") == 5);
  CHECK(dat && strstr(dat, "\"qwen3-4b lm_head\"") != NULL);
  free(dat);

  snprintf(p, sizeof p, "%s/plots/speedup_vs_cublas.dat", dir);
  dat = slurp(p);
  CHECK(dat != NULL);
  if (dat) {
    /* 5 shapes with a speedup (M=2 has none); columns naive, optimized; the FAILed optimized is '?' */
    CHECK(strstr(dat, "# shape naive optimized") != NULL);
    CHECK(strstr(dat, "\"qwen3-4b qkv  M=1 N=6144 K=2560\" 0.3950 1.3170") != NULL);
    CHECK(strstr(dat, "\"qwen3-4b gate_up  M=1 N=19456 K=2560\" ? 1.1620") != NULL);
    CHECK(strstr(dat, "\"qwen3-4b down  M=8 N=2560 K=9728\" 0.3330 ?") != NULL);
    CHECK(strstr(dat, "M=2 N=6144") == NULL);
    free(dat);
  }
  snprintf(p, sizeof p, "%s/plots/speedup_vs_cublas.gp", dir);
  gp = slurp(p);
  CHECK(gp && strstr(gp, "first 1 to graph 1, first 1") && strstr(gp, "using 2:xtic(1)") && strstr(gp, "set datafile missing '?'"));
  free(gp);

  snprintf(p, sizeof p, "%s/plots/bandwidth.gp", dir);
  gp = slurp(p);
  CHECK(gp && strstr(gp, "% of measured streaming-read bandwidth") && strstr(gp, "first 100 to graph 1"));
  CHECK(gp && count(gp, "'plots/bandwidth.dat' index") == 5);
  free(gp);
  snprintf(p, sizeof p, "%s/plots/bandwidth.dat", dir);
  dat = slurp(p);
  /* rmsnorm optimized at the DRAM size: 536.887 MB, 96.2 % */
  CHECK(dat && strstr(dat, "536.887 96.2 \"DRAM-sized\"") != NULL);
  free(dat);

  /* render when gnuplot exists */
  char gnuplot[1024];
  if (klab_gnuplot_find(gnuplot, sizeof gnuplot)) {
    int rc = klab_plot_render(&b, written, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    const char *names[] = {"roofline", "speedup_vs_cublas", "bandwidth"};
    for (int i = 0; i < 3; i++) {
      snprintf(p, sizeof p, "%s/%s.png", dir, names[i]);
      CHECK_MSG(file_starts_with(p, "\x89PNG", 4), "%s is not a PNG", p);
      snprintf(p, sizeof p, "%s/%s.svg", dir, names[i]);
      char *svg = slurp(p);
      CHECK_MSG(svg && strstr(svg, "<svg"), "%s is not an SVG", p);
      free(svg);
    }
  } else {
    printf("test_plot_scripts: gnuplot not on PATH: scripts checked, rendering not tested\n");
  }
  klab_bundle_free(&b);

  /* no peaks: no ceilings, GB/s instead of % */
  CHECK(copy_bundle("h100-new", dir, sizeof dir) == 0);
  CHECK(klab_bundle_load(dir, &b, &err) == 0);
  CHECK(klab_plot_scripts(&b, &written, why, sizeof why, &err) == 0);
  CHECK(written == (KLAB_PLOT_ROOFLINE | KLAB_PLOT_SPEEDUP | KLAB_PLOT_BANDWIDTH));
  snprintf(p, sizeof p, "%s/plots/roofline.gp", dir);
  gp = slurp(p);
  CHECK(gp && !strstr(gp, "roof(x)") && strstr(gp, "no measured peaks"));
  free(gp);
  snprintf(p, sizeof p, "%s/plots/bandwidth.gp", dir);
  gp = slurp(p);
  CHECK(gp && strstr(gp, "achieved GB/s") && !strstr(gp, "first 100 to graph 1"));
  free(gp);
  klab_bundle_free(&b);

  /* a bundle with only rmsnorm: no speedup plot, and the reason says so */
  snprintf(dir, sizeof dir, "%s/test_plot_tmp/rms-only", KLAB_BINARY_DIR);
  CHECK(klab_mkdir_p(dir) == 0);
  snprintf(p, sizeof p, "%s/kernels.csv", dir);
  FILE *f = fopen(p, "w");
  CHECK(f != NULL);
  if (f) {
    klab_csv_header(f);
    klab_result r;
    klab_result_init(&r);
    snprintf(r.op, sizeof r.op, "rmsnorm");
    snprintf(r.variant, sizeof r.variant, "optimized");
    snprintf(r.shape, sizeof r.shape, "T=4;H=4096");
    snprintf(r.dtype, sizeof r.dtype, "bf16");
    snprintf(r.timer, sizeof r.timer, "cupti");
    r.status = KLAB_PASS;
    r.median_us = 3, r.p10_us = 2.9, r.p90_us = 3.2, r.n = 100, r.bytes = 73728, r.flops = 65536;
    r.ai = r.flops / r.bytes, r.gbps = r.bytes / 3e-6 / 1e9, r.tflops = r.flops / 3e-6 / 1e12;
    klab_csv_row(f, &r);
    fclose(f);
  }
  CHECK(klab_bundle_load(dir, &b, &err) == 0);
  CHECK(klab_plot_scripts(&b, &written, why, sizeof why, &err) == 0);
  CHECK(written == (KLAB_PLOT_ROOFLINE | KLAB_PLOT_BANDWIDTH));
  CHECK(strstr(why, "speedup_vs_cublas left out") != NULL);
  klab_bundle_free(&b);
  return klab_test_finish("test_plot_scripts");
}
