/* Passes cse and elementwise-fuse, and the drt.Elementwise / drt.Gemm / drt.Conv kernels:
 * small graphs are canonicalized, run on the CPU executor, rewritten by one pass, verified,
 * checked for structure (op counts, connections) and run again; outputs must agree within
 * 1e-5 relative L2 (most are bit-identical). Negative cases must stay unfused. Also malformed
 * programs (the plan loader re-infers them) and in-place evaluation with a memory plan. */
#include "testutil.h"
#include "graph_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ew_program.h"
#include "ir/infer.h"
#include "passes/canonicalize.h"
#include "passes/cse.h"
#include "passes/elementwise_fuse.h"
#include "passes/memory_plan.h"
#include "runtime/cpu/ew_exec.h"
#include "runtime/cpu/executor.h"

/* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) the way torch exports it */
static drt_value *gelu_tanh_decomposed(tg *t, drt_value *x) {
  drt_value *x3 = op2(t, DRT_OP_MUL, x, op2(t, DRT_OP_MUL, x, x));
  drt_value *inner = op2(t, DRT_OP_ADD, x, op2(t, DRT_OP_MUL, scalar(t, 0.044715f), x3));
  drt_value *th = op1(t, DRT_OP_TANH, op2(t, DRT_OP_MUL, scalar(t, 0.7978845608f), inner));
  drt_value *y = op2(t, DRT_OP_MUL, x, op2(t, DRT_OP_ADD, scalar(t, 1.0f), th));
  return op2(t, DRT_OP_MUL, scalar(t, 0.5f), y);
}

/* x * 0.5 * (1 + erf(x / sqrt 2)) */
static drt_value *gelu_erf_decomposed(tg *t, drt_value *x) {
  drt_value *e = op1(t, DRT_OP_ERF, op2(t, DRT_OP_DIV, x, scalar(t, 1.4142135f)));
  drt_value *y = op2(t, DRT_OP_MUL, x, op2(t, DRT_OP_ADD, e, scalar(t, 1.0f)));
  return op2(t, DRT_OP_MUL, y, scalar(t, 0.5f));
}

/* How many instructions of op `o` the program of fused node n has. */
static int program_ops(const drt_node *n, drt_ew_op o) {
  int64_t cnt = 0;
  const int64_t *code = drt_node_attr_ints(n, "program", &cnt);
  int c = 0;
  for (int64_t i = 0; i + DRT_EW_INSN_INTS <= cnt; i += DRT_EW_INSN_INTS) c += code[i] == o;
  return c;
}

static drt_pass_stats g_stats;

static bool pass_and_compare_tol(tg *t, drt_pass_fn pass, bool plan, double tol) {
  return tg_pass_compare(t, pass, plan, tol, &g_stats);
}

static bool pass_and_compare(tg *t, drt_pass_fn pass) { return pass_and_compare_tol(t, pass, false, 1e-5); }

/* ================================ elementwise groups ====================================== */

/* y = x * sigmoid(x) + r: one drt.Elementwise with two inputs. */
static void test_silu_residual(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 1);
  int64_t d[3] = {2, 37, 19};
  drt_value *x = input(&t, "x", 3, d, -4, 4), *r = input(&t, "r", 3, d, -1, 1);
  drt_value *y = op2(&t, DRT_OP_ADD, op2(&t, DRT_OP_MUL, x, op1(&t, DRT_OP_SIGMOID, x)), r);
  DRT_ASSERT_OK(drt_graph_add_output(t.g, y));
  assert_true(pass_and_compare(&t, drt_pass_elementwise_fuse));
  assert_int_equal(t.g->num_nodes, 1);
  drt_node *n = find_op(t.g, DRT_OP_FUSED_ELEMENTWISE);
  assert_non_null(n);
  assert_int_equal(n->num_inputs, 2);
  assert_ptr_equal(n->outputs[0], y); /* the output keeps its value (and name) */
  assert_int_equal(program_ops(n, DRT_EW_SILU), 1); /* x * sigmoid(x) recognized */
  assert_int_equal(program_ops(n, DRT_EW_SIGMOID), 0);
  assert_int_equal(g_stats.fused_elementwise, 1);
  assert_int_equal(g_stats.fused_gemm_epilogue, 0);
  tg_free(&t);
}

/* Against a naive reference: decomposed erf GELU then a scale and a clip, with broadcast
 * operands along every kind of axis ([C,1,1] per channel, [W] innermost, scalar). */
static void test_gelu_erf_broadcast_reference(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 2);
  const int64_t N = 2, C = 5, H = 3, W = 70;
  drt_value *x = input(&t, "x", 4, (int64_t[]){N, C, H, W}, -3, 3);
  float ch[5] = {0.5f, -1.0f, 2.0f, 1.5f, 0.25f};
  drt_value *s = cst_f(&t, 3, (int64_t[]){C, 1, 1}, ch);
  drt_value *bw = input(&t, "bw", 1, (int64_t[]){W}, -1, 1);
  drt_value *g = gelu_erf_decomposed(&t, x);
  drt_value *y = op2(&t, DRT_OP_ADD, op2(&t, DRT_OP_MUL, g, s), bw);
  y = op(&t, DRT_OP_CLIP, 3, y, scalar(&t, -1.0f), scalar(&t, 2.5f));
  DRT_ASSERT_OK(drt_graph_add_output(t.g, y));
  assert_true(pass_and_compare(&t, drt_pass_elementwise_fuse));
  assert_int_equal(t.g->num_nodes, 1);
  assert_int_equal(count_op(t.g, DRT_OP_FUSED_ELEMENTWISE), 1);
  drt_node *n = find_op(t.g, DRT_OP_FUSED_ELEMENTWISE);
  assert_int_equal(program_ops(n, DRT_EW_GELU), 1); /* the erf chain became one op */
  assert_int_equal(program_ops(n, DRT_EW_ERF), 0);
  assert_int_equal(program_ops(n, DRT_EW_CLIP), 1);
  drt_tensor out[1];
  run(&t, out);
  const float *xd = t.in[0].data, *bd = t.in[1].data, *yd = out[0].data;
  float *ref = malloc((size_t)(N * C * H * W) * sizeof(float));
  assert_non_null(ref);
  for (int64_t i = 0; i < N * C * H * W; i++) {
    int64_t c = (i / (H * W)) % C, w = i % W;
    double v = xd[i];
    double gv = v * 0.5 * (1.0 + erf(v / 1.4142135));
    double r = gv * ch[c] + bd[w];
    ref[i] = (float)(r < -1 ? -1 : r > 2.5 ? 2.5 : r);
  }
  assert_true(drt_test_rel_l2(yd, ref, (size_t)(N * C * H * W)) <= 1e-5);
  free(ref);
  free(out[0].data);
  tg_free(&t);
}

