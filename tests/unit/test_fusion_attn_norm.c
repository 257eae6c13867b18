/* Passes attention-fuse and norm-fuse: small graphs in each exporter form are canonicalized,
 * run on the CPU executor, fused, checked for structure (op counts, attributes) and run
 * again; outputs must agree within 1e-5 relative L2. Negative cases must stay unfused. Also
 * the drt.Attention layout algebra and the drt.Norm / drt.Attention shape errors. */
#include "testutil.h"
#include "graph_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer.h"
#include "ir/infer_fused.h"
#include "passes/attention_fuse.h"
#include "passes/canonicalize.h"
#include "passes/norm_fuse.h"
#include "runtime/cpu/executor.h"

static drt_value *softmax(tg *t, drt_value *x, int64_t axis) {
  drt_value *y = op(t, DRT_OP_SOFTMAX, 1, x, NULL, NULL);
  attr_i(t, y, "axis", axis);
  return y;
}

/* Canonicalizes, runs, applies `pass`, verifies, runs again and compares every output.
 * Returns the pass's `changed`. */
static bool fuse_and_compare(tg *t, drt_pass_fn pass, int64_t *fused_count) {
  drt_pass_stats stats;
  bool changed = tg_pass_compare(t, pass, false, 1e-5, &stats);
  if (fused_count) *fused_count = stats.fused_attention + stats.fused_norm;
  return changed;
}

/* ================================ attention ================================================ */

/* Q, K, V as [B,H,S,D] inputs: MatMul(Q, Transpose(K)) -> Mul -> Softmax -> MatMul(V). */
static void test_attn_bhsd(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 1);
  int64_t qd[4] = {2, 3, 7, 8}, kd[4] = {2, 3, 11, 8};
  drt_value *q = input(&t, "q", 4, qd, -1, 1), *k = input(&t, "k", 4, kd, -1, 1), *v = input(&t, "v", 4, kd, -1, 1);
  drt_value *kt = transpose(&t, k, 4, (int64_t[]){0, 1, 3, 2});
  drt_value *s = op(&t, DRT_OP_MATMUL, 2, q, kt, NULL);
  s = op(&t, DRT_OP_MUL, 2, s, scalar(&t, 0.35f), NULL);
  drt_value *p = softmax(&t, s, -1);
  drt_value *y = op(&t, DRT_OP_MATMUL, 2, p, v, NULL);
  DRT_ASSERT_OK(drt_graph_add_output(t.g, y));
  int64_t n = 0;
  assert_true(fuse_and_compare(&t, drt_pass_attention_fuse, &n));
  assert_int_equal(n, 1);
  assert_int_equal(count_op(t.g, DRT_OP_FUSED_ATTENTION), 1);
  assert_int_equal(count_op(t.g, DRT_OP_SOFTMAX), 0);
  assert_int_equal(count_op(t.g, DRT_OP_MATMUL), 0);
  assert_int_equal(count_op(t.g, DRT_OP_TRANSPOSE), 0); /* K read in place */
  drt_node *a = find_op(t.g, DRT_OP_FUSED_ATTENTION);
  assert_int_equal(drt_node_attr_int(a, "num_heads", 0), 3);
  assert_true(fabsf(drt_node_attr_float(a, "scale", 0) - 0.35f) < 1e-7f);
  assert_string_equal(drt_node_attr_string(a, "k_layout", ""), "b_h_s_d");
  tg_free(&t);
}

/* torch SDPA export (opset 14-22): head split Reshape/Transpose, sqrt(scale) on both Q and K,
 * additive mask, head merge; everything folds into layouts over the [B,S,H*D] tensors. */
static void test_attn_torch_sdpa(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 2);
  const int64_t B = 2, S = 9, T = 5, H = 4, D = 6;
  drt_value *x = input(&t, "x", 3, (int64_t[]){B, S, H * D}, -1, 1);
  drt_value *c = input(&t, "c", 3, (int64_t[]){B, T, H * D}, -1, 1);
  drt_value *vin = input(&t, "vin", 3, (int64_t[]){B, T, H * D}, -1, 1);
  float sq = 1.0f / sqrtf(sqrtf((float)D));
  drt_value *q = transpose(&t, reshape(&t, x, 4, (int64_t[]){B, S, H, D}), 4, (int64_t[]){0, 2, 1, 3});
  q = op(&t, DRT_OP_MUL, 2, q, scalar(&t, sq), NULL);
  drt_value *kt = transpose(&t, reshape(&t, c, 4, (int64_t[]){B, T, H, D}), 4, (int64_t[]){0, 2, 3, 1});
  kt = op(&t, DRT_OP_MUL, 2, kt, scalar(&t, sq), NULL);
  drt_value *v = transpose(&t, reshape(&t, vin, 4, (int64_t[]){B, T, H, D}), 4, (int64_t[]){0, 2, 1, 3});
  drt_value *s = op(&t, DRT_OP_MATMUL, 2, q, kt, NULL);
  s = op(&t, DRT_OP_ADD, 2, s, cst_rand(&t, 4, (int64_t[]){1, 1, S, T}, -3, 0), NULL);
  drt_value *o = op(&t, DRT_OP_MATMUL, 2, softmax(&t, s, -1), v, NULL);
  o = reshape(&t, transpose(&t, o, 4, (int64_t[]){0, 2, 1, 3}), 3, (int64_t[]){B, S, H * D});
  DRT_ASSERT_OK(drt_graph_add_output(t.g, o));
  assert_true(fuse_and_compare(&t, drt_pass_attention_fuse, NULL));
  assert_int_equal(count_op(t.g, DRT_OP_FUSED_ATTENTION), 1);
  assert_int_equal(t.g->num_nodes, 1); /* every Reshape/Transpose/Mul folded */
  drt_node *a = find_op(t.g, DRT_OP_FUSED_ATTENTION);
  assert_string_equal(drt_node_attr_string(a, "q_layout", ""), "b_s_hd");
  assert_string_equal(drt_node_attr_string(a, "k_layout", ""), "b_s_hd");
  assert_string_equal(drt_node_attr_string(a, "out_layout", ""), "b_s_hd");
  assert_int_equal(a->num_inputs, 4);
  assert_true(fabsf(drt_node_attr_float(a, "scale", 0) - 1.0f / sqrtf((float)D)) < 1e-6f);
  tg_free(&t);
}

