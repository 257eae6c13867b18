/* Pass "norm-fuse": one drt.Norm node per normalization, with what follows folded in.
 *
 *   before                                          after
 *     LayerNormalization(x, g, b)                     drt.Norm{kind=layer, axis, epsilon,
 *       -> Mul(., 1 + scale) -> Add(., shift)                  mod_one_plus=1}
 *     (adaLN modulation; the 1 + scale Add is           (x, g, b, scale, shift)
 *      absorbed when only the Mul uses it)
 *
 *     x -> ReduceMean -> Sub -> Pow 2 -> ReduceMean -> Add eps -> Sqrt -> Div -> Mul g -> Add b
 *                   (decomposed LayerNorm)                      drt.Norm{kind=layer}(x, g, b)
 *     x -> Pow 2 -> ReduceMean -> Add eps -> Sqrt | Pow 0.5 -> Div(x, .) | Mul(x, Reciprocal |
 *       Div(1, .)) | Mul(x, Pow(., -0.5)) -> Mul g  (decomposed RMSNorm; Casts to float32 and
 *       back, keepdims=0: see "decomposed Layer / RMS norms"),  RMSNormalization(x, g)
 *                                                             drt.Norm{kind=rms}(x, g)
 *     x:[N,C,...] -> Reshape[N,G,K] -> InstanceNormalization -> Reshape[N,C,...] -> Mul g -> Add b
 *       GroupNormalization(x, g, b), InstanceNormalization        drt.Norm{kind=group, num_groups}
 *     ... -> Sigmoid + Mul (SiLU) | Gelu | decomposed GELU (erf or tanh form)
 *                                                             drt.Norm{activation=silu|gelu|gelu_tanh}
 *
 * After the normalization itself, single-use consumers are absorbed in order: a Mul by a
 * tensor that broadcasts into the data fills the scale slot (or the modulation slot when a
 * bias was already applied), an Add fills the bias slot (or the shift slot); constants of all
 * ones / all zeros are dropped. An activation ends the chain: the maximal group of pointwise
 * nodes computed from the normalized value and scalar constants only is evaluated at sample
 * points and recognized as SiLU, GELU or tanh-GELU, so any operand order or constant
 * placement the exporter chose matches. Parameters must not depend on the chain (no cycles).
 * The candidate is validated by shape inference before the rewrite; each declined site is
 * logged at INFO with the reason. Statistics are computed in double by the kernel. */
#include "passes/norm_fuse.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer.h"
#include "ir/infer_fused.h"
#include "ir/infer_reduce.h"
#include "passes/pattern.h"

#define MAX_KILL 48
#define ACT_MAX_NODES 16

typedef struct norm_site {
  const drt_node *anchor;
  drt_node *kill[MAX_KILL];
  int nkill;
  drt_value *x, *y;
  drt_norm_kind kind;
  int axis;
  int64_t groups;
  double eps;
  drt_value *param[DRT_NORM_PARAMS]; /* scale, bias, mod_scale, mod_shift */
  bool one_plus;
  drt_norm_act act;
} norm_site;

enum { P_SCALE = 0, P_BIAS = 1, P_MSCALE = 2, P_MSHIFT = 3 };

static void decline(const drt_node *n, const char *fmt, ...) DRT_PRINTF(2, 3);
static void decline(const drt_node *n, const char *fmt, ...) {
  if (!drt_log_enabled(DRT_LOG_INFO)) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  drt_log(DRT_LOG_INFO, "norm-fuse: %s '%s' not fused: %s", drt_op_name(n->op), n->name, msg);
}

static bool add_kill(norm_site *s, drt_node *n) {
  if (s->nkill >= MAX_KILL) return false;
  for (int i = 0; i < s->nkill; i++)
    if (s->kill[i] == n) return true;
  s->kill[s->nkill++] = n;
  return true;
}

/* Values the chain computes (outputs of the nodes to be replaced). */
static int chain_values(const norm_site *s, drt_value **out, int max) {
  int k = 0;
  for (int i = 0; i < s->nkill; i++)
    for (int j = 0; j < s->kill[i]->num_outputs && k < max; j++) out[k++] = s->kill[i]->outputs[j];
  return k;
}

static bool param_ok(const drt_graph *g, const norm_site *s, const drt_value *p) {
  if (!p || p->dtype != s->y->dtype || !drt_broadcasts_into(&s->y->shape, &p->shape)) return false;
  drt_value *vals[2 * MAX_KILL];
  int nv = chain_values(s, vals, 2 * MAX_KILL);
  return !drt_depends_on(g, p, vals, nv);
}

/* Every consumer of v (live nodes only); returns the count (up to max). */
static int consumers(const drt_graph *g, const drt_value *v, drt_node **out, int max) {
  int k = 0;
  for (size_t i = 0; i < g->num_nodes; i++) {
    drt_node *n = g->nodes[i];
    if (n->dead) continue;
    for (int j = 0; j < n->num_inputs; j++)
      if (n->inputs[j] == v) {
        if (k < max) out[k] = n;
        k++;
        break;
      }
  }
  return k;
}

