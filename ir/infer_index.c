/* Shape/dtype inference for the index op family: Gather, GatherElements, GatherND, ScatterND,
 * ScatterElements, Pad, Resize, Upsample.
 *
 * Operands that decide an output shape (Pad's pads/axes, Resize's scales/sizes/axes, Upsample's
 * scales) must be compile-time constants. Resize follows onnx/reference/ops/op_resize.py:
 * out = floor(in * scale) for scales, sizes as given (or rescaled by keep_aspect_ratio_policy). */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer.h"

#define IDX_DT (DRT_DT_BIT(DRT_DTYPE_INT32) | DRT_DT_BIT(DRT_DTYPE_INT64))

static drt_status check_rank(int rank, const char *what) {
  if (rank > DRT_MAX_RANK)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s has rank %d, more than the supported %d", what, rank, DRT_MAX_RANK);
  return DRT_OK;
}

/* ---- Gather ------------------------------------------------------------------------------ */
static drt_status infer_gather(drt_graph *g, drt_node *n) {
  (void)g;
  const drt_value *data = n->inputs[0], *idx = n->inputs[1];
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, IDX_DT));
  if (data->shape.rank < 1) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 0 'data' must have rank >= 1");
  int axis = 0;
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_node_attr_int(n, "axis", 0), data->shape.rank, &axis),
                          "attribute axis");
  int r = data->shape.rank, q = idx->shape.rank;
  DRT_RETURN_IF_ERROR(check_rank(r - 1 + q, "output"));
  /* Constant indices are checked here so that a bad model fails at compile time. */
  if (idx->kind == DRT_VALUE_CONST) {
    int64_t bound = data->shape.dims[axis], cnt = drt_shape_numel(&idx->shape);
    for (int64_t i = 0; i < cnt; i++) {
      int64_t v = drt_load_i64(idx->dtype, idx->data, (size_t)i);
      if (v < -bound || v >= bound)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                         "index %" PRId64 " (element %" PRId64 " of input 1 '%s') is out of range [-%" PRId64
                         ", %" PRId64 ") for axis %d",
                         v, i, idx->name, bound, bound, axis);
    }
  }
  drt_shape o = {0};
  for (int i = 0; i < axis; i++) o.dims[o.rank++] = data->shape.dims[i];
  for (int i = 0; i < q; i++) o.dims[o.rank++] = idx->shape.dims[i];
  for (int i = axis + 1; i < r; i++) o.dims[o.rank++] = data->shape.dims[i];
  drt_infer_set(n, 0, data->dtype, &o);
  return DRT_OK;
}

/* ---- GatherElements / ScatterElements ----------------------------------------------------- */
static drt_status check_elements_shapes(const drt_node *n, int *axis_out) {
  const drt_value *data = n->inputs[0], *idx = n->inputs[1];
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, IDX_DT));
  int r = data->shape.rank;
  if (r < 1) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 0 'data' must have rank >= 1");
  if (idx->shape.rank != r)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 1 'indices' has rank %d, expected the data rank %d",
                     idx->shape.rank, r);
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_node_attr_int(n, "axis", 0), r, axis_out), "attribute axis");
  for (int i = 0; i < r; i++)
    if (i != *axis_out && idx->shape.dims[i] > data->shape.dims[i])
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                       "input 1 'indices' dim %d is %" PRId64 ", larger than the data dim %" PRId64, i,
                       idx->shape.dims[i], data->shape.dims[i]);
  return DRT_OK;
}

static drt_status infer_gather_elements(drt_graph *g, drt_node *n) {
  (void)g;
  int axis = 0;
  DRT_RETURN_IF_ERROR(check_elements_shapes(n, &axis));
  drt_infer_set(n, 0, n->inputs[0]->dtype, &n->inputs[1]->shape);
  return DRT_OK;
}

/* reduction: "none" (default), "add", "mul" (opset 16), "max", "min" (opset 18). */
static drt_status check_reduction(const drt_node *n) {
  const char *red = drt_node_attr_string(n, "reduction", "none");
  if (!strcmp(red, "none") || !strcmp(red, "add") || !strcmp(red, "mul") || !strcmp(red, "max") ||
      !strcmp(red, "min"))
    return DRT_OK;
  return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                   "attribute reduction: unknown value '%s' (expected none, add, mul, max or min)", red);
}

static drt_status check_updates_dtype(const drt_node *n) {
  const drt_value *data = n->inputs[0], *upd = n->inputs[2];
  if (upd->dtype != data->dtype)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 2 'updates' has dtype %s, expected the data dtype %s",
                     drt_dtype_name(upd->dtype), drt_dtype_name(data->dtype));
  return DRT_OK;
}

static drt_status infer_scatter_elements(drt_graph *g, drt_node *n) {
  (void)g;
  int axis = 0;
  DRT_RETURN_IF_ERROR(check_elements_shapes(n, &axis));
  DRT_RETURN_IF_ERROR(check_updates_dtype(n));
  DRT_RETURN_IF_ERROR(check_reduction(n));
  if (!drt_shape_equal(&n->inputs[1]->shape, &n->inputs[2]->shape)) {
    char a[128], b[128];
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 2 'updates' has shape %s, expected the indices shape %s",
                     drt_shape_str(&n->inputs[2]->shape, a, sizeof a), drt_shape_str(&n->inputs[1]->shape, b, sizeof b));
  }
  drt_infer_set(n, 0, n->inputs[0]->dtype, &n->inputs[0]->shape);
  return DRT_OK;
}

/* ---- GatherND / ScatterND ----------------------------------------------------------------- */
static drt_status infer_gather_nd(drt_graph *g, drt_node *n) {
  (void)g;
  const drt_value *data = n->inputs[0], *idx = n->inputs[1];
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, DRT_DT_BIT(DRT_DTYPE_INT64) | DRT_DT_BIT(DRT_DTYPE_INT32)));
  int r = data->shape.rank, q = idx->shape.rank;
  int64_t b = drt_node_attr_int(n, "batch_dims", 0);
  if (r < 1 || q < 1)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "data (rank %d) and indices (rank %d) must have rank >= 1", r, q);
  if (b < 0 || b >= r || b >= q)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                     "attribute batch_dims %" PRId64 " must be in [0, min(data rank %d, indices rank %d))", b, r, q);
  int64_t k = idx->shape.dims[q - 1];
  if (k < 1 || k > r - b)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                     "last dim of input 1 'indices' is %" PRId64 ", expected 1..%" PRId64 " (data rank %d - batch_dims)",
                     k, r - b, r);
  for (int i = 0; i < b; i++)
    if (idx->shape.dims[i] != data->shape.dims[i])
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                       "batch dim %d differs: indices %" PRId64 ", data %" PRId64, i, idx->shape.dims[i],
                       data->shape.dims[i]);
  DRT_RETURN_IF_ERROR(check_rank((int)(q - 1 + r - b - k), "output"));
  drt_shape o = {0};
  for (int i = 0; i < q - 1; i++) o.dims[o.rank++] = idx->shape.dims[i];
  for (int64_t i = b + k; i < r; i++) o.dims[o.rank++] = data->shape.dims[i];
  drt_infer_set(n, 0, data->dtype, &o);
  return DRT_OK;
}

static drt_status infer_scatter_nd(drt_graph *g, drt_node *n) {
  (void)g;
  const drt_value *data = n->inputs[0], *idx = n->inputs[1], *upd = n->inputs[2];
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, IDX_DT));
  DRT_RETURN_IF_ERROR(check_updates_dtype(n));
  DRT_RETURN_IF_ERROR(check_reduction(n));
  int r = data->shape.rank, q = idx->shape.rank;
  if (r < 1 || q < 1)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "data (rank %d) and indices (rank %d) must have rank >= 1", r, q);
  int64_t k = idx->shape.dims[q - 1];
  if (k < 1 || k > r)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "last dim of input 1 'indices' is %" PRId64 ", expected 1..%d", k,
                     r);
  drt_shape want = {0};
  for (int i = 0; i < q - 1; i++) want.dims[want.rank++] = idx->shape.dims[i];
  if (q - 1 + r - k > DRT_MAX_RANK)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 2 'updates' would need rank %d", (int)(q - 1 + r - k));
  for (int64_t i = k; i < r; i++) want.dims[want.rank++] = data->shape.dims[i];
  if (!drt_shape_equal(&want, &upd->shape)) {
    char a[128], bs[128];
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                     "input 2 'updates' has shape %s, expected %s (indices.shape[:-1] + data.shape[k:])",
                     drt_shape_str(&upd->shape, a, sizeof a), drt_shape_str(&want, bs, sizeof bs));
  }
  drt_infer_set(n, 0, data->dtype, &data->shape);
  return DRT_OK;
}

