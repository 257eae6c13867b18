/* Movement ops (Reshape, Transpose, Flatten, Squeeze, Unsqueeze, Concat, Split, Slice, Expand,
 * Tile, DepthToSpace, SpaceToDepth, Trilu, Shape, Size, ConstantOfShape, Range): inference +
 * CPU kernel against naive index-arithmetic references, across element sizes (float32,
 * int64, uint8/bool, float16 as raw int16 bit patterns), serial and threaded, plus errors. */
#include "testutil.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer.h"

/* ---- harness ------------------------------------------------------------------------------ */
typedef struct harness {
  drt_graph *g;
  drt_node *n;
  void *in_data[8]; /* data of the non-constant inputs (owned) */
  drt_tensor out[16];
  int nout;
  drt_test_rng rng;
} harness;

static drt_threadpool *g_pool;

static void h_init(harness *h, uint64_t seed) {
  memset(h, 0, sizeof *h);
  DRT_ASSERT_OK(drt_graph_create(&h->g));
  h->rng.s = seed;
}

static void h_free(harness *h) {
  for (int i = 0; i < 8; i++) free(h->in_data[i]);
  for (int i = 0; i < h->nout; i++) free(h->out[i].data);
  drt_graph_destroy(h->g);
  memset(h, 0, sizeof *h);
}

/* Random data: float32 gets uniform non-zero floats, others random bytes (float16 thus gets
 * arbitrary bit patterns, NaN payloads included, which a float promotion would not keep). */
static void *rand_data(drt_test_rng *r, drt_dtype dt, int64_t numel) {
  size_t es = drt_dtype_size(dt), nb = (size_t)numel * es;
  uint8_t *p = malloc(nb ? nb : 1);
  assert_non_null(p);
  if (dt == DRT_DTYPE_FLOAT32) {
    float *f = (float *)p;
    for (int64_t i = 0; i < numel; i++) {
      f[i] = drt_test_uniform(r, 0.5f, 2.0f);
      if (drt_test_next(r) & 1) f[i] = -f[i];
    }
  } else if (dt == DRT_DTYPE_BOOL) {
    for (size_t i = 0; i < nb; i++) p[i] = (uint8_t)(drt_test_next(r) & 1);
  } else {
    for (size_t i = 0; i < nb; i++) p[i] = (uint8_t)(drt_test_next(r) | 1);
  }
  return p;
}

/* Adds a runtime (non-constant) input with random data; its data is kept in in_data[slot]. */
static drt_value *h_input(harness *h, int slot, drt_dtype dt, int rank, const int64_t *dims) {
  drt_shape s = drt_test_shape(rank, dims);
  char name[16];
  snprintf(name, sizeof name, "x%d", slot);
  drt_value *v = drt_graph_add_value(h->g, name, dt, &s);
  assert_non_null(v);
  DRT_ASSERT_OK(drt_graph_add_input(h->g, v));
  free(h->in_data[slot]);
  h->in_data[slot] = rand_data(&h->rng, dt, drt_shape_numel(&s));
  return v;
}

static drt_value *h_const(harness *h, drt_dtype dt, int rank, const int64_t *dims, const void *data) {
  drt_shape s = drt_test_shape(rank, dims);
  drt_value *v;
  DRT_ASSERT_OK(drt_graph_add_const(h->g, NULL, dt, &s, data, &v));
  return v;
}

static drt_value *h_ints(harness *h, int64_t count, const int64_t *vals) {
  return h_const(h, DRT_DTYPE_INT64, 1, &count, vals);
}

static drt_value *h_i64_scalar(harness *h, int64_t v) { return h_const(h, DRT_DTYPE_INT64, 0, NULL, &v); }

static void h_node(harness *h, drt_op op, int opset, drt_value *const *ins, int nin, int nout) {
  drt_value *outs[16];
  for (int i = 0; i < nout; i++) outs[i] = drt_graph_add_value(h->g, NULL, DRT_DTYPE_UNDEFINED, NULL);
  DRT_ASSERT_OK(drt_graph_add_node(h->g, op, "node", ins, nin, outs, nout, &h->n));
  h->n->opset = opset;
  h->nout = nout;
}

static void attr_ints(harness *h, const char *name, int64_t count, const int64_t *v) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_INTS;
  a.count = count;
  a.ints = (int64_t *)v;
  DRT_ASSERT_OK(drt_node_add_attr(h->g, h->n, &a));
}

static void attr_int(harness *h, const char *name, int64_t v) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_INT;
  a.i = v;
  DRT_ASSERT_OK(drt_node_add_attr(h->g, h->n, &a));
}

static void attr_str(harness *h, const char *name, const char *s) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_STRING;
  a.s = s;
  a.s_len = strlen(s);
  DRT_ASSERT_OK(drt_node_add_attr(h->g, h->n, &a));
}

/* Infers, allocates outputs and runs the kernel (threaded when `threaded`). */
static drt_status h_run(harness *h, bool threaded) {
  DRT_RETURN_IF_ERROR(drt_infer_node(h->g, h->n));
  drt_tensor in[16];
  for (int i = 0; i < h->n->num_inputs; i++) {
    drt_value *v = h->n->inputs[i];
    memset(&in[i], 0, sizeof in[i]);
    if (!v) continue;
    in[i].dtype = v->dtype;
    in[i].shape = v->shape;
    if (v->kind == DRT_VALUE_CONST) {
      in[i].data = v->data;
    } else {
      for (int s = 0; s < 8; s++) {
        char name[16];
        snprintf(name, sizeof name, "x%d", s);
        if (!strcmp(v->name, name)) in[i].data = h->in_data[s];
      }
    }
  }
  for (int i = 0; i < h->nout; i++) {
    free(h->out[i].data);
    h->out[i].dtype = h->n->outputs[i]->dtype;
    h->out[i].shape = h->n->outputs[i]->shape;
    size_t nb = drt_tensor_nbytes(&h->out[i]);
    h->out[i].data = malloc(nb ? nb : 1);
    assert_non_null(h->out[i].data);
    memset(h->out[i].data, 0xA5, nb ? nb : 1); /* poison: every byte must be written */
  }
  drt_cpu_ctx ctx = {threaded ? g_pool : NULL, threaded ? 3 : 1};
  return drt_cpu_run_node(&ctx, h->n, in, h->out);
}

static void check_shape(const drt_tensor *t, int rank, const int64_t *dims) {
  drt_shape want = drt_test_shape(rank, dims);
  if (!drt_shape_equal(&t->shape, &want)) {
    char a[128], b[128];
    print_error("shape %s, expected %s\n", drt_shape_str(&t->shape, a, sizeof a), drt_shape_str(&want, b, sizeof b));
    fail();
  }
}

/* Exact comparison (data movement never changes bits). */
static void check_bytes(const drt_tensor *t, const void *ref) {
  size_t nb = drt_tensor_nbytes(t);
  if (nb && memcmp(t->data, ref, nb) != 0) {
    size_t es = drt_dtype_size(t->dtype);
    for (size_t i = 0; i < nb; i++)
      if (((const uint8_t *)t->data)[i] != ((const uint8_t *)ref)[i]) {
        print_error("%s: first mismatch at element %zu\n", drt_dtype_name(t->dtype), i / es);
        break;
      }
    fail();
  }
}

/* Naive reference: out[o] = in[src(oidx)] (src < 0: zero) for every output multi-index. */
typedef int64_t (*src_index_fn)(const int64_t *oidx, const void *arg);

