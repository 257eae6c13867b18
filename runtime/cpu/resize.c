/* CPU kernels for Resize (opsets 10-19) and Upsample (opsets 7, 9).
 *
 * The math follows onnx/reference/ops/op_resize.py: resizing is separable, so every resized
 * axis gets a table that maps each output position to `n` input positions (clamped to the
 * input, which is the reference's edge padding) and `n` weights, plus a fill flag for
 * positions whose value is replaced (tf_crop_and_resize extrapolation, or an all-excluded
 * window under exclude_outside). Coordinates are computed in double exactly as the reference
 * does; weights are applied in float32.
 *
 *   nearest          any dtype, moved by element size (one tap per axis, no arithmetic);
 *                    float64 is native so it moves exactly, float16/bfloat16 are promoted
 *   linear / cubic   float32 (the executor promotes float16/bfloat16); float64 and integer
 *                    inputs are converted to float32 here, integers rounded half-to-even
 *                    back with saturation
 *
 * Fast paths: nearest copies whole rows and duplicates repeated rows; linear over the last two
 * axes only (bilinear NCHW) runs one fused 2-D pass per plane, planes in parallel. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer.h"
#include "runtime/cpu/cpu.h"

typedef enum { RZ_NEAREST, RZ_LINEAR, RZ_CUBIC } rz_mode;
typedef enum { CT_HALF_PIXEL, CT_HALF_PIXEL_SYM, CT_PYTORCH, CT_ALIGN, CT_ASYM, CT_TF_CROP } rz_coord;
typedef enum { NM_ROUND_PREFER_FLOOR, NM_ROUND_PREFER_CEIL, NM_FLOOR, NM_CEIL, NM_SIMPLE } rz_nearest;

enum { FILL_NONE = 0, FILL_EXTRAP = 1, FILL_ZERO = 2 };

typedef struct rz_params {
  rz_mode mode;
  rz_coord coord;
  rz_nearest nearest;
  double cubic_a;
  bool exclude_outside, antialias;
  float extrapolation;
  int rank;
  double scale[DRT_MAX_RANK];
  float roi_lo[DRT_MAX_RANK], roi_hi[DRT_MAX_RANK];
  int order[DRT_MAX_RANK]; /* axes in processing order */
  int norder;
} rz_params;

typedef struct rz_axis {
  int64_t in_w, out_w;
  int n;           /* taps per output position */
  int64_t *idx;    /* out_w * n input positions, clamped to [0, in_w) */
  float *w;        /* out_w * n weights (NULL for nearest) */
  uint8_t *fill;   /* out_w FILL_* flags */
  bool identity;
} rz_axis;

/* ---- parameters --------------------------------------------------------------------------- */
static drt_status parse_enum(const char *attr, const char *v, const char *const *names, int count, int *out) {
  for (int i = 0; i < count; i++)
    if (!strcmp(v, names[i])) {
      *out = i;
      return DRT_OK;
    }
  return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute %s: unknown value '%s'", attr, v);
}

static bool tensor_present(const drt_tensor *t) { return t->data && drt_shape_numel(&t->shape) > 0; }

