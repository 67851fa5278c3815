/* The in-memory half of qwen3_config_load(): parse config.json / generation_config.json text.
 * Split out so the fuzz target and the tests can feed bytes without touching the file system.
 * (Implemented in engine/qwen3_config.c; the public API is engine/qwen3_config.h.) */
#ifndef QWEN3_CONFIG_PARSE_H
#define QWEN3_CONFIG_PARSE_H
#include <stddef.h>
#include "engine/qwen3_config.h"

/* Parse config.json text (len bytes, need not be NUL-terminated). `what` names the source in errors
 * (e.g. the path). Fills cfg completely (name "config.json"); does not run qwen3_config_validate. */
int qwen3_config_parse_json(const char *text, size_t len, const char *what, qwen3_config *cfg, klab_err *err);

/* Merge generation_config.json text into cfg: its eos_token_id (int or list) is added to the eos ids
 * (no duplicates), its bos_token_id replaces cfg's when present. */
int qwen3_generation_config_parse_json(const char *text, size_t len, const char *what, qwen3_config *cfg,
                                       klab_err *err);

/* Read a whole file (at most max_bytes) into a NUL-terminated malloc'd buffer. 0 ok, -1 with err. */
int qwen3_read_file(const char *path, size_t max_bytes, char **out, size_t *len, klab_err *err);
#endif
