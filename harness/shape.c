/* Shapes: "M=1,N=6144,K=2560" <-> int64 dims in the op's order. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "harness/klab.h"

static int dim_index(const klab_op *op, const char *name, size_t len) {
  for (int i = 0; i < op->ndims; i++)
    if (strlen(op->dim_names[i]) == len && strncmp(op->dim_names[i], name, len) == 0) return i;
  return -1;
}

static void dims_list(const klab_op *op, char *buf, size_t len) {
  buf[0] = 0;
  for (int i = 0; i < op->ndims; i++) {
    size_t used = strlen(buf);
    snprintf(buf + used, len - used, "%s%s", i ? "," : "", op->dim_names[i]);
  }
}

int klab_parse_shape(const klab_op *op, const char *text, int64_t *shape, klab_err *err) {
  char dims[128];
  dims_list(op, dims, sizeof dims);
  int seen[KLAB_MAX_DIMS] = {0};
  const char *p = text;
  if (!text || !*text) return klab_fail(err, "%s: empty shape (expected %s)", op->name, dims);
  while (*p) {
    const char *eq = strchr(p, '=');
    const char *end = p + strcspn(p, ",;");
    if (!eq || eq > end) return klab_fail(err, "%s: bad shape item '%.*s' in '%s' (expected NAME=VALUE for %s)", op->name, (int)(end - p), p, text, dims);
    int d = dim_index(op, p, (size_t)(eq - p));
    if (d < 0) return klab_fail(err, "%s: unknown dim '%.*s' in '%s' (dims: %s)", op->name, (int)(eq - p), p, text, dims);
    if (seen[d]) return klab_fail(err, "%s: dim %s given twice in '%s'", op->name, op->dim_names[d], text);
    char *num_end;
    errno = 0;
    long long v = strtoll(eq + 1, &num_end, 10);
    if (num_end == eq + 1 || num_end != end || errno == ERANGE)
      return klab_fail(err, "%s: dim %s: '%.*s' is not an integer", op->name, op->dim_names[d], (int)(end - eq - 1), eq + 1);
    /* Zero is a real value for some dims (P0: tokens already cached); the op's validate() decides. */
    if (v < 0) return klab_fail(err, "%s: dim %s must be >= 0, got %lld", op->name, op->dim_names[d], v);
    shape[d] = v;
    seen[d] = 1;
    p = *end ? end + 1 : end;
  }
  for (int i = 0; i < op->ndims; i++)
    if (!seen[i]) return klab_fail(err, "%s: dim %s missing in '%s' (expected %s)", op->name, op->dim_names[i], text, dims);
  char why[256] = "";
  if (op->validate && !op->validate(shape, why, sizeof why))
    return klab_fail(err, "%s: shape '%s' rejected: %s", op->name, text, why);
  return 0;
}

void klab_format_shape(const klab_op *op, const int64_t *shape, char sep, char *buf, size_t len) {
  if (len) buf[0] = 0;
  for (int i = 0; i < op->ndims; i++) {
    size_t used = strlen(buf);
    if (used + 1 >= len) return;
    if (i) snprintf(buf + used, len - used, "%c%s=%lld", sep, op->dim_names[i], (long long)shape[i]);
    else snprintf(buf + used, len - used, "%s=%lld", op->dim_names[i], (long long)shape[i]);
  }
}

int64_t klab_shape_dim(const klab_op *op, const int64_t *shape, const char *dim) {
  int d = dim_index(op, dim, strlen(dim));
  return d < 0 ? -1 : shape[d];
}
