/* Private to runtime/cuda: the dlopen'ed libcuda / cuBLASLt symbol tables, the checking macros
 * that turn a CUresult / cublasStatus_t into a drt_status naming the call, file and line, and
 * the structures shared by driver.c, module.c, gemm.c and executor.c. Only included where
 * DRT_CUDA_ENABLED (runtime/cuda/enabled.h). */
#ifndef DRT_RUNTIME_CUDA_INTERNAL_H
#define DRT_RUNTIME_CUDA_INTERNAL_H

#include "runtime/cuda/enabled.h"

#ifdef DRT_CUDA_ENABLED
#include <cuda.h>
#include <cublasLt.h>

#include "runtime/cuda/cuda.h"
#include "runtime/cuda/select.h"

typedef struct drt_cu_api {
#define DRT_CU_SYM(name, ret, params) ret(CUDAAPI *name) params;
#include "runtime/cuda/symbols.def"
} drt_cu_api;

typedef struct drt_lt_api {
#define DRT_CUBLASLT_SYM(name, ret, params) ret(CUBLASWINAPI *name) params;
#include "runtime/cuda/symbols.def"
} drt_lt_api;

/* Filled once by the first successful drt_cuda_context_acquire, never unloaded. */
extern drt_cu_api drt_cu;
extern drt_lt_api drt_lt;

drt_status drt_cu_check(CUresult r, const char *call, const char *file, int line);
drt_status drt_lt_check(cublasStatus_t r, const char *call, const char *file, int line);

/* DRT_CU_CALL(cuMemAlloc_v2, (&p, n)) -> NULL or "cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY
 * (out of memory) at file:line" */
#define DRT_CU_CALL(fn, args) drt_cu_check(drt_cu.fn args, #fn, __FILE__, __LINE__)
#define DRT_LT_CALL(fn, args) drt_lt_check(drt_lt.fn args, #fn, __FILE__, __LINE__)

struct drt_cuda_context {
  int refs; /* under the process-wide context lock */
  int ordinal;
  CUdevice dev;
  CUcontext cu;
  drt_cuda_device_info info;
  int max_smem_optin;
  cublasLtHandle_t lt; /* NULL when cuBLASLt could not be loaded (lt_error says why) */
  char lt_error[768];
  struct drt_cuda_context *next;
};

/* Makes the context current on the calling thread (every entry point calls it). */
drt_status drt_cuda_ctx_enter(drt_cuda_context *ctx);
/* DRT_STATUS_UNAVAILABLE explaining why cuBLASLt is missing, or OK. */
drt_status drt_cuda_ctx_require_lt(drt_cuda_context *ctx);

struct drt_cuda_module {
  drt_cuda_context *ctx; /* holds a reference */
  const drt_cuda_program *prog;
  CUmodule mod;
  char arch[16];
  CUfunction *funcs;     /* per program kernel */
  int *func_max_threads; /* CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK */
  CUdeviceptr weights;   /* every uploaded constant, 256-aligned inside */
  uint64_t weights_bytes;
  size_t map_cap; /* open addressing: drt_value* -> device address */
  const drt_value **map_keys;
  CUdeviceptr *map_vals;
};

/* Device address of constant v in storage dtype, 0 when the module did not upload it. */
CUdeviceptr drt_cuda_module_const(const drt_cuda_module *m, const drt_value *v);

/* ---- cuBLASLt GEMMs (gemm.c): descriptors and heuristic algorithm cached per geometry ---------- */
#define DRT_CUDA_LT_MAX_ALGOS 16 /* heuristic candidates timed per GEMM geometry: more chances for split-K kernels on small GEMMs */
typedef struct drt_cuda_lt_entry {
  uint64_t key;
  cublasLtMatmulDesc_t desc;
  cublasLtMatrixLayout_t a, b, c, d;
  cublasLtMatmulAlgo_t algo; /* the one used: the heuristic's first, then the fastest measured */
  cublasLtMatmulAlgo_t cand[DRT_CUDA_LT_MAX_ALGOS]; /* heuristic candidates, best first */
  int num_cand;
  bool tuned; /* candidates timed (or nothing to time) */
  bool has_bias;
} drt_cuda_lt_entry;

typedef struct drt_cuda_lt_cache {
  size_t n, cap;
  drt_cuda_lt_entry *e;
} drt_cuda_lt_cache;

/* The cache entry for problem p (created on first use): alignment of the operands' addresses in
 * bytes (a, b, c, d of the column-major problem), workspace size for the heuristic. */
drt_status drt_cuda_lt_get(drt_cuda_context *ctx, drt_cuda_lt_cache *cache, const drt_cuda_lt_problem *p, bool tf32,
                           drt_dtype bias_type, const uint32_t align[4], uint64_t workspace_bytes, int *entry);
/* Enqueues D = alpha op(A) op(B) + beta C (+ bias, epilogue) with addresses of the column-major
 * problem (A is the row-major B, see select.h). */
drt_status drt_cuda_lt_run(drt_cuda_context *ctx, drt_cuda_lt_cache *cache, int entry, const drt_cuda_lt_problem *p,
                           CUdeviceptr a, CUdeviceptr b, CUdeviceptr c, CUdeviceptr d, CUdeviceptr bias,
                           CUdeviceptr workspace, uint64_t workspace_bytes, CUstream stream);
void drt_cuda_lt_cache_free(drt_cuda_lt_cache *cache);
/* Whether entry's candidates have been timed (or there was nothing to time). */
static inline bool drt_cuda_lt_tuned(const drt_cuda_lt_cache *cache, int entry) {
  return entry < 0 || (size_t)entry >= cache->n || cache->e[entry].tuned;
}

/* Largest power of two (<= 256) dividing addr. */
static inline uint32_t drt_cuda_alignment(uint64_t addr) {
  uint32_t a = 256;
  while (a > 1 && addr % a) a >>= 1;
  return a;
}

#endif /* DRT_CUDA_ENABLED */
#endif