/* Short rows: [N, C, 2, 2] with a per-channel operand runs in gather mode; a scalar constant
 * of rank 2 enlarges a rank-1 operand's rank (the fused node records its output shape). */
static void test_broadcast_gather_and_rank(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 3);
  drt_value *x = input(&t, "x", 4, (int64_t[]){3, 6, 2, 2}, -2, 2);
  drt_value *c = input(&t, "c", 3, (int64_t[]){6, 1, 1}, 0.5f, 2);
  drt_value *y = op2(&t, DRT_OP_SUB, op2(&t, DRT_OP_MUL, x, c), op1(&t, DRT_OP_EXP, c));
  drt_value *v = input(&t, "v", 1, (int64_t[]){9}, -2, 2);
  float one = 3.0f;
  drt_value *w = op2(&t, DRT_OP_MUL, op1(&t, DRT_OP_ABS, v), cst_f(&t, 2, (int64_t[]){1, 1}, &one));
  w = op1(&t, DRT_OP_SQRT, w);
  DRT_ASSERT_OK(drt_graph_add_output(t.g, y));
  DRT_ASSERT_OK(drt_graph_add_output(t.g, w));
  assert_true(pass_and_compare(&t, drt_pass_elementwise_fuse));
  /* Exp(c) has c's shape, not the group's: it stays out; Mul+Sub fuse; Abs+Mul+Sqrt fuse */
  assert_int_equal(count_op(t.g, DRT_OP_FUSED_ELEMENTWISE), 2);
  assert_int_equal(count_op(t.g, DRT_OP_EXP), 1);
  assert_int_equal(w->shape.rank, 2);
  assert_int_equal(w->shape.dims[1], 9);
  tg_free(&t);
}

/* A member used outside the group becomes a second output; its consumer (a MatMul) stays. */
static void test_multi_output(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 4);
  drt_value *x = input(&t, "x", 2, (int64_t[]){8, 8}, -1, 1), *z = input(&t, "z", 2, (int64_t[]){8, 8}, -1, 1);
  drt_value *a = op2(&t, DRT_OP_MUL, x, z);
  drt_value *b = op1(&t, DRT_OP_TANH, a);
  drt_value *c = op2(&t, DRT_OP_ADD, b, op1(&t, DRT_OP_NEG, a));
  drt_value *m = op2(&t, DRT_OP_MATMUL, b, cst_rand(&t, 2, (int64_t[]){8, 3}, -1, 1));
  DRT_ASSERT_OK(drt_graph_add_output(t.g, c));
  DRT_ASSERT_OK(drt_graph_add_output(t.g, m));
  assert_true(pass_and_compare(&t, drt_pass_elementwise_fuse));
  drt_node *n = find_op(t.g, DRT_OP_FUSED_ELEMENTWISE);
  assert_non_null(n);
  assert_int_equal(n->num_outputs, 2);
  assert_int_equal(count_op(t.g, DRT_OP_MATMUL), 1);
  assert_int_equal(count_op(t.g, DRT_OP_TANH), 0);
  tg_free(&t);
}

/* Comparisons and Where stay inside (bool values are 0/1 in registers); Max/Min/Sum/Mean
 * variadic; Pow special exponents; LeakyRelu/HardSigmoid/Selu parameters. */
static void test_ops_coverage(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 5);
  int64_t d[2] = {7, 33};
  drt_value *x = input(&t, "x", 2, d, -3, 3), *y = input(&t, "y", 2, d, -3, 3);
  drt_value *gt = op2(&t, DRT_OP_GREATER, x, y);
  drt_value *w = op(&t, DRT_OP_WHERE, 3, gt, op1(&t, DRT_OP_RELU, x), op2(&t, DRT_OP_POW, y, scalar(&t, 2.0f)));
  drt_value *mx = op(&t, DRT_OP_MAX, 3, w, x, y);
  drt_value *mean = op(&t, DRT_OP_MEAN, 3, mx, x, y);
  drt_value *lr = op1(&t, DRT_OP_LEAKY_RELU, mean);
  attr_f(&t, lr, "alpha", 0.2f);
  drt_value *hs = op1(&t, DRT_OP_HARD_SIGMOID, lr);
  drt_value *se = op1(&t, DRT_OP_SELU, op2(&t, DRT_OP_SUB, hs, x));
  drt_value *p3 = op2(&t, DRT_OP_POW, op1(&t, DRT_OP_ABS, se), scalar(&t, 0.7f));
  drt_value *ge = op1(&t, DRT_OP_GELU, op2(&t, DRT_OP_MIN, p3, y));
  attr_s(&t, ge, "approximate", "tanh");
  drt_value *out = op(&t, DRT_OP_SUM, 3, ge, op1(&t, DRT_OP_SOFTPLUS, x), op1(&t, DRT_OP_MISH, y));
  DRT_ASSERT_OK(drt_graph_add_output(t.g, out));
  assert_true(pass_and_compare(&t, drt_pass_elementwise_fuse));
  assert_int_equal(t.g->num_nodes, 1);
  assert_int_equal(count_op(t.g, DRT_OP_FUSED_ELEMENTWISE), 1);
  tg_free(&t);
}

