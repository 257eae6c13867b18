/* safetensors reader: files written by the Python `safetensors` package are read back with
 * their dtypes, shapes, values and metadata; every malformed form (made by
 * tests/unit/data/safetensors/make_safetensors.py) is refused with a message naming the
 * defect and the tensor. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/npy.h"
#include "runtime/safetensors.h"

static const char *data_path(const char *name, char *buf, size_t n) {
  const char *src = getenv("DRT_SOURCE_DIR");
  snprintf(buf, n, "%s/tests/unit/data/safetensors/%s", src ? src : ".", name);
  return buf;
}

static drt_status open_data(const char *name, drt_safetensors **out) {
  char p[1024];
  return drt_safetensors_open_file(data_path(name, p, sizeof p), 0, out);
}

/* The generator's formula: floats ((i % 7) - 3) * 0.5, ints (i % 7) - 3 (u8: i % 7), bool i % 3 == 0. */
static double expected(drt_dtype dt, size_t i) {
  if (dt == DRT_DTYPE_BOOL) return i % 3 == 0;
  if (dt == DRT_DTYPE_UINT8) return (double)(i % 7);
  double v = (double)(i % 7) - 3.0;
  return drt_dtype_is_float(dt) ? v * 0.5 : v;
}

static void test_valid_file(void **state) {
  (void)state;
  drt_safetensors *st;
  DRT_ASSERT_OK(open_data("valid.safetensors", &st));
  assert_int_equal(drt_safetensors_count(st), 12);
  static const struct {
    const char *name;
    drt_dtype dt;
    int rank;
    int64_t dims[3];
  } want[] = {{"t_f64", DRT_DTYPE_FLOAT64, 2, {2, 3}},     {"t_f32", DRT_DTYPE_FLOAT32, 3, {2, 3, 4}},
              {"t_f16", DRT_DTYPE_FLOAT16, 1, {5}},        {"t_bf16", DRT_DTYPE_BFLOAT16, 2, {3, 3}},
              {"t_i64", DRT_DTYPE_INT64, 1, {4}},          {"t_i32", DRT_DTYPE_INT32, 2, {2, 2}},
              {"t_i16", DRT_DTYPE_INT16, 1, {3}},          {"t_i8", DRT_DTYPE_INT8, 1, {7}},
              {"t_u8", DRT_DTYPE_UINT8, 2, {1, 9}},        {"t_bool", DRT_DTYPE_BOOL, 1, {5}}};
  for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
    const drt_st_tensor *t = drt_safetensors_find(st, want[k].name);
    assert_non_null(t);
    assert_string_equal(t->name, want[k].name);
    assert_int_equal(t->dtype, want[k].dt);
    assert_int_equal(t->shape.rank, want[k].rank);
    for (int d = 0; d < want[k].rank; d++) assert_int_equal(t->shape.dims[d], want[k].dims[d]);
    size_t n = (size_t)drt_shape_numel(&t->shape);
    assert_int_equal(t->nbytes, n * drt_dtype_size(want[k].dt));
    double *v = malloc(n * sizeof(double));
    drt_safetensors_read(t, DRT_DTYPE_FLOAT64, v);
    for (size_t i = 0; i < n; i++) {
      if (v[i] != expected(want[k].dt, i)) print_error("%s[%zu] = %g\n", want[k].name, i, v[i]);
      assert_true(v[i] == expected(want[k].dt, i));
    }
    /* and in the tensor's own dtype: the raw bytes */
    void *raw = malloc(t->nbytes + 1);
    drt_safetensors_read(t, t->dtype, raw);
    assert_memory_equal(raw, t->data, t->nbytes);
    free(raw);
    free(v);
  }
  const drt_st_tensor *s = drt_safetensors_find(st, "scalar");
  assert_non_null(s);
  assert_int_equal(s->shape.rank, 0);
  float f;
  drt_safetensors_read(s, DRT_DTYPE_FLOAT32, &f);
  assert_true(f == 2.5f);
  const drt_st_tensor *e = drt_safetensors_find(st, "empty");
  assert_non_null(e);
  assert_int_equal(e->nbytes, 0);
  assert_int_equal(e->shape.dims[0], 0);
  assert_null(drt_safetensors_find(st, "missing"));
  assert_null(drt_safetensors_find(st, "t_f3"));
  /* tensors are listed in data order and tile the data area */
  for (size_t i = 1; i < drt_safetensors_count(st); i++) {
    const drt_st_tensor *a = drt_safetensors_at(st, i - 1), *b = drt_safetensors_at(st, i);
    assert_ptr_equal((const uint8_t *)a->data + a->nbytes, b->data);
  }
  assert_int_equal(drt_safetensors_metadata_count(st), 2);
  assert_string_equal(drt_safetensors_metadata(st, "format"), "pt");
  assert_string_equal(drt_safetensors_metadata(st, "note"), "caf\xc3\xa9 \xf0\x9f\x98\x80 \"quoted\"");
  assert_null(drt_safetensors_metadata(st, "absent"));
  drt_safetensors_close(st);
  drt_safetensors_close(NULL);
}

