/* attn_decode beyond the gate's shapes (where cache_stride = ctx): a cache larger than ctx whose positions
 * past ctx hold NaN (they must not reach the result), ctx read on the device below cache_stride, a
 * captured CUDA graph replayed while the device ctx changes (the engine's decode), device ctx 0 and past
 * the cache, the launchers' refusals, and the engine's _nomemset entry (zeroed workspace kept zero, launched
 * back to back in a graph with programmatic dependent launch). Every variant is compared with the float64 reference under the
 * gate's tolerance. Skips (exit 77) where there is no GPU. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime_api.h>
#include "harness/bf16.h"
#include "harness/gate.h"
#include "harness/gen.h"
#include "harness/run.h"
#include "kernels/attn_decode/attn_decode.h"
#include "kernels/common/pdl.h"
#include "reference/attention.h"
#include "test_util.h"

typedef int (*attn_fn)(const uint16_t *, const uint16_t *, const uint16_t *, uint16_t *, const int32_t *, int64_t,
                       int64_t, int64_t, int64_t, int64_t, void *, size_t, cudaStream_t, klab_err *);
static const struct {
  const char *name;
  attn_fn fn;
} variants[] = {{"naive", attn_decode_naive}, {"optimized", attn_decode_optimized}};
enum { NVARIANTS = sizeof variants / sizeof variants[0] };

#define BF16_NAN 0x7FC0u

typedef struct {
  int64_t HQ, HKV, D, stride;
  int64_t nq, nc;
  uint16_t *q, *k, *v;       /* pristine host values */
  uint16_t *k_up, *v_up;     /* what is uploaded: NaN after the valid positions */
  float *fq, *fk, *fv, *fout;
  double *ref;
  uint16_t *out;
  void *dq, *dk, *dv, *dout, *dws;
  int32_t *dctx;
  size_t ws_bytes;
  cudaStream_t stream;
} fixture;

static void fixture_init(fixture *f, int64_t HQ, int64_t HKV, int64_t D, int64_t stride, uint64_t seed) {
  memset(f, 0, sizeof *f);
  f->HQ = HQ, f->HKV = HKV, f->D = D, f->stride = stride;
  f->nq = HQ * D, f->nc = HKV * stride * D;
  f->q = klab_test_xmalloc((size_t)f->nq * 2), f->out = klab_test_xmalloc((size_t)f->nq * 2);
  f->k = klab_test_xmalloc((size_t)f->nc * 2), f->v = klab_test_xmalloc((size_t)f->nc * 2);
  f->k_up = klab_test_xmalloc((size_t)f->nc * 2), f->v_up = klab_test_xmalloc((size_t)f->nc * 2);
  f->fq = klab_test_xmalloc((size_t)f->nq * sizeof(float)), f->fout = klab_test_xmalloc((size_t)f->nq * sizeof(float));
  f->fk = klab_test_xmalloc((size_t)f->nc * sizeof(float)), f->fv = klab_test_xmalloc((size_t)f->nc * sizeof(float));
  f->ref = klab_test_xmalloc((size_t)f->nq * sizeof(double));
  klab_fill_host(f->q, KLAB_DT_BF16, f->nq, klab_tensor_seed(seed, 0), KLAB_DIST_OUTLIERS, 1.0f, 0.0f);
  klab_fill_host(f->k, KLAB_DT_BF16, f->nc, klab_tensor_seed(seed, 1), KLAB_DIST_NORMAL, 1.0f, 0.0f);
  klab_fill_host(f->v, KLAB_DT_BF16, f->nc, klab_tensor_seed(seed, 2), KLAB_DIST_NORMAL, 1.0f, 0.0f);
  for (int64_t i = 0; i < f->nq; i++) f->fq[i] = klab_bf16_to_float(f->q[i]);
  for (int64_t i = 0; i < f->nc; i++) f->fk[i] = klab_bf16_to_float(f->k[i]), f->fv[i] = klab_bf16_to_float(f->v[i]);
  CK(cudaStreamCreateWithFlags(&f->stream, cudaStreamNonBlocking));
  CK(cudaMalloc(&f->dq, (size_t)f->nq * 2));
  CK(cudaMalloc(&f->dout, (size_t)f->nq * 2));
  CK(cudaMalloc(&f->dk, (size_t)f->nc * 2));
  CK(cudaMalloc(&f->dv, (size_t)f->nc * 2));
  CK(cudaMalloc((void **)&f->dctx, sizeof(int32_t)));
  f->ws_bytes = attn_decode_workspace_bytes(HQ, HKV, D, stride);
  CK(cudaMalloc(&f->dws, f->ws_bytes ? f->ws_bytes : 16));
  /* Garbage in the workspace: the variants must not depend on its initial contents. */
  CK(cudaMemset(f->dws, 0xA5, f->ws_bytes ? f->ws_bytes : 16));
  CK(cudaDeviceSynchronize()); /* the garbage is in place before the test's non-blocking stream runs */
  CK(cudaMemcpy(f->dq, f->q, (size_t)f->nq * 2, cudaMemcpyHostToDevice));
}

