/* Pass "attention-fuse": one drt.Attention node per attention site.
 *
 *   before (torch SDPA at opset 14-22, diffusers, DiT, UNet/VAE bmm blocks)
 *
 *     x:[B,S,H*D] -> Reshape[B,S,H,D] -> Transpose(0,2,1,3) -> Mul(c1) ---------.
 *     y:[B,T,H*D] -> Reshape[B,T,H,D] -> Transpose(0,2,3,1) -> Mul(c2) -> MatMul(Q, K^T)
 *                                                   -> Mul/Div(c3) -> Add(mask) | Where(m, ., fill)
 *                                                   -> Softmax(axis=-1)
 *     z:[B,T,H*D] -> Reshape -> Transpose(0,2,1,3) ----------------------> MatMul(P, V)
 *                                                   -> Transpose(0,2,1,3) -> Reshape[B,S,H*D]
 *   after
 *     drt.Attention{num_heads=H, scale=c1*c2*c3, q_layout="b_s_hd", k_layout="b_s_hd",
 *                   v_layout="b_s_hd", out_layout="b_s_hd"}(x, y, z, [mask]) : [B,S,H*D]
 *
 *   also:  ONNX Attention (opset 23, 3-D and 4-D, GQA)  -> drt.Attention with the same walk
 *          MatMul(Transpose(Q'), K') ... Softmax -> Transpose -> MatMul(V', P^T)   (UNet/VAE,
 *          channel-major [B, C, N] operands: layouts "b_d_s", output "b_d_s")
 *
 * Matching, per Softmax over the last axis: walk up from the scores through scalar Mul/Div
 * (scale), at most one mask (Add, or Where with a scalar fill) to the Q.K^T MatMul; every
 * value on that chain must have exactly one use. The softmax output must feed MatMul(P, V) or
 * Transpose -> MatMul(V', P^T). Then each operand is walked up through Transpose / Reshape /
 * Squeeze / Unsqueeze / Flatten (and, for Q and K, scalar Mul/Div by constants, folded into
 * the scale) while its layout stays expressible (ir/infer_fused.h), and the output is walked
 * down through single-use Transpose / Reshape. A fused QKV projection (one MatMul, then
 * Split/Slice) stays outside: the walk stops at the Split. The candidate node is validated by
 * shape inference before anything is rewritten; if the walked layouts do not validate, the
 * plain operands are used. Every declined site is logged at INFO with the reason. */
#include "passes/attention_fuse.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ir/infer.h"
#include "ir/infer_fused.h"
#include "ir/infer_reduce.h"
#include "passes/pattern.h"

#define MAX_KILL 48
#define MAX_WALK 32

typedef struct operand {
  drt_value *v;
  drt_attn_layout lay;
} operand;

typedef struct attn_site {
  const drt_node *anchor; /* Softmax or Attention node, for messages */
  drt_node *kill[MAX_KILL];
  int nkill;
  operand q, k, v, out;
  double scale;
  int64_t heads, kv_heads; /* 0: unknown yet (3-D bmm form) */
  bool shared_heads;       /* one head count for all operands (MatMul form) */
  drt_value *mask;
  drt_attn_mask_mode mask_mode;
  float mask_fill;
  bool causal;
} attn_site;

static void decline(const drt_node *n, const char *fmt, ...) DRT_PRINTF(2, 3);
static void decline(const drt_node *n, const char *fmt, ...) {
  if (!drt_log_enabled(DRT_LOG_INFO)) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  drt_log(DRT_LOG_INFO, "attention-fuse: %s '%s' not fused: %s", drt_op_name(n->op), n->name, msg);
}

static bool add_kill(attn_site *s, drt_node *n) {
  if (s->nkill >= MAX_KILL) return false;
  s->kill[s->nkill++] = n;
  return true;
}

/* ---- layouts through Transpose / Reshape ------------------------------------------------- */
static void lay_set1(drt_attn_layout *l, int g, int letter) {
  l->len[g] = 1;
  l->letter[g][0] = (int8_t)letter;
}

/* Labels of the batch dims of a rank-r MatMul operand, then (x, y) for the last two. */
static void lay_init(drt_attn_layout *l, int r, int x, int y) {
  memset(l, 0, sizeof *l);
  l->rank = r;
  if (r == 4) {
    lay_set1(l, 0, DRT_ATTN_B);
    lay_set1(l, 1, DRT_ATTN_H);
  } else if (r == 3) { /* [B*H, ., .]: heads unknown until a Reshape splits them */
    l->len[0] = 2;
    l->letter[0][0] = DRT_ATTN_B;
    l->letter[0][1] = DRT_ATTN_H;
  }
  lay_set1(l, r - 2, x);
  lay_set1(l, r - 1, y);
}

