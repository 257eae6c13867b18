/* CPU kernel for drt.Attention (see ir/ops.def and ir/infer_fused.h):
 *
 *   Y[b,h,i,:] = sum_j softmax_j(scale * Q[b,h,i,:] . K[b,h',j,:] (+ mask)) V[b,h',j,:]
 *   with h' = h / (H / Hkv), each operand read in place through its layout's strides.
 *
 * Flash-style: work is split into (batch, head, block of Q_BLOCK query rows) tasks run in
 * parallel; a task walks the keys in blocks of K_BLOCK with an online softmax (running max
 * m and sum l per row, accumulator rescaled by exp(m_old - m_new)), so no score matrix
 * larger than Q_BLOCK x K_BLOCK exists. Both products of a block are single-threaded BLAS
 * GEMMs on the tiles (operands whose rows or columns are contiguous are passed to BLAS
 * directly, transposed where needed; others are packed). Scores, sums and the accumulator
 * are fp32; row sums of the exponentials accumulate in double. A query row whose keys are
 * all masked to -inf produces zeros (the ONNX Attention convention). */
#if defined(__GNUC__) && !defined(__clang__)
/* Lets GCC if-convert float selects so the row loops vectorize (see runtime/cpu/reduce.h);
 * nothing here reads floating-point exception flags. */
#pragma GCC optimize("no-trapping-math")
#endif

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer_fused.h"
#include "runtime/cpu/fused.h"
#include "runtime/cpu/linalg.h" /* drt_sgemm_serial, drt_blas_threads_for_workers, AVX2 clones */
#include "runtime/cpu/reduce.h" /* vectorizable row helpers */

#define Q_BLOCK 64
#define K_BLOCK 512

typedef struct fa_job {
  const drt_fused_attention *a;
  const float *q, *k, *v;
  float *y;
  const void *mask;
  drt_dtype mask_dt;
  int64_t ms[4]; /* mask strides over (b, h, i, j), 0 on broadcast axes */
  int64_t nqb;   /* query blocks per (b, h) */
  atomic_bool oom;
} fa_job;

/* A rows x cols matrix at p with element (r, c) at p[r * rs + c * cs], prepared for BLAS:
 * either as stored (row-major, ld), as its transpose, or packed into `pack`. */
typedef struct blas_mat {
  const float *p;
  int64_t ld;
  bool trans; /* p holds the transpose (cols x rows, row-major) */
} blas_mat;

static blas_mat blas_view(const float *p, int64_t rs, int64_t cs, int64_t rows, int64_t cols, float *pack) {
  blas_mat m;
  if (cs == 1 && (rs >= cols || rows <= 1)) {
    m.p = p;
    m.ld = rows <= 1 || rs < cols ? cols : rs;
    m.trans = false;
  } else if (rs == 1 && (cs >= rows || cols <= 1)) {
    m.p = p;
    m.ld = cols <= 1 || cs < rows ? rows : cs;
    m.trans = true;
  } else {
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c = 0; c < cols; c++) pack[r * cols + c] = p[r * rs + c * cs];
    m.p = pack;
    m.ld = cols > 0 ? cols : 1;
    m.trans = false;
  }
  return m;
}

/* Applies mask row (b, h, i) and causal masking to scores row[0..nk) of keys j0... */
DRT_INLINE void mask_row(const fa_job *j, int64_t b, int64_t h, int64_t i, int64_t j0, float *row, int64_t nk) {
  const drt_fused_attention *a = j->a;
  if (a->has_mask) {
    int64_t base = b * j->ms[0] + h * j->ms[1] + i * j->ms[2] + j0 * j->ms[3], st = j->ms[3];
    if (a->mask_mode == DRT_ATTN_MASK_ADD) {
      if (j->mask_dt == DRT_DTYPE_FLOAT32) {
        const float *m = (const float *)j->mask + base;
        for (int64_t k = 0; k < nk; k++) row[k] += m[k * st];
      } else {
        for (int64_t k = 0; k < nk; k++) row[k] += (float)drt_load_f64(j->mask_dt, j->mask, (size_t)(base + k * st));
      }
    } else {
      const uint8_t *m = (const uint8_t *)j->mask + base;
      bool keep_if = a->mask_mode == DRT_ATTN_MASK_KEEP_TRUE;
      float fill = a->mask_fill;
      for (int64_t k = 0; k < nk; k++) row[k] = (m[k * st] != 0) == keep_if ? row[k] : fill;
    }
  }
  if (a->causal) {
    int64_t first_masked = i + 1 - j0; /* keys j > i are masked */
    for (int64_t k = first_masked < 0 ? 0 : first_masked; k < nk; k++) row[k] = -INFINITY;
  }
}

