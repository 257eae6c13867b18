/* The public C API (include/distilrt.h): plans, sessions, generation. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distilrt.h"
#include "codegen/codegen.h"
#include "runtime/cpu/executor.h"
#include "runtime/cuda/cuda.h"
#include "runtime/devloop.h"
#include "runtime/exec.h"
#include "runtime/npy.h"
#include "runtime/philox.h"
#include "runtime/plan.h"
#include "runtime/lora.h"
#include "runtime/refit.h"
#include "runtime/sampler.h"

/* A set of weights and the graphs that read them. Generation 0 is the plan file's own (its
 * graphs are the plan's); drt_plan_swap_weights and merged LoRAs make new generations that own
 * a copy of the WEIGHTS section and clones of the graphs pointing into it. Sessions hold a
 * reference to the generation they were created with, so a swap never changes the weights
 * under a running session. */
typedef struct plan_gen {
  int refs;          /* guarded by drt_plan.mu */
  uint8_t *weights;  /* owned WEIGHTS bytes; NULL for generation 0 */
  uint32_t num_buckets;
  drt_graph **graphs; /* per bucket; owned clones unless generation 0 */
  uint32_t num_stages;
  drt_plan_stage stages[DRT_PLAN_MAX_STAGES]; /* graphs and table rows repointed into `weights` */
  drt_source_table current; /* values of sources the WEIGHTS section does not hold, where a refit
                               changed them (runtime/weights.h) */
  /* CUDA plans: this generation's program (rendered from its graphs: main graph, stage graphs in
     order, then buckets 1..) and the module holding it and its weights on the device. Made by
     the first CUDA session of the generation (guarded by drt_plan.cuda_mu), freed with it. */
  drt_cuda_program *cuda_prog;
  drt_cuda_module *cuda_mod;
} plan_gen;

struct drt_plan {
  drt_plan_contents c;
  pthread_mutex_t mu;      /* guards gen, base and generation reference counts */
  pthread_mutex_t swap_mu; /* serializes weight swaps and LoRA merges */
  plan_gen *gen;           /* what new sessions use (base + merged LoRAs) */
  plan_gen *base;          /* the last swapped weights, without merged LoRAs */
  const drt_lora **merged_loras; /* drt_plan_set_loras (borrowed), merged onto base */
  float *merged_strengths;
  int num_merged;
  uint64_t weight_bytes, activation_peak;
  int num_public_inputs; /* graph inputs before the first HOISTED one (the public signature) */
  int guidance_input, state_input, uncond_output, state_output; /* -1 when absent */
  char label[256];          /* the file the plan came from, for messages */
  pthread_mutex_t cuda_mu;  /* guards cuda_ctx and the generations' cuda_prog / cuda_mod */
  drt_cuda_context *cuda_ctx; /* acquired by the first CUDA session, released with the plan */
  int cuda_device;
};

/* A stage of the plan (hoisting): its executor, its last outputs, and where they go. */
typedef struct session_stage {
  const drt_plan_stage *ps;
  drt_exec *ex;
  drt_tensor *in;   /* scratch: the stage's inputs */
  int *in_map;      /* stage input -> main-graph input index */
  int *out_map;     /* stage output -> main-graph input index */
  drt_tensor *out;  /* owned outputs of the last run */
  bool have_out;
} session_stage;

struct drt_session {
  const drt_plan *plan;
  plan_gen *gen;           /* held reference: the weights this session runs with */
  const drt_graph *g;      /* the graph of the current bucket (shapes of inputs and outputs) */
  uint32_t bucket;
  drt_exec **bex;          /* per bucket, created on demand; ex == bex[bucket] */
  drt_graph **variant;     /* per bucket: graphs with this session's unmerged LoRAs (owned) */
  drt_graph *stage_variant[DRT_PLAN_MAX_STAGES]; /* the same for the hoisted stages (bucket 0) */
  bool *user_set;          /* per input: set by the caller (these choose the bucket) */
  drt_cpu_executor_options eo;
  drt_exec *ex;
  drt_backend backend;     /* where the executors run now: DRT_BACKEND_CPU or DRT_BACKEND_CUDA */
  drt_backend asked;       /* what the options asked for (AUTO, CPU, CUDA) */
  bool cuda_ok;            /* the plan's CUDA module is loaded for this session's weights */
  drt_cuda_module *cmod;   /* borrowed from gen */
  drt_devloop *dl;         /* the device-resident sampling loop (runtime/devloop.h), on demand */
  bool devloop_off;        /* it failed once: this session generates with the host loop */
  double gen_device_ms;    /* GPU time of the last device-loop generation, -1 otherwise */
  drt_tensor *inputs; /* per graph input: borrowed host buffers, session buffers, stage outputs */
  bool *input_set;
  drt_tensor *outputs; /* owned, from the last run */
  bool have_outputs;
  uint64_t nfe;
  float *latent; /* final latent of the last generate (float32, latent input's shape) */
  session_stage stages[DRT_PLAN_MAX_STAGES];
  int num_stages;
  float guidance;  /* the guidance-scale input's value unless the caller bound a buffer */
  float *state;    /* APG momentum state (float32, the state input's shape) */
  bool state_user; /* the caller set the state input */
};

static _Thread_local char g_last_error[2048];

const char *drt_last_error(void) { return g_last_error; }

static drt_status_code fail(drt_status s) {
  drt_status_code c = drt_status_code_of(s);
  snprintf(g_last_error, sizeof g_last_error, "%s", drt_status_message(s));
  drt_log(DRT_LOG_ERROR, "%s", g_last_error);
  drt_status_free(s);
  return c;
}

#define API_CHECK(cond, ...) \
  do {                       \
    if (!(cond)) return fail(DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, __VA_ARGS__)); \
  } while (0)

static drt_status gen0_create(drt_plan *p);
static void gen_free(plan_gen *gn);
static void plan_free_loras(drt_plan *p);
static drt_status plan_merge_loras(drt_plan *p, const plan_gen *base, plan_gen **merged);

static drt_status_code plan_from_bytes(void *bytes, size_t size, const char *label, drt_plan **out) {
  drt_plan *p = calloc(1, sizeof *p);
  if (!p) {
    free(bytes);
    return fail(DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "loading plan"));
  }
  pthread_mutex_init(&p->mu, NULL);
  pthread_mutex_init(&p->swap_mu, NULL);
  pthread_mutex_init(&p->cuda_mu, NULL);
  snprintf(p->label, sizeof p->label, "%s", label);
  drt_status st = drt_plan_parse(bytes, size, label, &p->c);
  if (st) {
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->swap_mu);
    pthread_mutex_destroy(&p->cuda_mu);
    free(p);
    return fail(st);
  }
  /* sessions choose the backend, and refuse the CPU for a plan compiled for CUDA only
     (drt_session_create) */
  const drt_graph *g = p->c.graph;
  for (size_t i = 0; i < g->num_values; i++)
    if (g->values[i]->kind == DRT_VALUE_CONST) p->weight_bytes += g->values[i]->nbytes;
  p->activation_peak = drt_cpu_executor_peak_bytes(g);
  for (uint32_t b = 1; b < p->c.num_buckets; b++) { /* the largest shape bucket */
    uint64_t peak = drt_cpu_executor_peak_bytes(p->c.buckets[b]);
    if (peak > p->activation_peak) p->activation_peak = peak;
  }
  for (uint32_t k = 0; k < p->c.num_stages; k++) {
    const drt_graph *sg = p->c.stages[k].graph;
    for (size_t i = 0; i < sg->num_values; i++)
      if (sg->values[i]->kind == DRT_VALUE_CONST) p->weight_bytes += sg->values[i]->nbytes;
    uint64_t peak = drt_cpu_executor_peak_bytes(sg);
    if (peak > p->activation_peak) p->activation_peak = peak;
  }
  p->num_public_inputs = (int)g->num_inputs;
  p->guidance_input = p->state_input = p->uncond_output = p->state_output = -1;
  for (size_t i = g->num_inputs; i-- > 0;) {
    uint8_t r = p->c.input_roles[i];
    if (r == DRT_PLAN_ROLE_HOISTED) p->num_public_inputs = (int)i;
    if (r == DRT_PLAN_ROLE_GUIDANCE_SCALE) p->guidance_input = (int)i;
    if (r == DRT_PLAN_ROLE_GUIDANCE_STATE) p->state_input = (int)i;
  }
  for (size_t i = 0; i < g->num_outputs; i++) {
    if (p->c.output_roles[i] == DRT_PLAN_ROLE_UNCOND_PREDICTION) p->uncond_output = (int)i;
    if (p->c.output_roles[i] == DRT_PLAN_ROLE_GUIDANCE_STATE_OUT) p->state_output = (int)i;
  }
  if (p->state_input >= 0) {
    const drt_value *si = g->inputs[p->state_input];
    if (p->state_output < 0 || si->dtype != DRT_DTYPE_FLOAT32 ||
        !drt_shape_equal(&si->shape, &g->outputs[p->state_output]->shape) ||
        g->outputs[p->state_output]->dtype != DRT_DTYPE_FLOAT32) {
      drt_plan_destroy(p);
      return fail(DRT_ERROR(DRT_STATUS_CORRUPT, "'%s': the guidance state input and output do not match", label));
    }
  }
  st = gen0_create(p);
  if (st) {
    drt_plan_destroy(p);
    return fail(st);
  }
  *out = p;
  return DRT_STATUS_OK;
}

drt_status_code drt_plan_load_file(const char *path, drt_plan **out) {
  API_CHECK(path && out, "drt_plan_load_file: path and out must not be NULL");
  *out = NULL;
  void *bytes;
  size_t size;
  drt_status st = drt_read_file(path, 0, &bytes, &size);
  if (st) return fail(st);
  return plan_from_bytes(bytes, size, path, out);
}

drt_status_code drt_plan_load_memory(const void *data, size_t size, drt_plan **out) {
  API_CHECK(data && out, "drt_plan_load_memory: data and out must not be NULL");
  *out = NULL;
  void *copy = malloc(size ? size : 1);
  if (!copy) return fail(DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "copying %zu plan bytes", size));
  memcpy(copy, data, size);
  return plan_from_bytes(copy, size, "<memory>", out);
}

void drt_plan_destroy(drt_plan *plan) {
  if (!plan) return;
  /* no session remains: the plan holds the only references */
  if (plan->gen && plan->gen != plan->base) gen_free(plan->gen);
  gen_free(plan->base);
  plan_free_loras(plan);
  drt_cuda_context_release(plan->cuda_ctx); /* after the modules (freed with the generations) */
  drt_plan_contents_free(&plan->c);
  pthread_mutex_destroy(&plan->mu);
  pthread_mutex_destroy(&plan->swap_mu);
  pthread_mutex_destroy(&plan->cuda_mu);
  free(plan);
}

