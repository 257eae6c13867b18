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

/* drt_slice_resolve with the node's parameters: attributes before opset 10, constant inputs
 * 1..4 after. Fails (naming the operand) when one is not a constant. */
drt_status drt_slice_node_resolve(const drt_node *n, int64_t *start, int64_t *step, drt_shape *out);

/* Whether output `output` of n holds exactly the elements of input 0 from element
 * *elem_offset on, in the same order and dtype (so it may share input 0's storage): the
 * reshaping ops (Reshape, Flatten, Squeeze, Unsqueeze, Identity), a Split chunk, a Slice and a
 * Gather of one constant index whose elements form one dense run of the input. Shapes must be
 * inferred; false for anything else, empty tensors included. */
bool drt_node_output_is_region(const drt_node *n, int output, int64_t *elem_offset);

/* Whether a view may start elem_offset elements into its storage: the offset is a multiple of
 * 64 bytes in every storage type a backend may give the dtype (floats may be stored in 2
 * bytes), so kernels keep their 16-byte vector access and cuBLASLt its alignment. */
bool drt_view_offset_aligned(drt_dtype dt, int64_t elem_offset);

/* In a graph without a memory plan (the hoisted stage graphs: values allocated one by one,
 * none written in place), whether intermediate v, not a graph output, is a Reshape, Flatten,
 * Squeeze, Unsqueeze, Identity, Split chunk or Slice region of its producer's input 0 that can
 * alias it: *root (a graph input or intermediate, never itself an alias) and *elem_offset
 * (64-byte aligned). The CUDA code generator launches nothing for nodes whose outputs all
 * alias, and the CUDA executor points them into their root; both decide with this function. */
bool drt_unplanned_alias(const drt_value *v, const drt_value **root, int64_t *elem_offset);
bool drt_node_is_unplanned_alias(const drt_node *n);

#endif
