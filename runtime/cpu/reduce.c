/* CPU kernels for the reduce op family: Reduce*, ArgMax/ArgMin, CumSum, and the family's
 * kernel table (softmax and normalizations live in norm.c, Attention in attention.c).
 *
 * Reductions first simplify the problem: size-1 axes are dropped and neighbouring axes that
 * are both reduced or both kept are merged, leaving alternating kept/reduced blocks. Then
 *  - innermost block reduced: each output reduces contiguous runs (one run per combination
 *    of the outer reduced blocks), parallel over outputs;
 *  - innermost block kept: each output row of `inner` contiguous values accumulates whole
 *    input rows, vectorized across the row, parallel over (row, chunk).
 * Float data accumulates in double; integer data in 64-bit with wrap-around, which matches
 * ONNX/numpy results in the original width. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer.h"
#include "ir/infer_reduce.h"
#include "runtime/cpu/reduce.h"

typedef enum rop {
  ROP_SUM,
  ROP_MEAN,
  ROP_MAX,
  ROP_MIN,
  ROP_PROD,
  ROP_L1,
  ROP_L2,
  ROP_SUMSQ,
  ROP_LOGSUM,
  ROP_LSE,
} rop;

static rop rop_of(drt_op op) {
  switch (op) {
    case DRT_OP_REDUCE_MEAN: return ROP_MEAN;
    case DRT_OP_REDUCE_MAX: return ROP_MAX;
    case DRT_OP_REDUCE_MIN: return ROP_MIN;
    case DRT_OP_REDUCE_PROD: return ROP_PROD;
    case DRT_OP_REDUCE_L1: return ROP_L1;
    case DRT_OP_REDUCE_L2: return ROP_L2;
    case DRT_OP_REDUCE_SUM_SQUARE: return ROP_SUMSQ;
    case DRT_OP_REDUCE_LOG_SUM: return ROP_LOGSUM;
    case DRT_OP_REDUCE_LOG_SUM_EXP: return ROP_LSE;
    default: return ROP_SUM;
  }
}

/* ---- reduction plan ------------------------------------------------------------------ */
typedef struct rplan {
  int64_t inner;      /* length of the innermost (contiguous) block */
  bool inner_reduced; /* whether that block is reduced */
  int64_t *koff;      /* input offsets of kept positions (per output, or per output row) */
  int64_t nk;
  int64_t *roff; /* input offsets of reduced positions (per run start, or per element) */
  int64_t nr;
  int64_t count; /* reduced elements per output */
} rplan;

static void rplan_free(rplan *p) {
  free(p->koff);
  free(p->roff);
}

/* Offsets of all index combinations of (size, stride) pairs, row-major. */
static int64_t *enumerate(int m, const int64_t *size, const int64_t *stride, int64_t *n_out) {
  int64_t n = 1;
  for (int i = 0; i < m; i++) n *= size[i];
  int64_t *off = malloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
  if (!off) return NULL;
  int64_t idx[DRT_MAX_RANK] = {0};
  int64_t cur = 0;
  for (int64_t k = 0; k < n; k++) {
    off[k] = cur;
    for (int i = m - 1; i >= 0; i--) {
      if (++idx[i] < size[i]) {
        cur += stride[i];
        break;
      }
      cur -= stride[i] * (size[i] - 1);
      idx[i] = 0;
    }
  }
  *n_out = n;
  return off;
}

