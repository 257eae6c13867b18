/* Direct stride-1 convolution with AVX2/FMA (float32, NCHW), chosen at run time when the
 * CPU has AVX2 and FMA; other CPUs (and other strides) use the im2col + BLAS path in conv.c.
 *
 * The input is copied once into a zero-padded buffer, so every kernel tap is a plain offset
 * and needs no bounds checks. Weights are repacked per group as [block of 16 output
 * channels][Cg * prod(kernel)][16] (32-byte aligned). The micro-kernel holds a tile of 16
 * output channels x 6 output positions in 12 ymm accumulators: per reduction step (input
 * channel, kernel tap) it loads two aligned weight vectors and broadcasts six input values,
 * feeding twelve FMAs. The six positions are consecutive in the flattened output, so a tile
 * may span output rows, and every position has its own input pointer. Work is split over
 * (image, group, channel block, block of output positions) tasks. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cpu/linalg.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "runtime/cpu/avx2_transpose.h"
#define HAVE_X86 1
#else
#define HAVE_X86 0
#endif

bool drt_cpu_has_avx2_fma(void) {
#if HAVE_X86
  /* every thread that races here computes and stores the same value */
  static atomic_int cached = -1;
  int v = atomic_load_explicit(&cached, memory_order_relaxed);
  if (v < 0) {
    __builtin_cpu_init();
    v = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    atomic_store_explicit(&cached, v, memory_order_relaxed);
  }
  return v != 0;
#else
  return false;
#endif
}

#if HAVE_X86

#define MR 16     /* output channels per tile (two vectors) */
#define NR 6      /* output positions per tile */
#define PBLOCK 96 /* output positions per task (a multiple of NR) */

typedef struct direct_job {
  const drt_conv_desc *d;
  const float *xp; /* padded input [N][C][Dp][Hp][Wp] */
  const float *wp; /* packed weights [G][mblocks][Kc][MR] */
  int64_t Dp, Hp, Wp, plane;
  int64_t Cg, Mg, Kc, mblocks;
  int64_t *toff; /* per reduction step (c, kd, kh, kw): input offset from the position's base */
  int64_t kchunk; /* reduction steps per chunk (whole input channels) */
} direct_job;

__attribute__((target("avx2,fma"))) static inline __m256i tail_mask(int64_t n) {
  /* lanes [0, n) set, n in [0, 8] */
  const int32_t idx[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int32_t)n), _mm256_loadu_si256((const __m256i *)idx));
}

#define STEP(i, X)                                                   \
  do {                                                               \
    __m256 b_ = _mm256_broadcast_ss((X) + o);                        \
    c##i##0 = _mm256_fmadd_ps(w0, b_, c##i##0);                      \
    c##i##1 = _mm256_fmadd_ps(w1, b_, c##i##1);                      \
  } while (0)

/* acc[NR][MR] += W[k0..k1) (packed, [k][MR]) x inputs at xb[i] + toff[k]. */
__attribute__((target("avx2,fma"))) static void kernel_16x6(const float *const *xb, const int64_t *toff, int64_t nk,
                                                           const float *w, float *acc) {
  __m256 c00 = _mm256_load_ps(acc + 0 * MR), c01 = _mm256_load_ps(acc + 0 * MR + 8);
  __m256 c10 = _mm256_load_ps(acc + 1 * MR), c11 = _mm256_load_ps(acc + 1 * MR + 8);
  __m256 c20 = _mm256_load_ps(acc + 2 * MR), c21 = _mm256_load_ps(acc + 2 * MR + 8);
  __m256 c30 = _mm256_load_ps(acc + 3 * MR), c31 = _mm256_load_ps(acc + 3 * MR + 8);
  __m256 c40 = _mm256_load_ps(acc + 4 * MR), c41 = _mm256_load_ps(acc + 4 * MR + 8);
  __m256 c50 = _mm256_load_ps(acc + 5 * MR), c51 = _mm256_load_ps(acc + 5 * MR + 8);
  const float *x0 = xb[0], *x1 = xb[1], *x2 = xb[2], *x3 = xb[3], *x4 = xb[4], *x5 = xb[5];
  for (int64_t k = 0; k < nk; k++, w += MR) {
    int64_t o = toff[k];
    __m256 w0 = _mm256_load_ps(w), w1 = _mm256_load_ps(w + 8);
    STEP(0, x0);
    STEP(1, x1);
    STEP(2, x2);
    STEP(3, x3);
    STEP(4, x4);
    STEP(5, x5);
  }
  _mm256_store_ps(acc + 0 * MR, c00);
  _mm256_store_ps(acc + 0 * MR + 8, c01);
  _mm256_store_ps(acc + 1 * MR, c10);
  _mm256_store_ps(acc + 1 * MR + 8, c11);
  _mm256_store_ps(acc + 2 * MR, c20);
  _mm256_store_ps(acc + 2 * MR + 8, c21);
  _mm256_store_ps(acc + 3 * MR, c30);
  _mm256_store_ps(acc + 3 * MR + 8, c31);
  _mm256_store_ps(acc + 4 * MR, c40);
  _mm256_store_ps(acc + 4 * MR + 8, c41);
  _mm256_store_ps(acc + 5 * MR, c50);
  _mm256_store_ps(acc + 5 * MR + 8, c51);
}