static void *ref_map(size_t es, const void *in, const drt_shape *os, src_index_fn f, const void *arg) {
  int64_t numel = drt_shape_numel(os);
  uint8_t *out = malloc(numel ? (size_t)numel * es : 1);
  assert_non_null(out);
  int64_t idx[16] = {0};
  for (int64_t o = 0; o < numel; o++) {
    int64_t rem = o;
    for (int k = os->rank - 1; k >= 0; k--) {
      idx[k] = rem % os->dims[k];
      rem /= os->dims[k];
    }
    int64_t s = f(idx, arg);
    if (s < 0)
      memset(out + o * (int64_t)es, 0, es);
    else
      memcpy(out + o * (int64_t)es, (const uint8_t *)in + s * (int64_t)es, es);
  }
  return out;
}

static int64_t flat(const drt_shape *s, const int64_t *idx) {
  int64_t f = 0;
  for (int k = 0; k < s->rank; k++) f = f * s->dims[k] + idx[k];
  return f;
}

static const drt_dtype k_dtypes[] = {DRT_DTYPE_FLOAT32, DRT_DTYPE_INT64, DRT_DTYPE_UINT8, DRT_DTYPE_BOOL,
                                     DRT_DTYPE_FLOAT16};
#define NDT ((int)(sizeof k_dtypes / sizeof k_dtypes[0]))

/* ---- Reshape / Flatten / Squeeze / Unsqueeze ------------------------------------------------- */
static void run_copy_case(drt_op op, int opset, drt_dtype dt, int rank, const int64_t *dims, drt_value *(*second)(harness *),
                          void (*attrs)(harness *), int orank, const int64_t *odims) {
  harness h;
  h_init(&h, 11);
  drt_value *ins[2] = {h_input(&h, 0, dt, rank, dims), second ? second(&h) : NULL};
  h_node(&h, op, opset, ins, second ? 2 : 1, 1);
  if (attrs) attrs(&h);
  DRT_ASSERT_OK(h_run(&h, false));
  check_shape(&h.out[0], orank, odims);
  check_bytes(&h.out[0], h.in_data[0]);
  h_free(&h);
}

static drt_value *shape_0m12(harness *h) { return h_ints(h, 3, (int64_t[]){0, -1, 2}); }
static drt_value *shape_empty(harness *h) { return h_ints(h, 0, NULL); }
static drt_value *shape_30(harness *h) { return h_ints(h, 2, (int64_t[]){3, 0}); }
static void allowzero(harness *h) { attr_int(h, "allowzero", 1); }
static void flat_axis0(harness *h) { attr_int(h, "axis", 0); }
static void flat_axism1(harness *h) { attr_int(h, "axis", -1); }
static void flat_axis3(harness *h) { attr_int(h, "axis", 3); }
static drt_value *axes_m1_1(harness *h) { return h_ints(h, 2, (int64_t[]){-1, 1}); }
static void axes_attr_0_m1(harness *h) { attr_ints(h, "axes", 2, (int64_t[]){0, -1}); }
static void axes_attr_0_3(harness *h) { attr_ints(h, "axes", 2, (int64_t[]){0, 3}); }
static drt_value *axes_0(harness *h) { return h_ints(h, 1, (int64_t[]){0}); }

static void test_reshape_family(void **state) {
  (void)state;
  for (int t = 0; t < NDT; t++) {
    drt_dtype dt = k_dtypes[t];
    run_copy_case(DRT_OP_RESHAPE, 14, dt, 3, (int64_t[]){2, 3, 4}, shape_0m12, NULL, 3, (int64_t[]){2, 6, 2});
    run_copy_case(DRT_OP_RESHAPE, 14, dt, 2, (int64_t[]){1, 1}, shape_empty, NULL, 0, NULL);
    run_copy_case(DRT_OP_RESHAPE, 14, dt, 2, (int64_t[]){0, 3}, shape_30, allowzero, 2, (int64_t[]){3, 0});
    run_copy_case(DRT_OP_FLATTEN, 13, dt, 3, (int64_t[]){2, 3, 4}, NULL, NULL, 2, (int64_t[]){2, 12});
    run_copy_case(DRT_OP_FLATTEN, 13, dt, 3, (int64_t[]){2, 3, 4}, NULL, flat_axis0, 2, (int64_t[]){1, 24});
    run_copy_case(DRT_OP_FLATTEN, 13, dt, 3, (int64_t[]){2, 3, 4}, NULL, flat_axism1, 2, (int64_t[]){6, 4});
    run_copy_case(DRT_OP_FLATTEN, 13, dt, 3, (int64_t[]){2, 3, 4}, NULL, flat_axis3, 2, (int64_t[]){24, 1});
    run_copy_case(DRT_OP_SQUEEZE, 13, dt, 4, (int64_t[]){2, 1, 3, 1}, axes_m1_1, NULL, 2, (int64_t[]){2, 3});
    run_copy_case(DRT_OP_SQUEEZE, 11, dt, 3, (int64_t[]){1, 5, 1}, NULL, axes_attr_0_m1, 1, (int64_t[]){5});
    run_copy_case(DRT_OP_SQUEEZE, 13, dt, 4, (int64_t[]){1, 5, 1, 1}, NULL, NULL, 1, (int64_t[]){5});
    run_copy_case(DRT_OP_UNSQUEEZE, 11, dt, 2, (int64_t[]){3, 4}, NULL, axes_attr_0_3, 4, (int64_t[]){1, 3, 4, 1});
    run_copy_case(DRT_OP_UNSQUEEZE, 13, dt, 2, (int64_t[]){3, 4}, axes_m1_1, NULL, 4, (int64_t[]){3, 1, 4, 1});
    run_copy_case(DRT_OP_UNSQUEEZE, 13, dt, 0, NULL, axes_0, NULL, 1, (int64_t[]){1});
  }
  /* a large copy goes through the threaded memcpy path */
  harness h;
  h_init(&h, 12);
  drt_value *ins[2] = {h_input(&h, 0, DRT_DTYPE_FLOAT32, 2, (int64_t[]){300, 1000}), h_ints(&h, 1, (int64_t[]){-1})};
  h_node(&h, DRT_OP_RESHAPE, 14, ins, 2, 1);
  DRT_ASSERT_OK(h_run(&h, true));
  check_shape(&h.out[0], 1, (int64_t[]){300000});
  check_bytes(&h.out[0], h.in_data[0]);
  h_free(&h);
}

static void expect_error(drt_op op, int opset, int rank, const int64_t *dims, drt_value *(*second)(harness *),
                         bool second_runtime, void (*attrs)(harness *), drt_status_code code, const char *needle) {
  harness h;
  h_init(&h, 13);
  drt_value *ins[2] = {h_input(&h, 0, DRT_DTYPE_FLOAT32, rank, dims), NULL};
  if (second_runtime)
    ins[1] = h_input(&h, 1, DRT_DTYPE_INT64, 1, (int64_t[]){2});
  else if (second)
    ins[1] = second(&h);
  h_node(&h, op, opset, ins, ins[1] ? 2 : 1, 1);
  if (attrs) attrs(&h);
  DRT_ASSERT_ERROR(h_run(&h, false), code, needle);
  h_free(&h);
}

static drt_value *shape_42(harness *h) { return h_ints(h, 2, (int64_t[]){4, 2}); }
static drt_value *shape_m1m1(harness *h) { return h_ints(h, 2, (int64_t[]){-1, -1}); }
static drt_value *shape_0m1(harness *h) { return h_ints(h, 2, (int64_t[]){0, -1}); }
static drt_value *axes_0_only(harness *h) { return h_ints(h, 1, (int64_t[]){0}); }
static drt_value *axes_5(harness *h) { return h_ints(h, 1, (int64_t[]){5}); }
static drt_value *axes_dup(harness *h) { return h_ints(h, 2, (int64_t[]){1, -3}); }
static void flat_axis4(harness *h) { attr_int(h, "axis", 4); }

