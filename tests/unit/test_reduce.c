/* Reduce family (Reduce*, ArgMax/ArgMin, CumSum, Softmax/LogSoftmax, LayerNormalization,
 * RMSNormalization, GroupNormalization, InstanceNormalization, BatchNormalization, Attention):
 * inference + CPU kernel against naive double-precision references on seeded random data,
 * serial and threaded, across axes/keepdims/opsets/dtypes, plus error cases. */
#include "testutil.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer.h"

/* ---- harness ------------------------------------------------------------------------------ */
#define MAX_IN 8

typedef struct tnode {
  drt_graph *g;
  drt_node *n;
  drt_value *in[MAX_IN];
  const void *in_data[MAX_IN]; /* borrowed */
  int nin;
  drt_tensor out[4];
  int nout;
} tnode;

static drt_threadpool *g_pool;

static void tn_init(tnode *t) {
  memset(t, 0, sizeof *t);
  DRT_ASSERT_OK(drt_graph_create(&t->g));
}

static void tn_free(tnode *t) {
  for (int i = 0; i < t->nout; i++) free(t->out[i].data);
  drt_graph_destroy(t->g);
  memset(t, 0, sizeof *t);
}

/* Appends input (data borrowed until tn_run). A constant is copied into the graph. */
static void tn_in(tnode *t, drt_dtype dt, int rank, const int64_t *dims, const void *data, bool is_const) {
  drt_shape s = drt_test_shape(rank, dims);
  drt_value *v;
  if (is_const) {
    DRT_ASSERT_OK(drt_graph_add_const(t->g, NULL, dt, &s, data, &v));
  } else {
    char name[16];
    snprintf(name, sizeof name, "in%d", t->nin);
    v = drt_graph_add_value(t->g, name, dt, &s);
    assert_non_null(v);
    DRT_ASSERT_OK(drt_graph_add_input(t->g, v));
  }
  t->in_data[t->nin] = data;
  t->in[t->nin++] = v;
}

static void tn_f32(tnode *t, int rank, const int64_t *dims, const float *data) {
  tn_in(t, DRT_DTYPE_FLOAT32, rank, dims, data, false);
}

static void tn_absent(tnode *t) {
  t->in_data[t->nin] = NULL;
  t->in[t->nin++] = NULL;
}

static void tn_node(tnode *t, drt_op op, int opset, int nout) {
  drt_value *outs[4];
  for (int i = 0; i < nout; i++) outs[i] = drt_graph_add_value(t->g, NULL, DRT_DTYPE_UNDEFINED, NULL);
  DRT_ASSERT_OK(drt_graph_add_node(t->g, op, "node", t->in, t->nin, outs, nout, &t->n));
  t->n->opset = opset;
  t->nout = nout;
}

static void tn_int(tnode *t, const char *name, int64_t v) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_INT;
  a.i = v;
  DRT_ASSERT_OK(drt_node_add_attr(t->g, t->n, &a));
}

static void tn_float(tnode *t, const char *name, float v) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_FLOAT;
  a.f = v;
  DRT_ASSERT_OK(drt_node_add_attr(t->g, t->n, &a));
}

static void tn_ints(tnode *t, const char *name, int64_t count, const int64_t *v) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_INTS;
  a.count = count;
  a.ints = (int64_t *)v;
  DRT_ASSERT_OK(drt_node_add_attr(t->g, t->n, &a));
}

static drt_status tn_run(tnode *t, bool threaded) {
  DRT_RETURN_IF_ERROR(drt_infer_node(t->g, t->n));
  drt_tensor in[MAX_IN];
  for (int i = 0; i < MAX_IN; i++) in[i] = (drt_tensor){DRT_DTYPE_FLOAT32, {0}, (void *)(uintptr_t)0x10}; /* poison */
  for (int i = 0; i < t->n->num_inputs; i++) {
    drt_value *v = t->n->inputs[i];
    memset(&in[i], 0, sizeof in[i]);
    if (!v) continue;
    in[i].dtype = v->dtype;
    in[i].shape = v->shape;
    in[i].data = v->kind == DRT_VALUE_CONST ? v->data : (void *)t->in_data[i];
  }
  for (int i = 0; i < t->nout; i++) {
    free(t->out[i].data);
    t->out[i].dtype = t->n->outputs[i]->dtype;
    t->out[i].shape = t->n->outputs[i]->shape;
    size_t nb = drt_tensor_nbytes(&t->out[i]);
    t->out[i].data = malloc(nb ? nb : 1);
    assert_non_null(t->out[i].data);
    memset(t->out[i].data, 0xA5, nb ? nb : 1); /* poison: every element must be written */
  }
  drt_cpu_ctx ctx = {threaded ? g_pool : NULL, threaded ? 3 : 1};
  return drt_cpu_run_node(&ctx, t->n, in, t->out);
}

static void check_shape(const drt_tensor *t, int rank, const int64_t *dims) {
  drt_shape want = drt_test_shape(rank, dims);
  if (!drt_shape_equal(&t->shape, &want)) {
    char a[128], b[128];
    print_error("shape %s, expected %s\n", drt_shape_str(&t->shape, a, sizeof a), drt_shape_str(&want, b, sizeof b));
    fail();
  }
}

/* Relative L2 error of float32 output against a double reference. */
static void check_close(const float *got, const double *want, int64_t n, double tol, const char *what) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = (double)got[i] - want[i];
    num += d * d;
    den += want[i] * want[i];
  }
  double err = sqrt(num / (den > 1e-30 ? den : 1e-30));
  if (!(err <= tol)) {
    print_error("%s: relative L2 error %g > %g\n", what, err, tol);
    for (int64_t i = 0; i < n && i < 8; i++) print_error("  [%" PRId64 "] got %g want %g\n", i, got[i], want[i]);
    fail();
  }
}

static float *rand_f32(drt_test_rng *r, int64_t n, float lo, float hi, bool random_sign) {
  float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
  assert_non_null(p);
  for (int64_t i = 0; i < n; i++) {
    p[i] = drt_test_uniform(r, lo, hi);
    if (random_sign && (drt_test_next(r) & 1)) p[i] = -p[i];
  }
  return p;
}

static double *alloc_d(int64_t n) {
  double *p = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
  assert_non_null(p);
  return p;
}

static int64_t numel(int rank, const int64_t *dims) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= dims[i];
  return n;
}

/* Row-major multi-index of flat index i. */
static void unravel(int64_t i, int rank, const int64_t *dims, int64_t *idx) {
  for (int k = rank - 1; k >= 0; k--) {
    idx[k] = i % dims[k];
    i /= dims[k];
  }
}

/* ---- Reduce* ------------------------------------------------------------------------------- */
static const drt_op k_reduce_ops[] = {DRT_OP_REDUCE_SUM,  DRT_OP_REDUCE_MEAN,       DRT_OP_REDUCE_MAX,
                                      DRT_OP_REDUCE_MIN,  DRT_OP_REDUCE_PROD,       DRT_OP_REDUCE_L1,
                                      DRT_OP_REDUCE_L2,   DRT_OP_REDUCE_SUM_SQUARE, DRT_OP_REDUCE_LOG_SUM,
                                      DRT_OP_REDUCE_LOG_SUM_EXP};

/* Naive reduction in double. out has one entry per kept-index combination. */
static void ref_reduce(drt_op op, const double *x, int rank, const int64_t *dims, const bool *red, double *out,
                       int64_t nout) {
  double *a0 = alloc_d(nout), *a1 = alloc_d(nout);
  int64_t *cnt = calloc((size_t)nout, sizeof(int64_t));
  assert_non_null(cnt);
  for (int64_t o = 0; o < nout; o++) {
    a0[o] = op == DRT_OP_REDUCE_PROD ? 1 : op == DRT_OP_REDUCE_MAX || op == DRT_OP_REDUCE_LOG_SUM_EXP ? -INFINITY
            : op == DRT_OP_REDUCE_MIN                                                            ? INFINITY
                                                                                                  : 0;
  }
  int64_t n = numel(rank, dims);
  for (int pass = 0; pass < (op == DRT_OP_REDUCE_LOG_SUM_EXP ? 2 : 1); pass++) {
    for (int64_t i = 0; i < n; i++) {
      int64_t idx[DRT_MAX_RANK], o = 0;
      unravel(i, rank, dims, idx);
      for (int d = 0; d < rank; d++)
        if (!red[d]) o = o * dims[d] + idx[d];
      double v = x[i];
      cnt[o] += pass == 0;
      switch (op) {
        case DRT_OP_REDUCE_MAX: a0[o] = v > a0[o] ? v : a0[o]; break;
        case DRT_OP_REDUCE_MIN: a0[o] = v < a0[o] ? v : a0[o]; break;
        case DRT_OP_REDUCE_PROD: a0[o] *= v; break;
        case DRT_OP_REDUCE_L1: a0[o] += fabs(v); break;
        case DRT_OP_REDUCE_L2:
        case DRT_OP_REDUCE_SUM_SQUARE: a0[o] += v * v; break;
        case DRT_OP_REDUCE_LOG_SUM_EXP:
          if (pass == 0)
            a0[o] = v > a0[o] ? v : a0[o];
          else
            a1[o] += exp(v - a0[o]);
          break;
        default: a0[o] += v; break;
      }
    }
  }
  for (int64_t o = 0; o < nout; o++) {
    switch (op) {
      case DRT_OP_REDUCE_MEAN: out[o] = a0[o] / (double)cnt[o]; break;
      case DRT_OP_REDUCE_L2: out[o] = sqrt(a0[o]); break;
      case DRT_OP_REDUCE_LOG_SUM: out[o] = log(a0[o]); break;
      case DRT_OP_REDUCE_LOG_SUM_EXP: out[o] = a0[o] + log(a1[o]); break;
      default: out[o] = a0[o]; break;
    }
  }
  free(a0);
  free(a1);
  free(cnt);
}

/* Runs a float32 Reduce* node: axes (naxes < 0: omitted) as attribute (axes_input false) or
 * as a constant input. Checks the shape and values against ref_reduce. */
