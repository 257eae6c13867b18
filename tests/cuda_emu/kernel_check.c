/* drt_emu_kernel_check: node-by-node check of a plan's CUDA program in the emulator.
 *
 *   drt_emu_kernel_check PLAN KERNELS.so [--graph K] [--input NAME=FILE.npy ...] [--tol T] [--seed S] [-v]
 *
 * Renders the plan's CUDA program (as the runtime does), gives every value of each program graph
 * its own host buffer in device storage dtype (constants converted, graph inputs from --input or
 * seeded random data), then for every node in order:
 *   - computes the node on the CPU (drt_cpu_run_node) from the CURRENT device contents of its
 *     inputs (converted to the node's dtypes), so errors never compound from node to node;
 *   - runs the node's launches: KERNEL through drt_emu_launch from KERNELS.so (tests/cuda_emu/
 *     build_kernels.sh), GEMM with a row-major reference accumulating in double, COPY, HOST with
 *     the CPU kernels;
 *   - compares every output (relative L2 for floats, exact for integers/bool, NaN/Inf fail).
 * Prints one line per failing node (every node with -v) and a summary; exit 1 if any node fails.
 * Tolerance per node: 1e-3 fp32/tf32, 1e-2 fp16/bf16 (--tol overrides). This localizes a fixture
 * failure of run_emu.py to the first wrong kernel. */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/codegen.h"
#include "ir/dtype.h"
#include "ir/infer_movement.h"
#include "ir/op.h"
#include "runtime/cpu/cpu.h"
#include "runtime/npy.h"
#include "runtime/plan.h"

typedef int (*emu_launch_fn)(const void *, const unsigned *, const unsigned *, size_t, const void *);
typedef const char *(*emu_error_fn)(void);

typedef struct named_input {
  const char *name;
  drt_tensor t;
} named_input;

static unsigned long long g_rng = 0x9E3779B97F4A7C15ull;
static double rnd_normal(void) {
  double u[2];
  for (int i = 0; i < 2; i++) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    u[i] = ((double)(g_rng >> 11) + 0.5) / 9007199254740992.0;
  }
  return sqrt(-2.0 * log(u[0])) * cos(6.283185307179586 * u[1]);
}

static size_t numel_of(const drt_value *v) { return v->has_shape ? (size_t)drt_shape_numel(&v->shape) : 0; }

typedef struct checker {
  const drt_cuda_program *prog;
  drt_cuda_precision precision;
  void *lib;
  emu_launch_fn launch;
  emu_error_fn error;
  void **kfn; /* per program kernel */
  bool *is_view; /* per value id: its buffer lies in its root's (memory plan view) */
  double tol;
  int verbose;
  named_input *inputs;
  int num_inputs, cap_inputs; /* --input files, then the outputs of the graphs checked so far */
  /* per graph */
  const drt_graph *g;
  const drt_cuda_graph_code *gc;
  void **buf; /* by value id: device storage */
  unsigned char *scratch;
  int failed_nodes;
  int warned_nonfinite;
} checker;

static drt_dtype storage(const checker *c, const drt_value *v) { return drt_cuda_value_storage(c->precision, c->gc, v); }

/* Device contents of v converted to v's dtype (malloc'd). */
static void *to_host(const checker *c, const drt_value *v) {
  size_t n = numel_of(v);
  void *h = malloc(n * drt_dtype_size(v->dtype) + 1);
  if (h && n) drt_convert(v->dtype, h, storage(c, v), c->buf[v->id], n);
  return h;
}

static void from_host(const checker *c, const drt_value *v, const void *h) {
  size_t n = numel_of(v);
  if (n) drt_convert(storage(c, v), c->buf[v->id], v->dtype, h, n);
}

static unsigned long long arg_addr(const checker *c, const drt_cuda_arg *a, int *bad) {
  switch (a->kind) {
    case DRT_CUDA_ARG_NONE: return 0;
    case DRT_CUDA_ARG_IMM: return a->imm;
    case DRT_CUDA_ARG_SCRATCH: return (unsigned long long)(uintptr_t)(c->scratch + a->offset);
    case DRT_CUDA_ARG_VALUE:
      if (!a->value || a->value->id >= c->g->next_id || !c->buf[a->value->id]) {
        *bad = 1;
        return 0;
      }
      return (unsigned long long)(uintptr_t)((unsigned char *)c->buf[a->value->id] + a->offset);
    default: *bad = 1; return 0;
  }
}

