/* CFG folding (pass "cfg-fold").
 *
 *   before (batch B)                          after (inputs still batch B)
 *
 *   x[B] t[B] c[B]                            x[B] t[B]          c[B] uncond (const)
 *     \   |   /                                 \  /               Concat        <- 2B
 *      network  (constants for batch B)      latent/timestep path     |
 *         |                                  at batch B ----Concat(v,v)--+-- network at 2B
 *       eps[B]                                                          |  (batch-dependent
 *                                                                  h[2B]   constants rewritten)
 *                                                                       |
 *                                             drt.CfgCombine(h, guidance_scale)  u + w (c - u)
 *                                                                       |
 *                                             linear tail at batch B (final projection,
 *                                                                       |  unpatchify, conv_out)
 *                                                                    eps[B]
 *
 * How the batch is re-bound. The pass runs after canonicalization, when every shape is static
 * and every shape-like operand (Reshape/Expand targets, Slice bounds, Resize sizes) is a
 * constant, whether the model was exported with a fixed batch (the constants were baked in by
 * the exporter) or with a symbolic one (canonicalize folded Shape->Gather->Concat chains into
 * the same kind of constants). So one method serves both: a forward walk tracks, for every
 * value, which axis carries the batch (the batch being the outermost factor of that axis:
 * [B*H, S, D] qualifies; batch-independent values such as weights carry none), and rewrites the
 * operands that fix a batch size (a Reshape target gets its batch entry doubled, an Expand
 * target likewise, a Slice that spans the whole batch gets an open end, a batch-sized constant
 * that meets a batched value is tiled). Every op states how the batch axis moves through it
 * (Transpose permutes it, Reshape finds the output axis whose prefix product equals the input's
 * prefix product, MatMul keeps it out of the contraction, reductions and normalizations must
 * not reduce over it); an op outside these rules declines with a message naming the node.
 * Afterwards every node is re-inferred and each value must have exactly its old shape, with the
 * batch axis doubled where it is doubled: a wrong guess cannot survive silently.
 * Rebinding a symbolic batch dim before canonicalization would only cover dynamic-batch exports;
 * this covers both, and the fixtures exercise both (dit_teacher is exported with batch 2 fixed).
 *
 * Late doubling. Only the conditioning inputs named by --cfg-uncond are concatenated with their
 * unconditional value (a constant, so the prologue computes everything that depends only on it
 * once). The latent, the timestep and other batched inputs are equal in both halves, and so is
 * every value computed from them alone (patch embedding, timestep MLP, the first self-attention
 * of a DiT, the first ResBlock of a UNet): those nodes keep running at batch B, unchanged (a
 * batch statistic there is what each separate evaluation computes), and a value is tiled
 * (Concat(v, v)) where it first meets a doubled one. The guidance scale is a new float32[1]
 * graph input. The combine sits above the network's linear tail (ops that are affine in their
 * one non-constant operand, with a single consumer chain, e.g. MatMul+bias, Reshape, Transpose,
 * Einsum permutations, Conv), which then runs once at batch B: u + w (c - u) commutes with any
 * affine map. Only the standard mode moves above the tail; rescale and APG use per-sample norms
 * and cfgpp returns both predictions, so they combine at the output.
 * Inputs whose leading dim equals the latent's batch are taken as batched. */
#include "passes/cfg_fold.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/cfg_combine.h"
#include "ir/infer.h"

typedef struct tile_entry {
  drt_value *v;
  int axis;
  drt_value *tiled;
} tile_entry;

typedef struct fold {
  drt_graph *g;
  int64_t B;
  int8_t *ax;   /* per value id: axis holding the batch, -1 none */
  uint8_t *dup; /* per value id: batch B with both halves equal (not doubled yet) */
  uint32_t ax_cap;
  bool dry;     /* computing a node's output axis only: no rewrites (it stays at batch B) */
  int dup_nodes, doubled_nodes;
  drt_shape *old; /* per value id < num_old: shape before the pass */
  uint32_t num_old;
  uint8_t *tail; /* per node id < num_old: node of the linear tail */
  tile_entry *tiles;
  size_t num_tiles, cap_tiles;
  int rewrites, tiled;
} fold;

static int get_ax(const fold *f, const drt_value *v) { return v && v->id < f->ax_cap ? f->ax[v->id] : -1; }
static bool is_dup(const fold *f, const drt_value *v) { return get_ax(f, v) >= 0 && f->dup[v->id]; }

/* Records the batch axis of v (-1: none); in a dry run the value stays at batch B (dup). */
static drt_status set_ax(fold *f, const drt_value *v, int a) {
  if (v->id >= f->ax_cap) {
    uint32_t cap = f->g->next_id + 256;
    int8_t *p = realloc(f->ax, cap);
    if (!p) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "cfg-fold");
    f->ax = p;
    uint8_t *q = realloc(f->dup, cap);
    if (!q) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "cfg-fold");
    f->dup = q;
    memset(f->ax + f->ax_cap, 0xff, cap - f->ax_cap);
    memset(f->dup + f->ax_cap, 0, cap - f->ax_cap);
    f->ax_cap = cap;
  }
  f->ax[v->id] = (int8_t)a;
  f->dup[v->id] = f->dry && a >= 0;
  return DRT_OK;
}

static drt_status set_outputs(fold *f, const drt_node *n, int a) {
  for (int i = 0; i < n->num_outputs; i++) DRT_RETURN_IF_ERROR(set_ax(f, n->outputs[i], a));
  return DRT_OK;
}

#define DECLINE(n, ...) decline((n), __VA_ARGS__)

static drt_status decline(const drt_node *n, const char *fmt, ...) DRT_PRINTF(2, 3);
static drt_status decline(const drt_node *n, const char *fmt, ...) {
  char msg[512], d[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "cannot run %s at twice the batch: %s", drt_node_describe(n, d, sizeof d),
                   msg);
}

static int64_t prod(const drt_shape *s, int from, int to) {
  int64_t p = 1;
  for (int i = from; i < to; i++) p *= s->dims[i];
  return p;
}

/* ---- new constants and tiling ------------------------------------------------------------ */
static drt_status const_i64(drt_graph *g, const int64_t *vals, int n, drt_dtype dt, drt_value **out) {
  drt_shape s = {1, {n}};
  DRT_RETURN_IF_ERROR(drt_graph_add_const(g, NULL, dt, &s, NULL, out));
  drt_convert(dt, (*out)->data, DRT_DTYPE_INT64, vals, (size_t)n);
  return DRT_OK;
}

