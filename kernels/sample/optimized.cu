// sample, optimized: no sort. The reference's sorted order is recovered only where a question is asked.
//
// Candidates are ordered by a 64-bit composite key (kernels/sample/sample_common.cuh); its top 12 bits
// (sign, exponent and 3 mantissa bits of the logit) name one of 4096 buckets, and buckets in descending
// order are already the order at bucket granularity. Five kernels, none of them waits on the host:
//  1 stats    (grid)     maximum composite per block (argmax / greedy / lmax), and clears the histograms.
//  2 hist     (grid)     per bucket: count and sum of w = exp(z - zmax) in double (shared-memory histogram
//                        per block, merged with global atomics); the last block to finish (atomic ticket)
//                        turns them into exclusive prefix sums in bucket order: pc[r], pw[r] for rank r.
//  3 scatter  (grid)     writes every (key, w) into its bucket's slice of a [V] array (positions from pc plus a
//                        per-bucket cursor): a one-pass bucket partition, unordered inside a bucket.
//  4 finish   (1 block)  answers the reference's questions in order - the top-k boundary and S, the top-p
//                        boundary, the min-p boundary, the draw - each by a binary search over the bucket
//                        prefix sums (which bucket) and then a radix select on the remaining key bits inside
//                        that one bucket (which element), with cumulative counts and weights carried along.
//                        A bucket of up to SEG_CAP candidates is staged in shared memory; larger ones (many
//                        equal logits) are read from the global slice, same code.
//  5 probs    (grid)     writes the renormalised distribution (or the greedy one-hot and token).
// Greedy by temperature launches only kernels 1 and 5. With temperature > 0, 0 < top_k <= FAST_MAX_K, top_k < V
// (Qwen3's preset) a top-k fast path replaces kernels 2-4: 1, count, gather, a one-block exact top-k sort
// and the reference's arithmetic on k values, then 5 only when probs are asked for (see "top-k fast path"
// below). docs/ops/sample.md has the design and its costs.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include "kernels/sample/sample_common.cuh"
#include "reference/rng.h"

#define OPT_THREADS 256                      // block size of the grid kernels
#define OPT_ELEMS 4                          // elements per thread in the hist / scatter / probs kernels
#define OPT_CHUNK (OPT_THREADS * OPT_ELEMS)  // elements per block
#define OPT_STATS_MAX_BLOCKS 512             // the stats kernel is grid-stride beyond this (bounds the partials)
#define NBUCKETS 4096                        // top 12 bits of the composite key
#define BUCKET_SHIFT 52
#define FIN_THREADS 1024
#define SEG_CAP 8192                         // candidates of one bucket staged in shared memory
#define HIST_SMEM_BYTES (NBUCKETS * (sizeof(double) + sizeof(uint32_t)))
#define FIN_SMEM_BYTES (SEG_CAP * (sizeof(uint64_t) + sizeof(double)) + (NBUCKETS + 1) * (sizeof(double) + sizeof(uint32_t)))

// Workspace carve-up (every region 256-byte aligned). Ranks: r = NBUCKETS - 1 - bucket, so rank 0 is the
// bucket of the largest keys and prefix arrays run in the order of the candidates.
typedef struct {
  uint64_t *partials;       // [stats_blocks] maximum composite per stats block
  uint32_t *ticket;         // last-block ticket of the hist kernel (cleared by the stats kernel)
  uint32_t *hist_count;     // [NBUCKETS] by bucket
  double *hist_weight;      // [NBUCKETS] by bucket
  uint32_t *cursor;         // [NBUCKETS] by bucket: slots handed out by the scatter kernel
  uint32_t *prefix_count;   // [NBUCKETS + 1] by rank: candidates in the buckets before rank r
  double *prefix_weight;    // [NBUCKETS + 1] by rank: their weight
  uint64_t *part_key;       // [V] keys, bucket slices in rank order
  double *part_weight;      // [V]
  uint64_t *key_last;       // the kept set is {key >= *key_last} (finisher -> probs kernel)
  double *w_kept;           // its total weight
  // Top-k fast path (kernels 2f-4f below); the candidates go to part_key[0, *fast_count).
  uint64_t *fast_thresh;    // smallest composite of the bucket holding the k-th largest (count -> gather, finish)
  uint32_t *fast_above;     // candidates in the buckets above that one (count -> finish)
  uint32_t *fast_count;     // gather's append cursor, reset by the count kernel; then the candidate count C
  int stats_blocks;
} opt_layout;

static size_t align_up(size_t x) { return (x + 255) & ~(size_t)255; }

// Lays the workspace out for V (base may be NULL to size it); returns the bytes needed.
static size_t opt_layout_make(int64_t V, char *base, opt_layout *L) {
  const int64_t chunks = (V + OPT_CHUNK - 1) / OPT_CHUNK;
  const int stats_blocks = (int)(chunks < OPT_STATS_MAX_BLOCKS ? chunks : OPT_STATS_MAX_BLOCKS);
  size_t off = 0;
#define OPT_CARVE(field, type, count)                          \
  do {                                                         \
    if (L) L->field = base ? (type *)(base + off) : NULL;     \
    off = align_up(off + (size_t)(count) * sizeof(type));     \
  } while (0)
  OPT_CARVE(partials, uint64_t, stats_blocks);
  OPT_CARVE(ticket, uint32_t, 1);
  OPT_CARVE(hist_count, uint32_t, NBUCKETS);
  OPT_CARVE(hist_weight, double, NBUCKETS);
  OPT_CARVE(cursor, uint32_t, NBUCKETS);
  OPT_CARVE(prefix_count, uint32_t, NBUCKETS + 1);
  OPT_CARVE(prefix_weight, double, NBUCKETS + 1);
  OPT_CARVE(part_key, uint64_t, V);
  OPT_CARVE(part_weight, double, V);
  OPT_CARVE(key_last, uint64_t, 1);
  OPT_CARVE(w_kept, double, 1);
  OPT_CARVE(fast_thresh, uint64_t, 1);
  OPT_CARVE(fast_above, uint32_t, 1);
  OPT_CARVE(fast_count, uint32_t, 1);
#undef OPT_CARVE
  if (L) L->stats_blocks = stats_blocks;
  return off;
}

// The row's statistics from the stats kernel's partials (every block of a later kernel derives them itself,
// so no kernel depends on another having run in greedy mode).
static __device__ sample_stats opt_stats(const opt_layout &L, float temperature, uint64_t *red) {
  uint64_t best = 0;
  for (int b = threadIdx.x; b < L.stats_blocks; b += blockDim.x) best = L.partials[b] > best ? L.partials[b] : best;
  return sample_decode_stats(sample_block_max_u64(best, red), temperature);
}

// Called by every thread of every block after the block's global atomics: true in the last block to arrive
// (one ticket per launch), which then sees every other block's atomics (a fence before taking the ticket,
// one after). `flag` is a __shared__ int of the caller.
static __device__ bool sample_arrive_last(uint32_t *ticket, int *flag) {
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) *flag = atomicAdd(ticket, 1u) == gridDim.x - 1;
  __syncthreads();
  const bool last = *flag != 0;
  if (last) __threadfence();
  return last;
}

