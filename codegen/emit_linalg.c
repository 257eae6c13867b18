/* CUDA emitters for the linalg family: MatMul, Gemm, Einsum, Conv, ConvTranspose, drt.Gemm and
 * drt.Conv (kernels in codegen/kernels/linalg.cuh; GEMMs are cuBLASLt launches described in
 * ROW-MAJOR terms, see drt_cuda_gemm in codegen/codegen.h).
 *
 *   MatMul        numpy batch broadcasting becomes strided batches (stride 0 for a broadcast
 *                 operand); B shared by the whole batch folds the batch into M; batch dims
 *                 that one stride cannot describe become a loop of strided-batch launches.
 *   Gemm          transA/transB/alpha/beta; C of shape [N] (beta 1) is the bias epilogue, a
 *                 full [M, N] C is cuBLASLt's C, any other broadcast C is copied into D first.
 *   drt.Gemm      the product, then the epilogue program: exactly bias / relu / gelu_tanh /
 *                 bias+relu / bias+gelu_tanh maps onto the cuBLASLt epilogue, + residual and
 *                 + bias + residual (a full-size input of D's type, no activation) onto it with
 *                 the residual as C (beta 1); anything else runs drt_cg_emit_ew_program over D
 *                 (fp16/bf16: D is a float32 scratch buffer, so the product is rounded once, after
 *                 the epilogue, as in cuBLASLt's own epilogues).
 *   Einsum        a permutation (one operand) is a strided copy; two-operand contractions are
 *                 batched GEMMs, operands that are no strided matrix are repacked into scratch.
 *   Conv/drt.Conv 1-D to 3-D (as 3-D with leading dims of size 1): pointwise (1x1, stride 1,
 *                 no pad) is a GEMM on X in place; few channels per group (depthwise, Cg*k < 16)
 *                 a direct kernel; otherwise im2col into
 *                 scratch (chunked over images / output positions to stay under 256 MiB) and
 *                 one GEMM launch per group, batched over images. A bias is written into Y
 *                 first and the GEMMs accumulate onto it (beta 1; cuBLASLt's bias is per column,
 *                 the conv's per row). drt.Conv in fp16/bf16: the GEMMs write a float32 scratch
 *                 buffer without the bias, and the epilogue kernel adds the bias and runs the
 *                 program into Y (one rounding, one launch fewer).
 *   float32 Y of fp16/bf16 operands (codegen/codegen.c keeps accumulating activations in float32):
 *                 cuBLASLt's D (and C) in float32; for a convolution the bias then comes in the
 *                 epilogue kernel (drt_cg_emit_ew_program_bias).
 *   ConvTranspose direct gather kernel (1-D to 3-D).
 *   MaxPool/AveragePool  direct kernel (1-D to 3-D; MaxPool's Indices output falls back to HOST).
 * Every GEMM operand must be stored as float, __half or __nv_bfloat16 (integer and float64
 * products fall back to HOST). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "codegen/emit_movement.h"
#include "ir/infer.h"
#include "ir/infer_linalg.h"

#define BLOCK 256
#define MAX_BLOCKS (1u << 20)
#define SCRATCH_BUDGET ((int64_t)256 << 20) /* im2col / repack scratch per node */
#define MAX_GEMM_LAUNCHES 4096

static drt_status float_storage(drt_cg *cg, const drt_value *v, const char *what, drt_dtype *out) {
  drt_dtype s = drt_cg_storage(cg, v);
  *out = s;
  if (s != DRT_DTYPE_FLOAT32 && s != DRT_DTYPE_FLOAT16 && s != DRT_DTYPE_BFLOAT16)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s has dtype %s; CUDA GEMMs take float storage types", what,
                     drt_dtype_name(v->dtype));
  return DRT_OK;
}

static drt_cuda_arg arg_at(const drt_value *v, uint64_t byte_offset) {
  drt_cuda_arg a = drt_cg_arg_value(v);
  a.offset = byte_offset;
  return a;
}

static drt_cuda_arg arg_plus(drt_cuda_arg a, int64_t bytes) {
  a.offset += (uint64_t)bytes;
  return a;
}

static drt_cuda_gemm gemm_init(drt_cg *cg, drt_dtype t) {
  drt_cuda_gemm g;
  memset(&g, 0, sizeof g);
  g.a_type = g.b_type = g.c_type = g.d_type = g.bias_type = t;
  g.a = g.b = g.c = g.d = g.bias = drt_cg_arg_none();
  g.batch = 1;
  g.alpha = 1.0f;
  g.beta = 0.0f;
  g.epilogue = DRT_CUDA_EPI_NONE;
  g.tf32 = drt_cg_precision(cg) == DRT_CUDA_PRECISION_TF32;
  return g;
}

/* An epilogue for cuBLASLt: act (NONE/RELU/GELU), an optional bias vector and an optional
 * residual R of Y's shape and storage type, added as C (beta 1): D = act(A B + bias) or
 * D = A B + bias + R (cuBLASLt adds C before the activation, so a residual comes without one). */
typedef struct gemm_epi {
  uint8_t epilogue;
  drt_cuda_arg bias;
  drt_dtype bias_type;
  const drt_value *res;
  drt_cuda_arg d; /* where D goes instead of Y (kind NONE: Y), in storage type d_type */
  drt_dtype d_type;
} gemm_epi;

static void epi_none(gemm_epi *e) {
  e->epilogue = DRT_CUDA_EPI_NONE;
  e->bias = drt_cg_arg_none();
  e->bias_type = DRT_DTYPE_FLOAT32;
  e->res = NULL;
  e->d = drt_cg_arg_none();
  e->d_type = DRT_DTYPE_FLOAT32;
}

static bool epi_redirects(const gemm_epi *e) { return e->d.kind != DRT_CUDA_ARG_NONE; }

/* where byte `off` of D is: in Y, or in the buffer the epilogue redirects D to */
static drt_cuda_arg d_at(const gemm_epi *e, const drt_value *Y, uint64_t off) {
  return epi_redirects(e) ? arg_plus(e->d, (int64_t)off) : arg_at(Y, off);
}

static void gemm_apply_epi(drt_cuda_gemm *g, const gemm_epi *e) {
  g->epilogue = e->epilogue;
  g->bias = e->bias;
  g->bias_type = e->bias_type;
}

/* ---- MatMul ------------------------------------------------------------------------------------- */
/* Whether strides st[s..r) (in matrices) of the batch dims `dims` are c * (flat index of the
 * suffix); sets *c. Size-1 dims are ignored. */
static bool suffix_linear(const int64_t *dims, const int64_t *st, int s, int r, int64_t *c) {
  int64_t run = 1;
  bool have = false;
  *c = 0;
  for (int d = r - 1; d >= s; d--) {
    if (dims[d] != 1) {
      if (!have) {
        *c = st[d] / run;
        if (st[d] % run != 0) return false;
        have = true;
      }
      if (st[d] != *c * run) return false;
    }
    run *= dims[d];
  }
  return true;
}

