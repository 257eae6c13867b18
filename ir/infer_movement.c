/* Shape/dtype inference for the movement op family: Reshape, Transpose, Flatten, Squeeze,
 * Unsqueeze, Concat, Split, Slice, Expand, Tile, DepthToSpace, SpaceToDepth, Trilu, and the
 * shape-producing ops Shape, Size, ConstantOfShape, Range.
 *
 * Shape-like operands (Reshape's shape, Slice's starts/ends/axes/steps, Squeeze axes, Split
 * sizes, Expand's shape, Tile's repeats, ConstantOfShape's input, Range's scalars) must be
 * compile-time constants. Several attributes moved to inputs across opsets (Squeeze/Unsqueeze
 * axes and Split sizes at 13, Slice at 10, Reshape's shape at 5); an attribute, when present,
 * wins, otherwise the input is read. */
#include "ir/infer_movement.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ir/infer.h"

/* "[2, -1, 0]" into buf; returns buf. */
static const char *ints_str(const int64_t *v, int64_t count, char *buf, size_t n) {
  size_t off = 0;
  if (n == 0) return buf;
  off += (size_t)snprintf(buf, n, "[");
  for (int64_t i = 0; i < count && off < n; i++)
    off += (size_t)snprintf(buf + off, n - off, "%s%" PRId64, i ? ", " : "", v[i]);
  if (off < n) snprintf(buf + off, n - off, "]");
  return buf;
}

/* Checked a*b for non-negative dims; false on overflow. */
static bool mul_dims(int64_t a, int64_t b, int64_t *out) {
  if (a != 0 && b > INT64_MAX / a) return false;
  *out = a * b;
  return true;
}

/* Reads an integer operand that is the attribute `attr` when present, else constant input
 * `input` (when present). *present tells whether either was found. */
static drt_status read_ints_operand(const drt_node *n, const char *attr, int input, const char *what,
                                    int64_t *buf, int64_t max, int64_t *count, bool *present) {
  *present = false;
  *count = 0;
  const drt_attr *a = attr ? drt_node_attr(n, attr) : NULL;
  if (a) {
    if (a->type != DRT_ATTR_INTS && a->type != DRT_ATTR_INT)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute '%s' must be a list of ints", attr);
    int64_t c = a->type == DRT_ATTR_INT ? 1 : a->count;
    if (c > max)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "attribute '%s' has %" PRId64 " entries, at most %" PRId64
                       " supported", attr, c, max);
    if (a->type == DRT_ATTR_INT)
      buf[0] = a->i;
    else if (c > 0)
      memcpy(buf, a->ints, (size_t)c * sizeof(int64_t));
    *count = c;
    *present = true;
    return DRT_OK;
  }
  drt_value *v = input >= 0 ? drt_node_input(n, input) : NULL;
  if (!v) return DRT_OK;
  DRT_RETURN_IF_ERROR_CTX(drt_value_const_ints(v, buf, max, count), "%s (input %d)", what, input);
  *present = true;
  return DRT_OK;
}

/* ---- Reshape ----------------------------------------------------------------------- */
static drt_status infer_reshape(drt_graph *g, drt_node *n) {
  (void)g;
  const drt_value *x = n->inputs[0];
  int64_t req[DRT_MAX_RANK];
  int64_t count = 0;
  bool present;
  DRT_RETURN_IF_ERROR(read_ints_operand(n, n->opset < 5 ? "shape" : NULL, 1, "shape", req, DRT_MAX_RANK, &count,
                                        &present));
  if (!present) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "the target shape (input 1) is missing");
  bool allowzero = drt_node_attr_int(n, "allowzero", 0) != 0;
  char rs[160], xs[128];
  ints_str(req, count, rs, sizeof rs);
  drt_shape o;
  o.rank = (int)count;
  int infer_axis = -1;
  bool has_zero = false;
  int64_t known = 1;
  for (int i = 0; i < o.rank; i++) {
    int64_t d = req[i];
    if (d == -1) {
      if (infer_axis >= 0)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "target shape %s has more than one -1", rs);
      infer_axis = i;
      o.dims[i] = 1;
      continue;
    }
    if (d < -1) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "target shape %s has invalid dim %" PRId64, rs, d);
    if (d == 0 && !allowzero) {
      if (i >= x->shape.rank)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                         "target shape %s copies dim %d (0) but the input %s has rank %d", rs, i,
                         drt_shape_str(&x->shape, xs, sizeof xs), x->shape.rank);
      d = x->shape.dims[i];
    }
    if (d == 0) has_zero = true;
    o.dims[i] = d;
    if (!mul_dims(known, d, &known))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "target shape %s overflows", rs);
  }
  int64_t numel = drt_shape_numel(&x->shape);
  if (infer_axis >= 0) {
    if (allowzero && has_zero)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "target shape %s has both 0 and -1 with allowzero=1", rs);
    if (known == 0 || numel % known != 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                       "cannot reshape input of shape %s (%" PRId64 " elements) to %s: -1 cannot be inferred",
                       drt_shape_str(&x->shape, xs, sizeof xs), numel, rs);
    o.dims[infer_axis] = numel / known;
    known = numel;
  }
  if (known != numel)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                     "cannot reshape input of shape %s (%" PRId64 " elements) to %s (%" PRId64 " elements)",
                     drt_shape_str(&x->shape, xs, sizeof xs), numel, rs, known);
  drt_infer_set(n, 0, x->dtype, &o);
  return DRT_OK;
}