static void run_reduce_case(drt_op op, int opset, int rank, const int64_t *dims, const int64_t *axes, int naxes,
                            int keepdims, bool noop, bool threaded, uint64_t seed) {
  drt_test_rng r = {seed};
  int64_t n = numel(rank, dims);
  bool positive = op == DRT_OP_REDUCE_LOG_SUM || op == DRT_OP_REDUCE_PROD;
  float *x = rand_f32(&r, n, positive ? 0.5f : 0.1f, positive ? 1.5f : 2.0f, !positive);
  bool axes_input = op == DRT_OP_REDUCE_SUM ? opset >= 13 : opset >= 18;
  tnode t;
  tn_init(&t);
  tn_f32(&t, rank, dims, x);
  if (axes_input && naxes >= 0) {
    int64_t na = naxes;
    tn_in(&t, DRT_DTYPE_INT64, 1, &na, axes, true);
  }
  tn_node(&t, op, opset, 1);
  if (!axes_input && naxes > 0) tn_ints(&t, "axes", naxes, axes);
  if (keepdims >= 0) tn_int(&t, "keepdims", keepdims);
  if (noop) tn_int(&t, "noop_with_empty_axes", 1);
  DRT_ASSERT_OK(tn_run(&t, threaded));

  bool red[DRT_MAX_RANK];
  for (int d = 0; d < rank; d++) red[d] = naxes <= 0 && !noop;
  for (int i = 0; i < naxes; i++) red[axes[i] < 0 ? axes[i] + rank : axes[i]] = true;
  int64_t odims[DRT_MAX_RANK];
  int orank = 0;
  int64_t nout = 1;
  for (int d = 0; d < rank; d++) {
    if (!red[d]) {
      odims[orank++] = dims[d];
      nout *= dims[d];
    } else if (keepdims != 0) {
      odims[orank++] = 1;
    }
  }
  check_shape(&t.out[0], orank, odims);
  double *xd = alloc_d(n), *want = alloc_d(nout);
  for (int64_t i = 0; i < n; i++) xd[i] = x[i];
  ref_reduce(op, xd, rank, dims, red, want, nout);
  char what[96];
  snprintf(what, sizeof what, "%s opset %d naxes %d keepdims %d", drt_op_name(op), opset, naxes, keepdims);
  check_close(t.out[0].data, want, nout, 1e-5, what);
  free(xd);
  free(want);
  free(x);
  tn_free(&t);
}

static void test_reduce_float(void **state) {
  (void)state;
  const int64_t dims[3] = {3, 4, 5};
  const int64_t ax_sets[][3] = {{0}, {1}, {2}, {0, 2}, {1, 2}, {0, 1}, {-1}, {2, 0, 1}, {-3, -2}};
  const int ax_counts[] = {1, 1, 1, 2, 2, 2, 1, 3, 2};
  uint64_t seed = 1;
  for (size_t o = 0; o < sizeof k_reduce_ops / sizeof k_reduce_ops[0]; o++) {
    for (int opset = 13; opset <= 18; opset += 5) {
      for (size_t s = 0; s < sizeof ax_counts / sizeof ax_counts[0]; s++)
        for (int keep = 0; keep <= 1; keep++)
          run_reduce_case(k_reduce_ops[o], opset, 3, dims, ax_sets[s], ax_counts[s], keep, false, s & 1, seed++);
      /* omitted axes: reduce everything (keepdims default 1) */
      run_reduce_case(k_reduce_ops[o], opset, 3, dims, NULL, -1, -1, false, false, seed++);
    }
    /* empty axes input + noop_with_empty_axes: elementwise (f applied, nothing reduced) */
    run_reduce_case(k_reduce_ops[o], 18, 3, dims, NULL, 0, 1, true, false, seed++);
    /* empty axes input without noop: reduce all */
    run_reduce_case(k_reduce_ops[o], 18, 3, dims, NULL, 0, 0, false, false, seed++);
  }
  /* larger, threaded: both the contiguous-run and the row-vector paths with chunking */
  const int64_t big[4] = {3, 37, 19, 1100};
  for (size_t o = 0; o < sizeof k_reduce_ops / sizeof k_reduce_ops[0]; o++) {
    if (k_reduce_ops[o] == DRT_OP_REDUCE_PROD) continue; /* under/overflows at this size */
    run_reduce_case(k_reduce_ops[o], 18, 4, big, (int64_t[]){1}, 1, 1, false, true, seed++);
    run_reduce_case(k_reduce_ops[o], 18, 4, big, (int64_t[]){3}, 1, 0, false, true, seed++);
    run_reduce_case(k_reduce_ops[o], 18, 4, big, (int64_t[]){0, 2}, 2, 1, false, true, seed++);
  }
  /* size-1 axes mixed in */
  const int64_t ones[5] = {1, 6, 1, 7, 1};
  run_reduce_case(DRT_OP_REDUCE_MEAN, 18, 5, ones, (int64_t[]){1, 2}, 2, 1, false, false, seed++);
  run_reduce_case(DRT_OP_REDUCE_MAX, 18, 5, ones, (int64_t[]){0, 4}, 2, 0, false, false, seed++);
  run_reduce_case(DRT_OP_REDUCE_SUM, 11, 5, ones, (int64_t[]){3}, 1, 0, false, false, seed++);
}

static void test_reduce_float64(void **state) {
  (void)state;
  const double x[6] = {1e-9, 1.0, 2.5, -3.0, 1e16, 1.0};
  tnode t;
  tn_init(&t);
  tn_in(&t, DRT_DTYPE_FLOAT64, 2, (int64_t[]){2, 3}, x, false);
  tn_in(&t, DRT_DTYPE_INT64, 1, (int64_t[]){1}, (int64_t[]){1}, true);
  tn_node(&t, DRT_OP_REDUCE_SUM, 13, 1);
  tn_int(&t, "keepdims", 0);
  DRT_ASSERT_OK(tn_run(&t, false));
  assert_int_equal(t.out[0].dtype, DRT_DTYPE_FLOAT64);
  const double *y = t.out[0].data;
  assert_true(y[0] == 1e-9 + 1.0 + 2.5); /* native double: no float32 rounding */
  assert_true(y[1] == -3.0 + 1e16 + 1.0);
  tn_free(&t);
}

/* Integer reductions: exact, with wrap-around in the original width like numpy. */
static void test_reduce_int(void **state) {
  (void)state;
  const int64_t dims[2] = {2, 3};
  {
    const int32_t x[6] = {1, -2, 3, 2147483647, 1, 5};
    tnode t;
    tn_init(&t);
    tn_in(&t, DRT_DTYPE_INT32, 2, dims, x, false);
    tn_in(&t, DRT_DTYPE_INT64, 1, (int64_t[]){1}, (int64_t[]){1}, true);
    tn_node(&t, DRT_OP_REDUCE_SUM, 13, 1);
    DRT_ASSERT_OK(tn_run(&t, false));
    check_shape(&t.out[0], 2, (int64_t[]){2, 1});
    const int32_t *y = t.out[0].data;
    assert_int_equal(y[0], 2);
    assert_int_equal(y[1], (int32_t)(uint32_t)(2147483647u + 6u)); /* wraps */
    tn_free(&t);
  }
  {
    const int8_t x[6] = {-128, 5, 7, 16, 16, 2};
    drt_op ops[] = {DRT_OP_REDUCE_MAX, DRT_OP_REDUCE_MIN, DRT_OP_REDUCE_PROD, DRT_OP_REDUCE_L1,
                    DRT_OP_REDUCE_MEAN, DRT_OP_REDUCE_SUM_SQUARE};
    int8_t want[][2] = {{7, 16}, {-128, 2}, {(int8_t)(-128 * 35), (int8_t)512}, {(int8_t)140, 34},
                        {-38, 11}, {(int8_t)(16384 + 25 + 49), (int8_t)(256 + 256 + 4)}};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
      tnode t;
      tn_init(&t);
      tn_in(&t, DRT_DTYPE_INT8, 2, dims, x, false);
      tn_in(&t, DRT_DTYPE_INT64, 1, (int64_t[]){1}, (int64_t[]){-1}, true);
      tn_node(&t, ops[k], 18, 1);
      tn_int(&t, "keepdims", 0);
      DRT_ASSERT_OK(tn_run(&t, k & 1));
      check_shape(&t.out[0], 1, (int64_t[]){2});
      const int8_t *y = t.out[0].data;
      if (y[0] != want[k][0] || y[1] != want[k][1])
        print_error("%s: got %d %d want %d %d\n", drt_op_name(ops[k]), y[0], y[1], want[k][0], want[k][1]);
      assert_int_equal(y[0], want[k][0]);
      assert_int_equal(y[1], want[k][1]);
      tn_free(&t);
    }
  }
  {
    const uint64_t x[4] = {UINT64_MAX, 3, 1, UINT64_MAX - 5};
    tnode t;
    tn_init(&t);
    tn_in(&t, DRT_DTYPE_UINT64, 1, (int64_t[]){4}, x, false);
    tn_node(&t, DRT_OP_REDUCE_MAX, 13, 1);
    tn_int(&t, "keepdims", 0);
    DRT_ASSERT_OK(tn_run(&t, false));
    check_shape(&t.out[0], 0, NULL);
    assert_true(((const uint64_t *)t.out[0].data)[0] == UINT64_MAX);
    tn_free(&t);
  }
  { /* bool ReduceMax/Min (opset 20) */
    const uint8_t x[6] = {0, 1, 0, 0, 0, 0};
    for (int mx = 0; mx <= 1; mx++) {
      tnode t;
      tn_init(&t);
      tn_in(&t, DRT_DTYPE_BOOL, 2, dims, x, false);
      tn_in(&t, DRT_DTYPE_INT64, 1, (int64_t[]){1}, (int64_t[]){1}, true);
      tn_node(&t, mx ? DRT_OP_REDUCE_MAX : DRT_OP_REDUCE_MIN, 20, 1);
      tn_int(&t, "keepdims", 0);
      DRT_ASSERT_OK(tn_run(&t, false));
      assert_int_equal(t.out[0].dtype, DRT_DTYPE_BOOL);
      const uint8_t *y = t.out[0].data;
      assert_int_equal(y[0], mx ? 1 : 0);
      assert_int_equal(y[1], 0);
      tn_free(&t);
    }
  }
}

