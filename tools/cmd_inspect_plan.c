/* drt inspect PLAN [--json]: header, signature, schedule, sections, memory, op histogram. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "distilrt.h"
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
    default: return "other";
  }
}

static void print_io_json(const drt_graph *g, bool outputs, const uint8_t *roles) {
  size_t n = outputs ? g->num_outputs : g->num_inputs;
  printf("[");
  for (size_t i = 0; i < n; i++) {
    const drt_value *v = outputs ? g->outputs[i] : g->inputs[i];
    printf("%s{\"name\": ", i ? ", " : "");
    json_str(v->name);
    printf(", \"dtype\": \"%s\", \"shape\": [", drt_dtype_name(v->dtype));
    for (int d = 0; d < v->shape.rank; d++) printf("%s%" PRId64, d ? ", " : "", v->shape.dims[d]);
    printf("], \"role\": \"%s\"}", role_name(roles[i]));
  }
  printf("]");
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
