/* Shape/dtype inference for the elementwise op family: unary pointwise ops, binary and
 * variadic ops with numpy (multidirectional) broadcasting, Cast/CastLike, Clip, Dropout,
 * Where and PRelu (unidirectional broadcasting of the slope).
 *
 * Dtype sets follow the latest ONNX schema of each op (older opsets allow subsets), except
 * that comparisons accept bool operands and Sum accepts integers: both are cheap and
 * unambiguous. Output dtypes follow ONNX exactly: comparisons, IsNaN, IsInf, Not and the
 * logical ops produce bool; Pow produces the base's dtype; Cast produces `to`. */
#include <inttypes.h>
#include <string.h>

#include "ir/infer.h"

#define DT(x) DRT_DT_BIT(DRT_DTYPE_##x)
#define MASK_BOOL DT(BOOL)

/* Dtypes accepted by the first (data) input of each op in this family. */
static uint32_t data_mask(drt_op op) {
  switch (op) {
    case DRT_OP_ABS:
    case DRT_OP_SIGN:
    case DRT_OP_CLIP:
    case DRT_OP_ADD:
    case DRT_OP_SUB:
    case DRT_OP_MUL:
    case DRT_OP_DIV:
    case DRT_OP_MOD:
    case DRT_OP_PRELU:
    case DRT_OP_MAX:
    case DRT_OP_MIN:
    case DRT_OP_SUM: return DRT_DT_NUMERIC;
    case DRT_OP_NEG:
    case DRT_OP_RELU: return DRT_DT_FLOATS | DRT_DT_SINTS;
    case DRT_OP_POW: return DRT_DT_FLOATS | DT(INT32) | DT(INT64);
    case DRT_OP_BITWISE_AND:
    case DRT_OP_BITWISE_OR:
    case DRT_OP_BITWISE_XOR:
    case DRT_OP_BITWISE_NOT: return DRT_DT_INTS;
    case DRT_OP_BIT_SHIFT: return DRT_DT_INTS; /* signed types since opset 28 (checked below) */
    case DRT_OP_NOT:
    case DRT_OP_AND:
    case DRT_OP_OR:
    case DRT_OP_XOR: return MASK_BOOL;
    case DRT_OP_EQUAL:
    case DRT_OP_LESS:
    case DRT_OP_LESS_OR_EQUAL:
    case DRT_OP_GREATER:
    case DRT_OP_GREATER_OR_EQUAL:
    case DRT_OP_IDENTITY:
    case DRT_OP_CAST:
    case DRT_OP_CAST_LIKE: return DRT_DT_ANY;
    case DRT_OP_ISNAN:
    case DRT_OP_ISINF: return DRT_DT_FLOATS | DRT_DT_FLOAT8;
    default: return DRT_DT_FLOATS; /* float-only unary ops, Dropout, Mean */
  }
}

static bool is_bool_output(drt_op op) {
  switch (op) {
    case DRT_OP_EQUAL:
    case DRT_OP_LESS:
    case DRT_OP_LESS_OR_EQUAL:
    case DRT_OP_GREATER:
    case DRT_OP_GREATER_OR_EQUAL:
    case DRT_OP_AND:
    case DRT_OP_OR:
    case DRT_OP_XOR:
    case DRT_OP_NOT:
    case DRT_OP_ISNAN:
    case DRT_OP_ISINF: return true;
    default: return false;
  }
}

/* Input i must have the same dtype as input ref. */
static drt_status check_same_dtype(const drt_node *n, int i, int ref) {
  const drt_value *a = n->inputs[ref], *b = n->inputs[i];
  if (a->dtype != b->dtype)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input %d '%s' has dtype %s but input %d '%s' has dtype %s; they must match",
                     i, b->name, drt_dtype_name(b->dtype), ref, a->name, drt_dtype_name(a->dtype));
  return DRT_OK;
}

/* Broadcasts the shapes of all present inputs in [first, num_inputs). */
static drt_status broadcast_inputs(const drt_node *n, int first, drt_shape *out) {
  *out = n->inputs[first]->shape;
  for (int i = first + 1; i < n->num_inputs; i++) {
    const drt_value *v = n->inputs[i];
    if (!v) continue;
    DRT_RETURN_IF_ERROR_CTX(drt_broadcast_shapes(out, &v->shape, out), "input %d '%s'", i, v->name);
  }
  return DRT_OK;
}

