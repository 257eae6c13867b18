/* CPU kernel for drt.Norm (see ir/ops.def and ir/infer_fused.h):
 *
 *   n = (x - mean) / sqrt(var + eps)          (rms: mean = 0, var = mean of x^2)
 *   y = act(((n * scale + bias) * mod + mod_shift))   mod = mod_one_plus ? 1 + mod_scale : mod_scale
 *
 * Statistics cover `planes_per_stat` consecutive planes of the data (layer/rms: one row of the
 * normalized axes; group: the C/G channel planes of a group) and accumulate in double (float
 * lanes flushed into double, runtime/cpu/reduce.h). Parameters broadcast to x; per plane each is
 * a contiguous vector over the plane, or one scalar (others are expanded once per call). Each
 * plane is then written by one vectorized loop (normalize, affine, modulation and activation
 * together; when every parameter is a scalar per plane they fold into y = act(a x + b)),
 * compiled for the baseline and, on x86, for AVX2/FMA. Statistic groups run in parallel. */
#if defined(__GNUC__) && !defined(__clang__)
/* Lets GCC if-convert float selects so the row loops vectorize (see runtime/cpu/reduce.h);
 * nothing here reads floating-point exception flags. */
#pragma GCC optimize("no-trapping-math")
#endif

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer_fused.h"
#include "runtime/cpu/fastmath.h" /* drt_fast_erff, the Erf of the elementwise kernels */
#include "runtime/cpu/fused.h"
#include "runtime/cpu/linalg.h"   /* AVX2 clones */
#include "runtime/cpu/reduce.h"

typedef enum { PARAM_ABSENT, PARAM_VECTOR, PARAM_SCALAR } param_mode;

typedef struct norm_param {
  param_mode mode;
  const float *data;
  int64_t lead[DRT_MAX_RANK]; /* element strides over the plane index dims [0, split) */
  bool invariant;             /* the same values for every plane (all lead strides 0) */
  float *owned;               /* expanded copy when the broadcast is neither form */
} norm_param;

typedef struct norm_job {
  const drt_fused_norm *f;
  const drt_shape *x_shape;
  const float *x;
  float *y;
  norm_param p[DRT_NORM_PARAMS];
  atomic_bool oom; /* a task could not allocate its scratch */
} norm_job;

static drt_status param_make(const drt_tensor *t, const drt_shape *x, int split, norm_param *p) {
  memset(p, 0, sizeof *p);
  if (!t->data) return DRT_OK;
  int64_t st[DRT_MAX_RANK], contig[DRT_MAX_RANK], s = 1;
  drt_broadcast_strides(&t->shape, x, st);
  for (int d = x->rank - 1; d >= 0; d--) {
    contig[d] = s;
    s *= x->dims[d];
  }
  bool vector = true, scalar = true;
  for (int d = split; d < x->rank; d++) {
    if (x->dims[d] == 1) continue;
    if (st[d] != contig[d]) vector = false;
    if (st[d] != 0) scalar = false;
  }
  p->data = t->data;
  if (vector || scalar) {
    p->mode = scalar ? PARAM_SCALAR : PARAM_VECTOR;
    for (int d = 0; d < split; d++) p->lead[d] = st[d];
    return DRT_OK;
  }
  /* expand to the full data shape */
  int64_t cnt = drt_shape_numel(x);
  p->owned = malloc((size_t)(cnt > 0 ? cnt : 1) * sizeof(float));
  if (!p->owned) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "broadcast parameter buffer");
  int64_t idx[DRT_MAX_RANK] = {0}, src = 0;
  const float *pd = t->data;
  for (int64_t k = 0; k < cnt; k++) {
    p->owned[k] = pd[src];
    for (int d = x->rank - 1; d >= 0; d--) {
      if (++idx[d] < x->dims[d]) {
        src += st[d];
        break;
      }
      src -= st[d] * (x->dims[d] - 1);
      idx[d] = 0;
    }
  }
  p->data = p->owned;
  p->mode = PARAM_VECTOR;
  for (int d = 0; d < split; d++) p->lead[d] = contig[d];
  return DRT_OK;
}

/* Pointer to the parameter values of plane r (its index over dims [0, split)). */
static const float *param_at(const norm_param *p, const drt_shape *x, int split, int64_t r) {
  if (p->invariant) return p->data;
  int64_t off = 0;
  for (int d = split - 1; d >= 0; d--) {
    int64_t i = r % x->dims[d];
    r /= x->dims[d];
    off += i * p->lead[d];
  }
  return p->data + off;
}

