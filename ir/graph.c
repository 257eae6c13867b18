#include "ir/graph.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- shapes ---------------------------------------------------------------------- */
int64_t drt_shape_numel(const drt_shape *s) {
  int64_t n = 1;
  for (int i = 0; i < s->rank; i++) {
    int64_t d = s->dims[i];
    if (d < 0) return -1;
    if (d != 0 && n > INT64_MAX / d) return -1;
    n *= d;
  }
  return n;
}

bool drt_shape_equal(const drt_shape *a, const drt_shape *b) {
  if (a->rank != b->rank) return false;
  for (int i = 0; i < a->rank; i++)
    if (a->dims[i] != b->dims[i]) return false;
  return true;
}

const char *drt_shape_str(const drt_shape *s, char *buf, size_t n) {
  size_t off = 0;
  if (n == 0) return buf;
  buf[0] = 0;
  if (s->rank == 0) {
    snprintf(buf, n, "scalar");
    return buf;
  }
  for (int i = 0; i < s->rank && off < n; i++)
    off += (size_t)snprintf(buf + off, n - off, "%s%" PRId64, i ? "x" : "", s->dims[i]);
  return buf;
}

size_t drt_tensor_nbytes(const drt_tensor *t) {
  int64_t n = drt_shape_numel(&t->shape);
  size_t es = drt_dtype_size(t->dtype);
  if (n < 0 || es == 0 || (uint64_t)n > SIZE_MAX / es) return 0;
  return (size_t)n * es;
}

/* ---- growable arrays (malloc, freed in destroy) ---------------------------------- */
static bool grow(void **arr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return true;
  size_t nc = *cap ? *cap * 2 : 16;
  while (nc < need) nc *= 2;
  void *p = realloc(*arr, nc * elem);
  if (!p) return false;
  *arr = p;
  *cap = nc;
  return true;
}

drt_status drt_graph_create(drt_graph **out) {
  drt_graph *g = calloc(1, sizeof(*g));
  if (!g) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "allocating graph");
  g->arena = drt_arena_create();
  if (!g->arena) {
    free(g);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "allocating graph arena");
  }
  g->name = "graph";
  *out = g;
  return DRT_OK;
}

void drt_graph_destroy(drt_graph *g) {
  if (!g) return;
  for (size_t i = 0; i < g->num_subgraphs; i++) drt_graph_destroy(g->subgraphs[i]);
  free(g->subgraphs);
  free(g->values);
  free(g->nodes);
  free(g->inputs);
  free(g->outputs);
  free(g->name_index);
  drt_arena_destroy(g->arena);
  free(g);
}

drt_value *drt_graph_add_value(drt_graph *g, const char *name, drt_dtype dt, const drt_shape *shape) {
  if (!grow((void **)&g->values, &g->cap_values, g->num_values + 1, sizeof(drt_value *))) return NULL;
  drt_value *v = drt_arena_alloc(g->arena, sizeof(*v));
  if (!v) return NULL;
  v->id = g->next_id++;
  v->mem_offset = -1;
  if (name && name[0]) {
    v->name = drt_arena_strdup(g->arena, name);
  } else {
    char buf[32];
    snprintf(buf, sizeof buf, "%%%u", v->id);
    v->name = drt_arena_strdup(g->arena, buf);
  }
  if (!v->name) return NULL;
  v->dtype = dt;
  if (shape) {
    v->has_shape = true;
    v->shape = *shape;
  }
  g->values[g->num_values++] = v;
  g->name_index_dirty = true;
  return v;
}

drt_status drt_value_make_const(drt_graph *g, drt_value *v, const void *data, size_t nbytes) {
  void *p = drt_arena_alloc(g->arena, nbytes ? nbytes : 1);
  if (!p) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "allocating %zu bytes for constant '%s'", nbytes, v->name);
  if (data && nbytes) memcpy(p, data, nbytes);
  v->kind = DRT_VALUE_CONST;
  v->data = p;
  v->nbytes = nbytes;
  v->producer = NULL;
  return DRT_OK;
}

drt_status drt_graph_add_const(drt_graph *g, const char *name, drt_dtype dt, const drt_shape *shape,
                               const void *data, drt_value **out) {
  drt_tensor t = {dt, *shape, NULL};
  int64_t numel = drt_shape_numel(shape);
  size_t nbytes = drt_tensor_nbytes(&t);
  if (numel < 0 || (numel > 0 && nbytes == 0))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "constant '%s': invalid shape or dtype", name ? name : "");
  drt_value *v = drt_graph_add_value(g, name, dt, shape);
  if (!v) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "adding constant");
  DRT_RETURN_IF_ERROR(drt_value_make_const(g, v, data, nbytes));
  *out = v;
  return DRT_OK;
}

