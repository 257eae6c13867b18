/* CUDA emitters for the movement family (kernels in codegen/kernels/movement.cuh).
 *
 * Every op here moves elements by their storage size (a FLOAT32 value stored as __half moves
 * 2-byte elements), so all dtypes are handled natively:
 *   Reshape/Flatten/Squeeze/Unsqueeze/Identity   a COPY launch (skipped by the runtime when
 *                                                the planner put input and output together)
 *   Transpose/Slice/Expand/Tile/DepthToSpace/    a strided view of the input copied into the
 *   SpaceToDepth/Concat/Split                    output (drt_cg_emit_view_copy): contiguous
 *                                                runs become COPY launches, transpositions the
 *                                                tiled shared-memory kernel, the rest the
 *                                                generic index kernel; views are coalesced and
 *                                                widened to 4/8/16-byte elements first
 *   Pad, Gather, GatherElements, ScatterND       index kernels (ScatterND without reduction)
 *   Trilu                                        a masked copy
 *   Resize/Upsample                              per-axis tables recomputed on the device in
 *                                                double exactly as runtime/cpu/resize.c builds
 *                                                them (nearest: any dtype; linear/cubic: float
 *                                                storage types, antialias included) */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "codegen/emit_movement.h"
#include "ir/infer.h"
#include "ir/infer_movement.h"

#define BLOCK 256
#define MAX_BLOCKS (1u << 20)

/* ---- helpers ------------------------------------------------------------------------------------ */
void drt_cg_dense_strides(const drt_shape *s, int64_t *st) {
  int64_t acc = 1;
  for (int i = s->rank - 1; i >= 0; i--) {
    st[i] = acc;
    acc *= s->dims[i];
  }
}

void drt_cg_broadcast_strides(const drt_shape *in, const drt_shape *out, int64_t *st) {
  int64_t dense[DRT_MAX_RANK];
  drt_cg_dense_strides(in, dense);
  int off = out->rank - in->rank;
  for (int i = 0; i < out->rank; i++) {
    int j = i - off;
    st[i] = (j < 0 || in->dims[j] == 1) ? 0 : dense[j];
  }
}

/* Unsigned C type moving elements of es bytes. */
static const char *move_type(size_t es) {
  switch (es) {
    case 1: return "unsigned char";
    case 2: return "unsigned short";
    case 4: return "unsigned";
    case 8: return "unsigned long long";
    default: return "drt_b16";
  }
}

static drt_status storage_size(drt_cg *cg, const drt_value *v, size_t *es) {
  *es = drt_dtype_size(drt_cg_storage(cg, v));
  if (*es != 1 && *es != 2 && *es != 4 && *es != 8)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "dtype %s is not supported", drt_dtype_name(v->dtype));
  return DRT_OK;
}

static drt_cuda_arg arg_at(const drt_value *v, uint64_t byte_offset) {
  drt_cuda_arg a = drt_cg_arg_value(v);
  a.offset = byte_offset;
  return a;
}

static int64_t abs64(int64_t x) { return x < 0 ? -x : x; }

/* "{a,b,c}" of n values into buf. */
static const char *ints_str(char *buf, size_t size, const int64_t *v, int n) {
  size_t len = 0;
  buf[0] = 0;
  len += (size_t)snprintf(buf + len, size - len, "{");
  for (int i = 0; i < n && len < size; i++)
    len += (size_t)snprintf(buf + len, size - len, "%s%" PRId64 "LL", i ? "," : "", v[i]);
  if (len < size) snprintf(buf + len, size - len, "}");
  return buf;
}

/* ---- strided view copy -------------------------------------------------------------------------- */
typedef struct cg_view {
  int rank;
  int64_t d[DRT_CG_VIEW_MAX], s[DRT_CG_VIEW_MAX], t[DRT_CG_VIEW_MAX];
} cg_view;

static void view_coalesce(cg_view *v) {
  int r = 0;
  for (int i = 0; i < v->rank; i++) {
    if (v->d[i] == 1) continue;
    if (r > 0 && v->s[r - 1] == v->s[i] * v->d[i] && v->t[r - 1] == v->t[i] * v->d[i]) {
      v->d[r - 1] *= v->d[i];
      v->s[r - 1] = v->s[i];
      v->t[r - 1] = v->t[i];
    } else {
      v->d[r] = v->d[i];
      v->s[r] = v->s[i];
      v->t[r] = v->t[i];
      r++;
    }
  }
  v->rank = r;
}

/* Largest element size (<= 16) the view can move whole: innermost axis contiguous on both
 * sides, every other stride and both base offsets multiples of it. */
static size_t view_widen(cg_view *v, size_t es, uint64_t src_off, uint64_t dst_off) {
  int r = v->rank;
  if (r == 0 || v->s[r - 1] != 1 || v->t[r - 1] != 1) return es;
  for (size_t w = 16; w > es; w /= 2) {
    int64_t f = (int64_t)(w / es);
    bool ok = (v->d[r - 1] % f) == 0 && src_off % w == 0 && dst_off % w == 0;
    for (int i = 0; i < r - 1 && ok; i++) ok = v->s[i] % f == 0 && v->t[i] % f == 0;
    if (!ok) continue;
    v->d[r - 1] /= f;
    for (int i = 0; i < r - 1; i++) {
      v->s[i] /= f;
      v->t[i] /= f;
    }
    return w;
  }
  return es;
}

