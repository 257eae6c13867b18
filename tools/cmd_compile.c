/* drt compile: ONNX model -> .plan */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codegen/codegen.h"
#include "codegen/nvrtc.h"
#include "frontend/onnx.h"
#include "ir/cfg_combine.h"
#include "passes/canonicalize.h"
#include "passes/half_promote.h"
#include "passes/pipeline.h"
#include "runtime/npy.h"
#include "runtime/plan.h"
#include "runtime/sampler.h"
#include "tools/cli.h"
#include "tools/compile_adapt.h"

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void write_stderr(void *user, const char *text) {
  (void)user;
  fputs(text, stderr);
}
static void write_stdout(void *user, const char *text) {
  (void)user;
  fputs(text, stdout);
}

static void compile_usage(FILE *f) {
  fprintf(f,
          "usage: drt compile MODEL.onnx -o MODEL.plan [--shape NAME=DIMS ...] [--target cpu|cuda|auto]\n"
          "                   [--latent NAME] [--timestep NAME] [--disable-pass NAME ...] [--dump-after NAME]\n"
          "                   [--list-passes] [--max-memory BYTES] [-v]\n"
          "                   [--schedule NAME [--steps N] [--schedule-params K=V,...]]\n"
          "                   [--cfg-scale W --cfg-uncond NAME=zeros|FILE.npy ... [--cfg-mode MODE]]\n"
          "                   [--invariant NAME ...] [--arch LIST] [--precision fp32|tf32|fp16|bf16]\n"
          "                   [--cuda-source FILE]\n\n"
          "Compiles an ONNX model into a .plan: binds every symbolic dimension (from --shape or the model's\n"
          "static shapes), infers shapes, folds constants, records the input/output signature and writes\n"
          "the plan atomically (a failure leaves no file). --latent/--timestep name the model inputs that\n"
          "carry the latent sample and the timestep (default: detected from common export names such as\n"
          "sample/x/latents and timestep/t/timesteps); every other input is conditioning.\n"
          "--disable-pass NAME skips a pass (all-fusions: every fusion pass); --dump-after NAME prints the\n"
          "graph after that pass; -v prints what each pass changed.\n"
          "--max-memory BYTES (suffix K, M, G or T) bounds the model's bytes with its external data and the\n"
          "constants folding creates; going over fails with exit code 4 before the allocation.\n"
          "--schedule stores a default sampling schedule (and lets timestep-only work be tabled per step).\n"
          "--cfg-scale W folds classifier-free guidance into the plan: one evaluation runs the conditional\n"
          "and unconditional passes as one doubled batch and returns the guided prediction; W is the default\n"
          "of the plan's guidance_scale input (drt run/generate --cfg-scale override it without recompiling).\n"
          "--cfg-uncond NAME=zeros|FILE.npy gives a conditioning input's unconditional value (repeatable;\n"
          "a .npy may have batch 1). --cfg-mode standard (u + w(c - u), default) | rescale:PHI (guidance\n"
          "rescale) | cfgpp (CFG++: the sampler re-noises with the unconditional prediction) | apg:ETA,R,BETA\n"
          "(adaptive projected guidance: parallel weight, norm threshold, momentum).\n"
          "--invariant NAME marks an input constant during a generation (default: every input but the latent\n"
          "and the timestep); work that depends only on invariant inputs runs once per generation (pass\n"
          "'hoist'; -v reports the FLOPs moved out of the per-step graph).\n"
          "--target cuda also renders the graph (and its hoisted stages and shape buckets) as one CUDA program\n"
          "and compiles it with NVRTC (loaded at run time; no GPU needed) for every --arch: sm_XX entries are\n"
          "cubins, compute_XX entries PTX that the driver compiles for newer GPUs (default\n"
          "" DRT_NVRTC_DEFAULT_ARCHS "; sm_90a: Hopper-only cubin whose fp16/bf16 attention uses warpgroup MMAs,\n"
          "picked on H100/H200 when the plan has no sm_90 cubin). The plan runs on the GPU and still on the CPU.\n"
          "--precision sets the "
          "GPU activation type: fp32 (default; float storage and math), tf32 (float storage, TF32 tensor cores\n"
          "in GEMMs, convolutions and attention), fp16 or bf16 (half/bfloat16 storage and tensor cores; every\n"
          "reduction, norm and softmax accumulates in fp32; tf32 and bf16 need sm_80 or newer). A model\n"
          "exported in float16/bfloat16 is computed in float32 with its type at the inputs and outputs (pass\n"
          "half-promote; --disable-pass half-promote keeps it op by op) and defaults to --precision of its type.\n"
          "Nodes without a CUDA kernel run on the CPU inside a GPU run (reported as warnings here and by drt\n"
          "inspect).\n"
          "--cuda-source FILE also writes the program's CUDA source (before NVRTC runs, so it is there to read\n"
          "when a compile fails: NVRTC's line numbers refer to it; drt inspect --cuda-source PLAN prints it\n"
          "later). Compiled binaries are cached in $DRT_CACHE_DIR (default $XDG_CACHE_HOME/distilrt or\n"
          "~/.cache/distilrt; DRT_CACHE_DIR=off disables).\n");
  fputs(drt_compile_adapt_usage(), f);
}

