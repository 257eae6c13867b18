/* CFG folding (passes/cfg_fold.c), drt.CfgCombine (ir/cfg_combine.c, runtime/cpu/fused_cfg.c) and
 * step-invariant hoisting (passes/hoist.c) with the plan's STAGES/GUIDANCE sections and the
 * session's prologue, step tables and guidance scale (runtime/api.c).
 *
 * The pass tests build a small network with a fixed batch of 2 baked into its Reshape
 * constants:
 *
 *   x[2,4,6] -MatMul W1-> Add -> Reshape[2,24] ---+
 *   c[2,3,6] -ReduceMean(1)-^ \-Reshape[2,6] -MatMul W2-+-- Add -- Tanh -- Reshape[2,4,6] -- Add bias
 *   t[2] -Unsqueeze-> MatMul W3[1,24] -------------+                    (linear tail)
 *
 * and compare the folded graph against a plain C forward pass run twice (c and zeros). The
 * latent and timestep paths run at batch 2 until they meet the conditioning. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "distilrt.h"
#include "ir/cfg_combine.h"
#include "ir/infer.h"
#include "passes/canonicalize.h"
#include "passes/cfg_fold.h"
#include "passes/hoist.h"
#include "runtime/cpu/executor.h"
#include "runtime/plan.h"
#include "runtime/sampler.h"

/* ---- drt.CfgCombine kernel ------------------------------------------------------------------ */
static drt_node *combine_node(drt_graph *g, const drt_shape *xs, const char *mode, int64_t axis, bool state,
                              int nout, drt_value **x_out) {
  drt_shape one = drt_test_shape(1, (int64_t[]){1});
  drt_value *x = drt_graph_add_value(g, "x", DRT_DTYPE_FLOAT32, xs);
  drt_value *w = drt_graph_add_value(g, "w", DRT_DTYPE_FLOAT32, &one);
  drt_shape ys = *xs;
  ys.dims[axis] /= 2;
  drt_value *s = state ? drt_graph_add_value(g, "state", DRT_DTYPE_FLOAT32, &ys) : NULL;
  drt_value *ins[3] = {x, w, s};
  drt_value *outs[2] = {drt_graph_add_value(g, "y", DRT_DTYPE_UNDEFINED, NULL),
                        drt_graph_add_value(g, "y2", DRT_DTYPE_UNDEFINED, NULL)};
  drt_node *n;
  assert_null(drt_graph_add_node(g, DRT_OP_FUSED_CFG_COMBINE, "comb", ins, state ? 3 : 2, outs, nout, &n));
  drt_attr am = {.name = "mode", .type = DRT_ATTR_STRING, .s = mode, .s_len = strlen(mode)};
  drt_attr aa = {.name = "axis", .type = DRT_ATTR_INT, .i = axis};
  assert_null(drt_node_add_attr(g, n, &am));
  assert_null(drt_node_add_attr(g, n, &aa));
  *x_out = x;
  return n;
}

static void add_f(drt_graph *g, drt_node *n, const char *name, float v) {
  drt_attr a = {.name = name, .type = DRT_ATTR_FLOAT, .f = v};
  assert_null(drt_node_add_attr(g, n, &a));
}

static void test_combine_standard_axis1(void **state) {
  (void)state;
  drt_graph *g;
  DRT_ASSERT_OK(drt_graph_create(&g));
  drt_shape xs = drt_test_shape(3, (int64_t[]){3, 8, 5}); /* halves along axis 1: [3, 4|4, 5] */
  drt_value *xv;
  drt_node *n = combine_node(g, &xs, "cfgpp", 1, false, 2, &xv);
  drt_test_rng r = {11};
  float x[120], w = 3.25f;
  drt_test_fill(&r, x, 120, -2, 2);
  drt_tensor ins[2] = {{DRT_DTYPE_FLOAT32, xs, x}, {DRT_DTYPE_FLOAT32, drt_test_shape(1, (int64_t[]){1}), &w}};
  drt_tensor outs[2];
  DRT_ASSERT_OK(drt_test_run_node(g, n, ins, outs));
  assert_int_equal(outs[0].shape.dims[1], 4);
  float ref[60], refu[60];
  for (int o = 0; o < 3; o++)
    for (int i = 0; i < 4; i++)
      for (int k = 0; k < 5; k++) {
        float c = x[(o * 8 + i) * 5 + k], u = x[(o * 8 + 4 + i) * 5 + k];
        ref[(o * 4 + i) * 5 + k] = u + w * (c - u);
        refu[(o * 4 + i) * 5 + k] = u;
      }
  assert_true(drt_test_rel_l2(outs[0].data, ref, 60) <= 1e-6);
  assert_true(drt_test_rel_l2(outs[1].data, refu, 60) == 0);
  free(outs[0].data);
  free(outs[1].data);
  drt_graph_destroy(g);
}

