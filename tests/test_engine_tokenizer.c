/* Tokenizer mechanics on a small synthetic byte-level BPE (always runs, no shared data): merge order,
 * added tokens (longest first), NFC, invalid UTF-8, streaming decode of partial UTF-8, and clear errors
 * for malformed tokenizer files. The real Qwen vocabulary is test_engine_tokenizer_qwen. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "engine/tokenizer.h"
#include "test_util.h"

/* GPT-2 byte -> code point, UTF-8 encoded (what a byte-level vocabulary spells byte b as). */
static void byte_sym(int b, char *out) {
  int n = 0, cp = -1;
  for (int x = 0; x < 256; x++) {
    int keep = (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF);
    int c = keep ? x : 256 + n++;
    if (x == b) cp = c;
  }
  if (cp < 0x80) {
    out[0] = (char)cp;
    out[1] = 0;
  } else {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    out[2] = 0;
  }
}

/* vocab: bytes 0..255 as ids 0..255 (id = byte), then he=256, ll=257, hell=258, Ġw=259;
 * added: <a>=260, <a><b>=261 (special). */
static cJSON *base_json(void) {
  cJSON *r = cJSON_CreateObject();
  cJSON *added = cJSON_AddArrayToObject(r, "added_tokens");
  const char *ac[] = {"<a>", "<a><b>"};
  for (int i = 0; i < 2; i++) {
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "id", 260 + i);
    cJSON_AddStringToObject(a, "content", ac[i]);
    cJSON_AddBoolToObject(a, "special", 1);
    cJSON_AddBoolToObject(a, "lstrip", 0);
    cJSON_AddItemToArray(added, a);
  }
  cJSON *norm = cJSON_AddObjectToObject(r, "normalizer");
  cJSON_AddStringToObject(norm, "type", "NFC");
  cJSON *pre = cJSON_AddObjectToObject(r, "pre_tokenizer");
  cJSON_AddStringToObject(pre, "type", "Sequence");
  cJSON *list = cJSON_AddArrayToObject(pre, "pretokenizers");
  cJSON *split = cJSON_CreateObject();
  cJSON_AddStringToObject(split, "type", "Split");
  cJSON_AddStringToObject(cJSON_AddObjectToObject(split, "pattern"), "Regex", " ?\\p{L}+|\\p{N}|\\s+|[^\\s\\p{L}\\p{N}]+");
  cJSON_AddStringToObject(split, "behavior", "Isolated");
  cJSON_AddFalseToObject(split, "invert");
  cJSON_AddItemToArray(list, split);
  cJSON *bl = cJSON_CreateObject();
  cJSON_AddStringToObject(bl, "type", "ByteLevel");
  cJSON_AddFalseToObject(bl, "add_prefix_space");
  cJSON_AddFalseToObject(bl, "use_regex");
  cJSON_AddItemToArray(list, bl);
  cJSON_AddStringToObject(cJSON_AddObjectToObject(r, "decoder"), "type", "ByteLevel");
  cJSON *model = cJSON_AddObjectToObject(r, "model");
  cJSON_AddStringToObject(model, "type", "BPE");
  cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
  char s[4];
  for (int b = 0; b < 256; b++) {
    byte_sym(b, s);
    cJSON_AddNumberToObject(vocab, s, b);
  }
  cJSON_AddNumberToObject(vocab, "he", 256);
  cJSON_AddNumberToObject(vocab, "ll", 257);
  cJSON_AddNumberToObject(vocab, "hell", 258);
  cJSON_AddNumberToObject(vocab, "\xC4\xA0w", 259); /* Ġw */
  cJSON *merges = cJSON_AddArrayToObject(model, "merges");
  cJSON_AddItemToArray(merges, cJSON_CreateString("h e"));
  const char *pair[2] = {"l", "l"};
  cJSON_AddItemToArray(merges, cJSON_CreateStringArray(pair, 2)); /* the list form, mixed in */
  cJSON_AddItemToArray(merges, cJSON_CreateString("he ll"));
  cJSON_AddItemToArray(merges, cJSON_CreateString("\xC4\xA0 w"));
  return r;
}