drt_status drt_graph_add_node(drt_graph *g, drt_op op, const char *name, drt_value *const *inputs,
                              int num_inputs, drt_value *const *outputs, int num_outputs, drt_node **out) {
  if (!grow((void **)&g->nodes, &g->cap_nodes, g->num_nodes + 1, sizeof(drt_node *)))
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "adding node");
  drt_node *n = drt_arena_alloc(g->arena, sizeof(*n));
  if (!n) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "adding node");
  n->id = g->next_id++;
  n->op = op;
  n->opset = g->opset;
  if (name && name[0]) {
    n->name = drt_arena_strdup(g->arena, name);
  } else {
    char buf[48];
    snprintf(buf, sizeof buf, "%s_%u", drt_op_name(op), n->id);
    n->name = drt_arena_strdup(g->arena, buf);
  }
  n->num_inputs = num_inputs;
  n->num_outputs = num_outputs;
  n->inputs = drt_arena_alloc_array(g->arena, (size_t)(num_inputs ? num_inputs : 1), sizeof(drt_value *));
  n->outputs = drt_arena_alloc_array(g->arena, (size_t)(num_outputs ? num_outputs : 1), sizeof(drt_value *));
  if (!n->name || !n->inputs || !n->outputs) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "adding node");
  for (int i = 0; i < num_inputs; i++) n->inputs[i] = inputs[i];
  for (int i = 0; i < num_outputs; i++) {
    n->outputs[i] = outputs[i];
    outputs[i]->kind = DRT_VALUE_INTERMEDIATE;
    outputs[i]->producer = n;
    outputs[i]->producer_output = i;
  }
  g->nodes[g->num_nodes++] = n;
  if (out) *out = n;
  return DRT_OK;
}

drt_status drt_graph_add_input(drt_graph *g, drt_value *v) {
  if (!grow((void **)&g->inputs, &g->cap_inputs, g->num_inputs + 1, sizeof(drt_value *)))
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "adding input");
  v->kind = DRT_VALUE_INPUT;
  g->inputs[g->num_inputs++] = v;
  return DRT_OK;
}

drt_status drt_graph_add_output(drt_graph *g, drt_value *v) {
  if (!grow((void **)&g->outputs, &g->cap_outputs, g->num_outputs + 1, sizeof(drt_value *)))
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "adding output");
  v->is_graph_output = true;
  g->outputs[g->num_outputs++] = v;
  return DRT_OK;
}

/* ---- name index ------------------------------------------------------------------- */
static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  while (*s) {
    h ^= (unsigned char)*s++;
    h *= 1099511628211ull;
  }
  return h;
}

static bool rebuild_index(drt_graph *g) {
  size_t cap = 64;
  while (cap < g->num_values * 2) cap *= 2;
  int64_t *idx = malloc(cap * sizeof(int64_t));
  if (!idx) return false;
  for (size_t i = 0; i < cap; i++) idx[i] = -1;
  for (size_t i = 0; i < g->num_values; i++) {
    size_t h = hash_str(g->values[i]->name) & (cap - 1);
    while (idx[h] >= 0) h = (h + 1) & (cap - 1);
    idx[h] = (int64_t)i;
  }
  free(g->name_index);
  g->name_index = idx;
  g->name_index_cap = cap;
  g->name_index_dirty = false;
  return true;
}

drt_value *drt_graph_find_value(drt_graph *g, const char *name) {
  if (g->name_index_dirty || !g->name_index) {
    if (!rebuild_index(g)) {
      for (size_t i = 0; i < g->num_values; i++)
        if (strcmp(g->values[i]->name, name) == 0) return g->values[i];
      return NULL;
    }
  }
  size_t h = hash_str(name) & (g->name_index_cap - 1);
  while (g->name_index[h] >= 0) {
    drt_value *v = g->values[g->name_index[h]];
    if (strcmp(v->name, name) == 0) return v;
    h = (h + 1) & (g->name_index_cap - 1);
  }
  return NULL;
}

/* ---- attributes ------------------------------------------------------------------- */
drt_status drt_graph_adopt_subgraph(drt_graph *g, drt_graph *sub) {
  if (!grow((void **)&g->subgraphs, &g->cap_subgraphs, g->num_subgraphs + 1, sizeof(drt_graph *)))
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "adding a subgraph");
  g->subgraphs[g->num_subgraphs++] = sub;
  return DRT_OK;
}

