/* Shape/dtype inference for the reduce op family: softmax, normalizations, Reduce*,
 * ArgMax/ArgMin, CumSum and Attention. */
#include "ir/infer_reduce.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ir/infer.h"

/* ---- shared resolution (also used by the kernels) ---------------------------------- */
static bool axes_from_input(const drt_node *n) {
  if (n->op == DRT_OP_REDUCE_SUM) return n->opset >= 13;
  return n->opset >= 18;
}

drt_status drt_reduce_resolve(const drt_node *n, const drt_shape *x, const drt_tensor *axes, bool *reduced,
                              drt_shape *out) {
  int rank = x->rank;
  int64_t count = 0;
  int64_t buf[DRT_MAX_RANK];
  const int64_t *list = NULL;
  if (axes_from_input(n)) {
    if (axes && axes->data) {
      if (!drt_dtype_is_int(axes->dtype))
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "axes (input 1) must be an integer tensor, got %s",
                         drt_dtype_name(axes->dtype));
      if (axes->shape.rank > 1)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "axes (input 1) must be 1-D, got rank %d", axes->shape.rank);
      count = drt_shape_numel(&axes->shape);
      if (count > rank)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "axes (input 1) has %" PRId64 " entries for rank %d", count,
                         rank);
      for (int64_t i = 0; i < count; i++) buf[i] = drt_load_i64(axes->dtype, axes->data, (size_t)i);
      list = buf;
    }
  } else {
    list = drt_node_attr_ints(n, "axes", &count);
    if (count > rank)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute axes has %" PRId64 " entries for rank %d", count, rank);
  }
  bool noop = drt_node_attr_int(n, "noop_with_empty_axes", 0) != 0;
  bool keepdims = drt_node_attr_int(n, "keepdims", 1) != 0;
  for (int d = 0; d < rank; d++) reduced[d] = count == 0 && !noop;
  for (int64_t i = 0; i < count; i++) {
    int a;
    DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(list[i], rank, &a), "axes[%" PRId64 "]", i);
    if (reduced[a])
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "axes[%" PRId64 "] = %" PRId64 " repeats axis %d", i, list[i], a);
    reduced[a] = true;
  }
  drt_shape o;
  memset(&o, 0, sizeof o);
  for (int d = 0; d < rank; d++) {
    if (!reduced[d])
      o.dims[o.rank++] = x->dims[d];
    else if (keepdims)
      o.dims[o.rank++] = 1;
  }
  *out = o;
  return DRT_OK;
}

drt_status drt_softmax_axis(const drt_node *n, int rank, int *axis) {
  int64_t a = drt_node_attr_int(n, "axis", n->opset < 13 ? 1 : -1);
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(a, rank, axis), "attribute axis");
  return DRT_OK;
}

drt_status drt_softmax_extent(const drt_node *n, const drt_shape *x, int64_t *outer, int64_t *len, int64_t *inner) {
  int axis;
  DRT_RETURN_IF_ERROR(drt_softmax_axis(n, x->rank, &axis));
  *outer = 1, *len = 1, *inner = 1;
  for (int d = 0; d < axis; d++) *outer *= x->dims[d];
  if (n->opset < 13) {
    for (int d = axis; d < x->rank; d++) *len *= x->dims[d];
  } else {
    *len = x->dims[axis];
    for (int d = axis + 1; d < x->rank; d++) *inner *= x->dims[d];
  }
  return DRT_OK;
}

