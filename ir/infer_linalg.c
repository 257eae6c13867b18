/* Shape/dtype inference for the linalg op family: MatMul, Gemm, Einsum, Conv, ConvTranspose,
 * MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool. Also the window geometry and the
 * Einsum parser shared with the CPU kernels (ir/infer_linalg.h). */
#include "ir/infer_linalg.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ir/infer.h"

#define MATMUL_DTYPES                                                                        \
  (DRT_DT_FLOATS | DRT_DT_BIT(DRT_DTYPE_INT32) | DRT_DT_BIT(DRT_DTYPE_INT64) |              \
   DRT_DT_BIT(DRT_DTYPE_UINT32) | DRT_DT_BIT(DRT_DTYPE_UINT64))
#define EINSUM_DTYPES (DRT_DT_FLOATS | DRT_DT_INTS)
#define MAXPOOL_DTYPES (DRT_DT_FLOATS | DRT_DT_BIT(DRT_DTYPE_INT8) | DRT_DT_BIT(DRT_DTYPE_UINT8))

/* Requires inputs i and j to have the same dtype. */
static drt_status same_dtype(const drt_node *n, int i, int j) {
  const drt_value *a = n->inputs[i], *b = n->inputs[j];
  if (a->dtype != b->dtype)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input %d '%s' has dtype %s but input %d '%s' has dtype %s", i,
                     a->name, drt_dtype_name(a->dtype), j, b->name, drt_dtype_name(b->dtype));
  return DRT_OK;
}

/* ---------------------------------------------------------------- MatMul, Gemm */

static drt_status infer_matmul(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, MATMUL_DTYPES));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, MATMUL_DTYPES));
  DRT_RETURN_IF_ERROR(same_dtype(n, 0, 1));
  const drt_shape *a = &n->inputs[0]->shape, *b = &n->inputs[1]->shape;
  char sa[128], sb[128];
  for (int i = 0; i < 2; i++)
    if (n->inputs[i]->shape.rank == 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input %d '%s' is a scalar; MatMul needs rank >= 1", i,
                       n->inputs[i]->name);
  int64_t ka = a->dims[a->rank - 1];
  int64_t kb = b->rank == 1 ? b->dims[0] : b->dims[b->rank - 2];
  if (ka != kb)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                     "inner dimensions do not match: input 0 has shape %s (K=%" PRId64 "), input 1 has shape %s (K=%" PRId64
                     ")",
                     drt_shape_str(a, sa, sizeof sa), ka, drt_shape_str(b, sb, sizeof sb), kb);
  drt_shape ba = {0}, bb = {0}, o;
  ba.rank = a->rank > 2 ? a->rank - 2 : 0;
  for (int i = 0; i < ba.rank; i++) ba.dims[i] = a->dims[i];
  bb.rank = b->rank > 2 ? b->rank - 2 : 0;
  for (int i = 0; i < bb.rank; i++) bb.dims[i] = b->dims[i];
  DRT_RETURN_IF_ERROR_CTX(drt_broadcast_shapes(&ba, &bb, &o), "batch dimensions of inputs 0 (%s) and 1 (%s)",
                          drt_shape_str(a, sa, sizeof sa), drt_shape_str(b, sb, sizeof sb));
  if (a->rank >= 2) o.dims[o.rank++] = a->dims[a->rank - 2];
  if (b->rank >= 2) o.dims[o.rank++] = b->dims[b->rank - 1];
  drt_infer_set(n, 0, n->inputs[0]->dtype, &o);
  return DRT_OK;
}

/* MatMulInteger (A, B, a_zero_point, b_zero_point -> int32) and QLinearMatMul (a, a_scale,
 * a_zp, b, b_scale, b_zp, y_scale, y_zp -> y_zp's dtype): rank >= 2 operands with numpy batch
 * broadcasting; zero points and scales are scalars, per row of A or per column of B. */
static drt_status infer_int_matmul(drt_graph *g, drt_node *n) {
  (void)g;
  bool ql = n->op == DRT_OP_QLINEAR_MATMUL;
  const uint32_t q8 = DRT_DT_BIT(DRT_DTYPE_INT8) | DRT_DT_BIT(DRT_DTYPE_UINT8);
  int ia = 0, ib = ql ? 3 : 1;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, ia, q8));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, ib, q8));
  const drt_shape *a = &n->inputs[ia]->shape, *b = &n->inputs[ib]->shape;
  char sa[128], sb[128];
  if (a->rank < 2 || b->rank < 2 || a->dims[a->rank - 1] != b->dims[b->rank - 2])
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "operands %s and %s: need rank >= 2 and matching inner dims",
                     drt_shape_str(a, sa, sizeof sa), drt_shape_str(b, sb, sizeof sb));
  int64_t M = a->dims[a->rank - 2], N = b->dims[b->rank - 1];
  for (int i = 0; i < n->num_inputs; i++) {
    const drt_value *v = n->inputs[i];
    if (!v || i == ia || i == ib) continue;
    bool scale = ql && (i == 1 || i == 4 || i == 6);
    DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, i, scale ? DRT_DT_FLOATS : q8));
    /* per tensor (one value), per row of A (M) or per column of B (N); y's parameters per tensor */
    bool of_a = ql ? i < 3 : i == 2, of_y = ql && i >= 6;
    int64_t cnt = drt_shape_numel(&v->shape), per = of_a ? M : N;
    if (cnt != 1 && (of_y || cnt % per != 0 || cnt == 0))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input %d '%s' has %" PRId64 " values: expected 1%s", i, v->name, cnt,
                       of_y ? "" : of_a ? " or one per row of A" : " or one per column of B");
  }
  drt_shape ba = {0}, bb = {0}, o;
  ba.rank = a->rank - 2;
  for (int i = 0; i < ba.rank; i++) ba.dims[i] = a->dims[i];
  bb.rank = b->rank - 2;
  for (int i = 0; i < bb.rank; i++) bb.dims[i] = b->dims[i];
  DRT_RETURN_IF_ERROR(drt_broadcast_shapes(&ba, &bb, &o));
  o.dims[o.rank++] = a->dims[a->rank - 2];
  o.dims[o.rank++] = b->dims[b->rank - 1];
  drt_infer_set(n, 0, ql ? n->inputs[7]->dtype : DRT_DTYPE_INT32, &o);
  return DRT_OK;
}