static void test_reshape_family_errors(void **state) {
  (void)state;
  int64_t d23[2] = {2, 3};
  expect_error(DRT_OP_RESHAPE, 14, 2, d23, shape_42, false, NULL, DRT_STATUS_INVALID_ARGUMENT, "2x3");
  expect_error(DRT_OP_RESHAPE, 14, 2, d23, shape_42, false, NULL, DRT_STATUS_INVALID_ARGUMENT, "[4, 2]");
  expect_error(DRT_OP_RESHAPE, 14, 2, d23, shape_m1m1, false, NULL, DRT_STATUS_INVALID_ARGUMENT, "more than one -1");
  expect_error(DRT_OP_RESHAPE, 14, 2, d23, shape_0m1, false, allowzero, DRT_STATUS_INVALID_ARGUMENT, "allowzero");
  expect_error(DRT_OP_RESHAPE, 14, 2, d23, NULL, true, NULL, DRT_STATUS_UNSUPPORTED, "compile-time constant");
  expect_error(DRT_OP_SQUEEZE, 13, 2, d23, axes_0_only, false, NULL, DRT_STATUS_INVALID_ARGUMENT, "not 1");
  expect_error(DRT_OP_SQUEEZE, 13, 2, d23, axes_5, false, NULL, DRT_STATUS_INVALID_ARGUMENT, "out of range");
  expect_error(DRT_OP_UNSQUEEZE, 13, 2, d23, axes_dup, false, NULL, DRT_STATUS_INVALID_ARGUMENT, "repeated");
  expect_error(DRT_OP_UNSQUEEZE, 13, 2, d23, NULL, true, NULL, DRT_STATUS_UNSUPPORTED, "compile-time constant");
  expect_error(DRT_OP_FLATTEN, 13, 3, (int64_t[]){2, 3, 4}, NULL, false, flat_axis4, DRT_STATUS_INVALID_ARGUMENT,
               "axis");
}

/* ---- Transpose --------------------------------------------------------------------------------- */
typedef struct perm_arg {
  drt_shape in;
  int64_t perm[DRT_MAX_RANK];
} perm_arg;

static int64_t transpose_src(const int64_t *oidx, const void *arg) {
  const perm_arg *p = arg;
  int64_t iidx[DRT_MAX_RANK];
  for (int k = 0; k < p->in.rank; k++) iidx[p->perm[k]] = oidx[k];
  return flat(&p->in, iidx);
}

static void transpose_case(drt_dtype dt, int rank, const int64_t *dims, const int64_t *perm, bool threaded) {
  harness h;
  h_init(&h, 21 + (uint64_t)rank);
  drt_value *x = h_input(&h, 0, dt, rank, dims);
  h_node(&h, DRT_OP_TRANSPOSE, 13, &x, 1, 1);
  perm_arg pa;
  pa.in = drt_test_shape(rank, dims);
  for (int k = 0; k < rank; k++) pa.perm[k] = perm ? perm[k] : rank - 1 - k;
  if (perm) attr_ints(&h, "perm", rank, perm);
  DRT_ASSERT_OK(h_run(&h, threaded));
  int64_t odims[DRT_MAX_RANK];
  for (int k = 0; k < rank; k++) odims[k] = dims[pa.perm[k]];
  check_shape(&h.out[0], rank, odims);
  void *ref = ref_map(drt_dtype_size(dt), h.in_data[0], &h.out[0].shape, transpose_src, &pa);
  check_bytes(&h.out[0], ref);
  free(ref);
  h_free(&h);
}

static void test_transpose(void **state) {
  (void)state;
  for (int t = 0; t < NDT; t++) {
    drt_dtype dt = k_dtypes[t];
    transpose_case(dt, 2, (int64_t[]){37, 53}, NULL, false);                              /* 2-D blocked */
    transpose_case(dt, 4, (int64_t[]){2, 3, 5, 7}, (int64_t[]){0, 2, 1, 3}, false);      /* head split/merge */
    transpose_case(dt, 4, (int64_t[]){2, 3, 5, 40}, (int64_t[]){0, 2, 1, 3}, false);     /* row transpose */
    transpose_case(dt, 3, (int64_t[]){70, 3, 33}, (int64_t[]){1, 0, 2}, false);
    transpose_case(dt, 4, (int64_t[]){2, 3, 5, 7}, (int64_t[]){0, 1, 3, 2}, false);      /* last-two swap */
    transpose_case(dt, 3, (int64_t[]){3, 21, 19}, (int64_t[]){0, 2, 1}, false);          /* partial 8x8 tiles */
    transpose_case(dt, 4, (int64_t[]){2, 3, 5, 7}, (int64_t[]){3, 0, 2, 1}, false);      /* generic gather */
    transpose_case(dt, 4, (int64_t[]){2, 3, 5, 7}, NULL, false);                          /* reverse */
    transpose_case(dt, 3, (int64_t[]){4, 1, 6}, (int64_t[]){2, 1, 0}, false);            /* 1-dims coalesce */
    transpose_case(dt, 6, (int64_t[]){2, 3, 2, 1, 3, 2}, (int64_t[]){5, 3, 1, 0, 4, 2}, false);
    transpose_case(dt, 0, NULL, NULL, false);                                             /* scalar */
    transpose_case(dt, 3, (int64_t[]){3, 0, 4}, (int64_t[]){2, 0, 1}, false);            /* empty */
    transpose_case(dt, 1, (int64_t[]){9}, NULL, false);
  }
  /* larger, threaded: DiT attention layouts */
  transpose_case(DRT_DTYPE_FLOAT32, 2, (int64_t[]){257, 190}, NULL, true);
  transpose_case(DRT_DTYPE_FLOAT16, 4, (int64_t[]){2, 64, 8, 40}, (int64_t[]){0, 2, 1, 3}, true);
  transpose_case(DRT_DTYPE_FLOAT32, 4, (int64_t[]){2, 8, 100, 40}, (int64_t[]){0, 1, 3, 2}, true);
  transpose_case(DRT_DTYPE_INT64, 3, (int64_t[]){30, 40, 50}, (int64_t[]){1, 2, 0}, true);

  int64_t bad[3] = {0, 0, 1};
  harness h;
  h_init(&h, 29);
  drt_value *x = h_input(&h, 0, DRT_DTYPE_FLOAT32, 3, (int64_t[]){2, 3, 4});
  h_node(&h, DRT_OP_TRANSPOSE, 13, &x, 1, 1);
  attr_ints(&h, "perm", 3, bad);
  DRT_ASSERT_ERROR(h_run(&h, false), DRT_STATUS_INVALID_ARGUMENT, "not a permutation");
  h_free(&h);
}

