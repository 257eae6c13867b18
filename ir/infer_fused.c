/* Shape/dtype inference for the internal fused ops (drt.Attention, drt.Norm) and the
 * geometry shared with their kernels and passes (see ir/infer_fused.h). */
#include "ir/infer_fused.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ir/cfg_combine.h"
#include "ir/ew_program.h"
#include "ir/infer.h"

static const char k_letters[] = "bhsd";

/* ---- attention layouts ---------------------------------------------------------------- */
drt_status drt_attn_layout_check(const drt_attn_layout *l) {
  if (l->rank < 1 || l->rank > DRT_MAX_RANK)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "layout has %d dims, expected 1..%d", l->rank, DRT_MAX_RANK);
  int last_group[4] = {-1, -1, -1, -1};
  bool multi[4] = {false, false, false, false};
  for (int g = 0; g < l->rank; g++) {
    int n = l->len[g];
    if (n < 0 || n > 2)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "layout dim %d merges %d letters; at most h and one other", g, n);
    if (n == 2 && (l->letter[g][0] == l->letter[g][1] ||
                   (l->letter[g][0] != DRT_ATTN_H && l->letter[g][1] != DRT_ATTN_H)))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "layout dim %d merges '%c%c'; a merged dim is h and one other letter",
                       g, k_letters[l->letter[g][0] & 3], k_letters[l->letter[g][1] & 3]);
    for (int k = 0; k < n; k++) {
      int c = l->letter[g][k];
      if (c < 0 || c > 3) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "layout dim %d has an invalid letter", g);
      if (last_group[c] >= 0) {
        /* a letter spans several dims only as consecutive one-letter groups */
        if (n != 1 || multi[c] || last_group[c] != g - 1)
          return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                           "layout letter '%c' appears in dims %d and %d; a letter may only span consecutive "
                           "single-letter dims", k_letters[c], last_group[c], g);
      }
      if (n > 1) multi[c] = true;
      last_group[c] = g;
    }
  }
  return DRT_OK;
}

drt_status drt_attn_layout_parse(const char *text, drt_attn_layout *out) {
  memset(out, 0, sizeof *out);
  if (!text || !*text) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "empty layout");
  const char *p = text;
  for (;;) {
    if (out->rank >= DRT_MAX_RANK)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "layout '%s' has more than %d dims", text, DRT_MAX_RANK);
    int g = out->rank++;
    const char *e = p;
    while (*e && *e != '_') e++;
    size_t n = (size_t)(e - p);
    if (n == 1 && *p == '1') {
      out->len[g] = 0;
    } else {
      if (n == 0 || n > 2)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "layout '%s': dim %d is '%.*s'; expected 1 or 2 of the letters "
                         "b, h, s, d, or '1'", text, g, (int)n, p);
      for (size_t k = 0; k < n; k++) {
        const char *c = strchr(k_letters, p[k]);
        if (!c || !p[k])
          return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "layout '%s': unknown letter '%c' (expected b, h, s, d)", text,
                           p[k]);
        out->letter[g][k] = (int8_t)(c - k_letters);
      }
      out->len[g] = (int)n;
    }
    if (!*e) break;
    p = e + 1;
  }
  DRT_RETURN_IF_ERROR_CTX(drt_attn_layout_check(out), "layout '%s'", text);
  return DRT_OK;
}

const char *drt_attn_layout_format(const drt_attn_layout *l, char *buf, size_t n) {
  size_t off = 0;
  if (n == 0) return buf;
  buf[0] = 0;
  for (int g = 0; g < l->rank && off + 4 < n; g++) {
    if (g) buf[off++] = '_';
    if (l->len[g] == 0) buf[off++] = '1';
    for (int k = 0; k < l->len[g]; k++) buf[off++] = k_letters[l->letter[g][k] & 3];
    buf[off] = 0;
  }
  return buf;
}

