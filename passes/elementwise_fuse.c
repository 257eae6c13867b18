/* Pass "elementwise-fuse": pointwise groups and GEMM/Conv epilogues.
 *
 *   before                                           after
 *     A   W   b                                        A   W   b
 *      \ /    |                                         \  |  /
 *     MatMul  |                                        drt.Gemm{program:
 *        \    |                                          r0 = load 0 (A.W)   r1 = load 1 (b)
 *         Add(b, .)                                      r2 = add r0 r1      r3 = mul r2 r2
 *         /  |  \                                        ... tanh ...        store 0 r9}
 *     Mul  Mul  Add --- Mul(0.79) - Tanh - Add(1)             |
 *       \___________________________ Mul - Mul(0.5)           y
 *                                     |
 *                                     y
 *
 *     x ---- Mul(x, sigmoid(x)) ---- Add(., r)          x  r
 *      \--- Sigmoid --/                                  \ /
 *                                                 drt.Elementwise{program} -> y
 *
 * 1. Groups. Walking the nodes in topological order, every fusable node (a float32 pointwise
 *    op of the ELEMWISE/BROADCAST classes that the program can express; comparisons and
 *    logic producing bool values used only inside the group) joins the groups of those of its
 *    producers that compute the same output shape, and takes in a lone producer of a smaller
 *    shape that broadcasts into it and that nothing else uses (recomputed per element:
 *    arithmetic at any ratio, transcendental ops when at most 8 times over). A merge is refused when it would create a
 *    cycle (an input of the merged group computed from the group through an outside node) or
 *    exceed the program limits (inputs, outputs, registers). A member whose value is used
 *    outside the group (or is a graph output) becomes an output of the fused node; several
 *    outputs are supported. Operands that are scalar constants become program immediates.
 * 2. Epilogues. When a group reads the float32 output of a MatMul, Gemm or Conv that nothing
 *    else uses, with the group's shape, that producer and the group become one drt.Gemm /
 *    drt.Conv whose kernel applies the program to each output block right after computing it
 *    (ONNX Gemm's C input and beta become the first epilogue step). Single-node groups are
 *    rewritten only in this case.
 * 3. Each group becomes one node evaluating the program (ir/ew_program.h) with the values of
 *    the original nodes (runtime/cpu/ew_exec.c uses the same float32 formulas as
 *    runtime/cpu/elementwise.c). Group outputs keep their values, so names stay stable.
 *    Chains computing a known activation of one register (GELU in erf or tanh form, SiLU,
 *    Mish, sigmoid, softplus, whatever order the exporter chose) are recognized by evaluating
 *    them at sample points and become one instruction; dead instructions are dropped; virtual
 *    registers are mapped onto the kernel's 32 (a group that needs more is declined).
 * Declined groups are logged at INFO with the reason; every rewrite at DEBUG. */
#include "passes/elementwise_fuse.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ew_program.h"
#include "ir/infer.h"
#include "passes/pattern.h"

#define MAX_MEMBERS 128
#define MAX_GROUP_INPUTS (DRT_EW_MAX_INPUTS - 4) /* leaves room for the epilogue's operands */
#define MAX_VREGS 1024

typedef enum fkind { FK_NONE = 0, FK_FLOAT = 1, FK_BOOL = 2 } fkind;

typedef struct fuse_state {
  drt_graph *g;
  uint32_t num_ids; /* next_id when the pass started (index_of's size) */
  drt_use_map uses;
  size_t n;
  int64_t *index_of;  /* node id -> position in g->nodes, -1 */
  uint8_t *kind;      /* per position: fkind */
  int32_t *parent;    /* union-find over positions; -1 when not fusable */
  int32_t *next;      /* member lists: next member, -1 */
  int32_t *tail, *size, *minpos; /* per root */
  uint32_t *stamp;    /* DFS marks per position */
  uint32_t cur;
  int32_t *stack;
  uint16_t *inside;   /* value id -> uses by the candidate group's members (scratch) */
} fuse_state;

static void decline_at(const drt_node *n, const char *fmt, ...) DRT_PRINTF(2, 3);
static void decline_at(const drt_node *n, const char *fmt, ...) {
  if (!drt_log_enabled(DRT_LOG_INFO)) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  drt_log(DRT_LOG_INFO, "elementwise-fuse: group ending at %s '%s' not fused: %s", drt_op_name(n->op), n->name, msg);
}

/* ---- which nodes can join a group ---------------------------------------------------- */

static bool is_scalar_const(const drt_value *v) {
  return v && v->kind == DRT_VALUE_CONST && v->data && v->has_shape && drt_shape_numel(&v->shape) == 1 &&
         (drt_dtype_is_float(v->dtype) || drt_dtype_is_int(v->dtype) || v->dtype == DRT_DTYPE_BOOL);
}

static bool bool_result_op(drt_op op) {
  switch (op) {
    case DRT_OP_EQUAL:
    case DRT_OP_LESS:
    case DRT_OP_LESS_OR_EQUAL:
    case DRT_OP_GREATER:
    case DRT_OP_GREATER_OR_EQUAL:
    case DRT_OP_AND:
    case DRT_OP_OR:
    case DRT_OP_XOR:
    case DRT_OP_NOT: return true;
    default: return false;
  }
}

static bool float_op(drt_op op) {
  switch (op) {
    case DRT_OP_ABS: case DRT_OP_NEG: case DRT_OP_SQRT: case DRT_OP_RECIPROCAL: case DRT_OP_EXP:
    case DRT_OP_LOG: case DRT_OP_ERF: case DRT_OP_TANH: case DRT_OP_SIGMOID: case DRT_OP_RELU:
    case DRT_OP_LEAKY_RELU: case DRT_OP_ELU: case DRT_OP_SELU: case DRT_OP_CELU: case DRT_OP_SIN:
    case DRT_OP_COS: case DRT_OP_TAN: case DRT_OP_ASIN: case DRT_OP_ACOS: case DRT_OP_ATAN:
    case DRT_OP_SINH: case DRT_OP_COSH: case DRT_OP_ASINH: case DRT_OP_ACOSH: case DRT_OP_ATANH:
    case DRT_OP_SWISH: case DRT_OP_THRESHOLDED_RELU: case DRT_OP_SHRINK: case DRT_OP_FLOOR: case DRT_OP_CEIL: case DRT_OP_ROUND:
    case DRT_OP_SIGN: case DRT_OP_GELU: case DRT_OP_HARD_SIGMOID: case DRT_OP_HARD_SWISH:
    case DRT_OP_MISH: case DRT_OP_SOFTPLUS: case DRT_OP_SOFTSIGN: case DRT_OP_CLIP:
    case DRT_OP_ADD: case DRT_OP_SUB: case DRT_OP_MUL: case DRT_OP_DIV: case DRT_OP_POW:
    case DRT_OP_PRELU: case DRT_OP_MAX: case DRT_OP_MIN: case DRT_OP_SUM: case DRT_OP_MEAN:
    case DRT_OP_WHERE: case DRT_OP_SWIGLU:
      return true;
    default: return false;
  }
}

/* Whether input i of n is a bool operand (Where's condition, the logic ops' inputs). */
static bool bool_operand(const drt_node *n, int i) {
  return (n->op == DRT_OP_WHERE && i == 0) || n->op == DRT_OP_AND || n->op == DRT_OP_OR || n->op == DRT_OP_XOR ||
         n->op == DRT_OP_NOT;
}

