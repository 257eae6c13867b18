/* Step-invariant hoisting (pass "hoist").
 *
 *   text[B,77,768] (invariant)      t[B] (timestep)         x[B,...] (latent)
 *        |                              |                        |
 *   K/V projections            t-embedding MLP, adaLN       the network
 *        |                     modulation Gemms                  |
 *   -----+------------ prologue ---+-- step stage -------------- + ---- main (per step) ----
 *        v                         v                             v
 *   main input "…/kv/MatMul_output_0"   main input "…/adaLN…/Gemm_output_0"
 *
 * Every value gets the set of input classes it depends on: invariant (I: conditioning inputs,
 * by default every input except the latent, the timestep and the inputs cfg-fold adds; or the
 * inputs named by --invariant), timestep (T), per-step (S: everything else). Constants depend
 * on nothing. A node whose outputs depend on I alone goes to the prologue graph, which the
 * session runs once per generation; with a schedule fixed at compile time (ctx->sched_steps),
 * a node that depends on T alone goes to the step graph, which is evaluated here for every
 * step of that schedule and stored as per-step tables (the session looks a row up instead of
 * running it when the generation uses the same timesteps, and runs the step graph otherwise).
 * Ops at the border whose consumers all stay in the main graph move back into it when they
 * cost nothing there: outputs that are regions of their input (Reshape, Squeeze, Unsqueeze,
 * Split chunks and Slices that are dense runs, 64-byte aligned) become views of a main-graph
 * input (memory plan), where in the stage each would be a separate stage output, a copy; and a
 * Transpose or a multiplication by a scalar constant that compute reads directly (not through
 * another movement op) is absorbed there (the K^T and the score scale of an attention, an
 * operand layout of a GEMM). Everything else the stage computes stays there, the cheap ops
 * included (bias adds, which fuse into the stage GEMM; head-split transposes; adaLN table sums):
 * they run once per generation (prologue) or become table rows (step stage) instead of once
 * per step. Values crossing the border become inputs of the main
 * graph (named as before, appended after the user's inputs). The main graph keeps every user
 * input, used or not, so the plan's signature is unchanged. Results are identical: the same
 * kernels run on the same data, only earlier. */
#include "passes/hoist.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer_movement.h"
#include "runtime/cpu/executor.h"

enum { DEP_I = 1, DEP_T = 2, DEP_S = 4 };
enum { ST_MAIN = 0, ST_PROLOGUE = 1, ST_STEP = 2 };

double drt_node_flops(const drt_node *n) {
  const drt_value *o = n->num_outputs ? n->outputs[0] : NULL;
  if (!o || !o->has_shape) return 0;
  double out = (double)drt_shape_numel(&o->shape);
  const drt_value *a = drt_node_input(n, 0), *w = drt_node_input(n, 1);
  if (!a || !w) return 0;
  switch (n->op) {
    case DRT_OP_MATMUL:
      return 2.0 * out * (double)(a->shape.rank ? a->shape.dims[a->shape.rank - 1] : 1);
    case DRT_OP_GEMM:
      if (a->shape.rank != 2) return 0;
      return 2.0 * out * (double)(drt_node_attr_int(n, "transA", 0) ? a->shape.dims[0] : a->shape.dims[1]);
    case DRT_OP_CONV: {
      double k = 1;
      for (int i = 1; i < w->shape.rank; i++) k *= (double)w->shape.dims[i];
      return 2.0 * out * k;
    }
    case DRT_OP_CONV_TRANSPOSE: {
      double k = 1;
      for (int i = 1; i < w->shape.rank; i++) k *= (double)w->shape.dims[i];
      return 2.0 * (double)drt_shape_numel(&a->shape) * k;
    }
    default:
      return 0;
  }
}