/* Checks or sets the head count from an axis of size n that holds h alone. */
static bool heads_agree(int64_t *heads, int64_t n) {
  if (*heads == 0) {
    *heads = n;
    return true;
  }
  return *heads == n;
}

/* Given layout la of shape sa, labels shape sb (same element count, C order). Axes of size 1
 * are set aside and paired in order; other axes are matched by products: an axis split into
 * several takes its letter on each (a merged h+x group splits into its two letters), several
 * axes merged into one concatenate their letters. */
static bool relabel_reshape(const drt_attn_layout *la, const drt_shape *sa, const drt_shape *sb, int64_t *heads,
                            drt_attn_layout *lb) {
  int ua[DRT_MAX_RANK], na = 0, ub[DRT_MAX_RANK], nb = 0, unit_a[DRT_MAX_RANK], nua = 0, unit_b[DRT_MAX_RANK], nub = 0;
  if (sa->rank != la->rank || drt_shape_numel(sa) != drt_shape_numel(sb) || drt_shape_numel(sa) <= 0) return false;
  for (int i = 0; i < sa->rank; i++) {
    if (sa->dims[i] == 1) unit_a[nua++] = i;
    else ua[na++] = i;
  }
  for (int i = 0; i < sb->rank; i++) {
    if (sb->dims[i] == 1) unit_b[nub++] = i;
    else ub[nb++] = i;
  }
  memset(lb, 0, sizeof *lb);
  lb->rank = sb->rank;
  int64_t h = *heads;
  int i = 0, j = 0;
  while (i < na && j < nb) {
    int64_t da = sa->dims[ua[i]], db = sb->dims[ub[j]];
    int ga = ua[i];
    if (da == db) {
      lb->len[ub[j]] = la->len[ga];
      memcpy(lb->letter[ub[j]], la->letter[ga], sizeof la->letter[ga]);
      i++, j++;
    } else if (da > db) { /* split one axis of a into b[j..j2] */
      int j2 = j;
      int64_t p = db;
      while (p < da && j2 + 1 < nb) p *= sb->dims[ub[++j2]];
      if (p != da) return false;
      if (la->len[ga] == 1) {
        for (int k = j; k <= j2; k++) lay_set1(lb, ub[k], la->letter[ga][0]);
      } else if (la->len[ga] == 2 && j2 == j + 1) {
        for (int k = 0; k < 2; k++) {
          lay_set1(lb, ub[j + k], la->letter[ga][k]);
          if (la->letter[ga][k] == DRT_ATTN_H && !heads_agree(&h, sb->dims[ub[j + k]])) return false;
        }
      } else {
        return false;
      }
      i++;
      j = j2 + 1;
    } else { /* merge a[i..i2] into one axis of b */
      int i2 = i;
      int64_t p = da;
      while (p < db && i2 + 1 < na) p *= sa->dims[ua[++i2]];
      if (p != db) return false;
      int8_t letters[8];
      int nl = 0;
      int64_t hsize = 1;
      bool has_h = false;
      for (int k = i; k <= i2; k++) {
        int g = ua[k];
        for (int c = 0; c < la->len[g]; c++) {
          int8_t x = la->letter[g][c];
          if (x == DRT_ATTN_H) {
            if (la->len[g] != 1) return false; /* h already merged: merging again hides its size */
            hsize *= sa->dims[g];
            has_h = true;
          }
          if (nl > 0 && letters[nl - 1] == x) continue; /* a split letter joins up again */
          if (nl >= 8) return false;
          letters[nl++] = x;
        }
      }
      if (nl < 1 || nl > 2) return false;
      if (nl == 2 && letters[0] != DRT_ATTN_H && letters[1] != DRT_ATTN_H) return false;
      if (nl == 2 && has_h && !heads_agree(&h, hsize)) return false;
      lb->len[ub[j]] = nl;
      memcpy(lb->letter[ub[j]], letters, (size_t)nl);
      i = i2 + 1;
      j++;
    }
  }
  if (i != na || j != nb) return false;
  for (int k = 0; k < nub; k++) {
    if (nua == nub) {
      lb->len[unit_b[k]] = la->len[unit_a[k]];
      memcpy(lb->letter[unit_b[k]], la->letter[unit_a[k]], sizeof la->letter[0]);
    } else {
      lb->len[unit_b[k]] = 0;
    }
  }
  drt_status st = drt_attn_layout_check(lb);
  if (st) {
    drt_status_free(st);
    return false;
  }
  *heads = h;
  return true;
}

