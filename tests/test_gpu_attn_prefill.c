/* attn_prefill beyond the gate's shapes (where cache_stride = P0 + T): a cache larger than P0 + T whose
 * positions past P0 + T hold NaN (they must never be read into the result), the naive variant forced
 * into many small chunks by a short workspace full of garbage, the optimized variant captured in a CUDA
 * graph and replayed, the optimized kernel with each step undone (ATTN_PREFILL_UNDO_*) on the same caches,
 * and the launchers' refusals. Every result is compared with the float64 reference
 * under the gate's attn_prefill tolerance. Skips (exit 77) where there is no GPU. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime_api.h>
#include "harness/bf16.h"
#include "harness/gate.h"
#include "harness/gen.h"
#include "harness/run.h"
#include "kernels/attn_prefill/attn_prefill.h"
#include "reference/attention.h"
#include "test_util.h"

typedef int (*attn_fn)(const uint16_t *, const uint16_t *, const uint16_t *, uint16_t *, int64_t, int64_t, int64_t,
                       int64_t, int64_t, int64_t, void *, size_t, cudaStream_t, klab_err *);
static const struct {
  const char *name;
  attn_fn fn;
} variants[] = {{"naive", attn_prefill_naive}, {"optimized", attn_prefill_optimized}};
enum { NVARIANTS = sizeof variants / sizeof variants[0] };

#define BF16_NAN 0x7FC0u

typedef struct {
  int64_t T, P0, HQ, HKV, D, stride;
  int64_t nq, nc;
  uint16_t *q, *k, *v, *out;
  float *fq, *fk, *fv, *fout;
  double *ref;
  void *dq, *dk, *dv, *dout, *dws;
  size_t ws_bytes;
  cudaStream_t stream;
} fixture;

/* Inputs as the gate draws them (q scale 4, k and v scale 1); cache positions >= P0+T are NaN. */
static void fixture_init(fixture *f, int64_t T, int64_t P0, int64_t HQ, int64_t HKV, int64_t D, int64_t stride,
                         uint64_t seed) {
  memset(f, 0, sizeof *f);
  f->T = T, f->P0 = P0, f->HQ = HQ, f->HKV = HKV, f->D = D, f->stride = stride;
  f->nq = T * HQ * D, f->nc = HKV * stride * D;
  f->q = klab_test_xmalloc((size_t)f->nq * 2), f->out = klab_test_xmalloc((size_t)f->nq * 2);
  f->k = klab_test_xmalloc((size_t)f->nc * 2), f->v = klab_test_xmalloc((size_t)f->nc * 2);
  f->fq = klab_test_xmalloc((size_t)f->nq * sizeof(float)), f->fout = klab_test_xmalloc((size_t)f->nq * sizeof(float));
  f->fk = klab_test_xmalloc((size_t)f->nc * sizeof(float)), f->fv = klab_test_xmalloc((size_t)f->nc * sizeof(float));
  f->ref = klab_test_xmalloc((size_t)f->nq * sizeof(double));
  klab_fill_host(f->q, KLAB_DT_BF16, f->nq, klab_tensor_seed(seed, 0), KLAB_DIST_OUTLIERS, 4.0f, 0.0f);
  klab_fill_host(f->k, KLAB_DT_BF16, f->nc, klab_tensor_seed(seed, 1), KLAB_DIST_NORMAL, 1.0f, 0.0f);
  klab_fill_host(f->v, KLAB_DT_BF16, f->nc, klab_tensor_seed(seed, 2), KLAB_DIST_NORMAL, 1.0f, 0.0f);
  for (int64_t h = 0; h < HKV; h++)
    for (int64_t p = P0 + T; p < stride; p++)
      for (int64_t d = 0; d < D; d++) f->k[(h * stride + p) * D + d] = f->v[(h * stride + p) * D + d] = BF16_NAN;
  for (int64_t i = 0; i < f->nq; i++) f->fq[i] = klab_bf16_to_float(f->q[i]);
  for (int64_t i = 0; i < f->nc; i++) f->fk[i] = klab_bf16_to_float(f->k[i]), f->fv[i] = klab_bf16_to_float(f->v[i]);
  ref_attention(f->fq, f->fk, f->fv, f->fout, T, P0, HQ, HKV, D, stride);
  for (int64_t i = 0; i < f->nq; i++) f->ref[i] = f->fout[i];
  CK(cudaStreamCreateWithFlags(&f->stream, cudaStreamNonBlocking));
  CK(cudaMalloc(&f->dq, (size_t)f->nq * 2));
  CK(cudaMalloc(&f->dout, (size_t)f->nq * 2));
  CK(cudaMalloc(&f->dk, (size_t)f->nc * 2));
  CK(cudaMalloc(&f->dv, (size_t)f->nc * 2));
  f->ws_bytes = attn_prefill_workspace_bytes(T, P0, HQ, HKV, D);
  CK(cudaMalloc(&f->dws, f->ws_bytes ? f->ws_bytes : 16));
  /* Garbage in the workspace: the variants must not depend on its initial contents. */
  CK(cudaMemset(f->dws, 0xA5, f->ws_bytes ? f->ws_bytes : 16));
  CK(cudaDeviceSynchronize()); /* the garbage is in place before the test's non-blocking stream runs */
  CK(cudaMemcpy(f->dq, f->q, (size_t)f->nq * 2, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(f->dk, f->k, (size_t)f->nc * 2, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(f->dv, f->v, (size_t)f->nc * 2, cudaMemcpyHostToDevice));
}

static void fixture_free(fixture *f) {
  free(f->q), free(f->out), free(f->k), free(f->v), free(f->fq), free(f->fout), free(f->fk), free(f->fv), free(f->ref);
  cudaFree(f->dq), cudaFree(f->dout), cudaFree(f->dk), cudaFree(f->dv), cudaFree(f->dws);
  cudaStreamDestroy(f->stream);
}

/* On the test's own stream: a legacy-stream memset is not ordered with a non-blocking stream's graph replay. */
static void poison_out(fixture *f) {
  CK(cudaMemsetAsync(f->dout, 0xFF, (size_t)f->nq * 2, f->stream));
  CK(cudaStreamSynchronize(f->stream));
}

static void check_out(fixture *f, const char *label) {
  CK(cudaMemcpy(f->out, f->dout, (size_t)f->nq * 2, cudaMemcpyDeviceToHost));
  klab_tolerance tol = klab_tolerance_for("attn_prefill", KLAB_DT_BF16);
  klab_cmp c;
  int ok = klab_compare(f->out, KLAB_DT_BF16, f->ref, f->nq, tol, &c);
  char what[256];
  klab_cmp_describe(&c, &tol, what, sizeof what);
  CHECK_MSG(ok, "%s: %s", label, what);
}

static int call(fixture *f, int v, size_t ws_bytes, klab_err *err) {
  return variants[v].fn(f->dq, f->dk, f->dv, f->dout, f->T, f->P0, f->HQ, f->HKV, f->D, f->stride, f->dws, ws_bytes,
                        f->stream, err);
}

static void label_of(const fixture *f, const char *variant, const char *what, char *buf, size_t len) {
  snprintf(buf, len, "%s T=%lld P0=%lld HQ=%lld HKV=%lld D=%lld stride=%lld %s", variant, (long long)f->T,
           (long long)f->P0, (long long)f->HQ, (long long)f->HKV, (long long)f->D, (long long)f->stride, what);
}

/* cache_stride > P0 + T with NaN after the filled positions; GQA groups 4, 5, 1, 16; both block heights
 * of the optimized variant (T=1031 with 32/8 takes the 128-row blocks). */
static void test_partial_cache(void) {
  static const int64_t shapes[][6] = {
      {77, 0, 32, 8, 128, 300}, {100, 500, 40, 8, 128, 1000}, {1, 63, 8, 8, 128, 100},
      {65, 64, 16, 1, 128, 200}, {1031, 1, 32, 8, 128, 1100}, {3, 0, 4, 2, 64, 9},
  };
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    fixture f;
    fixture_init(&f, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], shapes[s][4], shapes[s][5], 91 + s);
    for (int v = 0; v < NVARIANTS; v++) {
      char label[200];
      label_of(&f, variants[v].name, "(NaN past P0+T)", label, sizeof label);
      if (v == 1 && f.D != ATTN_PREFILL_OPT_HEAD_DIM) continue; /* refused: covered by test_refusals */
      poison_out(&f);
      klab_err err = {{0}};
      int rc = call(&f, v, f.ws_bytes, &err);
      CHECK_MSG(rc == 0, "%s: %s", label, err.msg);
      if (rc) continue;
      CK(cudaStreamSynchronize(f.stream));
      check_out(&f, label);
    }
    /* The optimized kernel with each step undone (the undo_* variants) reads the same bounded cache. */
    for (unsigned undo = 1; f.D == ATTN_PREFILL_OPT_HEAD_DIM && undo <= ATTN_PREFILL_UNDO_PREFETCH; undo <<= 1) {
      char label[200], what[64];
      snprintf(what, sizeof what, "undo 0x%x (NaN past P0+T)", undo);
      label_of(&f, "optimized", what, label, sizeof label);
      poison_out(&f);
      klab_err err = {{0}};
      int rc = attn_prefill_optimized_undo(f.dq, f.dk, f.dv, f.dout, f.T, f.P0, f.HQ, f.HKV, f.D, f.stride, NULL, 0, undo,
                                           f.stream, &err);
      CHECK_MSG(rc == 0, "%s: %s", label, err.msg);
      if (rc) continue;
      CK(cudaStreamSynchronize(f.stream));
      check_out(&f, label);
    }
    printf("  partial cache T=%lld P0=%lld HQ=%lld HKV=%lld D=%lld stride=%lld\n", (long long)f.T, (long long)f.P0,
           (long long)f.HQ, (long long)f.HKV, (long long)f.D, (long long)f.stride);
    fixture_free(&f);
  }
}

