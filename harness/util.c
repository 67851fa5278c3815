/* Small shared pieces: error formatting and enum names. */
#include <stdarg.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
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

const char *klab_dtype_name(klab_dtype dt) {
  switch (dt) {
    case KLAB_DT_BF16: return "bf16";
    case KLAB_DT_F32: return "f32";
    case KLAB_DT_I32: return "i32";
  }
  return "?";
}

size_t klab_dtype_size(klab_dtype dt) {
  switch (dt) {
    case KLAB_DT_BF16: return 2;
    case KLAB_DT_F32: return 4;
    case KLAB_DT_I32: return 4;
  }
  return 0;
}

const char *klab_variant_kind_name(klab_variant_kind k) {
  switch (k) {
    case KLAB_NAIVE: return "naive";
    case KLAB_OPTIMIZED: return "optimized";
    case KLAB_VENDOR: return "vendor";
    case KLAB_EXTRA: return "extra";
  }
  return "?";
}

const char *klab_status_name(klab_status s) {
  switch (s) {
    case KLAB_PASS: return "PASS";
    case KLAB_FAIL: return "FAIL";
    case KLAB_SKIP: return "SKIP";
    case KLAB_ERROR: return "ERROR";
  }
  return "?";
}

int klab_mkdir_p(const char *dir) {
  char buf[1024];
  if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) { errno = ENAMETOOLONG; return -1; }
  for (char *s = buf + 1;; s++) {
    if (*s == '/' || *s == 0) {
      char c = *s;
      *s = 0;
      if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
      *s = c;
      if (!c) break;
    }
  }
  struct stat st;
  if (stat(buf, &st) != 0) return -1;
  if (!S_ISDIR(st.st_mode)) { errno = ENOTDIR; return -1; }
  return 0;
}
