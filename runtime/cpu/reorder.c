/* CPU kernels for ops that place elements by a computed map or generate values from a
 * shape: CenterCropPad, ReverseSequence, Col2Im, AffineGrid, the window functions (Hann,
 * Hamming, Blackman) and Det. Shapes and attributes were checked by shape inference
 * (ir/infer_index.c); everything here is written after onnx/reference/ops. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer.h"
#include "runtime/cpu/cpu.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* CenterCropPad: along every dim, out index o reads in index o + (in - out) / 2 (crop,
 * rounded down) or o - (out - in) / 2 (pad, the odd pixel at the end); zeros elsewhere. */
static drt_status k_center_crop_pad(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  (void)n;
  const drt_tensor *x = &in[0];
  const int r = x->shape.rank;
  size_t es = drt_dtype_size(x->dtype);
  int64_t shift[DRT_MAX_RANK], istride[DRT_MAX_RANK], st = 1;
  for (int d = r - 1; d >= 0; d--) {
    int64_t i = x->shape.dims[d], o = out[0].shape.dims[d];
    shift[d] = i >= o ? (i - o) / 2 : -((o - i) / 2);
    istride[d] = st;
    st *= i;
  }
  int64_t total = drt_shape_numel(&out[0].shape), coord[DRT_MAX_RANK] = {0};
  uint8_t *y = out[0].data;
  const uint8_t *xs = x->data;
  for (int64_t e = 0; e < total; e++) {
    int64_t off = 0;
    bool inside = true;
    for (int d = 0; d < r && inside; d++) {
      int64_t c = coord[d] + shift[d];
      inside = c >= 0 && c < x->shape.dims[d];
      off += c * istride[d];
    }
    if (inside) memcpy(y + (size_t)e * es, xs + (size_t)off * es, es);
    else memset(y + (size_t)e * es, 0, es);
    for (int d = r - 1; d >= 0 && ++coord[d] == out[0].shape.dims[d]; d--) coord[d] = 0;
  }
  return DRT_OK;
}

/* ReverseSequence: for batch b, time t < len[b] reads time len[b] - 1 - t; the rest is copied. */
static drt_status k_reverse_sequence(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const drt_tensor *x = &in[0];
  int ba = (int)drt_node_attr_int(n, "batch_axis", 1), ta = (int)drt_node_attr_int(n, "time_axis", 0);
  int64_t B = x->shape.dims[ba], T = x->shape.dims[ta], inner = 1;
  for (int d = 2; d < x->shape.rank; d++) inner *= x->shape.dims[d];
  size_t es = drt_dtype_size(x->dtype), row = (size_t)inner * es;
  for (int64_t b = 0; b < B; b++) {
    int64_t len = drt_load_i64(in[1].dtype, in[1].data, (size_t)b);
    if (len < 0 || len > T)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "sequence_lens[%" PRId64 "] = %" PRId64 " is outside [0, %" PRId64 "]",
                       b, len, T);
    for (int64_t t = 0; t < T; t++) {
      int64_t src = t < len ? len - 1 - t : t;
      int64_t oi = ba == 0 ? b * T + t : t * B + b, ii = ba == 0 ? b * T + src : src * B + b;
      memcpy((uint8_t *)out[0].data + (size_t)oi * row, (const uint8_t *)x->data + (size_t)ii * row, row);
    }
  }
  return DRT_OK;
}

/* Col2Im: input [N, C * prod(block), L] where L enumerates the sliding block positions of
 * the padded image in row-major order; each column entry is added into the image. */