static fkind fusable(const drt_node *n) {
  if (n->dead || n->num_outputs != 1) return FK_NONE;
  bool b = bool_result_op(n->op);
  if (!b && !float_op(n->op)) return FK_NONE;
  const drt_value *y = n->outputs[0];
  if (!y->has_shape || y->dtype != (b ? DRT_DTYPE_BOOL : DRT_DTYPE_FLOAT32)) return FK_NONE;
  if (n->op == DRT_OP_PRELU && n->opset < 7) return FK_NONE; /* legacy broadcasting */
  if (n->op == DRT_OP_GELU) {
    const char *ap = drt_node_attr_string(n, "approximate", "none");
    if (strcmp(ap, "none") != 0 && strcmp(ap, "tanh") != 0) return FK_NONE;
  }
  int present = 0;
  for (int i = 0; i < n->num_inputs; i++) {
    const drt_value *v = n->inputs[i];
    if (!v) {
      if (n->op != DRT_OP_CLIP) return FK_NONE;
      continue;
    }
    present++;
    if (!v->has_shape) return FK_NONE;
    if (is_scalar_const(v)) continue; /* an immediate */
    if (bool_operand(n, i)) {
      /* a bool computed inside the group (checked when the group is finalized) */
      if (v->dtype != DRT_DTYPE_BOOL || !drt_producer_of(v)) return FK_NONE;
      continue;
    }
    if (v->dtype != DRT_DTYPE_FLOAT32) return FK_NONE;
  }
  if (present == 0) return FK_NONE;
  return b ? FK_BOOL : FK_FLOAT;
}

/* ---- union-find groups ---------------------------------------------------------------- */

static int32_t find(fuse_state *s, int32_t i) {
  while (s->parent[i] != i) {
    s->parent[i] = s->parent[s->parent[i]];
    i = s->parent[i];
  }
  return i;
}

static bool in_group(fuse_state *s, int64_t pos, int32_t r1, int32_t r2) {
  if (pos < 0 || s->parent[pos] < 0) return false;
  int32_t r = find(s, (int32_t)pos);
  return r == r1 || r == r2;
}

static int64_t pos_of(const fuse_state *s, const drt_node *n) {
  return n && n->id < s->num_ids ? s->index_of[n->id] : -1;
}

/* Whether the union of groups r1 and r2 can be one node: no cycle through outside nodes, and
 * (conservatively) within the input/output limits. */
static bool can_merge(fuse_state *s, int32_t r1, int32_t r2, const char **why) {
  if (s->size[r1] + s->size[r2] > MAX_MEMBERS) {
    *why = "group too large";
    return false;
  }
  int32_t lo = s->minpos[r1] < s->minpos[r2] ? s->minpos[r1] : s->minpos[r2];
  int32_t roots[2] = {r1, r2};
  /* cycle check: an outside producer of a member's input must not depend on the group */
  s->cur++;
  for (int q = 0; q < 2; q++)
    for (int32_t m = roots[q]; m >= 0; m = s->next[m]) {
      const drt_node *mn = s->g->nodes[m];
      for (int j = 0; j < mn->num_inputs; j++) {
        int64_t p = pos_of(s, drt_producer_of(mn->inputs[j]));
        if (p < lo || in_group(s, p, r1, r2) || s->stamp[p] == s->cur) continue;
        int64_t sp = 0;
        s->stack[sp++] = (int32_t)p;
        s->stamp[p] = s->cur;
        while (sp > 0) {
          const drt_node *x = s->g->nodes[s->stack[--sp]];
          for (int k = 0; k < x->num_inputs; k++) {
            int64_t xp = pos_of(s, drt_producer_of(x->inputs[k]));
            if (xp < lo || s->stamp[xp] == s->cur) continue;
            if (in_group(s, xp, r1, r2)) {
              *why = "an input is computed from the group through another node";
              return false;
            }
            s->stamp[xp] = s->cur;
            s->stack[sp++] = (int32_t)xp;
          }
        }
      }
    }
  /* inputs and outputs */
  const drt_value *ins[MAX_GROUP_INPUTS + 1];
  int nin = 0, nout = 0;
  for (int q = 0; q < 2; q++)
    for (int32_t m = roots[q]; m >= 0; m = s->next[m]) {
      const drt_node *mn = s->g->nodes[m];
      for (int j = 0; j < mn->num_inputs; j++) {
        const drt_value *v = mn->inputs[j];
        if (!v) continue;
        if (in_group(s, pos_of(s, drt_producer_of(v)), r1, r2)) {
          s->inside[v->id]++;
          continue;
        }
        if (is_scalar_const(v)) continue;
        bool dup = false;
        for (int k = 0; k < nin && !dup; k++) dup = ins[k] == v;
        if (!dup && nin <= MAX_GROUP_INPUTS) ins[nin++] = v;
      }
    }
  for (int q = 0; q < 2; q++)
    for (int32_t m = roots[q]; m >= 0; m = s->next[m]) {
      const drt_value *y = s->g->nodes[m]->outputs[0];
      if (drt_use_count(&s->uses, y) > s->inside[y->id]) nout++;
    }
  for (int q = 0; q < 2; q++) /* reset the scratch counters */
    for (int32_t m = roots[q]; m >= 0; m = s->next[m]) {
      const drt_node *mn = s->g->nodes[m];
      for (int j = 0; j < mn->num_inputs; j++)
        if (mn->inputs[j]) s->inside[mn->inputs[j]->id] = 0;
    }
  if (nin > MAX_GROUP_INPUTS) {
    *why = "too many inputs";
    return false;
  }
  if (nout > DRT_EW_MAX_OUTPUTS) {
    *why = "too many outputs";
    return false;
  }
  return true;
}

static void merge(fuse_state *s, int32_t r1, int32_t r2) {
  /* r2's members join r1's list */
  s->next[s->tail[r1]] = r2;
  s->tail[r1] = s->tail[r2];
  s->size[r1] += s->size[r2];
  if (s->minpos[r2] < s->minpos[r1]) s->minpos[r1] = s->minpos[r2];
  s->parent[r2] = r1;
}

/* ---- program builder ------------------------------------------------------------------- */

typedef struct vinsn {
  drt_ew_op op;
  int d, a, b, c; /* virtual registers, or input/const/output indices per the op's form */
} vinsn;

typedef struct builder {
  vinsn insns[DRT_EW_MAX_INSNS];
  int ninsn;
  float consts[DRT_EW_MAX_CONSTS];
  int nconst;
  int nvreg;
  bool pinned[MAX_VREGS];
  int32_t *vreg_of; /* value id -> vreg + 1 (0: none) */
  drt_value *inputs[DRT_EW_MAX_INPUTS];
  int nin;
  const char *error; /* first failure, NULL when fine */
  /* scratch of the activation recognizer and DCE */
  int def[MAX_VREGS];       /* vreg -> defining instruction */
  uint32_t mark[MAX_VREGS]; /* visit stamps */
  uint32_t stamp;
  double val[MAX_VREGS];
  bool live[DRT_EW_MAX_INSNS];
} builder;

static int emit(builder *b, drt_ew_op op, int a, int bb, int c) {
  if (b->error) return 0;
  if (b->ninsn >= DRT_EW_MAX_INSNS || b->nvreg >= MAX_VREGS) {
    b->error = "the program would exceed its instruction limit";
    return 0;
  }
  int d = b->nvreg++;
  b->insns[b->ninsn++] = (vinsn){op, d, a, bb, c};
  return d;
}