/* The ops added later (Swish, ThresholdedRelu, Shrink with their attributes; Asinh, Acosh,
 * Atanh) fuse into one program that gives what the nodes give one by one. */
static void test_ops_coverage_late(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 15);
  int64_t d[2] = {9, 31};
  drt_value *x = input(&t, "x", 2, d, -4, 4), *y = input(&t, "y", 2, d, -0.9f, 0.9f);
  drt_value *sw = op1(&t, DRT_OP_SWISH, x);
  attr_f(&t, sw, "alpha", 0.75f);
  drt_value *tr = op1(&t, DRT_OP_THRESHOLDED_RELU, op2(&t, DRT_OP_SUB, sw, y));
  attr_f(&t, tr, "alpha", 0.3f);
  drt_value *sh = op1(&t, DRT_OP_SHRINK, op2(&t, DRT_OP_ADD, tr, x));
  attr_f(&t, sh, "bias", 0.25f);
  attr_f(&t, sh, "lambd", 0.8f);
  drt_value *ac = op1(&t, DRT_OP_ACOSH, op2(&t, DRT_OP_ADD, op1(&t, DRT_OP_ABS, sh), scalar(&t, 1.0f)));
  drt_value *out = op(&t, DRT_OP_SUM, 3, ac, op1(&t, DRT_OP_ASINH, x), op1(&t, DRT_OP_ATANH, y));
  DRT_ASSERT_OK(drt_graph_add_output(t.g, out));
  assert_true(pass_and_compare(&t, drt_pass_elementwise_fuse));
  assert_int_equal(t.g->num_nodes, 1);
  drt_node *n = find_op(t.g, DRT_OP_FUSED_ELEMENTWISE);
  assert_non_null(n);
  assert_int_equal(program_ops(n, DRT_EW_SWISH), 1);
  assert_int_equal(program_ops(n, DRT_EW_THRESHOLDED_RELU), 1);
  assert_int_equal(program_ops(n, DRT_EW_SHRINK), 1);
  assert_int_equal(program_ops(n, DRT_EW_ATANH), 1);
  tg_free(&t);
}

/* ================================ epilogues ================================================ */

/* MatMul + bias + decomposed tanh GELU -> one drt.Gemm; then a second MatMul with bias, a gate
 * and a residual add (the DiT block tail) -> another drt.Gemm. Large enough to split. */
static void test_matmul_gelu_residual(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 6);
  const int64_t B = 2, S = 67, D = 48, F = 192;
  drt_value *x = input(&t, "x", 3, (int64_t[]){B, S, D}, -1, 1);
  drt_value *gate = input(&t, "gate", 3, (int64_t[]){B, 1, D}, -1, 1);
  drt_value *h = op2(&t, DRT_OP_MATMUL, x, cst_rand(&t, 2, (int64_t[]){D, F}, -0.3f, 0.3f));
  h = op2(&t, DRT_OP_ADD, cst_rand(&t, 1, (int64_t[]){F}, -0.5f, 0.5f), h);
  h = gelu_tanh_decomposed(&t, h);
  drt_value *o = op2(&t, DRT_OP_MATMUL, h, cst_rand(&t, 2, (int64_t[]){F, D}, -0.2f, 0.2f));
  o = op2(&t, DRT_OP_ADD, o, cst_rand(&t, 1, (int64_t[]){D}, -0.5f, 0.5f));
  drt_value *y = op2(&t, DRT_OP_ADD, x, op2(&t, DRT_OP_MUL, gate, o));
  DRT_ASSERT_OK(drt_graph_add_output(t.g, y));
  assert_true(pass_and_compare(&t, drt_pass_elementwise_fuse));
  assert_int_equal(t.g->num_nodes, 2);
  assert_int_equal(count_op(t.g, DRT_OP_FUSED_GEMM), 2);
  assert_int_equal(g_stats.fused_gemm_epilogue, 2);
  assert_int_equal(program_ops(t.g->nodes[0], DRT_EW_GELU_TANH), 1);
  assert_int_equal(program_ops(t.g->nodes[0], DRT_EW_TANH), 0);
  assert_int_equal(program_ops(t.g->nodes[0], DRT_EW_MUL), 0);
  drt_node *last = t.g->nodes[1];
  assert_int_equal(last->op, DRT_OP_FUSED_GEMM);
  assert_int_equal(last->num_inputs, 5); /* A, B, bias, gate, residual */
  assert_ptr_equal(last->inputs[0], t.g->nodes[0]->outputs[0]);
  assert_ptr_equal(last->outputs[0], y);
  tg_free(&t);
}

