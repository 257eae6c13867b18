/* CPU kernels for the movement op family. Every kernel is dtype-generic: it moves elements
 * of 1, 2, 4 or 8 bytes without looking at their values, so all dtypes (float16/bfloat16/
 * float64 included) run natively and no float promotion happens.
 *
 * Most ops are expressed as a strided "view" of the input that is copied into the dense
 * output (Transpose, Slice, Expand, Tile, DepthToSpace, SpaceToDepth); run_view coalesces
 * axes and then picks one of these paths:
 *   - contiguous rows (innermost input stride 1): memcpy per row;
 *   - batched 2-D transpose (input stride 1 on the second-innermost output axis): 8x8
 *     micro-tiles over blocks of 16 output rows; covers 2-D transposes and last-two-axes
 *     swaps;
 *   - row transpose (a 2-D transpose whose elements are contiguous rows, e.g. the 0213
 *     head split/merge of attention): memcpy per row, blocked so reads and writes both
 *     stream;
 *   - otherwise a strided gather per row (stride 0 is a broadcast fill).
 * Concat and Split are 2-D block copies; Reshape/Flatten/Squeeze/Unsqueeze are a memcpy.
 * Large copies are split across threads with drt_parallel_for. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer.h"
#include "ir/infer_movement.h"
#include "runtime/cpu/cpu.h"

#define VIEW_MAX (2 * DRT_MAX_RANK)
#define PAR_BYTES ((int64_t)32768)   /* minimum work per parallel chunk */
#define CHUNK_BYTES ((int64_t)262144) /* long rows are split into pieces of this size */
#define TI 16  /* element transpose: output rows per unit */
#define TJ 256 /* element transpose: output columns per block inside a unit */

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static drt_status elem_size(const drt_tensor *t, size_t *es) {
  *es = drt_dtype_size(t->dtype);
  if (*es != 1 && *es != 2 && *es != 4 && *es != 8)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "dtype %s is not supported", drt_dtype_name(t->dtype));
  return DRT_OK;
}

/* C-order element strides of a shape. */
static void shape_strides(const drt_shape *s, int64_t *st) {
  int64_t acc = 1;
  for (int i = s->rank - 1; i >= 0; i--) {
    st[i] = acc;
    acc *= s->dims[i];
  }
}

static drt_status need_data(const drt_tensor *t, int i) {
  if (!t->data && drt_shape_numel(&t->shape) != 0)
    return DRT_ERROR(DRT_STATUS_INTERNAL, "input %d has no data", i);
  return DRT_OK;
}

/* ---- 2-D block copy: rows of row_bytes between strided buffers ---------------------- */
typedef struct rows_job {
  char *dst;
  const char *src;
  int64_t dst_stride, src_stride, row_bytes, chunk_bytes, chunks_per_row;
} rows_job;

static void rows_fn(void *arg, int64_t b, int64_t e) {
  const rows_job *j = arg;
  for (int64_t u = b; u < e; u++) {
    int64_t row = u / j->chunks_per_row, off = (u % j->chunks_per_row) * j->chunk_bytes;
    memcpy(j->dst + row * j->dst_stride + off, j->src + row * j->src_stride + off,
           (size_t)min64(j->chunk_bytes, j->row_bytes - off));
  }
}

static void copy_rows(drt_cpu_ctx *ctx, void *dst, int64_t dst_stride, const void *src, int64_t src_stride,
                      int64_t rows, int64_t row_bytes) {
  if (rows <= 0 || row_bytes <= 0 || dst == src) return;
  rows_job j = {dst, src, dst_stride, src_stride, row_bytes, min64(row_bytes, CHUNK_BYTES), 0};
  j.chunks_per_row = (row_bytes + j.chunk_bytes - 1) / j.chunk_bytes;
  drt_parallel_for(ctx, rows * j.chunks_per_row, max64(1, PAR_BYTES / j.chunk_bytes), rows_fn, &j);
}

/* ---- strided view copy ---------------------------------------------------------------- */
typedef struct view {
  int rank;
  int64_t dims[VIEW_MAX];    /* output dims (output is dense C-order) */
  int64_t strides[VIEW_MAX]; /* input element stride per output axis (may be 0 or negative) */
  int64_t offset;            /* input element offset of output element 0 */
} view;

