/* CUDA code generation (codegen/codegen.c, codegen/emit_elementwise.c): program structure for
 * small canonical graphs (one KERNEL launch per elementwise node, deduplicated kernels, HOST
 * fallback with its reason, the error naming the node when fallback is off, the fixed runtime
 * kernels, deterministic byte-identical source that holds every library file) and, when
 * libnvrtc is installed, an NVRTC compile of the rendered programs for sm_80 and sm_90 in every
 * precision (skipped otherwise). Numerical checks of the kernels run through the CPU emulator
 * (tests/cuda_emu). */
#define _GNU_SOURCE 1 /* memmem, strndup */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cg.h"
#include "codegen/nvrtc.h"
#include "passes/canonicalize.h"
#include "passes/elementwise_fuse.h"

/* ---- graph building ----------------------------------------------------------------------- */
static drt_graph *new_graph(void) {
  drt_graph *g;
  DRT_ASSERT_OK(drt_graph_create(&g));
  g->opset = 17;
  return g;
}

static drt_value *input(drt_graph *g, const char *name, drt_dtype dt, int rank, const int64_t *dims) {
  drt_shape s = drt_test_shape(rank, dims);
  drt_value *v = drt_graph_add_value(g, name, dt, &s);
  assert_non_null(v);
  DRT_ASSERT_OK(drt_graph_add_input(g, v));
  return v;
}

static drt_value *node(drt_graph *g, drt_op o, const char *name, int n, drt_value *a, drt_value *b, drt_value *c) {
  drt_value *ins[3] = {a, b, c};
  drt_value *out = drt_graph_add_value(g, NULL, DRT_DTYPE_UNDEFINED, NULL);
  assert_non_null(out);
  DRT_ASSERT_OK(drt_graph_add_node(g, o, name, ins, n, &out, 1, NULL));
  return out;
}

static drt_value *op1(drt_graph *g, drt_op o, drt_value *a) { return node(g, o, NULL, 1, a, NULL, NULL); }
static drt_value *op2(drt_graph *g, drt_op o, drt_value *a, drt_value *b) { return node(g, o, NULL, 2, a, b, NULL); }

static void attr_i(drt_graph *g, drt_value *v, const char *name, int64_t x) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_INT;
  a.i = x;
  DRT_ASSERT_OK(drt_node_add_attr(g, v->producer, &a));
}

static void canonicalize(drt_graph *g) {
  drt_pass_ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  bool changed;
  DRT_ASSERT_OK(drt_pass_canonicalize(g, &ctx, &changed));
}

static void fuse(drt_graph *g) {
  drt_pass_ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  bool changed;
  DRT_ASSERT_OK(drt_pass_elementwise_fuse(g, &ctx, &changed));
  DRT_ASSERT_OK(drt_graph_verify(g, true));
}

static drt_cuda_program *build(const drt_graph *const *gs, size_t n, drt_cuda_precision p) {
  drt_cuda_codegen_options o;
  drt_cuda_codegen_options_init(&o);
  o.precision = p;
  drt_cuda_program *prog = NULL;
  DRT_ASSERT_OK(drt_cuda_program_build(gs, n, &o, &prog));
  assert_non_null(prog);
  return prog;
}

static size_t count_kind(const drt_cuda_graph_code *c, drt_cuda_launch_kind k) {
  size_t cnt = 0;
  for (size_t i = 0; i < c->num_launches; i++) cnt += c->launches[i].kind == k;
  return cnt;
}

/* Structural invariants every program satisfies. */
static void check_program(const drt_cuda_program *p) {
  assert_non_null(p->source);
  assert_int_equal(strlen(p->source), p->source_len);
  assert_true(p->source_hash == drt_fnv1a64(p->source, p->source_len, 0));
  for (size_t i = 0; i < p->num_kernels; i++) {
    const drt_cuda_kernel *k = &p->kernels[i];
    assert_true(k->src_begin < k->src_end && k->src_end <= p->source_len);
    /* the kernel's text holds its name */
    char *text = strndup(p->source + k->src_begin, k->src_end - k->src_begin);
    assert_non_null(strstr(text, k->name));
    free(text);
    assert_int_equal(drt_cuda_program_find_kernel(p, k->name), (int)i);
  }
  for (size_t g = 0; g < p->num_graphs; g++) {
    const drt_cuda_graph_code *c = &p->graphs[g];
    assert_int_equal(c->node_first[0], 0);
    assert_int_equal(c->node_first[c->graph->num_nodes], c->num_launches);
    for (size_t i = 0; i < c->graph->num_nodes; i++) {
      assert_true(c->node_first[i] <= c->node_first[i + 1]);
      for (uint32_t j = c->node_first[i]; j < c->node_first[i + 1]; j++) {
        const drt_cuda_launch *l = &c->launches[j];
        assert_int_equal(l->node, i);
        if (l->kind == DRT_CUDA_LAUNCH_KERNEL) {
          assert_true(l->kernel >= 0 && (size_t)l->kernel < p->num_kernels);
          assert_true(l->block[0] * l->block[1] * l->block[2] <= p->kernels[l->kernel].max_threads);
          assert_true(l->grid[0] >= 1);
        }
        if (l->kind == DRT_CUDA_LAUNCH_HOST) assert_true(l->reason[0] != 0);
      }
    }
  }
}

