/* drt refit: new weights for a compiled plan, without recompiling. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frontend/onnx.h"
#include "passes/half_promote.h"
#include "runtime/npy.h"
#include "runtime/plan.h"
#include "runtime/refit.h"
#include "tools/cli.h"

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void refit_usage(FILE *f) {
  fprintf(f,
          "usage: drt refit PLAN --weights NEW.onnx|NEW.safetensors -o NEW.plan [--partial] [-v]\n\n"
          "Replaces the weights of a compiled plan with those of another checkpoint of the same architecture\n"
          "(a fine-tune, another distilled student of the same teacher) without recompiling: graphs, kernels,\n"
          "memory plans and shape buckets stay as compiled, so the new plan runs exactly as fast.\n"
          "From an ONNX export, constants are matched by name and the model's structure must be the one the\n"
          "plan was compiled from. From safetensors, parameters are found through the plan's weight map (drt\n"
          "compile --weights-map) or by equal names. Every dtype and shape is checked and a mismatch refused\n"
          "with the list of what differs. Constants the compiler derived from weights (transposes, casts,\n"
          "folded arithmetic, per-step tables) are recomputed exactly as the compiler computes them.\n"
          "--partial (safetensors) updates only the parameters the file holds; the others keep their values.\n");
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

int drt_cmd_refit(int argc, char **argv) {
  const char *plan = NULL, *weights = NULL, *out = NULL;
  int verbose = 0;
  bool partial = false;
  for (int i = 1; i < argc; i++) {
    const char *v;
    int err = 0;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      refit_usage(stdout);
      return 0;
    } else if (drt_cli_opt(argc, argv, &i, "--weights", &v, &err) || drt_cli_opt(argc, argv, &i, "-w", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      weights = v;
    } else if (drt_cli_opt(argc, argv, &i, "-o", &v, &err) || drt_cli_opt(argc, argv, &i, "--output", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      out = v;
    } else if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0) {
      verbose++;
    } else if (strcmp(argv[i], "--partial") == 0) {
      partial = true;
    } else if (argv[i][0] == '-') {
      return drt_cli_usage_error("refit", "unknown option '%s'", argv[i]);
    } else if (!plan) {
      plan = argv[i];
    } else {
      return drt_cli_usage_error("refit", "unexpected argument '%s'", argv[i]);
    }
  }
  if (!plan) return drt_cli_usage_error("refit", "missing PLAN");
  if (!weights) return drt_cli_usage_error("refit", "missing --weights NEW.onnx|NEW.safetensors");
  if (!out) return drt_cli_usage_error("refit", "missing -o NEW.plan");
  bool onnx = ends_with(weights, ".onnx");
  if (!onnx && !ends_with(weights, ".safetensors"))
    return drt_cli_usage_error("refit", "--weights must be a .onnx or .safetensors file, got '%s'", weights);
  drt_cli_install_logger(verbose);
  double t0 = now_ms();
  void *bytes = NULL, *nb = NULL;
  size_t size = 0, nsize = 0;
  drt_plan_view view;
  memset(&view, 0, sizeof view);
  drt_refit_report rep;
  memset(&rep, 0, sizeof rep);
  drt_graph *g = NULL;
  drt_safetensors *ckpt = NULL;
  drt_source_table src;
  memset(&src, 0, sizeof src);
  double t_load = 0, t_refit = 0, t_write = 0;
  drt_status st = drt_read_file(plan, 0, &bytes, &size);
  if (!st) st = drt_plan_view_open(bytes, size, plan, &view);
  if (!st) {
    if (onnx) {
      st = drt_onnx_load_file(weights, NULL, &g);
      if (!st) st = drt_source_table_from_graph(&src, g);
    } else {
      st = drt_safetensors_open_file(weights, 0, &ckpt);
    }
  }
  double t1 = now_ms();
  t_load = t1 - t0;
  if (!st && onnx) {
    uint64_t fp = drt_graph_fingerprint(g);
    if (view.num_provenance && view.provenance[0]->fingerprint != fp) {
      /* a float16/bfloat16 model is fingerprinted as compiled: widened (passes/half_promote.h) */
      st = drt_half_promote(g);
      if (!st) fp = drt_graph_fingerprint(g);
    }
    if (!st) st = drt_plan_refit(&view, &src, fp, &nb, &nsize, &rep);
  } else if (!st) {
    st = drt_plan_refit_checkpoint(&view, ckpt, partial, &nb, &nsize, &rep);
  }
  double t2 = now_ms();
  t_refit = t2 - t1;
  if (!st) st = drt_write_file_atomic(out, nb, nsize);
  t_write = now_ms() - t2;
  if (!st) {
    printf("refitted %s with %s -> %s\n", plan, weights, out);
    printf("  weights:  %zu sources updated, %zu kept as compiled, %zu folded constants recomputed, %zu derived",
           rep.updated, rep.kept, rep.recomputed, rep.derived);
    if (rep.opaque) printf(", %zu pass-created constants kept", rep.opaque);
    printf("\n");
    if (rep.unused) printf("  unused:   %zu tensors of %s correspond to no weight of the plan\n", rep.unused, weights);
    printf("  time:     load %.1f ms, refit %.1f ms, write %.1f ms (total %.1f ms)\n", t_load, t_refit, t_write,
           t_load + t_refit + t_write);
  }
  drt_source_table_free(&src);
  drt_graph_destroy(g);
  drt_safetensors_close(ckpt);
  drt_plan_view_close(&view);
  drt_refit_report_free(&rep);
  free(bytes);
  free(nb);
  if (st) return drt_cli_fail("refit", st);
  return 0;
}