static drt_status k_col2im(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const int r = out[0].shape.rank - 2;
  int64_t img[DRT_MAX_RANK], blk[DRT_MAX_RANK], str[DRT_MAX_RANK], dil[DRT_MAX_RANK], pb[DRT_MAX_RANK], nb[DRT_MAX_RANK];
  int64_t cnt;
  const int64_t *s = drt_node_attr_ints(n, "strides", &cnt), *dl = drt_node_attr_ints(n, "dilations", &cnt),
                *pads = drt_node_attr_ints(n, "pads", &cnt);
  int64_t kprod = 1, L = 1, isp = 1;
  for (int i = 0; i < r; i++) {
    img[i] = out[0].shape.dims[2 + i];
    blk[i] = drt_load_i64(in[2].dtype, in[2].data, (size_t)i);
    str[i] = s ? s[i] : 1;
    dil[i] = dl ? dl[i] : 1;
    pb[i] = pads ? pads[i] : 0;
    int64_t pe = pads ? pads[r + i] : 0;
    nb[i] = (img[i] + pb[i] + pe - (dil[i] * (blk[i] - 1) + 1)) / str[i] + 1;
    kprod *= blk[i];
    L *= nb[i];
    isp *= img[i];
  }
  int64_t N = out[0].shape.dims[0], C = out[0].shape.dims[1];
  if (in[0].shape.dims[2] != L)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input has %" PRId64 " block positions, the geometry gives %" PRId64,
                     in[0].shape.dims[2], L);
  const float *x = in[0].data;
  float *y = out[0].data;
  memset(y, 0, (size_t)(N * C * isp) * sizeof(float));
  for (int64_t b = 0; b < N; b++)
    for (int64_t c = 0; c < C; c++)
      for (int64_t k = 0; k < kprod; k++)
        for (int64_t l = 0; l < L; l++) {
          int64_t kr = k, lr = l, off = 0;
          bool inside = true;
          for (int i = r - 1; i >= 0; i--) {
            int64_t ki = kr % blk[i], li = lr % nb[i];
            kr /= blk[i], lr /= nb[i];
            int64_t p = li * str[i] - pb[i] + ki * dil[i];
            if (p < 0 || p >= img[i]) inside = false;
            int64_t sp = 1;
            for (int j = i + 1; j < r; j++) sp *= img[j];
            off += p * sp;
          }
          if (inside) y[(b * C + c) * isp + off] += x[((b * C + c) * kprod + k) * L + l];
        }
  return DRT_OK;
}

/* AffineGrid: grid[n, (d,) h, w] = theta[n] . (x_w, y_h, (z_d,) 1) with base coordinates
 * evenly spaced in [-1, 1] (pixel centers at the ends with align_corners, else edges). */
static drt_status k_affine_grid(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const float *th = in[0].data;
  bool align = drt_node_attr_int(n, "align_corners", 0) != 0;
  int r = in[0].shape.dims[1]; /* 2 or 3 spatial dims */
  int64_t N = in[0].shape.dims[0], sz[3] = {1, 1, 1};
  for (int i = 0; i < r; i++) sz[3 - r + i] = out[0].shape.dims[1 + i];
  float *g = out[0].data;
  for (int64_t b = 0; b < N; b++)
    for (int64_t d = 0; d < sz[0]; d++)
      for (int64_t h = 0; h < sz[1]; h++)
        for (int64_t w = 0; w < sz[2]; w++) {
          double base[4], pos[3] = {(double)w, (double)h, (double)d};
          int64_t len[3] = {sz[2], sz[1], sz[0]};
          for (int i = 0; i < r; i++)
            base[i] = align ? (len[i] > 1 ? -1.0 + 2.0 * pos[i] / (double)(len[i] - 1) : -1.0)
                            : -1.0 + (2.0 * pos[i] + 1.0) / (double)len[i];
          base[r] = 1;
          for (int i = 0; i < r; i++) {
            double acc = 0;
            for (int k = 0; k <= r; k++) acc += (double)th[(b * r + i) * (r + 1) + k] * base[k];
            *g++ = (float)acc;
          }
        }
  return DRT_OK;
}

/* HannWindow, HammingWindow, BlackmanWindow of `size` points (N' = size, or size - 1 when
 * not periodic). */
static drt_status k_window(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  int64_t size = drt_shape_numel(&out[0].shape);
  double np = (double)(drt_node_attr_int(n, "periodic", 1) ? size : size - 1);
  size_t es = drt_dtype_size(out[0].dtype);
  (void)in;
  for (int64_t i = 0; i < size; i++) {
    double t = 2 * M_PI * (double)i / np, v;
    if (n->op == DRT_OP_HANN_WINDOW) v = sin(M_PI * (double)i / np) * sin(M_PI * (double)i / np);
    else if (n->op == DRT_OP_HAMMING_WINDOW) v = 25.0 / 46.0 - (1 - 25.0 / 46.0) * cos(t);
    else v = 0.42 - 0.5 * cos(t) + 0.08 * cos(2 * t);
    drt_convert(out[0].dtype, (uint8_t *)out[0].data + (size_t)i * es, DRT_DTYPE_FLOAT64, &v, 1);
  }
  return DRT_OK;
}