drt_status drt_cg_emit_view_copy(drt_cg *cg, drt_cuda_arg dst, drt_cuda_arg src, size_t es, int rank,
                                 const int64_t *dims, const int64_t *src_strides, const int64_t *dst_strides) {
  if (rank < 0 || rank > DRT_CG_VIEW_MAX) return DRT_ERROR(DRT_STATUS_INTERNAL, "view of rank %d", rank);
  cg_view v;
  v.rank = rank;
  int64_t numel = 1;
  for (int i = 0; i < rank; i++) {
    v.d[i] = dims[i];
    v.s[i] = src_strides[i];
    v.t[i] = dst_strides[i];
    numel *= dims[i];
  }
  if (numel == 0) return DRT_OK;
  view_coalesce(&v);
  if (v.rank == 0) return drt_cg_copy(cg, dst, src, es);
  if (v.rank == 1 && v.s[0] == 1 && v.t[0] == 1) return drt_cg_copy(cg, dst, src, (uint64_t)(v.d[0] * (int64_t)es));
  uint64_t so = src.kind == DRT_CUDA_ARG_IMM ? 0 : src.offset, dof = dst.kind == DRT_CUDA_ARG_IMM ? 0 : dst.offset;
  es = view_widen(&v, es, so, dof);
  int r = v.rank;
  /* offsets reached, to pick the index type */
  int64_t n = 1, reach = 0;
  for (int i = 0; i < r; i++) {
    n *= v.d[i];
    reach += (v.d[i] - 1) * (abs64(v.s[i]) > abs64(v.t[i]) ? abs64(v.s[i]) : abs64(v.t[i]));
  }
  const char *it = (n < DRT_CG_INT_INDEX_LIMIT && reach < DRT_CG_INT_INDEX_LIMIT) ? "int" : "long long";
  const char *T = move_type(es);
  /* tiled transpose: an axis reads contiguously, the last axis writes contiguously */
  int ja = -1;
  if (r >= 2 && v.t[r - 1] == 1 && v.s[r - 1] != 1 && v.d[r - 1] >= 4)
    for (int i = 0; i < r - 1; i++)
      if (v.s[i] == 1 && v.d[i] >= 4) ja = i;
  char ds[512], ss[512], ts[512];
  int32_t k;
  if (ja >= 0) {
    /* move axis ja to r-2 (batch axes keep their order) */
    cg_view w = v;
    int q = 0;
    for (int i = 0; i < r - 1; i++) {
      if (i == ja) continue;
      w.d[q] = v.d[i];
      w.s[q] = v.s[i];
      w.t[q] = v.t[i];
      q++;
    }
    w.d[r - 2] = v.d[ja];
    w.s[r - 2] = v.s[ja];
    w.t[r - 2] = v.t[ja];
    int64_t batch = 1;
    for (int i = 0; i < r - 2; i++) batch *= w.d[i];
    int64_t tiles = ((w.d[r - 2] + 31) / 32) * ((w.d[r - 1] + 31) / 32);
    if (tiles > INT32_MAX) goto generic;
    DRT_RETURN_IF_ERROR(drt_cg_kernel(
        cg, BLOCK, &k,
        "extern \"C\" __global__ void __launch_bounds__(%d) @NAME@(drt_kargs a) {\n"
        "  constexpr drt_nd<%d> g = {%s, %s, %s};\n"
        "  drt_transpose_tiled<%s, %s, %d>((%s *)a.u[0], (const %s *)a.u[1], g, (%s)%" PRId64 ");\n}",
        BLOCK, r, ints_str(ds, sizeof ds, w.d, r), ints_str(ss, sizeof ss, w.s, r), ints_str(ts, sizeof ts, w.t, r), T,
        it, r, T, T, it, batch));
    uint32_t grid[3] = {(uint32_t)tiles, (uint32_t)(batch < 65535 ? batch : 65535), 1};
    uint32_t block[3] = {32, 8, 1};
    drt_cuda_arg args[2] = {dst, src};
    return drt_cg_launch(cg, k, grid, block, 0, args, 2);
  }
generic:
  DRT_RETURN_IF_ERROR(drt_cg_kernel(
      cg, BLOCK, &k,
      "extern \"C\" __global__ void __launch_bounds__(%d) @NAME@(drt_kargs a) {\n"
      "  constexpr drt_nd<%d> g = {%s, %s, %s};\n"
      "  drt_copy_nd<%s, %s, %d>((%s *)a.u[0], (const %s *)a.u[1], (%s)%" PRId64 ", g);\n}",
      BLOCK, r, ints_str(ds, sizeof ds, v.d, r), ints_str(ss, sizeof ss, v.s, r), ints_str(ts, sizeof ts, v.t, r), T, it,
      r, T, T, it, n));
  uint32_t grid[3] = {drt_cg_blocks(n, BLOCK, MAX_BLOCKS), 1, 1};
  uint32_t block[3] = {BLOCK, 1, 1};
  drt_cuda_arg args[2] = {dst, src};
  return drt_cg_launch(cg, k, grid, block, 0, args, 2);
}

/* Copies view (dims, src strides, src element offset) of input x into the dense output y. */
static drt_status emit_view_dense(drt_cg *cg, const drt_value *y, const drt_value *x, int rank, const int64_t *dims,
                                  const int64_t *strides, int64_t offset) {
  size_t es;
  DRT_RETURN_IF_ERROR(storage_size(cg, x, &es));
  int64_t t[DRT_CG_VIEW_MAX];
  /* dense destination strides (rank may exceed DRT_MAX_RANK for Tile-like views) */
  int64_t acc = 1;
  for (int i = rank - 1; i >= 0; i--) {
    t[i] = acc;
    acc *= dims[i];
  }
  return drt_cg_emit_view_copy(cg, drt_cg_arg_value(y), arg_at(x, (uint64_t)(offset * (int64_t)es)), es, rank, dims,
                               strides, t);
}

/* ---- Reshape / Flatten / Squeeze / Unsqueeze / Identity ------------------------------------------ */
static drt_status e_copy(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0], *y = n->outputs[0];
  size_t es;
  DRT_RETURN_IF_ERROR(storage_size(cg, x, &es));
  if (drt_shape_numel(&x->shape) != drt_shape_numel(&y->shape) || drt_cg_storage(cg, x) != drt_cg_storage(cg, y))
    return DRT_ERROR(DRT_STATUS_INTERNAL, "input and output sizes differ");
  int64_t numel = drt_shape_numel(&y->shape);
  if (numel <= 0) return DRT_OK;
  return drt_cg_copy(cg, drt_cg_arg_value(y), drt_cg_arg_value(x), (uint64_t)numel * es);
}

/* ---- Transpose ------------------------------------------------------------------------------------ */
static drt_status e_transpose(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0], *y = n->outputs[0];
  int r = x->shape.rank;
  int64_t cnt = 0;
  const int64_t *perm = drt_node_attr_ints(n, "perm", &cnt);
  if (perm && cnt != r) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'perm' does not match rank %d", r);
  int64_t st[DRT_MAX_RANK], dims[DRT_MAX_RANK], s[DRT_MAX_RANK];
  drt_cg_dense_strides(&x->shape, st);
  for (int i = 0; i < r; i++) {
    int64_t p = perm ? perm[i] : r - 1 - i;
    if (p < 0 || p >= r)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'perm' entry %" PRId64 " is out of range", p);
    dims[i] = x->shape.dims[p];
    s[i] = st[p];
  }
  return emit_view_dense(cg, y, x, r, dims, s, 0);
}

/* ---- Concat / Split --------------------------------------------------------------------------------- */
static drt_status e_concat(drt_cg *cg, const drt_node *n) {
  const drt_value *y = n->outputs[0];
  size_t es;
  DRT_RETURN_IF_ERROR(storage_size(cg, y, &es));
  int axis;
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_node_attr_int(n, "axis", 1), y->shape.rank, &axis), "attribute 'axis'");
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; i++) outer *= y->shape.dims[i];
  for (int i = axis + 1; i < y->shape.rank; i++) inner *= y->shape.dims[i];
  int64_t out_row = y->shape.dims[axis] * inner, off = 0;
  for (int i = 0; i < n->num_inputs; i++) {
    const drt_value *x = n->inputs[i];
    if (!x) continue;
    int64_t row = x->shape.dims[axis] * inner;
    int64_t dims[2] = {outer, row}, s[2] = {row, 1}, t[2] = {out_row, 1};
    DRT_RETURN_IF_ERROR(
        drt_cg_emit_view_copy(cg, arg_at(y, (uint64_t)(off * (int64_t)es)), drt_cg_arg_value(x), es, 2, dims, s, t));
    off += row;
  }
  return DRT_OK;
}

static drt_status e_split(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0];
  size_t es;
  DRT_RETURN_IF_ERROR(storage_size(cg, x, &es));
  int axis;
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_node_attr_int(n, "axis", 0), x->shape.rank, &axis), "attribute 'axis'");
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; i++) outer *= x->shape.dims[i];
  for (int i = axis + 1; i < x->shape.rank; i++) inner *= x->shape.dims[i];
  int64_t in_row = x->shape.dims[axis] * inner, off = 0;
  for (int i = 0; i < n->num_outputs; i++) {
    const drt_value *y = n->outputs[i];
    int64_t row = y->shape.dims[axis] * inner;
    if (off + row > in_row) return DRT_ERROR(DRT_STATUS_INTERNAL, "output sizes exceed the input along axis %d", axis);
    int64_t dims[2] = {outer, row}, s[2] = {in_row, 1}, t[2] = {row, 1};
    DRT_RETURN_IF_ERROR(
        drt_cg_emit_view_copy(cg, drt_cg_arg_value(y), arg_at(x, (uint64_t)(off * (int64_t)es)), es, 2, dims, s, t));
    off += row;
  }
  return DRT_OK;
}

