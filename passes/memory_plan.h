/* Memory planning: assigns every intermediate (except graph outputs, which are handed to the
 * caller) a byte offset in one activation arena, by liveness over the topological order,
 * best-fit among freed blocks, and in-place reuse of an input that dies at an elementwise
 * node of the same dtype and shape. The executor then allocates the arena once. */
#ifndef DRT_PASSES_MEMORY_PLAN_H
#define DRT_PASSES_MEMORY_PLAN_H

#include "passes/pass.h"

drt_status drt_pass_memory_plan(drt_graph *g, const drt_pass_ctx *ctx, bool *changed);
/* Drops a memory plan (any pass that changes the graph after planning must call it). */
void drt_memory_plan_clear(drt_graph *g);

#endif
