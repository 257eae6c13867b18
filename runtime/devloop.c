/* The device-resident sampling loop (runtime/devloop.h). */
#include "runtime/devloop.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/dtype.h"

struct drt_devloop {
  drt_cuda_module *mod;
  drt_cuda_context *ctx;
  uint64_t x, noise, seed, ts; /* device buffers: latent (float32), user noise, seed, timestep table */
  size_t x_n, noise_n, ts_bytes;
  /* device copies of the step stages' tables in storage dtype: per stage, per output, rows */
  const void *const *rows_src[DRT_PLAN_MAX_STAGES];
  uint64_t rows[DRT_PLAN_MAX_STAGES];
  size_t rows_bytes[DRT_PLAN_MAX_STAGES];
  /* the captured generation and what it was captured for */
  drt_cuda_graph *graph;
  drt_exec *key_main, *key_stage[DRT_PLAN_MAX_STAGES];
  drt_sched_step *key_steps;
  uint32_t key_nsteps;
  double key_sigma, key_ts_scale;
  bool key_noise;
  uint64_t allocs, key_allocs; /* buffers (re)allocated so far: the graph holds their addresses */
  uint32_t key_tabled, key_computed;
  bool replayed;
  drt_cuda_timer *timer;
};

/* Device storage of value v of executor e's graph (float32 as the activation type, small
 * float32 inputs as float32: drt_cuda_value_storage). */
static drt_dtype storage(const drt_cuda_executor *e, const drt_value *v) { return drt_cuda_executor_storage(e, v); }

static size_t value_bytes(const drt_cuda_executor *e, const drt_value *v) {
  return (size_t)drt_shape_numel(&v->shape) * drt_dtype_size(storage(e, v));
}

bool drt_devloop_supported(const drt_devloop_spec *sp, char *why, size_t n) {
  const char *env = getenv("DRT_CUDA_DEVICE_LOOP");
  if (env && strcmp(env, "0") == 0) {
    snprintf(why, n, "DRT_CUDA_DEVICE_LOOP=0");
    return false;
  }
  if (!drt_exec_cuda(sp->main)) {
    snprintf(why, n, "the network runs on the CPU");
    return false;
  }
  for (int k = 0; k < sp->num_stages; k++)
    if (!drt_exec_cuda(sp->stages[k].ex)) {
      snprintf(why, n, "a hoisted stage runs on the CPU");
      return false;
    }
  const drt_graph *g = drt_exec_graph(sp->main);
  const drt_value *lv = g->inputs[sp->latent], *pv = g->outputs[sp->prediction];
  if (lv->dtype != DRT_DTYPE_FLOAT32 || pv->dtype != DRT_DTYPE_FLOAT32 ||
      (sp->uncond >= 0 && g->outputs[sp->uncond]->dtype != DRT_DTYPE_FLOAT32)) {
    snprintf(why, n, "the latent input or the prediction is %s, the device loop takes float32",
             drt_dtype_name(lv->dtype != DRT_DTYPE_FLOAT32 ? lv->dtype : pv->dtype));
    return false;
  }
  if (sp->state >= 0 && (sp->state_out < 0 || g->inputs[sp->state]->dtype != DRT_DTYPE_FLOAT32)) {
    snprintf(why, n, "the guidance state is not float32");
    return false;
  }
  /* the sampler and fill kernels write the activation type */
  const drt_cuda_executor *me = drt_exec_cuda(sp->main);
  drt_dtype act = drt_cuda_executor_storage(me, g->outputs[sp->prediction]);
  if (storage(me, lv) != act || (sp->state >= 0 && storage(me, g->inputs[sp->state]) != act)) {
    snprintf(why, n, "the latent input or the guidance state is small enough to keep float32 storage");
    return false;
  }
  const drt_cuda_program *prog = drt_cuda_module_program(drt_exec_cuda_module(sp->main));
  if (drt_cuda_program_find_kernel(prog, DRT_CUDA_KERNEL_SAMPLER) < 0 ||
      (sp->state >= 0 && drt_cuda_program_find_kernel(prog, DRT_CUDA_KERNEL_FILL) < 0)) {
    snprintf(why, n, "the plan's CUDA program has no sampler kernel");
    return false;
  }
  return true;
}

