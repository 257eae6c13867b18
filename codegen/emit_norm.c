/* CUDA emitters for the norm family: drt.Norm, LayerNormalization, RMSNormalization,
 * GroupNormalization, InstanceNormalization, Softmax/LogSoftmax, Reduce*, ArgMax/ArgMin and
 * drt.CfgCombine, plus GlobalAveragePool/GlobalMaxPool (as reductions) and BatchNormalization
 * (inference). The templates live in codegen/kernels/norm.cuh and cfg.cuh; each wrapper
 * defines a local configuration class with every shape, broadcast stride and mode folded in as a
 * constant (see the comment at the top of norm.cuh), so wrappers are self-contained and identical
 * nodes share one kernel. The CPU kernels (runtime/cpu/{fused_norm,norm,reduce,fused_cfg}.c) are
 * the reference semantics.
 *
 * Normalizations all reduce to one description (norm_desc): GROUPS statistic groups of
 * L = PER x PLANE contiguous elements, plus up to four parameters, each with an offset expression
 * in (plane r, position i) computed here from its broadcast strides. Three strategies:
 *   cached   TPR threads per group (a power of two <= 32 or the whole block), group in registers;
 *   stream   one block per group, re-reading it (long groups, many of them);
 *   split    two kernels: per-chunk (sum, M2) partials into scratch, then combine + normalize
 *            (long groups, few of them: GroupNorm 32 x (20 x 4096) on a small batch). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "codegen/cg.h"
#include "ir/cfg_combine.h"
#include "ir/infer.h"
#include "ir/infer_fused.h"
#include "ir/infer_reduce.h"

/* ---- text building ---------------------------------------------------------------------------- */
typedef struct sbuf {
  char s[12288];
  size_t n;
  bool overflow;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
  if (b->overflow) return;
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(b->s + b->n, sizeof b->s - b->n, fmt, ap);
  va_end(ap);
  if (k < 0 || (size_t)k >= sizeof b->s - b->n) {
    b->overflow = true;
    return;
  }
  b->n += (size_t)k;
}

/* Appends sum_d ((v / P_d) % D_d) * S_d over the dims with D_d > 1 and S_d != 0, where P_d is the
 * product of the sizes after d; v ranges over [0, prod(size)), so dim 0 needs no modulo. */
static void sb_index(sbuf *b, const char *v, int m, const int64_t *size, const int64_t *stride) {
  bool any = false;
  int64_t p = 1;
  for (int d = m - 1; d >= 0; d--) {
    if (size[d] > 1 && stride[d] != 0) {
      sb_printf(b, "%s", any ? " + " : "(");
      if (p == 1) sb_printf(b, "(%s", v);
      else sb_printf(b, "((%s / %" PRId64 "LL)", v, p);
      bool outer = true;
      for (int e = d - 1; e >= 0; e--) outer &= size[e] == 1;
      if (!outer) sb_printf(b, " %% %" PRId64 "LL", size[d]);
      sb_printf(b, ") * %" PRId64 "LL", stride[d]);
      any = true;
    }
    p *= size[d];
  }
  sb_printf(b, "%s", any ? ")" : "0LL");
}

/* "0x1.4f8b58p-17f" */
static void sb_float(sbuf *b, float f) { sb_printf(b, "%af", (double)f); }

static bool is_float_storage(drt_dtype d) {
  return d == DRT_DTYPE_FLOAT32 || d == DRT_DTYPE_FLOAT16 || d == DRT_DTYPE_BFLOAT16 || d == DRT_DTYPE_FLOAT64;
}

/* Largest vector width (elements, 16 bytes at most) dividing n. */
static int vec_for(drt_dtype storage, int64_t n) {
  int v = (int)(16 / drt_dtype_size(storage));
  if (v < 1) v = 1;
  while (v > 1 && n % v != 0) v /= 2;
  return v;
}

static int64_t pow2_ceil(int64_t x) {
  int64_t p = 1;
  while (p < x) p *= 2;
  return p;
}

static int64_t ceil_div(int64_t a, int64_t b) { return a / b + (a % b != 0); }

static drt_status check_float(const drt_cg *cg, const drt_value *v, const char *what) {
  drt_dtype s = drt_cg_storage(cg, v);
  if (!is_float_storage(s))
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s '%s' has dtype %s; the device kernels take floating-point data", what,
                     v->name, drt_dtype_name(v->dtype));
  return DRT_OK;
}

static drt_status add_kernel(drt_cg *cg, uint32_t threads, const sbuf *b, int32_t *k) {
  if (b->overflow) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "kernel wrapper longer than %zu bytes", sizeof b->s);
  return drt_cg_kernel(cg, threads, k, "%s", b->s);
}

static drt_status launch1(drt_cg *cg, int32_t k, uint32_t gx, uint32_t gy, uint32_t threads, const drt_cuda_arg *args,
                          int nargs) {
  uint32_t grid[3] = {gx, gy, 1}, block[3] = {threads, 1, 1};
  return drt_cg_launch(cg, k, grid, block, 0, args, nargs);
}

/* Number of SMs assumed when deciding whether a grid fills the device (H100: 132). */
#define SM_TARGET 132

/* ---- normalizations --------------------------------------------------------------------------- */
typedef struct norm_desc {
  bool rms;
  int act;             /* drt_norm_act */
  bool one_plus;
  float eps;
  int64_t groups, per, plane;
  const drt_value *x, *y, *mean, *inv;
  const drt_value *param[4];
  int mode[4];         /* 0 absent, 1 per plane, 2 contiguous aligned, 3 general */
  char off[4][640];    /* offset expression in r, i */
  int64_t lead_gcd[4]; /* gcd of the plane-index strides of a mode-2 parameter (alignment) */
} norm_desc;