/* Drops 1-dims and merges axes that are contiguous in the input as well as the output. */
static void view_coalesce(view *v) {
  int r = 0;
  for (int i = 0; i < v->rank; i++) {
    if (v->dims[i] == 1) continue;
    if (r > 0 && v->strides[r - 1] == v->strides[i] * v->dims[i]) {
      v->dims[r - 1] *= v->dims[i];
      v->strides[r - 1] = v->strides[i];
    } else {
      v->dims[r] = v->dims[i];
      v->strides[r] = v->strides[i];
      r++;
    }
  }
  v->rank = r;
}

#define GATHER_T(T)                                   \
  do {                                                \
    T *d_ = (T *)dst;                                 \
    const T *s_ = (const T *)src;                     \
    for (int64_t i_ = 0; i_ < n; i_++) d_[i_] = s_[i_ * stride]; \
  } while (0)

/* dst[i] = src[i * stride] for i < n; src points at the first element. */
static void gather_run(void *dst, const void *src, int64_t n, int64_t stride, size_t es) {
  switch (es) {
    case 1: GATHER_T(uint8_t); break;
    case 2: GATHER_T(uint16_t); break;
    case 4: GATHER_T(uint32_t); break;
    default: GATHER_T(uint64_t); break;
  }
}

typedef struct view_job {
  const view *v;
  size_t es;
  const char *src;
  char *dst;
  int64_t tiles_m; /* transpose paths: row tiles per matrix, or columns per row block */
} view_job;

/* Decomposes `index` over axes [0, naxes) of v; returns the input element offset. */
static int64_t view_locate(const view *v, int naxes, int64_t index, int64_t *idx) {
  int64_t off = v->offset;
  for (int k = naxes - 1; k >= 0; k--) {
    idx[k] = index % v->dims[k];
    index /= v->dims[k];
    off += idx[k] * v->strides[k];
  }
  return off;
}

static void view_rows_fn(void *arg, int64_t b, int64_t e) {
  const view_job *j = arg;
  const view *v = j->v;
  int nr = v->rank - 1;
  size_t es = j->es;
  int64_t idx[VIEW_MAX];
  int64_t off = view_locate(v, nr, b, idx);
  int64_t inner = v->dims[nr], istride = v->strides[nr];
  int64_t row_bytes = inner * (int64_t)es;
  char *dst = j->dst + b * row_bytes;
  for (int64_t r = b; r < e; r++) {
    const char *src = j->src + off * (int64_t)es;
    if (istride == 1 && row_bytes >= 64)
      memcpy(dst, src, (size_t)row_bytes);
    else
      gather_run(dst, src, inner, istride, es);
    dst += row_bytes;
    for (int k = nr - 1; k >= 0; k--) {
      off += v->strides[k];
      if (++idx[k] < v->dims[k]) break;
      off -= v->strides[k] * v->dims[k];
      idx[k] = 0;
    }
  }
}

/* dst[i][j] = src[i + j * s] for rows [i0, i1) of a dense m x n dst, in 8x8 micro-tiles
 * gathered into a local block (reads of 8 input columns, then 8 contiguous output runs). */
#define TRANSPOSE_T(T)                                                                   \
  do {                                                                                   \
    T *d_ = (T *)dst;                                                                    \
    const T *s_ = (const T *)src;                                                        \
    T blk[8][8];                                                                         \
    for (int64_t jb = 0; jb < n; jb += TJ) {                                             \
      int64_t je = min64(jb + TJ, n);                                                    \
      for (int64_t ib = i0; ib < i1; ib += 8) {                                          \
        int64_t ni = min64(8, i1 - ib);                                                  \
        for (int64_t j0 = jb; j0 < je; j0 += 8) {                                        \
          int64_t nj = min64(8, je - j0);                                                \
          if (ni == 8 && nj == 8) {                                                      \
            for (int a = 0; a < 8; a++)                                                  \
              for (int c = 0; c < 8; c++) blk[c][a] = s_[ib + c + (j0 + a) * s];          \
            for (int c = 0; c < 8; c++)                                                  \
              for (int a = 0; a < 8; a++) d_[(ib + c) * n + j0 + a] = blk[c][a];         \
          } else {                                                                       \
            for (int64_t i = ib; i < ib + ni; i++)                                       \
              for (int64_t jj = j0; jj < j0 + nj; jj++) d_[i * n + jj] = s_[i + jj * s]; \
          }                                                                              \
        }                                                                                \
      }                                                                                  \
    }                                                                                    \
  } while (0)