/* Y = alpha * A B (numpy matmul semantics) with an optional cuBLASLt epilogue. */
static drt_status emit_matmul(drt_cg *cg, const drt_value *A, const drt_value *B, const drt_value *Y, float alpha,
                              const gemm_epi *epi) {
  drt_dtype ta, tb, ty;
  DRT_RETURN_IF_ERROR(float_storage(cg, A, "input 0", &ta));
  DRT_RETURN_IF_ERROR(float_storage(cg, B, "input 1", &tb));
  DRT_RETURN_IF_ERROR(float_storage(cg, Y, "output 0", &ty));
  if (ta != tb) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "operands of different storage types");
  int ra = A->shape.rank, rb = B->shape.rank;
  if (ra < 1 || rb < 1) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "MatMul operands must have rank >= 1");
  int64_t m = ra >= 2 ? A->shape.dims[ra - 2] : 1, k = A->shape.dims[ra - 1];
  int64_t n = rb >= 2 ? B->shape.dims[rb - 1] : 1;
  if (drt_shape_numel(&Y->shape) == 0) return DRT_OK;
  if (k == 0) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "empty reduction (K = 0)");
  drt_shape ba = {0}, bb = {0}, ob = {0};
  ba.rank = ra > 2 ? ra - 2 : 0;
  bb.rank = rb > 2 ? rb - 2 : 0;
  for (int i = 0; i < ba.rank; i++) ba.dims[i] = A->shape.dims[i];
  for (int i = 0; i < bb.rank; i++) bb.dims[i] = B->shape.dims[i];
  ob.rank = Y->shape.rank - (ra >= 2) - (rb >= 2);
  if (ob.rank < 0) return DRT_ERROR(DRT_STATUS_INTERNAL, "output rank %d", Y->shape.rank);
  for (int i = 0; i < ob.rank; i++) ob.dims[i] = Y->shape.dims[i];
  int64_t count = drt_shape_numel(&ob), na = drt_shape_numel(&ba), nb = drt_shape_numel(&bb);
  if (epi_redirects(epi)) {
    if (epi->res) return DRT_ERROR(DRT_STATUS_INTERNAL, "residual epilogue into a redirected D");
    ty = epi->d_type;
  }
  size_t esa = drt_dtype_size(ta), esd = drt_dtype_size(ty);
  drt_cuda_gemm g = gemm_init(cg, ta);
  g.d_type = g.c_type = ty;
  gemm_apply_epi(&g, epi);
  g.alpha = alpha;
  g.k = k;
  g.n = n;
  g.lda = k;
  g.ldb = n;
  g.ldd = n;
  g.a = drt_cg_arg_value(A);
  g.b = drt_cg_arg_value(B);
  g.d = d_at(epi, Y, 0);
  if (epi->res) {
    g.c = drt_cg_arg_value(epi->res);
    g.ldc = n;
    g.beta = 1.0f;
  }
  if (nb == 1 && na == count) {
    /* B shared: one GEMM over the stacked rows of A */
    g.m = count * m;
    return drt_cg_gemm(cg, &g);
  }
  g.m = m;
  int64_t sa[DRT_MAX_RANK], sb[DRT_MAX_RANK];
  drt_cg_broadcast_strides(&ba, &ob, sa);
  drt_cg_broadcast_strides(&bb, &ob, sb);
  int r = ob.rank, s = 0;
  int64_t ca = 0, cb = 0;
  for (s = 0; s <= r; s++)
    if (suffix_linear(ob.dims, sa, s, r, &ca) && suffix_linear(ob.dims, sb, s, r, &cb)) break;
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < s; i++) outer *= ob.dims[i];
  for (int i = s; i < r; i++) inner *= ob.dims[i];
  if (outer > MAX_GEMM_LAUNCHES)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "batch broadcast needs %" PRId64 " GEMM launches", outer);
  g.batch = inner;
  g.stride_a = ca * m * k;
  g.stride_b = cb * k * n;
  g.stride_d = m * n;
  if (epi->res) g.stride_c = m * n;
  int64_t idx[DRT_MAX_RANK] = {0};
  for (int64_t o = 0; o < outer; o++) {
    int64_t oa = 0, obb = 0;
    for (int d = 0; d < s; d++) {
      oa += idx[d] * sa[d];
      obb += idx[d] * sb[d];
    }
    drt_cuda_gemm h = g;
    h.a = arg_at(A, (uint64_t)(oa * m * k) * esa);
    h.b = arg_at(B, (uint64_t)(obb * k * n) * esa);
    h.d = d_at(epi, Y, (uint64_t)(o * inner * m * n) * esd);
    if (epi->res) h.c = arg_at(epi->res, (uint64_t)(o * inner * m * n) * esd);
    DRT_RETURN_IF_ERROR(drt_cg_gemm(cg, &h));
    for (int d = s - 1; d >= 0; d--) {
      if (++idx[d] < ob.dims[d]) break;
      idx[d] = 0;
    }
  }
  return DRT_OK;
}

static drt_status e_matmul(drt_cg *cg, const drt_node *n) {
  gemm_epi e;
  epi_none(&e);
  return emit_matmul(cg, n->inputs[0], n->inputs[1], n->outputs[0], 1.0f, &e);
}

/* ---- Gemm --------------------------------------------------------------------------------------- */
/* Whether v broadcasts into [.., n] as a row vector of n elements (bias[n]). */
static bool is_row_vector(const drt_value *v, int64_t n, int out_rank) {
  if (v->shape.rank < 1 || v->shape.rank > out_rank || v->shape.dims[v->shape.rank - 1] != n) return false;
  for (int i = 0; i < v->shape.rank - 1; i++)
    if (v->shape.dims[i] != 1) return false;
  return true;
}

/* Y = alpha op(A) op(B) (+ beta C) for rank-2 operands (ONNX Gemm). C may be NULL. */
static drt_status emit_gemm2(drt_cg *cg, const drt_node *n, const drt_value *A, const drt_value *B, const drt_value *C,
                             const drt_value *Y, float alpha, float beta, const gemm_epi *epi_in) {
  drt_dtype ta, tb, ty;
  DRT_RETURN_IF_ERROR(float_storage(cg, A, "input 0", &ta));
  DRT_RETURN_IF_ERROR(float_storage(cg, B, "input 1", &tb));
  DRT_RETURN_IF_ERROR(float_storage(cg, Y, "output 0", &ty));
  if (ta != tb) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "operands of different storage types");
  if (A->shape.rank != 2 || B->shape.rank != 2 || Y->shape.rank != 2)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "Gemm operands must be matrices");
  bool tra = drt_node_attr_int(n, "transA", 0) != 0, trb = drt_node_attr_int(n, "transB", 0) != 0;
  int64_t m = Y->shape.dims[0], nn = Y->shape.dims[1], k = tra ? A->shape.dims[0] : A->shape.dims[1];
  if (m == 0 || nn == 0) return DRT_OK;
  if (k == 0) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "empty reduction (K = 0)");
  gemm_epi epi = *epi_in;
  if (epi_redirects(&epi)) {
    if (epi.res || (C && beta != 0.0f)) return DRT_ERROR(DRT_STATUS_INTERNAL, "C or a residual into a redirected D");
    ty = epi.d_type;
  }
  drt_cuda_gemm g = gemm_init(cg, ta);
  g.d_type = g.c_type = ty;
  g.m = m;
  g.n = nn;
  g.k = k;
  g.trans_a = tra;
  g.trans_b = trb;
  g.lda = A->shape.dims[1];
  g.ldb = B->shape.dims[1];
  g.ldd = nn;
  g.ldc = nn;
  g.alpha = alpha;
  g.a = drt_cg_arg_value(A);
  g.b = drt_cg_arg_value(B);
  g.d = d_at(&epi, Y, 0);
  if (C && beta != 0.0f && drt_shape_numel(&C->shape) > 0) {
    drt_dtype tc;
    DRT_RETURN_IF_ERROR(float_storage(cg, C, "input 2", &tc));
    if (tc == ty && beta == 1.0f && is_row_vector(C, nn, 2) && epi.epilogue == DRT_CUDA_EPI_NONE) {
      epi.epilogue = DRT_CUDA_EPI_BIAS;
      epi.bias = drt_cg_arg_value(C);
      epi.bias_type = tc;
    } else if (tc == ty && C->shape.rank == 2 && C->shape.dims[0] == m && C->shape.dims[1] == nn) {
      g.c = drt_cg_arg_value(C);
      g.beta = beta;
    } else {
      if (drt_cg_storage(cg, C) != ty) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "C of another storage type than Y");
      int64_t cs[2], t[2] = {nn, 1};
      drt_cg_broadcast_strides(&C->shape, &Y->shape, cs);
      DRT_RETURN_IF_ERROR(drt_cg_emit_view_copy(cg, drt_cg_arg_value(Y), drt_cg_arg_value(C), drt_dtype_size(ty), 2,
                                                Y->shape.dims, cs, t));
      g.c = drt_cg_arg_value(Y);
      g.beta = beta;
    }
  }
  if (epi.res) {
    if (g.c.kind != DRT_CUDA_ARG_NONE) return DRT_ERROR(DRT_STATUS_INTERNAL, "Gemm with C and a residual epilogue");
    g.c = drt_cg_arg_value(epi.res);
    g.beta = 1.0f;
  }
  gemm_apply_epi(&g, &epi);
  return drt_cg_gemm(cg, &g);
}

