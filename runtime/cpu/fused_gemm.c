/* CPU kernels of drt.Gemm and drt.Conv: a GEMM (MatMul or Gemm semantics) or a convolution
 * whose output goes through an elementwise epilogue program (bias, activation, gating,
 * residual add; see ir/ew_program.h) while it is still in cache.
 *
 *   drt.Gemm   C = alpha op(A) op(B) is split into tasks; each computes its block of C and then
 *              runs the epilogue on exactly that block, so the block is read back from L1/L2
 *              instead of by a separate pass over the whole tensor. Untransposed operands with
 *              K <= 512 use the AVX2 row-block kernel (runtime/cpu/sgemm_avx2.c, tasks of 12
 *              rows); otherwise single-threaded BLAS calls on blocks of rows or columns (or
 *              whole GEMMs of a batch).
 *   drt.Conv   the convolution kernel of runtime/cpu/conv.c, then the epilogue over the output
 *              in parallel chunks (the output of the fixture convolutions fits in L2).
 *
 * The epilogue reads the product as program input 0 and writes it back in place: the
 * evaluator reads every input element of a tile before storing the tile. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cpu/ew_exec.h"
#include "runtime/cpu/fused.h"
#include "runtime/cpu/linalg.h"
#include "runtime/cpu/sgemm_avx2.h"

/* Program inputs: [the node's output (accumulator), node inputs first..]. */
static drt_status prepare_epilogue(const drt_node *n, int first, const drt_tensor *in, drt_tensor *y,
                                   drt_ew_program *p, drt_ew_exec *e) {
  int extra = n->num_inputs - first;
  DRT_RETURN_IF_ERROR(drt_ew_program_decode(n, 1 + extra, 1, p));
  drt_tensor pin[DRT_EW_MAX_INPUTS];
  pin[0] = *y;
  for (int i = 0; i < extra; i++) pin[1 + i] = in[first + i];
  float *outs[1] = {y->data};
  return drt_ew_exec_prepare(e, p, &y->shape, pin, outs);
}

/* ---------------------------------------------------------------- drt.Gemm */

typedef struct gemm_ep {
  const drt_ew_exec *ep;
  bool ta, tb;
  int64_t m, n, k, lda, ldb;
  float alpha;
  /* batched: one pointer triple and output offset per GEMM */
  int64_t count;
  const float *const *a;
  const float *const *b;
  int64_t *off; /* flat output offset of GEMM i (its C is y + off[i], ldc = n) */
  float *y;
  bool direct; /* the AVX2 row-block kernel computes it (untransposed operands) */
  /* split of one GEMM */
  int64_t gemm; /* index of the GEMM being split */
  bool by_cols;
  int64_t chunk;
} gemm_ep;

/* Rows [r0, r1) x columns [c0, c1) of GEMM i, then its epilogue. */
static void gemm_block(const gemm_ep *g, int64_t i, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  if (r0 >= r1 || c0 >= c1) return;
  if (g->direct && c0 == 0 && c1 == g->n) {
    int64_t base = g->off[i];
    if (drt_sgemm_rows_avx2(g->a[i], g->lda, g->b[i], g->ldb, g->y + base, g->n, r0, r1, g->n, g->k, g->alpha)) {
      drt_ew_exec_range(g->ep, base + r0 * g->n, base + r1 * g->n);
      return;
    }
  }
  const float *a = g->a[i], *b = g->b[i];
  a += g->ta ? r0 : r0 * g->lda;
  b += g->tb ? c0 * g->ldb : c0;
  float *c = g->y + g->off[i] + r0 * g->n + c0;
  drt_sgemm_serial(g->ta, g->tb, r1 - r0, c1 - c0, g->k, g->alpha, a, g->lda, b, g->ldb, 0.0f, c, g->n);
  int64_t base = g->off[i];
  if (c0 == 0 && c1 == g->n) {
    drt_ew_exec_range(g->ep, base + r0 * g->n, base + r1 * g->n);
  } else {
    for (int64_t r = r0; r < r1; r++) drt_ew_exec_range(g->ep, base + r * g->n + c0, base + r * g->n + c1);
  }
}

static void batch_range(void *arg, int64_t begin, int64_t end) {
  const gemm_ep *g = arg;
  for (int64_t i = begin; i < end; i++) gemm_block(g, i, 0, g->m, 0, g->n);
}

static void split_range(void *arg, int64_t begin, int64_t end) {
  const gemm_ep *g = arg;
  for (int64_t part = begin; part < end; part++) {
    int64_t lo = part * g->chunk, hi = lo + g->chunk;
    if (g->by_cols)
      gemm_block(g, g->gemm, 0, g->m, lo, hi < g->n ? hi : g->n);
    else
      gemm_block(g, g->gemm, lo, hi < g->m ? hi : g->m, 0, g->n);
  }
}