/* ConvInteger (x, w, x_zero_point, w_zero_point -> int32) and QLinearConv (x, x_scale, x_zp, w,
 * w_scale, w_zp, y_scale, y_zp, B int32 -> y_zp's dtype): Conv's geometry; w's zero point and
 * scale per tensor or per output channel, the others per tensor. */
static drt_status infer_int_conv(drt_graph *gr, drt_node *n) {
  (void)gr;
  bool ql = n->op == DRT_OP_QLINEAR_CONV;
  const uint32_t q8 = DRT_DT_BIT(DRT_DTYPE_INT8) | DRT_DT_BIT(DRT_DTYPE_UINT8);
  int iw = ql ? 3 : 1;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, q8));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, iw, q8));
  const drt_value *bias = ql ? drt_node_input(n, 8) : NULL;
  drt_window_geom g;
  DRT_RETURN_IF_ERROR(drt_window_geom_compute(n, &n->inputs[0]->shape, &n->inputs[iw]->shape, bias ? &bias->shape : NULL, &g));
  for (int i = 0; i < n->num_inputs; i++) {
    const drt_value *v = n->inputs[i];
    if (!v || i == 0 || i == iw) continue;
    bool scale = ql && (i == 1 || i == 4 || i == 6);
    DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, i, i == 8 ? DRT_DT_BIT(DRT_DTYPE_INT32) : scale ? DRT_DT_FLOATS : q8));
    bool of_w = ql ? (i == 4 || i == 5) : i == 3;
    int64_t cnt = drt_shape_numel(&v->shape);
    if (i != 8 && cnt != 1 && !(of_w && cnt == g.out_channels))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input %d '%s' has %" PRId64 " values: expected 1%s", i, v->name, cnt,
                       of_w ? " or one per output channel" : "");
  }
  drt_shape o = drt_window_geom_out_shape(&g);
  drt_infer_set(n, 0, ql ? n->inputs[7]->dtype : DRT_DTYPE_INT32, &o);
  return DRT_OK;
}

static drt_status infer_gemm(drt_graph *g, drt_node *n) {
  (void)g;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, MATMUL_DTYPES));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, MATMUL_DTYPES));
  DRT_RETURN_IF_ERROR(same_dtype(n, 0, 1));
  const drt_shape *a = &n->inputs[0]->shape, *b = &n->inputs[1]->shape;
  char sa[128], sb[128];
  for (int i = 0; i < 2; i++)
    if (n->inputs[i]->shape.rank != 2)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input %d '%s' has shape %s, expected a matrix (rank 2)", i,
                       n->inputs[i]->name, drt_shape_str(&n->inputs[i]->shape, sa, sizeof sa));
  bool ta = drt_node_attr_int(n, "transA", 0) != 0, tb = drt_node_attr_int(n, "transB", 0) != 0;
  int64_t m = ta ? a->dims[1] : a->dims[0], ka = ta ? a->dims[0] : a->dims[1];
  int64_t kb = tb ? b->dims[1] : b->dims[0], nn = tb ? b->dims[0] : b->dims[1];
  if (ka != kb)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                     "inner dimensions do not match: input 0 has shape %s (transA=%d, K=%" PRId64
                     "), input 1 has shape %s (transB=%d, K=%" PRId64 ")",
                     drt_shape_str(a, sa, sizeof sa), (int)ta, ka, drt_shape_str(b, sb, sizeof sb), (int)tb, kb);
  drt_shape o = {0};
  o.rank = 2;
  o.dims[0] = m;
  o.dims[1] = nn;
  const drt_value *c = drt_node_input(n, 2);
  if (c) {
    DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 2, MATMUL_DTYPES));
    DRT_RETURN_IF_ERROR(same_dtype(n, 0, 2));
    bool ok = c->shape.rank <= 2;
    for (int i = 0; ok && i < c->shape.rank; i++) {
      int64_t d = c->shape.dims[i], want = o.dims[2 - c->shape.rank + i];
      if (d != 1 && d != want) ok = false;
    }
    if (!ok)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 2 (C) has shape %s, which does not broadcast to %s",
                       drt_shape_str(&c->shape, sa, sizeof sa), drt_shape_str(&o, sb, sizeof sb));
  }
  drt_infer_set(n, 0, n->inputs[0]->dtype, &o);
  return DRT_OK;
}