/* Builds the plan for a tensor of shape x with reduced[] axes; all dims must be >= 1. */
static drt_status rplan_make(const drt_shape *x, const bool *reduced, rplan *p) {
  memset(p, 0, sizeof *p);
  int64_t size[DRT_MAX_RANK], stride[DRT_MAX_RANK];
  bool red[DRT_MAX_RANK];
  int m = 0;
  int64_t s = 1;
  int64_t st[DRT_MAX_RANK];
  for (int d = x->rank - 1; d >= 0; d--) {
    st[d] = s;
    s *= x->dims[d];
  }
  for (int d = 0; d < x->rank; d++) {
    if (x->dims[d] == 1) continue;
    if (m > 0 && red[m - 1] == reduced[d] && stride[m - 1] == x->dims[d] * st[d]) {
      size[m - 1] *= x->dims[d];
      stride[m - 1] = st[d];
      continue;
    }
    size[m] = x->dims[d];
    stride[m] = st[d];
    red[m] = reduced[d];
    m++;
  }
  if (m == 0) {
    size[0] = 1;
    stride[0] = 1;
    red[0] = true;
    m = 1;
  }
  p->inner = size[m - 1];
  p->inner_reduced = red[m - 1];
  int64_t ks[DRT_MAX_RANK], kst[DRT_MAX_RANK], rs[DRT_MAX_RANK], rst[DRT_MAX_RANK];
  int nks = 0, nrs = 0;
  for (int i = 0; i < m - 1; i++) {
    if (red[i]) {
      rs[nrs] = size[i];
      rst[nrs++] = stride[i];
    } else {
      ks[nks] = size[i];
      kst[nks++] = stride[i];
    }
  }
  p->koff = enumerate(nks, ks, kst, &p->nk);
  p->roff = enumerate(nrs, rs, rst, &p->nr);
  if (!p->koff || !p->roff) {
    rplan_free(p);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "reduction index tables");
  }
  p->count = p->nr * (p->inner_reduced ? p->inner : 1);
  return DRT_OK;
}

/* ---- float engine (float / double data, double accumulators) ------------------------ */
static inline void lse_add(double *m, double *s, double x) {
  if (x == -INFINITY) return;
  if (x > *m) {
    *s = *s * exp(*m - x) + 1.0;
    *m = x;
  } else if (x == *m) {
    *s += 1.0;
  } else {
    *s += exp(x - *m); /* NaN x propagates through s */
  }
}

static void facc_init(rop op, double *a0, double *a1) {
  *a1 = 0;
  switch (op) {
    case ROP_PROD: *a0 = 1; break;
    case ROP_MAX:
    case ROP_LSE: *a0 = -INFINITY; break;
    case ROP_MIN: *a0 = INFINITY; break;
    default: *a0 = 0; break;
  }
}

static double facc_final(rop op, double a0, double a1, int64_t count) {
  switch (op) {
    case ROP_MEAN: return a0 / (double)count;
    case ROP_L2: return sqrt(a0);
    case ROP_LOGSUM: return log(a0);
    case ROP_LSE:
      if (a0 == -INFINITY || a0 == INFINITY) return a0;
      return a0 + log(a1);
    default: return a0;
  }
}