/* ---- Transpose ----------------------------------------------------------------------- */
static drt_status infer_transpose(drt_graph *g, drt_node *n) {
  (void)g;
  const drt_value *x = n->inputs[0];
  int r = x->shape.rank;
  int64_t cnt = 0;
  const int64_t *perm = drt_node_attr_ints(n, "perm", &cnt);
  drt_shape o;
  o.rank = r;
  if (!perm) {
    for (int i = 0; i < r; i++) o.dims[i] = x->shape.dims[r - 1 - i];
  } else {
    char ps[160];
    if (cnt != r)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'perm' %s has %" PRId64 " entries, input rank is %d",
                       ints_str(perm, cnt, ps, sizeof ps), cnt, r);
    bool seen[DRT_MAX_RANK] = {false};
    for (int i = 0; i < r; i++) {
      if (perm[i] < 0 || perm[i] >= r || seen[perm[i]])
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'perm' %s is not a permutation of 0..%d",
                         ints_str(perm, cnt, ps, sizeof ps), r - 1);
      seen[perm[i]] = true;
      o.dims[i] = x->shape.dims[perm[i]];
    }
  }
  drt_infer_set(n, 0, x->dtype, &o);
  return DRT_OK;
}

/* ---- Flatten ------------------------------------------------------------------------- */
static drt_status infer_flatten(drt_graph *g, drt_node *n) {
  (void)g;
  const drt_value *x = n->inputs[0];
  int r = x->shape.rank;
  int64_t axis = drt_node_attr_int(n, "axis", 1);
  if (axis < -(int64_t)r || axis > r)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'axis' %" PRId64 " is out of range [%d, %d]", axis, -r,
                     r);
  if (axis < 0) axis += r;
  drt_shape o;
  o.rank = 2;
  o.dims[0] = 1;
  o.dims[1] = 1;
  for (int i = 0; i < r; i++) {
    int64_t *d = i < axis ? &o.dims[0] : &o.dims[1];
    if (!mul_dims(*d, x->shape.dims[i], d)) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "flattened size overflows");
  }
  drt_infer_set(n, 0, x->dtype, &o);
  return DRT_OK;
}

/* ---- Squeeze / Unsqueeze ------------------------------------------------------------- */
static drt_status infer_squeeze(drt_graph *g, drt_node *n) {
  (void)g;
  const drt_value *x = n->inputs[0];
  int r = x->shape.rank;
  int64_t axes[DRT_MAX_RANK];
  int64_t cnt;
  bool present;
  DRT_RETURN_IF_ERROR(read_ints_operand(n, "axes", 1, "axes", axes, DRT_MAX_RANK, &cnt, &present));
  bool drop[DRT_MAX_RANK] = {false};
  if (!present || cnt == 0) { /* no (or empty) axes: drop every 1-dim */
    for (int i = 0; i < r; i++) drop[i] = x->shape.dims[i] == 1;
  } else {
    for (int64_t k = 0; k < cnt; k++) {
      int a;
      DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(axes[k], r, &a), "axes");
      if (drop[a]) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "axes: axis %" PRId64 " is repeated", axes[k]);
      if (x->shape.dims[a] != 1) {
        char xs[128];
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "cannot squeeze axis %" PRId64 " of input shape %s: dim is %" PRId64
                         ", not 1", axes[k], drt_shape_str(&x->shape, xs, sizeof xs), x->shape.dims[a]);
      }
      drop[a] = true;
    }
  }
  drt_shape o;
  o.rank = 0;
  for (int i = 0; i < r; i++)
    if (!drop[i]) o.dims[o.rank++] = x->shape.dims[i];
  drt_infer_set(n, 0, x->dtype, &o);
  return DRT_OK;
}