/* ---------------------------------------------------------------- Einsum */

static int label_of_char(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return 26 + (c - 'a');
  return -1;
}

static char char_of_label(int l) {
  if (l < 26) return (char)('A' + l);
  if (l < 52) return (char)('a' + l - 26);
  return '.';
}

/* One term of the equation: letter labels in order, with the ellipsis position (-1: none). */
typedef struct einsum_term {
  int num_letters;
  int8_t letters[DRT_EINSUM_MAX_LABELS];
  int ellipsis_at; /* index into letters where "..." sits */
} einsum_term;

static drt_status parse_term(const char *s, size_t len, int which, einsum_term *t) {
  t->num_letters = 0;
  t->ellipsis_at = -1;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == '.') {
      if (i + 2 >= len || s[i + 1] != '.' || s[i + 2] != '.' || t->ellipsis_at >= 0) {
        if (which < 0)
          return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "the output term has a malformed or repeated '...'");
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "term %d has a malformed or repeated '...'", which);
      }
      t->ellipsis_at = t->num_letters;
      i += 2;
      continue;
    }
    int l = label_of_char(c);
    if (l < 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "invalid character '%c' in the equation", c);
    if (t->num_letters >= DRT_EINSUM_MAX_LABELS)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "equation term is too long");
    t->letters[t->num_letters++] = (int8_t)l;
  }
  return DRT_OK;
}

drt_status drt_einsum_parse(const char *equation, int num_operands, const drt_shape *const *shapes,
                            drt_einsum_spec *out) {
  memset(out, 0, sizeof *out);
  if (num_operands < 1 || num_operands > DRT_EINSUM_MAX_OPERANDS)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "Einsum with %d operands (at most %d supported)", num_operands,
                     DRT_EINSUM_MAX_OPERANDS);
  /* Strip spaces. */
  char eq[512];
  size_t len = 0;
  for (const char *p = equation; *p; p++) {
    if (*p == ' ') continue;
    if (len + 1 >= sizeof eq) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "equation is too long");
    eq[len++] = *p;
  }
  eq[len] = 0;
  const char *arrow = strstr(eq, "->");
  size_t lhs_len = arrow ? (size_t)(arrow - eq) : len;
  einsum_term terms[DRT_EINSUM_MAX_OPERANDS];
  int nt = 0;
  size_t start = 0;
  for (size_t i = 0; i <= lhs_len; i++) {
    if (i == lhs_len || eq[i] == ',') {
      if (nt >= num_operands)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "equation '%s' has more terms than the node's %d inputs",
                         equation, num_operands);
      DRT_RETURN_IF_ERROR(parse_term(eq + start, i - start, nt, &terms[nt]));
      nt++;
      start = i + 1;
    }
  }
  if (nt != num_operands)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "equation '%s' has %d input terms but the node has %d inputs",
                     equation, nt, num_operands);
  /* Ellipsis rank: the broadcast of every operand's ellipsis dims. */
  int ell = 0;
  for (int t = 0; t < nt; t++) {
    int r = shapes[t]->rank, nl = terms[t].num_letters;
    if (terms[t].ellipsis_at < 0) {
      if (nl != r)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "term %d of equation '%s' has %d labels but input %d has rank %d",
                         t, equation, nl, t, r);
    } else {
      if (nl > r)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                         "term %d of equation '%s' has %d labels besides '...' but input %d has rank %d", t, equation, nl,
                         t, r);
      if (r - nl > ell) ell = r - nl;
    }
  }
  out->num_operands = nt;
  out->num_labels = 52 + ell;
  for (int l = 0; l < DRT_EINSUM_MAX_LABELS; l++) out->label_size[l] = -1;
  int count[DRT_EINSUM_MAX_LABELS] = {0};
  for (int t = 0; t < nt; t++) {
    const einsum_term *tm = &terms[t];
    int r = shapes[t]->rank, e = tm->ellipsis_at >= 0 ? r - tm->num_letters : 0, k = 0;
    for (int i = 0; i <= tm->num_letters; i++) {
      if (i == tm->ellipsis_at)
        for (int j = 0; j < e; j++) out->op_labels[t][k++] = (int8_t)(52 + ell - e + j);
      if (i < tm->num_letters) out->op_labels[t][k++] = tm->letters[i];
    }
    out->op_rank[t] = r;
    for (int i = 0; i < r; i++) {
      int l = out->op_labels[t][i];
      int64_t d = shapes[t]->dims[i];
      if (l < 52) count[l]++;
      int64_t *ls = &out->label_size[l];
      if (*ls < 0 || *ls == 1) {
        if (*ls < 0 || d != 1) *ls = d;
      } else if (d != *ls && d != 1) {
        if (l < 52)
          return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                           "label '%c' has size %" PRId64 " in input %d but size %" PRId64 " elsewhere",
                           char_of_label(l), d, t, *ls);
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                         "the '...' dims of input %d (size %" PRId64 ") do not broadcast with the other inputs (size %" PRId64
                         ")",
                         t, d, *ls);
      }
    }
  }
  /* Output labels. */
  int orank = 0;
  int8_t ol[DRT_EINSUM_MAX_LABELS + DRT_MAX_RANK];
  if (arrow) {
    einsum_term o;
    DRT_RETURN_IF_ERROR(parse_term(arrow + 2, strlen(arrow + 2), -1, &o));
    bool seen[DRT_EINSUM_MAX_LABELS] = {false};
    for (int i = 0; i <= o.num_letters; i++) {
      if (i == o.ellipsis_at)
        for (int j = 0; j < ell; j++) ol[orank++] = (int8_t)(52 + j);
      if (i < o.num_letters) {
        int l = o.letters[i];
        if (out->label_size[l] < 0)
          return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "output label '%c' of equation '%s' appears in no input",
                           char_of_label(l), equation);
        if (seen[l])
          return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "output label '%c' appears twice in equation '%s'",
                           char_of_label(l), equation);
        seen[l] = true;
        ol[orank++] = (int8_t)l;
      }
    }
  } else {
    for (int j = 0; j < ell; j++) ol[orank++] = (int8_t)(52 + j);
    for (int l = 0; l < 52; l++)
      if (count[l] == 1) ol[orank++] = (int8_t)l;
  }
  if (orank > DRT_MAX_RANK)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "Einsum output rank %d exceeds the maximum rank %d", orank, DRT_MAX_RANK);
  out->out_rank = orank;
  memcpy(out->out_labels, ol, (size_t)orank);
  return DRT_OK;
}

