/* TensorProto -> dtype, shape and C-order bytes in the graph arena.
 *
 * Every encoding ONNX allows is accepted: raw_data (little-endian), the typed fields
 * (float_data; int32_data, which also carries int8/uint8/int16/uint16/bool and the bit patterns
 * of float16/bfloat16; int64_data; double_data; uint64_data for uint32/uint64) and external
 * data. The element count must match the shape exactly; nothing is allocated before the
 * source has been checked to hold that many bytes, so a tiny file cannot ask for a huge buffer. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "frontend/onnx_internal.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the ONNX frontend assumes a little-endian host (raw_data is little-endian)"
#endif

const char *drt_onnx_dtype_name(int32_t t) {
  static const char *const names[] = {
      "undefined",    "float32",       "uint8",      "int8",          "uint16",       "int16",
      "int32",        "int64",         "string",     "bool",          "float16",      "float64",
      "uint32",       "uint64",        "complex64",  "complex128",    "bfloat16",     "float8e4m3fn",
      "float8e4m3fnuz", "float8e5m2",  "float8e5m2fnuz", "uint4",     "int4",         "float4e2m1",
      "float8e8m0",   "uint2",         "int2",       "float6e2m3",    "float6e3m2",
  };
  if (t >= 0 && (size_t)t < sizeof names / sizeof names[0]) return names[t];
  return "unknown";
}

drt_status drt_onnx_account_bytes(drt_onnx_ctx *ctx, uint64_t bytes, const char *what) {
  if (bytes > UINT64_MAX - ctx->total_bytes) ctx->total_bytes = UINT64_MAX;
  else ctx->total_bytes += bytes;
  if (ctx->max_bytes && ctx->total_bytes > ctx->max_bytes)
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY,
                     "%s: %" PRIu64 " bytes brings the model to %" PRIu64 " bytes, over the limit of %" PRIu64
                     " bytes (max_bytes)", what, bytes, ctx->total_bytes, ctx->max_bytes);
  return DRT_OK;
}

bool drt_onnx_dtype(int32_t t, drt_dtype *out) {
  switch (t) {
    case 1: case 2: case 3: case 4: case 5: case 6: case 7: case 9: case 10: case 11: case 12: case 13: case 16:
    case 17: case 18: case 19: case 20: case 21: case 22: case 23: case 24: case 25: case 26: case 27: case 28:
      *out = (drt_dtype)t;
      return true;
    default:
      return false;
  }
}

static drt_status read_external(drt_onnx_ctx *ctx, const Onnx__TensorProto *t, const char *what, size_t nbytes,
                                const char *shape_desc, void **data) {
  const char *location = NULL;
  const char *offset_s = NULL, *length_s = NULL;
  for (size_t i = 0; i < t->n_external_data; i++) {
    const Onnx__StringStringEntryProto *e = t->external_data[i];
    if (!e || !e->key) continue;
    if (strcmp(e->key, "location") == 0) location = e->value;
    else if (strcmp(e->key, "offset") == 0) offset_s = e->value;
    else if (strcmp(e->key, "length") == 0) length_s = e->value;
  }
  if (!location || !location[0])
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: external data has no 'location'", what);
  uint64_t offset = 0, length = 0;
  if (offset_s && !drt_external_parse_u64(offset_s, &offset))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: external data '%s' has an invalid offset '%s'", what, location,
                     offset_s);
  if (length_s && !drt_external_parse_u64(length_s, &length))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: external data '%s' has an invalid length '%s'", what, location,
                     length_s);
  if (length_s && length != (uint64_t)nbytes)
    return DRT_ERROR(DRT_STATUS_CORRUPT,
                     "%s: external data '%s' has length %" PRIu64 ", expected %zu bytes for %s", what, location,
                     length, nbytes, shape_desc);
  int fd;
  uint64_t fsize;
  DRT_RETURN_IF_ERROR(drt_external_open(ctx->base_dir, location, what, &fd, &fsize));
  drt_status st = DRT_OK;
  if (offset > fsize) {
    st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                   "%s: external data offset %" PRIu64 " is past the end of '%s' (%" PRIu64 " bytes)", what, offset,
                   location, fsize);
    goto done;
  }
  if (!length_s) length = fsize - offset;
  if (length > fsize - offset) {
    st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                   "%s: external data range %" PRIu64 "+%" PRIu64 " is past the end of '%s' (%" PRIu64 " bytes)",
                   what, offset, length, location, fsize);
    goto done;
  }
  if (length != (uint64_t)nbytes) {
    st = DRT_ERROR(DRT_STATUS_CORRUPT, "%s: external data '%s' holds %" PRIu64 " bytes, expected %zu for %s", what,
                   location, length, nbytes, shape_desc);
    goto done;
  }
  st = drt_onnx_account_bytes(ctx, nbytes, what);
  if (st) goto done;
  void *p = drt_arena_alloc(ctx->g->arena, nbytes ? nbytes : 1);
  if (!p) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "%s: allocating %zu bytes for external data", what, nbytes);
    goto done;
  }
  st = drt_external_read(fd, offset, length, p, location, what);
  if (!st) *data = p;
done:
  close(fd);
  return st;
}

/* int4/uint4/float4 (two per byte), int2/uint2 (four per byte) and float6 (a 6-bit stream)
 * arrive packed: in raw_data or external data as ceil(n * bits / 8) bytes, in int32_data as
 * one packed byte per entry for 4- and 2-bit types and one code per entry for float6
 * (onnx.proto). They are unpacked to one byte per element. */
