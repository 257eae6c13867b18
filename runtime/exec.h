/* A backend-neutral executor: one graph run on the CPU (runtime/cpu/executor.h) or on a CUDA
 * device (runtime/cuda/cuda.h) behind the contract of drt_cpu_executor_run, so that sessions,
 * hoisted stages and shape buckets (runtime/api.c) do not care where they run.
 *
 * Contract of drt_exec_run (both backends): inputs[i] belongs to g->inputs[i] (host memory, the
 * input's dtype and shape); on success outputs[i] receives dtype, shape and a malloc'd host
 * buffer the caller frees; on failure no output buffer is left allocated. The CUDA executor
 * converts float32 values to and from the program's storage dtype at this boundary, so outputs
 * always have the graph's dtypes.
 *
 * Ownership: an executor borrows its graph (CPU) or its module (CUDA); both must outlive it.
 * Thread-safety: an executor is used by one thread at a time. */
#ifndef DRT_RUNTIME_EXEC_H
#define DRT_RUNTIME_EXEC_H

#include <stdbool.h>

#include "runtime/cpu/executor.h"
#include "runtime/cuda/cuda.h"

typedef struct drt_exec drt_exec;

/* A CPU executor over `g`. */
drt_status drt_exec_create_cpu(const drt_graph *g, const drt_cpu_executor_options *o, drt_exec **out);
/* A CUDA executor over program graph `graph_index` of module `m` (its graph is the program's). */
drt_status drt_exec_create_cuda(drt_cuda_module *m, size_t graph_index, const drt_cuda_executor_options *o,
                                drt_exec **out);
void drt_exec_destroy(drt_exec *e); /* NULL-safe */

drt_status drt_exec_run(drt_exec *e, const drt_tensor *inputs, drt_tensor *outputs);

const drt_graph *drt_exec_graph(const drt_exec *e);
drt_backend drt_exec_backend(const drt_exec *e); /* DRT_BACKEND_CPU or DRT_BACKEND_CUDA */
/* The CUDA executor and module behind e, NULL for a CPU executor. */
drt_cuda_executor *drt_exec_cuda(drt_exec *e);
drt_cuda_module *drt_exec_cuda_module(drt_exec *e);

#endif
