/* Parameter resolution shared by movement-op shape inference (ir/infer_movement.c) and the
 * CPU kernels (runtime/cpu/movement.c), so both agree exactly on ONNX's clamping rules. */
#ifndef DRT_IR_INFER_MOVEMENT_H
#define DRT_IR_INFER_MOVEMENT_H

#include "ir/graph.h"

/* Resolves ONNX Slice parameters (opset 10+ semantics, which also cover opset 1 with
 * steps == NULL) against the input shape `in`. starts/ends hold `count` entries; axes and
 * steps may be NULL (defaults 0..count-1 and 1). Negative axes add rank; negative
 * starts/ends add the dim; then starts clamp to [0, d] ([0, d-1] for negative steps) and
 * ends to [0, d] ([-1, d-1]). On success start[k] and step[k] hold the first input index
 * and step of output axis k (0 and 1 on untouched axes) and `out` the output shape.
 * Errors: repeated or out-of-range axis, zero step, count > rank. Thread-safe. */
drt_status drt_slice_resolve(const drt_shape *in, int64_t count, const int64_t *starts, const int64_t *ends,
                             const int64_t *axes, const int64_t *steps, int64_t *start, int64_t *step,
                             drt_shape *out);

#endif