#define DEFINE_FLOAT_ENGINE(SUF, T)                                                                        \
  /* Accumulates a contiguous run p[0..n) into (a0, a1). */                                               \
  static void frun_##SUF(rop op, const T *p, int64_t n, double *a0, double *a1) {                         \
    double v = *a0;                                                                                        \
    switch (op) {                                                                                          \
      case ROP_SUM:                                                                                        \
      case ROP_MEAN:                                                                                       \
      case ROP_LOGSUM:                                                                                     \
      case ROP_L1:                                                                                         \
      case ROP_L2:                                                                                         \
      case ROP_SUMSQ: {                                                                                    \
        double s[4] = {0, 0, 0, 0};                                                                        \
        int64_t i = 0;                                                                                     \
        if (op == ROP_L1) {                                                                                \
          for (; i + 4 <= n; i += 4)                                                                       \
            for (int k = 0; k < 4; k++) s[k] += fabs((double)p[i + k]);                                    \
          for (; i < n; i++) s[0] += fabs((double)p[i]);                                                   \
        } else if (op == ROP_L2 || op == ROP_SUMSQ) {                                                      \
          for (; i + 4 <= n; i += 4)                                                                       \
            for (int k = 0; k < 4; k++) s[k] += (double)p[i + k] * (double)p[i + k];                       \
          for (; i < n; i++) s[0] += (double)p[i] * (double)p[i];                                          \
        } else {                                                                                           \
          for (; i + 4 <= n; i += 4)                                                                       \
            for (int k = 0; k < 4; k++) s[k] += (double)p[i + k];                                          \
          for (; i < n; i++) s[0] += (double)p[i];                                                         \
        }                                                                                                  \
        v += (s[0] + s[1]) + (s[2] + s[3]);                                                                \
        break;                                                                                             \
      }                                                                                                    \
      case ROP_PROD:                                                                                       \
        for (int64_t i = 0; i < n; i++) v *= (double)p[i];                                                 \
        break;                                                                                             \
      case ROP_MAX:                                                                                        \
        for (int64_t i = 0; i < n; i++) {                                                                  \
          double x = (double)p[i];                                                                         \
          if (x > v || x != x) v = x;                                                                      \
          if (v != v) break;                                                                               \
        }                                                                                                  \
        break;                                                                                             \
      case ROP_MIN:                                                                                        \
        for (int64_t i = 0; i < n; i++) {                                                                  \
          double x = (double)p[i];                                                                         \
          if (x < v || x != x) v = x;                                                                      \
          if (v != v) break;                                                                               \
        }                                                                                                  \
        break;                                                                                             \
      case ROP_LSE:                                                                                        \
        for (int64_t i = 0; i < n; i++) lse_add(&v, a1, (double)p[i]);                                     \
        break;                                                                                             \
    }                                                                                                      \
    *a0 = v;                                                                                               \
  }                                                                                                        \
  /* Accumulates row p[0..n) elementwise into a0[0..n), a1[0..n). */                                       \
  static void fvec_##SUF(rop op, const T *p, int64_t n, double *a0, double *a1) {                         \
    switch (op) {                                                                                          \
      case ROP_SUM:                                                                                        \
      case ROP_MEAN:                                                                                       \
      case ROP_LOGSUM:                                                                                     \
        for (int64_t i = 0; i < n; i++) a0[i] += (double)p[i];                                             \
        break;                                                                                             \
      case ROP_L1:                                                                                         \
        for (int64_t i = 0; i < n; i++) a0[i] += fabs((double)p[i]);                                       \
        break;                                                                                             \
      case ROP_L2:                                                                                         \
      case ROP_SUMSQ:                                                                                      \
        for (int64_t i = 0; i < n; i++) a0[i] += (double)p[i] * (double)p[i];                              \
        break;                                                                                             \
      case ROP_PROD:                                                                                       \
        for (int64_t i = 0; i < n; i++) a0[i] *= (double)p[i];                                             \
        break;                                                                                             \
      case ROP_MAX:                                                                                        \
        for (int64_t i = 0; i < n; i++) {                                                                  \
          double x = (double)p[i];                                                                         \
          a0[i] = (x > a0[i] || x != x) ? x : a0[i];                                                       \
        }                                                                                                  \
        break;                                                                                             \
      case ROP_MIN:                                                                                        \
        for (int64_t i = 0; i < n; i++) {                                                                  \
          double x = (double)p[i];                                                                         \
          a0[i] = (x < a0[i] || x != x) ? x : a0[i];                                                       \
        }                                                                                                  \
        break;                                                                                             \
      case ROP_LSE:                                                                                        \
        for (int64_t i = 0; i < n; i++) lse_add(&a0[i], &a1[i], (double)p[i]);                             \
        break;                                                                                             \
    }                                                                                                      \
  }

DEFINE_FLOAT_ENGINE(f32, float)
DEFINE_FLOAT_ENGINE(f64, double)

#define VEC_CHUNK 512

typedef struct fjob {
  rop op;
  bool f64;
  const void *x;
  void *y;
  const rplan *p;
  int64_t nchunks; /* inner-kept case: chunks per output row */
} fjob;

static void fstore(const fjob *j, int64_t i, double v) {
  if (j->f64)
    ((double *)j->y)[i] = v;
  else
    ((float *)j->y)[i] = (float)v;
}

