/* Pure decisions of the CUDA runtime, kept free of CUDA types so that they are unit-tested on
 * machines without a GPU or toolkit (tests/unit/test_cuda_runtime.c). Private to runtime/cuda. */
#ifndef DRT_RUNTIME_CUDA_SELECT_H
#define DRT_RUNTIME_CUDA_SELECT_H

#include <stdbool.h>
#include <stdint.h>

#include "codegen/codegen.h"
#include "runtime/plan.h"

/* Parses "sm_90", "sm_90a", "compute_86", "sm_100f" into the arch number (90), whether it is PTX
 * and whether it is arch-specific ('a': runs only on exactly that compute capability). */
bool drt_cuda_parse_arch(const char *arch, int *number, bool *ptx, bool *specific);

/* Picks the image of `bins` for a device of compute capability major.minor: the cubin
 * sm_<major><minor>; else the cubin of the same major with the highest lower minor; else the PTX
 * compute_XY with the highest XY <= the device's (JIT-compiled by the driver). *index receives
 * the image. DRT_STATUS_UNSUPPORTED naming the device (`device_name`, may be NULL), its arch and
 * the plan's archs when none fits. */
drt_status drt_cuda_select_image(const drt_plan_cuda *bins, int major, int minor, const char *device_name,
                                 uint32_t *index);

/* One matrix operand as cuBLASLt sees it: column-major rows x cols with leading dimension ld and
 * the distance between batch items, in elements. */
typedef struct drt_cuda_lt_layout {
  drt_dtype type;
  uint64_t rows, cols;
  int64_t ld;
  int64_t batch_stride;
} drt_cuda_lt_layout;

/* A row-major drt_cuda_gemm mapped to cuBLASLt's column-major convention. A row-major matrix X
 * with row stride ldx is, read column-major, X^T with leading dimension ldx, so
 * D = op(A) op(B) becomes D^T = op(B)^T op(A)^T: cuBLASLt's A operand is the gemm's B (`lt_a_is_b`
 * is always true), its B operand the gemm's A, and the problem size is (m, n, k) = (g.n, g.m, g.k).
 * The bias (length g.n, broadcast over the rows of the row-major D) becomes cuBLASLt's bias over
 * the rows of D^T (length m of the column-major problem), which is what its BIAS epilogues do.
 * When g.c is NONE, c is D's layout (beta is then 0 and C is not read). */
typedef struct drt_cuda_lt_problem {
  uint64_t m, n, k;
  int32_t batch;
  bool trans_a, trans_b; /* cuBLASLt's transa/transb (CUBLAS_OP_T when true) */
  drt_cuda_lt_layout a, b, c, d;
  bool lt_a_is_b;
  bool has_c;
  float alpha, beta;
  uint8_t epilogue; /* drt_cuda_gemm_epilogue */
} drt_cuda_lt_problem;

/* Validates g (positive sizes, leading dimensions that hold a row, batch within int32, a C
 * operand whenever beta != 0) and fills out. */
drt_status drt_cuda_gemm_to_lt(const drt_cuda_gemm *g, drt_cuda_lt_problem *out);

#endif
