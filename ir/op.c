#include "ir/op.h"

#include <assert.h>
#include <string.h>

static const drt_op_info k_op_info[] = {
#define DRT_OP(id, name, mi, xi, mo, xo, fc) {name, mi, xi, mo, xo, DRT_FUSION_##fc},
#include "ir/ops.def"
#undef DRT_OP
};
static_assert(sizeof(k_op_info) / sizeof(k_op_info[0]) == DRT_OP_COUNT_, "op table out of sync with enum");

const drt_op_info *drt_op_get_info(drt_op op) {
  return (unsigned)op < DRT_OP_COUNT_ ? &k_op_info[op] : NULL;
}
const char *drt_op_name(drt_op op) { return (unsigned)op < DRT_OP_COUNT_ ? k_op_info[op].name : "?"; }

bool drt_op_from_name(const char *name, drt_op *out) {
  for (int i = 0; i < DRT_OP_COUNT_; i++) {
    if (strcmp(k_op_info[i].name, name) == 0) {
      *out = (drt_op)i;
      return true;
    }
  }
  return false;
}

const char *drt_fusion_class_name(drt_fusion_class fc) {
  switch (fc) {
    case DRT_FUSION_ELEMWISE: return "elementwise";
    case DRT_FUSION_BROADCAST: return "broadcast";
    case DRT_FUSION_INJECTIVE: return "injective";
    case DRT_FUSION_REDUCTION: return "reduction";
    case DRT_FUSION_OPAQUE: return "opaque";
    case DRT_FUSION_SHAPE: return "shape";
  }
  return "?";
}

bool drt_op_takes_lowp(drt_op op) {
  switch (op) {
    case DRT_OP_CAST:
    case DRT_OP_CAST_LIKE:
    case DRT_OP_QUANTIZE_LINEAR:
    case DRT_OP_DEQUANTIZE_LINEAR:
    case DRT_OP_BIT_CAST:
    case DRT_OP_IDENTITY:
    case DRT_OP_OPTIONAL_GET_ELEMENT:
    case DRT_OP_DROPOUT:
    case DRT_OP_ISNAN:
    case DRT_OP_ISINF:
    case DRT_OP_RESHAPE:
    case DRT_OP_TRANSPOSE:
    case DRT_OP_FLATTEN:
    case DRT_OP_SQUEEZE:
    case DRT_OP_UNSQUEEZE:
    case DRT_OP_PAD:
    case DRT_OP_TENSOR_SCATTER:
    case DRT_OP_SHAPE:
    case DRT_OP_SIZE:
    case DRT_OP_CONSTANT:
    case DRT_OP_CONSTANT_OF_SHAPE: return true;
    default: return false;
  }
}
