/* CPU kernels of the bilinear-sampling ops: GridSample, RoiAlign and DeformConv (below).
 * GridSample (opsets 16, 20, 22): X [N, C, d1..dr], grid [N, o1..or, r] with
 * normalized coordinates (last entry first: grid[..., 0] indexes dr), Y [N, C, o1..or].
 *
 * Follows onnx/reference/ops/op_grid_sample.py: a coordinate is denormalized (align_corners:
 * -1 and 1 are the corner pixels' centers, else their outer edges); "nearest" rounds it half
 * to even; a coordinate beyond the border [-0.5, d - 0.5] (or [0, d - 1] with align_corners)
 * is clamped to [0, d - 1] ("border") or reflected back ("reflection"). N-linear and N-cubic
 * (Keys, a = -0.75) interpolation is separable: the sum over the 2^r or 4^r neighbours of the
 * product of per-axis weights times the neighbour, whose per-axis index is resolved by the
 * padding mode (zeros: 0 outside; border: clamped; reflection: reflected and truncated).
 * Coordinates and weights in double; X float32 (float16/bfloat16 promoted) or float64. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cpu/cpu.h"

enum { GS_NEAREST, GS_LINEAR, GS_CUBIC };
enum { GS_ZEROS, GS_BORDER, GS_REFLECTION };

static double gs_reflect(double x, double lo, double hi) {
  double rng = hi - lo;
  if (x < lo) {
    double dx = lo - x;
    int64_t n = (int64_t)(dx / rng);
    double r = dx - (double)n * rng;
    return n % 2 == 0 ? lo + r : hi - r;
  }
  if (x > hi) {
    double dx = x - hi;
    int64_t n = (int64_t)(dx / rng);
    double r = dx - (double)n * rng;
    return n % 2 == 0 ? hi - r : lo + r;
  }
  return x;
}

static void cubic_coeffs(double x, double c[4]) {
  const double a = -0.75;
  x = fabs(x);
  c[0] = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a;
  c[1] = ((a + 2) * x - (a + 3)) * x * x + 1;
  c[2] = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1;
  c[3] = ((a * (2 - x) - 5 * a) * (2 - x) + 8 * a) * (2 - x) - 4 * a;
}

/* Index i along an axis of size d under the padding mode; -1 means "zero". */
static int64_t gs_index(int64_t i, int64_t d, int pad, double lo, double hi) {
  if (pad == GS_ZEROS) return i >= 0 && i < d ? i : -1;
  if (pad == GS_BORDER) return i < 0 ? 0 : i >= d ? d - 1 : i;
  int64_t r = (int64_t)gs_reflect((double)i, lo, hi);
  return r < 0 ? 0 : r >= d ? d - 1 : r;
}