static void test_combine_rescale_apg(void **state) {
  (void)state;
  drt_test_rng r = {12};
  enum { B = 2, N = 30 };
  float x[2 * B * N], st[B * N], w = 5.0f;
  drt_test_fill(&r, x, 2 * B * N, -1, 1);
  drt_test_fill(&r, st, B * N, -1, 1);
  drt_shape xs = drt_test_shape(3, (int64_t[]){2 * B, 5, 6});
  for (int mode = 0; mode < 2; mode++) {
    drt_graph *g;
    DRT_ASSERT_OK(drt_graph_create(&g));
    drt_value *xv;
    drt_node *n = combine_node(g, &xs, mode ? "apg" : "rescale", 0, mode == 1, mode ? 2 : 1, &xv);
    if (mode == 0) add_f(g, n, "phi", 0.7f);
    else {
      add_f(g, n, "eta", 0.25f);
      add_f(g, n, "norm_threshold", 1.5f);
      add_f(g, n, "momentum", -0.5f);
    }
    drt_tensor ins[3] = {{DRT_DTYPE_FLOAT32, xs, x},
                         {DRT_DTYPE_FLOAT32, drt_test_shape(1, (int64_t[]){1}), &w},
                         {DRT_DTYPE_FLOAT32, drt_test_shape(3, (int64_t[]){B, 5, 6}), st}};
    drt_tensor outs[2];
    DRT_ASSERT_OK(drt_test_run_node(g, n, ins, outs));
    float ref[B * N], ref_state[B * N];
    for (int b = 0; b < B; b++) {
      const float *c = x + b * N, *u = x + (B + b) * N;
      double y[N];
      if (mode == 0) { /* diffusers rescale_noise_cfg, torch.std unbiased */
        double mc = 0, mg = 0, vc = 0, vg = 0;
        for (int i = 0; i < N; i++) {
          y[i] = u[i] + w * (c[i] - u[i]);
          mc += c[i] / (double)N;
          mg += y[i] / (double)N;
        }
        for (int i = 0; i < N; i++) {
          vc += (c[i] - mc) * (c[i] - mc);
          vg += (y[i] - mg) * (y[i] - mg);
        }
        double f = sqrt(vc / (N - 1)) / sqrt(vg / (N - 1));
        for (int i = 0; i < N; i++) ref[b * N + i] = (float)(0.7 * y[i] * f + 0.3 * y[i]);
      } else { /* diffusers normalized_guidance with a momentum buffer */
        double d[N], dd = 0, cc = 0, dot = 0;
        for (int i = 0; i < N; i++) {
          d[i] = (c[i] - u[i]) + -0.5 * st[b * N + i];
          ref_state[b * N + i] = (float)d[i];
          dd += d[i] * d[i];
          cc += (double)c[i] * c[i];
        }
        double s = fmin(1.0, 1.5 / sqrt(dd));
        for (int i = 0; i < N; i++) dot += d[i] * s * c[i] / sqrt(cc);
        for (int i = 0; i < N; i++) {
          double par = dot * c[i] / sqrt(cc), orth = d[i] * s - par;
          ref[b * N + i] = (float)(u[i] + w * (orth + 0.25 * par));
        }
      }
    }
    assert_true(drt_test_rel_l2(outs[0].data, ref, B * N) <= 1e-6);
    if (mode == 1) assert_true(drt_test_rel_l2(outs[1].data, ref_state, B * N) <= 1e-6);
    for (int i = 0; i < (mode ? 2 : 1); i++) free(outs[i].data);
    drt_graph_destroy(g);
  }
}

static void test_combine_errors(void **state) {
  (void)state;
  drt_graph *g;
  DRT_ASSERT_OK(drt_graph_create(&g));
  drt_value *xv;
  drt_shape odd = drt_test_shape(2, (int64_t[]){3, 4});
  drt_node *n = combine_node(g, &odd, "standard", 0, false, 1, &xv);
  DRT_ASSERT_ERROR(drt_infer_node(g, n), DRT_STATUS_INVALID_ARGUMENT, "must be even");
  drt_graph_destroy(g);
  DRT_ASSERT_OK(drt_graph_create(&g));
  drt_shape xs = drt_test_shape(2, (int64_t[]){4, 4});
  n = combine_node(g, &xs, "rescale", 1, false, 1, &xv);
  DRT_ASSERT_ERROR(drt_infer_node(g, n), DRT_STATUS_INVALID_ARGUMENT, "needs axis 0");
  drt_graph_destroy(g);
  DRT_ASSERT_OK(drt_graph_create(&g));
  n = combine_node(g, &xs, "apg", 0, false, 2, &xv);
  DRT_ASSERT_ERROR(drt_infer_node(g, n), DRT_STATUS_INVALID_ARGUMENT, "needs a state input");
  drt_graph_destroy(g);
  DRT_ASSERT_OK(drt_graph_create(&g));
  n = combine_node(g, &xs, "loud", 0, false, 1, &xv);
  DRT_ASSERT_ERROR(drt_infer_node(g, n), DRT_STATUS_INVALID_ARGUMENT, "attribute mode 'loud'");
  drt_graph_destroy(g);
  drt_cfg_mode m;
  DRT_ASSERT_OK(drt_cfg_mode_parse("apg:0,15,-0.5", &m));
  assert_int_equal(m.kind, DRT_CFG_APG);
  assert_true(m.eta == 0 && m.norm_threshold == 15 && m.momentum == -0.5);
  DRT_ASSERT_OK(drt_cfg_mode_parse("rescale:0.7", &m));
  assert_true(m.kind == DRT_CFG_RESCALE && m.phi == 0.7);
  DRT_ASSERT_ERROR(drt_cfg_mode_parse("rescale:2", &m), DRT_STATUS_INVALID_ARGUMENT, "PHI in [0, 1]");
  DRT_ASSERT_ERROR(drt_cfg_mode_parse("apg:1,2", &m), DRT_STATUS_INVALID_ARGUMENT, "three numbers");
  DRT_ASSERT_ERROR(drt_cfg_mode_parse("cfg+", &m), DRT_STATUS_INVALID_ARGUMENT, "unknown guidance mode");
}

/* ---- the network ------------------------------------------------------------------------------ */
enum { NB = 2, NS = 4, ND = 6, NT = 3, NH = NS * ND };

