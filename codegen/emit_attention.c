/* CUDA emitter for drt.Attention (semantics: ir/ops.def, runtime/cpu/fused_attention.c; geometry:
 * ir/infer_fused.h; kernel: codegen/kernels/attention.cuh).
 *
 * One launch of drt_attention<...>: grid.x = ceil(Sq / BQ) * B * H blocks of BQ / 16 warps.
 * Shapes, strides, scale and mask_fill are baked into the wrapper. Tensor cores (wmma) for fp16 /
 * bf16 storage and, under tf32 precision, for fp32 storage (TF32 16x16x8); the SIMT variant keeps
 * fp32 products under fp32 precision. The tile sizes are the first of a short list whose shared
 * memory fits (mirrors drt_attn_cfg in attention.cuh).
 *
 * Unfused lowering, for what the fused kernel does not take (head sizes above 256 -- single-head
 * spatial attention of UNets and VAE decoders, D = 320..640 -- or tiles that do not fit shared
 * memory): per chunk of (batch, head) pairs and query rows, whose fp32 score block fits
 * ATTN_UNFUSED_SCRATCH bytes of scratch,
 *   1. S = scale Q K^T    cuBLASLt, Q/K in storage type, fp32 scores into scratch
 *   2. P = softmax(S)     drt_attn_softmax_rows (attention.cuh): mask, causal, fp32 math, P in the
 *                         storage type written over S row by row
 *   3. O = P V            cuBLASLt straight into the output layout (as O^T = V^T P^T when the
 *                         output is channel-major, e.g. "b_d_s_s")
 * The (batch, head) pairs of a chunk run as strided batches: one GEMM per maximal run of pairs
 * over which every operand's offset is linear (all of them for the usual layouts; per batch index
 * for "b_s_hd" with several heads; per key/value head group for GQA). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "codegen/cg.h"
#include "ir/infer_fused.h"
#include "ir/infer_reduce.h"

#define ATTN_MAX_HEAD_DIM 256
/* 99 KB: the opt-in per-block limit of sm_86 / sm_89 (101376 bytes), so the preferred tiles load on
 * every supported GPU; sm_80 (163 KB) and sm_90 (227 KB) allow more (ATTN_SMEM_MAX) */
#define ATTN_SMEM_PREFERRED (99u * 1024u)
#define ATTN_SMEM_MAX (160u * 1024u)       /* opt-in limit on sm_80 is 163 KB */

static uint32_t round128(uint64_t x) { return (uint32_t)((x + 127u) & ~(uint64_t)127u); }

/* Dynamic shared memory of drt_attn_cfg<T, D, DV, BQ, BK, TC, STAGES>::SMEM. */
static uint32_t attn_smem(int64_t d, int64_t dv, int bq, int bk, bool tc, int stages, uint32_t elem) {
  int64_t dp = (d + 15) / 16 * 16, dvp = (dv + 15) / 16 * 16;
  int64_t ldq = tc ? dp + 8 : dp + 4, ldk = tc ? dp + 8 : dp + 1, ldv = tc ? dvp + 8 : dvp + 4;
  int64_t lds = bk + 4, ldo = dvp + 4;
  return round128((uint64_t)(bq * ldq) * elem) + (uint32_t)stages * round128((uint64_t)(bk * ldk) * elem) +
         (uint32_t)stages * round128((uint64_t)(bk * ldv) * elem) + round128((uint64_t)(bq * lds) * 4u) +
         round128((uint64_t)(bq * ldo) * 4u) + round128((uint64_t)bq * 4u);
}

typedef struct attn_tiles {
  int bq, bk, stages;
} attn_tiles;

/* The first configuration within the preferred budget, else the first within the limit. Tensor-core
 * kernels prefer two K/V stages (cp.async copies the next tile during the current one). */
static bool pick_tiles(int64_t d, int64_t dv, bool tc, uint32_t elem, attn_tiles *out, uint32_t *smem) {
  static const attn_tiles k_tc[] = {{64, 64, 2}, {64, 32, 2}, {64, 64, 1}, {64, 32, 1},
                                    {32, 32, 2}, {32, 32, 1}, {16, 32, 1}};
  static const attn_tiles k_simt[] = {{64, 64, 1}, {64, 32, 1}, {32, 32, 1}, {16, 32, 1}};
  const attn_tiles *list = tc ? k_tc : k_simt;
  size_t n = tc ? sizeof k_tc / sizeof k_tc[0] : sizeof k_simt / sizeof k_simt[0];
  const uint32_t budgets[2] = {ATTN_SMEM_PREFERRED, ATTN_SMEM_MAX};
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < n; i++) {
      uint32_t s = attn_smem(d, dv, list[i].bq, list[i].bk, tc, list[i].stages, elem);
      if (s <= budgets[pass]) {
        *out = list[i];
        *smem = s;
        return true;
      }
    }
  return false;
}

