/* Linalg family: MatMul, Gemm, Einsum, Conv, ConvTranspose, MaxPool, AveragePool and the
 * global pools. Every kernel is compared against a naive reference written here (double
 * accumulation, seeded random data), run both serially and on a 3-thread pool so the
 * batch-parallel paths are exercised too; integer GEMMs are checked exactly; inference
 * errors are checked by code and message. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer.h"
#include "runtime/cpu/linalg.h"
#include "runtime/cpu/sgemm_avx2.h"

static drt_threadpool *g_pool;

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
  return 0;
}

/* ---------------------------------------------------------------- harness */

typedef struct tcase {
  drt_graph *g;
  drt_node *n;
  int nin, nout;
  drt_tensor in[8];
  drt_tensor out[2];
} tcase;

static drt_shape shp(int rank, const int64_t *d) { return drt_test_shape(rank, d); }

/* Creates a graph with one node of `op`; inputs with data == NULL are omitted (NULL input). */
static void tc_init(tcase *t, drt_op op, int nin, const drt_tensor *ins, int nout) {
  memset(t, 0, sizeof *t);
  DRT_ASSERT_OK(drt_graph_create(&t->g));
  t->g->opset = 22;
  drt_value *iv[8] = {NULL};
  drt_value *ov[2];
  for (int i = 0; i < nin; i++) {
    t->in[i] = ins[i];
    if (!ins[i].data) continue;
    char name[16];
    snprintf(name, sizeof name, "x%d", i);
    iv[i] = drt_graph_add_value(t->g, name, ins[i].dtype, &ins[i].shape);
    DRT_ASSERT_OK(drt_graph_add_input(t->g, iv[i]));
  }
  for (int i = 0; i < nout; i++) ov[i] = drt_graph_add_value(t->g, i ? "indices" : "y", DRT_DTYPE_UNDEFINED, NULL);
  DRT_ASSERT_OK(drt_graph_add_node(t->g, op, "node", iv, nin, ov, nout, &t->n));
  t->nin = nin;
  t->nout = nout;
}

static void attr_int(tcase *t, const char *name, int64_t v) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_INT;
  a.i = v;
  DRT_ASSERT_OK(drt_node_add_attr(t->g, t->n, &a));
}

static void attr_float(tcase *t, const char *name, float v) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_FLOAT;
  a.f = v;
  DRT_ASSERT_OK(drt_node_add_attr(t->g, t->n, &a));
}

static void attr_ints(tcase *t, const char *name, int count, const int64_t *v) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_INTS;
  a.count = count;
  a.ints = (int64_t *)v;
  DRT_ASSERT_OK(drt_node_add_attr(t->g, t->n, &a));
}

static void attr_str(tcase *t, const char *name, const char *v) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_STRING;
  a.s = v;
  a.s_len = strlen(v);
  DRT_ASSERT_OK(drt_node_add_attr(t->g, t->n, &a));
}

/* Runs inference, allocates outputs and runs the kernel with `threads` (1: serial). */
static drt_status tc_run(tcase *t, int threads) {
  drt_status s = drt_infer_node(t->g, t->n);
  if (s) return s;
  for (int i = 0; i < t->nout; i++) {
    free(t->out[i].data);
    t->out[i].dtype = t->n->outputs[i]->dtype;
    t->out[i].shape = t->n->outputs[i]->shape;
    size_t nb = drt_tensor_nbytes(&t->out[i]);
    t->out[i].data = malloc(nb ? nb : 1);
    assert_non_null(t->out[i].data);
    memset(t->out[i].data, 0xab, nb); /* garbage: kernels must write every element */
  }
  drt_cpu_ctx ctx = {threads > 1 ? g_pool : NULL, threads};
  return drt_cpu_run_node(&ctx, t->n, t->in, t->out);
}

/* Inference only. */
static drt_status tc_infer(tcase *t) { return drt_infer_node(t->g, t->n); }

static void tc_free(tcase *t) {
  for (int i = 0; i < t->nout; i++) free(t->out[i].data);
  drt_graph_destroy(t->g);
}

static drt_tensor tens(drt_dtype dt, int rank, const int64_t *dims, void *data) {
  drt_tensor x;
  x.dtype = dt;
  x.shape = shp(rank, dims);
  x.data = data;
  return x;
}

static float *rand_f(drt_test_rng *r, int64_t n) {
  float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
  assert_non_null(p);
  drt_test_fill(r, p, (size_t)n, -1.0f, 1.0f);
  return p;
}

/* Small integers in [-4, 4] as float: exact products and sums. */
static float *rand_int_f(drt_test_rng *r, int64_t n) {
  float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
  assert_non_null(p);
  for (int64_t i = 0; i < n; i++) p[i] = (float)((int)(drt_test_next(r) % 9) - 4);
  return p;
}

static void assert_shape(const drt_tensor *t, int rank, const int64_t *dims) {
  char a[128], b[128];
  drt_shape want = shp(rank, dims);
  if (!drt_shape_equal(&t->shape, &want)) {
    print_error("shape %s, expected %s\n", drt_shape_str(&t->shape, a, sizeof a), drt_shape_str(&want, b, sizeof b));
    fail();
  }
}

static void assert_close(const float *got, const double *want, int64_t n, double tol, const char *what) {
  float *w = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
  assert_non_null(w);
  for (int64_t i = 0; i < n; i++) w[i] = (float)want[i];
  double e = drt_test_rel_l2(got, w, (size_t)n);
  for (int64_t i = 0; i < n; i++)
    if (isnan(got[i]) != isnan(w[i])) e = INFINITY;
  if (!(e <= tol)) {
    print_error("%s: relative L2 error %g > %g\n", what, e, tol);
    for (int64_t i = 0; i < n && i < 8; i++) print_error("  [%lld] got %g want %g\n", (long long)i, got[i], w[i]);
  }
  free(w);
  assert_true(e <= tol);
}

/* ---------------------------------------------------------------- MatMul */

/* numpy matmul in double for float32 data. */
static void ref_matmul(const float *a, const drt_shape *as, const float *b, const drt_shape *bs, double *y,
                       const drt_shape *ys) {
  int ra = as->rank, rb = bs->rank, ry = ys->rank;
  int64_t m = ra >= 2 ? as->dims[ra - 2] : 1, k = as->dims[ra - 1], n = rb >= 2 ? bs->dims[rb - 1] : 1;
  int nb = ry - (ra >= 2) - (rb >= 2);
  int64_t batch = 1;
  for (int i = 0; i < nb; i++) batch *= ys->dims[i];
  for (int64_t bi = 0; bi < batch; bi++) {
    /* batch coords */
    int64_t c[DRT_MAX_RANK], rem = bi;
    for (int i = nb - 1; i >= 0; i--) {
      c[i] = rem % ys->dims[i];
      rem /= ys->dims[i];
    }
    int64_t oa = 0, ob = 0;
    int bra = ra > 2 ? ra - 2 : 0, brb = rb > 2 ? rb - 2 : 0;
    for (int i = 0; i < bra; i++) {
      int64_t d = as->dims[i], ci = c[nb - bra + i];
      oa = oa * d + (d == 1 ? 0 : ci);
    }
    for (int i = 0; i < brb; i++) {
      int64_t d = bs->dims[i], ci = c[nb - brb + i];
      ob = ob * d + (d == 1 ? 0 : ci);
    }
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) {
        double s = 0;
        for (int64_t p = 0; p < k; p++) s += (double)a[oa * m * k + i * k + p] * (double)b[ob * k * n + p * n + j];
        y[bi * m * n + i * n + j] = s;
      }
  }
}

static void check_matmul(drt_test_rng *r, int ra, const int64_t *ad, int rb, const int64_t *bd, int ry,
                         const int64_t *yd) {
  drt_tensor ins[2];
  ins[0] = tens(DRT_DTYPE_FLOAT32, ra, ad, NULL);
  ins[1] = tens(DRT_DTYPE_FLOAT32, rb, bd, NULL);
  int64_t na = drt_shape_numel(&ins[0].shape), nb = drt_shape_numel(&ins[1].shape);
  ins[0].data = rand_f(r, na);
  ins[1].data = rand_f(r, nb);
  drt_shape ys = shp(ry, yd);
  int64_t ny = drt_shape_numel(&ys);
  double *want = malloc((size_t)(ny > 0 ? ny : 1) * sizeof(double));
  ref_matmul(ins[0].data, &ins[0].shape, ins[1].data, &ins[1].shape, want, &ys);
  for (int threads = 1; threads <= 3; threads += 2) {
    tcase t;
    tc_init(&t, DRT_OP_MATMUL, 2, ins, 1);
    DRT_ASSERT_OK(tc_run(&t, threads));
    assert_shape(&t.out[0], ry, yd);
    assert_close(t.out[0].data, want, ny, 1e-5, "MatMul");
    tc_free(&t);
  }
  free(want);
  free(ins[0].data);
  free(ins[1].data);
}

static void test_matmul_float(void **state) {
  (void)state;
  drt_test_rng r = {1};
  check_matmul(&r, 2, (int64_t[]){5, 7}, 2, (int64_t[]){7, 3}, 2, (int64_t[]){5, 3});
  check_matmul(&r, 1, (int64_t[]){7}, 2, (int64_t[]){7, 3}, 1, (int64_t[]){3});
  check_matmul(&r, 2, (int64_t[]){5, 7}, 1, (int64_t[]){7}, 1, (int64_t[]){5});
  check_matmul(&r, 1, (int64_t[]){7}, 1, (int64_t[]){7}, 0, (int64_t[]){0});
  /* shared B: one big GEMM */
  check_matmul(&r, 3, (int64_t[]){4, 5, 7}, 2, (int64_t[]){7, 6}, 3, (int64_t[]){4, 5, 6});
  check_matmul(&r, 4, (int64_t[]){2, 3, 5, 7}, 1, (int64_t[]){7}, 3, (int64_t[]){2, 3, 5});
  /* shared A, batched B */
  check_matmul(&r, 2, (int64_t[]){5, 7}, 3, (int64_t[]){4, 7, 6}, 3, (int64_t[]){4, 5, 6});
  check_matmul(&r, 1, (int64_t[]){7}, 3, (int64_t[]){4, 7, 6}, 2, (int64_t[]){4, 6});
  /* broadcast batch dims both ways */
  check_matmul(&r, 4, (int64_t[]){2, 1, 5, 7}, 4, (int64_t[]){1, 3, 7, 6}, 4, (int64_t[]){2, 3, 5, 6});
  check_matmul(&r, 3, (int64_t[]){3, 5, 7}, 4, (int64_t[]){2, 1, 7, 6}, 4, (int64_t[]){2, 3, 5, 6});
  /* attention-like: many heads (batch-parallel GEMMs) */
  check_matmul(&r, 4, (int64_t[]){2, 6, 33, 16}, 4, (int64_t[]){2, 6, 16, 40}, 4, (int64_t[]){2, 6, 33, 40});
  /* K = 0: zeros */
  check_matmul(&r, 2, (int64_t[]){3, 0}, 2, (int64_t[]){0, 4}, 2, (int64_t[]){3, 4});
  /* larger single GEMM */
  check_matmul(&r, 2, (int64_t[]){130, 70}, 2, (int64_t[]){70, 90}, 2, (int64_t[]){130, 90});
}