static drt_status infer_unsqueeze(drt_graph *g, drt_node *n) {
  (void)g;
  const drt_value *x = n->inputs[0];
  int64_t axes[DRT_MAX_RANK];
  int64_t cnt;
  bool present;
  DRT_RETURN_IF_ERROR(read_ints_operand(n, "axes", 1, "axes", axes, DRT_MAX_RANK, &cnt, &present));
  if (!present) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "axes are required");
  int64_t orank = x->shape.rank + cnt;
  if (orank > DRT_MAX_RANK)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "output rank %" PRId64 " exceeds the maximum %d", orank, DRT_MAX_RANK);
  bool ins[DRT_MAX_RANK] = {false};
  for (int64_t k = 0; k < cnt; k++) {
    int a;
    DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(axes[k], (int)orank, &a), "axes");
    if (ins[a]) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "axes: axis %" PRId64 " is repeated", axes[k]);
    ins[a] = true;
  }
  drt_shape o;
  o.rank = (int)orank;
  for (int i = 0, j = 0; i < o.rank; i++) o.dims[i] = ins[i] ? 1 : x->shape.dims[j++];
  drt_infer_set(n, 0, x->dtype, &o);
  return DRT_OK;
}

/* ---- Concat / Split ------------------------------------------------------------------ */
static drt_status infer_concat(drt_graph *g, drt_node *n) {
  (void)g;
  const drt_value *x0 = NULL;
  for (int i = 0; i < n->num_inputs && !x0; i++) x0 = n->inputs[i];
  if (!x0) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "no inputs");
  int r = x0->shape.rank;
  if (r == 0) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "cannot concatenate scalars (input rank 0)");
  const drt_attr *aa = drt_node_attr(n, "axis");
  if (!aa && n->opset >= 4) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'axis' is required");
  int axis;
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(aa ? aa->i : 1, r, &axis), "attribute 'axis'");
  drt_shape o = x0->shape;
  o.dims[axis] = 0;
  for (int i = 0; i < n->num_inputs; i++) {
    const drt_value *v = n->inputs[i];
    if (!v) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input %d is missing", i);
    char s0[128], si[128];
    if (v->dtype != x0->dtype)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input %d '%s' has dtype %s, input 0 has %s", i, v->name,
                       drt_dtype_name(v->dtype), drt_dtype_name(x0->dtype));
    bool ok = v->shape.rank == r;
    for (int k = 0; ok && k < r; k++) ok = k == axis || v->shape.dims[k] == x0->shape.dims[k];
    if (!ok)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input %d '%s' has shape %s, incompatible with %s on axis %d", i,
                       v->name, drt_shape_str(&v->shape, si, sizeof si), drt_shape_str(&x0->shape, s0, sizeof s0),
                       axis);
    if (o.dims[axis] > INT64_MAX - v->shape.dims[axis])
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "concatenated size overflows");
    o.dims[axis] += v->shape.dims[axis];
  }
  drt_infer_set(n, 0, x0->dtype, &o);
  return DRT_OK;
}

static drt_status infer_split(drt_graph *g, drt_node *n) {
  (void)g;
  const drt_value *x = n->inputs[0];
  int r = x->shape.rank;
  int axis;
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_node_attr_int(n, "axis", 0), r, &axis), "attribute 'axis'");
  int64_t d = x->shape.dims[axis];
  int nout = n->num_outputs;
  int64_t sizes_buf[64];
  int64_t *sizes = sizes_buf;
  if (nout > 64) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%d outputs, at most 64 supported", nout);
  int64_t cnt;
  bool present;
  DRT_RETURN_IF_ERROR(read_ints_operand(n, "split", 1, "split", sizes, 64, &cnt, &present));
  const drt_attr *num_attr = drt_node_attr(n, "num_outputs");
  if (present && cnt == 0 && !drt_node_attr(n, "split")) present = false; /* empty input: not given */
  if (present) {
    if (num_attr) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "both 'split' and 'num_outputs' are given");
    if (cnt != nout)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "'split' has %" PRId64 " entries but the node has %d outputs", cnt,
                       nout);
    int64_t sum = 0;
    for (int i = 0; i < nout; i++) {
      if (sizes[i] < 0 || sizes[i] > d || sum > d - sizes[i]) {
        char ss[256];
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "'split' %s does not sum to dim %" PRId64 " of axis %d",
                         ints_str(sizes, cnt, ss, sizeof ss), d, axis);
      }
      sum += sizes[i];
    }
    if (sum != d) {
      char ss[256];
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "'split' %s does not sum to dim %" PRId64 " of axis %d",
                       ints_str(sizes, cnt, ss, sizeof ss), d, axis);
    }
  } else if (num_attr) {
    int64_t num = num_attr->i;
    if (num != nout)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'num_outputs' is %" PRId64 " but the node has %d outputs",
                       num, nout);
    int64_t chunk = (d + num - 1) / num;
    if (chunk * (num - 1) > d)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "dim %" PRId64 " of axis %d cannot be split into %" PRId64
                       " chunks of %" PRId64, d, axis, num, chunk);
    for (int i = 0; i < nout; i++) sizes[i] = i < nout - 1 ? chunk : d - chunk * (num - 1);
  } else {
    if (d % nout != 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "dim %" PRId64 " of axis %d is not divisible into %d equal outputs", d,
                       axis, nout);
    for (int i = 0; i < nout; i++) sizes[i] = d / nout;
  }
  for (int i = 0; i < nout; i++) {
    drt_shape o = x->shape;
    o.dims[axis] = sizes[i];
    drt_infer_set(n, i, x->dtype, &o);
  }
  return DRT_OK;
}

