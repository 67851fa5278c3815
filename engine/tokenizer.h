/* Byte-level BPE tokenizer (Qwen2/Qwen3, GPT-2 family), read from tokenizer.json, or from
 * vocab.json + merges.txt (+ tokenizer_config.json for the added tokens) when there is no tokenizer.json.
 *
 * encode: split the raw text at added tokens (leftmost, longest first; never normalised) -> NFC
 * (utf8proc) -> pre-tokenizer regex exactly as the file states it (PCRE2, UTF + UCP, JIT when available),
 * "Isolated" split -> GPT-2 byte-to-unicode map -> BPE by merge rank (pair hash map + heap, as
 * Hugging Face tokenizers' word.rs does) -> ids. decode: ids -> bytes, streaming: incomplete UTF-8 is
 * held until its last byte arrives; invalid bytes become U+FFFD (like from_utf8_lossy).
 * docs/tokenizer.md has the details and the measured throughput.
 * Not thread-safe for concurrent encode calls on one tokenizer (the word cache is shared). */
#ifndef QWEN3_TOKENIZER_H
#define QWEN3_TOKENIZER_H
#include <stddef.h>
#include <stdint.h>
#include "harness/klab.h"

typedef struct qwen3_tokenizer qwen3_tokenizer;

/* A growable byte / id buffer. */
typedef struct {
  char *p;
  size_t n, cap;
} qwen3_buf;
typedef struct qwen3_ids {
  int32_t *p;
  int64_t n, cap;
} qwen3_ids;
void qwen3_buf_free(qwen3_buf *b);
void qwen3_ids_free(qwen3_ids *v);
int qwen3_ids_push(qwen3_ids *v, int32_t id, klab_err *err);

/* Load from a folder: DIR/tokenizer.json, else DIR/vocab.json + DIR/merges.txt. */
int qwen3_tok_load_dir(const char *dir, qwen3_tokenizer **out, klab_err *err);
/* Load one tokenizer.json (text in memory; `what` names it in errors). */
int qwen3_tok_load_json(const char *text, size_t len, const char *what, qwen3_tokenizer **out, klab_err *err);
void qwen3_tok_free(qwen3_tokenizer *tk);

/* Append the ids of text[0..len) to ids. Invalid UTF-8 is an error naming the byte offset. */
int qwen3_tok_encode(qwen3_tokenizer *tk, const char *text, size_t len, qwen3_ids *ids, klab_err *err);

/* Number of ids (max id + 1) and id lookup of a token (added tokens and vocab); -1 if absent. */
int64_t qwen3_tok_vocab_size(const qwen3_tokenizer *tk);
int32_t qwen3_tok_find(const qwen3_tokenizer *tk, const char *token);
/* 1 for added tokens marked "special" (e.g. <|im_end|>). */
int qwen3_tok_is_special(const qwen3_tokenizer *tk, int32_t id);

/* Streaming decode: feed ids one at a time; completed UTF-8 text is appended to out. */
typedef struct {
  uint8_t pend[8];
  int npend;
} qwen3_tok_stream;
int qwen3_tok_stream_feed(const qwen3_tokenizer *tk, qwen3_tok_stream *st, int32_t id, qwen3_buf *out, klab_err *err);
/* End of stream: a held incomplete sequence becomes U+FFFD. */
int qwen3_tok_stream_flush(qwen3_tok_stream *st, qwen3_buf *out, klab_err *err);
/* Whole decode: feed every id, then flush. */
int qwen3_tok_decode(const qwen3_tokenizer *tk, const int32_t *ids, int64_t n, qwen3_buf *out, klab_err *err);

/* NFC of UTF-8 text (utf8proc), appended to out; invalid UTF-8 is an error. */
int qwen3_nfc(const char *text, size_t len, qwen3_buf *out, klab_err *err);
#endif