static void test_matmul_float64(void **state) {
  (void)state;
  drt_test_rng r = {2};
  int64_t ad[] = {3, 4, 5}, bd[] = {3, 5, 2};
  double a[60], b[30], want[24];
  for (int i = 0; i < 60; i++) a[i] = drt_test_uniform(&r, -1, 1) + 1e-9 * i;
  for (int i = 0; i < 30; i++) b[i] = drt_test_uniform(&r, -1, 1);
  for (int bi = 0; bi < 3; bi++)
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 2; j++) {
        double s = 0;
        for (int p = 0; p < 5; p++) s += a[bi * 20 + i * 5 + p] * b[bi * 10 + p * 2 + j];
        want[bi * 8 + i * 2 + j] = s;
      }
  drt_tensor ins[2] = {tens(DRT_DTYPE_FLOAT64, 3, ad, a), tens(DRT_DTYPE_FLOAT64, 3, bd, b)};
  tcase t;
  tc_init(&t, DRT_OP_MATMUL, 2, ins, 1);
  DRT_ASSERT_OK(tc_run(&t, 3));
  assert_int_equal(t.out[0].dtype, DRT_DTYPE_FLOAT64);
  const double *y = t.out[0].data;
  for (int i = 0; i < 24; i++) assert_true(fabs(y[i] - want[i]) <= 1e-12 * (1 + fabs(want[i])));
  tc_free(&t);
}

/* Integer MatMul and integer-valued float MatMul must be exact. */
static void test_matmul_exact(void **state) {
  (void)state;
  drt_test_rng r = {3};
  int64_t ad[] = {2, 1, 6, 9}, bd[] = {3, 9, 5}, yd[] = {2, 3, 6, 5};
  drt_shape as = shp(4, ad), bs = shp(3, bd), ys = shp(4, yd);
  float *af = rand_int_f(&r, 108), *bf = rand_int_f(&r, 135);
  const drt_dtype dts[] = {DRT_DTYPE_FLOAT32, DRT_DTYPE_INT32, DRT_DTYPE_INT64, DRT_DTYPE_UINT32, DRT_DTYPE_UINT64};
  for (size_t di = 0; di < sizeof dts / sizeof dts[0]; di++) {
    drt_dtype dt = dts[di];
    /* unsigned types: shift data to be non-negative and recompute */
    bool uns = dt == DRT_DTYPE_UINT32 || dt == DRT_DTYPE_UINT64;
    float a2[108], b2[135];
    for (int i = 0; i < 108; i++) a2[i] = uns ? af[i] + 4 : af[i];
    for (int i = 0; i < 135; i++) b2[i] = uns ? bf[i] + 4 : bf[i];
    double w2[180];
    ref_matmul(a2, &as, b2, &bs, w2, &ys);
    void *ad_ = malloc(108 * 8), *bd_ = malloc(135 * 8);
    drt_convert(dt, ad_, DRT_DTYPE_FLOAT32, a2, 108);
    drt_convert(dt, bd_, DRT_DTYPE_FLOAT32, b2, 135);
    drt_tensor ins[2] = {tens(dt, 4, ad, ad_), tens(dt, 3, bd, bd_)};
    for (int threads = 1; threads <= 3; threads += 2) {
      tcase t;
      tc_init(&t, DRT_OP_MATMUL, 2, ins, 1);
      DRT_ASSERT_OK(tc_run(&t, threads));
      assert_int_equal(t.out[0].dtype, dt);
      assert_shape(&t.out[0], 4, yd);
      for (int i = 0; i < 180; i++) assert_true(drt_load_f64(dt, t.out[0].data, (size_t)i) == w2[i]);
      tc_free(&t);
    }
    free(ad_);
    free(bd_);
  }
  /* int32 wrap-around is defined (two's complement), not UB */
  int32_t big_a[2] = {INT32_MAX, 2}, big_b[2] = {2, 1};
  drt_tensor ins[2] = {tens(DRT_DTYPE_INT32, 2, (int64_t[]){1, 2}, big_a), tens(DRT_DTYPE_INT32, 2, (int64_t[]){2, 1}, big_b)};
  tcase t;
  tc_init(&t, DRT_OP_MATMUL, 2, ins, 1);
  DRT_ASSERT_OK(tc_run(&t, 1));
  assert_int_equal(((int32_t *)t.out[0].data)[0], (int32_t)((uint32_t)INT32_MAX * 2u + 2u));
  tc_free(&t);
  free(af);
  free(bf);
}

static void test_matmul_errors(void **state) {
  (void)state;
  float d[64] = {0};
  tcase t;
  drt_tensor ins[2] = {tens(DRT_DTYPE_FLOAT32, 2, (int64_t[]){3, 4}, d), tens(DRT_DTYPE_FLOAT32, 2, (int64_t[]){5, 2}, d)};
  tc_init(&t, DRT_OP_MATMUL, 2, ins, 1);
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_INVALID_ARGUMENT, "inner dimensions do not match");
  tc_free(&t);
  ins[0] = tens(DRT_DTYPE_FLOAT32, 3, (int64_t[]){2, 3, 4}, d);
  ins[1] = tens(DRT_DTYPE_FLOAT32, 3, (int64_t[]){3, 4, 2}, d);
  tc_init(&t, DRT_OP_MATMUL, 2, ins, 1);
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_INVALID_ARGUMENT, "cannot be broadcast");
  tc_free(&t);
  ins[1] = tens(DRT_DTYPE_INT32, 2, (int64_t[]){4, 2}, d);
  tc_init(&t, DRT_OP_MATMUL, 2, ins, 1);
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_INVALID_ARGUMENT, "has dtype int32");
  tc_free(&t);
  ins[0] = tens(DRT_DTYPE_INT8, 2, (int64_t[]){2, 4}, d);
  ins[1] = tens(DRT_DTYPE_INT8, 2, (int64_t[]){4, 2}, d);
  tc_init(&t, DRT_OP_MATMUL, 2, ins, 1);
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_UNSUPPORTED, "int8");
  tc_free(&t);
  ins[0] = tens(DRT_DTYPE_FLOAT32, 0, NULL, d);
  ins[1] = tens(DRT_DTYPE_FLOAT32, 1, (int64_t[]){1}, d);
  tc_init(&t, DRT_OP_MATMUL, 2, ins, 1);
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_INVALID_ARGUMENT, "scalar");
  tc_free(&t);
}

/* ---------------------------------------------------------------- Gemm */

static void check_gemm(drt_test_rng *r, int64_t m, int64_t n, int64_t k, bool ta, bool tb, float alpha, float beta,
                       int crank, const int64_t *cd) {
  int64_t ad[2] = {ta ? k : m, ta ? m : k}, bd[2] = {tb ? n : k, tb ? k : n};
  drt_tensor ins[3];
  ins[0] = tens(DRT_DTYPE_FLOAT32, 2, ad, rand_f(r, m * k));
  ins[1] = tens(DRT_DTYPE_FLOAT32, 2, bd, rand_f(r, k * n));
  int nin = 2;
  if (crank >= 0) {
    ins[2] = tens(DRT_DTYPE_FLOAT32, crank, cd, NULL);
    ins[2].data = rand_f(r, drt_shape_numel(&ins[2].shape));
    nin = 3;
  }
  double *want = malloc((size_t)(m * n) * sizeof(double));
  const float *a = ins[0].data, *b = ins[1].data;
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double s = 0;
      for (int64_t p = 0; p < k; p++) s += (double)(ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
      s *= alpha;
      if (crank >= 0) {
        const float *c = ins[2].data;
        int64_t ci = 0;
        if (crank == 2) ci = (cd[0] == 1 ? 0 : i) * cd[1] + (cd[1] == 1 ? 0 : j);
        if (crank == 1) ci = cd[0] == 1 ? 0 : j;
        s += beta * (double)c[ci];
      }
      want[i * n + j] = s;
    }
  for (int threads = 1; threads <= 3; threads += 2) {
    tcase t;
    tc_init(&t, DRT_OP_GEMM, nin, ins, 1);
    if (ta) attr_int(&t, "transA", 1);
    if (tb) attr_int(&t, "transB", 1);
    if (alpha != 1.0f) attr_float(&t, "alpha", alpha);
    if (beta != 1.0f) attr_float(&t, "beta", beta);
    DRT_ASSERT_OK(tc_run(&t, threads));
    assert_shape(&t.out[0], 2, (int64_t[]){m, n});
    assert_close(t.out[0].data, want, m * n, 1e-5, "Gemm");
    tc_free(&t);
  }
  free(want);
  for (int i = 0; i < nin; i++) free(ins[i].data);
}

static void test_gemm_float(void **state) {
  (void)state;
  drt_test_rng r = {4};
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      check_gemm(&r, 5, 6, 7, ta, tb, 1.0f, 1.0f, -1, NULL);
      check_gemm(&r, 5, 6, 7, ta, tb, 0.5f, -2.0f, 2, (int64_t[]){5, 6});
    }
  check_gemm(&r, 5, 6, 7, false, true, 1.0f, 1.0f, 0, NULL);                   /* scalar C */
  check_gemm(&r, 5, 6, 7, false, false, 1.0f, 0.25f, 1, (int64_t[]){6});       /* bias row */
  check_gemm(&r, 5, 6, 7, false, false, 1.0f, 1.0f, 1, (int64_t[]){1});        /* single elem */
  check_gemm(&r, 5, 6, 7, true, false, 1.0f, 1.0f, 2, (int64_t[]){5, 1});      /* column */
  check_gemm(&r, 5, 6, 7, false, false, 2.0f, 3.0f, 2, (int64_t[]){1, 6});
  check_gemm(&r, 5, 6, 7, false, false, 1.0f, 0.0f, 2, (int64_t[]){5, 6}); /* beta 0 ignores C */
  check_gemm(&r, 64, 48, 96, true, true, 1.0f, 1.0f, 1, (int64_t[]){48});
  /* large enough to be split over the pool: by columns (transposed B) and by rows (transposed A) */
  check_gemm(&r, 70, 130, 80, false, true, 1.0f, 1.0f, 1, (int64_t[]){130});
  check_gemm(&r, 130, 70, 80, true, false, 0.5f, 1.0f, 2, (int64_t[]){130, 1});
}

static void test_gemm_int_exact(void **state) {
  (void)state;
  drt_test_rng r = {5};
  int64_t m = 4, n = 5, k = 6;
  int32_t a[24], b[30], c[5];
  for (int i = 0; i < 24; i++) a[i] = (int32_t)(drt_test_next(&r) % 11) - 5;
  for (int i = 0; i < 30; i++) b[i] = (int32_t)(drt_test_next(&r) % 11) - 5;
  for (int i = 0; i < 5; i++) c[i] = (int32_t)(drt_test_next(&r) % 100) - 50;
  /* A is given transposed (k x m) */
  drt_tensor ins[3] = {tens(DRT_DTYPE_INT32, 2, (int64_t[]){k, m}, a), tens(DRT_DTYPE_INT32, 2, (int64_t[]){k, n}, b),
                       tens(DRT_DTYPE_INT32, 1, (int64_t[]){n}, c)};
  tcase t;
  tc_init(&t, DRT_OP_GEMM, 3, ins, 1);
  attr_int(&t, "transA", 1);
  DRT_ASSERT_OK(tc_run(&t, 1));
  const int32_t *y = t.out[0].data;
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      int32_t s = c[j];
      for (int64_t p = 0; p < k; p++) s += a[p * m + i] * b[p * n + j];
      assert_int_equal(y[i * n + j], s);
    }
  tc_free(&t);
  /* float32 with integer values is exact as well */
  float af[24], bf[30], cf[5];
  for (int i = 0; i < 24; i++) af[i] = (float)a[i];
  for (int i = 0; i < 30; i++) bf[i] = (float)b[i];
  for (int i = 0; i < 5; i++) cf[i] = (float)c[i];
  drt_tensor fins[3] = {tens(DRT_DTYPE_FLOAT32, 2, (int64_t[]){k, m}, af),
                        tens(DRT_DTYPE_FLOAT32, 2, (int64_t[]){k, n}, bf), tens(DRT_DTYPE_FLOAT32, 1, (int64_t[]){n}, cf)};
  tc_init(&t, DRT_OP_GEMM, 3, fins, 1);
  attr_int(&t, "transA", 1);
  DRT_ASSERT_OK(tc_run(&t, 3));
  const float *yf = t.out[0].data;
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      int32_t s = c[j];
      for (int64_t p = 0; p < k; p++) s += a[p * m + i] * b[p * n + j];
      assert_true(yf[i * n + j] == (float)s);
    }
  tc_free(&t);
}

