/* Device scalars of the GPU decode loop (engine/qwen3_gpu_kernels.cu). */
#ifndef QWEN3_GPU_KERNELS_H
#define QWEN3_GPU_KERNELS_H
#include <stdint.h>
#include "harness/klab.h"
#ifdef __cplusplus
extern "C" {
#endif
/* Layout of the int32 scalar block: the token being fed, its position, the attention length (pos + 1),
 * the sampling step (u = klab_rand_uniform(seed, step)) and the embedding's bad-id counter. */
enum { QWEN3_SCALAR_TOKEN = 0, QWEN3_SCALAR_POS, QWEN3_SCALAR_CTX, QWEN3_SCALAR_STEP, QWEN3_SCALAR_BAD, QWEN3_NSCALARS };
int qwen3_scalars_advance(int32_t *scalars, cudaStream_t stream, klab_err *err);
int qwen3_scalars_set(int32_t *scalars, int64_t pos, int64_t step, cudaStream_t stream, klab_err *err);
#ifdef __cplusplus
}
#endif
#endif