/* ---- tests -------------------------------------------------------------------------------- */
static void test_precision_and_storage(void **state) {
  (void)state;
  for (int p = 0; p < 4; p++) {
    drt_cuda_precision q;
    assert_true(drt_cuda_precision_parse(drt_cuda_precision_name((drt_cuda_precision)p), &q));
    assert_int_equal(q, p);
  }
  drt_cuda_precision q;
  assert_false(drt_cuda_precision_parse("fp8", &q));
  assert_false(drt_cuda_precision_parse(NULL, &q));
  assert_int_equal(drt_cuda_storage_dtype(DRT_CUDA_PRECISION_FP16, DRT_DTYPE_FLOAT32), DRT_DTYPE_FLOAT16);
  assert_int_equal(drt_cuda_storage_dtype(DRT_CUDA_PRECISION_BF16, DRT_DTYPE_FLOAT32), DRT_DTYPE_BFLOAT16);
  assert_int_equal(drt_cuda_storage_dtype(DRT_CUDA_PRECISION_TF32, DRT_DTYPE_FLOAT32), DRT_DTYPE_FLOAT32);
  assert_int_equal(drt_cuda_storage_dtype(DRT_CUDA_PRECISION_FP16, DRT_DTYPE_INT64), DRT_DTYPE_INT64);
  assert_int_equal(drt_cuda_storage_dtype(DRT_CUDA_PRECISION_BF16, DRT_DTYPE_FLOAT64), DRT_DTYPE_FLOAT64);
  /* FNV-1a 64 known answers */
  assert_true(drt_fnv1a64("", 0, 0) == 0xcbf29ce484222325ull);
  assert_true(drt_fnv1a64("a", 1, 0) == 0xaf63dc4c8601ec8cull);
  assert_true(drt_fnv1a64("foobar", 6, 0) == 0x85944171f73967e8ull);
  assert_int_equal(drt_cg_blocks(0, 256, 100), 1);
  assert_int_equal(drt_cg_blocks(257, 256, 100), 2);
  assert_int_equal(drt_cg_blocks(1 << 30, 256, 100), 100);
}

/* y = x * sigmoid(x) + r fused into one drt.Elementwise: one KERNEL launch, and the runtime
 * kernels under their fixed names. */
static void test_fused_elementwise_one_kernel(void **state) {
  (void)state;
  drt_graph *g = new_graph();
  int64_t d[3] = {2, 37, 19};
  drt_value *x = input(g, "x", DRT_DTYPE_FLOAT32, 3, d), *r = input(g, "r", DRT_DTYPE_FLOAT32, 3, d);
  drt_value *y = op2(g, DRT_OP_ADD, op2(g, DRT_OP_MUL, x, op1(g, DRT_OP_SIGMOID, x)), r);
  DRT_ASSERT_OK(drt_graph_add_output(g, y));
  canonicalize(g);
  fuse(g);
  assert_int_equal(g->num_nodes, 1);
  assert_int_equal(g->nodes[0]->op, DRT_OP_FUSED_ELEMENTWISE);
  for (int p = 0; p < 4; p++) {
    const drt_graph *gs[1] = {g};
    drt_cuda_program *prog = build(gs, 1, (drt_cuda_precision)p);
    check_program(prog);
    const drt_cuda_graph_code *c = &prog->graphs[0];
    assert_int_equal(c->num_launches, 1);
    assert_int_equal(c->num_host_nodes, 0);
    const drt_cuda_launch *l = &c->launches[0];
    assert_int_equal(l->kind, DRT_CUDA_LAUNCH_KERNEL);
    assert_int_equal(l->num_args, 3);
    assert_int_equal(l->args[0].kind, DRT_CUDA_ARG_VALUE);
    assert_ptr_equal(l->args[2].value, y);
    const drt_cuda_kernel *k = &prog->kernels[l->kernel];
    assert_int_equal(strncmp(k->name, "drt_k", 5), 0);
    assert_int_equal(strlen(k->name), 21);
    char want[40];
    snprintf(want, sizeof want, "drt_k%016llx", (unsigned long long)k->hash);
    assert_string_equal(k->name, want);
    const char *fixed[] = {DRT_CUDA_KERNEL_F32_TO_ACT, DRT_CUDA_KERNEL_ACT_TO_F32, DRT_CUDA_KERNEL_PHILOX,
                           DRT_CUDA_KERNEL_SAMPLER,    DRT_CUDA_KERNEL_FILL,       DRT_CUDA_KERNEL_NONFINITE};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) assert_true(drt_cuda_program_find_kernel(prog, fixed[i]) >= 0);
    /* the activation type follows the precision */
    const char *act = p == DRT_CUDA_PRECISION_FP16 ? "const __half *" : p == DRT_CUDA_PRECISION_BF16 ? "const __nv_bfloat16 *" : "const float *";
    char *text = strndup(prog->source + k->src_begin, k->src_end - k->src_begin);
    assert_non_null(strstr(text, act));
    free(text);
    drt_cuda_program_destroy(prog);
  }
  drt_graph_destroy(g);
}

/* A timestep embedding sin(t[:, None] * freq) with t a float32 graph input [2]. */
static drt_value *timestep_embedding(drt_graph *g, const char *tname) {
  int64_t two = 2;
  drt_value *t = input(g, tname, DRT_DTYPE_FLOAT32, 1, &two);
  drt_value *axes, *freq;
  int64_t ax = 1;
  float f[8];
  for (int i = 0; i < 8; i++) f[i] = 1.0f / (float)(1 + 7 * i * i);
  DRT_ASSERT_OK(drt_graph_add_const(g, NULL, DRT_DTYPE_INT64, &(drt_shape){1, {1}}, &ax, &axes));
  DRT_ASSERT_OK(drt_graph_add_const(g, NULL, DRT_DTYPE_FLOAT32, &(drt_shape){2, {1, 8}}, f, &freq));
  drt_value *y = op1(g, DRT_OP_SIN, op2(g, DRT_OP_MUL, op2(g, DRT_OP_UNSQUEEZE, t, axes), freq));
  DRT_ASSERT_OK(drt_graph_add_output(g, y));
  return t;
}

/* Per-sample float32 scalars read only by elementwise kernels keep float32 storage under
 * fp16/bf16 (t = 999 would be 1000 in bf16); other inputs, and an input that some graph of the
 * program reads otherwise, take the activation type. */