/* v concatenated with itself along axis (a constant is tiled at compile time). Cached. */
static drt_status tile_value(fold *f, drt_value *v, int axis, drt_value **out) {
  for (size_t i = 0; i < f->num_tiles; i++)
    if (f->tiles[i].v == v && f->tiles[i].axis == axis) {
      *out = f->tiles[i].tiled;
      return DRT_OK;
    }
  drt_graph *g = f->g;
  drt_shape s = v->shape;
  s.dims[axis] *= 2;
  drt_value *t = NULL;
  if (v->kind == DRT_VALUE_CONST) {
    DRT_RETURN_IF_ERROR(drt_graph_add_const(g, NULL, v->dtype, &s, NULL, &t));
    size_t chunk = (size_t)prod(&v->shape, axis, v->shape.rank) * drt_dtype_size(v->dtype);
    int64_t outer = prod(&v->shape, 0, axis);
    for (int64_t o = 0; o < outer; o++) {
      memcpy((char *)t->data + (size_t)(2 * o) * chunk, (char *)v->data + (size_t)o * chunk, chunk);
      memcpy((char *)t->data + (size_t)(2 * o + 1) * chunk, (char *)v->data + (size_t)o * chunk, chunk);
    }
  } else {
    t = drt_graph_add_value(g, NULL, v->dtype, &v->shape); /* old-style shape; re-inferred later */
    if (!t) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "cfg-fold");
    drt_value *ins[2] = {v, v};
    drt_node *cn;
    DRT_RETURN_IF_ERROR(drt_graph_add_node(g, DRT_OP_CONCAT, NULL, ins, 2, &t, 1, &cn));
    drt_attr a = {.name = "axis", .type = DRT_ATTR_INT, .i = axis};
    DRT_RETURN_IF_ERROR(drt_node_add_attr(g, cn, &a));
  }
  DRT_RETURN_IF_ERROR(set_ax(f, t, axis));
  if (f->num_tiles == f->cap_tiles) {
    size_t cap = f->cap_tiles ? 2 * f->cap_tiles : 16;
    tile_entry *p = realloc(f->tiles, cap * sizeof *p);
    if (!p) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "cfg-fold");
    f->tiles = p;
    f->cap_tiles = cap;
  }
  f->tiles[f->num_tiles++] = (tile_entry){v, axis, t};
  f->tiled++;
  *out = t;
  return DRT_OK;
}

/* A batch-independent operand whose dim `axis` has the batched size: replace it by its tiling. */
static drt_status tile_input(fold *f, drt_node *n, int i, int axis) {
  if (f->dry) return DRT_OK;
  drt_value *t = NULL;
  DRT_RETURN_IF_ERROR(tile_value(f, n->inputs[i], axis, &t));
  n->inputs[i] = t;
  return DRT_OK;
}

/* Replaces input i (a shape-like integer constant) by a new constant. */
static drt_status replace_const(fold *f, drt_node *n, int i, const int64_t *vals, int count) {
  if (f->dry) return DRT_OK;
  drt_value *c;
  drt_dtype dt = n->inputs[i] ? n->inputs[i]->dtype : DRT_DTYPE_INT64;
  DRT_RETURN_IF_ERROR(const_i64(f->g, vals, count, dt, &c));
  n->inputs[i] = c;
  f->rewrites++;
  return DRT_OK;
}

static drt_status read_ints(const drt_node *n, int i, int64_t *out, int64_t max, int64_t *count) {
  drt_value *v = drt_node_input(n, i);
  if (!v) {
    *count = 0;
    return DRT_OK;
  }
  drt_status s = drt_value_const_ints(v, out, max, count);
  if (s) {
    drt_status_free(s);
    return DECLINE(n, "input %d '%s' is not a small integer constant", i, v->name);
  }
  return DRT_OK;
}

/* ---- rules ----------------------------------------------------------------------------- */
/* Numpy broadcasting over inputs [first, first + count): all batched inputs must map to one
 * output axis with their full size; batch-independent ones with that size there are tiled. */
static drt_status rule_broadcast(fold *f, drt_node *n, int first, int count, int *oa) {
  const drt_shape *o = &n->outputs[0]->shape;
  int r = o->rank, axis = -1;
  for (int i = first; i < first + count && i < n->num_inputs; i++) {
    drt_value *v = n->inputs[i];
    int a = get_ax(f, v);
    if (a < 0) continue;
    int m = a + r - v->shape.rank;
    if (axis >= 0 && m != axis)
      return DECLINE(n, "inputs carry the batch on different axes (%d and %d)", axis, m);
    if (v->shape.dims[a] != o->dims[m])
      return DECLINE(n, "input %d '%s' broadcasts its batch axis (%" PRId64 " to %" PRId64 ")", i, v->name,
                     v->shape.dims[a], o->dims[m]);
    axis = m;
  }
  for (int i = first; i < first + count && i < n->num_inputs; i++) {
    drt_value *v = n->inputs[i];
    if (!v || get_ax(f, v) >= 0) continue;
    int j = axis - (r - v->shape.rank);
    if (j < 0 || v->shape.dims[j] == 1) continue;
    if (v->shape.dims[j] != o->dims[axis])
      return DECLINE(n, "input %d '%s' does not broadcast along the batch axis", i, v->name);
    DRT_RETURN_IF_ERROR(tile_input(f, n, i, j));
  }
  *oa = axis;
  return DRT_OK;
}

/* Only input 0 may be batched (data); everything else is batch-independent. */
static drt_status only_data_batched(fold *f, const drt_node *n, int *a) {
  for (int i = 1; i < n->num_inputs; i++)
    if (get_ax(f, n->inputs[i]) >= 0)
      return DECLINE(n, "input %d '%s' (a parameter) depends on the batch", i, n->inputs[i]->name);
  *a = get_ax(f, n->inputs[0]);
  if (*a < 0) return DECLINE(n, "only a parameter input depends on the batch");
  return DRT_OK;
}

/* Output axis of a reshape-like op: the axis whose prefix product equals the input's prefix
 * product and whose size holds the batch as its outer factor. */
static drt_status reshape_axis(const fold *f, const drt_node *n, const drt_shape *in, int a, const drt_shape *out,
                               int *j) {
  int64_t P = prod(in, 0, a), need = f->B;
  int best = -1;
  for (int k = 0; k < out->rank; k++) {
    if (prod(out, 0, k) != P) continue;
    if (out->dims[k] < need || out->dims[k] % need != 0) continue;
    if (best < 0 || (out->dims[k] == in->dims[a] && out->dims[best] != in->dims[a])) best = k;
  }
  if (best < 0) {
    char a1[128], a2[128];
    return DECLINE(n, "the batch (axis %d of %s) does not map onto one axis of %s", a, drt_shape_str(in, a1, sizeof a1),
                   drt_shape_str(out, a2, sizeof a2));
  }
  *j = best;
  return DRT_OK;
}

static drt_status rule_reshape(fold *f, drt_node *n, int a, int *oa) {
  const drt_shape *out = &n->outputs[0]->shape;
  if (drt_shape_numel(out) <= 0) return DECLINE(n, "empty output");
  DRT_RETURN_IF_ERROR(reshape_axis(f, n, &n->inputs[0]->shape, a, out, oa));
  if (n->op == DRT_OP_RESHAPE) {
    int64_t dims[DRT_MAX_RANK];
    for (int k = 0; k < out->rank; k++) dims[k] = out->dims[k] * (k == *oa ? 2 : 1);
    DRT_RETURN_IF_ERROR(replace_const(f, n, 1, dims, out->rank));
  }
  return DRT_OK;
}

/* Sorted, normalized axes of Squeeze/Unsqueeze (input 1 from opset 13, else the attribute). */
static drt_status squeeze_axes(const drt_node *n, int rank, int64_t *axes, int64_t *count) {
  if (n->num_inputs > 1 && n->inputs[1]) {
    DRT_RETURN_IF_ERROR(read_ints(n, 1, axes, DRT_MAX_RANK, count));
  } else {
    int64_t c;
    const int64_t *p = drt_node_attr_ints(n, "axes", &c);
    if (c > DRT_MAX_RANK) return DECLINE(n, "too many axes");
    for (int64_t i = 0; i < c; i++) axes[i] = p[i];
    *count = c;
  }
  for (int64_t i = 0; i < *count; i++) {
    if (axes[i] < 0) axes[i] += rank;
    if (axes[i] < 0 || axes[i] >= rank) return DECLINE(n, "axis out of range");
  }
  return DRT_OK;
}

