/* CPU kernels for the index op family: Gather, GatherElements, GatherND, ScatterND,
 * ScatterElements and Pad (Resize and Upsample live in runtime/cpu/resize.c).
 *
 * These ops only move data, so they work on any dtype by element size and list every float
 * dtype as native (no float32 promotion). Scatter reductions are the exception: they do
 * arithmetic per dtype (float16/bfloat16 through float32, integers wrapping, bool as or/and).
 * Indices may be int32 or int64 and negative (counted from the end); an index outside the
 * axis fails with INVALID_ARGUMENT naming the index and the bound. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer.h"
#include "runtime/cpu/cpu.h"

drt_status drt_cpu_resize(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out); /* resize.c */

static int64_t prod(const int64_t *d, int from, int to) {
  int64_t p = 1;
  for (int i = from; i < to; i++) p *= d[i];
  return p;
}

static inline void copy_elem(uint8_t *dst, const uint8_t *src, size_t es) {
  switch (es) {
    case 1: *dst = *src; break;
    case 2: memcpy(dst, src, 2); break;
    case 4: memcpy(dst, src, 4); break;
    case 8: memcpy(dst, src, 8); break;
    default: memcpy(dst, src, es);
  }
}

/* Reads index i of an int32/int64 tensor, normalizes a negative value against bound. */
static drt_status load_index(const drt_tensor *idx, int64_t i, int64_t bound, const char *what, int64_t *out) {
  int64_t v = drt_load_i64(idx->dtype, idx->data, (size_t)i);
  if (v < -bound || v >= bound)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                     "index %" PRId64 " (element %" PRId64 " of 'indices') is out of range [-%" PRId64 ", %" PRId64
                     ") for %s",
                     v, i, bound, bound, what);
  *out = v < 0 ? v + bound : v;
  return DRT_OK;
}

static drt_status check_index_dtype(const drt_tensor *t) {
  if (t->dtype != DRT_DTYPE_INT32 && t->dtype != DRT_DTYPE_INT64)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "indices of dtype %s (expected int32 or int64)", drt_dtype_name(t->dtype));
  return DRT_OK;
}

/* ---- Gather ------------------------------------------------------------------------------- */
typedef struct gather_job {
  const uint8_t *src;
  uint8_t *dst;
  const int64_t *idx;
  int64_t m, n_axis;
  size_t inner; /* bytes */
} gather_job;

static void gather_range(void *arg, int64_t begin, int64_t end) {
  const gather_job *j = arg;
  size_t inner = j->inner;
  for (int64_t t = begin; t < end; t++) {
    int64_t o = t / j->m, k = t % j->m;
    const uint8_t *s = j->src + (size_t)(o * j->n_axis + j->idx[k]) * inner;
    uint8_t *d = j->dst + (size_t)t * inner;
    if (inner <= 8)
      copy_elem(d, s, inner);
    else
      memcpy(d, s, inner);
  }
}

static drt_status k_gather(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  const drt_tensor *data = &in[0], *ind = &in[1];
  DRT_RETURN_IF_ERROR(check_index_dtype(ind));
  int axis = 0;
  DRT_RETURN_IF_ERROR(drt_normalize_axis(drt_node_attr_int(n, "axis", 0), data->shape.rank, &axis));
  int64_t m = drt_shape_numel(&ind->shape), nax = data->shape.dims[axis];
  int64_t outer = prod(data->shape.dims, 0, axis);
  size_t es = drt_dtype_size(data->dtype);
  size_t inner = (size_t)prod(data->shape.dims, axis + 1, data->shape.rank) * es;
  int64_t *idx = malloc((size_t)(m > 0 ? m : 1) * sizeof(int64_t));
  if (!idx) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "gather indices");
  char what[32];
  snprintf(what, sizeof what, "axis %d", axis);
  for (int64_t i = 0; i < m; i++) {
    drt_status st = load_index(ind, i, nax, what, &idx[i]);
    if (st) {
      free(idx);
      return st;
    }
  }
  if (inner > 0) {
    gather_job j = {data->data, out->data, idx, m, nax, inner};
    drt_parallel_for(ctx, outer * m, (int64_t)(16384 / inner) + 1, gather_range, &j);
  }
  free(idx);
  return DRT_OK;
}