// ---- 1: stats ----
__global__ void __launch_bounds__(OPT_THREADS) sample_opt_stats_kernel(const void *logits, int is_bf16, int64_t V, opt_layout L) {
  __shared__ uint64_t red[32];
  uint64_t best = 0;
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < V; i += stride) {
    const uint64_t k = sample_composite(sample_load_logit(logits, is_bf16, i), i);
    best = k > best ? k : best;
  }
  best = sample_block_max_u64(best, red);
  if (threadIdx.x == 0) L.partials[blockIdx.x] = best;
  for (int64_t x = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; x < NBUCKETS; x += stride) {
    L.hist_count[x] = 0;
    L.hist_weight[x] = 0.0;
    L.cursor[x] = 0;
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) *L.ticket = 0;
}

// ---- 2: hist (+ prefix sums in the last block) ----
__global__ void __launch_bounds__(OPT_THREADS)
sample_opt_hist_kernel(const void *logits, int is_bf16, int64_t V, float temperature, opt_layout L) {
  extern __shared__ __align__(16) unsigned char opt_hist_smem[];
  double *local_weight = (double *)opt_hist_smem;
  uint32_t *local_count = (uint32_t *)(local_weight + NBUCKETS);
  __shared__ uint64_t red[32];
  __shared__ uint32_t scan_count[32];
  __shared__ double scan_weight[32];
  __shared__ int is_last;
  const sample_stats st = opt_stats(L, temperature, red);
  if (st.greedy) return;
  for (int x = threadIdx.x; x < NBUCKETS; x += blockDim.x) {
    local_weight[x] = 0.0;
    local_count[x] = 0;
  }
  __syncthreads();
  const int64_t base = (int64_t)blockIdx.x * OPT_CHUNK;
#pragma unroll
  for (int e = 0; e < OPT_ELEMS; e++) {
    const int64_t i = base + e * OPT_THREADS + threadIdx.x;
    if (i < V) {
      const float l = sample_load_logit(logits, is_bf16, i);
      const int b = (int)(sample_composite(l, i) >> BUCKET_SHIFT);
      atomicAdd(&local_count[b], 1u);
      atomicAdd(&local_weight[b], sample_weight(l, st.lmax, temperature, st.zmax));
    }
  }
  __syncthreads();
  for (int x = threadIdx.x; x < NBUCKETS; x += blockDim.x)
    if (local_count[x]) {
      atomicAdd(&L.hist_count[x], local_count[x]);
      atomicAdd(&L.hist_weight[x], local_weight[x]);
    }
  if (!sample_arrive_last(L.ticket, &is_last)) return;

  // Exclusive prefix sums in rank order; thread t owns ranks [t * PER, (t + 1) * PER).
  const int PER = NBUCKETS / OPT_THREADS;
  uint32_t c[NBUCKETS / OPT_THREADS];
  double w[NBUCKETS / OPT_THREADS];
  uint32_t tc = 0;
  double tw = 0.0;
#pragma unroll
  for (int j = 0; j < PER; j++) {
    const int b = NBUCKETS - 1 - (threadIdx.x * PER + j);
    c[j] = __ldcg(&L.hist_count[b]);  // L2: written by other blocks' atomics
    w[j] = __ldcg(&L.hist_weight[b]);
    tc += c[j];
    tw += w[j];
  }
  // Block-wide exclusive scan of (tc, tw).
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  uint32_t ic = tc;
  double iw = tw;
#pragma unroll
  for (int o = 1; o < 32; o *= 2) {
    const uint32_t oc = __shfl_up_sync(SAMPLE_FULL_MASK, ic, o);
    const double ow = __shfl_up_sync(SAMPLE_FULL_MASK, iw, o);
    if (lane >= o) ic += oc, iw += ow;
  }
  if (lane == 31) scan_count[warp] = ic, scan_weight[warp] = iw;
  __syncthreads();
  if (warp == 0) {
    uint32_t vc = lane < nwarps ? scan_count[lane] : 0;
    double vw = lane < nwarps ? scan_weight[lane] : 0.0;
#pragma unroll
    for (int o = 1; o < 32; o *= 2) {
      const uint32_t oc = __shfl_up_sync(SAMPLE_FULL_MASK, vc, o);
      const double ow = __shfl_up_sync(SAMPLE_FULL_MASK, vw, o);
      if (lane >= o) vc += oc, vw += ow;
    }
    __syncwarp();
    if (lane < nwarps) scan_count[lane] = vc, scan_weight[lane] = vw;  // inclusive over warps
  }
  __syncthreads();
  uint32_t ec = __shfl_up_sync(SAMPLE_FULL_MASK, ic, 1);
  double ew = __shfl_up_sync(SAMPLE_FULL_MASK, iw, 1);
  if (lane == 0) ec = 0, ew = 0.0;
  if (warp > 0) ec += scan_count[warp - 1], ew += scan_weight[warp - 1];
#pragma unroll
  for (int j = 0; j < PER; j++) {
    const int r = threadIdx.x * PER + j;
    L.prefix_count[r] = ec;
    L.prefix_weight[r] = ew;
    ec += c[j];
    ew += w[j];
  }
  if (threadIdx.x == blockDim.x - 1) {
    L.prefix_count[NBUCKETS] = ec;
    L.prefix_weight[NBUCKETS] = ew;
  }
}

// ---- 3: scatter into bucket slices ----
__global__ void __launch_bounds__(OPT_THREADS)
sample_opt_scatter_kernel(const void *logits, int is_bf16, int64_t V, float temperature, opt_layout L) {
  __shared__ uint32_t local_count[NBUCKETS];
  __shared__ uint32_t local_base[NBUCKETS];
  __shared__ uint64_t red[32];
  const sample_stats st = opt_stats(L, temperature, red);
  if (st.greedy) return;
  for (int x = threadIdx.x; x < NBUCKETS; x += blockDim.x) local_count[x] = 0;
  __syncthreads();
  const int64_t base = (int64_t)blockIdx.x * OPT_CHUNK;
  float l[OPT_ELEMS];
  uint64_t key[OPT_ELEMS];
  uint32_t slot[OPT_ELEMS];
#pragma unroll
  for (int e = 0; e < OPT_ELEMS; e++) {
    const int64_t i = base + e * OPT_THREADS + threadIdx.x;
    l[e] = 0.0f, key[e] = 0, slot[e] = 0;
    if (i < V) {
      l[e] = sample_load_logit(logits, is_bf16, i);
      key[e] = sample_composite(l[e], i);
      slot[e] = atomicAdd(&local_count[key[e] >> BUCKET_SHIFT], 1u);
    }
  }
  __syncthreads();
  // One global reservation per (block, bucket): the block's candidates of a bucket land contiguously.
  for (int x = threadIdx.x; x < NBUCKETS; x += blockDim.x)
    if (local_count[x]) local_base[x] = L.prefix_count[NBUCKETS - 1 - x] + atomicAdd(&L.cursor[x], local_count[x]);
  __syncthreads();
#pragma unroll
  for (int e = 0; e < OPT_ELEMS; e++) {
    const int64_t i = base + e * OPT_THREADS + threadIdx.x;
    if (i < V) {
      const uint32_t pos = local_base[key[e] >> BUCKET_SHIFT] + slot[e];
      if ((int64_t)pos < V) {  // always true: the counts are the hist kernel's
        L.part_key[pos] = key[e];
        L.part_weight[pos] = sample_weight(l[e], st.lmax, temperature, st.zmax);
      }
    }
  }
}

// ---- 4: finish (one block) ----
enum { CRIT_POSITION = 0, CRIT_WEIGHT_GE = 1, CRIT_WEIGHT_GT = 2 };

typedef struct {
  uint32_t cnt[256];
  double wsum[256];
  unsigned long long kmax[256];
  int dec_digit;         // chosen digit, -1: the candidate set was empty
  int dec_clamped;       // the criterion was not met inside the set: its last digit was taken
  uint32_t dec_before_c; // count of the set's candidates before the digit
  double dec_before_w;   // and their weight
  uint32_t min_p_key;
  uint64_t red[32];
} fin_shared;

