/* drt inspect: describe an ONNX model. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/codegen.h"
#include "frontend/onnx.h"
#include "passes/canonicalize.h"
#include "runtime/npy.h"
#include "runtime/plan.h"
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

/* ---- the CUDA program of a plan ---------------------------------------------------------------- */
/* Renders the plan's CUDA program from its loaded graphs (as the runtime does). */
static drt_status render_program(const drt_plan_contents *c, drt_cuda_precision precision, drt_cuda_program **out) {
  const drt_graph *graphs[DRT_PLAN_MAX_CUDA_GRAPHS];
  size_t n = drt_plan_cuda_graphs(c, graphs, DRT_PLAN_MAX_CUDA_GRAPHS);
  if (n > DRT_PLAN_MAX_CUDA_GRAPHS) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%zu graphs in one CUDA program", n);
  drt_cuda_codegen_options co;
  drt_cuda_codegen_options_init(&co);
  co.precision = precision;
  co.allow_host_fallback = true;
  return drt_status_annotate(drt_cuda_program_build(graphs, n, &co, out), "rendering the CUDA program");
}

static const char *graph_label(const drt_plan_contents *c, size_t k, char *buf, size_t size) {
  if (k == 0) return "main";
  if (k <= c->num_stages) {
    snprintf(buf, size, "%s stage", c->stages[k - 1].kind == DRT_PLAN_STAGE_PROLOGUE ? "prologue" : "timestep");
    return buf;
  }
  snprintf(buf, size, "bucket %zu", k - c->num_stages);
  return buf;
}

/* The CUDA section of a plan: binaries, and the program rendered from the loaded graphs (kernel
 * and launch counts, host-fallback nodes with reasons). Fails when the rendered program's hash
 * differs from the stored one (the runtime would refuse the plan). */
/* One line per launch of every CUDA graph, in execution order: which node, what it launches. */
static void print_launches(const drt_plan_contents *c, const drt_cuda_program *p) {
  for (size_t k = 0; k < p->num_graphs; k++) {
    const drt_cuda_graph_code *gc = &p->graphs[k];
    char lb[32];
    printf("  launches of graph %s:\n", graph_label(c, k, lb, sizeof lb));
    for (size_t j = 0; j < gc->num_launches; j++) {
      const drt_cuda_launch *l = &gc->launches[j];
      const drt_node *n = l->node < gc->graph->num_nodes ? gc->graph->nodes[l->node] : NULL;
      char vb[8] = "";
      if (l->variant) snprintf(vb, sizeof vb, "v%u", (unsigned)l->variant);
      printf("    %4zu node %-4u %-3s %-14s %-40.40s ", j, l->node, vb, n ? drt_op_name(n->op) : "-",
             n && n->name ? n->name : "");
      switch (l->kind) {
        case DRT_CUDA_LAUNCH_KERNEL:
          printf("kernel %s grid %ux%ux%u block %u smem %u\n",
                 l->kernel >= 0 && (size_t)l->kernel < p->num_kernels ? p->kernels[l->kernel].name : "?", l->grid[0],
                 l->grid[1], l->grid[2], l->block[0] * l->block[1] * l->block[2], l->smem);
          break;
        case DRT_CUDA_LAUNCH_GEMM:
          printf("gemm %" PRId64 "x%" PRId64 "x%" PRId64 " batch %" PRId64 " epilogue %u%s\n", l->gemm.m, l->gemm.n,
                 l->gemm.k, l->gemm.batch, l->gemm.epilogue, l->gemm.beta != 0.0f ? " +C" : "");
          break;
        case DRT_CUDA_LAUNCH_COPY: printf("copy %" PRIu64 " bytes\n", l->bytes); break;
        default: printf("host: %s\n", l->reason); break;
      }
    }
  }
}

/* Writes the plan's binary for `arch` (a cubin, or PTX text without its terminating NUL) to
 * stdout: for cuobjdump / nvdisasm / ptxas -v. */
