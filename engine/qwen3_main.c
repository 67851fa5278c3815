/* qwen3: the engine's command line. `qwen3 init` writes random checkpoints, `qwen3 generate` runs a
 * model (the CPU reference until the GPU path exists), `qwen3 tokenize` exposes the tokenizer.
 * Exit codes: 0 ok, 1 runtime error (unreadable model, I/O), 2 bad usage. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "engine/qwen3_config_parse.h"
#include "engine/qwen3_forward.h"
#include "engine/qwen3_bench.h"
#include "engine/qwen3_generate.h"
#include "engine/qwen3_gpu.h"
#include "harness/run.h"
#include "harness/timing.h"
#include "engine/qwen3_init.h"
#include "engine/tokenizer.h"

#define EXIT_USAGE 2

static int usage_error(const char *cmd, const char *fmt, const char *arg) {
  fprintf(stderr, "qwen3 %s: ", cmd);
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n(see qwen3 %s --help)\n", cmd);
  return EXIT_USAGE;
}

static int fail(const klab_err *err) {
  fprintf(stderr, "qwen3: error: %s\n", err->msg);
  return 1;
}

/* ---- strict number parsing ---------------------------------------------------------------------- */

static int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

static int parse_u64(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  if (*s == '-') return -1;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno || end == s || *end) return -1;
  *out = v;
  return 0;
}

static int parse_f(const char *s, double lo, double hi, float *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= lo && v <= hi)) return -1;
  *out = (float)v;
  return 0;
}

/* "--opt VALUE": the value, or NULL (and a usage message) when it is missing. */
static const char *value_of(int argc, char **argv, int *i, const char *cmd) {
  if (*i + 1 >= argc) {
    usage_error(cmd, "%s needs a value", argv[*i]);
    return NULL;
  }
  return argv[++*i];
}

/* ---- init --------------------------------------------------------------------------------------- */

static void init_help(void) {
  printf("usage: qwen3 init --preset P --seed S --out DIR [--tokenizer DIR] [--layers N] [--shard-mb MB] [--threads N]\n"
         "Writes a random-initialised Qwen3 checkpoint in the Hugging Face layout: config.json,\n"
         "generation_config.json, model-0000i-of-0000n.safetensors + model.safetensors.index.json (bf16,\n"
         "N(0, 0.02) weights, norms 1, deterministic in the seed) and, with --tokenizer, the tokenizer files\n"
         "of DIR. Presets: ");
  for (int i = 0; i < qwen3_preset_count(); i++) printf("%s%s", i ? ", " : "", qwen3_preset_name(i));
  printf(".\n  --layers N     override num_hidden_layers (small checkpoints of a big preset)\n"
         "  --shard-mb MB  maximum shard size (default 2000)\n"
         "  --threads N    generator threads (default: all CPUs)\n");
}