static drt_status decode_packed(drt_onnx_ctx *ctx, const Onnx__TensorProto *t, const char *what, drt_dtype dt,
                                size_t n, const char *desc, void **data) {
  int bits = drt_dtype_bits(dt);
  if (n > (SIZE_MAX - 7) / 8)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: %s has too many elements", what, desc);
  size_t packed = drt_lowp_packed_bytes(dt, n);
  unsigned char *p = NULL;
  const unsigned char *src = NULL;
  void *ext = NULL;
  if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
    DRT_RETURN_IF_ERROR(read_external(ctx, t, what, packed, desc, &ext));
    src = ext;
  } else if (t->has_raw_data && (t->raw_data.len > 0 || t->n_int32_data == 0)) {
    if (t->raw_data.len != packed)
      return DRT_ERROR(DRT_STATUS_CORRUPT, "%s: raw_data holds %zu bytes, expected %zu for %s (packed %d-bit)", what,
                       t->raw_data.len, packed, desc, bits);
    src = t->raw_data.data;
  } else {
    size_t want = bits == 6 ? n : packed;
    if (t->n_int32_data != want)
      return DRT_ERROR(DRT_STATUS_CORRUPT, "%s: int32_data holds %zu values, expected %zu for %s (packed %d-bit)",
                       what, t->n_int32_data, want, desc, bits);
  }
  DRT_RETURN_IF_ERROR(drt_onnx_account_bytes(ctx, n, what));
  p = drt_arena_alloc(ctx->g->arena, n ? n : 1);
  if (!p) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "%s: allocating %zu bytes", what, n);
  if (src) {
    drt_lowp_unpack(dt, p, src, n);
  } else if (bits == 6) {
    for (size_t i = 0; i < n; i++) p[i] = drt_lowp_canonical(dt, (uint8_t)((uint32_t)t->int32_data[i] & 0x3fu));
  } else {
    for (size_t i = 0; i < n; i++) {
      size_t bit = i * (size_t)bits;
      p[i] = drt_lowp_canonical(dt, (uint8_t)(((uint32_t)t->int32_data[bit / 8] & 0xffu) >> (bit % 8)));
    }
  }
  *data = p;
  return DRT_OK;
}

