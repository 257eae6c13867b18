/* Conv and ConvTranspose on the CPU (float32; other float types are promoted by the executor).
 *
 * Conv picks one of three strategies (conv_run):
 *  - direct loops for groups with very few channels (depthwise): one multiply-add pass per
 *    kernel tap over an output row;
 *  - the AVX2/FMA direct kernel (conv_avx2.c) for stride-1 convolutions with a long enough
 *    reduction, when the CPU has AVX2;
 *  - for pointwise convolutions (1x1, stride 1, no padding) with AVX2, the small row-block
 *    GEMM of sgemm_avx2.c on W and X in place;
 *  - im2col + GEMM otherwise: for each (image, group), Y_g[Mg x P] = W_g[Mg x Kc] col[Kc x P]
 *    where col is the im2col expansion of X_g (Kc = Cg * prod(kernel), P = output positions).
 *    A 1x1 kernel with stride 1 and no padding reads X directly. col is built a tile of
 *    output positions at a time so the scratch stays bounded. Large GEMMs run one at a time,
 *    split over the pool, with im2col spread over the pool; many small ones (grouped) are
 *    spread over the pool whole.
 *
 * ConvTranspose: col[Mg*prod(kernel) x P_in] = W_g^T * X_g, then col2im scatters col into Y
 * (parallel over output channels, which own disjoint planes).
 *
 * Spatial dims are normalized to 3 (leading dims of size 1), so 1D/2D/3D share one code path;
 * per kernel column the valid output (or input) column range is precomputed, so the inner
 * loops have no bounds checks or divisions. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer_linalg.h"
#include "runtime/cpu/linalg.h"
#include "runtime/cpu/sgemm_avx2.h"

#define SCRATCH_BYTES ((int64_t)16 << 20)      /* im2col tile budget, serial mode */
#define TASK_SCRATCH_BYTES ((int64_t)2 << 20)  /* per task, parallel-over-groups mode */
#define MIN_TILE 64

typedef struct geom3 {
  int64_t in[3], out[3], k[3], s[3], d[3], pb[3];
  int64_t in_sp, out_sp, kprod;
  /* Per kw, the positions along W where tap kw is inside the image: Conv: output columns
   * [wlo, whi) whose input column is valid; ConvTranspose: input columns whose output column
   * is valid. Avoids divisions in the inner loops. */
  int64_t *wlo, *whi;
} geom3;

/* Valid j in [0, n) with 0 <= base + j * step < limit: returns [*lo, *hi). */
static inline void valid_range(int64_t base, int64_t step, int64_t limit, int64_t n, int64_t *lo, int64_t *hi) {
  int64_t a, b;
  if (step == 1) { /* the common case, without divisions */
    a = base >= 0 ? 0 : -base;
    b = limit - base;
  } else {
    a = base >= 0 ? 0 : (-base + step - 1) / step;
    b = base < limit ? (limit - 1 - base) / step + 1 : 0;
  }
  if (b > n) b = n;
  if (b < 0) b = 0;
  if (a > b) a = b;
  *lo = a;
  *hi = b;
}

/* Fills o from g; the caller releases it with geom3_release. */
static drt_status make_geom3(const drt_window_geom *g, bool transpose, geom3 *o) {
  memset(o, 0, sizeof *o);
  drt_window3 w;
  if (!drt_window_geom_to3(g, &w))
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%d spatial dims (the CPU kernel supports 1 to 3)", g->nsp);
  for (int i = 0; i < 3; i++) {
    o->in[i] = w.in[i];
    o->out[i] = w.out[i];
    o->k[i] = w.k[i];
    o->s[i] = w.s[i];
    o->d[i] = w.d[i];
    o->pb[i] = w.pb[i];
  }
  o->in_sp = o->in[0] * o->in[1] * o->in[2];
  o->out_sp = o->out[0] * o->out[1] * o->out[2];
  o->kprod = o->k[0] * o->k[1] * o->k[2];
  o->wlo = malloc((size_t)(2 * o->k[2] + 1) * sizeof(int64_t));
  if (!o->wlo) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "Conv tap table");
  o->whi = o->wlo + o->k[2];
  for (int64_t kw = 0; kw < o->k[2]; kw++) {
    if (transpose)
      valid_range(kw * o->d[2] - o->pb[2], o->s[2], o->out[2], o->in[2], &o->wlo[kw], &o->whi[kw]);
    else
      valid_range(kw * o->d[2] - o->pb[2], o->s[2], o->in[2], o->out[2], &o->wlo[kw], &o->whi[kw]);
  }
  return DRT_OK;
}