static int cmd_init(int argc, char **argv) {
  qwen3_init_opts o = {0};
  int have_seed = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    int64_t n;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      init_help();
      return 0;
    }
    if (!strcmp(a, "--preset") || !strcmp(a, "--out") || !strcmp(a, "--tokenizer") || !strcmp(a, "--seed") ||
        !strcmp(a, "--layers") || !strcmp(a, "--shard-mb") || !strcmp(a, "--threads")) {
      if (!(v = value_of(argc, argv, &i, "init"))) return EXIT_USAGE;
    } else {
      return usage_error("init", "unknown argument '%s'", a);
    }
    if (!strcmp(a, "--preset")) o.preset = v;
    else if (!strcmp(a, "--out")) o.out_dir = v;
    else if (!strcmp(a, "--tokenizer")) o.tokenizer_dir = v;
    else if (!strcmp(a, "--seed")) {
      if (parse_u64(v, &o.seed)) return usage_error("init", "--seed '%s' is not a non-negative integer", v);
      have_seed = 1;
    } else if (!strcmp(a, "--layers")) {
      if (parse_i64(v, 1, 1024, &n)) return usage_error("init", "--layers '%s' is not an integer in [1, 1024]", v);
      o.layers = n;
    } else if (!strcmp(a, "--shard-mb")) {
      if (parse_i64(v, 1, 1 << 20, &n)) return usage_error("init", "--shard-mb '%s' is not an integer in [1, 2^20]", v);
      o.max_shard_bytes = (uint64_t)n * 1000000ull;
    } else {
      if (parse_i64(v, 1, 16, &n)) return usage_error("init", "--threads '%s' is not an integer in [1, 16]", v);
      o.threads = (int)n;
    }
  }
  if (!o.preset) return usage_error("init", "%s", "--preset is required");
  if (!have_seed) return usage_error("init", "%s", "--seed is required");
  if (!o.out_dir) return usage_error("init", "%s", "--out is required");
  klab_err err = {{0}};
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if (qwen3_init_checkpoint(&o, &err)) return fail(&err);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  fprintf(stderr, "qwen3 init: %s seed %llu -> %s in %.1f s\n", o.preset, (unsigned long long)o.seed, o.out_dir,
          (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
  return 0;
}

/* ---- tokenize ----------------------------------------------------------------------------------- */

static void tokenize_help(void) {
  printf("usage: qwen3 tokenize --model DIR [TEXT]          ids of TEXT (or of stdin), space-separated\n"
         "       qwen3 tokenize --model DIR --decode IDS    text of IDS (\"1 2 3\" or \"1,2,3\")\n"
         "       qwen3 tokenize --model DIR --jsonl FILE    {\"text\": ...} lines -> {\"text\": ..., \"ids\": [...]} lines\n"
         "DIR needs only the tokenizer files (tokenizer.json, or vocab.json + merges.txt).\n"
         "  --stats   print encode throughput (MB/s, tokens) to stderr\n");
}

static int read_stream(FILE *f, qwen3_buf *b, klab_err *err) {
  char chunk[1 << 16];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    char *p = realloc(b->p, b->n + n + 1);
    if (!p) return klab_fail(err, "out of memory reading input");
    b->p = p;
    memcpy(b->p + b->n, chunk, n);
    b->n += n;
    b->p[b->n] = '\0';
    b->cap = b->n + 1;
  }
  if (ferror(f)) return klab_fail(err, "read error on input");
  return 0;
}

static int decode_ids(qwen3_tokenizer *tk, const char *list, klab_err *err) {
  qwen3_ids ids = {0};
  const char *s = list;
  int rc = 0;
  while (!rc && *s) {
    if (*s == ',' || *s == ' ' || *s == '\n' || *s == '\t') {
      s++;
      continue;
    }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || v < 0 || v > INT32_MAX) rc = klab_fail(err, "--decode: '%.20s' is not a token id", s);
    else rc = qwen3_ids_push(&ids, (int32_t)v, err);
    s = end == s ? s + 1 : end;
  }
  qwen3_buf out = {0};
  if (!rc) rc = qwen3_tok_decode(tk, ids.p, ids.n, &out, err);
  if (!rc && (fwrite(out.p, 1, out.n, stdout) != out.n || fputc('\n', stdout) == EOF))
    rc = klab_fail(err, "write to stdout failed");
  qwen3_buf_free(&out);
  qwen3_ids_free(&ids);
  return rc;
}

static int print_ids(const qwen3_ids *ids) {
  for (int64_t i = 0; i < ids->n; i++)
    if (printf(i ? " %d" : "%d", ids->p[i]) < 0) return -1;
  return putchar('\n') == EOF ? -1 : 0;
}

static int jsonl_line(qwen3_tokenizer *tk, const char *line, long lineno, const char *path, klab_err *err) {
  cJSON *o = cJSON_Parse(line);
  const cJSON *t = o ? cJSON_GetObjectItemCaseSensitive(o, "text") : NULL;
  if (!cJSON_IsString(t)) {
    cJSON_Delete(o);
    return klab_fail(err, "%s:%ld: not a JSON object with a string \"text\"", path, lineno);
  }
  qwen3_ids ids = {0};
  int rc = qwen3_tok_encode(tk, t->valuestring, strlen(t->valuestring), &ids, err);
  cJSON *out = rc ? NULL : cJSON_CreateObject();
  if (out) {
    cJSON_AddStringToObject(out, "text", t->valuestring);
    cJSON *arr = cJSON_AddArrayToObject(out, "ids");
    for (int64_t i = 0; i < ids.n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids.p[i]));
    char *s = cJSON_PrintUnformatted(out);
    if (!s || puts(s) == EOF) rc = klab_fail(err, "write to stdout failed");
    cJSON_free(s);
    cJSON_Delete(out);
  } else if (!rc) {
    rc = klab_fail(err, "out of memory");
  } else {
    char msg[KLAB_ERR_LEN];
    snprintf(msg, sizeof msg, "%s", err->msg);
    klab_fail(err, "%s:%ld: %s", path, lineno, msg);
  }
  qwen3_ids_free(&ids);
  cJSON_Delete(o);
  return rc;
}

