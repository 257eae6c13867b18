/* Elementwise op family: shape/dtype inference and CPU kernels against naive references
 * (unary float ops in float32/float64, numpy broadcasting, integer arithmetic, comparisons,
 * logic, variadic ops, Where, Clip, Cast, Dropout, PRelu) and the error paths. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer.h"

/* ---- helpers ------------------------------------------------------------------------- */

typedef struct op_in {
  drt_dtype dt;
  drt_shape shape;
  const void *data; /* NULL with dt UNDEFINED: omitted optional input */
  bool is_const;
} op_in;

static op_in in_t(drt_dtype dt, drt_shape s, const void *data) {
  op_in r = {dt, s, data, false};
  return r;
}

static drt_attr attr_f(const char *name, float v) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_FLOAT;
  a.f = v;
  return a;
}

static drt_attr attr_i(const char *name, int64_t v) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_INT;
  a.i = v;
  return a;
}

static drt_attr attr_s(const char *name, const char *v) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_STRING;
  a.s = v;
  a.s_len = strlen(v);
  return a;
}

/* Builds a one-node graph, infers it and runs the CPU kernel. On success outs[i] hold
 * malloc'd data (free with free_outs); on failure nothing is left allocated. */
static drt_status run_node_ctx(drt_cpu_ctx *ctx, drt_op op, int opset, const op_in *ins, int nin, int nout,
                               const drt_attr *attrs, int nattrs, drt_tensor *outs) {
  drt_graph *g;
  drt_status st = drt_graph_create(&g);
  if (st) return st;
  drt_value *vin[8], *vout[4];
  drt_tensor tin[8];
  memset(tin, 0, sizeof tin);
  for (int i = 0; i < nin; i++) {
    char name[16];
    snprintf(name, sizeof name, "in%d", i);
    if (ins[i].dt == DRT_DTYPE_UNDEFINED) {
      vin[i] = NULL;
    } else if (ins[i].is_const) {
      st = drt_graph_add_const(g, name, ins[i].dt, &ins[i].shape, ins[i].data, &vin[i]);
      if (st) goto done;
    } else {
      vin[i] = drt_graph_add_value(g, name, ins[i].dt, &ins[i].shape);
      tin[i].data = (void *)ins[i].data;
    }
  }
  for (int i = 0; i < nout; i++) {
    char name[16];
    snprintf(name, sizeof name, "out%d", i);
    vout[i] = drt_graph_add_value(g, name, DRT_DTYPE_UNDEFINED, NULL);
  }
  drt_node *n;
  st = drt_graph_add_node(g, op, "node", vin, nin, vout, nout, &n);
  if (st) goto done;
  n->opset = opset;
  for (int i = 0; i < nattrs && !st; i++) st = drt_node_add_attr(g, n, &attrs[i]);
  if (st) goto done;
  for (int i = 0; i < nout; i++) outs[i].data = NULL;
  st = drt_infer_node(g, n);
  if (st) goto done;
  drt_tensor in[8];
  for (int i = 0; i < nin; i++) {
    memset(&in[i], 0, sizeof in[i]);
    if (!vin[i]) continue;
    in[i].dtype = vin[i]->dtype;
    in[i].shape = vin[i]->shape;
    in[i].data = vin[i]->kind == DRT_VALUE_CONST ? vin[i]->data : tin[i].data;
  }
  for (int i = 0; i < nout; i++) {
    outs[i].dtype = vout[i]->dtype;
    outs[i].shape = vout[i]->shape;
    size_t nb = drt_tensor_nbytes(&outs[i]);
    outs[i].data = calloc(nb ? nb : 1, 1);
  }
  st = drt_cpu_run_node(ctx, n, in, outs);
  if (st)
    for (int i = 0; i < nout; i++) {
      free(outs[i].data);
      outs[i].data = NULL;
    }
done:
  drt_graph_destroy(g);
  return st;
}

static drt_status run_node(drt_op op, int opset, const op_in *ins, int nin, int nout, const drt_attr *attrs,
                           int nattrs, drt_tensor *outs) {
  drt_cpu_ctx ctx = {NULL, 1};
  return run_node_ctx(&ctx, op, opset, ins, nin, nout, attrs, nattrs, outs);
}

/* Same, going through drt_test_run_node (the shared harness). */
static void test_harness(void **state) {
  (void)state;
  drt_graph *g;
  DRT_ASSERT_OK(drt_graph_create(&g));
  drt_shape s = drt_test_shape(1, (int64_t[]){3});
  drt_value *a = drt_graph_add_value(g, "a", DRT_DTYPE_FLOAT32, &s);
  drt_value *b = drt_graph_add_value(g, "b", DRT_DTYPE_FLOAT32, &s);
  drt_value *y = drt_graph_add_value(g, "y", DRT_DTYPE_UNDEFINED, NULL);
  drt_value *ab[2] = {a, b};
  drt_node *n;
  DRT_ASSERT_OK(drt_graph_add_node(g, DRT_OP_ADD, "add", ab, 2, &y, 1, &n));
  n->opset = 14;
  float da[3] = {1, 2, 3}, db[3] = {10, 20, 30};
  drt_tensor ins[2] = {{DRT_DTYPE_FLOAT32, s, da}, {DRT_DTYPE_FLOAT32, s, db}}, out;
  DRT_ASSERT_OK(drt_test_run_node(g, n, ins, &out));
  float *o = out.data;
  assert_true(o[0] == 11 && o[1] == 22 && o[2] == 33);
  free(out.data);
  drt_graph_destroy(g);
}

static void free_outs(drt_tensor *outs, int n) {
  for (int i = 0; i < n; i++) free(outs[i].data);
}

/* Flat index into `in` for flat index `flat` of `out` under numpy broadcasting. */
static int64_t bcast_index(const drt_shape *in, const drt_shape *out, int64_t flat) {
  int64_t idx = 0, mul = 1;
  for (int d = out->rank - 1; d >= 0; d--) {
    int64_t c = flat % out->dims[d];
    flat /= out->dims[d];
    int id = d - (out->rank - in->rank);
    if (id >= 0) {
      if (in->dims[id] != 1) idx += c * mul;
      mul *= in->dims[id];
    }
  }
  return idx;
}

static void assert_shape(const drt_shape *s, int rank, const int64_t *dims) {
  assert_int_equal(s->rank, rank);
  for (int i = 0; i < rank; i++) assert_int_equal(s->dims[i], dims[i]);
}

static float *rand_f32(drt_test_rng *r, size_t n, float lo, float hi) {
  float *x = malloc(n * sizeof *x);
  drt_test_fill(r, x, n, lo, hi);
  /* keep values away from zero so relative checks are meaningful */
  for (size_t i = 0; i < n; i++)
    if (fabsf(x[i]) < 1e-3f) x[i] = 0.5f;
  return x;
}

/* ---- unary float ops ------------------------------------------------------------------ */

typedef struct unary_case {
  drt_op op;
  float lo, hi; /* input range */
  double (*ref)(double x, double a, double b);
  drt_attr attrs[2];
  int nattrs;
  double a, b; /* attribute values the reference uses */
} unary_case;

static double r_abs(double x, double a, double b) { (void)a, (void)b; return fabs(x); }
static double r_neg(double x, double a, double b) { (void)a, (void)b; return -x; }
static double r_sqrt(double x, double a, double b) { (void)a, (void)b; return sqrt(x); }
static double r_recip(double x, double a, double b) { (void)a, (void)b; return 1.0 / x; }
static double r_exp(double x, double a, double b) { (void)a, (void)b; return exp(x); }
static double r_log(double x, double a, double b) { (void)a, (void)b; return log(x); }
static double r_erf(double x, double a, double b) { (void)a, (void)b; return erf(x); }
static double r_tanh(double x, double a, double b) { (void)a, (void)b; return tanh(x); }
static double r_sigmoid(double x, double a, double b) { (void)a, (void)b; return 1.0 / (1.0 + exp(-x)); }
static double r_relu(double x, double a, double b) { (void)a, (void)b; return x > 0 ? x : 0; }
static double r_leaky(double x, double a, double b) { (void)b; return x >= 0 ? x : a * x; }
static double r_elu(double x, double a, double b) { (void)b; return x >= 0 ? x : a * (exp(x) - 1); }
static double r_selu(double x, double a, double g) { return x > 0 ? g * x : g * (a * exp(x) - a); }
static double r_celu(double x, double a, double b) {
  (void)b;
  return fmax(0, x) + fmin(0, a * (exp(x / a) - 1));
}
static double r_sin(double x, double a, double b) { (void)a, (void)b; return sin(x); }
static double r_cos(double x, double a, double b) { (void)a, (void)b; return cos(x); }
static double r_tan(double x, double a, double b) { (void)a, (void)b; return tan(x); }
static double r_asin(double x, double a, double b) { (void)a, (void)b; return asin(x); }
static double r_acos(double x, double a, double b) { (void)a, (void)b; return acos(x); }
static double r_atan(double x, double a, double b) { (void)a, (void)b; return atan(x); }
static double r_sinh(double x, double a, double b) { (void)a, (void)b; return sinh(x); }
static double r_cosh(double x, double a, double b) { (void)a, (void)b; return cosh(x); }
static double r_floor(double x, double a, double b) { (void)a, (void)b; return floor(x); }
static double r_ceil(double x, double a, double b) { (void)a, (void)b; return ceil(x); }
static double r_round(double x, double a, double b) {
  (void)a, (void)b;
  double f = floor(x), d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return fmod(f, 2) == 0 ? f : f + 1;
}
static double r_sign(double x, double a, double b) { (void)a, (void)b; return x > 0 ? 1 : x < 0 ? -1 : 0; }
static double r_gelu(double x, double a, double b) { (void)a, (void)b; return 0.5 * x * (1 + erf(x / sqrt(2.0))); }
static double r_gelu_tanh(double x, double a, double b) {
  (void)a, (void)b;
  return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}
