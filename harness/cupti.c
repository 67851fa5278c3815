/* CUPTI activity tracing: the kernel durations of each timed invocation. Each invocation is bracketed by an
 * external correlation id; CUPTI's EXTERNAL_CORRELATION records map the runtime API correlation ids of
 * the launches inside the bracket (including cuBLAS's internal ones) to it (they are emitted for recorded
 * runtime/driver API calls, so those kinds are enabled too), and CONCURRENT_KERNEL records
 * give each kernel's GPU start/end. Durations exclude launch overhead and gaps between kernels. */
#include <cupti.h>
#include <stdlib.h>
#include <string.h>
#include "harness/timing.h"

#define BUF_SIZE (8u << 20)
#define BUF_ALIGN 8

typedef struct { uint32_t correlation; uint64_t start, end; } kernel_rec;
typedef struct { uint32_t correlation; uint64_t external; } ext_rec;

static struct {
  int active;
  kernel_rec *k;
  size_t nk, capk;
  ext_rec *e;
  size_t ne, cape;
  size_t dropped;
  int oom;
} g;

static void CUPTIAPI buffer_requested(uint8_t **buffer, size_t *size, size_t *max_records) {
  uint8_t *b = NULL;
  if (posix_memalign((void **)&b, BUF_ALIGN, BUF_SIZE) != 0) b = NULL;
  *buffer = b;
  *size = b ? BUF_SIZE : 0;
  *max_records = 0;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t nc = *cap ? *cap * 2 : 4096;
  while (nc < need) nc *= 2;
  void *np = realloc(*p, nc * elem);
  if (!np) return -1;
  *p = np;
  *cap = nc;
  return 0;
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream, uint8_t *buffer, size_t size, size_t valid) {
  CUpti_Activity *rec = NULL;
  while (cuptiActivityGetNextRecord(buffer, valid, &rec) == CUPTI_SUCCESS) {
    if (rec->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL || rec->kind == CUPTI_ACTIVITY_KIND_KERNEL) {
      const CUpti_ActivityKernel10 *k = (const CUpti_ActivityKernel10 *)rec;
      if (grow((void **)&g.k, &g.capk, g.nk + 1, sizeof *g.k)) { g.oom = 1; continue; }
      g.k[g.nk++] = (kernel_rec){k->correlationId, k->start, k->end};
    } else if (rec->kind == CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION) {
      const CUpti_ActivityExternalCorrelation *e = (const CUpti_ActivityExternalCorrelation *)rec;
      if (e->externalKind != CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0) continue;
      if (grow((void **)&g.e, &g.cape, g.ne + 1, sizeof *g.e)) { g.oom = 1; continue; }
      g.e[g.ne++] = (ext_rec){e->correlationId, e->externalId};
    }
  }
  size_t dropped = 0;
  if (cuptiActivityGetNumDroppedRecords(ctx, stream, &dropped) == CUPTI_SUCCESS) g.dropped += dropped;
  free(buffer);
}

static const char *cupti_msg(CUptiResult r) {
  const char *s = NULL;
  if (cuptiGetResultString(r, &s) != CUPTI_SUCCESS || !s) s = "unknown CUPTI error";
  return s;
}

int klab_cupti_start(char *why, size_t len) {
  if (g.active) return 1;
  CUptiResult r = cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed);
  if (r == CUPTI_SUCCESS) r = cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
  if (r == CUPTI_SUCCESS) r = cuptiActivityEnable(CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION);
  /* External-correlation records are emitted only for recorded API calls: record runtime and driver API
   * activity too (cuBLAS may launch through either); those records themselves are dropped on arrival. */
  if (r == CUPTI_SUCCESS) r = cuptiActivityEnable(CUPTI_ACTIVITY_KIND_RUNTIME);
  if (r == CUPTI_SUCCESS) r = cuptiActivityEnable(CUPTI_ACTIVITY_KIND_DRIVER);
  if (r != CUPTI_SUCCESS) {
    snprintf(why, len, "CUPTI activity tracing unavailable (%s); timing with CUDA events only", cupti_msg(r));
    cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    cuptiActivityDisable(CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION);
    cuptiActivityDisable(CUPTI_ACTIVITY_KIND_RUNTIME);
    cuptiActivityDisable(CUPTI_ACTIVITY_KIND_DRIVER);
    return 0;
  }
  g.active = 1;
  return 1;
}

int klab_cupti_active(void) { return g.active; }

int klab_cupti_push(uint64_t id, klab_err *err) {
  CUptiResult r = cuptiActivityPushExternalCorrelationId(CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0, id);
  return r == CUPTI_SUCCESS ? 0 : klab_fail(err, "cuptiActivityPushExternalCorrelationId: %s", cupti_msg(r));
}

int klab_cupti_pop(klab_err *err) {
  uint64_t id;
  CUptiResult r = cuptiActivityPopExternalCorrelationId(CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0, &id);
  return r == CUPTI_SUCCESS ? 0 : klab_fail(err, "cuptiActivityPopExternalCorrelationId: %s", cupti_msg(r));
}

static int cmp_ext(const void *a, const void *b) {
  uint32_t x = ((const ext_rec *)a)->correlation, y = ((const ext_rec *)b)->correlation;
  return (x > y) - (x < y);
}

int klab_cupti_collect(uint64_t first, int n, double *us, int *kernels, klab_err *err) {
  CUptiResult r = cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  if (r != CUPTI_SUCCESS) return klab_fail(err, "cuptiActivityFlushAll: %s", cupti_msg(r));
  int rc = 0;
  if (g.oom) rc = klab_fail(err, "out of memory while storing CUPTI records");
  else if (g.dropped) rc = klab_fail(err, "CUPTI dropped %zu activity records (buffers too small)", g.dropped);
  for (int i = 0; i < n; i++) us[i] = 0.0, kernels[i] = 0;
  if (rc == 0) {
    qsort(g.e, g.ne, sizeof *g.e, cmp_ext);
    for (size_t i = 0; i < g.nk; i++) {
      ext_rec key = {g.k[i].correlation, 0};
      const ext_rec *e = g.ne ? bsearch(&key, g.e, g.ne, sizeof *g.e, cmp_ext) : NULL;
      if (!e || e->external < first || e->external >= first + (uint64_t)n) continue;
      us[e->external - first] += (double)(g.k[i].end - g.k[i].start) * 1e-3;
      kernels[e->external - first]++;
    }
  }
  g.nk = g.ne = 0;
  g.dropped = 0;
  g.oom = 0;
  return rc;
}
