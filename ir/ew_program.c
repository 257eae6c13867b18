/* Elementwise expression programs: decoding, validation and the shape inference of the nodes
 * that carry them (see ir/ew_program.h). */
#include "ir/ew_program.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ir/infer.h"

static const char *const k_names[DRT_EW_OP_COUNT_] = {
    [DRT_EW_INVALID_] = "invalid",
#define DRT_EW_NAME_(id, name) [DRT_EW_##id] = name,
    DRT_EW_OPS(DRT_EW_NAME_)
#undef DRT_EW_NAME_
};

const char *drt_ew_op_name(drt_ew_op op) {
  return (unsigned)op < DRT_EW_OP_COUNT_ ? k_names[op] : "invalid";
}

drt_ew_form drt_ew_op_form(drt_ew_op op) {
  switch (op) {
    case DRT_EW_LOAD: return DRT_EW_FORM_LOAD;
    case DRT_EW_CONST: return DRT_EW_FORM_CONST;
    case DRT_EW_STORE: return DRT_EW_FORM_STORE;
    case DRT_EW_LEAKY_RELU:
    case DRT_EW_ELU:
    case DRT_EW_CELU:
    case DRT_EW_SELU:
    case DRT_EW_HARD_SIGMOID:
    case DRT_EW_SWISH:
    case DRT_EW_THRESHOLDED_RELU:
    case DRT_EW_SHRINK: return DRT_EW_FORM_PARAM;
    case DRT_EW_ADD:
    case DRT_EW_SUB:
    case DRT_EW_MUL:
    case DRT_EW_DIV:
    case DRT_EW_POW:
    case DRT_EW_MAX:
    case DRT_EW_MIN:
    case DRT_EW_PRELU:
    case DRT_EW_EQ:
    case DRT_EW_LT:
    case DRT_EW_LE:
    case DRT_EW_GT:
    case DRT_EW_GE:
    case DRT_EW_AND:
    case DRT_EW_OR:
    case DRT_EW_XOR: return DRT_EW_FORM_BINARY;
    case DRT_EW_WHERE:
    case DRT_EW_CLIP: return DRT_EW_FORM_TERNARY;
    default: return DRT_EW_FORM_UNARY;
  }
}

static drt_status bad(int i, const char *fmt, const char *what, int64_t v, int64_t lim) {
  return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, fmt, i, what, v, lim);
}

#define CHECK_RANGE(i, what, v, lim)                                                                    \
  do {                                                                                                \
    if ((v) < 0 || (v) >= (lim))                                                                      \
      return bad((i), "attribute program: instruction %d: %s %" PRId64 " is out of range [0, %" PRId64 ")", \
                 (what), (int64_t)(v), (int64_t)(lim));                                               \
  } while (0)

