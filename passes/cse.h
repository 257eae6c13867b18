/* Pass "cse": common-subexpression elimination (identical constants, then nodes with the same
 * op, inputs and attributes), transpose/reshape cancellation and algebraic simplifications
 * that are exact in floating point (see passes/cse.c). Needs a canonicalized graph. Graph
 * outputs keep their names. */
#ifndef DRT_PASSES_CSE_H
#define DRT_PASSES_CSE_H

#include "passes/pass.h"

drt_status drt_pass_cse(drt_graph *g, const drt_pass_ctx *ctx, bool *changed);

#endif
