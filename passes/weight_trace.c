#include "passes/weight_trace.h"

#include <stdlib.h>
#include <string.h>

#include "ir/infer.h"
#include "passes/control_flow.h"

#define DEFAULT_MAX_BYTES 4096 /* sources up to this size keep their bytes in the plan */

typedef struct snap_node {
  drt_node *node;
  int num_inputs;
  drt_value **inputs; /* as loaded */
} snap_node;

struct drt_weight_trace {
  uint64_t fingerprint;
  size_t num_consts;
  drt_value **consts;
  size_t num_nodes;
  snap_node *nodes;
  size_t num_outputs;
  drt_value **outputs;
};

void drt_weight_trace_destroy(drt_weight_trace *t) {
  if (!t) return;
  for (size_t i = 0; i < t->num_nodes; i++) free(t->nodes[i].inputs);
  free(t->nodes);
  free(t->consts);
  free(t->outputs);
  free(t);
}

drt_status drt_weight_trace_begin(const drt_graph *g, drt_weight_trace **out) {
  *out = NULL;
  drt_weight_trace *t = calloc(1, sizeof *t);
  if (!t) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "weight trace");
  t->fingerprint = drt_graph_fingerprint(g);
  t->consts = malloc((g->num_values + 1) * sizeof *t->consts);
  t->nodes = calloc(g->num_nodes + 1, sizeof *t->nodes);
  t->outputs = malloc((g->num_outputs + 1) * sizeof *t->outputs);
  if (!t->consts || !t->nodes || !t->outputs) goto oom;
  for (size_t i = 0; i < g->num_values; i++)
    if (g->values[i]->kind == DRT_VALUE_CONST && g->values[i]->has_shape) t->consts[t->num_consts++] = g->values[i];
  for (size_t i = 0; i < g->num_nodes; i++) {
    snap_node *s = &t->nodes[i];
    s->node = g->nodes[i];
    s->num_inputs = g->nodes[i]->num_inputs;
    s->inputs = malloc(((size_t)s->num_inputs + 1) * sizeof *s->inputs);
    if (!s->inputs) goto oom;
    memcpy(s->inputs, g->nodes[i]->inputs, (size_t)s->num_inputs * sizeof *s->inputs);
    t->num_nodes++;
  }
  memcpy(t->outputs, g->outputs, g->num_outputs * sizeof *t->outputs);
  t->num_outputs = g->num_outputs;
  *out = t;
  return DRT_OK;
oom:
  drt_weight_trace_destroy(t);
  return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "weight trace");
}

/* ---- analysis state ------------------------------------------------------------------------ */
enum { IN_NONE = 0, IN_SOURCE, IN_FROZEN, IN_STEP };

typedef struct trace_ctx {
  drt_weight_trace *t;
  const drt_graph *g;
  uint32_t n;              /* ids below n */
  int32_t *prod;           /* value id -> snapshot node index, -1 */
  uint8_t *is_src;         /* value id -> 1 for a model constant */
  int8_t *dep;             /* value id -> -1 unknown, 0, 1 (depends on a source) */
  uint8_t *member;         /* value id -> IN_* (part of the trace graph) */
  uint8_t *needed;         /* value id -> 1 for a trace output */
  uint8_t *step;           /* snapshot node index -> 1 when in the trace graph */
  drt_value **trace_val;   /* value id -> value of the trace graph */
} trace_ctx;

static bool folded(const trace_ctx *c, int32_t ni) {
  const drt_node *n = c->t->nodes[ni].node;
  /* control flow folds through the nodes its lowering made, which the snapshot does not hold:
     its constant outputs are kept as they are (not recomputed when weights are refitted) */
  if (n->num_outputs < 1 || drt_op_is_control_flow(n->op)) return false;
  for (int j = 0; j < n->num_outputs; j++) {
    const drt_value *v = n->outputs[j];
    if (v->kind != DRT_VALUE_CONST || v->id >= c->n || c->is_src[v->id]) return false;
  }
  return true;
}

static bool shape_only(drt_op op) { return op == DRT_OP_SHAPE || op == DRT_OP_SIZE; }