/* ---- constants ------------------------------------------------------------------------------ */
/* Parameter p (numel C, or groups when constant) as per-channel [C, 1, ..., 1] (rank - 1 dims): a
 * reshaped copy of a constant, or a Reshape node for a computed vector; NULL when neither fits. */
static drt_status channel_param(drt_graph *g, const drt_value *p, int64_t c, int64_t groups, int rank,
                                const char *name, drt_value **out) {
  *out = NULL;
  int64_t n = drt_shape_numel(&p->shape);
  drt_shape sh;
  memset(&sh, 0, sizeof sh);
  sh.rank = rank - 1;
  sh.dims[0] = c;
  for (int d = 1; d < sh.rank; d++) sh.dims[d] = 1;
  if (p->kind != DRT_VALUE_CONST && n == c && p->shape.rank >= 1) {
    /* a computed per-channel vector: view it as [C, 1, ...] with a Reshape */
    drt_value *shape_v, *r = drt_graph_add_value(g, NULL, DRT_DTYPE_UNDEFINED, NULL);
    drt_shape s1 = {1, {sh.rank}};
    if (!r) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "group norm parameter");
    DRT_RETURN_IF_ERROR(drt_graph_add_const(g, NULL, DRT_DTYPE_INT64, &s1, sh.dims, &shape_v));
    drt_value *ins[2] = {(drt_value *)p, shape_v};
    drt_node *rn;
    DRT_RETURN_IF_ERROR(drt_graph_add_node(g, DRT_OP_RESHAPE, name, ins, 2, &r, 1, &rn));
    DRT_RETURN_IF_ERROR(drt_infer_node(g, rn));
    *out = r;
    return DRT_OK;
  }
  if (p->kind != DRT_VALUE_CONST || !p->data || p->dtype != DRT_DTYPE_FLOAT32 || (n != c && n != groups)) return DRT_OK;
  float *buf = malloc((size_t)(c > 0 ? c : 1) * sizeof(float));
  if (!buf) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "group norm parameter");
  const float *src = p->data;
  for (int64_t i = 0; i < c; i++) buf[i] = n == c ? src[i] : src[i / (c / groups)];
  drt_status st = drt_graph_add_const(g, name, DRT_DTYPE_FLOAT32, &sh, buf, out);
  free(buf);
  return st;
}

/* Drops an identity parameter (all ones for a scale, all zeros for a bias). */
static drt_value *unless_identity(drt_value *p, double identity) {
  return p && drt_const_all(p, identity, 0.0) ? NULL : p;
}

/* ---- base normalizations ------------------------------------------------------------------- */
static bool extra_outputs_unused(const drt_use_map *um, const drt_node *n) {
  for (int i = 1; i < n->num_outputs; i++)
    if (drt_use_count(um, n->outputs[i]) > 0) return false;
  return true;
}

static bool match_row_norm_op(const drt_use_map *um, drt_node *n, norm_site *s) {
  if (!extra_outputs_unused(um, n)) {
    decline(n, "its mean / inv_std_dev outputs are used");
    return false;
  }
  drt_value *x = n->inputs[0];
  int axis;
  drt_status st = drt_normalize_axis(drt_node_attr_int(n, "axis", -1), x->shape.rank, &axis);
  if (st) {
    drt_status_free(st);
    decline(n, "invalid axis");
    return false;
  }
  s->kind = n->op == DRT_OP_RMS_NORM ? DRT_NORM_RMS : DRT_NORM_LAYER;
  s->axis = axis;
  s->x = x;
  s->y = n->outputs[0];
  s->eps = drt_node_attr_float(n, "epsilon", 1e-5f);
  s->param[P_SCALE] = unless_identity(drt_node_input(n, 1), 1.0);
  if (n->op == DRT_OP_LAYER_NORM) s->param[P_BIAS] = unless_identity(drt_node_input(n, 2), 0.0);
  return add_kill(s, n);
}

static drt_status match_group_norm_op(drt_graph *g, drt_node *n, norm_site *s, bool *ok) {
  *ok = false;
  drt_value *x = n->inputs[0];
  if (x->shape.rank < 3) {
    decline(n, "rank %d data", x->shape.rank);
    return DRT_OK;
  }
  int64_t c = x->shape.dims[1];
  int64_t groups = n->op == DRT_OP_GROUP_NORM ? drt_node_attr_int(n, "num_groups", 0) : c;
  if (groups < 1 || c % groups) {
    decline(n, "num_groups %" PRId64 " does not divide %" PRId64 " channels", groups, c);
    return DRT_OK;
  }
  s->kind = DRT_NORM_GROUP;
  s->groups = groups;
  s->x = x;
  s->y = n->outputs[0];
  s->eps = drt_node_attr_float(n, "epsilon", 1e-5f);
  char name[300];
  for (int i = 0; i < 2; i++) {
    drt_value *p = n->inputs[1 + i];
    if (drt_const_all(p, i == 0 ? 1.0 : 0.0, 0.0)) continue;
    snprintf(name, sizeof name, "%s/%s", n->name, i == 0 ? "scale" : "bias");
    DRT_RETURN_IF_ERROR(channel_param(g, p, c, groups, x->shape.rank, name, &s->param[i]));
    if (!s->param[i]) {
      decline(n, "input %d '%s' has neither %" PRId64 " values nor is it a float32 constant with %" PRId64, i + 1,
              p->name, c, groups);
      return DRT_OK;
    }
  }
  *ok = add_kill(s, n);
  return DRT_OK;
}

