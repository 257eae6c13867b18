/* CUDA emitters for the norm family (placeholder table until the family is written). */
#include "codegen/cg.h"

const drt_cg_emitter drt_cg_emitters_norm[] = {
    {DRT_OP_COUNT_, NULL},
};
