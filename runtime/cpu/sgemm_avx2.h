/* Row-block SGEMM for small products with AVX2/FMA (runtime/cpu/sgemm_avx2.c), used by the
 * fused GEMM epilogues, fused attention, MatMul and Conv: C = alpha * A * B (+ C) for row-major,
 * untransposed A and B read in place (no packing). Pure, thread-safe: several
 * threads may compute disjoint row ranges of one C. */
#ifndef DRT_RUNTIME_CPU_SGEMM_AVX2_H
#define DRT_RUNTIME_CPU_SGEMM_AVX2_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/cpu/cpu.h"

/* Rows [r0, r1) of C[m x n] = alpha * A[m x k] B[k x n] (leading dimensions lda, ldb, ldc).
 * Returns false, computing nothing, when the CPU lacks AVX2/FMA. */
bool drt_sgemm_rows_avx2(const float *a, int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc, int64_t r0,
                         int64_t r1, int64_t n, int64_t k, float alpha);

/* The same with C += alpha * A B (C is read). */
bool drt_sgemm_rows_avx2_acc(const float *a, int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc,
                             int64_t r0, int64_t r1, int64_t n, int64_t k, float alpha);

/* C[m x n] = alpha * A[m x k] B[k x n] + beta * C, beta 0 or 1, blocks of rows spread over ctx's
 * pool. Returns false, computing nothing, when the CPU lacks AVX2/FMA or the shape is not one
 * this kernel is meant for (k > 512, n < 8, other betas): the caller uses BLAS then. */
bool drt_sgemm_avx2(drt_cpu_ctx *ctx, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                    const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

/* At most this many rows of C: drt_sgemm and drt_sgemm_serial use drt_sgemm_few_rows_avx2. */
#define DRT_SGEMM_FEW_ROWS 16

/* C[m x n] = alpha * op(A) op(B) + beta * C for m <= DRT_SGEMM_FEW_ROWS and any operand storage
 * (op(A): A[m][lda] or A stored [k][lda]; op(B): B[k][ldb] or B stored [n][ldb], packed into
 * k x 64 panels), column blocks spread over ctx's pool (NULL: the calling thread). Every element
 * is one FMA chain over k ascending, as in drt_sgemm_rows_avx2: the result of a row does not
 * depend on the other rows, on the storage of B, on threads or on the column's position, so a
 * classifier head with equal weight columns gets equal logits (BLAS kernels sum tail columns
 * in another order; with the 1e19 logits of ONNX's light_resnet50 that alone makes its softmax
 * non-uniform) and a batch of one gives the bits of that row in a batch of two. Returns false,
 * computing nothing, for other shapes or without AVX2/FMA. */
bool drt_sgemm_few_rows_avx2(drt_cpu_ctx *ctx, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                             const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                             int64_t ldc);

#endif