static void fjob_run(void *arg, int64_t begin, int64_t end) {
  const fjob *j = arg;
  const rplan *p = j->p;
  if (p->inner_reduced) {
    for (int64_t o = begin; o < end; o++) {
      double a0, a1;
      facc_init(j->op, &a0, &a1);
      for (int64_t r = 0; r < p->nr; r++) {
        int64_t off = p->koff[o] + p->roff[r];
        if (j->f64)
          frun_f64(j->op, (const double *)j->x + off, p->inner, &a0, &a1);
        else
          frun_f32(j->op, (const float *)j->x + off, p->inner, &a0, &a1);
      }
      fstore(j, o, facc_final(j->op, a0, a1, p->count));
    }
    return;
  }
  double a0[VEC_CHUNK], a1[VEC_CHUNK];
  for (int64_t t = begin; t < end; t++) {
    int64_t row = t / j->nchunks, c0 = (t % j->nchunks) * VEC_CHUNK;
    int64_t len = p->inner - c0 < VEC_CHUNK ? p->inner - c0 : VEC_CHUNK;
    for (int64_t i = 0; i < len; i++) facc_init(j->op, &a0[i], &a1[i]);
    for (int64_t r = 0; r < p->nr; r++) {
      int64_t off = p->koff[row] + p->roff[r] + c0;
      if (j->f64)
        fvec_f64(j->op, (const double *)j->x + off, len, a0, a1);
      else
        fvec_f32(j->op, (const float *)j->x + off, len, a0, a1);
    }
    for (int64_t i = 0; i < len; i++) fstore(j, row * p->inner + c0 + i, facc_final(j->op, a0[i], a1[i], p->count));
  }
}

/* ---- integer engine (int64 data; wrap-around arithmetic) ----------------------------- */
typedef struct ijob {
  rop op;
  bool is_unsigned; /* compare as uint64 (only uint64 data needs it; narrower types fit int64) */
  const int64_t *x;
  int64_t *y;
  const rplan *p;
} ijob;

static uint64_t iacc_init(rop op) { return op == ROP_PROD ? 1u : 0u; }

static inline uint64_t iacc_add(const ijob *j, uint64_t a, int64_t x, bool first) {
  uint64_t u = (uint64_t)x;
  switch (j->op) {
    case ROP_PROD: return a * u;
    case ROP_MAX:
      if (first) return u;
      return j->is_unsigned ? (u > a ? u : a) : ((int64_t)u > (int64_t)a ? u : a);
    case ROP_MIN:
      if (first) return u;
      return j->is_unsigned ? (u < a ? u : a) : ((int64_t)u < (int64_t)a ? u : a);
    case ROP_L1: return a + ((!j->is_unsigned && x < 0) ? (uint64_t)0 - u : u);
    case ROP_SUMSQ: return a + u * u;
    default: return a + u;
  }
}

static void ijob_run(void *arg, int64_t begin, int64_t end) {
  const ijob *j = arg;
  const rplan *p = j->p;
  int64_t per_out = p->inner_reduced ? 1 : p->inner;
  for (int64_t o = begin; o < end; o++) {
    for (int64_t e = 0; e < per_out; e++) {
      uint64_t a = iacc_init(j->op);
      bool first = true;
      for (int64_t r = 0; r < p->nr; r++) {
        const int64_t *q = j->x + p->koff[o] + p->roff[r] + e;
        int64_t len = p->inner_reduced ? p->inner : 1;
        for (int64_t i = 0; i < len; i++) {
          a = iacc_add(j, a, q[i], first);
          first = false;
        }
      }
      if (j->op == ROP_MEAN)
        a = j->is_unsigned ? a / (uint64_t)p->count : (uint64_t)((int64_t)a / p->count);
      j->y[o * per_out + e] = (int64_t)a;
    }
  }
}

