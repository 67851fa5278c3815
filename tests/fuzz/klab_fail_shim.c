/* The fuzz targets link only the parsers, not the CUDA lab library: this is klab_fail_at as
 * harness/util.c defines it (kept identical in behaviour: prefix file:line, printf the rest). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "harness/klab.h"

int klab_fail_at(klab_err *err, const char *file, int line, const char *fmt, ...) {
  if (!err) return -1;
  const char *base = strrchr(file, '/');
  base = base ? base + 1 : file;
  int n = snprintf(err->msg, sizeof err->msg, "%s:%d: ", base, line);
  if (n < 0 || (size_t)n >= sizeof err->msg) return -1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg + n, sizeof err->msg - (size_t)n, fmt, ap);
  va_end(ap);
  return -1;
}
