/* Qwen3 configuration: family presets (design.md §4) and Hugging Face config.json /
 * generation_config.json reading with cJSON. Errors always name the key and the file. */
#define _POSIX_C_SOURCE 200809L
#include "engine/qwen3_config.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "engine/qwen3_config_parse.h"

/* ---- presets ------------------------------------------------------------------------------------ */

typedef struct {
  const char *name;
  int64_t hidden, intermediate, layers, heads, kv_heads, head_dim, vocab;
  int tie;
} preset_row;

/* "tiny" keeps the real vocabulary size so the real Qwen tokenizer can drive it end to end (chat
 * template ids are > 151k), and is untied so the lm_head path is exercised; everything else is small
 * enough for the CPU reference to run it in CI in well under a second per token. */
static const preset_row k_presets[] = {
    {"0.6b", 1024, 3072, 28, 16, 8, 128, 151936, 1},  {"1.7b", 2048, 6144, 28, 16, 8, 128, 151936, 1},
    {"4b", 2560, 9728, 36, 32, 8, 128, 151936, 1},    {"8b", 4096, 12288, 36, 32, 8, 128, 151936, 0},
    {"14b", 5120, 17408, 40, 40, 8, 128, 151936, 0},  {"32b", 5120, 25600, 64, 64, 8, 128, 151936, 0},
    {"tiny", 64, 192, 3, 4, 2, 32, 151936, 0},
    /* "tiny128": tiny with the family's head_dim of 128, which the GPU attention kernels are built for. */
    {"tiny128", 256, 512, 2, 4, 2, 128, 151936, 0},
};
#define N_PRESETS ((int)(sizeof k_presets / sizeof k_presets[0]))

int qwen3_preset_count(void) { return N_PRESETS; }

const char *qwen3_preset_name(int i) { return (i >= 0 && i < N_PRESETS) ? k_presets[i].name : NULL; }

/* Qwen3's special ids: <|endoftext|> 151643 (bos/pad), <|im_end|> 151645 (chat eos). */
static void set_qwen_special_ids(qwen3_config *cfg) {
  cfg->bos_token_id = 151643;
  cfg->n_eos = 2;
  cfg->eos_token_ids[0] = 151645;
  cfg->eos_token_ids[1] = 151643;
}

int qwen3_preset(const char *name, qwen3_config *cfg, klab_err *err) {
  for (int i = 0; name && i < N_PRESETS; i++) {
    const preset_row *p = &k_presets[i];
    if (strcmp(p->name, name) != 0) continue;
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->name, sizeof cfg->name, "%s", p->name);
    cfg->hidden = p->hidden;
    cfg->intermediate = p->intermediate;
    cfg->layers = p->layers;
    cfg->heads = p->heads;
    cfg->kv_heads = p->kv_heads;
    cfg->head_dim = p->head_dim;
    cfg->vocab = p->vocab;
    cfg->rms_norm_eps = 1e-6;
    cfg->rope_theta = 1e6;
    cfg->max_position = 40960;
    cfg->tie_word_embeddings = p->tie;
    snprintf(cfg->torch_dtype, sizeof cfg->torch_dtype, "bfloat16");
    set_qwen_special_ids(cfg);
    return 0;
  }
  char known[128] = "";
  for (int i = 0; i < N_PRESETS; i++) {
    strncat(known, k_presets[i].name, sizeof known - strlen(known) - 1);
    if (i + 1 < N_PRESETS) strncat(known, ", ", sizeof known - strlen(known) - 1);
  }
  return klab_fail(err, "unknown preset '%s' (known: %s)", name ? name : "(null)", known);
}

/* ---- file reading ------------------------------------------------------------------------------- */

