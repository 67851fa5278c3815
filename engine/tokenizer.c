/* Byte-level BPE tokenizer: see tokenizer.h. */
#define _POSIX_C_SOURCE 200809L
#include "engine/tokenizer.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include "engine/qwen3_config_parse.h" /* qwen3_read_file */

/* Qwen2/Qwen3's pre-tokenizer (design.md §4): what transformers' Qwen2Tokenizer uses with
 * vocab.json + merges.txt, so it is the fallback when there is no tokenizer.json to state it. */
static const char k_qwen_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";
/* GPT-2's, used by a ByteLevel pre-tokenizer with use_regex = true. */
static const char k_gpt2_regex[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

#define MAX_TOKEN_ID ((int64_t)1 << 24)
#define CACHE_MAX_ENTRIES (1 << 17)
#define CACHE_MAX_WORD 256

/* ---- growable buffers --------------------------------------------------------------------------- */

void qwen3_buf_free(qwen3_buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

void qwen3_ids_free(qwen3_ids *v) {
  free(v->p);
  memset(v, 0, sizeof *v);
}

static int buf_reserve(qwen3_buf *b, size_t extra, klab_err *err) {
  if (b->n + extra + 1 <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->n + extra + 1) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) return klab_fail(err, "out of memory (%zu bytes)", cap);
  b->p = p;
  b->cap = cap;
  return 0;
}

static int buf_append(qwen3_buf *b, const void *s, size_t n, klab_err *err) {
  if (buf_reserve(b, n, err)) return -1;
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
  return 0;
}

int qwen3_ids_push(qwen3_ids *v, int32_t id, klab_err *err) {
  if (v->n == v->cap) {
    int64_t cap = v->cap ? v->cap * 2 : 64;
    int32_t *p = realloc(v->p, (size_t)cap * sizeof *p);
    if (!p) return klab_fail(err, "out of memory (%lld ids)", (long long)cap);
    v->p = p;
    v->cap = cap;
  }
  v->p[v->n++] = id;
  return 0;
}

/* ---- string -> int hash map (strings kept in an arena, referenced by offset) -------------------- */

typedef struct {
  uint32_t off, len;
  int32_t val; /* -1: empty slot */
} smap_slot;

typedef struct {
  smap_slot *slots;
  uint64_t mask;
  int64_t count;
  qwen3_buf arena;
} smap;

static uint64_t hash_bytes(const void *p, size_t n) {
  const uint8_t *s = p;
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
  return h ^ (h >> 29);
}

static int smap_init(smap *m, int64_t expected, klab_err *err) {
  memset(m, 0, sizeof *m);
  uint64_t cap = 64;
  while (cap < (uint64_t)expected * 2) cap *= 2;
  m->slots = malloc(cap * sizeof *m->slots);
  if (!m->slots) return klab_fail(err, "out of memory (hash map of %llu slots)", (unsigned long long)cap);
  for (uint64_t i = 0; i < cap; i++) m->slots[i].val = -1;
  m->mask = cap - 1;
  return 0;
}

static void smap_free(smap *m) {
  free(m->slots);
  qwen3_buf_free(&m->arena);
}

static int32_t smap_get(const smap *m, const void *s, size_t n) {
  for (uint64_t i = hash_bytes(s, n) & m->mask;; i = (i + 1) & m->mask) {
    const smap_slot *e = &m->slots[i];
    if (e->val < 0) return -1;
    if (e->len == n && memcmp(m->arena.p + e->off, s, n) == 0) return e->val;
  }
}

static int smap_grow(smap *m, klab_err *err);

/* Insert; an existing key keeps its first value (returns 1 then). */
static int smap_put(smap *m, const void *s, size_t n, int32_t val, klab_err *err) {
  if ((uint64_t)(m->count + 1) * 2 > m->mask + 1 && smap_grow(m, err)) return -1;
  if (m->arena.n + n > UINT32_MAX) return klab_fail(err, "hash map arena above 4 GB");
  uint64_t i = hash_bytes(s, n) & m->mask;
  for (;; i = (i + 1) & m->mask) {
    smap_slot *e = &m->slots[i];
    if (e->val < 0) break;
    if (e->len == n && memcmp(m->arena.p + e->off, s, n) == 0) return 1;
  }
  uint32_t off = (uint32_t)m->arena.n;
  if (buf_append(&m->arena, s, n, err)) return -1;
  m->slots[i] = (smap_slot){off, (uint32_t)n, val};
  m->count++;
  return 0;
}

static int smap_grow(smap *m, klab_err *err) {
  uint64_t cap = (m->mask + 1) * 2;
  smap_slot *ns = malloc(cap * sizeof *ns);
  if (!ns) return klab_fail(err, "out of memory (hash map of %llu slots)", (unsigned long long)cap);
  for (uint64_t i = 0; i < cap; i++) ns[i].val = -1;
  for (uint64_t j = 0; j <= m->mask; j++) {
    smap_slot e = m->slots[j];
    if (e.val < 0) continue;
    uint64_t i = hash_bytes(m->arena.p + e.off, e.len) & (cap - 1);
    while (ns[i].val >= 0) i = (i + 1) & (cap - 1);
    ns[i] = e;
  }
  free(m->slots);
  m->slots = ns;
  m->mask = cap - 1;
  return 0;
}

/* ---- (id, id) -> (rank, merged id) map ---------------------------------------------------------- */

typedef struct {
  uint64_t key; /* a << 32 | b; UINT64_MAX empty */
  int32_t rank, id;
} pair_slot;

typedef struct {
  pair_slot *slots;
  uint64_t mask;
} pmap;

static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

static uint64_t hash_u64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

static const pair_slot *pmap_get(const pmap *m, int32_t a, int32_t b) {
  uint64_t k = pair_key(a, b);
  for (uint64_t i = hash_u64(k) & m->mask;; i = (i + 1) & m->mask) {
    if (m->slots[i].key == k) return &m->slots[i];
    if (m->slots[i].key == UINT64_MAX) return NULL;
  }
}

/* ---- the tokenizer ------------------------------------------------------------------------------ */

typedef struct {
  char *text;
  size_t len;
  int32_t id;
  int special;
} added_token;

struct qwen3_tokenizer {
  smap vocab;             /* byte-level string -> id (model vocab and added tokens) */
  int64_t n_ids;          /* max id + 1 */
  uint32_t *dec_off;      /* id -> bytes in dec_arena (UINT32_MAX: no such id) */
  uint32_t *dec_len;
  qwen3_buf dec_arena;
  uint8_t *is_special;    /* per id */
  pmap merges;
  int64_t n_merges;
  int32_t byte_id[256];   /* id of the one-byte symbol */
  uint16_t byte_cp[256];  /* GPT-2 byte -> code point */
  int16_t cp_byte[512];   /* code point -> byte, -1 if none */
  int ignore_merges;
  int nfc;
  added_token *added;
  int n_added;
  uint8_t added_first[256]; /* 1 if some added token starts with this byte */
  pcre2_code *re;
  smap cache;             /* word bytes -> offset into cache_ids */
  qwen3_ids cache_ids;    /* per entry: count, then ids */
};

/* GPT-2 bytes_to_unicode: printable latin-1 bytes map to themselves, the other 68 to 256, 257, ... */
static void init_byte_map(qwen3_tokenizer *tk) {
  int n = 0;
  for (int i = 0; i < 512; i++) tk->cp_byte[i] = -1;
  for (int b = 0; b < 256; b++) {
    int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    tk->byte_cp[b] = (uint16_t)(keep ? b : 256 + n++);
    tk->cp_byte[tk->byte_cp[b]] = (int16_t)b;
  }
}

/* Raw bytes -> byte-level string (each byte a code point of the map, UTF-8 encoded). */
static int to_byte_level(const qwen3_tokenizer *tk, const uint8_t *s, size_t n, qwen3_buf *out, klab_err *err) {
  out->n = 0;
  if (buf_reserve(out, 2 * n, err)) return -1;
  for (size_t i = 0; i < n; i++) {
    uint16_t cp = tk->byte_cp[s[i]];
    if (cp < 0x80) out->p[out->n++] = (char)cp;
    else {
      out->p[out->n++] = (char)(0xC0 | (cp >> 6));
      out->p[out->n++] = (char)(0x80 | (cp & 0x3F));
    }
  }
  out->p[out->n] = '\0';
  return 0;
}

/* Byte-level string -> raw bytes; -1 if a character is outside the map (not a byte-level token). */
static int from_byte_level(const qwen3_tokenizer *tk, const char *s, size_t n, qwen3_buf *out) {
  out->n = 0;
  klab_err dummy;
  if (buf_reserve(out, n, &dummy)) return -1;
  size_t i = 0;
  while (i < n) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t k = utf8proc_iterate((const uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
    if (k <= 0 || cp >= 512 || tk->cp_byte[cp] < 0) return -1;
    out->p[out->n++] = (char)tk->cp_byte[cp];
    i += (size_t)k;
  }
  return 0;
}

static int set_decoding(qwen3_tokenizer *tk, int32_t id, const char *bytes, size_t n, klab_err *err) {
  if (tk->dec_off[id] != UINT32_MAX) return 0; /* first definition wins (an added token may repeat a vocab id) */
  if (tk->dec_arena.n + n > UINT32_MAX) return klab_fail(err, "decoder table above 4 GB");
  tk->dec_off[id] = (uint32_t)tk->dec_arena.n;
  tk->dec_len[id] = (uint32_t)n;
  return buf_append(&tk->dec_arena, bytes, n, err);
}

static int alloc_id_tables(qwen3_tokenizer *tk, int64_t n_ids, klab_err *err) {
  tk->n_ids = n_ids;
  tk->dec_off = malloc((size_t)n_ids * sizeof *tk->dec_off);
  tk->dec_len = calloc((size_t)n_ids, sizeof *tk->dec_len);
  tk->is_special = calloc((size_t)n_ids, 1);
  if (!tk->dec_off || !tk->dec_len || !tk->is_special) return klab_fail(err, "out of memory (%lld ids)", (long long)n_ids);
  for (int64_t i = 0; i < n_ids; i++) tk->dec_off[i] = UINT32_MAX;
  return 0;
}

/* ---- loading: vocabulary, merges, added tokens -------------------------------------------------- */

static int json_id(const cJSON *it, int32_t *id) {
  if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || it->valuedouble < 0 ||
      it->valuedouble >= (double)MAX_TOKEN_ID)
    return -1;
  *id = (int32_t)it->valuedouble;
  return 0;
}

/* Pass 1 over the vocab object: the largest id (sizes the tables). */
static int vocab_max_id(const cJSON *vocab, const char *what, int64_t *max_id, klab_err *err) {
  if (!cJSON_IsObject(vocab)) return klab_fail(err, "%s: \"vocab\" must be an object of token -> id", what);
  for (const cJSON *it = vocab->child; it; it = it->next) {
    int32_t id;
    if (json_id(it, &id))
      return klab_fail(err, "%s: vocab entry \"%.60s\" has an id that is not an integer in [0, 2^24)", what, it->string);
    if (id > *max_id) *max_id = id;
  }
  return 0;
}

static int load_vocab(qwen3_tokenizer *tk, const cJSON *vocab, const char *what, klab_err *err) {
  qwen3_buf raw = {0};
  int rc = 0;
  for (const cJSON *it = vocab->child; it && !rc; it = it->next) {
    int32_t id = -1;
    json_id(it, &id);
    size_t n = strlen(it->string);
    if (n == 0) rc = klab_fail(err, "%s: vocab has an empty token (id %d)", what, id);
    else if (from_byte_level(tk, it->string, n, &raw))
      rc = klab_fail(err, "%s: vocab token \"%.60s\" (id %d) is not a byte-level string", what, it->string, id);
    else if (smap_put(&tk->vocab, it->string, n, id, err) < 0) rc = -1;
    else rc = set_decoding(tk, id, raw.p, raw.n, err);
  }
  qwen3_buf_free(&raw);
  if (rc) return rc;
  char one[3];
  for (int b = 0; b < 256; b++) {
    uint16_t cp = tk->byte_cp[b];
    size_t n = cp < 0x80 ? 1 : 2;
    one[0] = (char)(cp < 0x80 ? cp : 0xC0 | (cp >> 6));
    one[1] = (char)(0x80 | (cp & 0x3F));
    tk->byte_id[b] = smap_get(&tk->vocab, one, n);
    if (tk->byte_id[b] < 0)
      return klab_fail(err, "%s: vocab lacks the byte-level symbol of byte 0x%02x: not a byte-level BPE vocabulary", what, b);
  }
  return 0;
}

static int pmap_init(pmap *m, int64_t n, klab_err *err) {
  uint64_t cap = 64;
  while (cap < (uint64_t)n * 2) cap *= 2;
  m->slots = malloc(cap * sizeof *m->slots);
  if (!m->slots) return klab_fail(err, "out of memory (%lld merges)", (long long)n);
  for (uint64_t i = 0; i < cap; i++) m->slots[i].key = UINT64_MAX;
  m->mask = cap - 1;
  return 0;
}

/* One merge "a b" of rank r. Both parts and their concatenation must be in the vocabulary (tokenizers
 * refuses such files too). A repeated pair keeps its first (lowest) rank. */
static int add_merge(qwen3_tokenizer *tk, const char *a, size_t na, const char *b, size_t nb, int64_t rank,
                     const char *what, qwen3_buf *tmp, klab_err *err) {
  int32_t ia = smap_get(&tk->vocab, a, na), ib = smap_get(&tk->vocab, b, nb);
  tmp->n = 0;
  if (buf_append(tmp, a, na, err) || buf_append(tmp, b, nb, err)) return -1;
  int32_t im = smap_get(&tk->vocab, tmp->p, tmp->n);
  if (ia < 0 || ib < 0 || im < 0)
    return klab_fail(err, "%s: merge %lld \"%.*s %.*s\": %s is not in the vocabulary", what, (long long)rank,
                     (int)(na < 40 ? na : 40), a, (int)(nb < 40 ? nb : 40), b,
                     ia < 0 ? "the first part" : ib < 0 ? "the second part" : "the merged token");
  uint64_t k = pair_key(ia, ib);
  uint64_t i = hash_u64(k) & tk->merges.mask;
  while (tk->merges.slots[i].key != UINT64_MAX && tk->merges.slots[i].key != k) i = (i + 1) & tk->merges.mask;
  if (tk->merges.slots[i].key == k) return 0;
  tk->merges.slots[i] = (pair_slot){k, (int32_t)rank, im};
  tk->n_merges++;
  return 0;
}

/* merges: a list of "a b" strings or of ["a", "b"] lists. */
static int load_merges_json(qwen3_tokenizer *tk, const cJSON *merges, const char *what, klab_err *err) {
  if (!cJSON_IsArray(merges)) return klab_fail(err, "%s: \"merges\" must be a list", what);
  int64_t n = cJSON_GetArraySize(merges);
  if (pmap_init(&tk->merges, n, err)) return -1;
  qwen3_buf tmp = {0};
  int64_t r = 0;
  int rc = 0;
  for (const cJSON *it = merges->child; it && !rc; it = it->next, r++) {
    if (cJSON_IsString(it)) {
      const char *s = it->valuestring, *sp = strchr(s, ' ');
      if (!sp || strchr(sp + 1, ' ') || sp == s || !sp[1])
        rc = klab_fail(err, "%s: merge %lld \"%.60s\" is not two tokens separated by one space", what, (long long)r, s);
      else rc = add_merge(tk, s, (size_t)(sp - s), sp + 1, strlen(sp + 1), r, what, &tmp, err);
    } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(it->child) &&
               cJSON_IsString(it->child->next)) {
      const char *a = it->child->valuestring, *b = it->child->next->valuestring;
      rc = add_merge(tk, a, strlen(a), b, strlen(b), r, what, &tmp, err);
    } else {
      rc = klab_fail(err, "%s: merge %lld must be a string \"a b\" or a list [\"a\", \"b\"]", what, (long long)r);
    }
  }
  qwen3_buf_free(&tmp);
  return rc;
}

