// Kernel launches that can take part in programmatic dependent launch (pdl.h), and the device side of it.
//
// Contract for a kernel launched with KLAB_LAUNCH: klab_pdl_wait() comes before any access to memory an
// earlier kernel of the stream writes, and before any write to memory an earlier kernel reads. Only data that
// no kernel of the sequence writes (weights) may be read before it. klab_pdl_launch_dependents() right after
// the wait lets the next kernel's blocks be scheduled as this one's blocks retire. Both instructions are
// no-ops when the kernel was launched without the attribute, so one kernel serves the lab and the engine.
#ifndef KLAB_KERNELS_COMMON_LAUNCH_CUH
#define KLAB_KERNELS_COMMON_LAUNCH_CUH
#include <cuda_runtime.h>
#include "harness/klab.h"
#include "kernels/common/pdl.h"

static __device__ __forceinline__ void klab_pdl_wait(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

static __device__ __forceinline__ void klab_pdl_launch_dependents(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Both. The trigger comes first: the next kernel may launch (and its blocks start their weight loads wherever
// resources are free) before this one has waited. Still correct: a kernel completes only after its own wait,
// so waiting for the predecessor's completion implies every earlier kernel's completion too; and no kernel's
// blocks can starve its predecessor's, because a trigger fires only once every block of the grid has issued
// it (all are resident or done). H100, Qwen3-4B decode: +0.6-0.8% over wait-then-trigger (ci/gpu-knobs.sh,
// docs/engine.md); KLAB_PDL_WAIT_FIRST builds the other order for that A/B.
static __device__ __forceinline__ void klab_pdl_enter(void) {
#ifdef KLAB_PDL_WAIT_FIRST
  klab_pdl_wait();
  klab_pdl_launch_dependents();
#else
  klab_pdl_launch_dependents();
  klab_pdl_wait();
#endif
}

static inline cudaLaunchConfig_t klab_launch_config(dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                                                    cudaLaunchAttribute *attr) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = klab_pdl_enabled() ? 1 : 0;
  return cfg;
}

// KLAB_LAUNCH(err, what, grid, block, smem, stream, kernel, args...): kernel<<<grid, block, smem, stream>>>(args)
// with the PDL attribute when it is on; a failed launch returns -1 from the caller with `what` in err.
#define KLAB_LAUNCH(err, what, grid, block, smem, stream, ...)                                             \
  do {                                                                                                     \
    cudaLaunchAttribute klab_attr_[1];                                                                     \
    cudaLaunchConfig_t klab_cfg_ = klab_launch_config((grid), (block), (smem), (stream), klab_attr_);      \
    KLAB_CUDA(err, cudaLaunchKernelEx(&klab_cfg_, __VA_ARGS__), what);                                     \
  } while (0)

#endif
