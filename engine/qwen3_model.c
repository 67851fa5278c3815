/* Loading a Hugging Face Qwen3 folder: config, safetensors (single or sharded), checks, dtype conversion. */
#define _POSIX_C_SOURCE 200809L
#include "engine/qwen3_model.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "engine/qwen3_config_parse.h"
#include "harness/bf16.h"

/* ---- the checkpoint layout ---------------------------------------------------------------------- */

#define PER_LAYER 11

int qwen3_tensor_count(const qwen3_config *cfg) {
  return 2 + (int)cfg->layers * PER_LAYER + (cfg->tie_word_embeddings ? 0 : 1);
}

static void set_desc(qwen3_tensor_desc *d, const char *name, int64_t out, int64_t in, int is_norm) {
  snprintf(d->name, sizeof d->name, "%s", name);
  d->ndim = in ? 2 : 1;
  d->shape[0] = out;
  d->shape[1] = in;
  d->is_norm = is_norm;
}

void qwen3_tensor_desc_at(const qwen3_config *c, int i, qwen3_tensor_desc *d) {
  int64_t H = c->hidden, I = c->intermediate, D = c->head_dim, q = c->heads * D, kv = c->kv_heads * D;
  int last = 1 + (int)c->layers * PER_LAYER;
  if (i == 0 || i == last + 1) {
    set_desc(d, i == 0 ? "model.embed_tokens.weight" : "lm_head.weight", c->vocab, H, 0);
    return;
  }
  if (i == last) {
    set_desc(d, "model.norm.weight", H, 0, 1);
    return;
  }
  int layer = (i - 1) / PER_LAYER, j = (i - 1) % PER_LAYER;
  static const char *suffix[PER_LAYER] = {"input_layernorm",        "self_attn.q_proj", "self_attn.k_proj",
                                          "self_attn.v_proj",       "self_attn.o_proj", "self_attn.q_norm",
                                          "self_attn.k_norm",       "post_attention_layernorm",
                                          "mlp.gate_proj",          "mlp.up_proj",      "mlp.down_proj"};
  const int64_t out[PER_LAYER] = {H, q, kv, kv, H, D, D, H, I, I, H};
  const int64_t in[PER_LAYER] = {0, H, H, H, q, 0, 0, 0, H, H, I};
  char name[96];
  snprintf(name, sizeof name, "model.layers.%d.%s.weight", layer, suffix[j]);
  set_desc(d, name, out[j], in[j], in[j] == 0);
}

/* ---- files -------------------------------------------------------------------------------------- */

static int join(char *buf, size_t len, const char *dir, const char *name, klab_err *err) {
  int n = snprintf(buf, len, "%s/%s", dir, name);
  if (n < 0 || (size_t)n >= len) return klab_fail(err, "%s/%s: path too long", dir, name);
  return 0;
}

static int file_exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

/* The shard that weight_map names for `name`, as an index into files; -1 if absent. */
typedef struct {
  cJSON *root;           /* index json */
  const cJSON *map;      /* weight_map */
  char **shards;         /* unique shard file names */
  int nshards;
} shard_index;

static void index_free(shard_index *ix) {
  for (int i = 0; i < ix->nshards; i++) free(ix->shards[i]);
  free(ix->shards);
  cJSON_Delete(ix->root);
  memset(ix, 0, sizeof *ix);
}

static int index_add_shard(shard_index *ix, const char *file, const char *what, klab_err *err) {
  for (int i = 0; i < ix->nshards; i++)
    if (strcmp(ix->shards[i], file) == 0) return 0;
  /* Shard names are plain file names inside the folder: refuse paths that would leave it. */
  if (!*file || strchr(file, '/') || strcmp(file, "..") == 0 || strcmp(file, ".") == 0)
    return klab_fail(err, "%s: weight_map names shard \"%s\", which is not a plain file name", what, file);
  char **ns = realloc(ix->shards, (size_t)(ix->nshards + 1) * sizeof *ns);
  if (!ns) return klab_fail(err, "%s: out of memory", what);
  ix->shards = ns;
  if (!(ix->shards[ix->nshards] = strdup(file))) return klab_fail(err, "%s: out of memory", what);
  ix->nshards++;
  return 0;
}

static int index_load(const char *path, shard_index *ix, klab_err *err) {
  memset(ix, 0, sizeof *ix);
  char *text;
  size_t len;
  if (qwen3_read_file(path, (size_t)64 << 20, &text, &len, err)) return -1;
  ix->root = cJSON_ParseWithLength(text, len);
  free(text);
  if (!ix->root) return klab_fail(err, "%s: not valid JSON", path);
  ix->map = cJSON_GetObjectItemCaseSensitive(ix->root, "weight_map");
  if (!cJSON_IsObject(ix->map)) {
    index_free(ix);
    return klab_fail(err, "%s: missing or non-object key \"weight_map\"", path);
  }
  for (const cJSON *it = ix->map->child; it; it = it->next) {
    if (!cJSON_IsString(it)) {
      index_free(ix);
      return klab_fail(err, "%s: weight_map entry \"%s\" must be a file name string", path, it->string);
    }
    if (index_add_shard(ix, it->valuestring, path, err)) {
      index_free(ix);
      return -1;
    }
  }
  if (ix->nshards == 0) {
    index_free(ix);
    return klab_fail(err, "%s: weight_map is empty", path);
  }
  return 0;
}

