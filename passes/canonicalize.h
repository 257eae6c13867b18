/* Canonicalization: shape inference + constant folding in one topological walk, then
 * removal of Identity / Dropout / no-op Cast / no-op Reshape, then DCE. After it every value
 * has a static shape and dtype. Input dims must be bound first (drt_graph_bind_input). */
#ifndef DRT_PASSES_CANONICALIZE_H
#define DRT_PASSES_CANONICALIZE_H

#include "passes/pass.h"

/* Binds a graph input's full shape (checks rank and fixed dims; records symbolic names so
 * that later inputs using the same dim_param agree). */
drt_status drt_graph_bind_input(drt_graph *g, const char *name, const drt_shape *shape);
/* Binds a symbolic dim by name on all inputs that use it. Unknown names are an error. */
drt_status drt_graph_bind_dim(drt_graph *g, const char *dim_name, int64_t value);
/* Fails naming the first input dim that is still unbound. */
drt_status drt_graph_check_bound(const drt_graph *g);

/* Specializes the graph to a known input value: the input becomes a constant holding a copy
 * of t (dtype and shape must match any declared ones) and leaves g->inputs. Used by `drt run`
 * so that shape-like operands fed as inputs (as ONNX's node tests do) can fold. */
drt_status drt_graph_specialize_input(drt_graph *g, const char *name, const drt_tensor *t);

drt_status drt_pass_canonicalize(drt_graph *g, const drt_pass_ctx *ctx, bool *changed);

#endif