static double ld(drt_dtype t, const void *p, size_t i) { return drt_load_f64(t, p, i); }
static void st(drt_dtype t, void *p, size_t i, double v) {
  float f = (float)v;
  drt_convert(t, (unsigned char *)p + i * drt_dtype_size(t), DRT_DTYPE_FLOAT32, &f, 1);
}

/* Row-major reference of drt_cuda_gemm (codegen/codegen.h), double accumulation. */
static int run_gemm(const checker *c, const drt_cuda_gemm *g) {
  int bad = 0;
  const void *A = (const void *)(uintptr_t)arg_addr(c, &g->a, &bad);
  const void *B = (const void *)(uintptr_t)arg_addr(c, &g->b, &bad);
  const void *C = (const void *)(uintptr_t)arg_addr(c, &g->c, &bad);
  void *D = (void *)(uintptr_t)arg_addr(c, &g->d, &bad);
  const void *bias = (const void *)(uintptr_t)arg_addr(c, &g->bias, &bad);
  if (bad || !A || !B || !D) return -1;
  bool has_bias = g->epilogue == DRT_CUDA_EPI_BIAS || g->epilogue == DRT_CUDA_EPI_GELU_BIAS ||
                  g->epilogue == DRT_CUDA_EPI_RELU_BIAS;
  bool relu = g->epilogue == DRT_CUDA_EPI_RELU || g->epilogue == DRT_CUDA_EPI_RELU_BIAS;
  bool gelu = g->epilogue == DRT_CUDA_EPI_GELU || g->epilogue == DRT_CUDA_EPI_GELU_BIAS;
  size_t mn = (size_t)(g->m * g->n);
  double *acc = malloc((mn ? mn : 1) * sizeof *acc);
  if (!acc) return -1;
  for (int64_t b = 0; b < g->batch; b++) {
    for (int64_t i = 0; i < g->m; i++)
      for (int64_t j = 0; j < g->n; j++) {
        double s = 0;
        for (int64_t k = 0; k < g->k; k++) {
          size_t ia = (size_t)(b * g->stride_a + (g->trans_a ? k * g->lda + i : i * g->lda + k));
          size_t ib = (size_t)(b * g->stride_b + (g->trans_b ? j * g->ldb + k : k * g->ldb + j));
          s += ld(g->a_type, A, ia) * ld(g->b_type, B, ib);
        }
        double v = g->alpha * s;
        if (g->c.kind != DRT_CUDA_ARG_NONE && g->beta != 0.0)
          v += g->beta * ld(g->c_type, C, (size_t)(b * g->stride_c + i * g->ldc + j));
        if (has_bias) v += ld(g->bias_type, bias, (size_t)j);
        if (relu) v = v > 0 ? v : 0;
        if (gelu) v = 0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
        acc[i * g->n + j] = v; /* D may alias C: write after the whole batch item is computed */
      }
    for (int64_t i = 0; i < g->m; i++)
      for (int64_t j = 0; j < g->n; j++) st(g->d_type, D, (size_t)(b * g->stride_d + i * g->ldd + j), acc[i * g->n + j]);
  }
  free(acc);
  return 0;
}

static drt_status cpu_node(const checker *c, const drt_node *n, void **outs) {
  drt_tensor in[64], out[64];
  if (n->num_inputs > 64 || n->num_outputs > 64) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "too many operands");
  void *hin[64];
  for (int i = 0; i < n->num_inputs; i++) {
    const drt_value *v = n->inputs[i];
    memset(&in[i], 0, sizeof in[i]);
    hin[i] = NULL;
    if (!v) continue;
    hin[i] = to_host(c, v);
    /* small float32 constants: elementwise programs may read them in fp32 from their own text
       (codegen/emit_elementwise.c), so the reference takes the exact values; elsewhere the
       difference is one storage rounding of a constant, far inside the tolerance */
    if (hin[i] && v->kind == DRT_VALUE_CONST && v->data && v->dtype == DRT_DTYPE_FLOAT32 && numel_of(v) <= 1024)
      memcpy(hin[i], v->data, numel_of(v) * sizeof(float));
    in[i].dtype = v->dtype;
    in[i].shape = v->shape;
    in[i].data = hin[i];
  }
  for (int i = 0; i < n->num_outputs; i++) {
    const drt_value *v = n->outputs[i];
    out[i].dtype = v->dtype;
    out[i].shape = v->shape;
    out[i].data = outs[i] = calloc(numel_of(v) * drt_dtype_size(v->dtype) + 1, 1);
  }
  drt_cpu_ctx ctx = {NULL, 1};
  drt_status st_ = drt_cpu_run_node(&ctx, n, in, out);
  for (int i = 0; i < n->num_inputs; i++) free(hin[i]);
  return st_;
}