/* Mask strides over (b, h, i, j): numpy broadcasting of `m` to (B, H, Sq, Skv), 0 on broadcast dims. */
static void mask_strides(const drt_shape *m, int64_t out[4]) {
  int64_t s = 1;
  for (int i = 3; i >= 0; i--) {
    int j = i - (4 - m->rank);
    if (j < 0) {
      out[i] = 0;
      continue;
    }
    out[i] = m->dims[j] == 1 ? 0 : s;
    s *= m->dims[j];
  }
}

static uint32_t f32_bits(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return u;
}

/* ---- unfused lowering ------------------------------------------------------------------------ */
#ifndef ATTN_UNFUSED_SCRATCH /* bytes of fp32 scores per chunk (overridable to test the chunking) */
#define ATTN_UNFUSED_SCRATCH (256ull << 20)
#endif
#define ATTN_SMX_BLOCK 256

/* A rows x cols matrix with element (r, c) at r * rs + c * cs as a cuBLASLt operand: stored
 * row-major with row stride *ld (*trans false), or its transpose stored so (*trans true). */
static bool mat_view(int64_t rs, int64_t cs, int64_t rows, int64_t cols, bool *trans, int64_t *ld) {
  if ((cs == 1 || cols <= 1) && (rows <= 1 || rs >= cols)) {
    *trans = false;
    *ld = rows <= 1 ? cols : rs;
    return true;
  }
  if ((rs == 1 || rows <= 1) && (cols <= 1 || cs >= rows)) {
    *trans = true;
    *ld = cols <= 1 ? rows : cs;
    return true;
  }
  return false;
}

/* Element offsets of Q, K, V and Y for (batch, head) pair bh at query row q0. */
static void pair_offsets(const drt_fused_attention *a, int64_t bh, int64_t q0, int64_t off[4]) {
  int64_t b = bh / a->heads, h = bh % a->heads, kh = h / (a->heads / a->kv_heads);
  off[0] = b * a->q.stride[DRT_ATTN_B] + h * a->q.stride[DRT_ATTN_H] + q0 * a->q.stride[DRT_ATTN_S];
  off[1] = b * a->k.stride[DRT_ATTN_B] + kh * a->k.stride[DRT_ATTN_H];
  off[2] = b * a->v.stride[DRT_ATTN_B] + kh * a->v.stride[DRT_ATTN_H];
  off[3] = b * a->out.stride[DRT_ATTN_B] + h * a->out.stride[DRT_ATTN_H] + q0 * a->out.stride[DRT_ATTN_S];
}

/* The longest run of pairs bh, bh + 1, ... (< end) over which every operand offset is linear with
 * a non-negative step; off and step receive the offsets at bh and the steps. */
static int64_t pair_run(const drt_fused_attention *a, int64_t bh, int64_t end, int64_t q0, int64_t off[4],
                        int64_t step[4]) {
  pair_offsets(a, bh, q0, off);
  for (int i = 0; i < 4; i++) step[i] = 0;
  if (bh + 1 >= end) return 1;
  int64_t o[4];
  pair_offsets(a, bh + 1, q0, o);
  for (int i = 0; i < 4; i++) {
    step[i] = o[i] - off[i];
    if (step[i] < 0) {
      for (int t = 0; t < 4; t++) step[t] = 0;
      return 1;
    }
  }
  int64_t len = 2;
  for (; bh + len < end; len++) {
    pair_offsets(a, bh + len, q0, o);
    bool lin = true;
    for (int i = 0; i < 4; i++) lin = lin && o[i] == off[i] + len * step[i];
    if (!lin) break;
  }
  return len;
}

static drt_cuda_arg arg_plus(drt_cuda_arg x, uint64_t bytes) {
  x.offset += bytes;
  return x;
}