static drt_status k_grid_sample(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const drt_tensor *x = &in[0], *grid = &in[1];
  const int r = x->shape.rank - 2;
  const char *ms = drt_node_attr_string(n, "mode", n->opset < 20 ? "bilinear" : "linear");
  const char *ps = drt_node_attr_string(n, "padding_mode", "zeros");
  int mode = !strcmp(ms, "nearest") ? GS_NEAREST : (!strcmp(ms, "cubic") || !strcmp(ms, "bicubic")) ? GS_CUBIC : GS_LINEAR;
  int pad = !strcmp(ps, "border") ? GS_BORDER : !strcmp(ps, "reflection") ? GS_REFLECTION : GS_ZEROS;
  bool align = drt_node_attr_int(n, "align_corners", 0) != 0;
  int64_t N = x->shape.dims[0], C = x->shape.dims[1], in_sp = 1, out_sp = 1;
  int64_t dims[DRT_MAX_RANK], istride[DRT_MAX_RANK];
  double lo[DRT_MAX_RANK], hi[DRT_MAX_RANK];
  for (int i = r - 1; i >= 0; i--) {
    dims[i] = x->shape.dims[2 + i];
    istride[i] = in_sp;
    in_sp *= dims[i];
    lo[i] = align ? 0.0 : -0.5;
    hi[i] = align ? (double)dims[i] - 1 : (double)dims[i] - 0.5;
  }
  for (int i = 0; i < r; i++) out_sp *= grid->shape.dims[1 + i];
  const int taps = mode == GS_NEAREST ? 1 : mode == GS_LINEAR ? 2 : 4;
  int64_t corners = 1;
  for (int i = 0; i < r; i++) corners *= taps;
  bool f64 = x->dtype == DRT_DTYPE_FLOAT64;
  for (int64_t b = 0; b < N; b++) {
    for (int64_t o = 0; o < out_sp; o++) {
      /* per axis: the tap indices (resolved by the padding mode, -1 = zero) and weights */
      int64_t idx[DRT_MAX_RANK][4];
      double w[DRT_MAX_RANK][4];
      for (int i = 0; i < r; i++) {
        double g = drt_load_f64(grid->dtype, grid->data, (size_t)((b * out_sp + o) * r + (r - 1 - i)));
        double v = align ? (g + 1) / 2.0 * (double)(dims[i] - 1) : ((g + 1) * (double)dims[i] - 1) / 2.0;
        if (mode == GS_NEAREST) v = nearbyint(v);
        if (v < lo[i] || v > hi[i]) {
          if (pad == GS_BORDER) v = v < 0 ? 0 : v > (double)(dims[i] - 1) ? (double)(dims[i] - 1) : v;
          else if (pad == GS_REFLECTION) v = gs_reflect(v, lo[i], hi[i]);
        }
        if (mode == GS_NEAREST) {
          idx[i][0] = gs_index((int64_t)v, dims[i], pad, lo[i], hi[i]);
          w[i][0] = 1;
          continue;
        }
        double f = floor(v), t = v - f;
        int64_t i0 = (int64_t)f;
        if (mode == GS_LINEAR) {
          w[i][0] = 1 - t, w[i][1] = t;
          for (int k = 0; k < 2; k++) idx[i][k] = gs_index(i0 + k, dims[i], pad, lo[i], hi[i]);
        } else {
          cubic_coeffs(t, w[i]);
          for (int k = 0; k < 4; k++) idx[i][k] = gs_index(i0 - 1 + k, dims[i], pad, lo[i], hi[i]);
        }
      }
      for (int64_t c = 0; c < C; c++) {
        size_t base = (size_t)((b * C + c) * in_sp);
        double acc = 0;
        for (int64_t k = 0; k < corners; k++) {
          int64_t rem = k, off = 0;
          double wt = 1;
          for (int i = r - 1; i >= 0; i--) {
            int t = (int)(rem % taps);
            rem /= taps;
            if (idx[i][t] < 0) {
              wt = 0;
              break;
            }
            wt *= w[i][t];
            off += idx[i][t] * istride[i];
          }
          if (wt != 0) acc += wt * (f64 ? ((const double *)x->data)[base + (size_t)off] : ((const float *)x->data)[base + (size_t)off]);
        }
        size_t at = (size_t)((b * C + c) * out_sp + o);
        if (f64) ((double *)out[0].data)[at] = acc;
        else ((float *)out[0].data)[at] = (float)acc;
      }
    }
  }
  return DRT_OK;
}

/* ---- RoiAlign ----------------------------------------------------------------------------
 * As onnx/reference/ops/op_roi_align.py (the ORT algorithm): a box (scaled, shifted by half a
 * pixel with half_pixel) split into output_height x output_width bins, each sampled on a grid of
 * sampling_ratio (or ceil(bin size)) points per axis; a point beyond [-1, size] contributes 0,
 * otherwise it is clamped into the map and read bilinearly. avg: the mean over the points; max:
 * the largest weighted corner over the points (that algorithm's max, not the max of the
 * interpolated values). */
static double ld(const drt_tensor *t, size_t i) { return drt_load_f64(t->dtype, t->data, i); }

static void st(drt_tensor *t, size_t i, double v) {
  drt_convert(t->dtype, (char *)t->data + i * drt_dtype_size(t->dtype), DRT_DTYPE_FLOAT64, &v, 1);
}

typedef struct roi_sample {
  int64_t pos[4];
  double w[4];
} roi_sample;

