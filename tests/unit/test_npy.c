/* .npy reader/writer: round trips for every dtype, and every malformed form is refused. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/npy.h"

static void test_roundtrip_dtypes(void **state) {
  (void)state;
  const drt_dtype dts[] = {DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT16, DRT_DTYPE_FLOAT64, DRT_DTYPE_INT64,
                           DRT_DTYPE_INT32,   DRT_DTYPE_INT8,    DRT_DTYPE_UINT8,   DRT_DTYPE_BOOL};
  drt_test_rng r = {42};
  for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++) {
    for (int rank = 0; rank <= 3; rank++) {
      drt_shape s = drt_test_shape(rank, (int64_t[]){2, 3, 5});
      drt_tensor t = {dts[k], s, NULL};
      size_t nb = drt_tensor_nbytes(&t);
      unsigned char *data = malloc(nb);
      for (size_t i = 0; i < nb; i++) data[i] = (unsigned char)drt_test_next(&r);
      if (dts[k] == DRT_DTYPE_BOOL)
        for (size_t i = 0; i < nb; i++) data[i] &= 1;
      t.data = data;
      void *bytes;
      size_t size;
      DRT_ASSERT_OK(drt_npy_serialize(&t, &bytes, &size));
      assert_int_equal((10 + ((unsigned char *)bytes)[8]) % 64, 0); /* header padded to 64 */
      drt_tensor back;
      DRT_ASSERT_OK(drt_npy_parse(bytes, size, "mem", &back));
      assert_int_equal(back.dtype, dts[k]);
      assert_true(drt_shape_equal(&back.shape, &s));
      assert_memory_equal(back.data, data, nb);
      free(back.data);
      free(bytes);
      free(data);
    }
  }
}

static drt_status parse_str(const char *header, size_t data_bytes, drt_tensor *out) {
  size_t hl = strlen(header);
  size_t size = 10 + hl + data_bytes;
  unsigned char *buf = calloc(1, size);
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  buf[8] = (unsigned char)(hl & 0xff);
  buf[9] = (unsigned char)(hl >> 8);
  memcpy(buf + 10, header, hl);
  drt_status s = drt_npy_parse(buf, size, "case.npy", out);
  free(buf);
  return s;
}

static void test_malformed(void **state) {
  (void)state;
  drt_tensor t;
  DRT_ASSERT_ERROR(parse_str("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }\n", 16, &t),
                   DRT_STATUS_UNSUPPORTED, "Fortran");
  DRT_ASSERT_ERROR(parse_str("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }\n", 16, &t),
                   DRT_STATUS_UNSUPPORTED, "pickled");
  DRT_ASSERT_ERROR(parse_str("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }\n", 8, &t),
                   DRT_STATUS_UNSUPPORTED, "big-endian");
  DRT_ASSERT_ERROR(parse_str("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }\n", 8, &t),
                   DRT_STATUS_INVALID_ARGUMENT, "expected 12 data bytes");
  DRT_ASSERT_ERROR(parse_str("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }\n", 8, &t),
                   DRT_STATUS_INVALID_ARGUMENT, "too large");
  DRT_ASSERT_ERROR(parse_str("{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }\n", 4, &t),
                   DRT_STATUS_UNSUPPORTED, "rank");
  DRT_ASSERT_ERROR(parse_str("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }\n", 8, &t),
                   DRT_STATUS_UNSUPPORTED, "not supported");
  DRT_ASSERT_ERROR(parse_str("{'descr': '<f4', 'shape': (1,), }\n", 4, &t), DRT_STATUS_INVALID_ARGUMENT, "malformed");
  DRT_ASSERT_ERROR(drt_npy_parse("\x93NUMPY", 6, "short.npy", &t), DRT_STATUS_INVALID_ARGUMENT, "bad magic");
  DRT_ASSERT_ERROR(drt_npy_parse("hello world, not npy", 20, "text.npy", &t), DRT_STATUS_INVALID_ARGUMENT, "bad magic");
  /* header length pointing past the end */
  unsigned char trunc[16] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0xff, 0x7f};
  DRT_ASSERT_ERROR(drt_npy_parse(trunc, sizeof trunc, "trunc.npy", &t), DRT_STATUS_INVALID_ARGUMENT, "truncated");
  DRT_ASSERT_ERROR(drt_npy_read_file("/nonexistent/dir/x.npy", &t), DRT_STATUS_NOT_FOUND, "no such file");
}

static void test_atomic_write(void **state) {
  (void)state;
  float v[3] = {1, 2, 3};
  drt_tensor t = {DRT_DTYPE_FLOAT32, drt_test_shape(1, (int64_t[]){3}), v};
  char path[] = "/tmp/drt_npy_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  DRT_ASSERT_OK(drt_npy_write_file(path, &t));
  drt_tensor back;
  DRT_ASSERT_OK(drt_npy_read_file(path, &back));
  assert_memory_equal(back.data, v, sizeof v);
  free(back.data);
  unlink(path);
  /* a folder that does not exist: clear error, nothing written */
  DRT_ASSERT_ERROR(drt_npy_write_file("/nonexistent-dir/out.npy", &t), DRT_STATUS_IO, "out.npy");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_dtypes),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_atomic_write),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