/* Abs, Neg, Exp, ..., Not, IsNaN, IsInf, Identity: one input, same shape. */
static drt_status infer_unary(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, data_mask(n->op)));
  const drt_value *x = n->inputs[0];
  if (n->op == DRT_OP_GELU) {
    const char *approx = drt_node_attr_string(n, "approximate", "none");
    if (strcmp(approx, "none") != 0 && strcmp(approx, "tanh") != 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'approximate' is '%s', expected 'none' or 'tanh'",
                       approx);
  }
  if (n->op == DRT_OP_CELU && drt_node_attr_float(n, "alpha", 1.0f) == 0.0f)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'alpha' must be non-zero (Celu divides by it)");
  drt_infer_set(n, 0, is_bool_output(n->op) ? DRT_DTYPE_BOOL : x->dtype, &x->shape);
  return DRT_OK;
}

/* Binary and variadic ops whose inputs all share one dtype, with numpy broadcasting. */
static drt_status infer_broadcast(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, data_mask(n->op)));
  for (int i = 1; i < n->num_inputs; i++) {
    if (!n->inputs[i]) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input %d is missing", i);
    DRT_RETURN_IF_ERROR(check_same_dtype(n, i, 0));
  }
  if (n->op == DRT_OP_BIT_SHIFT) {
    if (n->opset < 28 && drt_dtype_is_signed_int(n->inputs[0]->dtype))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "BitShift takes signed %s only from opset 28 (this node: opset %d)",
                       drt_dtype_name(n->inputs[0]->dtype), n->opset);
    const char *dir = drt_node_attr_string(n, "direction", "");
    if (strcmp(dir, "LEFT") != 0 && strcmp(dir, "RIGHT") != 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'direction' is '%s', expected LEFT or RIGHT", dir);
  }
  if (n->op == DRT_OP_MOD) {
    int64_t fmod_attr = drt_node_attr_int(n, "fmod", 0);
    if (fmod_attr != 0 && fmod_attr != 1)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'fmod' is %" PRId64 ", expected 0 or 1", fmod_attr);
  }
  drt_shape s;
  DRT_RETURN_IF_ERROR(broadcast_inputs(n, 0, &s));
  drt_infer_set(n, 0, is_bool_output(n->op) ? DRT_DTYPE_BOOL : n->inputs[0]->dtype, &s);
  return DRT_OK;
}

/* Pow(X: T, Y: T1) -> T. The exponent may have any numeric dtype. */
static drt_status infer_pow(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, data_mask(n->op)));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, DRT_DT_NUMERIC));
  drt_shape s;
  DRT_RETURN_IF_ERROR(broadcast_inputs(n, 0, &s));
  drt_infer_set(n, 0, n->inputs[0]->dtype, &s);
  return DRT_OK;
}

/* PRelu: the slope broadcasts unidirectionally to X; the output has X's shape. Before
 * opset 7 a 1-D slope with one value per channel applies along axis 1 (as if shaped
 * [C, 1, ..., 1]); runtime/cpu/elementwise.c applies the same rule. */
static drt_status infer_prelu(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, data_mask(n->op)));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, DRT_DT_NUMERIC));
  DRT_RETURN_IF_ERROR(check_same_dtype(n, 1, 0));
  const drt_value *x = n->inputs[0], *slope = n->inputs[1];
  drt_shape ss = slope->shape, s;
  if (n->opset < 7 && ss.rank == 1 && x->shape.rank >= 2 && ss.dims[0] == x->shape.dims[1]) {
    ss.rank = x->shape.rank - 1;
    for (int i = 1; i < ss.rank; i++) ss.dims[i] = 1;
  }
  DRT_RETURN_IF_ERROR_CTX(drt_broadcast_shapes(&x->shape, &ss, &s), "input 1 '%s' (slope)", slope->name);
  if (!drt_shape_equal(&s, &x->shape)) {
    char a[128], b[128];
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "slope '%s' of shape %s does not broadcast unidirectionally to input shape %s",
                     slope->name, drt_shape_str(&slope->shape, a, sizeof a), drt_shape_str(&x->shape, b, sizeof b));
  }
  drt_infer_set(n, 0, x->dtype, &x->shape);
  return DRT_OK;
}

/* Clip(X, min?, max?): min/max are optional one-element inputs (opset >= 11) or float
 * attributes (opset < 11, float types only). */
