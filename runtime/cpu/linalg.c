/* CPU kernels for the linalg op family: MatMul, Gemm and Einsum here; Conv and ConvTranspose
 * in conv.c; pools in pool.c. Float32 and float64 go through BLAS (float16/bfloat16 are
 * promoted to float32 by the executor); integer types use plain loops with wrap-around
 * arithmetic. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer_linalg.h"
#include "runtime/cpu/linalg.h"
#include "runtime/cpu/sgemm_avx2.h"

#define F32F64 (DRT_DT_BIT(DRT_DTYPE_FLOAT32) | DRT_DT_BIT(DRT_DTYPE_FLOAT64))

static drt_status unsupported_dtype(int input, drt_dtype dt) {
  return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input %d has dtype %s, which the CPU kernel does not support", input,
                   drt_dtype_name(dt));
}

/* ---------------------------------------------------------------- strided copy */

/* dst (dense, shape dims) = src read with per-dim element strides (0 = broadcast). */
typedef struct strided_copy {
  int rank;
  int64_t dims[DRT_MAX_RANK];
  int64_t src_strides[DRT_MAX_RANK];
  size_t elem;
  const char *src;
  char *dst;
  int64_t inner; /* dims[rank-1] (1 for rank 0) */
} strided_copy;

static void strided_copy_rows(void *arg, int64_t begin, int64_t end) {
  const strided_copy *p = arg;
  int r = p->rank;
  int64_t idx[DRT_MAX_RANK] = {0};
  /* rows are indexed over dims[0 .. r-2] */
  int64_t rem = begin;
  for (int i = r - 2; i >= 0; i--) {
    idx[i] = rem % p->dims[i];
    rem /= p->dims[i];
  }
  int64_t is = r > 0 ? p->src_strides[r - 1] : 0;
  for (int64_t row = begin; row < end; row++) {
    int64_t off = 0;
    for (int i = 0; i < r - 1; i++) off += idx[i] * p->src_strides[i];
    char *d = p->dst + (size_t)(row * p->inner) * p->elem;
    const char *s = p->src + (size_t)off * p->elem;
    if (is == 1) {
      memcpy(d, s, (size_t)p->inner * p->elem);
    } else if (p->elem == 4) {
      float *df = (float *)d;
      const float *sf = (const float *)s;
      for (int64_t j = 0; j < p->inner; j++) df[j] = sf[j * is];
    } else if (p->elem == 8) {
      double *dd = (double *)d;
      const double *sd = (const double *)s;
      for (int64_t j = 0; j < p->inner; j++) dd[j] = sd[j * is];
    } else {
      for (int64_t j = 0; j < p->inner; j++) memcpy(d + (size_t)j * p->elem, s + (size_t)(j * is) * p->elem, p->elem);
    }
    for (int i = r - 2; i >= 0; i--) {
      if (++idx[i] < p->dims[i]) break;
      idx[i] = 0;
    }
  }
}

static void strided_copy_run(drt_cpu_ctx *ctx, strided_copy *p) {
  int64_t rows = 1;
  for (int i = 0; i + 1 < p->rank; i++) rows *= p->dims[i];
  p->inner = p->rank > 0 ? p->dims[p->rank - 1] : 1;
  if (rows <= 0 || p->inner <= 0) return;
  int64_t grain = p->inner >= 4096 ? 1 : 4096 / p->inner;
  drt_parallel_for(ctx, rows, grain, strided_copy_rows, p);
}

/* ---------------------------------------------------------------- integer GEMM loops */

/* C[m x n] = A[m x k] B[k x n] with arbitrary element strides (rsX: row, csX: column),
 * wrap-around arithmetic in the unsigned type. */
#define DEFINE_INT_GEMM(T, UT)                                                                             \
  static void int_gemm_##T(const T *a, int64_t rsa, int64_t csa, const T *b, int64_t rsb, int64_t csb, T *c, \
                           int64_t m, int64_t n, int64_t k) {                                              \
    for (int64_t i = 0; i < m; i++) {                                                                      \
      T *ci = c + i * n;                                                                                   \
      for (int64_t j = 0; j < n; j++) ci[j] = 0;                                                           \
      for (int64_t p = 0; p < k; p++) {                                                                    \
        UT av = (UT)a[i * rsa + p * csa];                                                                  \
        const T *bp = b + p * rsb;                                                                         \
        for (int64_t j = 0; j < n; j++) ci[j] = (T)((UT)ci[j] + av * (UT)bp[j * csb]);                     \
      }                                                                                                    \
    }                                                                                                      \
  }
DEFINE_INT_GEMM(int32_t, uint32_t)
DEFINE_INT_GEMM(int64_t, uint64_t)
DEFINE_INT_GEMM(uint32_t, uint32_t)
DEFINE_INT_GEMM(uint64_t, uint64_t)