static drt_status rz_parse(const drt_node *n, const drt_tensor *in, const drt_tensor *out, rz_params *p) {
  static const char *const modes[] = {"nearest", "linear", "cubic"};
  static const char *const coords[] = {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel",
                                       "align_corners", "asymmetric", "tf_crop_and_resize"};
  static const char *const nearests[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
  memset(p, 0, sizeof *p);
  int r = in[0].shape.rank, v = 0;
  p->rank = r;
  const char *mode = drt_node_attr_string(n, "mode", "nearest");
  bool upsample = n->op == DRT_OP_UPSAMPLE;
  if (upsample && !strcmp(mode, "bilinear")) mode = "linear";
  DRT_RETURN_IF_ERROR(parse_enum("mode", mode, modes, 3, &v));
  p->mode = (rz_mode)v;
  for (int i = 0; i < r; i++) {
    p->scale[i] = 1.0;
    p->roi_lo[i] = 0.0f;
    p->roi_hi[i] = 1.0f;
  }
  int64_t axes[DRT_MAX_RANK], na = r;
  for (int i = 0; i < r; i++) axes[i] = i;
  if (upsample || n->opset < 11) {
    /* Upsample and Resize-10: asymmetric coordinates, nearest truncates (ceil when shrinking). */
    p->coord = CT_ASYM;
    p->nearest = NM_SIMPLE;
    p->cubic_a = -0.75;
    if (upsample && n->opset < 9) {
      int64_t cnt;
      const float *f = drt_node_attr_floats(n, "scales", &cnt);
      if (!f || cnt != r) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute scales must have %d values", r);
      for (int i = 0; i < r; i++) p->scale[i] = f[i];
    } else {
      if (n->num_inputs < 2 || !tensor_present(&in[1]) || drt_shape_numel(&in[1].shape) != r)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 1 'scales' must have %d values", r);
      for (int i = 0; i < r; i++) p->scale[i] = drt_load_f64(in[1].dtype, in[1].data, (size_t)i);
    }
  } else {
    DRT_RETURN_IF_ERROR(
        parse_enum("coordinate_transformation_mode",
                   drt_node_attr_string(n, "coordinate_transformation_mode", "half_pixel"), coords, 6, &v));
    p->coord = (rz_coord)v;
    DRT_RETURN_IF_ERROR(
        parse_enum("nearest_mode", drt_node_attr_string(n, "nearest_mode", "round_prefer_floor"), nearests, 4, &v));
    p->nearest = (rz_nearest)v;
    p->cubic_a = drt_node_attr_float(n, "cubic_coeff_a", -0.75f);
    p->exclude_outside = drt_node_attr_int(n, "exclude_outside", 0) != 0;
    p->extrapolation = drt_node_attr_float(n, "extrapolation_value", 0.0f);
    p->antialias = n->opset >= 18 && drt_node_attr_int(n, "antialias", 0) != 0;
    int64_t cnt;
    const int64_t *a = n->opset >= 18 ? drt_node_attr_ints(n, "axes", &cnt) : NULL;
    if (a) {
      if (cnt > r) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute axes has too many values");
      na = cnt;
      for (int64_t i = 0; i < na; i++) {
        int ax = 0;
        DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(a[i], r, &ax), "attribute axes");
        axes[i] = ax;
      }
    }
    const drt_tensor *roi = n->num_inputs > 1 ? &in[1] : NULL, *sc = n->num_inputs > 2 ? &in[2] : NULL;
    const drt_tensor *sz = n->num_inputs > 3 ? &in[3] : NULL;
    if (p->coord == CT_TF_CROP) {
      if (!roi || !tensor_present(roi) || drt_shape_numel(&roi->shape) != 2 * na)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 1 'roi' must have %d values for tf_crop_and_resize",
                         (int)(2 * na));
      for (int64_t i = 0; i < na; i++) {
        p->roi_lo[axes[i]] = (float)drt_load_f64(roi->dtype, roi->data, (size_t)i);
        p->roi_hi[axes[i]] = (float)drt_load_f64(roi->dtype, roi->data, (size_t)(na + i));
      }
    }
    if (sc && tensor_present(sc)) {
      if (drt_shape_numel(&sc->shape) != na)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 2 'scales' must have %d values", (int)na);
      for (int64_t i = 0; i < na; i++) p->scale[axes[i]] = drt_load_f64(sc->dtype, sc->data, (size_t)i);
    } else if (sz && tensor_present(sz)) {
      if (drt_shape_numel(&sz->shape) != na)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 3 'sizes' must have %d values", (int)na);
      const char *policy = n->opset >= 18 ? drt_node_attr_string(n, "keep_aspect_ratio_policy", "stretch") : "stretch";
      bool stretch = !strcmp(policy, "stretch"), larger = !strcmp(policy, "not_smaller");
      double s = larger ? 0.0 : INFINITY;
      for (int64_t i = 0; i < na; i++) {
        int64_t iw = in[0].shape.dims[axes[i]];
        double f = iw ? (double)drt_load_i64(sz->dtype, sz->data, (size_t)i) / (double)iw : 1.0;
        p->scale[axes[i]] = f;
        s = larger ? (f > s ? f : s) : (f < s ? f : s);
      }
      if (!stretch)
        for (int64_t i = 0; i < na; i++) p->scale[axes[i]] = s;
    } else {
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "one of 'scales' and 'sizes' must be given");
    }
  }
  p->norder = (int)na;
  for (int64_t i = 0; i < na; i++) p->order[i] = (int)axes[i];
  for (int i = 0; i < r; i++)
    if (!(p->scale[i] > 0) && out->shape.dims[i] > 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "scale %g for axis %d must be positive", p->scale[i], i);
  return DRT_OK;
}