static int inspect_image(const char *path, const char *arch) {
  drt_plan_contents c;
  drt_status st = drt_cli_read_plan(path, &c);
  if (st) return drt_cli_fail("inspect", st);
  const drt_plan_cuda *cu = &c.cuda;
  char have[DRT_PLAN_MAX_CUDA_IMAGES * 18 + 8];
  size_t len = 0;
  have[0] = 0;
  for (uint32_t i = 0; cu->present && i < cu->num_images; i++) {
    const drt_plan_cuda_image *im = &cu->images[i];
    if (strcmp(im->arch, arch) == 0) {
      size_t n = im->size;
      if (arch[0] == 'c' && n > 0 && ((const char *)im->data)[n - 1] == 0) n--;
      bool ok = fwrite(im->data, 1, n, stdout) == n && fflush(stdout) == 0;
      drt_plan_contents_free(&c);
      if (!ok) return drt_cli_fail("inspect", DRT_ERROR(DRT_STATUS_IO, "writing the %s image to stdout", arch));
      return 0;
    }
    int w = snprintf(have + len, sizeof have - len, "%s%.15s", i ? ", " : "", im->arch);
    if (w > 0 && (size_t)w < sizeof have - len) len += (size_t)w;
  }
  drt_plan_contents_free(&c);
  return drt_cli_fail("inspect", DRT_ERROR(DRT_STATUS_NOT_FOUND, "%s: no %s image in the plan (it has: %s)", path,
                                           arch, have[0] ? have : "no CUDA images"));
}