/* y[c * osp + i] = acc[i * MR + c] for c < mvalid, i < np: eight positions at a time as 8x8
 * register transposes of the [position][channel] accumulators, the rest one by one. */
__attribute__((target("avx2,fma"))) static void writeback(const float *acc, float *y, int64_t osp, int64_t np,
                                                          int mvalid) {
  int64_t i = 0;
  for (; i + 8 <= np; i += 8)
    for (int cb = 0; cb < mvalid; cb += 8) {
      const float *a = acc + i * MR + cb;
      const float *rows[8] = {a, a + MR, a + 2 * MR, a + 3 * MR, a + 4 * MR, a + 5 * MR, a + 6 * MR, a + 7 * MR};
      __m256 r[8];
      drt_avx2_transpose8(rows, 0, r);
      int cn = mvalid - cb < 8 ? mvalid - cb : 8;
      for (int c = 0; c < cn; c++) _mm256_storeu_ps(y + (cb + c) * osp + i, r[c]);
    }
  for (; i < np; i++)
    for (int c = 0; c < mvalid; c++) y[c * osp + i] = acc[i * MR + c];
}

/* Channel block mb of group g of image n, output positions [p0, p1) (at most PBLOCK). The
 * reduction runs in chunks of a few input channels: the chunk's packed weights and input
 * rows stay in L1 while every tile of the block uses them; the partial sums live in an
 * L1-resident [tile][position][channel] buffer and go to Y (transposed) at the end. */
static void task_run(const direct_job *j, int64_t n, int64_t g, int64_t mb, int64_t p0, int64_t p1) {
  const drt_conv_desc *d = j->d;
  int64_t m0 = g * j->Mg + mb * MR;
  int mvalid = (int)(j->Mg - mb * MR < MR ? j->Mg - mb * MR : MR);
  const float *wblk = j->wp + (g * j->mblocks + mb) * j->Kc * MR;
  const float *xg = j->xp + (n * d->c + g * j->Cg) * j->plane;
  int64_t osp = d->out[0] * d->out[1] * d->out[2];
  float *yg = d->y + (n * d->m + m0) * osp;
  _Alignas(32) float acc[PBLOCK * MR];
  const float *xb[PBLOCK];
  int64_t np = p1 - p0, ntiles = (np + NR - 1) / NR;
  /* input base of each position, walking (od, oh, ow) without divisions */
  int64_t ow = p0 % d->out[2], oh = (p0 / d->out[2]) % d->out[1], od = p0 / (d->out[2] * d->out[1]);
  int64_t sd = d->stride[0] * j->Hp * j->Wp, sh = d->stride[1] * j->Wp, sw = d->stride[2];
  const float *rowp = xg + od * sd + oh * sh;
  for (int64_t i = 0; i < np; i++) {
    xb[i] = rowp + ow * sw;
    if (++ow == d->out[2]) {
      ow = 0;
      rowp += sh;
      if (++oh == d->out[1]) {
        oh = 0;
        rowp = xg + ++od * sd;
      }
    }
  }
  for (int64_t i = np; i < ntiles * NR; i++) xb[i] = xb[np - 1];
  float b0[MR];
  for (int c = 0; c < MR; c++) b0[c] = d->bias && c < mvalid ? d->bias[m0 + c] : 0.0f;
  for (int64_t i = 0; i < ntiles * NR; i++) memcpy(acc + i * MR, b0, sizeof b0);
  for (int64_t k0 = 0; k0 < j->Kc; k0 += j->kchunk) {
    int64_t nk = j->Kc - k0 < j->kchunk ? j->Kc - k0 : j->kchunk;
    for (int64_t t = 0; t < ntiles; t++) kernel_16x6(xb + t * NR, j->toff + k0, nk, wblk + k0 * MR, acc + t * NR * MR);
  }
  writeback(acc, yg + p0, osp, np, mvalid);
}

