/* GPU tests of the sample launchers beyond the harness gate (which runs fp32 logits, the device step, random
 * parameters): the bf16 path; many steps with the same seed giving ref_sample's token every time, through
 * the host step and the device step; the device step inside a replayed CUDA graph; a chi-square check that
 * the drawn frequencies follow the returned distribution (fixed seeds: deterministic, cannot flake); V = 1;
 * heavy ties (bf16 values, all-equal rows bigger than a shared-memory bucket); NaN and -inf rows; a garbage
 * workspace; rejected arguments; the optimized variant's top-k fast path (test_topk_fast_path). Every answer is checked against ref_sample on the values as stored.
 * Skips (exit 77) where there is no GPU. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime_api.h>
#include "harness/bf16.h"
#include "harness/gate.h"
#include "harness/run.h"
#include "kernels/sample/sample.h"
#include "reference/rng.h"
#include "reference/sample.h"
#include "test_util.h"

typedef int (*sample_fn)(const void *, klab_dtype, int64_t, const ref_sample_params *, uint64_t, const int32_t *, int64_t,
                         int32_t *, float *, void *, size_t, cudaStream_t, klab_err *);

static const struct {
  const char *name;
  sample_fn fn;
} variants[] = {{"naive", sample_naive}, {"optimized", sample_optimized}};
enum { NVARIANTS = 2 };

enum { MAX_V = 151936, MAX_DRAWS = 20000 };

static void *d_logits;     /* MAX_V fp32 (or bf16) */
static float *d_probs;     /* MAX_V */
static int32_t *d_tokens;  /* MAX_DRAWS */
static int32_t *d_step;
static void *d_ws;
static size_t ws_bytes;
static float *h_vals;      /* test values as float */
static float *h_stored;    /* as the kernels see them (bf16-rounded for bf16) */
static void *h_raw;        /* the bytes uploaded */
static float *h_probs;
static double *h_ref_probs;

static const char *dt_name(klab_dtype dt) { return dt == KLAB_DT_BF16 ? "bf16" : "f32"; }

static int upload(klab_dtype dt, int64_t V) {
  klab_test_store_values(dt == KLAB_DT_BF16, h_vals, V, h_raw, h_stored);
  return cudaMemcpy(d_logits, h_raw, (size_t)V * (dt == KLAB_DT_BF16 ? 2 : 4), cudaMemcpyHostToDevice) == cudaSuccess;
}

/* One launch of variant v on the uploaded logits; the token (or -1 / -2 on launcher / CUDA errors) and, when
 * want_probs, the distribution in h_probs. */
static int64_t run_one(int v, klab_dtype dt, int64_t V, const ref_sample_params *p, uint64_t seed, int64_t step, int device_step,
                       int want_probs) {
  int32_t s32 = (int32_t)step;
  if (device_step && cudaMemcpy(d_step, &s32, sizeof s32, cudaMemcpyHostToDevice) != cudaSuccess) return -2;
  if (want_probs && cudaMemset(d_probs, 0xFF, (size_t)V * sizeof(float)) != cudaSuccess) return -2; /* NaN poison */
  if (cudaMemset(d_tokens, 0xFF, sizeof(int32_t)) != cudaSuccess) return -2;
  klab_err err = {{0}};
  /* a device step that disagrees with the host one: the launcher must read the device value */
  if (variants[v].fn(d_logits, dt, V, p, seed, device_step ? d_step : NULL, device_step ? step + 17 : step, d_tokens,
                     want_probs ? d_probs : NULL, d_ws, ws_bytes, 0, &err)) {
    fprintf(stderr, "  %s: %s\n", variants[v].name, err.msg);
    return -1;
  }
  int32_t tok = -3;
  if (cudaMemcpy(&tok, d_tokens, sizeof tok, cudaMemcpyDeviceToHost) != cudaSuccess) return -2;
  if (want_probs && cudaMemcpy(h_probs, d_probs, (size_t)V * sizeof(float), cudaMemcpyDeviceToHost) != cudaSuccess) return -2;
  return tok;
}

