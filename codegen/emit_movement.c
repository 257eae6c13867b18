/* CUDA emitters for the movement family (placeholder table until the family is written). */
#include "codegen/cg.h"

const drt_cg_emitter drt_cg_emitters_movement[] = {
    {DRT_OP_COUNT_, NULL},
};