drt_status drt_devloop_create(drt_cuda_module *m, drt_devloop **out) {
  *out = NULL;
  drt_devloop *dl = calloc(1, sizeof *dl);
  if (!dl) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "device loop");
  dl->mod = m;
  dl->ctx = drt_cuda_module_context(m);
  drt_status st = drt_cuda_malloc(dl->ctx, 8, &dl->seed);
  if (!st) st = drt_cuda_timer_create(dl->ctx, &dl->timer);
  if (st) {
    drt_devloop_destroy(dl);
    return st;
  }
  *out = dl;
  return DRT_OK;
}

static void free_buf(drt_devloop *dl, uint64_t *p) {
  if (*p) drt_cuda_free(dl->ctx, *p);
  *p = 0;
}

static void drop_graph(drt_devloop *dl) {
  drt_cuda_graph_destroy(dl->graph);
  dl->graph = NULL;
  free(dl->key_steps);
  dl->key_steps = NULL;
}

void drt_devloop_destroy(drt_devloop *dl) {
  if (!dl) return;
  drop_graph(dl);
  free_buf(dl, &dl->x);
  free_buf(dl, &dl->noise);
  free_buf(dl, &dl->seed);
  free_buf(dl, &dl->ts);
  for (int k = 0; k < DRT_PLAN_MAX_STAGES; k++) free_buf(dl, &dl->rows[k]);
  drt_cuda_timer_destroy(dl->timer);
  free(dl);
}

bool drt_devloop_replayed(const drt_devloop *dl) { return dl && dl->replayed; }

/* A device buffer of at least `bytes` (contents not kept when it grows). */
static drt_status ensure(drt_devloop *dl, uint64_t *buf, size_t *have, size_t bytes) {
  if (*buf && *have >= bytes) return DRT_OK;
  free_buf(dl, buf);
  *have = 0;
  DRT_RETURN_IF_ERROR(drt_cuda_malloc(dl->ctx, bytes ? bytes : 1, buf));
  *have = bytes;
  dl->allocs++;
  return DRT_OK;
}

/* Host tensor (graph dtype) -> device buffer in storage dtype. Synchronous with respect to the
 * host buffer (the caller synchronizes the stream before the launch). */
static drt_status upload(drt_devloop *dl, uint64_t dptr, drt_dtype sd, const drt_tensor *t, void *stream) {
  size_t n = (size_t)drt_shape_numel(&t->shape);
  if (sd == t->dtype) return drt_cuda_memcpy_htod(dl->ctx, dptr, t->data, drt_tensor_nbytes(t), stream);
  void *tmp = malloc(n * drt_dtype_size(sd) + 1);
  if (!tmp) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "device loop upload");
  drt_convert(sd, tmp, t->dtype, t->data, n);
  drt_status st = drt_cuda_memcpy_htod(dl->ctx, dptr, tmp, n * drt_dtype_size(sd), stream);
  if (!st) st = drt_cuda_stream_sync(dl->ctx, stream);
  free(tmp);
  return st;
}

/* Device buffer in storage dtype -> a malloc'd host tensor in the value's dtype. */
static drt_status download(drt_devloop *dl, drt_dtype sd, const drt_value *v, uint64_t dptr, void *stream,
                           drt_tensor *out) {
  drt_tensor t = {v->dtype, v->shape, NULL};
  size_t n = (size_t)drt_shape_numel(&v->shape), nb = drt_tensor_nbytes(&t);
  t.data = malloc(nb + 1);
  void *tmp = sd == v->dtype ? t.data : malloc(n * drt_dtype_size(sd) + 1);
  if (!t.data || !tmp) {
    free(t.data);
    if (tmp != t.data) free(tmp);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "device loop outputs");
  }
  drt_status st = drt_cuda_memcpy_dtoh(dl->ctx, tmp, dptr, n * drt_dtype_size(sd), stream);
  if (!st) st = drt_cuda_stream_sync(dl->ctx, stream);
  if (!st && tmp != t.data) drt_convert(v->dtype, t.data, sd, tmp, n);
  if (tmp != t.data) free(tmp);
  if (st) {
    free(t.data);
    return st;
  }
  *out = t;
  return DRT_OK;
}