static void test_gemm_errors(void **state) {
  (void)state;
  float d[64] = {0};
  tcase t;
  drt_tensor ins[3] = {tens(DRT_DTYPE_FLOAT32, 2, (int64_t[]){3, 4}, d), tens(DRT_DTYPE_FLOAT32, 2, (int64_t[]){4, 2}, d),
                       tens(DRT_DTYPE_FLOAT32, 1, (int64_t[]){3}, d)};
  tc_init(&t, DRT_OP_GEMM, 3, ins, 1);
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_INVALID_ARGUMENT, "input 2 (C) has shape 3, which does not broadcast to 3x2");
  tc_free(&t);
  tc_init(&t, DRT_OP_GEMM, 2, ins, 1);
  attr_int(&t, "transB", 1);
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_INVALID_ARGUMENT, "inner dimensions do not match");
  tc_free(&t);
  ins[0] = tens(DRT_DTYPE_FLOAT32, 3, (int64_t[]){1, 3, 4}, d);
  tc_init(&t, DRT_OP_GEMM, 2, ins, 1);
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_INVALID_ARGUMENT, "expected a matrix");
  tc_free(&t);
}

/* ---------------------------------------------------------------- Einsum */

/* Reference einsum: explicit equation with letters only ("ab,bc->ac"); size-1 dims
 * broadcast. Iterates over every assignment of all labels. */
static void ref_einsum(const char *eq, int nops, const float *const *ops, const drt_shape *const *shapes, double *y,
                       const drt_shape *ys) {
  const char *arrow = strstr(eq, "->");
  assert_non_null(arrow);
  char terms[8][16];
  int nt = 0, len = 0;
  for (const char *p = eq; p <= arrow; p++) {
    if (p == arrow || *p == ',') {
      terms[nt][len] = 0;
      nt++;
      len = 0;
    } else {
      terms[nt][len++] = *p;
    }
  }
  assert_int_equal(nt, nops);
  const char *out = arrow + 2;
  int64_t size[128];
  for (int i = 0; i < 128; i++) size[i] = 0;
  for (int t = 0; t < nops; t++)
    for (int i = 0; terms[t][i]; i++) {
      int64_t d = shapes[t]->dims[i];
      if (d > size[(int)terms[t][i]]) size[(int)terms[t][i]] = d;
    }
  char labels[64];
  int nl = 0;
  for (int c = 0; c < 128; c++)
    if (size[c] > 0) labels[nl++] = (char)c;
  int64_t total = 1;
  for (int i = 0; i < nl; i++) total *= size[(int)labels[i]];
  int64_t ny = drt_shape_numel(ys);
  for (int64_t i = 0; i < ny; i++) y[i] = 0;
  int64_t val[128] = {0};
  for (int64_t e = 0; e < total; e++) {
    int64_t rem = e;
    for (int i = nl - 1; i >= 0; i--) {
      val[(int)labels[i]] = rem % size[(int)labels[i]];
      rem /= size[(int)labels[i]];
    }
    double prod = 1;
    for (int t = 0; t < nops; t++) {
      int64_t off = 0;
      for (int i = 0; terms[t][i]; i++) {
        int64_t d = shapes[t]->dims[i];
        off = off * d + (d == 1 ? 0 : val[(int)terms[t][i]]);
      }
      prod *= ops[t][off];
    }
    /* diagonal: repeated labels within a term are handled by using the same value */
    int64_t oo = 0;
    for (int i = 0; out[i]; i++) oo = oo * size[(int)out[i]] + val[(int)out[i]];
    y[oo] += prod;
  }
}

/* eq is given to the node; ref_eq (letters only, explicit) to the reference. */
static void check_einsum(drt_test_rng *r, const char *eq, const char *ref_eq, int nops, const drt_shape *shapes,
                         int yrank, const int64_t *ydims) {
  drt_tensor ins[4];
  const float *ops[4];
  const drt_shape *sp[4];
  for (int i = 0; i < nops; i++) {
    ins[i].dtype = DRT_DTYPE_FLOAT32;
    ins[i].shape = shapes[i];
    ins[i].data = rand_f(r, drt_shape_numel(&shapes[i]));
    ops[i] = ins[i].data;
    sp[i] = &ins[i].shape;
  }
  drt_shape ys = shp(yrank, ydims);
  int64_t ny = drt_shape_numel(&ys);
  double *want = malloc((size_t)(ny > 0 ? ny : 1) * sizeof(double));
  ref_einsum(ref_eq, nops, ops, sp, want, &ys);
  for (int threads = 1; threads <= 3; threads += 2) {
    tcase t;
    tc_init(&t, DRT_OP_EINSUM, nops, ins, 1);
    attr_str(&t, "equation", eq);
    drt_status s = tc_run(&t, threads);
    if (s) print_error("equation '%s'\n", eq);
    DRT_ASSERT_OK(s);
    assert_shape(&t.out[0], yrank, ydims);
    char what[64];
    snprintf(what, sizeof what, "Einsum '%s'", eq);
    assert_close(t.out[0].data, want, ny, 1e-5, what);
    tc_free(&t);
  }
  free(want);
  for (int i = 0; i < nops; i++) free(ins[i].data);
}

#define S(...) shp((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})

static void test_einsum_float(void **state) {
  (void)state;
  drt_test_rng r = {6};
  /* exporter forms (fast path) */
  check_einsum(&r, "bhqd,bhkd->bhqk", "bhqd,bhkd->bhqk", 2, (drt_shape[]){S(2, 3, 5, 8), S(2, 3, 7, 8)}, 4,
               (int64_t[]){2, 3, 5, 7});
  check_einsum(&r, "bhqk,bhkd->bhqd", "bhqk,bhkd->bhqd", 2, (drt_shape[]){S(2, 3, 5, 7), S(2, 3, 7, 8)}, 4,
               (int64_t[]){2, 3, 5, 8});
  check_einsum(&r, "bij,bjk->bik", "bij,bjk->bik", 2, (drt_shape[]){S(4, 5, 6), S(4, 6, 7)}, 3, (int64_t[]){4, 5, 7});
  check_einsum(&r, "i,j->ij", "i,j->ij", 2, (drt_shape[]){S(9), S(11)}, 2, (int64_t[]){9, 11});
  check_einsum(&r, "...ij,...jk->...ik", "abij,bjk->abik", 2, (drt_shape[]){S(2, 3, 5, 6), S(3, 6, 4)}, 4,
               (int64_t[]){2, 3, 5, 4});
  /* broadcast of a size-1 ellipsis dim */
  check_einsum(&r, "...ij,...jk->...ik", "abij,abjk->abik", 2, (drt_shape[]){S(2, 1, 5, 6), S(1, 3, 6, 4)}, 4,
               (int64_t[]){2, 3, 5, 4});
  /* transposed operands and outputs, interleaved batch dims */
  check_einsum(&r, "ik,jk->ij", "ik,jk->ij", 2, (drt_shape[]){S(5, 8), S(6, 8)}, 2, (int64_t[]){5, 6});
  check_einsum(&r, "ki,kj->ij", "ki,kj->ij", 2, (drt_shape[]){S(8, 5), S(8, 6)}, 2, (int64_t[]){5, 6});
  check_einsum(&r, "ij,jk->ki", "ij,jk->ki", 2, (drt_shape[]){S(5, 8), S(8, 6)}, 2, (int64_t[]){6, 5});
  check_einsum(&r, "bqhd,bkhd->bhqk", "bqhd,bkhd->bhqk", 2, (drt_shape[]){S(2, 5, 3, 8), S(2, 7, 3, 8)}, 4,
               (int64_t[]){2, 3, 5, 7});
  check_einsum(&r, "bhqk,bkhd->bqhd", "bhqk,bkhd->bqhd", 2, (drt_shape[]){S(2, 3, 5, 7), S(2, 7, 3, 8)}, 4,
               (int64_t[]){2, 5, 3, 8});
  check_einsum(&r, "abcd,cdbe->aeb", "abcd,cdbe->aeb", 2, (drt_shape[]){S(3, 4, 5, 2), S(5, 2, 4, 6)}, 3,
               (int64_t[]){3, 6, 4});
  check_einsum(&r, "bi,bi->b", "bi,bi->b", 2, (drt_shape[]){S(6, 40), S(6, 40)}, 1, (int64_t[]){6});
  check_einsum(&r, "i,i", "i,i->", 2, (drt_shape[]){S(13), S(13)}, 0, NULL);
  /* implicit output, upper case sorts first, spaces */
  check_einsum(&r, "ij, jk", "ij,jk->ik", 2, (drt_shape[]){S(3, 4), S(4, 5)}, 2, (int64_t[]){3, 5});
  check_einsum(&r, "bA,Ac", "bA,Ac->bc", 2, (drt_shape[]){S(3, 4), S(4, 5)}, 2, (int64_t[]){3, 5});
  check_einsum(&r, "ba", "ba->ab", 1, (drt_shape[]){S(3, 4)}, 2, (int64_t[]){4, 3});
  /* one operand: transpose, sum, diagonal, trace, ellipsis */
  check_einsum(&r, "ij->ji", "ij->ji", 1, (drt_shape[]){S(4, 6)}, 2, (int64_t[]){6, 4});
  check_einsum(&r, "nhwpqc->nchpwq", "nhwpqc->nchpwq", 1, (drt_shape[]){S(2, 3, 4, 2, 2, 5)}, 6,
               (int64_t[]){2, 5, 3, 2, 4, 2});
  check_einsum(&r, "...ij->...ji", "abij->abji", 1, (drt_shape[]){S(2, 3, 4, 5)}, 4, (int64_t[]){2, 3, 5, 4});
  check_einsum(&r, "ij->", "ij->", 1, (drt_shape[]){S(4, 6)}, 0, NULL);
  check_einsum(&r, "ii->i", "ii->i", 1, (drt_shape[]){S(5, 5)}, 1, (int64_t[]){5});
  check_einsum(&r, "ii", "ii->", 1, (drt_shape[]){S(5, 5)}, 0, NULL);
  check_einsum(&r, "...ii->...i", "abii->abi", 1, (drt_shape[]){S(2, 3, 4, 4)}, 3, (int64_t[]){2, 3, 4});
  check_einsum(&r, "b...->b", "bxy->b", 1, (drt_shape[]){S(3, 4, 5)}, 1, (int64_t[]){3});
  /* diagonal inside a two-operand contraction (generic path) */
  check_einsum(&r, "iij,jk->ik", "iij,jk->ik", 2, (drt_shape[]){S(4, 4, 3), S(3, 5)}, 2, (int64_t[]){4, 5});
  /* label summed in one operand only (generic path) */
  check_einsum(&r, "ij,k->i", "ij,k->i", 2, (drt_shape[]){S(4, 3), S(5)}, 1, (int64_t[]){4});
  /* three operands */
  check_einsum(&r, "ij,jk,kl->il", "ij,jk,kl->il", 3, (drt_shape[]){S(3, 4), S(4, 5), S(5, 2)}, 2, (int64_t[]){3, 2});
  check_einsum(&r, "i,i,i->", "i,i,i->", 3, (drt_shape[]){S(7), S(7), S(7)}, 0, NULL);
  /* larger: batched attention scores (batch-parallel GEMMs) */
  check_einsum(&r, "bhqd,bhkd->bhqk", "bhqd,bhkd->bhqk", 2, (drt_shape[]){S(1, 8, 40, 16), S(1, 8, 50, 16)}, 4,
               (int64_t[]){1, 8, 40, 50});
}

