/* CUDA codegen of the movement and linalg families (codegen/emit_movement.c, emit_linalg.c):
 *  - the launches each node lowers to (GEMM descriptors for broadcast batches, transposes, bias
 *    and activation epilogues, convolution strategies, copies);
 *  - where NVRTC is installed, that the rendered programs compile for sm_80;
 *  - numerics: every node of multi-node graphs (odd shapes, every Resize coordinate mode, Pad
 *    modes, negative slices, grouped/dilated/strided convolutions, broadcast MatMuls, Gemm C
 *    forms, Einsum forms, drt.Gemm/drt.Conv epilogues) runs on the CPU emulator
 *    (tests/cuda_emu/emu.h: the program source compiled with g++) in fp32/tf32/fp16/bf16 and is
 *    compared with the CPU kernels. GEMM launches are evaluated by a reference of the row-major
 *    drt_cuda_gemm contract (codegen/codegen.h), so descriptor mistakes show up too. Skipped
 *    where DRT_SOURCE_DIR (set by ctest) or g++ is missing. */
#define _GNU_SOURCE /* mkdtemp, dlopen */
#include "testutil.h"

#include <dlfcn.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/codegen.h"
#include "codegen/nvrtc.h"
#include "ir/ew_program.h"
#include "ir/infer.h"

/* ---- graph building ----------------------------------------------------------------------- */
static drt_value *g_in(drt_graph *g, drt_dtype dt, int rank, const int64_t *dims) {
  drt_shape s = drt_test_shape(rank, dims);
  drt_value *v = drt_graph_add_value(g, NULL, dt, &s);
  assert_non_null(v);
  DRT_ASSERT_OK(drt_graph_add_input(g, v));
  return v;
}

static drt_value *g_ints(drt_graph *g, int64_t count, const int64_t *vals) {
  drt_shape s = drt_test_shape(1, (int64_t[]){count});
  drt_value *v;
  DRT_ASSERT_OK(drt_graph_add_const(g, NULL, DRT_DTYPE_INT64, &s, vals, &v));
  return v;
}

static drt_value *g_floats(drt_graph *g, int64_t count, const float *vals) {
  drt_shape s = drt_test_shape(1, (int64_t[]){count});
  drt_value *v;
  DRT_ASSERT_OK(drt_graph_add_const(g, NULL, DRT_DTYPE_FLOAT32, &s, vals, &v));
  return v;
}

static drt_node *g_node(drt_graph *g, drt_op op, drt_value *const *ins, int nin, int nout) {
  drt_value *outs[8];
  for (int i = 0; i < nout; i++) {
    outs[i] = drt_graph_add_value(g, NULL, DRT_DTYPE_UNDEFINED, NULL);
    assert_non_null(outs[i]);
  }
  drt_node *n;
  DRT_ASSERT_OK(drt_graph_add_node(g, op, NULL, ins, nin, outs, nout, &n));
  n->opset = 19;
  return n;
}

static void a_int(drt_graph *g, drt_node *n, const char *name, int64_t v) {
  drt_attr a = {.name = name, .type = DRT_ATTR_INT, .i = v};
  DRT_ASSERT_OK(drt_node_add_attr(g, n, &a));
}
static void a_float(drt_graph *g, drt_node *n, const char *name, float v) {
  drt_attr a = {.name = name, .type = DRT_ATTR_FLOAT, .f = v};
  DRT_ASSERT_OK(drt_node_add_attr(g, n, &a));
}
static void a_str(drt_graph *g, drt_node *n, const char *name, const char *v) {
  drt_attr a = {.name = name, .type = DRT_ATTR_STRING, .s = v, .s_len = strlen(v)};
  DRT_ASSERT_OK(drt_node_add_attr(g, n, &a));
}
static void a_ints(drt_graph *g, drt_node *n, const char *name, int64_t count, const int64_t *v) {
  drt_attr a = {.name = name, .type = DRT_ATTR_INTS, .count = count, .ints = (int64_t *)v};
  DRT_ASSERT_OK(drt_node_add_attr(g, n, &a));
}

/* Infers the node and makes its outputs graph outputs. */
static void g_finish(drt_graph *g, drt_node *n) {
  DRT_ASSERT_OK(drt_infer_node(g, n));
  for (int i = 0; i < n->num_outputs; i++) DRT_ASSERT_OK(drt_graph_add_output(g, n->outputs[i]));
}

static drt_cuda_program *build(const drt_graph *g, drt_cuda_precision p) {
  drt_cuda_codegen_options o;
  drt_cuda_codegen_options_init(&o);
  o.precision = p;
  o.allow_host_fallback = false;
  drt_cuda_program *prog = NULL;
  DRT_ASSERT_OK(drt_cuda_program_build(&g, 1, &o, &prog));
  return prog;
}

/* Launches of node i. */
static const drt_cuda_launch *node_launches(const drt_cuda_program *p, size_t i, size_t *count) {
  const drt_cuda_graph_code *c = &p->graphs[0];
  *count = c->node_first[i + 1] - c->node_first[i];
  return c->launches + c->node_first[i];
}

/* A node's launches without its variants other than the last (for a convolution on fp16/bf16
 * operands: im2col + cuBLASLt after the implicit-GEMM kernels, codegen/emit_linalg.c); *skipped
 * receives how many launches were skipped. Variants come first, in order, then common launches. */
static const drt_cuda_launch *last_variant(const drt_cuda_launch *l, size_t *n, size_t *skipped) {
  int last = 0;
  for (size_t i = 0; i < *n; i++)
    if (l[i].variant > last) last = l[i].variant;
  size_t k = 0;
  while (k < *n && l[k].variant && l[k].variant != last) k++;
  *skipped = k;
  *n -= k;
  return l + k;
}

static int count_kind(const drt_cuda_launch *l, size_t n, int kind) {
  int c = 0;
  for (size_t i = 0; i < n; i++) c += l[i].kind == kind;
  return c;
}

/* Compiles the program for sm_80 where NVRTC is installed. */
static void nvrtc_check(const drt_cuda_program *p) {
  const char *dump = getenv("DRT_TEST_CUDA_DUMP"); /* debugging: keep the last program's source */
  if (dump) {
    FILE *f = fopen(dump, "wb");
    if (f) {
      fwrite(p->source, 1, p->source_len, f);
      fclose(f);
    }
  }
  int major, minor;
  drt_status st = drt_nvrtc_version(&major, &minor);
  if (st) {
    drt_status_free(st);
    return;
  }
  const char *arch[1] = {"sm_80"};
  drt_nvrtc_image img[1];
  memset(img, 0, sizeof img);
  drt_nvrtc_compile_options o;
  drt_nvrtc_compile_options_init(&o);
  DRT_ASSERT_OK(drt_nvrtc_compile(p, arch, 1, &o, img));
  assert_true(img[0].size > 0);
  drt_nvrtc_image_free(&img[0]);
}

/* ---- MatMul / Gemm ------------------------------------------------------------------------- */
static void test_matmul_batches(void **state) {
  (void)state;
  drt_graph *g;
  DRT_ASSERT_OK(drt_graph_create(&g));
  /* 0: [2,1,3,4] x [1,5,4,6]: batch dims that need a loop over the first */
  drt_value *a0 = g_in(g, DRT_DTYPE_FLOAT32, 4, (int64_t[]){2, 1, 3, 4});
  drt_value *b0 = g_in(g, DRT_DTYPE_FLOAT32, 4, (int64_t[]){1, 5, 4, 6});
  g_finish(g, g_node(g, DRT_OP_MATMUL, (drt_value *[]){a0, b0}, 2, 1));
  /* 1: [2,3,4,5] x [5,6]: B shared, one GEMM over 24 rows */
  drt_value *a1 = g_in(g, DRT_DTYPE_FLOAT32, 4, (int64_t[]){2, 3, 4, 5});
  drt_value *b1 = g_in(g, DRT_DTYPE_FLOAT32, 2, (int64_t[]){5, 6});
  g_finish(g, g_node(g, DRT_OP_MATMUL, (drt_value *[]){a1, b1}, 2, 1));
  /* 2: [7] x [3,7,2]: vector A broadcast over B's batch (stride 0) */
  drt_value *a2 = g_in(g, DRT_DTYPE_FLOAT32, 1, (int64_t[]){7});
  drt_value *b2 = g_in(g, DRT_DTYPE_FLOAT32, 3, (int64_t[]){3, 7, 2});
  g_finish(g, g_node(g, DRT_OP_MATMUL, (drt_value *[]){a2, b2}, 2, 1));
  drt_cuda_program *p = build(g, DRT_CUDA_PRECISION_TF32);
  size_t n;
  const drt_cuda_launch *l = node_launches(p, 0, &n);
  assert_int_equal(n, 2);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(l[i].kind, DRT_CUDA_LAUNCH_GEMM);
    const drt_cuda_gemm *m = &l[i].gemm;
    assert_int_equal(m->m, 3);
    assert_int_equal(m->n, 6);
    assert_int_equal(m->k, 4);
    assert_int_equal(m->batch, 5);
    assert_int_equal(m->stride_a, 0);
    assert_int_equal(m->stride_b, 24);
    assert_int_equal(m->stride_d, 18);
    assert_int_equal(m->a.offset, i * 12 * 4);
    assert_int_equal(m->d.offset, i * 5 * 18 * 4);
    assert_false(m->tf32); /* dims <= DRT_CG_TF32_MIN_DIM: bandwidth-bound, full FP32 */
  }
  l = node_launches(p, 1, &n);
  assert_int_equal(n, 1);
  assert_int_equal(l[0].gemm.m, 24);
  assert_int_equal(l[0].gemm.batch, 1);
  l = node_launches(p, 2, &n);
  assert_int_equal(n, 1);
  assert_int_equal(l[0].gemm.m, 1);
  assert_int_equal(l[0].gemm.n, 2);
  assert_int_equal(l[0].gemm.batch, 3);
  assert_int_equal(l[0].gemm.stride_a, 0);
  assert_int_equal(l[0].gemm.stride_b, 14);
  drt_cuda_program_destroy(p);
  drt_graph_destroy(g);
}