static int add_added_token(qwen3_tokenizer *tk, const char *content, int32_t id, int special, const char *what,
                           klab_err *err) {
  size_t n = strlen(content);
  if (n == 0) return klab_fail(err, "%s: added token %d has empty content", what, id);
  added_token *na = realloc(tk->added, (size_t)(tk->n_added + 1) * sizeof *na);
  if (!na) return klab_fail(err, "out of memory");
  tk->added = na;
  added_token *a = &tk->added[tk->n_added];
  if (!(a->text = strdup(content))) return klab_fail(err, "out of memory");
  a->len = n;
  a->id = id;
  a->special = special;
  tk->n_added++;
  tk->added_first[(uint8_t)content[0]] = 1;
  if (special) tk->is_special[id] = 1;
  /* Added tokens decode to their content as is (they are not byte-level strings). */
  if (tk->dec_off[id] != UINT32_MAX && (tk->dec_len[id] != n || memcmp(tk->dec_arena.p + tk->dec_off[id], content, n)))
    return klab_fail(err, "%s: added token \"%.60s\" reuses id %d of a different vocab token", what, content, id);
  return set_decoding(tk, id, content, n, err);
}

/* One added-token object: {id, content, special, lstrip, rstrip, single_word, normalized}. Options that
 * change matching (lstrip, rstrip, single_word) are not implemented and are refused by name. */