typedef struct net_weights {
  float w1[ND * ND], w2[ND * NH], w3[NH], bias[ND];
} net_weights;

static void make_weights(net_weights *w) {
  drt_test_rng r = {21};
  drt_test_fill(&r, w->w1, ND * ND, -0.5f, 0.5f);
  drt_test_fill(&r, w->w2, ND * NH, -0.5f, 0.5f);
  drt_test_fill(&r, w->w3, NH, -0.01f, 0.01f);
  drt_test_fill(&r, w->bias, ND, -1, 1);
}

static drt_value *cf(drt_graph *g, const char *name, const float *data, int rank, const int64_t *dims) {
  drt_shape s = drt_test_shape(rank, dims);
  drt_value *v;
  assert_null(drt_graph_add_const(g, name, DRT_DTYPE_FLOAT32, &s, data, &v));
  return v;
}

static drt_value *ci(drt_graph *g, const int64_t *data, int n) {
  drt_shape s = drt_test_shape(1, (int64_t[]){n});
  drt_value *v;
  assert_null(drt_graph_add_const(g, NULL, DRT_DTYPE_INT64, &s, data, &v));
  return v;
}

static drt_value *node(drt_graph *g, drt_op op, drt_value *a, drt_value *b) {
  drt_value *ins[2] = {a, b}, *o = drt_graph_add_value(g, NULL, DRT_DTYPE_UNDEFINED, NULL);
  assert_null(drt_graph_add_node(g, op, NULL, ins, b ? 2 : 1, &o, 1, NULL));
  return o;
}

/* Builds the network with `reduce_axis` as the ReduceMean axis of the conditioning. */
static drt_graph *build_net(const net_weights *w, int64_t reduce_axis) {
  drt_graph *g;
  assert_null(drt_graph_create(&g));
  g->opset = 17;
  drt_shape xs = drt_test_shape(3, (int64_t[]){NB, NS, ND}), ts = drt_test_shape(1, (int64_t[]){NB}),
            cs = drt_test_shape(3, (int64_t[]){NB, NT, ND});
  drt_value *x = drt_graph_add_value(g, "x", DRT_DTYPE_FLOAT32, &xs);
  drt_value *t = drt_graph_add_value(g, "t", DRT_DTYPE_FLOAT32, &ts);
  drt_value *c = drt_graph_add_value(g, "c", DRT_DTYPE_FLOAT32, &cs);
  assert_null(drt_graph_add_input(g, x));
  assert_null(drt_graph_add_input(g, t));
  assert_null(drt_graph_add_input(g, c));
  drt_value *cm = node(g, DRT_OP_REDUCE_MEAN, c, NULL); /* [2,1,6] */
  drt_attr ax = {.name = "axes", .type = DRT_ATTR_INTS, .count = 1, .ints = (int64_t[]){reduce_axis}};
  assert_null(drt_node_add_attr(g, cm->producer, &ax));
  drt_value *h = node(g, DRT_OP_ADD, node(g, DRT_OP_MATMUL, x, cf(g, "W1", w->w1, 2, (int64_t[]){ND, ND})), cm);
  drt_value *h2 = node(g, DRT_OP_RESHAPE, h, ci(g, (int64_t[]){NB, NH}, 2)); /* batch 2 baked in */
  drt_value *tt = node(g, DRT_OP_UNSQUEEZE, t, ci(g, (int64_t[]){1}, 1));
  drt_value *te = node(g, DRT_OP_MATMUL, tt, cf(g, "W3", w->w3, 2, (int64_t[]){1, NH}));
  drt_value *cm2 = node(g, DRT_OP_RESHAPE, cm, ci(g, (int64_t[]){NB, ND}, 2));
  drt_value *cp = node(g, DRT_OP_MATMUL, cm2, cf(g, "W2", w->w2, 2, (int64_t[]){ND, NH}));
  drt_value *a = node(g, DRT_OP_TANH, node(g, DRT_OP_ADD, node(g, DRT_OP_ADD, h2, te), cp), NULL);
  drt_value *o1 = node(g, DRT_OP_RESHAPE, a, ci(g, (int64_t[]){NB, NS, ND}, 3));
  drt_value *out = node(g, DRT_OP_ADD, o1, cf(g, "bias", w->bias, 1, (int64_t[]){ND}));
  out->name = "out";
  g->name_index_dirty = true;
  assert_null(drt_graph_add_output(g, out));
  return g;
}

/* The same network in plain C, for one (x, t, c). */
static void forward(const net_weights *w, const float *x, const float *t, const float *c, float *out) {
  for (int b = 0; b < NB; b++) {
    float cm[ND];
    for (int k = 0; k < ND; k++) {
      double s = 0;
      for (int i = 0; i < NT; i++) s += c[(b * NT + i) * ND + k];
      cm[k] = (float)(s / NT);
    }
    for (int i = 0; i < NS; i++)
      for (int j = 0; j < ND; j++) {
        int n = i * ND + j;
        double h = cm[j], cp = 0;
        for (int k = 0; k < ND; k++) h += (double)x[(b * NS + i) * ND + k] * w->w1[k * ND + j];
        for (int k = 0; k < ND; k++) cp += (double)cm[k] * w->w2[k * NH + n];
        out[(b * NS + i) * ND + j] = (float)tanh(h + t[b] * w->w3[n] + cp) + w->bias[j];
      }
  }
}

typedef struct net_inputs {
  float x[NB * NS * ND], t[NB], c[NB * NT * ND];
} net_inputs;