/* Scale on the scores by Div, causal bool mask through Where(mask, s, -inf), more keys than one
 * key block of the kernel (online softmax across blocks). */
static void test_attn_where_mask_long(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 3);
  const int64_t S = 600, D = 4;
  drt_value *q = input(&t, "q", 3, (int64_t[]){1, S, D}, -2, 2), *k = input(&t, "k", 3, (int64_t[]){1, S, D}, -2, 2);
  drt_value *v = input(&t, "v", 3, (int64_t[]){1, S, D}, -1, 1);
  drt_value *s = op(&t, DRT_OP_MATMUL, 2, q, transpose(&t, k, 3, (int64_t[]){0, 2, 1}), NULL);
  s = op(&t, DRT_OP_DIV, 2, s, scalar(&t, 2.0f), NULL);
  uint8_t *m = malloc((size_t)(S * S));
  assert_non_null(m);
  for (int64_t i = 0; i < S; i++)
    for (int64_t j = 0; j < S; j++) m[i * S + j] = j <= i;
  drt_shape ms = drt_test_shape(2, (int64_t[]){S, S});
  drt_value *mask;
  DRT_ASSERT_OK(drt_graph_add_const(t.g, "causal", DRT_DTYPE_BOOL, &ms, m, &mask));
  free(m);
  s = op(&t, DRT_OP_WHERE, 3, mask, s, scalar(&t, -INFINITY));
  drt_value *o = op(&t, DRT_OP_MATMUL, 2, softmax(&t, s, 2), v, NULL);
  DRT_ASSERT_OK(drt_graph_add_output(t.g, o));
  assert_true(fuse_and_compare(&t, drt_pass_attention_fuse, NULL));
  assert_int_equal(count_op(t.g, DRT_OP_FUSED_ATTENTION), 1);
  assert_int_equal(count_op(t.g, DRT_OP_WHERE), 0);
  drt_node *a = find_op(t.g, DRT_OP_FUSED_ATTENTION);
  assert_int_equal(drt_node_attr_int(a, "mask_mode", -1), DRT_ATTN_MASK_KEEP_TRUE);
  assert_true(fabsf(drt_node_attr_float(a, "scale", 0) - 0.5f) < 1e-7f);
  tg_free(&t);
}

/* UNet/VAE attention block: channel-major [B, C, Y, X] Q/K/V, MatMul(Transpose(Q), K),
 * Softmax(axis=2), MatMul(V, Transpose(P)); queries and keys of different lengths. */
static void test_attn_bmm_channel_major(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 4);
  const int64_t B = 2, C = 12;
  drt_value *xq = input(&t, "xq", 4, (int64_t[]){B, C, 4, 5}, -1, 1);
  drt_value *xk = input(&t, "xk", 4, (int64_t[]){B, C, 3, 3}, -1, 1);
  drt_value *xv = input(&t, "xv", 4, (int64_t[]){B, C, 3, 3}, -1, 1);
  drt_value *q = reshape(&t, xq, 3, (int64_t[]){B, C, 20});
  drt_value *k = reshape(&t, xk, 3, (int64_t[]){B, C, 9});
  drt_value *v = reshape(&t, xv, 3, (int64_t[]){B, C, 9});
  drt_value *s = op(&t, DRT_OP_MATMUL, 2, transpose(&t, q, 3, (int64_t[]){0, 2, 1}), k, NULL);
  s = op(&t, DRT_OP_MUL, 2, s, scalar(&t, 0.3f), NULL);
  drt_value *pt = transpose(&t, softmax(&t, s, 2), 3, (int64_t[]){0, 2, 1});
  drt_value *o = op(&t, DRT_OP_MATMUL, 2, v, pt, NULL);
  o = reshape(&t, o, 4, (int64_t[]){B, C, 4, 5});
  DRT_ASSERT_OK(drt_graph_add_output(t.g, o));
  assert_true(fuse_and_compare(&t, drt_pass_attention_fuse, NULL));
  assert_int_equal(count_op(t.g, DRT_OP_FUSED_ATTENTION), 1);
  assert_int_equal(count_op(t.g, DRT_OP_SOFTMAX) + count_op(t.g, DRT_OP_MATMUL) + count_op(t.g, DRT_OP_TRANSPOSE), 0);
  drt_node *a = find_op(t.g, DRT_OP_FUSED_ATTENTION);
  assert_string_equal(drt_node_attr_string(a, "q_layout", ""), "bh_d_s_s"); /* read from the 4-D input */
  tg_free(&t);
}