/* ---- Slice ---------------------------------------------------------------------------------------- */
static drt_status e_slice(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0], *y = n->outputs[0];
  int64_t start[DRT_MAX_RANK], step[DRT_MAX_RANK];
  drt_shape os;
  DRT_RETURN_IF_ERROR(drt_slice_node_resolve(n, start, step, &os));
  if (!drt_shape_equal(&os, &y->shape)) return DRT_ERROR(DRT_STATUS_INTERNAL, "output shape disagrees with inference");
  int64_t st[DRT_MAX_RANK], s[DRT_MAX_RANK], offset = 0;
  drt_cg_dense_strides(&x->shape, st);
  for (int i = 0; i < os.rank; i++) {
    s[i] = os.dims[i] > 1 ? st[i] * step[i] : 0;
    offset += start[i] * st[i];
  }
  return emit_view_dense(cg, y, x, os.rank, os.dims, s, offset);
}

/* ---- Expand / Tile / DepthToSpace / SpaceToDepth --------------------------------------------------- */
static drt_status e_expand(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0], *y = n->outputs[0];
  if (y->shape.rank < x->shape.rank) return DRT_ERROR(DRT_STATUS_INTERNAL, "output rank is below the input rank");
  int64_t s[DRT_MAX_RANK];
  drt_cg_broadcast_strides(&x->shape, &y->shape, s);
  return emit_view_dense(cg, y, x, y->shape.rank, y->shape.dims, s, 0);
}

static drt_status e_tile(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0], *y = n->outputs[0];
  if (drt_shape_numel(&y->shape) == 0) return DRT_OK;
  int r = x->shape.rank;
  int64_t st[DRT_MAX_RANK], dims[DRT_CG_VIEW_MAX], s[DRT_CG_VIEW_MAX];
  drt_cg_dense_strides(&x->shape, st);
  for (int i = 0; i < r; i++) {
    int64_t d = x->shape.dims[i];
    dims[2 * i] = y->shape.dims[i] / d;
    s[2 * i] = 0;
    dims[2 * i + 1] = d;
    s[2 * i + 1] = st[i];
  }
  return emit_view_dense(cg, y, x, 2 * r, dims, s, 0);
}

static drt_status e_depth_to_space(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0], *y = n->outputs[0];
  int64_t b = drt_node_attr_int(n, "blocksize", 0);
  if (b <= 0 || x->shape.rank != 4) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "bad blocksize or rank");
  bool crd = strcmp(drt_node_attr_string(n, "mode", "DCR"), "CRD") == 0;
  const int64_t *d = x->shape.dims;
  int64_t C = d[1], H = d[2], W = d[3], Co = C / (b * b), HW = H * W;
  int64_t dims[6] = {d[0], Co, H, b, W, b}, s[6] = {C * HW, 0, W, 0, 1, 0};
  if (crd) {
    s[1] = b * b * HW;
    s[3] = b * HW;
    s[5] = HW;
  } else {
    s[1] = HW;
    s[3] = b * Co * HW;
    s[5] = Co * HW;
  }
  return emit_view_dense(cg, y, x, 6, dims, s, 0);
}

static drt_status e_space_to_depth(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0], *y = n->outputs[0];
  int64_t b = drt_node_attr_int(n, "blocksize", 0);
  if (b <= 0 || x->shape.rank != 4) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "bad blocksize or rank");
  bool crd = strcmp(drt_node_attr_string(n, "mode", "DCR"), "CRD") == 0;
  const int64_t *d = x->shape.dims;
  int64_t C = d[1], H = d[2], W = d[3];
  int64_t dims[6] = {d[0], b, b, C, H / b, W / b}, s[6] = {C * H * W, W, 1, H * W, b * W, b};
  if (crd) {
    dims[1] = C;
    s[1] = H * W;
    dims[2] = b;
    s[2] = W;
    dims[3] = b;
    s[3] = 1;
  }
  return emit_view_dense(cg, y, x, 6, dims, s, 0);
}

/* ---- Gather -------------------------------------------------------------------------------------- */
static drt_status e_gather(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0], *ind = n->inputs[1], *y = n->outputs[0];
  if (ind->dtype != DRT_DTYPE_INT32 && ind->dtype != DRT_DTYPE_INT64)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "indices of dtype %s (expected int32 or int64)",
                     drt_dtype_name(ind->dtype));
  size_t es;
  DRT_RETURN_IF_ERROR(storage_size(cg, x, &es));
  int axis = 0;
  DRT_RETURN_IF_ERROR(drt_normalize_axis(drt_node_attr_int(n, "axis", 0), x->shape.rank, &axis));
  int64_t m = drt_shape_numel(&ind->shape), nax = x->shape.dims[axis], outer = 1, inner = 1;
  for (int i = 0; i < axis; i++) outer *= x->shape.dims[i];
  for (int i = axis + 1; i < x->shape.rank; i++) inner *= x->shape.dims[i];
  if (m == 0 || outer == 0 || inner == 0) return DRT_OK;
  if (nax == 0) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "cannot gather from axis %d of size 0", axis);
  /* constant single index: a slice */
  if (ind->kind == DRT_VALUE_CONST && m == 1) {
    int64_t v = 0, cnt = 0;
    DRT_RETURN_IF_ERROR(drt_value_const_ints(ind, &v, 1, &cnt));
    if (v < -nax || v >= nax)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "index %" PRId64 " is out of range [-%" PRId64 ", %" PRId64 ")", v,
                       nax, nax);
    if (v < 0) v += nax;
    int64_t dims[2] = {outer, inner}, s[2] = {nax * inner, 1};
    return emit_view_dense(cg, y, x, 2, dims, s, v * inner);
  }
  /* widen the moved row */
  size_t w = es;
  while (w < 16 && (inner * (int64_t)es) % (int64_t)(2 * w) == 0) w *= 2;
  int64_t inner_w = inner * (int64_t)es / (int64_t)w;
  int64_t total = outer * m * inner_w;
  const char *it = (total < DRT_CG_INT_INDEX_LIMIT && outer * nax * inner_w < DRT_CG_INT_INDEX_LIMIT) ? "int" : "long long";
  const char *T = move_type(w), *IDX = ind->dtype == DRT_DTYPE_INT32 ? "int" : "long long";
  int32_t k;
  DRT_RETURN_IF_ERROR(drt_cg_kernel(cg, BLOCK, &k,
                                    "extern \"C\" __global__ void __launch_bounds__(%d) @NAME@(drt_kargs a) {\n"
                                    "  drt_gather_axis<%s, %s, %s>((%s *)a.u[0], (const %s *)a.u[1], (const %s *)a.u[2], "
                                    "(%s)%" PRId64 ", (%s)%" PRId64 ", (%s)%" PRId64 ", (%s)%" PRId64 ");\n}",
                                    BLOCK, T, IDX, it, T, T, IDX, it, total, it, m, it, nax, it, inner_w));
  uint32_t grid[3] = {drt_cg_blocks(total, BLOCK, MAX_BLOCKS), 1, 1}, block[3] = {BLOCK, 1, 1};
  drt_cuda_arg args[3] = {drt_cg_arg_value(y), drt_cg_arg_value(x), drt_cg_arg_value(ind)};
  return drt_cg_launch(cg, k, grid, block, 0, args, 3);
}