drt_status drt_attn_layout_view(const drt_attn_layout *l, const drt_shape *shape, int64_t heads, drt_attn_view *out) {
  char lb[DRT_ATTN_LAYOUT_MAX], sb[128];
  if (shape->rank != l->rank)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "layout '%s' has %d dims but the tensor is %s",
                     drt_attn_layout_format(l, lb, sizeof lb), l->rank, drt_shape_str(shape, sb, sizeof sb));
  if (heads < 1) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "head count %" PRId64 " must be positive", heads);
  /* every product below (strides, merged letters) divides the element count: bound it once */
  if (drt_shape_numel(shape) < 0)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "tensor %s has more elements than fit in int64",
                     drt_shape_str(shape, sb, sizeof sb));
  int64_t size[4] = {1, 1, 1, 1}, hsize = 1;
  bool seen[4] = {false, false, false, false};
  for (int g = 0; g < l->rank; g++) {
    int64_t dim = shape->dims[g];
    if (l->len[g] == 0) {
      if (dim != 1)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "layout '%s': dim %d is a unit dim but the tensor is %s",
                         drt_attn_layout_format(l, lb, sizeof lb), g, drt_shape_str(shape, sb, sizeof sb));
      continue;
    }
    if (l->len[g] == 1) {
      int c = l->letter[g][0];
      if (c == DRT_ATTN_H) {
        hsize = seen[c] ? hsize * dim : dim;
      } else {
        size[c] = seen[c] ? size[c] * dim : dim;
      }
      seen[c] = true;
      continue;
    }
    /* h merged with one other letter */
    int other = l->letter[g][0] == DRT_ATTN_H ? l->letter[g][1] : l->letter[g][0];
    if (dim % heads != 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "layout '%s': dim %d (%" PRId64 ") is not divisible by %" PRId64
                       " heads", drt_attn_layout_format(l, lb, sizeof lb), g, dim, heads);
    size[other] = dim / heads;
    hsize = heads;
    seen[other] = seen[DRT_ATTN_H] = true;
  }
  if (hsize != heads)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "layout '%s' on %s gives %" PRId64 " heads, expected %" PRId64,
                     drt_attn_layout_format(l, lb, sizeof lb), drt_shape_str(shape, sb, sizeof sb), hsize, heads);
  size[DRT_ATTN_H] = heads;
  /* strides: contiguous per dim; inside a merged dim the inner letter is contiguous */
  int64_t st[DRT_MAX_RANK], s = 1;
  for (int g = l->rank - 1; g >= 0; g--) {
    st[g] = s;
    s *= shape->dims[g];
  }
  int64_t stride[4] = {0, 0, 0, 0};
  for (int g = 0; g < l->rank; g++) {
    int64_t t = st[g];
    for (int k = l->len[g] - 1; k >= 0; k--) {
      int c = l->letter[g][k];
      stride[c] = t; /* for a letter spanning several dims the innermost one wins */
      t *= size[c];
    }
  }
  for (int c = 0; c < 4; c++) {
    out->size[c] = size[c];
    out->stride[c] = seen[c] ? stride[c] : 0;
  }
  return DRT_OK;
}

drt_status drt_attn_layout_shape(const drt_attn_layout *l, const int64_t size[4], drt_shape *out) {
  char lb[DRT_ATTN_LAYOUT_MAX];
  bool seen[4] = {false, false, false, false};
  memset(out, 0, sizeof *out);
  out->rank = l->rank;
  for (int g = 0; g < l->rank; g++) {
    int64_t d = 1;
    for (int k = 0; k < l->len[g]; k++) {
      int c = l->letter[g][k];
      if (seen[c])
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "layout '%s': letter '%c' spans several dims, so the shape is "
                         "ambiguous", drt_attn_layout_format(l, lb, sizeof lb), k_letters[c]);
      seen[c] = true;
      d *= size[c];
    }
    out->dims[g] = d;
  }
  for (int c = 0; c < 4; c++)
    if (!seen[c] && size[c] != 1)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "layout '%s' has no '%c' but that size is %" PRId64,
                       drt_attn_layout_format(l, lb, sizeof lb), k_letters[c], size[c]);
  return DRT_OK;
}

/* ---- drt.Attention --------------------------------------------------------------------- */
static drt_status layout_attr(const drt_node *n, const char *name, drt_attn_layout *l) {
  DRT_RETURN_IF_ERROR_CTX(drt_attn_layout_parse(drt_node_attr_string(n, name, "b_h_s_d"), l), "attribute %s", name);
  return DRT_OK;
}

