/* The CUDA backend of the runtime. libcuda and cuBLASLt are loaded with dlopen through symbol
 * tables (runtime/cuda/symbols.def), so a binary built with CUDA support runs the CPU path on a
 * machine without a driver; every CUresult / cublasStatus_t becomes a drt_status naming the call,
 * file and line. In a build without CUDA headers (DRT_HAVE_CUDA undefined) every function here
 * returns DRT_STATUS_UNAVAILABLE.
 *
 * Objects:
 *   drt_cuda_context   the driver, one device, its primary context, cuBLASLt handle. Shared by
 *                      every plan/session of the process (refcounted); thread-safe.
 *   drt_cuda_module    a plan's program (codegen/codegen.h) loaded on the device: the cubin for
 *                      the device's arch (or the PTX JIT-compiled by the driver), kernel handles,
 *                      and the weights (every constant of the program's graphs) uploaded once in
 *                      storage dtype. Immutable after creation; shared by sessions.
 *   drt_cuda_executor  runs one graph of a module: its device activation arena (from the memory
 *                      plan), scratch, cuBLASLt workspace, pinned staging, a stream, the CUDA graph
 *                      of one evaluation. Used by one thread at a time.
 *
 * Environment (tests): DRT_CUDA_LIBRARY and DRT_CUBLASLT_LIBRARY override the library paths
 * (tests/cuda_emu points them at the emulator's mock driver; while no context is open, a changed
 * value loads the new library). Debugging: DRT_CUDA_GRAPHS=0 runs evaluations launch by launch
 * instead of replaying a captured CUDA graph; DRT_CUDA_CHECK_NODES=1 synchronizes after every
 * node of drt_cuda_executor_run and fails on the first node whose float output has NaN/Inf (its
 * name, the count, the largest finite magnitude). */
#ifndef DRT_RUNTIME_CUDA_CUDA_H
#define DRT_RUNTIME_CUDA_CUDA_H

#include <stdbool.h>
#include <stdint.h>

#include "codegen/codegen.h"
#include "ir/graph.h"
#include "runtime/plan.h"

typedef struct drt_cuda_context drt_cuda_context;
typedef struct drt_cuda_module drt_cuda_module;
typedef struct drt_cuda_executor drt_cuda_executor;

typedef struct drt_cuda_device_info {
  char name[256];
  int ordinal;
  int cc_major, cc_minor;        /* compute capability */
  int driver_version;            /* cuDriverGetVersion */
  int sm_count;
  uint64_t total_memory;
} drt_cuda_device_info;

/* Opens the driver and device `ordinal` (the first acquire loads the libraries). Fails with
 * DRT_STATUS_UNAVAILABLE and a clear message when libcuda cannot be loaded ("no NVIDIA driver:
 * libcuda.so.1 not found"), when there is no device, or when the build has no CUDA. */
drt_status drt_cuda_context_acquire(int ordinal, drt_cuda_context **out);
/* Whether this build has the CUDA backend (DRT_HAVE_CUDA); says nothing about the machine. */
bool drt_cuda_compiled(void);
void drt_cuda_context_release(drt_cuda_context *ctx); /* NULL-safe */
const drt_cuda_device_info *drt_cuda_context_device(const drt_cuda_context *ctx);

/* Loads the plan's CUDA program: checks that `prog` (rendered from the loaded graphs) has the
 * plan's source hash, picks the image (exact sm, else a lower sm of the same major, else PTX of
 * an arch <= the device's; DRT_STATUS_UNSUPPORTED naming the device arch and the plan's archs
 * otherwise), loads it, resolves every kernel, and uploads every constant of every program graph
 * converted to its storage dtype. `prog` must outlive the module. */
drt_status drt_cuda_module_load(drt_cuda_context *ctx, const drt_cuda_program *prog, const drt_plan_cuda *bins,
                                drt_cuda_module **out);
void drt_cuda_module_destroy(drt_cuda_module *m); /* NULL-safe */