static void make_inputs(net_inputs *in) {
  drt_test_rng r = {33};
  drt_test_fill(&r, in->x, NB * NS * ND, -1, 1);
  drt_test_fill(&r, in->c, NB * NT * ND, -2, 2);
  in->t[0] = in->t[1] = 0.75f;
}

static void guided_ref(const net_weights *w, const net_inputs *in, float scale, float *out) {
  float zeros[NB * NT * ND] = {0}, c[NB * NS * ND], u[NB * NS * ND];
  forward(w, in->x, in->t, in->c, c);
  forward(w, in->x, in->t, zeros, u);
  for (int i = 0; i < NB * NS * ND; i++) out[i] = u[i] + scale * (c[i] - u[i]);
}

static int count_op(const drt_graph *g, drt_op op) {
  int n = 0;
  for (size_t i = 0; i < g->num_nodes; i++) n += g->nodes[i]->op == op;
  return n;
}

static drt_pass_ctx fold_ctx(drt_pass_results *res) {
  static const char *names[] = {"c"};
  drt_pass_ctx pc;
  memset(&pc, 0, sizeof pc);
  pc.cfg_enabled = true;
  pc.cfg_scale = 3.0;
  pc.cfg_num_uncond = 1;
  pc.cfg_uncond_names[0] = names[0];
  pc.latent_input = "x";
  pc.timestep_input = "t";
  pc.results = res;
  return pc;
}

static void run_graph(const drt_graph *g, const drt_tensor *ins, float *out, size_t n) {
  drt_cpu_executor *ex;
  drt_cpu_executor_options eo;
  drt_cpu_executor_options_init(&eo);
  eo.num_threads = 1;
  DRT_ASSERT_OK(drt_cpu_executor_create(g, &eo, &ex));
  drt_tensor outs[4];
  DRT_ASSERT_OK(drt_cpu_executor_run(ex, ins, outs));
  memcpy(out, outs[0].data, n * sizeof(float));
  for (size_t i = 0; i < g->num_outputs; i++) free(outs[i].data);
  drt_cpu_executor_destroy(ex);
}

static void test_fold_fixed_batch(void **state) {
  (void)state;
  net_weights w;
  net_inputs in;
  make_weights(&w);
  make_inputs(&in);
  drt_graph *g = build_net(&w, 1);
  drt_pass_results res;
  memset(&res, 0, sizeof res);
  drt_pass_ctx pc = fold_ctx(&res);
  bool changed;
  DRT_ASSERT_OK(drt_pass_canonicalize(g, &pc, &changed));
  DRT_ASSERT_OK(drt_pass_cfg_fold(g, &pc, &changed));
  assert_true(changed);
  DRT_ASSERT_OK(drt_graph_verify(g, true));
  /* structure: c is concatenated with its constant zeros; x and t are not (their paths run at
     batch 2 until they meet c); one combine before the tail */
  assert_int_equal(count_op(g, DRT_OP_FUSED_CFG_COMBINE), 1);
  assert_int_equal(g->num_inputs, 4);
  int cond_concats = 0;
  for (size_t i = 0; i < g->num_nodes; i++) {
    const drt_node *n = g->nodes[i];
    if (n->op != DRT_OP_CONCAT) continue;
    assert_ptr_not_equal(n->inputs[0], g->inputs[0]);
    assert_ptr_not_equal(n->inputs[0], g->inputs[1]);
    if (n->inputs[0] == g->inputs[2]) {
      cond_concats++;
      assert_int_equal(n->inputs[1]->kind, DRT_VALUE_CONST);
    }
  }
  assert_int_equal(cond_concats, 1);
  for (size_t i = 0; i < g->num_nodes; i++)
    if (g->nodes[i]->op == DRT_OP_MATMUL && g->nodes[i]->inputs[0] == g->inputs[0])
      assert_int_equal(g->nodes[i]->outputs[0]->shape.dims[0], NB); /* x @ W1 at batch 2 */
  assert_string_equal(res.cfg_scale_input, "guidance_scale");
  assert_string_equal(g->inputs[3]->name, "guidance_scale");
  assert_int_equal(g->inputs[0]->shape.dims[0], NB); /* the external batch stays B */
  drt_node *comb = NULL, *first_reshape = NULL;
  for (size_t i = 0; i < g->num_nodes; i++) {
    if (g->nodes[i]->op == DRT_OP_FUSED_CFG_COMBINE) comb = g->nodes[i];
    if (g->nodes[i]->op == DRT_OP_RESHAPE && !first_reshape && g->nodes[i]->inputs[0]->producer &&
        g->nodes[i]->inputs[0]->producer->op == DRT_OP_ADD)
      first_reshape = g->nodes[i];
  }
  assert_non_null(first_reshape);
  /* the combine reads the Tanh output at batch 2B; the linear tail (Reshape, Add) runs at B */
  assert_int_equal(comb->inputs[0]->producer->op, DRT_OP_TANH);
  assert_int_equal(comb->inputs[0]->shape.dims[0], 2 * NB);
  assert_int_equal(comb->outputs[0]->shape.dims[0], NB);
  /* the batch-2 Reshape target was rewritten to 4 */
  int64_t dims[4], cnt;
  DRT_ASSERT_OK(drt_value_const_ints(first_reshape->inputs[1], dims, 4, &cnt));
  assert_int_equal(cnt, 2);
  assert_int_equal(dims[0], 2 * NB);
  assert_int_equal(dims[1], NH);
  /* numerics: one evaluation == the two forward passes combined by hand */
  float scale = 3.0f, out[NB * NS * ND], ref[NB * NS * ND];
  drt_tensor ins[4] = {{DRT_DTYPE_FLOAT32, g->inputs[0]->shape, in.x},
                       {DRT_DTYPE_FLOAT32, g->inputs[1]->shape, in.t},
                       {DRT_DTYPE_FLOAT32, g->inputs[2]->shape, in.c},
                       {DRT_DTYPE_FLOAT32, g->inputs[3]->shape, &scale}};
  run_graph(g, ins, out, NB * NS * ND);
  guided_ref(&w, &in, scale, ref);
  assert_true(drt_test_rel_l2(out, ref, NB * NS * ND) <= 1e-5);
  scale = -1.5f; /* a runtime input: no rebuild */
  run_graph(g, ins, out, NB * NS * ND);
  guided_ref(&w, &in, scale, ref);
  assert_true(drt_test_rel_l2(out, ref, NB * NS * ND) <= 1e-5);
  drt_graph_destroy(g);
}