/* ---- GatherElements / ScatterElements ------------------------------------------------------ */
typedef enum { RED_NONE, RED_ADD, RED_MUL, RED_MAX, RED_MIN } red_kind;

static drt_status parse_reduction(const drt_node *n, red_kind *out) {
  const char *r = drt_node_attr_string(n, "reduction", "none");
  static const char *const names[] = {"none", "add", "mul", "max", "min"};
  for (int i = 0; i < 5; i++)
    if (!strcmp(r, names[i])) {
      *out = (red_kind)i;
      return DRT_OK;
    }
  return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute reduction: unknown value '%s'", r);
}

#define RED_INT(T, UT)                                                        \
  do {                                                                        \
    T *d_ = dst;                                                              \
    const T *s_ = src;                                                        \
    for (int64_t i = 0; i < cnt; i++) {                                       \
      switch (red) {                                                          \
        case RED_ADD: d_[i] = (T)((UT)d_[i] + (UT)s_[i]); break;               \
        case RED_MUL: d_[i] = (T)((UT)d_[i] * (UT)s_[i]); break;               \
        case RED_MAX: d_[i] = s_[i] > d_[i] ? s_[i] : d_[i]; break;           \
        case RED_MIN: d_[i] = s_[i] < d_[i] ? s_[i] : d_[i]; break;           \
        default: d_[i] = s_[i];                                               \
      }                                                                       \
    }                                                                         \
  } while (0)

#define RED_FLOAT(T)                                                          \
  do {                                                                        \
    T *d_ = dst;                                                              \
    const T *s_ = src;                                                        \
    for (int64_t i = 0; i < cnt; i++) {                                       \
      switch (red) {                                                          \
        case RED_ADD: d_[i] = d_[i] + s_[i]; break;                            \
        case RED_MUL: d_[i] = d_[i] * s_[i]; break;                            \
        case RED_MAX: d_[i] = (s_[i] > d_[i] || s_[i] != s_[i]) ? s_[i] : d_[i]; break; \
        case RED_MIN: d_[i] = (s_[i] < d_[i] || s_[i] != s_[i]) ? s_[i] : d_[i]; break; \
        default: d_[i] = s_[i];                                               \
      }                                                                       \
    }                                                                         \
  } while (0)

static float red_f32(red_kind red, float d, float s) {
  switch (red) {
    case RED_ADD: return d + s;
    case RED_MUL: return d * s;
    case RED_MAX: return (s > d || s != s) ? s : d;
    case RED_MIN: return (s < d || s != s) ? s : d;
    default: return s;
  }
}

/* dst[i] = reduce(dst[i], src[i]) for cnt elements of dtype dt. */
static void reduce_into(drt_dtype dt, red_kind red, void *dst, const void *src, int64_t cnt) {
  if (red == RED_NONE) {
    memcpy(dst, src, (size_t)cnt * drt_dtype_size(dt));
    return;
  }
  switch (dt) {
    case DRT_DTYPE_FLOAT32: RED_FLOAT(float); break;
    case DRT_DTYPE_FLOAT64: RED_FLOAT(double); break;
    case DRT_DTYPE_INT8: RED_INT(int8_t, uint8_t); break;
    case DRT_DTYPE_INT16: RED_INT(int16_t, uint16_t); break;
    case DRT_DTYPE_INT32: RED_INT(int32_t, uint32_t); break;
    case DRT_DTYPE_INT64: RED_INT(int64_t, uint64_t); break;
    case DRT_DTYPE_UINT8: RED_INT(uint8_t, uint32_t); break;
    case DRT_DTYPE_UINT16: RED_INT(uint16_t, uint32_t); break;
    case DRT_DTYPE_UINT32: RED_INT(uint32_t, uint32_t); break;
    case DRT_DTYPE_UINT64: RED_INT(uint64_t, uint64_t); break;
    case DRT_DTYPE_FLOAT16:
    case DRT_DTYPE_BFLOAT16: {
      uint16_t *d = dst;
      const uint16_t *s = src;
      bool h = dt == DRT_DTYPE_FLOAT16;
      for (int64_t i = 0; i < cnt; i++) {
        float a = h ? drt_f16_to_f32(d[i]) : drt_bf16_to_f32(d[i]);
        float b = h ? drt_f16_to_f32(s[i]) : drt_bf16_to_f32(s[i]);
        float v = red_f32(red, a, b);
        d[i] = h ? drt_f32_to_f16(v) : drt_f32_to_bf16(v);
      }
      break;
    }
    case DRT_DTYPE_BOOL: {
      uint8_t *d = dst;
      const uint8_t *s = src;
      for (int64_t i = 0; i < cnt; i++)
        d[i] = (red == RED_ADD || red == RED_MAX) ? (d[i] || s[i]) : (d[i] && s[i]);
      break;
    }
    default: break;
  }
}

