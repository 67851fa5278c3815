/* The tokenizer against the real Qwen vocabulary (../shared/qwen_tokenizer): every line of cases.jsonl
 * (ids from Hugging Face tokenizers), through all three ways of reading it (tokenizer.json with merges
 * as lists, the same with merges as "a b" strings, vocab.json + merges.txt), plus decode and the
 * random round trip decode(encode(s)) == NFC(s). Skips when the folder is absent. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>
#include "engine/qwen3_config_parse.h"
#include "engine/tokenizer.h"
#include "reference/rng.h"
#include "test_util.h"

static const char *NAME = "test_engine_tokenizer_qwen";

static int ids_equal(const qwen3_ids *v, const cJSON *arr) {
  if (cJSON_GetArraySize(arr) != v->n) return 0;
  int64_t i = 0;
  for (const cJSON *it = arr->child; it; it = it->next, i++)
    if ((int32_t)it->valuedouble != v->p[i]) return 0;
  return 1;
}

static void run_cases(qwen3_tokenizer *tk, const char *cases_path, const char *label) {
  char *text;
  size_t len;
  klab_err err = {{0}};
  CHECK_MSG(qwen3_read_file(cases_path, 1 << 24, &text, &len, &err) == 0, "%s", err.msg);
  if (!text) return;
  int n = 0;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    cJSON *o = cJSON_Parse(line);
    CHECK_MSG(o != NULL, "bad cases line: %.80s", line);
    if (!o) continue;
    const cJSON *t = cJSON_GetObjectItem(o, "text"), *ids = cJSON_GetObjectItem(o, "ids");
    qwen3_ids v = {0};
    int rc = qwen3_tok_encode(tk, t->valuestring, strlen(t->valuestring), &v, &err);
    CHECK_MSG(rc == 0, "%s: encode failed: %s", label, err.msg);
    CHECK_MSG(rc == 0 && ids_equal(&v, ids), "%s: ids differ for %.60s", label, t->valuestring);
    /* decode gives the normalised text back */
    qwen3_buf dec = {0}, nfc = {0};
    CHECK(qwen3_tok_decode(tk, v.p, v.n, &dec, &err) == 0);
    CHECK(qwen3_nfc(t->valuestring, strlen(t->valuestring), &nfc, &err) == 0);
    CHECK_MSG(dec.n == nfc.n && memcmp(dec.p, nfc.p, dec.n) == 0, "%s: decode differs for %.60s", label, t->valuestring);
    qwen3_buf_free(&dec);
    qwen3_buf_free(&nfc);
    qwen3_ids_free(&v);
    cJSON_Delete(o);
    n++;
  }
  printf("%s: %d cases checked\n", label, n);
  CHECK_MSG(n >= 10, "%s: only %d cases", cases_path, n);
  free(text);
}

/* A random code point from ranges that stress the pre-tokenizer and NFC: ASCII (letters, digits,
 * punctuation, whitespace, CR/LF), Latin-1 and combining marks (compose under NFC), Cyrillic, CJK,
 * Hangul jamo (compose), emoji, ZWJ. */
static uint32_t random_cp(uint64_t seed, uint64_t *ctr) {
  static const uint32_t ranges[][2] = {{0x20, 0x7e}, {0x20, 0x7e}, {0x09, 0x0d}, {0x30, 0x39}, {0xa0, 0xff},
                                       {0x300, 0x36f}, {0x400, 0x44f}, {0x4e00, 0x4fff}, {0x1100, 0x1112},
                                       {0x1161, 0x1175}, {0x1f600, 0x1f64f}, {0x200d, 0x200d}, {0x3040, 0x30ff}};
  int nr = (int)(sizeof ranges / sizeof ranges[0]);
  uint64_t r = klab_rand_u64(seed, (*ctr)++);
  const uint32_t *g = ranges[r % (uint64_t)nr];
  return g[0] + (uint32_t)((r >> 32) % (g[1] - g[0] + 1));
}

