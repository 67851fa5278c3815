/* CPU forward and generation mechanics on the tiny preset: prefill == prefill + KV-cache decode, errors
 * leave the cache untouched, seeded sampling is reproducible, stop ids end generation, and the chat
 * template renders Qwen3's turns byte for byte. (Numerical parity with Hugging Face is
 * test_engine_parity.) */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "engine/qwen3_forward.h"
#include "engine/qwen3_generate.h"
#include "engine/qwen3_init.h"
#include "reference/argmax.h"
#include "test_util.h"

static const int32_t k_ids[] = {151644, 872, 198, 9707, 11, 1246, 525, 498, 30, 151645, 198, 151644};
#define N_IDS ((int)(sizeof k_ids / sizeof k_ids[0]))

static void test_cache_consistency(const qwen3_model *m) {
  int64_t V = m->cfg.vocab;
  float *all = malloc((size_t)(N_IDS * V) * sizeof *all), *step = malloc((size_t)V * sizeof *step);
  qwen3_runner *r;
  klab_err err = {{0}};
  CHECK(qwen3_cpu_runner_create(m, 64, &r, &err) == 0);
  CHECK(qwen3_forward(r, k_ids, N_IDS, 1, all, &err) == 0 && r->pos == N_IDS);
  /* prefill 5, then one token at a time: the same logits at every later position */
  r->reset(r);
  CHECK(r->pos == 0);
  CHECK(qwen3_forward(r, k_ids, 5, 0, step, &err) == 0);
  double worst = 0;
  for (int64_t v = 0; v < V; v++) worst = fmax(worst, fabs(step[v] - all[4 * V + v]));
  for (int t = 5; t < N_IDS; t++) {
    CHECK(qwen3_forward(r, &k_ids[t], 1, 0, step, &err) == 0);
    for (int64_t v = 0; v < V; v++) worst = fmax(worst, fabs(step[v] - all[t * V + v]));
  }
  CHECK_MSG(worst <= 1e-6, "decode with the KV cache differs from prefill by %g", worst);
  /* a position changes the logits (RoPE and causality matter): same token at two positions */
  CHECK(fabs(all[9 * V + 7] - all[0 * V + 7]) > 0);
  /* errors: bad id, full context; the cache is untouched */
  int64_t pos = r->pos;
  int32_t bad[2] = {5, (int32_t)V};
  CHECK(qwen3_forward(r, bad, 2, 0, step, &err) != 0 && strstr(err.msg, "position 1") && r->pos == pos);
  int32_t many[64] = {0};
  CHECK(qwen3_forward(r, many, 64, 0, step, &err) != 0 && strstr(err.msg, "context full") && r->pos == pos);
  qwen3_runner_destroy(r);
  CHECK(qwen3_cpu_runner_create(m, m->cfg.max_position + 1, &r, &err) != 0);
  free(all);
  free(step);
}

static void test_generate(const qwen3_model *m) {
  qwen3_runner *r;
  klab_err err = {{0}};
  CHECK(qwen3_cpu_runner_create(m, 64, &r, &err) == 0);
  qwen3_gen_opts g = {.max_new_tokens = 12, .sample = {0, 0, 1, 0}, .seed = 0};
  qwen3_ids greedy = {0}, a = {0}, b = {0}, c = {0};
  qwen3_gen_stats st;
  CHECK(qwen3_generate(r, k_ids, N_IDS, &g, NULL, NULL, &greedy, &st, &err) == 0);
  CHECK(greedy.n == 12 && st.generated_tokens == 12 && st.prompt_tokens == N_IDS && !st.stopped);
  /* greedy = argmax chain of full forwards */
  int32_t seq[64];
  memcpy(seq, k_ids, sizeof k_ids);
  float *lg = malloc((size_t)m->cfg.vocab * sizeof *lg);
  for (int i = 0; i < 3; i++) {
    r->reset(r);
    qwen3_forward(r, seq, N_IDS + i, 0, lg, &err);
    seq[N_IDS + i] = (int32_t)ref_argmax(lg, m->cfg.vocab);
    CHECK(seq[N_IDS + i] == greedy.p[i]);
  }
  /* seeded sampling: reproducible, and the seed matters */
  g.sample = (ref_sample_params){1.5f, 50, 0.95f, 0.0f};
  g.seed = 11;
  CHECK(qwen3_generate(r, k_ids, N_IDS, &g, NULL, NULL, &a, &st, &err) == 0);
  CHECK(qwen3_generate(r, k_ids, N_IDS, &g, NULL, NULL, &b, &st, &err) == 0);
  g.seed = 12;
  CHECK(qwen3_generate(r, k_ids, N_IDS, &g, NULL, NULL, &c, &st, &err) == 0);
  CHECK(a.n == 12 && b.n == 12 && memcmp(a.p, b.p, 12 * sizeof(int32_t)) == 0);
  CHECK(c.n == 12 && memcmp(a.p, c.p, 12 * sizeof(int32_t)) != 0);
  /* a stop id ends generation before the token is emitted */
  g.sample = (ref_sample_params){0, 0, 1, 0};
  int32_t stop[1] = {greedy.p[2]};
  g.stop_ids = stop;
  g.n_stop = 1;
  qwen3_ids s = {0};
  CHECK(qwen3_generate(r, k_ids, N_IDS, &g, NULL, NULL, &s, &st, &err) == 0);
  CHECK(st.stopped && s.n == 2 && st.generated_tokens == 2);
  CHECK(qwen3_generate(r, k_ids, 0, &g, NULL, NULL, &s, &st, &err) != 0 && strstr(err.msg, "empty prompt"));
  qwen3_ids_free(&greedy);
  qwen3_ids_free(&a);
  qwen3_ids_free(&b);
  qwen3_ids_free(&c);
  qwen3_ids_free(&s);
  free(lg);
  qwen3_runner_destroy(r);
}

static void test_chat(const qwen3_config *cfg) {
  qwen3_buf b = {0};
  klab_err err = {{0}};
  CHECK(qwen3_chat_render(NULL, "Hi!", 0, &b, &err) == 0);
  CHECK(strcmp(b.p, "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n") == 0);
  b.n = 0;
  CHECK(qwen3_chat_render("Be brief.", "Hi!", 1, &b, &err) == 0);
  CHECK(strcmp(b.p, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
                    "<|im_start|>assistant\n") == 0);
  qwen3_buf_free(&b);
  int32_t ids[8];
  int n;
  qwen3_stop_ids(cfg, NULL, ids, 8, &n);
  CHECK(n == cfg->n_eos && ids[0] == 151645 && ids[1] == 151643);
}

int main(void) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/engine_fwd_tiny", KLAB_BINARY_DIR);
  qwen3_init_opts o = {.preset = "tiny", .seed = 99, .out_dir = dir, .quiet = 1};
  klab_err err = {{0}};
  qwen3_model m;
  if (qwen3_init_checkpoint(&o, &err) || qwen3_model_load(dir, &m, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    return klab_test_finish("test_engine_forward");
  }
  test_cache_consistency(&m);
  test_generate(&m);
  test_chat(&m.cfg);
  qwen3_model_free(&m);
  return klab_test_finish("test_engine_forward");
}