/* A Transpose, or a Mul/Div of a tensor by a one-element constant. */
static bool is_absorbable(const drt_node *n) {
  if (n->op == DRT_OP_TRANSPOSE) return true;
  if ((n->op != DRT_OP_MUL && n->op != DRT_OP_DIV) || n->num_inputs != 2 || !n->inputs[0] || !n->inputs[1])
    return false;
  const drt_value *c = n->inputs[1]->kind == DRT_VALUE_CONST ? n->inputs[1] : n->op == DRT_OP_MUL ? n->inputs[0] : NULL;
  return c && c->kind == DRT_VALUE_CONST && c->has_shape && drt_shape_numel(&c->shape) == 1;
}

/* Every output of n is a region of its input 0 that a view can share (ir/infer_movement.h). */
static bool is_view_op(const drt_node *n) {
  if (n->num_outputs < 1) return false;
  for (int j = 0; j < n->num_outputs; j++) {
    int64_t off;
    if (!n->outputs[j] || !drt_node_output_is_region(n, j, &off) || !drt_view_offset_aligned(n->outputs[j]->dtype, off))
      return false;
  }
  return true;
}

static bool named(const char *const *names, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (names[i] && strcmp(names[i], name) == 0) return true;
  return false;
}

/* ---- building a stage graph ----------------------------------------------------------------- */
static drt_value *copy_value(drt_graph *sg, const drt_value *v) {
  drt_value *c = drt_graph_add_value(sg, v->name, v->dtype, &v->shape);
  if (!c) return NULL;
  for (int d = 0; d < DRT_MAX_RANK; d++) c->dim_params[d] = NULL;
  return c;
}

static drt_status copy_attr(drt_graph *sg, drt_node *dst, const drt_attr *a) {
  drt_attr c = *a;
  if (a->type == DRT_ATTR_TENSOR && a->tensor) {
    drt_value *t = drt_arena_alloc(sg->arena, sizeof *t);
    if (!t) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "hoist");
    *t = *a->tensor;
    t->data = drt_arena_alloc(sg->arena, a->tensor->nbytes ? a->tensor->nbytes : 1);
    if (!t->data) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "hoist");
    memcpy(t->data, a->tensor->data, a->tensor->nbytes);
    c.tensor = t;
  }
  return drt_node_add_attr(sg, dst, &c);
}

/* Moves the nodes of stage `which` into a new graph; values they produce that main-graph nodes
 * read become main-graph inputs. */
static drt_status extract(drt_graph *g, const uint8_t *stage, int which, drt_graph **out) {
  drt_graph *sg = NULL;
  DRT_RETURN_IF_ERROR(drt_graph_create(&sg));
  sg->opset = g->opset;
  sg->name = which == ST_PROLOGUE ? "prologue" : "step";
  drt_value **map = calloc(g->next_id ? g->next_id : 1, sizeof(drt_value *));
  uint8_t *main_use = calloc(g->next_id ? g->next_id : 1, 1);
  drt_status st = DRT_OK;
  if (!map || !main_use) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "hoist");
    goto done;
  }
  for (size_t i = 0; i < g->num_nodes; i++) {
    const drt_node *n = g->nodes[i];
    if (stage[n->id] != ST_MAIN) continue;
    for (int j = 0; j < n->num_inputs; j++)
      if (n->inputs[j]) main_use[n->inputs[j]->id] = 1;
  }
  for (size_t i = 0; i < g->num_nodes && !st; i++) {
    drt_node *n = g->nodes[i];
    if (stage[n->id] != which) continue;
    drt_value *ins[256], *outs[64];
    if (n->num_inputs > 256 || n->num_outputs > 64) {
      st = DRT_ERROR(DRT_STATUS_UNSUPPORTED, "hoist: node '%s' has too many inputs or outputs", n->name);
      break;
    }
    for (int j = 0; j < n->num_inputs && !st; j++) {
      drt_value *v = n->inputs[j];
      ins[j] = NULL;
      if (!v) continue;
      if (!map[v->id]) {
        if (v->kind == DRT_VALUE_INTERMEDIATE) {
          st = DRT_ERROR(DRT_STATUS_INTERNAL, "hoist: '%s' is read by the %s before it is produced", v->name, sg->name);
          break;
        }
        drt_value *c = copy_value(sg, v);
        if (!c) {
          st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "hoist");
          break;
        }
        if (v->kind == DRT_VALUE_CONST) st = drt_value_make_const(sg, c, v->data, v->nbytes);
        else st = drt_graph_add_input(sg, c);
        map[v->id] = c;
      }
      ins[j] = map[v->id];
    }
    for (int j = 0; j < n->num_outputs && !st; j++) {
      outs[j] = copy_value(sg, n->outputs[j]);
      if (!outs[j]) st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "hoist");
      else map[n->outputs[j]->id] = outs[j];
    }
    if (st) break;
    drt_node *c;
    st = drt_graph_add_node(sg, n->op, n->name, ins, n->num_inputs, outs, n->num_outputs, &c);
    if (st) break;
    c->opset = n->opset;
    for (int k = 0; k < n->num_attrs && !st; k++) st = copy_attr(sg, c, &n->attrs[k]);
  }
  /* the border: stage values that main nodes read */
  for (size_t i = 0; i < g->num_nodes && !st; i++) {
    drt_node *n = g->nodes[i];
    if (stage[n->id] != which) continue;
    for (int j = 0; j < n->num_outputs && !st; j++) {
      drt_value *v = n->outputs[j];
      if (!main_use[v->id]) continue;
      st = drt_graph_add_output(sg, map[v->id]);
      if (st) break;
      v->kind = DRT_VALUE_INPUT;
      v->producer = NULL;
      v->mem_offset = -1;
      st = drt_graph_add_input(g, v);
    }
    n->dead = true;
  }
  if (!st && sg->num_outputs == 0) st = DRT_ERROR(DRT_STATUS_INTERNAL, "hoist: the %s feeds nothing", sg->name);