static void geom3_release(geom3 *o) {
  free(o->wlo);
  o->wlo = o->whi = NULL;
}


/* ---------------------------------------------------------------- im2col */

/* Row r of the col tile for output positions [p0, p1) of one group's input (Cg planes). */
static void im2col_row(const geom3 *g, const float *x, int64_t r, int64_t p0, int64_t p1, float *restrict dst) {
  int64_t c = r / g->kprod, kk = r % g->kprod;
  int64_t kw = kk % g->k[2], kh = (kk / g->k[2]) % g->k[1], kd = kk / (g->k[2] * g->k[1]);
  const float *plane = x + c * g->in_sp;
  int64_t ow = p0 % g->out[2], oh = (p0 / g->out[2]) % g->out[1], od = p0 / (g->out[2] * g->out[1]);
  int64_t wlo = g->wlo[kw], whi = g->whi[kw], sw = g->s[2], woff = kw * g->d[2] - g->pb[2];
  int64_t p = p0;
  while (p < p1) {
    int64_t end = g->out[2];
    if (end - ow > p1 - p) end = ow + (p1 - p);
    int64_t id = od * g->s[0] - g->pb[0] + kd * g->d[0];
    int64_t ih = oh * g->s[1] - g->pb[1] + kh * g->d[1];
    float *d = dst - ow; /* d[ow] is this segment's slot for output column ow */
    if (id < 0 || id >= g->in[0] || ih < 0 || ih >= g->in[1]) {
      for (int64_t o = ow; o < end; o++) d[o] = 0.0f;
    } else {
      const float *src = plane + (id * g->in[1] + ih) * g->in[2] + woff;
      int64_t lo = wlo > ow ? wlo : ow, hi = whi < end ? whi : end;
      if (hi < lo) hi = lo;
      for (int64_t o = ow; o < lo; o++) d[o] = 0.0f;
      if (sw == 1)
        for (int64_t o = lo; o < hi; o++) d[o] = src[o];
      else
        for (int64_t o = lo; o < hi; o++) d[o] = src[o * sw];
      for (int64_t o = hi; o < end; o++) d[o] = 0.0f;
    }
    dst += end - ow;
    p += end - ow;
    ow = 0;
    if (++oh == g->out[1]) {
      oh = 0;
      od++;
    }
  }
}

typedef struct im2col_args {
  const geom3 *g;
  const float *x;
  float *col;
  int64_t p0, p1;
} im2col_args;

static void im2col_range(void *arg, int64_t begin, int64_t end) {
  const im2col_args *a = arg;
  int64_t t = a->p1 - a->p0;
  for (int64_t r = begin; r < end; r++) im2col_row(a->g, a->x, r, a->p0, a->p1, a->col + r * t);
}

/* ---------------------------------------------------------------- Conv */

typedef struct conv_job {
  geom3 g;
  const float *x, *w, *bias;
  float *y;
  int64_t C, M, G, Cg, Mg, Kc;
  bool pointwise;
  int64_t tile; /* output positions per col tile */
  atomic_int oom;
} conv_job;

static void fill_bias(float *y, const float *bias, int64_t channels, int64_t plane) {
  for (int64_t m = 0; m < channels; m++) {
    float v = bias[m];
    float *p = y + m * plane;
    for (int64_t i = 0; i < plane; i++) p[i] = v;
  }
}