/* The naive variant with room for 1, 3 and 7 query rows of scores: many chunks, a short last one. */
static void test_naive_chunks(void) {
  fixture f;
  fixture_init(&f, 50, 20, 16, 4, 128, 70, 505);
  const size_t row_bytes = (size_t)f.HQ * (size_t)(f.P0 + f.T) * sizeof(float);
  const size_t rows[] = {1, 3, 7};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    char label[200], what[64];
    snprintf(what, sizeof what, "(workspace for %zu rows)", rows[i]);
    label_of(&f, "naive", what, label, sizeof label);
    poison_out(&f);
    klab_err err = {{0}};
    int rc = call(&f, 0, rows[i] * row_bytes, &err);
    CHECK_MSG(rc == 0, "%s: %s", label, err.msg);
    if (rc) continue;
    CK(cudaStreamSynchronize(f.stream));
    check_out(&f, label);
  }
  printf("  naive chunking: 1, 3, 7 rows per chunk\n");
  fixture_free(&f);
}

/* Captured once (the launcher sets kernel attributes during capture), replayed twice. */
static void test_graph(void) {
  fixture f;
  fixture_init(&f, 300, 37, 32, 8, 128, 337, 606);
  for (int v = 0; v < NVARIANTS; v++) {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    klab_err err = {{0}};
    CK(cudaStreamBeginCapture(f.stream, cudaStreamCaptureModeThreadLocal));
    int rc = call(&f, v, f.ws_bytes, &err);
    CK(cudaStreamEndCapture(f.stream, &graph));
    CHECK_MSG(rc == 0, "%s graph capture: %s", variants[v].name, err.msg);
    if (rc) {
      cudaGraphDestroy(graph);
      continue;
    }
    CK(cudaGraphInstantiate(&exec, graph, 0));
    for (int rep = 0; rep < 2; rep++) {
      poison_out(&f);
      CK(cudaGraphLaunch(exec, f.stream));
      CK(cudaStreamSynchronize(f.stream));
      char label[200];
      label_of(&f, variants[v].name, rep ? "(graph replay 2)" : "(graph replay 1)", label, sizeof label);
      check_out(&f, label);
    }
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
  }
  printf("  graph capture and replay: %d variants\n", NVARIANTS);
  fixture_free(&f);
}

