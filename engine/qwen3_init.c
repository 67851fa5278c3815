/* Random checkpoint writer: see qwen3_init.h. */
#define _POSIX_C_SOURCE 200809L
#include "engine/qwen3_init.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "engine/qwen3_model.h"
#include "harness/bf16.h"
#include "reference/rng.h"

#define DEFAULT_SHARD_BYTES 2000000000ull
#define CHUNK_ELEMS ((int64_t)1 << 23) /* 16 MB of bf16 per write */
#define INIT_STD 0.02f

/* ---- values ------------------------------------------------------------------------------------- */

static uint64_t name_hash(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
  return h;
}

/* Box-Muller on one 64-bit draw per pair of elements (24 bits for the radius, 24 for the angle):
 * element 2p gets r cos(a), 2p+1 gets r sin(a). float math: fast, and a 1-ulp libm difference only
 * moves a value across a bf16 rounding boundary in rare ties. */
void qwen3_init_fill(uint64_t seed, const char *name, int is_norm, float std, uint64_t first, int64_t n,
                     uint16_t *out) {
  if (is_norm) {
    for (int64_t i = 0; i < n; i++) out[i] = 0x3f80; /* 1.0 */
    return;
  }
  uint64_t ts = klab_rand_u64(seed, name_hash(name));
  for (int64_t i = 0; i < n; i++) {
    uint64_t e = first + (uint64_t)i;
    uint64_t r = klab_rand_u64(ts, e >> 1);
    float u1 = ((float)(r >> 40) + 0.5f) * (1.0f / 16777216.0f); /* (0, 1): log is finite */
    float u2 = (float)((r >> 16) & 0xffffffu) * (1.0f / 16777216.0f);
    float rad = sqrtf(-2.0f * logf(u1)), ang = 6.28318530717958647692f * u2;
    float z = (e & 1) ? rad * sinf(ang) : rad * cosf(ang);
    out[i] = klab_float_to_bf16(std * z);
  }
}

/* ---- parallel chunk generation ------------------------------------------------------------------ */

typedef struct {
  uint64_t seed;
  const qwen3_tensor_desc *d;
  uint64_t first;
  int64_t n;
  uint16_t *out;
} fill_job;

static void *fill_worker(void *arg) {
  fill_job *j = arg;
  qwen3_init_fill(j->seed, j->d->name, j->d->is_norm, INIT_STD, j->first, j->n, j->out);
  return NULL;
}

static int fill_parallel(uint64_t seed, const qwen3_tensor_desc *d, uint64_t first, int64_t n, uint16_t *out,
                         int threads, klab_err *err) {
  fill_job jobs[16];
  pthread_t tid[16];
  int nt = threads;
  if (n < 65536 || nt < 1) nt = 1;
  int64_t per = (n + nt - 1) / nt;
  per += per & 1; /* keep Box-Muller pairs inside one job (not needed for correctness; saves a draw) */
  int started = 0, rc = 0;
  for (int t = 0; t < nt; t++) {
    int64_t lo = t * per, hi = lo + per < n ? lo + per : n;
    if (lo >= hi) break;
    jobs[t] = (fill_job){seed, d, first + (uint64_t)lo, hi - lo, out + lo};
    if (t == nt - 1 || pthread_create(&tid[t], NULL, fill_worker, &jobs[t]) != 0) {
      fill_worker(&jobs[t]); /* last slice (or a thread that could not start) runs here */
      continue;
    }
    started |= 1 << t;
  }
  for (int t = 0; t < nt; t++)
    if (started & (1 << t) && pthread_join(tid[t], NULL) != 0) rc = klab_fail(err, "pthread_join failed");
  return rc;
}

/* ---- json files --------------------------------------------------------------------------------- */

static int write_text(const char *path, const char *text, klab_err *err) {
  FILE *f = fopen(path, "wb");
  if (!f) return klab_fail(err, "%s: cannot create: %s", path, strerror(errno));
  size_t len = strlen(text);
  int bad = fwrite(text, 1, len, f) != len;
  bad |= fputc('\n', f) == EOF;
  bad |= fclose(f) != 0;
  if (bad) return klab_fail(err, "%s: write failed: %s", path, strerror(errno));
  return 0;
}

