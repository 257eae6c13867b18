/* Shape/dtype inference for the index op family (gather/scatter/pad/resize). */
#include "ir/infer.h"

const drt_infer_entry drt_infer_table_index[] = {
    {DRT_OP_COUNT_, NULL},
};