/* Under tf32, GEMMs with a dimension of at most DRT_CG_TF32_MIN_DIM (bandwidth-bound: the
   per-sample time-embedding / modulation projections) compute in full FP32; the others in TF32. */
static void test_tf32_small_dims(void **state) {
  (void)state;
  const int64_t d = DRT_CG_TF32_MIN_DIM;
  const int64_t shapes[][3] = {{d + 1, d + 1, d + 1}, {d, 64, 64}, {64, d, 64}, {64, 64, d}, {2, 1280, 320}};
  const bool want[] = {true, false, false, false, false};
  drt_graph *g;
  DRT_ASSERT_OK(drt_graph_create(&g));
  for (int i = 0; i < 5; i++) {
    drt_value *a = g_in(g, DRT_DTYPE_FLOAT32, 2, (int64_t[]){shapes[i][0], shapes[i][2]});
    drt_value *b = g_in(g, DRT_DTYPE_FLOAT32, 2, (int64_t[]){shapes[i][2], shapes[i][1]});
    g_finish(g, g_node(g, DRT_OP_MATMUL, (drt_value *[]){a, b}, 2, 1));
  }
  for (int prec = 0; prec < 2; prec++) {
    drt_cuda_program *p = build(g, prec ? DRT_CUDA_PRECISION_TF32 : DRT_CUDA_PRECISION_FP32);
    for (int i = 0; i < 5; i++) {
      size_t n;
      const drt_cuda_launch *l = node_launches(p, (size_t)i, &n);
      assert_int_equal(n, 1);
      assert_int_equal(l[0].gemm.m, shapes[i][0]);
      assert_int_equal(l[0].gemm.k, shapes[i][2]);
      assert_int_equal(l[0].gemm.tf32, prec && want[i]);
    }
    drt_cuda_program_destroy(p);
  }
  drt_graph_destroy(g);
}

static void test_gemm_c_forms(void **state) {
  (void)state;
  drt_graph *g;
  DRT_ASSERT_OK(drt_graph_create(&g));
  drt_value *a = g_in(g, DRT_DTYPE_FLOAT32, 2, (int64_t[]){5, 3}); /* transA: K=5, M=3 */
  drt_value *b = g_in(g, DRT_DTYPE_FLOAT32, 2, (int64_t[]){4, 5}); /* transB: N=4 */
  drt_value *cv = g_in(g, DRT_DTYPE_FLOAT32, 1, (int64_t[]){4});
  drt_value *cm = g_in(g, DRT_DTYPE_FLOAT32, 2, (int64_t[]){3, 4});
  drt_value *cc = g_in(g, DRT_DTYPE_FLOAT32, 2, (int64_t[]){3, 1});
  drt_value *cs[3] = {cv, cm, cc};
  for (int i = 0; i < 3; i++) {
    drt_node *nd = g_node(g, DRT_OP_GEMM, (drt_value *[]){a, b, cs[i]}, 3, 1);
    a_int(g, nd, "transA", 1);
    a_int(g, nd, "transB", 1);
    a_float(g, nd, "alpha", 0.5f);
    g_finish(g, nd);
  }
  drt_cuda_program *p = build(g, DRT_CUDA_PRECISION_FP16);
  size_t n;
  const drt_cuda_launch *l = node_launches(p, 0, &n);
  assert_int_equal(n, 1);
  assert_int_equal(l[0].gemm.epilogue, DRT_CUDA_EPI_BIAS);
  assert_true(l[0].gemm.trans_a && l[0].gemm.trans_b);
  assert_int_equal(l[0].gemm.lda, 3);
  assert_int_equal(l[0].gemm.ldb, 5);
  assert_int_equal(l[0].gemm.a_type, DRT_DTYPE_FLOAT16);
  assert_true(l[0].gemm.alpha == 0.5f);
  l = node_launches(p, 1, &n);
  assert_int_equal(n, 1);
  assert_int_equal(l[0].gemm.c.kind, DRT_CUDA_ARG_VALUE);
  assert_ptr_equal(l[0].gemm.c.value, cm);
  assert_true(l[0].gemm.beta == 1.0f);
  l = node_launches(p, 2, &n);
  assert_int_equal(n, 2); /* broadcast copy of C into D, then the GEMM accumulating onto D */
  assert_int_equal(l[0].kind, DRT_CUDA_LAUNCH_KERNEL);
  assert_ptr_equal(l[1].gemm.c.value, l[1].gemm.d.value);
  nvrtc_check(p);
  drt_cuda_program_destroy(p);
  drt_graph_destroy(g);
}

/* drt.Gemm with an epilogue program (5 ints per instruction) reading e and e2 (either may be NULL). */
static drt_node *fused_gemm2(drt_graph *g, drt_value *a, drt_value *b, drt_value *e, drt_value *e2,
                             const int64_t *prog, int ninsn) {
  drt_node *nd = g_node(g, DRT_OP_FUSED_GEMM, (drt_value *[]){a, b, e, e2}, e2 ? 4 : e ? 3 : 2, 1);
  a_ints(g, nd, "program", 5 * ninsn, prog);
  g_finish(g, nd);
  return nd;
}

static drt_node *fused_gemm(drt_graph *g, drt_value *a, drt_value *b, drt_value *e, const int64_t *prog, int ninsn) {
  return fused_gemm2(g, a, b, e, NULL, prog, ninsn);
}

static void test_fused_gemm_epilogues(void **state) {
  (void)state;
  drt_graph *g;
  DRT_ASSERT_OK(drt_graph_create(&g));
  drt_value *a = g_in(g, DRT_DTYPE_FLOAT32, 3, (int64_t[]){2, 7, 16});
  drt_value *b = g_in(g, DRT_DTYPE_FLOAT32, 2, (int64_t[]){16, 24});
  drt_value *bias = g_in(g, DRT_DTYPE_FLOAT32, 1, (int64_t[]){24});
  drt_value *res = g_in(g, DRT_DTYPE_FLOAT32, 3, (int64_t[]){2, 7, 24});
  /* bias + gelu_tanh */
  const int64_t p0[] = {DRT_EW_LOAD, 0, 0, 0, 0, DRT_EW_LOAD, 1, 1, 0, 0, DRT_EW_ADD, 2, 1, 0, 0,
                        DRT_EW_GELU_TANH, 3, 2, 0, 0, DRT_EW_STORE, 0, 3, 0, 0};
  fused_gemm(g, a, b, bias, p0, 5);
  /* relu only */
  const int64_t p1[] = {DRT_EW_LOAD, 0, 0, 0, 0, DRT_EW_RELU, 1, 0, 0, 0, DRT_EW_STORE, 0, 1, 0, 0};
  fused_gemm(g, a, b, NULL, p1, 3);
  /* residual add: C = the residual, beta 1 */
  const int64_t p2[] = {DRT_EW_LOAD, 0, 0, 0, 0, DRT_EW_LOAD, 1, 1, 0, 0, DRT_EW_ADD, 2, 0, 1, 0,
                        DRT_EW_STORE, 0, 2, 0, 0};
  fused_gemm(g, a, b, res, p2, 4);
  /* (bias + P) + residual: bias epilogue and C (the order of the addends does not matter) */
  const int64_t p3[] = {DRT_EW_LOAD, 0, 0, 0, 0, DRT_EW_LOAD, 1, 1, 0, 0, DRT_EW_ADD, 2, 1, 0, 0,
                        DRT_EW_LOAD, 3, 2, 0, 0, DRT_EW_ADD, 4, 3, 2, 0, DRT_EW_STORE, 0, 4, 0, 0};
  fused_gemm2(g, a, b, bias, res, p3, 6);
  /* relu(P + residual): cuBLASLt would add C before its activation too, but a full-size C is no
     bias; and (P + bias) * residual: neither maps, a kernel follows the GEMM */
  const int64_t p4[] = {DRT_EW_LOAD, 0, 0, 0, 0, DRT_EW_LOAD, 1, 1, 0, 0, DRT_EW_ADD, 2, 0, 1, 0,
                        DRT_EW_RELU, 3, 2, 0, 0, DRT_EW_STORE, 0, 3, 0, 0};
  fused_gemm(g, a, b, res, p4, 5);
  const int64_t p5[] = {DRT_EW_LOAD, 0, 0, 0, 0, DRT_EW_LOAD, 1, 1, 0, 0, DRT_EW_ADD, 2, 0, 1, 0,
                        DRT_EW_LOAD, 3, 2, 0, 0, DRT_EW_MUL, 4, 2, 3, 0, DRT_EW_STORE, 0, 4, 0, 0};
  fused_gemm2(g, a, b, bias, res, p5, 6);
  drt_cuda_program *p = build(g, DRT_CUDA_PRECISION_BF16);
  size_t n;
  const drt_cuda_launch *l = node_launches(p, 0, &n);
  assert_int_equal(n, 1);
  assert_int_equal(l[0].gemm.epilogue, DRT_CUDA_EPI_GELU_BIAS);
  assert_ptr_equal(l[0].gemm.bias.value, bias);
  assert_int_equal(l[0].gemm.m, 14);
  l = node_launches(p, 1, &n);
  assert_int_equal(n, 1);
  assert_int_equal(l[0].gemm.epilogue, DRT_CUDA_EPI_RELU);
  l = node_launches(p, 2, &n);
  assert_int_equal(n, 1);
  assert_int_equal(l[0].gemm.epilogue, DRT_CUDA_EPI_NONE);
  assert_ptr_equal(l[0].gemm.c.value, res);
  assert_true(l[0].gemm.beta == 1.0f && l[0].gemm.ldc == 24);
  l = node_launches(p, 3, &n);
  assert_int_equal(n, 1);
  assert_int_equal(l[0].gemm.epilogue, DRT_CUDA_EPI_BIAS);
  assert_ptr_equal(l[0].gemm.bias.value, bias);
  assert_ptr_equal(l[0].gemm.c.value, res);
  assert_true(l[0].gemm.beta == 1.0f);
  for (int k = 4; k <= 5; k++) {
    l = node_launches(p, k, &n);
    assert_int_equal(n, 2);
    assert_int_equal(l[0].gemm.epilogue, DRT_CUDA_EPI_NONE);
    assert_int_equal(l[0].gemm.c.kind, DRT_CUDA_ARG_NONE);
    assert_int_equal(l[1].kind, DRT_CUDA_LAUNCH_KERNEL);
  }
  drt_cuda_program_destroy(p);
  drt_graph_destroy(g);
}

