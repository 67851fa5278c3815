/* qwen3 bench: greedy generation with stop ids ignored, so every cell decodes exactly tg tokens. Each cell
 * runs `warmup` untimed generations, then `reps` timed ones; the runner's own clocks give TTFT (prefill plus
 * the first token on the host) and decode time. Roofline tok/s = measured read bandwidth / (weights read
 * per step + the cell's average KV bytes). */
#define _POSIX_C_SOURCE 200809L
#include "engine/qwen3_bench.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>
#include "engine/qwen3_generate.h"
#include "harness/env.h"
#include "harness/run.h"
#include "harness/timing.h"
#include "reference/rng.h"

typedef struct {
  int64_t pp, tg;
  int n;
  double e2e_med, e2e_p25, e2e_p75, ttft_med, decode_ms_tok, tok_s, weights_gb, kv_gb, roof_tok_s, pct_roof, peak_gb;
} bench_row;

static void csv_header(FILE *f) {
  fprintf(f, "engine,model,pp,tg,n,e2e_median_ms,e2e_p25_ms,e2e_p75_ms,prefill_ms,decode_ms_per_token,decode_tok_s,"
             "weights_gb,avg_kv_gb,roofline_tok_s,pct_roofline,peak_mem_gb\n");
}

static void csv_row(FILE *f, const char *model, const bench_row *r) {
  fprintf(f, "kernel-lab,%s,%lld,%lld,%d,%.3f,%.3f,%.3f,%.3f,%.4f,%.2f,%.4f,%.4f,%.2f,%.2f,%.3f\n", model, (long long)r->pp,
          (long long)r->tg, r->n, r->e2e_med, r->e2e_p25, r->e2e_p75, r->ttft_med, r->decode_ms_tok, r->tok_s, r->weights_gb,
          r->kv_gb, r->roof_tok_s, r->pct_roof, r->peak_gb);
}

static int write_plots_script(const char *dir, klab_err *err) {
  char p[1200];
  snprintf(p, sizeof p, "%s/engine_plots.gp", dir);
  FILE *f = fopen(p, "w");
  if (!f) return klab_fail(err, "cannot write %s", p);
  /* Rows of other engines (sweeps/peers/hf_engine_bench.py appends them) plot as their own series. */
  fprintf(f,
          "# Engine plots from engine.csv alone: `cd BUNDLE && gnuplot engine_plots.gp`.\n"
          "set datafile separator ','\n"
          "set terminal pngcairo size 900,560 noenhanced\n"
          "set key bottom right\n"
          "set grid\n"
          "set output 'decode_tok_s.png'\n"
          "set title 'Batch-1 decode tok/s vs generated tokens (median; dashed: weights+KV roofline)'\n"
          "set xlabel 'tokens generated (tg)'\n"
          "set ylabel 'decode tok/s'\n"
          "set yrange [0:*]\n"
          "plot for [pp in \"`awk -F, 'NR>1 && $1==\"kernel-lab\"{print $3}' engine.csv | sort -un | tr '\\n' ' '`\"] \\\n"
          "  'engine.csv' using ((strcol(1) eq 'kernel-lab' && $3 == pp+0) ? $4 : 1/0):11 with linespoints title 'kernel-lab pp='.pp, \\\n"
          "  for [pp in \"`awk -F, 'NR>1 && $1==\"kernel-lab\"{print $3}' engine.csv | sort -un | tr '\\n' ' '`\"] \\\n"
          "  'engine.csv' using ((strcol(1) eq 'kernel-lab' && $3 == pp+0) ? $4 : 1/0):14 with lines dashtype 2 title 'roofline pp='.pp, \\\n"
          "  'engine.csv' using ((strcol(1) ne 'kernel-lab') ? $4 : 1/0):11 with points pointtype 7 title 'transformers (peers)'\n"
          "set output 'ttft.png'\n"
          "set title 'Time to first token vs prompt length (median)'\n"
          "set xlabel 'prompt tokens (pp)'\n"
          "set ylabel 'TTFT ms'\n"
          "set logscale x 2\n"
          "plot 'engine.csv' using ((strcol(1) eq 'kernel-lab') ? $3 : 1/0):9 with linespoints title 'kernel-lab', \\\n"
          "  'engine.csv' using ((strcol(1) ne 'kernel-lab') ? $3 : 1/0):9 with points pointtype 7 title 'transformers (peers)'\n");
  fclose(f);
  return 0;
}