/* One (image, group) block with a single-threaded BLAS; col is the task's scratch. */
static void conv_block_serial(conv_job *j, int64_t blk, float *col) {
  int64_t n = blk / j->G, gi = blk % j->G;
  const float *xg = j->x + (n * j->C + gi * j->Cg) * j->g.in_sp;
  const float *wg = j->w + gi * j->Mg * j->Kc;
  float *yg = j->y + (n * j->M + gi * j->Mg) * j->g.out_sp;
  float beta = 0.0f;
  if (j->bias) {
    fill_bias(yg, j->bias + gi * j->Mg, j->Mg, j->g.out_sp);
    beta = 1.0f;
  }
  if (j->pointwise) {
    drt_sgemm_serial(false, false, j->Mg, j->g.out_sp, j->Kc, 1.0f, wg, j->Kc, xg, j->g.in_sp, beta, yg, j->g.out_sp);
    return;
  }
  for (int64_t p0 = 0; p0 < j->g.out_sp; p0 += j->tile) {
    int64_t p1 = p0 + j->tile < j->g.out_sp ? p0 + j->tile : j->g.out_sp, t = p1 - p0;
    for (int64_t r = 0; r < j->Kc; r++) im2col_row(&j->g, xg, r, p0, p1, col + r * t);
    bool done = j->Kc <= 512 && t >= 8 &&
                (beta != 0.0f ? drt_sgemm_rows_avx2_acc(wg, j->Kc, col, t, yg + p0, j->g.out_sp, 0, j->Mg, t, j->Kc, 1.0f)
                              : drt_sgemm_rows_avx2(wg, j->Kc, col, t, yg + p0, j->g.out_sp, 0, j->Mg, t, j->Kc, 1.0f));
    if (!done) drt_sgemm_serial(false, false, j->Mg, t, j->Kc, 1.0f, wg, j->Kc, col, t, beta, yg + p0, j->g.out_sp);
  }
}

static void conv_blocks_range(void *arg, int64_t begin, int64_t end) {
  conv_job *j = arg;
  float *col = NULL;
  if (!j->pointwise) {
    col = malloc((size_t)(j->Kc * j->tile) * sizeof(float));
    if (!col) {
      atomic_store(&j->oom, 1);
      return;
    }
  }
  for (int64_t b = begin; b < end; b++) conv_block_serial(j, b, col);
  free(col);
}

/* Direct convolution for groups with very few channels (depthwise: one input channel per
 * group), where a GEMM would have a tiny inner dimension. One task per output row
 * (image, channel, od, oh); each kernel tap is one branch-free multiply-add pass over the
 * outputs it reaches (vectorizes for stride 1). */
DRT_INLINE void conv_direct_rows_body(void *arg, int64_t begin, int64_t end) {
  const conv_job *j = arg;
  const geom3 *g = &j->g;
  int64_t sw = g->s[2], dw = g->d[2], pw = g->pb[2];
  for (int64_t r = begin; r < end; r++) {
    int64_t oh = r % g->out[1], od = (r / g->out[1]) % g->out[0], nm = r / (g->out[1] * g->out[0]);
    int64_t m = nm % j->M, n = nm / j->M, gi = m / j->Mg;
    float *y = j->y + nm * g->out_sp + (od * g->out[1] + oh) * g->out[2];
    float b0 = j->bias ? j->bias[m] : 0.0f;
    for (int64_t ow = 0; ow < g->out[2]; ow++) y[ow] = b0;
    int64_t dlo, dhi, hlo, hhi;
    valid_range(od * g->s[0] - g->pb[0], g->d[0], g->in[0], g->k[0], &dlo, &dhi);
    valid_range(oh * g->s[1] - g->pb[1], g->d[1], g->in[1], g->k[1], &hlo, &hhi);
    for (int64_t c = 0; c < j->Cg; c++) {
      const float *plane = j->x + (n * j->C + gi * j->Cg + c) * g->in_sp;
      const float *wm = j->w + (m * j->Cg + c) * g->kprod;
      for (int64_t kd = dlo; kd < dhi; kd++) {
        int64_t id = od * g->s[0] - g->pb[0] + kd * g->d[0];
        for (int64_t kh = hlo; kh < hhi; kh++) {
          int64_t ih = oh * g->s[1] - g->pb[1] + kh * g->d[1];
          const float *row = plane + (id * g->in[1] + ih) * g->in[2];
          const float *wk = wm + (kd * g->k[1] + kh) * g->k[2];
          for (int64_t kw = 0; kw < g->k[2]; kw++) {
            int64_t a = g->wlo[kw], cnt = g->whi[kw] - a;
            float wv = wk[kw];
            const float *restrict src = row + a * sw - pw + kw * dw;
            float *restrict dst = y + a;
            if (sw == 1)
              for (int64_t i = 0; i < cnt; i++) dst[i] += wv * src[i];
            else
              for (int64_t i = 0; i < cnt; i++) dst[i] += wv * src[i * sw];
          }
        }
      }
    }
  }
}