/* ---- Pad ---------------------------------------------------------------------------------- */
static drt_status infer_pad(drt_graph *g, drt_node *n) {
  (void)g;
  const drt_value *data = n->inputs[0];
  int r = data->shape.rank;
  const char *mode = drt_node_attr_string(n, "mode", "constant");
  if (strcmp(mode, "constant") && strcmp(mode, "reflect") && strcmp(mode, "edge") && strcmp(mode, "wrap"))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                     "attribute mode: unknown value '%s' (expected constant, reflect, edge or wrap)", mode);
  int64_t pads[2 * DRT_MAX_RANK], np = 0;
  int64_t axes[DRT_MAX_RANK], na = r;
  for (int i = 0; i < r; i++) axes[i] = i;
  if (n->opset < 11) {
    const int64_t *p = drt_node_attr_ints(n, "pads", &np);
    if (!p) p = drt_node_attr_ints(n, "paddings", &np);
    if (!p) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute pads is required");
    if (np != 2 * r)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute pads has %" PRId64 " values, expected %d", np, 2 * r);
    memcpy(pads, p, (size_t)np * sizeof pads[0]);
  } else {
    const drt_value *pv = drt_node_input(n, 1), *cv = drt_node_input(n, 2), *av = drt_node_input(n, 3);
    if (!pv) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 1 'pads' is required");
    if (av) {
      DRT_RETURN_IF_ERROR_CTX(drt_value_const_ints(av, axes, DRT_MAX_RANK, &na), "input 3 'axes'");
      bool seen[DRT_MAX_RANK] = {false};
      for (int64_t i = 0; i < na; i++) {
        int a = 0;
        DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(axes[i], r, &a), "input 3 'axes'");
        if (seen[a]) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 3 'axes' repeats axis %d", a);
        seen[a] = true;
        axes[i] = a;
      }
    }
    DRT_RETURN_IF_ERROR_CTX(drt_value_const_ints(pv, pads, 2 * DRT_MAX_RANK, &np), "input 1 'pads'");
    if (np != 2 * na)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 1 'pads' has %" PRId64 " values, expected %" PRId64, np,
                       2 * na);
    if (cv) {
      if (cv->dtype != data->dtype)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 2 'constant_value' has dtype %s, expected %s",
                         drt_dtype_name(cv->dtype), drt_dtype_name(data->dtype));
      if (drt_shape_numel(&cv->shape) > 1)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 2 'constant_value' must be a scalar");
    }
  }
  drt_shape o = data->shape;
  for (int64_t i = 0; i < na; i++) {
    int a = (int)axes[i];
    int64_t in = data->shape.dims[a], b = pads[i], e = pads[na + i];
    const int64_t lim = (int64_t)1 << 60; /* dims are far below; keeps in + b + e from overflowing */
    if (b > lim || b < -lim || e > lim || e < -lim)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "pads %" PRId64 ", %" PRId64 " on axis %d are out of range", b, e, a);
    int64_t d = in + b + e;
    if (d < 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                       "pads %" PRId64 ", %" PRId64 " on axis %d of size %" PRId64 " give a negative size", b, e, a, in);
    if (in == 0 && d > 0 && strcmp(mode, "constant"))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "mode '%s' cannot pad axis %d, which has size 0", mode, a);
    o.dims[a] = d;
  }
  drt_infer_set(n, 0, data->dtype, &o);
  return DRT_OK;
}

/* ---- Resize / Upsample -------------------------------------------------------------------- */
static bool str_in(const char *s, const char *const *list) {
  for (; *list; list++)
    if (!strcmp(s, *list)) return true;
  return false;
}

static drt_status check_resize_attrs(const drt_node *n) {
  static const char *const modes[] = {"nearest", "linear", "cubic", NULL};
  static const char *const coords[] = {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                                       "asymmetric", "tf_crop_and_resize", "tf_half_pixel_for_nn", NULL};
  static const char *const nearest[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil", NULL};
  static const char *const policies[] = {"stretch", "not_larger", "not_smaller", NULL};
  const char *m = drt_node_attr_string(n, "mode", "nearest");
  if (!str_in(m, modes))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute mode: unknown value '%s' (expected nearest, linear or cubic)",
                     m);
  if (n->opset < 11) {
    if (!strcmp(m, "cubic"))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute mode: 'cubic' needs opset 11");
    return DRT_OK;
  }
  const char *c = drt_node_attr_string(n, "coordinate_transformation_mode", "half_pixel");
  if (!str_in(c, coords))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute coordinate_transformation_mode: unknown value '%s'", c);
  if (!strcmp(c, "tf_half_pixel_for_nn"))
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "coordinate_transformation_mode 'tf_half_pixel_for_nn' is not supported");
  const char *nm = drt_node_attr_string(n, "nearest_mode", "round_prefer_floor");
  if (!str_in(nm, nearest))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute nearest_mode: unknown value '%s'", nm);
  const char *kp = drt_node_attr_string(n, "keep_aspect_ratio_policy", "stretch");
  if (!str_in(kp, policies))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute keep_aspect_ratio_policy: unknown value '%s'", kp);
  if (!strcmp(c, "tf_crop_and_resize") && !drt_node_input(n, 1))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "coordinate_transformation_mode 'tf_crop_and_resize' needs input 1 'roi'");
  return DRT_OK;
}

/* Reads a float constant (scales) as doubles. Fails UNSUPPORTED when not constant. */
static drt_status const_floats(const drt_value *v, const char *what, double *out, int64_t max, int64_t *count) {
  if (v->kind != DRT_VALUE_CONST)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s '%s' must be a compile-time constant", what, v->name);
  if (!drt_dtype_is_float(v->dtype))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s '%s' must be a float tensor, got %s", what, v->name,
                     drt_dtype_name(v->dtype));
  int64_t cnt = drt_shape_numel(&v->shape);
  if (cnt < 0 || cnt > max)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s '%s' has %" PRId64 " values, expected at most %" PRId64, what,
                     v->name, cnt, max);
  for (int64_t i = 0; i < cnt; i++) out[i] = drt_load_f64(v->dtype, v->data, (size_t)i);
  *count = cnt;
  return DRT_OK;
}

static drt_status set_scaled_shape(drt_node *n, const double *scales, const drt_shape *in) {
  drt_shape o = *in;
  for (int i = 0; i < in->rank; i++) {
    if (!(scales[i] > 0) || !isfinite(scales[i]))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "scale %g for axis %d must be a positive finite number", scales[i],
                       i);
    double d = floor((double)in->dims[i] * scales[i]);
    if (d > 9.0e15) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "scale %g for axis %d overflows", scales[i], i);
    o.dims[i] = (int64_t)d;
  }
  drt_infer_set(n, 0, n->inputs[0]->dtype, &o);
  return DRT_OK;
}

