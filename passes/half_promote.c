#include "passes/half_promote.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/arena.h"
#include "ir/dtype.h"

#define MIN_HALF_WEIGHTS 4096 /* elements: a network, not an op test */

static bool is_half(drt_dtype t) { return t == DRT_DTYPE_FLOAT16 || t == DRT_DTYPE_BFLOAT16; }
static bool is_wide(drt_dtype t) { return t == DRT_DTYPE_FLOAT32 || t == DRT_DTYPE_FLOAT64; }

/* H (float16 or bfloat16) when g is a half-precision model (passes/half_promote.h), else
 * DRT_DTYPE_UNDEFINED. */
static drt_dtype half_model_type(const drt_graph *g) {
  drt_dtype h = DRT_DTYPE_UNDEFINED;
  for (int side = 0; side < 2; side++) {
    drt_value *const *vs = side ? g->outputs : g->inputs;
    size_t n = side ? g->num_outputs : g->num_inputs;
    for (size_t i = 0; i < n; i++) {
      drt_dtype t = vs[i]->dtype;
      if (is_wide(t)) return DRT_DTYPE_UNDEFINED;
      if (!is_half(t)) continue;
      if (h != DRT_DTYPE_UNDEFINED && h != t) return DRT_DTYPE_UNDEFINED;
      h = t;
    }
  }
  if (h == DRT_DTYPE_UNDEFINED) return h;
  uint64_t in_h = 0, wide = 0;
  for (size_t i = 0; i < g->num_values; i++) {
    const drt_value *v = g->values[i];
    if (v->kind != DRT_VALUE_CONST || !v->has_shape) continue;
    int64_t n = drt_shape_numel(&v->shape);
    if (n <= 0) continue;
    if (v->dtype == h) in_h += (uint64_t)n;
    else if (is_wide(v->dtype)) wide += (uint64_t)n;
  }
  return in_h >= MIN_HALF_WEIGHTS && in_h >= 9 * wide ? h : DRT_DTYPE_UNDEFINED;
}

/* a detached TENSOR attribute (ConstantOfShape's value) widened in place */
static drt_status widen_attr_tensor(drt_graph *g, drt_attr *a, drt_dtype h) {
  drt_value *t = a->tensor;
  if (!t || t->dtype != h || !t->data) return DRT_OK;
  size_t n = t->nbytes / drt_dtype_size(h);
  float *d = drt_arena_alloc(g->arena, n * sizeof(float) + 1);
  if (!d) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "widening attribute '%s'", a->name);
  drt_convert(DRT_DTYPE_FLOAT32, d, h, t->data, n);
  t->data = d;
  t->nbytes = n * sizeof(float);
  t->dtype = DRT_DTYPE_FLOAT32;
  return DRT_OK;
}

/* attributes that name the element type of a node's float output or of its arithmetic (BitCast's
   `to` reinterprets bits: it keeps its width) */
static bool names_type(const drt_node *n, const char *attr) {
  if (!strcmp(attr, "to")) return n->op == DRT_OP_CAST;
  return !strcmp(attr, "dtype") || !strcmp(attr, "output_dtype") || !strcmp(attr, "output_datatype") ||
         !strcmp(attr, "softmax_precision");
}

static void replace_node_inputs(drt_graph *g, const drt_value *from, drt_value *to) {
  for (size_t i = 0; i < g->num_nodes; i++) {
    drt_node *n = g->nodes[i];
    for (int j = 0; j < n->num_inputs; j++)
      if (n->inputs[j] == from) n->inputs[j] = to;
  }
}

static drt_status add_cast(drt_graph *g, drt_value *x, drt_value *y, drt_dtype to, const char *what) {
  char name[512];
  snprintf(name, sizeof name, "%s/half_promote_cast", what ? what : "value");
  drt_node *n;
  DRT_RETURN_IF_ERROR(drt_graph_add_node(g, DRT_OP_CAST, name, &x, 1, &y, 1, &n));
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = "to";
  a.type = DRT_ATTR_INT;
  a.i = (int64_t)to;
  return drt_node_add_attr(g, n, &a);
}