static drt_status infer_clip(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, n->opset < 11 ? DRT_DT_FLOATS : DRT_DT_NUMERIC));
  const drt_value *x = n->inputs[0];
  for (int i = 1; i < n->num_inputs; i++) {
    const drt_value *v = n->inputs[i];
    if (!v) continue;
    DRT_RETURN_IF_ERROR(check_same_dtype(n, i, 0));
    if (drt_shape_numel(&v->shape) != 1) {
      char b[128];
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input %d '%s' (%s) must be a scalar, got shape %s", i, v->name,
                       i == 1 ? "min" : "max", drt_shape_str(&v->shape, b, sizeof b));
    }
  }
  drt_infer_set(n, 0, x->dtype, &x->shape);
  return DRT_OK;
}

/* Cast/CastLike's round_mode (float8e8m0 targets, opset 24). */
static drt_status check_round_mode(const drt_node *n) {
  const char *rm = drt_node_attr_string(n, "round_mode", "up");
  if (strcmp(rm, "up") && strcmp(rm, "down") && strcmp(rm, "nearest"))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute round_mode is '%s', expected up, down or nearest", rm);
  return DRT_OK;
}

static drt_status infer_cast(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_ANY));
  DRT_RETURN_IF_ERROR(check_round_mode(n));
  const drt_attr *to = drt_node_attr(n, "to");
  if (!to || to->type != DRT_ATTR_INT)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "integer attribute 'to' is required");
  drt_dtype dt = (drt_dtype)to->i;
  if (to->i < 0 || to->i > 64 || !drt_dtype_is_supported(dt))
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "attribute 'to' = %" PRId64 " (%s) is not a supported dtype", to->i,
                     to->i >= 0 && to->i <= 64 ? drt_dtype_name(dt) : "unknown");
  drt_infer_set(n, 0, dt, &n->inputs[0]->shape);
  return DRT_OK;
}

/* QuantizeLinear / DequantizeLinear: the scale (and zero point, same shape and the quantized
 * dtype) is a scalar (per tensor), 1-D along axis (per axis) or x's shape with dims[axis]
 * divided into blocks of block_size (blocked); drt_quant_layout gives which. */
drt_status drt_quant_layout(const drt_node *n, const drt_shape *x, const drt_shape *scale, drt_quant_geom *q) {
  char a[128], b[128];
  memset(q, 0, sizeof *q);
  int64_t bs = drt_node_attr_int(n, "block_size", 0);
  int64_t numel = drt_shape_numel(scale);
  if (bs == 0 && (scale->rank == 0 || (scale->rank == 1 && numel == 1))) return DRT_OK; /* per tensor */
  if (x->rank == 0) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "a scalar input takes a scalar scale");
  int axis;
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_node_attr_int(n, "axis", 1), x->rank, &axis), "attribute axis");
  q->axis = axis;
  q->outer = 1, q->inner = 1, q->len = x->dims[axis];
  for (int d = 0; d < axis; d++) q->outer *= x->dims[d];
  for (int d = axis + 1; d < x->rank; d++) q->inner *= x->dims[d];
  if (bs == 0) {
    if (scale->rank != 1 || scale->dims[0] != x->dims[axis])
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "per-axis scale must be [%" PRId64 "] (axis %d of %s), got %s",
                       x->dims[axis], axis, drt_shape_str(x, a, sizeof a), drt_shape_str(scale, b, sizeof b));
    q->mode = DRT_QUANT_AXIS;
    q->block = 1;
    q->slen = x->dims[axis];
    return DRT_OK;
  }
  if (bs < 0) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "block_size is %" PRId64 ", must be positive", bs);
  bool ok = scale->rank == x->rank;
  for (int d = 0; ok && d < x->rank; d++)
    ok = d == axis ? scale->dims[d] == (x->dims[d] + bs - 1) / bs : scale->dims[d] == x->dims[d];
  if (!ok)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "blocked scale for input %s, axis %d, block_size %" PRId64 " must have dim %d = %" PRId64 " and the input's other dims, got %s",
                     drt_shape_str(x, a, sizeof a), axis, bs, axis, (x->dims[axis] + bs - 1) / bs,
                     drt_shape_str(scale, b, sizeof b));
  q->mode = DRT_QUANT_BLOCKED;
  q->block = bs;
  q->slen = scale->dims[axis];
  return DRT_OK;
}