static drt_status infer_resize(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(check_resize_attrs(n));
  const drt_value *x = n->inputs[0];
  int r = x->shape.rank;
  const drt_value *sv = drt_node_input(n, n->opset < 11 ? 1 : 2);
  const drt_value *zv = n->opset < 11 ? NULL : drt_node_input(n, 3);
  if (sv && drt_shape_numel(&sv->shape) == 0) sv = NULL;
  if (zv && drt_shape_numel(&zv->shape) == 0) zv = NULL;
  if (!sv == !zv)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "exactly one of 'scales' and 'sizes' must be given (%s)",
                     sv ? "both are" : "neither is");
  /* axes (opset 18) */
  int64_t axes[DRT_MAX_RANK], na = r;
  for (int i = 0; i < r; i++) axes[i] = i;
  int64_t nattr;
  const int64_t *aattr = n->opset >= 18 ? drt_node_attr_ints(n, "axes", &nattr) : NULL;
  if (aattr) {
    if (nattr > r) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute axes has %" PRId64 " values for rank %d", nattr, r);
    bool seen[DRT_MAX_RANK] = {false};
    na = nattr;
    for (int64_t i = 0; i < na; i++) {
      int a = 0;
      DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(aattr[i], r, &a), "attribute axes");
      if (seen[a]) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute axes repeats axis %d", a);
      seen[a] = true;
      axes[i] = a;
    }
  }
  if (n->opset >= 11 && !strcmp(drt_node_attr_string(n, "coordinate_transformation_mode", "half_pixel"),
                                 "tf_crop_and_resize")) {
    const drt_value *roi = drt_node_input(n, 1);
    if (drt_shape_numel(&roi->shape) != 2 * na)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 1 'roi' has %" PRId64 " values, expected %" PRId64,
                       drt_shape_numel(&roi->shape), 2 * na);
  }
  double scales[DRT_MAX_RANK];
  for (int i = 0; i < r; i++) scales[i] = 1.0;
  if (sv) {
    double s[DRT_MAX_RANK];
    int64_t cnt;
    DRT_RETURN_IF_ERROR(const_floats(sv, "input 'scales'", s, DRT_MAX_RANK, &cnt));
    if (cnt != na)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 'scales' has %" PRId64 " values, expected %" PRId64, cnt, na);
    for (int64_t i = 0; i < na; i++) scales[axes[i]] = s[i];
    return set_scaled_shape(n, scales, &x->shape);
  }
  if (zv->dtype != DRT_DTYPE_INT64)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 3 'sizes' must be int64, got %s", drt_dtype_name(zv->dtype));
  int64_t sz[DRT_MAX_RANK], cnt;
  DRT_RETURN_IF_ERROR_CTX(drt_value_const_ints(zv, sz, DRT_MAX_RANK, &cnt), "input 3 'sizes'");
  if (cnt != na)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 3 'sizes' has %" PRId64 " values, expected %" PRId64, cnt, na);
  drt_shape o = x->shape;
  const char *policy = drt_node_attr_string(n, "keep_aspect_ratio_policy", "stretch");
  for (int64_t i = 0; i < na; i++) {
    if (sz[i] < 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 3 'sizes' value %" PRId64 " for axis %" PRId64 " is negative",
                       sz[i], axes[i]);
    if (x->shape.dims[axes[i]] == 0 && sz[i] != 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "cannot resize axis %" PRId64 " of size 0 to %" PRId64, axes[i],
                       sz[i]);
    o.dims[axes[i]] = sz[i];
  }
  if (n->opset >= 18 && strcmp(policy, "stretch")) {
    bool larger = !strcmp(policy, "not_smaller");
    double s = larger ? 0.0 : INFINITY;
    for (int64_t i = 0; i < na; i++) {
      int64_t in = x->shape.dims[axes[i]];
      if (in == 0) continue;
      double v = (double)sz[i] / (double)in;
      s = larger ? (v > s ? v : s) : (v < s ? v : s);
    }
    if (!isfinite(s)) s = 1.0;
    for (int64_t i = 0; i < na; i++) o.dims[axes[i]] = (int64_t)(s * (double)x->shape.dims[axes[i]] + 0.5);
  }
  drt_infer_set(n, 0, x->dtype, &o);
  return DRT_OK;
}

static drt_status infer_upsample(drt_graph *g, drt_node *n) {
  (void)g;
  const drt_value *x = n->inputs[0];
  int r = x->shape.rank;
  if (n->opset < 7)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "Upsample before opset 7 is not supported");
  const char *m = drt_node_attr_string(n, "mode", "nearest");
  if (strcmp(m, "nearest") && strcmp(m, "linear") && strcmp(m, "bilinear"))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute mode: unknown value '%s' (expected nearest or linear)", m);
  double scales[DRT_MAX_RANK];
  int64_t cnt;
  if (n->opset < 9) {
    const float *f = drt_node_attr_floats(n, "scales", &cnt);
    if (!f) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute scales is required");
    if (cnt != r)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute scales has %" PRId64 " values, expected %d", cnt, r);
    for (int i = 0; i < r; i++) scales[i] = f[i];
  } else {
    const drt_value *sv = drt_node_input(n, 1);
    if (!sv) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 1 'scales' is required");
    DRT_RETURN_IF_ERROR(const_floats(sv, "input 1 'scales'", scales, DRT_MAX_RANK, &cnt));
    if (cnt != r)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 1 'scales' has %" PRId64 " values, expected %d", cnt, r);
  }
  return set_scaled_shape(n, scales, &x->shape);
}

/* OneHot: depth (input 1, one value) must be a compile-time constant >= 1; the output has
 * values' dtype and the indices' shape with depth inserted at axis (in [-r-1, r]). */
static drt_status infer_one_hot(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_NUMERIC));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, DRT_DT_NUMERIC));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 2, DRT_DT_ALL));
  const drt_value *ix = n->inputs[0], *depth = n->inputs[1], *values = n->inputs[2];
  double dv;
  DRT_RETURN_IF_ERROR_CTX(drt_value_const_scalar(depth, &dv), "depth (input 1)");
  if (values->shape.rank != 1 || values->shape.dims[0] != 2)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "values (input 2) must be [off_value, on_value]");
  if (!(dv >= 1) || dv > 1e12) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "depth is %g, must be >= 1", dv);
  if (ix->shape.rank + 1 > DRT_MAX_RANK) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "output rank over %d", DRT_MAX_RANK);
  int axis;
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_node_attr_int(n, "axis", -1), ix->shape.rank + 1, &axis),
                          "attribute axis");
  drt_shape o = {.rank = ix->shape.rank + 1};
  for (int d = 0, s = 0; d < o.rank; d++) o.dims[d] = d == axis ? (int64_t)dv : ix->shape.dims[s++];
  drt_infer_set(n, 0, values->dtype, &o);
  return DRT_OK;
}

/* EyeLike: a rank-2 input; output dtype from attribute dtype (default: the input's). */
static drt_status infer_eye_like(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_ALL));
  const drt_value *x = n->inputs[0];
  if (x->shape.rank != 2) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input must be rank 2, got rank %d", x->shape.rank);
  drt_dtype dt = x->dtype;
  const drt_attr *a = drt_node_attr(n, "dtype");
  if (a) {
    if (a->type != DRT_ATTR_INT || a->i < 0 || a->i > 64 || !drt_dtype_is_supported((drt_dtype)a->i))
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "attribute dtype = %" PRId64 " is not a supported dtype",
                       a->type == DRT_ATTR_INT ? a->i : -1);
    dt = (drt_dtype)a->i;
  }
  drt_infer_set(n, 0, dt, &x->shape);
  return DRT_OK;
}

/* GridSample: X [N, C, d1..dr], grid [N, o1..or, r] -> [N, C, o1..or]; cubic for r = 2 only
 * before opset 20 (as "bicubic"). */
static drt_status infer_grid_sample(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_FLOATS));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, DRT_DT_FLOATS));
  const drt_value *x = n->inputs[0], *grid = n->inputs[1];
  char a[128], b[128];
  int r = x->shape.rank - 2;
  if (r < 1 || grid->shape.rank != r + 2 || grid->shape.dims[0] != x->shape.dims[0] || grid->shape.dims[r + 1] != r)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "grid must be [N, o1..o%d, %d] for X of shape %s, got %s", r, r,
                     drt_shape_str(&x->shape, a, sizeof a), drt_shape_str(&grid->shape, b, sizeof b));
  const char *mode = drt_node_attr_string(n, "mode", n->opset < 20 ? "bilinear" : "linear");
  const char *pad = drt_node_attr_string(n, "padding_mode", "zeros");
  static const char *const modes[] = {"linear", "nearest", "cubic", "bilinear", "bicubic"};
  bool ok = false;
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) ok |= strcmp(mode, modes[i]) == 0;
  if (!ok) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute mode '%s' is not linear, nearest or cubic", mode);
  if (strcmp(pad, "zeros") && strcmp(pad, "border") && strcmp(pad, "reflection"))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute padding_mode '%s' is not zeros, border or reflection", pad);
  if (n->opset < 20 && r != 2)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "GridSample before opset 20 takes 4-D input, got %d spatial dims", r);
  drt_shape o = grid->shape;
  o.dims[1] = x->shape.dims[1];
  for (int i = 0; i < r; i++) o.dims[2 + i] = grid->shape.dims[1 + i];
  drt_infer_set(n, 0, x->dtype, &o);
  return DRT_OK;
}

/* RoiAlign (10, 16): X [N, C, H, W], rois [R, 4] (x1, y1, x2, y2), batch_indices [R] (int64)
 * -> Y [R, C, output_height, output_width]. */
