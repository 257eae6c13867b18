/* If / Loop / Scan lowered into the flat graph (see control_flow.h for what is supported).
 *
 * A subgraph is instantiated by copying its nodes into the graph with its inputs bound to
 * values there (its formal inputs, then the node's implicit inputs); every copied node is
 * handed to `process` at once, so constants fold as they appear and a Loop can read the
 * condition the last iteration computed. */
#include "passes/control_flow.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/dtype.h"
#include "ir/infer.h"

typedef struct lower_ctx {
  drt_graph *g;
  drt_node *cf; /* the node being lowered */
  drt_cf_process_fn process;
  void *user;
  int opset; /* of the nodes it adds (13+: Unsqueeze takes axes as an input) */
} lower_ctx;

static const char *cf_label(const lower_ctx *L, char *buf, size_t n) { return drt_node_describe(L->cf, buf, n); }

/* "<cf node>/<what>#<id>" in malloc'd memory: the graph's next id makes it unique, whatever the
 * node names (two control-flow nodes may share one) and lengths. */
static char *unique_name(lower_ctx *L, const char *what) {
  size_t n = strlen(L->cf->name) + strlen(what ? what : "v") + 32;
  char *s = malloc(n);
  if (s) snprintf(s, n, "%s/%s#%u", L->cf->name, what ? what : "v", L->g->next_id);
  return s;
}

static drt_value *new_value(lower_ctx *L, const char *what) {
  char *name = unique_name(L, what);
  drt_value *v = name ? drt_graph_add_value(L->g, name, DRT_DTYPE_UNDEFINED, NULL) : NULL;
  free(name);
  return v;
}

/* Adds a node producing `out` (a new value when out is NULL) and processes it. */
static drt_status add_node(lower_ctx *L, drt_op op, drt_value *const *ins, int nin, drt_value *out,
                           const drt_attr *attrs, int nattrs, drt_value **result) {
  if (!out) out = new_value(L, drt_op_name(op));
  char *name = unique_name(L, drt_op_name(op));
  if (!out || !name) {
    free(name);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "lowering control flow");
  }
  drt_node *n;
  drt_status st = drt_graph_add_node(L->g, op, name, ins, nin, &out, 1, &n);
  free(name);
  DRT_RETURN_IF_ERROR(st);
  n->opset = L->opset;
  for (int i = 0; i < nattrs; i++) DRT_RETURN_IF_ERROR(drt_node_add_attr(L->g, n, &attrs[i]));
  DRT_RETURN_IF_ERROR(L->process(L->user, L->g, n));
  if (result) *result = out;
  return DRT_OK;
}

static drt_status const_i64(lower_ctx *L, const int64_t *vals, int count, bool scalar, drt_value **out) {
  drt_shape s = {scalar ? 0 : 1, {count}};
  char *name = unique_name(L, "const");
  if (!name) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "lowering control flow");
  drt_value *v;
  drt_status st = drt_graph_add_const(L->g, name, DRT_DTYPE_INT64, &s, NULL, &v);
  free(name);
  DRT_RETURN_IF_ERROR(st);
  if (count) memcpy(v->data, vals, (size_t)count * sizeof(int64_t));
  *out = v;
  return DRT_OK;
}

/* ---- instantiating a subgraph ------------------------------------------------------------- */
typedef struct vmap {
  const drt_value **from;
  drt_value **to;
  size_t n, cap;
} vmap;

static drt_value *vmap_get(const vmap *m, const drt_value *v) {
  for (size_t i = m->n; i-- > 0;)
    if (m->from[i] == v) return m->to[i];
  return NULL;
}

static drt_status vmap_put(vmap *m, const drt_value *from, drt_value *to) {
  if (m->n == m->cap) {
    size_t cap = m->cap ? 2 * m->cap : 64;
    const drt_value **a = realloc(m->from, cap * sizeof *a);
    if (!a) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "lowering control flow");
    m->from = a;
    drt_value **b = realloc(m->to, cap * sizeof *b);
    if (!b) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "lowering control flow");
    m->to = b;
    m->cap = cap;
  }
  m->from[m->n] = from;
  m->to[m->n++] = to;
  return DRT_OK;
}

/* The value v of the subgraph stands for: bound inputs and earlier node outputs through the map,
 * constants copied (sharing their data, which the subgraph keeps alive). */
static drt_status resolve(lower_ctx *L, vmap *m, const drt_value *v, drt_value **out) {
  *out = vmap_get(m, v);
  if (*out) return DRT_OK;
  if (v->kind != DRT_VALUE_CONST)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "subgraph value '%s' is used before it is defined", v->name);
  drt_value *c = new_value(L, v->name);
  if (!c) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "lowering control flow");
  c->kind = DRT_VALUE_CONST;
  c->dtype = v->dtype;
  c->shape = v->shape;
  c->has_shape = v->has_shape;
  c->data = v->data;
  c->nbytes = v->nbytes;
  DRT_RETURN_IF_ERROR(vmap_put(m, v, c));
  *out = c;
  return DRT_OK;
}

/* Copies sub's nodes into L->g with sub's inputs bound to args (sub->num_inputs of them);
 * results receives sub->num_outputs values. `tag` names the instance ("then", "iter3"). */