static void int_gemm(drt_dtype dt, const void *a, int64_t rsa, int64_t csa, const void *b, int64_t rsb, int64_t csb,
                     void *c, int64_t m, int64_t n, int64_t k) {
  switch (dt) {
    case DRT_DTYPE_INT32: int_gemm_int32_t(a, rsa, csa, b, rsb, csb, c, m, n, k); break;
    case DRT_DTYPE_INT64: int_gemm_int64_t(a, rsa, csa, b, rsb, csb, c, m, n, k); break;
    case DRT_DTYPE_UINT32: int_gemm_uint32_t(a, rsa, csa, b, rsb, csb, c, m, n, k); break;
    case DRT_DTYPE_UINT64: int_gemm_uint64_t(a, rsa, csa, b, rsb, csb, c, m, n, k); break;
    default: break;
  }
}

static bool is_matmul_int(drt_dtype dt) {
  return dt == DRT_DTYPE_INT32 || dt == DRT_DTYPE_INT64 || dt == DRT_DTYPE_UINT32 || dt == DRT_DTYPE_UINT64;
}

/* ---------------------------------------------------------------- MatMul */

typedef struct int_batch_args {
  drt_dtype dt;
  const char *a, *b;
  char *c;
  const int64_t *aoff, *boff; /* element offsets per batch */
  int64_t m, n, k, ldb;
  size_t es;
} int_batch_args;

static void int_batch_range(void *arg, int64_t begin, int64_t end) {
  const int_batch_args *p = arg;
  for (int64_t i = begin; i < end; i++)
    int_gemm(p->dt, p->a + (size_t)p->aoff[i] * p->es, p->k, 1, p->b + (size_t)p->boff[i] * p->es, p->ldb, 1,
             p->c + (size_t)(i * p->m * p->n) * p->es, p->m, p->n, p->k);
}

static drt_status k_matmul(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  const drt_tensor *a = &in[0], *b = &in[1];
  drt_tensor *y = &out[0];
  drt_dtype dt = a->dtype;
  if (dt != DRT_DTYPE_FLOAT32 && dt != DRT_DTYPE_FLOAT64 && !is_matmul_int(dt)) return unsupported_dtype(0, dt);
  int ra = a->shape.rank, rb = b->shape.rank;
  int64_t m = ra >= 2 ? a->shape.dims[ra - 2] : 1, k = a->shape.dims[ra - 1];
  int64_t nn = rb >= 2 ? b->shape.dims[rb - 1] : 1;
  int64_t ldb = nn; /* rank-1 B is a K x 1 column */
  if (drt_shape_numel(&y->shape) == 0) return DRT_OK;
  drt_shape ba = {0}, bb = {0}, ob = {0};
  ba.rank = ra > 2 ? ra - 2 : 0;
  bb.rank = rb > 2 ? rb - 2 : 0;
  for (int i = 0; i < ba.rank; i++) ba.dims[i] = a->shape.dims[i];
  for (int i = 0; i < bb.rank; i++) bb.dims[i] = b->shape.dims[i];
  ob.rank = y->shape.rank - (ra >= 2) - (rb >= 2);
  for (int i = 0; i < ob.rank; i++) ob.dims[i] = y->shape.dims[i];
  int64_t count = drt_shape_numel(&ob), na = drt_shape_numel(&ba), nb = drt_shape_numel(&bb);
  size_t es = drt_dtype_size(dt);
  (void)n;

  if (nb == 1 && na == count && (dt == DRT_DTYPE_FLOAT32 || dt == DRT_DTYPE_FLOAT64)) {
    /* B shared by the whole batch: one GEMM over the stacked rows of A (short reductions: the
       AVX2 row-block kernel, which needs no packing). */
    if (dt == DRT_DTYPE_FLOAT32 &&
        drt_sgemm_avx2(ctx, count * m, nn, k, 1.0f, a->data, k, b->data, ldb, 0.0f, y->data, nn))
      return DRT_OK;
    if (dt == DRT_DTYPE_FLOAT32)
      drt_sgemm(ctx, false, false, count * m, nn, k, 1.0f, a->data, k, b->data, ldb, 0.0f, y->data, nn);
    else
      drt_dgemm(ctx, false, false, count * m, nn, k, 1.0, a->data, k, b->data, ldb, 0.0, y->data, nn);
    return DRT_OK;
  }
  /* Per-batch offsets of A and B (numpy broadcasting over the batch dims). */
  int64_t sa[DRT_MAX_RANK], sb[DRT_MAX_RANK];
  drt_broadcast_strides(&ba, &ob, sa);
  drt_broadcast_strides(&bb, &ob, sb);
  int64_t *offs = malloc((size_t)count * 2 * sizeof(int64_t));
  const void **ptrs = malloc((size_t)count * 3 * sizeof(void *));
  if (!offs || !ptrs) {
    free(offs);
    free(ptrs);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "MatMul batch of %" PRId64, count);
  }
  int64_t idx[DRT_MAX_RANK] = {0};
  for (int64_t i = 0; i < count; i++) {
    int64_t oa = 0, obo = 0;
    for (int d = 0; d < ob.rank; d++) {
      oa += idx[d] * sa[d];
      obo += idx[d] * sb[d];
    }
    offs[i] = oa * m * k;
    offs[count + i] = obo * k * nn;
    for (int d = ob.rank - 1; d >= 0; d--) {
      if (++idx[d] < ob.dims[d]) break;
      idx[d] = 0;
    }
  }
  if (dt == DRT_DTYPE_FLOAT32 || dt == DRT_DTYPE_FLOAT64) {
    for (int64_t i = 0; i < count; i++) {
      ptrs[i] = (const char *)a->data + (size_t)offs[i] * es;
      ptrs[count + i] = (const char *)b->data + (size_t)offs[count + i] * es;
      ptrs[2 * count + i] = (char *)y->data + (size_t)(i * m * nn) * es;
    }
    drt_gemm_batch gb = {dt, false, false, m, nn, k, 1.0, 0.0, k, ldb, nn, count,
                         ptrs, ptrs + count, (void *const *)(ptrs + 2 * count)};
    drt_gemm_batch_run(ctx, &gb);
  } else {
    int_batch_args ib = {dt, a->data, b->data, y->data, offs, offs + count, m, nn, k, ldb, es};
    drt_parallel_for(ctx, count, 1, int_batch_range, &ib);
  }
  free(offs);
  free(ptrs);
  return DRT_OK;
}

