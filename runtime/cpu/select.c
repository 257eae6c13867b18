/* CPU kernels for the ops that select or place elements by index: TopK, Hardmax, OneHot and
 * EyeLike. Values are copied as bytes where they are not computed, so every dtype the shape
 * inference admits runs without conversion. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer.h"
#include "ir/infer_reduce.h"
#include "runtime/cpu/cpu.h"

/* ---- TopK ----------------------------------------------------------------------------- */
/* Every element gets a uint64 key whose unsigned order is the value order (floats: the usual
 * sign-flip of the IEEE bits, NaN above +inf as numpy sorts it; signed ints: the sign bit
 * flipped); for largest the key is complemented, so one ascending sort on (key, index) gives
 * the order ONNX asks for, ties to the lower index. */
typedef struct topk_item {
  uint64_t key;
  int64_t idx;
} topk_item;

static int topk_cmp(const void *pa, const void *pb) {
  const topk_item *a = pa, *b = pb;
  if (a->key != b->key) return a->key < b->key ? -1 : 1;
  return (a->idx > b->idx) - (a->idx < b->idx);
}

static uint64_t order_key(drt_dtype dt, const void *data, size_t i) {
  if (drt_dtype_is_float(dt)) {
    double v = drt_load_f64(dt, data, i);
    if (v != v) return UINT64_MAX;
    if (v == 0) v = 0; /* -0 == +0 */
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return (b >> 63) ? ~b : b | (UINT64_C(1) << 63);
  }
  if (drt_dtype_is_signed_int(dt)) return (uint64_t)drt_load_i64(dt, data, i) ^ (UINT64_C(1) << 63);
  if (dt == DRT_DTYPE_UINT64) return ((const uint64_t *)data)[i];
  return (uint64_t)drt_load_i64(dt, data, i); /* narrower unsigned types and bool: non-negative */
}

static drt_status k_topk(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const drt_tensor *x = &in[0];
  int axis;
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_node_attr_int(n, "axis", -1), x->shape.rank, &axis),
                          "attribute axis");
  int64_t outer = 1, len = x->shape.dims[axis], inner = 1, k = out[0].shape.dims[axis];
  for (int d = 0; d < axis; d++) outer *= x->shape.dims[d];
  for (int d = axis + 1; d < x->shape.rank; d++) inner *= x->shape.dims[d];
  if (outer * inner * k == 0) return DRT_OK;
  bool largest = drt_node_attr_int(n, "largest", 1) != 0;
  size_t es = drt_dtype_size(x->dtype);
  topk_item *it = malloc((size_t)len * sizeof *it);
  if (!it) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "TopK sort buffer of %" PRId64 " items", len);
  const uint8_t *xs = x->data;
  uint8_t *vs = out[0].data;
  int64_t *is = out[1].data;
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t i = 0; i < inner; i++) {
      int64_t base = o * len * inner + i;
      for (int64_t a = 0; a < len; a++) {
        uint64_t key = order_key(x->dtype, x->data, (size_t)(base + a * inner));
        it[a] = (topk_item){largest ? ~key : key, a};
      }
      qsort(it, (size_t)len, sizeof *it, topk_cmp);
      int64_t obase = o * k * inner + i;
      for (int64_t a = 0; a < k; a++) {
        memcpy(vs + (size_t)(obase + a * inner) * es, xs + (size_t)(base + it[a].idx * inner) * es, es);
        is[obase + a * inner] = it[a].idx;
      }
    }
  }
  free(it);
  return DRT_OK;
}

/* ---- Hardmax -------------------------------------------------------------------------- */
/* 1 at the first maximum along the axis (the first NaN if there is one, as numpy's argmax),
 * 0 elsewhere; before opset 13 the input is 2-D at axis, as for Softmax. */