static int parse_added_object(qwen3_tokenizer *tk, const cJSON *o, int32_t id, const char *what, klab_err *err) {
  const cJSON *content = cJSON_GetObjectItemCaseSensitive(o, "content");
  if (!cJSON_IsString(content)) return klab_fail(err, "%s: added token %d: missing string \"content\"", what, id);
  static const char *unsupported[] = {"lstrip", "rstrip", "single_word"};
  for (int k = 0; k < 3; k++)
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, unsupported[k])))
      return klab_fail(err, "%s: added token \"%.60s\": \"%s\": true is not supported", what, content->valuestring,
                       unsupported[k]);
  int special = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "special"));
  return add_added_token(tk, content->valuestring, id, special, what, err);
}

static int added_max_id(const cJSON *added, const char *what, int64_t *max_id, klab_err *err) {
  if (!added || cJSON_IsNull(added)) return 0;
  if (!cJSON_IsArray(added)) return klab_fail(err, "%s: \"added_tokens\" must be a list", what);
  for (const cJSON *it = added->child; it; it = it->next) {
    int32_t id;
    if (!cJSON_IsObject(it) || json_id(cJSON_GetObjectItemCaseSensitive(it, "id"), &id))
      return klab_fail(err, "%s: an added token lacks an integer \"id\" in [0, 2^24)", what);
    if (id > *max_id) *max_id = id;
  }
  return 0;
}