/* Tuning knobs for A/B runs (tests/gpu/run.sh --ab-attn), recorded as node attributes of every
 * drt.Attention so that the plan renders the same program wherever it loads:
 *   DRT_CUDA_ATTN_ROWS=64|128   query rows per block of the fp16/bf16 kernel (cuda_block_rows)
 *   DRT_CUDA_ATTN_SPLITS=1..8   key splits (cuda_kv_splits; 1: none) */
static drt_status apply_attn_knob(const drt_graph *const *graphs, size_t n, const char *env_name, const char *attr,
                                  int lo, int hi) {
  const char *env = getenv(env_name);
  if (!env || !*env) return DRT_OK;
  char *end = NULL;
  long x = strtol(env, &end, 10);
  if (*end || x < lo || x > hi || (!strcmp(attr, "cuda_block_rows") && x != 64 && x != 128))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s is '%s' (%s)", env_name, env,
                     !strcmp(attr, "cuda_block_rows") ? "64 or 128" : "1 to 8");
  for (size_t i = 0; i < n; i++) {
    drt_graph *g = (drt_graph *)graphs[i]; /* the tool owns them */
    for (size_t k = 0; k < g->num_nodes; k++) {
      drt_node *nd = g->nodes[k];
      if (nd->op != DRT_OP_FUSED_ATTENTION || drt_node_attr(nd, attr)) continue;
      drt_attr a;
      memset(&a, 0, sizeof a);
      a.name = attr;
      a.type = DRT_ATTR_INT;
      a.i = x;
      DRT_RETURN_IF_ERROR(drt_node_add_attr(g, nd, &a));
    }
  }
  return DRT_OK;
}

static drt_status apply_attn_knobs(const drt_graph *const *graphs, size_t n) {
  DRT_RETURN_IF_ERROR(apply_attn_knob(graphs, n, "DRT_CUDA_ATTN_ROWS", "cuda_block_rows", 64, 128));
  return apply_attn_knob(graphs, n, "DRT_CUDA_ATTN_SPLITS", "cuda_kv_splits", 1, 8);
}

/* Nodes without a CUDA kernel run on the CPU inside a GPU run: a warning with the count and the
 * first few ops (drt inspect lists them all). */
static void report_host_nodes(const drt_cuda_program *p) {
  size_t total = 0, shown = 0;
  for (size_t k = 0; k < p->num_graphs; k++) total += p->graphs[k].num_host_nodes;
  if (!total) return;
  fprintf(stderr, "drt compile: warning: %zu node%s no CUDA kernel and will run on the CPU (host fallback):\n", total,
          total == 1 ? " has" : "s have");
  for (size_t k = 0; k < p->num_graphs && shown < 5; k++) {
    const drt_cuda_graph_code *gc = &p->graphs[k];
    for (size_t j = 0; j < gc->num_launches && shown < 5; j++) {
      const drt_cuda_launch *l = &gc->launches[j];
      if (l->kind != DRT_CUDA_LAUNCH_HOST || l->node >= gc->graph->num_nodes) continue;
      const drt_node *n = gc->graph->nodes[l->node];
      fprintf(stderr, "  %s '%s': %s\n", drt_op_name(n->op), n->name ? n->name : "", l->reason);
      shown++;
    }
  }
  if (total > shown) fprintf(stderr, "  ... and %zu more (drt inspect PLAN lists them)\n", total - shown);
}

static const char *k_latent_names[] = {"sample", "x", "latents", "latent", "latent_model_input", "hidden_states",
                                       "x_t", "noisy_latents", "input", NULL};
static const char *k_timestep_names[] = {"timestep", "t", "timesteps", "time", "sigma", "sigmas", "time_step", NULL};

static int detect(const drt_graph *g, const char *given, const char **names) {
  for (size_t i = 0; i < g->num_inputs; i++) {
    if (given) {
      if (strcmp(g->inputs[i]->name, given) == 0) return (int)i;
      continue;
    }
  }
  if (given) return -2;
  for (int k = 0; names[k]; k++)
    for (size_t i = 0; i < g->num_inputs; i++)
      if (strcmp(g->inputs[i]->name, names[k]) == 0) return (int)i;
  return -1;
}

