/* ONNX frontend: ModelProto bytes -> drt_graph. The only code that sees protobuf structs.
 *
 * The returned graph holds: graph inputs (initializers excluded) with dtype, the shape as
 * declared (symbolic dims recorded in value->dim_params and set to -1 in shape.dims; a
 * dimension with neither value nor name is -1 with dim_params NULL), constants for every
 * initializer and Constant node (converted to DRT_VALUE_CONST, no Constant nodes remain),
 * nodes in file order with attributes, and graph outputs. Intermediate values have no type
 * yet: shapes are inferred after binding input dims (see passes/canonicalize.h). */
#ifndef DRT_FRONTEND_ONNX_H
#define DRT_FRONTEND_ONNX_H

#include "ir/graph.h"

typedef struct drt_onnx_options {
  /* Largest model or external-data total accepted, in bytes (0 = no limit). */
  uint64_t max_bytes;
} drt_onnx_options;

void drt_onnx_options_init(drt_onnx_options *o);

/* Loads a model file; external data is resolved relative to the file's folder. */
drt_status drt_onnx_load_file(const char *path, const drt_onnx_options *opts, drt_graph **out);
/* Loads from memory; base_dir is the folder for external data (NULL refuses external data).
 * `label` names the model in messages. */
drt_status drt_onnx_load_memory(const void *data, size_t size, const char *base_dir, const char *label,
                                const drt_onnx_options *opts, drt_graph **out);

#endif
