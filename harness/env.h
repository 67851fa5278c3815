/* The environment of a measurement: `klab env` prints it, every bundle's env.json embeds it. */
#ifndef KLAB_ENV_H
#define KLAB_ENV_H
#include <stddef.h>
#include <cjson/cJSON.h>
#include "harness/nvml.h"

/* Facts from the CUDA runtime about the current device (no kernel launched). */
typedef struct {
  int ok;              /* 0: no usable device; error says why */
  char error[256];
  int device;
  char name[256];
  char uuid[48];       /* "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" */
  char pci_bus_id[32];
  char arch[16];       /* "sm_90" */
  int cc_major, cc_minor, sm_count;
  double l2_bytes, memory_bytes;
} klab_cuda_device;
void klab_cuda_device_get(klab_cuda_device *d);

/* "2026-11-22T10:11:12Z" */
void klab_utc_now(char *buf, size_t len);
/* git commit of the source tree (KLAB_SOURCE_DIR) and whether tracked files differ from it;
 * commit "unknown" and dirty -1 when it is not a git checkout or git is missing. */
void klab_git_info(char *commit, size_t len, int *dirty);

/* The whole `klab env` object: date, host, git, versions (driver, runtime, cuBLAS, CUPTI), the device
 * ("gpu", fields null + "gpu_error" when there is none) and the driver state ("driver_state": clocks,
 * temperature, power; fields null + "driver_state_error" when NVML and nvidia-smi are both absent).
 * NULL only when out of memory. */
cJSON *klab_env_json(void);
/* One driver-state object (every key present; null when unknown). */
cJSON *klab_gpu_snapshot_json(const klab_gpu_snapshot *s);
/* Add a number, or null when not finite. */
void klab_json_add_num(cJSON *obj, const char *key, double v);
/* Write a cJSON value to path (pretty, trailing newline). 0 ok, -1 with a message in msg. */
int klab_json_write_file(const cJSON *v, const char *path, char *msg, size_t msg_len);

#endif
