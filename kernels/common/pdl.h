/* Programmatic dependent launch (PDL, sm_90): a kernel launched with the attribute may start while the
 * kernel before it in the stream is still running; it must execute klab_pdl_wait() (kernels/common/launch.cuh)
 * before it reads what earlier kernels wrote or writes what they read. The engine turns it on while it
 * captures its decode graph, so each kernel's launch and prologue (weight loads, block scheduling) overlap
 * the tail of the previous one. It is off by default: the lab times kernels one by one, and a kernel
 * overlapping its predecessor would count the predecessor's tail as its own time.
 * One process-wide switch, not thread-safe: set it from the thread that launches. */
#ifndef KLAB_KERNELS_COMMON_PDL_H
#define KLAB_KERNELS_COMMON_PDL_H
#ifdef __cplusplus
extern "C" {
#endif

/* Sets whether KLAB_LAUNCH adds the PDL attribute; returns the previous setting. */
int klab_pdl_set(int on);
int klab_pdl_enabled(void);

#ifdef __cplusplus
}
#endif
#endif