static void test_einsum(void **state) {
  (void)state;
  drt_graph *g;
  DRT_ASSERT_OK(drt_graph_create(&g));
  const char *eqs[] = {"bhqd,bhkd->bhqk", "bij,bjk->bik", "i,j->ij", "bqhd,bkhd->bhqk", "nhwpqc->nchpwq"};
  int64_t shapes[][2][6] = {
      {{2, 3, 5, 8}, {2, 3, 6, 8}}, {{2, 5, 7}, {2, 7, 3}}, {{5}, {4}}, {{2, 5, 3, 8}, {2, 6, 3, 8}},
      {{1, 2, 3, 2, 2, 4}, {0}}};
  int ranks[][2] = {{4, 4}, {3, 3}, {1, 1}, {4, 4}, {6, 0}};
  for (int i = 0; i < 5; i++) {
    drt_value *x = g_in(g, DRT_DTYPE_FLOAT32, ranks[i][0], shapes[i][0]);
    drt_value *y = ranks[i][1] ? g_in(g, DRT_DTYPE_FLOAT32, ranks[i][1], shapes[i][1]) : NULL;
    drt_node *nd = g_node(g, DRT_OP_EINSUM, (drt_value *[]){x, y}, y ? 2 : 1, 1);
    a_str(g, nd, "equation", eqs[i]);
    g_finish(g, nd);
  }
  drt_cuda_program *p = build(g, DRT_CUDA_PRECISION_FP32);
  size_t n;
  const drt_cuda_launch *l = node_launches(p, 0, &n);
  assert_int_equal(n, 1); /* Q K^T in place */
  assert_int_equal(l[0].gemm.batch, 6);
  assert_true(l[0].gemm.trans_b);
  assert_false(l[0].gemm.trans_a);
  l = node_launches(p, 2, &n);
  assert_int_equal(n, 1);
  assert_int_equal(l[0].gemm.k, 1);
  l = node_launches(p, 3, &n);
  assert_int_equal(count_kind(l, n, DRT_CUDA_LAUNCH_GEMM), 1);
  l = node_launches(p, 4, &n);
  assert_int_equal(n, 1);
  assert_int_equal(l[0].kind, DRT_CUDA_LAUNCH_KERNEL);
  nvrtc_check(p);
  drt_cuda_program_destroy(p);
  drt_graph_destroy(g);
}

/* ---- Conv ------------------------------------------------------------------------------------- */
static drt_node *conv(drt_graph *g, drt_value *x, drt_value *w, drt_value *b, int64_t group, int64_t stride,
                      int64_t pad, int64_t dil) {
  drt_node *nd = g_node(g, DRT_OP_CONV, (drt_value *[]){x, w, b}, b ? 3 : 2, 1);
  int nsp = x->shape.rank - 2;
  int64_t s[2] = {stride, stride}, d[2] = {dil, dil}, pads[4] = {pad, pad, pad, pad};
  a_int(g, nd, "group", group);
  a_ints(g, nd, "strides", nsp, s);
  a_ints(g, nd, "dilations", nsp, d);
  a_ints(g, nd, "pads", 2 * nsp, pads);
  g_finish(g, nd);
  return nd;
}

static void test_conv_paths(void **state) {
  (void)state;
  drt_graph *g;
  DRT_ASSERT_OK(drt_graph_create(&g));
  drt_value *x = g_in(g, DRT_DTYPE_FLOAT32, 4, (int64_t[]){2, 8, 9, 7});
  drt_value *w3 = g_in(g, DRT_DTYPE_FLOAT32, 4, (int64_t[]){6, 4, 3, 3});
  drt_value *w1 = g_in(g, DRT_DTYPE_FLOAT32, 4, (int64_t[]){6, 8, 1, 1});
  drt_value *wd = g_in(g, DRT_DTYPE_FLOAT32, 4, (int64_t[]){8, 1, 3, 3});
  drt_value *b6 = g_in(g, DRT_DTYPE_FLOAT32, 1, (int64_t[]){6});
  conv(g, x, w3, b6, 2, 2, 1, 1); /* grouped 3x3, stride 2: im2col + bias fill + 2 GEMMs */
  conv(g, x, w1, NULL, 1, 1, 0, 1); /* pointwise: 1 GEMM batched over images */
  conv(g, x, wd, NULL, 8, 1, 2, 2); /* depthwise dilated: direct kernel */
  drt_value *x1 = g_in(g, DRT_DTYPE_FLOAT32, 3, (int64_t[]){1, 8, 11});
  drt_value *w1d = g_in(g, DRT_DTYPE_FLOAT32, 3, (int64_t[]){4, 8, 3});
  conv(g, x1, w1d, NULL, 1, 1, 1, 1); /* 1-D */
  for (int i = 0; i < 2; i++) {
    drt_node *pl = g_node(g, i ? DRT_OP_AVERAGE_POOL : DRT_OP_MAX_POOL, (drt_value *[]){x}, 1, 1);
    a_ints(g, pl, "kernel_shape", 2, (int64_t[]){3, 3});
    a_ints(g, pl, "pads", 4, (int64_t[]){1, 1, 1, 1});
    g_finish(g, pl);
  }
  drt_cuda_program *p = build(g, DRT_CUDA_PRECISION_FP16);
  size_t n, skipped;
  const drt_cuda_launch *l = node_launches(p, 0, &n);
  /* variant 1: the implicit-GEMM kernel (64x64 tiles: too few blocks for 128x128), one launch
     over both images and groups; variant 2: im2col + bias fill + 2 GEMMs */
  assert_int_equal(l[0].variant, 1);
  assert_int_equal(l[0].kind, DRT_CUDA_LAUNCH_KERNEL);
  assert_int_equal(l[0].grid[2], 2 * 2);
  l = last_variant(l, &n, &skipped);
  assert_int_equal(skipped, 1);
  assert_int_equal(l[0].variant, 2);
  assert_int_equal(count_kind(l, n, DRT_CUDA_LAUNCH_KERNEL), 2);
  assert_int_equal(count_kind(l, n, DRT_CUDA_LAUNCH_GEMM), 2);
  for (size_t i = 0; i < n; i++)
    if (l[i].kind == DRT_CUDA_LAUNCH_GEMM) {
      assert_int_equal(l[i].gemm.m, 3);
      assert_int_equal(l[i].gemm.k, 36);
      assert_int_equal(l[i].gemm.n, 20);
      assert_int_equal(l[i].gemm.batch, 2);
      assert_true(l[i].gemm.beta == 1.0f);
    }
  l = node_launches(p, 1, &n);
  assert_int_equal(n, 1);
  assert_int_equal(l[0].variant, 0);
  assert_int_equal(l[0].gemm.batch, 2);
  assert_int_equal(l[0].gemm.k, 8);
  assert_int_equal(l[0].gemm.stride_b, 8 * 63);
  l = node_launches(p, 2, &n);
  assert_int_equal(n, 1);
  assert_int_equal(l[0].kind, DRT_CUDA_LAUNCH_KERNEL);
  assert_true(p->graphs[0].scratch_bytes > 0);
  nvrtc_check(p);
  drt_cuda_program_destroy(p);
  drt_graph_destroy(g);
}

