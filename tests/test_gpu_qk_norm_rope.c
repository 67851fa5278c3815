/* qk_norm_rope beyond the gate: the device-position form inside a captured CUDA graph (the engine's decode
 * step: one graph, the position changed in device memory between replays), the out-of-contract device
 * position (NaN in q_out, caches untouched), and the launchers' refusals of bad arguments. Both variants.
 * Skips (exit 77) where there is no GPU. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime_api.h>
#include "harness/bf16.h"
#include "harness/run.h"
#include "kernels/qk_norm_rope/qk_norm_rope.h"
#include "reference/qk_norm_rope.h"
#include "reference/rng.h"
#include "test_util.h"

enum { T = 1, HQ = 4, HKV = 2, D = 128, S = 64, NI = HQ + 2 * HKV };
#define SENTINEL 0x3f80u /* bf16 1.0: what the caches hold before any write */

typedef int (*launcher)(const uint16_t *, const uint16_t *, const uint16_t *, uint16_t *, uint16_t *, uint16_t *,
                        const int32_t *, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, float, float,
                        cudaStream_t, klab_err *);

typedef struct {
  uint16_t *qkv, *qw, *kw, *q_out, *kc, *vc;
  int32_t *p0;
} dev_bufs;

static uint16_t h_qkv[T * NI * D], h_qw[D], h_kw[D];

static void make_inputs(void) {
  for (int i = 0; i < T * NI * D; i++) h_qkv[i] = klab_float_to_bf16(2.0f * (float)klab_rand_uniform(7, (uint64_t)i) - 1.0f);
  for (int i = 0; i < D; i++) {
    h_qw[i] = klab_float_to_bf16(1.0f + 0.2f * (float)klab_rand_uniform(8, (uint64_t)i) - 0.1f);
    h_kw[i] = klab_float_to_bf16(1.0f + 0.2f * (float)klab_rand_uniform(9, (uint64_t)i) - 0.1f);
  }
}

static int close_bf16(uint16_t out, double ref) {
  const double o = klab_bf16_to_float(out);
  return isfinite(o) && fabs(o - ref) <= 1e-3 + 1.6e-2 * fabs(ref);
}

/* The expected q (T x HQ x D) and k (T x HKV x D) at position pos. */
static void expected(int32_t pos, float *q, float *k) {
  for (int h = 0; h < HQ; h++)
    for (int i = 0; i < D; i++) q[h * D + i] = klab_bf16_to_float(h_qkv[h * D + i]);
  for (int h = 0; h < HKV; h++)
    for (int i = 0; i < D; i++) k[h * D + i] = klab_bf16_to_float(h_qkv[(HQ + h) * D + i]);
  ref_qk_norm_rope(q, k, h_qw, h_kw, T, HQ, HKV, D, &pos, (double)KLAB_QWEN3_ROPE_THETA, KLAB_QK_NORM_EPS);
}