static drt_status k_roi_align(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const drt_tensor *x = &in[0], *rois = &in[1], *bi = &in[2];
  int64_t N = x->shape.dims[0], C = x->shape.dims[1], H = x->shape.dims[2], W = x->shape.dims[3];
  int64_t R = rois->shape.dims[0], OH = out[0].shape.dims[2], OW = out[0].shape.dims[3];
  int64_t sr = drt_node_attr_int(n, "sampling_ratio", 0);
  double scale = drt_node_attr_float(n, "spatial_scale", 1.0f);
  bool half = strcmp(drt_node_attr_string(n, "coordinate_transformation_mode", "half_pixel"), "half_pixel") == 0;
  bool max_mode = strcmp(drt_node_attr_string(n, "mode", "avg"), "max") == 0;
  for (int64_t r = 0; r < R; r++) {
    int64_t b = drt_load_i64(bi->dtype, bi->data, (size_t)r);
    if (b < 0 || b >= N)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "batch_indices[%" PRId64 "] = %" PRId64 " is outside [0, %" PRId64
                       ")", r, b, N);
    if (H == 0 || W == 0) { /* an empty map: every sample point adds 0 */
      for (int64_t k = 0; k < C * OH * OW; k++) st(&out[0], (size_t)(r * C * OH * OW + k), 0.0);
      continue;
    }
    double off = half ? 0.5 : 0.0;
    double sw = ld(rois, (size_t)(r * 4)) * scale - off, sh = ld(rois, (size_t)(r * 4 + 1)) * scale - off;
    double rw = ld(rois, (size_t)(r * 4 + 2)) * scale - off - sw, rh = ld(rois, (size_t)(r * 4 + 3)) * scale - off - sh;
    if (!half) {
      rw = rw > 1.0 ? rw : 1.0;
      rh = rh > 1.0 ? rh : 1.0;
    }
    double bh = rh / (double)OH, bw = rw / (double)OW;
    double ch = ceil(rh / (double)OH), cw = ceil(rw / (double)OW);
    int64_t gh = sr > 0 ? sr : (ch > 0 && ch < 1e6 ? (int64_t)ch : 0), gw = sr > 0 ? sr : (cw > 0 && cw < 1e6 ? (int64_t)cw : 0);
    int64_t count = gh * gw > 1 ? gh * gw : 1;
    /* the sample table: OH * OW bins of gh * gw points (a huge box or sampling_ratio is refused) */
    size_t npts = 0, nbytes = 0;
    if (__builtin_mul_overflow((size_t)(OH * OW), (size_t)(gh * gw), &npts) ||
        __builtin_mul_overflow(npts, sizeof(roi_sample), &nbytes) || npts > ((size_t)1 << 26))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "roi %" PRId64 " needs %" PRId64 "x%" PRId64 " bins of %" PRId64
                       "x%" PRId64 " sample points, more than 2^26 (a huge box or sampling_ratio)", r, OH, OW, gh, gw);
    roi_sample *pts = malloc(nbytes ? nbytes : 1);
    if (!pts) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "RoiAlign sample table of %zu points", npts);
    size_t k = 0;
    for (int64_t ph = 0; ph < OH; ph++)
      for (int64_t pw = 0; pw < OW; pw++)
        for (int64_t iy = 0; iy < gh; iy++)
          for (int64_t ix = 0; ix < gw; ix++, k++) {
            roi_sample *p = &pts[k];
            memset(p, 0, sizeof *p);
            double yy = sh + (double)ph * bh + ((double)iy + 0.5) * bh / (double)gh;
            double xx = sw + (double)pw * bw + ((double)ix + 0.5) * bw / (double)gw;
            /* outside the map, NaN included: the point adds 0 */
            if (!(yy >= -1.0 && yy <= (double)H && xx >= -1.0 && xx <= (double)W)) continue;
            yy = yy > 0 ? yy : 0;
            xx = xx > 0 ? xx : 0;
            int64_t yl = (int64_t)yy, xl = (int64_t)xx, yh, xh;
            if (yl >= H - 1) yh = yl = H - 1, yy = (double)yl;
            else yh = yl + 1;
            if (xl >= W - 1) xh = xl = W - 1, xx = (double)xl;
            else xh = xl + 1;
            double ly = yy - (double)yl, lx = xx - (double)xl, hy = 1.0 - ly, hx = 1.0 - lx;
            p->pos[0] = yl * W + xl, p->pos[1] = yl * W + xh, p->pos[2] = yh * W + xl, p->pos[3] = yh * W + xh;
            p->w[0] = hy * hx, p->w[1] = hy * lx, p->w[2] = ly * hx, p->w[3] = ly * lx;
          }
    for (int64_t c = 0; c < C; c++) {
      size_t base = (size_t)((b * C + c) * H * W);
      k = 0;
      for (int64_t ph = 0; ph < OH; ph++)
        for (int64_t pw = 0; pw < OW; pw++) {
          double acc = 0;
          bool first = true;
          for (int64_t q = 0; q < gh * gw; q++, k++) {
            const roi_sample *p = &pts[k];
            if (!max_mode) {
              for (int t = 0; t < 4; t++) acc += p->w[t] * ld(x, base + (size_t)p->pos[t]);
            } else {
              double v = p->w[0] * ld(x, base + (size_t)p->pos[0]);
              for (int t = 1; t < 4; t++) {
                double u = p->w[t] * ld(x, base + (size_t)p->pos[t]);
                v = u > v ? u : v;
              }
              acc = first || v > acc ? v : acc;
              first = false;
            }
          }
          if (!max_mode) acc /= (double)count;
          st(&out[0], (size_t)(((r * C + c) * OH + ph) * OW + pw), acc);
        }
    }
    free(pts);
  }
  return DRT_OK;
}

