/* Image selection and the row-major -> column-major GEMM mapping (runtime/cuda/select.h). */
#include "runtime/cuda/select.h"

#include <stdio.h>
#include <string.h>

bool drt_cuda_parse_arch(const char *arch, int *number, bool *ptx, bool *specific) {
  const char *p;
  if (strncmp(arch, "sm_", 3) == 0) {
    *ptx = false;
    p = arch + 3;
  } else if (strncmp(arch, "compute_", 8) == 0) {
    *ptx = true;
    p = arch + 8;
  } else {
    return false;
  }
  int v = 0, digits = 0;
  while (*p >= '0' && *p <= '9' && digits < 4) v = v * 10 + (*p++ - '0'), digits++;
  if (digits < 2) return false;
  *specific = false;
  if (*p == 'a') {
    *specific = true;
    p++;
  } else if (*p == 'f') {
    p++;
  }
  if (*p) return false;
  *number = v;
  return true;
}

drt_status drt_cuda_select_image(const drt_plan_cuda *bins, int major, int minor, const char *device_name,
                                 uint32_t *index) {
  int dev = major * 10 + minor;
  if (dev < DRT_CUDA_MIN_SM)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED,
                     "this GPU (%s, compute capability %d.%d) is older than distilrt's CUDA backend supports "
                     "(%d.%d and newer: Ampere, Ada, Hopper, ...); run the plan on the CPU backend",
                     device_name && device_name[0] ? device_name : "device", major, minor, DRT_CUDA_MIN_SM / 10,
                     DRT_CUDA_MIN_SM % 10);
  int exact = -1, lower = -1, lower_num = -1, ptx = -1, ptx_num = -1;
  uint32_t n = bins->num_images < DRT_PLAN_MAX_CUDA_IMAGES ? bins->num_images : DRT_PLAN_MAX_CUDA_IMAGES;
  for (uint32_t i = 0; i < n; i++) {
    const drt_plan_cuda_image *im = &bins->images[i];
    int num;
    bool is_ptx, specific;
    if (!im->data || im->size == 0 || !drt_cuda_parse_arch(im->arch, &num, &is_ptx, &specific)) continue;
    if (specific && num != dev) continue;
    if (!is_ptx) {
      if (num == dev) {
        /* prefer the portable cubin over an arch-specific one of the same number (either runs) */
        if (exact < 0 || !specific) exact = (int)i;
      } else if (num / 10 == major && num % 10 < minor && num > lower_num) {
        lower = (int)i;
        lower_num = num;
      }
    } else if (num <= dev && num > ptx_num) {
      ptx = (int)i;
      ptx_num = num;
    }
  }
  int pick = exact >= 0 ? exact : lower >= 0 ? lower : ptx;
  if (pick >= 0) {
    *index = (uint32_t)pick;
    return DRT_OK;
  }
  char list[DRT_PLAN_MAX_CUDA_IMAGES * 18 + 8];
  size_t len = 0;
  list[0] = 0;
  for (uint32_t i = 0; i < n; i++) {
    int w = snprintf(list + len, sizeof list - len, "%s%.15s", i ? ", " : "", bins->images[i].arch);
    if (w < 0 || (size_t)w >= sizeof list - len) break;
    len += (size_t)w;
  }
  return DRT_ERROR(DRT_STATUS_UNSUPPORTED,
                   "the plan has no CUDA binary for this GPU (%s, sm_%d%d): it was compiled for %s; recompile it "
                   "with drt compile --target cuda --arch sm_%d%d",
                   device_name && device_name[0] ? device_name : "device", major, minor, n ? list : "no architecture",
                   major, minor);
}

static bool gemm_float_type(drt_dtype t) {
  return t == DRT_DTYPE_FLOAT32 || t == DRT_DTYPE_FLOAT16 || t == DRT_DTYPE_BFLOAT16;
}

