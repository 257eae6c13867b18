/* IR core: arena, graph construction, name lookup, topo sort, cycles, DCE, dtype conversions. */
#include "testutil.h"

#include <math.h>
#include <string.h>

#include "ir/infer.h"

static void test_f16_roundtrip(void **state) {
  (void)state;
  const float vals[] = {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 0.1f, 3.14159f};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    float back = drt_f16_to_f32(drt_f32_to_f16(vals[i]));
    assert_true(fabsf(back - vals[i]) <= fabsf(vals[i]) * 1e-3f + 1e-7f);
  }
  assert_true(isinf(drt_f16_to_f32(drt_f32_to_f16(1e6f))));
  assert_true(isnan(drt_f16_to_f32(drt_f32_to_f16(NAN))));
  /* round-to-nearest-even at the halfway point between 1 and 1+2^-10 */
  assert_int_equal(drt_f32_to_f16(1.0f + 0.00048828125f), 0x3c00);
  assert_int_equal(drt_f32_to_bf16(1.0f), 0x3f80);
  assert_true(drt_bf16_to_f32(drt_f32_to_bf16(3.0f)) == 3.0f);
}

static void test_topo_sort_and_cycle(void **state) {
  (void)state;
  drt_graph *g;
  DRT_ASSERT_OK(drt_graph_create(&g));
  drt_shape s = drt_test_shape(1, (int64_t[]){4});
  drt_value *x = drt_graph_add_value(g, "x", DRT_DTYPE_FLOAT32, &s);
  DRT_ASSERT_OK(drt_graph_add_input(g, x));
  drt_value *a = drt_graph_add_value(g, "a", DRT_DTYPE_UNDEFINED, NULL);
  drt_value *b = drt_graph_add_value(g, "b", DRT_DTYPE_UNDEFINED, NULL);
  drt_node *nb, *na;
  /* b = Relu(a) added before a = Neg(x): sort must reorder */
  DRT_ASSERT_OK(drt_graph_add_node(g, DRT_OP_RELU, "relu", &a, 1, &b, 1, &nb));
  DRT_ASSERT_OK(drt_graph_add_node(g, DRT_OP_NEG, "neg", &x, 1, &a, 1, &na));
  DRT_ASSERT_OK(drt_graph_add_output(g, b));
  DRT_ASSERT_OK(drt_graph_topo_sort(g));
  assert_ptr_equal(g->nodes[0], na);
  assert_ptr_equal(g->nodes[1], nb);
  assert_ptr_equal(drt_graph_find_value(g, "a"), a);
  assert_null(drt_graph_find_value(g, "nope"));
  /* make a cycle: neg consumes b */
  na->inputs[0] = b;
  DRT_ASSERT_ERROR(drt_graph_topo_sort(g), DRT_STATUS_INVALID_ARGUMENT, "cycle");
  drt_graph_destroy(g);
}

static void test_dce(void **state) {
  (void)state;
  drt_graph *g;
  DRT_ASSERT_OK(drt_graph_create(&g));
  drt_shape s = drt_test_shape(1, (int64_t[]){4});
  drt_value *x = drt_graph_add_value(g, "x", DRT_DTYPE_FLOAT32, &s);
  DRT_ASSERT_OK(drt_graph_add_input(g, x));
  drt_value *a = drt_graph_add_value(g, "a", DRT_DTYPE_UNDEFINED, NULL);
  drt_value *unused = drt_graph_add_value(g, "unused", DRT_DTYPE_UNDEFINED, NULL);
  DRT_ASSERT_OK(drt_graph_add_node(g, DRT_OP_NEG, "neg", &x, 1, &a, 1, NULL));
  DRT_ASSERT_OK(drt_graph_add_node(g, DRT_OP_EXP, "exp", &x, 1, &unused, 1, NULL));
  DRT_ASSERT_OK(drt_graph_add_output(g, a));
  assert_int_equal(drt_graph_dce(g), 1);
  assert_int_equal(g->num_nodes, 1);
  assert_null(drt_graph_find_value(g, "unused"));
  drt_graph_destroy(g);
}

static void test_broadcast_shapes(void **state) {
  (void)state;
  drt_shape a = drt_test_shape(3, (int64_t[]){2, 1, 4}), b = drt_test_shape(2, (int64_t[]){3, 1}), o;
  DRT_ASSERT_OK(drt_broadcast_shapes(&a, &b, &o));
  assert_int_equal(o.rank, 3);
  assert_int_equal(o.dims[0], 2);
  assert_int_equal(o.dims[1], 3);
  assert_int_equal(o.dims[2], 4);
  drt_shape c = drt_test_shape(1, (int64_t[]){5});
  DRT_ASSERT_ERROR(drt_broadcast_shapes(&a, &c, &o), DRT_STATUS_INVALID_ARGUMENT, "cannot be broadcast");
}

static void test_convert_saturates(void **state) {
  (void)state;
  float src[4] = {300.0f, -300.0f, 1.9f, -1.9f};
  uint8_t u8[4];
  int8_t i8[4];
  drt_convert(DRT_DTYPE_UINT8, u8, DRT_DTYPE_FLOAT32, src, 4);
  drt_convert(DRT_DTYPE_INT8, i8, DRT_DTYPE_FLOAT32, src, 4);
  assert_int_equal(u8[0], 255);
  assert_int_equal(u8[1], 0);
  assert_int_equal(i8[2], 1);
  assert_int_equal(i8[3], -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_f16_roundtrip),
      cmocka_unit_test(test_topo_sort_and_cycle),
      cmocka_unit_test(test_dce),
      cmocka_unit_test(test_broadcast_shapes),
      cmocka_unit_test(test_convert_saturates),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
