/* Shape/dtype inference for the elementwise op family. */
#include "ir/infer.h"

const drt_infer_entry drt_infer_table_elementwise[] = {
    {DRT_OP_COUNT_, NULL},
};