/* Reducing an empty set gives the reduction's identity (reference: op_reduce_*.py). */
static void test_reduce_empty_set(void **state) {
  (void)state;
  const int64_t dims[3] = {2, 0, 4};
  struct {
    drt_op op;
    double want;
  } cases[] = {{DRT_OP_REDUCE_SUM, 0},       {DRT_OP_REDUCE_PROD, 1},          {DRT_OP_REDUCE_MAX, -INFINITY},
               {DRT_OP_REDUCE_MIN, INFINITY}, {DRT_OP_REDUCE_L1, 0},            {DRT_OP_REDUCE_L2, 0},
               {DRT_OP_REDUCE_SUM_SQUARE, 0}, {DRT_OP_REDUCE_LOG_SUM, -INFINITY}, {DRT_OP_REDUCE_LOG_SUM_EXP, -INFINITY}};
  float dummy = 0;
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    tnode t;
    tn_init(&t);
    tn_f32(&t, 3, dims, &dummy);
    tn_in(&t, DRT_DTYPE_INT64, 1, (int64_t[]){1}, (int64_t[]){1}, true);
    tn_node(&t, cases[k].op, 18, 1);
    DRT_ASSERT_OK(tn_run(&t, false));
    check_shape(&t.out[0], 3, (int64_t[]){2, 1, 4});
    const float *y = t.out[0].data;
    for (int i = 0; i < 8; i++) assert_true(y[i] == (float)cases[k].want);
    tn_free(&t);
  }
  { /* int32 ReduceMax over an empty set: INT32_MIN */
    tnode t;
    tn_init(&t);
    tn_in(&t, DRT_DTYPE_INT32, 3, dims, &dummy, false);
    tn_in(&t, DRT_DTYPE_INT64, 1, (int64_t[]){1}, (int64_t[]){1}, true);
    tn_node(&t, DRT_OP_REDUCE_MAX, 18, 1);
    tn_int(&t, "keepdims", 0);
    DRT_ASSERT_OK(tn_run(&t, false));
    check_shape(&t.out[0], 2, (int64_t[]){2, 4});
    assert_int_equal(((const int32_t *)t.out[0].data)[5], INT32_MIN);
    tn_free(&t);
  }
  { /* a zero-size kept axis: empty output */
    tnode t;
    tn_init(&t);
    tn_f32(&t, 3, dims, &dummy);
    tn_in(&t, DRT_DTYPE_INT64, 1, (int64_t[]){1}, (int64_t[]){2}, true);
    tn_node(&t, DRT_OP_REDUCE_SUM, 13, 1);
    DRT_ASSERT_OK(tn_run(&t, false));
    check_shape(&t.out[0], 3, (int64_t[]){2, 0, 1});
    tn_free(&t);
  }
}

static void test_reduce_errors(void **state) {
  (void)state;
  float x[6] = {1, 2, 3, 4, 5, 6};
  {
    tnode t;
    tn_init(&t);
    tn_f32(&t, 2, (int64_t[]){2, 3}, x);
    tn_node(&t, DRT_OP_REDUCE_MEAN, 13, 1);
    tn_ints(&t, "axes", 1, (int64_t[]){2});
    DRT_ASSERT_ERROR(tn_run(&t, false), DRT_STATUS_INVALID_ARGUMENT, "out of range");
    tn_free(&t);
  }
  {
    tnode t;
    tn_init(&t);
    tn_f32(&t, 2, (int64_t[]){2, 3}, x);
    tn_in(&t, DRT_DTYPE_INT64, 1, (int64_t[]){2}, (int64_t[]){1, -1}, true);
    tn_node(&t, DRT_OP_REDUCE_MAX, 18, 1);
    DRT_ASSERT_ERROR(tn_run(&t, false), DRT_STATUS_INVALID_ARGUMENT, "repeats axis 1");
    tn_free(&t);
  }
  { /* axes from a runtime tensor cannot be shape-inferred */
    tnode t;
    tn_init(&t);
    tn_f32(&t, 2, (int64_t[]){2, 3}, x);
    int64_t ax = 0;
    tn_in(&t, DRT_DTYPE_INT64, 1, (int64_t[]){1}, &ax, false);
    tn_node(&t, DRT_OP_REDUCE_SUM, 13, 1);
    DRT_ASSERT_ERROR(tn_run(&t, false), DRT_STATUS_UNSUPPORTED, "must be a compile-time constant");
    tn_free(&t);
  }
  { /* bool ReduceSum is not allowed */
    uint8_t b[2] = {1, 0};
    tnode t;
    tn_init(&t);
    tn_in(&t, DRT_DTYPE_BOOL, 1, (int64_t[]){2}, b, false);
    tn_node(&t, DRT_OP_REDUCE_SUM, 13, 1);
    DRT_ASSERT_ERROR(tn_run(&t, false), DRT_STATUS_UNSUPPORTED, "dtype bool");
    tn_free(&t);
  }
}

/* ---- ArgMax / ArgMin ------------------------------------------------------------------------ */
static void test_argmax(void **state) {
  (void)state;
  drt_test_rng r = {7};
  const int64_t dims[3] = {4, 5, 6};
  int64_t n = numel(3, dims);
  float *x = rand_f32(&r, n, 0, 4, true);
  for (int64_t i = 0; i < n; i++) x[i] = roundf(x[i]); /* many ties */
  for (int op = 0; op < 2; op++)
    for (int axis = -3; axis < 3; axis++)
      for (int keep = 0; keep <= 1; keep++)
        for (int last = 0; last <= 1; last++) {
          tnode t;
          tn_init(&t);
          tn_f32(&t, 3, dims, x);
          tn_node(&t, op ? DRT_OP_ARGMIN : DRT_OP_ARGMAX, 13, 1);
          tn_int(&t, "axis", axis);
          tn_int(&t, "keepdims", keep);
          tn_int(&t, "select_last_index", last);
          DRT_ASSERT_OK(tn_run(&t, (axis + keep) & 1));
          int a = axis < 0 ? axis + 3 : axis;
          int64_t od[3], orank = 0;
          for (int d = 0; d < 3; d++) {
            if (d != a)
              od[orank++] = dims[d];
            else if (keep)
              od[orank++] = 1;
          }
          check_shape(&t.out[0], (int)orank, od);
          assert_int_equal(t.out[0].dtype, DRT_DTYPE_INT64);
          const int64_t *y = t.out[0].data;
          int64_t outer = 1, inner = 1;
          for (int d = 0; d < a; d++) outer *= dims[d];
          for (int d = a + 1; d < 3; d++) inner *= dims[d];
          for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
              int64_t best = 0;
              for (int64_t k = 1; k < dims[a]; k++) {
                float v = x[(o * dims[a] + k) * inner + i], b = x[(o * dims[a] + best) * inner + i];
                bool better = op ? (last ? v <= b : v < b) : (last ? v >= b : v > b);
                if (better) best = k;
              }
              assert_int_equal(y[o * inner + i], best);
            }
          tn_free(&t);
        }
  free(x);
  { /* integer input */
    const uint8_t u[6] = {3, 200, 200, 7, 0, 255};
    tnode t;
    tn_init(&t);
    tn_in(&t, DRT_DTYPE_UINT8, 2, (int64_t[]){2, 3}, u, false);
    tn_node(&t, DRT_OP_ARGMAX, 13, 1);
    tn_int(&t, "axis", 1);
    tn_int(&t, "select_last_index", 1);
    DRT_ASSERT_OK(tn_run(&t, false));
    const int64_t *y = t.out[0].data;
    assert_int_equal(y[0], 2);
    assert_int_equal(y[1], 2);
    tn_free(&t);
  }
  {
    float e[3] = {1, 2, 3};
    tnode t;
    tn_init(&t);
    tn_f32(&t, 1, (int64_t[]){3}, e);
    tn_node(&t, DRT_OP_ARGMIN, 13, 1);
    tn_int(&t, "axis", 1);
    DRT_ASSERT_ERROR(tn_run(&t, false), DRT_STATUS_INVALID_ARGUMENT, "axis 1 is out of range");
    tn_free(&t);
  }
}