static void tasks_range(void *arg, int64_t begin, int64_t end) {
  const direct_job *j = arg;
  const drt_conv_desc *d = j->d;
  int64_t osp = d->out[0] * d->out[1] * d->out[2];
  int64_t pblocks = (osp + PBLOCK - 1) / PBLOCK;
  for (int64_t t = begin; t < end; t++) {
    int64_t pb = t % pblocks, rest = t / pblocks;
    int64_t mb = rest % j->mblocks, ng = rest / j->mblocks;
    int64_t p0 = pb * PBLOCK, p1 = p0 + PBLOCK < osp ? p0 + PBLOCK : osp;
    task_run(j, ng / d->group, ng % d->group, mb, p0, p1);
  }
}

/* Zero-padded copy of the input, one (image, channel) plane per index: one memset of the
 * plane, then the valid part of each input row (few library calls per plane). */
static void pad_range(void *arg, int64_t begin, int64_t end) {
  const direct_job *j = arg;
  const drt_conv_desc *d = j->d;
  int64_t isp = d->in[0] * d->in[1] * d->in[2];
  int64_t lo = d->pad[2] < j->Wp ? d->pad[2] : j->Wp, hi = d->pad[2] + d->in[2];
  if (hi > j->Wp) hi = j->Wp;
  for (int64_t p = begin; p < end; p++) {
    const float *x = d->x + p * isp;
    float *o = (float *)j->xp + p * j->plane;
    memset(o, 0, (size_t)j->plane * sizeof(float));
    if (hi <= lo) continue;
    for (int64_t pd = 0; pd < j->Dp; pd++) {
      int64_t id = pd - d->pad[0];
      if (id < 0 || id >= d->in[0]) continue;
      for (int64_t ph = 0; ph < j->Hp; ph++) {
        int64_t ih = ph - d->pad[1];
        if (ih < 0 || ih >= d->in[1]) continue;
        memcpy(o + (pd * j->Hp + ph) * j->Wp + lo, x + (id * d->in[1] + ih) * d->in[2], (size_t)(hi - lo) * sizeof(float));
      }
    }
  }
}

/* 8x8 transpose of rows r[0..7] (8 floats each) into columns written at o + k * MR. */
__attribute__((target("avx2,fma"))) static inline void transpose8(const float *const *r, int64_t k, float *o) {
  __m256 t[8];
  drt_avx2_transpose8(r, k, t);
  for (int x = 0; x < 8; x++) _mm256_store_ps(o + x * MR, t[x]);
}

/* Packs the weights of one (group, channel block) per index: [Kc][MR], channels past Mg zero.
 * Eight reduction steps at a time as two 8x8 register transposes (the packed block is 32-byte
 * aligned: Kc * MR floats per block). */
__attribute__((target("avx2,fma"))) static void pack_range(void *arg, int64_t begin, int64_t end) {
  const direct_job *j = arg;
  const drt_conv_desc *d = j->d;
  for (int64_t b = begin; b < end; b++) {
    int64_t g = b / j->mblocks, mb = b % j->mblocks;
    float *o = (float *)j->wp + b * j->Kc * MR;
    const float *rows[MR];
    bool full = true;
    for (int c = 0; c < MR; c++) {
      int64_t m = mb * MR + c;
      rows[c] = m < j->Mg ? d->w + (g * j->Mg + m) * j->Kc : NULL;
      full &= rows[c] != NULL;
    }
    int64_t k = 0;
    if (full) {
      for (; k + 8 <= j->Kc; k += 8) {
        transpose8(rows, k, o + k * MR);
        transpose8(rows + 8, k, o + k * MR + 8);
      }
    }
    for (; k < j->Kc; k++)
      for (int c = 0; c < MR; c++) o[k * MR + c] = rows[c] ? rows[c][k] : 0.0f;
  }
}