// The candidates of one bucket: staged in shared memory, or the global slice when larger than SEG_CAP.
typedef struct {
  const uint64_t *key;
  const double *weight;
  uint32_t m;
  int rank;
} fin_segment;

typedef struct {
  int status;        // 0: no candidate, 1: found, 2: criterion not met, the last candidate taken
  uint64_t key;
  uint32_t pos;      // position in the whole order
  double w_before;   // cumulative weight of the order before it
  double w_sel;      // its own weight
} fin_result;

static __device__ fin_segment fin_load_segment(const opt_layout &L, const uint32_t *pc, int rank, uint64_t *seg_key,
                                               double *seg_weight, int *staged_rank) {
  fin_segment s;
  const uint32_t start = pc[rank];
  s.m = pc[rank + 1] - start;
  s.rank = rank;
  if (s.m <= SEG_CAP) {
    if (*staged_rank != rank) {
      __syncthreads();  // nobody reads the previous bucket any more
      for (uint32_t j = threadIdx.x; j < s.m; j += blockDim.x) {
        seg_key[j] = L.part_key[start + j];
        seg_weight[j] = L.part_weight[start + j];
      }
      __syncthreads();
      *staged_rank = rank;
    }
    s.key = seg_key;
    s.weight = seg_weight;
  } else {
    s.key = L.part_key + start;
    s.weight = L.part_weight + start;
  }
  return s;
}

// Warp 0: scan the 256 digit bins in descending digit order (= the order of the candidates) and pick the bin
// holding the answer. Lane l owns digits 255 - 8l .. 255 - 8l - 7.
static __device__ void fin_decide(fin_shared *sh, int crit, uint32_t target_pos, double theta, uint32_t base_c, double base_w) {
  const int lane = threadIdx.x;
  uint32_t c[8];
  double w[8];
  uint32_t lc = 0;
  double lw = 0.0;
#pragma unroll
  for (int j = 0; j < 8; j++) {
    const int d = 255 - 8 * lane - j;
    c[j] = sh->cnt[d];
    w[j] = sh->wsum[d];
    lc += c[j];
    lw += w[j];
  }
  uint32_t ic = lc;
  double iw = lw;
#pragma unroll
  for (int o = 1; o < 32; o *= 2) {
    const uint32_t oc = __shfl_up_sync(SAMPLE_FULL_MASK, ic, o);
    const double ow = __shfl_up_sync(SAMPLE_FULL_MASK, iw, o);
    if (lane >= o) ic += oc, iw += ow;
  }
  uint32_t bc = __shfl_up_sync(SAMPLE_FULL_MASK, ic, 1);
  double bw = __shfl_up_sync(SAMPLE_FULL_MASK, iw, 1);
  if (lane == 0) bc = 0, bw = 0.0;
  const int64_t rel = (int64_t)target_pos - (int64_t)base_c;
  int hit = -1, last = -1;
  uint32_t hit_c = 0, last_c = 0;
  double hit_w = 0.0, last_w = 0.0;
#pragma unroll
  for (int j = 0; j < 8; j++) {
    if (c[j]) {
      int ok;
      if (crit == CRIT_POSITION) {
        ok = rel >= (int64_t)bc && rel < (int64_t)bc + (int64_t)c[j];
      } else {
        const double incl = base_w + (bw + w[j]);
        ok = crit == CRIT_WEIGHT_GE ? incl >= theta : incl > theta;
      }
      if (ok && hit < 0) hit = j, hit_c = bc, hit_w = bw;
      last = j, last_c = bc, last_w = bw;
    }
    bc += c[j];
    bw += w[j];
  }
  const unsigned hits = __ballot_sync(SAMPLE_FULL_MASK, hit >= 0);
  const unsigned nonempty = __ballot_sync(SAMPLE_FULL_MASK, last >= 0);
  if (hits) {
    if (lane == __ffs(hits) - 1) {
      sh->dec_digit = 255 - 8 * lane - hit;
      sh->dec_clamped = 0;
      sh->dec_before_c = hit_c;
      sh->dec_before_w = hit_w;
    }
  } else if (nonempty) {
    if (lane == 31 - __clz(nonempty)) {
      sh->dec_digit = 255 - 8 * lane - last;
      sh->dec_clamped = 1;
      sh->dec_before_c = last_c;
      sh->dec_before_w = last_w;
    }
  } else if (lane == 0) {
    sh->dec_digit = -1;
  }
}

// Radix select inside one bucket, one byte of the key per pass (bits 55..0; the bucket fixed 63..52), until
// the chosen bin holds one candidate. crit POSITION: the candidate at position target_pos of the whole order;
// WEIGHT_GE / WEIGHT_GT: the first candidate whose cumulative weight (base_w for everything before the bucket)
// reaches / exceeds theta. Every thread returns the same result.
static __device__ fin_result fin_select(const fin_segment &s, int crit, uint32_t target_pos, double theta, uint32_t base_c,
                                        double base_w, fin_shared *sh) {
  fin_result res = {0, 0, 0, 0.0, 0.0};
  uint64_t prefix = (uint64_t)(NBUCKETS - 1 - s.rank) << BUCKET_SHIFT;
  uint64_t mask = (uint64_t)(NBUCKETS - 1) << BUCKET_SHIFT;
  int clamped = 0;
  for (int shift = 48; shift >= 0; shift -= 8) {
    for (int x = threadIdx.x; x < 256; x += blockDim.x) {
      sh->cnt[x] = 0;
      sh->wsum[x] = 0.0;
      sh->kmax[x] = 0;
    }
    __syncthreads();
    for (uint32_t j = threadIdx.x; j < s.m; j += blockDim.x) {
      const uint64_t k = s.key[j];
      if ((k & mask) == prefix) {
        const int d = (int)((k >> shift) & 0xff);
        atomicAdd(&sh->cnt[d], 1u);
        atomicAdd(&sh->wsum[d], s.weight[j]);
        atomicMax(&sh->kmax[d], (unsigned long long)k);
      }
    }
    __syncthreads();
    if (threadIdx.x < 32) fin_decide(sh, crit, target_pos, theta, base_c, base_w);
    __syncthreads();
    const int d = sh->dec_digit;
    if (d < 0) break;  // no candidate (cannot happen for a non-empty bucket)
    clamped |= sh->dec_clamped;
    base_c += sh->dec_before_c;
    base_w += sh->dec_before_w;
    prefix |= (uint64_t)d << shift;
    mask |= (uint64_t)0xff << shift;
    if (sh->cnt[d] == 1 || shift == 0) {
      res.status = clamped ? 2 : 1;
      res.key = sh->kmax[d];
      res.pos = base_c;
      res.w_before = base_w;
      res.w_sel = sh->wsum[d];
      break;
    }
    __syncthreads();  // everyone has read this pass's bins before the next pass clears them
  }
  __syncthreads();
  return res;
}

// Rank of the bucket holding position t (0 <= t < V): pc[r] <= t < pc[r + 1]. Every thread searches (shared
// memory broadcast reads), so no barrier is needed.
static __device__ int fin_rank_of_position(const uint32_t *pc, uint32_t t) {
  int lo = 0, hi = NBUCKETS;  // pc[0] = 0 <= t < V = pc[NBUCKETS]
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (pc[mid] <= t) lo = mid;
    else hi = mid;
  }
  return lo;
}

