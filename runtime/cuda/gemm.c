/* cuBLASLt GEMMs of the CUDA executor: one matmul descriptor, four layouts and the heuristic's
 * algorithm per distinct geometry (cached in the executor), then cublasLtMatmul per launch. The
 * row-major -> column-major mapping is drt_cuda_gemm_to_lt (select.c). */
#include "runtime/cuda/cuda_internal.h"

#ifdef DRT_CUDA_ENABLED

#include <stdlib.h>
#include <string.h>

static drt_status lt_type(drt_dtype t, cudaDataType_t *out) {
  *out = CUDA_R_32F;
  switch (t) {
    case DRT_DTYPE_FLOAT32:
      *out = CUDA_R_32F;
      return DRT_OK;
    case DRT_DTYPE_FLOAT16:
      *out = CUDA_R_16F;
      return DRT_OK;
    case DRT_DTYPE_BFLOAT16:
      *out = CUDA_R_16BF;
      return DRT_OK;
    default:
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "cuBLASLt GEMM operand of dtype %s", drt_dtype_name(t));
  }
}

static cublasLtEpilogue_t lt_epilogue(uint8_t e) {
  switch (e) {
    case DRT_CUDA_EPI_BIAS:
      return CUBLASLT_EPILOGUE_BIAS;
    case DRT_CUDA_EPI_GELU:
      return CUBLASLT_EPILOGUE_GELU;
    case DRT_CUDA_EPI_GELU_BIAS:
      return CUBLASLT_EPILOGUE_GELU_BIAS;
    case DRT_CUDA_EPI_RELU:
      return CUBLASLT_EPILOGUE_RELU;
    case DRT_CUDA_EPI_RELU_BIAS:
      return CUBLASLT_EPILOGUE_RELU_BIAS;
    default:
      return CUBLASLT_EPILOGUE_DEFAULT;
  }
}

static bool has_bias(uint8_t e) {
  return e == DRT_CUDA_EPI_BIAS || e == DRT_CUDA_EPI_GELU_BIAS || e == DRT_CUDA_EPI_RELU_BIAS;
}

static uint64_t problem_key(const drt_cuda_lt_problem *p, bool tf32, drt_dtype bias_type, const uint32_t align[4],
                            uint64_t workspace_bytes) {
  const drt_cuda_lt_layout *ls[4] = {&p->a, &p->b, &p->c, &p->d};
  int64_t k[48];
  int n = 0;
  k[n++] = (int64_t)p->m;
  k[n++] = (int64_t)p->n;
  k[n++] = (int64_t)p->k;
  k[n++] = p->batch;
  k[n++] = p->trans_a;
  k[n++] = p->trans_b;
  k[n++] = p->epilogue;
  k[n++] = tf32;
  k[n++] = has_bias(p->epilogue) ? (int64_t)bias_type : -1;
  k[n++] = (int64_t)workspace_bytes;
  for (int i = 0; i < 4; i++) {
    k[n++] = ls[i]->type;
    k[n++] = (int64_t)ls[i]->rows;
    k[n++] = (int64_t)ls[i]->cols;
    k[n++] = ls[i]->ld;
    k[n++] = ls[i]->batch_stride;
    k[n++] = align[i];
  }
  return drt_fnv1a64(k, (size_t)n * sizeof k[0], 0);
}

static void entry_free(drt_cuda_lt_entry *e) {
  if (e->desc) drt_lt.cublasLtMatmulDescDestroy(e->desc);
  if (e->a) drt_lt.cublasLtMatrixLayoutDestroy(e->a);
  if (e->b) drt_lt.cublasLtMatrixLayoutDestroy(e->b);
  if (e->c) drt_lt.cublasLtMatrixLayoutDestroy(e->c);
  if (e->d) drt_lt.cublasLtMatrixLayoutDestroy(e->d);
}