/* Offset (elements) in `data` of the element at position t of `ind` with the axis coordinate
 * replaced by `v`. */
static int64_t elements_offset(const drt_shape *ind, const drt_shape *data, int axis, int64_t t, int64_t v) {
  int64_t off = 0, stride = 1;
  for (int d = ind->rank - 1; d >= 0; d--) {
    int64_t c = t % ind->dims[d];
    t /= ind->dims[d];
    off += (d == axis ? v : c) * stride;
    stride *= data->dims[d];
  }
  return off;
}

static drt_status k_gather_elements(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const drt_tensor *data = &in[0], *ind = &in[1];
  DRT_RETURN_IF_ERROR(check_index_dtype(ind));
  int axis = 0;
  DRT_RETURN_IF_ERROR(drt_normalize_axis(drt_node_attr_int(n, "axis", 0), data->shape.rank, &axis));
  int64_t m = drt_shape_numel(&ind->shape), bound = data->shape.dims[axis];
  size_t es = drt_dtype_size(data->dtype);
  char what[32];
  snprintf(what, sizeof what, "axis %d", axis);
  const uint8_t *src = data->data;
  uint8_t *dst = out->data;
  for (int64_t t = 0; t < m; t++) {
    int64_t v = 0;
    DRT_RETURN_IF_ERROR(load_index(ind, t, bound, what, &v));
    copy_elem(dst + (size_t)t * es, src + (size_t)elements_offset(&ind->shape, &data->shape, axis, t, v) * es, es);
  }
  return DRT_OK;
}

static drt_status k_scatter_elements(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const drt_tensor *data = &in[0], *ind = &in[1], *upd = &in[2];
  DRT_RETURN_IF_ERROR(check_index_dtype(ind));
  int axis = 0;
  DRT_RETURN_IF_ERROR(drt_normalize_axis(drt_node_attr_int(n, "axis", 0), data->shape.rank, &axis));
  red_kind red = RED_NONE;
  DRT_RETURN_IF_ERROR(parse_reduction(n, &red));
  int64_t m = drt_shape_numel(&ind->shape), bound = data->shape.dims[axis];
  size_t es = drt_dtype_size(data->dtype);
  if (out->data != data->data) memcpy(out->data, data->data, (size_t)drt_shape_numel(&data->shape) * es);
  char what[32];
  snprintf(what, sizeof what, "axis %d", axis);
  uint8_t *dst = out->data;
  const uint8_t *u = upd->data;
  for (int64_t t = 0; t < m; t++) {
    int64_t v = 0;
    DRT_RETURN_IF_ERROR(load_index(ind, t, bound, what, &v));
    int64_t off = elements_offset(&ind->shape, &data->shape, axis, t, v);
    if (red == RED_NONE)
      copy_elem(dst + (size_t)off * es, u + (size_t)t * es, es);
    else
      reduce_into(data->dtype, red, dst + (size_t)off * es, u + (size_t)t * es, 1);
  }
  return DRT_OK;
}

/* ---- GatherND / ScatterND ------------------------------------------------------------------ */
/* Element offset in data (relative to the batch) of the slice addressed by index tuple `tuple`
 * (k components starting at element `first` of ind), data dims from `d0`. */