static int write_json(const char *path, cJSON *root, klab_err *err) {
  if (!root) return klab_fail(err, "%s: out of memory building JSON", path);
  char *text = cJSON_Print(root);
  cJSON_Delete(root);
  if (!text) return klab_fail(err, "%s: out of memory printing JSON", path);
  int rc = write_text(path, text, err);
  cJSON_free(text);
  return rc;
}

/* The keys transformers' Qwen3Config writes, in the layout of the published Qwen3 config.json files. */
static cJSON *config_json(const qwen3_config *c) {
  cJSON *r = cJSON_CreateObject();
  cJSON *arch = cJSON_AddArrayToObject(r, "architectures");
  cJSON_AddItemToArray(arch, cJSON_CreateString("Qwen3ForCausalLM"));
  cJSON_AddFalseToObject(r, "attention_bias");
  cJSON_AddNumberToObject(r, "attention_dropout", 0.0);
  cJSON_AddNumberToObject(r, "bos_token_id", (double)c->bos_token_id);
  cJSON_AddNumberToObject(r, "eos_token_id", (double)c->eos_token_ids[0]);
  cJSON_AddNumberToObject(r, "head_dim", (double)c->head_dim);
  cJSON_AddStringToObject(r, "hidden_act", "silu");
  cJSON_AddNumberToObject(r, "hidden_size", (double)c->hidden);
  cJSON_AddNumberToObject(r, "initializer_range", 0.02);
  cJSON_AddNumberToObject(r, "intermediate_size", (double)c->intermediate);
  cJSON_AddNumberToObject(r, "max_position_embeddings", (double)c->max_position);
  cJSON_AddNumberToObject(r, "max_window_layers", (double)c->layers);
  cJSON_AddStringToObject(r, "model_type", "qwen3");
  cJSON_AddNumberToObject(r, "num_attention_heads", (double)c->heads);
  cJSON_AddNumberToObject(r, "num_hidden_layers", (double)c->layers);
  cJSON_AddNumberToObject(r, "num_key_value_heads", (double)c->kv_heads);
  cJSON_AddNumberToObject(r, "rms_norm_eps", c->rms_norm_eps);
  cJSON_AddNullToObject(r, "rope_scaling");
  cJSON_AddNumberToObject(r, "rope_theta", c->rope_theta);
  cJSON_AddNullToObject(r, "sliding_window");
  cJSON_AddBoolToObject(r, "tie_word_embeddings", c->tie_word_embeddings);
  cJSON_AddStringToObject(r, "torch_dtype", "bfloat16");
  cJSON_AddTrueToObject(r, "use_cache");
  cJSON_AddFalseToObject(r, "use_sliding_window");
  cJSON_AddNumberToObject(r, "vocab_size", (double)c->vocab);
  return r;
}

static cJSON *generation_config_json(const qwen3_config *c) {
  cJSON *r = cJSON_CreateObject();
  cJSON_AddNumberToObject(r, "bos_token_id", (double)c->bos_token_id);
  cJSON *eos = cJSON_AddArrayToObject(r, "eos_token_id");
  for (int i = 0; i < c->n_eos; i++) cJSON_AddItemToArray(eos, cJSON_CreateNumber((double)c->eos_token_ids[i]));
  cJSON_AddNumberToObject(r, "pad_token_id", (double)c->bos_token_id);
  return r;
}

/* ---- shards ------------------------------------------------------------------------------------- */

typedef struct {
  int ntensors;
  qwen3_tensor_desc *d;
  int *shard;        /* shard of tensor i */
  int nshards;
  uint64_t total;    /* bytes of tensor data */
} shard_plan;

static uint64_t desc_bytes(const qwen3_tensor_desc *d) {
  return 2ull * (uint64_t)d->shape[0] * (uint64_t)(d->ndim == 2 ? d->shape[1] : 1);
}

static int plan_shards(const qwen3_config *c, uint64_t max_bytes, shard_plan *p, klab_err *err) {
  p->ntensors = qwen3_tensor_count(c);
  p->d = calloc((size_t)p->ntensors, sizeof *p->d);
  p->shard = calloc((size_t)p->ntensors, sizeof *p->shard);
  if (!p->d || !p->shard) return klab_fail(err, "out of memory");
  uint64_t cur = 0;
  p->nshards = 1;
  for (int i = 0; i < p->ntensors; i++) {
    qwen3_tensor_desc_at(c, i, &p->d[i]);
    uint64_t b = desc_bytes(&p->d[i]);
    if (cur > 0 && cur + b > max_bytes) {
      p->nshards++;
      cur = 0;
    }
    p->shard[i] = p->nshards - 1;
    cur += b;
    p->total += b;
  }
  return 0;
}