static double r_hsig(double x, double a, double b) { return fmax(0, fmin(1, a * x + b)); }
static double r_hswish(double x, double a, double b) { (void)a, (void)b; return x * fmax(0, fmin(1, x / 6 + 0.5)); }
static double r_softplus(double x, double a, double b) { (void)a, (void)b; return log(exp(x) + 1); }
static double r_mish(double x, double a, double b) { (void)a, (void)b; return x * tanh(log(exp(x) + 1)); }
static double r_softsign(double x, double a, double b) { (void)a, (void)b; return x / (1 + fabs(x)); }
static double r_asinh(double x, double a, double b) { (void)a, (void)b; return log(x + sqrt(x * x + 1)); }
static double r_acosh(double x, double a, double b) { (void)a, (void)b; return log(x + sqrt(x * x - 1)); }
static double r_atanh(double x, double a, double b) { (void)a, (void)b; return 0.5 * log((1 + x) / (1 - x)); }
static double r_swish(double x, double a, double b) { (void)b; return x / (1 + exp(-a * x)); }
static double r_threlu(double x, double a, double b) { (void)b; return x > a ? x : 0; }
static double r_shrink(double x, double bias, double lambd) { return x < -lambd ? x + bias : x > lambd ? x - bias : 0; }

#define UC0(OP, LO, HI, REF) {DRT_OP_##OP, LO, HI, REF, {{0}}, 0, 0, 0}

static void test_unary_float_ops(void **state) {
  (void)state;
  const unary_case cases[] = {
      UC0(ABS, -4, 4, r_abs),
      UC0(NEG, -4, 4, r_neg),
      UC0(SQRT, 0.01f, 9, r_sqrt),
      UC0(RECIPROCAL, 0.2f, 5, r_recip),
      UC0(EXP, -20, 20, r_exp),
      UC0(LOG, 0.01f, 100, r_log),
      UC0(ERF, -5, 5, r_erf),
      UC0(TANH, -9, 9, r_tanh),
      UC0(SIGMOID, -20, 20, r_sigmoid),
      UC0(RELU, -4, 4, r_relu),
      {DRT_OP_LEAKY_RELU, -4, 4, r_leaky, {{0}}, 0, 0.01, 0},
      {DRT_OP_LEAKY_RELU, -4, 4, r_leaky, {attr_f("alpha", 0.25f)}, 1, 0.25, 0},
      {DRT_OP_ELU, -4, 4, r_elu, {{0}}, 0, 1.0, 0},
      {DRT_OP_ELU, -4, 4, r_elu, {attr_f("alpha", 0.5f)}, 1, 0.5, 0},
      {DRT_OP_SELU, -4, 4, r_selu, {{0}}, 0, 1.67326319217681884765625, 1.05070102214813232421875},
      {DRT_OP_SELU, -4, 4, r_selu, {attr_f("alpha", 2.0f), attr_f("gamma", 3.0f)}, 2, 2.0, 3.0},
      {DRT_OP_CELU, -4, 4, r_celu, {{0}}, 0, 1.0, 0},
      {DRT_OP_CELU, -4, 4, r_celu, {attr_f("alpha", 2.0f)}, 1, 2.0, 0},
      UC0(SIN, -6, 6, r_sin),
      UC0(COS, -6, 6, r_cos),
      UC0(TAN, -1.4f, 1.4f, r_tan),
      UC0(ASIN, -0.99f, 0.99f, r_asin),
      UC0(ACOS, -0.99f, 0.99f, r_acos),
      UC0(ATAN, -9, 9, r_atan),
      UC0(SINH, -5, 5, r_sinh),
      UC0(COSH, -5, 5, r_cosh),
      UC0(FLOOR, -9, 9, r_floor),
      UC0(CEIL, -9, 9, r_ceil),
      UC0(ROUND, -9, 9, r_round),
      UC0(SIGN, -3, 3, r_sign),
      UC0(GELU, -6, 6, r_gelu),
      {DRT_OP_GELU, -6, 6, r_gelu, {attr_s("approximate", "none")}, 1, 0, 0},
      {DRT_OP_GELU, -6, 6, r_gelu_tanh, {attr_s("approximate", "tanh")}, 1, 0, 0},
      {DRT_OP_HARD_SIGMOID, -6, 6, r_hsig, {{0}}, 0, 0.2, 0.5},
      {DRT_OP_HARD_SIGMOID, -6, 6, r_hsig, {attr_f("alpha", 0.3f), attr_f("beta", 0.4f)}, 2, 0.3, 0.4},
      UC0(HARD_SWISH, -6, 6, r_hswish),
      UC0(MISH, -8, 8, r_mish),
      UC0(SOFTPLUS, -15, 15, r_softplus),
      UC0(SOFTSIGN, -6, 6, r_softsign),
      UC0(ASINH, -9, 9, r_asinh),
      UC0(ACOSH, 1.01f, 9, r_acosh),
      UC0(ATANH, -0.99f, 0.99f, r_atanh),
      {DRT_OP_SWISH, -20, 20, r_swish, {{0}}, 0, 1.0, 0},
      {DRT_OP_SWISH, -20, 20, r_swish, {attr_f("alpha", 0.5f)}, 1, 0.5, 0},
      {DRT_OP_THRESHOLDED_RELU, -4, 4, r_threlu, {{0}}, 0, 1.0, 0},
      {DRT_OP_THRESHOLDED_RELU, -4, 4, r_threlu, {attr_f("alpha", -0.5f)}, 1, -0.5, 0},
      {DRT_OP_SHRINK, -4, 4, r_shrink, {{0}}, 0, 0.0, 0.5},
      {DRT_OP_SHRINK, -4, 4, r_shrink, {attr_f("bias", 1.5f), attr_f("lambd", 1.0f)}, 2, 1.5, 1.0},
  };
  drt_test_rng rng = {42};
  drt_shape s = drt_test_shape(3, (int64_t[]){3, 5, 7});
  const size_t n = 105;
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    const unary_case *uc = &cases[c];
    float *x = rand_f32(&rng, n, uc->lo, uc->hi);
    if (uc->op == DRT_OP_ROUND) { /* exact halves must round to even */
      x[0] = 0.5f, x[1] = 1.5f, x[2] = 2.5f, x[3] = -0.5f, x[4] = -1.5f, x[5] = -2.5f;
    }
    double *xd = malloc(n * sizeof *xd);
    float *ref = malloc(n * sizeof *ref);
    double *refd = malloc(n * sizeof *refd);
    /* attributes are float32 in ONNX, defaults included */
    const double a = (float)uc->a, b = (float)uc->b;
    for (size_t i = 0; i < n; i++) {
      xd[i] = (double)x[i] * (1.0 + 1e-9); /* a float64 input that is not a float32 value */
      if (uc->op == DRT_OP_ROUND || uc->op == DRT_OP_FLOOR || uc->op == DRT_OP_CEIL) xd[i] = x[i];
      ref[i] = (float)uc->ref(x[i], a, b);
      refd[i] = uc->ref(xd[i], a, b);
    }
    drt_tensor out;
    op_in in = in_t(DRT_DTYPE_FLOAT32, s, x);
    DRT_ASSERT_OK(run_node(uc->op, 22, &in, 1, 1, uc->attrs, uc->nattrs, &out));
    assert_int_equal(out.dtype, DRT_DTYPE_FLOAT32);
    assert_shape(&out.shape, 3, (int64_t[]){3, 5, 7});
    double err = drt_test_rel_l2(out.data, ref, n);
    if (err > 1e-5) print_error("case %zu (%s): float32 rel err %g\n", c, drt_op_name(uc->op), err);
    assert_true(err <= 1e-5);
    free(out.data);

    in = in_t(DRT_DTYPE_FLOAT64, s, xd);
    DRT_ASSERT_OK(run_node(uc->op, 22, &in, 1, 1, uc->attrs, uc->nattrs, &out));
    assert_int_equal(out.dtype, DRT_DTYPE_FLOAT64);
    const double *o = out.data;
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
      num += (o[i] - refd[i]) * (o[i] - refd[i]);
      den += refd[i] * refd[i];
    }
    if (sqrt(num / den) > 1e-12) print_error("case %zu (%s): float64 rel err %g\n", c, drt_op_name(uc->op), sqrt(num / den));
    assert_true(sqrt(num / den) <= 1e-12);
    free(out.data);
    free(x);
    free(xd);
    free(ref);
    free(refd);
  }
}

/* The float32 fast exp/tanh/erf: per-element accuracy over wide ranges and special values. */
static void test_fast_math_special_values(void **state) {
  (void)state;
  enum { N = 4000 };
  float *x = malloc(N * sizeof *x);
  for (int i = 0; i < N - 8; i++) x[i] = -110.0f + 205.0f * (float)i / (float)(N - 8);
  x[N - 8] = NAN, x[N - 7] = INFINITY, x[N - 6] = -INFINITY, x[N - 5] = 0.0f;
  x[N - 4] = -0.0f, x[N - 3] = 1e-30f, x[N - 2] = -3e-4f, x[N - 1] = 88.5f;
  drt_shape s = drt_test_shape(1, (int64_t[]){N});
  const drt_op ops[] = {DRT_OP_EXP, DRT_OP_TANH, DRT_OP_ERF, DRT_OP_SIGMOID};
  for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
    drt_tensor out;
    op_in in = in_t(DRT_DTYPE_FLOAT32, s, x);
    DRT_ASSERT_OK(run_node(ops[k], 13, &in, 1, 1, NULL, 0, &out));
    const float *y = out.data;
    for (int i = 0; i < N; i++) {
      double r = ops[k] == DRT_OP_EXP ? exp(x[i]) : ops[k] == DRT_OP_TANH ? tanh(x[i])
                 : ops[k] == DRT_OP_ERF ? erf(x[i]) : 1.0 / (1.0 + exp(-(double)x[i]));
      float rf = (float)r;
      if (isnan(rf)) {
        assert_true(isnan(y[i]));
      } else if (isinf(rf) || rf == 0) {
        if (y[i] != rf) print_error("%s(%g) = %g, expected %g\n", drt_op_name(ops[k]), x[i], y[i], rf);
        assert_true(y[i] == rf);
      } else {
        /* subnormal results can only be as exact as their spacing (1.4e-45); sigmoid of
         * x < -88.7 is 1 / (1 + inf) = 0, as in any float32 evaluation */
        double tol = 2e-6 * fabs(r);
        if (fabs(r) < FLT_MIN) tol += ops[k] == DRT_OP_SIGMOID ? FLT_MIN : 3e-45;
        if (fabs(y[i] - r) > tol) print_error("%s(%.9g) = %.9g, expected %.9g\n", drt_op_name(ops[k]), x[i], y[i], r);
        assert_true(fabs(y[i] - r) <= tol);
      }
    }
    free(out.data);
  }
  free(x);
}