static drt_status infer_roi_align(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_FLOATS));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, DRT_DT_FLOATS));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 2, DRT_DT_BIT(DRT_DTYPE_INT64) | DRT_DT_BIT(DRT_DTYPE_INT32)));
  const drt_value *x = n->inputs[0], *rois = n->inputs[1], *bi = n->inputs[2];
  char a[128], b[128], c[128];
  if (x->shape.rank != 4 || rois->shape.rank != 2 || rois->shape.dims[1] != 4 || bi->shape.rank != 1 ||
      bi->shape.dims[0] != rois->shape.dims[0])
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "expects X [N, C, H, W], rois [R, 4] and batch_indices [R], got %s, "
                     "%s and %s", drt_shape_str(&x->shape, a, sizeof a), drt_shape_str(&rois->shape, b, sizeof b),
                     drt_shape_str(&bi->shape, c, sizeof c));
  int64_t oh = drt_node_attr_int(n, "output_height", 1), ow = drt_node_attr_int(n, "output_width", 1);
  int64_t sr = drt_node_attr_int(n, "sampling_ratio", 0);
  const char *mode = drt_node_attr_string(n, "mode", "avg");
  const char *ct = drt_node_attr_string(n, "coordinate_transformation_mode", "half_pixel");
  if (oh < 1 || ow < 1 || oh > (1 << 20) || ow > (1 << 20) || sr < 0 || sr > (1 << 16))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "output_height %" PRId64 ", output_width %" PRId64
                     " and sampling_ratio %" PRId64 " must be positive (sampling_ratio may be 0)", oh, ow, sr);
  if (strcmp(mode, "avg") && strcmp(mode, "max"))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute mode '%s' is not avg or max", mode);
  if (strcmp(ct, "half_pixel") && strcmp(ct, "output_half_pixel"))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute coordinate_transformation_mode '%s' is not half_pixel "
                     "or output_half_pixel", ct);
  drt_shape o = {4, {rois->shape.dims[0], x->shape.dims[1], oh, ow}};
  drt_infer_set(n, 0, x->dtype, &o);
  return DRT_OK;
}

/* DeformConv (19, 2-D): X [N, C, H, W], W [oC, C/group, kH, kW], offset [N, offset_group*kH*kW*2,
 * oH, oW], [B [oC]], [mask [N, offset_group*kH*kW, oH, oW]] -> Y [N, oC, oH, oW]. */
static drt_status infer_deform_conv(drt_graph *g, drt_node *n) {
  (void)g;
  for (int i = 0; i < n->num_inputs; i++)
    if (n->inputs[i]) DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, i, DRT_DT_FLOATS));
  const drt_value *x = n->inputs[0], *w = n->inputs[1], *off = n->inputs[2], *bias = drt_node_input(n, 3),
                  *mask = drt_node_input(n, 4);
  char a[128], b[128];
  if (x->shape.rank != 4 || w->shape.rank != 4)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "only 2-D DeformConv (X and W of rank 4) is supported, got X %s, W %s",
                     drt_shape_str(&x->shape, a, sizeof a), drt_shape_str(&w->shape, b, sizeof b));
  int64_t group = drt_node_attr_int(n, "group", 1), og = drt_node_attr_int(n, "offset_group", 1);
  int64_t C = x->shape.dims[1], oc = w->shape.dims[0], kh = w->shape.dims[2], kw = w->shape.dims[3];
  int64_t nk = 0;
  const int64_t *ks = drt_node_attr_ints(n, "kernel_shape", &nk);
  if (ks && (nk != 2 || ks[0] != kh || ks[1] != kw))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "kernel_shape does not match W %s", drt_shape_str(&w->shape, a, sizeof a));
  if (group < 1 || og < 1 || C % group || oc % group || w->shape.dims[1] * group != C || C % og)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "group %" PRId64 " / offset_group %" PRId64 " do not divide the "
                     "%" PRId64 " input and %" PRId64 " output channels (W %s)", group, og, C, oc,
                     drt_shape_str(&w->shape, a, sizeof a));
  int64_t np = 0, nd = 0, ns = 0;
  const int64_t *pads = drt_node_attr_ints(n, "pads", &np), *dil = drt_node_attr_ints(n, "dilations", &nd),
                *str = drt_node_attr_ints(n, "strides", &ns);
  if ((pads && np != 4) || (dil && nd != 2) || (str && ns != 2))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "pads needs 4 values, dilations and strides 2");
  int64_t p[4] = {0, 0, 0, 0}, d[2] = {1, 1}, s[2] = {1, 1};
  for (int i = 0; i < 4 && pads; i++) p[i] = pads[i];
  for (int i = 0; i < 2; i++) {
    if (dil) d[i] = dil[i];
    if (str) s[i] = str[i];
    if (d[i] < 1 || s[i] < 1 || d[i] > (1 << 20) || s[i] > (1 << 20))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "dilations and strides must be positive");
  }
  for (int i = 0; i < 4; i++)
    if (p[i] < 0 || p[i] > (1 << 20)) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "pads must be non-negative");
  int64_t oh = (x->shape.dims[2] + p[0] + p[2] - ((kh - 1) * d[0] + 1)) / s[0] + 1;
  int64_t ow = (x->shape.dims[3] + p[1] + p[3] - ((kw - 1) * d[1] + 1)) / s[1] + 1;
  if (oh < 1 || ow < 1) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "the kernel does not fit the padded input");
  drt_shape want_off = {4, {x->shape.dims[0], og * kh * kw * 2, oh, ow}};
  if (!drt_shape_equal(&off->shape, &want_off))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "offset must be %s, got %s", drt_shape_str(&want_off, a, sizeof a),
                     drt_shape_str(&off->shape, b, sizeof b));
  if (bias && (bias->shape.rank != 1 || bias->shape.dims[0] != oc))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "B must be [%" PRId64 "]", oc);
  drt_shape want_mask = {4, {x->shape.dims[0], og * kh * kw, oh, ow}};
  if (mask && !drt_shape_equal(&mask->shape, &want_mask))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "mask must be %s, got %s", drt_shape_str(&want_mask, a, sizeof a),
                     drt_shape_str(&mask->shape, b, sizeof b));
  drt_shape o = {4, {x->shape.dims[0], oc, oh, ow}};
  drt_infer_set(n, 0, x->dtype, &o);
  return DRT_OK;
}

/* TfIdfVectorizer (9): X int32/int64 [C] or [B, C] -> float32 [max(ngram_indexes) + 1] or
 * [B, that]; the n-gram pool must be integers (pool_int64s; string pools are not supported). */
static drt_status infer_tfidf_vectorizer(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_BIT(DRT_DTYPE_INT32) | DRT_DT_BIT(DRT_DTYPE_INT64)));
  const drt_value *x = n->inputs[0];
  if (x->shape.rank > 2 || (x->shape.rank == 2 && x->shape.dims[0] < 1))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "X must be [C] or [B, C] with B > 0");
  if (drt_node_attr(n, "pool_strings"))
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "pool_strings: string n-grams are not supported (pool_int64s are)");
  int64_t np = 0, nc = 0, ni = 0, nw = 0;
  const int64_t *pool = drt_node_attr_ints(n, "pool_int64s", &np), *counts = drt_node_attr_ints(n, "ngram_counts", &nc),
                *idx = drt_node_attr_ints(n, "ngram_indexes", &ni);
  drt_node_attr_floats(n, "weights", &nw);
  int64_t mn = drt_node_attr_int(n, "min_gram_length", 0), mx = drt_node_attr_int(n, "max_gram_length", 0);
  int64_t skip = drt_node_attr_int(n, "max_skip_count", 0);
  const char *mode = drt_node_attr_string(n, "mode", "");
  if (!pool || !counts || !idx || nc < 1 || ni < 1)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "pool_int64s, ngram_counts and ngram_indexes are required");
  if (mn < 1 || mx < mn || mx > 64 || skip < 0 || skip > 1024)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "min_gram_length %" PRId64 ", max_gram_length %" PRId64
                     " and max_skip_count %" PRId64 " are out of range", mn, mx, skip);
  if (strcmp(mode, "TF") && strcmp(mode, "IDF") && strcmp(mode, "TFIDF"))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute mode '%s' is not TF, IDF or TFIDF", mode);
  int64_t out = 0, ngrams = 0;
  for (int64_t i = 0; i < nc; i++) {
    int64_t b = counts[i], e = i + 1 < nc ? counts[i + 1] : np;
    if (b < 0 || e < b || e > np)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "ngram_counts must be non-decreasing offsets into the pool");
    ngrams += (e - b) / (i + 1);
  }
  if (ngrams > ni)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%" PRId64 " n-grams but %" PRId64 " ngram_indexes", ngrams, ni);
  for (int64_t i = 0; i < ni; i++) {
    if (idx[i] < 0 || idx[i] > (1 << 24)) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "ngram_indexes out of range");
    out = idx[i] + 1 > out ? idx[i] + 1 : out;
  }
  if (nw && nw < out)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "weights has %" PRId64 " values for %" PRId64 " outputs", nw, out);
  drt_shape o = {x->shape.rank == 2 ? 2 : 1, {0}};
  if (x->shape.rank == 2) o.dims[0] = x->shape.dims[0], o.dims[1] = out;
  else o.dims[0] = out;
  drt_infer_set(n, 0, DRT_DTYPE_FLOAT32, &o);
  return DRT_OK;
}

