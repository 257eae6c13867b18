/* CPU kernels for QuantizeLinear and DequantizeLinear (every granularity of ir/infer.h's
 * drt_quant_geom: per tensor, per axis, blocked).
 *   QuantizeLinear:   y = saturate(rint(x / scale) + zero_point)   (ties to even; NaN -> 0)
 *   DequantizeLinear: y = (x - zero_point) * scale
 * Integer targets include int4/uint4/int2/uint2 (their own saturation ranges). Float8 targets are
 * the minifloat cast of x / scale (`saturate`, no zero point), float4/float6 that of x / scale +
 * zero point (ir/dtype_lowp.c); float8e8m0 scales are read through drt_load_f64.
 * Arithmetic in float32 (float16/bfloat16 operands are promoted by the executor), as the
 * reference does for float32 scales. */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>

#include "ir/infer.h"
#include "ir/infer_linalg.h"
#include "runtime/cpu/cpu.h"

static int64_t scale_index(const drt_quant_geom *q, int64_t e) {
  if (q->mode == DRT_QUANT_TENSOR) return 0;
  int64_t i = e % q->inner, a = (e / q->inner) % q->len, o = e / (q->inner * q->len);
  if (q->mode == DRT_QUANT_AXIS) return a;
  return (o * q->slen + a / q->block) * q->inner + i;
}

static void qrange(drt_dtype dt, double *lo, double *hi) {
  switch (dt) {
    case DRT_DTYPE_INT8: *lo = -128, *hi = 127; break;
    case DRT_DTYPE_UINT8: *lo = 0, *hi = 255; break;
    case DRT_DTYPE_INT16: *lo = -32768, *hi = 32767; break;
    case DRT_DTYPE_UINT16: *lo = 0, *hi = 65535; break;
    case DRT_DTYPE_INT4: *lo = -8, *hi = 7; break;
    case DRT_DTYPE_UINT4: *lo = 0, *hi = 15; break;
    case DRT_DTYPE_INT2: *lo = -2, *hi = 1; break;
    case DRT_DTYPE_UINT2: *lo = 0, *hi = 3; break;
    default: *lo = -2147483648.0, *hi = 2147483647.0; break;
  }
}

/* x or a scale as float32 (float16/bfloat16 arrive promoted; int32 x, float8e8m0 scales) */
static float load_f32(const drt_tensor *t, int64_t i) {
  if (t->dtype == DRT_DTYPE_FLOAT32) return ((const float *)t->data)[i];
  return (float)drt_load_f64(t->dtype, t->data, (size_t)i);
}

/* QuantizeLinear's `precision`: the division in float16 or bfloat16 (operands and quotient
 * rounded to it), as the reference computes x.astype(p) / scale.astype(p). */
static float round_to(drt_dtype p, float v) {
  if (p == DRT_DTYPE_FLOAT16) return drt_f16_to_f32(drt_f32_to_f16(v));
  if (p == DRT_DTYPE_BFLOAT16) return drt_bf16_to_f32(drt_f32_to_bf16(v));
  return v;
}

static bool is_minifloat(drt_dtype dt) { return drt_dtype_is_lowp(dt) && !drt_dtype_is_lowp_int(dt); }

