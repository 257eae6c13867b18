/* Shape/dtype inference for the movement op family. */
#include "ir/infer.h"

const drt_infer_entry drt_infer_table_movement[] = {
    {DRT_OP_COUNT_, NULL},
};