static void test_small_inputs_keep_f32(void **state) {
  (void)state;
  drt_graph *a = new_graph();
  drt_value *t = timestep_embedding(a, "t");
  int64_t d23[2] = {2, 3}, two = 2;
  drt_value *x = input(a, "x", DRT_DTYPE_FLOAT32, 2, d23); /* not a per-sample scalar */
  DRT_ASSERT_OK(drt_graph_add_output(a, op2(a, DRT_OP_MUL, x, x)));
  drt_value *c = input(a, "c", DRT_DTYPE_FLOAT32, 1, &two); /* read by a Concat */
  drt_value *cc = op2(a, DRT_OP_CONCAT, c, c);
  attr_i(a, cc, "axis", 0);
  DRT_ASSERT_OK(drt_graph_add_output(a, cc));
  canonicalize(a);
  fuse(a);
  const drt_graph *ga[1] = {a};
  for (int p = 0; p < 4; p++) {
    drt_cuda_program *prog = build(ga, 1, (drt_cuda_precision)p);
    check_program(prog);
    const drt_cuda_graph_code *code = &prog->graphs[0];
    assert_int_equal(code->num_host_nodes, 0);
    bool half = p == DRT_CUDA_PRECISION_FP16 || p == DRT_CUDA_PRECISION_BF16;
    drt_dtype act = drt_cuda_storage_dtype((drt_cuda_precision)p, DRT_DTYPE_FLOAT32);
    assert_int_equal(drt_cuda_value_storage((drt_cuda_precision)p, code, t), DRT_DTYPE_FLOAT32);
    assert_int_equal(drt_cuda_value_storage((drt_cuda_precision)p, code, x), act);
    assert_int_equal(drt_cuda_value_storage((drt_cuda_precision)p, code, c), act);
    assert_int_equal(drt_cuda_value_storage((drt_cuda_precision)p, code, a->outputs[0]), act);
    if (!half) {
      assert_int_equal(code->num_f32_values, 0);
    } else {
      assert_true(code->num_f32_values >= 1);
      /* the kernel reading t (through the reshape or directly) takes a float pointer for it and
         writes the activation type */
      bool found = false;
      for (size_t j = 0; j < code->num_launches; j++) {
        const drt_cuda_launch *l = &code->launches[j];
        if (l->kind != DRT_CUDA_LAUNCH_KERNEL) continue;
        for (int k = 0; k < l->num_args; k++) {
          const drt_value *v = l->args[k].value;
          if (l->args[k].kind != DRT_CUDA_ARG_VALUE || !v || v == a->outputs[0]) continue;
          if (drt_cuda_value_storage((drt_cuda_precision)p, code, v) != DRT_DTYPE_FLOAT32) continue;
          char *text = strndup(prog->source + prog->kernels[l->kernel].src_begin,
                               prog->kernels[l->kernel].src_end - prog->kernels[l->kernel].src_begin);
          if (strstr(text, "const float *") &&
              strstr(text, p == DRT_CUDA_PRECISION_FP16 ? "__half *" : "__nv_bfloat16 *"))
            found = true;
          free(text);
        }
      }
      assert_true(found);
    }
    drt_cuda_program_destroy(prog);
  }
  /* a second graph of the program (a stage, a bucket) that feeds its "t" to a Concat: kept in
     neither, since the runtime copies t between the graphs' buffers byte for byte */
  drt_graph *b = new_graph();
  drt_value *tb = input(b, "t", DRT_DTYPE_FLOAT32, 1, &two);
  drt_value *tt = op2(b, DRT_OP_CONCAT, tb, tb);
  attr_i(b, tt, "axis", 0);
  DRT_ASSERT_OK(drt_graph_add_output(b, tt));
  canonicalize(b);
  const drt_graph *gab[2] = {a, b};
  drt_cuda_program *prog = build(gab, 2, DRT_CUDA_PRECISION_BF16);
  assert_int_equal(prog->graphs[0].num_f32_values, 0);
  assert_int_equal(prog->graphs[1].num_f32_values, 0);
  assert_int_equal(drt_cuda_value_storage(DRT_CUDA_PRECISION_BF16, &prog->graphs[0], t), DRT_DTYPE_BFLOAT16);
  drt_cuda_program_destroy(prog);
  /* two graphs that both read t elementwise: kept in both */
  drt_graph *e = new_graph();
  drt_value *te = timestep_embedding(e, "t");
  canonicalize(e);
  fuse(e);
  const drt_graph *gae[2] = {a, e};
  prog = build(gae, 2, DRT_CUDA_PRECISION_BF16);
  assert_int_equal(drt_cuda_value_storage(DRT_CUDA_PRECISION_BF16, &prog->graphs[0], t), DRT_DTYPE_FLOAT32);
  assert_int_equal(drt_cuda_value_storage(DRT_CUDA_PRECISION_BF16, &prog->graphs[1], te), DRT_DTYPE_FLOAT32);
  /* a value of one graph is not kept through another graph's code */
  assert_int_equal(drt_cuda_value_storage(DRT_CUDA_PRECISION_BF16, &prog->graphs[1], t), DRT_DTYPE_BFLOAT16);
  drt_cuda_program_destroy(prog);
  drt_graph_destroy(a);
  drt_graph_destroy(b);
  drt_graph_destroy(e);
}

/* fp16/bf16: an activation that no GEMM/conv/attention operand reads keeps float32 storage (the
 * product of a MatMul read only by elementwise kernels); one that a copy passes on to a GEMM
 * operand stays 16-bit, and so do graph outputs. */