/* im2col scratch stays within 256 MiB: tiles of output positions, or chunks of images. */
static void test_conv_chunks(void **state) {
  (void)state;
  drt_graph *g;
  DRT_ASSERT_OK(drt_graph_create(&g));
  drt_value *x = g_in(g, DRT_DTYPE_FLOAT32, 4, (int64_t[]){1, 128, 512, 512});
  drt_value *w = g_in(g, DRT_DTYPE_FLOAT32, 4, (int64_t[]){128, 128, 3, 3});
  conv(g, x, w, NULL, 1, 1, 1, 1);
  drt_value *x2 = g_in(g, DRT_DTYPE_FLOAT32, 4, (int64_t[]){3, 64, 296, 296});
  drt_value *w2 = g_in(g, DRT_DTYPE_FLOAT32, 4, (int64_t[]){64, 64, 3, 3});
  conv(g, x2, w2, NULL, 1, 1, 1, 1);
  drt_cuda_program *p = build(g, DRT_CUDA_PRECISION_FP16);
  assert_true(p->graphs[0].scratch_bytes <= ((uint64_t)256 << 20));
  size_t n, skipped;
  const drt_cuda_launch *l = node_launches(p, 0, &n);
  l = last_variant(l, &n, &skipped);
  assert_int_equal(skipped, 2); /* implicit GEMM, 128x128 and 64x64 tiles: no scratch */
  /* 1152 x 262144 halves: tiles of 116480 positions */
  assert_int_equal(n, 6);
  int64_t covered = 0;
  for (size_t i = 0; i < n; i++) {
    if (l[i].kind != DRT_CUDA_LAUNCH_GEMM) continue;
    assert_int_equal(l[i].gemm.ldb, 116480);
    assert_int_equal(l[i].gemm.ldd, 262144);
    assert_int_equal(l[i].gemm.d.offset, (uint64_t)covered * 2);
    covered += l[i].gemm.n;
  }
  assert_int_equal(covered, 262144);
  l = node_launches(p, 1, &n);
  l = last_variant(l, &n, &skipped);
  /* 576 x 87616 halves per image: two images per chunk, then one */
  assert_int_equal(n, 4);
  assert_int_equal(l[1].gemm.batch, 2);
  assert_int_equal(l[3].gemm.batch, 1);
  assert_int_equal(l[3].gemm.d.offset, (uint64_t)2 * 64 * 87616 * 2);
  assert_int_equal(l[2].args[3].imm, 2); /* second im2col starts at image 2 */
  drt_cuda_program_destroy(p);
  drt_graph_destroy(g);
}

/* ---- movement ------------------------------------------------------------------------------- */
static void test_movement(void **state) {
  (void)state;
  drt_graph *g;
  DRT_ASSERT_OK(drt_graph_create(&g));
  drt_value *x = g_in(g, DRT_DTYPE_FLOAT32, 4, (int64_t[]){2, 3, 40, 36});
  drt_value *x8 = g_in(g, DRT_DTYPE_FLOAT32, 4, (int64_t[]){2, 8, 20, 36});
  drt_node *t = g_node(g, DRT_OP_TRANSPOSE, (drt_value *[]){x8}, 1, 1);
  a_ints(g, t, "perm", 4, (int64_t[]){0, 2, 3, 1}); /* NCHW -> NHWC: tiled */
  g_finish(g, t);
  drt_node *t2 = g_node(g, DRT_OP_TRANSPOSE, (drt_value *[]){x}, 1, 1);
  a_ints(g, t2, "perm", 4, (int64_t[]){1, 0, 2, 3}); /* rows move whole */
  g_finish(g, t2);
  g_finish(g, g_node(g, DRT_OP_RESHAPE, (drt_value *[]){x, g_ints(g, 2, (int64_t[]){6, -1})}, 2, 1));
  drt_node *c = g_node(g, DRT_OP_CONCAT, (drt_value *[]){x, x}, 2, 1);
  a_int(g, c, "axis", 2);
  g_finish(g, c);
  drt_value *sl_in[5] = {x, g_ints(g, 2, (int64_t[]){-1, 1}), g_ints(g, 2, (int64_t[]){-100, 30}),
                         g_ints(g, 2, (int64_t[]){3, 2}), g_ints(g, 2, (int64_t[]){-3, 2})};
  g_finish(g, g_node(g, DRT_OP_SLICE, sl_in, 5, 1));
  drt_node *pd = g_node(g, DRT_OP_PAD, (drt_value *[]){x, g_ints(g, 8, (int64_t[]){0, 0, 2, -1, 0, 1, 3, 2})}, 2, 1);
  a_str(g, pd, "mode", "reflect");
  g_finish(g, pd);
  drt_node *rz = g_node(g, DRT_OP_RESIZE, (drt_value *[]){x, NULL, g_floats(g, 4, (float[]){1, 1, 2, 2})}, 3, 1);
  a_str(g, rz, "mode", "linear");
  g_finish(g, rz);
  drt_node *ra = g_node(g, DRT_OP_RESIZE, (drt_value *[]){x, NULL, g_floats(g, 4, (float[]){1, 1, 0.3f, 0.5f})}, 3, 1);
  a_str(g, ra, "mode", "cubic");
  a_int(g, ra, "antialias", 1);
  g_finish(g, ra);
  drt_node *rn = g_node(g, DRT_OP_RESIZE, (drt_value *[]){x, NULL, g_floats(g, 4, (float[]){1, 1, 2, 1.5f})}, 3, 1);
  a_str(g, rn, "coordinate_transformation_mode", "asymmetric");
  a_str(g, rn, "nearest_mode", "floor");
  g_finish(g, rn);
  drt_value *ind = g_in(g, DRT_DTYPE_INT64, 2, (int64_t[]){2, 2});
  drt_node *ga = g_node(g, DRT_OP_GATHER, (drt_value *[]){x, ind}, 2, 1);
  a_int(g, ga, "axis", 1);
  g_finish(g, ga);
  drt_node *sp = g_node(g, DRT_OP_SPLIT, (drt_value *[]){x, g_ints(g, 2, (int64_t[]){1, 2})}, 2, 2);
  a_int(g, sp, "axis", 1);
  g_finish(g, sp);
  g_finish(g, g_node(g, DRT_OP_EXPAND, (drt_value *[]){x, g_ints(g, 5, (int64_t[]){2, 1, 1, 1, 1})}, 2, 1));
  g_finish(g, g_node(g, DRT_OP_TRILU, (drt_value *[]){x, g_ints(g, 1, (int64_t[]){-1})}, 2, 1));
  drt_node *ge = g_node(g, DRT_OP_GATHER_ELEMENTS, (drt_value *[]){x, g_in(g, DRT_DTYPE_INT32, 4, (int64_t[]){2, 3, 4, 36})}, 2, 1);
  a_int(g, ge, "axis", 2);
  g_finish(g, ge);
  drt_value *sidx = g_in(g, DRT_DTYPE_INT64, 2, (int64_t[]){5, 2});
  g_finish(g, g_node(g, DRT_OP_SCATTER_ND, (drt_value *[]){x, sidx, g_in(g, DRT_DTYPE_FLOAT32, 3, (int64_t[]){5, 40, 36})}, 3, 1));
  /* nearest x2 with half_pixel / round_prefer_floor (the ONNX defaults, diffusers' upsampling):
     the integer-upsample kernel, 8 halves per thread; rn above (x1.5) keeps the general one */
  drt_node *ru = g_node(g, DRT_OP_RESIZE, (drt_value *[]){x, NULL, g_floats(g, 4, (float[]){1, 1, 2, 2})}, 3, 1);
  g_finish(g, ru);
  drt_cuda_program *p = build(g, DRT_CUDA_PRECISION_FP16);
  for (size_t i = 0; i < g->num_nodes; i++) {
    if (g->nodes[i] != ru && g->nodes[i] != rn) continue;
    size_t cnt;
    const drt_cuda_launch *lr = node_launches(p, i, &cnt);
    assert_int_equal(cnt, 1);
    const drt_cuda_kernel *k = &p->kernels[lr[0].kernel];
    const char *want = g->nodes[i] == ru ? "drt_upsample_nearest<unsigned short, int, 4, 8>" : "drt_resize_nearest<";
    assert_non_null(memmem(p->source + k->src_begin, k->src_end - k->src_begin, want, strlen(want)));
  }
  size_t n;
  const drt_cuda_launch *l = node_launches(p, 0, &n);
  assert_int_equal(n, 1);
  assert_int_equal(l[0].block[0], 32);
  assert_int_equal(l[0].block[1], 8);
  l = node_launches(p, 2, &n);
  assert_int_equal(n, 1);
  assert_int_equal(l[0].kind, DRT_CUDA_LAUNCH_COPY);
  assert_int_equal(l[0].bytes, 2 * 3 * 40 * 36 * 2);
  l = node_launches(p, 3, &n);
  assert_int_equal(n, 2);
  assert_int_equal(l[1].args[0].offset, 40 * 36 * 2);
  for (size_t i = 0; i < p->graphs[0].num_launches; i++)
    assert_int_not_equal(p->graphs[0].launches[i].kind, DRT_CUDA_LAUNCH_HOST);
  nvrtc_check(p);
  drt_cuda_program_destroy(p);
  drt_graph_destroy(g);
}


/* ---- numerics on the CPU emulator --------------------------------------------------------------- */
typedef struct emu_graph {
  drt_graph *g;
  void *data[256]; /* data of graph input i (float32 for FLOAT32, raw otherwise) */
  int nin;
  drt_test_rng rng;
} emu_graph;