drt_status drt_conv_avx2(drt_cpu_ctx *ctx, const drt_conv_desc *d, bool *done) {
  *done = false;
  if (!drt_cpu_has_avx2_fma()) return DRT_OK;
  direct_job j;
  memset(&j, 0, sizeof j);
  j.d = d;
  j.Cg = d->c / d->group;
  j.Mg = d->m / d->group;
  int64_t kprod = d->k[0] * d->k[1] * d->k[2];
  j.Kc = j.Cg * kprod;
  j.mblocks = (j.Mg + MR - 1) / MR;
  /* ~128 steps per chunk: 16 x 128 packed weights (8 KiB) plus the chunk's input rows fit L1 */
  j.kchunk = (128 / kprod > 1 ? 128 / kprod : 1) * kprod;
  /* the padded extent is exactly what the taps read */
  j.Dp = (d->out[0] - 1) * d->stride[0] + (d->k[0] - 1) * d->dil[0] + 1;
  j.Hp = (d->out[1] - 1) * d->stride[1] + (d->k[1] - 1) * d->dil[1] + 1;
  j.Wp = (d->out[2] - 1) * d->stride[2] + (d->k[2] - 1) * d->dil[2] + 1;
  /* no padding and nothing cut off along H/W: read the input in place */
  bool in_place = d->pad[0] == 0 && d->pad[1] == 0 && d->pad[2] == 0 && j.Hp == d->in[1] && j.Wp == d->in[2] &&
                  j.Dp <= d->in[0];
  if (in_place) j.Dp = d->in[0];
  j.plane = j.Dp * j.Hp * j.Wp;
  size_t xbytes = in_place ? 0 : (size_t)(d->n * d->c * j.plane) * sizeof(float);
  size_t wbytes = (size_t)(d->group * j.mblocks * j.Kc * MR) * sizeof(float);
  wbytes = (wbytes + 31) / 32 * 32;
  float *xp = malloc(xbytes ? xbytes : 1);
  float *wp = aligned_alloc(32, wbytes ? wbytes : 32);
  j.toff = malloc((size_t)(j.Kc > 0 ? j.Kc : 1) * sizeof(int64_t));
  if (!xp || !wp || !j.toff) {
    free(xp);
    free(wp);
    free(j.toff);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "Conv padded input (%zu bytes)", xbytes);
  }
  j.xp = in_place ? d->x : xp;
  j.wp = wp;
  for (int64_t c = 0, k = 0; c < j.Cg; c++)
    for (int64_t kd = 0; kd < d->k[0]; kd++)
      for (int64_t kh = 0; kh < d->k[1]; kh++)
        for (int64_t kw = 0; kw < d->k[2]; kw++)
          j.toff[k++] = c * j.plane + (kd * d->dil[0] * j.Hp + kh * d->dil[1]) * j.Wp + kw * d->dil[2];
  /* grains keep small copies on the calling thread (waking the pool costs more) */
  int64_t pack_grain = 16384 / (j.Kc * MR > 0 ? j.Kc * MR : 1), pad_grain = 32768 / (j.plane > 0 ? j.plane : 1);
  drt_parallel_for(ctx, d->group * j.mblocks, pack_grain > 1 ? pack_grain : 1, pack_range, &j);
  if (!in_place) drt_parallel_for(ctx, d->n * d->c, pad_grain > 1 ? pad_grain : 1, pad_range, &j);
  int64_t osp = d->out[0] * d->out[1] * d->out[2];
  int64_t tasks = d->n * d->group * j.mblocks * ((osp + PBLOCK - 1) / PBLOCK);
  drt_parallel_for(ctx, tasks, 1, tasks_range, &j);
  free(xp);
  free(wp);
  free(j.toff);
  *done = true;
  return DRT_OK;
}

/* ---------------------------------------------------------------- depthwise */

/* Depthwise (one input channel per group), stride 1: per output row, 16 columns at a time
 * stay in two accumulators across all kernel taps, each tap a broadcast weight times an
 * unaligned row load from the padded plane. Tasks are (image, output channel, output row). */
typedef struct dw_job {
  const drt_conv_desc *d;
  const float *xp;
  int64_t Dp, Hp, Wp, plane, Mg;
} dw_job;

