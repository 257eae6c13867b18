/* Row-block SGEMM with AVX2/FMA (see sgemm_avx2.h).
 *
 * C[rows x n] = alpha * A[rows x k] B[k x n] for row-major A and B, both read in place: a
 * 6 x 16 register tile (12 accumulators) per step broadcasts six A values and loads 16 B
 * values (one 64-byte line) for twelve FMAs; partial tiles use masked loads and stores. For the
 * small, short-K products of diffusion models (linear layers, attention tiles, pointwise
 * convolutions: K up to a few hundred) this beats a BLAS call, which packs both operands and
 * clears C first. Callers split the rows into tasks and post-process each block of rows while
 * it is in cache. */
#include "runtime/cpu/sgemm_avx2.h"

#include "runtime/cpu/linalg.h" /* drt_cpu_has_avx2_fma */

#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "runtime/cpu/avx2_transpose.h"
#define HAVE_X86 1
#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define HAVE_X86 0
#endif

#if HAVE_X86
#define MR 6
#define NR 16

TARGET_AVX2 static inline __m256i lane_mask(int64_t n) {
  const int32_t idx[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_loadu_si256((const __m256i *)idx));
}

/* One rows x w tile (rows <= MR, w <= NR); `rows` is a literal at every call site. */
TARGET_AVX2 static inline __attribute__((always_inline)) void tile(int rows, bool accumulate, const float *a,
                                                                   int64_t lda, const float *b, int64_t ldb, int64_t k,
                                                                   float alpha, float *c, int64_t ldc, int64_t w) {
  __m256 acc[MR][2];
  for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  if (w == NR) {
    for (int64_t p = 0; p < k; p++) {
      __m256 b0 = _mm256_loadu_ps(b + p * ldb), b1 = _mm256_loadu_ps(b + p * ldb + 8);
      for (int r = 0; r < rows; r++) {
        __m256 av = _mm256_broadcast_ss(a + r * lda + p);
        acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
      }
    }
  } else {
    __m256i m0 = lane_mask(w), m1 = lane_mask(w - 8);
    for (int64_t p = 0; p < k; p++) {
      __m256 b0 = _mm256_maskload_ps(b + p * ldb, m0), b1 = _mm256_maskload_ps(b + p * ldb + 8, m1);
      for (int r = 0; r < rows; r++) {
        __m256 av = _mm256_broadcast_ss(a + r * lda + p);
        acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
      }
    }
  }
  __m256 al = _mm256_set1_ps(alpha);
  for (int r = 0; r < rows; r++) {
    if (alpha != 1.0f) {
      acc[r][0] = _mm256_mul_ps(acc[r][0], al);
      acc[r][1] = _mm256_mul_ps(acc[r][1], al);
    }
    if (w == NR) {
      if (accumulate) {
        acc[r][0] = _mm256_add_ps(acc[r][0], _mm256_loadu_ps(c + r * ldc));
        acc[r][1] = _mm256_add_ps(acc[r][1], _mm256_loadu_ps(c + r * ldc + 8));
      }
      _mm256_storeu_ps(c + r * ldc, acc[r][0]);
      _mm256_storeu_ps(c + r * ldc + 8, acc[r][1]);
    } else {
      __m256i m0 = lane_mask(w), m1 = lane_mask(w - 8);
      if (accumulate) {
        acc[r][0] = _mm256_add_ps(acc[r][0], _mm256_maskload_ps(c + r * ldc, m0));
        acc[r][1] = _mm256_add_ps(acc[r][1], _mm256_maskload_ps(c + r * ldc + 8, m1));
      }
      _mm256_maskstore_ps(c + r * ldc, m0, acc[r][0]);
      _mm256_maskstore_ps(c + r * ldc + 8, m1, acc[r][1]);
    }
  }
}

#define TILE_CASES(ACC)                                                             \
  switch (rows) {                                                                   \
    case 6: tile(6, ACC, ai, lda, b + j, ldb, k, alpha, ci + j, ldc, w); break;     \
    case 5: tile(5, ACC, ai, lda, b + j, ldb, k, alpha, ci + j, ldc, w); break;     \
    case 4: tile(4, ACC, ai, lda, b + j, ldb, k, alpha, ci + j, ldc, w); break;     \
    case 3: tile(3, ACC, ai, lda, b + j, ldb, k, alpha, ci + j, ldc, w); break;     \
    case 2: tile(2, ACC, ai, lda, b + j, ldb, k, alpha, ci + j, ldc, w); break;     \
    default: tile(1, ACC, ai, lda, b + j, ldb, k, alpha, ci + j, ldc, w); break;    \
  }