/* ---- Slice --------------------------------------------------------------------------- */
drt_status drt_slice_resolve(const drt_shape *in, int64_t count, const int64_t *starts, const int64_t *ends,
                             const int64_t *axes, const int64_t *steps, int64_t *start, int64_t *step,
                             drt_shape *out) {
  int r = in->rank;
  if (count > r)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%" PRId64 " starts/ends given for an input of rank %d", count, r);
  bool seen[DRT_MAX_RANK] = {false};
  *out = *in;
  for (int i = 0; i < r; i++) {
    start[i] = 0;
    step[i] = 1;
  }
  for (int64_t k = 0; k < count; k++) {
    int a = (int)k;
    if (axes) DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(axes[k], r, &a), "axes");
    if (seen[a]) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "axes: axis %d is repeated", a);
    seen[a] = true;
    int64_t st = steps ? steps[k] : 1;
    if (st == 0) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "steps: step for axis %d is 0", a);
    int64_t d = in->dims[a];
    int64_t s = starts[k], e = ends[k];
    if (s < 0) s += d;
    if (e < 0) e += d;
    int64_t cnt;
    if (st > 0) {
      s = s < 0 ? 0 : (s > d ? d : s);
      e = e < 0 ? 0 : (e > d ? d : e);
      cnt = e > s ? (int64_t)(((uint64_t)(e - s) + (uint64_t)st - 1) / (uint64_t)st) : 0;
    } else {
      s = s < 0 ? 0 : (s > d - 1 ? d - 1 : s);
      e = e < -1 ? -1 : (e > d - 1 ? d - 1 : e);
      uint64_t ust = (uint64_t)0 - (uint64_t)st;
      cnt = s > e ? (int64_t)(((uint64_t)(s - e) + ust - 1) / ust) : 0;
    }
    start[a] = cnt > 0 ? s : 0;
    step[a] = st;
    out->dims[a] = cnt;
  }
  return DRT_OK;
}

drt_status drt_slice_node_resolve(const drt_node *n, int64_t *start, int64_t *step, drt_shape *out) {
  const drt_value *x = n->inputs[0];
  int64_t starts[DRT_MAX_RANK], ends[DRT_MAX_RANK], axes[DRT_MAX_RANK], steps[DRT_MAX_RANK];
  int64_t ns, ne, na = 0, nst = 0;
  bool ps, pe, pa, pst = false;
  bool attrs = n->opset < 10;
  DRT_RETURN_IF_ERROR(read_ints_operand(n, attrs ? "starts" : NULL, attrs ? -1 : 1, "starts", starts, DRT_MAX_RANK,
                                        &ns, &ps));
  DRT_RETURN_IF_ERROR(read_ints_operand(n, attrs ? "ends" : NULL, attrs ? -1 : 2, "ends", ends, DRT_MAX_RANK, &ne,
                                        &pe));
  DRT_RETURN_IF_ERROR(read_ints_operand(n, attrs ? "axes" : NULL, attrs ? -1 : 3, "axes", axes, DRT_MAX_RANK, &na,
                                        &pa));
  if (!attrs)
    DRT_RETURN_IF_ERROR(read_ints_operand(n, NULL, 4, "steps", steps, DRT_MAX_RANK, &nst, &pst));
  if (!ps || !pe) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "starts and ends are required");
  if (ne != ns || (pa && na != ns) || (pst && nst != ns))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                     "starts, ends, axes and steps must have the same length (got %" PRId64 ", %" PRId64 ", %" PRId64
                     ", %" PRId64 ")", ns, ne, pa ? na : ns, pst ? nst : ns);
  return drt_slice_resolve(&x->shape, ns, starts, ends, pa ? axes : NULL, pst ? steps : NULL, start, step, out);
}