/* Old diffusers bmm form: heads moved into the batch ([B*H, S, D]) and back. */
static void test_attn_heads_in_batch(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 5);
  const int64_t B = 2, S = 6, H = 3, D = 4;
  drt_value *io[3];
  drt_value *x[3];
  for (int i = 0; i < 3; i++) {
    const char *names[3] = {"q", "k", "v"};
    x[i] = input(&t, names[i], 3, (int64_t[]){B, S, H * D}, -1, 1);
    drt_value *r = transpose(&t, reshape(&t, x[i], 4, (int64_t[]){B, S, H, D}), 4, (int64_t[]){0, 2, 1, 3});
    io[i] = reshape(&t, r, 3, (int64_t[]){B * H, S, D});
  }
  drt_value *s = op(&t, DRT_OP_MATMUL, 2, io[0], transpose(&t, io[1], 3, (int64_t[]){0, 2, 1}), NULL);
  s = op(&t, DRT_OP_MUL, 2, s, scalar(&t, 0.5f), NULL);
  drt_value *o = op(&t, DRT_OP_MATMUL, 2, softmax(&t, s, -1), io[2], NULL);
  o = reshape(&t, o, 4, (int64_t[]){B, H, S, D});
  o = reshape(&t, transpose(&t, o, 4, (int64_t[]){0, 2, 1, 3}), 3, (int64_t[]){B, S, H * D});
  DRT_ASSERT_OK(drt_graph_add_output(t.g, o));
  assert_true(fuse_and_compare(&t, drt_pass_attention_fuse, NULL));
  assert_int_equal(t.g->num_nodes, 1);
  drt_node *a = find_op(t.g, DRT_OP_FUSED_ATTENTION);
  assert_non_null(a);
  assert_int_equal(drt_node_attr_int(a, "num_heads", 0), H);
  assert_string_equal(drt_node_attr_string(a, "v_layout", ""), "b_s_hd");
  tg_free(&t);
}

/* ONNX Attention (opset 23): 4-D with GQA, causal and an additive mask; 3-D with head counts. */
static void test_attn_onnx_op(void **state) {
  (void)state;
  for (int form = 0; form < 2; form++) {
    tg t;
    tg_init(&t, 6 + (uint64_t)form);
    t.g->opset = 23;
    drt_value *y;
    if (form == 0) {
      drt_value *q = input(&t, "q", 4, (int64_t[]){2, 4, 5, 8}, -1, 1);
      drt_value *k = input(&t, "k", 4, (int64_t[]){2, 2, 7, 8}, -1, 1);
      drt_value *v = input(&t, "v", 4, (int64_t[]){2, 2, 7, 6}, -1, 1);
      drt_value *mask = cst_rand(&t, 2, (int64_t[]){5, 7}, -1, 0);
      drt_value *ins[4] = {q, k, v, mask};
      y = drt_graph_add_value(t.g, "y", DRT_DTYPE_UNDEFINED, NULL);
      DRT_ASSERT_OK(drt_graph_add_node(t.g, DRT_OP_ATTENTION, "attn", ins, 4, &y, 1, NULL));
      attr_i(&t, y, "is_causal", 1);
    } else {
      drt_value *q = input(&t, "q", 3, (int64_t[]){2, 5, 12}, -1, 1);
      drt_value *k = input(&t, "k", 3, (int64_t[]){2, 9, 12}, -1, 1);
      drt_value *v = input(&t, "v", 3, (int64_t[]){2, 9, 12}, -1, 1);
      drt_value *ins[3] = {q, k, v};
      y = drt_graph_add_value(t.g, "y", DRT_DTYPE_UNDEFINED, NULL);
      DRT_ASSERT_OK(drt_graph_add_node(t.g, DRT_OP_ATTENTION, "attn", ins, 3, &y, 1, NULL));
      attr_i(&t, y, "q_num_heads", 3);
      attr_i(&t, y, "kv_num_heads", 3);
      attr_f(&t, y, "scale", 0.2f);
    }
    DRT_ASSERT_OK(drt_graph_add_output(t.g, y));
    assert_true(fuse_and_compare(&t, drt_pass_attention_fuse, NULL));
    assert_int_equal(count_op(t.g, DRT_OP_ATTENTION), 0);
    drt_node *a = find_op(t.g, DRT_OP_FUSED_ATTENTION);
    assert_non_null(a);
    if (form == 0) {
      assert_int_equal(drt_node_attr_int(a, "kv_num_heads", 0), 2);
      assert_int_equal(drt_node_attr_int(a, "causal", 0), 1);
    } else {
      assert_string_equal(drt_node_attr_string(a, "q_layout", ""), "b_s_hd");
    }
    tg_free(&t);
  }
}