drt_status drt_attention_resolve(const drt_node *n, const drt_shape *const *shapes, int num_inputs,
                                 drt_attention_geom *g) {
  memset(g, 0, sizeof *g);
  const drt_shape *q = shapes[0], *k = shapes[1], *v = shapes[2];
  const drt_shape *mask = num_inputs > 3 ? shapes[3] : NULL;
  const drt_shape *pk = num_inputs > 4 ? shapes[4] : NULL;
  const drt_shape *pv = num_inputs > 5 ? shapes[5] : NULL;
  const drt_shape *np = num_inputs > 6 ? shapes[6] : NULL;
  char a[128], b[128], c[128];
  if ((q->rank != 3 && q->rank != 4) || k->rank != q->rank || v->rank != q->rank)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "Q, K and V must all be 3-D or all 4-D, got %s, %s and %s",
                     drt_shape_str(q, a, sizeof a), drt_shape_str(k, b, sizeof b), drt_shape_str(v, c, sizeof c));
  const drt_attr *qh_attr = drt_node_attr(n, "q_num_heads"), *kvh_attr = drt_node_attr(n, "kv_num_heads");
  g->batch = q->dims[0];
  if (k->dims[0] != g->batch || v->dims[0] != g->batch)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "batch sizes of Q, K, V differ (%" PRId64 ", %" PRId64 ", %" PRId64 ")",
                     q->dims[0], k->dims[0], v->dims[0]);
  int64_t k_head;
  if (q->rank == 3) {
    g->is_3d = true;
    int64_t qh = drt_node_attr_int(n, "q_num_heads", 0), kvh = drt_node_attr_int(n, "kv_num_heads", 0);
    if (!qh_attr || !kvh_attr || qh <= 0 || kvh <= 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                       "3-D inputs need positive q_num_heads and kv_num_heads attributes (got %" PRId64 ", %" PRId64 ")",
                       qh, kvh);
    if (q->dims[2] % qh || k->dims[2] % kvh || v->dims[2] % kvh)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                       "hidden sizes (Q %" PRId64 ", K %" PRId64 ", V %" PRId64 ") are not divisible by q_num_heads %" PRId64
                       " / kv_num_heads %" PRId64,
                       q->dims[2], k->dims[2], v->dims[2], qh, kvh);
    g->q_heads = qh;
    g->kv_heads = kvh;
    g->q_seq = q->dims[1];
    g->kv_seq = k->dims[1];
    g->head = q->dims[2] / qh;
    k_head = k->dims[2] / kvh;
    g->v_head = v->dims[2] / kvh;
    if (v->dims[1] != g->kv_seq)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "K and V sequence lengths differ (%" PRId64 " vs %" PRId64 ")",
                       g->kv_seq, v->dims[1]);
  } else {
    if (n->opset >= 25 && (qh_attr || kvh_attr))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "q_num_heads/kv_num_heads must not be set for 4-D inputs");
    g->q_heads = q->dims[1];
    g->kv_heads = k->dims[1];
    g->q_seq = q->dims[2];
    g->kv_seq = k->dims[2];
    g->head = q->dims[3];
    k_head = k->dims[3];
    g->v_head = v->dims[3];
    if (v->dims[1] != g->kv_heads || v->dims[2] != g->kv_seq)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "K %s and V %s disagree on heads or sequence length",
                       drt_shape_str(k, a, sizeof a), drt_shape_str(v, b, sizeof b));
  }
  if (k_head != g->head)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "Q head size %" PRId64 " differs from K head size %" PRId64, g->head,
                     k_head);
  if (g->kv_heads <= 0 || g->q_heads % g->kv_heads)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "q_num_heads %" PRId64 " is not a multiple of kv_num_heads %" PRId64,
                     g->q_heads, g->kv_heads);
  if ((pk != NULL) != (pv != NULL))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "past_key and past_value must be given together");
  if (pk) {
    if (pk->rank != 4 || pv->rank != 4 || pk->dims[0] != g->batch || pk->dims[1] != g->kv_heads ||
        pk->dims[3] != g->head || pv->dims[0] != g->batch || pv->dims[1] != g->kv_heads ||
        pv->dims[2] != pk->dims[2] || pv->dims[3] != g->v_head)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                       "past_key %s / past_value %s must be (batch %" PRId64 ", kv_heads %" PRId64
                       ", past_seq, head %" PRId64 " / v_head %" PRId64 ")",
                       drt_shape_str(pk, a, sizeof a), drt_shape_str(pv, b, sizeof b), g->batch, g->kv_heads, g->head,
                       g->v_head);
    g->has_past = true;
    g->past_seq = pk->dims[2];
  }
  g->total_seq = g->past_seq + g->kv_seq;
  if (np) {
    if (pk) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "nonpad_kv_seqlen cannot be combined with past_key/past_value");
    if (np->rank != 1 || np->dims[0] != g->batch)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "nonpad_kv_seqlen must have shape (%" PRId64 "), got %s", g->batch,
                       drt_shape_str(np, a, sizeof a));
    g->has_nonpad = true;
  }
  if (mask) {
    int64_t target[4] = {g->batch, g->q_heads, g->q_seq, g->total_seq};
    if (mask->rank < 1 || mask->rank > 4)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attn_mask must have rank 1..4, got %s",
                       drt_shape_str(mask, a, sizeof a));
    for (int i = 0; i < mask->rank; i++) {
      int t = 4 - mask->rank + i;
      int64_t d = mask->dims[i];
      bool ok = t == 3 ? (d >= 1 && d <= target[3]) : (d == 1 || d == target[t]);
      if (!ok)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                         "attn_mask %s is not broadcastable to (batch %" PRId64 ", q_heads %" PRId64 ", q_seq %" PRId64
                         ", total_seq %" PRId64 ")",
                         drt_shape_str(mask, a, sizeof a), target[0], target[1], target[2], target[3]);
    }
    g->has_mask = true;
    g->mask = *mask;
  }
  int64_t lw = drt_node_attr_int(n, "left_window_size", -1), rw = drt_node_attr_int(n, "right_window_size", -1);
  if (lw < -1 || rw < -1)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "left_window_size %" PRId64 " / right_window_size %" PRId64
                     " must be -1 or nonnegative", lw, rw);
  int64_t mode = drt_node_attr_int(n, "qk_matmul_output_mode", 0);
  if (mode < 0 || mode > 3)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "qk_matmul_output_mode %" PRId64 " is not in 0..3", mode);
  return DRT_OK;
}