/* ---- Pad ------------------------------------------------------------------------------------------ */
/* Bits of `v` (a float) in storage dtype dt, in the low bytes of the result. */
static bool scalar_bits(drt_dtype dt, double v, uint64_t *bits) {
  *bits = 0;
  switch (dt) {
    case DRT_DTYPE_FLOAT32: {
      float f = (float)v;
      uint32_t u;
      memcpy(&u, &f, 4);
      *bits = u;
      return true;
    }
    case DRT_DTYPE_FLOAT64: memcpy(bits, &v, 8); return true;
    case DRT_DTYPE_FLOAT16: *bits = drt_f32_to_f16((float)v); return true;
    case DRT_DTYPE_BFLOAT16: *bits = drt_f32_to_bf16((float)v); return true;
    default: break;
  }
  if (!drt_dtype_is_int(dt) && dt != DRT_DTYPE_BOOL) return false;
  int64_t i = dt == DRT_DTYPE_BOOL ? (v != 0) : (int64_t)v;
  size_t es = drt_dtype_size(dt);
  uint64_t u = (uint64_t)i;
  *bits = es >= 8 ? u : (u & ((1ull << (8 * es)) - 1));
  return true;
}

static drt_status e_pad(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0], *y = n->outputs[0];
  int r = x->shape.rank;
  size_t es;
  DRT_RETURN_IF_ERROR(storage_size(cg, x, &es));
  drt_dtype sdt = drt_cg_storage(cg, x);
  const char *ms = drt_node_attr_string(n, "mode", "constant");
  int mode;
  if (!strcmp(ms, "constant")) mode = 0;
  else if (!strcmp(ms, "reflect")) mode = 1;
  else if (!strcmp(ms, "edge")) mode = 2;
  else if (!strcmp(ms, "wrap")) mode = 3;
  else return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute mode: unknown value '%s'", ms);
  int64_t begin[DRT_MAX_RANK] = {0};
  uint64_t bits = 0;
  drt_cuda_arg value_ptr = drt_cg_arg_none();
  if (n->opset < 11) {
    int64_t np;
    const int64_t *p = drt_node_attr_ints(n, "pads", &np);
    if (!p) p = drt_node_attr_ints(n, "paddings", &np);
    if (!p || np != 2 * r) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute pads must have %d values", 2 * r);
    for (int i = 0; i < r; i++) begin[i] = p[i];
    if (!scalar_bits(sdt, drt_node_attr_float(n, "value", 0.0f), &bits))
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "dtype %s", drt_dtype_name(x->dtype));
  } else {
    int64_t pads[2 * DRT_MAX_RANK], np = 0, axes[DRT_MAX_RANK], na = r;
    for (int i = 0; i < r; i++) axes[i] = i;
    const drt_value *pv = drt_node_input(n, 1), *cv = drt_node_input(n, 2), *av = drt_node_input(n, 3);
    if (!pv || pv->kind != DRT_VALUE_CONST)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input 1 'pads' must be a compile-time constant");
    DRT_RETURN_IF_ERROR(drt_value_const_ints(pv, pads, 2 * DRT_MAX_RANK, &np));
    if (av) {
      if (av->kind != DRT_VALUE_CONST)
        return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input 3 'axes' must be a compile-time constant");
      DRT_RETURN_IF_ERROR(drt_value_const_ints(av, axes, DRT_MAX_RANK, &na));
      for (int64_t i = 0; i < na; i++) {
        int a = 0;
        DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(axes[i], r, &a), "input 3 'axes'");
        axes[i] = a;
      }
    }
    if (np != 2 * na) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 1 'pads' must have %" PRId64 " values", 2 * na);
    for (int64_t i = 0; i < na; i++) begin[axes[i]] = pads[i];
    if (cv && drt_shape_numel(&cv->shape) == 1) {
      if (cv->kind == DRT_VALUE_CONST) {
        double v = 0;
        DRT_RETURN_IF_ERROR(drt_value_const_scalar(cv, &v));
        if (!scalar_bits(sdt, v, &bits)) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "dtype %s", drt_dtype_name(x->dtype));
      } else {
        value_ptr = drt_cg_arg_value(cv);
      }
    }
  }
  int64_t total = drt_shape_numel(&y->shape);
  if (total == 0) return DRT_OK;
  if (r == 0) return drt_cg_copy(cg, drt_cg_arg_value(y), drt_cg_arg_value(x), es);
  for (int d = 0; d < r; d++)
    if (x->shape.dims[d] == 0 && mode != 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "mode '%s' cannot pad axis %d, which has size 0", ms, d);
  int64_t st[DRT_MAX_RANK], in[DRT_MAX_RANK];
  drt_cg_dense_strides(&x->shape, st);
  for (int d = 0; d < r; d++) {
    in[d] = x->shape.dims[d];
    if (in[d] == 0) { /* constant padding of an empty axis: every position is the value */
      in[d] = 1;
      begin[d] = INT32_MAX;
    }
  }
  const char *it =
      total < DRT_CG_INT_INDEX_LIMIT && drt_shape_numel(&x->shape) < DRT_CG_INT_INDEX_LIMIT ? "int" : "long long";
  const char *T = move_type(es);
  char os[512], is[512], bs[512], ss[512];
  int32_t k;
  DRT_RETURN_IF_ERROR(drt_cg_kernel(
      cg, BLOCK, &k,
      "extern \"C\" __global__ void __launch_bounds__(%d) @NAME@(drt_kargs a) {\n"
      "  constexpr drt_pad_geom<%d> g = {%s, %s, %s, %s};\n"
      "  drt_pad<%s, %s, %d, %d>((%s *)a.u[0], (const %s *)a.u[1], (%s)%" PRId64 ", g, (const %s *)a.u[2], (%s)a.u[3]);\n}",
      BLOCK, r, ints_str(os, sizeof os, y->shape.dims, r), ints_str(is, sizeof is, in, r),
      ints_str(bs, sizeof bs, begin, r), ints_str(ss, sizeof ss, st, r), T, it, r, mode, T, T, it, total, T, T));
  uint32_t grid[3] = {drt_cg_blocks(total, BLOCK, MAX_BLOCKS), 1, 1}, block[3] = {BLOCK, 1, 1};
  drt_cuda_arg args[4] = {drt_cg_arg_value(y), drt_cg_arg_value(x), value_ptr, drt_cg_arg_i64((int64_t)bits)};
  return drt_cg_launch(cg, k, grid, block, 0, args, 4);
}

/* ---- Resize / Upsample ------------------------------------------------------------------------------ */
enum { RZ_NEAREST, RZ_LINEAR, RZ_CUBIC };
enum { CT_HALF_PIXEL, CT_HALF_PIXEL_SYM, CT_PYTORCH, CT_ALIGN, CT_ASYM, CT_TF_CROP };
enum { NM_ROUND_PREFER_FLOOR, NM_ROUND_PREFER_CEIL, NM_FLOOR, NM_CEIL, NM_SIMPLE };

static int find_name(const char *v, const char *const *names, int count) {
  for (int i = 0; i < count; i++)
    if (!strcmp(v, names[i])) return i;
  return -1;
}

static drt_status const_doubles(const drt_value *v, const char *what, double *out, int64_t max, int64_t *count) {
  *count = 0;
  if (!v || drt_shape_numel(&v->shape) == 0) return DRT_OK;
  if (v->kind != DRT_VALUE_CONST) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s must be a compile-time constant", what);
  int64_t c = drt_shape_numel(&v->shape);
  if (c > max) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s has %" PRId64 " values", what, c);
  for (int64_t i = 0; i < c; i++) out[i] = drt_load_f64(v->dtype, v->data, (size_t)i);
  *count = c;
  return DRT_OK;
}