/* ONNX's Attention function body: Add(mask) -> Softmax -> Where(Equal(ReduceMax(mask), -inf), 0, P)
 * -> MatMul. The mask has a row that is -inf everywhere: both graphs give zeros there. */
static void test_attn_masked_row_guard(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 12);
  const int64_t S = 5, T = 7;
  drt_value *q = input(&t, "q", 4, (int64_t[]){1, 2, S, 4}, -1, 1), *k = input(&t, "k", 4, (int64_t[]){1, 2, T, 4}, -1, 1);
  drt_value *v = input(&t, "v", 4, (int64_t[]){1, 2, T, 4}, -1, 1);
  drt_value *mask = input(&t, "mask", 2, (int64_t[]){S, T}, -1, 0);
  float *md = t.in[3].data;
  for (int64_t j = 0; j < T; j++) md[2 * T + j] = -INFINITY; /* row 2: every key masked */
  for (int64_t j = 3; j < T; j++) md[4 * T + j] = -INFINITY; /* row 4: some keys masked */
  drt_value *s = op(&t, DRT_OP_MATMUL, 2, q, transpose(&t, k, 4, (int64_t[]){0, 1, 3, 2}), NULL);
  s = op(&t, DRT_OP_ADD, 2, s, mask, NULL);
  drt_value *p = softmax(&t, s, -1);
  drt_value *rmax = op(&t, DRT_OP_REDUCE_MAX, 1, mask, NULL, NULL);
  attr_ints(&t, rmax, "axes", 1, (int64_t[]){-1});
  drt_value *all = op(&t, DRT_OP_EQUAL, 2, rmax, scalar(&t, -INFINITY), NULL);
  p = op(&t, DRT_OP_WHERE, 3, all, scalar(&t, 0.0f), p);
  drt_value *o = op(&t, DRT_OP_MATMUL, 2, p, v, NULL);
  DRT_ASSERT_OK(drt_graph_add_output(t.g, o));
  assert_true(fuse_and_compare(&t, drt_pass_attention_fuse, NULL));
  assert_int_equal(t.g->num_nodes, 1);
  assert_int_equal(count_op(t.g, DRT_OP_FUSED_ATTENTION), 1);
  tg_free(&t);
}

/* Softmax over a non-last axis, a scale after the mask, and scores with a second use: none of
 * these is attention and the graph must stay as it was. */
static void test_attn_negative(void **state) {
  (void)state;
  for (int kase = 0; kase < 3; kase++) {
    tg t;
    tg_init(&t, 10 + (uint64_t)kase);
    drt_value *q = input(&t, "q", 3, (int64_t[]){2, 6, 4}, -1, 1), *k = input(&t, "k", 3, (int64_t[]){2, 6, 4}, -1, 1);
    drt_value *v = input(&t, "v", 3, (int64_t[]){2, 6, 4}, -1, 1);
    drt_value *s = op(&t, DRT_OP_MATMUL, 2, q, transpose(&t, k, 3, (int64_t[]){0, 2, 1}), NULL);
    if (kase == 1) {
      s = op(&t, DRT_OP_ADD, 2, s, cst_rand(&t, 2, (int64_t[]){6, 6}, -1, 0), NULL);
      s = op(&t, DRT_OP_MUL, 2, s, scalar(&t, 0.5f), NULL);
    }
    if (kase == 2) DRT_ASSERT_OK(drt_graph_add_output(t.g, s));
    drt_value *o = op(&t, DRT_OP_MATMUL, 2, softmax(&t, s, kase == 0 ? 1 : -1), v, NULL);
    DRT_ASSERT_OK(drt_graph_add_output(t.g, o));
    assert_false(fuse_and_compare(&t, drt_pass_attention_fuse, NULL));
    assert_int_equal(count_op(t.g, DRT_OP_SOFTMAX), 1);
    assert_int_equal(count_op(t.g, DRT_OP_FUSED_ATTENTION), 0);
    tg_free(&t);
  }
}