static drt_status infer_slice(drt_graph *g, drt_node *n) {
  (void)g;
  int64_t st[DRT_MAX_RANK], sp[DRT_MAX_RANK];
  drt_shape o;
  DRT_RETURN_IF_ERROR(drt_slice_node_resolve(n, st, sp, &o));
  drt_infer_set(n, 0, n->inputs[0]->dtype, &o);
  return DRT_OK;
}

/* ---- contiguous views ------------------------------------------------------------------ */
/* Whether the elements at offset + sum_k i_k * stride[k] (0 <= i_k < dims[k]) are one dense
 * run in C order: every axis longer than 1 has the stride of a dense tensor of dims. */
static bool dense_run(int rank, const int64_t *dims, const int64_t *stride) {
  int64_t dense = 1;
  for (int k = rank - 1; k >= 0; k--) {
    if (dims[k] > 1 && stride[k] != dense) return false;
    dense *= dims[k];
  }
  return true;
}

bool drt_view_offset_aligned(drt_dtype dt, int64_t elem_offset) {
  size_t es = drt_dtype_size(dt);
  if (drt_dtype_is_float(dt) && es > 2) es = 2;
  return es > 0 && elem_offset >= 0 && elem_offset <= INT64_MAX / 8 && (elem_offset * (int64_t)es) % 64 == 0;
}

bool drt_node_output_is_region(const drt_node *n, int output, int64_t *elem_offset) {
  *elem_offset = 0;
  if (output < 0 || output >= n->num_outputs || n->num_inputs < 1 || !n->inputs[0]) return false;
  const drt_value *x = n->inputs[0], *y = n->outputs[output];
  if (!x->has_shape || !y->has_shape || x->dtype != y->dtype) return false;
  int64_t xn = drt_shape_numel(&x->shape), yn = drt_shape_numel(&y->shape);
  if (xn <= 0 || yn <= 0) return false;
  int64_t xs[DRT_MAX_RANK];
  int64_t s1 = 1;
  for (int k = x->shape.rank - 1; k >= 0; k--) {
    xs[k] = s1;
    s1 *= x->shape.dims[k];
  }
  switch (n->op) {
    case DRT_OP_RESHAPE:
    case DRT_OP_FLATTEN:
    case DRT_OP_SQUEEZE:
    case DRT_OP_UNSQUEEZE:
    case DRT_OP_IDENTITY:
      return output == 0 && xn == yn;
    case DRT_OP_SPLIT: {
      int axis;
      if (drt_normalize_axis(drt_node_attr_int(n, "axis", 0), x->shape.rank, &axis) || y->shape.rank != x->shape.rank)
        return false;
      int64_t off = 0;
      for (int j = 0; j < output; j++) {
        const drt_value *p = n->outputs[j];
        if (!p->has_shape || p->shape.rank != x->shape.rank) return false;
        off += p->shape.dims[axis];
      }
      if (off + y->shape.dims[axis] > x->shape.dims[axis]) return false;
      int64_t stride[DRT_MAX_RANK];
      for (int k = 0; k < y->shape.rank; k++) stride[k] = xs[k];
      if (!dense_run(y->shape.rank, y->shape.dims, stride)) return false;
      *elem_offset = off * xs[axis];
      return true;
    }
    case DRT_OP_SLICE: {
      int64_t start[DRT_MAX_RANK], step[DRT_MAX_RANK], stride[DRT_MAX_RANK], off = 0;
      drt_shape os;
      drt_status st = drt_slice_node_resolve(n, start, step, &os);
      if (st) {
        drt_status_free(st);
        return false;
      }
      if (output != 0 || !drt_shape_equal(&os, &y->shape)) return false;
      for (int k = 0; k < os.rank; k++) {
        stride[k] = step[k] * xs[k];
        off += start[k] * xs[k];
      }
      if (!dense_run(os.rank, os.dims, stride)) return false;
      *elem_offset = off;
      return true;
    }
    case DRT_OP_GATHER: {
      /* one constant index: the sub-tensor at that position of the axis */
      const drt_value *ix = drt_node_input(n, 1);
      int axis;
      int64_t idx, cnt;
      if (output != 0 || !ix || ix->kind != DRT_VALUE_CONST || !ix->has_shape || ix->shape.rank > 1 ||
          drt_normalize_axis(drt_node_attr_int(n, "axis", 0), x->shape.rank, &axis))
        return false;
      drt_status st = drt_value_const_ints(ix, &idx, 1, &cnt);
      if (st) {
        drt_status_free(st);
        return false;
      }
      if (cnt != 1) return false;
      int64_t d = x->shape.dims[axis];
      if (idx < 0) idx += d;
      if (idx < 0 || idx >= d) return false;
      /* output dims: the input's with the axis dropped (scalar index) or of length 1 */
      int64_t dims[DRT_MAX_RANK], stride[DRT_MAX_RANK];
      int r = 0;
      for (int k = 0; k < x->shape.rank; k++) {
        if (k == axis && ix->shape.rank == 0) continue;
        dims[r] = k == axis ? 1 : x->shape.dims[k];
        stride[r++] = xs[k];
      }
      if (r != y->shape.rank) return false;
      for (int k = 0; k < r; k++)
        if (dims[k] != y->shape.dims[k]) return false;
      if (!dense_run(r, dims, stride)) return false;
      *elem_offset = idx * xs[axis];
      return true;
    }
    default:
      return false;
  }
}

