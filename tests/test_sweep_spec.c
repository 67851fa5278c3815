/* Sweep spec parsing: good specs give the expected shapes and settings; every malformed spec fails
 * before any GPU work with the file, the JSON path and the reason. */
#include <dirent.h>
#include <string.h>
#include <stdlib.h>
#include "test_util.h"
#include "harness/sweep.h"
#include "harness/bundle.h"

static int has_shape(const klab_sweep_op *so, const char *text, const char *label) {
  for (int s = 0; s < so->nshapes; s++) {
    char t[128];
    klab_format_shape(so->op, so->shapes[s], ';', t, sizeof t);
    if (!strcmp(t, text)) return !label || strstr(so->labels[s], label) != NULL;
  }
  return 0;
}

static void good_specs(void) {
  klab_sweep_spec sp;
  klab_err err = {{0}};
  const char *text =
      "{\"name\": \"t1\", \"description\": \"d\", \"dtype\": \"bf16\",\n"
      " \"timing\": {\"seed\": 7, \"seeds\": 4, \"max_noise\": 0.02, \"min_samples\": 10, \"max_samples\": 99,\n"
      "            \"max_seconds\": 0.5, \"warmup_ms\": 3, \"rounds\": 3, \"graph\": true, \"spaced\": true},\n"
      " \"ops\": [\n"
      "  {\"op\": \"rmsnorm\", \"shapes\": [\n"
      "     {\"list\": [\"T=1,H=2560\", {\"T\": 3, \"H\": 64}], \"label\": \"hand\"},\n"
      "     {\"range\": {\"from\": 1024, \"to\": 8192, \"mul\": 2}, \"dims\": [\"H\"], \"fixed\": {\"T\": 4}},\n"
      "     {\"grid\": {\"T\": {\"from\": 1, \"to\": 16, \"add\": 5}, \"H\": [128, 256]}},\n"
      "     {\"model\": \"4b\", \"phase\": \"decode\", \"M\": [1]}]},\n"
      "  {\"op\": \"gemv\", \"variants\": [\"optimized\"], \"timing\": {\"seeds\": 2},\n"
      "   \"shapes\": {\"model\": \"4b\", \"phase\": \"decode\", \"M\": [1, 16], \"projections\": [\"qkv\", \"lm_head\"]}}\n"
      " ]}\n";
  int rc = klab_sweep_parse_text(text, "good.json", NULL, 0, &sp, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc) return;
  CHECK(!strcmp(sp.name, "t1"));
  CHECK(sp.nops == 2);
  const klab_sweep_op *r = &sp.ops[0], *g = &sp.ops[1];
  /* 2 list + 4 range (1024..8192) + 4x2 grid (T 1,6,11,16) + 1 model (T=1,H=2560 duplicates the list's) */
  CHECK_MSG(r->nshapes == 2 + 4 + 8, "rmsnorm shapes %d", r->nshapes);
  CHECK(has_shape(r, "T=1;H=2560", "hand"));
  CHECK(has_shape(r, "T=1;H=2560", "qwen3-4b norm")); /* labels merged */
  CHECK(has_shape(r, "T=3;H=64", NULL));
  CHECK(has_shape(r, "T=4;H=1024", NULL) && has_shape(r, "T=4;H=8192", NULL) && !has_shape(r, "T=4;H=16384", NULL));
  CHECK(has_shape(r, "T=16;H=256", NULL) && has_shape(r, "T=11;H=128", NULL) && !has_shape(r, "T=21;H=128", NULL));
  CHECK(r->opts.seed == 7 && r->opts.seeds == 4 && r->opts.max_samples == 99 && r->opts.min_samples == 10);
  CHECK_NEAR(r->opts.max_noise, 0.02, 1e-12);
  CHECK_NEAR(r->opts.max_seconds, 0.5, 1e-12);
  CHECK_NEAR(r->opts.warmup_ms, 3.0, 1e-12);
  CHECK(r->opts.rounds == 3 && g->opts.rounds == 3);
  CHECK(r->opts.use_graph == 1 && r->opts.spaced == 1 && r->opts.time_it == 1 && r->opts.variant == NULL);
  CHECK(r->nvariants == 0);
  CHECK(g->nvariants == 1 && !strcmp(g->variants[0], "optimized"));
  CHECK(g->opts.seeds == 2 && g->opts.seed == 7); /* entry timing overrides, the rest inherited */
  CHECK(g->nshapes == 4);
  CHECK(has_shape(g, "M=1;N=6144;K=2560", "qwen3-4b qkv"));
  CHECK(has_shape(g, "M=16;N=151936;K=2560", "qwen3-4b lm_head"));
  CHECK(!has_shape(g, "M=1;N=2560;K=4096", NULL)); /* o not selected */
  CHECK(klab_sweep_total_shapes(&sp) == 18);
  klab_sweep_free(&sp);

  /* name defaults to the file's base name; config.json by path gives the preset's shapes */
  char dir[600], cfgp[700], spec[800];
  snprintf(dir, sizeof dir, "%s/test_sweep_spec_tmp/Qwen3-4B-local", KLAB_BINARY_DIR);
  CHECK(klab_mkdir_p(dir) == 0);
  snprintf(cfgp, sizeof cfgp, "%s/config.json", dir);
  FILE *f = fopen(cfgp, "w");
  CHECK(f != NULL);
  if (!f) return;
  fputs("{\"architectures\": [\"Qwen3ForCausalLM\"], \"model_type\": \"qwen3\", \"hidden_size\": 2560,\n"
        " \"intermediate_size\": 9728, \"num_hidden_layers\": 36, \"num_attention_heads\": 32,\n"
        " \"num_key_value_heads\": 8, \"head_dim\": 128, \"vocab_size\": 151936, \"max_position_embeddings\": 40960,\n"
        " \"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000, \"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\",\n"
        " \"hidden_act\": \"silu\", \"attention_bias\": false, \"use_sliding_window\": false, \"bos_token_id\": 151643,\n"
        " \"eos_token_id\": 151645}\n", f);
  fclose(f);
  snprintf(spec, sizeof spec, "%s/test_sweep_spec_tmp/by-path.json", KLAB_BINARY_DIR);
  f = fopen(spec, "w");
  CHECK(f != NULL);
  if (!f) return;
  /* relative to the spec's folder */
  fputs("{\"ops\": [{\"op\": \"gemv\", \"shapes\": {\"model\": \"Qwen3-4B-local/config.json\", \"phase\": \"decode\", \"M\": 1}}]}", f);
  fclose(f);
  rc = klab_sweep_parse_file(spec, 0, &sp, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc == 0) {
    CHECK(!strcmp(sp.name, "by-path"));
    CHECK(sp.ops[0].nshapes == 5);
    CHECK(has_shape(&sp.ops[0], "M=1;N=19456;K=2560", "Qwen3-4B-local gate_up"));
    CHECK(has_shape(&sp.ops[0], "M=1;N=2560;K=9728", "Qwen3-4B-local down"));
    klab_sweep_free(&sp);
  }
}