static void test_einsum_int_and_f64(void **state) {
  (void)state;
  drt_test_rng r = {7};
  int32_t a[24], b[20];
  for (int i = 0; i < 24; i++) a[i] = (int32_t)(drt_test_next(&r) % 7) - 3;
  for (int i = 0; i < 20; i++) b[i] = (int32_t)(drt_test_next(&r) % 7) - 3;
  drt_tensor ins[2] = {tens(DRT_DTYPE_INT32, 3, (int64_t[]){2, 3, 4}, a), tens(DRT_DTYPE_INT32, 2, (int64_t[]){4, 5}, b)};
  tcase t;
  tc_init(&t, DRT_OP_EINSUM, 2, ins, 1);
  attr_str(&t, "equation", "bij,jk->bki");
  DRT_ASSERT_OK(tc_run(&t, 3));
  assert_shape(&t.out[0], 3, (int64_t[]){2, 5, 3});
  const int32_t *y = t.out[0].data;
  for (int bi = 0; bi < 2; bi++)
    for (int k = 0; k < 5; k++)
      for (int i = 0; i < 3; i++) {
        int32_t s = 0;
        for (int j = 0; j < 4; j++) s += a[bi * 12 + i * 4 + j] * b[j * 5 + k];
        assert_int_equal(y[bi * 15 + k * 3 + i], s);
      }
  tc_free(&t);
  /* uint8 wraps modulo 256 */
  uint8_t u[4] = {200, 100, 3, 4};
  drt_tensor uin[1] = {tens(DRT_DTYPE_UINT8, 1, (int64_t[]){4}, u)};
  tc_init(&t, DRT_OP_EINSUM, 1, uin, 1);
  attr_str(&t, "equation", "i->");
  DRT_ASSERT_OK(tc_run(&t, 1));
  assert_int_equal(((uint8_t *)t.out[0].data)[0], (uint8_t)(200 + 100 + 3 + 4));
  tc_free(&t);
  /* float64 through the GEMM fast path keeps double precision */
  double da[6] = {1 + 1e-12, 2, 3, 4, 5, 6}, db[6] = {1, 1e-12, 1, 1, 1, 1};
  drt_tensor dins[2] = {tens(DRT_DTYPE_FLOAT64, 2, (int64_t[]){2, 3}, da), tens(DRT_DTYPE_FLOAT64, 2, (int64_t[]){3, 2}, db)};
  tc_init(&t, DRT_OP_EINSUM, 2, dins, 1);
  attr_str(&t, "equation", "ij,jk->ik");
  DRT_ASSERT_OK(tc_run(&t, 1));
  const double *yd = t.out[0].data;
  assert_true(fabs(yd[0] - (6 + 1e-12)) < 1e-14); /* the 1e-12 would vanish in float32 */
  assert_true(fabs(yd[1] - (5 + 1e-12)) < 1e-14);
  tc_free(&t);
}

static void einsum_error(const char *eq, int nops, const drt_shape *shapes, drt_status_code code, const char *needle) {
  float d[256] = {0};
  drt_tensor ins[4];
  for (int i = 0; i < nops; i++) {
    ins[i].dtype = DRT_DTYPE_FLOAT32;
    ins[i].shape = shapes[i];
    ins[i].data = d;
  }
  tcase t;
  tc_init(&t, DRT_OP_EINSUM, nops, ins, 1);
  if (eq) attr_str(&t, "equation", eq);
  DRT_ASSERT_ERROR(tc_infer(&t), code, needle);
  tc_free(&t);
}

static void test_einsum_errors(void **state) {
  (void)state;
  einsum_error("ij,jk->ik", 1, (drt_shape[]){S(2, 3)}, DRT_STATUS_INVALID_ARGUMENT, "more terms than");
  einsum_error("ij->i", 2, (drt_shape[]){S(2, 3), S(3)}, DRT_STATUS_INVALID_ARGUMENT, "has 1 input terms but the node has 2");
  einsum_error("ijk->i", 1, (drt_shape[]){S(2, 3)}, DRT_STATUS_INVALID_ARGUMENT, "has 3 labels but input 0 has rank 2");
  einsum_error("ij,jk->ik", 2, (drt_shape[]){S(2, 3), S(4, 5)}, DRT_STATUS_INVALID_ARGUMENT, "label 'j' has size 4");
  einsum_error("i1->i", 1, (drt_shape[]){S(2, 3)}, DRT_STATUS_INVALID_ARGUMENT, "invalid character '1'");
  einsum_error("ij->ik", 1, (drt_shape[]){S(2, 3)}, DRT_STATUS_INVALID_ARGUMENT, "output label 'k'");
  einsum_error("ij->ii", 1, (drt_shape[]){S(2, 2)}, DRT_STATUS_INVALID_ARGUMENT, "appears twice");
  einsum_error("i..j->ij", 1, (drt_shape[]){S(2, 2)}, DRT_STATUS_INVALID_ARGUMENT, "malformed");
  einsum_error("...i,...i->...i", 2, (drt_shape[]){S(2, 3), S(4, 3)}, DRT_STATUS_INVALID_ARGUMENT, "'...' dims");
  einsum_error(NULL, 1, (drt_shape[]){S(2)}, DRT_STATUS_INVALID_ARGUMENT, "'equation' is required");
}

/* ---------------------------------------------------------------- Conv */

typedef struct conv_p {
  int nsp;
  int64_t n, c, m, group;
  int64_t in[3], k[3], s[3], d[3], pb[3], pe[3];
  const char *auto_pad; /* NULL: explicit pads */
  bool bias, kernel_attr, no_pads_attr;
  int64_t out_pad[3];
  const int64_t *output_shape; /* ConvTranspose */
} conv_p;

/* Resolves the pads and output size of SAME/VALID the way the ONNX spec describes. */
static int64_t conv_out_dim(const conv_p *p, int i, int64_t *pb, int64_t *pe) {
  int64_t dk = (p->k[i] - 1) * p->d[i] + 1;
  if (p->auto_pad && strncmp(p->auto_pad, "SAME", 4) == 0) {
    int64_t o = (p->in[i] + p->s[i] - 1) / p->s[i];
    int64_t total = (o - 1) * p->s[i] + dk - p->in[i];
    if (total < 0) total = 0;
    *pb = strcmp(p->auto_pad, "SAME_UPPER") == 0 ? total / 2 : (total + 1) / 2;
    *pe = total - *pb;
    return o;
  }
  if (p->auto_pad && strcmp(p->auto_pad, "VALID") == 0) {
    *pb = *pe = 0;
  } else {
    *pb = p->pb[i];
    *pe = p->pe[i];
  }
  return (p->in[i] + *pb + *pe - dk) / p->s[i] + 1;
}

static void set_window_attrs(tcase *t, const conv_p *p, bool with_dil) {
  int64_t v[6];
  if (p->kernel_attr) attr_ints(t, "kernel_shape", p->nsp, p->k);
  attr_ints(t, "strides", p->nsp, p->s);
  if (with_dil) attr_ints(t, "dilations", p->nsp, p->d);
  if (p->auto_pad) {
    attr_str(t, "auto_pad", p->auto_pad);
  } else if (!p->no_pads_attr) {
    for (int i = 0; i < p->nsp; i++) {
      v[i] = p->pb[i];
      v[p->nsp + i] = p->pe[i];
    }
    attr_ints(t, "pads", 2 * p->nsp, v);
  }
}

static void check_conv(drt_test_rng *r, conv_p p) {
  int nsp = p.nsp;
  for (int i = nsp; i < 3; i++) p.in[i] = p.k[i] = p.s[i] = p.d[i] = 1;
  int64_t cg = p.c / p.group, mg = p.m / p.group;
  int64_t xd[5] = {p.n, p.c}, wd[5] = {p.m, cg}, yd[5] = {p.n, p.m};
  int64_t out[3] = {1, 1, 1}, pb[3] = {0, 0, 0}, pe[3] = {0, 0, 0};
  for (int i = 0; i < nsp; i++) {
    xd[2 + i] = p.in[i];
    wd[2 + i] = p.k[i];
    out[i] = conv_out_dim(&p, i, &pb[i], &pe[i]);
    yd[2 + i] = out[i];
  }
  drt_tensor ins[3];
  ins[0] = tens(DRT_DTYPE_FLOAT32, nsp + 2, xd, NULL);
  ins[1] = tens(DRT_DTYPE_FLOAT32, nsp + 2, wd, NULL);
  ins[0].data = rand_f(r, drt_shape_numel(&ins[0].shape));
  ins[1].data = rand_f(r, drt_shape_numel(&ins[1].shape));
  int nin = 2;
  if (p.bias) {
    ins[2] = tens(DRT_DTYPE_FLOAT32, 1, &p.m, rand_f(r, p.m));
    nin = 3;
  }
  /* reference, with spatial dims right-aligned into (D, H, W) */
  int64_t I[3] = {1, 1, 1}, K[3] = {1, 1, 1}, St[3] = {1, 1, 1}, Dl[3] = {1, 1, 1}, P[3] = {0, 0, 0}, O[3] = {1, 1, 1};
  for (int i = 0; i < nsp; i++) {
    int j = 3 - nsp + i;
    I[j] = p.in[i];
    K[j] = p.k[i];
    St[j] = p.s[i];
    Dl[j] = p.d[i];
    P[j] = pb[i];
    O[j] = out[i];
  }
  int64_t ny = p.n * p.m * O[0] * O[1] * O[2];
  double *want = malloc((size_t)ny * sizeof(double));
  const float *x = ins[0].data, *w = ins[1].data, *b = p.bias ? ins[2].data : NULL;
  int64_t e = 0;
  for (int64_t ni = 0; ni < p.n; ni++)
    for (int64_t m = 0; m < p.m; m++)
      for (int64_t od = 0; od < O[0]; od++)
        for (int64_t oh = 0; oh < O[1]; oh++)
          for (int64_t ow = 0; ow < O[2]; ow++) {
            double s = b ? b[m] : 0;
            int64_t g = m / mg;
            for (int64_t c = 0; c < cg; c++)
              for (int64_t kd = 0; kd < K[0]; kd++)
                for (int64_t kh = 0; kh < K[1]; kh++)
                  for (int64_t kw = 0; kw < K[2]; kw++) {
                    int64_t id = od * St[0] - P[0] + kd * Dl[0], ih = oh * St[1] - P[1] + kh * Dl[1],
                            iw = ow * St[2] - P[2] + kw * Dl[2];
                    if (id < 0 || id >= I[0] || ih < 0 || ih >= I[1] || iw < 0 || iw >= I[2]) continue;
                    double xv = x[(((ni * p.c + g * cg + c) * I[0] + id) * I[1] + ih) * I[2] + iw];
                    double wv = w[(((m * cg + c) * K[0] + kd) * K[1] + kh) * K[2] + kw];
                    s += xv * wv;
                  }
            want[e++] = s;
          }
  /* every strategy of the kernel (see DRT_CONV_PATH in runtime/cpu/conv.c), serial and pooled */
  const char *paths[] = {"auto", "simple", "avx2", "gemm"};
  for (size_t pi = 0; pi < sizeof paths / sizeof paths[0]; pi++)
    for (int threads = 1; threads <= 3; threads += 2) {
      setenv("DRT_CONV_PATH", paths[pi], 1);
      tcase t;
      tc_init(&t, DRT_OP_CONV, nin, ins, 1);
      set_window_attrs(&t, &p, true);
      if (p.group != 1) attr_int(&t, "group", p.group);
      DRT_ASSERT_OK(tc_run(&t, threads));
      assert_shape(&t.out[0], nsp + 2, yd);
      char what[64];
      snprintf(what, sizeof what, "Conv (path %s, %d threads)", paths[pi], threads);
      assert_close(t.out[0].data, want, ny, 1e-5, what);
      tc_free(&t);
    }
  unsetenv("DRT_CONV_PATH");
  free(want);
  for (int i = 0; i < nin; i++) free(ins[i].data);
}