/* ---- Expand / Tile ------------------------------------------------------------------- */
static drt_status infer_expand(drt_graph *g, drt_node *n) {
  (void)g;
  const drt_value *x = n->inputs[0];
  int64_t dims[DRT_MAX_RANK];
  int64_t cnt;
  DRT_RETURN_IF_ERROR_CTX(drt_value_const_ints(n->inputs[1], dims, DRT_MAX_RANK, &cnt), "shape (input 1)");
  drt_shape s;
  s.rank = (int)cnt;
  for (int i = 0; i < s.rank; i++) {
    if (dims[i] < 0) {
      char ss[160];
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "shape (input 1) %s has a negative dim",
                       ints_str(dims, cnt, ss, sizeof ss));
    }
    s.dims[i] = dims[i];
  }
  drt_shape o;
  DRT_RETURN_IF_ERROR(drt_broadcast_shapes(&x->shape, &s, &o));
  drt_infer_set(n, 0, x->dtype, &o);
  return DRT_OK;
}

static drt_status infer_tile(drt_graph *g, drt_node *n) {
  (void)g;
  const drt_value *x = n->inputs[0];
  if (n->opset < 6) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "Tile before opset 6 (tiles/axis inputs)");
  int64_t rep[DRT_MAX_RANK];
  int64_t cnt;
  DRT_RETURN_IF_ERROR_CTX(drt_value_const_ints(n->inputs[1], rep, DRT_MAX_RANK, &cnt), "repeats (input 1)");
  char rs[160];
  if (cnt != x->shape.rank)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "repeats %s has %" PRId64 " entries, input rank is %d",
                     ints_str(rep, cnt, rs, sizeof rs), cnt, x->shape.rank);
  drt_shape o = x->shape;
  for (int i = 0; i < o.rank; i++) {
    if (rep[i] < 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "repeats %s has a negative entry",
                       ints_str(rep, cnt, rs, sizeof rs));
    if (!mul_dims(x->shape.dims[i], rep[i], &o.dims[i]))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "tiled dim %d overflows", i);
  }
  drt_infer_set(n, 0, x->dtype, &o);
  return DRT_OK;
}

/* ---- DepthToSpace / SpaceToDepth ------------------------------------------------------ */
static drt_status get_blocksize(const drt_node *n, const drt_value *x, int64_t *b) {
  if (x->shape.rank != 4)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input must have rank 4 (NCHW), got rank %d", x->shape.rank);
  const drt_attr *a = drt_node_attr(n, "blocksize");
  if (!a) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'blocksize' is required");
  if (a->i <= 0 || a->i > (int64_t)1 << 20)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'blocksize' %" PRId64 " is not positive", a->i);
  *b = a->i;
  return DRT_OK;
}

/* DepthToSpace (opset 11+) and SpaceToDepth (opset 28+) take mode DCR (default) or CRD. */
static drt_status check_mode(const drt_node *n) {
  const char *mode = drt_node_attr_string(n, "mode", "DCR");
  if (strcmp(mode, "DCR") != 0 && strcmp(mode, "CRD") != 0)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'mode' is '%s', expected DCR or CRD", mode);
  return DRT_OK;
}

static drt_status infer_depth_to_space(drt_graph *g, drt_node *n) {
  (void)g;
  const drt_value *x = n->inputs[0];
  int64_t b = 0;
  DRT_RETURN_IF_ERROR(get_blocksize(n, x, &b));
  DRT_RETURN_IF_ERROR(check_mode(n));
  const int64_t *d = x->shape.dims;
  if (d[1] % (b * b) != 0)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "channels %" PRId64 " are not divisible by blocksize^2 = %" PRId64,
                     d[1], b * b);
  drt_shape o = x->shape;
  o.dims[1] = d[1] / (b * b);
  if (!mul_dims(d[2], b, &o.dims[2]) || !mul_dims(d[3], b, &o.dims[3]))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "output size overflows");
  drt_infer_set(n, 0, x->dtype, &o);
  return DRT_OK;
}

