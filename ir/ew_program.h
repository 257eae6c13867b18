/* Elementwise expression programs: the attribute that drt.Elementwise, drt.Gemm and drt.Conv
 * carry (passes/elementwise_fuse.c builds them; runtime/cpu/fused_elementwise.c runs them).
 *
 * A program is register bytecode over float32. It is evaluated independently for every element
 * of the node's output shape; a register holds one float per element (the CPU kernel keeps a
 * tile of 256 elements per register). Node attributes:
 *   program  INTS, 5 per instruction: op, d, a, b, c (meaning per op below)
 *   consts   FLOATS (optional): immediate values referenced by CONST and the parameter ops
 *
 *   LOAD   r[d] = program input a, broadcast (numpy rules) to the output shape
 *   CONST  r[d] = consts[a]
 *   STORE  program output d = r[a]
 *   unary  r[d] = f(r[a])                         NEG ABS SQRT RECIP EXP LOG ERF TANH SIGMOID RELU
 *                                                 SIN COS TAN ASIN ACOS ATAN SINH COSH FLOOR CEIL
 *                                                 ROUND SIGN GELU GELU_TANH SOFTPLUS SOFTSIGN MISH
 *                                                 HARD_SWISH NOT SILU (x * sigmoid(x)) ASINH
 *                                                 ACOSH ATANH
 *   param  r[d] = f(r[a]; consts[b], consts[c])   LEAKY_RELU(alpha) ELU(alpha) CELU(alpha)
 *                                                 SELU(alpha, gamma) HARD_SIGMOID(alpha, beta)
 *                                                 SWISH(alpha) THRESHOLDED_RELU(alpha)
 *                                                 SHRINK(bias, lambd)
 *   binary r[d] = r[a] op r[b]                    ADD SUB MUL DIV POW MAX MIN PRELU, and the
 *                                                 comparisons/logic EQ LT LE GT GE AND OR XOR that
 *                                                 give 1.0 (true) or 0.0 (false)
 *   WHERE  r[d] = r[a] != 0 ? r[b] : r[c]
 *   CLIP   r[d] = min(max(r[a], r[b]), r[c]); b or c may be -1 (no bound)
 *
 * Op numbers are stored in plans: new ops are appended to DRT_EW_OPS, never inserted.
 * Every op computes what the ONNX op of the same name computes on float32 in
 * runtime/cpu/elementwise.c (same approximations for exp, tanh and erf), so a fused group gives
 * the same values as its nodes run one by one.
 *
 * Validity (drt_ew_program_decode): registers < DRT_EW_MAX_REGS and read only after being
 * written; the destination of an op is none of its sources; input/const/output indices in
 * range; every output stored exactly once, and all STOREs come after every other instruction
 * (so an output buffer may share memory with a same-shape input: within a tile every input is
 * read before any output is written).
 *
 * Program inputs of each node kind:
 *   drt.Elementwise  node inputs 0..n-1, all float32, each broadcasting into the output shape;
 *                    node outputs 0..m-1 are the program outputs, all float32 of one shape:
 *                    attribute "shape" (INTS) when present, else the broadcast of the inputs.
 *   drt.Gemm         input 0 is the product alpha * op(A) op(B); inputs 1.. are node inputs 2..
 *   drt.Conv         input 0 is the convolution (bias included); inputs 1.. are node inputs 3..
 *                    Both have one output, the program's output 0 (identity without a program).
 * Thread-safe: pure functions. */
#ifndef DRT_IR_EW_PROGRAM_H
#define DRT_IR_EW_PROGRAM_H

#include "ir/graph.h"

#define DRT_EW_MAX_INSNS 256
#define DRT_EW_MAX_REGS 32
#define DRT_EW_MAX_INPUTS 32
#define DRT_EW_MAX_OUTPUTS 8
#define DRT_EW_MAX_CONSTS 256
#define DRT_EW_INSN_INTS 5