static void emit_store(builder *b, int output, int r) {
  if (b->error) return;
  if (b->ninsn >= DRT_EW_MAX_INSNS) {
    b->error = "the program would exceed its instruction limit";
    return;
  }
  b->insns[b->ninsn++] = (vinsn){DRT_EW_STORE, output, r, -1, -1};
}

static int add_const(builder *b, float x) {
  for (int i = 0; i < b->nconst; i++)
    if (memcmp(&b->consts[i], &x, sizeof x) == 0) return i;
  if (b->nconst >= DRT_EW_MAX_CONSTS) {
    if (!b->error) b->error = "too many constants";
    return 0;
  }
  b->consts[b->nconst] = x;
  return b->nconst++;
}

static int const_reg(builder *b, float x) {
  int r = emit(b, DRT_EW_CONST, add_const(b, x), -1, -1);
  if (!b->error) b->pinned[r] = true;
  return r;
}

static int input_slot(builder *b, drt_value *v) {
  for (int i = 0; i < b->nin; i++)
    if (b->inputs[i] == v) return i;
  if (b->nin >= DRT_EW_MAX_INPUTS) {
    if (!b->error) b->error = "too many inputs";
    return 0;
  }
  b->inputs[b->nin] = v;
  return b->nin++;
}

/* The register holding value v (loads or materializes it on first use). */
static int value_reg(builder *b, drt_value *v) {
  if (b->vreg_of[v->id]) return b->vreg_of[v->id] - 1;
  int r;
  if (is_scalar_const(v)) {
    r = const_reg(b, (float)drt_load_f64(v->dtype, v->data, 0));
  } else {
    r = emit(b, DRT_EW_LOAD, input_slot(b, v), -1, -1);
    if (!b->error && drt_shape_numel(&v->shape) == 1) b->pinned[r] = true;
  }
  if (!b->error) b->vreg_of[v->id] = r + 1;
  return r;
}

static void set_result(builder *b, const drt_node *n, int r) {
  if (!b->error) b->vreg_of[n->outputs[0]->id] = r + 1;
}

static drt_ew_op unary_code(drt_op op) {
  switch (op) {
    case DRT_OP_ABS: return DRT_EW_ABS;
    case DRT_OP_NEG: return DRT_EW_NEG;
    case DRT_OP_SQRT: return DRT_EW_SQRT;
    case DRT_OP_RECIPROCAL: return DRT_EW_RECIP;
    case DRT_OP_EXP: return DRT_EW_EXP;
    case DRT_OP_LOG: return DRT_EW_LOG;
    case DRT_OP_ERF: return DRT_EW_ERF;
    case DRT_OP_TANH: return DRT_EW_TANH;
    case DRT_OP_SIGMOID: return DRT_EW_SIGMOID;
    case DRT_OP_RELU: return DRT_EW_RELU;
    case DRT_OP_SIN: return DRT_EW_SIN;
    case DRT_OP_COS: return DRT_EW_COS;
    case DRT_OP_TAN: return DRT_EW_TAN;
    case DRT_OP_ASIN: return DRT_EW_ASIN;
    case DRT_OP_ACOS: return DRT_EW_ACOS;
    case DRT_OP_ATAN: return DRT_EW_ATAN;
    case DRT_OP_SINH: return DRT_EW_SINH;
    case DRT_OP_COSH: return DRT_EW_COSH;
    case DRT_OP_ASINH: return DRT_EW_ASINH;
    case DRT_OP_ACOSH: return DRT_EW_ACOSH;
    case DRT_OP_ATANH: return DRT_EW_ATANH;
    case DRT_OP_FLOOR: return DRT_EW_FLOOR;
    case DRT_OP_CEIL: return DRT_EW_CEIL;
    case DRT_OP_ROUND: return DRT_EW_ROUND;
    case DRT_OP_SIGN: return DRT_EW_SIGN;
    case DRT_OP_HARD_SWISH: return DRT_EW_HARD_SWISH;
    case DRT_OP_MISH: return DRT_EW_MISH;
    case DRT_OP_SOFTPLUS: return DRT_EW_SOFTPLUS;
    case DRT_OP_SOFTSIGN: return DRT_EW_SOFTSIGN;
    case DRT_OP_NOT: return DRT_EW_NOT;
    default: return DRT_EW_INVALID_;
  }
}

static drt_ew_op binary_code(drt_op op) {
  switch (op) {
    case DRT_OP_ADD:
    case DRT_OP_SUM:
    case DRT_OP_MEAN: return DRT_EW_ADD;
    case DRT_OP_SUB: return DRT_EW_SUB;
    case DRT_OP_MUL: return DRT_EW_MUL;
    case DRT_OP_DIV: return DRT_EW_DIV;
    case DRT_OP_MAX: return DRT_EW_MAX;
    case DRT_OP_MIN: return DRT_EW_MIN;
    case DRT_OP_PRELU: return DRT_EW_PRELU;
    case DRT_OP_EQUAL: return DRT_EW_EQ;
    case DRT_OP_LESS: return DRT_EW_LT;
    case DRT_OP_LESS_OR_EQUAL: return DRT_EW_LE;
    case DRT_OP_GREATER: return DRT_EW_GT;
    case DRT_OP_GREATER_OR_EQUAL: return DRT_EW_GE;
    case DRT_OP_AND: return DRT_EW_AND;
    case DRT_OP_OR: return DRT_EW_OR;
    case DRT_OP_XOR: return DRT_EW_XOR;
    default: return DRT_EW_INVALID_;
  }
}

