// Shared-memory mbarriers for kernels that stream operands through a shared-memory ring filled by the Hopper
// bulk-copy (TMA) engine (gemm's wgmma kernel). All addresses are shared-window addresses
// (__cvta_generic_to_shared).
// sm_90 and later only; the bodies are empty in the host pass and for older architectures.
#ifndef KLAB_KERNELS_COMMON_MBARRIER_CUH
#define KLAB_KERNELS_COMMON_MBARRIER_CUH
#include <stdint.h>

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define KLAB_MBAR_DEVICE_OK 1
#endif

static __device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
#ifdef KLAB_MBAR_DEVICE_OK
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
#endif
}
// After the initialising thread's mbar_init calls, before the block barrier that publishes them: makes the
// barriers visible to the async (TMA) proxy, which completes transactions on them.
static __device__ __forceinline__ void mbar_init_fence(void) {
#ifdef KLAB_MBAR_DEVICE_OK
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}
// Arrive (the producer's one arrival) and raise the phase's expected transaction bytes.
static __device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
#ifdef KLAB_MBAR_DEVICE_OK
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
#endif
}
static __device__ __forceinline__ void mbar_arrive(uint32_t bar) {
#ifdef KLAB_MBAR_DEVICE_OK
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
#endif
}
static __device__ __forceinline__ uint32_t mbar_try_wait(uint32_t bar, uint32_t parity) {
  uint32_t done = 1;
#ifdef KLAB_MBAR_DEVICE_OK
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
      "selp.u32 %0, 1, 0, p;\n"
      "}\n"
      : "=r"(done)
      : "r"(bar), "r"(parity)
      : "memory");
#endif
  return done;
}
// Wait until the phase with this parity has completed (acquire: data the bulk copies wrote is then
// visible). On a freshly initialised barrier, parity 1 (the "previous" phase) counts as complete at once.
// Every wait is for work of the same CTA that takes microseconds; one that lasts 30 s can only be a protocol
// bug (e.g. expected bytes that never arrive), so it traps: the launch then fails with an error that is
// reported, instead of hanging the GPU.
#define KLAB_MBAR_WAIT_LIMIT_NS 30000000000ull
static __device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
#ifdef KLAB_MBAR_DEVICE_OK
  if (mbar_try_wait(bar, parity)) return;
  uint64_t start, now;
  asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(start));
  while (!mbar_try_wait(bar, parity)) {
    asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(now));
    if (now - start > KLAB_MBAR_WAIT_LIMIT_NS) __trap();
  }
#endif
}
#endif