static inline float silu(float v) { return v / (1.0f + drt_fast_expf(-v)); }
static inline float gelu_erf(float v) { return 0.5f * v * (1.0f + drt_fast_erff(v * 0.70710678118654752f)); }
static inline float gelu_tanh(float v) {
  return 0.5f * v * (1.0f + drt_fast_tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
}

/* The per-plane loops, one function per activation, reached through pointers so that each loop
 * is compiled (and vectorized) on its own, and on x86 a second time for AVX2/FMA:
 *   affine:  y[i] = act(x[i] * a + b)                      (every parameter scalar per plane)
 *   full:    y[i] = act((((x[i] - mean) * inv) * s[i] + b[i]) * (c1 + m[i]) + t[i]) */
typedef void (*affine_fn)(const float *x, float *y, int64_t n, float a, float b);
typedef struct full_args {
  float mean, inv, c1;
  const float *s, *b, *m, *t;
} full_args;
typedef void (*full_fn)(const float *x, float *y, int64_t n, const full_args *p);

#define ROW_FNS(name, expr)                                                                          \
  DRT_INLINE void name##_affine_body(const float *x, float *y, int64_t n, float a, float b) {        \
    for (int64_t i = 0; i < n; i++) {                                                                \
      float v = x[i] * a + b;                                                                        \
      y[i] = (expr);                                                                                 \
    }                                                                                                \
  }                                                                                                  \
  DRT_INLINE void name##_full_body(const float *x, float *y, int64_t n, const full_args *p) {        \
    const float mean = p->mean, inv = p->inv, c1 = p->c1;                                            \
    const float *ps = p->s, *pb = p->b, *pm = p->m, *pt = p->t;                                      \
    for (int64_t i = 0; i < n; i++) {                                                                \
      float v = ((x[i] - mean) * inv * ps[i] + pb[i]) * (c1 + pm[i]) + pt[i];                        \
      y[i] = (expr);                                                                                 \
    }                                                                                                \
  }                                                                                                  \
  static void name##_affine(const float *x, float *y, int64_t n, float a, float b) {                 \
    name##_affine_body(x, y, n, a, b);                                                               \
  }                                                                                                  \
  static void name##_full(const float *x, float *y, int64_t n, const full_args *p) {                 \
    name##_full_body(x, y, n, p);                                                                    \
  }                                                                                                  \
  ROW_CLONES(name)

#if DRT_HAVE_X86_CLONES
#define ROW_CLONES(name)                                                                             \
  DRT_TARGET_AVX2 static void name##_affine_avx2(const float *x, float *y, int64_t n, float a, float b) { \
    name##_affine_body(x, y, n, a, b);                                                               \
  }                                                                                                  \
  DRT_TARGET_AVX2 static void name##_full_avx2(const float *x, float *y, int64_t n, const full_args *p) { \
    name##_full_body(x, y, n, p);                                                                    \
  }
#else
#define ROW_CLONES(name)
#endif

ROW_FNS(act_none, v)
ROW_FNS(act_silu, silu(v))
ROW_FNS(act_gelu, gelu_erf(v))
ROW_FNS(act_gelu_tanh, gelu_tanh(v))

static void row_fns(drt_norm_act act, affine_fn *affine, full_fn *full) {
  bool avx2 = DRT_HAVE_X86_CLONES && drt_cpu_has_avx2_fma();
  (void)avx2;
#if DRT_HAVE_X86_CLONES
#define PICK(name)                                                   \
  do {                                                               \
    *affine = avx2 ? name##_affine_avx2 : name##_affine;             \
    *full = avx2 ? name##_full_avx2 : name##_full;                   \
  } while (0)
#else
#define PICK(name)              \
  do {                          \
    *affine = name##_affine;    \
    *full = name##_full;        \
  } while (0)
#endif
  switch (act) {
    case DRT_NORM_ACT_SILU: PICK(act_silu); return;
    case DRT_NORM_ACT_GELU: PICK(act_gelu); return;
    case DRT_NORM_ACT_GELU_TANH: PICK(act_gelu_tanh); return;
    case DRT_NORM_ACT_NONE: break;
  }
  PICK(act_none);
#undef PICK
}