static int load_added_json(qwen3_tokenizer *tk, const cJSON *added, const char *what, klab_err *err) {
  if (!added || cJSON_IsNull(added)) return 0;
  for (const cJSON *it = added->child; it; it = it->next) {
    int32_t id = -1;
    json_id(cJSON_GetObjectItemCaseSensitive(it, "id"), &id); /* checked by added_max_id */
    if (parse_added_object(tk, it, id, what, err)) return -1;
  }
  return 0;
}

/* ---- loading: normalizer and pre-tokenizer ------------------------------------------------------ */

static const char *json_type(const cJSON *o) {
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
  return cJSON_IsString(t) ? t->valuestring : "(no type)";
}

static int parse_normalizer(qwen3_tokenizer *tk, const cJSON *n, const char *what, klab_err *err) {
  if (!n || cJSON_IsNull(n)) return 0;
  const char *t = json_type(n);
  if (strcmp(t, "NFC") == 0) {
    tk->nfc = 1;
    return 0;
  }
  if (strcmp(t, "Sequence") == 0) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
    if (!cJSON_IsArray(list)) return klab_fail(err, "%s: normalizer Sequence lacks \"normalizers\"", what);
    for (const cJSON *it = list->child; it; it = it->next)
      if (parse_normalizer(tk, it, what, err)) return -1;
    return 0;
  }
  return klab_fail(err, "%s: normalizer \"%s\" is not supported (only NFC)", what, t);
}

/* The one dialect difference that matters: with UCP, PCRE2's \s is \p{Z} + \h + \v, which includes
 * U+180E (a space before Unicode 6.3); the Oniguruma regexes of Hugging Face tokenizers use the Unicode
 * White_Space property, which does not. So \s / \S become \p{White_Space} / \P{White_Space} (PCRE2 >=
 * 10.40 Boolean properties, valid inside classes too); every other escape is copied as is. The pattern
 * otherwise runs exactly as the file states it. */
static char *translate_whitespace(const char *pattern) {
  size_t n = strlen(pattern), cap = n * 8 + 1, o = 0;
  char *out = malloc(cap);
  if (!out) return NULL;
  for (size_t i = 0; i < n; i++) {
    if (pattern[i] == '\\' && i + 1 < n) {
      char c = pattern[++i];
      if (c == 's' || c == 'S') {
        o += (size_t)sprintf(out + o, "\\%c{White_Space}", c == 's' ? 'p' : 'P');
      } else {
        out[o++] = '\\';
        out[o++] = c;
      }
    } else {
      out[o++] = pattern[i];
    }
  }
  out[o] = '\0';
  return out;
}

static int compile_regex(qwen3_tokenizer *tk, const char *pattern, const char *what, klab_err *err) {
  int code;
  PCRE2_SIZE off;
  char *pcre_pattern = translate_whitespace(pattern);
  if (!pcre_pattern) return klab_fail(err, "out of memory");
  tk->re = pcre2_compile((PCRE2_SPTR)pcre_pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &code, &off, NULL);
  free(pcre_pattern);
  if (!tk->re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(code, msg, sizeof msg);
    return klab_fail(err, "%s: pre-tokenizer regex does not compile (PCRE2, \\s as \\p{White_Space}) near offset %zu: %s",
                     what, (size_t)off, (char *)msg);
  }
  pcre2_jit_compile(tk->re, PCRE2_JIT_COMPLETE); /* optional speed-up: the interpreter is used when JIT is absent */
  return 0;
}

static int parse_split(qwen3_tokenizer *tk, const cJSON *s, const char *what, klab_err *err) {
  const cJSON *pat = cJSON_GetObjectItemCaseSensitive(s, "pattern");
  const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
  if (!cJSON_IsString(re)) return klab_fail(err, "%s: Split pre-tokenizer needs a {\"Regex\": ...} pattern", what);
  const cJSON *beh = cJSON_GetObjectItemCaseSensitive(s, "behavior");
  if (!cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated") != 0)
    return klab_fail(err, "%s: Split pre-tokenizer: \"behavior\" must be \"Isolated\"", what);
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "invert")))
    return klab_fail(err, "%s: Split pre-tokenizer: \"invert\": true is not supported", what);
  if (tk->re) return klab_fail(err, "%s: more than one regex pre-tokenizer", what);
  return compile_regex(tk, re->valuestring, what, err);
}

static int parse_byte_level(qwen3_tokenizer *tk, const cJSON *b, const char *what, klab_err *err) {
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "add_prefix_space")))
    return klab_fail(err, "%s: ByteLevel pre-tokenizer: \"add_prefix_space\": true is not supported", what);
  /* use_regex absent or true: tokenizers splits with GPT-2's regex here. */
  if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(b, "use_regex"))) return 0;
  if (tk->re) return klab_fail(err, "%s: a Split regex followed by ByteLevel with use_regex is not supported", what);
  return compile_regex(tk, k_gpt2_regex, what, err);
}

static int parse_pre_tokenizer(qwen3_tokenizer *tk, const cJSON *p, const char *what, int *saw_byte_level,
                               klab_err *err) {
  if (!p || cJSON_IsNull(p)) return klab_fail(err, "%s: no pre_tokenizer (byte-level BPE needs one)", what);
  const char *t = json_type(p);
  if (strcmp(t, "Sequence") == 0) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
    if (!cJSON_IsArray(list)) return klab_fail(err, "%s: pre_tokenizer Sequence lacks \"pretokenizers\"", what);
    for (const cJSON *it = list->child; it; it = it->next)
      if (parse_pre_tokenizer(tk, it, what, saw_byte_level, err)) return -1;
    return 0;
  }
  if (strcmp(t, "Split") == 0) {
    if (*saw_byte_level) return klab_fail(err, "%s: a Split after ByteLevel is not supported", what);
    return parse_split(tk, p, what, err);
  }
  if (strcmp(t, "ByteLevel") == 0) {
    *saw_byte_level = 1;
    return parse_byte_level(tk, p, what, err);
  }
  return klab_fail(err, "%s: pre_tokenizer \"%s\" is not supported (Split with a Regex, ByteLevel)", what, t);
}

