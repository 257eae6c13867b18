/* Shared by the pass tests (test_fusion_elementwise.c, test_fusion_attn_norm.c,
 * test_norm_fuse_forms.c): small float32 graphs built node by node with seeded random inputs and
 * constants, and their evaluation on the CPU executor. Include after testutil.h. */
#ifndef DRT_TEST_GRAPH_TESTUTIL_H
#define DRT_TEST_GRAPH_TESTUTIL_H

#include <stdlib.h>
#include <string.h>

#include "passes/canonicalize.h"
#include "passes/memory_plan.h"
#include "passes/pass.h"
#include "runtime/cpu/executor.h"

#define TG_MAX_IO 8

/* ---- graph building --------------------------------------------------------------------- */
typedef struct tg {
  drt_graph *g;
  drt_test_rng rng;
  int nin;
  drt_tensor in[TG_MAX_IO];
} tg;

/* An empty graph of the given default-domain opset; seed for its random inputs and constants. */
static inline void tg_init_opset(tg *t, uint64_t seed, int opset) {
  memset(t, 0, sizeof *t);
  DRT_ASSERT_OK(drt_graph_create(&t->g));
  t->g->opset = opset;
  t->rng.s = seed;
}

static inline void tg_init(tg *t, uint64_t seed) { tg_init_opset(t, seed, 17); }

static inline void tg_free(tg *t) {
  for (int i = 0; i < t->nin; i++) free(t->in[i].data);
  drt_graph_destroy(t->g);
}

static inline drt_value *input(tg *t, const char *name, int rank, const int64_t *dims, float lo, float hi) {
  drt_shape s = drt_test_shape(rank, dims);
  drt_value *v = drt_graph_add_value(t->g, name, DRT_DTYPE_FLOAT32, &s);
  assert_non_null(v);
  DRT_ASSERT_OK(drt_graph_add_input(t->g, v));
  assert_true(t->nin < TG_MAX_IO);
  drt_tensor *x = &t->in[t->nin++];
  x->dtype = DRT_DTYPE_FLOAT32;
  x->shape = s;
  size_t n = (size_t)drt_shape_numel(&s);
  x->data = malloc((n ? n : 1) * sizeof(float));
  assert_non_null(x->data);
  drt_test_fill(&t->rng, x->data, n, lo, hi);
  return v;
}

static inline drt_value *input_i32(tg *t, const char *name, int rank, const int64_t *dims) {
  drt_shape s = drt_test_shape(rank, dims);
  drt_value *v = drt_graph_add_value(t->g, name, DRT_DTYPE_INT32, &s);
  DRT_ASSERT_OK(drt_graph_add_input(t->g, v));
  assert_true(t->nin < TG_MAX_IO);
  drt_tensor *x = &t->in[t->nin++];
  x->dtype = DRT_DTYPE_INT32;
  x->shape = s;
  size_t n = (size_t)drt_shape_numel(&s);
  int32_t *d = malloc((n ? n : 1) * sizeof(int32_t));
  assert_non_null(d);
  for (size_t i = 0; i < n; i++) d[i] = (int32_t)(drt_test_next(&t->rng) % 100) - 50;
  x->data = d;
  return v;
}

static inline drt_value *cst_f(tg *t, int rank, const int64_t *dims, const float *data) {
  drt_shape s = drt_test_shape(rank, dims);
  drt_value *v;
  DRT_ASSERT_OK(drt_graph_add_const(t->g, NULL, DRT_DTYPE_FLOAT32, &s, data, &v));
  return v;
}

static inline drt_value *cst_rand(tg *t, int rank, const int64_t *dims, float lo, float hi) {
  drt_shape s = drt_test_shape(rank, dims);
  size_t n = (size_t)drt_shape_numel(&s);
  float *d = malloc((n ? n : 1) * sizeof(float));
  assert_non_null(d);
  drt_test_fill(&t->rng, d, n, lo, hi);
  drt_value *v = cst_f(t, rank, dims, d);
  free(d);
  return v;
}

static inline drt_value *scalar(tg *t, float x) { return cst_f(t, 0, NULL, &x); }

static inline drt_value *cst_i64(tg *t, int n, const int64_t *data) {
  drt_shape s = drt_test_shape(1, (int64_t[]){n});
  drt_value *v;
  DRT_ASSERT_OK(drt_graph_add_const(t->g, NULL, DRT_DTYPE_INT64, &s, data, &v));
  return v;
}

static inline drt_value *op(tg *t, drt_op o, int n, drt_value *a, drt_value *b, drt_value *c) {
  drt_value *ins[3] = {a, b, c};
  drt_value *out = drt_graph_add_value(t->g, NULL, DRT_DTYPE_UNDEFINED, NULL);
  assert_non_null(out);
  DRT_ASSERT_OK(drt_graph_add_node(t->g, o, NULL, ins, n, &out, 1, NULL));
  return out;
}