#define QUANT_INT_TYPES (DT(INT8) | DT(UINT8) | DT(INT16) | DT(UINT16))
/* QuantizeLinear's y and DequantizeLinear's x (opset 28): 8/16-bit integers, int4/uint4/int2/
 * uint2, float8, float4 and float6 (float8e8m0 is a scale type only). */
#define QUANT_TYPES (QUANT_INT_TYPES | DRT_DT_LOWP_INTS | (DRT_DT_LOWP_FLOATS & ~DT(FLOAT8E8M0)))

static drt_status infer_quantize(drt_graph *g, drt_node *n) {
  (void)g;
  bool dq = n->op == DRT_OP_DEQUANTIZE_LINEAR;
  const drt_value *x = n->inputs[0], *scale = n->inputs[1], *zp = drt_node_input(n, 2);
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, dq ? QUANT_TYPES | DT(INT32) : DRT_DT_FLOATS | DT(INT32)));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, DRT_DT_FLOATS | DT(FLOAT8E8M0) | (dq ? 0 : DT(INT32))));
  drt_quant_geom q;
  DRT_RETURN_IF_ERROR(drt_quant_layout(n, &x->shape, &scale->shape, &q));
  drt_dtype qt = zp ? zp->dtype : DRT_DTYPE_UINT8;
  if (zp) {
    DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 2, QUANT_TYPES | (dq ? DT(INT32) : 0)));
    if (!drt_shape_equal(&zp->shape, &scale->shape) &&
        !(drt_shape_numel(&zp->shape) == 1 && drt_shape_numel(&scale->shape) == 1))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "zero point (input 2) and scale (input 1) must have one shape");
    if (dq && zp->dtype != x->dtype)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "zero point has dtype %s, x has %s; they must match",
                       drt_dtype_name(zp->dtype), drt_dtype_name(x->dtype));
  }
  const drt_attr *od = drt_node_attr(n, "output_dtype");
  drt_dtype out_dt = dq ? scale->dtype : qt;
  if (od && od->type == DRT_ATTR_INT && od->i != 0) {
    if (od->i < 0 || od->i > 64 || !(DRT_DT_BIT((drt_dtype)od->i) & (dq ? DRT_DT_FLOATS : QUANT_TYPES)))
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "attribute output_dtype = %" PRId64 " is not supported", od->i);
    if (!dq && zp && (drt_dtype)od->i != zp->dtype)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "output_dtype %s differs from the zero point's dtype %s",
                       drt_dtype_name((drt_dtype)od->i), drt_dtype_name(zp->dtype));
    out_dt = (drt_dtype)od->i;
  }
  if (dq && !(DRT_DT_BIT(out_dt) & DRT_DT_FLOATS))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "the scale has dtype %s: attribute output_dtype must give the "
                     "output's float type", drt_dtype_name(out_dt));
  const drt_attr *prec = drt_node_attr(n, "precision");
  if (!dq && prec && prec->type == DRT_ATTR_INT && prec->i != 0 && prec->i != DRT_DTYPE_FLOAT32 &&
      prec->i != DRT_DTYPE_FLOAT16 && prec->i != DRT_DTYPE_BFLOAT16)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "attribute precision = %" PRId64 " is not supported (float, float16 "
                     "or bfloat16)", prec->i);
  drt_infer_set(n, 0, out_dt, &x->shape);
  return DRT_OK;
}

/* DynamicQuantizeLinear: x (float32) -> y (uint8, x's shape), y_scale, y_zero_point (scalars). */
static drt_status infer_dynamic_quantize(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_FLOATS));
  drt_shape scalar = {0};
  drt_infer_set(n, 0, DRT_DTYPE_UINT8, &n->inputs[0]->shape);
  drt_infer_set(n, 1, DRT_DTYPE_FLOAT32, &scalar);
  drt_infer_set(n, 2, DRT_DTYPE_UINT8, &scalar);
  return DRT_OK;
}

/* SwiGLU(A, B) = Swish_alpha(A) * B: float inputs of one dtype and one shape (no broadcasting). */
static drt_status infer_swiglu(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_FLOATS));
  DRT_RETURN_IF_ERROR(check_same_dtype(n, 1, 0));
  const drt_value *a = n->inputs[0], *b = n->inputs[1];
  if (!drt_shape_equal(&a->shape, &b->shape)) {
    char x[128], y[128];
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "A %s and B %s must have the same shape (SwiGLU does not broadcast)",
                     drt_shape_str(&a->shape, x, sizeof x), drt_shape_str(&b->shape, y, sizeof y));
  }
  drt_infer_set(n, 0, a->dtype, &a->shape);
  return DRT_OK;
}

