/* libFuzzer target: the safetensors header parser (engine/safetensors.c) on arbitrary file images.
 * Whatever the bytes, st_parse must return an error or a header whose every tensor lies inside the
 * data section; the loop below touches each tensor's first and last byte so ASan catches a range that
 * passed the checks but is not really inside the buffer. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "engine/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* A private copy sized exactly: reads past it are heap overflows ASan reports. */
  uint8_t *buf = malloc(size ? size : 1);
  if (!buf) return 0;
  if (size) memcpy(buf, data, size);
  st_file f;
  klab_err err;
  if (st_parse(buf, size, "fuzz.safetensors", &f, &err) == 0) {
    volatile uint8_t sink = 0;
    for (int i = 0; i < f.ntensors; i++) {
      const st_tensor *t = &f.tensors[i];
      if (st_find(&f, t->name) != t) abort(); /* lookup must find every parsed name */
      if (t->end > t->begin) sink ^= t->data[0] ^ t->data[t->end - t->begin - 1];
    }
    (void)sink;
    st_close(&f);
  }
  free(buf);
  return 0;
}