static drt_status infer_einsum(drt_graph *g, drt_node *n) {
  (void)g;
  const char *eq = drt_node_attr_string(n, "equation", NULL);
  if (!eq) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'equation' is required");
  if (n->num_inputs > DRT_EINSUM_MAX_OPERANDS)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "Einsum with %d operands (at most %d supported)", n->num_inputs,
                     DRT_EINSUM_MAX_OPERANDS);
  const drt_shape *shapes[DRT_EINSUM_MAX_OPERANDS];
  for (int i = 0; i < n->num_inputs; i++) {
    DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, i, EINSUM_DTYPES));
    if (i) DRT_RETURN_IF_ERROR(same_dtype(n, 0, i));
    shapes[i] = &n->inputs[i]->shape;
  }
  drt_einsum_spec sp;
  DRT_RETURN_IF_ERROR(drt_einsum_parse(eq, n->num_inputs, shapes, &sp));
  drt_shape o = {0};
  o.rank = sp.out_rank;
  for (int i = 0; i < sp.out_rank; i++) o.dims[i] = sp.label_size[sp.out_labels[i]];
  drt_infer_set(n, 0, n->inputs[0]->dtype, &o);
  return DRT_OK;
}

/* ---------------------------------------------------------------- window geometry */

static const char *ints_str(const int64_t *v, int64_t cnt, char *buf, size_t size) {
  size_t off = 0;
  buf[0] = 0;
  off += (size_t)snprintf(buf, size, "[");
  for (int64_t i = 0; i < cnt && off < size; i++)
    off += (size_t)snprintf(buf + off, size - off, "%s%" PRId64, i ? ", " : "", v[i]);
  if (off < size) snprintf(buf + off, size - off, "]");
  return buf;
}

/* Reads an optional INTS attribute that must have `want` entries, each >= min. */
static drt_status spatial_attr(const drt_node *n, const char *name, int64_t want, int64_t min, const int64_t **vals) {
  int64_t cnt;
  const int64_t *v = drt_node_attr_ints(n, name, &cnt);
  *vals = NULL;
  if (!v || cnt == 0) return DRT_OK;
  char buf[160];
  if (cnt != want)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute '%s' %s has %" PRId64 " values, expected %" PRId64, name,
                     ints_str(v, cnt, buf, sizeof buf), cnt, want);
  for (int64_t i = 0; i < cnt; i++)
    if (v[i] < min)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute '%s' %s has a value below %" PRId64, name,
                       ints_str(v, cnt, buf, sizeof buf), min);
  *vals = v;
  return DRT_OK;
}