int drt_plan_num_inputs(const drt_plan *plan) { return plan ? plan->num_public_inputs : 0; }
int drt_plan_num_outputs(const drt_plan *plan) { return plan ? (int)plan->c.graph->num_outputs : 0; }

static void fill_desc(const drt_value *v, uint8_t role, drt_tensor_desc *d) {
  memset(d, 0, sizeof *d);
  d->name = v->name;
  d->dtype = v->dtype;
  d->rank = v->shape.rank;
  for (int i = 0; i < v->shape.rank; i++) d->dims[i] = v->shape.dims[i];
  d->role = (drt_tensor_role)role;
}

drt_status_code drt_plan_input(const drt_plan *plan, int index, drt_tensor_desc *out) {
  API_CHECK(plan && out, "drt_plan_input: NULL argument");
  API_CHECK(index >= 0 && index < plan->num_public_inputs, "drt_plan_input: index %d out of range", index);
  fill_desc(plan->c.graph->inputs[index], plan->c.input_roles[index], out);
  return DRT_STATUS_OK;
}

drt_status_code drt_plan_output(const drt_plan *plan, int index, drt_tensor_desc *out) {
  API_CHECK(plan && out, "drt_plan_output: NULL argument");
  API_CHECK(index >= 0 && (size_t)index < plan->c.graph->num_outputs, "drt_plan_output: index %d out of range", index);
  fill_desc(plan->c.graph->outputs[index], plan->c.output_roles[index], out);
  return DRT_STATUS_OK;
}

drt_status_code drt_plan_memory(const drt_plan *plan, drt_memory_info *out) {
  API_CHECK(plan && out, "drt_plan_memory: NULL argument");
  out->weights = plan->weight_bytes;
  out->activations = plan->activation_peak;
  out->workspace = 0;
  return DRT_STATUS_OK;
}

const char *drt_plan_guidance(const drt_plan *plan, double *default_scale) {
  if (!plan || !plan->c.has_guidance) {
    if (default_scale) *default_scale = 0;
    return NULL;
  }
  if (default_scale) *default_scale = plan->c.guidance.default_scale;
  return plan->c.guidance.mode;
}

const char *drt_plan_schedule(const drt_plan *plan, int *steps) {
  if (!plan || !plan->c.has_schedule) {
    if (steps) *steps = 0;
    return NULL;
  }
  if (steps) *steps = (int)plan->c.schedule.num_steps;
  return plan->c.schedule.name;
}

/* ---- sessions ------------------------------------------------------------------------ */
void drt_session_options_init(drt_session_options *opts) {
  if (!opts) return;
  opts->backend = DRT_BACKEND_AUTO;
  opts->num_threads = 0;
  opts->device = 0;
}

static void free_outputs(drt_session *s) {
  if (!s->have_outputs) return;
  for (size_t i = 0; i < s->g->num_outputs; i++) {
    free(s->outputs[i].data);
    s->outputs[i].data = NULL;
  }
  s->have_outputs = false;
}

static int find_input(const drt_graph *g, const char *name);
static plan_gen *gen_acquire(drt_plan *p);
static void gen_release(drt_plan *p, plan_gen *gn);
static void session_free_variants(drt_session *s);
static void session_drop_devloop(drt_session *s);
static drt_status session_pick_bucket(drt_session *s, bool generating);
static void bucket_shapes(const drt_plan *p, int input, char *buf, size_t n);

/* ---- backends ------------------------------------------------------------------------ */
/* Index in the CUDA program of bucket b's graph and of stage k's graph: the program renders the
 * main graph, the stage graphs in order, then buckets 1.. (drt_plan_cuda_graphs, the order of
 * drt compile --target cuda; a generation's graphs are clones of the plan's in the same order). */
static size_t cuda_bucket_index(const plan_gen *gn, uint32_t b) { return b == 0 ? 0 : gn->num_stages + b; }
static size_t cuda_stage_index(int k) { return 1 + (size_t)k; }

/* The CUDA module of generation gn: the context (first use), then the program rendered from the
 * generation's graphs and loaded with the plan's binaries. Thread-safe. */
static drt_status plan_cuda_module(drt_plan *p, plan_gen *gn, int device, drt_cuda_module **out) {
  *out = NULL;
  drt_status st = DRT_OK;
  pthread_mutex_lock(&p->cuda_mu);
  if (!p->cuda_ctx) {
    st = drt_cuda_context_acquire(device, &p->cuda_ctx);
    if (!st) p->cuda_device = device;
  } else if (device != p->cuda_device) {
    st = DRT_ERROR(DRT_STATUS_UNSUPPORTED, "'%s' is loaded on CUDA device %d already; a plan serves one device (load "
                   "it again for device %d)", p->label, p->cuda_device, device);
  }
  if (!st && !gn->cuda_mod) {
    size_t n = 0;
    const drt_graph **graphs = calloc(1 + gn->num_stages + gn->num_buckets, sizeof *graphs);
    if (!graphs) st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "CUDA program");
    if (!st) {
      graphs[n++] = gn->graphs[0];
      for (uint32_t k = 0; k < gn->num_stages; k++) graphs[n++] = gn->stages[k].graph;
      for (uint32_t b = 1; b < gn->num_buckets; b++) graphs[n++] = gn->graphs[b];
      drt_cuda_codegen_options co;
      drt_cuda_codegen_options_init(&co);
      co.precision = (drt_cuda_precision)p->c.cuda.precision;
      co.allow_host_fallback = true; /* as drt compile --target cuda renders it */
      st = drt_cuda_program_build(graphs, n, &co, &gn->cuda_prog);
      if (st) st = drt_status_annotate(st, "rendering the CUDA program of '%s'", p->label);
    }
    free(graphs);
    if (!st) {
      st = drt_cuda_module_load(p->cuda_ctx, gn->cuda_prog, &p->c.cuda, &gn->cuda_mod);
      if (st) st = drt_status_annotate(st, "loading the CUDA program of '%s'", p->label);
    }
    if (st) {
      drt_cuda_program_destroy(gn->cuda_prog);
      gn->cuda_prog = NULL;
      gn->cuda_mod = NULL;
    }
  }
  if (!st) *out = gn->cuda_mod;
  pthread_mutex_unlock(&p->cuda_mu);
  return st;
}

/* Picks the session's backend (the rules are in distilrt.h, drt_backend). */
static drt_status session_pick_backend(drt_session *s, const drt_session_options *o) {
  drt_plan *p = (drt_plan *)s->plan;
  bool cpu_ok = (p->c.targets & DRT_PLAN_TARGET_CPU) != 0;
  s->asked = o->backend;
  s->backend = DRT_BACKEND_CPU;
  if (!cpu_ok && (o->backend == DRT_BACKEND_CPU || !p->c.cuda.present))
    return DRT_ERROR(DRT_STATUS_UNAVAILABLE, "'%s' was compiled for CUDA only (%s)%s: recompile it with --target cpu "
                     "or --target cuda (which keeps the CPU)", p->label, p->c.cuda_archs[0] ? p->c.cuda_archs : "no archs",
                     p->c.cuda.present ? " and cannot run on the CPU" : " but holds no CUDA code");
  if (o->backend == DRT_BACKEND_CPU) return DRT_OK;
  if (!p->c.cuda.present) {
    if (o->backend == DRT_BACKEND_AUTO) return DRT_OK;
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "'%s' was compiled without --target cuda: it has no CUDA code "
                     "(recompile it with drt compile --target cuda, or run it with --backend cpu)", p->label);
  }
  drt_cuda_module *m = NULL;
  drt_status st = plan_cuda_module(p, s->gen, o->device, &m);
  if (!st) {
    s->backend = DRT_BACKEND_CUDA;
    s->cuda_ok = true;
    s->cmod = m;
    return DRT_OK;
  }
  if (o->backend == DRT_BACKEND_AUTO && cpu_ok) {
    drt_log(DRT_LOG_WARN, "'%s' has CUDA code but the CUDA backend cannot run it here (%s): running on the CPU",
            p->label, drt_status_message(st));
    drt_status_free(st);
    return DRT_OK;
  }
  drt_status e = cpu_ok ? DRT_ERROR(drt_status_code_of(st), "%s (use --backend cpu to run this plan on the CPU)",
                                    drt_status_message(st))
                         : DRT_ERROR(drt_status_code_of(st), "%s ('%s' was compiled for CUDA only: recompile it with "
                                     "--target cuda, which keeps the CPU, to run it on the CPU)",
                                     drt_status_message(st), p->label);
  drt_status_free(st);
  return e;
}

/* An executor for graph g (program graph cuda_index of the module) on the session's backend. */
static drt_status session_exec(drt_session *s, const drt_graph *g, size_t cuda_index, drt_exec **out) {
  if (s->backend == DRT_BACKEND_CUDA) {
    drt_cuda_executor_options co;
    drt_cuda_executor_options_init(&co);
    return drt_exec_create_cuda(s->cmod, cuda_index, &co, out);
  }
  return drt_exec_create_cpu(g, &s->eo, out);
}

static void stage_free_outputs(session_stage *st) {
  if (!st->have_out) return;
  for (size_t j = 0; j < st->ps->graph->num_outputs; j++) {
    free(st->out[j].data);
    st->out[j].data = NULL;
  }
  st->have_out = false;
}

static drt_status stage_create(drt_session *s, const drt_plan_stage *ps) {
  int k = s->num_stages;
  session_stage *st = &s->stages[s->num_stages++];
  const drt_graph *sg = ps->graph, *g = s->g;
  st->ps = ps;
  st->in = calloc(sg->num_inputs + 1, sizeof(drt_tensor));
  st->in_map = calloc(sg->num_inputs + 1, sizeof(int));
  st->out_map = calloc(sg->num_outputs + 1, sizeof(int));
  st->out = calloc(sg->num_outputs + 1, sizeof(drt_tensor));
  if (!st->in || !st->in_map || !st->out_map || !st->out) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "session stages");
  for (size_t i = 0; i < sg->num_inputs; i++) st->in_map[i] = find_input(g, sg->inputs[i]->name);
  for (size_t i = 0; i < sg->num_outputs; i++) st->out_map[i] = find_input(g, sg->outputs[i]->name);
  return session_exec(s, sg, cuda_stage_index(k), &st->ex); /* the loader checked the wiring */
}

/* Runs a stage on the session's current inputs and binds its outputs to the main graph. */
static drt_status stage_run(drt_session *s, session_stage *st) {
  const drt_graph *sg = st->ps->graph;
  for (size_t i = 0; i < sg->num_inputs; i++) {
    int m = st->in_map[i];
    if (!s->input_set[m]) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s' was not set", sg->inputs[i]->name);
    st->in[i] = s->inputs[m];
  }
  stage_free_outputs(st);
  DRT_RETURN_IF_ERROR_CTX(drt_exec_run(st->ex, st->in, st->out), "%s stage",
                          st->ps->kind == DRT_PLAN_STAGE_PROLOGUE ? "prologue" : "step");
  st->have_out = true;
  for (size_t j = 0; j < sg->num_outputs; j++) {
    s->inputs[st->out_map[j]] = st->out[j];
    s->input_set[st->out_map[j]] = true;
  }
  return DRT_OK;
}