static void transpose_tile(void *dst, const void *src, int64_t i0, int64_t i1, int64_t n, int64_t s, size_t es) {
  switch (es) {
    case 1: TRANSPOSE_T(uint8_t); break;
    case 2: TRANSPOSE_T(uint16_t); break;
    case 4: TRANSPOSE_T(uint32_t); break;
    default: TRANSPOSE_T(uint64_t); break;
  }
}

/* Element transpose: output (.., m, n) with input strides (.., 1, s). A unit is TI output
 * rows of one matrix: its reads are TI contiguous input elements per output column. */
static void view_transpose_fn(void *arg, int64_t b, int64_t e) {
  const view_job *j = arg;
  const view *v = j->v;
  int r = v->rank;
  int64_t m = v->dims[r - 2], n = v->dims[r - 1], s = v->strides[r - 1];
  int64_t idx[VIEW_MAX];
  for (int64_t u = b; u < e; u++) {
    int64_t batch = u / j->tiles_m, t = u % j->tiles_m;
    int64_t off = view_locate(v, r - 2, batch, idx);
    int64_t i0 = t * TI, i1 = min64(i0 + TI, m);
    transpose_tile(j->dst + batch * m * n * (int64_t)j->es, j->src + off * (int64_t)j->es, i0, i1, n, s, j->es);
  }
}

/* Row transpose: output (.., m, n, d) with input strides (.., d, s, 1), i.e. a 2-D transpose
 * whose elements are contiguous rows of d elements (head split/merge 0213). A unit is a block
 * of RB output columns of one matrix: for each of the m output rows it writes RB consecutive
 * rows, reading RB input streams that each advance by d, so both sides stay sequential. */
static void view_row_transpose_fn(void *arg, int64_t b, int64_t e) {
  const view_job *j = arg;
  const view *v = j->v;
  int r = v->rank;
  int64_t m = v->dims[r - 3], n = v->dims[r - 2], d = v->dims[r - 1], s = v->strides[r - 2];
  int64_t rb = j->tiles_m, nblk = (n + rb - 1) / rb, row_bytes = d * (int64_t)j->es;
  int64_t idx[VIEW_MAX];
  for (int64_t u = b; u < e; u++) {
    int64_t batch = u / nblk, c0 = (u % nblk) * rb, c1 = min64(c0 + rb, n);
    int64_t off = view_locate(v, r - 3, batch, idx);
    char *dst = j->dst + batch * m * n * row_bytes;
    const char *src = j->src + off * (int64_t)j->es;
    for (int64_t a = 0; a < m; a++)
      for (int64_t c = c0; c < c1; c++)
        memcpy(dst + (a * n + c) * row_bytes, src + (a * d + c * s) * (int64_t)j->es, (size_t)row_bytes);
  }
}

/* Copies view v of src (element size es) into the dense output dst. */
static void run_view(drt_cpu_ctx *ctx, view *v, size_t es, void *dst, const void *src) {
  int64_t numel = 1;
  for (int i = 0; i < v->rank; i++) numel *= v->dims[i];
  if (numel == 0) return;
  view_coalesce(v);
  const char *s = src;
  int r = v->rank;
  if (r == 0) {
    memcpy(dst, s + v->offset * (int64_t)es, es);
    return;
  }
  if (r == 1 && v->strides[0] == 1) {
    copy_rows(ctx, dst, 0, s + v->offset * (int64_t)es, 0, 1, numel * (int64_t)es);
    return;
  }
  view_job j = {v, es, s, dst, 0};
  if (r >= 2 && v->strides[r - 2] == 1 && v->strides[r - 1] != 0 && v->strides[r - 1] != 1) {
    int64_t m = v->dims[r - 2], n = v->dims[r - 1];
    j.tiles_m = (m + TI - 1) / TI;
    int64_t unit_bytes = min64(m, TI) * n * (int64_t)es;
    drt_parallel_for(ctx, numel / (m * n) * j.tiles_m, max64(1, PAR_BYTES / unit_bytes), view_transpose_fn, &j);
    return;
  }
  if (r >= 3 && v->strides[r - 1] == 1 && v->strides[r - 3] == v->dims[r - 1] && v->strides[r - 2] != 0 &&
      v->dims[r - 1] * (int64_t)es >= 32) {
    int64_t m = v->dims[r - 3], n = v->dims[r - 2], row_bytes = v->dims[r - 1] * (int64_t)es;
    /* about 64 KiB of input per unit, 4..64 columns */
    j.tiles_m = min64(n, min64(64, max64(4, 65536 / max64(1, m * row_bytes))));
    int64_t nblk = (n + j.tiles_m - 1) / j.tiles_m, unit_bytes = m * j.tiles_m * row_bytes;
    drt_parallel_for(ctx, numel / (m * n * v->dims[r - 1]) * nblk, max64(1, PAR_BYTES / unit_bytes),
                     view_row_transpose_fn, &j);
    return;
  }
  int64_t row_bytes = v->dims[r - 1] * (int64_t)es;
  drt_parallel_for(ctx, numel / v->dims[r - 1], max64(1, PAR_BYTES / row_bytes), view_rows_fn, &j);
}