static void shard_name(const shard_plan *p, int s, char *buf, size_t len) {
  snprintf(buf, len, "model-%05d-of-%05d.safetensors", s + 1, p->nshards);
}

/* Header JSON for shard s, padded with spaces to a multiple of 8 bytes (as the safetensors library
 * does, so the data section is aligned). */
static char *shard_header(const shard_plan *p, int s, uint64_t *len) {
  cJSON *h = cJSON_CreateObject();
  cJSON *meta = cJSON_AddObjectToObject(h, "__metadata__");
  cJSON_AddStringToObject(meta, "format", "pt");
  uint64_t off = 0;
  for (int i = 0; i < p->ntensors; i++) {
    if (p->shard[i] != s) continue;
    cJSON *t = cJSON_AddObjectToObject(h, p->d[i].name);
    cJSON_AddStringToObject(t, "dtype", "BF16");
    cJSON *shape = cJSON_AddArrayToObject(t, "shape");
    for (int k = 0; k < p->d[i].ndim; k++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)p->d[i].shape[k]));
    cJSON *o = cJSON_AddArrayToObject(t, "data_offsets");
    cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
    off += desc_bytes(&p->d[i]);
    cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
  }
  char *json = cJSON_PrintUnformatted(h);
  cJSON_Delete(h);
  if (!json) return NULL;
  size_t n = strlen(json), padded = (n + 7) & ~(size_t)7;
  char *out = malloc(padded + 1);
  if (out) {
    memcpy(out, json, n);
    memset(out + n, ' ', padded - n);
    out[padded] = '\0';
    *len = padded;
  }
  cJSON_free(json);
  return out;
}

static int write_tensor(FILE *f, const char *path, uint64_t seed, const qwen3_tensor_desc *d, uint16_t *buf,
                        int threads, klab_err *err) {
  int64_t n = d->shape[0] * (d->ndim == 2 ? d->shape[1] : 1);
  for (int64_t at = 0; at < n; at += CHUNK_ELEMS) {
    int64_t m = n - at < CHUNK_ELEMS ? n - at : CHUNK_ELEMS;
    if (fill_parallel(seed, d, (uint64_t)at, m, buf, threads, err)) return -1;
    if (fwrite(buf, 2, (size_t)m, f) != (size_t)m)
      return klab_fail(err, "%s: write of tensor '%s' failed: %s", path, d->name, strerror(errno));
  }
  return 0;
}

static int write_shard(const char *dir, const shard_plan *p, int s, const qwen3_init_opts *o, uint16_t *buf,
                       klab_err *err) {
  char name[64], path[2048];
  shard_name(p, s, name, sizeof name);
  snprintf(path, sizeof path, "%s/%s", dir, name);
  uint64_t hl = 0;
  char *header = shard_header(p, s, &hl);
  if (!header) return klab_fail(err, "%s: out of memory building the header", path);
  FILE *f = fopen(path, "wb");
  if (!f) {
    free(header);
    return klab_fail(err, "%s: cannot create: %s", path, strerror(errno));
  }
  uint8_t le[8];
  for (int i = 0; i < 8; i++) le[i] = (uint8_t)(hl >> (8 * i));
  int rc = 0;
  if (fwrite(le, 1, 8, f) != 8 || fwrite(header, 1, hl, f) != hl)
    rc = klab_fail(err, "%s: header write failed: %s", path, strerror(errno));
  free(header);
  for (int i = 0; !rc && i < p->ntensors; i++)
    if (p->shard[i] == s) rc = write_tensor(f, path, o->seed, &p->d[i], buf, o->threads, err);
  if (fclose(f) != 0 && !rc) rc = klab_fail(err, "%s: close failed: %s", path, strerror(errno));
  if (!rc && !o->quiet) fprintf(stderr, "qwen3 init: wrote %s\n", path);
  return rc;
}

static int write_index(const char *dir, const shard_plan *p, klab_err *err) {
  char path[2048], name[64];
  snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
  cJSON *r = cJSON_CreateObject();
  cJSON *meta = cJSON_AddObjectToObject(r, "metadata");
  cJSON_AddNumberToObject(meta, "total_size", (double)p->total);
  cJSON *map = cJSON_AddObjectToObject(r, "weight_map");
  for (int i = 0; i < p->ntensors; i++) {
    shard_name(p, p->shard[i], name, sizeof name);
    cJSON_AddStringToObject(map, p->d[i].name, name);
  }
  return write_json(path, r, err);
}