drt_status drt_fused_attention_resolve(const drt_node *n, const drt_shape *const shapes[4], drt_fused_attention *out) {
  memset(out, 0, sizeof *out);
  int64_t heads = drt_node_attr_int(n, "num_heads", 1);
  int64_t kv_heads = drt_node_attr_int(n, "kv_num_heads", heads);
  if (heads < 1 || kv_heads < 1 || heads % kv_heads != 0)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "num_heads %" PRId64 " must be a positive multiple of kv_num_heads %"
                     PRId64, heads, kv_heads);
  if (!shapes[0] || !shapes[1] || !shapes[2])
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "inputs 0-2 (Q, K, V) are required");
  drt_attn_layout lq, lk, lv, lo;
  DRT_RETURN_IF_ERROR(layout_attr(n, "q_layout", &lq));
  DRT_RETURN_IF_ERROR(layout_attr(n, "k_layout", &lk));
  DRT_RETURN_IF_ERROR(layout_attr(n, "v_layout", &lv));
  DRT_RETURN_IF_ERROR(layout_attr(n, "out_layout", &lo));
  DRT_RETURN_IF_ERROR_CTX(drt_attn_layout_view(&lq, shapes[0], heads, &out->q), "input 0 (Q, q_layout)");
  DRT_RETURN_IF_ERROR_CTX(drt_attn_layout_view(&lk, shapes[1], kv_heads, &out->k), "input 1 (K, k_layout)");
  DRT_RETURN_IF_ERROR_CTX(drt_attn_layout_view(&lv, shapes[2], kv_heads, &out->v), "input 2 (V, v_layout)");
  const int64_t *q = out->q.size, *k = out->k.size, *v = out->v.size;
  if (k[DRT_ATTN_B] != q[DRT_ATTN_B] || v[DRT_ATTN_B] != q[DRT_ATTN_B])
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "batch sizes differ: Q %" PRId64 ", K %" PRId64 ", V %" PRId64,
                     q[DRT_ATTN_B], k[DRT_ATTN_B], v[DRT_ATTN_B]);
  if (k[DRT_ATTN_D] != q[DRT_ATTN_D])
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "head sizes differ: Q %" PRId64 ", K %" PRId64, q[DRT_ATTN_D],
                     k[DRT_ATTN_D]);
  if (v[DRT_ATTN_S] != k[DRT_ATTN_S])
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "key and value sequence lengths differ: K %" PRId64 ", V %" PRId64,
                     k[DRT_ATTN_S], v[DRT_ATTN_S]);
  out->batch = q[DRT_ATTN_B];
  out->heads = heads;
  out->kv_heads = kv_heads;
  out->q_seq = q[DRT_ATTN_S];
  out->kv_seq = k[DRT_ATTN_S];
  out->head_dim = q[DRT_ATTN_D];
  out->v_head_dim = v[DRT_ATTN_D];
  int64_t osize[4] = {out->batch, heads, out->q_seq, out->v_head_dim};
  DRT_RETURN_IF_ERROR_CTX(drt_attn_layout_shape(&lo, osize, &out->out_shape), "attribute out_layout");
  DRT_RETURN_IF_ERROR_CTX(drt_attn_layout_view(&lo, &out->out_shape, heads, &out->out), "attribute out_layout");
  const drt_attr *sa = drt_node_attr(n, "scale");
  if (sa) {
    out->scale = drt_node_attr_float(n, "scale", 1.0f);
    if (!isfinite(out->scale)) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute scale is not finite");
  } else {
    out->scale = out->head_dim > 0 ? (float)(1.0 / sqrt((double)out->head_dim)) : 1.0f;
  }
  int64_t causal = drt_node_attr_int(n, "causal", 0);
  if (causal != 0 && causal != 1)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute causal must be 0 or 1, got %" PRId64, causal);
  out->causal = causal != 0;
  int64_t mode = drt_node_attr_int(n, "mask_mode", 0);
  if (mode < 0 || mode > 2)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute mask_mode must be 0, 1 or 2, got %" PRId64, mode);
  out->mask_mode = (drt_attn_mask_mode)mode;
  out->mask_fill = drt_node_attr_float(n, "mask_fill", -INFINITY);
  out->has_mask = shapes[3] != NULL;
  if (out->has_mask) {
    const drt_shape *m = shapes[3];
    int64_t target[4] = {out->batch, heads, out->q_seq, out->kv_seq};
    char sb[128];
    if (m->rank > 4)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 3 (mask) has rank %d, expected at most 4", m->rank);
    for (int i = 0; i < m->rank; i++) {
      int64_t d = m->dims[m->rank - 1 - i], t = target[3 - i];
      if (d != t && d != 1)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 3 (mask) %s does not broadcast to (%" PRId64 ", %" PRId64
                         ", %" PRId64 ", %" PRId64 ")", drt_shape_str(m, sb, sizeof sb), target[0], target[1],
                         target[2], target[3]);
    }
  }
  return DRT_OK;
}