static void test_f32_activations(void **state) {
  (void)state;
  drt_graph *g = new_graph();
  int64_t d[2] = {8, 8};
  drt_value *x = input(g, "x", DRT_DTYPE_FLOAT32, 2, d), *w = input(g, "w", DRT_DTYPE_FLOAT32, 2, d);
  drt_value *h = op2(g, DRT_OP_MATMUL, x, w); /* read by two elementwise kernels only */
  DRT_ASSERT_OK(drt_graph_add_output(g, op1(g, DRT_OP_EXP, h)));
  DRT_ASSERT_OK(drt_graph_add_output(g, op1(g, DRT_OP_NEG, h)));
  drt_value *c = op1(g, DRT_OP_CAST, h); /* float -> float into a 16-bit output: a conversion, not a copy */
  attr_i(g, c, "to", DRT_DTYPE_FLOAT32);
  DRT_ASSERT_OK(drt_graph_add_output(g, c));
  drt_value *h2 = op2(g, DRT_OP_MATMUL, x, w); /* read elementwise, and through a Transpose by a GEMM */
  DRT_ASSERT_OK(drt_graph_add_output(g, op1(g, DRT_OP_EXP, h2)));
  drt_value *t = op1(g, DRT_OP_TRANSPOSE, h2);
  DRT_ASSERT_OK(drt_graph_add_output(g, op2(g, DRT_OP_MATMUL, t, w)));
  canonicalize(g); /* unfused: the elementwise fusion would take the readers into the GEMM */
  const drt_graph *gs[1] = {g};
  for (int p = 0; p < 4; p++) {
    drt_cuda_program *prog = build(gs, 1, (drt_cuda_precision)p);
    check_program(prog);
    const drt_cuda_graph_code *code = &prog->graphs[0];
    assert_int_equal(code->num_host_nodes, 0);
    drt_dtype act = drt_cuda_storage_dtype((drt_cuda_precision)p, DRT_DTYPE_FLOAT32);
    assert_int_equal(drt_cuda_value_storage((drt_cuda_precision)p, code, h), DRT_DTYPE_FLOAT32);
    assert_int_equal(drt_cuda_value_storage((drt_cuda_precision)p, code, h2), act);
    assert_int_equal(drt_cuda_value_storage((drt_cuda_precision)p, code, t), act);
    for (size_t i = 0; i < g->num_outputs; i++)
      assert_int_equal(drt_cuda_value_storage((drt_cuda_precision)p, code, g->outputs[i]), act);
    if (act != DRT_DTYPE_FLOAT32) {
      /* the GEMM writing h has a float32 D; the kernel reading h loads floats, writes 16-bit */
      bool gemm_f32 = false, kernel_f32 = false;
      for (size_t i = 0; i < code->num_launches; i++) {
        const drt_cuda_launch *l = &code->launches[i];
        if (l->kind == DRT_CUDA_LAUNCH_GEMM && l->gemm.d.value == h) {
          gemm_f32 = l->gemm.d_type == DRT_DTYPE_FLOAT32 && l->gemm.a_type == act;
        } else if (l->kind == DRT_CUDA_LAUNCH_KERNEL) {
          for (int k = 0; k < l->num_args; k++)
            if (l->args[k].kind == DRT_CUDA_ARG_VALUE && l->args[k].value == h) {
              char *text = strndup(prog->source + prog->kernels[l->kernel].src_begin,
                                   prog->kernels[l->kernel].src_end - prog->kernels[l->kernel].src_begin);
              /* float32 in, 16-bit out: still the vector path, 4 elements per thread */
              kernel_f32 = strstr(text, "const float *") != NULL && strstr(text, "drt_ld_vecn<4>(in0") != NULL &&
                           strstr(text, "drt_st_vecn<4>(out0") != NULL;
              free(text);
            }
        }
      }
      assert_true(gemm_f32);
      assert_true(kernel_f32);
    }
    drt_cuda_program_destroy(prog);
  }
  drt_graph_destroy(g);

  /* a fused bias + residual GEMM with a float32 output: its bias constant is float32 too, so the
     epilogue still maps onto cuBLASLt (bias type = D type, residual as C) */
  drt_graph *f = new_graph();
  drt_value *fx = input(f, "x", DRT_DTYPE_FLOAT32, 2, d), *fw = input(f, "w", DRT_DTYPE_FLOAT32, 2, d);
  float bias_data[8] = {0.5f, -1, 2, 0.25f, -0.75f, 1.5f, 3, -2};
  drt_value *bias = NULL;
  DRT_ASSERT_OK(drt_graph_add_const(f, NULL, DRT_DTYPE_FLOAT32, &(drt_shape){1, {8}}, bias_data, &bias));
  drt_value *res = op2(f, DRT_OP_MATMUL, fw, fx); /* an intermediate residual: float32 storage as well */
  drt_value *fy = op2(f, DRT_OP_ADD, op2(f, DRT_OP_ADD, op2(f, DRT_OP_MATMUL, fx, fw), bias), res);
  /* read through a Transpose (a copy of its class) by an elementwise kernel only */
  DRT_ASSERT_OK(drt_graph_add_output(f, op1(f, DRT_OP_EXP, op1(f, DRT_OP_TRANSPOSE, fy))));
  canonicalize(f);
  fuse(f);
  const drt_graph *fs[1] = {f};
  drt_cuda_program *prog = build(fs, 1, DRT_CUDA_PRECISION_BF16);
  check_program(prog);
  const drt_cuda_graph_code *code = &prog->graphs[0];
  const drt_cuda_launch *gemm = NULL;
  for (size_t i = 0; i < code->num_launches; i++)
    if (code->launches[i].kind == DRT_CUDA_LAUNCH_GEMM) gemm = &code->launches[i];
  assert_non_null(gemm);
  assert_int_equal(gemm->gemm.a_type, DRT_DTYPE_BFLOAT16);
  assert_int_equal(gemm->gemm.d_type, DRT_DTYPE_FLOAT32);
  assert_int_equal(gemm->gemm.epilogue, DRT_CUDA_EPI_BIAS);
  assert_ptr_equal(gemm->gemm.bias.value, bias);
  assert_int_equal(gemm->gemm.bias_type, DRT_DTYPE_FLOAT32);
  assert_int_equal(drt_cuda_value_storage(DRT_CUDA_PRECISION_BF16, code, bias), DRT_DTYPE_FLOAT32);
  assert_int_equal(gemm->gemm.c_type, DRT_DTYPE_FLOAT32);
  assert_true(gemm->gemm.beta == 1.0f);
  drt_cuda_program_destroy(prog);
  drt_graph_destroy(f);
}

