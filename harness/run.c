/* Gate, then time, then re-check one (op, shape) over its variants (design.md §3).
 *
 * Gate: for each seed, fresh inputs (distribution cycling uniform / normal / outliers) are drawn on the
 * device, read back, and the CPU reference computes the expected outputs in float64. Every variant's
 * outputs are poisoned with NaN first and INOUT tensors restored, so an unwritten element or a stale
 * result fails. Timing: only variants that passed; launches rotate over enough copies of the tensors to
 * exceed 3x L2 so memory-bound ops read DRAM; CUPTI gives each invocation's kernel time, CUDA events the
 * cross-check. Re-check: new inputs once more after timing. */
#include "harness/run.h"
#include <math.h>
#include <nvtx3/nvToolsExt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cuda_runtime_api.h>
#include "harness/gate.h"
#include "harness/gen.h"
#include "harness/timing.h"

void klab_run_opts_default(klab_run_opts *o) {
  memset(o, 0, sizeof *o);
  o->seed = 20261122;
  o->seeds = 3;
  o->time_it = 1;
  o->max_noise = 0.005;
  o->min_samples = 50;
  o->max_samples = 2000;
  o->max_seconds = 3.0;
  o->warmup_ms = 25.0;
  o->rounds = 1;
}

int klab_have_gpu(char *why, size_t len) {
  int n = 0;
  cudaError_t rc = cudaGetDeviceCount(&n);
  if (rc != cudaSuccess) {
    snprintf(why, len, "no usable CUDA device: %s", cudaGetErrorString(rc));
    return 0;
  }
  if (n == 0) {
    snprintf(why, len, "no CUDA device found");
    return 0;
  }
  return 1;
}

int klab_device_query(klab_device_info *d, klab_err *err) {
  memset(d, 0, sizeof *d);
  char why[256];
  if (!klab_have_gpu(why, sizeof why)) return klab_fail(err, "%s", why);
  KLAB_CUDA(err, cudaGetDevice(&d->device), "device query");
  struct cudaDeviceProp p;
  KLAB_CUDA(err, cudaGetDeviceProperties(&p, d->device), "device query");
  snprintf(d->name, sizeof d->name, "%s", p.name);
  d->sm_count = p.multiProcessorCount;
  d->cc_major = p.major;
  d->cc_minor = p.minor;
  d->l2_bytes = (size_t)p.l2CacheSize;
  d->total_mem = p.totalGlobalMem;
  return 0;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- per-shape state ---- */
typedef struct {
  const klab_op *op;
  const int64_t *shape;
  char shape_text[128];
  int64_t count[KLAB_MAX_TENSORS];
  size_t bytes[KLAB_MAX_TENSORS];
  size_t set_bytes;
  void *host[KLAB_MAX_TENSORS];  /* inputs' values (and INOUT initial values) */
  void *out[KLAB_MAX_TENSORS];   /* downloaded outputs */
  double *ref[KLAB_MAX_TENSORS]; /* expected OUT/INOUT values */
  int ncopies;
  void **dev;                    /* [ncopies][ntensors] */
  cudaStream_t stream;
} shape_state;

static void **dev_slot(shape_state *s, int copy, int t) { return &s->dev[copy * s->op->ntensors + t]; }

static int is_output(const klab_tensor_spec *t) { return t->role != KLAB_IN; }

static void free_state(shape_state *s) {
  for (int t = 0; t < s->op->ntensors; t++) {
    free(s->host[t]);
    free(s->out[t]);
    free(s->ref[t]);
  }
  if (s->dev) {
    for (int i = 0; i < s->ncopies * s->op->ntensors; i++)
      if (s->dev[i]) cudaFree(s->dev[i]);
    free(s->dev);
  }
  if (s->stream) cudaStreamDestroy(s->stream);
}

static int alloc_state(shape_state *s, klab_err *err) {
  const klab_op *op = s->op;
  s->ncopies = 1;
  s->dev = calloc((size_t)op->ntensors, sizeof *s->dev);
  if (!s->dev) return klab_fail(err, "out of memory");
  KLAB_CUDA(err, cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking), "stream");
  for (int t = 0; t < op->ntensors; t++) {
    const klab_tensor_spec *ts = &op->tensors[t];
    s->count[t] = ts->count(s->shape);
    s->bytes[t] = (size_t)s->count[t] * klab_dtype_size(ts->dtype);
    s->set_bytes += s->bytes[t];
    s->host[t] = malloc(s->bytes[t] ? s->bytes[t] : 1);
    if (!s->host[t]) return klab_fail(err, "%s %s: out of host memory for tensor %s (%zu bytes)", op->name, s->shape_text, ts->name, s->bytes[t]);
    if (is_output(ts)) {
      s->out[t] = malloc(s->bytes[t] ? s->bytes[t] : 1);
      s->ref[t] = malloc((size_t)(s->count[t] ? s->count[t] : 1) * sizeof(double));
      if (!s->out[t] || !s->ref[t]) return klab_fail(err, "%s %s: out of host memory for tensor %s", op->name, s->shape_text, ts->name);
    }
    cudaError_t rc = cudaMalloc(dev_slot(s, 0, t), s->bytes[t] ? s->bytes[t] : 16);
    if (rc != cudaSuccess)
      return klab_fail(err, "%s %s: cudaMalloc of tensor %s (%zu bytes) failed: %s", op->name, s->shape_text, ts->name, s->bytes[t], cudaGetErrorString(rc));
  }
  return 0;
}