/* Layout algebra and drt.Attention validation errors. */
static void test_attn_layouts(void **state) {
  (void)state;
  drt_attn_layout l;
  DRT_ASSERT_OK(drt_attn_layout_parse("b_s_hd", &l));
  drt_shape s = drt_test_shape(3, (int64_t[]){2, 5, 12});
  drt_attn_view v;
  DRT_ASSERT_OK(drt_attn_layout_view(&l, &s, 3, &v));
  assert_int_equal(v.size[DRT_ATTN_D], 4);
  assert_int_equal(v.stride[DRT_ATTN_H], 4);
  assert_int_equal(v.stride[DRT_ATTN_S], 12);
  assert_int_equal(v.stride[DRT_ATTN_B], 60);
  DRT_ASSERT_OK(drt_attn_layout_parse("b_d_s_s", &l));
  s = drt_test_shape(4, (int64_t[]){2, 8, 3, 5});
  DRT_ASSERT_OK(drt_attn_layout_view(&l, &s, 1, &v));
  assert_int_equal(v.size[DRT_ATTN_S], 15);
  assert_int_equal(v.stride[DRT_ATTN_S], 1);
  assert_int_equal(v.stride[DRT_ATTN_D], 15);
  drt_shape out;
  DRT_ASSERT_ERROR(drt_attn_layout_shape(&l, v.size, &out), DRT_STATUS_INVALID_ARGUMENT, "spans several dims");
  DRT_ASSERT_ERROR(drt_attn_layout_parse("b_x_d", &l), DRT_STATUS_INVALID_ARGUMENT, "unknown letter");
  DRT_ASSERT_ERROR(drt_attn_layout_parse("bs_h_d", &l), DRT_STATUS_INVALID_ARGUMENT, "merged dim is h and one other");
  DRT_ASSERT_ERROR(drt_attn_layout_parse("s_d_s", &l), DRT_STATUS_INVALID_ARGUMENT, "consecutive");
  DRT_ASSERT_OK(drt_attn_layout_parse("b_s_hd", &l));
  DRT_ASSERT_ERROR(drt_attn_layout_view(&l, &s, 1, &v), DRT_STATUS_INVALID_ARGUMENT, "has 3 dims");
  s = drt_test_shape(3, (int64_t[]){2, 5, 10});
  DRT_ASSERT_ERROR(drt_attn_layout_view(&l, &s, 3, &v), DRT_STATUS_INVALID_ARGUMENT, "not divisible by 3 heads");

  /* a drt.Attention whose K has another head size, and one with a mask that does not broadcast */
  tg t;
  tg_init(&t, 20);
  drt_value *q = input(&t, "q", 4, (int64_t[]){1, 2, 3, 4}, -1, 1), *k = input(&t, "k", 4, (int64_t[]){1, 2, 5, 6}, -1, 1);
  drt_value *y = op(&t, DRT_OP_FUSED_ATTENTION, 3, q, k, k);
  attr_i(&t, y, "num_heads", 2);
  DRT_ASSERT_ERROR(drt_infer_node(t.g, y->producer), DRT_STATUS_INVALID_ARGUMENT, "head sizes differ");
  drt_value *k2 = input(&t, "k2", 4, (int64_t[]){1, 2, 5, 4}, -1, 1);
  drt_value *mask = cst_rand(&t, 2, (int64_t[]){3, 4}, -1, 0);
  drt_value *ins[4] = {q, k2, k2, mask};
  drt_value *y2 = drt_graph_add_value(t.g, NULL, DRT_DTYPE_UNDEFINED, NULL);
  DRT_ASSERT_OK(drt_graph_add_node(t.g, DRT_OP_FUSED_ATTENTION, "bad_mask", ins, 4, &y2, 1, NULL));
  attr_i(&t, y2, "num_heads", 2);
  DRT_ASSERT_ERROR(drt_infer_node(t.g, y2->producer), DRT_STATUS_INVALID_ARGUMENT, "does not broadcast");
  attr_s(&t, y, "q_layout", "b_h_s");
  DRT_ASSERT_ERROR(drt_infer_node(t.g, y->producer), DRT_STATUS_INVALID_ARGUMENT, "q_layout");
  tg_free(&t);
}

/* ================================ norms ==================================================== */

/* LayerNormalization -> Mul(., Add(scale, 1)) -> Add(., shift) (adaLN). */
static void test_norm_layer_adaln(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 30);
  const int64_t B = 2, N = 5, C = 16;
  drt_value *x = input(&t, "x", 3, (int64_t[]){B, N, C}, -2, 3);
  drt_value *sc = input(&t, "scale", 3, (int64_t[]){B, 1, C}, -0.5f, 0.5f);
  drt_value *sh = input(&t, "shift", 3, (int64_t[]){B, 1, C}, -1, 1);
  drt_value *ones = cst_f(&t, 1, (int64_t[]){C}, NULL);
  float *od = ones->data;
  for (int i = 0; i < C; i++) od[i] = 1.0f;
  drt_value *ln = op(&t, DRT_OP_LAYER_NORM, 3, x, ones, cst_f(&t, 1, (int64_t[]){C}, NULL));
  attr_f(&t, ln, "epsilon", 1e-6f);
  drt_value *y = op(&t, DRT_OP_MUL, 2, ln, op(&t, DRT_OP_ADD, 2, sc, scalar(&t, 1.0f), NULL), NULL);
  y = op(&t, DRT_OP_ADD, 2, sh, y, NULL);
  DRT_ASSERT_OK(drt_graph_add_output(t.g, y));
  int64_t n = 0;
  assert_true(fuse_and_compare(&t, drt_pass_norm_fuse, &n));
  assert_int_equal(n, 1);
  assert_int_equal(t.g->num_nodes, 1);
  drt_node *f = find_op(t.g, DRT_OP_FUSED_NORM);
  assert_non_null(f);
  assert_int_equal(drt_node_attr_int(f, "mod_one_plus", 0), 1);
  assert_null(drt_node_input(f, 1)); /* the identity scale and zero bias were dropped */
  assert_null(drt_node_input(f, 2));
  assert_ptr_equal(drt_node_input(f, 3), sc);
  assert_ptr_equal(drt_node_input(f, 4), sh);
  tg_free(&t);
}