/* Reshape(x:[N,C,...] -> [N,G,K]) -> InstanceNormalization -> Reshape(back to x's shape). */
static drt_status match_instance_norm(drt_graph *g, const drt_use_map *um, drt_node *n, norm_site *s, bool *ok) {
  *ok = false;
  drt_node *r1 = drt_producer_is(n->inputs[0], DRT_OP_RESHAPE);
  drt_node *r2 = drt_use_single(um, n->outputs[0]);
  if (!r1 || !r2 || r2->op != DRT_OP_RESHAPE || drt_use_count(um, n->inputs[0]) != 1 ||
      drt_use_is_output(um, n->inputs[0]))
    return match_group_norm_op(g, n, s, ok); /* a plain instance norm: one group per channel */
  drt_value *x = r1->inputs[0], *t = n->inputs[0], *y = r2->outputs[0];
  const drt_shape *xs = &x->shape, *ts = &t->shape;
  if (xs->rank < 3 || ts->rank != 3 || !drt_shape_equal(xs, &y->shape) || ts->dims[0] != xs->dims[0] ||
      ts->dims[1] < 1 || xs->dims[1] % ts->dims[1] != 0) {
    decline(n, "the Reshapes around it are not a group split of the channel axis");
    return DRT_OK;
  }
  int64_t c = xs->dims[1], groups = ts->dims[1];
  s->kind = DRT_NORM_GROUP;
  s->groups = groups;
  s->x = x;
  s->y = y;
  s->eps = drt_node_attr_float(n, "epsilon", 1e-5f);
  char name[300];
  for (int i = 0; i < 2; i++) {
    drt_value *p = n->inputs[1 + i];
    if (drt_const_all(p, i == 0 ? 1.0 : 0.0, 0.0)) continue;
    snprintf(name, sizeof name, "%s/%s", n->name, i == 0 ? "scale" : "bias");
    DRT_RETURN_IF_ERROR(channel_param(g, p, c, groups, xs->rank, name, &s->param[i]));
    if (!s->param[i]) {
      decline(n, "input %d '%s' is not a float32 constant with %" PRId64 " values", i + 1, p->name, groups);
      return DRT_OK;
    }
  }
  *ok = add_kill(s, r1) && add_kill(s, n) && add_kill(s, r2);
  return DRT_OK;
}

/* ---- decomposed Layer / RMS norms ------------------------------------------------------------
 *
 *   x --+-- [Cast up] -- Pow 2 | Mul(., .) -- ReduceMean(trailing axes) -- [Unsqueeze | Reshape] --+
 *       |                                                                                         |
 *       |     +-- [Add eps (either operand order; absent: eps 0)] <-------------------------------+
 *       |     |
 *       |     +-- Sqrt | Pow 0.5 --+-- Div(x, .) ---------------------------------+
 *       |     |                    +-- Reciprocal | Div(1, .) --+                 |
 *       |     +-- Pow -0.5 ---------------------------------------+-- Mul(x, .) --+-- [Cast back] -- Mul g
 *       +-- [Cast up] --------------------------------------------+
 *                                                       -> drt.Norm{kind=rms, axis, epsilon}(x, g)
 *
 *   LayerNorm: the same tail from mean((x - mean(x))^2), numerator x - mean(x).
 *
 * Axes come from the attribute or the (constant) input; keepdims=0 needs one Unsqueeze or
 * Reshape anywhere in the tail giving the reduced axes back. Exact widening Casts (float16 /
 * bfloat16 -> float32, any float -> float64) may sit on either use of x, with different Cast
 * nodes for the square and the numerator; a Cast of the result back to x's type is absorbed
 * and the norm then runs on x itself (it accumulates in double, so the intermediates never
 * exist in x's type). Before the rewrite: the statistic has x's shape with the reduced axes 1,
 * the numerator and the result have x's shape, epsilon is a non-negative scalar constant. */

/* The input of an exact float widening (a live Cast float16 / bfloat16 -> float32, float ->
 * float64 or float -> the same type), else v. */
static drt_value *unwiden(drt_value *v) {
  drt_node *c = drt_producer_is(v, DRT_OP_CAST);
  if (!c) return v;
  drt_dtype from = c->inputs[0]->dtype, to = v->dtype;
  if (!drt_dtype_is_float(from) || !drt_dtype_is_float(to)) return v;
  bool exact = from == to || to == DRT_DTYPE_FLOAT64 ||
               (to == DRT_DTYPE_FLOAT32 && (from == DRT_DTYPE_FLOAT16 || from == DRT_DTYPE_BFLOAT16));
  return exact ? c->inputs[0] : v;
}