static void test_conv(void **state) {
  (void)state;
  drt_test_rng r = {8};
  /* 2D basics */
  check_conv(&r, (conv_p){.nsp = 2, .n = 2, .c = 3, .m = 4, .group = 1, .in = {7, 6}, .k = {3, 3}, .s = {1, 1},
                          .d = {1, 1}, .pb = {1, 1}, .pe = {1, 1}, .bias = true});
  check_conv(&r, (conv_p){.nsp = 2, .n = 1, .c = 3, .m = 5, .group = 1, .in = {9, 8}, .k = {3, 2}, .s = {2, 3},
                          .d = {1, 1}, .pb = {0, 1}, .pe = {2, 0}, .kernel_attr = true});
  check_conv(&r, (conv_p){.nsp = 2, .n = 2, .c = 4, .m = 6, .group = 2, .in = {8, 9}, .k = {3, 3}, .s = {1, 2},
                          .d = {2, 1}, .pb = {2, 1}, .pe = {1, 2}, .bias = true});
  /* depthwise, and depthwise with channel multiplier 2 */
  check_conv(&r, (conv_p){.nsp = 2, .n = 2, .c = 8, .m = 8, .group = 8, .in = {10, 10}, .k = {3, 3}, .s = {1, 1},
                          .d = {1, 1}, .pb = {1, 1}, .pe = {1, 1}, .bias = true});
  check_conv(&r, (conv_p){.nsp = 2, .n = 1, .c = 4, .m = 8, .group = 4, .in = {7, 5}, .k = {3, 3}, .s = {2, 2},
                          .d = {1, 1}, .pb = {1, 1}, .pe = {1, 1}});
  check_conv(&r, (conv_p){.nsp = 2, .n = 2, .c = 3, .m = 6, .group = 3, .in = {5, 37}, .k = {3, 2}, .s = {1, 1},
                          .d = {2, 3}, .pb = {2, 1}, .pe = {1, 3}, .bias = true});
  /* pointwise (direct GEMM), strided 1x1 (im2col), no pads attribute at all */
  check_conv(&r, (conv_p){.nsp = 2, .n = 3, .c = 6, .m = 5, .group = 1, .in = {5, 7}, .k = {1, 1}, .s = {1, 1},
                          .d = {1, 1}, .bias = true, .no_pads_attr = true});
  check_conv(&r, (conv_p){.nsp = 2, .n = 1, .c = 6, .m = 5, .group = 1, .in = {5, 7}, .k = {1, 1}, .s = {2, 2},
                          .d = {1, 1}, .no_pads_attr = true});
  check_conv(&r, (conv_p){.nsp = 2, .n = 2, .c = 6, .m = 4, .group = 2, .in = {4, 4}, .k = {1, 1}, .s = {1, 1},
                          .d = {1, 1}, .no_pads_attr = true});
  /* auto_pad: both SAME modes with odd total padding, VALID */
  check_conv(&r, (conv_p){.nsp = 2, .n = 1, .c = 2, .m = 3, .group = 1, .in = {7, 8}, .k = {4, 3}, .s = {1, 2},
                          .d = {1, 1}, .auto_pad = "SAME_UPPER", .bias = true});
  check_conv(&r, (conv_p){.nsp = 2, .n = 1, .c = 2, .m = 3, .group = 1, .in = {7, 8}, .k = {4, 3}, .s = {1, 2},
                          .d = {1, 1}, .auto_pad = "SAME_LOWER"});
  check_conv(&r, (conv_p){.nsp = 2, .n = 1, .c = 2, .m = 3, .group = 1, .in = {9, 6}, .k = {2, 3}, .s = {3, 1},
                          .d = {2, 2}, .auto_pad = "SAME_LOWER"});
  check_conv(&r, (conv_p){.nsp = 2, .n = 1, .c = 2, .m = 3, .group = 1, .in = {9, 8}, .k = {3, 3}, .s = {2, 2},
                          .d = {1, 1}, .auto_pad = "VALID"});
  /* 1D and 3D */
  check_conv(&r, (conv_p){.nsp = 1, .n = 2, .c = 3, .m = 4, .group = 1, .in = {17}, .k = {5}, .s = {2}, .d = {2},
                          .pb = {3}, .pe = {1}, .bias = true});
  check_conv(&r, (conv_p){.nsp = 1, .n = 2, .c = 4, .m = 4, .group = 4, .in = {12}, .k = {3}, .s = {1}, .d = {1},
                          .auto_pad = "SAME_UPPER"});
  check_conv(&r, (conv_p){.nsp = 3, .n = 1, .c = 2, .m = 3, .group = 1, .in = {5, 6, 7}, .k = {3, 2, 3},
                          .s = {1, 2, 1}, .d = {1, 1, 2}, .pb = {1, 0, 2}, .pe = {1, 1, 0}, .bias = true});
  check_conv(&r, (conv_p){.nsp = 3, .n = 2, .c = 4, .m = 2, .group = 2, .in = {4, 5, 4}, .k = {2, 2, 2},
                          .s = {2, 2, 2}, .d = {1, 1, 1}, .auto_pad = "SAME_UPPER"});
  /* grouped im2col + GEMM spread over (image, group) blocks, tiled per task */
  check_conv(&r, (conv_p){.nsp = 2, .n = 3, .c = 8, .m = 18, .group = 2, .in = {120, 120}, .k = {3, 3},
                          .s = {1, 1}, .d = {1, 1}, .pb = {1, 1}, .pe = {1, 1}, .bias = true});
  /* channel counts that leave partial 16-channel blocks, several reduction chunks */
  check_conv(&r, (conv_p){.nsp = 2, .n = 2, .c = 40, .m = 21, .group = 1, .in = {9, 11}, .k = {3, 3}, .s = {1, 1},
                          .d = {1, 1}, .pb = {1, 1}, .pe = {1, 1}, .bias = true});
  check_conv(&r, (conv_p){.nsp = 2, .n = 1, .c = 24, .m = 34, .group = 2, .in = {6, 5}, .k = {2, 4}, .s = {2, 1},
                          .d = {1, 2}, .pb = {0, 3}, .pe = {1, 2}});
  /* im2col larger than the scratch budget: tiled over output positions */
  check_conv(&r, (conv_p){.nsp = 2, .n = 1, .c = 64, .m = 4, .group = 1, .in = {96, 96}, .k = {3, 3}, .s = {1, 1},
                          .d = {1, 1}, .pb = {1, 1}, .pe = {1, 1}, .bias = true});
}

static void check_conv_transpose(drt_test_rng *r, conv_p p, const int64_t *want_out) {
  int nsp = p.nsp;
  for (int i = nsp; i < 3; i++) p.in[i] = p.k[i] = p.s[i] = p.d[i] = 1;
  int64_t cg = p.c / p.group, mg = p.m / p.group;
  int64_t xd[5] = {p.n, p.c}, wd[5] = {p.c, mg}, yd[5] = {p.n, p.m};
  int64_t out[3] = {1, 1, 1}, pb[3] = {0, 0, 0};
  for (int i = 0; i < nsp; i++) {
    xd[2 + i] = p.in[i];
    wd[2 + i] = p.k[i];
    int64_t dk = (p.k[i] - 1) * p.d[i] + 1, full = p.s[i] * (p.in[i] - 1) + p.out_pad[i] + dk;
    if (p.output_shape || (p.auto_pad && strncmp(p.auto_pad, "SAME", 4) == 0)) {
      int64_t target = p.output_shape ? p.output_shape[i] : p.in[i] * p.s[i];
      int64_t total = full - target;
      if (total < 0) total = 0;
      pb[i] = p.auto_pad && strcmp(p.auto_pad, "SAME_UPPER") == 0 ? total / 2 : total - total / 2;
      out[i] = target;
    } else {
      pb[i] = p.pb[i];
      out[i] = full - p.pb[i] - p.pe[i];
    }
    yd[2 + i] = out[i];
    if (want_out) assert_int_equal(out[i], want_out[i]); /* the test's own formula against the spec example */
  }
  drt_tensor ins[3];
  ins[0] = tens(DRT_DTYPE_FLOAT32, nsp + 2, xd, NULL);
  ins[1] = tens(DRT_DTYPE_FLOAT32, nsp + 2, wd, NULL);
  ins[0].data = rand_f(r, drt_shape_numel(&ins[0].shape));
  ins[1].data = rand_f(r, drt_shape_numel(&ins[1].shape));
  int nin = 2;
  if (p.bias) {
    ins[2] = tens(DRT_DTYPE_FLOAT32, 1, &p.m, rand_f(r, p.m));
    nin = 3;
  }
  int64_t I[3] = {1, 1, 1}, K[3] = {1, 1, 1}, St[3] = {1, 1, 1}, Dl[3] = {1, 1, 1}, P[3] = {0, 0, 0}, O[3] = {1, 1, 1};
  for (int i = 0; i < nsp; i++) {
    int j = 3 - nsp + i;
    I[j] = p.in[i];
    K[j] = p.k[i];
    St[j] = p.s[i];
    Dl[j] = p.d[i];
    P[j] = pb[i];
    O[j] = out[i];
  }
  int64_t ny = p.n * p.m * O[0] * O[1] * O[2];
  double *want = calloc((size_t)ny, sizeof(double));
  const float *x = ins[0].data, *w = ins[1].data, *b = p.bias ? ins[2].data : NULL;
  for (int64_t ni = 0; ni < p.n; ni++)
    for (int64_t c = 0; c < p.c; c++)
      for (int64_t id = 0; id < I[0]; id++)
        for (int64_t ih = 0; ih < I[1]; ih++)
          for (int64_t iw = 0; iw < I[2]; iw++) {
            double xv = x[(((ni * p.c + c) * I[0] + id) * I[1] + ih) * I[2] + iw];
            int64_t g = c / cg;
            for (int64_t ml = 0; ml < mg; ml++)
              for (int64_t kd = 0; kd < K[0]; kd++)
                for (int64_t kh = 0; kh < K[1]; kh++)
                  for (int64_t kw = 0; kw < K[2]; kw++) {
                    int64_t od = id * St[0] - P[0] + kd * Dl[0], oh = ih * St[1] - P[1] + kh * Dl[1],
                            ow = iw * St[2] - P[2] + kw * Dl[2];
                    if (od < 0 || od >= O[0] || oh < 0 || oh >= O[1] || ow < 0 || ow >= O[2]) continue;
                    double wv = w[(((c * mg + ml) * K[0] + kd) * K[1] + kh) * K[2] + kw];
                    want[(((ni * p.m + g * mg + ml) * O[0] + od) * O[1] + oh) * O[2] + ow] += xv * wv;
                  }
          }
  if (b)
    for (int64_t i = 0; i < ny; i++) want[i] += b[(i / (O[0] * O[1] * O[2])) % p.m];
  for (int threads = 1; threads <= 3; threads += 2) {
    tcase t;
    tc_init(&t, DRT_OP_CONV_TRANSPOSE, nin, ins, 1);
    set_window_attrs(&t, &p, true);
    if (p.group != 1) attr_int(&t, "group", p.group);
    if (p.out_pad[0] || p.out_pad[1] || p.out_pad[2]) attr_ints(&t, "output_padding", nsp, p.out_pad);
    if (p.output_shape) attr_ints(&t, "output_shape", nsp, p.output_shape);
    DRT_ASSERT_OK(tc_run(&t, threads));
    assert_shape(&t.out[0], nsp + 2, yd);
    assert_close(t.out[0].data, want, ny, 1e-5, "ConvTranspose");
    tc_free(&t);
  }
  free(want);
  for (int i = 0; i < nin; i++) free(ins[i].data);
}

