/* Qwen3 config: presets (design.md §4), config.json parsing and the errors that must name the key. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "engine/qwen3_config.h"
#include "engine/qwen3_config_parse.h"
#include "test_util.h"

/* A valid Qwen3-0.6B config.json as published (transformers 4.51 layout). */
static const char *k_valid =
    "{\"architectures\": [\"Qwen3ForCausalLM\"], \"attention_bias\": false, \"attention_dropout\": 0.0,"
    " \"bos_token_id\": 151643, \"eos_token_id\": 151645, \"head_dim\": 128, \"hidden_act\": \"silu\","
    " \"hidden_size\": 1024, \"initializer_range\": 0.02, \"intermediate_size\": 3072,"
    " \"max_position_embeddings\": 40960, \"max_window_layers\": 28, \"model_type\": \"qwen3\","
    " \"num_attention_heads\": 16, \"num_hidden_layers\": 28, \"num_key_value_heads\": 8,"
    " \"rms_norm_eps\": 1e-06, \"rope_scaling\": null, \"rope_theta\": 1000000, \"sliding_window\": null,"
    " \"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.51.0\","
    " \"use_cache\": true, \"use_sliding_window\": false, \"vocab_size\": 151936}";

/* k_valid with the first occurrence of `from` replaced by `to`. */
static char *mutate(const char *from, const char *to) {
  const char *at = strstr(k_valid, from);
  if (!at) {
    fprintf(stderr, "mutate: '%s' not in the config\n", from);
    exit(1);
  }
  size_t n = strlen(k_valid) - strlen(from) + strlen(to) + 1;
  char *s = malloc(n);
  snprintf(s, n, "%.*s%s%s", (int)(at - k_valid), k_valid, to, at + strlen(from));
  return s;
}

/* Parsing + validation of text must fail with a message containing every `want` fragment. */
static void expect_error(const char *text, const char *want1, const char *want2) {
  qwen3_config c;
  klab_err err = {{0}};
  int rc = qwen3_config_parse_json(text, strlen(text), "cfg", &c, &err);
  if (rc == 0) rc = qwen3_config_validate(&c, &err);
  CHECK_MSG(rc != 0, "accepted: %.120s", text);
  CHECK_MSG(strstr(err.msg, want1) != NULL, "error '%s' lacks '%s'", err.msg, want1);
  if (want2) CHECK_MSG(strstr(err.msg, want2) != NULL, "error '%s' lacks '%s'", err.msg, want2);
}

static void expect_mutation_error(const char *from, const char *to, const char *want1, const char *want2) {
  char *s = mutate(from, to);
  expect_error(s, want1, want2);
  free(s);
}

static void test_presets(void) {
  static const struct { const char *n; int64_t h, i, l, nh, kv; int tie; } fam[] = {
      {"0.6b", 1024, 3072, 28, 16, 8, 1}, {"1.7b", 2048, 6144, 28, 16, 8, 1}, {"4b", 2560, 9728, 36, 32, 8, 1},
      {"8b", 4096, 12288, 36, 32, 8, 0},  {"14b", 5120, 17408, 40, 40, 8, 0}, {"32b", 5120, 25600, 64, 64, 8, 0}};
  klab_err err = {{0}};
  for (size_t k = 0; k < sizeof fam / sizeof fam[0]; k++) {
    qwen3_config c;
    CHECK(qwen3_preset(fam[k].n, &c, &err) == 0);
    CHECK_MSG(c.hidden == fam[k].h && c.intermediate == fam[k].i && c.layers == fam[k].l && c.heads == fam[k].nh &&
                  c.kv_heads == fam[k].kv && c.tie_word_embeddings == fam[k].tie,
              "preset %s", fam[k].n);
    CHECK(c.head_dim == 128 && c.vocab == 151936 && c.rope_theta == 1e6 && c.rms_norm_eps == 1e-6);
    CHECK(c.max_position == 40960 && c.bos_token_id == 151643 && c.n_eos == 2);
    CHECK(c.eos_token_ids[0] == 151645 && c.eos_token_ids[1] == 151643);
    CHECK(qwen3_config_validate(&c, &err) == 0);
  }
  qwen3_config t;
  CHECK(qwen3_preset("tiny", &t, &err) == 0 && qwen3_config_validate(&t, &err) == 0);
  CHECK(t.heads % t.kv_heads == 0 && t.kv_heads < t.heads && t.layers <= 4);
  CHECK(qwen3_preset_count() == 8);
  CHECK(qwen3_preset_name(qwen3_preset_count()) == NULL);
  CHECK(qwen3_preset("7b", &t, &err) != 0 && strstr(err.msg, "0.6b") && strstr(err.msg, "tiny"));
}