static __device__ __forceinline__ int fin_reaches(double cum, double theta, int strict) { return strict ? cum > theta : cum >= theta; }

// Rank of the first non-empty bucket whose inclusive cumulative weight pw[r + 1] reaches theta (exceeds it
// when strict); -1 if the whole row does not.
static __device__ int fin_rank_of_weight(const double *pw, const uint32_t *pc, double theta, int strict) {
  if (!fin_reaches(pw[NBUCKETS], theta, strict)) return -1;
  int r;
  if (fin_reaches(pw[0], theta, strict)) {
    r = 0;  // theta <= 0: the first candidate
  } else {
    int lo = 0, hi = NBUCKETS;  // pw[lo] does not reach, pw[hi] does
    while (hi - lo > 1) {
      const int mid = (lo + hi) / 2;
      if (fin_reaches(pw[mid], theta, strict)) hi = mid;
      else lo = mid;
    }
    r = hi - 1;
  }
  while (r < NBUCKETS && pc[r + 1] == pc[r]) r++;  // an empty bucket can only "reach" by rounding: take the next
  return r < NBUCKETS ? r : -1;
}

// Warp 0, all lanes: the smallest order key whose value passes min-p, !(w / S < thresh). The predicate rises
// with the key (w does), fails at -inf (w = 0 < thresh) and holds at lmax (w = 1 > min_p): a 32-way search.
static __device__ uint32_t fin_min_p_key(float lmax, float temperature, double zmax, double S, double thresh) {
  const int lane = threadIdx.x % 32;
  uint32_t lo = sample_order_key(-INFINITY), hi = sample_order_key(lmax);  // fails at lo, passes at hi
  while (hi - lo > 1) {
    const uint32_t probe = lo + (uint32_t)(((uint64_t)(hi - lo) * (uint64_t)(lane + 1)) / 32u);  // lane 31: hi
    const double w = sample_weight(sample_key_value(probe), lmax, temperature, zmax);
    const unsigned pass = __ballot_sync(SAMPLE_FULL_MASK, !(w / S < thresh));
    if (!pass) break;  // not monotone (cannot happen: hi passes)
    const int first = __ffs(pass) - 1;
    uint32_t below = __shfl_up_sync(SAMPLE_FULL_MASK, probe, 1);
    if (lane == 0) below = lo;
    const uint32_t new_hi = __shfl_sync(SAMPLE_FULL_MASK, probe, first);
    const uint32_t new_lo = __shfl_sync(SAMPLE_FULL_MASK, below, first);
    lo = new_lo;
    hi = new_hi;
  }
  return hi;
}

static __device__ uint32_t fin_count_ge(const fin_segment &s, uint64_t T, fin_shared *sh) {
  uint64_t n = 0;
  for (uint32_t j = threadIdx.x; j < s.m; j += blockDim.x) n += s.key[j] >= T;
  return (uint32_t)sample_block_sum_u64(n, sh->red);
}

__global__ void __launch_bounds__(FIN_THREADS)
sample_opt_finish_kernel(int64_t V, ref_sample_params p, uint64_t seed, const int32_t *step_dev, int64_t step, int32_t *token_out,
                         opt_layout L) {
  extern __shared__ __align__(16) unsigned char opt_fin_smem[];
  uint64_t *seg_key = (uint64_t *)opt_fin_smem;
  double *seg_weight = (double *)(seg_key + SEG_CAP);
  double *pw = seg_weight + SEG_CAP;
  uint32_t *pc = (uint32_t *)(pw + NBUCKETS + 1);
  __shared__ fin_shared sh;
  const sample_stats st = opt_stats(L, p.temperature, sh.red);
  if (st.greedy) return;  // the probs kernel writes the token
  for (int x = threadIdx.x; x <= NBUCKETS; x += blockDim.x) {
    pc[x] = L.prefix_count[x];
    pw[x] = L.prefix_weight[x];
  }
  __syncthreads();
  int staged = -1;
  const uint32_t n = (uint32_t)V;

  // Top-k: the candidate at position n_k - 1 bounds the set; S = its cumulative weight.
  const int have_k = p.top_k > 0 && (int64_t)p.top_k < V;
  uint32_t n_k = n;
  uint64_t key_k = 0;
  double S = pw[NBUCKETS];
  if (have_k) {
    n_k = (uint32_t)p.top_k;
    const int r = fin_rank_of_position(pc, n_k - 1);
    const fin_segment s = fin_load_segment(L, pc, r, seg_key, seg_weight, &staged);
    const fin_result q = fin_select(s, CRIT_POSITION, n_k - 1, 0.0, pc[r], pw[r], &sh);
    key_k = q.key;
    S = q.w_before + q.w_sel;
  }

  // Top-p: the first candidate whose cumulative weight reaches top_p * S (beyond the top-k set: no cut).
  int have_p = 0;
  uint32_t n_p = n;
  uint64_t key_p = 0;
  double w_p = 0.0;
  if (p.top_p > 0.0f && p.top_p < 1.0f) {
    const double theta = (double)p.top_p * S;
    const int r = fin_rank_of_weight(pw, pc, theta, 0);
    if (r >= 0) {
      const fin_segment s = fin_load_segment(L, pc, r, seg_key, seg_weight, &staged);
      const fin_result q = fin_select(s, CRIT_WEIGHT_GE, 0, theta, pc[r], pw[r], &sh);
      if (q.status) {
        have_p = 1;
        n_p = q.pos + 1;
        key_p = q.key;
        w_p = q.w_before + q.w_sel;
      }
    }
  }

  // Min-p: the survivors are the candidates whose order key is >= the smallest passing key.
  uint32_t n_m = n;
  if (p.min_p > 0.0f && p.min_p < 1.0f) {
    const double thresh = (double)p.min_p * (1.0 / S);
    if (threadIdx.x < 32) {
      const uint32_t k = fin_min_p_key(st.lmax, p.temperature, st.zmax, S, thresh);
      if (threadIdx.x == 0) sh.min_p_key = k;
    }
    __syncthreads();
    const uint32_t kmin = sh.min_p_key;
    const int r = NBUCKETS - 1 - (int)(kmin >> (BUCKET_SHIFT - 32));
    const fin_segment s = fin_load_segment(L, pc, r, seg_key, seg_weight, &staged);
    n_m = pc[r] + fin_count_ge(s, (uint64_t)kmin << 32, &sh);
  }

  // The kept set {key >= key_last}: the first n_kept candidates; its total weight. When nothing was cut the
  // threshold 0 keeps all, and the last candidate itself is only looked up if the draw needs it.
  uint32_t n_kept = n_k < n_p ? n_k : n_p;
  n_kept = n_m < n_kept ? n_m : n_kept;
  if (n_kept < 1) n_kept = 1;
  const int all_kept = n_kept == n && !have_k && !have_p;
  uint64_t key_last;
  double w_kept;
  if (have_k && n_kept == n_k) {
    key_last = key_k, w_kept = S;
  } else if (have_p && n_kept == n_p) {
    key_last = key_p, w_kept = w_p;
  } else if (all_kept) {
    key_last = 0, w_kept = pw[NBUCKETS];
  } else {
    const int r = fin_rank_of_position(pc, n_kept - 1);
    const fin_segment s = fin_load_segment(L, pc, r, seg_key, seg_weight, &staged);
    const fin_result q = fin_select(s, CRIT_POSITION, n_kept - 1, 0.0, pc[r], pw[r], &sh);
    key_last = q.key;
    w_kept = q.w_before + q.w_sel;
  }

  // The draw: the first kept candidate whose cumulative weight exceeds u * total, else the last kept one.
  const int64_t s_step = step_dev ? (int64_t)*step_dev : step;
  const double target = klab_rand_uniform(seed, (uint64_t)s_step) * w_kept;
  int found = 0;
  uint64_t chosen = key_last;
  const int r_last = NBUCKETS - 1 - (int)(key_last >> BUCKET_SHIFT);
  const int r = fin_rank_of_weight(pw, pc, target, 1);
  if (r >= 0 && r <= r_last) {
    const fin_segment s = fin_load_segment(L, pc, r, seg_key, seg_weight, &staged);
    const fin_result q = fin_select(s, CRIT_WEIGHT_GT, 0, target, pc[r], pw[r], &sh);
    if (q.status && q.key >= key_last) chosen = q.key, found = 1;
  }
  if (!found && all_kept) {  // only by rounding: the last candidate of the whole order
    const int rl = fin_rank_of_position(pc, n - 1);
    const fin_segment s = fin_load_segment(L, pc, rl, seg_key, seg_weight, &staged);
    chosen = fin_select(s, CRIT_POSITION, n - 1, 0.0, pc[rl], pw[rl], &sh).key;
  }
  if (threadIdx.x == 0) {
    *token_out = (int32_t)sample_composite_index(chosen);
    *L.key_last = key_last;
    *L.w_kept = w_kept;
  }
}