static int check_model(const cJSON *model, const char *what, klab_err *err) {
  if (!cJSON_IsObject(model)) return klab_fail(err, "%s: missing \"model\" object", what);
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(model, "type");
  if (t && (!cJSON_IsString(t) || strcmp(t->valuestring, "BPE") != 0))
    return klab_fail(err, "%s: model type \"%s\" is not supported (only BPE)", what, json_type(model));
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback")))
    return klab_fail(err, "%s: model \"byte_fallback\": true is not supported", what);
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(model, "dropout");
  if (d && !cJSON_IsNull(d) && !(cJSON_IsNumber(d) && d->valuedouble == 0))
    return klab_fail(err, "%s: model \"dropout\" is not supported", what);
  static const char *affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
  for (int i = 0; i < 2; i++) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(model, affixes[i]);
    if (a && !cJSON_IsNull(a) && !(cJSON_IsString(a) && a->valuestring[0] == '\0'))
      return klab_fail(err, "%s: model \"%s\" is not supported", what, affixes[i]);
  }
  return 0;
}

static qwen3_tokenizer *tok_new(klab_err *err) {
  qwen3_tokenizer *tk = calloc(1, sizeof *tk);
  if (!tk) {
    klab_fail(err, "out of memory");
    return NULL;
  }
  init_byte_map(tk);
  return tk;
}

/* Shared tail of both loaders: tables sized, cache ready, added tokens sorted longest first. */
static int added_cmp(const void *a, const void *b) {
  const added_token *x = a, *y = b;
  if (x->len != y->len) return x->len > y->len ? -1 : 1;
  return (x->id > y->id) - (x->id < y->id);
}

static int finish_load(qwen3_tokenizer *tk, klab_err *err) {
  if (tk->n_added) qsort(tk->added, (size_t)tk->n_added, sizeof *tk->added, added_cmp);
  return smap_init(&tk->cache, 4096, err);
}

static int load_from_json(qwen3_tokenizer *tk, const cJSON *root, const char *what, klab_err *err) {
  if (!cJSON_IsObject(root)) return klab_fail(err, "%s: top level must be a JSON object", what);
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
  if (check_model(model, what, err)) return -1;
  const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
  const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
  int64_t max_id = -1;
  if (vocab_max_id(vocab, what, &max_id, err) || added_max_id(added, what, &max_id, err)) return -1;
  if (max_id < 0) return klab_fail(err, "%s: empty vocabulary", what);
  tk->ignore_merges = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "ignore_merges"));
  int saw_byte_level = 0;
  if (alloc_id_tables(tk, max_id + 1, err) || smap_init(&tk->vocab, cJSON_GetArraySize(vocab), err) ||
      load_vocab(tk, vocab, what, err) ||
      load_merges_json(tk, cJSON_GetObjectItemCaseSensitive(model, "merges"), what, err) ||
      load_added_json(tk, added, what, err) ||
      parse_normalizer(tk, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), what, err) ||
      parse_pre_tokenizer(tk, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), what, &saw_byte_level, err))
    return -1;
  if (!saw_byte_level) return klab_fail(err, "%s: pre_tokenizer has no ByteLevel step: not a byte-level BPE", what);
  const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
  if (dec && !cJSON_IsNull(dec) && strcmp(json_type(dec), "ByteLevel") != 0)
    return klab_fail(err, "%s: decoder \"%s\" is not supported (only ByteLevel)", what, json_type(dec));
  if (!tk->re) return klab_fail(err, "%s: no pre-tokenizer regex", what);
  return finish_load(tk, err);
}

int qwen3_tok_load_json(const char *text, size_t len, const char *what, qwen3_tokenizer **out, klab_err *err) {
  *out = NULL;
  cJSON *root = cJSON_ParseWithLength(text, len);
  if (!root) return klab_fail(err, "%s: not valid JSON (near byte %ld)", what, (long)(cJSON_GetErrorPtr() - text));
  qwen3_tokenizer *tk = tok_new(err);
  int rc = tk ? load_from_json(tk, root, what, err) : -1;
  cJSON_Delete(root);
  if (rc) {
    qwen3_tok_free(tk);
    return -1;
  }
  *out = tk;
  return 0;
}

/* ---- loading: vocab.json + merges.txt (+ tokenizer_config.json) --------------------------------- */

static int load_merges_txt(qwen3_tokenizer *tk, char *text, size_t len, const char *what, klab_err *err) {
  int64_t lines = 1;
  for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
  if (pmap_init(&tk->merges, lines, err)) return -1;
  qwen3_buf tmp = {0};
  int64_t rank = 0, lineno = 0;
  int rc = 0;
  for (char *line = text; line && *line && !rc; lineno++) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    size_t n = strlen(line);
    if (n && line[n - 1] == '\r') line[--n] = '\0';
    if (n > 0 && !(lineno == 0 && strncmp(line, "#version", 8) == 0)) {
      char *sp = strchr(line, ' ');
      if (!sp || sp == line || !sp[1] || strchr(sp + 1, ' '))
        rc = klab_fail(err, "%s: line %lld \"%.60s\" is not two tokens separated by one space", what,
                       (long long)lineno + 1, line);
      else rc = add_merge(tk, line, (size_t)(sp - line), sp + 1, strlen(sp + 1), rank++, what, &tmp, err);
    }
    line = nl ? nl + 1 : NULL;
  }
  qwen3_buf_free(&tmp);
  return rc;
}