static bool transpose_perm(const drt_node *t, int rank, int64_t *perm) {
  int64_t cnt = 0;
  const int64_t *p = drt_node_attr_ints(t, "perm", &cnt);
  if (!p) {
    for (int i = 0; i < rank; i++) perm[i] = rank - 1 - i;
    return true;
  }
  if (cnt != rank) return false;
  for (int i = 0; i < rank; i++) {
    if (p[i] < 0 || p[i] >= rank) return false;
    perm[i] = p[i];
  }
  return true;
}

static bool is_reshape_like(drt_op op) {
  return op == DRT_OP_RESHAPE || op == DRT_OP_SQUEEZE || op == DRT_OP_UNSQUEEZE || op == DRT_OP_FLATTEN;
}

/* Walks an operand up to the furthest value it can be read from in place. Q and K also fold
 * scalar Mul/Div by constants into *scale. */
static operand walk_up(operand start, bool fold_scale, int64_t *heads, double *scale) {
  operand cur = start;
  double sc = 1.0;
  for (int step = 0; step < MAX_WALK; step++) {
    drt_node *p = drt_producer_of(cur.v);
    if (!p) break;
    operand next;
    int64_t h = *heads;
    double nsc = sc;
    if (p->op == DRT_OP_TRANSPOSE) {
      int64_t perm[DRT_MAX_RANK];
      drt_value *u = p->inputs[0];
      if (!u || u->shape.rank != cur.lay.rank || !transpose_perm(p, u->shape.rank, perm)) break;
      memset(&next.lay, 0, sizeof next.lay);
      next.lay.rank = cur.lay.rank;
      for (int a = 0; a < cur.lay.rank; a++) {
        next.lay.len[perm[a]] = cur.lay.len[a];
        memcpy(next.lay.letter[perm[a]], cur.lay.letter[a], sizeof cur.lay.letter[a]);
      }
      next.v = u;
    } else if (is_reshape_like(p->op)) {
      drt_value *u = p->inputs[0];
      if (!u || u->dtype != cur.v->dtype || !relabel_reshape(&cur.lay, &cur.v->shape, &u->shape, &h, &next.lay))
        break;
      next.v = u;
    } else if (fold_scale && (p->op == DRT_OP_MUL || p->op == DRT_OP_DIV)) {
      double c;
      int ci = p->op == DRT_OP_DIV ? 1 : drt_const_scalar(p->inputs[1], &c) ? 1 : 0;
      if (!drt_const_scalar(p->inputs[ci], &c) || !isfinite(c) || (p->op == DRT_OP_DIV && c == 0)) break;
      drt_value *u = p->inputs[1 - ci];
      if (!u || !drt_shape_equal(&u->shape, &cur.v->shape) || u->dtype != cur.v->dtype) break;
      nsc = p->op == DRT_OP_MUL ? sc * c : sc / c;
      next.v = u;
      next.lay = cur.lay;
    } else {
      break;
    }
    cur = next;
    sc = nsc;
    *heads = h;
  }
  *scale *= sc;
  return cur;
}

static bool has_split_letter(const drt_attn_layout *l) {
  int seen = 0;
  for (int g = 0; g < l->rank; g++)
    for (int k = 0; k < l->len[g]; k++) {
      int bit = 1 << l->letter[g][k];
      if (seen & bit) return true;
      seen |= bit;
    }
  return false;
}

/* Walks the output down through single-use Transpose / Reshape; the nodes passed are added to
 * s->kill. Stops before a layout that would need a letter split over several dims. */
static operand walk_down(const drt_use_map *um, attn_site *s, operand start, int64_t *heads) {
  operand cur = start, best = start;
  drt_node *pending[MAX_WALK];
  int np = 0, nbest = 0;
  int64_t h = *heads;
  for (int step = 0; step < MAX_WALK; step++) {
    drt_node *u = drt_use_single(um, cur.v);
    if (!u || u->num_outputs != 1 || u->inputs[0] != cur.v) break;
    operand next;
    next.v = u->outputs[0];
    if (u->op == DRT_OP_TRANSPOSE) {
      int64_t perm[DRT_MAX_RANK];
      if (!transpose_perm(u, cur.lay.rank, perm)) break;
      memset(&next.lay, 0, sizeof next.lay);
      next.lay.rank = cur.lay.rank;
      for (int a = 0; a < cur.lay.rank; a++) {
        next.lay.len[a] = cur.lay.len[perm[a]];
        memcpy(next.lay.letter[a], cur.lay.letter[perm[a]], sizeof cur.lay.letter[0]);
      }
    } else if (is_reshape_like(u->op)) {
      if (!relabel_reshape(&cur.lay, &cur.v->shape, &next.v->shape, &h, &next.lay)) break;
    } else {
      break;
    }
    pending[np++] = u;
    cur = next;
    if (!has_split_letter(&cur.lay)) {
      best = cur;
      nbest = np;
      *heads = h;
    }
  }
  for (int i = 0; i < nbest; i++)
    if (!add_kill(s, pending[i])) return start;
  return best;
}