// ---- 5: probs (and the greedy token) ----
__global__ void __launch_bounds__(OPT_THREADS)
sample_opt_probs_kernel(const void *logits, int is_bf16, int64_t V, float temperature, int32_t *token_out, float *probs_out,
                        opt_layout L) {
  __shared__ uint64_t red[32];
  const sample_stats st = opt_stats(L, temperature, red);
  const int64_t base = (int64_t)blockIdx.x * OPT_CHUNK;
  if (st.greedy) {
    if (blockIdx.x == 0 && threadIdx.x == 0) *token_out = (int32_t)st.argmax;
    if (probs_out) {
#pragma unroll
      for (int e = 0; e < OPT_ELEMS; e++) {
        const int64_t i = base + e * OPT_THREADS + threadIdx.x;
        if (i < V) probs_out[i] = i == st.argmax ? 1.0f : 0.0f;
      }
    }
    return;
  }
  if (!probs_out) return;
  const uint64_t key_last = *L.key_last;
  const double w_kept = *L.w_kept;
#pragma unroll
  for (int e = 0; e < OPT_ELEMS; e++) {
    const int64_t i = base + e * OPT_THREADS + threadIdx.x;
    if (i < V) {
      const float l = sample_load_logit(logits, is_bf16, i);
      probs_out[i] = sample_composite(l, i) >= key_last ? (float)(sample_weight(l, st.lmax, temperature, st.zmax) / w_kept) : 0.0f;
    }
  }
}

// ---- top-k fast path: 2f count, 3f gather, 4f finish (kernel 1 before, kernel 5 after when probs_out) ----
// With 0 < top_k <= FAST_MAX_K, top_k < V, the reference only ever looks at the first k candidates of its order:
// softmax over them, top-p and min-p cut a prefix of them, the draw lands inside the kept prefix. So instead
// of the weight histogram and the partition of all V logits: count the 4096 buckets (integers only), gather
// every logit of the bucket holding the k-th largest and of the buckets above it (C >= k candidates, usually
// a few dozen), then one block selects the exact top k, sorts them and replays the reference's arithmetic
// on them in its own order and expressions (sequential float64 sums in one thread: bit for bit the
// reference's sums, not a reordering of them).
#ifndef KLAB_SAMPLE_FAST_ELEMS
#define KLAB_SAMPLE_FAST_ELEMS 4  // logits per thread in count / gather (a build-time knob: fewer, longer blocks)
#endif
#define FAST_ELEMS KLAB_SAMPLE_FAST_ELEMS
#define FAST_CHUNK (OPT_THREADS * FAST_ELEMS)
#define FAST_MAX_K 1024   // top_k up to this takes the fast path (one sorted element per finisher thread)
#define FAST_CAP 8192     // candidates staged in shared memory; more (many equal logits) are read from global
#define FAST_RANK_MAX 128 // sort by counting ranks up to this k (k threads, k broadcast reads each); bitonic above
#define FAST_SMEM_BYTES (FAST_CAP * sizeof(uint64_t) + FAST_MAX_K * (2 * sizeof(uint64_t) + sizeof(double)))