/* ---- Reshape / Flatten / Squeeze / Unsqueeze: the data is unchanged ------------------- */
static drt_status k_copy(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)n;
  DRT_RETURN_IF_ERROR(need_data(&in[0], 0));
  size_t nb = drt_tensor_nbytes(&out[0]);
  if (nb != drt_tensor_nbytes(&in[0]))
    return DRT_ERROR(DRT_STATUS_INTERNAL, "input and output sizes differ (%zu vs %zu bytes)",
                     drt_tensor_nbytes(&in[0]), nb);
  if (out[0].data != in[0].data) /* the memory plan gives a view the block of a dying input */
    copy_rows(ctx, out[0].data, 0, in[0].data, 0, 1, (int64_t)nb);
  return DRT_OK;
}

/* ---- Transpose ---------------------------------------------------------------------- */
static drt_status k_transpose(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  size_t es;
  DRT_RETURN_IF_ERROR(elem_size(&in[0], &es));
  DRT_RETURN_IF_ERROR(need_data(&in[0], 0));
  int r = in[0].shape.rank;
  int64_t cnt = 0;
  const int64_t *perm = drt_node_attr_ints(n, "perm", &cnt);
  if (perm && cnt != r) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'perm' does not match rank %d", r);
  int64_t st[DRT_MAX_RANK];
  shape_strides(&in[0].shape, st);
  view v;
  v.rank = r;
  v.offset = 0;
  for (int i = 0; i < r; i++) {
    int64_t p = perm ? perm[i] : r - 1 - i;
    if (p < 0 || p >= r) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'perm' entry %" PRId64 " is out of range", p);
    v.dims[i] = in[0].shape.dims[p];
    v.strides[i] = st[p];
  }
  run_view(ctx, &v, es, out[0].data, in[0].data);
  return DRT_OK;
}

/* ---- Concat / Split ------------------------------------------------------------------- */
/* outer = prod(dims[:axis]), inner = prod(dims[axis+1:]) */
static void axis_split(const drt_shape *s, int axis, int64_t *outer, int64_t *inner) {
  *outer = 1;
  *inner = 1;
  for (int i = 0; i < axis; i++) *outer *= s->dims[i];
  for (int i = axis + 1; i < s->rank; i++) *inner *= s->dims[i];
}

static drt_status k_concat(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  size_t es;
  DRT_RETURN_IF_ERROR(elem_size(&out[0], &es));
  int axis;
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_node_attr_int(n, "axis", 1), out[0].shape.rank, &axis),
                          "attribute 'axis'");
  int64_t outer, inner;
  axis_split(&out[0].shape, axis, &outer, &inner);
  int64_t out_row = out[0].shape.dims[axis] * inner * (int64_t)es, off = 0;
  for (int i = 0; i < n->num_inputs; i++) {
    DRT_RETURN_IF_ERROR(need_data(&in[i], i));
    int64_t row = in[i].shape.dims[axis] * inner * (int64_t)es;
    copy_rows(ctx, (char *)out[0].data + off, out_row, in[i].data, row, outer, row);
    off += row;
  }
  return DRT_OK;
}

static drt_status k_split(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  size_t es;
  DRT_RETURN_IF_ERROR(elem_size(&in[0], &es));
  DRT_RETURN_IF_ERROR(need_data(&in[0], 0));
  int axis;
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_node_attr_int(n, "axis", 0), in[0].shape.rank, &axis),
                          "attribute 'axis'");
  int64_t outer, inner;
  axis_split(&in[0].shape, axis, &outer, &inner);
  int64_t in_row = in[0].shape.dims[axis] * inner * (int64_t)es, off = 0;
  for (int i = 0; i < n->num_outputs; i++) {
    int64_t row = out[i].shape.dims[axis] * inner * (int64_t)es;
    if (off + row > in_row) return DRT_ERROR(DRT_STATUS_INTERNAL, "output sizes exceed the input along axis %d", axis);
    copy_rows(ctx, out[i].data, row, (const char *)in[0].data + off, in_row, outer, row);
    off += row;
  }
  return DRT_OK;
}