static inline drt_value *op1(tg *t, drt_op o, drt_value *a) { return op(t, o, 1, a, NULL, NULL); }
static inline drt_value *op2(tg *t, drt_op o, drt_value *a, drt_value *b) { return op(t, o, 2, a, b, NULL); }

static inline void attr_i(tg *t, drt_value *v, const char *name, int64_t x) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_INT;
  a.i = x;
  DRT_ASSERT_OK(drt_node_add_attr(t->g, v->producer, &a));
}

static inline void attr_f(tg *t, drt_value *v, const char *name, float x) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_FLOAT;
  a.f = x;
  DRT_ASSERT_OK(drt_node_add_attr(t->g, v->producer, &a));
}

static inline void attr_ints(tg *t, drt_value *v, const char *name, int n, const int64_t *x) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_INTS;
  a.count = n;
  a.ints = (int64_t *)x;
  DRT_ASSERT_OK(drt_node_add_attr(t->g, v->producer, &a));
}

static inline void attr_s(tg *t, drt_value *v, const char *name, const char *s) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_STRING;
  a.s = s;
  a.s_len = strlen(s);
  DRT_ASSERT_OK(drt_node_add_attr(t->g, v->producer, &a));
}

static inline drt_value *transpose(tg *t, drt_value *x, int n, const int64_t *perm) {
  drt_value *y = op1(t, DRT_OP_TRANSPOSE, x);
  attr_ints(t, y, "perm", n, perm);
  return y;
}

static inline drt_value *reshape(tg *t, drt_value *x, int n, const int64_t *dims) {
  return op2(t, DRT_OP_RESHAPE, x, cst_i64(t, n, dims));
}

/* ---- running ------------------------------------------------------------------------------ */
static inline void run(tg *t, drt_tensor *outs) {
  drt_cpu_executor_options o;
  drt_cpu_executor_options_init(&o);
  o.num_threads = 2;
  drt_cpu_executor *e = NULL;
  DRT_ASSERT_OK(drt_cpu_executor_create(t->g, &o, &e));
  DRT_ASSERT_OK(drt_cpu_executor_run(e, t->in, outs));
  drt_cpu_executor_destroy(e);
}

static inline size_t count_op(const drt_graph *g, drt_op o) {
  size_t c = 0;
  for (size_t i = 0; i < g->num_nodes; i++) c += g->nodes[i]->op == o;
  return c;
}

static inline drt_node *find_op(const drt_graph *g, drt_op o) {
  for (size_t i = 0; i < g->num_nodes; i++)
    if (g->nodes[i]->op == o) return g->nodes[i];
  return NULL;
}


/* Canonicalizes t's graph, runs it, applies `pass` (then a memory plan when `plan`), verifies and
 * runs again: float32 outputs must agree within tol (relative L2), others exactly. *stats (when
 * given) receives the pass statistics. Returns the pass's `changed`. */
static inline bool tg_pass_compare(tg *t, drt_pass_fn pass, bool plan, double tol, drt_pass_stats *stats) {
  bool changed = false;
  drt_pass_stats local;
  if (!stats) stats = &local;
  memset(stats, 0, sizeof *stats);
  drt_pass_ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  ctx.stats = stats;
  DRT_ASSERT_OK(drt_pass_canonicalize(t->g, &ctx, &changed));
  size_t nout = t->g->num_outputs;
  assert_true(nout >= 1 && nout <= TG_MAX_IO);
  drt_tensor ref[TG_MAX_IO], got[TG_MAX_IO];
  memset(ref, 0, sizeof ref);
  memset(got, 0, sizeof got);
  run(t, ref);
  DRT_ASSERT_OK(pass(t->g, &ctx, &changed));
  DRT_ASSERT_OK(drt_graph_verify(t->g, true));
  if (plan) {
    bool c2;
    DRT_ASSERT_OK(drt_pass_memory_plan(t->g, &ctx, &c2));
  }
  run(t, got);
  for (size_t i = 0; i < nout; i++) {
    assert_true(ref[i].dtype == got[i].dtype);
    assert_true(drt_shape_equal(&ref[i].shape, &got[i].shape));
    size_t n = (size_t)drt_shape_numel(&ref[i].shape);
    if (ref[i].dtype == DRT_DTYPE_FLOAT32) {
      double err = drt_test_rel_l2(got[i].data, ref[i].data, n);
      if (!(err <= tol)) print_error("output %zu: rel L2 %g (tolerance %g)\n", i, err, tol);
      assert_true(err <= tol);
    } else {
      assert_memory_equal(got[i].data, ref[i].data, n * drt_dtype_size(ref[i].dtype));
    }
    free(ref[i].data);
    free(got[i].data);
  }
  return changed;
}

#endif