/* Draw the inputs of one gate seed into copy 0 and the host, and compute the reference. */
static int make_inputs(shape_state *s, uint64_t seed, int dist, klab_err *err) {
  const klab_op *op = s->op;
  for (int t = 0; t < op->ntensors; t++) {
    const klab_tensor_spec *ts = &op->tensors[t];
    if (ts->role == KLAB_OUT) continue;
    uint64_t tseed = klab_tensor_seed(seed, t);
    void *d = *dev_slot(s, 0, t);
    if (ts->fill) {
      ts->fill(s->host[t], s->count[t], s->shape, tseed);
      KLAB_CUDA(err, cudaMemcpyAsync(d, s->host[t], s->bytes[t], cudaMemcpyHostToDevice, s->stream), "upload custom input");
    } else {
      if (klab_fill_device(d, ts->dtype, s->count[t], tseed, dist, ts->scale, ts->offset, s->stream, err)) return -1;
      KLAB_CUDA(err, cudaMemcpyAsync(s->host[t], d, s->bytes[t], cudaMemcpyDeviceToHost, s->stream), "download input");
    }
  }
  KLAB_CUDA(err, cudaStreamSynchronize(s->stream), "input generation");
  const void *host[KLAB_MAX_TENSORS];
  double *ref[KLAB_MAX_TENSORS];
  for (int t = 0; t < op->ntensors; t++) host[t] = s->host[t], ref[t] = s->ref[t];
  if (op->reference(host, ref, s->shape, err)) return -1;
  return 0;
}

static void fill_args(shape_state *s, int copy, void *ws, size_t ws_bytes, klab_args *a) {
  memset(a, 0, sizeof *a);
  for (int t = 0; t < s->op->ntensors; t++) a->t[t] = *dev_slot(s, copy, t);
  a->shape = s->shape;
  a->workspace = ws;
  a->workspace_bytes = ws_bytes;
}