static void conv_direct_rows(void *arg, int64_t begin, int64_t end) { conv_direct_rows_body(arg, begin, end); }
DRT_TARGET_AVX2 static void conv_direct_rows_avx2(void *arg, int64_t begin, int64_t end) {
  conv_direct_rows_body(arg, begin, end);
}

static void conv_direct(drt_cpu_ctx *ctx, conv_job *j, int64_t batch) {
  const geom3 *g = &j->g;
  int64_t rows = batch * j->M * g->out[0] * g->out[1];
  int64_t per_row = g->out[2] * j->Kc;
  int64_t grain = per_row >= 8192 ? 1 : 8192 / (per_row > 0 ? per_row : 1);
  drt_parallel_for(ctx, rows, grain, drt_cpu_has_avx2_fma() ? conv_direct_rows_avx2 : conv_direct_rows, j);
}

static int64_t pick_tile(int64_t rows, int64_t positions, int64_t budget) {
  int64_t t = budget / (int64_t)sizeof(float) / (rows > 0 ? rows : 1);
  if (t < MIN_TILE) t = MIN_TILE;
  if (t > positions) t = positions;
  if (t < 1) t = 1;
  return t;
}

/* The im2col + GEMM path, one (image, group) block at a time, each GEMM split over the pool. */
static drt_status conv_gemm_serial(drt_cpu_ctx *ctx, conv_job *j, int64_t blocks) {
  j->tile = pick_tile(j->Kc, j->g.out_sp, SCRATCH_BYTES);
  float *col = NULL;
  if (!j->pointwise) {
    col = malloc((size_t)(j->Kc * j->tile) * sizeof(float));
    if (!col)
      return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "Conv im2col scratch of %" PRId64 " x %" PRId64, j->Kc, j->tile);
  }
  for (int64_t blk = 0; blk < blocks; blk++) {
    int64_t ni = blk / j->G, gi = blk % j->G;
    const float *xg = j->x + (ni * j->C + gi * j->Cg) * j->g.in_sp;
    const float *wgp = j->w + gi * j->Mg * j->Kc;
    float *yg = j->y + (ni * j->M + gi * j->Mg) * j->g.out_sp;
    float beta = 0.0f;
    if (j->bias) {
      fill_bias(yg, j->bias + gi * j->Mg, j->Mg, j->g.out_sp);
      beta = 1.0f;
    }
    if (j->pointwise) {
      drt_sgemm(ctx, false, false, j->Mg, j->g.out_sp, j->Kc, 1.0f, wgp, j->Kc, xg, j->g.in_sp, beta, yg, j->g.out_sp);
      continue;
    }
    for (int64_t p0 = 0; p0 < j->g.out_sp; p0 += j->tile) {
      int64_t p1 = p0 + j->tile < j->g.out_sp ? p0 + j->tile : j->g.out_sp, t = p1 - p0;
      im2col_args ia = {&j->g, xg, col, p0, p1};
      int64_t grain = t >= 2048 ? 1 : 2048 / t;
      drt_parallel_for(ctx, j->Kc, grain, im2col_range, &ia);
      if (!drt_sgemm_avx2(ctx, j->Mg, t, j->Kc, 1.0f, wgp, j->Kc, col, t, beta, yg + p0, j->g.out_sp))
        drt_sgemm(ctx, false, false, j->Mg, t, j->Kc, 1.0f, wgp, j->Kc, col, t, beta, yg + p0, j->g.out_sp);
    }
  }
  free(col);
  return DRT_OK;
}

/* Pointwise convolution (1x1, stride 1, no padding) with the small AVX2 GEMM: per (image,
 * group), Y_g[Mg x P] = W_g[Mg x Cg] X_g[Cg x P], both operands read in place; tasks are
 * blocks of PW_ROWS output channels, each followed by its bias while the rows are in cache. */
#define PW_ROWS 12

