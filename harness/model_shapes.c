/* Qwen3 -> op shapes. One table of every op's dims, one function per op saying which shapes a forward
 * pass runs. Projection sizes come from klab_qwen3_projection (the engine uses the same formulas). */
#include <stdlib.h>
#include <string.h>
#include "harness/model_shapes.h"

static const klab_op_dims known_ops[] = {
    {"rmsnorm", 2, {"T", "H"}, "decode,prefill"},
    {"gemv", 3, {"M", "N", "K"}, "decode"},
    {"gemm", 3, {"M", "N", "K"}, "decode,prefill"},
    {"embedding", 3, {"T", "V", "H"}, "decode,prefill"},
    {"add_rmsnorm", 2, {"T", "H"}, "decode,prefill"},
    {"qk_norm_rope", 5, {"T", "HQ", "HKV", "D", "P0"}, "decode,prefill"},
    {"silu_mul", 2, {"T", "I"}, "decode,prefill"},
    {"attn_decode", 4, {"HQ", "HKV", "D", "CTX"}, "decode"},
    {"attn_prefill", 5, {"T", "P0", "HQ", "HKV", "D"}, "prefill"},
    {"argmax", 1, {"N"}, "decode,prefill"},
    {"sample", 5, {"V", "TOPK", "TOPP_PM", "MINP_PM", "TEMP_PM"}, "decode,prefill"},
    {"addnorm_gemv", 3, {"M", "N", "K"}, "decode"},
    {"addnorm_gemv_silu", 3, {"M", "N", "K"}, "decode"},
};
enum { NKNOWN = sizeof known_ops / sizeof known_ops[0] };

int klab_known_op_count(void) { return NKNOWN; }
const klab_op_dims *klab_known_op_at(int i) { return (i >= 0 && i < NKNOWN) ? &known_ops[i] : NULL; }
const klab_op_dims *klab_known_op(const char *name) {
  for (int i = 0; i < NKNOWN; i++)
    if (strcmp(known_ops[i].op, name) == 0) return &known_ops[i];
  return NULL;
}
void klab_known_op_list(char *buf, size_t len) {
  if (!len) return;
  buf[0] = 0;
  for (int i = 0; i < NKNOWN; i++) {
    size_t used = strlen(buf);
    if (used + 1 >= len) return;
    snprintf(buf + used, len - used, "%s%s", i ? ", " : "", known_ops[i].op);
  }
}

static const char *const proj_names[KLAB_PROJ_COUNT] = {"qkv", "o", "gate_up", "down", "lm_head"};
const char *klab_proj_name(klab_proj p) { return (p >= 0 && p < KLAB_PROJ_COUNT) ? proj_names[p] : "?"; }
int klab_proj_from_name(const char *name) {
  for (int i = 0; i < KLAB_PROJ_COUNT; i++)
    if (strcmp(proj_names[i], name) == 0) return i;
  return -1;
}

void klab_qwen3_projection(const qwen3_config *c, klab_proj p, int64_t *n, int64_t *k) {
  switch (p) {
    case KLAB_PROJ_QKV: *n = (c->heads + 2 * c->kv_heads) * c->head_dim; *k = c->hidden; return;
    case KLAB_PROJ_O: *n = c->hidden; *k = c->heads * c->head_dim; return;
    case KLAB_PROJ_GATE_UP: *n = 2 * c->intermediate; *k = c->hidden; return;
    case KLAB_PROJ_DOWN: *n = c->hidden; *k = c->intermediate; return;
    case KLAB_PROJ_LM_HEAD: *n = c->vocab; *k = c->hidden; return;
    default: *n = *k = 0; return;
  }
}

const char *klab_phase_name(klab_phase p) { return p == KLAB_PHASE_DECODE ? "decode" : "prefill"; }

