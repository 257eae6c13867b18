/* Index op family: Gather, GatherElements, GatherND, ScatterND, ScatterElements, Pad, Resize,
 * Upsample. Every op is compared with a naive reference written here (random data, several
 * axes, negative indices, every Pad mode, Resize modes x coordinate modes), plus error cases. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer.h"

/* ---- single-node harness ---------------------------------------------------------------------- */
#define MAXIN 5

typedef struct node_case {
  drt_graph *g;
  drt_node *n;
  drt_op op;
  int opset;
  int nin;
  drt_value *in[MAXIN];
  drt_tensor ins[MAXIN];
  drt_tensor out;
} node_case;

static void nc_begin(node_case *c, drt_op op, int opset) {
  memset(c, 0, sizeof *c);
  DRT_ASSERT_OK(drt_graph_create(&c->g));
  c->op = op;
  c->opset = opset;
}

/* Adds an input; dt UNDEFINED adds an omitted optional input. */
static void nc_input(node_case *c, drt_dtype dt, int rank, const int64_t *dims, const void *data, bool is_const) {
  int i = c->nin++;
  assert_true(i < MAXIN);
  if (dt == DRT_DTYPE_UNDEFINED) return;
  drt_shape s = drt_test_shape(rank, dims);
  char name[16];
  snprintf(name, sizeof name, "in%d", i);
  if (is_const) {
    DRT_ASSERT_OK(drt_graph_add_const(c->g, name, dt, &s, data, &c->in[i]));
  } else {
    c->in[i] = drt_graph_add_value(c->g, name, dt, &s);
    DRT_ASSERT_OK(drt_graph_add_input(c->g, c->in[i]));
    c->ins[i].data = (void *)data;
  }
}

static void nc_node(node_case *c) {
  drt_value *o = drt_graph_add_value(c->g, "out", DRT_DTYPE_UNDEFINED, NULL);
  DRT_ASSERT_OK(drt_graph_add_node(c->g, c->op, "n", c->in, c->nin, &o, 1, &c->n));
  c->n->opset = c->opset;
}

static void nc_int(node_case *c, const char *name, int64_t v) {
  drt_attr a = {.name = name, .type = DRT_ATTR_INT, .i = v};
  DRT_ASSERT_OK(drt_node_add_attr(c->g, c->n, &a));
}
static void nc_float(node_case *c, const char *name, float v) {
  drt_attr a = {.name = name, .type = DRT_ATTR_FLOAT, .f = v};
  DRT_ASSERT_OK(drt_node_add_attr(c->g, c->n, &a));
}
static void nc_str(node_case *c, const char *name, const char *v) {
  drt_attr a = {.name = name, .type = DRT_ATTR_STRING, .s = v, .s_len = strlen(v)};
  DRT_ASSERT_OK(drt_node_add_attr(c->g, c->n, &a));
}
static void nc_ints(node_case *c, const char *name, const int64_t *v, int64_t cnt) {
  drt_attr a = {.name = name, .type = DRT_ATTR_INTS, .count = cnt, .ints = (int64_t *)v};
  DRT_ASSERT_OK(drt_node_add_attr(c->g, c->n, &a));
}
static void nc_floats(node_case *c, const char *name, const float *v, int64_t cnt) {
  drt_attr a = {.name = name, .type = DRT_ATTR_FLOATS, .count = cnt, .floats = (float *)v};
  DRT_ASSERT_OK(drt_node_add_attr(c->g, c->n, &a));
}

static drt_status nc_run(node_case *c) { return drt_test_run_node(c->g, c->n, c->ins, &c->out); }

static void nc_end(node_case *c) {
  free(c->out.data);
  drt_graph_destroy(c->g);
  memset(c, 0, sizeof *c);
}

/* Reruns the node (after nc_run) on a 3-thread pool into a fresh buffer; returns it. */
static void *nc_rerun_threaded(node_case *c) {
  drt_tensor in[MAXIN], out = c->out;
  for (int i = 0; i < c->nin; i++) {
    memset(&in[i], 0, sizeof in[i]);
    drt_value *v = c->n->inputs[i];
    if (!v) continue;
    in[i].dtype = v->dtype;
    in[i].shape = v->shape;
    in[i].data = v->kind == DRT_VALUE_CONST ? v->data : c->ins[i].data;
  }
  size_t nb = drt_tensor_nbytes(&out);
  out.data = calloc(nb ? nb : 1, 1);
  assert_non_null(out.data);
  drt_threadpool *pool;
  DRT_ASSERT_OK(drt_threadpool_create(3, &pool));
  drt_cpu_ctx ctx = {pool, 3};
  DRT_ASSERT_OK(drt_cpu_run_node(&ctx, c->n, in, &out));
  drt_threadpool_destroy(pool);
  return out.data;
}

static void assert_shape(const drt_tensor *t, int rank, const int64_t *dims) {
  assert_int_equal(t->shape.rank, rank);
  for (int i = 0; i < rank; i++) assert_int_equal(t->shape.dims[i], dims[i]);
}

static void assert_close(const float *got, const float *want, size_t n, double tol) {
  double e = drt_test_rel_l2(got, want, n);
  if (!(e <= tol)) {
    for (size_t i = 0; i < n; i++)
      if (fabs((double)got[i] - (double)want[i]) > 1e-4 * (1 + fabs((double)want[i]))) {
        print_error("first mismatch at %zu: got %g, want %g (rel l2 %g)\n", i, (double)got[i], (double)want[i], e);
        break;
      }
  }
  assert_true(e <= tol);
}

static int64_t rand_int(drt_test_rng *r, int64_t lo, int64_t hi) { /* [lo, hi] */
  return lo + (int64_t)(drt_test_next(r) % (uint64_t)(hi - lo + 1));
}

static int64_t numel_of(int rank, const int64_t *d) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= d[i];
  return n;
}

/* Multi-index of linear offset t in shape (rank, dims). */
static void unravel(int64_t t, int rank, const int64_t *dims, int64_t *coord) {
  for (int i = rank - 1; i >= 0; i--) {
    coord[i] = t % dims[i];
    t /= dims[i];
  }
}
static int64_t ravel(int rank, const int64_t *dims, const int64_t *coord) {
  int64_t o = 0;
  for (int i = 0; i < rank; i++) o = o * dims[i] + coord[i];
  return o;
}

/* ---- Gather ------------------------------------------------------------------------------------- */
static void gather_case(drt_test_rng *rng, int axis_attr, drt_dtype idt, int qrank, const int64_t *qdims) {
  const int64_t dd[3] = {3, 4, 5};
  float data[60];
  drt_test_fill(rng, data, 60, -2, 2);
  int axis = axis_attr < 0 ? axis_attr + 3 : axis_attr;
  int64_t bound = dd[axis], m = numel_of(qrank, qdims);
  int64_t idx64[16];
  int32_t idx32[16];
  for (int64_t i = 0; i < m; i++) {
    idx64[i] = rand_int(rng, -bound, bound - 1);
    idx32[i] = (int32_t)idx64[i];
  }
  node_case c;
  nc_begin(&c, DRT_OP_GATHER, 13);
  nc_input(&c, DRT_DTYPE_FLOAT32, 3, dd, data, false);
  nc_input(&c, idt, qrank, qdims, idt == DRT_DTYPE_INT32 ? (void *)idx32 : (void *)idx64, false);
  nc_node(&c);
  nc_int(&c, "axis", axis_attr);
  DRT_ASSERT_OK(nc_run(&c));
  assert_int_equal(c.out.shape.rank, 2 + qrank);
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; i++) outer *= dd[i];
  for (int i = axis + 1; i < 3; i++) inner *= dd[i];
  float want[16 * 60];
  for (int64_t o = 0; o < outer; o++)
    for (int64_t j = 0; j < m; j++) {
      int64_t v = idx64[j] < 0 ? idx64[j] + bound : idx64[j];
      for (int64_t k = 0; k < inner; k++) want[(o * m + j) * inner + k] = data[(o * bound + v) * inner + k];
    }
  assert_int_equal(drt_shape_numel(&c.out.shape), outer * m * inner);
  assert_memory_equal(c.out.data, want, (size_t)(outer * m * inner) * sizeof(float));
  nc_end(&c);
}

static void test_gather(void **state) {
  (void)state;
  drt_test_rng rng = {1};
  const int64_t q2[2] = {2, 3}, q1[1] = {4};
  for (int axis = -3; axis < 3; axis++) {
    gather_case(&rng, axis, DRT_DTYPE_INT64, 2, q2);
    gather_case(&rng, axis, DRT_DTYPE_INT32, 1, q1);
    gather_case(&rng, axis, DRT_DTYPE_INT64, 0, NULL); /* scalar index drops the axis */
  }
}

