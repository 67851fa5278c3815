/* GPU clocks / temperature / power from the driver: NVML through dlopen, else nvidia-smi, else absent. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "harness/nvml.h"

/* The few NVML declarations used (ABI-stable; the toolkit here ships no nvml.h). */
typedef int nvml_ret;
typedef void *nvml_dev;
typedef struct {
  unsigned long long total, free, used;
} nvml_memory;
enum { NVML_OK = 0, NVML_CLOCK_SM = 1, NVML_CLOCK_MEM = 2, NVML_TEMP_GPU = 0 };

typedef struct {
  void *lib;
  nvml_ret (*init)(void);
  nvml_ret (*shutdown)(void);
  const char *(*error_string)(nvml_ret);
  nvml_ret (*by_index)(unsigned, nvml_dev *);
  nvml_ret (*by_pci)(const char *, nvml_dev *);
  nvml_ret (*name)(nvml_dev, char *, unsigned);
  nvml_ret (*uuid)(nvml_dev, char *, unsigned);
  nvml_ret (*driver)(char *, unsigned);
  nvml_ret (*clock)(nvml_dev, int, unsigned *);
  nvml_ret (*max_clock)(nvml_dev, int, unsigned *);
  nvml_ret (*temp)(nvml_dev, int, unsigned *);
  nvml_ret (*power)(nvml_dev, unsigned *);
  nvml_ret (*power_limit)(nvml_dev, unsigned *);
  nvml_ret (*memory)(nvml_dev, nvml_memory *);
  nvml_ret (*pstate)(nvml_dev, int *);
  nvml_ret (*throttle)(nvml_dev, unsigned long long *);
} nvml_api;

static void snap_clear(klab_gpu_snapshot *s) {
  memset(s, 0, sizeof *s);
  s->sm_clock_mhz = s->sm_clock_max_mhz = s->mem_clock_mhz = s->mem_clock_max_mhz = NAN;
  s->temperature_c = s->power_w = s->power_limit_w = s->memory_total_bytes = NAN;
  s->pstate = -1;
}

static void add_reason(klab_gpu_snapshot *s, const char *fmt, const char *a, const char *b) {
  size_t u = strlen(s->reason);
  if (u + 3 >= sizeof s->reason) return;
  if (u) { s->reason[u++] = ';'; s->reason[u++] = ' '; s->reason[u] = 0; }
  snprintf(s->reason + u, sizeof s->reason - u, fmt, a, b);
}

static void throttle_text(unsigned long long bits, char *buf, size_t len) {
  static const struct { unsigned long long bit; const char *name; } names[] = {
      {0x1ULL, "gpu_idle"}, {0x2ULL, "applications_clocks"}, {0x4ULL, "sw_power_cap"}, {0x8ULL, "hw_slowdown"},
      {0x10ULL, "sync_boost"}, {0x20ULL, "sw_thermal"}, {0x40ULL, "hw_thermal"}, {0x80ULL, "hw_power_brake"},
      {0x100ULL, "display_clocks"}};
  buf[0] = 0;
  if (!bits) { snprintf(buf, len, "none"); return; }
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (bits & names[i].bit) {
      size_t u = strlen(buf);
      snprintf(buf + u, len - u, "%s%s", u ? "," : "", names[i].name);
    }
  if (!buf[0]) snprintf(buf, len, "0x%llx", bits);
}

static int nvml_snapshot(const char *bus, klab_gpu_snapshot *s) {
  nvml_api a;
  memset(&a, 0, sizeof a);
  a.lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!a.lib) {
    const char *e = dlerror();
    add_reason(s, "NVML unavailable (%s)%s", e ? e : "libnvidia-ml.so.1 not found", "");
    return -1;
  }
#define SYM(field, name) (*(void **)(&a.field) = dlsym(a.lib, name))
  SYM(init, "nvmlInit_v2");
  SYM(shutdown, "nvmlShutdown");
  SYM(error_string, "nvmlErrorString");
  SYM(by_index, "nvmlDeviceGetHandleByIndex_v2");
  SYM(by_pci, "nvmlDeviceGetHandleByPciBusId_v2");
  SYM(name, "nvmlDeviceGetName");
  SYM(uuid, "nvmlDeviceGetUUID");
  SYM(driver, "nvmlSystemGetDriverVersion");
  SYM(clock, "nvmlDeviceGetClockInfo");
  SYM(max_clock, "nvmlDeviceGetMaxClockInfo");
  SYM(temp, "nvmlDeviceGetTemperature");
  SYM(power, "nvmlDeviceGetPowerUsage");
  SYM(power_limit, "nvmlDeviceGetEnforcedPowerLimit");
  SYM(memory, "nvmlDeviceGetMemoryInfo");
  SYM(pstate, "nvmlDeviceGetPerformanceState");
  SYM(throttle, "nvmlDeviceGetCurrentClocksThrottleReasons");
