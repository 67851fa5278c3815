/* GPU tests of the embedding launchers beyond the harness gate (whose ids are all valid): ids outside [0,V)
 * (V, V+1, -1, INT32_MAX, INT32_MIN) must give all-zero rows and be counted in bad_ids, valid rows must be
 * bit-exact copies of the table, nothing outside out may be written, the count must not carry over from a
 * previous call; for both the vector path (H % 8 == 0) and the scalar path (H % 8 != 0, unaligned out).
 * Skips (exit 77) where there is no GPU. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime_api.h>
#include "harness/run.h"
#include "kernels/embedding/embedding.h"
#include "reference/rng.h"
#include "test_util.h"

typedef int (*embedding_fn)(const int32_t *, const uint16_t *, uint16_t *, int32_t *, int64_t, int64_t, int64_t, cudaStream_t,
                            klab_err *);

static const struct {
  const char *name;
  embedding_fn fn;
  int vector_only; /* declines H % 8 != 0 and unaligned out (must return -1 there) */
} variants[] = {{"naive", embedding_naive, 0}, {"optimized", embedding_optimized, 0}, {"cached", embedding_cached, 0}};
enum { NVARIANTS = 3 };

enum { GUARD = 64 }; /* bf16 elements of sentinel after out (and before it, for the unaligned case) */
#define SENTINEL 0x7E7Eu

/* One case: T ids (every `bad_every`-th replaced by a bad value), table [V,H] of distinct bit patterns, out
 * placed `out_offset` elements into a sentinel-filled buffer. */
