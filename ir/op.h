/* Op enum and metadata table (ir/ops.def is the single source). */
#ifndef DRT_IR_OP_H
#define DRT_IR_OP_H

#include <stdbool.h>

typedef enum drt_fusion_class {
  DRT_FUSION_ELEMWISE,
  DRT_FUSION_BROADCAST,
  DRT_FUSION_INJECTIVE,
  DRT_FUSION_REDUCTION,
  DRT_FUSION_OPAQUE,
  DRT_FUSION_SHAPE,
} drt_fusion_class;

typedef enum drt_op {
#define DRT_OP(id, name, mi, xi, mo, xo, fc) DRT_OP_##id,
#include "ir/ops.def"
#undef DRT_OP
  DRT_OP_COUNT_
} drt_op;

typedef struct drt_op_info {
  const char *name; /* ONNX op_type (or "drt.X" for internal ops) */
  int min_inputs, max_inputs;   /* max -1: variadic */
  int min_outputs, max_outputs; /* max -1: variadic */
  drt_fusion_class fusion;
} drt_op_info;

const drt_op_info *drt_op_get_info(drt_op op);
const char *drt_op_name(drt_op op);
/* Looks up an ONNX op_type (default domain); returns false if unknown. */
bool drt_op_from_name(const char *name, drt_op *out);
const char *drt_fusion_class_name(drt_fusion_class fc);
/* Whether the op takes or produces the low-precision storage types (float8, float4, int4, ...):
 * the ops whose ONNX type constraints list them (Cast, CastLike, QuantizeLinear,
 * DequantizeLinear, and ops that only move or describe data). Shape inference refuses them
 * anywhere else, so no arithmetic kernel ever sees one. */
bool drt_op_takes_lowp(drt_op op);

/* Ops with subgraphs, lowered into the flat graph at compile time (passes/control_flow.h): If,
 * Loop, Scan, and FlexAttention (ai.onnx.preview) with its score_mod/prob_mod. */
static inline bool drt_op_is_control_flow(drt_op op) {
  return op == DRT_OP_IF || op == DRT_OP_LOOP || op == DRT_OP_SCAN || op == DRT_OP_FLEX_ATTENTION;
}

/* The sequence ops, resolved at compile time (passes/control_flow.h). */
static inline bool drt_op_is_sequence(drt_op op) {
  return op == DRT_OP_SEQUENCE_EMPTY || op == DRT_OP_SEQUENCE_CONSTRUCT || op == DRT_OP_SEQUENCE_INSERT ||
         op == DRT_OP_SEQUENCE_ERASE || op == DRT_OP_SEQUENCE_AT || op == DRT_OP_SEQUENCE_LENGTH ||
         op == DRT_OP_CONCAT_FROM_SEQUENCE || op == DRT_OP_SPLIT_TO_SEQUENCE;
}

#endif