/* Value of an empty reduction for integer/bool dtypes (max/min use the dtype's limits). */
static int64_t int_empty_value(rop op, drt_dtype dt) {
  bool mx = op == ROP_MAX;
  switch (op) {
    case ROP_PROD: return 1;
    case ROP_MAX:
    case ROP_MIN: break;
    default: return 0;
  }
  switch (dt) {
    case DRT_DTYPE_BOOL: return mx ? 0 : 1;
    case DRT_DTYPE_INT8: return mx ? INT8_MIN : INT8_MAX;
    case DRT_DTYPE_INT16: return mx ? INT16_MIN : INT16_MAX;
    case DRT_DTYPE_INT32: return mx ? INT32_MIN : INT32_MAX;
    case DRT_DTYPE_INT64: return mx ? INT64_MIN : INT64_MAX;
    case DRT_DTYPE_UINT8: return mx ? 0 : UINT8_MAX;
    case DRT_DTYPE_UINT16: return mx ? 0 : UINT16_MAX;
    case DRT_DTYPE_UINT32: return mx ? 0 : (int64_t)UINT32_MAX;
    case DRT_DTYPE_UINT64: return mx ? 0 : -1; /* all bits set */
    default: return 0;
  }
}

static drt_status run_float_reduce(drt_cpu_ctx *ctx, rop op, const drt_tensor *x, const bool *reduced, drt_tensor *y,
                                   bool f64_data, const void *xdata, void *ydata) {
  rplan p;
  DRT_RETURN_IF_ERROR(rplan_make(&x->shape, reduced, &p));
  fjob j = {op, f64_data, xdata, ydata, &p, 1};
  int64_t work = p.count > 0 ? p.count : 1;
  if (p.inner_reduced) {
    int64_t grain = 32768 / work;
    drt_parallel_for(ctx, p.nk, grain > 0 ? grain : 1, fjob_run, &j);
  } else {
    j.nchunks = (p.inner + VEC_CHUNK - 1) / VEC_CHUNK;
    int64_t grain = 32768 / (work * VEC_CHUNK);
    drt_parallel_for(ctx, p.nk * j.nchunks, grain > 0 ? grain : 1, fjob_run, &j);
  }
  (void)y;
  rplan_free(&p);
  return DRT_OK;
}