#undef SYM
  if (!a.init || !a.shutdown || !a.by_index) {
    add_reason(s, "NVML library lacks nvmlInit_v2/nvmlDeviceGetHandleByIndex_v2%s%s", "", "");
    dlclose(a.lib);
    return -1;
  }
  nvml_ret r = a.init();
  if (r != NVML_OK) {
    add_reason(s, "nvmlInit failed: %s%s", a.error_string ? a.error_string(r) : "error", "");
    dlclose(a.lib);
    return -1;
  }
  nvml_dev dev = NULL;
  if (bus && *bus && a.by_pci) r = a.by_pci(bus, &dev);
  else r = a.by_index(0, &dev);
  if (r != NVML_OK) {
    add_reason(s, "NVML has no device %s: %s", bus && *bus ? bus : "0", a.error_string ? a.error_string(r) : "error");
    a.shutdown();
    dlclose(a.lib);
    return -1;
  }
  unsigned u;
  char txt[128];
  snprintf(s->source, sizeof s->source, "nvml");
  if (bus) snprintf(s->pci_bus_id, sizeof s->pci_bus_id, "%s", bus);
  if (a.name && a.name(dev, txt, sizeof txt) == NVML_OK) snprintf(s->name, sizeof s->name, "%s", txt);
  if (a.uuid && a.uuid(dev, txt, sizeof txt) == NVML_OK) snprintf(s->uuid, sizeof s->uuid, "%s", txt);
  if (a.driver && a.driver(txt, sizeof txt) == NVML_OK) snprintf(s->driver_version, sizeof s->driver_version, "%s", txt);
  if (a.clock && a.clock(dev, NVML_CLOCK_SM, &u) == NVML_OK) s->sm_clock_mhz = u;
  if (a.max_clock && a.max_clock(dev, NVML_CLOCK_SM, &u) == NVML_OK) s->sm_clock_max_mhz = u;
  if (a.clock && a.clock(dev, NVML_CLOCK_MEM, &u) == NVML_OK) s->mem_clock_mhz = u;
  if (a.max_clock && a.max_clock(dev, NVML_CLOCK_MEM, &u) == NVML_OK) s->mem_clock_max_mhz = u;
  if (a.temp && a.temp(dev, NVML_TEMP_GPU, &u) == NVML_OK) s->temperature_c = u;
  if (a.power && a.power(dev, &u) == NVML_OK) s->power_w = u / 1000.0;
  if (a.power_limit && a.power_limit(dev, &u) == NVML_OK) s->power_limit_w = u / 1000.0;
  nvml_memory m;
  if (a.memory && a.memory(dev, &m) == NVML_OK) s->memory_total_bytes = (double)m.total;
  int ps;
  if (a.pstate && a.pstate(dev, &ps) == NVML_OK && ps >= 0 && ps <= 15) s->pstate = ps;
  unsigned long long bits;
  if (a.throttle && a.throttle(dev, &bits) == NVML_OK) throttle_text(bits, s->throttle, sizeof s->throttle);
  s->valid = 1;
  a.shutdown();
  dlclose(a.lib);
  return 0;
}

/* "0000:18:00.0" vs "00000000:18:00.0": compare bus:device.function and the domain's numeric value. */
int klab_pci_bus_id_equal(const char *a, const char *b) {
  if (!a || !b || !*a || !*b) return 0;
  const char *ca = strchr(a, ':'), *cb = strchr(b, ':');
  if (!ca || !cb) return 0;
  unsigned long da = strtoul(a, NULL, 16), db = strtoul(b, NULL, 16);
  if (da != db) return 0;
  for (ca++, cb++; *ca && *cb; ca++, cb++)
    if (tolower((unsigned char)*ca) != tolower((unsigned char)*cb)) return 0;
  return *ca == 0 && *cb == 0;
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  size_t n = strlen(s);
  while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
  return s;
}

static double num_or_nan(const char *s) {
  if (!*s || s[0] == '[' || !strcmp(s, "N/A")) return NAN;
  char *end;
  double v = strtod(s, &end);
  return (end != s && *trim(end) == 0) ? v : NAN;
}