/* Whether a and b hold the same numbers in the same type: one value, or exact widenings of one. */
static bool same_data(drt_value *a, drt_value *b) {
  return a == b || (a->dtype == b->dtype && unwiden(a) == unwiden(b));
}

/* First reduced axis of a ReduceMean over trailing axes [a, rank) (keepdims either way); -1
 * otherwise (also when the axes input is not a constant). */
static int trailing_mean_axis(const drt_node *r) {
  drt_value *x = r->inputs[0];
  drt_tensor axes;
  const drt_tensor *ap = NULL;
  drt_value *av = drt_node_input(r, 1);
  if (av) {
    if (av->kind != DRT_VALUE_CONST) return -1;
    axes = drt_value_tensor(av);
    ap = &axes;
  }
  bool reduced[DRT_MAX_RANK];
  drt_shape out;
  drt_status st = drt_reduce_resolve(r, &x->shape, ap, reduced, &out);
  if (st) {
    drt_status_free(st);
    return -1;
  }
  int a = x->shape.rank;
  while (a > 0 && reduced[a - 1]) a--;
  for (int d = 0; d < a; d++)
    if (reduced[d]) return -1;
  if (out.rank != x->shape.rank && out.rank != a) return -1;
  return a < x->shape.rank ? a : -1;
}

/* x's shape with the axes [a, rank) set to 1: the shape of the statistic. */
static drt_shape keepdims_shape(const drt_shape *x, int a) {
  drt_shape k = *x;
  for (int d = a; d < k.rank; d++) k.dims[d] = 1;
  return k;
}

/* Whether p computes num^2 (Pow(num, 2) or Mul(num, num)). */
static bool is_square_of(const drt_node *p, drt_value **num) {
  double e;
  if (p->op == DRT_OP_POW && drt_const_scalar(p->inputs[1], &e) && e == 2.0) {
    *num = p->inputs[0];
    return true;
  }
  if (p->op == DRT_OP_MUL && p->inputs[0] == p->inputs[1]) {
    *num = p->inputs[0];
    return true;
  }
  return false;
}

/* The only consumer of *v. A Reshape / Unsqueeze giving a keepdims=0 statistic its reduced
 * axes back (output shape kd) is absorbed on the way and *v moves past it. */
static drt_node *next_use(const drt_use_map *um, norm_site *s, drt_value **v, const drt_shape *kd) {
  drt_node *u = drt_use_single(um, *v);
  if (u && (u->op == DRT_OP_UNSQUEEZE || u->op == DRT_OP_RESHAPE) && !drt_shape_equal(&(*v)->shape, kd) &&
      drt_shape_equal(&u->outputs[0]->shape, kd) && add_kill(s, u)) {
    *v = u->outputs[0];
    u = drt_use_single(um, *v);
  }
  return u;
}

static bool is_pow_of(const drt_node *n, const drt_value *base, double e) {
  double c;
  return n->op == DRT_OP_POW && n->inputs[0] == base && drt_const_scalar(n->inputs[1], &c) && c == e;
}

/* From the mean of squares ms (of num, statistic shape kd): [Add eps] -> Sqrt | Pow 0.5 ->
 * Div(num, .) | Mul(num, Reciprocal(.) | Div(1, .)), or [Add eps] -> Pow(., -0.5) -> Mul(num,
 * .). Sets s->eps, s->x (the numerator operand) and s->y; NULL, or why it does not match. */
static const char *match_tail(const drt_use_map *um, norm_site *s, drt_value *ms, drt_value *num, const drt_shape *kd) {
  drt_value *v = ms;
  drt_node *u = next_use(um, s, &v, kd);
  double c;
  s->eps = 0.0;
  if (u && u->op == DRT_OP_ADD) {
    int o = drt_other_input(u, v);
    if (o < 0 || !drt_const_scalar(u->inputs[o], &c)) return "the Add after the mean is not of a scalar constant";
    if (!(c >= 0)) return "epsilon is negative";
    s->eps = c;
    add_kill(s, u);
    v = u->outputs[0];
    u = next_use(um, s, &v, kd);
  }
  if (!u) return "the mean (+ eps) has more than one use";
  drt_node *fin = NULL; /* Div(num, sqrt) or Mul(num, rsqrt) */
  if (u->op == DRT_OP_SQRT || is_pow_of(u, v, 0.5)) {
    add_kill(s, u);
    v = u->outputs[0];
    drt_node *d = next_use(um, s, &v, kd);
    if (!d) return "the square root has more than one use";
    if (d->op == DRT_OP_DIV && d->inputs[1] == v && same_data(d->inputs[0], num)) {
      fin = d;
    } else if (d->op == DRT_OP_RECIPROCAL ||
               (d->op == DRT_OP_DIV && d->inputs[1] == v && drt_const_scalar(d->inputs[0], &c) && c == 1.0)) {
      add_kill(s, d);
      v = d->outputs[0];
    } else if (d->op == DRT_OP_ADD) {
      return "epsilon is added after the square root (x / (sqrt(mean) + eps) is another function)";
    } else {
      return "the square root does not divide the data";
    }
  } else if (is_pow_of(u, v, -0.5)) {
    add_kill(s, u);
    v = u->outputs[0];
  } else {
    return "the mean (+ eps) is not followed by Sqrt, Pow 0.5 or Pow -0.5";
  }
  if (!fin) {
    drt_node *m = next_use(um, s, &v, kd);
    int o = m && m->op == DRT_OP_MUL ? drt_other_input(m, v) : -1;
    if (o < 0 || !same_data(m->inputs[o], num)) return "the reciprocal square root does not multiply the data";
    fin = m;
  }
  drt_value *data = fin->op == DRT_OP_DIV ? fin->inputs[0] : fin->inputs[drt_other_input(fin, v)];
  drt_value *y = fin->outputs[0];
  if (!drt_shape_equal(&v->shape, kd) || !drt_shape_equal(&data->shape, &num->shape) ||
      !drt_shape_equal(&y->shape, &num->shape) || y->dtype != data->dtype)
    return "the statistic does not have the data's shape with the reduced axes 1";
  s->x = data;
  s->y = y;
  return add_kill(s, fin) ? NULL : "too many nodes";
}

