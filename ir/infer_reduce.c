/* Shape/dtype inference for the reduce op family. */
#include "ir/infer.h"

const drt_infer_entry drt_infer_table_reduce[] = {
    {DRT_OP_COUNT_, NULL},
};