static drt_status k_reduce(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  const drt_tensor *x = &in[0];
  drt_tensor *y = &out[0];
  bool reduced[DRT_MAX_RANK];
  drt_shape oshape;
  DRT_RETURN_IF_ERROR(drt_reduce_resolve(n, &x->shape, n->num_inputs > 1 && in[1].data ? &in[1] : NULL, reduced,
                                         &oshape));
  if (!drt_shape_equal(&oshape, &y->shape))
    return DRT_ERROR(DRT_STATUS_INTERNAL, "reduction output shape disagrees with inference");
  rop op = rop_of(n->op);
  int64_t nout = drt_shape_numel(&y->shape);
  if (nout == 0) return DRT_OK;
  int64_t nin = drt_shape_numel(&x->shape);
  bool is_float = drt_dtype_is_float(x->dtype);
  if (x->dtype != DRT_DTYPE_FLOAT32 && x->dtype != DRT_DTYPE_FLOAT64 && is_float)
    return DRT_ERROR(DRT_STATUS_INTERNAL, "unexpected dtype %s (the executor promotes it)", drt_dtype_name(x->dtype));
  if (nin == 0) { /* reducing an empty set: the reduction's identity, post-processed */
    if (is_float) {
      double a0, a1;
      facc_init(op, &a0, &a1);
      double v = facc_final(op, a0, a1, 0);
      for (int64_t i = 0; i < nout; i++) {
        if (x->dtype == DRT_DTYPE_FLOAT64)
          ((double *)y->data)[i] = v;
        else
          ((float *)y->data)[i] = (float)v;
      }
    } else {
      int64_t v = int_empty_value(op, x->dtype);
      if (op == ROP_LOGSUM || op == ROP_LSE) v = INT64_MIN; /* log(0) = -inf, saturated */
      for (int64_t i = 0; i < nout; i++) drt_convert(y->dtype, (char *)y->data + i * (int64_t)drt_dtype_size(y->dtype),
                                                     DRT_DTYPE_INT64, &v, 1);
    }
    return DRT_OK;
  }
  if (is_float) return run_float_reduce(ctx, op, x, reduced, y, x->dtype == DRT_DTYPE_FLOAT64, x->data, y->data);

  /* integer / bool data */
  if (op == ROP_L2 || op == ROP_LOGSUM || op == ROP_LSE) { /* through double, truncated back */
    double *xd = malloc((size_t)nin * sizeof(double)), *yd = malloc((size_t)nout * sizeof(double));
    drt_status st = DRT_OK;
    if (!xd || !yd) {
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "integer reduction buffers");
    } else {
      drt_convert(DRT_DTYPE_FLOAT64, xd, x->dtype, x->data, (size_t)nin);
      st = run_float_reduce(ctx, op, x, reduced, y, true, xd, yd);
      if (!st) drt_convert(y->dtype, y->data, DRT_DTYPE_FLOAT64, yd, (size_t)nout);
    }
    free(xd);
    free(yd);
    return st;
  }
  int64_t *xi = x->dtype == DRT_DTYPE_INT64 ? (int64_t *)x->data : malloc((size_t)nin * sizeof(int64_t));
  int64_t *yi = y->dtype == DRT_DTYPE_INT64 ? (int64_t *)y->data : malloc((size_t)nout * sizeof(int64_t));
  drt_status st = DRT_OK;
  rplan p;
  memset(&p, 0, sizeof p);
  if (!xi || !yi) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "integer reduction buffers");
  } else {
    if (xi != x->data) drt_convert(DRT_DTYPE_INT64, xi, x->dtype, x->data, (size_t)nin);
    st = rplan_make(&x->shape, reduced, &p);
    if (!st) {
      ijob j = {op, x->dtype == DRT_DTYPE_UINT64, xi, yi, &p};
      int64_t grain = 32768 / (p.count > 0 ? p.count : 1);
      drt_parallel_for(ctx, p.nk, grain > 0 ? grain : 1, ijob_run, &j);
      if (yi != y->data) drt_convert(y->dtype, y->data, DRT_DTYPE_INT64, yi, (size_t)nout);
    }
  }
  rplan_free(&p);
  if (xi && xi != x->data) free(xi);
  if (yi && yi != y->data) free(yi);
  return st;
}

/* ---- ArgMax / ArgMin ------------------------------------------------------------------- */
typedef struct argjob {
  bool is_max, last;
  drt_dtype dt; /* FLOAT32, FLOAT64, INT64 (converted) or UINT64 */
  const void *x;
  int64_t *y;
  int64_t axis_len, inner;
} argjob;

#define ARG_SCAN(T)                                                                              \
  do {                                                                                           \
    const T *q = (const T *)j->x + base;                                                         \
    T best = q[0];                                                                               \
    int64_t bi = 0;                                                                              \
    bool nan_seen = best != best;                                                                \
    for (int64_t a = 1; a < j->axis_len && !nan_seen; a++) {                                     \
      T v = q[a * j->inner];                                                                     \
      if (v != v) { /* NaN wins, first occurrence (numpy) */                                     \
        bi = a;                                                                                  \
        nan_seen = true;                                                                         \
        break;                                                                                   \
      }                                                                                          \
      bool better = j->is_max ? (j->last ? v >= best : v > best) : (j->last ? v <= best : v < best); \
      if (better) {                                                                              \
        best = v;                                                                                \
        bi = a;                                                                                  \
      }                                                                                          \
    }                                                                                            \
    j->y[t] = bi;                                                                                \
  } while (0)

static void argjob_run(void *arg, int64_t begin, int64_t end) {
  const argjob *j = arg;
  for (int64_t t = begin; t < end; t++) {
    int64_t o = t / j->inner, i = t % j->inner;
    int64_t base = o * j->axis_len * j->inner + i;
    switch (j->dt) {
      case DRT_DTYPE_FLOAT32: ARG_SCAN(float); break;
      case DRT_DTYPE_FLOAT64: ARG_SCAN(double); break;
      case DRT_DTYPE_UINT64: ARG_SCAN(uint64_t); break;
      default: ARG_SCAN(int64_t); break;
    }
  }
}