static drt_status e_gemm(drt_cg *cg, const drt_node *n) {
  gemm_epi e;
  epi_none(&e);
  return emit_gemm2(cg, n, n->inputs[0], n->inputs[1], drt_node_input(n, 2), n->outputs[0],
                    drt_node_attr_float(n, "alpha", 1.0f), drt_node_attr_float(n, "beta", 1.0f), &e);
}

/* ---- drt.Gemm ------------------------------------------------------------------------------------- */
/* Matches an epilogue program that cuBLASLt can apply: act(P [+ E_j]) with act none, relu or
 * gelu_tanh, or P + E_j + E_k without activation, where P is the product (program input 0) and
 * E_j, E_k program inputs (which of them is the bias vector and which a full-size residual is
 * decided by their shapes). On success *act is the activation (DRT_EW_RELU / DRT_EW_GELU_TANH,
 * 0: none) and in[0..*nin) the added program inputs. */
static bool match_epilogue(const drt_ew_program *p, int *act, int in[2], int *nin) {
  enum { K_NONE, K_P, K_E, K_SUM, K_ACT };
  int kind[DRT_EW_MAX_REGS], cnt[DRT_EW_MAX_REGS], add[DRT_EW_MAX_REGS][2], actk[DRT_EW_MAX_REGS];
  for (int i = 0; i < DRT_EW_MAX_REGS; i++) kind[i] = K_NONE, cnt[i] = 0, actk[i] = 0, add[i][0] = add[i][1] = -1;
  int result = -1;
  for (int i = 0; i < p->num_insns; i++) {
    const drt_ew_insn *q = &p->insns[i];
    if (q->d < 0 || q->d >= DRT_EW_MAX_REGS) return false;
    switch (q->op) {
      case DRT_EW_LOAD:
        kind[q->d] = q->a == 0 ? K_P : K_E;
        cnt[q->d] = 0;
        add[q->d][0] = q->a; /* the input, for K_E */
        actk[q->d] = 0;
        break;
      case DRT_EW_ADD: {
        if (q->a < 0 || q->b < 0 || q->a >= DRT_EW_MAX_REGS || q->b >= DRT_EW_MAX_REGS) return false;
        int x = q->a, y = q->b;
        if (kind[x] == K_E && (kind[y] == K_P || kind[y] == K_SUM)) x = q->b, y = q->a;
        if ((kind[x] != K_P && kind[x] != K_SUM) || kind[y] != K_E || cnt[x] >= 2) return false;
        int e = add[y][0];
        add[q->d][0] = cnt[x] > 0 ? add[x][0] : e;
        add[q->d][1] = cnt[x] > 0 ? e : -1;
        cnt[q->d] = cnt[x] + 1;
        kind[q->d] = K_SUM;
        actk[q->d] = 0;
        break;
      }
      case DRT_EW_RELU:
      case DRT_EW_GELU_TANH: {
        if (q->a < 0 || q->a >= DRT_EW_MAX_REGS) return false;
        if ((kind[q->a] != K_P && kind[q->a] != K_SUM) || cnt[q->a] > 1) return false;
        kind[q->d] = K_ACT;
        cnt[q->d] = cnt[q->a];
        add[q->d][0] = add[q->a][0];
        add[q->d][1] = -1;
        actk[q->d] = q->op;
        break;
      }
      case DRT_EW_STORE:
        if (q->d != 0 || q->a < 0 || q->a >= DRT_EW_MAX_REGS) return false;
        result = q->a;
        break;
      default: return false;
    }
  }
  if (result < 0 || (kind[result] != K_P && kind[result] != K_SUM && kind[result] != K_ACT)) return false;
  *act = actk[result];
  *nin = kind[result] == K_P ? 0 : cnt[result];
  in[0] = add[result][0];
  in[1] = add[result][1];
  return true;
}

/* A GEMM/convolution whose epilogue runs as a kernel of its own writes its product in float32
 * when the activations are stored in fp16/bf16: the product is rounded once, after the epilogue
 * (as cuBLASLt's fused epilogues do), not twice. Within the scratch budget. */
static bool f32_intermediate(drt_dtype ty, const drt_value *Y) {
  return (ty == DRT_DTYPE_FLOAT16 || ty == DRT_DTYPE_BFLOAT16) && Y->has_shape &&
         drt_shape_numel(&Y->shape) <= SCRATCH_BUDGET / 4;
}

static bool program_is_identity(const drt_ew_program *p) {
  return p->num_insns == 2 && p->insns[0].op == DRT_EW_LOAD && p->insns[0].a == 0 && p->insns[1].op == DRT_EW_STORE &&
         p->insns[1].a == p->insns[0].d;
}

static drt_status e_fused_gemm(drt_cg *cg, const drt_node *n) {
  const drt_value *Y = n->outputs[0];
  drt_ew_program prog;
  DRT_RETURN_IF_ERROR(drt_ew_program_decode(n, 1 + n->num_inputs - 2, 1, &prog));
  drt_node base = drt_fused_base_node(n);
  float alpha = drt_node_attr_float(n, "alpha", 1.0f);
  drt_dtype ty;
  DRT_RETURN_IF_ERROR(float_storage(cg, Y, "output 0", &ty));
  gemm_epi e;
  epi_none(&e);
  int act = 0, in[2] = {-1, -1}, nin = 0;
  bool mapped = match_epilogue(&prog, &act, in, &nin);
  int64_t cols = Y->shape.rank >= 1 ? Y->shape.dims[Y->shape.rank - 1] : 1;
  /* a MatMul with a vector B has one column: its [.., M] output is no row of columns */
  bool vec_b = base.op == DRT_OP_MATMUL && n->inputs[1]->shape.rank < 2;
  const drt_value *bias = NULL, *res = NULL;
  for (int j = 0; j < nin && mapped; j++) {
    const drt_value *v = drt_node_input(n, 2 + in[j] - 1);
    bool same_type = v && drt_cg_storage(cg, v) == ty && v->dtype == Y->dtype;
    if (same_type && !bias && !vec_b && is_row_vector(v, cols, Y->shape.rank) &&
        !(nin == 1 && drt_shape_equal(&v->shape, &Y->shape) && act == 0))
      bias = v;
    else if (same_type && !res && act == 0 && drt_shape_equal(&v->shape, &Y->shape) && v != Y)
      res = v;
    else
      mapped = false;
  }
  if (mapped) {
    e.epilogue = act == DRT_EW_RELU        ? (bias ? DRT_CUDA_EPI_RELU_BIAS : DRT_CUDA_EPI_RELU)
                 : act == DRT_EW_GELU_TANH ? (bias ? DRT_CUDA_EPI_GELU_BIAS : DRT_CUDA_EPI_GELU)
                                           : (bias ? DRT_CUDA_EPI_BIAS : DRT_CUDA_EPI_NONE);
    if (bias) {
      e.bias = drt_cg_arg_value(bias);
      e.bias_type = ty;
    }
    e.res = res;
  }
  bool identity = program_is_identity(&prog);
  if (!mapped && !identity && f32_intermediate(ty, Y)) {
    e.d = drt_cg_scratch(cg, (uint64_t)drt_shape_numel(&Y->shape) * 4u);
    e.d_type = DRT_DTYPE_FLOAT32;
  }
  if (base.op == DRT_OP_GEMM)
    DRT_RETURN_IF_ERROR(emit_gemm2(cg, &base, n->inputs[0], n->inputs[1], NULL, Y, alpha, 0.0f, &e));
  else
    DRT_RETURN_IF_ERROR(emit_matmul(cg, n->inputs[0], n->inputs[1], Y, alpha, &e));
  if (mapped || identity) return DRT_OK;
  bool r = epi_redirects(&e);
  return drt_cg_emit_ew_program(cg, n, &prog, r ? e.d : drt_cg_arg_value(Y), r ? e.d_type : ty, 2, Y);
}