/* BitCast: reinterprets the bytes as attribute `to`, which must have the input's width. */
static drt_status infer_bit_cast(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_ANY));
  const drt_attr *to = drt_node_attr(n, "to");
  if (!to || to->type != DRT_ATTR_INT)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "integer attribute 'to' is required");
  drt_dtype dt = (drt_dtype)to->i, src = n->inputs[0]->dtype;
  if (to->i < 0 || to->i > 64 || !drt_dtype_is_supported(dt))
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "attribute 'to' = %" PRId64 " is not a supported dtype", to->i);
  if (drt_dtype_bits(dt) != drt_dtype_bits(src))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "cannot reinterpret %s (%d bits) as %s (%d bits)",
                     drt_dtype_name(src), drt_dtype_bits(src), drt_dtype_name(dt), drt_dtype_bits(dt));
  drt_infer_set(n, 0, dt, &n->inputs[0]->shape);
  return DRT_OK;
}

static drt_status infer_optional_has_element(drt_graph *g, drt_node *n) {
  (void)g;
  drt_shape scalar = {0, {0}};
  drt_infer_set(n, 0, DRT_DTYPE_BOOL, &scalar);
  return DRT_OK;
}

static drt_status infer_optional_get_element(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_ANY));
  drt_infer_set(n, 0, n->inputs[0]->dtype, &n->inputs[0]->shape);
  return DRT_OK;
}

static drt_status infer_cast_like(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_ANY));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, DRT_DT_ANY));
  DRT_RETURN_IF_ERROR(check_round_mode(n));
  drt_infer_set(n, 0, n->inputs[1]->dtype, &n->inputs[0]->shape);
  return DRT_OK;
}

/* Dropout is inference-only: output = data, mask (optional) = all true. Training mode with
 * a non-zero ratio draws random numbers and is not supported. */
static drt_status infer_dropout(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_FLOATS | DRT_DT_FLOAT8));
  const drt_value *x = n->inputs[0];
  const drt_value *ratio = drt_node_input(n, 1), *training = drt_node_input(n, 2);
  if (n->opset >= 12) {
    if (ratio) {
      DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, DRT_DT_FLOATS));
      if (drt_shape_numel(&ratio->shape) != 1)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 1 '%s' (ratio) must be a scalar", ratio->name);
    }
    if (training) {
      DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 2, MASK_BOOL));
      if (drt_shape_numel(&training->shape) != 1)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 2 '%s' (training_mode) must be a scalar", training->name);
      double r = 0.5, t = 0;
      if (training->kind == DRT_VALUE_CONST && (!ratio || ratio->kind == DRT_VALUE_CONST)) {
        DRT_RETURN_IF_ERROR(drt_value_const_scalar(training, &t));
        if (ratio) DRT_RETURN_IF_ERROR(drt_value_const_scalar(ratio, &r));
        if (t != 0 && r != 0)
          return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "training mode (training_mode=true, ratio=%g) is not supported", r);
      }
    }
  } else if (n->num_inputs > 1 && n->inputs[1]) {
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "takes one input before opset 12 (ratio is an attribute), got %d", n->num_inputs);
  }
  drt_infer_set(n, 0, x->dtype, &x->shape);
  if (n->num_outputs > 1) drt_infer_set(n, 1, n->opset >= 10 ? DRT_DTYPE_BOOL : x->dtype, &x->shape);
  return DRT_OK;
}

/* Where(cond: bool, X: T, Y: T): three-way broadcast. */
static drt_status infer_where(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, MASK_BOOL));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, DRT_DT_ALL));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 2, DRT_DT_ALL));
  DRT_RETURN_IF_ERROR(check_same_dtype(n, 2, 1));
  drt_shape s;
  DRT_RETURN_IF_ERROR(broadcast_inputs(n, 0, &s));
  drt_infer_set(n, 0, n->inputs[1]->dtype, &s);
  return DRT_OK;
}