/* Det: LU with partial pivoting in double for each [M, M] matrix. */
static drt_status k_det(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  (void)n;
  const drt_tensor *x = &in[0];
  int64_t M = x->shape.dims[x->shape.rank - 1], count = drt_shape_numel(&out[0].shape);
  double *a = malloc((size_t)(M * M > 0 ? M * M : 1) * sizeof(double));
  if (!a) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "Det workspace");
  for (int64_t m = 0; m < count; m++) {
    for (int64_t i = 0; i < M * M; i++) a[i] = drt_load_f64(x->dtype, x->data, (size_t)(m * M * M + i));
    double det = 1;
    for (int64_t c = 0; c < M && det != 0; c++) {
      int64_t p = c;
      for (int64_t r = c + 1; r < M; r++)
        if (fabs(a[r * M + c]) > fabs(a[p * M + c])) p = r;
      if (a[p * M + c] == 0) {
        det = 0;
        break;
      }
      if (p != c) {
        for (int64_t k = 0; k < M; k++) {
          double t = a[c * M + k];
          a[c * M + k] = a[p * M + k];
          a[p * M + k] = t;
        }
        det = -det;
      }
      det *= a[c * M + c];
      for (int64_t r = c + 1; r < M; r++) {
        double f = a[r * M + c] / a[c * M + c];
        for (int64_t k = c; k < M; k++) a[r * M + k] -= f * a[c * M + k];
      }
    }
    drt_convert(out[0].dtype, (uint8_t *)out[0].data + (size_t)m * drt_dtype_size(out[0].dtype), DRT_DTYPE_FLOAT64, &det,
                1);
  }
  free(a);
  return DRT_OK;
}

/* Compress: the slices along axis (or the flattened elements) whose condition entry is true. */
static drt_status k_compress(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const drt_tensor *x = &in[0];
  const uint8_t *c = in[1].data;
  const drt_attr *ax = drt_node_attr(n, "axis");
  int axis = 0;
  int64_t outer = 1, len = drt_shape_numel(&x->shape), inner = 1;
  if (ax) {
    DRT_RETURN_IF_ERROR(drt_normalize_axis(ax->i, x->shape.rank, &axis));
    len = x->shape.dims[axis];
    for (int d = 0; d < axis; d++) outer *= x->shape.dims[d];
    for (int d = axis + 1; d < x->shape.rank; d++) inner *= x->shape.dims[d];
  }
  int64_t m = drt_shape_numel(&in[1].shape) < len ? drt_shape_numel(&in[1].shape) : len;
  size_t row = (size_t)inner * drt_dtype_size(x->dtype);
  uint8_t *y = out[0].data;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t a = 0; a < m; a++)
      if (c[a]) {
        memcpy(y, (const uint8_t *)x->data + (size_t)(o * len + a) * row, row);
        y += row;
      }
  return DRT_OK;
}

/* NonZero: the coordinates of the non-zero elements in row-major order, [rank, count]. */
static drt_status k_non_zero(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  (void)n;
  const drt_tensor *x = &in[0];
  int r = x->shape.rank;
  int64_t total = drt_shape_numel(&x->shape), nz = out[0].shape.dims[1], k = 0;
  int64_t *y = out[0].data;
  for (int64_t i = 0; i < total && k < nz; i++) {
    if (drt_load_f64(x->dtype, x->data, (size_t)i) == 0) continue;
    int64_t rem = i;
    for (int d = r - 1; d >= 0; d--) {
      y[d * nz + k] = rem % x->shape.dims[d];
      rem /= x->shape.dims[d];
    }
    k++;
  }
  return DRT_OK;
}

/* Unique: drt_unique_compute, then the first occurrence of every group copied to Y. */
static drt_status k_unique(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const drt_tensor *x = &in[0];
  const drt_attr *ax = drt_node_attr(n, "axis");
  int axis = -1;
  if (ax) DRT_RETURN_IF_ERROR(drt_normalize_axis(ax->i, x->shape.rank, &axis));
  int64_t len = axis >= 0 ? x->shape.dims[axis] : drt_shape_numel(&x->shape), outer = 1, inner = 1, u = 0;
  for (int d = 0; axis >= 0 && d < axis; d++) outer *= x->shape.dims[d];
  for (int d = axis + 1; axis >= 0 && d < x->shape.rank; d++) inner *= x->shape.dims[d];
  int64_t *buf = malloc((size_t)(3 * len + 1) * sizeof(int64_t));
  if (!buf) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "Unique");
  int64_t *first = buf, *inv = buf + len, *counts = buf + 2 * len;
  drt_status st = drt_unique_compute(x->dtype, &x->shape, x->data, axis, drt_node_attr_int(n, "sorted", 1) != 0, &u,
                                     first, inv, counts);
  if (!st) {
    size_t row = (size_t)inner * drt_dtype_size(x->dtype);
    for (int64_t o = 0; o < outer; o++)
      for (int64_t g = 0; g < u; g++)
        memcpy((uint8_t *)out[0].data + (size_t)(o * u + g) * row, (const uint8_t *)x->data + (size_t)(o * len + first[g]) * row,
               row);
    if (n->num_outputs > 1 && out[1].data) memcpy(out[1].data, first, (size_t)u * sizeof(int64_t));
    if (n->num_outputs > 2 && out[2].data) memcpy(out[2].data, inv, (size_t)len * sizeof(int64_t));
    if (n->num_outputs > 3 && out[3].data) memcpy(out[3].data, counts, (size_t)u * sizeof(int64_t));
  }
  free(buf);
  return st;
}