/* Whether a nearest Resize maps every output index y of every axis to input index y / f with f =
 * out / in an integer (1: the axis is untouched), exactly as the Resize definition (and the
 * CPU kernel) computes it. With out = f in and scale = f: asymmetric gives x = y / f, so floor
 * (and the simple mode of Upsample / Resize-10, trunc) give y / f, and round_prefer_floor does
 * for f = 2 (ties x = k + 1/2 go down); half_pixel, pytorch_half_pixel (out > 1) and
 * half_pixel_symmetric (offset 0 when out = f in) give x = y / f + ((y % f) + 1/2) / f - 1/2,
 * whose fraction lies in (-1/2, 1/2) with no tie, so both round modes give y / f. */
static bool nearest_is_integer_upsample(const drt_value *x, const drt_value *y, const double *scale, int coord,
                                        int nearest) {
  if (coord == CT_TF_CROP) return false; /* its roi crops and extrapolates even at scale 1 */
  for (int i = 0; i < x->shape.rank; i++) {
    int64_t in_w = x->shape.dims[i], out_w = y->shape.dims[i];
    if (in_w < 1 || out_w % in_w != 0) return false;
    int64_t f = out_w / in_w;
    if (f == 1 && fabs(scale[i] - 1.0) <= 1e-9) continue; /* identity axis, as e_resize decides */
    if (scale[i] != (double)f) return false;
    bool ok;
    switch (coord) {
      case CT_ASYM:
        ok = nearest == NM_FLOOR || nearest == NM_SIMPLE || (nearest == NM_ROUND_PREFER_FLOOR && f == 2);
        break;
      case CT_HALF_PIXEL:
      case CT_HALF_PIXEL_SYM:
      case CT_PYTORCH:
        ok = (nearest == NM_ROUND_PREFER_FLOOR || nearest == NM_ROUND_PREFER_CEIL) && (coord != CT_PYTORCH || out_w > 1);
        break;
      default: ok = false;
    }
    if (!ok) return false;
  }
  return true;
}

/* drt_upsample_nearest (kernels/movement.cuh): V outputs of the last axis per thread, V the
 * largest power of two with V elements in 16 bytes that divides the last axis. */
static drt_status emit_upsample_nearest(drt_cg *cg, const drt_value *x, const drt_value *y, size_t es) {
  int r = x->shape.rank;
  int64_t st[DRT_MAX_RANK], outs[DRT_MAX_RANK], fs[DRT_MAX_RANK];
  drt_cg_dense_strides(&x->shape, st);
  for (int i = 0; i < r; i++) {
    outs[i] = y->shape.dims[i];
    fs[i] = y->shape.dims[i] / x->shape.dims[i];
  }
  int v = (int)(16 / es);
  while (v > 1 && outs[r - 1] % v != 0) v /= 2;
  int64_t total = drt_shape_numel(&y->shape), groups = total / v;
  char o_txt[512], f_txt[512], s_txt[512];
  ints_str(o_txt, sizeof o_txt, outs, r);
  ints_str(f_txt, sizeof f_txt, fs, r);
  ints_str(s_txt, sizeof s_txt, st, r);
  const char *T = move_type(es);
  const char *it =
      total < DRT_CG_INT_INDEX_LIMIT && drt_shape_numel(&x->shape) < DRT_CG_INT_INDEX_LIMIT ? "int" : "long long";
  int32_t k;
  DRT_RETURN_IF_ERROR(drt_cg_kernel(cg, BLOCK, &k,
                                    "extern \"C\" __global__ void __launch_bounds__(%d) @NAME@(drt_kargs a) {\n"
                                    "  constexpr drt_up_geom<%d> g = {%s, %s, %s};\n"
                                    "  drt_upsample_nearest<%s, %s, %d, %d>((%s *)a.u[0], (const %s *)a.u[1], (%s)%" PRId64
                                    ", g);\n}",
                                    BLOCK, r, o_txt, f_txt, s_txt, T, it, r, v, T, T, it, groups));
  uint32_t grid[3] = {drt_cg_blocks(groups, BLOCK, MAX_BLOCKS), 1, 1}, block[3] = {BLOCK, 1, 1};
  drt_cuda_arg args[2] = {drt_cg_arg_value(y), drt_cg_arg_value(x)};
  return drt_cg_launch(cg, k, grid, block, 0, args, 2);
}