/* Gemm(transB, alpha, beta, C) + SiLU -> drt.Gemm; batched MatMul with broadcast batch + Add. */
static void test_gemm_and_batched(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 7);
  drt_value *a = input(&t, "a", 2, (int64_t[]){5, 24}, -1, 1);
  drt_value *g = op(&t, DRT_OP_GEMM, 3, a, cst_rand(&t, 2, (int64_t[]){40, 24}, -1, 1),
                    cst_rand(&t, 2, (int64_t[]){1, 40}, -1, 1));
  attr_i(&t, g, "transB", 1);
  attr_f(&t, g, "alpha", 0.5f);
  attr_f(&t, g, "beta", 2.0f);
  drt_value *s = op2(&t, DRT_OP_MUL, g, op1(&t, DRT_OP_SIGMOID, g));
  drt_value *p = input(&t, "p", 4, (int64_t[]){2, 3, 9, 16}, -1, 1);
  drt_value *q = input(&t, "q", 3, (int64_t[]){3, 16, 11}, -1, 1);
  drt_value *m = op2(&t, DRT_OP_ADD, op2(&t, DRT_OP_MATMUL, p, q), cst_rand(&t, 1, (int64_t[]){11}, -1, 1));
  DRT_ASSERT_OK(drt_graph_add_output(t.g, s));
  DRT_ASSERT_OK(drt_graph_add_output(t.g, m));
  assert_true(pass_and_compare(&t, drt_pass_elementwise_fuse));
  assert_int_equal(t.g->num_nodes, 2);
  assert_int_equal(count_op(t.g, DRT_OP_FUSED_GEMM), 2);
  drt_node *n = t.g->nodes[0]->outputs[0] == s ? t.g->nodes[0] : t.g->nodes[1];
  assert_int_equal(drt_node_attr_int(n, "transB", 0), 1);
  assert_int_equal(n->num_inputs, 3); /* A, B, C (beta lives in the program) */
  tg_free(&t);
}

/* Long reductions (K > 512) and narrow outputs (N < 8) take the BLAS path, split over the
 * pool by rows or columns, with the epilogue on each block; a transposed A too. */
static void test_gemm_blas_paths(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 16);
  drt_value *a = input(&t, "a", 2, (int64_t[]){64, 600}, -1, 1);
  drt_value *m1 = op2(&t, DRT_OP_MATMUL, a, cst_rand(&t, 2, (int64_t[]){600, 40}, -0.1f, 0.1f));
  drt_value *y1 = op1(&t, DRT_OP_RELU, op2(&t, DRT_OP_ADD, m1, cst_rand(&t, 1, (int64_t[]){40}, -1, 1)));
  drt_value *b = input(&t, "b", 2, (int64_t[]){700, 30}, -1, 1);
  drt_value *m2 = op2(&t, DRT_OP_MATMUL, b, cst_rand(&t, 2, (int64_t[]){30, 5}, -1, 1));
  drt_value *y2 = op1(&t, DRT_OP_TANH, op2(&t, DRT_OP_MUL, m2, scalar(&t, 0.3f)));
  drt_value *c = input(&t, "c", 2, (int64_t[]){24, 33}, -1, 1);
  drt_value *g = op(&t, DRT_OP_GEMM, 2, c, cst_rand(&t, 2, (int64_t[]){24, 300}, -1, 1), NULL);
  attr_i(&t, g, "transA", 1);
  drt_value *y3 = op1(&t, DRT_OP_SIGMOID, g);
  DRT_ASSERT_OK(drt_graph_add_output(t.g, y1));
  DRT_ASSERT_OK(drt_graph_add_output(t.g, y2));
  DRT_ASSERT_OK(drt_graph_add_output(t.g, y3));
  assert_true(pass_and_compare(&t, drt_pass_elementwise_fuse));
  assert_int_equal(count_op(t.g, DRT_OP_FUSED_GEMM), 3);
  assert_int_equal(t.g->num_nodes, 3);
  tg_free(&t);
}

/* Conv + per-channel add + Relu + residual -> drt.Conv; a Conv without bias too. */
static void test_conv_epilogue(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 8);
  drt_value *x = input(&t, "x", 4, (int64_t[]){1, 6, 10, 12}, -1, 1);
  drt_value *temb = input(&t, "temb", 4, (int64_t[]){1, 8, 1, 1}, -1, 1);
  drt_value *c = op(&t, DRT_OP_CONV, 3, x, cst_rand(&t, 4, (int64_t[]){8, 6, 3, 3}, -0.3f, 0.3f),
                    cst_rand(&t, 1, (int64_t[]){8}, -1, 1));
  attr_ints(&t, c, "pads", 4, (int64_t[]){1, 1, 1, 1});
  drt_value *r = op(&t, DRT_OP_CONV, 2, x, cst_rand(&t, 4, (int64_t[]){8, 6, 1, 1}, -1, 1), NULL);
  drt_value *y = op2(&t, DRT_OP_ADD, op1(&t, DRT_OP_RELU, op2(&t, DRT_OP_ADD, c, temb)), r);
  DRT_ASSERT_OK(drt_graph_add_output(t.g, y));
  assert_true(pass_and_compare(&t, drt_pass_elementwise_fuse));
  assert_int_equal(t.g->num_nodes, 2);
  assert_int_equal(count_op(t.g, DRT_OP_FUSED_CONV), 1);
  assert_int_equal(count_op(t.g, DRT_OP_CONV), 1); /* the residual branch is the other input */
  drt_node *n = find_op(t.g, DRT_OP_FUSED_CONV);
  assert_int_equal(n->num_inputs, 5); /* X, W, B, temb, residual */
  int64_t cnt = 0;
  const int64_t *pads = drt_node_attr_ints(n, "pads", &cnt);
  assert_int_equal(cnt, 4);
  assert_int_equal(pads[0], 1);
  tg_free(&t);
}