/* ---- CumSum ---------------------------------------------------------------------------------- */
static void test_cumsum(void **state) {
  (void)state;
  drt_test_rng r = {11};
  const int64_t dims[3] = {3, 5, 7};
  int64_t n = numel(3, dims);
  float *x = rand_f32(&r, n, 0.1f, 2, true);
  double *want = alloc_d(n);
  for (int axis = -3; axis < 3; axis++)
    for (int excl = 0; excl <= 1; excl++)
      for (int rev = 0; rev <= 1; rev++) {
        tnode t;
        tn_init(&t);
        tn_f32(&t, 3, dims, x);
        int64_t ax = axis;
        tn_in(&t, axis & 1 ? DRT_DTYPE_INT64 : DRT_DTYPE_INT32, 0, NULL,
              axis & 1 ? (const void *)&ax : (const void *)&(int32_t){axis}, !(axis == 0));
        tn_node(&t, DRT_OP_CUMSUM, 14, 1);
        tn_int(&t, "exclusive", excl);
        tn_int(&t, "reverse", rev);
        DRT_ASSERT_OK(tn_run(&t, rev));
        int a = axis < 0 ? axis + 3 : axis;
        int64_t outer = 1, inner = 1, len = dims[a];
        for (int d = 0; d < a; d++) outer *= dims[d];
        for (int d = a + 1; d < 3; d++) inner *= dims[d];
        for (int64_t o = 0; o < outer; o++)
          for (int64_t i = 0; i < inner; i++) {
            double s = 0;
            for (int64_t k = 0; k < len; k++) {
              int64_t kk = rev ? len - 1 - k : k;
              int64_t idx = (o * len + kk) * inner + i;
              if (excl) {
                want[idx] = s;
                s += x[idx];
              } else {
                s += x[idx];
                want[idx] = s;
              }
            }
          }
        check_close(t.out[0].data, want, n, 1e-6, "CumSum");
        tn_free(&t);
      }
  free(want);
  free(x);
  { /* int32, exclusive + reverse */
    const int32_t xi[5] = {1, 2, 3, 4, 2147483647};
    tnode t;
    tn_init(&t);
    tn_in(&t, DRT_DTYPE_INT32, 1, (int64_t[]){5}, xi, false);
    tn_in(&t, DRT_DTYPE_INT32, 1, (int64_t[]){1}, (int32_t[]){0}, true);
    tn_node(&t, DRT_OP_CUMSUM, 14, 1);
    tn_int(&t, "exclusive", 1);
    tn_int(&t, "reverse", 1);
    DRT_ASSERT_OK(tn_run(&t, false));
    const int32_t *y = t.out[0].data;
    int32_t want_i[5] = {(int32_t)(2147483647u + 9u), (int32_t)(2147483647u + 7u), (int32_t)(2147483647u + 4u),
                         2147483647, 0};
    for (int i = 0; i < 5; i++) assert_int_equal(y[i], want_i[i]);
    tn_free(&t);
  }
  { /* bad axis */
    float e[3] = {1, 2, 3};
    tnode t;
    tn_init(&t);
    tn_f32(&t, 1, (int64_t[]){3}, e);
    tn_in(&t, DRT_DTYPE_INT64, 0, NULL, (int64_t[]){-2}, true);
    tn_node(&t, DRT_OP_CUMSUM, 14, 1);
    DRT_ASSERT_ERROR(tn_run(&t, false), DRT_STATUS_INVALID_ARGUMENT, "out of range");
    tn_free(&t);
  }
}

/* ---- losses, TopK, OneHot ------------------------------------------------------------------- */
/* SoftmaxCrossEntropyLoss on random scores [N, C, D] against a double reference, for every
 * reduction, with weights and an ignore_index; NegativeLogLikelihoodLoss on the log-probs. */
static void test_losses(void **state) {
  (void)state;
  drt_test_rng r = {23};
  const int64_t N = 3, C = 5, D = 4, dims[3] = {3, 5, 4};
  float *x = rand_f32(&r, N * C * D, -3, 3, true);
  float *w = rand_f32(&r, C, 0.2f, 2, false);
  int64_t tgt[12];
  for (int i = 0; i < 12; i++) tgt[i] = (i * 7 + 3) % C;
  tgt[5] = -1; /* ignored */
  const char *reds[3] = {"none", "sum", "mean"};
  double lp[60], loss[12], ws = 0, ls = 0;
  for (int64_t i = 0; i < N; i++)
    for (int64_t d = 0; d < D; d++) {
      double m = -INFINITY, s = 0;
      for (int64_t c = 0; c < C; c++) m = fmax(m, x[(i * C + c) * D + d]);
      for (int64_t c = 0; c < C; c++) s += exp(x[(i * C + c) * D + d] - m);
      for (int64_t c = 0; c < C; c++) lp[(i * C + c) * D + d] = x[(i * C + c) * D + d] - m - log(s);
    }
  for (int64_t k = 0; k < 12; k++) {
    int64_t i = k / D, d = k % D, t = tgt[k];
    loss[k] = t < 0 ? 0 : -w[t] * lp[(i * C + t) * D + d];
    ws += t < 0 ? 0 : w[t];
    ls += loss[k];
  }
  for (int ri = 0; ri < 3; ri++)
    for (int op = 0; op < 2; op++) {
      tnode t;
      tn_init(&t);
      float lpf[60];
      for (int i = 0; i < 60; i++) lpf[i] = (float)lp[i];
      tn_f32(&t, 3, dims, op ? lpf : x);
      tn_in(&t, DRT_DTYPE_INT64, 2, (int64_t[]){N, D}, tgt, false);
      tn_f32(&t, 1, (int64_t[]){C}, w);
      tn_node(&t, op ? DRT_OP_NLL_LOSS : DRT_OP_SCE_LOSS, 13, op ? 1 : 2);
      tn_int(&t, "ignore_index", -1);
      drt_attr a = {.name = "reduction", .type = DRT_ATTR_STRING, .s = reds[ri], .s_len = strlen(reds[ri])};
      DRT_ASSERT_OK(drt_node_add_attr(t.g, t.n, &a));
      DRT_ASSERT_OK(tn_run(&t, false));
      if (ri == 0) {
        check_shape(&t.out[0], 2, (int64_t[]){N, D});
        check_close(t.out[0].data, loss, 12, 1e-6, "loss none");
      } else {
        check_shape(&t.out[0], 0, NULL);
        double want = ri == 1 ? ls : ls / ws;
        check_close(t.out[0].data, &want, 1, 1e-6, "loss sum/mean");
      }
      if (!op) check_close(t.out[1].data, lp, 60, 1e-6, "log_prob");
      tn_free(&t);
    }
  { /* no weight input (two inputs): whatever lies past them is not read as weights */
    tnode t;
    tn_init(&t);
    float lpf[60];
    for (int i = 0; i < 60; i++) lpf[i] = (float)lp[i];
    tn_f32(&t, 3, dims, lpf);
    int64_t all[12];
    for (int i = 0; i < 12; i++) all[i] = (i * 3 + 1) % C;
    tn_in(&t, DRT_DTYPE_INT64, 2, (int64_t[]){N, D}, all, false);
    tn_node(&t, DRT_OP_NLL_LOSS, 13, 1);
    DRT_ASSERT_OK(tn_run(&t, false));
    double want = 0;
    for (int64_t k = 0; k < 12; k++) want -= lp[((k / D) * C + all[k]) * D + k % D];
    want /= 12;
    check_close(t.out[0].data, &want, 1, 1e-6, "unweighted mean");
    tn_free(&t);
  }
  { /* a target outside [0, C) that is not ignore_index */
    tnode t;
    tn_init(&t);
    tn_f32(&t, 3, dims, x);
    int64_t bad[12] = {0};
    bad[7] = C;
    tn_in(&t, DRT_DTYPE_INT64, 2, (int64_t[]){N, D}, bad, false);
    tn_node(&t, DRT_OP_NLL_LOSS, 13, 1);
    DRT_ASSERT_ERROR(tn_run(&t, false), DRT_STATUS_INVALID_ARGUMENT, "outside [0, 5)");
    tn_free(&t);
  }
  free(x);
  free(w);
}

/* TopK: ties go to the lower index (largest and smallest), NaN sorts above +inf, uint64 beyond
 * 2^63 orders as unsigned; a K that is not a constant is refused. */
static void test_topk(void **state) {
  (void)state;
  const float xf[6] = {1, NAN, 3, 3, -INFINITY, 3};
  for (int largest = 0; largest <= 1; largest++) {
    tnode t;
    tn_init(&t);
    tn_f32(&t, 1, (int64_t[]){6}, xf);
    tn_in(&t, DRT_DTYPE_INT64, 1, (int64_t[]){1}, (int64_t[]){4}, true);
    tn_node(&t, DRT_OP_TOPK, 11, 2);
    tn_int(&t, "largest", largest);
    DRT_ASSERT_OK(tn_run(&t, false));
    const int64_t *ix = t.out[1].data;
    const int64_t want[2][4] = {{4, 0, 2, 3}, {1, 2, 3, 5}};
    for (int i = 0; i < 4; i++) assert_int_equal(ix[i], want[largest][i]);
    tn_free(&t);
  }
  {
    const uint64_t xu[4] = {5, UINT64_C(1) << 63, 7, UINT64_MAX};
    tnode t;
    tn_init(&t);
    tn_in(&t, DRT_DTYPE_UINT64, 2, (int64_t[]){2, 2}, xu, false);
    tn_in(&t, DRT_DTYPE_INT64, 1, (int64_t[]){1}, (int64_t[]){1}, true);
    tn_node(&t, DRT_OP_TOPK, 11, 2);
    tn_int(&t, "axis", 0);
    DRT_ASSERT_OK(tn_run(&t, false));
    const uint64_t *v = t.out[0].data;
    assert_true(v[0] == 7 && v[1] == UINT64_MAX);
    tn_free(&t);
  }
  {
    tnode t;
    tn_init(&t);
    tn_f32(&t, 1, (int64_t[]){6}, xf);
    tn_in(&t, DRT_DTYPE_INT64, 1, (int64_t[]){1}, (int64_t[]){2}, false);
    tn_node(&t, DRT_OP_TOPK, 11, 2);
    DRT_ASSERT_ERROR(tn_run(&t, false), DRT_STATUS_UNSUPPORTED, "compile-time constant");
    tn_free(&t);
  }
}

/* RotaryEmbedding: 3-D input with interleaved pairs and a partial rotation against a direct
 * evaluation; a position id outside the cache is an error naming it. */