int qwen3_read_file(const char *path, size_t max_bytes, char **out, size_t *len, klab_err *err) {
  *out = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return klab_fail(err, "%s: cannot open: %s", path, strerror(errno));
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap + 1);
  if (!buf) {
    fclose(f);
    return klab_fail(err, "%s: out of memory", path);
  }
  for (;;) {
    if (n == cap) {
      if (cap >= max_bytes) {
        free(buf);
        fclose(f);
        return klab_fail(err, "%s: larger than the %zu-byte limit", path, max_bytes);
      }
      size_t ncap = cap * 2 > max_bytes ? max_bytes : cap * 2;
      char *nb = realloc(buf, ncap + 1);
      if (!nb) {
        free(buf);
        fclose(f);
        return klab_fail(err, "%s: out of memory (%zu bytes)", path, ncap);
      }
      buf = nb;
      cap = ncap;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0) break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return klab_fail(err, "%s: read error", path);
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return 0;
}

/* ---- typed key access: every failure names the key and the source ------------------------------ */

/* Integral JSON number within [lo, hi]. Doubles with a fraction or out of range are "mistyped". */
static int get_int(const cJSON *root, const char *key, const char *what, int64_t lo, int64_t hi, int64_t *out,
                   klab_err *err) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
  if (!it) return klab_fail(err, "%s: missing key \"%s\"", what, key);
  if (!cJSON_IsNumber(it)) return klab_fail(err, "%s: key \"%s\" must be an integer", what, key);
  double v = it->valuedouble;
  if (!(v == floor(v)) || v < (double)lo || v > (double)hi)
    return klab_fail(err, "%s: key \"%s\" = %g is not an integer in [%lld, %lld]", what, key, v, (long long)lo,
                     (long long)hi);
  *out = (int64_t)v;
  return 0;
}

static int get_double(const cJSON *obj, const char *key, const char *what, double *out, klab_err *err) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!it) return klab_fail(err, "%s: missing key \"%s\"", what, key);
  if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
    return klab_fail(err, "%s: key \"%s\" must be a finite number", what, key);
  *out = it->valuedouble;
  return 0;
}

/* A token id field: null/absent -> none; an int; or a list of ints (eos may be either). */
static int add_token_ids(const cJSON *it, const char *key, const char *what, int64_t *ids, int *n, int max,
                         klab_err *err) {
  if (!it || cJSON_IsNull(it)) return 0;
  const cJSON *one = it;
  int is_list = cJSON_IsArray(it);
  if (!is_list && !cJSON_IsNumber(it))
    return klab_fail(err, "%s: key \"%s\" must be an integer or a list of integers", what, key);
  int count = is_list ? cJSON_GetArraySize(it) : 1;
  for (int i = 0; i < count; i++) {
    if (is_list) one = cJSON_GetArrayItem(it, i);
    if (!cJSON_IsNumber(one) || one->valuedouble != floor(one->valuedouble) || one->valuedouble < 0 ||
        one->valuedouble > 2147483647.0)
      return klab_fail(err, "%s: key \"%s\" holds a value that is not a token id", what, key);
    int64_t id = (int64_t)one->valuedouble;
    int dup = 0;
    for (int j = 0; j < *n; j++) dup |= ids[j] == id;
    if (dup) continue;
    if (*n >= max) return klab_fail(err, "%s: key \"%s\": more than %d eos ids", what, key, max);
    ids[(*n)++] = id;
  }
  return 0;
}

/* ---- unsupported features ----------------------------------------------------------------------- */

/* rope_scaling / rope_parameters: only the plain ("default") RoPE is implemented. */
static int check_rope_dict(const cJSON *root, const char *key, const char *what, klab_err *err) {
  const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, key);
  if (!rs || cJSON_IsNull(rs)) return 0;
  if (!cJSON_IsObject(rs)) return klab_fail(err, "%s: key \"%s\" must be an object or null", what, key);
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
  if (!type) type = cJSON_GetObjectItemCaseSensitive(rs, "type");
  if (type && !cJSON_IsString(type)) return klab_fail(err, "%s: key \"%s.rope_type\" must be a string", what, key);
  const char *t = type ? type->valuestring : "(none)";
  if (strcmp(t, "default") != 0)
    return klab_fail(err, "%s: key \"%s\": rope type \"%s\" is not supported (only \"default\" RoPE)", what, key, t);
  return 0;
}