static drt_status e_resize(drt_cg *cg, const drt_node *n) {
  static const char *const modes[] = {"nearest", "linear", "cubic"};
  static const char *const coords[] = {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel",
                                       "align_corners", "asymmetric", "tf_crop_and_resize"};
  static const char *const nearests[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
  const drt_value *x = n->inputs[0], *y = n->outputs[0];
  int r = x->shape.rank;
  if (y->shape.rank != r) return DRT_ERROR(DRT_STATUS_INTERNAL, "output rank %d != input rank %d", y->shape.rank, r);
  int64_t total = drt_shape_numel(&y->shape);
  if (total == 0) return DRT_OK;
  size_t es;
  DRT_RETURN_IF_ERROR(storage_size(cg, x, &es));
  if (r == 0) return drt_cg_copy(cg, drt_cg_arg_value(y), drt_cg_arg_value(x), es);
  const char *ms = drt_node_attr_string(n, "mode", "nearest");
  bool upsample = n->op == DRT_OP_UPSAMPLE;
  if (upsample && !strcmp(ms, "bilinear")) ms = "linear";
  int mode = find_name(ms, modes, 3), coord = CT_ASYM, nearest = NM_SIMPLE;
  if (mode < 0) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute mode: unknown value '%s'", ms);
  double scale[DRT_MAX_RANK], cubic_a = -0.75;
  float roi_lo[DRT_MAX_RANK], roi_hi[DRT_MAX_RANK], extrap = 0.0f;
  bool exclude = false, antialias = false;
  int64_t axes[DRT_MAX_RANK], na = r;
  for (int i = 0; i < r; i++) {
    scale[i] = 1.0;
    roi_lo[i] = 0.0f;
    roi_hi[i] = 1.0f;
    axes[i] = i;
  }
  if (upsample || n->opset < 11) {
    if (upsample && n->opset < 9) {
      int64_t cnt;
      const float *f = drt_node_attr_floats(n, "scales", &cnt);
      if (!f || cnt != r) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute scales must have %d values", r);
      for (int i = 0; i < r; i++) scale[i] = f[i];
    } else {
      int64_t cnt;
      DRT_RETURN_IF_ERROR(const_doubles(drt_node_input(n, 1), "input 1 'scales'", scale, DRT_MAX_RANK, &cnt));
      if (cnt != r) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 1 'scales' must have %d values", r);
    }
  } else {
    coord = find_name(drt_node_attr_string(n, "coordinate_transformation_mode", "half_pixel"), coords, 6);
    nearest = find_name(drt_node_attr_string(n, "nearest_mode", "round_prefer_floor"), nearests, 4);
    if (coord < 0 || nearest < 0)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "coordinate_transformation_mode or nearest_mode value");
    cubic_a = drt_node_attr_float(n, "cubic_coeff_a", -0.75f);
    exclude = drt_node_attr_int(n, "exclude_outside", 0) != 0;
    extrap = drt_node_attr_float(n, "extrapolation_value", 0.0f);
    antialias = n->opset >= 18 && drt_node_attr_int(n, "antialias", 0) != 0 && mode != RZ_NEAREST;
    int64_t cnt;
    const int64_t *a = n->opset >= 18 ? drt_node_attr_ints(n, "axes", &cnt) : NULL;
    if (a) {
      if (cnt > r) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute axes has too many values");
      na = cnt;
      for (int64_t i = 0; i < na; i++) {
        int ax = 0;
        DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(a[i], r, &ax), "attribute axes");
        axes[i] = ax;
      }
    }
    double buf[2 * DRT_MAX_RANK];
    if (coord == CT_TF_CROP) {
      DRT_RETURN_IF_ERROR(const_doubles(drt_node_input(n, 1), "input 1 'roi'", buf, 2 * DRT_MAX_RANK, &cnt));
      if (cnt != 2 * na)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 1 'roi' must have %d values", (int)(2 * na));
      for (int64_t i = 0; i < na; i++) {
        roi_lo[axes[i]] = (float)buf[i];
        roi_hi[axes[i]] = (float)buf[na + i];
      }
    }
    DRT_RETURN_IF_ERROR(const_doubles(drt_node_input(n, 2), "input 2 'scales'", buf, DRT_MAX_RANK, &cnt));
    if (cnt > 0) {
      if (cnt != na) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 2 'scales' must have %d values", (int)na);
      for (int64_t i = 0; i < na; i++) scale[axes[i]] = buf[i];
    } else {
      DRT_RETURN_IF_ERROR(const_doubles(drt_node_input(n, 3), "input 3 'sizes'", buf, DRT_MAX_RANK, &cnt));
      if (cnt != na)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "one of 'scales' and 'sizes' must be given");
      const char *policy = n->opset >= 18 ? drt_node_attr_string(n, "keep_aspect_ratio_policy", "stretch") : "stretch";
      bool stretch = !strcmp(policy, "stretch"), larger = !strcmp(policy, "not_smaller");
      double sc = larger ? 0.0 : INFINITY;
      for (int64_t i = 0; i < na; i++) {
        int64_t iw = x->shape.dims[axes[i]];
        /* the CPU kernel reads sizes as integers */
        double f = iw ? (double)(int64_t)buf[i] / (double)iw : 1.0;
        scale[axes[i]] = f;
        sc = larger ? (f > sc ? f : sc) : (f < sc ? f : sc);
      }
      if (!stretch)
        for (int64_t i = 0; i < na; i++) scale[axes[i]] = sc;
    }
  }
  for (int i = 0; i < r; i++) {
    if (!(scale[i] > 0)) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "scale %g for axis %d must be positive", scale[i], i);
    if (x->shape.dims[i] == 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "cannot resize axis %d of size 0", i);
  }
  drt_dtype sdt = drt_cg_storage(cg, x);
  if (mode != RZ_NEAREST && sdt != DRT_DTYPE_FLOAT32 && sdt != DRT_DTYPE_FLOAT16 && sdt != DRT_DTYPE_BFLOAT16)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s mode on dtype %s has no CUDA kernel", ms, drt_dtype_name(x->dtype));
  /* geometry text */
  int64_t st[DRT_MAX_RANK];
  drt_cg_dense_strides(&x->shape, st);
  char axes_txt[2048], strides_txt[512], order_txt[256];
  size_t len = 0;
  int nactive = 0, ntaps = mode == RZ_CUBIC ? 4 : 2;
  axes_txt[0] = 0;
  for (int i = 0; i < r; i++) {
    int64_t in_w = x->shape.dims[i], out_w = y->shape.dims[i];
    bool identity = fabs(scale[i] - 1.0) <= 1e-9 && in_w == out_w &&
                    (coord != CT_TF_CROP || (fabs((double)roi_lo[i]) <= 1e-9 && fabs(roi_hi[i] - 1.0) <= 1e-9));
    bool active = !identity && mode != RZ_NEAREST;
    nactive += active;
    int taps = 0;
    if (antialias && active) { /* the widened kernel of runtime/cpu/resize.c rz_taps */
      double s = scale[i] < 1.0 ? scale[i] : 1.0;
      int64_t first = mode == RZ_LINEAR ? (int64_t)floor(-1.0 / s) + 1 : (int64_t)floor(-2.0 / s) + 1;
      if (2 - 2 * first > 64)
        return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "antialiased resize of axis %d needs %" PRId64 " taps", i,
                         2 - 2 * first);
      taps = (int)(2 - 2 * first);
      if (taps > ntaps) ntaps = taps;
    }
    len += (size_t)snprintf(axes_txt + len, sizeof axes_txt - len,
                            "%s{%" PRId64 "LL, %" PRId64 "LL, %.17g, %.9g, %.9g, %d, %d, %d}", i ? ", " : "", in_w,
                            out_w, scale[i], (double)roi_lo[i], (double)roi_hi[i], identity ? 1 : 0, active ? 1 : 0,
                            taps);
    if (len >= sizeof axes_txt) return DRT_ERROR(DRT_STATUS_INTERNAL, "resize geometry text too long");
  }
  int64_t order[DRT_MAX_RANK];
  for (int i = 0; i < r; i++) order[i] = i < na ? axes[i] : 0;
  ints_str(strides_txt, sizeof strides_txt, st, r);
  len = 0;
  len += (size_t)snprintf(order_txt + len, sizeof order_txt - len, "{");
  for (int i = 0; i < r; i++) len += (size_t)snprintf(order_txt + len, sizeof order_txt - len, "%s%d", i ? "," : "", (int)order[i]);
  snprintf(order_txt + len, sizeof order_txt - len, "}");
  const char *it =
      total < DRT_CG_INT_INDEX_LIMIT && drt_shape_numel(&x->shape) < DRT_CG_INT_INDEX_LIMIT ? "int" : "long long";
  int32_t k;
  uint64_t bits = 0;
  if (mode == RZ_NEAREST && nearest_is_integer_upsample(x, y, scale, coord, nearest))
    return emit_upsample_nearest(cg, x, y, es);
  if (mode == RZ_NEAREST) {
    const char *T = move_type(es);
    if (!scalar_bits(sdt, extrap, &bits)) bits = 0;
    DRT_RETURN_IF_ERROR(drt_cg_kernel(
        cg, BLOCK, &k,
        "extern \"C\" __global__ void __launch_bounds__(%d) @NAME@(drt_kargs a) {\n"
        "  constexpr drt_rz_geom<%d> g = {{%s}, %s, %s, %d, %.17g, %d, %.9g};\n"
        "  drt_resize_nearest<%s, %s, %d, %d, %d>((%s *)a.u[0], (const %s *)a.u[1], (%s)%" PRId64 ", g, (%s)a.u[2]);\n}",
        BLOCK, r, axes_txt, strides_txt, order_txt, (int)na, cubic_a, exclude ? 1 : 0, (double)extrap, T, it, r, coord,
        nearest, T, T, it, total, T));
  } else {
    const char *T = drt_cg_ctype(cg, sdt);
    DRT_RETURN_IF_ERROR(drt_cg_kernel(
        cg, BLOCK, &k,
        "extern \"C\" __global__ void __launch_bounds__(%d) @NAME@(drt_kargs a) {\n"
        "  constexpr drt_rz_geom<%d> g = {{%s}, %s, %s, %d, %.17g, %d, %.9g};\n"
        "  drt_resize_interp<%s, %s, %d, %d, %d, %d, %d>((%s *)a.u[0], (const %s *)a.u[1], (%s)%" PRId64 ", g);\n}",
        BLOCK, r, axes_txt, strides_txt, order_txt, (int)na, cubic_a, exclude ? 1 : 0, (double)extrap, T, it, r, mode,
        coord, nactive, ntaps, T, T, it, total));
  }
  uint32_t grid[3] = {drt_cg_blocks(total, BLOCK, MAX_BLOCKS), 1, 1}, block[3] = {BLOCK, 1, 1};
  drt_cuda_arg args[3] = {drt_cg_arg_value(y), drt_cg_arg_value(x), drt_cg_arg_i64((int64_t)bits)};
  return drt_cg_launch(cg, k, grid, block, 0, args, 3);
}