static int tokenize_jsonl(qwen3_tokenizer *tk, const char *path, klab_err *err) {
  char *text;
  size_t len;
  if (qwen3_read_file(path, (size_t)1 << 32, &text, &len, err)) return -1;
  int rc = 0;
  long lineno = 1;
  for (char *line = text; !rc && line && *line; lineno++) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    if (*line) rc = jsonl_line(tk, line, lineno, path, err);
    line = nl ? nl + 1 : NULL;
  }
  free(text);
  return rc;
}

static int cmd_tokenize(int argc, char **argv) {
  const char *model = NULL, *decode = NULL, *jsonl = NULL, *text = NULL;
  int stats = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      tokenize_help();
      return 0;
    } else if (!strcmp(a, "--model")) {
      if (!(model = value_of(argc, argv, &i, "tokenize"))) return EXIT_USAGE;
    } else if (!strcmp(a, "--decode")) {
      if (!(decode = value_of(argc, argv, &i, "tokenize"))) return EXIT_USAGE;
    } else if (!strcmp(a, "--jsonl")) {
      if (!(jsonl = value_of(argc, argv, &i, "tokenize"))) return EXIT_USAGE;
    } else if (!strcmp(a, "--stats")) {
      stats = 1;
    } else if (a[0] == '-' && a[1] == '-') {
      return usage_error("tokenize", "unknown option '%s'", a);
    } else if (text) {
      return usage_error("tokenize", "more than one TEXT argument ('%s'); quote the text", a);
    } else {
      text = a;
    }
  }
  if (!model) return usage_error("tokenize", "%s", "--model DIR is required");
  if (!!decode + !!jsonl + !!text > 1) return usage_error("tokenize", "%s", "give one of TEXT, --decode, --jsonl");
  klab_err err = {{0}};
  qwen3_tokenizer *tk;
  if (qwen3_tok_load_dir(model, &tk, &err)) return fail(&err);
  int rc = 0;
  if (decode) rc = decode_ids(tk, decode, &err);
  else if (jsonl) rc = tokenize_jsonl(tk, jsonl, &err);
  else {
    qwen3_buf in = {0};
    if (text) {
      in.n = strlen(text);
      in.cap = in.n + 1;
      if (!(in.p = strdup(text))) rc = klab_fail(&err, "out of memory");
    } else {
      rc = read_stream(stdin, &in, &err);
    }
    qwen3_ids ids = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!rc) rc = qwen3_tok_encode(tk, in.p ? in.p : "", in.n, &ids, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (!rc && print_ids(&ids)) rc = klab_fail(&err, "write to stdout failed");
    if (!rc && stats)
      fprintf(stderr, "qwen3 tokenize: %zu bytes -> %lld tokens in %.3f s: %.2f MB/s, %.0f tokens/s\n", in.n,
              (long long)ids.n, s, (double)in.n / 1e6 / s, (double)ids.n / s);
    qwen3_ids_free(&ids);
    qwen3_buf_free(&in);
  }
  qwen3_tok_free(tk);
  return rc ? fail(&err) : 0;
}

/* ---- generate ----------------------------------------------------------------------------------- */

static void generate_help(void) {
  printf("usage: qwen3 generate --model DIR --prompt TEXT [options]\n"
         "Streams the continuation to stdout; a one-line summary goes to stderr.\n"
         "  --max-new-tokens N   default 128\n"
         "  --temperature T      0 (default) = greedy; > 0 samples\n"
         "  --top-k K            0 = off (default)\n"
         "  --top-p P            1 = off (default)\n"
         "  --min-p P            0 = off (default)\n"
         "  --seed S             sampling seed (default 0): step i draws klab_rand_uniform(S, i)\n"
         "  --system TEXT        system turn of the chat template\n"
         "  --think              let the model think (no empty <think></think> block)\n"
         "  --raw-prompt         tokenize TEXT as is, no chat template\n"
         "  --tokenizer DIR      tokenizer files from DIR instead of the model folder\n"
         "  --max-seq-len N      KV cache size in tokens (GPU default: max_position_embeddings capped by free\n"
         "                       memory; CPU default: prompt + max-new-tokens). --max-context is the same.\n"
         "  --variants FILE      winners.json choosing each op's variant (default: results/qwen3-engine/winners.json)\n"
         "  --verbose            print each op's variant choice\n"
         "  --no-graph           decode with plain launches instead of CUDA-graph replays\n"
         "  --no-fuse            decode with separate add_rmsnorm / gemv / silu_mul kernels (no addnorm_gemv)\n"
         "  --no-pdl             capture the decode graph without programmatic dependent launch\n"
         "  --profile            after generating, profile decode steps op by op at the reached context (CUPTI)\n"
         "  --cpu                CPU reference forward pass instead of the GPU\n");
}