/* ---- Concat / Split ------------------------------------------------------------------------------ */
static void test_concat(void **state) {
  (void)state;
  for (int t = 0; t < NDT; t++) {
    for (int threaded = 0; threaded < 2; threaded++) {
      drt_dtype dt = k_dtypes[t];
      size_t es = drt_dtype_size(dt);
      int64_t big = threaded ? 500 : 3;
      int64_t d[3][3] = {{big, 2, 5}, {big, 0, 5}, {big, 4, 5}};
      harness h;
      h_init(&h, 31);
      drt_value *ins[3];
      for (int i = 0; i < 3; i++) ins[i] = h_input(&h, i, dt, 3, d[i]);
      h_node(&h, DRT_OP_CONCAT, 13, ins, 3, 1);
      attr_int(&h, "axis", -2);
      DRT_ASSERT_OK(h_run(&h, threaded));
      check_shape(&h.out[0], 3, (int64_t[]){big, 6, 5});
      /* reference: out[a][j][c] = j < 2 ? in0[a][j][c] : in2[a][j-2][c] */
      uint8_t *ref = malloc((size_t)(big * 6 * 5) * es);
      for (int64_t a = 0; a < big; a++)
        for (int64_t j = 0; j < 6; j++)
          for (int64_t c = 0; c < 5; c++) {
            const uint8_t *src = j < 2 ? (const uint8_t *)h.in_data[0] + ((a * 2 + j) * 5 + c) * (int64_t)es
                                       : (const uint8_t *)h.in_data[2] + ((a * 4 + j - 2) * 5 + c) * (int64_t)es;
            memcpy(ref + ((a * 6 + j) * 5 + c) * (int64_t)es, src, es);
          }
      check_bytes(&h.out[0], ref);
      free(ref);
      h_free(&h);
    }
  }
  harness h;
  h_init(&h, 32);
  drt_value *ins[2] = {h_input(&h, 0, DRT_DTYPE_FLOAT32, 2, (int64_t[]){2, 3}),
                       h_input(&h, 1, DRT_DTYPE_FLOAT32, 2, (int64_t[]){3, 3})};
  h_node(&h, DRT_OP_CONCAT, 13, ins, 2, 1);
  attr_int(&h, "axis", 1);
  DRT_ASSERT_ERROR(h_run(&h, false), DRT_STATUS_INVALID_ARGUMENT, "incompatible");
  h_free(&h);
  h_init(&h, 33);
  ins[0] = h_input(&h, 0, DRT_DTYPE_FLOAT32, 2, (int64_t[]){2, 3});
  h_node(&h, DRT_OP_CONCAT, 13, ins, 1, 1);
  attr_int(&h, "axis", 2);
  DRT_ASSERT_ERROR(h_run(&h, false), DRT_STATUS_INVALID_ARGUMENT, "out of range");
  h_free(&h);
}

/* Split along axis 1 of a (3, D, 4) input, checked against per-output index arithmetic. */
static void split_check(harness *h, int64_t dsplit, const int64_t *sizes, int nout, size_t es) {
  int64_t off = 0;
  for (int o = 0; o < nout; o++) {
    check_shape(&h->out[o], 3, (int64_t[]){3, sizes[o], 4});
    for (int64_t a = 0; a < 3; a++)
      for (int64_t j = 0; j < sizes[o]; j++)
        for (int64_t c = 0; c < 4; c++)
          assert_memory_equal((const uint8_t *)h->out[o].data + ((a * sizes[o] + j) * 4 + c) * (int64_t)es,
                              (const uint8_t *)h->in_data[0] + ((a * dsplit + off + j) * 4 + c) * (int64_t)es, es);
    off += sizes[o];
  }
}

static void test_split(void **state) {
  (void)state;
  for (int t = 0; t < NDT; t++) {
    drt_dtype dt = k_dtypes[t];
    size_t es = drt_dtype_size(dt);
    harness h;
    /* opset 13 split input, a zero-size piece, negative axis */
    h_init(&h, 41);
    drt_value *ins[2] = {h_input(&h, 0, dt, 3, (int64_t[]){3, 7, 4}), h_ints(&h, 3, (int64_t[]){2, 0, 5})};
    h_node(&h, DRT_OP_SPLIT, 13, ins, 2, 3);
    attr_int(&h, "axis", -2);
    DRT_ASSERT_OK(h_run(&h, true));
    split_check(&h, 7, (int64_t[]){2, 0, 5}, 3, es);
    h_free(&h);
    /* opset 11 split attribute */
    h_init(&h, 42);
    ins[0] = h_input(&h, 0, dt, 3, (int64_t[]){3, 7, 4});
    h_node(&h, DRT_OP_SPLIT, 11, ins, 1, 2);
    attr_int(&h, "axis", 1);
    attr_ints(&h, "split", 2, (int64_t[]){4, 3});
    DRT_ASSERT_OK(h_run(&h, false));
    split_check(&h, 7, (int64_t[]){4, 3}, 2, es);
    h_free(&h);
    /* equal split by output count */
    h_init(&h, 43);
    ins[0] = h_input(&h, 0, dt, 3, (int64_t[]){3, 6, 4});
    h_node(&h, DRT_OP_SPLIT, 13, ins, 1, 3);
    attr_int(&h, "axis", 1);
    DRT_ASSERT_OK(h_run(&h, false));
    split_check(&h, 6, (int64_t[]){2, 2, 2}, 3, es);
    h_free(&h);
    /* opset 18 num_outputs, uneven: 7 -> 3, 3, 1 */
    h_init(&h, 44);
    ins[0] = h_input(&h, 0, dt, 3, (int64_t[]){3, 7, 4});
    h_node(&h, DRT_OP_SPLIT, 18, ins, 1, 3);
    attr_int(&h, "axis", 1);
    attr_int(&h, "num_outputs", 3);
    DRT_ASSERT_OK(h_run(&h, false));
    split_check(&h, 7, (int64_t[]){3, 3, 1}, 3, es);
    h_free(&h);
    /* opset 18 num_outputs, even: 8 -> 2, 2, 2, 2 */
    h_init(&h, 47);
    ins[0] = h_input(&h, 0, dt, 3, (int64_t[]){3, 8, 4});
    h_node(&h, DRT_OP_SPLIT, 18, ins, 1, 4);
    attr_int(&h, "axis", 1);
    attr_int(&h, "num_outputs", 4);
    DRT_ASSERT_OK(h_run(&h, false));
    split_check(&h, 8, (int64_t[]){2, 2, 2, 2}, 4, es);
    h_free(&h);
  }
  harness h;
  h_init(&h, 45);
  drt_value *ins[2] = {h_input(&h, 0, DRT_DTYPE_FLOAT32, 2, (int64_t[]){3, 7}), NULL};
  ins[1] = h_ints(&h, 2, (int64_t[]){3, 3});
  h_node(&h, DRT_OP_SPLIT, 13, ins, 2, 2);
  attr_int(&h, "axis", 1);
  DRT_ASSERT_ERROR(h_run(&h, false), DRT_STATUS_INVALID_ARGUMENT, "does not sum");
  h_free(&h);
  h_init(&h, 46);
  ins[0] = h_input(&h, 0, DRT_DTYPE_FLOAT32, 2, (int64_t[]){3, 7});
  h_node(&h, DRT_OP_SPLIT, 13, ins, 1, 2);
  attr_int(&h, "axis", 1);
  DRT_ASSERT_ERROR(h_run(&h, false), DRT_STATUS_INVALID_ARGUMENT, "not divisible");
  h_free(&h);
}

/* ---- Slice ---------------------------------------------------------------------------------------- */
/* Independent reference: the index list of one axis, Python-slice style. */
static int64_t slice_indices(int64_t d, int64_t start, int64_t end, int64_t step, int64_t *out) {
  /* spec: negative values count from the end, then clamp per step sign */
  if (start < 0) start += d;
  if (end < 0) end += d;
  int64_t slo = 0, shi = step > 0 ? d : d - 1, elo = step > 0 ? 0 : -1, ehi = shi;
  start = start < slo ? slo : (start > shi ? shi : start);
  end = end < elo ? elo : (end > ehi ? ehi : end);
  int64_t n = 0;
  if (step > 0)
    for (int64_t i = start; i < end; i = i > INT64_MAX - step ? INT64_MAX : i + step) out[n++] = i;
  else
    for (int64_t i = start; i > end; i = i < INT64_MIN - step ? INT64_MIN : i + step) out[n++] = i;
  return n;
}