/* Run the variant once on copy 0 after poisoning its outputs; compare. 1 pass, 0 fail, -1 error. */
static int gate_once(shape_state *s, const klab_variant *v, void *ws, size_t ws_bytes, klab_result *r, uint64_t seed,
                     int dist, const char *phase, klab_err *err) {
  const klab_op *op = s->op;
  for (int t = 0; t < op->ntensors; t++) {
    const klab_tensor_spec *ts = &op->tensors[t];
    void *d = *dev_slot(s, 0, t);
    if (ts->role == KLAB_OUT) KLAB_CUDA(err, cudaMemsetAsync(d, 0xFF, s->bytes[t], s->stream), "poison output"); /* NaN in bf16/f32 */
    if (ts->role == KLAB_INOUT) KLAB_CUDA(err, cudaMemcpyAsync(d, s->host[t], s->bytes[t], cudaMemcpyHostToDevice, s->stream), "restore in/out tensor");
  }
  klab_args a;
  fill_args(s, 0, ws, ws_bytes, &a);
  if (v->launch(&a, s->stream, err)) return -1;
  KLAB_CUDA(err, cudaStreamSynchronize(s->stream), "variant run");
  int pass = 1;
  for (int t = 0; t < op->ntensors; t++) {
    const klab_tensor_spec *ts = &op->tensors[t];
    if (!is_output(ts)) continue;
    KLAB_CUDA(err, cudaMemcpy(s->out[t], *dev_slot(s, 0, t), s->bytes[t], cudaMemcpyDeviceToHost), "download output");
    klab_tolerance tol = klab_tolerance_for(op->name, ts->dtype);
    klab_cmp c;
    int ok = klab_compare(s->out[t], ts->dtype, s->ref[t], s->count[t], tol, &c);
    int worse = !(c.rel_l2 <= r->rel_l2) || isnan(r->rel_l2);
    if (!(c.max_abs_err <= r->max_abs_err)) r->max_abs_err = c.max_abs_err;
    if (!(c.max_rel_err <= r->max_rel_err)) r->max_rel_err = c.max_rel_err;
    if (worse && r->status != KLAB_FAIL) r->rel_l2 = c.rel_l2, r->seed = seed;
    if (!ok && pass) {
      char what[200];
      klab_cmp_describe(&c, &tol, what, sizeof what);
      snprintf(r->note, sizeof r->note, "%s seed %llu (%s) tensor %s: %s", phase, (unsigned long long)seed, klab_dist_name(dist), ts->name, what);
      r->seed = seed;
      r->rel_l2 = c.rel_l2;
      pass = 0;
    }
  }
  return pass;
}

/* Allocate the rotation copies: enough tensor sets that one pass over them moves more than 3x L2. A
 * launch may touch far less than its tensors hold (embedding reads T rows of a [V, H] table), so the count
 * comes from the op's traffic model when that is smaller than the tensors. */
static int make_copies(shape_state *s, size_t l2_bytes, klab_err *err) {
  const klab_op *op = s->op;
  double traffic = op->bytes ? op->bytes(s->shape) : 0;
  size_t touched = traffic > 0 && traffic < (double)s->set_bytes ? (size_t)traffic : s->set_bytes;
  size_t want = touched ? (3 * l2_bytes + touched - 1) / touched : 1;
  if (want < 1) want = 1;
  if (want > 4096) want = 4096;
  size_t free_b = 0, total_b = 0;
  KLAB_CUDA(err, cudaMemGetInfo(&free_b, &total_b), "memory info");
  size_t fit = (size_t)(0.6 * (double)free_b) / (s->set_bytes ? s->set_bytes : 1) + 1;
  if (want > fit) want = fit;
  void **dev = calloc(want * (size_t)op->ntensors, sizeof *dev);
  if (!dev) return klab_fail(err, "out of memory");
  memcpy(dev, s->dev, (size_t)op->ntensors * sizeof *dev);
  free(s->dev);
  s->dev = dev;
  for (int c = 1; c < (int)want; c++) {
    s->ncopies = c + 1;
    for (int t = 0; t < op->ntensors; t++) {
      void **slot = dev_slot(s, c, t);
      cudaError_t rc = cudaMalloc(slot, s->bytes[t] ? s->bytes[t] : 16);
      if (rc != cudaSuccess) return klab_fail(err, "%s %s: rotation copy %d: cudaMalloc failed: %s", op->name, s->shape_text, c, cudaGetErrorString(rc));
      KLAB_CUDA(err, cudaMemcpyAsync(*slot, *dev_slot(s, 0, t), s->bytes[t], cudaMemcpyDeviceToDevice, s->stream), "rotation copy");
    }
  }
  KLAB_CUDA(err, cudaStreamSynchronize(s->stream), "rotation copies");
  return 0;
}

typedef struct {
  cudaGraphExec_t *exec;
  int n;
} graph_set;

static void free_graphs(graph_set *g) {
  for (int i = 0; i < g->n; i++)
    if (g->exec[i]) cudaGraphExecDestroy(g->exec[i]);
  free(g->exec);
  g->exec = NULL;
  g->n = 0;
}