static void fixture_free(fixture *f) {
  free(f->q), free(f->out), free(f->k), free(f->v), free(f->k_up), free(f->v_up);
  free(f->fq), free(f->fout), free(f->fk), free(f->fv), free(f->ref);
  cudaFree(f->dq), cudaFree(f->dout), cudaFree(f->dk), cudaFree(f->dv), cudaFree(f->dctx), cudaFree(f->dws);
  cudaStreamDestroy(f->stream);
}

/* Upload the cache with positions >= valid replaced by NaN, and compute the reference for ctx = valid. */
static void prepare(fixture *f, int64_t valid) {
  for (int64_t h = 0; h < f->HKV; h++)
    for (int64_t p = 0; p < f->stride; p++)
      for (int64_t d = 0; d < f->D; d++) {
        int64_t i = (h * f->stride + p) * f->D + d;
        f->k_up[i] = p < valid ? f->k[i] : BF16_NAN;
        f->v_up[i] = p < valid ? f->v[i] : BF16_NAN;
      }
  CK(cudaMemcpy(f->dk, f->k_up, (size_t)f->nc * 2, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(f->dv, f->v_up, (size_t)f->nc * 2, cudaMemcpyHostToDevice));
  if (valid > 0) {
    ref_attention(f->fq, f->fk, f->fv, f->fout, 1, valid - 1, f->HQ, f->HKV, f->D, f->stride);
    for (int64_t i = 0; i < f->nq; i++) f->ref[i] = f->fout[i];
  } else {
    for (int64_t i = 0; i < f->nq; i++) f->ref[i] = 0.0;
  }
}

/* On the test's own stream: a legacy-stream memset is not ordered with a non-blocking stream's work. */
static void poison_out(fixture *f) {
  CK(cudaMemsetAsync(f->dout, 0xFF, (size_t)f->nq * 2, f->stream));
  CK(cudaStreamSynchronize(f->stream));
}

/* Download out and compare with f->ref; label says which case. */
static void check_out(fixture *f, const char *label) {
  CK(cudaMemcpy(f->out, f->dout, (size_t)f->nq * 2, cudaMemcpyDeviceToHost));
  klab_tolerance tol = klab_tolerance_for("attn_decode", KLAB_DT_BF16);
  klab_cmp c;
  int ok = klab_compare(f->out, KLAB_DT_BF16, f->ref, f->nq, tol, &c);
  char what[256];
  klab_cmp_describe(&c, &tol, what, sizeof what);
  CHECK_MSG(ok, "%s: %s", label, what);
}

static void check_zero_out(fixture *f, const char *label) {
  CK(cudaMemcpy(f->out, f->dout, (size_t)f->nq * 2, cudaMemcpyDeviceToHost));
  int64_t bad = 0;
  for (int64_t i = 0; i < f->nq; i++) bad += klab_bf16_to_float(f->out[i]) != 0.0f;
  CHECK_MSG(bad == 0, "%s: %lld of %lld elements not zero", label, (long long)bad, (long long)f->nq);
}

static int call(fixture *f, int v, const int32_t *ctx_dev, int64_t ctx, klab_err *err) {
  return variants[v].fn(f->dq, f->dk, f->dv, f->dout, ctx_dev, ctx, f->HQ, f->HKV, f->D, f->stride, f->dws, f->ws_bytes,
                        f->stream, err);
}

/* Host ctx and device ctx, cache_stride > ctx, NaN after ctx. */
static void test_partial_cache(void) {
  static const int64_t shapes[][4] = {{32, 8, 128, 4500}, {64, 8, 128, 700}, {40, 8, 64, 1000}, {6, 6, 128, 300}, {16, 1, 128, 200}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    fixture f;
    fixture_init(&f, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], 77 + s);
    const int64_t ctxs[] = {1, 2, 63, 65, f.stride / 2 + 1, f.stride - 1, f.stride};
    for (size_t c = 0; c < sizeof ctxs / sizeof ctxs[0]; c++) {
      prepare(&f, ctxs[c]);
      int32_t ctx32 = (int32_t)ctxs[c];
      CK(cudaMemcpy(f.dctx, &ctx32, sizeof ctx32, cudaMemcpyHostToDevice));
      for (int v = 0; v < NVARIANTS; v++)
        for (int dev = 0; dev < 2; dev++) {
          char label[160];
          snprintf(label, sizeof label, "%s HQ=%lld HKV=%lld D=%lld stride=%lld ctx=%lld (%s ctx)", variants[v].name,
                   (long long)f.HQ, (long long)f.HKV, (long long)f.D, (long long)f.stride, (long long)ctxs[c],
                   dev ? "device" : "host");
          poison_out(&f);
          klab_err err = {{0}};
          int rc = call(&f, v, dev ? f.dctx : NULL, ctxs[c], &err);
          CHECK_MSG(rc == 0, "%s: %s", label, err.msg);
          if (rc) continue;
          CK(cudaStreamSynchronize(f.stream));
          check_out(&f, label);
        }
    }
    printf("  partial cache HQ=%lld HKV=%lld D=%lld stride=%lld: %zu contexts x %d variants x host/device ctx\n",
           (long long)f.HQ, (long long)f.HKV, (long long)f.D, (long long)f.stride, sizeof ctxs / sizeof ctxs[0], NVARIANTS);
    fixture_free(&f);
  }
}