/* Emits the instructions of one member node. */
static void translate(builder *b, const drt_node *n) {
  drt_op op = n->op;
  drt_ew_op u = unary_code(op);
  if (u != DRT_EW_INVALID_) {
    set_result(b, n, emit(b, u, value_reg(b, n->inputs[0]), -1, -1));
    return;
  }
  switch (op) {
    case DRT_OP_GELU: {
      bool t = strcmp(drt_node_attr_string(n, "approximate", "none"), "tanh") == 0;
      set_result(b, n, emit(b, t ? DRT_EW_GELU_TANH : DRT_EW_GELU, value_reg(b, n->inputs[0]), -1, -1));
      return;
    }
    case DRT_OP_LEAKY_RELU:
    case DRT_OP_ELU:
    case DRT_OP_CELU: {
      float alpha = drt_node_attr_float(n, "alpha", op == DRT_OP_LEAKY_RELU ? 0.01f : 1.0f);
      drt_ew_op c = op == DRT_OP_LEAKY_RELU ? DRT_EW_LEAKY_RELU : op == DRT_OP_ELU ? DRT_EW_ELU : DRT_EW_CELU;
      set_result(b, n, emit(b, c, value_reg(b, n->inputs[0]), add_const(b, alpha), -1));
      return;
    }
    case DRT_OP_SELU: {
      float alpha = drt_node_attr_float(n, "alpha", 1.67326319217681884765625f);
      float gamma = drt_node_attr_float(n, "gamma", 1.05070102214813232421875f);
      set_result(b, n, emit(b, DRT_EW_SELU, value_reg(b, n->inputs[0]), add_const(b, alpha), add_const(b, gamma)));
      return;
    }
    case DRT_OP_SWISH:
    case DRT_OP_THRESHOLDED_RELU: {
      float alpha = drt_node_attr_float(n, "alpha", 1.0f);
      set_result(b, n, emit(b, op == DRT_OP_SWISH ? DRT_EW_SWISH : DRT_EW_THRESHOLDED_RELU, value_reg(b, n->inputs[0]),
                            add_const(b, alpha), -1));
      return;
    }
    case DRT_OP_SHRINK: {
      float bias = drt_node_attr_float(n, "bias", 0.0f), lambd = drt_node_attr_float(n, "lambd", 0.5f);
      set_result(b, n, emit(b, DRT_EW_SHRINK, value_reg(b, n->inputs[0]), add_const(b, bias), add_const(b, lambd)));
      return;
    }
    case DRT_OP_HARD_SIGMOID: {
      float alpha = drt_node_attr_float(n, "alpha", 0.2f), beta = drt_node_attr_float(n, "beta", 0.5f);
      set_result(b, n,
                 emit(b, DRT_EW_HARD_SIGMOID, value_reg(b, n->inputs[0]), add_const(b, alpha), add_const(b, beta)));
      return;
    }
    case DRT_OP_CLIP: {
      int x = value_reg(b, n->inputs[0]), lo = -1, hi = -1;
      if (n->opset < 11) {
        if (drt_node_attr(n, "min")) lo = const_reg(b, drt_node_attr_float(n, "min", 0.0f));
        if (drt_node_attr(n, "max")) hi = const_reg(b, drt_node_attr_float(n, "max", 0.0f));
      } else {
        if (drt_node_input(n, 1)) lo = value_reg(b, n->inputs[1]);
        if (drt_node_input(n, 2)) hi = value_reg(b, n->inputs[2]);
      }
      set_result(b, n, emit(b, DRT_EW_CLIP, x, lo, hi));
      return;
    }
    case DRT_OP_POW: {
      int x = value_reg(b, n->inputs[0]);
      double e;
      /* the special exponents runtime/cpu/elementwise.c computes without powf */
      if (is_scalar_const(n->inputs[1]) && drt_const_scalar(n->inputs[1], &e) && (e == 1 || e == 2 || e == 3)) {
        if (e == 1) {
          set_result(b, n, x);
        } else {
          int sq = emit(b, DRT_EW_MUL, x, x, -1);
          set_result(b, n, e == 2 ? sq : emit(b, DRT_EW_MUL, sq, x, -1));
        }
        return;
      }
      set_result(b, n, emit(b, DRT_EW_POW, x, value_reg(b, n->inputs[1]), -1));
      return;
    }
    case DRT_OP_SWIGLU: {
      int sw = emit(b, DRT_EW_SWISH, value_reg(b, n->inputs[0]), add_const(b, drt_node_attr_float(n, "alpha", 1.0f)), -1);
      set_result(b, n, emit(b, DRT_EW_MUL, sw, value_reg(b, n->inputs[1]), -1));
      return;
    }
    case DRT_OP_WHERE:
      set_result(b, n,
                 emit(b, DRT_EW_WHERE, value_reg(b, n->inputs[0]), value_reg(b, n->inputs[1]),
                      value_reg(b, n->inputs[2])));
      return;
    default: break;
  }
  drt_ew_op bc = binary_code(op);
  if (bc == DRT_EW_INVALID_) {
    if (!b->error) b->error = "op not expressible";
    return;
  }
  int acc = value_reg(b, n->inputs[0]);
  for (int i = 1; i < n->num_inputs; i++) acc = emit(b, bc, acc, value_reg(b, n->inputs[i]), -1);
  if (op == DRT_OP_MEAN && n->num_inputs > 1) acc = emit(b, DRT_EW_DIV, acc, const_reg(b, (float)n->num_inputs), -1);
  set_result(b, n, acc);
}

/* ---- activation recognition ---------------------------------------------------------------
 * Exporters spell GELU, SiLU, Mish, ... as chains of pointwise ops in many orders. A register
 * whose value is computed from one register x and constants only, through a few instructions,
 * is evaluated at sample points (in double) and compared with the known activations; on a
 * match its instruction becomes the single activation op on x and the chain dies (DCE). */

#define CONE_MAX 16

static int sources(const vinsn *x, int *s) {
  int n = 0;
  switch (drt_ew_op_form(x->op)) {
    case DRT_EW_FORM_STORE:
    case DRT_EW_FORM_UNARY:
    case DRT_EW_FORM_PARAM: s[n++] = x->a; break;
    case DRT_EW_FORM_BINARY:
      s[n++] = x->a;
      s[n++] = x->b;
      break;
    case DRT_EW_FORM_TERNARY:
      s[n++] = x->a;
      if (x->b >= 0) s[n++] = x->b;
      if (x->c >= 0) s[n++] = x->c;
      break;
    default: break;
  }
  return n;
}

/* Whether v is computed from x and constants only; counts the instructions in *size. */
static bool cone_ok(builder *b, int v, int x, int *size) {
  if (v == x) return true;
  if (b->mark[v] == b->stamp) return true;
  b->mark[v] = b->stamp;
  const vinsn *d = &b->insns[b->def[v]];
  if (d->op == DRT_EW_CONST) return true;
  if (d->op == DRT_EW_LOAD || ++*size > CONE_MAX) return false;
  int s[3], n = sources(d, s);
  for (int k = 0; k < n; k++)
    if (!cone_ok(b, s[k], x, size)) return false;
  return true;
}

static double sigm(double v) { return 1.0 / (1.0 + exp(-v)); }
static double softplus_d(double v) { return v > 0 ? v + log1p(exp(-v)) : log1p(exp(v)); }

/* Value of v given x = xv (cone_ok(v, x) holds); memo in b->val with b->mark == stamp. */
static double eval_cone(builder *b, int v, int x, double xv) {
  if (v == x) return xv;
  if (b->mark[v] == b->stamp) return b->val[v];
  const vinsn *d = &b->insns[b->def[v]];
  double r = NAN, a = 0, c = 0, e = 0;
  int s[3], n = sources(d, s);
  if (n > 0) a = eval_cone(b, s[0], x, xv);
  if (n > 1) c = eval_cone(b, s[1], x, xv);
  if (n > 2) e = eval_cone(b, s[2], x, xv);
  const float *k = b->consts;
  switch (d->op) {
    case DRT_EW_CONST: r = k[d->a]; break;
    case DRT_EW_NEG: r = -a; break;
    case DRT_EW_ABS: r = fabs(a); break;
    case DRT_EW_SQRT: r = sqrt(a); break;
    case DRT_EW_RECIP: r = 1.0 / a; break;
    case DRT_EW_EXP: r = exp(a); break;
    case DRT_EW_LOG: r = log(a); break;
    case DRT_EW_ERF: r = erf(a); break;
    case DRT_EW_TANH: r = tanh(a); break;
    case DRT_EW_SIGMOID: r = sigm(a); break;
    case DRT_EW_RELU: r = a < 0 ? 0 : a; break;
    case DRT_EW_SOFTPLUS: r = softplus_d(a); break;
    case DRT_EW_GELU: r = 0.5 * a * (1.0 + erf(a / sqrt(2.0))); break;
    case DRT_EW_GELU_TANH: r = 0.5 * a * (1.0 + tanh(0.79788456080286535588 * (a + 0.044715 * a * a * a))); break;
    case DRT_EW_SILU: r = a * sigm(a); break;
    case DRT_EW_MISH: r = a * tanh(softplus_d(a)); break;
    case DRT_EW_ADD: r = a + c; break;
    case DRT_EW_SUB: r = a - c; break;
    case DRT_EW_MUL: r = a * c; break;
    case DRT_EW_DIV: r = a / c; break;
    case DRT_EW_POW: r = pow(a, c); break;
    case DRT_EW_MAX: r = a > c ? a : c; break;
    case DRT_EW_MIN: r = a < c ? a : c; break;
    case DRT_EW_WHERE: r = a != 0 ? c : e; break;
    default: r = NAN; break; /* anything else: no match */
  }
  b->mark[v] = b->stamp;
  b->val[v] = r;
  return r;
}