typedef struct fa_scratch {
  float *s;     /* Q_BLOCK x K_BLOCK scores / probabilities */
  float *o;     /* Q_BLOCK x Dv accumulator */
  float *m;     /* running max per row */
  double *l;    /* running sum per row */
  float *packq; /* Q_BLOCK x D */
  float *packk; /* K_BLOCK x D */
  float *packv; /* K_BLOCK x Dv */
  void *block;
} fa_scratch;

static bool scratch_alloc(fa_scratch *sc, const drt_fused_attention *a) {
  int64_t d = a->head_dim, dv = a->v_head_dim;
  size_t nf = (size_t)(Q_BLOCK * K_BLOCK + Q_BLOCK * dv + Q_BLOCK + Q_BLOCK * d + K_BLOCK * d + K_BLOCK * dv + 16);
  sc->block = malloc(nf * sizeof(float) + Q_BLOCK * sizeof(double));
  if (!sc->block) return false;
  sc->l = sc->block;
  float *f = (float *)(sc->l + Q_BLOCK);
  sc->s = f;
  f += Q_BLOCK * K_BLOCK;
  sc->o = f;
  f += Q_BLOCK * dv;
  sc->m = f;
  f += Q_BLOCK;
  sc->packq = f;
  f += Q_BLOCK * d;
  sc->packk = f;
  f += K_BLOCK * d;
  sc->packv = f;
  return true;
}

/* S = scale * Q K_blk^T and O = P V_blk with the small AVX2 kernel (runtime/cpu/sgemm_avx2.h)
 * when every key fits one block, Q rows are contiguous and the CPU has AVX2: K_blk is
 * transposed into packk ([D][nk]); V is read in place when its rows are contiguous, else
 * packed. small_scores returns false when not applicable (the BLAS path runs instead). */
#include "runtime/cpu/sgemm_avx2.h"

DRT_INLINE bool small_scores(const fa_job *j, const blas_mat *qm, const float *kp, int64_t rows, int64_t nk,
                             fa_scratch *sc) {
  const drt_fused_attention *a = j->a;
  if (qm->trans || nk > K_BLOCK || !drt_cpu_has_avx2_fma()) return false;
  int64_t D = a->head_dim, ks = a->k.stride[DRT_ATTN_S], kd = a->k.stride[DRT_ATTN_D];
  for (int64_t r = 0; r < nk; r++)
    for (int64_t c = 0; c < D; c++) sc->packk[c * nk + r] = kp[r * ks + c * kd];
  return drt_sgemm_rows_avx2(qm->p, qm->ld, sc->packk, nk, sc->s, K_BLOCK, 0, rows, nk, D, a->scale);
}

DRT_INLINE void small_pv(const fa_job *j, const float *vp, int64_t rows, int64_t nk, fa_scratch *sc) {
  const drt_fused_attention *a = j->a;
  int64_t Dv = a->v_head_dim, vs = a->v.stride[DRT_ATTN_S], vd = a->v.stride[DRT_ATTN_D];
  const float *b = vp;
  int64_t ldb = vs;
  if (vd != 1 || vs < Dv) {
    for (int64_t r = 0; r < nk; r++)
      for (int64_t c = 0; c < Dv; c++) sc->packv[r * Dv + c] = vp[r * vs + c * vd];
    b = sc->packv;
    ldb = Dv;
  }
  drt_sgemm_rows_avx2(sc->s, K_BLOCK, b, ldb, sc->o, Dv, 0, rows, Dv, nk, 1.0f);
}