/* ---- Einsum ------------------------------------------------------------------------------------------ */
typedef struct ein_operand {
  int rank;
  int64_t dims[DRT_MAX_RANK];
  int64_t strides[DRT_MAX_RANK];
  int8_t labels[DRT_MAX_RANK];
  drt_cuda_arg arg;
} ein_operand;

static int find_label(const int8_t *labels, int rank, int l) {
  for (int i = 0; i < rank; i++)
    if (labels[i] == l) return i;
  return -1;
}

/* Flattens the dims of labels g[0..n) of o (outermost first); *stride is the element stride
 * of the flattened index (0 when n == 0). */
static bool flatten_group(const ein_operand *o, const int8_t *g, int n, int64_t *stride) {
  *stride = 0;
  if (n == 0) return true;
  for (int i = 0; i < n; i++) {
    int d = find_label(o->labels, o->rank, g[i]);
    if (d < 0) return false;
    if (i + 1 < n) {
      int d2 = find_label(o->labels, o->rank, g[i + 1]);
      if (o->strides[d] != o->strides[d2] * o->dims[d2] && o->dims[d] != 1) return false;
    }
  }
  int last = find_label(o->labels, o->rank, g[n - 1]);
  *stride = o->strides[last];
  if (o->dims[last] == 1 && n == 1) *stride = 0;
  return true;
}

static bool as_matrix(const ein_operand *o, const int8_t *r, int nr, int64_t rflat, const int8_t *c, int nc,
                      int64_t cflat, bool *trans, int64_t *ld) {
  int64_t rs, cs;
  if (!flatten_group(o, r, nr, &rs) || !flatten_group(o, c, nc, &cs)) return false;
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

/* Batch stride of o over labels bl (must flatten); false when it does not. */
static bool batch_stride(const ein_operand *o, const int8_t *bl, int nbl, int64_t count, int64_t *st) {
  *st = 0;
  if (count <= 1) return true;
  return flatten_group(o, bl, nbl, st);
}

/* Repacks o into scratch ordered by labels `order`. */
static drt_status ein_repack(drt_cg *cg, ein_operand *o, const int8_t *order, int n, size_t es) {
  int64_t dims[DRT_MAX_RANK], s[DRT_MAX_RANK], t[DRT_MAX_RANK], cnt = 1;
  if (n < 0 || n > DRT_MAX_RANK) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "Einsum operand of rank %d", n);
  for (int i = 0; i < n; i++) {
    int d = find_label(o->labels, o->rank, order[i]);
    dims[i] = o->dims[d];
    s[i] = o->strides[d];
    cnt *= dims[i];
  }
  int64_t acc = 1;
  for (int i = n - 1; i >= 0; i--) {
    t[i] = acc;
    acc *= dims[i];
  }
  if (cnt * (int64_t)es > SCRATCH_BUDGET * 4)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "Einsum operand copy of %" PRId64 " elements", cnt);
  drt_cuda_arg buf = drt_cg_scratch(cg, (uint64_t)cnt * es);
  DRT_RETURN_IF_ERROR(drt_cg_emit_view_copy(cg, buf, o->arg, es, n, dims, s, t));
  o->rank = n;
  for (int i = 0; i < n; i++) {
    o->dims[i] = dims[i];
    o->strides[i] = t[i];
    o->labels[i] = order[i];
  }
  o->arg = buf;
  return DRT_OK;
}

