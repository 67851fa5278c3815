/* safetensors parsing and model loading: every malformed input is an error naming the file and the
 * tensor (never a crash), and F16/F32 checkpoints are converted to bf16 exactly (round to nearest even). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "engine/qwen3_init.h"
#include "engine/qwen3_model.h"
#include "engine/safetensors.h"
#include "harness/bf16.h"
#include "test_util.h"

/* A file image: 8-byte length, header, `data_len` bytes of data (value i & 0xff). */
static uint8_t *image(const char *header, size_t data_len, size_t *size) {
  size_t hl = strlen(header);
  *size = 8 + hl + data_len;
  uint8_t *b = malloc(*size);
  for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
  memcpy(b + 8, header, hl);
  for (size_t i = 0; i < data_len; i++) b[8 + hl + i] = (uint8_t)i;
  return b;
}

static void expect_parse_error(const char *header, size_t data_len, const char *w1, const char *w2) {
  size_t size;
  uint8_t *b = image(header, data_len, &size);
  st_file f;
  klab_err err = {{0}};
  int rc = st_parse(b, size, "x.safetensors", &f, &err);
  CHECK_MSG(rc != 0, "accepted header %s", header);
  if (rc == 0) st_close(&f);
  CHECK_MSG(strstr(err.msg, "x.safetensors") != NULL, "error '%s' lacks the file name", err.msg);
  CHECK_MSG(strstr(err.msg, w1) != NULL, "error '%s' lacks '%s'", err.msg, w1);
  if (w2) CHECK_MSG(strstr(err.msg, w2) != NULL, "error '%s' lacks '%s'", err.msg, w2);
  free(b);
}