static drt_status make_layout(const drt_cuda_lt_layout *l, int32_t batch, cublasLtMatrixLayout_t *out) {
  cudaDataType_t t;
  DRT_RETURN_IF_ERROR(lt_type(l->type, &t));
  DRT_RETURN_IF_ERROR(DRT_LT_CALL(cublasLtMatrixLayoutCreate, (out, t, l->rows, l->cols, l->ld)));
  if (batch > 1) {
    int64_t stride = l->batch_stride;
    DRT_RETURN_IF_ERROR(DRT_LT_CALL(cublasLtMatrixLayoutSetAttribute,
                                    (*out, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof batch)));
    DRT_RETURN_IF_ERROR(DRT_LT_CALL(cublasLtMatrixLayoutSetAttribute,
                                    (*out, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride)));
  }
  return DRT_OK;
}

static drt_status entry_init(drt_cuda_context *ctx, drt_cuda_lt_entry *e, const drt_cuda_lt_problem *p, bool tf32,
                             drt_dtype bias_type, const uint32_t align[4], uint64_t workspace_bytes) {
  bool f32 = p->a.type == DRT_DTYPE_FLOAT32 && p->b.type == DRT_DTYPE_FLOAT32;
  cublasComputeType_t ct = tf32 && f32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  DRT_RETURN_IF_ERROR(DRT_LT_CALL(cublasLtMatmulDescCreate, (&e->desc, ct, CUDA_R_32F)));
  cublasOperation_t ta = p->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = p->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  DRT_RETURN_IF_ERROR(DRT_LT_CALL(cublasLtMatmulDescSetAttribute, (e->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta)));
  DRT_RETURN_IF_ERROR(DRT_LT_CALL(cublasLtMatmulDescSetAttribute, (e->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb)));
  cublasLtEpilogue_t epi = lt_epilogue(p->epilogue);
  DRT_RETURN_IF_ERROR(
      DRT_LT_CALL(cublasLtMatmulDescSetAttribute, (e->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi)));
  e->has_bias = has_bias(p->epilogue);
  if (e->has_bias) {
    cudaDataType_t bt;
    DRT_RETURN_IF_ERROR(lt_type(bias_type, &bt));
    DRT_RETURN_IF_ERROR(
        DRT_LT_CALL(cublasLtMatmulDescSetAttribute, (e->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt)));
  }
  DRT_RETURN_IF_ERROR(make_layout(&p->a, p->batch, &e->a));
  DRT_RETURN_IF_ERROR(make_layout(&p->b, p->batch, &e->b));
  DRT_RETURN_IF_ERROR(make_layout(&p->c, p->batch, &e->c));
  DRT_RETURN_IF_ERROR(make_layout(&p->d, p->batch, &e->d));
  cublasLtMatmulPreference_t pref = NULL;
  DRT_RETURN_IF_ERROR(DRT_LT_CALL(cublasLtMatmulPreferenceCreate, (&pref)));
  uint64_t ws = workspace_bytes;
  drt_status st = DRT_LT_CALL(cublasLtMatmulPreferenceSetAttribute,
                              (pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
  static const cublasLtMatmulPreferenceAttributes_t align_attr[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  for (int i = 0; i < 4 && !st; i++)
    st = DRT_LT_CALL(cublasLtMatmulPreferenceSetAttribute, (pref, align_attr[i], &align[i], sizeof align[i]));
  cublasLtMatmulHeuristicResult_t res[DRT_CUDA_LT_MAX_ALGOS];
  memset(res, 0, sizeof res);
  int found = 0;
  const char *tune = getenv("DRT_CUDA_GEMM_TUNE");
  int want = tune && strcmp(tune, "0") == 0 ? 1 : DRT_CUDA_LT_MAX_ALGOS;
  if (!st)
    st = DRT_LT_CALL(cublasLtMatmulAlgoGetHeuristic, (ctx->lt, e->desc, e->a, e->b, e->c, e->d, pref, want, res, &found));
  drt_lt.cublasLtMatmulPreferenceDestroy(pref);
  if (!st && found < 1)
    st = DRT_ERROR(DRT_STATUS_UNSUPPORTED, "cuBLASLt has no algorithm for this GEMM");
  if (st)
    return drt_status_annotate(st, "GEMM (column-major m=%llu n=%llu k=%llu batch=%d, %s x %s -> %s, epilogue %u)",
                               (unsigned long long)p->m, (unsigned long long)p->n, (unsigned long long)p->k, p->batch,
                               drt_dtype_name(p->a.type), drt_dtype_name(p->b.type), drt_dtype_name(p->d.type),
                               (unsigned)p->epilogue);
  e->num_cand = 0;
  for (int i = 0; i < found && i < DRT_CUDA_LT_MAX_ALGOS; i++)
    if (res[i].state == CUBLAS_STATUS_SUCCESS && res[i].workspaceSize <= workspace_bytes) e->cand[e->num_cand++] = res[i].algo;
  if (e->num_cand == 0) e->cand[e->num_cand++] = res[0].algo;
  e->algo = e->cand[0];
  e->tuned = e->num_cand < 2;
  return DRT_OK;
}

drt_status drt_cuda_lt_get(drt_cuda_context *ctx, drt_cuda_lt_cache *cache, const drt_cuda_lt_problem *p, bool tf32,
                           drt_dtype bias_type, const uint32_t align[4], uint64_t workspace_bytes, int *entry) {
  *entry = -1;
  DRT_RETURN_IF_ERROR(drt_cuda_ctx_require_lt(ctx));
  uint64_t key = problem_key(p, tf32, bias_type, align, workspace_bytes);
  for (size_t i = 0; i < cache->n; i++)
    if (cache->e[i].key == key) {
      *entry = (int)i;
      return DRT_OK;
    }
  if (cache->n == cache->cap) {
    size_t cap = cache->cap ? 2 * cache->cap : 16;
    drt_cuda_lt_entry *ne = realloc(cache->e, cap * sizeof *ne);
    if (!ne) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "GEMM descriptor cache");
    cache->e = ne;
    cache->cap = cap;
  }
  drt_cuda_lt_entry *e = &cache->e[cache->n];
  memset(e, 0, sizeof *e);
  e->key = key;
  drt_status st = entry_init(ctx, e, p, tf32, bias_type, align, workspace_bytes);
  if (st) {
    entry_free(e);
    return st;
  }
  *entry = (int)cache->n++;
  return DRT_OK;
}

static drt_status lt_matmul(drt_cuda_context *ctx, drt_cuda_lt_entry *e, const cublasLtMatmulAlgo_t *algo,
                            const drt_cuda_lt_problem *p, CUdeviceptr a, CUdeviceptr b, CUdeviceptr c, CUdeviceptr d,
                            CUdeviceptr workspace, uint64_t workspace_bytes, CUstream stream) {
  float alpha = p->alpha, beta = p->beta;
  return DRT_LT_CALL(cublasLtMatmul, (ctx->lt, e->desc, &alpha, (const void *)(uintptr_t)a, e->a,
                                      (const void *)(uintptr_t)b, e->b, &beta, (const void *)(uintptr_t)c, e->c,
                                      (void *)(uintptr_t)d, e->d, algo, (void *)(uintptr_t)workspace,
                                      (size_t)workspace_bytes, stream));
}

/* Times the heuristic's candidates on the real operands (one warm-up and three timed runs each,
 * CUDA events) and keeps the fastest. Only where a rerun gives the same D (beta = 0 or C is not
 * D) and the stream is not being captured; a candidate that fails is skipped. */
static void lt_tune(drt_cuda_context *ctx, drt_cuda_lt_entry *e, const drt_cuda_lt_problem *p, CUdeviceptr a,
                    CUdeviceptr b, CUdeviceptr c, CUdeviceptr d, CUdeviceptr workspace, uint64_t workspace_bytes,
                    CUstream stream) {
  CUstreamCaptureStatus cs = CU_STREAM_CAPTURE_STATUS_NONE;
  if (drt_cu.cuStreamIsCapturing(stream, &cs) != CUDA_SUCCESS || cs != CU_STREAM_CAPTURE_STATUS_NONE) return;
  e->tuned = true;
  if (p->has_c && p->beta != 0.0f && c == d) return;
  CUevent ev[2] = {NULL, NULL};
  if (drt_cu.cuEventCreate(&ev[0], CU_EVENT_DEFAULT) != CUDA_SUCCESS ||
      drt_cu.cuEventCreate(&ev[1], CU_EVENT_DEFAULT) != CUDA_SUCCESS) {
    if (ev[0]) drt_cu.cuEventDestroy_v2(ev[0]);
    return;
  }
  int best = -1;
  float best_ms = 0, first_ms = -1;
  for (int i = 0; i < e->num_cand; i++) {
    drt_status st = lt_matmul(ctx, e, &e->cand[i], p, a, b, c, d, workspace, workspace_bytes, stream);
    if (!st) st = DRT_CU_CALL(cuEventRecord, (ev[0], stream));
    for (int r = 0; r < 3 && !st; r++) st = lt_matmul(ctx, e, &e->cand[i], p, a, b, c, d, workspace, workspace_bytes, stream);
    if (!st) st = DRT_CU_CALL(cuEventRecord, (ev[1], stream));
    if (!st) st = DRT_CU_CALL(cuEventSynchronize, (ev[1]));
    float ms = 0;
    if (!st) st = DRT_CU_CALL(cuEventElapsedTime_v2, (&ms, ev[0], ev[1]));
    if (st) {
      drt_status_free(st);
      drt_cu.cuStreamSynchronize(stream);
      continue;
    }
    if (i == 0) first_ms = ms;
    if (best < 0 || ms < best_ms) best = i, best_ms = ms;
  }
  drt_cu.cuEventDestroy_v2(ev[0]);
  drt_cu.cuEventDestroy_v2(ev[1]);
  if (best >= 0) e->algo = e->cand[best];
  drt_log(DRT_LOG_DEBUG, "GEMM m=%llu n=%llu k=%llu batch=%d: candidate %d of %d (%.4f ms, heuristic's first %.4f ms)",
          (unsigned long long)p->m, (unsigned long long)p->n, (unsigned long long)p->k, p->batch, best, e->num_cand,
          best_ms / 3, first_ms / 3);
}

drt_status drt_cuda_lt_run(drt_cuda_context *ctx, drt_cuda_lt_cache *cache, int entry, const drt_cuda_lt_problem *p,
                           CUdeviceptr a, CUdeviceptr b, CUdeviceptr c, CUdeviceptr d, CUdeviceptr bias,
                           CUdeviceptr workspace, uint64_t workspace_bytes, CUstream stream) {
  drt_cuda_lt_entry *e = &cache->e[entry];
  if (e->has_bias) {
    void *bp = (void *)(uintptr_t)bias;
    DRT_RETURN_IF_ERROR(
        DRT_LT_CALL(cublasLtMatmulDescSetAttribute, (e->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof bp)));
  }
  if (!e->tuned) lt_tune(ctx, e, p, a, b, c, d, workspace, workspace_bytes, stream);
  return lt_matmul(ctx, e, &e->algo, p, a, b, c, d, workspace, workspace_bytes, stream);
}

void drt_cuda_lt_cache_free(drt_cuda_lt_cache *cache) {
  for (size_t i = 0; i < cache->n; i++) entry_free(&cache->e[i]);
  free(cache->e);
  cache->e = NULL;
  cache->n = cache->cap = 0;
}

#endif /* DRT_CUDA_ENABLED */