static bool match_reduce_mean(const drt_graph *g, const drt_use_map *um, drt_node *n, norm_site *s) {
  int a = trailing_mean_axis(n);
  if (a < 0) {
    decline(n, "not a mean over trailing axes (given by the attribute or a constant input)");
    return false;
  }
  drt_value *in = n->inputs[0], *mean = n->outputs[0];
  drt_shape kd = keepdims_shape(&in->shape, a);
  drt_node *sq = drt_producer_of(in);
  drt_value *num = NULL;
  const char *why;
  if (sq && is_square_of(sq, &num) && drt_use_count(um, in) == 1 && !drt_use_is_output(um, in)) {
    /* RMSNorm: mean of x^2 */
    s->kind = DRT_NORM_RMS;
    s->axis = a;
    add_kill(s, sq);
    add_kill(s, n);
    if ((why = match_tail(um, s, mean, num, &kd))) {
      decline(n, "mean of squares, but not an RMSNorm: %s", why);
      return false;
    }
    return true;
  }
  /* LayerNorm: d = x - mean(x); mean(d^2) ... */
  drt_value *mv = mean;
  drt_node *sub = next_use(um, s, &mv, &kd);
  if (!sub || sub->op != DRT_OP_SUB || sub->inputs[1] != mv || !same_data(sub->inputs[0], in) ||
      !drt_shape_equal(&mv->shape, &kd)) {
    decline(n, "its result does not feed Sub(x, mean) nor is it a mean of squares");
    return false;
  }
  drt_value *d = sub->outputs[0];
  drt_node *cs[4];
  int nc = consumers(g, d, cs, 4);
  if (nc != 2 || drt_use_is_output(um, d)) {
    decline(n, "x - mean has %d consumers, expected 2", nc);
    return false;
  }
  drt_node *p = NULL;
  drt_value *pn = NULL;
  for (int i = 0; i < 2; i++)
    if (is_square_of(cs[i], &pn) && pn == d) p = cs[i];
  drt_node *r2 = p ? drt_use_single(um, p->outputs[0]) : NULL;
  if (!r2 || r2->op != DRT_OP_REDUCE_MEAN || trailing_mean_axis(r2) != a) {
    decline(n, "x - mean is not squared and averaged over the same axes");
    return false;
  }
  s->kind = DRT_NORM_LAYER;
  s->axis = a;
  add_kill(s, n);
  add_kill(s, sub);
  add_kill(s, p);
  add_kill(s, r2);
  if ((why = match_tail(um, s, r2->outputs[0], d, &kd))) {
    decline(n, "variance, but not a LayerNorm: %s", why);
    return false;
  }
  s->x = sub->inputs[0]; /* the fused node normalizes x, not x - mean */
  return true;
}

/* x -> Cast up -> norm -> Cast back to x's type: the norm runs on x (exact: the up-cast loses
 * nothing and the norm rounds its double result once, to x's type). Only before parameters. */
static void absorb_casts(const drt_use_map *um, norm_site *s) {
  drt_value *root = unwiden(s->x);
  if (root == s->x) return;
  drt_node *c = drt_use_single(um, s->y);
  if (!c || c->op != DRT_OP_CAST || c->outputs[0]->dtype != root->dtype || !add_kill(s, c)) return;
  s->x = root;
  s->y = c->outputs[0];
}

/* ---- activations ---------------------------------------------------------------------------- */
static bool act_op(drt_op op) {
  switch (op) {
    case DRT_OP_ADD: case DRT_OP_SUB: case DRT_OP_MUL: case DRT_OP_DIV: case DRT_OP_POW: case DRT_OP_SQRT:
    case DRT_OP_ERF: case DRT_OP_TANH: case DRT_OP_SIGMOID: case DRT_OP_EXP: case DRT_OP_NEG:
    case DRT_OP_RECIPROCAL: case DRT_OP_GELU:
      return true;
    default: return false;
  }
}