static void test_classify_round_sign(void **state) {
  (void)state;
  float x[8] = {NAN, INFINITY, -INFINITY, 0.0f, -2.5f, 2.5f, 0.5f, -0.0f};
  drt_shape s = drt_test_shape(1, (int64_t[]){8});
  op_in in = in_t(DRT_DTYPE_FLOAT32, s, x);
  drt_tensor out;
  DRT_ASSERT_OK(run_node(DRT_OP_ISNAN, 20, &in, 1, 1, NULL, 0, &out));
  assert_int_equal(out.dtype, DRT_DTYPE_BOOL);
  const uint8_t exp_nan[8] = {1, 0, 0, 0, 0, 0, 0, 0};
  assert_memory_equal(out.data, exp_nan, 8);
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_ISINF, 20, &in, 1, 1, NULL, 0, &out));
  const uint8_t exp_inf[8] = {0, 1, 1, 0, 0, 0, 0, 0};
  assert_memory_equal(out.data, exp_inf, 8);
  free(out.data);
  drt_attr a = attr_i("detect_positive", 0);
  DRT_ASSERT_OK(run_node(DRT_OP_ISINF, 20, &in, 1, 1, &a, 1, &out));
  const uint8_t exp_ninf[8] = {0, 0, 1, 0, 0, 0, 0, 0};
  assert_memory_equal(out.data, exp_ninf, 8);
  free(out.data);
  a = attr_i("detect_negative", 0);
  DRT_ASSERT_OK(run_node(DRT_OP_ISINF, 20, &in, 1, 1, &a, 1, &out));
  const uint8_t exp_pinf[8] = {0, 1, 0, 0, 0, 0, 0, 0};
  assert_memory_equal(out.data, exp_pinf, 8);
  free(out.data);
  /* float64 IsNaN */
  double xd[3] = {NAN, 1.0, INFINITY};
  op_in ind = in_t(DRT_DTYPE_FLOAT64, drt_test_shape(1, (int64_t[]){3}), xd);
  DRT_ASSERT_OK(run_node(DRT_OP_ISNAN, 20, &ind, 1, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((uint8_t[]){1, 0, 0}), 3);
  free(out.data);

  DRT_ASSERT_OK(run_node(DRT_OP_ROUND, 11, &in, 1, 1, NULL, 0, &out));
  const float *r = out.data;
  assert_true(isnan(r[0]) && r[1] == INFINITY && r[2] == -INFINITY);
  assert_true(r[4] == -2.0f && r[5] == 2.0f && r[6] == 0.0f);
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_SIGN, 13, &in, 1, 1, NULL, 0, &out));
  r = out.data;
  assert_true(isnan(r[0]) && r[1] == 1 && r[2] == -1 && r[3] == 0 && r[4] == -1 && r[7] == 0);
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_RELU, 14, &in, 1, 1, NULL, 0, &out));
  r = out.data;
  assert_true(isnan(r[0]) && r[1] == INFINITY && r[2] == 0 && r[4] == 0 && r[5] == 2.5f);
  free(out.data);
}

static void test_int_unary(void **state) {
  (void)state;
  drt_shape s = drt_test_shape(1, (int64_t[]){5});
  int8_t x8[5] = {-128, -5, 0, 7, 127};
  op_in in = in_t(DRT_DTYPE_INT8, s, x8);
  drt_tensor out;
  DRT_ASSERT_OK(run_node(DRT_OP_ABS, 13, &in, 1, 1, NULL, 0, &out));
  assert_int_equal(out.dtype, DRT_DTYPE_INT8);
  assert_memory_equal(out.data, ((int8_t[]){-128, 5, 0, 7, 127}), 5);
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_NEG, 13, &in, 1, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((int8_t[]){-128, 5, 0, -7, -127}), 5);
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_SIGN, 13, &in, 1, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((int8_t[]){-1, -1, 0, 1, 1}), 5);
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_RELU, 14, &in, 1, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((int8_t[]){0, 0, 0, 7, 127}), 5);
  free(out.data);

  int64_t x64[5] = {INT64_MIN, -3000000000LL, 0, 5, INT64_MAX};
  in = in_t(DRT_DTYPE_INT64, s, x64);
  DRT_ASSERT_OK(run_node(DRT_OP_ABS, 13, &in, 1, 1, NULL, 0, &out));
  const int64_t *o = out.data;
  assert_true(o[0] == INT64_MIN && o[1] == 3000000000LL && o[2] == 0 && o[3] == 5 && o[4] == INT64_MAX);
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_NEG, 13, &in, 1, 1, NULL, 0, &out));
  o = out.data;
  assert_true(o[1] == 3000000000LL && o[3] == -5 && o[4] == -INT64_MAX);
  free(out.data);

  int32_t x32[5] = {-7, -1, 0, 1, 9};
  in = in_t(DRT_DTYPE_INT32, s, x32);
  DRT_ASSERT_OK(run_node(DRT_OP_SIGN, 13, &in, 1, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((int32_t[]){-1, -1, 0, 1, 1}), 20);
  free(out.data);

  uint8_t xu[5] = {0, 1, 128, 200, 255};
  in = in_t(DRT_DTYPE_UINT8, s, xu);
  DRT_ASSERT_OK(run_node(DRT_OP_ABS, 13, &in, 1, 1, NULL, 0, &out));
  assert_memory_equal(out.data, xu, 5);
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_SIGN, 13, &in, 1, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((uint8_t[]){0, 1, 1, 1, 1}), 5);
  free(out.data);
  /* Neg is not defined for unsigned types */
  DRT_ASSERT_ERROR(run_node(DRT_OP_NEG, 13, &in, 1, 1, NULL, 0, &out), DRT_STATUS_UNSUPPORTED, "uint8");
}

/* ---- binary ops with broadcasting ----------------------------------------------------- */

typedef struct bshape {
  drt_shape a, b, y;
} bshape;

static double ref_bin(drt_op op, double a, double b) {
  switch (op) {
    case DRT_OP_ADD: return a + b;
    case DRT_OP_SUB: return a - b;
    case DRT_OP_MUL: return a * b;
    case DRT_OP_DIV: return a / b;
    case DRT_OP_POW: return pow(a, b);
    case DRT_OP_MAX: return a > b ? a : b;
    case DRT_OP_MIN: return a < b ? a : b;
    default: return 0;
  }
}

static void test_binary_broadcast_f32(void **state) {
  (void)state;
  const bshape shapes[] = {
      {drt_test_shape(2, (int64_t[]){5, 7}), drt_test_shape(2, (int64_t[]){5, 7}), drt_test_shape(2, (int64_t[]){5, 7})},
      {drt_test_shape(2, (int64_t[]){5, 7}), drt_test_shape(0, NULL), drt_test_shape(2, (int64_t[]){5, 7})},
      {drt_test_shape(0, NULL), drt_test_shape(2, (int64_t[]){5, 7}), drt_test_shape(2, (int64_t[]){5, 7})},
      {drt_test_shape(2, (int64_t[]){5, 7}), drt_test_shape(2, (int64_t[]){1, 7}), drt_test_shape(2, (int64_t[]){5, 7})},
      {drt_test_shape(2, (int64_t[]){5, 1}), drt_test_shape(2, (int64_t[]){5, 7}), drt_test_shape(2, (int64_t[]){5, 7})},
      {drt_test_shape(4, (int64_t[]){2, 3, 4, 5}), drt_test_shape(2, (int64_t[]){4, 1}),
       drt_test_shape(4, (int64_t[]){2, 3, 4, 5})},
      {drt_test_shape(3, (int64_t[]){3, 1, 5}), drt_test_shape(3, (int64_t[]){1, 4, 1}),
       drt_test_shape(3, (int64_t[]){3, 4, 5})},
      {drt_test_shape(1, (int64_t[]){6}), drt_test_shape(3, (int64_t[]){2, 1, 6}), drt_test_shape(3, (int64_t[]){2, 1, 6})},
      {drt_test_shape(1, (int64_t[]){1}), drt_test_shape(1, (int64_t[]){1}), drt_test_shape(1, (int64_t[]){1})},
      {drt_test_shape(2, (int64_t[]){0, 3}), drt_test_shape(1, (int64_t[]){3}), drt_test_shape(2, (int64_t[]){0, 3})},
  };
  const drt_op ops[] = {DRT_OP_ADD, DRT_OP_SUB, DRT_OP_MUL, DRT_OP_DIV, DRT_OP_POW, DRT_OP_MAX, DRT_OP_MIN};
  drt_test_rng rng = {7};
  for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
    const bshape *bs = &shapes[si];
    int64_t na = drt_shape_numel(&bs->a), nb = drt_shape_numel(&bs->b), ny = drt_shape_numel(&bs->y);
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
      float *a = rand_f32(&rng, (size_t)na + 1, 0.5f, 3), *b = rand_f32(&rng, (size_t)nb + 1, -2, 2);
      if (ops[k] != DRT_OP_POW)
        for (int64_t i = 0; i < na; i++) a[i] -= 1.75f;
      float *ref = malloc((size_t)(ny + 1) * sizeof *ref);
      for (int64_t i = 0; i < ny; i++)
        ref[i] = (float)ref_bin(ops[k], a[bcast_index(&bs->a, &bs->y, i)], b[bcast_index(&bs->b, &bs->y, i)]);
      op_in ins[2] = {in_t(DRT_DTYPE_FLOAT32, bs->a, a), in_t(DRT_DTYPE_FLOAT32, bs->b, b)};
      drt_tensor out;
      DRT_ASSERT_OK(run_node(ops[k], 15, ins, 2, 1, NULL, 0, &out));
      assert_int_equal(out.dtype, DRT_DTYPE_FLOAT32);
      assert_true(drt_shape_equal(&out.shape, &bs->y));
      double err = ny ? drt_test_rel_l2(out.data, ref, (size_t)ny) : 0;
      if (err > 1e-6) print_error("shape case %zu op %s: rel err %g\n", si, drt_op_name(ops[k]), err);
      assert_true(err <= 1e-6);
      free(out.data);
      free(a);
      free(b);
      free(ref);
    }
  }
}

