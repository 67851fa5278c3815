/* Minimal test helpers: CHECK records a failure and goes on; the test's exit code says the verdict.
 * Exit 77 = SKIP (ctest SKIP_RETURN_CODE), used when there is no GPU or test data is absent. */
#ifndef KLAB_TEST_UTIL_H
#define KLAB_TEST_UTIL_H
#include <stdio.h>
#include <stdlib.h>
#include <math.h>

extern int klab_test_failures;
extern int klab_test_checks;

#define CHECK(cond)                                                                \
  do {                                                                             \
    klab_test_checks++;                                                            \
    if (!(cond)) {                                                                 \
      klab_test_failures++;                                                        \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);     \
    }                                                                              \
  } while (0)

#define CHECK_MSG(cond, ...)                                                       \
  do {                                                                             \
    klab_test_checks++;                                                            \
    if (!(cond)) {                                                                 \
      klab_test_failures++;                                                        \
      fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);     \
      fprintf(stderr, __VA_ARGS__);                                                \
      fputc('\n', stderr);                                                         \
    }                                                                              \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                                     \
  do {                                                                                            \
    double klab_a_ = (double)(a), klab_b_ = (double)(b);                                          \
    klab_test_checks++;                                                                           \
    if (!(fabs(klab_a_ - klab_b_) <= (tol))) {                                                   \
      klab_test_failures++;                                                                       \
      fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s=%.9g %s=%.9g tol=%g\n", __FILE__, __LINE__, #a, \
              klab_a_, #b, klab_b_, (double)(tol));                                               \
    }                                                                                             \
  } while (0)

/* GPU tests: a failed CUDA runtime call ends the test (exit 1) naming the file, line and call. The test
 * includes cuda_runtime_api.h itself. */
#define CK(call)                                                                                     \
  do {                                                                                               \
    cudaError_t rc_ = (call);                                                                        \
    if (rc_ != cudaSuccess) {                                                                        \
      fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(rc_)); \
      exit(1);                                                                                       \
    }                                                                                                \
  } while (0)

/* malloc that ends the test (exit 1) when host memory runs out; n = 0 still returns a pointer. */
void *klab_test_xmalloc(size_t n);
/* vals[0..n) as the bytes of a bf16 (bf16 != 0) or f32 array in raw, and in stored the values a kernel
 * reading raw sees (bf16-rounded for bf16). */
void klab_test_store_values(int bf16, const float *vals, long long n, void *raw, float *stored);

/* ||x - ref|| / ||ref|| over n floats, in double (||ref|| = 0 counts as 1). */
double klab_test_rel_l2(const float *x, const float *ref, long long n);
/* Print the summary line and return the exit code for main. */
int klab_test_finish(const char *name);
/* Print why and exit 77 (SKIP). */
void klab_test_skip(const char *name, const char *why);
#endif