/* ---- per-axis tables ------------------------------------------------------------------------ */
/* Source coordinate of output position y (op_resize.py _compute_x_ori). */
static double rz_x_ori(const rz_params *p, int axis, double y, int64_t in_w, int64_t out_w) {
  double scale = p->scale[axis], ow = scale * (double)in_w, iw = (double)in_w;
  switch (p->coord) {
    case CT_ALIGN: return ow == 1 ? 0.0 : y * (iw - 1) / (ow - 1);
    case CT_ASYM: return y / scale;
    case CT_TF_CROP: {
      /* the reference does the roi arithmetic in float32 */
      float span = p->roi_hi[axis] - p->roi_lo[axis];
      double x = ow == 1 ? (double)(span * (float)(in_w - 1) / 2.0f) : y * (double)span * (iw - 1) / (ow - 1);
      return x + (double)(p->roi_lo[axis] * (float)(in_w - 1));
    }
    case CT_PYTORCH: return ow == 1 ? -0.5 : (y + 0.5) / scale - 0.5;
    case CT_HALF_PIXEL: return (y + 0.5) / scale - 0.5;
    case CT_HALF_PIXEL_SYM: {
      double adjustment = (double)out_w / ow, center = iw / 2, offset = center * (1 - adjustment);
      return offset + (y + 0.5) / scale - 0.5;
    }
  }
  return 0.0;
}

static double cubic_kernel(double x, double a) {
  x = fabs(x);
  double x2 = x * x, x3 = x * x2;
  if (x <= 1) return (a + 2) * x3 - (a + 3) * x2 + 1;
  if (x < 2) return a * x3 - 5 * a * x2 + 8 * a * x - 4 * a;
  return 0.0;
}

/* Taps per output position for this axis (depends on the scale when antialiasing). */
static int rz_taps(const rz_params *p, double scale) {
  if (p->mode == RZ_NEAREST) return 2;
  if (!p->antialias) return p->mode == RZ_LINEAR ? 2 : 4;
  double s = scale < 1.0 ? scale : 1.0;
  int64_t start = p->mode == RZ_LINEAR ? (int64_t)floor(-1.0 / s) + 1 : (int64_t)floor(-2.0 / s) + 1;
  return (int)(2 - 2 * start);
}

/* Coefficients for one position (op_resize.py _*_coeffs*); ratio in (0, 1]. */
static void rz_coeffs(const rz_params *p, double ratio, double scale, int n, double *c) {
  double a = p->cubic_a;
  if (p->mode == RZ_NEAREST) {
    bool second;
    if (ratio == 1.0) second = true;
    else if (p->nearest == NM_ROUND_PREFER_FLOOR) second = ratio > 0.5;
    else if (p->nearest == NM_ROUND_PREFER_CEIL) second = ratio >= 0.5;
    else second = p->nearest == NM_CEIL;
    c[0] = second ? 0.0 : 1.0;
    c[1] = second ? 1.0 : 0.0;
    return;
  }
  if (!p->antialias) {
    if (p->mode == RZ_LINEAR) {
      c[0] = 1 - ratio;
      c[1] = ratio;
    } else {
      double r1 = ratio + 1, q = 1 - ratio, q1 = q + 1;
      c[0] = ((a * r1 - 5 * a) * r1 + 8 * a) * r1 - 4 * a;
      c[1] = ((a + 2) * ratio - (a + 3)) * ratio * ratio + 1;
      c[2] = ((a + 2) * q - (a + 3)) * q * q + 1;
      c[3] = ((a * q1 - 5 * a) * q1 + 8 * a) * q1 - 4 * a;
    }
    return;
  }
  double s = scale < 1.0 ? scale : 1.0, sum = 0;
  int64_t start = 1 - n / 2;
  for (int k = 0; k < n; k++) {
    double arg = ((double)(start + k) - ratio) * s;
    double v;
    if (p->mode == RZ_LINEAR) {
      v = 1 - fabs(arg);
      v = v < 0 ? 0 : (v > 1 ? 1 : v);
    } else {
      v = cubic_kernel(arg, a);
    }
    c[k] = v;
    sum += v;
  }
  for (int k = 0; k < n; k++) c[k] /= sum;
}