static uint64_t f64_bits(double v) {
  uint64_t u;
  memcpy(&u, &v, sizeof u);
  return u;
}

static drt_status launch(drt_devloop *dl, void *stream, const char *name, size_t n, const uint64_t *args, int nargs) {
  const drt_cuda_program *prog = drt_cuda_module_program(dl->mod);
  int ki = drt_cuda_program_find_kernel(prog, name);
  uint32_t block = ki >= 0 && prog->kernels[ki].max_threads ? prog->kernels[ki].max_threads : 256;
  size_t blocks = (n + block - 1) / block;
  uint32_t grid = blocks < 1 ? 1 : blocks > 4096 ? 4096 : (uint32_t)blocks; /* grid-stride kernels */
  return drt_cuda_module_launch(dl->mod, stream, name, grid, block, args, nargs);
}

/* The fused sampler kernel (codegen/kernels/runtime.cuh, drt_sampler_step):
 *   x_out = (float)(kx*x_in + km*pred + ku*uncond + kn*noise)   (double, in that order)
 *   next_in = (ACT)(float)(c_in_next * x_out)                     (when next_in is not NULL)
 * noise = noise_in[i] when noise_in is not NULL, else Philox normal (seed, stream, i) when
 * kn != 0; NULL x_in / pred / uncond read as zeros. */
static drt_status launch_sampler(drt_devloop *dl, void *stream, uint64_t x_out, uint64_t x_in, uint64_t pred,
                                 uint64_t uncond, size_t n, double kx, double km, double ku, double kn,
                                 uint64_t noise_stream, uint64_t noise_in, uint64_t next_in, double c_in_next) {
  uint64_t a[14] = {x_out,         x_in,           pred,         uncond,       (uint64_t)n,
                    f64_bits(kx),  f64_bits(km),   f64_bits(ku), f64_bits(kn), dl->seed,
                    noise_stream,  noise_in,       next_in,      f64_bits(c_in_next)};
  return launch(dl, stream, DRT_CUDA_KERNEL_SAMPLER, n, a, 14);
}

static bool main_input_dynamic(const drt_devloop_spec *sp, int m) {
  if (m == sp->latent || m == sp->timestep || m == sp->state) return true;
  for (int k = 0; k < sp->num_stages; k++) {
    const drt_graph *sg = drt_exec_graph(sp->stages[k].ex);
    for (size_t j = 0; j < sg->num_outputs; j++)
      if (sp->stages[k].out_map[j] == m) return true;
  }
  return false;
}

/* Enqueues stage k: its dynamic inputs copied from the network's inputs, the stage, its
 * outputs copied into the network's inputs. */
static drt_status enqueue_stage(drt_devloop *dl, const drt_devloop_spec *sp, int k, void *stream) {
  const drt_devloop_stage *ds = &sp->stages[k];
  drt_cuda_executor *se = drt_exec_cuda(ds->ex), *me = drt_exec_cuda(sp->main);
  const drt_graph *sg = drt_exec_graph(ds->ex), *g = drt_exec_graph(sp->main);
  for (size_t i = 0; i < sg->num_inputs; i++) {
    int m = ds->in_map[i];
    if (!main_input_dynamic(sp, m)) continue;
    DRT_RETURN_IF_ERROR(drt_cuda_memcpy_dtod(dl->ctx, drt_cuda_executor_input_dptr(se, i),
                                             drt_cuda_executor_input_dptr(me, (size_t)m),
                                             value_bytes(se, sg->inputs[i]), stream));
  }
  DRT_RETURN_IF_ERROR_CTX(drt_cuda_executor_enqueue(se, stream), "%s stage", ds->prologue ? "prologue" : "step");
  for (size_t j = 0; j < sg->num_outputs; j++)
    DRT_RETURN_IF_ERROR(drt_cuda_memcpy_dtod(dl->ctx, drt_cuda_executor_input_dptr(me, (size_t)ds->out_map[j]),
                                             drt_cuda_executor_output_dptr(se, j),
                                             value_bytes(me, g->inputs[ds->out_map[j]]), stream));
  return DRT_OK;
}

