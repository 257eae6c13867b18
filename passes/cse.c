/* Pass "cse" (see cse.h).
 *
 *   a = Mul(x, c1)        a = Mul(x, c1)          (c1, c2 equal constants: merged first)
 *   b = Mul(x, c2)   ->   y = Add(a, a)
 *   y = Add(a, b)
 *
 *   Transpose(Transpose(x, p), q)      -> Transpose(x, p o q), nothing when p o q is the identity
 *   Reshape|Flatten|Squeeze|Unsqueeze(Reshape|Flatten|Squeeze|Unsqueeze(x))
 *                                      -> Reshape(x, static output shape), nothing when it is x's
 *   x + 0, 0 + x, x - 0, x * 1, 1 * x, x / 1, x ^ 1, Neg(Neg(x))  -> x
 *     (only when the constant does not change x's shape or dtype; x + 0 may turn -0 into +0,
 *      an equal value)
 *
 * 1. Constants with the same dtype, shape and bytes become one value.
 * 2. Nodes are visited in topological order; a node with the same op, opset, inputs (after
 *    the replacements so far) and attributes as an earlier node is replaced by it (hash table
 *    on op and input ids, then a full comparison).
 * 3. In the same walk the cancellations and simplifications above rewrite or bypass nodes.
 * A value that is a graph output is never replaced, so output names stay stable. Dead nodes
 * are removed at the end. */
#include "passes/cse.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer.h"
#include "passes/pattern.h"

typedef struct cse_state {
  drt_graph *g;
  uint32_t num_ids;
  drt_value **remap; /* value id -> replacement, NULL */
  bool *is_output;   /* value id -> graph output */
  size_t replaced, rewritten;
} cse_state;

static uint64_t fnv(uint64_t h, const void *data, size_t n) {
  const uint8_t *p = data;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

static drt_value *resolve(const cse_state *s, drt_value *v) {
  while (v && v->id < s->num_ids && s->remap[v->id]) v = s->remap[v->id];
  return v;
}

static bool replace(cse_state *s, drt_value *old_v, drt_value *new_v) {
  if (old_v == new_v || old_v->id >= s->num_ids || s->is_output[old_v->id]) return false;
  s->remap[old_v->id] = new_v;
  s->replaced++;
  return true;
}

/* ---- 1. constants ---------------------------------------------------------------------- */

static uint64_t const_hash(const drt_value *v) {
  uint64_t h = 0xcbf29ce484222325ull;
  h = fnv(h, &v->dtype, sizeof v->dtype);
  h = fnv(h, &v->shape.rank, sizeof v->shape.rank);
  h = fnv(h, v->shape.dims, sizeof(int64_t) * (size_t)v->shape.rank);
  return fnv(h, v->data, v->nbytes);
}

static bool const_equal(const drt_value *a, const drt_value *b) {
  return a->dtype == b->dtype && drt_shape_equal(&a->shape, &b->shape) && a->nbytes == b->nbytes &&
         memcmp(a->data, b->data, a->nbytes) == 0;
}

static drt_status dedupe_constants(cse_state *s) {
  drt_graph *g = s->g;
  size_t cap = 16;
  while (cap < g->num_values * 2) cap *= 2;
  drt_value **tab = calloc(cap, sizeof *tab);
  uint64_t *hs = calloc(cap, sizeof *hs);
  if (!tab || !hs) {
    free(tab);
    free(hs);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "constant table");
  }
  for (size_t i = 0; i < g->num_values; i++) {
    drt_value *v = g->values[i];
    if (v->kind != DRT_VALUE_CONST || !v->data || !v->has_shape || s->is_output[v->id]) continue;
    uint64_t h = const_hash(v);
    size_t k = (size_t)h & (cap - 1);
    while (tab[k] && !(hs[k] == h && const_equal(tab[k], v))) k = (k + 1) & (cap - 1);
    if (tab[k]) {
      replace(s, v, tab[k]);
    } else {
      tab[k] = v;
      hs[k] = h;
    }
  }
  free(tab);
  free(hs);
  return DRT_OK;
}

/* ---- 2. nodes ------------------------------------------------------------------------------ */