drt_status drt_node_add_attr(drt_graph *g, drt_node *n, const drt_attr *a) {
  drt_attr *na = drt_arena_alloc_array(g->arena, (size_t)n->num_attrs + 1, sizeof(drt_attr));
  if (!na) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "adding attribute");
  if (n->num_attrs) memcpy(na, n->attrs, (size_t)n->num_attrs * sizeof(drt_attr));
  drt_attr *d = &na[n->num_attrs];
  *d = *a;
  d->name = drt_arena_strdup(g->arena, a->name);
  if (a->s) d->s = drt_arena_strndup(g->arena, a->s, a->s_len);
  if (a->floats && a->count) {
    d->floats = drt_arena_alloc_array(g->arena, (size_t)a->count, sizeof(float));
    if (!d->floats) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "adding attribute");
    memcpy(d->floats, a->floats, (size_t)a->count * sizeof(float));
  }
  if (a->ints && a->count) {
    d->ints = drt_arena_alloc_array(g->arena, (size_t)a->count, sizeof(int64_t));
    if (!d->ints) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "adding attribute");
    memcpy(d->ints, a->ints, (size_t)a->count * sizeof(int64_t));
  }
  if (a->strings && a->count) {
    d->strings = drt_arena_alloc_array(g->arena, (size_t)a->count, sizeof(char *));
    if (!d->strings) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "adding attribute");
    for (int64_t i = 0; i < a->count; i++) d->strings[i] = drt_arena_strdup(g->arena, a->strings[i]);
  }
  n->attrs = na;
  n->num_attrs++;
  return DRT_OK;
}

const drt_attr *drt_node_attr(const drt_node *n, const char *name) {
  for (int i = 0; i < n->num_attrs; i++)
    if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
  return NULL;
}

int64_t drt_node_attr_int(const drt_node *n, const char *name, int64_t dflt) {
  const drt_attr *a = drt_node_attr(n, name);
  if (!a) return dflt;
  if (a->type == DRT_ATTR_INT) return a->i;
  if (a->type == DRT_ATTR_FLOAT) { /* a float where an int is meant: truncated, saturated, NaN = absent */
    if (a->f != a->f) return dflt;
    if (a->f >= 9.2233720368547758e18f) return INT64_MAX;
    if (a->f <= -9.2233720368547758e18f) return INT64_MIN;
    return (int64_t)a->f;
  }
  return dflt;
}

float drt_node_attr_float(const drt_node *n, const char *name, float dflt) {
  const drt_attr *a = drt_node_attr(n, name);
  if (!a) return dflt;
  if (a->type == DRT_ATTR_FLOAT) return a->f;
  if (a->type == DRT_ATTR_INT) return (float)a->i;
  return dflt;
}

const char *drt_node_attr_string(const drt_node *n, const char *name, const char *dflt) {
  const drt_attr *a = drt_node_attr(n, name);
  return (a && a->type == DRT_ATTR_STRING) ? a->s : dflt;
}

const int64_t *drt_node_attr_ints(const drt_node *n, const char *name, int64_t *count) {
  const drt_attr *a = drt_node_attr(n, name);
  if (!a || a->type != DRT_ATTR_INTS) {
    *count = 0;
    return NULL;
  }
  *count = a->count;
  return a->ints ? a->ints : (const int64_t *)"";
}

const float *drt_node_attr_floats(const drt_node *n, const char *name, int64_t *count) {
  const drt_attr *a = drt_node_attr(n, name);
  if (!a || a->type != DRT_ATTR_FLOATS) {
    *count = 0;
    return NULL;
  }
  *count = a->count;
  return a->floats ? a->floats : (const float *)"";
}

bool drt_node_is_view_only(const drt_node *n) {
  if (n->num_outputs < 1) return false;
  for (int j = 0; j < n->num_outputs; j++)
    if (!n->outputs[j] || !n->outputs[j]->view_of) return false;
  return true;
}

const char *drt_node_describe(const drt_node *n, char *buf, size_t size) {
  snprintf(buf, size, "node '%s' (%s, opset %d)", n->name, drt_op_name(n->op), n->opset);
  return buf;
}