static drt_status instantiate(lower_ctx *L, const drt_graph *sub, drt_value *const *args, const char *tag,
                              drt_value **results) {
  vmap m = {NULL, NULL, 0, 0};
  drt_status st = DRT_OK;
  drt_value **ins = NULL, **outs = NULL;
  for (size_t i = 0; i < sub->num_inputs && !st; i++) st = vmap_put(&m, sub->inputs[i], args[i]);
  for (size_t k = 0; k < sub->num_nodes && !st; k++) {
    const drt_node *sn = sub->nodes[k];
    if (sn->dead) continue;
    if (L->g->num_nodes >= DRT_CF_MAX_GRAPH_NODES) {
      char d[256];
      st = DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: unrolling it brings the graph to %u nodes, the limit (nested "
                     "loops multiply their iterations)", cf_label(L, d, sizeof d), DRT_CF_MAX_GRAPH_NODES);
      break;
    }
    free(ins);
    free(outs);
    ins = malloc(((size_t)sn->num_inputs + 1) * sizeof *ins);
    outs = malloc(((size_t)sn->num_outputs + 1) * sizeof *outs);
    if (!ins || !outs) {
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "lowering control flow");
      break;
    }
    for (int j = 0; j < sn->num_inputs && !st; j++) {
      ins[j] = NULL;
      if (sn->inputs[j]) st = resolve(L, &m, sn->inputs[j], &ins[j]);
    }
    for (int j = 0; j < sn->num_outputs && !st; j++) {
      size_t len = strlen(tag) + strlen(sn->outputs[j]->name) + 2;
      char *what = malloc(len);
      if (what) snprintf(what, len, "%s/%s", tag, sn->outputs[j]->name);
      outs[j] = what ? new_value(L, what) : NULL;
      free(what);
      if (!outs[j]) st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "lowering control flow");
      else st = vmap_put(&m, sn->outputs[j], outs[j]);
    }
    if (st) break;
    size_t len = strlen(tag) + strlen(sn->name) + 2;
    char *what = malloc(len), *name = NULL;
    if (what) snprintf(what, len, "%s/%s", tag, sn->name);
    name = what ? unique_name(L, what) : NULL;
    free(what);
    if (!name) {
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "lowering control flow");
      break;
    }
    drt_node *n;
    st = drt_graph_add_node(L->g, sn->op, name, ins, sn->num_inputs, outs, sn->num_outputs, &n);
    free(name);
    if (st) break;
    n->opset = sn->opset;
    n->num_implicit_inputs = sn->num_implicit_inputs;
    /* attributes copied into the graph (a pass may rewrite one copy's arrays); tensors and
       subgraphs are shared, nothing writes them */
    for (int a = 0; a < sn->num_attrs && !st; a++) st = drt_node_add_attr(L->g, n, &sn->attrs[a]);
    if (!st) st = L->process(L->user, L->g, n);
  }
  for (size_t i = 0; i < sub->num_outputs && !st; i++) st = resolve(L, &m, sub->outputs[i], &results[i]);
  free(ins);
  free(outs);
  free(m.from);
  free(m.to);
  return st;
}

static const drt_graph *graph_attr(const drt_node *n, const char *name) {
  const drt_attr *a = drt_node_attr(n, name);
  return a && a->type == DRT_ATTR_GRAPH ? a->graph : NULL;
}

/* The body of a Loop or Scan. */
static drt_status body_of(lower_ctx *L, const drt_graph **out) {
  char d[256];
  *out = graph_attr(L->cf, "body");
  if (!*out)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: needs the graph attribute body", cf_label(L, d, sizeof d));
  return DRT_OK;
}

/* Binds y (an output of the control-flow node) to v: an Identity keeps y's name and uses. */
static drt_status bind_output(lower_ctx *L, drt_value *y, drt_value *v) {
  return add_node(L, DRT_OP_IDENTITY, &v, 1, y, NULL, 0, NULL);
}

static drt_status const_cond(const drt_value *c, bool *out) {
  double d;
  DRT_RETURN_IF_ERROR(drt_value_const_scalar(c, &d));
  *out = d != 0;
  return DRT_OK;
}

/* Stacks elems[0..count) (one shape) on a new axis `axis` of rank+1 (negative counts from the end),
 * in reverse order when `reverse`; the result goes to y. */
static drt_status stack(lower_ctx *L, drt_value **elems, int count, int64_t axis, bool reverse, drt_value *y,
                        const char *what) {
  char d[256];
  const drt_value *e0 = elems[0];
  for (int t = 0; t < count; t++)
    if (elems[t]->is_sequence)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: %s is a sequence; only tensors can be stacked",
                       cf_label(L, d, sizeof d), what);
  for (int t = 1; t < count; t++)
    if (elems[t]->dtype != e0->dtype || !drt_shape_equal(&elems[t]->shape, &e0->shape)) {
      char a[128], b[128];
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: %s changes from %s[%s] in iteration 0 to %s[%s] in iteration %d; "
                       "stacked outputs need one shape", cf_label(L, d, sizeof d), what, drt_dtype_name(e0->dtype),
                       drt_shape_str(&e0->shape, a, sizeof a), drt_dtype_name(elems[t]->dtype),
                       drt_shape_str(&elems[t]->shape, b, sizeof b), t);
    }
  int r = e0->shape.rank + 1;
  if (axis < -r || axis >= r)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: output axis %" PRId64 " is out of range for rank %d",
                     cf_label(L, d, sizeof d), axis, r);
  if (axis < 0) axis += r;
  drt_value *ax;
  DRT_RETURN_IF_ERROR(const_i64(L, &axis, 1, false, &ax));
  drt_value **parts = malloc((size_t)count * sizeof *parts);
  if (!parts) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "lowering control flow");
  drt_status st = DRT_OK;
  for (int t = 0; t < count && !st; t++) {
    drt_value *in[2] = {elems[reverse ? count - 1 - t : t], ax};
    st = add_node(L, DRT_OP_UNSQUEEZE, in, 2, count == 1 ? y : NULL, NULL, 0, &parts[t]);
  }
  if (!st && count > 1) {
    drt_attr a = {0};
    a.name = "axis";
    a.type = DRT_ATTR_INT;
    a.i = axis;
    st = add_node(L, DRT_OP_CONCAT, parts, count, y, &a, 1, NULL);
  }
  free(parts);
  return st;
}