/* ---- building the fused node ------------------------------------------------------------- */
static drt_status set_attr_int(drt_graph *g, drt_node *n, const char *name, int64_t v) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_INT;
  a.i = v;
  return drt_node_add_attr(g, n, &a);
}

static drt_status set_attr_float(drt_graph *g, drt_node *n, const char *name, float v) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_FLOAT;
  a.f = v;
  return drt_node_add_attr(g, n, &a);
}

static drt_status set_attr_layout(drt_graph *g, drt_node *n, const char *name, const drt_attn_layout *l) {
  char buf[DRT_ATTN_LAYOUT_MAX];
  drt_attn_layout_format(l, buf, sizeof buf);
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_STRING;
  a.s = buf;
  a.s_len = strlen(buf);
  return drt_node_add_attr(g, n, &a);
}

/* Creates the drt.Attention node for a matched site (operands walked when `walk`); on a
 * validation failure leaves the graph as it was (the candidate is dead) and sets *why. */
static drt_status build(drt_graph *g, const drt_use_map *um, attn_site *s, bool walk, bool *done, char *why,
                        size_t why_len) {
  *done = false;
  int64_t hq = s->heads, hkv = s->kv_heads;
  int64_t *hk = s->shared_heads ? &hq : &hkv;
  double scale = s->scale;
  operand q = s->q, k = s->k, v = s->v, out = s->out;
  int nkill = s->nkill;
  if (walk) {
    q = walk_up(s->q, true, &hq, &scale);
    k = walk_up(s->k, true, hk, &scale);
    v = walk_up(s->v, false, hk, &scale);
    out = walk_down(um, s, s->out, &hq);
  }
  if (hq == 0) hq = 1;
  if (s->shared_heads) hkv = hq;
  if (hkv == 0) hkv = hq;
  drt_value *tmp = drt_graph_add_value(g, NULL, DRT_DTYPE_UNDEFINED, NULL);
  if (!tmp) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "fused attention output");
  drt_value *ins[4] = {q.v, k.v, v.v, s->mask};
  drt_node *n;
  char name[256];
  snprintf(name, sizeof name, "%s/fused_attention", s->anchor->name);
  DRT_RETURN_IF_ERROR(drt_graph_add_node(g, DRT_OP_FUSED_ATTENTION, name, ins, s->mask ? 4 : 3, &tmp, 1, &n));
  n->opset = s->anchor->opset;
  DRT_RETURN_IF_ERROR(set_attr_int(g, n, "num_heads", hq));
  if (hkv != hq) DRT_RETURN_IF_ERROR(set_attr_int(g, n, "kv_num_heads", hkv));
  DRT_RETURN_IF_ERROR(set_attr_float(g, n, "scale", (float)scale));
  DRT_RETURN_IF_ERROR(set_attr_layout(g, n, "q_layout", &q.lay));
  DRT_RETURN_IF_ERROR(set_attr_layout(g, n, "k_layout", &k.lay));
  DRT_RETURN_IF_ERROR(set_attr_layout(g, n, "v_layout", &v.lay));
  DRT_RETURN_IF_ERROR(set_attr_layout(g, n, "out_layout", &out.lay));
  if (s->mask) {
    DRT_RETURN_IF_ERROR(set_attr_int(g, n, "mask_mode", (int64_t)s->mask_mode));
    if (s->mask_mode != DRT_ATTN_MASK_ADD) DRT_RETURN_IF_ERROR(set_attr_float(g, n, "mask_fill", s->mask_fill));
  }
  if (s->causal) DRT_RETURN_IF_ERROR(set_attr_int(g, n, "causal", 1));
  drt_status st = drt_infer_node(g, n);
  if (!st && (tmp->dtype != out.v->dtype || !drt_shape_equal(&tmp->shape, &out.v->shape)))
    st = DRT_ERROR(DRT_STATUS_INTERNAL, "fused output type differs from '%s'", out.v->name);
  if (st) {
    snprintf(why, why_len, "%s", drt_status_message(st));
    drt_status_free(st);
    n->dead = true;
    s->nkill = nkill; /* forget the output walk */
    return DRT_OK;
  }
  for (int i = 0; i < s->nkill; i++) s->kill[i]->dead = true;
  n->outputs[0] = out.v;
  out.v->producer = n;
  out.v->producer_output = 0;
  out.v->kind = DRT_VALUE_INTERMEDIATE;
  *done = true;
  if (drt_log_enabled(DRT_LOG_INFO)) {
    char ql[DRT_ATTN_LAYOUT_MAX], kl[DRT_ATTN_LAYOUT_MAX], vl[DRT_ATTN_LAYOUT_MAX], ol[DRT_ATTN_LAYOUT_MAX];
    drt_log(DRT_LOG_INFO,
            "attention-fuse: %s '%s' -> drt.Attention (heads %" PRId64 ", scale %g, layouts q %s k %s v %s out %s%s, "
            "%d nodes replaced)", drt_op_name(s->anchor->op), s->anchor->name, hq, scale,
            drt_attn_layout_format(&q.lay, ql, sizeof ql), drt_attn_layout_format(&k.lay, kl, sizeof kl),
            drt_attn_layout_format(&v.lay, vl, sizeof vl), drt_attn_layout_format(&out.lay, ol, sizeof ol),
            s->mask ? ", masked" : "", s->nkill);
  }
  return DRT_OK;
}