static void test_conv_transpose(void **state) {
  (void)state;
  drt_test_rng r = {9};
  check_conv_transpose(&r, (conv_p){.nsp = 2, .n = 1, .c = 2, .m = 3, .group = 1, .in = {3, 3}, .k = {3, 3},
                                    .s = {1, 1}, .d = {1, 1}, .bias = true, .no_pads_attr = true},
                       (int64_t[]){5, 5});
  /* stride 2 with output_padding (the "adjs" of frameworks), asymmetric pads */
  check_conv_transpose(&r, (conv_p){.nsp = 2, .n = 2, .c = 3, .m = 2, .group = 1, .in = {4, 5}, .k = {3, 3},
                                    .s = {2, 2}, .d = {1, 1}, .pb = {1, 0}, .pe = {0, 1}, .out_pad = {1, 1}},
                       (int64_t[]){9, 11});
  check_conv_transpose(&r, (conv_p){.nsp = 2, .n = 1, .c = 2, .m = 2, .group = 1, .in = {4, 4}, .k = {2, 3},
                                    .s = {3, 2}, .d = {2, 2}, .pb = {0, 1}, .pe = {1, 0}, .bias = true},
                       NULL);
  /* groups */
  check_conv_transpose(&r, (conv_p){.nsp = 2, .n = 2, .c = 4, .m = 6, .group = 2, .in = {3, 4}, .k = {3, 3},
                                    .s = {2, 1}, .d = {1, 1}, .pb = {1, 1}, .pe = {1, 1}, .bias = true},
                       NULL);
  /* output_shape attribute: pads derived from it (SAME_UPPER and default split) */
  check_conv_transpose(&r, (conv_p){.nsp = 2, .n = 1, .c = 1, .m = 2, .group = 1, .in = {3, 3}, .k = {3, 3},
                                    .s = {3, 2}, .d = {1, 1}, .no_pads_attr = true,
                                    .output_shape = (int64_t[]){10, 8}},
                       (int64_t[]){10, 8});
  check_conv_transpose(&r, (conv_p){.nsp = 2, .n = 1, .c = 2, .m = 2, .group = 1, .in = {4, 4}, .k = {3, 3},
                                    .s = {2, 2}, .d = {1, 1}, .auto_pad = "SAME_UPPER",
                                    .output_shape = (int64_t[]){7, 8}},
                       (int64_t[]){7, 8});
  /* auto_pad SAME: output = input * stride */
  check_conv_transpose(&r, (conv_p){.nsp = 2, .n = 1, .c = 2, .m = 3, .group = 1, .in = {3, 4}, .k = {3, 4},
                                    .s = {2, 2}, .d = {1, 1}, .auto_pad = "SAME_UPPER"},
                       (int64_t[]){6, 8});
  check_conv_transpose(&r, (conv_p){.nsp = 2, .n = 1, .c = 2, .m = 3, .group = 1, .in = {3, 4}, .k = {3, 4},
                                    .s = {2, 2}, .d = {1, 1}, .auto_pad = "SAME_LOWER"},
                       (int64_t[]){6, 8});
  /* pointwise (direct GEMM), 1D, 3D */
  check_conv_transpose(&r, (conv_p){.nsp = 2, .n = 2, .c = 3, .m = 4, .group = 1, .in = {5, 6}, .k = {1, 1},
                                    .s = {1, 1}, .d = {1, 1}, .bias = true, .no_pads_attr = true},
                       (int64_t[]){5, 6});
  check_conv_transpose(&r, (conv_p){.nsp = 1, .n = 2, .c = 3, .m = 2, .group = 1, .in = {7}, .k = {4}, .s = {3},
                                    .d = {1}, .pb = {1}, .pe = {2}, .out_pad = {2}},
                       (int64_t[]){21});
  check_conv_transpose(&r, (conv_p){.nsp = 3, .n = 1, .c = 2, .m = 2, .group = 1, .in = {3, 4, 3}, .k = {2, 3, 2},
                                    .s = {2, 1, 2}, .d = {1, 2, 1}, .pb = {0, 1, 1}, .pe = {1, 0, 0}, .bias = true},
                       NULL);
  /* col larger than the scratch budget: tiled over input positions */
  check_conv_transpose(&r, (conv_p){.nsp = 2, .n = 1, .c = 3, .m = 16, .group = 1, .in = {128, 130}, .k = {4, 4},
                                    .s = {2, 2}, .d = {1, 1}, .pb = {1, 1}, .pe = {1, 1}},
                       (int64_t[]){256, 260});
}

static void test_conv_errors(void **state) {
  (void)state;
  float d[4096] = {0};
  tcase t;
  drt_tensor ins[3] = {tens(DRT_DTYPE_FLOAT32, 4, (int64_t[]){1, 32, 8, 8}, d),
                       tens(DRT_DTYPE_FLOAT32, 4, (int64_t[]){8, 32, 3, 3}, d),
                       tens(DRT_DTYPE_FLOAT32, 1, (int64_t[]){4}, d)};
  tc_init(&t, DRT_OP_CONV, 2, ins, 1);
  attr_int(&t, "group", 2);
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_INVALID_ARGUMENT, "input 1 (W) has 32 input channels per group, expected 16");
  tc_free(&t);
  tc_init(&t, DRT_OP_CONV, 2, ins, 1);
  attr_int(&t, "group", 3);
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_INVALID_ARGUMENT, "32 channels, which is not divisible by group 3");
  tc_free(&t);
  ins[1] = tens(DRT_DTYPE_FLOAT32, 4, (int64_t[]){6, 8, 3, 3}, d);
  tc_init(&t, DRT_OP_CONV, 2, ins, 1);
  attr_int(&t, "group", 4);
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_INVALID_ARGUMENT, "6 output channels, which is not divisible by group 4");
  tc_free(&t);
  ins[1] = tens(DRT_DTYPE_FLOAT32, 4, (int64_t[]){8, 32, 3, 3}, d);
  tc_init(&t, DRT_OP_CONV, 3, ins, 1);
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_INVALID_ARGUMENT, "input 2 (B) has shape 4, expected [8]");
  tc_free(&t);
  ins[1] = tens(DRT_DTYPE_FLOAT32, 3, (int64_t[]){8, 32, 3}, d);
  tc_init(&t, DRT_OP_CONV, 2, ins, 1);
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_INVALID_ARGUMENT, "expected rank 4");
  tc_free(&t);
  ins[1] = tens(DRT_DTYPE_FLOAT32, 4, (int64_t[]){8, 32, 3, 3}, d);
  tc_init(&t, DRT_OP_CONV, 2, ins, 1);
  attr_ints(&t, "pads", 2, (int64_t[]){1, 1});
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_INVALID_ARGUMENT, "attribute 'pads' [1, 1] has 2 values, expected 4");
  tc_free(&t);
  tc_init(&t, DRT_OP_CONV, 2, ins, 1);
  attr_ints(&t, "kernel_shape", 2, (int64_t[]){3, 2});
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_INVALID_ARGUMENT, "does not match the spatial dims");
  tc_free(&t);
  tc_init(&t, DRT_OP_CONV, 2, ins, 1);
  attr_str(&t, "auto_pad", "SAME");
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_INVALID_ARGUMENT, "attribute 'auto_pad' is 'SAME'");
  tc_free(&t);
  tc_init(&t, DRT_OP_CONV, 2, ins, 1);
  attr_ints(&t, "strides", 2, (int64_t[]){1, 0});
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_INVALID_ARGUMENT, "has a value below 1");
  tc_free(&t);
  tc_init(&t, DRT_OP_CONV, 2, ins, 1);
  attr_ints(&t, "dilations", 2, (int64_t[]){5, 1});
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_INVALID_ARGUMENT, "gives an empty output");
  tc_free(&t);
  ins[0] = tens(DRT_DTYPE_INT32, 4, (int64_t[]){1, 32, 8, 8}, d);
  tc_init(&t, DRT_OP_CONV, 2, ins, 1);
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_UNSUPPORTED, "int32");
  tc_free(&t);
  ins[0] = tens(DRT_DTYPE_FLOAT32, 2, (int64_t[]){1, 32}, d);
  tc_init(&t, DRT_OP_CONV, 2, ins, 1);
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_INVALID_ARGUMENT, "expected rank >= 3");
  tc_free(&t);
  /* ConvTranspose: W is (C, M/group, k...) */
  ins[0] = tens(DRT_DTYPE_FLOAT32, 4, (int64_t[]){1, 32, 8, 8}, d);
  ins[1] = tens(DRT_DTYPE_FLOAT32, 4, (int64_t[]){16, 8, 3, 3}, d);
  tc_init(&t, DRT_OP_CONV_TRANSPOSE, 2, ins, 1);
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_INVALID_ARGUMENT, "input 1 (W) has 16 input channels, expected 32");
  tc_free(&t);
  ins[1] = tens(DRT_DTYPE_FLOAT32, 4, (int64_t[]){32, 8, 3, 3}, d);
  tc_init(&t, DRT_OP_CONV_TRANSPOSE, 2, ins, 1);
  attr_ints(&t, "output_shape", 3, (int64_t[]){1, 2, 3});
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_INVALID_ARGUMENT, "attribute 'output_shape'");
  tc_free(&t);
  tc_init(&t, DRT_OP_CONV_TRANSPOSE, 2, ins, 1);
  attr_int(&t, "group", 4);
  DRT_ASSERT_OK(tc_infer(&t));
  assert_int_equal(t.n->outputs[0]->shape.dims[1], 32); /* 8 per group x 4 groups */
  assert_int_equal(t.n->outputs[0]->shape.dims[2], 10);
  tc_free(&t);
}

/* ---------------------------------------------------------------- pools */