/* The broadcast engine split across a thread pool at arbitrary chunk boundaries, with a
 * shape whose dims cannot all be coalesced. */
static void test_broadcast_parallel(void **state) {
  (void)state;
  drt_threadpool *pool;
  DRT_ASSERT_OK(drt_threadpool_create(3, &pool));
  drt_cpu_ctx ctx = {pool, 3};
  drt_shape sa = drt_test_shape(4, (int64_t[]){3, 1, 97, 61}), sb = drt_test_shape(3, (int64_t[]){7, 97, 1});
  drt_shape sy = drt_test_shape(4, (int64_t[]){3, 7, 97, 61});
  int64_t na = drt_shape_numel(&sa), nb = drt_shape_numel(&sb), ny = drt_shape_numel(&sy);
  drt_test_rng rng = {99};
  float *a = rand_f32(&rng, (size_t)na, -3, 3), *b = rand_f32(&rng, (size_t)nb, -3, 3);
  float *ref = malloc((size_t)ny * sizeof *ref);
  for (int64_t i = 0; i < ny; i++) ref[i] = a[bcast_index(&sa, &sy, i)] * b[bcast_index(&sb, &sy, i)];
  op_in ins[2] = {in_t(DRT_DTYPE_FLOAT32, sa, a), in_t(DRT_DTYPE_FLOAT32, sb, b)};
  drt_tensor out;
  DRT_ASSERT_OK(run_node_ctx(&ctx, DRT_OP_MUL, 14, ins, 2, 1, NULL, 0, &out));
  assert_true(drt_test_rel_l2(out.data, ref, (size_t)ny) == 0);
  free(out.data);
  /* a large unary op on the pool too */
  op_in in1 = in_t(DRT_DTYPE_FLOAT32, sa, a);
  DRT_ASSERT_OK(run_node_ctx(&ctx, DRT_OP_SIGMOID, 13, &in1, 1, 1, NULL, 0, &out));
  for (int64_t i = 0; i < na; i++) ref[i] = (float)(1.0 / (1.0 + exp(-(double)a[i])));
  assert_true(drt_test_rel_l2(out.data, ref, (size_t)na) <= 1e-6);
  free(out.data);
  free(a);
  free(b);
  free(ref);
  drt_threadpool_destroy(pool);
}

static void test_int_arith(void **state) {
  (void)state;
  drt_shape s = drt_test_shape(1, (int64_t[]){8});
  int32_t a[8] = {INT32_MAX, -7, 7, -7, INT32_MIN, 5, 0, 9};
  int32_t b[8] = {1, 2, -2, -2, -1, 0, 3, 4};
  op_in ins[2] = {in_t(DRT_DTYPE_INT32, s, a), in_t(DRT_DTYPE_INT32, s, b)};
  drt_tensor out;
  DRT_ASSERT_OK(run_node(DRT_OP_ADD, 14, ins, 2, 1, NULL, 0, &out));
  assert_int_equal(out.dtype, DRT_DTYPE_INT32);
  const int32_t *o = out.data;
  assert_true(o[0] == INT32_MIN && o[1] == -5 && o[2] == 5 && o[7] == 13); /* wraps */
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_DIV, 14, ins, 2, 1, NULL, 0, &out));
  /* truncation toward zero; x / 0 = 0; INT_MIN / -1 wraps */
  assert_memory_equal(out.data, ((int32_t[]){INT32_MAX, -3, -3, 3, INT32_MIN, 0, 0, 2}), 32);
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_MOD, 13, ins, 2, 1, NULL, 0, &out));
  /* fmod=0: the result takes the divisor's sign */
  assert_memory_equal(out.data, ((int32_t[]){0, 1, -1, -1, 0, 0, 0, 1}), 32);
  free(out.data);
  drt_attr fm = attr_i("fmod", 1);
  DRT_ASSERT_OK(run_node(DRT_OP_MOD, 13, ins, 2, 1, &fm, 1, &out));
  /* fmod=1: the result takes the dividend's sign */
  assert_memory_equal(out.data, ((int32_t[]){0, -1, 1, -1, 0, 0, 0, 1}), 32);
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_MUL, 14, ins, 2, 1, NULL, 0, &out));
  o = out.data;
  assert_true(o[0] == INT32_MAX && o[1] == -14 && o[4] == INT32_MIN);
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_SUB, 14, ins, 2, 1, NULL, 0, &out));
  o = out.data;
  assert_true(o[0] == INT32_MAX - 1 && o[4] == INT32_MIN + 1 && o[1] == -9);
  free(out.data);

  /* uint16 multiply overflows int if done naively: 65535 * 65535 mod 2^16 = 1 */
  uint16_t ua[3] = {65535, 300, 7}, ub[1] = {65535};
  op_in uins[2] = {in_t(DRT_DTYPE_UINT16, drt_test_shape(1, (int64_t[]){3}), ua),
                   in_t(DRT_DTYPE_UINT16, drt_test_shape(0, NULL), ub)};
  DRT_ASSERT_OK(run_node(DRT_OP_MUL, 14, uins, 2, 1, NULL, 0, &out));
  const uint16_t *uo = out.data;
  assert_true(uo[0] == 1 && uo[1] == (uint16_t)(300u * 65535u) && uo[2] == (uint16_t)(7u * 65535u));
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_DIV, 14, uins, 2, 1, NULL, 0, &out));
  uo = out.data;
  assert_true(uo[0] == 1 && uo[1] == 0 && uo[2] == 0);
  free(out.data);

  /* int8 and int64 Mod, uint8 Max/Min, with broadcasting of a row */
  int8_t a8[6] = {-128, 100, -3, 3, 5, -5}, b8[2] = {-3, 7};
  op_in i8ins[2] = {in_t(DRT_DTYPE_INT8, drt_test_shape(2, (int64_t[]){3, 2}), a8),
                    in_t(DRT_DTYPE_INT8, drt_test_shape(1, (int64_t[]){2}), b8)};
  DRT_ASSERT_OK(run_node(DRT_OP_MOD, 13, i8ins, 2, 1, NULL, 0, &out));
  /* python: -128 % -3 = -2, 100 % 7 = 2, -3 % -3 = 0, 3 % 7 = 3, 5 % -3 = -1, -5 % 7 = 2 */
  assert_memory_equal(out.data, ((int8_t[]){-2, 2, 0, 3, -1, 2}), 6);
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_ADD, 14, i8ins, 2, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((int8_t[]){125, 107, -6, 10, 2, 2}), 6); /* -131 wraps */
  free(out.data);

  int64_t a64[4] = {-9000000000LL, 9000000000LL, -1, 10}, b64[4] = {4000000000LL, -4000000000LL, 3, -3};
  op_in i64ins[2] = {in_t(DRT_DTYPE_INT64, drt_test_shape(1, (int64_t[]){4}), a64),
                     in_t(DRT_DTYPE_INT64, drt_test_shape(1, (int64_t[]){4}), b64)};
  DRT_ASSERT_OK(run_node(DRT_OP_MOD, 13, i64ins, 2, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((int64_t[]){3000000000LL, -3000000000LL, 2, -2}), 32);
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_DIV, 14, i64ins, 2, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((int64_t[]){-2, -2, 0, -3}), 32);
  free(out.data);

  uint8_t u8a[4] = {0, 200, 17, 255}, u8b[4] = {1, 100, 18, 0};
  op_in u8ins[2] = {in_t(DRT_DTYPE_UINT8, drt_test_shape(1, (int64_t[]){4}), u8a),
                    in_t(DRT_DTYPE_UINT8, drt_test_shape(1, (int64_t[]){4}), u8b)};
  DRT_ASSERT_OK(run_node(DRT_OP_MAX, 13, u8ins, 2, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((uint8_t[]){1, 200, 18, 255}), 4);
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_MIN, 13, u8ins, 2, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((uint8_t[]){0, 100, 17, 0}), 4);
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_SUB, 14, u8ins, 2, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((uint8_t[]){255, 100, 255, 255}), 4);
  free(out.data);
}

static void test_float_mod(void **state) {
  (void)state;
  float a[4] = {-7.5f, 7.5f, 6.0f, -6.0f}, b[4] = {2.0f, -2.0f, 3.0f, 3.0f};
  op_in ins[2] = {in_t(DRT_DTYPE_FLOAT32, drt_test_shape(1, (int64_t[]){4}), a),
                  in_t(DRT_DTYPE_FLOAT32, drt_test_shape(1, (int64_t[]){4}), b)};
  drt_tensor out;
  drt_attr fm = attr_i("fmod", 1);
  DRT_ASSERT_OK(run_node(DRT_OP_MOD, 13, ins, 2, 1, &fm, 1, &out));
  const float *o = out.data;
  assert_true(o[0] == -1.5f && o[1] == 1.5f && o[2] == 0.0f && o[3] == 0.0f && signbit(o[3]));
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_MOD, 13, ins, 2, 1, NULL, 0, &out));
  o = out.data;
  assert_true(o[0] == 0.5f && o[1] == -0.5f && o[2] == 0.0f && o[3] == 0.0f);
  free(out.data);
  double ad[2] = {-7.5, 1e300}, bd[1] = {2.0};
  op_in dins[2] = {in_t(DRT_DTYPE_FLOAT64, drt_test_shape(1, (int64_t[]){2}), ad),
                   in_t(DRT_DTYPE_FLOAT64, drt_test_shape(0, NULL), bd)};
  DRT_ASSERT_OK(run_node(DRT_OP_MOD, 13, dins, 2, 1, &fm, 1, &out));
  const double *od = out.data;
  assert_true(od[0] == -1.5 && od[1] == fmod(1e300, 2.0));
  free(out.data);
}