static drt_status rule_matmul(fold *f, drt_node *n, int *oa) {
  drt_value *A = n->inputs[0], *Bv = n->inputs[1];
  int aa = get_ax(f, A), ab = get_ax(f, Bv), ra = A->shape.rank, rb = Bv->shape.rank;
  int ro = n->outputs[0]->shape.rank, axis = -1;
  if ((aa >= 0 && ra < 2) || (ab >= 0 && rb < 2)) return DECLINE(n, "a batched operand is a vector");
  if (aa >= 0) {
    if (aa == ra - 1) return DECLINE(n, "the batch is in the contracted dimension of input 0");
    axis = aa == ra - 2 ? ro - 2 : aa + ro - ra;
  }
  if (ab >= 0) {
    if (ab == rb - 2) return DECLINE(n, "the batch is in the contracted dimension of input 1");
    int m = ab == rb - 1 ? ro - 1 : ab + ro - rb;
    if (axis >= 0 && m != axis) return DECLINE(n, "the operands carry the batch on different axes");
    if (axis >= 0 && m >= ro - 2) return DECLINE(n, "both operands carry the batch in their matrix dims");
    axis = m;
  }
  const drt_shape *o = &n->outputs[0]->shape;
  if ((aa >= 0 && A->shape.dims[aa] != o->dims[axis]) || (ab >= 0 && Bv->shape.dims[ab] != o->dims[axis]))
    return DECLINE(n, "a batched operand broadcasts its batch axis");
  if (axis < ro - 2) {
    /* a batch dim of the product: the other operand broadcasts there or must be tiled */
    for (int i = 0; i < 2; i++) {
      drt_value *v = n->inputs[i];
      if (get_ax(f, v) >= 0 || v->shape.rank < 2) continue;
      int j = axis - (ro - v->shape.rank);
      if (j < 0 || j >= v->shape.rank - 2 || v->shape.dims[j] == 1) continue;
      if (v->shape.dims[j] != o->dims[axis]) return DECLINE(n, "input %d does not broadcast along the batch", i);
      DRT_RETURN_IF_ERROR(tile_input(f, n, i, j));
    }
  }
  *oa = axis;
  return DRT_OK;
}

/* Einsum "ab,bc->ac": the batch letter must reach the output; other operands holding it are tiled. */
static drt_status rule_einsum(fold *f, drt_node *n, int *oa) {
  const char *eq = drt_node_attr_string(n, "equation", "");
  char buf[256], terms[16][DRT_MAX_RANK + 1], rhs[DRT_MAX_RANK + 1];
  size_t k = 0;
  for (const char *p = eq; *p && k + 1 < sizeof buf; p++)
    if (*p != ' ') buf[k++] = *p;
  buf[k] = 0;
  char *arrow = strstr(buf, "->");
  if (!arrow || strchr(buf, '.')) return DECLINE(n, "equation '%s' has no explicit output or uses an ellipsis", eq);
  *arrow = 0;
  if (strlen(arrow + 2) > DRT_MAX_RANK) return DECLINE(n, "equation '%s' is too long", eq);
  strcpy(rhs, arrow + 2);
  int nt = 0;
  for (char *t = buf;; nt++) {
    char *comma = strchr(t, ',');
    if (comma) *comma = 0;
    if (nt >= 16 || strlen(t) > DRT_MAX_RANK) return DECLINE(n, "equation '%s' is too long", eq);
    strcpy(terms[nt], t);
    if (!comma) {
      nt++;
      break;
    }
    t = comma + 1;
  }
  if (nt != n->num_inputs) return DECLINE(n, "equation '%s' does not match the %d inputs", eq, n->num_inputs);
  char letter = 0;
  for (int i = 0; i < nt; i++) {
    int a = get_ax(f, n->inputs[i]);
    if (a < 0) continue;
    if ((int)strlen(terms[i]) != n->inputs[i]->shape.rank) return DECLINE(n, "equation '%s' does not match ranks", eq);
    char c = terms[i][a];
    if (letter && c != letter) return DECLINE(n, "operands carry the batch under different letters");
    if (strchr(terms[i], c) != strrchr(terms[i], c)) return DECLINE(n, "the batch letter repeats in one operand");
    letter = c;
  }
  const char *pos = strchr(rhs, letter);
  if (!pos) return DECLINE(n, "equation '%s' sums over the batch letter '%c'", eq, letter);
  for (int i = 0; i < nt; i++) {
    if (get_ax(f, n->inputs[i]) >= 0) continue;
    const char *q = strchr(terms[i], letter);
    if (!q) continue;
    int j = (int)(q - terms[i]);
    if (n->inputs[i]->shape.dims[j] == 1) return DECLINE(n, "input %d broadcasts along the batch letter", i);
    DRT_RETURN_IF_ERROR(tile_input(f, n, i, j));
  }
  *oa = (int)(pos - rhs);
  return DRT_OK;
}

static drt_status rule_slice(fold *f, drt_node *n, int a, int *oa) {
  const drt_shape *in = &n->inputs[0]->shape;
  int64_t starts[DRT_MAX_RANK], ends[DRT_MAX_RANK], axes[DRT_MAX_RANK], steps[DRT_MAX_RANK], ns, ne, na, nst;
  bool attrs = n->opset < 10;
  if (attrs) {
    const int64_t *p;
    p = drt_node_attr_ints(n, "starts", &ns);
    if (ns > DRT_MAX_RANK) return DECLINE(n, "too many axes");
    memcpy(starts, p, (size_t)ns * 8);
    p = drt_node_attr_ints(n, "ends", &ne);
    if (ne != ns) return DECLINE(n, "starts and ends differ in length");
    memcpy(ends, p, (size_t)ne * 8);
    p = drt_node_attr_ints(n, "axes", &na);
    if (na > DRT_MAX_RANK) return DECLINE(n, "too many axes");
    if (na) memcpy(axes, p, (size_t)na * 8);
    nst = 0;
  } else {
    DRT_RETURN_IF_ERROR(read_ints(n, 1, starts, DRT_MAX_RANK, &ns));
    DRT_RETURN_IF_ERROR(read_ints(n, 2, ends, DRT_MAX_RANK, &ne));
    DRT_RETURN_IF_ERROR(read_ints(n, 3, axes, DRT_MAX_RANK, &na));
    DRT_RETURN_IF_ERROR(read_ints(n, 4, steps, DRT_MAX_RANK, &nst));
    if (ne != ns) return DECLINE(n, "starts and ends differ in length");
  }
  for (int64_t k = 0; k < ns; k++) {
    int64_t ax = na ? axes[k] : k;
    if (ax < 0) ax += in->rank;
    if (ax != a) continue;
    int64_t d = in->dims[a], s = starts[k], e = ends[k], st = nst ? steps[k] : 1;
    if (s < 0) s += d;
    if (e < 0) e += d;
    if (st != 1 || s > 0 || e < d) return DECLINE(n, "it slices a part of the batch axis");
    int64_t big = (n->inputs[0] && !attrs && n->inputs[2]->dtype == DRT_DTYPE_INT32) ? INT32_MAX : INT64_MAX;
    if (attrs && !f->dry) {
      for (int i = 0; i < n->num_attrs; i++)
        if (strcmp(n->attrs[i].name, "ends") == 0) n->attrs[i].ints[k] = big;
      f->rewrites++;
    } else if (!attrs) {
      ends[k] = big;
      DRT_RETURN_IF_ERROR(replace_const(f, n, 2, ends, (int)ne));
    }
  }
  *oa = a;
  return DRT_OK;
}