static void rz_axis_free(rz_axis *ax) {
  free(ax->idx);
  free(ax->w);
  free(ax->fill);
  memset(ax, 0, sizeof *ax);
}

static drt_status rz_axis_build(const rz_params *p, int axis, int64_t in_w, int64_t out_w, rz_axis *ax) {
  memset(ax, 0, sizeof *ax);
  ax->in_w = in_w;
  ax->out_w = out_w;
  double scale = p->scale[axis];
  ax->identity = fabs(scale - 1.0) <= 1e-9 && in_w == out_w &&
                 (p->coord != CT_TF_CROP || (fabs((double)p->roi_lo[axis]) <= 1e-9 && fabs(p->roi_hi[axis] - 1.0) <= 1e-9));
  int n = rz_taps(p, scale);
  bool nearest = p->mode == RZ_NEAREST;
  ax->n = nearest ? 1 : n;
  size_t cnt = (size_t)(out_w > 0 ? out_w : 1);
  ax->idx = malloc(cnt * (size_t)ax->n * sizeof(int64_t));
  ax->fill = calloc(cnt, 1);
  ax->w = nearest ? NULL : malloc(cnt * (size_t)n * sizeof(float));
  double *c = malloc((size_t)n * sizeof(double));
  if (!ax->idx || !ax->fill || (!nearest && !ax->w) || !c) {
    free(c);
    rz_axis_free(ax);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "resize tables for axis %d", axis);
  }
  for (int64_t y = 0; y < out_w; y++) {
    if (ax->identity) {
      ax->idx[y * ax->n] = y;
      if (!nearest) {
        for (int k = 0; k < n; k++) {
          ax->idx[y * n + k] = y;
          ax->w[y * n + k] = 0.0f;
        }
        ax->w[y * n] = 1.0f;
      }
      continue;
    }
    double x = rz_x_ori(p, axis, (double)y, in_w, out_w);
    if (p->coord == CT_TF_CROP && !(x >= 0 && x <= (double)(in_w - 1))) ax->fill[y] = FILL_EXTRAP;
    /* Far outside the input every tap clamps to the same edge element, so bounding x changes
     * nothing but keeps the integer conversions below defined (a NaN roi gives NaN). */
    double lim = (double)(in_w + n + 2);
    if (x != x) x = 0;
    x = x < -lim ? -lim : (x > lim ? lim : x);
    if (nearest && p->nearest == NM_SIMPLE) {
      double t = scale < 1.0 ? ceil(x) : trunc(x);
      int64_t i = (int64_t)t;
      ax->idx[y] = i < 0 ? 0 : (i >= in_w ? in_w - 1 : i);
      continue;
    }
    double xf = floor(x);
    double ratio = x == xf ? 1.0 : x - xf;
    rz_coeffs(p, ratio, scale, n, c);
    /* window of n positions nearest to x, ties to the smaller index (in edge-padded space) */
    int pad = (n + 1) / 2;
    double xp = x + pad, pf = floor(xp);
    int64_t start = (int64_t)pf + (xp == pf ? -(n / 2) : -(n / 2) + 1) - pad;
    bool any = false;
    if (p->exclude_outside) {
      double sum = 0;
      for (int k = 0; k < n; k++) {
        int64_t i = start + k;
        if (i < 0 || i >= in_w) c[k] = 0;
        sum += c[k];
      }
      if (sum != 0)
        for (int k = 0; k < n; k++) c[k] /= sum;
    }
    for (int k = 0; k < n; k++) any |= c[k] != 0;
    if (!any && !ax->fill[y]) ax->fill[y] = FILL_ZERO;
    if (nearest) {
      int64_t i = start + (c[1] != 0 ? 1 : 0);
      ax->idx[y] = i < 0 ? 0 : (i >= in_w ? in_w - 1 : i);
    } else {
      for (int k = 0; k < n; k++) {
        int64_t i = start + k;
        ax->idx[y * n + k] = i < 0 ? 0 : (i >= in_w ? in_w - 1 : i);
        ax->w[y * n + k] = (float)c[k];
      }
    }
  }
  free(c);
  return DRT_OK;
}