typedef struct {
  const char *model, *prompt, *system, *tokenizer;
  int64_t max_new, max_ctx;
  int think, raw, cpu, verbose, no_graph, no_fuse, no_pdl, profile;
  const char *variants;
  qwen3_gen_opts g;
} gen_args;

static int parse_generate(int argc, char **argv, gen_args *a) {
  memset(a, 0, sizeof *a);
  a->max_new = 128;
  a->g.sample = (ref_sample_params){0.0f, 0, 1.0f, 0.0f};
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i], *v = NULL;
    int64_t n;
    if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
      generate_help();
      return -1;
    }
    if (!strcmp(o, "--think")) { a->think = 1; continue; }
    if (!strcmp(o, "--raw-prompt")) { a->raw = 1; continue; }
    if (!strcmp(o, "--cpu")) { a->cpu = 1; continue; }
    if (!strcmp(o, "--verbose")) { a->verbose = 1; continue; }
    if (!strcmp(o, "--no-graph")) { a->no_graph = 1; continue; }
    if (!strcmp(o, "--no-fuse")) { a->no_fuse = 1; continue; }
    if (!strcmp(o, "--no-pdl")) { a->no_pdl = 1; continue; }
    if (!strcmp(o, "--profile")) { a->profile = 1; continue; }
    static const char *with_value[] = {"--model", "--prompt", "--system", "--tokenizer", "--max-new-tokens",
                                       "--max-context", "--max-seq-len", "--temperature", "--top-k", "--top-p",
                                       "--min-p", "--seed", "--variants"};
    int known = 0;
    for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++) known |= !strcmp(o, with_value[k]);
    if (!known) return usage_error("generate", "unknown argument '%s'", o);
    if (!(v = value_of(argc, argv, &i, "generate"))) return EXIT_USAGE;
    if (!strcmp(o, "--model")) a->model = v;
    else if (!strcmp(o, "--prompt")) a->prompt = v;
    else if (!strcmp(o, "--system")) a->system = v;
    else if (!strcmp(o, "--tokenizer")) a->tokenizer = v;
    else if (!strcmp(o, "--variants")) a->variants = v;
    else if (!strcmp(o, "--max-new-tokens")) {
      if (parse_i64(v, 0, 1 << 24, &n)) return usage_error("generate", "--max-new-tokens '%s' is not an integer >= 0", v);
      a->max_new = n;
    } else if (!strcmp(o, "--max-context") || !strcmp(o, "--max-seq-len")) {
      if (parse_i64(v, 1, 1 << 24, &n)) return usage_error("generate", "--max-seq-len / --max-context '%s' is not an integer >= 1", v);
      a->max_ctx = n;
    } else if (!strcmp(o, "--temperature")) {
      if (parse_f(v, 0, 100, &a->g.sample.temperature)) return usage_error("generate", "--temperature '%s' not in [0, 100]", v);
    } else if (!strcmp(o, "--top-k")) {
      if (parse_i64(v, 0, INT32_MAX, &n)) return usage_error("generate", "--top-k '%s' is not an integer >= 0", v);
      a->g.sample.top_k = (int32_t)n;
    } else if (!strcmp(o, "--top-p")) {
      if (parse_f(v, 1e-9, 1, &a->g.sample.top_p)) return usage_error("generate", "--top-p '%s' not in (0, 1]", v);
    } else if (!strcmp(o, "--min-p")) {
      if (parse_f(v, 0, 1, &a->g.sample.min_p)) return usage_error("generate", "--min-p '%s' not in [0, 1]", v);
    } else if (parse_u64(v, &a->g.seed)) {
      return usage_error("generate", "--seed '%s' is not a non-negative integer", v);
    }
  }
  if (!a->model) return usage_error("generate", "%s", "--model DIR is required");
  if (!a->prompt) return usage_error("generate", "%s", "--prompt TEXT is required");
  if (a->raw && (a->system || a->think))
    return usage_error("generate", "%s", "--raw-prompt skips the chat template: --system/--think do not apply");
  if (a->cpu && (a->variants || a->no_graph || a->no_fuse || a->no_pdl || a->profile))
    return usage_error("generate", "%s", "--variants/--no-graph/--no-fuse/--no-pdl/--profile apply to the GPU path, not --cpu");
  return 0;
}