// ---- 2f: count per bucket; the last block finds the bucket of the k-th largest ----
// No stats dependency: the counts do not need the weights, and in greedy cases (NaN, all -inf) the work is
// merely unused (the finisher writes the argmax). hist_count and ticket were cleared by the stats kernel.
__global__ void __launch_bounds__(OPT_THREADS) sample_opt_count_kernel(const void *logits, int is_bf16, int64_t V, uint32_t k, opt_layout L) {
  __shared__ uint32_t local_count[NBUCKETS];
  __shared__ uint32_t scan_count[32];
  __shared__ int is_last;
  for (int x = threadIdx.x; x < NBUCKETS; x += blockDim.x) local_count[x] = 0;
  __syncthreads();
  const int64_t base = (int64_t)blockIdx.x * FAST_CHUNK;
#pragma unroll
  for (int e = 0; e < FAST_ELEMS; e++) {
    const int64_t i = base + e * OPT_THREADS + threadIdx.x;
    if (i < V) atomicAdd(&local_count[sample_composite(sample_load_logit(logits, is_bf16, i), i) >> BUCKET_SHIFT], 1u);
  }
  __syncthreads();
  for (int x = threadIdx.x; x < NBUCKETS; x += blockDim.x)
    if (local_count[x]) atomicAdd(&L.hist_count[x], local_count[x]);
  if (!sample_arrive_last(L.ticket, &is_last)) return;

  // Exclusive prefix counts in rank order (rank 0 = the bucket of the largest keys); thread t owns ranks
  // [t * PER, (t + 1) * PER). The counts total V > k, so exactly one bucket b has before < k <= before + count.
  const int PER = NBUCKETS / OPT_THREADS;
  uint32_t c[NBUCKETS / OPT_THREADS];
  uint32_t tc = 0;
#pragma unroll
  for (int j = 0; j < PER; j++) {
    c[j] = __ldcg(&L.hist_count[NBUCKETS - 1 - (threadIdx.x * PER + j)]);  // L2: other blocks' atomics
    tc += c[j];
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  uint32_t ic = tc;
#pragma unroll
  for (int o = 1; o < 32; o *= 2) {
    const uint32_t oc = __shfl_up_sync(SAMPLE_FULL_MASK, ic, o);
    if (lane >= o) ic += oc;
  }
  if (lane == 31) scan_count[warp] = ic;
  __syncthreads();
  uint32_t ec = ic - tc;  // exclusive within the warp
  for (int w = 0; w < warp && w < nwarps; w++) ec += scan_count[w];
  if (ec < k && k <= ec + tc) {
#pragma unroll
    for (int j = 0; j < PER; j++) {
      if (ec < k && k <= ec + c[j]) {
        const int b = NBUCKETS - 1 - (threadIdx.x * PER + j);
        *L.fast_thresh = (uint64_t)b << BUCKET_SHIFT;
        *L.fast_above = ec;
      }
      ec += c[j];
    }
  }
  if (threadIdx.x == 0) *L.fast_count = 0;  // the gather kernel's cursor
}

// ---- 3f: gather every composite >= the threshold (C >= k of them; up to V for rows of equal logits) ----
__global__ void __launch_bounds__(OPT_THREADS) sample_opt_gather_kernel(const void *logits, int is_bf16, int64_t V, opt_layout L) {
  const uint64_t thresh = *L.fast_thresh;
  const int lane = threadIdx.x % 32;
  const int64_t base = (int64_t)blockIdx.x * FAST_CHUNK;
#pragma unroll
  for (int e = 0; e < FAST_ELEMS; e++) {
    const int64_t i = base + e * OPT_THREADS + threadIdx.x;
    uint64_t key = 0;
    if (i < V) key = sample_composite(sample_load_logit(logits, is_bf16, i), i);
    const int take = i < V && key >= thresh;
    // Warp-aggregated append: one global atomic per warp that has candidates (whole warps reach the ballot).
    const unsigned ball = __ballot_sync(SAMPLE_FULL_MASK, take);
    if (ball) {
      const int leader = __ffs(ball) - 1;
      uint32_t slot = 0;
      if (lane == leader) slot = atomicAdd(L.fast_count, (uint32_t)__popc(ball));
      slot = __shfl_sync(SAMPLE_FULL_MASK, slot, leader);
      if (take) L.part_key[slot + (uint32_t)__popc(ball & ((1u << lane) - 1u))] = key;
    }
  }
}

// ---- 4f: finish (one block): exact top k, sorted, then the reference's arithmetic ----
typedef struct {
  uint32_t cnt[2][256];  // digit bins, double-buffered: a pass clears the next pass's bins (2 barriers per pass)
  int dec_digit[2];      // the bin holding the rem-th largest of the matching candidates (per buffer)
  uint32_t dec_before[2];// candidates in the bins above it
  uint32_t dec_cnt[2];   // candidates in it
  uint32_t ntop;
  double sum;
  uint64_t red[32];
} fast_shared;

// Warp 0: the digit bin holding the rem-th largest (1-based) of the candidates counted in cnt, bins taken in
// descending digit order (= the order of the candidates). Lane l owns digits 255 - 8l .. 255 - 8l - 7. The
// bins partition (0, total] into (before, before + count], so exactly one (lane, digit) matches.
static __device__ void fast_decide(const uint32_t *cnt, uint32_t rem, fast_shared *sh, int slot) {
  const int lane = threadIdx.x;
  uint32_t c[8];
  uint32_t lc = 0;
#pragma unroll
  for (int j = 0; j < 8; j++) {
    c[j] = cnt[255 - 8 * lane - j];
    lc += c[j];
  }
  uint32_t ic = lc;
#pragma unroll
  for (int o = 1; o < 32; o *= 2) {
    const uint32_t oc = __shfl_up_sync(SAMPLE_FULL_MASK, ic, o);
    if (lane >= o) ic += oc;
  }
  uint32_t bc = ic - lc;
#pragma unroll
  for (int j = 0; j < 8; j++) {
    if (rem > bc && rem <= bc + c[j]) {
      sh->dec_digit[slot] = 255 - 8 * lane - j;
      sh->dec_before[slot] = bc;
      sh->dec_cnt[slot] = c[j];
    }
    bc += c[j];
  }
}

// Radix select of the rem-th largest among `bin` candidates whose keys match prefix under mask, the bits
// below hi not fixed yet: a pass per digit (8 bits, or the hi < 8 that remain), each counting the matching
// keys' digit (count_keys(cnt, prefix, mask, shift, dmask): every thread its own share, shared atomics),
// then warp 0 picks the bin. Stops once rem == bin (the whole matching set is inside the selection, so
// {key >= prefix} with the unfixed bits 0 is exactly it) or when every bit is fixed (keys are distinct: a
// full-mask bin holds one key). Called by every thread of the block; cnt[0] must be zero on entry.
typedef struct {
  uint64_t prefix, mask;
  uint32_t rem, bin;
  int hi;
} radix_state;

template <class CountKeys>
static __device__ __forceinline__ void radix_select(fast_shared *sh, radix_state &r, CountKeys count_keys) {
  for (int pass = 0; r.hi > 0 && r.rem != r.bin; pass++) {
    const int width = r.hi < 8 ? r.hi : 8, shift = r.hi - width;
    const uint64_t dmask = (1ull << width) - 1;
    r.hi = shift;
    uint32_t *cnt = sh->cnt[pass & 1];
    count_keys(cnt, r.prefix, r.mask, shift, dmask);
    // The other buffer was last read by warp 0's decision of the previous pass, before its second barrier.
    for (int x = threadIdx.x; x < 256; x += blockDim.x) sh->cnt[(pass + 1) & 1][x] = 0;
    __syncthreads();
    if (threadIdx.x < 32) fast_decide(cnt, r.rem, sh, pass & 1);
    __syncthreads();
    // Read before the next pass's first barrier; the next decision writes the other slot.
    r.rem -= sh->dec_before[pass & 1];
    r.bin = sh->dec_cnt[pass & 1];
    r.prefix |= (uint64_t)sh->dec_digit[pass & 1] << shift;
    r.mask |= dmask << shift;
  }
}

// ---- 2l: local top k (top_k <= LOCAL_MAX_K): replaces stats, count and gather ----
// Block b (OPT_CHUNK logits) writes its maximum composite to partials[b] (the stats every later kernel
// derives; the launcher takes this path only when the grid has exactly stats_blocks blocks) and its own k
// largest composites (all of them if it has fewer) to part_key[b * k ...]. The global top k is among the
// union, which the finisher then searches like the gathered candidates (C = k * (blocks - 1) + the last
// block's share). Nothing is accumulated across blocks, so no workspace needs clearing and no ticket: one
// kernel instead of three. The block's k-th largest is found by the same radix select as the finisher's
// (8-bit digits from the top, stopping once the matching bin lies wholly inside the top k).
#define LOCAL_MAX_K 64
__global__ void __launch_bounds__(OPT_THREADS) sample_opt_local_kernel(const void *logits, int is_bf16, int64_t V, uint32_t k, opt_layout L) {
  __shared__ fast_shared sh;
  const int64_t base = (int64_t)blockIdx.x * OPT_CHUNK;
  const uint32_t n = (uint32_t)(V - base < OPT_CHUNK ? V - base : OPT_CHUNK);
  uint64_t key[OPT_ELEMS];
  bool valid[OPT_ELEMS];
  uint64_t best = 0;
#pragma unroll
  for (int e = 0; e < OPT_ELEMS; e++) {
    const int64_t i = base + e * OPT_THREADS + threadIdx.x;
    valid[e] = i < V;
    key[e] = valid[e] ? sample_composite(sample_load_logit(logits, is_bf16, i), i) : 0;
    best = key[e] > best ? key[e] : best;
  }
  for (int x = threadIdx.x; x < 2 * 256; x += blockDim.x) (&sh.cnt[0][0])[x] = 0;
  if (threadIdx.x == 0) sh.ntop = 0;
  best = sample_block_max_u64(best, sh.red);  // its barriers also publish the cleared bins
  if (threadIdx.x == 0) L.partials[blockIdx.x] = best;
  const uint32_t kb = k < n ? k : n;
  radix_state r = {0, 0, kb, n, 64};
  radix_select(&sh, r, [&](uint32_t *cnt, uint64_t prefix, uint64_t mask, int shift, uint64_t dmask) {
#pragma unroll
    for (int e = 0; e < OPT_ELEMS; e++)
      if (valid[e] && (key[e] & mask) == prefix) atomicAdd(&cnt[(key[e] >> shift) & dmask], 1u);
  });
  const uint64_t prefix = r.prefix;
  // Exactly kb keys are >= prefix (composites are distinct).
  uint64_t *out = L.part_key + (int64_t)blockIdx.x * k;
#pragma unroll
  for (int e = 0; e < OPT_ELEMS; e++)
    if (valid[e] && key[e] >= prefix) out[atomicAdd(&sh.ntop, 1u)] = key[e];
}

__global__ void __launch_bounds__(FIN_THREADS)
sample_opt_fast_finish_kernel(ref_sample_params p, uint64_t seed, const int32_t *step_dev, int64_t step, int32_t *token_out, opt_layout L,
                              uint32_t local_C) {
  extern __shared__ __align__(16) unsigned char opt_fast_smem[];
  uint64_t *stage = (uint64_t *)opt_fast_smem;  // [FAST_CAP] the candidates, when C <= FAST_CAP
  uint64_t *top = stage + FAST_CAP;              // [FAST_MAX_K] the top k, unordered (then bitonic-sorted in place)
  uint64_t *ranked = top + FAST_MAX_K;           // [FAST_MAX_K] the top k in order (rank-counting sort)
  double *prob = (double *)(ranked + FAST_MAX_K);// [FAST_MAX_K] w_j, then p_j
  __shared__ fast_shared sh;
  const sample_stats st = opt_stats(L, p.temperature, sh.red);  // identical in every thread: uniform branches
  if (st.greedy) {  // NaN or every logit -inf (temperature > 0 here): the argmax, as the probs kernel also writes
    if (threadIdx.x == 0) *token_out = (int32_t)st.argmax;
    return;
  }
  const uint32_t k = (uint32_t)p.top_k;
  // Count/gather path: C >= k composites >= fast_thresh (the bucket of the k-th largest; `above` of them in
  // higher buckets). Local path (local_C > 0): the blocks' local top k, C = local_C, no bucket fixed yet.
  const uint32_t C = local_C ? local_C : *L.fast_count;
  const uint32_t above = local_C ? 0u : *L.fast_above;
  const uint64_t *cand = L.part_key;
  if (C <= FAST_CAP) {
    for (uint32_t j = threadIdx.x; j < C; j += blockDim.x) stage[j] = L.part_key[j];
    cand = stage;
  }
  for (int x = threadIdx.x; x < 2 * 256; x += blockDim.x) (&sh.cnt[0][0])[x] = 0;
  if (threadIdx.x == 0) sh.ntop = 0;
  __syncthreads();

  // Radix select of the k-th largest composite. State: the candidates whose key matches prefix under mask
  // (bin of them) hold the k-th largest as their rem-th largest; everything above them is in the top k. The
  // count kernel already fixed the top 12 bits (the bucket); 8 bits per pass follow (44..51, ..., 4..11), and
  // a last 4-bit pass. Once rem == bin the whole matching set is in the top k, so {key >= prefix} (prefix with
  // its unfixed bits 0) is exactly the top k: that ends the search early (at the start when C == k), and the
  // last pass always ends it (keys are distinct, so a full-mask bin holds one key).
  // The local path starts with no bits fixed (hi = 64): passes at 56, 48, ..., 0.
  radix_state r = {local_C ? 0 : *L.fast_thresh, local_C ? 0 : (uint64_t)(NBUCKETS - 1) << BUCKET_SHIFT, k - above, C - above,
                   local_C ? 64 : BUCKET_SHIFT};
  radix_select(&sh, r, [&](uint32_t *cnt, uint64_t prefix, uint64_t mask, int shift, uint64_t dmask) {
    for (uint32_t j = threadIdx.x; j < C; j += blockDim.x) {
      const uint64_t key = cand[j];
      if ((key & mask) == prefix) atomicAdd(&cnt[(key >> shift) & dmask], 1u);
    }
  });
  const uint64_t prefix = r.prefix;

  // The top k, unordered; bitonic padding (key 0 is below every composite: the smallest order key is -inf's).
  uint32_t P = 1;
  while (P < k) P <<= 1;
  for (uint32_t j = threadIdx.x; j < C; j += blockDim.x) {
    const uint64_t key = cand[j];
    if (key >= prefix) {
      const uint32_t pos = atomicAdd(&sh.ntop, 1u);
      if (pos < k) top[pos] = key;  // always: exactly k keys pass
    }
  }
  if (k > FAST_RANK_MAX)
    for (uint32_t x = k + threadIdx.x; x < P; x += blockDim.x) top[x] = 0;
  __syncthreads();

  // Sort descending: the reference's order (z descending, index ascending) is the composite's order, and
  // composites are distinct, so the order is strict and the same.
  const uint64_t *sorted;
  if (k <= FAST_RANK_MAX) {
    if (threadIdx.x < k) {
      const uint64_t key = top[threadIdx.x];
      uint32_t r = 0;
      for (uint32_t j = 0; j < k; j++) r += top[j] > key;
      ranked[r] = key;
    }
    sorted = ranked;
  } else {
    for (uint32_t size = 2; size <= P; size <<= 1)
      for (uint32_t stride = size >> 1; stride > 0; stride >>= 1) {
        const uint32_t t = threadIdx.x, o = t ^ stride;
        if (t < P && o > t) {
          const uint64_t a = top[t], b = top[o];
          if ((t & size) == 0 ? a < b : a > b) top[t] = b, top[o] = a;  // descending runs where (t & size) == 0
        }
        __syncthreads();
      }
    sorted = top;
  }
  __syncthreads();

  // The reference's cut_prefix on the first n = k candidates: p_j = exp(z_j - zmax) (sample_weight: the same
  // expression, exactly 1 at the maximum), sum left to right, p_j /= sum; elementwise steps in parallel, every
  // sum sequential in thread 0 in the reference's order.
  for (uint32_t j = threadIdx.x; j < k; j += blockDim.x)
    prob[j] = sample_weight(sample_key_value((uint32_t)(sorted[j] >> 32)), st.lmax, p.temperature, st.zmax);
  __syncthreads();
  if (threadIdx.x == 0) {
    double sum = 0.0;
    for (uint32_t j = 0; j < k; j++) sum += prob[j];
    sh.sum = sum;
  }
  __syncthreads();
  const double sum = sh.sum;
  for (uint32_t j = threadIdx.x; j < k; j += blockDim.x) prob[j] /= sum;
  __syncthreads();
  if (threadIdx.x != 0) return;
  uint32_t kept = k;
  if (p.top_p > 0.0f && p.top_p < 1.0f) {
    double cum = 0.0;
    for (uint32_t j = 0; j < k; j++) {
      cum += prob[j];
      if (cum >= (double)p.top_p) {
        kept = j + 1;
        break;
      }
    }
  }
  if (p.min_p > 0.0f && p.min_p < 1.0f) {
    const double thresh = (double)p.min_p * prob[0];
    uint32_t j = 1;
    while (j < kept && !(prob[j] < thresh)) j++;
    kept = j;
  }
  double total = 0.0;
  for (uint32_t j = 0; j < kept; j++) total += prob[j];
  const int64_t s_step = step_dev ? (int64_t)*step_dev : step;
  const double target = klab_rand_uniform(seed, (uint64_t)s_step) * total;
  uint32_t chosen = kept - 1;
  double cum = 0.0;
  for (uint32_t j = 0; j < kept; j++) {
    cum += prob[j];
    if (cum > target) {
      chosen = j;
      break;
    }
  }
  *token_out = (int32_t)sample_composite_index(sorted[chosen]);
  // For the probs kernel: the kept set is {key >= key_last} and it writes w_j / w_kept; the reference writes
  // p_j / total = (w_j / sum) / total, so w_kept = sum * total (equal up to the last double rounding).
  *L.key_last = sorted[kept - 1];
  *L.w_kept = sum * total;
}

// ---- host launcher ----
extern "C" size_t sample_workspace_bytes(int64_t V) {
  if (V < 1) V = 1;
  const size_t opt = opt_layout_make(V, NULL, NULL);
  const size_t naive = (size_t)V * sizeof(double);
  return opt > naive ? opt : naive;
}

extern "C" int sample_optimized(const void *logits, klab_dtype dtype, int64_t V, const ref_sample_params *params, uint64_t seed,
                                const int32_t *step_dev, int64_t step, int32_t *token_out, float *probs_out, void *workspace,
                                size_t workspace_bytes, cudaStream_t stream, klab_err *err) {
  if (sample_check_args("optimized", logits, dtype, V, params, token_out, err)) return -1;
  opt_layout L;
  const size_t need = opt_layout_make(V, (char *)workspace, &L);
  if (!workspace || workspace_bytes < need || (uintptr_t)workspace % 16 != 0)
    return klab_fail(err, "sample optimized V=%lld: needs a 16-byte aligned workspace of %zu bytes (got %zu at %p)",
                     (long long)V, need, workspace_bytes, workspace);
  char ctx[96];
  static int smem_configured = 0;  // once per process: the attributes are per function, not per launch
  if (!smem_configured) {
    snprintf(ctx, sizeof ctx, "sample optimized V=%lld: shared-memory opt-in", (long long)V);
    KLAB_CUDA(err, cudaFuncSetAttribute((const void *)sample_opt_hist_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)HIST_SMEM_BYTES), ctx);
    KLAB_CUDA(err, cudaFuncSetAttribute((const void *)sample_opt_finish_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)FIN_SMEM_BYTES), ctx);
    KLAB_CUDA(err, cudaFuncSetAttribute((const void *)sample_opt_fast_finish_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)FAST_SMEM_BYTES),
              ctx);
    smem_configured = 1;
  }
  const int is_bf16 = dtype == KLAB_DT_BF16;
  const unsigned chunks = (unsigned)((V + OPT_CHUNK - 1) / OPT_CHUNK);
  // Top-k paths, chosen from V and the parameters alone (the launch sequence never depends on the data).
  const int topk_path = params->temperature > 0.0f && params->top_k > 0 && params->top_k <= FAST_MAX_K && (int64_t)params->top_k < V;
  if (topk_path && params->top_k <= LOCAL_MAX_K && (int64_t)chunks == L.stats_blocks) {
    // Local path: the blocks' own top k (one kernel, which also writes the stats partials), then the finisher.
    const uint32_t k = (uint32_t)params->top_k;
    const int64_t last = V - (int64_t)(chunks - 1) * OPT_CHUNK;
    const uint32_t C = k * (chunks - 1) + (uint32_t)(last < (int64_t)k ? last : (int64_t)k);
    snprintf(ctx, sizeof ctx, "sample optimized V=%lld top-k %d local", (long long)V, params->top_k);
    sample_opt_local_kernel<<<chunks, OPT_THREADS, 0, stream>>>(logits, is_bf16, V, k, L);
    KLAB_CHECK_LAUNCH(err, ctx);
    snprintf(ctx, sizeof ctx, "sample optimized V=%lld top-k %d finish", (long long)V, params->top_k);
    sample_opt_fast_finish_kernel<<<1, FIN_THREADS, FAST_SMEM_BYTES, stream>>>(*params, seed, step_dev, step, token_out, L, C);
    KLAB_CHECK_LAUNCH(err, ctx);
    if (probs_out) {
      snprintf(ctx, sizeof ctx, "sample optimized V=%lld top-k %d probs", (long long)V, params->top_k);
      sample_opt_probs_kernel<<<chunks, OPT_THREADS, 0, stream>>>(logits, is_bf16, V, params->temperature, token_out, probs_out, L);
      KLAB_CHECK_LAUNCH(err, ctx);
    }
    return 0;
  }
  snprintf(ctx, sizeof ctx, "sample optimized V=%lld stats", (long long)V);
  sample_opt_stats_kernel<<<L.stats_blocks, OPT_THREADS, 0, stream>>>(logits, is_bf16, V, L);
  KLAB_CHECK_LAUNCH(err, ctx);
  if (topk_path) {
    snprintf(ctx, sizeof ctx, "sample optimized V=%lld top-k %d count", (long long)V, params->top_k);
    const unsigned fast_chunks = (unsigned)((V + FAST_CHUNK - 1) / FAST_CHUNK);
    sample_opt_count_kernel<<<fast_chunks, OPT_THREADS, 0, stream>>>(logits, is_bf16, V, (uint32_t)params->top_k, L);
    KLAB_CHECK_LAUNCH(err, ctx);
    snprintf(ctx, sizeof ctx, "sample optimized V=%lld top-k %d gather", (long long)V, params->top_k);
    sample_opt_gather_kernel<<<fast_chunks, OPT_THREADS, 0, stream>>>(logits, is_bf16, V, L);
    KLAB_CHECK_LAUNCH(err, ctx);
    snprintf(ctx, sizeof ctx, "sample optimized V=%lld top-k %d finish", (long long)V, params->top_k);
    sample_opt_fast_finish_kernel<<<1, FIN_THREADS, FAST_SMEM_BYTES, stream>>>(*params, seed, step_dev, step, token_out, L, 0u);
    KLAB_CHECK_LAUNCH(err, ctx);
    if (probs_out) {  // without probs the finisher wrote the token, the greedy argmax included
      snprintf(ctx, sizeof ctx, "sample optimized V=%lld top-k %d probs", (long long)V, params->top_k);
      sample_opt_probs_kernel<<<chunks, OPT_THREADS, 0, stream>>>(logits, is_bf16, V, params->temperature, token_out, probs_out, L);
      KLAB_CHECK_LAUNCH(err, ctx);
    }
    return 0;
  }
  if (params->temperature > 0.0f) {  // else greedy for certain: the probs kernel does it all
    snprintf(ctx, sizeof ctx, "sample optimized V=%lld hist", (long long)V);
    sample_opt_hist_kernel<<<chunks, OPT_THREADS, HIST_SMEM_BYTES, stream>>>(logits, is_bf16, V, params->temperature, L);
    KLAB_CHECK_LAUNCH(err, ctx);
    snprintf(ctx, sizeof ctx, "sample optimized V=%lld scatter", (long long)V);
    sample_opt_scatter_kernel<<<chunks, OPT_THREADS, 0, stream>>>(logits, is_bf16, V, params->temperature, L);
    KLAB_CHECK_LAUNCH(err, ctx);
    snprintf(ctx, sizeof ctx, "sample optimized V=%lld finish", (long long)V);
    sample_opt_finish_kernel<<<1, FIN_THREADS, FIN_SMEM_BYTES, stream>>>(V, *params, seed, step_dev, step, token_out, L);
    KLAB_CHECK_LAUNCH(err, ctx);
  }
  snprintf(ctx, sizeof ctx, "sample optimized V=%lld probs", (long long)V);
  sample_opt_probs_kernel<<<probs_out ? chunks : 1u, OPT_THREADS, 0, stream>>>(logits, is_bf16, V, params->temperature, token_out,
                                                                              probs_out, L);
  KLAB_CHECK_LAUNCH(err, ctx);
  return 0;
}
