/* CPU backend: kernel interface, thread pool and helpers shared by the kernels.
 *
 * A kernel computes one node. Inputs and outputs are dense C-order tensors whose dtype and
 * shape equal the node's inferred value types; output buffers are allocated by the caller
 * (uninitialized). An omitted optional input has data == NULL. A kernel must not keep
 * pointers past its return, must not allocate anything it does not free, and reports bad
 * data (e.g. an out-of-range Gather index) as DRT_STATUS_INVALID_ARGUMENT.
 *
 * Floating point: a kernel entry lists in `float_dtypes` the float dtypes it computes
 * natively. When a node has float16/bfloat16/float64 inputs or outputs that the kernel does
 * not list, the executor converts those tensors to float32 before the call and converts the
 * outputs back after it (so most kernels only implement float32). Integer and bool dtypes
 * are never converted: a kernel that does not handle one returns DRT_STATUS_UNSUPPORTED. */
#ifndef DRT_RUNTIME_CPU_H
#define DRT_RUNTIME_CPU_H

#include "ir/graph.h"

typedef struct drt_threadpool drt_threadpool;

typedef struct drt_cpu_ctx {
  drt_threadpool *pool; /* may be NULL: run serially */
  int num_threads;
} drt_cpu_ctx;

typedef drt_status (*drt_cpu_kernel_fn)(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in,
                                        drt_tensor *out);

typedef struct drt_cpu_kernel_entry {
  drt_op op;
  drt_cpu_kernel_fn fn;
  uint32_t float_dtypes; /* DRT_DT_BIT mask of float dtypes computed natively */
} drt_cpu_kernel_entry;

/* Family tables, each terminated by {DRT_OP_COUNT_, NULL, 0}. */
extern const drt_cpu_kernel_entry drt_cpu_kernels_elementwise[]; /* runtime/cpu/elementwise.c */
extern const drt_cpu_kernel_entry drt_cpu_kernels_linalg[];      /* runtime/cpu/linalg.c */
extern const drt_cpu_kernel_entry drt_cpu_kernels_reduce[];      /* runtime/cpu/reduce.c */
extern const drt_cpu_kernel_entry drt_cpu_kernels_movement[];    /* runtime/cpu/movement.c */
extern const drt_cpu_kernel_entry drt_cpu_kernels_index[];       /* runtime/cpu/index.c */
extern const drt_cpu_kernel_entry drt_cpu_kernels_fused[];       /* runtime/cpu/fused.c (internal drt.* ops) */
extern const drt_cpu_kernel_entry drt_cpu_kernels_loss[];        /* runtime/cpu/loss.c */
extern const drt_cpu_kernel_entry drt_cpu_kernels_select[];      /* runtime/cpu/select.c */
extern const drt_cpu_kernel_entry drt_cpu_kernels_quantize[];    /* runtime/cpu/quantize.c */
extern const drt_cpu_kernel_entry drt_cpu_kernels_grid_sample[]; /* runtime/cpu/grid_sample.c */
extern const drt_cpu_kernel_entry drt_cpu_kernels_recurrent[];   /* runtime/cpu/recurrent.c */
extern const drt_cpu_kernel_entry drt_cpu_kernels_reorder[];     /* runtime/cpu/reorder.c */
extern const drt_cpu_kernel_entry drt_cpu_kernels_rnn[];         /* runtime/cpu/rnn.c */
extern const drt_cpu_kernel_entry drt_cpu_kernels_signal[];      /* runtime/cpu/signal.c */
extern const drt_cpu_kernel_entry drt_cpu_kernels_text[];        /* runtime/cpu/text.c */

const drt_cpu_kernel_entry *drt_cpu_kernel_find(drt_op op);

/* Runs one node with dtype promotion (see above). in/out as for kernels. */
drt_status drt_cpu_run_node(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);

/* ---- thread pool ---- */
drt_status drt_threadpool_create(int num_threads, drt_threadpool **out);
void drt_threadpool_destroy(drt_threadpool *p); /* NULL-safe */
/* Calls fn(arg, begin, end) over [0, n) split into chunks of at least `grain` items, on up
 * to ctx->num_threads threads; returns when all chunks are done. fn must be thread-safe. */
typedef void (*drt_range_fn)(void *arg, int64_t begin, int64_t end);
void drt_parallel_for(drt_cpu_ctx *ctx, int64_t n, int64_t grain, drt_range_fn fn, void *arg);

/* ---- BLAS ---- */
/* Row-major single-precision GEMM: C = alpha * op(A) * op(B) + beta * C.
 * op(A) is MxK, op(B) is KxN. Threads follow ctx->num_threads. */
void drt_sgemm(drt_cpu_ctx *ctx, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
               const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

/* Broadcast helper: strides (in elements) of `in` when broadcast to `out` (0 on broadcast
 * axes), right-aligned to out's rank. */
void drt_broadcast_strides(const drt_shape *in, const drt_shape *out, int64_t *strides);

#endif