/* ---- Slice ------------------------------------------------------------------------------ */
static drt_status tensor_ints(const drt_tensor *t, const char *what, int64_t *buf, int64_t *count) {
  int64_t c = drt_shape_numel(&t->shape);
  if (c < 0 || c > DRT_MAX_RANK) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s has %" PRId64 " entries", what, c);
  if (c > 0 && !t->data) return DRT_ERROR(DRT_STATUS_INTERNAL, "%s has no data", what);
  for (int64_t i = 0; i < c; i++) buf[i] = drt_load_i64(t->dtype, t->data, (size_t)i);
  *count = c;
  return DRT_OK;
}

static drt_status attr_ints(const drt_node *n, const char *name, int64_t *buf, int64_t *count, bool *present) {
  int64_t c = 0;
  const int64_t *v = drt_node_attr_ints(n, name, &c);
  *present = v != NULL;
  if (c > DRT_MAX_RANK) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute '%s' has %" PRId64 " entries", name, c);
  if (c > 0) memcpy(buf, v, (size_t)c * sizeof(int64_t));
  *count = c;
  return DRT_OK;
}

static drt_status k_slice(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  size_t es;
  DRT_RETURN_IF_ERROR(elem_size(&in[0], &es));
  DRT_RETURN_IF_ERROR(need_data(&in[0], 0));
  int64_t starts[DRT_MAX_RANK], ends[DRT_MAX_RANK], axes[DRT_MAX_RANK], steps[DRT_MAX_RANK];
  int64_t ns = 0, ne = 0, na = 0, nst = 0;
  bool pa = false, pst = false;
  if (n->opset < 10) {
    bool p;
    DRT_RETURN_IF_ERROR(attr_ints(n, "starts", starts, &ns, &p));
    DRT_RETURN_IF_ERROR(attr_ints(n, "ends", ends, &ne, &p));
    DRT_RETURN_IF_ERROR(attr_ints(n, "axes", axes, &na, &pa));
  } else {
    if (n->num_inputs < 3 || !in[1].data || !in[2].data)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "starts and ends are required");
    DRT_RETURN_IF_ERROR(tensor_ints(&in[1], "starts", starts, &ns));
    DRT_RETURN_IF_ERROR(tensor_ints(&in[2], "ends", ends, &ne));
    if (n->num_inputs > 3 && in[3].data) {
      pa = true;
      DRT_RETURN_IF_ERROR(tensor_ints(&in[3], "axes", axes, &na));
    }
    if (n->num_inputs > 4 && in[4].data) {
      pst = true;
      DRT_RETURN_IF_ERROR(tensor_ints(&in[4], "steps", steps, &nst));
    }
  }
  if (ne != ns || (pa && na != ns) || (pst && nst != ns))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "starts, ends, axes and steps must have the same length");
  int64_t start[DRT_MAX_RANK], step[DRT_MAX_RANK];
  drt_shape os;
  DRT_RETURN_IF_ERROR(
      drt_slice_resolve(&in[0].shape, ns, starts, ends, pa ? axes : NULL, pst ? steps : NULL, start, step, &os));
  if (!drt_shape_equal(&os, &out[0].shape)) return DRT_ERROR(DRT_STATUS_INTERNAL, "output shape disagrees with inference");
  int64_t st[DRT_MAX_RANK];
  shape_strides(&in[0].shape, st);
  view v;
  v.rank = os.rank;
  v.offset = 0;
  for (int i = 0; i < os.rank; i++) {
    v.dims[i] = os.dims[i];
    v.strides[i] = os.dims[i] > 1 ? st[i] * step[i] : 0; /* a huge step only ever takes one element */
    v.offset += start[i] * st[i];
  }
  run_view(ctx, &v, es, out[0].data, in[0].data);
  return DRT_OK;
}

