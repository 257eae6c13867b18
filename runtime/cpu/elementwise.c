/* CPU kernels for the elementwise op family. */
#include "runtime/cpu/cpu.h"

const drt_cpu_kernel_entry drt_cpu_kernels_elementwise[] = {
    {DRT_OP_COUNT_, NULL, 0},
};