typedef struct pool_p {
  int nsp;
  int64_t n, c;
  int64_t in[3], k[3], s[3], d[3], pb[3], pe[3];
  const char *auto_pad;
  bool ceil, include_pad, dil_attr, no_pads_attr;
  int storage_order;
  int64_t out[3]; /* expected output spatial shape, computed by hand */
} pool_p;

static void check_pool(drt_test_rng *r, drt_op op, drt_dtype dt, pool_p p, bool indices) {
  int nsp = p.nsp;
  int64_t xd[5] = {p.n, p.c}, yd[5] = {p.n, p.c};
  int64_t I[3] = {1, 1, 1}, K[3] = {1, 1, 1}, St[3] = {1, 1, 1}, Dl[3] = {1, 1, 1}, P[3] = {0, 0, 0},
          Pe[3] = {0, 0, 0}, O[3] = {1, 1, 1};
  for (int i = 0; i < nsp; i++) {
    int j = 3 - nsp + i;
    xd[2 + i] = I[j] = p.in[i];
    yd[2 + i] = O[j] = p.out[i];
    K[j] = p.k[i];
    St[j] = p.s[i];
    Dl[j] = p.dil_attr ? p.d[i] : 1;
    int64_t pb = p.pb[i], pe = p.pe[i];
    if (p.auto_pad && strncmp(p.auto_pad, "SAME", 4) == 0) {
      int64_t total = (p.out[i] - 1) * p.s[i] + (K[j] - 1) * Dl[j] + 1 - p.in[i];
      if (total < 0) total = 0;
      pb = strcmp(p.auto_pad, "SAME_UPPER") == 0 ? total / 2 : total - total / 2;
      pe = total - pb;
    }
    P[j] = pb;
    Pe[j] = pe;
  }
  drt_tensor in = tens(dt, nsp + 2, xd, NULL);
  int64_t nx = drt_shape_numel(&in.shape), ny = p.n * p.c * O[0] * O[1] * O[2];
  float *xf = rand_f(r, nx);
  if (dt == DRT_DTYPE_INT8 || dt == DRT_DTYPE_UINT8)
    for (int64_t i = 0; i < nx; i++) xf[i] = floorf(xf[i] * 100.0f) + (dt == DRT_DTYPE_UINT8 ? 100.0f : 0.0f);
  in.data = malloc((size_t)nx * 8);
  drt_convert(dt, in.data, DRT_DTYPE_FLOAT32, xf, (size_t)nx);
  double *want = malloc((size_t)ny * sizeof(double));
  int64_t *want_idx = malloc((size_t)ny * sizeof(int64_t));
  int64_t e = 0;
  bool is_max = op == DRT_OP_MAX_POOL;
  for (int64_t pl = 0; pl < p.n * p.c; pl++)
    for (int64_t od = 0; od < O[0]; od++)
      for (int64_t oh = 0; oh < O[1]; oh++)
        for (int64_t ow = 0; ow < O[2]; ow++) {
          double acc = is_max ? -INFINITY : 0;
          int64_t cnt = 0, cnt_pad = 0, arg = -1;
          for (int64_t kd = 0; kd < K[0]; kd++)
            for (int64_t kh = 0; kh < K[1]; kh++)
              for (int64_t kw = 0; kw < K[2]; kw++) {
                int64_t id = od * St[0] - P[0] + kd * Dl[0], ih = oh * St[1] - P[1] + kh * Dl[1],
                        iw = ow * St[2] - P[2] + kw * Dl[2];
                if (id < I[0] + Pe[0] && ih < I[1] + Pe[1] && iw < I[2] + Pe[2]) cnt_pad++;
                if (id < 0 || id >= I[0] || ih < 0 || ih >= I[1] || iw < 0 || iw >= I[2]) continue;
                int64_t sp = (id * I[1] + ih) * I[2] + iw;
                double v = xf[pl * I[0] * I[1] * I[2] + sp];
                cnt++;
                if (is_max) {
                  if (v > acc) {
                    acc = v;
                    arg = p.storage_order ? id + ih * I[0] + iw * I[0] * I[1] : sp;
                  }
                } else {
                  acc += v;
                }
              }
          if (!is_max) acc /= (double)(p.include_pad ? cnt_pad : cnt);
          want_idx[e] = pl * I[0] * I[1] * I[2] + arg;
          want[e++] = acc;
        }
  for (int threads = 1; threads <= 3; threads += 2) {
    tcase t;
    tc_init(&t, op, 1, &in, indices ? 2 : 1);
    attr_ints(&t, "kernel_shape", nsp, p.k);
    pool_p q = p;
    conv_p cp = {.nsp = nsp, .auto_pad = q.auto_pad, .no_pads_attr = q.no_pads_attr};
    for (int i = 0; i < nsp; i++) {
      cp.k[i] = q.k[i];
      cp.s[i] = q.s[i];
      cp.d[i] = q.d[i];
      cp.pb[i] = q.pb[i];
      cp.pe[i] = q.pe[i];
    }
    set_window_attrs(&t, &cp, p.dil_attr);
    if (p.ceil) attr_int(&t, "ceil_mode", 1);
    if (p.include_pad) attr_int(&t, "count_include_pad", 1);
    if (p.storage_order) attr_int(&t, "storage_order", 1);
    DRT_ASSERT_OK(tc_run(&t, threads));
    assert_int_equal(t.out[0].dtype, dt);
    assert_shape(&t.out[0], nsp + 2, yd);
    if (dt == DRT_DTYPE_FLOAT32) {
      assert_close(t.out[0].data, want, ny, 1e-6, is_max ? "MaxPool" : "AveragePool");
    } else {
      for (int64_t i = 0; i < ny; i++) assert_true(drt_load_f64(dt, t.out[0].data, (size_t)i) == want[i]);
    }
    if (indices) {
      assert_int_equal(t.out[1].dtype, DRT_DTYPE_INT64);
      const int64_t *got = t.out[1].data;
      for (int64_t i = 0; i < ny; i++) assert_int_equal(got[i], want_idx[i]);
    }
    tc_free(&t);
  }
  free(want);
  free(want_idx);
  free(xf);
  free(in.data);
}

static void test_max_pool(void **state) {
  (void)state;
  drt_test_rng r = {10};
  const drt_op op = DRT_OP_MAX_POOL;
  check_pool(&r, op, DRT_DTYPE_FLOAT32,
             (pool_p){.nsp = 2, .n = 2, .c = 3, .in = {6, 7}, .k = {2, 2}, .s = {2, 2}, .out = {3, 3}}, true);
  check_pool(&r, op, DRT_DTYPE_FLOAT32,
             (pool_p){.nsp = 2, .n = 1, .c = 2, .in = {7, 6}, .k = {3, 2}, .s = {2, 1}, .pb = {1, 0}, .pe = {0, 1},
                      .out = {3, 6}},
             true);
  /* column-major indices */
  check_pool(&r, op, DRT_DTYPE_FLOAT32,
             (pool_p){.nsp = 2, .n = 1, .c = 2, .in = {5, 4}, .k = {2, 3}, .s = {1, 1}, .storage_order = 1,
                      .out = {4, 2}},
             true);
  /* ceil_mode, dilations */
  check_pool(&r, op, DRT_DTYPE_FLOAT32,
             (pool_p){.nsp = 2, .n = 1, .c = 2, .in = {8, 7}, .k = {3, 3}, .s = {2, 2}, .ceil = true, .out = {4, 3}},
             true);
  check_pool(&r, op, DRT_DTYPE_FLOAT32,
             (pool_p){.nsp = 2, .n = 1, .c = 1, .in = {8, 9}, .k = {2, 3}, .s = {1, 2}, .d = {2, 2}, .dil_attr = true,
                      .pb = {1, 1}, .pe = {1, 1}, .out = {8, 4}},
             true);
  /* auto_pad */
  check_pool(&r, op, DRT_DTYPE_FLOAT32,
             (pool_p){.nsp = 2, .n = 1, .c = 2, .in = {5, 6}, .k = {2, 3}, .s = {1, 2}, .auto_pad = "SAME_UPPER",
                      .out = {5, 3}},
             false);
  check_pool(&r, op, DRT_DTYPE_FLOAT32,
             (pool_p){.nsp = 2, .n = 1, .c = 2, .in = {5, 6}, .k = {2, 3}, .s = {1, 2}, .auto_pad = "SAME_LOWER",
                      .out = {5, 3}},
             false);
  check_pool(&r, op, DRT_DTYPE_FLOAT32,
             (pool_p){.nsp = 2, .n = 1, .c = 2, .in = {5, 6}, .k = {2, 3}, .s = {1, 2}, .auto_pad = "VALID",
                      .out = {4, 2}},
             false);
  /* 1D, 3D, integers, float64 */
  check_pool(&r, op, DRT_DTYPE_FLOAT32, (pool_p){.nsp = 1, .n = 2, .c = 3, .in = {11}, .k = {3}, .s = {2}, .out = {5}},
             true);
  check_pool(&r, op, DRT_DTYPE_FLOAT32,
             (pool_p){.nsp = 3, .n = 1, .c = 2, .in = {4, 5, 6}, .k = {2, 2, 3}, .s = {2, 1, 2}, .pb = {0, 1, 1},
                      .pe = {0, 0, 1}, .out = {2, 5, 3}},
             true);
  check_pool(&r, op, DRT_DTYPE_INT8,
             (pool_p){.nsp = 2, .n = 1, .c = 3, .in = {6, 6}, .k = {3, 3}, .s = {1, 1}, .pb = {1, 1}, .pe = {1, 1},
                      .out = {6, 6}},
             false);
  check_pool(&r, op, DRT_DTYPE_UINT8,
             (pool_p){.nsp = 2, .n = 1, .c = 3, .in = {6, 6}, .k = {2, 2}, .s = {2, 2}, .out = {3, 3}}, false);
  check_pool(&r, op, DRT_DTYPE_FLOAT64,
             (pool_p){.nsp = 2, .n = 1, .c = 3, .in = {6, 6}, .k = {2, 2}, .s = {2, 2}, .out = {3, 3}}, true);
}

static void test_average_pool(void **state) {
  (void)state;
  drt_test_rng r = {11};
  const drt_op op = DRT_OP_AVERAGE_POOL;
  for (int inc = 0; inc < 2; inc++) {
    check_pool(&r, op, DRT_DTYPE_FLOAT32,
               (pool_p){.nsp = 2, .n = 2, .c = 3, .in = {7, 6}, .k = {3, 3}, .s = {2, 2}, .pb = {1, 2}, .pe = {2, 1},
                        .include_pad = inc, .out = {4, 4}},
               false);
    /* ceil: the last window runs past the padded input and is clipped */
    check_pool(&r, op, DRT_DTYPE_FLOAT32,
               (pool_p){.nsp = 2, .n = 1, .c = 2, .in = {8, 7}, .k = {3, 3}, .s = {2, 2}, .pb = {1, 1}, .pe = {1, 1},
                        .ceil = true, .include_pad = inc, .out = {5, 4}},
               false);
    check_pool(&r, op, DRT_DTYPE_FLOAT32,
               (pool_p){.nsp = 3, .n = 1, .c = 2, .in = {5, 6, 7}, .k = {2, 3, 2}, .s = {1, 2, 2}, .d = {2, 1, 2},
                        .dil_attr = true, .pb = {1, 1, 0}, .pe = {0, 1, 1}, .include_pad = inc, .out = {4, 3, 3}},
               false);
    check_pool(&r, op, DRT_DTYPE_FLOAT32,
               (pool_p){.nsp = 2, .n = 1, .c = 2, .in = {5, 6}, .k = {2, 3}, .s = {1, 2}, .auto_pad = "SAME_LOWER",
                        .include_pad = inc, .out = {5, 3}},
               false);
  }
  check_pool(&r, op, DRT_DTYPE_FLOAT32, (pool_p){.nsp = 1, .n = 2, .c = 3, .in = {11}, .k = {4}, .s = {3}, .out = {3}},
             false);
}