/* Identical nodes (same op, shapes, dtypes) share one kernel, in one graph and across graphs;
 * a different shape gets its own. */
static drt_graph *dedup_graph(int64_t w) {
  drt_graph *g = new_graph();
  int64_t d[2] = {8, w};
  drt_value *a = input(g, "a", DRT_DTYPE_FLOAT32, 2, d), *b = input(g, "b", DRT_DTYPE_FLOAT32, 2, d);
  drt_value *y1 = op1(g, DRT_OP_TANH, a), *y2 = op1(g, DRT_OP_TANH, b);
  drt_value *y3 = op2(g, DRT_OP_ADD, y1, y2);
  DRT_ASSERT_OK(drt_graph_add_output(g, y3));
  canonicalize(g);
  return g;
}

static void test_dedup(void **state) {
  (void)state;
  drt_graph *g1 = dedup_graph(64), *g2 = dedup_graph(64), *g3 = dedup_graph(65);
  const drt_graph *gs[3] = {g1, g2, g3};
  drt_cuda_program *prog = build(gs, 3, DRT_CUDA_PRECISION_FP16);
  check_program(prog);
  assert_int_equal(prog->num_graphs, 3);
  for (int i = 0; i < 3; i++) {
    const drt_cuda_graph_code *c = &prog->graphs[i];
    assert_int_equal(c->num_launches, 3);
    assert_int_equal(count_kind(c, DRT_CUDA_LAUNCH_KERNEL), 3);
    assert_int_equal(c->launches[0].kernel, c->launches[1].kernel); /* two Tanh of one shape */
    assert_true(c->launches[0].kernel != c->launches[2].kernel);
  }
  assert_int_equal(prog->graphs[0].launches[0].kernel, prog->graphs[1].launches[0].kernel);
  assert_int_equal(prog->graphs[0].launches[2].kernel, prog->graphs[1].launches[2].kernel);
  assert_true(prog->graphs[0].launches[0].kernel != prog->graphs[2].launches[0].kernel);
  /* 6 runtime kernels + tanh/add for two shapes */
  assert_int_equal(prog->num_kernels, 6 + 4);
  /* same-shape operands take the 16-byte vector path (8 halves per thread) */
  const drt_cuda_kernel *k = &prog->kernels[prog->graphs[0].launches[2].kernel];
  char *text = strndup(prog->source + k->src_begin, k->src_end - k->src_begin);
  assert_non_null(strstr(text, "drt_ld_vecn<8>(in0 + i0, v0_)"));
  assert_non_null(strstr(text, "drt_st_vecn<8>(out0 + i0, y0_)"));
  free(text);
  drt_cuda_program_destroy(prog);
  drt_graph_destroy(g1);
  drt_graph_destroy(g2);
  drt_graph_destroy(g3);
}

/* An op no emitter table lists (found at run time, so the test follows the tables). */
static bool has_emitter(drt_op op) {
  const drt_cg_emitter *const tables[] = {drt_cg_emitters_elementwise, drt_cg_emitters_movement, drt_cg_emitters_linalg,
                                          drt_cg_emitters_norm, drt_cg_emitters_attention};
  for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
    for (const drt_cg_emitter *e = tables[t]; e->op != DRT_OP_COUNT_; e++)
      if (e->op == op && e->fn) return true;
  return false;
}

/* Dropout whose training_mode is a run-time input (declined by the elementwise emitter) and an
 * op without an emitter become HOST launches with their reasons; the device nodes around them
 * keep their kernels. With fallback off the build fails naming the node. */
static void test_host_fallback(void **state) {
  (void)state;
  const drt_op candidates[] = {DRT_OP_TRILU, DRT_OP_CUMSUM};
  drt_op unhandled = DRT_OP_COUNT_;
  for (size_t i = 0; i < sizeof candidates / sizeof candidates[0] && unhandled == DRT_OP_COUNT_; i++)
    if (!has_emitter(candidates[i])) unhandled = candidates[i];
  drt_graph *g = new_graph();
  int64_t d[2] = {4, 6};
  drt_value *a = input(g, "a", DRT_DTYPE_FLOAT32, 2, d), *b = input(g, "b", DRT_DTYPE_INT32, 2, d);
  drt_value *tm = input(g, "training", DRT_DTYPE_BOOL, 0, NULL);
  drt_value *ratio;
  float half = 0.5f;
  DRT_ASSERT_OK(drt_graph_add_const(g, NULL, DRT_DTYPE_FLOAT32, &(drt_shape){0, {0}}, &half, &ratio));
  drt_value *m = node(g, DRT_OP_DROPOUT, "drop", 3, a, ratio, tm);
  DRT_ASSERT_OK(drt_graph_add_output(g, m));
  drt_value *s = node(g, DRT_OP_ADD, "add_int", 2, b, b, NULL);
  drt_value *y = s;
  if (unhandled == DRT_OP_TRILU) {
    y = node(g, DRT_OP_TRILU, "trilu", 1, s, NULL, NULL);
  } else if (unhandled == DRT_OP_CUMSUM) {
    drt_value *ax;
    int32_t zero = 0;
    DRT_ASSERT_OK(drt_graph_add_const(g, NULL, DRT_DTYPE_INT32, &(drt_shape){0, {0}}, &zero, &ax));
    y = node(g, DRT_OP_CUMSUM, "cumsum", 2, s, ax, NULL);
  }
  DRT_ASSERT_OK(drt_graph_add_output(g, y));
  canonicalize(g);
  const drt_graph *gs[1] = {g};
  drt_cuda_program *prog = build(gs, 1, DRT_CUDA_PRECISION_FP32);
  check_program(prog);
  const drt_cuda_graph_code *c = &prog->graphs[0];
  size_t drop_i = 0, add_i = 0;
  for (size_t i = 0; i < g->num_nodes; i++) {
    if (g->nodes[i]->op == DRT_OP_DROPOUT) drop_i = i;
    if (g->nodes[i]->op == DRT_OP_ADD) add_i = i;
  }
  assert_int_equal(c->node_first[drop_i + 1] - c->node_first[drop_i], 1);
  const drt_cuda_launch *l = &c->launches[c->node_first[drop_i]];
  assert_int_equal(l->kind, DRT_CUDA_LAUNCH_HOST);
  assert_non_null(strstr(l->reason, "training_mode"));
  assert_int_equal(c->launches[c->node_first[add_i]].kind, DRT_CUDA_LAUNCH_KERNEL); /* integer Add runs on device */
  size_t want_host = 1;
  if (y != s) {
    size_t last = g->num_nodes - 1;
    assert_int_equal(g->nodes[last]->op, unhandled);
    const drt_cuda_launch *h = &c->launches[c->node_first[last]];
    assert_int_equal(h->kind, DRT_CUDA_LAUNCH_HOST);
    assert_non_null(strstr(h->reason, "no CUDA emitter"));
    want_host = 2;
  }
  assert_int_equal(c->num_host_nodes, want_host);
  drt_cuda_program_destroy(prog);

  drt_cuda_codegen_options o;
  drt_cuda_codegen_options_init(&o);
  assert_true(o.allow_host_fallback);
  o.allow_host_fallback = false;
  drt_cuda_program *none = NULL;
  DRT_ASSERT_ERROR(drt_cuda_program_build(gs, 1, &o, &none), DRT_STATUS_UNSUPPORTED, "'drop'");
  assert_null(none);
  DRT_ASSERT_ERROR(drt_cuda_program_build(gs, 1, &o, &none), DRT_STATUS_UNSUPPORTED, "host fallback disabled");
  drt_graph_destroy(g);
}

