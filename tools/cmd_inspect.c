/* drt inspect: describe an ONNX model. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/onnx.h"
#include "passes/canonicalize.h"
#include "tools/cli.h"

static void write_stdout(void *user, const char *text) {
  (void)user;
  fputs(text, stdout);
}

static void print_value(const char *kind, const drt_value *v) {
  printf("  %-7s %-32s %-9s [", kind, v->name, drt_dtype_name(v->dtype));
  if (v->has_shape) {
    for (int i = 0; i < v->shape.rank; i++) {
      if (i) printf(", ");
      if (v->shape.dims[i] >= 0) printf("%" PRId64, v->shape.dims[i]);
      else printf("%s", v->dim_params[i] ? v->dim_params[i] : "?");
    }
  } else {
    printf("?");
  }
  printf("]\n");
}

int drt_cmd_inspect(int argc, char **argv) {
  const char *model = NULL;
  bool dot = false, shaped = false, json = false;
  int verbose = 0, n_shapes = 0;
  static drt_cli_shape shapes[64];
  for (int i = 1; i < argc; i++) {
    const char *v;
    int err = 0;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      printf("usage: drt inspect MODEL.onnx [--dot] [--shape NAME=DIMS ...]\n"
             "       drt inspect MODEL.plan [--json]\n\n"
             "For a plan: header, targets, signature, schedule, sections, memory and op histogram\n"
             "(--json: one JSON object with targets, archs, inputs, outputs, ops, kernels, schedule, memory).\n"
             "For an ONNX model: inputs, outputs, opsets, the op histogram, parameter count and bytes, and the graph.\n"
             "--dot prints the graph in Graphviz format instead. With --shape (or a model whose inputs are\n"
             "all static) the graph is printed after shape inference and constant folding.\n");
      return 0;
    } else if (strcmp(argv[i], "--json") == 0) {
      json = true;
    } else if (strcmp(argv[i], "--dot") == 0) {
      dot = true;
    } else if (strcmp(argv[i], "-v") == 0) {
      verbose++;
    } else if (drt_cli_opt(argc, argv, &i, "--shape", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      if (n_shapes >= 64) return drt_cli_usage_error("inspect", "too many --shape options");
      const char *dims;
      if (!drt_cli_split_kv(v, shapes[n_shapes].name, sizeof shapes[n_shapes].name, &dims))
        return drt_cli_usage_error("inspect", "--shape expects NAME=DIMS, got '%s'", v);
      drt_status s = drt_cli_parse_dims(dims, &shapes[n_shapes].shape);
      if (s) return drt_cli_fail("inspect", s);
      n_shapes++;
      shaped = true;
    } else if (argv[i][0] == '-') {
      return drt_cli_usage_error("inspect", "unknown option '%s'", argv[i]);
    } else if (!model) {
      model = argv[i];
    } else {
      return drt_cli_usage_error("inspect", "unexpected argument '%s'", argv[i]);
    }
  }
  if (!model) return drt_cli_usage_error("inspect", "missing MODEL.onnx or MODEL.plan");
  drt_cli_install_logger(verbose);
  if (drt_cli_is_plan(model)) return drt_inspect_plan(model, json);
  if (json) return drt_cli_usage_error("inspect", "--json applies to plans");
  drt_onnx_options oo;
  drt_onnx_options_init(&oo);
  drt_graph *g = NULL;
  drt_status st = drt_onnx_load_file(model, &oo, &g);
  if (st) return drt_cli_fail("inspect", st);
  /* Static inputs: show the shaped graph too. */
  if (!shaped && drt_graph_check_bound(g) == DRT_OK) shaped = true;
  uint64_t params = 0, param_bytes = 0;
  for (size_t i = 0; i < g->num_values; i++) {
    const drt_value *v = g->values[i];
    if (v->kind != DRT_VALUE_CONST) continue;
    int64_t n = drt_shape_numel(&v->shape);
    params += n > 0 ? (uint64_t)n : 0;
    param_bytes += v->nbytes;
  }
  size_t hist[DRT_OP_COUNT_] = {0};
  for (size_t i = 0; i < g->num_nodes; i++) hist[g->nodes[i]->op]++;
  if (!dot) {
    printf("model:   %s\n", model);
    printf("opset:   %d (default domain)\n", g->opset);
    printf("nodes:   %zu\n", g->num_nodes);
    printf("params:  %" PRIu64 " elements, %" PRIu64 " bytes (%.2f MiB)\n", params, param_bytes,
           (double)param_bytes / (1024.0 * 1024.0));
    printf("inputs:\n");
    for (size_t i = 0; i < g->num_inputs; i++) print_value("input", g->inputs[i]);
    printf("outputs:\n");
    for (size_t i = 0; i < g->num_outputs; i++) print_value("output", g->outputs[i]);
    printf("ops:\n");
    for (int op = 0; op < DRT_OP_COUNT_; op++)
      if (hist[op]) printf("  %-24s %zu\n", drt_op_name((drt_op)op), hist[op]);
  }
  if (shaped) {
    for (int i = 0; i < n_shapes && !st; i++) {
      bool is_input = false;
      for (size_t k = 0; k < g->num_inputs; k++) is_input |= strcmp(g->inputs[k]->name, shapes[i].name) == 0;
      if (is_input) st = drt_graph_bind_input(g, shapes[i].name, &shapes[i].shape);
      else if (shapes[i].shape.rank == 1) st = drt_graph_bind_dim(g, shapes[i].name, shapes[i].shape.dims[0]);
      else st = DRT_ERROR(DRT_STATUS_NOT_FOUND, "--shape %s: no input or symbolic dimension has this name", shapes[i].name);
    }
    if (!st) {
      drt_pass_ctx pc = {0};
      bool changed;
      st = drt_pass_canonicalize(g, &pc, &changed);
    }
    if (st) {
      drt_graph_destroy(g);
      return drt_cli_fail("inspect", drt_status_annotate(st, "%s", model));
    }
    if (!dot) printf("graph after shape inference and folding (%zu nodes):\n", g->num_nodes);
  } else if (!dot) {
    printf("graph (symbolic inputs; pass --shape to infer shapes):\n");
  }
  if (dot) drt_graph_print_dot(g, write_stdout, NULL);
  else drt_graph_print(g, write_stdout, NULL);
  drt_graph_destroy(g);
  return 0;
}