drt_status drt_cuda_gemm_to_lt(const drt_cuda_gemm *g, drt_cuda_lt_problem *out) {
  memset(out, 0, sizeof *out);
  if (g->m <= 0 || g->n <= 0 || g->k <= 0 || g->batch <= 0 || g->batch > INT32_MAX)
    return DRT_ERROR(DRT_STATUS_INTERNAL, "GEMM has sizes m=%lld n=%lld k=%lld batch=%lld", (long long)g->m,
                     (long long)g->n, (long long)g->k, (long long)g->batch);
  /* widths of the stored rows */
  int64_t wa = g->trans_a ? g->m : g->k, wb = g->trans_b ? g->k : g->n;
  if (g->lda < wa || g->ldb < wb || g->ldd < g->n || (g->c.kind != DRT_CUDA_ARG_NONE && g->ldc < g->n))
    return DRT_ERROR(DRT_STATUS_INTERNAL, "GEMM leading dimensions lda=%lld ldb=%lld ldc=%lld ldd=%lld do not hold "
                     "rows of %lld, %lld and %lld elements", (long long)g->lda, (long long)g->ldb,
                     (long long)g->ldc, (long long)g->ldd, (long long)wa, (long long)wb, (long long)g->n);
  if (g->stride_a < 0 || g->stride_b < 0 || g->stride_c < 0 || g->stride_d < 0)
    return DRT_ERROR(DRT_STATUS_INTERNAL, "GEMM has a negative batch stride");
  if (g->beta != 0.0f && g->c.kind == DRT_CUDA_ARG_NONE)
    return DRT_ERROR(DRT_STATUS_INTERNAL, "GEMM has beta=%g but no C operand", (double)g->beta);
  if (!gemm_float_type(g->a_type) || !gemm_float_type(g->b_type) || !gemm_float_type(g->d_type) ||
      (g->c.kind != DRT_CUDA_ARG_NONE && !gemm_float_type(g->c_type)))
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "GEMM operand types %s x %s -> %s: cuBLASLt GEMMs take float32, "
                     "float16 or bfloat16", drt_dtype_name(g->a_type), drt_dtype_name(g->b_type),
                     drt_dtype_name(g->d_type));
  if (g->epilogue > DRT_CUDA_EPI_RELU_BIAS)
    return DRT_ERROR(DRT_STATUS_INTERNAL, "GEMM epilogue %u", (unsigned)g->epilogue);
  bool needs_bias = g->epilogue == DRT_CUDA_EPI_BIAS || g->epilogue == DRT_CUDA_EPI_GELU_BIAS ||
                    g->epilogue == DRT_CUDA_EPI_RELU_BIAS;
  if (needs_bias && g->bias.kind == DRT_CUDA_ARG_NONE)
    return DRT_ERROR(DRT_STATUS_INTERNAL, "GEMM bias epilogue without a bias operand");
  out->m = (uint64_t)g->n;
  out->n = (uint64_t)g->m;
  out->k = (uint64_t)g->k;
  out->batch = (int32_t)g->batch;
  out->lt_a_is_b = true;
  /* cuBLASLt's A: the row-major B. Stored [k, n] (not transposed) reads column-major as n x k =
   * B^T, which is op(B)^T directly (op N); stored [n, k] it reads as k x n and needs op T. */
  out->trans_a = g->trans_b;
  out->a.type = g->b_type;
  out->a.rows = (uint64_t)(g->trans_b ? g->k : g->n);
  out->a.cols = (uint64_t)(g->trans_b ? g->n : g->k);
  out->a.ld = g->ldb;
  out->a.batch_stride = g->stride_b;
  /* cuBLASLt's B: the row-major A. Stored [m, k] it reads as k x m = op(A)^T (op N). */
  out->trans_b = g->trans_a;
  out->b.type = g->a_type;
  out->b.rows = (uint64_t)(g->trans_a ? g->m : g->k);
  out->b.cols = (uint64_t)(g->trans_a ? g->k : g->m);
  out->b.ld = g->lda;
  out->b.batch_stride = g->stride_a;
  out->d.type = g->d_type;
  out->d.rows = (uint64_t)g->n;
  out->d.cols = (uint64_t)g->m;
  out->d.ld = g->ldd;
  out->d.batch_stride = g->stride_d;
  out->has_c = g->c.kind != DRT_CUDA_ARG_NONE;
  if (out->has_c) {
    out->c.type = g->c_type;
    out->c.rows = (uint64_t)g->n;
    out->c.cols = (uint64_t)g->m;
    out->c.ld = g->ldc;
    out->c.batch_stride = g->stride_c;
  } else {
    out->c = out->d;
  }
  out->alpha = g->alpha;
  out->beta = out->has_c ? g->beta : 0.0f;
  out->epilogue = g->epilogue;
  return DRT_OK;
}