typedef struct drt_cuda_executor_options {
  bool use_graphs;      /* capture one evaluation into a CUDA graph on first run (default true) */
  bool check_nonfinite; /* count NaN/Inf in every graph output after a run (tests); error if any */
} drt_cuda_executor_options;
void drt_cuda_executor_options_init(drt_cuda_executor_options *o);

/* An executor for program graph `graph_index` (0: the plan's main graph). */
drt_status drt_cuda_executor_create(drt_cuda_module *m, size_t graph_index, const drt_cuda_executor_options *o,
                                    drt_cuda_executor **out);
void drt_cuda_executor_destroy(drt_cuda_executor *e); /* NULL-safe */

/* Same contract as drt_cpu_executor_run: host inputs (graph input dtypes; float32 converted to the
 * storage dtype on the device), host outputs malloc'd by the callee (float32 values returned as
 * float32). Synchronous. */
drt_status drt_cuda_executor_run(drt_cuda_executor *e, const drt_tensor *inputs, drt_tensor *outputs);

/* ---- device-level interface (generation loop, benchmarks) ------------------------------------------
 * The executor's stream; device addresses of graph input i / output i in storage dtype (fixed for
 * the executor's lifetime, so a captured CUDA graph can read and write them). */
void *drt_cuda_executor_stream(drt_cuda_executor *e); /* a CUstream */
/* Whether kernels are launched with programmatic dependent launch (compute capability 9+, an
 * sm_90+ image, DRT_CUDA_PDL not 0; turned off after a launch or capture that fails with it). */
bool drt_cuda_executor_pdl(const drt_cuda_executor *e);
uint64_t drt_cuda_executor_input_dptr(const drt_cuda_executor *e, size_t i);
uint64_t drt_cuda_executor_output_dptr(const drt_cuda_executor *e, size_t i);
/* Enqueues one evaluation on `stream` (NULL: the executor's) without synchronizing: capturable.
 * HOST fallback nodes enqueue their copies and a host function. */
drt_status drt_cuda_executor_enqueue(drt_cuda_executor *e, void *stream);
/* Times what the first evaluation outside capture would: the variant of every node computed in
 * more than one way (drt_cuda_launch.variant) and the cuBLASLt candidates of every GEMM, each
 * launch by itself on the executor's stream; call before capturing enqueue() into a graph.
 * Variant launches and GEMMs read only their node's inputs and never index by their contents,
 * so whatever the buffers hold does not matter (their outputs are recomputed by the next
 * evaluation). */
drt_status drt_cuda_executor_tune(drt_cuda_executor *e);
/* The variant node `node` runs (drt_cuda_launch.variant): 1, 2, ...; 0 while not chosen yet, and
 * for a node computed one way only once it ran. */
int drt_cuda_executor_variant(const drt_cuda_executor *e, size_t node);
/* Enqueues one evaluation on the executor's own stream through its captured CUDA graph (captured
 * on the second call, as in run; launch by launch when graphs are off). Not capturable. */
drt_status drt_cuda_executor_replay(drt_cuda_executor *e);
/* Resident inputs: input i's device buffer (drt_cuda_executor_input_dptr) is written by the
 * caller on the device, e.g. copied from another executor's output; run/submit neither check nor
 * upload it (its host tensor may have no data) until the flag is cleared. */
void drt_cuda_executor_set_resident(drt_cuda_executor *e, size_t i, bool resident);
/* Device storage dtype of value v of the executor's graph (drt_cuda_value_storage). */
drt_dtype drt_cuda_executor_storage(const drt_cuda_executor *e, const drt_value *v);
/* Storage bytes of input / output i (what the device buffers hold). */
uint64_t drt_cuda_executor_input_bytes(const drt_cuda_executor *e, size_t i);
uint64_t drt_cuda_executor_output_bytes(const drt_cuda_executor *e, size_t i);
/* Uploads the host inputs (not the resident ones) and enqueues one evaluation on the executor's
 * stream, without synchronizing or downloading: the outputs stay in the device buffers. */
