/* The gate, statistics, CSV and shape parsing, on the CPU: the gate must fail wrong, unwritten and NaN
 * outputs, and pass correct ones. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "harness/bf16.h"
#include "harness/gate.h"
#include "harness/gen.h"
#include "harness/klab.h"
#include "harness/timing.h"
#include "test_util.h"

enum { N = 4096 };

static void make_case(uint16_t *out, double *ref) {
  klab_fill_host(out, KLAB_DT_BF16, N, 7, KLAB_DIST_OUTLIERS, 1.0f, 0.0f);
  for (int i = 0; i < N; i++) ref[i] = klab_bf16_to_float(out[i]) * (1.0 + 1e-4 * ((i % 7) - 3)); /* tiny error */
}

static void test_compare(void) {
  static uint16_t out[N];
  static double ref[N];
  klab_tolerance tol = klab_tolerance_for("gemv", KLAB_DT_BF16);
  klab_cmp c;
  make_case(out, ref);
  CHECK_MSG(klab_compare(out, KLAB_DT_BF16, ref, N, tol, &c) == 1, "correct output must pass (rel_l2 %g)", c.rel_l2);
  CHECK(c.n_bad == 0 && c.n_nonfinite == 0);

  /* A deliberately wrong output (one element off by 10%) must FAIL. */
  make_case(out, ref);
  out[100] = klab_float_to_bf16(klab_bf16_to_float(out[100]) * 1.1f + 0.5f);
  CHECK(klab_compare(out, KLAB_DT_BF16, ref, N, tol, &c) == 0);
  CHECK(c.n_bad == 1 && c.worst_index == 100);

  /* An unwritten element (the NaN poison left in place) must FAIL. */
  make_case(out, ref);
  out[N - 1] = 0xFFFF;
  CHECK(klab_compare(out, KLAB_DT_BF16, ref, N, tol, &c) == 0);
  CHECK(c.n_nonfinite == 1 && c.worst_index == N - 1);
  char desc[256];
  klab_cmp_describe(&c, &tol, desc, sizeof desc);
  CHECK_MSG(strstr(desc, "NaN") != NULL, "description names the NaN: %s", desc);

  /* Inf must FAIL too. */
  make_case(out, ref);
  out[5] = 0x7f80;
  CHECK(klab_compare(out, KLAB_DT_BF16, ref, N, tol, &c) == 0);

  /* A systematic small bias everywhere: every element within rtol, but rel-L2 over its bound. */
  make_case(out, ref);
  for (int i = 0; i < N; i++) ref[i] = klab_bf16_to_float(out[i]) * 1.012;
  CHECK(klab_compare(out, KLAB_DT_BF16, ref, N, tol, &c) == 0);
  CHECK_MSG(c.n_bad == 0 && c.rel_l2 > tol.rel_l2, "bias caught by rel-L2 (%g)", c.rel_l2);

  /* fp32 outputs use the tight tolerance: 1e-4 relative error fails. */
  static float f[N];
  for (int i = 0; i < N; i++) f[i] = (float)(i + 1), ref[i] = (i + 1) * (1 + 1e-4);
  CHECK(klab_compare(f, KLAB_DT_F32, ref, N, klab_tolerance_for("*", KLAB_DT_F32), &c) == 0);
  for (int i = 0; i < N; i++) ref[i] = f[i];
  CHECK(klab_compare(f, KLAB_DT_F32, ref, N, klab_tolerance_for("*", KLAB_DT_F32), &c) == 1);

  /* i32 outputs must match exactly. */
  int32_t ids[3] = {5, 6, 7};
  double rid[3] = {5, 6, 7};
  CHECK(klab_compare(ids, KLAB_DT_I32, rid, 3, klab_tolerance_for("argmax", KLAB_DT_I32), &c) == 1);
  rid[1] = 8;
  CHECK(klab_compare(ids, KLAB_DT_I32, rid, 3, klab_tolerance_for("argmax", KLAB_DT_I32), &c) == 0);
}