static drt_status k_hardmax(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const drt_tensor *x = &in[0];
  int64_t outer, len, inner;
  DRT_RETURN_IF_ERROR(drt_softmax_extent(n, &x->shape, &outer, &len, &inner));
  size_t cnt = (size_t)(outer * len * inner);
  memset(out[0].data, 0, cnt * drt_dtype_size(out[0].dtype));
  if (!cnt) return DRT_OK;
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t i = 0; i < inner; i++) {
      int64_t base = o * len * inner + i, best = 0;
      double m = drt_load_f64(x->dtype, x->data, (size_t)base);
      for (int64_t a = 1; a < len && m == m; a++) {
        double v = drt_load_f64(x->dtype, x->data, (size_t)(base + a * inner));
        if (v > m || v != v) m = v, best = a;
      }
      size_t at = (size_t)(base + best * inner);
      if (out[0].dtype == DRT_DTYPE_FLOAT64) ((double *)out[0].data)[at] = 1;
      else ((float *)out[0].data)[at] = 1;
    }
  }
  return DRT_OK;
}

/* ---- OneHot --------------------------------------------------------------------------- */
/* out[.., d, ..] = on_value where d == index (negative indices count from depth), off_value
 * elsewhere; out-of-range indices give a row of off_value. Float indices truncate. */
static drt_status k_one_hot(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const drt_tensor *ix = &in[0], *values = &in[2];
  int axis;
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_node_attr_int(n, "axis", -1), out[0].shape.rank, &axis),
                          "attribute axis");
  int64_t depth = out[0].shape.dims[axis], outer = 1, inner = 1;
  for (int d = 0; d < axis; d++) outer *= ix->shape.dims[d];
  for (int d = axis; d < ix->shape.rank; d++) inner *= ix->shape.dims[d];
  size_t es = drt_dtype_size(values->dtype);
  const uint8_t *off = values->data, *on = off + es;
  uint8_t *y = out[0].data;
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t i = 0; i < inner; i++) {
      double f = drt_load_f64(ix->dtype, ix->data, (size_t)(o * inner + i));
      int64_t h = -1;
      if (f == f && fabs(f) < 9.0e18) {
        h = (int64_t)f;
        if (h < 0) h += depth;
      }
      for (int64_t d = 0; d < depth; d++)
        memcpy(y + (size_t)((o * depth + d) * inner + i) * es, d == h ? on : off, es);
    }
  }
  return DRT_OK;
}

/* ---- EyeLike -------------------------------------------------------------------------- */
static drt_status k_eye_like(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  (void)in;
  int64_t rows = out[0].shape.dims[0], cols = out[0].shape.dims[1], k = drt_node_attr_int(n, "k", 0);
  k = k < -rows ? -rows : k > cols ? cols : k; /* beyond these no diagonal element exists (and r + k cannot overflow) */
  size_t es = drt_dtype_size(out[0].dtype);
  memset(out[0].data, 0, (size_t)(rows * cols) * es);
  const double one = 1;
  for (int64_t r = 0; r < rows; r++) {
    int64_t c = r + k;
    if (c >= 0 && c < cols) drt_convert(out[0].dtype, (uint8_t *)out[0].data + (size_t)(r * cols + c) * es,
                                        DRT_DTYPE_FLOAT64, &one, 1);
  }
  return DRT_OK;
}

#define F32 DRT_DT_BIT(DRT_DTYPE_FLOAT32)
#define F64 DRT_DT_BIT(DRT_DTYPE_FLOAT64)

const drt_cpu_kernel_entry drt_cpu_kernels_select[] = {
    {DRT_OP_TOPK, k_topk, DRT_DT_FLOATS},
    {DRT_OP_HARDMAX, k_hardmax, F32 | F64},
    {DRT_OP_ONE_HOT, k_one_hot, DRT_DT_FLOATS},
    {DRT_OP_EYE_LIKE, k_eye_like, DRT_DT_FLOATS},
    {DRT_OP_COUNT_, NULL, 0},
};