static drt_status e_einsum(drt_cg *cg, const drt_node *n) {
  const char *eq = drt_node_attr_string(n, "equation", NULL);
  if (!eq) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'equation' is required");
  if (n->num_inputs < 1 || n->num_inputs > 2)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "Einsum with %d operands has no CUDA kernel", n->num_inputs);
  const drt_shape *shapes[2];
  for (int i = 0; i < n->num_inputs; i++) shapes[i] = &n->inputs[i]->shape;
  drt_einsum_spec sp;
  DRT_RETURN_IF_ERROR(drt_einsum_parse(eq, n->num_inputs, shapes, &sp));
  const drt_value *Y = n->outputs[0];
  if (drt_shape_numel(&Y->shape) == 0) return DRT_OK;
  ein_operand ops[2];
  for (int t = 0; t < n->num_inputs; t++) {
    const drt_value *x = n->inputs[t];
    ops[t].rank = x->shape.rank;
    memcpy(ops[t].dims, x->shape.dims, sizeof ops[t].dims);
    drt_cg_dense_strides(&x->shape, ops[t].strides);
    memcpy(ops[t].labels, sp.op_labels[t], (size_t)x->shape.rank);
    ops[t].arg = drt_cg_arg_value(x);
    for (int i = 0; i < x->shape.rank; i++)
      for (int j = i + 1; j < x->shape.rank; j++)
        if (ops[t].labels[i] == ops[t].labels[j])
          return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "Einsum '%s': repeated label in operand %d", eq, t);
  }
  size_t es = drt_dtype_size(drt_cg_storage(cg, Y));
  if (n->num_inputs == 1) {
    /* a permutation of the only operand */
    int r = sp.op_rank[0];
    if (sp.out_rank != r) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "Einsum '%s' reduces its only operand", eq);
    int64_t s[DRT_MAX_RANK], t[DRT_MAX_RANK];
    drt_cg_dense_strides(&Y->shape, t);
    for (int i = 0; i < r; i++) {
      int d = find_label(ops[0].labels, r, sp.out_labels[i]);
      if (d < 0) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "Einsum '%s' is not a permutation", eq);
      s[i] = ops[0].strides[d];
    }
    return drt_cg_emit_view_copy(cg, drt_cg_arg_value(Y), ops[0].arg, es, r, Y->shape.dims, s, t);
  }
  drt_dtype ta, tb, ty;
  DRT_RETURN_IF_ERROR(float_storage(cg, n->inputs[0], "input 0", &ta));
  DRT_RETURN_IF_ERROR(float_storage(cg, n->inputs[1], "input 1", &tb));
  DRT_RETURN_IF_ERROR(float_storage(cg, Y, "output 0", &ty));
  if (ta != tb || ta != ty) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "operands of different storage types");
  int8_t bl[DRT_MAX_RANK], ml[DRT_MAX_RANK], nl[DRT_MAX_RANK], kl[DRT_MAX_RANK];
  int nbl = 0, nml = 0, nnl = 0, nkl = 0;
  int64_t msz = 1, nsz = 1, ksz = 1, count = 1;
  for (int i = 0; i < sp.out_rank; i++) {
    int l = sp.out_labels[i];
    int da = find_label(ops[0].labels, ops[0].rank, l), db = find_label(ops[1].labels, ops[1].rank, l);
    int64_t sz = sp.label_size[l];
    if (da >= 0 && db >= 0) {
      if (ops[0].dims[da] != sz || ops[1].dims[db] != sz)
        return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "Einsum '%s': broadcast batch label", eq);
      bl[nbl++] = (int8_t)l;
      count *= sz;
    } else if (da >= 0) {
      if (ops[0].dims[da] != sz) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "Einsum '%s': broadcast label", eq);
      ml[nml++] = (int8_t)l;
      msz *= sz;
    } else if (db >= 0) {
      if (ops[1].dims[db] != sz) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "Einsum '%s': broadcast label", eq);
      nl[nnl++] = (int8_t)l;
      nsz *= sz;
    } else {
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "Einsum '%s': output label in no operand", eq);
    }
  }
  for (int t = 0; t < 2; t++)
    for (int i = 0; i < ops[t].rank; i++) {
      int l = ops[t].labels[i];
      if (find_label(sp.out_labels, sp.out_rank, l) >= 0) continue;
      int other = find_label(ops[1 - t].labels, ops[1 - t].rank, l);
      if (other < 0) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "Einsum '%s' sums a label of one operand", eq);
      if (t == 1) continue;
      if (ops[0].dims[i] != sp.label_size[l] || ops[1].dims[other] != sp.label_size[l])
        return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "Einsum '%s': broadcast contraction label", eq);
      kl[nkl++] = (int8_t)l;
      ksz *= sp.label_size[l];
    }
  if (ksz == 0) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "empty reduction (K = 0)");
  bool tra, trb, trY;
  int64_t lda, ldb, ldy, sa, sb, sy;
  if (!as_matrix(&ops[0], ml, nml, msz, kl, nkl, ksz, &tra, &lda) || !batch_stride(&ops[0], bl, nbl, count, &sa)) {
    int8_t order[DRT_MAX_RANK];
    int no = 0;
    for (int i = 0; i < nbl; i++) order[no++] = bl[i];
    for (int i = 0; i < nml; i++) order[no++] = ml[i];
    for (int i = 0; i < nkl; i++) order[no++] = kl[i];
    DRT_RETURN_IF_ERROR(ein_repack(cg, &ops[0], order, no, es));
    if (!as_matrix(&ops[0], ml, nml, msz, kl, nkl, ksz, &tra, &lda) || !batch_stride(&ops[0], bl, nbl, count, &sa))
      return DRT_ERROR(DRT_STATUS_INTERNAL, "Einsum operand 0 repack");
  }
  if (!as_matrix(&ops[1], kl, nkl, ksz, nl, nnl, nsz, &trb, &ldb) || !batch_stride(&ops[1], bl, nbl, count, &sb)) {
    int8_t order[DRT_MAX_RANK];
    int no = 0;
    for (int i = 0; i < nbl; i++) order[no++] = bl[i];
    for (int i = 0; i < nkl; i++) order[no++] = kl[i];
    for (int i = 0; i < nnl; i++) order[no++] = nl[i];
    DRT_RETURN_IF_ERROR(ein_repack(cg, &ops[1], order, no, es));
    if (!as_matrix(&ops[1], kl, nkl, ksz, nl, nnl, nsz, &trb, &ldb) || !batch_stride(&ops[1], bl, nbl, count, &sb))
      return DRT_ERROR(DRT_STATUS_INTERNAL, "Einsum operand 1 repack");
  }
  ein_operand yo;
  yo.rank = Y->shape.rank;
  memcpy(yo.dims, Y->shape.dims, sizeof yo.dims);
  drt_cg_dense_strides(&Y->shape, yo.strides);
  memcpy(yo.labels, sp.out_labels, (size_t)sp.out_rank);
  yo.arg = drt_cg_arg_value(Y);
  bool direct = as_matrix(&yo, ml, nml, msz, nl, nnl, nsz, &trY, &ldy) && batch_stride(&yo, bl, nbl, count, &sy);
  if (!direct) {
    yo.rank = nbl + nml + nnl;
    int r = 0;
    for (int i = 0; i < nbl; i++) yo.labels[r] = bl[i], yo.dims[r++] = sp.label_size[bl[i]];
    for (int i = 0; i < nml; i++) yo.labels[r] = ml[i], yo.dims[r++] = sp.label_size[ml[i]];
    for (int i = 0; i < nnl; i++) yo.labels[r] = nl[i], yo.dims[r++] = sp.label_size[nl[i]];
    int64_t acc = 1;
    for (int i = yo.rank - 1; i >= 0; i--) {
      yo.strides[i] = acc;
      acc *= yo.dims[i];
    }
    yo.arg = drt_cg_scratch(cg, (uint64_t)(acc * (int64_t)es));
    if (!as_matrix(&yo, ml, nml, msz, nl, nnl, nsz, &trY, &ldy) || !batch_stride(&yo, bl, nbl, count, &sy))
      return DRT_ERROR(DRT_STATUS_INTERNAL, "Einsum result layout");
  }
  drt_cuda_gemm g = gemm_init(cg, ta);
  g.batch = count;
  if (!trY) {
    g.trans_a = tra;
    g.trans_b = trb;
    g.m = msz;
    g.n = nsz;
    g.lda = lda;
    g.ldb = ldb;
    g.a = ops[0].arg;
    g.b = ops[1].arg;
    g.stride_a = sa;
    g.stride_b = sb;
  } else {
    g.trans_a = !trb;
    g.trans_b = !tra;
    g.m = nsz;
    g.n = msz;
    g.lda = ldb;
    g.ldb = lda;
    g.a = ops[1].arg;
    g.b = ops[0].arg;
    g.stride_a = sb;
    g.stride_b = sa;
  }
  g.k = ksz;
  g.ldd = ldy;
  g.d = yo.arg;
  g.stride_d = sy;
  DRT_RETURN_IF_ERROR(drt_cg_gemm(cg, &g));
  if (!direct) {
    int64_t s[DRT_MAX_RANK], t[DRT_MAX_RANK];
    drt_cg_dense_strides(&Y->shape, t);
    for (int i = 0; i < sp.out_rank; i++) s[i] = yo.strides[find_label(yo.labels, yo.rank, sp.out_labels[i])];
    DRT_RETURN_IF_ERROR(drt_cg_emit_view_copy(cg, drt_cg_arg_value(Y), yo.arg, es, sp.out_rank, Y->shape.dims, s, t));
  }
  return DRT_OK;
}

/* ---- Conv / drt.Conv / ConvTranspose ------------------------------------------------------------------ */
/* Spatial geometry normalized to 3 dims (D, H, W), as the CPU kernels (ir/infer_linalg.h). */
typedef drt_window3 sp3;

static drt_status sp3_make(const drt_window_geom *g, const char *what, sp3 *o) {
  if (g->nsp < 1 || !drt_window_geom_to3(g, o))
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s with %d spatial dims has no CUDA kernel (1 to 3 do)", what, g->nsp);
  return DRT_OK;
}

static const char *geom_text(char *buf, size_t size, const drt_window_geom *wg, const sp3 *g) {
  snprintf(buf, size,
           "{%" PRId64 "LL, %" PRId64 "LL, %" PRId64 "LL, %" PRId64 "LL, %" PRId64 "LL, %" PRId64 "LL, %" PRId64
           "LL, %" PRId64 "LL, %" PRId64 "LL, %" PRId64 "LL, %" PRId64 "LL, %" PRId64 "LL, %" PRId64 "LL, %" PRId64
           "LL, %" PRId64 "LL, %" PRId64 "LL, %" PRId64 "LL, %" PRId64 "LL, %" PRId64 "LL, %" PRId64 "LL, %" PRId64
           "LL, %" PRId64 "LL}",
           wg->batch, wg->in_channels, g->in[1], g->in[2], wg->out_channels, g->out[1], g->out[2], g->k[1], g->k[2],
           g->s[1], g->s[2], g->d[1], g->d[2], g->pb[1], g->pb[2], wg->group, g->in[0], g->out[0], g->k[0], g->s[0],
           g->d[0], g->pb[0]);
  return buf;
}

typedef enum conv_kind { CONV_DIRECT, CONV_POINTWISE, CONV_IM2COL } conv_kind;

/* How emit_conv computes a convolution: a direct kernel (depthwise, few channels per group), GEMMs
 * on X in place (pointwise), or im2col into scratch and GEMMs. */
static conv_kind conv_path(const drt_window_geom *wg, const sp3 *sp) {
  int64_t Cg = wg->in_channels / (wg->group ? wg->group : 1), kprod = sp->k[0] * sp->k[1] * sp->k[2];
  int64_t Kc = Cg * kprod;
  bool pointwise = kprod == 1;
  for (int i = 0; i < 3; i++)
    if (sp->s[i] != 1 || sp->pb[i] != 0 || sp->out[i] != sp->in[i]) pointwise = false;
  if (Kc == 0 || (!pointwise && (Cg == 1 || Kc < 16))) return CONV_DIRECT;
  return pointwise ? CONV_POINTWISE : CONV_IM2COL;
}

