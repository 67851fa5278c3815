/* kernel-lab core types: ops, variants, shapes, results. Pure C11; kernels are reached through the
 * launch functions of their variants. */
#ifndef KLAB_H
#define KLAB_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cuda_runtime_api.h>
#ifdef __cplusplus
extern "C" {
#endif

#define KLAB_MAX_DIMS 8
#define KLAB_MAX_TENSORS 8
#define KLAB_MAX_VARIANTS 16
#define KLAB_ERR_LEN 512

/* An error with context (file:line, op, shape), carried up to the command that reports it. */
typedef struct {
  char msg[KLAB_ERR_LEN];
} klab_err;

/* Sets err (if non-NULL) from a printf format, prefixed with file:line. Returns -1 for `return klab_fail(...)`. */
int klab_fail_at(klab_err *err, const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
#define klab_fail(err, ...) klab_fail_at((err), __FILE__, __LINE__, __VA_ARGS__)

/* Check a CUDA runtime call; on failure fill err with the call, the error string and context, return -1. */
#define KLAB_CUDA(err, call, ctx)                                                                    \
  do {                                                                                               \
    cudaError_t klab_cuda_rc_ = (call);                                                              \
    if (klab_cuda_rc_ != cudaSuccess)                                                                \
      return klab_fail((err), "%s: %s failed: %s (%s)", (ctx), #call, cudaGetErrorString(klab_cuda_rc_), \
                       cudaGetErrorName(klab_cuda_rc_));                                             \
  } while (0)

/* mkdir -p: 0 ok, -1 with errno set. */
int klab_mkdir_p(const char *dir);

/* After a kernel launch: catch launch-configuration errors at once (never silently lost). */
#define KLAB_CHECK_LAUNCH(err, ctx) KLAB_CUDA(err, cudaGetLastError(), ctx)

typedef enum { KLAB_DT_BF16 = 0, KLAB_DT_F32, KLAB_DT_I32 } klab_dtype;
const char *klab_dtype_name(klab_dtype dt);
size_t klab_dtype_size(klab_dtype dt);

typedef enum { KLAB_IN = 0, KLAB_OUT, KLAB_INOUT } klab_role;

/* How the gate fills an input tensor: a random draw from the seed's distribution times `scale` plus
 * `offset` (activations: scale 1; weights: scale 0.02; norm weights: offset 1, scale 0.1), or the op's
 * own fill function (token ids, positions). */
typedef struct klab_tensor_spec {
  const char *name;
  klab_dtype dtype;
  klab_role role;
  int64_t (*count)(const int64_t *shape); /* number of elements */
  float scale, offset;
  /* Optional custom fill of host memory (dtype layout); overrides scale/offset. */
  void (*fill)(void *host, int64_t count, const int64_t *shape, uint64_t seed);
} klab_tensor_spec;

/* Arguments handed to a variant's launch: device pointers in the op's tensor order. */
typedef struct {
  void *t[KLAB_MAX_TENSORS];
  const int64_t *shape;
  void *workspace;
  size_t workspace_bytes;
} klab_args;

typedef enum { KLAB_NAIVE = 0, KLAB_OPTIMIZED, KLAB_VENDOR, KLAB_EXTRA } klab_variant_kind;
const char *klab_variant_kind_name(klab_variant_kind k);

typedef struct klab_variant {
  const char *name;
  klab_variant_kind kind;
  const char *summary;
  /* 1 if the variant runs this shape; else 0 with the reason in why (reported as SKIP, never PASS). */
  int (*supports)(const int64_t *shape, char *why, size_t why_len);
  size_t (*workspace_bytes)(const int64_t *shape); /* NULL: none */
  /* Enqueue the op on stream; checks its own launches; 0 or -1 with err filled. */
  int (*launch)(const klab_args *args, cudaStream_t stream, klab_err *err);
} klab_variant;

typedef struct {
  const char *label; /* e.g. "qwen3-4b qkv" */
  int64_t d[KLAB_MAX_DIMS];
} klab_shape_preset;

/* The reference gets every tensor's host data (in its dtype, the inputs' initial values) and writes the
 * expected final value of each OUT/INOUT tensor, as double, into ref[i] (NULL for inputs). */
typedef int (*klab_reference_fn)(const void *const *host, double *const *ref, const int64_t *shape, klab_err *err);

typedef struct klab_op {
  const char *name;
  const char *summary;
  int ndims;
  const char *dim_names[KLAB_MAX_DIMS];
  int ntensors;
  klab_tensor_spec tensors[KLAB_MAX_TENSORS];
  /* Shape rules common to all variants (dims > 0, divisibility); 1 valid, else 0 with why. */
  int (*validate)(const int64_t *shape, char *why, size_t why_len);
  klab_reference_fn reference;
  double (*bytes)(const int64_t *shape); /* minimal traffic: each input read once, each output written once */
  double (*flops)(const int64_t *shape);
  /* Random shapes for the GPU gate tests, awkward ones included (rng state advanced). */
  void (*random_shape)(uint64_t *rng, int64_t *shape);
  int nvariants;
  const klab_variant *variants[KLAB_MAX_VARIANTS];
  int npresets;
  const klab_shape_preset *presets;
} klab_op;

/* ---- registry (harness/registry.c: one line per op) ---- */
int klab_op_count(void);
const klab_op *klab_op_at(int i);
const klab_op *klab_find_op(const char *name);
const klab_variant *klab_find_variant(const klab_op *op, const char *name);

/* ---- shapes ---- */
/* Parse "M=1,N=6144,K=2560" (all dims of the op, any order). 0 ok, -1 with err. */
int klab_parse_shape(const klab_op *op, const char *text, int64_t *shape, klab_err *err);
/* "M=1;N=6144;K=2560": the CSV form (no commas). */
void klab_format_shape(const klab_op *op, const int64_t *shape, char sep, char *buf, size_t len);
int64_t klab_shape_dim(const klab_op *op, const int64_t *shape, const char *dim); /* -1 if no such dim */

/* ---- tolerances (harness/tolerance.c: the one table) ---- */
typedef struct {
  double rtol;       /* elementwise relative part */
  double atol_rms;   /* elementwise absolute part, as a fraction of rms(ref) */
  double atol_abs;   /* elementwise absolute floor */
  double rel_l2;     /* bound on ||out-ref|| / ||ref|| */
} klab_tolerance;
klab_tolerance klab_tolerance_for(const char *op, klab_dtype out_dtype);
/* Rows of the table, for `klab list --tolerances` and the docs. */
int klab_tolerance_rows(void);
void klab_tolerance_row(int i, const char **op, klab_dtype *dt, klab_tolerance *tol);

/* ---- one result row: the CSV schema (docs/methodology.md explains every column) ---- */
typedef enum { KLAB_PASS = 0, KLAB_FAIL, KLAB_SKIP, KLAB_ERROR } klab_status;
const char *klab_status_name(klab_status s);

typedef struct {
  char op[32];
  char variant[32];
  int vendor; /* 1 for the vendor baseline (cuBLAS / cuBLASLt) */
  char shape[128];
  char dtype[16];
  klab_status status;
  double max_abs_err, max_rel_err, rel_l2; /* worst over the gate's seeds (NaN when not gated) */
  uint64_t seed;                            /* the seed of the worst (or failing) check */
  double median_us, p10_us, p90_us, mean_us; /* CUPTI kernel time per invocation (or events, see timer) */
  int n;
  double event_median_us; /* CUDA-event time per invocation, same launches */
  char timer[32];         /* "cupti" or "events", "+graph" / "+spaced" in those modes */
  double bytes, flops, ai, gbps, tflops;
  double pct_peak_bw, pct_peak_flops; /* NaN when peaks are unknown */
  double pct_size_bw;                 /* floor time of a streaming read of `bytes` / median (NaN: no curve) */
  double speedup_vs_vendor;           /* vendor median / this median; NaN without a vendor */
  char note[256];                     /* FAIL/SKIP/ERROR reason, or remarks */
} klab_result;

void klab_result_init(klab_result *r);
void klab_csv_header(FILE *f);
void klab_csv_row(FILE *f, const klab_result *r);
/* Parse a CSV file written by klab_csv_row (header required). Returns rows (malloc) and count, or -1. */
int klab_csv_read(const char *path, klab_result **rows, int *nrows, klab_err *err);

/* ---- measured ceilings (klab peaks) ---- */
#define KLAB_CURVE_MAX 64
typedef struct {
  int valid;
  char gpu[128];
  double read_bw_gbps;     /* streaming read, GB/s (1e9 B/s) */
  double gemm_bf16_tflops; /* cuBLAS bf16 GEMM 8192^3 */
  char date[32];
  /* Size curve: the best CUPTI kernel time (us) of a streaming read of curve_bytes[i] bytes from DRAM,
   * bytes ascending. ncurve 0 when not measured (older peaks files). */
  int ncurve;
  double curve_bytes[KLAB_CURVE_MAX], curve_us[KLAB_CURVE_MAX];
} klab_peaks;
int klab_peaks_load(const char *path, klab_peaks *p, klab_err *err);
int klab_peaks_save(const char *path, const klab_peaks *p, klab_err *err);
/* Default location for this GPU: results/peaks/<gpu-name-slug>.json under the current directory. */
void klab_peaks_default_path(const char *gpu_name, char *buf, size_t len);
/* The shortest time (us) the measured size curve allows for reading `bytes`: linear in bytes between
 * curve points, the 4 GiB rate past the last one. NaN without a curve or below its first point. */
double klab_peaks_read_floor_us(const klab_peaks *p, double bytes);
/* The peaks as a JSON object (the peaks file; the `peaks` object of a bundle's env.json). */
struct cJSON;
struct cJSON *klab_peaks_to_json(const klab_peaks *p);

#ifdef __cplusplus
}
#endif
#endif
