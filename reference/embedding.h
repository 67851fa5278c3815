/* CPU reference: gather rows of the embedding table by token id. */
#ifndef KLAB_REF_EMBEDDING_H
#define KLAB_REF_EMBEDDING_H
#include <stdint.h>
/* ids: [T]; table: [V,H] bf16 bits; out: [T,H] float.
 * Returns -1 when every id is in [0,V), else the position t of the first bad id (out untouched from there). */
int64_t ref_embedding(const int32_t *ids, int64_t T, const uint16_t *table, int64_t V, int64_t H, float *out);
#endif