static void pointwise_rows(void *arg, int64_t begin, int64_t end) {
  const conv_job *j = arg;
  int64_t rb = (j->Mg + PW_ROWS - 1) / PW_ROWS, P = j->g.out_sp;
  for (int64_t t = begin; t < end; t++) {
    int64_t blk = t / rb, r0 = (t % rb) * PW_ROWS, r1 = r0 + PW_ROWS < j->Mg ? r0 + PW_ROWS : j->Mg;
    int64_t n = blk / j->G, gi = blk % j->G;
    const float *xg = j->x + (n * j->C + gi * j->Cg) * j->g.in_sp;
    const float *wg = j->w + gi * j->Mg * j->Kc;
    float *yg = j->y + (n * j->M + gi * j->Mg) * P;
    drt_sgemm_rows_avx2(wg, j->Kc, xg, j->g.in_sp, yg, P, r0, r1, P, j->Kc, 1.0f);
    if (j->bias)
      for (int64_t m = r0; m < r1; m++) {
        float b = j->bias[gi * j->Mg + m], *row = yg + m * P;
        for (int64_t i = 0; i < P; i++) row[i] += b;
      }
  }
}

static bool pointwise_avx2(drt_cpu_ctx *ctx, conv_job *j, int64_t N) {
  if (!j->pointwise || j->Kc > 512 || j->g.out_sp < 8 || !drt_cpu_has_avx2_fma()) return false;
  int64_t rb = (j->Mg + PW_ROWS - 1) / PW_ROWS;
  double per_task = (double)PW_ROWS * (double)j->Kc * (double)j->g.out_sp;
  int64_t grain = (int64_t)((double)(1 << 17) / per_task) + 1;
  drt_parallel_for(ctx, N * j->G * rb, grain, pointwise_rows, j);
  return true;
}

/* Strategy for one Conv. DRT_CONV_PATH (a debugging and testing knob) forces one:
 * "simple" (direct loops), "avx2" (direct AVX2 kernel where the CPU has it), "gemm"
 * (im2col / pointwise + BLAS); unset or "auto" picks by shape. */
typedef enum conv_path { PATH_AUTO, PATH_SIMPLE, PATH_AVX2, PATH_GEMM } conv_path;

static conv_path conv_path_from_env(void) {
  const char *e = getenv("DRT_CONV_PATH");
  if (!e) return PATH_AUTO;
  if (strcmp(e, "simple") == 0) return PATH_SIMPLE;
  if (strcmp(e, "avx2") == 0) return PATH_AVX2;
  if (strcmp(e, "gemm") == 0) return PATH_GEMM;
  return PATH_AUTO;
}

static drt_status conv_run(drt_cpu_ctx *ctx, conv_job *j, int64_t N, conv_path path) {
  if (N * j->M * j->g.out_sp == 0) return DRT_OK;
  if (j->Kc == 0) { /* no input channels: Y = bias or 0 */
    for (int64_t i = 0; i < N; i++) {
      float *yi = j->y + i * j->M * j->g.out_sp;
      if (j->bias)
        fill_bias(yi, j->bias, j->M, j->g.out_sp);
      else
        memset(yi, 0, (size_t)(j->M * j->g.out_sp) * sizeof(float));
    }
    return DRT_OK;
  }
  j->pointwise = j->g.kprod == 1;
  bool unit_stride = true;
  for (int i = 0; i < 3; i++) {
    if (j->g.s[i] != 1) unit_stride = false;
    if (j->g.s[i] != 1 || j->g.pb[i] != 0 || j->g.out[i] != j->g.in[i]) j->pointwise = false;
  }
  drt_conv_desc d = {N, j->C, j->M, j->G, {0}, {0}, {0}, {0}, {0}, {0}, j->x, j->w, j->bias, j->y};
  for (int i = 0; i < 3; i++) {
    d.in[i] = j->g.in[i];
    d.out[i] = j->g.out[i];
    d.k[i] = j->g.k[i];
    d.stride[i] = j->g.s[i];
    d.dil[i] = j->g.d[i];
    d.pad[i] = j->g.pb[i];
  }
  bool done = false;
  /* Depthwise: the AVX2 row kernel where it applies (stride 1), else direct loops. */
  if (j->Cg == 1 && (path == PATH_AUTO || path == PATH_AVX2)) {
    DRT_RETURN_IF_ERROR(drt_conv_depthwise_avx2(ctx, &d, &done));
    if (done) return DRT_OK;
  }
  /* Few channels per group: direct loops beat a GEMM with a tiny inner dim. */
  bool simple = j->Cg == 1 || (j->Mg <= 8 && j->Kc <= 64 && !j->pointwise);
  if (path == PATH_SIMPLE || (path == PATH_AUTO && simple)) {
    conv_direct(ctx, j, N);
    return DRT_OK;
  }
  /* The AVX2 kernel wins for stride 1 with a reduction long enough to amortize its tile
   * setup; pointwise convs stay on BLAS, which reads the channel planes in order. */
  bool avx2 = unit_stride && !j->pointwise && j->Kc >= 32;
  if (path == PATH_AVX2 || (path == PATH_AUTO && avx2)) {
    DRT_RETURN_IF_ERROR(drt_conv_avx2(ctx, &d, &done));
    if (done) return DRT_OK;
  }
  if ((path == PATH_AUTO || path == PATH_AVX2) && pointwise_avx2(ctx, j, N)) return DRT_OK;
  int threads = ctx && ctx->pool ? ctx->num_threads : 1;
  int64_t blocks = N * j->G;
  double work = (double)j->Mg * (double)j->Kc * (double)j->g.out_sp;
  if (threads > 1 && blocks >= threads && work < (double)(1 << 24)) {
    /* many small blocks: one per task, each with a single-threaded BLAS */
    j->tile = pick_tile(j->Kc, j->g.out_sp, TASK_SCRATCH_BYTES);
    drt_blas_threads_for_workers();
    drt_parallel_for(ctx, blocks, 1, conv_blocks_range, j);
    if (atomic_load(&j->oom)) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "Conv im2col scratch");
    return DRT_OK;
  }
  return conv_gemm_serial(ctx, j, blocks);
}

