/* CPU kernels for the index op family (gather/scatter/pad/resize). */
#include "runtime/cpu/cpu.h"

const drt_cpu_kernel_entry drt_cpu_kernels_index[] = {
    {DRT_OP_COUNT_, NULL, 0},
};
