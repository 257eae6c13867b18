/* Canonicalization (see canonicalize.h).
 *
 *   Shape(x) -> Gather(0) -> Unsqueeze -> Concat -> Reshape(y, .)      x: 2x3x8 (static)
 *   becomes                      Reshape(y, const[2,-1])
 *
 * One topological walk infers each node's output types and, when every input is a constant
 * (or the node only reads static shapes, like Shape/Size), evaluates it with the CPU kernel
 * and turns its outputs into constants. Then Identity, inference-mode Dropout, Casts to the
 * same dtype and Reshapes/Expands/Squeezes that keep the shape are bypassed, and dead nodes
 * removed. A graph output keeps its producing node so its name stays stable. */
#include "passes/canonicalize.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer.h"
#include "passes/control_flow.h"
#include "runtime/cpu/cpu.h"

#define DEFAULT_MAX_FOLD_BYTES (256ull << 20)

/* ---- input binding --------------------------------------------------------------- */
static drt_value *find_input(drt_graph *g, const char *name) {
  for (size_t i = 0; i < g->num_inputs; i++)
    if (strcmp(g->inputs[i]->name, name) == 0) return g->inputs[i];
  return NULL;
}

static void propagate_dim(drt_graph *g, const char *dim_name, int64_t value) {
  for (size_t i = 0; i < g->num_inputs; i++) {
    drt_value *v = g->inputs[i];
    if (!v->has_shape) continue;
    for (int d = 0; d < v->shape.rank; d++)
      if (v->dim_params[d] && strcmp(v->dim_params[d], dim_name) == 0 && v->shape.dims[d] < 0)
        v->shape.dims[d] = value;
  }
}

drt_status drt_graph_bind_input(drt_graph *g, const char *name, const drt_shape *shape) {
  drt_value *v = find_input(g, name);
  if (!v) {
    char list[512] = "";
    size_t off = 0;
    for (size_t i = 0; i < g->num_inputs && off < sizeof list; i++)
      off += (size_t)snprintf(list + off, sizeof list - off, "%s'%s'", i ? ", " : "", g->inputs[i]->name);
    return DRT_ERROR(DRT_STATUS_NOT_FOUND, "model has no input named '%s' (inputs: %s)", name, list);
  }
  char a[128], b[128];
  if (v->has_shape && v->shape.rank != shape->rank)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s': got shape %s (rank %d), the model expects rank %d",
                     name, drt_shape_str(shape, a, sizeof a), shape->rank, v->shape.rank);
  for (int d = 0; d < shape->rank; d++) {
    if (shape->dims[d] < 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s': negative dimension in %s", name,
                       drt_shape_str(shape, a, sizeof a));
    if (v->has_shape && v->shape.dims[d] >= 0 && v->shape.dims[d] != shape->dims[d]) {
      if (v->dim_params[d])
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                         "input '%s': dim %d ('%s') is %" PRId64 " but another input already bound '%s' to %" PRId64,
                         name, d, v->dim_params[d], shape->dims[d], v->dim_params[d], v->shape.dims[d]);
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s': got shape %s, the model expects %s", name,
                       drt_shape_str(shape, a, sizeof a), drt_shape_str(&v->shape, b, sizeof b));
    }
  }
  v->has_shape = true;
  v->shape = *shape;
  for (int d = 0; d < shape->rank; d++)
    if (v->dim_params[d]) propagate_dim(g, v->dim_params[d], shape->dims[d]);
  return DRT_OK;
}

drt_status drt_graph_bind_dim(drt_graph *g, const char *dim_name, int64_t value) {
  bool found = false;
  if (value < 0) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "dimension '%s' = %" PRId64 " is negative", dim_name, value);
  for (size_t i = 0; i < g->num_inputs; i++) {
    drt_value *v = g->inputs[i];
    for (int d = 0; v->has_shape && d < v->shape.rank; d++) {
      if (v->dim_params[d] && strcmp(v->dim_params[d], dim_name) == 0) {
        found = true;
        if (v->shape.dims[d] >= 0 && v->shape.dims[d] != value)
          return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "dimension '%s' is already bound to %" PRId64 ", not %" PRId64,
                           dim_name, v->shape.dims[d], value);
      }
    }
  }
  if (!found) return DRT_ERROR(DRT_STATUS_NOT_FOUND, "no model input has a dimension named '%s'", dim_name);
  propagate_dim(g, dim_name, value);
  return DRT_OK;
}