static int check_flag_false(const cJSON *root, const char *key, const char *what, const char *why, klab_err *err) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
  if (!it || cJSON_IsNull(it)) return 0;
  if (!cJSON_IsBool(it)) return klab_fail(err, "%s: key \"%s\" must be true or false", what, key);
  if (cJSON_IsTrue(it)) return klab_fail(err, "%s: key \"%s\" is true: %s is not supported", what, key, why);
  return 0;
}

static int check_supported(const cJSON *root, const char *what, klab_err *err) {
  const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
  if (!mt) return klab_fail(err, "%s: missing key \"model_type\"", what);
  if (!cJSON_IsString(mt)) return klab_fail(err, "%s: key \"model_type\" must be a string", what);
  if (strcmp(mt->valuestring, "qwen3") != 0)
    return klab_fail(err, "%s: key \"model_type\" = \"%s\" is not supported (only \"qwen3\", dense)", what,
                     mt->valuestring);
  if (check_rope_dict(root, "rope_scaling", what, err) || check_rope_dict(root, "rope_parameters", what, err))
    return -1;
  if (check_flag_false(root, "use_sliding_window", what, "sliding-window attention", err)) return -1;
  if (check_flag_false(root, "attention_bias", what, "attention bias", err)) return -1;
  const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
  if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu") != 0))
    return klab_fail(err, "%s: key \"hidden_act\" must be \"silu\"", what);
  return 0;
}

/* ---- the parser --------------------------------------------------------------------------------- */

/* Weight dtype: "dtype" (transformers >= 4.56/5) or "torch_dtype" (older); absent means bfloat16. */
static int parse_dtype(const cJSON *root, const char *what, qwen3_config *cfg, klab_err *err) {
  const char *key = "dtype";
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
  if (!it || cJSON_IsNull(it)) {
    key = "torch_dtype";
    it = cJSON_GetObjectItemCaseSensitive(root, key);
  }
  if (!it || cJSON_IsNull(it)) {
    snprintf(cfg->torch_dtype, sizeof cfg->torch_dtype, "bfloat16");
    return 0;
  }
  if (!cJSON_IsString(it)) return klab_fail(err, "%s: key \"%s\" must be a string", what, key);
  const char *v = it->valuestring;
  if (strcmp(v, "bfloat16") && strcmp(v, "float16") && strcmp(v, "float32"))
    return klab_fail(err, "%s: key \"%s\" = \"%s\" is not one of bfloat16, float16, float32", what, key, v);
  snprintf(cfg->torch_dtype, sizeof cfg->torch_dtype, "%s", v);
  return 0;
}

/* rope_theta lives at the top level (transformers 4) or inside rope_parameters (transformers 5). */
static int parse_rope_theta(const cJSON *root, const char *what, qwen3_config *cfg, klab_err *err) {
  const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
  if (!cJSON_GetObjectItemCaseSensitive(root, "rope_theta") && cJSON_IsObject(rp))
    return get_double(rp, "rope_theta", what, &cfg->rope_theta, err);
  return get_double(root, "rope_theta", what, &cfg->rope_theta, err);
}

