/* Step-invariant hoisting (pass "hoist", passes/hoist.c): work that depends only on inputs that
 * do not change during a generation moves to a prologue graph run once per generation; with a
 * schedule fixed at compile time, work that depends only on the timestep moves to a step graph
 * whose outputs are precomputed per step into tables. */
#ifndef DRT_PASSES_HOIST_H
#define DRT_PASSES_HOIST_H

#include "passes/pass.h"

drt_status drt_pass_hoist(drt_graph *g, const drt_pass_ctx *ctx, bool *changed);

/* MatMul/Gemm/Conv/ConvTranspose FLOPs of one node (2 per multiply-add), 0 for other ops. */
double drt_node_flops(const drt_node *n);

#endif