static qwen3_tokenizer *load(cJSON *j, klab_err *err) {
  char *s = cJSON_PrintUnformatted(j);
  qwen3_tokenizer *tk = NULL;
  qwen3_tok_load_json(s, strlen(s), "t.json", &tk, err);
  free(s);
  return tk;
}

static void expect_ids(qwen3_tokenizer *tk, const char *text, const int32_t *want, int n) {
  qwen3_ids v = {0};
  klab_err err = {{0}};
  int rc = qwen3_tok_encode(tk, text, strlen(text), &v, &err);
  CHECK_MSG(rc == 0, "encode '%s': %s", text, err.msg);
  int same = rc == 0 && v.n == n;
  for (int i = 0; same && i < n; i++) same = v.p[i] == want[i];
  CHECK_MSG(same, "ids of '%s' differ (got %lld ids)", text, (long long)v.n);
  qwen3_ids_free(&v);
}

static void test_encode(void) {
  cJSON *j = base_json();
  klab_err err = {{0}};
  qwen3_tokenizer *tk = load(j, &err);
  cJSON_Delete(j);
  CHECK_MSG(tk != NULL, "%s", err.msg);
  if (!tk) return;
  CHECK(qwen3_tok_vocab_size(tk) == 262);
  CHECK(qwen3_tok_find(tk, "<a><b>") == 261 && qwen3_tok_find(tk, "hell") == 258 && qwen3_tok_find(tk, "zz") == -1);
  expect_ids(tk, "hello", (int32_t[]){258, 'o'}, 2);                  /* h e -> he, l l -> ll, he ll -> hell */
  expect_ids(tk, "hello world", (int32_t[]){258, 'o', 259, 'o', 'r', 'l', 'd'}, 7);
  expect_ids(tk, "lll", (int32_t[]){257, 'l'}, 2);                    /* equal ranks: leftmost first */
  expect_ids(tk, "<a><b>x<a>", (int32_t[]){261, 'x', 260}, 3);        /* added tokens, longest first */
  expect_ids(tk, "<a", (int32_t[]){'<', 'a'}, 2);
  expect_ids(tk, "e\xCC\x81", (int32_t[]){0xC3, 0xA9}, 2);            /* NFC: e + U+0301 -> U+00E9 */
  expect_ids(tk, "", NULL, 0);
  qwen3_ids v = {0};
  CHECK(qwen3_tok_encode(tk, "ab\xFF", 3, &v, &err) != 0 && strstr(err.msg, "invalid UTF-8 at byte 2"));
  CHECK(qwen3_tok_encode(tk, "<a>\xC3", 4, &v, &err) != 0 && strstr(err.msg, "byte 3"));
  qwen3_ids_free(&v);
  /* NUL bytes are text like any other */
  CHECK(qwen3_tok_encode(tk, "a\0b", 3, &v, &err) == 0 && v.n == 3 && v.p[1] == 0);
  qwen3_ids_free(&v);

  /* streaming decode: é arrives as two byte tokens; nothing is emitted until it is complete */
  qwen3_tok_stream st = {{0}, 0};
  qwen3_buf out = {0};
  CHECK(qwen3_tok_stream_feed(tk, &st, 0xC3, &out, &err) == 0 && out.n == 0 && st.npend == 1);
  CHECK(qwen3_tok_stream_feed(tk, &st, 0xA9, &out, &err) == 0 && out.n == 2 && memcmp(out.p, "\xC3\xA9", 2) == 0);
  /* a 4-byte emoji over four tokens, then a stray continuation byte -> U+FFFD, then text */
  out.n = 0;
  int32_t emoji[] = {0xF0, 0x9F, 0x98, 0x80, 0x80, 258};
  size_t after[] = {0, 0, 0, 4, 7, 11};
  for (int i = 0; i < 6; i++) {
    CHECK(qwen3_tok_stream_feed(tk, &st, emoji[i], &out, &err) == 0);
    CHECK_MSG(out.n == after[i], "after token %d: %zu bytes", i, out.n);
  }
  CHECK(memcmp(out.p, "\xF0\x9F\x98\x80\xEF\xBF\xBDhell", 11) == 0);
  /* held incomplete sequence at the end becomes U+FFFD */
  out.n = 0;
  CHECK(qwen3_tok_stream_feed(tk, &st, 0xE2, &out, &err) == 0 && out.n == 0);
  CHECK(qwen3_tok_stream_flush(&st, &out, &err) == 0 && out.n == 3 && memcmp(out.p, "\xEF\xBF\xBD", 3) == 0);
  /* an invalid continuation after a lead byte: U+FFFD, then the byte itself */
  out.n = 0;
  CHECK(qwen3_tok_stream_feed(tk, &st, 0xC3, &out, &err) == 0);
  CHECK(qwen3_tok_stream_feed(tk, &st, 'A', &out, &err) == 0 && out.n == 4 && memcmp(out.p, "\xEF\xBF\xBD" "A", 4) == 0);
  CHECK(qwen3_tok_stream_feed(tk, &st, 9999, &out, &err) != 0 && strstr(err.msg, "9999"));
  CHECK(qwen3_tok_decode(tk, (int32_t[]){261, 258, 'o'}, 3, &out, &err) == 0);
  qwen3_buf_free(&out);
  qwen3_tok_free(tk);
}