static int parse_shapes(const cJSON *root, const char *what, qwen3_config *cfg, klab_err *err) {
  const int64_t big = (int64_t)1 << 40;
  if (get_int(root, "hidden_size", what, 1, big, &cfg->hidden, err) ||
      get_int(root, "intermediate_size", what, 1, big, &cfg->intermediate, err) ||
      get_int(root, "num_hidden_layers", what, 1, big, &cfg->layers, err) ||
      get_int(root, "num_attention_heads", what, 1, big, &cfg->heads, err) ||
      get_int(root, "num_key_value_heads", what, 1, big, &cfg->kv_heads, err) ||
      get_int(root, "head_dim", what, 1, big, &cfg->head_dim, err) ||
      get_int(root, "vocab_size", what, 1, big, &cfg->vocab, err) ||
      get_int(root, "max_position_embeddings", what, 1, big, &cfg->max_position, err))
    return -1;
  if (get_double(root, "rms_norm_eps", what, &cfg->rms_norm_eps, err)) return -1;
  return parse_rope_theta(root, what, cfg, err);
}

int qwen3_config_parse_json(const char *text, size_t len, const char *what, qwen3_config *cfg, klab_err *err) {
  memset(cfg, 0, sizeof *cfg);
  snprintf(cfg->name, sizeof cfg->name, "config.json");
  cfg->bos_token_id = -1;
  cJSON *root = cJSON_ParseWithLength(text, len);
  if (!root) return klab_fail(err, "%s: not valid JSON (near byte %ld)", what, (long)(cJSON_GetErrorPtr() - text));
  int rc = -1;
  if (!cJSON_IsObject(root)) {
    klab_fail(err, "%s: top level must be a JSON object", what);
    goto done;
  }
  if (check_supported(root, what, err) || parse_shapes(root, what, cfg, err) || parse_dtype(root, what, cfg, err))
    goto done;
  /* tie_word_embeddings: absent means false, as in transformers' Qwen3Config. */
  const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
  if (tie && !cJSON_IsBool(tie)) {
    klab_fail(err, "%s: key \"tie_word_embeddings\" must be true or false", what);
    goto done;
  }
  cfg->tie_word_embeddings = cJSON_IsTrue(tie);
  int64_t bos[1];
  int nbos = 0;
  if (add_token_ids(cJSON_GetObjectItemCaseSensitive(root, "bos_token_id"), "bos_token_id", what, bos, &nbos, 1, err) ||
      add_token_ids(cJSON_GetObjectItemCaseSensitive(root, "eos_token_id"), "eos_token_id", what, cfg->eos_token_ids,
                    &cfg->n_eos, QWEN3_MAX_EOS, err))
    goto done;
  if (nbos) cfg->bos_token_id = bos[0];
  rc = 0;
done:
  cJSON_Delete(root);
  return rc;
}

int qwen3_generation_config_parse_json(const char *text, size_t len, const char *what, qwen3_config *cfg,
                                       klab_err *err) {
  cJSON *root = cJSON_ParseWithLength(text, len);
  if (!root) return klab_fail(err, "%s: not valid JSON (near byte %ld)", what, (long)(cJSON_GetErrorPtr() - text));
  int rc = -1;
  if (!cJSON_IsObject(root)) {
    klab_fail(err, "%s: top level must be a JSON object", what);
    goto done;
  }
  int64_t bos[1];
  int nbos = 0;
  if (add_token_ids(cJSON_GetObjectItemCaseSensitive(root, "bos_token_id"), "bos_token_id", what, bos, &nbos, 1, err) ||
      add_token_ids(cJSON_GetObjectItemCaseSensitive(root, "eos_token_id"), "eos_token_id", what, cfg->eos_token_ids,
                    &cfg->n_eos, QWEN3_MAX_EOS, err))
    goto done;
  if (nbos) cfg->bos_token_id = bos[0];
  rc = 0;
done:
  cJSON_Delete(root);
  return rc;
}