drt_status drt_value_const_ints(const drt_value *v, int64_t *out, int64_t max, int64_t *count) {
  if (!v || v->kind != DRT_VALUE_CONST)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "'%s' must be a compile-time constant", v ? v->name : "?");
  if (!drt_dtype_is_int(v->dtype))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "'%s' must be an integer tensor, got %s", v->name,
                     drt_dtype_name(v->dtype));
  int64_t n = drt_shape_numel(&v->shape);
  if (n < 0 || n > max)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "'%s' has %" PRId64 " elements, at most %" PRId64 " allowed",
                     v->name, n, max);
  for (int64_t i = 0; i < n; i++) out[i] = drt_load_i64(v->dtype, v->data, (size_t)i);
  *count = n;
  return DRT_OK;
}

drt_status drt_value_const_scalar(const drt_value *v, double *out) {
  if (!v || v->kind != DRT_VALUE_CONST)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "'%s' must be a compile-time constant", v ? v->name : "?");
  if (drt_shape_numel(&v->shape) != 1)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "'%s' must have exactly one element", v->name);
  *out = drt_load_f64(v->dtype, v->data, 0);
  return DRT_OK;
}

drt_tensor drt_value_tensor(const drt_value *v) {
  drt_tensor t = {v->dtype, v->shape, v->data};
  return t;
}

/* ---- graph operations ------------------------------------------------------------- */
void drt_graph_replace_uses(drt_graph *g, drt_value *old_v, drt_value *new_v) {
  for (size_t i = 0; i < g->num_nodes; i++) {
    drt_node *n = g->nodes[i];
    for (int j = 0; j < n->num_inputs; j++)
      if (n->inputs[j] == old_v) n->inputs[j] = new_v;
  }
  for (size_t i = 0; i < g->num_outputs; i++) {
    if (g->outputs[i] == old_v) {
      g->outputs[i] = new_v;
      new_v->is_graph_output = true;
    }
  }
}

size_t drt_graph_count_uses(const drt_graph *g, const drt_value *v) {
  size_t c = 0;
  for (size_t i = 0; i < g->num_nodes; i++) {
    const drt_node *n = g->nodes[i];
    if (n->dead) continue;
    for (int j = 0; j < n->num_inputs; j++) c += n->inputs[j] == v;
  }
  for (size_t i = 0; i < g->num_outputs; i++) c += g->outputs[i] == v;
  return c;
}

void drt_graph_compact(drt_graph *g) {
  size_t k = 0;
  for (size_t i = 0; i < g->num_nodes; i++)
    if (!g->nodes[i]->dead) g->nodes[k++] = g->nodes[i];
  g->num_nodes = k;
  /* Keep values referenced by a live node, a graph input or output. Mark with a bitmap. */
  uint8_t *live = calloc(g->next_id ? g->next_id : 1, 1);
  if (!live) return; /* keeping extra values is harmless */
  for (size_t i = 0; i < g->num_nodes; i++) {
    drt_node *n = g->nodes[i];
    for (int j = 0; j < n->num_inputs; j++)
      if (n->inputs[j]) live[n->inputs[j]->id] = 1;
    for (int j = 0; j < n->num_outputs; j++) live[n->outputs[j]->id] = 1;
  }
  for (size_t i = 0; i < g->num_inputs; i++) live[g->inputs[i]->id] = 1;
  for (size_t i = 0; i < g->num_outputs; i++) live[g->outputs[i]->id] = 1;
  k = 0;
  for (size_t i = 0; i < g->num_values; i++)
    if (live[g->values[i]->id]) g->values[k++] = g->values[i];
  if (k != g->num_values) g->name_index_dirty = true;
  g->num_values = k;
  free(live);
}