/* ---- matching the MatMul / Softmax / MatMul form ------------------------------------------ */
/* Whether v leads up to a MatMul through single-use Mul/Div/Add/Where (the score chain). */
static bool leads_to_matmul(const drt_use_map *um, const drt_value *v, int depth) {
  for (int i = 0; i < depth; i++) {
    drt_node *p = drt_producer_of(v);
    if (!p || drt_use_count(um, v) != 1 || drt_use_is_output(um, v)) return false;
    if (p->op == DRT_OP_MATMUL) return true;
    if (p->op == DRT_OP_MUL || p->op == DRT_OP_DIV) {
      double c;
      v = drt_const_scalar(p->inputs[1], &c) ? p->inputs[0] : p->inputs[1];
    } else if (p->op == DRT_OP_ADD) {
      return leads_to_matmul(um, p->inputs[0], depth - i - 1) || leads_to_matmul(um, p->inputs[1], depth - i - 1);
    } else if (p->op == DRT_OP_WHERE) {
      double c;
      v = drt_const_scalar(p->inputs[1], &c) ? p->inputs[2] : p->inputs[1];
    } else {
      return false;
    }
  }
  return false;
}

static bool same_batch(const drt_shape *a, const drt_shape *b, int r) {
  for (int i = 0; i < r - 2; i++)
    if (a->dims[i] != b->dims[i]) return false;
  return true;
}

/* Whether Where(c, 0, P) after the softmax only zeroes rows whose mask is -inf everywhere (the
 * guard of ONNX's Attention function body): c is a constant that is all false, or
 * Equal(ReduceMax(mask over the last axis, keepdims), -inf) of the site's additive mask. */
static bool masked_row_guard(const drt_node *w, const drt_value *mask) {
  double z;
  const drt_value *c = w->inputs[0];
  if (!drt_const_scalar(w->inputs[1], &z) || z != 0.0 || c->dtype != DRT_DTYPE_BOOL) return false;
  if (c->kind == DRT_VALUE_CONST) {
    int64_t n = drt_shape_numel(&c->shape);
    const uint8_t *b = c->data;
    for (int64_t i = 0; b && i < n; i++)
      if (b[i]) return false;
    return b != NULL;
  }
  drt_node *eq = drt_producer_is(c, DRT_OP_EQUAL);
  if (!eq || !mask) return false;
  int ci = drt_const_scalar(eq->inputs[1], &z) ? 1 : drt_const_scalar(eq->inputs[0], &z) ? 0 : -1;
  if (ci < 0 || !(isinf(z) && z < 0)) return false;
  drt_node *rm = drt_producer_is(eq->inputs[1 - ci], DRT_OP_REDUCE_MAX);
  if (!rm || rm->inputs[0] != mask || drt_node_attr_int(rm, "keepdims", 1) != 1) return false;
  drt_tensor axes;
  const drt_tensor *ap = NULL;
  drt_value *av = drt_node_input(rm, 1);
  if (av) {
    if (av->kind != DRT_VALUE_CONST) return false;
    axes = drt_value_tensor(av);
    ap = &axes;
  }
  bool reduced[DRT_MAX_RANK];
  drt_shape out;
  drt_status st = drt_reduce_resolve(rm, &mask->shape, ap, reduced, &out);
  if (st) {
    drt_status_free(st);
    return false;
  }
  for (int d = 0; d < mask->shape.rank; d++)
    if (reduced[d] != (d == mask->shape.rank - 1) && mask->shape.dims[d] != 1) return false;
  return true;
}

