/* Chat template and the generation loop (prefill, then decode one token at a time with sampling),
 * written against the backend-neutral runner of qwen3_forward.h. */
#ifndef QWEN3_GENERATE_H
#define QWEN3_GENERATE_H
#include <stdint.h>
#include "engine/qwen3_forward.h"
#include "engine/tokenizer.h"
#include "reference/sample.h"

/* Qwen3 chat turn (design.md §4), appended to out:
 *   [<|im_start|>system\n{system}<|im_end|>\n]<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n
 * and, when think == 0, the empty thinking block "<think>\n\n</think>\n\n" (Qwen3's
 * enable_thinking=False). system may be NULL (no system turn). */
int qwen3_chat_render(const char *system, const char *user, int think, qwen3_buf *out, klab_err *err);

/* Stop ids: the config's eos ids plus <|im_end|> and <|endoftext|> when the tokenizer has them. */
int qwen3_stop_ids(const qwen3_config *cfg, const qwen3_tokenizer *tk, int32_t *ids, int max, int *n);

typedef struct qwen3_gen_opts {
  int64_t max_new_tokens;
  ref_sample_params sample; /* temperature <= 0: greedy */
  uint64_t seed;            /* draw of step i: u = klab_rand_uniform(seed, i) */
  const int32_t *stop_ids;
  int n_stop;
} qwen3_gen_opts;

typedef struct qwen3_gen_stats {
  int64_t prompt_tokens, generated_tokens;
  double prefill_ms, decode_ms; /* decode_ms: the forwards of generated tokens after the first */
  int stopped;                  /* 1: a stop id ended generation (not counted in generated_tokens) */
  int context_full;             /* 1: the runner's max context ended generation early */
} qwen3_gen_stats;

/* Called for each generated token (never for the stop token); non-zero return aborts with an error. */
typedef int (*qwen3_token_fn)(void *user, int32_t id, klab_err *err);

/* Monotonic clock in ms (the generation stats' clock). */
double qwen3_now_ms(void);

/* One generated token, for every generation loop: a stop id sets stats->stopped and returns 1; otherwise it
 * is counted, appended to out (optional) and handed to on_token (optional): 0, or -1 on error. */
int qwen3_take_token(const qwen3_gen_opts *o, int32_t id, qwen3_token_fn on_token, void *user, qwen3_ids *out,
                     qwen3_gen_stats *stats, klab_err *err);

/* Runs the prompt from an empty cache and decodes up to max_new_tokens. out (optional) receives the
 * generated ids. */
int qwen3_generate(qwen3_runner *r, const int32_t *prompt, int64_t n_prompt, const qwen3_gen_opts *o,
                   qwen3_token_fn on_token, void *user, qwen3_ids *out, qwen3_gen_stats *stats, klab_err *err);
#endif
