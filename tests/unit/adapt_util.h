/* Helpers shared by the adaptable-plan tests (test_refit.c, test_lora.c, test_buckets.c):
 * fixture paths, an in-process compile (what `drt compile` does: load, trace, bind, passes,
 * provenance, weight map, serialize), plan runs through the public API, safetensors writing.
 * Header-only (static functions): include after testutil.h in one test file each. */
#ifndef DRT_TESTS_ADAPT_UTIL_H
#define DRT_TESTS_ADAPT_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "distilrt.h"
#include "frontend/onnx.h"
#include "passes/canonicalize.h"
#include "passes/pipeline.h"
#include "passes/weight_trace.h"
#include "runtime/npy.h"
#include "runtime/plan.h"
#include "runtime/safetensors.h"

static inline double adapt_now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static inline const char *adapt_path(const char *rel, char *buf, size_t n) {
  const char *src = getenv("DRT_SOURCE_DIR");
  snprintf(buf, n, "%s/%s", src ? src : ".", rel);
  return buf;
}

/* A compile recipe: model, input shapes, optional weight map, optional hoisting with tables. */
typedef struct adapt_compile {
  const char *model;            /* relative to the source dir */
  const char *weights_map;      /* relative, or NULL */
  int num_shapes;
  const char *shape_names[4];
  drt_shape shapes[4];
  int table_steps;              /* > 0: hoist with per-step tables for these timesteps */
  const double *table_t;
  const char *disable[4];       /* passes to disable */
  int num_disable;
} adapt_compile;

/* Serialized plan bytes (malloc'd) for the recipe, or NULL with the failure printed. */
static inline void *adapt_compile_plan(const adapt_compile *r, size_t *size) {
  char p[1024];
  drt_graph *g = NULL;
  drt_weight_trace *tr = NULL;
  drt_plan_provenance *prov = NULL;
  drt_weight_map *map = NULL;
  drt_safetensors *ckpt = NULL;
  drt_named_tensor *src = NULL;
  drt_pass_results res;
  memset(&res, 0, sizeof res);
  void *bytes = NULL;
  drt_plan_contents c;
  memset(&c, 0, sizeof c);
  drt_status st = drt_onnx_load_file(adapt_path(r->model, p, sizeof p), NULL, &g);
  if (!st) st = drt_weight_trace_begin(g, &tr);
  for (int i = 0; i < r->num_shapes && !st; i++) st = drt_graph_bind_input(g, r->shape_names[i], &r->shapes[i]);
  if (!st) {
    drt_pass_ctx pc;
    memset(&pc, 0, sizeof pc);
    pc.results = &res;
    pc.sched_steps = r->table_steps;
    pc.sched_t = r->table_t;
    pc.latent_input = "sample";
    pc.timestep_input = "timestep";
    drt_pipeline_options po;
    memset(&po, 0, sizeof po);
    for (int i = 0; i < r->num_disable; i++) po.disabled[po.num_disabled++] = r->disable[i];
    st = drt_pipeline_run(g, &pc, &po);
  }
  uint8_t *in_roles = NULL, *out_roles = NULL; /* one per graph input / output */
  if (!st) {
    in_roles = calloc(g->num_inputs + 1, 1);
    out_roles = calloc(g->num_outputs + 1, 1);
    if (!in_roles || !out_roles) st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "roles");
  }
  if (!st) {
    c.graph = g;
    c.targets = DRT_PLAN_TARGET_CPU;
    for (size_t i = 0; i < g->num_inputs; i++) {
      if (strcmp(g->inputs[i]->name, "sample") == 0) in_roles[i] = DRT_PLAN_ROLE_LATENT;
      if (strcmp(g->inputs[i]->name, "timestep") == 0) in_roles[i] = DRT_PLAN_ROLE_TIMESTEP;
      for (int k = 0; k < res.num_stages; k++)
        for (size_t j = 0; j < res.stages[k].graph->num_outputs; j++)
          if (strcmp(res.stages[k].graph->outputs[j]->name, g->inputs[i]->name) == 0) in_roles[i] = DRT_PLAN_ROLE_HOISTED;
    }
    out_roles[0] = DRT_PLAN_ROLE_PREDICTION;
    c.input_roles = in_roles;
    c.output_roles = out_roles;
    const drt_graph *extra[DRT_PLAN_MAX_STAGES];
    for (int k = 0; k < res.num_stages && k < DRT_PLAN_MAX_STAGES; k++) {
      drt_pass_stage *ps = &res.stages[k];
      c.stages[k].kind = ps->kind == DRT_STAGE_PROLOGUE ? DRT_PLAN_STAGE_PROLOGUE : DRT_PLAN_STAGE_STEP;
      c.stages[k].graph = ps->graph;
      c.stages[k].table_steps = (uint32_t)ps->table_steps;
      c.stages[k].table_t = ps->table_t;
      c.stages[k].tables = (const void **)ps->tables;
      c.num_stages = (uint32_t)k + 1;
      extra[k] = ps->graph;
    }
    st = drt_weight_trace_finish(tr, g, extra, c.num_stages, 0, &prov);
    c.provenance = &prov;
    c.num_provenance = 1;
  }
  if (!st && r->weights_map) {
    size_t ns = 0;
    st = drt_safetensors_open_file(adapt_path(r->weights_map, p, sizeof p), 0, &ckpt);
    if (!st) st = drt_weight_trace_sources(tr, prov, &src, &ns);
    if (!st) st = drt_weight_map_build(src, ns, ckpt, &map, NULL);
    c.weight_map = map;
  }
  if (!st) st = drt_plan_serialize(&c, &bytes, size);
  if (st) {
    print_error("compiling %s: %s\n", r->model, drt_status_message(st));
    drt_status_free(st);
    bytes = NULL;
  }
  free(src);
  free(in_roles);
  free(out_roles);
  drt_safetensors_close(ckpt);
  drt_weight_map_destroy(map);
  drt_provenance_destroy(prov);
  drt_weight_trace_destroy(tr);
  drt_pass_results_free(&res);
  drt_graph_destroy(g);
  return bytes;
}