static int64_t gcd64(int64_t a, int64_t b) {
  if (a < 0) a = -a;
  if (b < 0) b = -b;
  while (b) {
    int64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/* Numpy broadcast strides (elements) of shape p inside shape x (0 along broadcast dims). */
static void bcast_strides(const drt_shape *p, const drt_shape *x, int64_t *st) {
  int64_t s = 1;
  for (int d = x->rank - 1; d >= 0; d--) {
    int pd = d - (x->rank - p->rank);
    if (pd < 0 || p->dims[pd] == 1) {
      st[d] = 0;
    } else {
      st[d] = s;
      s *= p->dims[pd];
    }
  }
}

/* Fills mode/off of parameter k from its broadcast to x split at `split` (plane index over
 * dims [0, split), position over [split, rank)). */
static drt_status norm_param_bcast(norm_desc *d, int k, const drt_value *p, const drt_shape *x, int split) {
  d->param[k] = p;
  if (!p) return DRT_OK;
  if (p->shape.rank > x->rank)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "parameter '%s' has a higher rank than the data", p->name);
  int64_t st[DRT_MAX_RANK] = {0}, contig[DRT_MAX_RANK] = {0}, s = 1;
  bcast_strides(&p->shape, x, st);
  for (int e = x->rank - 1; e >= 0; e--) {
    contig[e] = s;
    s *= x->dims[e];
  }
  bool vector = true, scalar = true;
  for (int e = split; e < x->rank; e++) {
    if (x->dims[e] == 1) continue;
    if (st[e] != contig[e]) vector = false;
    if (st[e] != 0) scalar = false;
  }
  int64_t g = 0;
  for (int e = 0; e < split; e++)
    if (x->dims[e] > 1) g = gcd64(g, st[e]);
  d->lead_gcd[k] = g;
  sbuf b;
  b.n = 0;
  b.overflow = false;
  b.s[0] = 0;
  sb_index(&b, "r", split, x->dims, st);
  if (!scalar) {
    sb_printf(&b, " + ");
    if (vector) sb_printf(&b, "i");
    else sb_index(&b, "i", x->rank - split, x->dims + split, st + split);
  }
  if (b.overflow || b.n >= sizeof d->off[k])
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "parameter index expression too long");
  memcpy(d->off[k], b.s, b.n + 1);
  d->mode[k] = scalar ? 1 : vector ? 2 : 3;
  return DRT_OK;
}

static void norm_config(sbuf *b, const norm_desc *d, const char *t, const char *ty, const char *tp, const char *ts,
                        int64_t block, int64_t tpr, int vec, int64_t items, const int *mode, int64_t nch) {
  sb_printf(b,
            "  struct C {\n"
            "    typedef %s T;\n    typedef %s TY;\n    typedef %s TP;\n    typedef %s TS;\n"
            "    enum : long long { BLOCK = %" PRId64 ", TPR = %" PRId64 ", VEC = %d, ITEMS = %" PRId64 ", L = %" PRId64
            "LL, PER = %" PRId64 "LL, PLANE = %" PRId64 "LL, GROUPS = %" PRId64 "LL, RMS = %d, ACT = %d, ONEPLUS = %d, "
            "M0 = %d, M1 = %d, M2 = %d, M3 = %d, MEAN = %d, INV = %d, NCH = %" PRId64 " };\n"
            "    static __device__ __forceinline__ long long off(int k, long long r, long long i) {\n"
            "      (void)r;\n      (void)i;\n      switch (k) {\n",
            t, ty, tp, ts, block, tpr, vec, items, d->per * d->plane, d->per, d->plane, d->groups, d->rms ? 1 : 0, d->act,
            d->one_plus ? 1 : 0, mode[0], mode[1], mode[2], mode[3], d->mean ? 1 : 0, d->inv ? 1 : 0, nch);
  for (int k = 0; k < 4; k++)
    if (mode[k]) sb_printf(b, "        case %d: return %s;\n", k, d->off[k]);
  sb_printf(b, "        default: return 0;\n      }\n    }\n  };\n");
}