/* Axes a Reduce* node reduces (all = true when it reduces every axis); false if it is a no-op. */
static drt_status reduce_axes(const drt_node *n, int rank, bool *reduced, bool *noop) {
  int64_t axes[DRT_MAX_RANK], c = 0;
  *noop = false;
  if (n->num_inputs > 1 && n->inputs[1]) {
    DRT_RETURN_IF_ERROR(read_ints(n, 1, axes, DRT_MAX_RANK, &c));
  } else {
    const int64_t *p = drt_node_attr_ints(n, "axes", &c);
    if (c > DRT_MAX_RANK) return DECLINE(n, "too many axes");
    for (int64_t i = 0; i < c; i++) axes[i] = p[i];
  }
  for (int i = 0; i < rank; i++) reduced[i] = c == 0;
  if (c == 0 && drt_node_attr_int(n, "noop_with_empty_axes", 0)) {
    *noop = true;
    for (int i = 0; i < rank; i++) reduced[i] = false;
  }
  for (int64_t i = 0; i < c; i++) {
    int64_t x = axes[i] < 0 ? axes[i] + rank : axes[i];
    if (x < 0 || x >= rank) return DECLINE(n, "axis out of range");
    reduced[x] = true;
  }
  return DRT_OK;
}

/* The batch axis of the outputs of n, rewriting operands where needed. */
static drt_status rule_node(fold *f, drt_node *n) {
  bool any = false;
  for (int i = 0; i < n->num_inputs; i++) any |= get_ax(f, n->inputs[i]) >= 0;
  if (!any) return set_outputs(f, n, -1);
  const drt_op_info *info = drt_op_get_info(n->op);
  const drt_shape *in0 = n->inputs[0] ? &n->inputs[0]->shape : NULL;
  int a = get_ax(f, n->inputs[0]), oa = -1, r = in0 ? in0->rank : 0;
  switch (n->op) {
    case DRT_OP_CAST_LIKE:
      return set_outputs(f, n, a);
    case DRT_OP_MATMUL:
      DRT_RETURN_IF_ERROR(rule_matmul(f, n, &oa));
      return set_outputs(f, n, oa);
    case DRT_OP_GEMM: {
      if (get_ax(f, n->inputs[1]) >= 0) return DECLINE(n, "input 1 (weights) depends on the batch");
      if (a < 0) return DECLINE(n, "only the bias depends on the batch");
      int want = drt_node_attr_int(n, "transA", 0) ? 1 : 0;
      if (a != want) return DECLINE(n, "the batch is in the contracted dimension");
      drt_value *c = drt_node_input(n, 2);
      if (c && get_ax(f, c) >= 0) {
        if (c->shape.rank != 2 || get_ax(f, c) != 0) return DECLINE(n, "the bias carries the batch on its columns");
      } else if (c && c->shape.rank == 2 && c->shape.dims[0] != 1) {
        DRT_RETURN_IF_ERROR(tile_input(f, n, 2, 0));
      }
      return set_outputs(f, n, 0);
    }
    case DRT_OP_EINSUM:
      DRT_RETURN_IF_ERROR(rule_einsum(f, n, &oa));
      return set_outputs(f, n, oa);
    case DRT_OP_CONV:
    case DRT_OP_CONV_TRANSPOSE:
    case DRT_OP_AVERAGE_POOL:
    case DRT_OP_GLOBAL_AVERAGE_POOL:
    case DRT_OP_GLOBAL_MAX_POOL:
    case DRT_OP_INSTANCE_NORM:
    case DRT_OP_GROUP_NORM:
    case DRT_OP_BATCH_NORM:
    case DRT_OP_DEPTH_TO_SPACE:
    case DRT_OP_SPACE_TO_DEPTH:
    case DRT_OP_MAX_POOL:
      DRT_RETURN_IF_ERROR(only_data_batched(f, n, &a));
      if (a != 0) return DECLINE(n, "the batch must be axis 0, got axis %d", a);
      if (n->op == DRT_OP_MAX_POOL && n->num_outputs > 1 && drt_graph_count_uses(f->g, n->outputs[1]) > 0)
        return DECLINE(n, "its indices output is used (indices count across the batch)");
      if (n->op == DRT_OP_BATCH_NORM && n->num_outputs > 1)
        for (int i = 1; i < n->num_outputs; i++)
          if (drt_graph_count_uses(f->g, n->outputs[i]) > 0) return DECLINE(n, "training-mode statistics are used");
      return set_outputs(f, n, 0);
    case DRT_OP_RESIZE:
    case DRT_OP_UPSAMPLE: {
      DRT_RETURN_IF_ERROR(only_data_batched(f, n, &a));
      if (drt_node_attr(n, "axes")) return DECLINE(n, "the axes attribute is not handled");
      int si = n->op == DRT_OP_RESIZE ? (n->opset >= 11 ? 2 : 1) : 1;
      drt_value *sc = drt_node_input(n, si);
      if (sc && drt_shape_numel(&sc->shape) > 0) {
        if (sc->kind != DRT_VALUE_CONST || drt_shape_numel(&sc->shape) != r)
          return DECLINE(n, "scales are not a constant per axis");
        if (drt_load_f64(sc->dtype, sc->data, (size_t)a) != 1.0) return DECLINE(n, "it resizes the batch axis");
      }
      drt_value *sz = n->op == DRT_OP_RESIZE ? drt_node_input(n, 3) : NULL;
      if (sz && drt_shape_numel(&sz->shape) > 0) {
        int64_t sizes[DRT_MAX_RANK], c;
        DRT_RETURN_IF_ERROR(read_ints(n, 3, sizes, DRT_MAX_RANK, &c));
        if (c != r || sizes[a] != in0->dims[a]) return DECLINE(n, "it resizes the batch axis");
        sizes[a] *= 2;
        DRT_RETURN_IF_ERROR(replace_const(f, n, 3, sizes, (int)c));
      }
      return set_outputs(f, n, a);
    }
    case DRT_OP_LAYER_NORM:
    case DRT_OP_RMS_NORM: {
      DRT_RETURN_IF_ERROR(only_data_batched(f, n, &a));
      int axis;
      DRT_RETURN_IF_ERROR(drt_normalize_axis(drt_node_attr_int(n, "axis", -1), r, &axis));
      if (a >= axis) return DECLINE(n, "it normalizes over the batch axis");
      return set_outputs(f, n, a);
    }
    case DRT_OP_SOFTMAX:
    case DRT_OP_LOG_SOFTMAX: {
      int axis;
      DRT_RETURN_IF_ERROR(drt_normalize_axis(drt_node_attr_int(n, "axis", n->opset < 13 ? 1 : -1), r, &axis));
      if (n->opset < 13 ? a >= axis : a == axis) return DECLINE(n, "it normalizes over the batch axis");
      return set_outputs(f, n, a);
    }
    case DRT_OP_REDUCE_MEAN:
    case DRT_OP_REDUCE_SUM:
    case DRT_OP_REDUCE_MAX:
    case DRT_OP_REDUCE_MIN:
    case DRT_OP_REDUCE_PROD:
    case DRT_OP_REDUCE_L1:
    case DRT_OP_REDUCE_L2:
    case DRT_OP_REDUCE_SUM_SQUARE:
    case DRT_OP_REDUCE_LOG_SUM:
    case DRT_OP_REDUCE_LOG_SUM_EXP: {
      DRT_RETURN_IF_ERROR(only_data_batched(f, n, &a));
      bool red[DRT_MAX_RANK], noop;
      DRT_RETURN_IF_ERROR(reduce_axes(n, r, red, &noop));
      if (red[a]) return DECLINE(n, "it reduces over the batch axis");
      oa = a;
      if (!drt_node_attr_int(n, "keepdims", 1))
        for (int i = 0; i < a; i++) oa -= red[i];
      return set_outputs(f, n, oa);
    }
    case DRT_OP_ARGMAX:
    case DRT_OP_ARGMIN: {
      int axis;
      DRT_RETURN_IF_ERROR(drt_normalize_axis(drt_node_attr_int(n, "axis", 0), r, &axis));
      if (axis == a) return DECLINE(n, "it reduces over the batch axis");
      oa = (!drt_node_attr_int(n, "keepdims", 1) && axis < a) ? a - 1 : a;
      return set_outputs(f, n, oa);
    }
    case DRT_OP_CUMSUM: {
      DRT_RETURN_IF_ERROR(only_data_batched(f, n, &a));
      int64_t ax, c;
      DRT_RETURN_IF_ERROR(read_ints(n, 1, &ax, 1, &c));
      if (c != 1 || (ax < 0 ? ax + r : ax) == a) return DECLINE(n, "it accumulates along the batch axis");
      return set_outputs(f, n, a);
    }
    case DRT_OP_RESHAPE:
    case DRT_OP_FLATTEN:
      DRT_RETURN_IF_ERROR(only_data_batched(f, n, &a));
      DRT_RETURN_IF_ERROR(rule_reshape(f, n, a, &oa));
      return set_outputs(f, n, oa);
    case DRT_OP_TRANSPOSE: {
      int64_t cnt;
      const int64_t *perm = drt_node_attr_ints(n, "perm", &cnt);
      oa = -1;
      for (int i = 0; i < r; i++)
        if ((cnt ? perm[i] : r - 1 - i) == a) oa = i;
      if (oa < 0) return DECLINE(n, "bad perm");
      return set_outputs(f, n, oa);
    }
    case DRT_OP_SQUEEZE:
    case DRT_OP_UNSQUEEZE: {
      DRT_RETURN_IF_ERROR(only_data_batched(f, n, &a));
      int64_t axes[DRT_MAX_RANK], c;
      int orank = n->outputs[0]->shape.rank;
      DRT_RETURN_IF_ERROR(squeeze_axes(n, n->op == DRT_OP_SQUEEZE ? r : orank, axes, &c));
      if (n->op == DRT_OP_SQUEEZE) {
        bool sq[DRT_MAX_RANK] = {false};
        if (c == 0)
          for (int i = 0; i < r; i++) sq[i] = in0->dims[i] == 1;
        for (int64_t i = 0; i < c; i++) sq[axes[i]] = true;
        if (sq[a]) return DECLINE(n, "it squeezes the batch axis");
        oa = a;
        for (int i = 0; i < a; i++) oa -= sq[i];
      } else {
        bool ins[DRT_MAX_RANK] = {false};
        for (int64_t i = 0; i < c; i++) ins[axes[i]] = true;
        int k = -1;
        for (int i = 0; i < orank; i++) {
          if (ins[i]) continue;
          if (++k == a) {
            oa = i;
            break;
          }
        }
        if (oa < 0) return DECLINE(n, "bad axes");
      }
      return set_outputs(f, n, oa);
    }
    case DRT_OP_CONCAT: {
      int axis;
      DRT_RETURN_IF_ERROR(drt_normalize_axis(drt_node_attr_int(n, "axis", 0), r, &axis));
      for (int i = 0; i < n->num_inputs; i++) {
        int ai = get_ax(f, n->inputs[i]);
        if (ai < 0) continue;
        if (oa >= 0 && ai != oa) return DECLINE(n, "inputs carry the batch on different axes");
        oa = ai;
      }
      if (oa == axis) return DECLINE(n, "it concatenates along the batch axis");
      for (int i = 0; i < n->num_inputs; i++)
        if (n->inputs[i] && get_ax(f, n->inputs[i]) < 0) DRT_RETURN_IF_ERROR(tile_input(f, n, i, oa));
      return set_outputs(f, n, oa);
    }
    case DRT_OP_SPLIT: {
      DRT_RETURN_IF_ERROR(only_data_batched(f, n, &a));
      int axis;
      DRT_RETURN_IF_ERROR(drt_normalize_axis(drt_node_attr_int(n, "axis", 0), r, &axis));
      if (axis == a) return DECLINE(n, "it splits the batch axis");
      return set_outputs(f, n, a);
    }
    case DRT_OP_SLICE:
      DRT_RETURN_IF_ERROR(only_data_batched(f, n, &a));
      DRT_RETURN_IF_ERROR(rule_slice(f, n, a, &oa));
      return set_outputs(f, n, oa);
    case DRT_OP_GATHER: {
      int axis, ai = get_ax(f, n->inputs[1]);
      DRT_RETURN_IF_ERROR(drt_normalize_axis(drt_node_attr_int(n, "axis", 0), r, &axis));
      if (a >= 0 && ai >= 0) return DECLINE(n, "both data and indices depend on the batch");
      if (a >= 0) {
        if (a == axis) return DECLINE(n, "it gathers along the batch axis");
        oa = a < axis ? a : a - 1 + n->inputs[1]->shape.rank;
      } else {
        oa = axis + ai;
      }
      return set_outputs(f, n, oa);
    }
    case DRT_OP_EXPAND: {
      DRT_RETURN_IF_ERROR(only_data_batched(f, n, &a));
      const drt_shape *o = &n->outputs[0]->shape;
      oa = a + o->rank - r;
      if (in0->dims[a] != o->dims[oa]) return DECLINE(n, "it broadcasts the batch axis");
      int64_t dims[DRT_MAX_RANK];
      for (int k = 0; k < o->rank; k++) dims[k] = o->dims[k] * (k == oa ? 2 : 1);
      DRT_RETURN_IF_ERROR(replace_const(f, n, 1, dims, o->rank));
      return set_outputs(f, n, oa);
    }
    case DRT_OP_TILE: {
      DRT_RETURN_IF_ERROR(only_data_batched(f, n, &a));
      int64_t rep[DRT_MAX_RANK], c;
      DRT_RETURN_IF_ERROR(read_ints(n, 1, rep, DRT_MAX_RANK, &c));
      if (c != r || rep[a] != 1) return DECLINE(n, "it repeats the batch axis");
      return set_outputs(f, n, a);
    }
    case DRT_OP_PAD: {
      DRT_RETURN_IF_ERROR(only_data_batched(f, n, &a));
      int64_t pads[2 * DRT_MAX_RANK], axes[DRT_MAX_RANK], c = 0, na = 0;
      if (n->opset < 11) {
        const int64_t *p = drt_node_attr_ints(n, "pads", &c);
        if (c > 2 * DRT_MAX_RANK) return DECLINE(n, "bad pads");
        memcpy(pads, p, (size_t)c * 8);
      } else {
        DRT_RETURN_IF_ERROR(read_ints(n, 1, pads, 2 * DRT_MAX_RANK, &c));
        DRT_RETURN_IF_ERROR(read_ints(n, 3, axes, DRT_MAX_RANK, &na));
      }
      int64_t m = c / 2;
      for (int64_t k = 0; k < m; k++) {
        int64_t x = na ? (axes[k] < 0 ? axes[k] + r : axes[k]) : k;
        if (x == a && (pads[k] != 0 || pads[k + m] != 0)) return DECLINE(n, "it pads the batch axis");
      }
      return set_outputs(f, n, a);
    }
    case DRT_OP_ATTENTION: {
      /* ONNX Attention (opset 23): Q, K, V [B, S, H*D] or [B, H, S, D], mask broadcasting to
         [B, H, Sq, Skv], past key/value [B, H, S, D]: the batch is axis 0 everywhere */
      const int64_t bdim = in0->dims[0];
      for (int i = 0; i < n->num_inputs; i++) {
        drt_value *v = n->inputs[i];
        if (!v) continue;
        int ai = get_ax(f, v);
        if (ai > 0) return DECLINE(n, "input %d carries the batch on axis %d, not 0", i, ai);
        if (i == 6 && ai >= 0) return DECLINE(n, "the key lengths depend on the batch");
        if (ai == 0 || i == 6) continue;
        bool mask = i == 3;
        if (mask ? (v->shape.rank == 4 && v->shape.dims[0] != 1) : (v->shape.rank >= 3)) {
          if (v->shape.dims[0] != bdim) return DECLINE(n, "input %d does not match the batch", i);
          DRT_RETURN_IF_ERROR(tile_input(f, n, i, 0));
        }
      }
      if (get_ax(f, n->inputs[0]) != 0) return DECLINE(n, "the query does not depend on the batch");
      return set_outputs(f, n, 0);
    }
    case DRT_OP_TRILU:
      DRT_RETURN_IF_ERROR(only_data_batched(f, n, &a));
      if (a >= r - 2) return DECLINE(n, "the batch is in the matrix dims");
      return set_outputs(f, n, a);
    default:
      break;
  }
  if (info->fusion == DRT_FUSION_ELEMWISE) {
    if (a < 0) return DECLINE(n, "only a parameter input depends on the batch");
    for (int i = 1; i < n->num_inputs; i++)
      if (get_ax(f, n->inputs[i]) >= 0) return DECLINE(n, "input %d depends on the batch", i);
    return set_outputs(f, n, a);
  }
  if (info->fusion == DRT_FUSION_BROADCAST) {
    DRT_RETURN_IF_ERROR(rule_broadcast(f, n, 0, n->num_inputs, &oa));
    return set_outputs(f, n, oa);
  }
  return DECLINE(n, "no batch rule for op %s", drt_op_name(n->op));
}