static int capture_graphs(shape_state *s, const klab_variant *v, void *ws, size_t ws_bytes, graph_set *g, klab_err *err) {
  g->exec = calloc((size_t)s->ncopies, sizeof *g->exec);
  if (!g->exec) return klab_fail(err, "out of memory");
  g->n = s->ncopies;
  for (int c = 0; c < s->ncopies; c++) {
    klab_args a;
    fill_args(s, c, ws, ws_bytes, &a);
    cudaGraph_t graph;
    KLAB_CUDA(err, cudaStreamBeginCapture(s->stream, cudaStreamCaptureModeThreadLocal), "graph capture");
    int rc = v->launch(&a, s->stream, err);
    cudaError_t end = cudaStreamEndCapture(s->stream, &graph);
    if (rc) return -1;
    if (end != cudaSuccess) return klab_fail(err, "%s: graph capture failed: %s", v->name, cudaGetErrorString(end));
    cudaError_t inst = cudaGraphInstantiate(&g->exec[c], graph, 0);
    cudaGraphDestroy(graph);
    if (inst != cudaSuccess) return klab_fail(err, "%s: graph instantiate failed: %s", v->name, cudaGetErrorString(inst));
  }
  return 0;
}

static int launch_copy(shape_state *s, const klab_variant *v, const graph_set *g, int copy, void *ws, size_t ws_bytes, klab_err *err) {
  if (g->n) {
    KLAB_CUDA(err, cudaGraphLaunch(g->exec[copy], s->stream), "graph launch");
    return 0;
  }
  klab_args a;
  fill_args(s, copy, ws, ws_bytes, &a);
  return v->launch(&a, s->stream, err);
}

/* Time one variant for one round: appends at most o->max_samples CUPTI (or event) samples to samples and
 * event samples to ev_samples, and adds their count to *count. */
static int time_variant(shape_state *s, const klab_variant *v, void *ws, size_t ws_bytes, const klab_run_opts *o, double *samples,
                        double *ev_samples, int *count, klab_err *err) {
  static uint64_t next_id = 1;
  enum { BATCH = 64 };
  int rc = -1;
  cudaEvent_t ev[2 * BATCH];
  int nev = 0;
  graph_set g = {0};
  int n = 0, copy = 0;
  int use_cupti = klab_cupti_active();
  for (; nev < 2 * BATCH; nev++)
    if (cudaEventCreate(&ev[nev]) != cudaSuccess) { klab_fail(err, "cudaEventCreate failed"); goto done; }
  if (o->use_graph && capture_graphs(s, v, ws, ws_bytes, &g, err)) goto done;

  /* Warm-up: module load, cuBLAS heuristics, clocks; at least 3 launches. */
  double t0 = now_s();
  for (int i = 0; i < 3 || (now_s() - t0) * 1e3 < o->warmup_ms; i++) {
    if (launch_copy(s, v, &g, copy, ws, ws_bytes, err)) goto done;
    copy = (copy + 1) % s->ncopies;
    if (i % 16 == 15 && cudaStreamSynchronize(s->stream) != cudaSuccess) { klab_fail(err, "%s: warm-up failed", v->name); goto done; }
  }
  if (cudaStreamSynchronize(s->stream) != cudaSuccess) { klab_fail(err, "%s: warm-up failed: %s", v->name, cudaGetErrorString(cudaGetLastError())); goto done; }
  if (use_cupti) {
    double dummy[1]; int dk[1];
    if (klab_cupti_collect(0, 0, dummy, dk, err)) goto done; /* drop gate and warm-up records */
  }

  t0 = now_s();
  for (;;) {
    int b = o->max_samples - n < BATCH ? o->max_samples - n : BATCH;
    uint64_t first = next_id;
    for (int i = 0; i < b; i++) {
      if (use_cupti && klab_cupti_push(next_id, err)) goto done;
      next_id++;
      if (cudaEventRecord(ev[2 * i], s->stream) != cudaSuccess) { klab_fail(err, "cudaEventRecord failed"); goto done; }
      if (launch_copy(s, v, &g, copy, ws, ws_bytes, err)) goto done;
      if (cudaEventRecord(ev[2 * i + 1], s->stream) != cudaSuccess) { klab_fail(err, "cudaEventRecord failed"); goto done; }
      if (use_cupti && klab_cupti_pop(err)) goto done;
      copy = (copy + 1) % s->ncopies;
      if (o->spaced && cudaStreamSynchronize(s->stream) != cudaSuccess) {
        klab_fail(err, "%s %s %s: spaced launch failed: %s", s->op->name, s->shape_text, v->name, cudaGetErrorString(cudaGetLastError()));
        goto done;
      }
    }
    cudaError_t sync = cudaStreamSynchronize(s->stream);
    if (sync != cudaSuccess) { klab_fail(err, "%s %s %s: timed launches failed: %s", s->op->name, s->shape_text, v->name, cudaGetErrorString(sync)); goto done; }
    double cu[BATCH];
    int kc[BATCH];
    if (use_cupti && klab_cupti_collect(first, b, cu, kc, err)) goto done;
    for (int i = 0; i < b; i++) {
      float ms = 0;
      if (cudaEventElapsedTime(&ms, ev[2 * i], ev[2 * i + 1]) != cudaSuccess) { klab_fail(err, "cudaEventElapsedTime failed"); goto done; }
      ev_samples[n + i] = ms * 1e3;
      if (use_cupti && kc[i] == 0) {
        klab_fail(err, "%s %s %s: CUPTI recorded no kernel for a timed invocation", s->op->name, s->shape_text, v->name);
        goto done;
      }
      samples[n + i] = use_cupti ? cu[i] : ev_samples[n + i];
    }
    n += b;
    if (n >= o->max_samples) break;
    if (n >= o->min_samples && klab_rel_stderr(samples, n) < o->max_noise) break;
    if (now_s() - t0 > o->max_seconds) break;
  }
  *count += n;
  rc = 0;
done:
  for (int i = 0; i < nev; i++) cudaEventDestroy(ev[i]);
  free_graphs(&g);
  return rc;
}