DRT_INLINE void fa_task(const fa_job *j, int64_t t, fa_scratch *sc) {
  const drt_fused_attention *a = j->a;
  int64_t qb = t % j->nqb, bh = t / j->nqb;
  int64_t b = bh / a->heads, h = bh % a->heads;
  int64_t kvh = h / (a->heads / a->kv_heads);
  int64_t i0 = qb * Q_BLOCK, rows = a->q_seq - i0 < Q_BLOCK ? a->q_seq - i0 : Q_BLOCK;
  int64_t D = a->head_dim, Dv = a->v_head_dim, T = a->kv_seq;
  const drt_attn_view *qv = &a->q, *kv = &a->k, *vv = &a->v, *ov = &a->out;
  const float *qp = j->q + b * qv->stride[DRT_ATTN_B] + h * qv->stride[DRT_ATTN_H] + i0 * qv->stride[DRT_ATTN_S];
  const float *kp = j->k + b * kv->stride[DRT_ATTN_B] + kvh * kv->stride[DRT_ATTN_H];
  const float *vp = j->v + b * vv->stride[DRT_ATTN_B] + kvh * vv->stride[DRT_ATTN_H];
  blas_mat qm = blas_view(qp, qv->stride[DRT_ATTN_S], qv->stride[DRT_ATTN_D], rows, D, sc->packq);
  for (int64_t r = 0; r < rows; r++) {
    sc->m[r] = -INFINITY;
    sc->l[r] = 0.0;
  }
  /* causal: keys past the block's last query row are never needed */
  int64_t kend = a->causal && i0 + rows < T ? i0 + rows : T;
  bool first = true;
  for (int64_t j0 = 0; j0 < kend; j0 += K_BLOCK) {
    int64_t nk = kend - j0 < K_BLOCK ? kend - j0 : K_BLOCK;
    /* S = scale * Q K^T: op(B) must be K_blk^T (D x nk) */
    bool small = j0 == 0 && kend <= K_BLOCK && small_scores(j, &qm, kp, rows, nk, sc);
    if (!small) {
      blas_mat km = blas_view(kp + j0 * kv->stride[DRT_ATTN_S], kv->stride[DRT_ATTN_S], kv->stride[DRT_ATTN_D], nk,
                              D, sc->packk);
      drt_sgemm_serial(qm.trans, !km.trans, rows, nk, D, a->scale, qm.p, qm.ld, km.p, km.ld, 0.0f, sc->s, K_BLOCK);
    }
    for (int64_t r = 0; r < rows; r++) {
      float *row = sc->s + r * K_BLOCK;
      mask_row(j, b, h, i0 + r, j0, row, nk);
      float mx = drt_rd_max(row, nk);
      float m_new = mx > sc->m[r] || mx != mx ? mx : sc->m[r];
      if (m_new == -INFINITY) { /* every key so far masked */
        memset(row, 0, (size_t)nk * sizeof(float));
        continue;
      }
      float corr = sc->m[r] == -INFINITY ? 0.0f : drt_fast_expf(sc->m[r] - m_new);
      double sum = drt_rd_exp_sum(row, row, nk, m_new);
      sc->l[r] = sc->l[r] * corr + sum;
      sc->m[r] = m_new;
      if (!first && corr != 1.0f) drt_rd_scale(sc->o + r * Dv, sc->o + r * Dv, Dv, corr);
    }
    /* O += P V_blk */
    if (small) {
      small_pv(j, vp, rows, nk, sc);
    } else {
      blas_mat vm = blas_view(vp + j0 * vv->stride[DRT_ATTN_S], vv->stride[DRT_ATTN_S], vv->stride[DRT_ATTN_D], nk,
                              Dv, sc->packv);
      drt_sgemm_serial(false, vm.trans, rows, Dv, nk, 1.0f, sc->s, K_BLOCK, vm.p, vm.ld, first ? 0.0f : 1.0f, sc->o,
                       Dv);
    }
    first = false;
  }
  float *yp = j->y + b * ov->stride[DRT_ATTN_B] + h * ov->stride[DRT_ATTN_H] + i0 * ov->stride[DRT_ATTN_S];
  int64_t ys = ov->stride[DRT_ATTN_S], yd = ov->stride[DRT_ATTN_D];
  for (int64_t r = 0; r < rows; r++) {
    const float *o = sc->o + r * Dv;
    float *y = yp + r * ys;
    if (first || sc->l[r] == 0.0) { /* no keys, or all masked */
      for (int64_t c = 0; c < Dv; c++) y[c * yd] = 0.0f;
      continue;
    }
    float inv = (float)(1.0 / sc->l[r]);
    if (yd == 1) {
      for (int64_t c = 0; c < Dv; c++) y[c] = o[c] * inv;
    } else {
      for (int64_t c = 0; c < Dv; c++) y[c * yd] = o[c] * inv;
    }
  }
}

