/* Internals of the CPU linalg family, shared by runtime/cpu/{gemm,linalg,conv,pool}.c only:
 * the batched GEMM helper and the kernel functions that linalg.c lists in its table. */
#ifndef DRT_RUNTIME_CPU_LINALG_H
#define DRT_RUNTIME_CPU_LINALG_H

#include "runtime/cpu/cpu.h"

/* Row-major double-precision GEMM, same contract as drt_sgemm (blocks of C computed in
 * parallel on ctx's pool, BLAS single-threaded). */
void drt_dgemm(drt_cpu_ctx *ctx, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
               const double *a, int64_t lda, const double *b, int64_t ldb, double beta, double *c, int64_t ldc);

/* `count` GEMMs of the same geometry, C[i] = alpha * op(A[i]) op(B[i]) + beta * C[i], in
 * float32 or float64 (dtype). The pointer arrays hold one pointer per GEMM; distinct C[i]
 * must not overlap. Small GEMMs run in parallel over the batch on the thread pool, one
 * single-threaded BLAS call each; large ones run one after another, each split over the pool
 * like drt_sgemm. BLAS itself never runs threads (see runtime/cpu/gemm.c). */
typedef struct drt_gemm_batch {
  drt_dtype dtype; /* FLOAT32 or FLOAT64 */
  bool trans_a, trans_b;
  int64_t m, n, k;
  double alpha, beta;
  int64_t lda, ldb, ldc;
  int64_t count;
  const void *const *a;
  const void *const *b;
  void *const *c;
} drt_gemm_batch;
void drt_gemm_batch_run(drt_cpu_ctx *ctx, const drt_gemm_batch *p);

/* Single-threaded GEMM for use inside drt_parallel_for workers (call drt_blas_threads_for_workers
 * first from the calling thread). */
void drt_sgemm_serial(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                      int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
/* Makes BLAS single-threaded so that several pool workers can call it at once. The next
 * drt_sgemm/drt_dgemm restores the context's thread count. */
void drt_blas_threads_for_workers(void);

/* A convolution with spatial dims normalized to 3 (leading dims of size 1). */
typedef struct drt_conv_desc {
  int64_t n, c, m, group; /* batch, input channels, output channels, groups */
  int64_t in[3], out[3], k[3], stride[3], dil[3], pad[3]; /* pad: leading pads */
  const float *x, *w, *bias; /* bias may be NULL */
  float *y;
} drt_conv_desc;

/* True when the CPU runs AVX2 and FMA code (runtime/cpu/conv_avx2.c). Thread-safe. */
bool drt_cpu_has_avx2_fma(void);

/* Hot loops are compiled twice: for the baseline target and, on x86, for AVX2/FMA
 * (DRT_TARGET_AVX2 on a wrapper that inlines the DRT_INLINE body); callers pick with
 * drt_cpu_has_avx2_fma(). */
#if defined(__x86_64__) || defined(__i386__)
#define DRT_HAVE_X86_CLONES 1
#define DRT_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define DRT_HAVE_X86_CLONES 0
#define DRT_TARGET_AVX2
#endif
#define DRT_INLINE static inline __attribute__((always_inline))

/* Direct convolution with AVX2/FMA (runtime/cpu/conv_avx2.c). Sets *done = false
 * (and does nothing) when the CPU lacks AVX2/FMA or a stride is not 1. */
drt_status drt_conv_avx2(drt_cpu_ctx *ctx, const drt_conv_desc *d, bool *done);
/* Depthwise (c == group), stride 1, AVX2/FMA; *done = false when not applicable. */
drt_status drt_conv_depthwise_avx2(drt_cpu_ctx *ctx, const drt_conv_desc *d, bool *done);

/* Kernels (runtime/cpu/conv.c, runtime/cpu/pool.c). */
drt_status drt_cpu_conv(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);
drt_status drt_cpu_conv_transpose(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);
drt_status drt_cpu_max_pool(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);
drt_status drt_cpu_average_pool(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);
drt_status drt_cpu_lp_pool(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);
drt_status drt_cpu_global_average_pool(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);
drt_status drt_cpu_global_max_pool(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);

#endif