static drt_status emit_unfused(drt_cg *cg, const drt_node *n, const drt_fused_attention *a, drt_dtype st,
                               const char *mt_name, int mode, const int64_t ms[4]) {
  const drt_value *vq = drt_node_input(n, 0), *vk = drt_node_input(n, 1), *vv = drt_node_input(n, 2);
  const drt_value *vm = drt_node_input(n, 3), *vo = n->outputs[0];
  int64_t D = a->head_dim, Dv = a->v_head_dim, T = a->kv_seq, Sq = a->q_seq, BH = a->batch * a->heads;
  if (D < 1 || T < 1)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "head size %" PRId64 " with %" PRId64 " keys (device attention needs "
                     "both >= 1)", D, T);
  uint64_t elem = st == DRT_DTYPE_FLOAT32 ? 4u : 2u;
  int64_t ldp = T * (int64_t)(4u / elem); /* P row stride in elements of the storage type */

  /* chunk: cnt pairs x qn query rows of fp32 scores within the scratch budget */
  uint64_t row_bytes = (uint64_t)T * 4u;
  int64_t qn = Sq, cnt_max;
  if (row_bytes * (uint64_t)Sq <= ATTN_UNFUSED_SCRATCH) {
    cnt_max = (int64_t)(ATTN_UNFUSED_SCRATCH / (row_bytes * (uint64_t)Sq));
    if (cnt_max > BH) cnt_max = BH;
  } else {
    cnt_max = 1;
    qn = (int64_t)(ATTN_UNFUSED_SCRATCH / row_bytes);
    if (qn < 1) qn = 1;
  }
  if (cnt_max * qn > INT32_MAX)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%" PRId64 " score rows exceed the grid limit", cnt_max * qn);

  /* operand views: Q as op(A) [qn, D]; K^T as op(B) [D, T]; V as op(B) [T, Dv]; Y [qn, Dv] */
  const int64_t *qs = a->q.stride, *ks = a->k.stride, *vs = a->v.stride, *os = a->out.stride;
  bool tq = false, tk = false, tv = false, to = false, tvt = false;
  int64_t ldq = 0, ldk = 0, ldv = 0, ldo = 0, ldvt = 0;
  if (!mat_view(qs[DRT_ATTN_S], qs[DRT_ATTN_D], qn, D, &tq, &ldq) ||
      !mat_view(ks[DRT_ATTN_D], ks[DRT_ATTN_S], D, T, &tk, &ldk))
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "unfused attention: Q or K has neither contiguous rows nor contiguous "
                     "columns");
  bool out_t; /* Y^T = V^T P^T when Y's rows are not contiguous */
  if (mat_view(os[DRT_ATTN_S], os[DRT_ATTN_D], qn, Dv, &to, &ldo) && !to) {
    out_t = false;
    if (!mat_view(vs[DRT_ATTN_S], vs[DRT_ATTN_D], T, Dv, &tv, &ldv))
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "unfused attention: V has neither contiguous rows nor columns");
  } else if (mat_view(os[DRT_ATTN_D], os[DRT_ATTN_S], Dv, qn, &to, &ldo) && !to) {
    out_t = true;
    if (!mat_view(vs[DRT_ATTN_D], vs[DRT_ATTN_S], Dv, T, &tvt, &ldvt))
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "unfused attention: V has neither contiguous rows nor columns");
  } else {
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "unfused attention: the output has neither contiguous rows nor columns");
  }

  /* softmax kernel (chunk origin as immediates: one kernel for every chunk) */
  char mstr[160];
  snprintf(mstr, sizeof mstr, "{%" PRId64 "LL, %" PRId64 "LL, %" PRId64 "LL, %" PRId64 "LL}", ms[0], ms[1], ms[2],
           ms[3]);
  const char *t_name = drt_cg_ctype(cg, st);
  int32_t kernel;
  DRT_RETURN_IF_ERROR(drt_cg_kernel(
      cg, ATTN_SMX_BLOCK, &kernel,
      "extern \"C\" __global__ void __launch_bounds__(%d) @NAME@(drt_kargs a) {\n"
      "  const drt_attn_smx_geom g = {%" PRId64 "LL, %" PRId64 "LL, %" PRId64 "LL, %" PRId64 "LL, %s, "
      "__uint_as_float(0x%08" PRIx32 "u)};\n"
      "  drt_attn_softmax_rows<%s, %s, %d, %s, %d>(g, (float *)a.u[0], (const %s *)a.u[1], (long long)a.u[2], "
      "(long long)a.u[3]);\n"
      "}\n",
      ATTN_SMX_BLOCK, a->heads, Sq, T, qn, mstr, f32_bits(a->mask_fill), t_name, mt_name, mode,
      a->causal ? "true" : "false", ATTN_SMX_BLOCK, mt_name));

  drt_cuda_arg scratch = drt_cg_scratch(cg, (uint64_t)cnt_max * (uint64_t)qn * row_bytes);
  drt_cuda_arg aq = drt_cg_arg_value(vq), ak = drt_cg_arg_value(vk), av = drt_cg_arg_value(vv),
               ao = drt_cg_arg_value(vo);
  bool tf32 = drt_cg_precision(cg) == DRT_CUDA_PRECISION_TF32;
  uint64_t chunk_rows = (uint64_t)qn * (uint64_t)T; /* fp32 scores per pair in the chunk */

  for (int64_t q0 = 0; q0 < Sq; q0 += qn) {
    int64_t rows = Sq - q0 < qn ? Sq - q0 : qn;
    for (int64_t bh0 = 0; bh0 < BH; bh0 += cnt_max) {
      int64_t cnt = BH - bh0 < cnt_max ? BH - bh0 : cnt_max;
      /* 1. S = scale Q K^T */
      for (int64_t bh = bh0; bh < bh0 + cnt;) {
        int64_t off[4], step[4];
        int64_t len = pair_run(a, bh, bh0 + cnt, q0, off, step);
        drt_cuda_gemm g;
        memset(&g, 0, sizeof g);
        g.a = arg_plus(aq, (uint64_t)off[0] * elem);
        g.b = arg_plus(ak, (uint64_t)off[1] * elem);
        g.c = drt_cg_arg_none();
        g.d = arg_plus(scratch, (uint64_t)(bh - bh0) * chunk_rows * 4u);
        g.bias = drt_cg_arg_none();
        g.a_type = g.b_type = st;
        g.c_type = g.d_type = g.bias_type = DRT_DTYPE_FLOAT32;
        g.m = rows;
        g.n = T;
        g.k = D;
        g.batch = len;
        g.trans_a = tq;
        g.trans_b = tk;
        g.lda = ldq;
        g.ldb = ldk;
        g.ldd = g.ldc = T;
        g.stride_a = step[0];
        g.stride_b = step[1];
        g.stride_c = g.stride_d = len > 1 ? (int64_t)chunk_rows : 0;
        g.alpha = a->scale;
        g.beta = 0.0f;
        g.epilogue = DRT_CUDA_EPI_NONE;
        g.tf32 = tf32;
        DRT_RETURN_IF_ERROR(drt_cg_gemm(cg, &g));
        bh += len;
      }
      /* 2. P = softmax(S + mask) over rows of the chunk (rows per pair: qn, the last chunk may
       * hold fewer valid rows, which only happens with one pair per chunk) */
      drt_cuda_arg args[4] = {scratch, a->has_mask ? drt_cg_arg_value(vm) : drt_cg_arg_none(), drt_cg_arg_i64(bh0),
                              drt_cg_arg_i64(q0)};
      const uint32_t grid[3] = {(uint32_t)(cnt * (cnt > 1 ? qn : rows)), 1, 1}, block[3] = {ATTN_SMX_BLOCK, 1, 1};
      DRT_RETURN_IF_ERROR(drt_cg_launch(cg, kernel, grid, block, 0, args, 4));
      /* 3. Y = P V */
      for (int64_t bh = bh0; bh < bh0 + cnt;) {
        int64_t off[4], step[4];
        int64_t len = pair_run(a, bh, bh0 + cnt, q0, off, step);
        drt_cuda_gemm g;
        memset(&g, 0, sizeof g);
        drt_cuda_arg ap = arg_plus(scratch, (uint64_t)(bh - bh0) * chunk_rows * 4u);
        drt_cuda_arg avv = arg_plus(av, (uint64_t)off[2] * elem);
        int64_t sp = len > 1 ? (int64_t)chunk_rows * (int64_t)(4u / elem) : 0;
        if (!out_t) {
          g.a = ap;
          g.b = avv;
          g.m = rows;
          g.n = Dv;
          g.trans_a = false;
          g.lda = ldp;
          g.trans_b = tv;
          g.ldb = ldv;
          g.stride_a = sp;
          g.stride_b = step[2];
        } else {
          g.a = avv;
          g.b = ap;
          g.m = Dv;
          g.n = rows;
          g.trans_a = tvt;
          g.lda = ldvt;
          g.trans_b = true;
          g.ldb = ldp;
          g.stride_a = step[2];
          g.stride_b = sp;
        }
        g.k = T;
        g.c = drt_cg_arg_none();
        g.d = arg_plus(ao, (uint64_t)off[3] * elem);
        g.bias = drt_cg_arg_none();
        g.a_type = g.b_type = g.c_type = g.d_type = g.bias_type = st;
        g.batch = len;
        g.ldd = g.ldc = ldo;
        g.stride_c = g.stride_d = step[3];
        g.alpha = 1.0f;
        g.beta = 0.0f;
        g.epilogue = DRT_CUDA_EPI_NONE;
        g.tf32 = tf32;
        DRT_RETURN_IF_ERROR(drt_cg_gemm(cg, &g));
        bh += len;
      }
    }
  }
  return DRT_OK;
}