typedef struct {
  const char *text;
  const char *path;   /* the JSON path the message must name */
  const char *reason; /* and a word of the reason */
} bad_case;

static void bad_specs(void) {
  static const bad_case cases[] = {
      {"{\"ops\": [", "line 1", "malformed JSON"},
      {"[1, 2]", "$:", "JSON object"},
      {"{\"ops\": []}", "$.ops:", "non-empty"},
      {"{\"opz\": []}", "$:", "unknown key \"opz\""},
      {"{\"ops\": [{\"op\": \"nosuch\", \"shapes\": {\"list\": [\"T=1,H=8\"]}}]}", "$.ops[0].op:", "unknown op \"nosuch\""},
      {"{\"ops\": [{\"op\": \"rmsnorm\", \"shapes\": {\"range\": {\"from\": 512, \"to\": 8192, \"mul\": 1}, \"dims\": [\"H\"], "
       "\"fixed\": {\"T\": 1}}}]}",
       "$.ops[0].shapes.range.mul:", ">= 2"},
      {"{\"ops\": [{\"op\": \"rmsnorm\", \"shapes\": {\"range\": {\"from\": 512, \"to\": 256, \"add\": 1}, \"dims\": [\"H\"], "
       "\"fixed\": {\"T\": 1}}}]}",
       "$.ops[0].shapes.range.to:", ">= from"},
      {"{\"ops\": [{\"op\": \"rmsnorm\", \"shapes\": {\"range\": {\"from\": 512, \"to\": 1024, \"mul\": 2}, \"dims\": [\"H\"]}}]}",
       "$.ops[0].shapes:", "dim T is neither"},
      {"{\"ops\": [{\"op\": \"rmsnorm\", \"shapes\": [{\"list\": [\"T=1,H=64\"]}, {\"model\": \"5b\", \"phase\": \"decode\"}]}]}",
       "$.ops[0].shapes[1].model:", "preset"},
      {"{\"ops\": [{\"op\": \"rmsnorm\", \"shapes\": {\"model\": \"4b\", \"phase\": \"decoding\"}}]}", "$.ops[0].shapes.phase:",
       "\"decode\" or \"prefill\""},
      {"{\"ops\": [{\"op\": \"rmsnorm\", \"shapes\": {\"model\": \"4b\", \"phase\": \"prefill\", \"M\": [1]}}]}",
       "$.ops[0].shapes.M:", "phase decode only"},
      {"{\"ops\": [{\"op\": \"rmsnorm\", \"shapes\": {\"model\": \"4b\", \"phase\": \"decode\", \"projections\": [\"qkv\"]}}]}",
       "$.ops[0].shapes.projections:", "gemv and gemm only"},
      {"{\"ops\": [{\"op\": \"gemv\", \"shapes\": {\"model\": \"4b\", \"phase\": \"decode\", \"projections\": [\"qkv\", \"q\"]}}]}",
       "$.ops[0].shapes.projections[1]:", "unknown projection"},
      {"{\"ops\": [{\"op\": \"gemv\", \"shapes\": {\"model\": \"4b\", \"phase\": \"prefill\"}}]}", "$.ops[0].shapes:",
       "does not run in the prefill phase"},
      {"{\"ops\": [{\"op\": \"gemv\", \"variants\": [\"naive\", \"turbo\"], \"shapes\": {\"list\": [\"M=1,N=8,K=8\"]}}]}",
       "$.ops[0].variants[1]:", "no variant \"turbo\""},
      {"{\"ops\": [{\"op\": \"gemv\", \"shape\": {\"list\": [\"M=1,N=8,K=8\"]}}]}", "$.ops[0]:", "unknown key \"shape\""},
      {"{\"ops\": [{\"op\": \"gemv\", \"shapes\": {\"list\": [\"M=64,N=128,K=128\"]}}]}", "$.ops[0].shapes.list[0]:",
       "gemv rejects shape M=64;N=128;K=128"},
      {"{\"ops\": [{\"op\": \"gemv\", \"shapes\": {\"model\": \"4b\", \"phase\": \"decode\", \"M\": [1, 32]}}]}",
       "$.ops[0].shapes:", "gemv rejects shape M=32"},
      {"{\"ops\": [{\"op\": \"rmsnorm\", \"shapes\": {\"list\": [\"T=1\"]}}]}", "$.ops[0].shapes.list[0]:", "dim H missing"},
      {"{\"ops\": [{\"op\": \"rmsnorm\", \"shapes\": {\"list\": [{\"T\": 1, \"X\": 2}]}}]}", "$.ops[0].shapes.list[0].X:",
       "unknown dim"},
      {"{\"ops\": [{\"op\": \"rmsnorm\", \"shapes\": {\"grid\": {\"T\": [1, 2.5], \"H\": 8}}}]}", "$.ops[0].shapes.grid.T[1]:",
       "integer"},
      {"{\"ops\": [{\"op\": \"rmsnorm\", \"shapes\": {\"list\": [\"T=1,H=8\"], \"grid\": {\"T\": 1, \"H\": 8}}}]}",
       "$.ops[0].shapes:", "exactly one of"},
      {"{\"timing\": {\"max_noise\": 2}, \"ops\": [{\"op\": \"rmsnorm\", \"shapes\": {\"list\": [\"T=1,H=8\"]}}]}",
       "$.timing.max_noise:", "must be in"},
      {"{\"ops\": [{\"op\": \"rmsnorm\", \"timing\": {\"min_samples\": 50, \"max_samples\": 10}, \"shapes\": {\"list\": [\"T=1,H=8\"]}}]}",
       "$.ops[0].timing:", "min_samples"},
      {"{\"timing\": {\"rounds\": 0}, \"ops\": [{\"op\": \"rmsnorm\", \"shapes\": {\"list\": [\"T=1,H=8\"]}}]}",
       "$.timing.rounds:", ">= 1"},
      {"{\"ops\": [{\"op\": \"rmsnorm\", \"timing\": {\"graph\": 1}, \"shapes\": {\"list\": [\"T=1,H=8\"]}}]}",
       "$.ops[0].timing.graph:", "true or false"},
      {"{\"timing\": {\"spaced\": \"yes\"}, \"ops\": [{\"op\": \"rmsnorm\", \"shapes\": {\"list\": [\"T=1,H=8\"]}}]}",
       "$.timing.spaced:", "true or false"},
      {"{\"ops\": [{\"op\": \"rmsnorm\", \"dtype\": \"f32\", \"shapes\": {\"list\": [\"T=1,H=8\"]}}]}", "$.ops[0].dtype:",
       "does not run dtype f32"},
      {"{\"ops\": [{\"op\": \"rmsnorm\", \"shapes\": {\"model\": \"no/such/config.json\", \"phase\": \"decode\"}}]}",
       "$.ops[0].shapes.model:", "not found"},
  };
  int n = (int)(sizeof cases / sizeof cases[0]);
  for (int i = 0; i < n; i++) {
    klab_sweep_spec sp;
    klab_err err = {{0}};
    int rc = klab_sweep_parse_text(cases[i].text, "bad.json", NULL, 0, &sp, &err);
    CHECK_MSG(rc == -1, "case %d parsed but should fail: %s", i, cases[i].text);
    CHECK_MSG(strstr(err.msg, "bad.json") != NULL, "case %d: no file name in: %s", i, err.msg);
    CHECK_MSG(strstr(err.msg, cases[i].path) != NULL, "case %d: path %s not in: %s", i, cases[i].path, err.msg);
    CHECK_MSG(strstr(err.msg, cases[i].reason) != NULL, "case %d: reason '%s' not in: %s", i, cases[i].reason, err.msg);
    CHECK(sp.nops == 0 && sp.ops == NULL);
  }
  /* a file that does not exist */
  klab_sweep_spec sp;
  klab_err err = {{0}};
  CHECK(klab_sweep_parse_file("/nonexistent/spec.json", 0, &sp, &err) == -1);
  CHECK(strstr(err.msg, "/nonexistent/spec.json") != NULL);
}

