/* Shape derivation from Qwen3 configs against hand-written Qwen3-4B (and a few other) shapes. */
#include <string.h>
#include <stdlib.h>
#include "test_util.h"
#include "harness/model_shapes.h"

static int find(const klab_derived_shape *s, int n, const int64_t *d, int nd, const char *label) {
  for (int i = 0; i < n; i++)
    if (!memcmp(s[i].d, d, sizeof(int64_t) * (size_t)nd) && (!label || !strcmp(s[i].label, label))) return 1;
  return 0;
}

int main(void) {
  qwen3_config c4, c06, c8;
  klab_err err = {{0}};
  if (qwen3_preset("4b", &c4, &err) || qwen3_preset("0.6b", &c06, &err) || qwen3_preset("8b", &c8, &err)) {
    fprintf(stderr, "presets: %s\n", err.msg);
    CHECK(0);
    return klab_test_finish("test_sweep_model_shapes");
  }
  /* Qwen3-4B projections by hand: hidden 2560, intermediate 9728, 32 heads, 8 kv heads, head_dim 128 */
  int64_t n, k;
  klab_qwen3_projection(&c4, KLAB_PROJ_QKV, &n, &k);
  CHECK(n == 6144 && k == 2560);
  klab_qwen3_projection(&c4, KLAB_PROJ_O, &n, &k);
  CHECK(n == 2560 && k == 4096);
  klab_qwen3_projection(&c4, KLAB_PROJ_GATE_UP, &n, &k);
  CHECK(n == 19456 && k == 2560);
  klab_qwen3_projection(&c4, KLAB_PROJ_DOWN, &n, &k);
  CHECK(n == 2560 && k == 9728);
  klab_qwen3_projection(&c4, KLAB_PROJ_LM_HEAD, &n, &k);
  CHECK(n == 151936 && k == 2560);
  /* 0.6B: o's K is heads*head_dim = 2048, not hidden = 1024 */
  klab_qwen3_projection(&c06, KLAB_PROJ_O, &n, &k);
  CHECK(n == 1024 && k == 2048);
  klab_qwen3_projection(&c8, KLAB_PROJ_QKV, &n, &k);
  CHECK(n == 6144 && k == 4096);

  klab_model_phase dec = {KLAB_PHASE_DECODE, NULL, 0, NULL, 0, NULL, 0, NULL, 0, 0};
  klab_derived_shape *s = NULL;
  int ns = 0;
  /* gemv, default M = 1..16: 5 projections x 16 */
  CHECK(klab_model_shapes("gemv", &c4, "qwen3-4b", &dec, &s, &ns, &err) == 0);
  CHECK_MSG(ns == 80, "gemv decode shapes %d", ns);
  int64_t want[][3] = {{1, 6144, 2560}, {1, 2560, 4096}, {1, 19456, 2560}, {1, 2560, 9728}, {1, 151936, 2560}, {16, 6144, 2560}, {16, 151936, 2560}};
  const char *wl[] = {"qwen3-4b qkv", "qwen3-4b o", "qwen3-4b gate_up", "qwen3-4b down", "qwen3-4b lm_head", "qwen3-4b qkv", "qwen3-4b lm_head"};
  for (int i = 0; i < 7; i++) CHECK_MSG(find(s, ns, want[i], 3, wl[i]), "missing gemv %lld,%lld,%lld", (long long)want[i][0], (long long)want[i][1], (long long)want[i][2]);
  free(s), s = NULL, ns = 0;

  /* explicit M list and a projection mask */
  int64_t m[] = {1, 4};
  klab_model_phase d2 = dec;
  d2.m = m, d2.nm = 2, d2.proj_mask = 1u << KLAB_PROJ_DOWN;
  CHECK(klab_model_shapes("gemv", &c4, "qwen3-4b", &d2, &s, &ns, &err) == 0);
  CHECK(ns == 2);
  int64_t dn[] = {4, 2560, 9728};
  CHECK(find(s, ns, dn, 3, "qwen3-4b down"));
  free(s), s = NULL, ns = 0;

  /* the rest of a decode step */
  d2.proj_mask = 0;
  d2.m = m, d2.nm = 1;
  CHECK(klab_model_shapes("rmsnorm", &c4, "q", &d2, &s, &ns, &err) == 0);
  int64_t rn[] = {1, 2560};
  CHECK(ns == 1 && find(s, ns, rn, 2, NULL));
  CHECK(klab_model_shapes("silu_mul", &c4, "q", &d2, &s, &ns, &err) == 0);
  int64_t sm[] = {1, 9728};
  CHECK(find(s, ns, sm, 2, NULL));
  CHECK(klab_model_shapes("embedding", &c4, "q", &d2, &s, &ns, &err) == 0);
  int64_t em[] = {1, 151936, 2560};
  CHECK(find(s, ns, em, 3, NULL));
  CHECK(klab_model_shapes("qk_norm_rope", &c4, "q", &d2, &s, &ns, &err) == 0);
  int64_t qk[] = {1, 32, 8, 128, 1024};
  CHECK(find(s, ns, qk, 5, NULL));
  CHECK(klab_model_shapes("argmax", &c4, "q", &d2, &s, &ns, &err) == 0);
  int64_t am[] = {151936};
  CHECK(find(s, ns, am, 1, NULL));
  int64_t ctx[] = {128, 32768};
  d2.ctx = ctx, d2.nctx = 2;
  int before = ns;
  CHECK(klab_model_shapes("attn_decode", &c4, "q", &d2, &s, &ns, &err) == 0);
  int64_t ad[] = {32, 8, 128, 32768};
  CHECK(ns == before + 2 && find(s, ns, ad, 4, "q attention"));
  free(s), s = NULL, ns = 0;

  /* prefill */
  int64_t t[] = {512, 2048};
  klab_model_phase pre = {KLAB_PHASE_PREFILL, NULL, 0, t, 2, NULL, 0, NULL, 0, 0};
  CHECK(klab_model_shapes("gemm", &c4, "qwen3-4b", &pre, &s, &ns, &err) == 0);
  int64_t gm[] = {2048, 19456, 2560};
  CHECK(ns == 10 && find(s, ns, gm, 3, "qwen3-4b gate_up"));
  free(s), s = NULL, ns = 0;
  CHECK(klab_model_shapes("attn_prefill", &c4, "qwen3-4b", &pre, &s, &ns, &err) == 0);
  int64_t ap[] = {512, 0, 32, 8, 128};
  CHECK(ns == 2 && find(s, ns, ap, 5, NULL));
  free(s), s = NULL, ns = 0;

  /* refusals */
  CHECK(klab_model_shapes("gemv", &c4, "q", &pre, &s, &ns, &err) == -1 && strstr(err.msg, "prefill"));
  CHECK(klab_model_shapes("attn_decode", &c4, "q", &pre, &s, &ns, &err) == -1);
  CHECK(klab_model_shapes("attn_prefill", &c4, "q", &dec, &s, &ns, &err) == -1);
  CHECK(klab_model_shapes("conv2d", &c4, "q", &dec, &s, &ns, &err) == -1 && strstr(err.msg, "unknown op"));
  CHECK(ns == 0);
  free(s);

  /* the dims table agrees with the registry for every registered op */
  for (int i = 0; i < klab_op_count(); i++) {
    const klab_op *op = klab_op_at(i);
    const klab_op_dims *od = klab_known_op(op->name);
    CHECK_MSG(od != NULL, "registered op %s missing from the model_shapes table", op->name);
    if (!od) continue;
    CHECK(od->ndims == op->ndims);
    for (int d = 0; d < op->ndims && d < od->ndims; d++)
      CHECK_MSG(!strcmp(od->dims[d], op->dim_names[d]), "%s dim %d: %s vs %s", op->name, d, od->dims[d], op->dim_names[d]);
  }
  return klab_test_finish("test_sweep_model_shapes");
}
