/* IR core: arena, graph construction, name lookup, topo sort, cycles, DCE, dtype conversions. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
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

/* The bulk float32 <-> float16/bfloat16 paths of drt_convert (vectorized, F16C) give the bits of
 * the element functions: a stride through all 2^32 float32 patterns plus the edges (signed
 * zeros, subnormals, the fp16 overflow threshold, infinities, quiet and signalling NaNs), all
 * 2^16 half patterns back, and lengths that leave a tail after the 8-wide blocks. */
static void test_convert_bulk_matches_elementwise(void **state) {
  (void)state;
  const size_t n = (1u << 20) + 5;
  uint32_t *bits = malloc(n * 4);
  uint16_t *h = malloc(n * 2), *b = malloc(n * 2);
  float *back = malloc(n * 4);
  assert_true(bits && h && b && back);
  static const uint32_t edges[] = {0x00000000u, 0x80000000u, 0x00000001u, 0x807fffffu, 0x33000000u, 0x33000001u,
                                   0x387fe000u, 0x38800000u, 0x477fefffu, 0x477ff000u, 0x7f7fffffu, 0x7f800000u,
                                   0xff800000u, 0x7fc00000u, 0x7f800001u, 0xffbfffffu, 0x3f808000u, 0x3f818000u};
  size_t ne = sizeof edges / sizeof edges[0];
  for (size_t i = 0; i < n; i++) bits[i] = i < ne ? edges[i] : (uint32_t)((uint64_t)i * 4099u * 1031u);
  for (size_t len = n; len + 8 > n; len -= 3) { /* tails of 5, 2 and 7 elements */
    drt_convert(DRT_DTYPE_FLOAT16, h, DRT_DTYPE_FLOAT32, bits, len);
    drt_convert(DRT_DTYPE_BFLOAT16, b, DRT_DTYPE_FLOAT32, bits, len);
    for (size_t i = 0; i < len; i++) {
      float f;
      memcpy(&f, &bits[i], 4);
      if (h[i] != drt_f32_to_f16(f) || b[i] != drt_f32_to_bf16(f))
        fail_msg("float32 %08x: half %04x (want %04x), bfloat16 %04x (want %04x)", bits[i], h[i], drt_f32_to_f16(f),
                 b[i], drt_f32_to_bf16(f));
    }
  }
  for (size_t i = 0; i < 65536 + 3; i++) h[i] = (uint16_t)i;
  for (int which = 0; which < 2; which++) {
    drt_dtype dt = which ? DRT_DTYPE_BFLOAT16 : DRT_DTYPE_FLOAT16;
    drt_convert(DRT_DTYPE_FLOAT32, back, dt, h, 65536 + 3);
    for (size_t i = 0; i < 65536 + 3; i++) {
      float want = which ? drt_bf16_to_f32(h[i]) : drt_f16_to_f32(h[i]);
      if (memcmp(&want, &back[i], 4) != 0) fail_msg("%s %04x decodes to other bits", drt_dtype_name(dt), h[i]);
    }
  }
  free(bits);
  free(h);
  free(b);
  free(back);
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
      cmocka_unit_test(test_convert_bulk_matches_elementwise),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
