/* GPU runner of Qwen3 (see qwen3_gpu.h): built only from the lab's kernels, each chosen by winners.json. */
#define _POSIX_C_SOURCE 200809L
#include "engine/qwen3_gpu.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cuda_runtime_api.h>
#include "engine/qwen3_generate.h"
#include "engine/qwen3_gpu_kernels.h"
#include "engine/qwen3_variants.h"
#include "harness/bf16.h"
#include "harness/run.h"
#include "harness/timing.h"
#include "kernels/add_rmsnorm/add_rmsnorm.h"
#include "kernels/addnorm_gemv/addnorm_gemv.h"
#include "kernels/argmax/argmax.h"
#include "kernels/attn_decode/attn_decode.h"
#include "kernels/attn_prefill/attn_prefill.h"
#include "kernels/common/pdl.h"
#include "kernels/embedding/embedding.h"
#include "kernels/gemm/gemm.h"
#include "kernels/gemv/gemv.h"
#include "kernels/qk_norm_rope/qk_norm_rope.h"
#include "kernels/rmsnorm/rmsnorm.h"
#include "kernels/sample/sample.h"
#include "kernels/silu_mul/silu_mul.h"
#include "reference/rng.h"

#define CK(call, what) KLAB_CUDA(err, call, what)
enum { LOGIT_ROWS = 16, TOKEN_RING = 64, MAX_PROF_OPS = 1024 };

/* ---- the kernels the engine can run: (op, variant) -> launcher with the engine's calling convention ---- */
typedef int (*linear_fn)(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K, void *ws,
                         size_t wsb, cudaStream_t st, klab_err *err);
typedef int (*rmsnorm_fn)(const uint16_t *, const uint16_t *, uint16_t *, int64_t, int64_t, float, cudaStream_t, klab_err *);
typedef int (*add_rmsnorm_fn)(uint16_t *, const uint16_t *, const uint16_t *, uint16_t *, int64_t, int64_t, float,
                              cudaStream_t, klab_err *);
typedef int (*addnorm_gemv_fn)(const uint16_t *, const uint16_t *, const uint16_t *, const uint16_t *, uint16_t *, uint16_t *,
                               int64_t, int64_t, int64_t, int, float, cudaStream_t, klab_err *);
typedef int (*silu_fn)(const uint16_t *, uint16_t *, int64_t, int64_t, cudaStream_t, klab_err *);
typedef int (*embedding_fn)(const int32_t *, const uint16_t *, uint16_t *, int32_t *, int64_t, int64_t, int64_t,
                            cudaStream_t, klab_err *);
typedef int (*qknr_fn)(const uint16_t *, const uint16_t *, const uint16_t *, uint16_t *, uint16_t *, uint16_t *,
                       const int32_t *, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, float, float, cudaStream_t,
                       klab_err *);
typedef int (*attn_decode_fn)(const uint16_t *, const uint16_t *, const uint16_t *, uint16_t *, const int32_t *, int64_t,
                              int64_t, int64_t, int64_t, int64_t, void *, size_t, cudaStream_t, klab_err *);
typedef int (*attn_prefill_fn)(const uint16_t *, const uint16_t *, const uint16_t *, uint16_t *, int64_t, int64_t,
                               int64_t, int64_t, int64_t, int64_t, void *, size_t, cudaStream_t, klab_err *);
typedef int (*argmax_fn)(const void *, klab_dtype, int64_t, int32_t *, void *, size_t, cudaStream_t, klab_err *);
typedef int (*sample_fn)(const void *, klab_dtype, int64_t, const ref_sample_params *, uint64_t, const int32_t *, int64_t,
                         int32_t *, float *, void *, size_t, cudaStream_t, klab_err *);

static int lin_gemv_naive(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K, void *ws,
                          size_t wsb, cudaStream_t st, klab_err *err) {
  return gemv_naive(x, W, y, M, N, K, st, err);
}
static int lin_gemv_optimized(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K,
                              void *ws, size_t wsb, cudaStream_t st, klab_err *err) {
  return gemv_optimized(x, W, y, M, N, K, st, err);
}

/* gemv's measured candidates (kernels/gemv/gemv.h), so a winner among them runs as measured. */
#define GEMV_ADAPTER(name)                                                                                        \
  static int lin_gemv_##name(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K, \
                             void *ws, size_t wsb, cudaStream_t st, klab_err *err) {                            \
    return gemv_##name(x, W, y, M, N, K, st, err);                                                              \
  }
GEMV_ADAPTER(v3)
GEMV_ADAPTER(cc)
GEMV_ADAPTER(cc_xs)
GEMV_ADAPTER(cc_xs_b4)
GEMV_ADAPTER(mma)
GEMV_ADAPTER(mma_pf)
GEMV_ADAPTER(mma_xs)

typedef void (*any_fn)(void);
typedef struct {
  const char *op, *variant;
  any_fn fn;
} kernel_entry;

/* Every variant the engine can run. The device-position / device-length forms are the optimized kernels
 * reading their scalar from memory. attn_decode's extra candidates are left out: opt_cluster takes no device
 * length (the decode graph needs one) and the others size their workspace differently. attn_decode optimized
 * runs as its _nomemset entry: setup zeroes the workspace once and every launch leaves its counters zero, so
 * the graph has no memset node per layer to break the chain of programmatic dependent launches. */
static const kernel_entry kernels[] = {
    {"gemv", "naive", (any_fn)lin_gemv_naive},
    {"gemv", "optimized", (any_fn)lin_gemv_optimized},
    {"gemv", "cublas", (any_fn)gemv_cublas},
    {"gemv", "cublaslt", (any_fn)gemv_cublaslt},
    {"gemv", "v3", (any_fn)lin_gemv_v3},
    {"gemv", "cc", (any_fn)lin_gemv_cc},
    {"gemv", "cc_xs", (any_fn)lin_gemv_cc_xs},
    {"gemv", "cc_xs_b4", (any_fn)lin_gemv_cc_xs_b4},
    {"gemv", "mma", (any_fn)lin_gemv_mma},
    {"gemv", "mma_pf", (any_fn)lin_gemv_mma_pf},
    {"gemv", "mma_xs", (any_fn)lin_gemv_mma_xs},
    {"gemm", "naive", (any_fn)gemm_naive},
    {"gemm", "mma", (any_fn)gemm_mma},
    {"gemm", "optimized", (any_fn)gemm_optimized},
    {"gemm", "cublas", (any_fn)gemv_cublas},
    {"gemm", "cublaslt", (any_fn)gemv_cublaslt},
    {"addnorm_gemv", "naive", (any_fn)addnorm_gemv_naive},
    {"addnorm_gemv", "optimized", (any_fn)addnorm_gemv_optimized},
    {"addnorm_gemv_silu", "naive", (any_fn)addnorm_gemv_naive},
    {"addnorm_gemv_silu", "optimized", (any_fn)addnorm_gemv_optimized},
    {"rmsnorm", "naive", (any_fn)rmsnorm_naive},
    {"rmsnorm", "optimized", (any_fn)rmsnorm_optimized},
    {"add_rmsnorm", "naive", (any_fn)add_rmsnorm_naive},
    {"add_rmsnorm", "optimized", (any_fn)add_rmsnorm_optimized},
    {"silu_mul", "naive", (any_fn)silu_mul_naive},
    {"silu_mul", "optimized", (any_fn)silu_mul_optimized},
    {"embedding", "naive", (any_fn)embedding_naive},
    {"embedding", "optimized", (any_fn)embedding_optimized},
    {"embedding", "stream", (any_fn)embedding_optimized}, /* committed winners name it: the hints optimized now has */
    {"embedding", "cached", (any_fn)embedding_cached},
    {"embedding", "vpl4", (any_fn)embedding_vpl4},
    {"embedding", "vpl16", (any_fn)embedding_vpl16},
    {"embedding", "v1", (any_fn)embedding_v1},
    {"qk_norm_rope", "naive", (any_fn)qk_norm_rope_naive},
    {"qk_norm_rope", "optimized", (any_fn)qk_norm_rope_optimized},
    {"qk_norm_rope", "optimized_devpos", (any_fn)qk_norm_rope_optimized},
    {"qk_norm_rope", "w2s6", (any_fn)qk_norm_rope_w2s6},
    {"qk_norm_rope", "w6s2", (any_fn)qk_norm_rope_w6s2},
    {"qk_norm_rope", "w12s1", (any_fn)qk_norm_rope_w12s1},
    {"qk_norm_rope", "pipe", (any_fn)qk_norm_rope_pipe},
    {"qk_norm_rope", "v1", (any_fn)qk_norm_rope_v1},
    {"attn_decode", "naive", (any_fn)attn_decode_naive},
    {"attn_decode", "optimized", (any_fn)attn_decode_optimized_nomemset},
    {"attn_decode", "optimized_devctx", (any_fn)attn_decode_optimized_nomemset},
    {"attn_prefill", "naive", (any_fn)attn_prefill_naive},
    {"attn_prefill", "optimized", (any_fn)attn_prefill_optimized},
    {"argmax", "naive", (any_fn)argmax_naive},
    {"argmax", "optimized", (any_fn)argmax_optimized},
    {"sample", "naive", (any_fn)sample_naive},
    {"sample", "optimized", (any_fn)sample_optimized},
};

