/* Internals of the ONNX frontend, shared by the .c files in frontend/ only. This is the one header that
 * includes the generated protobuf-c code; nothing outside frontend/ may include it. */
#ifndef DRT_FRONTEND_ONNX_INTERNAL_H
#define DRT_FRONTEND_ONNX_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "frontend/onnx.h"
#include "onnx.pb-c.h"

/* Highest default-domain opset accepted. */
#define DRT_ONNX_MAX_OPSET 28 /* newest default-domain opset of onnx 1.23 */

/* State shared while one model is loaded. */
typedef struct drt_onnx_ctx {
  drt_graph *g;
  const char *label;    /* the model's name in messages (file path or caller label) */
  const char *base_dir; /* folder for external data; NULL refuses external data */
  uint64_t max_bytes;   /* 0 = no limit */
  uint64_t total_bytes; /* model bytes + constant bytes accepted so far */
} drt_onnx_ctx;

/* Refuses protobuf bytes whose messages nest deeper than protobuf-c can unpack safely. */
drt_status drt_onnx_proto_check_depth(const void *data, size_t size, const char *label);

/* ONNX TensorProto.DataType -> drt_dtype; false for types distilrt does not support. */
bool drt_onnx_dtype(int32_t onnx_type, drt_dtype *out);

/* Name of an ONNX TensorProto.DataType for messages ("float32", "complex64", "float8e4m3fn"...). */
const char *drt_onnx_dtype_name(int32_t onnx_type);

/* Decodes a TensorProto into dtype, shape and arena-owned C-order data (raw_data, any typed
 * field or external data). `what` names the tensor in messages ("initializer 'w'",
 * "attribute 'value' of node 'c'"). */
drt_status drt_onnx_tensor_decode(drt_onnx_ctx *ctx, const Onnx__TensorProto *t, const char *what,
                                  drt_dtype *dt, drt_shape *shape, void **data, size_t *nbytes);

/* Adds `bytes` to the running total; fails when it exceeds ctx->max_bytes. */
drt_status drt_onnx_account_bytes(drt_onnx_ctx *ctx, uint64_t bytes, const char *what);

/* External data (frontend/external_data.c). Opens `location` below `base_dir` after refusing
 * absolute paths, '..' components, files resolving outside base_dir (symlinks) and anything
 * that is not a regular file. On success *fd is an open descriptor and *file_size its size;
 * the caller closes it. `what` names the tensor in messages. */
drt_status drt_external_open(const char *base_dir, const char *location, const char *what, int *fd,
                             uint64_t *file_size);
/* Reads exactly `length` bytes at `offset` in chunks (64-bit offsets, any length). */
drt_status drt_external_read(int fd, uint64_t offset, uint64_t length, void *dst, const char *location,
                             const char *what);
/* Reads a whole regular file (at most max_bytes, 0 = no limit) into a malloc'd buffer. */
drt_status drt_onnx_read_file_bytes(const char *path, uint64_t max_bytes, unsigned char **out, size_t *size);
/* The folder of a path ("." when it has none), malloc'd. */
drt_status drt_onnx_dir_of(const char *path, char **dir_out);

/* Parses a decimal uint64 ("offset"/"length" values); false on anything else or overflow. */
bool drt_external_parse_u64(const char *s, uint64_t *out);

#endif