/* Time every passing variant over o->rounds rounds (forward order in even rounds, backward in odd ones) and
 * fill the timing columns of their rows from the pooled samples. A timing error marks that row ERROR. */
static int time_variants(shape_state *s, const klab_variant *const *vs, int nv, void **ws, const size_t *ws_bytes,
                         const klab_run_opts *o, klab_result *rows, klab_err *err) {
  const int rounds = o->rounds > 0 ? o->rounds : 1;
  const size_t cap = (size_t)rounds * (size_t)o->max_samples;
  double *samples[KLAB_MAX_VARIANTS] = {0}, *ev_samples[KLAB_MAX_VARIANTS] = {0};
  int count[KLAB_MAX_VARIANTS] = {0};
  int rc = -1;
  for (int i = 0; i < nv; i++) {
    if (rows[i].status != KLAB_PASS) continue;
    samples[i] = malloc(cap * sizeof(double));
    ev_samples[i] = malloc(cap * sizeof(double));
    if (!samples[i] || !ev_samples[i]) { klab_fail(err, "out of memory for %zu timing samples", cap); goto done; }
  }
  for (int round = 0; round < rounds; round++) {
    for (int k = 0; k < nv; k++) {
      const int i = round % 2 ? nv - 1 - k : k;
      klab_result *r = &rows[i];
      if (r->status != KLAB_PASS) continue;
      char label[256];
      snprintf(label, sizeof label, "time %s %s %s round %d", s->op->name, s->shape_text, vs[i]->name, round + 1);
      nvtxRangePushA(label);
      klab_err terr = {{0}};
      int t = time_variant(s, vs[i], ws[i], ws_bytes[i], o, samples[i] + count[i], ev_samples[i] + count[i], &count[i], &terr);
      nvtxRangePop();
      if (t) {
        r->status = KLAB_ERROR;
        snprintf(r->note, sizeof r->note, "timing: %s", terr.msg);
      }
    }
  }
  for (int i = 0; i < nv; i++) {
    klab_result *r = &rows[i];
    if (r->status != KLAB_PASS) continue;
    klab_stats st, est;
    klab_stats_compute(samples[i], count[i], &st);
    klab_stats_compute(ev_samples[i], count[i], &est);
    r->median_us = st.median, r->p10_us = st.p10, r->p90_us = st.p90, r->mean_us = st.mean, r->n = count[i];
    r->event_median_us = est.median;
    snprintf(r->timer, sizeof r->timer, "%s%s%s", klab_cupti_active() ? "cupti" : "events", o->use_graph ? "+graph" : "",
             o->spaced ? "+spaced" : "");
  }
  rc = 0;
done:
  for (int i = 0; i < nv; i++) free(samples[i]), free(ev_samples[i]);
  return rc;
}