/* ---- If --------------------------------------------------------------------------------- */
static drt_status lower_if(lower_ctx *L) {
  drt_node *n = L->cf;
  char d[256];
  const drt_graph *br[2] = {graph_attr(n, "then_branch"), graph_attr(n, "else_branch")};
  if (!br[0] || !br[1])
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: needs graph attributes then_branch and else_branch",
                     cf_label(L, d, sizeof d));
  int nimp = n->num_implicit_inputs;
  for (int b = 0; b < 2; b++) {
    if (br[b]->num_inputs != (size_t)nimp)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: %s declares %zu inputs; If branches take none",
                       cf_label(L, d, sizeof d), b ? "else_branch" : "then_branch", br[b]->num_inputs - (size_t)nimp);
    if (br[b]->num_outputs != (size_t)n->num_outputs)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: %s has %zu outputs, the node %d", cf_label(L, d, sizeof d),
                       b ? "else_branch" : "then_branch", br[b]->num_outputs, n->num_outputs);
  }
  drt_value *const *args = n->inputs + (n->num_inputs - nimp);
  drt_value *cond = n->inputs[0];
  if (!cond || drt_shape_numel(&cond->shape) != 1)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: the condition must hold one element", cf_label(L, d, sizeof d));
  drt_value **res[2] = {calloc((size_t)n->num_outputs + 1, sizeof(drt_value *)),
                        calloc((size_t)n->num_outputs + 1, sizeof(drt_value *))};
  drt_status st = res[0] && res[1] ? DRT_OK : DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "lowering If");
  if (!st && cond->kind == DRT_VALUE_CONST) {
    bool c = false;
    st = const_cond(cond, &c);
    if (!st) st = instantiate(L, br[c ? 0 : 1], args, c ? "then" : "else", res[0]);
    for (int k = 0; k < n->num_outputs && !st; k++) st = bind_output(L, n->outputs[k], res[0][k]);
  } else if (!st) {
    /* a condition known only at run time: both branches, then a select per output */
    st = instantiate(L, br[0], args, "then", res[0]);
    if (!st) st = instantiate(L, br[1], args, "else", res[1]);
    drt_value *scalar = NULL;
    if (!st) {
      drt_value *shape;
      st = const_i64(L, NULL, 0, false, &shape);
      drt_value *in[2] = {cond, shape};
      if (!st) st = add_node(L, DRT_OP_RESHAPE, in, 2, NULL, NULL, 0, &scalar);
    }
    for (int k = 0; k < n->num_outputs && !st; k++) {
      drt_value *t = res[0][k], *e = res[1][k];
      if (t->is_sequence || e->is_sequence) {
        st = DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: output %d is a sequence, which needs the condition known at "
                       "compile time", cf_label(L, d, sizeof d), k);
        break;
      }
      if (t->dtype != e->dtype || !t->has_shape || !e->has_shape || !drt_shape_equal(&t->shape, &e->shape)) {
        char a[128], b[128];
        st = DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: the condition is known only at run time and output %d differs "
                       "between the branches (then %s[%s], else %s[%s]); distilrt runs both branches and selects, which "
                       "needs one dtype and shape", cf_label(L, d, sizeof d), k, drt_dtype_name(t->dtype),
                       drt_shape_str(&t->shape, a, sizeof a), drt_dtype_name(e->dtype),
                       drt_shape_str(&e->shape, b, sizeof b));
        break;
      }
      drt_value *in[3] = {scalar, t, e};
      st = add_node(L, DRT_OP_WHERE, in, 3, n->outputs[k], NULL, 0, NULL);
    }
  }
  free(res[0]);
  free(res[1]);
  return st;
}

/* ---- Loop ------------------------------------------------------------------------------- */
static drt_status lower_loop(lower_ctx *L) {
  drt_node *n = L->cf;
  char d[256];
  const drt_graph *body;
  DRT_RETURN_IF_ERROR(body_of(L, &body));
  int nimp = n->num_implicit_inputs, nreal = n->num_inputs - nimp, ncarried = nreal - 2;
  int nformal = (int)body->num_inputs - nimp;
  if (ncarried < 0 || nformal != 2 + ncarried || (int)body->num_outputs < 1 + ncarried ||
      n->num_outputs != (int)body->num_outputs - 1)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: %d loop-carried inputs, a body with %d inputs and %zu outputs "
                     "and %d node outputs do not match (body inputs: iteration, condition, carried; outputs: "
                     "condition, carried, scan outputs)", cf_label(L, d, sizeof d), ncarried, nformal,
                     body->num_outputs, n->num_outputs);
  int nscan = (int)body->num_outputs - 1 - ncarried;
  drt_value *trip = n->inputs[0], *cond = n->inputs[1];
  int64_t max_trip = INT64_MAX;
  if (trip) {
    if (trip->kind != DRT_VALUE_CONST)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: the trip count M '%s' must be a compile-time constant "
                       "(distilrt unrolls loops when it compiles)", cf_label(L, d, sizeof d), trip->name);
    int64_t m = 0, cnt = 0; /* an exact integer: exporters write INT64_MAX for "until the condition" */
    DRT_RETURN_IF_ERROR_CTX(drt_value_const_ints(trip, &m, 1, &cnt), "%s: trip count M", cf_label(L, d, sizeof d));
    if (cnt != 1)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: the trip count M must hold one integer", cf_label(L, d, sizeof d));
    max_trip = m;
  }
  if (!trip && !cond)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: has neither a trip count nor a condition (it never ends)",
                     cf_label(L, d, sizeof d));
  size_t nargs = body->num_inputs;
  drt_value **args = calloc(nargs + 1, sizeof *args), **res = calloc(body->num_outputs + 1, sizeof *res);
  drt_value **carried = calloc((size_t)ncarried + 1, sizeof *carried);
  drt_value ***scans = calloc((size_t)nscan + 1, sizeof *scans);
  drt_status st = args && res && carried && scans ? DRT_OK : DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "lowering Loop");
  for (int k = 0; k < nscan && !st; k++) {
    scans[k] = calloc(DRT_CF_MAX_ITERATIONS, sizeof(drt_value *));
    if (!scans[k]) st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "lowering Loop");
  }
  for (int k = 0; k < ncarried && !st; k++) carried[k] = n->inputs[2 + k];
  drt_value *true_v = NULL;
  if (!st && !cond) {
    drt_shape s = {0, {0}};
    uint8_t one = 1;
    char *name = unique_name(L, "true");
    st = name ? drt_graph_add_const(L->g, name, DRT_DTYPE_BOOL, &s, &one, &true_v)
              : DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "lowering Loop");
    free(name);
    cond = true_v;
  }
  int64_t it = 0;
  while (!st) {
    if (it >= max_trip) break;
    if (cond->kind != DRT_VALUE_CONST) {
      st = DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: the loop condition '%s' must be a compile-time constant before "
                     "iteration %" PRId64 " (distilrt unrolls loops when it compiles; a data-dependent exit is not "
                     "supported)", cf_label(L, d, sizeof d), cond->name, it);
      break;
    }
    bool go = false;
    st = const_cond(cond, &go);
    if (st || !go) break;
    if (it >= DRT_CF_MAX_ITERATIONS) {
      st = DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: more than %d iterations (unrolled at compile time)",
                     cf_label(L, d, sizeof d), DRT_CF_MAX_ITERATIONS);
      break;
    }
    st = const_i64(L, &it, 1, true, &args[0]);
    if (st) break;
    args[1] = cond;
    for (int k = 0; k < ncarried; k++) args[2 + k] = carried[k];
    for (int k = 0; k < nimp; k++) args[nformal + k] = n->inputs[nreal + k];
    char tag[32];
    snprintf(tag, sizeof tag, "iter%" PRId64, it);
    st = instantiate(L, body, args, tag, res);
    if (st) break;
    if (!true_v) cond = res[0]; /* without a cond input the body's condition is ignored (ONNX Loop) */
    for (int k = 0; k < ncarried; k++) carried[k] = res[1 + k];
    for (int k = 0; k < nscan; k++) scans[k][it] = res[1 + ncarried + k];
    it++;
  }
  for (int k = 0; k < ncarried && !st; k++) st = bind_output(L, n->outputs[k], carried[k]);
  for (int k = 0; k < nscan && !st; k++) {
    if (it == 0) {
      st = DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: runs no iteration, so scan output %d has no element shape",
                     cf_label(L, d, sizeof d), k);
      break;
    }
    char what[64];
    snprintf(what, sizeof what, "scan output %d", k);
    st = stack(L, scans[k], (int)it, 0, false, n->outputs[ncarried + k], what);
  }
  for (int k = 0; k < nscan; k++) free(scans ? scans[k] : NULL);
  free(scans);
  free(carried);
  free(args);
  free(res);
  return st;
}

