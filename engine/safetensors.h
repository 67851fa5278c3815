/* safetensors files: the 8-byte little-endian header length, a JSON header (cJSON), then the data.
 * Files are mmap'd read-only; every tensor's dtype, shape and byte range is checked when the header is
 * parsed, so a bad file is an error naming the file and the tensor, never an out-of-bounds read. */
#ifndef QWEN3_SAFETENSORS_H
#define QWEN3_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>
#include "harness/klab.h"

#define ST_MAX_DIMS 8
#define ST_MAX_NAME 256
/* A header above this is refused before parsing (the real ones are a few hundred KB at most). */
#define ST_MAX_HEADER_BYTES ((uint64_t)100 << 20)

typedef enum { ST_BF16 = 0, ST_F16, ST_F32, ST_OTHER } st_dtype;

typedef struct {
  char name[ST_MAX_NAME];
  char dtype_name[16];  /* as in the header: "BF16", "F16", "F32", "I64", ... */
  st_dtype dtype;       /* ST_OTHER for types the engine cannot use (refused when such a tensor is needed) */
  int ndim;
  int64_t shape[ST_MAX_DIMS];
  uint64_t begin, end;  /* byte range relative to the data section */
  const uint8_t *data;  /* = data section + begin */
} st_tensor;

typedef struct {
  char path[1024];      /* for messages */
  const uint8_t *base;  /* whole file (mmap or caller's buffer) */
  size_t size;
  uint64_t header_len;
  const uint8_t *data;  /* data section */
  uint64_t data_len;
  int ntensors;
  st_tensor *tensors;   /* sorted by name */
  void *map;            /* mmap'd region, NULL when parsed from a caller's buffer */
} st_file;

/* Parse and check the header of a complete file image of `size` bytes (not copied: `base` must
 * outlive f). `what` names the file in errors. 0 ok, -1 with err. */
int st_parse(const uint8_t *base, size_t size, const char *what, st_file *f, klab_err *err);
/* mmap path and st_parse it. */
int st_open(const char *path, st_file *f, klab_err *err);
void st_close(st_file *f);
/* Tensor by name, NULL if absent (binary search). */
const st_tensor *st_find(const st_file *f, const char *name);
/* Element size of a usable dtype (0 for ST_OTHER). */
size_t st_dtype_size(st_dtype dt);
const char *st_dtype_label(st_dtype dt); /* "BF16", "F16", "F32" */
#endif