static void test_generation(void) {
  /* Distributions: deterministic per (seed, index); normal has mean ~0, var ~1; outliers exist. */
  enum { M = 200000 };
  float *v = malloc(M * sizeof *v), *w = malloc(M * sizeof *w);
  klab_fill_host(v, KLAB_DT_F32, M, 42, KLAB_DIST_NORMAL, 1.0f, 0.0f);
  klab_fill_host(w, KLAB_DT_F32, M, 42, KLAB_DIST_NORMAL, 1.0f, 0.0f);
  CHECK(memcmp(v, w, M * sizeof *v) == 0);
  double s = 0, ss = 0;
  for (int i = 0; i < M; i++) s += v[i], ss += (double)v[i] * v[i];
  CHECK_NEAR(s / M, 0.0, 0.02);
  CHECK_NEAR(ss / M, 1.0, 0.02);
  klab_fill_host(w, KLAB_DT_F32, M, 42, KLAB_DIST_OUTLIERS, 1.0f, 0.0f);
  int big = 0;
  for (int i = 0; i < M; i++) big += fabsf(w[i]) > 8.0f;
  CHECK_MSG(big > M / 97 / 2, "outliers present (%d)", big);
  klab_fill_host(w, KLAB_DT_F32, M, 42, KLAB_DIST_UNIFORM, 1.0f, 0.0f);
  float lo = 1, hi = -1;
  for (int i = 0; i < M; i++) lo = w[i] < lo ? w[i] : lo, hi = w[i] > hi ? w[i] : hi;
  CHECK(lo >= -1.0f && hi < 1.0f && lo < -0.99f && hi > 0.99f);
  /* No zeros-only data: a different seed gives different values. */
  klab_fill_host(w, KLAB_DT_F32, M, 43, KLAB_DIST_NORMAL, 1.0f, 0.0f);
  CHECK(memcmp(v, w, M * sizeof *v) != 0);
  free(v), free(w);
}

static void test_stats(void) {
  double v[10] = {10, 1, 9, 2, 8, 3, 7, 4, 6, 5};
  klab_stats s;
  klab_stats_compute(v, 10, &s);
  CHECK_NEAR(s.median, 5.5, 1e-12);
  CHECK_NEAR(s.mean, 5.5, 1e-12);
  CHECK_NEAR(s.p10, 1.9, 1e-12);
  CHECK_NEAR(s.p90, 9.1, 1e-12);
  CHECK(s.n == 10);
  double c[4] = {2, 2, 2, 2};
  CHECK(klab_rel_stderr(c, 4) == 0.0);
  double one[1] = {3};
  CHECK(isinf(klab_rel_stderr(one, 1)));
}

static void test_csv(void) {
  const char *path = "test_gate_rows.csv";
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (!f) return;
  klab_result r;
  klab_result_init(&r);
  snprintf(r.op, sizeof r.op, "gemv");
  snprintf(r.variant, sizeof r.variant, "optimized");
  snprintf(r.shape, sizeof r.shape, "M=1;N=6144;K=2560");
  snprintf(r.dtype, sizeof r.dtype, "bf16");
  r.status = KLAB_FAIL;
  r.max_abs_err = 0.5, r.rel_l2 = 0.01, r.seed = 123456789012ull;
  r.median_us = 12.25, r.n = 77, r.pct_size_bw = 93.5;
  snprintf(r.timer, sizeof r.timer, "cupti");
  snprintf(r.note, sizeof r.note, "gate seed 3, \"quoted\", comma");
  klab_csv_header(f);
  klab_csv_row(f, &r);
  r.vendor = 1;
  r.status = KLAB_PASS;
  klab_csv_row(f, &r);
  fclose(f);
  klab_result *rows = NULL;
  int n = 0;
  klab_err err;
  CHECK_MSG(klab_csv_read(path, &rows, &n, &err) == 0, "%s", err.msg);
  CHECK(n == 2);
  if (n == 2) {
    CHECK(strcmp(rows[0].note, r.note) == 0);
    CHECK(rows[0].status == KLAB_FAIL && rows[1].status == KLAB_PASS && rows[1].vendor == 1);
    CHECK(rows[0].seed == 123456789012ull && rows[0].n == 77);
    CHECK_NEAR(rows[0].median_us, 12.25, 1e-9);
    CHECK(isnan(rows[0].gbps));
    CHECK(strcmp(rows[0].shape, "M=1;N=6144;K=2560") == 0);
    CHECK_NEAR(rows[0].pct_size_bw, 93.5, 1e-9);
  }
  free(rows);
  /* A CSV written before the pct_size_bw column existed still reads; the column is unknown (NaN). */
  f = fopen(path, "w");
  fputs("op,variant,vendor,shape,dtype,status,max_abs_err,max_rel_err,rel_l2,seed,median_us,p10_us,p90_us,mean_us,n,"
        "event_median_us,timer,bytes,flops,ai,gbps,tflops,pct_peak_bw,pct_peak_flops,speedup_vs_vendor,note\n"
        "gemv,naive,0,M=1,bf16,PASS,,,,1,2.5,,,,30,,cupti,,,,,,80.5,,,\n", f);
  fclose(f);
  CHECK_MSG(klab_csv_read(path, &rows, &n, &err) == 0, "%s", err.msg);
  CHECK(n == 1 && isnan(rows[0].pct_size_bw) && rows[0].pct_peak_bw == 80.5 && rows[0].median_us == 2.5);
  free(rows);
  /* Malformed CSVs are refused with a reason. */
  f = fopen(path, "w");
  fputs("op,variant\ngemv,naive\n", f);
  fclose(f);
  CHECK(klab_csv_read(path, &rows, &n, &err) != 0 && strstr(err.msg, "lacks column") != NULL);
  f = fopen(path, "w");
  klab_csv_header(f);
  fputs("gemv,naive,0,M=1,bf16,MAYBE,,,,1,,,,,0,,cupti,,,,,,,,,,\n", f);
  fclose(f);
  CHECK(klab_csv_read(path, &rows, &n, &err) != 0 && strstr(err.msg, "status") != NULL);
  CHECK(klab_csv_read("no/such/file.csv", &rows, &n, &err) != 0);
  remove(path);
}