static void test_rotary(void **state) {
  (void)state;
  drt_test_rng r = {31};
  const int64_t B = 2, S = 3, H = 2, D = 8, R = 4, P = 5;
  float *x = rand_f32(&r, B * S * H * D, -2, 2, true);
  float *cs = rand_f32(&r, P * R / 2, -1, 1, true), *sn = rand_f32(&r, P * R / 2, -1, 1, true);
  int64_t pid[6] = {4, 0, 2, 1, 3, 4};
  double want[96];
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < S; t++)
      for (int64_t h = 0; h < H; h++) {
        const float *xr = x + ((b * S + t) * H + h) * D;
        double *y = want + ((b * S + t) * H + h) * D;
        int64_t p = pid[b * S + t];
        for (int64_t i = 0; i < D; i++) y[i] = xr[i];
        for (int64_t i = 0; i < R / 2; i++) {
          double c = cs[p * R / 2 + i], s = sn[p * R / 2 + i];
          y[2 * i] = c * xr[2 * i] - s * xr[2 * i + 1];
          y[2 * i + 1] = s * xr[2 * i] + c * xr[2 * i + 1];
        }
      }
  for (int bad = 0; bad <= 1; bad++) {
    tnode t;
    tn_init(&t);
    tn_f32(&t, 3, (int64_t[]){B, S, H * D}, x);
    tn_f32(&t, 2, (int64_t[]){P, R / 2}, cs);
    tn_f32(&t, 2, (int64_t[]){P, R / 2}, sn);
    if (bad) pid[3] = P;
    tn_in(&t, DRT_DTYPE_INT64, 2, (int64_t[]){B, S}, pid, false);
    tn_node(&t, DRT_OP_ROTARY_EMBEDDING, 23, 1);
    tn_int(&t, "num_heads", H);
    tn_int(&t, "rotary_embedding_dim", R);
    tn_int(&t, "interleaved", 1);
    if (bad) {
      DRT_ASSERT_ERROR(tn_run(&t, false), DRT_STATUS_INVALID_ARGUMENT, "position_ids[1, 0] = 5");
    } else {
      DRT_ASSERT_OK(tn_run(&t, false));
      check_close(t.out[0].data, want, B * S * H * D, 1e-6, "RotaryEmbedding");
    }
    tn_free(&t);
  }
  free(x);
  free(cs);
  free(sn);
}

/* ---- Softmax / LogSoftmax ---------------------------------------------------------------------- */
/* Softmax over the elements of each (outer, inner) fiber of length len. */
static void ref_softmax(bool lg, const float *x, double *y, int64_t outer, int64_t len, int64_t inner) {
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      double mx = -INFINITY, s = 0;
      for (int64_t k = 0; k < len; k++) mx = fmax(mx, x[(o * len + k) * inner + i]);
      for (int64_t k = 0; k < len; k++) s += exp(x[(o * len + k) * inner + i] - mx);
      for (int64_t k = 0; k < len; k++) {
        int64_t idx = (o * len + k) * inner + i;
        y[idx] = lg ? x[idx] - mx - log(s) : exp(x[idx] - mx) / s;
      }
    }
}

static void test_softmax(void **state) {
  (void)state;
  drt_test_rng r = {21};
  const int64_t dims[3] = {3, 40, 300};
  int64_t n = numel(3, dims);
  float *x = rand_f32(&r, n, 0, 6, true);
  x[5] = 1e4f; /* stability: a huge logit must not overflow */
  double *want = alloc_d(n);
  for (int lg = 0; lg <= 1; lg++)
    for (int opset = 11; opset <= 13; opset += 2)
      for (int axis = -3; axis <= 3; axis++) {
        bool has_axis = axis != 3; /* 3: attribute omitted */
        tnode t;
        tn_init(&t);
        tn_f32(&t, 3, dims, x);
        tn_node(&t, lg ? DRT_OP_LOG_SOFTMAX : DRT_OP_SOFTMAX, opset, 1);
        if (has_axis) tn_int(&t, "axis", axis);
        DRT_ASSERT_OK(tn_run(&t, axis & 1));
        int a = has_axis ? (axis < 0 ? axis + 3 : axis) : (opset < 13 ? 1 : 2);
        int64_t outer = 1, len = 1, inner = 1;
        for (int d = 0; d < a; d++) outer *= dims[d];
        if (opset < 13) {
          for (int d = a; d < 3; d++) len *= dims[d];
        } else {
          len = dims[a];
          for (int d = a + 1; d < 3; d++) inner *= dims[d];
        }
        ref_softmax(lg, x, want, outer, len, inner);
        char what[64];
        snprintf(what, sizeof what, "%s opset %d axis %d", lg ? "LogSoftmax" : "Softmax", opset, axis);
        check_close(t.out[0].data, want, n, 1e-5, what);
        tn_free(&t);
      }
  free(want);
  free(x);
  {
    float e[3] = {1, 2, 3};
    tnode t;
    tn_init(&t);
    tn_f32(&t, 1, (int64_t[]){3}, e);
    tn_node(&t, DRT_OP_SOFTMAX, 13, 1);
    tn_int(&t, "axis", -2);
    DRT_ASSERT_ERROR(tn_run(&t, false), DRT_STATUS_INVALID_ARGUMENT, "attribute axis");
    tn_free(&t);
  }
  {
    int32_t e[3] = {1, 2, 3};
    tnode t;
    tn_init(&t);
    tn_in(&t, DRT_DTYPE_INT32, 1, (int64_t[]){3}, e, false);
    tn_node(&t, DRT_OP_SOFTMAX, 13, 1);
    DRT_ASSERT_ERROR(tn_run(&t, false), DRT_STATUS_UNSUPPORTED, "dtype int32");
    tn_free(&t);
  }
}

/* ---- LayerNormalization / RMSNormalization ----------------------------------------------------- */
/* Value of parameter p (shape prank/pdims, right-aligned broadcast) at x index idx. */
static double bcast_at(const float *p, int prank, const int64_t *pdims, int xrank, const int64_t *idx) {
  int64_t off = 0;
  for (int d = 0; d < prank; d++) {
    int64_t i = pdims[d] == 1 ? 0 : idx[xrank - prank + d];
    off = off * pdims[d] + i;
  }
  return p[off];
}

static void run_row_norm_case(bool rms, int rank, const int64_t *dims, int axis, int prank, const int64_t *pdims,
                              bool with_bias, int nout, bool threaded, uint64_t seed) {
  drt_test_rng r = {seed};
  int64_t n = numel(rank, dims), np = numel(prank, pdims);
  float *x = rand_f32(&r, n, 0.5f, 3, true), *sc = rand_f32(&r, np, 0.5f, 2, true), *bi = rand_f32(&r, np, 0, 1, true);
  for (int64_t i = 0; i < n; i++) x[i] += 1.5f; /* nonzero mean */
  tnode t;
  tn_init(&t);
  tn_f32(&t, rank, dims, x);
  tn_f32(&t, prank, pdims, sc);
  if (with_bias) tn_f32(&t, prank, pdims, bi);
  tn_node(&t, rms ? DRT_OP_RMS_NORM : DRT_OP_LAYER_NORM, rms ? 23 : 17, nout);
  tn_int(&t, "axis", axis);
  tn_float(&t, "epsilon", 1e-3f);
  DRT_ASSERT_OK(tn_run(&t, threaded));
  int a = axis < 0 ? axis + rank : axis;
  int64_t rows = 1, cols = 1;
  for (int d = 0; d < a; d++) rows *= dims[d];
  for (int d = a; d < rank; d++) cols *= dims[d];
  double *want = alloc_d(n), *wm = alloc_d(rows), *wi = alloc_d(rows);
  for (int64_t rr = 0; rr < rows; rr++) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < cols; c++) mean += x[rr * cols + c];
    mean = rms ? 0 : mean / (double)cols;
    for (int64_t c = 0; c < cols; c++) var += (x[rr * cols + c] - mean) * (x[rr * cols + c] - mean);
    var /= (double)cols;
    double inv = 1 / sqrt(var + 1e-3);
    wm[rr] = mean;
    wi[rr] = inv;
    for (int64_t c = 0; c < cols; c++) {
      int64_t i = rr * cols + c, idx[DRT_MAX_RANK];
      unravel(i, rank, dims, idx);
      want[i] = (x[i] - mean) * inv * bcast_at(sc, prank, pdims, rank, idx) +
                (with_bias ? bcast_at(bi, prank, pdims, rank, idx) : 0);
    }
  }
  check_shape(&t.out[0], rank, dims);
  check_close(t.out[0].data, want, n, 1e-5, rms ? "RMSNormalization" : "LayerNormalization");
  if (nout > 1) {
    int64_t sd[DRT_MAX_RANK];
    for (int d = 0; d < rank; d++) sd[d] = d < a ? dims[d] : 1;
    check_shape(&t.out[1], rank, sd);
    check_shape(&t.out[2], rank, sd);
    assert_int_equal(t.out[1].dtype, DRT_DTYPE_FLOAT32);
    check_close(t.out[1].data, wm, rows, 1e-5, "LayerNormalization Mean");
    check_close(t.out[2].data, wi, rows, 1e-5, "LayerNormalization InvStdDev");
  }
  free(want);
  free(wm);
  free(wi);
  free(x);
  free(sc);
  free(bi);
  tn_free(&t);
}

static void test_layer_norm(void **state) {
  (void)state;
  const int64_t d4[4] = {2, 3, 4, 70};
  uint64_t seed = 100;
  for (int rms = 0; rms <= 1; rms++) {
    for (int axis = -4; axis < 4; axis++) {
      int a = axis < 0 ? axis + 4 : axis;
      run_row_norm_case(rms, 4, d4, axis, 4 - a, d4 + a, !rms, rms ? 1 : 3, axis & 1, seed++);
    }
    /* broadcast parameters: a single value, a (1, 70) row, and one varying per leading row */
    run_row_norm_case(rms, 4, d4, -1, 1, (int64_t[]){1}, !rms, 1, false, seed++);
    run_row_norm_case(rms, 4, d4, 2, 2, (int64_t[]){1, 70}, !rms, 1, true, seed++);
    run_row_norm_case(rms, 4, d4, 2, 3, (int64_t[]){3, 1, 70}, !rms, 1, true, seed++);
    run_row_norm_case(rms, 4, d4, -1, 1, (int64_t[]){70}, false, 1, false, seed++);
  }
  { /* Scale not broadcastable */
    float x[6] = {1, 2, 3, 4, 5, 6}, s[2] = {1, 1};
    tnode t;
    tn_init(&t);
    tn_f32(&t, 2, (int64_t[]){2, 3}, x);
    tn_f32(&t, 1, (int64_t[]){2}, s);
    tn_node(&t, DRT_OP_LAYER_NORM, 17, 1);
    DRT_ASSERT_ERROR(tn_run(&t, false), DRT_STATUS_INVALID_ARGUMENT, "Scale 2 is not broadcastable");
    tn_free(&t);
  }
}