static int inspect_cuda(const char *path, bool source_only, const char *precision_opt, bool launches) {
  drt_plan_contents c;
  drt_status st = drt_cli_read_plan(path, &c);
  if (st) return drt_cli_fail("inspect", st);
  const drt_plan_cuda *cu = &c.cuda;
  drt_cuda_precision precision = cu->present ? (drt_cuda_precision)cu->precision : DRT_CUDA_PRECISION_FP32;
  if (precision_opt && !drt_cuda_precision_parse(precision_opt, &precision)) {
    drt_plan_contents_free(&c);
    return drt_cli_usage_error("inspect", "--precision must be fp32, tf32, fp16 or bf16, got '%s'", precision_opt);
  }
  if (!source_only && !cu->present) {
    printf("cuda:     none (compile with --target cuda)\n");
    drt_plan_contents_free(&c);
    return 0;
  }
  drt_cuda_program *p = NULL;
  st = render_program(&c, precision, &p);
  if (st) {
    drt_plan_contents_free(&c);
    return drt_cli_fail("inspect", drt_status_annotate(st, "%s", path));
  }
  bool same = cu->present && p->source_hash == cu->source_hash && precision == (drt_cuda_precision)cu->precision;
  if (source_only) {
    fwrite(p->source, 1, p->source_len, stdout);
    if (cu->present && !same)
      fprintf(stderr, "drt inspect: warning: this source (%s, hash %016" PRIx64 ") is not the one the plan's "
              "binaries were compiled from (%s, hash %016" PRIx64 ")\n", drt_cuda_precision_name(precision),
              p->source_hash, drt_cuda_precision_name((drt_cuda_precision)cu->precision), cu->source_hash);
    drt_cuda_program_destroy(p);
    drt_plan_contents_free(&c);
    return 0;
  }
  printf("cuda:     precision %s, NVRTC %u.%u, options %s\n", drt_cuda_precision_name((drt_cuda_precision)cu->precision),
         cu->nvrtc_version / 1000, (cu->nvrtc_version % 1000) / 10, cu->options);
  printf("  images:");
  for (uint32_t i = 0; i < cu->num_images; i++)
    printf("%s %s %.1f KiB%s", i ? "," : "", cu->images[i].arch, (double)cu->images[i].size / 1024.0,
           cu->images[i].arch[0] == 'c' ? " (PTX)" : "");
  printf("\n  program: %zu kernels, source %.1f KiB, hash %016" PRIx64 " (%s)\n", p->num_kernels,
         (double)p->source_len / 1024.0, cu->source_hash,
         same ? "matches the program rendered from the plan's graphs" : "DIFFERS from the rendered program");
  size_t host_total = 0;
  for (size_t k = 0; k < p->num_graphs; k++) {
    const drt_cuda_graph_code *gc = &p->graphs[k];
    size_t kinds[4] = {0, 0, 0, 0}, vnodes = 0, valt = 0;
    for (size_t j = 0; j < gc->num_launches; j++) {
      const drt_cuda_launch *l = &gc->launches[j];
      if (l->kind < 4) kinds[l->kind]++;
      if (l->variant > 1) valt++;
      if (l->variant == 1 && (j == 0 || gc->launches[j - 1].node != l->node || gc->launches[j - 1].variant != 1)) vnodes++;
    }
    char lb[32];
    printf("  graph %-16s %zu nodes: %zu launches (%zu kernel, %zu gemm, %zu copy, %zu host), scratch %" PRIu64 " B\n",
           graph_label(&c, k, lb, sizeof lb), gc->graph->num_nodes, gc->num_launches, kinds[DRT_CUDA_LAUNCH_KERNEL],
           kinds[DRT_CUDA_LAUNCH_GEMM], kinds[DRT_CUDA_LAUNCH_COPY], kinds[DRT_CUDA_LAUNCH_HOST], gc->scratch_bytes);
    if (vnodes)
      printf("    variants: %zu nodes computed in more than one way (timed on the device at load; %zu launches "
             "of variants 2+)\n", vnodes, valt);
    host_total += kinds[DRT_CUDA_LAUNCH_HOST];
    /* per-sample scalar inputs that keep float32 storage under fp16/bf16 */
    bool any = false;
    for (size_t j = 0; j < gc->num_f32_values; j++) {
      const drt_value *v = gc->f32_values[j];
      if (v->kind != DRT_VALUE_INPUT) continue;
      printf("%s%s", any ? ", " : "    float32 storage: ", v->name ? v->name : "?");
      any = true;
    }
    if (any) printf("\n");
    /* activations kept in float32 under fp16/bf16 (codegen/codegen.c: residual streams, norm inputs) */
    size_t acts = 0;
    uint64_t act_bytes = 0;
    for (size_t j = 0; j < gc->num_f32_values; j++)
      if (gc->f32_values[j]->kind == DRT_VALUE_INTERMEDIATE) {
        acts++;
        act_bytes += (uint64_t)drt_shape_numel(&gc->f32_values[j]->shape) * 4u;
      }
    if (acts) printf("    float32 activations: %zu values, %" PRIu64 " B\n", acts, act_bytes);
  }
  if (host_total) {
    printf("  host fallback (%zu nodes run on the CPU inside a GPU run):\n", host_total);
    for (size_t k = 0; k < p->num_graphs; k++) {
      const drt_cuda_graph_code *gc = &p->graphs[k];
      for (size_t j = 0; j < gc->num_launches; j++) {
        const drt_cuda_launch *l = &gc->launches[j];
        if (l->kind != DRT_CUDA_LAUNCH_HOST || l->node >= gc->graph->num_nodes) continue;
        const drt_node *n = gc->graph->nodes[l->node];
        char lb[32];
        printf("    [%s] %s '%s': %s\n", graph_label(&c, k, lb, sizeof lb), drt_op_name(n->op), n->name ? n->name : "",
               l->reason);
      }
    }
  } else {
    printf("  host fallback: none\n");
  }
  if (launches) print_launches(&c, p);
  uint64_t want = cu->source_hash;
  drt_cuda_program_destroy(p);
  drt_plan_contents_free(&c);
  if (!same)
    return drt_cli_fail("inspect", DRT_ERROR(DRT_STATUS_CORRUPT, "'%s': the plan's CUDA binaries were compiled from "
                                             "program %016" PRIx64 ", but its graphs render another program with "
                                             "this distilrt: recompile the plan", path, want));
  return 0;
}

