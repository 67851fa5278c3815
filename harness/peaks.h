/* Measuring the device's ceilings (klab peaks). */
#ifndef KLAB_PEAKS_H
#define KLAB_PEAKS_H
#include "harness/klab.h"
#ifdef __cplusplus
extern "C" {
#endif
/* Streaming-read bandwidth over a `bytes` buffer with 16-byte loads (best median over launch shapes), GB/s. */
int klab_measure_read_bw(size_t bytes, double *gbps, int verbose, klab_err *err);
/* The size curve into pk->curve_bytes/curve_us: for 4 KiB .. 1 GiB, the best CUPTI kernel time of a streaming
 * read from DRAM (CUPTI must be started; fails otherwise). */
int klab_measure_read_curve(klab_peaks *pk, int verbose, klab_err *err);
/* cuBLAS bf16 GEMM n x n x n (random operands, fp32 accumulate) median rate, TFLOP/s. */
int klab_measure_gemm_bf16(int n, double *tflops, int verbose, klab_err *err);
#ifdef __cplusplus
}
#endif
#endif