/* Rows per task of the AVX2 kernel (a multiple of its 6-row tile). */
#define DIRECT_ROWS 12
/* The AVX2 kernel handles reductions up to this length (longer ones: BLAS, which blocks K). */
#define DIRECT_MAX_K 512

/* Below this many multiply-adds a GEMM is not split (same threshold as gemm.c). */
#define SPLIT_MIN_WORK (1 << 18)

typedef struct rowblock_job {
  const gemm_ep *g;
  int64_t blocks_per_gemm;
} rowblock_job;

static void rowblock_range(void *arg, int64_t begin, int64_t end) {
  const rowblock_job *j = arg;
  const gemm_ep *g = j->g;
  for (int64_t t = begin; t < end; t++) {
    int64_t i = t / j->blocks_per_gemm, r0 = (t % j->blocks_per_gemm) * DIRECT_ROWS;
    gemm_block(g, i, r0, r0 + DIRECT_ROWS < g->m ? r0 + DIRECT_ROWS : g->m, 0, g->n);
  }
}

static void run_gemms(drt_cpu_ctx *ctx, gemm_ep *g) {
  if (g->count <= 0 || g->m <= 0 || g->n <= 0) return;
  g->direct = !g->ta && !g->tb && g->k > 0 && g->k <= DIRECT_MAX_K && g->n >= 8 && drt_cpu_has_avx2_fma();
  /* short reductions with untransposed operands: the AVX2 kernel, blocks of rows in parallel */
  if (g->direct) {
    rowblock_job j = {g, (g->m + DIRECT_ROWS - 1) / DIRECT_ROWS};
    double per_block = (double)DIRECT_ROWS * (double)g->n * (double)(g->k > 0 ? g->k : 1);
    int64_t grain = (int64_t)((double)(1 << 17) / per_block) + 1;
    drt_parallel_for(ctx, g->count * j.blocks_per_gemm, grain, rowblock_range, &j);
    return;
  }
  drt_blas_threads_for_workers();
  int threads = ctx && ctx->pool ? ctx->num_threads : 1;
  double work = (double)g->m * (double)g->n * (double)(g->k > 0 ? g->k : 1);
  bool by_batch = g->count > 1 && threads > 1 && g->count >= threads &&
                  (g->count % threads == 0 || g->count >= 4 * threads || work < (double)(1 << 21));
  if (threads <= 1 || (g->count > 1 && work * (double)g->count < (double)SPLIT_MIN_WORK * 2)) {
    batch_range(g, 0, g->count);
    return;
  }
  if (by_batch) {
    drt_parallel_for(ctx, g->count, 1, batch_range, g);
    return;
  }
  for (int64_t i = 0; i < g->count; i++) {
    int64_t parts = threads;
    if (work < (double)SPLIT_MIN_WORK * 2) parts = 1;
    /* split the longer side in blocks that keep the BLAS micro-kernels full */
    g->by_cols = g->n >= g->m;
    int64_t len = g->by_cols ? g->n : g->m, align = g->by_cols ? 16 : 8;
    if (parts > len / align) parts = len / align > 0 ? len / align : 1;
    if (parts <= 1) {
      gemm_block(g, i, 0, g->m, 0, g->n);
      continue;
    }
    g->chunk = (len + parts - 1) / parts;
    g->chunk = (g->chunk + align - 1) / align * align;
    parts = (len + g->chunk - 1) / g->chunk;
    g->gemm = i;
    drt_parallel_for(ctx, parts, 1, split_range, g);
  }
}