static void expect_refusal(int rc, const klab_err *err, const char *what, const char *needle) {
  CHECK_MSG(rc == -1, "%s: accepted (rc %d)", what, rc);
  CHECK_MSG(rc != -1 || strstr(err->msg, needle) != NULL, "%s: message '%s' lacks '%s'", what, err->msg, needle);
}

static void test_refusals(void) {
  fixture f;
  fixture_init(&f, 8, 0, 4, 2, 128, 8, 707);
  const uint16_t *q = f.dq, *k = f.dk, *v = f.dv;
  uint16_t *o = f.dout;
  klab_err err;
  int rc;
  for (int i = 0; i < NVARIANTS; i++) {
    attn_fn fn = variants[i].fn;
    char what[96];
    snprintf(what, sizeof what, "%s HQ %% HKV != 0", variants[i].name);
    err.msg[0] = 0, rc = fn(q, k, v, o, 8, 0, 4, 3, 128, 8, f.dws, f.ws_bytes, f.stream, &err);
    expect_refusal(rc, &err, what, "multiple");
    snprintf(what, sizeof what, "%s T = 0", variants[i].name);
    err.msg[0] = 0, rc = fn(q, k, v, o, 0, 0, 4, 2, 128, 8, f.dws, f.ws_bytes, f.stream, &err);
    expect_refusal(rc, &err, what, "bad shape");
    snprintf(what, sizeof what, "%s cache_stride < P0+T", variants[i].name);
    err.msg[0] = 0, rc = fn(q, k, v, o, 8, 1, 4, 2, 128, 8, f.dws, f.ws_bytes, f.stream, &err);
    expect_refusal(rc, &err, what, "cache_stride");
  }
  err.msg[0] = 0, rc = attn_prefill_optimized(q, k, v, o, 8, 0, 4, 2, 64, 8, NULL, 0, f.stream, &err);
  expect_refusal(rc, &err, "optimized D=64", "D=64");
  err.msg[0] = 0, rc = attn_prefill_optimized(q + 1, k, v, o, 8, 0, 4, 2, 128, 8, NULL, 0, f.stream, &err);
  expect_refusal(rc, &err, "optimized misaligned q", "aligned");
  err.msg[0] = 0, rc = attn_prefill_optimized(q, k, v, o + 4, 8, 0, 4, 2, 128, 8, NULL, 0, f.stream, &err);
  expect_refusal(rc, &err, "optimized misaligned out", "aligned");
  err.msg[0] = 0, rc = attn_prefill_optimized_undo(q, k, v, o, 8, 0, 4, 2, 128, 8, NULL, 0,
                                                   ATTN_PREFILL_UNDO_ROWS128 | ATTN_PREFILL_UNDO_PREFETCH, f.stream, &err);
  expect_refusal(rc, &err, "optimized with two steps undone", "one ATTN_PREFILL_UNDO");
  err.msg[0] = 0, rc = attn_prefill_optimized_undo(q, k, v, o, 8, 0, 4, 2, 128, 8, NULL, 0, ATTN_PREFILL_UNDO_PREFETCH << 1,
                                                   f.stream, &err);
  expect_refusal(rc, &err, "optimized with an unknown undo bit", "one ATTN_PREFILL_UNDO");
  err.msg[0] = 0, rc = attn_prefill_naive(q, k, v, o, 8, 0, 4, 2, 128, 8, NULL, 0, f.stream, &err);
  expect_refusal(rc, &err, "naive without workspace", "workspace");
  const size_t row_bytes = 4 * 8 * sizeof(float);
  err.msg[0] = 0, rc = attn_prefill_naive(q, k, v, o, 8, 0, 4, 2, 128, 8, f.dws, row_bytes - 4, f.stream, &err);
  expect_refusal(rc, &err, "naive workspace below one row", "workspace");
  CHECK(attn_prefill_workspace_bytes(8, 0, 4, 2, 128) == 8 * row_bytes); /* the whole prompt fits the cap */
  CHECK(attn_prefill_workspace_bytes(0, 0, 4, 2, 128) == 0);
  printf("  launcher refusals\n");
  fixture_free(&f);
}

int main(void) {
  char why[256];
  if (!klab_have_gpu(why, sizeof why)) klab_test_skip("test_gpu_attn_prefill", why);
  test_refusals();
  test_partial_cache();
  test_naive_chunks();
  test_graph();
  return klab_test_finish("test_gpu_attn_prefill");
}