int drt_cmd_compile(int argc, char **argv) {
  const char *model = NULL, *out = NULL, *target = "auto", *latent = NULL, *timestep = NULL;
  const char *schedule = NULL, *sched_params = NULL;
  int sched_steps = 0;
  int verbose = 0, n_shapes = 0;
  bool cfg = false;
  double cfg_scale = 0;
  const char *cfg_mode = NULL, *uncond_args[DRT_PASS_MAX_NAMED], *invariant[DRT_PASS_MAX_NAMED];
  int n_uncond = 0, n_invariant = 0;
  uint64_t max_memory = 0;
  const char *arch_list = NULL, *precision_name = NULL, *source_out = NULL;
  drt_cuda_precision precision = DRT_CUDA_PRECISION_FP32;
  static drt_cli_shape shapes[64];
  static drt_compile_adapt adapt;
  memset(&adapt, 0, sizeof adapt);
  drt_pipeline_options po;
  memset(&po, 0, sizeof po);
  for (int i = 1; i < argc; i++) {
    const char *v;
    int err = 0;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      compile_usage(stdout);
      return 0;
    } else if (drt_cli_opt(argc, argv, &i, "-o", &v, &err) || drt_cli_opt(argc, argv, &i, "--output", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      out = v;
    } else if (drt_cli_opt(argc, argv, &i, "--target", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      if (strcmp(v, "cpu") && strcmp(v, "cuda") && strcmp(v, "auto"))
        return drt_cli_usage_error("compile", "--target must be cpu, cuda or auto, got '%s'", v);
      target = v;
    } else if (drt_cli_opt(argc, argv, &i, "--arch", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      arch_list = v;
    } else if (drt_cli_opt(argc, argv, &i, "--cuda-source", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      source_out = v;
    } else if (drt_cli_opt(argc, argv, &i, "--precision", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      if (!drt_cuda_precision_parse(v, &precision))
        return drt_cli_usage_error("compile", "--precision must be fp32, tf32, fp16 or bf16, got '%s'", v);
      precision_name = v;
    } else if (drt_cli_opt(argc, argv, &i, "--schedule", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      schedule = v;
    } else if (drt_cli_opt(argc, argv, &i, "--schedule-params", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      sched_params = v;
    } else if (drt_cli_opt(argc, argv, &i, "--steps", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      char *end;
      long n = strtol(v, &end, 10);
      if (*end || n < 1 || n > DRT_SCHED_MAX_STEPS) return drt_cli_usage_error("compile", "--steps expects 1..1000");
      sched_steps = (int)n;
    } else if (drt_cli_opt(argc, argv, &i, "--latent", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      latent = v;
    } else if (drt_cli_opt(argc, argv, &i, "--timestep", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      timestep = v;
    } else if (drt_cli_opt(argc, argv, &i, "--shape", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      if (n_shapes >= 64) return drt_cli_usage_error("compile", "too many --shape options");
      const char *dims;
      if (!drt_cli_split_kv(v, shapes[n_shapes].name, sizeof shapes[n_shapes].name, &dims))
        return drt_cli_usage_error("compile", "--shape expects NAME=DIMS, got '%s'", v);
      drt_status s = drt_cli_parse_dims(dims, &shapes[n_shapes].shape);
      if (s) {
        int rc = drt_cli_usage_error("compile", "--shape %s", drt_status_message(s));
        drt_status_free(s);
        return rc;
      }
      n_shapes++;
    } else if (drt_cli_opt(argc, argv, &i, "--max-memory", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      drt_status s = drt_cli_parse_bytes(v, &max_memory);
      if (s) {
        int rc = drt_cli_usage_error("compile", "--max-memory: %s", drt_status_message(s));
        drt_status_free(s);
        return rc;
      }
    } else if (drt_cli_opt(argc, argv, &i, "--cfg-scale", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      char *end;
      cfg_scale = strtod(v, &end);
      if (*end || end == v || !isfinite(cfg_scale))
        return drt_cli_usage_error("compile", "--cfg-scale expects a number, got '%s'", v);
      cfg = true;
    } else if (drt_cli_opt(argc, argv, &i, "--cfg-uncond", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      if (n_uncond >= DRT_PASS_MAX_NAMED) return drt_cli_usage_error("compile", "too many --cfg-uncond");
      if (!strchr(v, '=')) return drt_cli_usage_error("compile", "--cfg-uncond expects NAME=zeros|FILE.npy, got '%s'", v);
      uncond_args[n_uncond++] = v;
    } else if (drt_cli_opt(argc, argv, &i, "--cfg-mode", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      drt_cfg_mode m;
      drt_status ms = drt_cfg_mode_parse(v, &m);
      if (ms) {
        int rc = drt_cli_usage_error("compile", "--cfg-mode: %s", drt_status_message(ms));
        drt_status_free(ms);
        return rc;
      }
      cfg_mode = v;
    } else if (drt_cli_opt(argc, argv, &i, "--invariant", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      if (n_invariant >= DRT_PASS_MAX_NAMED) return drt_cli_usage_error("compile", "too many --invariant");
      invariant[n_invariant++] = v;
    } else if (drt_cli_opt(argc, argv, &i, "--disable-pass", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      if (po.num_disabled >= DRT_PASS_MAX_NAMED) return drt_cli_usage_error("compile", "too many --disable-pass");
      po.disabled[po.num_disabled++] = v;
    } else if (drt_cli_opt(argc, argv, &i, "--dump-after", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      po.dump_after = v;
    } else if (strcmp(argv[i], "--list-passes") == 0) {
      for (size_t k = 0; k < drt_pipeline_num_passes(); k++)
        printf("%-20s %s\n", drt_pipeline_pass(k)->name, drt_pipeline_pass(k)->description);
      return 0;
    } else if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0) {
      verbose++;
    } else if ((err = drt_compile_adapt_option(&adapt, argc, argv, &i)) != 0) {
      if (err < 0) return -err;
    } else if (argv[i][0] == '-') {
      return drt_cli_usage_error("compile", "unknown option '%s'", argv[i]);
    } else if (!model) {
      model = argv[i];
    } else {
      return drt_cli_usage_error("compile", "unexpected argument '%s'", argv[i]);
    }
  }
  if (!model) return drt_cli_usage_error("compile", "missing MODEL.onnx");
  if (!out) return drt_cli_usage_error("compile", "missing -o MODEL.plan");
  if (!cfg && (n_uncond || cfg_mode))
    return drt_cli_usage_error("compile", "--cfg-uncond and --cfg-mode need --cfg-scale W");
  if (cfg && !n_uncond)
    return drt_cli_usage_error("compile", "--cfg-scale needs --cfg-uncond NAME=zeros|FILE.npy (the unconditional "
                               "value of a conditioning input)");
  drt_cli_install_logger(verbose);
  {
    drt_status ns = drt_pipeline_check_names(&po);
    if (ns) return drt_cli_fail("compile", ns);
  }
  po.verbose = verbose > 0;
  po.report = write_stderr;
  po.dump = write_stdout;
  bool cuda = strcmp(target, "cuda") == 0;
  if (!cuda && (arch_list || precision_name || source_out))
    return drt_cli_usage_error("compile", "%s applies to --target cuda",
                               arch_list ? "--arch" : precision_name ? "--precision" : "--cuda-source");
  /* CUDA: check the archs (and that NVRTC loads) before the expensive part */
  char archs[DRT_PLAN_MAX_CUDA_IMAGES][16];
  int num_archs = 0;
  if (cuda) { /* every arch is sm_80+ (DRT_CUDA_MIN_SM): bf16 and tf32 tensor cores everywhere */
    drt_status as = drt_nvrtc_check_archs(arch_list ? arch_list : DRT_NVRTC_DEFAULT_ARCHS, archs,
                                          DRT_PLAN_MAX_CUDA_IMAGES, &num_archs);
    if (as) return drt_cli_fail("compile", drt_status_annotate(as, "--target cuda%s", arch_list ? " --arch" : ""));
  }
  bool tty = isatty(2);
  const int steps = cuda ? 5 : 4;
  double t0 = now_ms();
  if (tty) fprintf(stderr, "[1/%d] loading %s\n", steps, model);
  drt_onnx_options oo;
  drt_onnx_options_init(&oo);
  oo.max_bytes = max_memory;
  drt_graph *g = NULL;
  drt_status st = drt_cli_check_file_size(max_memory, model);
  if (!st) st = drt_onnx_load_file(model, &oo, &g);
  if (st && max_memory && drt_status_code_of(st) == DRT_STATUS_OUT_OF_MEMORY)
    st = drt_status_annotate(st, "memory budget of %" PRIu64 " bytes (--max-memory)", max_memory);
  if (st) return drt_cli_fail("compile", st);
  adapt.verbose = verbose;
  /* a float16/bfloat16 model is widened before the weight trace sees it (passes/half_promote.h) */
  if (!drt_pipeline_disabled(&po, "half-promote")) st = drt_half_promote(g);
  if (!st) st = drt_compile_adapt_loaded(&adapt, g);
  double t1 = now_ms();
  size_t nodes_before = g->num_nodes;
  for (int i = 0; i < n_shapes && !st; i++) {
    bool is_input = false;
    for (size_t k = 0; k < g->num_inputs; k++) is_input |= strcmp(g->inputs[k]->name, shapes[i].name) == 0;
    if (is_input) st = drt_graph_bind_input(g, shapes[i].name, &shapes[i].shape);
    else if (shapes[i].shape.rank == 1) st = drt_graph_bind_dim(g, shapes[i].name, shapes[i].shape.dims[0]);
    else st = DRT_ERROR(DRT_STATUS_NOT_FOUND, "--shape %s: no input or symbolic dimension has this name", shapes[i].name);
  }
  if (tty && !st) fprintf(stderr, "[2/%d] shape inference and constant folding (%zu nodes)\n", steps, nodes_before);
  drt_pass_stats stats;
  memset(&stats, 0, sizeof stats);
  static drt_pass_results results;
  memset(&results, 0, sizeof results);
  char uncond_names[DRT_PASS_MAX_NAMED][256];
  drt_tensor uncond_vals[DRT_PASS_MAX_NAMED];
  int n_uncond_loaded = 0;
  /* the latent and timestep inputs, and the schedule: the passes need them */
  const char *latent_name = NULL, *timestep_name = NULL;
  if (!st) {
    int li = detect(g, latent, k_latent_names), ti = detect(g, timestep, k_timestep_names);
    if (li == -2) st = DRT_ERROR(DRT_STATUS_NOT_FOUND, "--latent %s: the model has no such input", latent);
    else if (ti == -2) st = DRT_ERROR(DRT_STATUS_NOT_FOUND, "--timestep %s: the model has no such input", timestep);
    if (li >= 0) latent_name = g->inputs[li]->name;
    if (ti >= 0 && ti != li) timestep_name = g->inputs[ti]->name;
  }
  drt_schedule sched;
  memset(&sched, 0, sizeof sched);
  double *sched_t = NULL;
  if (!st && schedule) {
    drt_schedule_params sp;
    st = drt_schedule_parse_params(schedule, sched_steps, sched_params, &sp);
    if (!st) st = drt_schedule_build(&sp, &sched);
    if (!st) {
      sched_t = malloc((size_t)sched.num_steps * sizeof(double));
      if (!sched_t) st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "schedule");
      for (int k = 0; !st && k < sched.num_steps; k++) sched_t[k] = sched.steps[k].t_model;
    }
    if (st) st = drt_status_annotate(st, "--schedule %s", schedule);
  }
  for (int i = 0; i < n_uncond && !st; i++) {
    const char *file;
    if (!drt_cli_split_kv(uncond_args[i], uncond_names[i], sizeof uncond_names[i], &file)) {
      st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "--cfg-uncond expects NAME=zeros|FILE.npy, got '%s'", uncond_args[i]);
      break;
    }
    memset(&uncond_vals[i], 0, sizeof uncond_vals[i]);
    if (strcmp(file, "zeros") != 0) {
      st = drt_cli_read_tensor(file, &uncond_vals[i]);
      if (st) st = drt_status_annotate(st, "--cfg-uncond %s", uncond_names[i]);
    }
    n_uncond_loaded = i + 1;
  }
  if (!st) {
    drt_pass_ctx pc = {0};
    pc.stats = &stats;
    pc.results = &results;
    pc.max_memory = max_memory;
    pc.latent_input = latent_name;
    pc.timestep_input = timestep_name;
    pc.cfg_enabled = cfg;
    pc.cfg_scale = cfg_scale;
    pc.cfg_mode = cfg_mode;
    pc.cfg_num_uncond = n_uncond;
    for (int i = 0; i < n_uncond; i++) {
      pc.cfg_uncond_names[i] = uncond_names[i];
      pc.cfg_uncond_values[i] = uncond_vals[i].data ? &uncond_vals[i] : NULL;
    }
    pc.num_invariant = n_invariant;
    for (int i = 0; i < n_invariant; i++) pc.invariant_inputs[i] = invariant[i];
    pc.sched_steps = sched_t ? sched.num_steps : 0;
    pc.sched_t = sched_t;
    st = drt_compile_adapt_pipeline(&adapt, &po);
    if (!st) st = drt_pipeline_run(g, &pc, &po);
    if (!st) st = drt_compile_adapt_buckets(&adapt, model, &oo, shapes, n_shapes, &pc, &po);
  }
  for (int i = 0; i < n_uncond_loaded; i++) free(uncond_vals[i].data);
  if (!st) st = drt_graph_verify(g, true);
  double t2 = now_ms();
  drt_plan_contents c;
  memset(&c, 0, sizeof c);
  c.graph = g;
  c.targets = DRT_PLAN_TARGET_CPU;
  if (!st) {
    c.input_roles = calloc(g->num_inputs + 1, 1);
    c.output_roles = calloc(g->num_outputs + 1, 1);
    if (!c.input_roles || !c.output_roles) st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "signature");
  }
  if (!st) {
    int li = detect(g, latent, k_latent_names), ti = detect(g, timestep, k_timestep_names);
    if (li == -2) st = DRT_ERROR(DRT_STATUS_NOT_FOUND, "--latent %s: the model has no such input", latent);
    else if (ti == -2) st = DRT_ERROR(DRT_STATUS_NOT_FOUND, "--timestep %s: the model has no such input", timestep);
    else {
      if (li >= 0) c.input_roles[li] = DRT_PLAN_ROLE_LATENT;
      if (ti >= 0 && ti != li) c.input_roles[ti] = DRT_PLAN_ROLE_TIMESTEP;
      if (g->num_outputs > 0) c.output_roles[0] = DRT_PLAN_ROLE_PREDICTION;
    }
    /* what the passes added: guidance inputs/outputs, inputs fed by hoisted stages */
    for (size_t i = 0; i < g->num_inputs; i++) {
      const char *nm = g->inputs[i]->name;
      if (strcmp(nm, results.cfg_scale_input) == 0) c.input_roles[i] = DRT_PLAN_ROLE_GUIDANCE_SCALE;
      if (strcmp(nm, results.cfg_state_input) == 0) c.input_roles[i] = DRT_PLAN_ROLE_GUIDANCE_STATE;
      for (int k = 0; k < results.num_stages; k++) {
        const drt_graph *sg = results.stages[k].graph;
        for (size_t j = 0; j < sg->num_outputs; j++)
          if (strcmp(sg->outputs[j]->name, nm) == 0) c.input_roles[i] = DRT_PLAN_ROLE_HOISTED;
      }
    }
    for (size_t i = 0; i < g->num_outputs; i++) {
      const char *nm = g->outputs[i]->name;
      if (strcmp(nm, results.cfg_uncond_output) == 0) c.output_roles[i] = DRT_PLAN_ROLE_UNCOND_PREDICTION;
      if (strcmp(nm, results.cfg_state_output) == 0) c.output_roles[i] = DRT_PLAN_ROLE_GUIDANCE_STATE_OUT;
    }
    for (int k = 0; k < results.num_stages && k < DRT_PLAN_MAX_STAGES; k++) {
      drt_pass_stage *ps = &results.stages[k];
      c.stages[k].kind = ps->kind == DRT_STAGE_PROLOGUE ? DRT_PLAN_STAGE_PROLOGUE : DRT_PLAN_STAGE_STEP;
      c.stages[k].graph = ps->graph;
      c.stages[k].table_steps = (uint32_t)ps->table_steps;
      c.stages[k].table_t = ps->table_t;
      c.stages[k].tables = (const void **)ps->tables;
      c.num_stages = (uint32_t)k + 1;
    }
    if (cfg && results.cfg_scale_input[0]) { /* (not with --disable-pass cfg-fold) */
      drt_cfg_mode m;
      drt_status ms = drt_cfg_mode_parse(cfg_mode, &m);
      drt_status_free(ms);
      c.has_guidance = true;
      c.guidance.default_scale = cfg_scale;
      snprintf(c.guidance.mode, sizeof c.guidance.mode, "%s", drt_cfg_mode_name(m.kind));
      c.guidance.phi = m.phi;
      c.guidance.eta = m.eta;
      c.guidance.norm_threshold = m.norm_threshold;
      c.guidance.momentum = m.momentum;
    }
    static const char *const keys[] = {"fused_attention", "fused_norm", "fused_elementwise", "fused_gemm_epilogue",
                                       "cfg_folded", "hoisted_flops"};
    double vals[] = {(double)stats.fused_attention, (double)stats.fused_norm, (double)stats.fused_elementwise,
                     (double)stats.fused_gemm_epilogue, stats.cfg_folded ? 1.0 : 0.0, stats.hoisted_flops};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
      snprintf(c.stats[k].key, sizeof c.stats[k].key, "%s", keys[k]);
      c.stats[k].value = vals[k];
      c.num_stats = (uint32_t)k + 1;
    }
  }
  if (!st && schedule) {
    {
      c.has_schedule = true;
      snprintf(c.schedule.name, sizeof c.schedule.name, "%s", schedule);
      snprintf(c.schedule.params, sizeof c.schedule.params, "%s", sched_params ? sched_params : "");
      c.schedule.num_steps = (uint32_t)sched.num_steps;
      c.schedule.init_noise_sigma = sched.init_noise_sigma;
      c.schedule.steps = malloc((size_t)sched.num_steps * sizeof *c.schedule.steps);
      if (!c.schedule.steps) st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "schedule");
      for (int k = 0; !st && k < sched.num_steps; k++) {
        const drt_sched_step *q = &sched.steps[k];
        double row[DRT_SCHED_SCALARS] = {q->t_model, q->c_in, q->p_x, q->p_m, q->q_x, q->q_m, q->a, q->b, q->c};
        memcpy(c.schedule.steps[k], row, sizeof row);
      }
    }
  }
  if (!st) {
    const drt_graph *split[DRT_PLAN_MAX_STAGES];
    for (uint32_t k = 0; k < c.num_stages && k < DRT_PLAN_MAX_STAGES; k++) split[k] = c.stages[k].graph;
    st = drt_compile_adapt_compiled(&adapt, g, split, c.num_stages, &c);
  }
  /* CUDA: render every graph of the plan as one program, compile it for every arch */
  drt_cuda_program *prog = NULL;
  drt_nvrtc_image images[DRT_PLAN_MAX_CUDA_IMAGES];
  memset(images, 0, sizeof images);
  double t_codegen = 0, t_nvrtc = 0;
  if (!st && cuda && adapt.add_bucket)
    st = DRT_ERROR(DRT_STATUS_UNSUPPORTED, "--add-bucket cannot be combined with --target cuda: recompile every "
                   "bucket at once with --shapes");
  if (!st && cuda && !precision_name && results.half_type != DRT_DTYPE_UNDEFINED) {
    /* a float16 / bfloat16 model (computed in float32 by pass half-promote): by default its
       tensor-core operands go back to its own type */
    precision = results.half_type == DRT_DTYPE_BFLOAT16 ? DRT_CUDA_PRECISION_BF16 : DRT_CUDA_PRECISION_FP16;
  }
  if (!st && cuda) {
    double tc = now_ms();
    if (tty) fprintf(stderr, "[3/%d] CUDA code generation (%s)\n", steps, drt_cuda_precision_name(precision));
    const drt_graph *cg_graphs[DRT_PLAN_MAX_CUDA_GRAPHS];
    size_t ng = drt_plan_cuda_graphs(&c, cg_graphs, DRT_PLAN_MAX_CUDA_GRAPHS);
    drt_cuda_codegen_options co;
    drt_cuda_codegen_options_init(&co);
    co.precision = precision;
    co.allow_host_fallback = true;
    st = ng > DRT_PLAN_MAX_CUDA_GRAPHS ? DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%zu graphs in one CUDA program", ng)
                                       : apply_attn_knobs(cg_graphs, ng);
    if (!st) st = drt_cuda_program_build(cg_graphs, ng, &co, &prog);
    if (st) st = drt_status_annotate(st, "CUDA code generation");
    t_codegen = now_ms() - tc;
    if (!st) report_host_nodes(prog);
    if (!st && source_out) {
      st = drt_write_file_atomic(source_out, prog->source, prog->source_len);
      if (st) st = drt_status_annotate(st, "--cuda-source");
    }
    if (!st) {
      tc = now_ms();
      if (tty)
        fprintf(stderr, "      NVRTC: %zu kernels, %.1f KiB of source, %d archs\n", prog->num_kernels,
                (double)prog->source_len / 1024.0, num_archs);
      const char *alist[DRT_PLAN_MAX_CUDA_IMAGES];
      for (int a = 0; a < num_archs; a++) alist[a] = archs[a];
      drt_nvrtc_compile_options no;
      drt_nvrtc_compile_options_init(&no);
      st = drt_nvrtc_compile(prog, alist, (size_t)num_archs, &no, images);
      t_nvrtc = now_ms() - tc;
      if (st && drt_status_code_of(st) == DRT_STATUS_INTERNAL && !source_out)
        fprintf(stderr, "drt compile: note: --cuda-source FILE writes the program that NVRTC's line numbers refer to\n");
    }
    if (!st) {
      int major = 0, minor = 0;
      st = drt_nvrtc_version(&major, &minor);
      c.targets = DRT_PLAN_TARGET_CUDA | DRT_PLAN_TARGET_CPU; /* the graph still runs on the CPU */
      c.cuda.present = true;
      c.cuda.precision = (uint8_t)precision;
      c.cuda.source_hash = prog->source_hash;
      c.cuda.nvrtc_version = (uint32_t)(major * 1000 + minor * 10);
      snprintf(c.cuda.options, sizeof c.cuda.options, "%s", drt_nvrtc_options());
      c.cuda.num_images = (uint32_t)num_archs;
      c.cuda_archs[0] = 0;
      for (int a = 0; a < num_archs; a++) {
        memcpy(c.cuda.images[a].arch, images[a].arch, sizeof c.cuda.images[a].arch);
        c.cuda.images[a].data = images[a].data;
        c.cuda.images[a].size = images[a].size;
        size_t l = strlen(c.cuda_archs);
        snprintf(c.cuda_archs + l, sizeof c.cuda_archs - l, "%s%s", a ? "," : "", images[a].arch);
        if (tty)
          fprintf(stderr, "      %-11s %8.1f KiB  %s %.0f ms\n", images[a].arch, (double)images[a].size / 1024.0,
                  images[a].from_cache ? "cached" : "compiled", images[a].ms);
      }
    }
  }
  void *bytes = NULL;
  size_t size = 0;
  if (!st && max_memory) {
    /* the plan buffer holds a copy of every constant next to the graph's own */
    uint64_t weights = 0, copy = 0;
    for (size_t i = 0; i < g->num_values; i++)
      if (g->values[i]->kind == DRT_VALUE_CONST) {
        weights += g->values[i]->nbytes;
        copy += (g->values[i]->nbytes + 63) & ~(uint64_t)63;
      }
    st = drt_cli_check_memory(max_memory, "writing the plan", weights, 0, copy, "plan buffer");
  }
  if (!st && adapt.out_bytes) {
    /* --add-bucket: the existing plan plus this bucket */
    bytes = adapt.out_bytes;
    size = adapt.out_size;
    adapt.out_bytes = NULL;
  } else if (!st) {
    if (tty) fprintf(stderr, "[%d/%d] serializing plan\n", steps - 1, steps);
    st = drt_plan_serialize(&c, &bytes, &size);
  }
  if (!st) {
    if (tty) fprintf(stderr, "[%d/%d] writing %s (%zu bytes)\n", steps, steps, out, size);
    st = drt_write_file_atomic(out, bytes, size);
  }
  double t3 = now_ms();
  if (!st) {
    uint64_t wbytes = 0, params = 0, sum_act = 0;
    for (size_t i = 0; i < g->num_values; i++) {
      const drt_value *v = g->values[i];
      if (v->kind == DRT_VALUE_CONST) {
        wbytes += v->nbytes;
        int64_t n = drt_shape_numel(&v->shape);
        params += n > 0 ? (uint64_t)n : 0;
      } else if (v->kind == DRT_VALUE_INTERMEDIATE) {
        drt_tensor t = {v->dtype, v->shape, NULL};
        sum_act += drt_tensor_nbytes(&t);
      }
    }
    printf("compiled %s -> %s\n", model, out);
    if (cuda) {
      printf("  target:      cuda (%s, %s) and cpu\n", c.cuda_archs, drt_cuda_precision_name(precision));
      size_t host = 0, launches = 0, cached = 0;
      for (size_t k = 0; k < prog->num_graphs; k++) {
        host += prog->graphs[k].num_host_nodes;
        launches += prog->graphs[k].num_launches;
      }
      for (int a = 0; a < num_archs; a++) cached += images[a].from_cache;
      printf("  cuda:        %zu kernels, %zu launches in %zu graphs, %zu host-fallback nodes, source %.1f KiB\n",
             prog->num_kernels, launches, prog->num_graphs, host, (double)prog->source_len / 1024.0);
      printf("  images:     ");
      for (int a = 0; a < num_archs; a++) printf(" %s %.1f KiB", images[a].arch, (double)images[a].size / 1024.0);
      printf("\n  cuda time:   codegen %.1f ms, nvrtc %.1f ms (%zu of %d archs from the cache)\n", t_codegen, t_nvrtc,
             cached, num_archs);
    } else {
      printf("  target:      cpu\n");
    }
    printf("  ops:         %zu before passes, %zu after\n", nodes_before, g->num_nodes);
    printf("  parameters:  %" PRIu64 " (%.2f MiB)\n", params, (double)wbytes / 1048576.0);
    printf("  activations: %.2f MiB summed over all intermediates\n", (double)sum_act / 1048576.0);
    printf("  plan size:   %zu bytes\n", size);
    drt_compile_adapt_report(&adapt, g);
    if (c.has_schedule) printf("  schedule:    %s, %u steps\n", c.schedule.name, c.schedule.num_steps);
    printf("  peak activations: %.2f MiB (memory plan arena)\n", (double)g->mem_arena_bytes / 1048576.0);
    if (cuda)
      printf("  time:        load %.1f ms, passes %.1f ms, cuda %.1f ms, write %.1f ms\n", t1 - t0, t2 - t1,
             t_codegen + t_nvrtc, t3 - t2 - t_codegen - t_nvrtc);
    else
      printf("  time:        load %.1f ms, passes %.1f ms, write %.1f ms\n", t1 - t0, t2 - t1, t3 - t2);
    if (c.has_guidance)
      printf("  guidance:    classifier-free guidance folded (%s, default scale %g): one batch-%" PRId64
             " evaluation per step\n", c.guidance.mode, c.guidance.default_scale,
             c.output_roles && g->num_outputs ? 2 * g->outputs[0]->shape.dims[0] : 0);
    for (uint32_t k = 0; k < c.num_stages; k++)
      printf("  hoisted:     %s stage, %zu nodes, %.4g MFLOP %s%s\n",
             c.stages[k].kind == DRT_PLAN_STAGE_PROLOGUE ? "prologue" : "timestep", c.stages[k].graph->num_nodes,
             results.stages[k].flops / 1e6,
             c.stages[k].kind == DRT_PLAN_STAGE_PROLOGUE ? "once per generation" : "per step",
             c.stages[k].table_steps ? " (precomputed into per-step tables)" : "");
    if (verbose || c.num_stages)
      printf("  hoisted FLOPs: %.6g per step moved out of the per-step graph\n", stats.hoisted_flops);
    for (size_t i = 0; i < g->num_inputs; i++) {
      char s[128];
      const char *role = c.input_roles[i] == DRT_PLAN_ROLE_LATENT           ? "latent"
                         : c.input_roles[i] == DRT_PLAN_ROLE_TIMESTEP       ? "timestep"
                         : c.input_roles[i] == DRT_PLAN_ROLE_GUIDANCE_SCALE ? "guidance scale"
                         : c.input_roles[i] == DRT_PLAN_ROLE_GUIDANCE_STATE ? "guidance state"
                                                                            : "conditioning";
      if (c.input_roles[i] == DRT_PLAN_ROLE_HOISTED) continue; /* internal: fed by a hoisted stage */
      printf("  input  %-28s %s[%s] (%s)\n", g->inputs[i]->name, drt_dtype_name(g->inputs[i]->dtype),
             drt_shape_str(&g->inputs[i]->shape, s, sizeof s), role);
    }
  }
  free(bytes);
  for (int a = 0; a < num_archs; a++) drt_nvrtc_image_free(&images[a]);
  drt_cuda_program_destroy(prog);
  free(sched_t);
  drt_pass_results_free(&results);
  drt_schedule_free(&sched);
  free(c.schedule.steps);
  free(c.input_roles);
  free(c.output_roles);
  drt_compile_adapt_free(&adapt);
  drt_graph_destroy(g);
  if (st) return drt_cli_fail("compile", drt_status_annotate(st, "%s", model));
  return 0;
}
