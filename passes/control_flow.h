/* Control flow (If, Loop, Scan) lowered into the flat graph, during canonicalization.
 *
 * distilrt's graphs are static: every value has one shape, the memory plan and the CUDA
 * program are fixed at compile time. Control flow is therefore resolved when the graph is
 * compiled, which covers what exporters emit around a diffusion network (shape-derived
 * conditions, fixed-count loops over steps or layers, Scan over a static axis):
 *  - If: a condition known at compile time (a constant after folding) inlines its branch;
 *    otherwise both branches are inlined and each output is Where(cond, then, else), which
 *    needs both branches to give one dtype and one shape per output;
 *  - Loop: unrolled. The trip count M must be a constant (INT64_MAX, as exporters write for
 *    while-loops, means none); with a cond input, the condition must be a constant before each
 *    iteration (the one the previous iteration's body computed usually folds, since the
 *    iteration number is a constant), and a data-dependent exit is refused with the iteration
 *    it was met at; without a cond input the body's condition is ignored (ONNX Loop). At most
 *    DRT_CF_MAX_ITERATIONS iterations. Scan outputs stack the per-iteration values
 *    (Unsqueeze + Concat);
 *  - Scan (opset 8 with its batch axis, and 9+): unrolled over the static length of the scan
 *    axis; inputs are read per iteration with Gather, in either direction, outputs stacked on
 *    their axis in either direction.
 * Nested control flow is lowered as its enclosing body is instantiated. */
#ifndef DRT_PASSES_CONTROL_FLOW_H
#define DRT_PASSES_CONTROL_FLOW_H

#include "ir/graph.h"
#include "ir/op.h" /* drt_op_is_control_flow, drt_op_is_sequence */

#define DRT_CF_MAX_ITERATIONS 4096
/* Unrolling stops with an error once the graph holds this many nodes (nested loops multiply). */
#define DRT_CF_MAX_GRAPH_NODES (1u << 20)

/* Called on every node the lowering adds, in order, before the next one is added: it must
 * infer the node's outputs (and may fold it into constants, or lower it if it is itself
 * control flow). */
typedef drt_status (*drt_cf_process_fn)(void *user, drt_graph *g, drt_node *n);

/* Replaces n (If, Loop or Scan, its inputs inferred) by flat nodes computing its outputs; n is
 * marked dead and its output values are produced by the new nodes. */
drt_status drt_lower_control_flow(drt_graph *g, drt_node *n, drt_cf_process_fn process, void *user);

/* Sequences are compile-time lists of tensors (drt_value.is_sequence): SequenceEmpty,
 * SequenceConstruct, SequenceInsert and SequenceErase (constant positions) and SplitToSequence
 * (Slice per piece) make one; SequenceAt (constant position), SequenceLength (a constant) and
 * ConcatFromSequence (Concat, with Unsqueeze for new_axis) read one; an Identity of a sequence is
 * the same sequence; Loop and If carry them like tensors (an If whose condition is known only at
 * run time cannot select between sequences). A sequence may not be a graph input or output. */
drt_status drt_lower_sequence_op(drt_graph *g, drt_node *n, drt_cf_process_fn process, void *user);

#endif