TARGET_AVX2 static void rows_avx2(const float *a, int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc,
                                  int64_t r0, int64_t r1, int64_t n, int64_t k, float alpha, bool accumulate) {
  for (int64_t i = r0; i < r1; i += MR) {
    int64_t rows = r1 - i < MR ? r1 - i : MR;
    const float *ai = a + i * lda;
    float *ci = c + i * ldc;
    for (int64_t j = 0; j < n; j += NR) {
      int64_t w = n - j < NR ? n - j : NR;
      if (accumulate)
        TILE_CASES(true)
      else
        TILE_CASES(false)
    }
  }
}
#endif

bool drt_sgemm_rows_avx2(const float *a, int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc, int64_t r0,
                         int64_t r1, int64_t n, int64_t k, float alpha) {
#if HAVE_X86
  if (!drt_cpu_has_avx2_fma()) return false;
  rows_avx2(a, lda, b, ldb, c, ldc, r0, r1, n, k, alpha, false);
  return true;
#else
  (void)a, (void)lda, (void)b, (void)ldb, (void)c, (void)ldc, (void)r0, (void)r1, (void)n, (void)k, (void)alpha;
  return false;
#endif
}


bool drt_sgemm_rows_avx2_acc(const float *a, int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc,
                             int64_t r0, int64_t r1, int64_t n, int64_t k, float alpha) {
#if HAVE_X86
  if (!drt_cpu_has_avx2_fma()) return false;
  rows_avx2(a, lda, b, ldb, c, ldc, r0, r1, n, k, alpha, true);
  return true;
#else
  (void)a, (void)lda, (void)b, (void)ldb, (void)c, (void)ldc, (void)r0, (void)r1, (void)n, (void)k, (void)alpha;
  return false;
#endif
}

/* ---- one row of C, any operand storage (drt_sgemv_avx2) ------------------------------------- */
#if HAVE_X86
/* c[j0 .. j0 + w) for B stored [n][ldb] (each column of C a row of B): eight columns at a time,
 * 8 x 8 blocks of B transposed in registers so that lane q accumulates column q with one FMA
 * chain over k ascending, from 0, as tile() does for B stored [k][ldb]: the same bits either way. */
TARGET_AVX2 static void gemv_bt(const float *a, const float *b, int64_t ldb, float *c, int64_t j0, int64_t w,
                                int64_t k, float alpha, float beta) {
  for (int64_t q0 = 0; q0 < w; q0 += 8) {
    const int nq = w - q0 < 8 ? (int)(w - q0) : 8;
    const float *row[8];
    for (int i = 0; i < 8; i++) row[i] = b + (j0 + q0 + (i < nq ? i : 0)) * ldb;
    __m256 acc = _mm256_setzero_ps();
    int64_t p = 0;
    for (; p + 8 <= k; p += 8) {
      __m256 t[8]; /* t[x] lane i = row i, element p + x */
      drt_avx2_transpose8(row, p, t);
      for (int x = 0; x < 8; x++) acc = _mm256_fmadd_ps(_mm256_broadcast_ss(a + p + x), t[x], acc);
    }
    for (; p < k; p++) {
      __m256 col = _mm256_setr_ps(row[0][p], row[1][p], row[2][p], row[3][p], row[4][p], row[5][p], row[6][p],
                                  row[7][p]);
      acc = _mm256_fmadd_ps(_mm256_broadcast_ss(a + p), col, acc);
    }
    if (alpha != 1.0f) acc = _mm256_mul_ps(acc, _mm256_set1_ps(alpha));
    float out[8];
    _mm256_storeu_ps(out, acc);
    for (int q = 0; q < nq; q++) {
      float *y = c + j0 + q0 + q;
      *y = beta == 0.0f ? out[q] : beta == 1.0f ? out[q] + *y : out[q] + beta * *y;
    }
  }
}