typedef struct activation {
  drt_ew_op op;
  double (*f)(double);
} activation;

static double f_gelu_tanh(double v) { return 0.5 * v * (1.0 + tanh(0.79788456080286535588 * (v + 0.044715 * v * v * v))); }
static double f_gelu(double v) { return 0.5 * v * (1.0 + erf(v / sqrt(2.0))); }
static double f_silu(double v) { return v * sigm(v); }
static double f_mish(double v) { return v * tanh(softplus_d(v)); }

static const activation k_acts[] = {
    {DRT_EW_GELU_TANH, f_gelu_tanh}, {DRT_EW_GELU, f_gelu}, {DRT_EW_SILU, f_silu},
    {DRT_EW_MISH, f_mish},           {DRT_EW_SIGMOID, sigm}, {DRT_EW_SOFTPLUS, softplus_d},
};

static const double k_samples[] = {-5.3, -2.9, -1.7, -0.83, -0.31, 0.07, 0.45, 1.2, 2.6, 4.4};

static drt_ew_op match_cone(builder *b, int r, int x) {
  double got[sizeof k_samples / sizeof k_samples[0]];
  for (size_t i = 0; i < sizeof k_samples / sizeof k_samples[0]; i++) {
    b->stamp++;
    got[i] = eval_cone(b, r, x, k_samples[i]);
    if (!isfinite(got[i])) return DRT_EW_INVALID_;
  }
  for (size_t a = 0; a < sizeof k_acts / sizeof k_acts[0]; a++) {
    bool ok = true;
    for (size_t i = 0; ok && i < sizeof k_samples / sizeof k_samples[0]; i++) {
      double want = k_acts[a].f(k_samples[i]);
      ok = fabs(got[i] - want) <= 1e-5 * (1.0 + fabs(want));
    }
    if (ok) return k_acts[a].op;
  }
  return DRT_EW_INVALID_;
}

static void recognize_activations(builder *b) {
  for (int i = 0; i < b->ninsn; i++)
    if (b->insns[i].op != DRT_EW_STORE) b->def[b->insns[i].d] = i;
  for (int i = 0; i < b->ninsn; i++) {
    vinsn *ins = &b->insns[i];
    drt_ew_form f = drt_ew_op_form(ins->op);
    if (f == DRT_EW_FORM_LOAD || f == DRT_EW_FORM_CONST || f == DRT_EW_FORM_STORE) continue;
    /* candidate roots: registers the chain reads, nearest first */
    int cand[CONE_MAX], nc = 0, queue[CONE_MAX * 3], qh = 0, qt = 0;
    b->stamp++;
    queue[qt++] = ins->d;
    while (qh < qt && nc < CONE_MAX) {
      int v = queue[qh++];
      const vinsn *d = &b->insns[b->def[v]];
      if (d->op == DRT_EW_CONST) continue;
      if (v != ins->d) cand[nc++] = v;
      if (d->op == DRT_EW_LOAD) continue;
      int s[3], n = sources(d, s);
      for (int k = 0; k < n && qt < CONE_MAX * 3; k++)
        if (b->mark[s[k]] != b->stamp) {
          b->mark[s[k]] = b->stamp;
          queue[qt++] = s[k];
        }
    }
    for (int c = 0; c < nc; c++) {
      int size = 0;
      b->stamp++;
      if (!cone_ok(b, ins->d, cand[c], &size) || size < 2) continue;
      drt_ew_op act = match_cone(b, ins->d, cand[c]);
      if (act == DRT_EW_INVALID_) continue;
      *ins = (vinsn){act, ins->d, cand[c], -1, -1};
      break;
    }
  }
}

/* Drops instructions whose results nothing stores. */
static void dead_code(builder *b) {
  b->stamp++;
  for (int i = b->ninsn - 1; i >= 0; i--) {
    const vinsn *x = &b->insns[i];
    b->live[i] = x->op == DRT_EW_STORE || b->mark[x->d] == b->stamp;
    if (!b->live[i]) continue;
    int s[3], n = sources(x, s);
    for (int k = 0; k < n; k++) b->mark[s[k]] = b->stamp;
  }
  int k = 0;
  for (int i = 0; i < b->ninsn; i++)
    if (b->live[i]) b->insns[k++] = b->insns[i];
  b->ninsn = k;
  /* renumber the constants still referenced */
  int map[DRT_EW_MAX_CONSTS], nc = 0;
  float old[DRT_EW_MAX_CONSTS];
  for (int c = 0; c < b->nconst; c++) {
    map[c] = -1;
    old[c] = b->consts[c];
  }
  for (int i = 0; i < b->ninsn; i++) {
    vinsn *x = &b->insns[i];
    int *refs[2] = {NULL, NULL};
    if (x->op == DRT_EW_CONST) refs[0] = &x->a;
    if (drt_ew_op_form(x->op) == DRT_EW_FORM_PARAM) {
      refs[0] = &x->b;
      if (x->c >= 0) refs[1] = &x->c;
    }
    for (int r = 0; r < 2; r++) {
      if (!refs[r]) continue;
      int c = *refs[r];
      if (map[c] < 0) {
        b->consts[nc] = old[c];
        map[c] = nc++;
      }
      *refs[r] = map[c];
    }
  }
  b->nconst = nc;
}

/* Maps virtual registers to at most DRT_EW_MAX_REGS physical ones (a destination never shares
 * a register with its sources; pinned registers hold constants for the whole program) and
 * encodes the program. Returns false when registers run out. */
