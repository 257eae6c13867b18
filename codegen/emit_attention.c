/* CUDA emitter for drt.Attention (semantics: ir/ops.def, runtime/cpu/fused_attention.c; geometry:
 * ir/infer_fused.h; kernel: codegen/kernels/attention.cuh).
 *
 * One launch of drt_attention<...>: grid.x = ceil(Sq / BQ) * B * H blocks of BQ / 16 warps.
 * Shapes, strides, scale and mask_fill are baked into the wrapper. Tensor cores (wmma) for fp16 /
 * bf16 storage and, under tf32 precision, for fp32 storage (TF32 16x16x8); the SIMT variant keeps
 * fp32 products under fp32 precision. The tile sizes are the first of a short list whose shared
 * memory fits (mirrors drt_attn_cfg in attention.cuh). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "codegen/cg.h"
#include "ir/infer_fused.h"

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

  /* geometry limits */
  if (a.batch * a.heads * a.q_seq == 0 || a.v_head_dim == 0) return DRT_OK; /* empty output */
  if (a.head_dim < 1 || a.head_dim > ATTN_MAX_HEAD_DIM || a.v_head_dim > ATTN_MAX_HEAD_DIM)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "head sizes %" PRId64 " / %" PRId64 " (device attention handles 1..%d)",
                     a.head_dim, a.v_head_dim, ATTN_MAX_HEAD_DIM);
  attn_tiles tiles;
  uint32_t smem;
  if (!pick_tiles(a.head_dim, a.v_head_dim, tc, elem, &tiles, &smem))
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "head sizes %" PRId64 " / %" PRId64 " need more than %u bytes of shared "
                     "memory", a.head_dim, a.v_head_dim, ATTN_SMEM_MAX);
  int bq = tiles.bq;
  int64_t nqb = (a.q_seq + bq - 1) / bq;
  int64_t blocks = nqb * a.batch * a.heads;
  if (blocks > INT32_MAX)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%" PRId64 " blocks exceed the grid limit", blocks);
  /* every index in the kernel is a long long; tile-local ones are int */
  const drt_attn_view *views[4] = {&a.q, &a.k, &a.v, &a.out};

  char geom[1024];
  int len = snprintf(geom, sizeof geom, "{%" PRId64 "LL, %" PRId64 "LL, %" PRId64 "LL, %" PRId64 "LL",
                     a.heads, a.heads / a.kv_heads, a.q_seq, a.kv_seq);
  for (int t = 0; t < 5; t++) {
    const int64_t *s = t < 4 ? views[t]->stride : ms;
    len += snprintf(geom + len, sizeof geom - (size_t)len, ", {%" PRId64 "LL, %" PRId64 "LL, %" PRId64 "LL, %" PRId64
                    "LL}", s[0], s[1], s[2], s[3]);
  }
  len += snprintf(geom + len, sizeof geom - (size_t)len, ", __uint_as_float(0x%08" PRIx32 "u), __uint_as_float(0x%08"
                  PRIx32 "u)}", f32_bits(a.scale), f32_bits(a.mask_fill));
  if (len < 0 || (size_t)len >= sizeof geom) return DRT_ERROR(DRT_STATUS_INTERNAL, "attention geometry text too long");

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

const drt_cg_emitter drt_cg_emitters_attention[] = {
    {DRT_OP_FUSED_ATTENTION, emit_fused_attention},
    {DRT_OP_COUNT_, NULL},
};