/* Opens the shards (or model.safetensors). */
static int open_files(qwen3_model *m, shard_index *ix, klab_err *err) {
  char path[2048];
  if (join(path, sizeof path, m->dir, "model.safetensors.index.json", err)) return -1;
  int nf = 1;
  if (file_exists(path)) {
    if (index_load(path, ix, err)) return -1;
    nf = ix->nshards;
  } else {
    if (join(path, sizeof path, m->dir, "model.safetensors", err)) return -1;
    if (!file_exists(path))
      return klab_fail(err, "%s: no model.safetensors.index.json and no model.safetensors", m->dir);
  }
  m->files = calloc((size_t)nf, sizeof *m->files);
  if (!m->files) return klab_fail(err, "out of memory");
  for (int i = 0; i < nf; i++) {
    if (ix->root && join(path, sizeof path, m->dir, ix->shards[i], err)) return -1;
    if (st_open(path, &m->files[i], err)) return -1;
    m->nfiles++;
  }
  return 0;
}

/* ---- per-tensor checks and conversion ----------------------------------------------------------- */

static int own(qwen3_model *m, void *p, klab_err *err) {
  void **no = realloc(m->owned, (size_t)(m->nowned + 1) * sizeof *no);
  if (!no) {
    free(p);
    return klab_fail(err, "out of memory");
  }
  m->owned = no;
  m->owned[m->nowned++] = p;
  return 0;
}

static uint16_t f16_to_bf16(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1f, man = h & 0x3ffu;
  float f;
  if (e == 0x1f) {
    uint32_t u = sign | 0x7f800000u | (man << 13);
    memcpy(&f, &u, 4);
  } else if (e == 0) {
    f = (float)man * (1.0f / 16777216.0f); /* subnormal: man * 2^-24 */
    if (sign) f = -f;
  } else {
    uint32_t u = sign | ((e + 112) << 23) | (man << 13);
    memcpy(&f, &u, 4);
  }
  return klab_float_to_bf16(f);
}

/* bf16 view of a checked tensor: the mapped bytes when they are bf16 and 2-byte aligned, else a
 * converted (F16/F32 -> bf16, round to nearest even) or realigned copy owned by the model. */
static int tensor_bf16(qwen3_model *m, const st_file *f, const st_tensor *t, int64_t n, const uint16_t **out,
                       klab_err *err) {
  if (t->dtype == ST_BF16 && ((uintptr_t)t->data & 1u) == 0) {
    *out = (const uint16_t *)(const void *)t->data;
    return 0;
  }
  uint16_t *buf = malloc((size_t)(n ? n : 1) * sizeof *buf);
  if (!buf) return klab_fail(err, "%s: tensor '%s': out of memory for %lld elements", f->path, t->name, (long long)n);
  for (int64_t i = 0; i < n; i++) {
    const uint8_t *p = t->data + i * (int64_t)st_dtype_size(t->dtype);
    if (t->dtype == ST_F32) {
      float v;
      memcpy(&v, p, 4);
      buf[i] = klab_float_to_bf16(v);
    } else {
      uint16_t h;
      memcpy(&h, p, 2);
      buf[i] = t->dtype == ST_F16 ? f16_to_bf16(h) : h;
    }
  }
  if (t->dtype != ST_BF16) m->converted++;
  if (own(m, buf, err)) return -1;
  *out = buf;
  return 0;
}

static int check_shape(const st_file *f, const st_tensor *t, const qwen3_tensor_desc *d, klab_err *err) {
  if (t->dtype == ST_OTHER)
    return klab_fail(err, "%s: tensor '%s' has dtype %s; the engine reads BF16, F16 or F32", f->path, t->name,
                     t->dtype_name);
  int ok = t->ndim == d->ndim;
  for (int k = 0; ok && k < d->ndim; k++) ok = t->shape[k] == d->shape[k];
  if (ok) return 0;
  char got[96] = "[", want[64];
  for (int k = 0; k < t->ndim; k++) {
    char one[24];
    snprintf(one, sizeof one, "%s%lld", k ? ", " : "", (long long)t->shape[k]);
    strncat(got, one, sizeof got - strlen(got) - 2);
  }
  strcat(got, "]");
  if (d->ndim == 2) snprintf(want, sizeof want, "[%lld, %lld]", (long long)d->shape[0], (long long)d->shape[1]);
  else snprintf(want, sizeof want, "[%lld]", (long long)d->shape[0]);
  return klab_fail(err, "%s: tensor '%s' has shape %s, config.json implies %s", f->path, t->name, got, want);
}