static drt_status k_argmax(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  const drt_tensor *x = &in[0];
  int axis;
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_node_attr_int(n, "axis", 0), x->shape.rank, &axis), "attribute axis");
  int64_t outer = 1, inner = 1, len = x->shape.dims[axis];
  for (int d = 0; d < axis; d++) outer *= x->shape.dims[d];
  for (int d = axis + 1; d < x->shape.rank; d++) inner *= x->shape.dims[d];
  if (outer * inner == 0) return DRT_OK;
  if (len == 0) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "cannot take the arg-extremum over empty axis %d", axis);
  argjob j = {n->op == DRT_OP_ARGMAX, drt_node_attr_int(n, "select_last_index", 0) != 0, x->dtype, x->data,
              (int64_t *)out[0].data, len, inner};
  void *tmp = NULL;
  if (x->dtype != DRT_DTYPE_FLOAT32 && x->dtype != DRT_DTYPE_FLOAT64 && x->dtype != DRT_DTYPE_UINT64 &&
      x->dtype != DRT_DTYPE_INT64) {
    if (!drt_dtype_is_int(x->dtype))
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "dtype %s is not supported", drt_dtype_name(x->dtype));
    int64_t cnt = outer * len * inner;
    tmp = malloc((size_t)cnt * sizeof(int64_t));
    if (!tmp) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "argmax conversion buffer");
    drt_convert(DRT_DTYPE_INT64, tmp, x->dtype, x->data, (size_t)cnt);
    j.dt = DRT_DTYPE_INT64;
    j.x = tmp;
  }
  int64_t grain = 16384 / len;
  drt_parallel_for(ctx, outer * inner, grain > 0 ? grain : 1, argjob_run, &j);
  free(tmp);
  return DRT_OK;
}

/* ---- CumSum, CumProd ------------------------------------------------------------------- */
typedef struct cumjob {
  bool exclusive, reverse, prod;
  drt_dtype dt; /* FLOAT32, FLOAT64 or INT64 (ints converted; wrap-around) */
  const void *x;
  void *y;
  int64_t len, inner;
} cumjob;

#define CUM_SCAN(T, ACC)                                                  \
  do {                                                                    \
    const T *q = (const T *)j->x + base;                                  \
    T *r = (T *)j->y + base;                                              \
    ACC s = j->prod ? 1 : 0;                                              \
    for (int64_t k = 0; k < j->len; k++) {                                \
      int64_t a = j->reverse ? j->len - 1 - k : k;                        \
      ACC v = (ACC)q[a * j->inner];                                       \
      if (j->exclusive) r[a * j->inner] = (T)s;                           \
      if (j->prod) s *= v;                                                \
      else s += v;                                                        \
      if (!j->exclusive) r[a * j->inner] = (T)s;                          \
    }                                                                     \
  } while (0)

static void cumjob_run(void *arg, int64_t begin, int64_t end) {
  const cumjob *j = arg;
  for (int64_t t = begin; t < end; t++) {
    int64_t o = t / j->inner, i = t % j->inner;
    int64_t base = o * j->len * j->inner + i;
    switch (j->dt) {
      case DRT_DTYPE_FLOAT32: CUM_SCAN(float, double); break;
      case DRT_DTYPE_FLOAT64: CUM_SCAN(double, double); break;
      default: CUM_SCAN(uint64_t, uint64_t); break;
    }
  }
}