static drt_status infer_space_to_depth(drt_graph *g, drt_node *n) {
  (void)g;
  const drt_value *x = n->inputs[0];
  int64_t b = 0;
  DRT_RETURN_IF_ERROR(get_blocksize(n, x, &b));
  DRT_RETURN_IF_ERROR(check_mode(n));
  const int64_t *d = x->shape.dims;
  if (d[2] % b != 0 || d[3] % b != 0)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "spatial dims %" PRId64 "x%" PRId64
                     " are not divisible by blocksize %" PRId64, d[2], d[3], b);
  drt_shape o = x->shape;
  if (!mul_dims(d[1], b * b, &o.dims[1])) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "output size overflows");
  o.dims[2] = d[2] / b;
  o.dims[3] = d[3] / b;
  drt_infer_set(n, 0, x->dtype, &o);
  return DRT_OK;
}

/* ---- Trilu --------------------------------------------------------------------------- */
static drt_status infer_trilu(drt_graph *g, drt_node *n) {
  (void)g;
  const drt_value *x = n->inputs[0];
  if (x->shape.rank < 2)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input must have rank >= 2, got rank %d", x->shape.rank);
  const drt_value *k = drt_node_input(n, 1);
  if (k) {
    if (!drt_dtype_is_int(k->dtype))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "k (input 1) must be an integer, got %s", drt_dtype_name(k->dtype));
    if (drt_shape_numel(&k->shape) != 1)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "k (input 1) must have exactly one element");
  }
  drt_infer_set(n, 0, x->dtype, &x->shape);
  return DRT_OK;
}

/* ---- Shape / Size / ConstantOfShape / Range ------------------------------------------ */
static int64_t clamp_shape_axis(int64_t a, int r) {
  if (a < 0) a += r;
  return a < 0 ? 0 : (a > r ? r : a);
}

static drt_status infer_shape(drt_graph *g, drt_node *n) {
  (void)g;
  int r = n->inputs[0]->shape.rank;
  int64_t s = clamp_shape_axis(drt_node_attr_int(n, "start", 0), r);
  int64_t e = clamp_shape_axis(drt_node_attr_int(n, "end", r), r);
  drt_shape o;
  o.rank = 1;
  o.dims[0] = e > s ? e - s : 0;
  drt_infer_set(n, 0, DRT_DTYPE_INT64, &o);
  return DRT_OK;
}

static drt_status infer_size(drt_graph *g, drt_node *n) {
  (void)g;
  drt_shape o;
  o.rank = 0;
  drt_infer_set(n, 0, DRT_DTYPE_INT64, &o);
  return DRT_OK;
}

static drt_status infer_constant_of_shape(drt_graph *g, drt_node *n) {
  (void)g;
  int64_t dims[DRT_MAX_RANK];
  int64_t cnt;
  DRT_RETURN_IF_ERROR_CTX(drt_value_const_ints(n->inputs[0], dims, DRT_MAX_RANK, &cnt), "shape (input 0)");
  drt_shape o;
  o.rank = (int)cnt;
  for (int i = 0; i < o.rank; i++) {
    if (dims[i] < 0) {
      char ss[160];
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "shape (input 0) %s has a negative dim",
                       ints_str(dims, cnt, ss, sizeof ss));
    }
    o.dims[i] = dims[i];
  }
  drt_dtype dt = DRT_DTYPE_FLOAT32;
  const drt_attr *a = drt_node_attr(n, "value");
  if (a) {
    if (a->type != DRT_ATTR_TENSOR || !a->tensor)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'value' must be a tensor");
    const drt_value *t = a->tensor;
    if (!drt_dtype_is_supported(t->dtype))
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "attribute 'value' has unsupported dtype %s", drt_dtype_name(t->dtype));
    if (drt_shape_numel(&t->shape) != 1 || !t->data)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'value' must hold exactly one element");
    dt = t->dtype;
  }
  drt_infer_set(n, 0, dt, &o);
  return DRT_OK;
}