/* The table row of a step stage for the fed timestep t at step k, -1 when none (as api.c). */
static int64_t table_row(const drt_devloop_stage *ds, uint32_t k, double t) {
  if (k < ds->table_steps && ds->table_t[k] == t) return k;
  for (uint32_t r = 0; r < ds->table_steps; r++)
    if (ds->table_t[r] == t) return r;
  return -1;
}

static double fed_t(const drt_devloop_gen *gp, uint32_t k) {
  return gp->timestep_scale > 0 ? gp->steps[k].t_model * gp->timestep_scale : gp->steps[k].t_model;
}

/* Device copy of a step stage's tables: per output, table_steps rows in storage dtype. */
static drt_status upload_rows(drt_devloop *dl, const drt_devloop_spec *sp, int k, void *stream) {
  const drt_devloop_stage *ds = &sp->stages[k];
  if (dl->rows[k] && dl->rows_src[k] == ds->tables) return DRT_OK;
  const drt_graph *sg = drt_exec_graph(ds->ex);
  const drt_cuda_executor *se = drt_exec_cuda(ds->ex);
  size_t total = 0;
  for (size_t j = 0; j < sg->num_outputs; j++) total += value_bytes(se, sg->outputs[j]) * ds->table_steps;
  DRT_RETURN_IF_ERROR(ensure(dl, &dl->rows[k], &dl->rows_bytes[k], total));
  size_t off = 0;
  for (size_t j = 0; j < sg->num_outputs; j++) {
    const drt_value *o = sg->outputs[j];
    drt_tensor t = {o->dtype, o->shape, NULL};
    size_t rb = drt_tensor_nbytes(&t);
    for (uint32_t r = 0; r < ds->table_steps; r++) {
      t.data = (char *)ds->tables[j] + (size_t)r * rb;
      DRT_RETURN_IF_ERROR(upload(dl, dl->rows[k] + off, storage(se, o), &t, stream));
      off += value_bytes(se, o);
    }
  }
  dl->rows_src[k] = ds->tables;
  return DRT_OK;
}

/* Row r of output j of step stage k in the device copy. */
static uint64_t row_dptr(const drt_devloop *dl, const drt_devloop_spec *sp, int k, size_t j, uint32_t r) {
  const drt_graph *sg = drt_exec_graph(sp->stages[k].ex);
  const drt_cuda_executor *se = drt_exec_cuda(sp->stages[k].ex);
  size_t off = 0;
  for (size_t q = 0; q < j; q++) off += value_bytes(se, sg->outputs[q]) * sp->stages[k].table_steps;
  return dl->rows[k] + off + (size_t)r * value_bytes(se, sg->outputs[j]);
}