/* Every shipped spec (every .json file under sweeps/) is well formed, named after its file; those whose ops are all
 * registered validate completely. */
static void shipped_specs(void) {
  char dir_path[520];
  snprintf(dir_path, sizeof dir_path, "%s/sweeps", KLAB_SOURCE_DIR);
  DIR *dir = opendir(dir_path);
  CHECK_MSG(dir != NULL, "cannot list %s", dir_path);
  if (!dir) return;
  char specs[64][128];
  size_t nspecs = 0;
  for (struct dirent *e; (e = readdir(dir)) != NULL;) {
    const size_t n = strlen(e->d_name);
    if (n > 5 && n < sizeof specs[0] && !strcmp(e->d_name + n - 5, ".json") && nspecs < sizeof specs / sizeof specs[0])
      memcpy(specs[nspecs], e->d_name, n - 5), specs[nspecs][n - 5] = '\0', nspecs++;
  }
  closedir(dir);
  CHECK_MSG(nspecs >= 9, "only %zu specs under %s", nspecs, dir_path);
  for (size_t i = 0; i < nspecs; i++) {
    char path[600];
    snprintf(path, sizeof path, "%s/sweeps/%s.json", KLAB_SOURCE_DIR, specs[i]);
    klab_sweep_spec sp;
    klab_err err = {{0}};
    int rc = klab_sweep_parse_file(path, KLAB_SWEEP_ALLOW_UNREGISTERED, &sp, &err);
    CHECK_MSG(rc == 0, "%s: %s", specs[i], err.msg);
    if (rc) continue;
    CHECK(!strcmp(sp.name, specs[i]));
    CHECK(klab_sweep_total_shapes(&sp) > 0);
    int all_registered = 1;
    for (int k = 0; k < sp.nops; k++) all_registered &= sp.ops[k].op != NULL;
    klab_sweep_free(&sp);
    rc = klab_sweep_parse_file(path, 0, &sp, &err);
    if (all_registered) CHECK_MSG(rc == 0, "%s: %s", specs[i], err.msg);
    else CHECK_MSG(rc == -1 && strstr(err.msg, "not registered"), "%s: %s", specs[i], err.msg);
    if (rc == 0) klab_sweep_free(&sp);
  }
  /* the family sweep: every projection of every family member at M=1 (14b and 32b share lm_head) */
  char path[600];
  snprintf(path, sizeof path, "%s/sweeps/qwen3-family-gemv-vs-cublas.json", KLAB_SOURCE_DIR);
  klab_sweep_spec sp;
  klab_err err = {{0}};
  if (klab_sweep_parse_file(path, 0, &sp, &err) == 0) {
    CHECK(sp.nops == 1 && sp.ops[0].nshapes == 29);
    CHECK(has_shape(&sp.ops[0], "M=1;N=151936;K=5120", "qwen3-14b lm_head, qwen3-32b lm_head"));
    CHECK(has_shape(&sp.ops[0], "M=1;N=1024;K=2048", "qwen3-0.6b o"));
    CHECK(has_shape(&sp.ops[0], "M=1;N=5120;K=25600", "qwen3-32b down"));
    klab_sweep_free(&sp);
  } else {
    CHECK_MSG(0, "%s", err.msg);
  }
  /* gemm square: 512..8192 (parse with unregistered ops allowed) */
  snprintf(path, sizeof path, "%s/sweeps/gemm-square-vs-cublas.json", KLAB_SOURCE_DIR);
  if (klab_sweep_parse_file(path, KLAB_SWEEP_ALLOW_UNREGISTERED, &sp, &err) == 0) {
    CHECK(sp.ops[0].nshapes == 5);
    int64_t want[] = {512, 1024, 2048, 4096, 8192};
    for (int s = 0; s < sp.ops[0].nshapes && s < 5; s++)
      CHECK(sp.ops[0].shapes[s][0] == want[s] && sp.ops[0].shapes[s][1] == want[s] && sp.ops[0].shapes[s][2] == want[s]);
    klab_sweep_free(&sp);
  }
}

int main(void) {
  good_specs();
  bad_specs();
  shipped_specs();
  return klab_test_finish("test_sweep_spec");
}