static bool match_softmax(const drt_graph *g, const drt_use_map *um, drt_node *sm, attn_site *s) {
  memset(s, 0, sizeof *s);
  s->anchor = sm;
  s->scale = 1.0;
  drt_value *scores = sm->inputs[0];
  int r = scores->shape.rank, axis;
  drt_status st = drt_softmax_axis(sm, r, &axis);
  if (st) {
    drt_status_free(st);
    decline(sm, "invalid axis");
    return false;
  }
  if (axis != r - 1) {
    decline(sm, "softmax over axis %d, not the last axis of rank %d", axis, r);
    return false;
  }
  if (r < 2 || r > 4) {
    decline(sm, "scores have rank %d, expected 2..4", r);
    return false;
  }
  if (!drt_dtype_is_float(scores->dtype)) {
    decline(sm, "scores are %s", drt_dtype_name(scores->dtype));
    return false;
  }
  add_kill(s, sm);
  /* up from the scores: scale, mask, to the Q.K^T MatMul */
  drt_value *v = scores;
  bool seen_mask = false, scale_below_mask = false;
  drt_node *qk = NULL;
  for (int step = 0; step < 16 && !qk; step++) {
    drt_node *p = drt_producer_of(v);
    if (!p) {
      decline(sm, "scores '%s' are not computed by a MatMul", v->name);
      return false;
    }
    if (drt_use_count(um, v) != 1 || drt_use_is_output(um, v)) {
      decline(sm, "'%s' on the score chain has other uses", v->name);
      return false;
    }
    if (!drt_shape_equal(&v->shape, &scores->shape)) {
      decline(sm, "'%s' on the score chain is broadcast", v->name);
      return false;
    }
    double c;
    switch (p->op) {
      case DRT_OP_MATMUL: qk = p; break;
      case DRT_OP_MUL:
      case DRT_OP_DIV: {
        int ci = p->op == DRT_OP_DIV ? 1 : drt_const_scalar(p->inputs[1], &c) ? 1 : 0;
        if (!drt_const_scalar(p->inputs[ci], &c) || !isfinite(c) || (p->op == DRT_OP_DIV && c == 0)) {
          decline(sm, "%s '%s' on the scores is not a scaling by a constant scalar", drt_op_name(p->op), p->name);
          return false;
        }
        if (!seen_mask) scale_below_mask = true; /* applied after any mask found further up */
        s->scale = p->op == DRT_OP_MUL ? s->scale * c : s->scale / c;
        v = p->inputs[1 - ci];
        break;
      }
      case DRT_OP_ADD: {
        if (seen_mask) {
          decline(sm, "more than one mask on the scores ('%s')", p->name);
          return false;
        }
        if (scale_below_mask) {
          decline(sm, "the scores are scaled after the mask '%s'", p->name);
          return false;
        }
        int chain = leads_to_matmul(um, p->inputs[0], 12) ? 0 : leads_to_matmul(um, p->inputs[1], 12) ? 1 : -1;
        if (chain < 0) {
          decline(sm, "neither input of Add '%s' leads to the Q.K^T MatMul", p->name);
          return false;
        }
        drt_value *m = p->inputs[1 - chain];
        if (!drt_broadcasts_into(&scores->shape, &m->shape) || m->dtype != scores->dtype) {
          decline(sm, "mask '%s' of Add '%s' enlarges the scores or has another dtype", m->name, p->name);
          return false;
        }
        if (!drt_const_all(m, 0.0, 0.0)) { /* an all-zero bias is no mask */
          s->mask = m;
          s->mask_mode = DRT_ATTN_MASK_ADD;
        }
        seen_mask = true;
        v = p->inputs[chain];
        break;
      }
      case DRT_OP_WHERE: {
        if (seen_mask) {
          decline(sm, "more than one mask on the scores ('%s')", p->name);
          return false;
        }
        if (scale_below_mask) {
          decline(sm, "the scores are scaled after the mask '%s'", p->name);
          return false;
        }
        double fill;
        int chain;
        if (drt_const_scalar(p->inputs[2], &fill)) {
          chain = 1;
          s->mask_mode = DRT_ATTN_MASK_KEEP_TRUE;
        } else if (drt_const_scalar(p->inputs[1], &fill)) {
          chain = 2;
          s->mask_mode = DRT_ATTN_MASK_KEEP_FALSE;
        } else {
          decline(sm, "Where '%s' on the scores has no constant scalar fill", p->name);
          return false;
        }
        drt_value *m = p->inputs[0];
        if (m->dtype != DRT_DTYPE_BOOL || !drt_broadcasts_into(&scores->shape, &m->shape)) {
          decline(sm, "condition '%s' of Where '%s' is not a bool mask broadcasting to the scores", m->name, p->name);
          return false;
        }
        s->mask = m;
        s->mask_fill = (float)fill;
        seen_mask = true;
        v = p->inputs[chain];
        break;
      }
      default: decline(sm, "%s '%s' on the score chain is not a scale, mask or MatMul", drt_op_name(p->op), p->name); return false;
    }
    if (!add_kill(s, p)) {
      decline(sm, "score chain is too long");
      return false;
    }
  }
  if (!qk) {
    decline(sm, "no Q.K^T MatMul within 16 nodes of the softmax");
    return false;
  }
  drt_value *a = qk->inputs[0], *bm = qk->inputs[1];
  if (a->shape.rank != r || bm->shape.rank != r || !same_batch(&a->shape, &scores->shape, r) ||
      !same_batch(&bm->shape, &scores->shape, r)) {
    decline(sm, "MatMul '%s' broadcasts its operands", qk->name);
    return false;
  }
  if (s->mask && r == 3 && s->mask->shape.rank == 3 && s->mask->shape.dims[0] != 1) {
    decline(sm, "a 3-D mask with a batch dim on 3-D scores is not supported");
    return false;
  }
  if (s->mask && drt_depends_on(g, s->mask, &qk->outputs[0], 1)) {
    decline(sm, "the mask depends on the scores");
    return false;
  }
  /* down from the probabilities to P.V */
  drt_value *prob = sm->outputs[0];
  drt_node *u = drt_use_single(um, prob);
  if (u && u->op == DRT_OP_WHERE && u->inputs[2] == prob && u->inputs[1] != prob && masked_row_guard(u, s->mask)) {
    add_kill(s, u); /* the kernel already gives zeros for fully masked rows */
    prob = u->outputs[0];
    u = drt_use_single(um, prob);
  }
  if (!u) {
    decline(sm, "the probabilities have %u uses", drt_use_count(um, prob));
    return false;
  }
  int64_t perm[DRT_MAX_RANK];
  bool transposed = false;
  drt_node *pv = NULL;
  drt_value *vop = NULL;
  if (u->op == DRT_OP_MATMUL && u->inputs[0] == prob && u->inputs[1] != prob) {
    pv = u;
    vop = u->inputs[1];
  } else if (u->op == DRT_OP_TRANSPOSE && transpose_perm(u, r, perm)) {
    bool swap = perm[r - 1] == r - 2 && perm[r - 2] == r - 1;
    for (int i = 0; i < r - 2; i++) swap &= perm[i] == i;
    drt_node *u2 = swap ? drt_use_single(um, u->outputs[0]) : NULL;
    if (u2 && u2->op == DRT_OP_MATMUL && u2->inputs[1] == u->outputs[0] && u2->inputs[0] != u->outputs[0]) {
      add_kill(s, u);
      pv = u2;
      vop = u2->inputs[0];
      transposed = true;
    }
  }
  if (!pv) {
    decline(sm, "the probabilities do not feed MatMul(P, V) or MatMul(V, P^T) (used by %s '%s')", drt_op_name(u->op),
            u->name);
    return false;
  }
  if (vop->shape.rank != r || !same_batch(&vop->shape, &scores->shape, r)) {
    decline(sm, "MatMul '%s' broadcasts its operands", pv->name);
    return false;
  }
  if (drt_depends_on(g, vop, &qk->outputs[0], 1)) {
    decline(sm, "V depends on the scores");
    return false;
  }
  add_kill(s, qk);
  if (!add_kill(s, pv)) {
    decline(sm, "pattern too large");
    return false;
  }
  s->q.v = a;
  lay_init(&s->q.lay, r, DRT_ATTN_S, DRT_ATTN_D);
  s->k.v = bm;
  lay_init(&s->k.lay, r, DRT_ATTN_D, DRT_ATTN_S);
  s->v.v = vop;
  lay_init(&s->v.lay, r, transposed ? DRT_ATTN_D : DRT_ATTN_S, transposed ? DRT_ATTN_S : DRT_ATTN_D);
  s->out.v = pv->outputs[0];
  lay_init(&s->out.lay, r, transposed ? DRT_ATTN_D : DRT_ATTN_S, transposed ? DRT_ATTN_S : DRT_ATTN_D);
  s->shared_heads = true;
  s->heads = r == 4 ? scores->shape.dims[1] : r == 2 ? 1 : 0;
  s->kv_heads = s->heads;
  return true;
}