/* ---------------------------------------------------------------- Gemm */

#define DEFINE_INT_GEMM_EPILOGUE(T)                                                                  \
  static void gemm_epilogue_##T(T *y, const T *c, const int64_t *cs, int64_t m, int64_t n, double alpha, \
                                double beta) {                                                       \
    for (int64_t i = 0; i < m; i++)                                                                  \
      for (int64_t j = 0; j < n; j++) {                                                              \
        T cv = c ? c[i * cs[0] + j * cs[1]] : (T)0;                                                  \
        T *yv = &y[i * n + j];                                                                       \
        if (alpha == 1.0 && (beta == 1.0 || !c))                                                     \
          *yv = (T)(*yv + cv);                                                                       \
        else                                                                                         \
          *yv = (T)(alpha * (double)*yv + (c ? beta * (double)cv : 0.0));                            \
      }                                                                                              \
  }
DEFINE_INT_GEMM_EPILOGUE(int32_t)
DEFINE_INT_GEMM_EPILOGUE(int64_t)
DEFINE_INT_GEMM_EPILOGUE(uint32_t)
DEFINE_INT_GEMM_EPILOGUE(uint64_t)

static drt_status k_gemm(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  const drt_tensor *a = &in[0], *b = &in[1];
  const drt_tensor *c = n->num_inputs > 2 && in[2].data ? &in[2] : NULL;
  drt_tensor *y = &out[0];
  drt_dtype dt = a->dtype;
  if (dt != DRT_DTYPE_FLOAT32 && dt != DRT_DTYPE_FLOAT64 && !is_matmul_int(dt)) return unsupported_dtype(0, dt);
  bool ta = drt_node_attr_int(n, "transA", 0) != 0, tb = drt_node_attr_int(n, "transB", 0) != 0;
  double alpha = drt_node_attr_float(n, "alpha", 1.0f), beta = drt_node_attr_float(n, "beta", 1.0f);
  int64_t m = y->shape.dims[0], nn = y->shape.dims[1], k = ta ? a->shape.dims[0] : a->shape.dims[1];
  if (m == 0 || nn == 0) return DRT_OK;
  /* strides of C broadcast to (M, N) */
  int64_t cs[2] = {0, 0};
  if (c) drt_broadcast_strides(&c->shape, &y->shape, cs);
  size_t es = drt_dtype_size(dt);
  if (dt == DRT_DTYPE_FLOAT32 || dt == DRT_DTYPE_FLOAT64) {
    bool use_c = c && beta != 0.0;
    if (use_c) {
      strided_copy sc = {2, {m, nn}, {cs[0], cs[1]}, es, c->data, y->data, 0};
      strided_copy_run(ctx, &sc);
    }
    if (dt == DRT_DTYPE_FLOAT32)
      drt_sgemm(ctx, ta, tb, m, nn, k, (float)alpha, a->data, a->shape.dims[1], b->data, b->shape.dims[1],
                use_c ? (float)beta : 0.0f, y->data, nn);
    else
      drt_dgemm(ctx, ta, tb, m, nn, k, alpha, a->data, a->shape.dims[1], b->data, b->shape.dims[1], use_c ? beta : 0.0,
                y->data, nn);
    return DRT_OK;
  }
  int64_t lda = a->shape.dims[1], ldb = b->shape.dims[1];
  int_gemm(dt, a->data, ta ? 1 : lda, ta ? lda : 1, b->data, tb ? 1 : ldb, tb ? ldb : 1, y->data, m, nn, k);
  (void)es;
  const void *cd = c ? c->data : NULL;
  switch (dt) {
    case DRT_DTYPE_INT32: gemm_epilogue_int32_t(y->data, cd, cs, m, nn, alpha, beta); break;
    case DRT_DTYPE_INT64: gemm_epilogue_int64_t(y->data, cd, cs, m, nn, alpha, beta); break;
    case DRT_DTYPE_UINT32: gemm_epilogue_uint32_t(y->data, cd, cs, m, nn, alpha, beta); break;
    case DRT_DTYPE_UINT64: gemm_epilogue_uint64_t(y->data, cd, cs, m, nn, alpha, beta); break;
    default: break;
  }
  return DRT_OK;
}