static void run_case(int v, int64_t T, int64_t V, int64_t H, int bad_every, int out_offset) {
  if (variants[v].vector_only && (H % 8 != 0 || out_offset != 0)) {
    void *d = NULL;
    klab_err err = {{0}};
    CHECK(cudaMalloc(&d, (size_t)(T + 1) * (size_t)(H + 8) * 2 + (size_t)V * (size_t)H * 2 + 64) == cudaSuccess);
    int32_t *ids = d, *bad = (int32_t *)d + T;
    uint16_t *table = (uint16_t *)d + 2 * (T + 8), *out = table + V * H + 8 - out_offset;
    CHECK_MSG(variants[v].fn(ids, table, out, bad, T, V, H, 0, &err) == -1, "%s declines H=%lld offset %d", variants[v].name,
              (long long)H, out_offset);
    cudaFree(d);
    return;
  }
  const int64_t out_elems = T * H + 2 * GUARD;
  int32_t *h_ids = malloc((size_t)T * sizeof *h_ids);
  uint16_t *h_table = malloc((size_t)(V * H) * sizeof *h_table);
  uint16_t *h_out = malloc((size_t)out_elems * sizeof *h_out);
  int32_t *d_ids = NULL, *d_bad = NULL;
  uint16_t *d_table = NULL, *d_out_buf = NULL;
  if (!h_ids || !h_table || !h_out) {
    CHECK_MSG(0, "out of host memory");
    goto done;
  }
  static const int32_t bad_values[] = {-1, 2147483647, (int32_t)(-2147483647 - 1), 0 /* V */, 0 /* V+1 */};
  int64_t expected_bad = 0;
  for (int64_t t = 0; t < T; t++) {
    h_ids[t] = (int32_t)(klab_rand_u64(7, (uint64_t)t) % (uint64_t)V);
    if (bad_every && t % bad_every == bad_every - 1) {
      int k = (int)((t / bad_every) % 5);
      h_ids[t] = k == 3 ? (int32_t)V : k == 4 ? (int32_t)(V + 1) : bad_values[k];
      expected_bad++;
    }
  }
  /* Table elements: distinct, finite, nonzero bf16 patterns (a wrong row or a lost element shows). */
  for (int64_t i = 0; i < V * H; i++) h_table[i] = (uint16_t)(0x3C00u + (uint16_t)(klab_rand_u64(11, (uint64_t)i) % 0x0800u));
  for (int64_t i = 0; i < out_elems; i++) h_out[i] = SENTINEL;

  if (cudaMalloc((void **)&d_ids, (size_t)T * sizeof *d_ids) != cudaSuccess ||
      cudaMalloc((void **)&d_table, (size_t)(V * H) * sizeof *d_table) != cudaSuccess ||
      cudaMalloc((void **)&d_out_buf, (size_t)out_elems * sizeof *d_out_buf) != cudaSuccess ||
      cudaMalloc((void **)&d_bad, sizeof *d_bad) != cudaSuccess) {
    CHECK_MSG(0, "cudaMalloc failed");
    goto done;
  }
  CHECK(cudaMemcpy(d_ids, h_ids, (size_t)T * sizeof *d_ids, cudaMemcpyHostToDevice) == cudaSuccess);
  CHECK(cudaMemcpy(d_table, h_table, (size_t)(V * H) * sizeof *d_table, cudaMemcpyHostToDevice) == cudaSuccess);
  CHECK(cudaMemcpy(d_out_buf, h_out, (size_t)out_elems * sizeof *d_out_buf, cudaMemcpyHostToDevice) == cudaSuccess);
  CHECK(cudaMemset(d_bad, 0x5A, sizeof *d_bad) == cudaSuccess); /* garbage: the launcher zeroes it */

  uint16_t *d_out = d_out_buf + GUARD - out_offset; /* out_offset 1: 2-byte aligned, not 16 */
  /* Twice: the count must be this call's, not accumulated. */
  for (int call = 0; call < 2; call++) {
    klab_err err = {{0}};
    int rc = variants[v].fn(d_ids, d_table, d_out, d_bad, T, V, H, 0, &err);
    CHECK_MSG(rc == 0, "%s T=%lld V=%lld H=%lld: %s", variants[v].name, (long long)T, (long long)V, (long long)H, err.msg);
  }
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
  int32_t got_bad = -1;
  CHECK(cudaMemcpy(&got_bad, d_bad, sizeof got_bad, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(cudaMemcpy(h_out, d_out_buf, (size_t)out_elems * sizeof *h_out, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK_MSG(got_bad == expected_bad, "%s T=%lld V=%lld H=%lld: bad_ids %d, want %lld", variants[v].name, (long long)T,
            (long long)V, (long long)H, got_bad, (long long)expected_bad);

  const uint16_t *out = h_out + GUARD - out_offset;
  int64_t wrong = 0, first_wrong = -1;
  for (int64_t t = 0; t < T; t++) {
    const int32_t id = h_ids[t];
    const int valid = id >= 0 && (int64_t)id < V;
    for (int64_t i = 0; i < H; i++) {
      uint16_t want = valid ? h_table[(int64_t)id * H + i] : 0; /* +0.0 exactly, not -0 */
      if (out[t * H + i] != want && wrong++ == 0) first_wrong = t * H + i;
    }
  }
  CHECK_MSG(wrong == 0, "%s T=%lld V=%lld H=%lld offset %d: %lld elements wrong, first at %lld", variants[v].name, (long long)T,
            (long long)V, (long long)H, out_offset, (long long)wrong, (long long)first_wrong);
  int64_t clobbered = 0;
  for (int64_t i = 0; i < GUARD - out_offset; i++) clobbered += h_out[i] != SENTINEL;
  for (int64_t i = GUARD - out_offset + T * H; i < out_elems; i++) clobbered += h_out[i] != SENTINEL;
  CHECK_MSG(clobbered == 0, "%s T=%lld V=%lld H=%lld: %lld elements written outside out", variants[v].name, (long long)T,
            (long long)V, (long long)H, (long long)clobbered);
  printf("  embedding %-9s T=%-5lld V=%-6lld H=%-5lld offset %d: %lld bad ids, %s\n", variants[v].name, (long long)T,
         (long long)V, (long long)H, out_offset, (long long)expected_bad, wrong || clobbered ? "WRONG" : "ok");
done:
  cudaFree(d_ids), cudaFree(d_table), cudaFree(d_out_buf), cudaFree(d_bad);
  free(h_ids), free(h_table), free(h_out);
}

static void test_rejections(void) {
  klab_err err = {{0}};
  int32_t *d_ids = NULL, *d_bad = NULL;
  uint16_t *d_table = NULL, *d_out = NULL;
  CHECK(cudaMalloc((void **)&d_ids, 64) == cudaSuccess && cudaMalloc((void **)&d_bad, 4) == cudaSuccess &&
        cudaMalloc((void **)&d_table, 64) == cudaSuccess && cudaMalloc((void **)&d_out, 64) == cudaSuccess);
  for (int v = 0; v < NVARIANTS; v++) {
    CHECK(variants[v].fn(d_ids, d_table, d_out, d_bad, 0, 4, 8, 0, &err) == -1);
    CHECK(variants[v].fn(d_ids, d_table, d_out, d_bad, 1, 0, 8, 0, &err) == -1);
    CHECK(variants[v].fn(d_ids, d_table, d_out, d_bad, 1, 4, 0, 0, &err) == -1);
    CHECK(variants[v].fn(d_ids, d_table, d_out, NULL, 1, 4, 8, 0, &err) == -1);
    CHECK(variants[v].fn(NULL, d_table, d_out, d_bad, 1, 4, 8, 0, &err) == -1);
    CHECK(variants[v].fn(d_ids, (const uint16_t *)((const char *)d_table + 1), d_out, d_bad, 1, 4, 8, 0, &err) == -1);
  }
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
  cudaFree(d_ids), cudaFree(d_bad), cudaFree(d_table), cudaFree(d_out);
}

int main(void) {
  char why[256];
  if (!klab_have_gpu(why, sizeof why)) klab_test_skip("test_gpu_embedding", why);
  test_rejections();
  /* T, V, H, every k-th id bad (0: none) */
  static const int64_t cases[][4] = {
      {1, 151936, 64, 0},    {1, 5, 8, 1},     {5, 5, 8, 1},        {8, 100, 2560, 3},  {37, 1000, 4096, 4},
      {300, 1000, 2560, 7},  {9, 50, 8200, 2},  {33, 100, 7, 3},     {64, 100, 1, 5},    {17, 1, 4095, 2},
      {2000, 3000, 1024, 11}, {4096, 151936, 128, 0}, {100, 2, 24, 0},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
    for (int v = 0; v < NVARIANTS; v++)
      for (int offset = 0; offset <= 1; offset++)
        run_case(v, cases[c][0], cases[c][1], cases[c][2], (int)cases[c][3], offset);
  return klab_test_finish("test_gpu_embedding");
}