int qwen3_bench_run(const qwen3_bench_opts *o, klab_err *err) {
  char why[256];
  if (!klab_have_gpu(why, sizeof why)) return klab_fail(err, "qwen3 bench needs a GPU: %s", why);
  cJSON *env = klab_env_json(); /* before the model: clocks and temperature of the idle GPU */
  qwen3_model m;
  if (qwen3_model_load(o->model_dir, &m, err)) {
    cJSON_Delete(env);
    return -1;
  }
  qwen3_runner *r = NULL;
  int rc = qwen3_gpu_runner_create(&m, &o->gpu, &r, err);
  qwen3_model_free(&m); /* weights are on the device now */
  if (rc) {
    cJSON_Delete(env);
    return -1;
  }
  klab_device_info dev;
  klab_peaks pk = {0};
  char ppath[512];
  klab_err perr = {{0}};
  if (!klab_device_query(&dev, &perr)) {
    klab_peaks_default_path(dev.name, ppath, sizeof ppath);
    if (klab_peaks_load(ppath, &pk, &perr)) {
      fprintf(stderr, "qwen3 bench: no measured peaks (%s): roofline columns empty\n", perr.msg);
      memset(&pk, 0, sizeof pk);
    }
  }
  qwen3_gpu_memory mem;
  qwen3_gpu_memory_info(r, &mem);
  const qwen3_config *c = r->cfg;
  /* the model's label: the folder's name (a config.json carries no model name) */
  const char *label = strrchr(o->model_dir, '/');
  label = label && label[1] ? label + 1 : o->model_dir;
  int nrows = 0;
  bench_row rows[QWEN3_BENCH_MAX_CELLS * QWEN3_BENCH_MAX_CELLS];
  int64_t maxpp = 0;
  for (int i = 0; i < o->npp; i++) maxpp = o->pp[i] > maxpp ? o->pp[i] : maxpp;
  int32_t *prompt = malloc((size_t)maxpp * sizeof *prompt);
  double *e2e = calloc((size_t)o->reps, sizeof *e2e), *ttft = calloc((size_t)o->reps, sizeof *ttft),
         *dec = calloc((size_t)o->reps, sizeof *dec);
  if (!prompt || !e2e || !ttft || !dec) rc = klab_fail(err, "out of memory");
  /* Random ids below the special-token range (151643 in the real vocabulary) */
  int64_t id_range = c->vocab < 151643 ? c->vocab : 151643;
  for (int64_t i = 0; i < maxpp && !rc; i++) prompt[i] = (int32_t)(klab_rand_u64(o->seed, (uint64_t)i) % (uint64_t)id_range);
  printf("| pp | tg | n | e2e ms (median) | TTFT ms | decode ms/token | decode tok/s | roofline tok/s | %% of roofline |\n"
         "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (int a = 0; a < o->npp && !rc; a++)
    for (int b = 0; b < o->ntg && !rc; b++) {
      int64_t pp = o->pp[a], tg = o->tg[b];
      if (pp + tg > mem.max_ctx) {
        rc = klab_fail(err, "cell pp=%lld tg=%lld needs %lld cache tokens; the runner has %lld (--max-seq-len)", (long long)pp,
                       (long long)tg, (long long)(pp + tg), (long long)mem.max_ctx);
        break;
      }
      qwen3_gen_opts g = {0};
      g.max_new_tokens = tg;
      g.sample = (ref_sample_params){0.0f, 0, 1.0f, 0.0f};
      g.n_stop = 0; /* EOS ignored: exactly tg tokens */
      qwen3_gen_stats st;
      for (int i = 0; i < o->warmup + o->reps && !rc; i++) {
        rc = qwen3_generate(r, prompt, pp, &g, NULL, NULL, NULL, &st, err);
        if (rc) break;
        if (st.generated_tokens != tg) {
          rc = klab_fail(err, "bench cell pp=%lld tg=%lld generated %lld tokens", (long long)pp, (long long)tg,
                         (long long)st.generated_tokens);
          break;
        }
        if (i < o->warmup) continue;
        int k = i - o->warmup;
        e2e[k] = st.prefill_ms + st.decode_ms;
        ttft[k] = st.prefill_ms;
        dec[k] = tg > 1 ? st.decode_ms / (double)(tg - 1) : NAN; /* steps after the first token */
      }
      if (rc) break;
      bench_row *row = &rows[nrows++];
      row->pp = pp, row->tg = tg, row->n = o->reps;
      row->e2e_med = klab_percentile(e2e, o->reps, 0.5);
      row->e2e_p25 = klab_percentile(e2e, o->reps, 0.25);
      row->e2e_p75 = klab_percentile(e2e, o->reps, 0.75);
      row->ttft_med = klab_percentile(ttft, o->reps, 0.5);
      row->decode_ms_tok = klab_percentile(dec, o->reps, 0.5);
      row->tok_s = 1e3 / row->decode_ms_tok;
      row->weights_gb = mem.decode_read_bytes / 1e9;
      row->kv_gb = mem.kv_bytes_per_token * ((double)pp + (double)tg / 2.0) / 1e9;
      row->roof_tok_s = pk.valid ? pk.read_bw_gbps / (row->weights_gb + row->kv_gb) : NAN;
      row->pct_roof = 100.0 * row->tok_s / row->roof_tok_s;
      qwen3_gpu_memory_info(r, &mem);
      row->peak_gb = (double)mem.device_peak_used_bytes / 1e9;
      printf("| %lld | %lld | %d | %.1f | %.2f | %.3f | %.1f | %.1f | %.1f |\n", (long long)pp, (long long)tg, row->n,
             row->e2e_med, row->ttft_med, row->decode_ms_tok, row->tok_s, row->roof_tok_s, row->pct_roof);
      fflush(stdout);
    }
  if (!rc && o->out_dir) {
    char p[1200];
    if (klab_mkdir_p(o->out_dir)) rc = klab_fail(err, "cannot create %s", o->out_dir);
    FILE *f = NULL;
    if (!rc) {
      snprintf(p, sizeof p, "%s/engine.csv", o->out_dir);
      if (!(f = fopen(p, "w"))) rc = klab_fail(err, "cannot write %s", p);
    }
    if (f) {
      csv_header(f);
      for (int i = 0; i < nrows; i++) csv_row(f, label, &rows[i]);
      fclose(f);
    }
    if (!rc) {
      snprintf(p, sizeof p, "%s/aggregate.md", o->out_dir);
      if (!(f = fopen(p, "w"))) rc = klab_fail(err, "cannot write %s", p);
    }
    if (f && !rc) {
      fprintf(f, "# Engine benchmark: %s (%lld layers, hidden %lld) on %s\n\n", label, (long long)c->layers,
              (long long)c->hidden, dev.name);
      fprintf(f, "Greedy, stop ids ignored, %d timed runs per cell after %d warm-up runs; medians. Decode ms/token counts "
                 "the steps after the first token; TTFT is prefill plus the first token on the host. Roofline: %.0f GB/s "
                 "measured read bandwidth over %.3f GB of weights per step plus the cell's average KV cache.\n\n",
              o->reps, o->warmup, pk.valid ? pk.read_bw_gbps : NAN, mem.decode_read_bytes / 1e9);
      fprintf(f, "| pp | tg | e2e ms | TTFT ms | decode ms/token | decode tok/s | roofline tok/s | %% of roofline |\n"
                 "|---:|---:|---:|---:|---:|---:|---:|---:|\n");
      for (int i = 0; i < nrows; i++)
        fprintf(f, "| %lld | %lld | %.1f | %.2f | %.3f | %.1f | %.1f | %.1f |\n", (long long)rows[i].pp, (long long)rows[i].tg,
                rows[i].e2e_med, rows[i].ttft_med, rows[i].decode_ms_tok, rows[i].tok_s, rows[i].roof_tok_s, rows[i].pct_roof);
      fprintf(f, "\nWeights on the device %.2f GB; KV cache %lld tokens (%.1f KB/token); activations and workspaces %.2f GB; "
                 "peak device memory in use %.2f GB (whole process, as cudaMemGetInfo reports).\n",
              mem.weights_bytes / 1e9, (long long)mem.max_ctx, mem.kv_bytes_per_token / 1e3, mem.activation_bytes / 1e9,
              (double)mem.device_peak_used_bytes / 1e9);
      fclose(f);
    }
    if (!rc) rc = write_plots_script(o->out_dir, err);
    if (!rc && env) {
      cJSON_AddStringToObject(env, "command", o->command ? o->command : "");
      cJSON *jp = cJSON_AddObjectToObject(env, "peaks");
      if (jp && pk.valid) {
        cJSON_AddStringToObject(jp, "gpu", pk.gpu);
        cJSON_AddNumberToObject(jp, "read_bw_gbps", pk.read_bw_gbps);
        cJSON_AddNumberToObject(jp, "gemm_bf16_tflops", pk.gemm_bf16_tflops);
      }
      cJSON *jm = cJSON_AddObjectToObject(env, "model");
      if (jm) {
        cJSON_AddStringToObject(jm, "name", label);
        cJSON_AddStringToObject(jm, "dir", o->model_dir);
        cJSON_AddNumberToObject(jm, "layers", (double)c->layers);
        cJSON_AddNumberToObject(jm, "hidden", (double)c->hidden);
        cJSON_AddNumberToObject(jm, "weights_bytes", mem.weights_bytes);
        cJSON_AddNumberToObject(jm, "decode_read_bytes", mem.decode_read_bytes);
        cJSON_AddNumberToObject(jm, "max_ctx", (double)mem.max_ctx);
        cJSON_AddNumberToObject(jm, "peak_device_bytes", (double)mem.device_peak_used_bytes);
      }
      cJSON_AddStringToObject(env, "variants", o->gpu.variants_path ? o->gpu.variants_path : QWEN3_DEFAULT_VARIANTS);
      cJSON *jd = cJSON_AddObjectToObject(env, "decode");
      if (jd) {
        cJSON_AddBoolToObject(jd, "cuda_graph", !o->gpu.no_graph);
        cJSON_AddBoolToObject(jd, "fused", !o->gpu.no_fuse);
        cJSON_AddBoolToObject(jd, "programmatic_dependent_launch", !o->gpu.no_graph && !o->gpu.no_pdl);
      }
      char msg[256];
      snprintf(p, sizeof p, "%s/env.json", o->out_dir);
      if (klab_json_write_file(env, p, msg, sizeof msg)) rc = klab_fail(err, "%s", msg);
    }
  }
  cJSON_Delete(env);
  free(prompt), free(e2e), free(ttft), free(dec);
  qwen3_runner_destroy(r);
  return rc;
}