/* ---------------------------------------------------------------- Einsum: generic loop */

typedef struct einsum_generic {
  drt_dtype dt;
  int nops;
  const void *ops[DRT_EINSUM_MAX_OPERANDS];
  void *out;
  int no; /* output rank */
  int64_t osize[DRT_MAX_RANK];
  int64_t ostride[DRT_EINSUM_MAX_OPERANDS][DRT_MAX_RANK];
  int nc; /* contracted labels */
  int64_t csize[DRT_EINSUM_MAX_LABELS];
  int64_t cstride[DRT_EINSUM_MAX_OPERANDS][DRT_EINSUM_MAX_LABELS];
} einsum_generic;

/* Sum over the contracted index space for output elements [begin, end). ACC is the
 * accumulator type; LOAD(T value) converts an element to ACC. */
#define DEFINE_EINSUM_GENERIC(NAME, T, ACC)                                                         \
  static void NAME(void *arg, int64_t begin, int64_t end) {                                         \
    const einsum_generic *p = arg;                                                                  \
    int nops = p->nops, nc = p->nc;                                                                 \
    int64_t oidx[DRT_MAX_RANK] = {0}, cidx[DRT_EINSUM_MAX_LABELS];                                  \
    int64_t rem = begin;                                                                            \
    for (int i = p->no - 1; i >= 0; i--) {                                                          \
      oidx[i] = rem % p->osize[i];                                                                  \
      rem /= p->osize[i];                                                                           \
    }                                                                                               \
    int64_t total = 1;                                                                              \
    for (int c = 0; c < nc; c++) total *= p->csize[c];                                              \
    int64_t inner = nc > 0 ? p->csize[nc - 1] : 1;                                                  \
    for (int64_t e = begin; e < end; e++) {                                                         \
      int64_t base[DRT_EINSUM_MAX_OPERANDS], off[DRT_EINSUM_MAX_OPERANDS];                          \
      for (int t = 0; t < nops; t++) {                                                              \
        int64_t o = 0;                                                                              \
        for (int i = 0; i < p->no; i++) o += oidx[i] * p->ostride[t][i];                            \
        base[t] = o;                                                                                \
      }                                                                                             \
      ACC acc = 0;                                                                                  \
      if (total > 0) {                                                                              \
        for (int c = 0; c < nc; c++) cidx[c] = 0;                                                   \
        for (int64_t done = 0; done < total; done += inner) {                                       \
          for (int t = 0; t < nops; t++) {                                                          \
            int64_t o = base[t];                                                                    \
            for (int c = 0; c + 1 < nc; c++) o += cidx[c] * p->cstride[t][c];                       \
            off[t] = o;                                                                             \
          }                                                                                         \
          for (int64_t j = 0; j < inner; j++) {                                                     \
            ACC prod = (ACC)((const T *)p->ops[0])[off[0]];                                         \
            for (int t = 1; t < nops; t++) prod *= (ACC)((const T *)p->ops[t])[off[t]];             \
            acc += prod;                                                                            \
            if (nc > 0)                                                                             \
              for (int t = 0; t < nops; t++) off[t] += p->cstride[t][nc - 1];                       \
          }                                                                                         \
          for (int c = nc - 2; c >= 0; c--) {                                                       \
            if (++cidx[c] < p->csize[c]) break;                                                     \
            cidx[c] = 0;                                                                            \
          }                                                                                         \
        }                                                                                           \
      }                                                                                             \
      ((T *)p->out)[e] = (T)acc;                                                                    \
      for (int i = p->no - 1; i >= 0; i--) {                                                        \
        if (++oidx[i] < p->osize[i]) break;                                                         \
        oidx[i] = 0;                                                                                \
      }                                                                                             \
    }                                                                                               \
  }
DEFINE_EINSUM_GENERIC(einsum_generic_f32, float, double)
DEFINE_EINSUM_GENERIC(einsum_generic_f64, double, double)
DEFINE_EINSUM_GENERIC(einsum_generic_i8, int8_t, uint64_t)
DEFINE_EINSUM_GENERIC(einsum_generic_i16, int16_t, uint64_t)
DEFINE_EINSUM_GENERIC(einsum_generic_i32, int32_t, uint64_t)
DEFINE_EINSUM_GENERIC(einsum_generic_i64, int64_t, uint64_t)
DEFINE_EINSUM_GENERIC(einsum_generic_u8, uint8_t, uint64_t)
DEFINE_EINSUM_GENERIC(einsum_generic_u16, uint16_t, uint64_t)
DEFINE_EINSUM_GENERIC(einsum_generic_u32, uint32_t, uint64_t)
DEFINE_EINSUM_GENERIC(einsum_generic_u64, uint64_t, uint64_t)

