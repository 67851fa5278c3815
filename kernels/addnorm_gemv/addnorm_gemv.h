/* addnorm_gemv / addnorm_gemv_silu: the decode step's residual add + RMSNorm fused into the projection that
 * consumes the normalised vector (and, for the MLP, silu(gate) * up fused into the gate|up projection), so
 * that one kernel replaces add_rmsnorm + gemv (+ silu_mul).
 * For each row m < M (M = 1..16):
 *   s = bf16(r[m,:] + delta[m,:])   (delta == NULL: s = r[m,:]);  if r_out != NULL: r_out[m,:] = s
 *   h = bf16(rmsnorm(s) * norm_w)   (fp32 math, eps; add_rmsnorm's y)
 *   silu == 0: y[m,n] = h . W[n,:] for n < N                                (y is [M, N])
 *   silu == 1: N even, I = N/2: y[m,i] = silu(h.W[i,:]) * (h.W[I+i,:]), i < I  (y is [M, I]; the fused
 *              gate|up weight has gate rows 0..I-1 then up rows I..2I-1; fp32 dot products, one bf16 rounding)
 * W [N, K] bf16 row-major; r, delta, r_out [M, K]; norm_w [K]. r_out must not alias r or delta (many blocks
 * read r while one block writes r_out: the engine ping-pongs two residual buffers); y aliases nothing.
 * Launchers enqueue on stream and check their launch; 0, or -1 with err filled. */
#ifndef KLAB_KERNELS_ADDNORM_GEMV_H
#define KLAB_KERNELS_ADDNORM_GEMV_H
#include <stdint.h>
#include "harness/klab.h"
#ifdef __cplusplus
extern "C" {
#endif
#define KLAB_ADDNORM_GEMV_MAX_M 16
/* optimized stages h (M*K*2 bytes) in dynamic shared memory; beyond this it declines (naive runs any K).
 * 96 KiB leaves room for 2 blocks per SM within the H100's 227 KiB. */
#define KLAB_ADDNORM_GEMV_MAX_SMEM 98304

int addnorm_gemv_naive(const uint16_t *r, const uint16_t *delta, const uint16_t *norm_w, const uint16_t *W,
                       uint16_t *r_out, uint16_t *y, int64_t M, int64_t N, int64_t K, int silu, float eps,
                       cudaStream_t stream, klab_err *err);
/* Needs K % 8 == 0, M*K*2 <= KLAB_ADDNORM_GEMV_MAX_SMEM and 16-byte aligned r, delta, norm_w, W, r_out
 * (rejected with a message otherwise; op.c's supports() declines the shape rules first). */
int addnorm_gemv_optimized(const uint16_t *r, const uint16_t *delta, const uint16_t *norm_w, const uint16_t *W,
                           uint16_t *r_out, uint16_t *y, int64_t M, int64_t N, int64_t K, int silu, float eps,
                           cudaStream_t stream, klab_err *err);
#ifdef __cplusplus
}
#endif
#endif