/* ---- infer functions ----------------------------------------------------------------- */
static drt_shape shape_of(int rank, const int64_t *dims) {
  drt_shape s;
  memset(&s, 0, sizeof s);
  s.rank = rank;
  for (int i = 0; i < rank; i++) s.dims[i] = dims[i];
  return s;
}

/* Requires `p` to be unidirectionally broadcastable to x. */
static drt_status check_unidirectional(const drt_shape *x, const drt_value *p, const char *what) {
  drt_shape o;
  char a[128], b[128];
  drt_status s = drt_broadcast_shapes(x, &p->shape, &o);
  if (s || !drt_shape_equal(&o, x)) {
    drt_status_free(s);
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s %s is not broadcastable to X %s", what,
                     drt_shape_str(&p->shape, a, sizeof a), drt_shape_str(x, b, sizeof b));
  }
  return DRT_OK;
}

static drt_status infer_softmax(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_FLOATS));
  const drt_value *x = n->inputs[0];
  int axis;
  DRT_RETURN_IF_ERROR(drt_softmax_axis(n, x->shape.rank, &axis));
  drt_infer_set(n, 0, x->dtype, &x->shape);
  return DRT_OK;
}

static drt_status infer_layer_norm(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_FLOATS));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, DRT_DT_FLOATS));
  const drt_value *x = n->inputs[0];
  int axis;
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_node_attr_int(n, "axis", -1), x->shape.rank, &axis),
                          "attribute axis");
  DRT_RETURN_IF_ERROR(check_unidirectional(&x->shape, n->inputs[1], "Scale"));
  if (drt_node_input(n, 2)) {
    DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 2, DRT_DT_FLOATS));
    DRT_RETURN_IF_ERROR(check_unidirectional(&x->shape, n->inputs[2], "B"));
  }
  drt_infer_set(n, 0, x->dtype, &x->shape);
  drt_shape st = x->shape;
  for (int d = axis; d < st.rank; d++) st.dims[d] = 1;
  /* Mean/InvStdDev (type U): float32, or float64 for float64 X (as onnxruntime registers it) */
  drt_dtype u = x->dtype == DRT_DTYPE_FLOAT64 ? DRT_DTYPE_FLOAT64 : DRT_DTYPE_FLOAT32;
  for (int i = 1; i < n->num_outputs; i++) drt_infer_set(n, i, u, &st);
  return DRT_OK;
}

static drt_status infer_rms_norm(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_FLOATS));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, DRT_DT_FLOATS));
  const drt_value *x = n->inputs[0];
  int axis;
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_node_attr_int(n, "axis", -1), x->shape.rank, &axis),
                          "attribute axis");
  DRT_RETURN_IF_ERROR(check_unidirectional(&x->shape, n->inputs[1], "scale"));
  drt_infer_set(n, 0, n->inputs[1]->dtype, &x->shape);
  return DRT_OK;
}

/* Common checks of X (N, C, ...) and per-channel parameters. */
static drt_status check_nc(const drt_value *x, int64_t *c) {
  char a[128];
  if (x->shape.rank < 2)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "X must have shape (N, C, ...), got %s",
                     drt_shape_str(&x->shape, a, sizeof a));
  *c = x->shape.dims[1];
  return DRT_OK;
}

static drt_status check_param(const drt_node *n, int i, const char *name, int64_t want, const char *what) {
  const drt_value *p = n->inputs[i];
  char a[128];
  int64_t cnt = drt_shape_numel(&p->shape);
  if (cnt != want || p->shape.rank > 1)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s (input %d) has shape %s, expected (%" PRId64 ") (%s)", name, i,
                     drt_shape_str(&p->shape, a, sizeof a), want, what);
  return DRT_OK;
}

static drt_status infer_group_norm(drt_graph *g, drt_node *n) {
  (void)g;
  for (int i = 0; i < 3; i++) DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, i, DRT_DT_FLOATS));
  const drt_value *x = n->inputs[0];
  int64_t c = 0;
  DRT_RETURN_IF_ERROR(check_nc(x, &c));
  const drt_attr *ga = drt_node_attr(n, "num_groups");
  if (!ga) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute num_groups is required");
  int64_t groups = drt_node_attr_int(n, "num_groups", 0);
  if (groups <= 0 || c % groups)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "num_groups %" PRId64 " does not divide the %" PRId64 " channels",
                     groups, c);
  /* Opset 18 takes scale/bias per group, opset 21 per channel; a per-channel parameter is
   * also accepted in opset 18 (its meaning is unambiguous). */
  for (int i = 1; i < 3; i++) {
    int64_t cnt = drt_shape_numel(&n->inputs[i]->shape);
    if (n->opset < 21 && cnt == groups) continue;
    DRT_RETURN_IF_ERROR(check_param(n, i, i == 1 ? "scale" : "bias", c, "one value per channel"));
  }
  drt_infer_set(n, 0, x->dtype, &x->shape);
  return DRT_OK;
}