/* Mutate the base file and require an error containing `want`. */
typedef void (*mutator)(cJSON *root);
static void expect_load_error(mutator mut, const char *want) {
  cJSON *j = base_json();
  mut(j);
  klab_err err = {{0}};
  qwen3_tokenizer *tk = load(j, &err);
  cJSON_Delete(j);
  CHECK_MSG(tk == NULL, "accepted a malformed tokenizer (expected '%s')", want);
  qwen3_tok_free(tk);
  CHECK_MSG(strstr(err.msg, "t.json") && strstr(err.msg, want), "error '%s' lacks '%s'", err.msg, want);
}

static cJSON *model_of(cJSON *r) { return cJSON_GetObjectItem(r, "model"); }
static void m_type(cJSON *r) { cJSON_ReplaceItemInObject(model_of(r), "type", cJSON_CreateString("WordPiece")); }
static void m_merge_oov(cJSON *r) {
  cJSON_AddItemToArray(cJSON_GetObjectItem(model_of(r), "merges"), cJSON_CreateString("he zz"));
}
static void m_merge_nospace(cJSON *r) {
  cJSON_AddItemToArray(cJSON_GetObjectItem(model_of(r), "merges"), cJSON_CreateString("hell"));
}
static void m_merge_type(cJSON *r) { cJSON_AddItemToArray(cJSON_GetObjectItem(model_of(r), "merges"), cJSON_CreateNumber(3)); }
static void m_no_byte(cJSON *r) { cJSON_DeleteItemFromObject(cJSON_GetObjectItem(model_of(r), "vocab"), "A"); }
static void m_bad_id(cJSON *r) {
  cJSON_ReplaceItemInObject(cJSON_GetObjectItem(model_of(r), "vocab"), "A", cJSON_CreateString("65"));
}
static void m_nfkc(cJSON *r) {
  cJSON_ReplaceItemInObject(cJSON_GetObjectItem(r, "normalizer"), "type", cJSON_CreateString("NFKC"));
}
static void m_pretok(cJSON *r) {
  cJSON *p = cJSON_CreateObject();
  cJSON_AddStringToObject(p, "type", "Whitespace");
  cJSON_ReplaceItemInObject(r, "pre_tokenizer", p);
}
static void m_regex(cJSON *r) {
  cJSON *split = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "pre_tokenizer"), "pretokenizers"), 0);
  cJSON_ReplaceItemInObject(cJSON_GetObjectItem(split, "pattern"), "Regex", cJSON_CreateString("(\\p{L}+"));
}
static void m_behavior(cJSON *r) {
  cJSON *split = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "pre_tokenizer"), "pretokenizers"), 0);
  cJSON_ReplaceItemInObject(split, "behavior", cJSON_CreateString("Removed"));
}
static void m_lstrip(cJSON *r) {
  cJSON_ReplaceItemInObject(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "added_tokens"), 0), "lstrip", cJSON_CreateTrue());
}
static void m_added_id(cJSON *r) {
  cJSON_ReplaceItemInObject(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "added_tokens"), 0), "id", cJSON_CreateNumber(-4));
}
static void m_decoder(cJSON *r) {
  cJSON_ReplaceItemInObject(cJSON_GetObjectItem(r, "decoder"), "type", cJSON_CreateString("WordPiece"));
}
static void m_no_model(cJSON *r) { cJSON_DeleteItemFromObject(r, "model"); }
static void m_byte_fallback(cJSON *r) { cJSON_AddTrueToObject(model_of(r), "byte_fallback"); }

