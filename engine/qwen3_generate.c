/* Chat template and generation loop: see qwen3_generate.h. */
#define _POSIX_C_SOURCE 200809L
#include "engine/qwen3_generate.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "reference/rng.h"

static int append(qwen3_buf *b, const char *s, klab_err *err) {
  size_t n = strlen(s);
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return klab_fail(err, "out of memory");
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n + 1);
  b->n += n;
  return 0;
}

int qwen3_chat_render(const char *system, const char *user, int think, qwen3_buf *out, klab_err *err) {
  if (system && (append(out, "<|im_start|>system\n", err) || append(out, system, err) ||
                 append(out, "<|im_end|>\n", err)))
    return -1;
  if (append(out, "<|im_start|>user\n", err) || append(out, user, err) ||
      append(out, "<|im_end|>\n<|im_start|>assistant\n", err))
    return -1;
  return think ? 0 : append(out, "<think>\n\n</think>\n\n", err);
}

static void add_stop(int32_t id, int32_t *ids, int max, int *n) {
  if (id < 0) return;
  for (int i = 0; i < *n; i++)
    if (ids[i] == id) return;
  if (*n < max) ids[(*n)++] = id;
}

int qwen3_stop_ids(const qwen3_config *cfg, const qwen3_tokenizer *tk, int32_t *ids, int max, int *n) {
  *n = 0;
  for (int i = 0; i < cfg->n_eos; i++) add_stop((int32_t)cfg->eos_token_ids[i], ids, max, n);
  if (tk) {
    add_stop(qwen3_tok_find(tk, "<|im_end|>"), ids, max, n);
    add_stop(qwen3_tok_find(tk, "<|endoftext|>"), ids, max, n);
  }
  return 0;
}

double qwen3_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int qwen3_take_token(const qwen3_gen_opts *o, int32_t id, qwen3_token_fn on_token, void *user, qwen3_ids *out,
                     qwen3_gen_stats *stats, klab_err *err) {
  for (int i = 0; i < o->n_stop; i++)
    if (o->stop_ids[i] == id) {
      stats->stopped = 1;
      return 1;
    }
  stats->generated_tokens++;
  if (out && qwen3_ids_push(out, id, err)) return -1;
  if (on_token && on_token(user, id, err)) return -1;
  return 0;
}

int qwen3_generate(qwen3_runner *r, const int32_t *prompt, int64_t n_prompt, const qwen3_gen_opts *o,
                   qwen3_token_fn on_token, void *user, qwen3_ids *out, qwen3_gen_stats *stats, klab_err *err) {
  if (r->generate) return r->generate(r, prompt, n_prompt, o, on_token, user, out, stats, err);
  memset(stats, 0, sizeof *stats);
  stats->prompt_tokens = n_prompt;
  if (n_prompt < 1) return klab_fail(err, "empty prompt: nothing to condition on");
  int64_t V = r->cfg->vocab;
  float *logits = malloc((size_t)V * sizeof *logits);
  if (!logits) return klab_fail(err, "out of memory");
  r->reset(r);
  double t0 = qwen3_now_ms();
  int rc = qwen3_forward(r, prompt, n_prompt, 0, logits, err);
  stats->prefill_ms = qwen3_now_ms() - t0;
  double t1 = qwen3_now_ms();
  for (int64_t step = 0; !rc && step < o->max_new_tokens; step++) {
    int32_t id = (int32_t)ref_sample(logits, V, &o->sample, klab_rand_uniform(o->seed, (uint64_t)step), NULL);
    rc = qwen3_take_token(o, id, on_token, user, out, stats, err);
    if (rc > 0) { /* a stop id */
      rc = 0;
      break;
    }
    if (!rc && step + 1 < o->max_new_tokens) {
      if (r->pos >= r->max_ctx) { /* no room for the next token: end early, reported in stats */
        stats->context_full = 1;
        break;
      }
      rc = qwen3_forward(r, &id, 1, 0, logits, err);
    }
  }
  stats->decode_ms = qwen3_now_ms() - t1;
  free(logits);
  return rc;
}