/* Does v depend on a source (through folded nodes)? Memoized; depth-limited (fold chains are
 * short; beyond the limit the value is treated as independent and so never refitted, which
 * refit then reports through the baked check of its consumers' sources). */
static bool depends(trace_ctx *c, const drt_value *v, int depth) {
  if (!v || v->id >= c->n) return false;
  if (c->dep[v->id] >= 0) return c->dep[v->id];
  bool d = false;
  if (c->is_src[v->id]) {
    d = drt_dtype_is_float(v->dtype); /* integer constants are structure (shapes, axes, indices) */
  } else if (c->prod[v->id] >= 0 && depth < 10000 && folded(c, c->prod[v->id])) {
    const drt_node *n = c->t->nodes[c->prod[v->id]].node;
    if (!shape_only(n->op))
      for (int j = 0; j < n->num_inputs && !d; j++) d = depends(c, n->inputs[j], depth + 1);
  }
  c->dep[v->id] = d;
  return d;
}

/* Adds v (a dependent value) and everything its fold needs to the trace. */
static void add_member(trace_ctx *c, const drt_value *v) {
  if (!v || v->id >= c->n || c->member[v->id]) return;
  if (c->is_src[v->id]) {
    c->member[v->id] = IN_SOURCE;
    return;
  }
  int32_t ni = c->prod[v->id];
  if (ni < 0 || !folded(c, ni) || !depends(c, v, 0)) {
    c->member[v->id] = IN_FROZEN;
    return;
  }
  c->member[v->id] = IN_STEP;
  if (c->step[ni]) return;
  c->step[ni] = 1;
  const drt_node *n = c->t->nodes[ni].node;
  for (int j = 0; j < n->num_outputs; j++)
    if (n->outputs[j]->id < c->n && !c->member[n->outputs[j]->id]) c->member[n->outputs[j]->id] = IN_STEP;
  for (int j = 0; j < n->num_inputs; j++) {
    const drt_value *u = n->inputs[j];
    if (!u) continue;
    if (depends(c, u, 0)) add_member(c, u);
    else if (u->id < c->n && !c->member[u->id]) c->member[u->id] = IN_FROZEN;
  }
}

/* Marks the sources behind a dependent value as baked. */
static void mark_baked_leaves(trace_ctx *c, const drt_value *v, uint8_t *baked, int depth) {
  if (!v || v->id >= c->n || depth > 10000) return;
  if (c->is_src[v->id]) {
    baked[v->id] = 1;
    return;
  }
  int32_t ni = c->prod[v->id];
  if (ni < 0 || !folded(c, ni)) return;
  const drt_node *n = c->t->nodes[ni].node;
  for (int j = 0; j < n->num_inputs; j++)
    if (depends(c, n->inputs[j], 0)) mark_baked_leaves(c, n->inputs[j], baked, depth + 1);
}

/* ---- content matching for pass-created constants ------------------------------------------- */
static bool same_elements_cast(const drt_value *c, const drt_value *cand) {
  size_t n = (size_t)drt_shape_numel(&c->shape), es = drt_dtype_size(c->dtype);
  uint8_t buf[256 * 8];
  size_t per = sizeof buf / es;
  for (size_t i = 0; i < n; i += per) {
    size_t k = n - i < per ? n - i : per;
    drt_convert(c->dtype, buf, cand->dtype, (const uint8_t *)cand->data + i * drt_dtype_size(cand->dtype), k);
    if (memcmp(buf, (const uint8_t *)c->data + i * es, k * es) != 0) return false;
  }
  return true;
}