static void test_fold_declines(void **state) {
  (void)state;
  net_weights w;
  make_weights(&w);
  drt_pass_results res;
  memset(&res, 0, sizeof res);
  drt_pass_ctx pc = fold_ctx(&res);
  bool changed;
  /* a reduction over the batch axis cannot run at twice the batch: the pass refuses, naming it */
  drt_graph *g;
  DRT_ASSERT_OK(drt_graph_create(&g));
  g->opset = 17;
  drt_shape xs = drt_test_shape(2, (int64_t[]){NB, ND});
  drt_value *x = drt_graph_add_value(g, "x", DRT_DTYPE_FLOAT32, &xs);
  drt_value *c = drt_graph_add_value(g, "c", DRT_DTYPE_FLOAT32, &xs);
  assert_null(drt_graph_add_input(g, x));
  assert_null(drt_graph_add_input(g, c));
  drt_value *m = node(g, DRT_OP_REDUCE_MEAN, node(g, DRT_OP_ADD, x, c), NULL); /* mean over everything */
  drt_value *o = node(g, DRT_OP_MUL, x, m);
  assert_null(drt_graph_add_output(g, o));
  DRT_ASSERT_OK(drt_pass_canonicalize(g, &pc, &changed));
  DRT_ASSERT_ERROR(drt_pass_cfg_fold(g, &pc, &changed), DRT_STATUS_UNSUPPORTED, "reduces over the batch axis");
  drt_graph_destroy(g);
  /* unknown conditioning input */
  g = build_net(&w, 1);
  pc.cfg_uncond_names[0] = "nope";
  DRT_ASSERT_OK(drt_pass_canonicalize(g, &pc, &changed));
  DRT_ASSERT_ERROR(drt_pass_cfg_fold(g, &pc, &changed), DRT_STATUS_NOT_FOUND, "--cfg-uncond nope");
  drt_graph_destroy(g);
  /* no latent */
  g = build_net(&w, 1);
  pc = fold_ctx(&res);
  pc.latent_input = NULL;
  DRT_ASSERT_OK(drt_pass_canonicalize(g, &pc, &changed));
  DRT_ASSERT_ERROR(drt_pass_cfg_fold(g, &pc, &changed), DRT_STATUS_INVALID_ARGUMENT, "--latent");
  drt_graph_destroy(g);
}

/* A statistic over the whole batch of the latent (before the conditioning enters) is what each of
 * the two separate evaluations computes, so it stays at batch B and is shared by both halves. */
static void test_fold_batch_statistic_before_conditioning(void **state) {
  (void)state;
  drt_pass_results res;
  memset(&res, 0, sizeof res);
  drt_pass_ctx pc = fold_ctx(&res);
  drt_graph *g;
  DRT_ASSERT_OK(drt_graph_create(&g));
  g->opset = 17;
  drt_shape xs = drt_test_shape(2, (int64_t[]){NB, ND});
  drt_value *x = drt_graph_add_value(g, "x", DRT_DTYPE_FLOAT32, &xs);
  drt_value *c = drt_graph_add_value(g, "c", DRT_DTYPE_FLOAT32, &xs);
  assert_null(drt_graph_add_input(g, x));
  assert_null(drt_graph_add_input(g, c));
  drt_value *m = node(g, DRT_OP_REDUCE_MEAN, x, NULL); /* over everything, batch included */
  drt_value *o = node(g, DRT_OP_MUL, node(g, DRT_OP_ADD, x, c), m);
  assert_null(drt_graph_add_output(g, o));
  bool changed;
  DRT_ASSERT_OK(drt_pass_canonicalize(g, &pc, &changed));
  DRT_ASSERT_OK(drt_pass_cfg_fold(g, &pc, &changed));
  float xv[NB * ND], cv[NB * ND], scale = 2.5f, out[NB * ND], ref[NB * ND];
  drt_test_rng r = {44};
  drt_test_fill(&r, xv, NB * ND, -1, 1);
  drt_test_fill(&r, cv, NB * ND, -1, 1);
  double mean = 0;
  for (int i = 0; i < NB * ND; i++) mean += xv[i] / (double)(NB * ND);
  for (int i = 0; i < NB * ND; i++) {
    double cc = (xv[i] + cv[i]) * mean, uu = xv[i] * mean;
    ref[i] = (float)(uu + scale * (cc - uu));
  }
  drt_tensor ins[3] = {{DRT_DTYPE_FLOAT32, xs, xv}, {DRT_DTYPE_FLOAT32, xs, cv},
                       {DRT_DTYPE_FLOAT32, drt_test_shape(1, (int64_t[]){1}), &scale}};
  run_graph(g, ins, out, NB * ND);
  assert_true(drt_test_rel_l2(out, ref, NB * ND) <= 1e-6);
  drt_graph_destroy(g);
}

