/* CPU reference of gemm: C[M,N] = A[M,K] . W[N,K]^T, bf16 inputs (A activations, W the Hugging Face
 * Linear [out, in] weight), float64 accumulation, float64 result.
 *
 * Same math as ref_gemv (reference/gemv.h), which stays the reference of the decode-sized op. gemm has
 * its own because of size: the prefill presets reach 2.5e12 multiply-adds per shape (Qwen3-8B lm_head at
 * M=4096), where ref_gemv's single dependent float64 chain per output (~1 multiply-add per 4 cycles)
 * would take tens of minutes per gate seed. This one blocks the work into cache-sized tiles with 16
 * independent accumulators per inner loop, so it runs near the core's add throughput. */
#ifndef KLAB_REF_GEMM_H
#define KLAB_REF_GEMM_H
#include <stdint.h>
/* A: [M,K] bf16 bits; W: [N,K] bf16 bits; C: [M,N] float64. Each output is the float64 sum over k in
 * increasing order, so the result does not depend on blocking or thread count. 0 ok, -1 out of memory. */
int ref_gemm_bf16(const uint16_t *A, const uint16_t *W, double *C, int64_t M, int64_t N, int64_t K);
#endif
