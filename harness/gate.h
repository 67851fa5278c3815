/* Correctness gate internals: input generation and the output comparison. */
#ifndef KLAB_GATE_H
#define KLAB_GATE_H
#include "harness/klab.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  double max_abs_err, max_rel_err, rel_l2;
  int64_t n, n_bad, n_nonfinite;
  int64_t worst_index; /* index of the largest violation (or first non-finite) */
  double worst_out, worst_ref;
} klab_cmp;

/* Compare out (n elements of dtype dt, raw device layout) with ref. Pass (returns 1) when every element is
 * finite and within atol_abs + atol_rms*rms(ref) + rtol*|ref|, and the relative L2 error is within
 * tol.rel_l2. i32 outputs must match exactly. max_rel_err is taken over elements with |ref| above the
 * absolute tolerance (smaller ones are judged by the absolute part). */
int klab_compare(const void *out, klab_dtype dt, const double *ref, int64_t n, klab_tolerance tol, klab_cmp *c);
/* One line: "3 of 6144 elements out of tolerance, worst [17] out=... ref=...; rel-L2 ...". */
void klab_cmp_describe(const klab_cmp *c, const klab_tolerance *tol, char *buf, size_t len);
/* Element of raw tensor data as double. */
double klab_load_as_double(const void *data, klab_dtype dt, int64_t i);

/* Fill n elements of dtype on the host from the gate distribution (scale/offset applied, rounded to dtype). */
void klab_fill_host(void *dst, klab_dtype dt, int64_t n, uint64_t tseed, int dist, float scale, float offset);
/* The same on the device (harness/fill.cu), asynchronously on stream. */
int klab_fill_device(void *dst, klab_dtype dt, int64_t n, uint64_t tseed, int dist, float scale, float offset,
                     cudaStream_t stream, klab_err *err);
#ifdef __cplusplus
}
#endif
#endif
