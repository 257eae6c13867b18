/* Weight tracing (compile time): where each constant of an optimized graph comes from, so a
 * plan can be refitted to new weights without recompiling (runtime/weights.h).
 *
 *   model as loaded ──snapshot──▶ drt_weight_trace ◀── optimized graph (after the pipeline)
 *                                        │
 *                                        ▼
 *                              drt_plan_provenance: trace graph (folds), derived, baked, opaque
 *
 * The snapshot keeps the model's constants (sources) and nodes. Constant folding turns a
 * node's output values into constants in place, so after the pipeline every constant of the
 * optimized graph is one of: a source; the output of a folded node (its fold is replayed by
 * the trace graph); weight-independent (folded from shapes only: nothing to redo); or created
 * by a pass (matched by content to a traced value: derived, else opaque). Sources the optimized
 * graph depends on without holding them (dropped identity scales, constants moved into
 * attributes, duplicates merged by CSE) are recorded as baked, with a hash.
 *
 * The snapshot refers to the graph's values and nodes by pointer: it is valid as long as the
 * graph (whose arena keeps even removed nodes and values) lives. Not thread-safe. */
#ifndef DRT_PASSES_WEIGHT_TRACE_H
#define DRT_PASSES_WEIGHT_TRACE_H

#include "passes/pass.h"
#include "runtime/weights.h"

typedef struct drt_weight_trace drt_weight_trace;

/* Snapshot of a model as loaded (before binding shapes or running passes). */
drt_status drt_weight_trace_begin(const drt_graph *g, drt_weight_trace **out);
/* Provenance of every constant of `g` (the same graph, after the pipeline) and of the `extra`
 * graphs passes split off it (hoisted stages; their constants are matched by content). Small
 * sources keep their bytes as defaults (borrowed from the graph until the plan is serialized). */
drt_status drt_weight_trace_finish(drt_weight_trace *t, const drt_graph *g, const drt_graph *const *extra,
                                   size_t num_extra, uint32_t bucket, drt_plan_provenance **out);
void drt_weight_trace_destroy(drt_weight_trace *t); /* NULL-safe */

/* The model's constants as named tensors (for drt_weight_map_build): every source of the
 * provenance, with the data the snapshot saw. Borrowed from the graph. */
drt_status drt_weight_trace_sources(const drt_weight_trace *t, const drt_plan_provenance *p,
                                    drt_named_tensor **out, size_t *count);

#endif