static int index_of(drt_value *const *vals, int n, const drt_value *v) {
  for (int i = 0; i < n; i++)
    if (vals[i] == v) return i;
  return -1;
}

static double eval_node(const drt_node *nd, const double *a) {
  switch (nd->op) {
    case DRT_OP_ADD: return a[0] + a[1];
    case DRT_OP_SUB: return a[0] - a[1];
    case DRT_OP_MUL: return a[0] * a[1];
    case DRT_OP_DIV: return a[0] / a[1];
    case DRT_OP_POW: return pow(a[0], a[1]);
    case DRT_OP_SQRT: return sqrt(a[0]);
    case DRT_OP_ERF: return erf(a[0]);
    case DRT_OP_TANH: return tanh(a[0]);
    case DRT_OP_SIGMOID: return 1.0 / (1.0 + exp(-a[0]));
    case DRT_OP_EXP: return exp(a[0]);
    case DRT_OP_NEG: return -a[0];
    case DRT_OP_RECIPROCAL: return 1.0 / a[0];
    case DRT_OP_GELU:
      if (strcmp(drt_node_attr_string(nd, "approximate", "none"), "tanh") == 0)
        return 0.5 * a[0] * (1.0 + tanh(0.7978845608028654 * (a[0] + 0.044715 * a[0] * a[0] * a[0])));
      return 0.5 * a[0] * (1.0 + erf(a[0] / sqrt(2.0)));
    default: return NAN;
  }
}

static double act_ref(drt_norm_act a, double x) {
  switch (a) {
    case DRT_NORM_ACT_SILU: return x / (1.0 + exp(-x));
    case DRT_NORM_ACT_GELU: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case DRT_NORM_ACT_GELU_TANH: return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    case DRT_NORM_ACT_NONE: break;
  }
  return x;
}

/* Recognizes y -> (pointwise nodes on y and scalar constants) -> z as SiLU / GELU / tanh-GELU.
 * On success adds the nodes to s->kill and sets s->act and s->y. */
static bool match_activation(const drt_graph *g, const drt_use_map *um, norm_site *s) {
  drt_value *y = s->y;
  drt_node *region[ACT_MAX_NODES];
  drt_value *vals[ACT_MAX_NODES + 1];
  int nr = 0, nv = 0;
  vals[nv++] = y;
  /* grow: nodes whose inputs are region values or scalar constants (g->nodes is topological) */
  for (size_t i = 0; i < g->num_nodes && nr < ACT_MAX_NODES; i++) {
    drt_node *nd = g->nodes[i];
    if (nd->dead || !act_op(nd->op) || nd->num_outputs != 1) continue;
    bool any = false, ok = true;
    for (int j = 0; j < nd->num_inputs && ok; j++) {
      double c;
      if (index_of(vals, nv, nd->inputs[j]) >= 0) any = true;
      else if (!drt_const_scalar(nd->inputs[j], &c)) ok = false;
    }
    drt_value *o = nd->outputs[0];
    if (!ok || !any || o->dtype != y->dtype || !drt_shape_equal(&o->shape, &y->shape)) continue;
    region[nr++] = nd;
    vals[nv++] = o;
  }
  static const double xs[] = {-6, -3.5, -2, -1.3, -1, -0.6, -0.25, -0.05, 0.07, 0.3, 0.8, 1, 1.6, 2.4, 3.7, 6};
  const int npts = (int)(sizeof xs / sizeof xs[0]);
  /* try exits in topological order; the sub-region computing z must use y and all its own
   * values only internally */
  for (int zi = 1; zi < nv; zi++) {
    bool need[ACT_MAX_NODES + 1] = {false};
    need[zi] = true;
    for (int k = zi; k >= 1; k--) {
      if (!need[k]) continue;
      const drt_node *nd = region[k - 1];
      for (int j = 0; j < nd->num_inputs; j++) {
        int vi = index_of(vals, nv, nd->inputs[j]);
        if (vi >= 0) need[vi] = true;
      }
    }
    if (!need[0]) continue;
    bool closed = true;
    for (int k = 0; k <= zi && closed; k++) {
      if (!need[k] || k == zi) continue;
      uint32_t inside = 0;
      for (int m = 1; m <= zi; m++) {
        if (!need[m]) continue;
        const drt_node *nd = region[m - 1];
        for (int j = 0; j < nd->num_inputs; j++) inside += nd->inputs[j] == vals[k];
      }
      if (drt_use_count(um, vals[k]) != inside || drt_use_is_output(um, vals[k])) closed = false;
    }
    if (!closed) continue;
    for (int a = DRT_NORM_ACT_SILU; a <= DRT_NORM_ACT_GELU_TANH; a++) {
      bool match = true;
      for (int p = 0; p < npts && match; p++) {
        double v[ACT_MAX_NODES + 1];
        v[0] = xs[p];
        for (int m = 1; m <= zi; m++) {
          if (!need[m]) continue;
          const drt_node *nd = region[m - 1];
          double args[2] = {0, 0};
          for (int j = 0; j < nd->num_inputs && j < 2; j++) {
            int vi = index_of(vals, nv, nd->inputs[j]);
            double c = 0;
            if (vi >= 0) args[j] = v[vi];
            else if (drt_const_scalar(nd->inputs[j], &c)) args[j] = c;
          }
          v[m] = eval_node(nd, args);
        }
        double want = act_ref((drt_norm_act)a, xs[p]);
        if (!(fabs(v[zi] - want) <= 2e-5 * (1.0 + fabs(want)))) match = false;
      }
      if (!match) continue;
      for (int m = 1; m <= zi; m++)
        if (need[m] && !add_kill(s, region[m - 1])) return false;
      s->act = (drt_norm_act)a;
      s->y = vals[zi];
      return true;
    }
  }
  return false;
}