drt_status drt_graph_check_bound(const drt_graph *g) {
  for (size_t i = 0; i < g->num_inputs; i++) {
    const drt_value *v = g->inputs[i];
    if (!v->has_shape)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s' has no declared shape: provide it (--shape %s=DIMS)",
                       v->name, v->name);
    for (int d = 0; d < v->shape.rank; d++) {
      if (v->shape.dims[d] < 0) {
        if (v->dim_params[d])
          return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                           "input '%s' dim %d ('%s') is symbolic and unbound: provide the input or --shape %s=DIMS",
                           v->name, d, v->dim_params[d], v->name);
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                         "input '%s' dim %d is unknown: provide the input or --shape %s=DIMS", v->name, d, v->name);
      }
    }
    if (v->dtype == DRT_DTYPE_UNDEFINED)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s' has no element type", v->name);
  }
  return DRT_OK;
}

drt_status drt_graph_specialize_input(drt_graph *g, const char *name, const drt_tensor *t) {
  size_t k = 0;
  while (k < g->num_inputs && strcmp(g->inputs[k]->name, name) != 0) k++;
  if (k == g->num_inputs) return DRT_ERROR(DRT_STATUS_NOT_FOUND, "model has no input named '%s'", name);
  drt_value *v = g->inputs[k];
  DRT_RETURN_IF_ERROR(drt_graph_bind_input(g, name, &t->shape));
  if (v->dtype != t->dtype)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s' has dtype %s, the model expects %s", name,
                     drt_dtype_name(t->dtype), drt_dtype_name(v->dtype));
  DRT_RETURN_IF_ERROR(drt_value_make_const(g, v, t->data, drt_tensor_nbytes(t)));
  memmove(&g->inputs[k], &g->inputs[k + 1], (g->num_inputs - k - 1) * sizeof(drt_value *));
  g->num_inputs--;
  return DRT_OK;
}

/* ---- infer + fold ------------------------------------------------------------------ */
static bool shape_only_op(drt_op op) { return op == DRT_OP_SHAPE || op == DRT_OP_SIZE; }

static drt_status fold_node(drt_graph *g, drt_node *n, drt_cpu_ctx *cpu) {
  drt_tensor in[64], out[16];
  if (n->num_inputs > 64 || n->num_outputs > 16) return DRT_OK;
  for (int i = 0; i < n->num_inputs; i++) {
    drt_value *v = n->inputs[i];
    memset(&in[i], 0, sizeof in[i]);
    if (!v) continue;
    in[i].dtype = v->dtype;
    in[i].shape = v->shape;
    in[i].data = v->data; /* NULL for Shape/Size of a non-constant: those kernels read shapes only */
  }
  void *bufs[16] = {0};
  for (int i = 0; i < n->num_outputs; i++) {
    drt_value *v = n->outputs[i];
    out[i].dtype = v->dtype;
    out[i].shape = v->shape;
    size_t nb = drt_tensor_nbytes(&out[i]);
    bufs[i] = drt_arena_alloc(g->arena, nb ? nb : 1);
    if (!bufs[i]) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "folding constant of %zu bytes", nb);
    out[i].data = bufs[i];
  }
  DRT_RETURN_IF_ERROR_CTX(drt_cpu_run_node(cpu, n, in, out), "constant folding");
  for (int i = 0; i < n->num_outputs; i++) {
    drt_value *v = n->outputs[i];
    v->kind = DRT_VALUE_CONST;
    v->data = bufs[i];
    v->nbytes = drt_tensor_nbytes(&out[i]);
    v->producer = NULL;
  }
  n->dead = true;
  return DRT_OK;
}

