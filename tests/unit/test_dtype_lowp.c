/* Low-precision types (ir/dtype_lowp.c): properties that hold whatever the reference says, so
 * a regression fails here even where tests/conformance/test_lowp.py (the differential test
 * against onnx.reference) does not run. Every code of every type decodes and re-encodes to
 * itself; decoding is monotonic over the positive codes; rounding picks the nearer neighbour
 * and the even one on ties; saturation and the non-saturating overflow of each family; the
 * ONNX packing round trip for odd counts; ONNX TensorProto files round trip every type. */
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frontend/onnx.h"
#include "ir/dtype.h"

static const drt_dtype k_floats[] = {DRT_DTYPE_FLOAT8E4M3FN, DRT_DTYPE_FLOAT8E4M3FNUZ, DRT_DTYPE_FLOAT8E5M2,
                                     DRT_DTYPE_FLOAT8E5M2FNUZ, DRT_DTYPE_FLOAT4E2M1,   DRT_DTYPE_FLOAT6E2M3,
                                     DRT_DTYPE_FLOAT6E3M2};

static unsigned num_codes(drt_dtype dt) { return 1u << drt_dtype_bits(dt); }

static void test_codes_round_trip(void **state) {
  (void)state;
  drt_cast_opts sat = {true, DRT_ROUND_UP};
  for (size_t k = 0; k < sizeof k_floats / sizeof k_floats[0]; k++) {
    drt_dtype dt = k_floats[k];
    unsigned n = num_codes(dt), sign = n / 2;
    double prev = -1;
    for (unsigned c = 0; c < n; c++) {
      double v = drt_lowp_to_f64(dt, (uint8_t)c);
      if (isnan(v)) continue;
      uint8_t back = drt_lowp_from_f64(dt, v, &sat);
      /* +-inf of E5M2 saturate to max with saturate on: check those without */
      if (isinf(v)) {
        drt_cast_opts nosat = {false, DRT_ROUND_UP};
        back = drt_lowp_from_f64(dt, v, &nosat);
      }
      if (back != c) fail_msg("%s: code 0x%02x (%g) re-encodes to 0x%02x", drt_dtype_name(dt), c, v, back);
      if (c < sign && !isinf(v)) { /* positive codes decode in increasing order */
        if (!(v > prev)) fail_msg("%s: code 0x%02x (%g) is not above the previous (%g)", drt_dtype_name(dt), c, v, prev);
        prev = v;
      }
    }
  }
  /* E8M0: 2^(c-127) for every code but 0xFF (NaN); rounding down keeps every power of two
     (rounding up moves 2^-127, a float32 subnormal with mantissa bits, to 2^-126, as the
     reference does) */
  drt_cast_opts down = {true, DRT_ROUND_DOWN};
  for (unsigned c = 0; c < 255; c++) {
    double v = drt_lowp_to_f64(DRT_DTYPE_FLOAT8E8M0, (uint8_t)c);
    assert_true(v == ldexp(1.0, (int)c - 127));
    assert_int_equal(drt_lowp_from_f64(DRT_DTYPE_FLOAT8E8M0, v, &down), c);
    if (c > 0) assert_int_equal(drt_lowp_from_f64(DRT_DTYPE_FLOAT8E8M0, v, &sat), c);
  }
  assert_true(isnan(drt_lowp_to_f64(DRT_DTYPE_FLOAT8E8M0, 0xff)));
}

/* Between two neighbouring codes: a point nearer to either rounds to it, the midpoint to the
 * one with an even mantissa (the even code). */
static void test_rounding(void **state) {
  (void)state;
  drt_cast_opts sat = {true, DRT_ROUND_UP};
  for (size_t k = 0; k < sizeof k_floats / sizeof k_floats[0]; k++) {
    drt_dtype dt = k_floats[k];
    unsigned sign = num_codes(dt) / 2;
    for (unsigned c = 0; c + 1 < sign; c++) {
      double a = drt_lowp_to_f64(dt, (uint8_t)c), b = drt_lowp_to_f64(dt, (uint8_t)(c + 1));
      if (isnan(a) || isnan(b) || isinf(b)) continue;
      double mid = (a + b) / 2, q = (b - a) / 8;
      assert_int_equal(drt_lowp_from_f64(dt, mid - q, &sat), c);
      assert_int_equal(drt_lowp_from_f64(dt, mid + q, &sat), c + 1);
      unsigned even = (c & 1) ? c + 1 : c;
      if (drt_lowp_from_f64(dt, mid, &sat) != even)
        fail_msg("%s: the midpoint of 0x%02x and 0x%02x rounds to 0x%02x", drt_dtype_name(dt), c, c + 1,
                 drt_lowp_from_f64(dt, mid, &sat));
      /* negative values mirror, except that FNUZ has no -0 */
      if (c > 0) assert_int_equal(drt_lowp_from_f64(dt, -(mid - q), &sat), c | sign);
    }
  }
}