static drt_value *e_in(emu_graph *t, drt_dtype dt, int rank, const int64_t *dims) {
  drt_value *v = g_in(t->g, dt, rank, dims);
  int64_t n = drt_shape_numel(&v->shape);
  size_t es = drt_dtype_size(dt);
  uint8_t *p = malloc((size_t)n * es + 8);
  assert_non_null(p);
  for (int64_t i = 0; i < n; i++) {
    if (dt == DRT_DTYPE_FLOAT32)
      ((float *)p)[i] = drt_test_uniform(&t->rng, -1.0f, 1.0f);
    else if (dt == DRT_DTYPE_BOOL)
      p[i] = (uint8_t)(drt_test_next(&t->rng) & 1);
    else
      for (size_t b = 0; b < es; b++) p[(size_t)i * es + b] = (uint8_t)drt_test_next(&t->rng);
  }
  assert_true(t->nin < 256);
  t->data[t->nin++] = p;
  return v;
}
static drt_value *e_f(emu_graph *t, int rank, const int64_t *dims) { return e_in(t, DRT_DTYPE_FLOAT32, rank, dims); }
/* integer indices in [lo, hi) */
static drt_value *e_idx(emu_graph *t, drt_dtype dt, int rank, const int64_t *dims, int64_t lo, int64_t hi) {
  drt_value *v = e_in(t, dt, rank, dims);
  int64_t n = drt_shape_numel(&v->shape);
  for (int64_t i = 0; i < n; i++) {
    int64_t x = lo + (int64_t)(drt_test_next(&t->rng) % (uint64_t)(hi - lo));
    if (dt == DRT_DTYPE_INT32)
      ((int32_t *)t->data[t->nin - 1])[i] = (int32_t)x;
    else
      ((int64_t *)t->data[t->nin - 1])[i] = x;
  }
  return v;
}

#define D(...) (int64_t[]){__VA_ARGS__}
#define V(...) (drt_value *[]){__VA_ARGS__}

static float st_load(drt_dtype t, const void *p, int64_t i) {
  switch (t) {
    case DRT_DTYPE_FLOAT32: return ((const float *)p)[i];
    case DRT_DTYPE_FLOAT16: return drt_f16_to_f32(((const uint16_t *)p)[i]);
    case DRT_DTYPE_BFLOAT16: return drt_bf16_to_f32(((const uint16_t *)p)[i]);
    default: return NAN;
  }
}
static void st_store(drt_dtype t, void *p, int64_t i, float v) {
  if (t == DRT_DTYPE_FLOAT32) ((float *)p)[i] = v;
  if (t == DRT_DTYPE_FLOAT16) ((uint16_t *)p)[i] = drt_f32_to_f16(v);
  if (t == DRT_DTYPE_BFLOAT16) ((uint16_t *)p)[i] = drt_f32_to_bf16(v);
}

/* The drt_cuda_gemm contract (row-major, codegen/codegen.h), accumulating in double. */
static void ref_gemm(const drt_cuda_gemm *g, const char *A, const char *B, const char *C, char *D, const char *bias) {
  for (int64_t b = 0; b < g->batch; b++)
    for (int64_t i = 0; i < g->m; i++)
      for (int64_t j = 0; j < g->n; j++) {
        double acc = 0;
        for (int64_t p = 0; p < g->k; p++) {
          int64_t ia = b * g->stride_a + (g->trans_a ? p * g->lda + i : i * g->lda + p);
          int64_t ib = b * g->stride_b + (g->trans_b ? j * g->ldb + p : p * g->ldb + j);
          acc += (double)st_load(g->a_type, A, ia) * (double)st_load(g->b_type, B, ib);
        }
        double v = g->alpha * acc;
        if (C) v += g->beta * st_load(g->c_type, C, b * g->stride_c + i * g->ldc + j);
        uint8_t e = g->epilogue;
        if (e == DRT_CUDA_EPI_BIAS || e == DRT_CUDA_EPI_GELU_BIAS || e == DRT_CUDA_EPI_RELU_BIAS)
          v += st_load(g->bias_type, bias, j);
        if (e == DRT_CUDA_EPI_RELU || e == DRT_CUDA_EPI_RELU_BIAS) v = v > 0 ? v : 0;
        if (e == DRT_CUDA_EPI_GELU || e == DRT_CUDA_EPI_GELU_BIAS)
          v = 0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
        st_store(g->d_type, D, b * g->stride_d + i * g->ldd + j, (float)v);
      }
}

typedef int (*emu_launch_fn)(const void *, const unsigned *, const unsigned *, size_t, const void *);

static bool emu_available(void) {
  if (getenv("DRT_TEST_NO_EMU")) return false; /* CI's clang and sanitizer builds: gcc's run covers it */
  const char *src = getenv("DRT_SOURCE_DIR");
  if (!src) return false;
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/cuda_emu/build_kernels.sh", src);
  return access(path, R_OK) == 0 && system("bash -c \"g++ --version\" > /dev/null 2>&1") == 0;
}

/* Compiles p with the emulator and dlopens it. */
static void *emu_load(const drt_cuda_program *p) {
  char dir[] = "/tmp/drt_cg_linalg_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char src[128], so[128], cmd[1536];
  snprintf(src, sizeof src, "%s/program.cu", dir);
  snprintf(so, sizeof so, "%s/kernels.so", dir);
  FILE *f = fopen(src, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(p->source, 1, p->source_len, f), p->source_len);
  fclose(f);
  snprintf(cmd, sizeof cmd, "bash \"%s/tests/cuda_emu/build_kernels.sh\" %s %s", getenv("DRT_SOURCE_DIR"), src, so);
  int rc = system(cmd);
  if (rc != 0) print_error("emulator build failed: %s\n", cmd);
  assert_int_equal(rc, 0);
  void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
  if (!h) print_error("dlopen: %s\n", dlerror());
  assert_non_null(h);
  unlink(so);
  unlink(src);
  rmdir(dir);
  return h;
}

/* Runs graph t on the emulator in precision prec and compares every node output with the CPU
 * kernels (float: relative L2 within the precision's tolerance, no NaN; other dtypes: exact).
 * Returns the number of mismatching outputs (printed). */
static int emu_check(emu_graph *t, drt_cuda_precision prec, const char *label) {
  drt_graph *g = t->g;
  drt_cuda_program *p = build(g, prec);
  void *so = emu_load(p);
  emu_launch_fn launch = (emu_launch_fn)dlsym(so, "drt_emu_launch");
  const char *(*emu_err)(void) = (const char *(*)(void))dlsym(so, "drt_emu_error");
  assert_non_null(launch);
  assert_non_null(emu_err);
  size_t nv = g->next_id + 1;
  char **buf = calloc(nv, sizeof *buf);
  void **host = calloc(nv, sizeof *host);
  void **owned = calloc(nv, sizeof *owned);
  assert_true(buf && host && owned);
  char *scratch = malloc(p->graphs[0].scratch_bytes + 256);
  assert_non_null(scratch);
  memset(scratch, 0xff, p->graphs[0].scratch_bytes + 256);
  for (size_t i = 0; i < g->num_inputs; i++) host[g->inputs[i]->id] = t->data[i];
  for (size_t i = 0; i < g->num_values; i++) {
    drt_value *v = g->values[i];
    drt_dtype sd = drt_cuda_storage_dtype(prec, v->dtype);
    int64_t numel = drt_shape_numel(&v->shape);
    size_t nb = (size_t)numel * drt_dtype_size(sd);
    buf[v->id] = malloc(nb + 64);
    assert_non_null(buf[v->id]);
    memset(buf[v->id], 0xff, nb + 64); /* NaN: unwritten outputs show */
    if (v->kind == DRT_VALUE_CONST) host[v->id] = v->data;
    const void *src = host[v->id];
    if (!src) continue;
    if (sd == v->dtype) {
      memcpy(buf[v->id], src, nb);
    } else {
      /* activations: the CPU sees the values the device stores (weights and shape-like
         constants keep their float32 values, as the runtime uploads them) */
      float *q = v->kind == DRT_VALUE_CONST ? NULL : malloc((size_t)numel * 4 + 4);
      for (int64_t k = 0; k < numel; k++) {
        st_store(sd, buf[v->id], k, ((const float *)src)[k]);
        if (q) q[k] = st_load(sd, buf[v->id], k);
      }
      if (q) host[v->id] = owned[v->id] = q;
    }
  }
  int fails = 0;
  const drt_cuda_graph_code *c = &p->graphs[0];
  for (size_t li = 0; li < c->num_launches; li++) {
    const drt_cuda_launch *l = &c->launches[li];
#define ARGP(a) ((a).kind == DRT_CUDA_ARG_VALUE ? buf[(a).value->id] + (a).offset \
                 : (a).kind == DRT_CUDA_ARG_SCRATCH ? scratch + (a).offset : NULL)
    if (l->kind == DRT_CUDA_LAUNCH_KERNEL) {
      unsigned long long u[DRT_CUDA_MAX_ARGS] = {0};
      for (int a = 0; a < l->num_args; a++)
        u[a] = l->args[a].kind == DRT_CUDA_ARG_IMM ? l->args[a].imm : (unsigned long long)(uintptr_t)ARGP(l->args[a]);
      void *fn = dlsym(so, p->kernels[l->kernel].name);
      assert_non_null(fn);
      if (launch(fn, l->grid, l->block, l->smem, u) != 0) {
        print_error("[%s] kernel %s: %s\n", label, p->kernels[l->kernel].name, emu_err());
        fails++;
      }
    } else if (l->kind == DRT_CUDA_LAUNCH_GEMM) {
      const drt_cuda_gemm *m = &l->gemm;
      ref_gemm(m, ARGP(m->a), ARGP(m->b), m->c.kind ? ARGP(m->c) : NULL, ARGP(m->d), m->bias.kind ? ARGP(m->bias) : NULL);
    } else if (l->kind == DRT_CUDA_LAUNCH_COPY) {
      char *dst = ARGP(l->dst), *src = ARGP(l->src);
      if (dst != src) memmove(dst, src, l->bytes);
    } else {
      print_error("[%s] HOST launch: %s\n", label, l->reason);
      fails++;
    }
#undef ARGP
    /* no launch may write past a buffer */
    for (size_t vi = 0; vi < g->num_values; vi++) {
      drt_value *v = g->values[vi];
      size_t nb = (size_t)drt_shape_numel(&v->shape) * drt_dtype_size(drt_cuda_storage_dtype(prec, v->dtype));
      for (int q = 0; q < 64; q++)
        if ((unsigned char)buf[v->id][nb + q] != 0xff) {
          print_error("[%s] launch %zu of node %u overran value %u\n", label, li, l->node, v->id);
          fails++;
          memset(buf[v->id] + nb, 0xff, 64);
          break;
        }
    }
  }
  drt_cpu_ctx ctx = {NULL, 1};
  double tol = prec == DRT_CUDA_PRECISION_FP16 ? 3e-3 : prec == DRT_CUDA_PRECISION_BF16 ? 2e-2 : 1e-5;
  for (size_t ni = 0; ni < g->num_nodes; ni++) {
    drt_node *n = g->nodes[ni];
    drt_tensor in[64], out[8];
    for (int i = 0; i < n->num_inputs; i++) {
      memset(&in[i], 0, sizeof in[i]);
      if (!n->inputs[i]) continue;
      in[i].dtype = n->inputs[i]->dtype;
      in[i].shape = n->inputs[i]->shape;
      in[i].data = host[n->inputs[i]->id];
    }
    for (int i = 0; i < n->num_outputs; i++) {
      out[i].dtype = n->outputs[i]->dtype;
      out[i].shape = n->outputs[i]->shape;
      out[i].data = calloc(drt_tensor_nbytes(&out[i]) + 1, 1);
      assert_non_null(out[i].data);
    }
    DRT_ASSERT_OK(drt_cpu_run_node(&ctx, n, in, out));
    for (int i = 0; i < n->num_outputs; i++) {
      drt_value *v = n->outputs[i];
      drt_dtype sd = drt_cuda_storage_dtype(prec, v->dtype);
      int64_t numel = drt_shape_numel(&v->shape);
      char sh[64];
      drt_shape_str(&v->shape, sh, sizeof sh);
      if (v->dtype == DRT_DTYPE_FLOAT32) {
        double num = 0, den = 0;
        int64_t nan = 0;
        for (int64_t k = 0; k < numel; k++) {
          double a = st_load(sd, buf[v->id], k), b = ((float *)out[i].data)[k];
          nan += isnan(a) && !isnan(b);
          num += (a - b) * (a - b);
          den += b * b;
        }
        double rel = sqrt(num) / (den > 0 ? sqrt(den) : 1.0);
        if (nan || !(rel <= tol)) {
          print_error("[%s/%s] node %zu %s -> %s: relative L2 %.3g, %" PRId64 " NaN\n", label,
                      drt_cuda_precision_name(prec), ni, drt_op_name(n->op), sh, rel, nan);
          fails++;
        }
      } else if (memcmp(buf[v->id], out[i].data, (size_t)numel * drt_dtype_size(v->dtype)) != 0) {
        print_error("[%s/%s] node %zu %s -> %s (%s) differs\n", label, drt_cuda_precision_name(prec), ni,
                    drt_op_name(n->op), sh, drt_dtype_name(v->dtype));
        fails++;
      }
      free(out[i].data);
    }
  }
  for (size_t i = 0; i < nv; i++) {
    free(buf[i]);
    free(owned[i]);
  }
  free(buf);
  free(host);
  free(owned);
  free(scratch);
  /* the emulated kernels .so stays loaded: its per-thread block state would be reported by
       LeakSanitizer once the module is gone */
  (void)so;
  drt_cuda_program_destroy(p);
  return fails;
}