/* Everything of one generation, enqueued on `stream` (captured by the caller). */
static drt_status enqueue_generation(drt_devloop *dl, const drt_devloop_spec *sp, const drt_devloop_gen *gp,
                                     void *stream, uint32_t *tabled, uint32_t *computed) {
  drt_cuda_executor *me = drt_exec_cuda(sp->main);
  const drt_graph *g = drt_exec_graph(sp->main);
  size_t n = (size_t)drt_shape_numel(&g->inputs[sp->latent]->shape);
  size_t tsb = value_bytes(me, g->inputs[sp->timestep]);
  uint64_t lat = drt_cuda_executor_input_dptr(me, (size_t)sp->latent);
  uint64_t ts = drt_cuda_executor_input_dptr(me, (size_t)sp->timestep);
  *tabled = *computed = 0;
  for (int k = 0; k < sp->num_stages; k++)
    if (sp->stages[k].prologue) DRT_RETURN_IF_ERROR(enqueue_stage(dl, sp, k, stream));
  if (sp->state >= 0) {
    uint64_t a[3] = {drt_cuda_executor_input_dptr(me, (size_t)sp->state),
                     (uint64_t)drt_shape_numel(&g->inputs[sp->state]->shape), f64_bits(0.0)};
    DRT_RETURN_IF_ERROR(launch(dl, stream, DRT_CUDA_KERNEL_FILL, (size_t)a[1], a, 3));
  }
  /* x_T = init_sigma * noise; the first model input */
  DRT_RETURN_IF_ERROR(launch_sampler(dl, stream, dl->x, 0, 0, 0, n, 0, 0, 0, gp->init_sigma, 0,
                                     gp->noise ? dl->noise : 0, gp->nsteps ? lat : 0, gp->nsteps ? gp->steps[0].c_in : 0));
  for (uint32_t k = 0; k < gp->nsteps; k++) {
    const drt_sched_step *s = &gp->steps[k];
    DRT_RETURN_IF_ERROR(drt_cuda_memcpy_dtod(dl->ctx, ts, dl->ts + (size_t)k * tsb, tsb, stream));
    for (int q = 0; q < sp->num_stages; q++) {
      const drt_devloop_stage *ds = &sp->stages[q];
      if (ds->prologue) continue;
      int64_t row = table_row(ds, k, fed_t(gp, k));
      if (row < 0) {
        DRT_RETURN_IF_ERROR(enqueue_stage(dl, sp, q, stream));
        (*computed)++;
        continue;
      }
      const drt_graph *sg = drt_exec_graph(ds->ex);
      const drt_cuda_executor *se = drt_exec_cuda(ds->ex);
      for (size_t j = 0; j < sg->num_outputs; j++)
        DRT_RETURN_IF_ERROR(drt_cuda_memcpy_dtod(dl->ctx, drt_cuda_executor_input_dptr(me, (size_t)ds->out_map[j]),
                                                 row_dptr(dl, sp, q, j, (uint32_t)row), value_bytes(se, sg->outputs[j]),
                                                 stream));
      (*tabled)++;
    }
    DRT_RETURN_IF_ERROR_CTX(drt_cuda_executor_enqueue(me, stream), "step %u", k);
    if (sp->state >= 0)
      DRT_RETURN_IF_ERROR(drt_cuda_memcpy_dtod(dl->ctx, drt_cuda_executor_input_dptr(me, (size_t)sp->state),
                                               drt_cuda_executor_output_dptr(me, (size_t)sp->state_out),
                                               value_bytes(me, g->inputs[sp->state]), stream));
    double kx, km, ku;
    if (sp->uncond >= 0) { /* CFG++: x0 from the guided prediction, eps from the unconditional one */
      kx = s->a * s->p_x + s->b * s->q_x;
      km = s->a * s->p_m;
      ku = s->b * s->q_m;
    } else {
      kx = s->a * s->p_x + s->b * s->q_x;
      km = s->a * s->p_m + s->b * s->q_m;
      ku = 0;
    }
    bool last = k + 1 == gp->nsteps;
    DRT_RETURN_IF_ERROR(launch_sampler(
        dl, stream, dl->x, dl->x, drt_cuda_executor_output_dptr(me, (size_t)sp->prediction),
        sp->uncond >= 0 ? drt_cuda_executor_output_dptr(me, (size_t)sp->uncond) : 0, n, kx, km, ku, s->c,
        (uint64_t)k + 1, 0, last ? 0 : lat, last ? 0 : gp->steps[k + 1].c_in));
  }
  return DRT_OK;
}

/* The fed timesteps as the timestep input's bytes in storage dtype, one row per step (the
 * conversions of api.c's fill_timestep, then to storage). */