static any_fn find_kernel(const char *op, const char *variant) {
  for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++)
    if (!strcmp(kernels[i].op, op) && !strcmp(kernels[i].variant, variant)) return kernels[i].fn;
  return NULL;
}

/* ---- state ---- */
typedef struct {
  uint16_t *qkv, *o, *gate_up, *down, *in_norm, *post_norm, *q_norm, *k_norm;
} gpu_layer;

/* One op call of the decode step, for --profile. */
typedef struct {
  const char *op, *label, *variant;
  int64_t dims[KLAB_MAX_DIMS];
} prof_site;

/* A chosen kernel for one call site (decode sites are resolved once at creation). */
typedef struct {
  any_fn fn;
  const char *variant;
} choice;

typedef struct {
  qwen3_runner base;
  qwen3_config c;
  qwen3_gpu_opts o;
  qwen3_variants *winners;
  cudaStream_t stream;
  int64_t max_ctx, chunk, qkv_n;
  uint16_t *embed, *final_norm, *lm_head;
  gpu_layer *L;
  uint16_t *k_cache, *v_cache; /* [layers][kv_heads][max_ctx][head_dim] */
  /* activations, [chunk, ...] */
  uint16_t *x, *h, *qkv, *q, *att, *ao, *gu, *act, *down, *logits;
  int32_t *ids, *scalars, *h_tokens, *h_scalar;
  cudaEvent_t ev[TOKEN_RING];
  void *ws_vendor, *ws_attn_decode, *ws_attn_prefill, *ws_argmax, *ws_sample, *ws_gemm;
  size_t wsb_vendor, wsb_attn_decode, wsb_attn_prefill, wsb_argmax, wsb_sample, wsb_gemm;
  double weights_bytes, decode_read_bytes, act_bytes;
  size_t peak_used;
  /* decode kernels (M = 1) */
  choice d_qkv, d_o, d_gu, d_down, d_lm, d_emb, d_norm, d_addnorm, d_qknr, d_attn, d_silu, d_argmax, d_sample;
  /* fused decode (addnorm_gemv ops registered and not --no-fuse): norm+qkv, norm+gate|up+silu, norm+lm_head */
  int fused;
  choice f_qkv, f_gu, f_lm;
  uint16_t *x2; /* the second residual buffer: the fused ops read one and write the other */
  /* prefill element-wise kernels (chosen at the chunk size) */
  choice p_emb, p_norm, p_addnorm, p_qknr, p_silu, p_attn;
  /* the decode graph and the sampling it was captured with */
  cudaGraphExec_t graph;
  int graph_ok;
  ref_sample_params graph_params;
  uint64_t graph_seed;
  /* --profile bookkeeping */
  int prof_on, prof_n;
  uint64_t prof_base;
  prof_site prof[MAX_PROF_OPS];
  char missing_note[2048];
} gpu_runner;

static void note_peak(gpu_runner *g) {
  size_t fr = 0, tot = 0;
  if (cudaMemGetInfo(&fr, &tot) == cudaSuccess && tot - fr > g->peak_used) g->peak_used = tot - fr;
}

/* Pick op's variant for shape dims (names from harness/model_shapes.c's order). Unknown or absent
 * winners use `optimized`, said once per op. */
static int choose(gpu_runner *g, const char *op, int ndims, const char *const *names, const int64_t *vals, const char *label,
                  choice *out, klab_err *err) {
  qwen3_variant_pick p = qwen3_variants_pick(g->winners, op, ndims, names, vals);
  const char *v = p.variant;
  if (v && !find_kernel(op, v)) {
    if (g->o.verbose) fprintf(stderr, "qwen3: %s %s: winner '%s' is not a variant the engine runs; using optimized\n", op, label, v);
    v = NULL;
  }
  if (!v) {
    char key[64];
    snprintf(key, sizeof key, " %s ", op); /* whole names: "gemv" is inside "addnorm_gemv" */
    if (g->winners && !strstr(g->missing_note, key)) { /* without a winners file the note said it once */
      fprintf(stderr, "qwen3: no winner for op %s in the variants file: using its optimized variant\n", op);
      size_t n = strlen(g->missing_note);
      snprintf(g->missing_note + n, sizeof g->missing_note - n, "%s", n ? key + 1 : key);
    }
    v = "optimized";
  } else if (g->o.verbose) {
    fprintf(stderr, "qwen3: %-12s %-14s -> %-16s (%s %s)\n", op, label, v, p.exact ? "measured at" : "nearest measured", p.shape);
  }
  /* A linear variant may decline a shape (e.g. tile or alignment rules): then cuBLAS runs it (--verbose says so). */
  const klab_op *kop = klab_find_op(op);
  const klab_variant *kv = kop ? klab_find_variant(kop, v) : NULL;
  if (kv && kv->supports && (!strcmp(op, "gemm") || !strcmp(op, "gemv"))) {
    int64_t shape[KLAB_MAX_DIMS] = {0};
    memcpy(shape, vals, (size_t)ndims * sizeof *vals);
    char why[256] = "";
    if (!kv->supports(shape, why, sizeof why)) {
      if (g->o.verbose)
        fprintf(stderr, "qwen3: %s %s (M=%lld N=%lld K=%lld): %s declines (%s); cublas runs it\n", op, label, (long long)vals[0],
              (long long)vals[1], (long long)vals[2], v, why);
      v = "cublas";
    }
  }
  out->fn = find_kernel(op, v);
  out->variant = v;
  if (!out->fn) return klab_fail(err, "qwen3: op %s has no variant %s in the engine's kernel table", op, v);
  return 0;
}

static const char *const DIMS_MNK[] = {"M", "N", "K"}, *const DIMS_TH[] = {"T", "H"}, *const DIMS_TI[] = {"T", "I"},
                         *const DIMS_TVH[] = {"T", "V", "H"}, *const DIMS_QKNR[] = {"T", "HQ", "HKV", "D", "P0"},
                         *const DIMS_ATTD[] = {"HQ", "HKV", "D", "CTX"}, *const DIMS_ATTP[] = {"T", "P0", "HQ", "HKV", "D"},
                         *const DIMS_N[] = {"N"}, *const DIMS_V[] = {"V"};

static int choose_linear(gpu_runner *g, int64_t M, int64_t N, int64_t K, const char *label, choice *out, klab_err *err) {
  int64_t d[3] = {M, N, K};
  return choose(g, M <= KLAB_GEMV_MAX_M ? "gemv" : "gemm", 3, DIMS_MNK, d, label, out, err);
}