/* ---- Scan ------------------------------------------------------------------------------- */
/* One Scan over states[0..nstate) and scan inputs xs[0..nscan_in) (axes / directions given),
 * results into outs (nstate final states, then the stacked scan outputs). */
typedef struct scan_job {
  const drt_graph *body;
  int nstate, nin, nout;
  drt_value **states, **xs, **implicit;
  int nimp;
  const int64_t *in_axes, *in_dirs, *out_axes, *out_dirs; /* NULL: all 0 */
} scan_job;

static drt_status run_scan(lower_ctx *L, const scan_job *J, const char *tag, drt_value **outs, drt_value *const *dest) {
  char d[256];
  int64_t len = -1;
  int64_t axes[64];
  if (J->nin > 64) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: more than 64 scan inputs", cf_label(L, d, sizeof d));
  for (int j = 0; j < J->nin; j++) {
    const drt_value *x = J->xs[j];
    int64_t a = J->in_axes ? J->in_axes[j] : 0;
    if (!x->has_shape || a < -x->shape.rank || a >= x->shape.rank)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: scan input %d has no axis %" PRId64, cf_label(L, d, sizeof d),
                       j, a);
    if (a < 0) a += x->shape.rank;
    axes[j] = a;
    int64_t l = x->shape.dims[a];
    if (len >= 0 && l != len)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: scan inputs have lengths %" PRId64 " and %" PRId64,
                       cf_label(L, d, sizeof d), len, l);
    len = l;
  }
  if (len <= 0)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: scans %" PRId64 " elements; an empty scan has no element shapes",
                     cf_label(L, d, sizeof d), len);
  if (len > DRT_CF_MAX_ITERATIONS)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: %" PRId64 " iterations, more than %d (unrolled at compile time)",
                     cf_label(L, d, sizeof d), len, DRT_CF_MAX_ITERATIONS);
  size_t nargs = J->body->num_inputs;
  drt_value **args = calloc(nargs + 1, sizeof *args), **res = calloc(J->body->num_outputs + 1, sizeof *res);
  drt_value **state = calloc((size_t)J->nstate + 1, sizeof *state);
  drt_value **elems = calloc((size_t)(J->nout ? J->nout : 1) * (size_t)len, sizeof *elems);
  drt_status st = args && res && state && elems ? DRT_OK : DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "lowering Scan");
  for (int k = 0; k < J->nstate; k++) if (state) state[k] = J->states[k];
  for (int64_t t = 0; t < len && !st; t++) {
    for (int k = 0; k < J->nstate; k++) args[k] = state[k];
    for (int j = 0; j < J->nin && !st; j++) {
      int64_t idx = J->in_dirs && J->in_dirs[j] ? len - 1 - t : t;
      drt_value *iv;
      st = const_i64(L, &idx, 1, true, &iv);
      drt_attr a = {0};
      a.name = "axis";
      a.type = DRT_ATTR_INT;
      a.i = axes[j];
      drt_value *in[2] = {J->xs[j], iv};
      if (!st) st = add_node(L, DRT_OP_GATHER, in, 2, NULL, &a, 1, &args[J->nstate + j]);
    }
    for (int k = 0; k < J->nimp; k++) args[J->nstate + J->nin + k] = J->implicit[k];
    char it[96];
    snprintf(it, sizeof it, "%s%" PRId64, tag, t);
    if (!st) st = instantiate(L, J->body, args, it, res);
    if (st) break;
    for (int k = 0; k < J->nstate; k++) state[k] = res[k];
    for (int k = 0; k < J->nout; k++) elems[(size_t)k * (size_t)len + (size_t)t] = res[J->nstate + k];
  }
  for (int k = 0; k < J->nstate && !st; k++) {
    if (dest) st = bind_output(L, dest[k], state[k]);
    else outs[k] = state[k];
  }
  for (int k = 0; k < J->nout && !st; k++) {
    char what[64];
    snprintf(what, sizeof what, "scan output %d", k);
    drt_value *y = dest ? dest[J->nstate + k] : new_value(L, "stacked");
    if (!y) {
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "lowering Scan");
      break;
    }
    st = stack(L, elems + (size_t)k * (size_t)len, (int)len, J->out_axes ? J->out_axes[k] : 0,
               J->out_dirs && J->out_dirs[k], y, what);
    if (!dest) outs[J->nstate + k] = y;
  }
  free(args);
  free(res);
  free(state);
  free(elems);
  return st;
}

static drt_status check_list(lower_ctx *L, const char *attr, int64_t have, int64_t want) {
  char d[256];
  if (have && have != want)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: attribute %s has %" PRId64 " values, expected %" PRId64,
                     cf_label(L, d, sizeof d), attr, have, want);
  return DRT_OK;
}