static drt_status upload_timesteps(drt_devloop *dl, const drt_devloop_spec *sp, const drt_devloop_gen *gp,
                                   void *stream) {
  const drt_value *tv = drt_exec_graph(sp->main)->inputs[sp->timestep];
  const drt_cuda_executor *me = drt_exec_cuda(sp->main);
  size_t numel = (size_t)drt_shape_numel(&tv->shape), es = drt_dtype_size(tv->dtype);
  size_t tsb = value_bytes(me, tv);
  DRT_RETURN_IF_ERROR(ensure(dl, &dl->ts, &dl->ts_bytes, tsb * gp->nsteps));
  drt_tensor t = {tv->dtype, tv->shape, malloc(numel * es + 8)};
  if (!t.data) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "timesteps");
  drt_status st = DRT_OK;
  for (uint32_t k = 0; k < gp->nsteps && !st; k++) {
    double v = fed_t(gp, k);
    for (size_t i = 0; i < numel; i++) {
      if (drt_dtype_is_int(tv->dtype)) {
        int64_t iv = (int64_t)llround(v);
        drt_convert(tv->dtype, (char *)t.data + i * es, DRT_DTYPE_INT64, &iv, 1);
      } else {
        drt_convert(tv->dtype, (char *)t.data + i * es, DRT_DTYPE_FLOAT64, &v, 1);
      }
    }
    st = upload(dl, dl->ts + (size_t)k * tsb, storage(me, tv), &t, stream);
  }
  if (!st) st = drt_cuda_stream_sync(dl->ctx, stream);
  free(t.data);
  return st;
}

static bool key_matches(const drt_devloop *dl, const drt_devloop_spec *sp, const drt_devloop_gen *gp) {
  if (!dl->graph || dl->key_main != sp->main || dl->key_nsteps != gp->nsteps || dl->key_sigma != gp->init_sigma ||
      dl->key_ts_scale != gp->timestep_scale || dl->key_noise != (gp->noise != NULL) || dl->key_allocs != dl->allocs)
    return false;
  for (int k = 0; k < DRT_PLAN_MAX_STAGES; k++)
    if (dl->key_stage[k] != (k < sp->num_stages ? sp->stages[k].ex : NULL)) return false;
  return memcmp(dl->key_steps, gp->steps, gp->nsteps * sizeof *gp->steps) == 0;
}

