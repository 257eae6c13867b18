/* drt inspect PLAN [--json]: header, signature, schedule, sections, memory, op histogram. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "distilrt.h"
#include "runtime/cpu/executor.h"
#include "runtime/npy.h"
#include "runtime/plan.h"
#include "tools/cli.h"

static void json_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c < 0x20) printf("\\u%04x", c);
    else putchar(c);
  }
  putchar('"');
}

static const char *role_name(uint8_t r) {
  switch (r) {
    case DRT_PLAN_ROLE_LATENT: return "latent";
    case DRT_PLAN_ROLE_TIMESTEP: return "timestep";
    case DRT_PLAN_ROLE_PREDICTION: return "prediction";
    case DRT_PLAN_ROLE_GUIDANCE_SCALE: return "guidance_scale";
    case DRT_PLAN_ROLE_GUIDANCE_STATE: return "guidance_state";
    case DRT_PLAN_ROLE_UNCOND_PREDICTION: return "uncond_prediction";
    case DRT_PLAN_ROLE_GUIDANCE_STATE_OUT: return "guidance_state_out";
    case DRT_PLAN_ROLE_HOISTED: return "hoisted";
    default: return "other";
  }
}

static void print_io_json(const drt_graph *g, bool outputs, const uint8_t *roles) {
  size_t n = outputs ? g->num_outputs : g->num_inputs;
  printf("[");
  for (size_t i = 0, k = 0; i < n; i++) {
    const drt_value *v = outputs ? g->outputs[i] : g->inputs[i];
    if (!outputs && roles[i] == DRT_PLAN_ROLE_HOISTED) continue; /* internal: fed by a stage */
    printf("%s{\"name\": ", k++ ? ", " : "");
    json_str(v->name);
    printf(", \"dtype\": \"%s\", \"shape\": [", drt_dtype_name(v->dtype));
    for (int d = 0; d < v->shape.rank; d++) printf("%s%" PRId64, d ? ", " : "", v->shape.dims[d]);
    printf("], \"role\": \"%s\"}", role_name(roles[i]));
  }
  printf("]");
}

/* Shape buckets (with the activation memory of each) and what refits and LoRAs can use. */
static void print_adapt(const drt_plan_contents *c, bool json) {
  size_t sources = 0, folds = 0, derived = 0, baked = 0, opaque = 0;
  for (uint32_t b = 0; b < c->num_provenance; b++) {
    const drt_plan_provenance *pv = c->provenance[b];
    if (!pv) continue;
    sources += pv->trace->num_inputs;
    folds += pv->trace->num_nodes;
    derived += pv->num_derived;
    baked += pv->num_baked;
    opaque += pv->num_opaque;
  }
  if (json) {
    printf(", \"buckets\": [");
    for (uint32_t b = 0; b < c->num_buckets; b++) {
      const drt_graph *bg = c->buckets[b];
      printf("%s{\"inputs\": {", b ? ", " : "");
      for (size_t i = 0; i < bg->num_inputs; i++) {
        printf("%s", i ? ", " : "");
        json_str(bg->inputs[i]->name);
        printf(": [");
        for (int d = 0; d < bg->inputs[i]->shape.rank; d++)
          printf("%s%" PRId64, d ? ", " : "", bg->inputs[i]->shape.dims[d]);
        printf("]");
      }
      printf("}, \"activations\": %" PRIu64 "}", drt_cpu_executor_peak_bytes(bg));
    }
    printf("], \"weights_provenance\": {\"recorded\": %s, \"sources\": %zu, \"folds\": %zu, \"derived\": %zu, "
           "\"baked\": %zu, \"opaque\": %zu}, \"weight_map\": %zu",
           c->num_provenance ? "true" : "false", sources, folds, derived, baked, opaque,
           c->weight_map ? c->weight_map->count : 0);
    return;
  }
  if (c->num_buckets > 1) {
    printf("buckets:  %u (weights stored once)\n", c->num_buckets);
    for (uint32_t b = 0; b < c->num_buckets; b++) {
      const drt_graph *bg = c->buckets[b];
      printf("  %u:", b);
      for (size_t i = 0; i < bg->num_inputs; i++) {
        char sh[128];
        printf(" %s %s", bg->inputs[i]->name, drt_shape_str(&bg->inputs[i]->shape, sh, sizeof sh));
      }
      printf("; peak activations %" PRIu64 " B\n", drt_cpu_executor_peak_bytes(bg));
    }
  }
  if (c->num_provenance)
    printf("weights:  refit and LoRA ready: %zu sources, %zu folds, %zu derived, %zu baked, %zu opaque constants; %s\n",
           sources, folds, derived, baked, opaque, c->weight_map ? "weight map" : "no weight map");
  else
    printf("weights:  no provenance recorded (recompile to refit or use LoRAs)\n");
  if (c->weight_map) printf("          weight map: %zu checkpoint parameters\n", c->weight_map->count);
}