static drt_status infer_instance_norm(drt_graph *g, drt_node *n) {
  (void)g;
  for (int i = 0; i < 3; i++) DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, i, DRT_DT_FLOATS));
  const drt_value *x = n->inputs[0];
  int64_t c = 0;
  DRT_RETURN_IF_ERROR(check_nc(x, &c));
  DRT_RETURN_IF_ERROR(check_param(n, 1, "scale", c, "one value per channel"));
  DRT_RETURN_IF_ERROR(check_param(n, 2, "B", c, "one value per channel"));
  drt_infer_set(n, 0, x->dtype, &x->shape);
  return DRT_OK;
}

static drt_status infer_batch_norm(drt_graph *g, drt_node *n) {
  (void)g;
  for (int i = 0; i < 5; i++) DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, i, DRT_DT_FLOATS));
  const drt_value *x = n->inputs[0];
  int64_t c = 0;
  DRT_RETURN_IF_ERROR(check_nc(x, &c));
  if (n->opset >= 14) {
    if (drt_node_attr_int(n, "training_mode", 0) != 0)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED,
                       "training_mode=1 (batch statistics, running-mean outputs) is not supported; distilrt runs "
                       "inference only");
  } else if (n->num_outputs > 1) {
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED,
                     "training-mode outputs (mean, var, saved_mean, saved_var) are not supported; distilrt runs "
                     "inference only");
  }
  if (n->num_outputs > 1)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "running_mean/running_var outputs are only valid in training mode");
  int64_t want = c;
  const char *what = "one value per channel";
  if (n->opset < 9 && drt_node_attr_int(n, "spatial", 1) == 0) {
    want = drt_shape_numel(&x->shape) / (x->shape.dims[0] ? x->shape.dims[0] : 1);
    what = "spatial=0: one value per element of a sample";
  }
  static const char *const names[] = {"", "scale", "B", "mean", "var"};
  for (int i = 1; i < 5; i++) {
    const drt_value *p = n->inputs[i];
    if (drt_shape_numel(&p->shape) != want) {
      char a[128];
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s (input %d) has shape %s, expected %" PRId64 " values (%s)",
                       names[i], i, drt_shape_str(&p->shape, a, sizeof a), want, what);
    }
  }
  drt_infer_set(n, 0, x->dtype, &x->shape);
  return DRT_OK;
}

static drt_status infer_reduce(drt_graph *g, drt_node *n) {
  (void)g;
  uint32_t mask = DRT_DT_NUMERIC;
  if ((n->op == DRT_OP_REDUCE_MAX || n->op == DRT_OP_REDUCE_MIN) && n->opset >= 20)
    mask |= DRT_DT_BIT(DRT_DTYPE_BOOL);
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, mask));
  const drt_value *x = n->inputs[0];
  const drt_value *axes = drt_node_input(n, 1);
  if (axes && !axes_from_input(n))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "axes as an input needs opset %d or later",
                     n->op == DRT_OP_REDUCE_SUM ? 13 : 18);
  drt_tensor at, *atp = NULL;
  if (axes) {
    if (axes->kind != DRT_VALUE_CONST)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "axes (input 1 '%s') must be a compile-time constant", axes->name);
    at = drt_value_tensor(axes);
    atp = &at;
  }
  bool reduced[DRT_MAX_RANK];
  drt_shape out;
  DRT_RETURN_IF_ERROR(drt_reduce_resolve(n, &x->shape, atp, reduced, &out));
  drt_infer_set(n, 0, x->dtype, &out);
  return DRT_OK;
}

static drt_status infer_argmax(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_NUMERIC));
  const drt_value *x = n->inputs[0];
  int axis;
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_node_attr_int(n, "axis", 0), x->shape.rank, &axis),
                          "attribute axis");
  drt_shape o = x->shape;
  if (drt_node_attr_int(n, "keepdims", 1)) {
    o.dims[axis] = 1;
  } else {
    for (int d = axis; d + 1 < o.rank; d++) o.dims[d] = o.dims[d + 1];
    o.rank--;
  }
  if (x->shape.dims[axis] == 0)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "cannot take the arg-extremum over empty axis %d", axis);
  drt_infer_set(n, 0, DRT_DTYPE_INT64, &o);
  return DRT_OK;
}

static drt_status infer_cumsum(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_NUMERIC));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, DRT_DT_BIT(DRT_DTYPE_INT32) | DRT_DT_BIT(DRT_DTYPE_INT64)));
  const drt_value *x = n->inputs[0], *ax = n->inputs[1];
  if (drt_shape_numel(&ax->shape) != 1 || ax->shape.rank > 1) {
    char a[128];
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "axis (input 1) must be a scalar, got shape %s",
                     drt_shape_str(&ax->shape, a, sizeof a));
  }
  if (ax->kind == DRT_VALUE_CONST) {
    int axis;
    DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_load_i64(ax->dtype, ax->data, 0), x->shape.rank, &axis),
                            "axis (input 1)");
  }
  drt_infer_set(n, 0, x->dtype, &x->shape);
  return DRT_OK;
}

