/* The backend-neutral executor (runtime/exec.h). */
#include "runtime/exec.h"

#include <stdlib.h>

struct drt_exec {
  drt_backend backend;
  const drt_graph *g;
  drt_cpu_executor *cpu;
  drt_cuda_executor *cuda;
  drt_cuda_module *mod;
};

drt_status drt_exec_create_cpu(const drt_graph *g, const drt_cpu_executor_options *o, drt_exec **out) {
  *out = NULL;
  drt_exec *e = calloc(1, sizeof *e);
  if (!e) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "executor");
  e->backend = DRT_BACKEND_CPU;
  e->g = g;
  drt_status st = drt_cpu_executor_create(g, o, &e->cpu);
  if (st) {
    free(e);
    return st;
  }
  *out = e;
  return DRT_OK;
}

drt_status drt_exec_create_cuda(drt_cuda_module *m, size_t graph_index, const drt_cuda_executor_options *o,
                                drt_exec **out) {
  *out = NULL;
  const drt_cuda_program *prog = drt_cuda_module_program(m);
  if (!prog || graph_index >= prog->num_graphs)
    return DRT_ERROR(DRT_STATUS_INTERNAL, "CUDA program graph %zu out of range (%zu graphs)", graph_index,
                     prog ? prog->num_graphs : 0);
  drt_exec *e = calloc(1, sizeof *e);
  if (!e) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "executor");
  e->backend = DRT_BACKEND_CUDA;
  e->g = prog->graphs[graph_index].graph;
  e->mod = m;
  drt_status st = drt_cuda_executor_create(m, graph_index, o, &e->cuda);
  if (st) {
    free(e);
    return st;
  }
  *out = e;
  return DRT_OK;
}

void drt_exec_destroy(drt_exec *e) {
  if (!e) return;
  drt_cpu_executor_destroy(e->cpu);
  drt_cuda_executor_destroy(e->cuda);
  free(e);
}

drt_status drt_exec_run(drt_exec *e, const drt_tensor *inputs, drt_tensor *outputs) {
  if (e->backend == DRT_BACKEND_CUDA) return drt_cuda_executor_run(e->cuda, inputs, outputs);
  return drt_cpu_executor_run(e->cpu, inputs, outputs);
}

const drt_graph *drt_exec_graph(const drt_exec *e) { return e->g; }
drt_backend drt_exec_backend(const drt_exec *e) { return e->backend; }
drt_cuda_executor *drt_exec_cuda(drt_exec *e) { return e ? e->cuda : NULL; }
drt_cuda_module *drt_exec_cuda_module(drt_exec *e) { return e ? e->mod : NULL; }
