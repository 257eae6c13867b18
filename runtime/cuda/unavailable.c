/* runtime/cuda/cuda.h in a build without the CUDA toolkit headers: every entry point fails with
 * DRT_STATUS_UNAVAILABLE (the CPU backend is unaffected). */
#include "runtime/cuda/enabled.h"

#ifndef DRT_CUDA_ENABLED

#include "runtime/cuda/cuda.h"

#include <string.h>

#define NO_CUDA() \
  DRT_ERROR(DRT_STATUS_UNAVAILABLE, "this build has no CUDA support (rebuild with the CUDA toolkit headers: -DDRT_CUDA=ON)")

bool drt_cuda_compiled(void) { return false; }

drt_status drt_cuda_context_acquire(int ordinal, drt_cuda_context **out) {
  (void)ordinal;
  *out = NULL;
  return NO_CUDA();
}
void drt_cuda_context_release(drt_cuda_context *ctx) { (void)ctx; }
const drt_cuda_device_info *drt_cuda_context_device(const drt_cuda_context *ctx) {
  (void)ctx;
  return NULL;
}

drt_status drt_cuda_module_load(drt_cuda_context *ctx, const drt_cuda_program *prog, const drt_plan_cuda *bins,
                                drt_cuda_module **out) {
  *out = NULL;
  return NO_CUDA();
}
void drt_cuda_module_destroy(drt_cuda_module *m) { (void)m; }

void drt_cuda_executor_options_init(drt_cuda_executor_options *o) {
  o->use_graphs = true;
  o->check_nonfinite = false;
}
drt_status drt_cuda_executor_create(drt_cuda_module *m, size_t graph_index, const drt_cuda_executor_options *o,
                                    drt_cuda_executor **out) {
  *out = NULL;
  return NO_CUDA();
}
void drt_cuda_executor_destroy(drt_cuda_executor *e) { (void)e; }
drt_status drt_cuda_executor_run(drt_cuda_executor *e, const drt_tensor *inputs, drt_tensor *outputs) {
  return NO_CUDA();
}
void *drt_cuda_executor_stream(drt_cuda_executor *e) { return NULL; }
uint64_t drt_cuda_executor_input_dptr(const drt_cuda_executor *e, size_t i) { return 0; }
uint64_t drt_cuda_executor_output_dptr(const drt_cuda_executor *e, size_t i) { return 0; }
drt_status drt_cuda_executor_enqueue(drt_cuda_executor *e, void *stream) { return NO_CUDA(); }
drt_status drt_cuda_executor_tune(drt_cuda_executor *e) { return NO_CUDA(); }
int drt_cuda_executor_variant(const drt_cuda_executor *e, size_t node) { return 0; }
drt_status drt_cuda_executor_take_host_error(drt_cuda_executor *e) { return DRT_OK; }
drt_status drt_cuda_executor_replay(drt_cuda_executor *e) { return NO_CUDA(); }
drt_status drt_cuda_executor_profile(drt_cuda_executor *e, int iters, drt_cuda_profile *out) {
  memset(out, 0, sizeof *out);
  return NO_CUDA();
}
void drt_cuda_profile_free(drt_cuda_profile *p) {}
void drt_cuda_executor_set_resident(drt_cuda_executor *e, size_t i, bool resident) {}
uint64_t drt_cuda_executor_input_bytes(const drt_cuda_executor *e, size_t i) { return 0; }
drt_dtype drt_cuda_executor_storage(const drt_cuda_executor *e, const drt_value *v) { return v->dtype; }
uint64_t drt_cuda_executor_output_bytes(const drt_cuda_executor *e, size_t i) { return 0; }
drt_status drt_cuda_executor_submit(drt_cuda_executor *e, const drt_tensor *inputs) { return NO_CUDA(); }
drt_status drt_cuda_module_launch(drt_cuda_module *m, void *stream, const char *kernel, uint32_t grid, uint32_t block,
                                  const uint64_t *args, int num_args) {
  return NO_CUDA();
}

drt_status drt_cuda_malloc(drt_cuda_context *ctx, uint64_t bytes, uint64_t *dptr) {
  *dptr = 0;
  return NO_CUDA();
}
void drt_cuda_free(drt_cuda_context *ctx, uint64_t dptr) {}
drt_status drt_cuda_memcpy_htod(drt_cuda_context *ctx, uint64_t dst, const void *src, uint64_t bytes, void *stream) {
  return NO_CUDA();
}
drt_status drt_cuda_memcpy_dtoh(drt_cuda_context *ctx, void *dst, uint64_t src, uint64_t bytes, void *stream) {
  return NO_CUDA();
}
drt_status drt_cuda_memcpy_dtod(drt_cuda_context *ctx, uint64_t dst, uint64_t src, uint64_t bytes, void *stream) {
  return NO_CUDA();
}
drt_status drt_cuda_stream_sync(drt_cuda_context *ctx, void *stream) { return NO_CUDA(); }

drt_status drt_cuda_graph_begin(drt_cuda_context *ctx, void *stream) { return NO_CUDA(); }
drt_status drt_cuda_graph_end(drt_cuda_context *ctx, void *stream, drt_cuda_graph **out) {
  *out = NULL;
  return NO_CUDA();
}
drt_status drt_cuda_graph_launch(drt_cuda_graph *g, void *stream) { return NO_CUDA(); }
void drt_cuda_graph_destroy(drt_cuda_graph *g) {}

drt_status drt_cuda_timer_create(drt_cuda_context *ctx, drt_cuda_timer **out) {
  *out = NULL;
  return NO_CUDA();
}
drt_status drt_cuda_timer_start(drt_cuda_timer *t, void *stream) { return NO_CUDA(); }
drt_status drt_cuda_timer_stop(drt_cuda_timer *t, void *stream, double *ms) {
  *ms = 0;
  return NO_CUDA();
}
void drt_cuda_timer_destroy(drt_cuda_timer *t) {}

drt_cuda_context *drt_cuda_module_context(const drt_cuda_module *m) { return NULL; }
const drt_cuda_program *drt_cuda_module_program(const drt_cuda_module *m) { return NULL; }

#else
typedef int drt_cuda_unavailable_unused_; /* ISO C forbids an empty translation unit */
#endif
