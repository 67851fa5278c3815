/* CPU reference forward pass of Qwen3 (design.md §4), composed only of the reference ops; the oracle
 * for the GPU path. The residual stream stays float32; the add + RMSNorm pairs go through
 * ref_add_rmsnorm exactly where a fused GPU kernel would sit. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include "engine/qwen3_forward.h"
#include "reference/add_rmsnorm.h"
#include "reference/attention.h"
#include "reference/embedding.h"
#include "reference/gemv.h"
#include "reference/qk_norm_rope.h"
#include "reference/rmsnorm.h"
#include "reference/silu_mul.h"

typedef struct {
  const qwen3_model *m;
  float *k_cache, *v_cache; /* [layers][kv_heads][max_ctx][head_dim] */
} cpu_state;

/* Activations of one forward call of T tokens. */
typedef struct {
  float *x, *h, *q, *k, *v, *att, *o, *g, *u, *gu, *act, *down;
  int32_t *positions;
} cpu_scratch;

static void scratch_free(cpu_scratch *s) {
  float **f[] = {&s->x, &s->h, &s->q, &s->k, &s->v, &s->att, &s->o, &s->g, &s->u, &s->gu, &s->act, &s->down};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) free(*f[i]);
  free(s->positions);
  memset(s, 0, sizeof *s);
}

