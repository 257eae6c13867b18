#include "passes/pipeline.h"

#include <stdio.h>
#include <string.h>

#include "passes/attention_fuse.h"
#include "passes/canonicalize.h"
#include "passes/cfg_fold.h"
#include "passes/cse.h"
#include "passes/elementwise_fuse.h"
#include "passes/half_promote.h"
#include "passes/hoist.h"
#include "passes/memory_plan.h"
#include "passes/norm_fuse.h"

/* The pipeline, in order. Add a pass by adding one row here. */
static const drt_pass k_passes[] = {
    {"half-promote", drt_pass_half_promote, "float16/bfloat16 models computed in float32, the half type at the border"},
    {"canonicalize", drt_pass_canonicalize, "infer shapes, fold constants, drop no-op nodes, DCE"},
    {"cse", drt_pass_cse, "common subexpressions, transpose/reshape cancellation, exact algebraic identities"},
    {"cfg-fold", drt_pass_cfg_fold, "cond + uncond as one batch-2B pass, guided by drt.CfgCombine (--cfg-scale)"},
    {"hoist", drt_pass_hoist, "invariant work to a once-per-generation prologue, timestep-only work to per-step tables"},
    {"attention-fuse", drt_pass_attention_fuse, "Q.K^T -> scale -> mask -> softmax -> .V (and ONNX Attention) to drt.Attention"},
    {"norm-fuse", drt_pass_norm_fuse, "Layer/RMS/GroupNorm (op or decomposed) + affine, adaLN, activation to drt.Norm"},
    {"elementwise-fuse", drt_pass_elementwise_fuse, "pointwise groups to drt.Elementwise; bias/activation/residual into drt.Gemm/drt.Conv"},
    /* memory-plan must stay last: any change after it invalidates the offsets */
    {"memory-plan", drt_pass_memory_plan, "assign intermediates to one arena (liveness, best fit, in place)"},
};

size_t drt_pipeline_num_passes(void) { return sizeof k_passes / sizeof k_passes[0]; }
const drt_pass *drt_pipeline_pass(size_t i) { return i < drt_pipeline_num_passes() ? &k_passes[i] : NULL; }

static bool is_fusion(const char *name) {
  size_t n = strlen(name);
  return n > 5 && strcmp(name + n - 5, "-fuse") == 0;
}

bool drt_pipeline_disabled(const drt_pipeline_options *o, const char *name) {
  if (!o) return false;
  for (int i = 0; i < o->num_disabled; i++) {
    if (strcmp(o->disabled[i], name) == 0) return true;
    if (strcmp(o->disabled[i], "all-fusions") == 0 && is_fusion(name)) return true;
  }
  return false;
}

static bool known(const char *name) {
  if (strcmp(name, "all-fusions") == 0) return true;
  for (size_t i = 0; i < drt_pipeline_num_passes(); i++)
    if (strcmp(k_passes[i].name, name) == 0) return true;
  return false;
}

drt_status drt_pipeline_check_names(const drt_pipeline_options *o) {
  char list[1024] = "";
  size_t off = 0;
  for (size_t i = 0; i < drt_pipeline_num_passes() && off < sizeof list; i++)
    off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", i ? ", " : "", k_passes[i].name);
  for (int i = 0; o && i < o->num_disabled; i++)
    if (!known(o->disabled[i]))
      return DRT_ERROR(DRT_STATUS_NOT_FOUND, "no pass named '%s' (passes: %s, all-fusions)", o->disabled[i], list);
  if (o && o->dump_after && !known(o->dump_after))
    return DRT_ERROR(DRT_STATUS_NOT_FOUND, "no pass named '%s' (passes: %s)", o->dump_after, list);
  return DRT_OK;
}

static void histogram(const drt_graph *g, size_t *h) {
  memset(h, 0, sizeof(size_t) * DRT_OP_COUNT_);
  for (size_t i = 0; i < g->num_nodes; i++) h[g->nodes[i]->op]++;
}

drt_status drt_pipeline_run(drt_graph *g, const drt_pass_ctx *ctx, const drt_pipeline_options *o) {
  DRT_RETURN_IF_ERROR(drt_pipeline_check_names(o));
  size_t before[DRT_OP_COUNT_], after[DRT_OP_COUNT_];
  for (size_t i = 0; i < drt_pipeline_num_passes(); i++) {
    const drt_pass *p = &k_passes[i];
    if (drt_pipeline_disabled(o, p->name)) {
      if (o && o->verbose && o->report) {
        char line[256];
        snprintf(line, sizeof line, "pass %-18s disabled\n", p->name);
        o->report(o->report_user, line);
      }
      continue;
    }
    size_t n0 = g->num_nodes;
    histogram(g, before);
    bool changed = false;
    DRT_RETURN_IF_ERROR_CTX(p->fn(g, ctx, &changed), "pass '%s'", p->name);
    if (ctx && ctx->verify) DRT_RETURN_IF_ERROR_CTX(drt_graph_verify(g, true), "verifier after pass '%s'", p->name);
    if (o && o->verbose && o->report) {
      char line[2048];
      size_t off = (size_t)snprintf(line, sizeof line, "pass %-18s %s nodes %zu -> %zu", p->name,
                                    changed ? "changed  " : "unchanged", n0, g->num_nodes);
      histogram(g, after);
      for (int op = 0; op < DRT_OP_COUNT_ && off < sizeof line - 64; op++) {
        if (after[op] == before[op]) continue;
        long d = (long)after[op] - (long)before[op];
        off += (size_t)snprintf(line + off, sizeof line - off, " %s%+ld", drt_op_name((drt_op)op), d);
      }
      snprintf(line + off, sizeof line - off, "\n");
      o->report(o->report_user, line);
    }
    if (o && o->dump_after && o->dump && strcmp(o->dump_after, p->name) == 0) drt_graph_print(g, o->dump, o->dump_user);
  }
  /* the hoisted stage graphs get the fusion passes too (not the memory plan: their values are
     allocated one by one), so work kept at the stage border (bias adds, head-split copies,
     modulation sums) fuses there as it would in the main graph */
  for (int s = 0; ctx && ctx->results && s < ctx->results->num_stages; s++) {
    drt_graph *sg = ctx->results->stages[s].graph;
    for (size_t i = 0; sg && i < drt_pipeline_num_passes(); i++) {
      const drt_pass *p = &k_passes[i];
      if (!is_fusion(p->name) || drt_pipeline_disabled(o, p->name)) continue;
      bool changed = false;
      DRT_RETURN_IF_ERROR_CTX(p->fn(sg, ctx, &changed), "pass '%s' on stage graph %d", p->name, s);
      if (ctx->verify) DRT_RETURN_IF_ERROR_CTX(drt_graph_verify(sg, true), "verifier after pass '%s' on stage %d", p->name, s);
    }
  }
  return DRT_OK;
}