static void test_parse(void) {
  const char *ok = "{\"__metadata__\":{\"format\":\"pt\"},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]},"
                   "\"a\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[0,4]}}";
  size_t size;
  uint8_t *b = image(ok, 12, &size);
  st_file f;
  klab_err err = {{0}};
  CHECK_MSG(st_parse(b, size, "x.safetensors", &f, &err) == 0, "%s", err.msg);
  CHECK(f.ntensors == 2);
  const st_tensor *a = st_find(&f, "a"), *t = st_find(&f, "b");
  CHECK(a && a->dtype == ST_BF16 && a->ndim == 2 && a->shape[1] == 2 && a->data == f.data);
  CHECK(t && t->dtype == ST_F32 && t->begin == 4 && t->data[0] == 4);
  CHECK(st_find(&f, "c") == NULL);
  st_close(&f);
  /* the truncated image of the same header */
  CHECK(st_parse(b, size - 1, "x.safetensors", &f, &err) != 0 && strstr(err.msg, "'b'") && strstr(err.msg, "past the end"));
  CHECK(st_parse(b, 5, "x.safetensors", &f, &err) != 0 && strstr(err.msg, "too short"));
  free(b);
  /* header length larger than the file */
  uint8_t big[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0};
  CHECK(st_parse(big, sizeof big, "x.safetensors", &f, &err) != 0 && strstr(err.msg, "larger than the file"));
  uint8_t huge[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  CHECK(st_parse(huge, sizeof huge, "x.safetensors", &f, &err) != 0 && strstr(err.msg, "larger than the file"));

  expect_parse_error("{\"a\":", 0, "not valid JSON", NULL);
  expect_parse_error("[]", 0, "must be a JSON object", NULL);
  expect_parse_error("{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 3, "'a'", "past the end");
  expect_parse_error("{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                     "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[2,6]}}", 8, "overlap", "'b'");
  /* an empty tensor between two overlapping ones must not hide the overlap */
  expect_parse_error("{\"a\":{\"dtype\":\"BF16\",\"shape\":[8],\"data_offsets\":[0,16]},"
                     "\"e\":{\"dtype\":\"BF16\",\"shape\":[0],\"data_offsets\":[2,2]},"
                     "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]}}", 16, "overlap", "'a'");
  expect_parse_error("{\"a\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,4]}}", 4, "'a'", "need 6");
  expect_parse_error("{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "'a'", "unknown dtype");
  expect_parse_error("{\"a\":{\"dtype\":\"BF16\",\"shape\":[-2],\"data_offsets\":[0,4]}}", 4, "'a'", "shape");
  expect_parse_error("{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[4,0]}}", 4, "'a'", "begin");
  expect_parse_error("{\"a\":{\"dtype\":\"BF16\",\"shape\":[2]}}", 4, "'a'", "data_offsets");
  expect_parse_error("{\"a\":{\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "'a'", "dtype");
  expect_parse_error("{\"a\":{\"dtype\":\"BF16\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,4]}}", 4,
                     "'a'", "too many");
  expect_parse_error("{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                     "\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[4,8]}}", 8, "'a'", "twice");
  expect_parse_error("{\"__metadata__\":3}", 0, "__metadata__", NULL);
}

/* ---- whole-model loading ------------------------------------------------------------------------ */

static char g_dir[512];

static void write_tiny(const char *dir) {
  qwen3_init_opts o = {.preset = "tiny", .seed = 5, .out_dir = dir, .layers = 1, .quiet = 1};
  klab_err err = {{0}};
  CHECK_MSG(qwen3_init_checkpoint(&o, &err) == 0, "%s", err.msg);
}

static int load_error(const char *dir, const char *w1, const char *w2) {
  qwen3_model m;
  klab_err err = {{0}};
  int rc = qwen3_model_load(dir, &m, &err);
  CHECK_MSG(rc != 0, "loaded a broken checkpoint (expected '%s')", w1);
  if (rc == 0) qwen3_model_free(&m);
  CHECK_MSG(strstr(err.msg, w1) != NULL, "error '%s' lacks '%s'", err.msg, w1);
  if (w2) CHECK_MSG(strstr(err.msg, w2) != NULL, "error '%s' lacks '%s'", err.msg, w2);
  return rc;
}

static void replace_in_file(const char *path, const char *from, const char *to) {
  FILE *f = fopen(path, "rb");
  char buf[1 << 16];
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f) fclose(f);
  buf[n] = '\0';
  char *at = strstr(buf, from);
  CHECK_MSG(at != NULL, "'%s' not in %s", from, path);
  if (!at) return;
  f = fopen(path, "wb");
  fprintf(f, "%.*s%s%s", (int)(at - buf), buf, to, at + strlen(from));
  fclose(f);
}

static void test_model_errors(void) {
  char path[700], shard[700];
  snprintf(shard, sizeof shard, "%s/model-00001-of-00001.safetensors", g_dir);
  qwen3_model m;
  klab_err err = {{0}};
  write_tiny(g_dir);
  CHECK_MSG(qwen3_model_load(g_dir, &m, &err) == 0, "%s", err.msg);
  if (m.layers) {
    CHECK(m.cfg.layers == 1 && m.lm_head != m.embed && m.converted == 0);
    /* weights as the writer made them */
    uint16_t ref[16];
    qwen3_init_fill(5, "model.layers.0.mlp.up_proj.weight", 0, 0.02f, 100, 16, ref);
    CHECK(memcmp(ref, m.layers[0].up + 100, sizeof ref) == 0);
    CHECK(m.layers[0].q_norm[3] == 0x3f80);
    qwen3_model_free(&m);
  }
  /* truncated shard: the last tensor runs past the end */
  struct stat sb;
  stat(shard, &sb);
  CHECK(truncate(shard, sb.st_size - 10) == 0);
  load_error(g_dir, "model-00001-of-00001.safetensors", "past the end");
  /* config that does not match the weights: the tensor and the file are named */
  write_tiny(g_dir);
  snprintf(path, sizeof path, "%s/config.json", g_dir);
  replace_in_file(path, "\"intermediate_size\":\t192", "\"intermediate_size\":\t96");
  load_error(g_dir, "model.layers.0.mlp.gate_proj.weight", "shape [192, 64]");
  /* index naming a shard that does not exist */
  write_tiny(g_dir);
  snprintf(path, sizeof path, "%s/model.safetensors.index.json", g_dir);
  replace_in_file(path, "\"model.norm.weight\":\t\"model-00001-of-00001.safetensors\"",
                  "\"model.norm.weight\":\t\"model-00002-of-00002.safetensors\"");
  load_error(g_dir, "model-00002-of-00002.safetensors", "cannot open");
  /* index without an expected tensor; index escaping the folder */
  write_tiny(g_dir);
  replace_in_file(path, "\"model.norm.weight\":\t\"model-00001-of-00001.safetensors\",", "");
  load_error(g_dir, "model.norm.weight", "weight_map");
  write_tiny(g_dir);
  replace_in_file(path, "\"model.norm.weight\":\t\"model-00001-of-00001.safetensors\"",
                  "\"model.norm.weight\":\t\"../x.safetensors\"");
  load_error(g_dir, "../x.safetensors", "plain file name");
  /* tied config over untied weights: lm_head.weight is ignored (as transformers does); more layers in
   * the config than in the file: missing tensor */
  write_tiny(g_dir);
  snprintf(path, sizeof path, "%s/config.json", g_dir);
  replace_in_file(path, "\"num_hidden_layers\":\t1", "\"num_hidden_layers\":\t2");
  snprintf(path, sizeof path, "%s/model.safetensors.index.json", g_dir);
  load_error(g_dir, "model.layers.1.", "missing");
  /* no weights at all */
  write_tiny(g_dir);
  unlink(path);
  unlink(shard);
  load_error(g_dir, "no model.safetensors", NULL);
}

/* A single model.safetensors holding every tensor of `ref` as F32 (exact) or F16 (norms only: exact). */
static void write_converted(const qwen3_model *ref, const char *dir) {
  int n = qwen3_tensor_count(&ref->cfg);
  char *hdr = malloc(1 << 16);
  size_t hn = 0, off = 0;
  hn += (size_t)sprintf(hdr + hn, "{");
  for (int i = 0; i < n; i++) {
    qwen3_tensor_desc d;
    qwen3_tensor_desc_at(&ref->cfg, i, &d);
    size_t cnt = (size_t)d.shape[0] * (size_t)(d.ndim == 2 ? d.shape[1] : 1), es = d.is_norm ? 2 : 4;
    if (d.ndim == 2)
      hn += (size_t)sprintf(hdr + hn, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],\"data_offsets\":[%zu,%zu]}",
                            i ? "," : "", d.name, (long long)d.shape[0], (long long)d.shape[1], off, off + cnt * es);
    else
      hn += (size_t)sprintf(hdr + hn, "%s\"%s\":{\"dtype\":\"F16\",\"shape\":[%lld],\"data_offsets\":[%zu,%zu]}",
                            i ? "," : "", d.name, (long long)d.shape[0], off, off + cnt * es);
    off += cnt * es;
  }
  hn += (size_t)sprintf(hdr + hn, "}");
  char path[700];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  FILE *f = fopen(path, "wb");
  uint64_t hl = hn;
  fwrite(&hl, 8, 1, f); /* little-endian host */
  fwrite(hdr, 1, hn, f);
  qwen3_model *mm = (qwen3_model *)ref;
  for (int i = 0; i < n; i++) {
    qwen3_tensor_desc d;
    qwen3_tensor_desc_at(&ref->cfg, i, &d);
    size_t cnt = (size_t)d.shape[0] * (size_t)(d.ndim == 2 ? d.shape[1] : 1);
    const uint16_t *src = i == 0 ? mm->embed : i == n - 1 ? mm->lm_head : i == n - 2 ? mm->final_norm : NULL;
    if (!src) {
      const qwen3_layer_weights *L = &mm->layers[0];
      const uint16_t *s[11] = {L->input_norm, L->q, L->k, L->v, L->o, L->q_norm, L->k_norm, L->post_norm, L->gate, L->up, L->down};
      src = s[(i - 1) % 11];
    }
    for (size_t k = 0; k < cnt; k++) {
      if (d.is_norm) {
        uint16_t h = 0x3c00; /* f16 1.0: the writer's norms are all 1 */
        fwrite(&h, 2, 1, f);
      } else {
        float v = klab_bf16_to_float(src[k]);
        fwrite(&v, 4, 1, f);
      }
    }
  }
  fclose(f);
  free(hdr);
}