typedef struct {
  const qwen3_tokenizer *tk;
  qwen3_tok_stream st;
  qwen3_buf out;
  int64_t no_text; /* generated ids past the tokenizer's ids (the embedding's padding rows) */
} streamer;

static int stream_token(void *user, int32_t id, klab_err *err) {
  streamer *s = user;
  s->out.n = 0;
  if (id >= qwen3_tok_vocab_size(s->tk)) {
    /* The model's vocabulary (151936) is padded past the tokenizer's ids (151669): a trained model never
     * picks those rows, a random one can. They have no text: shown as a marker and counted, not fatal. */
    char mark[32];
    int n = snprintf(mark, sizeof mark, "<no text: id %d>", (int)id);
    s->no_text++;
    if (qwen3_tok_stream_flush(&s->st, &s->out, err)) return -1; /* a held partial character goes first */
    if ((s->out.n && fwrite(s->out.p, 1, s->out.n, stdout) != s->out.n) || fwrite(mark, 1, (size_t)n, stdout) != (size_t)n)
      return klab_fail(err, "write to stdout failed");
    return 0;
  }
  if (qwen3_tok_stream_feed(s->tk, &s->st, id, &s->out, err)) return -1;
  if (s->out.n && fwrite(s->out.p, 1, s->out.n, stdout) != s->out.n) return klab_fail(err, "write to stdout failed");
  fflush(stdout);
  return 0;
}

static int run_generate(const gen_args *a, qwen3_model *m, qwen3_tokenizer *tk, klab_err *err) {
  qwen3_buf text = {0};
  qwen3_ids prompt = {0};
  int rc = a->raw ? 0 : qwen3_chat_render(a->system, a->prompt, a->think, &text, err);
  const char *p = a->raw ? a->prompt : text.p;
  if (!rc) rc = qwen3_tok_encode(tk, p, strlen(p), &prompt, err);
  int64_t ctx = a->max_ctx ? a->max_ctx : a->cpu ? prompt.n + a->max_new : 0;
  if (!rc && ctx > m->cfg.max_position) ctx = m->cfg.max_position;
  qwen3_runner *r = NULL;
  if (!rc && a->cpu) rc = qwen3_cpu_runner_create(m, ctx, &r, err);
  if (!rc && !a->cpu) {
    qwen3_gpu_opts go;
    qwen3_gpu_opts_default(&go);
    go.max_ctx = ctx;
    go.variants_path = a->variants;
    go.verbose = a->verbose;
    go.no_graph = a->no_graph;
    go.no_fuse = a->no_fuse;
    go.no_pdl = a->no_pdl;
    rc = qwen3_gpu_runner_create(m, &go, &r, err);
  }
  if (!rc && prompt.n > r->max_ctx)
    rc = klab_fail(err, "prompt of %lld tokens does not fit a context of %lld", (long long)prompt.n, (long long)r->max_ctx);
  int32_t stop[QWEN3_MAX_EOS + 2];
  qwen3_gen_opts g = a->g;
  g.max_new_tokens = a->max_new;
  qwen3_stop_ids(&m->cfg, tk, stop, QWEN3_MAX_EOS + 2, &g.n_stop);
  g.stop_ids = stop;
  streamer s = {tk, {{0}, 0}, {0}, 0};
  qwen3_gen_stats st;
  if (!rc) rc = qwen3_generate(r, prompt.p, prompt.n, &g, stream_token, &s, NULL, &st, err);
  if (!rc) {
    s.out.n = 0;
    rc = qwen3_tok_stream_flush(&s.st, &s.out, err);
    if (!rc && ((s.out.n && fwrite(s.out.p, 1, s.out.n, stdout) != s.out.n) || putchar('\n') == EOF ||
                fflush(stdout) != 0))
      rc = klab_fail(err, "write to stdout failed");
  }
  if (!rc) {
    double tps = st.decode_ms > 0 ? (double)st.generated_tokens / (st.decode_ms / 1e3) : 0.0;
    fprintf(stderr,
            "qwen3: prompt %lld tokens, generated %lld tokens%s, prefill %.1f ms, decode %.2f tok/s (%s)\n",
            (long long)st.prompt_tokens, (long long)st.generated_tokens,
            st.stopped ? " (stop token)" : st.context_full ? " (context full)" : "",
            st.prefill_ms, tps, r->name);
    if (s.no_text)
      fprintf(stderr, "qwen3: %lld generated ids lie past the tokenizer's %lld ids (padding rows of the embedding; "
                      "a random checkpoint picks them): shown as <no text: id N>\n",
              (long long)s.no_text, (long long)qwen3_tok_vocab_size(tk));
  }
  if (!rc && a->profile) {
    klab_peaks pk = {0};
    char path[512];
    klab_device_info dev;
    klab_err perr = {{0}};
    if (!klab_device_query(&dev, &perr)) {
      klab_peaks_default_path(dev.name, path, sizeof path);
      if (klab_peaks_load(path, &pk, &perr)) fprintf(stderr, "qwen3: no measured peaks (%s): %% columns empty\n", perr.msg);
    }
    int64_t at = r->pos > 1 ? r->pos : 1;
    if (at + 8 > r->max_ctx) at = r->max_ctx - 8;
    rc = qwen3_gpu_profile(r, at, 8, pk.valid ? pk.read_bw_gbps : 0, stdout, err);
  }
  qwen3_runner_destroy(r);
  qwen3_buf_free(&s.out);
  qwen3_buf_free(&text);
  qwen3_ids_free(&prompt);
  return rc;
}