done:
  free(map);
  free(main_use);
  if (st) {
    drt_graph_destroy(sg);
    return st;
  }
  *out = sg;
  return DRT_OK;
}

/* Runs the step graph for every step of the fixed schedule and keeps its outputs. */
static drt_status build_tables(const drt_pass_ctx *ctx, drt_pass_stage *s) {
  drt_graph *sg = s->graph;
  if (sg->num_inputs != 1) return DRT_ERROR(DRT_STATUS_INTERNAL, "hoist: the step graph has %zu inputs", sg->num_inputs);
  const drt_value *tv = sg->inputs[0];
  int steps = ctx->sched_steps;
  s->table_t = malloc((size_t)steps * sizeof(double));
  s->tables = calloc(sg->num_outputs, sizeof(void *));
  drt_tensor in = {tv->dtype, tv->shape, NULL};
  size_t in_bytes = drt_tensor_nbytes(&in);
  in.data = malloc(in_bytes + 8);
  drt_tensor *outs = calloc(sg->num_outputs, sizeof(drt_tensor));
  drt_cpu_executor *ex = NULL;
  drt_status st = DRT_OK;
  if (!s->table_t || !s->tables || !in.data || !outs) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "hoist: step tables");
    goto done;
  }
  for (size_t j = 0; j < sg->num_outputs && !st; j++) {
    drt_tensor t = {sg->outputs[j]->dtype, sg->outputs[j]->shape, NULL};
    s->tables[j] = malloc((size_t)steps * drt_tensor_nbytes(&t) + 1);
    if (!s->tables[j]) st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "hoist: step tables");
  }
  drt_cpu_executor_options eo;
  drt_cpu_executor_options_init(&eo);
  eo.num_threads = ctx->num_threads;
  if (!st) st = drt_cpu_executor_create(sg, &eo, &ex);
  int64_t n = drt_shape_numel(&tv->shape);
  size_t es = drt_dtype_size(tv->dtype);
  for (int k = 0; k < steps && !st; k++) {
    double t = ctx->sched_t[k];
    s->table_t[k] = t;
    /* the same conversion the session's generation loop applies */
    for (int64_t i = 0; i < n; i++) {
      if (drt_dtype_is_int(tv->dtype)) {
        int64_t iv = (int64_t)llround(t);
        drt_convert(tv->dtype, (char *)in.data + (size_t)i * es, DRT_DTYPE_INT64, &iv, 1);
      } else {
        drt_convert(tv->dtype, (char *)in.data + (size_t)i * es, DRT_DTYPE_FLOAT64, &t, 1);
      }
    }
    st = drt_cpu_executor_run(ex, &in, outs);
    for (size_t j = 0; j < sg->num_outputs && !st; j++) {
      size_t nb = drt_tensor_nbytes(&outs[j]);
      memcpy((char *)s->tables[j] + (size_t)k * nb, outs[j].data, nb);
    }
    for (size_t j = 0; j < sg->num_outputs && !st; j++) free(outs[j].data);
  }
  if (!st) s->table_steps = steps;