/* Binds row `row` of a step stage's tables to the main graph. */
static void stage_bind_row(drt_session *s, session_stage *st, uint32_t row) {
  const drt_graph *sg = st->ps->graph;
  for (size_t j = 0; j < sg->num_outputs; j++) {
    const drt_value *o = sg->outputs[j];
    drt_tensor t = {o->dtype, o->shape, NULL};
    t.data = (char *)st->ps->tables[j] + (size_t)row * drt_tensor_nbytes(&t);
    s->inputs[st->out_map[j]] = t;
    s->input_set[st->out_map[j]] = true;
  }
}

static void bind_guidance(drt_session *s) {
  const drt_value *v = s->g->inputs[s->plan->guidance_input];
  drt_tensor t = {DRT_DTYPE_FLOAT32, v->shape, &s->guidance};
  s->inputs[s->plan->guidance_input] = t;
  s->input_set[s->plan->guidance_input] = true;
}

static void bind_state(drt_session *s) {
  const drt_value *v = s->g->inputs[s->plan->state_input];
  drt_tensor t = {DRT_DTYPE_FLOAT32, v->shape, s->state};
  s->inputs[s->plan->state_input] = t;
  s->input_set[s->plan->state_input] = true;
}

static size_t state_numel(const drt_session *s) {
  return (size_t)drt_shape_numel(&s->g->inputs[s->plan->state_input]->shape);
}

drt_status_code drt_session_create(const drt_plan *plan, const drt_session_options *opts, drt_session **out) {
  API_CHECK(plan && out, "drt_session_create: plan and out must not be NULL");
  *out = NULL;
  drt_session_options o;
  drt_session_options_init(&o);
  if (opts) o = *opts;
  API_CHECK(o.backend == DRT_BACKEND_AUTO || o.backend == DRT_BACKEND_CPU || o.backend == DRT_BACKEND_CUDA,
            "drt_session_create: unknown backend %d", (int)o.backend);
  API_CHECK(o.device >= 0, "drt_session_create: device %d out of range", o.device);
  drt_session *s = calloc(1, sizeof *s);
  if (!s) return fail(DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "session"));
  s->plan = plan;
  s->gen = gen_acquire((drt_plan *)plan);
  const drt_graph *g = s->gen->graphs[0];
  s->g = g;
  s->inputs = calloc(g->num_inputs + 1, sizeof(drt_tensor));
  s->input_set = calloc(g->num_inputs + 1, sizeof(bool));
  s->user_set = calloc(g->num_inputs + 1, sizeof(bool));
  s->outputs = calloc(g->num_outputs + 1, sizeof(drt_tensor));
  s->bex = calloc(plan->c.num_buckets + 1, sizeof *s->bex);
  if (!s->inputs || !s->input_set || !s->user_set || !s->outputs || !s->bex) {
    drt_session_destroy(s);
    return fail(DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "session"));
  }
  drt_cpu_executor_options eo;
  drt_cpu_executor_options_init(&eo);
  eo.num_threads = o.num_threads;
  s->eo = eo;
  s->gen_device_ms = -1;
  drt_status st = session_pick_backend(s, &o);
  if (!st) st = session_exec(s, g, 0, &s->bex[0]);
  s->ex = s->bex[0];
  for (uint32_t k = 0; k < s->gen->num_stages && !st; k++) st = stage_create(s, &s->gen->stages[k]);
  if (!st && plan->guidance_input >= 0) {
    s->guidance = (float)plan->c.guidance.default_scale;
    bind_guidance(s);
  }
  if (!st && plan->state_input >= 0) {
    drt_tensor t = {DRT_DTYPE_FLOAT32, g->inputs[plan->state_input]->shape, NULL};
    s->state = calloc(drt_tensor_nbytes(&t) / sizeof(float) + 1, sizeof(float));
    if (!s->state) st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "guidance state");
  }
  if (st) {
    drt_session_destroy(s);
    return fail(st);
  }
  *out = s;
  return DRT_STATUS_OK;
}

void drt_session_destroy(drt_session *s) {
  if (!s) return;
  if (s->outputs) free_outputs(s);
  for (int k = 0; k < s->num_stages; k++) {
    session_stage *st = &s->stages[k];
    stage_free_outputs(st);
    drt_exec_destroy(st->ex);
    free(st->in);
    free(st->in_map);
    free(st->out_map);
    free(st->out);
  }
  free(s->state);
  free(s->latent);
  session_drop_devloop(s);
  for (uint32_t b = 0; s->bex && b < s->plan->c.num_buckets; b++) drt_exec_destroy(s->bex[b]);
  free(s->bex);
  session_free_variants(s);
  free(s->inputs);
  free(s->input_set);
  free(s->user_set);
  free(s->outputs);
  if (s->gen) gen_release((drt_plan *)s->plan, s->gen);
  free(s);
}

static int find_input(const drt_graph *g, const char *name) {
  for (size_t i = 0; i < g->num_inputs; i++)
    if (strcmp(g->inputs[i]->name, name) == 0) return (int)i;
  return -1;
}

drt_status_code drt_session_set_input(drt_session *s, const char *name, drt_dtype dtype, int rank, const int64_t *dims,
                                      const void *data, size_t nbytes) {
  API_CHECK(s && name, "drt_session_set_input: session and name must not be NULL");
  const drt_graph *g = s->g;
  int k = find_input(g, name);
  if (k < 0 || k >= s->plan->num_public_inputs)
    return fail(DRT_ERROR(DRT_STATUS_NOT_FOUND, "the plan has no input named '%s'", name));
  const drt_value *v = g->inputs[k];
  API_CHECK(rank >= 0 && rank <= DRT_MAX_RANK && (rank == 0 || dims), "input '%s': invalid rank %d", name, rank);
  drt_tensor t;
  memset(&t, 0, sizeof t);
  t.dtype = dtype;
  t.shape.rank = rank;
  for (int i = 0; i < rank; i++) t.shape.dims[i] = dims[i];
  char a[128], b[128];
  if (dtype != v->dtype)
    return fail(DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s' has dtype %s, the plan expects %s", name,
                          drt_dtype_name(dtype), drt_dtype_name(v->dtype)));
  bool fits = drt_shape_equal(&t.shape, &v->shape);
  for (uint32_t bk = 0; !fits && bk < s->plan->c.num_buckets; bk++)
    fits = drt_shape_equal(&t.shape, &s->plan->c.buckets[bk]->inputs[k]->shape);
  if (!fits) {
    if (s->plan->c.num_buckets > 1) {
      char list[1024];
      bucket_shapes(s->plan, k, list, sizeof list);
      return fail(DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s' has shape %s, which fits no shape bucket of the "
                            "plan (%s)", name, drt_shape_str(&t.shape, a, sizeof a), list));
    }
    return fail(DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s' has shape %s, the plan expects %s", name,
                          drt_shape_str(&t.shape, a, sizeof a), drt_shape_str(&v->shape, b, sizeof b)));
  }
  size_t want = drt_tensor_nbytes(&t);
  if (nbytes != want || (want && !data))
    return fail(DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s': got %zu bytes, expected %zu", name, nbytes, want));
  t.data = (void *)data;
  s->inputs[k] = t;
  s->input_set[k] = true;
  s->user_set[k] = true;
  if (k == s->plan->state_input) s->state_user = true;
  return DRT_STATUS_OK;
}

drt_status_code drt_session_set_guidance_scale(drt_session *s, double scale) {
  API_CHECK(s, "drt_session_set_guidance_scale: NULL session");
  if (s->plan->guidance_input < 0)
    return fail(DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "the plan was not compiled with classifier-free guidance "
                          "(drt compile --cfg-scale W --cfg-uncond NAME=zeros)"));
  API_CHECK(isfinite(scale), "drt_session_set_guidance_scale: scale must be finite");
  s->guidance = (float)scale;
  bind_guidance(s);
  return DRT_STATUS_OK;
}

/* One evaluation of the main (per-step) graph; stage outputs must be bound. */
static drt_status session_eval(drt_session *s) {
  const drt_graph *g = s->g;
  for (size_t i = 0; i < g->num_inputs; i++)
    if (!s->input_set[i]) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s' was not set", g->inputs[i]->name);
  free_outputs(s);
  DRT_RETURN_IF_ERROR(drt_exec_run(s->ex, s->inputs, s->outputs));
  s->have_outputs = true;
  s->nfe++;
  return DRT_OK;
}

/* A CUDA session's single evaluation with its hoisted stages kept on the device: each stage runs
 * on its executor's stream, its outputs are copied device-to-device into the network's input
 * buffers (marked resident), and only the network's outputs come back to the host. The host
 * path (stage outputs downloaded, converted and uploaded again) moves every hoisted value, e.g.
 * the cross-attention keys and values of all blocks, through host memory twice per evaluation.
 * *done says whether the session is one for this path (else nothing ran). */
