#include "ir/infer.h"

#include <inttypes.h>
#include <stdio.h>

static const drt_infer_entry *const k_tables[] = {
    drt_infer_table_elementwise,
    drt_infer_table_linalg,
    drt_infer_table_reduce,
    drt_infer_table_movement,
    drt_infer_table_index,
    drt_infer_table_fused,
};

drt_infer_fn drt_infer_find(drt_op op) {
  for (size_t t = 0; t < sizeof(k_tables) / sizeof(k_tables[0]); t++)
    for (const drt_infer_entry *e = k_tables[t]; e->op != DRT_OP_COUNT_; e++)
      if (e->op == op) return e->fn;
  return NULL;
}

drt_status drt_infer_check_arity(const drt_node *n) {
  char d[256];
  const drt_op_info *info = drt_op_get_info(n->op);
  if (!info) return DRT_ERROR(DRT_STATUS_INTERNAL, "node '%s' has an invalid op", n->name);
  int present = n->num_inputs;
  while (present > 0 && !n->inputs[present - 1]) present--;
  if (present < info->min_inputs || (info->max_inputs >= 0 && n->num_inputs > info->max_inputs))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: has %d inputs, expected %d..%d",
                     drt_node_describe(n, d, sizeof d), n->num_inputs, info->min_inputs, info->max_inputs);
  if (n->num_outputs < info->min_outputs || (info->max_outputs >= 0 && n->num_outputs > info->max_outputs))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: has %d outputs, expected %d..%d",
                     drt_node_describe(n, d, sizeof d), n->num_outputs, info->min_outputs, info->max_outputs);
  /* the first min_inputs are required: an omitted one ("" in ONNX) is an error, not NULL (Loop's
     M and cond and opset-8 Scan's sequence_lens are optional but counted by position; their
     lowering checks the rest) */
  bool positional = n->op == DRT_OP_LOOP || n->op == DRT_OP_SCAN;
  for (int i = 0; i < info->min_inputs && i < n->num_inputs && !positional; i++)
    if (!n->inputs[i])
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: required input %d is omitted",
                       drt_node_describe(n, d, sizeof d), i);
  return DRT_OK;
}

drt_status drt_infer_node(drt_graph *g, drt_node *n) {
  char d[256];
  DRT_RETURN_IF_ERROR(drt_infer_check_arity(n));
  for (int i = 0; i < n->num_inputs; i++) {
    drt_value *v = n->inputs[i];
    if (!v) continue;
    if (!v->has_shape || v->dtype == DRT_DTYPE_UNDEFINED)
      return DRT_ERROR(DRT_STATUS_INTERNAL, "%s: input %d '%s' has no inferred type",
                       drt_node_describe(n, d, sizeof d), i, v->name);
    if (!drt_dtype_is_supported(v->dtype))
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: input %d '%s' has unsupported dtype %s",
                       drt_node_describe(n, d, sizeof d), i, v->name, drt_dtype_name(v->dtype));
    if (drt_dtype_is_lowp(v->dtype) && !drt_op_takes_lowp(n->op))
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: input %d '%s' has dtype %s, which %s does not take "
                       "(only Cast, CastLike, QuantizeLinear, DequantizeLinear and data movement do)",
                       drt_node_describe(n, d, sizeof d), i, v->name, drt_dtype_name(v->dtype), drt_op_name(n->op));
  }
  drt_infer_fn fn = drt_infer_find(n->op);
  if (!fn)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: shape inference is not implemented for this op",
                     drt_node_describe(n, d, sizeof d));
  DRT_RETURN_IF_ERROR_CTX(fn(g, n), "%s", drt_node_describe(n, d, sizeof d));
  for (int i = 0; i < n->num_outputs; i++) {
    drt_value *v = n->outputs[i];
    if (!v->has_shape || v->dtype == DRT_DTYPE_UNDEFINED)
      return DRT_ERROR(DRT_STATUS_INTERNAL, "%s: inference left output %d '%s' untyped",
                       drt_node_describe(n, d, sizeof d), i, v->name);
    if (drt_dtype_is_lowp(v->dtype) && !drt_op_takes_lowp(n->op))
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: output %d '%s' would have dtype %s, which %s does not produce",
                       drt_node_describe(n, d, sizeof d), i, v->name, drt_dtype_name(v->dtype), drt_op_name(n->op));
    int64_t numel = drt_shape_numel(&v->shape);
    drt_tensor t = {v->dtype, v->shape, NULL};
    if (numel < 0 || (numel > 0 && drt_tensor_nbytes(&t) == 0))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: output '%s' has an invalid or overflowing shape",
                       drt_node_describe(n, d, sizeof d), v->name);
  }
  return DRT_OK;
}

void drt_infer_set(drt_node *n, int i, drt_dtype dt, const drt_shape *s) {
  if (i < 0 || i >= n->num_outputs || !n->outputs[i]) return; /* an optional output the node does not have */
  drt_value *v = n->outputs[i];
  v->dtype = dt;
  v->shape = *s;
  v->has_shape = true;
}

drt_status drt_broadcast_shapes(const drt_shape *a, const drt_shape *b, drt_shape *out) {
  int r = a->rank > b->rank ? a->rank : b->rank;
  drt_shape o;
  o.rank = r;
  for (int i = 0; i < r; i++) {
    int ia = i - (r - a->rank), ib = i - (r - b->rank);
    int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
    if (da == db || db == 1) {
      o.dims[i] = da;
    } else if (da == 1) {
      o.dims[i] = db;
    } else {
      char sa[128], sb[128];
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "shapes %s and %s cannot be broadcast (axis %d: %" PRId64
                       " vs %" PRId64 ")", drt_shape_str(a, sa, sizeof sa), drt_shape_str(b, sb, sizeof sb), i, da, db);
    }
  }
  *out = o;
  return DRT_OK;
}

drt_status drt_normalize_axis(int64_t axis, int rank, int *out) {
  if (axis < -(int64_t)rank || axis >= (int64_t)rank)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "axis %" PRId64 " is out of range for rank %d", axis, rank);
  *out = (int)(axis < 0 ? axis + rank : axis);
  return DRT_OK;
}

drt_status drt_infer_check_dtype(const drt_node *n, int i, uint32_t mask) {
  drt_value *v = drt_node_input(n, i);
  if (!v) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "required input %d is missing", i);
  if (!(mask & DRT_DT_BIT(v->dtype)))
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input %d '%s' has dtype %s, which this op does not support", i,
                     v->name, drt_dtype_name(v->dtype));
  return DRT_OK;
}