done:
  drt_cpu_executor_destroy(ex);
  free(in.data);
  free(outs);
  return st;
}

void drt_pass_results_free(drt_pass_results *r) {
  if (!r) return;
  for (int i = 0; i < r->num_stages; i++) {
    drt_pass_stage *s = &r->stages[i];
    if (s->tables && s->graph)
      for (size_t j = 0; j < s->graph->num_outputs; j++) free(s->tables[j]);
    free(s->tables);
    free(s->table_t);
    drt_graph_destroy(s->graph);
  }
  memset(r, 0, sizeof *r);
}

static drt_status run(drt_graph *g, const drt_pass_ctx *ctx, bool *changed) {
  drt_pass_results *res = ctx->results;
  const char *per_step[3] = {res->cfg_scale_input, res->cfg_state_input, ctx->latent_input};
  for (int i = 0; i < ctx->num_invariant; i++) {
    bool found = false;
    for (size_t k = 0; k < g->num_inputs; k++) found |= strcmp(g->inputs[k]->name, ctx->invariant_inputs[i]) == 0;
    if (!found) return DRT_ERROR(DRT_STATUS_NOT_FOUND, "--invariant %s: the model has no such input", ctx->invariant_inputs[i]);
    if (named(per_step, 3, ctx->invariant_inputs[i]) ||
        (ctx->timestep_input && strcmp(ctx->timestep_input, ctx->invariant_inputs[i]) == 0))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "--invariant %s: the latent, timestep and guidance inputs change "
                       "every step", ctx->invariant_inputs[i]);
  }
  if (!ctx->num_invariant && !ctx->latent_input) {
    drt_log(DRT_LOG_INFO, "hoist: no latent input is known, so nothing is assumed invariant (use --latent or --invariant)");
    return DRT_OK;
  }
  uint32_t ids = g->next_id;
  uint8_t *dep = calloc(ids ? ids : 1, 1), *stage = calloc(ids ? ids : 1, 1);
  uint32_t *nonmain = calloc(ids ? ids : 1, sizeof(uint32_t));
  drt_status st = DRT_OK;
  if (!dep || !stage || !nonmain) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "hoist");
    goto done;
  }
  bool tables = ctx->sched_steps > 0 && ctx->sched_t;
  for (size_t i = 0; i < g->num_inputs; i++) {
    const drt_value *v = g->inputs[i];
    bool inv = ctx->num_invariant ? named(ctx->invariant_inputs, ctx->num_invariant, v->name)
                                  : !(named(per_step, 3, v->name) ||
                                      (ctx->timestep_input && strcmp(v->name, ctx->timestep_input) == 0));
    bool ts = ctx->timestep_input && strcmp(v->name, ctx->timestep_input) == 0;
    dep[v->id] = inv ? DEP_I : ts ? DEP_T : DEP_S;
  }
  size_t counts[3] = {0, 0, 0};
  for (size_t i = 0; i < g->num_nodes; i++) {
    drt_node *n = g->nodes[i];
    uint8_t d = 0;
    for (int j = 0; j < n->num_inputs; j++)
      if (n->inputs[j]) d |= dep[n->inputs[j]->id];
    for (int j = 0; j < n->num_outputs; j++) dep[n->outputs[j]->id] = d;
    stage[n->id] = d == DEP_I ? ST_PROLOGUE : (d == DEP_T && tables) ? ST_STEP : ST_MAIN;
    for (int j = 0; j < n->num_outputs; j++)
      if (n->outputs[j]->is_graph_output) stage[n->id] = ST_MAIN;
  }
  for (size_t i = 0; i < g->num_nodes; i++) {
    const drt_node *n = g->nodes[i];
    if (stage[n->id] == ST_MAIN) continue;
    for (int j = 0; j < n->num_inputs; j++)
      if (n->inputs[j]) nonmain[n->inputs[j]->id]++;
  }
  /* border views, and transposes and scalings that compute absorbs, go back to the main graph
     (consumers first) */
  for (size_t i = g->num_nodes; i-- > 0;) {
    const drt_node *n = g->nodes[i];
    if (stage[n->id] == ST_MAIN) continue;
    bool back = is_view_op(n);
    if (!back && is_absorbable(n)) {
      back = true; /* unless a consumer moves elements itself (then n is a real copy either way) */
      for (size_t k = i + 1; k < g->num_nodes && back; k++) {
        const drt_node *c = g->nodes[k];
        for (int j = 0; j < c->num_inputs && back; j++)
          for (int o = 0; o < n->num_outputs; o++)
            if (c->inputs[j] && c->inputs[j] == n->outputs[o] && (c->op == DRT_OP_TRANSPOSE || is_view_op(c))) back = false;
      }
    }
    if (!back) continue;
    bool all_main = true;
    for (int j = 0; j < n->num_outputs; j++) all_main &= nonmain[n->outputs[j]->id] == 0;
    if (!all_main) continue;
    stage[n->id] = ST_MAIN;
    for (int j = 0; j < n->num_inputs; j++)
      if (n->inputs[j]) nonmain[n->inputs[j]->id]--;
  }
  double flops[3] = {0, 0, 0};
  for (size_t i = 0; i < g->num_nodes; i++) {
    counts[stage[g->nodes[i]->id]]++;
    flops[stage[g->nodes[i]->id]] += drt_node_flops(g->nodes[i]);
  }
  size_t inputs_before = g->num_inputs;
  for (int which = ST_PROLOGUE; which <= ST_STEP && !st; which++) {
    if (!counts[which]) continue;
    drt_pass_stage *s = &res->stages[res->num_stages];
    memset(s, 0, sizeof *s);
    s->kind = which == ST_PROLOGUE ? DRT_STAGE_PROLOGUE : DRT_STAGE_STEP;
    st = extract(g, stage, which, &s->graph);
    if (st) break;
    s->flops = flops[which];
    res->num_stages++;
    if (which == ST_STEP) st = build_tables(ctx, s);
  }
  if (st) goto done;
  if (counts[ST_PROLOGUE] || counts[ST_STEP]) {
    drt_graph_compact(g);
    *changed = true;
  }
  if (ctx->stats) ctx->stats->hoisted_flops += flops[ST_PROLOGUE] + flops[ST_STEP];
  drt_log(DRT_LOG_INFO,
          "hoist: %zu nodes (%.4g MFLOP) to the prologue (once per generation), %zu nodes (%.4g MFLOP) to the "
          "per-step tables (%d steps), %zu nodes (%.4g MFLOP) stay per step; %zu values cross into the main graph",
          counts[ST_PROLOGUE], flops[ST_PROLOGUE] / 1e6, counts[ST_STEP], flops[ST_STEP] / 1e6,
          tables ? ctx->sched_steps : 0, counts[ST_MAIN], flops[ST_MAIN] / 1e6, g->num_inputs - inputs_before);
done:
  free(dep);
  free(stage);
  free(nonmain);
  return st;
}

drt_status drt_pass_hoist(drt_graph *g, const drt_pass_ctx *ctx, bool *changed) {
  *changed = false;
  if (!ctx || !ctx->results) return DRT_OK;
  if (ctx->results->num_stages) return DRT_ERROR(DRT_STATUS_INTERNAL, "hoist: the results already hold stages");
  drt_status st = run(g, ctx, changed);
  if (st) drt_pass_results_free(ctx->results);
  return st;
}