/* ---- Expand / Tile ---------------------------------------------------------------------- */
static drt_status k_expand(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)n;
  size_t es;
  DRT_RETURN_IF_ERROR(elem_size(&in[0], &es));
  DRT_RETURN_IF_ERROR(need_data(&in[0], 0));
  if (out[0].shape.rank < in[0].shape.rank)
    return DRT_ERROR(DRT_STATUS_INTERNAL, "output rank is below the input rank");
  view v;
  v.rank = out[0].shape.rank;
  v.offset = 0;
  for (int i = 0; i < v.rank; i++) v.dims[i] = out[0].shape.dims[i];
  drt_broadcast_strides(&in[0].shape, &out[0].shape, v.strides);
  run_view(ctx, &v, es, out[0].data, in[0].data);
  return DRT_OK;
}

static drt_status k_tile(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)n;
  size_t es;
  DRT_RETURN_IF_ERROR(elem_size(&in[0], &es));
  DRT_RETURN_IF_ERROR(need_data(&in[0], 0));
  if (drt_shape_numel(&out[0].shape) == 0) return DRT_OK;
  int r = in[0].shape.rank;
  int64_t st[DRT_MAX_RANK];
  shape_strides(&in[0].shape, st);
  view v;
  v.rank = 2 * r;
  v.offset = 0;
  for (int i = 0; i < r; i++) {
    int64_t d = in[0].shape.dims[i];
    v.dims[2 * i] = out[0].shape.dims[i] / d; /* repeats; d > 0 since the output is not empty */
    v.strides[2 * i] = 0;
    v.dims[2 * i + 1] = d;
    v.strides[2 * i + 1] = st[i];
  }
  run_view(ctx, &v, es, out[0].data, in[0].data);
  return DRT_OK;
}

/* ---- DepthToSpace / SpaceToDepth ----------------------------------------------------------- */
static drt_status k_depth_to_space(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  size_t es;
  DRT_RETURN_IF_ERROR(elem_size(&in[0], &es));
  DRT_RETURN_IF_ERROR(need_data(&in[0], 0));
  int64_t b = drt_node_attr_int(n, "blocksize", 0);
  if (b <= 0 || in[0].shape.rank != 4) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "bad blocksize or rank");
  bool crd = strcmp(drt_node_attr_string(n, "mode", "DCR"), "CRD") == 0;
  const int64_t *d = in[0].shape.dims;
  int64_t C = d[1], H = d[2], W = d[3], Co = C / (b * b), HW = H * W;
  /* output (N, Co, H, b1, W, b2) */
  view v = {6, {d[0], Co, H, b, W, b}, {C * HW, 0, W, 0, 1, 0}, 0};
  if (crd) { /* input channel = c*b*b + b1*b + b2 */
    v.strides[1] = b * b * HW;
    v.strides[3] = b * HW;
    v.strides[5] = HW;
  } else { /* DCR: input channel = (b1*b + b2)*Co + c */
    v.strides[1] = HW;
    v.strides[3] = b * Co * HW;
    v.strides[5] = Co * HW;
  }
  run_view(ctx, &v, es, out[0].data, in[0].data);
  return DRT_OK;
}

static drt_status k_space_to_depth(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  size_t es;
  DRT_RETURN_IF_ERROR(elem_size(&in[0], &es));
  DRT_RETURN_IF_ERROR(need_data(&in[0], 0));
  int64_t b = drt_node_attr_int(n, "blocksize", 0);
  if (b <= 0 || in[0].shape.rank != 4) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "bad blocksize or rank");
  bool crd = strcmp(drt_node_attr_string(n, "mode", "DCR"), "CRD") == 0;
  const int64_t *d = in[0].shape.dims;
  int64_t C = d[1], H = d[2], W = d[3];
  /* DCR: output (N, b1, b2, C, H/b, W/b), output channel = (b1*b + b2)*C + c;
   * CRD: output (N, C, b1, b2, H/b, W/b), output channel = c*b*b + b1*b + b2 */
  view v = {6, {d[0], b, b, C, H / b, W / b}, {C * H * W, W, 1, H * W, b * W, b}, 0};
  if (crd) {
    v.dims[1] = C;
    v.strides[1] = H * W;
    v.dims[2] = b;
    v.strides[2] = W;
    v.dims[3] = b;
    v.strides[3] = 1;
  }
  run_view(ctx, &v, es, out[0].data, in[0].data);
  return DRT_OK;
}

/* ---- Trilu ------------------------------------------------------------------------------------ */
typedef struct trilu_job {
  const char *src;
  char *dst;
  size_t es;
  int64_t rows, cols, k;
  bool upper;
} trilu_job;