/* x's readers read "<x>/f32" = Cast(x, float32) instead (a weight: a fold the weight trace replays) */
static drt_status widen_through_cast(drt_graph *g, drt_value *x) {
  char name[512];
  snprintf(name, sizeof name, "%s/f32", x->name ? x->name : "value");
  drt_value *x32 = drt_graph_add_value(g, name, DRT_DTYPE_FLOAT32, x->has_shape ? &x->shape : NULL);
  if (!x32) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "half-promote");
  replace_node_inputs(g, x, x32);
  return add_cast(g, x, x32, DRT_DTYPE_FLOAT32, x->name);
}

drt_status drt_half_promote(drt_graph *g) {
  drt_dtype h = half_model_type(g);
  if (h == DRT_DTYPE_UNDEFINED || g->half_promoted_from != DRT_DTYPE_UNDEFINED) return DRT_OK;
  if (g->num_subgraphs) {
    /* control flow is lowered later: the subgraphs' own half values would stay half */
    drt_log(DRT_LOG_INFO, "half-promote: %s model kept in %s: it has control-flow subgraphs", drt_dtype_name(h),
            drt_dtype_name(h));
    return DRT_OK;
  }
  size_t nconst = 0, ncasts = 0;
  /* weights: read through Casts (the values array grows meanwhile: bound first) */
  size_t nv0 = g->num_values;
  for (size_t i = 0; i < nv0; i++) {
    drt_value *v = g->values[i];
    if (v->kind != DRT_VALUE_CONST || v->dtype != h || !v->data || drt_graph_count_uses(g, v) == 0) continue;
    DRT_RETURN_IF_ERROR(widen_through_cast(g, v));
    nconst++;
  }
  /* attributes that name the half type */
  for (size_t i = 0; i < g->num_nodes; i++) {
    drt_node *n = g->nodes[i];
    for (int k = 0; k < n->num_attrs; k++) {
      drt_attr *a = &n->attrs[k];
      if (a->type == DRT_ATTR_INT && a->i == (int64_t)h && names_type(n, a->name))
        a->i = DRT_DTYPE_FLOAT32;
      else if (a->type == DRT_ATTR_TENSOR)
        DRT_RETURN_IF_ERROR(widen_attr_tensor(g, a, h));
    }
  }
  /* the border: inputs through a Cast to float32, outputs through a Cast back. Intermediates
     need nothing: canonicalize, next, infers every dtype from these and drops the Casts that
     became float32 -> float32 (a model's own Casts to the half type, now to float32) */
  for (size_t i = 0; i < g->num_inputs; i++) {
    drt_value *x = g->inputs[i];
    if (x->dtype != h || drt_graph_count_uses(g, x) == 0) continue;
    DRT_RETURN_IF_ERROR(widen_through_cast(g, x));
    ncasts++;
  }
  for (size_t i = 0; i < g->num_outputs; i++) {
    drt_value *y = g->outputs[i];
    drt_node *p = y->producer;
    if (y->kind != DRT_VALUE_INTERMEDIATE || y->dtype != h || !p) continue;
    char name[512];
    snprintf(name, sizeof name, "%s/f32", y->name);
    drt_value *y32 = drt_graph_add_value(g, name, DRT_DTYPE_FLOAT32, y->has_shape ? &y->shape : NULL);
    if (!y32) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "half-promote");
    int k = y->producer_output;
    p->outputs[k] = y32;
    y32->producer = p;
    y32->producer_output = k;
    replace_node_inputs(g, y, y32);
    DRT_RETURN_IF_ERROR(add_cast(g, y32, y, h, y->name));
    ncasts++;
  }
  DRT_RETURN_IF_ERROR(drt_graph_topo_sort(g));
  g->half_promoted_from = h;
  drt_log(DRT_LOG_INFO, "half-promote: %s model computed in float32: %zu weights widened, %zu border casts",
          drt_dtype_name(h), nconst, ncasts);
  return DRT_OK;
}

drt_status drt_pass_half_promote(drt_graph *g, const drt_pass_ctx *ctx, bool *changed) {
  drt_dtype before = g->half_promoted_from;
  DRT_RETURN_IF_ERROR(drt_half_promote(g));
  *changed = g->half_promoted_from != before;
  if (ctx && ctx->results) ctx->results->half_type = g->half_promoted_from;
  return DRT_OK;
}