/* ---- nearest: any dtype, by element size ----------------------------------------------------- */
typedef struct nearest_job {
  const rz_params *p;
  const rz_axis *ax; /* rank entries */
  const uint8_t *src;
  uint8_t *dst;
  size_t es;
  int rank;
  int64_t in_strides[DRT_MAX_RANK]; /* elements */
  int64_t out_dims[DRT_MAX_RANK];
  uint8_t fill_bytes[2][16]; /* extrapolation value, zero */
  bool last_is_2x;
} nearest_job;

/* Fill value of an output row/position: the last axis in processing order that fills wins. */
static int fill_merge(const rz_params *p, const uint8_t *flags) {
  int f = FILL_NONE;
  for (int i = 0; i < p->norder; i++)
    if (flags[p->order[i]]) f = flags[p->order[i]];
  return f;
}

static void put_fill(uint8_t *dst, const uint8_t *val, size_t es, int64_t count) {
  for (int64_t i = 0; i < count; i++) memcpy(dst + (size_t)i * es, val, es);
}

#define NEAREST_ROW(T)                                                                   \
  do {                                                                                   \
    const T *s_ = (const T *)srow;                                                       \
    T *d_ = (T *)drow;                                                                   \
    if (j->last_is_2x) {                                                                 \
      int64_t half_ = ow >> 1;                                                           \
      for (int64_t i_ = 0; i_ < half_; i_++) {                                           \
        d_[2 * i_] = s_[i_];                                                             \
        d_[2 * i_ + 1] = s_[i_];                                                         \
      }                                                                                  \
      if (ow & 1) d_[ow - 1] = s_[lx->idx[ow - 1]];                                      \
    } else {                                                                             \
      for (int64_t x = 0; x < ow; x++) d_[x] = s_[lx->idx[x]];                           \
    }                                                                                    \
  } while (0)

/* Writes one output row: a fill value, or the source row gathered through the last axis. */
static void nearest_row(const nearest_job *j, uint8_t *drow, int64_t off, uint8_t *flags, int rf) {
  int r = j->rank;
  const rz_axis *lx = &j->ax[r - 1];
  int64_t ow = j->out_dims[r - 1];
  size_t es = j->es;
  if (rf) {
    put_fill(drow, j->fill_bytes[rf - 1], es, ow);
  } else {
    const uint8_t *srow = j->src + (size_t)off * es;
    switch (es) {
      case 1: NEAREST_ROW(uint8_t); break;
      case 2: NEAREST_ROW(uint16_t); break;
      case 4: NEAREST_ROW(uint32_t); break;
      case 8: NEAREST_ROW(uint64_t); break;
      default:
        for (int64_t x = 0; x < ow; x++) memcpy(drow + (size_t)x * es, srow + (size_t)lx->idx[x] * es, es);
    }
  }
  /* positions the last axis fills: the axis processed last among the filling ones decides */
  for (int64_t x = 0; x < ow; x++)
    if (lx->fill[x]) {
      flags[r - 1] = lx->fill[x];
      int f = fill_merge(j->p, flags);
      memcpy(drow + (size_t)x * es, j->fill_bytes[f - 1], es);
    }
}

static void nearest_range(void *arg, int64_t begin, int64_t end) {
  const nearest_job *j = arg;
  int r = j->rank;
  size_t row_bytes = (size_t)j->out_dims[r - 1] * j->es;
  int64_t coord[DRT_MAX_RANK] = {0};
  int64_t t = begin;
  for (int d = r - 2; d >= 0; d--) {
    coord[d] = t % j->out_dims[d];
    t /= j->out_dims[d];
  }
  int64_t prev_off = -1;
  int prev_fill = -1;
  uint8_t flags[DRT_MAX_RANK];
  for (int64_t row = begin; row < end; row++) {
    int64_t off = 0;
    for (int d = 0; d < r - 1; d++) {
      off += j->ax[d].idx[coord[d]] * j->in_strides[d];
      flags[d] = j->ax[d].fill[coord[d]];
    }
    flags[r - 1] = 0;
    int rf = fill_merge(j->p, flags);
    uint8_t *drow = j->dst + (size_t)row * row_bytes;
    if (row > begin && off == prev_off && rf == prev_fill)
      memcpy(drow, drow - row_bytes, row_bytes); /* repeated source row (upsampling) */
    else
      nearest_row(j, drow, off, flags, rf);
    prev_off = off;
    prev_fill = rf;
    for (int d = r - 2; d >= 0; d--) {
      if (++coord[d] < j->out_dims[d]) break;
      coord[d] = 0;
    }
  }
}

