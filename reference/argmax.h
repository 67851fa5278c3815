/* CPU reference: index of the maximum, lowest index on ties; a NaN counts as the maximum (first NaN
 * wins), like torch.argmax. */
#ifndef KLAB_REF_ARGMAX_H
#define KLAB_REF_ARGMAX_H
#include <stdint.h>
int64_t ref_argmax(const float *x, int64_t n);
#endif
