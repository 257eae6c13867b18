/* CPU kernels for the linalg op family. */
#include "runtime/cpu/cpu.h"

const drt_cpu_kernel_entry drt_cpu_kernels_linalg[] = {
    {DRT_OP_COUNT_, NULL, 0},
};