/* NegativeLogLikelihoodLoss (input = log-probabilities) and SoftmaxCrossEntropyLoss (input =
 * scores): x [N, C, d1..dk], target [N, d1..dk] (int32/int64), optional weight [C]; output 0
 * has target's shape for reduction "none", else it is a scalar; SoftmaxCrossEntropyLoss's
 * optional output 1 is log_softmax(x, axis 1). */
static drt_status infer_loss(drt_graph *g, drt_node *n) {
  (void)g;
  char a[128], b[128];
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_FLOATS));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, DRT_DT_BIT(DRT_DTYPE_INT32) | DRT_DT_BIT(DRT_DTYPE_INT64)));
  const drt_value *x = n->inputs[0], *t = n->inputs[1], *w = drt_node_input(n, 2);
  if (x->shape.rank < 2)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 0 must be [N, C, d1..dk], got shape %s",
                     drt_shape_str(&x->shape, a, sizeof a));
  bool same = t->shape.rank == x->shape.rank - 1 && t->shape.dims[0] == x->shape.dims[0];
  for (int d = 2; same && d < x->shape.rank; d++) same = t->shape.dims[d - 1] == x->shape.dims[d];
  if (!same)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "target (input 1) must be [N, d1..dk] for input 0 of shape %s, got %s",
                     drt_shape_str(&x->shape, a, sizeof a), drt_shape_str(&t->shape, b, sizeof b));
  if (w) {
    DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 2, DRT_DT_BIT(x->dtype)));
    if (w->shape.rank != 1 || w->shape.dims[0] != x->shape.dims[1])
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "weight (input 2) must be [C] = [%" PRId64 "], got %s",
                       x->shape.dims[1], drt_shape_str(&w->shape, a, sizeof a));
  }
  const char *red = drt_node_attr_string(n, "reduction", "mean");
  bool none = strcmp(red, "none") == 0;
  if (!none && strcmp(red, "sum") != 0 && strcmp(red, "mean") != 0)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute reduction must be none, sum or mean, got '%s'", red);
  drt_shape scalar = {0};
  drt_infer_set(n, 0, x->dtype, none ? &t->shape : &scalar);
  if (n->num_outputs > 1) drt_infer_set(n, 1, x->dtype, &x->shape);
  return DRT_OK;
}

/* TopK: K (input 1, int64 [1]) must be a compile-time constant in [0, dims[axis]]. */
static drt_status infer_topk(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_NUMERIC));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, DRT_DT_BIT(DRT_DTYPE_INT64)));
  const drt_value *x = n->inputs[0], *k = n->inputs[1];
  int axis;
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_node_attr_int(n, "axis", -1), x->shape.rank, &axis),
                          "attribute axis");
  int64_t kv, kc;
  DRT_RETURN_IF_ERROR_CTX(drt_value_const_ints(k, &kv, 1, &kc), "K (input 1)");
  if (kc != 1) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "K (input 1) must hold one value");
  if (kv < 0 || kv > x->shape.dims[axis])
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "K = %" PRId64 " is outside [0, %" PRId64 "] (axis %d)", kv,
                     x->shape.dims[axis], axis);
  drt_shape o = x->shape;
  o.dims[axis] = kv;
  drt_infer_set(n, 0, x->dtype, &o);
  drt_infer_set(n, 1, DRT_DTYPE_INT64, &o);
  return DRT_OK;
}

/* LpNormalization (axis, p = 1 or 2), MeanVarianceNormalization (axes), LRN (N, C, ...; size). */
static drt_status infer_norm_extra(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_FLOATS));
  const drt_value *x = n->inputs[0];
  int axis;
  if (n->op == DRT_OP_LP_NORMALIZATION) {
    DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_node_attr_int(n, "axis", -1), x->shape.rank, &axis),
                            "attribute axis");
    int64_t p = drt_node_attr_int(n, "p", 2);
    if (p != 1 && p != 2) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute p is %" PRId64 ", must be 1 or 2", p);
  } else if (n->op == DRT_OP_MVN) {
    int64_t cnt;
    const int64_t *axes = drt_node_attr_ints(n, "axes", &cnt);
    for (int64_t i = 0; axes && i < cnt; i++)
      DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(axes[i], x->shape.rank, &axis), "attribute axes[%" PRId64 "]", i);
    if (!axes && x->shape.rank < 4)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "the default axes [0, 2, 3] need a rank-4 input, got rank %d",
                       x->shape.rank);
  } else {
    if (x->shape.rank < 2)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input must be [N, C, ...], got rank %d", x->shape.rank);
    const drt_attr *size = drt_node_attr(n, "size");
    if (!size || size->type != DRT_ATTR_INT || size->i < 1)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute size (a positive int) is required");
  }
  drt_infer_set(n, 0, x->dtype, &x->shape);
  return DRT_OK;
}

/* RotaryEmbedding (opset 23): X [B, H, S, D] or [B, S, H*D] (attribute num_heads), cos/sin
 * caches [P, R/2] indexed by position_ids [B, S], or [B, S, R/2] without position_ids; R =
 * rotary_embedding_dim (default D), even and at most D. */