static void test_gather_dtypes_and_errors(void **state) {
  (void)state;
  /* float16 and int64 data move bit-exactly (no float32 round trip) */
  const int64_t dd[2] = {3, 2}, qd[1] = {3};
  uint16_t h[6] = {0x7e01, 0x3c00, 0xfc00, 0x0001, 0x8000, 0x7bff};
  int64_t idx[3] = {2, -3, 1};
  node_case c;
  nc_begin(&c, DRT_OP_GATHER, 13);
  nc_input(&c, DRT_DTYPE_FLOAT16, 2, dd, h, false);
  nc_input(&c, DRT_DTYPE_INT64, 1, qd, idx, true);
  nc_node(&c);
  DRT_ASSERT_OK(nc_run(&c));
  const uint16_t want_h[6] = {0x8000, 0x7bff, 0x7e01, 0x3c00, 0xfc00, 0x0001};
  assert_int_equal(c.out.dtype, DRT_DTYPE_FLOAT16);
  assert_memory_equal(c.out.data, want_h, sizeof want_h);
  nc_end(&c);

  int64_t big[4] = {INT64_MAX, -1, 5, INT64_MIN};
  nc_begin(&c, DRT_OP_GATHER, 13);
  const int64_t bd[1] = {4}, q1[1] = {2};
  int32_t i32[2] = {-1, 0};
  nc_input(&c, DRT_DTYPE_INT64, 1, bd, big, false);
  nc_input(&c, DRT_DTYPE_INT32, 1, q1, i32, false);
  nc_node(&c);
  DRT_ASSERT_OK(nc_run(&c));
  assert_int_equal(((int64_t *)c.out.data)[0], INT64_MIN);
  assert_int_equal(((int64_t *)c.out.data)[1], INT64_MAX);
  nc_end(&c);

  /* out-of-range runtime index: message names the index and the bound */
  float data[12] = {0};
  const int64_t d34[2] = {3, 4};
  int64_t bad[2] = {1, 4};
  nc_begin(&c, DRT_OP_GATHER, 13);
  nc_input(&c, DRT_DTYPE_FLOAT32, 2, d34, data, false);
  nc_input(&c, DRT_DTYPE_INT64, 1, q1, bad, false);
  nc_node(&c);
  nc_int(&c, "axis", -1);
  DRT_ASSERT_ERROR(nc_run(&c), DRT_STATUS_INVALID_ARGUMENT, "index 4 ");
  nc_end(&c);
  nc_begin(&c, DRT_OP_GATHER, 13);
  nc_input(&c, DRT_DTYPE_FLOAT32, 2, d34, data, false);
  nc_input(&c, DRT_DTYPE_INT64, 1, q1, bad, false);
  nc_node(&c);
  nc_int(&c, "axis", 1);
  DRT_ASSERT_ERROR(nc_run(&c), DRT_STATUS_INVALID_ARGUMENT, "[-4, 4)");
  nc_end(&c);
  /* constant indices are checked at compile time */
  int64_t neg[2] = {-4, 0};
  nc_begin(&c, DRT_OP_GATHER, 13);
  nc_input(&c, DRT_DTYPE_FLOAT32, 2, d34, data, false);
  nc_input(&c, DRT_DTYPE_INT64, 1, q1, neg, true);
  nc_node(&c);
  DRT_ASSERT_ERROR(drt_infer_node(c.g, c.n), DRT_STATUS_INVALID_ARGUMENT, "index -4");
  nc_end(&c);
  /* bad axis, bad index dtype */
  nc_begin(&c, DRT_OP_GATHER, 13);
  nc_input(&c, DRT_DTYPE_FLOAT32, 2, d34, data, false);
  nc_input(&c, DRT_DTYPE_INT64, 1, q1, neg, false);
  nc_node(&c);
  nc_int(&c, "axis", 2);
  DRT_ASSERT_ERROR(nc_run(&c), DRT_STATUS_INVALID_ARGUMENT, "axis 2 is out of range");
  nc_end(&c);
  nc_begin(&c, DRT_OP_GATHER, 13);
  nc_input(&c, DRT_DTYPE_FLOAT32, 2, d34, data, false);
  nc_input(&c, DRT_DTYPE_FLOAT32, 1, q1, data, false);
  nc_node(&c);
  DRT_ASSERT_ERROR(nc_run(&c), DRT_STATUS_UNSUPPORTED, "input 1");
  nc_end(&c);
}

/* ---- GatherElements / ScatterElements ------------------------------------------------------------ */
static void test_gather_elements(void **state) {
  (void)state;
  drt_test_rng rng = {2};
  const int64_t dd[3] = {3, 4, 5};
  float data[60];
  drt_test_fill(&rng, data, 60, -1, 1);
  for (int axis = -3; axis < 3; axis++) {
    int ax = axis < 0 ? axis + 3 : axis;
    int64_t id[3] = {2, 3, 4};
    id[ax] = 6; /* more indices than the axis size along the axis is fine */
    int64_t m = numel_of(3, id), idx[120];
    for (int64_t i = 0; i < m; i++) idx[i] = rand_int(&rng, -dd[ax], dd[ax] - 1);
    node_case c;
    nc_begin(&c, DRT_OP_GATHER_ELEMENTS, 13);
    nc_input(&c, DRT_DTYPE_FLOAT32, 3, dd, data, false);
    nc_input(&c, DRT_DTYPE_INT64, 3, id, idx, false);
    nc_node(&c);
    nc_int(&c, "axis", axis);
    DRT_ASSERT_OK(nc_run(&c));
    assert_shape(&c.out, 3, id);
    const float *got = c.out.data;
    for (int64_t t = 0; t < m; t++) {
      int64_t co[3];
      unravel(t, 3, id, co);
      co[ax] = idx[t] < 0 ? idx[t] + dd[ax] : idx[t];
      assert_true(got[t] == data[ravel(3, dd, co)]);
    }
    nc_end(&c);
  }
  /* errors: rank mismatch, index out of range */
  node_case c;
  int64_t idx[2] = {0, 3};
  const int64_t d2[2] = {1, 2};
  nc_begin(&c, DRT_OP_GATHER_ELEMENTS, 13);
  nc_input(&c, DRT_DTYPE_FLOAT32, 3, dd, data, false);
  nc_input(&c, DRT_DTYPE_INT64, 2, d2, idx, false);
  nc_node(&c);
  DRT_ASSERT_ERROR(nc_run(&c), DRT_STATUS_INVALID_ARGUMENT, "rank 2");
  nc_end(&c);
  const int64_t d23[2] = {3, 4}, di[2] = {1, 2};
  nc_begin(&c, DRT_OP_GATHER_ELEMENTS, 13);
  nc_input(&c, DRT_DTYPE_FLOAT32, 2, d23, data, false);
  nc_input(&c, DRT_DTYPE_INT64, 2, di, idx, false);
  nc_node(&c);
  DRT_ASSERT_ERROR(nc_run(&c), DRT_STATUS_INVALID_ARGUMENT, "index 3 ");
  nc_end(&c);
}

static float red_ref(const char *red, float a, float b) {
  if (!strcmp(red, "add")) return a + b;
  if (!strcmp(red, "mul")) return a * b;
  if (!strcmp(red, "max")) return a > b ? a : b;
  if (!strcmp(red, "min")) return a < b ? a : b;
  return b;
}