/* Element stride of label l in operand t (sum over repeated occurrences = diagonal; 0 where
 * the operand broadcasts a size-1 dim). */
static int64_t label_stride(const drt_einsum_spec *sp, int t, const drt_shape *s, int l) {
  int64_t st = 0, run = 1;
  for (int i = s->rank - 1; i >= 0; i--) {
    if (sp->op_labels[t][i] == l && !(s->dims[i] == 1 && sp->label_size[l] != 1)) st += run;
    run *= s->dims[i];
  }
  return st;
}

static drt_status einsum_generic_run(drt_cpu_ctx *ctx, const drt_einsum_spec *sp, const drt_tensor *in,
                                     drt_tensor *y) {
  einsum_generic p;
  memset(&p, 0, sizeof p);
  p.dt = y->dtype;
  p.nops = sp->num_operands;
  p.out = y->data;
  p.no = sp->out_rank;
  bool in_out[DRT_EINSUM_MAX_LABELS] = {false}, used[DRT_EINSUM_MAX_LABELS] = {false};
  for (int i = 0; i < sp->out_rank; i++) in_out[sp->out_labels[i]] = true;
  for (int t = 0; t < p.nops; t++) {
    p.ops[t] = in[t].data;
    for (int i = 0; i < sp->op_rank[t]; i++) used[sp->op_labels[t][i]] = true;
  }
  for (int i = 0; i < p.no; i++) {
    int l = sp->out_labels[i];
    p.osize[i] = sp->label_size[l];
    for (int t = 0; t < p.nops; t++) p.ostride[t][i] = label_stride(sp, t, &in[t].shape, l);
  }
  for (int l = 0; l < sp->num_labels; l++) {
    if (!used[l] || in_out[l]) continue;
    p.csize[p.nc] = sp->label_size[l];
    for (int t = 0; t < p.nops; t++) p.cstride[t][p.nc] = label_stride(sp, t, &in[t].shape, l);
    p.nc++;
  }
  int64_t total = drt_shape_numel(&y->shape);
  int64_t inner = 1;
  for (int c = 0; c < p.nc; c++) inner *= p.csize[c];
  int64_t grain = inner >= 1024 ? 1 : 1024 / (inner > 0 ? inner : 1);
  drt_range_fn fn;
  switch (p.dt) {
    case DRT_DTYPE_FLOAT32: fn = einsum_generic_f32; break;
    case DRT_DTYPE_FLOAT64: fn = einsum_generic_f64; break;
    case DRT_DTYPE_INT8: fn = einsum_generic_i8; break;
    case DRT_DTYPE_INT16: fn = einsum_generic_i16; break;
    case DRT_DTYPE_INT32: fn = einsum_generic_i32; break;
    case DRT_DTYPE_INT64: fn = einsum_generic_i64; break;
    case DRT_DTYPE_UINT8: fn = einsum_generic_u8; break;
    case DRT_DTYPE_UINT16: fn = einsum_generic_u16; break;
    case DRT_DTYPE_UINT32: fn = einsum_generic_u32; break;
    case DRT_DTYPE_UINT64: fn = einsum_generic_u64; break;
    default: return unsupported_dtype(0, p.dt);
  }
  drt_parallel_for(ctx, total, grain, fn, &p);
  return DRT_OK;
}

/* ---------------------------------------------------------------- Einsum: GEMM fast path */

/* A two-operand contraction as batched GEMM: labels are batch (in A, B and the output),
 * M (A and output), N (B and output) or K (A and B, summed). Each operand is used in place
 * when its M/K (or K/N) dims flatten into a BLAS matrix (possibly transposed, with a leading
 * dimension); otherwise it is first copied into [batch, M, K] / [batch, K, N] order. */
typedef struct ein_operand {
  drt_shape shape;
  int64_t strides[DRT_MAX_RANK];
  int8_t labels[DRT_MAX_RANK];
  const char *data;
} ein_operand;

static void dense_strides(const drt_shape *s, int64_t *st) {
  int64_t run = 1;
  for (int i = s->rank - 1; i >= 0; i--) {
    st[i] = run;
    run *= s->dims[i];
  }
}

static int find_label(const int8_t *labels, int rank, int l) {
  for (int i = 0; i < rank; i++)
    if (labels[i] == l) return i;
  return -1;
}

/* Flattens the dims of labels g[0..n) (outermost first) of operand o. On success *stride is
 * the element stride of the flattened index (0 when n == 0, meaning "any"). */
static bool flatten_group(const ein_operand *o, const int8_t *g, int n, int64_t *stride) {
  *stride = 0;
  if (n == 0) return true;
  for (int i = 0; i < n; i++) {
    int d = find_label(o->labels, o->shape.rank, g[i]);
    if (d < 0) return false;
    if (i + 1 < n) {
      int d2 = find_label(o->labels, o->shape.rank, g[i + 1]);
      if (o->strides[d] != o->strides[d2] * o->shape.dims[d2] && o->shape.dims[d] != 1) return false;
    }
  }
  int last = find_label(o->labels, o->shape.rank, g[n - 1]);
  *stride = o->strides[last];
  if (o->shape.dims[last] == 1 && n == 1) *stride = 0; /* a size-1 dim has no meaningful stride */
  return true;
}

