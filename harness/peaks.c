/* Measured ceilings stored as JSON: what `klab bench` divides by for the % of roofline columns. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "harness/klab.h"

void klab_peaks_default_path(const char *gpu_name, char *buf, size_t len) {
  char slug[128];
  size_t j = 0;
  for (size_t i = 0; gpu_name[i] && j + 1 < sizeof slug; i++) {
    unsigned char c = (unsigned char)gpu_name[i];
    if (isalnum(c)) slug[j++] = (char)tolower(c);
    else if (j > 0 && slug[j - 1] != '-') slug[j++] = '-';
  }
  while (j > 0 && slug[j - 1] == '-') j--;
  slug[j] = 0;
  snprintf(buf, len, "results/peaks/%s.json", j ? slug : "unknown-gpu");
}

static char *read_file(const char *path, klab_err *err) {
  FILE *f = fopen(path, "rb");
  if (!f) { klab_fail(err, "%s: cannot open: %s", path, strerror(errno)); return NULL; }
  if (fseek(f, 0, SEEK_END) != 0) { fclose(f); klab_fail(err, "%s: cannot seek", path); return NULL; }
  long n = ftell(f);
  rewind(f);
  if (n < 0 || n > (1 << 24)) { fclose(f); klab_fail(err, "%s: unreasonable size %ld", path, n); return NULL; }
  char *buf = malloc((size_t)n + 1);
  if (!buf) { fclose(f); klab_fail(err, "out of memory"); return NULL; }
  if (fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); fclose(f); klab_fail(err, "%s: read failed", path); return NULL; }
  buf[n] = 0;
  fclose(f);
  return buf;
}

int klab_peaks_load(const char *path, klab_peaks *p, klab_err *err) {
  memset(p, 0, sizeof *p);
  char *text = read_file(path, err);
  if (!text) return -1;
  cJSON *root = cJSON_Parse(text);
  free(text);
  if (!root) return klab_fail(err, "%s: not valid JSON (near '%.20s')", path, cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "");
  int rc = 0;
  const cJSON *gpu = cJSON_GetObjectItemCaseSensitive(root, "gpu");
  const cJSON *bw = cJSON_GetObjectItemCaseSensitive(root, "read_bw_gbps");
  const cJSON *tf = cJSON_GetObjectItemCaseSensitive(root, "gemm_bf16_tflops");
  const cJSON *date = cJSON_GetObjectItemCaseSensitive(root, "date");
  if (!cJSON_IsString(gpu)) rc = klab_fail(err, "%s: key 'gpu' missing or not a string", path);
  else if (!cJSON_IsNumber(bw) || !(bw->valuedouble > 0)) rc = klab_fail(err, "%s: key 'read_bw_gbps' missing or not a positive number", path);
  else if (!cJSON_IsNumber(tf) || !(tf->valuedouble > 0)) rc = klab_fail(err, "%s: key 'gemm_bf16_tflops' missing or not a positive number", path);
  else {
    snprintf(p->gpu, sizeof p->gpu, "%s", gpu->valuestring);
    p->read_bw_gbps = bw->valuedouble;
    p->gemm_bf16_tflops = tf->valuedouble;
    if (cJSON_IsString(date)) snprintf(p->date, sizeof p->date, "%s", date->valuestring);
    p->valid = 1;
  }
  cJSON_Delete(root);
  return rc;
}

int klab_peaks_save(const char *path, const klab_peaks *p, klab_err *err) {
  cJSON *root = cJSON_CreateObject();
  if (!root) return klab_fail(err, "out of memory");
  cJSON_AddStringToObject(root, "gpu", p->gpu);
  cJSON_AddNumberToObject(root, "read_bw_gbps", p->read_bw_gbps);
  cJSON_AddNumberToObject(root, "gemm_bf16_tflops", p->gemm_bf16_tflops);
  cJSON_AddStringToObject(root, "date", p->date);
  cJSON_AddStringToObject(root, "method",
                          "read: 4 GiB buffer, 16-byte loads, median of 20 launches, best launch shape; "
                          "gemm: cublasGemmEx bf16 8192^3, fp32 compute, random operands, median of 20");
  char *text = cJSON_Print(root);
  cJSON_Delete(root);
  if (!text) return klab_fail(err, "out of memory");
  /* Create the parent folders of path (results/peaks/...). */
  char dir[1024];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash) {
    *slash = 0;
    if (klab_mkdir_p(dir) != 0) { free(text); return klab_fail(err, "%s: cannot create folder: %s", dir, strerror(errno)); }
  }
  FILE *f = fopen(path, "w");
  if (!f) { free(text); return klab_fail(err, "%s: cannot write: %s", path, strerror(errno)); }
  int ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;
  ok = (fclose(f) == 0) && ok;
  free(text);
  return ok ? 0 : klab_fail(err, "%s: write failed", path);
}