/* A node whose batched inputs are all dup (they depend on the latent and timestep alone, so both
 * halves are equal) keeps running at batch B: only its output axis is derived (a rule that
 * declines then just means the outputs carry no batch axis: the node computes what the
 * unfolded model computes). Once a node also reads a doubled value, its dup inputs are tiled
 * (Concat(v, v)) and it runs at 2B with its operands rewritten. */
static drt_status track_node(fold *f, drt_node *n) {
  bool doubled = false, dup = false;
  for (int i = 0; i < n->num_inputs; i++) {
    if (get_ax(f, n->inputs[i]) < 0) continue;
    if (is_dup(f, n->inputs[i])) dup = true;
    else doubled = true;
  }
  if (!doubled && dup) {
    f->dry = true;
    drt_status st = rule_node(f, n);
    f->dry = false;
    f->dup_nodes++;
    if (st) {
      drt_log(DRT_LOG_DEBUG, "cfg-fold: %s (it runs at batch %" PRId64 ")", drt_status_message(st), f->B);
      drt_status_free(st);
      return set_outputs(f, n, -1);
    }
    return DRT_OK;
  }
  if (doubled) {
    f->doubled_nodes++;
    for (int i = 0; i < n->num_inputs; i++)
      if (is_dup(f, n->inputs[i])) DRT_RETURN_IF_ERROR(tile_input(f, n, i, get_ax(f, n->inputs[i])));
  }
  return rule_node(f, n);
}