static drt_status lower_scan(lower_ctx *L) {
  drt_node *n = L->cf;
  char d[256];
  const drt_graph *body;
  DRT_RETURN_IF_ERROR(body_of(L, &body));
  int64_t nin = drt_node_attr_int(n, "num_scan_inputs", -1);
  int nimp = n->num_implicit_inputs, nreal = n->num_inputs - nimp;
  bool v8 = n->opset < 9; /* opset 8: [sequence_lens], states, scan inputs; a batch axis 0 everywhere */
  int first = v8 ? 1 : 0;
  int nstate = (int)(nreal - first - nin);
  int nformal = (int)body->num_inputs - nimp;
  int nout = (int)body->num_outputs - nstate;
  if (nin < 1 || nstate < 0 || nformal != nstate + nin || nout < 0 || n->num_outputs != (int)body->num_outputs)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: num_scan_inputs %" PRId64 ", %d inputs, a body with %d inputs "
                     "and %zu outputs and %d node outputs do not match", cf_label(L, d, sizeof d), nin, nreal,
                     nformal, body->num_outputs, n->num_outputs);
  int64_t c1 = 0, c2 = 0, c3 = 0, c4 = 0;
  const int64_t *in_axes = drt_node_attr_ints(n, "scan_input_axes", &c1);
  const int64_t *in_dirs = drt_node_attr_ints(n, v8 ? "directions" : "scan_input_directions", &c2);
  const int64_t *out_axes = drt_node_attr_ints(n, "scan_output_axes", &c3);
  const int64_t *out_dirs = drt_node_attr_ints(n, "scan_output_directions", &c4);
  DRT_RETURN_IF_ERROR(check_list(L, "scan_input_axes", c1, nin));
  DRT_RETURN_IF_ERROR(check_list(L, v8 ? "directions" : "scan_input_directions", c2, nin));
  DRT_RETURN_IF_ERROR(check_list(L, "scan_output_axes", c3, nout));
  DRT_RETURN_IF_ERROR(check_list(L, "scan_output_directions", c4, nout));
  for (int j = first; j < nreal; j++)
    if (!n->inputs[j])
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: input %d (a state or scan input) is omitted",
                       cf_label(L, d, sizeof d), j);
  scan_job J = {body, nstate, (int)nin, nout, n->inputs + first, n->inputs + first + nstate,
                n->inputs + nreal, nimp, c1 ? in_axes : NULL, c2 ? in_dirs : NULL, c3 ? out_axes : NULL,
                c4 ? out_dirs : NULL};
  if (!v8) return run_scan(L, &J, "t", NULL, n->outputs);

  /* opset 8: every input and output has a batch axis 0; the body sees one batch element, its
     scan axis is 1 in the batched tensors (0 per element) */
  if (c1 || c3)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: opset 8 Scan has no scan axes attributes", cf_label(L, d, sizeof d));
  drt_value *x0 = n->inputs[first];
  if (!x0 || !x0->has_shape || x0->shape.rank < 1)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: inputs need a batch axis", cf_label(L, d, sizeof d));
  int64_t batch = x0->shape.dims[0];
  if (batch < 1 || batch > DRT_CF_MAX_ITERATIONS)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: batch %" PRId64 " is not supported", cf_label(L, d, sizeof d), batch);
  drt_value *lens = n->inputs[0];
  if (lens) { /* only full-length sequences: sequence_lens must equal the scan length for every batch */
    int64_t want = n->inputs[first + nstate]->has_shape && n->inputs[first + nstate]->shape.rank > 1
                       ? n->inputs[first + nstate]->shape.dims[1] : -1, got[4096], cnt = 0;
    drt_status s = drt_value_const_ints(lens, got, 4096, &cnt);
    bool full = !s && cnt == batch;
    for (int64_t b = 0; full && b < cnt; b++) full = got[b] == want;
    drt_status_free(s);
    if (!full)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: sequence_lens must be a constant equal to the full scan length "
                       "for every batch element", cf_label(L, d, sizeof d));
  }
  int nio = nstate + (int)nin;
  drt_value **per = calloc((size_t)nio + 1, sizeof *per);
  drt_value **outs = calloc((size_t)n->num_outputs * (size_t)batch + 1, sizeof *outs);
  drt_status st = per && outs ? DRT_OK : DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "lowering Scan");
  for (int64_t b = 0; b < batch && !st; b++) {
    drt_value *iv;
    st = const_i64(L, &b, 1, true, &iv);
    for (int j = 0; j < nio && !st; j++) {
      drt_attr a = {0};
      a.name = "axis";
      a.type = DRT_ATTR_INT;
      a.i = 0;
      drt_value *in[2] = {n->inputs[first + j], iv};
      st = add_node(L, DRT_OP_GATHER, in, 2, NULL, &a, 1, &per[j]);
    }
    scan_job Jb = J;
    Jb.states = per;
    Jb.xs = per + nstate;
    char tag[48];
    snprintf(tag, sizeof tag, "b%" PRId64 "t", b);
    if (!st) st = run_scan(L, &Jb, tag, outs + (size_t)b * (size_t)n->num_outputs, NULL);
  }
  drt_value **col = calloc((size_t)batch + 1, sizeof *col);
  if (!col && !st) st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "lowering Scan");
  for (int k = 0; k < n->num_outputs && !st; k++) {
    for (int64_t b = 0; b < batch; b++) col[b] = outs[(size_t)b * (size_t)n->num_outputs + (size_t)k];
    char what[64];
    snprintf(what, sizeof what, "output %d", k);
    st = stack(L, col, (int)batch, 0, false, n->outputs[k], what);
  }
  free(col);
  free(per);
  free(outs);
  return st;
}

/* ---- FlexAttention ------------------------------------------------------------------------- */
static drt_status int_attr(drt_attr *a, const char *name, int64_t v) {
  memset(a, 0, sizeof *a);
  a->name = name;
  a->type = DRT_ATTR_INT;
  a->i = v;
  return DRT_OK;
}