typedef struct gemv_job {
  const float *a, *b;
  float *c;
  int64_t n, k, ldb;
  float alpha, beta;
  bool tb;
} gemv_job;

#define GEMV_COLS 128 /* columns per task */

TARGET_AVX2 static void gemv_range(void *arg, int64_t begin, int64_t end) {
  const gemv_job *j = arg;
  for (int64_t blk = begin; blk < end; blk++) {
    const int64_t j0 = blk * GEMV_COLS, w = j->n - j0 < GEMV_COLS ? j->n - j0 : GEMV_COLS;
    if (j->tb) {
      gemv_bt(j->a, j->b, j->ldb, j->c, j0, w, j->k, j->alpha, j->beta);
    } else if (j->beta == 0.0f || j->beta == 1.0f) {
      rows_avx2(j->a, j->k, j->b + j0, j->ldb, j->c + j0, w, 0, 1, w, j->k, j->alpha, j->beta == 1.0f);
    } else {
      float t[GEMV_COLS];
      rows_avx2(j->a, j->k, j->b + j0, j->ldb, t, w, 0, 1, w, j->k, j->alpha, false);
      for (int64_t q = 0; q < w; q++) j->c[j0 + q] = t[q] + j->beta * j->c[j0 + q];
    }
  }
}
#endif

bool drt_sgemv_avx2(drt_cpu_ctx *ctx, bool trans_a, bool trans_b, int64_t n, int64_t k, float alpha, const float *a,
                    int64_t lda, const float *b, int64_t ldb, float beta, float *c) {
#if HAVE_X86
  if (n < 1 || k < 1 || !drt_cpu_has_avx2_fma()) return false;
  float *col = NULL;
  if (trans_a && lda != 1) { /* A stored as a column [k][lda]: contiguous copy */
    col = malloc((size_t)k * sizeof *col);
    if (!col) return false;
    for (int64_t p = 0; p < k; p++) col[p] = a[p * lda];
    a = col;
  }
  gemv_job j = {a, b, c, n, k, ldb, alpha, beta, trans_b};
  const int64_t blocks = (n + GEMV_COLS - 1) / GEMV_COLS;
  const int64_t grain = (int64_t)((double)(1 << 17) / ((double)GEMV_COLS * (double)k)) + 1;
  if (ctx) drt_parallel_for(ctx, blocks, grain, gemv_range, &j);
  else gemv_range(&j, 0, blocks);
  free(col);
  return true;
#else
  (void)ctx, (void)trans_a, (void)trans_b, (void)n, (void)k, (void)alpha, (void)a, (void)lda, (void)b, (void)ldb,
      (void)beta, (void)c;
  return false;
#endif
}

typedef struct rows_job {
  const float *a, *b;
  float *c;
  int64_t lda, ldb, ldc, m, n, k;
  float alpha;
  bool accumulate;
} rows_job;

#define JOB_ROWS 12

static void rows_range(void *arg, int64_t begin, int64_t end) {
  const rows_job *j = arg;
  int64_t r0 = begin * JOB_ROWS, r1 = end * JOB_ROWS < j->m ? end * JOB_ROWS : j->m;
  if (j->accumulate)
    drt_sgemm_rows_avx2_acc(j->a, j->lda, j->b, j->ldb, j->c, j->ldc, r0, r1, j->n, j->k, j->alpha);
  else
    drt_sgemm_rows_avx2(j->a, j->lda, j->b, j->ldb, j->c, j->ldc, r0, r1, j->n, j->k, j->alpha);
}

bool drt_sgemm_avx2(drt_cpu_ctx *ctx, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                    const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  if (k < 1 || k > 512 || n < 8 || m < 1 || (beta != 0.0f && beta != 1.0f) || !drt_cpu_has_avx2_fma()) return false;
  rows_job j = {a, b, c, lda, ldb, ldc, m, n, k, alpha, beta != 0.0f};
  double per_block = (double)JOB_ROWS * (double)n * (double)k;
  int64_t grain = (int64_t)((double)(1 << 17) / per_block) + 1;
  drt_parallel_for(ctx, (m + JOB_ROWS - 1) / JOB_ROWS, grain, rows_range, &j);
  return true;
}