/* ---- hoisting, plan sections and the session -------------------------------------------------- */
typedef struct compiled {
  void *bytes;
  size_t size;
  double flops;
  size_t stage_nodes[2];
  uint32_t table_steps;
} compiled;

/* canonicalize + cfg-fold (+ hoist) and a plan with roles, a flow-euler schedule and the stages. */
static compiled compile_net(const net_weights *w, bool hoist, const drt_schedule *sched) {
  compiled out;
  memset(&out, 0, sizeof out);
  drt_graph *g = build_net(w, 1);
  drt_pass_results res;
  memset(&res, 0, sizeof res);
  drt_pass_stats stats;
  memset(&stats, 0, sizeof stats);
  drt_pass_ctx pc = fold_ctx(&res);
  pc.stats = &stats;
  double t[8];
  for (int k = 0; k < sched->num_steps; k++) t[k] = sched->steps[k].t_model;
  pc.sched_steps = sched->num_steps;
  pc.sched_t = t;
  bool changed;
  DRT_ASSERT_OK(drt_pass_canonicalize(g, &pc, &changed));
  DRT_ASSERT_OK(drt_pass_cfg_fold(g, &pc, &changed));
  if (hoist) DRT_ASSERT_OK(drt_pass_hoist(g, &pc, &changed));
  DRT_ASSERT_OK(drt_graph_verify(g, true));
  drt_plan_contents c;
  memset(&c, 0, sizeof c);
  c.graph = g;
  c.targets = DRT_PLAN_TARGET_CPU;
  c.input_roles = calloc(g->num_inputs, 1);
  c.output_roles = calloc(g->num_outputs, 1);
  c.input_roles[0] = DRT_PLAN_ROLE_LATENT;
  c.input_roles[1] = DRT_PLAN_ROLE_TIMESTEP;
  c.input_roles[3] = DRT_PLAN_ROLE_GUIDANCE_SCALE;
  for (size_t i = 4; i < g->num_inputs; i++) c.input_roles[i] = DRT_PLAN_ROLE_HOISTED;
  c.output_roles[0] = DRT_PLAN_ROLE_PREDICTION;
  c.has_guidance = true;
  c.guidance.default_scale = 3.0;
  strcpy(c.guidance.mode, "standard");
  c.has_schedule = true;
  strcpy(c.schedule.name, "flow-euler");
  c.schedule.num_steps = (uint32_t)sched->num_steps;
  c.schedule.init_noise_sigma = sched->init_noise_sigma;
  c.schedule.steps = calloc((size_t)sched->num_steps, sizeof *c.schedule.steps);
  for (int k = 0; k < sched->num_steps; k++) {
    const drt_sched_step *q = &sched->steps[k];
    double row[DRT_SCHED_SCALARS] = {q->t_model, q->c_in, q->p_x, q->p_m, q->q_x, q->q_m, q->a, q->b, q->c};
    memcpy(c.schedule.steps[k], row, sizeof row);
  }
  for (int k = 0; k < res.num_stages; k++) {
    c.stages[k].kind = res.stages[k].kind == DRT_STAGE_PROLOGUE ? DRT_PLAN_STAGE_PROLOGUE : DRT_PLAN_STAGE_STEP;
    c.stages[k].graph = res.stages[k].graph;
    c.stages[k].table_steps = (uint32_t)res.stages[k].table_steps;
    c.stages[k].table_t = res.stages[k].table_t;
    c.stages[k].tables = (const void **)res.stages[k].tables;
    out.stage_nodes[k] = res.stages[k].graph->num_nodes;
    if (res.stages[k].table_steps) out.table_steps = (uint32_t)res.stages[k].table_steps;
  }
  c.num_stages = (uint32_t)res.num_stages;
  out.flops = stats.hoisted_flops;
  DRT_ASSERT_OK(drt_plan_serialize(&c, &out.bytes, &out.size));
  free(c.input_roles);
  free(c.output_roles);
  free(c.schedule.steps);
  drt_pass_results_free(&res);
  drt_graph_destroy(g);
  return out;
}

static drt_session *open_session(const compiled *cp, drt_plan **plan, const net_inputs *in) {
  assert_int_equal(drt_plan_load_memory(cp->bytes, cp->size, plan), DRT_STATUS_OK);
  drt_session_options so;
  drt_session_options_init(&so);
  so.num_threads = 1;
  drt_session *s;
  assert_int_equal(drt_session_create(*plan, &so, &s), DRT_STATUS_OK);
  int64_t xd[3] = {NB, NS, ND}, td[1] = {NB}, cd[3] = {NB, NT, ND};
  assert_int_equal(drt_session_set_input(s, "x", DRT_DTYPE_FLOAT32, 3, xd, in->x, sizeof in->x), DRT_STATUS_OK);
  assert_int_equal(drt_session_set_input(s, "t", DRT_DTYPE_FLOAT32, 1, td, in->t, sizeof in->t), DRT_STATUS_OK);
  assert_int_equal(drt_session_set_input(s, "c", DRT_DTYPE_FLOAT32, 3, cd, in->c, sizeof in->c), DRT_STATUS_OK);
  return s;
}

static void get_out(drt_session *s, float *out) {
  const void *data;
  size_t nb;
  assert_int_equal(drt_session_get_output(s, "out", NULL, &data, &nb), DRT_STATUS_OK);
  assert_int_equal(nb, NB * NS * ND * sizeof(float));
  memcpy(out, data, nb);
}