int qwen3_config_load(const char *config_json_path, qwen3_config *cfg, klab_err *err) {
  char *text = NULL;
  size_t len = 0;
  if (qwen3_read_file(config_json_path, (size_t)16 << 20, &text, &len, err)) return -1;
  int rc = qwen3_config_parse_json(text, len, config_json_path, cfg, err);
  free(text);
  if (rc) return -1;
  /* generation_config.json beside config.json: optional, but malformed when present is an error. */
  char gen[4096];
  const char *slash = strrchr(config_json_path, '/');
  int dirlen = slash ? (int)(slash - config_json_path) : 0;
  int n = slash ? snprintf(gen, sizeof gen, "%.*s/generation_config.json", dirlen, config_json_path)
                : snprintf(gen, sizeof gen, "generation_config.json");
  if (n < 0 || (size_t)n >= sizeof gen) return klab_fail(err, "%s: path too long", config_json_path);
  FILE *probe = fopen(gen, "rb");
  if (probe) {
    fclose(probe);
    if (qwen3_read_file(gen, (size_t)1 << 20, &text, &len, err)) return -1;
    rc = qwen3_generation_config_parse_json(text, len, gen, cfg, err);
    free(text);
    if (rc) return -1;
  } else if (errno != ENOENT) {
    return klab_fail(err, "%s: cannot open: %s", gen, strerror(errno));
  }
  return qwen3_config_validate(cfg, err);
}

/* Bounds keep every size product the engine computes (vocab*hidden*2 bytes, cache sizes) far from
 * int64 overflow, whatever a config file says. */
int qwen3_config_validate(const qwen3_config *c, klab_err *err) {
  const char *w = c->name;
  if (c->hidden < 1 || c->hidden > 65536) return klab_fail(err, "%s: hidden_size %lld out of [1, 65536]", w, (long long)c->hidden);
  if (c->intermediate < 1 || c->intermediate > 262144)
    return klab_fail(err, "%s: intermediate_size %lld out of [1, 262144]", w, (long long)c->intermediate);
  if (c->layers < 1 || c->layers > 1024) return klab_fail(err, "%s: num_hidden_layers %lld out of [1, 1024]", w, (long long)c->layers);
  if (c->heads < 1 || c->heads > 1024) return klab_fail(err, "%s: num_attention_heads %lld out of [1, 1024]", w, (long long)c->heads);
  if (c->kv_heads < 1 || c->kv_heads > c->heads)
    return klab_fail(err, "%s: num_key_value_heads %lld out of [1, num_attention_heads=%lld]", w, (long long)c->kv_heads,
                     (long long)c->heads);
  if (c->heads % c->kv_heads)
    return klab_fail(err, "%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld", w,
                     (long long)c->heads, (long long)c->kv_heads);
  if (c->head_dim < 2 || c->head_dim > 1024 || c->head_dim % 2)
    return klab_fail(err, "%s: head_dim %lld must be even and in [2, 1024] (RoPE rotates halves)", w, (long long)c->head_dim);
  if (c->vocab < 1 || c->vocab > ((int64_t)1 << 24)) return klab_fail(err, "%s: vocab_size %lld out of [1, 2^24]", w, (long long)c->vocab);
  if (!(c->rms_norm_eps > 0 && c->rms_norm_eps < 1)) return klab_fail(err, "%s: rms_norm_eps %g out of (0, 1)", w, c->rms_norm_eps);
  if (!(c->rope_theta > 1 && isfinite(c->rope_theta))) return klab_fail(err, "%s: rope_theta %g must be > 1", w, c->rope_theta);
  if (c->max_position < 1 || c->max_position > ((int64_t)1 << 24))
    return klab_fail(err, "%s: max_position_embeddings %lld out of [1, 2^24]", w, (long long)c->max_position);
  if (strcmp(c->torch_dtype, "bfloat16") && strcmp(c->torch_dtype, "float16") && strcmp(c->torch_dtype, "float32"))
    return klab_fail(err, "%s: torch_dtype \"%s\" is not bfloat16, float16 or float32", w, c->torch_dtype);
  if (c->n_eos < 0 || c->n_eos > QWEN3_MAX_EOS) return klab_fail(err, "%s: %d eos ids (max %d)", w, c->n_eos, QWEN3_MAX_EOS);
  return 0;
}