/* adaLN: for Mul(., p) with p = Add(scale, 1) used only by that Mul, returns scale. */
static drt_value *modulation_of(const drt_use_map *um, drt_value *p, const drt_node *mul) {
  drt_node *a = drt_producer_is(p, DRT_OP_ADD);
  double c;
  if (!a || drt_use_single(um, p) != mul) return NULL;
  int o = drt_const_scalar(a->inputs[1], &c) ? 1 : drt_const_scalar(a->inputs[0], &c) ? 0 : -1;
  if (o < 0 || c != 1.0) return NULL;
  drt_value *m = a->inputs[1 - o];
  return m->dtype == p->dtype && drt_shape_equal(&m->shape, &p->shape) ? m : NULL;
}

/* ---- epilogue: affine, modulation, activation ------------------------------------------------ */
static void absorb_epilogue(const drt_graph *g, const drt_use_map *um, norm_site *s) {
  for (int step = 0; step < 8; step++) {
    if (match_activation(g, um, s)) return;
    drt_node *u = drt_use_single(um, s->y);
    if (!u || (u->op != DRT_OP_MUL && u->op != DRT_OP_ADD)) return;
    int o = drt_other_input(u, s->y);
    if (o < 0) return;
    drt_value *p = u->inputs[o], *out = u->outputs[0];
    if (out->dtype != s->y->dtype || !drt_shape_equal(&out->shape, &s->y->shape) || !param_ok(g, s, p)) return;
    drt_value **slot = s->param;
    if (u->op == DRT_OP_MUL) {
      drt_value *one_plus = modulation_of(um, p, u);
      if (drt_const_all(p, 1.0, 0.0)) {
        /* identity: absorb without a parameter */
      } else if (!slot[P_SCALE] && !slot[P_BIAS] && !slot[P_MSCALE] && !slot[P_MSHIFT] && !one_plus) {
        slot[P_SCALE] = p;
      } else if (!slot[P_MSCALE] && !slot[P_MSHIFT]) {
        slot[P_MSCALE] = one_plus ? one_plus : p;
        if (one_plus) {
          s->one_plus = true;
          add_kill(s, p->producer);
        }
      } else {
        return;
      }
    } else {
      if (drt_const_all(p, 0.0, 0.0)) {
        /* identity */
      } else if (!slot[P_BIAS] && !slot[P_MSCALE] && !slot[P_MSHIFT]) {
        slot[P_BIAS] = p;
      } else if (!slot[P_MSHIFT]) {
        slot[P_MSHIFT] = p;
      } else {
        return;
      }
    }
    if (!add_kill(s, u)) return;
    s->y = out;
  }
}

/* ---- building the fused node ----------------------------------------------------------------- */
static drt_status set_attr(drt_graph *g, drt_node *n, const char *name, drt_attr_type t, int64_t i, float f,
                           const char *str) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = t;
  a.i = i;
  a.f = f;
  if (str) {
    a.s = str;
    a.s_len = strlen(str);
  }
  return drt_node_add_attr(g, n, &a);
}