drt_status drt_devloop_generate(drt_devloop *dl, const drt_devloop_spec *sp, const drt_devloop_gen *gp, float *latent,
                                drt_tensor *outputs, double *gpu_ms, uint32_t *tabled, uint32_t *computed) {
  drt_cuda_executor *me = drt_exec_cuda(sp->main);
  const drt_graph *g = drt_exec_graph(sp->main);
  void *stream = drt_cuda_executor_stream(me);
  size_t n = (size_t)drt_shape_numel(&g->inputs[sp->latent]->shape);
  dl->replayed = false;
  /* buffers, and what changes from one generation to the next */
  DRT_RETURN_IF_ERROR(ensure(dl, &dl->x, &dl->x_n, n * sizeof(float)));
  if (gp->noise) {
    DRT_RETURN_IF_ERROR(ensure(dl, &dl->noise, &dl->noise_n, n * sizeof(float)));
    DRT_RETURN_IF_ERROR(drt_cuda_memcpy_htod(dl->ctx, dl->noise, gp->noise, n * sizeof(float), stream));
  }
  DRT_RETURN_IF_ERROR(drt_cuda_memcpy_htod(dl->ctx, dl->seed, &gp->seed, sizeof gp->seed, stream));
  for (size_t i = 0; i < g->num_inputs; i++) {
    if (main_input_dynamic(sp, (int)i)) continue;
    if (!sp->input_set[i])
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s' was not set", g->inputs[i]->name);
    DRT_RETURN_IF_ERROR_CTX(upload(dl, drt_cuda_executor_input_dptr(me, i), storage(me, g->inputs[i]), &sp->inputs[i],
                                   stream),
                            "input '%s'", g->inputs[i]->name);
  }
  for (int k = 0; k < sp->num_stages; k++) {
    const drt_graph *sg = drt_exec_graph(sp->stages[k].ex);
    for (size_t i = 0; i < sg->num_inputs; i++) {
      int m = sp->stages[k].in_map[i];
      if (main_input_dynamic(sp, m)) continue;
      const drt_cuda_executor *se = drt_exec_cuda(sp->stages[k].ex);
      DRT_RETURN_IF_ERROR(
          upload(dl, drt_cuda_executor_input_dptr(se, i), storage(se, sg->inputs[i]), &sp->inputs[m], stream));
    }
    if (!sp->stages[k].prologue && sp->stages[k].table_steps) DRT_RETURN_IF_ERROR(upload_rows(dl, sp, k, stream));
  }
  DRT_RETURN_IF_ERROR(upload_timesteps(dl, sp, gp, stream));
  /* capture once per (executors, schedule, options) */
  if (!key_matches(dl, sp, gp)) {
    drop_graph(dl);
    dl->key_steps = malloc(gp->nsteps * sizeof *gp->steps + 1);
    if (!dl->key_steps) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "device loop");
    memcpy(dl->key_steps, gp->steps, gp->nsteps * sizeof *gp->steps);
    /* nodes computed in more than one way are timed now: nothing can be timed inside the capture */
    DRT_RETURN_IF_ERROR(drt_cuda_executor_tune(me));
    for (int k = 0; k < sp->num_stages; k++)
      DRT_RETURN_IF_ERROR(drt_cuda_executor_tune(drt_exec_cuda(sp->stages[k].ex)));
    DRT_RETURN_IF_ERROR(drt_cuda_graph_begin(dl->ctx, stream));
    drt_status st = enqueue_generation(dl, sp, gp, stream, &dl->key_tabled, &dl->key_computed);
    drt_cuda_graph *graph = NULL;
    drt_status e = drt_cuda_graph_end(dl->ctx, stream, &graph);
    if (st || e) {
      drt_cuda_graph_destroy(graph);
      drt_status_free(e ? st : NULL);
      drop_graph(dl);
      return drt_status_annotate(e ? e : st, "capturing the generation into a CUDA graph");
    }
    dl->graph = graph;
    dl->key_main = sp->main;
    for (int k = 0; k < DRT_PLAN_MAX_STAGES; k++) dl->key_stage[k] = k < sp->num_stages ? sp->stages[k].ex : NULL;
    dl->key_nsteps = gp->nsteps;
    dl->key_sigma = gp->init_sigma;
    dl->key_ts_scale = gp->timestep_scale;
    dl->key_noise = gp->noise != NULL;
    dl->key_allocs = dl->allocs;
  } else {
    dl->replayed = true;
  }
  *tabled = dl->key_tabled;
  *computed = dl->key_computed;
  DRT_RETURN_IF_ERROR(drt_cuda_stream_sync(dl->ctx, stream));
  DRT_RETURN_IF_ERROR(drt_cuda_timer_start(dl->timer, stream));
  drt_status st = drt_cuda_graph_launch(dl->graph, stream);
  double ms = 0;
  drt_status e = drt_cuda_timer_stop(dl->timer, stream, &ms);
  if (st || e) {
    drt_status_free(st ? e : NULL);
    return drt_status_annotate(st ? st : e, "running the captured generation");
  }
  *gpu_ms = ms;
  DRT_RETURN_IF_ERROR(drt_cuda_memcpy_dtoh(dl->ctx, latent, dl->x, n * sizeof(float), stream));
  DRT_RETURN_IF_ERROR(drt_cuda_stream_sync(dl->ctx, stream));
  /* a HOST fallback node that failed inside the graph (reported here, not by a later run) */
  st = drt_cuda_executor_take_host_error(me);
  for (int k = 0; k < sp->num_stages; k++) {
    drt_status hs = drt_cuda_executor_take_host_error(drt_exec_cuda(sp->stages[k].ex));
    if (st) drt_status_free(hs);
    else st = hs;
  }
  if (st) return drt_status_annotate(st, "running the captured generation");
  for (size_t i = 0; i < g->num_outputs; i++) {
    st = download(dl, storage(me, g->outputs[i]), g->outputs[i], drt_cuda_executor_output_dptr(me, i), stream,
                  &outputs[i]);
    if (st) {
      for (size_t j = 0; j < i; j++) {
        free(outputs[j].data);
        outputs[j].data = NULL;
      }
      return st;
    }
  }
  return DRT_OK;
}