typedef struct slice_arg {
  drt_shape in;
  int64_t idx[DRT_MAX_RANK][64];
} slice_arg;

static int64_t slice_src(const int64_t *oidx, const void *arg) {
  const slice_arg *s = arg;
  int64_t ii[DRT_MAX_RANK];
  for (int k = 0; k < s->in.rank; k++) ii[k] = s->idx[k][oidx[k]];
  return flat(&s->in, ii);
}

static void slice_case(harness *h, drt_dtype dt, int rank, const int64_t *dims, int64_t count, const int64_t *starts,
                       const int64_t *ends, const int64_t *axes, const int64_t *steps, int opset, bool threaded) {
  drt_value *x = h_input(h, 0, dt, rank, dims);
  if (opset < 10) {
    h_node(h, DRT_OP_SLICE, opset, &x, 1, 1);
    attr_ints(h, "starts", count, starts);
    attr_ints(h, "ends", count, ends);
    if (axes) attr_ints(h, "axes", count, axes);
  } else {
    /* int32 starts/ends exercise Tind = int32 when they fit */
    bool small = true;
    for (int64_t i = 0; i < count; i++)
      if (starts[i] != (int32_t)starts[i] || ends[i] != (int32_t)ends[i]) small = false;
    drt_value *ins[5] = {x, NULL, NULL, NULL, NULL};
    if (small) {
      int32_t s32[DRT_MAX_RANK], e32[DRT_MAX_RANK];
      for (int64_t i = 0; i < count; i++) {
        s32[i] = (int32_t)starts[i];
        e32[i] = (int32_t)ends[i];
      }
      ins[1] = h_const(h, DRT_DTYPE_INT32, 1, &count, s32);
      ins[2] = h_const(h, DRT_DTYPE_INT32, 1, &count, e32);
    } else {
      ins[1] = h_ints(h, count, starts);
      ins[2] = h_ints(h, count, ends);
    }
    int nin = 3;
    if (axes) {
      ins[3] = h_ints(h, count, axes);
      nin = 4;
    }
    if (steps) {
      ins[4] = h_ints(h, count, steps);
      nin = 5;
    }
    h_node(h, DRT_OP_SLICE, opset, ins, nin, 1);
  }
  DRT_ASSERT_OK(h_run(h, threaded));
  slice_arg *sa = calloc(1, sizeof *sa);
  assert_non_null(sa);
  sa->in = drt_test_shape(rank, dims);
  int64_t odims[DRT_MAX_RANK];
  for (int k = 0; k < rank; k++) {
    odims[k] = dims[k];
    for (int64_t i = 0; i < dims[k]; i++) sa->idx[k][i] = i;
  }
  for (int64_t i = 0; i < count; i++) {
    int64_t a = axes ? (axes[i] < 0 ? axes[i] + rank : axes[i]) : i;
    odims[a] = slice_indices(dims[a], starts[i], ends[i], steps ? steps[i] : 1, sa->idx[a]);
  }
  check_shape(&h->out[0], rank, odims);
  void *ref = ref_map(drt_dtype_size(dt), h->in_data[0], &h->out[0].shape, slice_src, sa);
  check_bytes(&h->out[0], ref);
  free(ref);
  free(sa);
}

static void test_slice(void **state) {
  (void)state;
  const int64_t d3[3] = {5, 6, 7};
  for (int t = 0; t < NDT; t++) {
    drt_dtype dt = k_dtypes[t];
    harness h;
#define I(...) ((int64_t[]){__VA_ARGS__})
#define SLICE(cnt, st, en, ax, sp, opset)                                                                 \
  do {                                                                                                    \
    h_init(&h, 51);                                                                                       \
    slice_case(&h, dt, 3, d3, cnt, st, en, ax, sp, opset, false);                                \
    h_free(&h);                                                                                           \
  } while (0)
    SLICE(3, I(1, 0, 2), I(4, 6, 7), NULL, NULL, 13);
    SLICE(2, I(-3, 1), I(1000, -1), I(2, 0), NULL, 13);
    SLICE(1, I(0), I(INT64_MAX), I(-1), I(2), 13);
    SLICE(1, I(-1), I(INT64_MIN), I(1), I(-1), 13);          /* full reverse */
    SLICE(2, I(100, 4), I(-100, 0), I(0, 2), I(-2, -3), 13); /* clamped starts */
    SLICE(1, I(3), I(3), I(1), NULL, 13);                             /* empty */
    SLICE(1, I(5), I(1), I(1), I(1), 13);                   /* empty: start past end */
    SLICE(1, I(-100), I(100), I(0), I(INT64_MAX), 13);      /* huge step */
    SLICE(1, I(100), I(-100), I(0), I(INT64_MIN), 13);      /* huge negative step */
    SLICE(2, I(1, -2), I(3, 100), I(0, 2), NULL, 1);                   /* opset 1 attributes */
    SLICE(3, I(0, 0, 0), I(2, 2, 2), NULL, NULL, 9);
#undef SLICE
#undef I
  }
  /* random cases, threaded */
  drt_test_rng r = {77};
  for (int it = 0; it < 60; it++) {
    int64_t dims[4] = {(int64_t)(drt_test_next(&r) % 6), 1 + (int64_t)(drt_test_next(&r) % 9),
                       1 + (int64_t)(drt_test_next(&r) % 9), 1 + (int64_t)(drt_test_next(&r) % 40)};
    int64_t starts[4], ends[4], axes[4], steps[4];
    int64_t count = 1 + (int64_t)(drt_test_next(&r) % 4);
    int perm[4] = {0, 1, 2, 3};
    for (int i = 3; i > 0; i--) {
      int j = (int)(drt_test_next(&r) % (uint64_t)(i + 1)), tmp = perm[i];
      perm[i] = perm[j];
      perm[j] = tmp;
    }
    for (int64_t i = 0; i < count; i++) {
      axes[i] = perm[i] - ((drt_test_next(&r) & 1) ? 4 : 0);
      starts[i] = (int64_t)(drt_test_next(&r) % 25) - 12;
      ends[i] = (int64_t)(drt_test_next(&r) % 25) - 12;
      steps[i] = (int64_t)(drt_test_next(&r) % 7) - 3;
      if (steps[i] == 0) steps[i] = 1;
    }
    harness h;
    h_init(&h, 52 + (uint64_t)it);
    slice_case(&h, k_dtypes[it % NDT], 4, dims, count, starts, ends, axes, steps, 13, true);
    h_free(&h);
  }
  /* errors */
  harness h;
  h_init(&h, 59);
  drt_value *ins[5] = {h_input(&h, 0, DRT_DTYPE_FLOAT32, 2, (int64_t[]){3, 4}), h_ints(&h, 1, (int64_t[]){0}),
                       h_ints(&h, 1, (int64_t[]){2}), h_ints(&h, 1, (int64_t[]){1}), h_ints(&h, 1, (int64_t[]){0})};
  h_node(&h, DRT_OP_SLICE, 13, ins, 5, 1);
  DRT_ASSERT_ERROR(h_run(&h, false), DRT_STATUS_INVALID_ARGUMENT, "step");
  h_free(&h);
  h_init(&h, 60);
  ins[0] = h_input(&h, 0, DRT_DTYPE_FLOAT32, 2, (int64_t[]){3, 4});
  ins[1] = h_ints(&h, 2, (int64_t[]){0, 0});
  ins[2] = h_ints(&h, 2, (int64_t[]){2, 2});
  ins[3] = h_ints(&h, 2, (int64_t[]){1, -1});
  h_node(&h, DRT_OP_SLICE, 13, ins, 4, 1);
  DRT_ASSERT_ERROR(h_run(&h, false), DRT_STATUS_INVALID_ARGUMENT, "repeated");
  h_free(&h);
  h_init(&h, 61);
  ins[0] = h_input(&h, 0, DRT_DTYPE_FLOAT32, 2, (int64_t[]){3, 4});
  ins[1] = h_input(&h, 1, DRT_DTYPE_INT64, 1, (int64_t[]){1});
  ins[2] = h_ints(&h, 1, (int64_t[]){2});
  h_node(&h, DRT_OP_SLICE, 13, ins, 3, 1);
  DRT_ASSERT_ERROR(h_run(&h, false), DRT_STATUS_UNSUPPORTED, "compile-time constant");
  h_free(&h);
}