/* ---- GroupNormalization / InstanceNormalization / BatchNormalization ---------------------------- */
static void run_group_norm_case(drt_op op, int opset, const int64_t *dims, int64_t groups, bool per_group,
                                bool threaded, uint64_t seed) {
  drt_test_rng r = {seed};
  int64_t n = numel(4, dims), c = dims[1], sp = dims[2] * dims[3];
  int64_t np = per_group ? groups : c;
  float *x = rand_f32(&r, n, 0.5f, 3, true), *sc = rand_f32(&r, np, 0.5f, 2, true), *bi = rand_f32(&r, np, 0, 1, true);
  tnode t;
  tn_init(&t);
  tn_f32(&t, 4, dims, x);
  tn_f32(&t, 1, &np, sc);
  tn_f32(&t, 1, &np, bi);
  tn_node(&t, op, opset, 1);
  if (op == DRT_OP_GROUP_NORM) tn_int(&t, "num_groups", groups);
  tn_float(&t, "epsilon", 1e-2f);
  DRT_ASSERT_OK(tn_run(&t, threaded));
  double *want = alloc_d(n);
  int64_t cpg = c / groups, block = cpg * sp;
  for (int64_t b = 0; b < dims[0] * groups; b++) {
    double mean = 0, var = 0;
    const float *xb = x + b * block;
    for (int64_t i = 0; i < block; i++) mean += xb[i];
    mean /= (double)block;
    for (int64_t i = 0; i < block; i++) var += (xb[i] - mean) * (xb[i] - mean);
    var /= (double)block;
    for (int64_t i = 0; i < block; i++) {
      int64_t ch = (b % groups) * cpg + i / sp, p = per_group ? b % groups : ch;
      want[b * block + i] = (xb[i] - mean) / sqrt(var + 1e-2) * sc[p] + bi[p];
    }
  }
  check_close(t.out[0].data, want, n, 1e-5, op == DRT_OP_GROUP_NORM ? "GroupNormalization" : "InstanceNormalization");
  free(want);
  free(x);
  free(sc);
  free(bi);
  tn_free(&t);
}

static void test_group_instance_norm(void **state) {
  (void)state;
  const int64_t dims[4] = {2, 6, 5, 7};
  uint64_t seed = 300;
  const int64_t groups[] = {1, 2, 3, 6};
  for (size_t k = 0; k < 4; k++) {
    run_group_norm_case(DRT_OP_GROUP_NORM, 21, dims, groups[k], false, k & 1, seed++);
    run_group_norm_case(DRT_OP_GROUP_NORM, 18, dims, groups[k], true, k & 1, seed++); /* per group */
  }
  run_group_norm_case(DRT_OP_GROUP_NORM, 18, dims, 2, false, false, seed++); /* per channel accepted */
  run_group_norm_case(DRT_OP_INSTANCE_NORM, 22, dims, 6, false, true, seed++);
  float x[2 * 6 * 35] = {0}, p[6] = {1, 1, 1, 1, 1, 1};
  { /* groups not dividing channels */
    tnode t;
    tn_init(&t);
    tn_f32(&t, 4, dims, x);
    tn_f32(&t, 1, (int64_t[]){6}, p);
    tn_f32(&t, 1, (int64_t[]){6}, p);
    tn_node(&t, DRT_OP_GROUP_NORM, 21, 1);
    tn_int(&t, "num_groups", 4);
    DRT_ASSERT_ERROR(tn_run(&t, false), DRT_STATUS_INVALID_ARGUMENT, "num_groups 4 does not divide the 6 channels");
    tn_free(&t);
  }
  { /* opset 21 wants per-channel scale */
    tnode t;
    tn_init(&t);
    tn_f32(&t, 4, dims, x);
    tn_f32(&t, 1, (int64_t[]){2}, p);
    tn_f32(&t, 1, (int64_t[]){2}, p);
    tn_node(&t, DRT_OP_GROUP_NORM, 21, 1);
    tn_int(&t, "num_groups", 2);
    DRT_ASSERT_ERROR(tn_run(&t, false), DRT_STATUS_INVALID_ARGUMENT, "scale (input 1)");
    tn_free(&t);
  }
  { /* instance norm scale of the wrong size */
    tnode t;
    tn_init(&t);
    tn_f32(&t, 4, dims, x);
    tn_f32(&t, 1, (int64_t[]){5}, p);
    tn_f32(&t, 1, (int64_t[]){6}, p);
    tn_node(&t, DRT_OP_INSTANCE_NORM, 6, 1);
    DRT_ASSERT_ERROR(tn_run(&t, false), DRT_STATUS_INVALID_ARGUMENT, "expected (6)");
    tn_free(&t);
  }
}

static void test_batch_norm(void **state) {
  (void)state;
  drt_test_rng r = {400};
  const int64_t dims[4] = {2, 5, 3, 4};
  int64_t n = numel(4, dims), c = 5, sp = 12;
  float *x = rand_f32(&r, n, 0.1f, 3, true), *sc = rand_f32(&r, c, 0.5f, 2, true), *bi = rand_f32(&r, c, 0, 1, true),
        *mean = rand_f32(&r, c, 0, 1, true), *var = rand_f32(&r, c, 0.2f, 2, false);
  for (int opset = 7; opset <= 15; opset += 8) {
    tnode t;
    tn_init(&t);
    tn_f32(&t, 4, dims, x);
    tn_f32(&t, 1, &c, sc);
    tn_f32(&t, 1, &c, bi);
    tn_f32(&t, 1, &c, mean);
    tn_f32(&t, 1, &c, var);
    tn_node(&t, DRT_OP_BATCH_NORM, opset, 1);
    tn_float(&t, "epsilon", 1e-3f);
    DRT_ASSERT_OK(tn_run(&t, opset == 15));
    double *want = alloc_d(n);
    for (int64_t i = 0; i < n; i++) {
      int64_t ch = (i / sp) % c;
      want[i] = (x[i] - mean[ch]) / sqrt(var[ch] + 1e-3) * sc[ch] + bi[ch];
    }
    check_close(t.out[0].data, want, n, 1e-5, "BatchNormalization");
    free(want);
    tn_free(&t);
  }
  { /* training mode is refused */
    tnode t;
    tn_init(&t);
    tn_f32(&t, 4, dims, x);
    for (int i = 0; i < 4; i++) tn_f32(&t, 1, &c, sc);
    tn_node(&t, DRT_OP_BATCH_NORM, 15, 3);
    tn_int(&t, "training_mode", 1);
    DRT_ASSERT_ERROR(tn_run(&t, false), DRT_STATUS_UNSUPPORTED, "training_mode=1");
    tn_free(&t);
  }
  {
    tnode t;
    tn_init(&t);
    tn_f32(&t, 4, dims, x);
    for (int i = 0; i < 4; i++) tn_f32(&t, 1, (int64_t[]){4}, sc);
    tn_node(&t, DRT_OP_BATCH_NORM, 15, 1);
    DRT_ASSERT_ERROR(tn_run(&t, false), DRT_STATUS_INVALID_ARGUMENT, "expected 5 values");
    tn_free(&t);
  }
  free(x);
  free(sc);
  free(bi);
  free(mean);
  free(var);
}

/* float16 and float64 data go through the executor's float32 promotion (these kernels list
 * float32 only); outputs come back in the node's dtypes. */
static void test_promoted_dtypes(void **state) {
  (void)state;
  drt_test_rng r = {900};
  const int64_t dims[2] = {3, 50};
  float *x = rand_f32(&r, 150, 0, 3, true);
  uint16_t xh[150];
  double xd[150], want[150], wm[3];
  for (int i = 0; i < 150; i++) {
    xh[i] = drt_f32_to_f16(x[i]);
    xd[i] = drt_f16_to_f32(xh[i]);
  }
  { /* Softmax float16 */
    tnode t;
    tn_init(&t);
    tn_in(&t, DRT_DTYPE_FLOAT16, 2, dims, xh, false);
    tn_node(&t, DRT_OP_SOFTMAX, 13, 1);
    DRT_ASSERT_OK(tn_run(&t, false));
    assert_int_equal(t.out[0].dtype, DRT_DTYPE_FLOAT16);
    float xf[150], got[150];
    for (int i = 0; i < 150; i++) xf[i] = (float)xd[i];
    ref_softmax(false, xf, want, 3, 50, 1);
    for (int i = 0; i < 150; i++) got[i] = drt_f16_to_f32(((const uint16_t *)t.out[0].data)[i]);
    check_close(got, want, 150, 1e-3, "Softmax float16");
    tn_free(&t);
  }
  { /* LayerNormalization float64: Mean/InvStdDev are float64 too */
    double ones[50];
    for (int i = 0; i < 50; i++) ones[i] = 1.0;
    tnode t;
    tn_init(&t);
    tn_in(&t, DRT_DTYPE_FLOAT64, 2, dims, xd, false);
    tn_in(&t, DRT_DTYPE_FLOAT64, 1, (int64_t[]){50}, ones, true);
    tn_node(&t, DRT_OP_LAYER_NORM, 17, 2);
    DRT_ASSERT_OK(tn_run(&t, false));
    assert_int_equal(t.out[0].dtype, DRT_DTYPE_FLOAT64);
    assert_int_equal(t.out[1].dtype, DRT_DTYPE_FLOAT64);
    check_shape(&t.out[1], 2, (int64_t[]){3, 1});
    float got[150], gm[3];
    for (int rr = 0; rr < 3; rr++) {
      double m = 0, v = 0;
      for (int c = 0; c < 50; c++) m += xd[rr * 50 + c];
      m /= 50;
      for (int c = 0; c < 50; c++) v += (xd[rr * 50 + c] - m) * (xd[rr * 50 + c] - m);
      v /= 50;
      wm[rr] = m;
      for (int c = 0; c < 50; c++) want[rr * 50 + c] = (xd[rr * 50 + c] - m) / sqrt(v + 1e-5);
      gm[rr] = (float)((const double *)t.out[1].data)[rr];
    }
    for (int i = 0; i < 150; i++) got[i] = (float)((const double *)t.out[0].data)[i];
    check_close(got, want, 150, 1e-5, "LayerNormalization float64");
    check_close(gm, wm, 3, 1e-5, "LayerNormalization float64 Mean");
    tn_free(&t);
  }
  free(x);
}