static void test_shapes(void) {
  const klab_op *op = klab_find_op("gemv");
  CHECK(op != NULL);
  if (!op) return;
  int64_t s[KLAB_MAX_DIMS];
  klab_err err;
  CHECK(klab_parse_shape(op, "M=1,N=6144,K=2560", s, &err) == 0 && s[0] == 1 && s[1] == 6144 && s[2] == 2560);
  CHECK(klab_parse_shape(op, "K=7,M=16,N=1", s, &err) == 0 && s[0] == 16 && s[2] == 7);
  const char *bad[] = {"", "M=1,N=2", "M=1,N=2,K=3,M=4", "M=1,N=x,K=3", "M=1,N=2,K=0", "M=1,N=2,Q=3", "M=17,N=2,K=3",
                       "M=1,N=-2,K=3", "M=1;N=2;K", "M=1,N=2,K=3x", "M=1,N=99999999999999999999,K=3"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK_MSG(klab_parse_shape(op, bad[i], s, &err) != 0, "'%s' must be rejected", bad[i]);
  klab_parse_shape(op, "M=1,N=6144,K=2560", s, &err);
  char buf[64];
  klab_format_shape(op, s, ';', buf, sizeof buf);
  CHECK(strcmp(buf, "M=1;N=6144;K=2560") == 0);
  CHECK(klab_shape_dim(op, s, "N") == 6144 && klab_shape_dim(op, s, "Z") == -1);
  /* Every registered op is well formed. */
  for (int i = 0; i < klab_op_count(); i++) {
    const klab_op *o = klab_op_at(i);
    CHECK(o->reference && o->bytes && o->flops && o->random_shape && o->nvariants >= 2);
    int has_naive = 0, has_opt = 0, has_out = 0;
    for (int v = 0; v < o->nvariants; v++) has_naive |= o->variants[v]->kind == KLAB_NAIVE, has_opt |= o->variants[v]->kind == KLAB_OPTIMIZED;
    for (int t = 0; t < o->ntensors; t++) has_out |= o->tensors[t].role != KLAB_IN;
    CHECK_MSG(has_naive && has_opt && has_out, "op %s needs naive, optimized and an output", o->name);
    for (int p = 0; p < o->npresets; p++) {
      char why[128];
      CHECK_MSG(!o->validate || o->validate(o->presets[p].d, why, sizeof why), "%s preset %s invalid", o->name, o->presets[p].label);
    }
  }
}

static void test_peaks_json(void) {
  klab_peaks p = {0}, q;
  snprintf(p.gpu, sizeof p.gpu, "NVIDIA H100 80GB HBM3");
  p.read_bw_gbps = 3100.5, p.gemm_bf16_tflops = 798.2, p.valid = 1;
  snprintf(p.date, sizeof p.date, "2026-11-22T00:00:00Z");
  char path[256];
  klab_peaks_default_path(p.gpu, path, sizeof path);
  CHECK(strcmp(path, "results/peaks/nvidia-h100-80gb-hbm3.json") == 0);
  klab_err err;
  CHECK_MSG(klab_peaks_save("peaks_test/sub/p.json", &p, &err) == 0, "%s", err.msg);
  CHECK(klab_peaks_load("peaks_test/sub/p.json", &q, &err) == 0 && q.valid && q.read_bw_gbps == 3100.5);
  FILE *f = fopen("peaks_test/bad.json", "w");
  fputs("{\"gpu\": \"x\", \"read_bw_gbps\": -1}", f);
  fclose(f);
  CHECK(klab_peaks_load("peaks_test/bad.json", &q, &err) != 0 && strstr(err.msg, "read_bw_gbps"));
  f = fopen("peaks_test/bad.json", "w");
  fputs("{not json", f);
  fclose(f);
  CHECK(klab_peaks_load("peaks_test/bad.json", &q, &err) != 0 && strstr(err.msg, "JSON"));
  /* A file without a curve (the older format) loads with ncurve 0 and no size floor. */
  CHECK(klab_peaks_load("peaks_test/sub/p.json", &q, &err) == 0 && q.ncurve == 0);
  CHECK(isnan(klab_peaks_read_floor_us(&q, 1e6)));
  /* The size curve: saved, loaded, interpolated linearly in bytes, the 4 GiB rate past its end. */
  p.ncurve = 3;
  p.curve_bytes[0] = 4096, p.curve_us[0] = 2.0;
  p.curve_bytes[1] = 1048576, p.curve_us[1] = 3.0;
  p.curve_bytes[2] = 2097152, p.curve_us[2] = 4.0;
  CHECK_MSG(klab_peaks_save("peaks_test/sub/p.json", &p, &err) == 0, "%s", err.msg);
  CHECK_MSG(klab_peaks_load("peaks_test/sub/p.json", &q, &err) == 0, "%s", err.msg);
  CHECK(q.ncurve == 3 && q.curve_bytes[2] == 2097152 && q.curve_us[1] == 3.0);
  CHECK(isnan(klab_peaks_read_floor_us(&q, 4095)));             /* below the curve: unknown */
  CHECK_NEAR(klab_peaks_read_floor_us(&q, 4096), 2.0, 1e-12);
  CHECK_NEAR(klab_peaks_read_floor_us(&q, 1572864), 3.5, 1e-12); /* halfway between points 1 and 2 */
  CHECK_NEAR(klab_peaks_read_floor_us(&q, 1048576), 3.0, 1e-12);
  /* 3100.5 GB/s = 3100.5 bytes per ns: 3100500 more bytes take 1 us more */
  CHECK_NEAR(klab_peaks_read_floor_us(&q, 2097152 + 3100500.0), 5.0, 1e-9);
  /* A malformed curve is refused, naming the problem. */
  const char *bad_curves[][2] = {
      {"\"read_curve\": 5", "not an array"},
      {"\"read_curve\": [{\"bytes\": 4096}]", "read_curve[0]"},
      {"\"read_curve\": [{\"bytes\": 4096, \"us\": -1}]", "read_curve[0]"},
      {"\"read_curve\": [{\"bytes\": 8192, \"us\": 2}, {\"bytes\": 4096, \"us\": 3}]", "not above"},
      {"\"read_curve\": [{\"bytes\": 4096, \"us\": 3}, {\"bytes\": 8192, \"us\": 2}]", "for more bytes"},
      {"\"read_curve\": [\"x\"]", "read_curve[0]"},
  };
  for (size_t i = 0; i < sizeof bad_curves / sizeof bad_curves[0]; i++) {
    f = fopen("peaks_test/bad.json", "w");
    fprintf(f, "{\"gpu\": \"x\", \"read_bw_gbps\": 3000, \"gemm_bf16_tflops\": 700, %s}", bad_curves[i][0]);
    fclose(f);
    CHECK_MSG(klab_peaks_load("peaks_test/bad.json", &q, &err) != 0 && strstr(err.msg, bad_curves[i][1]) && !q.valid,
              "curve case %zu: %s", i, err.msg);
  }
  remove("peaks_test/bad.json"), remove("peaks_test/sub/p.json"), remove("peaks_test/sub"), remove("peaks_test");
}

int main(void) {
  test_compare();
  test_generation();
  test_stats();
  test_csv();
  test_shapes();
  test_peaks_json();
  return klab_test_finish("test_gate");
}