/* ---- Expand / Tile --------------------------------------------------------------------------------- */
typedef struct bcast_arg {
  drt_shape in, out;
} bcast_arg;

static int64_t expand_src(const int64_t *oidx, const void *arg) {
  const bcast_arg *b = arg;
  int64_t ii[DRT_MAX_RANK];
  int off = b->out.rank - b->in.rank;
  for (int k = 0; k < b->in.rank; k++) ii[k] = b->in.dims[k] == 1 ? 0 : oidx[k + off];
  return flat(&b->in, ii);
}

static int64_t tile_src(const int64_t *oidx, const void *arg) {
  const bcast_arg *b = arg;
  int64_t ii[DRT_MAX_RANK];
  for (int k = 0; k < b->in.rank; k++) ii[k] = oidx[k] % b->in.dims[k];
  return flat(&b->in, ii);
}

static void expand_case(drt_dtype dt, int rank, const int64_t *dims, int64_t scount, const int64_t *shape, int orank,
                        const int64_t *odims, bool threaded) {
  harness h;
  h_init(&h, 71);
  drt_value *ins[2] = {h_input(&h, 0, dt, rank, dims), h_ints(&h, scount, shape)};
  h_node(&h, DRT_OP_EXPAND, 13, ins, 2, 1);
  DRT_ASSERT_OK(h_run(&h, threaded));
  check_shape(&h.out[0], orank, odims);
  bcast_arg b = {drt_test_shape(rank, dims), h.out[0].shape};
  void *ref = ref_map(drt_dtype_size(dt), h.in_data[0], &h.out[0].shape, expand_src, &b);
  check_bytes(&h.out[0], ref);
  free(ref);
  h_free(&h);
}

static void tile_case(drt_dtype dt, int rank, const int64_t *dims, const int64_t *reps, bool threaded) {
  harness h;
  h_init(&h, 72);
  drt_value *ins[2] = {h_input(&h, 0, dt, rank, dims), h_ints(&h, rank, reps)};
  h_node(&h, DRT_OP_TILE, 13, ins, 2, 1);
  DRT_ASSERT_OK(h_run(&h, threaded));
  int64_t odims[DRT_MAX_RANK];
  for (int k = 0; k < rank; k++) odims[k] = dims[k] * reps[k];
  check_shape(&h.out[0], rank, odims);
  bcast_arg b = {drt_test_shape(rank, dims), h.out[0].shape};
  void *ref = ref_map(drt_dtype_size(dt), h.in_data[0], &h.out[0].shape, tile_src, &b);
  check_bytes(&h.out[0], ref);
  free(ref);
  h_free(&h);
}

static void test_expand_tile(void **state) {
  (void)state;
  for (int t = 0; t < NDT; t++) {
    drt_dtype dt = k_dtypes[t];
    expand_case(dt, 2, (int64_t[]){3, 1}, 3, (int64_t[]){2, 1, 4}, 3, (int64_t[]){2, 3, 4}, false);
    expand_case(dt, 3, (int64_t[]){2, 3, 4}, 2, (int64_t[]){3, 1}, 3, (int64_t[]){2, 3, 4}, false); /* bidirectional */
    expand_case(dt, 3, (int64_t[]){1, 3, 1}, 4, (int64_t[]){2, 5, 3, 6}, 4, (int64_t[]){2, 5, 3, 6}, false);
    expand_case(dt, 0, NULL, 2, (int64_t[]){2, 3}, 2, (int64_t[]){2, 3}, false); /* scalar */
    expand_case(dt, 2, (int64_t[]){1, 3}, 2, (int64_t[]){0, 3}, 2, (int64_t[]){0, 3}, false);
    tile_case(dt, 2, (int64_t[]){2, 3}, (int64_t[]){2, 3}, false);
    tile_case(dt, 3, (int64_t[]){2, 1, 5}, (int64_t[]){1, 4, 1}, false);
    tile_case(dt, 2, (int64_t[]){2, 3}, (int64_t[]){0, 2}, false);
    tile_case(dt, 1, (int64_t[]){1}, (int64_t[]){7}, false);
  }
  expand_case(DRT_DTYPE_FLOAT32, 3, (int64_t[]){1, 77, 1}, 3, (int64_t[]){64, 77, 96}, 3, (int64_t[]){64, 77, 96},
              true);
  expand_case(DRT_DTYPE_FLOAT16, 2, (int64_t[]){1, 320}, 3, (int64_t[]){4, 256, 320}, 3, (int64_t[]){4, 256, 320},
              true);
  tile_case(DRT_DTYPE_FLOAT32, 3, (int64_t[]){3, 40, 50}, (int64_t[]){2, 3, 2}, true);

  harness h;
  h_init(&h, 73);
  drt_value *ins[2] = {h_input(&h, 0, DRT_DTYPE_FLOAT32, 2, (int64_t[]){2, 3}), NULL};
  ins[1] = h_ints(&h, 2, (int64_t[]){2, 4});
  h_node(&h, DRT_OP_EXPAND, 13, ins, 2, 1);
  DRT_ASSERT_ERROR(h_run(&h, false), DRT_STATUS_INVALID_ARGUMENT, "cannot be broadcast");
  h_free(&h);
  h_init(&h, 74);
  ins[0] = h_input(&h, 0, DRT_DTYPE_FLOAT32, 2, (int64_t[]){2, 3});
  ins[1] = h_ints(&h, 1, (int64_t[]){2});
  h_node(&h, DRT_OP_TILE, 13, ins, 2, 1);
  DRT_ASSERT_ERROR(h_run(&h, false), DRT_STATUS_INVALID_ARGUMENT, "repeats");
  h_free(&h);
}

/* ---- DepthToSpace / SpaceToDepth -------------------------------------------------------------------- */
typedef struct d2s_arg {
  drt_shape in;
  int64_t b;
  bool crd;
} d2s_arg;

static int64_t d2s_src(const int64_t *o, const void *arg) {
  const d2s_arg *a = arg;
  int64_t b = a->b, co = a->in.dims[1] / (b * b);
  int64_t h = o[2] / b, bh = o[2] % b, w = o[3] / b, bw = o[3] % b;
  int64_t c = a->crd ? o[1] * b * b + bh * b + bw : (bh * b + bw) * co + o[1];
  int64_t ii[4] = {o[0], c, h, w};
  return flat(&a->in, ii);
}

static int64_t s2d_src(const int64_t *o, const void *arg) {
  const d2s_arg *a = arg;
  int64_t b = a->b, c = a->in.dims[1];
  int64_t blk = a->crd ? o[1] % (b * b) : o[1] / c, ci = a->crd ? o[1] / (b * b) : o[1] % c;
  int64_t ii[4] = {o[0], ci, o[2] * b + blk / b, o[3] * b + blk % b};
  return flat(&a->in, ii);
}