int drt_cmd_inspect(int argc, char **argv) {
  const char *model = NULL;
  bool dot = false, shaped = false, json = false, cuda_source = false, launches = false;
  const char *precision = NULL, *image = NULL;
  int verbose = 0, n_shapes = 0;
  static drt_cli_shape shapes[64];
  for (int i = 1; i < argc; i++) {
    const char *v;
    int err = 0;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      printf("usage: drt inspect MODEL.onnx [--dot] [--shape NAME=DIMS ...]\n"
             "       drt inspect MODEL.plan [--json | --launches]\n"
             "       drt inspect --cuda-source MODEL.plan [--precision fp32|tf32|fp16|bf16]\n"
             "       drt inspect --image ARCH MODEL.plan > FILE\n\n"
             "For a plan: header, targets, signature, schedule, sections, memory and op histogram\n"
             "(--json: one JSON object with targets, archs, inputs, outputs, ops, kernels, schedule, memory),\n"
             "and for a CUDA plan the CUDA section: precision, images per arch, NVRTC version, and the program\n"
             "rendered from the plan's graphs (kernels, launches by kind, nodes that fall back to the CPU with\n"
             "the reason); it fails when that program is not the one the binaries were compiled from.\n"
             "--launches lists every launch of a CUDA plan's graphs in order: node, op, kernel and grid,\n"
             "GEMM shape or copy size.\n"
             "--cuda-source prints the plan's CUDA program source (in the plan's precision, or --precision).\n"
             "--image ARCH writes the plan's binary for ARCH (sm_XX cubin or compute_XX PTX) to stdout, for\n"
             "cuobjdump, nvdisasm or ptxas -v.\n"
             "For an ONNX model: inputs, outputs, opsets, the op histogram, parameter count and bytes, and the graph.\n"
             "--dot prints the graph in Graphviz format instead. With --shape (or a model whose inputs are\n"
             "all static) the graph is printed after shape inference and constant folding.\n");
      return 0;
    } else if (strcmp(argv[i], "--json") == 0) {
      json = true;
    } else if (strcmp(argv[i], "--cuda-source") == 0) {
      cuda_source = true;
    } else if (strcmp(argv[i], "--launches") == 0) {
      launches = true;
    } else if (drt_cli_opt(argc, argv, &i, "--image", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      image = v;
    } else if (drt_cli_opt(argc, argv, &i, "--precision", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      precision = v;
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
  if (drt_cli_is_plan(model)) {
    if (image) {
      if (json || launches || cuda_source || precision)
        return drt_cli_usage_error("inspect", "--image takes no other option");
      return inspect_image(model, image);
    }
    if (cuda_source) {
      if (json) return drt_cli_usage_error("inspect", "--cuda-source and --json are exclusive");
      if (launches) return drt_cli_usage_error("inspect", "--cuda-source and --launches are exclusive");
      return inspect_cuda(model, true, precision, false);
    }
    if (precision) return drt_cli_usage_error("inspect", "--precision applies to --cuda-source");
    if (json && launches) return drt_cli_usage_error("inspect", "--json and --launches are exclusive");
    int rc = drt_inspect_plan(model, json);
    if (rc || json) return rc;
    fflush(stdout);
    return inspect_cuda(model, false, NULL, launches);
  }
  if (cuda_source || precision || image) { /* name the file: missing, unreadable or not a plan */
    FILE *f = fopen(model, "rb");
    if (!f)
      return drt_cli_fail("inspect", DRT_ERROR(DRT_STATUS_NOT_FOUND, "cannot open '%s': %s", model, strerror(errno)));
    fclose(f);
    return drt_cli_usage_error("inspect", "'%s' is not a distilrt plan: --cuda-source, --precision and --image apply "
                               "to plans (drt compile writes them)", model);
  }
  if (json) return drt_cli_usage_error("inspect", "--json applies to plans");
  if (launches) return drt_cli_usage_error("inspect", "--launches applies to CUDA plans");
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
