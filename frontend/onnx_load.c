/* ONNX ModelProto -> drt_graph (placeholder until the frontend lands). */
#include "frontend/onnx.h"

void drt_onnx_options_init(drt_onnx_options *o) { o->max_bytes = 0; }

drt_status drt_onnx_load_file(const char *path, const drt_onnx_options *opts, drt_graph **out) {
  (void)opts;
  (void)out;
  return DRT_ERROR(DRT_STATUS_UNIMPLEMENTED, "%s: ONNX loading is not implemented yet", path);
}

drt_status drt_onnx_load_memory(const void *data, size_t size, const char *base_dir, const char *label,
                                const drt_onnx_options *opts, drt_graph **out) {
  (void)data; (void)size; (void)base_dir; (void)opts; (void)out;
  return DRT_ERROR(DRT_STATUS_UNIMPLEMENTED, "%s: ONNX loading is not implemented yet", label);
}