/* Variants first_variant.. against the reference: the token exactly, probs within the gate's tolerance for
 * sample. */
static void check_variants(int first_variant, const char *what, klab_dtype dt, int64_t V, ref_sample_params p, uint64_t seed, int64_t step,
                           int device_step) {
  CHECK(upload(dt, V));
  const double u = klab_rand_uniform(seed, (uint64_t)step);
  const int64_t want = ref_sample(h_stored, V, &p, u, h_ref_probs);
  const klab_tolerance tol = klab_tolerance_for("sample", KLAB_DT_F32);
  for (int v = first_variant; v < NVARIANTS; v++) {
    const int64_t got = run_one(v, dt, V, &p, seed, step, device_step, 1);
    klab_cmp c;
    const int ok = got >= 0 && klab_compare(h_probs, KLAB_DT_F32, h_ref_probs, V, tol, &c);
    char why[256] = "";
    if (got >= 0) klab_cmp_describe(&c, &tol, why, sizeof why);
    CHECK_MSG(got == want && ok, "%s %s V=%lld %s T=%g k=%d p=%g min_p=%g step %lld%s: token %lld want %lld; probs: %s", what,
              variants[v].name, (long long)V, dt_name(dt), p.temperature, p.top_k, p.top_p, p.min_p, (long long)step,
              device_step ? " (device step)" : "", (long long)got, (long long)want, why);
  }
}

/* Both variants against the reference. */
static void check_case(const char *what, klab_dtype dt, int64_t V, ref_sample_params p, uint64_t seed, int64_t step, int device_step) {
  check_variants(0, what, dt, V, p, seed, step, device_step);
}