bool drt_cg_conv_im2col(const drt_node *n) {
  if ((n->op != DRT_OP_CONV && n->op != DRT_OP_FUSED_CONV) || n->num_inputs < 2 || !n->inputs[0] || !n->inputs[1])
    return false;
  const drt_value *X = n->inputs[0], *W = n->inputs[1], *Bv = drt_node_input(n, 2);
  if (!X->has_shape || !W->has_shape || (Bv && !Bv->has_shape)) return false;
  drt_node base = n->op == DRT_OP_FUSED_CONV ? drt_fused_base_node(n) : *n;
  drt_window_geom wg;
  sp3 sp;
  drt_status st = drt_window_geom_compute(&base, &X->shape, &W->shape, Bv ? &Bv->shape : NULL, &wg);
  if (st) {
    drt_status_free(st);
    return false;
  }
  if (wg.nsp < 1 || !drt_window_geom_to3(&wg, &sp)) return false;
  return conv_path(&wg, &sp) == CONV_IM2COL;
}

/* Implicit-GEMM variants of an im2col convolution (drt_conv_igemm, kernels/conv.cuh): fp16/bf16
 * operands, offsets that fit int, a grid within the launch limits. One variant per tile shape
 * worth trying (128x128 with 8 warps only when it makes enough blocks to fill a GPU); *variant
 * is the next free variant number, the im2col + cuBLASLt launches take it after these. D (Y or
 * the float32 scratch) = conv(X, W) + bias (Bv may be NULL). */
typedef struct igemm_tile {
  int bm, bn, wm, wn;
  int min_blocks; /* __launch_bounds__ blocks per SM: 128x128 at 2 takes 128 registers (135 free) */
} igemm_tile;
static const igemm_tile k_igemm_tiles[] = {{128, 128, 2, 4, 2}, {64, 64, 2, 2, 1}};
#define IGEMM_BIG_MIN_BLOCKS 96

static drt_status emit_conv_igemm(drt_cg *cg, const drt_window_geom *wg, const sp3 *sp, const char *gt, drt_dtype tx,
                                  const char *TX, drt_cuda_arg d, drt_dtype td, const drt_value *X,
                                  const drt_value *W, const drt_value *Bv, uint8_t *variant) {
  if (tx != DRT_DTYPE_FLOAT16 && tx != DRT_DTYPE_BFLOAT16) return DRT_OK;
  int64_t N = wg->batch, G = wg->group, Cg = wg->in_channels / G, M = wg->out_channels, Mg = M / G;
  int64_t Kc = Cg * sp->k[0] * sp->k[1] * sp->k[2], P = sp->out[0] * sp->out[1] * sp->out[2];
  int64_t HWD = sp->in[0] * sp->in[1] * sp->in[2];
  if (Cg * HWD >= DRT_CG_INT_INDEX_LIMIT || Mg * Kc >= DRT_CG_INT_INDEX_LIMIT || M * P >= DRT_CG_INT_INDEX_LIMIT ||
      N * G > 65535)
    return DRT_OK;
  const char *T = drt_cg_ctype(cg, tx), *TD = drt_cg_ctype(cg, td);
  const char *avec = Kc % 8 == 0 ? "true" : "false", *row8 = sp->out[2] % 8 == 0 ? "true" : "false";
  for (size_t i = 0; i < sizeof k_igemm_tiles / sizeof *k_igemm_tiles; i++) {
    const igemm_tile *t = &k_igemm_tiles[i];
    int64_t gx = (P + t->bn - 1) / t->bn, gy = (Mg + t->bm - 1) / t->bm;
    if (gy > 65535 || gx > 0x7fffffff) continue;
    /* 128x128: enough blocks, more than 64 output channels (else most of its MMAs multiply zero
       rows), rows of 8 positions and cp.async weight rows (the general gather and the plain
       weight loads do not fit its 128 registers: spills) */
    if (i == 0 && (gx * gy * N * G < IGEMM_BIG_MIN_BLOCKS || Mg <= 64 || sp->out[2] % 8 != 0 || Kc % 8 != 0))
      continue;
    uint32_t threads = (uint32_t)(32 * t->wm * t->wn);
    /* drt_igemm_cfg::SMEM: A 2 x [BM][40], B 2 x [32][BN + 8], 16-bit elements */
    uint32_t smem = (uint32_t)(2 * (t->bm * 40 * 2 + 32 * (t->bn + 8) * 2));
    int32_t k;
    DRT_RETURN_IF_ERROR(drt_cg_kernel(cg, threads, &k,
                                      "extern \"C\" __global__ void __launch_bounds__(%u, %d) @NAME@(drt_kargs a) {\n"
                                      "  constexpr drt_conv_geom g = %s;\n"
                                      "  drt_conv_igemm<%s, %s, %s, %d, %d, %d, %d, %s, %s>((%s *)a.u[0], (const %s *)a.u[1], "
                                      "(const %s *)a.u[2], (const %s *)a.u[3], g);\n}",
                                      threads, t->min_blocks, gt, T, TX, TD, t->bm, t->bn, t->wm, t->wn, avec, row8, TD, TX, T, T));
    uint32_t grid[3] = {(uint32_t)gx, (uint32_t)gy, (uint32_t)(N * G)}, block[3] = {threads, 1, 1};
    drt_cuda_arg args[4] = {d, drt_cg_arg_value(X), drt_cg_arg_value(W),
                            Bv ? drt_cg_arg_value(Bv) : drt_cg_arg_none()};
    drt_cg_variant(cg, (*variant)++);
    DRT_RETURN_IF_ERROR(drt_cg_launch(cg, k, grid, block, smem, args, 4));
  }
  return DRT_OK;
}

/* Y = conv(X, W) + bias (bias may be NULL). f32 != NULL asks for the product in float32 (see
 * f32_intermediate): where the convolution is GEMMs, they write conv(X, W) WITHOUT the bias into a
 * float32 scratch buffer, *f32 (kind NONE otherwise: Y holds conv(X, W) + bias). */