static drt_status emit_norm_desc(drt_cg *cg, const norm_desc *d) {
  int64_t L = d->per * d->plane;
  if (d->groups * L == 0) return DRT_OK;
  DRT_RETURN_IF_ERROR(check_float(cg, d->x, "input 0"));
  drt_dtype st = drt_cg_storage(cg, d->x);
  DRT_RETURN_IF_ERROR(check_float(cg, d->y, "output 0"));
  drt_dtype yst = drt_cg_storage(cg, d->y); /* may differ: float32 storage of accumulating activations */
  const char *t = drt_cg_ctype(cg, st), *ty = drt_cg_ctype(cg, yst), *tp = t, *ts = "float";
  drt_dtype pst = st;
  bool have_p = false;
  for (int k = 0; k < 4; k++) {
    if (!d->param[k]) continue;
    DRT_RETURN_IF_ERROR(check_float(cg, d->param[k], "parameter"));
    drt_dtype s = drt_cg_storage(cg, d->param[k]);
    if (have_p && s != pst)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "parameters with different dtypes (%s and %s)", drt_dtype_name(pst),
                       drt_dtype_name(s));
    pst = s;
    have_p = true;
  }
  tp = drt_cg_ctype(cg, pst);
  const drt_value *stat = d->mean ? d->mean : d->inv;
  if (stat) {
    DRT_RETURN_IF_ERROR(check_float(cg, stat, "statistics output"));
    if (d->mean && d->inv && drt_cg_storage(cg, d->mean) != drt_cg_storage(cg, d->inv))
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "mean and inv-std outputs with different dtypes");
    ts = drt_cg_ctype(cg, drt_cg_storage(cg, stat));
  }
  /* vector width: a vector never straddles planes; mode-2 parameters must stay aligned */
  int vec = vec_for(st, d->plane), yvec = vec_for(yst, d->plane);
  if (yvec < vec) vec = yvec;
  int pvec = vec_for(pst, d->plane);
  if (pvec < vec) vec = pvec;
  int mode[4];
  for (int k = 0; k < 4; k++) {
    mode[k] = d->mode[k];
    if (mode[k] == 2 && vec > 1 && d->lead_gcd[k] % vec != 0) mode[k] = 3;
  }
  int64_t nvec = L / vec;

  drt_cuda_arg args[9];
  args[0] = drt_cg_arg_value(d->x);
  args[1] = drt_cg_arg_value(d->y);
  for (int k = 0; k < 4; k++) args[2 + k] = d->param[k] ? drt_cg_arg_value(d->param[k]) : drt_cg_arg_none();
  args[6] = d->mean ? drt_cg_arg_value(d->mean) : drt_cg_arg_none();
  args[7] = d->inv ? drt_cg_arg_value(d->inv) : drt_cg_arg_none();
  args[8] = drt_cg_arg_none();

  sbuf b;
  b.n = 0;
  b.overflow = false;
  b.s[0] = 0;
  int32_t k1, k2;
  if (d->groups < 2 * SM_TARGET && L > 8192) { /* split */
    int64_t block = 256, items = vec >= 4 ? 16 / vec : 4;
    if (items < 1) items = 1;
    int64_t ch = block * items * vec, nch = ceil_div(L, ch);
    if (nch > 1 && d->groups <= 65535) {
      args[8] = drt_cg_scratch(cg, (uint64_t)(d->groups * nch * 2) * sizeof(float));
      sb_printf(&b, "extern \"C\" __global__ void __launch_bounds__(%" PRId64 ") @NAME@(drt_kargs a) {\n", block);
      norm_config(&b, d, t, ty, tp, ts, block, block, vec, items, mode, nch);
      sb_printf(&b, "  drt_norm_split_stats<C>(a);\n}\n");
      DRT_RETURN_IF_ERROR(add_kernel(cg, (uint32_t)block, &b, &k1));
      b.n = 0;
      sb_printf(&b, "extern \"C\" __global__ void __launch_bounds__(%" PRId64 ") @NAME@(drt_kargs a) {\n", block);
      norm_config(&b, d, t, ty, tp, ts, block, block, vec, items, mode, nch);
      sb_printf(&b, "  drt_norm_split_apply<C>(a, ");
      sb_float(&b, d->eps);
      sb_printf(&b, ");\n}\n");
      DRT_RETURN_IF_ERROR(add_kernel(cg, (uint32_t)block, &b, &k2));
      DRT_RETURN_IF_ERROR(launch1(cg, k1, (uint32_t)nch, (uint32_t)d->groups, (uint32_t)block, args, 9));
      return launch1(cg, k2, (uint32_t)nch, (uint32_t)d->groups, (uint32_t)block, args, 9);
    }
  }
  int64_t tpr = pow2_ceil(ceil_div(nvec, 2));
  if (tpr > 1024) tpr = 1024;
  /* groups of 32 .. 256 vectors (LayerNorm over 256 .. 2048 bf16 channels): one warp per group,
     up to 8 vectors per thread in flight and shuffle-only reductions, instead of a block per
     group with two block-wide reductions behind barriers */
  if (nvec >= 32 && nvec <= 256) tpr = 32;
  int64_t items = ceil_div(nvec, tpr);
  if (items * vec <= 32 || (tpr == 32 && items * vec <= 64)) { /* cached */
    int64_t block = tpr > 32 ? tpr : 128;
    int64_t rpb = block / tpr;
    sb_printf(&b, "extern \"C\" __global__ void __launch_bounds__(%" PRId64 ") @NAME@(drt_kargs a) {\n", block);
    norm_config(&b, d, t, ty, tp, ts, block, tpr, vec, items, mode, 1);
    sb_printf(&b, "  drt_norm_cached<C>(a, ");
    sb_float(&b, d->eps);
    sb_printf(&b, ");\n}\n");
    DRT_RETURN_IF_ERROR(add_kernel(cg, (uint32_t)block, &b, &k1));
    return launch1(cg, k1, (uint32_t)ceil_div(d->groups, rpb), 1, (uint32_t)block, args, 9);
  }
  int64_t block = 512;
  sb_printf(&b, "extern \"C\" __global__ void __launch_bounds__(%" PRId64 ") @NAME@(drt_kargs a) {\n", block);
  norm_config(&b, d, t, ty, tp, ts, block, block, vec, 1, mode, 1);
  sb_printf(&b, "  drt_norm_stream<C>(a, ");
  sb_float(&b, d->eps);
  sb_printf(&b, ");\n}\n");
  DRT_RETURN_IF_ERROR(add_kernel(cg, (uint32_t)block, &b, &k1));
  return launch1(cg, k1, (uint32_t)d->groups, 1, (uint32_t)block, args, 9);
}

static void norm_geometry(norm_desc *d, const drt_shape *x, int split, int64_t per) {
  d->groups = 1;
  d->plane = 1;
  for (int e = 0; e < x->rank; e++) {
    if (e < split) d->groups *= x->dims[e];
    else d->plane *= x->dims[e];
  }
  d->per = per;
  d->groups /= per;
}

/* drt.Norm: X, [scale], [bias], [mod_scale], [mod_shift] */
static drt_status emit_fused_norm(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0];
  const drt_shape *ps[DRT_NORM_PARAMS] = {NULL, NULL, NULL, NULL};
  for (int k = 0; k < DRT_NORM_PARAMS; k++) {
    const drt_value *p = drt_node_input(n, k + 1);
    if (p) ps[k] = &p->shape;
  }
  drt_fused_norm f;
  DRT_RETURN_IF_ERROR(drt_fused_norm_resolve(n, &x->shape, ps, &f));
  norm_desc d;
  memset(&d, 0, sizeof d);
  d.rms = f.kind == DRT_NORM_RMS;
  d.act = (int)f.act;
  d.one_plus = f.mod_one_plus;
  d.eps = (float)f.eps;
  d.x = x;
  d.y = n->outputs[0];
  norm_geometry(&d, &x->shape, f.split, f.planes_per_stat);
  for (int k = 0; k < DRT_NORM_PARAMS; k++)
    DRT_RETURN_IF_ERROR(norm_param_bcast(&d, k, drt_node_input(n, k + 1), &x->shape, f.split));
  return emit_norm_desc(cg, &d);
}