__attribute__((target("avx2,fma"))) static void dw_rows(void *arg, int64_t begin, int64_t end) {
  const dw_job *j = arg;
  const drt_conv_desc *d = j->d;
  int64_t rows = d->out[0] * d->out[1], osp = rows * d->out[2], kprod = d->k[0] * d->k[1] * d->k[2];
  for (int64_t r = begin; r < end; r++) {
    int64_t row = r % rows, nm = r / rows, m = nm % d->m, n = nm / d->m;
    int64_t od = row / d->out[1], oh = row % d->out[1];
    int64_t c = m / j->Mg; /* the group's only input channel */
    const float *xr0 = j->xp + (n * d->c + c) * j->plane + (od * j->Hp + oh) * j->Wp;
    const float *w = d->w + m * kprod;
    float *y = d->y + nm * osp + row * d->out[2];
    __m256 b = _mm256_set1_ps(d->bias ? d->bias[m] : 0.0f);
    for (int64_t ow0 = 0; ow0 < d->out[2]; ow0 += 16) {
      __m256 a0 = b, a1 = b;
      const float *wk = w;
      for (int64_t kd = 0; kd < d->k[0]; kd++)
        for (int64_t kh = 0; kh < d->k[1]; kh++) {
          const float *xr = xr0 + (kd * d->dil[0] * j->Hp + kh * d->dil[1]) * j->Wp + ow0;
          for (int64_t kw = 0; kw < d->k[2]; kw++, wk++) {
            __m256 wv = _mm256_broadcast_ss(wk);
            a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xr + kw * d->dil[2]), a0);
            a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xr + kw * d->dil[2] + 8), a1);
          }
        }
      int64_t cols = d->out[2] - ow0;
      if (cols >= 16) {
        _mm256_storeu_ps(y + ow0, a0);
        _mm256_storeu_ps(y + ow0 + 8, a1);
      } else {
        _mm256_maskstore_ps(y + ow0, tail_mask(cols < 8 ? cols : 8), a0);
        if (cols > 8) _mm256_maskstore_ps(y + ow0 + 8, tail_mask(cols - 8), a1);
      }
    }
  }
}

static void dw_pad_range(void *arg, int64_t begin, int64_t end) {
  const dw_job *dj = arg;
  direct_job j;
  memset(&j, 0, sizeof j);
  j.d = dj->d;
  j.xp = dj->xp;
  j.Dp = dj->Dp;
  j.Hp = dj->Hp;
  j.Wp = dj->Wp;
  j.plane = dj->plane;
  pad_range(&j, begin, end);
}

drt_status drt_conv_depthwise_avx2(drt_cpu_ctx *ctx, const drt_conv_desc *d, bool *done) {
  *done = false;
  if (!drt_cpu_has_avx2_fma() || d->c != d->group) return DRT_OK;
  for (int i = 0; i < 3; i++)
    if (d->stride[i] != 1) return DRT_OK;
  dw_job j = {d, NULL, 0, 0, 0, 0, d->m / d->group};
  j.Dp = d->out[0] + (d->k[0] - 1) * d->dil[0];
  j.Hp = d->out[1] + (d->k[1] - 1) * d->dil[1];
  j.Wp = d->out[2] + (d->k[2] - 1) * d->dil[2];
  j.plane = j.Dp * j.Hp * j.Wp;
  /* + 16 floats: vector loads of the last row's tail may run past the end (lanes dropped) */
  size_t xbytes = (size_t)(d->n * d->c * j.plane + 16) * sizeof(float);
  float *xp = malloc(xbytes);
  if (!xp) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "Conv padded input (%zu bytes)", xbytes);
  memset(xp + d->n * d->c * j.plane, 0, 16 * sizeof(float));
  j.xp = xp;
  int64_t pad_grain = 32768 / (j.plane > 0 ? j.plane : 1);
  drt_parallel_for(ctx, d->n * d->c, pad_grain > 1 ? pad_grain : 1, dw_pad_range, &j);
  int64_t rows = d->n * d->m * d->out[0] * d->out[1];
  int64_t per_row = d->out[2] * d->k[0] * d->k[1] * d->k[2];
  int64_t grain = per_row >= 4096 ? 1 : 4096 / (per_row > 0 ? per_row : 1);
  drt_parallel_for(ctx, rows, grain, dw_rows, &j);
  free(xp);
  *done = true;
  return DRT_OK;
}

#else

drt_status drt_conv_avx2(drt_cpu_ctx *ctx, const drt_conv_desc *d, bool *done) {
  (void)ctx;
  (void)d;
  *done = false;
  return DRT_OK;
}

drt_status drt_conv_depthwise_avx2(drt_cpu_ctx *ctx, const drt_conv_desc *d, bool *done) {
  (void)ctx;
  (void)d;
  *done = false;
  return DRT_OK;
}

#endif
