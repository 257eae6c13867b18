/* libFuzzer target: ONNX bytes -> frontend -> bind symbolic dims to 2 -> canonicalize (shape
 * inference and constant folding, folds capped at 256 KiB) -> verifier -> plan round trip, and
 * for small graphs one CPU execution on deterministic inputs.
 *
 * Invariants checked (abort = a finding): a canonicalized graph passes the verifier; a graph that
 * canonicalized serializes to a plan that loads back. Errors are fine; crashes, sanitizer reports,
 * leaks and timeouts are not. Execution is skipped when any value exceeds 16K elements, the graph
 * has more than 256 nodes or the executor's peak would exceed 4 MiB, so each input stays fast. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/onnx.h"
#include "passes/canonicalize.h"
#include "runtime/cpu/executor.h"
#include "runtime/plan.h"

#define FUZZ_MAX_FOLD_BYTES (256u << 10)
#define FUZZ_MAX_INPUT_BYTES (4u << 20)
#define FUZZ_MAX_EXEC_ELEMS 16384
#define FUZZ_MAX_EXEC_NODES 256
#define FUZZ_MAX_EXEC_PEAK (4u << 20)

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* DRT_FUZZ_STATS=1 prints how far the inputs got (loaded, canonicalized, executed) at exit. */
static struct {
  long inputs, loaded, canonical, executed, ran_ok;
} g_stats;

static void print_stats(void) {
  fprintf(stderr, "fuzz_onnx: %ld inputs, %ld loaded, %ld canonicalized, %ld executed (%ld without error)\n",
          g_stats.inputs, g_stats.loaded, g_stats.canonical, g_stats.executed, g_stats.ran_ok);
}

static void bind_dims(drt_graph *g) {
  for (size_t i = 0; i < g->num_inputs; i++) {
    drt_value *v = g->inputs[i];
    if (!v->has_shape) continue;
    drt_shape s = v->shape;
    bool unbound = false;
    for (int d = 0; d < s.rank; d++)
      if (s.dims[d] < 0) {
        s.dims[d] = 2;
        unbound = true;
      }
    if (unbound) drt_status_free(drt_graph_bind_input(g, v->name, &s));
  }
}

static bool small_enough_to_bind(const drt_graph *g) {
  uint64_t total = 0;
  for (size_t i = 0; i < g->num_inputs; i++) {
    const drt_value *v = g->inputs[i];
    drt_tensor t = {v->dtype, v->shape, NULL};
    int64_t n = drt_shape_numel(&v->shape);
    size_t nb = drt_tensor_nbytes(&t);
    if (n < 0 || (n > 0 && nb == 0)) return false;
    total += nb;
    if (total > FUZZ_MAX_INPUT_BYTES) return false;
  }
  return true;
}

static void roundtrip_plan(drt_graph *g) {
  drt_plan_contents c;
  memset(&c, 0, sizeof c);
  c.graph = g;
  c.targets = DRT_PLAN_TARGET_CPU;
  void *bytes = NULL;
  size_t n = 0;
  drt_status st = drt_plan_serialize(&c, &bytes, &n);
  if (st) {
    if (drt_status_code_of(st) == DRT_STATUS_OUT_OF_MEMORY) {
      drt_status_free(st);
      return;
    }
    fprintf(stderr, "serializing a canonical graph failed: %s\n", drt_status_message(st));
    abort();
  }
  drt_plan_contents back;
  st = drt_plan_parse(bytes, n, "roundtrip.plan", &back); /* takes bytes */
  if (st) {
    fprintf(stderr, "a plan written from a canonical graph does not load: %s\n", drt_status_message(st));
    abort();
  }
  drt_plan_contents_free(&back);
}

static void execute(const drt_graph *g) {
  if (g->num_nodes > FUZZ_MAX_EXEC_NODES) return;
  for (size_t i = 0; i < g->num_values; i++) {
    int64_t n = drt_shape_numel(&g->values[i]->shape);
    if (n < 0 || n > FUZZ_MAX_EXEC_ELEMS) return;
  }
  if (drt_cpu_executor_peak_bytes(g) > FUZZ_MAX_EXEC_PEAK) return;
  drt_tensor *in = calloc(g->num_inputs + 1, sizeof(drt_tensor));
  drt_tensor *out = calloc(g->num_outputs + 1, sizeof(drt_tensor));
  drt_cpu_executor *ex = NULL;
  if (!in || !out) goto done;
  for (size_t i = 0; i < g->num_inputs; i++) {
    const drt_value *v = g->inputs[i];
    in[i].dtype = v->dtype;
    in[i].shape = v->shape;
    int64_t n = drt_shape_numel(&v->shape);
    size_t nb = drt_tensor_nbytes(&in[i]);
    in[i].data = malloc(nb ? nb : 1);
    if (!in[i].data) goto done;
    /* small values of every dtype: 0, 1, 2, 0, 1, ... (valid indices for most gathers) */
    for (int64_t k = 0; k < n; k++) {
      double x = (double)(k % 3);
      int64_t xi = k % 3;
      void *p = (char *)in[i].data + (size_t)k * drt_dtype_size(v->dtype);
      float f = (float)x;
      drt_convert(v->dtype, p, DRT_DTYPE_FLOAT32, &f, 1);
      if (drt_dtype_is_int(v->dtype)) drt_convert(v->dtype, p, DRT_DTYPE_INT64, &xi, 1);
    }
  }
  drt_cpu_executor_options eo;
  drt_cpu_executor_options_init(&eo);
  eo.num_threads = 1;
  drt_status st = drt_cpu_executor_create(g, &eo, &ex);
  if (!st) {
    g_stats.executed++;
    st = drt_cpu_executor_run(ex, in, out);
    if (!st) {
      g_stats.ran_ok++;
      for (size_t i = 0; i < g->num_outputs; i++) free(out[i].data);
    }
  }
  drt_status_free(st);
done:
  drt_cpu_executor_destroy(ex);
  if (in)
    for (size_t i = 0; i < g->num_inputs; i++) free(in[i].data);
  free(in);
  free(out);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  static bool stats_registered;
  if (!stats_registered) {
    stats_registered = true;
    if (getenv("DRT_FUZZ_STATS")) atexit(print_stats);
  }
  g_stats.inputs++;
  drt_onnx_options oo;
  drt_onnx_options_init(&oo);
  oo.max_bytes = 64u << 20;
  drt_graph *g = NULL;
  drt_status st = drt_onnx_load_memory(data, size, NULL, "fuzz.onnx", &oo, &g);
  if (st) {
    drt_status_free(st);
    return 0;
  }
  g_stats.loaded++;
  bind_dims(g);
  if (!small_enough_to_bind(g)) {
    drt_graph_destroy(g);
    return 0;
  }
  drt_pass_ctx pc;
  memset(&pc, 0, sizeof pc);
  pc.num_threads = 1;
  pc.max_fold_bytes = FUZZ_MAX_FOLD_BYTES;
  bool changed;
  st = drt_pass_canonicalize(g, &pc, &changed);
  if (!st) {
    g_stats.canonical++;
    st = drt_graph_verify(g, true);
    if (st) {
      fprintf(stderr, "a canonicalized graph fails the verifier: %s\n", drt_status_message(st));
      abort();
    }
    roundtrip_plan(g);
    execute(g);
  }
  drt_status_free(st);
  drt_graph_destroy(g);
  return 0;
}
