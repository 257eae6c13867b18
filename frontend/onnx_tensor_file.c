/* ONNX TensorProto files: the input_N.pb / output_N.pb of ONNX test data sets, and the one
 * file format that carries every ONNX element type (bfloat16, float8, int4, ... have no .npy
 * form). Reading goes through the same decoder as initializers (every encoding, external
 * data relative to the file's folder, packed sub-byte types unpacked to one byte each);
 * writing uses raw_data, packed as onnx.proto asks. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/onnx_internal.h"

drt_status drt_onnx_tensor_read_file(const char *path, uint64_t max_bytes, drt_tensor *out, char **name_out) {
  memset(out, 0, sizeof *out);
  if (name_out) *name_out = NULL;
  unsigned char *buf;
  size_t size;
  DRT_RETURN_IF_ERROR(drt_onnx_read_file_bytes(path, max_bytes, &buf, &size));
  drt_status st = drt_onnx_proto_check_depth(buf, size, path);
  Onnx__TensorProto *tp = NULL;
  if (!st) {
    tp = onnx__tensor_proto__unpack(NULL, size, buf);
    if (!tp) st = DRT_ERROR(DRT_STATUS_CORRUPT, "'%s' is not an ONNX TensorProto (protobuf parse failed)", path);
  }
  free(buf);
  drt_graph *g = NULL;
  char *dir = NULL;
  if (!st) st = drt_graph_create(&g);
  if (!st) st = drt_onnx_dir_of(path, &dir);
  if (!st) {
    drt_onnx_ctx ctx = {g, path, dir, max_bytes, (uint64_t)size};
    const char *what = "tensor";
    void *data = NULL;
    size_t nbytes = 0;
    st = drt_onnx_tensor_decode(&ctx, tp, what, &out->dtype, &out->shape, &data, &nbytes);
    if (!st) {
      out->data = malloc(nbytes ? nbytes : 1);
      if (!out->data) st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "allocating %zu bytes", nbytes);
      else if (nbytes) memcpy(out->data, data, nbytes);
    }
    if (!st && name_out && tp->name && tp->name[0]) {
      *name_out = strdup(tp->name);
      if (!*name_out) st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "tensor name");
    }
    if (st) st = drt_status_annotate(st, "'%s'", path);
  }
  if (st) {
    free(out->data);
    out->data = NULL;
    if (name_out) {
      free(*name_out);
      *name_out = NULL;
    }
  }
  free(dir);
  drt_graph_destroy(g);
  if (tp) onnx__tensor_proto__free_unpacked(tp, NULL);
  return st;
}

drt_status drt_onnx_tensor_serialize(const char *name, const drt_tensor *t, void **bytes_out, size_t *size_out) {
  *bytes_out = NULL;
  *size_out = 0;
  if (!drt_dtype_is_supported(t->dtype))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "dtype %s has no TensorProto form", drt_dtype_name(t->dtype));
  int64_t numel = drt_shape_numel(&t->shape);
  size_t nb = drt_tensor_nbytes(t);
  if (numel < 0 || (numel > 0 && nb == 0))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "tensor '%s' has an invalid shape", name ? name : "");
  size_t packed = drt_lowp_packed_bytes(t->dtype, (size_t)numel);
  unsigned char *raw = malloc(packed ? packed : 1);
  if (!raw) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "packing %zu bytes", packed);
  if (drt_dtype_is_lowp(t->dtype)) {
    drt_lowp_pack(t->dtype, raw, t->data, (size_t)numel);
  } else if (t->dtype == DRT_DTYPE_BOOL) {
    for (int64_t i = 0; i < numel; i++) raw[i] = ((const uint8_t *)t->data)[i] != 0;
  } else if (packed) {
    memcpy(raw, t->data, packed);
  }
  Onnx__TensorProto tp;
  onnx__tensor_proto__init(&tp);
  int64_t dims[DRT_MAX_RANK];
  for (int i = 0; i < t->shape.rank; i++) dims[i] = t->shape.dims[i];
  tp.n_dims = (size_t)t->shape.rank;
  tp.dims = dims;
  tp.has_data_type = 1;
  tp.data_type = (int32_t)t->dtype; /* drt_dtype values are ONNX's */
  tp.name = (char *)(name ? name : "");
  tp.has_raw_data = 1;
  tp.raw_data.len = packed;
  tp.raw_data.data = raw;
  size_t size = onnx__tensor_proto__get_packed_size(&tp);
  unsigned char *bytes = malloc(size ? size : 1);
  if (!bytes) {
    free(raw);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "serializing %zu bytes", size);
  }
  onnx__tensor_proto__pack(&tp, bytes);
  free(raw);
  *bytes_out = bytes;
  *size_out = size;
  return DRT_OK;
}