static void test_pow_mixed(void **state) {
  (void)state;
  drt_shape s4 = drt_test_shape(1, (int64_t[]){4}), s0 = drt_test_shape(0, NULL);
  float x[4] = {-2.0f, 1.5f, 3.0f, 0.25f};
  drt_tensor out;
  /* float base, int64 scalar exponent 2 and 3 (fast paths), -1 (generic) */
  const int64_t exps[3] = {2, 3, -1};
  for (int k = 0; k < 3; k++) {
    op_in ins[2] = {in_t(DRT_DTYPE_FLOAT32, s4, x), in_t(DRT_DTYPE_INT64, s0, &exps[k])};
    DRT_ASSERT_OK(run_node(DRT_OP_POW, 15, ins, 2, 1, NULL, 0, &out));
    assert_int_equal(out.dtype, DRT_DTYPE_FLOAT32);
    const float *o = out.data;
    for (int i = 0; i < 4; i++) assert_true(fabsf(o[i] - powf(x[i], (float)exps[k])) <= 1e-6f * fabsf(o[i]));
    free(out.data);
  }
  /* float32 base, float64 exponent row */
  double ed[4] = {0.5, 2.0, -1.5, 3.0};
  float xp[4] = {4.0f, 1.5f, 3.0f, 0.25f};
  op_in fins[2] = {in_t(DRT_DTYPE_FLOAT32, s4, xp), in_t(DRT_DTYPE_FLOAT64, s4, ed)};
  DRT_ASSERT_OK(run_node(DRT_OP_POW, 15, fins, 2, 1, NULL, 0, &out));
  const float *of = out.data;
  for (int i = 0; i < 4; i++) assert_true(fabs(of[i] - pow(xp[i], ed[i])) <= 1e-6 * fabs(pow(xp[i], ed[i])));
  free(out.data);
  /* int32 base, int32 exponents: exact integer power, wrapping like numpy */
  int32_t ib[4] = {3, -2, 7, 2}, ie[4] = {4, 3, 0, 31};
  op_in iins[2] = {in_t(DRT_DTYPE_INT32, s4, ib), in_t(DRT_DTYPE_INT32, s4, ie)};
  DRT_ASSERT_OK(run_node(DRT_OP_POW, 15, iins, 2, 1, NULL, 0, &out));
  assert_int_equal(out.dtype, DRT_DTYPE_INT32);
  assert_memory_equal(out.data, ((int32_t[]){81, -8, 1, INT32_MIN}), 16);
  free(out.data);
  /* int64 base, float exponent: computed in double and truncated */
  int64_t lb[4] = {4, 10, 2, 9};
  float fe[1] = {0.5f};
  op_in lins[2] = {in_t(DRT_DTYPE_INT64, s4, lb), in_t(DRT_DTYPE_FLOAT32, s0, fe)};
  DRT_ASSERT_OK(run_node(DRT_OP_POW, 15, lins, 2, 1, NULL, 0, &out));
  assert_int_equal(out.dtype, DRT_DTYPE_INT64);
  assert_memory_equal(out.data, ((int64_t[]){2, 3, 1, 3}), 32);
  free(out.data);
  /* Pow on int8 base is not in the spec */
  int8_t b8[4] = {1, 2, 3, 4};
  op_in bad[2] = {in_t(DRT_DTYPE_INT8, s4, b8), in_t(DRT_DTYPE_INT8, s4, b8)};
  DRT_ASSERT_ERROR(run_node(DRT_OP_POW, 15, bad, 2, 1, NULL, 0, &out), DRT_STATUS_UNSUPPORTED, "int8");
}

static void test_compare_and_logic(void **state) {
  (void)state;
  drt_shape s23 = drt_test_shape(2, (int64_t[]){2, 3}), s3 = drt_test_shape(1, (int64_t[]){3});
  int64_t a[6] = {1, 5, 3, -2, 5, 9}, b[3] = {1, 4, 9};
  op_in ins[2] = {in_t(DRT_DTYPE_INT64, s23, a), in_t(DRT_DTYPE_INT64, s3, b)};
  const struct {
    drt_op op;
    uint8_t want[6];
  } cmp[] = {
      {DRT_OP_EQUAL, {1, 0, 0, 0, 0, 1}},        {DRT_OP_LESS, {0, 0, 1, 1, 0, 0}},
      {DRT_OP_LESS_OR_EQUAL, {1, 0, 1, 1, 0, 1}}, {DRT_OP_GREATER, {0, 1, 0, 0, 1, 0}},
      {DRT_OP_GREATER_OR_EQUAL, {1, 1, 0, 0, 1, 1}},
  };
  drt_tensor out;
  for (size_t k = 0; k < sizeof cmp / sizeof cmp[0]; k++) {
    DRT_ASSERT_OK(run_node(cmp[k].op, 16, ins, 2, 1, NULL, 0, &out));
    assert_int_equal(out.dtype, DRT_DTYPE_BOOL);
    assert_shape(&out.shape, 2, (int64_t[]){2, 3});
    assert_memory_equal(out.data, cmp[k].want, 6);
    free(out.data);
  }
  /* float with NaN: every comparison but != is false */
  float fa[3] = {NAN, 1.0f, 2.0f}, fb[1] = {1.0f};
  op_in fins[2] = {in_t(DRT_DTYPE_FLOAT32, s3, fa), in_t(DRT_DTYPE_FLOAT32, drt_test_shape(0, NULL), fb)};
  DRT_ASSERT_OK(run_node(DRT_OP_EQUAL, 19, fins, 2, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((uint8_t[]){0, 1, 0}), 3);
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_GREATER_OR_EQUAL, 16, fins, 2, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((uint8_t[]){0, 1, 1}), 3);
  free(out.data);
  /* bool Equal */
  uint8_t ba[4] = {0, 0, 1, 1}, bb[4] = {0, 1, 0, 1};
  drt_shape s4 = drt_test_shape(1, (int64_t[]){4});
  op_in bins[2] = {in_t(DRT_DTYPE_BOOL, s4, ba), in_t(DRT_DTYPE_BOOL, s4, bb)};
  DRT_ASSERT_OK(run_node(DRT_OP_EQUAL, 19, bins, 2, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((uint8_t[]){1, 0, 0, 1}), 4);
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_AND, 7, bins, 2, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((uint8_t[]){0, 0, 0, 1}), 4);
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_OR, 7, bins, 2, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((uint8_t[]){0, 1, 1, 1}), 4);
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_XOR, 7, bins, 2, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((uint8_t[]){0, 1, 1, 0}), 4);
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_NOT, 1, bins, 1, 1, NULL, 0, &out));
  assert_int_equal(out.dtype, DRT_DTYPE_BOOL);
  assert_memory_equal(out.data, ((uint8_t[]){1, 1, 0, 0}), 4);
  free(out.data);
  /* logical ops broadcast a column against a row */
  uint8_t col[2] = {0, 1}, row[3] = {1, 0, 1};
  op_in lins[2] = {in_t(DRT_DTYPE_BOOL, drt_test_shape(2, (int64_t[]){2, 1}), col), in_t(DRT_DTYPE_BOOL, s3, row)};
  DRT_ASSERT_OK(run_node(DRT_OP_OR, 7, lins, 2, 1, NULL, 0, &out));
  assert_shape(&out.shape, 2, (int64_t[]){2, 3});
  assert_memory_equal(out.data, ((uint8_t[]){1, 0, 1, 1, 1, 1}), 6);
  free(out.data);
  /* And on floats is a dtype error */
  DRT_ASSERT_ERROR(run_node(DRT_OP_AND, 7, fins, 2, 1, NULL, 0, &out), DRT_STATUS_UNSUPPORTED, "float32");
}

static void test_variadic(void **state) {
  (void)state;
  drt_shape sa = drt_test_shape(2, (int64_t[]){2, 3}), sb = drt_test_shape(1, (int64_t[]){3}),
            sc = drt_test_shape(2, (int64_t[]){2, 1});
  float a[6] = {1, -2, 3, 4, NAN, -6}, b[3] = {0.5f, 0.25f, -1}, c[2] = {2, -3};
  op_in ins[3] = {in_t(DRT_DTYPE_FLOAT32, sa, a), in_t(DRT_DTYPE_FLOAT32, sb, b), in_t(DRT_DTYPE_FLOAT32, sc, c)};
  drt_tensor out;
  const drt_op ops[] = {DRT_OP_SUM, DRT_OP_MEAN, DRT_OP_MAX, DRT_OP_MIN};
  for (size_t k = 0; k < 4; k++) {
    DRT_ASSERT_OK(run_node(ops[k], 13, ins, 3, 1, NULL, 0, &out));
    assert_shape(&out.shape, 2, (int64_t[]){2, 3});
    const float *o = out.data;
    for (int i = 0; i < 6; i++) {
      double x = a[i], y = b[i % 3], z = c[i / 3], r;
      switch (ops[k]) {
        case DRT_OP_SUM: r = x + y + z; break;
        case DRT_OP_MEAN: r = (x + y + z) / 3; break;
        case DRT_OP_MAX: r = isnan(x) ? NAN : fmax(fmax(x, y), z); break;
        default: r = isnan(x) ? NAN : fmin(fmin(x, y), z); break;
      }
      if (isnan(r)) {
        assert_true(isnan(o[i]));
      } else {
        assert_true(fabs(o[i] - r) <= 1e-6);
      }
    }
    free(out.data);
  }
  /* NaN in a later input propagates too */
  float d[3] = {NAN, 0, 0};
  op_in nins[2] = {in_t(DRT_DTYPE_FLOAT32, sb, b), in_t(DRT_DTYPE_FLOAT32, sb, d)};
  DRT_ASSERT_OK(run_node(DRT_OP_MAX, 13, nins, 2, 1, NULL, 0, &out));
  assert_true(isnan(((float *)out.data)[0]));
  free(out.data);
  /* single input: a copy */
  DRT_ASSERT_OK(run_node(DRT_OP_SUM, 13, ins + 1, 1, 1, NULL, 0, &out));
  assert_memory_equal(out.data, b, sizeof b);
  free(out.data);
  /* int32 Max over 3 inputs with a scalar */
  int32_t ia[4] = {1, 9, -5, 3}, ib[1] = {2}, ic[4] = {0, 0, 7, 0};
  drt_shape s4 = drt_test_shape(1, (int64_t[]){4});
  op_in iins[3] = {in_t(DRT_DTYPE_INT32, s4, ia), in_t(DRT_DTYPE_INT32, drt_test_shape(0, NULL), ib),
                   in_t(DRT_DTYPE_INT32, s4, ic)};
  DRT_ASSERT_OK(run_node(DRT_OP_MAX, 13, iins, 3, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((int32_t[]){2, 9, 7, 3}), 16);
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_MIN, 13, iins, 3, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((int32_t[]){0, 0, -5, 0}), 16);
  free(out.data);
  /* float64 Mean */
  double da[2] = {1.0, 1e-17}, db[2] = {2.0, 2e-17};
  drt_shape s2 = drt_test_shape(1, (int64_t[]){2});
  op_in dins[2] = {in_t(DRT_DTYPE_FLOAT64, s2, da), in_t(DRT_DTYPE_FLOAT64, s2, db)};
  DRT_ASSERT_OK(run_node(DRT_OP_MEAN, 13, dins, 2, 1, NULL, 0, &out));
  assert_true(((double *)out.data)[0] == 1.5 && ((double *)out.data)[1] == 1.5e-17);
  free(out.data);
  /* Mean on integers is not in the spec */
  DRT_ASSERT_ERROR(run_node(DRT_OP_MEAN, 13, iins, 3, 1, NULL, 0, &out), DRT_STATUS_UNSUPPORTED, "int32");
}