static void derive(const klab_op *op, const int64_t *shape, const klab_peaks *peaks, klab_result *r) {
  r->bytes = op->bytes(shape);
  r->flops = op->flops(shape);
  r->ai = r->bytes > 0 ? r->flops / r->bytes : NAN;
  if (!(r->median_us > 0)) return;
  r->gbps = r->bytes / (r->median_us * 1e-6) / 1e9;
  r->tflops = r->flops / (r->median_us * 1e-6) / 1e12;
  if (peaks && peaks->valid) {
    r->pct_peak_bw = 100.0 * r->gbps / peaks->read_bw_gbps;
    r->pct_peak_flops = 100.0 * r->tflops / peaks->gemm_bf16_tflops;
    /* The curve is CUPTI kernel time: compare only kernel times with it. */
    if (strncmp(r->timer, "cupti", 5) == 0) r->pct_size_bw = 100.0 * klab_peaks_read_floor_us(peaks, r->bytes) / r->median_us;
  }
}

static const char *out_dtype_name(const klab_op *op) {
  for (int t = 0; t < op->ntensors; t++)
    if (is_output(&op->tensors[t])) return klab_dtype_name(op->tensors[t].dtype);
  return "?";
}

int klab_run_shape(const klab_op *op, const int64_t *shape, const klab_run_opts *o, const klab_peaks *peaks,
                   klab_result *rows, int *nrows, klab_err *err) {
  *nrows = 0;
  shape_state s;
  memset(&s, 0, sizeof s);
  s.op = op;
  s.shape = shape;
  klab_format_shape(op, shape, ';', s.shape_text, sizeof s.shape_text);
  char why[256] = "";
  if (op->validate && !op->validate(shape, why, sizeof why))
    return klab_fail(err, "%s: shape %s rejected: %s", op->name, s.shape_text, why);
  if (o->variant && !klab_find_variant(op, o->variant))
    return klab_fail(err, "%s: no variant '%s'", op->name, o->variant);
  klab_device_info dev;
  if (klab_device_query(&dev, err)) return -1;

  /* Variants to run: the selected one (or all), plus the vendor when timing (speedup column). */
  const klab_variant *vs[KLAB_MAX_VARIANTS];
  int nv = 0;
  for (int i = 0; i < op->nvariants; i++) {
    const klab_variant *v = op->variants[i];
    int selected = !o->variant || strcmp(o->variant, v->name) == 0;
    if (selected || (o->time_it && v->kind == KLAB_VENDOR)) vs[nv++] = v;
  }
  void *ws[KLAB_MAX_VARIANTS] = {0};
  size_t ws_bytes[KLAB_MAX_VARIANTS] = {0};
  int rc = -1, any_fail = 0;
  if (alloc_state(&s, err)) goto done;

  for (int i = 0; i < nv; i++) {
    klab_result *r = &rows[i];
    klab_result_init(r);
    snprintf(r->op, sizeof r->op, "%s", op->name);
    snprintf(r->variant, sizeof r->variant, "%s", vs[i]->name);
    r->vendor = vs[i]->kind == KLAB_VENDOR;
    snprintf(r->shape, sizeof r->shape, "%s", s.shape_text);
    snprintf(r->dtype, sizeof r->dtype, "%s", out_dtype_name(op));
    r->seed = o->seed;
    r->status = KLAB_PASS;
    why[0] = 0;
    if (vs[i]->supports && !vs[i]->supports(shape, why, sizeof why)) {
      r->status = KLAB_SKIP;
      snprintf(r->note, sizeof r->note, "declined: %s", why);
      continue;
    }
    ws_bytes[i] = vs[i]->workspace_bytes ? vs[i]->workspace_bytes(shape) : 0;
    if (ws_bytes[i]) {
      cudaError_t mrc = cudaMalloc(&ws[i], ws_bytes[i]);
      if (mrc != cudaSuccess) {
        klab_fail(err, "%s %s %s: workspace of %zu bytes: %s", op->name, s.shape_text, vs[i]->name, ws_bytes[i], cudaGetErrorString(mrc));
        goto done;
      }
    }
  }
  *nrows = nv;

  /* Gate. */
  for (int k = 0; k < (o->seeds > 0 ? o->seeds : 1); k++) {
    uint64_t seed = o->seed + (uint64_t)k;
    int dist = k % KLAB_NDIST;
    if (make_inputs(&s, seed, dist, err)) goto done;
    for (int i = 0; i < nv; i++) {
      klab_result *r = &rows[i];
      if (r->status != KLAB_PASS) continue;
      char label[256];
      snprintf(label, sizeof label, "gate %s %s %s seed %llu", op->name, s.shape_text, vs[i]->name, (unsigned long long)seed);
      nvtxRangePushA(label);
      klab_err verr = {{0}};
      int g = gate_once(&s, vs[i], ws[i], ws_bytes[i], r, seed, dist, "gate", &verr);
      nvtxRangePop();
      if (g < 0) {
        r->status = KLAB_ERROR;
        snprintf(r->note, sizeof r->note, "%s", verr.msg);
        /* A failed launch may leave the context unusable (sticky error): stop here, report it. */
        if (cudaGetLastError() != cudaSuccess || cudaDeviceSynchronize() != cudaSuccess) {
          klab_fail(err, "%s %s %s: CUDA context lost: %s", op->name, s.shape_text, vs[i]->name, verr.msg);
          goto done;
        }
      } else if (g == 0) {
        r->status = KLAB_FAIL;
      }
    }
  }

  /* Time. */
  if (o->time_it) {
    int any_pass = 0;
    for (int i = 0; i < nv; i++) any_pass |= rows[i].status == KLAB_PASS;
    if (any_pass && make_copies(&s, dev.l2_bytes, err)) goto done;
    if (time_variants(&s, vs, nv, ws, ws_bytes, o, rows, err)) goto done;
    /* Re-check on new inputs: catches results cached from the gate or stale outputs. */
    uint64_t seed = o->seed + 1000003ull;
    int dist = KLAB_DIST_OUTLIERS;
    if (make_inputs(&s, seed, dist, err)) goto done;
    for (int i = 0; i < nv; i++) {
      klab_result *r = &rows[i];
      if (r->status != KLAB_PASS) continue;
      klab_err verr = {{0}};
      int g = gate_once(&s, vs[i], ws[i], ws_bytes[i], r, seed, dist, "re-check after timing", &verr);
      if (g < 0) r->status = KLAB_ERROR, snprintf(r->note, sizeof r->note, "%s", verr.msg);
      else if (g == 0) r->status = KLAB_FAIL;
    }
  }

  /* Derived columns; speedups against the fastest passing vendor variant. */
  double vendor_best = INFINITY;
  for (int i = 0; i < nv; i++)
    if (rows[i].vendor && rows[i].status == KLAB_PASS && rows[i].median_us < vendor_best) vendor_best = rows[i].median_us;
  for (int i = 0; i < nv; i++) {
    derive(op, shape, peaks, &rows[i]);
    if (rows[i].status == KLAB_PASS && isfinite(vendor_best) && rows[i].median_us > 0)
      rows[i].speedup_vs_vendor = vendor_best / rows[i].median_us;
    if (rows[i].status == KLAB_FAIL || rows[i].status == KLAB_ERROR) {
      any_fail = 1;
      rows[i].median_us = rows[i].p10_us = rows[i].p90_us = rows[i].mean_us = NAN; /* never report a time for a failure */
    }
  }
  rc = any_fail ? 1 : 0;
done:
  for (int i = 0; i < nv; i++)
    if (ws[i]) cudaFree(ws[i]);
  free_state(&s);
  return rc;
}