static size_t put_utf8(uint32_t cp, char *o) {
  if (cp < 0x80) { o[0] = (char)cp; return 1; }
  if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

static int valid_utf8(const char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t k = utf8proc_iterate((const uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
    if (k <= 0) return 0;
    i += (size_t)k;
  }
  return 1;
}

static void round_trip(qwen3_tokenizer *tk) {
  klab_err err = {{0}};
  int bad = 0;
  uint64_t ctr = 0;
  for (int s = 0; s < 1500; s++) {
    char text[1024];
    size_t n = 0;
    int len = 1 + (int)(klab_rand_u64(77, ctr++) % 120);
    for (int i = 0; i < len; i++) n += put_utf8(random_cp(77 + (uint64_t)s, &ctr), text + n);
    qwen3_ids v = {0};
    qwen3_buf dec = {0}, nfc = {0};
    int ok = qwen3_tok_encode(tk, text, n, &v, &err) == 0 && qwen3_tok_decode(tk, v.p, v.n, &dec, &err) == 0 &&
             qwen3_nfc(text, n, &nfc, &err) == 0 && dec.n == nfc.n && memcmp(dec.p, nfc.p, nfc.n) == 0;
    /* Streaming one id at a time gives the same bytes, and never a partial character per step. */
    qwen3_tok_stream st = {{0}, 0};
    qwen3_buf streamed = {0};
    for (int64_t i = 0; ok && i < v.n; i++) {
      size_t before = streamed.n;
      ok = qwen3_tok_stream_feed(tk, &st, v.p[i], &streamed, &err) == 0 &&
           valid_utf8(streamed.p ? streamed.p + before : "", streamed.n - before);
    }
    ok = ok && qwen3_tok_stream_flush(&st, &streamed, &err) == 0 && streamed.n == dec.n &&
         memcmp(streamed.p, dec.p, dec.n) == 0 && st.npend == 0;
    if (!ok && bad++ < 5) fprintf(stderr, "round trip failed for sample %d (%zu bytes): %s\n", s, n, err.msg);
    qwen3_ids_free(&v);
    qwen3_buf_free(&dec);
    qwen3_buf_free(&nfc);
    qwen3_buf_free(&streamed);
  }
  CHECK_MSG(bad == 0, "%d of 1500 random strings failed the round trip", bad);
}

/* tokenizer.json with the merges rewritten as "a b" strings (the older, most common form). */
static qwen3_tokenizer *load_string_merges(const char *path) {
  char *text;
  size_t len;
  klab_err err = {{0}};
  if (qwen3_read_file(path, (size_t)512 << 20, &text, &len, &err)) return NULL;
  cJSON *root = cJSON_ParseWithLength(text, len);
  free(text);
  if (!root) return NULL;
  cJSON *merges = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "model"), "merges");
  cJSON *strs = cJSON_CreateArray();
  for (cJSON *it = merges->child; it; it = it->next) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s %s", it->child->valuestring, it->child->next->valuestring);
    cJSON_AddItemToArray(strs, cJSON_CreateString(buf));
  }
  cJSON_ReplaceItemInObject(cJSON_GetObjectItem(root, "model"), "merges", strs);
  char *out = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  qwen3_tokenizer *tk = NULL;
  CHECK_MSG(qwen3_tok_load_json(out, strlen(out), "string-merges tokenizer.json", &tk, &err) == 0, "%s", err.msg);
  free(out);
  return tk;
}

/* A folder holding only vocab.json, merges.txt, tokenizer_config.json (links to the shared files). */
static qwen3_tokenizer *load_vocab_merges(const char *shared) {
  char dir[512], src[1024], dst[1024];
  snprintf(dir, sizeof dir, "%s/test_tok_vm", KLAB_BINARY_DIR);
  mkdir(dir, 0755);
  const char *files[] = {"vocab.json", "merges.txt", "tokenizer_config.json"};
  for (int i = 0; i < 3; i++) {
    snprintf(src, sizeof src, "%s/%s", shared, files[i]);
    snprintf(dst, sizeof dst, "%s/%s", dir, files[i]);
    unlink(dst);
    CHECK(symlink(src, dst) == 0);
  }
  qwen3_tokenizer *tk = NULL;
  klab_err err = {{0}};
  CHECK_MSG(qwen3_tok_load_dir(dir, &tk, &err) == 0, "%s", err.msg);
  return tk;
}

int main(void) {
  char shared[512], cases[600], tj[600];
  snprintf(shared, sizeof shared, "%s/qwen_tokenizer", KLAB_SHARED_DIR);
  snprintf(cases, sizeof cases, "%s/cases.jsonl", shared);
  snprintf(tj, sizeof tj, "%s/tokenizer.json", shared);
  if (access(cases, R_OK) != 0 || access(tj, R_OK) != 0) {
    char why[700];
    snprintf(why, sizeof why, "the real Qwen tokenizer is absent (%s): set KLAB_SHARED_DIR at configure time", shared);
    klab_test_skip(NAME, why);
  }
  klab_err err = {{0}};
  qwen3_tokenizer *tk = NULL;
  CHECK_MSG(qwen3_tok_load_dir(shared, &tk, &err) == 0, "%s", err.msg);
  if (!tk) return klab_test_finish(NAME);
  CHECK(qwen3_tok_vocab_size(tk) == 151669);
  CHECK(qwen3_tok_find(tk, "<|im_end|>") == 151645);
  CHECK(qwen3_tok_find(tk, "<|endoftext|>") == 151643);
  CHECK(qwen3_tok_is_special(tk, 151645));
  CHECK(!qwen3_tok_is_special(tk, 9707));
  run_cases(tk, cases, "tokenizer.json (list merges)");
  /* 400 random strings (every kind of whitespace, combining marks, scripts, emoji, special tokens) with
   * Hugging Face tokenizers' ids: engine/tools/hf_tokenizer_cases.py */
  char random_cases[700];
  snprintf(random_cases, sizeof random_cases, "%s/tests/data/engine/tokenizer_random_cases.jsonl", KLAB_SOURCE_DIR);
  run_cases(tk, random_cases, "random cases (tokenizer.json)");
  round_trip(tk);
  qwen3_tok_free(tk);

  tk = load_string_merges(tj);
  if (tk) run_cases(tk, cases, "tokenizer.json (string merges)");
  qwen3_tok_free(tk);

  tk = load_vocab_merges(shared);
  if (tk) run_cases(tk, cases, "vocab.json + merges.txt");
  if (tk) run_cases(tk, random_cases, "random cases (vocab.json + merges.txt)");
  qwen3_tok_free(tk);
  return klab_test_finish(NAME);
}