/* The engine's decode: one captured graph, replayed while the device ctx moves (up and down). */
static void test_graph_replay(void) {
  fixture f;
  fixture_init(&f, 32, 8, 128, 5000, 4242);
  for (int v = 0; v < NVARIANTS; v++) {
    int32_t ctx32 = 1;
    CK(cudaMemcpy(f.dctx, &ctx32, sizeof ctx32, cudaMemcpyHostToDevice));
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    klab_err err = {{0}};
    CK(cudaStreamBeginCapture(f.stream, cudaStreamCaptureModeThreadLocal));
    int rc = call(&f, v, f.dctx, 1, &err);
    CK(cudaStreamEndCapture(f.stream, &graph));
    CHECK_MSG(rc == 0, "%s graph capture: %s", variants[v].name, err.msg);
    if (rc) {
      cudaGraphDestroy(graph);
      continue;
    }
    CK(cudaGraphInstantiate(&exec, graph, 0));
    const int64_t ctxs[] = {4500, 1, 777, 5000, 64, 4096};
    for (size_t c = 0; c < sizeof ctxs / sizeof ctxs[0]; c++) {
      prepare(&f, ctxs[c]);
      ctx32 = (int32_t)ctxs[c];
      CK(cudaMemcpy(f.dctx, &ctx32, sizeof ctx32, cudaMemcpyHostToDevice));
      poison_out(&f);
      CK(cudaGraphLaunch(exec, f.stream));
      CK(cudaStreamSynchronize(f.stream));
      char label[128];
      snprintf(label, sizeof label, "%s graph replay ctx=%lld of stride %lld", variants[v].name, (long long)ctxs[c],
               (long long)f.stride);
      check_out(&f, label);
    }
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    printf("  graph replay %s: 6 device contexts\n", variants[v].name);
  }
  fixture_free(&f);
}