static void set_ints(drt_graph *g, drt_value *out, const char *name, const int64_t *v, int64_t n) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_INTS;
  a.count = n;
  a.ints = (int64_t *)v;
  DRT_ASSERT_OK(drt_node_add_attr(g, out->producer, &a));
}

/* The border of the prologue: the conditioning's K/V projection, its bias add and the head-split
 * transpose stay hoisted (the add fuses into the stage GEMM later); the Split of the result, the
 * Squeezes, K's transpose and the score scaling go back to the per-step graph, where they are
 * views or what the attention absorbs (a misaligned Split would stay, as a copy, in the stage). */
static void test_hoist_border(void **state) {
  (void)state;
  enum { B = 2, S = 4, T = 3, D = 16 }; /* each K/V chunk, 96 values, starts 64-byte aligned in 2 and 4 bytes */
  drt_graph *g;
  DRT_ASSERT_OK(drt_graph_create(&g));
  g->opset = 17;
  drt_shape xs = drt_test_shape(3, (int64_t[]){B, S, D}), ts = drt_test_shape(1, (int64_t[]){B}),
            cs = drt_test_shape(3, (int64_t[]){B, T, D});
  drt_value *x = drt_graph_add_value(g, "x", DRT_DTYPE_FLOAT32, &xs), *t = drt_graph_add_value(g, "t", DRT_DTYPE_FLOAT32, &ts),
            *c = drt_graph_add_value(g, "c", DRT_DTYPE_FLOAT32, &cs);
  assert_null(drt_graph_add_input(g, x));
  assert_null(drt_graph_add_input(g, t));
  assert_null(drt_graph_add_input(g, c));
  float wd[D * 2 * D], bd[2 * D], half = 0.5f;
  drt_test_rng r = {5};
  drt_test_fill(&r, wd, D * 2 * D, -1, 1);
  drt_test_fill(&r, bd, 2 * D, -1, 1);
  drt_value *kv = node(g, DRT_OP_ADD, node(g, DRT_OP_MATMUL, c, cf(g, "Wkv", wd, 2, (int64_t[]){D, 2 * D})),
                       cf(g, "bkv", bd, 1, (int64_t[]){2 * D}));
  drt_value *r5 = node(g, DRT_OP_RESHAPE, kv, ci(g, (int64_t[]){B, T, 2, D}, 4));
  drt_value *tr = node(g, DRT_OP_TRANSPOSE, r5, NULL);
  set_ints(g, tr, "perm", (int64_t[]){2, 0, 1, 3}, 4);
  drt_value *ch[2] = {drt_graph_add_value(g, NULL, DRT_DTYPE_UNDEFINED, NULL),
                      drt_graph_add_value(g, NULL, DRT_DTYPE_UNDEFINED, NULL)};
  assert_null(drt_graph_add_node(g, DRT_OP_SPLIT, NULL, &tr, 1, ch, 2, NULL));
  drt_value *k = node(g, DRT_OP_SQUEEZE, ch[0], ci(g, (int64_t[]){0}, 1)), *v = node(g, DRT_OP_SQUEEZE, ch[1], ci(g, (int64_t[]){0}, 1));
  drt_value *kt = node(g, DRT_OP_TRANSPOSE, k, NULL);
  set_ints(g, kt, "perm", (int64_t[]){0, 2, 1}, 3);
  drt_value *scores = node(g, DRT_OP_MATMUL, x, node(g, DRT_OP_MUL, kt, cf(g, "half", &half, 0, NULL)));
  drt_value *o = node(g, DRT_OP_ADD, x, node(g, DRT_OP_MATMUL, node(g, DRT_OP_SOFTMAX, scores, NULL), v));
  assert_null(drt_graph_add_output(g, o));
  drt_pass_results res;
  memset(&res, 0, sizeof res);
  drt_pass_ctx pc;
  memset(&pc, 0, sizeof pc);
  pc.latent_input = "x";
  pc.timestep_input = "t";
  pc.results = &res;
  bool changed;
  DRT_ASSERT_OK(drt_pass_canonicalize(g, &pc, &changed));
  DRT_ASSERT_OK(drt_pass_hoist(g, &pc, &changed));
  assert_int_equal(res.num_stages, 1);
  const drt_graph *pro = res.stages[0].graph;
  assert_int_equal(count_op(pro, DRT_OP_MATMUL), 1);
  assert_int_equal(count_op(pro, DRT_OP_ADD), 1);       /* the bias add stays hoisted */
  assert_int_equal(count_op(pro, DRT_OP_TRANSPOSE), 1); /* the head split too */
  assert_int_equal(count_op(pro, DRT_OP_SPLIT) + count_op(pro, DRT_OP_SQUEEZE) + count_op(pro, DRT_OP_MUL), 0);
  assert_int_equal(pro->num_outputs, 1);                 /* one stage output, split in main */
  assert_int_equal(count_op(g, DRT_OP_SPLIT), 1);
  assert_int_equal(count_op(g, DRT_OP_SQUEEZE), 2);
  assert_int_equal(count_op(g, DRT_OP_TRANSPOSE), 1);   /* K^T, absorbed by the attention */
  assert_int_equal(count_op(g, DRT_OP_MUL), 1);         /* the score scale */
  assert_int_equal(count_op(g, DRT_OP_ADD), 1);         /* only the residual */
  drt_pass_results_free(&res);
  drt_graph_destroy(g);
}

