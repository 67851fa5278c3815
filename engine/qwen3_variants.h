/* Which variant of each op the engine runs: read from a sweep bundle's winners.json (per GPU
 * architecture, per op and shape). The engine asks for (op, shape); the answer is the winner of that exact
 * shape, else the winner of the nearest shape of the same op in the file, else NULL (the caller then uses
 * the op's `optimized` variant and says so). */
#ifndef QWEN3_VARIANTS_H
#define QWEN3_VARIANTS_H
#include <stdint.h>
#include "harness/klab.h"

typedef struct qwen3_variants qwen3_variants;

/* Load path (a winners.json) for arch ("sm_90"). A file without that arch loads as empty (every pick
 * NULL) and *note says so. 0 ok, -1 with err (unreadable or malformed file). */
int qwen3_variants_load(const char *path, const char *arch, qwen3_variants **out, char *note, size_t note_len,
                        klab_err *err);
void qwen3_variants_free(qwen3_variants *v);

typedef struct {
  const char *variant; /* NULL: no entry for this op */
  int exact;           /* 1: this very shape was measured */
  char shape[128];     /* the measured shape the choice comes from ("M=1;N=6144;K=2560") */
} qwen3_variant_pick;

/* dims: names and values in the op's dim order (harness/model_shapes.c). */
qwen3_variant_pick qwen3_variants_pick(const qwen3_variants *v, const char *op, int ndims, const char *const *names,
                                       const int64_t *vals);
#endif