/* A graph exercising many elementwise forms: float ops with broadcasting, integer arithmetic,
 * comparisons, Where, Clip, Cast in both directions, variadic ops, IsNaN. */
static drt_graph *zoo_graph(void) {
  drt_graph *g = new_graph();
  int64_t d4[4] = {2, 3, 5, 7}, dc[3] = {3, 1, 1}, dw[1] = {7}, di[2] = {5, 7};
  drt_value *x = input(g, "x", DRT_DTYPE_FLOAT32, 4, d4);
  drt_value *c = input(g, "c", DRT_DTYPE_FLOAT32, 3, dc);
  drt_value *w = input(g, "w", DRT_DTYPE_FLOAT32, 1, dw);
  drt_value *s = input(g, "s", DRT_DTYPE_FLOAT32, 0, NULL);
  drt_value *ia = input(g, "ia", DRT_DTYPE_INT64, 2, di);
  drt_value *ib = input(g, "ib", DRT_DTYPE_INT64, 1, dw);
  drt_value *h = input(g, "h", DRT_DTYPE_FLOAT16, 4, d4);
  drt_value *dd = input(g, "dd", DRT_DTYPE_FLOAT64, 1, dw);
  drt_value *y = op2(g, DRT_OP_MUL, x, c);
  y = op2(g, DRT_OP_ADD, y, w);
  y = op2(g, DRT_OP_DIV, y, s);
  y = op1(g, DRT_OP_GELU, y);
  y = op2(g, DRT_OP_POW, op1(g, DRT_OP_ABS, y), s);
  drt_value *cmp = op2(g, DRT_OP_GREATER, y, w);
  y = node(g, DRT_OP_WHERE, NULL, 3, cmp, y, x);
  y = node(g, DRT_OP_CLIP, NULL, 3, y, s, NULL);
  y = node(g, DRT_OP_MAX, NULL, 3, y, x, c);
  y = node(g, DRT_OP_MEAN, NULL, 2, y, w, NULL);
  drt_value *yh = op1(g, DRT_OP_CAST, y);
  attr_i(g, yh, "to", DRT_DTYPE_FLOAT16);
  yh = op2(g, DRT_OP_ADD, yh, h);
  drt_value *yf = op1(g, DRT_OP_CAST, yh);
  attr_i(g, yf, "to", DRT_DTYPE_FLOAT32);
  DRT_ASSERT_OK(drt_graph_add_output(g, yf));
  drt_value *nan = op1(g, DRT_OP_ISNAN, yf);
  DRT_ASSERT_OK(drt_graph_add_output(g, nan));
  /* integers */
  drt_value *q = op2(g, DRT_OP_DIV, ia, ib);
  drt_value *md = op2(g, DRT_OP_MOD, q, ib);
  drt_value *pw = op2(g, DRT_OP_POW, md, ib);
  drt_value *mx = node(g, DRT_OP_SUM, NULL, 3, pw, ia, ib);
  drt_value *neg = op1(g, DRT_OP_NEG, mx);
  drt_value *eq = op2(g, DRT_OP_EQUAL, neg, ia);
  drt_value *nt = op1(g, DRT_OP_NOT, eq);
  drt_value *an = op2(g, DRT_OP_AND, nt, eq);
  DRT_ASSERT_OK(drt_graph_add_output(g, an));
  drt_value *fi = op1(g, DRT_OP_CAST, neg);
  attr_i(g, fi, "to", DRT_DTYPE_FLOAT32);
  drt_value *back = op1(g, DRT_OP_CAST, op2(g, DRT_OP_MUL, fi, w));
  attr_i(g, back, "to", DRT_DTYPE_INT32);
  DRT_ASSERT_OK(drt_graph_add_output(g, back));
  drt_value *u8 = op1(g, DRT_OP_CAST, dd);
  attr_i(g, u8, "to", DRT_DTYPE_UINT8);
  DRT_ASSERT_OK(drt_graph_add_output(g, u8));
  drt_value *de = op1(g, DRT_OP_EXP, dd);
  DRT_ASSERT_OK(drt_graph_add_output(g, op1(g, DRT_OP_SIGMOID, de)));
  canonicalize(g);
  return g;
}