/* ---- profiling hooks around each op call ---- */
static int prof_begin(gpu_runner *g, const char *op, const char *label, const char *variant, const int64_t *dims, int nd,
                      klab_err *err) {
  if (!g->prof_on) return 0;
  if (g->prof_n >= MAX_PROF_OPS) return klab_fail(err, "qwen3 profile: more than %d ops in one step", MAX_PROF_OPS);
  prof_site *s = &g->prof[g->prof_n];
  s->op = op, s->label = label, s->variant = variant;
  memset(s->dims, 0, sizeof s->dims);
  memcpy(s->dims, dims, (size_t)nd * sizeof *dims);
  return klab_cupti_push(g->prof_base + (uint64_t)g->prof_n, err);
}
static int prof_end(gpu_runner *g, klab_err *err) {
  if (!g->prof_on) return 0;
  g->prof_n++;
  return klab_cupti_pop(err);
}
#define OPCALL(op, label, ch, dims, nd, call)                                                  \
  do {                                                                                         \
    if (prof_begin(g, op, label, (ch).variant, dims, nd, err)) return -1;                      \
    if (call) return klab_fail(err, "%s (%s, %s variant): %s", label, op, (ch).variant, err->msg); \
    if (prof_end(g, err)) return -1;                                                           \
  } while (0)

static int linear(gpu_runner *g, const choice *ch, const char *label, const uint16_t *x, const uint16_t *W, uint16_t *y,
                  int64_t M, int64_t N, int64_t K, klab_err *err) {
  int is_gemm = M > KLAB_GEMV_MAX_M;
  void *ws = ch->fn == (any_fn)gemm_naive || ch->fn == (any_fn)gemm_mma || ch->fn == (any_fn)gemm_optimized ? g->ws_gemm : g->ws_vendor;
  size_t wsb = ws == g->ws_gemm ? g->wsb_gemm : g->wsb_vendor;
  int64_t d[3] = {M, N, K};
  OPCALL(is_gemm ? "gemm" : "gemv", label, *ch, d, 3, ((linear_fn)ch->fn)(x, W, y, M, N, K, ws, wsb, g->stream, err));
  return 0;
}

/* One pass of T tokens through the layers, ending with the final norm in g->h.
 * decode: T = 1, token / position / length from the device scalars (graph-capturable).
 * prefill: ids in g->ids, positions p0..p0+T-1. */
static int layers_pass(gpu_runner *g, int64_t T, int64_t p0, int decode, klab_err *err) {
  const qwen3_config *c = &g->c;
  int64_t H = c->hidden, I = c->intermediate, D = c->head_dim, HQ = c->heads, HKV = c->kv_heads, V = c->vocab;
  float eps = (float)c->rms_norm_eps, theta = (float)c->rope_theta;
  int32_t *tok = decode ? g->scalars + QWEN3_SCALAR_TOKEN : g->ids;
  const int32_t *pos_dev = decode ? g->scalars + QWEN3_SCALAR_POS : NULL;
  const int32_t *ctx_dev = g->scalars + QWEN3_SCALAR_CTX;
  choice qkv, o, gu, down;
  if (decode) {
    qkv = g->d_qkv, o = g->d_o, gu = g->d_gu, down = g->d_down;
  } else {
    if (choose_linear(g, T, g->qkv_n, H, "qkv", &qkv, err) || choose_linear(g, T, H, HQ * D, "o", &o, err) ||
        choose_linear(g, T, 2 * I, H, "gate_up", &gu, err) || choose_linear(g, T, H, I, "down", &down, err))
      return -1;
  }
  const choice *emb = decode ? &g->d_emb : &g->p_emb, *norm = decode ? &g->d_norm : &g->p_norm,
               *addnorm = decode ? &g->d_addnorm : &g->p_addnorm, *qknr = decode ? &g->d_qknr : &g->p_qknr,
               *silu = decode ? &g->d_silu : &g->p_silu;
  int64_t d_emb[3] = {T, V, H}, d_th[2] = {T, H}, d_ti[2] = {T, I}, d_qk[5] = {T, HQ, HKV, D, p0};
  OPCALL("embedding", "embedding", *emb, d_emb, 3,
         ((embedding_fn)emb->fn)(tok, g->embed, g->x, g->scalars + QWEN3_SCALAR_BAD, T, V, H, g->stream, err));
  OPCALL("rmsnorm", "input norm", *norm, d_th, 2,
         ((rmsnorm_fn)norm->fn)(g->x, g->L[0].in_norm, g->h, T, H, eps, g->stream, err));
  for (int64_t l = 0; l < c->layers; l++) {
    const gpu_layer *w = &g->L[l];
    size_t coff = (size_t)(l * HKV * g->max_ctx * D);
    uint16_t *kc = g->k_cache + coff, *vc = g->v_cache + coff;
    if (linear(g, &qkv, "qkv", g->h, w->qkv, g->qkv, T, g->qkv_n, H, err)) return -1;
    OPCALL("qk_norm_rope", "qk norm+rope", *qknr, d_qk, 5,
           ((qknr_fn)qknr->fn)(g->qkv, w->q_norm, w->k_norm, g->q, kc, vc, pos_dev, p0, T, HQ, HKV, D, g->max_ctx, theta,
                               eps, g->stream, err));
    if (decode) {
      int64_t d_at[4] = {HQ, HKV, D, p0 + 1};
      OPCALL("attn_decode", "attention", g->d_attn, d_at, 4,
             ((attn_decode_fn)g->d_attn.fn)(g->q, kc, vc, g->att, ctx_dev, p0 + 1, HQ, HKV, D, g->max_ctx,
                                            g->ws_attn_decode, g->wsb_attn_decode, g->stream, err));
    } else {
      int64_t d_at[5] = {T, p0, HQ, HKV, D};
      OPCALL("attn_prefill", "attention", g->p_attn, d_at, 5,
             ((attn_prefill_fn)g->p_attn.fn)(g->q, kc, vc, g->att, T, p0, HQ, HKV, D, g->max_ctx, g->ws_attn_prefill,
                                             g->wsb_attn_prefill, g->stream, err));
    }
    if (linear(g, &o, "o", g->att, w->o, g->ao, T, H, HQ * D, err)) return -1;
    OPCALL("add_rmsnorm", "post-attn add+norm", *addnorm, d_th, 2,
           ((add_rmsnorm_fn)addnorm->fn)(g->x, g->ao, w->post_norm, g->h, T, H, eps, g->stream, err));
    if (linear(g, &gu, "gate_up", g->h, w->gate_up, g->gu, T, 2 * I, H, err)) return -1;
    OPCALL("silu_mul", "silu*up", *silu, d_ti, 2, ((silu_fn)silu->fn)(g->gu, g->act, T, I, g->stream, err));
    if (linear(g, &down, "down", g->act, w->down, g->down, T, H, I, err)) return -1;
    const uint16_t *next = l + 1 < c->layers ? g->L[l + 1].in_norm : g->final_norm;
    OPCALL("add_rmsnorm", l + 1 < c->layers ? "mlp add+norm" : "final add+norm", *addnorm, d_th, 2,
           ((add_rmsnorm_fn)addnorm->fn)(g->x, g->down, next, g->h, T, H, eps, g->stream, err));
  }
  return 0;
}

/* The fused decode step up to the logits: 6 kernels per layer instead of 9. The residual stream
 * alternates between g->x and g->x2 because a fused op reads one residual while it writes the next. */