/* Device ctx 0 writes zeros; a device ctx past the cache is clamped to it (never read past the cache). */
static void test_device_ctx_edges(void) {
  fixture f;
  fixture_init(&f, 32, 8, 128, 300, 99);
  for (int v = 0; v < NVARIANTS; v++) {
    klab_err err = {{0}};
    int32_t ctx32 = 0;
    prepare(&f, 0);
    CK(cudaMemcpy(f.dctx, &ctx32, sizeof ctx32, cudaMemcpyHostToDevice));
    poison_out(&f);
    int rc = call(&f, v, f.dctx, 1, &err);
    CHECK_MSG(rc == 0, "%s device ctx 0: %s", variants[v].name, err.msg);
    CK(cudaStreamSynchronize(f.stream));
    if (!rc) check_zero_out(&f, variants[v].name);

    prepare(&f, f.stride);
    ctx32 = (int32_t)f.stride + 1000;
    CK(cudaMemcpy(f.dctx, &ctx32, sizeof ctx32, cudaMemcpyHostToDevice));
    poison_out(&f);
    rc = call(&f, v, f.dctx, 1, &err);
    CHECK_MSG(rc == 0, "%s device ctx past the cache: %s", variants[v].name, err.msg);
    CK(cudaStreamSynchronize(f.stream));
    char label[96];
    snprintf(label, sizeof label, "%s device ctx %d clamped to stride %lld", variants[v].name, (int)ctx32, (long long)f.stride);
    if (!rc) check_out(&f, label);
  }
  fixture_free(&f);
}

/* attn_decode_optimized_nomemset: the workspace is zeroed once, then every launch (host and device ctx, and
 * three back-to-back launches in one graph captured with programmatic dependent launch) must leave the
 * arrival counters zero for the next; a counter left behind would make the next launch merge too early. */
static void test_nomemset(void) {
  fixture f;
  fixture_init(&f, 32, 8, 128, 4600, 515);
  CK(cudaMemset(f.dws, 0, f.ws_bytes));
  CK(cudaDeviceSynchronize());
  const int64_t ctxs[] = {4600, 3, 1500, 4096, 64, 2049};
  int launches = 0;
  for (size_t c = 0; c < sizeof ctxs / sizeof ctxs[0]; c++) {
    prepare(&f, ctxs[c]);
    int32_t ctx32 = (int32_t)ctxs[c];
    CK(cudaMemcpy(f.dctx, &ctx32, sizeof ctx32, cudaMemcpyHostToDevice));
    for (int mode = 0; mode < 3; mode++) { /* host ctx, device ctx, graph of three launches with PDL */
      char label[160];
      snprintf(label, sizeof label, "optimized_nomemset ctx=%lld (%s)", (long long)ctxs[c],
               mode == 0 ? "host ctx" : mode == 1 ? "device ctx" : "graph, 3 launches, PDL");
      poison_out(&f);
      klab_err err = {{0}};
      int rc;
      if (mode < 2) {
        rc = attn_decode_optimized_nomemset(f.dq, f.dk, f.dv, f.dout, mode ? f.dctx : NULL, ctxs[c], f.HQ, f.HKV, f.D,
                                            f.stride, f.dws, f.ws_bytes, f.stream, &err);
        launches++;
      } else {
        cudaGraph_t graph;
        cudaGraphExec_t exec;
        CK(cudaStreamBeginCapture(f.stream, cudaStreamCaptureModeThreadLocal));
        const int was = klab_pdl_set(1);
        rc = 0;
        for (int i = 0; i < 3 && !rc; i++)
          rc = attn_decode_optimized_nomemset(f.dq, f.dk, f.dv, f.dout, f.dctx, 1, f.HQ, f.HKV, f.D, f.stride, f.dws,
                                              f.ws_bytes, f.stream, &err);
        klab_pdl_set(was);
        CK(cudaStreamEndCapture(f.stream, &graph));
        if (!rc) {
          CK(cudaGraphInstantiate(&exec, graph, 0));
          CK(cudaGraphLaunch(exec, f.stream));
          CK(cudaGraphLaunch(exec, f.stream));
          CK(cudaStreamSynchronize(f.stream));
          cudaGraphExecDestroy(exec);
          launches += 6;
        }
        cudaGraphDestroy(graph);
      }
      CHECK_MSG(rc == 0, "%s: %s", label, err.msg);
      if (rc) continue;
      CK(cudaStreamSynchronize(f.stream));
      check_out(&f, label);
    }
  }
  /* The counters sit at the start of the workspace, one unsigned per KV-head tile (at most HQ tiles). */
  unsigned counters[32];
  CK(cudaMemcpy(counters, f.dws, sizeof counters, cudaMemcpyDeviceToHost));
  int nonzero = 0;
  for (int i = 0; i < 32; i++) nonzero += counters[i] != 0;
  CHECK_MSG(nonzero == 0, "optimized_nomemset left %d arrival counters non-zero after %d launches", nonzero, launches);
  printf("  optimized_nomemset: %d launches over %zu contexts, counters zero after\n", launches, sizeof ctxs / sizeof ctxs[0]);
  fixture_free(&f);
}

