/* Graph-matching helpers for the fusion passes (see pattern.h). */
#include "passes/pattern.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer.h"

drt_status drt_use_map_build(const drt_graph *g, drt_use_map *m) {
  memset(m, 0, sizeof *m);
  m->num_ids = g->next_id;
  size_t n = m->num_ids ? m->num_ids : 1;
  m->count = calloc(n, sizeof *m->count);
  m->consumer = calloc(n, sizeof *m->consumer);
  m->is_output = calloc(n, sizeof *m->is_output);
  if (!m->count || !m->consumer || !m->is_output) {
    drt_use_map_free(m);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "use map of %u values", m->num_ids);
  }
  for (size_t i = 0; i < g->num_nodes; i++) {
    drt_node *nd = g->nodes[i];
    if (nd->dead) continue;
    for (int j = 0; j < nd->num_inputs; j++) {
      drt_value *v = nd->inputs[j];
      if (!v || v->id >= m->num_ids) continue;
      m->count[v->id]++;
      m->consumer[v->id] = nd;
    }
  }
  for (size_t i = 0; i < g->num_outputs; i++) {
    const drt_value *v = g->outputs[i];
    if (v->id >= m->num_ids) continue;
    m->count[v->id]++;
    m->is_output[v->id] = true;
  }
  return DRT_OK;
}

void drt_use_map_free(drt_use_map *m) {
  free(m->count);
  free(m->consumer);
  free(m->is_output);
  memset(m, 0, sizeof *m);
}

uint32_t drt_use_count(const drt_use_map *m, const drt_value *v) {
  return v && v->id < m->num_ids ? m->count[v->id] : 0;
}

bool drt_use_is_output(const drt_use_map *m, const drt_value *v) {
  return v && v->id < m->num_ids && m->is_output[v->id];
}

drt_node *drt_use_single(const drt_use_map *m, const drt_value *v) {
  if (!v || v->id >= m->num_ids || m->is_output[v->id] || m->count[v->id] != 1) return NULL;
  return m->consumer[v->id];
}

drt_node *drt_producer_of(const drt_value *v) {
  if (!v || v->kind != DRT_VALUE_INTERMEDIATE || !v->producer || v->producer->dead) return NULL;
  return v->producer;
}

drt_node *drt_producer_is(const drt_value *v, drt_op op) {
  drt_node *p = drt_producer_of(v);
  return p && p->op == op ? p : NULL;
}

bool drt_const_scalar(const drt_value *v, double *out) {
  if (!v || v->kind != DRT_VALUE_CONST || !v->data || !v->has_shape) return false;
  if (drt_shape_numel(&v->shape) != 1) return false;
  if (!drt_dtype_is_float(v->dtype) && !drt_dtype_is_int(v->dtype)) return false;
  *out = drt_load_f64(v->dtype, v->data, 0);
  return true;
}

bool drt_const_all(const drt_value *v, double x, double tol) {
  if (!v || v->kind != DRT_VALUE_CONST || !v->data || !v->has_shape) return false;
  if (!drt_dtype_is_float(v->dtype) && !drt_dtype_is_int(v->dtype)) return false;
  int64_t n = drt_shape_numel(&v->shape);
  if (n < 0) return false;
  double lim = tol * (fabs(x) > 1 ? fabs(x) : 1);
  for (int64_t i = 0; i < n; i++)
    if (!(fabs(drt_load_f64(v->dtype, v->data, (size_t)i) - x) <= lim)) return false;
  return true;
}

static bool in_list(const drt_value *v, drt_value *const *avoid, int n) {
  for (int i = 0; i < n; i++)
    if (avoid[i] == v) return true;
  return false;
}

bool drt_depends_on(const drt_graph *g, const drt_value *v, drt_value *const *avoid, int n) {
  if (in_list(v, avoid, n)) return true;
  uint32_t ids = g->next_id ? g->next_id : 1;
  uint8_t *seen = calloc(ids, 1);
  drt_node **stack = malloc((g->num_nodes + 1) * sizeof *stack);
  bool found = false;
  if (!seen || !stack) {
    found = true; /* conservative: refuse the rewrite */
    goto done;
  }
  size_t top = 0;
  drt_node *p = drt_producer_of(v);
  if (p && p->id < ids) {
    seen[p->id] = 1;
    stack[top++] = p;
  }
  while (top > 0 && !found) {
    drt_node *nd = stack[--top];
    for (int j = 0; j < nd->num_inputs && !found; j++) {
      drt_value *in = nd->inputs[j];
      if (!in) continue;
      if (in_list(in, avoid, n)) {
        found = true;
        break;
      }
      drt_node *q = drt_producer_of(in);
      if (q && q->id < ids && !seen[q->id] && top < g->num_nodes) {
        seen[q->id] = 1;
        stack[top++] = q;
      }
    }
  }
done:
  free(seen);
  free(stack);
  return found;
}

int drt_other_input(const drt_node *n, const drt_value *v) {
  if (n->num_inputs != 2) return -1;
  if (n->inputs[0] == v) return 1;
  if (n->inputs[1] == v) return 0;
  return -1;
}

bool drt_broadcasts_into(const drt_shape *a, const drt_shape *b) {
  drt_shape o;
  drt_status st = drt_broadcast_shapes(a, b, &o);
  if (st) {
    drt_status_free(st);
    return false;
  }
  return drt_shape_equal(&o, a);
}