static void trilu_fn(void *arg, int64_t b, int64_t e) {
  const trilu_job *j = arg;
  int64_t rb = j->cols * (int64_t)j->es;
  for (int64_t u = b; u < e; u++) {
    int64_t i = u % j->rows;
    char *d = j->dst + u * rb;
    if (d != j->src + u * rb) memcpy(d, j->src + u * rb, (size_t)rb);
    /* upper keeps col >= i + k; lower keeps col <= i + k */
    int64_t z0 = j->upper ? 0 : max64(0, min64(j->cols, i + j->k + 1));
    int64_t z1 = j->upper ? max64(0, min64(j->cols, i + j->k)) : j->cols;
    if (z1 > z0) memset(d + z0 * (int64_t)j->es, 0, (size_t)((z1 - z0) * (int64_t)j->es));
  }
}

static drt_status k_trilu(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  size_t es;
  DRT_RETURN_IF_ERROR(elem_size(&in[0], &es));
  DRT_RETURN_IF_ERROR(need_data(&in[0], 0));
  int r = in[0].shape.rank;
  if (r < 2) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input must have rank >= 2");
  int64_t k = 0;
  if (n->num_inputs > 1 && in[1].data) {
    if (drt_shape_numel(&in[1].shape) != 1)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "k (input 1) must have exactly one element");
    k = drt_load_i64(in[1].dtype, in[1].data, 0);
  }
  trilu_job j = {in[0].data, out[0].data, es, in[0].shape.dims[r - 2], in[0].shape.dims[r - 1], 0,
                 drt_node_attr_int(n, "upper", 1) != 0};
  int64_t lim = j.rows + j.cols + 1; /* clamp k so i + k cannot overflow */
  j.k = k < -lim ? -lim : (k > lim ? lim : k);
  int64_t numel = drt_shape_numel(&in[0].shape);
  if (numel == 0) return DRT_OK;
  int64_t total_rows = numel / j.cols;
  drt_parallel_for(ctx, total_rows, max64(1, PAR_BYTES / (j.cols * (int64_t)es)), trilu_fn, &j);
  return DRT_OK;
}

/* ---- Shape / Size / ConstantOfShape / Range --------------------------------------------------- */
static int64_t clamp_shape_axis(int64_t a, int r) {
  if (a < 0) a += r;
  return a < 0 ? 0 : (a > r ? r : a);
}

/* Reads only in[0].shape: the input's data may be absent. */
static drt_status k_shape(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  int r = in[0].shape.rank;
  int64_t s = clamp_shape_axis(drt_node_attr_int(n, "start", 0), r);
  int64_t e = clamp_shape_axis(drt_node_attr_int(n, "end", r), r);
  int64_t cnt = e > s ? e - s : 0;
  if (out[0].dtype != DRT_DTYPE_INT64 || out[0].shape.rank != 1 || out[0].shape.dims[0] != cnt)
    return DRT_ERROR(DRT_STATUS_INTERNAL, "output must be int64[%" PRId64 "]", cnt);
  int64_t *o = out[0].data;
  for (int64_t i = 0; i < cnt; i++) o[i] = in[0].shape.dims[s + i];
  return DRT_OK;
}

static drt_status k_size(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  (void)n;
  if (out[0].dtype != DRT_DTYPE_INT64) return DRT_ERROR(DRT_STATUS_INTERNAL, "output must be int64");
  int64_t numel = drt_shape_numel(&in[0].shape);
  if (numel < 0) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input shape is invalid");
  *(int64_t *)out[0].data = numel;
  return DRT_OK;
}

typedef struct fill_job {
  char *dst;
  size_t es;
  uint64_t pattern; /* the element's bytes in the low es bytes (memcpy'd) */
} fill_job;

#define FILL_T(T)                          \
  do {                                     \
    T v_;                                  \
    memcpy(&v_, &j->pattern, sizeof v_);   \
    T *d_ = (T *)j->dst;                   \
    for (int64_t i_ = b; i_ < e; i_++) d_[i_] = v_; \
  } while (0)

static void fill_fn(void *arg, int64_t b, int64_t e) {
  const fill_job *j = arg;
  switch (j->es) {
    case 1: FILL_T(uint8_t); break;
    case 2: FILL_T(uint16_t); break;
    case 4: FILL_T(uint32_t); break;
    default: FILL_T(uint64_t); break;
  }
}