static float normal_value(uint64_t seed, int64_t i) {
  float u1 = klab_rand_uniform_f(seed, 2 * (uint64_t)i) + 5.9604645e-8f, u2 = klab_rand_uniform_f(seed, 2 * (uint64_t)i + 1);
  return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

/* Logits shaped like a language model's: a broad normal body and a few strong candidates. */
static void fill_lm_like(int64_t V, uint64_t seed) {
  for (int64_t i = 0; i < V; i++) h_vals[i] = 2.5f * normal_value(seed, i);
  for (int j = 0; j < 8 && j < V; j++) h_vals[klab_rand_u64(seed ^ 0xabc, (uint64_t)j) % (uint64_t)V] = 14.0f - (float)j;
}

static const ref_sample_params PARAMS[] = {
    {0.7f, 20, 0.8f, 0.0f},  /* Qwen3 recommended */
    {0.0f, 0, 1.0f, 0.0f},   /* greedy */
    {1.0f, 0, 0.95f, 0.0f},  /* top-p only */
    {1.0f, 0, 1.0f, 0.05f},  /* min-p only */
    {1.0f, 1, 1.0f, 0.0f},   /* top-k 1 */
    {1.0f, 0, 1.0f, 0.0f},   /* plain temperature sampling: everything kept */
    {0.6f, 50, 0.9f, 0.1f},  /* all filters */
    {1.5f, 1000, 0.5f, 0.0f},
};
enum { NPARAMS = sizeof PARAMS / sizeof PARAMS[0] };

static void test_bf16_and_f32(void) {
  static const int64_t Vs[] = {1, 7, 1000, 32000, MAX_V};
  for (size_t vi = 0; vi < sizeof Vs / sizeof Vs[0] && Vs[vi] <= MAX_V; vi++)
    for (int d = 0; d < 2; d++) {
      const klab_dtype dt = d ? KLAB_DT_BF16 : KLAB_DT_F32;
      fill_lm_like(Vs[vi], 1000 + vi);
      for (int pi = 0; pi < NPARAMS; pi++) check_case("lm-like", dt, Vs[vi], PARAMS[pi], 42 + (uint64_t)pi, 7 * pi + (int64_t)vi, pi % 2);
    }
}

/* bf16 rows with many equal values: a top-k / top-p boundary inside a group of ties is resolved by index.
 * The top-p values keep top_p * (kept weight) away from a whole number of equal weights: in an all-equal
 * row with top_p * V an integer the exact cut lies exactly on a token, and the reference's sequential sum of
 * p = 1/V (not representable) falls a few ulps short and keeps one more token than an exact sum would -
 * a tie in the arithmetic itself, not a sampler bug (docs/ops/sample.md, "exactness"). */
static void test_ties(void) {
  const int64_t V = MAX_V;
  for (int64_t i = 0; i < V; i++) h_vals[i] = (float)(klab_rand_u64(5, (uint64_t)i) % 7) * 0.5f; /* 7 values, ~21700 each */
  const ref_sample_params tie_params[] = {{1.0f, 20, 1.0f, 0.0f}, {1.0f, 30000, 0.3f, 0.0f}, {1.0f, 0, 0.2f, 0.0f},
                                          {1.0f, 0, 1.0f, 0.5f}, {0.7f, 20, 0.8f, 0.0f}, {1.0f, 0, 1.0f, 0.0f}};
  for (size_t pi = 0; pi < sizeof tie_params / sizeof tie_params[0]; pi++)
    check_case("7-valued", KLAB_DT_BF16, V, tie_params[pi], 9, 100 + (int64_t)pi, 0);
  for (int64_t i = 0; i < V; i++) h_vals[i] = 0.25f; /* one bucket of 151936 candidates: the global-memory path */
  for (size_t pi = 0; pi < sizeof tie_params / sizeof tie_params[0]; pi++) {
    /* All equal under top-k 30000: top-p 0.5 is reached exactly at 15000 tokens, an exact arithmetic tie where the
     * GPU's and the reference's float64 sums may round apart (docs/ops/sample.md). Nudged off the boundary. */
    ref_sample_params p = tie_params[pi];
    if (p.top_p == 0.5f) p.top_p = 0.50001f;
    check_case("all-equal", KLAB_DT_F32, V, p, 10, 200 + (int64_t)pi, 1);
  }
}

/* Many steps with one seed: the token of every step is ref_sample's (both step paths). */
static void test_many_steps(void) {
  const int64_t V = 32000;
  fill_lm_like(V, 77);
  CHECK(upload(KLAB_DT_F32, V));
  const ref_sample_params p[] = {{0.7f, 20, 0.8f, 0.0f}, {1.0f, 0, 1.0f, 0.0f}, {1.2f, 0, 0.9f, 0.02f}};
  for (size_t pi = 0; pi < sizeof p / sizeof p[0]; pi++) {
    int mismatches = 0;
    for (int64_t step = 0; step < 200; step++) {
      const int64_t want = ref_sample(h_stored, V, &p[pi], klab_rand_uniform(1234, (uint64_t)step), NULL);
      for (int v = 0; v < NVARIANTS; v++) {
        if (v == 0 && step % 10) continue; /* the naive variant is slow: every 10th step */
        const int64_t got = run_one(v, KLAB_DT_F32, V, &p[pi], 1234, step, (int)(step % 2), 0);
        if (got != want && mismatches++ < 5)
          fprintf(stderr, "  step %lld %s params %zu: token %lld want %lld\n", (long long)step, variants[v].name, pi, (long long)got,
                  (long long)want);
      }
    }
    CHECK_MSG(mismatches == 0, "params %zu: %d steps drew another token than ref_sample", pi, mismatches);
  }
}

/* The draw's step from device memory inside a captured graph, changed between replays. */
static void test_graph_replay(void) {
  const int64_t V = MAX_V;
  fill_lm_like(V, 99);
  CHECK(upload(KLAB_DT_BF16, V));
  const ref_sample_params p = {0.7f, 20, 0.8f, 0.0f};
  cudaStream_t st;
  CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking) == cudaSuccess);
  for (int v = 0; v < NVARIANTS; v++) {
    int32_t s0 = 0;
    CHECK(cudaMemcpy(d_step, &s0, sizeof s0, cudaMemcpyHostToDevice) == cudaSuccess);
    /* one eager call first, as the engine does */
    klab_err err = {{0}};
    CHECK_MSG(variants[v].fn(d_logits, KLAB_DT_BF16, V, &p, 555, d_step, 0, d_tokens, NULL, d_ws, ws_bytes, st, &err) == 0, "%s", err.msg);
    cudaGraph_t g;
    cudaGraphExec_t exec;
    CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    int rc = variants[v].fn(d_logits, KLAB_DT_BF16, V, &p, 555, d_step, 0, d_tokens, NULL, d_ws, ws_bytes, st, &err);
    CHECK(cudaStreamEndCapture(st, &g) == cudaSuccess);
    CHECK_MSG(rc == 0, "%s capture: %s", variants[v].name, err.msg);
    if (rc) continue;
    CHECK(cudaGraphInstantiate(&exec, g, 0) == cudaSuccess);
    int bad = 0;
    for (int32_t step = 1; step <= 30; step++) {
      CHECK(cudaMemcpyAsync(d_step, &step, sizeof step, cudaMemcpyHostToDevice, st) == cudaSuccess);
      CHECK(cudaGraphLaunch(exec, st) == cudaSuccess);
      int32_t tok = -1;
      CHECK(cudaMemcpyAsync(&tok, d_tokens, sizeof tok, cudaMemcpyDeviceToHost, st) == cudaSuccess);
      CHECK(cudaStreamSynchronize(st) == cudaSuccess);
      bad += tok != ref_sample(h_stored, V, &p, klab_rand_uniform(555, (uint64_t)step), NULL);
    }
    CHECK_MSG(bad == 0, "%s: %d graph replays drew another token than ref_sample", variants[v].name, bad);
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(g);
  }
  cudaStreamDestroy(st);
}