static int cmd_generate(int argc, char **argv) {
  gen_args a;
  int prc = parse_generate(argc, argv, &a);
  if (prc < 0) return 0; /* --help */
  if (prc) return prc;
  klab_err err = {{0}};
  if (a.profile) {
    char why[256];
    if (!klab_cupti_start(why, sizeof why)) fprintf(stderr, "qwen3: --profile: %s\n", why);
  }
  qwen3_model m;
  if (qwen3_model_load(a.model, &m, &err)) return fail(&err);
  qwen3_tokenizer *tk = NULL;
  int rc = qwen3_tok_load_dir(a.tokenizer ? a.tokenizer : a.model, &tk, &err);
  if (rc) {
    char msg[KLAB_ERR_LEN];
    snprintf(msg, sizeof msg, "%s", err.msg);
    klab_fail(&err, "%s (a model folder written by qwen3 init has tokenizer files only with --tokenizer; or pass "
                    "generate --tokenizer DIR)", msg);
  }
  if (!rc && qwen3_tok_vocab_size(tk) > m.cfg.vocab)
    fprintf(stderr, "qwen3: note: the tokenizer has %lld ids, the model's vocab_size is %lld\n",
            (long long)qwen3_tok_vocab_size(tk), (long long)m.cfg.vocab);
  if (!rc) rc = run_generate(&a, &m, tk, &err);
  qwen3_tok_free(tk);
  qwen3_model_free(&m);
  return rc ? fail(&err) : 0;
}

/* "1,2,3": at most max integers in [lo, hi] into out, count in *n. 0 ok, -1 malformed / out of range / too many. */
static int parse_list(const char *v, long long lo, long long hi, int64_t *out, int64_t max, int64_t *n) {
  *n = 0;
  const char *p = v;
  while (*p) {
    char *end;
    errno = 0;
    long long x = strtoll(p, &end, 10);
    if (end == p || errno || x < lo || x > hi || *n >= max || (*end && *end != ',')) return -1;
    out[(*n)++] = x;
    p = *end ? end + 1 : end;
  }
  return *n ? 0 : -1;
}

/* ---- logits (parity scripts) -------------------------------------------------------------------- */