static void test_overflow(void **state) {
  (void)state;
  drt_cast_opts sat = {true, DRT_ROUND_UP}, nosat = {false, DRT_ROUND_UP};
  /* E4M3FN: max 448 (0x7E), NaN 0x7F; 464 ties down to 448, 470 overflows */
  assert_true(drt_lowp_to_f64(DRT_DTYPE_FLOAT8E4M3FN, 0x7e) == 448);
  assert_int_equal(drt_lowp_from_f64(DRT_DTYPE_FLOAT8E4M3FN, 464, &nosat), 0x7e);
  assert_true(isnan(drt_lowp_to_f64(DRT_DTYPE_FLOAT8E4M3FN, drt_lowp_from_f64(DRT_DTYPE_FLOAT8E4M3FN, 470, &nosat))));
  assert_int_equal(drt_lowp_from_f64(DRT_DTYPE_FLOAT8E4M3FN, 1e9, &sat), 0x7e);
  assert_int_equal(drt_lowp_from_f64(DRT_DTYPE_FLOAT8E4M3FN, -INFINITY, &sat), 0xfe);
  /* E5M2: overflow gives inf without saturation */
  assert_true(isinf(drt_lowp_to_f64(DRT_DTYPE_FLOAT8E5M2, drt_lowp_from_f64(DRT_DTYPE_FLOAT8E5M2, 1e6, &nosat))));
  assert_true(drt_lowp_to_f64(DRT_DTYPE_FLOAT8E5M2, drt_lowp_from_f64(DRT_DTYPE_FLOAT8E5M2, 1e6, &sat)) == 57344);
  /* FNUZ: NaN is 0x80, there is no -0 */
  assert_int_equal(drt_lowp_from_f64(DRT_DTYPE_FLOAT8E4M3FNUZ, NAN, &sat), 0x80);
  assert_int_equal(drt_lowp_from_f64(DRT_DTYPE_FLOAT8E4M3FNUZ, -0.0, &sat), 0);
  assert_int_equal(drt_lowp_from_f64(DRT_DTYPE_FLOAT8E5M2FNUZ, -1e-30, &sat), 0);
  assert_int_equal(drt_lowp_from_f64(DRT_DTYPE_FLOAT8E5M2FNUZ, 1e9, &nosat), 0x80);
  /* float4/float6 have no inf/NaN: they always saturate */
  assert_true(drt_lowp_to_f64(DRT_DTYPE_FLOAT4E2M1, drt_lowp_from_f64(DRT_DTYPE_FLOAT4E2M1, 100, &nosat)) == 6);
  assert_true(drt_lowp_to_f64(DRT_DTYPE_FLOAT6E2M3, drt_lowp_from_f64(DRT_DTYPE_FLOAT6E2M3, -100, &nosat)) == -7.5);
  assert_true(drt_lowp_to_f64(DRT_DTYPE_FLOAT6E3M2, drt_lowp_from_f64(DRT_DTYPE_FLOAT6E3M2, INFINITY, &nosat)) == 28);
  /* E8M0 rounding modes on 1.5 * 2^3 and saturation at 2^127 */
  drt_cast_opts up = {true, DRT_ROUND_UP}, down = {true, DRT_ROUND_DOWN}, near = {true, DRT_ROUND_NEAREST};
  assert_int_equal(drt_lowp_from_f64(DRT_DTYPE_FLOAT8E8M0, 12.0, &up), 127 + 4);
  assert_int_equal(drt_lowp_from_f64(DRT_DTYPE_FLOAT8E8M0, 12.0, &down), 127 + 3);
  assert_int_equal(drt_lowp_from_f64(DRT_DTYPE_FLOAT8E8M0, 12.0, &near), 127 + 4);
  assert_int_equal(drt_lowp_from_f64(DRT_DTYPE_FLOAT8E8M0, 9.0, &near), 127 + 3);
  assert_int_equal(drt_lowp_from_f64(DRT_DTYPE_FLOAT8E8M0, 1.5 * ldexp(1, 127), &up), 0xfe);
  drt_cast_opts up_nosat = {false, DRT_ROUND_UP};
  assert_int_equal(drt_lowp_from_f64(DRT_DTYPE_FLOAT8E8M0, 1.5 * ldexp(1, 127), &up_nosat), 0xff);
  /* integers: truncate and wrap */
  assert_int_equal((int8_t)drt_lowp_from_f64(DRT_DTYPE_INT4, -9.7, NULL), 7);
  assert_int_equal((int8_t)drt_lowp_from_f64(DRT_DTYPE_INT4, 8.0, NULL), -8);
  assert_int_equal(drt_lowp_from_f64(DRT_DTYPE_UINT2, -3.0, NULL), 1);
  assert_int_equal((int8_t)drt_lowp_from_i64(DRT_DTYPE_INT2, 6, NULL), -2);
  assert_int_equal(drt_lowp_from_f64(DRT_DTYPE_UINT4, NAN, NULL), 0);
  /* a uint64 above INT64_MAX converts by value (saturating), not as a negative int64 */
  uint64_t big[2] = {UINT64_MAX, (uint64_t)1 << 63};
  uint8_t q[2];
  drt_convert_ex(DRT_DTYPE_FLOAT8E4M3FN, q, DRT_DTYPE_UINT64, big, 2, &sat);
  assert_int_equal(q[0], 0x7e);
  assert_int_equal(q[1], 0x7e);
  /* NaN keeps its sign through decoding; float4 then writes +0 for -NaN (ml_dtypes) */
  assert_true(isnan(drt_lowp_to_f64(DRT_DTYPE_FLOAT8E4M3FN, 0xff)) && signbit(drt_lowp_to_f64(DRT_DTYPE_FLOAT8E4M3FN, 0xff)));
  assert_true(signbit(drt_lowp_to_f64(DRT_DTYPE_FLOAT8E5M2FNUZ, 0x80)));
  uint8_t nan8 = 0xff, f4;
  drt_convert_ex(DRT_DTYPE_FLOAT4E2M1, &f4, DRT_DTYPE_FLOAT8E4M3FN, &nan8, 1, &sat);
  assert_int_equal(f4, 0);
  /* a float64 rounds to float32 first (ml_dtypes): just below a float8 tie in double, at it in float */
  assert_int_equal(drt_lowp_from_f64(DRT_DTYPE_FLOAT8E4M3FN, -0.5937499845230255, &sat),
                   drt_lowp_from_f64(DRT_DTYPE_FLOAT8E4M3FN, (double)(float)-0.5937499845230255, &sat));
  /* packed sizes never overflow */
  assert_int_equal(drt_lowp_packed_bytes(DRT_DTYPE_INT4, SIZE_MAX), SIZE_MAX / 2 + 1);
}