static drt_status emit_conv(drt_cg *cg, const drt_node *base, const drt_value *X, const drt_value *W,
                            const drt_value *Bv, const drt_value *Y, drt_cuda_arg *f32) {
  drt_dtype tx, tw, ty;
  DRT_RETURN_IF_ERROR(float_storage(cg, X, "input 0", &tx));
  DRT_RETURN_IF_ERROR(float_storage(cg, W, "input 1", &tw));
  DRT_RETURN_IF_ERROR(float_storage(cg, Y, "output 0", &ty));
  drt_window_geom wg;
  DRT_RETURN_IF_ERROR(drt_window_geom_compute(base, &X->shape, &W->shape, Bv ? &Bv->shape : NULL, &wg));
  sp3 sp;
  DRT_RETURN_IF_ERROR(sp3_make(&wg, "Conv", &sp));
  /* float32 storage of accumulating activations (codegen/codegen.c) under fp16/bf16: Y may be
     float32, and so may X where im2col reads it (rounded into the column buffer) */
  conv_kind path = conv_path(&wg, &sp);
  drt_dtype txs = tx; /* X's storage */
  if (tx == DRT_DTYPE_FLOAT32 && tw != tx && path == CONV_IM2COL) tx = tw;
  if (tx != tw || (tx != ty && ty != DRT_DTYPE_FLOAT32) || (Bv && drt_cg_storage(cg, Bv) != tx))
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "operands of different storage types");
  int64_t N = wg.batch, C = wg.in_channels, M = wg.out_channels, G = wg.group;
  int64_t Cg = C / G, Mg = M / G, kprod = sp.k[0] * sp.k[1] * sp.k[2], Kc = Cg * kprod;
  int64_t P = sp.out[0] * sp.out[1] * sp.out[2], HW = sp.in[0] * sp.in[1] * sp.in[2];
  int64_t total = N * M * P;
  if (total == 0) return DRT_OK;
  const char *T = drt_cg_ctype(cg, tx), *TY = drt_cg_ctype(cg, ty), *TX = drt_cg_ctype(cg, txs);
  size_t es = drt_dtype_size(tx);
  char gt[768];
  geom_text(gt, sizeof gt, &wg, &sp);
  bool pointwise = path == CONV_POINTWISE;
  if (path == CONV_DIRECT) {
    /* direct kernel (depthwise, few channels) */
    const char *it = total < DRT_CG_INT_INDEX_LIMIT && N * C * HW < DRT_CG_INT_INDEX_LIMIT ? "int" : "long long";
    int32_t k;
    DRT_RETURN_IF_ERROR(drt_cg_kernel(cg, BLOCK, &k,
                                      "extern \"C\" __global__ void __launch_bounds__(%d) @NAME@(drt_kargs a) {\n"
                                      "  constexpr drt_conv_geom g = %s;\n"
                                      "  drt_conv_direct<%s, %s, %s>((%s *)a.u[0], (const %s *)a.u[1], (const %s *)a.u[2], "
                                      "(const %s *)a.u[3], (%s)%" PRId64 ", g);\n}",
                                      BLOCK, gt, T, it, TY, TY, T, T, T, it, total));
    uint32_t grid[3] = {drt_cg_blocks(total, BLOCK, MAX_BLOCKS), 1, 1}, block[3] = {BLOCK, 1, 1};
    drt_cuda_arg args[4] = {drt_cg_arg_value(Y), drt_cg_arg_value(X), drt_cg_arg_value(W),
                            Bv ? drt_cg_arg_value(Bv) : drt_cg_arg_none()};
    return drt_cg_launch(cg, k, grid, block, 0, args, 4);
  }
  /* D: Y, or the float32 scratch (the caller adds the bias) */
  gemm_epi out;
  epi_none(&out);
  if (f32 && f32_intermediate(ty, Y)) {
    out.d = drt_cg_scratch(cg, (uint64_t)total * 4u);
    out.d_type = DRT_DTYPE_FLOAT32;
    *f32 = out.d;
    Bv = NULL;
  } else if (ty != tx) {
    /* float32 Y of fp16/bf16 operands: the GEMMs write Y, the caller adds the bias */
    if (!f32) return DRT_ERROR(DRT_STATUS_INTERNAL, "convolution into another storage type without an epilogue");
    *f32 = drt_cg_arg_value(Y);
    Bv = NULL;
  }
  size_t esd = epi_redirects(&out) ? 4u : drt_dtype_size(ty);
  if (path == CONV_IM2COL) {
    /* the implicit-GEMM kernels and im2col + cuBLASLt as variants the executor times */
    uint8_t next = 1;
    DRT_RETURN_IF_ERROR(emit_conv_igemm(cg, &wg, &sp, gt, tx, TX, epi_redirects(&out) ? out.d : drt_cg_arg_value(Y),
                                        epi_redirects(&out) ? out.d_type : ty, X, W, Bv, &next));
    if (next > 1) drt_cg_variant(cg, next);
  }
  float beta = 0.0f;
  if (Bv) {
    /* Y[n, m, p] = bias[m], then the GEMMs accumulate */
    int64_t dims[3] = {N, M, P}, s[3] = {0, 1, 0}, t[3] = {M * P, P, 1};
    DRT_RETURN_IF_ERROR(drt_cg_emit_view_copy(cg, drt_cg_arg_value(Y), drt_cg_arg_value(Bv), es, 3, dims, s, t));
    beta = 1.0f;
  }
  drt_cuda_gemm g = gemm_init(cg, tx);
  g.d_type = g.c_type = epi_redirects(&out) ? out.d_type : ty;
  g.m = Mg;
  g.k = Kc;
  g.lda = Kc;
  g.ldd = P;
  g.ldc = P;
  g.beta = beta;
  if (pointwise) {
    /* Y_n,g [Mg, P] = W_g [Mg, Cg] X_n,g [Cg, P] */
    g.n = P;
    g.ldb = HW;
    bool by_group = G <= N; /* loop over the shorter of groups and images */
    int64_t loops = by_group ? G : N;
    g.batch = by_group ? N : G;
    g.stride_a = by_group ? 0 : Mg * Kc;
    g.stride_b = by_group ? C * HW : Cg * HW;
    g.stride_d = g.stride_c = by_group ? M * P : Mg * P;
    if (loops > MAX_GEMM_LAUNCHES) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%" PRId64 " GEMM launches", loops);
    for (int64_t i = 0; i < loops; i++) {
      drt_cuda_gemm h = g;
      int64_t gi = by_group ? i : 0, ni = by_group ? 0 : i;
      h.a = arg_at(W, (uint64_t)(gi * Mg * Kc) * es);
      h.b = arg_at(X, (uint64_t)((ni * C + gi * Cg) * HW) * es);
      h.d = d_at(&out, Y, (uint64_t)((ni * M + gi * Mg) * P) * esd);
      if (Bv) h.c = h.d;
      DRT_RETURN_IF_ERROR(drt_cg_gemm(cg, &h));
    }
    return DRT_OK;
  }
  /* im2col into scratch: chunks of nb images, or tiles of pt output positions of one image */
  /* the column buffer and a float32 D share the node's scratch budget (D at most 3/4 of it) */
  int64_t budget = SCRATCH_BUDGET - (epi_redirects(&out) ? total * 4 : 0);
  if (budget < SCRATCH_BUDGET / 4) budget = SCRATCH_BUDGET / 4;
  int64_t R = C * kprod, per_image = R * P * (int64_t)es;
  int64_t nb = per_image > 0 ? budget / per_image : N, pt = P;
  if (nb > N) nb = N;
  if (nb < 1) {
    nb = 1;
    pt = budget / (R * (int64_t)es);
    pt = pt >= 64 ? pt / 64 * 64 : (pt > 0 ? pt : 1);
    if (pt > P) pt = P;
  }
  drt_cuda_arg col = drt_cg_scratch(cg, (uint64_t)(nb * R * pt) * es);
  const char *it = nb * R * pt < DRT_CG_INT_INDEX_LIMIT && N * C * HW < DRT_CG_INT_INDEX_LIMIT ? "int" : "long long";
  int32_t k;
  DRT_RETURN_IF_ERROR(drt_cg_kernel(cg, BLOCK, &k,
                                    "extern \"C\" __global__ void __launch_bounds__(%d) @NAME@(drt_kargs a) {\n"
                                    "  constexpr drt_conv_geom g = %s;\n"
                                    "  drt_im2col<%s, %s, %s>((%s *)a.u[0], (const %s *)a.u[1], (%s)a.u[2], (%s)a.u[3], "
                                    "(%s)a.u[4], (%s)a.u[5], (%s)%" PRId64 ", g);\n}",
                                    BLOCK, gt, T, it, TX, T, TX, it, it, it, it, it, pt));
  if (G > MAX_GEMM_LAUNCHES) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%" PRId64 " groups", G);
  for (int64_t n0 = 0; n0 < N; n0 += nb) {
    int64_t cnt = N - n0 < nb ? N - n0 : nb;
    for (int64_t p0 = 0; p0 < P; p0 += pt) {
      int64_t t = P - p0 < pt ? P - p0 : pt, elems = cnt * R * t;
      uint32_t grid[3] = {drt_cg_blocks(elems, BLOCK, MAX_BLOCKS), 1, 1}, block[3] = {BLOCK, 1, 1};
      drt_cuda_arg args[6] = {col, drt_cg_arg_value(X), drt_cg_arg_i64(elems), drt_cg_arg_i64(n0), drt_cg_arg_i64(p0),
                              drt_cg_arg_i64(t)};
      DRT_RETURN_IF_ERROR(drt_cg_launch(cg, k, grid, block, 0, args, 6));
      for (int64_t gi = 0; gi < G; gi++) {
        drt_cuda_gemm h = g;
        h.n = t;
        h.batch = cnt;
        h.a = arg_at(W, (uint64_t)(gi * Mg * Kc) * es);
        h.stride_a = 0;
        h.b = arg_plus(col, gi * Kc * pt * (int64_t)es);
        h.ldb = pt;
        h.stride_b = R * pt;
        h.d = d_at(&out, Y, (uint64_t)((n0 * M + gi * Mg) * P + p0) * esd);
        h.stride_d = h.stride_c = M * P;
        if (Bv) h.c = h.d;
        DRT_RETURN_IF_ERROR(drt_cg_gemm(cg, &h));
      }
    }
  }
  drt_cg_variant(cg, 0); /* the caller's epilogue runs after whichever variant */
  return DRT_OK;
}