static drt_status infer_range(drt_graph *g, drt_node *n) {
  (void)g;
  static const char *const names[3] = {"start", "limit", "delta"};
  drt_dtype dt = n->inputs[0]->dtype;
  for (int i = 0; i < 3; i++) {
    const drt_value *v = n->inputs[i];
    if (v->dtype != dt)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s (input %d) has dtype %s, start has %s", names[i], i,
                       drt_dtype_name(v->dtype), drt_dtype_name(dt));
    if (dt == DRT_DTYPE_BOOL)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s (input %d) has dtype bool", names[i], i);
    if (v->kind != DRT_VALUE_CONST)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s (input %d) '%s' must be a compile-time constant", names[i], i,
                       v->name);
    if (drt_shape_numel(&v->shape) != 1)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s (input %d) must be a scalar", names[i], i);
  }
  int64_t count;
  if (drt_dtype_is_int(dt)) {
    int64_t s = drt_load_i64(dt, n->inputs[0]->data, 0), l = drt_load_i64(dt, n->inputs[1]->data, 0),
            d = drt_load_i64(dt, n->inputs[2]->data, 0);
    if (d == 0) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "delta (input 2) is 0");
    /* ceil(|limit - start| / |delta|) in uint64, which holds any int64 difference */
    uint64_t diff = d > 0 ? (l > s ? (uint64_t)l - (uint64_t)s : 0) : (s > l ? (uint64_t)s - (uint64_t)l : 0);
    uint64_t ad = d > 0 ? (uint64_t)d : (uint64_t)0 - (uint64_t)d;
    uint64_t c = diff / ad + (diff % ad != 0);
    if (c > (uint64_t)INT64_MAX) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "range is too long");
    count = (int64_t)c;
  } else {
    double s = drt_load_f64(dt, n->inputs[0]->data, 0), l = drt_load_f64(dt, n->inputs[1]->data, 0),
           d = drt_load_f64(dt, n->inputs[2]->data, 0);
    if (d == 0) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "delta (input 2) is 0");
    double c = ceil((l - s) / d);
    if (c != c || c >= 9.0e15)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "range [%g, %g) with delta %g has no finite length", s, l, d);
    count = c > 0 ? (int64_t)c : 0;
  }
  drt_shape o;
  o.rank = 1;
  o.dims[0] = count;
  drt_infer_set(n, 0, dt, &o);
  return DRT_OK;
}

const drt_infer_entry drt_infer_table_movement[] = {
    {DRT_OP_RESHAPE, infer_reshape},
    {DRT_OP_TRANSPOSE, infer_transpose},
    {DRT_OP_FLATTEN, infer_flatten},
    {DRT_OP_SQUEEZE, infer_squeeze},
    {DRT_OP_UNSQUEEZE, infer_unsqueeze},
    {DRT_OP_CONCAT, infer_concat},
    {DRT_OP_SPLIT, infer_split},
    {DRT_OP_SLICE, infer_slice},
    {DRT_OP_EXPAND, infer_expand},
    {DRT_OP_TILE, infer_tile},
    {DRT_OP_DEPTH_TO_SPACE, infer_depth_to_space},
    {DRT_OP_SPACE_TO_DEPTH, infer_space_to_depth},
    {DRT_OP_TRILU, infer_trilu},
    {DRT_OP_SHAPE, infer_shape},
    {DRT_OP_SIZE, infer_size},
    {DRT_OP_CONSTANT_OF_SHAPE, infer_constant_of_shape},
    {DRT_OP_RANGE, infer_range},
    {DRT_OP_COUNT_, NULL},
};

bool drt_unplanned_alias(const drt_value *v, const drt_value **root, int64_t *elem_offset) {
  *root = NULL;
  *elem_offset = 0;
  const drt_node *p = v ? v->producer : NULL;
  if (!p || v->kind != DRT_VALUE_INTERMEDIATE || v->is_graph_output || p->num_inputs < 1 || !p->inputs[0]) return false;
  switch (p->op) {
    case DRT_OP_RESHAPE: case DRT_OP_FLATTEN: case DRT_OP_SQUEEZE: case DRT_OP_UNSQUEEZE: case DRT_OP_IDENTITY:
    case DRT_OP_SPLIT: case DRT_OP_SLICE: break;
    default: return false;
  }
  int j = -1;
  for (int k = 0; k < p->num_outputs; k++)
    if (p->outputs[k] == v) j = k;
  const drt_value *x = p->inputs[0];
  int64_t off;
  if (j < 0 || (x->kind != DRT_VALUE_INPUT && x->kind != DRT_VALUE_INTERMEDIATE) || !drt_node_output_is_region(p, j, &off))
    return false;
  const drt_value *r = x;
  int64_t xo;
  if (drt_unplanned_alias(x, &r, &xo)) off += xo;
  else r = x;
  if (!drt_view_offset_aligned(v->dtype, off)) return false;
  *root = r;
  *elem_offset = off;
  return true;
}

bool drt_node_is_unplanned_alias(const drt_node *n) {
  if (n->num_outputs < 1) return false;
  for (int j = 0; j < n->num_outputs; j++) {
    const drt_value *r;
    int64_t off;
    if (!n->outputs[j] || !drt_unplanned_alias(n->outputs[j], &r, &off)) return false;
  }
  return true;
}
