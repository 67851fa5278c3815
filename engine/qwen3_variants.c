/* winners.json reader for the engine (format: harness/bundle.c, docs/bundles.md). */
#include "engine/qwen3_variants.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "engine/qwen3_config_parse.h"

struct qwen3_variants {
  cJSON *root;
  const cJSON *ops; /* archs.<arch>.ops, or NULL */
};

int qwen3_variants_load(const char *path, const char *arch, qwen3_variants **out, char *note, size_t note_len,
                        klab_err *err) {
  *out = NULL;
  if (note_len) note[0] = 0;
  char *text = NULL;
  size_t len = 0;
  if (qwen3_read_file(path, (size_t)64 << 20, &text, &len, err)) return -1;
  cJSON *root = cJSON_Parse(text);
  free(text);
  if (!root) return klab_fail(err, "variants file %s: malformed JSON", path);
  const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "archs");
  if (!cJSON_IsObject(archs)) {
    cJSON_Delete(root);
    return klab_fail(err, "variants file %s: no \"archs\" object (is it a winners.json?)", path);
  }
  qwen3_variants *v = calloc(1, sizeof *v);
  if (!v) {
    cJSON_Delete(root);
    return klab_fail(err, "out of memory");
  }
  v->root = root;
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(archs, arch);
  v->ops = a ? cJSON_GetObjectItemCaseSensitive(a, "ops") : NULL;
  if (!cJSON_IsObject(v->ops)) {
    v->ops = NULL;
    snprintf(note, note_len, "%s has no winners for %s: every op uses its optimized variant", path, arch);
  }
  *out = v;
  return 0;
}

void qwen3_variants_free(qwen3_variants *v) {
  if (!v) return;
  cJSON_Delete(v->root);
  free(v);
}

qwen3_variant_pick qwen3_variants_pick(const qwen3_variants *v, const char *op, int ndims, const char *const *names,
                                       const int64_t *vals) {
  qwen3_variant_pick best = {NULL, 0, ""};
  if (!v || !v->ops) return best;
  const cJSON *list = cJSON_GetObjectItemCaseSensitive(v->ops, op);
  double best_dist = INFINITY;
  const cJSON *e;
  cJSON_ArrayForEach(e, list) {
    const cJSON *dims = cJSON_GetObjectItemCaseSensitive(e, "dims");
    const cJSON *var = cJSON_GetObjectItemCaseSensitive(e, "variant");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (!cJSON_IsObject(dims) || !cJSON_IsString(var)) continue;
    /* Distance: sum over dims of |log2(measured / wanted)|; a missing dim disqualifies the entry. */
    double dist = 0;
    int ok = 1;
    for (int d = 0; d < ndims && ok; d++) {
      const cJSON *x = cJSON_GetObjectItemCaseSensitive(dims, names[d]);
      if (!cJSON_IsNumber(x)) {
        ok = 0;
        break;
      }
      double have = x->valuedouble, want = (double)vals[d];
      if (have == want) continue;
      dist += fabs(log2((have + 1.0) / (want + 1.0)));
    }
    if (!ok || dist >= best_dist) continue;
    best_dist = dist;
    best.variant = var->valuestring;
    best.exact = dist == 0;
    snprintf(best.shape, sizeof best.shape, "%s", cJSON_IsString(shape) ? shape->valuestring : "?");
  }
  return best;
}