drt_status drt_cuda_executor_submit(drt_cuda_executor *e, const drt_tensor *inputs);
/* Launch profile: the GPU time of every launch of one evaluation, averaged over `iters` runs
 * launch by launch with an event after each. Each iteration starts behind three graph replays
 * of the evaluation, so the host enqueues ahead of the GPU and the events measure GPU time; the
 * launch gaps a CUDA graph removes (about a microsecond each) remain in the figures. */
typedef struct drt_cuda_profile_launch {
  char name[80];  /* "cublasLt gemm MxNxK", the library routine a kernel calls, "elementwise", ... */
  char op[32];    /* the node's op */
  uint32_t node;  /* index in the graph's nodes */
  double ms;      /* mean GPU time */
  double flops;   /* GEMMs: 2*m*n*k*batch; else 0 */
  bool ran;       /* false: a node variant the executor did not choose (drt_cuda_launch.variant) */
} drt_cuda_profile_launch;
typedef struct drt_cuda_profile {
  drt_cuda_profile_launch *launches;
  size_t num_launches;
  double total_ms;
} drt_cuda_profile;
drt_status drt_cuda_executor_profile(drt_cuda_executor *e, int iters, drt_cuda_profile *out);
void drt_cuda_profile_free(drt_cuda_profile *p); /* NULL-safe */
/* After the stream of an enqueued evaluation has been synchronized: the first error of a HOST
 * fallback node since the last run / call (DRT_OK if none), handed to the caller and cleared (a
 * failed host node skips the later ones until then). */
drt_status drt_cuda_executor_take_host_error(drt_cuda_executor *e);
/* Enqueues a fixed runtime kernel of the module (DRT_CUDA_KERNEL_*) with 64-bit argument slots. */
drt_status drt_cuda_module_launch(drt_cuda_module *m, void *stream, const char *kernel, uint32_t grid, uint32_t block,
                                  const uint64_t *args, int num_args);

/* Device memory, copies and synchronization for callers that keep state on the device. */
drt_status drt_cuda_malloc(drt_cuda_context *ctx, uint64_t bytes, uint64_t *dptr);
void drt_cuda_free(drt_cuda_context *ctx, uint64_t dptr);
drt_status drt_cuda_memcpy_htod(drt_cuda_context *ctx, uint64_t dst, const void *src, uint64_t bytes, void *stream);
drt_status drt_cuda_memcpy_dtoh(drt_cuda_context *ctx, void *dst, uint64_t src, uint64_t bytes, void *stream);
drt_status drt_cuda_memcpy_dtod(drt_cuda_context *ctx, uint64_t dst, uint64_t src, uint64_t bytes, void *stream);
drt_status drt_cuda_stream_sync(drt_cuda_context *ctx, void *stream);

/* CUDA graphs: capture everything enqueued on `stream` between begin and end; launch replays. */
typedef struct drt_cuda_graph drt_cuda_graph;
drt_status drt_cuda_graph_begin(drt_cuda_context *ctx, void *stream);
drt_status drt_cuda_graph_end(drt_cuda_context *ctx, void *stream, drt_cuda_graph **out);
drt_status drt_cuda_graph_launch(drt_cuda_graph *g, void *stream);
void drt_cuda_graph_destroy(drt_cuda_graph *g); /* NULL-safe */

/* Timing with events: milliseconds of GPU time between two points of a stream. */
typedef struct drt_cuda_timer drt_cuda_timer;
drt_status drt_cuda_timer_create(drt_cuda_context *ctx, drt_cuda_timer **out);
drt_status drt_cuda_timer_start(drt_cuda_timer *t, void *stream);
drt_status drt_cuda_timer_stop(drt_cuda_timer *t, void *stream, double *ms); /* synchronizes */
void drt_cuda_timer_destroy(drt_cuda_timer *t);

drt_cuda_context *drt_cuda_module_context(const drt_cuda_module *m);
const drt_cuda_program *drt_cuda_module_program(const drt_cuda_module *m);

#endif