static drt_status nd_offset(const drt_tensor *ind, int64_t first, int64_t k, const drt_shape *data, int d0,
                            int64_t slice, int64_t *out) {
  int64_t off = 0, stride = slice;
  for (int64_t c = k - 1; c >= 0; c--) {
    int d = d0 + (int)c;
    char what[32];
    snprintf(what, sizeof what, "data axis %d", d);
    int64_t v = 0;
    DRT_RETURN_IF_ERROR(load_index(ind, first + c, data->dims[d], what, &v));
    off += v * stride;
    stride *= data->dims[d];
  }
  *out = off;
  return DRT_OK;
}

static drt_status k_gather_nd(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const drt_tensor *data = &in[0], *ind = &in[1];
  DRT_RETURN_IF_ERROR(check_index_dtype(ind));
  int r = data->shape.rank, q = ind->shape.rank;
  int b = (int)drt_node_attr_int(n, "batch_dims", 0);
  int64_t k = ind->shape.dims[q - 1];
  int64_t batches = prod(data->shape.dims, 0, b);
  int64_t per_batch = prod(ind->shape.dims, b, q - 1);
  int64_t data_batch = prod(data->shape.dims, b, r);
  int64_t slice = prod(data->shape.dims, b + (int)k, r);
  size_t es = drt_dtype_size(data->dtype), sb = (size_t)slice * es;
  const uint8_t *src = data->data;
  uint8_t *dst = out->data;
  for (int64_t bi = 0; bi < batches; bi++)
    for (int64_t m = 0; m < per_batch; m++) {
      int64_t t = bi * per_batch + m, off = 0;
      DRT_RETURN_IF_ERROR(nd_offset(ind, t * k, k, &data->shape, b, slice, &off));
      memcpy(dst + (size_t)t * sb, src + (size_t)(bi * data_batch + off) * es, sb);
    }
  return DRT_OK;
}

static drt_status k_scatter_nd(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const drt_tensor *data = &in[0], *ind = &in[1], *upd = &in[2];
  DRT_RETURN_IF_ERROR(check_index_dtype(ind));
  red_kind red = RED_NONE;
  DRT_RETURN_IF_ERROR(parse_reduction(n, &red));
  int r = data->shape.rank, q = ind->shape.rank;
  int64_t k = ind->shape.dims[q - 1];
  int64_t tuples = prod(ind->shape.dims, 0, q - 1);
  int64_t slice = prod(data->shape.dims, (int)k, r);
  size_t es = drt_dtype_size(data->dtype);
  if (out->data != data->data) memcpy(out->data, data->data, (size_t)drt_shape_numel(&data->shape) * es);
  uint8_t *dst = out->data;
  const uint8_t *u = upd->data;
  for (int64_t t = 0; t < tuples; t++) {
    int64_t off = 0;
    DRT_RETURN_IF_ERROR(nd_offset(ind, t * k, k, &data->shape, 0, slice, &off));
    reduce_into(data->dtype, red, dst + (size_t)off * es, u + (size_t)(t * slice) * es, slice);
  }
  return DRT_OK;
}

/* ---- Pad ------------------------------------------------------------------------------------- */
typedef enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP } pad_mode;

/* Input coordinate for output coordinate o on an axis of size in with `begin` leading pads;
 * -1 for a constant-filled position. */
static int64_t pad_map(pad_mode mode, int64_t o, int64_t begin, int64_t in) {
  int64_t i = o - begin;
  if (i >= 0 && i < in) return i;
  switch (mode) {
    case PAD_CONSTANT: return -1;
    case PAD_EDGE: return i < 0 ? 0 : in - 1;
    case PAD_WRAP: {
      int64_t m = i % in;
      return m < 0 ? m + in : m;
    }
    case PAD_REFLECT: {
      if (in == 1) return 0;
      int64_t period = 2 * (in - 1), m = i % period;
      if (m < 0) m += period;
      return m < in ? m : period - m;
    }
  }
  return -1;
}