/* Can operand o be read as a matrix rows(R) x cols(C)? Sets *trans and *ld. */
static bool as_matrix(const ein_operand *o, const int8_t *r, int nr, int64_t rflat, const int8_t *c, int nc,
                      int64_t cflat, bool *trans, int64_t *ld) {
  int64_t rs, cs;
  if (!flatten_group(o, r, nr, &rs) || !flatten_group(o, c, nc, &cs)) return false;
  /* row-major: columns unit-stride */
  if ((cs == 1 || cflat == 1) && (rflat == 1 || rs >= cflat)) {
    *trans = false;
    *ld = rflat == 1 ? (cflat > 0 ? cflat : 1) : rs;
    if (*ld < 1) *ld = 1;
    return true;
  }
  if ((rs == 1 || rflat == 1) && (cflat == 1 || cs >= rflat)) {
    *trans = true;
    *ld = cflat == 1 ? (rflat > 0 ? rflat : 1) : cs;
    if (*ld < 1) *ld = 1;
    return true;
  }
  return false;
}

/* Copies operand o into a dense buffer ordered by labels `order` (n entries). */
static drt_status ein_repack(drt_cpu_ctx *ctx, ein_operand *o, const int8_t *order, int n, size_t es, void **buf) {
  strided_copy sc;
  memset(&sc, 0, sizeof sc);
  sc.rank = n;
  drt_shape ns = {0};
  ns.rank = n;
  for (int i = 0; i < n; i++) {
    int d = find_label(o->labels, o->shape.rank, order[i]);
    sc.dims[i] = ns.dims[i] = o->shape.dims[d];
    sc.src_strides[i] = o->strides[d];
  }
  int64_t cnt = drt_shape_numel(&ns);
  *buf = malloc((size_t)(cnt > 0 ? cnt : 1) * es);
  if (!*buf) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "Einsum operand copy of %" PRId64 " elements", cnt);
  sc.elem = es;
  sc.src = o->data;
  sc.dst = *buf;
  strided_copy_run(ctx, &sc);
  o->shape = ns;
  dense_strides(&ns, o->strides);
  memcpy(o->labels, order, (size_t)n);
  o->data = *buf;
  return DRT_OK;
}