static void test_zoo_all_on_device(void **state) {
  (void)state;
  drt_graph *g = zoo_graph();
  const drt_graph *gs[1] = {g};
  drt_cuda_program *prog = build(gs, 1, DRT_CUDA_PRECISION_BF16);
  check_program(prog);
  const drt_cuda_graph_code *c = &prog->graphs[0];
  for (size_t i = 0; i < c->num_launches; i++)
    if (c->launches[i].kind == DRT_CUDA_LAUNCH_HOST)
      print_error("node %u (%s) on host: %s\n", c->launches[i].node, drt_op_name(g->nodes[c->launches[i].node]->op),
                  c->launches[i].reason);
  assert_int_equal(c->num_host_nodes, 0);
  for (size_t i = 0; i < g->num_nodes; i++) assert_int_equal(c->node_first[i + 1] - c->node_first[i], 1);
  /* x[2,3,5,7] * c[3,1,1]: dims merged to [2, 3, 35], c indexed by the middle coordinate */
  assert_int_equal(g->nodes[0]->op, DRT_OP_MUL);
  const drt_cuda_kernel *k = &prog->kernels[c->launches[0].kernel];
  char *text = strndup(prog->source + k->src_begin, k->src_end - k->src_begin);
  assert_non_null(strstr(text, "t_ /= (int)35;"));
  assert_non_null(strstr(text, "const int c1 = t_ % (int)3;"));
  assert_non_null(strstr(text, "drt_ld(in1 + (c1))"));
  assert_null(strstr(text, "drt_ld_vec"));
  free(text);
  drt_cuda_program_destroy(prog);
  drt_graph_destroy(g);
}

/* A 3x3 convolution on fp16/bf16 operands is emitted in variants the executor times
 * (drt_cuda_launch.variant): implicit GEMM with 128x128 tiles (enough blocks, more than 64
 * output channels, rows of 8 output positions), with 64x64 tiles, then im2col + cuBLASLt (the
 * im2col kernel, the bias pre-fill copy, the GEMM); the same convolution in fp32 (cuBLASLt's
 * FP32/TF32 GEMM) and a 1x1 one (a GEMM on X in place) are computed one way only. */
static drt_graph *conv_graph(int64_t k, int64_t h, int64_t w) {
  drt_graph *g = new_graph();
  int64_t xd[4] = {2, 16, h, w}, wd[4] = {96, 16, k, k}, bd[1] = {96};
  drt_value *x = input(g, "x", DRT_DTYPE_FLOAT32, 4, xd);
  drt_value *wt = input(g, "w", DRT_DTYPE_FLOAT32, 4, wd);
  drt_value *b = input(g, "b", DRT_DTYPE_FLOAT32, 1, bd);
  drt_value *y = node(g, DRT_OP_CONV, "conv", 3, x, wt, b);
  drt_test_attr_ints(g, y->producer, "pads", 4, (int64_t[]){k / 2, k / 2, k / 2, k / 2});
  DRT_ASSERT_OK(drt_graph_add_output(g, y));
  canonicalize(g);
  return g;
}

static int max_variant(const drt_cuda_graph_code *c) {
  int v = 0;
  for (size_t i = 0; i < c->num_launches; i++)
    if (c->launches[i].variant > v) v = c->launches[i].variant;
  return v;
}

/* How many variants the convolution of conv_graph(k, h, w) gets at precision p. */
static int conv_variants(int64_t k, int64_t h, int64_t w, drt_cuda_precision p) {
  drt_graph *g = conv_graph(k, h, w);
  const drt_graph *gs[1] = {g};
  drt_cuda_program *prog = build(gs, 1, p);
  int v = max_variant(&prog->graphs[0]);
  drt_cuda_program_destroy(prog);
  drt_graph_destroy(g);
  return v;
}

static void test_conv_variants(void **state) {
  (void)state;
  drt_graph *g = conv_graph(3, 96, 128); /* P = 12288: 96 x 1 x 2 blocks of 128x128 */
  const drt_graph *gs[1] = {g};
  drt_cuda_program *prog = build(gs, 1, DRT_CUDA_PRECISION_BF16);
  check_program(prog);
  const drt_cuda_graph_code *c = &prog->graphs[0];
  assert_int_equal(max_variant(c), 3);
  int seen_common = 0, last = 0;
  for (size_t i = 0; i < c->num_launches; i++) {
    const drt_cuda_launch *l = &c->launches[i];
    if (!l->variant) {
      seen_common = 1;
      continue;
    }
    assert_false(seen_common); /* variants come first */
    assert_true(l->variant >= last);
    last = l->variant;
    if (l->variant <= 2) {
      assert_int_equal(l->kind, DRT_CUDA_LAUNCH_KERNEL);
      const drt_cuda_kernel *k = &prog->kernels[l->kernel];
      char *text = strndup(prog->source + k->src_begin, k->src_end - k->src_begin);
      assert_non_null(strstr(text, l->variant == 1 ? "drt_conv_igemm<__nv_bfloat16, __nv_bfloat16, __nv_bfloat16, "
                                                     "128, 128, 2, 4, true, true>"
                                                   : "drt_conv_igemm<__nv_bfloat16, __nv_bfloat16, __nv_bfloat16, "
                                                     "64, 64, 2, 2, true, true>"));
      free(text);
      assert_int_equal(l->grid[2], 2);
      assert_true(l->smem > 0 && l->smem <= 48 * 1024);
    }
  }
  assert_int_equal(count_kind(c, DRT_CUDA_LAUNCH_GEMM), 1);
  drt_cuda_program_destroy(prog);
  drt_graph_destroy(g);
  /* the same convolution in fp32: one way */
  assert_int_equal(conv_variants(3, 96, 128, DRT_CUDA_PRECISION_FP32), 0);
  /* output rows of 100 positions (not 8 k): 64x64 tiles only (the general gather would spill
     with 128x128 tiles), then im2col */
  assert_int_equal(conv_variants(3, 96, 100, DRT_CUDA_PRECISION_BF16), 2);
  /* a small one: 64x64 tiles only (too few 128x128 blocks), then im2col */
  assert_int_equal(conv_variants(3, 8, 12, DRT_CUDA_PRECISION_FP16), 2);
  /* 1x1: a GEMM on X in place */
  assert_int_equal(conv_variants(1, 8, 12, DRT_CUDA_PRECISION_FP16), 0);
}