static double rel_l2(drt_dtype dt, const void *a, const void *b, size_t n, size_t *nonfinite) {
  double d = 0, r = 0;
  *nonfinite = 0;
  for (size_t i = 0; i < n; i++) {
    double x = drt_load_f64(dt, a, i), y = drt_load_f64(dt, b, i);
    if (!isfinite(x) && isfinite(y)) {
      (*nonfinite)++;
      continue;
    }
    if (!isfinite(y)) continue;
    d += (x - y) * (x - y);
    r += y * y;
  }
  return r > 0 ? sqrt(d / r) : sqrt(d);
}

static int check_graph(checker *c, const drt_cuda_graph_code *gc, size_t gi) {
  const drt_graph *g = gc->graph;
  c->g = g;
  c->gc = gc;
  c->buf = calloc(g->next_id + 1, sizeof *c->buf);
  c->scratch = malloc(gc->scratch_bytes + 256);
  if (!c->buf || !c->scratch) return -1;
  for (size_t i = 0; i < g->num_values; i++) {
    const drt_value *v = g->values[i];
    const drt_value *ar;
    int64_t aoff;
    if (!v->has_shape || v->id >= g->next_id || v->view_of || (!g->mem_planned && drt_unplanned_alias(v, &ar, &aoff)))
      continue;
    size_t n = numel_of(v), nb = n * drt_dtype_size(storage(c, v));
    c->buf[v->id] = malloc(nb + 64);
    if (!c->buf[v->id]) return -1;
    memset(c->buf[v->id], 0xFF, nb + 64);
    if (v->kind == DRT_VALUE_CONST && v->data) {
      drt_convert(storage(c, v), c->buf[v->id], v->dtype, v->data, n);
    } else if (v->kind == DRT_VALUE_INPUT) {
      const named_input *ni = NULL;
      for (int k = 0; k < c->num_inputs; k++)
        if (!strcmp(c->inputs[k].name, v->name)) ni = &c->inputs[k];
      if (ni && ni->t.dtype == v->dtype && (size_t)drt_shape_numel(&ni->t.shape) == n) {
        from_host(c, v, ni->t.data);
      } else {
        float *tmp = malloc(n * sizeof *tmp + 1);
        if (!tmp) return -1;
        for (size_t k = 0; k < n; k++) tmp[k] = drt_dtype_is_float(v->dtype) ? (float)rnd_normal() : 0.0f;
        drt_convert(storage(c, v), c->buf[v->id], DRT_DTYPE_FLOAT32, tmp, n);
        free(tmp);
      }
    }
  }
  /* memory plan views share their root's buffer, as in the device arena */
  c->is_view = calloc(g->next_id + 1, sizeof *c->is_view);
  if (!c->is_view) return -1;
  for (size_t i = 0; i < g->num_values; i++) {
    const drt_value *v = g->values[i];
    if (!v->view_of || v->id >= g->next_id || !c->buf[v->view_of->id]) continue;
    c->buf[v->id] = (char *)c->buf[v->view_of->id] + (size_t)v->view_offset * drt_dtype_size(storage(c, v));
    c->is_view[v->id] = true;
  }
  /* graphs without a memory plan: aliases of their root, as the CUDA executor places them */
  for (size_t i = 0; i < g->num_values && !g->mem_planned; i++) {
    const drt_value *v = g->values[i], *r;
    int64_t off;
    if (v->id >= g->next_id || !drt_unplanned_alias(v, &r, &off) || !c->buf[r->id]) continue;
    c->buf[v->id] = (char *)c->buf[r->id] + (size_t)off * drt_dtype_size(storage(c, v));
    c->is_view[v->id] = true;
  }
  int bad_nodes = 0;
  for (size_t ni = 0; ni < g->num_nodes; ni++) {
    const drt_node *n = g->nodes[ni];
    void *ref[64] = {0};
    drt_status s = cpu_node(c, n, ref);
    const char *why = NULL;
    char msg[512] = "";
    int kinds[4] = {0, 0, 0, 0};
    /* a node computed in more than one way (drt_cuda_launch.variant): every variant is run and
       checked, each followed by the node's common launches */
    int nvar = 1;
    for (uint32_t li = gc->node_first[ni]; li < gc->node_first[ni + 1]; li++)
      if (gc->launches[li].variant > nvar) nvar = gc->launches[li].variant;
    double worst = 0;
    for (int var = 1; var <= nvar && !why; var++) {
      if (nvar > 1) { /* each variant must write all of its outputs itself: NaN them (and the scratch) first */
        memset(c->scratch, 0xFF, gc->scratch_bytes + 256);
        for (int o = 0; o < n->num_outputs; o++) {
          const drt_value *v = n->outputs[o];
          bool shared = false;
          for (int k = 0; k < n->num_inputs; k++)
            if (n->inputs[k] && c->buf[n->inputs[k]->id] == c->buf[v->id]) shared = true;
          if (v->has_shape && c->buf[v->id] && !shared)
            memset(c->buf[v->id], 0xFF, numel_of(v) * drt_dtype_size(storage(c, v)));
        }
      }
      for (uint32_t li = gc->node_first[ni]; li < gc->node_first[ni + 1] && !why; li++) {
        const drt_cuda_launch *l = &gc->launches[li];
        if (l->variant && l->variant != var) continue;
        if (l->kind < 4) kinds[l->kind]++;
        int bad = 0;
        if (l->kind == DRT_CUDA_LAUNCH_KERNEL) {
          unsigned long long ka[DRT_CUDA_MAX_ARGS];
          memset(ka, 0, sizeof ka);
          for (int a = 0; a < l->num_args; a++) ka[a] = arg_addr(c, &l->args[a], &bad);
          if (bad) {
            why = "a kernel argument names a value without a buffer";
            break;
          }
          if (l->block[0] * l->block[1] * l->block[2] > c->prog->kernels[l->kernel].max_threads) {
            snprintf(msg, sizeof msg, "kernel %s launched with %u threads, written for %u (launch_bounds)",
                     c->prog->kernels[l->kernel].name, l->block[0] * l->block[1] * l->block[2],
                     c->prog->kernels[l->kernel].max_threads);
            why = msg;
            break;
          }
          if (c->launch(c->kfn[l->kernel], l->grid, l->block, l->smem, ka)) {
            snprintf(msg, sizeof msg, "kernel %s: %s", c->prog->kernels[l->kernel].name, c->error());
            why = msg;
          }
        } else if (l->kind == DRT_CUDA_LAUNCH_GEMM) {
          if (run_gemm(c, &l->gemm)) why = "GEMM operand without a buffer";
        } else if (l->kind == DRT_CUDA_LAUNCH_COPY) {
          unsigned long long d = arg_addr(c, &l->dst, &bad), sp = arg_addr(c, &l->src, &bad);
          if (bad) why = "COPY operand without a buffer";
          else if (d != sp && l->bytes) memmove((void *)(uintptr_t)d, (const void *)(uintptr_t)sp, l->bytes);
        } else if (l->kind == DRT_CUDA_LAUNCH_HOST) {
          for (int o = 0; o < n->num_outputs && !s; o++) from_host(c, n->outputs[o], ref[o]);
        }
      }
      if (!why && s) {
        snprintf(msg, sizeof msg, "CPU reference failed: %s", drt_status_message(s));
        why = msg;
      }
      for (int o = 0; o < n->num_outputs && !why; o++) {
        const drt_value *v = n->outputs[o];
        if (!v->has_shape || !c->buf[v->id]) continue;
        size_t cnt = numel_of(v);
        void *dev = to_host(c, v);
        if (!dev) continue;
        if (drt_dtype_is_float(v->dtype)) {
          size_t nf = 0;
          double e = rel_l2(v->dtype, dev, ref[o], cnt, &nf);
          if (nf) {
            snprintf(msg, sizeof msg, "output %d '%s': %zu NaN/Inf where the CPU is finite", o, v->name, nf);
            why = msg;
          } else if (!(e <= c->tol)) {
            snprintf(msg, sizeof msg, "output %d '%s': rel L2 %.3g > %.0e", o, v->name, e, c->tol);
            why = msg;
          }
          if (e > worst) worst = e;
          size_t ndev = 0;
          for (size_t k = 0; k < cnt; k++) ndev += !isfinite(drt_load_f64(v->dtype, dev, k));
          if (!nf && ndev && !c->warned_nonfinite++)
            printf("graph %zu node %4zu %-16s %-40.40s WARN: first node with NaN/Inf in an output (%zu values; the "
                   "CPU gets them too from the same storage-rounded inputs: %s range/precision)\n",
                   gi, ni, drt_op_name(n->op), n->name ? n->name : "", ndev, drt_cuda_precision_name(c->precision));
        } else {
          size_t diff = 0, first = 0;
          for (size_t k = 0; k < cnt; k++)
            if (drt_load_i64(v->dtype, dev, k) != drt_load_i64(v->dtype, ref[o], k) && !diff++) first = k;
          if (diff) {
            snprintf(msg, sizeof msg, "output %d '%s': %zu of %zu elements differ (first %zu: %lld vs cpu %lld)", o,
                     v->name, diff, cnt, first, (long long)drt_load_i64(v->dtype, dev, first),
                     (long long)drt_load_i64(v->dtype, ref[o], first));
            why = msg;
          }
        }
        free(dev);
      }
      if (why && nvar > 1) {
        char tmp[sizeof msg];
        snprintf(tmp, sizeof tmp, "variant %d: %.480s", var, why);
        memcpy(msg, tmp, sizeof msg);
        why = msg;
      }
    }
    if (why) bad_nodes++;
    if (why || c->verbose)
      printf("graph %zu node %4zu %-16s %-40.40s %s %.2e  (%d kernel, %d gemm, %d copy, %d host)%s%s\n", gi, ni,
             drt_op_name(n->op), n->name ? n->name : "", why ? "FAIL" : "ok  ", worst, kinds[0], kinds[1], kinds[2],
             kinds[3], why ? "  " : "", why ? why : "");
    drt_status_free(s);
    for (int o = 0; o < n->num_outputs; o++) free(ref[o]);
  }
  /* a stage's outputs feed the main graph's internal inputs of the same name */
  for (size_t i = 0; i < g->num_outputs && c->num_inputs < c->cap_inputs; i++) {
    const drt_value *v = g->outputs[i];
    if (!v->has_shape || !c->buf[v->id]) continue;
    named_input *ni = &c->inputs[c->num_inputs];
    ni->name = v->name;
    ni->t.dtype = v->dtype;
    ni->t.shape = v->shape;
    ni->t.data = to_host(c, v);
    if (ni->t.data) c->num_inputs++;
  }
  for (size_t i = 0; i <= g->next_id; i++)
    if (!c->is_view[i]) free(c->buf[i]);
  free(c->buf);
  free(c->is_view);
  c->is_view = NULL;
  free(c->scratch);
  c->buf = NULL;
  c->scratch = NULL;
  c->failed_nodes += bad_nodes;
  printf("graph %zu: %zu nodes, %d failed\n", gi, g->num_nodes, bad_nodes);
  return 0;
}