/* Returns true (and fills y) when the fast path applies; false to fall back. */
static drt_status einsum_gemm(drt_cpu_ctx *ctx, const drt_einsum_spec *sp, const drt_tensor *in, drt_tensor *y,
                              bool *done) {
  *done = false;
  ein_operand ops[2];
  for (int t = 0; t < 2; t++) {
    ops[t].shape = in[t].shape;
    dense_strides(&in[t].shape, ops[t].strides);
    memcpy(ops[t].labels, sp->op_labels[t], (size_t)in[t].shape.rank);
    ops[t].data = in[t].data;
    /* repeated labels (diagonals) -> generic */
    for (int i = 0; i < in[t].shape.rank; i++)
      for (int j = i + 1; j < in[t].shape.rank; j++)
        if (ops[t].labels[i] == ops[t].labels[j]) return DRT_OK;
  }
  int8_t bl[DRT_MAX_RANK], ml[DRT_MAX_RANK], nl[DRT_MAX_RANK], kl[DRT_MAX_RANK];
  int nbl = 0, nml = 0, nnl = 0, nkl = 0;
  int64_t msz = 1, nsz = 1, ksz = 1, count = 1;
  /* batch, M, N in output order */
  for (int i = 0; i < sp->out_rank; i++) {
    int l = sp->out_labels[i];
    int da = find_label(ops[0].labels, ops[0].shape.rank, l), db = find_label(ops[1].labels, ops[1].shape.rank, l);
    int64_t sz = sp->label_size[l];
    if (da >= 0 && db >= 0) {
      bl[nbl++] = (int8_t)l;
      count *= sz;
    } else if (da >= 0) {
      if (ops[0].shape.dims[da] != sz) return DRT_OK;
      ml[nml++] = (int8_t)l;
      msz *= sz;
    } else {
      if (ops[1].shape.dims[db] != sz) return DRT_OK;
      nl[nnl++] = (int8_t)l;
      nsz *= sz;
    }
  }
  /* K in A's order; a label only in one operand and not in the output -> generic */
  for (int t = 0; t < 2; t++)
    for (int i = 0; i < ops[t].shape.rank; i++) {
      int l = ops[t].labels[i];
      if (find_label(sp->out_labels, sp->out_rank, l) >= 0) continue;
      int other = find_label(ops[1 - t].labels, ops[1 - t].shape.rank, l);
      if (other < 0) return DRT_OK;
      if (t == 1) continue;
      if (ops[0].shape.dims[i] != sp->label_size[l] || ops[1].shape.dims[other] != sp->label_size[l]) return DRT_OK;
      kl[nkl++] = (int8_t)l;
      ksz *= sp->label_size[l];
    }
  if (msz * nsz * (ksz > 0 ? ksz : 1) < 64 && count > 1) return DRT_OK; /* tiny GEMMs: generic loop is cheaper */
  size_t es = drt_dtype_size(y->dtype);
  void *bufa = NULL, *bufb = NULL, *bufy = NULL;
  void **ptrs = NULL;
  drt_status st = DRT_OK;
  bool ta, tb;
  int64_t lda, ldb;
  if (!as_matrix(&ops[0], ml, nml, msz, kl, nkl, ksz, &ta, &lda)) {
    int8_t order[DRT_MAX_RANK];
    int no = 0;
    for (int i = 0; i < nbl; i++) order[no++] = bl[i];
    for (int i = 0; i < nml; i++) order[no++] = ml[i];
    for (int i = 0; i < nkl; i++) order[no++] = kl[i];
    st = ein_repack(ctx, &ops[0], order, no, es, &bufa);
    if (st) goto out;
    as_matrix(&ops[0], ml, nml, msz, kl, nkl, ksz, &ta, &lda);
  }
  if (!as_matrix(&ops[1], kl, nkl, ksz, nl, nnl, nsz, &tb, &ldb)) {
    int8_t order[DRT_MAX_RANK];
    int no = 0;
    for (int i = 0; i < nbl; i++) order[no++] = bl[i];
    for (int i = 0; i < nkl; i++) order[no++] = kl[i];
    for (int i = 0; i < nnl; i++) order[no++] = nl[i];
    st = ein_repack(ctx, &ops[1], order, no, es, &bufb);
    if (st) goto out;
    as_matrix(&ops[1], kl, nkl, ksz, nl, nnl, nsz, &tb, &ldb);
  }
  /* Output: Y[b] = A B (rows M, cols N), or Y[b]^T = B^T A^T when Y holds N x M. */
  ein_operand yo;
  yo.shape = y->shape;
  dense_strides(&y->shape, yo.strides);
  memcpy(yo.labels, sp->out_labels, (size_t)sp->out_rank);
  yo.data = y->data;
  bool ty;
  int64_t ldy;
  bool direct = as_matrix(&yo, ml, nml, msz, nl, nnl, nsz, &ty, &ldy);
  drt_shape ts = {0};
  if (!direct) {
    /* compute into [batch, M, N] then permute into Y */
    ts.rank = nbl + nml + nnl;
    int r = 0;
    for (int i = 0; i < nbl; i++) ts.dims[r++] = sp->label_size[bl[i]];
    for (int i = 0; i < nml; i++) ts.dims[r++] = sp->label_size[ml[i]];
    for (int i = 0; i < nnl; i++) ts.dims[r++] = sp->label_size[nl[i]];
    int64_t cnt = drt_shape_numel(&ts);
    bufy = malloc((size_t)(cnt > 0 ? cnt : 1) * es);
    if (!bufy) {
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "Einsum result of %" PRId64 " elements", cnt);
      goto out;
    }
    yo.shape = ts;
    dense_strides(&ts, yo.strides);
    r = 0;
    for (int i = 0; i < nbl; i++) yo.labels[r++] = bl[i];
    for (int i = 0; i < nml; i++) yo.labels[r++] = ml[i];
    for (int i = 0; i < nnl; i++) yo.labels[r++] = nl[i];
    yo.data = bufy;
    as_matrix(&yo, ml, nml, msz, nl, nnl, nsz, &ty, &ldy);
  }
  ptrs = malloc((size_t)(count > 0 ? count : 1) * 3 * sizeof(void *));
  if (!ptrs) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "Einsum batch of %" PRId64, count);
    goto out;
  }
  {
    /* batch strides per operand (0 where an operand broadcasts a size-1 batch dim) */
    int64_t bs[3][DRT_MAX_RANK];
    const ein_operand *all[3] = {&ops[0], &ops[1], &yo};
    for (int t = 0; t < 3; t++)
      for (int i = 0; i < nbl; i++) {
        int d = find_label(all[t]->labels, all[t]->shape.rank, bl[i]);
        bs[t][i] = all[t]->shape.dims[d] == 1 ? 0 : all[t]->strides[d];
      }
    int64_t idx[DRT_MAX_RANK] = {0};
    for (int64_t i = 0; i < count; i++) {
      for (int t = 0; t < 3; t++) {
        int64_t o = 0;
        for (int j = 0; j < nbl; j++) o += idx[j] * bs[t][j];
        ptrs[t * count + i] = (void *)(all[t]->data + (size_t)o * es);
      }
      for (int j = nbl - 1; j >= 0; j--) {
        if (++idx[j] < sp->label_size[bl[j]]) break;
        idx[j] = 0;
      }
    }
  }
  {
    drt_gemm_batch gb;
    memset(&gb, 0, sizeof gb);
    gb.dtype = y->dtype;
    gb.alpha = 1.0;
    gb.beta = 0.0;
    gb.count = count;
    if (!ty) { /* Y = op(A) op(B) */
      gb.trans_a = ta;
      gb.trans_b = tb;
      gb.m = msz;
      gb.n = nsz;
      gb.k = ksz;
      gb.lda = lda;
      gb.ldb = ldb;
      gb.ldc = ldy;
      gb.a = (const void *const *)ptrs;
      gb.b = (const void *const *)(ptrs + count);
    } else { /* Y^T = op(B)^T op(A)^T */
      gb.trans_a = !tb;
      gb.trans_b = !ta;
      gb.m = nsz;
      gb.n = msz;
      gb.k = ksz;
      gb.lda = ldb;
      gb.ldb = lda;
      gb.ldc = ldy;
      gb.a = (const void *const *)(ptrs + count);
      gb.b = (const void *const *)ptrs;
    }
    gb.c = ptrs + 2 * count;
    drt_gemm_batch_run(ctx, &gb);
  }
  if (!direct) {
    /* permute [batch, M, N] into the output order */
    strided_copy sc;
    memset(&sc, 0, sizeof sc);
    sc.rank = sp->out_rank;
    for (int i = 0; i < sp->out_rank; i++) {
      int d = find_label(yo.labels, yo.shape.rank, sp->out_labels[i]);
      sc.dims[i] = y->shape.dims[i];
      sc.src_strides[i] = yo.strides[d];
    }
    sc.elem = es;
    sc.src = bufy;
    sc.dst = y->data;
    strided_copy_run(ctx, &sc);
  }
  *done = true;