typedef struct fold_state {
  const drt_pass_ctx *ctx;
  uint64_t max_fold, budget, const_bytes;
  drt_cpu_ctx cpu;
  size_t folded, lowered;
} fold_state;

/* Infers n and folds it when every input is constant; control flow is lowered (its new nodes
 * come back through here one by one). */
static drt_status infer_fold_node(void *user, drt_graph *g, drt_node *n) {
  fold_state *f = user;
  if (drt_op_is_control_flow(n->op) || drt_op_is_sequence(n->op)) DRT_RETURN_IF_ERROR(drt_infer_check_arity(n));
  if (drt_op_is_control_flow(n->op)) {
    f->lowered++;
    return drt_lower_control_flow(g, n, infer_fold_node, f);
  }
  if (drt_op_is_sequence(n->op)) {
    f->lowered++;
    return drt_lower_sequence_op(g, n, infer_fold_node, f);
  }
  for (int j = 0; j < n->num_inputs; j++) {
    drt_value *v = n->inputs[j];
    if (!v || !v->is_sequence) continue;
    if (n->op == DRT_OP_IDENTITY && n->num_outputs == 1) { /* the same sequence under another name */
      drt_value *y = n->outputs[0];
      y->is_sequence = true;
      y->seq = v->seq;
      y->seq_len = v->seq_len;
      n->dead = true;
      f->lowered++;
      return DRT_OK;
    }
    char d[256];
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: input %d '%s' is a sequence, which it does not take",
                     drt_node_describe(n, d, sizeof d), j, v->name);
  }
  DRT_RETURN_IF_ERROR(drt_infer_node(g, n));
  bool all_const = true;
  for (int j = 0; j < n->num_inputs; j++)
    if (n->inputs[j] && n->inputs[j]->kind != DRT_VALUE_CONST) all_const = false;
  if (!all_const && !shape_only_op(n->op)) return DRT_OK;
  uint64_t bytes = 0;
  for (int j = 0; j < n->num_outputs; j++) {
    drt_tensor t = {n->outputs[j]->dtype, n->outputs[j]->shape, NULL};
    bytes += drt_tensor_nbytes(&t);
  }
  if (bytes > f->max_fold) return DRT_OK;
  if (!drt_cpu_kernel_find(n->op)) return DRT_OK; /* left for the executor to report */
  if (f->budget && (bytes > f->budget || f->const_bytes > f->budget - bytes)) {
    char d[256];
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY,
                     "%s: folding it into a %" PRIu64 "-byte constant brings the constants to %" PRIu64
                     " bytes, over the memory budget of %" PRIu64 " bytes (--max-memory)",
                     drt_node_describe(n, d, sizeof d), bytes, f->const_bytes + bytes, f->budget);
  }
  f->const_bytes += bytes;
  DRT_RETURN_IF_ERROR(fold_node(g, n, &f->cpu));
  f->folded++;
  return DRT_OK;
}

static drt_status infer_and_fold(drt_graph *g, const drt_pass_ctx *ctx, size_t *folded, size_t *lowered) {
  fold_state f = {ctx, ctx && ctx->max_fold_bytes ? ctx->max_fold_bytes : DEFAULT_MAX_FOLD_BYTES,
                  ctx ? ctx->max_memory : 0, 0, {NULL, 1}, 0, 0};
  for (size_t i = 0; f.budget && i < g->num_values; i++)
    if (g->values[i]->kind == DRT_VALUE_CONST) f.const_bytes += g->values[i]->nbytes;
  /* nodes added by lowering control flow are appended and already processed; the loop reaches
     them again (inference is idempotent, folded ones are dead) */
  for (size_t i = 0; i < g->num_nodes; i++) {
    drt_node *n = g->nodes[i];
    if (n->dead) continue;
    DRT_RETURN_IF_ERROR(infer_fold_node(&f, g, n));
  }
  *folded = f.folded;
  *lowered = f.lowered;
  return DRT_OK;
}

