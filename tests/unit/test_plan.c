/* Plans: serialize -> parse -> run through the public API gives the executor's outputs;
 * truncated, bit-flipped and version-mismatched plans give clear errors and never crash. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "distilrt.h"
#include "passes/canonicalize.h"
#include "runtime/cpu/executor.h"
#include "runtime/plan.h"

/* y = Relu(MatMul(x, W) + b), x: 2x3 input, W: 3x4, b: 4 */
static drt_graph *build_graph(void) {
  drt_graph *g;
  if (drt_graph_create(&g)) return NULL;
  g->opset = 17;
  drt_shape sx = drt_test_shape(2, (int64_t[]){2, 3}), sw = drt_test_shape(2, (int64_t[]){3, 4}),
            sb = drt_test_shape(1, (int64_t[]){4});
  float w[12], b[4];
  drt_test_rng r = {7};
  drt_test_fill(&r, w, 12, -1, 1);
  drt_test_fill(&r, b, 4, -1, 1);
  drt_value *x = drt_graph_add_value(g, "x", DRT_DTYPE_FLOAT32, &sx), *wv, *bv;
  drt_graph_add_input(g, x);
  drt_status s1 = drt_graph_add_const(g, "W", DRT_DTYPE_FLOAT32, &sw, w, &wv);
  drt_status s2 = drt_graph_add_const(g, "b", DRT_DTYPE_FLOAT32, &sb, b, &bv);
  if (s1 || s2) return NULL;
  drt_value *m = drt_graph_add_value(g, "m", DRT_DTYPE_UNDEFINED, NULL);
  drt_value *a = drt_graph_add_value(g, "a", DRT_DTYPE_UNDEFINED, NULL);
  drt_value *y = drt_graph_add_value(g, "y", DRT_DTYPE_UNDEFINED, NULL);
  drt_value *in1[2] = {x, wv}, *in2[2] = {m, bv};
  if (drt_graph_add_node(g, DRT_OP_MATMUL, "mm", in1, 2, &m, 1, NULL) ||
      drt_graph_add_node(g, DRT_OP_ADD, "add", in2, 2, &a, 1, NULL) ||
      drt_graph_add_node(g, DRT_OP_RELU, "relu", &a, 1, &y, 1, NULL) || drt_graph_add_output(g, y))
    return NULL;
  drt_pass_ctx pc = {0};
  bool changed;
  drt_status s = drt_pass_canonicalize(g, &pc, &changed);
  if (s) {
    drt_status_free(s);
    return NULL;
  }
  return g;
}

static void *serialize(drt_graph *g, size_t *size) {
  drt_plan_contents c;
  memset(&c, 0, sizeof c);
  c.graph = g;
  c.targets = DRT_PLAN_TARGET_CPU;
  uint8_t in_roles[1] = {DRT_PLAN_ROLE_LATENT}, out_roles[1] = {DRT_PLAN_ROLE_PREDICTION};
  c.input_roles = in_roles;
  c.output_roles = out_roles;
  void *bytes = NULL;
  drt_status s = drt_plan_serialize(&c, &bytes, size);
  if (s) drt_status_free(s);
  return bytes;
}

static const float k_x[6] = {0.5f, -1.0f, 2.0f, 1.5f, 0.25f, -0.75f};

static drt_status_code run_plan_bytes(const void *bytes, size_t size, float *y) {
  drt_plan *p = NULL;
  drt_session *s = NULL;
  drt_status_code c = drt_plan_load_memory(bytes, size, &p);
  if (c == DRT_STATUS_OK) c = drt_session_create(p, NULL, &s);
  int64_t dims[2] = {2, 3};
  if (c == DRT_STATUS_OK) c = drt_session_set_input(s, "x", DRT_DTYPE_FLOAT32, 2, dims, k_x, sizeof k_x);
  if (c == DRT_STATUS_OK) c = drt_session_run(s);
  const void *data;
  size_t nb;
  drt_tensor_desc d;
  if (c == DRT_STATUS_OK) c = drt_session_get_output(s, "y", &d, &data, &nb);
  if (c == DRT_STATUS_OK) {
    assert_int_equal(nb, 8 * sizeof(float));
    assert_int_equal(d.role, DRT_ROLE_PREDICTION);
    memcpy(y, data, nb);
  }
  drt_session_destroy(s);
  drt_plan_destroy(p);
  return c;
}

static void test_roundtrip_matches_executor(void **state) {
  (void)state;
  drt_graph *g = build_graph();
  assert_non_null(g);
  size_t size;
  void *bytes = serialize(g, &size);
  assert_non_null(bytes);
  /* reference: the executor on the original graph */
  drt_cpu_executor *e;
  DRT_ASSERT_OK(drt_cpu_executor_create(g, NULL, &e));
  drt_tensor in = {DRT_DTYPE_FLOAT32, drt_test_shape(2, (int64_t[]){2, 3}), (void *)k_x}, out;
  DRT_ASSERT_OK(drt_cpu_executor_run(e, &in, &out));
  /* naive check of the reference itself */
  const drt_value *W = drt_graph_find_value(g, "W"), *B = drt_graph_find_value(g, "b");
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 4; j++) {
      float acc = ((float *)B->data)[j];
      for (int k = 0; k < 3; k++) acc += k_x[i * 3 + k] * ((float *)W->data)[k * 4 + j];
      float want = acc > 0 ? acc : 0;
      assert_true(fabsf(((float *)out.data)[i * 4 + j] - want) < 1e-5f);
    }
  float y[8];
  assert_int_equal(run_plan_bytes(bytes, size, y), DRT_STATUS_OK);
  assert_memory_equal(y, out.data, sizeof y);
  /* weights are 64-byte aligned in the file */
  drt_plan_contents c;
  void *copy = malloc(size);
  memcpy(copy, bytes, size);
  DRT_ASSERT_OK(drt_plan_parse(copy, size, "mem", &c));
  const drt_value *w2 = drt_graph_find_value(c.graph, "W");
  assert_int_equal(((uintptr_t)w2->data - (uintptr_t)c.file_data) % 64, 0);
  drt_plan_contents_free(&c);
  free(out.data);
  drt_cpu_executor_destroy(e);
  free(bytes);
  drt_graph_destroy(g);
}