static drt_status session_run_device(drt_session *s, bool *done) {
  drt_cuda_executor *me = drt_exec_cuda(s->ex);
  *done = false;
  if (!me || s->num_stages == 0) return DRT_OK;
  for (int k = 0; k < s->num_stages; k++)
    if (!drt_exec_cuda(s->stages[k].ex)) return DRT_OK;
  *done = true;
  const drt_graph *g = s->g;
  bool *resident = calloc(g->num_inputs + 1, sizeof *resident);
  if (!resident) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "session");
  drt_status st = DRT_OK;
  drt_cuda_context *ctx = drt_cuda_module_context(s->cmod);
  for (int k = 0; k < s->num_stages && !st; k++) {
    session_stage *ss = &s->stages[k];
    drt_cuda_executor *se = drt_exec_cuda(ss->ex);
    const drt_graph *sg = ss->ps->graph;
    void *stream = drt_cuda_executor_stream(se);
    for (size_t i = 0; i < sg->num_inputs && !st; i++) {
      int m = ss->in_map[i];
      if (resident[m]) { /* an earlier stage's output */
        drt_cuda_executor_set_resident(se, i, true);
        st = drt_cuda_memcpy_dtod(ctx, drt_cuda_executor_input_dptr(se, i), drt_cuda_executor_input_dptr(me, (size_t)m),
                                  drt_cuda_executor_input_bytes(se, i), stream);
      } else if (!s->input_set[m]) {
        st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s' was not set", sg->inputs[i]->name);
      }
      ss->in[i] = s->inputs[m];
    }
    if (!st) st = drt_cuda_executor_submit(se, ss->in);
    for (size_t j = 0; j < sg->num_outputs && !st; j++) {
      int m = ss->out_map[j];
      uint64_t nb = drt_cuda_executor_output_bytes(se, j);
      if (nb != drt_cuda_executor_input_bytes(me, (size_t)m)) {
        st = DRT_ERROR(DRT_STATUS_INTERNAL, "stage output '%s' has %llu bytes on the device, the network input %llu",
                       sg->outputs[j]->name, (unsigned long long)nb,
                       (unsigned long long)drt_cuda_executor_input_bytes(me, (size_t)m));
        break;
      }
      st = drt_cuda_memcpy_dtod(ctx, drt_cuda_executor_input_dptr(me, (size_t)m), drt_cuda_executor_output_dptr(se, j),
                                nb, stream);
      resident[m] = true;
    }
    drt_status sync = drt_cuda_stream_sync(ctx, stream);
    drt_status herr = drt_cuda_executor_take_host_error(se);
    for (size_t i = 0; i < sg->num_inputs; i++) drt_cuda_executor_set_resident(se, i, false);
    if (!st) st = sync ? sync : herr;
    else drt_status_free(sync);
    if (st != herr) drt_status_free(herr);
    if (st) st = drt_status_annotate(st, "%s stage", ss->ps->kind == DRT_PLAN_STAGE_PROLOGUE ? "prologue" : "step");
  }
  for (size_t m = 0; m < g->num_inputs && !st; m++)
    if (resident[m]) {
      drt_cuda_executor_set_resident(me, m, true);
      drt_tensor t = {g->inputs[m]->dtype, g->inputs[m]->shape, NULL};
      s->inputs[m] = t; /* on the device only: a host-loop generation recomputes it */
      s->input_set[m] = true;
    }
  if (!st) st = session_eval(s);
  for (size_t m = 0; m < g->num_inputs; m++)
    if (resident[m]) {
      drt_cuda_executor_set_resident(me, m, false);
      s->input_set[m] = false;
    }
  free(resident);
  return st;
}

drt_status_code drt_session_run(drt_session *s) {
  API_CHECK(s, "drt_session_run: NULL session");
  {
    drt_status bs = session_pick_bucket(s, false);
    if (bs) return fail(bs);
  }
  const drt_graph *g = s->g;
  for (int i = 0; i < s->plan->num_public_inputs; i++)
    if (!s->input_set[i] && i != s->plan->state_input)
      return fail(DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s' was not set", g->inputs[i]->name));
  /* a single evaluation: every stage on the current inputs; APG momentum starts from zero
     unless the caller set the state */
  if (s->state && !s->state_user) {
    memset(s->state, 0, state_numel(s) * sizeof(float));
    bind_state(s);
  }
  bool done = false;
  drt_status st = session_run_device(s, &done);
  if (!done) {
    for (int k = 0; k < s->num_stages && !st; k++) st = stage_run(s, &s->stages[k]);
    if (!st) st = session_eval(s);
  }
  return st ? fail(st) : DRT_STATUS_OK;
}

drt_status_code drt_session_get_output(drt_session *s, const char *name, drt_tensor_desc *desc, const void **data,
                                       size_t *nbytes) {
  API_CHECK(s && name, "drt_session_get_output: session and name must not be NULL");
  const drt_graph *g = s->g;
  if (!s->have_outputs && !s->latent)
    return fail(DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "no outputs yet: run the session first"));
  int li = -1;
  for (size_t i = 0; i < g->num_inputs; i++)
    if (s->plan->c.input_roles[i] == DRT_PLAN_ROLE_LATENT && strcmp(g->inputs[i]->name, name) == 0) li = (int)i;
  if (li >= 0 && s->latent) {
    drt_tensor t = {DRT_DTYPE_FLOAT32, g->inputs[li]->shape, s->latent};
    if (desc) {
      fill_desc(g->inputs[li], DRT_PLAN_ROLE_LATENT, desc);
      desc->dtype = DRT_DTYPE_FLOAT32;
    }
    if (data) *data = s->latent;
    if (nbytes) *nbytes = drt_tensor_nbytes(&t);
    return DRT_STATUS_OK;
  }
  for (size_t i = 0; i < g->num_outputs && s->have_outputs; i++) {
    if (strcmp(g->outputs[i]->name, name) != 0) continue;
    if (desc) fill_desc(g->outputs[i], s->plan->c.output_roles[i], desc);
    if (data) *data = s->outputs[i].data;
    if (nbytes) *nbytes = drt_tensor_nbytes(&s->outputs[i]);
    return DRT_STATUS_OK;
  }
  return fail(DRT_ERROR(DRT_STATUS_NOT_FOUND, "the plan has no output named '%s'%s", name,
                        li >= 0 ? " (the final latent exists after drt_session_generate)" : ""));
}

uint64_t drt_session_nfe(const drt_session *s) { return s ? s->nfe : 0; }

drt_backend drt_session_backend(const drt_session *s) { return s ? s->backend : DRT_BACKEND_CPU; }

const char *drt_backend_name(drt_backend b) {
  switch (b) {
    case DRT_BACKEND_AUTO: return "auto";
    case DRT_BACKEND_CPU: return "cpu";
    case DRT_BACKEND_CUDA: return "cuda";
  }
  return "unknown";
}

static drt_status profile_device(drt_session *s, int iters, double *ms) {
  drt_cuda_executor *ce = drt_exec_cuda(s->ex);
  if (s->backend != DRT_BACKEND_CUDA || !ce)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "GPU timing needs a CUDA session (this one runs on the CPU)");
  if (!s->have_outputs)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "GPU timing: run the session once first (drt_session_run)");
  drt_cuda_context *ctx = drt_cuda_module_context(s->cmod);
  void *stream = drt_cuda_executor_stream(ce);
  drt_cuda_timer *t = NULL;
  DRT_RETURN_IF_ERROR(drt_cuda_timer_create(ctx, &t));
  drt_status st = DRT_OK;
  for (int i = 0; i < iters && !st; i++) {
    st = drt_cuda_timer_start(t, stream);
    if (!st) st = drt_cuda_executor_replay(ce);
    if (!st) st = drt_cuda_timer_stop(t, stream, &ms[i]);
    if (!st) s->nfe++;
  }
  drt_cuda_timer_destroy(t);
  return st;
}

drt_status_code drt_session_profile_device(drt_session *s, int iters, double *ms) {
  API_CHECK(s && ms, "drt_session_profile_device: NULL argument");
  API_CHECK(iters > 0, "drt_session_profile_device: iters must be positive, got %d", iters);
  drt_status st = profile_device(s, iters, ms);
  return st ? fail(st) : DRT_STATUS_OK;
}

static int cmp_profile_row(const void *a, const void *b) {
  double x = ((const drt_profile_row *)a)->ms, y = ((const drt_profile_row *)b)->ms;
  return x < y ? 1 : x > y ? -1 : 0;
}

static drt_status profile_launches(drt_session *s, int iters, drt_profile_row *rows, int cap, int *count,
                                   double *total_ms) {
  drt_cuda_executor *ce = drt_exec_cuda(s->ex);
  if (s->backend != DRT_BACKEND_CUDA || !ce)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "a launch profile needs a CUDA session (this one runs on the CPU)");
  if (!s->have_outputs)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "launch profile: run the session once first (drt_session_run)");
  drt_cuda_profile p;
  DRT_RETURN_IF_ERROR(drt_cuda_executor_profile(ce, iters, &p));
  s->nfe += (uint64_t)iters;
  drt_profile_row *all = calloc(p.num_launches + 1, sizeof *all);
  if (!all) {
    drt_cuda_profile_free(&p);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "launch profile");
  }
  size_t n = 0;
  for (size_t i = 0; i < p.num_launches; i++) {
    const drt_cuda_profile_launch *l = &p.launches[i];
    if (!l->ran) continue;
    size_t k = 0;
    while (k < n && (strcmp(all[k].name, l->name) != 0 || strcmp(all[k].op, l->op) != 0)) k++;
    if (k == n) {
      snprintf(all[n].name, sizeof all[n].name, "%s", l->name);
      snprintf(all[n].op, sizeof all[n].op, "%s", l->op);
      n++;
    }
    all[k].calls++;
    all[k].ms += l->ms;
    all[k].flops += l->flops;
  }
  qsort(all, n, sizeof *all, cmp_profile_row);
  int w = (int)(n < (size_t)cap ? n : (size_t)cap);
  if (w > 0) memcpy(rows, all, (size_t)w * sizeof *rows);
  *count = w;
  if (total_ms) *total_ms = p.total_ms;
  free(all);
  drt_cuda_profile_free(&p);
  return DRT_OK;
}

drt_status_code drt_session_profile_launches(drt_session *s, int iters, drt_profile_row *rows, int capacity,
                                             int *count, double *total_ms) {
  API_CHECK(s && count && (rows || capacity == 0), "drt_session_profile_launches: NULL argument");
  API_CHECK(iters > 0 && capacity >= 0, "drt_session_profile_launches: iters must be positive, capacity >= 0");
  *count = 0;
  drt_status st = profile_launches(s, iters, rows, capacity, count, total_ms);
  return st ? fail(st) : DRT_STATUS_OK;
}

double drt_session_generate_device_ms(const drt_session *s, int *replayed) {
  if (replayed) *replayed = s && s->dl ? drt_devloop_replayed(s->dl) : 0;
  return s ? s->gen_device_ms : -1;
}

/* ---- generation ----------------------------------------------------------------------- */
void drt_generate_options_init(drt_generate_options *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
}

static int input_with_role(const drt_plan *p, uint8_t role) {
  for (size_t i = 0; i < p->c.graph->num_inputs; i++)
    if (p->c.input_roles[i] == role) return (int)i;
  return -1;
}

static int output_with_role(const drt_plan *p, uint8_t role) {
  for (size_t i = 0; i < p->c.graph->num_outputs; i++)
    if (p->c.output_roles[i] == role) return (int)i;
  return p->c.graph->num_outputs ? 0 : -1;
}

/* Fills every element of a timestep tensor with t, in its dtype. */
static void fill_timestep(drt_tensor *t, double value) {
  int64_t n = drt_shape_numel(&t->shape);
  size_t es = drt_dtype_size(t->dtype);
  for (int64_t i = 0; i < n; i++) {
    if (drt_dtype_is_int(t->dtype)) {
      int64_t iv = (int64_t)llround(value);
      drt_convert(t->dtype, (char *)t->data + (size_t)i * es, DRT_DTYPE_INT64, &iv, 1);
    } else {
      drt_convert(t->dtype, (char *)t->data + (size_t)i * es, DRT_DTYPE_FLOAT64, &value, 1);
    }
  }
}

static void session_drop_devloop(drt_session *s) {
  drt_devloop_destroy(s->dl);
  s->dl = NULL;
}

