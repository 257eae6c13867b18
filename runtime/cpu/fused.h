/* Internals of the CPU kernels for the internal fused ops (drt.*), listed in the table of
 * runtime/cpu/fused.c and implemented one file per op. */
#ifndef DRT_RUNTIME_CPU_FUSED_H
#define DRT_RUNTIME_CPU_FUSED_H

#include "runtime/cpu/cpu.h"

/* drt.Attention (runtime/cpu/fused_attention.c), float32. */
drt_status drt_cpu_fused_attention(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);
/* drt.Norm (runtime/cpu/fused_norm.c), float32. */
drt_status drt_cpu_fused_norm(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);

/* drt.CfgCombine (runtime/cpu/fused_cfg.c), float32. */
drt_status drt_cpu_fused_cfg_combine(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);

/* drt.Elementwise (runtime/cpu/fused_elementwise.c), drt.Gemm and drt.Conv
 * (runtime/cpu/fused_gemm.c), float32; programs run by runtime/cpu/ew_exec.c. */
drt_status drt_cpu_fused_elementwise(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);
drt_status drt_cpu_fused_gemm(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);
drt_status drt_cpu_fused_conv(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);

#endif