static int fused_decode_pass(gpu_runner *g, int64_t pos_hint, klab_err *err) {
  const qwen3_config *c = &g->c;
  int64_t H = c->hidden, I = c->intermediate, D = c->head_dim, HQ = c->heads, HKV = c->kv_heads, V = c->vocab;
  float eps = (float)c->rms_norm_eps, theta = (float)c->rope_theta;
  uint16_t *cur = g->x, *nxt = g->x2, *t;
  int64_t d_emb[3] = {1, V, H}, d_qk[5] = {1, HQ, HKV, D, pos_hint}, d_at[4] = {HQ, HKV, D, pos_hint + 1};
  int64_t d_qkv[3] = {1, g->qkv_n, H}, d_gu[3] = {1, 2 * I, H}, d_lm[3] = {1, V, H};
  OPCALL("embedding", "embedding", g->d_emb,  d_emb, 3,
         ((embedding_fn)g->d_emb.fn)(g->scalars + QWEN3_SCALAR_TOKEN, g->embed, cur, g->scalars + QWEN3_SCALAR_BAD, 1, V, H,
                                     g->stream, err));
  for (int64_t l = 0; l < c->layers; l++) {
    const gpu_layer *w = &g->L[l];
    size_t coff = (size_t)(l * HKV * g->max_ctx * D);
    uint16_t *kc = g->k_cache + coff, *vc = g->v_cache + coff;
    const uint16_t *delta = l == 0 ? NULL : g->down;
    OPCALL("addnorm_gemv", "add+norm+qkv", g->f_qkv, d_qkv, 3,
           ((addnorm_gemv_fn)g->f_qkv.fn)(cur, delta, w->in_norm, w->qkv, delta ? nxt : NULL, g->qkv, 1, g->qkv_n, H, 0, eps,
                                          g->stream, err));
    if (delta) t = cur, cur = nxt, nxt = t;
    OPCALL("qk_norm_rope", "qk norm+rope", g->d_qknr, d_qk, 5,
           ((qknr_fn)g->d_qknr.fn)(g->qkv, w->q_norm, w->k_norm, g->q, kc, vc, g->scalars + QWEN3_SCALAR_POS, pos_hint, 1, HQ,
                                   HKV, D, g->max_ctx, theta, eps, g->stream, err));
    OPCALL("attn_decode", "attention", g->d_attn, d_at, 4,
           ((attn_decode_fn)g->d_attn.fn)(g->q, kc, vc, g->att, g->scalars + QWEN3_SCALAR_CTX, pos_hint + 1, HQ, HKV, D,
                                          g->max_ctx, g->ws_attn_decode, g->wsb_attn_decode, g->stream, err));
    if (linear(g, &g->d_o, "o", g->att, w->o, g->ao, 1, H, HQ * D, err)) return -1;
    OPCALL("addnorm_gemv_silu", "add+norm+gate_up+silu", g->f_gu, d_gu, 3,
           ((addnorm_gemv_fn)g->f_gu.fn)(cur, g->ao, w->post_norm, w->gate_up, nxt, g->act, 1, 2 * I, H, 1, eps, g->stream, err));
    t = cur, cur = nxt, nxt = t;
    if (linear(g, &g->d_down, "down", g->act, w->down, g->down, 1, H, I, err)) return -1;
  }
  OPCALL("addnorm_gemv", "add+norm+lm_head", g->f_lm, d_lm, 3,
         ((addnorm_gemv_fn)g->f_lm.fn)(cur, g->down, g->final_norm, g->lm_head, NULL, g->logits, 1, V, H, 0, eps, g->stream, err));
  return 0;
}

/* The decode step: layers, lm_head, the next token into the scalar block, position advanced. */
static int decode_pass(gpu_runner *g, int64_t pos_hint, const ref_sample_params *sp, uint64_t seed, klab_err *err) {
  const qwen3_config *c = &g->c;
  if (g->fused) {
    if (fused_decode_pass(g, pos_hint, err)) return -1;
  } else if (layers_pass(g, 1, pos_hint, 1, err) ||
             linear(g, &g->d_lm, "lm_head", g->h, g->lm_head, g->logits, 1, c->vocab, c->hidden, err)) {
    return -1;
  }
  int32_t *tok = g->scalars + QWEN3_SCALAR_TOKEN;
  int64_t dn[1] = {c->vocab};
  if (sp->temperature <= 0) {
    OPCALL("argmax", "argmax", g->d_argmax, dn, 1,
           ((argmax_fn)g->d_argmax.fn)(g->logits, KLAB_DT_BF16, c->vocab, tok, g->ws_argmax, g->wsb_argmax, g->stream, err));
  } else {
    OPCALL("sample", "sample", g->d_sample, dn, 1,
           ((sample_fn)g->d_sample.fn)(g->logits, KLAB_DT_BF16, c->vocab, sp, seed, g->scalars + QWEN3_SCALAR_STEP, 0, tok,
                                       NULL, g->ws_sample, g->wsb_sample, g->stream, err));
  }
  return qwen3_scalars_advance(g->scalars, g->stream, err);
}

static int ensure_graph(gpu_runner *g, const ref_sample_params *sp, uint64_t seed, klab_err *err) {
  if (g->graph_ok && !memcmp(&g->graph_params, sp, sizeof *sp) && g->graph_seed == seed) return 0;
  if (g->graph_ok) {
    cudaGraphExecDestroy(g->graph);
    g->graph_ok = 0;
  }
  cudaGraph_t graph;
  CK(cudaStreamBeginCapture(g->stream, cudaStreamCaptureModeThreadLocal), "qwen3: begin decode graph capture");
  /* Programmatic dependent launch: each kernel that supports it starts (weight loads, block scheduling) while
   * the one before it drains, and waits in-kernel for its inputs (kernels/common/launch.cuh). */
  const int pdl_was = klab_pdl_set(!g->o.no_pdl);
  int rc = decode_pass(g, 0, sp, seed, err);
  klab_pdl_set(pdl_was);
  cudaError_t e = cudaStreamEndCapture(g->stream, &graph);
  if (rc) return -1;
  if (e != cudaSuccess) return klab_fail(err, "qwen3: decode graph capture failed: %s", cudaGetErrorString(e));
  e = cudaGraphInstantiate(&g->graph, graph, 0);
  cudaGraphDestroy(graph);
  if (e != cudaSuccess) return klab_fail(err, "qwen3: decode graph instantiation failed: %s", cudaGetErrorString(e));
  g->graph_ok = 1;
  g->graph_params = *sp;
  g->graph_seed = seed;
  return 0;
}

static int decode_launch(gpu_runner *g, int64_t pos, const ref_sample_params *sp, uint64_t seed, klab_err *err) {
  if (g->o.no_graph) return decode_pass(g, pos, sp, seed, err);
  CK(cudaGraphLaunch(g->graph, g->stream), "qwen3: decode graph launch");
  return 0;
}

/* Prefill ids[0..T) at positions pos.. in chunks; on return g->h holds the final-normed rows of the last chunk
 * (n_last rows). When host_logits is set, every row's logits are copied there as float ([T, vocab]). */
static int prefill(gpu_runner *g, const int32_t *ids, int64_t T, float *host_logits, int64_t *n_last, klab_err *err) {
  qwen3_runner *r = &g->base;
  const qwen3_config *c = &g->c;
  for (int64_t i = 0; i < T; i++)
    if (ids[i] < 0 || ids[i] >= c->vocab)
      return klab_fail(err, "token id %d at position %lld is outside the vocabulary [0, %lld)", ids[i], (long long)i,
                       (long long)c->vocab);
  if (r->pos + T > g->max_ctx)
    return klab_fail(err, "context full: %lld cached + %lld new tokens > %lld (the runner's max context)",
                     (long long)r->pos, (long long)T, (long long)g->max_ctx);
  uint16_t *hb = NULL;
  if (host_logits && !(hb = malloc((size_t)(LOGIT_ROWS * c->vocab) * sizeof *hb))) return klab_fail(err, "out of memory");
  int rc = 0;
  for (int64_t done = 0; !rc && done < T;) {
    int64_t n = T - done < g->chunk ? T - done : g->chunk;
    rc = -1;
    if (cudaMemcpyAsync(g->ids, ids + done, (size_t)n * sizeof *ids, cudaMemcpyHostToDevice, g->stream) != cudaSuccess) {
      klab_fail(err, "qwen3 prefill: id upload failed");
      break;
    }
    if (layers_pass(g, n, r->pos, 0, err)) break;
    for (int64_t row = 0; host_logits && row < n; row += LOGIT_ROWS) {
      int64_t m = n - row < LOGIT_ROWS ? n - row : LOGIT_ROWS;
      choice lm;
      if (choose_linear(g, m, c->vocab, c->hidden, "lm_head", &lm, err) ||
          linear(g, &lm, "lm_head", g->h + row * c->hidden, g->lm_head, g->logits, m, c->vocab, c->hidden, err))
        goto out;
      if (cudaMemcpyAsync(hb, g->logits, (size_t)(m * c->vocab) * sizeof *hb, cudaMemcpyDeviceToHost, g->stream) != cudaSuccess ||
          cudaStreamSynchronize(g->stream) != cudaSuccess) {
        klab_fail(err, "qwen3 prefill: logits copy failed");
        goto out;
      }
      float *dst = host_logits + (done + row) * c->vocab;
      for (int64_t i = 0; i < m * c->vocab; i++) dst[i] = klab_bf16_to_float(hb[i]);
    }
    r->pos += n;
    done += n;
    *n_last = n;
    rc = 0;
  }
out:
  free(hb);
  note_peak(g);
  return rc;
}