/* The device-resident loop (runtime/devloop.h) when the session runs on CUDA and the loop
 * supports the plan; *done false (and no error) sends the caller to the host loop. */
static drt_status generate_device(drt_session *s, const drt_generate_options *o, const drt_sched_step *own,
                                  const double (*rows)[DRT_SCHED_SCALARS], uint32_t nsteps, double init_sigma,
                                  bool *done) {
  const drt_plan *p = s->plan;
  *done = false;
  drt_devloop_spec sp;
  memset(&sp, 0, sizeof sp);
  sp.main = s->ex;
  sp.inputs = s->inputs;
  sp.input_set = s->input_set;
  sp.latent = input_with_role(p, DRT_PLAN_ROLE_LATENT);
  sp.timestep = input_with_role(p, DRT_PLAN_ROLE_TIMESTEP);
  sp.state = p->state_input;
  sp.prediction = output_with_role(p, DRT_PLAN_ROLE_PREDICTION);
  sp.uncond = p->uncond_output;
  sp.state_out = p->state_output;
  sp.num_stages = s->num_stages;
  for (int k = 0; k < s->num_stages; k++) {
    session_stage *st = &s->stages[k];
    drt_devloop_stage *ds = &sp.stages[k];
    ds->ex = st->ex;
    ds->prologue = st->ps->kind == DRT_PLAN_STAGE_PROLOGUE;
    ds->in_map = st->in_map;
    ds->out_map = st->out_map;
    ds->table_steps = st->ps->table_steps;
    ds->table_t = st->ps->table_t;
    ds->tables = st->ps->tables;
  }
  char why[256];
  if (s->devloop_off) return DRT_OK;
  if (!drt_devloop_supported(&sp, why, sizeof why)) {
    drt_log(DRT_LOG_INFO, "generate: host loop on the GPU session (%s)", why);
    return DRT_OK;
  }
  for (int i = 0; i < p->num_public_inputs; i++)
    if (!s->input_set[i] && i != sp.latent && i != sp.timestep && i != sp.state)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s' was not set", s->g->inputs[i]->name);
  drt_sched_step *steps = NULL;
  if (!own) {
    steps = malloc((nsteps + 1) * sizeof *steps);
    if (!steps) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "schedule");
    for (uint32_t k = 0; k < nsteps; k++) {
      steps[k].t_model = rows[k][0], steps[k].c_in = rows[k][1], steps[k].p_x = rows[k][2], steps[k].p_m = rows[k][3];
      steps[k].q_x = rows[k][4], steps[k].q_m = rows[k][5], steps[k].a = rows[k][6], steps[k].b = rows[k][7];
      steps[k].c = rows[k][8];
    }
  }
  drt_devloop_gen gp = {own ? own : steps, nsteps, init_sigma, o->timestep_scale, o->seed, o->noise};
  const drt_graph *g = s->g;
  size_t n = (size_t)drt_shape_numel(&g->inputs[sp.latent]->shape);
  float *latent = malloc(n * sizeof(float) + 1);
  drt_tensor *outs = calloc(g->num_outputs + 1, sizeof *outs);
  if (!latent || !outs) {
    free(steps);
    free(latent);
    free(outs);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "generation buffers");
  }
  drt_status st = s->dl ? DRT_OK : drt_devloop_create(s->cmod, &s->dl);
  double ms = -1;
  uint32_t tabled = 0, computed = 0;
  if (!st) st = drt_devloop_generate(s->dl, &sp, &gp, latent, outs, &ms, &tabled, &computed);
  free(steps);
  if (st) {
    /* e.g. a host-fallback node that cannot be captured: the host loop still runs the network
       on the GPU, one evaluation at a time */
    free(latent);
    free(outs);
    drt_log(DRT_LOG_WARN, "generate: the device-resident loop failed (%s); this session generates with the host "
            "loop from now on", drt_status_message(st));
    drt_status_free(st);
    session_drop_devloop(s);
    s->devloop_off = true;
    return DRT_OK;
  }
  free_outputs(s);
  memcpy(s->outputs, outs, g->num_outputs * sizeof *outs);
  free(outs);
  s->have_outputs = true;
  free(s->latent);
  s->latent = latent;
  s->nfe += nsteps;
  s->gen_device_ms = ms;
  *done = true;
  drt_log(DRT_LOG_INFO, "generate: %u steps on the GPU in %.3f ms (%s CUDA graph)", nsteps, ms,
          drt_devloop_replayed(s->dl) ? "replayed the" : "captured a");
  if (s->num_stages)
    drt_log(DRT_LOG_INFO, "generate: hoisted stages: prologue once, timestep values of %u steps from the plan's tables "
            "and %u computed", tabled, computed);
  return DRT_OK;
}

static drt_status generate(drt_session *s, const drt_generate_options *o) {
  const drt_plan *p = s->plan;
  DRT_RETURN_IF_ERROR(session_pick_bucket(s, true));
  const drt_graph *g = s->g;
  int li = input_with_role(p, DRT_PLAN_ROLE_LATENT), ti = input_with_role(p, DRT_PLAN_ROLE_TIMESTEP);
  int pi = output_with_role(p, DRT_PLAN_ROLE_PREDICTION);
  if (li < 0)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "the plan has no latent input: recompile with --latent NAME");
  if (ti < 0)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "the plan has no timestep input: recompile with --timestep NAME");
  const drt_value *lv = g->inputs[li], *tv = g->inputs[ti], *pv = g->outputs[pi];
  if (lv->dtype != DRT_DTYPE_FLOAT32 && lv->dtype != DRT_DTYPE_FLOAT16 && lv->dtype != DRT_DTYPE_BFLOAT16)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "latent input '%s' has dtype %s", lv->name, drt_dtype_name(lv->dtype));
  if (!drt_shape_equal(&lv->shape, &pv->shape))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "prediction output '%s' and latent input '%s' differ in shape",
                     pv->name, lv->name);
  /* the schedule: built now if asked for, else the plan's */
  drt_schedule sched;
  memset(&sched, 0, sizeof sched);
  bool own_sched = false;
  const double(*steps)[DRT_SCHED_SCALARS] = NULL;
  uint32_t nsteps = 0;
  double init_sigma = 1.0;
  if (o->schedule || (o->steps && (!p->c.has_schedule || (uint32_t)o->steps != p->c.schedule.num_steps)) ||
      o->schedule_params) {
    const char *name = o->schedule ? o->schedule : p->c.has_schedule ? p->c.schedule.name : NULL;
    if (!name)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "the plan has no default schedule: pass a schedule name");
    const char *params = o->schedule_params ? o->schedule_params
                         : (p->c.has_schedule && strcmp(name, p->c.schedule.name) == 0) ? p->c.schedule.params : "";
    /* 0 lets the schedule pick: its default, or the length of a timesteps=/sigmas= grid */
    bool plan_sched = p->c.has_schedule && strcmp(name, p->c.schedule.name) == 0 && !o->schedule_params;
    int n = o->steps ? o->steps : plan_sched ? (int)p->c.schedule.num_steps : 0;
    drt_schedule_params sp;
    DRT_RETURN_IF_ERROR(drt_schedule_parse_params(name, n, params, &sp));
    DRT_RETURN_IF_ERROR(drt_schedule_build(&sp, &sched));
    own_sched = true;
    nsteps = (uint32_t)sched.num_steps;
    init_sigma = sched.init_noise_sigma;
  } else if (p->c.has_schedule) {
    steps = (const double(*)[DRT_SCHED_SCALARS])p->c.schedule.steps;
    nsteps = p->c.schedule.num_steps;
    init_sigma = p->c.schedule.init_noise_sigma;
  } else {
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                     "the plan has no default schedule: pass --schedule NAME (or compile with --schedule)");
  }
  size_t n = (size_t)drt_shape_numel(&lv->shape);
  s->gen_device_ms = -1;
  if (s->backend == DRT_BACKEND_CUDA) {
    bool done = false;
    drt_status dst = generate_device(s, o, own_sched ? sched.steps : NULL, steps, nsteps, init_sigma, &done);
    if (dst || done) {
      if (own_sched) drt_schedule_free(&sched);
      return dst;
    }
  }
  float *x = malloc(n * sizeof(float)), *xin = malloc(n * sizeof(float)), *noise = malloc(n * sizeof(float));
  float *pred = malloc(n * sizeof(float)), *xn = malloc(n * sizeof(float));
  drt_tensor lat = {lv->dtype, lv->shape, NULL}, ts = {tv->dtype, tv->shape, NULL};
  void *lat_buf = malloc(drt_tensor_nbytes(&lat) + 1), *ts_buf = malloc(drt_tensor_nbytes(&ts) + 8);
  drt_status st = DRT_OK;
  if (!x || !xin || !noise || !pred || !xn || !lat_buf || !ts_buf) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "generation buffers");
    goto done;
  }
  lat.data = lat_buf;
  ts.data = ts_buf;
  /* x_T */
  if (o->noise) memcpy(noise, o->noise, n * sizeof(float));
  else drt_philox_normal(o->seed, DRT_PHILOX_STREAM_INIT, 0, noise, n);
  for (size_t i = 0; i < n; i++) x[i] = (float)(init_sigma * noise[i]);
  const drt_tensor saved_latent = s->inputs[li], saved_ts = s->inputs[ti];
  const bool saved_l = s->input_set[li], saved_t = s->input_set[ti];
  /* the prologue (hoisted invariant work) once per generation */
  for (int k = 0; k < s->num_stages && !st; k++)
    if (s->stages[k].ps->kind == DRT_PLAN_STAGE_PROLOGUE) st = stage_run(s, &s->stages[k]);
  /* APG momentum: session-held, zero at the start of every generation */
  int si = p->state_input;
  drt_tensor saved_state;
  memset(&saved_state, 0, sizeof saved_state);
  bool saved_s = false;
  if (si >= 0) {
    saved_state = s->inputs[si];
    saved_s = s->input_set[si];
    memset(s->state, 0, state_numel(s) * sizeof(float));
    bind_state(s);
  }
  uint32_t tabled = 0, computed = 0; /* timestep-stage rows looked up / evaluated */
  const float *uncond = NULL; /* CFG++: the unconditional prediction re-noises */
  float *ubuf = p->uncond_output >= 0 ? malloc(n * sizeof(float)) : NULL;
  if (p->uncond_output >= 0 && !ubuf) st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "generation buffers");
  for (uint32_t k = 0; k < nsteps && !st; k++) {
    drt_sched_step step;
    if (own_sched) {
      step = sched.steps[k];
    } else {
      step.t_model = steps[k][0], step.c_in = steps[k][1], step.p_x = steps[k][2], step.p_m = steps[k][3];
      step.q_x = steps[k][4], step.q_m = steps[k][5], step.a = steps[k][6], step.b = steps[k][7], step.c = steps[k][8];
    }
    for (size_t i = 0; i < n; i++) xin[i] = (float)(step.c_in * x[i]);
    drt_convert(lv->dtype, lat_buf, DRT_DTYPE_FLOAT32, xin, n);
    fill_timestep(&ts, o->timestep_scale > 0 ? step.t_model * o->timestep_scale : step.t_model);
    s->inputs[li] = lat;
    s->inputs[ti] = ts;
    s->input_set[li] = s->input_set[ti] = true;
    /* timestep-only work: a row of the compile-time tables when one was computed for this
       timestep value, else the step stage */
    double t_fed = o->timestep_scale > 0 ? step.t_model * o->timestep_scale : step.t_model;
    for (int q = 0; q < s->num_stages && !st; q++) {
      session_stage *sst = &s->stages[q];
      if (sst->ps->kind != DRT_PLAN_STAGE_STEP) continue;
      int64_t row = -1;
      if (k < sst->ps->table_steps && sst->ps->table_t[k] == t_fed) row = k;
      for (uint32_t r = 0; row < 0 && r < sst->ps->table_steps; r++)
        if (sst->ps->table_t[r] == t_fed) row = r;
      if (row >= 0) {
        stage_bind_row(s, sst, (uint32_t)row);
        tabled++;
      } else {
        st = stage_run(s, sst);
        computed++;
      }
    }
    if (st) break;
    st = session_eval(s);
    if (st) break;
    drt_convert(DRT_DTYPE_FLOAT32, pred, pv->dtype, s->outputs[pi].data, n);
    if (si >= 0) memcpy(s->state, s->outputs[p->state_output].data, state_numel(s) * sizeof(float));
    if (ubuf) {
      drt_convert(DRT_DTYPE_FLOAT32, ubuf, g->outputs[p->uncond_output]->dtype, s->outputs[p->uncond_output].data, n);
      uncond = ubuf;
    }
    if (step.c != 0) drt_philox_normal(o->seed, DRT_PHILOX_STREAM_STEP(k), 0, noise, n);
    if (uncond) {
      /* CFG++: x0 from the guided prediction, eps from the unconditional one */
      double cx = step.a * step.p_x + step.b * step.q_x, cg = step.a * step.p_m, cu = step.b * step.q_m;
      for (size_t i = 0; i < n; i++)
        xn[i] = (float)(cx * x[i] + cg * pred[i] + cu * uncond[i] + (step.c != 0 ? step.c * noise[i] : 0.0));
    } else {
      drt_sched_update(&step, x, pred, step.c != 0 ? noise : NULL, xn, n);
    }
    memcpy(x, xn, n * sizeof(float));
  }
  free(ubuf);
  if (!st && s->num_stages)
    drt_log(DRT_LOG_INFO, "generate: %u steps; hoisted stages: prologue once, timestep values of %u steps from the "
            "plan's tables and %u computed", nsteps, tabled, computed);
  if (si >= 0) {
    s->inputs[si] = saved_state;
    s->input_set[si] = saved_s;
    if (!s->state_user) bind_state(s);
  }
  s->inputs[li] = saved_latent;
  s->inputs[ti] = saved_ts;
  s->input_set[li] = saved_l;
  s->input_set[ti] = saved_t;
  if (!st) {
    free(s->latent);
    s->latent = x;
    x = NULL;
  }
