/* The public C API (include/distilrt.h): plans, sessions, generation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distilrt.h"
#include "runtime/cpu/executor.h"
#include "runtime/npy.h"
#include "runtime/philox.h"
#include "runtime/plan.h"
#include "runtime/sampler.h"

struct drt_plan {
  drt_plan_contents c;
  uint64_t weight_bytes, activation_peak;
};

struct drt_session {
  const drt_plan *plan;
  drt_cpu_executor *ex;
  drt_tensor *inputs; /* borrowed host buffers, per graph input */
  bool *input_set;
  drt_tensor *outputs; /* owned, from the last run */
  bool have_outputs;
  uint64_t nfe;
  float *latent; /* final latent of the last generate (float32, latent input's shape) */
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

static drt_status_code plan_from_bytes(void *bytes, size_t size, const char *label, drt_plan **out) {
  drt_plan *p = calloc(1, sizeof *p);
  if (!p) {
    free(bytes);
    return fail(DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "loading plan"));
  }
  drt_status st = drt_plan_parse(bytes, size, label, &p->c);
  if (st) {
    free(p);
    return fail(st);
  }
  if (!(p->c.targets & DRT_PLAN_TARGET_CPU)) {
    /* the message reads the plan: make it before the plan is freed */
    st = DRT_ERROR(DRT_STATUS_UNAVAILABLE,
                   "'%s' was compiled for CUDA only (%s) and this build has no CUDA backend; recompile with "
                   "--target cpu or --target auto", label, p->c.cuda_archs[0] ? p->c.cuda_archs : "no archs");
    drt_plan_destroy(p);
    return fail(st);
  }
  const drt_graph *g = p->c.graph;
  for (size_t i = 0; i < g->num_values; i++)
    if (g->values[i]->kind == DRT_VALUE_CONST) p->weight_bytes += g->values[i]->nbytes;
  p->activation_peak = drt_cpu_executor_peak_bytes(g);
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
  drt_plan_contents_free(&plan->c);
  free(plan);
}

int drt_plan_num_inputs(const drt_plan *plan) { return plan ? (int)plan->c.graph->num_inputs : 0; }
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
  API_CHECK(index >= 0 && (size_t)index < plan->c.graph->num_inputs, "drt_plan_input: index %d out of range", index);
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
  for (size_t i = 0; i < s->plan->c.graph->num_outputs; i++) {
    free(s->outputs[i].data);
    s->outputs[i].data = NULL;
  }
  s->have_outputs = false;
}

drt_status_code drt_session_create(const drt_plan *plan, const drt_session_options *opts, drt_session **out) {
  API_CHECK(plan && out, "drt_session_create: plan and out must not be NULL");
  *out = NULL;
  drt_session_options o;
  drt_session_options_init(&o);
  if (opts) o = *opts;
  if (o.backend == DRT_BACKEND_CUDA)
    return fail(DRT_ERROR(DRT_STATUS_UNAVAILABLE, "the CUDA backend is not available in this build"));
  drt_session *s = calloc(1, sizeof *s);
  if (!s) return fail(DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "session"));
  s->plan = plan;
  const drt_graph *g = plan->c.graph;
  s->inputs = calloc(g->num_inputs + 1, sizeof(drt_tensor));
  s->input_set = calloc(g->num_inputs + 1, sizeof(bool));
  s->outputs = calloc(g->num_outputs + 1, sizeof(drt_tensor));
  if (!s->inputs || !s->input_set || !s->outputs) {
    drt_session_destroy(s);
    return fail(DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "session"));
  }
  drt_cpu_executor_options eo;
  drt_cpu_executor_options_init(&eo);
  eo.num_threads = o.num_threads;
  drt_status st = drt_cpu_executor_create(g, &eo, &s->ex);
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
  free(s->latent);
  drt_cpu_executor_destroy(s->ex);
  free(s->inputs);
  free(s->input_set);
  free(s->outputs);
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
  const drt_graph *g = s->plan->c.graph;
  int k = find_input(g, name);
  if (k < 0) return fail(DRT_ERROR(DRT_STATUS_NOT_FOUND, "the plan has no input named '%s'", name));
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
  if (!drt_shape_equal(&t.shape, &v->shape))
    return fail(DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s' has shape %s, the plan expects %s", name,
                          drt_shape_str(&t.shape, a, sizeof a), drt_shape_str(&v->shape, b, sizeof b)));
  size_t want = drt_tensor_nbytes(&t);
  if (nbytes != want || (want && !data))
    return fail(DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s': got %zu bytes, expected %zu", name, nbytes, want));
  t.data = (void *)data;
  s->inputs[k] = t;
  s->input_set[k] = true;
  return DRT_STATUS_OK;
}

static drt_status session_eval(drt_session *s) {
  const drt_graph *g = s->plan->c.graph;
  for (size_t i = 0; i < g->num_inputs; i++)
    if (!s->input_set[i]) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s' was not set", g->inputs[i]->name);
  free_outputs(s);
  DRT_RETURN_IF_ERROR(drt_cpu_executor_run(s->ex, s->inputs, s->outputs));
  s->have_outputs = true;
  s->nfe++;
  return DRT_OK;
}

drt_status_code drt_session_run(drt_session *s) {
  API_CHECK(s, "drt_session_run: NULL session");
  drt_status st = session_eval(s);
  return st ? fail(st) : DRT_STATUS_OK;
}

drt_status_code drt_session_get_output(drt_session *s, const char *name, drt_tensor_desc *desc, const void **data,
                                       size_t *nbytes) {
  API_CHECK(s && name, "drt_session_get_output: session and name must not be NULL");
  const drt_graph *g = s->plan->c.graph;
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

static drt_status generate(drt_session *s, const drt_generate_options *o) {
  const drt_plan *p = s->plan;
  const drt_graph *g = p->c.graph;
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
    st = session_eval(s);
    if (st) break;
    drt_convert(DRT_DTYPE_FLOAT32, pred, pv->dtype, s->outputs[pi].data, n);
    if (step.c != 0) drt_philox_normal(o->seed, DRT_PHILOX_STREAM_STEP(k), 0, noise, n);
    drt_sched_update(&step, x, pred, step.c != 0 ? noise : NULL, xn, n);
    memcpy(x, xn, n * sizeof(float));
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