/* Bad arguments are refused with a message before anything runs. */
static void test_refusals(void) {
  fixture f;
  fixture_init(&f, 32, 8, 128, 256, 5);
  for (int v = 0; v < NVARIANTS; v++) {
    klab_err err;
    const attn_fn fn = variants[v].fn;
#define REFUSED(expr, what)                                                                                 \
  do {                                                                                                      \
    err.msg[0] = 0;                                                                                         \
    int rc_ = (expr);                                                                                       \
    CHECK_MSG(rc_ == -1 && err.msg[0] != 0, "%s must refuse %s (rc %d, '%s')", variants[v].name, what, rc_, err.msg); \
  } while (0)
    REFUSED(fn(f.dq, f.dk, f.dv, f.dout, NULL, 10, 30, 8, 128, 256, f.dws, f.ws_bytes, f.stream, &err), "HQ % HKV != 0");
    REFUSED(fn(f.dq, f.dk, f.dv, f.dout, NULL, 257, 32, 8, 128, 256, f.dws, f.ws_bytes, f.stream, &err), "ctx > cache_stride");
    REFUSED(fn(f.dq, f.dk, f.dv, f.dout, NULL, 0, 32, 8, 128, 256, f.dws, f.ws_bytes, f.stream, &err), "host ctx 0");
    REFUSED(fn(f.dq, f.dk, f.dv, f.dout, NULL, 10, 32, 0, 128, 256, f.dws, f.ws_bytes, f.stream, &err), "HKV 0");
    REFUSED(fn(NULL, f.dk, f.dv, f.dout, NULL, 10, 32, 8, 128, 256, f.dws, f.ws_bytes, f.stream, &err), "a NULL q");
    REFUSED(fn(f.dq, f.dk, f.dv, f.dout, NULL, 10, 32, 8, 1024, 256, f.dws, f.ws_bytes, f.stream, &err), "D 1024");
  }
  klab_err err;
  const int v = 1; /* optimized only */
  const attn_fn fn = attn_decode_optimized;
  REFUSED(fn(f.dq, f.dk, f.dv, f.dout, NULL, 10, 32, 8, 96, 256, f.dws, f.ws_bytes, f.stream, &err), "D 96");
  REFUSED(fn((const uint16_t *)f.dq + 1, f.dk, f.dv, f.dout, NULL, 10, 32, 8, 128, 255, f.dws, f.ws_bytes, f.stream, &err),
          "a misaligned q");
  REFUSED(fn(f.dq, f.dk, f.dv, f.dout, NULL, 256, 32, 8, 128, 256, f.dws, 64, f.stream, &err), "a small workspace");
  REFUSED(fn(f.dq, f.dk, f.dv, f.dout, NULL, 256, 32, 8, 128, 256, NULL, 0, f.stream, &err), "a NULL workspace");
#undef REFUSED
  CK(cudaStreamSynchronize(f.stream));
  CHECK_MSG(cudaGetLastError() == cudaSuccess, "refusals left a CUDA error behind");
  fixture_free(&f);
}

static void test_workspace_bytes(void) {
  CHECK(attn_decode_workspace_bytes(30, 8, 128, 4096) == 0);
  CHECK(attn_decode_workspace_bytes(32, 8, 128, 0) == 0);
  size_t prev = 0;
  for (int64_t ctx = 1; ctx <= 65536; ctx *= 2) {
    size_t b = attn_decode_workspace_bytes(32, 8, 128, ctx);
    CHECK_MSG(b > 0 && b >= prev, "workspace for ctx %lld: %zu (previous %zu)", (long long)ctx, b, prev);
    prev = b;
  }
}

int main(void) {
  char why[256];
  test_workspace_bytes(); /* host-only: runs (and can fail) without a GPU */
  if (!klab_have_gpu(why, sizeof why)) {
    if (klab_test_failures) return klab_test_finish("test_gpu_attn_decode");
    klab_test_skip("test_gpu_attn_decode", why);
  }
  test_refusals();
  test_partial_cache();
  test_device_ctx_edges();
  test_graph_replay();
  test_nomemset();
  return klab_test_finish("test_gpu_attn_decode");
}