drt_status drt_window_geom_compute(const drt_node *n, const drt_shape *x, const drt_shape *w, const drt_shape *b,
                                   drt_window_geom *g) {
  memset(g, 0, sizeof *g);
  char s1[128], s2[160];
  bool conv = n->op == DRT_OP_CONV || n->op == DRT_OP_CONV_INTEGER || n->op == DRT_OP_QLINEAR_CONV,
       convt = n->op == DRT_OP_CONV_TRANSPOSE;
  bool has_w = conv || convt;
  if (!has_w && n->op != DRT_OP_MAX_POOL && n->op != DRT_OP_AVERAGE_POOL && n->op != DRT_OP_LP_POOL)
    return DRT_ERROR(DRT_STATUS_INTERNAL, "window geometry requested for op %s", drt_op_name(n->op));
  if (x->rank < 3)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 0 (X) has shape %s, expected rank >= 3 (N, C, spatial...)",
                     drt_shape_str(x, s1, sizeof s1));
  int nsp = x->rank - 2;
  g->nsp = nsp;
  g->batch = x->dims[0];
  g->in_channels = x->dims[1];
  g->out_channels = x->dims[1];
  g->group = 1;
  for (int i = 0; i < nsp; i++) g->in[i] = x->dims[2 + i];

  const int64_t *ks, *strides, *dil, *pads, *opad = NULL;
  DRT_RETURN_IF_ERROR(spatial_attr(n, "kernel_shape", nsp, 1, &ks));
  DRT_RETURN_IF_ERROR(spatial_attr(n, "strides", nsp, 1, &strides));
  DRT_RETURN_IF_ERROR(spatial_attr(n, "dilations", nsp, 1, &dil));
  DRT_RETURN_IF_ERROR(spatial_attr(n, "pads", 2 * nsp, 0, &pads));
  if (convt) DRT_RETURN_IF_ERROR(spatial_attr(n, "output_padding", nsp, 0, &opad));

  if (has_w) {
    if (!w || w->rank != x->rank)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 1 (W) has shape %s, expected rank %d (the rank of X %s)",
                       w ? drt_shape_str(w, s1, sizeof s1) : "?", x->rank, drt_shape_str(x, s2, sizeof s2));
    int64_t group = drt_node_attr_int(n, "group", 1);
    if (group < 1) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'group' is %" PRId64 ", expected >= 1", group);
    g->group = group;
    int64_t c = x->dims[1];
    if (c % group != 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                       "input 0 (X) has %" PRId64 " channels, which is not divisible by group %" PRId64, c, group);
    if (conv) {
      if (w->dims[0] % group != 0)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                         "input 1 (W) has %" PRId64 " output channels, which is not divisible by group %" PRId64,
                         w->dims[0], group);
      if (w->dims[1] != c / group)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                         "input 1 (W) has %" PRId64 " input channels per group, expected %" PRId64
                         " (%" PRId64 " channels of X / group %" PRId64 ")",
                         w->dims[1], c / group, c, group);
      g->out_channels = w->dims[0];
    } else {
      if (w->dims[0] != c)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                         "input 1 (W) has %" PRId64 " input channels, expected %" PRId64 " (the channels of X)",
                         w->dims[0], c);
      g->out_channels = w->dims[1] * group;
    }
    for (int i = 0; i < nsp; i++) {
      g->kernel[i] = w->dims[2 + i];
      if (ks && ks[i] != w->dims[2 + i])
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                         "attribute 'kernel_shape' %s does not match the spatial dims of input 1 (W) %s",
                         ints_str(ks, nsp, s2, sizeof s2), drt_shape_str(w, s1, sizeof s1));
    }
    if (b) {
      if (b->rank != 1 || b->dims[0] != g->out_channels)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 2 (B) has shape %s, expected [%" PRId64 "]",
                         drt_shape_str(b, s1, sizeof s1), g->out_channels);
    }
  } else {
    if (!ks) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'kernel_shape' is required");
    for (int i = 0; i < nsp; i++) g->kernel[i] = ks[i];
    int64_t cm = drt_node_attr_int(n, "ceil_mode", 0);
    g->ceil_mode = cm != 0;
    g->count_include_pad = n->op == DRT_OP_AVERAGE_POOL && drt_node_attr_int(n, "count_include_pad", 0) != 0;
    if (n->op == DRT_OP_MAX_POOL) {
      int64_t so = drt_node_attr_int(n, "storage_order", 0);
      if (so != 0 && so != 1)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'storage_order' is %" PRId64 ", expected 0 or 1", so);
    }
  }
  for (int i = 0; i < nsp; i++) {
    g->stride[i] = strides ? strides[i] : 1;
    g->dilation[i] = dil ? dil[i] : 1;
    g->pad_begin[i] = pads ? pads[i] : 0;
    g->pad_end[i] = pads ? pads[nsp + i] : 0;
  }
  /* Bounds that keep the geometry below in int64 (each product of two terms stays under 2^63). */
  const int64_t lim = (int64_t)1 << 31;
  for (int i = 0; i < nsp; i++) {
    int64_t op = opad ? opad[i] : 0;
    if (g->in[i] > lim || g->kernel[i] > lim || g->stride[i] > lim || g->dilation[i] > lim || g->pad_begin[i] > lim ||
        g->pad_end[i] > lim || op > lim || g->kernel[i] < 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                       "spatial axis %d: input %" PRId64 ", kernel %" PRId64 ", stride %" PRId64 ", dilation %" PRId64
                       ", pads %" PRId64 "+%" PRId64 " or output padding %" PRId64 " is above 2^31",
                       i, g->in[i], g->kernel[i], g->stride[i], g->dilation[i], g->pad_begin[i], g->pad_end[i], op);
  }

  const char *ap = drt_node_attr_string(n, "auto_pad", "NOTSET");
  enum { PAD_NOTSET, PAD_VALID, PAD_SAME_UPPER, PAD_SAME_LOWER } mode;
  if (strcmp(ap, "NOTSET") == 0 || ap[0] == 0)
    mode = PAD_NOTSET;
  else if (strcmp(ap, "VALID") == 0)
    mode = PAD_VALID;
  else if (strcmp(ap, "SAME_UPPER") == 0)
    mode = PAD_SAME_UPPER;
  else if (strcmp(ap, "SAME_LOWER") == 0)
    mode = PAD_SAME_LOWER;
  else
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                     "attribute 'auto_pad' is '%s', expected NOTSET, VALID, SAME_UPPER or SAME_LOWER", ap);

  if (convt) {
    int64_t oscnt = 0;
    const int64_t *os = drt_node_attr_ints(n, "output_shape", &oscnt);
    if (os && oscnt > 0) {
      if (oscnt == nsp + 2)
        os += 2; /* some exporters write the full (N, C, spatial...) shape */
      else if (oscnt != nsp)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'output_shape' %s has %" PRId64 " values, expected %d",
                         ints_str(os, oscnt, s2, sizeof s2), oscnt, nsp);
    } else {
      os = NULL;
    }
    for (int i = 0; i < nsp; i++) {
      int64_t s = g->stride[i], dk = (g->kernel[i] - 1) * g->dilation[i] + 1, op = opad ? opad[i] : 0;
      int64_t full = s * (g->in[i] - 1) + op + dk;
      if (os || mode == PAD_SAME_UPPER || mode == PAD_SAME_LOWER) {
        int64_t target = os ? os[i] : g->in[i] * s;
        if (os && target > lim)
          return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'output_shape' %s has a value above 2^31",
                           ints_str(os, nsp, s2, sizeof s2));
        if (target < 1)
          return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute 'output_shape' %s has a value below 1",
                           ints_str(os, nsp, s2, sizeof s2));
        int64_t total = full - target;
        if (total < 0) total = 0;
        if (mode == PAD_SAME_UPPER) {
          g->pad_begin[i] = total / 2;
          g->pad_end[i] = total - total / 2;
        } else {
          g->pad_begin[i] = total - total / 2;
          g->pad_end[i] = total / 2;
        }
        g->out[i] = target;
      } else {
        if (mode == PAD_VALID) g->pad_begin[i] = g->pad_end[i] = 0;
        g->out[i] = full - g->pad_begin[i] - g->pad_end[i];
      }
    }
  } else {
    for (int i = 0; i < nsp; i++) {
      int64_t s = g->stride[i], dk = (g->kernel[i] - 1) * g->dilation[i] + 1, in = g->in[i];
      if (mode == PAD_SAME_UPPER || mode == PAD_SAME_LOWER) {
        int64_t o = (in + s - 1) / s;
        int64_t total = (o - 1) * s + dk - in;
        if (total < 0) total = 0;
        g->pad_begin[i] = mode == PAD_SAME_UPPER ? total / 2 : total - total / 2;
        g->pad_end[i] = total - g->pad_begin[i];
        g->out[i] = o;
      } else {
        if (mode == PAD_VALID) g->pad_begin[i] = g->pad_end[i] = 0;
        int64_t span = in + g->pad_begin[i] + g->pad_end[i] - dk;
        if (span < 0) {
          g->out[i] = 0;
        } else if (g->ceil_mode && mode == PAD_NOTSET) {
          int64_t o = (span + s - 1) / s + 1;
          /* the last window must start inside the input or the leading padding */
          if ((o - 1) * s >= in + g->pad_begin[i]) o--;
          g->out[i] = o;
        } else {
          g->out[i] = span / s + 1;
        }
      }
    }
  }
  for (int i = 0; i < nsp; i++)
    if (g->out[i] < 1 && g->in[i] > 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                       "spatial axis %d: input size %" PRId64 " with kernel %" PRId64 ", dilation %" PRId64
                       ", stride %" PRId64 " and pads %" PRId64 "+%" PRId64 " gives an empty output",
                       i, g->in[i], g->kernel[i], g->dilation[i], g->stride[i], g->pad_begin[i], g->pad_end[i]);
  return DRT_OK;
}

