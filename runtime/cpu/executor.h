/* CPU executor: runs a canonicalized graph (static shapes, topologically sorted).
 * Intermediates are allocated when produced and freed after their last use.
 * An executor is used by one thread at a time; several executors may share one graph. */
#ifndef DRT_RUNTIME_CPU_EXECUTOR_H
#define DRT_RUNTIME_CPU_EXECUTOR_H

#include "runtime/cpu/cpu.h"

typedef struct drt_cpu_executor drt_cpu_executor;

typedef struct drt_cpu_executor_options {
  int num_threads; /* <= 0: number of online CPUs */
} drt_cpu_executor_options;

void drt_cpu_executor_options_init(drt_cpu_executor_options *o);
/* The graph must outlive the executor and must not change while it exists. */
drt_status drt_cpu_executor_create(const drt_graph *g, const drt_cpu_executor_options *opts,
                                   drt_cpu_executor **out);
void drt_cpu_executor_destroy(drt_cpu_executor *e); /* NULL-safe */

/* Runs the graph. inputs[i] corresponds to g->inputs[i] and must match its dtype and shape.
 * On success outputs[i] (for g->outputs[i]) receives dtype, shape and a malloc'd data buffer
 * owned by the caller (free() it). On failure no output buffer is left allocated. */
drt_status drt_cpu_executor_run(drt_cpu_executor *e, const drt_tensor *inputs, drt_tensor *outputs);

/* Peak bytes of intermediates one run holds at once, from the static shapes and the same
 * policy as drt_cpu_executor_run: with a memory plan, the arena plus the graph outputs;
 * without, buffers allocated when produced and freed after their last use (graph outputs
 * kept to the end). Kernel scratch is not included. UINT64_MAX when a size does not fit (the
 * graph cannot run). Thread-safe; reads the graph only. */
uint64_t drt_cpu_executor_peak_bytes(const drt_graph *g);

#endif