/* LayerNormalization (X, Scale, [B] -> Y, [Mean], [InvStdDev]) and RMSNormalization (X, scale). */
static drt_status emit_layer_norm(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0];
  bool rms = n->op == DRT_OP_RMS_NORM;
  int axis;
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_node_attr_int(n, "axis", -1), x->shape.rank, &axis), "attribute axis");
  norm_desc d;
  memset(&d, 0, sizeof d);
  d.rms = rms;
  d.eps = drt_node_attr_float(n, "epsilon", 1e-5f);
  d.x = x;
  d.y = n->outputs[0];
  if (!rms) {
    d.mean = n->num_outputs > 1 ? n->outputs[1] : NULL;
    d.inv = n->num_outputs > 2 ? n->outputs[2] : NULL;
  }
  norm_geometry(&d, &x->shape, axis, 1);
  DRT_RETURN_IF_ERROR(norm_param_bcast(&d, 0, drt_node_input(n, 1), &x->shape, axis));
  if (!rms) DRT_RETURN_IF_ERROR(norm_param_bcast(&d, 1, drt_node_input(n, 2), &x->shape, axis));
  return emit_norm_desc(cg, &d);
}

/* GroupNormalization (X, scale, bias; scale/bias per channel, or per group when they have
 * num_groups elements: opset 18) and InstanceNormalization (per channel). */
static drt_status emit_group_norm(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0];
  if (x->shape.rank < 2) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input 0 needs rank >= 2, got %d", x->shape.rank);
  int64_t c = x->shape.dims[1];
  int64_t groups = n->op == DRT_OP_INSTANCE_NORM ? c : drt_node_attr_int(n, "num_groups", 0);
  if (groups <= 0 || c % groups)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "num_groups %" PRId64 " does not divide the %" PRId64 " channels",
                     groups, c);
  norm_desc d;
  memset(&d, 0, sizeof d);
  d.eps = drt_node_attr_float(n, "epsilon", 1e-5f);
  d.x = x;
  d.y = n->outputs[0];
  int64_t cpg = c / groups;
  norm_geometry(&d, &x->shape, 2, cpg);
  const drt_value *sc = drt_node_input(n, 1);
  bool per_group = sc && drt_shape_numel(&sc->shape) != c;
  for (int k = 0; k < 2; k++) {
    const drt_value *p = drt_node_input(n, 1 + k);
    if (!p) continue;
    int64_t want = per_group ? groups : c;
    if (drt_shape_numel(&p->shape) != want)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input %d '%s' has %" PRId64 " values, expected %" PRId64, 1 + k,
                       p->name, drt_shape_numel(&p->shape), want);
    d.param[k] = p;
    d.mode[k] = 1;
    if (c == 1) snprintf(d.off[k], sizeof d.off[k], "0LL");
    else if (per_group && cpg > 1) snprintf(d.off[k], sizeof d.off[k], "(r %% %" PRId64 "LL) / %" PRId64 "LL", c, cpg);
    else snprintf(d.off[k], sizeof d.off[k], "r %% %" PRId64 "LL", c);
  }
  return emit_norm_desc(cg, &d);
}

/* ---- Softmax / LogSoftmax --------------------------------------------------------------------- */
static drt_status emit_softmax(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0];
  DRT_RETURN_IF_ERROR(check_float(cg, x, "input 0"));
  int64_t outer, len, inner;
  DRT_RETURN_IF_ERROR(drt_softmax_extent(n, &x->shape, &outer, &len, &inner));
  if (outer * len * inner == 0) return DRT_OK;
  drt_dtype st = drt_cg_storage(cg, x);
  const char *t = drt_cg_ctype(cg, st);
  int lg = n->op == DRT_OP_LOG_SOFTMAX;
  drt_cuda_arg args[2] = {drt_cg_arg_value(x), drt_cg_arg_value(n->outputs[0])};
  sbuf b;
  b.n = 0;
  b.overflow = false;
  b.s[0] = 0;
  int32_t k;
  if (inner > 1) {
    int64_t block = 256;
    sb_printf(&b,
              "extern \"C\" __global__ void __launch_bounds__(%" PRId64 ") @NAME@(drt_kargs a) {\n"
              "  struct C {\n    typedef %s T;\n"
              "    enum : long long { BLOCK = %" PRId64 ", OUTER = %" PRId64 "LL, LEN = %" PRId64 "LL, INNER = %" PRId64
              "LL, LOG = %d };\n  };\n  drt_softmax_cols<C>(a);\n}\n",
              block, t, block, outer, len, inner, lg);
    DRT_RETURN_IF_ERROR(add_kernel(cg, (uint32_t)block, &b, &k));
    return launch1(cg, k, (uint32_t)ceil_div(outer * inner, block), 1, (uint32_t)block, args, 2);
  }
  int vec = vec_for(st, len);
  int64_t nvec = len / vec;
  int64_t tpr = pow2_ceil(ceil_div(nvec, 2));
  if (tpr > 1024) tpr = 1024;
  int64_t items = ceil_div(nvec, tpr);
  bool cached = items * vec <= 32;
  int64_t block = cached ? (tpr > 32 ? tpr : 128) : 512;
  if (!cached) {
    tpr = block;
    items = 1;
  }
  sb_printf(&b,
            "extern \"C\" __global__ void __launch_bounds__(%" PRId64 ") @NAME@(drt_kargs a) {\n"
            "  struct C {\n    typedef %s T;\n"
            "    enum : long long { BLOCK = %" PRId64 ", TPR = %" PRId64 ", VEC = %d, ITEMS = %" PRId64 ", L = %" PRId64
            "LL, ROWS = %" PRId64 "LL, LOG = %d };\n  };\n  drt_softmax_%s<C>(a);\n}\n",
            block, t, block, tpr, vec, items, len, outer, lg, cached ? "cached" : "stream");
  DRT_RETURN_IF_ERROR(add_kernel(cg, (uint32_t)block, &b, &k));
  return launch1(cg, k, (uint32_t)ceil_div(outer, block / tpr), 1, (uint32_t)block, args, 2);
}