static drt_status build(drt_graph *g, norm_site *s, bool *done) {
  *done = false;
  drt_value *tmp = drt_graph_add_value(g, NULL, DRT_DTYPE_UNDEFINED, NULL);
  if (!tmp) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "fused norm output");
  drt_value *ins[1 + DRT_NORM_PARAMS] = {s->x, s->param[0], s->param[1], s->param[2], s->param[3]};
  int ni = 1 + DRT_NORM_PARAMS;
  while (ni > 1 && !ins[ni - 1]) ni--;
  drt_node *n;
  char name[300];
  snprintf(name, sizeof name, "%s/fused_norm", s->anchor->name);
  DRT_RETURN_IF_ERROR(drt_graph_add_node(g, DRT_OP_FUSED_NORM, name, ins, ni, &tmp, 1, &n));
  n->opset = s->anchor->opset;
  DRT_RETURN_IF_ERROR(set_attr(g, n, "kind", DRT_ATTR_STRING, 0, 0, drt_norm_kind_name(s->kind)));
  if (s->kind == DRT_NORM_GROUP) DRT_RETURN_IF_ERROR(set_attr(g, n, "num_groups", DRT_ATTR_INT, s->groups, 0, NULL));
  else DRT_RETURN_IF_ERROR(set_attr(g, n, "axis", DRT_ATTR_INT, s->axis, 0, NULL));
  DRT_RETURN_IF_ERROR(set_attr(g, n, "epsilon", DRT_ATTR_FLOAT, 0, (float)s->eps, NULL));
  if (s->one_plus) DRT_RETURN_IF_ERROR(set_attr(g, n, "mod_one_plus", DRT_ATTR_INT, 1, 0, NULL));
  if (s->act != DRT_NORM_ACT_NONE)
    DRT_RETURN_IF_ERROR(set_attr(g, n, "activation", DRT_ATTR_STRING, 0, 0, drt_norm_act_name(s->act)));
  drt_status st = drt_infer_node(g, n);
  if (!st && (tmp->dtype != s->y->dtype || !drt_shape_equal(&tmp->shape, &s->y->shape)))
    st = DRT_ERROR(DRT_STATUS_INTERNAL, "fused output type differs from '%s'", s->y->name);
  if (st) {
    decline(s->anchor, "the fused node does not validate: %s", drt_status_message(st));
    drt_status_free(st);
    n->dead = true;
    return DRT_OK;
  }
  for (int i = 0; i < s->nkill; i++) s->kill[i]->dead = true;
  n->outputs[0] = s->y;
  s->y->producer = n;
  s->y->producer_output = 0;
  s->y->kind = DRT_VALUE_INTERMEDIATE;
  *done = true;
  if (drt_log_enabled(DRT_LOG_INFO)) {
    char sh[128];
    drt_log(DRT_LOG_INFO, "norm-fuse: %s '%s' -> drt.Norm (%s on %s, params%s%s%s%s%s, activation %s, %d nodes replaced)",
            drt_op_name(s->anchor->op), s->anchor->name, drt_norm_kind_name(s->kind),
            drt_shape_str(&s->x->shape, sh, sizeof sh), s->param[0] ? " scale" : "", s->param[1] ? " bias" : "",
            s->param[2] ? (s->one_plus ? " 1+mod_scale" : " mod_scale") : "", s->param[3] ? " mod_shift" : "",
            s->param[0] || s->param[1] || s->param[2] || s->param[3] ? "" : " none", drt_norm_act_name(s->act),
            s->nkill);
  }
  return DRT_OK;
}

/* ---- the pass ----------------------------------------------------------------------------- */
drt_status drt_pass_norm_fuse(drt_graph *g, const drt_pass_ctx *ctx, bool *changed) {
  *changed = false;
  DRT_RETURN_IF_ERROR(drt_graph_topo_sort(g));
  drt_use_map um;
  DRT_RETURN_IF_ERROR(drt_use_map_build(g, &um));
  size_t count = g->num_nodes;
  int64_t fused = 0;
  drt_status st = DRT_OK;
  for (size_t i = 0; i < count && !st; i++) {
    drt_node *n = g->nodes[i];
    if (n->dead) continue;
    norm_site s;
    memset(&s, 0, sizeof s);
    s.anchor = n;
    bool ok = false;
    switch (n->op) {
      case DRT_OP_LAYER_NORM:
      case DRT_OP_RMS_NORM: ok = match_row_norm_op(&um, n, &s); break;
      case DRT_OP_GROUP_NORM: st = match_group_norm_op(g, n, &s, &ok); break;
      case DRT_OP_INSTANCE_NORM: st = match_instance_norm(g, &um, n, &s, &ok); break;
      case DRT_OP_REDUCE_MEAN: ok = match_reduce_mean(g, &um, n, &s); break;
      default: continue;
    }
    if (st || !ok) continue;
    if (!drt_dtype_is_float(s.x->dtype)) {
      decline(n, "data is %s", drt_dtype_name(s.x->dtype));
      continue;
    }
    for (int k = 0; k < DRT_NORM_PARAMS; k++)
      if (s.param[k] && !param_ok(g, &s, s.param[k])) {
        decline(n, "parameter '%s' does not broadcast into the data or depends on it", s.param[k]->name);
        ok = false;
      }
    if (!ok) continue;
    if (n->op == DRT_OP_REDUCE_MEAN) absorb_casts(&um, &s);
    absorb_epilogue(g, &um, &s);
    bool done = false;
    st = build(g, &s, &done);
    if (st || !done) continue;
    fused++;
    drt_use_map_free(&um);
    st = drt_use_map_build(g, &um);
  }
  drt_use_map_free(&um);
  DRT_RETURN_IF_ERROR(st);
  drt_graph_compact(g);
  DRT_RETURN_IF_ERROR(drt_graph_topo_sort(g));
  drt_graph_dce(g);
  if (ctx && ctx->stats) ctx->stats->fused_norm += fused;
  *changed = fused > 0;
  return DRT_OK;
}