static int scratch_alloc(cpu_scratch *s, const qwen3_config *c, int64_t T, klab_err *err) {
  memset(s, 0, sizeof *s);
  int64_t H = c->hidden, I = c->intermediate, Q = c->heads * c->head_dim, KV = c->kv_heads * c->head_dim;
  struct {
    float **p;
    int64_t n;
  } want[] = {{&s->x, H},   {&s->h, H},    {&s->q, Q},   {&s->k, KV},     {&s->v, KV},   {&s->att, Q},
              {&s->o, H},   {&s->g, I},    {&s->u, I},   {&s->gu, 2 * I}, {&s->act, I},  {&s->down, H}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    if (!(*want[i].p = malloc((size_t)(T * want[i].n) * sizeof(float)))) {
      scratch_free(s);
      return klab_fail(err, "out of memory for the activations of %lld tokens", (long long)T);
    }
  if (!(s->positions = malloc((size_t)T * sizeof *s->positions))) {
    scratch_free(s);
    return klab_fail(err, "out of memory");
  }
  return 0;
}

/* k, v of T tokens ([T, kv_heads, D]) into the head-major cache at positions p0.. */
static void cache_append(float *kc, float *vc, const float *k, const float *v, int64_t T, int64_t p0, int64_t kvh,
                         int64_t D, int64_t stride) {
  for (int64_t t = 0; t < T; t++)
    for (int64_t h = 0; h < kvh; h++) {
      memcpy(kc + (h * stride + p0 + t) * D, k + (t * kvh + h) * D, (size_t)D * sizeof(float));
      memcpy(vc + (h * stride + p0 + t) * D, v + (t * kvh + h) * D, (size_t)D * sizeof(float));
    }
}

/* Attention block of layer l: s->h (normed input) -> s->o = attn(h) Wo. */
static void attention_block(cpu_state *st, qwen3_runner *r, int64_t l, cpu_scratch *s, int64_t T) {
  const qwen3_config *c = r->cfg;
  const qwen3_layer_weights *w = &st->m->layers[l];
  int64_t H = c->hidden, D = c->head_dim, Q = c->heads * D, KV = c->kv_heads * D;
  ref_gemv(s->h, w->q, s->q, T, Q, H);
  ref_gemv(s->h, w->k, s->k, T, KV, H);
  ref_gemv(s->h, w->v, s->v, T, KV, H);
  ref_qk_norm_rope(s->q, s->k, w->q_norm, w->k_norm, T, c->heads, c->kv_heads, D, s->positions, c->rope_theta,
                   (float)c->rms_norm_eps);
  size_t layer_off = (size_t)(l * c->kv_heads * r->max_ctx * D);
  float *kc = st->k_cache + layer_off, *vc = st->v_cache + layer_off;
  cache_append(kc, vc, s->k, s->v, T, r->pos, c->kv_heads, D, r->max_ctx);
  ref_attention(s->q, kc, vc, s->att, T, r->pos, c->heads, c->kv_heads, D, r->max_ctx);
  ref_gemv(s->att, w->o, s->o, T, H, Q);
}

/* MLP block: s->h -> s->down = Wdown (silu(Wgate h) * (Wup h)). gate and up are laid side by side per
 * token ([T, 2I]) because that is the fused gate|up layout ref_silu_mul (and the GPU op) takes. */
static void mlp_block(const qwen3_layer_weights *w, const qwen3_config *c, cpu_scratch *s, int64_t T) {
  int64_t H = c->hidden, I = c->intermediate;
  ref_gemv(s->h, w->gate, s->g, T, I, H);
  ref_gemv(s->h, w->up, s->u, T, I, H);
  for (int64_t t = 0; t < T; t++) {
    memcpy(s->gu + t * 2 * I, s->g + t * I, (size_t)I * sizeof(float));
    memcpy(s->gu + t * 2 * I + I, s->u + t * I, (size_t)I * sizeof(float));
  }
  ref_silu_mul(s->gu, s->act, T, I);
  ref_gemv(s->act, w->down, s->down, T, H, I);
}

static int cpu_forward(qwen3_runner *r, const int32_t *ids, int64_t T, int all_logits, float *logits, klab_err *err) {
  cpu_state *st = r->impl;
  const qwen3_model *m = st->m;
  const qwen3_config *c = r->cfg;
  if (T < 1) return klab_fail(err, "forward of %lld tokens", (long long)T);
  if (r->pos + T > r->max_ctx)
    return klab_fail(err, "context full: %lld cached + %lld new tokens > %lld (the runner's max context)",
                     (long long)r->pos, (long long)T, (long long)r->max_ctx);
  cpu_scratch s;
  if (scratch_alloc(&s, c, T, err)) return -1;
  int64_t bad = ref_embedding(ids, T, m->embed, c->vocab, c->hidden, s.x);
  if (bad >= 0) {
    int32_t id = ids[bad];
    scratch_free(&s);
    return klab_fail(err, "token id %d at position %lld is outside the vocabulary [0, %lld)", id, (long long)bad,
                     (long long)c->vocab);
  }
  for (int64_t t = 0; t < T; t++) s.positions[t] = (int32_t)(r->pos + t);
  float eps = (float)c->rms_norm_eps;
  ref_rmsnorm(s.x, m->layers[0].input_norm, s.h, T, c->hidden, eps);
  for (int64_t l = 0; l < c->layers; l++) {
    attention_block(st, r, l, &s, T);
    ref_add_rmsnorm(s.x, s.o, m->layers[l].post_norm, s.h, T, c->hidden, eps);
    mlp_block(&m->layers[l], c, &s, T);
    const uint16_t *next_norm = l + 1 < c->layers ? m->layers[l + 1].input_norm : m->final_norm;
    ref_add_rmsnorm(s.x, s.down, next_norm, s.h, T, c->hidden, eps);
  }
  const float *rows = all_logits ? s.h : s.h + (T - 1) * c->hidden;
  ref_gemv(rows, m->lm_head, logits, all_logits ? T : 1, c->vocab, c->hidden);
  r->pos += T;
  scratch_free(&s);
  return 0;
}

static void cpu_reset(qwen3_runner *r) { r->pos = 0; }

static void cpu_destroy(qwen3_runner *r) {
  cpu_state *st = r->impl;
  if (st) {
    free(st->k_cache);
    free(st->v_cache);
    free(st);
  }
  free(r);
}

int qwen3_cpu_runner_create(const qwen3_model *m, int64_t max_ctx, qwen3_runner **out, klab_err *err) {
  *out = NULL;
  const qwen3_config *c = &m->cfg;
  if (max_ctx < 1 || max_ctx > c->max_position)
    return klab_fail(err, "max context %lld out of [1, max_position_embeddings=%lld]", (long long)max_ctx,
                     (long long)c->max_position);
  qwen3_runner *r = calloc(1, sizeof *r);
  cpu_state *st = calloc(1, sizeof *st);
  size_t n = (size_t)(c->layers * c->kv_heads * max_ctx * c->head_dim);
  if (r && st) {
    st->k_cache = malloc(n * sizeof(float));
    st->v_cache = malloc(n * sizeof(float));
  }
  if (!r || !st || !st->k_cache || !st->v_cache) {
    if (st) {
      free(st->k_cache);
      free(st->v_cache);
    }
    free(st);
    free(r);
    return klab_fail(err, "out of memory for a KV cache of %lld tokens (%.1f MB)", (long long)max_ctx,
                     2.0 * (double)n * 4 / 1e6);
  }
  st->m = m;
  r->name = "cpu-reference";
  r->cfg = c;
  r->max_ctx = max_ctx;
  r->forward = cpu_forward;
  r->reset = cpu_reset;
  r->destroy = cpu_destroy;
  r->impl = st;
  *out = r;
  return 0;
}
