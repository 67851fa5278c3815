/* Sweep specs: parsing and validation (this file) and running them into a bundle (klab_sweep_run, below).
 * Everything a spec can get wrong is caught here, before any GPU work, with file + JSON path + reason. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "harness/sweep.h"
#include "harness/timing.h"
#include "harness/model_shapes.h"
#include "harness/bundle.h"
#include "harness/env.h"
#include "harness/nvml.h"
#include "harness/plot.h"
#include "engine/qwen3_config.h"

typedef struct {
  const char *file;
  const char *base_dir;
  klab_err *err;
} pctx;

/* "<file>: <json path>: <reason>" */
static int perr(pctx *c, const char *path, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int perr(pctx *c, const char *path, const char *fmt, ...) {
  char msg[KLAB_ERR_LEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return klab_fail(c->err, "%s: %s: %s", c->file, path, msg);
}

static int ignored_key(const char *k) { return k[0] == '_' || strcmp(k, "comment") == 0; }

/* Every key of obj must be in the NULL-terminated list `allowed`. */
static int check_keys(pctx *c, const cJSON *obj, const char *path, const char *const *allowed) {
  for (const cJSON *it = obj->child; it; it = it->next) {
    if (!it->string) continue;
    if (ignored_key(it->string)) continue;
    int ok = 0;
    for (int i = 0; allowed[i]; i++)
      if (strcmp(allowed[i], it->string) == 0) ok = 1;
    if (!ok) {
      char list[256] = "";
      for (int i = 0; allowed[i]; i++) {
        size_t u = strlen(list);
        snprintf(list + u, sizeof list - u, "%s%s", i ? ", " : "", allowed[i]);
      }
      return perr(c, path, "unknown key \"%s\" (expected: %s)", it->string, list);
    }
  }
  return 0;
}

static void subpath(char *out, size_t len, const char *path, const char *key) { snprintf(out, len, "%s.%s", path, key); }
static void idxpath(char *out, size_t len, const char *path, int i) { snprintf(out, len, "%s[%d]", path, i); }

static const char *json_type(const cJSON *j) {
  if (cJSON_IsNumber(j)) return "a number";
  if (cJSON_IsString(j)) return "a string";
  if (cJSON_IsBool(j)) return "a boolean";
  if (cJSON_IsNull(j)) return "null";
  if (cJSON_IsArray(j)) return "an array";
  if (cJSON_IsObject(j)) return "an object";
  return "invalid";
}

static int get_int(pctx *c, const cJSON *j, const char *path, int64_t min, int64_t *v) {
  *v = 0;
  if (!cJSON_IsNumber(j)) return perr(c, path, "must be an integer, got %s", json_type(j));
  double d = j->valuedouble;
  if (!(d == floor(d)) || fabs(d) > 9007199254740992.0) return perr(c, path, "must be an integer, got %g", d);
  if (d < (double)min) return perr(c, path, "must be >= %lld, got %lld", (long long)min, (long long)d);
  *v = (int64_t)d;
  return 0;
}

static int get_num(pctx *c, const cJSON *j, const char *path, double lo, double hi, double *v) {
  if (!cJSON_IsNumber(j)) return perr(c, path, "must be a number, got %s", json_type(j));
  if (!(j->valuedouble >= lo && j->valuedouble <= hi)) return perr(c, path, "must be in [%g, %g], got %g", lo, hi, j->valuedouble);
  *v = j->valuedouble;
  return 0;
}

/* ---- integer value lists: 7, [1, 2, 4], {"from": 512, "to": 8192, "mul": 2} or {"from", "to", "add"} ---- */
typedef struct {
  int64_t *v;
  int n, cap;
} ilist;

static int ilist_push(pctx *c, ilist *l, int64_t x, const char *path) {
  if (l->n >= KLAB_SWEEP_MAX_SHAPES) return perr(c, path, "more than %d values", KLAB_SWEEP_MAX_SHAPES);
  if (l->n == l->cap) {
    int cap = l->cap ? l->cap * 2 : 16;
    int64_t *nv = realloc(l->v, (size_t)cap * sizeof *nv);
    if (!nv) return perr(c, path, "out of memory");
    l->v = nv, l->cap = cap;
  }
  l->v[l->n++] = x;
  return 0;
}

static int parse_range(pctx *c, const cJSON *j, const char *path, int64_t min, ilist *out) {
  static const char *const keys[] = {"from", "to", "mul", "add", NULL};
  char p[256];
  if (check_keys(c, j, path, keys)) return -1;
  const cJSON *jf = cJSON_GetObjectItemCaseSensitive(j, "from"), *jt = cJSON_GetObjectItemCaseSensitive(j, "to");
  const cJSON *jm = cJSON_GetObjectItemCaseSensitive(j, "mul"), *ja = cJSON_GetObjectItemCaseSensitive(j, "add");
  if (!jf) return perr(c, path, "a range needs \"from\", \"to\" and one of \"mul\" or \"add\"; \"from\" is missing");
  if (!jt) return perr(c, path, "a range needs \"from\", \"to\" and one of \"mul\" or \"add\"; \"to\" is missing");
  if (!jm && !ja) return perr(c, path, "a range needs one of \"mul\" or \"add\"");
  if (jm && ja) return perr(c, path, "a range takes \"mul\" or \"add\", not both");
  int64_t from, to, step;
  subpath(p, sizeof p, path, "from");
  if (get_int(c, jf, p, min, &from)) return -1;
  subpath(p, sizeof p, path, "to");
  if (get_int(c, jt, p, min, &to)) return -1;
  if (to < from) return perr(c, p, "must be >= from (%lld), got %lld", (long long)from, (long long)to);
  if (jm) {
    subpath(p, sizeof p, path, "mul");
    if (get_int(c, jm, p, 2, &step)) return -1;
    if (from < 1) return perr(c, path, "a \"mul\" range needs from >= 1");
    for (int64_t x = from; x <= to; x *= step) {
      if (ilist_push(c, out, x, path)) return -1;
      if (x > INT64_MAX / step) break;
    }
  } else {
    subpath(p, sizeof p, path, "add");
    if (get_int(c, ja, p, 1, &step)) return -1;
    for (int64_t x = from; x <= to; x += step)
      if (ilist_push(c, out, x, path)) return -1;
  }
  return 0;
}

static int parse_values(pctx *c, const cJSON *j, const char *path, int64_t min, ilist *out) {
  char p[256];
  if (cJSON_IsNumber(j)) {
    int64_t v = 0;
    if (get_int(c, j, path, min, &v)) return -1;
    return ilist_push(c, out, v, path);
  }
  if (cJSON_IsArray(j)) {
    int i = 0;
    if (cJSON_GetArraySize(j) == 0) return perr(c, path, "empty list");
    for (const cJSON *it = j->child; it; it = it->next, i++) {
      idxpath(p, sizeof p, path, i);
      int64_t v = 0;
      if (get_int(c, it, p, min, &v) || ilist_push(c, out, v, p)) return -1;
    }
    return 0;
  }
  if (cJSON_IsObject(j)) return parse_range(c, j, path, min, out);
  return perr(c, path, "must be an integer, a list of integers or a range {\"from\",\"to\",\"mul\"|\"add\"}, got %s",
              json_type(j));
}

/* ---- the shapes of one op entry ---- */
typedef struct {
  const char *op_name;
  const klab_op *op; /* may be NULL (unregistered) */
  int ndims;
  const char *const *dims;
  int nshapes, cap;
  int64_t (*shapes)[KLAB_MAX_DIMS];
  char (*labels)[128];
} shape_acc;

static int dim_of(const shape_acc *a, const char *name) {
  for (int i = 0; i < a->ndims; i++)
    if (strcmp(a->dims[i], name) == 0) return i;
  return -1;
}

static void dims_text(const shape_acc *a, char *buf, size_t len) {
  buf[0] = 0;
  for (int i = 0; i < a->ndims; i++) {
    size_t u = strlen(buf);
    snprintf(buf + u, len - u, "%s%s", i ? "," : "", a->dims[i]);
  }
}

static void shape_text(const shape_acc *a, const int64_t *d, char *buf, size_t len) {
  buf[0] = 0;
  for (int i = 0; i < a->ndims; i++) {
    size_t u = strlen(buf);
    snprintf(buf + u, len - u, "%s%s=%lld", i ? ";" : "", a->dims[i], (long long)d[i]);
  }
}

/* Validate with the op (when registered), then add (merging labels of a repeated shape). */
static int acc_add(pctx *c, shape_acc *a, const int64_t *d, const char *label, const char *path) {
  char st[160];
  shape_text(a, d, st, sizeof st);
  for (int i = 0; i < a->ndims; i++)
    if (d[i] < 0) return perr(c, path, "shape %s: dim %s is negative", st, a->dims[i]);
  if (a->op && a->op->validate) {
    char why[256] = "";
    if (!a->op->validate(d, why, sizeof why))
      return perr(c, path, "%s rejects shape %s%s%s%s: %s", a->op_name, st, label && *label ? " (" : "",
                  label && *label ? label : "", label && *label ? ")" : "", why[0] ? why : "invalid shape");
  }
  for (int s = 0; s < a->nshapes; s++) {
    if (memcmp(a->shapes[s], d, sizeof(int64_t) * (size_t)a->ndims) != 0) continue;
    if (label && *label && !strstr(a->labels[s], label)) {
      size_t u = strlen(a->labels[s]);
      snprintf(a->labels[s] + u, sizeof a->labels[s] - u, "%s%s", u ? ", " : "", label);
    }
    return 0;
  }
  if (a->nshapes >= KLAB_SWEEP_MAX_SHAPES) return perr(c, path, "more than %d shapes for one op", KLAB_SWEEP_MAX_SHAPES);
  if (a->nshapes == a->cap) {
    int cap = a->cap ? a->cap * 2 : 32;
    int64_t(*ns)[KLAB_MAX_DIMS] = realloc(a->shapes, (size_t)cap * sizeof *ns);
    if (!ns) return perr(c, path, "out of memory");
    a->shapes = ns;
    char(*nl)[128] = realloc(a->labels, (size_t)cap * sizeof *nl);
    if (!nl) return perr(c, path, "out of memory");
    a->labels = nl;
    a->cap = cap;
  }
  memset(a->shapes[a->nshapes], 0, sizeof a->shapes[0]);
  memcpy(a->shapes[a->nshapes], d, sizeof(int64_t) * (size_t)a->ndims);
  snprintf(a->labels[a->nshapes], sizeof a->labels[0], "%s", label ? label : "");
  a->nshapes++;
  return 0;
}

/* "M=1,N=6144,K=2560" (or ';' separated) */
static int parse_shape_string(pctx *c, const shape_acc *a, const char *text, const char *path, int64_t *d) {
  char dims[128];
  dims_text(a, dims, sizeof dims);
  int seen[KLAB_MAX_DIMS] = {0};
  const char *p = text;
  if (!*p) return perr(c, path, "empty shape (expected %s)", dims);
  while (*p) {
    size_t itl = strcspn(p, ",;");
    const char *eq = memchr(p, '=', itl);
    if (!eq) return perr(c, path, "bad shape item \"%.*s\" (expected NAME=VALUE for %s)", (int)itl, p, dims);
    char name[32];
    snprintf(name, sizeof name, "%.*s", (int)(eq - p), p);
    int k = dim_of(a, name);
    if (k < 0) return perr(c, path, "unknown dim \"%s\" for %s (dims: %s)", name, a->op_name, dims);
    if (seen[k]) return perr(c, path, "dim %s given twice", name);
    char *end;
    errno = 0;
    long long v = strtoll(eq + 1, &end, 10);
    if (end == eq + 1 || end != p + itl || errno == ERANGE || v < 0)
      return perr(c, path, "dim %s: \"%.*s\" is not a non-negative integer", name, (int)(p + itl - eq - 1), eq + 1);
    d[k] = v;
    seen[k] = 1;
    p += itl;
    if (*p) p++;
  }
  for (int i = 0; i < a->ndims; i++)
    if (!seen[i]) return perr(c, path, "dim %s missing (expected %s)", a->dims[i], dims);
  return 0;
}

static int parse_shape_object(pctx *c, const shape_acc *a, const cJSON *j, const char *path, int64_t *d) {
  char dims[128], p[256];
  dims_text(a, dims, sizeof dims);
  int seen[KLAB_MAX_DIMS] = {0};
  for (const cJSON *it = j->child; it; it = it->next) {
    if (ignored_key(it->string)) continue;
    subpath(p, sizeof p, path, it->string);
    int k = dim_of(a, it->string);
    if (k < 0) return perr(c, p, "unknown dim for %s (dims: %s)", a->op_name, dims);
    if (get_int(c, it, p, 0, &d[k])) return -1;
    seen[k] = 1;
  }
  for (int i = 0; i < a->ndims; i++)
    if (!seen[i]) return perr(c, path, "dim %s missing (expected %s)", a->dims[i], dims);
  return 0;
}

static const char *opt_label(pctx *c, const cJSON *src, const char *path, int *bad) {
  const cJSON *l = cJSON_GetObjectItemCaseSensitive(src, "label");
  *bad = 0;
  if (!l) return "";
  if (!cJSON_IsString(l)) {
    char p[256];
    subpath(p, sizeof p, path, "label");
    *bad = 1;
    perr(c, p, "must be a string, got %s", json_type(l));
    return NULL;
  }
  return l->valuestring;
}

static int src_list(pctx *c, shape_acc *a, const cJSON *src, const char *path) {
  static const char *const keys[] = {"list", "label", NULL};
  if (check_keys(c, src, path, keys)) return -1;
  int bad;
  const char *label = opt_label(c, src, path, &bad);
  if (bad) return -1;
  char lp[256], p[256];
  subpath(lp, sizeof lp, path, "list");
  const cJSON *list = cJSON_GetObjectItemCaseSensitive(src, "list");
  if (!cJSON_IsArray(list)) return perr(c, lp, "must be an array of shapes, got %s", json_type(list));
  if (cJSON_GetArraySize(list) == 0) return perr(c, lp, "empty list");
  int i = 0;
  for (const cJSON *it = list->child; it; it = it->next, i++) {
    idxpath(p, sizeof p, lp, i);
    int64_t d[KLAB_MAX_DIMS] = {0};
    if (cJSON_IsString(it)) {
      if (parse_shape_string(c, a, it->valuestring, p, d)) return -1;
    } else if (cJSON_IsObject(it)) {
      if (parse_shape_object(c, a, it, p, d)) return -1;
    } else {
      return perr(c, p, "a shape is a string \"M=1,N=6144,K=2560\" or an object {\"M\": 1, ...}, got %s", json_type(it));
    }
    if (acc_add(c, a, d, label, p)) return -1;
  }
  return 0;
}

static int src_range(pctx *c, shape_acc *a, const cJSON *src, const char *path) {
  static const char *const keys[] = {"range", "dims", "fixed", "label", NULL};
  if (check_keys(c, src, path, keys)) return -1;
  int bad;
  const char *label = opt_label(c, src, path, &bad);
  if (bad) return -1;
  char p[256], q[256], dims[128];
  dims_text(a, dims, sizeof dims);
  int in_range[KLAB_MAX_DIMS] = {0}, fixed_set[KLAB_MAX_DIMS] = {0};
  int64_t fixed[KLAB_MAX_DIMS] = {0};
  const cJSON *jd = cJSON_GetObjectItemCaseSensitive(src, "dims");
  if (jd) {
    subpath(p, sizeof p, path, "dims");
    if (!cJSON_IsArray(jd) || cJSON_GetArraySize(jd) == 0) return perr(c, p, "must be a non-empty array of dim names (%s)", dims);
    int i = 0;
    for (const cJSON *it = jd->child; it; it = it->next, i++) {
      idxpath(q, sizeof q, p, i);
      if (!cJSON_IsString(it)) return perr(c, q, "must be a dim name (%s), got %s", dims, json_type(it));
      int k = dim_of(a, it->valuestring);
      if (k < 0) return perr(c, q, "unknown dim \"%s\" for %s (dims: %s)", it->valuestring, a->op_name, dims);
      in_range[k] = 1;
    }
  } else {
    for (int k = 0; k < a->ndims; k++) in_range[k] = 1;
  }
  const cJSON *jfx = cJSON_GetObjectItemCaseSensitive(src, "fixed");
  if (jfx) {
    subpath(p, sizeof p, path, "fixed");
    if (!cJSON_IsObject(jfx)) return perr(c, p, "must be an object {\"DIM\": value}, got %s", json_type(jfx));
    for (const cJSON *it = jfx->child; it; it = it->next) {
      if (ignored_key(it->string)) continue;
      subpath(q, sizeof q, p, it->string);
      int k = dim_of(a, it->string);
      if (k < 0) return perr(c, q, "unknown dim for %s (dims: %s)", a->op_name, dims);
      if (in_range[k]) return perr(c, q, "dim %s is both in \"dims\" (swept by the range) and \"fixed\"", it->string);
      if (get_int(c, it, q, 0, &fixed[k])) return -1;
      fixed_set[k] = 1;
    }
  }
  for (int k = 0; k < a->ndims; k++)
    if (!in_range[k] && !fixed_set[k])
      return perr(c, path, "dim %s is neither swept (\"dims\") nor given in \"fixed\"", a->dims[k]);
  subpath(p, sizeof p, path, "range");
  const cJSON *jr = cJSON_GetObjectItemCaseSensitive(src, "range");
  if (!cJSON_IsObject(jr)) return perr(c, p, "must be an object {\"from\",\"to\",\"mul\"|\"add\"}, got %s", json_type(jr));
  ilist vals = {0};
  if (parse_range(c, jr, p, 1, &vals)) { free(vals.v); return -1; }
  for (int i = 0; i < vals.n; i++) {
    int64_t d[KLAB_MAX_DIMS] = {0};
    for (int k = 0; k < a->ndims; k++) d[k] = in_range[k] ? vals.v[i] : fixed[k];
    if (acc_add(c, a, d, label, p)) { free(vals.v); return -1; }
  }
  free(vals.v);
  return 0;
}

static int src_grid(pctx *c, shape_acc *a, const cJSON *src, const char *path) {
  static const char *const keys[] = {"grid", "label", NULL};
  if (check_keys(c, src, path, keys)) return -1;
  int bad;
  const char *label = opt_label(c, src, path, &bad);
  if (bad) return -1;
  char p[256], q[256], dims[128];
  dims_text(a, dims, sizeof dims);
  subpath(p, sizeof p, path, "grid");
  const cJSON *jg = cJSON_GetObjectItemCaseSensitive(src, "grid");
  if (!cJSON_IsObject(jg)) return perr(c, p, "must be an object {\"DIM\": values, ...}, got %s", json_type(jg));
  ilist vals[KLAB_MAX_DIMS];
  memset(vals, 0, sizeof vals);
  int rc = 0;
  for (const cJSON *it = jg->child; it && !rc; it = it->next) {
    if (ignored_key(it->string)) continue;
    subpath(q, sizeof q, p, it->string);
    int k = dim_of(a, it->string);
    if (k < 0) rc = perr(c, q, "unknown dim for %s (dims: %s)", a->op_name, dims);
    else rc = parse_values(c, it, q, 0, &vals[k]);
  }
  for (int k = 0; k < a->ndims && !rc; k++)
    if (vals[k].n == 0) rc = perr(c, p, "dim %s missing (expected %s)", a->dims[k], dims);
  if (!rc) {
    /* cartesian product, first dim slowest */
    int idx[KLAB_MAX_DIMS] = {0};
    for (;;) {
      int64_t d[KLAB_MAX_DIMS] = {0};
      for (int k = 0; k < a->ndims; k++) d[k] = vals[k].v[idx[k]];
      if ((rc = acc_add(c, a, d, label, p)) != 0) break;
      int k = a->ndims - 1;
      while (k >= 0 && ++idx[k] == vals[k].n) idx[k--] = 0;
      if (k < 0) break;
    }
  }
  for (int k = 0; k < KLAB_MAX_DIMS; k++) free(vals[k].v);
  return rc;
}

static int file_exists(const char *path, int *is_dir) {
  struct stat st;
  if (stat(path, &st) != 0) return 0;
  *is_dir = S_ISDIR(st.st_mode);
  return 1;
}

/* A preset name, or a path to config.json (or to the folder holding it). */
static int resolve_model(pctx *c, const char *name, const char *path, qwen3_config *cfg, char *label, size_t label_len) {
  klab_err e;
  int looks_like_path = strchr(name, '/') != NULL || strstr(name, ".json") != NULL;
  if (!looks_like_path && qwen3_preset(name, cfg, &e) == 0) {
    snprintf(label, label_len, "qwen3-%s", name);
    return 0;
  }
  char file[1024];
  int is_dir = 0, found = 0;
  if (file_exists(name, &is_dir)) {
    snprintf(file, sizeof file, "%s", name);
    found = 1;
  } else if (name[0] != '/' && c->base_dir && *c->base_dir) {
    snprintf(file, sizeof file, "%s/%s", c->base_dir, name);
    found = file_exists(file, &is_dir);
  }
  if (!found) {
    if (!looks_like_path) return perr(c, path, "\"%s\" is neither a Qwen3 preset nor a file: %s", name, e.msg);
    return perr(c, path, "model config \"%s\" not found (relative paths: from the current folder, then the spec's folder)", name);
  }
  if (is_dir) {
    size_t u = strlen(file);
    snprintf(file + u, sizeof file - u, "/config.json");
  }
  if (qwen3_config_load(file, cfg, &e) != 0) return perr(c, path, "cannot load model config: %s", e.msg);
  if (qwen3_config_validate(cfg, &e) != 0) return perr(c, path, "model config %s: %s", file, e.msg);
  /* label: the folder holding config.json */
  char tmp[1024];
  snprintf(tmp, sizeof tmp, "%s", file);
  char *slash = strrchr(tmp, '/');
  if (slash) {
    *slash = 0;
    char *prev = strrchr(tmp, '/');
    snprintf(label, label_len, "%s", prev ? prev + 1 : tmp);
  } else {
    snprintf(label, label_len, "config.json");
  }
  return 0;
}

static int src_model(pctx *c, shape_acc *a, const cJSON *src, const char *path) {
  static const char *const keys[] = {"model", "phase", "M", "T", "ctx", "P0", "projections", "label", NULL};
  if (check_keys(c, src, path, keys)) return -1;
  char p[256], q[256];
  int bad;
  const char *label_override = opt_label(c, src, path, &bad);
  if (bad) return -1;
  const cJSON *jm = cJSON_GetObjectItemCaseSensitive(src, "model");
  subpath(p, sizeof p, path, "model");
  if (!cJSON_IsString(jm)) return perr(c, p, "must be a Qwen3 preset name or a path to config.json, got %s", json_type(jm));
  const klab_op_dims *od = klab_known_op(a->op_name);
  if (!od) return perr(c, path, "op %s has no Qwen3 shape derivation (harness/model_shapes.c)", a->op_name);
  qwen3_config cfg;
  char label[96];
  if (resolve_model(c, jm->valuestring, p, &cfg, label, sizeof label)) return -1;
  if (label_override && *label_override) snprintf(label, sizeof label, "%s", label_override);

  klab_model_phase ph;
  memset(&ph, 0, sizeof ph);
  const cJSON *jp = cJSON_GetObjectItemCaseSensitive(src, "phase");
  subpath(p, sizeof p, path, "phase");
  if (!jp) return perr(c, path, "\"phase\" missing (\"decode\" or \"prefill\")");
  if (!cJSON_IsString(jp)) return perr(c, p, "must be \"decode\" or \"prefill\", got %s", json_type(jp));
  if (!strcmp(jp->valuestring, "decode")) ph.phase = KLAB_PHASE_DECODE;
  else if (!strcmp(jp->valuestring, "prefill")) ph.phase = KLAB_PHASE_PREFILL;
  else return perr(c, p, "must be \"decode\" or \"prefill\", got \"%s\"", jp->valuestring);

  struct { const char *key; int64_t min; int phase; ilist l; } lists[] = {
      {"M", 1, KLAB_PHASE_DECODE, {0}},
      {"T", 1, KLAB_PHASE_PREFILL, {0}},
      {"ctx", 1, -1, {0}},
      {"P0", 0, KLAB_PHASE_PREFILL, {0}},
  };
  int rc = 0;
  for (int i = 0; i < 4 && !rc; i++) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(src, lists[i].key);
    if (!j) continue;
    subpath(q, sizeof q, path, lists[i].key);
    if (lists[i].phase >= 0 && lists[i].phase != (int)ph.phase)
      rc = perr(c, q, "applies to phase %s only (this source is phase %s)", klab_phase_name((klab_phase)lists[i].phase),
                klab_phase_name(ph.phase));
    else rc = parse_values(c, j, q, lists[i].min, &lists[i].l);
  }
  const cJSON *jpr = cJSON_GetObjectItemCaseSensitive(src, "projections");
  if (!rc && jpr) {
    subpath(q, sizeof q, path, "projections");
    if (strcmp(a->op_name, "gemv") && strcmp(a->op_name, "gemm"))
      rc = perr(c, q, "applies to gemv and gemm only");
    else if (!cJSON_IsArray(jpr) || cJSON_GetArraySize(jpr) == 0)
      rc = perr(c, q, "must be a non-empty array of qkv, o, gate_up, down, lm_head");
    else {
      int i = 0;
      for (const cJSON *it = jpr->child; it && !rc; it = it->next, i++) {
        char r[256];
        idxpath(r, sizeof r, q, i);
        int pi = cJSON_IsString(it) ? klab_proj_from_name(it->valuestring) : -1;
        if (pi < 0) rc = perr(c, r, "unknown projection %s%s%s (expected qkv, o, gate_up, down, lm_head)",
                              cJSON_IsString(it) ? "\"" : "", cJSON_IsString(it) ? it->valuestring : json_type(it),
                              cJSON_IsString(it) ? "\"" : "");
        else ph.proj_mask |= 1u << pi;
      }
    }
  }
  klab_derived_shape *ds = NULL;
  int nds = 0;
  if (!rc) {
    ph.m = lists[0].l.v, ph.nm = lists[0].l.n;
    ph.t = lists[1].l.v, ph.nt = lists[1].l.n;
    ph.ctx = lists[2].l.v, ph.nctx = lists[2].l.n;
    ph.p0 = lists[3].l.v, ph.np0 = lists[3].l.n;
    klab_err e;
    if (klab_model_shapes(a->op_name, &cfg, label, &ph, &ds, &nds, &e) != 0) {
      const char *m = strstr(e.msg, ": ");
      rc = perr(c, path, "%s", m ? m + 2 : e.msg);
    }
  }
  /* the table's dim order -> this op's order */
  int map[KLAB_MAX_DIMS];
  if (!rc) {
    if (od->ndims != a->ndims) rc = perr(c, path, "op %s: registry dims and model_shapes table dims differ", a->op_name);
    for (int k = 0; k < a->ndims && !rc; k++) {
      map[k] = -1;
      for (int t = 0; t < od->ndims; t++)
        if (!strcmp(od->dims[t], a->dims[k])) map[k] = t;
      if (map[k] < 0) rc = perr(c, path, "op %s: registry dim %s is not in the model_shapes table", a->op_name, a->dims[k]);
    }
  }
  for (int s = 0; s < nds && !rc; s++) {
    int64_t d[KLAB_MAX_DIMS] = {0};
    for (int k = 0; k < a->ndims; k++) d[k] = ds[s].d[map[k]];
    rc = acc_add(c, a, d, ds[s].label, path);
  }
  free(ds);
  for (int i = 0; i < 4; i++) free(lists[i].l.v);
  return rc;
}

static int parse_source(pctx *c, shape_acc *a, const cJSON *src, const char *path) {
  if (!cJSON_IsObject(src))
    return perr(c, path, "a shape source is an object with one of \"list\", \"range\", \"grid\", \"model\", got %s",
                json_type(src));
  int n = 0;
  const char *kinds[] = {"list", "range", "grid", "model"};
  for (int i = 0; i < 4; i++) n += cJSON_GetObjectItemCaseSensitive(src, kinds[i]) != NULL;
  if (n != 1)
    return perr(c, path, "a shape source needs exactly one of \"list\", \"range\", \"grid\", \"model\" (found %d)", n);
  if (cJSON_GetObjectItemCaseSensitive(src, "list")) return src_list(c, a, src, path);
  if (cJSON_GetObjectItemCaseSensitive(src, "range")) return src_range(c, a, src, path);
  if (cJSON_GetObjectItemCaseSensitive(src, "grid")) return src_grid(c, a, src, path);
  return src_model(c, a, src, path);
}

static int parse_timing(pctx *c, const cJSON *j, const char *path, klab_run_opts *o) {
  static const char *const keys[] = {"seed", "seeds", "max_noise", "min_samples", "max_samples", "max_seconds",
                                     "warmup_ms", "rounds", "graph", "spaced", "verbose", NULL};
  if (!cJSON_IsObject(j)) return perr(c, path, "must be an object, got %s", json_type(j));
  if (check_keys(c, j, path, keys)) return -1;
  char p[256];
  int64_t v = 0;
  double d = 0;
  const cJSON *it;
#define TKEY(k) (subpath(p, sizeof p, path, k), it = cJSON_GetObjectItemCaseSensitive(j, k))
  if (TKEY("seed")) { if (get_int(c, it, p, 0, &v)) return -1; o->seed = (uint64_t)v; }
  if (TKEY("seeds")) { if (get_int(c, it, p, 1, &v)) return -1; if (v > 1000) return perr(c, p, "at most 1000"); o->seeds = (int)v; }
  if (TKEY("max_noise")) { if (get_num(c, it, p, 1e-6, 1.0, &d)) return -1; o->max_noise = d; }
  if (TKEY("min_samples")) { if (get_int(c, it, p, 1, &v)) return -1; if (v > 100000000) return perr(c, p, "too large"); o->min_samples = (int)v; }
  if (TKEY("max_samples")) { if (get_int(c, it, p, 1, &v)) return -1; if (v > 100000000) return perr(c, p, "too large"); o->max_samples = (int)v; }
  if (TKEY("max_seconds")) { if (get_num(c, it, p, 1e-3, 3600.0, &d)) return -1; o->max_seconds = d; }
  if (TKEY("warmup_ms")) { if (get_num(c, it, p, 0.0, 60000.0, &d)) return -1; o->warmup_ms = d; }
  if (TKEY("rounds")) { if (get_int(c, it, p, 1, &v)) return -1; if (v > 100) return perr(c, p, "at most 100"); o->rounds = (int)v; }
  if (TKEY("graph")) { if (!cJSON_IsBool(it)) return perr(c, p, "must be true or false, got %s", json_type(it)); o->use_graph = cJSON_IsTrue(it); }
  if (TKEY("spaced")) { if (!cJSON_IsBool(it)) return perr(c, p, "must be true or false, got %s", json_type(it)); o->spaced = cJSON_IsTrue(it); }
  if (TKEY("verbose")) { if (!cJSON_IsBool(it)) return perr(c, p, "must be true or false, got %s", json_type(it)); o->verbose = cJSON_IsTrue(it); }
#undef TKEY
  if (o->min_samples > o->max_samples)
    return perr(c, path, "min_samples (%d) > max_samples (%d)", o->min_samples, o->max_samples);
  return 0;
}

static void registered_list(char *buf, size_t len) {
  buf[0] = 0;
  for (int i = 0; i < klab_op_count(); i++) {
    size_t u = strlen(buf);
    snprintf(buf + u, len - u, "%s%s", i ? ", " : "", klab_op_at(i)->name);
  }
}

static int op_has_dtype(const klab_op *op, const char *dtype) {
  for (int i = 0; i < op->ntensors; i++)
    if (!strcmp(klab_dtype_name(op->tensors[i].dtype), dtype)) return 1;
  return 0;
}

static int parse_op(pctx *c, const cJSON *j, const char *path, int flags, const char *dtype, const klab_run_opts *top_opts,
                    klab_sweep_op *so) {
  static const char *const keys[] = {"op", "variants", "dtype", "timing", "shapes", NULL};
  char p[256], q[256];
  if (!cJSON_IsObject(j)) return perr(c, path, "an op entry is an object {\"op\": ..., \"shapes\": ...}, got %s", json_type(j));
  if (check_keys(c, j, path, keys)) return -1;
  snprintf(so->json_path, sizeof so->json_path, "%s", path);
  const cJSON *jo = cJSON_GetObjectItemCaseSensitive(j, "op");
  subpath(p, sizeof p, path, "op");
  if (!jo) return perr(c, path, "\"op\" missing");
  if (!cJSON_IsString(jo)) return perr(c, p, "must be an op name, got %s", json_type(jo));
  if (strlen(jo->valuestring) >= sizeof so->op_name) return perr(c, p, "op name too long");
  snprintf(so->op_name, sizeof so->op_name, "%s", jo->valuestring);
  so->op = klab_find_op(so->op_name);
  const klab_op_dims *od = klab_known_op(so->op_name);
  char known[256], reg[256];
  klab_known_op_list(known, sizeof known);
  registered_list(reg, sizeof reg);
  if (!so->op && !od) return perr(c, p, "unknown op \"%s\" (the lab's ops: %s; registered in this build: %s)", so->op_name, known, reg);
  if (!so->op && !(flags & KLAB_SWEEP_ALLOW_UNREGISTERED))
    return perr(c, p, "op \"%s\" is not registered in this build yet (registered: %s); this spec cannot run until it is",
                so->op_name, reg);
  if (so->op) {
    so->ndims = so->op->ndims;
    for (int k = 0; k < so->ndims; k++) so->dim_names[k] = so->op->dim_names[k];
  } else {
    so->ndims = od->ndims;
    for (int k = 0; k < so->ndims; k++) so->dim_names[k] = od->dims[k];
  }

  /* variants */
  const cJSON *jv = cJSON_GetObjectItemCaseSensitive(j, "variants");
  if (jv) {
    subpath(p, sizeof p, path, "variants");
    if (!cJSON_IsArray(jv) || cJSON_GetArraySize(jv) == 0)
      return perr(c, p, "must be a non-empty array of variant names (leave it out for all variants)");
    int i = 0;
    for (const cJSON *it = jv->child; it; it = it->next, i++) {
      idxpath(q, sizeof q, p, i);
      if (!cJSON_IsString(it)) return perr(c, q, "must be a variant name, got %s", json_type(it));
      if (i >= KLAB_MAX_VARIANTS) return perr(c, q, "more than %d variants", KLAB_MAX_VARIANTS);
      if (strlen(it->valuestring) >= sizeof so->variants[0]) return perr(c, q, "variant name too long");
      if (so->op && !klab_find_variant(so->op, it->valuestring)) {
        char vl[256] = "";
        for (int v = 0; v < so->op->nvariants; v++) {
          size_t u = strlen(vl);
          snprintf(vl + u, sizeof vl - u, "%s%s", v ? ", " : "", so->op->variants[v]->name);
        }
        return perr(c, q, "op %s has no variant \"%s\" (variants: %s)", so->op_name, it->valuestring, vl);
      }
      for (int v = 0; v < so->nvariants; v++)
        if (!strcmp(so->variants[v], it->valuestring)) return perr(c, q, "variant \"%s\" listed twice", it->valuestring);
      snprintf(so->variants[so->nvariants++], sizeof so->variants[0], "%s", it->valuestring);
    }
  }

  /* dtype */
  const cJSON *jd = cJSON_GetObjectItemCaseSensitive(j, "dtype");
  snprintf(so->dtype, sizeof so->dtype, "%s", dtype);
  subpath(p, sizeof p, path, "dtype");
  if (jd) {
    if (!cJSON_IsString(jd) || strlen(jd->valuestring) >= sizeof so->dtype) return perr(c, p, "must be a dtype name such as \"bf16\"");
    snprintf(so->dtype, sizeof so->dtype, "%s", jd->valuestring);
  }
  if (so->op && !op_has_dtype(so->op, so->dtype))
    return perr(c, jd ? p : path, "op %s does not run dtype %s", so->op_name, so->dtype);

  /* timing: the spec's, then the entry's */
  so->opts = *top_opts;
  const cJSON *jt = cJSON_GetObjectItemCaseSensitive(j, "timing");
  if (jt) {
    subpath(p, sizeof p, path, "timing");
    if (parse_timing(c, jt, p, &so->opts)) return -1;
  }
  so->opts.variant = NULL;
  so->opts.time_it = 1;

  /* shapes */
  const cJSON *js = cJSON_GetObjectItemCaseSensitive(j, "shapes");
  subpath(p, sizeof p, path, "shapes");
  if (!js) return perr(c, path, "\"shapes\" missing");
  shape_acc a = {so->op_name, so->op, so->ndims, so->dim_names, 0, 0, NULL, NULL};
  int rc = 0;
  if (cJSON_IsArray(js)) {
    if (cJSON_GetArraySize(js) == 0) rc = perr(c, p, "empty list of shape sources");
    int i = 0;
    for (const cJSON *it = js->child; it && !rc; it = it->next, i++) {
      idxpath(q, sizeof q, p, i);
      rc = parse_source(c, &a, it, q);
    }
  } else {
    rc = parse_source(c, &a, js, p);
  }
  so->nshapes = a.nshapes;
  so->shapes = a.shapes;
  so->labels = a.labels;
  return rc;
}

int klab_sweep_parse_text(const char *text, const char *what, const char *base_dir, int flags, klab_sweep_spec *spec,
                          klab_err *err) {
  memset(spec, 0, sizeof *spec);
  snprintf(spec->path, sizeof spec->path, "%s", what);
  pctx c = {what, base_dir, err};
  cJSON *root = cJSON_Parse(text);
  if (!root) {
    const char *at = cJSON_GetErrorPtr();
    int line = 1, col = 1;
    if (at && at >= text && at <= text + strlen(text))
      for (const char *s = text; s < at; s++) {
        if (*s == '\n') line++, col = 1;
        else col++;
      }
    return klab_fail(err, "%s: malformed JSON near line %d column %d (\"%.24s\")", what, line, col, at ? at : "");
  }
  int rc = 0;
  static const char *const keys[] = {"name", "description", "dtype", "timing", "ops", NULL};
  if (!cJSON_IsObject(root)) rc = perr(&c, "$", "a sweep spec is a JSON object, got %s", json_type(root));
  else rc = check_keys(&c, root, "$", keys);
  /* name: given or the file's base name */
  if (!rc) {
    const cJSON *jn = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (jn && (!cJSON_IsString(jn) || !*jn->valuestring || strlen(jn->valuestring) >= sizeof spec->name))
      rc = perr(&c, "$.name", "must be a non-empty string of at most %d characters", (int)sizeof spec->name - 1);
    else if (jn) snprintf(spec->name, sizeof spec->name, "%s", jn->valuestring);
    else {
      const char *b = strrchr(what, '/');
      b = b ? b + 1 : what;
      size_t l = strcspn(b, ".");
      snprintf(spec->name, sizeof spec->name, "%.*s", (int)l, b);
    }
  }
  if (!rc) {
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(root, "description");
    if (jd && !cJSON_IsString(jd)) rc = perr(&c, "$.description", "must be a string, got %s", json_type(jd));
    else if (jd) snprintf(spec->description, sizeof spec->description, "%s", jd->valuestring);
  }
  char dtype[16] = "bf16";
  if (!rc) {
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(root, "dtype");
    if (jd && (!cJSON_IsString(jd) || strlen(jd->valuestring) >= sizeof dtype)) rc = perr(&c, "$.dtype", "must be a dtype name such as \"bf16\"");
    else if (jd) snprintf(dtype, sizeof dtype, "%s", jd->valuestring);
  }
  klab_run_opts top;
  klab_run_opts_default(&top);
  if (!rc) {
    const cJSON *jt = cJSON_GetObjectItemCaseSensitive(root, "timing");
    if (jt) rc = parse_timing(&c, jt, "$.timing", &top);
  }
  const cJSON *jops = rc ? NULL : cJSON_GetObjectItemCaseSensitive(root, "ops");
  if (!rc && !jops) rc = perr(&c, "$", "\"ops\" missing (a list of {\"op\": ..., \"shapes\": ...})");
  if (!rc && (!cJSON_IsArray(jops) || cJSON_GetArraySize(jops) == 0))
    rc = perr(&c, "$.ops", "must be a non-empty array of op entries, got %s", json_type(jops));
  if (!rc) {
    int n = cJSON_GetArraySize(jops);
    spec->ops = calloc((size_t)n, sizeof *spec->ops);
    if (!spec->ops) rc = klab_fail(err, "%s: out of memory", what);
    int i = 0;
    for (const cJSON *it = jops ? jops->child : NULL; it && !rc; it = it->next, i++) {
      char p[64];
      snprintf(p, sizeof p, "$.ops[%d]", i);
      spec->nops = i + 1;
      rc = parse_op(&c, it, p, flags, dtype, &top, &spec->ops[i]);
    }
  }
  cJSON_Delete(root);
  if (rc) {
    klab_sweep_free(spec);
    snprintf(spec->path, sizeof spec->path, "%s", what);
    return -1;
  }
  return 0;
}

int klab_sweep_parse_file(const char *path, int flags, klab_sweep_spec *spec, klab_err *err) {
  memset(spec, 0, sizeof *spec);
  FILE *f = fopen(path, "rb");
  if (!f) return klab_fail(err, "%s: cannot open sweep spec: %s", path, strerror(errno));
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  if (!buf) { fclose(f); return klab_fail(err, "%s: out of memory", path); }
  size_t got;
  while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
    len += got;
    if (len + 1 == cap) {
      if (cap > (64u << 20)) { free(buf); fclose(f); return klab_fail(err, "%s: spec larger than 64 MiB", path); }
      char *nb = realloc(buf, cap * 2);
      if (!nb) { free(buf); fclose(f); return klab_fail(err, "%s: out of memory", path); }
      buf = nb, cap *= 2;
    }
  }
  int rerr = ferror(f);
  fclose(f);
  if (rerr) { free(buf); return klab_fail(err, "%s: read error", path); }
  buf[len] = 0;
  char base[512];
  snprintf(base, sizeof base, "%s", path);
  char *slash = strrchr(base, '/');
  if (slash) *slash = 0;
  else snprintf(base, sizeof base, ".");
  int rc = klab_sweep_parse_text(buf, path, base, flags, spec, err);
  free(buf);
  return rc;
}