/* ---- bypass no-op nodes ------------------------------------------------------------- */
static bool is_noop(const drt_node *n) {
  drt_value *x = n->inputs[0], *y = n->outputs[0];
  if (!x) return false;
  switch (n->op) {
    case DRT_OP_IDENTITY:
    case DRT_OP_OPTIONAL_GET_ELEMENT: return true;
    case DRT_OP_DROPOUT:
      /* inference mode: output = input when no mask is consumed and training_mode is absent/false */
      if (n->num_outputs > 1) return false;
      if (n->num_inputs > 2 && n->inputs[2] &&
          !(n->inputs[2]->kind == DRT_VALUE_CONST && drt_load_i64(n->inputs[2]->dtype, n->inputs[2]->data, 0) == 0))
        return false;
      return true;
    case DRT_OP_CAST:
    case DRT_OP_CAST_LIKE:
    case DRT_OP_RESHAPE:
    case DRT_OP_EXPAND:
    case DRT_OP_SQUEEZE:
    case DRT_OP_UNSQUEEZE:
    case DRT_OP_FLATTEN:
      return x->dtype == y->dtype && drt_shape_equal(&x->shape, &y->shape);
    default: return false;
  }
}

/* One pass over the nodes: each no-op's output is replaced by its input (chains resolved once),
 * then every input is rewritten in a second pass (linear, whatever the number of no-ops:
 * lowered control flow leaves many Identity nodes). */
static size_t bypass_noops(drt_graph *g) {
  drt_value **to = calloc(g->next_id ? g->next_id : 1, sizeof *to);
  if (!to) return 0; /* keeping the no-ops is harmless */
  size_t removed = 0;
  for (size_t i = 0; i < g->num_nodes; i++) {
    drt_node *n = g->nodes[i];
    if (n->dead || n->num_outputs < 1 || n->num_inputs < 1 || !is_noop(n)) continue;
    drt_value *y = n->outputs[0];
    if (y->is_graph_output) continue; /* keep the output's name */
    to[y->id] = n->inputs[0];
    n->dead = true;
    removed++;
  }
  if (removed)
    for (size_t i = 0; i < g->num_nodes; i++) {
      drt_node *n = g->nodes[i];
      for (int j = 0; j < n->num_inputs; j++) {
        drt_value *v = n->inputs[j];
        while (v && v->id < g->next_id && to[v->id]) v = to[v->id];
        n->inputs[j] = v;
      }
    }
  free(to);
  return removed;
}

drt_status drt_pass_canonicalize(drt_graph *g, const drt_pass_ctx *ctx, bool *changed) {
  *changed = false;
  DRT_RETURN_IF_ERROR(drt_graph_check_bound(g));
  DRT_RETURN_IF_ERROR(drt_graph_topo_sort(g));
  size_t folded = 0, lowered = 0;
  /* unused nodes go first: control flow nobody reads is not lowered (nor refused) */
  size_t dead = drt_graph_dce(g);
  DRT_RETURN_IF_ERROR(infer_and_fold(g, ctx, &folded, &lowered));
  drt_graph_compact(g);
  if (lowered) DRT_RETURN_IF_ERROR(drt_graph_topo_sort(g)); /* lowered nodes were appended */
  for (size_t i = 0; i < g->num_outputs; i++)
    if (g->outputs[i]->is_sequence)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "graph output '%s' is a sequence; only tensors can be outputs",
                       g->outputs[i]->name);
  size_t bypassed = bypass_noops(g);
  drt_graph_compact(g);
  dead += drt_graph_dce(g);
  *changed = folded || bypassed || dead || lowered;
  drt_log(DRT_LOG_DEBUG, "canonicalize: folded %zu nodes, bypassed %zu no-ops, removed %zu dead nodes", folded,
          bypassed, dead);
  return DRT_OK;
}