const drt_infer_entry drt_infer_table_elementwise[] = {
    /* unary */
    {DRT_OP_ABS, infer_unary},
    {DRT_OP_NEG, infer_unary},
    {DRT_OP_SQRT, infer_unary},
    {DRT_OP_RECIPROCAL, infer_unary},
    {DRT_OP_EXP, infer_unary},
    {DRT_OP_LOG, infer_unary},
    {DRT_OP_ERF, infer_unary},
    {DRT_OP_TANH, infer_unary},
    {DRT_OP_SIGMOID, infer_unary},
    {DRT_OP_RELU, infer_unary},
    {DRT_OP_LEAKY_RELU, infer_unary},
    {DRT_OP_ELU, infer_unary},
    {DRT_OP_SELU, infer_unary},
    {DRT_OP_CELU, infer_unary},
    {DRT_OP_SIN, infer_unary},
    {DRT_OP_COS, infer_unary},
    {DRT_OP_TAN, infer_unary},
    {DRT_OP_ASIN, infer_unary},
    {DRT_OP_ACOS, infer_unary},
    {DRT_OP_ATAN, infer_unary},
    {DRT_OP_SINH, infer_unary},
    {DRT_OP_COSH, infer_unary},
    {DRT_OP_ASINH, infer_unary},
    {DRT_OP_ACOSH, infer_unary},
    {DRT_OP_ATANH, infer_unary},
    {DRT_OP_SWISH, infer_unary},
    {DRT_OP_THRESHOLDED_RELU, infer_unary},
    {DRT_OP_SHRINK, infer_unary},
    {DRT_OP_FLOOR, infer_unary},
    {DRT_OP_CEIL, infer_unary},
    {DRT_OP_ROUND, infer_unary},
    {DRT_OP_SIGN, infer_unary},
    {DRT_OP_NOT, infer_unary},
    {DRT_OP_BITWISE_NOT, infer_unary},
    {DRT_OP_ISNAN, infer_unary},
    {DRT_OP_ISINF, infer_unary},
    {DRT_OP_GELU, infer_unary},
    {DRT_OP_HARD_SIGMOID, infer_unary},
    {DRT_OP_HARD_SWISH, infer_unary},
    {DRT_OP_MISH, infer_unary},
    {DRT_OP_SOFTPLUS, infer_unary},
    {DRT_OP_SOFTSIGN, infer_unary},
    {DRT_OP_CLIP, infer_clip},
    {DRT_OP_CAST, infer_cast},
    {DRT_OP_CAST_LIKE, infer_cast_like},
    {DRT_OP_IDENTITY, infer_unary},
    {DRT_OP_OPTIONAL_HAS_ELEMENT, infer_optional_has_element},
    {DRT_OP_OPTIONAL_GET_ELEMENT, infer_optional_get_element},
    {DRT_OP_DROPOUT, infer_dropout},
    /* binary / variadic with broadcasting */
    {DRT_OP_ADD, infer_broadcast},
    {DRT_OP_SUB, infer_broadcast},
    {DRT_OP_MUL, infer_broadcast},
    {DRT_OP_DIV, infer_broadcast},
    {DRT_OP_POW, infer_pow},
    {DRT_OP_MOD, infer_broadcast},
    {DRT_OP_PRELU, infer_prelu},
    {DRT_OP_EQUAL, infer_broadcast},
    {DRT_OP_LESS, infer_broadcast},
    {DRT_OP_LESS_OR_EQUAL, infer_broadcast},
    {DRT_OP_GREATER, infer_broadcast},
    {DRT_OP_GREATER_OR_EQUAL, infer_broadcast},
    {DRT_OP_AND, infer_broadcast},
    {DRT_OP_OR, infer_broadcast},
    {DRT_OP_XOR, infer_broadcast},
    {DRT_OP_MAX, infer_broadcast},
    {DRT_OP_MIN, infer_broadcast},
    {DRT_OP_SUM, infer_broadcast},
    {DRT_OP_MEAN, infer_broadcast},
    {DRT_OP_WHERE, infer_where},
    {DRT_OP_QUANTIZE_LINEAR, infer_quantize},
    {DRT_OP_DEQUANTIZE_LINEAR, infer_quantize},
    {DRT_OP_DYNAMIC_QUANTIZE_LINEAR, infer_dynamic_quantize},
    {DRT_OP_SWIGLU, infer_swiglu},
    {DRT_OP_BIT_CAST, infer_bit_cast},
    {DRT_OP_BITWISE_AND, infer_broadcast},
    {DRT_OP_BITWISE_OR, infer_broadcast},
    {DRT_OP_BITWISE_XOR, infer_broadcast},
    {DRT_OP_BIT_SHIFT, infer_broadcast},
    {DRT_OP_COUNT_, NULL},
};