static drt_status resize_nearest(drt_cpu_ctx *ctx, const rz_params *p, const rz_axis *ax, const drt_tensor *x,
                                 drt_tensor *y) {
  nearest_job j;
  memset(&j, 0, sizeof j);
  j.p = p;
  j.ax = ax;
  j.src = x->data;
  j.dst = y->data;
  j.es = drt_dtype_size(x->dtype);
  j.rank = x->shape.rank;
  if (j.es == 0 || j.es > 16) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "dtype %s", drt_dtype_name(x->dtype));
  int64_t s = 1;
  for (int d = j.rank - 1; d >= 0; d--) {
    j.in_strides[d] = s;
    s *= x->shape.dims[d];
    j.out_dims[d] = y->shape.dims[d];
  }
  float ev = p->extrapolation;
  drt_convert(x->dtype, j.fill_bytes[0], DRT_DTYPE_FLOAT32, &ev, 1);
  const rz_axis *lx = &ax[j.rank - 1];
  j.last_is_2x = lx->out_w >= 2;
  for (int64_t i = 0; i < lx->out_w && j.last_is_2x; i++) j.last_is_2x = lx->idx[i] == i / 2;
  int64_t rows = drt_shape_numel(&y->shape) / y->shape.dims[j.rank - 1];
  int64_t grain = 4096 / (y->shape.dims[j.rank - 1] + 1) + 1;
  /* whole planes per chunk keep the row-duplication shortcut effective */
  if (j.rank >= 2 && y->shape.dims[j.rank - 2] > grain) grain = y->shape.dims[j.rank - 2];
  drt_parallel_for(ctx, rows, grain, nearest_range, &j);
  return DRT_OK;
}

/* ---- linear / cubic in float32 ---------------------------------------------------------------- */
typedef struct sep_job {
  const rz_axis *ax;
  const float *src;
  float *dst;
  int64_t inner;
  float fill[2];
} sep_job;

/* One separable pass: items are (outer, output position) pairs. */
static void sep_range(void *arg, int64_t begin, int64_t end) {
  const sep_job *j = arg;
  const rz_axis *ax = j->ax;
  int64_t ow = ax->out_w, iw = ax->in_w, inner = j->inner;
  int n = ax->n;
  for (int64_t t = begin; t < end; t++) {
    int64_t o = t / ow, x = t % ow;
    float *d = j->dst + t * inner;
    if (ax->fill[x]) {
      float v = j->fill[ax->fill[x] - 1];
      for (int64_t i = 0; i < inner; i++) d[i] = v;
      continue;
    }
    const float *base = j->src + o * iw * inner;
    const int64_t *ix = ax->idx + x * n;
    const float *w = ax->w + x * n;
    if (inner == 1) {
      float acc = 0;
      for (int k = 0; k < n; k++) acc += w[k] * base[ix[k]];
      d[0] = acc;
      continue;
    }
    const float *s0 = base + ix[0] * inner;
    for (int64_t i = 0; i < inner; i++) d[i] = w[0] * s0[i];
    for (int k = 1; k < n; k++) {
      const float *sk = base + ix[k] * inner;
      float wk = w[k];
      for (int64_t i = 0; i < inner; i++) d[i] += wk * sk[i];
    }
  }
}

typedef struct bilinear_job {
  const rz_axis *ay, *ax;
  const float *src;
  float *dst;
  float fill[2];
  int fill_y_last; /* W was processed before H: an H fill overrides a W fill */
} bilinear_job;

/* Horizontal pass of one source row into h (ow values); fills are applied by the caller. */
static void bilinear_hrow(const rz_axis *ax, const float *row, float *h) {
  for (int64_t x = 0; x < ax->out_w; x++) h[x] = ax->w[2 * x] * row[ax->idx[2 * x]] + ax->w[2 * x + 1] * row[ax->idx[2 * x + 1]];
}

/* Planes [begin, end): each output row blends two horizontally interpolated source rows, which
 * are cached across output rows (upsampling reuses each source row pair several times). */