static int check_bad_ids(gpu_runner *g, klab_err *err) {
  CK(cudaMemcpyAsync(g->h_scalar, g->scalars + QWEN3_SCALAR_BAD, sizeof(int32_t), cudaMemcpyDeviceToHost, g->stream),
     "qwen3: read the embedding's bad-id count");
  CK(cudaStreamSynchronize(g->stream), "qwen3: forward");
  if (*g->h_scalar) return klab_fail(err, "qwen3: the embedding saw %d token id(s) outside the vocabulary", *g->h_scalar);
  return 0;
}

/* runner interface: forward T tokens, logits to the host as float */
static int gpu_forward(qwen3_runner *r, const int32_t *ids, int64_t T, int all_logits, float *logits, klab_err *err) {
  gpu_runner *g = r->impl;
  const qwen3_config *c = &g->c;
  if (T < 1) return klab_fail(err, "forward of %lld tokens", (long long)T);
  if (all_logits) return prefill(g, ids, T, logits, &(int64_t){0}, err) || check_bad_ids(g, err) ? -1 : 0;
  int64_t n_last = 0;
  if (prefill(g, ids, T, NULL, &n_last, err)) return -1;
  choice lm;
  if (choose_linear(g, 1, c->vocab, c->hidden, "lm_head", &lm, err) ||
      linear(g, &lm, "lm_head", g->h + (n_last - 1) * c->hidden, g->lm_head, g->logits, 1, c->vocab, c->hidden, err))
    return -1;
  uint16_t *hb = malloc((size_t)c->vocab * sizeof *hb);
  if (!hb) return klab_fail(err, "out of memory");
  cudaError_t e = cudaMemcpyAsync(hb, g->logits, (size_t)c->vocab * sizeof *hb, cudaMemcpyDeviceToHost, g->stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(g->stream);
  if (e != cudaSuccess) {
    free(hb);
    return klab_fail(err, "qwen3 forward: logits copy failed: %s", cudaGetErrorString(e));
  }
  for (int64_t i = 0; i < c->vocab; i++) logits[i] = klab_bf16_to_float(hb[i]);
  free(hb);
  return check_bad_ids(g, err);
}

/* Token i's copy to pinned memory and its event. */
static int token_copy(gpu_runner *g, int64_t i, klab_err *err) {
  int slot = (int)(i % TOKEN_RING);
  CK(cudaMemcpyAsync(g->h_tokens + slot, g->scalars + QWEN3_SCALAR_TOKEN, sizeof(int32_t), cudaMemcpyDeviceToHost, g->stream),
     "qwen3: token copy");
  CK(cudaEventRecord(g->ev[slot], g->stream), "qwen3: token event");
  return 0;
}

static int token_wait(gpu_runner *g, int64_t i, int32_t *id, klab_err *err) {
  int slot = (int)(i % TOKEN_RING);
  CK(cudaEventSynchronize(g->ev[slot]), "qwen3: decode step");
  *id = g->h_tokens[slot];
  return 0;
}

/* Prefill, first token by device sampling, then graph-replayed decode steps. The host reads token i-1
 * while step i runs, so the GPU never waits for the host between steps. */
static int gpu_generate(qwen3_runner *r, const int32_t *prompt, int64_t n_prompt, const qwen3_gen_opts *o,
                        qwen3_token_fn on_token, void *user, qwen3_ids *out, qwen3_gen_stats *st, klab_err *err) {
  gpu_runner *g = r->impl;
  const qwen3_config *c = &g->c;
  memset(st, 0, sizeof *st);
  st->prompt_tokens = n_prompt;
  if (n_prompt < 1) return klab_fail(err, "empty prompt: nothing to condition on");
  if (o->max_new_tokens < 1) return 0;
  r->pos = 0;
  double t0 = qwen3_now_ms();
  int64_t n_last = 0;
  if (prefill(g, prompt, n_prompt, NULL, &n_last, err)) return -1;
  if (linear(g, &g->d_lm, "lm_head", g->h + (n_last - 1) * c->hidden, g->lm_head, g->logits, 1, c->vocab, c->hidden, err))
    return -1;
  int32_t *tok = g->scalars + QWEN3_SCALAR_TOKEN;
  if (o->sample.temperature <= 0) {
    if (((argmax_fn)g->d_argmax.fn)(g->logits, KLAB_DT_BF16, c->vocab, tok, g->ws_argmax, g->wsb_argmax, g->stream, err))
      return -1;
  } else if (((sample_fn)g->d_sample.fn)(g->logits, KLAB_DT_BF16, c->vocab, &o->sample, o->seed, NULL, 0, tok, NULL,
                                         g->ws_sample, g->wsb_sample, g->stream, err)) {
    return -1;
  }
  if (token_copy(g, 0, err) || qwen3_scalars_set(g->scalars, n_prompt, 1, g->stream, err)) return -1;
  if (!g->o.no_graph && ensure_graph(g, &o->sample, o->seed, err)) return -1;
  int32_t id = 0;
  if (token_wait(g, 0, &id, err) || check_bad_ids(g, err)) return -1;
  st->prefill_ms = qwen3_now_ms() - t0;
  double t1 = qwen3_now_ms();
  int rc = qwen3_take_token(o, id, on_token, user, out, st, err);
  int64_t pending = -1, pos = n_prompt;
  for (int64_t s = 1; rc == 0 && s < o->max_new_tokens; s++) {
    if (pos >= g->max_ctx) {
      st->context_full = 1;
      break;
    }
    if (decode_launch(g, pos, &o->sample, o->seed, err) || token_copy(g, s, err)) {
      rc = -1;
      break;
    }
    pos++;
    if (pending >= 0) {
      if (token_wait(g, pending, &id, err)) {
        rc = -1;
        break;
      }
      rc = qwen3_take_token(o, id, on_token, user, out, st, err);
    }
    pending = s;
  }
  if (rc == 0 && pending >= 0) {
    if (token_wait(g, pending, &id, err)) rc = -1;
    else rc = qwen3_take_token(o, id, on_token, user, out, st, err);
  }
  cudaError_t e = cudaStreamSynchronize(g->stream);
  st->decode_ms = qwen3_now_ms() - t1;
  r->pos = pos;
  note_peak(g);
  if (rc < 0) return -1;
  if (e != cudaSuccess) return klab_fail(err, "qwen3 decode: %s", cudaGetErrorString(e));
  return 0;
}

static void gpu_reset(qwen3_runner *r) { r->pos = 0; }

static void gpu_destroy(qwen3_runner *r) {
  if (!r) return;
  gpu_runner *g = r->impl;
  {
    if (g->graph_ok) cudaGraphExecDestroy(g->graph);
    if (g->L) {
      for (int64_t l = 0; l < g->c.layers; l++) {
        gpu_layer *w = &g->L[l];
        uint16_t *p[] = {w->qkv, w->o, w->gate_up, w->down, w->in_norm, w->post_norm, w->q_norm, w->k_norm};
        for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) cudaFree(p[i]);
      }
      free(g->L);
    }
    if (g->lm_head != g->embed) cudaFree(g->lm_head);
    void *d[] = {g->embed, g->final_norm, g->k_cache, g->v_cache, g->x, g->x2, g->h, g->qkv, g->q, g->att, g->ao, g->gu,
                 g->act, g->down, g->logits, g->ids, g->scalars, g->ws_vendor, g->ws_attn_decode, g->ws_attn_prefill,
                 g->ws_argmax, g->ws_sample, g->ws_gemm};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) cudaFree(d[i]);
    cudaFreeHost(g->h_tokens);
    cudaFreeHost(g->h_scalar);
    for (int i = 0; i < TOKEN_RING; i++)
      if (g->ev[i]) cudaEventDestroy(g->ev[i]);
    if (g->stream) cudaStreamDestroy(g->stream);
    qwen3_variants_free(g->winners);
    free(g);
  }
}