/* A MatMul whose output is also used elsewhere (or is a graph output) is not absorbed. */
static void test_epilogue_negative(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 9);
  drt_value *x = input(&t, "x", 2, (int64_t[]){6, 10}, -1, 1);
  drt_value *m = op2(&t, DRT_OP_MATMUL, x, cst_rand(&t, 2, (int64_t[]){10, 10}, -1, 1));
  drt_value *r = op1(&t, DRT_OP_RELU, m);
  drt_value *e = op1(&t, DRT_OP_EXP, m);
  DRT_ASSERT_OK(drt_graph_add_output(t.g, r));
  DRT_ASSERT_OK(drt_graph_add_output(t.g, e));
  DRT_ASSERT_OK(drt_graph_add_output(t.g, m));
  assert_false(pass_and_compare(&t, drt_pass_elementwise_fuse));
  assert_int_equal(count_op(t.g, DRT_OP_MATMUL), 1);
  assert_int_equal(count_op(t.g, DRT_OP_FUSED_GEMM), 0);
  tg_free(&t);
}

/* ================================ negative cases ========================================== */

static void test_negative_groups(void **state) {
  (void)state;
  /* integers stay unfused */
  tg t;
  tg_init(&t, 10);
  drt_value *i = input_i32(&t, "i", 1, (int64_t[]){16});
  drt_value *j = op2(&t, DRT_OP_MUL, op2(&t, DRT_OP_ADD, i, i), i);
  DRT_ASSERT_OK(drt_graph_add_output(t.g, j));
  assert_false(pass_and_compare(&t, drt_pass_elementwise_fuse));
  assert_int_equal(t.g->num_nodes, 2);
  tg_free(&t);
  /* a single pointwise node is left alone */
  tg_init(&t, 11);
  drt_value *x = input(&t, "x", 1, (int64_t[]){16}, -1, 1);
  DRT_ASSERT_OK(drt_graph_add_output(t.g, op1(&t, DRT_OP_RELU, x)));
  assert_false(pass_and_compare(&t, drt_pass_elementwise_fuse));
  assert_int_equal(count_op(t.g, DRT_OP_RELU), 1);
  tg_free(&t);
  /* a bool value used outside the group keeps its comparison out */
  tg_init(&t, 12);
  x = input(&t, "x", 1, (int64_t[]){16}, -1, 1);
  drt_value *gt = op2(&t, DRT_OP_GREATER, op1(&t, DRT_OP_NEG, x), scalar(&t, 0.0f));
  DRT_ASSERT_OK(drt_graph_add_output(t.g, gt));
  assert_false(pass_and_compare(&t, drt_pass_elementwise_fuse));
  assert_int_equal(count_op(t.g, DRT_OP_GREATER), 1);
  tg_free(&t);
  /* a smaller producer used elsewhere too stays out: sigmoid of a [1,8] vector scales a [4,8]
     tensor and is also a graph output */
  tg_init(&t, 13);
  x = input(&t, "x", 2, (int64_t[]){4, 8}, -1, 1);
  drt_value *v = input(&t, "v", 2, (int64_t[]){1, 8}, -1, 1);
  drt_value *sg = op1(&t, DRT_OP_SIGMOID, v);
  DRT_ASSERT_OK(drt_graph_add_output(t.g, op2(&t, DRT_OP_MUL, x, sg)));
  DRT_ASSERT_OK(drt_graph_add_output(t.g, sg));
  assert_false(pass_and_compare(&t, drt_pass_elementwise_fuse));
  tg_free(&t);
  /* ... and joins (recomputed per element) when the group is its only user; a transcendental
     producer broadcast more than 8 times over stays out */
  tg_init(&t, 13);
  x = input(&t, "x", 2, (int64_t[]){4, 8}, -1, 1);
  v = input(&t, "v", 2, (int64_t[]){1, 8}, -1, 1);
  drt_value *v2 = input(&t, "v2", 2, (int64_t[]){1, 1}, 0.5f, 1);
  drt_value *den = op2(&t, DRT_OP_ADD, v2, scalar(&t, 1e-3f));
  drt_value *mixed = op2(&t, DRT_OP_DIV, op2(&t, DRT_OP_MUL, x, op1(&t, DRT_OP_SIGMOID, v)), den);
  DRT_ASSERT_OK(drt_graph_add_output(t.g, op2(&t, DRT_OP_MUL, mixed, op1(&t, DRT_OP_EXP, v2))));
  assert_true(pass_and_compare(&t, drt_pass_elementwise_fuse));
  assert_int_equal(count_op(t.g, DRT_OP_SIGMOID), 0);
  assert_int_equal(count_op(t.g, DRT_OP_ADD), 0);
  assert_int_equal(count_op(t.g, DRT_OP_EXP), 1); /* [1,1] into [4,8]: 32 times over */
  assert_int_equal(count_op(t.g, DRT_OP_FUSED_ELEMENTWISE), 1);
  tg_free(&t);
  /* no cycle: Exp feeds a MatMul that feeds the Add that also reads Exp */
  tg_init(&t, 14);
  x = input(&t, "x", 2, (int64_t[]){5, 5}, -1, 1);
  drt_value *e = op1(&t, DRT_OP_EXP, op2(&t, DRT_OP_MUL, x, scalar(&t, 0.5f)));
  drt_value *m = op2(&t, DRT_OP_MATMUL, e, cst_rand(&t, 2, (int64_t[]){5, 5}, -1, 1));
  DRT_ASSERT_OK(drt_graph_add_output(t.g, op2(&t, DRT_OP_ADD, e, m)));
  assert_true(pass_and_compare(&t, drt_pass_elementwise_fuse));
  assert_int_equal(count_op(t.g, DRT_OP_FUSED_ELEMENTWISE), 1); /* Mul + Exp */
  assert_int_equal(count_op(t.g, DRT_OP_FUSED_GEMM), 1);        /* MatMul + Add */
  assert_int_equal(t.g->num_nodes, 2);
  tg_free(&t);
}

/* ================================ memory plan / in place ================================== */