static bool attr_equal(const drt_attr *a, const drt_attr *b) {
  if (strcmp(a->name, b->name) != 0 || a->type != b->type) return false;
  switch (a->type) {
    case DRT_ATTR_FLOAT: return memcmp(&a->f, &b->f, sizeof a->f) == 0;
    case DRT_ATTR_INT: return a->i == b->i;
    case DRT_ATTR_STRING: return a->s_len == b->s_len && memcmp(a->s, b->s, a->s_len) == 0;
    case DRT_ATTR_INTS:
      return a->count == b->count && (a->count == 0 || memcmp(a->ints, b->ints, (size_t)a->count * 8) == 0);
    case DRT_ATTR_FLOATS:
      return a->count == b->count && (a->count == 0 || memcmp(a->floats, b->floats, (size_t)a->count * 4) == 0);
    case DRT_ATTR_STRINGS:
      if (a->count != b->count) return false;
      for (int64_t i = 0; i < a->count; i++)
        if (strcmp(a->strings[i], b->strings[i]) != 0) return false;
      return true;
    case DRT_ATTR_TENSOR:
      return a->tensor && b->tensor && a->tensor->data && b->tensor->data && const_equal(a->tensor, b->tensor);
    default: return false; /* graphs and unknown kinds are never equal */
  }
}

static bool node_equal(const drt_node *a, const drt_node *b) {
  if (a->op != b->op || a->opset != b->opset || a->num_inputs != b->num_inputs || a->num_outputs != b->num_outputs ||
      a->num_attrs != b->num_attrs)
    return false;
  for (int i = 0; i < a->num_inputs; i++)
    if (a->inputs[i] != b->inputs[i]) return false;
  for (int i = 0; i < a->num_attrs; i++) {
    bool found = false;
    for (int j = 0; j < b->num_attrs && !found; j++)
      if (strcmp(a->attrs[i].name, b->attrs[j].name) == 0) found = attr_equal(&a->attrs[i], &b->attrs[j]);
    if (!found) return false;
  }
  for (int i = 0; i < a->num_outputs; i++)
    if (a->outputs[i]->dtype != b->outputs[i]->dtype || !drt_shape_equal(&a->outputs[i]->shape, &b->outputs[i]->shape))
      return false;
  return true;
}

static uint64_t node_hash(const drt_node *n) {
  uint64_t h = 0xcbf29ce484222325ull;
  h = fnv(h, &n->op, sizeof n->op);
  h = fnv(h, &n->num_inputs, sizeof n->num_inputs);
  for (int i = 0; i < n->num_inputs; i++) {
    uint32_t id = n->inputs[i] ? n->inputs[i]->id : UINT32_MAX;
    h = fnv(h, &id, sizeof id);
  }
  return h;
}

/* ---- 3. cancellations and simplifications ------------------------------------------------ */

/* perm of a Transpose (default: reversed dims) into p; false when malformed. */
static bool transpose_perm(const drt_node *n, int rank, int64_t *p) {
  int64_t cnt = 0;
  const int64_t *perm = drt_node_attr_ints(n, "perm", &cnt);
  if (!perm) {
    for (int i = 0; i < rank; i++) p[i] = rank - 1 - i;
    return true;
  }
  if (cnt != rank) return false;
  for (int i = 0; i < rank; i++) {
    if (perm[i] < 0 || perm[i] >= rank) return false;
    p[i] = perm[i];
  }
  return true;
}

static bool is_identity_perm(const int64_t *p, int rank) {
  for (int i = 0; i < rank; i++)
    if (p[i] != i) return false;
  return true;
}

static bool reshape_like(drt_op op) {
  return op == DRT_OP_RESHAPE || op == DRT_OP_FLATTEN || op == DRT_OP_SQUEEZE || op == DRT_OP_UNSQUEEZE;
}

/* Bypasses n: its (single) output is replaced by x. */
static bool bypass(cse_state *s, drt_node *n, drt_value *x) {
  drt_value *y = n->outputs[0];
  if (x->dtype != y->dtype || !drt_shape_equal(&x->shape, &y->shape)) return false;
  if (!replace(s, y, x)) return false;
  n->dead = true;
  return true;
}