out:
  free(bufa);
  free(bufb);
  free(bufy);
  free(ptrs);
  return st;
}

/* One operand whose labels are a permutation of the output's (e.g. the unpatchify
 * "nhwpqc->nchpwq"): a strided copy. Returns false when the equation is not of that form. */
static bool einsum_permute(drt_cpu_ctx *ctx, const drt_einsum_spec *sp, const drt_tensor *x, drt_tensor *y) {
  int r = sp->op_rank[0];
  if (sp->num_operands != 1 || sp->out_rank != r) return false;
  int64_t st[DRT_MAX_RANK];
  dense_strides(&x->shape, st);
  strided_copy sc;
  memset(&sc, 0, sizeof sc);
  sc.rank = r;
  for (int i = 0; i < r; i++) {
    int d = find_label(sp->op_labels[0], r, sp->out_labels[i]);
    if (d < 0) return false;
    for (int k = d + 1; k < r; k++)
      if (sp->op_labels[0][k] == sp->out_labels[i]) return false; /* diagonal */
    sc.dims[i] = y->shape.dims[i];
    sc.src_strides[i] = st[d];
  }
  sc.elem = drt_dtype_size(y->dtype);
  sc.src = x->data;
  sc.dst = y->data;
  strided_copy_run(ctx, &sc);
  return true;
}

static drt_status k_einsum(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  const char *eq = drt_node_attr_string(n, "equation", NULL);
  if (!eq) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'equation' is required");
  if (n->num_inputs > DRT_EINSUM_MAX_OPERANDS)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "Einsum with %d operands", n->num_inputs);
  const drt_shape *shapes[DRT_EINSUM_MAX_OPERANDS];
  for (int i = 0; i < n->num_inputs; i++) shapes[i] = &in[i].shape;
  drt_einsum_spec sp;
  DRT_RETURN_IF_ERROR(drt_einsum_parse(eq, n->num_inputs, shapes, &sp));
  drt_tensor *y = &out[0];
  if (drt_shape_numel(&y->shape) == 0) return DRT_OK;
  if (einsum_permute(ctx, &sp, &in[0], y)) return DRT_OK;
  if (sp.num_operands == 2 && (y->dtype == DRT_DTYPE_FLOAT32 || y->dtype == DRT_DTYPE_FLOAT64)) {
    bool done;
    DRT_RETURN_IF_ERROR(einsum_gemm(ctx, &sp, in, y, &done));
    if (done) return DRT_OK;
  }
  return einsum_generic_run(ctx, &sp, in, y);
}

/* ---------------------------------------------------------------- table */

const drt_cpu_kernel_entry drt_cpu_kernels_linalg[] = {
    {DRT_OP_MATMUL, k_matmul, F32F64},
    {DRT_OP_GEMM, k_gemm, F32F64},
    {DRT_OP_EINSUM, k_einsum, F32F64},
    {DRT_OP_CONV, drt_cpu_conv, 0},
    {DRT_OP_CONV_TRANSPOSE, drt_cpu_conv_transpose, 0},
    {DRT_OP_MAX_POOL, drt_cpu_max_pool, F32F64},
    {DRT_OP_AVERAGE_POOL, drt_cpu_average_pool, F32F64},
    {DRT_OP_LP_POOL, drt_cpu_lp_pool, F32F64},
    {DRT_OP_GLOBAL_AVERAGE_POOL, drt_cpu_global_average_pool, F32F64},
    {DRT_OP_GLOBAL_MAX_POOL, drt_cpu_global_max_pool, F32F64},
    {DRT_OP_COUNT_, NULL, 0},
};