drt_status drt_cpu_fused_gemm(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  const drt_tensor *a = &in[0], *b = &in[1];
  drt_tensor *y = &out[0];
  if (a->dtype != DRT_DTYPE_FLOAT32 || b->dtype != DRT_DTYPE_FLOAT32 || y->dtype != DRT_DTYPE_FLOAT32)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "the CPU kernel computes float32 only (inputs are %s, %s)",
                     drt_dtype_name(a->dtype), drt_dtype_name(b->dtype));
  drt_ew_program prog;
  drt_ew_exec ep;
  DRT_RETURN_IF_ERROR(prepare_epilogue(n, 2, in, y, &prog, &ep));
  if (drt_shape_numel(&y->shape) == 0) return DRT_OK;
  gemm_ep g;
  memset(&g, 0, sizeof g);
  g.ep = &ep;
  g.y = y->data;
  g.alpha = drt_node_attr_float(n, "alpha", 1.0f);
  int ra = a->shape.rank, rb = b->shape.rank;
  int64_t off0 = 0;
  const float *pa0 = a->data, *pb0 = b->data;
  if (ra == 2 && rb == 2) { /* Gemm semantics */
    g.ta = drt_node_attr_int(n, "transA", 0) != 0;
    g.tb = drt_node_attr_int(n, "transB", 0) != 0;
    g.m = y->shape.dims[0];
    g.n = y->shape.dims[1];
    g.k = g.ta ? a->shape.dims[0] : a->shape.dims[1];
    g.lda = a->shape.dims[1];
    g.ldb = b->shape.dims[1];
    g.count = 1;
    g.a = &pa0;
    g.b = &pb0;
    g.off = &off0;
    run_gemms(ctx, &g);
    return DRT_OK;
  }
  /* MatMul semantics: [..., M, K] x [..., K, N] with broadcast batch dims */
  int64_t m = ra >= 2 ? a->shape.dims[ra - 2] : 1, k = a->shape.dims[ra - 1];
  int64_t nn = rb >= 2 ? b->shape.dims[rb - 1] : 1;
  drt_shape ba = {0}, bb = {0}, ob = {0};
  ba.rank = ra > 2 ? ra - 2 : 0;
  bb.rank = rb > 2 ? rb - 2 : 0;
  for (int i = 0; i < ba.rank; i++) ba.dims[i] = a->shape.dims[i];
  for (int i = 0; i < bb.rank; i++) bb.dims[i] = b->shape.dims[i];
  ob.rank = y->shape.rank - (ra >= 2) - (rb >= 2);
  for (int i = 0; i < ob.rank; i++) ob.dims[i] = y->shape.dims[i];
  int64_t count = drt_shape_numel(&ob), na = drt_shape_numel(&ba), nb = drt_shape_numel(&bb);
  g.k = k;
  g.n = nn;
  g.lda = k;
  g.ldb = nn;
  if (nb == 1 && na == count) {
    /* B shared by the whole batch: one GEMM over the stacked rows of A */
    g.m = count * m;
    g.count = 1;
    g.a = &pa0;
    g.b = &pb0;
    g.off = &off0;
    run_gemms(ctx, &g);
    return DRT_OK;
  }
  int64_t sa[DRT_MAX_RANK], sb[DRT_MAX_RANK];
  drt_broadcast_strides(&ba, &ob, sa);
  drt_broadcast_strides(&bb, &ob, sb);
  const float **ptrs = malloc((size_t)count * 2 * sizeof(float *));
  int64_t *offs = malloc((size_t)count * sizeof(int64_t));
  if (!ptrs || !offs) {
    free(ptrs);
    free(offs);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "batch of %" PRId64 " GEMMs", count);
  }
  int64_t idx[DRT_MAX_RANK] = {0};
  for (int64_t i = 0; i < count; i++) {
    int64_t oa = 0, obo = 0;
    for (int d = 0; d < ob.rank; d++) {
      oa += idx[d] * sa[d];
      obo += idx[d] * sb[d];
    }
    ptrs[i] = (const float *)a->data + oa * m * k;
    ptrs[count + i] = (const float *)b->data + obo * k * nn;
    offs[i] = i * m * nn;
    for (int d = ob.rank - 1; d >= 0; d--) {
      if (++idx[d] < ob.dims[d]) break;
      idx[d] = 0;
    }
  }
  g.m = m;
  g.count = count;
  g.a = ptrs;
  g.b = ptrs + count;
  g.off = offs;
  run_gemms(ctx, &g);
  free(ptrs);
  free(offs);
  return DRT_OK;
}

/* ---------------------------------------------------------------- drt.Conv */

drt_status drt_cpu_fused_conv(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  drt_tensor *y = &out[0];
  if (y->dtype != DRT_DTYPE_FLOAT32)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "the CPU kernel computes float32 only (output is %s)",
                     drt_dtype_name(y->dtype));
  drt_ew_program prog;
  drt_ew_exec ep;
  DRT_RETURN_IF_ERROR(prepare_epilogue(n, 3, in, y, &prog, &ep));
  drt_node base = drt_fused_base_node(n);
  DRT_RETURN_IF_ERROR(drt_cpu_conv(ctx, &base, in, out));
  bool identity = prog.num_insns == 2 && prog.insns[0].op == DRT_EW_LOAD && prog.insns[0].a == 0;
  if (!identity) drt_ew_exec_run(ctx, &ep);
  return DRT_OK;
}