/* The DiT / UNet fixtures at batch 1 (op17 exports). */
static inline adapt_compile adapt_fixture(const char *model, const char *weights_map) {
  adapt_compile r;
  memset(&r, 0, sizeof r);
  r.model = model;
  r.weights_map = weights_map;
  r.num_shapes = 3;
  r.shape_names[0] = "sample";
  r.shapes[0] = drt_test_shape(4, (int64_t[]){1, 4, 16, 16});
  r.shape_names[1] = "timestep";
  r.shapes[1] = drt_test_shape(1, (int64_t[]){1});
  r.shape_names[2] = "encoder_hidden_states";
  r.shapes[2] = drt_test_shape(3, (int64_t[]){1, 8, 32});
  return r;
}

/* Loads the fixture's batch-1 inputs (inputs/<name>.npy) into a session. */
static inline void adapt_set_fixture_inputs(drt_session *s, const char *fixture, drt_tensor held[3]) {
  static const char *names[3] = {"sample", "timestep", "encoder_hidden_states"};
  for (int i = 0; i < 3; i++) {
    char rel[512], p[1024];
    snprintf(rel, sizeof rel, "tests/models/fixtures/%s/inputs/%s.npy", fixture, names[i]);
    DRT_ASSERT_OK(drt_npy_read_file(adapt_path(rel, p, sizeof p), &held[i]));
    assert_int_equal(drt_session_set_input(s, names[i], held[i].dtype, held[i].shape.rank, held[i].shape.dims,
                                           held[i].data, drt_tensor_nbytes(&held[i])),
                     DRT_STATUS_OK);
  }
}

/* Runs a session once and returns a malloc'd copy of output 0 (n elements, float32). */
static inline float *adapt_run_output(drt_session *s, const drt_plan *plan, size_t *n) {
  if (drt_session_run(s) != DRT_STATUS_OK) print_error("run: %s\n", drt_last_error());
  drt_tensor_desc d;
  assert_int_equal(drt_plan_output(plan, 0, &d), DRT_STATUS_OK);
  const void *data;
  size_t nb;
  assert_int_equal(drt_session_get_output(s, d.name, &d, &data, &nb), DRT_STATUS_OK);
  assert_int_equal(d.dtype, DRT_DTYPE_FLOAT32);
  float *out = malloc(nb);
  memcpy(out, data, nb);
  *n = nb / sizeof(float);
  return out;
}

/* Output 0 of one run of plan bytes on the fixture's inputs (malloc'd). */
static inline float *adapt_plan_output(const void *bytes, size_t size, const char *fixture, size_t *n) {
  drt_plan *p = NULL;
  drt_session *s = NULL;
  if (drt_plan_load_memory(bytes, size, &p) != DRT_STATUS_OK) print_error("load: %s\n", drt_last_error());
  assert_non_null(p);
  drt_session_options o;
  drt_session_options_init(&o);
  o.num_threads = 1;
  assert_int_equal(drt_session_create(p, &o, &s), DRT_STATUS_OK);
  drt_tensor held[3];
  adapt_set_fixture_inputs(s, fixture, held);
  float *out = adapt_run_output(s, p, n);
  for (int i = 0; i < 3; i++) free(held[i].data);
  drt_session_destroy(s);
  drt_plan_destroy(p);
  return out;
}

/* Writes safetensors bytes for named tensors (data in their dtype), in the given order. */
typedef struct adapt_st_entry {
  const char *name;
  drt_dtype dtype;
  drt_shape shape;
  const void *data;
} adapt_st_entry;

static inline void *adapt_safetensors(const adapt_st_entry *e, int n, size_t *size) {
  size_t hcap = 256 + (size_t)n * 512, off = 0, data = 0;
  char *h = malloc(hcap);
  off += (size_t)snprintf(h + off, hcap - off, "{");
  for (int i = 0; i < n; i++) {
    drt_tensor t = {e[i].dtype, e[i].shape, NULL};
    size_t nb = drt_tensor_nbytes(&t);
    off += (size_t)snprintf(h + off, hcap - off, "%s\"%s\": {\"dtype\": \"%s\", \"shape\": [", i ? ", " : "", e[i].name,
                            drt_safetensors_dtype_name(e[i].dtype));
    for (int d = 0; d < e[i].shape.rank; d++)
      off += (size_t)snprintf(h + off, hcap - off, "%s%lld", d ? ", " : "", (long long)e[i].shape.dims[d]);
    off += (size_t)snprintf(h + off, hcap - off, "], \"data_offsets\": [%zu, %zu]}", data, data + nb);
    data += nb;
  }
  off += (size_t)snprintf(h + off, hcap - off, "}");
  while (off % 8) h[off++] = ' ';
  uint8_t *b = malloc(8 + off + data + 1);
  for (int k = 0; k < 8; k++) b[k] = (uint8_t)((uint64_t)off >> (8 * k));
  memcpy(b + 8, h, off);
  size_t pos = 8 + off;
  for (int i = 0; i < n; i++) {
    drt_tensor t = {e[i].dtype, e[i].shape, NULL};
    size_t nb = drt_tensor_nbytes(&t);
    memcpy(b + pos, e[i].data, nb);
    pos += nb;
  }
  free(h);
  *size = pos;
  return b;
}

static inline bool adapt_bits_equal(const float *a, const float *b, size_t n) {
  return memcmp(a, b, n * sizeof(float)) == 0;
}

#endif