void klab_sweep_free(klab_sweep_spec *spec) {
  if (!spec) return;
  for (int i = 0; i < spec->nops; i++) {
    free(spec->ops[i].shapes);
    free(spec->ops[i].labels);
  }
  free(spec->ops);
  memset(spec, 0, sizeof *spec);
}

long klab_sweep_total_shapes(const klab_sweep_spec *spec) {
  long n = 0;
  for (int i = 0; i < spec->nops; i++) n += spec->ops[i].nshapes;
  return n;
}

/* ======================================================================================================
 * Running a sweep into a bundle
 * ====================================================================================================== */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void fmt_dur(double s, char *buf, size_t len) {
  if (!isfinite(s) || s < 0) { snprintf(buf, len, "?"); return; }
  long t = (long)(s + 0.5);
  if (t >= 3600) snprintf(buf, len, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60) snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
  else snprintf(buf, len, "%.1fs", s);
}

/* A crash while writing leaves a partial last line: cut it so the CSV reads again. */
static int repair_tail(const char *path, klab_err *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return klab_fail(err, "%s: cannot open: %s", path, strerror(errno));
  if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return klab_fail(err, "%s: cannot seek", path); }
  long size = ftell(f);
  if (size <= 0) { fclose(f); return 0; }
  long pos = size;
  int c = 0;
  while (pos > 0) {
    if (fseek(f, pos - 1, SEEK_SET) != 0) break;
    c = fgetc(f);
    if (c == '\n') break;
    pos--;
  }
  fclose(f);
  if (pos == size) return 0;
  fprintf(stderr, "klab sweep: %s: dropping a partial last line (%ld bytes) left by an interrupted run\n", path, size - pos);
  if (truncate(path, pos) != 0) return klab_fail(err, "%s: cannot truncate the partial last line: %s", path, strerror(errno));
  return 0;
}