/* ---- Attention ---------------------------------------------------------------------------------- */
typedef struct attn_case {
  bool is_3d;
  int64_t batch, qh, kvh, sq, skv, past, head, vhead;
  int mask_kind; /* 0 none, 1 bool, 2 float */
  int mask_rank;
  int64_t mask_dims[4];
  bool causal;
  float scale;   /* 0: default */
  float softcap; /* 0: none */
  int qk_mode;   /* -1: no qk output */
  int64_t left, right; /* window, -1 unbounded (opset 25 when set) */
  bool nonpad;
} attn_case;

typedef struct attn_data {
  float *q, *k, *v, *mask_f, *pk, *pv;
  uint8_t *mask_b;
  int64_t nonpad[8];
} attn_data;

/* Element (b, h, s, d) of a 3-D (B, S, H*hd) or 4-D (B, H, S, hd) tensor. */
static double at4(const float *p, bool is_3d, int64_t H, int64_t S, int64_t hd, int64_t b, int64_t h, int64_t s,
                  int64_t d) {
  return is_3d ? p[((b * S + s) * H + h) * hd + d] : p[((b * H + h) * S + s) * hd + d];
}

/* Naive attention in double following onnx/reference/ops/op_attention.py. */
static void ref_attention(const attn_case *c, const attn_data *a, double *y, double *pk, double *pv, double *qk) {
  int64_t T = c->past + c->skv;
  double scale = c->scale > 0 ? c->scale : 1 / sqrt((double)c->head);
  int64_t mlen = c->mask_kind ? c->mask_dims[c->mask_rank - 1] : 0;
  for (int64_t b = 0; b < c->batch; b++)
    for (int64_t h = 0; h < c->kvh; h++)
      for (int64_t t = 0; t < T; t++) {
        for (int64_t d = 0; d < c->head; d++)
          pk[((b * c->kvh + h) * T + t) * c->head + d] =
              t < c->past ? a->pk[((b * c->kvh + h) * c->past + t) * c->head + d]
                          : at4(a->k, c->is_3d, c->kvh, c->skv, c->head, b, h, t - c->past, d);
        for (int64_t d = 0; d < c->vhead; d++)
          pv[((b * c->kvh + h) * T + t) * c->vhead + d] =
              t < c->past ? a->pv[((b * c->kvh + h) * c->past + t) * c->vhead + d]
                          : at4(a->v, c->is_3d, c->kvh, c->skv, c->vhead, b, h, t - c->past, d);
      }
  double *s = alloc_d(T), *bias = alloc_d(T);
  for (int64_t b = 0; b < c->batch; b++)
    for (int64_t h = 0; h < c->qh; h++) {
      int64_t kh = h / (c->qh / c->kvh);
      int64_t offset = c->past ? c->past : c->nonpad ? a->nonpad[b] - c->sq : 0;
      for (int64_t i = 0; i < c->sq; i++) {
        bool all_masked = true;
        for (int64_t j = 0; j < T; j++) {
          double dot = 0;
          for (int64_t d = 0; d < c->head; d++)
            dot += at4(a->q, c->is_3d, c->qh, c->sq, c->head, b, h, i, d) * pk[((b * c->kvh + kh) * T + j) * c->head + d];
          dot *= scale;
          if (c->softcap > 0) dot = c->softcap * tanh(dot / c->softcap);
          double bb = 0;
          if (c->mask_kind) {
            if (j >= mlen) {
              bb = -INFINITY;
            } else {
              int64_t full[4] = {b, h, i, j}, off = 0;
              for (int d = 0; d < c->mask_rank; d++) {
                int64_t md = c->mask_dims[d];
                off = off * md + (md == 1 ? 0 : full[4 - c->mask_rank + d]);
              }
              bb = c->mask_kind == 1 ? (a->mask_b[off] ? 0 : -INFINITY) : a->mask_f[off];
            }
          }
          int64_t diff = i + offset - j;
          if (c->causal && diff < 0) bb += -INFINITY;
          if (c->left >= 0 && diff > c->left) bb += -INFINITY;
          if (c->right >= 0 && -diff > c->right) bb += -INFINITY;
          if (c->nonpad && j >= a->nonpad[b]) bb += -INFINITY;
          if (bb != -INFINITY) all_masked = false;
          int64_t qi = ((b * c->qh + h) * c->sq + i) * T + j;
          if (c->qk_mode == 0 || c->qk_mode == 1) qk[qi] = dot;
          s[j] = dot + bb;
          bias[j] = bb;
          if (c->qk_mode == 2) qk[qi] = s[j];
        }
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < T; j++) mx = fmax(mx, s[j]);
        for (int64_t j = 0; j < T; j++) {
          s[j] = (all_masked || mx == -INFINITY) ? 0 : exp(s[j] - mx);
          sum += s[j];
        }
        for (int64_t j = 0; j < T; j++) {
          s[j] = sum > 0 ? s[j] / sum : 0;
          if (c->qk_mode == 3) qk[((b * c->qh + h) * c->sq + i) * T + j] = s[j];
        }
        for (int64_t d = 0; d < c->vhead; d++) {
          double acc = 0;
          for (int64_t j = 0; j < T; j++) acc += s[j] * pv[((b * c->kvh + kh) * T + j) * c->vhead + d];
          int64_t yi = c->is_3d ? ((b * c->sq + i) * c->qh + h) * c->vhead + d : ((b * c->qh + h) * c->sq + i) * c->vhead + d;
          y[yi] = acc;
        }
      }
    }
  free(s);
  free(bias);
}

static bool op_allows_inputs(drt_op op, int count) {
  const drt_op_info *info = drt_op_get_info(op);
  return info->max_inputs < 0 || info->max_inputs >= count;
}

static void run_attention_case(const attn_case *c, bool threaded, uint64_t seed) {
  drt_test_rng r = {seed};
  attn_data a;
  memset(&a, 0, sizeof a);
  int64_t qd3[3] = {c->batch, c->sq, c->qh * c->head}, qd4[4] = {c->batch, c->qh, c->sq, c->head};
  int64_t kd3[3] = {c->batch, c->skv, c->kvh * c->head}, kd4[4] = {c->batch, c->kvh, c->skv, c->head};
  int64_t vd3[3] = {c->batch, c->skv, c->kvh * c->vhead}, vd4[4] = {c->batch, c->kvh, c->skv, c->vhead};
  int64_t pkd[4] = {c->batch, c->kvh, c->past, c->head}, pvd[4] = {c->batch, c->kvh, c->past, c->vhead};
  int rank = c->is_3d ? 3 : 4;
  a.q = rand_f32(&r, numel(4, qd4), 0, 1.5f, true);
  a.k = rand_f32(&r, numel(4, kd4), 0, 1.5f, true);
  a.v = rand_f32(&r, numel(4, vd4), 0, 1.5f, true);
  a.pk = rand_f32(&r, numel(4, pkd), 0, 1.5f, true);
  a.pv = rand_f32(&r, numel(4, pvd), 0, 1.5f, true);
  int64_t mn = c->mask_kind ? numel(c->mask_rank, c->mask_dims) : 1;
  a.mask_f = rand_f32(&r, mn, 0, 2, true);
  a.mask_b = malloc(mn > 0 ? (size_t)mn : 1);
  assert_non_null(a.mask_b);
  for (int64_t i = 0; i < mn; i++) a.mask_b[i] = (drt_test_next(&r) % 4) != 0;
  if (c->mask_kind == 1) a.mask_b[0] = 0;
  for (int64_t b = 0; b < c->batch; b++) a.nonpad[b] = c->skv - (b % 3);

  tnode t;
  tn_init(&t);
  tn_f32(&t, rank, c->is_3d ? qd3 : qd4, a.q);
  tn_f32(&t, rank, c->is_3d ? kd3 : kd4, a.k);
  tn_f32(&t, rank, c->is_3d ? vd3 : vd4, a.v);
  int nin = 3;
  if (c->mask_kind || c->past || c->nonpad) {
    if (c->mask_kind == 1)
      tn_in(&t, DRT_DTYPE_BOOL, c->mask_rank, c->mask_dims, a.mask_b, false);
    else if (c->mask_kind == 2)
      tn_f32(&t, c->mask_rank, c->mask_dims, a.mask_f);
    else
      tn_absent(&t);
    nin = 4;
  }
  if (c->past || c->nonpad) {
    if (c->past) {
      tn_f32(&t, 4, pkd, a.pk);
      tn_f32(&t, 4, pvd, a.pv);
    } else {
      tn_absent(&t);
      tn_absent(&t);
    }
    nin = 6;
  }
  if (c->nonpad) {
    tn_in(&t, DRT_DTYPE_INT64, 1, &c->batch, a.nonpad, false);
    nin = 7;
  }
  (void)nin;
  int nout = c->qk_mode >= 0 ? 4 : c->past ? 3 : 1;
  int opset = c->left >= 0 || c->right >= 0 ? 25 : c->nonpad ? 24 : 23;
  tn_node(&t, DRT_OP_ATTENTION, opset, nout);
  if (c->is_3d) {
    tn_int(&t, "q_num_heads", c->qh);
    tn_int(&t, "kv_num_heads", c->kvh);
  }
  if (c->causal) tn_int(&t, "is_causal", 1);
  if (c->scale > 0) tn_float(&t, "scale", c->scale);
  if (c->softcap > 0) tn_float(&t, "softcap", c->softcap);
  if (c->qk_mode > 0) tn_int(&t, "qk_matmul_output_mode", c->qk_mode);
  if (c->left >= 0) tn_int(&t, "left_window_size", c->left);
  if (c->right >= 0) tn_int(&t, "right_window_size", c->right);
  DRT_ASSERT_OK(tn_run(&t, threaded));

  int64_t T = c->past + c->skv;
  int64_t ny = c->batch * c->qh * c->sq * c->vhead, npk = c->batch * c->kvh * T * c->head,
          npv = c->batch * c->kvh * T * c->vhead, nqk = c->batch * c->qh * c->sq * T;
  double *y = alloc_d(ny), *pk = alloc_d(npk), *pv = alloc_d(npv), *qk = alloc_d(nqk);
  ref_attention(c, &a, y, pk, pv, qk);
  if (c->is_3d)
    check_shape(&t.out[0], 3, (int64_t[]){c->batch, c->sq, c->qh * c->vhead});
  else
    check_shape(&t.out[0], 4, (int64_t[]){c->batch, c->qh, c->sq, c->vhead});
  check_close(t.out[0].data, y, ny, 1e-5, "Attention Y");
  if (nout > 1) {
    check_shape(&t.out[1], 4, (int64_t[]){c->batch, c->kvh, T, c->head});
    check_shape(&t.out[2], 4, (int64_t[]){c->batch, c->kvh, T, c->vhead});
    check_close(t.out[1].data, pk, npk, 1e-7, "Attention present_key");
    check_close(t.out[2].data, pv, npv, 1e-7, "Attention present_value");
  }
  if (nout > 3) {
    check_shape(&t.out[3], 4, (int64_t[]){c->batch, c->qh, c->sq, T});
    /* modes 0-2 hold -inf where masked: compare finite entries only */
    const float *g = t.out[3].data;
    for (int64_t i = 0; i < nqk; i++) {
      if (isinf(qk[i])) {
        assert_true(isinf(g[i]) && g[i] < 0);
        qk[i] = 0;
        ((float *)t.out[3].data)[i] = 0;
      }
    }
    check_close(t.out[3].data, qk, nqk, 1e-5, "Attention qk_matmul_output");
  }
  free(y);
  free(pk);
  free(pv);
  free(qk);
  free(a.q);
  free(a.k);
  free(a.v);
  free(a.pk);
  free(a.pv);
  free(a.mask_f);
  free(a.mask_b);
  tn_free(&t);
}

