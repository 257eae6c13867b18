/* Pass "elementwise-fuse": maximal groups of pointwise ops become one drt.Elementwise node
 * carrying an expression program, and the pointwise tail of a MatMul / Gemm / Conv (bias,
 * activation, gating, residual add) becomes the epilogue of one drt.Gemm / drt.Conv node
 * (see passes/elementwise_fuse.c). Needs a canonicalized graph (static shapes). */
#ifndef DRT_PASSES_ELEMENTWISE_FUSE_H
#define DRT_PASSES_ELEMENTWISE_FUSE_H

#include "passes/pass.h"

drt_status drt_pass_elementwise_fuse(drt_graph *g, const drt_pass_ctx *ctx, bool *changed);

#endif