drt_status drt_ew_program_decode(const drt_node *n, int num_inputs, int num_outputs, drt_ew_program *p) {
  memset(p, 0, sizeof *p);
  if (num_inputs < 0 || num_inputs > DRT_EW_MAX_INPUTS)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%d program inputs (at most %d)", num_inputs, DRT_EW_MAX_INPUTS);
  if (num_outputs < 1 || num_outputs > DRT_EW_MAX_OUTPUTS)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%d program outputs (1 to %d)", num_outputs, DRT_EW_MAX_OUTPUTS);
  p->num_inputs = num_inputs;
  p->num_outputs = num_outputs;
  int64_t count = 0, nconst = 0;
  const int64_t *code = drt_node_attr_ints(n, "program", &count);
  const drt_attr *ca = drt_node_attr(n, "consts");
  if (ca && ca->type != DRT_ATTR_FLOATS)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute consts must be a list of floats");
  p->consts = drt_node_attr_floats(n, "consts", &nconst);
  if (nconst > DRT_EW_MAX_CONSTS)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "attribute consts has %" PRId64 " values (at most %d)", nconst,
                     DRT_EW_MAX_CONSTS);
  p->num_consts = (int)nconst;
  const drt_attr *pa = drt_node_attr(n, "program");
  if (!pa) {
    if (num_inputs < 1 || num_outputs != 1)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute program is required");
    p->num_insns = 2;
    p->num_regs = 1;
    p->insns[0] = (drt_ew_insn){DRT_EW_LOAD, 0, 0, -1, -1};
    p->insns[1] = (drt_ew_insn){DRT_EW_STORE, 0, 0, -1, -1};
    return DRT_OK;
  }
  if (pa->type != DRT_ATTR_INTS)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute program must be a list of ints");
  if (count == 0 || count % DRT_EW_INSN_INTS != 0)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute program has %" PRId64 " ints, expected a positive "
                     "multiple of %d", count, DRT_EW_INSN_INTS);
  if (count / DRT_EW_INSN_INTS > DRT_EW_MAX_INSNS)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "attribute program has %" PRId64 " instructions (at most %d)",
                     count / DRT_EW_INSN_INTS, DRT_EW_MAX_INSNS);
  p->num_insns = (int)(count / DRT_EW_INSN_INTS);
  bool defined[DRT_EW_MAX_REGS] = {false};
  bool stored[DRT_EW_MAX_OUTPUTS] = {false};
  bool storing = false;
  for (int i = 0; i < p->num_insns; i++) {
    const int64_t *w = code + (size_t)i * DRT_EW_INSN_INTS;
    int64_t op = w[0], d = w[1], a = w[2], b = w[3], c = w[4];
    if (op <= DRT_EW_INVALID_ || op >= DRT_EW_OP_COUNT_)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute program: instruction %d has unknown op %" PRId64, i, op);
    drt_ew_form form = drt_ew_op_form((drt_ew_op)op);
    if (form == DRT_EW_FORM_STORE) {
      CHECK_RANGE(i, "output", d, num_outputs);
      CHECK_RANGE(i, "register", a, DRT_EW_MAX_REGS);
      if (!defined[a])
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute program: instruction %d reads register %" PRId64
                         " before it is written", i, a);
      if (stored[d])
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute program: output %" PRId64 " is stored twice", d);
      stored[d] = true;
      storing = true;
    } else {
      if (storing)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute program: instruction %d (%s) follows a store; "
                         "stores must come last", i, drt_ew_op_name((drt_ew_op)op));
      CHECK_RANGE(i, "register", d, DRT_EW_MAX_REGS);
      int64_t srcs[3];
      int ns = 0;
      switch (form) {
        case DRT_EW_FORM_LOAD: CHECK_RANGE(i, "input", a, num_inputs); break;
        case DRT_EW_FORM_CONST: CHECK_RANGE(i, "const", a, nconst); break;
        case DRT_EW_FORM_UNARY: srcs[ns++] = a; break;
        case DRT_EW_FORM_PARAM:
          srcs[ns++] = a;
          CHECK_RANGE(i, "const", b, nconst);
          if (c != -1 || op == DRT_EW_SELU || op == DRT_EW_HARD_SIGMOID || op == DRT_EW_SHRINK) CHECK_RANGE(i, "const", c, nconst);
          break;
        case DRT_EW_FORM_BINARY:
          srcs[ns++] = a;
          srcs[ns++] = b;
          break;
        case DRT_EW_FORM_TERNARY:
          srcs[ns++] = a;
          if (op == DRT_EW_WHERE || b != -1) srcs[ns++] = b;
          if (op == DRT_EW_WHERE || c != -1) srcs[ns++] = c;
          break;
        default: break;
      }
      for (int s = 0; s < ns; s++) {
        CHECK_RANGE(i, "register", srcs[s], DRT_EW_MAX_REGS);
        if (!defined[srcs[s]])
          return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute program: instruction %d reads register %" PRId64
                           " before it is written", i, srcs[s]);
        if (srcs[s] == d)
          return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute program: instruction %d writes register %" PRId64
                           ", which it also reads", i, d);
      }
      defined[d] = true;
      if (d + 1 > p->num_regs) p->num_regs = (int)d + 1;
    }
    p->insns[i] = (drt_ew_insn){(uint8_t)op, (int16_t)d, (int16_t)a, (int16_t)b, (int16_t)c};
  }
  for (int o = 0; o < num_outputs; o++)
    if (!stored[o]) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute program never stores output %d", o);
  return DRT_OK;
}

drt_status drt_ew_check_operands(const drt_node *n, int first, const drt_shape *out) {
  char a[128], b[128];
  for (int i = first; i < n->num_inputs; i++) {
    const drt_value *v = n->inputs[i];
    if (!v) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input %d is missing", i);
    if (v->dtype != DRT_DTYPE_FLOAT32)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input %d '%s' has dtype %s, expected float32", i, v->name,
                       drt_dtype_name(v->dtype));
    drt_shape o;
    drt_status st = drt_broadcast_shapes(out, &v->shape, &o);
    if (st || !drt_shape_equal(&o, out)) {
      drt_status_free(st);
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input %d '%s' has shape %s, which does not broadcast into the "
                       "output shape %s", i, v->name, drt_shape_str(&v->shape, a, sizeof a),
                       drt_shape_str(out, b, sizeof b));
    }
  }
  return DRT_OK;
}