static bool matches(const drt_value *c, const drt_value *cand, drt_derive_kind kind, uint32_t *factor) {
  int64_t n = drt_shape_numel(&c->shape), cn = drt_shape_numel(&cand->shape);
  size_t es = drt_dtype_size(c->dtype);
  if (!cand->data || !c->data || n <= 0 || cn <= 0) return false;
  switch (kind) {
    case DRT_DERIVE_BYTES:
      return cand->dtype == c->dtype && cn == n && memcmp(cand->data, c->data, (size_t)n * es) == 0;
    case DRT_DERIVE_CAST:
      return cand->dtype != c->dtype && cn == n && drt_dtype_is_float(c->dtype) && drt_dtype_is_float(cand->dtype) &&
             same_elements_cast(c, cand);
    case DRT_DERIVE_TRANSPOSE: {
      if (cand->dtype != c->dtype || cn != n || cand->shape.rank != 2 || cand->shape.dims[0] < 2 ||
          cand->shape.dims[1] < 2)
        return false;
      size_t rows = (size_t)cand->shape.dims[0], cols = (size_t)cand->shape.dims[1];
      const uint8_t *s = cand->data, *d = c->data;
      for (size_t r = 0; r < rows; r++)
        for (size_t k = 0; k < cols; k++)
          if (memcmp(d + (k * rows + r) * es, s + (r * cols + k) * es, es) != 0) return false;
      return true;
    }
    case DRT_DERIVE_REPEAT: {
      if (cand->dtype != c->dtype || cn < 2 || n <= cn || n % cn != 0) return false;
      size_t f = (size_t)(n / cn);
      const uint8_t *s = cand->data, *d = c->data;
      for (size_t i = 0; i < (size_t)n; i++)
        if (memcmp(d + i * es, s + (i / f) * es, es) != 0) return false;
      *factor = (uint32_t)f;
      return true;
    }
  }
  return false;
}

/* ---- finish ------------------------------------------------------------------------------------ */
typedef struct pending_derived {
  const drt_value *target;
  drt_derive_kind kind;
  uint32_t factor, num;
  const drt_value *cands[DRT_PROV_MAX_CANDIDATES];
} pending_derived;