static void test_depth_space(void **state) {
  (void)state;
  for (int t = 0; t < NDT; t++) {
    drt_dtype dt = k_dtypes[t];
    for (int mode = 0; mode < 4; mode++) { /* D2S DCR, D2S CRD, S2D DCR, S2D CRD */
      harness h;
      h_init(&h, 81);
      int64_t dims[4] = {2, 12, 3, 5};
      drt_value *x = h_input(&h, 0, dt, 4, dims);
      h_node(&h, DRT_OP_DEPTH_TO_SPACE, 13, &x, 1, 1);
      attr_int(&h, "blocksize", 2);
      if (mode == 1) attr_str(&h, "mode", "CRD");
      if (mode >= 2) {
        /* SpaceToDepth needs divisible spatial dims: use a 2x3x4x6 input instead */
        h_free(&h);
        h_init(&h, 82);
        int64_t sd[4] = {2, 3, 4, 6};
        x = h_input(&h, 0, dt, 4, sd);
        h_node(&h, DRT_OP_SPACE_TO_DEPTH, 28, &x, 1, 1);
        attr_int(&h, "blocksize", 2);
        if (mode == 3) attr_str(&h, "mode", "CRD");
        memcpy(dims, sd, sizeof sd);
      }
      DRT_ASSERT_OK(h_run(&h, mode == 1));
      d2s_arg a = {drt_test_shape(4, dims), 2, mode == 1 || mode == 3};
      if (mode < 2)
        check_shape(&h.out[0], 4, (int64_t[]){2, 3, 6, 10});
      else
        check_shape(&h.out[0], 4, (int64_t[]){2, 12, 2, 3});
      void *ref = ref_map(drt_dtype_size(dt), h.in_data[0], &h.out[0].shape, mode < 2 ? d2s_src : s2d_src, &a);
      check_bytes(&h.out[0], ref);
      free(ref);
      h_free(&h);
    }
  }
  harness h;
  h_init(&h, 83);
  drt_value *x = h_input(&h, 0, DRT_DTYPE_FLOAT32, 4, (int64_t[]){1, 6, 2, 2});
  h_node(&h, DRT_OP_DEPTH_TO_SPACE, 13, &x, 1, 1);
  attr_int(&h, "blocksize", 2);
  DRT_ASSERT_ERROR(h_run(&h, false), DRT_STATUS_INVALID_ARGUMENT, "divisible");
  h_free(&h);
  h_init(&h, 84);
  x = h_input(&h, 0, DRT_DTYPE_FLOAT32, 4, (int64_t[]){1, 4, 2, 2});
  h_node(&h, DRT_OP_DEPTH_TO_SPACE, 13, &x, 1, 1);
  attr_int(&h, "blocksize", 2);
  attr_str(&h, "mode", "XYZ");
  DRT_ASSERT_ERROR(h_run(&h, false), DRT_STATUS_INVALID_ARGUMENT, "mode");
  h_free(&h);
}

/* ---- Trilu ----------------------------------------------------------------------------------------- */
typedef struct trilu_arg {
  drt_shape s;
  int64_t k;
  bool upper;
} trilu_arg;

static int64_t trilu_src(const int64_t *o, const void *arg) {
  const trilu_arg *a = arg;
  int r = a->s.rank;
  int64_t i = o[r - 2], j = o[r - 1];
  bool keep = a->upper ? j - i >= a->k : j - i <= a->k;
  return keep ? flat(&a->s, o) : -1;
}

static void test_trilu(void **state) {
  (void)state;
  const int64_t ks[] = {0, 1, -2, 5, -9, INT64_MAX, INT64_MIN};
  for (int t = 0; t < NDT; t++) {
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0] + 1; ki++) {
      for (int upper = 0; upper < 2; upper++) {
        drt_dtype dt = k_dtypes[t];
        harness h;
        h_init(&h, 91);
        int64_t dims[3] = {2, 4, 6};
        bool has_k = ki < sizeof ks / sizeof ks[0];
        drt_value *ins[2] = {h_input(&h, 0, dt, 3, dims), has_k ? h_i64_scalar(&h, ks[ki]) : NULL};
        h_node(&h, DRT_OP_TRILU, 14, ins, has_k ? 2 : 1, 1);
        if (upper == 0 || t == 0) attr_int(&h, "upper", upper); /* default upper=1 tested too */
        DRT_ASSERT_OK(h_run(&h, ki == 1));
        trilu_arg a;
        memset(&a, 0, sizeof a);
        a.s = drt_test_shape(3, dims);
        a.k = has_k ? ks[ki] : 0;
        a.upper = upper != 0;
        void *ref = ref_map(drt_dtype_size(dt), h.in_data[0], &h.out[0].shape, trilu_src, &a);
        check_shape(&h.out[0], 3, dims);
        check_bytes(&h.out[0], ref);
        free(ref);
        h_free(&h);
      }
    }
  }
}

/* ---- Shape / Size / ConstantOfShape / Range ---------------------------------------------------------- */
static void shape_case(int64_t start, int64_t end, bool has_start, bool has_end, int64_t n, const int64_t *want) {
  harness h;
  h_init(&h, 101);
  drt_value *x = h_input(&h, 0, DRT_DTYPE_FLOAT16, 4, (int64_t[]){2, 3, 4, 5});
  h_node(&h, DRT_OP_SHAPE, 15, &x, 1, 1);
  if (has_start) attr_int(&h, "start", start);
  if (has_end) attr_int(&h, "end", end);
  free(h.in_data[0]); /* Shape reads only the input's shape */
  h.in_data[0] = NULL;
  DRT_ASSERT_OK(h_run(&h, false));
  assert_int_equal(h.out[0].dtype, DRT_DTYPE_INT64);
  check_shape(&h.out[0], 1, &n);
  check_bytes(&h.out[0], want);
  h_free(&h);
}

static void test_shape_size(void **state) {
  (void)state;
  shape_case(0, 0, false, false, 4, (int64_t[]){2, 3, 4, 5});
  shape_case(-1, 0, true, false, 1, (int64_t[]){5});
  shape_case(0, -1, false, true, 3, (int64_t[]){2, 3, 4});
  shape_case(1, 3, true, true, 2, (int64_t[]){3, 4});
  shape_case(-10, 10, true, true, 4, (int64_t[]){2, 3, 4, 5});
  shape_case(3, 1, true, true, 0, NULL);
  harness h;
  h_init(&h, 102);
  drt_value *x = h_input(&h, 0, DRT_DTYPE_UINT8, 3, (int64_t[]){2, 7, 3});
  h_node(&h, DRT_OP_SIZE, 13, &x, 1, 1);
  DRT_ASSERT_OK(h_run(&h, false));
  check_shape(&h.out[0], 0, NULL);
  assert_int_equal(*(int64_t *)h.out[0].data, 42);
  h_free(&h);
  h_init(&h, 103);
  x = h_input(&h, 0, DRT_DTYPE_FLOAT32, 0, NULL);
  h_node(&h, DRT_OP_SHAPE, 13, &x, 1, 1);
  DRT_ASSERT_OK(h_run(&h, false));
  check_shape(&h.out[0], 1, (int64_t[]){0});
  h_free(&h);
}