/* Two builds of the same graphs give the same bytes; the source holds every library file in
 * LIBRARY order. */
static void test_deterministic_source(void **state) {
  (void)state;
  drt_graph *g1 = zoo_graph(), *g2 = dedup_graph(33);
  const drt_graph *gs[2] = {g1, g2};
  drt_cuda_program *a = build(gs, 2, DRT_CUDA_PRECISION_FP16);
  drt_cuda_program *b = build(gs, 2, DRT_CUDA_PRECISION_FP16);
  assert_int_equal(a->source_len, b->source_len);
  assert_memory_equal(a->source, b->source, a->source_len);
  assert_true(a->source_hash == b->source_hash);
  assert_int_equal(a->num_kernels, b->num_kernels);
  for (size_t i = 0; i < a->num_kernels; i++) assert_string_equal(a->kernels[i].name, b->kernels[i].name);
  assert_true(drt_cg_library_count >= 8);
  assert_string_equal(drt_cg_library[0].name, "prelude.cuh");
  const char *prev = a->source;
  for (size_t i = 0; i < drt_cg_library_count; i++) {
    const drt_cg_library_file *f = &drt_cg_library[i];
    const char *at = memmem(a->source, a->source_len, f->data, f->size);
    if (!at) print_error("library file %s missing from the source\n", f->name);
    assert_non_null(at);
    assert_true(at >= prev);
    prev = at;
  }
  drt_cuda_program *c = build(gs, 2, DRT_CUDA_PRECISION_BF16);
  assert_true(c->source_hash != a->source_hash);
  drt_cuda_program_destroy(a);
  drt_cuda_program_destroy(b);
  drt_cuda_program_destroy(c);
  drt_graph_destroy(g1);
  drt_graph_destroy(g2);
}

/* ---- NVRTC compile through codegen/nvrtc.h (skipped without libnvrtc) ---------------------- */
static bool nvrtc_available(void) {
  int major = 0, minor = 0;
  drt_status st = drt_nvrtc_version(&major, &minor);
  if (st) {
    drt_status_free(st);
    return false;
  }
  return true;
}

static void nvrtc_compile(const drt_cuda_program *prog, const char *arch) {
  drt_nvrtc_compile_options o;
  drt_nvrtc_compile_options_init(&o);
  o.cache_dir = "off";
  drt_nvrtc_image img;
  memset(&img, 0, sizeof img);
  const char *archs[1] = {arch};
  DRT_ASSERT_OK(drt_nvrtc_compile(prog, archs, 1, &o, &img));
  assert_true(img.size > 0);
  drt_nvrtc_image_free(&img);
}

static void test_nvrtc_compiles(void **state) {
  (void)state;
  if (!nvrtc_available()) skip();
  drt_graph *g1 = zoo_graph(), *g2 = dedup_graph(40);
  /* a fused group too */
  drt_graph *g3 = new_graph();
  int64_t d[4] = {2, 4, 3, 8}, dc[3] = {4, 1, 1};
  drt_value *x = input(g3, "x", DRT_DTYPE_FLOAT32, 4, d), *cc = input(g3, "c", DRT_DTYPE_FLOAT32, 3, dc);
  drt_value *y = op2(g3, DRT_OP_MUL, op1(g3, DRT_OP_SIGMOID, x), x);
  y = op2(g3, DRT_OP_ADD, y, cc);
  y = op1(g3, DRT_OP_TANH, op1(g3, DRT_OP_ERF, y));
  DRT_ASSERT_OK(drt_graph_add_output(g3, y));
  canonicalize(g3);
  fuse(g3);
  const drt_graph *gs[3] = {g1, g2, g3};
  for (int p = 0; p < 4; p++) {
    drt_cuda_program *prog = build(gs, 3, (drt_cuda_precision)p);
    const char *dump = getenv("DRT_CODEGEN_DUMP"); /* DRT_CODEGEN_DUMP=prefix writes prefix.<precision>.cu */
    if (dump) {
      char path[512];
      snprintf(path, sizeof path, "%s.%s.cu", dump, drt_cuda_precision_name((drt_cuda_precision)p));
      FILE *f = fopen(path, "wb");
      if (f) {
        fwrite(prog->source, 1, prog->source_len, f);
        fclose(f);
      }
    }
    /* one arch per precision keeps this quick; tf32 renders the fp32 source */
    const char *arch = p == DRT_CUDA_PRECISION_FP16 ? "sm_90" : "sm_80";
    if (p != DRT_CUDA_PRECISION_TF32) nvrtc_compile(prog, arch);
    drt_cuda_program_destroy(prog);
  }
  drt_graph_destroy(g1);
  drt_graph_destroy(g2);
  drt_graph_destroy(g3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_precision_and_storage),
      cmocka_unit_test(test_fused_elementwise_one_kernel),
      cmocka_unit_test(test_small_inputs_keep_f32),
      cmocka_unit_test(test_f32_activations),
      cmocka_unit_test(test_dedup),
      cmocka_unit_test(test_host_fallback),
      cmocka_unit_test(test_zoo_all_on_device),
      cmocka_unit_test(test_conv_variants),
      cmocka_unit_test(test_deterministic_source),
      cmocka_unit_test(test_nvrtc_compiles),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