static void test_where(void **state) {
  (void)state;
  drt_shape sc = drt_test_shape(2, (int64_t[]){2, 1}), sx = drt_test_shape(1, (int64_t[]){3}),
            sy = drt_test_shape(2, (int64_t[]){2, 3});
  uint8_t c[2] = {1, 0};
  float x[3] = {1, 2, 3}, y[6] = {10, 20, 30, 40, 50, 60};
  op_in ins[3] = {in_t(DRT_DTYPE_BOOL, sc, c), in_t(DRT_DTYPE_FLOAT32, sx, x), in_t(DRT_DTYPE_FLOAT32, sy, y)};
  drt_tensor out;
  DRT_ASSERT_OK(run_node(DRT_OP_WHERE, 16, ins, 3, 1, NULL, 0, &out));
  assert_int_equal(out.dtype, DRT_DTYPE_FLOAT32);
  assert_shape(&out.shape, 2, (int64_t[]){2, 3});
  assert_memory_equal(out.data, ((float[]){1, 2, 3, 40, 50, 60}), 24);
  free(out.data);
  /* full-shape condition, int64 scalar x, int64 y */
  uint8_t c6[6] = {1, 0, 1, 0, 0, 1};
  int64_t xs[1] = {-1}, y6[6] = {1, 2, 3, 4, 5, 6};
  op_in iins[3] = {in_t(DRT_DTYPE_BOOL, sy, c6), in_t(DRT_DTYPE_INT64, drt_test_shape(0, NULL), xs),
                   in_t(DRT_DTYPE_INT64, sy, y6)};
  DRT_ASSERT_OK(run_node(DRT_OP_WHERE, 16, iins, 3, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((int64_t[]){-1, 2, -1, 4, 5, -1}), 48);
  free(out.data);
  /* bool and float16 payloads (copied natively, no float32 round trip) */
  uint16_t hx[6] = {0x3c00, 0x4000, 0x4200, 0x4400, 0x4500, 0x4600}, hy[1] = {0x7e00};
  op_in hins[3] = {in_t(DRT_DTYPE_BOOL, sy, c6), in_t(DRT_DTYPE_FLOAT16, sy, hx),
                   in_t(DRT_DTYPE_FLOAT16, drt_test_shape(1, (int64_t[]){1}), hy)};
  DRT_ASSERT_OK(run_node(DRT_OP_WHERE, 16, hins, 3, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((uint16_t[]){0x3c00, 0x7e00, 0x4200, 0x7e00, 0x7e00, 0x4600}), 12);
  free(out.data);
  op_in bins[3] = {in_t(DRT_DTYPE_BOOL, sy, c6), in_t(DRT_DTYPE_BOOL, sy, c6), in_t(DRT_DTYPE_BOOL, sc, c)};
  DRT_ASSERT_OK(run_node(DRT_OP_WHERE, 16, bins, 3, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((uint8_t[]){1, 1, 1, 0, 0, 1}), 6);
  free(out.data);
  /* condition must be bool; x and y must agree */
  op_in bad[3] = {in_t(DRT_DTYPE_FLOAT32, sx, x), in_t(DRT_DTYPE_FLOAT32, sx, x), in_t(DRT_DTYPE_FLOAT32, sx, x)};
  DRT_ASSERT_ERROR(run_node(DRT_OP_WHERE, 16, bad, 3, 1, NULL, 0, &out), DRT_STATUS_UNSUPPORTED, "input 0");
  op_in bad2[3] = {in_t(DRT_DTYPE_BOOL, sc, c), in_t(DRT_DTYPE_FLOAT32, sx, x), in_t(DRT_DTYPE_INT64, sy, y6)};
  DRT_ASSERT_ERROR(run_node(DRT_OP_WHERE, 16, bad2, 3, 1, NULL, 0, &out), DRT_STATUS_INVALID_ARGUMENT, "must match");
  op_in bad3[3] = {in_t(DRT_DTYPE_BOOL, drt_test_shape(1, (int64_t[]){2}), c), in_t(DRT_DTYPE_FLOAT32, sx, x),
                   in_t(DRT_DTYPE_FLOAT32, sy, y)};
  DRT_ASSERT_ERROR(run_node(DRT_OP_WHERE, 16, bad3, 3, 1, NULL, 0, &out), DRT_STATUS_INVALID_ARGUMENT,
                   "cannot be broadcast");
}

static void test_clip(void **state) {
  (void)state;
  drt_shape s = drt_test_shape(1, (int64_t[]){5}), s0 = drt_test_shape(0, NULL);
  float x[5] = {-3, -0.5f, 0.25f, 2, NAN};
  float lo = -1, hi = 1;
  op_in none = {DRT_DTYPE_UNDEFINED, s0, NULL, false};
  drt_tensor out;
  op_in both[3] = {in_t(DRT_DTYPE_FLOAT32, s, x), in_t(DRT_DTYPE_FLOAT32, s0, &lo), in_t(DRT_DTYPE_FLOAT32, s0, &hi)};
  DRT_ASSERT_OK(run_node(DRT_OP_CLIP, 13, both, 3, 1, NULL, 0, &out));
  const float *o = out.data;
  assert_true(o[0] == -1 && o[1] == -0.5f && o[2] == 0.25f && o[3] == 1 && isnan(o[4]));
  free(out.data);
  op_in max_only[3] = {in_t(DRT_DTYPE_FLOAT32, s, x), none, in_t(DRT_DTYPE_FLOAT32, s0, &hi)};
  DRT_ASSERT_OK(run_node(DRT_OP_CLIP, 13, max_only, 3, 1, NULL, 0, &out));
  o = out.data;
  assert_true(o[0] == -3 && o[3] == 1);
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_CLIP, 13, both, 2, 1, NULL, 0, &out)); /* min only */
  o = out.data;
  assert_true(o[0] == -1 && o[3] == 2);
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_CLIP, 13, both, 1, 1, NULL, 0, &out)); /* no bounds */
  assert_memory_equal(out.data, x, 16);
  free(out.data);
  /* min > max: everything becomes max */
  op_in swapped[3] = {in_t(DRT_DTYPE_FLOAT32, s, x), in_t(DRT_DTYPE_FLOAT32, s0, &hi), in_t(DRT_DTYPE_FLOAT32, s0, &lo)};
  DRT_ASSERT_OK(run_node(DRT_OP_CLIP, 13, swapped, 3, 1, NULL, 0, &out));
  o = out.data;
  assert_true(o[0] == -1 && o[1] == -1 && o[2] == -1 && o[3] == -1);
  free(out.data);
  /* opset 6: float attributes */
  drt_attr at[2] = {attr_f("min", -0.75f), attr_f("max", 0.5f)};
  DRT_ASSERT_OK(run_node(DRT_OP_CLIP, 6, both, 1, 1, at, 2, &out));
  o = out.data;
  assert_true(o[0] == -0.75f && o[1] == -0.5f && o[2] == 0.25f && o[3] == 0.5f);
  free(out.data);
  /* integers, bounds given as constants */
  int32_t xi[5] = {-100, -5, 0, 5, 100}, ilo = -10, ihi = 10;
  op_in iins[3] = {in_t(DRT_DTYPE_INT32, s, xi), {DRT_DTYPE_INT32, s0, &ilo, true}, {DRT_DTYPE_INT32, s0, &ihi, true}};
  DRT_ASSERT_OK(run_node(DRT_OP_CLIP, 13, iins, 3, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((int32_t[]){-10, -5, 0, 5, 10}), 20);
  free(out.data);
  uint64_t xu[2] = {UINT64_MAX, 3}, uhi = UINT64_MAX - 1;
  op_in uins[3] = {in_t(DRT_DTYPE_UINT64, drt_test_shape(1, (int64_t[]){2}), xu), none,
                   in_t(DRT_DTYPE_UINT64, s0, &uhi)};
  DRT_ASSERT_OK(run_node(DRT_OP_CLIP, 13, uins, 3, 1, NULL, 0, &out));
  assert_true(((uint64_t *)out.data)[0] == UINT64_MAX - 1 && ((uint64_t *)out.data)[1] == 3);
  free(out.data);
  /* bounds must be scalars of the data dtype */
  float two[2] = {0, 1};
  op_in vec[2] = {in_t(DRT_DTYPE_FLOAT32, s, x), in_t(DRT_DTYPE_FLOAT32, drt_test_shape(1, (int64_t[]){2}), two)};
  DRT_ASSERT_ERROR(run_node(DRT_OP_CLIP, 13, vec, 2, 1, NULL, 0, &out), DRT_STATUS_INVALID_ARGUMENT, "scalar");
  op_in mixed[2] = {in_t(DRT_DTYPE_FLOAT32, s, x), in_t(DRT_DTYPE_INT32, s0, &ilo)};
  DRT_ASSERT_ERROR(run_node(DRT_OP_CLIP, 13, mixed, 2, 1, NULL, 0, &out), DRT_STATUS_INVALID_ARGUMENT, "must match");
}