/* Reads the values of a constant int32/int64 1-D input (at most DRT_MAX_RANK of them). */
static drt_status const_ints(const drt_node *n, int i, const char *what, int64_t *vals, int64_t *count) {
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, i, DRT_DT_BIT(DRT_DTYPE_INT32) | DRT_DT_BIT(DRT_DTYPE_INT64)));
  if (n->inputs[i]->shape.rank > 1) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s (input %d) must be 1-D", what, i);
  DRT_RETURN_IF_ERROR_CTX(drt_value_const_ints(n->inputs[i], vals, DRT_MAX_RANK, count), "%s (input %d)", what, i);
  return DRT_OK;
}

static drt_status infer_center_crop_pad(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_ALL));
  const drt_value *x = n->inputs[0];
  int64_t shp[DRT_MAX_RANK], c, na;
  DRT_RETURN_IF_ERROR(const_ints(n, 1, "shape", shp, &c));
  const int64_t *axes = drt_node_attr_ints(n, "axes", &na);
  if (!axes) na = x->shape.rank;
  if (c != na)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "shape has %" PRId64 " values for %" PRId64 " axes", c, na);
  drt_shape o = x->shape;
  for (int64_t k = 0; k < c; k++) {
    int a = (int)k;
    if (axes) DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(axes[k], x->shape.rank, &a), "attribute axes[%" PRId64 "]", k);
    if (shp[k] < 0) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "shape[%" PRId64 "] is negative", k);
    o.dims[a] = shp[k];
  }
  drt_infer_set(n, 0, x->dtype, &o);
  return DRT_OK;
}

static drt_status infer_reverse_sequence(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_ALL));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, DRT_DT_BIT(DRT_DTYPE_INT64)));
  const drt_value *x = n->inputs[0], *len = n->inputs[1];
  int64_t ba = drt_node_attr_int(n, "batch_axis", 1), ta = drt_node_attr_int(n, "time_axis", 0);
  if (x->shape.rank < 2 || (ba != 0 && ba != 1) || (ta != 0 && ta != 1) || ba == ta)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "needs rank >= 2 and batch_axis/time_axis 0 and 1 (got %" PRId64 "/%" PRId64 ")", ba, ta);
  if (len->shape.rank != 1 || len->shape.dims[0] != x->shape.dims[ba])
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "sequence_lens must be [%" PRId64 "]", x->shape.dims[ba]);
  drt_infer_set(n, 0, x->dtype, &x->shape);
  return DRT_OK;
}

static drt_status infer_col2im(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_FLOATS));
  const drt_value *x = n->inputs[0];
  int64_t img[DRT_MAX_RANK], blk[DRT_MAX_RANK], ci = 0, cb = 0;
  DRT_RETURN_IF_ERROR(const_ints(n, 1, "image_shape", img, &ci));
  DRT_RETURN_IF_ERROR(const_ints(n, 2, "block_shape", blk, &cb));
  if (ci != cb || ci < 1 || ci + 2 > DRT_MAX_RANK || x->shape.rank != 3)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input must be [N, C*prod(block), L] with image_shape and block_shape of one length");
  int64_t kp = 1, L = 1, cnt[3];
  const char *names[3] = {"strides", "dilations", "pads"};
  const int64_t *att[3];
  for (int k = 0; k < 3; k++) {
    att[k] = drt_node_attr_ints(n, names[k], &cnt[k]);
    if (att[k] && cnt[k] != (k == 2 ? 2 * ci : ci))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute %s has %" PRId64 " values, expected %" PRId64, names[k],
                       cnt[k], k == 2 ? 2 * ci : ci);
    for (int64_t i = 0; att[k] && i < cnt[k]; i++)
      if (att[k][i] < (k == 2 ? 0 : 1) || att[k][i] > ((int64_t)1 << 31))
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute %s[%" PRId64 "] = %" PRId64 " is out of range", names[k], i,
                         att[k][i]);
  }
  for (int64_t i = 0; i < cb; i++) {
    if (blk[i] < 1 || img[i] < 1 || blk[i] > ((int64_t)1 << 31) || img[i] > ((int64_t)1 << 31) || kp > INT64_MAX / blk[i])
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "image and block sizes must be positive and small enough");
    kp *= blk[i];
    int64_t st = att[0] ? att[0][i] : 1, dl = att[1] ? att[1][i] : 1;
    int64_t span = img[i] + (att[2] ? att[2][i] + att[2][ci + i] : 0) - (dl * (blk[i] - 1) + 1);
    if (span < 0) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "the block does not fit the padded image in dim %" PRId64, i);
    L *= span / st + 1;
  }
  if (x->shape.dims[2] != L)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input has %" PRId64 " block positions, the geometry gives %" PRId64,
                     x->shape.dims[2], L);
  if (x->shape.dims[1] % kp)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input dim 1 (%" PRId64 ") is not a multiple of the block size %" PRId64,
                     x->shape.dims[1], kp);
  drt_shape o = {.rank = (int)ci + 2};
  o.dims[0] = x->shape.dims[0], o.dims[1] = x->shape.dims[1] / kp;
  for (int64_t i = 0; i < ci; i++) o.dims[2 + i] = img[i];
  drt_infer_set(n, 0, x->dtype, &o);
  return DRT_OK;
}

static drt_status infer_affine_grid(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_FLOATS));
  const drt_value *th = n->inputs[0];
  int64_t sz[DRT_MAX_RANK], c;
  DRT_RETURN_IF_ERROR(const_ints(n, 1, "size", sz, &c));
  if (!(c == 4 || c == 5) || th->shape.rank != 3 || th->shape.dims[1] != c - 2 || th->shape.dims[2] != c - 1 ||
      th->shape.dims[0] != sz[0])
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "theta must be [N, 2, 3] with size [N, C, H, W] or [N, 3, 4] with size [N, C, D, H, W]");
  drt_shape o = {.rank = (int)c};
  o.dims[0] = sz[0];
  for (int64_t i = 2; i < c; i++) o.dims[i - 1] = sz[i];
  o.dims[c - 1] = c - 2;
  drt_infer_set(n, 0, th->dtype, &o);
  return DRT_OK;
}

static drt_status infer_window(drt_graph *g, drt_node *n) {
  (void)g;
  const drt_value *s = n->inputs[0];
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_BIT(DRT_DTYPE_INT32) | DRT_DT_BIT(DRT_DTYPE_INT64)));
  double sz;
  DRT_RETURN_IF_ERROR_CTX(drt_value_const_scalar(s, &sz), "size (input 0)");
  int64_t size = drt_load_i64(s->dtype, s->data, 0);
  if (size < 0) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "size is negative");
  int64_t dt = drt_node_attr_int(n, "output_datatype", DRT_DTYPE_FLOAT32);
  if (dt < 0 || dt > 64 || !drt_dtype_is_supported((drt_dtype)dt))
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "output_datatype %" PRId64 " is not supported", dt);
  drt_shape o = {.rank = 1, .dims = {size}};
  drt_infer_set(n, 0, (drt_dtype)dt, &o);
  return DRT_OK;
}

static drt_status infer_det(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_FLOATS));
  const drt_value *x = n->inputs[0];
  int r = x->shape.rank;
  if (r < 2 || x->shape.dims[r - 1] != x->shape.dims[r - 2])
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input must be [*, M, M]");
  drt_shape o = x->shape;
  o.rank -= 2;
  drt_infer_set(n, 0, x->dtype, &o);
  return DRT_OK;
}

/* Compress and NonZero: the output shape depends on values, so those must be compile-time
 * constants (drt run specializes small inputs; such nodes then fold). */