drt_status drt_graph_topo_sort(drt_graph *g) {
  size_t n = g->num_nodes;
  if (n == 0) return DRT_OK;
  /* Kahn's algorithm over node indices; edges from producer to consumer. */
  uint32_t maxid = g->next_id;
  int64_t *node_of_id = malloc((size_t)maxid * sizeof(int64_t)); /* node id -> index */
  int64_t *indeg = calloc(n, sizeof(int64_t));
  int64_t *order = malloc(n * sizeof(int64_t));
  int64_t *head = malloc(n * sizeof(int64_t)); /* adjacency via edge lists */
  size_t num_edges = 0;
  for (size_t i = 0; i < n; i++) num_edges += (size_t)g->nodes[i]->num_inputs;
  int64_t *edge_to = malloc((num_edges + 1) * sizeof(int64_t));
  int64_t *edge_next = malloc((num_edges + 1) * sizeof(int64_t));
  drt_status st = DRT_OK;
  if (!node_of_id || !indeg || !order || !head || !edge_to || !edge_next) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "topological sort");
    goto done;
  }
  for (uint32_t i = 0; i < maxid; i++) node_of_id[i] = -1;
  for (size_t i = 0; i < n; i++) {
    node_of_id[g->nodes[i]->id] = (int64_t)i;
    head[i] = -1;
  }
  size_t e = 0;
  for (size_t i = 0; i < n; i++) {
    drt_node *nd = g->nodes[i];
    for (int j = 0; j < nd->num_inputs; j++) {
      drt_value *v = nd->inputs[j];
      if (!v || v->kind != DRT_VALUE_INTERMEDIATE) continue;
      if (!v->producer || node_of_id[v->producer->id] < 0 || v->producer->dead) {
        char d[256];
        st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: input '%s' is not produced by any node, "
                       "graph input or initializer", drt_node_describe(nd, d, sizeof d), v->name);
        goto done;
      }
      int64_t p = node_of_id[v->producer->id];
      edge_to[e] = (int64_t)i;
      edge_next[e] = head[p];
      head[p] = (int64_t)e;
      e++;
      indeg[i]++;
    }
  }
  /* Stable: among ready nodes always take the one earliest in the current order (binary
     min-heap of indices), so an already sorted graph keeps its order exactly. */
  size_t qt = 0, hn = 0;
  int64_t *hbuf = malloc(n * sizeof(int64_t));
  if (!hbuf) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "topological sort");
    goto done;
  }
#define HEAP_PUSH(v)                                              \
  do {                                                            \
    size_t c_ = hn++;                                             \
    hbuf[c_] = (v);                                               \
    while (c_ > 0 && hbuf[(c_ - 1) / 2] > hbuf[c_]) {             \
      int64_t t_ = hbuf[c_];                                      \
      hbuf[c_] = hbuf[(c_ - 1) / 2];                              \
      hbuf[(c_ - 1) / 2] = t_;                                    \
      c_ = (c_ - 1) / 2;                                          \
    }                                                             \
  } while (0)
  for (size_t i = 0; i < n; i++)
    if (indeg[i] == 0) HEAP_PUSH((int64_t)i);
  while (hn > 0) {
    int64_t u = hbuf[0];
    hbuf[0] = hbuf[--hn];
    for (size_t c = 0;;) {
      size_t l = 2 * c + 1, r = l + 1, m = c;
      if (l < hn && hbuf[l] < hbuf[m]) m = l;
      if (r < hn && hbuf[r] < hbuf[m]) m = r;
      if (m == c) break;
      int64_t t = hbuf[c];
      hbuf[c] = hbuf[m];
      hbuf[m] = t;
      c = m;
    }
    order[qt++] = u;
    for (int64_t k = head[u]; k >= 0; k = edge_next[k]) {
      int64_t w = edge_to[k];
      if (--indeg[w] == 0) HEAP_PUSH(w);
    }
  }
#undef HEAP_PUSH
  free(hbuf);
  if (qt != n) {
    for (size_t i = 0; i < n; i++) {
      if (indeg[i] > 0) {
        char d[256];
        st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "graph has a cycle through %s",
                       drt_node_describe(g->nodes[i], d, sizeof d));
        break;
      }
    }
    goto done;
  }
  drt_node **sorted = malloc(n * sizeof(drt_node *));
  if (!sorted) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "topological sort");
    goto done;
  }
  for (size_t i = 0; i < n; i++) sorted[i] = g->nodes[order[i]];
  memcpy(g->nodes, sorted, n * sizeof(drt_node *));
  free(sorted);
done:
  free(node_of_id);
  free(indeg);
  free(order);
  free(head);
  free(edge_to);
  free(edge_next);
  return st;
}

size_t drt_graph_dce(drt_graph *g) {
  /* Assumes topological order: walk backwards marking needed values. */
  uint8_t *needed = calloc(g->next_id ? g->next_id : 1, 1);
  if (!needed) return 0;
  for (size_t i = 0; i < g->num_outputs; i++) needed[g->outputs[i]->id] = 1;
  size_t removed = 0;
  for (size_t i = g->num_nodes; i-- > 0;) {
    drt_node *n = g->nodes[i];
    if (n->dead) continue;
    bool use = false;
    for (int j = 0; j < n->num_outputs; j++) use |= needed[n->outputs[j]->id] != 0;
    if (!use) {
      n->dead = true;
      removed++;
      continue;
    }
    for (int j = 0; j < n->num_inputs; j++)
      if (n->inputs[j]) needed[n->inputs[j]->id] = 1;
  }
  free(needed);
  if (removed) drt_graph_compact(g);
  return removed;
}