static void test_cast(void **state) {
  (void)state;
  drt_shape s = drt_test_shape(1, (int64_t[]){6});
  float x[6] = {1.9f, -1.9f, 0.0f, NAN, 300.0f, -0.0f};
  op_in in = in_t(DRT_DTYPE_FLOAT32, s, x);
  drt_tensor out;
  drt_attr to = attr_i("to", DRT_DTYPE_INT32);
  DRT_ASSERT_OK(run_node(DRT_OP_CAST, 13, &in, 1, 1, &to, 1, &out));
  assert_int_equal(out.dtype, DRT_DTYPE_INT32);
  const int32_t *oi = out.data;
  assert_true(oi[0] == 1 && oi[1] == -1 && oi[2] == 0 && oi[4] == 300);
  free(out.data);
  to = attr_i("to", DRT_DTYPE_BOOL);
  DRT_ASSERT_OK(run_node(DRT_OP_CAST, 13, &in, 1, 1, &to, 1, &out));
  assert_memory_equal(out.data, ((uint8_t[]){1, 1, 0, 1, 1, 0}), 6);
  free(out.data);
  to = attr_i("to", DRT_DTYPE_FLOAT16);
  DRT_ASSERT_OK(run_node(DRT_OP_CAST, 19, &in, 1, 1, &to, 1, &out));
  assert_int_equal(out.dtype, DRT_DTYPE_FLOAT16);
  const uint16_t *oh = out.data;
  assert_true(oh[2] == 0 && oh[5] == 0x8000 && drt_f16_to_f32(oh[4]) == 300.0f);
  free(out.data);
  /* float32 <-> float16/bfloat16 fast paths: round to nearest even, specials preserved */
  float xh[4] = {1.0f + 0x1p-11f, 1.0f + 0x1p-8f + 0x1p-9f, -INFINITY, 65504.0f};
  op_in inh = in_t(DRT_DTYPE_FLOAT32, drt_test_shape(1, (int64_t[]){4}), xh);
  to = attr_i("to", DRT_DTYPE_BFLOAT16);
  DRT_ASSERT_OK(run_node(DRT_OP_CAST, 13, &inh, 1, 1, &to, 1, &out));
  assert_memory_equal(out.data, ((uint16_t[]){0x3f80, 0x3f81, 0xff80, 0x4780}), 8);
  op_in back = in_t(DRT_DTYPE_BFLOAT16, out.shape, out.data);
  drt_tensor out2;
  to = attr_i("to", DRT_DTYPE_FLOAT32);
  DRT_ASSERT_OK(run_node(DRT_OP_CAST, 13, &back, 1, 1, &to, 1, &out2));
  assert_true(((float *)out2.data)[0] == 1.0f && ((float *)out2.data)[1] == 1.0f + 0x1p-7f &&
              ((float *)out2.data)[2] == -INFINITY && ((float *)out2.data)[3] == 65536.0f);
  free(out.data);
  free(out2.data);
  to = attr_i("to", DRT_DTYPE_FLOAT16);
  DRT_ASSERT_OK(run_node(DRT_OP_CAST, 13, &inh, 1, 1, &to, 1, &out));
  assert_memory_equal(out.data, ((uint16_t[]){0x3c00, 0x3c06, 0xfc00, 0x7bff}), 8);
  back = in_t(DRT_DTYPE_FLOAT16, out.shape, out.data);
  to = attr_i("to", DRT_DTYPE_FLOAT32);
  DRT_ASSERT_OK(run_node(DRT_OP_CAST, 13, &back, 1, 1, &to, 1, &out2));
  assert_true(((float *)out2.data)[1] == 1.0f + 0x1p-8f + 0x1p-9f && ((float *)out2.data)[3] == 65504.0f);
  free(out.data);
  free(out2.data);
  /* float64 -> int64 keeps every bit of a 2^53-range integer (no float32 round trip) */
  double xd[2] = {9007199254740991.0, -123456789012.0};
  op_in ind = in_t(DRT_DTYPE_FLOAT64, drt_test_shape(1, (int64_t[]){2}), xd);
  to = attr_i("to", DRT_DTYPE_INT64);
  DRT_ASSERT_OK(run_node(DRT_OP_CAST, 13, &ind, 1, 1, &to, 1, &out));
  assert_true(((int64_t *)out.data)[0] == 9007199254740991LL && ((int64_t *)out.data)[1] == -123456789012LL);
  free(out.data);
  /* int16 -> int8 discards the high bits; bool -> float is 0/1 */
  int16_t xs[2] = {200, -129};
  op_in in16 = in_t(DRT_DTYPE_INT16, drt_test_shape(1, (int64_t[]){2}), xs);
  to = attr_i("to", DRT_DTYPE_INT8);
  DRT_ASSERT_OK(run_node(DRT_OP_CAST, 13, &in16, 1, 1, &to, 1, &out));
  assert_memory_equal(out.data, ((int8_t[]){-56, 127}), 2);
  free(out.data);
  uint8_t xb[2] = {1, 0};
  op_in inb = in_t(DRT_DTYPE_BOOL, drt_test_shape(1, (int64_t[]){2}), xb);
  to = attr_i("to", DRT_DTYPE_FLOAT64);
  DRT_ASSERT_OK(run_node(DRT_OP_CAST, 13, &inb, 1, 1, &to, 1, &out));
  assert_true(((double *)out.data)[0] == 1.0 && ((double *)out.data)[1] == 0.0);
  free(out.data);
  /* CastLike takes the dtype of input 1 */
  int64_t like[1] = {0};
  op_in cl[2] = {in, in_t(DRT_DTYPE_INT64, drt_test_shape(0, NULL), like)};
  DRT_ASSERT_OK(run_node(DRT_OP_CAST_LIKE, 15, cl, 2, 1, NULL, 0, &out));
  assert_int_equal(out.dtype, DRT_DTYPE_INT64);
  assert_shape(&out.shape, 1, (int64_t[]){6});
  assert_true(((int64_t *)out.data)[1] == -1);
  free(out.data);
  /* errors */
  DRT_ASSERT_ERROR(run_node(DRT_OP_CAST, 13, &in, 1, 1, NULL, 0, &out), DRT_STATUS_INVALID_ARGUMENT, "'to'");
  to = attr_i("to", DRT_DTYPE_STRING);
  DRT_ASSERT_ERROR(run_node(DRT_OP_CAST, 13, &in, 1, 1, &to, 1, &out), DRT_STATUS_UNSUPPORTED, "string");
  to = attr_i("to", 14); /* complex64 */
  DRT_ASSERT_ERROR(run_node(DRT_OP_CAST, 19, &in, 1, 1, &to, 1, &out), DRT_STATUS_UNSUPPORTED, "14");
}

static void test_identity_dropout(void **state) {
  (void)state;
  drt_shape s = drt_test_shape(2, (int64_t[]){2, 2});
  double x[4] = {1.0 + 0x1p-40, -2, 3, 4};
  op_in in = in_t(DRT_DTYPE_FLOAT64, s, x);
  drt_tensor outs[2];
  DRT_ASSERT_OK(run_node(DRT_OP_IDENTITY, 16, &in, 1, 1, NULL, 0, outs));
  assert_memory_equal(outs[0].data, x, sizeof x);
  free(outs[0].data);
  int64_t xi[4] = {INT64_MAX, 1, 2, 3};
  op_in ini = in_t(DRT_DTYPE_INT64, s, xi);
  DRT_ASSERT_OK(run_node(DRT_OP_IDENTITY, 16, &ini, 1, 1, NULL, 0, outs));
  assert_memory_equal(outs[0].data, xi, sizeof xi);
  free(outs[0].data);

  float xf[4] = {1, 2, 3, 4};
  op_in inf = in_t(DRT_DTYPE_FLOAT32, s, xf);
  /* opset 13: output = input, mask = all true */
  DRT_ASSERT_OK(run_node(DRT_OP_DROPOUT, 13, &inf, 1, 2, NULL, 0, outs));
  assert_int_equal(outs[1].dtype, DRT_DTYPE_BOOL);
  assert_memory_equal(outs[0].data, xf, sizeof xf);
  assert_memory_equal(outs[1].data, ((uint8_t[]){1, 1, 1, 1}), 4);
  free_outs(outs, 2);
  /* opset 7: the mask has the data dtype */
  drt_attr ratio = attr_f("ratio", 0.3f);
  DRT_ASSERT_OK(run_node(DRT_OP_DROPOUT, 7, &inf, 1, 2, &ratio, 1, outs));
  assert_int_equal(outs[1].dtype, DRT_DTYPE_FLOAT32);
  assert_memory_equal(outs[1].data, ((float[]){1, 1, 1, 1}), 16);
  free_outs(outs, 2);
  /* training mode with ratio 0 is the identity; with ratio > 0 it is refused */
  float r0 = 0.0f, r5 = 0.5f;
  uint8_t yes = 1;
  drt_shape s0 = drt_test_shape(0, NULL);
  op_in tr0[3] = {inf, {DRT_DTYPE_FLOAT32, s0, &r0, true}, {DRT_DTYPE_BOOL, s0, &yes, true}};
  DRT_ASSERT_OK(run_node(DRT_OP_DROPOUT, 13, tr0, 3, 2, NULL, 0, outs));
  assert_memory_equal(outs[0].data, xf, sizeof xf);
  free_outs(outs, 2);
  op_in tr5[3] = {inf, {DRT_DTYPE_FLOAT32, s0, &r5, true}, {DRT_DTYPE_BOOL, s0, &yes, true}};
  DRT_ASSERT_ERROR(run_node(DRT_OP_DROPOUT, 13, tr5, 3, 1, NULL, 0, outs), DRT_STATUS_UNSUPPORTED, "training");
  /* training_mode only known at run time: the kernel refuses */
  op_in trr[3] = {inf, {DRT_DTYPE_FLOAT32, s0, &r5, true}, in_t(DRT_DTYPE_BOOL, s0, &yes)};
  DRT_ASSERT_ERROR(run_node(DRT_OP_DROPOUT, 13, trr, 3, 1, NULL, 0, outs), DRT_STATUS_UNSUPPORTED, "training");
}