drt_shape drt_window_geom_out_shape(const drt_window_geom *g) {
  drt_shape s = {0};
  s.rank = g->nsp + 2;
  s.dims[0] = g->batch;
  s.dims[1] = g->out_channels;
  for (int i = 0; i < g->nsp; i++) s.dims[2 + i] = g->out[i] < 0 ? 0 : g->out[i];
  return s;
}

bool drt_window_geom_to3(const drt_window_geom *g, drt_window3 *o) {
  if (g->nsp < 0 || g->nsp > 3) return false;
  int off = 3 - g->nsp;
  for (int i = 0; i < 3; i++) {
    int j = i - off;
    o->in[i] = j >= 0 ? g->in[j] : 1;
    o->out[i] = j >= 0 ? g->out[j] : 1;
    o->k[i] = j >= 0 ? g->kernel[j] : 1;
    o->s[i] = j >= 0 ? g->stride[j] : 1;
    o->d[i] = j >= 0 ? g->dilation[j] : 1;
    o->pb[i] = j >= 0 ? g->pad_begin[j] : 0;
    o->pe[i] = j >= 0 ? g->pad_end[j] : 0;
  }
  return true;
}

/* ---------------------------------------------------------------- Conv, ConvTranspose, pools */

static drt_status infer_conv(drt_graph *gr, drt_node *n) {
  (void)gr;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_FLOATS));
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 1, DRT_DT_FLOATS));
  DRT_RETURN_IF_ERROR(same_dtype(n, 0, 1));
  const drt_value *b = drt_node_input(n, 2);
  if (b) {
    DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 2, DRT_DT_FLOATS));
    DRT_RETURN_IF_ERROR(same_dtype(n, 0, 2));
  }
  drt_window_geom g;
  DRT_RETURN_IF_ERROR(drt_window_geom_compute(n, &n->inputs[0]->shape, &n->inputs[1]->shape, b ? &b->shape : NULL, &g));
  drt_shape o = drt_window_geom_out_shape(&g);
  drt_infer_set(n, 0, n->inputs[0]->dtype, &o);
  return DRT_OK;
}