int drt_inspect_plan(const char *path, bool json) {
  void *bytes;
  size_t size;
  drt_status st = drt_read_file(path, 0, &bytes, &size);
  if (st) return drt_cli_fail("inspect", st);
  drt_plan_contents c;
  st = drt_plan_parse(bytes, size, path, &c);
  if (st) return drt_cli_fail("inspect", st);
  drt_plan *p = NULL;
  drt_memory_info mem = {0, 0, 0};
  if (drt_plan_load_file(path, &p) == DRT_STATUS_OK) drt_plan_memory(p, &mem);
  drt_plan_destroy(p);
  const drt_graph *g = c.graph;
  size_t hist[DRT_OP_COUNT_] = {0};
  for (size_t i = 0; i < g->num_nodes; i++) hist[g->nodes[i]->op]++;
  const char *targets = (c.targets & DRT_PLAN_TARGET_CUDA) ? ((c.targets & DRT_PLAN_TARGET_CPU) ? "cpu,cuda" : "cuda")
                                                           : "cpu";
  if (json) {
    printf("{\"plan\": ");
    json_str(path);
    printf(", \"format_version\": %u, \"distilrt_version\": \"%u.%u.%u\", \"size\": %zu", c.format_version,
           c.writer_version >> 16, (c.writer_version >> 8) & 0xff, c.writer_version & 0xff, size);
    printf(", \"targets\": [");
    if (c.targets & DRT_PLAN_TARGET_CPU) printf("\"cpu\"%s", (c.targets & DRT_PLAN_TARGET_CUDA) ? ", " : "");
    if (c.targets & DRT_PLAN_TARGET_CUDA) printf("\"cuda\"");
    printf("], \"archs\": [");
    if (c.cuda_archs[0]) {
      char buf[256];
      snprintf(buf, sizeof buf, "%s", c.cuda_archs);
      int k = 0;
      for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) printf("%s\"%s\"", k++ ? ", " : "", tok);
    }
    printf("], \"inputs\": ");
    print_io_json(g, false, c.input_roles);
    printf(", \"outputs\": ");
    print_io_json(g, true, c.output_roles);
    printf(", \"ops\": {");
    int k = 0;
    for (int op = 0; op < DRT_OP_COUNT_; op++)
      if (hist[op]) printf("%s\"%s\": %zu", k++ ? ", " : "", drt_op_name((drt_op)op), hist[op]);
    printf("}, \"nodes\": %zu, \"kernels\": 0", g->num_nodes);
    /* what the passes did (STATS section; older plans report zeros) */
    printf(", \"fused\": {\"attention\": %.0f, \"norm\": %.0f, \"elementwise\": %.0f, \"cfg\": %s, "
           "\"hoisted_flops\": %.0f}",
           drt_plan_stat_get(&c, "fused_attention", 0), drt_plan_stat_get(&c, "fused_norm", 0),
           drt_plan_stat_get(&c, "fused_elementwise", 0), drt_plan_stat_get(&c, "cfg_folded", 0) != 0 ? "true" : "false",
           drt_plan_stat_get(&c, "hoisted_flops", 0));
    if (c.has_guidance)
      printf(", \"guidance\": {\"mode\": \"%s\", \"default_scale\": %.9g, \"phi\": %.9g, \"eta\": %.9g, "
             "\"norm_threshold\": %.9g, \"momentum\": %.9g}",
             c.guidance.mode, c.guidance.default_scale, c.guidance.phi, c.guidance.eta, c.guidance.norm_threshold,
             c.guidance.momentum);
    else
      printf(", \"guidance\": null");
    printf(", \"stages\": [");
    for (uint32_t q = 0; q < c.num_stages; q++) {
      const drt_graph *sg = c.stages[q].graph;
      printf("%s{\"kind\": \"%s\", \"nodes\": %zu, \"inputs\": %zu, \"outputs\": %zu, \"table_steps\": %u}",
             q ? ", " : "", c.stages[q].kind == DRT_PLAN_STAGE_PROLOGUE ? "prologue" : "step", sg->num_nodes,
             sg->num_inputs, sg->num_outputs, c.stages[q].table_steps);
    }
    printf("]");
    if (c.has_schedule) {
      printf(", \"schedule\": {\"name\": ");
      json_str(c.schedule.name);
      printf(", \"params\": ");
      json_str(c.schedule.params);
      printf(", \"steps\": %u, \"init_noise_sigma\": %.9g, \"timesteps\": [", c.schedule.num_steps,
             c.schedule.init_noise_sigma);
      for (uint32_t i = 0; i < c.schedule.num_steps; i++) printf("%s%.9g", i ? ", " : "", c.schedule.steps[i][0]);
      printf("]}");
    } else {
      printf(", \"schedule\": null");
    }
    printf(", \"memory\": {\"weights\": %" PRIu64 ", \"activations\": %" PRIu64 ", \"workspace\": %" PRIu64 "}",
           mem.weights, mem.activations, mem.workspace);
    print_adapt(&c, true);
    printf(", \"sections\": [");
    for (uint32_t i = 0; i < c.num_sections; i++)
      printf("%s{\"type\": \"%s\", \"offset\": %" PRIu64 ", \"size\": %" PRIu64 ", \"crc32\": \"%08x\"}", i ? ", " : "",
             drt_plan_section_name(c.sections[i].type), c.sections[i].offset, c.sections[i].size, c.sections[i].crc);
    printf("]}\n");
  } else {
    printf("plan:     %s (%zu bytes)\n", path, size);
    printf("format:   version %u, written by distilrt %u.%u.%u\n", c.format_version, c.writer_version >> 16,
           (c.writer_version >> 8) & 0xff, c.writer_version & 0xff);
    printf("targets:  %s%s%s\n", targets, c.cuda_archs[0] ? " archs " : "", c.cuda_archs);
    printf("inputs:\n");
    for (size_t i = 0; i < g->num_inputs; i++) {
      char s[128];
      if (c.input_roles[i] == DRT_PLAN_ROLE_HOISTED) continue; /* internal: fed by a stage */
      printf("  %-32s %s[%s] (%s)\n", g->inputs[i]->name, drt_dtype_name(g->inputs[i]->dtype),
             drt_shape_str(&g->inputs[i]->shape, s, sizeof s), role_name(c.input_roles[i]));
    }
    printf("outputs:\n");
    for (size_t i = 0; i < g->num_outputs; i++) {
      char s[128];
      printf("  %-32s %s[%s] (%s)\n", g->outputs[i]->name, drt_dtype_name(g->outputs[i]->dtype),
             drt_shape_str(&g->outputs[i]->shape, s, sizeof s), role_name(c.output_roles[i]));
    }
    if (c.has_schedule) {
      printf("schedule: %s, %u steps%s%s, timesteps", c.schedule.name, c.schedule.num_steps,
             c.schedule.params[0] ? ", " : "", c.schedule.params);
      for (uint32_t i = 0; i < c.schedule.num_steps; i++) printf(" %.6g", c.schedule.steps[i][0]);
      printf("\n");
    } else {
      printf("schedule: none (pass --schedule at compile or generate time)\n");
    }
    printf("memory:   weights %" PRIu64 " B, peak activations %" PRIu64 " B, workspace %" PRIu64 " B\n",
           mem.weights, mem.activations, mem.workspace);
    print_adapt(&c, false);
    printf("fused:    attention %.0f, norm %.0f, elementwise %.0f, cfg %s, hoisted %.6g FLOPs per step\n",
           drt_plan_stat_get(&c, "fused_attention", 0), drt_plan_stat_get(&c, "fused_norm", 0),
           drt_plan_stat_get(&c, "fused_elementwise", 0), drt_plan_stat_get(&c, "cfg_folded", 0) != 0 ? "folded" : "no",
           drt_plan_stat_get(&c, "hoisted_flops", 0));
    if (c.has_guidance)
      printf("guidance: %s, default scale %g (phi %g, eta %g, norm threshold %g, momentum %g)\n", c.guidance.mode,
             c.guidance.default_scale, c.guidance.phi, c.guidance.eta, c.guidance.norm_threshold, c.guidance.momentum);
    for (uint32_t k = 0; k < c.num_stages; k++)
      printf("stage:    %s, %zu nodes, %zu inputs, %zu outputs%s\n",
             c.stages[k].kind == DRT_PLAN_STAGE_PROLOGUE ? "prologue (once per generation)" : "timestep (per step)",
             c.stages[k].graph->num_nodes, c.stages[k].graph->num_inputs, c.stages[k].graph->num_outputs,
             c.stages[k].table_steps ? ", with per-step tables" : "");
    printf("sections:\n");
    for (uint32_t i = 0; i < c.num_sections; i++)
      printf("  %-10s offset %-10" PRIu64 " size %-10" PRIu64 " crc32 %08x\n",
             drt_plan_section_name(c.sections[i].type), c.sections[i].offset, c.sections[i].size, c.sections[i].crc);
    printf("ops (%zu nodes):\n", g->num_nodes);
    for (int op = 0; op < DRT_OP_COUNT_; op++)
      if (hist[op]) printf("  %-24s %zu\n", drt_op_name((drt_op)op), hist[op]);
  }
  drt_plan_contents_free(&c);
  return 0;
}
