/* CPU kernel of drt.Elementwise: one pass over memory evaluating the node's expression program
 * (ir/ew_program.h) with the tiled evaluator of runtime/cpu/ew_exec.c, split over the thread
 * pool. Float32 only (the fusion pass only forms float32 groups). */
#include "runtime/cpu/ew_exec.h"
#include "runtime/cpu/fused.h"

drt_status drt_cpu_fused_elementwise(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  drt_ew_program p;
  DRT_RETURN_IF_ERROR(drt_ew_program_decode(n, n->num_inputs, n->num_outputs, &p));
  float *outs[DRT_EW_MAX_OUTPUTS];
  for (int j = 0; j < n->num_outputs; j++) {
    if (out[j].dtype != DRT_DTYPE_FLOAT32 || !drt_shape_equal(&out[j].shape, &out[0].shape))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "output %d must be float32 with the shape of output 0", j);
    outs[j] = out[j].data;
  }
  drt_ew_exec e;
  DRT_RETURN_IF_ERROR(drt_ew_exec_prepare(&e, &p, &out[0].shape, in, outs));
  drt_ew_exec_run(ctx, &e);
  return DRT_OK;
}