typedef struct pad_job {
  const uint8_t *src;
  uint8_t *dst;
  size_t es;
  int rank;
  int64_t out_dims[DRT_MAX_RANK];
  int64_t in_strides[DRT_MAX_RANK];
  const int64_t *map[DRT_MAX_RANK];
  int64_t mid_lo, mid_hi, mid_src; /* last axis: out [mid_lo, mid_hi) copies from src mid_src.. */
  uint8_t value[16];
} pad_job;

static void pad_range(void *arg, int64_t begin, int64_t end) {
  const pad_job *j = arg;
  int r = j->rank;
  int64_t ow = j->out_dims[r - 1];
  size_t es = j->es, row_bytes = (size_t)ow * es;
  int64_t coord[DRT_MAX_RANK] = {0};
  int64_t t = begin;
  for (int d = r - 2; d >= 0; d--) {
    coord[d] = t % j->out_dims[d];
    t /= j->out_dims[d];
  }
  const int64_t *lm = j->map[r - 1];
  for (int64_t row = begin; row < end; row++) {
    uint8_t *drow = j->dst + (size_t)row * row_bytes;
    int64_t off = 0;
    bool fill = false;
    for (int d = 0; d < r - 1; d++) {
      int64_t v = j->map[d][coord[d]];
      if (v < 0) fill = true;
      off += v * j->in_strides[d];
    }
    if (fill) {
      for (int64_t x = 0; x < ow; x++) copy_elem(drow + (size_t)x * es, j->value, es);
    } else {
      const uint8_t *srow = j->src + (size_t)off * es;
      for (int64_t x = 0; x < j->mid_lo; x++)
        copy_elem(drow + (size_t)x * es, lm[x] < 0 ? j->value : srow + (size_t)lm[x] * es, es);
      if (j->mid_hi > j->mid_lo)
        memcpy(drow + (size_t)j->mid_lo * es, srow + (size_t)j->mid_src * es, (size_t)(j->mid_hi - j->mid_lo) * es);
      for (int64_t x = j->mid_hi > j->mid_lo ? j->mid_hi : j->mid_lo; x < ow; x++)
        copy_elem(drow + (size_t)x * es, lm[x] < 0 ? j->value : srow + (size_t)lm[x] * es, es);
    }
    for (int d = r - 2; d >= 0; d--) {
      if (++coord[d] < j->out_dims[d]) break;
      coord[d] = 0;
    }
  }
}