static int cmd_logits(int argc, char **argv) {
  const char *model = NULL, *ids_text = NULL, *out = NULL, *variants = NULL;
  int cpu = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      printf("usage: qwen3 logits --model DIR --ids 1,2,3 --out FILE [--cpu] [--variants FILE]\n"
             "Prefills the ids and writes the logits of every position as float32 [T, vocab] (little-endian) to FILE:\n"
             "what engine/tools/hf_parity_gpu.py compares with Hugging Face transformers.\n");
      return 0;
    }
    if (!strcmp(a, "--cpu")) { cpu = 1; continue; }
    if (strcmp(a, "--model") && strcmp(a, "--ids") && strcmp(a, "--out") && strcmp(a, "--variants"))
      return usage_error("logits", "unknown argument '%s'", a);
    if (!(v = value_of(argc, argv, &i, "logits"))) return EXIT_USAGE;
    if (!strcmp(a, "--model")) model = v;
    else if (!strcmp(a, "--ids")) ids_text = v;
    else if (!strcmp(a, "--out")) out = v;
    else variants = v;
  }
  if (!model || !ids_text || !out) return usage_error("logits", "%s", "--model, --ids and --out are required");
  int64_t n = 1, T = 0;
  for (const char *p = ids_text; *p; p++) n += *p == ',';
  int64_t *ids64 = malloc((size_t)n * sizeof *ids64);
  int32_t *ids = malloc((size_t)n * sizeof *ids);
  if (ids64 && ids && parse_list(ids_text, 0, INT32_MAX, ids64, n, &T)) {
    free(ids64), free(ids);
    return usage_error("logits", "--ids '%s' is not a comma-separated list of token ids", ids_text);
  }
  for (int64_t i = 0; ids64 && ids && i < T; i++) ids[i] = (int32_t)ids64[i];
  free(ids64);
  klab_err err = {{0}};
  qwen3_model m;
  if (!ids || T < 1 || qwen3_model_load(model, &m, &err)) {
    free(ids);
    return fail(&err);
  }
  qwen3_runner *r = NULL;
  int rc;
  if (cpu) rc = qwen3_cpu_runner_create(&m, T, &r, &err);
  else {
    qwen3_gpu_opts go;
    qwen3_gpu_opts_default(&go);
    go.max_ctx = T;
    go.variants_path = variants;
    rc = qwen3_gpu_runner_create(&m, &go, &r, &err);
  }
  float *l = rc ? NULL : malloc((size_t)(T * m.cfg.vocab) * sizeof *l);
  if (!rc && !l) rc = klab_fail(&err, "out of memory");
  if (!rc) rc = qwen3_forward(r, ids, T, 1, l, &err);
  if (!rc) {
    FILE *f = fopen(out, "wb");
    if (!f || fwrite(l, sizeof *l, (size_t)(T * m.cfg.vocab), f) != (size_t)(T * m.cfg.vocab)) rc = klab_fail(&err, "cannot write %s", out);
    if (f && fclose(f)) rc = klab_fail(&err, "cannot write %s", out);
  }
  free(l), free(ids);
  qwen3_runner_destroy(r);
  qwen3_model_free(&m);
  return rc ? fail(&err) : 0;
}

/* ---- bench -------------------------------------------------------------------------------------- */

static void bench_help(void) {
  printf("usage: qwen3 bench --model DIR [options]\n"
         "Greedy generation (stop ids ignored) on the GPU over every (pp, tg) cell; prints a table and, with --out,\n"
         "writes an engine bundle: engine.csv, aggregate.md, env.json, engine_plots.gp (docs/engine.md).\n"
         "  --pp LIST            prompt lengths, comma-separated (default 18,128,512,2048)\n"
         "  --tg LIST            tokens to generate (default 128,512)\n"
         "  --reps N             timed runs per cell (default 5)\n"
         "  --warmup N           untimed runs per cell first (default 1)\n"
         "  --seed S             seed of the random prompt ids (default 1)\n"
         "  --out DIR            bundle folder\n"
         "  --max-seq-len N      KV cache tokens (default: the largest pp + tg)\n"
         "  --prefill-chunk N    tokens per prefill pass (default 2048)\n"
         "  --variants FILE      winners.json (default: results/qwen3-engine/winners.json)\n"
         "  --verbose            print each op's variant choice\n"
         "  --no-graph           decode with plain launches instead of CUDA-graph replays\n"
         "  --no-fuse            decode with separate add_rmsnorm / gemv / silu_mul kernels\n"
         "  --no-pdl             capture the decode graph without programmatic dependent launch\n");
}