/* K or V [B, Hkv, S, E] with each head repeated `rep` times: [B, Hkv * rep, S, E]. */
static drt_status repeat_heads(lower_ctx *L, drt_value *x, int64_t rep, drt_value **out) {
  if (rep == 1) {
    *out = x;
    return DRT_OK;
  }
  const int64_t *d = x->shape.dims;
  int64_t ax = 2, wide[5] = {d[0], d[1], rep, d[2], d[3]}, flat[4] = {d[0], d[1] * rep, d[2], d[3]};
  drt_value *axv, *wv, *fv, *u, *e;
  DRT_RETURN_IF_ERROR(const_i64(L, &ax, 1, false, &axv));
  DRT_RETURN_IF_ERROR(const_i64(L, wide, 5, false, &wv));
  DRT_RETURN_IF_ERROR(const_i64(L, flat, 4, false, &fv));
  drt_value *i1[2] = {x, axv};
  DRT_RETURN_IF_ERROR(add_node(L, DRT_OP_UNSQUEEZE, i1, 2, NULL, NULL, 0, &u));
  drt_value *i2[2] = {u, wv};
  DRT_RETURN_IF_ERROR(add_node(L, DRT_OP_EXPAND, i2, 2, NULL, NULL, 0, &e));
  drt_value *i3[2] = {e, fv};
  return add_node(L, DRT_OP_RESHAPE, i3, 2, NULL, NULL, 0, out);
}

static drt_status cast_to(lower_ctx *L, drt_value *x, drt_dtype dt, drt_value *out, drt_value **res) {
  if (x->dtype == dt && !out) {
    *res = x;
    return DRT_OK;
  }
  drt_attr a;
  int_attr(&a, "to", dt);
  return add_node(L, DRT_OP_CAST, &x, 1, out, &a, 1, res);
}

/* A modifier subgraph (score_mod / prob_mod): one tensor in, one out, same shape. */
static drt_status apply_mod(lower_ctx *L, const char *attr, drt_value **x) {
  const drt_graph *mod = graph_attr(L->cf, attr);
  if (!mod) return DRT_OK;
  char d[256];
  int nimp = L->cf->num_implicit_inputs;
  if ((int)mod->num_inputs - nimp != 1 || mod->num_outputs != 1)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: %s must take one tensor and give one", cf_label(L, d, sizeof d),
                     attr);
  drt_value **args = calloc(mod->num_inputs + 1, sizeof *args);
  if (!args) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "FlexAttention");
  args[0] = *x;
  for (int k = 0; k < nimp; k++) args[1 + k] = L->cf->inputs[L->cf->num_inputs - nimp + k];
  drt_value *res = NULL;
  drt_status st = instantiate(L, mod, args, attr, &res);
  free(args);
  if (st) return st;
  if (!res->has_shape || !drt_shape_equal(&res->shape, &(*x)->shape) || res->dtype != (*x)->dtype) {
    char a[128], b[128];
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: %s turns %s[%s] into %s[%s]; it must keep shape and dtype",
                     cf_label(L, d, sizeof d), attr, drt_dtype_name((*x)->dtype), drt_shape_str(&(*x)->shape, a, sizeof a),
                     drt_dtype_name(res->dtype), drt_shape_str(&res->shape, b, sizeof b));
  }
  *x = res;
  return DRT_OK;
}

static drt_status lower_flex_attention(lower_ctx *L) {
  drt_node *n = L->cf;
  char d[256];
  drt_value *q = n->inputs[0], *k = n->inputs[1], *v = n->inputs[2];
  if (n->num_inputs - n->num_implicit_inputs != 3 || !q->has_shape || !k->has_shape || !v->has_shape ||
      q->shape.rank != 4 || k->shape.rank != 4 || v->shape.rank != 4)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: Q, K and V must be rank-4 tensors", cf_label(L, d, sizeof d));
  if (!drt_dtype_is_float(q->dtype) || k->dtype != q->dtype || v->dtype != q->dtype)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: Q, K and V must share one float dtype", cf_label(L, d, sizeof d));
  const int64_t *qd = q->shape.dims, *kd = k->shape.dims, *vd = v->shape.dims;
  if (kd[0] != qd[0] || vd[0] != qd[0] || kd[1] != vd[1] || kd[2] != vd[2] || kd[3] != qd[3] || kd[1] < 1 ||
      qd[1] % kd[1])
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: Q [B, Hq, L, E], K [B, Hkv, S, E] and V [B, Hkv, S, Ev] with Hq "
                     "a multiple of Hkv", cf_label(L, d, sizeof d));
  const drt_attr *sa = drt_node_attr(n, "scale");
  double scale = sa && sa->type == DRT_ATTR_FLOAT ? (double)sa->f : 1.0 / sqrt((double)qd[3]);
  const drt_attr *spa = drt_node_attr(n, "softmax_precision");
  int64_t sp = spa && spa->type == DRT_ATTR_INT ? spa->i : 0;
  drt_dtype ct = spa ? (drt_dtype)sp : (q->dtype == DRT_DTYPE_FLOAT64 ? DRT_DTYPE_FLOAT64 : DRT_DTYPE_FLOAT32);
  if (sp < 0 || sp > 64 || !drt_dtype_is_float(ct))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: softmax_precision %" PRId64 " is not a float type",
                     cf_label(L, d, sizeof d), sp);
  int64_t rep = qd[1] / kd[1];
  drt_value *kr, *vr;
  DRT_RETURN_IF_ERROR(repeat_heads(L, k, rep, &kr));
  DRT_RETURN_IF_ERROR(repeat_heads(L, v, rep, &vr));
  /* Q and K each times sqrt(scale), the root taken in float32 and rounded to Q's dtype */
  float root = sqrtf((float)scale);
  drt_value *rv;
  drt_shape s0 = {0, {0}};
  char *name = unique_name(L, "sqrt_scale");
  drt_status cs = name ? drt_graph_add_const(L->g, name, DRT_DTYPE_FLOAT32, &s0, &root, &rv)
                       : DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "lowering FlexAttention");
  free(name);
  DRT_RETURN_IF_ERROR(cs);
  DRT_RETURN_IF_ERROR(cast_to(L, rv, q->dtype, NULL, &rv));
  drt_value *qs, *ks, *kt, *scores;
  drt_value *i1[2] = {q, rv}, *i2[2] = {kr, rv};
  DRT_RETURN_IF_ERROR(add_node(L, DRT_OP_MUL, i1, 2, NULL, NULL, 0, &qs));
  DRT_RETURN_IF_ERROR(add_node(L, DRT_OP_MUL, i2, 2, NULL, NULL, 0, &ks));
  drt_attr perm = {0};
  int64_t pv[4] = {0, 1, 3, 2};
  perm.name = "perm";
  perm.type = DRT_ATTR_INTS;
  perm.ints = pv;
  perm.count = 4;
  DRT_RETURN_IF_ERROR(add_node(L, DRT_OP_TRANSPOSE, &ks, 1, NULL, &perm, 1, &kt));
  drt_value *i3[2] = {qs, kt};
  DRT_RETURN_IF_ERROR(add_node(L, DRT_OP_MATMUL, i3, 2, NULL, NULL, 0, &scores));
  DRT_RETURN_IF_ERROR(cast_to(L, scores, ct, NULL, &scores));
  DRT_RETURN_IF_ERROR(apply_mod(L, "score_mod", &scores));
  drt_attr ax;
  int_attr(&ax, "axis", -1);
  drt_value *probs, *vc, *y;
  DRT_RETURN_IF_ERROR(add_node(L, DRT_OP_SOFTMAX, &scores, 1, NULL, &ax, 1, &probs));
  DRT_RETURN_IF_ERROR(apply_mod(L, "prob_mod", &probs));
  DRT_RETURN_IF_ERROR(cast_to(L, vr, ct, NULL, &vc));
  drt_value *i4[2] = {probs, vc};
  DRT_RETURN_IF_ERROR(add_node(L, DRT_OP_MATMUL, i4, 2, ct == v->dtype ? n->outputs[0] : NULL, NULL, 0, &y));
  if (ct != v->dtype) DRT_RETURN_IF_ERROR(cast_to(L, y, v->dtype, n->outputs[0], &y));
  return DRT_OK;
}