static void test_parse_valid(void) {
  qwen3_config c;
  klab_err err = {{0}};
  CHECK_MSG(qwen3_config_parse_json(k_valid, strlen(k_valid), "cfg", &c, &err) == 0, "%s", err.msg);
  qwen3_config p;
  qwen3_preset("0.6b", &p, &err);
  CHECK(c.hidden == p.hidden && c.intermediate == p.intermediate && c.layers == p.layers && c.heads == p.heads);
  CHECK(c.kv_heads == p.kv_heads && c.head_dim == 128 && c.vocab == p.vocab && c.tie_word_embeddings == 1);
  CHECK(c.rope_theta == 1e6 && c.rms_norm_eps == 1e-6 && c.max_position == 40960);
  CHECK(strcmp(c.torch_dtype, "bfloat16") == 0 && c.bos_token_id == 151643);
  CHECK(c.n_eos == 1 && c.eos_token_ids[0] == 151645);
  CHECK(qwen3_config_validate(&c, &err) == 0);
  /* generation_config.json adds eos ids (no duplicates) */
  const char *gen = "{\"bos_token_id\": 151643, \"eos_token_id\": [151645, 151643], \"pad_token_id\": 151643}";
  CHECK(qwen3_generation_config_parse_json(gen, strlen(gen), "gen", &c, &err) == 0);
  CHECK(c.n_eos == 2 && c.eos_token_ids[1] == 151643);
  /* transformers 5 layout: "dtype" and rope_theta inside rope_parameters */
  char *v5 = mutate("\"rope_scaling\": null, \"rope_theta\": 1000000,",
                    "\"rope_parameters\": {\"rope_theta\": 5000.0, \"rope_type\": \"default\"},");
  char *v5b = NULL;
  {
    const char *at = strstr(v5, "\"torch_dtype\"");
    size_t n = strlen(v5) + 8;
    v5b = malloc(n);
    snprintf(v5b, n, "%.*s\"dtype\"%s", (int)(at - v5), v5, at + strlen("\"torch_dtype\""));
  }
  CHECK_MSG(qwen3_config_parse_json(v5b, strlen(v5b), "cfg5", &c, &err) == 0, "%s", err.msg);
  CHECK(c.rope_theta == 5000.0 && strcmp(c.torch_dtype, "bfloat16") == 0);
  free(v5);
  free(v5b);
  /* eos as a list in config.json; tie absent = false (transformers' default) */
  char *l = mutate("\"eos_token_id\": 151645", "\"eos_token_id\": [1, 2, 3]");
  CHECK(qwen3_config_parse_json(l, strlen(l), "cfg", &c, &err) == 0 && c.n_eos == 3 && c.eos_token_ids[2] == 3);
  free(l);
  char *nt = mutate("\"tie_word_embeddings\": true,", "");
  CHECK(qwen3_config_parse_json(nt, strlen(nt), "cfg", &c, &err) == 0 && c.tie_word_embeddings == 0);
  free(nt);
}