DRT_INLINE void fa_run_body(void *arg, int64_t begin, int64_t end) {
  fa_job *j = arg;
  fa_scratch sc;
  if (!scratch_alloc(&sc, j->a)) {
    atomic_store(&j->oom, true);
    return;
  }
  for (int64_t t = begin; t < end; t++) fa_task(j, t, &sc);
  free(sc.block);
}

/* The task loop, compiled for the baseline target and (x86) for AVX2/FMA. */
static void fa_run(void *arg, int64_t begin, int64_t end) { fa_run_body(arg, begin, end); }
#if DRT_HAVE_X86_CLONES
DRT_TARGET_AVX2 static void fa_run_avx2(void *arg, int64_t begin, int64_t end) { fa_run_body(arg, begin, end); }
#endif

drt_status drt_cpu_fused_attention(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  const drt_shape *shapes[4] = {NULL, NULL, NULL, NULL};
  for (int i = 0; i < 4 && i < n->num_inputs; i++) shapes[i] = in[i].data ? &in[i].shape : NULL;
  drt_fused_attention a;
  DRT_RETURN_IF_ERROR(drt_fused_attention_resolve(n, shapes, &a));
  for (int i = 0; i < 3; i++)
    if (in[i].dtype != DRT_DTYPE_FLOAT32)
      return DRT_ERROR(DRT_STATUS_INTERNAL, "input %d: unexpected dtype %s", i, drt_dtype_name(in[i].dtype));
  if (!drt_shape_equal(&a.out_shape, &out[0].shape))
    return DRT_ERROR(DRT_STATUS_INTERNAL, "output shape does not match the layout");
  fa_job j;
  memset(&j, 0, sizeof j);
  atomic_init(&j.oom, false);
  j.a = &a;
  j.q = in[0].data;
  j.k = in[1].data;
  j.v = in[2].data;
  j.y = out[0].data;
  if (a.has_mask) {
    if (a.mask_mode != DRT_ATTN_MASK_ADD && in[3].dtype != DRT_DTYPE_BOOL)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 3 (mask) must be bool for mask_mode %d", (int)a.mask_mode);
    if (a.mask_mode == DRT_ATTN_MASK_ADD && !drt_dtype_is_float(in[3].dtype))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 3 (mask) must be a float tensor for an additive mask");
    j.mask = in[3].data;
    j.mask_dt = in[3].dtype;
    drt_shape target = {4, {a.batch, a.heads, a.q_seq, a.kv_seq}};
    drt_broadcast_strides(&in[3].shape, &target, j.ms);
  }
  if (a.batch * a.heads * a.q_seq == 0 || a.v_head_dim == 0) return DRT_OK;
  j.nqb = (a.q_seq + Q_BLOCK - 1) / Q_BLOCK;
  drt_blas_threads_for_workers();
  drt_range_fn run = fa_run;
#if DRT_HAVE_X86_CLONES
  if (drt_cpu_has_avx2_fma()) run = fa_run_avx2;
#endif
  drt_parallel_for(ctx, a.batch * a.heads * j.nqb, 1, run, &j);
  if (atomic_load(&j.oom)) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "attention scratch buffers");
  return DRT_OK;
}
