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

/* One row of C: c[n] = alpha * op(A)[1 x k] op(B)[k x n] + beta * c (op(A): A, or A stored as a
 * column [k][lda]; op(B): B[k][ldb], or B stored [n][ldb], read in 8 x 8 blocks transposed in
 * registers), column blocks spread over ctx's pool (NULL: the calling thread). Every element is one
 * FMA chain over k ascending, as in drt_sgemm_rows_avx2, so the result does not depend on how B
 * is stored, on threads or on the column's position: a classifier head whose weight columns are
 * equal gets equal logits (BLAS kernels sum their tail columns in another order; with the 1e19
 * logits of ONNX's light_resnet50 that alone makes the softmax non-uniform), and a fused GEMM
 * (B^T on the row-block kernel) gives the bits of the unfused one. Only for one row: beyond,
 * BLAS's packed kernels are 1.1-3.5x faster on this kind of kernel. Returns false, computing
 * nothing, without AVX2/FMA. */
bool drt_sgemv_avx2(drt_cpu_ctx *ctx, bool trans_a, bool trans_b, int64_t n, int64_t k, float alpha, const float *a,
                    int64_t lda, const float *b, int64_t ldb, float beta, float *c);

#endif