drt_status drt_onnx_tensor_decode(drt_onnx_ctx *ctx, const Onnx__TensorProto *t, const char *what, drt_dtype *dt,
                                  drt_shape *shape, void **data, size_t *nbytes) {
  if (!t) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: missing tensor", what);
  int32_t ot = t->has_data_type ? t->data_type : 0;
  if (ot == 0) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s has no data type", what);
  if (ot == 8) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: string tensors are not supported", what);
  if (!drt_onnx_dtype(ot, dt))
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: dtype %s (%d) is not supported", what, drt_onnx_dtype_name(ot),
                     (int)ot);
  if (t->n_dims > DRT_MAX_RANK)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s has rank %zu, at most %d is supported", what, t->n_dims,
                     DRT_MAX_RANK);
  shape->rank = (int)t->n_dims;
  for (size_t i = 0; i < t->n_dims; i++) {
    if (t->dims[i] < 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s has negative dimension %" PRId64 " at axis %zu", what,
                       t->dims[i], i);
    shape->dims[i] = t->dims[i];
  }
  for (size_t i = t->n_dims; i < DRT_MAX_RANK; i++) shape->dims[i] = 0;
  if (t->segment) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: segmented tensors are not supported", what);

  size_t es = drt_dtype_size(*dt);
  int64_t numel = drt_shape_numel(shape);
  char sbuf[160], desc[200];
  drt_shape_str(shape, sbuf, sizeof sbuf);
  if (numel < 0 || (uint64_t)numel > SIZE_MAX / es || (uint64_t)numel > UINT64_MAX / es)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: shape %s has too many elements", what, sbuf);
  size_t nb = (size_t)numel * es;
  snprintf(desc, sizeof desc, "%s %s", drt_onnx_dtype_name(ot), sbuf);
  *nbytes = nb;
  *data = NULL;
  if (drt_dtype_bits(*dt) < 8) return decode_packed(ctx, t, what, *dt, (size_t)numel, desc, data);

  if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
    return read_external(ctx, t, what, nb, desc, data);

  /* The typed field this dtype uses. */
  size_t count = 0;
  const char *field = "";
  switch (*dt) {
    case DRT_DTYPE_FLOAT32: count = t->n_float_data; field = "float_data"; break;
    case DRT_DTYPE_INT64: count = t->n_int64_data; field = "int64_data"; break;
    case DRT_DTYPE_FLOAT64: count = t->n_double_data; field = "double_data"; break;
    case DRT_DTYPE_UINT32: case DRT_DTYPE_UINT64: count = t->n_uint64_data; field = "uint64_data"; break;
    default: count = t->n_int32_data; field = "int32_data"; break;
  }
  bool use_raw = t->has_raw_data && (t->raw_data.len > 0 || count == 0);
  if (use_raw) {
    if (t->raw_data.len != nb)
      return DRT_ERROR(DRT_STATUS_CORRUPT, "%s: raw_data holds %zu bytes, expected %zu for %s", what,
                       t->raw_data.len, nb, desc);
  } else if (count != (size_t)numel) {
    return DRT_ERROR(DRT_STATUS_CORRUPT, "%s: %s holds %zu values, expected %" PRId64 " for %s", what, field, count,
                     numel, desc);
  }
  DRT_RETURN_IF_ERROR(drt_onnx_account_bytes(ctx, nb, what));
  unsigned char *p = drt_arena_alloc(ctx->g->arena, nb ? nb : 1);
  if (!p) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "%s: allocating %zu bytes", what, nb);
  size_t n = (size_t)numel;
  if (use_raw) {
    if (nb) memcpy(p, t->raw_data.data, nb);
    if (*dt == DRT_DTYPE_BOOL)
      for (size_t i = 0; i < n; i++) p[i] = p[i] != 0;
  } else {
    switch (*dt) {
      case DRT_DTYPE_FLOAT32: if (nb) memcpy(p, t->float_data, nb); break;
      case DRT_DTYPE_INT64: if (nb) memcpy(p, t->int64_data, nb); break;
      case DRT_DTYPE_FLOAT64: if (nb) memcpy(p, t->double_data, nb); break;
      case DRT_DTYPE_UINT64: if (nb) memcpy(p, t->uint64_data, nb); break;
      case DRT_DTYPE_UINT32:
        for (size_t i = 0; i < n; i++) {
          uint32_t v = (uint32_t)t->uint64_data[i];
          memcpy(p + 4 * i, &v, 4);
        }
        break;
      case DRT_DTYPE_INT32: if (nb) memcpy(p, t->int32_data, nb); break;
      case DRT_DTYPE_BOOL:
        for (size_t i = 0; i < n; i++) p[i] = t->int32_data[i] != 0;
        break;
      case DRT_DTYPE_INT8: case DRT_DTYPE_UINT8: case DRT_DTYPE_FLOAT8E4M3FN: case DRT_DTYPE_FLOAT8E4M3FNUZ:
      case DRT_DTYPE_FLOAT8E5M2: case DRT_DTYPE_FLOAT8E5M2FNUZ: case DRT_DTYPE_FLOAT8E8M0:
        for (size_t i = 0; i < n; i++) p[i] = (unsigned char)((uint32_t)t->int32_data[i] & 0xffu);
        break;
      case DRT_DTYPE_INT16: case DRT_DTYPE_UINT16: case DRT_DTYPE_FLOAT16: case DRT_DTYPE_BFLOAT16:
        for (size_t i = 0; i < n; i++) {
          uint16_t v = (uint16_t)((uint32_t)t->int32_data[i] & 0xffffu);
          memcpy(p + 2 * i, &v, 2);
        }
        break;
      default:
        return DRT_ERROR(DRT_STATUS_INTERNAL, "%s: no decoder for dtype %s", what, drt_onnx_dtype_name(ot));
    }
  }
  *data = p;
  return DRT_OK;
}