/* ---- Reduce* ------------------------------------------------------------------------------------ */
static int red_op(drt_op op) {
  switch (op) {
    case DRT_OP_REDUCE_SUM: return 0;
    case DRT_OP_REDUCE_MEAN: return 1;
    case DRT_OP_REDUCE_MAX: return 2;
    case DRT_OP_REDUCE_MIN: return 3;
    case DRT_OP_REDUCE_PROD: return 4;
    case DRT_OP_REDUCE_L1: return 5;
    case DRT_OP_REDUCE_L2: return 6;
    case DRT_OP_REDUCE_SUM_SQUARE: return 7;
    case DRT_OP_REDUCE_LOG_SUM: return 8;
    default: return 9; /* ReduceLogSumExp */
  }
}

/* Two-kernel split reduction (norm.cuh drt_reduce_{rows,cols}_part + drt_reduce_merge). */
static drt_status emit_reduce_split(drt_cg *cg, const char *t, int op, bool rows, int vec, int64_t block, int64_t bx,
                                    int64_t nk, int64_t nr, int64_t inner, int nks, const int64_t *ks,
                                    const int64_t *kst, int nrs, const int64_t *rs, const int64_t *rst, int64_t splits,
                                    int64_t ch, drt_cuda_arg *args) {
  int64_t outs = rows ? nk : nk * inner, count = rows ? nr * inner : nr;
  if (!rows) {
    int64_t by = 256 / bx, prn = pow2_ceil(ch);
    if (by > prn) by = prn;
    block = bx * by;
  }
  args[2] = drt_cg_scratch(cg, (uint64_t)(outs * splits * 2) * sizeof(float));
  sbuf b;
  b.n = 0;
  b.overflow = false;
  b.s[0] = 0;
  sb_printf(&b,
            "extern \"C\" __global__ void __launch_bounds__(%" PRId64 ") @NAME@(drt_kargs a) {\n"
            "  struct C {\n    typedef %s T;\n"
            "    enum : long long { BLOCK = %" PRId64 ", VEC = %d, BX = %" PRId64 ", NK = %" PRId64 "LL, NR = %" PRId64
            "LL, INNER = %" PRId64 "LL, OP = %d, S = %" PRId64 ", CH = %" PRId64 "LL };\n"
            "    static __device__ __forceinline__ long long ko(long long o) { (void)o; return ",
            block, t, block, vec, bx, nk, nr, inner, op, splits, ch);
  sb_index(&b, "o", nks, ks, kst);
  sb_printf(&b, "; }\n    static __device__ __forceinline__ long long ro(long long r) { (void)r; return ");
  sb_index(&b, "r", nrs, rs, rst);
  sb_printf(&b, "; }\n  };\n  drt_reduce_%s_part<C>(a);\n}\n", rows ? "rows" : "cols");
  int32_t k1, k2;
  DRT_RETURN_IF_ERROR(add_kernel(cg, (uint32_t)block, &b, &k1));
  b.n = 0;
  int64_t mblock = 256;
  sb_printf(&b,
            "extern \"C\" __global__ void __launch_bounds__(%" PRId64 ") @NAME@(drt_kargs a) {\n"
            "  struct C {\n    typedef %s T;\n"
            "    enum : long long { BLOCK = %" PRId64 ", OP = %d, S = %" PRId64 ", OUTS = %" PRId64
            "LL, COUNT = %" PRId64 "LL };\n  };\n  drt_reduce_merge<C>(a);\n}\n",
            mblock, t, mblock, op, splits, outs, count);
  DRT_RETURN_IF_ERROR(add_kernel(cg, (uint32_t)mblock, &b, &k2));
  if (rows) DRT_RETURN_IF_ERROR(launch1(cg, k1, (uint32_t)splits, (uint32_t)nk, (uint32_t)block, args, 3));
  else
    DRT_RETURN_IF_ERROR(
        launch1(cg, k1, (uint32_t)(nk * ceil_div(inner, bx)), (uint32_t)splits, (uint32_t)block, args, 3));
  return launch1(cg, k2, (uint32_t)ceil_div(outs, mblock), 1, (uint32_t)mblock, args, 3);
}