/* tokenizer_config.json's "added_tokens_decoder": {"151643": {"content": ..., "special": ...}, ...}. */
static int load_added_config(qwen3_tokenizer *tk, const cJSON *dec, const char *what, int pass, int64_t *max_id,
                             klab_err *err) {
  if (!dec || cJSON_IsNull(dec)) return 0;
  if (!cJSON_IsObject(dec)) return klab_fail(err, "%s: \"added_tokens_decoder\" must be an object", what);
  for (const cJSON *it = dec->child; it; it = it->next) {
    char *end;
    errno = 0;
    long id = strtol(it->string, &end, 10);
    if (errno || *end || end == it->string || id < 0 || id >= MAX_TOKEN_ID || !cJSON_IsObject(it))
      return klab_fail(err, "%s: added_tokens_decoder key \"%.30s\" is not a token id with an object", what, it->string);
    if (pass == 0 && id > *max_id) *max_id = id;
    if (pass == 1 && parse_added_object(tk, it, (int32_t)id, what, err)) return -1;
  }
  return 0;
}

static int load_vocab_merges(qwen3_tokenizer *tk, const char *dir, klab_err *err) {
  char path[2048], *text = NULL;
  size_t len;
  cJSON *vocab = NULL, *cfg = NULL;
  int rc = -1;
  snprintf(path, sizeof path, "%s/vocab.json", dir);
  if (qwen3_read_file(path, (size_t)256 << 20, &text, &len, err)) goto done;
  vocab = cJSON_ParseWithLength(text, len);
  free(text);
  text = NULL;
  if (!vocab) {
    klab_fail(err, "%s: not valid JSON", path);
    goto done;
  }
  char cfg_path[2048];
  snprintf(cfg_path, sizeof cfg_path, "%s/tokenizer_config.json", dir);
  FILE *probe = fopen(cfg_path, "rb");
  if (probe) {
    fclose(probe);
    if (qwen3_read_file(cfg_path, (size_t)64 << 20, &text, &len, err)) goto done;
    cfg = cJSON_ParseWithLength(text, len);
    free(text);
    text = NULL;
    if (!cfg) {
      klab_fail(err, "%s: not valid JSON", cfg_path);
      goto done;
    }
  }
  const cJSON *dec = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder") : NULL;
  int64_t max_id = -1;
  if (vocab_max_id(vocab, path, &max_id, err) || load_added_config(tk, dec, cfg_path, 0, &max_id, err)) goto done;
  if (max_id < 0) {
    klab_fail(err, "%s: empty vocabulary", path);
    goto done;
  }
  if (alloc_id_tables(tk, max_id + 1, err) || smap_init(&tk->vocab, cJSON_GetArraySize(vocab), err) ||
      load_vocab(tk, vocab, path, err))
    goto done;
  snprintf(path, sizeof path, "%s/merges.txt", dir);
  if (qwen3_read_file(path, (size_t)256 << 20, &text, &len, err) || load_merges_txt(tk, text, len, path, err) ||
      load_added_config(tk, dec, cfg_path, 1, &max_id, err))
    goto done;
  tk->nfc = 1;
  rc = compile_regex(tk, k_qwen_regex, "built-in Qwen pre-tokenizer", err);
  if (!rc) rc = finish_load(tk, err);
done:
  free(text);
  cJSON_Delete(vocab);
  cJSON_Delete(cfg);
  return rc;
}

int qwen3_tok_load_dir(const char *dir, qwen3_tokenizer **out, klab_err *err) {
  *out = NULL;
  char path[2048];
  int n = snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  if (n < 0 || (size_t)n >= sizeof path) return klab_fail(err, "%s: path too long", dir);
  FILE *probe = fopen(path, "rb");
  if (probe) {
    fclose(probe);
    char *text;
    size_t len;
    if (qwen3_read_file(path, (size_t)512 << 20, &text, &len, err)) return -1;
    int rc = qwen3_tok_load_json(text, len, path, out, err);
    free(text);
    return rc;
  }
  char vpath[2048], mpath[2048];
  snprintf(vpath, sizeof vpath, "%s/vocab.json", dir);
  snprintf(mpath, sizeof mpath, "%s/merges.txt", dir);
  FILE *v = fopen(vpath, "rb"), *m = fopen(mpath, "rb");
  if (v) fclose(v);
  if (m) fclose(m);
  if (!v || !m) return klab_fail(err, "%s: no tokenizer.json and no vocab.json + merges.txt", dir);
  qwen3_tokenizer *tk = tok_new(err);
  if (!tk) return -1;
  if (load_vocab_merges(tk, dir, err)) {
    qwen3_tok_free(tk);
    return -1;
  }
  *out = tk;
  return 0;
}

void qwen3_tok_free(qwen3_tokenizer *tk) {
  if (!tk) return;
  smap_free(&tk->vocab);
  smap_free(&tk->cache);
  qwen3_ids_free(&tk->cache_ids);
  free(tk->dec_off);
  free(tk->dec_len);
  qwen3_buf_free(&tk->dec_arena);
  free(tk->is_special);
  free(tk->merges.slots);
  for (int i = 0; i < tk->n_added; i++) free(tk->added[i].text);
  free(tk->added);
  if (tk->re) pcre2_code_free(tk->re);
  free(tk);
}

int64_t qwen3_tok_vocab_size(const qwen3_tokenizer *tk) { return tk->n_ids; }

int32_t qwen3_tok_find(const qwen3_tokenizer *tk, const char *token) {
  for (int i = 0; i < tk->n_added; i++)
    if (strcmp(tk->added[i].text, token) == 0) return tk->added[i].id;
  return smap_get(&tk->vocab, token, strlen(token));
}

int qwen3_tok_is_special(const qwen3_tokenizer *tk, int32_t id) {
  return id >= 0 && id < tk->n_ids && tk->is_special[id];
}

/* ---- BPE of one pre-token ----------------------------------------------------------------------- */

typedef struct {
  int32_t id;
  int32_t prev, next; /* -1: none */
  int32_t alive;
} bpe_sym;

typedef struct {
  int32_t rank, pos, id;
} bpe_cand;