drt_status drt_rotary_resolve(const drt_node *n, const drt_shape *x, const drt_shape *cache, const drt_shape *pos,
                              drt_rotary_geom *g) {
  char a[128];
  memset(g, 0, sizeof *g);
  if (x->rank == 4) {
    g->batch = x->dims[0], g->heads = x->dims[1], g->seq = x->dims[2], g->head = x->dims[3];
  } else if (x->rank == 3) {
    int64_t nh = drt_node_attr_int(n, "num_heads", 0);
    if (nh <= 0 || x->dims[2] % nh != 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "a 3-D input [B, S, %" PRId64 "] needs attribute num_heads dividing %" PRId64,
                       x->dims[2], x->dims[2]);
    g->batch = x->dims[0], g->seq = x->dims[1], g->heads = nh, g->head = x->dims[2] / nh;
    g->is_3d = true;
  } else {
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 0 must be 3-D or 4-D, got shape %s", drt_shape_str(x, a, sizeof a));
  }
  g->rot = drt_node_attr_int(n, "rotary_embedding_dim", 0);
  if (g->rot == 0) g->rot = g->head;
  if (g->rot < 0 || g->rot > g->head || g->rot % 2)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "rotary_embedding_dim %" PRId64 " must be even and at most the head size %" PRId64,
                     g->rot, g->head);
  int64_t half = g->rot / 2;
  if (pos) {
    if (pos->rank != 2 || pos->dims[0] != g->batch || pos->dims[1] != g->seq)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "position_ids (input 3) must be [%" PRId64 ", %" PRId64 "], got %s",
                       g->batch, g->seq, drt_shape_str(pos, a, sizeof a));
    if (cache->rank != 2 || cache->dims[1] != half)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "with position_ids the caches must be [positions, %" PRId64 "], got %s",
                       half, drt_shape_str(cache, a, sizeof a));
    g->positions = cache->dims[0];
    if (g->positions < 1) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "the caches have no rows for position_ids to index");
  } else if (!((cache->rank == 3 && cache->dims[0] == g->batch && cache->dims[1] == g->seq && cache->dims[2] == half) ||
               (cache->rank == 2 && cache->dims[0] == g->seq && cache->dims[1] == half))) {
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                     "without position_ids the caches must be [%" PRId64 ", %" PRId64 ", %" PRId64 "], got %s", g->batch,
                     g->seq, half, drt_shape_str(cache, a, sizeof a));
  }
  g->cache_per_batch = !pos && cache->rank == 3;
  g->interleaved = drt_node_attr_int(n, "interleaved", 0) != 0;
  return DRT_OK;
}

static drt_status infer_rotary(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_FLOATS));
  const drt_value *x = n->inputs[0], *c = n->inputs[1], *s = n->inputs[2], *p = drt_node_input(n, 3);
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, DRT_DT_BIT(x->dtype)));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 2, DRT_DT_BIT(x->dtype)));
  if (p) DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 3, DRT_DT_BIT(DRT_DTYPE_INT64)));
  if (!drt_shape_equal(&c->shape, &s->shape))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "cos_cache and sin_cache have different shapes");
  drt_rotary_geom geom;
  DRT_RETURN_IF_ERROR(drt_rotary_resolve(n, &x->shape, &c->shape, p ? &p->shape : NULL, &geom));
  drt_infer_set(n, 0, x->dtype, &x->shape);
  return DRT_OK;
}