static bool encode(const builder *b, int64_t *code) {
  int last[MAX_VREGS], phys[MAX_VREGS];
  for (int v = 0; v < b->nvreg; v++) {
    last[v] = -1;
    phys[v] = -1;
  }
  int srcs[DRT_EW_MAX_INSNS][3];
  for (int i = 0; i < b->ninsn; i++) {
    const vinsn *x = &b->insns[i];
    int *s = srcs[i];
    s[0] = s[1] = s[2] = -1;
    switch (drt_ew_op_form(x->op)) {
      case DRT_EW_FORM_STORE:
      case DRT_EW_FORM_UNARY:
      case DRT_EW_FORM_PARAM: s[0] = x->a; break;
      case DRT_EW_FORM_BINARY:
        s[0] = x->a;
        s[1] = x->b;
        break;
      case DRT_EW_FORM_TERNARY:
        s[0] = x->a;
        s[1] = x->b;
        s[2] = x->c;
        break;
      default: break;
    }
    for (int k = 0; k < 3; k++)
      if (s[k] >= 0) last[s[k]] = i;
  }
  uint32_t busy = 0;
  for (int i = 0; i < b->ninsn; i++) {
    const vinsn *x = &b->insns[i];
    const int *s = srcs[i];
    int d = -1;
    if (x->op != DRT_EW_STORE) {
      int r = 0;
      while (r < DRT_EW_MAX_REGS && (busy >> r & 1u)) r++;
      if (r == DRT_EW_MAX_REGS) return false;
      busy |= 1u << r;
      phys[x->d] = r;
      d = r;
    }
    int64_t *w = code + (size_t)i * DRT_EW_INSN_INTS;
    w[0] = x->op;
    switch (drt_ew_op_form(x->op)) {
      case DRT_EW_FORM_LOAD:
      case DRT_EW_FORM_CONST:
        w[1] = d;
        w[2] = x->a;
        w[3] = w[4] = -1;
        break;
      case DRT_EW_FORM_STORE:
        w[1] = x->d;
        w[2] = phys[x->a];
        w[3] = w[4] = -1;
        break;
      case DRT_EW_FORM_UNARY:
        w[1] = d;
        w[2] = phys[x->a];
        w[3] = w[4] = -1;
        break;
      case DRT_EW_FORM_PARAM:
        w[1] = d;
        w[2] = phys[x->a];
        w[3] = x->b;
        w[4] = x->c;
        break;
      case DRT_EW_FORM_BINARY:
        w[1] = d;
        w[2] = phys[x->a];
        w[3] = phys[x->b];
        w[4] = -1;
        break;
      case DRT_EW_FORM_TERNARY:
        w[1] = d;
        w[2] = phys[x->a];
        w[3] = x->b >= 0 ? phys[x->b] : -1;
        w[4] = x->c >= 0 ? phys[x->c] : -1;
        break;
    }
    /* release sources (and an unused result) after their last read */
    for (int k = 0; k < 3; k++)
      if (s[k] >= 0 && last[s[k]] == i && !b->pinned[s[k]]) busy &= ~(1u << phys[s[k]]);
    if (x->op != DRT_EW_STORE && last[x->d] < 0 && !b->pinned[x->d]) busy &= ~(1u << d);
  }
  return true;
}

/* ---- groups ------------------------------------------------------------------------------ */

typedef struct group {
  int nmem;
  int32_t mem[MAX_MEMBERS]; /* positions, ascending */
  drt_value *outputs[DRT_EW_MAX_OUTPUTS];
  int nout;
  drt_node *anchor; /* MatMul / Gemm / Conv absorbed as the producer, or NULL */
  drt_value *acc;   /* the anchor's output */
} group;

static bool member(const fuse_state *s, const group *gr, const drt_node *n) {
  int64_t p = pos_of(s, n);
  if (p < 0) return false;
  for (int i = 0; i < gr->nmem; i++)
    if (gr->mem[i] == p) return true;
  return false;
}

/* Fills outputs and checks the bool values stay inside. */
static bool finalize(fuse_state *s, group *gr, const char **why) {
  gr->nout = 0;
  for (int i = 0; i < gr->nmem; i++) {
    const drt_node *n = s->g->nodes[gr->mem[i]];
    drt_value *y = n->outputs[0];
    uint32_t inside = 0;
    for (int k = 0; k < gr->nmem; k++) {
      const drt_node *c = s->g->nodes[gr->mem[k]];
      for (int j = 0; j < c->num_inputs; j++) inside += c->inputs[j] == y;
    }
    bool escapes = drt_use_count(&s->uses, y) > inside;
    if (escapes) {
      if (y->dtype != DRT_DTYPE_FLOAT32) {
        *why = "a bool value is used outside the group";
        return false;
      }
      if (gr->nout >= DRT_EW_MAX_OUTPUTS) {
        *why = "too many outputs";
        return false;
      }
      gr->outputs[gr->nout++] = y;
    }
    for (int j = 0; j < n->num_inputs; j++) {
      const drt_value *v = n->inputs[j];
      if (v && v->dtype == DRT_DTYPE_BOOL && !is_scalar_const(v) && !member(s, gr, drt_producer_of(v))) {
        *why = "a bool operand comes from outside the group";
        return false;
      }
    }
  }
  return true;
}

static bool anchor_op(const drt_node *p) {
  if (!p || p->dead || p->num_outputs != 1 || p->outputs[0]->dtype != DRT_DTYPE_FLOAT32) return false;
  switch (p->op) {
    case DRT_OP_MATMUL:
      return p->inputs[0]->dtype == DRT_DTYPE_FLOAT32 && p->inputs[1]->dtype == DRT_DTYPE_FLOAT32;
    case DRT_OP_GEMM:
      if (p->inputs[0]->dtype != DRT_DTYPE_FLOAT32 || p->inputs[1]->dtype != DRT_DTYPE_FLOAT32) return false;
      return !drt_node_input(p, 2) || drt_node_input(p, 2)->dtype == DRT_DTYPE_FLOAT32;
    case DRT_OP_CONV: return p->inputs[0]->dtype == DRT_DTYPE_FLOAT32 && p->num_inputs <= 3;
    default: return false;
  }
}

/* Picks the MatMul/Gemm/Conv whose output the group can take as its accumulator: the first
 * one (in member order) whose output nothing outside the group reads. */
static void pick_anchor(fuse_state *s, group *gr) {
  gr->anchor = NULL;
  gr->acc = NULL;
  if (gr->nout != 1) return;
  const drt_shape *shape = &gr->outputs[0]->shape;
  for (int i = 0; i < gr->nmem; i++) {
    const drt_node *n = s->g->nodes[gr->mem[i]];
    for (int j = 0; j < n->num_inputs; j++) {
      drt_value *v = n->inputs[j];
      drt_node *p = drt_producer_of(v);
      if (!anchor_op(p) || !drt_shape_equal(&v->shape, shape) || drt_use_is_output(&s->uses, v)) continue;
      uint32_t inside = 0;
      for (int k = 0; k < gr->nmem; k++) {
        const drt_node *c = s->g->nodes[gr->mem[k]];
        for (int q = 0; q < c->num_inputs; q++) inside += c->inputs[q] == v;
      }
      if (inside != drt_use_count(&s->uses, v)) continue;
      gr->anchor = p;
      gr->acc = v;
      return;
    }
  }
}

static drt_status add_ints_attr(drt_graph *g, drt_node *n, const char *name, const int64_t *v, int64_t count) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_INTS;
  a.ints = (int64_t *)v;
  a.count = count;
  return drt_node_add_attr(g, n, &a);
}

static drt_status add_floats_attr(drt_graph *g, drt_node *n, const char *name, const float *v, int64_t count) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_FLOATS;
  a.floats = (float *)v;
  a.count = count;
  return drt_node_add_attr(g, n, &a);
}

/* Builds the program of a group and the node that replaces the group (and its anchor); the
 * node is appended to g->nodes and returned in *out. *out = NULL (graph unchanged) when the
 * program does not fit or the node does not validate. The caller retires the old nodes. */