/* The group's input dies at the group: the memory plan gives the output the input's block and
 * the kernel must read each tile before writing it. Several tiles, two threads. */
static void test_in_place(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 15);
  drt_value *x = input(&t, "x", 2, (int64_t[]){37, 301}, -2, 2);
  drt_value *e = op1(&t, DRT_OP_EXP, x);      /* an intermediate of the group's shape */
  drt_value *l = op1(&t, DRT_OP_LOG, op1(&t, DRT_OP_ABS, x)); /* separate so e stays unfused */
  drt_value *z = op2(&t, DRT_OP_MATMUL, e, cst_rand(&t, 2, (int64_t[]){301, 301}, -0.1f, 0.1f));
  drt_value *g = op2(&t, DRT_OP_SUB, op2(&t, DRT_OP_MUL, z, scalar(&t, 0.5f)), op1(&t, DRT_OP_TANH, z));
  drt_value *y = op2(&t, DRT_OP_DIV, g, op2(&t, DRT_OP_ADD, l, scalar(&t, 9.0f)));
  DRT_ASSERT_OK(drt_graph_add_output(t.g, op1(&t, DRT_OP_RELU, op1(&t, DRT_OP_FLOOR, op2(&t, DRT_OP_MATMUL, y,
                                                 cst_rand(&t, 2, (int64_t[]){301, 4}, -1, 1))))));
  assert_true(pass_and_compare_tol(&t, drt_pass_elementwise_fuse, true, 1e-5));
  assert_true(t.g->mem_planned);
  tg_free(&t);
  /* direct: an exec whose output buffer is its input buffer */
  drt_node n;
  memset(&n, 0, sizeof n);
  int64_t code[] = {DRT_EW_LOAD, 0, 0, -1, -1, DRT_EW_LOAD, 1, 1, -1, -1, DRT_EW_MUL, 2, 0, 0, -1,
                    DRT_EW_SUB, 3, 2, 1, -1, DRT_EW_STORE, 0, 3, -1, -1};
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = "program";
  a.type = DRT_ATTR_INTS;
  a.ints = code;
  a.count = 25;
  n.attrs = &a;
  n.num_attrs = 1;
  drt_ew_program p;
  DRT_ASSERT_OK(drt_ew_program_decode(&n, 2, 1, &p));
  const int64_t rows = 13, cols = 1000;
  float *buf = malloc((size_t)(rows * cols) * sizeof(float)), *ref = malloc((size_t)(rows * cols) * sizeof(float));
  float bias[1000];
  assert_non_null(buf);
  assert_non_null(ref);
  drt_test_rng rng = {99};
  drt_test_fill(&rng, buf, (size_t)(rows * cols), -2, 2);
  drt_test_fill(&rng, bias, 1000, -1, 1);
  for (int64_t i = 0; i < rows * cols; i++) ref[i] = buf[i] * buf[i] - bias[i % cols];
  drt_tensor in[2] = {{DRT_DTYPE_FLOAT32, drt_test_shape(2, (int64_t[]){rows, cols}), buf},
                      {DRT_DTYPE_FLOAT32, drt_test_shape(1, (int64_t[]){cols}), bias}};
  float *outs[1] = {buf};
  drt_ew_exec ex;
  DRT_ASSERT_OK(drt_ew_exec_prepare(&ex, &p, &in[0].shape, in, outs));
  drt_threadpool *pool;
  DRT_ASSERT_OK(drt_threadpool_create(2, &pool));
  drt_cpu_ctx ctx = {pool, 2};
  drt_ew_exec_run(&ctx, &ex);
  drt_threadpool_destroy(pool);
  assert_memory_equal(buf, ref, (size_t)(rows * cols) * sizeof(float));
  free(buf);
  free(ref);
}

/* ================================ malformed programs ====================================== */

static drt_status decode_ints(const int64_t *code, int64_t count, int nin, int nout) {
  drt_node n;
  memset(&n, 0, sizeof n);
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = "program";
  a.type = DRT_ATTR_INTS;
  a.ints = (int64_t *)code;
  a.count = count;
  n.attrs = &a;
  n.num_attrs = 1;
  drt_ew_program p;
  return drt_ew_program_decode(&n, nin, nout, &p);
}