/* Decomposed LayerNorm (opset < 17 export) with gamma/beta, then tanh-GELU as torch writes it. */
static void test_norm_layer_decomposed_gelu_tanh(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 31);
  const int64_t C = 24;
  drt_value *x = input(&t, "x", 3, (int64_t[]){2, 7, C}, -3, 3);
  drt_value *m = op(&t, DRT_OP_REDUCE_MEAN, 1, x, NULL, NULL);
  attr_ints(&t, m, "axes", 1, (int64_t[]){-1});
  drt_value *d = op(&t, DRT_OP_SUB, 2, x, m, NULL);
  drt_value *var = op(&t, DRT_OP_REDUCE_MEAN, 1, op(&t, DRT_OP_POW, 2, d, scalar(&t, 2.0f), NULL), NULL, NULL);
  attr_ints(&t, var, "axes", 1, (int64_t[]){-1});
  drt_value *sd = op(&t, DRT_OP_SQRT, 1, op(&t, DRT_OP_ADD, 2, var, scalar(&t, 1e-5f), NULL), NULL, NULL);
  drt_value *y = op(&t, DRT_OP_DIV, 2, d, sd, NULL);
  y = op(&t, DRT_OP_MUL, 2, y, cst_rand(&t, 1, (int64_t[]){C}, 0.5f, 1.5f), NULL);
  y = op(&t, DRT_OP_ADD, 2, cst_rand(&t, 1, (int64_t[]){C}, -1, 1), y, NULL);
  /* 0.5 * y * (1 + tanh(sqrt(2/pi) * (y + 0.044715 * y^3))) */
  drt_value *y3 = op(&t, DRT_OP_MUL, 2, y, op(&t, DRT_OP_MUL, 2, y, y, NULL), NULL);
  drt_value *in = op(&t, DRT_OP_ADD, 2, y, op(&t, DRT_OP_MUL, 2, scalar(&t, 0.044715f), y3, NULL), NULL);
  drt_value *th = op(&t, DRT_OP_TANH, 1, op(&t, DRT_OP_MUL, 2, scalar(&t, 0.7978845608f), in, NULL), NULL, NULL);
  drt_value *g = op(&t, DRT_OP_MUL, 2, y, op(&t, DRT_OP_ADD, 2, scalar(&t, 1.0f), th, NULL), NULL);
  g = op(&t, DRT_OP_MUL, 2, scalar(&t, 0.5f), g, NULL);
  DRT_ASSERT_OK(drt_graph_add_output(t.g, g));
  assert_true(fuse_and_compare(&t, drt_pass_norm_fuse, NULL));
  assert_int_equal(t.g->num_nodes, 1);
  drt_node *f = find_op(t.g, DRT_OP_FUSED_NORM);
  assert_non_null(f);
  assert_string_equal(drt_node_attr_string(f, "kind", ""), "layer");
  assert_string_equal(drt_node_attr_string(f, "activation", ""), "gelu_tanh");
  assert_int_equal(drt_node_attr_int(f, "axis", 0), 2);
  tg_free(&t);
}

/* Decomposed RMSNorm in its three tails (Div(1, sqrt) + Mul, Reciprocal + Mul, Div(x, sqrt)),
 * and the RMSNormalization op. */