done:
  if (own_sched) drt_schedule_free(&sched);
  free(x);
  free(xin);
  free(noise);
  free(pred);
  free(xn);
  free(lat_buf);
  free(ts_buf);
  return st;
}

drt_status_code drt_session_generate(drt_session *s, const drt_generate_options *opts) {
  API_CHECK(s, "drt_session_generate: NULL session");
  drt_generate_options o;
  drt_generate_options_init(&o);
  if (opts) o = *opts;
  API_CHECK(o.steps >= 0 && o.steps <= 10000, "drt_session_generate: steps %d out of range", o.steps);
  drt_status st = generate(s, &o);
  return st ? fail(st) : DRT_STATUS_OK;
}

/* ---- weight generations (drt_plan_swap_weights; runtime/refit.h) ------------------------------- */
static void gen_free(plan_gen *gn) {
  if (!gn) return;
  drt_cuda_module_destroy(gn->cuda_mod);
  drt_cuda_program_destroy(gn->cuda_prog); /* before the graphs it renders go (generation 0: the plan's) */
  if (gn->weights) {
    for (uint32_t b = 0; b < gn->num_buckets; b++) drt_graph_destroy(gn->graphs[b]);
    for (uint32_t k = 0; k < gn->num_stages; k++) {
      drt_graph_destroy(gn->stages[k].graph);
      free((void *)gn->stages[k].tables);
    }
  }
  drt_source_table_free(&gn->current);
  free(gn->graphs);
  free(gn->weights);
  free(gn);
}

static plan_gen *gen_acquire(drt_plan *p) {
  pthread_mutex_lock(&p->mu);
  plan_gen *gn = p->gen;
  gn->refs++;
  pthread_mutex_unlock(&p->mu);
  return gn;
}

static void gen_release(drt_plan *p, plan_gen *gn) {
  pthread_mutex_lock(&p->mu);
  bool dead = --gn->refs == 0;
  pthread_mutex_unlock(&p->mu);
  if (dead) gen_free(gn);
}

/* Generation 0: the plan's own graphs and weights. */
static drt_status gen0_create(drt_plan *p) {
  plan_gen *gn = calloc(1, sizeof *gn);
  if (!gn || !(gn->graphs = calloc(p->c.num_buckets + 1, sizeof *gn->graphs))) {
    free(gn);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "plan");
  }
  gn->num_buckets = p->c.num_buckets;
  for (uint32_t b = 0; b < p->c.num_buckets; b++) gn->graphs[b] = p->c.buckets[b];
  gn->num_stages = p->c.num_stages;
  for (uint32_t k = 0; k < p->c.num_stages; k++) gn->stages[k] = p->c.stages[k];
  gn->refs = 2; /* held as p->gen and p->base */
  p->gen = p->base = gn;
  return DRT_OK;
}

/* A generation over new WEIGHTS bytes `w` (same layout as the plan's; ownership taken): clones
 * of the graphs pointing into w, and per-step tables recomputed from the new weights. */
static drt_status gen_from_weights(const drt_plan *p, uint8_t *w, plan_gen **out) {
  *out = NULL;
  plan_gen *gn = calloc(1, sizeof *gn);
  if (!gn || !(gn->graphs = calloc(p->c.num_buckets + 1, sizeof *gn->graphs))) {
    free(gn);
    free(w);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "new weights");
  }
  gn->weights = w;
  gn->num_buckets = p->c.num_buckets;
  const uint8_t *old = p->c.weights;
  uint64_t size = p->c.weights_size;
  drt_status st = DRT_OK;
  for (uint32_t b = 0; b < p->c.num_buckets && !st; b++)
    st = drt_graph_clone_rebased(p->c.buckets[b], old, size, w, &gn->graphs[b]);
  for (uint32_t k = 0; k < p->c.num_stages && !st; k++) {
    const drt_plan_stage *ps = &p->c.stages[k];
    drt_plan_stage *ns = &gn->stages[k];
    *ns = *ps;
    ns->graph = NULL;
    ns->tables = NULL;
    gn->num_stages = k + 1;
    st = drt_graph_clone_rebased(ps->graph, old, size, w, &ns->graph);
    if (st) break;
    if (ps->table_steps) {
      const void **rows = calloc(ps->graph->num_outputs + 1, sizeof *rows);
      if (!rows) {
        st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "new weights");
        break;
      }
      for (size_t j = 0; j < ps->graph->num_outputs; j++)
        rows[j] = w + ((const uint8_t *)ps->tables[j] - old);
      ns->tables = rows;
      st = drt_stage_tables_recompute(ns->graph, ps->table_steps, ps->table_t, (void *const *)rows);
    }
  }
  if (st) {
    gen_free(gn);
    return st;
  }
  *out = gn;
  return DRT_OK;
}

/* Makes `gn` (one reference held by the caller) the plan's base and, unless `merged` is given,
 * its current generation too. */
static void plan_install(drt_plan *p, plan_gen *base, plan_gen *merged) {
  pthread_mutex_lock(&p->mu);
  plan_gen *old_gen = p->gen, *old_base = p->base;
  p->base = base;
  p->gen = merged ? merged : base;
  if (!merged) base->refs++;
  old_gen->refs--;
  old_base->refs--;
  bool free_gen = old_gen->refs == 0, free_base = old_base != old_gen && old_base->refs == 0;
  pthread_mutex_unlock(&p->mu);
  if (free_gen) gen_free(old_gen);
  if (free_base) gen_free(old_base);
}

/* New base weights from a checkpoint: refit of the current base. */
static drt_status swap_weights(drt_plan *p, drt_safetensors *ckpt, drt_refit_report *rep) {
  if (p->c.num_provenance == 0)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "the plan records no weight provenance (compiled by an older distilrt): "
                     "recompile it to swap its weights");
  pthread_mutex_lock(&p->mu);
  plan_gen *base = p->base;
  base->refs++;
  pthread_mutex_unlock(&p->mu);
  const uint8_t *cur = base->weights ? base->weights : p->c.weights;
  uint8_t *w = NULL;
  drt_source_info *si = NULL;
  size_t ns = 0;
  drt_source_table t;
  memset(&t, 0, sizeof t);
  drt_status st = drt_provenance_sources(p->c.provenance, p->c.num_provenance, &si, &ns);
  if (!st && posix_memalign((void **)&w, 64, p->c.weights_size ? p->c.weights_size : 64) != 0) {
    w = NULL;
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "new weights");
  }
  if (!st) {
    memcpy(w, cur, p->c.weights_size);
    st = drt_source_table_from_checkpoint(&t, si, ns, p->c.weight_map, ckpt, false, rep);
  }
  if (!st) st = drt_refit_apply(p->c.provenance, p->c.num_provenance, &t, &base->current, w, p->c.weights_size, rep);
  drt_source_table now;
  memset(&now, 0, sizeof now);
  if (!st) st = drt_refit_current_sources(p->c.provenance, p->c.num_provenance, &t, &base->current, &now);
  drt_source_table_free(&t);
  free(si);
  gen_release(p, base);
  plan_gen *gn = NULL;
  if (!st) {
    st = gen_from_weights(p, w, &gn);
    w = NULL;
  }
  free(w);
  if (st) {
    drt_source_table_free(&now);
    return st;
  }
  gn->current = now;
  plan_gen *merged = NULL;
  st = plan_merge_loras(p, gn, &merged);
  if (st) {
    gen_free(gn);
    return st;
  }
  gn->refs = 1;
  if (merged) merged->refs = 1;
  plan_install(p, gn, merged);
  return DRT_OK;
}