static void test_errors(void) {
  expect_error("", "cfg", "not valid JSON");
  expect_error("[1, 2]", "cfg", "object");
  expect_mutation_error("\"hidden_size\": 1024,", "", "\"hidden_size\"", "missing");
  expect_mutation_error("\"head_dim\": 128,", "", "\"head_dim\"", "missing");
  expect_mutation_error("\"vocab_size\": 151936", "\"vocab_size\": \"151936\"", "\"vocab_size\"", "integer");
  expect_mutation_error("\"num_hidden_layers\": 28", "\"num_hidden_layers\": 2.5", "\"num_hidden_layers\"", NULL);
  expect_mutation_error("\"num_hidden_layers\": 28", "\"num_hidden_layers\": -1", "\"num_hidden_layers\"", NULL);
  expect_mutation_error("\"rms_norm_eps\": 1e-06", "\"rms_norm_eps\": null", "\"rms_norm_eps\"", NULL);
  expect_mutation_error("\"rope_theta\": 1000000,", "", "\"rope_theta\"", "missing");
  expect_mutation_error("\"model_type\": \"qwen3\"", "\"model_type\": \"qwen3_moe\"", "\"model_type\"", "qwen3_moe");
  expect_mutation_error("\"model_type\": \"qwen3\",", "", "\"model_type\"", "missing");
  expect_mutation_error("\"rope_scaling\": null", "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}",
                        "\"rope_scaling\"", "yarn");
  expect_mutation_error("\"use_sliding_window\": false", "\"use_sliding_window\": true", "\"use_sliding_window\"",
                        "sliding");
  expect_mutation_error("\"attention_bias\": false", "\"attention_bias\": true", "\"attention_bias\"", NULL);
  expect_mutation_error("\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", "\"hidden_act\"", NULL);
  expect_mutation_error("\"torch_dtype\": \"bfloat16\"", "\"torch_dtype\": \"int8\"", "\"torch_dtype\"", NULL);
  expect_mutation_error("\"tie_word_embeddings\": true", "\"tie_word_embeddings\": 1", "\"tie_word_embeddings\"", NULL);
  expect_mutation_error("\"eos_token_id\": 151645", "\"eos_token_id\": \"x\"", "\"eos_token_id\"", NULL);
  /* validation: GQA divisibility, odd head_dim */
  expect_mutation_error("\"num_key_value_heads\": 8", "\"num_key_value_heads\": 6", "num_key_value_heads", NULL);
  expect_mutation_error("\"head_dim\": 128", "\"head_dim\": 127", "head_dim", NULL);
  expect_mutation_error("\"hidden_size\": 1024", "\"hidden_size\": 1e12", "hidden_size", NULL);
}

static void test_load_files(void) {
  char dir[512], path[600], gpath[600];
  snprintf(dir, sizeof dir, "%s/engine_config_files", KLAB_BINARY_DIR);
  mkdir(dir, 0755);
  snprintf(path, sizeof path, "%s/config.json", dir);
  snprintf(gpath, sizeof gpath, "%s/generation_config.json", dir);
  FILE *f = fopen(path, "w");
  CHECK_MSG(f != NULL, "cannot write %s", path);
  if (!f) return;
  fputs(k_valid, f);
  fclose(f);
  remove(gpath);
  qwen3_config c;
  klab_err err = {{0}};
  CHECK_MSG(qwen3_config_load(path, &c, &err) == 0, "%s", err.msg);
  CHECK(c.n_eos == 1);
  f = fopen(gpath, "w");
  fputs("{\"eos_token_id\": [151645, 151643, 7]}", f);
  fclose(f);
  CHECK(qwen3_config_load(path, &c, &err) == 0 && c.n_eos == 3 && c.eos_token_ids[2] == 7);
  f = fopen(gpath, "w");
  fputs("{\"eos_token_id\": [151645,", f);
  fclose(f);
  CHECK(qwen3_config_load(path, &c, &err) != 0 && strstr(err.msg, "generation_config.json"));
  remove(gpath);
  char missing[600];
  snprintf(missing, sizeof missing, "%s/nope/config.json", dir);
  CHECK(qwen3_config_load(missing, &c, &err) != 0 && strstr(err.msg, "nope/config.json"));
}

int main(void) {
  test_presets();
  test_parse_valid();
  test_errors();
  test_load_files();
  return klab_test_finish("test_engine_config");
}