static void test_norm_rms(void **state) {
  (void)state;
  for (int form = 0; form < 4; form++) {
    tg t;
    tg_init(&t, 40 + (uint64_t)form);
    const int64_t D = 16;
    drt_value *x = input(&t, "x", 4, (int64_t[]){1, 3, 5, D}, -2, 2);
    drt_value *w = cst_rand(&t, 1, (int64_t[]){D}, 0.5f, 1.5f);
    drt_value *y;
    if (form == 3) {
      t.g->opset = 23;
      y = op(&t, DRT_OP_RMS_NORM, 2, x, w, NULL);
    } else {
      drt_value *ms = op(&t, DRT_OP_REDUCE_MEAN, 1, op(&t, DRT_OP_POW, 2, x, scalar(&t, 2.0f), NULL), NULL, NULL);
      attr_ints(&t, ms, "axes", 1, (int64_t[]){-1});
      drt_value *sd = op(&t, DRT_OP_SQRT, 1, op(&t, DRT_OP_ADD, 2, ms, scalar(&t, 1e-6f), NULL), NULL, NULL);
      if (form == 0) y = op(&t, DRT_OP_MUL, 2, x, op(&t, DRT_OP_DIV, 2, scalar(&t, 1.0f), sd, NULL), NULL);
      else if (form == 1) y = op(&t, DRT_OP_MUL, 2, op(&t, DRT_OP_RECIPROCAL, 1, sd, NULL, NULL), x, NULL);
      else y = op(&t, DRT_OP_DIV, 2, x, sd, NULL);
      y = op(&t, DRT_OP_MUL, 2, y, w, NULL);
    }
    DRT_ASSERT_OK(drt_graph_add_output(t.g, y));
    assert_true(fuse_and_compare(&t, drt_pass_norm_fuse, NULL));
    assert_int_equal(t.g->num_nodes, 1);
    drt_node *f = find_op(t.g, DRT_OP_FUSED_NORM);
    assert_non_null(f);
    assert_string_equal(drt_node_attr_string(f, "kind", ""), "rms");
    assert_ptr_equal(drt_node_input(f, 1), w);
    tg_free(&t);
  }
}

/* GroupNorm as Reshape -> InstanceNormalization -> Reshape -> Mul -> Add, then SiLU. */
static void test_norm_group_decomposed_silu(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 50);
  const int64_t N = 2, C = 12, G = 4, H = 5, W = 3;
  drt_value *x = input(&t, "x", 4, (int64_t[]){N, C, H, W}, -2, 4);
  drt_value *r = reshape(&t, x, 3, (int64_t[]){N, G, -1});
  float ones[4] = {1, 1, 1, 1}, zeros[4] = {0, 0, 0, 0};
  drt_value *in = op(&t, DRT_OP_INSTANCE_NORM, 3, r, cst_f(&t, 1, (int64_t[]){G}, ones), cst_f(&t, 1, (int64_t[]){G}, zeros));
  attr_f(&t, in, "epsilon", 1e-6f);
  drt_value *y = op(&t, DRT_OP_RESHAPE, 2, in, op(&t, DRT_OP_SHAPE, 1, x, NULL, NULL), NULL);
  y = op(&t, DRT_OP_MUL, 2, y, cst_rand(&t, 3, (int64_t[]){C, 1, 1}, 0.5f, 1.5f), NULL);
  y = op(&t, DRT_OP_ADD, 2, y, cst_rand(&t, 3, (int64_t[]){C, 1, 1}, -1, 1), NULL);
  y = op(&t, DRT_OP_MUL, 2, y, op(&t, DRT_OP_SIGMOID, 1, y, NULL, NULL), NULL);
  DRT_ASSERT_OK(drt_graph_add_output(t.g, y));
  assert_true(fuse_and_compare(&t, drt_pass_norm_fuse, NULL));
  assert_int_equal(t.g->num_nodes, 1);
  drt_node *f = find_op(t.g, DRT_OP_FUSED_NORM);
  assert_non_null(f);
  assert_string_equal(drt_node_attr_string(f, "kind", ""), "group");
  assert_int_equal(drt_node_attr_int(f, "num_groups", 0), G);
  assert_string_equal(drt_node_attr_string(f, "activation", ""), "silu");
  tg_free(&t);
}

/* GroupNormalization op: opset 21 per-channel scale with an erf-GELU after it, and opset 18
 * per-group scale. */
static void test_norm_group_op_gelu(void **state) {
  (void)state;
  for (int form = 0; form < 2; form++) {
    tg t;
    tg_init(&t, 60 + (uint64_t)form);
    t.g->opset = form == 0 ? 21 : 18;
    const int64_t C = 8, G = 2;
    int64_t np = form == 0 ? C : G;
    drt_value *x = input(&t, "x", 4, (int64_t[]){2, C, 3, 4}, -1, 3);
    drt_value *y = op(&t, DRT_OP_GROUP_NORM, 3, x, cst_rand(&t, 1, &np, 0.5f, 1.5f), cst_rand(&t, 1, &np, -1, 1));
    attr_i(&t, y, "num_groups", G);
    if (form == 0) { /* x * 0.5 * (1 + erf(x / sqrt 2)) */
      drt_value *e = op(&t, DRT_OP_ERF, 1, op(&t, DRT_OP_DIV, 2, y, scalar(&t, 1.4142135f), NULL), NULL, NULL);
      y = op(&t, DRT_OP_MUL, 2, op(&t, DRT_OP_MUL, 2, y, op(&t, DRT_OP_ADD, 2, e, scalar(&t, 1.0f), NULL), NULL),
             scalar(&t, 0.5f), NULL);
    }
    DRT_ASSERT_OK(drt_graph_add_output(t.g, y));
    assert_true(fuse_and_compare(&t, drt_pass_norm_fuse, NULL));
    assert_int_equal(t.g->num_nodes, 1);
    drt_node *f = find_op(t.g, DRT_OP_FUSED_NORM);
    assert_non_null(f);
    assert_string_equal(drt_node_attr_string(f, "activation", "none"), form == 0 ? "gelu" : "none");
    tg_free(&t);
  }
}