drt_status drt_weight_trace_finish(drt_weight_trace *t, const drt_graph *g, const drt_graph *const *extra,
                                   size_t num_extra, uint32_t bucket, drt_plan_provenance **out) {
  *out = NULL;
  trace_ctx c;
  memset(&c, 0, sizeof c);
  c.t = t;
  c.g = g;
  c.n = g->next_id;
  drt_status st = DRT_OK;
  size_t nconst_final = 0;
  const drt_value **final_consts = NULL, **cand = NULL, **needed_list = NULL;
  pending_derived *pend = NULL;
  const drt_value **opaque = NULL;
  size_t num_pend = 0, num_opaque = 0, num_cand = 0, num_needed = 0;
  uint8_t *baked = NULL, *reach = NULL, *is_final = NULL, *frozen_src = NULL;
  drt_plan_provenance *p = NULL;
  drt_graph *tg = NULL;
  c.prod = malloc((size_t)(c.n + 1) * sizeof *c.prod);
  c.is_src = calloc(c.n + 1, 1);
  c.dep = malloc(c.n + 1);
  c.member = calloc(c.n + 1, 1);
  c.needed = calloc(c.n + 1, 1);
  c.step = calloc(t->num_nodes + 1, 1);
  c.trace_val = calloc(c.n + 1, sizeof *c.trace_val);
  baked = calloc(c.n + 1, 1);
  reach = calloc(t->num_nodes + 1, 1);
  is_final = calloc(c.n + 1, 1);
  size_t extra_values = 0;
  for (size_t k = 0; k < num_extra; k++) extra_values += extra[k] ? extra[k]->num_values : 0;
  final_consts = malloc((g->num_values + extra_values + 1) * sizeof *final_consts);
  needed_list = malloc((g->num_values + t->num_consts + 16 * (t->num_nodes + 1)) * sizeof *needed_list);
  pend = calloc(g->num_values + extra_values + 1, sizeof *pend);
  opaque = malloc((g->num_values + extra_values + 1) * sizeof *opaque);
  cand = malloc((t->num_consts + 16 * (t->num_nodes + 1)) * sizeof *cand);
  if (!c.prod || !c.is_src || !c.dep || !c.member || !c.needed || !c.step || !c.trace_val || !baked || !reach || !is_final ||
      !final_consts || !needed_list || !pend || !opaque || !cand) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "weight trace");
    goto done;
  }
  for (uint32_t i = 0; i < c.n; i++) c.prod[i] = -1;
  memset(c.dep, 0xff, c.n + 1);
  for (size_t i = 0; i < t->num_consts; i++)
    if (t->consts[i]->id < c.n) c.is_src[t->consts[i]->id] = 1;
  for (size_t i = 0; i < t->num_nodes; i++) {
    const drt_node *n = t->nodes[i].node;
    for (int j = 0; j < n->num_outputs; j++)
      if (n->outputs[j]->id < c.n) c.prod[n->outputs[j]->id] = (int32_t)i;
  }
  /* the plan's constants */
  for (size_t i = 0; i < g->num_values; i++)
    if (g->values[i]->kind == DRT_VALUE_CONST && g->values[i]->id < c.n) {
      final_consts[nconst_final++] = g->values[i];
      is_final[g->values[i]->id] = 1;
    }
  /* traced candidates for content matching: every dependent value with data */
  for (size_t i = 0; i < t->num_consts; i++) cand[num_cand++] = t->consts[i];
  for (size_t i = 0; i < t->num_nodes; i++) {
    if (!folded(&c, (int32_t)i)) continue;
    const drt_node *n = t->nodes[i].node;
    for (int j = 0; j < n->num_outputs && num_cand < t->num_consts + 16 * (t->num_nodes + 1); j++)
      if (depends(&c, n->outputs[j], 0)) cand[num_cand++] = n->outputs[j];
  }
  size_t nconst_main = nconst_final;
  /* constants of the other graphs (hoisted stages) are copies made by passes: content only */
  for (size_t k = 0; k < num_extra; k++)
    for (size_t i = 0; extra[k] && i < extra[k]->num_values; i++)
      if (extra[k]->values[i]->kind == DRT_VALUE_CONST) final_consts[nconst_final++] = extra[k]->values[i];
  for (size_t i = 0; i < nconst_final; i++) {
    const drt_value *v = final_consts[i];
    bool in_main = i < nconst_main;
    if (in_main && depends(&c, v, 0)) {
      if (!c.needed[v->id]) {
        c.needed[v->id] = 1;
        needed_list[num_needed++] = v;
      }
      continue;
    }
    if (in_main && (c.is_src[v->id] || (c.prod[v->id] >= 0 && folded(&c, c.prod[v->id]))))
      continue; /* weight-independent */
    /* created by a pass: match by content, most specific transform first */
    static const drt_derive_kind kinds[] = {DRT_DERIVE_BYTES, DRT_DERIVE_CAST, DRT_DERIVE_TRANSPOSE,
                                            DRT_DERIVE_REPEAT};
    pending_derived *d = &pend[num_pend];
    memset(d, 0, sizeof *d);
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0] && d->num == 0; k++) {
      for (size_t m = 0; m < num_cand && d->num < DRT_PROV_MAX_CANDIDATES; m++) {
        uint32_t f = 0;
        if (!matches(v, cand[m], kinds[k], &f)) continue;
        if (d->num && kinds[k] == DRT_DERIVE_REPEAT && f != d->factor) continue;
        d->kind = kinds[k];
        d->factor = f;
        d->cands[d->num++] = cand[m];
      }
    }
    if (d->num) {
      d->target = v;
      num_pend++;
      for (uint32_t k = 0; k < d->num; k++)
        if (!c.needed[d->cands[k]->id]) {
          c.needed[d->cands[k]->id] = 1;
          needed_list[num_needed++] = d->cands[k];
        }
    } else {
      opaque[num_opaque++] = v;
    }
  }
  for (size_t i = 0; i < num_needed; i++) add_member(&c, needed_list[i]);
  /* reachability in the model as loaded, then baked sources */
  {
    uint8_t *live = calloc(c.n + 1, 1);
    if (!live) {
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "weight trace");
      goto done;
    }
    for (size_t i = 0; i < t->num_outputs; i++)
      if (t->outputs[i]->id < c.n) live[t->outputs[i]->id] = 1;
    for (size_t k = t->num_nodes; k-- > 0;) {
      const drt_node *n = t->nodes[k].node;
      bool any = false;
      for (int j = 0; j < n->num_outputs && !any; j++) any = n->outputs[j]->id < c.n && live[n->outputs[j]->id];
      if (!any) continue;
      reach[k] = 1;
      for (int j = 0; j < t->nodes[k].num_inputs; j++)
        if (t->nodes[k].inputs[j] && t->nodes[k].inputs[j]->id < c.n) live[t->nodes[k].inputs[j]->id] = 1;
    }
    free(live);
  }
  for (size_t k = 0; k < t->num_nodes; k++) {
    if (!reach[k] || folded(&c, (int32_t)k) || shape_only(t->nodes[k].node->op)) continue;
    /* control flow was lowered into nodes the snapshot does not hold, so what it computed from
       weights cannot be replayed: every weight it reads is baked (a refit that changes one is
       refused), even one the plan also holds as it is */
    bool cf = drt_op_is_control_flow(t->nodes[k].node->op);
    for (int j = 0; j < t->nodes[k].num_inputs; j++) {
      const drt_value *u = t->nodes[k].inputs[j];
      if (u && u->id < c.n && depends(&c, u, 0) && (cf || !c.member[u->id])) mark_baked_leaves(&c, u, baked, 0);
    }
  }

  /* ---- the trace graph ----
   * Sources become its inputs, except those that must stay constants: non-float sources (shape
   * operands, indices) from the start, and small sources an operator needs as a compile-time
   * constant (found when inference refuses them; then the graph is rebuilt). Those are frozen
   * and baked: a refit keeps them and refuses a change. */
  frozen_src = calloc(c.n + 1, 1);
  if (!frozen_src) goto oom;
  for (size_t i = 0; i < t->num_consts; i++)
    if (!drt_dtype_is_float(t->consts[i]->dtype)) frozen_src[t->consts[i]->id] = 1;
  drt_arena *a = NULL;
  for (int attempt = 0;; attempt++) {
    memset(c.trace_val, 0, (size_t)(c.n + 1) * sizeof *c.trace_val);
    st = drt_graph_create(&tg);
    if (st) goto done;
    tg->opset = g->opset;
    tg->name = "trace";
    p = calloc(1, sizeof *p);
    if (!p) {
      drt_graph_destroy(tg);
      tg = NULL;
      goto oom;
    }
    p->bucket = bucket;
    p->fingerprint = t->fingerprint;
    p->trace = tg;
    a = tg->arena;
    size_t nsrc = 0;
    for (size_t i = 0; i < t->num_consts; i++) nsrc += c.member[t->consts[i]->id] == IN_SOURCE;
    p->sources = drt_arena_alloc_array(a, nsrc + 1, sizeof *p->sources);
    if (!p->sources) goto oom;
    for (size_t i = 0; i < t->num_consts; i++) {
      drt_value *v = t->consts[i];
      if (c.member[v->id] != IN_SOURCE || frozen_src[v->id]) continue;
      drt_value *tv = drt_graph_add_value(tg, v->name, v->dtype, &v->shape);
      if (!tv) goto oom;
      tv->kind = DRT_VALUE_INPUT;
      st = drt_graph_add_input(tg, tv);
      if (st) goto done;
      c.trace_val[v->id] = tv;
      drt_prov_source *s = &p->sources[tg->num_inputs - 1];
      s->hash = drt_weights_hash(v->data, v->nbytes);
      /* a source the plan holds needs no copy */
      s->default_data = !is_final[v->id] && v->nbytes <= DEFAULT_MAX_BYTES ? v->data : NULL;
      s->target.value = is_final[v->id] ? v : NULL;
      s->target.offset = UINT64_MAX;
    }
    for (size_t k = 0; k < t->num_nodes; k++) {
      if (!c.step[k]) continue;
      const drt_node *n = t->nodes[k].node;
      drt_value *ins[64], *outs[16];
      if (n->num_inputs > 64 || n->num_outputs > 16) {
        st = DRT_ERROR(DRT_STATUS_INTERNAL, "weight trace: folded node '%s' has too many inputs or outputs", n->name);
        goto done;
      }
      for (int j = 0; j < n->num_inputs; j++) {
        const drt_value *u = n->inputs[j];
        ins[j] = NULL;
        if (!u) continue;
        if (!c.trace_val[u->id]) {
          /* weight-independent operand or frozen source: a constant of the trace graph */
          drt_value *fv;
          st = drt_graph_add_const(tg, u->name, u->dtype, &u->shape, u->data, &fv);
          if (st) goto done;
          c.trace_val[u->id] = fv;
        }
        ins[j] = c.trace_val[u->id];
      }
      for (int j = 0; j < n->num_outputs; j++) {
        const drt_value *o = n->outputs[j];
        drt_value *ov = drt_graph_add_value(tg, o->name, o->dtype, &o->shape);
        if (!ov) goto oom;
        c.trace_val[o->id] = ov;
        outs[j] = ov;
      }
      drt_node *tn;
      st = drt_graph_add_node(tg, n->op, n->name, ins, n->num_inputs, outs, n->num_outputs, &tn);
      if (st) goto done;
      tn->opset = n->opset;
      for (int j = 0; j < n->num_attrs; j++) {
        st = drt_node_add_attr(tg, tn, &n->attrs[j]);
        if (st) goto done;
      }
    }
    /* frozen sources the plan holds directly */
    for (size_t i = 0; i < num_needed; i++) {
      const drt_value *v = needed_list[i];
      if (c.trace_val[v->id] || !frozen_src[v->id]) continue;
      drt_value *fv;
      st = drt_graph_add_const(tg, v->name, v->dtype, &v->shape, v->data, &fv);
      if (st) goto done;
      c.trace_val[v->id] = fv;
    }
    st = drt_graph_topo_sort(tg);
    drt_node *failed = NULL;
    for (size_t k = 0; k < tg->num_nodes && !st; k++) {
      drt_node *n = tg->nodes[k];
      drt_shape want[16];
      for (int j = 0; j < n->num_outputs; j++) want[j] = n->outputs[j]->shape;
      st = drt_infer_node(tg, n);
      if (st) failed = n;
      for (int j = 0; j < n->num_outputs && !st; j++)
        if (!drt_shape_equal(&want[j], &n->outputs[j]->shape))
          st = DRT_ERROR(DRT_STATUS_INTERNAL, "weight trace: replaying '%s' gives another shape", n->name);
    }
    if (!st) break;
    /* an operand that must be constant: freeze the small sources this node reads, retry */
    bool froze = false;
    for (int j = 0; failed && attempt < 64 && drt_status_code_of(st) == DRT_STATUS_UNSUPPORTED && j < failed->num_inputs;
         j++) {
      const drt_value *u = failed->inputs[j];
      if (!u || u->kind != DRT_VALUE_INPUT) continue;
      for (size_t i = 0; i < t->num_consts; i++) {
        const drt_value *v = t->consts[i];
        if (strcmp(v->name, u->name) == 0 && v->nbytes <= DEFAULT_MAX_BYTES && !frozen_src[v->id]) {
          frozen_src[v->id] = 1;
          froze = true;
        }
      }
    }
    if (!froze) goto done;
    drt_status_free(st);
    st = DRT_OK;
    drt_provenance_destroy(p);
    p = NULL;
    tg = NULL;
  }
  for (size_t i = 0; i < t->num_consts; i++)
    if (frozen_src[t->consts[i]->id] && c.member[t->consts[i]->id]) baked[t->consts[i]->id] = 1;
  /* outputs: the needed values the trace computes (sources are written from their own data) */
  uint32_t *ref = malloc((num_needed + 1) * sizeof *ref);
  p->targets = drt_arena_alloc_array(a, num_needed + 1, sizeof *p->targets);
  if (!p->targets || !ref) {
    free(ref);
    goto oom;
  }
  for (size_t i = 0; i < num_needed; i++) {
    const drt_value *v = needed_list[i];
    drt_value *tv = c.trace_val[v->id];
    if (!tv) {
      free(ref);
      st = DRT_ERROR(DRT_STATUS_INTERNAL, "weight trace: '%s' was not traced", v->name);
      goto done;
    }
    if (tv->kind == DRT_VALUE_INPUT) {
      size_t k = 0;
      while (k < tg->num_inputs && tg->inputs[k] != tv) k++;
      ref[i] = DRT_PROV_CAND_SOURCE | (uint32_t)k;
      continue;
    }
    ref[i] = (uint32_t)tg->num_outputs;
    p->targets[tg->num_outputs].value = is_final[v->id] ? v : NULL;
    p->targets[tg->num_outputs].offset = UINT64_MAX;
    st = drt_graph_add_output(tg, tv);
    if (st) {
      free(ref);
      goto done;
    }
  }
  p->derived = drt_arena_alloc_array(a, num_pend + 1, sizeof *p->derived);
  if (!p->derived) goto oom;
  for (size_t i = 0; i < num_pend; i++) {
    drt_prov_derived *d = &p->derived[i];
    d->target.value = pend[i].target;
    d->target.offset = UINT64_MAX;
    d->dtype = pend[i].target->dtype;
    d->shape = pend[i].target->shape;
    d->kind = pend[i].kind;
    d->factor = pend[i].factor;
    d->num_candidates = pend[i].num;
    for (uint32_t k = 0; k < pend[i].num; k++)
      for (size_t o = 0; o < num_needed; o++)
        if (needed_list[o] == pend[i].cands[k]) d->candidates[k] = ref[o];
  }
  free(ref);
  p->num_derived = num_pend;
  p->opaque = drt_arena_alloc_array(a, num_opaque + 1, sizeof *p->opaque);
  if (!p->opaque) goto oom;
  for (size_t i = 0; i < num_opaque; i++) {
    p->opaque[i].target.value = opaque[i];
    p->opaque[i].target.offset = UINT64_MAX;
    p->opaque[i].name = drt_arena_strdup(a, opaque[i]->name);
  }
  p->num_opaque = num_opaque;
  size_t nb = 0;
  for (size_t i = 0; i < t->num_consts; i++) nb += baked[t->consts[i]->id];
  p->baked = drt_arena_alloc_array(a, nb + 1, sizeof *p->baked);
  if (!p->baked) goto oom;
  for (size_t i = 0; i < t->num_consts; i++) {
    const drt_value *v = t->consts[i];
    if (!baked[v->id]) continue;
    drt_prov_baked *b = &p->baked[p->num_baked++];
    b->name = drt_arena_strdup(a, v->name);
    b->dtype = v->dtype;
    b->shape = v->shape;
    b->hash = drt_weights_hash(v->data, v->nbytes);
  }
  *out = p;
  p = NULL;
  tg = NULL;
  goto done;
