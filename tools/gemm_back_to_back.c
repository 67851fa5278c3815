/* gemm_back_to_back: one gemm shape, launched back-to-back and one launch at a time, for `optimized`,
 * cuBLAS and cuBLASLt (docs/ops/gemm.md, "Back-to-back and separated launches").
 *
 * `klab bench` launches the variant under test back-to-back (batches of 64 between host syncs), so a
 * kernel that overlaps the previous launch of itself (e.g. through programmatic dependent launch) shows that
 * overlap in its CUPTI time. This tool measures, on the same inputs (rotated over copies moving > 3x L2):
 *   back-to-back: 200 launches between two events, time per launch;
 *   separated:    200 launches, each between its own two events with a host sync after it (the GPU idles
 *                 before every launch), mean and best of the event times (launch latency included).
 * Usage: gemm_back_to_back [M N K] (default 512 2560 4096: Qwen3-4B o at M = 512). Exit status 0, or 1 with
 * the failing call on stderr. Timing only: correctness is the gate's job (`klab check gemm`). */
#include <stdio.h>
#include <stdlib.h>
#include <cuda_runtime.h>
#include "harness/bf16.h"
#include "kernels/gemm/gemm.h"
#include "kernels/gemv/gemv.h"
#include "reference/rng.h"

typedef int (*gemm_fn)(const uint16_t *, const uint16_t *, uint16_t *, int64_t, int64_t, int64_t, void *, size_t, cudaStream_t,
                       klab_err *);

#define CK(call)                                                                                    \
  do {                                                                                              \
    cudaError_t e_ = (call);                                                                        \
    if (e_ != cudaSuccess) {                                                                        \
      fprintf(stderr, "gemm_back_to_back: %s failed: %s (%s:%d)\n", #call, cudaGetErrorString(e_), __FILE__, __LINE__); \
      return 1;                                                                                     \
    }                                                                                               \
  } while (0)

enum { LAUNCHES = 200, MAX_COPIES = 64 };

/* The inputs every launch rotates over. */
typedef struct {
  uint16_t *A[MAX_COPIES], *W[MAX_COPIES], *C;
  int copies;
  int64_t M, N, K;
  void *ws;
  size_t ws_bytes;
  cudaStream_t st;
} gemm_inputs;

/* Launch i of `name` (input copy i % copies); 0, or 1 with the failing call on stderr. */
static int launch(const gemm_inputs *in, gemm_fn fn, const char *name, int i) {
  klab_err err = {{0}};
  if (fn(in->A[i % in->copies], in->W[i % in->copies], in->C, in->M, in->N, in->K, in->ws, in->ws_bytes, in->st, &err) == 0) return 0;
  fprintf(stderr, "gemm_back_to_back: %s: %s\n", name, err.msg);
  return 1;
}

int main(int argc, char **argv) {
  int64_t M = 512, N = 2560, K = 4096;
  if (argc == 4) {
    M = atoll(argv[1]), N = atoll(argv[2]), K = atoll(argv[3]);
  } else if (argc != 1) {
    fprintf(stderr, "usage: gemm_back_to_back [M N K]\n");
    return 2;
  }
  if (M < 1 || N < 1 || K < 1 || K % 8 != 0) {
    fprintf(stderr, "gemm_back_to_back: M, N, K must be >= 1 and K a multiple of 8 (got %lld %lld %lld)\n", (long long)M,
            (long long)N, (long long)K);
    return 2;
  }
  int dev = 0, l2 = 0;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
  const size_t bytes_a = (size_t)(M * K) * 2, bytes_w = (size_t)(N * K) * 2;
  int copies = (int)(3.0 * l2 / (double)(bytes_a + bytes_w)) + 1;
  if (copies > MAX_COPIES) copies = MAX_COPIES;

  /* Random bf16 in the gate's ranges (A uniform in [-1, 1), W in [-0.02, 0.02)): zeros would draw less power. */
  uint16_t *host = malloc(bytes_a > bytes_w ? bytes_a : bytes_w);
  if (!host) return fprintf(stderr, "gemm_back_to_back: out of host memory\n"), 1;
  gemm_inputs in = {.copies = copies, .M = M, .N = N, .K = K, .ws_bytes = gemm_workspace_bytes(M, N, K)};
  for (int c = 0; c < copies; c++) {
    for (int64_t i = 0; i < M * K; i++) host[i] = klab_float_to_bf16(2.0f * klab_rand_uniform_f(1 + (uint64_t)c, (uint64_t)i) - 1.0f);
    CK(cudaMalloc((void **)&in.A[c], bytes_a));
    CK(cudaMemcpy(in.A[c], host, bytes_a, cudaMemcpyHostToDevice));
    for (int64_t i = 0; i < N * K; i++) host[i] = klab_float_to_bf16(0.04f * klab_rand_uniform_f(1001 + (uint64_t)c, (uint64_t)i) - 0.02f);
    CK(cudaMalloc((void **)&in.W[c], bytes_w));
    CK(cudaMemcpy(in.W[c], host, bytes_w, cudaMemcpyHostToDevice));
  }
  free(host);
  CK(cudaMalloc((void **)&in.C, (size_t)(M * N) * 2));
  CK(cudaMalloc(&in.ws, in.ws_bytes));
  CK(cudaStreamCreate(&in.st));
  cudaStream_t st = in.st;
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));

  const gemm_fn fns[3] = {gemm_optimized, gemv_cublas, gemv_cublaslt};
  const char *names[3] = {"optimized", "cublas", "cublaslt"};
  printf("gemm M=%lld N=%lld K=%lld, %d input copies, %d launches per measurement; us per launch\n", (long long)M, (long long)N,
         (long long)K, copies, LAUNCHES);
  for (int round = 0; round < 3; round++) {
    for (int f = 0; f < 3; f++) {
      for (int i = 0; i < 20; i++) /* warm-up: module load, cuBLASLt plan, clocks */
        if (launch(&in, fns[f], names[f], i)) return 1;
      CK(cudaStreamSynchronize(st));
      CK(cudaEventRecord(e0, st));
      for (int i = 0; i < LAUNCHES; i++)
        if (launch(&in, fns[f], names[f], i)) return 1;
      CK(cudaEventRecord(e1, st));
      CK(cudaEventSynchronize(e1));
      float ms = 0.0f;
      CK(cudaEventElapsedTime(&ms, e0, e1));
      double sum = 0.0, best = 1e30;
      for (int i = 0; i < LAUNCHES; i++) {
        CK(cudaEventRecord(e0, st));
        if (launch(&in, fns[f], names[f], i)) return 1;
        CK(cudaEventRecord(e1, st));
        CK(cudaEventSynchronize(e1));
        float one = 0.0f;
        CK(cudaEventElapsedTime(&one, e0, e1));
        sum += one * 1e3;
        if (one * 1e3 < best) best = one * 1e3;
      }
      printf("round %d %-10s back-to-back %8.2f   separated mean %8.2f best %8.2f\n", round + 1, names[f], ms * 1e3 / LAUNCHES,
             sum / LAUNCHES, best);
    }
  }
  for (int c = 0; c < copies; c++) cudaFree(in.A[c]), cudaFree(in.W[c]);
  cudaFree(in.C), cudaFree(in.ws);
  return 0;
}
