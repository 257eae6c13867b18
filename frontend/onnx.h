/* ONNX frontend: ModelProto bytes -> drt_graph. The only code that sees protobuf structs
 * (the generated onnx.pb-c.h is included by frontend/ sources only).
 *
 * The returned graph holds:
 *  - graph inputs (initializers excluded: an input that is also an initializer, as IR < 4
 *    files list them, is that constant) with dtype and the shape as declared: symbolic dims
 *    are recorded in value->dim_params and set to -1 in shape.dims; a dimension with neither
 *    value nor name is -1 with dim_params NULL; an input without a shape has has_shape false;
 *  - constants (DRT_VALUE_CONST) for every initializer and Constant node, whatever the
 *    encoding (raw_data, typed fields, external data); no Constant node remains; packed
 *    int4/uint4/float4/int2/uint2/float6 tensors are unpacked to one byte per element
 *    (the in-memory form of include/distilrt.h);
 *  - nodes with attributes (a TENSOR attribute is a detached constant value, not in
 *    g->values) and node->opset = the model's default-domain opset; an omitted optional input
 *    ("") is NULL, trailing omitted inputs are dropped from num_inputs, an omitted output gets
 *    an anonymous value;
 *  - graph outputs; nodes in topological order (drt_graph_topo_sort; the file's order may be
 *    anything). Intermediate values have no type yet: shapes are inferred after binding input
 *    dims (see passes/canonicalize.h).
 *
 * Refused with a status naming the node, op, tensor or file: other domains and model-local
 * functions, unknown ops, default-domain opsets outside 1..DRT_ONNX_MAX_OPSET, string /
 * complex tensors, sequence / map / optional inputs, rank > DRT_MAX_RANK,
 * subgraph attributes, undefined or duplicate names, malformed protobuf (DRT_STATUS_CORRUPT),
 * external data outside the model's folder.
 *
 * Thread-safety: the loaders share no state; several may run at once on different models.
 * The caller owns the returned graph (drt_graph_destroy); on error *out is NULL. */
#ifndef DRT_FRONTEND_ONNX_H
#define DRT_FRONTEND_ONNX_H

#include "ir/graph.h"

typedef struct drt_onnx_options {
  /* Largest total accepted, in bytes: the model's bytes plus all of its external data
   * (0 = no limit). Exceeding it fails with DRT_STATUS_OUT_OF_MEMORY before allocating. */
  uint64_t max_bytes;
} drt_onnx_options;

void drt_onnx_options_init(drt_onnx_options *o);

/* Loads a model file; external data is resolved relative to the file's folder. opts may be
 * NULL (defaults). A missing file is DRT_STATUS_NOT_FOUND naming the path. */
drt_status drt_onnx_load_file(const char *path, const drt_onnx_options *opts, drt_graph **out);
/* Loads from memory (the bytes are only read, and may be freed after the call); base_dir is
 * the folder for external data (NULL refuses external data). `label` names the model in
 * messages. */
drt_status drt_onnx_load_memory(const void *data, size_t size, const char *base_dir, const char *label,
                                const drt_onnx_options *opts, drt_graph **out);

/* Reads an ONNX TensorProto file (as the input_N.pb / output_N.pb of ONNX test data sets): every
 * element type distilrt handles (the low-precision ones unpacked), every encoding, external
 * data relative to the file's folder. out->data is malloc'd (the caller frees it); *name_out,
 * when name_out is not NULL, is the tensor's name (malloc'd) or NULL if it has none.
 * max_bytes limits the file and its data (0 = no limit). */
drt_status drt_onnx_tensor_read_file(const char *path, uint64_t max_bytes, drt_tensor *out, char **name_out);
/* Serializes a tensor as a TensorProto (raw_data; sub-byte types packed) into malloc'd bytes. */
drt_status drt_onnx_tensor_serialize(const char *name, const drt_tensor *t, void **bytes, size_t *size);

#endif