int klab_nvsmi_parse_line(const char *line, klab_gpu_snapshot *s) {
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", line);
  char *f[16];
  int n = 0;
  char *p = buf;
  while (n < 16) {
    f[n++] = p;
    char *comma = strchr(p, ',');
    if (!comma) break;
    *comma = 0;
    p = comma + 1;
  }
  if (n != 13) {
    snprintf(s->reason, sizeof s->reason, "nvidia-smi: expected 13 fields, got %d in \"%.200s\"", n, line);
    return -1;
  }
  for (int i = 0; i < n; i++) f[i] = trim(f[i]);
  snprintf(s->source, sizeof s->source, "nvidia-smi");
  snprintf(s->pci_bus_id, sizeof s->pci_bus_id, "%s", f[0]);
  snprintf(s->name, sizeof s->name, "%s", f[1]);
  snprintf(s->uuid, sizeof s->uuid, "%s", f[2]);
  snprintf(s->driver_version, sizeof s->driver_version, "%s", f[3]);
  s->sm_clock_mhz = num_or_nan(f[4]);
  s->sm_clock_max_mhz = num_or_nan(f[5]);
  s->mem_clock_mhz = num_or_nan(f[6]);
  s->mem_clock_max_mhz = num_or_nan(f[7]);
  s->temperature_c = num_or_nan(f[8]);
  s->power_w = num_or_nan(f[9]);
  s->power_limit_w = num_or_nan(f[10]);
  double mib = num_or_nan(f[11]);
  s->memory_total_bytes = isfinite(mib) ? mib * 1048576.0 : NAN;
  s->pstate = (f[12][0] == 'P' && isdigit((unsigned char)f[12][1])) ? atoi(f[12] + 1) : -1;
  s->valid = 1;
  return 0;
}

static int find_in_path(const char *prog) {
  const char *path = getenv("PATH");
  if (!path) return 0;
  char dir[1024];
  while (*path) {
    size_t l = strcspn(path, ":");
    char full[1200];
    snprintf(dir, sizeof dir, "%.*s", (int)l, path);
    snprintf(full, sizeof full, "%s/%s", l ? dir : ".", prog);
    if (access(full, X_OK) == 0) return 1;
    path += l;
    if (*path == ':') path++;
  }
  return 0;
}

static int nvsmi_snapshot(const char *bus, klab_gpu_snapshot *s) {
  if (!find_in_path("nvidia-smi")) {
    add_reason(s, "nvidia-smi not found in PATH%s%s", "", "");
    return -1;
  }
  FILE *p = popen("nvidia-smi --query-gpu=" KLAB_NVSMI_FIELDS " --format=csv,noheader,nounits 2>&1", "r");
  if (!p) {
    add_reason(s, "cannot run nvidia-smi%s%s", "", "");
    return -1;
  }
  char line[1024], first_bad[256] = "";
  int found = 0;
  klab_gpu_snapshot t;
  while (fgets(line, sizeof line, p)) {
    snap_clear(&t);
    if (klab_nvsmi_parse_line(line, &t) != 0) {
      if (!first_bad[0]) snprintf(first_bad, sizeof first_bad, "%s", trim(line));
      continue;
    }
    if (!found && (!bus || !*bus || klab_pci_bus_id_equal(bus, t.pci_bus_id))) {
      char reason[sizeof s->reason];
      snprintf(reason, sizeof reason, "%s", s->reason);
      *s = t;
      snprintf(s->reason, sizeof s->reason, "%s", reason);
      found = 1;
    }
  }
  int st = pclose(p);
  if (!found) {
    add_reason(s, "nvidia-smi gave no matching GPU (exit status %s; output: %s)", st == 0 ? "0" : "non-zero",
               first_bad[0] ? first_bad : "none");
    return -1;
  }
  return 0;
}

void klab_gpu_snapshot_take(const char *pci_bus_id, klab_gpu_snapshot *s) {
  snap_clear(s);
  if (nvml_snapshot(pci_bus_id, s) == 0) return;
  char keep[sizeof s->reason];
  snprintf(keep, sizeof keep, "%s", s->reason);
  if (nvsmi_snapshot(pci_bus_id, s) == 0) {
    /* keep the note that NVML was not used */
    snprintf(s->reason, sizeof s->reason, "%s", keep);
    return;
  }
  s->valid = 0;
}