/* ---- the linear tail ----------------------------------------------------------------------- */
static bool is_const(const drt_value *v) { return !v || v->kind == DRT_VALUE_CONST; }

static bool wide_or_half(drt_dtype t) {
  return t == DRT_DTYPE_FLOAT32 || t == DRT_DTYPE_FLOAT64 || t == DRT_DTYPE_FLOAT16 || t == DRT_DTYPE_BFLOAT16;
}

/* If n is affine in exactly one non-constant input, returns its index, else -1. */
static int affine_input(const drt_node *n) {
  int data = -1;
  for (int i = 0; i < n->num_inputs; i++) {
    if (is_const(n->inputs[i])) continue;
    if (data >= 0) return -1;
    data = i;
  }
  if (data < 0 || n->num_outputs != 1) return -1;
  switch (n->op) {
    case DRT_OP_RESHAPE:
    case DRT_OP_TRANSPOSE:
    case DRT_OP_SQUEEZE:
    case DRT_OP_UNSQUEEZE:
    case DRT_OP_FLATTEN:
    case DRT_OP_DEPTH_TO_SPACE:
    case DRT_OP_SPACE_TO_DEPTH:
    case DRT_OP_IDENTITY:
    case DRT_OP_NEG:
    case DRT_OP_SLICE:
      return data == 0 ? data : -1;
    case DRT_OP_EINSUM:
      return n->num_inputs == 1 ? data : -1;
    case DRT_OP_ADD:
    case DRT_OP_SUB:
    case DRT_OP_MUL:
    case DRT_OP_MATMUL:
      return data;
    case DRT_OP_DIV:
    case DRT_OP_CONV:
    case DRT_OP_CONV_TRANSPOSE:
    case DRT_OP_GEMM:
      return data == 0 ? data : -1;
    case DRT_OP_CAST:
      /* a float -> float Cast (a half model's output, passes/half_promote.h) is affine up to its
         rounding: combining before it rounds once instead of rounding both predictions */
      return data == 0 && wide_or_half(n->inputs[0]->dtype) && wide_or_half(n->outputs[0]->dtype) ? 0 : -1;
    default:
      return -1;
  }
}

/* Marks the tail ending at the prediction; returns its input (the value to combine). The
 * non-linear modes take float Casts only (rounding commutes with any combine up to itself). */
static drt_value *find_tail(fold *f, drt_value *pred, bool casts_only, int *len) {
  drt_value *v = pred;
  *len = 0;
  for (;;) {
    drt_node *p = v->producer;
    if (!p || v->kind != DRT_VALUE_INTERMEDIATE) break;
    int d = affine_input(p);
    if (d < 0 || (casts_only && p->op != DRT_OP_CAST)) break;
    drt_value *x = p->inputs[d];
    if (x->kind != DRT_VALUE_INTERMEDIATE || x->is_graph_output || drt_graph_count_uses(f->g, x) != 1) break;
    if (p->op == DRT_OP_ADD || p->op == DRT_OP_SUB || p->op == DRT_OP_MUL) {
      /* the constant must not broadcast the data to a larger shape */
      if (!drt_shape_equal(&x->shape, &v->shape)) break;
    }
    f->tail[p->id] = 1;
    (*len)++;
    v = x;
  }
  return v;
}

/* ---- the pass ------------------------------------------------------------------------------ */
static drt_value *find_input(drt_graph *g, const char *name) {
  for (size_t i = 0; i < g->num_inputs; i++)
    if (strcmp(g->inputs[i]->name, name) == 0) return g->inputs[i];
  return NULL;
}

/* A unique value name: base, or base_2, base_3, ... */
static void unique_name(drt_graph *g, const char *base, char *out, size_t n) {
  int len = snprintf(out, n, "%s", base);
  for (int k = 2; len >= 0 && drt_graph_find_value(g, out); k++) len = snprintf(out, n, "%s_%d", base, k);
}

/* Copies a name into a results field (names longer than the field are cut). */
static void set_name(char *dst, size_t n, const char *src) {
  size_t l = strlen(src);
  if (l >= n) l = n - 1;
  memcpy(dst, src, l);
  dst[l] = 0;
}

static drt_status rename_value(drt_graph *g, drt_value *v, const char *suffix) {
  char buf[DRT_PASS_NAME_MAX + 32], base[DRT_PASS_NAME_MAX + 32];
  snprintf(base, sizeof base, "%s%s", v->name, suffix);
  unique_name(g, base, buf, sizeof buf);
  const char *s = drt_arena_strdup(g->arena, buf);
  if (!s) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "cfg-fold");
  v->name = s;
  g->name_index_dirty = true;
  return DRT_OK;
}