void qwen3_gpu_opts_default(qwen3_gpu_opts *o) {
  memset(o, 0, sizeof *o);
}

/* Upload n bf16 values, concatenating parts (fused weights) when nparts > 1. */
static int upload(uint16_t **dst, const uint16_t *const *parts, const int64_t *counts, int nparts, double *total, klab_err *err) {
  int64_t n = 0;
  for (int i = 0; i < nparts; i++) n += counts[i];
  CK(cudaMalloc((void **)dst, (size_t)n * 2), "qwen3: weight allocation");
  int64_t off = 0;
  for (int i = 0; i < nparts; i++) {
    CK(cudaMemcpy(*dst + off, parts[i], (size_t)counts[i] * 2, cudaMemcpyHostToDevice), "qwen3: weight upload");
    off += counts[i];
  }
  *total += 2.0 * (double)n;
  return 0;
}

static int alloc_dev(void **p, size_t bytes, double *total, klab_err *err) {
  if (bytes == 0) bytes = 16;
  CK(cudaMalloc(p, bytes), "qwen3: activation allocation");
  CK(cudaMemset(*p, 0, bytes), "qwen3: activation clear");
  *total += (double)bytes;
  return 0;
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

static int setup(gpu_runner *g, const qwen3_model *m, klab_err *err) {
  const qwen3_config *c = &g->c;
  int64_t H = c->hidden, I = c->intermediate, D = c->head_dim, HQ = c->heads, HKV = c->kv_heads, V = c->vocab;
  g->qkv_n = (HQ + 2 * HKV) * D;
  /* sizes first, so that "does not fit" is said before anything is uploaded */
  double weights = 2.0 * (double)V * H * (c->tie_word_embeddings ? 1 : 2) + 2.0 * H;
  weights += (double)c->layers * 2.0 * ((double)g->qkv_n * H + (double)H * HQ * D + 3.0 * (double)I * H + 2.0 * H + 2.0 * D);
  double kv_tok = 2.0 * 2.0 * (double)c->layers * HKV * D;
  size_t fr = 0, tot = 0;
  CK(cudaMemGetInfo(&fr, &tot), "qwen3: query free GPU memory");
  int64_t chunk = g->o.prefill_chunk > 0 ? g->o.prefill_chunk : 2048;
  double act = 2.0 * (double)chunk * (3.0 * H + g->qkv_n + 2.0 * HQ * D + 3.0 * I) + 2.0 * LOGIT_ROWS * V + 4.0 * chunk;
  double reserve = 512e6; /* workspaces, cuBLAS, CUDA graph and fragmentation headroom */
  double room = (double)fr - weights - act - reserve;
  int64_t want = g->o.max_ctx > 0 ? g->o.max_ctx : c->max_position;
  if (want > c->max_position)
    return klab_fail(err, "--max-seq-len %lld exceeds the model's max_position_embeddings %lld", (long long)want,
                     (long long)c->max_position);
  int64_t fits = room > 0 ? (int64_t)(room / kv_tok) : 0;
  if (fits < want) {
    if (g->o.max_ctx > 0 || fits < 1)
      return klab_fail(err,
                       "qwen3: the model does not fit with a %lld-token cache: weights %.2f GB + KV cache %.2f GB (%.1f KB/token) + "
                       "activations %.2f GB + %.2f GB reserve > %.2f GB free of %.2f GB (at most %lld tokens fit)",
                       (long long)want, weights / 1e9, kv_tok * (double)want / 1e9, kv_tok / 1e3, act / 1e9, reserve / 1e9,
                       (double)fr / 1e9, (double)tot / 1e9, (long long)(fits > 0 ? fits : 0));
    fprintf(stderr, "qwen3: KV cache capped at %lld tokens by free GPU memory (max_position_embeddings %lld)\n",
            (long long)fits, (long long)want);
    want = fits;
  }
  g->max_ctx = want;
  g->chunk = chunk < want ? chunk : want;
  g->base.max_ctx = want;
  /* weights */
  g->L = calloc((size_t)c->layers, sizeof *g->L);
  if (!g->L) return klab_fail(err, "out of memory");
  double wb = 0;
  int64_t nH = H, nVH = V * H;
  if (upload(&g->embed, &m->embed, &nVH, 1, &wb, err) || upload(&g->final_norm, &m->final_norm, &nH, 1, &wb, err)) return -1;
  if (c->tie_word_embeddings) g->lm_head = g->embed;
  else if (upload(&g->lm_head, &m->lm_head, &nVH, 1, &wb, err)) return -1;
  for (int64_t l = 0; l < c->layers; l++) {
    const qwen3_layer_weights *s = &m->layers[l];
    gpu_layer *w = &g->L[l];
    const uint16_t *qkv[3] = {s->q, s->k, s->v}, *gu[2] = {s->gate, s->up};
    int64_t nqkv[3] = {HQ * D * H, HKV * D * H, HKV * D * H}, ngu[2] = {I * H, I * H}, no = H * HQ * D, nd = H * I, nD = D;
    if (upload(&w->qkv, qkv, nqkv, 3, &wb, err) || upload(&w->o, &s->o, &no, 1, &wb, err) ||
        upload(&w->gate_up, gu, ngu, 2, &wb, err) || upload(&w->down, &s->down, &nd, 1, &wb, err) ||
        upload(&w->in_norm, &s->input_norm, &nH, 1, &wb, err) || upload(&w->post_norm, &s->post_norm, &nH, 1, &wb, err) ||
        upload(&w->q_norm, &s->q_norm, &nD, 1, &wb, err) || upload(&w->k_norm, &s->k_norm, &nD, 1, &wb, err))
      return -1;
  }
  g->weights_bytes = wb;
  /* A decode step reads every weight once, except an untied embedding table (one row per token); a tied
   * table is read whole as lm_head. */
  g->decode_read_bytes = c->tie_word_embeddings ? wb : wb - 2.0 * (double)nVH;
  /* cache and activations */
  double ab = 0;
  size_t cache = (size_t)(c->layers * HKV * g->max_ctx * D) * 2;
  CK(cudaMalloc((void **)&g->k_cache, cache), "qwen3: KV cache allocation");
  CK(cudaMalloc((void **)&g->v_cache, cache), "qwen3: KV cache allocation");
  int64_t P = g->chunk;
  if (alloc_dev((void **)&g->x, (size_t)(P * H) * 2, &ab, err) || alloc_dev((void **)&g->x2, (size_t)H * 2, &ab, err) || alloc_dev((void **)&g->h, (size_t)(P * H) * 2, &ab, err) ||
      alloc_dev((void **)&g->qkv, (size_t)(P * g->qkv_n) * 2, &ab, err) ||
      alloc_dev((void **)&g->q, (size_t)(P * HQ * D) * 2, &ab, err) ||
      alloc_dev((void **)&g->att, (size_t)(P * HQ * D) * 2, &ab, err) || alloc_dev((void **)&g->ao, (size_t)(P * H) * 2, &ab, err) ||
      alloc_dev((void **)&g->gu, (size_t)(P * 2 * I) * 2, &ab, err) || alloc_dev((void **)&g->act, (size_t)(P * I) * 2, &ab, err) ||
      alloc_dev((void **)&g->down, (size_t)(P * H) * 2, &ab, err) ||
      alloc_dev((void **)&g->logits, (size_t)(LOGIT_ROWS * V) * 2, &ab, err) ||
      alloc_dev((void **)&g->ids, (size_t)P * 4, &ab, err) || alloc_dev((void **)&g->scalars, QWEN3_NSCALARS * 4, &ab, err))
    return -1;
  /* workspaces: one per op, because some keep state there between calls (e.g. a last-block counter) */
  g->wsb_vendor = KLAB_GEMV_VENDOR_WORKSPACE;
  g->wsb_attn_decode = attn_decode_workspace_bytes(HQ, HKV, D, g->max_ctx);
  g->wsb_attn_prefill = attn_prefill_workspace_bytes(P, g->max_ctx - P, HQ, HKV, D);
  g->wsb_argmax = argmax_workspace_bytes(V);
  g->wsb_sample = sample_workspace_bytes(V);
  size_t wg = 0;
  int64_t projN[5] = {g->qkv_n, H, 2 * I, H, V}, projK[5] = {H, HQ * D, H, I, H};
  for (int i = 0; i < 5; i++) wg = max_sz(wg, gemm_workspace_bytes(P, projN[i], projK[i]));
  g->wsb_gemm = wg;
  if (alloc_dev(&g->ws_vendor, g->wsb_vendor, &ab, err) || alloc_dev(&g->ws_attn_decode, g->wsb_attn_decode, &ab, err) ||
      alloc_dev(&g->ws_attn_prefill, g->wsb_attn_prefill, &ab, err) || alloc_dev(&g->ws_argmax, g->wsb_argmax, &ab, err) ||
      alloc_dev(&g->ws_sample, g->wsb_sample, &ab, err) || alloc_dev(&g->ws_gemm, g->wsb_gemm, &ab, err))
    return -1;
  /* attn_decode_optimized_nomemset's contract: counters zero before the first launch */
  if (g->ws_attn_decode) CK(cudaMemset(g->ws_attn_decode, 0, g->wsb_attn_decode), "qwen3: zero the attn_decode workspace");
  g->act_bytes = ab;
  CK(cudaMallocHost((void **)&g->h_tokens, TOKEN_RING * sizeof(int32_t)), "qwen3: pinned token ring");
  CK(cudaMallocHost((void **)&g->h_scalar, sizeof(int32_t)), "qwen3: pinned scalar");
  for (int i = 0; i < TOKEN_RING; i++) CK(cudaEventCreateWithFlags(&g->ev[i], cudaEventDisableTiming), "qwen3: event");
  /* decode kernels: every decode shape is known now */
  int64_t d_mnk[5][3] = {{1, g->qkv_n, H}, {1, H, HQ * D}, {1, 2 * I, H}, {1, H, I}, {1, V, H}};
  choice *lin[5] = {&g->d_qkv, &g->d_o, &g->d_gu, &g->d_down, &g->d_lm};
  const char *lin_label[5] = {"qkv", "o", "gate_up", "down", "lm_head"};
  for (int i = 0; i < 5; i++)
    if (choose(g, "gemv", 3, DIMS_MNK, d_mnk[i], lin_label[i], lin[i], err)) return -1;
  int64_t one_th[2] = {1, H}, one_ti[2] = {1, I}, one_emb[3] = {1, V, H}, one_qk[5] = {1, HQ, HKV, D, 1024},
          att[4] = {HQ, HKV, D, 1024}, nV[1] = {V};
  if (choose(g, "embedding", 3, DIMS_TVH, one_emb, "decode", &g->d_emb, err) ||
      choose(g, "rmsnorm", 2, DIMS_TH, one_th, "decode", &g->d_norm, err) ||
      choose(g, "add_rmsnorm", 2, DIMS_TH, one_th, "decode", &g->d_addnorm, err) ||
      choose(g, "qk_norm_rope", 5, DIMS_QKNR, one_qk, "decode", &g->d_qknr, err) ||
      choose(g, "attn_decode", 4, DIMS_ATTD, att, "decode", &g->d_attn, err) ||
      choose(g, "silu_mul", 2, DIMS_TI, one_ti, "decode", &g->d_silu, err) ||
      choose(g, "argmax", 1, DIMS_N, nV, "decode", &g->d_argmax, err) ||
      choose(g, "sample", 1, DIMS_V, nV, "decode", &g->d_sample, err))
    return -1;
  g->fused = !g->o.no_fuse && klab_find_op("addnorm_gemv") && klab_find_op("addnorm_gemv_silu");
  if (g->fused) {
    int64_t f_qkv[3] = {1, g->qkv_n, H}, f_gu[3] = {1, 2 * I, H}, f_lm[3] = {1, V, H};
    if (choose(g, "addnorm_gemv", 3, DIMS_MNK, f_qkv, "qkv", &g->f_qkv, err) ||
        choose(g, "addnorm_gemv_silu", 3, DIMS_MNK, f_gu, "gate_up", &g->f_gu, err) ||
        choose(g, "addnorm_gemv", 3, DIMS_MNK, f_lm, "lm_head", &g->f_lm, err))
      return -1;
  }
  int64_t p_th[2] = {P, H}, p_ti[2] = {P, I}, p_emb[3] = {P, V, H}, p_qk[5] = {P, HQ, HKV, D, 0}, p_at[5] = {P, 0, HQ, HKV, D};
  if (choose(g, "embedding", 3, DIMS_TVH, p_emb, "prefill", &g->p_emb, err) ||
      choose(g, "rmsnorm", 2, DIMS_TH, p_th, "prefill", &g->p_norm, err) ||
      choose(g, "add_rmsnorm", 2, DIMS_TH, p_th, "prefill", &g->p_addnorm, err) ||
      choose(g, "qk_norm_rope", 5, DIMS_QKNR, p_qk, "prefill", &g->p_qknr, err) ||
      choose(g, "attn_prefill", 5, DIMS_ATTP, p_at, "prefill", &g->p_attn, err) ||
      choose(g, "silu_mul", 2, DIMS_TI, p_ti, "prefill", &g->p_silu, err))
    return -1;
  note_peak(g);
  return 0;
}

int qwen3_gpu_runner_create(const qwen3_model *m, const qwen3_gpu_opts *o, qwen3_runner **out, klab_err *err) {
  *out = NULL;
  char why[256];
  if (!klab_have_gpu(why, sizeof why)) return klab_fail(err, "qwen3: no usable GPU (%s); --cpu runs the CPU reference", why);
  klab_device_info dev;
  if (klab_device_query(&dev, err)) return -1;
  gpu_runner *g = calloc(1, sizeof *g);
  if (!g) return klab_fail(err, "out of memory");
  qwen3_runner *r = &g->base; /* the runner handed out is the first member of its GPU state */
  g->c = m->cfg;
  g->o = *o;
  r->name = "gpu";
  r->cfg = &g->c;
  r->forward = gpu_forward;
  r->reset = gpu_reset;
  r->destroy = gpu_destroy;
  r->generate = gpu_generate;
  r->impl = g;
  char arch[16], note[512] = "";
  snprintf(arch, sizeof arch, "sm_%d%d", dev.cc_major, dev.cc_minor);
  const char *vpath = o->variants_path ? o->variants_path : QWEN3_DEFAULT_VARIANTS;
  err->msg[0] = 0;
  int rc = 0;
  if (strcmp(vpath, "none") == 0) snprintf(note, sizeof note, "--variants none: every op uses its optimized variant");
  else rc = qwen3_variants_load(vpath, arch, &g->winners, note, sizeof note, err);
  if (!rc && cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking) != cudaSuccess)
    rc = klab_fail(err, "qwen3: cannot create a CUDA stream");
  if (!rc && g->c.head_dim != 128)
    rc = klab_fail(err, "qwen3 gpu: head_dim %lld: the attention kernels are built for 128", (long long)g->c.head_dim);
  if (!rc && note[0]) fprintf(stderr, "qwen3: %s\n", note);
  if (!rc && o->verbose) fprintf(stderr, "qwen3: variants from %s (%s)\n", vpath, arch);
  if (!rc) rc = setup(g, m, err);
  if (rc) {
    gpu_destroy(r);
    return -1;
  }
  *out = r;
  return 0;
}

