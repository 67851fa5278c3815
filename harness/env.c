/* `klab env` and the environment part of every bundle's env.json. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cuda_runtime_api.h>
#include <cublas_v2.h>
#include <cupti.h>
#include "harness/env.h"

#ifndef KLAB_SOURCE_DIR
#define KLAB_SOURCE_DIR "."
#endif

void klab_json_add_num(cJSON *obj, const char *key, double v) {
  if (isfinite(v)) cJSON_AddNumberToObject(obj, key, v);
  else cJSON_AddNullToObject(obj, key);
}

static void add_str_or_null(cJSON *obj, const char *key, const char *s) {
  if (s && *s) cJSON_AddStringToObject(obj, key, s);
  else cJSON_AddNullToObject(obj, key);
}

int klab_json_write_file(const cJSON *v, const char *path, char *msg, size_t msg_len) {
  char *text = cJSON_Print(v);
  if (!text) { snprintf(msg, msg_len, "%s: out of memory printing JSON", path); return -1; }
  FILE *f = fopen(path, "w");
  if (!f) {
    snprintf(msg, msg_len, "%s: cannot write: %s", path, strerror(errno));
    free(text);
    return -1;
  }
  int ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;
  ok = (fclose(f) == 0) && ok;
  free(text);
  if (!ok) { snprintf(msg, msg_len, "%s: write failed", path); return -1; }
  return 0;
}

void klab_utc_now(char *buf, size_t len) {
  time_t t = time(NULL);
  struct tm tm;
  if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) snprintf(buf, len, "unknown");
}

/* Run a command, return its first output line (trimmed) in out; exit status or -1. */
static int run_line(const char *cmd, char *out, size_t len, int *any_output) {
  out[0] = 0;
  if (any_output) *any_output = 0;
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  char line[512];
  int first = 1;
  while (fgets(line, sizeof line, p)) {
    if (any_output && line[0] && line[0] != '\n') *any_output = 1;
    if (first) {
      line[strcspn(line, "\r\n")] = 0;
      snprintf(out, len, "%s", line);
      first = 0;
    }
  }
  int st = pclose(p);
  return st;
}

/* Single-quote a path for the shell. */
static void shell_quote(const char *s, char *out, size_t len) {
  size_t j = 0;
  if (len < 3) { if (len) out[0] = 0; return; }
  out[j++] = '\'';
  for (; *s && j + 5 < len; s++) {
    if (*s == '\'') { memcpy(out + j, "'\\''", 4); j += 4; }
    else out[j++] = *s;
  }
  out[j++] = '\'';
  out[j] = 0;
}

void klab_git_info(char *commit, size_t len, int *dirty) {
  const char *dir = getenv("KLAB_SOURCE_DIR");
  if (!dir || !*dir) dir = KLAB_SOURCE_DIR;
  char q[1100], cmd[1400], out[256];
  shell_quote(dir, q, sizeof q);
  snprintf(commit, len, "unknown");
  *dirty = -1;
  /* A copy without .git (e.g. a tree shipped to a GPU machine) can name its commit explicitly. */
  const char *given = getenv("KLAB_GIT_COMMIT");
  if (given && *given) {
    snprintf(commit, len, "%s", given);
    const char *d = getenv("KLAB_GIT_DIRTY");
    *dirty = d && *d ? atoi(d) != 0 : -1;
    return;
  }
  snprintf(cmd, sizeof cmd, "git -C %s rev-parse HEAD 2>/dev/null", q);
  if (run_line(cmd, out, sizeof out, NULL) != 0 || strlen(out) < 7) return;
  snprintf(commit, len, "%s", out);
  int any = 0;
  snprintf(cmd, sizeof cmd, "git -C %s status --porcelain --untracked-files=no 2>/dev/null", q);
  if (run_line(cmd, out, sizeof out, &any) == 0) *dirty = any;
}

void klab_cuda_device_get(klab_cuda_device *d) {
  memset(d, 0, sizeof *d);
  d->l2_bytes = d->memory_bytes = NAN;
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    snprintf(d->error, sizeof d->error, "cudaGetDeviceCount: %s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
    cudaGetLastError();
    return;
  }
  if (n == 0) { snprintf(d->error, sizeof d->error, "no CUDA device"); return; }
  if ((e = cudaGetDevice(&d->device)) != cudaSuccess) {
    snprintf(d->error, sizeof d->error, "cudaGetDevice: %s", cudaGetErrorString(e));
    return;
  }
  struct cudaDeviceProp prop;
  if ((e = cudaGetDeviceProperties(&prop, d->device)) != cudaSuccess) {
    snprintf(d->error, sizeof d->error, "cudaGetDeviceProperties: %s", cudaGetErrorString(e));
    return;
  }
  snprintf(d->name, sizeof d->name, "%s", prop.name);
  const unsigned char *u = (const unsigned char *)prop.uuid.bytes;
  snprintf(d->uuid, sizeof d->uuid, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
           u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
  if (cudaDeviceGetPCIBusId(d->pci_bus_id, (int)sizeof d->pci_bus_id, d->device) != cudaSuccess) d->pci_bus_id[0] = 0;
  d->cc_major = prop.major;
  d->cc_minor = prop.minor;
  d->sm_count = prop.multiProcessorCount;
  d->l2_bytes = (double)prop.l2CacheSize;
  d->memory_bytes = (double)prop.totalGlobalMem;
  snprintf(d->arch, sizeof d->arch, "sm_%d%d", prop.major, prop.minor);
  d->ok = 1;
}

cJSON *klab_gpu_snapshot_json(const klab_gpu_snapshot *s) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  add_str_or_null(o, "source", s->valid ? s->source : NULL);
  klab_json_add_num(o, "sm_clock_mhz", s->sm_clock_mhz);
  klab_json_add_num(o, "sm_clock_max_mhz", s->sm_clock_max_mhz);
  klab_json_add_num(o, "mem_clock_mhz", s->mem_clock_mhz);
  klab_json_add_num(o, "mem_clock_max_mhz", s->mem_clock_max_mhz);
  klab_json_add_num(o, "temperature_c", s->temperature_c);
  klab_json_add_num(o, "power_w", s->power_w);
  klab_json_add_num(o, "power_limit_w", s->power_limit_w);
  if (s->pstate >= 0) {
    char ps[8];
    snprintf(ps, sizeof ps, "P%d", s->pstate);
    cJSON_AddStringToObject(o, "pstate", ps);
  } else {
    cJSON_AddNullToObject(o, "pstate");
  }
  add_str_or_null(o, "throttle_reasons", s->throttle);
  add_str_or_null(o, "driver_version", s->driver_version);
  add_str_or_null(o, "name", s->name);
  add_str_or_null(o, "uuid", s->uuid);
  klab_json_add_num(o, "memory_total_bytes", s->memory_total_bytes);
  add_str_or_null(o, "note", s->reason);
  return o;
}