/* ---- DeformConv (2-D) --------------------------------------------------------------------
 * As onnx/reference/ops/op_deform_conv.py: every kernel tap of output (i, j) reads X bilinearly
 * (zeros outside) at its regular position plus the learned offset of its offset group, times
 * the mask when given; groups as in Conv. */
static double bilinear_zeros(const drt_tensor *x, size_t base, int64_t H, int64_t W, double y, double xx) {
  double y0 = floor(y), x0 = floor(xx), acc = 0;
  for (int dy = 0; dy < 2; dy++)
    for (int dx = 0; dx < 2; dx++) {
      double yi = y0 + dy, xi = x0 + dx;
      if (!(yi >= 0 && yi <= (double)(H - 1) && xi >= 0 && xi <= (double)(W - 1))) continue; /* NaN too */
      double w = (dy ? y - y0 : 1.0 - (y - y0)) * (dx ? xx - x0 : 1.0 - (xx - x0));
      acc += w * ld(x, base + (size_t)((int64_t)yi * W + (int64_t)xi));
    }
  return acc;
}

static drt_status k_deform_conv(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const drt_tensor *x = &in[0], *w = &in[1], *off = &in[2];
  const drt_tensor *bias = n->num_inputs > 3 && in[3].data ? &in[3] : NULL, *mask = n->num_inputs > 4 && in[4].data ? &in[4] : NULL;
  int64_t N = x->shape.dims[0], C = x->shape.dims[1], H = x->shape.dims[2], W = x->shape.dims[3];
  int64_t OC = w->shape.dims[0], ICG = w->shape.dims[1], KH = w->shape.dims[2], KW = w->shape.dims[3];
  int64_t OH = out[0].shape.dims[2], OW = out[0].shape.dims[3];
  int64_t group = drt_node_attr_int(n, "group", 1), og = drt_node_attr_int(n, "offset_group", 1);
  int64_t np = 0, nd = 0, ns = 0;
  const int64_t *pads = drt_node_attr_ints(n, "pads", &np), *dil = drt_node_attr_ints(n, "dilations", &nd),
                *str = drt_node_attr_ints(n, "strides", &ns);
  int64_t pt = pads ? pads[0] : 0, pl = pads ? pads[1] : 0, dh = dil ? dil[0] : 1, dw = dil ? dil[1] : 1;
  int64_t sh = str ? str[0] : 1, sw = str ? str[1] : 1;
  int64_t ocg = OC / group, icpo = C / og, K = KH * KW;
  for (int64_t b = 0; b < N; b++)
    for (int64_t o = 0; o < OC; o++) {
      int64_t g = o / ocg;
      for (int64_t i = 0; i < OH; i++)
        for (int64_t j = 0; j < OW; j++) {
          double acc = bias ? ld(bias, (size_t)o) : 0.0;
          for (int64_t c = 0; c < ICG; c++) {
            int64_t ic = g * ICG + c, ogi = ic / icpo;
            size_t xb = (size_t)((b * C + ic) * H * W);
            for (int64_t ki = 0; ki < KH; ki++)
              for (int64_t kj = 0; kj < KW; kj++) {
                int64_t k = ki * KW + kj;
                size_t oh_at = (size_t)((((b * og + ogi) * K + k) * 2) * OH * OW + i * OW + j);
                double y = (double)(-pt + sh * i + ki * dh) + ld(off, oh_at);
                double xx = (double)(-pl + sw * j + kj * dw) + ld(off, oh_at + (size_t)(OH * OW));
                double m = mask ? ld(mask, (size_t)(((b * og + ogi) * K + k) * OH * OW + i * OW + j)) : 1.0;
                double v = bilinear_zeros(x, xb, H, W, y, xx);
                acc += ld(w, (size_t)(((o * ICG + c) * KH + ki) * KW + kj)) * m * v;
              }
          }
          st(&out[0], (size_t)(((b * OC + o) * OH + i) * OW + j), acc);
        }
    }
  return DRT_OK;
}

const drt_cpu_kernel_entry drt_cpu_kernels_grid_sample[] = {
    {DRT_OP_GRID_SAMPLE, k_grid_sample, DRT_DT_BIT(DRT_DTYPE_FLOAT32) | DRT_DT_BIT(DRT_DTYPE_FLOAT64)},
    {DRT_OP_ROI_ALIGN, k_roi_align, DRT_DT_BIT(DRT_DTYPE_FLOAT32) | DRT_DT_BIT(DRT_DTYPE_FLOAT64)},
    {DRT_OP_DEFORM_CONV, k_deform_conv, DRT_DT_BIT(DRT_DTYPE_FLOAT32) | DRT_DT_BIT(DRT_DTYPE_FLOAT64)},
    {DRT_OP_COUNT_, NULL, 0},
};