/* Reduces x over the axes flagged in reduced[] into y (op: DRT_RED_* of norm.cuh). */
static drt_status emit_reduce_axes(drt_cg *cg, const drt_value *x, const drt_value *y, const bool *reduced, int op) {
  if (drt_shape_numel(&y->shape) == 0) return DRT_OK;
  if (drt_shape_numel(&x->shape) == 0)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "reduction of an empty tensor (identity fill) runs on the host");
  DRT_RETURN_IF_ERROR(check_float(cg, x, "input 0"));
  drt_dtype st = drt_cg_storage(cg, x);
  if (drt_cg_storage(cg, y) != st) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "output dtype differs from the input's");
  const char *t = drt_cg_ctype(cg, st);
  /* drop size-1 dims, merge neighbours of the same kind (runtime/cpu/reduce.c rplan_make) */
  int64_t size[DRT_MAX_RANK], stride[DRT_MAX_RANK], cs[DRT_MAX_RANK];
  bool red[DRT_MAX_RANK];
  int m = 0;
  int64_t s = 1;
  for (int d = x->shape.rank - 1; d >= 0; d--) {
    cs[d] = s;
    s *= x->shape.dims[d];
  }
  for (int d = 0; d < x->shape.rank; d++) {
    if (x->shape.dims[d] == 1) continue;
    if (m > 0 && red[m - 1] == reduced[d]) {
      size[m - 1] *= x->shape.dims[d];
      stride[m - 1] = cs[d];
      continue;
    }
    size[m] = x->shape.dims[d];
    stride[m] = cs[d];
    red[m] = reduced[d];
    m++;
  }
  if (m == 0) {
    size[0] = 1;
    stride[0] = 1;
    red[0] = true;
    m = 1;
  }
  int64_t inner = size[m - 1];
  bool inner_red = red[m - 1];
  int64_t ks[DRT_MAX_RANK], kst[DRT_MAX_RANK], rs[DRT_MAX_RANK], rst[DRT_MAX_RANK], nk = 1, nr = 1;
  int nks = 0, nrs = 0;
  for (int i = 0; i < m - 1; i++) {
    if (red[i]) {
      rs[nrs] = size[i];
      rst[nrs++] = stride[i];
      nr *= size[i];
    } else {
      ks[nks] = size[i];
      kst[nks++] = stride[i];
      nk *= size[i];
    }
  }
  int64_t block, tpr = 1, bx = 1;
  int vec = 1;
  uint32_t grid;
  drt_cuda_arg args[3] = {drt_cg_arg_value(x), drt_cg_arg_value(y), drt_cg_arg_none()};
  if (inner_red && ceil_div(nk, 4) < SM_TARGET && nr * inner >= 65536 && nk <= 65535) {
    /* few long rows: split each into chunks over the device */
    vec = vec_for(st, inner);
    int64_t n_el = nr * inner, splits = ceil_div(2 * SM_TARGET, nk), max_s = ceil_div(n_el, 8192);
    if (splits > max_s) splits = max_s;
    int64_t ch = ceil_div(ceil_div(n_el, splits), vec) * vec;
    splits = ceil_div(n_el, ch);
    if (splits >= 2)
      return emit_reduce_split(cg, t, op, true, vec, 256, 1, nk, nr, inner, nks, ks, kst, nrs, rs, rst, splits, ch,
                               args);
    vec = 1;
  }
  if (!inner_red && nk * ceil_div(inner, 256) < SM_TARGET && nr >= 4096) {
    /* few columns over many reduced positions: split the positions */
    bx = pow2_ceil(inner);
    if (bx < 32) bx = 32;
    if (bx > 256) bx = 256;
    int64_t cols = nk * ceil_div(inner, bx), splits = ceil_div(2 * SM_TARGET, cols), max_s = ceil_div(nr, 512);
    if (splits > max_s) splits = max_s;
    if (splits > 65535) splits = 65535;
    int64_t ch = ceil_div(nr, splits);
    splits = ceil_div(nr, ch);
    if (splits >= 2)
      return emit_reduce_split(cg, t, op, false, 1, 256, bx, nk, nr, inner, nks, ks, kst, nrs, rs, rst, splits, ch,
                               args);
    bx = 1;
  }
  if (inner_red) {
    vec = vec_for(st, inner);
    int64_t nvec = nr * inner / vec;
    tpr = pow2_ceil(ceil_div(nvec, 8));
    if (tpr > 512) tpr = 512;
    block = tpr > 32 ? tpr : 128;
    grid = (uint32_t)ceil_div(nk, block / tpr);
  } else {
    bx = pow2_ceil(inner);
    if (bx < 32) bx = 32;
    if (bx > 256) bx = 256;
    int64_t by = 256 / bx, prn = pow2_ceil(nr);
    if (by > prn) by = prn;
    block = bx * by;
    grid = (uint32_t)(nk * ceil_div(inner, bx));
  }
  sbuf b;
  b.n = 0;
  b.overflow = false;
  b.s[0] = 0;
  sb_printf(&b,
            "extern \"C\" __global__ void __launch_bounds__(%" PRId64 ") @NAME@(drt_kargs a) {\n"
            "  struct C {\n    typedef %s T;\n"
            "    enum : long long { BLOCK = %" PRId64 ", TPR = %" PRId64 ", VEC = %d, BX = %" PRId64 ", NK = %" PRId64
            "LL, NR = %" PRId64 "LL, INNER = %" PRId64 "LL, OP = %d };\n"
            "    static __device__ __forceinline__ long long ko(long long o) { (void)o; return ",
            block, t, block, tpr, vec, bx, nk, nr, inner, op);
  sb_index(&b, "o", nks, ks, kst);
  sb_printf(&b, "; }\n    static __device__ __forceinline__ long long ro(long long r) { (void)r; return ");
  sb_index(&b, "r", nrs, rs, rst);
  sb_printf(&b, "; }\n  };\n  drt_reduce_%s<C>(a);\n}\n", inner_red ? "rows" : "cols");
  int32_t k;
  DRT_RETURN_IF_ERROR(add_kernel(cg, (uint32_t)block, &b, &k));
  return launch1(cg, k, grid, 1, (uint32_t)block, args, 2);
}

static drt_status emit_reduce(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0];
  drt_tensor axes_t, *axes = NULL;
  const drt_value *av = drt_node_input(n, 1);
  if (av) {
    if (av->kind != DRT_VALUE_CONST || !av->data)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "axes (input 1) must be a compile-time constant");
    axes_t = drt_value_tensor(av);
    axes = &axes_t;
  }
  bool reduced[DRT_MAX_RANK];
  drt_shape oshape;
  DRT_RETURN_IF_ERROR(drt_reduce_resolve(n, &x->shape, axes, reduced, &oshape));
  return emit_reduce_axes(cg, x, n->outputs[0], reduced, red_op(n->op));
}