/* ---- matching the ONNX Attention op -------------------------------------------------------- */
static bool match_attention_op(const drt_use_map *um, drt_node *at, attn_site *s) {
  memset(s, 0, sizeof *s);
  s->anchor = at;
  for (int i = 4; i < at->num_inputs; i++)
    if (at->inputs[i]) {
      decline(at, "input %d (KV cache or nonpad_kv_seqlen) is present", i);
      return false;
    }
  for (int i = 1; i < at->num_outputs; i++)
    if (drt_use_count(um, at->outputs[i]) > 0) {
      decline(at, "output %d is used", i);
      return false;
    }
  if (drt_node_attr_float(at, "softcap", 0.0f) != 0.0f) {
    decline(at, "softcap is set");
    return false;
  }
  if (drt_node_attr_int(at, "left_window_size", -1) != -1 || drt_node_attr_int(at, "right_window_size", -1) != -1) {
    decline(at, "a sliding window is set");
    return false;
  }
  const drt_shape *shapes[4] = {NULL, NULL, NULL, NULL};
  for (int i = 0; i < 4 && i < at->num_inputs; i++) shapes[i] = at->inputs[i] ? &at->inputs[i]->shape : NULL;
  drt_attention_geom geo;
  drt_status st = drt_attention_resolve(at, shapes, at->num_inputs < 4 ? at->num_inputs : 4, &geo);
  if (st) {
    decline(at, "%s", drt_status_message(st));
    drt_status_free(st);
    return false;
  }
  for (int i = 0; i < 3; i++)
    if (!drt_dtype_is_float(at->inputs[i]->dtype)) {
      decline(at, "input %d is %s", i, drt_dtype_name(at->inputs[i]->dtype));
      return false;
    }
  if (geo.has_mask) {
    drt_value *m = at->inputs[3];
    if (geo.mask.dims[geo.mask.rank - 1] != geo.kv_seq) {
      decline(at, "the mask's last dim %" PRId64 " is not the key length %" PRId64, geo.mask.dims[geo.mask.rank - 1],
              geo.kv_seq);
      return false;
    }
    s->mask = m;
    if (m->dtype == DRT_DTYPE_BOOL) {
      s->mask_mode = DRT_ATTN_MASK_KEEP_TRUE;
      s->mask_fill = -INFINITY;
    } else if (m->dtype == at->inputs[0]->dtype) {
      s->mask_mode = DRT_ATTN_MASK_ADD;
    } else {
      decline(at, "the mask is %s", drt_dtype_name(m->dtype));
      return false;
    }
  }
  s->causal = drt_node_attr_int(at, "is_causal", 0) != 0;
  const drt_attr *sa = drt_node_attr(at, "scale");
  s->scale = sa ? (double)drt_node_attr_float(at, "scale", 1.0f) : 1.0 / sqrt((double)geo.head);
  s->heads = geo.q_heads;
  s->kv_heads = geo.kv_heads;
  s->shared_heads = false;
  operand *ops[4] = {&s->q, &s->k, &s->v, &s->out};
  for (int i = 0; i < 4; i++) {
    ops[i]->v = i < 3 ? at->inputs[i] : at->outputs[0];
    if (geo.is_3d) {
      drt_attn_layout *l = &ops[i]->lay;
      memset(l, 0, sizeof *l);
      l->rank = 3;
      lay_set1(l, 0, DRT_ATTN_B);
      lay_set1(l, 1, DRT_ATTN_S);
      l->len[2] = 2;
      l->letter[2][0] = DRT_ATTN_H;
      l->letter[2][1] = DRT_ATTN_D;
    } else {
      lay_init(&ops[i]->lay, 4, DRT_ATTN_S, DRT_ATTN_D);
    }
  }
  add_kill(s, at);
  return true;
}

