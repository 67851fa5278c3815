/* The lab's CSV: one row per (op, shape, dtype, variant). Empty numeric field = unknown (NaN).
 * Text fields are quoted when they hold a comma, quote or newline (RFC 4180). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "harness/klab.h"

static const char *const columns[] = {
    "op", "variant", "vendor", "shape", "dtype", "status", "max_abs_err", "max_rel_err", "rel_l2", "seed",
    "median_us", "p10_us", "p90_us", "mean_us", "n", "event_median_us", "timer", "bytes", "flops", "ai",
    "gbps", "tflops", "pct_peak_bw", "pct_peak_flops", "pct_size_bw", "speedup_vs_vendor", "note"};
enum { NCOLS = sizeof columns / sizeof columns[0] };
/* Columns added after the first bundles were committed: a file without them reads as NaN there. */
static int optional_column(int c) { return strcmp(columns[c], "pct_size_bw") == 0; }

void klab_result_init(klab_result *r) {
  memset(r, 0, sizeof *r);
  r->max_abs_err = r->max_rel_err = r->rel_l2 = NAN;
  r->median_us = r->p10_us = r->p90_us = r->mean_us = r->event_median_us = NAN;
  r->bytes = r->flops = r->ai = r->gbps = r->tflops = NAN;
  r->pct_peak_bw = r->pct_peak_flops = r->speedup_vs_vendor = r->pct_size_bw = NAN;
  r->status = KLAB_ERROR;
}

void klab_csv_header(FILE *f) {
  for (int i = 0; i < NCOLS; i++) fprintf(f, "%s%s", i ? "," : "", columns[i]);
  fputc('\n', f);
}

static void put_text(FILE *f, const char *s) {
  if (strpbrk(s, ",\"\n\r") == NULL) {
    fputs(s, f);
    return;
  }
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"') fputc('"', f);
    fputc(*s, f);
  }
  fputc('"', f);
}

static void put_num(FILE *f, double v, const char *fmt) {
  if (isfinite(v)) fprintf(f, fmt, v);
}

void klab_csv_row(FILE *f, const klab_result *r) {
  put_text(f, r->op), fputc(',', f);
  put_text(f, r->variant), fputc(',', f);
  fprintf(f, "%d,", r->vendor);
  put_text(f, r->shape), fputc(',', f);
  put_text(f, r->dtype), fputc(',', f);
  fprintf(f, "%s,", klab_status_name(r->status));
  put_num(f, r->max_abs_err, "%.3e"), fputc(',', f);
  put_num(f, r->max_rel_err, "%.3e"), fputc(',', f);
  put_num(f, r->rel_l2, "%.3e"), fputc(',', f);
  fprintf(f, "%llu,", (unsigned long long)r->seed);
  put_num(f, r->median_us, "%.3f"), fputc(',', f);
  put_num(f, r->p10_us, "%.3f"), fputc(',', f);
  put_num(f, r->p90_us, "%.3f"), fputc(',', f);
  put_num(f, r->mean_us, "%.3f"), fputc(',', f);
  fprintf(f, "%d,", r->n);
  put_num(f, r->event_median_us, "%.3f"), fputc(',', f);
  put_text(f, r->timer), fputc(',', f);
  put_num(f, r->bytes, "%.0f"), fputc(',', f);
  put_num(f, r->flops, "%.0f"), fputc(',', f);
  put_num(f, r->ai, "%.4g"), fputc(',', f);
  put_num(f, r->gbps, "%.1f"), fputc(',', f);
  put_num(f, r->tflops, "%.4g"), fputc(',', f);
  put_num(f, r->pct_peak_bw, "%.1f"), fputc(',', f);
  put_num(f, r->pct_peak_flops, "%.1f"), fputc(',', f);
  put_num(f, r->pct_size_bw, "%.1f"), fputc(',', f);
  put_num(f, r->speedup_vs_vendor, "%.3f"), fputc(',', f);
  put_text(f, r->note);
  fputc('\n', f);
}

/* Split one CSV record (possibly spanning lines inside quotes) into fields, in place. */
static int split_record(char *line, char **fields, int max_fields) {
  int n = 0;
  char *p = line, *out = line;
  while (n < max_fields) {
    fields[n++] = out;
    if (*p == '"') {
      p++;
      for (;;) {
        if (*p == 0) return -1; /* unterminated quote */
        if (*p == '"' && p[1] == '"') { *out++ = '"'; p += 2; continue; }
        if (*p == '"') { p++; break; }
        *out++ = *p++;
      }
    } else {
      while (*p && *p != ',') *out++ = *p++;
    }
    if (*p == ',') { *out++ = 0; p++; continue; }
    if (*p == 0) { *out = 0; return n; }
    return -1; /* junk after a closing quote */
  }
  return -1;
}

static int parse_double(const char *s, double *v) {
  if (!*s) { *v = NAN; return 0; }
  char *end;
  errno = 0;
  *v = strtod(s, &end);
  return (*end == 0 && errno != ERANGE) ? 0 : -1;
}

static int copy_text(char *dst, size_t len, const char *src) {
  if (strlen(src) >= len) return -1;
  strcpy(dst, src);
  return 0;
}

static int parse_status(const char *s, klab_status *st) {
  for (int i = KLAB_PASS; i <= KLAB_ERROR; i++)
    if (strcmp(s, klab_status_name((klab_status)i)) == 0) { *st = (klab_status)i; return 0; }
  return -1;
}

