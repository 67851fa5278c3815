/* GPU tests of the argmax launchers beyond the harness gate (which runs fp32 on random logits): the bf16
 * path, ties (many equal maxima, across blocks: the lowest index must win), NaN (the first NaN wins, also
 * over +inf), -inf everywhere, N = 1, the vocabulary size, N not a multiple of 4 or 8, unaligned x (the
 * scalar path), a garbage-filled workspace reused without re-zeroing, CUDA-graph replay, and rejected
 * arguments. Every answer is checked against ref_argmax on the values as stored (bf16 -> float).
 * Skips (exit 77) where there is no GPU. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime_api.h>
#include "harness/bf16.h"
#include "harness/run.h"
#include "kernels/argmax/argmax.h"
#include "reference/argmax.h"
#include "reference/rng.h"
#include "test_util.h"

typedef int (*argmax_fn)(const void *, klab_dtype, int64_t, int32_t *, void *, size_t, cudaStream_t, klab_err *);

static const struct {
  const char *name;
  argmax_fn fn;
} variants[] = {{"naive", argmax_naive}, {"optimized", argmax_optimized}};
enum { NVARIANTS = 2 };

enum { MAX_N = (1 << 20) + 3, OFFSET_ELEMS = 1 }; /* the largest N tested; unaligned runs start 1 element in */

static void *d_x;         /* MAX_N + OFFSET_ELEMS elements of 4 bytes */
static int32_t *d_index;
static void *d_ws;
static size_t ws_bytes;
static float *h_vals;     /* the test values, as float */
static float *h_stored;   /* the values as stored (bf16-rounded for bf16) */
static void *h_raw;       /* the bytes uploaded */

/* Upload h_vals[0..N) as dtype at element offset `offset` of d_x, run the variant, return its index (-1 on a
 * launcher error, -2 on a CUDA error). h_stored gets the values as the kernel sees them. */
static int64_t run_case(int v, klab_dtype dt, int64_t N, int offset) {
  size_t esz = dt == KLAB_DT_BF16 ? 2 : 4;
  klab_test_store_values(dt == KLAB_DT_BF16, h_vals, N, h_raw, h_stored);
  char *x = (char *)d_x + (size_t)offset * esz;
  if (cudaMemcpy(x, h_raw, (size_t)N * esz, cudaMemcpyHostToDevice) != cudaSuccess) return -2;
  if (cudaMemset(d_index, 0xFF, sizeof *d_index) != cudaSuccess) return -2; /* poison: -1 */
  klab_err err = {{0}};
  if (variants[v].fn(x, dt, N, d_index, d_ws, ws_bytes, 0, &err)) {
    fprintf(stderr, "  %s: %s\n", variants[v].name, err.msg);
    return -1;
  }
  int32_t got = -1;
  if (cudaMemcpy(&got, d_index, sizeof got, cudaMemcpyDeviceToHost) != cudaSuccess) return -2;
  return got;
}

/* Runs every variant, both dtypes, aligned and unaligned, and checks against the reference. */
static void check_all(const char *what, int64_t N) {
  for (int v = 0; v < NVARIANTS; v++)
    for (int d = 0; d < 2; d++) {
      klab_dtype dt = d ? KLAB_DT_BF16 : KLAB_DT_F32;
      for (int offset = 0; offset <= OFFSET_ELEMS; offset += OFFSET_ELEMS) {
        int64_t got = run_case(v, dt, N, offset);
        int64_t want = ref_argmax(h_stored, N);
        CHECK_MSG(got == want, "%s N=%lld %s %s offset %d: got %lld, want %lld", what, (long long)N, variants[v].name,
                  klab_dtype_name(dt), offset, (long long)got, (long long)want);
      }
    }
}