static int usage(void) {
  fprintf(stderr, "usage: drt_emu_kernel_check PLAN KERNELS.so [--graph K] [--input NAME=FILE.npy ...] [--tol T] "
                  "[--seed S] [--dump-source FILE] [-v]\n");
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 3) return usage();
  const char *plan = argv[1], *kso = argv[2];
  checker c;
  memset(&c, 0, sizeof c);
  c.tol = -1;
  long graph_only = -1;
  const char *dump = NULL;
  named_input ins[256];
  for (int i = 3; i < argc; i++) {
    if (!strcmp(argv[i], "-v")) {
      c.verbose = 1;
    } else if (!strcmp(argv[i], "--tol") && i + 1 < argc) {
      c.tol = atof(argv[++i]);
    } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
      g_rng = strtoull(argv[++i], NULL, 10) * 2654435761ull + 1;
    } else if (!strcmp(argv[i], "--dump-source") && i + 1 < argc) {
      dump = argv[++i];
    } else if (!strcmp(argv[i], "--graph") && i + 1 < argc) {
      graph_only = atol(argv[++i]);
    } else if (!strcmp(argv[i], "--input") && i + 1 < argc && c.num_inputs < 64) { /* room left for stage outputs */
      char *spec = argv[++i], *eq = strchr(spec, '=');
      if (!eq) return usage();
      *eq = 0;
      drt_status s = drt_npy_read_file(eq + 1, &ins[c.num_inputs].t);
      if (s) {
        fprintf(stderr, "error: %s\n", drt_status_message(s));
        return 2;
      }
      ins[c.num_inputs++].name = spec;
    } else {
      return usage();
    }
  }
  c.inputs = ins;
  c.cap_inputs = 256;
  void *bytes;
  size_t size;
  drt_status s = drt_read_file(plan, 0, &bytes, &size);
  drt_plan_contents pc;
  if (!s) s = drt_plan_parse(bytes, size, plan, &pc);
  if (s) {
    fprintf(stderr, "error: %s\n", drt_status_message(s));
    return 2;
  }
  if (!pc.cuda.present) {
    fprintf(stderr, "error: %s has no CUDA section (drt compile --target cuda)\n", plan);
    return 2;
  }
  c.precision = (drt_cuda_precision)pc.cuda.precision;
  if (c.tol < 0) c.tol = c.precision == DRT_CUDA_PRECISION_FP16 || c.precision == DRT_CUDA_PRECISION_BF16 ? 1e-2 : 1e-3;
  const drt_graph *graphs[DRT_PLAN_MAX_CUDA_GRAPHS];
  size_t ng = drt_plan_cuda_graphs(&pc, graphs, DRT_PLAN_MAX_CUDA_GRAPHS);
  drt_cuda_codegen_options co;
  drt_cuda_codegen_options_init(&co);
  co.precision = c.precision;
  co.allow_host_fallback = true;
  drt_cuda_program *prog = NULL;
  s = drt_cuda_program_build(graphs, ng, &co, &prog);
  if (s) {
    fprintf(stderr, "error: rendering the program: %s\n", drt_status_message(s));
    return 2;
  }
  c.prog = prog;
  if (dump) {
    FILE *f = fopen(dump, "w");
    if (!f || fwrite(prog->source, 1, prog->source_len, f) != prog->source_len) {
      fprintf(stderr, "error: cannot write %s\n", dump);
      return 2;
    }
    fclose(f);
  }
  if (prog->source_hash != pc.cuda.source_hash)
    fprintf(stderr, "warning: the program rendered by this build (hash %016llx) differs from the plan's (%016llx): "
            "build the kernels .so from `drt inspect --cuda-source` of the same build\n",
            (unsigned long long)prog->source_hash, (unsigned long long)pc.cuda.source_hash);
  c.lib = dlopen(kso, RTLD_NOW | RTLD_LOCAL);
  if (!c.lib) {
    fprintf(stderr, "error: %s\n", dlerror());
    return 2;
  }
  void *l = dlsym(c.lib, "drt_emu_launch"), *e = dlsym(c.lib, "drt_emu_error");
  if (!l || !e) {
    fprintf(stderr, "error: %s was not built with tests/cuda_emu/emu.h\n", kso);
    return 2;
  }
  memcpy(&c.launch, &l, sizeof l);
  memcpy(&c.error, &e, sizeof e);
  c.kfn = calloc(prog->num_kernels + 1, sizeof *c.kfn);
  for (size_t k = 0; k < prog->num_kernels; k++) {
    c.kfn[k] = dlsym(c.lib, prog->kernels[k].name);
    if (!c.kfn[k]) {
      fprintf(stderr, "error: kernel %s is not in %s (stale kernels .so?)\n", prog->kernels[k].name, kso);
      return 2;
    }
  }
  printf("%s: precision %s, %zu graphs, %zu kernels, tolerance %.0e\n", plan, drt_cuda_precision_name(c.precision),
         prog->num_graphs, prog->num_kernels, c.tol);
  /* stages (graphs 1..) first: their outputs are the main graph's internal inputs */
  for (size_t k = 0; k < prog->num_graphs; k++) {
    size_t gi = (k + 1) % prog->num_graphs;
    if (graph_only >= 0 && (size_t)graph_only != gi) continue;
    if (check_graph(&c, &prog->graphs[gi], gi)) {
      fprintf(stderr, "error: out of memory\n");
      return 2;
    }
  }
  printf("%d nodes failed\n", c.failed_nodes);
  drt_cuda_program_destroy(prog);
  drt_plan_contents_free(&pc);
  for (int i = 0; i < c.num_inputs; i++) free(ins[i].t.data);
  free(c.kfn);
  return c.failed_nodes ? 1 : 0;
}