/* Where the expected tensor lives: its file (per the index when sharded) and its header entry. */
static int locate(const qwen3_model *m, const shard_index *ix, const char *name, const st_file **fo,
                  const st_tensor **to, klab_err *err) {
  int fi = 0;
  if (ix->root) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(ix->map, name);
    if (!e) return klab_fail(err, "%s/model.safetensors.index.json: tensor '%s' is missing from weight_map", m->dir, name);
    for (fi = 0; fi < ix->nshards && strcmp(ix->shards[fi], e->valuestring); fi++) {}
  }
  const st_tensor *t = st_find(&m->files[fi], name);
  if (!t) return klab_fail(err, "%s: tensor '%s' is missing", m->files[fi].path, name);
  *fo = &m->files[fi];
  *to = t;
  return 0;
}

static const uint16_t **slot_for(qwen3_model *m, int i) {
  const qwen3_config *c = &m->cfg;
  int last = 1 + (int)c->layers * PER_LAYER;
  if (i == 0) return &m->embed;
  if (i == last) return &m->final_norm;
  if (i == last + 1) return &m->lm_head;
  qwen3_layer_weights *L = &m->layers[(i - 1) / PER_LAYER];
  const uint16_t **s[PER_LAYER] = {&L->input_norm, &L->q,         &L->k,    &L->v,  &L->o,   &L->q_norm,
                                   &L->k_norm,     &L->post_norm, &L->gate, &L->up, &L->down};
  return s[(i - 1) % PER_LAYER];
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Every tensor in every file must be one the config expects (a tied lm_head.weight is ignored, as
 * transformers does); a stray tensor usually means a config that does not match the weights. */
static int check_unexpected(const qwen3_model *m, klab_err *err) {
  int n = qwen3_tensor_count(&m->cfg);
  qwen3_tensor_desc *d = malloc((size_t)n * sizeof *d);
  char **names = malloc((size_t)n * sizeof *names);
  int rc = 0;
  if (!d || !names) rc = klab_fail(err, "out of memory");
  for (int i = 0; !rc && i < n; i++) {
    qwen3_tensor_desc_at(&m->cfg, i, &d[i]);
    names[i] = d[i].name;
  }
  if (!rc) qsort(names, (size_t)n, sizeof *names, name_cmp);
  for (int f = 0; !rc && f < m->nfiles; f++)
    for (int t = 0; !rc && t < m->files[f].ntensors; t++) {
      const char *nm = m->files[f].tensors[t].name;
      if (bsearch(&nm, names, (size_t)n, sizeof *names, name_cmp)) continue;
      if (m->cfg.tie_word_embeddings && strcmp(nm, "lm_head.weight") == 0) continue;
      rc = klab_fail(err, "%s: unexpected tensor '%s' (not part of a Qwen3 model with this config.json)",
                     m->files[f].path, nm);
    }
  free(d);
  free(names);
  return rc;
}

static int bind_tensors(qwen3_model *m, const shard_index *ix, klab_err *err) {
  int n = qwen3_tensor_count(&m->cfg);
  for (int i = 0; i < n; i++) {
    qwen3_tensor_desc d;
    qwen3_tensor_desc_at(&m->cfg, i, &d);
    const st_file *f = NULL;
    const st_tensor *t = NULL;
    if (locate(m, ix, d.name, &f, &t, err) || check_shape(f, t, &d, err)) return -1;
    int64_t count = d.shape[0] * (d.ndim == 2 ? d.shape[1] : 1);
    if (tensor_bf16(m, f, t, count, slot_for(m, i), err)) return -1;
  }
  if (m->cfg.tie_word_embeddings) m->lm_head = m->embed;
  return check_unexpected(m, err);
}

int qwen3_model_load(const char *dir, qwen3_model *m, klab_err *err) {
  memset(m, 0, sizeof *m);
  int n = snprintf(m->dir, sizeof m->dir, "%s", dir);
  if (n < 0 || (size_t)n >= sizeof m->dir) return klab_fail(err, "%s: path too long", dir);
  char path[2048];
  if (join(path, sizeof path, dir, "config.json", err) || qwen3_config_load(path, &m->cfg, err)) return -1;
  shard_index ix = {0};
  m->layers = calloc((size_t)m->cfg.layers, sizeof *m->layers);
  int rc = m->layers ? 0 : klab_fail(err, "out of memory");
  if (!rc) rc = open_files(m, &ix, err);
  if (!rc) rc = bind_tensors(m, &ix, err);
  index_free(&ix);
  if (rc) {
    qwen3_model_free(m);
    return -1;
  }
  if (m->converted)
    fprintf(stderr, "qwen3: note: %d tensors in %s are stored as F16/F32 and were converted to bf16 at load\n",
            m->converted, dir);
  return 0;
}

void qwen3_model_free(qwen3_model *m) {
  for (int i = 0; i < m->nfiles; i++) st_close(&m->files[i]);
  free(m->files);
  for (int i = 0; i < m->nowned; i++) free(m->owned[i]);
  free(m->owned);
  free(m->layers);
  memset(m, 0, sizeof *m);
}