drt_status drt_linattn_resolve(const drt_node *n, const drt_shape *const sh[6], drt_linattn_geom *g) {
  char a[128];
  memset(g, 0, sizeof *g);
  static const char *const names[3] = {"query", "key", "value"};
  for (int i = 0; i < 3; i++)
    if (sh[i]->rank != 3)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s (input %d) must be [B, T, H*D], got %s", names[i], i,
                       drt_shape_str(sh[i], a, sizeof a));
  g->q_heads = drt_node_attr_int(n, "q_num_heads", 0);
  g->kv_heads = drt_node_attr_int(n, "kv_num_heads", 0);
  if (g->q_heads <= 0 || g->kv_heads <= 0 || g->q_heads % g->kv_heads)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "q_num_heads %" PRId64 " must be a positive multiple of kv_num_heads %" PRId64,
                     g->q_heads, g->kv_heads);
  g->batch = sh[0]->dims[0], g->seq = sh[0]->dims[1];
  for (int i = 1; i < 3; i++)
    if (sh[i]->dims[0] != g->batch || sh[i]->dims[1] != g->seq)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s (input %d) must start with [%" PRId64 ", %" PRId64 "], got %s",
                       names[i], i, g->batch, g->seq, drt_shape_str(sh[i], a, sizeof a));
  if (sh[0]->dims[2] % g->q_heads || sh[2]->dims[2] % g->kv_heads)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "query/value feature sizes do not divide by the head counts");
  g->dk = sh[0]->dims[2] / g->q_heads, g->dv = sh[2]->dims[2] / g->kv_heads;
  if (sh[1]->dims[2] != g->kv_heads * g->dk)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "key (input 1) must have %" PRId64 " features, got %s",
                     g->kv_heads * g->dk, drt_shape_str(sh[1], a, sizeof a));
  if (sh[3] && !(sh[3]->rank == 4 && sh[3]->dims[0] == g->batch && sh[3]->dims[1] == g->kv_heads &&
                 sh[3]->dims[2] == g->dk && sh[3]->dims[3] == g->dv))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "past_state (input 3) must be [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 "], got %s",
                     g->batch, g->kv_heads, g->dk, g->dv, drt_shape_str(sh[3], a, sizeof a));
  const char *rule = drt_node_attr_string(n, "update_rule", "gated_delta");
  bool gated = !strcmp(rule, "gated") || !strcmp(rule, "gated_delta");
  bool delta = !strcmp(rule, "delta") || !strcmp(rule, "gated_delta");
  if (!gated && !delta && strcmp(rule, "linear"))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "update_rule '%s' is not linear, gated, delta or gated_delta", rule);
  if (gated != (sh[4] != NULL))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "update_rule '%s' %s decay (input 4)", rule, gated ? "needs" : "forbids");
  if (delta != (sh[5] != NULL))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "update_rule '%s' %s beta (input 5)", rule, delta ? "needs" : "forbids");
  if (sh[4]) {
    g->decay_last = sh[4]->rank == 3 ? sh[4]->dims[2] : -1;
    if (sh[4]->rank != 3 || sh[4]->dims[0] != g->batch || sh[4]->dims[1] != g->seq ||
        (g->decay_last != g->kv_heads && g->decay_last != g->kv_heads * g->dk))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "decay (input 4) must be [B, T, kv_num_heads (* d_k)], got %s",
                       drt_shape_str(sh[4], a, sizeof a));
  }
  if (sh[5]) {
    g->beta_last = sh[5]->rank == 3 ? sh[5]->dims[2] : -1;
    if (sh[5]->rank != 3 || sh[5]->dims[0] != g->batch || sh[5]->dims[1] != g->seq ||
        (g->beta_last != g->kv_heads && g->beta_last != 1))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "beta (input 5) must be [B, T, kv_num_heads or 1], got %s",
                       drt_shape_str(sh[5], a, sizeof a));
  }
  float sc = drt_node_attr_float(n, "scale", 0.0f);
  g->scale = sc != 0.0f ? sc : (float)(1.0 / sqrt((double)g->dk));
  return DRT_OK;
}

static drt_status infer_linear_attention(drt_graph *g, drt_node *n) {
  (void)g;
  const drt_shape *sh[6] = {NULL};
  for (int i = 0; i < 6 && i < n->num_inputs; i++) {
    if (!n->inputs[i]) continue;
    DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, i, DRT_DT_FLOATS));
    sh[i] = &n->inputs[i]->shape;
  }
  drt_linattn_geom geom;
  DRT_RETURN_IF_ERROR(drt_linattn_resolve(n, sh, &geom));
  drt_shape o = {.rank = 3, .dims = {geom.batch, geom.seq, geom.q_heads * geom.dv}};
  drt_shape st = {.rank = 4, .dims = {geom.batch, geom.kv_heads, geom.dk, geom.dv}};
  drt_infer_set(n, 0, n->inputs[0]->dtype, &o);
  if (n->num_outputs > 1) drt_infer_set(n, 1, sh[3] ? n->inputs[3]->dtype : n->inputs[0]->dtype, &st);
  return DRT_OK;
}

/* CausalConvWithState: input [B, C, L], weight [C, 1, k], bias [C], past_state [B, C, k - 1]. */
static drt_status infer_causal_conv(drt_graph *g, drt_node *n) {
  (void)g;
  char a[128];
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_FLOATS));
  const drt_value *x = n->inputs[0], *w = n->inputs[1], *b = drt_node_input(n, 2), *p = drt_node_input(n, 3);
  for (int i = 1; i < 4 && i < n->num_inputs; i++)
    if (n->inputs[i]) DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, i, DRT_DT_BIT(x->dtype)));
  if (x->shape.rank != 3)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input must be [B, C, L], got %s", drt_shape_str(&x->shape, a, sizeof a));
  int64_t B = x->shape.dims[0], C = x->shape.dims[1];
  if (w->shape.rank != 3 || w->shape.dims[0] != C || w->shape.dims[1] != 1 || w->shape.dims[2] < 1)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "weight must be [%" PRId64 ", 1, k], got %s", C,
                     drt_shape_str(&w->shape, a, sizeof a));
  int64_t k = w->shape.dims[2];
  if (b && (b->shape.rank != 1 || b->shape.dims[0] != C))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "bias must be [%" PRId64 "], got %s", C, drt_shape_str(&b->shape, a, sizeof a));
  drt_shape st = {.rank = 3, .dims = {B, C, k - 1}};
  if (p && !drt_shape_equal(&p->shape, &st))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "past_state must be [%" PRId64 ", %" PRId64 ", %" PRId64 "], got %s", B, C,
                     k - 1, drt_shape_str(&p->shape, a, sizeof a));
  const char *act = drt_node_attr_string(n, "activation", "none");
  if (strcmp(act, "none") && strcmp(act, "silu") && strcmp(act, "swish"))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "activation '%s' is not none, silu or swish", act);
  drt_infer_set(n, 0, x->dtype, &x->shape);
  if (n->num_outputs > 1) drt_infer_set(n, 1, x->dtype, &st);
  return DRT_OK;
}