static void test_scatter_elements(void **state) {
  (void)state;
  drt_test_rng rng = {3};
  const char *reds[] = {"none", "add", "mul", "max", "min"};
  const int64_t dd[2] = {4, 5}, id[2] = {3, 5};
  for (int axis = -2; axis < 2; axis++)
    for (int ri = 0; ri < 5; ri++) {
      int ax = axis < 0 ? axis + 2 : axis;
      float data[20], upd[15], want[20];
      int64_t idx[15];
      drt_test_fill(&rng, data, 20, -2, 2);
      drt_test_fill(&rng, upd, 15, -2, 2);
      for (int i = 0; i < 15; i++) idx[i] = rand_int(&rng, -dd[ax], dd[ax] - 1); /* duplicates likely */
      memcpy(want, data, sizeof want);
      for (int64_t t = 0; t < 15; t++) {
        int64_t co[2];
        unravel(t, 2, id, co);
        co[ax] = idx[t] < 0 ? idx[t] + dd[ax] : idx[t];
        int64_t o = ravel(2, dd, co);
        want[o] = red_ref(reds[ri], want[o], upd[t]);
      }
      node_case c;
      nc_begin(&c, DRT_OP_SCATTER_ELEMENTS, 18);
      nc_input(&c, DRT_DTYPE_FLOAT32, 2, dd, data, false);
      nc_input(&c, DRT_DTYPE_INT64, 2, id, idx, false);
      nc_input(&c, DRT_DTYPE_FLOAT32, 2, id, upd, false);
      nc_node(&c);
      nc_int(&c, "axis", axis);
      if (ri) nc_str(&c, "reduction", reds[ri]);
      DRT_ASSERT_OK(nc_run(&c));
      assert_shape(&c.out, 2, dd);
      assert_close(c.out.data, want, 20, 1e-6);
      nc_end(&c);
    }
  /* integer data with add (wrapping arithmetic is per dtype) */
  int32_t di[4] = {1, 2, 3, 4}, ui[3] = {10, 20, 30};
  int64_t ii[3] = {3, 3, -4};
  const int64_t d4[1] = {4}, d3[1] = {3};
  node_case c;
  nc_begin(&c, DRT_OP_SCATTER_ELEMENTS, 16);
  nc_input(&c, DRT_DTYPE_INT32, 1, d4, di, false);
  nc_input(&c, DRT_DTYPE_INT64, 1, d3, ii, false);
  nc_input(&c, DRT_DTYPE_INT32, 1, d3, ui, false);
  nc_node(&c);
  nc_str(&c, "reduction", "add");
  DRT_ASSERT_OK(nc_run(&c));
  const int32_t want_i[4] = {31, 2, 3, 34};
  assert_memory_equal(c.out.data, want_i, sizeof want_i);
  nc_end(&c);
  /* bad reduction, updates shape mismatch */
  nc_begin(&c, DRT_OP_SCATTER_ELEMENTS, 18);
  nc_input(&c, DRT_DTYPE_INT32, 1, d4, di, false);
  nc_input(&c, DRT_DTYPE_INT64, 1, d3, ii, false);
  nc_input(&c, DRT_DTYPE_INT32, 1, d3, ui, false);
  nc_node(&c);
  nc_str(&c, "reduction", "avg");
  DRT_ASSERT_ERROR(nc_run(&c), DRT_STATUS_INVALID_ARGUMENT, "reduction");
  nc_end(&c);
  nc_begin(&c, DRT_OP_SCATTER_ELEMENTS, 18);
  nc_input(&c, DRT_DTYPE_INT32, 1, d4, di, false);
  nc_input(&c, DRT_DTYPE_INT64, 1, d3, ii, false);
  nc_input(&c, DRT_DTYPE_INT32, 1, d4, di, false);
  nc_node(&c);
  DRT_ASSERT_ERROR(nc_run(&c), DRT_STATUS_INVALID_ARGUMENT, "updates");
  nc_end(&c);
}