/* Min-heap on (rank, pos): the lowest-ranked merge first, leftmost among equal ranks. */
static int cand_less(const bpe_cand *a, const bpe_cand *b) {
  return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(bpe_cand *h, int *n, bpe_cand c) {
  int i = (*n)++;
  h[i] = c;
  while (i > 0 && cand_less(&h[i], &h[(i - 1) / 2])) {
    bpe_cand t = h[i];
    h[i] = h[(i - 1) / 2];
    h[(i - 1) / 2] = t;
    i = (i - 1) / 2;
  }
}

static bpe_cand heap_pop(bpe_cand *h, int *n) {
  bpe_cand top = h[0];
  h[0] = h[--*n];
  for (int i = 0;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    if (l < *n && cand_less(&h[l], &h[m])) m = l;
    if (r < *n && cand_less(&h[r], &h[m])) m = r;
    if (m == i) break;
    bpe_cand t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
  return top;
}

static void push_pair(const qwen3_tokenizer *tk, const bpe_sym *s, int32_t pos, bpe_cand *h, int *nh) {
  if (pos < 0 || s[pos].next < 0) return;
  const pair_slot *m = pmap_get(&tk->merges, s[pos].id, s[s[pos].next].id);
  if (m) heap_push(h, nh, (bpe_cand){m->rank, pos, m->id});
}

/* Merges of one word (its bytes), as tokenizers' Word::merge_all: candidates that went stale (a symbol
 * merged away, or its neighbour changed) are skipped when popped. Each merge adds at most 2 candidates,
 * so the heap never exceeds 3n. */
static int bpe_word(const qwen3_tokenizer *tk, const uint8_t *w, int32_t n, qwen3_ids *ids, klab_err *err) {
  bpe_sym *s = malloc((size_t)n * sizeof *s);
  bpe_cand *h = malloc((size_t)n * 3 * sizeof *h);
  if (!s || !h) {
    free(s);
    free(h);
    return klab_fail(err, "out of memory (word of %d bytes)", n);
  }
  int nh = 0;
  for (int32_t i = 0; i < n; i++) s[i] = (bpe_sym){tk->byte_id[w[i]], i - 1, i + 1 < n ? i + 1 : -1, 1};
  for (int32_t i = 0; i + 1 < n; i++) push_pair(tk, s, i, h, &nh);
  while (nh > 0) {
    bpe_cand c = heap_pop(h, &nh);
    int32_t nx = s[c.pos].next;
    if (!s[c.pos].alive || nx < 0) continue;
    const pair_slot *m = pmap_get(&tk->merges, s[c.pos].id, s[nx].id);
    if (!m || m->rank != c.rank || m->id != c.id) continue;
    s[c.pos].id = c.id;
    s[c.pos].next = s[nx].next;
    s[nx].alive = 0;
    if (s[nx].next >= 0) s[s[nx].next].prev = c.pos;
    push_pair(tk, s, s[c.pos].prev, h, &nh);
    push_pair(tk, s, c.pos, h, &nh);
  }
  int rc = 0;
  for (int32_t i = 0; i >= 0 && !rc; i = s[i].next) rc = qwen3_ids_push(ids, s[i].id, err);
  free(s);
  free(h);
  return rc;
}

/* A word: from the cache, or BPE'd (and cached when short and the cache has room). */
static int encode_word(qwen3_tokenizer *tk, const uint8_t *w, size_t n, qwen3_ids *ids, qwen3_buf *scratch,
                       klab_err *err) {
  if (n == 0) return 0;
  if (n > INT32_MAX / 4) return klab_fail(err, "pre-token of %zu bytes is too long", n);
  int32_t at = smap_get(&tk->cache, w, n);
  if (at >= 0) {
    for (int32_t k = 0; k < tk->cache_ids.p[at]; k++)
      if (qwen3_ids_push(ids, tk->cache_ids.p[at + 1 + k], err)) return -1;
    return 0;
  }
  int64_t first = ids->n;
  if (tk->ignore_merges) {
    if (to_byte_level(tk, w, n, scratch, err)) return -1;
    int32_t id = smap_get(&tk->vocab, scratch->p, scratch->n);
    if (id >= 0) return qwen3_ids_push(ids, id, err);
  }
  if (bpe_word(tk, w, (int32_t)n, ids, err)) return -1;
  if (n <= CACHE_MAX_WORD && tk->cache.count < CACHE_MAX_ENTRIES && tk->cache_ids.n < INT32_MAX / 2) {
    int32_t off = (int32_t)tk->cache_ids.n;
    int64_t count = ids->n - first;
    if (qwen3_ids_push(&tk->cache_ids, (int32_t)count, err)) return -1;
    for (int64_t k = 0; k < count; k++)
      if (qwen3_ids_push(&tk->cache_ids, ids->p[first + k], err)) return -1;
    if (smap_put(&tk->cache, w, n, off, err) < 0) return -1;
  }
  return 0;
}

/* ---- encode ------------------------------------------------------------------------------------- */

static int check_utf8(const char *s, size_t n, size_t base, klab_err *err) {
  size_t i = 0;
  while (i < n) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t k = utf8proc_iterate((const uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
    if (k <= 0) return klab_fail(err, "invalid UTF-8 at byte %zu of the text", base + i);
    i += (size_t)k;
  }
  return 0;
}

int qwen3_nfc(const char *text, size_t len, qwen3_buf *out, klab_err *err) {
  if (check_utf8(text, len, 0, err)) return -1;
  if (len == 0) return buf_append(out, "", 0, err);
  utf8proc_uint8_t *res = NULL;
  utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, &res,
                                    UTF8PROC_STABLE | UTF8PROC_COMPOSE);
  if (n < 0) return klab_fail(err, "NFC normalisation failed: %s", utf8proc_errmsg(n));
  int rc = buf_append(out, res, (size_t)n, err);
  free(res);
  return rc;
}

/* One stretch of text without added tokens: normalise, split with the regex ("Isolated": matches and
 * the gaps between them are pieces), BPE each piece. */
static int encode_segment(qwen3_tokenizer *tk, const char *s, size_t n, size_t base, qwen3_ids *ids, klab_err *err) {
  if (n == 0) return 0;
  if (check_utf8(s, n, base, err)) return -1;
  qwen3_buf norm = {0}, scratch = {0};
  const char *t = s;
  size_t tn = n;
  if (tk->nfc) {
    if (qwen3_nfc(s, n, &norm, err)) return -1;
    t = norm.p;
    tn = norm.n;
  }
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(tk->re, NULL);
  int rc = md ? 0 : klab_fail(err, "out of memory (PCRE2 match data)");
  size_t pos = 0;
  while (!rc && pos < tn) {
    int m = pcre2_match(tk->re, (PCRE2_SPTR)t, tn, pos, PCRE2_NO_UTF_CHECK, md, NULL);
    if (m == PCRE2_ERROR_NOMATCH) {
      rc = encode_word(tk, (const uint8_t *)t + pos, tn - pos, ids, &scratch, err);
      break;
    }
    if (m < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(m, msg, sizeof msg);
      rc = klab_fail(err, "pre-tokenizer regex failed at byte %zu: %s", pos, (char *)msg);
      break;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    size_t a = ov[0], b = ov[1];
    if (a > pos) rc = encode_word(tk, (const uint8_t *)t + pos, a - pos, ids, &scratch, err);
    if (!rc) rc = encode_word(tk, (const uint8_t *)t + a, b - a, ids, &scratch, err);
    if (b == a) { /* empty match: step over one character so the loop always advances */
      size_t k = b + 1;
      while (k < tn && ((uint8_t)t[k] & 0xC0) == 0x80) k++;
      if (!rc) rc = encode_word(tk, (const uint8_t *)t + b, k - b, ids, &scratch, err);
      b = k;
    }
    pos = b;
  }
  if (md) pcre2_match_data_free(md);
  qwen3_buf_free(&norm);
  qwen3_buf_free(&scratch);
  return rc;
}

/* The added token starting at s (longest first: the list is sorted by length), or NULL. */
static const added_token *match_added(const qwen3_tokenizer *tk, const char *s, size_t n) {
  if (!tk->added_first[(uint8_t)s[0]]) return NULL;
  for (int i = 0; i < tk->n_added; i++) {
    const added_token *a = &tk->added[i];
    if (a->len <= n && memcmp(a->text, s, a->len) == 0) return a;
  }
  return NULL;
}

int qwen3_tok_encode(qwen3_tokenizer *tk, const char *text, size_t len, qwen3_ids *ids, klab_err *err) {
  size_t seg = 0;
  for (size_t i = 0; i < len;) {
    const added_token *a = match_added(tk, text + i, len - i);
    if (!a) {
      i++;
      continue;
    }
    if (encode_segment(tk, text + seg, i - seg, seg, ids, err) || qwen3_ids_push(ids, a->id, err)) return -1;
    i += a->len;
    seg = i;
  }
  return encode_segment(tk, text + seg, len - seg, seg, ids, err);
}

/* ---- decode ------------------------------------------------------------------------------------- */

static const char k_replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* Length of the UTF-8 sequence that lead byte c starts: 1..4, or 0 if c cannot start one. */
static int utf8_seq_len(uint8_t c) {
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) return 3;
  if (c >= 0xF0 && c <= 0xF4) return 4;
  return 0;
}

/* Emit the complete sequences of p[0..n); returns how many bytes were consumed (the rest is an
 * incomplete but so-far-valid tail to hold). */
static size_t emit_utf8(const uint8_t *p, size_t n, qwen3_buf *out, int *rc, klab_err *err) {
  size_t i = 0;
  while (i < n && !*rc) {
    int k = utf8_seq_len(p[i]);
    if (k == 0) {
      *rc = buf_append(out, k_replacement, 3, err);
      i++;
      continue;
    }
    if (i + (size_t)k > n) {
      /* Hold only while what is there can still become valid. */
      int ok = 1;
      for (size_t j = i + 1; j < n; j++) ok &= (p[j] & 0xC0) == 0x80;
      if (ok) break;
    } else {
      utf8proc_int32_t cp;
      if (utf8proc_iterate(p + i, k, &cp) == k) {
        *rc = buf_append(out, p + i, (size_t)k, err);
        i += (size_t)k;
        continue;
      }
    }
    *rc = buf_append(out, k_replacement, 3, err); /* invalid: one U+FFFD, resync at the next byte */
    i++;
  }
  return i;
}

int qwen3_tok_stream_feed(const qwen3_tokenizer *tk, qwen3_tok_stream *st, int32_t id, qwen3_buf *out, klab_err *err) {
  if (id < 0 || id >= tk->n_ids || tk->dec_off[id] == UINT32_MAX)
    return klab_fail(err, "token id %d is not in the vocabulary (%lld ids)", id, (long long)tk->n_ids);
  const uint8_t *b = (const uint8_t *)tk->dec_arena.p + tk->dec_off[id];
  size_t n = tk->dec_len[id];
  int rc = 0;
  if (st->npend) { /* complete the held sequence with the first bytes of this token */
    uint8_t tmp[16];
    size_t take = n < 8 ? n : 8, m = (size_t)st->npend + take;
    memcpy(tmp, st->pend, (size_t)st->npend);
    memcpy(tmp + st->npend, b, take);
    size_t used = emit_utf8(tmp, m, out, &rc, err);
    if (rc) return -1;
    if (used < (size_t)st->npend) { /* still incomplete: everything stays held */
      memcpy(st->pend, tmp + used, m - used);
      st->npend = (int)(m - used);
      return 0;
    }
    b += used - (size_t)st->npend;
    n -= used - (size_t)st->npend;
    st->npend = 0;
  }
  size_t used = emit_utf8(b, n, out, &rc, err);
  if (rc) return -1;
  memcpy(st->pend, b + used, n - used); /* < 4 bytes: an incomplete sequence */
  st->npend = (int)(n - used);
  return 0;
}

int qwen3_tok_stream_flush(qwen3_tok_stream *st, qwen3_buf *out, klab_err *err) {
  int rc = 0;
  if (st->npend) rc = buf_append(out, k_replacement, 3, err);
  st->npend = 0;
  return rc;
}

int qwen3_tok_decode(const qwen3_tokenizer *tk, const int32_t *ids, int64_t n, qwen3_buf *out, klab_err *err) {
  qwen3_tok_stream st = {{0}, 0};
  if (buf_reserve(out, 0, err)) return -1;
  out->p[out->n] = '\0';
  for (int64_t i = 0; i < n; i++)
    if (qwen3_tok_stream_feed(tk, &st, ids[i], out, err)) return -1;
  return qwen3_tok_stream_flush(&st, out, err);
}