static drt_status infer_pool(drt_graph *gr, drt_node *n) {
  (void)gr;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, n->op == DRT_OP_MAX_POOL ? MAXPOOL_DTYPES : DRT_DT_FLOATS));
  drt_window_geom g;
  DRT_RETURN_IF_ERROR(drt_window_geom_compute(n, &n->inputs[0]->shape, NULL, NULL, &g));
  drt_shape o = drt_window_geom_out_shape(&g);
  drt_infer_set(n, 0, n->inputs[0]->dtype, &o);
  if (n->num_outputs > 1) drt_infer_set(n, 1, DRT_DTYPE_INT64, &o);
  return DRT_OK;
}

static drt_status infer_global_pool(drt_graph *gr, drt_node *n) {
  (void)gr;
  DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, 0, DRT_DT_FLOATS));
  drt_shape o = n->inputs[0]->shape;
  char s1[128];
  if (o.rank < 2)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 0 (X) has shape %s, expected rank >= 2 (N, C, spatial...)",
                     drt_shape_str(&o, s1, sizeof s1));
  for (int i = 2; i < o.rank; i++) o.dims[i] = 1;
  drt_infer_set(n, 0, n->inputs[0]->dtype, &o);
  return DRT_OK;
}

static bool same_name_nocase(const char *a, const char *b) {
  for (; *a && *b; a++, b++) {
    char x = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a, y = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;
    if (x != y) return false;
  }
  return *a == *b;
}

drt_status drt_rnn_resolve(const drt_node *n, const drt_shape *const sh[8], drt_rnn_geom *g) {
  char a[128];
  memset(g, 0, sizeof *g);
  g->lstm = n->op == DRT_OP_LSTM;
  g->gates = n->op == DRT_OP_RNN ? 1 : n->op == DRT_OP_GRU ? 3 : 4;
  const char *dir = drt_node_attr_string(n, "direction", "forward");
  g->dirs = strcmp(dir, "bidirectional") == 0 ? 2 : 1;
  g->reverse = strcmp(dir, "reverse") == 0;
  if (g->dirs == 1 && !g->reverse && strcmp(dir, "forward") != 0)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute direction '%s' is not forward, reverse or bidirectional", dir);
  g->layout = drt_node_attr_int(n, "layout", 0) != 0;
  g->clip = drt_node_attr(n, "clip") ? drt_node_attr_float(n, "clip", 0) : 0;
  const drt_shape *x = sh[0], *w = sh[1], *r = sh[2];
  if (x->rank != 3 || w->rank != 3 || r->rank != 3)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "X, W and R must be rank 3, got X %s", drt_shape_str(x, a, sizeof a));
  g->seq = g->layout ? x->dims[1] : x->dims[0];
  g->batch = g->layout ? x->dims[0] : x->dims[1];
  g->input = x->dims[2];
  g->hidden = r->dims[2];
  int64_t hs = drt_node_attr_int(n, "hidden_size", g->hidden);
  if (hs != g->hidden || w->dims[0] != g->dirs || r->dims[0] != g->dirs || w->dims[1] != g->gates * hs ||
      r->dims[1] != g->gates * hs || w->dims[2] != g->input)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "W must be [%" PRId64 ", %" PRId64 ", %" PRId64 "] and R [%" PRId64 ", %" PRId64 ", %" PRId64 "] (hidden_size %" PRId64 ")",
                     g->dirs, g->gates * hs, g->input, g->dirs, g->gates * hs, hs, hs);
  int64_t bw = 2 * g->gates * hs;
  if (sh[3] && (sh[3]->rank != 2 || sh[3]->dims[0] != g->dirs || sh[3]->dims[1] != bw))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "B must be [%" PRId64 ", %" PRId64 "]", g->dirs, bw);
  if (sh[4] && (sh[4]->rank != 1 || sh[4]->dims[0] != g->batch))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "sequence_lens must be [%" PRId64 "]", g->batch);
  for (int i = 5; i <= (g->lstm ? 6 : 5); i++) {
    const drt_shape *s = sh[i];
    if (s && !(s->rank == 3 && s->dims[0] == (g->layout ? g->batch : g->dirs) &&
               s->dims[1] == (g->layout ? g->dirs : g->batch) && s->dims[2] == hs))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "initial state (input %d) has shape %s", i, drt_shape_str(s, a, sizeof a));
  }
  if (g->lstm && sh[7] && (sh[7]->rank != 2 || sh[7]->dims[0] != g->dirs || sh[7]->dims[1] != 3 * hs))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "P must be [%" PRId64 ", %" PRId64 "]", g->dirs, 3 * hs);
  /* activations: per direction f (, g (, h)); alpha/beta consumed in order by those that take them */
  int per = n->op == DRT_OP_RNN ? 1 : n->op == DRT_OP_GRU ? 2 : 3;
  static const drt_rnn_act_kind dflt[3][3] = {{DRT_RNN_TANH}, {DRT_RNN_SIGMOID, DRT_RNN_TANH},
                                              {DRT_RNN_SIGMOID, DRT_RNN_TANH, DRT_RNN_TANH}};
  int64_t na = 0, nal = 0, nbe = 0;
  const drt_attr *aa = drt_node_attr(n, "activations");
  if (aa && aa->type == DRT_ATTR_STRINGS) na = aa->count;
  const float *al = drt_node_attr_floats(n, "activation_alpha", &nal), *be = drt_node_attr_floats(n, "activation_beta", &nbe);
  if (na && na != per * g->dirs)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute activations has %" PRId64 " names, expected %" PRId64, na,
                     (int64_t)per * g->dirs);
  static const struct { const char *name; drt_rnn_act_kind k; int na, nb; double a, b; } names[] = {
      {"Sigmoid", DRT_RNN_SIGMOID, 0, 0, 0, 0}, {"Tanh", DRT_RNN_TANH, 0, 0, 0, 0}, {"Relu", DRT_RNN_RELU, 0, 0, 0, 0},
      {"Affine", DRT_RNN_AFFINE, 1, 1, 1, 0}, {"LeakyRelu", DRT_RNN_LEAKY_RELU, 1, 0, 0.01, 0},
      {"ThresholdedRelu", DRT_RNN_THRESHOLDED_RELU, 1, 0, 1, 0}, {"ScaledTanh", DRT_RNN_SCALED_TANH, 1, 1, 1, 1},
      {"HardSigmoid", DRT_RNN_HARD_SIGMOID, 1, 1, 0.2, 0.5}, {"Elu", DRT_RNN_ELU, 1, 0, 1, 0},
      {"Softsign", DRT_RNN_SOFTSIGN, 0, 0, 0, 0}, {"Softplus", DRT_RNN_SOFTPLUS, 0, 0, 0, 0}};
  int64_t ai = 0, bi = 0;
  for (int d = 0; d < g->dirs; d++)
    for (int k = 0; k < per; k++) {
      drt_rnn_act *act = &g->acts[d][k];
      act->kind = dflt[per - 1][k];
      if (!na) continue;
      const char *nm = aa->strings[d * per + k];
      size_t m = 0;
      while (m < sizeof names / sizeof names[0] && !same_name_nocase(names[m].name, nm)) m++;
      if (m == sizeof names / sizeof names[0])
        return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "activation '%s' is not supported", nm);
      act->kind = names[m].k;
      act->alpha = names[m].na && al && ai < nal ? al[ai++] : names[m].a;
      act->beta = names[m].nb && be && bi < nbe ? be[bi++] : names[m].b;
    }
  return DRT_OK;
}

