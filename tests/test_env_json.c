/* `klab env` JSON: every key present; without a GPU the gpu fields are null and gpu_error says why;
 * the nvidia-smi parser. */
#include <math.h>
#include <string.h>
#include <stdlib.h>
#include "test_util.h"
#include "harness/env.h"
#include "harness/run.h"

int main(void) {
  cJSON *e = klab_env_json();
  CHECK(e != NULL);
  if (!e) return klab_test_finish("test_env_json");
  const char *keys[] = {"schema", "date_utc", "hostname", "git_commit", "git_dirty", "cuda_driver_version",
                        "cuda_runtime_version", "cublas_version", "cupti_api_version", "gpu", "gpu_error",
                        "driver_state", "driver_state_error", "driver_release"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    CHECK_MSG(cJSON_GetObjectItemCaseSensitive(e, keys[i]) != NULL, "key %s missing", keys[i]);
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(e, "date_utc");
  CHECK(cJSON_IsString(d) && strlen(d->valuestring) == 20 && d->valuestring[10] == 'T' && d->valuestring[19] == 'Z');
  CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "git_commit")));
  CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "cuda_runtime_version")));
  CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "cublas_version")));
  const cJSON *g = cJSON_GetObjectItemCaseSensitive(e, "gpu");
  const char *gkeys[] = {"name", "uuid", "arch", "sm_count", "l2_bytes", "memory_bytes", "compute_capability"};
  char why[256];
  int have = klab_have_gpu(why, sizeof why);
  for (size_t i = 0; i < sizeof gkeys / sizeof gkeys[0]; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(g, gkeys[i]);
    CHECK_MSG(v != NULL, "gpu.%s missing", gkeys[i]);
    if (!have) CHECK_MSG(cJSON_IsNull(v), "gpu.%s not null without a GPU", gkeys[i]);
    else CHECK_MSG(!cJSON_IsNull(v), "gpu.%s null with a GPU", gkeys[i]);
  }
  const cJSON *ge = cJSON_GetObjectItemCaseSensitive(e, "gpu_error");
  if (!have) CHECK(cJSON_IsString(ge) && strlen(ge->valuestring) > 5);
  else CHECK(cJSON_IsNull(ge));
  const cJSON *ds = cJSON_GetObjectItemCaseSensitive(e, "driver_state");
  const char *dkeys[] = {"source", "sm_clock_mhz", "sm_clock_max_mhz", "mem_clock_mhz", "mem_clock_max_mhz",
                         "temperature_c", "power_w", "power_limit_w", "pstate", "throttle_reasons"};
  for (size_t i = 0; i < sizeof dkeys / sizeof dkeys[0]; i++)
    CHECK_MSG(cJSON_GetObjectItemCaseSensitive(ds, dkeys[i]) != NULL, "driver_state.%s missing", dkeys[i]);
  const cJSON *dse = cJSON_GetObjectItemCaseSensitive(e, "driver_state_error");
  if (cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(ds, "source")))
    CHECK(cJSON_IsString(dse) && strlen(dse->valuestring) > 5); /* absent: says why */
  else
    CHECK(cJSON_IsNull(dse));
  char *text = cJSON_Print(e);
  CHECK(text && cJSON_Parse(text) != NULL);
  free(text);
  cJSON_Delete(e);

  /* nvidia-smi --query-gpu line parsing */
  klab_gpu_snapshot s;
  memset(&s, 0, sizeof s);
  CHECK(klab_nvsmi_parse_line("00000000:18:00.0, NVIDIA H100 80GB HBM3, GPU-5a1b, 580.82.07, 1755, 1980, 2619, 2619, 34, 72.51, 700.00, 81559, P0\n", &s) == 0);
  CHECK(s.valid && !strcmp(s.name, "NVIDIA H100 80GB HBM3") && !strcmp(s.uuid, "GPU-5a1b") && !strcmp(s.driver_version, "580.82.07"));
  CHECK_NEAR(s.sm_clock_mhz, 1755, 0);
  CHECK_NEAR(s.sm_clock_max_mhz, 1980, 0);
  CHECK_NEAR(s.mem_clock_mhz, 2619, 0);
  CHECK_NEAR(s.temperature_c, 34, 0);
  CHECK_NEAR(s.power_w, 72.51, 1e-9);
  CHECK_NEAR(s.power_limit_w, 700, 1e-9);
  CHECK_NEAR(s.memory_total_bytes, 81559.0 * 1048576.0, 1);
  CHECK(s.pstate == 0);
  memset(&s, 0, sizeof s);
  CHECK(klab_nvsmi_parse_line("00000000:18:00.0, X, GPU-1, 580, [N/A], 1980, 2619, 2619, [Not Supported], [N/A], 700, 81559, P8", &s) == 0);
  CHECK(isnan(s.sm_clock_mhz) && isnan(s.temperature_c) && isnan(s.power_w) && s.pstate == 8);
  CHECK(klab_nvsmi_parse_line("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", &s) == -1);
  CHECK(strstr(s.reason, "expected 13 fields") != NULL);
  CHECK(klab_pci_bus_id_equal("0000:18:00.0", "00000000:18:00.0"));
  CHECK(klab_pci_bus_id_equal("0000:AB:00.0", "00000000:ab:00.0"));
  CHECK(!klab_pci_bus_id_equal("0000:18:00.0", "00000000:19:00.0"));
  CHECK(!klab_pci_bus_id_equal("", "00000000:19:00.0"));

  /* a snapshot never fails; without NVML and nvidia-smi it says why */
  klab_gpu_snapshot_take(NULL, &s);
  if (!s.valid) CHECK(strlen(s.reason) > 5);
  else CHECK(!strcmp(s.source, "nvml") || !strcmp(s.source, "nvidia-smi"));
  return klab_test_finish("test_env_json");
}