static void test_conversion(void) {
  char dir2[600];
  snprintf(dir2, sizeof dir2, "%s_f32", g_dir);
  write_tiny(g_dir);
  qwen3_model ref, conv;
  klab_err err = {{0}};
  if (qwen3_model_load(g_dir, &ref, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    return;
  }
  mkdir(dir2, 0755);
  char src[700], dst[700];
  snprintf(src, sizeof src, "%s/config.json", g_dir);
  snprintf(dst, sizeof dst, "%s/config.json", dir2);
  FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
  fclose(in);
  fclose(out);
  write_converted(&ref, dir2);
  CHECK_MSG(qwen3_model_load(dir2, &conv, &err) == 0, "%s", err.msg);
  if (conv.layers) {
    CHECK(conv.converted == qwen3_tensor_count(&conv.cfg));
    int64_t H = ref.cfg.hidden, V = ref.cfg.vocab;
    CHECK(memcmp(conv.embed, ref.embed, (size_t)(V * H) * 2) == 0);
    CHECK(memcmp(conv.lm_head, ref.lm_head, (size_t)(V * H) * 2) == 0);
    CHECK(memcmp(conv.layers[0].down, ref.layers[0].down, (size_t)(H * ref.cfg.intermediate) * 2) == 0);
    CHECK(conv.layers[0].k_norm[0] == 0x3f80 && conv.final_norm[H - 1] == 0x3f80);
    qwen3_model_free(&conv);
  }
  qwen3_model_free(&ref);
}

int main(void) {
  snprintf(g_dir, sizeof g_dir, "%s/engine_st_model", KLAB_BINARY_DIR);
  test_parse();
  test_model_errors();
  test_conversion();
  return klab_test_finish("test_engine_safetensors");
}
