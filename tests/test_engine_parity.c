/* Parity of the CPU reference forward pass with Hugging Face transformers (float32, eager attention).
 * For each committed golden (tests/data/engine/golden_*.bin, written by engine/tools/hf_golden.py):
 * regenerate the checkpoint from its preset/seed/layers with the engine's writer, load it, prefill the
 * prompt (logits of every prompt position), then decode the continuation one token at a time through
 * the KV cache, and require
 *   - logits rel-L2 <= 1e-3 against HF (per position on the stored columns, and on the complete rows),
 *   - the same argmax as HF at every position, hence identical greedy tokens. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "engine/qwen3_config_parse.h"
#include "engine/qwen3_forward.h"
#include "engine/qwen3_init.h"
#include "reference/argmax.h"
#include "test_util.h"

static const char *NAME = "test_engine_parity";
#define REL_L2_BOUND 1e-3

typedef struct {
  cJSON *hdr;
  int n_ids, n_prompt, n_cols, vocab, n_full;
  const int32_t *ids, *hf_argmax, *cols;
  const float *lcols, *lfull;
  int full_pos[8];
  char *raw;
} golden;

/* Reads the file; all pointers point into g->raw (little-endian host assumed, as on x86/arm64). */
static int golden_read(const char *path, golden *g) {
  memset(g, 0, sizeof *g);
  size_t len;
  klab_err err = {{0}};
  if (qwen3_read_file(path, (size_t)64 << 20, &g->raw, &len, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return -1;
  }
  uint32_t hl;
  if (len < 12 || memcmp(g->raw, "QW3GOLD1", 8)) return -1;
  memcpy(&hl, g->raw + 8, 4);
  if (12 + (size_t)hl > len || !(g->hdr = cJSON_ParseWithLength(g->raw + 12, hl))) return -1;
  g->n_ids = cJSON_GetObjectItem(g->hdr, "n_ids")->valueint;
  g->n_prompt = cJSON_GetObjectItem(g->hdr, "n_prompt")->valueint;
  g->n_cols = cJSON_GetObjectItem(g->hdr, "n_cols")->valueint;
  g->vocab = cJSON_GetObjectItem(g->hdr, "vocab")->valueint;
  const cJSON *fp = cJSON_GetObjectItem(g->hdr, "full_positions");
  for (const cJSON *it = fp->child; it && g->n_full < 8; it = it->next) g->full_pos[g->n_full++] = it->valueint;
  size_t off = 12 + hl;
  size_t need = off + 4 * ((size_t)g->n_ids * 2 + (size_t)g->n_cols + (size_t)g->n_ids * g->n_cols +
                           (size_t)g->n_full * g->vocab);
  if (need != len) {
    fprintf(stderr, "%s: size %zu, header implies %zu\n", path, len, need);
    return -1;
  }
  /* 12 + hl need not be 4-aligned: copy the payload to an aligned buffer. */
  char *payload = malloc(len - off);
  if (!payload) return -1;
  memcpy(payload, g->raw + off, len - off);
  free(g->raw);
  g->raw = payload;
  const char *p = payload;
  g->ids = (const int32_t *)(const void *)p;
  g->hf_argmax = g->ids + g->n_ids;
  g->cols = g->hf_argmax + g->n_ids;
  g->lcols = (const float *)(const void *)(g->cols + g->n_cols);
  g->lfull = g->lcols + (size_t)g->n_ids * g->n_cols;
  return 0;
}

static double rel_l2_cols(const float *row, const golden *g, const float *ref) {
  double num = 0, den = 0;
  for (int c = 0; c < g->n_cols; c++) {
    double d = (double)row[g->cols[c]] - ref[c];
    num += d * d;
    den += (double)ref[c] * ref[c];
  }
  return sqrt(num / den);
}


/* All-position logits of the engine: prefill of the prompt, then one decode step per continuation id. */
static int engine_logits(const qwen3_model *m, const golden *g, float *logits) {
  qwen3_runner *r;
  klab_err err = {{0}};
  int rc = qwen3_cpu_runner_create(m, g->n_ids, &r, &err);
  if (!rc) rc = qwen3_forward(r, g->ids, g->n_prompt, 1, logits, &err);
  for (int t = g->n_prompt; !rc && t < g->n_ids; t++)
    rc = qwen3_forward(r, &g->ids[t], 1, 0, logits + (size_t)t * g->vocab, &err);
  if (rc) fprintf(stderr, "engine forward: %s\n", err.msg);
  qwen3_runner_destroy(r);
  return rc;
}

static void check_golden(const char *file) {
  char path[1024], dir[1024];
  snprintf(path, sizeof path, "%s/tests/data/engine/%s", KLAB_SOURCE_DIR, file);
  golden g;
  CHECK_MSG(golden_read(path, &g) == 0, "cannot read golden %s", path);
  if (!g.hdr) return;
  const char *preset = cJSON_GetObjectItem(g.hdr, "preset")->valuestring;
  qwen3_init_opts o = {.preset = preset,
                       .seed = (uint64_t)cJSON_GetObjectItem(g.hdr, "seed")->valuedouble,
                       .layers = cJSON_GetObjectItem(g.hdr, "layers")->valueint,
                       .quiet = 1};
  snprintf(dir, sizeof dir, "%s/parity_%s", KLAB_BINARY_DIR, file);
  o.out_dir = dir;
  klab_err err = {{0}};
  qwen3_model m = {0};
  int ok = qwen3_init_checkpoint(&o, &err) == 0 && qwen3_model_load(dir, &m, &err) == 0;
  CHECK_MSG(ok, "%s: %s", file, err.msg);
  CHECK(!ok || m.cfg.vocab == g.vocab);
  float *logits = ok ? malloc((size_t)g.n_ids * (size_t)g.vocab * sizeof *logits) : NULL;
  if (ok && logits && engine_logits(&m, &g, logits) == 0) {
    double worst = 0;
    int argmax_diff = 0;
    for (int t = 0; t < g.n_ids; t++) {
      const float *row = logits + (size_t)t * g.vocab;
      double e = rel_l2_cols(row, &g, g.lcols + (size_t)t * g.n_cols);
      if (e > worst) worst = e;
      CHECK_MSG(e <= REL_L2_BOUND, "%s: position %d: rel-L2 %.3g on %d columns", file, t, e, g.n_cols);
      int64_t am = ref_argmax(row, g.vocab);
      argmax_diff += am != g.hf_argmax[t];
      CHECK_MSG(am == g.hf_argmax[t], "%s: position %d: engine argmax %lld, HF %d", file, t, (long long)am,
                g.hf_argmax[t]);
      if (t >= g.n_prompt - 1 && t + 1 < g.n_ids)
        CHECK_MSG(am == g.ids[t + 1], "%s: greedy token %d differs", file, t + 1 - g.n_prompt);
    }
    for (int k = 0; k < g.n_full; k++) {
      double e = klab_test_rel_l2(logits + (size_t)g.full_pos[k] * g.vocab, g.lfull + (size_t)k * g.vocab, g.vocab);
      printf("%s: full row %d: rel-L2 %.3g over %d logits\n", file, g.full_pos[k], e, g.vocab);
      CHECK_MSG(e <= REL_L2_BOUND, "%s: full row %d rel-L2 %.3g", file, g.full_pos[k], e);
    }
    printf("%s: %d positions (%d prompt), worst column rel-L2 %.3g, argmax differences %d\n", file, g.n_ids,
           g.n_prompt, worst, argmax_diff);
  } else {
    CHECK_MSG(0, "%s: engine run failed", file);
  }
  free(logits);
  qwen3_model_free(&m);
  cJSON_Delete(g.hdr);
  free(g.raw);
}

int main(void) {
  check_golden("golden_tiny.bin");
  check_golden("golden_0.6b_L2.bin");
  return klab_test_finish(NAME);
}