oom:
  st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "weight trace");
done:
  if (p) drt_provenance_destroy(p);
  else drt_graph_destroy(tg);
  free(c.prod);
  free(c.is_src);
  free(c.dep);
  free(c.member);
  free(c.needed);
  free(c.step);
  free(c.trace_val);
  free(baked);
  free(reach);
  free(is_final);
  free(frozen_src);
  free(final_consts);
  free(needed_list);
  free(pend);
  free(opaque);
  free(cand);
  return st;
}

drt_status drt_weight_trace_sources(const drt_weight_trace *t, const drt_plan_provenance *p, drt_named_tensor **out,
                                    size_t *count) {
  *out = NULL;
  *count = 0;
  drt_named_tensor *s = calloc(t->num_consts + 1, sizeof *s);
  if (!s) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "weight trace");
  size_t n = 0;
  for (size_t i = 0; i < t->num_consts; i++) {
    const drt_value *v = t->consts[i];
    bool in = false;
    for (size_t k = 0; k < p->trace->num_inputs && !in; k++) in = strcmp(p->trace->inputs[k]->name, v->name) == 0;
    for (size_t k = 0; k < p->num_baked && !in; k++) in = strcmp(p->baked[k].name, v->name) == 0;
    if (!in) continue;
    s[n].name = v->name;
    s[n].t.dtype = v->dtype;
    s[n].t.shape = v->shape;
    s[n].t.data = v->data;
    n++;
  }
  *out = s;
  *count = n;
  return DRT_OK;
}