static drt_status k_quantize(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const drt_tensor *x = &in[0], *scale = &in[1], *zp = n->num_inputs > 2 && in[2].data ? &in[2] : NULL;
  drt_quant_geom q;
  DRT_RETURN_IF_ERROR(drt_quant_layout(n, &x->shape, &scale->shape, &q));
  int64_t total = drt_shape_numel(&x->shape);
  if (n->op == DRT_OP_QUANTIZE_LINEAR) {
    drt_dtype yt = out[0].dtype, prec = (drt_dtype)drt_node_attr_int(n, "precision", 0);
    size_t es = drt_dtype_size(yt);
    if (is_minifloat(yt)) {
      /* float8: y = cast(x / scale) (saturating unless saturate=0; the zero point of a
         float8 type is 0 and not added, as in the reference); float4/float6: x / scale + zp,
         always saturating */
      drt_cast_opts o = {drt_node_attr_int(n, "saturate", 1) != 0, DRT_ROUND_UP};
      bool f8 = DRT_DT_BIT(yt) & DRT_DT_FLOAT8;
      for (int64_t e = 0; e < total; e++) {
        int64_t s = scale_index(&q, e);
        float v = round_to(prec, round_to(prec, load_f32(x, e)) / round_to(prec, load_f32(scale, s)));
        if (zp && !f8) v += (float)drt_load_f64(zp->dtype, zp->data, (size_t)s);
        ((uint8_t *)out[0].data)[e] = drt_lowp_from_f64(yt, v, &o);
      }
      return DRT_OK;
    }
    double lo, hi;
    qrange(yt, &lo, &hi);
    for (int64_t e = 0; e < total; e++) {
      int64_t s = scale_index(&q, e);
      float xv = round_to(prec, load_f32(x, e));
      double v = rintf(round_to(prec, xv / round_to(prec, load_f32(scale, s)))) +
                 (zp ? (double)drt_load_i64(zp->dtype, zp->data, (size_t)s) : 0.0);
      v = v != v ? 0 : v < lo ? lo : v > hi ? hi : v;
      drt_convert(yt, (uint8_t *)out[0].data + (size_t)e * es, DRT_DTYPE_FLOAT64, &v, 1);
    }
  } else if (is_minifloat(x->dtype)) {
    /* y = (x - zp) * scale in float32; float8 and float4 zero points must be 0 and are not
       read (the reference checks float8's) */
    bool use_zp = zp && !(DRT_DT_BIT(x->dtype) & DRT_DT_FLOAT8) && x->dtype != DRT_DTYPE_FLOAT4E2M1;
    if (zp && (DRT_DT_BIT(x->dtype) & DRT_DT_FLOAT8)) {
      int64_t nz = drt_shape_numel(&zp->shape);
      for (int64_t i = 0; i < nz; i++)
        if (drt_lowp_to_f64(zp->dtype, ((const uint8_t *)zp->data)[i]) != 0)
          return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "the zero point of a %s input must be 0 (element %" PRId64
                           " is not)", drt_dtype_name(x->dtype), i);
    }
    float *y = out[0].data;
    for (int64_t e = 0; e < total; e++) {
      int64_t s = scale_index(&q, e);
      float d = (float)drt_lowp_to_f64(x->dtype, ((const uint8_t *)x->data)[e]);
      if (use_zp) d -= (float)drt_lowp_to_f64(zp->dtype, ((const uint8_t *)zp->data)[s]);
      y[e] = d * load_f32(scale, s);
    }
  } else {
    float *y = out[0].data;
    for (int64_t e = 0; e < total; e++) {
      int64_t s = scale_index(&q, e);
      int64_t d = drt_load_i64(x->dtype, x->data, (size_t)e) - (zp ? drt_load_i64(zp->dtype, zp->data, (size_t)s) : 0);
      y[e] = (float)d * load_f32(scale, s);
    }
  }
  return DRT_OK;
}

/* DynamicQuantizeLinear: scale = (max(0, max x) - min(0, min x)) / 255, zero point =
 * saturate(rint(-min(0, min x) / scale)), y = saturate(rint(x / scale) + zero point), uint8. */
static drt_status k_dynamic_quantize(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  (void)n;
  const float *x = in[0].data;
  int64_t total = drt_shape_numel(&in[0].shape);
  float mn = 0, mx = 0;
  for (int64_t e = 0; e < total; e++) {
    mn = x[e] < mn ? x[e] : mn;
    mx = x[e] > mx ? x[e] : mx;
  }
  float scale = (mx - mn) / 255.0f;
  float zpf = scale != 0 ? rintf(-mn / scale) : 0;
  zpf = zpf < 0 ? 0 : zpf > 255 ? 255 : zpf;
  uint8_t *y = out[0].data;
  for (int64_t e = 0; e < total; e++) {
    float v = scale != 0 ? rintf(x[e] / scale) + zpf : zpf;
    y[e] = (uint8_t)(v != v ? 0 : v < 0 ? 0 : v > 255 ? 255 : v);
  }
  *(float *)out[1].data = scale;
  *(uint8_t *)out[2].data = (uint8_t)zpf;
  return DRT_OK;
}

/* Per-row (A) or per-column (B) parameter: index of row/column j in batch bt of a tensor p,
 * when p holds one value per row/column of the whole operand, per matrix or one value. */