drt_status_code drt_plan_swap_weights(drt_plan *plan, const char *path) {
  API_CHECK(plan && path, "drt_plan_swap_weights: plan and path must not be NULL");
  drt_safetensors *ckpt = NULL;
  drt_status st = drt_safetensors_open_file(path, 0, &ckpt);
  drt_refit_report rep;
  memset(&rep, 0, sizeof rep);
  if (!st) {
    pthread_mutex_lock(&plan->swap_mu);
    st = swap_weights(plan, ckpt, &rep);
    pthread_mutex_unlock(&plan->swap_mu);
  }
  drt_safetensors_close(ckpt);
  if (!st)
    drt_log(DRT_LOG_INFO, "swapped weights from '%s': %zu sources updated, %zu kept, %zu derived constants", path,
            rep.updated, rep.kept, rep.derived);
  drt_refit_report_free(&rep);
  return st ? fail(st) : DRT_STATUS_OK;
}

drt_status_code drt_plan_swap_weights_memory(drt_plan *plan, const void *data, size_t size) {
  API_CHECK(plan && data, "drt_plan_swap_weights_memory: plan and data must not be NULL");
  void *copy = malloc(size ? size : 1);
  if (!copy) return fail(DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "copying %zu checkpoint bytes", size));
  memcpy(copy, data, size);
  drt_safetensors *ckpt = NULL;
  drt_status st = drt_safetensors_open_owned(copy, size, "<memory>", &ckpt);
  drt_refit_report rep;
  memset(&rep, 0, sizeof rep);
  if (!st) {
    pthread_mutex_lock(&plan->swap_mu);
    st = swap_weights(plan, ckpt, &rep);
    pthread_mutex_unlock(&plan->swap_mu);
  }
  drt_safetensors_close(ckpt);
  drt_refit_report_free(&rep);
  return st ? fail(st) : DRT_STATUS_OK;
}

/* ---- shape buckets --------------------------------------------------------------------------------- */
static void bucket_shapes(const drt_plan *p, int input, char *buf, size_t n) {
  size_t off = 0;
  buf[0] = 0;
  for (uint32_t b = 0; b < p->c.num_buckets && off + 1 < n; b++) {
    char sh[128];
    off += (size_t)snprintf(buf + off, n - off, "%sbucket %u: %s", b ? ", " : "", b,
                            drt_shape_str(&p->c.buckets[b]->inputs[input]->shape, sh, sizeof sh));
  }
}

/* Makes bucket b current: its graph (with this session's unmerged LoRAs, if any) and executor. */
static drt_status session_use_bucket(drt_session *s, uint32_t b) {
  if (s->bex[b] && s->bucket == b) return DRT_OK;
  const drt_graph *g = s->variant && s->variant[b] ? s->variant[b] : s->gen->graphs[b];
  if (!s->bex[b]) DRT_RETURN_IF_ERROR(session_exec(s, g, cuda_bucket_index(s->gen, b), &s->bex[b]));
  free_outputs(s);
  s->bucket = b;
  s->g = g;
  s->ex = s->bex[b];
  if (s->plan->guidance_input >= 0) bind_guidance(s);
  if (s->plan->state_input >= 0) {
    float *ns = calloc(state_numel(s) + 1, sizeof(float));
    if (!ns) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "guidance state");
    free(s->state);
    s->state = ns;
    if (!s->state_user) bind_state(s);
  }
  return DRT_OK;
}

static drt_status session_pick_bucket(drt_session *s, bool generating) {
  const drt_plan *p = s->plan;
  uint32_t nb = p->c.num_buckets;
  if (nb <= 1) return DRT_OK;
  for (uint32_t q = 0; q <= nb; q++) {
    uint32_t b = q == 0 ? s->bucket : q - 1;
    if (q > 0 && b == s->bucket) continue;
    const drt_graph *bg = p->c.buckets[b];
    bool ok = true;
    for (int i = 0; i < p->num_public_inputs && ok; i++)
      if (s->user_set[i]) ok = drt_shape_equal(&s->inputs[i].shape, &bg->inputs[i]->shape);
    if (ok) return session_use_bucket(s, b);
  }
  char msg[2048];
  size_t off = 0;
  for (int i = 0; i < p->num_public_inputs && off + 1 < sizeof msg; i++) {
    if (!s->user_set[i]) continue;
    char sh[128], list[1024];
    bucket_shapes(p, i, list, sizeof list);
    off += (size_t)snprintf(msg + off, sizeof msg - off, "%s'%s' is %s (%s)", off ? "; " : "", p->c.graph->inputs[i]->name,
                            drt_shape_str(&s->inputs[i].shape, sh, sizeof sh), list);
  }
  return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "the inputs fit no single shape bucket of the plan%s: %s",
                   generating ? " (for generation)" : "", msg);
}

int drt_plan_num_buckets(const drt_plan *plan) { return plan ? (int)plan->c.num_buckets : 0; }

drt_status_code drt_plan_bucket_input(const drt_plan *plan, int bucket, int index, drt_tensor_desc *out) {
  API_CHECK(plan && out, "drt_plan_bucket_input: NULL argument");
  API_CHECK(bucket >= 0 && (uint32_t)bucket < plan->c.num_buckets, "drt_plan_bucket_input: bucket %d out of range",
            bucket);
  API_CHECK(index >= 0 && index < plan->num_public_inputs, "drt_plan_bucket_input: index %d out of range", index);
  fill_desc(plan->c.buckets[bucket]->inputs[index], plan->c.input_roles[index], out);
  return DRT_STATUS_OK;
}

drt_status_code drt_plan_bucket_memory(const drt_plan *plan, int bucket, drt_memory_info *out) {
  API_CHECK(plan && out, "drt_plan_bucket_memory: NULL argument");
  API_CHECK(bucket >= 0 && (uint32_t)bucket < plan->c.num_buckets, "drt_plan_bucket_memory: bucket %d out of range",
            bucket);
  out->weights = plan->weight_bytes;
  out->activations = drt_cpu_executor_peak_bytes(plan->c.buckets[bucket]);
  out->workspace = 0;
  return DRT_STATUS_OK;
}

drt_status_code drt_session_select_bucket(drt_session *s, int bucket) {
  API_CHECK(s, "drt_session_select_bucket: NULL session");
  API_CHECK(bucket >= 0 && (uint32_t)bucket < s->plan->c.num_buckets, "drt_session_select_bucket: bucket %d out of "
            "range (the plan has %u)", bucket, s->plan->c.num_buckets);
  drt_status st = session_use_bucket(s, (uint32_t)bucket);
  return st ? fail(st) : DRT_STATUS_OK;
}

int drt_session_bucket(const drt_session *s) { return s ? (int)s->bucket : -1; }

/* ---- LoRA (runtime/lora.h) ----------------------------------------------------------------------------- */
static void plan_free_loras(drt_plan *p) {
  free(p->merged_loras);
  free(p->merged_strengths);
  p->merged_loras = NULL;
  p->merged_strengths = NULL;
  p->num_merged = 0;
}

drt_status_code drt_lora_load_file(const drt_plan *plan, const char *path, drt_lora **out) {
  API_CHECK(plan && path && out, "drt_lora_load_file: plan, path and out must not be NULL");
  *out = NULL;
  if (plan->c.num_provenance == 0)
    return fail(DRT_ERROR(DRT_STATUS_UNSUPPORTED, "the plan records no weight provenance (compiled by an older "
                          "distilrt): recompile it to use LoRAs"));
  drt_safetensors *st = NULL;
  drt_source_info *si = NULL;
  size_t ns = 0;
  drt_lora *l = NULL;
  drt_status s = drt_safetensors_open_file(path, 0, &st);
  if (!s) s = drt_provenance_sources(plan->c.provenance, plan->c.num_provenance, &si, &ns);
  if (!s) s = drt_lora_parse(st, plan->c.weight_map, si, ns, &l);
  free(si);
  drt_safetensors_close(st);
  if (s) return fail(s);
  l->plan = plan;
  if (l->num_unknown)
    drt_log(DRT_LOG_WARN, "LoRA '%s': %zu keys match no weight of the plan (first: '%s')", path, l->num_unknown,
            l->unknown[0]);
  if (l->num_targets == 0) {
    drt_status e = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "LoRA '%s': none of its %zu keys matches a weight of the plan%s",
                             path, l->num_unknown, plan->c.weight_map ? "" : " (compile with --weights-map to name "
                             "weights as the checkpoint does)");
    drt_lora_free(l);
    return fail(e);
  }
  *out = l;
  return DRT_STATUS_OK;
}

void drt_lora_destroy(drt_lora *lora) { drt_lora_free(lora); }
int drt_lora_num_targets(const drt_lora *lora) { return lora ? (int)lora->num_targets : 0; }
int drt_lora_num_unknown_keys(const drt_lora *lora) { return lora ? (int)lora->num_unknown : 0; }
const char *drt_lora_unknown_key(const drt_lora *lora, int index) {
  return lora && index >= 0 && (size_t)index < lora->num_unknown ? lora->unknown[index] : NULL;
}

/* Current value of a source in the base weights, recovered from the constants the plan holds:
 * the source itself, its stored default, a byte copy of it, or the 2-D transpose the compiler
 * folded (transposed back into a buffer the context owns). */
typedef struct recover_ctx {
  const drt_plan *p;
  const uint8_t *w;
  drt_source_table *current; /* the generation's values of sources WEIGHTS does not hold */
  void **owned;
  size_t num_owned;
} recover_ctx;

/* buf (malloc'd, may be NULL) freed with rc; NULL when buf is or on out of memory */
static void *own(recover_ctx *rc, void *buf) {
  void **no = buf ? realloc(rc->owned, (rc->num_owned + 1) * sizeof *no) : NULL;
  if (!no) {
    free(buf);
    return NULL;
  }
  rc->owned = no;
  rc->owned[rc->num_owned++] = buf;
  return buf;
}