/* ---- tokenizer files ---------------------------------------------------------------------------- */

static int copy_file(const char *src, const char *dst, klab_err *err) {
  FILE *in = fopen(src, "rb");
  if (!in) return klab_fail(err, "%s: cannot open: %s", src, strerror(errno));
  FILE *out = fopen(dst, "wb");
  if (!out) {
    fclose(in);
    return klab_fail(err, "%s: cannot create: %s", dst, strerror(errno));
  }
  char buf[1 << 16];
  size_t n;
  int rc = 0;
  while (!rc && (n = fread(buf, 1, sizeof buf, in)) > 0)
    if (fwrite(buf, 1, n, out) != n) rc = klab_fail(err, "%s: write failed: %s", dst, strerror(errno));
  if (!rc && ferror(in)) rc = klab_fail(err, "%s: read failed", src);
  fclose(in);
  if (fclose(out) != 0 && !rc) rc = klab_fail(err, "%s: close failed: %s", dst, strerror(errno));
  return rc;
}

static int copy_tokenizer(const char *from, const char *dir, klab_err *err) {
  static const char *files[] = {"tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                                "special_tokens_map.json", "added_tokens.json"};
  char src[2048], dst[2048];
  int have[6] = {0};
  for (int i = 0; i < 6; i++) {
    snprintf(src, sizeof src, "%s/%s", from, files[i]);
    have[i] = access(src, R_OK) == 0;
  }
  if (!have[0] && !(have[2] && have[3]))
    return klab_fail(err, "%s: no tokenizer.json and no vocab.json + merges.txt to copy", from);
  for (int i = 0; i < 6; i++) {
    if (!have[i]) continue;
    snprintf(src, sizeof src, "%s/%s", from, files[i]);
    snprintf(dst, sizeof dst, "%s/%s", dir, files[i]);
    if (copy_file(src, dst, err)) return -1;
  }
  return 0;
}

/* ---- entry -------------------------------------------------------------------------------------- */

static int make_dir(const char *dir, klab_err *err) {
  if (mkdir(dir, 0755) == 0 || errno == EEXIST) {
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) return klab_fail(err, "%s: exists and is not a folder", dir);
    return 0;
  }
  return klab_fail(err, "%s: cannot create folder: %s", dir, strerror(errno));
}

static int online_cpus(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > 16 ? 16 : (int)n;
}

int qwen3_init_checkpoint(const qwen3_init_opts *o, klab_err *err) {
  qwen3_config c;
  if (qwen3_preset(o->preset, &c, err)) return -1;
  if (o->layers > 0) {
    c.layers = o->layers;
    snprintf(c.name, sizeof c.name, "%.16s-L%d", o->preset, (int)(o->layers % 100000));
  }
  if (qwen3_config_validate(&c, err) || make_dir(o->out_dir, err)) return -1;
  qwen3_init_opts opt = *o;
  if (opt.threads <= 0) opt.threads = online_cpus();
  if (opt.threads > 16) opt.threads = 16;
  char path[2048];
  snprintf(path, sizeof path, "%s/config.json", o->out_dir);
  if (write_json(path, config_json(&c), err)) return -1;
  snprintf(path, sizeof path, "%s/generation_config.json", o->out_dir);
  if (write_json(path, generation_config_json(&c), err)) return -1;
  shard_plan p = {0};
  uint16_t *buf = malloc((size_t)CHUNK_ELEMS * sizeof *buf);
  int rc = buf ? 0 : klab_fail(err, "out of memory");
  if (!rc) rc = plan_shards(&c, o->max_shard_bytes ? o->max_shard_bytes : DEFAULT_SHARD_BYTES, &p, err);
  for (int s = 0; !rc && s < p.nshards; s++) rc = write_shard(o->out_dir, &p, s, &opt, buf, err);
  if (!rc) rc = write_index(o->out_dir, &p, err);
  if (!rc && o->tokenizer_dir) rc = copy_tokenizer(o->tokenizer_dir, o->out_dir, err);
  free(buf);
  free(p.d);
  free(p.shard);
  return rc;
}