static drt_status rewrite(fuse_state *s, group *gr, builder *b, drt_node **out) {
  *out = NULL;
  drt_graph *g = s->g;
  const drt_node *last = g->nodes[gr->mem[gr->nmem - 1]];
  memset(b->pinned, 0, sizeof b->pinned);
  b->ninsn = b->nconst = b->nvreg = b->nin = 0;
  b->error = NULL;
  drt_node *anchor = gr->anchor;
  if (anchor) {
    b->inputs[b->nin++] = gr->acc; /* program input 0: the product / convolution */
    int acc = emit(b, DRT_EW_LOAD, 0, -1, -1);
    drt_value *c = anchor->op == DRT_OP_GEMM ? drt_node_input(anchor, 2) : NULL;
    float beta = anchor->op == DRT_OP_GEMM ? drt_node_attr_float(anchor, "beta", 1.0f) : 1.0f;
    if (c && beta != 0.0f) {
      int cr = value_reg(b, c);
      if (beta != 1.0f) cr = emit(b, DRT_EW_MUL, cr, const_reg(b, beta), -1);
      acc = emit(b, DRT_EW_ADD, acc, cr, -1);
    }
    if (!b->error) b->vreg_of[gr->acc->id] = acc + 1;
  }
  for (int i = 0; i < gr->nmem; i++) translate(b, g->nodes[gr->mem[i]]);
  for (int o = 0; o < gr->nout; o++) {
    int r = b->vreg_of[gr->outputs[o]->id] - 1;
    if (r < 0 && !b->error) b->error = "an output has no register";
    emit_store(b, o, r >= 0 ? r : 0);
  }
  int64_t *code = NULL;
  if (!b->error) {
    recognize_activations(b);
    dead_code(b);
    code = malloc((size_t)b->ninsn * DRT_EW_INSN_INTS * sizeof(int64_t));
    if (!code) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "elementwise program");
    if (!encode(b, code)) b->error = "the program needs more registers than the kernel has";
  }
  /* clear the value -> register map for the next group */
  for (int i = 0; i < gr->nmem; i++) {
    const drt_node *n = g->nodes[gr->mem[i]];
    b->vreg_of[n->outputs[0]->id] = 0;
    for (int j = 0; j < n->num_inputs; j++)
      if (n->inputs[j]) b->vreg_of[n->inputs[j]->id] = 0;
  }
  if (anchor) {
    b->vreg_of[gr->acc->id] = 0;
    for (int j = 0; j < anchor->num_inputs; j++)
      if (anchor->inputs[j]) b->vreg_of[anchor->inputs[j]->id] = 0;
  }
  if (b->error) {
    free(code);
    decline_at(last, "%s", b->error);
    return DRT_OK;
  }
  /* node inputs */
  drt_value *ins[3 + DRT_EW_MAX_INPUTS];
  int nin = 0, first = 0;
  drt_op op = DRT_OP_FUSED_ELEMENTWISE;
  if (anchor) {
    op = anchor->op == DRT_OP_CONV ? DRT_OP_FUSED_CONV : DRT_OP_FUSED_GEMM;
    ins[nin++] = anchor->inputs[0];
    ins[nin++] = anchor->inputs[1];
    if (op == DRT_OP_FUSED_CONV) ins[nin++] = drt_node_input(anchor, 2);
    first = 1;
  }
  for (int i = first; i < b->nin; i++) ins[nin++] = b->inputs[i];
  char name[512];
  const drt_node *named = anchor ? anchor : last;
  snprintf(name, sizeof name, "%s/%s", named->name,
           op == DRT_OP_FUSED_ELEMENTWISE ? "fused_elementwise" : op == DRT_OP_FUSED_GEMM ? "fused_gemm" : "fused_conv");
  drt_node *nn;
  drt_status st = drt_graph_add_node(g, op, name, ins, nin, gr->outputs, gr->nout, &nn);
  if (!st && anchor) {
    nn->opset = anchor->opset;
    for (int i = 0; i < anchor->num_attrs && !st; i++) {
      const char *an = anchor->attrs[i].name;
      if (anchor->op == DRT_OP_GEMM && strcmp(an, "transA") && strcmp(an, "transB") && strcmp(an, "alpha")) continue;
      st = drt_node_add_attr(g, nn, &anchor->attrs[i]);
    }
  }
  if (!st) st = add_ints_attr(g, nn, "program", code, (int64_t)b->ninsn * DRT_EW_INSN_INTS);
  free(code);
  if (!st && b->nconst) st = add_floats_attr(g, nn, "consts", b->consts, b->nconst);
  if (!st && !anchor) {
    int64_t dims[DRT_MAX_RANK];
    const drt_shape *sh = &gr->outputs[0]->shape;
    for (int i = 0; i < sh->rank; i++) dims[i] = sh->dims[i];
    st = add_ints_attr(g, nn, "shape", dims, sh->rank);
  }
  if (st) return st;
  /* validate by shape inference before committing: the outputs must keep their types */
  drt_shape keep[DRT_EW_MAX_OUTPUTS];
  for (int o = 0; o < gr->nout; o++) keep[o] = gr->outputs[o]->shape;
  st = drt_infer_node(g, nn);
  bool same = !st;
  for (int o = 0; o < gr->nout && same; o++)
    same = gr->outputs[o]->dtype == DRT_DTYPE_FLOAT32 && drt_shape_equal(&keep[o], &gr->outputs[o]->shape);
  if (!same) {
    /* undo: the old producers take their outputs back, the new node goes */
    char msg[512];
    snprintf(msg, sizeof msg, "%s", st ? drt_status_message(st) : "output types changed");
    drt_status_free(st);
    for (int o = 0; o < gr->nout; o++) {
      drt_value *y = gr->outputs[o];
      for (int i = 0; i < gr->nmem; i++)
        if (g->nodes[gr->mem[i]]->outputs[0] == y) y->producer = g->nodes[gr->mem[i]];
      y->producer_output = 0;
      y->dtype = DRT_DTYPE_FLOAT32;
      y->shape = keep[o];
    }
    nn->dead = true;
    decline_at(last, "the fused node does not validate: %s", msg);
    return DRT_OK;
  }
  drt_log(DRT_LOG_DEBUG, "elementwise-fuse: %s%s%d pointwise nodes -> %s '%s' (%d inputs, %d outputs, %d instructions)",
          anchor ? drt_op_name(anchor->op) : "", anchor ? " + " : "", gr->nmem, drt_op_name(op), nn->name, nin,
          gr->nout, b->ninsn);
  *out = nn;
  return DRT_OK;
}

/* A producer whose (smaller) output broadcasts into its consumer joins the consumer's group when
 * it is a group of its own, one output used only by that consumer and not a graph output: the
 * fused program recomputes it for every element of the consumer's shape (its inputs broadcast
 * into that shape too, numpy broadcasting composes). Besides saving a kernel and a round trip
 * through memory, this keeps e.g. `den + 1e-15` in fp32 registers instead of a half-precision
 * buffer where the epsilon would flush to zero (0/0 in Sana's linear attention). */
static bool broadcast_producer_joins(fuse_state *s, const drt_node *p, const drt_node *n) {
  int64_t pi = pos_of(s, p);
  if (pi < 0 || s->size[find(s, (int32_t)pi)] != 1 || p->num_outputs != 1) return false;
  const drt_value *y = p->outputs[0];
  if (drt_use_count(&s->uses, y) != 1 || drt_use_is_output(&s->uses, y)) return false;
  const drt_shape *a = &y->shape, *b = &n->outputs[0]->shape;
  if (a->rank > b->rank) return false;
  for (int i = 1; i <= a->rank; i++) {
    int64_t da = a->dims[a->rank - i], db = b->dims[b->rank - i];
    if (da != db && da != 1) return false;
  }
  /* transcendental producers are recomputed only a few times over */
  bool cheap = p->op == DRT_OP_ADD || p->op == DRT_OP_SUB || p->op == DRT_OP_MUL || p->op == DRT_OP_DIV ||
               p->op == DRT_OP_NEG || p->op == DRT_OP_ABS || p->op == DRT_OP_RELU || p->op == DRT_OP_MAX ||
               p->op == DRT_OP_MIN || p->op == DRT_OP_CLIP || p->op == DRT_OP_WHERE || p->op == DRT_OP_RECIPROCAL;
  int64_t na = drt_shape_numel(a), nb = drt_shape_numel(b);
  return na > 0 && (cheap || nb <= 8 * na);
}