static drt_status infer_compress(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_ALL));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, DRT_DT_BIT(DRT_DTYPE_BOOL)));
  const drt_value *x = n->inputs[0], *c = n->inputs[1];
  if (c->kind != DRT_VALUE_CONST)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "condition (input 1) '%s' must be a compile-time constant", c->name);
  if (c->shape.rank != 1) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "condition must be 1-D");
  const drt_attr *ax = drt_node_attr(n, "axis");
  int axis = 0;
  int64_t len = drt_shape_numel(&x->shape);
  if (ax) {
    DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(ax->i, x->shape.rank, &axis), "attribute axis");
    len = x->shape.dims[axis];
  }
  int64_t cnt = 0, m = c->shape.dims[0] < len ? c->shape.dims[0] : len;
  for (int64_t i = 0; i < m; i++) cnt += ((const uint8_t *)c->data)[i] != 0;
  drt_shape o = ax ? x->shape : (drt_shape){.rank = 1};
  o.dims[ax ? axis : 0] = cnt;
  drt_infer_set(n, 0, x->dtype, &o);
  return DRT_OK;
}

static drt_status infer_non_zero(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_ALL));
  const drt_value *x = n->inputs[0];
  if (x->kind != DRT_VALUE_CONST)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input 0 '%s' must be a compile-time constant (the output shape depends on its values)", x->name);
  int64_t total = drt_shape_numel(&x->shape), nz = 0;
  for (int64_t i = 0; i < total; i++) nz += drt_load_f64(x->dtype, x->data, (size_t)i) != 0;
  drt_shape o = {.rank = 2, .dims = {x->shape.rank, nz}};
  drt_infer_set(n, 0, DRT_DTYPE_INT64, &o);
  return DRT_OK;
}

typedef struct uq_ctx {
  drt_dtype dt;
  const void *data;
  int64_t len, outer, inner;
} uq_ctx;

static int uq_cmp(const uq_ctx *c, int64_t a, int64_t b) {
  bool fl = drt_dtype_is_float(c->dt);
  for (int64_t o = 0; o < c->outer; o++)
    for (int64_t i = 0; i < c->inner; i++) {
      size_t ia = (size_t)((o * c->len + a) * c->inner + i), ib = (size_t)((o * c->len + b) * c->inner + i);
      if (fl) {
        double x = drt_load_f64(c->dt, c->data, ia), y = drt_load_f64(c->dt, c->data, ib);
        if (x != y) return x < y ? -1 : 1;
      } else {
        int64_t x = drt_load_i64(c->dt, c->data, ia), y = drt_load_i64(c->dt, c->data, ib);
        if (x != y) return x < y ? -1 : 1;
      }
    }
  return 0;
}

/* stable merge sort of item indices v[0..n) by content */
static void uq_sort(const uq_ctx *c, int64_t *v, int64_t *tmp, int64_t n) {
  if (n < 2) return;
  int64_t h = n / 2;
  uq_sort(c, v, tmp, h);
  uq_sort(c, v + h, tmp, n - h);
  int64_t i = 0, j = h, k = 0;
  while (i < h && j < n) tmp[k++] = uq_cmp(c, v[j], v[i]) < 0 ? v[j++] : v[i++];
  while (i < h) tmp[k++] = v[i++];
  while (j < n) tmp[k++] = v[j++];
  memcpy(v, tmp, (size_t)n * sizeof *v);
}

drt_status drt_unique_compute(drt_dtype dt, const drt_shape *s, const void *data, int axis, bool sorted,
                              int64_t *num_unique, int64_t *first, int64_t *inverse, int64_t *counts) {
  uq_ctx c = {dt, data, drt_shape_numel(s), 1, 1};
  if (axis >= 0) {
    c.len = s->dims[axis];
    for (int d = 0; d < axis; d++) c.outer *= s->dims[d];
    for (int d = axis + 1; d < s->rank; d++) c.inner *= s->dims[d];
  }
  int64_t n = c.len, *ord = malloc((size_t)(n + 1) * sizeof(int64_t)), *tmp = malloc((size_t)(n + 1) * sizeof(int64_t));
  int64_t *rank = malloc((size_t)(n + 1) * sizeof(int64_t));
  if (!ord || !tmp || !rank) {
    free(ord), free(tmp), free(rank);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "Unique");
  }
  for (int64_t i = 0; i < n; i++) ord[i] = i;
  uq_sort(&c, ord, tmp, n);
  int64_t u = 0;
  for (int64_t k = 0; k < n; k++) { /* groups in value order; the first of a group is its first occurrence */
    if (k == 0 || uq_cmp(&c, ord[k - 1], ord[k]) != 0) {
      first[u] = ord[k];
      counts[u] = 0;
      u++;
    }
    inverse[ord[k]] = u - 1;
    counts[u - 1]++;
  }
  if (!sorted) { /* renumber the groups by first occurrence: first[] values are distinct item indices */
    for (int64_t i = 0; i < n; i++) rank[i] = -1;
    for (int64_t g = 0; g < u; g++) rank[first[g]] = g;
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
      if (rank[i] >= 0) ord[m++] = rank[i]; /* group ids in order of first occurrence */
    for (int64_t g = 0; g < u; g++) rank[ord[g]] = g;
    for (int64_t g = 0; g < u; g++) tmp[g] = first[ord[g]];
    memcpy(first, tmp, (size_t)u * sizeof *tmp);
    for (int64_t g = 0; g < u; g++) tmp[g] = counts[ord[g]];
    memcpy(counts, tmp, (size_t)u * sizeof *tmp);
    for (int64_t i = 0; i < n; i++) inverse[i] = rank[inverse[i]];
  }
  *num_unique = u;
  free(ord), free(tmp), free(rank);
  return DRT_OK;
}

static drt_status infer_unique(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_NUMERIC));
  const drt_value *x = n->inputs[0];
  if (x->kind != DRT_VALUE_CONST)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input 0 '%s' must be a compile-time constant (the output shape depends on its values)", x->name);
  const drt_attr *ax = drt_node_attr(n, "axis");
  int axis = -1;
  if (ax) DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(ax->i, x->shape.rank, &axis), "attribute axis");
  int64_t len = axis >= 0 ? x->shape.dims[axis] : drt_shape_numel(&x->shape), u = 0;
  int64_t *buf = malloc((size_t)(3 * len + 1) * sizeof(int64_t));
  if (!buf) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "Unique");
  drt_status st = drt_unique_compute(x->dtype, &x->shape, x->data, axis, drt_node_attr_int(n, "sorted", 1) != 0, &u,
                                     buf, buf + len, buf + 2 * len);
  free(buf);
  DRT_RETURN_IF_ERROR(st);
  drt_shape y = axis >= 0 ? x->shape : (drt_shape){.rank = 1};
  y.dims[axis >= 0 ? axis : 0] = u;
  drt_shape vu = {.rank = 1, .dims = {u}}, vl = {.rank = 1, .dims = {len}};
  drt_infer_set(n, 0, x->dtype, &y);
  if (n->num_outputs > 1) drt_infer_set(n, 1, DRT_DTYPE_INT64, &vu);
  if (n->num_outputs > 2) drt_infer_set(n, 2, DRT_DTYPE_INT64, &vl);
  if (n->num_outputs > 3) drt_infer_set(n, 3, DRT_DTYPE_INT64, &vu);
  return DRT_OK;
}

drt_status drt_dft_resolve(const drt_node *n, const drt_shape *x, const drt_tensor *dl, const drt_tensor *ax,
                           drt_dft_geom *g) {
  memset(g, 0, sizeof *g);
  int r = x->rank;
  if (r < 2 || (x->dims[r - 1] != 1 && x->dims[r - 1] != 2))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input must end in a dim of 1 (real) or 2 (complex)");
  int64_t a = n->opset < 20 ? drt_node_attr_int(n, "axis", 1) : (ax && ax->data ? drt_load_i64(ax->dtype, ax->data, 0) : -2);
  if (a < -r || a > r - 2) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "axis %" PRId64 " is outside [-%d, %d]", a, r, r - 2);
  a = ((a % r) + r) % r;
  if (a == r - 1) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "axis is the complex dim");
  g->axis = (int)a;
  g->inverse = drt_node_attr_int(n, "inverse", 0) != 0;
  g->onesided = drt_node_attr_int(n, "onesided", 0) != 0;
  if (g->onesided && !g->inverse && x->dims[r - 1] == 2)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "onesided forward transforms take real input");
  int64_t L = x->dims[a];
  g->length = dl && dl->data ? drt_load_i64(dl->dtype, dl->data, 0) : (g->inverse && g->onesided ? 2 * (L - 1) : L);
  if (g->length < 1) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "dft_length %" PRId64 " is not positive", g->length);
  g->real_out = g->inverse && g->onesided;
  g->out_len = g->onesided && !g->inverse ? g->length / 2 + 1 : g->length;
  return DRT_OK;
}