static void test_malformed(void) {
  klab_err err = {{0}};
  qwen3_tokenizer *tk = NULL;
  CHECK(qwen3_tok_load_json("{\"model\":", 9, "t.json", &tk, &err) != 0 && strstr(err.msg, "t.json: not valid JSON"));
  expect_load_error(m_type, "model type");
  expect_load_error(m_merge_oov, "\"he zz\"");
  expect_load_error(m_merge_nospace, "not two tokens");
  expect_load_error(m_merge_type, "merge 4");
  expect_load_error(m_no_byte, "byte 0x41");
  expect_load_error(m_bad_id, "\"A\"");
  expect_load_error(m_nfkc, "NFKC");
  expect_load_error(m_pretok, "Whitespace");
  expect_load_error(m_regex, "does not compile");
  expect_load_error(m_behavior, "Isolated");
  expect_load_error(m_lstrip, "lstrip");
  expect_load_error(m_added_id, "\"id\"");
  expect_load_error(m_decoder, "decoder");
  expect_load_error(m_no_model, "\"model\"");
  expect_load_error(m_byte_fallback, "byte_fallback");
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  CHECK_MSG(f != NULL, "cannot write %s", path);
  if (!f) return;
  fputs(text, f);
  fclose(f);
}

/* vocab.json + merges.txt: a good folder, a broken merges line, an empty folder. */
static void test_vocab_merges(void) {
  char dir[512], p[600];
  snprintf(dir, sizeof dir, "%s/engine_tok_vm", KLAB_BINARY_DIR);
  mkdir(dir, 0755);
  cJSON *j = base_json();
  char *vocab = cJSON_PrintUnformatted(cJSON_GetObjectItem(model_of(j), "vocab"));
  snprintf(p, sizeof p, "%s/tokenizer.json", dir);
  unlink(p);
  snprintf(p, sizeof p, "%s/vocab.json", dir);
  write_file(p, vocab);
  snprintf(p, sizeof p, "%s/merges.txt", dir);
  write_file(p, "#version: 0.2\nh e\nl l\nhe ll\n\xC4\xA0 w\n");
  snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
  write_file(p, "{\"added_tokens_decoder\": {\"260\": {\"content\": \"<a>\", \"special\": true}}}");
  qwen3_tokenizer *tk = NULL;
  klab_err err = {{0}};
  CHECK_MSG(qwen3_tok_load_dir(dir, &tk, &err) == 0, "%s", err.msg);
  if (tk) {
    expect_ids(tk, "hello<a>", (int32_t[]){258, 'o', 260}, 3);
    CHECK(qwen3_tok_is_special(tk, 260));
    qwen3_tok_free(tk);
  }
  snprintf(p, sizeof p, "%s/merges.txt", dir);
  write_file(p, "h e\nl l x\n");
  CHECK(qwen3_tok_load_dir(dir, &tk, &err) != 0 && strstr(err.msg, "merges.txt: line 2"));
  unlink(p);
  CHECK(qwen3_tok_load_dir(dir, &tk, &err) != 0 && strstr(err.msg, "no tokenizer.json"));
  free(vocab);
  cJSON_Delete(j);
}

int main(void) {
  test_encode();
  test_malformed();
  test_vocab_merges();
  return klab_test_finish("test_engine_tokenizer");
}
