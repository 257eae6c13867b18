/* Graph verifier: structural invariants checked after the frontend and after every pass. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ir/graph.h"

drt_status drt_graph_verify(drt_graph *g, bool require_shapes) {
  char d[256];
  uint32_t nid = g->next_id ? g->next_id : 1;
  uint8_t *defined = calloc(nid, 1); /* value id defined so far (walk in node order) */
  uint8_t *in_graph = calloc(nid, 1);
  drt_status st = DRT_OK;
  if (!defined || !in_graph) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "verifier");
    goto done;
  }
  for (size_t i = 0; i < g->num_values; i++) in_graph[g->values[i]->id] = 1;
  /* duplicate names */
  for (size_t i = 0; i < g->num_values; i++) {
    drt_value *v = g->values[i];
    drt_value *f = drt_graph_find_value(g, v->name);
    if (f && f != v) {
      st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "duplicate value name '%s'", v->name);
      goto done;
    }
    if (v->kind == DRT_VALUE_CONST || v->kind == DRT_VALUE_INPUT) defined[v->id] = 1;
    if (v->kind == DRT_VALUE_CONST && !v->data) {
      st = DRT_ERROR(DRT_STATUS_INTERNAL, "constant '%s' has no data", v->name);
      goto done;
    }
  }
  for (size_t i = 0; i < g->num_nodes; i++) {
    drt_node *n = g->nodes[i];
    const drt_op_info *info = drt_op_get_info(n->op);
    if (!info) {
      st = DRT_ERROR(DRT_STATUS_INTERNAL, "node '%s' has invalid op %d", n->name, (int)n->op);
      goto done;
    }
    if (n->num_inputs > (info->max_inputs < 0 ? 1 << 20 : info->max_inputs) ||
        n->num_outputs < info->min_outputs) {
      st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: arity %d->%d does not match the op", drt_node_describe(n, d, sizeof d),
                     n->num_inputs, n->num_outputs);
      goto done;
    }
    for (int j = 0; j < n->num_inputs; j++) {
      drt_value *v = n->inputs[j];
      if (!v) continue;
      if (!in_graph[v->id]) {
        st = DRT_ERROR(DRT_STATUS_INTERNAL, "%s: input '%s' is not in the graph", drt_node_describe(n, d, sizeof d), v->name);
        goto done;
      }
      if (!defined[v->id]) {
        st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: input '%s' is used before it is defined (dangling or cycle)",
                       drt_node_describe(n, d, sizeof d), v->name);
        goto done;
      }
    }
    for (int j = 0; j < n->num_outputs; j++) {
      drt_value *v = n->outputs[j];
      if (defined[v->id] || v->producer != n) {
        st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: output '%s' is defined more than once",
                       drt_node_describe(n, d, sizeof d), v->name);
        goto done;
      }
      defined[v->id] = 1;
      if (require_shapes && (!v->has_shape || v->dtype == DRT_DTYPE_UNDEFINED || drt_shape_numel(&v->shape) < 0)) {
        st = DRT_ERROR(DRT_STATUS_INTERNAL, "%s: output '%s' has no static type", drt_node_describe(n, d, sizeof d), v->name);
        goto done;
      }
    }
  }
  for (size_t i = 0; i < g->num_outputs; i++) {
    if (!defined[g->outputs[i]->id]) {
      st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "graph output '%s' is never produced", g->outputs[i]->name);
      goto done;
    }
  }
done:
  free(defined);
  free(in_graph);
  return st;
}