static void bilinear_range(void *arg, int64_t begin, int64_t end) {
  const bilinear_job *j = arg;
  const rz_axis *ay = j->ay, *ax = j->ax;
  int64_t ih = ay->in_w, iw = ax->in_w, oh = ay->out_w, ow = ax->out_w;
  float *buf = malloc((size_t)(2 * ow) * sizeof(float));
  bool any_fx = false;
  for (int64_t x = 0; x < ow; x++) any_fx |= ax->fill[x] != 0;
  for (int64_t t = begin; t < end; t++) {
    const float *plane = j->src + t * ih * iw;
    float *out = j->dst + t * oh * ow;
    float *h[2] = {buf, buf ? buf + ow : NULL};
    int64_t hrow[2] = {-1, -1};
    for (int64_t y = 0; y < oh; y++) {
      float *d = out + y * ow;
      int fy = ay->fill[y];
      if (fy) {
        /* the axis processed last decides a position both axes fill */
        for (int64_t x = 0; x < ow; x++) d[x] = j->fill[(ax->fill[x] && !j->fill_y_last ? ax->fill[x] : fy) - 1];
        continue;
      }
      int64_t y0 = ay->idx[2 * y], y1 = ay->idx[2 * y + 1];
      float wy0 = ay->w[2 * y], wy1 = ay->w[2 * y + 1];
      if (!buf) { /* no scratch memory: direct 4-tap evaluation */
        const float *r0 = plane + y0 * iw, *r1 = plane + y1 * iw;
        for (int64_t x = 0; x < ow; x++) {
          int64_t x0 = ax->idx[2 * x], x1 = ax->idx[2 * x + 1];
          float wx0 = ax->w[2 * x], wx1 = ax->w[2 * x + 1];
          d[x] = wy0 * (wx0 * r0[x0] + wx1 * r0[x1]) + wy1 * (wx0 * r1[x0] + wx1 * r1[x1]);
        }
      } else {
        if (hrow[0] != y0 && hrow[1] == y0) { /* sliding down: the old second row is the new first */
          float *tp = h[0];
          h[0] = h[1];
          h[1] = tp;
          hrow[0] = y0;
          hrow[1] = -1;
        }
        if (hrow[0] != y0) {
          bilinear_hrow(ax, plane + y0 * iw, h[0]);
          hrow[0] = y0;
        }
        if (hrow[1] != y1) {
          bilinear_hrow(ax, plane + y1 * iw, h[1]);
          hrow[1] = y1;
        }
        const float *h0 = h[0], *h1 = h[1];
        for (int64_t x = 0; x < ow; x++) d[x] = wy0 * h0[x] + wy1 * h1[x];
      }
      if (any_fx)
        for (int64_t x = 0; x < ow; x++)
          if (ax->fill[x]) d[x] = j->fill[ax->fill[x] - 1];
    }
  }
  free(buf);
}

static drt_status resize_float(drt_cpu_ctx *ctx, const rz_params *p, const rz_axis *ax, const float *src,
                               const drt_shape *in_shape, float *dst, const drt_shape *out_shape) {
  int r = in_shape->rank;
  float fill[2] = {p->extrapolation, 0.0f};
  int active[DRT_MAX_RANK], na = 0;
  for (int i = 0; i < p->norder; i++)
    if (!ax[p->order[i]].identity) active[na++] = p->order[i];
  int64_t total = drt_shape_numel(out_shape);
  if (na == 0) {
    memcpy(dst, src, (size_t)total * sizeof(float));
    return DRT_OK;
  }
  /* fused bilinear over the last two axes */
  if (r >= 2 && na == 2 && ax[r - 2].n == 2 && ax[r - 1].n == 2 &&
      ((active[0] == r - 2 && active[1] == r - 1) || (active[0] == r - 1 && active[1] == r - 2))) {
    bilinear_job j = {&ax[r - 2], &ax[r - 1], src, dst, {fill[0], fill[1]}, active[1] == r - 2};
    int64_t planes = total / (out_shape->dims[r - 2] * out_shape->dims[r - 1]);
    drt_parallel_for(ctx, planes, 1, bilinear_range, &j);
    return DRT_OK;
  }
  /* separable passes, ping-ponging through temporaries */
  drt_shape cur = *in_shape;
  size_t max_elems = 0;
  for (int i = 0; i < na - 1; i++) {
    cur.dims[active[i]] = out_shape->dims[active[i]];
    size_t e = (size_t)drt_shape_numel(&cur);
    if (e > max_elems) max_elems = e;
  }
  float *tmp[2] = {NULL, NULL};
  if (na > 1) {
    tmp[0] = malloc(max_elems * sizeof(float) + 1);
    tmp[1] = na > 2 ? malloc(max_elems * sizeof(float) + 1) : NULL;
    if (!tmp[0] || (na > 2 && !tmp[1])) {
      free(tmp[0]);
      free(tmp[1]);
      return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "resize temporaries (%zu floats)", max_elems);
    }
  }
  cur = *in_shape;
  const float *s = src;
  for (int i = 0; i < na; i++) {
    int a = active[i];
    float *d = i == na - 1 ? dst : tmp[i & 1];
    sep_job j = {&ax[a], s, d, 1, {fill[0], fill[1]}};
    int64_t outer = 1;
    for (int k = 0; k < a; k++) outer *= cur.dims[k];
    for (int k = a + 1; k < r; k++) j.inner *= cur.dims[k];
    cur.dims[a] = out_shape->dims[a];
    drt_parallel_for(ctx, outer * cur.dims[a], 4096 / (j.inner * ax[a].n + 1) + 1, sep_range, &j);
    s = d;
  }
  free(tmp[0]);
  free(tmp[1]);
  return DRT_OK;
}