static drt_status e_conv(drt_cg *cg, const drt_node *n) {
  const drt_value *X = n->inputs[0], *Bv = drt_node_input(n, 2), *Y = n->outputs[0];
  /* Y in the operands' (W's) type: X may still be float32, read by im2col */
  if (drt_cg_storage(cg, Y) == drt_cg_storage(cg, n->inputs[1])) return emit_conv(cg, n, X, n->inputs[1], Bv, Y, NULL);
  /* float32 Y of fp16/bf16 operands: the GEMMs write Y, then the bias is added in place */
  drt_cuda_arg f32 = drt_cg_arg_none();
  DRT_RETURN_IF_ERROR(emit_conv(cg, n, X, n->inputs[1], Bv, Y, &f32));
  if (f32.kind == DRT_CUDA_ARG_NONE || !Bv) return DRT_OK;
  drt_ew_program id; /* a Conv has no "program": it decodes as the identity */
  DRT_RETURN_IF_ERROR(drt_ew_program_decode(n, 1, 1, &id));
  return drt_cg_emit_ew_program_bias(cg, n, &id, f32, DRT_DTYPE_FLOAT32, 3, Bv, Y);
}

static drt_status e_fused_conv(drt_cg *cg, const drt_node *n) {
  const drt_value *Y = n->outputs[0];
  drt_ew_program prog;
  DRT_RETURN_IF_ERROR(drt_ew_program_decode(n, 1 + n->num_inputs - 3, 1, &prog));
  drt_node base = drt_fused_base_node(n);
  bool identity = program_is_identity(&prog);
  const drt_value *Bv = drt_node_input(n, 2);
  drt_cuda_arg f32 = drt_cg_arg_none();
  bool mixed = drt_cg_storage(cg, Y) != drt_cg_storage(cg, n->inputs[1]);
  DRT_RETURN_IF_ERROR(emit_conv(cg, &base, n->inputs[0], n->inputs[1], Bv, Y, identity && !mixed ? NULL : &f32));
  if (f32.kind != DRT_CUDA_ARG_NONE && (!identity || Bv))
    return drt_cg_emit_ew_program_bias(cg, n, &prog, f32, DRT_DTYPE_FLOAT32, 3, Bv, Y);
  if (identity) return DRT_OK;
  return drt_cg_emit_ew_program(cg, n, &prog, drt_cg_arg_value(Y), drt_cg_storage(cg, Y), 3, Y);
}

static drt_status e_conv_transpose(drt_cg *cg, const drt_node *n) {
  const drt_value *X = n->inputs[0], *W = n->inputs[1], *Bv = drt_node_input(n, 2), *Y = n->outputs[0];
  drt_dtype tx, tw, ty;
  DRT_RETURN_IF_ERROR(float_storage(cg, X, "input 0", &tx));
  DRT_RETURN_IF_ERROR(float_storage(cg, W, "input 1", &tw));
  DRT_RETURN_IF_ERROR(float_storage(cg, Y, "output 0", &ty));
  if (tx != tw || tx != ty || (Bv && drt_cg_storage(cg, Bv) != tx))
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "operands of different storage types");
  drt_window_geom wg;
  DRT_RETURN_IF_ERROR(drt_window_geom_compute(n, &X->shape, &W->shape, Bv ? &Bv->shape : NULL, &wg));
  sp3 sp;
  DRT_RETURN_IF_ERROR(sp3_make(&wg, "ConvTranspose", &sp));
  int64_t total = drt_shape_numel(&Y->shape);
  if (total == 0) return DRT_OK;
  const char *T = drt_cg_ctype(cg, tx);
  char gt[768];
  geom_text(gt, sizeof gt, &wg, &sp);
  const char *it = total < DRT_CG_INT_INDEX_LIMIT && drt_shape_numel(&X->shape) < DRT_CG_INT_INDEX_LIMIT ? "int" : "long long";
  int32_t k;
  DRT_RETURN_IF_ERROR(drt_cg_kernel(cg, BLOCK, &k,
                                    "extern \"C\" __global__ void __launch_bounds__(%d) @NAME@(drt_kargs a) {\n"
                                    "  constexpr drt_conv_geom g = %s;\n"
                                    "  drt_conv_transpose_direct<%s, %s>((%s *)a.u[0], (const %s *)a.u[1], "
                                    "(const %s *)a.u[2], (const %s *)a.u[3], (%s)%" PRId64 ", g);\n}",
                                    BLOCK, gt, T, it, T, T, T, T, it, total));
  uint32_t grid[3] = {drt_cg_blocks(total, BLOCK, MAX_BLOCKS), 1, 1}, block[3] = {BLOCK, 1, 1};
  drt_cuda_arg args[4] = {drt_cg_arg_value(Y), drt_cg_arg_value(X), drt_cg_arg_value(W),
                          Bv ? drt_cg_arg_value(Bv) : drt_cg_arg_none()};
  return drt_cg_launch(cg, k, grid, block, 0, args, 4);
}

/* ---- MaxPool / AveragePool ------------------------------------------------------------------------------ */
static drt_status emit_pool(drt_cg *cg, const drt_node *n, bool is_max) {
  const drt_value *X = n->inputs[0], *Y = n->outputs[0];
  if (n->num_outputs > 1) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "MaxPool indices have no CUDA kernel");
  drt_dtype tx;
  DRT_RETURN_IF_ERROR(float_storage(cg, X, "input 0", &tx));
  drt_window_geom wg;
  DRT_RETURN_IF_ERROR(drt_window_geom_compute(n, &X->shape, NULL, NULL, &wg));
  sp3 sp;
  DRT_RETURN_IF_ERROR(sp3_make(&wg, is_max ? "MaxPool" : "AveragePool", &sp));
  int64_t total = drt_shape_numel(&Y->shape);
  if (total == 0) return DRT_OK;
  const char *T = drt_cg_ctype(cg, tx);
  const char *it = total < DRT_CG_INT_INDEX_LIMIT && drt_shape_numel(&X->shape) < DRT_CG_INT_INDEX_LIMIT ? "int" : "long long";
  char gt[768];
  geom_text(gt, sizeof gt, &wg, &sp);
  int32_t k;
  DRT_RETURN_IF_ERROR(drt_cg_kernel(cg, BLOCK, &k,
                                    "extern \"C\" __global__ void __launch_bounds__(%d) @NAME@(drt_kargs a) {\n"
                                    "  constexpr drt_conv_geom g = %s;\n"
                                    "  drt_pool<%s, %s, %s, %s>((%s *)a.u[0], (const %s *)a.u[1], (%s)%" PRId64
                                    ", g, %" PRId64 "LL, %" PRId64 "LL, %" PRId64 "LL);\n}",
                                    BLOCK, gt, T, it, is_max ? "true" : "false", wg.count_include_pad ? "true" : "false",
                                    T, T, it, total, sp.pe[0], sp.pe[1], sp.pe[2]));
  uint32_t grid[3] = {drt_cg_blocks(total, BLOCK, MAX_BLOCKS), 1, 1}, block[3] = {BLOCK, 1, 1};
  drt_cuda_arg args[2] = {drt_cg_arg_value(Y), drt_cg_arg_value(X)};
  return drt_cg_launch(cg, k, grid, block, 0, args, 2);
}

static drt_status e_max_pool(drt_cg *cg, const drt_node *n) { return emit_pool(cg, n, true); }
static drt_status e_average_pool(drt_cg *cg, const drt_node *n) { return emit_pool(cg, n, false); }

const drt_cg_emitter drt_cg_emitters_linalg[] = {
    {DRT_OP_MATMUL, e_matmul},
    {DRT_OP_GEMM, e_gemm},
    {DRT_OP_EINSUM, e_einsum},
    {DRT_OP_CONV, e_conv},
    {DRT_OP_CONV_TRANSPOSE, e_conv_transpose},
    {DRT_OP_FUSED_GEMM, e_fused_gemm},
    {DRT_OP_FUSED_CONV, e_fused_conv},
    {DRT_OP_MAX_POOL, e_max_pool},
    {DRT_OP_AVERAGE_POOL, e_average_pool},
    {DRT_OP_COUNT_, NULL},
};