/* ---- Trilu / GatherElements / ScatterND ------------------------------------------------------- */
static drt_status e_trilu(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0], *y = n->outputs[0];
  size_t es;
  DRT_RETURN_IF_ERROR(storage_size(cg, x, &es));
  int r = x->shape.rank;
  if (r < 2) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input must have rank >= 2");
  int64_t k = 0;
  const drt_value *kv = drt_node_input(n, 1);
  if (kv) {
    if (kv->kind != DRT_VALUE_CONST) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input 1 'k' must be a compile-time constant");
    int64_t cnt = 0;
    DRT_RETURN_IF_ERROR(drt_value_const_ints(kv, &k, 1, &cnt));
    if (cnt != 1) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "k (input 1) must have exactly one element");
  }
  int64_t rows = x->shape.dims[r - 2], cols = x->shape.dims[r - 1], total = drt_shape_numel(&x->shape);
  if (total == 0) return DRT_OK;
  int64_t lim = rows + cols + 1;
  k = k < -lim ? -lim : (k > lim ? lim : k);
  const char *it = total < DRT_CG_INT_INDEX_LIMIT ? "int" : "long long", *T = move_type(es);
  bool upper = drt_node_attr_int(n, "upper", 1) != 0;
  int32_t kern;
  DRT_RETURN_IF_ERROR(drt_cg_kernel(cg, BLOCK, &kern,
                                    "extern \"C\" __global__ void __launch_bounds__(%d) @NAME@(drt_kargs a) {\n"
                                    "  drt_trilu<%s, %s, %s>((%s *)a.u[0], (const %s *)a.u[1], (%s)%" PRId64
                                    ", (%s)%" PRId64 ", (%s)%" PRId64 ", %" PRId64 "LL);\n}",
                                    BLOCK, T, it, upper ? "true" : "false", T, T, it, total, it, rows, it, cols, k));
  uint32_t grid[3] = {drt_cg_blocks(total, BLOCK, MAX_BLOCKS), 1, 1}, block[3] = {BLOCK, 1, 1};
  drt_cuda_arg args[2] = {drt_cg_arg_value(y), drt_cg_arg_value(x)};
  return drt_cg_launch(cg, kern, grid, block, 0, args, 2);
}

static drt_status e_gather_elements(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0], *ind = n->inputs[1], *y = n->outputs[0];
  if (ind->dtype != DRT_DTYPE_INT32 && ind->dtype != DRT_DTYPE_INT64)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "indices of dtype %s (expected int32 or int64)",
                     drt_dtype_name(ind->dtype));
  size_t es;
  DRT_RETURN_IF_ERROR(storage_size(cg, x, &es));
  int r = x->shape.rank, axis = 0;
  DRT_RETURN_IF_ERROR(drt_normalize_axis(drt_node_attr_int(n, "axis", 0), r, &axis));
  int64_t total = drt_shape_numel(&y->shape);
  if (total == 0) return DRT_OK;
  if (r == 0 || ind->shape.rank != r) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "indices rank differs from data");
  int64_t st[DRT_MAX_RANK], zero[DRT_MAX_RANK] = {0};
  drt_cg_dense_strides(&x->shape, st);
  const char *it = total < DRT_CG_INT_INDEX_LIMIT ? "int" : "long long", *T = move_type(es);
  const char *IDX = ind->dtype == DRT_DTYPE_INT32 ? "int" : "long long";
  char ds[512], ss[512], ts[512];
  int32_t kern;
  DRT_RETURN_IF_ERROR(drt_cg_kernel(
      cg, BLOCK, &kern,
      "extern \"C\" __global__ void __launch_bounds__(%d) @NAME@(drt_kargs a) {\n"
      "  constexpr drt_nd<%d> g = {%s, %s, %s};\n"
      "  drt_gather_elements<%s, %s, %s, %d>((%s *)a.u[0], (const %s *)a.u[1], (const %s *)a.u[2], (%s)%" PRId64
      ", g, %d, %" PRId64 "LL);\n}",
      BLOCK, r, ints_str(ds, sizeof ds, y->shape.dims, r), ints_str(ss, sizeof ss, st, r), ints_str(ts, sizeof ts, zero, r),
      T, IDX, it, r, T, T, IDX, it, total, axis, x->shape.dims[axis]));
  uint32_t grid[3] = {drt_cg_blocks(total, BLOCK, MAX_BLOCKS), 1, 1}, block[3] = {BLOCK, 1, 1};
  drt_cuda_arg args[3] = {drt_cg_arg_value(y), drt_cg_arg_value(x), drt_cg_arg_value(ind)};
  return drt_cg_launch(cg, kern, grid, block, 0, args, 3);
}

static drt_status e_scatter_nd(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0], *ind = n->inputs[1], *upd = n->inputs[2], *y = n->outputs[0];
  if (strcmp(drt_node_attr_string(n, "reduction", "none"), "none") != 0)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "ScatterND with a reduction has no CUDA kernel");
  if (ind->dtype != DRT_DTYPE_INT32 && ind->dtype != DRT_DTYPE_INT64)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "indices of dtype %s (expected int32 or int64)",
                     drt_dtype_name(ind->dtype));
  size_t es;
  DRT_RETURN_IF_ERROR(storage_size(cg, x, &es));
  int r = x->shape.rank, q = ind->shape.rank;
  if (q < 1) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "indices must have rank >= 1");
  int64_t K = ind->shape.dims[q - 1];
  if (K < 1 || K > r) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "index tuples of %" PRId64 " components", K);
  int64_t numel = drt_shape_numel(&x->shape);
  if (numel == 0) return DRT_OK;
  DRT_RETURN_IF_ERROR(drt_cg_copy(cg, drt_cg_arg_value(y), drt_cg_arg_value(x), (uint64_t)numel * es));
  int64_t tuples = drt_shape_numel(&ind->shape) / K, slice = 1;
  for (int i = (int)K; i < r; i++) slice *= x->shape.dims[i];
  int64_t total = tuples * slice;
  if (total == 0) return DRT_OK;
  /* ONNX leaves duplicate indices undefined: the launch order decides which update stays */
  int64_t st[DRT_MAX_RANK], zero[DRT_MAX_RANK] = {0};
  drt_cg_dense_strides(&x->shape, st);
  const char *it = total < DRT_CG_INT_INDEX_LIMIT && numel < DRT_CG_INT_INDEX_LIMIT ? "int" : "long long", *T = move_type(es);
  const char *IDX = ind->dtype == DRT_DTYPE_INT32 ? "int" : "long long";
  char ds[512], ss[512], ts[512];
  int32_t kern;
  DRT_RETURN_IF_ERROR(drt_cg_kernel(
      cg, BLOCK, &kern,
      "extern \"C\" __global__ void __launch_bounds__(%d) @NAME@(drt_kargs a) {\n"
      "  constexpr drt_nd<%d> g = {%s, %s, %s};\n"
      "  drt_scatter_nd<%s, %s, %s, %d>((%s *)a.u[0], (const %s *)a.u[1], (const %s *)a.u[2], (%s)%" PRId64
      ", (%s)%" PRId64 ", g);\n}",
      BLOCK, (int)K, ints_str(ds, sizeof ds, x->shape.dims, (int)K), ints_str(ss, sizeof ss, st, (int)K),
      ints_str(ts, sizeof ts, zero, (int)K), T, IDX, it, (int)K, T, T, IDX, it, total, it, slice));
  uint32_t grid[3] = {drt_cg_blocks(total, BLOCK, MAX_BLOCKS), 1, 1}, block[3] = {BLOCK, 1, 1};
  drt_cuda_arg args[3] = {drt_cg_arg_value(y), drt_cg_arg_value(upd), drt_cg_arg_value(ind)};
  return drt_cg_launch(cg, kern, grid, block, 0, args, 3);
}