/* TensorScatter: present = past with update written at sequence positions write_indices[b] + j
 * (modulo max_seq when circular; linear writes past the end are an error). */
static drt_status k_tensor_scatter(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const drt_tensor *c = &in[0], *u = &in[1], *wi = n->num_inputs > 2 && in[2].data ? &in[2] : NULL;
  int axis;
  DRT_RETURN_IF_ERROR(drt_normalize_axis(drt_node_attr_int(n, "axis", -2), c->shape.rank, &axis));
  bool circular = strcmp(drt_node_attr_string(n, "mode", "linear"), "circular") == 0;
  size_t es = drt_dtype_size(c->dtype);
  memcpy(out[0].data, c->data, drt_tensor_nbytes(c));
  int64_t B = c->shape.dims[0], mid = 1, inner = 1, maxs = c->shape.dims[axis], sl = u->shape.dims[axis];
  for (int d = 1; d < axis; d++) mid *= c->shape.dims[d];
  for (int d = axis + 1; d < c->shape.rank; d++) inner *= c->shape.dims[d];
  for (int64_t b = 0; b < B; b++) {
    int64_t w0 = wi ? ((const int64_t *)wi->data)[b] : 0;
    for (int64_t j = 0; j < sl; j++) {
      int64_t pos = w0 + j;
      if (circular) pos = ((pos % maxs) + maxs) % maxs;
      if (pos < 0 || pos >= maxs)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "write index %" PRId64 " of batch %" PRId64 " is outside the %" PRId64 "-long cache",
                         pos, b, maxs);
      for (int64_t m = 0; m < mid; m++)
        memcpy((uint8_t *)out[0].data + (size_t)(((b * mid + m) * maxs + pos) * inner) * es,
               (const uint8_t *)u->data + (size_t)(((b * mid + m) * sl + j) * inner) * es, (size_t)inner * es);
    }
  }
  return DRT_OK;
}

static drt_status k_nms(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const drt_tensor *opt[3] = {NULL, NULL, NULL};
  for (int i = 2; i < 5; i++) opt[i - 2] = n->num_inputs > i && in[i].data ? &in[i] : NULL;
  int64_t *sel = NULL, cnt = 0;
  DRT_RETURN_IF_ERROR(drt_nms_compute(&in[0], &in[1], opt[0], opt[1], opt[2],
                                      drt_node_attr_int(n, "center_point_box", 0) != 0, &sel, &cnt));
  if (cnt != out[0].shape.dims[0]) {
    free(sel);
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "inputs differ from the constants the output shape was inferred from");
  }
  memcpy(out[0].data, sel, (size_t)(3 * cnt) * sizeof(int64_t));
  free(sel);
  return DRT_OK;
}

/* MaxUnpool: zeros, then X's values at their indices into the unpooled shape, that block placed
 * at the start of every dim of a larger output_shape. */
static drt_status k_max_unpool(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const drt_tensor *x = &in[0];
  int r = x->shape.rank, nsp = r - 2;
  int64_t nk, ns, np;
  const int64_t *k = drt_node_attr_ints(n, "kernel_shape", &nk), *st = drt_node_attr_ints(n, "strides", &ns),
                *pd = drt_node_attr_ints(n, "pads", &np);
  int64_t un[DRT_MAX_RANK], unum = x->shape.dims[0] * x->shape.dims[1];
  un[0] = x->shape.dims[0], un[1] = x->shape.dims[1];
  for (int i = 0; i < nsp; i++) {
    un[2 + i] = (x->shape.dims[2 + i] - 1) * (st ? st[i] : 1) - (pd ? pd[i] + pd[nsp + i] : 0) + k[i];
    unum *= un[2 + i];
  }
  size_t es = drt_dtype_size(x->dtype);
  memset(out[0].data, 0, drt_tensor_nbytes(&out[0]));
  int64_t total = drt_shape_numel(&x->shape);
  for (int64_t e = 0; e < total; e++) {
    int64_t at = ((const int64_t *)in[1].data)[e];
    if (at < 0 || at >= unum)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "indices[%" PRId64 "] = %" PRId64 " is outside the %" PRId64 " unpooled elements", e,
                       at, unum);
    int64_t rem = at, off = 0, ost = 1; /* coordinates in the unpooled shape -> offset in the output */
    for (int d = r - 1; d >= 0; d--) {
      off += (rem % un[d]) * ost;
      rem /= un[d];
      ost *= out[0].shape.dims[d];
    }
    memcpy((uint8_t *)out[0].data + (size_t)off * es, (const uint8_t *)x->data + (size_t)e * es, es);
  }
  return DRT_OK;
}

