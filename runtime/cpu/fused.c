/* Kernel table of the internal fused ops (drt.*) that passes introduce. One row per op;
 * the implementations live in runtime/cpu/fused_<op>.c. */
#include "runtime/cpu/fused.h"

const drt_cpu_kernel_entry drt_cpu_kernels_fused[] = {
    {DRT_OP_FUSED_ATTENTION, drt_cpu_fused_attention, 0},
    {DRT_OP_FUSED_NORM, drt_cpu_fused_norm, 0},
    {DRT_OP_FUSED_CFG_COMBINE, drt_cpu_fused_cfg_combine, 0},
    {DRT_OP_FUSED_ELEMENTWISE, drt_cpu_fused_elementwise, 0}, /* fused_elementwise.c */
    {DRT_OP_FUSED_GEMM, drt_cpu_fused_gemm, 0},               /* fused_gemm.c */
    {DRT_OP_FUSED_CONV, drt_cpu_fused_conv, 0},               /* fused_gemm.c */
    {DRT_OP_COUNT_, NULL, 0},
};