static void test_graph_devpos(const char *name, launcher fn, dev_bufs *b) {
  static uint16_t q_out[T * HQ * D], kc[HKV * S * D], vc[HKV * S * D], kc_before[HKV * S * D], vc_before[HKV * S * D];
  static float q_ref[HQ * D], k_ref[HKV * D];
  for (int i = 0; i < HKV * S * D; i++) kc[i] = vc[i] = SENTINEL;
  CHECK(cudaMemcpy(b->kc, kc, sizeof kc, cudaMemcpyHostToDevice) == cudaSuccess);
  CHECK(cudaMemcpy(b->vc, vc, sizeof vc, cudaMemcpyHostToDevice) == cudaSuccess);

  cudaStream_t st;
  CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking) == cudaSuccess);
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  klab_err err = {{0}};
  CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
  int rc = fn(b->qkv, b->qw, b->kw, b->q_out, b->kc, b->vc, b->p0, -1 /* ignored: p0 comes from the device */, T, HQ,
              HKV, D, S, KLAB_QWEN3_ROPE_THETA, KLAB_QK_NORM_EPS, st, &err);
  CHECK(cudaStreamEndCapture(st, &graph) == cudaSuccess);
  CHECK_MSG(rc == 0, "%s: capture launch: %s", name, err.msg);
  CHECK(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);

  /* Positions written in this order; each replay must land in its own row and leave the others alone. */
  const int32_t positions[] = {0, 17, 63, 40};
  int written[S] = {0};
  for (size_t p = 0; p < sizeof positions / sizeof positions[0]; p++) {
    const int32_t pos = positions[p];
    CHECK(cudaMemcpy(b->p0, &pos, sizeof pos, cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(cudaMemset(b->q_out, 0xFF, sizeof q_out) == cudaSuccess); /* NaN poison */
    CHECK(cudaDeviceSynchronize() == cudaSuccess); /* ordered before the non-blocking stream's replay */
    CHECK(cudaGraphLaunch(exec, st) == cudaSuccess);
    CHECK(cudaStreamSynchronize(st) == cudaSuccess);
    written[pos] = 1;
    CHECK(cudaMemcpy(q_out, b->q_out, sizeof q_out, cudaMemcpyDeviceToHost) == cudaSuccess);
    CHECK(cudaMemcpy(kc, b->kc, sizeof kc, cudaMemcpyDeviceToHost) == cudaSuccess);
    CHECK(cudaMemcpy(vc, b->vc, sizeof vc, cudaMemcpyDeviceToHost) == cudaSuccess);
    expected(pos, q_ref, k_ref);
    int bad_q = 0, bad_k = 0, bad_v = 0, bad_untouched = 0;
    for (int i = 0; i < HQ * D; i++) bad_q += !close_bf16(q_out[i], q_ref[i]);
    for (int h = 0; h < HKV; h++)
      for (int s = 0; s < S; s++)
        for (int i = 0; i < D; i++) {
          const int idx = (h * S + s) * D + i;
          if (s == pos) {
            bad_k += !close_bf16(kc[idx], k_ref[h * D + i]);
            bad_v += vc[idx] != h_qkv[(HQ + HKV + h) * D + i]; /* v is copied bit-exactly */
          } else if (!written[s]) {
            bad_untouched += kc[idx] != SENTINEL || vc[idx] != SENTINEL;
          }
        }
    CHECK_MSG(bad_q == 0 && bad_k == 0 && bad_v == 0 && bad_untouched == 0,
              "%s graph replay at pos %d: %d q, %d k, %d v elements wrong, %d untouched cache elements changed", name,
              pos, bad_q, bad_k, bad_v, bad_untouched);
  }

  /* Out-of-contract device positions: q_out becomes NaN, the caches are not written at all. */
  memcpy(kc_before, kc, sizeof kc);
  memcpy(vc_before, vc, sizeof vc);
  const int32_t bad_positions[] = {S, -5, 1 << 30};
  for (size_t p = 0; p < sizeof bad_positions / sizeof bad_positions[0]; p++) {
    CHECK(cudaMemcpy(b->p0, &bad_positions[p], sizeof(int32_t), cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(cudaMemset(b->q_out, 0, sizeof q_out) == cudaSuccess);
    CHECK(cudaGraphLaunch(exec, st) == cudaSuccess);
    CHECK(cudaStreamSynchronize(st) == cudaSuccess);
    CHECK(cudaMemcpy(q_out, b->q_out, sizeof q_out, cudaMemcpyDeviceToHost) == cudaSuccess);
    CHECK(cudaMemcpy(kc, b->kc, sizeof kc, cudaMemcpyDeviceToHost) == cudaSuccess);
    CHECK(cudaMemcpy(vc, b->vc, sizeof vc, cudaMemcpyDeviceToHost) == cudaSuccess);
    int not_nan = 0;
    for (int i = 0; i < HQ * D; i++) not_nan += !isnan(klab_bf16_to_float(q_out[i]));
    CHECK_MSG(not_nan == 0, "%s: position %d outside the cache: %d q_out elements not NaN", name, bad_positions[p], not_nan);
    CHECK_MSG(memcmp(kc, kc_before, sizeof kc) == 0 && memcmp(vc, vc_before, sizeof vc) == 0,
              "%s: position %d outside the cache: the caches were written", name, bad_positions[p]);
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(st);
}

static void expect_refusal(const char *name, launcher fn, dev_bufs *b, const char *what, int64_t p0, int64_t hq,
                           int64_t hkv, int64_t d, int64_t stride, const char *needle) {
  klab_err err = {{0}};
  int rc = fn(b->qkv, b->qw, b->kw, b->q_out, b->kc, b->vc, NULL, p0, T, hq, hkv, d, stride, KLAB_QWEN3_ROPE_THETA,
              KLAB_QK_NORM_EPS, 0, &err);
  CHECK_MSG(rc == -1 && strstr(err.msg, needle), "%s refuses %s (rc %d, message '%s')", name, what, rc, err.msg);
}

static void test_refusals(const char *name, launcher fn, dev_bufs *b) {
  expect_refusal(name, fn, b, "odd D", 0, HQ, HKV, 127, S, "even");
  expect_refusal(name, fn, b, "HQ not a multiple of HKV", 0, 5, 2, D, S, "multiple");
  expect_refusal(name, fn, b, "a host position past the cache", S - T + 1, HQ, HKV, D, S, "outside the cache");
  expect_refusal(name, fn, b, "a negative host position", -1, HQ, HKV, D, S, "outside the cache");
  expect_refusal(name, fn, b, "zero heads", 0, 0, HKV, D, S, "bad shape");
  CHECK(cudaGetLastError() == cudaSuccess); /* a refusal launches nothing */
}

int main(void) {
  char why[256];
  if (!klab_have_gpu(why, sizeof why)) klab_test_skip("test_gpu_qk_norm_rope", why);
  make_inputs();
  dev_bufs b;
  CHECK(cudaMalloc((void **)&b.qkv, sizeof h_qkv) == cudaSuccess);
  CHECK(cudaMalloc((void **)&b.qw, sizeof h_qw) == cudaSuccess);
  CHECK(cudaMalloc((void **)&b.kw, sizeof h_kw) == cudaSuccess);
  CHECK(cudaMalloc((void **)&b.q_out, (size_t)T * HQ * D * 2) == cudaSuccess);
  CHECK(cudaMalloc((void **)&b.kc, (size_t)HKV * S * D * 2) == cudaSuccess);
  CHECK(cudaMalloc((void **)&b.vc, (size_t)HKV * S * D * 2) == cudaSuccess);
  CHECK(cudaMalloc((void **)&b.p0, sizeof(int32_t)) == cudaSuccess);
  CHECK(cudaMemcpy(b.qkv, h_qkv, sizeof h_qkv, cudaMemcpyHostToDevice) == cudaSuccess);
  CHECK(cudaMemcpy(b.qw, h_qw, sizeof h_qw, cudaMemcpyHostToDevice) == cudaSuccess);
  CHECK(cudaMemcpy(b.kw, h_kw, sizeof h_kw, cudaMemcpyHostToDevice) == cudaSuccess);

  test_graph_devpos("naive", qk_norm_rope_naive, &b);
  test_graph_devpos("optimized", qk_norm_rope_optimized, &b);
  test_refusals("naive", qk_norm_rope_naive, &b);
  test_refusals("optimized", qk_norm_rope_optimized, &b);
  expect_refusal("optimized", qk_norm_rope_optimized, &b, "D > 512", 0, HQ, HKV, 514, S, "exceeds 512");

  cudaFree(b.qkv), cudaFree(b.qw), cudaFree(b.kw), cudaFree(b.q_out), cudaFree(b.kc), cudaFree(b.vc), cudaFree(b.p0);
  return klab_test_finish("test_gpu_qk_norm_rope");
}