static double param_at(const drt_tensor *p, int64_t bt, int64_t j, int64_t per) {
  if (!p || !p->data) return 0;
  int64_t cnt = drt_shape_numel(&p->shape);
  if (cnt <= 0) return 0;
  size_t at = cnt == 1 ? 0 : cnt == per ? (size_t)j : (size_t)((bt * per + j) % cnt);
  return drt_load_f64(p->dtype, p->data, at);
}

/* MatMulInteger / QLinearMatMul: (A - a_zp)(B - b_zp) accumulated in int64; QLinearMatMul then
 * rounds acc * a_scale * b_scale / y_scale half to even, adds y_zp and saturates. */
static drt_status k_int_matmul(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  bool ql = n->op == DRT_OP_QLINEAR_MATMUL;
  const drt_tensor *A = &in[0], *B = &in[ql ? 3 : 1];
  const drt_tensor *azp = ql ? &in[2] : n->num_inputs > 2 ? &in[2] : NULL, *bzp = ql ? &in[5] : n->num_inputs > 3 ? &in[3] : NULL;
  const drt_tensor *as = ql ? &in[1] : NULL, *bs = ql ? &in[4] : NULL, *ys = ql ? &in[6] : NULL, *yzp = ql ? &in[7] : NULL;
  const drt_shape *o = &out[0].shape;
  int r = o->rank;
  int64_t M = o->dims[r - 2], N = o->dims[r - 1], K = A->shape.dims[A->shape.rank - 1], batches = 1;
  for (int d = 0; d < r - 2; d++) batches *= o->dims[d];
  double lo = 0, hi = 0;
  if (ql) {
    lo = out[0].dtype == DRT_DTYPE_INT8 ? -128 : 0;
    hi = out[0].dtype == DRT_DTYPE_INT8 ? 127 : 255;
  }
  for (int64_t bt = 0; bt < batches; bt++) {
    /* batch offsets with numpy broadcasting of the leading dims */
    int64_t rem = bt, oa = 0, ob = 0, sa = 1, sb = 1;
    for (int d = r - 3; d >= 0; d--) {
      int64_t c = rem % o->dims[d];
      rem /= o->dims[d];
      int da = d - (r - A->shape.rank), db = d - (r - B->shape.rank);
      if (da >= 0) {
        if (A->shape.dims[da] != 1) oa += c * sa;
        sa *= A->shape.dims[da];
      }
      if (db >= 0) {
        if (B->shape.dims[db] != 1) ob += c * sb;
        sb *= B->shape.dims[db];
      }
    }
    int64_t abase = oa * M * K, bbase = ob * K * N;
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        int64_t za = (int64_t)param_at(azp, oa, i, M), zb = (int64_t)param_at(bzp, ob, j, N), acc = 0;
        for (int64_t k = 0; k < K; k++)
          acc += (drt_load_i64(A->dtype, A->data, (size_t)(abase + i * K + k)) - za) *
                 (drt_load_i64(B->dtype, B->data, (size_t)(bbase + k * N + j)) - zb);
        size_t at = (size_t)((bt * M + i) * N + j);
        if (!ql) {
          ((int32_t *)out[0].data)[at] = (int32_t)acc;
          continue;
        }
        double sc = param_at(as, oa, i, M) * param_at(bs, ob, j, N) / param_at(ys, 0, 0, 1);
        double v = nearbyint((double)acc * sc) + param_at(yzp, 0, 0, 1);
        v = v < lo ? lo : v > hi ? hi : v;
        drt_convert(out[0].dtype, (uint8_t *)out[0].data + at, DRT_DTYPE_FLOAT64, &v, 1);
      }
  }
  return DRT_OK;
}

/* ConvInteger / QLinearConv: direct convolution over (x - x_zp)(w - w_zp[m]) in int64 (plus B
 * for QLinearConv), then as QLinearMatMul: rint(acc * x_scale * w_scale[m] / y_scale) + y_zp,
 * saturated. */