static drt_status infer_attention(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_FLOATS));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, DRT_DT_FLOATS));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 2, DRT_DT_FLOATS));
  if (drt_node_input(n, 3)) DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 3, DRT_DT_ALL));
  if (drt_node_input(n, 4)) DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 4, DRT_DT_FLOATS));
  if (drt_node_input(n, 5)) DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 5, DRT_DT_FLOATS));
  if (drt_node_input(n, 6)) DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 6, DRT_DT_BIT(DRT_DTYPE_INT64)));
  const drt_shape *shapes[8] = {NULL};
  int ni = n->num_inputs < 8 ? n->num_inputs : 8;
  for (int i = 0; i < ni; i++) shapes[i] = n->inputs[i] ? &n->inputs[i]->shape : NULL;
  drt_attention_geom ag;
  DRT_RETURN_IF_ERROR(drt_attention_resolve(n, shapes, ni, &ag));
  drt_dtype qt = n->inputs[0]->dtype, kt = n->inputs[1]->dtype, vt = n->inputs[2]->dtype;
  drt_shape y = ag.is_3d ? shape_of(3, (int64_t[]){ag.batch, ag.q_seq, ag.q_heads * ag.v_head})
                         : shape_of(4, (int64_t[]){ag.batch, ag.q_heads, ag.q_seq, ag.v_head});
  drt_infer_set(n, 0, qt, &y);
  if (n->num_outputs > 1) {
    drt_shape s = shape_of(4, (int64_t[]){ag.batch, ag.kv_heads, ag.total_seq, ag.head});
    drt_infer_set(n, 1, kt, &s);
  }
  if (n->num_outputs > 2) {
    drt_shape s = shape_of(4, (int64_t[]){ag.batch, ag.kv_heads, ag.total_seq, ag.v_head});
    drt_infer_set(n, 2, vt, &s);
  }
  if (n->num_outputs > 3) {
    drt_shape s = shape_of(4, (int64_t[]){ag.batch, ag.q_heads, ag.q_seq, ag.total_seq});
    drt_infer_set(n, 3, qt, &s);
  }
  return DRT_OK;
}

const drt_infer_entry drt_infer_table_reduce[] = {
    {DRT_OP_SOFTMAX, infer_softmax},
    {DRT_OP_LOG_SOFTMAX, infer_softmax},
    {DRT_OP_LAYER_NORM, infer_layer_norm},
    {DRT_OP_GROUP_NORM, infer_group_norm},
    {DRT_OP_INSTANCE_NORM, infer_instance_norm},
    {DRT_OP_BATCH_NORM, infer_batch_norm},
    {DRT_OP_RMS_NORM, infer_rms_norm},
    {DRT_OP_REDUCE_MEAN, infer_reduce},
    {DRT_OP_REDUCE_SUM, infer_reduce},
    {DRT_OP_REDUCE_MAX, infer_reduce},
    {DRT_OP_REDUCE_MIN, infer_reduce},
    {DRT_OP_REDUCE_PROD, infer_reduce},
    {DRT_OP_REDUCE_L1, infer_reduce},
    {DRT_OP_REDUCE_L2, infer_reduce},
    {DRT_OP_REDUCE_SUM_SQUARE, infer_reduce},
    {DRT_OP_REDUCE_LOG_SUM, infer_reduce},
    {DRT_OP_REDUCE_LOG_SUM_EXP, infer_reduce},
    {DRT_OP_ARGMAX, infer_argmax},
    {DRT_OP_ARGMIN, infer_argmax},
    {DRT_OP_CUMSUM, infer_cumsum},
    {DRT_OP_CUMPROD, infer_cumsum},
    {DRT_OP_NLL_LOSS, infer_loss},
    {DRT_OP_SCE_LOSS, infer_loss},
    {DRT_OP_HARDMAX, infer_softmax}, /* Softmax's axis rules, same shape */
    {DRT_OP_TOPK, infer_topk},
    {DRT_OP_LP_NORMALIZATION, infer_norm_extra},
    {DRT_OP_MVN, infer_norm_extra},
    {DRT_OP_LRN, infer_norm_extra},
    {DRT_OP_ATTENTION, infer_attention},
    {DRT_OP_ROTARY_EMBEDDING, infer_rotary},
    {DRT_OP_LINEAR_ATTENTION, infer_linear_attention},
    {DRT_OP_CAUSAL_CONV_WITH_STATE, infer_causal_conv},
    {DRT_OP_COUNT_, NULL},
};