/* Read a record: lines joined while a quote is open. Returns malloc'd string or NULL at EOF. */
static char *read_record(FILE *f) {
  size_t cap = 0, len = 0;
  char *buf = NULL;
  int in_quote = 0, c;
  while ((c = fgetc(f)) != EOF) {
    if (c == '"') in_quote = !in_quote;
    if (!in_quote && (c == '\n' || c == '\r')) {
      if (c == '\r') { int d = fgetc(f); if (d != '\n' && d != EOF) ungetc(d, f); }
      if (len == 0) continue; /* blank line */
      break;
    }
    if (len + 2 > cap) {
      cap = cap ? cap * 2 : 256;
      char *nb = realloc(buf, cap);
      if (!nb) { free(buf); return NULL; }
      buf = nb;
    }
    buf[len++] = (char)c;
  }
  if (!buf) return NULL;
  buf[len] = 0;
  return buf;
}

int klab_csv_read(const char *path, klab_result **rows_out, int *nrows_out, klab_err *err) {
  *rows_out = NULL;
  *nrows_out = 0;
  FILE *f = fopen(path, "r");
  if (!f) return klab_fail(err, "%s: cannot open: %s", path, strerror(errno));
  char *line = read_record(f);
  if (!line) { fclose(f); return klab_fail(err, "%s: empty file (no CSV header)", path); }
  char *fields[NCOLS + 1];
  int nf = split_record(line, fields, NCOLS + 1);
  int col_of[NCOLS];
  for (int c = 0; c < NCOLS; c++) {
    col_of[c] = -1;
    for (int i = 0; i < nf; i++)
      if (strcmp(fields[i], columns[c]) == 0) col_of[c] = i;
    if (col_of[c] < 0 && !optional_column(c)) {
      free(line);
      fclose(f);
      return klab_fail(err, "%s: header lacks column '%s'", path, columns[c]);
    }
  }
  free(line);
  int cap = 64, n = 0, lineno = 1;
  klab_result *rows = malloc((size_t)cap * sizeof *rows);
  if (!rows) { fclose(f); return klab_fail(err, "out of memory"); }
  while ((line = read_record(f)) != NULL) {
    lineno++;
    char *fl[NCOLS + 1];
    int k = split_record(line, fl, NCOLS + 1);
    if (k != nf) {
      free(line), free(rows), fclose(f);
      return klab_fail(err, "%s: record %d has %d fields, header has %d", path, lineno, k, nf);
    }
    if (n == cap) {
      cap *= 2;
      klab_result *nr = realloc(rows, (size_t)cap * sizeof *rows);
      if (!nr) { free(line), free(rows), fclose(f); return klab_fail(err, "out of memory"); }
      rows = nr;
    }
    klab_result *r = &rows[n];
    klab_result_init(r);
    const char *v[NCOLS];
    for (int c = 0; c < NCOLS; c++) v[c] = col_of[c] >= 0 ? fl[col_of[c]] : "";
    int bad = -1;
    double d, nd;
    if (copy_text(r->op, sizeof r->op, v[0])) bad = 0;
    else if (copy_text(r->variant, sizeof r->variant, v[1])) bad = 1;
    else if (parse_double(v[2], &d) || !(d == 0 || d == 1)) bad = 2;
    else if ((r->vendor = (int)d, copy_text(r->shape, sizeof r->shape, v[3]))) bad = 3;
    else if (copy_text(r->dtype, sizeof r->dtype, v[4])) bad = 4;
    else if (parse_status(v[5], &r->status)) bad = 5;
    else if (parse_double(v[6], &r->max_abs_err)) bad = 6;
    else if (parse_double(v[7], &r->max_rel_err)) bad = 7;
    else if (parse_double(v[8], &r->rel_l2)) bad = 8;
    else if (parse_double(v[9], &d) || !(d >= 0)) bad = 9;
    else if ((r->seed = strtoull(v[9], NULL, 10), parse_double(v[10], &r->median_us))) bad = 10;
    else if (parse_double(v[11], &r->p10_us)) bad = 11;
    else if (parse_double(v[12], &r->p90_us)) bad = 12;
    else if (parse_double(v[13], &r->mean_us)) bad = 13;
    else if (parse_double(v[14], &nd) || !(nd >= 0)) bad = 14;
    else if ((r->n = (int)nd, parse_double(v[15], &r->event_median_us))) bad = 15;
    else if (copy_text(r->timer, sizeof r->timer, v[16])) bad = 16;
    else if (parse_double(v[17], &r->bytes)) bad = 17;
    else if (parse_double(v[18], &r->flops)) bad = 18;
    else if (parse_double(v[19], &r->ai)) bad = 19;
    else if (parse_double(v[20], &r->gbps)) bad = 20;
    else if (parse_double(v[21], &r->tflops)) bad = 21;
    else if (parse_double(v[22], &r->pct_peak_bw)) bad = 22;
    else if (parse_double(v[23], &r->pct_peak_flops)) bad = 23;
    else if (parse_double(v[24], &r->pct_size_bw)) bad = 24;
    else if (parse_double(v[25], &r->speedup_vs_vendor)) bad = 25;
    else if (copy_text(r->note, sizeof r->note, v[26])) bad = 26;
    if (bad >= 0) {
      klab_fail(err, "%s: record %d: bad value '%s' in column '%s'", path, lineno, v[bad], columns[bad]);
      free(line), free(rows), fclose(f);
      return -1;
    }
    free(line);
    n++;
  }
  fclose(f);
  *rows_out = rows;
  *nrows_out = n;
  return 0;
}