drt_status drt_lower_control_flow(drt_graph *g, drt_node *n, drt_cf_process_fn process, void *user) {
  lower_ctx L = {g, n, process, user, n->opset > 13 ? n->opset : 13};
  n->dead = true; /* its outputs get new producers below */
  drt_status st;
  switch (n->op) {
    case DRT_OP_IF: st = lower_if(&L); break;
    case DRT_OP_LOOP: st = lower_loop(&L); break;
    case DRT_OP_SCAN: st = lower_scan(&L); break;
    case DRT_OP_FLEX_ATTENTION: st = lower_flex_attention(&L); break;
    default: st = DRT_ERROR(DRT_STATUS_INTERNAL, "not a control-flow op: %s", drt_op_name(n->op));
  }
  return st;
}

/* ---- sequences ----------------------------------------------------------------------------- */
static drt_status make_sequence(lower_ctx *L, drt_value *v, drt_value *const *elems, int len) {
  drt_value **a = drt_arena_alloc_array(L->g->arena, (size_t)(len > 0 ? len : 1), sizeof *a);
  if (!a) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "sequence of %d tensors", len);
  for (int i = 0; i < len; i++) a[i] = elems[i];
  v->is_sequence = true;
  v->seq = a;
  v->seq_len = len;
  return DRT_OK;
}

static drt_status seq_input(lower_ctx *L, int i, drt_value **out) {
  char d[256];
  drt_value *v = drt_node_input(L->cf, i);
  if (!v || !v->is_sequence)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: input %d%s%s%s is not a sequence", cf_label(L, d, sizeof d), i,
                     v ? " '" : "", v ? v->name : "", v ? "'" : "");
  *out = v;
  return DRT_OK;
}

/* A constant position into a sequence of len tensors: [-len, len - 1], or [-len, len] when
 * inserting (len appends). *out is the normalized index. */
static drt_status seq_position(lower_ctx *L, int i, int len, bool insert, int *out) {
  char d[256];
  drt_value *p = drt_node_input(L->cf, i);
  if (!p) {
    *out = insert ? len : len - 1;
    return DRT_OK;
  }
  if (p->kind != DRT_VALUE_CONST)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: position '%s' must be a compile-time constant (sequences are "
                     "resolved when distilrt compiles)", cf_label(L, d, sizeof d), p->name);
  int64_t pos = 0, cnt = 0;
  if (p->dtype != DRT_DTYPE_INT32 && p->dtype != DRT_DTYPE_INT64)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: position '%s' must be int32 or int64", cf_label(L, d, sizeof d),
                     p->name);
  DRT_RETURN_IF_ERROR_CTX(drt_value_const_ints(p, &pos, 1, &cnt), "%s: position", cf_label(L, d, sizeof d));
  if (cnt != 1 || p->shape.rank != 0)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: position must be a scalar", cf_label(L, d, sizeof d));
  int64_t hi = insert ? len : len - 1;
  if (pos < -(int64_t)len || pos > hi)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: position %" PRId64 " is outside [%d, %" PRId64 "] for a "
                     "sequence of %d tensors", cf_label(L, d, sizeof d), pos, -len, hi, len);
  *out = (int)(pos < 0 ? pos + len : pos);
  return DRT_OK;
}