static void version_text(int v, char *buf, size_t len) {
  /* CUDA encodes 1000*major + 10*minor */
  snprintf(buf, len, "%d.%d", v / 1000, (v % 1000) / 10);
}

cJSON *klab_env_json(void) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  char buf[256];
  cJSON_AddStringToObject(o, "schema", "klab-env/1");
  klab_utc_now(buf, sizeof buf);
  cJSON_AddStringToObject(o, "date_utc", buf);
  if (gethostname(buf, sizeof buf) != 0) snprintf(buf, sizeof buf, "unknown");
  buf[sizeof buf - 1] = 0;
  cJSON_AddStringToObject(o, "hostname", buf);
  int dirty;
  klab_git_info(buf, sizeof buf, &dirty);
  cJSON_AddStringToObject(o, "git_commit", buf);
  if (dirty < 0) cJSON_AddNullToObject(o, "git_dirty");
  else cJSON_AddBoolToObject(o, "git_dirty", dirty);

  /* versions: the runtime's are compiled in / reported by the libraries; the driver's needs libcuda */
  int v = 0;
  cudaError_t e = cudaDriverGetVersion(&v);
  if (e == cudaSuccess && v > 0) {
    version_text(v, buf, sizeof buf);
    cJSON_AddStringToObject(o, "cuda_driver_version", buf);
  } else {
    cJSON_AddNullToObject(o, "cuda_driver_version");
  }
  v = 0;
  if (cudaRuntimeGetVersion(&v) == cudaSuccess && v > 0) {
    version_text(v, buf, sizeof buf);
    cJSON_AddStringToObject(o, "cuda_runtime_version", buf);
  } else {
    cJSON_AddNullToObject(o, "cuda_runtime_version");
  }
  int ma = -1, mi = -1, pa = -1;
  if (cublasGetProperty(MAJOR_VERSION, &ma) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(MINOR_VERSION, &mi) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(PATCH_LEVEL, &pa) == CUBLAS_STATUS_SUCCESS) {
    snprintf(buf, sizeof buf, "%d.%d.%d", ma, mi, pa);
    cJSON_AddStringToObject(o, "cublas_version", buf);
  } else {
    cJSON_AddNullToObject(o, "cublas_version");
  }
  uint32_t cv = 0;
  if (cuptiGetVersion(&cv) == CUPTI_SUCCESS) cJSON_AddNumberToObject(o, "cupti_api_version", cv);
  else cJSON_AddNullToObject(o, "cupti_api_version");

  klab_cuda_device d;
  klab_cuda_device_get(&d);
  cJSON *g = cJSON_AddObjectToObject(o, "gpu");
  if (!g) { cJSON_Delete(o); return NULL; }
  if (d.ok) {
    cJSON_AddNumberToObject(g, "index", d.device);
    cJSON_AddStringToObject(g, "name", d.name);
    cJSON_AddStringToObject(g, "uuid", d.uuid);
    add_str_or_null(g, "pci_bus_id", d.pci_bus_id);
    cJSON_AddStringToObject(g, "arch", d.arch);
    snprintf(buf, sizeof buf, "%d.%d", d.cc_major, d.cc_minor);
    cJSON_AddStringToObject(g, "compute_capability", buf);
    cJSON_AddNumberToObject(g, "sm_count", d.sm_count);
    klab_json_add_num(g, "l2_bytes", d.l2_bytes);
    klab_json_add_num(g, "memory_bytes", d.memory_bytes);
    cJSON_AddNullToObject(o, "gpu_error");
  } else {
    static const char *const keys[] = {"index", "name", "uuid", "pci_bus_id", "arch", "compute_capability",
                                       "sm_count", "l2_bytes", "memory_bytes"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) cJSON_AddNullToObject(g, keys[i]);
    cJSON_AddStringToObject(o, "gpu_error", d.error);
  }
  klab_gpu_snapshot s;
  klab_gpu_snapshot_take(d.ok ? d.pci_bus_id : NULL, &s);
  cJSON *ds = klab_gpu_snapshot_json(&s);
  if (!ds) { cJSON_Delete(o); return NULL; }
  cJSON_AddItemToObject(o, "driver_state", ds);
  if (s.valid) cJSON_AddNullToObject(o, "driver_state_error");
  else cJSON_AddStringToObject(o, "driver_state_error", s.reason[0] ? s.reason : "unknown");
  if (s.valid && s.driver_version[0]) cJSON_AddStringToObject(o, "driver_release", s.driver_version);
  else cJSON_AddNullToObject(o, "driver_release");
  return o;
}