drt_status drt_cpu_conv(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  const drt_tensor *x = &in[0], *w = &in[1];
  const drt_tensor *b = n->num_inputs > 2 && in[2].data ? &in[2] : NULL;
  drt_tensor *y = &out[0];
  if (x->dtype != DRT_DTYPE_FLOAT32)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input 0 has dtype %s, the CPU Conv kernel needs float32",
                     drt_dtype_name(x->dtype));
  drt_window_geom wg;
  DRT_RETURN_IF_ERROR(drt_window_geom_compute(n, &x->shape, &w->shape, b ? &b->shape : NULL, &wg));
  conv_job j;
  memset(&j, 0, sizeof j);
  DRT_RETURN_IF_ERROR(make_geom3(&wg, false, &j.g));
  j.x = x->data;
  j.w = w->data;
  j.bias = b ? b->data : NULL;
  j.y = y->data;
  j.C = wg.in_channels;
  j.M = wg.out_channels;
  j.G = wg.group;
  j.Cg = j.C / j.G;
  j.Mg = j.M / j.G;
  j.Kc = j.Cg * j.g.kprod;
  atomic_init(&j.oom, 0);
  drt_status st = conv_run(ctx, &j, wg.batch, conv_path_from_env());
  geom3_release(&j.g);
  return st;
}

/* ---------------------------------------------------------------- ConvTranspose */

typedef struct col2im_args {
  const geom3 *g;
  const float *col; /* [Mg * kprod, t] */
  float *y;         /* group's output, [Mg, out_sp] */
  int64_t p0, p1;   /* input positions of the tile */
} col2im_args;

/* Adds the rows of output channel m into its plane. */
static void col2im_channel(const col2im_args *a, int64_t m) {
  const geom3 *g = a->g;
  int64_t t = a->p1 - a->p0, sw = g->s[2];
  float *plane = a->y + m * g->out_sp;
  for (int64_t kk = 0; kk < g->kprod; kk++) {
    int64_t kw = kk % g->k[2], kh = (kk / g->k[2]) % g->k[1], kd = kk / (g->k[2] * g->k[1]);
    const float *src = a->col + (m * g->kprod + kk) * t;
    int64_t iw = a->p0 % g->in[2], ih = (a->p0 / g->in[2]) % g->in[1], id = a->p0 / (g->in[2] * g->in[1]);
    int64_t wlo = g->wlo[kw], whi = g->whi[kw], woff = kw * g->d[2] - g->pb[2];
    int64_t p = a->p0;
    while (p < a->p1) {
      int64_t end = g->in[2];
      if (end - iw > a->p1 - p) end = iw + (a->p1 - p);
      int64_t od = id * g->s[0] - g->pb[0] + kd * g->d[0];
      int64_t oh = ih * g->s[1] - g->pb[1] + kh * g->d[1];
      if (od >= 0 && od < g->out[0] && oh >= 0 && oh < g->out[1]) {
        float *restrict dst = plane + (od * g->out[1] + oh) * g->out[2] + woff;
        const float *restrict s = src - iw; /* s[i] is the value for input column i */
        int64_t lo = wlo > iw ? wlo : iw, hi = whi < end ? whi : end;
        if (sw == 1)
          for (int64_t i = lo; i < hi; i++) dst[i] += s[i];
        else
          for (int64_t i = lo; i < hi; i++) dst[i * sw] += s[i];
      }
      src += end - iw;
      p += end - iw;
      iw = 0;
      if (++ih == g->in[1]) {
        ih = 0;
        id++;
      }
    }
  }
}