/* Variants whose rows a shape must have: the listed ones (or all) plus every vendor baseline. */
static int expected_variants(const klab_sweep_op *so, const char **names) {
  int n = 0;
  for (int i = 0; i < so->op->nvariants; i++) {
    const klab_variant *v = so->op->variants[i];
    int want = so->nvariants == 0 || v->kind == KLAB_VENDOR;
    for (int k = 0; k < so->nvariants && !want; k++) want = !strcmp(so->variants[k], v->name);
    if (want) names[n++] = v->name;
  }
  return n;
}

static int row_done(const klab_result *rows, int n, const char *op, const char *shape, const char *variant) {
  for (int i = n - 1; i >= 0; i--)
    if (!strcmp(rows[i].op, op) && !strcmp(rows[i].shape, shape) && !strcmp(rows[i].variant, variant))
      return rows[i].status != KLAB_ERROR;
  return 0;
}

static int wanted_row(const klab_sweep_op *so, const klab_result *r) {
  if (so->nvariants == 0 || r->vendor) return 1;
  for (int k = 0; k < so->nvariants; k++)
    if (!strcmp(so->variants[k], r->variant)) return 1;
  return 0;
}

/* Gate + time one shape for the entry's variants. rows: at least 2*KLAB_MAX_VARIANTS. */
static int run_shape(const klab_sweep_op *so, const int64_t *shape, const klab_peaks *pk, klab_result *rows, int *nrows,
                     klab_err *err) {
  klab_run_opts o = so->opts;
  klab_result tmp[KLAB_MAX_VARIANTS * 2];
  *nrows = 0;
  const char *plan[KLAB_MAX_VARIANTS];
  int nplan = 0;
  if (so->nvariants == 0) {
    plan[nplan++] = NULL;
  } else {
    for (int k = 0; k < so->nvariants; k++) {
      const klab_variant *v = klab_find_variant(so->op, so->variants[k]);
      if (v && v->kind != KLAB_VENDOR) plan[nplan++] = so->variants[k];
    }
    if (nplan == 0) plan[nplan++] = so->variants[0];
  }
  int worst = 0;
  for (int p = 0; p < nplan; p++) {
    o.variant = plan[p];
    int nt = 0;
    int rc = klab_run_shape(so->op, shape, &o, pk, tmp, &nt, err);
    if (rc < 0) return -1;
    if (rc > worst) worst = rc;
    for (int i = 0; i < nt; i++) {
      if (!wanted_row(so, &tmp[i])) continue;
      int dup = 0;
      for (int j = 0; j < *nrows && !dup; j++) dup = !strcmp(rows[j].variant, tmp[i].variant);
      if (!dup && *nrows < KLAB_MAX_VARIANTS * 2) rows[(*nrows)++] = tmp[i];
    }
  }
  return worst;
}