static void test_truncation_and_bitflips(void **state) {
  (void)state;
  drt_graph *g = build_graph();
  size_t size;
  uint8_t *bytes = serialize(g, &size);
  assert_non_null(bytes);
  float ref[8], y[8];
  assert_int_equal(run_plan_bytes(bytes, size, ref), DRT_STATUS_OK);
  /* every truncation fails cleanly with a message */
  for (size_t n = 0; n < size; n += (n < 128 ? 1 : 7)) {
    drt_status_code c = run_plan_bytes(bytes, n, y);
    assert_int_not_equal(c, DRT_STATUS_OK);
    assert_true(strlen(drt_last_error()) > 0);
  }
  /* single-bit flips anywhere: either an error, or (padding bytes) identical outputs */
  uint8_t *m = malloc(size);
  int failures = 0;
  for (size_t i = 0; i < size; i++) {
    memcpy(m, bytes, size);
    m[i] ^= (uint8_t)(1u << (i % 8));
    drt_status_code c = run_plan_bytes(m, size, y);
    if (c == DRT_STATUS_OK) assert_memory_equal(y, ref, sizeof y);
    else failures++;
  }
  assert_true(failures > (int)(size / 2)); /* checksums catch the flips */
  /* a flip in the graph section is reported as a checksum mismatch naming the section */
  memcpy(m, bytes, size);
  m[size / 2] ^= 0x10;
  drt_status_code c = run_plan_bytes(m, size, y);
  assert_int_equal(c, DRT_STATUS_CORRUPT);
  free(m);
  free(bytes);
  drt_graph_destroy(g);
}

static void test_version_and_magic(void **state) {
  (void)state;
  drt_graph *g = build_graph();
  size_t size;
  uint8_t *bytes = serialize(g, &size);
  float y[8];
  uint8_t *m = malloc(size);
  memcpy(m, bytes, size);
  m[8] = 99; /* format version */
  assert_int_equal(run_plan_bytes(m, size, y), DRT_STATUS_UNSUPPORTED);
  assert_non_null(strstr(drt_last_error(), "format version 99"));
  memcpy(m, bytes, size);
  m[0] = 'X';
  assert_int_equal(run_plan_bytes(m, size, y), DRT_STATUS_CORRUPT);
  assert_non_null(strstr(drt_last_error(), "not a distilrt plan"));
  assert_int_equal(drt_plan_load_file("/nonexistent/model.plan", &(drt_plan *){NULL}), DRT_STATUS_NOT_FOUND);
  assert_non_null(strstr(drt_last_error(), "/nonexistent/model.plan"));
  free(m);
  free(bytes);
  drt_graph_destroy(g);
}

static void test_session_input_checks(void **state) {
  (void)state;
  drt_graph *g = build_graph();
  size_t size;
  uint8_t *bytes = serialize(g, &size);
  drt_plan *p;
  drt_session *s;
  assert_int_equal(drt_plan_load_memory(bytes, size, &p), DRT_STATUS_OK);
  assert_int_equal(drt_session_create(p, NULL, &s), DRT_STATUS_OK);
  int64_t bad[2] = {3, 2};
  assert_int_equal(drt_session_set_input(s, "x", DRT_DTYPE_FLOAT32, 2, bad, k_x, sizeof k_x),
                   DRT_STATUS_INVALID_ARGUMENT);
  assert_non_null(strstr(drt_last_error(), "3x2"));
  int64_t good[2] = {2, 3};
  assert_int_equal(drt_session_set_input(s, "x", DRT_DTYPE_INT64, 2, good, k_x, sizeof k_x),
                   DRT_STATUS_INVALID_ARGUMENT);
  assert_int_equal(drt_session_set_input(s, "nope", DRT_DTYPE_FLOAT32, 2, good, k_x, sizeof k_x), DRT_STATUS_NOT_FOUND);
  assert_int_equal(drt_session_run(s), DRT_STATUS_INVALID_ARGUMENT); /* x not set */
  assert_non_null(strstr(drt_last_error(), "'x' was not set"));
  drt_memory_info mi;
  assert_int_equal(drt_plan_memory(p, &mi), DRT_STATUS_OK);
  assert_int_equal(mi.weights, (12 + 4) * sizeof(float));
  assert_true(mi.activations >= 8 * sizeof(float));
  drt_session_destroy(s);
  drt_plan_destroy(p);
  drt_session_destroy(NULL);
  drt_plan_destroy(NULL);
  free(bytes);
  drt_graph_destroy(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_matches_executor),
      cmocka_unit_test(test_truncation_and_bitflips),
      cmocka_unit_test(test_version_and_magic),
      cmocka_unit_test(test_session_input_checks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