/* ---- GatherND / ScatterND ---------------------------------------------------------------------- */
static void test_gather_nd(void **state) {
  (void)state;
  drt_test_rng rng = {4};
  const int64_t dd[4] = {2, 3, 4, 5};
  float data[120];
  drt_test_fill(&rng, data, 120, -1, 1);
  for (int b = 0; b <= 1; b++)
    for (int64_t k = 1; k <= 3 - b; k++) {
      int64_t id[3] = {2, 3, k};
      int64_t m = 6, idx[18];
      for (int64_t t = 0; t < m; t++)
        for (int64_t j = 0; j < k; j++) {
          int64_t dim = dd[b + j];
          idx[t * k + j] = rand_int(&rng, -dim, dim - 1);
        }
      node_case c;
      nc_begin(&c, DRT_OP_GATHER_ND, 13);
      nc_input(&c, DRT_DTYPE_FLOAT32, 4, dd, data, false);
      nc_input(&c, DRT_DTYPE_INT64, 3, id, idx, false);
      nc_node(&c);
      if (b) nc_int(&c, "batch_dims", b);
      DRT_ASSERT_OK(nc_run(&c));
      int64_t slice = 1;
      for (int j = (int)(b + k); j < 4; j++) slice *= dd[j];
      assert_int_equal(c.out.shape.rank, 2 + 4 - b - k);
      assert_int_equal(drt_shape_numel(&c.out.shape), m * slice);
      const float *got = c.out.data;
      for (int64_t t = 0; t < m; t++) {
        int64_t co[4] = {0, 0, 0, 0};
        if (b) co[0] = t / 3; /* batch index = indices dim 0 */
        for (int64_t j = 0; j < k; j++) {
          int64_t v = idx[t * k + j];
          co[b + j] = v < 0 ? v + dd[b + j] : v;
        }
        int64_t base = ravel(4, dd, co);
        for (int64_t s = 0; s < slice; s++) assert_true(got[t * slice + s] == data[base + s]);
      }
      nc_end(&c);
    }
  /* spec example with int32 data */
  int32_t d[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  int64_t ix[4] = {0, 1, 1, 0};
  const int64_t d222[3] = {2, 2, 2}, i21[2] = {2, 1}, i221[3] = {2, 1, 1};
  node_case c;
  nc_begin(&c, DRT_OP_GATHER_ND, 12);
  nc_input(&c, DRT_DTYPE_INT32, 3, d222, d, false);
  nc_input(&c, DRT_DTYPE_INT64, 3, i221, ix, false); /* [[[0]],[[1]]] with batch_dims 1 */
  nc_node(&c);
  nc_int(&c, "batch_dims", 1);
  DRT_ASSERT_OK(nc_run(&c));
  const int64_t od[3] = {2, 1, 2};
  assert_shape(&c.out, 3, od);
  const int32_t want[4] = {0, 1, 6, 7};
  assert_memory_equal(c.out.data, want, sizeof want);
  nc_end(&c);
  /* errors */
  nc_begin(&c, DRT_OP_GATHER_ND, 12);
  nc_input(&c, DRT_DTYPE_INT32, 3, d222, d, false);
  nc_input(&c, DRT_DTYPE_INT64, 2, i21, ix, false);
  nc_node(&c);
  nc_int(&c, "batch_dims", 2);
  DRT_ASSERT_ERROR(nc_run(&c), DRT_STATUS_INVALID_ARGUMENT, "batch_dims");
  nc_end(&c);
  int64_t bad[2] = {0, 2};
  nc_begin(&c, DRT_OP_GATHER_ND, 12);
  nc_input(&c, DRT_DTYPE_INT32, 3, d222, d, false);
  nc_input(&c, DRT_DTYPE_INT64, 2, i21, bad, false);
  nc_node(&c);
  DRT_ASSERT_ERROR(nc_run(&c), DRT_STATUS_INVALID_ARGUMENT, "index 2 ");
  nc_end(&c);
}

static void test_scatter_nd(void **state) {
  (void)state;
  drt_test_rng rng = {5};
  const char *reds[] = {"none", "add", "mul", "max", "min"};
  const int64_t dd[3] = {4, 3, 2};
  for (int64_t k = 1; k <= 3; k++)
    for (int ri = 0; ri < 5; ri++) {
      int64_t id[2] = {5, k};
      int64_t ud[3] = {5, 0, 0};
      int urank = 1;
      for (int j = (int)k; j < 3; j++) ud[urank++] = dd[j];
      int64_t slice = numel_of(3 - (int)k, dd + k);
      float data[24], upd[5 * 24], want[24];
      int64_t idx[15];
      drt_test_fill(&rng, data, 24, -2, 2);
      drt_test_fill(&rng, upd, (size_t)(5 * slice), -2, 2);
      for (int t = 0; t < 5; t++)
        for (int64_t j = 0; j < k; j++) idx[t * k + j] = rand_int(&rng, -dd[j], dd[j] - 1);
      memcpy(want, data, sizeof want);
      for (int t = 0; t < 5; t++) {
        int64_t co[3] = {0, 0, 0};
        for (int64_t j = 0; j < k; j++) co[j] = idx[t * k + j] < 0 ? idx[t * k + j] + dd[j] : idx[t * k + j];
        int64_t base = ravel(3, dd, co);
        for (int64_t s = 0; s < slice; s++) want[base + s] = red_ref(reds[ri], want[base + s], upd[t * slice + s]);
      }
      node_case c;
      nc_begin(&c, DRT_OP_SCATTER_ND, 18);
      nc_input(&c, DRT_DTYPE_FLOAT32, 3, dd, data, false);
      nc_input(&c, DRT_DTYPE_INT64, 2, id, idx, false);
      nc_input(&c, DRT_DTYPE_FLOAT32, urank, ud, upd, false);
      nc_node(&c);
      if (ri) nc_str(&c, "reduction", reds[ri]);
      DRT_ASSERT_OK(nc_run(&c));
      assert_shape(&c.out, 3, dd);
      assert_close(c.out.data, want, 24, 1e-6);
      nc_end(&c);
    }
  /* float16 add goes through float32 per element */
  uint16_t h[2] = {0x3c00, 0x4000}, hu[1] = {0x3800}; /* 1, 2, +0.5 */
  int64_t hi[1] = {1};
  const int64_t d2[1] = {2}, i11[2] = {1, 1}, u1[1] = {1};
  node_case c;
  nc_begin(&c, DRT_OP_SCATTER_ND, 16);
  nc_input(&c, DRT_DTYPE_FLOAT16, 1, d2, h, false);
  nc_input(&c, DRT_DTYPE_INT64, 2, i11, hi, false);
  nc_input(&c, DRT_DTYPE_FLOAT16, 1, u1, hu, false);
  nc_node(&c);
  nc_str(&c, "reduction", "add");
  DRT_ASSERT_OK(nc_run(&c));
  assert_int_equal(((uint16_t *)c.out.data)[0], 0x3c00);
  assert_int_equal(((uint16_t *)c.out.data)[1], 0x4100); /* 2.5 */
  nc_end(&c);
  /* updates shape mismatch */
  nc_begin(&c, DRT_OP_SCATTER_ND, 16);
  nc_input(&c, DRT_DTYPE_FLOAT16, 1, d2, h, false);
  nc_input(&c, DRT_DTYPE_INT64, 2, i11, hi, false);
  nc_input(&c, DRT_DTYPE_FLOAT16, 1, d2, h, false);
  nc_node(&c);
  DRT_ASSERT_ERROR(nc_run(&c), DRT_STATUS_INVALID_ARGUMENT, "updates");
  nc_end(&c);
}

/* ---- Pad ---------------------------------------------------------------------------------------- */
/* Reference coordinate mapping written independently of the kernel (iterated reflection). */
static int64_t ref_pad_coord(const char *mode, int64_t i, int64_t n) {
  if (i >= 0 && i < n) return i;
  if (!strcmp(mode, "constant")) return -1;
  if (!strcmp(mode, "edge")) return i < 0 ? 0 : n - 1;
  if (!strcmp(mode, "wrap")) {
    while (i < 0) i += n;
    while (i >= n) i -= n;
    return i;
  }
  if (n == 1) return 0;
  while (i < 0 || i >= n) {
    if (i < 0) i = -i;
    if (i >= n) i = 2 * (n - 1) - i;
  }
  return i;
}

static void ref_pad(const float *x, int rank, const int64_t *xd, const int64_t *begin, const char *mode, float value,
                    const int64_t *od, float *y) {
  int64_t total = numel_of(rank, od);
  for (int64_t t = 0; t < total; t++) {
    int64_t co[8], ci[8];
    unravel(t, rank, od, co);
    bool fill = false;
    for (int d = 0; d < rank; d++) {
      ci[d] = ref_pad_coord(mode, co[d] - begin[d], xd[d]);
      if (ci[d] < 0) fill = true;
    }
    y[t] = fill ? value : x[ravel(rank, xd, ci)];
  }
}

static void pad_case(drt_test_rng *rng, const char *mode, const int64_t *pads /* 6 */, int opset) {
  const int64_t xd[3] = {2, 3, 4};
  float x[24];
  drt_test_fill(rng, x, 24, -1, 1);
  int64_t od[3], begin[3];
  for (int i = 0; i < 3; i++) {
    begin[i] = pads[i];
    od[i] = xd[i] + pads[i] + pads[3 + i];
  }
  float value = 0.5f;
  int64_t total = numel_of(3, od);
  float *want = malloc((size_t)total * sizeof(float));
  ref_pad(x, 3, xd, begin, mode, value, od, want);
  node_case c;
  nc_begin(&c, DRT_OP_PAD, opset);
  nc_input(&c, DRT_DTYPE_FLOAT32, 3, xd, x, false);
  if (opset >= 11) {
    const int64_t pd[1] = {6}, sd[1] = {0};
    nc_input(&c, DRT_DTYPE_INT64, 1, pd, pads, true);
    nc_input(&c, DRT_DTYPE_FLOAT32, 0, sd, &value, false);
  }
  nc_node(&c);
  nc_str(&c, "mode", mode);
  if (opset < 11) {
    nc_ints(&c, "pads", pads, 6);
    nc_float(&c, "value", value);
  }
  DRT_ASSERT_OK(nc_run(&c));
  assert_shape(&c.out, 3, od);
  assert_memory_equal(c.out.data, want, (size_t)total * sizeof(float));
  nc_end(&c);
  free(want);
}

static void test_pad(void **state) {
  (void)state;
  drt_test_rng rng = {6};
  const char *modes[] = {"constant", "reflect", "edge", "wrap"};
  const int64_t p1[6] = {1, 0, 2, 0, 2, 3};     /* plain */
  const int64_t p2[6] = {0, 5, 7, 1, 4, 9};     /* pads larger than the axis: repeated reflection/wrap */
  const int64_t p3[6] = {-1, 1, -2, 0, -1, 2};  /* negative pads crop */
  const int64_t p4[6] = {0, 0, 0, 0, 0, 0};
  for (int m = 0; m < 4; m++) {
    pad_case(&rng, modes[m], p1, 13);
    pad_case(&rng, modes[m], p2, 19);
    pad_case(&rng, modes[m], p3, 19);
    pad_case(&rng, modes[m], p4, 19);
    if (m < 3) pad_case(&rng, modes[m], p1, 2);
  }
}

static void test_pad_axes_and_dtypes(void **state) {
  (void)state;
  drt_test_rng rng = {7};
  /* opset 18 axes input with a negative axis, int32 data, constant_value input */
  const int64_t xd[3] = {2, 3, 4};
  int32_t x[24];
  for (int i = 0; i < 24; i++) x[i] = (int32_t)rand_int(&rng, -100, 100);
  int64_t pads[4] = {1, 2, 3, 0}; /* axes [-1, 0]: axis 2 begin 1 end 3, axis 0 begin 2 end 0 */
  int64_t axes[2] = {-1, 0};
  int32_t cv = 7;
  const int64_t pd[1] = {4}, ad[1] = {2};
  node_case c;
  nc_begin(&c, DRT_OP_PAD, 18);
  nc_input(&c, DRT_DTYPE_INT32, 3, xd, x, false);
  nc_input(&c, DRT_DTYPE_INT64, 1, pd, pads, true);
  nc_input(&c, DRT_DTYPE_INT32, 0, NULL, &cv, true);
  nc_input(&c, DRT_DTYPE_INT64, 1, ad, axes, true);
  nc_node(&c);
  DRT_ASSERT_OK(nc_run(&c));
  const int64_t od[3] = {4, 3, 8};
  assert_shape(&c.out, 3, od);
  const int32_t *y = c.out.data;
  for (int64_t t = 0; t < 96; t++) {
    int64_t co[3];
    unravel(t, 3, od, co);
    int64_t i0 = co[0] - 2, i2 = co[2] - 1;
    int32_t want = (i0 < 0 || i2 < 0 || i2 >= 4) ? 7 : x[(i0 * 3 + co[1]) * 4 + i2];
    assert_int_equal(y[t], want);
  }
  nc_end(&c);
  /* bfloat16 edge mode moves bits without conversion */
  uint16_t b[3] = {0x7fc1, 0x3f80, 0xff80};
  int64_t p[2] = {2, 1};
  const int64_t d3[1] = {3}, d2[1] = {2};
  nc_begin(&c, DRT_OP_PAD, 13);
  nc_input(&c, DRT_DTYPE_BFLOAT16, 1, d3, b, false);
  nc_input(&c, DRT_DTYPE_INT64, 1, d2, p, true);
  nc_node(&c);
  nc_str(&c, "mode", "edge");
  DRT_ASSERT_OK(nc_run(&c));
  const uint16_t want_b[6] = {0x7fc1, 0x7fc1, 0x7fc1, 0x3f80, 0xff80, 0xff80};
  assert_memory_equal(c.out.data, want_b, sizeof want_b);
  nc_end(&c);
  /* errors: non-constant pads, unknown mode, crop below zero, reflect on an empty axis */
  nc_begin(&c, DRT_OP_PAD, 13);
  nc_input(&c, DRT_DTYPE_BFLOAT16, 1, d3, b, false);
  nc_input(&c, DRT_DTYPE_INT64, 1, d2, p, false);
  nc_node(&c);
  DRT_ASSERT_ERROR(nc_run(&c), DRT_STATUS_UNSUPPORTED, "must be a compile-time constant");
  nc_end(&c);
  nc_begin(&c, DRT_OP_PAD, 13);
  nc_input(&c, DRT_DTYPE_BFLOAT16, 1, d3, b, false);
  nc_input(&c, DRT_DTYPE_INT64, 1, d2, p, true);
  nc_node(&c);
  nc_str(&c, "mode", "mirror");
  DRT_ASSERT_ERROR(nc_run(&c), DRT_STATUS_INVALID_ARGUMENT, "mirror");
  nc_end(&c);
  int64_t crop[2] = {-2, -2};
  nc_begin(&c, DRT_OP_PAD, 13);
  nc_input(&c, DRT_DTYPE_BFLOAT16, 1, d3, b, false);
  nc_input(&c, DRT_DTYPE_INT64, 1, d2, crop, true);
  nc_node(&c);
  DRT_ASSERT_ERROR(nc_run(&c), DRT_STATUS_INVALID_ARGUMENT, "negative size");
  nc_end(&c);
  const int64_t d0[1] = {0};
  nc_begin(&c, DRT_OP_PAD, 13);
  nc_input(&c, DRT_DTYPE_BFLOAT16, 1, d0, b, false);
  nc_input(&c, DRT_DTYPE_INT64, 1, d2, p, true);
  nc_node(&c);
  nc_str(&c, "mode", "reflect");
  DRT_ASSERT_ERROR(nc_run(&c), DRT_STATUS_INVALID_ARGUMENT, "size 0");
  nc_end(&c);
}

/* ---- Resize reference ------------------------------------------------------------------------------ */
typedef struct rz_cfg {
  const char *mode;   /* nearest, linear, cubic */
  const char *coord;  /* coordinate_transformation_mode */
  const char *nearest;
  double a;
  int exclude;
  int antialias;
  float ev;
} rz_cfg;

#define MAXTAP 64

typedef struct ref_axis {
  int n[64];
  int64_t idx[64][MAXTAP];
  double w[64][MAXTAP];
  bool ext[64];
} ref_axis;

static double ref_cubic(double d, double a) {
  d = fabs(d);
  if (d <= 1) return ((a + 2) * d - (a + 3)) * d * d + 1;
  if (d < 2) return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a;
  return 0;
}

/* Straight from the spec formulas: source coordinate, then taps = every input position within
 * the (possibly antialias-stretched) filter support, weights = filter(distance). */
static void ref_axis_build(const rz_cfg *cfg, int64_t in, int64_t out, double scale, double rlo, double rhi,
                           ref_axis *ax) {
  for (int64_t y = 0; y < out; y++) {
    double ow = scale * (double)in, x;
    const char *c = cfg->coord;
    if (!strcmp(c, "half_pixel")) x = (y + 0.5) / scale - 0.5;
    else if (!strcmp(c, "pytorch_half_pixel")) x = ow != 1 ? (y + 0.5) / scale - 0.5 : -0.5;
    else if (!strcmp(c, "align_corners")) x = ow == 1 ? 0 : y * (double)(in - 1) / (ow - 1);
    else if (!strcmp(c, "asymmetric")) x = y / scale;
    else if (!strcmp(c, "half_pixel_symmetric")) {
      double adj = (double)out / ow;
      x = in / 2.0 * (1 - adj) + (y + 0.5) / scale - 0.5;
    } else { /* tf_crop_and_resize */
      x = ow > 1 ? rlo * (in - 1) + y * (rhi - rlo) * (in - 1) / (ow - 1) : 0.5 * (rlo + rhi) * (in - 1);
    }
    ax->ext[y] = !strcmp(c, "tf_crop_and_resize") && (x < -1e-9 || x > in - 1 + 1e-9);
    int cnt = 0;
    if (!strcmp(cfg->mode, "nearest")) {
      double f = floor(x), i;
      const char *nm = cfg->nearest;
      if (!strcmp(nm, "floor")) i = f;
      else if (!strcmp(nm, "ceil")) i = ceil(x);
      else if (!strcmp(nm, "round_prefer_ceil")) i = floor(x + 0.5);
      else i = ceil(x - 0.5);
      ax->idx[y][0] = (int64_t)i;
      ax->w[y][0] = 1;
      cnt = 1;
    } else {
      bool lin = !strcmp(cfg->mode, "linear");
      double s = cfg->antialias && scale < 1 ? scale : 1.0;
      double support = (lin ? 1.0 : 2.0) / s;
      for (int64_t i = (int64_t)floor(x - support); i <= (int64_t)ceil(x + support); i++) {
        double d = ((double)i - x) * s;
        double w = lin ? (fabs(d) < 1 ? 1 - fabs(d) : 0) : ref_cubic(d, cfg->a);
        if (w == 0) continue;
        assert_true(cnt < MAXTAP);
        ax->idx[y][cnt] = i;
        ax->w[y][cnt++] = w;
      }
      double sum = 0;
      for (int k = 0; k < cnt; k++) {
        if (cfg->exclude && (ax->idx[y][k] < 0 || ax->idx[y][k] >= in)) ax->w[y][k] = 0;
        sum += ax->w[y][k];
      }
      if (cfg->antialias || cfg->exclude)
        for (int k = 0; k < cnt; k++) ax->w[y][k] /= sum;
    }
    for (int k = 0; k < cnt; k++) ax->idx[y][k] = ax->idx[y][k] < 0 ? 0 : (ax->idx[y][k] >= in ? in - 1 : ax->idx[y][k]);
    ax->n[y] = cnt;
  }
}

/* N-D (not separable) evaluation: sum over the tensor product of the per-axis taps. */
static void ref_resize(const rz_cfg *cfg, const float *x, int rank, const int64_t *xd, const int64_t *od,
                       const double *scales, const float *roi, float *y) {
  ref_axis *ax = calloc((size_t)rank, sizeof(ref_axis));
  assert_non_null(ax);
  for (int d = 0; d < rank; d++) {
    assert_true(od[d] <= 64);
    ref_axis_build(cfg, xd[d], od[d], scales[d], roi ? roi[d] : 0, roi ? roi[rank + d] : 1, &ax[d]);
  }
  int64_t total = numel_of(rank, od);
  for (int64_t t = 0; t < total; t++) {
    int64_t co[8];
    unravel(t, rank, od, co);
    bool ext = false;
    for (int d = 0; d < rank; d++) ext |= ax[d].ext[co[d]];
    if (ext) {
      y[t] = cfg->ev;
      continue;
    }
    int k[8] = {0};
    double acc = 0;
    for (;;) {
      double w = 1;
      int64_t off = 0;
      for (int d = 0; d < rank; d++) {
        w *= ax[d].w[co[d]][k[d]];
        off = off * xd[d] + ax[d].idx[co[d]][k[d]];
      }
      acc += w * x[off];
      int d = rank - 1;
      for (; d >= 0; d--) {
        if (++k[d] < ax[d].n[co[d]]) break;
        k[d] = 0;
      }
      if (d < 0) break;
    }
    y[t] = (float)acc;
  }
  free(ax);
}

/* Runs Resize-19 on a random float32 NCHW input with scales or sizes and checks the output. */
static void resize_case(drt_test_rng *rng, const rz_cfg *cfg, const int64_t *xd, const float *scales,
                        const int64_t *sizes, const float *roi, bool threaded) {
  int64_t xn = numel_of(4, xd), od[4];
  double sc[4];
  for (int d = 0; d < 4; d++) {
    if (scales) {
      od[d] = (int64_t)floor((double)xd[d] * (double)scales[d]);
      sc[d] = scales[d];
    } else {
      od[d] = sizes[d];
      sc[d] = (double)sizes[d] / (double)xd[d];
    }
  }
  float *x = malloc((size_t)xn * sizeof(float));
  drt_test_fill(rng, x, (size_t)xn, -1, 1);
  int64_t on = numel_of(4, od);
  float *want = malloc((size_t)on * sizeof(float));
  ref_resize(cfg, x, 4, xd, od, sc, roi, want);
  node_case c;
  nc_begin(&c, DRT_OP_RESIZE, 19);
  const int64_t d4[1] = {4}, d8[1] = {8};
  nc_input(&c, DRT_DTYPE_FLOAT32, 4, xd, x, false);
  if (roi) nc_input(&c, DRT_DTYPE_FLOAT32, 1, d8, roi, false);
  else nc_input(&c, DRT_DTYPE_UNDEFINED, 0, NULL, NULL, false);
  if (scales) {
    nc_input(&c, DRT_DTYPE_FLOAT32, 1, d4, scales, true);
  } else {
    nc_input(&c, DRT_DTYPE_UNDEFINED, 0, NULL, NULL, false);
    nc_input(&c, DRT_DTYPE_INT64, 1, d4, sizes, true);
  }
  nc_node(&c);
  nc_str(&c, "mode", cfg->mode);
  nc_str(&c, "coordinate_transformation_mode", cfg->coord);
  if (cfg->nearest) nc_str(&c, "nearest_mode", cfg->nearest);
  if (cfg->a != 0) nc_float(&c, "cubic_coeff_a", (float)cfg->a);
  if (cfg->exclude) nc_int(&c, "exclude_outside", 1);
  if (cfg->antialias) nc_int(&c, "antialias", 1);
  if (cfg->ev != 0) nc_float(&c, "extrapolation_value", cfg->ev);
  DRT_ASSERT_OK(nc_run(&c));
  assert_shape(&c.out, 4, od);
  if (drt_test_rel_l2(c.out.data, want, (size_t)on) > 1e-5)
    print_error("resize %s/%s/%s out %lldx%lldx%lldx%lld\n", cfg->mode, cfg->coord, cfg->nearest ? cfg->nearest : "-",
                (long long)od[0], (long long)od[1], (long long)od[2], (long long)od[3]);
  assert_close(c.out.data, want, (size_t)on, 1e-5);
  if (threaded) {
    void *again = nc_rerun_threaded(&c);
    assert_memory_equal(again, c.out.data, (size_t)on * sizeof(float));
    free(again);
  }
  nc_end(&c);
  free(x);
  free(want);
}

static void test_resize_nearest(void **state) {
  (void)state;
  drt_test_rng rng = {8};
  const int64_t xd[4] = {2, 3, 5, 7};
  /* (half_pixel_symmetric puts odd-sized centers on exact integers; down keeps W even so the
   * rounding of those coordinates does not decide the expected value) */
  const float up2[4] = {1, 1, 2, 2}, up3[4] = {1, 1, 3, 1.5f}, down[4] = {1, 1, 0.6f, 0.4f};
  const int64_t sz1[4] = {2, 3, 9, 4}, sz2[4] = {1, 3, 8, 13};
  const char *nms[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
  const char *coords[] = {"half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel", "half_pixel_symmetric"};
  for (int ci = 0; ci < 5; ci++)
    for (int ni = 0; ni < 4; ni++) {
      rz_cfg cfg = {"nearest", coords[ci], nms[ni], 0, 0, 0, 0};
      resize_case(&rng, &cfg, xd, up2, NULL, NULL, ci == 0 && ni == 0);
      resize_case(&rng, &cfg, xd, up3, NULL, NULL, false);
      resize_case(&rng, &cfg, xd, down, NULL, NULL, false);
      resize_case(&rng, &cfg, xd, NULL, sz1, NULL, false);
      resize_case(&rng, &cfg, xd, NULL, sz2, NULL, false);
    }
  /* diffusion fast path: 2x nearest of a bigger NCHW tensor, serial and threaded */
  const int64_t big[4] = {1, 8, 16, 24};
  rz_cfg cfg = {"nearest", "asymmetric", "floor", 0, 0, 0, 0};
  resize_case(&rng, &cfg, big, up2, NULL, NULL, true);
}

static void test_resize_linear_cubic(void **state) {
  (void)state;
  drt_test_rng rng = {9};
  const int64_t xd[4] = {2, 3, 5, 7};
  const float up2[4] = {1, 1, 2, 2}, mixed[4] = {1, 1, 1.5f, 0.7f}, down[4] = {1, 1, 0.8f, 0.6f},
              odd[4] = {1, 1, 2.3f, 2.94f}, chan[4] = {1, 2, 1.6f, 1};
  const int64_t sz1[4] = {2, 3, 8, 11}, sz2[4] = {2, 3, 1, 3}, sz3[4] = {2, 3, 3, 4};
  const char *coords[] = {"half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel", "half_pixel_symmetric"};
  for (int m = 0; m < 2; m++)
    for (int ci = 0; ci < 5; ci++) {
      rz_cfg cfg = {m ? "cubic" : "linear", coords[ci], NULL, -0.75, 0, 0, 0};
      resize_case(&rng, &cfg, xd, up2, NULL, NULL, ci == 0);
      resize_case(&rng, &cfg, xd, mixed, NULL, NULL, false);
      resize_case(&rng, &cfg, xd, down, NULL, NULL, false);
      resize_case(&rng, &cfg, xd, odd, NULL, NULL, false);
      resize_case(&rng, &cfg, xd, chan, NULL, NULL, true); /* separable path over 2 axes incl. C */
      resize_case(&rng, &cfg, xd, NULL, sz1, NULL, false);
      resize_case(&rng, &cfg, xd, NULL, sz2, NULL, false);
    }
  /* cubic with A = -0.5 and exclude_outside */
  rz_cfg ex = {"cubic", "half_pixel", NULL, -0.5, 1, 0, 0};
  resize_case(&rng, &ex, xd, up2, NULL, NULL, false);
  resize_case(&rng, &ex, xd, down, NULL, NULL, false);
  /* antialias downsampling */
  const float aa[4] = {1, 1, 0.6f, 0.35f};
  rz_cfg al = {"linear", "half_pixel", NULL, 0, 0, 1, 0};
  rz_cfg ac = {"cubic", "half_pixel", NULL, -0.5, 0, 1, 0};
  const int64_t xl[4] = {1, 2, 11, 16};
  resize_case(&rng, &al, xl, aa, NULL, NULL, true);
  resize_case(&rng, &ac, xl, aa, NULL, NULL, false);
  resize_case(&rng, &al, xl, NULL, sz3, NULL, false);
  /* tf_crop_and_resize with extrapolation */
  const float roi[8] = {0, 0, 0.4f, -0.2f, 1, 1, 0.6f, 1.25f};
  rz_cfg tf = {"linear", "tf_crop_and_resize", NULL, 0, 0, 0, 10.0f};
  resize_case(&rng, &tf, xd, NULL, sz1, roi, false);
  resize_case(&rng, &tf, xd, NULL, sz2, roi, false);
  tf.mode = "cubic";
  tf.a = -0.75;
  resize_case(&rng, &tf, xd, NULL, sz1, roi, false);
  tf.mode = "nearest";
  tf.nearest = "round_prefer_ceil";
  resize_case(&rng, &tf, xd, NULL, sz1, roi, false);
  /* bilinear fast path on a bigger tensor */
  const int64_t big[4] = {2, 4, 17, 19};
  rz_cfg bl = {"linear", "half_pixel", NULL, 0, 0, 0, 0};
  resize_case(&rng, &bl, big, up2, NULL, NULL, true);
}

/* axes attribute, keep_aspect_ratio_policy, non-float dtypes, float16 promotion. */
static void test_resize_axes_policy_dtypes(void **state) {
  (void)state;
  drt_test_rng rng = {10};
  const int64_t xd[4] = {1, 2, 4, 6};
  float x[48];
  drt_test_fill(&rng, x, 48, -1, 1);
  /* axes [3, 2] with scales [1.5, 2]: the same as scales [1, 1, 2, 1.5] */
  float s2[2] = {1.5f, 2}, s4[4] = {1, 1, 2, 1.5f};
  int64_t axes[2] = {3, -2};
  const int64_t d2[1] = {2};
  node_case c;
  nc_begin(&c, DRT_OP_RESIZE, 18);
  nc_input(&c, DRT_DTYPE_FLOAT32, 4, xd, x, false);
  nc_input(&c, DRT_DTYPE_UNDEFINED, 0, NULL, NULL, false);
  nc_input(&c, DRT_DTYPE_FLOAT32, 1, d2, s2, true);
  nc_node(&c);
  nc_ints(&c, "axes", axes, 2);
  nc_str(&c, "mode", "linear");
  DRT_ASSERT_OK(nc_run(&c));
  const int64_t od[4] = {1, 2, 8, 9};
  assert_shape(&c.out, 4, od);
  float want[144];
  rz_cfg lin = {"linear", "half_pixel", NULL, 0, 0, 0, 0};
  double sd[4] = {1, 1, 2, 1.5};
  ref_resize(&lin, x, 4, xd, od, sd, NULL, want);
  assert_close(c.out.data, want, 144, 1e-5);
  nc_end(&c);
  (void)s4;

  /* keep_aspect_ratio_policy: sizes [7, 8] on 4x6 -> not_larger scale 1.333 -> 5x8; not_smaller 1.75 -> 7x11 */
  const char *pol[2] = {"not_larger", "not_smaller"};
  const int64_t want_hw[2][2] = {{5, 8}, {7, 11}};
  const double want_s[2] = {8.0 / 6.0, 7.0 / 4.0};
  int64_t sizes[2] = {7, 8};
  int64_t ax23[2] = {2, 3};
  for (int p = 0; p < 2; p++) {
    nc_begin(&c, DRT_OP_RESIZE, 18);
    nc_input(&c, DRT_DTYPE_FLOAT32, 4, xd, x, false);
    nc_input(&c, DRT_DTYPE_UNDEFINED, 0, NULL, NULL, false);
    nc_input(&c, DRT_DTYPE_UNDEFINED, 0, NULL, NULL, false);
    nc_input(&c, DRT_DTYPE_INT64, 1, d2, sizes, true);
    nc_node(&c);
    nc_ints(&c, "axes", ax23, 2);
    nc_str(&c, "keep_aspect_ratio_policy", pol[p]);
    nc_str(&c, "mode", "nearest");
    DRT_ASSERT_OK(nc_run(&c));
    const int64_t o[4] = {1, 2, want_hw[p][0], want_hw[p][1]};
    assert_shape(&c.out, 4, o);
    double ss[4] = {1, 1, want_s[p], want_s[p]};
    rz_cfg nn = {"nearest", "half_pixel", "round_prefer_floor", 0, 0, 0, 0};
    float *w = malloc(sizeof(float) * (size_t)numel_of(4, o));
    ref_resize(&nn, x, 4, xd, o, ss, NULL, w);
    assert_close(c.out.data, w, (size_t)numel_of(4, o), 1e-6);
    free(w);
    nc_end(&c);
  }

  /* nearest on uint8 and int64 (moved by element size), linear on int32 (rounded) */
  uint8_t u8[48];
  int64_t i64[48];
  int32_t i32[48];
  float xf[48];
  for (int i = 0; i < 48; i++) {
    u8[i] = (uint8_t)rand_int(&rng, 0, 255);
    i64[i] = rand_int(&rng, -1000000, 1000000) * 1000000;
    i32[i] = (int32_t)rand_int(&rng, -50, 50);
  }
  const float up[4] = {1, 1, 2, 2};
  const int64_t d4[1] = {4}, ou[4] = {1, 2, 8, 12};
  float wn[192];
  rz_cfg nn = {"nearest", "half_pixel", "round_prefer_floor", 0, 0, 0, 0};
  double sup[4] = {1, 1, 2, 2};
  for (int i = 0; i < 48; i++) xf[i] = (float)i; /* reference on positions */
  ref_resize(&nn, xf, 4, xd, ou, sup, NULL, wn);
  for (int t = 0; t < 2; t++) {
    nc_begin(&c, DRT_OP_RESIZE, 13);
    nc_input(&c, t ? DRT_DTYPE_INT64 : DRT_DTYPE_UINT8, 4, xd, t ? (void *)i64 : (void *)u8, false);
    nc_input(&c, DRT_DTYPE_UNDEFINED, 0, NULL, NULL, false);
    nc_input(&c, DRT_DTYPE_FLOAT32, 1, d4, up, true);
    nc_node(&c);
    DRT_ASSERT_OK(nc_run(&c));
    assert_shape(&c.out, 4, ou);
    for (int i = 0; i < 192; i++) {
      int src = (int)wn[i];
      if (t) assert_int_equal(((int64_t *)c.out.data)[i], i64[src]);
      else assert_int_equal(((uint8_t *)c.out.data)[i], u8[src]);
    }
    nc_end(&c);
  }
  for (int i = 0; i < 48; i++) xf[i] = (float)i32[i];
  ref_resize(&lin, xf, 4, xd, ou, sup, NULL, wn);
  nc_begin(&c, DRT_OP_RESIZE, 13);
  nc_input(&c, DRT_DTYPE_INT32, 4, xd, i32, false);
  nc_input(&c, DRT_DTYPE_UNDEFINED, 0, NULL, NULL, false);
  nc_input(&c, DRT_DTYPE_FLOAT32, 1, d4, up, true);
  nc_node(&c);
  nc_str(&c, "mode", "linear");
  DRT_ASSERT_OK(nc_run(&c));
  for (int i = 0; i < 192; i++) assert_int_equal(((int32_t *)c.out.data)[i], (int32_t)nearbyint(wn[i]));
  nc_end(&c);

  /* float64: nearest moves values exactly (no float32 round trip), linear interpolates */
  double dx[48];
  for (int i = 0; i < 48; i++) dx[i] = 0.1 + (double)i * 1e-12;
  for (int i = 0; i < 48; i++) xf[i] = (float)i;
  ref_resize(&nn, xf, 4, xd, ou, sup, NULL, wn);
  nc_begin(&c, DRT_OP_RESIZE, 19);
  nc_input(&c, DRT_DTYPE_FLOAT64, 4, xd, dx, false);
  nc_input(&c, DRT_DTYPE_UNDEFINED, 0, NULL, NULL, false);
  nc_input(&c, DRT_DTYPE_FLOAT32, 1, d4, up, true);
  nc_node(&c);
  DRT_ASSERT_OK(nc_run(&c));
  assert_int_equal(c.out.dtype, DRT_DTYPE_FLOAT64);
  for (int i = 0; i < 192; i++) assert_true(((double *)c.out.data)[i] == dx[(int)wn[i]]);
  nc_end(&c);
  for (int i = 0; i < 48; i++) {
    dx[i] = x[i];
    xf[i] = x[i];
  }
  ref_resize(&lin, xf, 4, xd, ou, sup, NULL, wn);
  nc_begin(&c, DRT_OP_RESIZE, 19);
  nc_input(&c, DRT_DTYPE_FLOAT64, 4, xd, dx, false);
  nc_input(&c, DRT_DTYPE_UNDEFINED, 0, NULL, NULL, false);
  nc_input(&c, DRT_DTYPE_FLOAT32, 1, d4, up, true);
  nc_node(&c);
  nc_str(&c, "mode", "linear");
  DRT_ASSERT_OK(nc_run(&c));
  float gotd[192];
  for (int i = 0; i < 192; i++) gotd[i] = (float)((double *)c.out.data)[i];
  assert_close(gotd, wn, 192, 1e-5);
  nc_end(&c);

  /* float16 linear goes through float32 */
  uint16_t h[48];
  for (int i = 0; i < 48; i++) {
    h[i] = drt_f32_to_f16(x[i]);
    xf[i] = drt_f16_to_f32(h[i]);
  }
  ref_resize(&lin, xf, 4, xd, ou, sup, NULL, wn);
  nc_begin(&c, DRT_OP_RESIZE, 19);
  nc_input(&c, DRT_DTYPE_FLOAT16, 4, xd, h, false);
  nc_input(&c, DRT_DTYPE_UNDEFINED, 0, NULL, NULL, false);
  nc_input(&c, DRT_DTYPE_FLOAT32, 1, d4, up, true);
  nc_node(&c);
  nc_str(&c, "mode", "linear");
  DRT_ASSERT_OK(nc_run(&c));
  assert_int_equal(c.out.dtype, DRT_DTYPE_FLOAT16);
  float got[192];
  for (int i = 0; i < 192; i++) got[i] = drt_f16_to_f32(((uint16_t *)c.out.data)[i]);
  assert_close(got, wn, 192, 1e-3);
  nc_end(&c);
}

static void test_resize_opset10_upsample(void **state) {
  (void)state;
  drt_test_rng rng = {11};
  const int64_t xd[4] = {1, 2, 3, 4};
  float x[24];
  drt_test_fill(&rng, x, 24, -1, 1);
  const float sc[4] = {1, 1, 2, 3};
  const int64_t d4[1] = {4}, od[4] = {1, 2, 6, 12};
  /* nearest: source = trunc(y / scale) (asymmetric, no rounding) */
  float want[144];
  for (int64_t t = 0; t < 144; t++) {
    int64_t co[4];
    unravel(t, 4, od, co);
    co[2] = co[2] / 2;
    co[3] = co[3] / 3;
    want[t] = x[ravel(4, xd, co)];
  }
  for (int v = 0; v < 3; v++) {
    node_case c;
    int opset = v == 0 ? 7 : (v == 1 ? 9 : 10);
    nc_begin(&c, v == 2 ? DRT_OP_RESIZE : DRT_OP_UPSAMPLE, opset);
    nc_input(&c, DRT_DTYPE_FLOAT32, 4, xd, x, false);
    if (opset >= 9) nc_input(&c, DRT_DTYPE_FLOAT32, 1, d4, sc, true);
    nc_node(&c);
    if (opset == 7) nc_floats(&c, "scales", sc, 4);
    DRT_ASSERT_OK(nc_run(&c));
    assert_shape(&c.out, 4, od);
    assert_memory_equal(c.out.data, want, sizeof want);
    nc_end(&c);
  }
  /* linear: asymmetric coordinates */
  rz_cfg lin = {"linear", "asymmetric", NULL, 0, 0, 0, 0};
  double sd[4] = {1, 1, 2, 3};
  ref_resize(&lin, x, 4, xd, od, sd, NULL, want);
  node_case c;
  nc_begin(&c, DRT_OP_UPSAMPLE, 9);
  nc_input(&c, DRT_DTYPE_FLOAT32, 4, xd, x, false);
  nc_input(&c, DRT_DTYPE_FLOAT32, 1, d4, sc, true);
  nc_node(&c);
  nc_str(&c, "mode", "linear");
  DRT_ASSERT_OK(nc_run(&c));
  assert_close(c.out.data, want, 144, 1e-5);
  nc_end(&c);
  /* Resize-10 downsampling nearest rounds the source coordinate up */
  const float dn[4] = {1, 1, 0.5f, 0.5f};
  nc_begin(&c, DRT_OP_RESIZE, 10);
  nc_input(&c, DRT_DTYPE_FLOAT32, 4, xd, x, false);
  nc_input(&c, DRT_DTYPE_FLOAT32, 1, d4, dn, true);
  nc_node(&c);
  DRT_ASSERT_OK(nc_run(&c));
  const int64_t o2[4] = {1, 2, 1, 2};
  assert_shape(&c.out, 4, o2);
  const float *y = c.out.data;
  assert_true(y[0] == x[0] && y[1] == x[2] && y[2] == x[12] && y[3] == x[14]);
  nc_end(&c);
  /* Upsample scales must be constant */
  nc_begin(&c, DRT_OP_UPSAMPLE, 9);
  nc_input(&c, DRT_DTYPE_FLOAT32, 4, xd, x, false);
  nc_input(&c, DRT_DTYPE_FLOAT32, 1, d4, sc, false);
  nc_node(&c);
  DRT_ASSERT_ERROR(nc_run(&c), DRT_STATUS_UNSUPPORTED, "must be a compile-time constant");
  nc_end(&c);
}

static void test_resize_errors(void **state) {
  (void)state;
  const int64_t xd[4] = {1, 1, 2, 2}, d4[1] = {4};
  float x[4] = {1, 2, 3, 4};
  const float sc[4] = {1, 1, 2, 2};
  const int64_t sz[4] = {1, 1, 4, 4};
  node_case c;
  /* non-constant scales */
  nc_begin(&c, DRT_OP_RESIZE, 13);
  nc_input(&c, DRT_DTYPE_FLOAT32, 4, xd, x, false);
  nc_input(&c, DRT_DTYPE_UNDEFINED, 0, NULL, NULL, false);
  nc_input(&c, DRT_DTYPE_FLOAT32, 1, d4, sc, false);
  nc_node(&c);
  DRT_ASSERT_ERROR(nc_run(&c), DRT_STATUS_UNSUPPORTED, "must be a compile-time constant");
  nc_end(&c);
  /* non-constant sizes */
  nc_begin(&c, DRT_OP_RESIZE, 13);
  nc_input(&c, DRT_DTYPE_FLOAT32, 4, xd, x, false);
  nc_input(&c, DRT_DTYPE_UNDEFINED, 0, NULL, NULL, false);
  nc_input(&c, DRT_DTYPE_UNDEFINED, 0, NULL, NULL, false);
  nc_input(&c, DRT_DTYPE_INT64, 1, d4, sz, false);
  nc_node(&c);
  DRT_ASSERT_ERROR(nc_run(&c), DRT_STATUS_UNSUPPORTED, "must be a compile-time constant");
  nc_end(&c);
  /* both scales and sizes */
  nc_begin(&c, DRT_OP_RESIZE, 13);
  nc_input(&c, DRT_DTYPE_FLOAT32, 4, xd, x, false);
  nc_input(&c, DRT_DTYPE_UNDEFINED, 0, NULL, NULL, false);
  nc_input(&c, DRT_DTYPE_FLOAT32, 1, d4, sc, true);
  nc_input(&c, DRT_DTYPE_INT64, 1, d4, sz, true);
  nc_node(&c);
  DRT_ASSERT_ERROR(nc_run(&c), DRT_STATUS_INVALID_ARGUMENT, "exactly one of 'scales' and 'sizes'");
  nc_end(&c);
  /* unknown mode, unknown coordinate mode, wrong scales count, tf_crop_and_resize without roi */
  const char *attr[3] = {"mode", "coordinate_transformation_mode", "nearest_mode"};
  for (int i = 0; i < 3; i++) {
    nc_begin(&c, DRT_OP_RESIZE, 13);
    nc_input(&c, DRT_DTYPE_FLOAT32, 4, xd, x, false);
    nc_input(&c, DRT_DTYPE_UNDEFINED, 0, NULL, NULL, false);
    nc_input(&c, DRT_DTYPE_FLOAT32, 1, d4, sc, true);
    nc_node(&c);
    nc_str(&c, attr[i], "bogus");
    DRT_ASSERT_ERROR(nc_run(&c), DRT_STATUS_INVALID_ARGUMENT, attr[i]);
    nc_end(&c);
  }
  const int64_t d3[1] = {3};
  nc_begin(&c, DRT_OP_RESIZE, 13);
  nc_input(&c, DRT_DTYPE_FLOAT32, 4, xd, x, false);
  nc_input(&c, DRT_DTYPE_UNDEFINED, 0, NULL, NULL, false);
  nc_input(&c, DRT_DTYPE_FLOAT32, 1, d3, sc, true);
  nc_node(&c);
  DRT_ASSERT_ERROR(nc_run(&c), DRT_STATUS_INVALID_ARGUMENT, "has 3 values, expected 4");
  nc_end(&c);
  nc_begin(&c, DRT_OP_RESIZE, 13);
  nc_input(&c, DRT_DTYPE_FLOAT32, 4, xd, x, false);
  nc_input(&c, DRT_DTYPE_UNDEFINED, 0, NULL, NULL, false);
  nc_input(&c, DRT_DTYPE_FLOAT32, 1, d4, sc, true);
  nc_node(&c);
  nc_str(&c, "coordinate_transformation_mode", "tf_crop_and_resize");
  DRT_ASSERT_ERROR(nc_run(&c), DRT_STATUS_INVALID_ARGUMENT, "roi");
  nc_end(&c);
  const float neg[4] = {1, 1, -2, 2};
  nc_begin(&c, DRT_OP_RESIZE, 13);
  nc_input(&c, DRT_DTYPE_FLOAT32, 4, xd, x, false);
  nc_input(&c, DRT_DTYPE_UNDEFINED, 0, NULL, NULL, false);
  nc_input(&c, DRT_DTYPE_FLOAT32, 1, d4, neg, true);
  nc_node(&c);
  DRT_ASSERT_ERROR(nc_run(&c), DRT_STATUS_INVALID_ARGUMENT, "positive");
  nc_end(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gather),
      cmocka_unit_test(test_gather_dtypes_and_errors),
      cmocka_unit_test(test_gather_elements),
      cmocka_unit_test(test_scatter_elements),
      cmocka_unit_test(test_gather_nd),
      cmocka_unit_test(test_scatter_nd),
      cmocka_unit_test(test_pad),
      cmocka_unit_test(test_pad_axes_and_dtypes),
      cmocka_unit_test(test_resize_nearest),
      cmocka_unit_test(test_resize_linear_cubic),
      cmocka_unit_test(test_resize_axes_policy_dtypes),
      cmocka_unit_test(test_resize_opset10_upsample),
      cmocka_unit_test(test_resize_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