static drt_status scalar_const(const drt_node *n, int i, const char *what, drt_tensor *t) {
  const drt_value *v = drt_node_input(n, i);
  memset(t, 0, sizeof *t);
  if (!v) return DRT_OK;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, i, DRT_DT_BIT(DRT_DTYPE_INT32) | DRT_DT_BIT(DRT_DTYPE_INT64)));
  double unused;
  DRT_RETURN_IF_ERROR_CTX(drt_value_const_scalar(v, &unused), "%s (input %d)", what, i);
  *t = drt_value_tensor(v);
  return DRT_OK;
}

static drt_status infer_dft(drt_graph *gr, drt_node *n) {
  (void)gr;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_FLOATS));
  drt_tensor dl, ax;
  DRT_RETURN_IF_ERROR(scalar_const(n, 1, "dft_length", &dl));
  DRT_RETURN_IF_ERROR(scalar_const(n, 2, "axis", &ax));
  drt_dft_geom g;
  const drt_value *x = n->inputs[0];
  DRT_RETURN_IF_ERROR(drt_dft_resolve(n, &x->shape, &dl, &ax, &g));
  drt_shape o = x->shape;
  o.dims[g.axis] = g.out_len;
  o.dims[o.rank - 1] = g.real_out ? 1 : 2;
  drt_infer_set(n, 0, x->dtype, &o);
  return DRT_OK;
}

static drt_status infer_stft(drt_graph *gr, drt_node *n) {
  (void)gr;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_FLOATS));
  const drt_value *x = n->inputs[0], *w = drt_node_input(n, 2);
  drt_tensor st, fl;
  DRT_RETURN_IF_ERROR(scalar_const(n, 1, "frame_step", &st));
  DRT_RETURN_IF_ERROR(scalar_const(n, 3, "frame_length", &fl));
  if (x->shape.rank != 3 || (x->shape.dims[2] != 1 && x->shape.dims[2] != 2))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "signal must be [batch, length, 1|2]");
  int64_t L = x->shape.dims[1], step = drt_load_i64(st.dtype, st.data, 0);
  int64_t len = fl.data ? drt_load_i64(fl.dtype, fl.data, 0) : w ? w->shape.dims[0] : L;
  if (w && (w->shape.rank != 1 || w->shape.dims[0] != len))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "window must be [frame_length] = [%" PRId64 "]", len);
  if (step < 1 || len < 1 || len > L)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "frame_step %" PRId64 " / frame_length %" PRId64 " do not fit a signal of %" PRId64,
                     step, len, L);
  bool onesided = drt_node_attr_int(n, "onesided", 1) != 0;
  drt_shape o = {.rank = 4, .dims = {x->shape.dims[0], (L - len) / step + 1, onesided ? len / 2 + 1 : len, 2}};
  drt_infer_set(n, 0, x->dtype, &o);
  return DRT_OK;
}

/* TensorScatter (opset 24): past_cache [B, ..., max_seq, ...], update with the sequence dim
 * (attribute axis, default -2, never 0) of length <= max_seq, write_indices [B] int64. */
static drt_status infer_tensor_scatter(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_ANY));
  const drt_value *c = n->inputs[0], *u = n->inputs[1], *wi = drt_node_input(n, 2);
  if (u->dtype != c->dtype) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "update and past_cache dtypes differ");
  int axis;
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_node_attr_int(n, "axis", -2), c->shape.rank, &axis), "attribute axis");
  bool ok = axis > 0 && u->shape.rank == c->shape.rank;
  for (int d = 0; ok && d < c->shape.rank; d++)
    ok = d == axis ? u->shape.dims[d] <= c->shape.dims[d] : u->shape.dims[d] == c->shape.dims[d];
  if (!ok) {
    char a[128], b[128];
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "update %s does not fit past_cache %s along axis %d",
                     drt_shape_str(&u->shape, a, sizeof a), drt_shape_str(&c->shape, b, sizeof b), axis);
  }
  if (wi) {
    DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 2, DRT_DT_BIT(DRT_DTYPE_INT64)));
    if (wi->shape.rank != 1 || wi->shape.dims[0] != c->shape.dims[0])
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "write_indices must be [%" PRId64 "]", c->shape.dims[0]);
  }
  const char *mode = drt_node_attr_string(n, "mode", "linear");
  if (strcmp(mode, "linear") && strcmp(mode, "circular"))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "mode '%s' is not linear or circular", mode);
  drt_infer_set(n, 0, c->dtype, &c->shape);
  return DRT_OK;
}

typedef struct nms_cand {
  double score;
  int64_t idx;
} nms_cand;

static int nms_cmp(const void *pa, const void *pb) {
  const nms_cand *a = pa, *b = pb;
  if (a->score != b->score) return a->score > b->score ? -1 : 1;
  return (a->idx > b->idx) - (a->idx < b->idx);
}

/* box corners (x0, x1, y0, y1), as the reference orders them */
static void nms_box(const drt_tensor *t, int64_t at, bool center, double c[4]) {
  double v[4];
  for (int k = 0; k < 4; k++) v[k] = drt_load_f64(t->dtype, t->data, (size_t)(at + k));
  if (center) {
    c[0] = v[0] - v[2] / 2, c[1] = v[0] + v[2] / 2, c[2] = v[1] - v[3] / 2, c[3] = v[1] + v[3] / 2;
  } else {
    c[0] = v[1] < v[3] ? v[1] : v[3], c[1] = v[1] < v[3] ? v[3] : v[1];
    c[2] = v[0] < v[2] ? v[0] : v[2], c[3] = v[0] < v[2] ? v[2] : v[0];
  }
}

static bool nms_suppress(const double a[4], const double b[4], double thr) {
  double ix0 = a[0] > b[0] ? a[0] : b[0], ix1 = a[1] < b[1] ? a[1] : b[1];
  double iy0 = a[2] > b[2] ? a[2] : b[2], iy1 = a[3] < b[3] ? a[3] : b[3];
  if (ix1 <= ix0 || iy1 <= iy0) return false;
  double inter = (ix1 - ix0) * (iy1 - iy0), a1 = (a[1] - a[0]) * (a[3] - a[2]), a2 = (b[1] - b[0]) * (b[3] - b[2]);
  double uni = a1 + a2 - inter;
  if (inter <= 0 || a1 <= 0 || a2 <= 0 || uni <= 0) return false;
  return inter / uni > thr;
}

drt_status drt_nms_compute(const drt_tensor *boxes, const drt_tensor *scores, const drt_tensor *max_out,
                           const drt_tensor *iou, const drt_tensor *score_thr, bool center, int64_t **out,
                           int64_t *count) {
  *out = NULL;
  *count = 0;
  int64_t B = boxes->shape.dims[0], N = boxes->shape.dims[1], C = scores->shape.dims[1];
  int64_t maxo = max_out && max_out->data && drt_shape_numel(&max_out->shape) ? drt_load_i64(max_out->dtype, max_out->data, 0) : 0;
  double it = iou && iou->data && drt_shape_numel(&iou->shape) ? drt_load_f64(iou->dtype, iou->data, 0) : 0;
  bool has_st = score_thr && score_thr->data && drt_shape_numel(&score_thr->shape);
  double st = has_st ? drt_load_f64(score_thr->dtype, score_thr->data, 0) : 0;
  if (maxo < 0) maxo = 0;
  int64_t cap = B * C * (maxo < N ? maxo : N);
  int64_t *res = malloc((size_t)(3 * cap + 3) * sizeof(int64_t));
  nms_cand *cand = malloc((size_t)(N + 1) * sizeof *cand);
  int64_t *kept = malloc((size_t)(N + 1) * sizeof(int64_t));
  if (!res || !cand || !kept) {
    free(res), free(cand), free(kept);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "NonMaxSuppression");
  }
  int64_t k = 0;
  for (int64_t b = 0; b < B; b++)
    for (int64_t c = 0; c < C; c++) {
      int64_t nc = 0, nk = 0;
      for (int64_t i = 0; i < N; i++) {
        double sc = drt_load_f64(scores->dtype, scores->data, (size_t)((b * C + c) * N + i));
        if (!has_st || sc > st) cand[nc++] = (nms_cand){sc, i};
      }
      qsort(cand, (size_t)nc, sizeof *cand, nms_cmp);
      for (int64_t q = 0; q < nc && nk < maxo; q++) {
        double bq[4], bk[4];
        nms_box(boxes, (b * N + cand[q].idx) * 4, center, bq);
        bool keep = true;
        for (int64_t s = 0; s < nk && keep; s++) {
          nms_box(boxes, (b * N + kept[s]) * 4, center, bk);
          keep = !nms_suppress(bq, bk, it);
        }
        if (!keep) continue;
        kept[nk++] = cand[q].idx;
        res[3 * k] = b, res[3 * k + 1] = c, res[3 * k + 2] = cand[q].idx;
        k++;
      }
    }
  free(cand), free(kept);
  *out = res;
  *count = k;
  return DRT_OK;
}

