/* GEMM through CBLAS (OpenBLAS from Debian), always single-threaded inside BLAS: a large GEMM
 * is split into column (or row) blocks over the runtime's thread pool, and a batch of small
 * GEMMs is spread over the pool whole. */
#include <cblas.h>

#include "runtime/cpu/linalg.h"
#include "runtime/cpu/sgemm_avx2.h"

#ifdef DRT_HAVE_OPENBLAS
void openblas_set_num_threads(int);
int openblas_get_num_threads(void);
#endif

void drt_blas_threads_for_workers(void) {
#ifdef DRT_HAVE_OPENBLAS
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
#endif
}

/* C = beta * C for an empty inner dimension (BLAS rejects lda = 0). */
#define SCALE_ONLY(T)                                                  \
  do {                                                                 \
    for (int64_t i_ = 0; i_ < m; i_++)                                 \
      for (int64_t j_ = 0; j_ < n; j_++)                               \
        c[i_ * ldc + j_] = beta == 0 ? (T)0 : (T)(beta * c[i_ * ldc + j_]); \
  } while (0)

void drt_sgemm_serial(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                      int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    SCALE_ONLY(float);
    return;
  }
  if (m == 1 && drt_sgemv_avx2(NULL, trans_a, trans_b, n, k, alpha, a, lda, b, ldb, beta, c)) return;
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n,
              (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

static void dgemm_serial(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double *a,
                         int64_t lda, const double *b, int64_t ldb, double beta, double *c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    SCALE_ONLY(double);
    return;
  }
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n,
              (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

/* One GEMM split into column (or row) blocks, each a single-threaded BLAS call on a pool
 * thread: BLAS never starts threads of its own, so the runtime has one set of threads and
 * no two pools spin against each other. */
typedef struct split_gemm {
  drt_dtype dtype;
  bool trans_a, trans_b, by_cols;
  int64_t m, n, k, lda, ldb, ldc, chunk;
  double alpha, beta;
  const void *a, *b;
  void *c;
} split_gemm;

static void split_range(void *arg, int64_t begin, int64_t end) {
  const split_gemm *p = arg;
  size_t es = p->dtype == DRT_DTYPE_FLOAT64 ? 8 : 4;
  for (int64_t part = begin; part < end; part++) {
    int64_t lo = part * p->chunk, hi = lo + p->chunk;
    if (p->by_cols) {
      if (hi > p->n) hi = p->n;
      if (lo >= hi) continue;
      /* columns [lo, hi) of op(B) and C */
      const char *b = (const char *)p->b + (size_t)(p->trans_b ? lo * p->ldb : lo) * es;
      char *c = (char *)p->c + (size_t)lo * es;
      if (p->dtype == DRT_DTYPE_FLOAT64)
        dgemm_serial(p->trans_a, p->trans_b, p->m, hi - lo, p->k, p->alpha, p->a, p->lda, (const double *)b, p->ldb,
                     p->beta, (double *)c, p->ldc);
      else
        drt_sgemm_serial(p->trans_a, p->trans_b, p->m, hi - lo, p->k, (float)p->alpha, p->a, p->lda,
                         (const float *)b, p->ldb, (float)p->beta, (float *)c, p->ldc);
    } else {
      if (hi > p->m) hi = p->m;
      if (lo >= hi) continue;
      /* rows [lo, hi) of op(A) and C */
      const char *a = (const char *)p->a + (size_t)(p->trans_a ? lo : lo * p->lda) * es;
      char *c = (char *)p->c + (size_t)(lo * p->ldc) * es;
      if (p->dtype == DRT_DTYPE_FLOAT64)
        dgemm_serial(p->trans_a, p->trans_b, hi - lo, p->n, p->k, p->alpha, (const double *)a, p->lda, p->b, p->ldb,
                     p->beta, (double *)c, p->ldc);
      else
        drt_sgemm_serial(p->trans_a, p->trans_b, hi - lo, p->n, p->k, (float)p->alpha, (const float *)a, p->lda,
                         p->b, p->ldb, (float)p->beta, (float *)c, p->ldc);
    }
  }
}

/* Below this many multiply-adds a GEMM runs on the calling thread. */
#define SPLIT_MIN_WORK (1 << 18)

static void gemm_parallel(drt_cpu_ctx *ctx, split_gemm *p) {
  if (p->m <= 0 || p->n <= 0) return;
  drt_blas_threads_for_workers();
  int threads = ctx && ctx->pool ? ctx->num_threads : 1;
  double work = (double)p->m * (double)p->n * (double)(p->k > 0 ? p->k : 1);
  int64_t parts = threads;
  if (work < (double)SPLIT_MIN_WORK * 2) parts = 1;
  /* split the longer side, in blocks that keep the BLAS micro-kernels full */
  p->by_cols = p->n >= p->m;
  int64_t len = p->by_cols ? p->n : p->m, align = p->by_cols ? 16 : 8;
  if (parts > len / align) parts = len / align > 0 ? len / align : 1;
  p->chunk = (len + parts - 1) / parts;
  p->chunk = (p->chunk + align - 1) / align * align;
  parts = (len + p->chunk - 1) / p->chunk;
  if (parts <= 1) {
    p->by_cols = true;
    p->chunk = p->n;
    split_range(p, 0, 1);
    return;
  }
  drt_parallel_for(ctx, parts, 1, split_range, p);
}

void drt_sgemm(drt_cpu_ctx *ctx, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
               const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  /* one row: every column summed alike (see drt_sgemv_avx2) */
  if (m == 1 && k > 0 && drt_sgemv_avx2(ctx, trans_a, trans_b, n, k, alpha, a, lda, b, ldb, beta, c)) return;
  split_gemm p = {DRT_DTYPE_FLOAT32, trans_a, trans_b, true, m, n, k, lda, ldb, ldc, 0, alpha, beta, a, b, c};
  gemm_parallel(ctx, &p);
}

void drt_dgemm(drt_cpu_ctx *ctx, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
               const double *a, int64_t lda, const double *b, int64_t ldb, double beta, double *c, int64_t ldc) {
  split_gemm p = {DRT_DTYPE_FLOAT64, trans_a, trans_b, true, m, n, k, lda, ldb, ldc, 0, alpha, beta, a, b, c};
  gemm_parallel(ctx, &p);
}

static void one_gemm(const drt_gemm_batch *p, int64_t i) {
  if (p->dtype == DRT_DTYPE_FLOAT64)
    dgemm_serial(p->trans_a, p->trans_b, p->m, p->n, p->k, p->alpha, p->a[i], p->lda, p->b[i], p->ldb, p->beta,
                 p->c[i], p->ldc);
  else
    drt_sgemm_serial(p->trans_a, p->trans_b, p->m, p->n, p->k, (float)p->alpha, p->a[i], p->lda, p->b[i], p->ldb,
                     (float)p->beta, p->c[i], p->ldc);
}

static void batch_range(void *arg, int64_t begin, int64_t end) {
  const drt_gemm_batch *p = arg;
  for (int64_t i = begin; i < end; i++) one_gemm(p, i);
}

void drt_gemm_batch_run(drt_cpu_ctx *ctx, const drt_gemm_batch *p) {
  if (p->count <= 0 || p->m <= 0 || p->n <= 0) return;
  int threads = ctx && ctx->pool ? ctx->num_threads : 1;
  double work = (double)p->m * (double)p->n * (double)(p->k > 0 ? p->k : 1);
  /* Spread over the batch when every thread gets whole GEMMs and the GEMMs are small enough
   * that splitting each one would not scale well. */
  bool by_batch = threads > 1 && p->count >= threads &&
                  (p->count % threads == 0 || p->count >= 4 * threads || work < (double)(1 << 21));
  if (by_batch) {
    drt_blas_threads_for_workers();
    drt_parallel_for(ctx, p->count, 1, batch_range, (void *)p);
    return;
  }
  for (int64_t i = 0; i < p->count; i++) {
    split_gemm sg = {p->dtype, p->trans_a, p->trans_b, true, p->m, p->n, p->k, p->lda, p->ldb, p->ldc, 0,
                     p->alpha, p->beta, p->a[i], p->b[i], p->c[i]};
    gemm_parallel(ctx, &sg);
  }
}