static void command_meta(cJSON *env, const klab_sweep_spec *spec, const klab_sweep_run_opts *o) {
  char cwd[1024];
  cJSON_AddStringToObject(env, "command_line", o->command_line ? o->command_line : "");
  cJSON_AddStringToObject(env, "cwd", getcwd(cwd, sizeof cwd) ? cwd : "unknown");
  cJSON_AddStringToObject(env, "spec", spec->path);
  cJSON_AddStringToObject(env, "spec_name", spec->name);
  cJSON_AddStringToObject(env, "spec_description", spec->description);
}

static char *read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 8192, len = 0, got;
  char *buf = malloc(cap);
  while (buf && (got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
    len += got;
    if (len + 1 == cap) {
      char *nb = realloc(buf, cap * 2);
      if (!nb) { free(buf); buf = NULL; break; }
      buf = nb, cap *= 2;
    }
  }
  fclose(f);
  if (buf) buf[len] = 0;
  return buf;
}

int klab_sweep_run(const klab_sweep_spec *spec, const klab_sweep_run_opts *o, klab_err *err) {
  for (int i = 0; i < spec->nops; i++)
    if (!spec->ops[i].op)
      return klab_fail(err, "%s: %s.op: op \"%s\" is not registered in this build; the sweep cannot run", spec->path,
                       spec->ops[i].json_path, spec->ops[i].op_name);
  char why[256] = "";
  long total = klab_sweep_total_shapes(spec);
  if (!klab_have_gpu(why, sizeof why))
    return klab_fail(err, "no usable CUDA GPU (%s): the spec %s is valid (%ld shapes) but a sweep needs a GPU", why,
                     spec->path, total);
  /* CUPTI before any kernel runs (as klab bench does): kernel records are the primary timer. */
  if (!klab_cupti_start(why, sizeof why)) fprintf(stderr, "klab sweep: %s\n", why);
  klab_cuda_device dev;
  klab_cuda_device_get(&dev);
  if (!dev.ok) return klab_fail(err, "CUDA device query failed: %s", dev.error);

  if (!o->out_dir || !*o->out_dir) return klab_fail(err, "no --out folder given");
  if (klab_mkdir_p(o->out_dir)) return klab_fail(err, "%s: cannot create: %s", o->out_dir, strerror(errno));
  char csv[1100], envp[1100], shp[1100];
  snprintf(csv, sizeof csv, "%s/kernels.csv", o->out_dir);
  snprintf(envp, sizeof envp, "%s/env.json", o->out_dir);
  snprintf(shp, sizeof shp, "%s/shapes.csv", o->out_dir);
  struct stat st;
  int csv_exists = stat(csv, &st) == 0 && st.st_size > 0;
  if (csv_exists && !o->resume && !o->force)
    return klab_fail(err, "%s exists: pass --resume to continue that sweep or --force to start over", csv);
  klab_result *done = NULL;
  int ndone = 0;
  if (csv_exists && o->resume) {
    if (repair_tail(csv, err) || klab_csv_read(csv, &done, &ndone, err)) return -1;
    fprintf(stderr, "klab sweep: resuming: %s holds %d rows\n", csv, ndone);
  }

  /* peaks: --peaks FILE (must load), else the default file for this GPU when present */
  klab_peaks peaks;
  memset(&peaks, 0, sizeof peaks);
  char ppath[1024];
  if (o->peaks_path) snprintf(ppath, sizeof ppath, "%s", o->peaks_path);
  else klab_peaks_default_path(dev.name, ppath, sizeof ppath);
  klab_err perr_;
  if (klab_peaks_load(ppath, &peaks, &perr_) != 0) {
    if (o->peaks_path) { free(done); return klab_fail(err, "--peaks: %s", perr_.msg); }
    fprintf(stderr, "klab sweep: no measured peaks at %s (run `klab peaks`): %% of roofline columns stay empty\n", ppath);
    memset(&peaks, 0, sizeof peaks);
  }

  /* env.json before any work (an interrupted bundle still says where it came from) */
  cJSON *env = klab_env_json();
  if (!env) { free(done); return klab_fail(err, "out of memory"); }
  command_meta(env, spec, o);
  cJSON_AddBoolToObject(env, "resumed", csv_exists && o->resume);
  if (csv_exists && o->resume) {
    char *old = read_text(envp);
    cJSON *oj = old ? cJSON_Parse(old) : NULL;
    free(old);
    cJSON *prev = cJSON_CreateArray();
    if (oj && prev) {
      cJSON *op = cJSON_DetachItemFromObject(oj, "previous_runs");
      if (cJSON_IsArray(op))
        while (cJSON_GetArraySize(op) > 0) cJSON_AddItemToArray(prev, cJSON_DetachItemFromArray(op, 0));
      cJSON_Delete(op);
      cJSON_AddItemToArray(prev, oj);
      oj = NULL;
    }
    cJSON_Delete(oj);
    if (prev) cJSON_AddItemToObject(env, "previous_runs", prev);
  }
  cJSON *jp = peaks.valid ? klab_peaks_to_json(&peaks) : cJSON_CreateObject();
  if (jp) cJSON_AddItemToObject(env, "peaks", jp);
  if (jp && peaks.valid) {
    cJSON_AddStringToObject(jp, "file", ppath);
  } else if (jp) {
    cJSON_AddNullToObject(jp, "read_bw_gbps");
    cJSON_AddNullToObject(jp, "gemm_bf16_tflops");
    cJSON_AddStringToObject(jp, "note", "no measured peaks: run `klab peaks` on this GPU");
  }
  /* the driver state `klab env` read becomes "before" */
  cJSON *before = cJSON_DetachItemFromObject(env, "driver_state");
  if (before) cJSON_AddItemToObject(env, "driver_state_before", before);
  char ts[40];
  klab_utc_now(ts, sizeof ts);
  cJSON_AddStringToObject(env, "started_utc", ts);
  cJSON_AddStringToObject(env, "status", "running");
  char msg[KLAB_ERR_LEN];
  if (klab_json_write_file(env, envp, msg, sizeof msg)) {
    cJSON_Delete(env);
    free(done);
    return klab_fail(err, "%s", msg);
  }

  /* shapes.csv: labels for the aggregate and the plots */
  {
    klab_shape_label *ls = calloc((size_t)(total ? total : 1), sizeof *ls);
    if (!ls) { cJSON_Delete(env); free(done); return klab_fail(err, "out of memory"); }
    int nl = 0;
    for (int i = 0; i < spec->nops; i++)
      for (int s = 0; s < spec->ops[i].nshapes; s++) {
        if (!spec->ops[i].labels[s][0]) continue;
        snprintf(ls[nl].op, sizeof ls[nl].op, "%s", spec->ops[i].op_name);
        klab_format_shape(spec->ops[i].op, spec->ops[i].shapes[s], ';', ls[nl].shape, sizeof ls[nl].shape);
        snprintf(ls[nl].label, sizeof ls[nl].label, "%s", spec->ops[i].labels[s]);
        nl++;
      }
    int rc = klab_shape_labels_write(shp, ls, nl, err);
    free(ls);
    if (rc) { cJSON_Delete(env); free(done); return -1; }
  }

  FILE *f = fopen(csv, (csv_exists && o->resume) ? "a" : "w");
  if (!f) { cJSON_Delete(env); free(done); return klab_fail(err, "%s: cannot write: %s", csv, strerror(errno)); }
  if (!(csv_exists && o->resume)) {
    klab_csv_header(f);
    fflush(f);
  }

  fprintf(stderr, "klab sweep: %s: %d op entries, %ld shapes on %s (%s) -> %s\n", spec->name, spec->nops, total, dev.name,
          dev.arch, o->out_dir);
  double t0 = now_s(), run_time = 0;
  long shapes_run = 0, shapes_seen = 0;
  int rc = 0, consecutive_errors = 0, stopped = 0;
  klab_result rows[KLAB_MAX_VARIANTS * 2];
  for (int i = 0; i < spec->nops && !stopped; i++) {
    const klab_sweep_op *so = &spec->ops[i];
    const char *expect[KLAB_MAX_VARIANTS];
    int nexp = expected_variants(so, expect);
    double op_t0 = now_s(), op_run = 0;
    int op_run_n = 0;
    for (int s = 0; s < so->nshapes && !stopped; s++) {
      shapes_seen++;
      char shape_text[128];
      klab_format_shape(so->op, so->shapes[s], ';', shape_text, sizeof shape_text);
      int all_done = ndone > 0;
      for (int v = 0; v < nexp && all_done; v++) all_done = row_done(done, ndone, so->op_name, shape_text, expect[v]);
      if (all_done) continue;
      double ts0 = now_s();
      int nr = 0;
      klab_err rerr = {{0}};
      int r = run_shape(so, so->shapes[s], peaks.valid ? &peaks : NULL, rows, &nr, &rerr);
      double dt = now_s() - ts0;
      op_run += dt, op_run_n++, run_time += dt, shapes_run++;
      if (r < 0) {
        /* an error that stopped the shape: one ERROR row per expected variant, so it shows and --resume retries */
        consecutive_errors++;
        nr = 0;
        for (int v = 0; v < nexp; v++) {
          klab_result *x = &rows[nr++];
          klab_result_init(x);
          snprintf(x->op, sizeof x->op, "%s", so->op_name);
          snprintf(x->variant, sizeof x->variant, "%s", expect[v]);
          const klab_variant *kv = klab_find_variant(so->op, expect[v]);
          x->vendor = kv && kv->kind == KLAB_VENDOR;
          snprintf(x->shape, sizeof x->shape, "%s", shape_text);
          snprintf(x->dtype, sizeof x->dtype, "%s", so->dtype);
          x->status = KLAB_ERROR;
          x->seed = so->opts.seed;
          snprintf(x->note, sizeof x->note, "%s", rerr.msg);
        }
        fprintf(stderr, "klab sweep: %s %s: error: %s\n", so->op_name, shape_text, rerr.msg);
      } else {
        consecutive_errors = 0;
      }
      int wrote = 0;
      for (int k = 0; k < nr; k++) {
        /* on resume, keep rows already recorded (a partly done shape only adds what is missing) */
        if (ndone && row_done(done, ndone, rows[k].op, rows[k].shape, rows[k].variant)) continue;
        klab_csv_row(f, &rows[k]);
        wrote++;
      }
      if (fflush(f) != 0 || ferror(f)) {
        rc = klab_fail(err, "%s: write failed: %s", csv, strerror(errno));
        stopped = 1;
        break;
      }
      (void)wrote;
      /* progress: per op and overall */
      char el[32], eta[32], seta[32], line[512] = "";
      int remaining_op = so->nshapes - s - 1;
      fmt_dur(now_s() - op_t0, el, sizeof el);
      fmt_dur(op_run_n ? op_run / op_run_n * remaining_op : NAN, eta, sizeof eta);
      fmt_dur(shapes_run ? run_time / shapes_run * (double)(total - shapes_seen) : NAN, seta, sizeof seta);
      for (int k = 0; k < nr; k++) {
        size_t u = strlen(line);
        if (rows[k].status == KLAB_PASS && isfinite(rows[k].median_us))
          snprintf(line + u, sizeof line - u, "%s%s %.2fus", k ? ", " : "", rows[k].variant, rows[k].median_us);
        else
          snprintf(line + u, sizeof line - u, "%s%s %s", k ? ", " : "", rows[k].variant, klab_status_name(rows[k].status));
      }
      fprintf(stderr, "[%s %d/%d] elapsed %s, eta %s (sweep %ld/%ld, eta %s) %s: %s\n", so->op_name, s + 1, so->nshapes, el,
              eta, shapes_seen, total, seta, shape_text, line);
      if (consecutive_errors >= 2) {
        rc = klab_fail(err, "stopping: two shapes in a row stopped with an error (last: %s %s: %s)", so->op_name, shape_text,
                       rerr.msg);
        stopped = 1;
      }
    }
  }
  if (fclose(f) != 0 && !rc) rc = klab_fail(err, "%s: close failed: %s", csv, strerror(errno));
  free(done);

  /* env.json after */
  klab_gpu_snapshot after;
  klab_gpu_snapshot_take(dev.pci_bus_id, &after);
  cJSON *ja = klab_gpu_snapshot_json(&after);
  if (ja) cJSON_AddItemToObject(env, "driver_state_after", ja);
  klab_utc_now(ts, sizeof ts);
  cJSON_AddStringToObject(env, "finished_utc", ts);
  char dur[32];
  fmt_dur(now_s() - t0, dur, sizeof dur);
  cJSON_AddStringToObject(env, "duration", dur);
  cJSON_ReplaceItemInObject(env, "status", cJSON_CreateString(rc ? err->msg : "complete"));
  if (klab_json_write_file(env, envp, msg, sizeof msg) && !rc) rc = klab_fail(err, "%s", msg);
  cJSON_Delete(env);

  /* aggregate.md, winners.json, plots (also after a stop: they describe what was measured) */
  char note[768] = "plots skipped (--no-plots)";
  klab_err serr;
  if (klab_bundle_summarize(o->out_dir, 0, NULL, 0, &serr)) {
    fprintf(stderr, "klab sweep: summarizing %s: %s\n", o->out_dir, serr.msg);
    if (!rc) rc = klab_fail(err, "%s", serr.msg);
  } else {
    /* a plotting problem is reported but does not fail the measurements */
    klab_bundle pb;
    if (o->plots && klab_bundle_load(o->out_dir, &pb, &serr) == 0) {
      if (klab_plot_bundle(&pb, 1, note, sizeof note, &serr))
        snprintf(note, sizeof note, "plots failed: %.700s (re-run: klab plot %s)", serr.msg, o->out_dir);
      klab_bundle_free(&pb);
    }
    fprintf(stderr, "klab sweep: wrote %s/{kernels.csv,env.json,shapes.csv,aggregate.md,winners.json}; %s\n", o->out_dir, note);
  }
  if (rc) return -1;
  /* exit status from the whole bundle (resumed rows included) */
  klab_bundle b;
  if (klab_bundle_load(o->out_dir, &b, err)) return -1;
  int fails = 0;
  for (int i = 0; i < b.nrows; i++) fails += b.rows[i].status == KLAB_FAIL || b.rows[i].status == KLAB_ERROR;
  klab_bundle_free(&b);
  fprintf(stderr, "klab sweep: done in %s; %d FAIL/ERROR rows\n", dur, fails);
  return fails ? 1 : 0;
}