static drt_status k_pad(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  const drt_tensor *data = &in[0];
  int r = data->shape.rank;
  size_t es = drt_dtype_size(data->dtype);
  if (es == 0 || es > 16) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "dtype %s", drt_dtype_name(data->dtype));
  const char *ms = drt_node_attr_string(n, "mode", "constant");
  pad_mode mode;
  if (!strcmp(ms, "constant")) mode = PAD_CONSTANT;
  else if (!strcmp(ms, "reflect")) mode = PAD_REFLECT;
  else if (!strcmp(ms, "edge")) mode = PAD_EDGE;
  else if (!strcmp(ms, "wrap")) mode = PAD_WRAP;
  else return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute mode: unknown value '%s'", ms);
  int64_t begin[DRT_MAX_RANK] = {0};
  pad_job j;
  memset(&j, 0, sizeof j);
  if (n->opset < 11) {
    int64_t np;
    const int64_t *p = drt_node_attr_ints(n, "pads", &np);
    if (!p) p = drt_node_attr_ints(n, "paddings", &np);
    if (!p || np != 2 * r) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute pads must have %d values", 2 * r);
    for (int i = 0; i < r; i++) begin[i] = p[i];
    float v = drt_node_attr_float(n, "value", 0.0f);
    drt_convert(data->dtype, j.value, DRT_DTYPE_FLOAT32, &v, 1);
  } else {
    const drt_tensor *pads = &in[1];
    int64_t na = r, axes[DRT_MAX_RANK];
    for (int i = 0; i < r; i++) axes[i] = i;
    if (n->num_inputs > 3 && in[3].data) {
      na = drt_shape_numel(&in[3].shape);
      if (na > r) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 3 'axes' has %" PRId64 " values", na);
      for (int64_t i = 0; i < na; i++) {
        int a = 0;
        DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_load_i64(in[3].dtype, in[3].data, (size_t)i), r, &a),
                                "input 3 'axes'");
        axes[i] = a;
      }
    }
    if (drt_shape_numel(&pads->shape) != 2 * na)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 1 'pads' must have %" PRId64 " values", 2 * na);
    for (int64_t i = 0; i < na; i++) begin[axes[i]] = drt_load_i64(pads->dtype, pads->data, (size_t)i);
    if (n->num_inputs > 2 && in[2].data && drt_shape_numel(&in[2].shape) == 1) {
      if (in[2].dtype != data->dtype)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 2 'constant_value' has dtype %s, expected %s",
                         drt_dtype_name(in[2].dtype), drt_dtype_name(data->dtype));
      memcpy(j.value, in[2].data, es);
    }
  }
  int64_t total = drt_shape_numel(&out->shape);
  if (total == 0) return DRT_OK;
  if (r == 0) {
    memcpy(out->data, data->data, es);
    return DRT_OK;
  }
  int64_t *maps = NULL;
  int64_t sum = 0;
  for (int d = 0; d < r; d++) sum += out->shape.dims[d];
  maps = malloc((size_t)sum * sizeof(int64_t));
  if (!maps) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "pad maps");
  int64_t pos = 0, stride = 1;
  for (int d = r - 1; d >= 0; d--) {
    j.in_strides[d] = stride;
    stride *= data->shape.dims[d];
  }
  for (int d = 0; d < r; d++) {
    int64_t in_d = data->shape.dims[d];
    j.out_dims[d] = out->shape.dims[d];
    j.map[d] = maps + pos;
    for (int64_t o = 0; o < out->shape.dims[d]; o++) {
      if (in_d == 0 && mode != PAD_CONSTANT) {
        free(maps);
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "mode '%s' cannot pad axis %d, which has size 0", ms, d);
      }
      maps[pos + o] = in_d == 0 ? -1 : pad_map(mode, o, begin[d], in_d);
    }
    pos += out->shape.dims[d];
  }
  int64_t ow = out->shape.dims[r - 1], iw = data->shape.dims[r - 1], b = begin[r - 1];
  j.mid_lo = b > 0 ? b : 0;
  j.mid_hi = b + iw < ow ? b + iw : ow;
  if (j.mid_hi < j.mid_lo) j.mid_hi = j.mid_lo;
  j.mid_src = j.mid_lo - b;
  j.src = data->data;
  j.dst = out->data;
  j.es = es;
  j.rank = r;
  drt_parallel_for(ctx, total / ow, 16384 / (int64_t)((size_t)ow * es + 1) + 1, pad_range, &j);
  free(maps);
  return DRT_OK;
}

const drt_cpu_kernel_entry drt_cpu_kernels_index[] = {
    {DRT_OP_GATHER, k_gather, DRT_DT_FLOATS},
    {DRT_OP_GATHER_ELEMENTS, k_gather_elements, DRT_DT_FLOATS},
    {DRT_OP_GATHER_ND, k_gather_nd, DRT_DT_FLOATS},
    {DRT_OP_SCATTER_ND, k_scatter_nd, DRT_DT_FLOATS},
    {DRT_OP_SCATTER_ELEMENTS, k_scatter_elements, DRT_DT_FLOATS},
    {DRT_OP_SCATTER, k_scatter_elements, DRT_DT_FLOATS},
    {DRT_OP_PAD, k_pad, DRT_DT_FLOATS},
    /* float64 native so nearest moves doubles exactly; resize.c interpolates them in float32 */
    {DRT_OP_RESIZE, drt_cpu_resize, DRT_DT_BIT(DRT_DTYPE_FLOAT32) | DRT_DT_BIT(DRT_DTYPE_FLOAT64)},
    {DRT_OP_UPSAMPLE, drt_cpu_resize, DRT_DT_BIT(DRT_DTYPE_FLOAT32) | DRT_DT_BIT(DRT_DTYPE_FLOAT64)},
    {DRT_OP_COUNT_, NULL, 0},
};