static const int64_t default_m[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const int64_t default_t[] = {512, 2048, 8192};
static const int64_t default_ctx[] = {128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768};
static const int64_t default_qk_pos[] = {1024};
static const int64_t default_p0[] = {0};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

typedef struct {
  klab_derived_shape *v;
  int n, cap;
} shape_list;

static int push(shape_list *l, const int64_t *d, int nd, const char *label, const char *what, klab_err *err) {
  if (l->n == l->cap) {
    int cap = l->cap ? l->cap * 2 : 32;
    klab_derived_shape *nv = realloc(l->v, (size_t)cap * sizeof *nv);
    if (!nv) return klab_fail(err, "out of memory deriving shapes");
    l->v = nv;
    l->cap = cap;
  }
  klab_derived_shape *s = &l->v[l->n++];
  memset(s, 0, sizeof *s);
  for (int i = 0; i < nd; i++) s->d[i] = d[i];
  if (what && *what) snprintf(s->label, sizeof s->label, "%s %s", label, what);
  else snprintf(s->label, sizeof s->label, "%s", label);
  return 0;
}

static int phase_allowed(const klab_op_dims *od, klab_phase ph) {
  const char *want = klab_phase_name(ph);
  const char *p = od->phases;
  size_t wl = strlen(want);
  while (*p) {
    size_t l = strcspn(p, ",");
    if (l == wl && strncmp(p, want, l) == 0) return 1;
    p += l;
    if (*p == ',') p++;
  }
  return 0;
}

int klab_model_shapes(const char *op, const qwen3_config *cfg, const char *model_label, const klab_model_phase *ph,
                      klab_derived_shape **out, int *n, klab_err *err) {
  const klab_op_dims *od = klab_known_op(op);
  if (!od) {
    char known[256];
    klab_known_op_list(known, sizeof known);
    return klab_fail(err, "no model shapes for unknown op '%s' (known: %s)", op, known);
  }
  if (!phase_allowed(od, ph->phase))
    return klab_fail(err, "op %s does not run in the %s phase (it runs in: %s)", op, klab_phase_name(ph->phase),
                     od->phases);
  if (cfg->hidden <= 0 || cfg->intermediate <= 0 || cfg->heads <= 0 || cfg->kv_heads <= 0 || cfg->head_dim <= 0 ||
      cfg->vocab <= 0)
    return klab_fail(err, "model %s: config has a non-positive size (hidden %lld, intermediate %lld, heads %lld, "
                          "kv_heads %lld, head_dim %lld, vocab %lld)",
                     model_label, (long long)cfg->hidden, (long long)cfg->intermediate, (long long)cfg->heads,
                     (long long)cfg->kv_heads, (long long)cfg->head_dim, (long long)cfg->vocab);
  int decode = ph->phase == KLAB_PHASE_DECODE;
  /* rows: decode steps carry M rows, prefill T tokens */
  const int64_t *rows = decode ? (ph->nm ? ph->m : default_m) : (ph->nt ? ph->t : default_t);
  int nrows = decode ? (ph->nm ? ph->nm : COUNT(default_m)) : (ph->nt ? ph->nt : COUNT(default_t));
  const int64_t *ctx = ph->nctx ? ph->ctx : default_ctx;
  int nctx = ph->nctx ? ph->nctx : COUNT(default_ctx);
  const int64_t *p0 = ph->np0 ? ph->p0 : default_p0;
  int np0 = ph->np0 ? ph->np0 : COUNT(default_p0);
  unsigned mask = ph->proj_mask ? ph->proj_mask : (1u << KLAB_PROJ_COUNT) - 1;

  shape_list l = {*out, *n, *n};
  /* the caller's buffer may hold more than n; realloc keeps what is there */
  int rc = 0;
  int64_t d[KLAB_MAX_DIMS];
  if (!strcmp(op, "gemv") || !strcmp(op, "gemm")) {
    for (int p = 0; p < KLAB_PROJ_COUNT && !rc; p++) {
      if (!(mask & (1u << p))) continue;
      int64_t N, K;
      klab_qwen3_projection(cfg, (klab_proj)p, &N, &K);
      for (int i = 0; i < nrows && !rc; i++) {
        d[0] = rows[i], d[1] = N, d[2] = K;
        rc = push(&l, d, 3, model_label, proj_names[p], err);
      }
    }
  } else if (!strcmp(op, "rmsnorm") || !strcmp(op, "add_rmsnorm")) {
    for (int i = 0; i < nrows && !rc; i++) {
      d[0] = rows[i], d[1] = cfg->hidden;
      rc = push(&l, d, 2, model_label, !strcmp(op, "rmsnorm") ? "norm" : "residual+norm", err);
    }
  } else if (!strcmp(op, "embedding")) {
    for (int i = 0; i < nrows && !rc; i++) {
      d[0] = rows[i], d[1] = cfg->vocab, d[2] = cfg->hidden;
      rc = push(&l, d, 3, model_label, "embed_tokens", err);
    }
  } else if (!strcmp(op, "silu_mul")) {
    for (int i = 0; i < nrows && !rc; i++) {
      d[0] = rows[i], d[1] = cfg->intermediate;
      rc = push(&l, d, 2, model_label, "mlp act", err);
    }
  } else if (!strcmp(op, "qk_norm_rope")) {
    /* decode: position = context length (cost does not depend on it; one default position);
     * prefill: P0 = tokens already cached */
    const int64_t *pos = decode ? (ph->nctx ? ph->ctx : default_qk_pos) : p0;
    int npos = decode ? (ph->nctx ? ph->nctx : COUNT(default_qk_pos)) : np0;
    for (int i = 0; i < nrows && !rc; i++)
      for (int j = 0; j < npos && !rc; j++) {
        d[0] = rows[i], d[1] = cfg->heads, d[2] = cfg->kv_heads, d[3] = cfg->head_dim, d[4] = pos[j];
        rc = push(&l, d, 5, model_label, "q/k norm+rope", err);
      }
  } else if (!strcmp(op, "attn_decode")) {
    for (int j = 0; j < nctx && !rc; j++) {
      d[0] = cfg->heads, d[1] = cfg->kv_heads, d[2] = cfg->head_dim, d[3] = ctx[j];
      rc = push(&l, d, 4, model_label, "attention", err);
    }
  } else if (!strcmp(op, "attn_prefill")) {
    for (int i = 0; i < nrows && !rc; i++)
      for (int j = 0; j < np0 && !rc; j++) {
        d[0] = rows[i], d[1] = p0[j], d[2] = cfg->heads, d[3] = cfg->kv_heads, d[4] = cfg->head_dim;
        rc = push(&l, d, 5, model_label, "attention", err);
      }
  } else if (!strcmp(op, "argmax")) {
    d[0] = cfg->vocab; /* one row of logits per step (the last token in prefill) */
    rc = push(&l, d, 1, model_label, "logits", err);
  } else if (!strcmp(op, "sample")) {
    /* one row of logits per step, drawn with Qwen3's recommended sampling (T 0.7, top-k 20, top-p 0.8,
     * min-p off); greedy decoding is the argmax op */
    d[0] = cfg->vocab, d[1] = 20, d[2] = 800, d[3] = 0, d[4] = 700;
    rc = push(&l, d, 5, model_label, "logits", err);
  } else {
    rc = klab_fail(err, "op %s is in the dims table but has no derivation rule (harness/model_shapes.c)", op);
  }
  *out = l.v;
  *n = l.n;
  return rc;
}