static void test_constant_of_shape(void **state) {
  (void)state;
  harness h;
  /* default: float32 zeros */
  h_init(&h, 111);
  drt_value *s = h_ints(&h, 2, (int64_t[]){3, 4});
  h_node(&h, DRT_OP_CONSTANT_OF_SHAPE, 9, &s, 1, 1);
  DRT_ASSERT_OK(h_run(&h, false));
  assert_int_equal(h.out[0].dtype, DRT_DTYPE_FLOAT32);
  check_shape(&h.out[0], 2, (int64_t[]){3, 4});
  for (int i = 0; i < 12; i++) assert_true(((float *)h.out[0].data)[i] == 0.0f);
  h_free(&h);
  /* value tensors of each element size, threaded fill, scalar and empty outputs */
  const drt_dtype vdt[] = {DRT_DTYPE_INT64, DRT_DTYPE_FLOAT16, DRT_DTYPE_BOOL, DRT_DTYPE_FLOAT32};
  const uint64_t vbits[] = {0x8000000000000007ull, 0x3c01, 1, 0x40490fdb};
  for (int t = 0; t < 4; t++) {
    for (int sc = 0; sc < 3; sc++) {
      h_init(&h, 112);
      int64_t dims[2] = {sc == 2 ? 0 : 300, 257};
      s = h_ints(&h, sc == 1 ? 0 : 2, dims);
      h_node(&h, DRT_OP_CONSTANT_OF_SHAPE, 20, &s, 1, 1);
      drt_value *val = h_const(&h, vdt[t], 1, (int64_t[]){1}, &vbits[t]); /* little-endian low bytes */
      size_t es = drt_dtype_size(vdt[t]);
      drt_attr a;
      memset(&a, 0, sizeof a);
      a.name = "value";
      a.type = DRT_ATTR_TENSOR;
      a.tensor = val;
      DRT_ASSERT_OK(drt_node_add_attr(h.g, h.n, &a));
      DRT_ASSERT_OK(h_run(&h, true));
      assert_int_equal(h.out[0].dtype, vdt[t]);
      if (sc == 1) check_shape(&h.out[0], 0, NULL);
      else check_shape(&h.out[0], 2, dims);
      int64_t numel = drt_shape_numel(&h.out[0].shape);
      for (int64_t i = 0; i < numel; i++) assert_memory_equal((uint8_t *)h.out[0].data + i * (int64_t)es, &vbits[t], es);
      h_free(&h);
    }
  }
  h_init(&h, 113);
  s = h_ints(&h, 2, (int64_t[]){3, -1});
  h_node(&h, DRT_OP_CONSTANT_OF_SHAPE, 20, &s, 1, 1);
  DRT_ASSERT_ERROR(h_run(&h, false), DRT_STATUS_INVALID_ARGUMENT, "negative");
  h_free(&h);
  h_init(&h, 114);
  s = h_input(&h, 0, DRT_DTYPE_INT64, 1, (int64_t[]){2});
  h_node(&h, DRT_OP_CONSTANT_OF_SHAPE, 20, &s, 1, 1);
  DRT_ASSERT_ERROR(h_run(&h, false), DRT_STATUS_UNSUPPORTED, "compile-time constant");
  h_free(&h);
}

static void range_case(drt_dtype dt, double start, double limit, double delta, int64_t n) {
  harness h;
  h_init(&h, 121);
  uint8_t sb[8], lb[8], db[8];
  drt_convert(dt, sb, DRT_DTYPE_FLOAT64, &start, 1);
  drt_convert(dt, lb, DRT_DTYPE_FLOAT64, &limit, 1);
  drt_convert(dt, db, DRT_DTYPE_FLOAT64, &delta, 1);
  drt_value *ins[3] = {h_const(&h, dt, 0, NULL, sb), h_const(&h, dt, 0, NULL, lb), h_const(&h, dt, 0, NULL, db)};
  h_node(&h, DRT_OP_RANGE, 11, ins, 3, 1);
  DRT_ASSERT_OK(h_run(&h, false));
  assert_int_equal(h.out[0].dtype, dt);
  check_shape(&h.out[0], 1, &n);
  for (int64_t i = 0; i < n; i++) {
    double want = start + (double)i * delta, got = drt_load_f64(dt, h.out[0].data, (size_t)i);
    assert_true(fabs(got - want) <= 1e-6 * fabs(want) + 1e-9);
  }
  h_free(&h);
}

static void test_range(void **state) {
  (void)state;
  range_case(DRT_DTYPE_INT64, 3, 9, 3, 2);
  range_case(DRT_DTYPE_INT32, 10, 4, -2, 3);
  range_case(DRT_DTYPE_INT16, 0, 10, 1, 10);
  range_case(DRT_DTYPE_INT64, 5, 5, 1, 0);
  range_case(DRT_DTYPE_INT64, 5, 1, 2, 0);
  range_case(DRT_DTYPE_FLOAT32, 1, 5, 2, 2);
  range_case(DRT_DTYPE_FLOAT32, 0, 1, 0.3, 4);
  range_case(DRT_DTYPE_FLOAT64, 1, -1.5, -0.5, 5);
  range_case(DRT_DTYPE_FLOAT16, 0, 2, 0.25, 8);
  range_case(DRT_DTYPE_BFLOAT16, 1, 10, 2, 5);
  range_case(DRT_DTYPE_INT64, 0, 5000, 1, 5000); /* more than one conversion chunk */
  /* int64 extremes without overflow */
  harness h;
  h_init(&h, 122);
  int64_t s = INT64_MIN, l = INT64_MAX, d = INT64_MAX;
  drt_value *ins[3] = {h_const(&h, DRT_DTYPE_INT64, 0, NULL, &s), h_const(&h, DRT_DTYPE_INT64, 0, NULL, &l),
                       h_const(&h, DRT_DTYPE_INT64, 0, NULL, &d)};
  h_node(&h, DRT_OP_RANGE, 11, ins, 3, 1);
  DRT_ASSERT_OK(h_run(&h, false));
  check_shape(&h.out[0], 1, (int64_t[]){3});
  assert_true(((int64_t *)h.out[0].data)[2] == INT64_MAX - 1);
  h_free(&h);
  h_init(&h, 123);
  s = 0, l = 4, d = 0;
  ins[0] = h_const(&h, DRT_DTYPE_INT64, 0, NULL, &s);
  ins[1] = h_const(&h, DRT_DTYPE_INT64, 0, NULL, &l);
  ins[2] = h_const(&h, DRT_DTYPE_INT64, 0, NULL, &d);
  h_node(&h, DRT_OP_RANGE, 11, ins, 3, 1);
  DRT_ASSERT_ERROR(h_run(&h, false), DRT_STATUS_INVALID_ARGUMENT, "delta");
  h_free(&h);
  h_init(&h, 124);
  ins[0] = h_const(&h, DRT_DTYPE_INT64, 0, NULL, &s);
  ins[1] = h_input(&h, 1, DRT_DTYPE_INT64, 0, NULL);
  ins[2] = h_const(&h, DRT_DTYPE_INT64, 0, NULL, &l);
  h_node(&h, DRT_OP_RANGE, 11, ins, 3, 1);
  DRT_ASSERT_ERROR(h_run(&h, false), DRT_STATUS_UNSUPPORTED, "compile-time constant");
  h_free(&h);
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
      cmocka_unit_test(test_reshape_family),
      cmocka_unit_test(test_reshape_family_errors),
      cmocka_unit_test(test_transpose),
      cmocka_unit_test(test_concat),
      cmocka_unit_test(test_split),
      cmocka_unit_test(test_slice),
      cmocka_unit_test(test_expand_tile),
      cmocka_unit_test(test_depth_space),
      cmocka_unit_test(test_trilu),
      cmocka_unit_test(test_shape_size),
      cmocka_unit_test(test_constant_of_shape),
      cmocka_unit_test(test_range),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