/* The drt_attn_geom initializer of a node; every index in the kernels is a long long. */
static drt_status geom_text(const drt_fused_attention *a, const int64_t ms[4], char *geom, size_t size) {
  const drt_attn_view *views[4] = {&a->q, &a->k, &a->v, &a->out};
  int len = snprintf(geom, size, "{%" PRId64 "LL, %" PRId64 "LL, %" PRId64 "LL, %" PRId64 "LL",
                     a->heads, a->heads / a->kv_heads, a->q_seq, a->kv_seq);
  for (int t = 0; t < 5 && len > 0 && (size_t)len < size; t++) {
    const int64_t *s = t < 4 ? views[t]->stride : ms;
    len += snprintf(geom + len, size - (size_t)len, ", {%" PRId64 "LL, %" PRId64 "LL, %" PRId64 "LL, %" PRId64
                    "LL}", s[0], s[1], s[2], s[3]);
  }
  if (len > 0 && (size_t)len < size)
    len += snprintf(geom + len, size - (size_t)len, ", __uint_as_float(0x%08" PRIx32 "u), __uint_as_float(0x%08"
                    PRIx32 "u)}", f32_bits(a->scale), f32_bits(a->mask_fill));
  if (len < 0 || (size_t)len >= size) return DRT_ERROR(DRT_STATUS_INTERNAL, "attention geometry text too long");
  return DRT_OK;
}