static drt_status lower_split_to_sequence(lower_ctx *L) {
  drt_node *n = L->cf;
  char d[256];
  drt_value *x = n->inputs[0], *split = drt_node_input(n, 1);
  if (!x->has_shape || x->is_sequence)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: input must be a tensor", cf_label(L, d, sizeof d));
  int axis = 0;
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_node_attr_int(n, "axis", 0), x->shape.rank, &axis), "%s: axis",
                          cf_label(L, d, sizeof d));
  int64_t dim = x->shape.dims[axis], sizes[DRT_CF_MAX_ITERATIONS], cnt = 0;
  bool squeeze = false;
  if (!split) { /* pieces of 1, the axis dropped unless keepdims */
    if (dim > DRT_CF_MAX_ITERATIONS)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: %" PRId64 " pieces, more than %d", cf_label(L, d, sizeof d), dim,
                       DRT_CF_MAX_ITERATIONS);
    for (int64_t i = 0; i < dim; i++) sizes[cnt++] = 1;
    squeeze = drt_node_attr_int(n, "keepdims", 1) == 0;
  } else {
    if (split->kind != DRT_VALUE_CONST)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: split '%s' must be a compile-time constant", cf_label(L, d, sizeof d),
                       split->name);
    int64_t got = 0;
    DRT_RETURN_IF_ERROR_CTX(drt_value_const_ints(split, sizes, DRT_CF_MAX_ITERATIONS, &got), "%s: split",
                            cf_label(L, d, sizeof d));
    if (split->shape.rank == 0) { /* one size: equal pieces, the last one smaller */
      int64_t s = sizes[0];
      if (s <= 0) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: split %" PRId64 " must be positive", cf_label(L, d, sizeof d), s);
      if (dim / s + (dim % s != 0) > DRT_CF_MAX_ITERATIONS)
        return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: more than %d pieces", cf_label(L, d, sizeof d), DRT_CF_MAX_ITERATIONS);
      cnt = 0;
      for (int64_t at = 0; at < dim; at += s) sizes[cnt++] = dim - at < s ? dim - at : s;
    } else {
      int64_t sum = 0;
      cnt = got;
      for (int64_t i = 0; i < cnt; i++) {
        if (sizes[i] < 0) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: negative split size", cf_label(L, d, sizeof d));
        sum += sizes[i];
      }
      if (sum != dim)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: split sizes add up to %" PRId64 ", the axis has %" PRId64,
                         cf_label(L, d, sizeof d), sum, dim);
    }
  }
  drt_value **pieces = calloc((size_t)cnt + 1, sizeof *pieces);
  if (!pieces) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "SplitToSequence");
  drt_status st = DRT_OK;
  drt_value *ax = NULL;
  int64_t axv = axis;
  st = const_i64(L, &axv, 1, false, &ax);
  int64_t at = 0;
  for (int64_t i = 0; i < cnt && !st; i++) {
    int64_t b = at, e = at + sizes[i];
    at = e;
    drt_value *bs = NULL, *es = NULL;
    st = const_i64(L, &b, 1, false, &bs);
    if (!st) st = const_i64(L, &e, 1, false, &es);
    drt_value *in[4] = {x, bs, es, ax};
    if (!st) st = add_node(L, DRT_OP_SLICE, in, 4, NULL, NULL, 0, &pieces[i]);
    if (!st && squeeze) {
      drt_value *sq[2] = {pieces[i], ax};
      st = add_node(L, DRT_OP_SQUEEZE, sq, 2, NULL, NULL, 0, &pieces[i]);
    }
  }
  if (!st) st = make_sequence(L, n->outputs[0], pieces, (int)cnt);
  free(pieces);
  return st;
}

drt_status drt_lower_sequence_op(drt_graph *g, drt_node *n, drt_cf_process_fn process, void *user) {
  lower_ctx L = {g, n, process, user, n->opset > 13 ? n->opset : 13};
  char d[256];
  n->dead = true;
  drt_value *s = NULL, *y = n->outputs[0];
  switch (n->op) {
    case DRT_OP_SEQUENCE_EMPTY: return make_sequence(&L, y, NULL, 0);
    case DRT_OP_SEQUENCE_CONSTRUCT:
      for (int i = 0; i < n->num_inputs; i++)
        if (!n->inputs[i] || n->inputs[i]->is_sequence || n->inputs[i]->dtype != n->inputs[0]->dtype)
          return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: inputs must be tensors of one dtype",
                           cf_label(&L, d, sizeof d));
      return make_sequence(&L, y, n->inputs, n->num_inputs);
    case DRT_OP_SEQUENCE_INSERT: {
      DRT_RETURN_IF_ERROR(seq_input(&L, 0, &s));
      drt_value *t = n->inputs[1];
      if (t->is_sequence || (s->seq_len && t->dtype != s->seq[0]->dtype))
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: the tensor must have the sequence's dtype",
                         cf_label(&L, d, sizeof d));
      int pos;
      DRT_RETURN_IF_ERROR(seq_position(&L, 2, s->seq_len, true, &pos));
      drt_value **e = calloc((size_t)s->seq_len + 2, sizeof *e);
      if (!e) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "SequenceInsert");
      for (int i = 0, k = 0; i <= s->seq_len; i++) e[i] = i == pos ? t : s->seq[k++];
      drt_status st = make_sequence(&L, y, e, s->seq_len + 1);
      free(e);
      return st;
    }
    case DRT_OP_SEQUENCE_ERASE: {
      DRT_RETURN_IF_ERROR(seq_input(&L, 0, &s));
      if (s->seq_len == 0)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: the sequence is empty", cf_label(&L, d, sizeof d));
      int pos;
      DRT_RETURN_IF_ERROR(seq_position(&L, 1, s->seq_len, false, &pos));
      drt_value **e = calloc((size_t)s->seq_len + 1, sizeof *e);
      if (!e) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "SequenceErase");
      for (int i = 0, k = 0; i < s->seq_len; i++)
        if (i != pos) e[k++] = s->seq[i];
      drt_status st = make_sequence(&L, y, e, s->seq_len - 1);
      free(e);
      return st;
    }
    case DRT_OP_SEQUENCE_AT: {
      DRT_RETURN_IF_ERROR(seq_input(&L, 0, &s));
      int pos;
      DRT_RETURN_IF_ERROR(seq_position(&L, 1, s->seq_len, false, &pos));
      return bind_output(&L, y, s->seq[pos]);
    }
    case DRT_OP_SEQUENCE_LENGTH: {
      DRT_RETURN_IF_ERROR(seq_input(&L, 0, &s));
      int64_t len = s->seq_len;
      drt_value *c;
      DRT_RETURN_IF_ERROR(const_i64(&L, &len, 1, true, &c));
      return bind_output(&L, y, c);
    }
    case DRT_OP_CONCAT_FROM_SEQUENCE: {
      DRT_RETURN_IF_ERROR(seq_input(&L, 0, &s));
      if (s->seq_len == 0)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: the sequence is empty", cf_label(&L, d, sizeof d));
      int64_t axis = drt_node_attr_int(n, "axis", 0);
      if (drt_node_attr_int(n, "new_axis", 0) != 0)
        return stack(&L, s->seq, s->seq_len, axis, false, y, "element");
      if (s->seq_len == 1) { /* a Concat of one input: the axis is still checked */
        int a0 = 0;
        DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(axis, s->seq[0]->shape.rank, &a0), "%s: axis",
                                cf_label(&L, d, sizeof d));
        return bind_output(&L, y, s->seq[0]);
      }
      drt_attr a = {0};
      a.name = "axis";
      a.type = DRT_ATTR_INT;
      a.i = axis;
      return add_node(&L, DRT_OP_CONCAT, s->seq, s->seq_len, y, &a, 1, NULL);
    }
    case DRT_OP_SPLIT_TO_SEQUENCE: return lower_split_to_sequence(&L);
    default: return DRT_ERROR(DRT_STATUS_INTERNAL, "not a sequence op: %s", drt_op_name(n->op));
  }
}
