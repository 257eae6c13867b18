/* Shape/dtype inference for the linalg op family. */
#include "ir/infer.h"

const drt_infer_entry drt_infer_table_linalg[] = {
    {DRT_OP_COUNT_, NULL},
};
