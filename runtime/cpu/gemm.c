/* GEMM through CBLAS (OpenBLAS from Debian). */
#include <cblas.h>

#include "runtime/cpu/cpu.h"

#ifdef DRT_HAVE_OPENBLAS
void openblas_set_num_threads(int);
int openblas_get_num_threads(void);
#endif

void drt_sgemm(drt_cpu_ctx *ctx, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
               const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
#ifdef DRT_HAVE_OPENBLAS
  int want = ctx && ctx->num_threads > 0 ? ctx->num_threads : 1;
  if (openblas_get_num_threads() != want) openblas_set_num_threads(want);
#else
  (void)ctx;
#endif
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n,
              (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}