static const void *recover_source(void *user, const char *source, drt_dtype *dtype, drt_shape *shape) {
  recover_ctx *rc = user;
  for (uint32_t b = 0; b < rc->p->c.num_provenance; b++) {
    const drt_plan_provenance *pv = rc->p->c.provenance[b];
    if (!pv) continue;
    const drt_graph *tg = pv->trace;
    for (size_t i = 0; i < tg->num_inputs; i++) {
      const drt_value *v = tg->inputs[i];
      if (strcmp(v->name, source) != 0) continue;
      *dtype = v->dtype;
      *shape = v->shape;
      if (pv->sources[i].target.offset != UINT64_MAX) return rc->w + pv->sources[i].target.offset;
      const drt_named_tensor *cur = drt_source_table_find(rc->current, source);
      if (cur && cur->t.dtype == v->dtype && drt_shape_equal(&cur->t.shape, &v->shape)) return cur->t.data;
      for (size_t k = 0; k < pv->num_derived; k++)
        for (uint32_t q = 0; q < pv->derived[k].num_candidates; q++)
          if (pv->derived[k].kind == DRT_DERIVE_BYTES && pv->derived[k].candidates[q] == (DRT_PROV_CAND_SOURCE | (uint32_t)i))
            return rc->w + pv->derived[k].target.offset;
      for (size_t k = 0; k < tg->num_nodes && v->shape.rank == 2; k++) {
        const drt_node *nd = tg->nodes[k];
        if (nd->op != DRT_OP_TRANSPOSE || nd->inputs[0] != v) continue;
        for (size_t o = 0; o < tg->num_outputs; o++) {
          if (tg->outputs[o] != nd->outputs[0] || pv->targets[o].offset == UINT64_MAX) continue;
          size_t es = drt_dtype_size(v->dtype), rows = (size_t)v->shape.dims[0], cols = (size_t)v->shape.dims[1];
          uint8_t *buf = own(rc, malloc(rows * cols * es + 1));
          if (!buf) return NULL;
          const uint8_t *src = rc->w + pv->targets[o].offset; /* [cols, rows] */
          for (size_t r = 0; r < rows; r++)
            for (size_t c = 0; c < cols; c++) memcpy(buf + (r * cols + c) * es, src + (c * rows + r) * es, es);
          return buf;
        }
      }
      if (pv->sources[i].default_data) return pv->sources[i].default_data;
      /* a half weight held widened to float32 (pass half-promote) */
      return own(rc, drt_provenance_narrow_source(pv, i, rc->w));
    }
  }
  return NULL;
}

/* The current LoRAs merged onto `base`: a new generation, or NULL when none are set. */
static drt_status plan_merge_loras(drt_plan *p, const plan_gen *base, plan_gen **merged) {
  *merged = NULL;
  if (p->num_merged == 0) return DRT_OK;
  const uint8_t *cur = base->weights ? base->weights : p->c.weights;
  recover_ctx rc = {p, cur, (drt_source_table *)&base->current, NULL, 0};
  drt_source_table t;
  memset(&t, 0, sizeof t);
  drt_refit_report rep;
  memset(&rep, 0, sizeof rep);
  uint8_t *w = NULL;
  drt_status st = drt_lora_merge_sources(p->merged_loras, p->merged_strengths, p->num_merged, recover_source, &rc, &t);
  if (!st && posix_memalign((void **)&w, 64, p->c.weights_size ? p->c.weights_size : 64) != 0) {
    w = NULL;
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "merged weights");
  }
  drt_source_table now;
  memset(&now, 0, sizeof now);
  if (!st) {
    memcpy(w, cur, p->c.weights_size);
    st = drt_refit_apply(p->c.provenance, p->c.num_provenance, &t, (drt_source_table *)&base->current, w,
                         p->c.weights_size, &rep);
  }
  if (!st)
    st = drt_refit_current_sources(p->c.provenance, p->c.num_provenance, &t, (drt_source_table *)&base->current, &now);
  for (size_t i = 0; i < rc.num_owned; i++) free(rc.owned[i]);
  free(rc.owned);
  drt_source_table_free(&t);
  drt_refit_report_free(&rep);
  if (st) {
    free(w);
    drt_source_table_free(&now);
    return drt_status_annotate(st, "merging LoRAs");
  }
  st = gen_from_weights(p, w, merged);
  if (st) drt_source_table_free(&now);
  else (*merged)->current = now;
  return st;
}

static drt_status check_loras(const drt_plan *p, const drt_lora *const *loras, const float *strengths, int count) {
  if (count < 0 || (count > 0 && (!loras || !strengths)))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "LoRAs: count %d with NULL arrays", count);
  for (int i = 0; i < count; i++) {
    if (!loras[i]) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "LoRA %d is NULL", i);
    if (loras[i]->plan != p)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "LoRA '%s' was loaded for another plan", loras[i]->label);
    if (!isfinite(strengths[i]))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "LoRA '%s': strength is not finite", loras[i]->label);
  }
  return DRT_OK;
}

drt_status_code drt_plan_set_loras(drt_plan *plan, const drt_lora *const *loras, const float *strengths, int count) {
  API_CHECK(plan, "drt_plan_set_loras: NULL plan");
  drt_status st = check_loras(plan, loras, strengths, count);
  if (st) return fail(st);
  pthread_mutex_lock(&plan->swap_mu);
  const drt_lora **nl = count ? malloc((size_t)count * sizeof *nl) : NULL;
  float *ns = count ? malloc((size_t)count * sizeof *ns) : NULL;
  if (count && (!nl || !ns)) {
    free(nl);
    free(ns);
    pthread_mutex_unlock(&plan->swap_mu);
    return fail(DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "LoRAs"));
  }
  for (int i = 0; i < count; i++) {
    nl[i] = loras[i];
    ns[i] = strengths[i];
  }
  const drt_lora **old_l = plan->merged_loras;
  float *old_s = plan->merged_strengths;
  int old_n = plan->num_merged;
  plan->merged_loras = nl;
  plan->merged_strengths = ns;
  plan->num_merged = count;
  pthread_mutex_lock(&plan->mu);
  plan_gen *base = plan->base;
  base->refs++;
  pthread_mutex_unlock(&plan->mu);
  plan_gen *merged = NULL;
  st = plan_merge_loras(plan, base, &merged);
  if (st) {
    /* keep what was set before */
    plan->merged_loras = old_l;
    plan->merged_strengths = old_s;
    plan->num_merged = old_n;
    free(nl);
    free(ns);
    gen_release(plan, base);
  } else {
    free(old_l);
    free(old_s);
    if (merged) merged->refs = 1;
    plan_install(plan, base, merged);
  }
  pthread_mutex_unlock(&plan->swap_mu);
  return st ? fail(st) : DRT_STATUS_OK;
}

static void session_free_variants(drt_session *s) {
  for (uint32_t b = 0; s->variant && b < s->plan->c.num_buckets; b++) drt_graph_destroy(s->variant[b]);
  free(s->variant);
  s->variant = NULL;
  for (int k = 0; k < DRT_PLAN_MAX_STAGES; k++) {
    drt_graph_destroy(s->stage_variant[k]);
    s->stage_variant[k] = NULL;
  }
}

drt_status_code drt_session_set_loras(drt_session *s, const drt_lora *const *loras, const float *strengths,
                                      int count) {
  API_CHECK(s, "drt_session_set_loras: NULL session");
  const drt_plan *p = s->plan;
  drt_status st = check_loras(p, loras, strengths, count);
  if (st) return fail(st);
  /* Unmerged LoRAs change the network; the plan's CUDA binaries cover only its own graphs. An
     explicit CUDA session refuses them; an AUTO session moves to the CPU while they are set. */
  drt_backend nb = count == 0 && s->cuda_ok ? DRT_BACKEND_CUDA : DRT_BACKEND_CPU;
  if (count > 0 && s->backend == DRT_BACKEND_CUDA) {
    if (s->asked == DRT_BACKEND_CUDA)
      return fail(DRT_ERROR(DRT_STATUS_UNSUPPORTED, "unmerged LoRAs change the network and the CUDA code of '%s' covers "
                            "only the plan's own graphs: merge them into the plan (drt_plan_set_loras, --lora-mode "
                            "merged) or run the session on the CPU (--backend cpu)", p->label));
    drt_log(DRT_LOG_WARN, "unmerged LoRAs change the network and the CUDA code of '%s' covers only the plan's own "
            "graphs: this session runs on the CPU while they are set (merged LoRAs keep the GPU)", p->label);
  }
  const drt_backend old_backend = s->backend;
  drt_graph **variant = NULL, *stage_variant[DRT_PLAN_MAX_STAGES] = {NULL};
  if (count > 0) {
    variant = calloc(p->c.num_buckets + 1, sizeof *variant);
    if (!variant) return fail(DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "LoRA graphs"));
    for (uint32_t b = 0; b < p->c.num_buckets && !st; b++) {
      drt_graph *graphs[1 + DRT_PLAN_MAX_STAGES];
      size_t ng = 0;
      st = drt_graph_clone_rebased(s->gen->graphs[b], NULL, 0, NULL, &variant[b]);
      graphs[ng++] = variant[b];
      /* the hoisted stages read weights too (plans with stages have one bucket) */
      for (uint32_t k = 0; b == 0 && !st && k < s->gen->num_stages; k++) {
        st = drt_graph_clone_rebased(s->gen->stages[k].graph, NULL, 0, NULL, &stage_variant[k]);
        graphs[ng++] = stage_variant[k];
      }
      if (!st) {
        const drt_plan_provenance *pv = b < p->c.num_provenance && p->c.provenance[b] ? p->c.provenance[b]
                                        : p->c.num_provenance ? p->c.provenance[0] : NULL;
        st = drt_lora_rewrite(graphs, ng, pv, (const struct drt_lora *const *)loras, strengths, count);
      }
    }
    if (st) {
      for (uint32_t b = 0; b < p->c.num_buckets; b++) drt_graph_destroy(variant[b]);
      for (int k = 0; k < DRT_PLAN_MAX_STAGES; k++) drt_graph_destroy(stage_variant[k]);
      free(variant);
      return fail(st);
    }
  }
  /* stage executors on the new stage graphs (all made before any is replaced) */
  drt_exec *stage_ex[DRT_PLAN_MAX_STAGES] = {NULL};
  s->backend = nb;
  for (int k = 0; k < s->num_stages && !st; k++)
    st = session_exec(s, stage_variant[k] ? stage_variant[k] : s->stages[k].ps->graph, cuda_stage_index(k), &stage_ex[k]);
  if (st) {
    s->backend = old_backend;
    for (int k = 0; k < DRT_PLAN_MAX_STAGES; k++) drt_exec_destroy(stage_ex[k]);
    for (uint32_t b = 0; variant && b < p->c.num_buckets; b++) drt_graph_destroy(variant[b]);
    for (int k = 0; k < DRT_PLAN_MAX_STAGES; k++) drt_graph_destroy(stage_variant[k]);
    free(variant);
    return fail(st);
  }
  for (int k = 0; k < s->num_stages; k++) {
    stage_free_outputs(&s->stages[k]);
    drt_exec_destroy(s->stages[k].ex);
    s->stages[k].ex = stage_ex[k];
  }
  /* new graphs: new executors (created on demand), outputs of the old graphs dropped */
  free_outputs(s);
  session_drop_devloop(s);
  for (uint32_t b = 0; b < p->c.num_buckets; b++) {
    drt_exec_destroy(s->bex[b]);
    s->bex[b] = NULL;
  }
  s->ex = NULL;
  session_free_variants(s);
  s->variant = variant;
  for (int k = 0; k < DRT_PLAN_MAX_STAGES; k++) s->stage_variant[k] = stage_variant[k];
  st = session_use_bucket(s, s->bucket);
  return st ? fail(st) : DRT_STATUS_OK;
}
