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

/* ---- few rows of C, any operand storage (drt_sgemm_few_rows_avx2) ------------------------------ */
#if HAVE_X86
typedef struct few_job {
  bool ta, tb;
  int64_t m, n, k, lda, ldb, ldc;
  float alpha, beta;
  const float *a; /* [m][k] (packed when A was transposed) */
  const float *b;
  float *c;
} few_job;

#define FEW_COLS 64 /* columns per task: a packed B^T panel of k x 64 floats */

/* Columns [j0, j0 + w) of every row: B^T packed into [k][w] when B is stored [n][ldb], then the
 * row-block kernel; beta other than 0 / 1 through a buffer. */
TARGET_AVX2 static bool few_block(const few_job *j, int64_t j0, int64_t w, float *panel) {
  const float *b = j->b + j0;
  int64_t ldb = j->ldb;
  if (j->tb) {
    for (int64_t p = 0; p < j->k; p++)
      for (int64_t q = 0; q < w; q++) panel[p * w + q] = j->b[(j0 + q) * j->ldb + p];
    b = panel;
    ldb = w;
  }
  if (j->beta == 0.0f || j->beta == 1.0f) {
    rows_avx2(j->a, j->k, b, ldb, j->c + j0, j->ldc, 0, j->m, w, j->k, j->alpha, j->beta == 1.0f);
    return true;
  }
  float t[16 * FEW_COLS];
  rows_avx2(j->a, j->k, b, ldb, t, w, 0, j->m, w, j->k, j->alpha, false);
  for (int64_t r = 0; r < j->m; r++)
    for (int64_t q = 0; q < w; q++) j->c[r * j->ldc + j0 + q] = t[r * w + q] + j->beta * j->c[r * j->ldc + j0 + q];
  return true;
}

TARGET_AVX2 static void few_range(void *arg, int64_t begin, int64_t end) {
  const few_job *j = arg;
  float *panel = j->tb ? malloc((size_t)j->k * FEW_COLS * sizeof *panel) : NULL;
  for (int64_t blk = begin; blk < end; blk++) {
    const int64_t j0 = blk * FEW_COLS, w = j->n - j0 < FEW_COLS ? j->n - j0 : FEW_COLS;
    if (j->tb && !panel) { /* out of memory for the panel: gather B^T column by column */
      for (int64_t q = 0; q < w; q++) {
        for (int64_t r = 0; r < j->m; r++) {
          float acc = 0.0f;
          for (int64_t p = 0; p < j->k; p++) acc = __builtin_fmaf(j->a[r * j->k + p], j->b[(j0 + q) * j->ldb + p], acc);
          if (j->alpha != 1.0f) acc *= j->alpha;
          float *cc = &j->c[r * j->ldc + j0 + q];
          *cc = j->beta == 0.0f ? acc : j->beta == 1.0f ? acc + *cc : acc + j->beta * *cc;
        }
      }
      continue;
    }
    few_block(j, j0, w, panel);
  }
  free(panel);
}
#endif

bool drt_sgemm_few_rows_avx2(drt_cpu_ctx *ctx, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                             const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                             int64_t ldc) {
#if HAVE_X86
  if (m < 1 || m > DRT_SGEMM_FEW_ROWS || n < 1 || k < 1 || !drt_cpu_has_avx2_fma()) return false;
  float *ap = NULL;
  if (trans_a || lda != k) { /* A as [m][k], contiguous */
    ap = malloc((size_t)(m * k) * sizeof *ap);
    if (!ap) return false;
    for (int64_t r = 0; r < m; r++)
      for (int64_t p = 0; p < k; p++) ap[r * k + p] = trans_a ? a[p * lda + r] : a[r * lda + p];
    a = ap;
  }
  few_job j = {trans_a, trans_b, m, n, k, lda, ldb, ldc, alpha, beta, a, b, c};
  const int64_t blocks = (n + FEW_COLS - 1) / FEW_COLS;
  const int64_t grain = (int64_t)((double)(1 << 17) / ((double)FEW_COLS * (double)k * (double)m)) + 1;
  if (ctx) drt_parallel_for(ctx, blocks, grain, few_range, &j);
  else few_range(&j, 0, blocks);
  free(ap);
  return true;
#else
  (void)ctx, (void)trans_a, (void)trans_b, (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda, (void)b,
      (void)ldb, (void)beta, (void)c, (void)ldc;
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