static void test_control_file(void **state) {
  (void)state;
  drt_safetensors *st;
  DRT_ASSERT_OK(open_data("bad_ok_control.safetensors", &st));
  assert_int_equal(drt_safetensors_count(st), 2);
  float v[2];
  drt_safetensors_read(drt_safetensors_find(st, "b"), DRT_DTYPE_FLOAT32, v);
  assert_true(v[0] == 3.0f && v[1] == 4.0f);
  drt_safetensors_close(st);
}

static void test_malformed(void **state) {
  (void)state;
  static const struct {
    const char *file;
    drt_status_code code;
    const char *needle;
  } cases[] = {
      {"bad_short.safetensors", DRT_STATUS_CORRUPT, "shorter than the 8-byte header length"},
      {"bad_header_length.safetensors", DRT_STATUS_CORRUPT, "runs past the end"},
      {"bad_json.safetensors", DRT_STATUS_CORRUPT, "to close the header object"},
      {"bad_out_of_range.safetensors", DRT_STATUS_CORRUPT, "tensor 'a': data_offsets [0, 24) run past the 16 bytes"},
      {"bad_overlap.safetensors", DRT_STATUS_CORRUPT, "tensor 'b' overlaps tensor 'a'"},
      {"bad_hole.safetensors", DRT_STATUS_CORRUPT, "4 bytes of data before tensor 'b' belong to no tensor"},
      {"bad_size.safetensors", DRT_STATUS_CORRUPT, "tensor 'a': data_offsets [0, 16) hold 16 bytes, but F32[3] needs 12"},
      {"bad_dtype.safetensors", DRT_STATUS_UNSUPPORTED, "tensor 'a' has dtype 'C64'"},
      {"bad_duplicate.safetensors", DRT_STATUS_CORRUPT, "tensor 'a' appears twice"},
      {"bad_trailing.safetensors", DRT_STATUS_CORRUPT, "unexpected bytes after the header"},
      {"bad_float_dim.safetensors", DRT_STATUS_CORRUPT, "tensor 'a': shape must hold integers"},
      {"bad_negative_dim.safetensors", DRT_STATUS_CORRUPT, "tensor 'a': shape must hold non-negative integers"},
      {"bad_missing_field.safetensors", DRT_STATUS_CORRUPT, "tensor 'a' lacks data_offsets"},
      {"bad_unknown_field.safetensors", DRT_STATUS_CORRUPT, "tensor 'a': unknown field 'stride'"},
      {"bad_metadata.safetensors", DRT_STATUS_CORRUPT, "__metadata__ value of 'n' is not a string"},
      {"bad_extra_data.safetensors", DRT_STATUS_CORRUPT, "16 bytes of data but the tensors cover 8"},
      {"bad_rank.safetensors", DRT_STATUS_CORRUPT, "tensor 'a': shape has more than 8 entries"},
      {"bad_escape.safetensors", DRT_STATUS_CORRUPT, "unpaired UTF-16 surrogate"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    drt_safetensors *st = (drt_safetensors *)1;
    drt_status s = open_data(cases[i].file, &st);
    if (!s || drt_status_code_of(s) != cases[i].code || !strstr(drt_status_message(s), cases[i].needle))
      print_error("%s: got '%s'\n", cases[i].file, s ? drt_status_message(s) : "OK");
    assert_null(st);
    DRT_ASSERT_ERROR(s, cases[i].code, cases[i].needle);
  }
  drt_safetensors *st;
  DRT_ASSERT_ERROR(open_data("no_such_file.safetensors", &st), DRT_STATUS_NOT_FOUND, "no_such_file");
}

/* Every truncation of a valid file is refused (never a crash, never a partial success). */
static void test_truncations(void **state) {
  (void)state;
  char p[1024];
  void *bytes;
  size_t size;
  DRT_ASSERT_OK(drt_read_file(data_path("valid.safetensors", p, sizeof p), 0, &bytes, &size));
  for (size_t n = 0; n < size; n++) {
    void *copy = malloc(n ? n : 1);
    memcpy(copy, bytes, n);
    drt_safetensors *st;
    drt_status s = drt_safetensors_open_owned(copy, n, "trunc", &st);
    assert_non_null(s);
    drt_status_free(s);
  }
  free(bytes);
}

/* Single-byte edits of the header: the parser must never read out of bounds (run under ASan)
 * and anything accepted must still be self-consistent. */
static void test_header_mutations(void **state) {
  (void)state;
  char p[1024];
  void *bytes;
  size_t size;
  DRT_ASSERT_OK(drt_read_file(data_path("valid.safetensors", p, sizeof p), 0, &bytes, &size));
  size_t hlen = ((uint8_t *)bytes)[0] | (size_t)((uint8_t *)bytes)[1] << 8;
  static const uint8_t subst[] = {'"', '\\', '{', '}', '[', ']', ',', ':', '0', '9', ' ', 0, 0xff};
  int accepted = 0;
  for (size_t pos = 8; pos < 8 + hlen; pos++) {
    for (size_t k = 0; k < sizeof subst; k++) {
      uint8_t *copy = malloc(size);
      memcpy(copy, bytes, size);
      copy[pos] = subst[k];
      drt_safetensors *st;
      drt_status s = drt_safetensors_open_owned(copy, size, "mut", &st);
      if (!s) {
        accepted++;
        size_t total = 0;
        for (size_t i = 0; i < drt_safetensors_count(st); i++) total += drt_safetensors_at(st, i)->nbytes;
        assert_int_equal(total, size - 8 - hlen);
        drt_safetensors_close(st);
      }
      drt_status_free(s);
    }
  }
  assert_true(accepted > 0); /* e.g. a space replaced by a space */
  free(bytes);
}

/* float8 tensors (F8_E4M3 = float8e4m3fn, F8_E5M2, as torch writes them) read as float64; the
 * expected values are those of the OCP FP8 spec for these codes. */
static void test_float8(void **state) {
  (void)state;
  const unsigned char e4[] = {0x38, 0x7e, 0x01, 0xc0, 0x7f}, e5[] = {0x3c, 0x7b, 0x7c, 0x01, 0xfe};
  const double w4[] = {1.0, 448.0, 0x1p-9, -2.0}, w5[] = {1.0, 57344.0, INFINITY, 0x1p-16};
  char hdr[256];
  int hl = snprintf(hdr, sizeof hdr,
                    "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[5],\"data_offsets\":[0,5]},"
                    "\"b\":{\"dtype\":\"F8_E5M2\",\"shape\":[5],\"data_offsets\":[5,10]}}");
  while (hl % 8) hdr[hl++] = ' ';
  char path[] = "/tmp/drt_st_f8_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "wb");
  assert_non_null(f);
  uint64_t len = (uint64_t)hl;
  fwrite(&len, 8, 1, f);
  fwrite(hdr, 1, (size_t)hl, f);
  fwrite(e4, 1, 5, f);
  fwrite(e5, 1, 5, f);
  fclose(f);
  drt_safetensors *st;
  DRT_ASSERT_OK(drt_safetensors_open_file(path, 0, &st));
  const drt_st_tensor *a = drt_safetensors_find(st, "a"), *b = drt_safetensors_find(st, "b");
  assert_non_null(a);
  assert_non_null(b);
  assert_int_equal(a->dtype, DRT_DTYPE_FLOAT8E4M3FN);
  assert_int_equal(b->dtype, DRT_DTYPE_FLOAT8E5M2);
  double va[5], vb[5];
  drt_safetensors_read(a, DRT_DTYPE_FLOAT64, va);
  drt_safetensors_read(b, DRT_DTYPE_FLOAT64, vb);
  for (int i = 0; i < 4; i++) {
    assert_true(va[i] == w4[i]);
    assert_true(vb[i] == w5[i]);
  }
  assert_true(isnan(va[4])); /* S.1111.111 is E4M3FN's NaN */
  assert_true(isnan(vb[4])); /* exponent all ones with a mantissa: E5M2 NaN */
  drt_safetensors_close(st);
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_file),       cmocka_unit_test(test_control_file),
      cmocka_unit_test(test_malformed),        cmocka_unit_test(test_truncations),
      cmocka_unit_test(test_header_mutations), cmocka_unit_test(test_float8),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