static void test_program_errors(void **state) {
  (void)state;
  const int64_t ok[] = {DRT_EW_LOAD, 0, 0, -1, -1, DRT_EW_EXP, 1, 0, -1, -1, DRT_EW_STORE, 0, 1, -1, -1};
  DRT_ASSERT_OK(decode_ints(ok, 15, 1, 1));
  DRT_ASSERT_ERROR(decode_ints(ok, 14, 1, 1), DRT_STATUS_INVALID_ARGUMENT, "multiple of 5");
  DRT_ASSERT_ERROR(decode_ints(ok, 15, 0, 1), DRT_STATUS_INVALID_ARGUMENT, "input 0 is out of range");
  DRT_ASSERT_ERROR(decode_ints(ok, 15, 1, 2), DRT_STATUS_INVALID_ARGUMENT, "never stores output 1");
  const int64_t unread[] = {DRT_EW_EXP, 1, 0, -1, -1, DRT_EW_STORE, 0, 1, -1, -1};
  DRT_ASSERT_ERROR(decode_ints(unread, 10, 1, 1), DRT_STATUS_INVALID_ARGUMENT, "before it is written");
  const int64_t self[] = {DRT_EW_LOAD, 0, 0, -1, -1, DRT_EW_EXP, 0, 0, -1, -1, DRT_EW_STORE, 0, 0, -1, -1};
  DRT_ASSERT_ERROR(decode_ints(self, 15, 1, 1), DRT_STATUS_INVALID_ARGUMENT, "which it also reads");
  const int64_t late[] = {DRT_EW_LOAD, 0, 0, -1, -1, DRT_EW_STORE, 0, 0, -1, -1, DRT_EW_EXP, 1, 0, -1, -1};
  DRT_ASSERT_ERROR(decode_ints(late, 15, 1, 1), DRT_STATUS_INVALID_ARGUMENT, "stores must come last");
  const int64_t twice[] = {DRT_EW_LOAD, 0, 0, -1, -1, DRT_EW_STORE, 0, 0, -1, -1, DRT_EW_STORE, 0, 0, -1, -1};
  DRT_ASSERT_ERROR(decode_ints(twice, 15, 1, 1), DRT_STATUS_INVALID_ARGUMENT, "stored twice");
  const int64_t badop[] = {77, 0, 0, -1, -1, DRT_EW_STORE, 0, 0, -1, -1};
  DRT_ASSERT_ERROR(decode_ints(badop, 10, 1, 1), DRT_STATUS_INVALID_ARGUMENT, "unknown op");
  const int64_t badreg[] = {DRT_EW_LOAD, 40, 0, -1, -1, DRT_EW_STORE, 0, 40, -1, -1};
  DRT_ASSERT_ERROR(decode_ints(badreg, 10, 1, 1), DRT_STATUS_INVALID_ARGUMENT, "register 40 is out of range");
  const int64_t badconst[] = {DRT_EW_CONST, 0, 3, -1, -1, DRT_EW_STORE, 0, 0, -1, -1};
  DRT_ASSERT_ERROR(decode_ints(badconst, 10, 1, 1), DRT_STATUS_INVALID_ARGUMENT, "const 3 is out of range");
  /* inference of a drt.Elementwise node: operand that does not broadcast into the shape */
  drt_graph *g;
  DRT_ASSERT_OK(drt_graph_create(&g));
  drt_shape s1 = drt_test_shape(1, (int64_t[]){5}), s2 = drt_test_shape(1, (int64_t[]){4});
  drt_value *a = drt_graph_add_value(g, "a", DRT_DTYPE_FLOAT32, &s1);
  drt_value *b = drt_graph_add_value(g, "b", DRT_DTYPE_FLOAT32, &s2);
  drt_value *y = drt_graph_add_value(g, "y", DRT_DTYPE_UNDEFINED, NULL);
  drt_value *ins[2] = {a, b};
  drt_node *n;
  DRT_ASSERT_OK(drt_graph_add_node(g, DRT_OP_FUSED_ELEMENTWISE, "f", ins, 2, &y, 1, &n));
  drt_attr at;
  memset(&at, 0, sizeof at);
  at.name = "program";
  at.type = DRT_ATTR_INTS;
  at.ints = (int64_t *)ok;
  at.count = 15;
  DRT_ASSERT_OK(drt_node_add_attr(g, n, &at));
  DRT_ASSERT_ERROR(drt_infer_node(g, n), DRT_STATUS_INVALID_ARGUMENT, "cannot be broadcast");
  n->num_inputs = 1;
  DRT_ASSERT_OK(drt_infer_node(g, n));
  assert_int_equal(y->shape.dims[0], 5);
  drt_graph_destroy(g);
}

/* ================================ cse ====================================================== */

static void test_cse_duplicates(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 20);
  drt_value *x = input(&t, "x", 2, (int64_t[]){4, 6}, -1, 1);
  float two = 2.0f;
  drt_value *a = op2(&t, DRT_OP_MUL, x, cst_f(&t, 1, (int64_t[]){1}, &two));
  drt_value *b = op2(&t, DRT_OP_MUL, x, cst_f(&t, 1, (int64_t[]){1}, &two)); /* equal constant */
  drt_value *c = op2(&t, DRT_OP_ADD, op1(&t, DRT_OP_EXP, a), op1(&t, DRT_OP_EXP, b));
  drt_value *d = op1(&t, DRT_OP_EXP, b); /* duplicate of a graph output: kept (name) */
  DRT_ASSERT_OK(drt_graph_add_output(t.g, c));
  DRT_ASSERT_OK(drt_graph_add_output(t.g, d));
  assert_true(pass_and_compare(&t, drt_pass_cse));
  assert_int_equal(count_op(t.g, DRT_OP_MUL), 1);
  assert_int_equal(count_op(t.g, DRT_OP_EXP), 2);
  drt_node *add = find_op(t.g, DRT_OP_ADD);
  assert_ptr_equal(add->inputs[0], add->inputs[1]);
  assert_ptr_equal(t.g->outputs[1], d);
  assert_non_null(drt_graph_find_value(t.g, d->name));
  tg_free(&t);
}

