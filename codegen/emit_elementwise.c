/* CUDA emitters for the elementwise family (placeholder table until the family is written). */
#include "codegen/cg.h"

const drt_cg_emitter drt_cg_emitters_elementwise[] = {
    {DRT_OP_COUNT_, NULL},
};