drt_status drt_infer_fused_elementwise(drt_graph *g, drt_node *n) {
  (void)g;
  if (n->num_inputs < 1) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "needs at least one input");
  /* The output shape is attribute "shape" when present (scalar immediates may have enlarged
   * the rank), else the broadcast of all inputs. */
  drt_shape out = {0};
  int64_t cnt = 0;
  const int64_t *shape = drt_node_attr_ints(n, "shape", &cnt);
  if (shape) {
    if (cnt > DRT_MAX_RANK)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "attribute shape has %" PRId64 " dims (at most %d)", cnt, DRT_MAX_RANK);
    out.rank = (int)cnt;
    for (int i = 0; i < out.rank; i++) {
      if (shape[i] < 0)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute shape dim %d is negative (%" PRId64 ")", i, shape[i]);
      out.dims[i] = shape[i];
    }
  } else {
    for (int i = 0; i < n->num_inputs; i++) {
      if (!n->inputs[i]) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input %d is missing", i);
      drt_shape o;
      DRT_RETURN_IF_ERROR_CTX(drt_broadcast_shapes(&out, &n->inputs[i]->shape, &o), "input %d", i);
      out = o;
    }
  }
  DRT_RETURN_IF_ERROR(drt_ew_check_operands(n, 0, &out));
  drt_ew_program p;
  DRT_RETURN_IF_ERROR(drt_ew_program_decode(n, n->num_inputs, n->num_outputs, &p));
  for (int i = 0; i < n->num_outputs; i++) drt_infer_set(n, i, DRT_DTYPE_FLOAT32, &out);
  return DRT_OK;
}

drt_node drt_fused_base_node(const drt_node *n) {
  drt_node t = *n;
  if (n->op == DRT_OP_FUSED_CONV) {
    t.op = DRT_OP_CONV;
    t.num_inputs = n->num_inputs < 3 ? n->num_inputs : 3;
  } else {
    const drt_value *a = drt_node_input(n, 0), *b = drt_node_input(n, 1);
    t.op = a && b && a->shape.rank == 2 && b->shape.rank == 2 ? DRT_OP_GEMM : DRT_OP_MATMUL;
    t.num_inputs = n->num_inputs < 2 ? n->num_inputs : 2;
  }
  return t;
}

static drt_status infer_epilogue_node(drt_graph *g, drt_node *n, int first_extra) {
  if (n->num_outputs != 1) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "has %d outputs, expected 1", n->num_outputs);
  if (n->num_inputs < 2 || !n->inputs[0] || !n->inputs[1])
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "inputs 0 and 1 are required");
  drt_node base = drt_fused_base_node(n);
  if (base.op == DRT_OP_MATMUL &&
      (drt_node_attr_int(n, "transA", 0) != 0 || drt_node_attr_int(n, "transB", 0) != 0))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "transA/transB need rank-2 operands");
  drt_infer_fn fn = drt_infer_find(base.op);
  if (!fn) return DRT_ERROR(DRT_STATUS_INTERNAL, "no shape inference for %s", drt_op_name(base.op));
  DRT_RETURN_IF_ERROR(fn(g, &base));
  drt_value *y = n->outputs[0];
  if (y->dtype != DRT_DTYPE_FLOAT32)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input 0 has dtype %s; the fused kernel computes float32",
                     drt_dtype_name(y->dtype));
  DRT_RETURN_IF_ERROR(drt_ew_check_operands(n, first_extra, &y->shape));
  drt_ew_program p;
  DRT_RETURN_IF_ERROR(drt_ew_program_decode(n, 1 + n->num_inputs - first_extra, 1, &p));
  return DRT_OK;
}

drt_status drt_infer_fused_gemm(drt_graph *g, drt_node *n) { return infer_epilogue_node(g, n, 2); }

drt_status drt_infer_fused_conv(drt_graph *g, drt_node *n) {
  if (n->num_inputs < 3)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "has %d inputs, expected X, W, B (B may be omitted) and the "
                     "epilogue operands", n->num_inputs);
  return infer_epilogue_node(g, n, 3);
}