#define DRT_EW_OPS(X)                                                                     \
  X(LOAD, "load") X(CONST, "const") X(STORE, "store")                                     \
  X(NEG, "neg") X(ABS, "abs") X(SQRT, "sqrt") X(RECIP, "recip") X(EXP, "exp") X(LOG, "log") \
  X(ERF, "erf") X(TANH, "tanh") X(SIGMOID, "sigmoid") X(RELU, "relu") X(SIN, "sin")      \
  X(COS, "cos") X(TAN, "tan") X(ASIN, "asin") X(ACOS, "acos") X(ATAN, "atan")             \
  X(SINH, "sinh") X(COSH, "cosh") X(FLOOR, "floor") X(CEIL, "ceil") X(ROUND, "round")     \
  X(SIGN, "sign") X(GELU, "gelu") X(GELU_TANH, "gelu_tanh") X(SOFTPLUS, "softplus")       \
  X(SOFTSIGN, "softsign") X(MISH, "mish") X(HARD_SWISH, "hard_swish") X(NOT, "not")       \
  X(LEAKY_RELU, "leaky_relu") X(ELU, "elu") X(CELU, "celu") X(SELU, "selu")               \
  X(HARD_SIGMOID, "hard_sigmoid")                                                         \
  X(ADD, "add") X(SUB, "sub") X(MUL, "mul") X(DIV, "div") X(POW, "pow") X(MAX, "max")     \
  X(MIN, "min") X(PRELU, "prelu") X(EQ, "eq") X(LT, "lt") X(LE, "le") X(GT, "gt")         \
  X(GE, "ge") X(AND, "and") X(OR, "or") X(XOR, "xor")                                     \
  X(WHERE, "where") X(CLIP, "clip") X(SILU, "silu")                                     \
  X(ASINH, "asinh") X(ACOSH, "acosh") X(ATANH, "atanh") X(SWISH, "swish")                 \
  X(THRESHOLDED_RELU, "thresholded_relu") X(SHRINK, "shrink")

typedef enum drt_ew_op {
  DRT_EW_INVALID_ = 0,
#define DRT_EW_ENUM_(id, name) DRT_EW_##id,
  DRT_EW_OPS(DRT_EW_ENUM_)
#undef DRT_EW_ENUM_
  DRT_EW_OP_COUNT_
} drt_ew_op;

/* Operand shapes of an op. */
typedef enum drt_ew_form {
  DRT_EW_FORM_LOAD,    /* d reg, a input */
  DRT_EW_FORM_CONST,   /* d reg, a const */
  DRT_EW_FORM_STORE,   /* d output, a reg */
  DRT_EW_FORM_UNARY,   /* d, a regs */
  DRT_EW_FORM_PARAM,   /* d, a regs; b, c consts (c may be -1) */
  DRT_EW_FORM_BINARY,  /* d, a, b regs */
  DRT_EW_FORM_TERNARY, /* d, a, b, c regs (CLIP: b, c may be -1) */
} drt_ew_form;

typedef struct drt_ew_insn {
  uint8_t op;
  int16_t d, a, b, c;
} drt_ew_insn;

typedef struct drt_ew_program {
  int num_insns;
  int num_regs; /* highest register used + 1 */
  int num_inputs, num_outputs, num_consts;
  drt_ew_insn insns[DRT_EW_MAX_INSNS];
  const float *consts; /* points into the node's attribute (not copied) */
} drt_ew_program;

const char *drt_ew_op_name(drt_ew_op op);
drt_ew_form drt_ew_op_form(drt_ew_op op);

/* Decodes and validates the "program"/"consts" attributes of n against num_inputs program
 * inputs and num_outputs program outputs. A node without "program" decodes as the identity
 * (LOAD 0, STORE 0) when num_inputs >= 1 and num_outputs == 1. */
drt_status drt_ew_program_decode(const drt_node *n, int num_inputs, int num_outputs, drt_ew_program *out);

/* Checks that node inputs first.. are present, float32, and broadcast into out without
 * enlarging it. */
drt_status drt_ew_check_operands(const drt_node *n, int first, const drt_shape *out);

/* Shape inference of drt.Elementwise, drt.Gemm and drt.Conv (listed in ir/infer_fused.c). */
drt_status drt_infer_fused_elementwise(drt_graph *g, drt_node *n);
drt_status drt_infer_fused_gemm(drt_graph *g, drt_node *n);
drt_status drt_infer_fused_conv(drt_graph *g, drt_node *n);

/* The underlying ONNX op a drt.Gemm / drt.Conv node computes before its epilogue: a shallow
 * copy of n with op MatMul (no transposes, alpha 1, operands of any rank), Gemm (rank-2
 * operands with transA/transB/alpha) or Conv, and only the operands of that op (A, B; X, W,
 * B). Attributes are shared with n. */
drt_node drt_fused_base_node(const drt_node *n);

#endif