static void test_hoist_plan_session(void **state) {
  (void)state;
  net_weights w;
  net_inputs in;
  make_weights(&w);
  make_inputs(&in);
  drt_schedule_params sp;
  drt_schedule sched;
  DRT_ASSERT_OK(drt_schedule_parse_params("flow-euler", 3, NULL, &sp));
  DRT_ASSERT_OK(drt_schedule_build(&sp, &sched));
  compiled h = compile_net(&w, true, &sched), p = compile_net(&w, false, &sched);
  /* prologue: Concat(c, zeros), ReduceMean, Reshape, MatMul W2 at batch 2B; step stage:
     Unsqueeze, MatMul W3 at batch B (t alone does not depend on the conditioning), with 3 table
     rows. FLOPs: (2B x 6) x (6 x 24) and (B x 1) x (1 x 24). */
  assert_int_equal(h.table_steps, 3);
  assert_true(h.stage_nodes[0] >= 2 && h.stage_nodes[1] >= 1);
  assert_true(fabs(h.flops - (2.0 * 2 * NB * ND * NH + 2.0 * NB * 1 * NH)) < 1e-9);
  assert_true(p.flops == 0);
  drt_plan *ph, *pp;
  drt_session *sh = open_session(&h, &ph, &in), *sp2 = open_session(&p, &pp, &in);
  /* the public signature hides the hoisted inputs */
  assert_int_equal(drt_plan_num_inputs(ph), 4);
  drt_tensor_desc d;
  assert_int_equal(drt_plan_input(ph, 3, &d), DRT_STATUS_OK);
  assert_int_equal(d.role, DRT_ROLE_GUIDANCE_SCALE);
  assert_int_equal(drt_plan_input(ph, 4, &d), DRT_STATUS_INVALID_ARGUMENT);
  double dflt = 0;
  assert_string_equal(drt_plan_guidance(ph, &dflt), "standard");
  assert_true(dflt == 3.0);
  /* one run: default scale, then another scale without recompiling */
  float a[NB * NS * ND], b[NB * NS * ND], ref[NB * NS * ND];
  assert_int_equal(drt_session_run(sh), DRT_STATUS_OK);
  get_out(sh, a);
  guided_ref(&w, &in, 3.0f, ref);
  assert_true(drt_test_rel_l2(a, ref, NB * NS * ND) <= 1e-5);
  assert_int_equal(drt_session_set_guidance_scale(sh, 7.0), DRT_STATUS_OK);
  assert_int_equal(drt_session_set_guidance_scale(sp2, 7.0), DRT_STATUS_OK);
  assert_int_equal(drt_session_run(sh), DRT_STATUS_OK);
  assert_int_equal(drt_session_run(sp2), DRT_STATUS_OK);
  get_out(sh, a);
  get_out(sp2, b);
  guided_ref(&w, &in, 7.0f, ref);
  assert_true(drt_test_rel_l2(a, ref, NB * NS * ND) <= 1e-5);
  assert_true(drt_test_rel_l2(a, b, NB * NS * ND) <= 1e-6);
  /* generation: one evaluation per step; hoisted (tables) == not hoisted */
  drt_generate_options go;
  drt_generate_options_init(&go);
  go.seed = 5;
  uint64_t n0 = drt_session_nfe(sh);
  assert_int_equal(drt_session_generate(sh, &go), DRT_STATUS_OK);
  assert_int_equal(drt_session_nfe(sh) - n0, 3);
  assert_int_equal(drt_session_generate(sp2, &go), DRT_STATUS_OK);
  const void *ga, *gb;
  size_t nb;
  assert_int_equal(drt_session_get_output(sh, "x", NULL, &ga, &nb), DRT_STATUS_OK);
  assert_int_equal(drt_session_get_output(sp2, "x", NULL, &gb, &nb), DRT_STATUS_OK);
  assert_true(drt_test_rel_l2(ga, gb, NB * NS * ND) <= 1e-6);
  /* 2 steps: no table row matches, the step stage runs */
  go.steps = 2;
  assert_int_equal(drt_session_generate(sh, &go), DRT_STATUS_OK);
  assert_int_equal(drt_session_generate(sp2, &go), DRT_STATUS_OK);
  assert_int_equal(drt_session_get_output(sh, "x", NULL, &ga, &nb), DRT_STATUS_OK);
  assert_int_equal(drt_session_get_output(sp2, "x", NULL, &gb, &nb), DRT_STATUS_OK);
  assert_true(drt_test_rel_l2(ga, gb, NB * NS * ND) <= 1e-6);
  drt_session_destroy(sh);
  drt_session_destroy(sp2);
  drt_plan_destroy(ph);
  drt_plan_destroy(pp);
  /* the stages survive a parse round trip */
  drt_plan_contents pc;
  void *copy = malloc(h.size);
  memcpy(copy, h.bytes, h.size);
  DRT_ASSERT_OK(drt_plan_parse(copy, h.size, "hoisted", &pc));
  assert_int_equal(pc.num_stages, 2);
  drt_plan_contents_free(&pc);
  free(h.bytes);
  free(p.bytes);
  drt_schedule_free(&sched);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_combine_standard_axis1),
      cmocka_unit_test(test_combine_rescale_apg),
      cmocka_unit_test(test_combine_errors),
      cmocka_unit_test(test_fold_fixed_batch),
      cmocka_unit_test(test_fold_declines),
      cmocka_unit_test(test_fold_batch_statistic_before_conditioning),
      cmocka_unit_test(test_hoist_plan_session),
      cmocka_unit_test(test_hoist_border),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