static int cmd_bench(int argc, char **argv) {
  qwen3_bench_opts o;
  memset(&o, 0, sizeof o);
  qwen3_gpu_opts_default(&o.gpu);
  int64_t dpp[] = {18, 128, 512, 2048}, dtg[] = {128, 512};
  memcpy(o.pp, dpp, sizeof dpp), o.npp = 4;
  memcpy(o.tg, dtg, sizeof dtg), o.ntg = 2;
  o.reps = 5, o.warmup = 1, o.seed = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    int64_t n;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      bench_help();
      return 0;
    }
    if (!strcmp(a, "--verbose")) { o.gpu.verbose = 1; continue; }
    if (!strcmp(a, "--no-graph")) { o.gpu.no_graph = 1; continue; }
    if (!strcmp(a, "--no-fuse")) { o.gpu.no_fuse = 1; continue; }
    if (!strcmp(a, "--no-pdl")) { o.gpu.no_pdl = 1; continue; }
    static const char *with_value[] = {"--model", "--pp", "--tg", "--reps", "--warmup", "--seed", "--out",
                                       "--max-seq-len", "--prefill-chunk", "--variants"};
    int known = 0;
    for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++) known |= !strcmp(a, with_value[k]);
    if (!known) return usage_error("bench", "unknown argument '%s'", a);
    if (!(v = value_of(argc, argv, &i, "bench"))) return EXIT_USAGE;
    if (!strcmp(a, "--model")) o.model_dir = v;
    else if (!strcmp(a, "--out")) o.out_dir = v;
    else if (!strcmp(a, "--variants")) o.gpu.variants_path = v;
    else if (!strcmp(a, "--pp")) {
      int64_t k;
      if (parse_list(v, 1, 1 << 24, o.pp, QWEN3_BENCH_MAX_CELLS, &k)) return usage_error("bench", "--pp '%s' is not a list of positive integers", v);
      o.npp = (int)k;
    } else if (!strcmp(a, "--tg")) {
      int64_t k;
      if (parse_list(v, 1, 1 << 24, o.tg, QWEN3_BENCH_MAX_CELLS, &k)) return usage_error("bench", "--tg '%s' is not a list of positive integers", v);
      o.ntg = (int)k;
    } else if (!strcmp(a, "--seed")) {
      if (parse_u64(v, &o.seed)) return usage_error("bench", "--seed '%s' is not a non-negative integer", v);
    } else {
      if (parse_i64(v, !strcmp(a, "--warmup") ? 0 : 1, 1 << 24, &n)) return usage_error("bench", "bad value '%s'", v);
      if (!strcmp(a, "--reps")) o.reps = (int)n;
      else if (!strcmp(a, "--warmup")) o.warmup = (int)n;
      else if (!strcmp(a, "--max-seq-len")) o.gpu.max_ctx = n;
      else o.gpu.prefill_chunk = n;
    }
  }
  if (!o.model_dir) return usage_error("bench", "%s", "--model DIR is required");
  if (!o.gpu.max_ctx) {
    int64_t mp = 0, mt = 0;
    for (int i = 0; i < o.npp; i++) mp = o.pp[i] > mp ? o.pp[i] : mp;
    for (int i = 0; i < o.ntg; i++) mt = o.tg[i] > mt ? o.tg[i] : mt;
    o.gpu.max_ctx = mp + mt;
  }
  char cmd[2048] = "qwen3";
  for (int i = 0; i < argc; i++) {
    size_t l = strlen(cmd);
    snprintf(cmd + l, sizeof cmd - l, " %s", argv[i]);
  }
  o.command = cmd;
  klab_err err = {{0}};
  return qwen3_bench_run(&o, &err) ? fail(&err) : 0;
}

/* ---- main --------------------------------------------------------------------------------------- */

static void main_help(void) {
  printf("usage: qwen3 COMMAND [options]   (qwen3 COMMAND --help for details)\n"
         "  init       write a random-initialised Qwen3 checkpoint (Hugging Face layout)\n"
         "  generate   run a model on a prompt, streaming the continuation (GPU; --cpu for the reference)\n"
         "  bench      end-to-end prefill/decode benchmark on the GPU, written as an engine bundle\n"
         "  logits     write the logits of every position of a prompt (for parity scripts)\n"
         "  tokenize   encode text / decode ids with a model's tokenizer\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    main_help();
    return EXIT_USAGE;
  }
  const char *c = argv[1];
  if (!strcmp(c, "--help") || !strcmp(c, "-h") || !strcmp(c, "help")) {
    main_help();
    return 0;
  }
  if (!strcmp(c, "init")) return cmd_init(argc - 1, argv + 1);
  if (!strcmp(c, "generate")) return cmd_generate(argc - 1, argv + 1);
  if (!strcmp(c, "tokenize")) return cmd_tokenize(argc - 1, argv + 1);
  if (!strcmp(c, "bench")) return cmd_bench(argc - 1, argv + 1);
  if (!strcmp(c, "logits")) return cmd_logits(argc - 1, argv + 1);
  fprintf(stderr, "qwen3: unknown command '%s'\n", c);
  main_help();
  return EXIT_USAGE;
}