/* GridSample: one kernel per node (kernels/movement.cuh, drt_grid_sample), 1 to 3 spatial dims. */
static drt_status e_grid_sample(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0], *grid = n->inputs[1], *y = n->outputs[0];
  int r = x->shape.rank - 2;
  if (r < 1 || r > 3) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "GridSample over %d spatial dims (CUDA: 1 to 3)", r);
  const char *ms = drt_node_attr_string(n, "mode", n->opset < 20 ? "bilinear" : "linear");
  const char *ps = drt_node_attr_string(n, "padding_mode", "zeros");
  int mode = !strcmp(ms, "nearest") ? 0 : (!strcmp(ms, "cubic") || !strcmp(ms, "bicubic")) ? 2 : 1;
  int pad = !strcmp(ps, "border") ? 1 : !strcmp(ps, "reflection") ? 2 : 0;
  bool align = drt_node_attr_int(n, "align_corners", 0) != 0;
  int64_t total = drt_shape_numel(&y->shape), osp = 1;
  if (total == 0) return DRT_OK;
  for (int i = 0; i < r; i++) osp *= y->shape.dims[2 + i];
  const char *it = total < DRT_CG_INT_INDEX_LIMIT ? "int" : "long long";
  int64_t zero[3] = {0, 0, 0};
  char ds[128], zs[128];
  int32_t kern;
  DRT_RETURN_IF_ERROR(drt_cg_kernel(
      cg, BLOCK, &kern,
      "extern \"C\" __global__ void __launch_bounds__(%d) @NAME@(drt_kargs a) {\n"
      "  constexpr drt_nd<%d> g = {%s, %s, %s};\n"
      "  drt_grid_sample<%s, %s, %s, %s, %d, %d, %d, %s>((%s *)a.u[0], (const %s *)a.u[1], (const %s *)a.u[2], (%s)%" PRId64
      ", (%s)%" PRId64 ", (%s)%" PRId64 ", g);\n}",
      BLOCK, r, ints_str(ds, sizeof ds, x->shape.dims + 2, r), ints_str(zs, sizeof zs, zero, r), zs,
      drt_cg_ctype(cg, drt_cg_storage(cg, y)), drt_cg_ctype(cg, drt_cg_storage(cg, x)),
      drt_cg_ctype(cg, drt_cg_storage(cg, grid)), it, r, mode, pad, align ? "true" : "false",
      drt_cg_ctype(cg, drt_cg_storage(cg, y)), drt_cg_ctype(cg, drt_cg_storage(cg, x)),
      drt_cg_ctype(cg, drt_cg_storage(cg, grid)), it, total, it, x->shape.dims[1], it, osp));
  uint32_t gridd[3] = {drt_cg_blocks(total, BLOCK, MAX_BLOCKS), 1, 1}, block[3] = {BLOCK, 1, 1};
  drt_cuda_arg args[3] = {drt_cg_arg_value(y), drt_cg_arg_value(x), drt_cg_arg_value(grid)};
  return drt_cg_launch(cg, kern, gridd, block, 0, args, 3);
}

/* AffineGrid: one kernel (kernels/movement.cuh, drt_affine_grid). */
static drt_status e_affine_grid(drt_cg *cg, const drt_node *n) {
  const drt_value *th = n->inputs[0], *y = n->outputs[0];
  int r = (int)th->shape.dims[1];
  if (r != 2 && r != 3) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "theta must be [N, 2, 3] or [N, 3, 4]");
  int64_t total = drt_shape_numel(&y->shape);
  if (total == 0) return DRT_OK;
  const char *it = total < DRT_CG_INT_INDEX_LIMIT ? "int" : "long long";
  int64_t zero[3] = {0, 0, 0};
  char ds[128], zs[128];
  int32_t kern;
  DRT_RETURN_IF_ERROR(drt_cg_kernel(
      cg, BLOCK, &kern,
      "extern \"C\" __global__ void __launch_bounds__(%d) @NAME@(drt_kargs a) {\n"
      "  constexpr drt_nd<%d> g = {%s, %s, %s};\n"
      "  drt_affine_grid<%s, %s, %s, %d, %s>((%s *)a.u[0], (const %s *)a.u[1], (%s)%" PRId64 ", g);\n}",
      BLOCK, r, ints_str(ds, sizeof ds, y->shape.dims + 1, r), ints_str(zs, sizeof zs, zero, r), zs,
      drt_cg_ctype(cg, drt_cg_storage(cg, y)), drt_cg_ctype(cg, drt_cg_storage(cg, th)), it, r,
      drt_node_attr_int(n, "align_corners", 0) ? "true" : "false", drt_cg_ctype(cg, drt_cg_storage(cg, y)),
      drt_cg_ctype(cg, drt_cg_storage(cg, th)), it, total));
  uint32_t gridd[3] = {drt_cg_blocks(total, BLOCK, MAX_BLOCKS), 1, 1}, block[3] = {BLOCK, 1, 1};
  drt_cuda_arg args[2] = {drt_cg_arg_value(y), drt_cg_arg_value(th)};
  return drt_cg_launch(cg, kern, gridd, block, 0, args, 2);
}

const drt_cg_emitter drt_cg_emitters_movement[] = {
    {DRT_OP_RESHAPE, e_copy},
    {DRT_OP_FLATTEN, e_copy},
    {DRT_OP_SQUEEZE, e_copy},
    {DRT_OP_UNSQUEEZE, e_copy},
    {DRT_OP_IDENTITY, e_copy},
    {DRT_OP_TRANSPOSE, e_transpose},
    {DRT_OP_CONCAT, e_concat},
    {DRT_OP_SPLIT, e_split},
    {DRT_OP_SLICE, e_slice},
    {DRT_OP_EXPAND, e_expand},
    {DRT_OP_TILE, e_tile},
    {DRT_OP_DEPTH_TO_SPACE, e_depth_to_space},
    {DRT_OP_SPACE_TO_DEPTH, e_space_to_depth},
    {DRT_OP_GATHER, e_gather},
    {DRT_OP_PAD, e_pad},
    {DRT_OP_RESIZE, e_resize},
    {DRT_OP_UPSAMPLE, e_resize},
    {DRT_OP_TRILU, e_trilu},
    {DRT_OP_GATHER_ELEMENTS, e_gather_elements},
    {DRT_OP_SCATTER_ND, e_scatter_nd},
    {DRT_OP_GRID_SAMPLE, e_grid_sample},
    {DRT_OP_AFFINE_GRID, e_affine_grid},
    {DRT_OP_COUNT_, NULL},
};