/* The unconditional value of a conditioning input as a constant of the input's shape. */
static drt_status make_uncond(drt_graph *g, const drt_value *in, const drt_tensor *t, drt_value **out) {
  DRT_RETURN_IF_ERROR(drt_graph_add_const(g, NULL, in->dtype, &in->shape, NULL, out));
  if (!t) return DRT_OK; /* zeros */
  char a[128], b[128];
  drt_shape want = in->shape;
  bool same = drt_shape_equal(&t->shape, &want);
  want.dims[0] = 1;
  bool one = drt_shape_equal(&t->shape, &want);
  if (!same && !one)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "--cfg-uncond %s: the value has shape %s, expected %s (or batch 1)",
                     in->name, drt_shape_str(&t->shape, a, sizeof a), drt_shape_str(&in->shape, b, sizeof b));
  if (t->dtype != in->dtype && !(drt_dtype_is_float(t->dtype) && drt_dtype_is_float(in->dtype)))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "--cfg-uncond %s: the value is %s, the input is %s", in->name,
                     drt_dtype_name(t->dtype), drt_dtype_name(in->dtype));
  int64_t per = drt_shape_numel(&want), reps = same ? 1 : in->shape.dims[0];
  size_t es = drt_dtype_size(in->dtype);
  for (int64_t r = 0; r < reps; r++)
    drt_convert(in->dtype, (char *)(*out)->data + (size_t)(r * per) * es, t->dtype, t->data,
                (size_t)(same ? drt_shape_numel(&t->shape) : per));
  return DRT_OK;
}

static drt_status add_attr_f(drt_graph *g, drt_node *n, const char *name, double v) {
  drt_attr a = {.name = name, .type = DRT_ATTR_FLOAT, .f = (float)v};
  return drt_node_add_attr(g, n, &a);
}

