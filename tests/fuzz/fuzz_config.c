/* libFuzzer target: config.json and generation_config.json parsing (engine/qwen3_config.c) plus the
 * validation the engine relies on. Any input: an error or a config that passes validation. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "engine/qwen3_config.h"
#include "engine/qwen3_config_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *buf = malloc(size ? size : 1);
  if (!buf) return 0;
  if (size) memcpy(buf, data, size);
  qwen3_config c;
  klab_err err;
  if (qwen3_config_parse_json(buf, size, "fuzz/config.json", &c, &err) == 0) {
    if (qwen3_config_validate(&c, &err) == 0) {
      /* the sizes the engine computes from a valid config must not overflow */
      int64_t embed = c.vocab * c.hidden, layer = c.hidden * (c.heads + 2 * c.kv_heads) * c.head_dim;
      if (embed <= 0 || layer <= 0) abort();
    }
    qwen3_generation_config_parse_json(buf, size, "fuzz/generation_config.json", &c, &err);
  }
  free(buf);
  return 0;
}
