/* Driver-side GPU state (clocks, temperature, power): NVML loaded with dlopen at run time (the toolkit
 * has no NVML header and the binary must start without a driver), else `nvidia-smi --query-gpu`, else
 * recorded as absent with the reason. */
#ifndef KLAB_NVML_H
#define KLAB_NVML_H
#include <stddef.h>

typedef struct {
  int valid;               /* 0: nothing known; `reason` says why */
  char source[16];         /* "nvml" or "nvidia-smi" */
  char reason[512];        /* why absent, or partial-read remarks */
  char name[128];
  char uuid[96];
  char pci_bus_id[32];
  char driver_version[32]; /* e.g. "580.82.07" */
  /* NaN when unknown */
  double sm_clock_mhz, sm_clock_max_mhz;
  double mem_clock_mhz, mem_clock_max_mhz;
  double temperature_c;
  double power_w, power_limit_w;
  double memory_total_bytes;
  int pstate;              /* 0..15; -1 unknown */
  char throttle[256];      /* active clock-throttle reasons ("none", "sw_power_cap,hw_slowdown", ...) or "" */
} klab_gpu_snapshot;

/* Snapshot of the GPU with this PCI bus id ("0000:18:00.0"; NULL or "" = the first GPU).
 * Never fails: without NVML or nvidia-smi, valid = 0 and reason explains. */
void klab_gpu_snapshot_take(const char *pci_bus_id, klab_gpu_snapshot *s);

/* Parse one line of `nvidia-smi --query-gpu=KLAB_NVSMI_FIELDS --format=csv,noheader,nounits` into s.
 * 0 ok, -1 malformed (s->reason says why). Exposed for tests. */
#define KLAB_NVSMI_FIELDS \
  "pci.bus_id,name,uuid,driver_version,clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem,temperature.gpu,power.draw,power.limit,memory.total,pstate"
int klab_nvsmi_parse_line(const char *line, klab_gpu_snapshot *s);
/* Same bus? (nvidia-smi writes an 8-digit domain "00000000:18:00.0", CUDA a 4-digit one.) */
int klab_pci_bus_id_equal(const char *a, const char *b);

#endif