/* ---- entry point -------------------------------------------------------------------------------- */
drt_status drt_cpu_resize(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);

drt_status drt_cpu_resize(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  const drt_tensor *x = &in[0];
  drt_tensor *y = &out[0];
  int r = x->shape.rank;
  if (y->shape.rank != r) return DRT_ERROR(DRT_STATUS_INTERNAL, "output rank %d != input rank %d", y->shape.rank, r);
  if (drt_shape_numel(&y->shape) == 0) return DRT_OK;
  if (r == 0) {
    memcpy(y->data, x->data, drt_dtype_size(x->dtype));
    return DRT_OK;
  }
  rz_params p;
  DRT_RETURN_IF_ERROR(rz_parse(n, in, out, &p));
  for (int d = 0; d < r; d++)
    if (x->shape.dims[d] == 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "cannot resize axis %d of size 0 to %lld", d,
                       (long long)y->shape.dims[d]);
  bool is_float = x->dtype == DRT_DTYPE_FLOAT32;
  if (p.mode != RZ_NEAREST && !is_float && x->dtype != DRT_DTYPE_FLOAT64 && !drt_dtype_is_int(x->dtype) &&
      x->dtype != DRT_DTYPE_BOOL)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s mode on dtype %s", p.mode == RZ_LINEAR ? "linear" : "cubic",
                     drt_dtype_name(x->dtype));
  rz_axis ax[DRT_MAX_RANK];
  memset(ax, 0, sizeof ax);
  drt_status st = DRT_OK;
  for (int d = 0; d < r && !st; d++) st = rz_axis_build(&p, d, x->shape.dims[d], y->shape.dims[d], &ax[d]);
  if (!st) {
    if (p.mode == RZ_NEAREST) {
      st = resize_nearest(ctx, &p, ax, x, y);
    } else if (is_float) {
      st = resize_float(ctx, &p, ax, x->data, &x->shape, y->data, &y->shape);
    } else {
      /* float64, integer or bool input: interpolate in float32; integers are rounded half to
       * even and saturated (onnx saturate_cast) */
      size_t ni = (size_t)drt_shape_numel(&x->shape), no = (size_t)drt_shape_numel(&y->shape);
      float *fi = malloc(ni * sizeof(float)), *fo = malloc(no * sizeof(float));
      if (!fi || !fo) {
        st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "resize float32 buffers");
      } else {
        drt_convert(DRT_DTYPE_FLOAT32, fi, x->dtype, x->data, ni);
        st = resize_float(ctx, &p, ax, fi, &x->shape, fo, &y->shape);
        if (!st) {
          if (x->dtype != DRT_DTYPE_FLOAT64)
            for (size_t i = 0; i < no; i++) fo[i] = nearbyintf(fo[i]);
          drt_convert(y->dtype, y->data, DRT_DTYPE_FLOAT32, fo, no);
        }
      }
      free(fi);
      free(fo);
    }
  }
  for (int d = 0; d < r; d++) rz_axis_free(&ax[d]);
  return st;
}