static drt_status k_cumsum(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  const drt_tensor *x = &in[0];
  if (!in[1].data || drt_shape_numel(&in[1].shape) != 1)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "axis (input 1) must be a scalar");
  int axis;
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_load_i64(in[1].dtype, in[1].data, 0), x->shape.rank, &axis),
                          "axis (input 1)");
  int64_t outer = 1, inner = 1, len = x->shape.dims[axis];
  for (int d = 0; d < axis; d++) outer *= x->shape.dims[d];
  for (int d = axis + 1; d < x->shape.rank; d++) inner *= x->shape.dims[d];
  int64_t cnt = outer * len * inner;
  if (cnt == 0) return DRT_OK;
  cumjob j = {drt_node_attr_int(n, "exclusive", 0) != 0, drt_node_attr_int(n, "reverse", 0) != 0,
              n->op == DRT_OP_CUMPROD, x->dtype, x->data, out[0].data, len, inner};
  void *tx = NULL, *ty = NULL;
  if (x->dtype != DRT_DTYPE_FLOAT32 && x->dtype != DRT_DTYPE_FLOAT64) {
    if (!drt_dtype_is_int(x->dtype))
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "dtype %s is not supported", drt_dtype_name(x->dtype));
    tx = malloc((size_t)cnt * sizeof(int64_t));
    ty = malloc((size_t)cnt * sizeof(int64_t));
    if (!tx || !ty) {
      free(tx);
      free(ty);
      return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "%s conversion buffers", drt_op_name(n->op));
    }
    drt_convert(DRT_DTYPE_INT64, tx, x->dtype, x->data, (size_t)cnt);
    j.dt = DRT_DTYPE_INT64;
    j.x = tx;
    j.y = ty;
  }
  int64_t grain = 16384 / len;
  drt_parallel_for(ctx, outer * inner, grain > 0 ? grain : 1, cumjob_run, &j);
  if (ty) drt_convert(out[0].dtype, out[0].data, DRT_DTYPE_INT64, ty, (size_t)cnt);
  free(tx);
  free(ty);
  return DRT_OK;
}

#define F32 DRT_DT_BIT(DRT_DTYPE_FLOAT32)
#define F64 DRT_DT_BIT(DRT_DTYPE_FLOAT64)

const drt_cpu_kernel_entry drt_cpu_kernels_reduce[] = {
    {DRT_OP_SOFTMAX, drt_cpu_softmax, F32},
    {DRT_OP_LOG_SOFTMAX, drt_cpu_softmax, F32},
    {DRT_OP_LAYER_NORM, drt_cpu_layer_norm, F32},
    {DRT_OP_GROUP_NORM, drt_cpu_group_norm, F32},
    {DRT_OP_INSTANCE_NORM, drt_cpu_instance_norm, F32},
    {DRT_OP_BATCH_NORM, drt_cpu_batch_norm, F32},
    {DRT_OP_RMS_NORM, drt_cpu_rms_norm, F32},
    {DRT_OP_LP_NORMALIZATION, drt_cpu_lp_normalization, F32},
    {DRT_OP_MVN, drt_cpu_mvn, F32},
    {DRT_OP_LRN, drt_cpu_lrn, F32},
    {DRT_OP_REDUCE_MEAN, k_reduce, F32 | F64},
    {DRT_OP_REDUCE_SUM, k_reduce, F32 | F64},
    {DRT_OP_REDUCE_MAX, k_reduce, F32 | F64},
    {DRT_OP_REDUCE_MIN, k_reduce, F32 | F64},
    {DRT_OP_REDUCE_PROD, k_reduce, F32 | F64},
    {DRT_OP_REDUCE_L1, k_reduce, F32 | F64},
    {DRT_OP_REDUCE_L2, k_reduce, F32 | F64},
    {DRT_OP_REDUCE_SUM_SQUARE, k_reduce, F32 | F64},
    {DRT_OP_REDUCE_LOG_SUM, k_reduce, F32 | F64},
    {DRT_OP_REDUCE_LOG_SUM_EXP, k_reduce, F32 | F64},
    {DRT_OP_ARGMAX, k_argmax, F32 | F64},
    {DRT_OP_ARGMIN, k_argmax, F32 | F64},
    {DRT_OP_CUMSUM, k_cumsum, F32 | F64},
    {DRT_OP_CUMPROD, k_cumsum, F32 | F64},
    {DRT_OP_ATTENTION, drt_cpu_attention, F32},
    {DRT_OP_ROTARY_EMBEDDING, drt_cpu_rotary_embedding, F32},
    {DRT_OP_COUNT_, NULL, 0},
};