static drt_status infer_nms(drt_graph *g, drt_node *n) {
  (void)g;
  const drt_value *bx = n->inputs[0], *sc = n->inputs[1];
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_FLOATS));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, DRT_DT_FLOATS));
  if (bx->shape.rank != 3 || bx->shape.dims[2] != 4 || sc->shape.rank != 3 || sc->shape.dims[0] != bx->shape.dims[0] ||
      sc->shape.dims[2] != bx->shape.dims[1])
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "boxes must be [B, N, 4] and scores [B, C, N]");
  drt_tensor t[5];
  for (int i = 0; i < 5; i++) {
    const drt_value *v = drt_node_input(n, i);
    memset(&t[i], 0, sizeof t[i]);
    if (!v) continue;
    if (v->kind != DRT_VALUE_CONST)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input %d '%s' must be a compile-time constant (the output shape depends on it)", i, v->name);
    t[i].dtype = v->dtype, t[i].shape = v->shape, t[i].data = v->data;
  }
  int64_t *sel = NULL, cnt = 0;
  DRT_RETURN_IF_ERROR(drt_nms_compute(&t[0], &t[1], &t[2], &t[3], &t[4], drt_node_attr_int(n, "center_point_box", 0) != 0,
                                      &sel, &cnt));
  free(sel);
  drt_shape o = {.rank = 2, .dims = {cnt, 3}};
  drt_infer_set(n, 0, DRT_DTYPE_INT64, &o);
  return DRT_OK;
}

/* MaxUnpool: X [N, C, d...] and indices of X's shape into the unpooled shape
 * ((d - 1) * stride - pads + kernel per spatial dim); output_shape (input 2, constant) may be larger. */
static drt_status infer_max_unpool(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_FLOATS));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, DRT_DT_BIT(DRT_DTYPE_INT64)));
  const drt_value *x = n->inputs[0], *ix = n->inputs[1];
  int r = x->shape.rank, nsp = r - 2;
  int64_t nk, ns, np;
  const int64_t *k = drt_node_attr_ints(n, "kernel_shape", &nk), *st = drt_node_attr_ints(n, "strides", &ns),
                *pd = drt_node_attr_ints(n, "pads", &np);
  if (nsp < 1 || !k || nk != nsp || (st && ns != nsp) || (pd && np != 2 * nsp) || !drt_shape_equal(&ix->shape, &x->shape))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "needs X [N, C, d...], indices of X's shape and kernel_shape/strides/pads per spatial dim");
  drt_shape o = x->shape;
  for (int i = 0; i < nsp; i++) {
    int64_t s = st ? st[i] : 1, p = pd ? pd[i] + pd[nsp + i] : 0;
    if (s < 1 || k[i] < 1 || s > (1 << 30) || k[i] > (1 << 30) || p < 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "bad kernel_shape/strides/pads");
    o.dims[2 + i] = (x->shape.dims[2 + i] - 1) * s - p + k[i];
    if (o.dims[2 + i] < 1) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "the unpooled shape is empty");
  }
  const drt_value *os = drt_node_input(n, 2);
  if (os) {
    int64_t v[DRT_MAX_RANK], c;
    DRT_RETURN_IF_ERROR(const_ints(n, 2, "output_shape", v, &c));
    if (c != r) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "output_shape must have %d values", r);
    for (int i = 0; i < r; i++) {
      if (v[i] < o.dims[i] || (i < 2 && v[i] != o.dims[i]))
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "output_shape[%d] = %" PRId64 " is smaller than the unpooled %" PRId64, i,
                         v[i], o.dims[i]);
      o.dims[i] = v[i];
    }
  }
  drt_infer_set(n, 0, x->dtype, &o);
  return DRT_OK;
}

/* MelWeightMatrix: [dft_length / 2 + 1, num_mel_bins] from constant scalar inputs. */
static drt_status infer_mel(drt_graph *g, drt_node *n) {
  (void)g;
  for (int i = 0; i < 5; i++)
    if (n->inputs[i]->kind != DRT_VALUE_CONST || drt_shape_numel(&n->inputs[i]->shape) != 1)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input %d '%s' must be a compile-time constant scalar", i, n->inputs[i]->name);
  int64_t bins = drt_load_i64(n->inputs[0]->dtype, n->inputs[0]->data, 0), dl = drt_load_i64(n->inputs[1]->dtype, n->inputs[1]->data, 0);
  int64_t sr = drt_load_i64(n->inputs[2]->dtype, n->inputs[2]->data, 0);
  if (bins < 1 || dl < 1 || sr < 1 || bins > (1 << 20) || dl > (1 << 24))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "num_mel_bins, dft_length and sample_rate must be positive");
  int64_t dt = drt_node_attr_int(n, "output_datatype", DRT_DTYPE_FLOAT32);
  if (dt < 0 || dt > 64 || !drt_dtype_is_supported((drt_dtype)dt))
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "output_datatype %" PRId64 " is not supported", dt);
  drt_shape o = {.rank = 2, .dims = {dl / 2 + 1, bins}};
  drt_infer_set(n, 0, (drt_dtype)dt, &o);
  return DRT_OK;
}

const drt_infer_entry drt_infer_table_index[] = {
    {DRT_OP_GATHER, infer_gather},
    {DRT_OP_GATHER_ELEMENTS, infer_gather_elements},
    {DRT_OP_GATHER_ND, infer_gather_nd},
    {DRT_OP_SCATTER_ND, infer_scatter_nd},
    {DRT_OP_SCATTER_ELEMENTS, infer_scatter_elements},
    {DRT_OP_SCATTER, infer_scatter_elements}, /* opsets 9-10: ScatterElements without reduction */
    {DRT_OP_TENSOR_SCATTER, infer_tensor_scatter},
    {DRT_OP_PAD, infer_pad},
    {DRT_OP_RESIZE, infer_resize},
    {DRT_OP_UPSAMPLE, infer_upsample},
    {DRT_OP_ONE_HOT, infer_one_hot},
    {DRT_OP_EYE_LIKE, infer_eye_like},
    {DRT_OP_GRID_SAMPLE, infer_grid_sample},
    {DRT_OP_ROI_ALIGN, infer_roi_align},
    {DRT_OP_DEFORM_CONV, infer_deform_conv},
    {DRT_OP_TFIDF_VECTORIZER, infer_tfidf_vectorizer},
    {DRT_OP_CENTER_CROP_PAD, infer_center_crop_pad},
    {DRT_OP_REVERSE_SEQUENCE, infer_reverse_sequence},
    {DRT_OP_COL2IM, infer_col2im},
    {DRT_OP_AFFINE_GRID, infer_affine_grid},
    {DRT_OP_HANN_WINDOW, infer_window},
    {DRT_OP_HAMMING_WINDOW, infer_window},
    {DRT_OP_BLACKMAN_WINDOW, infer_window},
    {DRT_OP_DET, infer_det},
    {DRT_OP_COMPRESS, infer_compress},
    {DRT_OP_NON_ZERO, infer_non_zero},
    {DRT_OP_UNIQUE, infer_unique},
    {DRT_OP_NON_MAX_SUPPRESSION, infer_nms},
    {DRT_OP_MAX_UNPOOL, infer_max_unpool},
    {DRT_OP_MEL_WEIGHT_MATRIX, infer_mel},
    {DRT_OP_DFT, infer_dft},
    {DRT_OP_STFT, infer_stft},
    {DRT_OP_COUNT_, NULL},
};