static void norm_run(void *arg, int64_t begin, int64_t end) {
  norm_job *j = arg;
  const drt_fused_norm *f = j->f;
  int64_t per = f->planes_per_stat, n = f->plane, len = per * n;
  bool all_scalar = true; /* every parameter is one number per plane: fold into y = act(x a + b) */
  bool any_vector = false;
  for (int k = 0; k < DRT_NORM_PARAMS; k++) {
    all_scalar &= j->p[k].mode != PARAM_VECTOR;
    any_vector |= j->p[k].mode == PARAM_VECTOR;
  }
  affine_fn affine;
  full_fn full;
  row_fns(f->act, &affine, &full);
  /* the full loop reads every parameter as a vector: scalar ones are spread over fill[k],
   * absent ones read zeros (the identity with c1 = 1 for the modulation, ones for the scale) */
  float *fill = NULL;
  bool filled[DRT_NORM_PARAMS] = {false, false, false, false};
  if (any_vector) {
    fill = malloc((size_t)DRT_NORM_PARAMS * (size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!fill) {
      atomic_store(&j->oom, true);
      return;
    }
  }
  for (int64_t t = begin; t < end; t++) {
    const float *x = j->x + t * len;
    double mean = f->kind == DRT_NORM_RMS ? 0.0 : drt_rd_sum(x, len, false, 0.0f) / (double)len;
    float fm = (float)mean;
    double var = drt_rd_sum(x, len, true, fm) / (double)len;
    double inv = 1.0 / sqrt(var + f->eps);
    for (int64_t q = 0; q < per; q++) {
      int64_t r = t * per + q;
      const float *xp = x + q * n;
      float *y = j->y + r * n;
      const float *pv[DRT_NORM_PARAMS] = {NULL, NULL, NULL, NULL};
      for (int k = 0; k < DRT_NORM_PARAMS; k++)
        if (j->p[k].mode != PARAM_ABSENT) pv[k] = param_at(&j->p[k], j->x_shape, f->split, r);
      if (all_scalar) {
        /* ((x - m) inv s + b) M + t  =  x (inv s M) + ((b - m inv s) M + t) */
        double sc = pv[0] ? pv[0][0] : 1.0, bi = pv[1] ? pv[1][0] : 0.0, ms = 1.0, sh = pv[3] ? pv[3][0] : 0.0;
        if (pv[2]) ms = f->mod_one_plus ? 1.0 + pv[2][0] : pv[2][0];
        double a = inv * sc * ms, b = (bi - (double)fm * inv * sc) * ms + sh;
        affine(xp, y, n, (float)a, (float)b);
        continue;
      }
      const float *vec[DRT_NORM_PARAMS];
      for (int k = 0; k < DRT_NORM_PARAMS; k++) {
        float *buf = fill + k * n;
        if (j->p[k].mode == PARAM_VECTOR) {
          vec[k] = pv[k];
          continue;
        }
        float v = j->p[k].mode == PARAM_SCALAR ? pv[k][0] : k == 0 ? 1.0f : 0.0f;
        if (!filled[k] || !(buf[0] == v)) { /* refill only when the value changes */
          for (int64_t i = 0; i < n; i++) buf[i] = v;
          filled[k] = true;
        }
        vec[k] = buf;
      }
      full_args fa = {fm, (float)inv, j->p[2].mode == PARAM_ABSENT || f->mod_one_plus ? 1.0f : 0.0f,
                      vec[0], vec[1], vec[2], vec[3]};
      full(xp, y, n, &fa);
    }
  }
  free(fill);
}

drt_status drt_cpu_fused_norm(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  const drt_shape *params[DRT_NORM_PARAMS] = {NULL, NULL, NULL, NULL};
  drt_tensor none;
  memset(&none, 0, sizeof none);
  const drt_tensor *pt[DRT_NORM_PARAMS];
  for (int i = 0; i < DRT_NORM_PARAMS; i++) {
    pt[i] = i + 1 < n->num_inputs && in[i + 1].data ? &in[i + 1] : &none;
    params[i] = pt[i]->data ? &pt[i]->shape : NULL;
    if (pt[i]->data && pt[i]->dtype != DRT_DTYPE_FLOAT32)
      return DRT_ERROR(DRT_STATUS_INTERNAL, "input %d: unexpected dtype %s", i + 1, drt_dtype_name(pt[i]->dtype));
  }
  if (in[0].dtype != DRT_DTYPE_FLOAT32)
    return DRT_ERROR(DRT_STATUS_INTERNAL, "input 0: unexpected dtype %s", drt_dtype_name(in[0].dtype));
  drt_fused_norm f;
  DRT_RETURN_IF_ERROR(drt_fused_norm_resolve(n, &in[0].shape, params, &f));
  if (f.planes * f.plane == 0) return DRT_OK;
  norm_job j;
  memset(&j, 0, sizeof j);
  atomic_init(&j.oom, false);
  j.f = &f;
  j.x_shape = &in[0].shape;
  j.x = in[0].data;
  j.y = out[0].data;
  drt_status st = DRT_OK;
  for (int i = 0; i < DRT_NORM_PARAMS && !st; i++) {
    st = param_make(pt[i], &in[0].shape, f.split, &j.p[i]);
    j.p[i].invariant = true;
    for (int d = 0; d < f.split; d++) j.p[i].invariant &= j.p[i].lead[d] == 0;
  }
  if (!st) {
    int64_t groups = f.planes / f.planes_per_stat, len = f.planes_per_stat * f.plane;
    int64_t grain = 16384 / (len > 0 ? len : 1);
    drt_parallel_for(ctx, groups, grain > 0 ? grain : 1, norm_run, &j);
    if (atomic_load(&j.oom)) st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "norm parameter scratch");
  }
  for (int i = 0; i < DRT_NORM_PARAMS; i++) free(j.p[i].owned);
  return st;
}