/* fp16/bf16, padded head dims <= 128: drt_attention_mma (kernels/attention.cuh), 4 warps and
 * 64 WM query rows per block. WM = 2 (each K/V fragment feeds two MMAs: half the shared-memory
 * traffic per FLOP) when the launch still has blocks for two waves of 128 SMs; WM = 1 keeps small
 * launches spread over the GPU. The node attribute cuda_block_rows (64 or 128; drt compile sets it
 * from DRT_CUDA_ATTN_ROWS) overrides the choice. Key tiles of 64, 32 when WM = 2 and the padded
 * value head exceeds 96 (registers). Dynamic shared memory as drt_attn_mma_cfg::SMEM. */
#define ATTN_MMA_WM2_MIN_BLOCKS 256
/* Key splits when even 64-row blocks leave the GPU short of work (fewer than two per SM of a
 * 132-SM GPU): enough splits for four blocks per SM, each at least two key tiles, at most
 * ATTN_MAX_SPLITS; partial results in scratch, merged by a second kernel. The attribute
 * cuda_kv_splits (1..8) overrides. */
#define ATTN_SPLIT_BELOW_BLOCKS 264
#define ATTN_SPLIT_TARGET_BLOCKS 528
#define ATTN_MAX_SPLITS 4

static drt_status emit_attention_mma(drt_cg *cg, const drt_node *n, const drt_fused_attention *a, const char *t_name,
                                     const char *mt_name, int mode, const int64_t ms[4]) {
  const drt_value *vq = drt_node_input(n, 0), *vk = drt_node_input(n, 1), *vv = drt_node_input(n, 2);
  const drt_value *vm = drt_node_input(n, 3), *vo = n->outputs[0];
  int64_t rows = drt_node_attr_int(n, "cuda_block_rows", 0);
  if (rows != 0 && rows != 64 && rows != 128)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute cuda_block_rows is %" PRId64 " (64 or 128)", rows);
  if (rows == 0) rows = (a->q_seq + 127) / 128 * a->batch * a->heads >= ATTN_MMA_WM2_MIN_BLOCKS ? 128 : 64;
  const int wm = (int)(rows / 64);
  int64_t dp = (a->head_dim + 15) / 16 * 16, dvp = (a->v_head_dim + 15) / 16 * 16;
  const int bk = wm == 2 && dvp > 96 ? 32 : 64;
  int64_t nqb = (a->q_seq + rows - 1) / rows, blocks = nqb * a->batch * a->heads;
  if (blocks > INT32_MAX) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%" PRId64 " attention blocks", blocks);
  int64_t splits = drt_node_attr_int(n, "cuda_kv_splits", 0);
  if (splits < 0 || splits > 8)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute cuda_kv_splits is %" PRId64 " (0: automatic, 1..8)",
                     splits);
  if (splits == 0) {
    splits = 1;
    if (wm == 1 && blocks < ATTN_SPLIT_BELOW_BLOCKS) {
      splits = (ATTN_SPLIT_TARGET_BLOCKS + blocks - 1) / blocks;
      int64_t max_by_keys = a->kv_seq / (2 * bk);
      if (splits > max_by_keys) splits = max_by_keys;
      if (splits > ATTN_MAX_SPLITS) splits = ATTN_MAX_SPLITS;
      if (splits < 1) splits = 1;
    }
  }
  /* keys per split: a multiple of the key tile; no empty trailing split */
  int64_t ksplit = 0;
  if (splits > 1 && a->kv_seq >= 1) { /* a forced split of no keys: none */
    ksplit = ((a->kv_seq + splits - 1) / splits + bk - 1) / bk * bk;
    splits = (a->kv_seq + ksplit - 1) / ksplit;
    if (splits <= 1) ksplit = 0, splits = 1;
  }
  /* drt_attn_mma_cfg<D, DV, WM, BK>::SMEM: Q, two K stages, two V stages */
  uint32_t smem = round128((uint64_t)rows * (uint64_t)(dp + 8) * 2u) +
                  round128((uint64_t)bk * (uint64_t)(dp + 8) * 2u) * 2u +
                  round128((uint64_t)bk * (uint64_t)(dvp + 8) * 2u) * 2u;
  char geom[1024];
  DRT_RETURN_IF_ERROR(geom_text(a, ms, geom, sizeof geom));
  int32_t kernel;
  DRT_RETURN_IF_ERROR(drt_cg_kernel(
      cg, 128, &kernel,
      "extern \"C\" __global__ void __launch_bounds__(128) @NAME@(drt_kargs a) {\n"
      "  const drt_attn_geom g = %s;\n"
      "  drt_attention_mma<%s, %s, %" PRId64 ", %" PRId64 ", %d, %s, %d, %d, %" PRId64 ">(g, (const %s *)a.u[0], "
      "(const %s *)a.u[1], (const %s *)a.u[2], (const %s *)a.u[3], (%s *)a.u[4]%s);\n"
      "}\n",
      geom, t_name, mt_name, a->head_dim, a->v_head_dim, mode, a->causal ? "true" : "false", wm, bk, ksplit, t_name,
      t_name, t_name, mt_name, t_name,
      ksplit ? ", drt_attn_split_part{(float *)a.u[5], (float *)a.u[6]}" : ""));
  drt_cuda_arg args[7] = {drt_cg_arg_value(vq), drt_cg_arg_value(vk), drt_cg_arg_value(vv),
                          a->has_mask ? drt_cg_arg_value(vm) : drt_cg_arg_none(), drt_cg_arg_value(vo),
                          drt_cg_arg_none(), drt_cg_arg_none()};
  const uint32_t block[3] = {128, 1, 1};
  if (!ksplit) {
    const uint32_t grid[3] = {(uint32_t)blocks, 1, 1};
    return drt_cg_launch(cg, kernel, grid, block, smem, args, 5);
  }
  /* partial results in scratch: o [splits][B H Sq][Dv] and (m, l) [splits][B H Sq][2], fp32 */
  const int64_t nrows = a->batch * a->heads * a->q_seq;
  const uint64_t o_bytes = (uint64_t)splits * (uint64_t)nrows * (uint64_t)a->v_head_dim * 4u;
  const uint64_t ml_off = (o_bytes + 255u) / 256u * 256u;
  drt_cuda_arg scratch = drt_cg_scratch(cg, ml_off + (uint64_t)splits * (uint64_t)nrows * 8u);
  args[5] = scratch;
  args[6] = scratch;
  args[6].offset += ml_off;
  const uint32_t grid[3] = {(uint32_t)blocks, (uint32_t)splits, 1};
  DRT_RETURN_IF_ERROR(drt_cg_launch(cg, kernel, grid, block, smem, args, 7));
  int32_t combine;
  DRT_RETURN_IF_ERROR(drt_cg_kernel(
      cg, 256, &combine,
      "extern \"C\" __global__ void __launch_bounds__(256) @NAME@(drt_kargs a) {\n"
      "  const drt_attn_geom g = %s;\n"
      "  drt_attn_split_combine<%s, %" PRId64 ", %" PRId64 ">(g, drt_attn_split_part{(float *)a.u[0], "
      "(float *)a.u[1]}, %" PRId64 "LL, (%s *)a.u[2]);\n"
      "}\n",
      geom, t_name, a->v_head_dim, splits, nrows, t_name));
  int64_t total = nrows * a->v_head_dim, cblocks = (total + 255) / 256;
  if (cblocks > 65536) cblocks = 65536;
  drt_cuda_arg cargs[3] = {args[5], args[6], drt_cg_arg_value(vo)};
  const uint32_t cgrid[3] = {(uint32_t)cblocks, 1, 1}, cblock[3] = {256, 1, 1};
  return drt_cg_launch(cg, combine, cgrid, cblock, 0, cargs, 3);
}