/* GlobalAveragePool / GlobalMaxPool: mean / max over the spatial dims [2, rank). */
static drt_status emit_global_pool(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0];
  if (x->shape.rank < 2) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input 0 needs rank >= 2, got %d", x->shape.rank);
  bool reduced[DRT_MAX_RANK];
  for (int d = 0; d < x->shape.rank; d++) reduced[d] = d >= 2;
  return emit_reduce_axes(cg, x, n->outputs[0], reduced, n->op == DRT_OP_GLOBAL_MAX_POOL ? 2 : 1);
}

/* BatchNormalization (inference): y = (x - mean) * scale / sqrt(var + eps) + bias per channel. */
static drt_status emit_batch_norm(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0], *y = n->outputs[0];
  if (n->opset >= 14 && drt_node_attr_int(n, "training_mode", 0) != 0)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "training_mode=1 is not supported; distilrt runs inference only");
  if (n->opset < 9 && drt_node_attr_int(n, "spatial", 1) == 0)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "spatial=0 (per-element statistics) runs on the host");
  if (n->num_outputs > 1) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "running-statistics outputs run on the host");
  if (x->shape.rank < 2) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input 0 needs rank >= 2, got %d", x->shape.rank);
  int64_t c = x->shape.dims[1], spatial = 1;
  for (int d = 2; d < x->shape.rank; d++) spatial *= x->shape.dims[d];
  int64_t total = drt_shape_numel(&x->shape);
  if (total == 0) return DRT_OK;
  DRT_RETURN_IF_ERROR(check_float(cg, x, "input 0"));
  drt_dtype st = drt_cg_storage(cg, x), pst = drt_cg_storage(cg, n->inputs[1]);
  for (int i = 1; i < 5; i++) {
    DRT_RETURN_IF_ERROR(check_float(cg, n->inputs[i], "parameter"));
    if (drt_shape_numel(&n->inputs[i]->shape) != c)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input %d has %" PRId64 " values, expected %" PRId64, i,
                       drt_shape_numel(&n->inputs[i]->shape), c);
    if (drt_cg_storage(cg, n->inputs[i]) != pst)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "parameters with different dtypes");
  }
  int vec = vec_for(st, spatial);
  int64_t block = 256;
  sbuf b;
  b.n = 0;
  b.overflow = false;
  b.s[0] = 0;
  sb_printf(&b,
            "extern \"C\" __global__ void __launch_bounds__(%" PRId64 ") @NAME@(drt_kargs a) {\n"
            "  struct C {\n    typedef %s T;\n    typedef %s TP;\n"
            "    enum : long long { BLOCK = %" PRId64 ", VEC = %d, CH = %" PRId64 "LL, SPATIAL = %" PRId64
            "LL, TOTAL = %" PRId64 "LL };\n  };\n  drt_batchnorm<C>(a, ",
            block, drt_cg_ctype(cg, st), drt_cg_ctype(cg, pst), block, vec, c, spatial, total);
  sb_float(&b, drt_node_attr_float(n, "epsilon", 1e-5f));
  sb_printf(&b, ");\n}\n");
  int32_t k;
  DRT_RETURN_IF_ERROR(add_kernel(cg, (uint32_t)block, &b, &k));
  drt_cuda_arg args[6] = {drt_cg_arg_value(x),            drt_cg_arg_value(y),
                          drt_cg_arg_value(n->inputs[1]), drt_cg_arg_value(n->inputs[2]),
                          drt_cg_arg_value(n->inputs[3]), drt_cg_arg_value(n->inputs[4])};
  return launch1(cg, k, drt_cg_blocks(total / vec, block, 8192), 1, (uint32_t)block, args, 6);
}

/* ---- ArgMax / ArgMin -------------------------------------------------------------------------- */
static drt_status emit_argext(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0], *y = n->outputs[0];
  int axis;
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_node_attr_int(n, "axis", 0), x->shape.rank, &axis), "attribute axis");
  int64_t outer = 1, inner = 1, len = x->shape.dims[axis];
  for (int d = 0; d < axis; d++) outer *= x->shape.dims[d];
  for (int d = axis + 1; d < x->shape.rank; d++) inner *= x->shape.dims[d];
  if (outer * inner == 0) return DRT_OK;
  if (len == 0) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "cannot take the arg-extremum over empty axis %d", axis);
  drt_dtype st = drt_cg_storage(cg, x);
  if (st == DRT_DTYPE_BOOL || drt_dtype_size(st) == 0 || drt_cg_storage(cg, y) != DRT_DTYPE_INT64)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "dtype %s", drt_dtype_name(x->dtype));
  int64_t block = 256;
  sbuf b;
  b.n = 0;
  b.overflow = false;
  b.s[0] = 0;
  sb_printf(&b,
            "extern \"C\" __global__ void __launch_bounds__(%" PRId64 ") @NAME@(drt_kargs a) {\n"
            "  struct C {\n    typedef %s T;\n"
            "    enum : long long { BLOCK = %" PRId64 ", OUTER = %" PRId64 "LL, LEN = %" PRId64 "LL, INNER = %" PRId64
            "LL, MAX = %d, LAST = %d };\n  };\n  drt_argext_cols<C>(a);\n}\n",
            block, drt_cg_ctype(cg, st), block, outer, len, inner, n->op == DRT_OP_ARGMAX,
            drt_node_attr_int(n, "select_last_index", 0) != 0);
  int32_t k;
  DRT_RETURN_IF_ERROR(add_kernel(cg, (uint32_t)block, &b, &k));
  drt_cuda_arg args[2] = {drt_cg_arg_value(x), drt_cg_arg_value(y)};
  return launch1(cg, k, (uint32_t)ceil_div(outer * inner, block), 1, (uint32_t)block, args, 2);
}