static float normal_value(uint64_t seed, int64_t i) {
  float u1 = klab_rand_uniform_f(seed, 2 * (uint64_t)i) + 5.9604645e-8f, u2 = klab_rand_uniform_f(seed, 2 * (uint64_t)i + 1);
  return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

static void fill_normal(int64_t N, uint64_t seed) {
  for (int64_t i = 0; i < N; i++) h_vals[i] = normal_value(seed, i);
}

static const int64_t sizes[] = {1, 2, 3, 7, 8, 9, 33, 1000, 4097, 8191, 8192, 8193, 8199, 8200, 65537, 151936, 151937, MAX_N};
enum { NSIZES = sizeof sizes / sizeof sizes[0] };

static void test_patterns(void) {
  for (int s = 0; s < NSIZES; s++) {
    const int64_t N = sizes[s];

    fill_normal(N, 100 + (uint64_t)s);
    check_all("random normal", N);

    /* Many equal maxima spread over the whole range (so over many blocks): the lowest index must win. */
    fill_normal(N, 200 + (uint64_t)s);
    for (int64_t i = N - 1; i >= 0; i -= 997) h_vals[i] = 100.0f;
    if (N > 5) h_vals[N / 3] = 100.0f, h_vals[N - 1] = 100.0f;
    check_all("ties spread", N);

    /* Two equal maxima: the last element and one in the middle (the tail must not win). */
    fill_normal(N, 300 + (uint64_t)s);
    h_vals[N - 1] = 50.0f;
    h_vals[N / 2] = 50.0f;
    check_all("tie middle+last", N);

    /* The maximum only at the last element (the N % 4 / N % 8 tail), then only at index 0. */
    fill_normal(N, 400 + (uint64_t)s);
    h_vals[N - 1] = 60.0f;
    check_all("max at last", N);
    fill_normal(N, 500 + (uint64_t)s);
    h_vals[0] = 60.0f;
    check_all("max at first", N);

    /* All equal: 0. All -inf: 0. Zeros with -0 first: equal values, 0. */
    for (int64_t i = 0; i < N; i++) h_vals[i] = 1.0f;
    check_all("all equal", N);
    for (int64_t i = 0; i < N; i++) h_vals[i] = -INFINITY;
    check_all("all -inf", N);
    for (int64_t i = 0; i < N; i++) h_vals[i] = 0.0f;
    h_vals[0] = -0.0f;
    check_all("signed zeros", N);

    /* -inf everywhere but one finite value at the end. */
    for (int64_t i = 0; i < N; i++) h_vals[i] = -INFINITY;
    h_vals[N - 1] = -1e30f;
    check_all("-inf but last", N);

    /* NaN: the first NaN wins over later NaNs, over +inf and over larger numbers. */
    fill_normal(N, 600 + (uint64_t)s);
    h_vals[N - 1] = NAN;
    if (N > 2) h_vals[N / 2] = NAN, h_vals[N / 4] = INFINITY, h_vals[0] = 1e30f;
    check_all("NaN", N);
    fill_normal(N, 700 + (uint64_t)s);
    for (int64_t i = N - 1; i >= 0; i -= 1013) h_vals[i] = -NAN; /* sign bit set: still NaN */
    check_all("many NaN", N);

    /* +inf at several places, lowest wins. */
    fill_normal(N, 800 + (uint64_t)s);
    for (int64_t i = N - 1; i >= N / 3; i -= 501) h_vals[i] = INFINITY;
    check_all("+inf ties", N);

    /* bf16-coarse values: few distinct values, many natural ties after rounding. */
    for (int64_t i = 0; i < N; i++) h_vals[i] = (float)(klab_rand_u64(900 + (uint64_t)s, (uint64_t)i) % 5);
    check_all("5 distinct values", N);
  }
}

/* The workspace starts as garbage (the launcher zeroes the ticket) and is reused without re-zeroing. */
static void test_workspace_garbage(void) {
  const int64_t N = 151936;
  for (int rep = 0; rep < 3; rep++) {
    CHECK(cudaMemset(d_ws, 0xA5 + rep, ws_bytes) == cudaSuccess);
    for (int k = 0; k < 4; k++) {
      fill_normal(N, 1000 + (uint64_t)(rep * 10 + k));
      h_vals[(k * 7919) % N] = 77.0f;
      int64_t got = run_case(1, KLAB_DT_F32, N, 0);
      CHECK_MSG(got == ref_argmax(h_stored, N), "garbage workspace rep %d call %d: got %lld", rep, k, (long long)got);
    }
  }
}

/* Captured once into a CUDA graph (memset + kernel), replayed on new data. */
static void test_graph(void) {
  const int64_t N = 151936;
  cudaStream_t st;
  CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking) == cudaSuccess);
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  klab_err err = {{0}};
  CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
  int rc = argmax_optimized(d_x, KLAB_DT_F32, N, d_index, d_ws, ws_bytes, st, &err);
  CHECK(cudaStreamEndCapture(st, &graph) == cudaSuccess);
  CHECK_MSG(rc == 0, "capture: %s", err.msg);
  CHECK(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
  for (int k = 0; k < 5; k++) {
    fill_normal(N, 2000 + (uint64_t)k);
    h_vals[(k * 30011) % N] = 99.0f;
    CHECK(cudaMemcpyAsync(d_x, h_vals, (size_t)N * 4, cudaMemcpyHostToDevice, st) == cudaSuccess); /* ordered before the replay */
    CHECK(cudaGraphLaunch(exec, st) == cudaSuccess);
    CHECK(cudaStreamSynchronize(st) == cudaSuccess);
    int32_t got = -1;
    CHECK(cudaMemcpy(&got, d_index, sizeof got, cudaMemcpyDeviceToHost) == cudaSuccess);
    CHECK_MSG(got == ref_argmax(h_vals, N), "graph replay %d: got %d", k, got);
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(st);
}

static void test_rejections(void) {
  klab_err err = {{0}};
  for (int v = 0; v < NVARIANTS; v++) {
    CHECK(variants[v].fn(d_x, KLAB_DT_F32, 0, d_index, d_ws, ws_bytes, 0, &err) == -1);
    CHECK(variants[v].fn(d_x, KLAB_DT_I32, 100, d_index, d_ws, ws_bytes, 0, &err) == -1);
    CHECK(variants[v].fn(NULL, KLAB_DT_F32, 100, d_index, d_ws, ws_bytes, 0, &err) == -1);
    CHECK(variants[v].fn((char *)d_x + 1, KLAB_DT_F32, 100, d_index, d_ws, ws_bytes, 0, &err) == -1);
  }
  /* The optimized variant needs its workspace above KLAB_ARGMAX_ONE_BLOCK_MAX_N; none below. */
  CHECK(argmax_workspace_bytes(1) == 0);
  CHECK(argmax_workspace_bytes(KLAB_ARGMAX_ONE_BLOCK_MAX_N) == 0);
  CHECK(argmax_workspace_bytes(KLAB_ARGMAX_ONE_BLOCK_MAX_N + 1) > 0);
  CHECK(argmax_optimized(d_x, KLAB_DT_F32, 151936, d_index, NULL, 0, 0, &err) == -1);
  CHECK_MSG(strstr(err.msg, "workspace") != NULL, "%s", err.msg);
  CHECK(argmax_optimized(d_x, KLAB_DT_F32, 151936, d_index, d_ws, argmax_workspace_bytes(151936) - 1, 0, &err) == -1);
  CHECK(argmax_optimized(d_x, KLAB_DT_F32, 100, d_index, NULL, 0, 0, &err) == 0); /* small N: none needed */
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

int main(void) {
  char why[256];
  if (!klab_have_gpu(why, sizeof why)) klab_test_skip("test_gpu_argmax", why);
  ws_bytes = argmax_workspace_bytes(MAX_N);
  h_vals = malloc((size_t)MAX_N * sizeof *h_vals);
  h_stored = malloc((size_t)MAX_N * sizeof *h_stored);
  h_raw = malloc((size_t)MAX_N * 4);
  if (!h_vals || !h_stored || !h_raw || ws_bytes == 0) {
    fprintf(stderr, "test_gpu_argmax: out of host memory\n");
    return 1;
  }
  if (cudaMalloc(&d_x, ((size_t)MAX_N + OFFSET_ELEMS) * 4) != cudaSuccess || cudaMalloc((void **)&d_index, sizeof *d_index) != cudaSuccess ||
      cudaMalloc(&d_ws, ws_bytes) != cudaSuccess) {
    fprintf(stderr, "test_gpu_argmax: cudaMalloc failed\n");
    return 1;
  }
  CHECK(cudaMemset(d_ws, 0xFF, ws_bytes) == cudaSuccess); /* garbage: the launcher must not rely on zeros */
  test_rejections();
  test_patterns();
  test_workspace_garbage();
  test_graph();
  cudaFree(d_x);
  cudaFree(d_index);
  cudaFree(d_ws);
  free(h_vals), free(h_stored), free(h_raw);
  return klab_test_finish("test_gpu_argmax");
}