static drt_status emit_fused_attention(drt_cg *cg, const drt_node *n) {
  const drt_value *vq = drt_node_input(n, 0), *vk = drt_node_input(n, 1), *vv = drt_node_input(n, 2);
  const drt_value *vm = drt_node_input(n, 3), *vo = n->num_outputs > 0 ? n->outputs[0] : NULL;
  if (!vq || !vk || !vv || !vo)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "inputs 0-2 (Q, K, V) and output 0 are required");
  const drt_value *all[5] = {vq, vk, vv, vm, vo};
  for (int i = 0; i < 5; i++)
    if (all[i] && !all[i]->has_shape)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s has no static shape", i == 4 ? "output 0" : "an input");
  const drt_shape *shapes[4] = {&vq->shape, &vk->shape, &vv->shape, vm ? &vm->shape : NULL};
  drt_fused_attention a;
  DRT_RETURN_IF_ERROR(drt_fused_attention_resolve(n, shapes, &a));
  if (!drt_shape_equal(&a.out_shape, &vo->shape))
    return DRT_ERROR(DRT_STATUS_INTERNAL, "output shape does not match out_layout");

  /* storage types */
  drt_dtype st = drt_cg_storage(cg, vq);
  if (drt_cg_storage(cg, vk) != st || drt_cg_storage(cg, vv) != st || drt_cg_storage(cg, vo) != st)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "Q, K, V and Y must share a storage type");
  bool tc;
  uint32_t elem;
  switch (st) {
    case DRT_DTYPE_FLOAT32: tc = drt_cg_precision(cg) == DRT_CUDA_PRECISION_TF32; elem = 4; break;
    case DRT_DTYPE_FLOAT16:
    case DRT_DTYPE_BFLOAT16: tc = true; elem = 2; break;
    default:
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "storage type %s (device attention handles float, half, bfloat16)",
                       drt_dtype_name(st));
  }
  const char *t_name = drt_cg_ctype(cg, st), *mt_name = "unsigned char";
  int mode = -1;
  int64_t ms[4] = {0, 0, 0, 0};
  if (a.has_mask) {
    drt_dtype mst = drt_cg_storage(cg, vm);
    mode = (int)a.mask_mode;
    if (a.mask_mode == DRT_ATTN_MASK_ADD) {
      if (mst != DRT_DTYPE_FLOAT32 && mst != DRT_DTYPE_FLOAT16 && mst != DRT_DTYPE_BFLOAT16 &&
          mst != DRT_DTYPE_FLOAT64)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 3 (mask) must be a float tensor for an additive mask");
      mt_name = drt_cg_ctype(cg, mst);
    } else if (mst != DRT_DTYPE_BOOL) {
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 3 (mask) must be bool for mask_mode %d", mode);
    }
    mask_strides(&vm->shape, ms);
  }

  /* geometry limits; what the fused kernel does not take goes through the unfused lowering */
  if (a.batch * a.heads * a.q_seq == 0 || a.v_head_dim == 0) return DRT_OK; /* empty output */
  if (a.head_dim < 1 || a.head_dim > ATTN_MAX_HEAD_DIM || a.v_head_dim > ATTN_MAX_HEAD_DIM)
    return emit_unfused(cg, n, &a, st, mt_name, mode, ms);
  /* fp16/bf16 with padded head dims up to 128: the register-resident mma.sync kernel */
  const int64_t dp = (a.head_dim + 15) / 16 * 16, dvp = (a.v_head_dim + 15) / 16 * 16;
  if (elem == 2 && dp <= 128 && dvp <= 128 && (a.q_seq + 63) / 64 * a.batch * a.heads <= INT32_MAX)
    return emit_attention_mma(cg, n, &a, t_name, mt_name, mode, ms);
  attn_tiles tiles;
  uint32_t smem;
  if (!pick_tiles(a.head_dim, a.v_head_dim, tc, elem, &tiles, &smem))
    return emit_unfused(cg, n, &a, st, mt_name, mode, ms);
  int bq = tiles.bq;
  int64_t nqb = (a.q_seq + bq - 1) / bq;
  int64_t blocks = nqb * a.batch * a.heads;
  if (blocks > INT32_MAX) return emit_unfused(cg, n, &a, st, mt_name, mode, ms);
  char geom[1024];
  DRT_RETURN_IF_ERROR(geom_text(&a, ms, geom, sizeof geom));

  uint32_t threads = (uint32_t)(bq / 16 * 32);
  int32_t kernel;
  DRT_RETURN_IF_ERROR(drt_cg_kernel(
      cg, threads, &kernel,
      "extern \"C\" __global__ void __launch_bounds__(%u) @NAME@(drt_kargs a) {\n"
      "  const drt_attn_geom g = %s;\n"
      "  drt_attention<%s, %s, %" PRId64 ", %" PRId64 ", %d, %d, %d, %s, %s, %d>(g, (const %s *)a.u[0], "
      "(const %s *)a.u[1], (const %s *)a.u[2], (const %s *)a.u[3], (%s *)a.u[4]);\n"
      "}\n",
      threads, geom, t_name, mt_name, a.head_dim, a.v_head_dim, bq, tiles.bk, mode, a.causal ? "true" : "false",
      tc ? "true" : "false", tiles.stages, t_name, t_name, t_name, mt_name, t_name));
  drt_cuda_arg args[5] = {drt_cg_arg_value(vq), drt_cg_arg_value(vk), drt_cg_arg_value(vv),
                          a.has_mask ? drt_cg_arg_value(vm) : drt_cg_arg_none(), drt_cg_arg_value(vo)};
  const uint32_t grid[3] = {(uint32_t)blocks, 1, 1}, block[3] = {threads, 1, 1};
  return drt_cg_launch(cg, kernel, grid, block, smem, args, 5);
}