/* ---- the pass ----------------------------------------------------------------------------- */
drt_status drt_pass_attention_fuse(drt_graph *g, const drt_pass_ctx *ctx, bool *changed) {
  *changed = false;
  DRT_RETURN_IF_ERROR(drt_graph_topo_sort(g));
  drt_use_map um;
  DRT_RETURN_IF_ERROR(drt_use_map_build(g, &um));
  size_t count = g->num_nodes;
  int64_t fused = 0;
  drt_status st = DRT_OK;
  for (size_t i = 0; i < count && !st; i++) {
    drt_node *n = g->nodes[i];
    if (n->dead || (n->op != DRT_OP_SOFTMAX && n->op != DRT_OP_ATTENTION)) continue;
    attn_site site;
    bool ok = n->op == DRT_OP_SOFTMAX ? match_softmax(g, &um, n, &site) : match_attention_op(&um, n, &site);
    if (!ok) continue;
    bool done = false;
    char why[512] = "", why2[512] = "";
    st = build(g, &um, &site, true, &done, why, sizeof why);
    if (!st && !done) st = build(g, &um, &site, false, &done, why2, sizeof why2);
    if (st) break;
    if (!done) {
      decline(n, "the fused node does not validate: %s", why2[0] ? why2 : why);
      continue;
    }
    fused++;
    drt_use_map_free(&um);
    st = drt_use_map_build(g, &um);
  }
  drt_use_map_free(&um);
  DRT_RETURN_IF_ERROR(st);
  drt_graph_compact(g);
  DRT_RETURN_IF_ERROR(drt_graph_topo_sort(g));
  drt_graph_dce(g);
  if (ctx && ctx->stats) ctx->stats->fused_attention += fused;
  *changed = fused > 0;
  return DRT_OK;
}
