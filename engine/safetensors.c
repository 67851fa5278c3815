/* safetensors header parsing and checking (format: https://github.com/huggingface/safetensors). */
#define _POSIX_C_SOURCE 200809L
#include "engine/safetensors.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

size_t st_dtype_size(st_dtype dt) {
  switch (dt) {
    case ST_BF16: return 2;
    case ST_F16: return 2;
    case ST_F32: return 4;
    default: return 0;
  }
}

const char *st_dtype_label(st_dtype dt) {
  switch (dt) {
    case ST_BF16: return "BF16";
    case ST_F16: return "F16";
    case ST_F32: return "F32";
    default: return "other";
  }
}

/* Element sizes of the dtypes the format defines, so byte ranges of tensors we do not use can still
 * be checked. 0: unknown dtype (refused). */
static size_t any_dtype_size(const char *s, st_dtype *dt) {
  static const struct {
    const char *name;
    size_t size;
    st_dtype dt;
  } k[] = {{"BF16", 2, ST_BF16}, {"F16", 2, ST_F16},   {"F32", 4, ST_F32},   {"F64", 8, ST_OTHER},
           {"I64", 8, ST_OTHER}, {"I32", 4, ST_OTHER}, {"I16", 2, ST_OTHER}, {"I8", 1, ST_OTHER},
           {"U8", 1, ST_OTHER},  {"BOOL", 1, ST_OTHER}, {"U16", 2, ST_OTHER}, {"U32", 4, ST_OTHER},
           {"U64", 8, ST_OTHER}, {"F8_E4M3", 1, ST_OTHER}, {"F8_E5M2", 1, ST_OTHER}};
  for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
    if (strcmp(s, k[i].name) == 0) {
      *dt = k[i].dt;
      return k[i].size;
    }
  return 0;
}

/* Non-negative integral JSON number that fits the range, or -1. */
static int json_u64(const cJSON *it, uint64_t max, uint64_t *out) {
  if (!cJSON_IsNumber(it)) return -1;
  double v = it->valuedouble;
  if (!(v >= 0) || v != floor(v) || v > (double)max) return -1;
  *out = (uint64_t)v;
  return 0;
}

static int parse_shape(const cJSON *shape, const char *what, st_tensor *t, uint64_t *nelem, klab_err *err) {
  if (!cJSON_IsArray(shape)) return klab_fail(err, "%s: tensor '%s': \"shape\" must be a list", what, t->name);
  int nd = cJSON_GetArraySize(shape);
  if (nd > ST_MAX_DIMS) return klab_fail(err, "%s: tensor '%s': %d dims (max %d)", what, t->name, nd, ST_MAX_DIMS);
  uint64_t n = 1; /* a zero dim makes n 0 and keeps it there */
  for (int d = 0; d < nd; d++) {
    uint64_t v;
    /* 2^40 per dim and 2^50 in all keep the products below in uint64 without overflow. */
    if (json_u64(cJSON_GetArrayItem(shape, d), (uint64_t)1 << 40, &v))
      return klab_fail(err, "%s: tensor '%s': shape[%d] is not a non-negative integer", what, t->name, d);
    t->shape[d] = (int64_t)v;
    if (v != 0 && n > ((uint64_t)1 << 50) / v)  /* checked before multiplying: no wrap-around */
      return klab_fail(err, "%s: tensor '%s': too many elements", what, t->name);
    n *= v;
  }
  t->ndim = nd;
  *nelem = n;
  return 0;
}

static int parse_tensor(const cJSON *item, const char *what, uint64_t data_len, st_tensor *t, klab_err *err) {
  size_t nlen = strlen(item->string);
  if (nlen == 0 || nlen >= ST_MAX_NAME)
    return klab_fail(err, "%s: tensor name of length %zu (must be 1..%d)", what, nlen, ST_MAX_NAME - 1);
  memcpy(t->name, item->string, nlen + 1);
  if (!cJSON_IsObject(item)) return klab_fail(err, "%s: tensor '%s': entry must be an object", what, t->name);
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
  if (!cJSON_IsString(dt)) return klab_fail(err, "%s: tensor '%s': missing or non-string \"dtype\"", what, t->name);
  size_t esize = any_dtype_size(dt->valuestring, &t->dtype);
  if (!esize) return klab_fail(err, "%s: tensor '%s': unknown dtype \"%.20s\"", what, t->name, dt->valuestring);
  snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dt->valuestring);
  uint64_t nelem = 0;
  if (parse_shape(cJSON_GetObjectItemCaseSensitive(item, "shape"), what, t, &nelem, err)) return -1;
  const cJSON *off = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
  if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
      json_u64(cJSON_GetArrayItem(off, 0), (uint64_t)1 << 62, &t->begin) ||
      json_u64(cJSON_GetArrayItem(off, 1), (uint64_t)1 << 62, &t->end))
    return klab_fail(err, "%s: tensor '%s': \"data_offsets\" must be [begin, end] of non-negative integers", what,
                     t->name);
  if (t->begin > t->end)
    return klab_fail(err, "%s: tensor '%s': data_offsets begin %llu > end %llu", what, t->name,
                     (unsigned long long)t->begin, (unsigned long long)t->end);
  if (t->end > data_len)
    return klab_fail(err, "%s: tensor '%s': data_offsets end %llu past the end of the data (%llu bytes: truncated file?)",
                     what, t->name, (unsigned long long)t->end, (unsigned long long)data_len);
  if (t->end - t->begin != nelem * esize)
    return klab_fail(err, "%s: tensor '%s': byte range holds %llu bytes but %s x %llu elements need %llu", what,
                     t->name, (unsigned long long)(t->end - t->begin), t->dtype_name, (unsigned long long)nelem,
                     (unsigned long long)(nelem * esize));
  return 0;
}