static drt_status run(fold *f, const drt_pass_ctx *ctx) {
  drt_graph *g = f->g;
  drt_cfg_mode mode;
  DRT_RETURN_IF_ERROR_CTX(drt_cfg_mode_parse(ctx->cfg_mode, &mode), "--cfg-mode");
  if (!ctx->latent_input) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "CFG folding needs the latent input: pass --latent NAME");
  drt_value *lat = find_input(g, ctx->latent_input);
  if (!lat) return DRT_ERROR(DRT_STATUS_NOT_FOUND, "the model has no latent input '%s'", ctx->latent_input);
  if (lat->shape.rank < 1) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "latent '%s' has no batch dimension", lat->name);
  f->B = lat->shape.dims[0];
  if (f->B < 1) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "latent '%s' has an empty batch", lat->name);
  if (g->num_outputs < 1) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "the model has no outputs");
  if (ctx->cfg_num_uncond < 1)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "CFG folding needs --cfg-uncond NAME=zeros|FILE.npy for at least "
                     "one conditioning input");
  for (int i = 0; i < ctx->cfg_num_uncond; i++) {
    const char *nm = ctx->cfg_uncond_names[i];
    drt_value *v = find_input(g, nm);
    if (!v) return DRT_ERROR(DRT_STATUS_NOT_FOUND, "--cfg-uncond %s: the model has no such input", nm);
    if (v == lat || (ctx->timestep_input && strcmp(nm, ctx->timestep_input) == 0))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "--cfg-uncond %s: that is the latent or timestep input", nm);
    if (v->shape.rank < 1 || v->shape.dims[0] != f->B)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "--cfg-uncond %s: its leading dim must be the batch (%" PRId64 ")",
                       nm, f->B);
  }
  /* shapes before the pass */
  f->num_old = g->next_id;
  f->old = calloc(f->num_old ? f->num_old : 1, sizeof(drt_shape));
  f->tail = calloc(f->num_old ? f->num_old : 1, 1);
  if (!f->old || !f->tail) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "cfg-fold");
  for (size_t i = 0; i < g->num_values; i++) f->old[g->values[i]->id] = g->values[i]->shape;
  drt_value *pred = g->outputs[0];
  int tail_len = 0;
  drt_value *boundary = find_tail(f, pred, mode.kind != DRT_CFG_STANDARD, &tail_len);
  /* batched inputs: concatenated inside the graph */
  size_t num_in = g->num_inputs;
  for (size_t i = 0; i < num_in; i++) {
    drt_value *v = g->inputs[i];
    if (v->shape.rank < 1 || v->shape.dims[0] != f->B) continue;
    drt_value *second = NULL;
    for (int k = 0; k < ctx->cfg_num_uncond; k++)
      if (strcmp(ctx->cfg_uncond_names[k], v->name) == 0)
        DRT_RETURN_IF_ERROR(make_uncond(g, v, ctx->cfg_uncond_values[k], &second));
    if (!second) {
      /* the latent, the timestep, other batched inputs: equal in both halves until they meet
         the conditioning */
      f->dry = true;
      drt_status st = set_ax(f, v, 0);
      f->dry = false;
      DRT_RETURN_IF_ERROR(st);
      continue;
    }
    char nm[DRT_PASS_NAME_MAX + 32], base[DRT_PASS_NAME_MAX + 16];
    snprintf(base, sizeof base, "%s/cfg_batch", v->name);
    unique_name(g, base, nm, sizeof nm);
    drt_value *c = drt_graph_add_value(g, nm, v->dtype, &v->shape); /* re-inferred below */
    if (!c) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "cfg-fold");
    drt_graph_replace_uses(g, v, c);
    if (v->is_graph_output) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input '%s' is also a graph output", v->name);
    drt_value *ins[2] = {v, second};
    drt_node *cn;
    DRT_RETURN_IF_ERROR(drt_graph_add_node(g, DRT_OP_CONCAT, NULL, ins, 2, &c, 1, &cn));
    drt_attr a = {.name = "axis", .type = DRT_ATTR_INT, .i = 0};
    DRT_RETURN_IF_ERROR(drt_node_add_attr(g, cn, &a));
    DRT_RETURN_IF_ERROR(set_ax(f, c, 0));
  }
  /* track the batch through the network (the tail keeps batch B) */
  size_t num_nodes = g->num_nodes;
  for (size_t i = 0; i < num_nodes; i++) {
    drt_node *n = g->nodes[i];
    if (n->id >= f->num_old || f->tail[n->id]) continue;
    DRT_RETURN_IF_ERROR(track_node(f, n));
  }
  int bax = get_ax(f, boundary);
  if (bax < 0)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "output '%s' does not depend on the batched inputs", pred->name);
  drt_value *comb_in = boundary;
  if (is_dup(f, boundary)) {
    /* the prediction does not depend on the conditioning: both halves are equal */
    drt_log(DRT_LOG_WARN, "cfg-fold: '%s' does not depend on the conditioning inputs", pred->name);
    DRT_RETURN_IF_ERROR(tile_value(f, boundary, bax, &comb_in));
  }
  if (mode.kind != DRT_CFG_STANDARD && bax != 0)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "mode %s needs the batch on axis 0 of '%s', found axis %d",
                     drt_cfg_mode_name(mode.kind), pred->name, bax);
  /* guidance scale input */
  drt_pass_results *res = ctx->results;
  char nm[DRT_PASS_NAME_MAX + 32];
  unique_name(g, DRT_CFG_SCALE_INPUT, nm, sizeof nm);
  drt_shape one = {1, {1}};
  drt_value *scale = drt_graph_add_value(g, nm, DRT_DTYPE_FLOAT32, &one);
  if (!scale) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "cfg-fold");
  DRT_RETURN_IF_ERROR(drt_graph_add_input(g, scale));
  if (res) set_name(res->cfg_scale_input, sizeof res->cfg_scale_input, nm);
  /* the combine */
  drt_value *ins[3] = {comb_in, scale, NULL}, *outs[2] = {NULL, NULL};
  int nin = 2, nout = 1;
  if (mode.kind == DRT_CFG_APG) {
    unique_name(g, "cfg_momentum", nm, sizeof nm);
    ins[2] = drt_graph_add_value(g, nm, boundary->dtype, &f->old[boundary->id]);
    if (!ins[2]) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "cfg-fold");
    DRT_RETURN_IF_ERROR(drt_graph_add_input(g, ins[2]));
    if (res) set_name(res->cfg_state_input, sizeof res->cfg_state_input, nm);
    nin = 3;
  }
  const char *pred_name = pred->name;
  if (tail_len == 0) DRT_RETURN_IF_ERROR(rename_value(g, pred, "/cfg_batch"));
  outs[0] = drt_graph_add_value(g, tail_len ? NULL : pred_name, boundary->dtype, &f->old[boundary->id]);
  if (!outs[0]) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "cfg-fold");
  if (mode.kind == DRT_CFG_CFGPP || mode.kind == DRT_CFG_APG) {
    char base[DRT_PASS_NAME_MAX + 16];
    int bl = snprintf(base, sizeof base, "%s%s", mode.kind == DRT_CFG_CFGPP ? pred_name : "cfg_momentum_out",
                      mode.kind == DRT_CFG_CFGPP ? "_uncond" : "");
    (void)bl;
    unique_name(g, base, nm, sizeof nm);
    outs[1] = drt_graph_add_value(g, nm, boundary->dtype, &f->old[boundary->id]);
    if (!outs[1]) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "cfg-fold");
    nout = 2;
    if (res && mode.kind == DRT_CFG_CFGPP) set_name(res->cfg_uncond_output, sizeof res->cfg_uncond_output, nm);
    if (res && mode.kind == DRT_CFG_APG) set_name(res->cfg_state_output, sizeof res->cfg_state_output, nm);
  }
  drt_node *comb;
  DRT_RETURN_IF_ERROR(drt_graph_add_node(g, DRT_OP_FUSED_CFG_COMBINE, "cfg_combine", ins, nin, outs, nout, &comb));
  drt_attr a_axis = {.name = "axis", .type = DRT_ATTR_INT, .i = bax};
  drt_attr a_mode = {.name = "mode", .type = DRT_ATTR_STRING, .s = drt_cfg_mode_name(mode.kind),
                     .s_len = strlen(drt_cfg_mode_name(mode.kind))};
  DRT_RETURN_IF_ERROR(drt_node_add_attr(g, comb, &a_axis));
  DRT_RETURN_IF_ERROR(drt_node_add_attr(g, comb, &a_mode));
  if (mode.kind == DRT_CFG_RESCALE) DRT_RETURN_IF_ERROR(add_attr_f(g, comb, "phi", mode.phi));
  if (mode.kind == DRT_CFG_APG) {
    DRT_RETURN_IF_ERROR(add_attr_f(g, comb, "eta", mode.eta));
    DRT_RETURN_IF_ERROR(add_attr_f(g, comb, "norm_threshold", mode.norm_threshold));
    DRT_RETURN_IF_ERROR(add_attr_f(g, comb, "momentum", mode.momentum));
  }
  if (tail_len) {
    /* the tail's first node reads the combined value */
    for (size_t i = 0; i < g->num_nodes; i++) {
      drt_node *n = g->nodes[i];
      if (n->id >= f->num_old || !f->tail[n->id]) continue;
      for (int j = 0; j < n->num_inputs; j++)
        if (n->inputs[j] == boundary) n->inputs[j] = outs[0];
    }
  } else {
    g->outputs[0] = outs[0];
    outs[0]->is_graph_output = true;
    pred->is_graph_output = false;
  }
  if (nout == 2) DRT_RETURN_IF_ERROR(drt_graph_add_output(g, outs[1]));
  /* other batched outputs: their conditional half, under the same name */
  for (size_t i = 1; i < g->num_outputs; i++) {
    drt_value *o = g->outputs[i];
    int oa = get_ax(f, o);
    if (o == outs[1] || oa < 0 || is_dup(f, o)) continue;
    const char *oname = o->name;
    DRT_RETURN_IF_ERROR(rename_value(g, o, "/cfg_batch"));
    drt_value *half = drt_graph_add_value(g, oname, o->dtype, &f->old[o->id]);
    if (!half) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "cfg-fold");
    int64_t s0 = 0, e0 = f->old[o->id].dims[oa], ax0 = oa;
    drt_value *sl[4] = {o, NULL, NULL, NULL};
    DRT_RETURN_IF_ERROR(const_i64(g, &s0, 1, DRT_DTYPE_INT64, &sl[1]));
    DRT_RETURN_IF_ERROR(const_i64(g, &e0, 1, DRT_DTYPE_INT64, &sl[2]));
    DRT_RETURN_IF_ERROR(const_i64(g, &ax0, 1, DRT_DTYPE_INT64, &sl[3]));
    drt_node *sn;
    DRT_RETURN_IF_ERROR(drt_graph_add_node(g, DRT_OP_SLICE, NULL, sl, 4, &half, 1, &sn));
    sn->opset = g->opset >= 10 ? g->opset : 13;
    g->outputs[i] = half;
    half->is_graph_output = true;
    o->is_graph_output = false;
  }
  /* re-infer everything and check each value against the expected shape */
  DRT_RETURN_IF_ERROR(drt_graph_topo_sort(g));
  for (size_t i = 0; i < g->num_nodes; i++)
    DRT_RETURN_IF_ERROR_CTX(drt_infer_node(g, g->nodes[i]), "re-inferring shapes at batch %" PRId64, 2 * f->B);
  for (size_t i = 0; i < g->num_values; i++) {
    const drt_value *v = g->values[i];
    if (v->id >= f->num_old || v->kind == DRT_VALUE_INPUT) continue;
    drt_shape want = f->old[v->id];
    int a = get_ax(f, v);
    if (a >= 0 && !is_dup(f, v)) want.dims[a] *= 2;
    if (!drt_shape_equal(&want, &v->shape)) {
      char s1[128], s2[128];
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED,
                       "after re-binding the batch to %" PRId64 ", '%s' has shape %s where %s was expected (batch "
                       "axis %d): the model derives this shape in a way the pass does not track",
                       2 * f->B, v->name, drt_shape_str(&v->shape, s1, sizeof s1), drt_shape_str(&want, s2, sizeof s2),
                       a);
    }
  }
  size_t dead = drt_graph_dce(g);
  (void)dead;
  drt_graph_compact(g);
  if (ctx->stats) ctx->stats->cfg_folded = true;
  drt_log(DRT_LOG_INFO,
          "cfg-fold: batch %" PRId64 " -> %" PRId64 " inside the graph: %d nodes at batch %" PRId64 " (before the "
          "conditioning enters), %d at %" PRId64 ", %d shape operands rewritten, %d operands tiled, mode %s, combine "
          "at '%s' (axis %d), then a linear tail of %d nodes at batch %" PRId64,
          f->B, 2 * f->B, f->dup_nodes, f->B, f->doubled_nodes, 2 * f->B, f->rewrites, f->tiled,
          drt_cfg_mode_name(mode.kind), boundary->name, bax, tail_len, f->B);
  return DRT_OK;
}

drt_status drt_pass_cfg_fold(drt_graph *g, const drt_pass_ctx *ctx, bool *changed) {
  *changed = false;
  if (!ctx || !ctx->cfg_enabled) return DRT_OK;
  fold f;
  memset(&f, 0, sizeof f);
  f.g = g;
  drt_status st = run(&f, ctx);
  free(f.ax);
  free(f.dup);
  free(f.old);
  free(f.tail);
  free(f.tiles);
  if (!st) *changed = true;
  return st;
}