static drt_status infer_rnn(drt_graph *gr, drt_node *n) {
  (void)gr;
  const drt_shape *sh[8] = {NULL};
  for (int i = 0; i < n->num_inputs && i < 8; i++) {
    if (!n->inputs[i]) continue;
    DRT_RETURN_IF_ERROR(drt_infer_check_dtype(n, i, i == 4 ? DRT_DT_BIT(DRT_DTYPE_INT32) : DRT_DT_FLOATS));
    sh[i] = &n->inputs[i]->shape;
  }
  drt_rnn_geom g;
  DRT_RETURN_IF_ERROR(drt_rnn_resolve(n, sh, &g));
  drt_dtype dt = n->inputs[0]->dtype;
  drt_shape y = g.layout ? (drt_shape){4, {g.batch, g.seq, g.dirs, g.hidden}} : (drt_shape){4, {g.seq, g.dirs, g.batch, g.hidden}};
  drt_shape yh = g.layout ? (drt_shape){3, {g.batch, g.dirs, g.hidden}} : (drt_shape){3, {g.dirs, g.batch, g.hidden}};
  drt_infer_set(n, 0, dt, &y);
  for (int i = 1; i < n->num_outputs; i++) drt_infer_set(n, i, dt, &yh);
  return DRT_OK;
}

const drt_infer_entry drt_infer_table_linalg[] = {
    {DRT_OP_MATMUL_INTEGER, infer_int_matmul},
    {DRT_OP_QLINEAR_MATMUL, infer_int_matmul},
    {DRT_OP_CONV_INTEGER, infer_int_conv},
    {DRT_OP_QLINEAR_CONV, infer_int_conv},
    {DRT_OP_RNN, infer_rnn},
    {DRT_OP_GRU, infer_rnn},
    {DRT_OP_LSTM, infer_rnn},
    {DRT_OP_MATMUL, infer_matmul},
    {DRT_OP_GEMM, infer_gemm},
    {DRT_OP_EINSUM, infer_einsum},
    {DRT_OP_CONV, infer_conv},
    {DRT_OP_CONV_TRANSPOSE, infer_conv},
    {DRT_OP_MAX_POOL, infer_pool},
    {DRT_OP_AVERAGE_POOL, infer_pool},
    {DRT_OP_LP_POOL, infer_pool},
    {DRT_OP_GLOBAL_AVERAGE_POOL, infer_global_pool},
    {DRT_OP_GLOBAL_MAX_POOL, infer_global_pool},
    {DRT_OP_COUNT_, NULL},
};