static drt_status set_perm(drt_graph *g, drt_node *n, const int64_t *perm, int rank) {
  for (int i = 0; i < n->num_attrs; i++) {
    if (strcmp(n->attrs[i].name, "perm") != 0) continue;
    int64_t *p = drt_arena_alloc_array(g->arena, (size_t)(rank ? rank : 1), sizeof(int64_t));
    if (!p) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "transpose perm");
    memcpy(p, perm, (size_t)rank * sizeof(int64_t));
    n->attrs[i].type = DRT_ATTR_INTS;
    n->attrs[i].ints = p;
    n->attrs[i].count = rank;
    return DRT_OK;
  }
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = "perm";
  a.type = DRT_ATTR_INTS;
  a.ints = (int64_t *)perm;
  a.count = rank;
  return drt_node_add_attr(g, n, &a);
}

static drt_status simplify_transpose(cse_state *s, drt_node *n) {
  drt_value *x = n->inputs[0];
  int rank = x->shape.rank;
  int64_t q[DRT_MAX_RANK];
  if (!transpose_perm(n, rank, q)) return DRT_OK;
  drt_node *inner = drt_producer_is(x, DRT_OP_TRANSPOSE);
  if (inner && !inner->dead) {
    drt_value *xx = inner->inputs[0];
    int64_t p[DRT_MAX_RANK], c[DRT_MAX_RANK];
    if (xx->shape.rank == rank && transpose_perm(inner, rank, p)) {
      /* out[i] = mid axis q[i] = in axis p[q[i]] */
      for (int i = 0; i < rank; i++) c[i] = p[q[i]];
      if (is_identity_perm(c, rank) && bypass(s, n, xx)) {
        s->rewritten++;
        return DRT_OK;
      }
      DRT_RETURN_IF_ERROR(set_perm(s->g, n, c, rank));
      n->inputs[0] = xx;
      for (int i = 0; i < rank; i++) q[i] = c[i];
      x = xx;
      s->rewritten++;
    }
  }
  if (is_identity_perm(q, rank) && bypass(s, n, x)) s->rewritten++;
  return DRT_OK;
}

static drt_status simplify_reshape(cse_state *s, drt_node *n) {
  drt_value *y = n->outputs[0];
  drt_node *inner = drt_producer_of(n->inputs[0]);
  if (!inner || !reshape_like(inner->op)) return DRT_OK;
  drt_value *x = inner->inputs[0];
  if (!x || x->dtype != y->dtype) return DRT_OK;
  if (bypass(s, n, x)) {
    s->rewritten++;
    return DRT_OK;
  }
  for (int i = 0; i < y->shape.rank; i++)
    if (y->shape.dims[i] == 0) return DRT_OK; /* a 0 in the shape would mean "copy" */
  /* n becomes Reshape(x, static shape of y) */
  drt_shape ss = {0};
  ss.rank = 1;
  ss.dims[0] = y->shape.rank;
  drt_value *shape;
  DRT_RETURN_IF_ERROR(drt_graph_add_const(s->g, NULL, DRT_DTYPE_INT64, &ss, y->shape.dims, &shape));
  drt_value *ins[2] = {x, shape};
  drt_value *outs[1] = {y};
  char name[512];
  snprintf(name, sizeof name, "%s/merged_reshape", n->name);
  drt_node *r;
  DRT_RETURN_IF_ERROR(drt_graph_add_node(s->g, DRT_OP_RESHAPE, name, ins, 2, outs, 1, &r));
  r->opset = n->opset;
  n->dead = true;
  s->rewritten++;
  return DRT_OK;
}