/* Not norms, or not foldable: a mean over a middle axis stays; a Mul whose operand depends on
 * the normalized value stays outside the fused node; a LayerNorm whose output is also a graph
 * output keeps its consumers. */
static void test_norm_negative(void **state) {
  (void)state;
  for (int kase = 0; kase < 3; kase++) {
    tg t;
    tg_init(&t, 70 + (uint64_t)kase);
    drt_value *x = input(&t, "x", 3, (int64_t[]){2, 6, 8}, -2, 2);
    drt_value *y;
    if (kase == 0) {
      drt_value *ms = op(&t, DRT_OP_REDUCE_MEAN, 1, op(&t, DRT_OP_POW, 2, x, scalar(&t, 2.0f), NULL), NULL, NULL);
      attr_ints(&t, ms, "axes", 1, (int64_t[]){1});
      y = op(&t, DRT_OP_DIV, 2, x, op(&t, DRT_OP_SQRT, 1, op(&t, DRT_OP_ADD, 2, ms, scalar(&t, 1e-6f), NULL), NULL, NULL),
             NULL);
    } else {
      drt_value *ln = op(&t, DRT_OP_LAYER_NORM, 2, x, cst_rand(&t, 1, (int64_t[]){8}, 0.5f, 1.5f), NULL);
      if (kase == 1) {
        y = op(&t, DRT_OP_MUL, 2, ln, op(&t, DRT_OP_EXP, 1, ln, NULL, NULL), NULL);
      } else {
        DRT_ASSERT_OK(drt_graph_add_output(t.g, ln));
        y = op(&t, DRT_OP_ADD, 2, ln, cst_rand(&t, 1, (int64_t[]){8}, -1, 1), NULL);
      }
    }
    DRT_ASSERT_OK(drt_graph_add_output(t.g, y));
    bool changed = fuse_and_compare(&t, drt_pass_norm_fuse, NULL);
    if (kase == 0) {
      assert_false(changed);
      assert_int_equal(count_op(t.g, DRT_OP_REDUCE_MEAN), 1);
      assert_int_equal(count_op(t.g, DRT_OP_FUSED_NORM), 0);
    } else {
      assert_true(changed);
      assert_int_equal(count_op(t.g, DRT_OP_FUSED_NORM), 1);
      assert_int_equal(count_op(t.g, kase == 1 ? DRT_OP_MUL : DRT_OP_ADD), 1);
    }
    tg_free(&t);
  }
}

/* drt.Norm validation errors. */
static void test_norm_errors(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 80);
  drt_value *x = input(&t, "x", 4, (int64_t[]){2, 6, 3, 3}, -1, 1);
  drt_value *p = cst_rand(&t, 1, (int64_t[]){4}, -1, 1);
  drt_value *y = op(&t, DRT_OP_FUSED_NORM, 2, x, p, NULL);
  DRT_ASSERT_ERROR(drt_infer_node(t.g, y->producer), DRT_STATUS_INVALID_ARGUMENT, "does not broadcast");
  drt_value *y2 = op(&t, DRT_OP_FUSED_NORM, 1, x, NULL, NULL);
  attr_s(&t, y2, "kind", "group");
  attr_i(&t, y2, "num_groups", 4);
  DRT_ASSERT_ERROR(drt_infer_node(t.g, y2->producer), DRT_STATUS_INVALID_ARGUMENT, "does not divide");
  drt_value *y3 = op(&t, DRT_OP_FUSED_NORM, 1, x, NULL, NULL);
  attr_s(&t, y3, "activation", "swish");
  DRT_ASSERT_ERROR(drt_infer_node(t.g, y3->producer), DRT_STATUS_INVALID_ARGUMENT, "activation");
  tg_free(&t);
}

static void log_to_stderr(drt_log_level level, const char *msg, void *user) {
  (void)user;
  (void)level;
  fprintf(stderr, "%s\n", msg);
}

int main(void) {
  if (getenv("DRT_TEST_VERBOSE")) drt_log_set(log_to_stderr, NULL, DRT_LOG_INFO);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_attn_bhsd),
      cmocka_unit_test(test_attn_torch_sdpa),
      cmocka_unit_test(test_attn_where_mask_long),
      cmocka_unit_test(test_attn_bmm_channel_major),
      cmocka_unit_test(test_attn_heads_in_batch),
      cmocka_unit_test(test_attn_onnx_op),
      cmocka_unit_test(test_attn_masked_row_guard),
      cmocka_unit_test(test_attn_negative),
      cmocka_unit_test(test_attn_layouts),
      cmocka_unit_test(test_norm_layer_adaln),
      cmocka_unit_test(test_norm_layer_decomposed_gelu_tanh),
      cmocka_unit_test(test_norm_rms),
      cmocka_unit_test(test_norm_group_decomposed_silu),
      cmocka_unit_test(test_norm_group_op_gelu),
      cmocka_unit_test(test_norm_negative),
      cmocka_unit_test(test_norm_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