static void test_cse_transpose_reshape(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 21);
  drt_value *x = input(&t, "x", 3, (int64_t[]){2, 3, 4}, -1, 1);
  drt_value *x2 = input(&t, "x2", 2, (int64_t[]){1, 6}, -1, 1);
  /* inverse transposes cancel */
  drt_value *u = transpose(&t, transpose(&t, x, 3, (int64_t[]){1, 2, 0}), 3, (int64_t[]){2, 0, 1});
  drt_value *a = op1(&t, DRT_OP_RELU, u);
  /* two transposes compose into one; an identity transpose disappears */
  drt_value *v = transpose(&t, transpose(&t, x, 3, (int64_t[]){1, 0, 2}), 3, (int64_t[]){0, 2, 1});
  v = transpose(&t, v, 3, (int64_t[]){0, 1, 2});
  drt_value *b = op1(&t, DRT_OP_NEG, v);
  /* reshape chains merge; a chain back to x's shape disappears */
  drt_value *c = op1(&t, DRT_OP_ABS, reshape(&t, reshape(&t, x, 2, (int64_t[]){6, 4}), 1, (int64_t[]){24}));
  drt_value *d = op1(&t, DRT_OP_SIGMOID, reshape(&t, reshape(&t, x, 2, (int64_t[]){6, 4}), 3, (int64_t[]){2, 3, 4}));
  /* Squeeze -> Unsqueeze becomes one Reshape */
  drt_value *sq = op2(&t, DRT_OP_SQUEEZE, x2, cst_i64(&t, 1, (int64_t[]){0}));
  drt_value *e = op1(&t, DRT_OP_EXP, op2(&t, DRT_OP_UNSQUEEZE, sq, cst_i64(&t, 1, (int64_t[]){1})));
  drt_value *outs[5] = {a, b, c, d, e};
  for (int i = 0; i < 5; i++) DRT_ASSERT_OK(drt_graph_add_output(t.g, outs[i]));
  assert_true(pass_and_compare(&t, drt_pass_cse));
  assert_int_equal(count_op(t.g, DRT_OP_TRANSPOSE), 1);
  assert_int_equal(count_op(t.g, DRT_OP_SQUEEZE), 0);
  assert_int_equal(count_op(t.g, DRT_OP_UNSQUEEZE), 0);
  assert_int_equal(count_op(t.g, DRT_OP_RESHAPE), 2);
  assert_ptr_equal(a->producer->inputs[0], x);
  assert_ptr_equal(d->producer->inputs[0], x);
  drt_node *tr = find_op(t.g, DRT_OP_TRANSPOSE);
  assert_ptr_equal(tr->inputs[0], x);
  int64_t cnt = 0;
  const int64_t *perm = drt_node_attr_ints(tr, "perm", &cnt);
  assert_int_equal(cnt, 3);
  assert_int_equal(perm[0], 1);
  assert_int_equal(perm[1], 2);
  assert_int_equal(perm[2], 0);
  assert_ptr_equal(c->producer->inputs[0]->producer->inputs[0], x);
  assert_ptr_equal(e->producer->inputs[0]->producer->inputs[0], x2);
  tg_free(&t);
}

static void test_cse_algebra(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 22);
  drt_value *x = input(&t, "x", 2, (int64_t[]){3, 5}, -1, 1);
  float ones[5] = {1, 1, 1, 1, 1}, zeros[5] = {0, 0, 0, 0, 0};
  drt_value *a = op2(&t, DRT_OP_MUL, cst_f(&t, 1, (int64_t[]){5}, ones), x);
  a = op2(&t, DRT_OP_ADD, a, cst_f(&t, 1, (int64_t[]){5}, zeros));
  a = op2(&t, DRT_OP_DIV, a, scalar(&t, 1.0f));
  a = op2(&t, DRT_OP_SUB, a, scalar(&t, 0.0f));
  a = op2(&t, DRT_OP_POW, a, scalar(&t, 1.0f));
  a = op1(&t, DRT_OP_NEG, op1(&t, DRT_OP_NEG, a));
  drt_value *y = op1(&t, DRT_OP_EXP, a);
  /* not removable: the constant enlarges the shape / is not exactly one / is the graph output */
  drt_value *big = op2(&t, DRT_OP_MUL, x, cst_f(&t, 3, (int64_t[]){2, 1, 1}, ones));
  drt_value *near = op2(&t, DRT_OP_MUL, x, scalar(&t, 1.0000001f));
  drt_value *outp = op2(&t, DRT_OP_ADD, x, scalar(&t, 0.0f));
  DRT_ASSERT_OK(drt_graph_add_output(t.g, y));
  DRT_ASSERT_OK(drt_graph_add_output(t.g, big));
  DRT_ASSERT_OK(drt_graph_add_output(t.g, near));
  DRT_ASSERT_OK(drt_graph_add_output(t.g, outp));
  assert_true(pass_and_compare(&t, drt_pass_cse));
  assert_int_equal(count_op(t.g, DRT_OP_NEG), 0);
  assert_int_equal(count_op(t.g, DRT_OP_DIV), 0);
  assert_int_equal(count_op(t.g, DRT_OP_SUB), 0);
  assert_int_equal(count_op(t.g, DRT_OP_POW), 0);
  assert_int_equal(count_op(t.g, DRT_OP_MUL), 2); /* big, near */
  assert_int_equal(count_op(t.g, DRT_OP_ADD), 1); /* the graph output */
  assert_ptr_equal(find_op(t.g, DRT_OP_EXP)->inputs[0], x);
  tg_free(&t);
}

static void log_to_stderr(drt_log_level level, const char *msg, void *user) {
  (void)level;
  (void)user;
  fprintf(stderr, "%s\n", msg);
}

int main(void) {
  if (getenv("DRT_TEST_VERBOSE")) drt_log_set(log_to_stderr, NULL, DRT_LOG_DEBUG);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_silu_residual),
      cmocka_unit_test(test_gelu_erf_broadcast_reference),
      cmocka_unit_test(test_broadcast_gather_and_rank),
      cmocka_unit_test(test_multi_output),
      cmocka_unit_test(test_ops_coverage),
      cmocka_unit_test(test_ops_coverage_late),
      cmocka_unit_test(test_matmul_gelu_residual),
      cmocka_unit_test(test_gemm_and_batched),
      cmocka_unit_test(test_gemm_blas_paths),
      cmocka_unit_test(test_conv_epilogue),
      cmocka_unit_test(test_epilogue_negative),
      cmocka_unit_test(test_negative_groups),
      cmocka_unit_test(test_in_place),
      cmocka_unit_test(test_program_errors),
      cmocka_unit_test(test_cse_duplicates),
      cmocka_unit_test(test_cse_transpose_reshape),
      cmocka_unit_test(test_cse_algebra),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