void qwen3_gpu_memory_info(qwen3_runner *r, qwen3_gpu_memory *mi) {
  gpu_runner *g = r->impl;
  memset(mi, 0, sizeof *mi);
  mi->weights_bytes = g->weights_bytes;
  mi->decode_read_bytes = g->decode_read_bytes;
  mi->kv_bytes_per_token = 2.0 * 2.0 * (double)g->c.layers * g->c.kv_heads * g->c.head_dim;
  mi->activation_bytes = g->act_bytes;
  mi->max_ctx = g->max_ctx;
  mi->prefill_chunk = g->chunk;
  note_peak(g);
  size_t fr = 0, tot = 0;
  if (cudaMemGetInfo(&fr, &tot) == cudaSuccess) mi->device_used_bytes = tot - fr;
  mi->device_peak_used_bytes = g->peak_used;
}

/* ---- --profile ---- */
typedef struct {
  const char *op, *label, *variant;
  int calls;
  double us, bytes;
} prof_row;

int qwen3_gpu_profile(qwen3_runner *r, int64_t ctx, int steps, double peak_gbps, FILE *out, klab_err *err) {
  gpu_runner *g = r->impl;
  const qwen3_config *c = &g->c;
  if (!klab_cupti_active()) return klab_fail(err, "qwen3 --profile needs CUPTI, which is not recording (another profiler?)");
  if (ctx < 1 || ctx + steps > g->max_ctx)
    return klab_fail(err, "--profile: context %lld + %d steps exceeds the cache (%lld tokens)", (long long)ctx, steps,
                     (long long)g->max_ctx);
  int32_t *ids = malloc((size_t)ctx * sizeof *ids);
  if (!ids) return klab_fail(err, "out of memory");
  for (int64_t i = 0; i < ctx; i++) ids[i] = (int32_t)(klab_rand_u64(7, (uint64_t)i) % (uint64_t)c->vocab);
  r->pos = 0;
  int64_t n_last;
  int rc = prefill(g, ids, ctx, NULL, &n_last, err);
  free(ids);
  if (rc) return -1;
  ref_sample_params greedy = {0, 0, 1, 0};
  if (ensure_graph(g, &greedy, 0, err)) return -1;
  /* eager steps, each op bracketed for CUPTI */
  if (qwen3_scalars_set(g->scalars, ctx - 1, 0, g->stream, err)) return -1;
  CK(cudaStreamSynchronize(g->stream), "qwen3 profile");
  int nops = 0;
  const uint64_t base = 1ull << 40;
  for (int s = 0; s < steps; s++) {
    g->prof_on = 1, g->prof_n = 0, g->prof_base = base + (uint64_t)s * MAX_PROF_OPS;
    rc = decode_pass(g, ctx - 1 + s, &greedy, 0, err);
    g->prof_on = 0;
    if (rc) return -1;
    nops = g->prof_n;
  }
  CK(cudaStreamSynchronize(g->stream), "qwen3 profile");
  double *us = calloc((size_t)steps * MAX_PROF_OPS, sizeof *us);
  int *kn = calloc((size_t)steps * MAX_PROF_OPS, sizeof *kn);
  prof_row *rows = calloc((size_t)nops, sizeof *rows);
  double *gus = calloc((size_t)steps, sizeof *gus), *gev = calloc((size_t)steps, sizeof *gev);
  int *gkn = calloc((size_t)steps, sizeof *gkn);
  if (!us || !kn || !rows || !gus || !gev || !gkn) {
    rc = klab_fail(err, "out of memory");
    goto done;
  }
  if ((rc = klab_cupti_collect(base, steps * MAX_PROF_OPS, us, kn, err))) goto done;
  int nrows = 0;
  double step_us = 0;
  for (int i = 0; i < nops; i++) {
    prof_site *p = &g->prof[i];
    int j = 0;
    while (j < nrows && !(strcmp(rows[j].label, p->label) == 0 && strcmp(rows[j].op, p->op) == 0)) j++;
    if (j == nrows) rows[nrows++] = (prof_row){p->op, p->label, p->variant, 0, 0, 0};
    rows[j].calls++;
    const klab_op *op = klab_find_op(p->op);
    int64_t dims[KLAB_MAX_DIMS];
    memcpy(dims, p->dims, sizeof dims);
    if (!strcmp(p->op, "attn_decode")) dims[3] = ctx; /* the length at the first profiled step */
    rows[j].bytes += op && op->bytes ? op->bytes(dims) : NAN;
    double t = 0;
    for (int s = 0; s < steps; s++) t += us[(size_t)s * MAX_PROF_OPS + (size_t)i];
    rows[j].us += t / steps;
    step_us += t / steps;
  }
  /* graph replays: kernel time per replay (CUPTI) and wall time per replay (events) */
  if ((rc = qwen3_scalars_set(g->scalars, ctx - 1, 0, g->stream, err))) goto done;
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0), "qwen3 profile");
  CK(cudaEventCreate(&e1), "qwen3 profile");
  CK(cudaEventRecord(e0, g->stream), "qwen3 profile");
  for (int s = 0; s < steps && !rc; s++) {
    rc = klab_cupti_push(base - 1 - (uint64_t)steps + (uint64_t)s, err);
    if (!rc && cudaGraphLaunch(g->graph, g->stream) != cudaSuccess) rc = klab_fail(err, "qwen3 profile: graph launch failed");
    if (!rc) rc = klab_cupti_pop(err);
  }
  CK(cudaEventRecord(e1, g->stream), "qwen3 profile");
  CK(cudaEventSynchronize(e1), "qwen3 profile");
  float graph_ms = 0;
  cudaEventElapsedTime(&graph_ms, e0, e1);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  if (rc || (rc = klab_cupti_collect(base - 1 - (uint64_t)steps, steps, gus, gkn, err))) goto done;
  double graph_kernel_us = 0;
  for (int s = 0; s < steps; s++) graph_kernel_us += gus[s] / steps;
  double graph_step_us = graph_ms * 1e3 / steps;
  double kv = 2.0 * 2.0 * (double)c->layers * c->kv_heads * c->head_dim * (double)ctx;
  double roof_us = peak_gbps > 0 ? (g->decode_read_bytes + kv) / (peak_gbps * 1e3) : NAN;
  fprintf(out, "# decode step profile: %s, ctx %lld, %d steps (CUPTI kernel time; plain launches per op)\n\n", c->name,
          (long long)ctx, steps);
  fprintf(out, "| op | call site | variant | calls/step | us/step | share | GB/s | %% of read ceiling |\n|---|---|---|---:|---:|---:|---:|---:|\n");
  for (int j = 0; j < nrows; j++) {
    double gbps = rows[j].bytes / (rows[j].us * 1e3);
    fprintf(out, "| %s | %s | %s | %d | %.2f | %.1f%% | %.0f | %.1f |\n", rows[j].op, rows[j].label, rows[j].variant,
            rows[j].calls, rows[j].us, 100.0 * rows[j].us / step_us, gbps, peak_gbps > 0 ? 100.0 * gbps / peak_gbps : NAN);
  }
  fprintf(out, "\nkernel time per step (plain launches): %.1f us\n", step_us);
  if (g->o.no_pdl)
    fprintf(out, "graph replay: %.1f us per step wall (events), %.1f us of kernels (CUPTI): launch gaps %.1f us (%.1f%%)\n",
            graph_step_us, graph_kernel_us, graph_step_us - graph_kernel_us,
            100.0 * (graph_step_us - graph_kernel_us) / graph_step_us);
  else /* kernels overlap under programmatic dependent launch: their sum is not a lower bound of the wall time */
    fprintf(out, "graph replay (programmatic dependent launch): %.1f us per step wall (events); the kernels' CUPTI durations "
                 "sum to %.1f us because each one starts before its predecessor ends (wall - sum: %.1f us)\n",
            graph_step_us, graph_kernel_us, graph_step_us - graph_kernel_us);
  fprintf(out, "roofline: weights %.3f GB + KV %.3f GB per step at %.0f GB/s = %.1f us; the graph step reaches %.1f%% (%.1f tok/s vs %.1f)\n",
          g->decode_read_bytes / 1e9, kv / 1e9, peak_gbps, roof_us, 100.0 * roof_us / graph_step_us, 1e6 / graph_step_us,
          1e6 / roof_us);
  r->pos = ctx + steps;
done:
  free(us), free(kn), free(rows), free(gus), free(gev), free(gkn);
  return rc ? -1 : 0;
}