static drt_status infer_fused_attention(drt_graph *g, drt_node *n) {
  (void)g;
  const drt_shape *shapes[4] = {NULL, NULL, NULL, NULL};
  for (int i = 0; i < 4; i++) {
    drt_value *v = drt_node_input(n, i);
    shapes[i] = v ? &v->shape : NULL;
  }
  for (int i = 0; i < 3; i++) DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, i, DRT_DT_FLOATS));
  drt_dtype dt = n->inputs[0]->dtype;
  if (n->inputs[1]->dtype != dt || n->inputs[2]->dtype != dt)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "Q, K and V must share a dtype, got %s, %s, %s", drt_dtype_name(dt),
                     drt_dtype_name(n->inputs[1]->dtype), drt_dtype_name(n->inputs[2]->dtype));
  drt_fused_attention a;
  DRT_RETURN_IF_ERROR(drt_fused_attention_resolve(n, shapes, &a));
  if (a.has_mask) {
    uint32_t want = a.mask_mode == DRT_ATTN_MASK_ADD ? DRT_DT_FLOATS : DRT_DT_BIT(DRT_DTYPE_BOOL);
    DRT_RETURN_IF_ERROR_CTX(drt_infer_check_dtype(n, 3, want), "mask_mode %d", (int)a.mask_mode);
  }
  drt_infer_set(n, 0, dt, &a.out_shape);
  return DRT_OK;
}

/* ---- drt.Norm ------------------------------------------------------------------------------ */
static const char *const k_kind_names[] = {"layer", "rms", "group"};
static const char *const k_act_names[] = {"none", "silu", "gelu", "gelu_tanh"};

const char *drt_norm_kind_name(drt_norm_kind k) { return (unsigned)k < 3 ? k_kind_names[k] : "?"; }
const char *drt_norm_act_name(drt_norm_act a) { return (unsigned)a < 4 ? k_act_names[a] : "?"; }

bool drt_norm_kind_parse(const char *s, drt_norm_kind *out) {
  for (int i = 0; i < 3; i++)
    if (s && strcmp(s, k_kind_names[i]) == 0) {
      *out = (drt_norm_kind)i;
      return true;
    }
  return false;
}

bool drt_norm_act_parse(const char *s, drt_norm_act *out) {
  for (int i = 0; i < 4; i++)
    if (s && strcmp(s, k_act_names[i]) == 0) {
      *out = (drt_norm_act)i;
      return true;
    }
  return false;
}

drt_status drt_fused_norm_resolve(const drt_node *n, const drt_shape *x, const drt_shape *const params[DRT_NORM_PARAMS],
                                  drt_fused_norm *out) {
  memset(out, 0, sizeof *out);
  const char *kind = drt_node_attr_string(n, "kind", "layer");
  if (!drt_norm_kind_parse(kind, &out->kind))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute kind '%s' is not layer, rms or group", kind);
  const char *act = drt_node_attr_string(n, "activation", "none");
  if (!drt_norm_act_parse(act, &out->act))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute activation '%s' is not none, silu, gelu or gelu_tanh", act);
  out->eps = drt_node_attr_float(n, "epsilon", 1e-5f);
  if (!(out->eps >= 0) || !isfinite(out->eps))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute epsilon must be finite and non-negative");
  int64_t one_plus = drt_node_attr_int(n, "mod_one_plus", 0);
  if (one_plus != 0 && one_plus != 1)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute mod_one_plus must be 0 or 1, got %" PRId64, one_plus);
  out->mod_one_plus = one_plus != 0;
  if (out->kind == DRT_NORM_GROUP) {
    if (x->rank < 2) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "group norm needs rank >= 2, got %d", x->rank);
    int64_t groups = drt_node_attr_int(n, "num_groups", 0), c = x->dims[1];
    if (groups < 1 || c % groups != 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute num_groups %" PRId64 " does not divide the %" PRId64
                       " channels", groups, c);
    out->split = 2;
    out->planes_per_stat = c / groups;
  } else {
    int axis;
    DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_node_attr_int(n, "axis", -1), x->rank, &axis), "attribute axis");
    out->split = axis;
    out->planes_per_stat = 1;
  }
  out->planes = 1;
  out->plane = 1;
  for (int d = 0; d < x->rank; d++) {
    if (d < out->split) out->planes *= x->dims[d];
    else out->plane *= x->dims[d];
  }
  static const char *const names[] = {"scale", "bias", "mod_scale", "mod_shift"};
  for (int i = 0; i < DRT_NORM_PARAMS; i++) {
    if (!params[i]) continue;
    drt_shape b;
    char sp[128], sx[128];
    drt_status st = drt_broadcast_shapes(x, params[i], &b);
    if (st || !drt_shape_equal(&b, x)) {
      drt_status_free(st);
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input %d (%s) %s does not broadcast to the data shape %s", i + 1,
                       names[i], drt_shape_str(params[i], sp, sizeof sp), drt_shape_str(x, sx, sizeof sx));
    }
  }
  return DRT_OK;
}