static void test_prelu(void **state) {
  (void)state;
  drt_shape sx = drt_test_shape(4, (int64_t[]){2, 3, 2, 2}), ss = drt_test_shape(3, (int64_t[]){3, 1, 1});
  drt_test_rng rng = {5};
  float *x = rand_f32(&rng, 24, -2, 2);
  float slope[3] = {0.1f, 0.2f, 0.3f}, ref[24];
  for (int i = 0; i < 24; i++) ref[i] = x[i] < 0 ? x[i] * slope[(i / 4) % 3] : x[i];
  op_in ins[2] = {in_t(DRT_DTYPE_FLOAT32, sx, x), in_t(DRT_DTYPE_FLOAT32, ss, slope)};
  drt_tensor out;
  DRT_ASSERT_OK(run_node(DRT_OP_PRELU, 16, ins, 2, 1, NULL, 0, &out));
  assert_true(drt_shape_equal(&out.shape, &sx));
  assert_true(drt_test_rel_l2(out.data, ref, 24) == 0);
  free(out.data);
  int32_t xi[4] = {-4, 4, -6, 0}, si[1] = {3};
  op_in iins[2] = {in_t(DRT_DTYPE_INT32, drt_test_shape(1, (int64_t[]){4}), xi),
                   in_t(DRT_DTYPE_INT32, drt_test_shape(1, (int64_t[]){1}), si)};
  DRT_ASSERT_OK(run_node(DRT_OP_PRELU, 16, iins, 2, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((int32_t[]){-12, 4, -18, 0}), 16);
  free(out.data);
  /* before opset 7 a 1-D slope is per channel (axis 1); from opset 7 it broadcasts numpy-style */
  op_in legacy[2] = {in_t(DRT_DTYPE_FLOAT32, drt_test_shape(3, (int64_t[]){2, 3, 4}), x),
                     in_t(DRT_DTYPE_FLOAT32, drt_test_shape(1, (int64_t[]){3}), slope)};
  DRT_ASSERT_OK(run_node(DRT_OP_PRELU, 6, legacy, 2, 1, NULL, 0, &out));
  for (int i = 0; i < 24; i++) ref[i] = x[i] < 0 ? x[i] * slope[(i / 4) % 3] : x[i];
  assert_true(drt_test_rel_l2(out.data, ref, 24) == 0);
  free(out.data);
  DRT_ASSERT_ERROR(run_node(DRT_OP_PRELU, 7, legacy, 2, 1, NULL, 0, &out), DRT_STATUS_INVALID_ARGUMENT,
                   "cannot be broadcast");
  /* the slope may not grow the output */
  drt_shape big = drt_test_shape(5, (int64_t[]){2, 2, 3, 2, 2});
  float *sb = calloc(48, sizeof(float));
  op_in bad[2] = {in_t(DRT_DTYPE_FLOAT32, sx, x), in_t(DRT_DTYPE_FLOAT32, big, sb)};
  DRT_ASSERT_ERROR(run_node(DRT_OP_PRELU, 16, bad, 2, 1, NULL, 0, &out), DRT_STATUS_INVALID_ARGUMENT,
                   "unidirectionally");
  free(sb);
  free(x);
}

/* float16/bfloat16 go through the executor's float32 promotion. */
static void test_half_promotion(void **state) {
  (void)state;
  drt_shape s = drt_test_shape(1, (int64_t[]){3});
  uint16_t a[3] = {drt_f32_to_f16(1.5f), drt_f32_to_f16(-2.0f), drt_f32_to_f16(0.25f)};
  uint16_t b[3] = {drt_f32_to_f16(0.5f), drt_f32_to_f16(4.0f), drt_f32_to_f16(0.25f)};
  op_in ins[2] = {in_t(DRT_DTYPE_FLOAT16, s, a), in_t(DRT_DTYPE_FLOAT16, s, b)};
  drt_tensor out;
  DRT_ASSERT_OK(run_node(DRT_OP_ADD, 14, ins, 2, 1, NULL, 0, &out));
  assert_int_equal(out.dtype, DRT_DTYPE_FLOAT16);
  const uint16_t *o = out.data;
  assert_true(drt_f16_to_f32(o[0]) == 2.0f && drt_f16_to_f32(o[1]) == 2.0f && drt_f16_to_f32(o[2]) == 0.5f);
  free(out.data);
  DRT_ASSERT_OK(run_node(DRT_OP_LESS, 13, ins, 2, 1, NULL, 0, &out));
  assert_memory_equal(out.data, ((uint8_t[]){0, 1, 0}), 3);
  free(out.data);
  uint16_t h[3] = {drt_f32_to_bf16(-1.0f), drt_f32_to_bf16(0.0f), drt_f32_to_bf16(2.0f)};
  op_in bin = in_t(DRT_DTYPE_BFLOAT16, s, h);
  DRT_ASSERT_OK(run_node(DRT_OP_RELU, 14, &bin, 1, 1, NULL, 0, &out));
  assert_int_equal(out.dtype, DRT_DTYPE_BFLOAT16);
  o = out.data;
  assert_true(drt_bf16_to_f32(o[0]) == 0.0f && drt_bf16_to_f32(o[2]) == 2.0f);
  free(out.data);
}

static void test_errors(void **state) {
  (void)state;
  drt_shape s23 = drt_test_shape(2, (int64_t[]){2, 3}), s4 = drt_test_shape(1, (int64_t[]){4});
  float a[6] = {0}, b[4] = {0};
  int64_t c[4] = {0};
  drt_tensor out;
  op_in bad_bc[2] = {in_t(DRT_DTYPE_FLOAT32, s23, a), in_t(DRT_DTYPE_FLOAT32, s4, b)};
  DRT_ASSERT_ERROR(run_node(DRT_OP_ADD, 14, bad_bc, 2, 1, NULL, 0, &out), DRT_STATUS_INVALID_ARGUMENT,
                   "cannot be broadcast");
  DRT_ASSERT_ERROR(run_node(DRT_OP_EQUAL, 13, bad_bc, 2, 1, NULL, 0, &out), DRT_STATUS_INVALID_ARGUMENT,
                   "input 1 'in1'");
  op_in three[3] = {in_t(DRT_DTYPE_FLOAT32, s23, a), in_t(DRT_DTYPE_FLOAT32, s23, a), in_t(DRT_DTYPE_FLOAT32, s4, b)};
  DRT_ASSERT_ERROR(run_node(DRT_OP_SUM, 13, three, 3, 1, NULL, 0, &out), DRT_STATUS_INVALID_ARGUMENT,
                   "input 2 'in2'");
  op_in mixed[2] = {in_t(DRT_DTYPE_FLOAT32, s4, b), in_t(DRT_DTYPE_INT64, s4, c)};
  DRT_ASSERT_ERROR(run_node(DRT_OP_MUL, 14, mixed, 2, 1, NULL, 0, &out), DRT_STATUS_INVALID_ARGUMENT, "must match");
  op_in ints = in_t(DRT_DTYPE_INT64, s4, c);
  DRT_ASSERT_ERROR(run_node(DRT_OP_SQRT, 13, &ints, 1, 1, NULL, 0, &out), DRT_STATUS_UNSUPPORTED, "int64");
  DRT_ASSERT_ERROR(run_node(DRT_OP_NOT, 1, &ints, 1, 1, NULL, 0, &out), DRT_STATUS_UNSUPPORTED, "int64");
  op_in fl = in_t(DRT_DTYPE_FLOAT32, s4, b);
  drt_attr ap = attr_s("approximate", "fast");
  DRT_ASSERT_ERROR(run_node(DRT_OP_GELU, 20, &fl, 1, 1, &ap, 1, &out), DRT_STATUS_INVALID_ARGUMENT, "approximate");
  drt_attr fm = attr_i("fmod", 2);
  op_in two[2] = {fl, fl};
  DRT_ASSERT_ERROR(run_node(DRT_OP_MOD, 13, two, 2, 1, &fm, 1, &out), DRT_STATUS_INVALID_ARGUMENT, "fmod");
  /* arity comes from the op table */
  DRT_ASSERT_ERROR(run_node(DRT_OP_ADD, 14, two, 1, 1, NULL, 0, &out), DRT_STATUS_INVALID_ARGUMENT, "inputs");
  drt_attr alpha0 = attr_f("alpha", 0.0f);
  DRT_ASSERT_ERROR(run_node(DRT_OP_CELU, 12, &fl, 1, 1, &alpha0, 1, &out), DRT_STATUS_INVALID_ARGUMENT, "alpha");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_harness),
      cmocka_unit_test(test_unary_float_ops),
      cmocka_unit_test(test_fast_math_special_values),
      cmocka_unit_test(test_classify_round_sign),
      cmocka_unit_test(test_int_unary),
      cmocka_unit_test(test_binary_broadcast_f32),
      cmocka_unit_test(test_broadcast_parallel),
      cmocka_unit_test(test_int_arith),
      cmocka_unit_test(test_float_mod),
      cmocka_unit_test(test_pow_mixed),
      cmocka_unit_test(test_compare_and_logic),
      cmocka_unit_test(test_variadic),
      cmocka_unit_test(test_where),
      cmocka_unit_test(test_clip),
      cmocka_unit_test(test_cast),
      cmocka_unit_test(test_identity_dropout),
      cmocka_unit_test(test_prelu),
      cmocka_unit_test(test_half_promotion),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