/* RotaryEmbedding: one elementwise kernel (kernels/elementwise.cuh, drt_rotary). */
static drt_status emit_rotary(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0], *cs = n->inputs[1], *sn = n->inputs[2], *pos = drt_node_input(n, 3),
                  *y = n->outputs[0];
  drt_rotary_geom g;
  DRT_RETURN_IF_ERROR(drt_rotary_resolve(n, &x->shape, &cs->shape, pos ? &pos->shape : NULL, &g));
  if (drt_cg_storage(cg, cs) != drt_cg_storage(cg, sn))
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "cos and sin caches stored in different types");
  if (pos && drt_cg_storage(cg, pos) != DRT_DTYPE_INT64)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "position_ids stored as %s", drt_dtype_name(drt_cg_storage(cg, pos)));
  int64_t total = drt_shape_numel(&x->shape);
  if (total == 0) return DRT_OK;
  int64_t rows = pos ? g.positions : g.cache_per_batch ? g.batch * g.seq : g.seq;
  const char *it = total < DRT_CG_INT_INDEX_LIMIT ? "int" : "long long";
  int32_t kern;
  DRT_RETURN_IF_ERROR(drt_cg_kernel(
      cg, 256, &kern,
      "extern \"C\" __global__ void __launch_bounds__(256) @NAME@(drt_kargs a) {\n"
      "  drt_rotary<%s, %s, %s, %s, %s, %s>((%s *)a.u[0], (const %s *)a.u[1], (const %s *)a.u[2], (const %s *)a.u[3], "
      "%s, (%s)%" PRId64 ", (%s)%" PRId64 ", (%s)%" PRId64 ", (%s)%" PRId64 ", (%s)%" PRId64 ", %s, %" PRId64 "LL);\n}",
      drt_cg_ctype(cg, drt_cg_storage(cg, y)), drt_cg_ctype(cg, drt_cg_storage(cg, x)),
      drt_cg_ctype(cg, drt_cg_storage(cg, cs)), it, g.is_3d ? "true" : "false", g.interleaved ? "true" : "false",
      drt_cg_ctype(cg, drt_cg_storage(cg, y)), drt_cg_ctype(cg, drt_cg_storage(cg, x)),
      drt_cg_ctype(cg, drt_cg_storage(cg, cs)), drt_cg_ctype(cg, drt_cg_storage(cg, sn)),
      pos ? "(const long long *)a.u[4]" : "(const long long *)0", it, total, it, g.seq, it, g.heads, it, g.head, it,
      g.rot, g.cache_per_batch ? "true" : "false", rows));
  uint32_t grid[3] = {drt_cg_blocks(total, 256, 1u << 20), 1, 1}, block[3] = {256, 1, 1};
  drt_cuda_arg args[5] = {drt_cg_arg_value(y), drt_cg_arg_value(x), drt_cg_arg_value(cs), drt_cg_arg_value(sn),
                          pos ? drt_cg_arg_value(pos) : drt_cg_arg_value(x)};
  return drt_cg_launch(cg, kern, grid, block, 0, args, pos ? 5 : 4);
}

const drt_cg_emitter drt_cg_emitters_attention[] = {
    {DRT_OP_FUSED_ATTENTION, emit_fused_attention},
    {DRT_OP_ROTARY_EMBEDDING, emit_rotary},
    {DRT_OP_COUNT_, NULL},
};