static void emu_free(emu_graph *t) {
  for (int i = 0; i < t->nin; i++) free(t->data[i]);
  drt_graph_destroy(t->g);
}

static void e_transpose(emu_graph *t, drt_value *x, const int64_t *perm) {
  drt_node *n = g_node(t->g, DRT_OP_TRANSPOSE, V(x), 1, 1);
  if (perm) a_ints(t->g, n, "perm", x->shape.rank, perm);
  g_finish(t->g, n);
}

static void build_movement(emu_graph *t, drt_dtype dt) {
  drt_graph *g = t->g;
  drt_value *x = e_in(t, dt, 4, D(2, 3, 37, 33)), *y = e_in(t, dt, 4, D(2, 9, 20, 36));
  e_transpose(t, y, D(0, 2, 3, 1));
  e_transpose(t, y, D(0, 3, 1, 2));
  e_transpose(t, x, D(1, 0, 2, 3));
  e_transpose(t, x, D(3, 1, 2, 0));
  e_transpose(t, x, NULL);
  e_transpose(t, y, D(0, 2, 1, 3));
  e_transpose(t, e_in(t, dt, 5, D(3, 5, 7, 2, 4)), D(2, 4, 0, 3, 1));
  g_finish(g, g_node(g, DRT_OP_RESHAPE, V(x, g_ints(g, 2, D(6, -1))), 2, 1));
  g_finish(g, g_node(g, DRT_OP_FLATTEN, V(x), 1, 1));
  drt_node *n = g_node(g, DRT_OP_CONCAT, V(x, x, x), 3, 1);
  a_int(g, n, "axis", 3);
  g_finish(g, n);
  n = g_node(g, DRT_OP_CONCAT, V(x, e_in(t, dt, 4, D(2, 5, 37, 33))), 2, 1);
  a_int(g, n, "axis", -3);
  g_finish(g, n);
  n = g_node(g, DRT_OP_SPLIT, V(x, g_ints(g, 3, D(10, 20, 7))), 2, 3);
  a_int(g, n, "axis", 2);
  g_finish(g, n);
  n = g_node(g, DRT_OP_SPLIT, V(y, g_ints(g, 2, D(4, 5))), 2, 2);
  a_int(g, n, "axis", 1);
  g_finish(g, n);
  g_finish(g, g_node(g, DRT_OP_SLICE,
                     V(x, g_ints(g, 2, D(-1, 1)), g_ints(g, 2, D(-100, 30)), g_ints(g, 2, D(3, 2)), g_ints(g, 2, D(-3, 2))),
                     5, 1));
  g_finish(g, g_node(g, DRT_OP_SLICE, V(x, g_ints(g, 1, D(2)), g_ints(g, 1, D(35)), g_ints(g, 1, D(2))), 4, 1));
  g_finish(g, g_node(g, DRT_OP_EXPAND, V(e_in(t, dt, 3, D(3, 1, 5)), g_ints(g, 4, D(2, 3, 4, 5))), 2, 1));
  g_finish(g, g_node(g, DRT_OP_EXPAND, V(e_in(t, dt, 2, D(1, 7)), g_ints(g, 2, D(6, 1))), 2, 1));
  g_finish(g, g_node(g, DRT_OP_TILE, V(e_in(t, dt, 3, D(2, 3, 5)), g_ints(g, 3, D(2, 1, 3))), 2, 1));
  for (int m = 0; m < 3; m++) {
    n = g_node(g, m < 2 ? DRT_OP_DEPTH_TO_SPACE : DRT_OP_SPACE_TO_DEPTH,
               V(e_in(t, dt, 4, m < 2 ? D(2, 12, 3, 5) : D(2, 3, 6, 4))), 1, 1);
    a_int(g, n, "blocksize", 2);
    if (m == 1) a_str(g, n, "mode", "CRD");
    g_finish(g, n);
  }
  const char *modes[] = {"constant", "reflect", "edge", "wrap"};
  for (int m = 0; m < 4; m++) {
    n = g_node(g, DRT_OP_PAD, V(x, g_ints(g, 8, D(0, 1, 2, -1, 1, 0, 3, 2))), 2, 1);
    a_str(g, n, "mode", modes[m]);
    g_finish(g, n);
  }
  if (dt == DRT_DTYPE_FLOAT32)
    g_finish(g, g_node(g, DRT_OP_PAD, V(x, g_ints(g, 4, D(1, 2, 3, 4)), g_floats(g, 1, (float[]){2.5f}), g_ints(g, 2, D(-1, 1))),
                       4, 1));
  n = g_node(g, DRT_OP_GATHER, V(x, e_idx(t, DRT_DTYPE_INT64, 2, D(2, 4), -3, 3)), 2, 1);
  a_int(g, n, "axis", 1);
  g_finish(g, n);
  n = g_node(g, DRT_OP_GATHER, V(x, e_idx(t, DRT_DTYPE_INT32, 1, D(5), -33, 33)), 2, 1);
  a_int(g, n, "axis", -1);
  g_finish(g, n);
  n = g_node(g, DRT_OP_GATHER, V(x, g_ints(g, 1, D(-2))), 2, 1);
  a_int(g, n, "axis", 2);
  g_finish(g, n);
  /* nearest Resize: every coordinate transform and rounding, up and down */
  const char *coords[] = {"half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel", "half_pixel_symmetric"};
  const char *nms[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
  for (int ci = 0; ci < 5; ci++)
    for (int mi = 0; mi < 4; mi++) {
      float sc[4] = {1, 1, ci % 2 ? 2.0f : 1.7f, mi % 2 ? 0.6f : 2.0f};
      n = g_node(g, DRT_OP_RESIZE, V(x, NULL, g_floats(g, 4, sc)), 3, 1);
      a_str(g, n, "coordinate_transformation_mode", coords[ci]);
      a_str(g, n, "nearest_mode", nms[mi]);
      g_finish(g, n);
    }
  g_finish(g, g_node(g, DRT_OP_RESIZE, V(x, NULL, NULL, g_ints(g, 4, D(2, 3, 74, 66))), 4, 1));
  /* Trilu, GatherElements, ScatterND (unique indices: duplicates are undefined) */
  for (int up = 0; up < 2; up++)
    for (int k = -2; k <= 3; k += 5) {
      n = g_node(g, DRT_OP_TRILU, V(x, g_ints(g, 1, D(k))), 2, 1);
      a_int(g, n, "upper", up);
      g_finish(g, n);
    }
  n = g_node(g, DRT_OP_GATHER_ELEMENTS, V(x, e_idx(t, DRT_DTYPE_INT64, 4, D(2, 3, 5, 33), -37, 37)), 2, 1);
  a_int(g, n, "axis", 2);
  g_finish(g, n);
  n = g_node(g, DRT_OP_GATHER_ELEMENTS, V(x, e_idx(t, DRT_DTYPE_INT32, 4, D(1, 2, 37, 4), -33, 33)), 2, 1);
  a_int(g, n, "axis", -1);
  g_finish(g, n);
  {
    drt_shape is = drt_test_shape(2, D(4, 3));
    const int64_t iv[12] = {1, 2, 0, 0, -1, 5, 1, 0, 36, 0, 2, 36};
    drt_value *idx;
    DRT_ASSERT_OK(drt_graph_add_const(g, NULL, DRT_DTYPE_INT64, &is, iv, &idx));
    g_finish(g, g_node(g, DRT_OP_SCATTER_ND, V(x, idx, e_in(t, dt, 2, D(4, 33))), 3, 1));
  }
}

static void build_interp(emu_graph *t) {
  drt_graph *g = t->g;
  drt_value *x = e_f(t, 4, D(2, 3, 13, 11));
  const char *coords[] = {"half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel", "half_pixel_symmetric",
                          "tf_crop_and_resize"};
  for (int mode = 0; mode < 2; mode++)
    for (int ci = 0; ci < 6; ci++)
      for (int s = 0; s < 2; s++) {
        float sc[4] = {1, 1, s ? 2.0f : 0.7f, s ? 1.5f : 2.3f};
        drt_value *roi = ci == 5 ? g_floats(g, 8, (float[]){0, 0, 0.1f, 0.2f, 1, 1, 0.8f, 1.1f}) : NULL;
        drt_node *n = g_node(g, DRT_OP_RESIZE, V(x, roi, g_floats(g, 4, sc)), 3, 1);
        a_str(g, n, "mode", mode ? "cubic" : "linear");
        a_str(g, n, "coordinate_transformation_mode", coords[ci]);
        if (ci == 5) a_float(g, n, "extrapolation_value", -3.0f);
        if (mode && s) a_int(g, n, "exclude_outside", 1);
        g_finish(g, n);
      }
  /* antialias: the kernel widens with the downscale factor */
  drt_value *xa = e_f(t, 4, D(1, 2, 23, 19));
  for (int mode = 0; mode < 2; mode++)
    for (int s = 0; s < 3; s++) {
      float sc[4] = {1, 1, s == 0 ? 0.3f : s == 1 ? 0.6f : 1.5f, s == 0 ? 0.45f : s == 1 ? 1.25f : 0.2f};
      drt_node *n = g_node(g, DRT_OP_RESIZE, V(xa, NULL, g_floats(g, 4, sc)), 3, 1);
      a_str(g, n, "mode", mode ? "cubic" : "linear");
      a_int(g, n, "antialias", 1);
      if (s == 1) a_str(g, n, "coordinate_transformation_mode", "align_corners");
      if (mode && s == 2) a_int(g, n, "exclude_outside", 1);
      g_finish(g, n);
    }
  drt_node *n = g_node(g, DRT_OP_RESIZE, V(e_f(t, 3, D(4, 5, 6)), NULL, g_floats(g, 3, (float[]){1.5f, 2, 0.5f})), 3, 1);
  a_str(g, n, "mode", "linear");
  g_finish(g, n);
  n = g_node(g, DRT_OP_UPSAMPLE, V(x, g_floats(g, 4, (float[]){1, 1, 2, 2})), 2, 1);
  n->opset = 9;
  g_finish(g, n);
}

static void e_conv(emu_graph *t, drt_value *x, drt_value *w, drt_value *b, int64_t group, int64_t stride,
                   const int64_t *pads, int64_t dil) {
  drt_node *n = g_node(t->g, DRT_OP_CONV, V(x, w, b), b ? 3 : 2, 1);
  int nsp = x->shape.rank - 2;
  a_int(t->g, n, "group", group);
  a_ints(t->g, n, "strides", nsp, D(stride, stride));
  a_ints(t->g, n, "dilations", nsp, D(dil, dil));
  if (pads) a_ints(t->g, n, "pads", 2 * nsp, pads);
  g_finish(t->g, n);
}

static void build_linalg(emu_graph *t) {
  drt_graph *g = t->g;
  const int64_t mm[][2][5] = {{{2, 1, 3, 17}, {1, 5, 17, 6}}, {{2, 3, 4, 5}, {5, 6}}, {{7}, {3, 7, 2}},
                              {{3, 4, 7}, {7}}, {{9, 31}, {2, 3, 31, 10}}, {{3, 1, 8}, {2, 1, 8, 5}}};
  const int mr[][2] = {{4, 4}, {4, 2}, {1, 3}, {3, 1}, {2, 4}, {3, 4}};
  for (int i = 0; i < 6; i++)
    g_finish(g, g_node(g, DRT_OP_MATMUL, V(e_f(t, mr[i][0], mm[i][0]), e_f(t, mr[i][1], mm[i][1])), 2, 1));
  drt_value *a = e_f(t, 2, D(5, 3)), *b = e_f(t, 2, D(4, 5));
  drt_value *cs[4] = {e_f(t, 1, D(4)), e_f(t, 2, D(3, 4)), e_f(t, 2, D(3, 1)), e_f(t, 0, D(0))};
  for (int i = 0; i < 4; i++)
    for (int beta = 0; beta < 2; beta++) {
      drt_node *n = g_node(g, DRT_OP_GEMM, V(a, b, cs[i]), 3, 1);
      a_int(g, n, "transA", 1);
      a_int(g, n, "transB", 1);
      a_float(g, n, "alpha", 0.5f);
      if (beta) a_float(g, n, "beta", -2.0f);
      g_finish(g, n);
    }
  g_finish(g, g_node(g, DRT_OP_GEMM, V(e_f(t, 2, D(3, 5)), e_f(t, 2, D(5, 4))), 2, 1));
  /* drt.Gemm epilogues: mapped onto cuBLASLt, or a program over D */
  drt_value *fa = e_f(t, 3, D(2, 7, 16)), *fb = e_f(t, 2, D(16, 24)), *bias = e_f(t, 1, D(24));
  drt_value *res = e_f(t, 3, D(2, 7, 24));
  const int64_t p0[] = {DRT_EW_LOAD, 0, 0, 0, 0, DRT_EW_LOAD, 1, 1, 0, 0, DRT_EW_ADD, 2, 1, 0, 0,
                        DRT_EW_GELU_TANH, 3, 2, 0, 0, DRT_EW_STORE, 0, 3, 0, 0};
  const int64_t p1[] = {DRT_EW_LOAD, 0, 0, 0, 0, DRT_EW_RELU, 1, 0, 0, 0, DRT_EW_STORE, 0, 1, 0, 0};
  const int64_t p2[] = {DRT_EW_LOAD, 0, 0, 0, 0, DRT_EW_LOAD, 1, 1, 0, 0, DRT_EW_ADD, 2, 0, 1, 0,
                        DRT_EW_STORE, 0, 2, 0, 0};
  const int64_t p3[] = {DRT_EW_LOAD, 0, 0, 0, 0, DRT_EW_LOAD, 1, 1, 0, 0, DRT_EW_ADD, 2, 0, 1, 0,
                        DRT_EW_RELU, 3, 2, 0, 0, DRT_EW_LOAD, 4, 2, 0, 0, DRT_EW_MUL, 5, 3, 4, 0,
                        DRT_EW_STORE, 0, 5, 0, 0};
  fused_gemm(g, fa, fb, bias, p0, 5);
  fused_gemm(g, fa, fb, NULL, p1, 3);
  fused_gemm(g, fa, fb, res, p2, 4);
  fused_gemm(g, fa, fb, bias, p2, 4);
  drt_node *n = g_node(g, DRT_OP_FUSED_GEMM, V(fa, fb, bias, res), 4, 1);
  a_ints(g, n, "program", 35, p3);
  g_finish(g, n);
  n = g_node(g, DRT_OP_FUSED_GEMM, V(e_f(t, 2, D(6, 9)), e_f(t, 2, D(5, 6)), e_f(t, 1, D(5))), 3, 1);
  a_int(g, n, "transA", 1);
  a_int(g, n, "transB", 1);
  a_float(g, n, "alpha", 0.25f);
  a_ints(g, n, "program", 25, p0);
  g_finish(g, n);
  /* Einsum */
  const char *eqs[] = {"bhqd,bhkd->bhqk", "bij,bjk->bik", "i,j->ij", "bqhd,bkhd->bhqk",
                       "nhwpqc->nchpwq", "bhqk,bhkd->bqhd", "ij,jk->ki"};
  const int64_t es[][2][6] = {{{2, 3, 5, 8}, {2, 3, 6, 8}}, {{2, 5, 7}, {2, 7, 3}}, {{5}, {4}},
                              {{2, 5, 3, 8}, {2, 6, 3, 8}}, {{1, 2, 3, 2, 2, 4}, {0}}, {{2, 3, 5, 6}, {2, 3, 6, 4}},
                              {{3, 4}, {4, 5}}};
  const int er[][2] = {{4, 4}, {3, 3}, {1, 1}, {4, 4}, {6, 0}, {4, 4}, {2, 2}};
  for (int i = 0; i < 7; i++) {
    drt_value *x = e_f(t, er[i][0], es[i][0]), *y = er[i][1] ? e_f(t, er[i][1], es[i][1]) : NULL;
    n = g_node(g, DRT_OP_EINSUM, V(x, y), y ? 2 : 1, 1);
    a_str(g, n, "equation", eqs[i]);
    g_finish(g, n);
  }
  /* Conv: im2col + GEMM (grouped, strided, asymmetric pads, dilation), pointwise, direct */
  drt_value *x = e_f(t, 4, D(2, 8, 9, 7));
  e_conv(t, x, e_f(t, 4, D(6, 4, 3, 3)), e_f(t, 1, D(6)), 2, 2, D(1, 1, 1, 1), 1);
  e_conv(t, x, e_f(t, 4, D(6, 8, 1, 1)), NULL, 1, 1, NULL, 1);
  e_conv(t, x, e_f(t, 4, D(6, 8, 1, 1)), e_f(t, 1, D(6)), 1, 1, NULL, 1);
  e_conv(t, x, e_f(t, 4, D(8, 4, 1, 1)), e_f(t, 1, D(8)), 2, 1, NULL, 1);
  e_conv(t, x, e_f(t, 4, D(8, 1, 3, 3)), NULL, 8, 1, D(2, 2, 2, 2), 2);
  e_conv(t, x, e_f(t, 4, D(16, 1, 3, 3)), e_f(t, 1, D(16)), 8, 2, D(0, 1, 2, 1), 1);
  e_conv(t, x, e_f(t, 4, D(5, 8, 3, 2)), e_f(t, 1, D(5)), 1, 1, D(1, 0, 2, 1), 2);
  e_conv(t, e_f(t, 3, D(1, 8, 11)), e_f(t, 3, D(4, 8, 3)), NULL, 1, 1, D(1, 1), 1);
  e_conv(t, e_f(t, 4, D(3, 32, 10, 10)), e_f(t, 4, D(20, 32, 3, 3)), e_f(t, 1, D(20)), 1, 1, D(1, 1, 1, 1), 1);
  n = g_node(g, DRT_OP_CONV, V(x, e_f(t, 4, D(4, 8, 3, 3))), 2, 1);
  a_str(g, n, "auto_pad", "SAME_UPPER");
  a_ints(g, n, "strides", 2, D(2, 2));
  g_finish(g, n);
  n = g_node(g, DRT_OP_FUSED_CONV, V(x, e_f(t, 4, D(6, 8, 3, 3)), e_f(t, 1, D(6)), e_f(t, 4, D(2, 6, 9, 7))), 4, 1);
  a_ints(g, n, "pads", 4, D(1, 1, 1, 1));
  a_ints(g, n, "program", 20, p2);
  g_finish(g, n);
  /* ConvTranspose */
  n = g_node(g, DRT_OP_CONV_TRANSPOSE, V(x, e_f(t, 4, D(8, 3, 3, 3)), e_f(t, 1, D(6))), 3, 1);
  a_int(g, n, "group", 2);
  a_ints(g, n, "strides", 2, D(2, 2));
  a_ints(g, n, "pads", 4, D(1, 0, 1, 1));
  a_ints(g, n, "output_padding", 2, D(1, 0));
  g_finish(g, n);
  /* 3-D: im2col + GEMM, pointwise, direct, ConvTranspose, pools */
  drt_value *x3 = e_f(t, 5, D(2, 4, 5, 6, 7));
  n = g_node(g, DRT_OP_CONV, V(x3, e_f(t, 5, D(6, 4, 3, 3, 2)), e_f(t, 1, D(6))), 3, 1);
  a_ints(g, n, "pads", 6, D(1, 0, 1, 1, 1, 0));
  a_ints(g, n, "strides", 3, D(2, 1, 1));
  a_ints(g, n, "dilations", 3, D(1, 2, 1));
  g_finish(g, n);
  g_finish(g, g_node(g, DRT_OP_CONV, V(x3, e_f(t, 5, D(5, 4, 1, 1, 1))), 2, 1));
  n = g_node(g, DRT_OP_CONV, V(x3, e_f(t, 5, D(4, 1, 3, 1, 1)), e_f(t, 1, D(4))), 3, 1);
  a_int(g, n, "group", 4);
  a_ints(g, n, "pads", 6, D(1, 0, 0, 1, 0, 0));
  g_finish(g, n);
  n = g_node(g, DRT_OP_CONV_TRANSPOSE, V(x3, e_f(t, 5, D(4, 3, 2, 3, 2)), e_f(t, 1, D(3))), 3, 1);
  a_ints(g, n, "strides", 3, D(2, 1, 2));
  a_ints(g, n, "pads", 6, D(0, 1, 0, 0, 1, 1));
  g_finish(g, n);
  for (int i = 0; i < 2; i++) {
    n = g_node(g, i ? DRT_OP_AVERAGE_POOL : DRT_OP_MAX_POOL, V(x3), 1, 1);
    a_ints(g, n, "kernel_shape", 3, D(2, 3, 2));
    a_ints(g, n, "pads", 6, D(1, 1, 0, 0, 1, 1));
    a_int(g, n, "count_include_pad", i);
    g_finish(g, n);
  }
  /* pools */
  for (int i = 0; i < 4; i++) {
    n = g_node(g, i < 2 ? DRT_OP_MAX_POOL : DRT_OP_AVERAGE_POOL, V(x), 1, 1);
    a_ints(g, n, "kernel_shape", 2, i % 2 ? D(3, 2) : D(2, 2));
    a_ints(g, n, "strides", 2, i % 2 ? D(2, 1) : D(2, 2));
    if (i % 2) a_ints(g, n, "pads", 4, D(1, 0, 1, 1));
    if (i == 1) a_ints(g, n, "dilations", 2, D(1, 2));
    if (i == 3) a_int(g, n, "count_include_pad", 1);
    if (i == 2) a_int(g, n, "ceil_mode", 1);
    g_finish(g, n);
  }
  n = g_node(g, DRT_OP_CONV_TRANSPOSE, V(x, e_f(t, 4, D(8, 4, 4, 4))), 2, 1);
  a_ints(g, n, "strides", 2, D(2, 2));
  a_ints(g, n, "pads", 4, D(1, 1, 1, 1));
  g_finish(g, n);
}

static void emu_run(const char *label, void (*fn)(emu_graph *), drt_dtype dt, const drt_cuda_precision *precs,
                    int nprec) {
  if (!emu_available()) {
    skip();
    return;
  }
  int fails = 0;
  for (int i = 0; i < nprec; i++) {
    emu_graph t;
    memset(&t, 0, sizeof t);
    t.rng.s = 0x5eed0000u + (uint64_t)i;
    DRT_ASSERT_OK(drt_graph_create(&t.g));
    if (fn)
      fn(&t);
    else
      build_movement(&t, dt);
    fails += emu_check(&t, precs[i], label);
    emu_free(&t);
  }
  assert_int_equal(fails, 0);
}

static const drt_cuda_precision k_all[] = {DRT_CUDA_PRECISION_FP32, DRT_CUDA_PRECISION_TF32, DRT_CUDA_PRECISION_FP16,
                                           DRT_CUDA_PRECISION_BF16};
static void test_emu_movement_float(void **state) {
  (void)state;
  emu_run("movement", NULL, DRT_DTYPE_FLOAT32, (const drt_cuda_precision[]){DRT_CUDA_PRECISION_FP32, DRT_CUDA_PRECISION_BF16}, 2);
}
static void test_emu_movement_ints(void **state) {
  (void)state;
  emu_run("movement-i64", NULL, DRT_DTYPE_INT64, k_all, 1);
  emu_run("movement-u8", NULL, DRT_DTYPE_UINT8, k_all, 1);
}
static void test_emu_resize_interp(void **state) {
  (void)state;
  emu_run("resize", build_interp, DRT_DTYPE_FLOAT32, (const drt_cuda_precision[]){DRT_CUDA_PRECISION_FP32, DRT_CUDA_PRECISION_FP16}, 2);
}
static void test_emu_linalg(void **state) {
  (void)state;
  emu_run("linalg", build_linalg, DRT_DTYPE_FLOAT32, k_all, 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_matmul_batches),
      cmocka_unit_test(test_tf32_small_dims), cmocka_unit_test(test_gemm_c_forms),
      cmocka_unit_test(test_fused_gemm_epilogues), cmocka_unit_test(test_einsum),
      cmocka_unit_test(test_conv_paths), cmocka_unit_test(test_conv_chunks), cmocka_unit_test(test_movement),
      cmocka_unit_test(test_emu_movement_float), cmocka_unit_test(test_emu_movement_ints),
      cmocka_unit_test(test_emu_resize_interp), cmocka_unit_test(test_emu_linalg),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