/* Frequencies over MAX_DRAWS steps follow the returned distribution: Pearson chi-square over the kept tokens,
 * bounded far above its expectation (dof) so only a wrong sampler can exceed it; fixed seed, deterministic. */
static void test_frequencies(void) {
  const int64_t V = 64;
  for (int64_t i = 0; i < V; i++) h_vals[i] = 1.5f * normal_value(31, i);
  CHECK(upload(KLAB_DT_F32, V));
  const ref_sample_params p = {0.9f, 24, 0.95f, 0.01f};
  for (int v = 1; v < NVARIANTS; v++) { /* optimized: cheap enough for 20000 draws */
    CHECK(run_one(v, KLAB_DT_F32, V, &p, 2024, 0, 0, 1) >= 0);
    klab_err err = {{0}};
    int rc = 0;
    for (int64_t s = 0; s < MAX_DRAWS && !rc; s++)
      rc = variants[v].fn(d_logits, KLAB_DT_F32, V, &p, 2024, NULL, s, d_tokens + s, NULL, d_ws, ws_bytes, 0, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    static int32_t toks[MAX_DRAWS];
    CHECK(cudaMemcpy(toks, d_tokens, sizeof toks, cudaMemcpyDeviceToHost) == cudaSuccess);
    double count[64] = {0};
    int outside = 0;
    for (int s = 0; s < MAX_DRAWS; s++) {
      if (toks[s] < 0 || toks[s] >= V || h_probs[toks[s]] == 0.0f) outside++;
      else count[toks[s]] += 1;
    }
    double chi2 = 0;
    int dof = -1;
    for (int64_t i = 0; i < V; i++)
      if (h_probs[i] > 0) {
        const double e = MAX_DRAWS * (double)h_probs[i];
        chi2 += (count[i] - e) * (count[i] - e) / e;
        dof++;
      }
    CHECK_MSG(outside == 0, "%s: %d draws outside the kept set", variants[v].name, outside);
    CHECK_MSG(dof >= 2 && chi2 < dof + 10.0 * sqrt(2.0 * dof) + 20.0, "%s: chi-square %.1f with %d degrees of freedom", variants[v].name, chi2, dof);
    printf("  frequencies (%s): chi-square %.1f, %d degrees of freedom, %d draws\n", variants[v].name, chi2, dof, MAX_DRAWS);
  }
}

static void test_edges(void) {
  /* V = 1: the only token, probability 1, whatever the parameters */
  h_vals[0] = -3.0f;
  for (int pi = 0; pi < NPARAMS; pi++) check_case("V=1", KLAB_DT_F32, 1, PARAMS[pi], 3, pi, pi % 2);
  /* a NaN anywhere: the first NaN, greedy or not */
  const int64_t V = 5000;
  fill_lm_like(V, 8);
  h_vals[3210] = NAN;
  h_vals[4000] = NAN;
  for (int pi = 0; pi < NPARAMS; pi++) check_case("NaN", KLAB_DT_F32, V, PARAMS[pi], 4, pi, 0);
  /* every logit -inf: the first of the order (index 0) */
  for (int64_t i = 0; i < V; i++) h_vals[i] = -INFINITY;
  for (int pi = 0; pi < NPARAMS; pi++) check_case("all -inf", KLAB_DT_BF16, V, PARAMS[pi], 5, pi, 0);
  /* many -inf (masked tokens) around a few finite ones */
  for (int64_t i = 0; i < V; i++) h_vals[i] = i % 97 == 3 ? normal_value(6, i) : -INFINITY;
  for (int pi = 0; pi < NPARAMS; pi++) check_case("masked", KLAB_DT_F32, V, PARAMS[pi], 6, pi, 1);
  /* a garbage workspace, reused without clearing */
  fill_lm_like(V, 12);
  CHECK(cudaMemset(d_ws, 0xA5, ws_bytes) == cudaSuccess);
  for (int pi = 0; pi < NPARAMS; pi++) check_case("garbage workspace", KLAB_DT_F32, V, PARAMS[pi], 7, pi, 0);
}

/* The optimized variant's top-k fast paths (temperature > 0, 0 < top_k <= 1024, top_k < V): only the top k
 * candidates are selected, sorted and weighed, with the reference's own sums. Every k that switches an
 * internal path (1; the per-block local top k up to 64, count + gather from 65; bitonic above, padded to a power of two; the maximum
 * 1024), top-p / min-p on and off, both dtypes, V not a multiple of 8 and V right above and at k (the latter
 * takes the general path), candidate sets far larger than k (ties: shared-memory staging and the global-memory
 * path beyond 8192 candidates), -inf inside the top k, greedy rows without probs, many steps. */
static const ref_sample_params TOPK_PARAMS[] = {
    {0.7f, 20, 0.8f, 0.0f},   {0.6f, 20, 0.95f, 0.0f}, {0.7f, 20, 1.0f, 0.0f},   {1.0f, 1, 1.0f, 0.0f},    {1.0f, 2, 0.5f, 0.0f},
    {1.0f, 2, 1.0f, 0.3f},    {0.8f, 50, 0.9f, 0.05f}, {1.0f, 50, 1.0f, 0.02f},  {1.2f, 128, 0.97f, 0.0f}, {1.0f, 129, 0.99f, 0.0f},
    {1.5f, 300, 1.0f, 0.001f}, {2.0f, 1024, 0.99f, 0.0f}, {3.0f, 1024, 1.0f, 0.0f}, {1.0f, 1000, 0.5f, 0.01f},
    {0.9f, 64, 0.95f, 0.0f},  {0.9f, 65, 0.95f, 0.0f},  {1.0f, 3, 1.0f, 0.0f},
};
enum { NTOPK_PARAMS = sizeof TOPK_PARAMS / sizeof TOPK_PARAMS[0] };

/* A flat row: std-1 normal logits, so the top 20 weigh alike and the draw moves among them. */
static void fill_flat(int64_t V, uint64_t seed) {
  for (int64_t i = 0; i < V; i++) h_vals[i] = normal_value(seed, i);
}

static void test_topk_fast_path(void) {
  /* LM-like and flat rows; V = 5003 and 1025 are not multiples of 8, 1025 is k + 1 for k = 1024. */
  static const int64_t Vs[] = {MAX_V, 5003, 1025};
  for (size_t vi = 0; vi < sizeof Vs / sizeof Vs[0]; vi++)
    for (int d = 0; d < 2; d++) {
      const klab_dtype dt = d ? KLAB_DT_BF16 : KLAB_DT_F32;
      for (int shape = 0; shape < 2; shape++) {
        if (shape) fill_flat(Vs[vi], 300 + vi);
        else fill_lm_like(Vs[vi], 400 + vi);
        for (int pi = 0; pi < NTOPK_PARAMS; pi++)
          check_case(shape ? "top-k flat" : "top-k lm-like", dt, Vs[vi], TOPK_PARAMS[pi], 50 + (uint64_t)pi, 11 * pi + 3 * (int64_t)vi + d, pi % 2);
      }
    }
  /* Tiny and boundary V: k = V - 1 (fast path), k = V (general path). */
  static const struct {
    int64_t V;
    int32_t k;
  } small[] = {{2, 1}, {7, 2}, {7, 6}, {7, 7}, {21, 20}, {20, 20}, {1000, 999}, {1000, 1000}, {1024, 1024}, {1023, 1022}};
  for (size_t si = 0; si < sizeof small / sizeof small[0]; si++) {
    fill_flat(small[si].V, 500 + si);
    const ref_sample_params p[] = {{0.7f, small[si].k, 0.8f, 0.0f}, {1.0f, small[si].k, 1.0f, 0.0f}, {1.0f, small[si].k, 0.9f, 0.1f}};
    for (size_t pi = 0; pi < sizeof p / sizeof p[0]; pi++)
      check_case("top-k small V", pi % 2 ? KLAB_DT_BF16 : KLAB_DT_F32, small[si].V, p[pi], 60 + si, 5 * (int64_t)si + (int64_t)pi, (int)(si % 2));
  }
  /* Copies of the maximum: the bucket of the k-th largest holds 5000 (staged in shared memory) or 20000 (read
   * from global memory) candidates, ordered by index. */
  static const int64_t copies[] = {5000, 20000};
  for (size_t ci = 0; ci < sizeof copies / sizeof copies[0]; ci++)
    for (int d = 0; d < 2; d++) {
      fill_lm_like(MAX_V, 600 + ci);
      for (int64_t c = 0; c < copies[ci]; c++) h_vals[klab_rand_u64(601 + ci, (uint64_t)c) % (uint64_t)MAX_V] = 20.0f;
      static const int ks[] = {1, 20, 129, 1024};
      for (int ki = 0; ki < 4; ki++) {
        const ref_sample_params p[] = {{0.7f, ks[ki], 0.8f, 0.0f}, {1.0f, ks[ki], 1.0f, 0.1f}};
        for (int pi = 0; pi < 2; pi++)
          check_case("top-k copies of the max", d ? KLAB_DT_BF16 : KLAB_DT_F32, MAX_V, p[pi], 70 + (uint64_t)ki, 3 * ki + pi, pi);
      }
    }
  /* Every logit equal: C = V, the global-memory path, every radix pass down to the index bits. The fast path
   * replays the reference's sums, so even thresholds that fall exactly on a token (top-p 0.5 at k = 20, where
   * the reference's left-to-right sum of p = 1/20 decides) match it: the optimized variant is checked there,
   * the naive one (exact sums of the weights) only off such boundaries (docs/ops/sample.md, "exactness"). */
  for (int64_t i = 0; i < MAX_V; i++) h_vals[i] = -1.25f;
  const ref_sample_params eq[] = {{0.7f, 20, 0.8f, 0.0f}, {1.0f, 1, 1.0f, 0.0f}, {1.0f, 1024, 0.9f, 0.0f}, {1.0f, 300, 1.0f, 0.5f}};
  for (size_t pi = 0; pi < sizeof eq / sizeof eq[0]; pi++) check_case("top-k all-equal", KLAB_DT_F32, MAX_V, eq[pi], 80, 7 + (int64_t)pi, (int)pi % 2);
  const ref_sample_params eq_exact[] = {{1.0f, 20, 0.5f, 0.0f}, {1.0f, 1024, 0.25f, 0.0f}, {1.0f, 100, 0.1f, 0.0f}};
  for (size_t pi = 0; pi < sizeof eq_exact / sizeof eq_exact[0]; pi++)
    for (int64_t step = 0; step < 4; step++) check_variants(1, "top-k all-equal, exact top-p boundary", KLAB_DT_BF16, MAX_V, eq_exact[pi], 81, step, (int)step % 2);
  /* -inf inside the top k (weight 0): 10 finite logits, the rest -inf; and one -inf run above a few finite. */
  const int64_t Vm = 5003;
  for (int64_t i = 0; i < Vm; i++) h_vals[i] = i % 499 == 17 ? normal_value(90, i) : -INFINITY;
  const ref_sample_params minf[] = {{0.7f, 20, 0.8f, 0.0f}, {1.0f, 20, 1.0f, 0.0f}, {1.0f, 50, 1.0f, 0.05f}, {1.0f, 1024, 0.999f, 0.0f},
                                    {1.0f, 11, 1.0f, 0.0f},  {1.0f, 10, 1.0f, 0.0f}, {1.0f, 2, 1.0f, 0.0f}};
  for (size_t pi = 0; pi < sizeof minf / sizeof minf[0]; pi++)
    for (int64_t step = 0; step < 3; step++) check_case("top-k -inf inside", pi % 2 ? KLAB_DT_BF16 : KLAB_DT_F32, Vm, minf[pi], 91, 13 * step + (int64_t)pi, (int)step % 2);
  /* Greedy rows on the fast path without probs: the finisher itself writes the argmax. */
  fill_lm_like(Vm, 92);
  h_vals[4321] = NAN;
  h_vals[4500] = NAN;
  CHECK(upload(KLAB_DT_F32, Vm));
  const ref_sample_params qp = {0.7f, 20, 0.8f, 0.0f};
  CHECK_MSG(run_one(1, KLAB_DT_F32, Vm, &qp, 93, 5, 1, 0) == 4321, "top-k NaN without probs: want the first NaN 4321");
  for (int64_t i = 0; i < Vm; i++) h_vals[i] = -INFINITY;
  CHECK(upload(KLAB_DT_BF16, Vm));
  CHECK_MSG(run_one(1, KLAB_DT_BF16, Vm, &qp, 93, 6, 0, 0) == 0, "top-k all -inf without probs: want token 0");
  /* Many steps, token only (the fast path without the probs kernel), device and host step alternating. */
  fill_flat(MAX_V, 94);
  CHECK(upload(KLAB_DT_BF16, MAX_V));
  const ref_sample_params sp[] = {{0.7f, 20, 0.8f, 0.0f}, {0.6f, 20, 0.95f, 0.0f}, {1.0f, 50, 0.9f, 0.05f}, {0.8f, 1024, 1.0f, 0.0f}, {1.0f, 2, 1.0f, 0.0f}};
  for (size_t pi = 0; pi < sizeof sp / sizeof sp[0]; pi++) {
    int mismatches = 0, distinct = 0;
    int64_t last = -1;
    for (int64_t step = 0; step < 100; step++) {
      const int64_t want = ref_sample(h_stored, MAX_V, &sp[pi], klab_rand_uniform(4321, (uint64_t)step), NULL);
      const int64_t got = run_one(1, KLAB_DT_BF16, MAX_V, &sp[pi], 4321, step, (int)(step % 2), 0);
      distinct += want != last;
      last = want;
      if (got != want && mismatches++ < 5)
        fprintf(stderr, "  top-k step %lld params %zu: token %lld want %lld\n", (long long)step, pi, (long long)got, (long long)want);
    }
    CHECK_MSG(mismatches == 0, "top-k params %zu: %d of 100 steps drew another token than ref_sample", pi, mismatches);
    CHECK_MSG(distinct > 10, "top-k params %zu: the draws barely moved (%d changes), the row does not test the draw", pi, distinct);
  }
}

static void test_rejections(void) {
  const ref_sample_params p = {0.7f, 20, 0.8f, 0.0f}, hot = {INFINITY, 0, 1.0f, 0.0f};
  for (int v = 0; v < NVARIANTS; v++) {
    klab_err err = {{0}};
    sample_fn f = variants[v].fn;
    CHECK(f(d_logits, KLAB_DT_F32, 0, &p, 1, NULL, 0, d_tokens, NULL, d_ws, ws_bytes, 0, &err) == -1 && strstr(err.msg, "V=0"));
    CHECK(f(d_logits, KLAB_DT_I32, 10, &p, 1, NULL, 0, d_tokens, NULL, d_ws, ws_bytes, 0, &err) == -1 && strstr(err.msg, "dtype"));
    CHECK(f(d_logits, KLAB_DT_F32, 10, &p, 1, NULL, 0, NULL, NULL, d_ws, ws_bytes, 0, &err) == -1);
    CHECK(f(d_logits, KLAB_DT_F32, 10, NULL, 1, NULL, 0, d_tokens, NULL, d_ws, ws_bytes, 0, &err) == -1);
    CHECK(f(d_logits, KLAB_DT_F32, 10, &hot, 1, NULL, 0, d_tokens, NULL, d_ws, ws_bytes, 0, &err) == -1 && strstr(err.msg, "inf"));
    CHECK(f(d_logits, KLAB_DT_F32, 10, &p, 1, NULL, 0, d_tokens, NULL, d_ws, 16, 0, &err) == -1 && strstr(err.msg, "workspace"));
    CHECK(f(d_logits, KLAB_DT_F32, 10, &p, 1, NULL, 0, d_tokens, NULL, (char *)d_ws + 8, ws_bytes - 8, 0, &err) == -1);
  }
  CHECK(sample_workspace_bytes(MAX_V) >= (size_t)MAX_V * 16);
}

int main(void) {
  char why[256];
  if (!klab_have_gpu(why, sizeof why)) klab_test_skip("test_gpu_sample", why);
  ws_bytes = sample_workspace_bytes(MAX_V);
  if (cudaMalloc(&d_logits, (size_t)MAX_V * 4) != cudaSuccess || cudaMalloc((void **)&d_probs, (size_t)MAX_V * 4) != cudaSuccess ||
      cudaMalloc((void **)&d_tokens, MAX_DRAWS * sizeof(int32_t)) != cudaSuccess || cudaMalloc((void **)&d_step, 4) != cudaSuccess ||
      cudaMalloc(&d_ws, ws_bytes) != cudaSuccess) {
    fprintf(stderr, "test_gpu_sample: device allocation failed\n");
    return 1;
  }
  h_vals = malloc((size_t)MAX_V * sizeof *h_vals);
  h_stored = malloc((size_t)MAX_V * sizeof *h_stored);
  h_raw = malloc((size_t)MAX_V * 4);
  h_probs = malloc((size_t)MAX_V * sizeof *h_probs);
  h_ref_probs = malloc((size_t)MAX_V * sizeof *h_ref_probs);
  if (!h_vals || !h_stored || !h_raw || !h_probs || !h_ref_probs) return 1;
  test_rejections();
  test_edges();
  test_bf16_and_f32();
  test_ties();
  test_many_steps();
  test_topk_fast_path();
  test_graph_replay();
  test_frequencies();
  cudaFree(d_logits), cudaFree(d_probs), cudaFree(d_tokens), cudaFree(d_step), cudaFree(d_ws);
  free(h_vals), free(h_stored), free(h_raw), free(h_probs), free(h_ref_probs);
  return klab_test_finish("test_gpu_sample");
}