static void col2im_range(void *arg, int64_t begin, int64_t end) {
  for (int64_t m = begin; m < end; m++) col2im_channel(arg, m);
}

static drt_status conv_transpose_run(drt_cpu_ctx *ctx, const drt_window_geom *wgp, const geom3 *gp,
                                     const drt_tensor *x, const drt_tensor *w, const drt_tensor *b, drt_tensor *y) {
  const drt_window_geom wg = *wgp;
  const geom3 g = *gp;
  int64_t N = wg.batch, C = wg.in_channels, M = wg.out_channels, G = wg.group, Cg = C / G, Mg = M / G;
  int64_t rows = Mg * g.kprod;
  const float *xd = x->data, *wd = w->data, *bias = b ? b->data : NULL;
  float *yd = y->data;
  if (drt_shape_numel(&y->shape) == 0) return DRT_OK;
  for (int64_t i = 0; i < N; i++) {
    float *yi = yd + i * M * g.out_sp;
    if (bias)
      fill_bias(yi, bias, M, g.out_sp);
    else
      memset(yi, 0, (size_t)(M * g.out_sp) * sizeof(float));
  }
  if (Cg == 0 || g.in_sp == 0) return DRT_OK;
  bool pointwise = g.kprod == 1;
  for (int i = 0; i < 3; i++)
    if (g.s[i] != 1 || g.pb[i] != 0 || g.out[i] != g.in[i]) pointwise = false;
  int64_t tile = pick_tile(rows, g.in_sp, SCRATCH_BYTES);
  float *col = NULL;
  if (!pointwise) {
    col = malloc((size_t)(rows * tile) * sizeof(float));
    if (!col)
      return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "ConvTranspose scratch of %" PRId64 " x %" PRId64, rows, tile);
  }
  for (int64_t ni = 0; ni < N; ni++)
    for (int64_t gi = 0; gi < G; gi++) {
      const float *xg = xd + (ni * C + gi * Cg) * g.in_sp;
      const float *wgr = wd + gi * Cg * rows;
      float *yg = yd + (ni * M + gi * Mg) * g.out_sp;
      if (pointwise) {
        drt_sgemm(ctx, true, false, Mg, g.in_sp, Cg, 1.0f, wgr, rows, xg, g.in_sp, 1.0f, yg, g.out_sp);
        continue;
      }
      for (int64_t p0 = 0; p0 < g.in_sp; p0 += tile) {
        int64_t p1 = p0 + tile < g.in_sp ? p0 + tile : g.in_sp, t = p1 - p0;
        drt_sgemm(ctx, true, false, rows, t, Cg, 1.0f, wgr, rows, xg + p0, g.in_sp, 0.0f, col, t);
        col2im_args ca = {&g, col, yg, p0, p1};
        drt_parallel_for(ctx, Mg, 1, col2im_range, &ca);
      }
    }
  free(col);
  return DRT_OK;
}

drt_status drt_cpu_conv_transpose(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  const drt_tensor *x = &in[0], *w = &in[1];
  const drt_tensor *b = n->num_inputs > 2 && in[2].data ? &in[2] : NULL;
  drt_tensor *y = &out[0];
  if (x->dtype != DRT_DTYPE_FLOAT32)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input 0 has dtype %s, the CPU ConvTranspose kernel needs float32",
                     drt_dtype_name(x->dtype));
  drt_window_geom wg;
  DRT_RETURN_IF_ERROR(drt_window_geom_compute(n, &x->shape, &w->shape, b ? &b->shape : NULL, &wg));
  geom3 g;
  DRT_RETURN_IF_ERROR(make_geom3(&wg, true, &g));
  drt_status st = conv_transpose_run(ctx, &wg, &g, x, w, b, y);
  geom3_release(&g);
  return st;
}
