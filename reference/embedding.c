#include "reference/embedding.h"
#include "harness/bf16.h"

int64_t ref_embedding(const int32_t *ids, int64_t T, const uint16_t *table, int64_t V, int64_t H, float *out) {
  for (int64_t t = 0; t < T; t++) {
    int32_t id = ids[t];
    /* A bad id stops the gather: the caller reports the position instead of reading out of bounds. */
    if (id < 0 || (int64_t)id >= V) return t;
    const uint16_t *row = table + (int64_t)id * H;
    float *o = out + t * H;
    for (int64_t i = 0; i < H; i++) o[i] = klab_bf16_to_float(row[i]);
  }
  return -1;
}