static void test_pack_round_trip(void **state) {
  (void)state;
  const drt_dtype dts[] = {DRT_DTYPE_INT4, DRT_DTYPE_UINT4, DRT_DTYPE_FLOAT4E2M1, DRT_DTYPE_INT2,
                           DRT_DTYPE_UINT2, DRT_DTYPE_FLOAT6E2M3, DRT_DTYPE_FLOAT6E3M2};
  drt_test_rng r = {7};
  for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++) {
    for (size_t n = 0; n <= 13; n++) {
      uint8_t v[13], packed[16], back[13];
      for (size_t i = 0; i < n; i++) v[i] = drt_lowp_canonical(dts[k], (uint8_t)drt_test_next(&r));
      size_t pb = drt_lowp_packed_bytes(dts[k], n);
      assert_int_equal(pb, (n * (size_t)drt_dtype_bits(dts[k]) + 7) / 8);
      drt_lowp_pack(dts[k], packed, v, n);
      drt_lowp_unpack(dts[k], back, packed, n);
      assert_memory_equal(v, back, n);
    }
  }
  /* int4 in memory is a sign-extended byte; the packed form puts element 0 in the low nibble */
  uint8_t v[3] = {(uint8_t)(int8_t)-8, 7, (uint8_t)(int8_t)-1}, p[2];
  drt_lowp_pack(DRT_DTYPE_INT4, p, v, 3);
  assert_int_equal(p[0], 0x78);
  assert_int_equal(p[1], 0x0f);
}

/* TensorProto files: every low-precision type, odd counts (sub-byte padding), read back equal. */
static void test_tensor_proto_files(void **state) {
  (void)state;
  drt_test_rng r = {11};
  char path[] = "/tmp/drt_lowp_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  for (int dt = DRT_DTYPE_FLOAT8E4M3FN; dt <= DRT_DTYPE_FLOAT6E3M2; dt++) {
    drt_tensor t = {(drt_dtype)dt, drt_test_shape(2, (int64_t[]){3, 5}), NULL};
    uint8_t data[15];
    for (int i = 0; i < 15; i++) data[i] = drt_lowp_canonical((drt_dtype)dt, (uint8_t)drt_test_next(&r));
    t.data = data;
    void *bytes;
    size_t size;
    DRT_ASSERT_OK(drt_onnx_tensor_serialize("x", &t, &bytes, &size));
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, size, f), size);
    fclose(f);
    free(bytes);
    drt_tensor back;
    char *name = NULL;
    DRT_ASSERT_OK(drt_onnx_tensor_read_file(path, 0, &back, &name));
    assert_int_equal(back.dtype, dt);
    assert_true(drt_shape_equal(&back.shape, &t.shape));
    assert_memory_equal(back.data, data, 15);
    assert_string_equal(name, "x");
    free(back.data);
    free(name);
  }
  /* a truncated file is refused, naming the file */
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fputs("\x08\x03\x10\x16\x4a\x09zz", f); /* dims [3], INT4, raw_data of 9 bytes announced, 2 present */
  fclose(f);
  drt_tensor bad;
  drt_status st = drt_onnx_tensor_read_file(path, 0, &bad, NULL);
  assert_int_equal(drt_status_code_of(st), DRT_STATUS_CORRUPT);
  assert_non_null(strstr(drt_status_message(st), path));
  drt_status_free(st);
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_codes_round_trip),
      cmocka_unit_test(test_rounding),
      cmocka_unit_test(test_overflow),
      cmocka_unit_test(test_pack_round_trip),
      cmocka_unit_test(test_tensor_proto_files),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