static drt_status k_int_conv(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  bool ql = n->op == DRT_OP_QLINEAR_CONV;
  const drt_tensor *X = &in[0], *W = &in[ql ? 3 : 1];
  const drt_tensor *xzp = ql ? &in[2] : n->num_inputs > 2 ? &in[2] : NULL, *wzp = ql ? &in[5] : n->num_inputs > 3 ? &in[3] : NULL;
  const drt_tensor *bias = ql && n->num_inputs > 8 && in[8].data ? &in[8] : NULL;
  drt_window_geom g;
  DRT_RETURN_IF_ERROR(drt_window_geom_compute(n, &X->shape, &W->shape, bias ? &bias->shape : NULL, &g));
  int64_t ins = 1, outs = 1, ks = 1;
  for (int i = 0; i < g.nsp; i++) ins *= g.in[i], outs *= g.out[i], ks *= g.kernel[i];
  int64_t cpg = g.in_channels / g.group, mpg = g.out_channels / g.group;
  double lo = ql && out[0].dtype == DRT_DTYPE_INT8 ? -128 : 0, hi = ql && out[0].dtype == DRT_DTYPE_INT8 ? 127 : 255;
  int64_t xz = (int64_t)param_at(xzp, 0, 0, 1);
  for (int64_t b = 0; b < g.batch; b++)
    for (int64_t m = 0; m < g.out_channels; m++) {
      int64_t grp = m / mpg, wz = (int64_t)param_at(wzp, 0, m, g.out_channels);
      for (int64_t o = 0; o < outs; o++) {
        int64_t oc[DRT_WINDOW_MAX_SPATIAL], rem = o, acc = bias ? drt_load_i64(bias->dtype, bias->data, (size_t)m) : 0;
        for (int i = g.nsp - 1; i >= 0; i--) oc[i] = rem % g.out[i], rem /= g.out[i];
        for (int64_t c = 0; c < cpg; c++)
          for (int64_t k = 0; k < ks; k++) {
            int64_t kr = k, xi = 0, st = 1;
            bool inside = true;
            for (int i = g.nsp - 1; i >= 0; i--) {
              int64_t kk = kr % g.kernel[i];
              kr /= g.kernel[i];
              int64_t p = oc[i] * g.stride[i] - g.pad_begin[i] + kk * g.dilation[i];
              if (p < 0 || p >= g.in[i]) inside = false;
              xi += p * st;
              st *= g.in[i];
            }
            if (!inside) continue;
            int64_t xv = drt_load_i64(X->dtype, X->data, (size_t)((b * g.in_channels + grp * cpg + c) * ins + xi)) - xz;
            int64_t wv = drt_load_i64(W->dtype, W->data, (size_t)((m * cpg + c) * ks + k)) - wz;
            acc += xv * wv;
          }
        size_t at = (size_t)((b * g.out_channels + m) * outs + o);
        if (!ql) {
          ((int32_t *)out[0].data)[at] = (int32_t)acc;
          continue;
        }
        double sc = param_at(&in[1], 0, 0, 1) * param_at(&in[4], 0, m, g.out_channels) / param_at(&in[6], 0, 0, 1);
        double v = nearbyint((double)acc * sc) + param_at(&in[7], 0, 0, 1);
        v = v < lo ? lo : v > hi ? hi : v;
        drt_convert(out[0].dtype, (uint8_t *)out[0].data + at, DRT_DTYPE_FLOAT64, &v, 1);
      }
    }
  return DRT_OK;
}

const drt_cpu_kernel_entry drt_cpu_kernels_quantize[] = {
    {DRT_OP_CONV_INTEGER, k_int_conv, DRT_DT_FLOATS},
    {DRT_OP_QLINEAR_CONV, k_int_conv, DRT_DT_FLOATS},
    {DRT_OP_MATMUL_INTEGER, k_int_matmul, DRT_DT_FLOATS},
    {DRT_OP_QLINEAR_MATMUL, k_int_matmul, DRT_DT_FLOATS},
    {DRT_OP_DYNAMIC_QUANTIZE_LINEAR, k_dynamic_quantize, DRT_DT_BIT(DRT_DTYPE_FLOAT32)},
    {DRT_OP_QUANTIZE_LINEAR, k_quantize, DRT_DT_BIT(DRT_DTYPE_FLOAT32)},
    {DRT_OP_DEQUANTIZE_LINEAR, k_quantize, DRT_DT_BIT(DRT_DTYPE_FLOAT32)},
    {DRT_OP_COUNT_, NULL, 0},
};