/* ---- drt.CfgCombine ----------------------------------------------------------------------------- */
static drt_status emit_cfg_combine(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0], *w = n->inputs[1];
  drt_cfg_combine f;
  DRT_RETURN_IF_ERROR(drt_cfg_combine_resolve(n, &x->shape, &f));
  DRT_RETURN_IF_ERROR(check_float(cg, x, "input 0"));
  DRT_RETURN_IF_ERROR(check_float(cg, w, "input 1 (guidance scale)"));
  if (n->num_outputs < f.num_outputs)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "mode %s has %d outputs, the node has %d",
                     drt_cfg_mode_name(f.mode.kind), f.num_outputs, n->num_outputs);
  drt_dtype st = drt_cg_storage(cg, x);
  for (int i = 0; i < n->num_outputs; i++)
    if (drt_cg_storage(cg, n->outputs[i]) != st) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "output %d dtype differs", i);
  const char *t = drt_cg_ctype(cg, st), *tw = drt_cg_ctype(cg, drt_cg_storage(cg, w));
  sbuf b;
  b.n = 0;
  b.overflow = false;
  b.s[0] = 0;
  int32_t k;
  if (f.mode.kind == DRT_CFG_STANDARD || f.mode.kind == DRT_CFG_CFGPP) {
    if (f.outer * f.half == 0) return DRT_OK;
    bool u = f.mode.kind == DRT_CFG_CFGPP;
    int vec = vec_for(st, f.half);
    int64_t block = 256, total = f.outer * f.half;
    sb_printf(&b,
              "extern \"C\" __global__ void __launch_bounds__(%" PRId64 ") @NAME@(drt_kargs a) {\n"
              "  struct C {\n    typedef %s T;\n    typedef %s TW;\n"
              "    enum : long long { BLOCK = %" PRId64 ", VEC = %d, HALF = %" PRId64 "LL, TOTAL = %" PRId64
              "LL, U = %d };\n  };\n  drt_cfg_standard<C>(a);\n}\n",
              block, t, tw, block, vec, f.half, total, u);
    DRT_RETURN_IF_ERROR(add_kernel(cg, (uint32_t)block, &b, &k));
    drt_cuda_arg args[4] = {drt_cg_arg_value(x), drt_cg_arg_value(w), drt_cg_arg_value(n->outputs[0]),
                            u ? drt_cg_arg_value(n->outputs[1]) : drt_cg_arg_none()};
    return launch1(cg, k, drt_cg_blocks(total / vec, block, 8192), 1, (uint32_t)block, args, 4);
  }
  if (f.samples * f.sample_size == 0) return DRT_OK;
  if (f.samples > 0x7fffffff) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%" PRId64 " samples", f.samples);
  int vec = vec_for(st, f.sample_size);
  int64_t block = 512;
  bool apg = f.mode.kind == DRT_CFG_APG;
  if (apg && !drt_node_input(n, 2))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "mode apg needs a state input (input 2)");
  sb_printf(&b,
            "extern \"C\" __global__ void __launch_bounds__(%" PRId64 ") @NAME@(drt_kargs a) {\n"
            "  struct C {\n    typedef %s T;\n    typedef %s TW;\n"
            "    enum : long long { BLOCK = %" PRId64 ", VEC = %d, N = %" PRId64 "LL, SAMPLES = %" PRId64
            "LL };\n  };\n",
            block, t, tw, block, vec, f.sample_size, f.samples);
  if (apg)
    sb_printf(&b, "  drt_cfg_apg<C>(a, %a, %a, %a);\n}\n", f.mode.momentum, f.mode.norm_threshold, f.mode.eta);
  else
    sb_printf(&b, "  drt_cfg_rescale<C>(a, %a);\n}\n", f.mode.phi);
  DRT_RETURN_IF_ERROR(add_kernel(cg, (uint32_t)block, &b, &k));
  if (apg) {
    const drt_value *state = drt_node_input(n, 2);
    drt_cuda_arg args[5] = {drt_cg_arg_value(x), drt_cg_arg_value(w), drt_cg_arg_value(state),
                            drt_cg_arg_value(n->outputs[0]), drt_cg_arg_value(n->outputs[1])};
    return launch1(cg, k, (uint32_t)f.samples, 1, (uint32_t)block, args, 5);
  }
  drt_cuda_arg args[3] = {drt_cg_arg_value(x), drt_cg_arg_value(w), drt_cg_arg_value(n->outputs[0])};
  return launch1(cg, k, (uint32_t)f.samples, 1, (uint32_t)block, args, 3);
}

const drt_cg_emitter drt_cg_emitters_norm[] = {
    {DRT_OP_FUSED_NORM, emit_fused_norm},
    {DRT_OP_LAYER_NORM, emit_layer_norm},
    {DRT_OP_RMS_NORM, emit_layer_norm},
    {DRT_OP_GROUP_NORM, emit_group_norm},
    {DRT_OP_INSTANCE_NORM, emit_group_norm},
    {DRT_OP_SOFTMAX, emit_softmax},
    {DRT_OP_LOG_SOFTMAX, emit_softmax},
    {DRT_OP_REDUCE_MEAN, emit_reduce},
    {DRT_OP_REDUCE_SUM, emit_reduce},
    {DRT_OP_REDUCE_MAX, emit_reduce},
    {DRT_OP_REDUCE_MIN, emit_reduce},
    {DRT_OP_REDUCE_PROD, emit_reduce},
    {DRT_OP_REDUCE_L1, emit_reduce},
    {DRT_OP_REDUCE_L2, emit_reduce},
    {DRT_OP_REDUCE_SUM_SQUARE, emit_reduce},
    {DRT_OP_REDUCE_LOG_SUM, emit_reduce},
    {DRT_OP_REDUCE_LOG_SUM_EXP, emit_reduce},
    {DRT_OP_GLOBAL_AVERAGE_POOL, emit_global_pool},
    {DRT_OP_GLOBAL_MAX_POOL, emit_global_pool},
    {DRT_OP_BATCH_NORM, emit_batch_norm},
    {DRT_OP_ARGMAX, emit_argext},
    {DRT_OP_ARGMIN, emit_argext},
    {DRT_OP_FUSED_CFG_COMBINE, emit_cfg_combine},
    {DRT_OP_COUNT_, NULL},
};