/* x op c -> x for the identities listed at the top. */
static void simplify_algebra(cse_state *s, drt_node *n) {
  if (n->num_inputs != 2 || !n->inputs[0] || !n->inputs[1]) {
    if (n->op == DRT_OP_NEG) {
      drt_node *inner = drt_producer_is(n->inputs[0], DRT_OP_NEG);
      if (inner && !inner->dead && bypass(s, n, inner->inputs[0])) s->rewritten++;
    }
    return;
  }
  drt_value *a = n->inputs[0], *b = n->inputs[1];
  drt_value *x = NULL;
  switch (n->op) {
    case DRT_OP_ADD:
      if (drt_const_all(b, 0.0, 0.0)) x = a;
      else if (drt_const_all(a, 0.0, 0.0)) x = b;
      break;
    case DRT_OP_SUB:
      if (drt_const_all(b, 0.0, 0.0)) x = a;
      break;
    case DRT_OP_MUL:
      if (drt_const_all(b, 1.0, 0.0)) x = a;
      else if (drt_const_all(a, 1.0, 0.0)) x = b;
      break;
    case DRT_OP_DIV:
    case DRT_OP_POW:
      if (drt_const_all(b, 1.0, 0.0)) x = a;
      break;
    default: break;
  }
  if (x && bypass(s, n, x)) s->rewritten++;
}

drt_status drt_pass_cse(drt_graph *g, const drt_pass_ctx *ctx, bool *changed) {
  (void)ctx;
  *changed = false;
  DRT_RETURN_IF_ERROR(drt_graph_topo_sort(g));
  cse_state s;
  memset(&s, 0, sizeof s);
  s.g = g;
  s.num_ids = g->next_id;
  s.remap = calloc(s.num_ids ? s.num_ids : 1, sizeof *s.remap);
  s.is_output = calloc(s.num_ids ? s.num_ids : 1, sizeof *s.is_output);
  size_t n0 = g->num_nodes, cap = 16;
  while (cap < n0 * 2) cap *= 2;
  drt_node **tab = calloc(cap, sizeof *tab);
  uint64_t *hs = calloc(cap, sizeof *hs);
  drt_status st = DRT_OK;
  if (!s.remap || !s.is_output || !tab || !hs) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "cse of %zu nodes", n0);
    goto out;
  }
  for (size_t i = 0; i < g->num_outputs; i++) s.is_output[g->outputs[i]->id] = true;
  st = dedupe_constants(&s);
  size_t consts = s.replaced, dups = 0;
  /* new nodes (merged reshapes) are appended while walking; they need no visit */
  for (size_t i = 0; i < n0 && !st; i++) {
    drt_node *n = g->nodes[i];
    if (n->dead) continue;
    for (int j = 0; j < n->num_inputs; j++) n->inputs[j] = resolve(&s, n->inputs[j]);
    /* CSE */
    uint64_t h = node_hash(n);
    size_t k = (size_t)h & (cap - 1);
    while (tab[k] && !(hs[k] == h && node_equal(tab[k], n))) k = (k + 1) & (cap - 1);
    if (tab[k] && n->num_inputs > 0) {
      bool ok = true;
      for (int j = 0; j < n->num_outputs; j++) ok &= !s.is_output[n->outputs[j]->id];
      if (ok) {
        for (int j = 0; j < n->num_outputs; j++) replace(&s, n->outputs[j], tab[k]->outputs[j]);
        n->dead = true;
        dups++;
        continue;
      }
    } else if (!tab[k]) {
      tab[k] = n;
      hs[k] = h;
    }
    /* cancellations and simplifications */
    if (n->num_outputs != 1 || !n->num_inputs || !n->inputs[0]) continue;
    if (n->op == DRT_OP_TRANSPOSE)
      st = simplify_transpose(&s, n);
    else if (reshape_like(n->op))
      st = simplify_reshape(&s, n);
    else
      simplify_algebra(&s, n);
  }
  if (!st) {
    for (size_t i = 0; i < g->num_nodes; i++) {
      drt_node *n = g->nodes[i];
      for (int j = 0; j < n->num_inputs; j++) n->inputs[j] = resolve(&s, n->inputs[j]);
    }
    *changed = s.replaced > 0 || s.rewritten > 0;
    if (*changed) {
      drt_graph_compact(g);
      st = drt_graph_topo_sort(g); /* merged reshapes were appended; DCE needs the order */
      size_t dead = st ? 0 : drt_graph_dce(g);
      drt_log(DRT_LOG_DEBUG, "cse: %zu duplicate constants, %zu duplicate nodes, %zu rewrites, %zu dead nodes removed",
              consts, dups, s.rewritten, dead);
    }
  }
out:
  free(s.remap);
  free(s.is_output);
  free(tab);
  free(hs);
  return st;
}