/* The examples from the ONNX operator docs (ceil_mode on a 4x4 ramp). */
static void test_pool_known_values(void **state) {
  (void)state;
  float x[16];
  for (int i = 0; i < 16; i++) x[i] = (float)(i + 1);
  drt_tensor in = tens(DRT_DTYPE_FLOAT32, 4, (int64_t[]){1, 1, 4, 4}, x);
  const float want_max[4] = {11, 12, 15, 16}, want_avg[4] = {6, 7.5f, 12, 13.5f};
  for (int op = 0; op < 2; op++) {
    tcase t;
    tc_init(&t, op ? DRT_OP_AVERAGE_POOL : DRT_OP_MAX_POOL, 1, &in, 1);
    attr_ints(&t, "kernel_shape", 2, (int64_t[]){3, 3});
    attr_ints(&t, "strides", 2, (int64_t[]){2, 2});
    attr_int(&t, "ceil_mode", 1);
    DRT_ASSERT_OK(tc_run(&t, 1));
    assert_shape(&t.out[0], 4, (int64_t[]){1, 1, 2, 2});
    const float *y = t.out[0].data;
    for (int i = 0; i < 4; i++) assert_true(y[i] == (op ? want_avg[i] : want_max[i]));
    tc_free(&t);
  }
  /* ceil_mode: a window that would start in the end padding is dropped (5x5 -> 2x2, not 3x3) */
  float x5[25] = {0};
  drt_tensor in5 = tens(DRT_DTYPE_FLOAT32, 4, (int64_t[]){1, 1, 5, 5}, x5);
  tcase t;
  tc_init(&t, DRT_OP_MAX_POOL, 1, &in5, 1);
  attr_ints(&t, "kernel_shape", 2, (int64_t[]){2, 2});
  attr_ints(&t, "strides", 2, (int64_t[]){4, 4});
  attr_ints(&t, "pads", 4, (int64_t[]){0, 0, 2, 2});
  attr_int(&t, "ceil_mode", 1);
  DRT_ASSERT_OK(tc_infer(&t));
  assert_int_equal(t.n->outputs[0]->shape.dims[2], 2);
  tc_free(&t);
}

static void test_global_pools(void **state) {
  (void)state;
  drt_test_rng r = {12};
  int64_t xd[] = {2, 3, 4, 5, 6};
  float *x = rand_f(&r, 720);
  drt_tensor in = tens(DRT_DTYPE_FLOAT32, 5, xd, x);
  for (int op = 0; op < 2; op++) {
    double want[6];
    for (int p = 0; p < 6; p++) {
      double acc = op ? -INFINITY : 0;
      for (int i = 0; i < 120; i++) {
        double v = x[p * 120 + i];
        if (op)
          acc = v > acc ? v : acc;
        else
          acc += v / 120.0;
      }
      want[p] = acc;
    }
    for (int threads = 1; threads <= 3; threads += 2) {
      tcase t;
      tc_init(&t, op ? DRT_OP_GLOBAL_MAX_POOL : DRT_OP_GLOBAL_AVERAGE_POOL, 1, &in, 1);
      DRT_ASSERT_OK(tc_run(&t, threads));
      assert_shape(&t.out[0], 5, (int64_t[]){2, 3, 1, 1, 1});
      assert_close(t.out[0].data, want, 6, 1e-6, "global pool");
      tc_free(&t);
    }
  }
  free(x);
}

static void test_pool_errors(void **state) {
  (void)state;
  float d[64] = {0};
  drt_tensor in = tens(DRT_DTYPE_FLOAT32, 4, (int64_t[]){1, 1, 4, 4}, d);
  tcase t;
  tc_init(&t, DRT_OP_MAX_POOL, 1, &in, 1);
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_INVALID_ARGUMENT, "attribute 'kernel_shape' is required");
  tc_free(&t);
  tc_init(&t, DRT_OP_MAX_POOL, 1, &in, 1);
  attr_ints(&t, "kernel_shape", 3, (int64_t[]){2, 2, 2});
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_INVALID_ARGUMENT, "has 3 values, expected 2");
  tc_free(&t);
  tc_init(&t, DRT_OP_MAX_POOL, 1, &in, 1);
  attr_ints(&t, "kernel_shape", 2, (int64_t[]){5, 5});
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_INVALID_ARGUMENT, "empty output");
  tc_free(&t);
  tc_init(&t, DRT_OP_MAX_POOL, 1, &in, 1);
  attr_ints(&t, "kernel_shape", 2, (int64_t[]){2, 2});
  attr_int(&t, "storage_order", 2);
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_INVALID_ARGUMENT, "'storage_order' is 2");
  tc_free(&t);
  in.dtype = DRT_DTYPE_INT8;
  tc_init(&t, DRT_OP_AVERAGE_POOL, 1, &in, 1);
  attr_ints(&t, "kernel_shape", 2, (int64_t[]){2, 2});
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_UNSUPPORTED, "int8");
  tc_free(&t);
  in.dtype = DRT_DTYPE_FLOAT32;
  in.shape = shp(1, (int64_t[]){4});
  tc_init(&t, DRT_OP_GLOBAL_AVERAGE_POOL, 1, &in, 1);
  DRT_ASSERT_ERROR(tc_infer(&t), DRT_STATUS_INVALID_ARGUMENT, "expected rank >= 2");
  tc_free(&t);
}

/* ---------------------------------------------------------------- GEMMs of one row */
/* drt_sgemm for m = 1 (drt_sgemv_avx2): every element one FMA chain over k, so (1) equal columns
 * of B give bit-equal outputs (ONNX's light_resnet50: constant weights, logits near 1e19, a
 * softmax that must stay uniform), (2) the bits do not depend on how B is stored, on threads or
 * on the serial entry point (a fused GEMM must reproduce an unfused one), and (3) the values
 * match a double reference; alpha, beta 0 / 1 / 0.5, a transposed A, tails of k and n. */
static void test_sgemm_one_row(void **state) {
  (void)state;
  drt_test_rng rng = {4242};
  drt_cpu_ctx pool = {g_pool, 3};
  /* (1) a 1000-class head over 2048 features of 3e17 with weights 0.02: one value in every column */
  {
    const int64_t k = 2048, n = 1000;
    float *x = malloc(k * sizeof *x), *w = malloc(k * n * sizeof *w), *y = malloc(n * sizeof *y);
    assert_true(x && w && y);
    for (int64_t i = 0; i < k; i++) x[i] = 3.134905e17f;
    for (int64_t i = 0; i < k * n; i++) w[i] = 0.02f;
    for (int tb = 0; tb < 2; tb++) {
      for (int64_t q = 0; q < n; q++) y[q] = 0.02f;
      drt_sgemm(&pool, false, tb, 1, n, k, 1.0f, x, k, w, tb ? k : n, 1.0f, y, n);
      for (int64_t q = 1; q < n; q++) assert_memory_equal(&y[q], &y[0], sizeof(float));
    }
    free(x), free(w), free(y);
  }
  /* (2), (3) */
  static const struct {
    int64_t n, k;
    bool ta;
    float alpha, beta;
  } cases[] = {{1000, 2048, false, 1.0f, 0.0f}, {77, 300, false, 0.5f, 1.0f}, {130, 67, true, 1.0f, 0.5f},
               {200, 1030, true, 2.0f, 0.0f}, {7, 9, false, 1.0f, 1.0f}};
  for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
    const int64_t n = cases[ci].n, k = cases[ci].k, lda = cases[ci].ta ? 3 : k;
    const float alpha = cases[ci].alpha, beta = cases[ci].beta;
    const bool ta = cases[ci].ta;
    float *a = malloc(k * 3 * sizeof *a), *b = malloc(k * n * sizeof *b), *bt = malloc(k * n * sizeof *bt);
    float *c0 = malloc(n * sizeof *c0), *got[4];
    double *want = malloc(n * sizeof *want);
    assert_true(a && b && bt && c0 && want);
    for (int64_t i = 0; i < k * 3; i++) a[i] = drt_test_uniform(&rng, -1.0f, 1.0f);
    for (int64_t p = 0; p < k; p++)
      for (int64_t q = 0; q < n; q++) b[p * n + q] = bt[q * k + p] = drt_test_uniform(&rng, -1.0f, 1.0f);
    for (int64_t q = 0; q < n; q++) c0[q] = drt_test_uniform(&rng, -1.0f, 1.0f);
    for (int64_t q = 0; q < n; q++) {
      double acc = 0;
      for (int64_t p = 0; p < k; p++) acc += (double)(ta ? a[p * lda] : a[p]) * (double)b[p * n + q];
      want[q] = alpha * acc + beta * (double)c0[q];
    }
    /* B stored [k][n] and [n][k], on the pool and serially */
    for (int v = 0; v < 4; v++) {
      got[v] = malloc(n * sizeof *got[v]);
      assert_non_null(got[v]);
      memcpy(got[v], c0, n * sizeof *c0);
      const bool tb = v & 1;
      if (v < 2) drt_sgemm(&pool, ta, tb, 1, n, k, alpha, a, lda, tb ? bt : b, tb ? k : n, beta, got[v], n);
      else drt_sgemm_serial(ta, tb, 1, n, k, alpha, a, lda, tb ? bt : b, tb ? k : n, beta, got[v], n);
    }
    double num = 0, den = 0;
    for (int64_t q = 0; q < n; q++) {
      num += (got[0][q] - want[q]) * (got[0][q] - want[q]);
      den += want[q] * want[q];
    }
    if (sqrt(num / den) > 1e-6) print_error("case %zu: rel L2 %g\n", ci, sqrt(num / den));
    assert_true(sqrt(num / den) <= 1e-6);
    if (drt_cpu_has_avx2_fma()) /* the bitwise properties hold on the AVX2/FMA kernel */
      for (int v = 1; v < 4; v++) assert_memory_equal(got[v], got[0], n * sizeof(float));
    for (int v = 0; v < 4; v++) free(got[v]);
    free(a), free(b), free(bt), free(c0), free(want);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sgemm_one_row),
      cmocka_unit_test(test_matmul_float),
      cmocka_unit_test(test_matmul_float64),
      cmocka_unit_test(test_matmul_exact),
      cmocka_unit_test(test_matmul_errors),
      cmocka_unit_test(test_gemm_float),
      cmocka_unit_test(test_gemm_int_exact),
      cmocka_unit_test(test_gemm_errors),
      cmocka_unit_test(test_einsum_float),
      cmocka_unit_test(test_einsum_int_and_f64),
      cmocka_unit_test(test_einsum_errors),
      cmocka_unit_test(test_conv),
      cmocka_unit_test(test_conv_transpose),
      cmocka_unit_test(test_conv_errors),
      cmocka_unit_test(test_max_pool),
      cmocka_unit_test(test_average_pool),
      cmocka_unit_test(test_pool_known_values),
      cmocka_unit_test(test_global_pools),
      cmocka_unit_test(test_pool_errors),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