static int by_begin(const void *a, const void *b) {
  const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return (x->end > y->end) - (x->end < y->end);
}

static int by_name(const void *a, const void *b) {
  return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

/* Sort by name (for lookup) and refuse duplicate names and overlapping byte ranges. */
static int check_layout(st_file *f, const char *what, klab_err *err) {
  int n = f->ntensors;
  qsort(f->tensors, (size_t)n, sizeof *f->tensors, by_name);
  for (int i = 1; i < n; i++)
    if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0)
      return klab_fail(err, "%s: tensor '%s' appears twice in the header", what, f->tensors[i].name);
  if (n < 2) return 0;
  const st_tensor **order = malloc((size_t)n * sizeof *order);
  if (!order) return klab_fail(err, "%s: out of memory", what);
  for (int i = 0; i < n; i++) order[i] = &f->tensors[i];
  qsort(order, (size_t)n, sizeof *order, by_begin);
  /* Compare each non-empty range with the one reaching furthest so far (not just its neighbour: an
   * empty tensor in between must not hide an overlap). */
  int rc = 0;
  const st_tensor *reach = NULL;
  for (int i = 0; i < n && !rc; i++) {
    const st_tensor *t = order[i];
    if (t->begin == t->end) continue;
    if (reach && t->begin < reach->end)
      rc = klab_fail(err, "%s: tensors '%s' [%llu,%llu) and '%s' [%llu,%llu) overlap", what, reach->name,
                     (unsigned long long)reach->begin, (unsigned long long)reach->end, t->name,
                     (unsigned long long)t->begin, (unsigned long long)t->end);
    if (!reach || t->end > reach->end) reach = t;
  }
  free(order);
  return rc;
}

static int parse_header_json(const char *json, size_t len, const char *what, st_file *f, klab_err *err) {
  cJSON *root = cJSON_ParseWithLength(json, len);
  if (!root) return klab_fail(err, "%s: header is not valid JSON", what);
  int rc = -1;
  if (!cJSON_IsObject(root)) {
    klab_fail(err, "%s: header must be a JSON object", what);
    goto done;
  }
  int n = 0;
  for (const cJSON *it = root->child; it; it = it->next) n += strcmp(it->string, "__metadata__") != 0;
  f->tensors = calloc(n ? (size_t)n : 1, sizeof *f->tensors);
  if (!f->tensors) {
    klab_fail(err, "%s: out of memory for %d tensors", what, n);
    goto done;
  }
  for (const cJSON *it = root->child; it; it = it->next) {
    if (strcmp(it->string, "__metadata__") == 0) {
      if (!cJSON_IsObject(it)) {
        klab_fail(err, "%s: \"__metadata__\" must be an object", what);
        goto done;
      }
      continue;
    }
    if (parse_tensor(it, what, f->data_len, &f->tensors[f->ntensors], err)) goto done;
    f->tensors[f->ntensors].data = f->data + f->tensors[f->ntensors].begin;
    f->ntensors++;
  }
  rc = check_layout(f, what, err);
done:
  cJSON_Delete(root);
  return rc;
}

int st_parse(const uint8_t *base, size_t size, const char *what, st_file *f, klab_err *err) {
  memset(f, 0, sizeof *f);
  snprintf(f->path, sizeof f->path, "%s", what);
  f->base = base;
  f->size = size;
  if (size < 8) return klab_fail(err, "%s: %zu bytes: too short for a safetensors file", what, size);
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--) hl = (hl << 8) | base[i];
  if (hl > size - 8)
    return klab_fail(err, "%s: header length %llu is larger than the file (%zu bytes)", what, (unsigned long long)hl,
                     size);
  if (hl > ST_MAX_HEADER_BYTES)
    return klab_fail(err, "%s: header length %llu above the %llu-byte limit", what, (unsigned long long)hl,
                     (unsigned long long)ST_MAX_HEADER_BYTES);
  f->header_len = hl;
  f->data = base + 8 + hl;
  f->data_len = size - 8 - hl;
  if (parse_header_json((const char *)base + 8, (size_t)hl, what, f, err)) {
    free(f->tensors);
    f->tensors = NULL;
    f->ntensors = 0;
    return -1;
  }
  return 0;
}

int st_open(const char *path, st_file *f, klab_err *err) {
  memset(f, 0, sizeof *f);
  int fd = open(path, O_RDONLY);
  if (fd < 0) return klab_fail(err, "%s: cannot open: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    int e = errno;
    close(fd);
    return klab_fail(err, "%s: cannot stat: %s", path, strerror(e));
  }
  if (!S_ISREG(sb.st_mode)) {
    close(fd);
    return klab_fail(err, "%s: not a regular file", path);
  }
  size_t size = (size_t)sb.st_size;
  void *map = NULL;
  if (size > 0) {
    map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
      int e = errno;
      close(fd);
      return klab_fail(err, "%s: mmap of %zu bytes failed: %s", path, size, strerror(e));
    }
  }
  close(fd); /* the mapping stays valid */
  static const uint8_t empty[1];
  if (st_parse(map ? map : empty, size, path, f, err)) {
    if (map) munmap(map, size);
    return -1;
  }
  f->map = map;
  return 0;
}

void st_close(st_file *f) {
  if (f->map) munmap(f->map, f->size);
  free(f->tensors);
  memset(f, 0, sizeof *f);
}

const st_tensor *st_find(const st_file *f, const char *name) {
  int lo = 0, hi = f->ntensors - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    int c = strcmp(f->tensors[mid].name, name);
    if (c == 0) return &f->tensors[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return NULL;
}
