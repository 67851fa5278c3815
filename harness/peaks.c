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

/* The optional size curve: [{"bytes": B, "us": T, ...}, ...], bytes strictly ascending, times positive
 * and not decreasing (reading more never takes less time at the floor). */
static int load_curve(const char *path, const cJSON *c, klab_peaks *p, klab_err *err) {
  p->ncurve = 0;
  if (!c) return 0;
  if (!cJSON_IsArray(c)) return klab_fail(err, "%s: 'read_curve' is not an array", path);
  int n = cJSON_GetArraySize(c);
  if (n > KLAB_CURVE_MAX) return klab_fail(err, "%s: 'read_curve' has %d points, at most %d", path, n, KLAB_CURVE_MAX);
  for (int i = 0; i < n; i++) {
    const cJSON *pt = cJSON_GetArrayItem(c, i);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(pt, "bytes"), *t = cJSON_GetObjectItemCaseSensitive(pt, "us");
    if (!cJSON_IsNumber(b) || !(b->valuedouble >= 1) || !cJSON_IsNumber(t) || !(t->valuedouble > 0))
      return klab_fail(err, "%s: read_curve[%d] needs a positive 'bytes' and 'us'", path, i);
    if (i > 0 && !(b->valuedouble > p->curve_bytes[i - 1]))
      return klab_fail(err, "%s: read_curve[%d]: bytes %.0f not above the previous point's", path, i, b->valuedouble);
    if (i > 0 && t->valuedouble < p->curve_us[i - 1])
      return klab_fail(err, "%s: read_curve[%d]: %.3f us for more bytes than the previous point's %.3f us", path, i,
                       t->valuedouble, p->curve_us[i - 1]);
    p->curve_bytes[i] = b->valuedouble;
    p->curve_us[i] = t->valuedouble;
  }
  p->ncurve = n;
  return 0;
}

double klab_peaks_read_floor_us(const klab_peaks *p, double bytes) {
  if (!p || !p->valid || p->ncurve < 1 || !(bytes >= p->curve_bytes[0])) return NAN;
  int n = p->ncurve;
  if (bytes >= p->curve_bytes[n - 1])
    return p->curve_us[n - 1] + (bytes - p->curve_bytes[n - 1]) / (p->read_bw_gbps * 1e3); /* GB/s = 1e3 B/us */
  int i = 0;
  while (bytes > p->curve_bytes[i + 1]) i++;
  double f = (bytes - p->curve_bytes[i]) / (p->curve_bytes[i + 1] - p->curve_bytes[i]);
  return p->curve_us[i] + f * (p->curve_us[i + 1] - p->curve_us[i]);
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
    rc = load_curve(path, cJSON_GetObjectItemCaseSensitive(root, "read_curve"), p, err);
    p->valid = rc == 0;
  }
  cJSON_Delete(root);
  return rc;
}

cJSON *klab_peaks_to_json(const klab_peaks *p) {
  cJSON *root = cJSON_CreateObject();
  if (!root) return NULL;
  cJSON_AddStringToObject(root, "gpu", p->gpu);
  cJSON_AddNumberToObject(root, "read_bw_gbps", p->read_bw_gbps);
  cJSON_AddNumberToObject(root, "gemm_bf16_tflops", p->gemm_bf16_tflops);
  cJSON_AddStringToObject(root, "date", p->date);
  cJSON_AddStringToObject(root, "method",
                          "read: 4 GiB buffer, 16-byte loads, median of 20 launches, best launch shape; "
                          "gemm: cublasGemmEx bf16 8192^3, fp32 compute, random operands, best median of 3 rounds of 20; "
                          "read_curve: CUPTI kernel time of reading B bytes (a new DRAM-resident slice of a 2 GiB "
                          "buffer each launch), median of 30 launches, best of 18 launch shapes");
  if (p->ncurve > 0) {
    cJSON *c = cJSON_AddArrayToObject(root, "read_curve");
    for (int i = 0; c && i < p->ncurve; i++) {
      cJSON *pt = cJSON_CreateObject();
      if (!pt) break;
      cJSON_AddNumberToObject(pt, "bytes", p->curve_bytes[i]);
      cJSON_AddNumberToObject(pt, "us", p->curve_us[i]);
      cJSON_AddNumberToObject(pt, "gbps", round(p->curve_bytes[i] / p->curve_us[i] * 1e-3 * 10) / 10); /* for readers */
      cJSON_AddItemToArray(c, pt);
    }
  }
  return root;
}

int klab_peaks_save(const char *path, const klab_peaks *p, klab_err *err) {
  cJSON *root = klab_peaks_to_json(p);
  if (!root) return klab_fail(err, "out of memory");
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