/* MelWeightMatrix, as onnx/reference/ops/op_mel_weight_matrix.py (triangular filters between
 * mel-spaced bin edges). */
static drt_status k_mel(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  (void)n;
  int64_t bins = drt_load_i64(in[0].dtype, in[0].data, 0), dl = drt_load_i64(in[1].dtype, in[1].data, 0);
  double sr = drt_load_f64(in[2].dtype, in[2].data, 0), lo = drt_load_f64(in[3].dtype, in[3].data, 0),
         hi = drt_load_f64(in[4].dtype, in[4].data, 0);
  int64_t spec = dl / 2 + 1;
  int64_t *fb = malloc((size_t)(bins + 2) * sizeof(int64_t));
  double *w = calloc((size_t)(spec * bins), sizeof(double));
  if (!fb || !w) {
    free(fb), free(w);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "MelWeightMatrix");
  }
  double lm = 2595 * log1p(lo / 700) / log(10), hm = 2595 * log1p(hi / 700) / log(10), step = (hm - lm) / (double)(bins + 2);
  for (int64_t i = 0; i < bins + 2; i++) {
    double f = 700 * expm1(((double)i * step + lm) / 2595 * log(10));
    fb[i] = (int64_t)floor((double)(dl + 1) * f / sr);
  }
  drt_status st = DRT_OK;
  for (int64_t i = 0; i < bins && !st; i++) {
    int64_t l = fb[i], c = fb[i + 1], h = fb[i + 2];
    if (l < 0 || h > spec || c >= spec) {
      st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "mel bin %" PRId64 " falls outside the %" PRId64 " spectrogram bins", i, spec);
      break;
    }
    if (c == l) w[c * bins + i] = 1;
    else
      for (int64_t j = l; j <= c; j++) w[j * bins + i] = (double)(j - l) / (double)(c - l);
    for (int64_t j = c; j < h; j++) w[j * bins + i] = (double)(h - j) / (double)(h - c);
  }
  if (!st) drt_convert(out[0].dtype, out[0].data, DRT_DTYPE_FLOAT64, w, (size_t)(spec * bins));
  free(fb), free(w);
  return st;
}

#define F32 DRT_DT_BIT(DRT_DTYPE_FLOAT32)

const drt_cpu_kernel_entry drt_cpu_kernels_reorder[] = {
    {DRT_OP_MAX_UNPOOL, k_max_unpool, DRT_DT_FLOATS},
    {DRT_OP_MEL_WEIGHT_MATRIX, k_mel, DRT_DT_FLOATS},
    {DRT_OP_NON_MAX_SUPPRESSION, k_nms, DRT_DT_FLOATS},
    {DRT_OP_TENSOR_SCATTER, k_tensor_scatter, DRT_DT_FLOATS},
    {DRT_OP_UNIQUE, k_unique, DRT_DT_FLOATS},
    {DRT_OP_COMPRESS, k_compress, DRT_DT_FLOATS},
    {DRT_OP_NON_ZERO, k_non_zero, DRT_DT_FLOATS},
    {DRT_OP_CENTER_CROP_PAD, k_center_crop_pad, DRT_DT_FLOATS},
    {DRT_OP_REVERSE_SEQUENCE, k_reverse_sequence, DRT_DT_FLOATS},
    {DRT_OP_COL2IM, k_col2im, F32},
    {DRT_OP_AFFINE_GRID, k_affine_grid, F32},
    {DRT_OP_HANN_WINDOW, k_window, DRT_DT_FLOATS},
    {DRT_OP_HAMMING_WINDOW, k_window, DRT_DT_FLOATS},
    {DRT_OP_BLACKMAN_WINDOW, k_window, DRT_DT_FLOATS},
    {DRT_OP_DET, k_det, DRT_DT_FLOATS},
    {DRT_OP_COUNT_, NULL, 0},
};