drt_status drt_pass_elementwise_fuse(drt_graph *g, const drt_pass_ctx *ctx, bool *changed) {
  *changed = false;
  DRT_RETURN_IF_ERROR(drt_graph_topo_sort(g));
  fuse_state s;
  memset(&s, 0, sizeof s);
  s.g = g;
  s.n = g->num_nodes;
  if (s.n == 0) return DRT_OK;
  DRT_RETURN_IF_ERROR(drt_use_map_build(g, &s.uses));
  size_t ids = g->next_id ? g->next_id : 1;
  s.index_of = malloc(ids * sizeof *s.index_of);
  s.inside = calloc(ids, sizeof *s.inside);
  s.kind = calloc(s.n, 1);
  s.parent = malloc(s.n * sizeof *s.parent);
  s.next = malloc(s.n * sizeof *s.next);
  s.tail = malloc(s.n * sizeof *s.tail);
  s.size = malloc(s.n * sizeof *s.size);
  s.minpos = malloc(s.n * sizeof *s.minpos);
  s.stamp = calloc(s.n, sizeof *s.stamp);
  s.stack = malloc(s.n * sizeof *s.stack);
  builder *b = calloc(1, sizeof *b);
  group *gr = malloc(sizeof *gr);
  int32_t *roots = malloc(s.n * sizeof *roots);
  drt_node **replacement = malloc(s.n * sizeof *replacement);
  drt_node **order = malloc(2 * s.n * sizeof *order);
  if (b) b->vreg_of = calloc(ids, sizeof *b->vreg_of);
  drt_status st = DRT_OK;
  int64_t made = 0, epilogues = 0;
  if (!s.index_of || !s.inside || !s.kind || !s.parent || !s.next || !s.tail || !s.size || !s.minpos || !s.stamp ||
      !s.stack || !b || !b->vreg_of || !gr || !roots || !replacement || !order) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "elementwise fusion of %zu nodes", s.n);
    goto out;
  }
  s.num_ids = (uint32_t)ids;
  for (size_t i = 0; i < ids; i++) s.index_of[i] = -1;
  for (size_t i = 0; i < s.n; i++) s.index_of[g->nodes[i]->id] = (int64_t)i;
  /* 1. groups */
  for (size_t i = 0; i < s.n; i++) {
    drt_node *n = g->nodes[i];
    s.kind[i] = (uint8_t)fusable(n);
    s.parent[i] = -1;
    if (s.kind[i] == FK_NONE) continue;
    int32_t me = (int32_t)i;
    s.parent[i] = me;
    s.next[i] = -1;
    s.tail[i] = me;
    s.size[i] = 1;
    s.minpos[i] = me;
    for (int j = 0; j < n->num_inputs; j++) {
      drt_value *v = n->inputs[j];
      int64_t p = pos_of(&s, drt_producer_of(v));
      if (p < 0 || s.parent[p] < 0) continue;
      if (!drt_shape_equal(&g->nodes[p]->outputs[0]->shape, &n->outputs[0]->shape) &&
          !broadcast_producer_joins(&s, g->nodes[p], n))
        continue;
      int32_t rn = find(&s, me), rp = find(&s, (int32_t)p);
      if (rn == rp) continue;
      const char *why = NULL;
      if (!can_merge(&s, rn, rp, &why)) {
        drt_log(DRT_LOG_DEBUG, "elementwise-fuse: %s '%s' does not join the group of '%s': %s", drt_op_name(n->op),
                n->name, g->nodes[p]->name, why);
        continue;
      }
      merge(&s, rn, rp);
    }
  }
  /* 2.-3. finalize, pick epilogue anchors, rewrite (new nodes are appended; old ones only
     marked dead, so positions < s.n stay valid until the end) */
  size_t nroots = 0;
  for (size_t i = 0; i < s.n; i++)
    if (s.parent[i] >= 0 && find(&s, (int32_t)i) == (int32_t)i) roots[nroots++] = (int32_t)i;
  for (size_t i = 0; i < s.n; i++) replacement[i] = NULL;
  for (size_t ri = 0; ri < nroots && !st; ri++) {
    gr->nmem = 0;
    for (int32_t m = roots[ri]; m >= 0; m = s.next[m]) gr->mem[gr->nmem++] = m;
    for (int i = 1; i < gr->nmem; i++) /* ascending positions */
      for (int k = i; k > 0 && gr->mem[k - 1] > gr->mem[k]; k--) {
        int32_t t = gr->mem[k];
        gr->mem[k] = gr->mem[k - 1];
        gr->mem[k - 1] = t;
      }
    const char *why = NULL;
    if (!finalize(&s, gr, &why)) {
      if (gr->nmem > 1) decline_at(g->nodes[gr->mem[gr->nmem - 1]], "%s", why);
      continue;
    }
    pick_anchor(&s, gr);
    if (gr->anchor && gr->anchor->dead) gr->anchor = NULL; /* taken by an earlier group */
    /* a lone node stays itself, unless only a program can run it (SwiGLU has no kernel of its own) */
    if (gr->nmem < 2 && !gr->anchor && g->nodes[gr->mem[0]]->op != DRT_OP_SWIGLU) continue;
    drt_node *nn = NULL;
    st = rewrite(&s, gr, b, &nn);
    if (st || !nn) continue;
    int64_t slot = gr->anchor ? pos_of(&s, gr->anchor) : gr->mem[0];
    replacement[slot] = nn;
    for (int i = 0; i < gr->nmem; i++) g->nodes[gr->mem[i]]->dead = true;
    if (gr->anchor) {
      gr->anchor->dead = true;
      epilogues++;
    } else {
      made++;
    }
    *changed = true;
  }
  if (!st && *changed) {
    /* each fused node takes the slot of the first node it replaces */
    size_t k = 0;
    for (size_t i = 0; i < s.n; i++) {
      if (replacement[i]) order[k++] = replacement[i];
      if (!g->nodes[i]->dead) order[k++] = g->nodes[i];
    }
    /* nodes appended past s.n are the fused nodes (placed above) and rejected ones (dead) */
    memcpy(g->nodes, order, k * sizeof *order);
    g->num_nodes = k;
  }
  if (ctx && ctx->stats) {
    ctx->stats->fused_elementwise += made;
    ctx->stats->fused_gemm_epilogue += epilogues;
  }
out:
  if (!st && *changed) {
    drt_graph_compact(g);
    st = drt_graph_topo_sort(g);
  }
  if (!st)
    drt_log(DRT_LOG_INFO, "elementwise-fuse: %" PRId64 " drt.Elementwise, %" PRId64 " GEMM/Conv epilogues", made,
            epilogues);
  drt_use_map_free(&s.uses);
  free(s.index_of);
  free(s.inside);
  free(s.kind);
  free(s.parent);
  free(s.next);
  free(s.tail);
  free(s.size);
  free(s.minpos);
  free(s.stamp);
  free(s.stack);
  if (b) free(b->vreg_of);
  free(b);
  free(gr);
  free(roots);
  free(replacement);
  free(order);
  return st;
}