static drt_status k_constant_of_shape(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)in;
  size_t es;
  DRT_RETURN_IF_ERROR(elem_size(&out[0], &es));
  fill_job j = {out[0].data, es, 0};
  const drt_attr *a = drt_node_attr(n, "value");
  if (a) {
    if (a->type != DRT_ATTR_TENSOR || !a->tensor || !a->tensor->data || a->tensor->dtype != out[0].dtype)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'value' must be a one-element %s tensor",
                       drt_dtype_name(out[0].dtype));
    memcpy(&j.pattern, a->tensor->data, es);
  } else if (out[0].dtype != DRT_DTYPE_FLOAT32) {
    return DRT_ERROR(DRT_STATUS_INTERNAL, "output without 'value' must be float32");
  }
  int64_t numel = drt_shape_numel(&out[0].shape);
  drt_parallel_for(ctx, numel, max64(1, PAR_BYTES / (int64_t)es), fill_fn, &j);
  return DRT_OK;
}

static drt_status k_range(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  (void)n;
  for (int i = 0; i < 3; i++)
    if (!in[i].data || drt_shape_numel(&in[i].shape) != 1)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input %d must be a scalar", i);
  drt_dtype dt = out[0].dtype;
  int64_t cnt = out[0].shape.dims[0];
  if (cnt == 0) return DRT_OK;
  size_t es = drt_dtype_size(dt);
  bool is_int = drt_dtype_is_int(dt);
  /* compute in int64 / double, then convert to the output dtype in place-sized chunks */
  enum { CH = 1024 };
  union {
    int64_t i[CH];
    double f[CH];
  } buf;
  int64_t si = 0, di = 0;
  double sf = 0, df = 0;
  if (is_int) {
    si = drt_load_i64(in[0].dtype, in[0].data, 0);
    di = drt_load_i64(in[2].dtype, in[2].data, 0);
  } else {
    sf = drt_load_f64(in[0].dtype, in[0].data, 0);
    df = drt_load_f64(in[2].dtype, in[2].data, 0);
  }
  for (int64_t b = 0; b < cnt; b += CH) {
    int64_t m = min64(CH, cnt - b);
    for (int64_t i = 0; i < m; i++) {
      if (is_int)
        buf.i[i] = (int64_t)((uint64_t)si + (uint64_t)(b + i) * (uint64_t)di);
      else
        buf.f[i] = sf + (double)(b + i) * df;
    }
    drt_convert(dt, (char *)out[0].data + b * (int64_t)es, is_int ? DRT_DTYPE_INT64 : DRT_DTYPE_FLOAT64,
                is_int ? (const void *)buf.i : (const void *)buf.f, (size_t)m);
  }
  return DRT_OK;
}

const drt_cpu_kernel_entry drt_cpu_kernels_movement[] = {
    {DRT_OP_RESHAPE, k_copy, DRT_DT_FLOATS},
    {DRT_OP_FLATTEN, k_copy, DRT_DT_FLOATS},
    {DRT_OP_SQUEEZE, k_copy, DRT_DT_FLOATS},
    {DRT_OP_UNSQUEEZE, k_copy, DRT_DT_FLOATS},
    {DRT_OP_TRANSPOSE, k_transpose, DRT_DT_FLOATS},
    {DRT_OP_CONCAT, k_concat, DRT_DT_FLOATS},
    {DRT_OP_SPLIT, k_split, DRT_DT_FLOATS},
    {DRT_OP_SLICE, k_slice, DRT_DT_FLOATS},
    {DRT_OP_EXPAND, k_expand, DRT_DT_FLOATS},
    {DRT_OP_TILE, k_tile, DRT_DT_FLOATS},
    {DRT_OP_DEPTH_TO_SPACE, k_depth_to_space, DRT_DT_FLOATS},
    {DRT_OP_SPACE_TO_DEPTH, k_space_to_depth, DRT_DT_FLOATS},
    {DRT_OP_TRILU, k_trilu, DRT_DT_FLOATS},
    {DRT_OP_SHAPE, k_shape, DRT_DT_FLOATS},
    {DRT_OP_SIZE, k_size, DRT_DT_FLOATS},
    {DRT_OP_CONSTANT_OF_SHAPE, k_constant_of_shape, DRT_DT_FLOATS},
    {DRT_OP_RANGE, k_range, DRT_DT_FLOATS},
    {DRT_OP_COUNT_, NULL, 0},
};