static drt_status infer_fused_norm(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_FLOATS));
  const drt_shape *params[DRT_NORM_PARAMS] = {NULL, NULL, NULL, NULL};
  for (int i = 0; i < DRT_NORM_PARAMS; i++) {
    drt_value *v = drt_node_input(n, i + 1);
    if (!v) continue;
    if (v->dtype != n->inputs[0]->dtype)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input %d '%s' has dtype %s, the data is %s", i + 1, v->name,
                       drt_dtype_name(v->dtype), drt_dtype_name(n->inputs[0]->dtype));
    params[i] = &v->shape;
  }
  drt_fused_norm f;
  DRT_RETURN_IF_ERROR(drt_fused_norm_resolve(n, &n->inputs[0]->shape, params, &f));
  drt_infer_set(n, 0, n->inputs[0]->dtype, &n->inputs[0]->shape);
  return DRT_OK;
}

/* drt.CfgCombine (ir/cfg_combine.h) */
static drt_status infer_cfg_combine(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_FLOATS));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, DRT_DT_FLOATS));
  if (drt_shape_numel(&n->inputs[1]->shape) != 1)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 1 (guidance scale) '%s' must have one element",
                     n->inputs[1]->name);
  drt_cfg_combine c;
  DRT_RETURN_IF_ERROR(drt_cfg_combine_resolve(n, &n->inputs[0]->shape, &c));
  bool apg = c.mode.kind == DRT_CFG_APG;
  drt_value *state = drt_node_input(n, 2);
  if (apg != (state != NULL))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "mode %s %s a state input (input 2)", drt_cfg_mode_name(c.mode.kind),
                     apg ? "needs" : "takes no");
  if (state) {
    char a[128], b[128];
    if (state->dtype != n->inputs[0]->dtype || !drt_shape_equal(&state->shape, &c.y))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 2 (state) '%s' is %s[%s], expected %s[%s]", state->name,
                       drt_dtype_name(state->dtype), drt_shape_str(&state->shape, a, sizeof a),
                       drt_dtype_name(n->inputs[0]->dtype), drt_shape_str(&c.y, b, sizeof b));
  }
  if (n->num_outputs != c.num_outputs)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "mode %s has %d output(s), the node has %d",
                     drt_cfg_mode_name(c.mode.kind), c.num_outputs, n->num_outputs);
  for (int i = 0; i < n->num_outputs; i++) drt_infer_set(n, i, n->inputs[0]->dtype, &c.y);
  return DRT_OK;
}

const drt_infer_entry drt_infer_table_fused[] = {
    {DRT_OP_FUSED_ATTENTION, infer_fused_attention},
    {DRT_OP_FUSED_NORM, infer_fused_norm},
    {DRT_OP_FUSED_CFG_COMBINE, infer_cfg_combine},
    {DRT_OP_FUSED_ELEMENTWISE, drt_infer_fused_elementwise}, /* ir/ew_program.c */
    {DRT_OP_FUSED_GEMM, drt_infer_fused_gemm},
    {DRT_OP_FUSED_CONV, drt_infer_fused_conv},
    {DRT_OP_COUNT_, NULL},
};