static attn_case base_case(bool is_3d, int64_t batch, int64_t qh, int64_t kvh, int64_t sq, int64_t skv, int64_t head,
                           int64_t vhead) {
  attn_case c;
  memset(&c, 0, sizeof c);
  c.is_3d = is_3d;
  c.batch = batch;
  c.qh = qh;
  c.kvh = kvh;
  c.sq = sq;
  c.skv = skv;
  c.head = head;
  c.vhead = vhead;
  c.qk_mode = -1;
  c.left = c.right = -1;
  return c;
}

static void test_attention(void **state) {
  (void)state;
  uint64_t seed = 500;
  for (int is_3d = 0; is_3d <= 1; is_3d++) {
    attn_case c = base_case(is_3d, 2, 4, 4, 5, 7, 8, 8);
    run_attention_case(&c, false, seed++);
    c = base_case(is_3d, 2, 6, 2, 70, 90, 16, 12); /* GQA, several query blocks, v_head != head */
    run_attention_case(&c, true, seed++);
    c.causal = true;
    run_attention_case(&c, true, seed++);
    c = base_case(is_3d, 1, 4, 1, 6, 6, 8, 4); /* MQA, scale + softcap */
    c.scale = 0.7f;
    c.softcap = 2.0f;
    run_attention_case(&c, false, seed++);
  }
  /* masks: bool 2-D, float 4-D, bool 3-D with causal, short last dim (padded with -inf) */
  attn_case c = base_case(false, 2, 4, 2, 5, 9, 8, 8);
  c.mask_kind = 1;
  c.mask_rank = 2;
  c.mask_dims[0] = 5;
  c.mask_dims[1] = 9;
  run_attention_case(&c, false, seed++);
  c.mask_kind = 2;
  c.mask_rank = 4;
  c.mask_dims[0] = 2;
  c.mask_dims[1] = 1;
  c.mask_dims[2] = 5;
  c.mask_dims[3] = 9;
  run_attention_case(&c, true, seed++);
  c.mask_kind = 1;
  c.mask_rank = 3;
  c.mask_dims[0] = 4;
  c.mask_dims[1] = 1;
  c.mask_dims[2] = 6; /* shorter than 9 */
  c.causal = true;
  run_attention_case(&c, false, seed++);
  /* a fully masked row (bool mask all False for query 0) gives zeros */
  c = base_case(false, 1, 2, 2, 3, 4, 4, 4);
  c.mask_kind = 1;
  c.mask_rank = 2;
  c.mask_dims[0] = 3;
  c.mask_dims[1] = 1; /* keys 1..3 padded out; key 0 random, mask_b[0] = False */
  run_attention_case(&c, false, seed++);
  /* KV cache: past + present outputs, causal with offset, qk outputs in every mode */
  for (int mode = 0; mode <= 3; mode++) {
    c = base_case(mode & 1, 2, 4, 2, 3, 3, 8, 6);
    c.past = 5;
    c.causal = mode >= 2;
    c.qk_mode = mode;
    c.softcap = mode == 1 ? 1.5f : 0;
    c.mask_kind = 2;
    c.mask_rank = 2;
    c.mask_dims[0] = 3;
    c.mask_dims[1] = 8;
    run_attention_case(&c, mode == 3, seed++);
  }
  /* sliding window (opset 25) */
  c = base_case(false, 1, 2, 2, 6, 6, 4, 4);
  c.left = 2;
  c.right = 1;
  run_attention_case(&c, false, seed++);
  c.causal = true;
  c.right = -1;
  c.past = 3;
  c.qk_mode = 3;
  run_attention_case(&c, false, seed++);
  /* external cache: nonpad_kv_seqlen (opset 24, 7 inputs) */
  if (op_allows_inputs(DRT_OP_ATTENTION, 7)) {
    c = base_case(false, 3, 2, 1, 2, 6, 4, 4);
    c.nonpad = true;
    c.causal = true;
    run_attention_case(&c, false, seed++);
  } else {
    print_message("note: ops.def limits Attention to fewer than 7 inputs; nonpad_kv_seqlen not tested\n");
  }
}

static void test_attention_errors(void **state) {
  (void)state;
  float buf[256] = {0};
  { /* q heads not a multiple of kv heads */
    tnode t;
    tn_init(&t);
    tn_f32(&t, 4, (int64_t[]){1, 3, 2, 4}, buf);
    tn_f32(&t, 4, (int64_t[]){1, 2, 2, 4}, buf);
    tn_f32(&t, 4, (int64_t[]){1, 2, 2, 4}, buf);
    tn_node(&t, DRT_OP_ATTENTION, 23, 1);
    DRT_ASSERT_ERROR(tn_run(&t, false), DRT_STATUS_INVALID_ARGUMENT, "q_num_heads 3 is not a multiple of kv_num_heads 2");
    tn_free(&t);
  }
  { /* 3-D without head counts */
    tnode t;
    tn_init(&t);
    for (int i = 0; i < 3; i++) tn_f32(&t, 3, (int64_t[]){1, 2, 8}, buf);
    tn_node(&t, DRT_OP_ATTENTION, 23, 1);
    DRT_ASSERT_ERROR(tn_run(&t, false), DRT_STATUS_INVALID_ARGUMENT, "q_num_heads and kv_num_heads");
    tn_free(&t);
  }
  { /* head size mismatch */
    tnode t;
    tn_init(&t);
    tn_f32(&t, 4, (int64_t[]){1, 2, 2, 4}, buf);
    tn_f32(&t, 4, (int64_t[]){1, 2, 2, 8}, buf);
    tn_f32(&t, 4, (int64_t[]){1, 2, 2, 4}, buf);
    tn_node(&t, DRT_OP_ATTENTION, 23, 1);
    DRT_ASSERT_ERROR(tn_run(&t, false), DRT_STATUS_INVALID_ARGUMENT, "differs from K head size 8");
    tn_free(&t);
  }
  { /* mask not broadcastable */
    tnode t;
    tn_init(&t);
    for (int i = 0; i < 3; i++) tn_f32(&t, 4, (int64_t[]){1, 2, 3, 4}, buf);
    tn_f32(&t, 2, (int64_t[]){2, 3}, buf);
    tn_node(&t, DRT_OP_ATTENTION, 23, 1);
    DRT_ASSERT_ERROR(tn_run(&t, false), DRT_STATUS_INVALID_ARGUMENT, "attn_mask 2x3 is not broadcastable");
    tn_free(&t);
  }
  { /* past_key without past_value */
    tnode t;
    tn_init(&t);
    for (int i = 0; i < 3; i++) tn_f32(&t, 4, (int64_t[]){1, 2, 3, 4}, buf);
    tn_absent(&t);
    tn_f32(&t, 4, (int64_t[]){1, 2, 3, 4}, buf);
    tn_absent(&t);
    tn_node(&t, DRT_OP_ATTENTION, 23, 1);
    DRT_ASSERT_ERROR(tn_run(&t, false), DRT_STATUS_INVALID_ARGUMENT, "past_key and past_value");
    tn_free(&t);
  }
}

static int setup(void **state) {
  (void)state;
  drt_status s = drt_threadpool_create(3, &g_pool);
  if (s) {
    drt_status_free(s);
    return -1;
  }
  return 0;
}

static int teardown(void **state) {
  (void)state;
  drt_threadpool_destroy(g_pool);
  g_pool = NULL;
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reduce_float),     cmocka_unit_test(test_reduce_float64),
      cmocka_unit_test(test_reduce_int),       cmocka_unit_test(test_reduce_empty_set),
      cmocka_unit_test(test_reduce_errors),    cmocka_unit_test(test_argmax),
      cmocka_unit_test(test_cumsum),           cmocka_unit_test(test_softmax),
      cmocka_unit_test(test_layer_norm),       cmocka_unit_test(test_group_instance_norm),
      cmocka_unit_test(test_batch_norm),       cmocka_unit_test(test_promoted_dtypes),
      cmocka_unit_test(test_attention),
      cmocka_unit_test(test_attention_errors),
      cmocka_unit_test(test_losses),           cmocka_unit_test(test_topk),
      cmocka_unit_test(test_rotary),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
