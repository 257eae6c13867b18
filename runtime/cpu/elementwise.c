/* CPU kernels for the elementwise op family.
 *
 * Layout of this file:
 *  1. fast float32 math (exp, tanh, erf) written branch-free so loops vectorize;
 *  2. unary ops: one loop per (op, dtype), float32/float64 generated from one expression;
 *  3. the broadcast engine: output dims are coalesced (size-1 dims dropped, adjacent dims
 *     merged when every operand is contiguous across them), then each chunk of the output
 *     is walked row by row; a row function sees innermost operand strides of 0 or 1, so it
 *     has tight loops for same-shape, scalar-broadcast and mixed operands;
 *  4. binary/variadic/ternary ops built on it (arithmetic, comparisons, logic, Pow, Where);
 *  5. Clip, Cast, Identity, Dropout and the kernel table.
 *
 * Float kernels compute float32 and float64 natively; float16/bfloat16 are promoted to
 * float32 by drt_cpu_run_node. Pure data movement (Cast, Identity, Dropout, Where) handles
 * every dtype natively so nothing is rounded through float32. Integer arithmetic wraps
 * (two's complement) instead of invoking C's undefined signed overflow; integer division
 * and modulo by zero give 0, as numpy does. Large tensors are split across the thread pool
 * in chunks of GRAIN elements. */
#if defined(__GNUC__) && !defined(__clang__)
/* Lets GCC if-convert float selects (x < 0 ? a : b) so those loops vectorize. Results are
 * unchanged: nothing here reads the floating-point exception flags. (-fno-math-errno, which
 * would let sqrt vectorize, cannot be enabled by a pragma; it needs the compile flag.) */
#pragma GCC optimize("no-trapping-math")
#endif

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cpu/cpu.h"
#include "runtime/cpu/fastmath.h"

#define GRAIN 16384
#define DTYPE_SLOTS 17 /* drt_dtype values are < 17 */

/* ==== 1. fast float32 math ============================================================ */

/* exp/tanh/erf approximations shared with the fused kernels (runtime/cpu/fastmath.h). */
#define bits_f32 drt_bits_f32
#define f32_bits drt_f32_bits
#define fast_expf drt_fast_expf
#define fast_tanhf drt_fast_tanhf
#define fast_erff drt_fast_erff

/* Helpers shared by the float32 and float64 expressions below. */
static inline float sat01_f32(float v) {
  v = v < 0.0f ? 0.0f : v;
  return v > 1.0f ? 1.0f : v;
}
static inline double sat01_f64(double v) {
  v = v < 0.0 ? 0.0 : v;
  return v > 1.0 ? 1.0 : v;
}
/* log(1 + exp(x)) without overflow. */
static inline float softplus_f32(float x) { return x > 0.0f ? x + log1pf(expf(-x)) : log1pf(expf(x)); }
static inline double softplus_f64(double x) { return x > 0.0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

/* Type-generic math: float32 gets the fast versions where they exist, float64 gets libm. */
#define M_EXP(x) _Generic((x), float: fast_expf, default: exp)(x)
#define M_TANH(x) _Generic((x), float: fast_tanhf, default: tanh)(x)
#define M_ERF(x) _Generic((x), float: fast_erff, default: erf)(x)
#define M_LIBM(fn, x) _Generic((x), float: fn##f, default: fn)(x)
#define M_SAT01(x) _Generic((x), float: sat01_f32, default: sat01_f64)(x)
#define M_SOFTPLUS(x) _Generic((x), float: softplus_f32, default: softplus_f64)(x)

/* ==== 2. unary ops ===================================================================== */

typedef struct unary_params {
  double alpha, beta, gamma;
} unary_params;

typedef void (*unary_loop_fn)(const void *x, void *y, int64_t n, const void *params);

/* One float32 and one float64 loop from one expression of `x` (type T); alpha, beta and
 * gamma are the op's float attributes converted to T. */
#define DEF_UNARY_T(NAME, TYPE, S, EXPR)                                             \
  static void NAME##_##S(const void *xv, void *yv, int64_t n, const void *pv) { \
    typedef TYPE T;                                                                  \
    const unary_params *p = pv;                                                      \
    const T *X_ = xv;                                                                \
    T *Y_ = yv;                                                                      \
    const T alpha = (T)p->alpha, beta = (T)p->beta, gamma = (T)p->gamma;             \
    (void)alpha;                                                                     \
    (void)beta;                                                                      \
    (void)gamma;                                                                     \
    for (int64_t i = 0; i < n; i++) {                                                \
      const T x = X_[i];                                                             \
      Y_[i] = (T)(EXPR);                                                             \
    }                                                                                \
  }
#define DEF_UNARY(NAME, EXPR)             \
  DEF_UNARY_T(NAME, float, f32, EXPR)     \
  DEF_UNARY_T(NAME, double, f64, EXPR)

DEF_UNARY(u_abs, M_LIBM(fabs, x))
DEF_UNARY(u_neg, -x)
DEF_UNARY(u_sqrt, M_LIBM(sqrt, x))
DEF_UNARY(u_reciprocal, (T)1 / x)
DEF_UNARY(u_exp, M_EXP(x))
DEF_UNARY(u_log, M_LIBM(log, x))
DEF_UNARY(u_erf, M_ERF(x))
DEF_UNARY(u_tanh, M_TANH(x))
DEF_UNARY(u_sigmoid, (T)1 / ((T)1 + M_EXP(-x)))
DEF_UNARY(u_relu, x < 0 ? (T)0 : x)
DEF_UNARY(u_leaky_relu, x < 0 ? alpha * x : x)
DEF_UNARY(u_elu, x < 0 ? alpha * M_LIBM(expm1, x) : x)
DEF_UNARY(u_selu, x > 0 ? gamma * x : gamma * (alpha * M_EXP(x) - alpha))
DEF_UNARY(u_celu, x > 0 ? x : alpha * M_LIBM(expm1, x / alpha))
DEF_UNARY(u_sin, M_LIBM(sin, x))
DEF_UNARY(u_cos, M_LIBM(cos, x))
DEF_UNARY(u_tan, M_LIBM(tan, x))
DEF_UNARY(u_asin, M_LIBM(asin, x))
DEF_UNARY(u_acos, M_LIBM(acos, x))
DEF_UNARY(u_atan, M_LIBM(atan, x))
DEF_UNARY(u_sinh, M_LIBM(sinh, x))
DEF_UNARY(u_cosh, M_LIBM(cosh, x))
DEF_UNARY(u_asinh, M_LIBM(asinh, x))
DEF_UNARY(u_acosh, M_LIBM(acosh, x))
DEF_UNARY(u_atanh, M_LIBM(atanh, x))
DEF_UNARY(u_floor, M_LIBM(floor, x))
DEF_UNARY(u_ceil, M_LIBM(ceil, x))
DEF_UNARY(u_round, M_LIBM(rint, x)) /* default rounding mode: half to even */
DEF_UNARY(u_sign, x > 0 ? (T)1 : (x < 0 ? (T)-1 : x))
DEF_UNARY(u_gelu, (T)0.5 * x * ((T)1 + M_ERF(x * (T)0.70710678118654752440)))
DEF_UNARY(u_gelu_tanh,
          (T)0.5 * x * ((T)1 + M_TANH((T)0.79788456080286535588 * (x + (T)0.044715 * x * x * x))))
DEF_UNARY(u_hard_sigmoid, M_SAT01(alpha * x + beta))
DEF_UNARY(u_hard_swish, x * M_SAT01(x * (T)(1.0 / 6.0) + (T)0.5))
DEF_UNARY(u_mish, x * M_LIBM(tanh, M_SOFTPLUS(x)))
DEF_UNARY(u_softplus, M_SOFTPLUS(x))
DEF_UNARY(u_softsign, x / ((T)1 + M_LIBM(fabs, x)))
DEF_UNARY(u_swish, x / ((T)1 + M_EXP(-alpha * x)))
DEF_UNARY(u_thresholded_relu, x > alpha ? x : (T)0)
DEF_UNARY(u_shrink, x < -beta ? x + alpha : (x > beta ? x - alpha : (T)0)) /* alpha = bias, beta = lambd */

typedef struct unary_impl {
  drt_op op;
  unary_loop_fn f32, f64;
  double alpha, beta, gamma; /* attribute defaults */
} unary_impl;

#define UNARY(OP, NAME, A, B, G) {DRT_OP_##OP, NAME##_f32, NAME##_f64, A, B, G}
static const unary_impl k_unary_ops[] = {
    UNARY(ABS, u_abs, 0, 0, 0),
    UNARY(NEG, u_neg, 0, 0, 0),
    UNARY(SQRT, u_sqrt, 0, 0, 0),
    UNARY(RECIPROCAL, u_reciprocal, 0, 0, 0),
    UNARY(EXP, u_exp, 0, 0, 0),
    UNARY(LOG, u_log, 0, 0, 0),
    UNARY(ERF, u_erf, 0, 0, 0),
    UNARY(TANH, u_tanh, 0, 0, 0),
    UNARY(SIGMOID, u_sigmoid, 0, 0, 0),
    UNARY(RELU, u_relu, 0, 0, 0),
    UNARY(LEAKY_RELU, u_leaky_relu, 0.01, 0, 0),
    UNARY(ELU, u_elu, 1.0, 0, 0),
    UNARY(SELU, u_selu, 1.67326319217681884765625, 0, 1.05070102214813232421875),
    UNARY(CELU, u_celu, 1.0, 0, 0),
    UNARY(SIN, u_sin, 0, 0, 0),
    UNARY(COS, u_cos, 0, 0, 0),
    UNARY(TAN, u_tan, 0, 0, 0),
    UNARY(ASIN, u_asin, 0, 0, 0),
    UNARY(ACOS, u_acos, 0, 0, 0),
    UNARY(ATAN, u_atan, 0, 0, 0),
    UNARY(SINH, u_sinh, 0, 0, 0),
    UNARY(COSH, u_cosh, 0, 0, 0),
    UNARY(ASINH, u_asinh, 0, 0, 0),
    UNARY(ACOSH, u_acosh, 0, 0, 0),
    UNARY(ATANH, u_atanh, 0, 0, 0),
    UNARY(FLOOR, u_floor, 0, 0, 0),
    UNARY(CEIL, u_ceil, 0, 0, 0),
    UNARY(ROUND, u_round, 0, 0, 0),
    UNARY(SIGN, u_sign, 0, 0, 0),
    UNARY(GELU, u_gelu, 0, 0, 0),
    UNARY(HARD_SIGMOID, u_hard_sigmoid, 0.2, 0.5, 0),
    UNARY(HARD_SWISH, u_hard_swish, 0, 0, 0),
    UNARY(MISH, u_mish, 0, 0, 0),
    UNARY(SOFTPLUS, u_softplus, 0, 0, 0),
    UNARY(SOFTSIGN, u_softsign, 0, 0, 0),
    UNARY(SWISH, u_swish, 1.0, 0, 0),
    UNARY(THRESHOLDED_RELU, u_thresholded_relu, 1.0, 0, 0),
    UNARY(SHRINK, u_shrink, 0.0, 0.5, 0),
};
#undef UNARY

/* Integer versions of Abs, Neg, Sign and Relu (wrapping: Abs(INT_MIN) = INT_MIN, as numpy). */
#define DEF_SINT_UNARY(TYPE, S, UT)                                                                  \
  static void u_abs_##S(const void *xv, void *yv, int64_t n, const void *pv) {                \
    const TYPE *X_ = xv;                                                                             \
    TYPE *Y_ = yv;                                                                                   \
    (void)pv;                                                                                         \
    for (int64_t i = 0; i < n; i++) Y_[i] = X_[i] < 0 ? (TYPE)(0 - (UT)X_[i]) : X_[i];              \
  }                                                                                                  \
  static void u_neg_##S(const void *xv, void *yv, int64_t n, const void *pv) {                \
    const TYPE *X_ = xv;                                                                             \
    TYPE *Y_ = yv;                                                                                   \
    (void)pv;                                                                                         \
    for (int64_t i = 0; i < n; i++) Y_[i] = (TYPE)(0 - (UT)X_[i]);                                   \
  }                                                                                                  \
  static void u_sign_##S(const void *xv, void *yv, int64_t n, const void *pv) {               \
    const TYPE *X_ = xv;                                                                             \
    TYPE *Y_ = yv;                                                                                   \
    (void)pv;                                                                                         \
    for (int64_t i = 0; i < n; i++) Y_[i] = (TYPE)((X_[i] > 0) - (X_[i] < 0));                       \
  }                                                                                                  \
  static void u_relu_##S(const void *xv, void *yv, int64_t n, const void *pv) {               \
    const TYPE *X_ = xv;                                                                             \
    TYPE *Y_ = yv;                                                                                   \
    (void)pv;                                                                                         \
    for (int64_t i = 0; i < n; i++) Y_[i] = X_[i] < 0 ? 0 : X_[i];                                   \
  }
DEF_SINT_UNARY(int8_t, i8, uint32_t)
DEF_SINT_UNARY(int16_t, i16, uint32_t)
DEF_SINT_UNARY(int32_t, i32, uint32_t)
DEF_SINT_UNARY(int64_t, i64, uint64_t)

#define DEF_UINT_SIGN(TYPE, S)                                                         \
  static void u_sign_##S(const void *xv, void *yv, int64_t n, const void *pv) { \
    const TYPE *X_ = xv;                                                               \
    TYPE *Y_ = yv;                                                                     \
    (void)pv;                                                                           \
    for (int64_t i = 0; i < n; i++) Y_[i] = X_[i] != 0;                                \
  }
DEF_UINT_SIGN(uint8_t, u8)
DEF_UINT_SIGN(uint16_t, u16)
DEF_UINT_SIGN(uint32_t, u32)
DEF_UINT_SIGN(uint64_t, u64)

/* Loop for an integer dtype; NULL when the op has none. Abs and Relu of an unsigned type
 * are the identity: *is_copy is set and NULL returned. */
static unary_loop_fn int_unary_loop(drt_op op, drt_dtype dt, bool *is_copy) {
#define SINT_CASES(FN)                     \
  switch (dt) {                            \
    case DRT_DTYPE_INT8: return FN##_i8;   \
    case DRT_DTYPE_INT16: return FN##_i16; \
    case DRT_DTYPE_INT32: return FN##_i32; \
    case DRT_DTYPE_INT64: return FN##_i64; \
    default: break;                        \
  }
  bool is_uint = dt == DRT_DTYPE_UINT8 || dt == DRT_DTYPE_UINT16 || dt == DRT_DTYPE_UINT32 ||
                 dt == DRT_DTYPE_UINT64;
  *is_copy = false;
  switch (op) {
    case DRT_OP_ABS:
      SINT_CASES(u_abs)
      *is_copy = is_uint;
      return NULL;
    case DRT_OP_RELU:
      SINT_CASES(u_relu)
      *is_copy = is_uint;
      return NULL;
    case DRT_OP_NEG: SINT_CASES(u_neg) return NULL;
    case DRT_OP_SIGN:
      SINT_CASES(u_sign)
      switch (dt) {
        case DRT_DTYPE_UINT8: return u_sign_u8;
        case DRT_DTYPE_UINT16: return u_sign_u16;
        case DRT_DTYPE_UINT32: return u_sign_u32;
        case DRT_DTYPE_UINT64: return u_sign_u64;
        default: return NULL;
      }
    default: return NULL;
  }
#undef SINT_CASES
}

/* Contiguous loop job split across the pool. */
typedef struct unary_job {
  unary_loop_fn fn;
  const char *x;
  char *y;
  size_t xsize, ysize;
  const void *p;
} unary_job;

static void unary_range(void *arg, int64_t b, int64_t e) {
  const unary_job *j = arg;
  j->fn(j->x + (size_t)b * j->xsize, j->y + (size_t)b * j->ysize, e - b, j->p);
}

static void run_unary(drt_cpu_ctx *ctx, unary_loop_fn fn, const drt_tensor *x, drt_tensor *y,
                      const void *p) {
  unary_job j = {fn, x->data, y->data, drt_dtype_size(x->dtype), drt_dtype_size(y->dtype), p};
  drt_parallel_for(ctx, drt_shape_numel(&y->shape), GRAIN, unary_range, &j);
}

static void copy_tensor(const drt_tensor *x, drt_tensor *y) {
  size_t nb = drt_tensor_nbytes(y);
  if (nb && x->data != y->data) memmove(y->data, x->data, nb);
}

static drt_status k_unary(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  const drt_tensor *x = &in[0];
  drt_dtype dt = x->dtype;
  if (dt == DRT_DTYPE_FLOAT32 || dt == DRT_DTYPE_FLOAT64) {
    for (size_t i = 0; i < sizeof k_unary_ops / sizeof k_unary_ops[0]; i++) {
      const unary_impl *u = &k_unary_ops[i];
      if (u->op != n->op) continue;
      unary_params p = {u->alpha, u->beta, u->gamma};
      unary_loop_fn fn = dt == DRT_DTYPE_FLOAT32 ? u->f32 : u->f64;
      switch (n->op) {
        case DRT_OP_LEAKY_RELU:
        case DRT_OP_ELU:
        case DRT_OP_CELU:
        case DRT_OP_HARD_SIGMOID:
        case DRT_OP_SELU:
        case DRT_OP_SWISH:
        case DRT_OP_THRESHOLDED_RELU:
          p.alpha = drt_node_attr_float(n, "alpha", (float)u->alpha);
          p.beta = drt_node_attr_float(n, "beta", (float)u->beta);
          p.gamma = drt_node_attr_float(n, "gamma", (float)u->gamma);
          break;
        case DRT_OP_SHRINK:
          p.alpha = drt_node_attr_float(n, "bias", (float)u->alpha);
          p.beta = drt_node_attr_float(n, "lambd", (float)u->beta);
          break;
        case DRT_OP_GELU:
          if (strcmp(drt_node_attr_string(n, "approximate", "none"), "tanh") == 0)
            fn = dt == DRT_DTYPE_FLOAT32 ? u_gelu_tanh_f32 : u_gelu_tanh_f64;
          break;
        default: break;
      }
      run_unary(ctx, fn, x, &out[0], &p);
      return DRT_OK;
    }
  } else {
    bool is_copy;
    unary_loop_fn fn = int_unary_loop(n->op, dt, &is_copy);
    if (is_copy) {
      copy_tensor(x, &out[0]);
      return DRT_OK;
    }
    if (fn) {
      unary_params p = {0, 0, 0};
      run_unary(ctx, fn, x, &out[0], &p);
      return DRT_OK;
    }
  }
  return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input dtype %s is not supported", drt_dtype_name(dt));
}

/* IsNaN, IsInf -> bool. */
typedef struct isinf_params {
  bool pos, neg, nan;
} isinf_params;

#define DEF_CLASSIFY(TYPE, S)                                                       \
  static void classify_##S(const void *xv, void *yv, int64_t n, const void *pv) {   \
    const isinf_params *c = pv;                                                     \
    const TYPE *X_ = xv;                                                            \
    uint8_t *Y_ = yv;                                                               \
    if (c->nan) {                                                                   \
      for (int64_t i = 0; i < n; i++) Y_[i] = isnan(X_[i]);                         \
    } else {                                                                        \
      const TYPE lo = c->neg ? (TYPE)-INFINITY : (TYPE)NAN;                         \
      const TYPE hi = c->pos ? (TYPE)INFINITY : (TYPE)NAN;                          \
      for (int64_t i = 0; i < n; i++) Y_[i] = (uint8_t)((X_[i] == lo) | (X_[i] == hi)); \
    }                                                                               \
  }
DEF_CLASSIFY(float, f32)
DEF_CLASSIFY(double, f64)

static drt_status k_classify(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  isinf_params c = {drt_node_attr_int(n, "detect_positive", 1) != 0, drt_node_attr_int(n, "detect_negative", 1) != 0,
                    n->op == DRT_OP_ISNAN};
  if (drt_dtype_is_lowp(in[0].dtype)) { /* float8: classify the decoded value */
    int64_t cnt = drt_shape_numel(&in[0].shape);
    const uint8_t *x = in[0].data;
    uint8_t *y = out[0].data;
    for (int64_t i = 0; i < cnt; i++) {
      double v = drt_lowp_to_f64(in[0].dtype, x[i]);
      y[i] = (uint8_t)(c.nan ? isnan(v) : isinf(v) && (v > 0 ? c.pos : c.neg));
    }
    return DRT_OK;
  }
  unary_loop_fn fn = in[0].dtype == DRT_DTYPE_FLOAT32 ? classify_f32 : in[0].dtype == DRT_DTYPE_FLOAT64 ? classify_f64 : NULL;
  if (!fn) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input dtype %s is not supported", drt_dtype_name(in[0].dtype));
  run_unary(ctx, fn, &in[0], &out[0], &c);
  return DRT_OK;
}

static void not_loop(const void *xv, void *yv, int64_t n, const void *pv) {
  const uint8_t *X_ = xv;
  uint8_t *Y_ = yv;
  (void)pv;
  for (int64_t i = 0; i < n; i++) Y_[i] = X_[i] == 0;
}

static drt_status k_not(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)n;
  if (in[0].dtype != DRT_DTYPE_BOOL)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input dtype %s is not supported", drt_dtype_name(in[0].dtype));
  unary_params p = {0, 0, 0};
  run_unary(ctx, not_loop, &in[0], &out[0], &p);
  return DRT_OK;
}

/* ==== 3. broadcast engine ============================================================== */

#define MAX_OPERANDS 3

/* Computes out[0..n) from operand rows; stride[k] is 0 (broadcast) or 1 for operand k. */
typedef void (*row_fn)(const void *const *in, const int64_t *stride, void *out, int64_t n, const void *arg);

typedef struct bcast_job {
  int rank, nin;
  int64_t dims[DRT_MAX_RANK];
  int64_t strides[MAX_OPERANDS][DRT_MAX_RANK]; /* elements */
  const char *in[MAX_OPERANDS];
  size_t in_size[MAX_OPERANDS];
  char *out;
  size_t out_size;
  row_fn row;
  const void *arg;
} bcast_job;

static void bcast_range(void *arg, int64_t b, int64_t e) {
  const bcast_job *j = arg;
  const int r = j->rank, nin = j->nin;
  const int64_t inner = j->dims[r - 1];
  int64_t idx[DRT_MAX_RANK], off[MAX_OPERANDS] = {0, 0, 0}, s_inner[MAX_OPERANDS] = {0, 0, 0};
  const void *ptr[MAX_OPERANDS] = {NULL, NULL, NULL};
  int64_t rem = b;
  for (int d = r - 1; d >= 0; d--) {
    idx[d] = rem % j->dims[d];
    rem /= j->dims[d];
    for (int k = 0; k < nin; k++) off[k] += idx[d] * j->strides[k][d];
  }
  for (int k = 0; k < nin; k++) s_inner[k] = j->strides[k][r - 1];
  int64_t pos = b;
  for (;;) {
    int64_t len = inner - idx[r - 1];
    if (len > e - pos) len = e - pos;
    for (int k = 0; k < nin; k++) ptr[k] = j->in[k] + (size_t)off[k] * j->in_size[k];
    j->row(ptr, s_inner, j->out + (size_t)pos * j->out_size, len, j->arg);
    pos += len;
    if (pos >= e) break;
    /* the row was finished: move to the start of the next one */
    for (int k = 0; k < nin; k++) off[k] -= idx[r - 1] * s_inner[k];
    idx[r - 1] = 0;
    for (int d = r - 2; d >= 0; d--) {
      idx[d]++;
      for (int k = 0; k < nin; k++) off[k] += j->strides[k][d];
      if (idx[d] < j->dims[d]) break;
      for (int k = 0; k < nin; k++) off[k] -= j->dims[d] * j->strides[k][d];
      idx[d] = 0;
    }
  }
}

/* out = row(ins...) with numpy broadcasting of every input to out's shape (which the caller
 * has validated by shape inference). */
static void run_broadcast(drt_cpu_ctx *ctx, const drt_tensor *const *ins, int nin, drt_tensor *out, row_fn row,
                          const void *arg) {
  int64_t total = drt_shape_numel(&out->shape);
  if (total <= 0) return;
  bcast_job j;
  memset(&j, 0, sizeof j);
  int64_t st[MAX_OPERANDS][DRT_MAX_RANK];
  for (int k = 0; k < nin; k++) drt_broadcast_strides(&ins[k]->shape, &out->shape, st[k]);
  int r = 0;
  for (int d = 0; d < out->shape.rank; d++) {
    int64_t dim = out->shape.dims[d];
    if (dim == 1) continue;
    bool merge = r > 0;
    for (int k = 0; k < nin && merge; k++) merge = j.strides[k][r - 1] == st[k][d] * dim;
    if (merge) {
      j.dims[r - 1] *= dim;
      for (int k = 0; k < nin; k++) j.strides[k][r - 1] = st[k][d];
      continue;
    }
    j.dims[r] = dim;
    for (int k = 0; k < nin; k++) j.strides[k][r] = st[k][d];
    r++;
  }
  if (r == 0) {
    j.dims[0] = 1;
    r = 1;
  }
  j.rank = r;
  j.nin = nin;
  for (int k = 0; k < nin; k++) {
    j.in[k] = ins[k]->data;
    j.in_size[k] = drt_dtype_size(ins[k]->dtype);
  }
  j.out = out->data;
  j.out_size = drt_dtype_size(out->dtype);
  j.row = row;
  j.arg = arg;
  drt_parallel_for(ctx, total, GRAIN, bcast_range, &j);
}

/* ==== 4. binary, variadic and ternary ops ============================================== */

/* Scalar helpers per dtype class. Floats: IEEE semantics; Max/Min propagate NaN; Mod with
 * fmod=0 follows numpy (result has the divisor's sign). */
#define DEF_FLOAT_SCALARS(TYPE, S, FMOD)                                           \
  static inline TYPE s_div_##S(TYPE a, TYPE b) { return a / b; }                   \
  static inline TYPE s_fmod_##S(TYPE a, TYPE b) { return FMOD(a, b); }             \
  static inline TYPE s_mod_##S(TYPE a, TYPE b) {                                   \
    TYPE r = FMOD(a, b);                                                           \
    if (r != 0) {                                                                  \
      if ((r < 0) != (b < 0)) r += b;                                              \
    } else {                                                                       \
      r = b < 0 ? -(TYPE)0 : (TYPE)0;                                              \
    }                                                                              \
    return r;                                                                      \
  }                                                                                \
  static inline TYPE s_max_##S(TYPE a, TYPE b) { return (a > b || isnan(a)) ? a : b; } \
  static inline TYPE s_min_##S(TYPE a, TYPE b) { return (a < b || isnan(a)) ? a : b; } \
  static inline TYPE s_prelu_##S(TYPE x, TYPE s) { return x < 0 ? s * x : x; }
DEF_FLOAT_SCALARS(float, f32, fmodf)
DEF_FLOAT_SCALARS(double, f64, fmod)

/* Signed integers: division truncates toward zero (C), by zero gives 0, MIN / -1 wraps. */
#define DEF_SINT_SCALARS(TYPE, S, UT)                                                   \
  static inline TYPE s_div_##S(TYPE a, TYPE b) {                                        \
    if (b == 0) return 0;                                                               \
    if (b == -1) return (TYPE)(0 - (UT)a);                                              \
    return (TYPE)(a / b);                                                               \
  }                                                                                     \
  static inline TYPE s_fmod_##S(TYPE a, TYPE b) { return b == 0 || b == -1 ? 0 : (TYPE)(a % b); } \
  static inline TYPE s_mod_##S(TYPE a, TYPE b) {                                        \
    TYPE r = s_fmod_##S(a, b);                                                          \
    return r != 0 && ((r < 0) != (b < 0)) ? (TYPE)(r + b) : r;                          \
  }                                                                                     \
  static inline TYPE s_max_##S(TYPE a, TYPE b) { return a > b ? a : b; }                \
  static inline TYPE s_min_##S(TYPE a, TYPE b) { return a < b ? a : b; }                \
  static inline TYPE s_prelu_##S(TYPE x, TYPE s) { return x < 0 ? (TYPE)((UT)s * (UT)x) : x; }
DEF_SINT_SCALARS(int8_t, i8, uint32_t)
DEF_SINT_SCALARS(int16_t, i16, uint32_t)
DEF_SINT_SCALARS(int32_t, i32, uint32_t)
DEF_SINT_SCALARS(int64_t, i64, uint64_t)

#define DEF_UINT_SCALARS(TYPE, S)                                                       \
  static inline TYPE s_div_##S(TYPE a, TYPE b) { return b == 0 ? 0 : (TYPE)(a / b); }   \
  static inline TYPE s_fmod_##S(TYPE a, TYPE b) { return b == 0 ? 0 : (TYPE)(a % b); }  \
  static inline TYPE s_mod_##S(TYPE a, TYPE b) { return s_fmod_##S(a, b); }             \
  static inline TYPE s_max_##S(TYPE a, TYPE b) { return a > b ? a : b; }                \
  static inline TYPE s_min_##S(TYPE a, TYPE b) { return a < b ? a : b; }                \
  static inline TYPE s_prelu_##S(TYPE x, TYPE s) { return (void)s, x; }
DEF_UINT_SCALARS(uint8_t, u8)
DEF_UINT_SCALARS(uint16_t, u16)
DEF_UINT_SCALARS(uint32_t, u32)
DEF_UINT_SCALARS(uint64_t, u64)

/* A row function for out = EXPR(a, b) with the four stride cases as separate loops. */
#define DEF_BIN_ROW(NAME, T, TO, EXPR)                                                             \
  static void NAME(const void *const *in_, const int64_t *s_, void *out_, int64_t n_, const void *arg_) { \
    const T *A_ = in_[0], *B_ = in_[1];                                                            \
    TO *Y_ = out_;                                                                                 \
    (void)arg_;                                                                                    \
    if (s_[0] && s_[1]) {                                                                          \
      for (int64_t i = 0; i < n_; i++) {                                                           \
        const T a = A_[i], b = B_[i];                                                              \
        Y_[i] = (TO)(EXPR);                                                                        \
      }                                                                                            \
    } else if (s_[1]) {                                                                            \
      const T a = A_[0];                                                                           \
      for (int64_t i = 0; i < n_; i++) {                                                           \
        const T b = B_[i];                                                                         \
        Y_[i] = (TO)(EXPR);                                                                        \
      }                                                                                            \
    } else if (s_[0]) {                                                                            \
      const T b = B_[0];                                                                           \
      for (int64_t i = 0; i < n_; i++) {                                                           \
        const T a = A_[i];                                                                         \
        Y_[i] = (TO)(EXPR);                                                                        \
      }                                                                                            \
    } else {                                                                                       \
      const T a = A_[0], b = B_[0];                                                                \
      const TO v_ = (TO)(EXPR);                                                                    \
      for (int64_t i = 0; i < n_; i++) Y_[i] = v_;                                                 \
    }                                                                                              \
  }

/* Add/Sub/Mul go through UT (the type itself for floats, an unsigned type of at least int
 * width for integers) so integer overflow wraps instead of being undefined. */
#define DEF_BIN_ROWS(T, S, UT)                                     \
  DEF_BIN_ROW(row_add_##S, T, T, (T)((UT)a + (UT)b))              \
  DEF_BIN_ROW(row_sub_##S, T, T, (T)((UT)a - (UT)b))              \
  DEF_BIN_ROW(row_mul_##S, T, T, (T)((UT)a * (UT)b))              \
  DEF_BIN_ROW(row_div_##S, T, T, s_div_##S(a, b))                 \
  DEF_BIN_ROW(row_mod_##S, T, T, s_mod_##S(a, b))                 \
  DEF_BIN_ROW(row_fmod_##S, T, T, s_fmod_##S(a, b))               \
  DEF_BIN_ROW(row_max_##S, T, T, s_max_##S(a, b))                 \
  DEF_BIN_ROW(row_min_##S, T, T, s_min_##S(a, b))                 \
  DEF_BIN_ROW(row_prelu_##S, T, T, s_prelu_##S(a, b))             \
  DEF_BIN_ROW(row_eq_##S, T, uint8_t, a == b)                     \
  DEF_BIN_ROW(row_lt_##S, T, uint8_t, a < b)                      \
  DEF_BIN_ROW(row_le_##S, T, uint8_t, a <= b)                     \
  DEF_BIN_ROW(row_gt_##S, T, uint8_t, a > b)                      \
  DEF_BIN_ROW(row_ge_##S, T, uint8_t, a >= b)
DEF_BIN_ROWS(float, f32, float)
DEF_BIN_ROWS(double, f64, double)
DEF_BIN_ROWS(int8_t, i8, uint32_t)
DEF_BIN_ROWS(int16_t, i16, uint32_t)
DEF_BIN_ROWS(int32_t, i32, uint32_t)
DEF_BIN_ROWS(int64_t, i64, uint64_t)
DEF_BIN_ROWS(uint8_t, u8, uint32_t)
DEF_BIN_ROWS(uint16_t, u16, uint32_t)
DEF_BIN_ROWS(uint32_t, u32, uint32_t)
DEF_BIN_ROWS(uint64_t, u64, uint64_t)

/* BitwiseAnd/Or/Xor on every integer type. BitShift (opset 28): a right shift of a signed
 * type is arithmetic; a left shift wraps (bits past the sign bit are lost); a shift amount
 * that is negative or at least the width gives what sign extension alone gives: -1 for a
 * right shift of a negative value, 0 otherwise. ~(~a >> b) is the arithmetic shift of a
 * negative a without relying on the implementation-defined >> of negative values. */
#define DEF_BIT_ROWS(T, S)                                                            \
  DEF_BIN_ROW(row_band_##S, T, T, a & b)                                              \
  DEF_BIN_ROW(row_bor_##S, T, T, a | b)                                               \
  DEF_BIN_ROW(row_bxor_##S, T, T, a ^ b)
#define BITS_OF(T) (8 * (int)sizeof(T))
#define DEF_SHIFT_ROWS_S(T, S)                                                                       \
  DEF_BIN_ROW(row_shl_##S, T, T, (b < 0 || b >= BITS_OF(T)) ? (T)0 : (T)((uint64_t)a << b))         \
  DEF_BIN_ROW(row_shr_##S, T, T,                                                                     \
              (b < 0 || b >= BITS_OF(T)) ? (T)(a < 0 ? -1 : 0) : (T)(a < 0 ? ~(~a >> b) : a >> b))
#define DEF_SHIFT_ROWS_U(T, S)                                                                       \
  DEF_BIN_ROW(row_shl_##S, T, T, (uint64_t)b >= (uint64_t)BITS_OF(T) ? (T)0 : (T)((uint64_t)a << b)) \
  DEF_BIN_ROW(row_shr_##S, T, T, (uint64_t)b >= (uint64_t)BITS_OF(T) ? (T)0 : (T)((uint64_t)a >> b))
DEF_BIT_ROWS(int8_t, i8)
DEF_BIT_ROWS(int16_t, i16)
DEF_BIT_ROWS(int32_t, i32)
DEF_BIT_ROWS(int64_t, i64)
DEF_BIT_ROWS(uint8_t, u8)
DEF_BIT_ROWS(uint16_t, u16)
DEF_BIT_ROWS(uint32_t, u32)
DEF_BIT_ROWS(uint64_t, u64)
DEF_SHIFT_ROWS_S(int8_t, i8)
DEF_SHIFT_ROWS_S(int16_t, i16)
DEF_SHIFT_ROWS_S(int32_t, i32)
DEF_SHIFT_ROWS_S(int64_t, i64)
DEF_SHIFT_ROWS_U(uint8_t, u8)
DEF_SHIFT_ROWS_U(uint16_t, u16)
DEF_SHIFT_ROWS_U(uint32_t, u32)
DEF_SHIFT_ROWS_U(uint64_t, u64)

DEF_BIN_ROW(row_and_b, uint8_t, uint8_t, (a != 0) & (b != 0))
DEF_BIN_ROW(row_or_b, uint8_t, uint8_t, (a != 0) | (b != 0))
DEF_BIN_ROW(row_xor_b, uint8_t, uint8_t, (a != 0) ^ (b != 0))

typedef enum bin_op {
  BOP_ADD, BOP_SUB, BOP_MUL, BOP_DIV, BOP_MOD, BOP_FMOD, BOP_MAX, BOP_MIN, BOP_PRELU,
  BOP_EQ, BOP_LT, BOP_LE, BOP_GT, BOP_GE, BOP_AND, BOP_OR, BOP_XOR,
  BOP_BAND, BOP_BOR, BOP_BXOR, BOP_SHL, BOP_SHR, BOP_COUNT_
} bin_op;

#define NUM_ROWS(OP)                                                                        \
  [DRT_DTYPE_FLOAT32] = row_##OP##_f32, [DRT_DTYPE_FLOAT64] = row_##OP##_f64,              \
  [DRT_DTYPE_INT8] = row_##OP##_i8, [DRT_DTYPE_INT16] = row_##OP##_i16,                    \
  [DRT_DTYPE_INT32] = row_##OP##_i32, [DRT_DTYPE_INT64] = row_##OP##_i64,                  \
  [DRT_DTYPE_UINT8] = row_##OP##_u8, [DRT_DTYPE_UINT16] = row_##OP##_u16,                  \
  [DRT_DTYPE_UINT32] = row_##OP##_u32, [DRT_DTYPE_UINT64] = row_##OP##_u64
#define INT_ROWS(OP)                                                                        \
  [DRT_DTYPE_INT8] = row_##OP##_i8, [DRT_DTYPE_INT16] = row_##OP##_i16,                    \
  [DRT_DTYPE_INT32] = row_##OP##_i32, [DRT_DTYPE_INT64] = row_##OP##_i64,                  \
  [DRT_DTYPE_UINT8] = row_##OP##_u8, [DRT_DTYPE_UINT16] = row_##OP##_u16,                  \
  [DRT_DTYPE_UINT32] = row_##OP##_u32, [DRT_DTYPE_UINT64] = row_##OP##_u64
static const row_fn k_bin_rows[BOP_COUNT_][DTYPE_SLOTS] = {
    [BOP_ADD] = {NUM_ROWS(add)},
    [BOP_SUB] = {NUM_ROWS(sub)},
    [BOP_MUL] = {NUM_ROWS(mul)},
    [BOP_DIV] = {NUM_ROWS(div)},
    [BOP_MOD] = {NUM_ROWS(mod)},
    [BOP_FMOD] = {NUM_ROWS(fmod)},
    [BOP_MAX] = {NUM_ROWS(max)},
    [BOP_MIN] = {NUM_ROWS(min)},
    [BOP_PRELU] = {NUM_ROWS(prelu)},
    [BOP_EQ] = {NUM_ROWS(eq), [DRT_DTYPE_BOOL] = row_eq_u8},
    [BOP_LT] = {NUM_ROWS(lt), [DRT_DTYPE_BOOL] = row_lt_u8},
    [BOP_LE] = {NUM_ROWS(le), [DRT_DTYPE_BOOL] = row_le_u8},
    [BOP_GT] = {NUM_ROWS(gt), [DRT_DTYPE_BOOL] = row_gt_u8},
    [BOP_GE] = {NUM_ROWS(ge), [DRT_DTYPE_BOOL] = row_ge_u8},
    [BOP_AND] = {[DRT_DTYPE_BOOL] = row_and_b},
    [BOP_OR] = {[DRT_DTYPE_BOOL] = row_or_b},
    [BOP_XOR] = {[DRT_DTYPE_BOOL] = row_xor_b},
    [BOP_BAND] = {INT_ROWS(band)},
    [BOP_BOR] = {INT_ROWS(bor)},
    [BOP_BXOR] = {INT_ROWS(bxor)},
    [BOP_SHL] = {INT_ROWS(shl)},
    [BOP_SHR] = {INT_ROWS(shr)},
};
#undef INT_ROWS
#undef NUM_ROWS

static bin_op bin_op_of(const drt_node *n) {
  switch (n->op) {
    case DRT_OP_ADD:
    case DRT_OP_SUM:
    case DRT_OP_MEAN: return BOP_ADD;
    case DRT_OP_SUB: return BOP_SUB;
    case DRT_OP_MUL: return BOP_MUL;
    case DRT_OP_DIV: return BOP_DIV;
    case DRT_OP_MOD: return drt_node_attr_int(n, "fmod", 0) ? BOP_FMOD : BOP_MOD;
    case DRT_OP_MAX: return BOP_MAX;
    case DRT_OP_MIN: return BOP_MIN;
    case DRT_OP_PRELU: return BOP_PRELU;
    case DRT_OP_EQUAL: return BOP_EQ;
    case DRT_OP_LESS: return BOP_LT;
    case DRT_OP_LESS_OR_EQUAL: return BOP_LE;
    case DRT_OP_GREATER: return BOP_GT;
    case DRT_OP_GREATER_OR_EQUAL: return BOP_GE;
    case DRT_OP_AND: return BOP_AND;
    case DRT_OP_OR: return BOP_OR;
    case DRT_OP_XOR: return BOP_XOR;
    case DRT_OP_BITWISE_AND: return BOP_BAND;
    case DRT_OP_BITWISE_OR: return BOP_BOR;
    case DRT_OP_BITWISE_XOR: return BOP_BXOR;
    case DRT_OP_BIT_SHIFT: return strcmp(drt_node_attr_string(n, "direction", ""), "LEFT") == 0 ? BOP_SHL : BOP_SHR;
    default: return BOP_COUNT_;
  }
}

static row_fn find_bin_row(const drt_node *n, drt_dtype dt) {
  bin_op op = bin_op_of(n);
  if (op == BOP_COUNT_ || (unsigned)dt >= DTYPE_SLOTS) return NULL;
  return k_bin_rows[op][dt];
}

static drt_status unsupported_dtype(drt_dtype dt) {
  return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input dtype %s is not supported", drt_dtype_name(dt));
}

/* BitwiseNot: the complement of every byte is the complement of every integer, whatever its width. */
static drt_status k_bitwise_not(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  (void)n;
  const uint8_t *x = in[0].data;
  uint8_t *y = out[0].data;
  size_t nb = drt_tensor_nbytes(&in[0]);
  for (size_t i = 0; i < nb; i++) y[i] = (uint8_t)~x[i];
  return DRT_OK;
}

static drt_status k_binary(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  row_fn row = find_bin_row(n, in[0].dtype);
  if (!row) return unsupported_dtype(in[0].dtype);
  drt_tensor b = in[1];
  if (n->op == DRT_OP_PRELU && n->opset < 7 && b.shape.rank == 1 && in[0].shape.rank >= 2 &&
      b.shape.dims[0] == in[0].shape.dims[1]) { /* legacy per-channel slope: view as [C, 1, ...] */
    b.shape.rank = in[0].shape.rank - 1;
    for (int i = 1; i < b.shape.rank; i++) b.shape.dims[i] = 1;
  }
  const drt_tensor *ins[2] = {&in[0], &b};
  run_broadcast(ctx, ins, 2, &out[0], row, NULL);
  return DRT_OK;
}

/* Max, Min, Sum, Mean over any number of inputs: out = op(in0, in1), then out = op(out, ink). */
static drt_status k_variadic(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  drt_dtype dt = in[0].dtype;
  row_fn row = find_bin_row(n, dt);
  if (!row) return unsupported_dtype(dt);
  int count = n->num_inputs;
  for (int i = 0; i < count; i++)
    if (!in[i].data) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input %d is missing", i);
  if (count == 1) {
    copy_tensor(&in[0], &out[0]);
    return DRT_OK;
  }
  for (int i = 1; i < count; i++) {
    const drt_tensor *ins[2] = {i == 1 ? &in[0] : &out[0], &in[i]};
    run_broadcast(ctx, ins, 2, &out[0], row, NULL);
  }
  if (n->op == DRT_OP_MEAN) {
    int64_t total = drt_shape_numel(&out[0].shape);
    if (dt == DRT_DTYPE_FLOAT32) {
      float *y = out[0].data;
      for (int64_t i = 0; i < total; i++) y[i] /= (float)count;
    } else if (dt == DRT_DTYPE_FLOAT64) {
      double *y = out[0].data;
      for (int64_t i = 0; i < total; i++) y[i] /= (double)count;
    } else {
      return unsupported_dtype(dt);
    }
  }
  return DRT_OK;
}

/* Pow: the exponent is converted to the base's float type (float bases) or to int64/float64
 * (integer bases) before the loop. Integer results wrap like numpy; an integer base to a
 * negative integer power gives 0 unless the base is +-1. */
static inline int64_t ipow(int64_t a, int64_t b) {
  if (b < 0) return a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;
  uint64_t r = 1, x = (uint64_t)a;
  while (b) {
    if (b & 1) r *= x;
    x *= x;
    b >>= 1;
  }
  return (int64_t)r;
}

static inline int64_t d2i64(double v) {
  if (v != v) return 0;
  if (v >= 9.2233720368547758e18) return INT64_MAX;
  if (v <= -9.2233720368547758e18) return INT64_MIN;
  return (int64_t)v;
}

#define DEF_FLOAT_POW(TYPE, S, POW)                                                                  \
  DEF_BIN_ROW(row_pow_gen_##S, TYPE, TYPE, POW(a, b))                                                \
  static void row_pow_##S(const void *const *in, const int64_t *s, void *out, int64_t n, const void *arg) { \
    if (s[0] && !s[1]) {                                                                             \
      const TYPE *A_ = in[0], e = *(const TYPE *)in[1];                                              \
      TYPE *Y_ = out;                                                                                \
      if (e == 2) {                                                                                  \
        for (int64_t i = 0; i < n; i++) Y_[i] = A_[i] * A_[i];                                       \
        return;                                                                                      \
      }                                                                                              \
      if (e == 1) {                                                                                  \
        for (int64_t i = 0; i < n; i++) Y_[i] = A_[i];                                               \
        return;                                                                                      \
      }                                                                                              \
      if (e == 3) {                                                                                  \
        for (int64_t i = 0; i < n; i++) Y_[i] = A_[i] * A_[i] * A_[i];                               \
        return;                                                                                      \
      }                                                                                              \
    }                                                                                                \
    row_pow_gen_##S(in, s, out, n, arg);                                                             \
  }
DEF_FLOAT_POW(float, f32, powf)
DEF_FLOAT_POW(double, f64, pow)

#define IPOW_II(a, b) ipow((int64_t)(a), (b))
#define IPOW_IF(a, b) d2i64(pow((double)(a), (b)))
#define DEF_INT_POW(TYPE, S)                                                                       \
  static void row_pow_##S##_i(const void *const *in, const int64_t *s, void *out, int64_t n, const void *arg) { \
    const TYPE *A_ = in[0];                                                                        \
    const int64_t *B_ = in[1];                                                                     \
    TYPE *Y_ = out;                                                                                \
    (void)arg;                                                                                     \
    for (int64_t i = 0; i < n; i++) Y_[i] = (TYPE)ipow(A_[i * s[0]], B_[i * s[1]]);                \
  }                                                                                                \
  static void row_pow_##S##_f(const void *const *in, const int64_t *s, void *out, int64_t n, const void *arg) { \
    const TYPE *A_ = in[0];                                                                        \
    const double *B_ = in[1];                                                                      \
    TYPE *Y_ = out;                                                                                \
    (void)arg;                                                                                     \
    for (int64_t i = 0; i < n; i++) Y_[i] = (TYPE)d2i64(pow((double)A_[i * s[0]], B_[i * s[1]]));  \
  }
DEF_INT_POW(int32_t, i32)
DEF_INT_POW(int64_t, i64)

static drt_status k_pow(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)n;
  drt_dtype bt = in[0].dtype, et = in[1].dtype, want;
  row_fn row;
  switch (bt) {
    case DRT_DTYPE_FLOAT32: row = row_pow_f32, want = bt; break;
    case DRT_DTYPE_FLOAT64: row = row_pow_f64, want = bt; break;
    case DRT_DTYPE_INT32:
    case DRT_DTYPE_INT64: {
      bool int_exp = drt_dtype_is_int(et) || et == DRT_DTYPE_BOOL;
      want = int_exp ? DRT_DTYPE_INT64 : DRT_DTYPE_FLOAT64;
      if (bt == DRT_DTYPE_INT32)
        row = int_exp ? row_pow_i32_i : row_pow_i32_f;
      else
        row = int_exp ? row_pow_i64_i : row_pow_i64_f;
      break;
    }
    default: return unsupported_dtype(bt);
  }
  drt_tensor e = in[1];
  void *tmp = NULL;
  if (et != want) {
    int64_t cnt = drt_shape_numel(&e.shape);
    tmp = malloc((size_t)(cnt > 0 ? cnt : 1) * drt_dtype_size(want));
    if (!tmp) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "converting the exponent to %s", drt_dtype_name(want));
    drt_convert(want, tmp, et, e.data, (size_t)cnt);
    e.dtype = want;
    e.data = tmp;
  }
  const drt_tensor *ins[2] = {&in[0], &e};
  run_broadcast(ctx, ins, 2, &out[0], row, NULL);
  free(tmp);
  return DRT_OK;
}

/* Where(cond, X, Y): byte-size-generic select. */
#define DEF_WHERE_ROW(TYPE, BITS)                                                                   \
  static void row_where_##BITS(const void *const *in, const int64_t *s, void *out, int64_t n, const void *arg) { \
    const uint8_t *C_ = in[0];                                                                      \
    const TYPE *X_ = in[1], *Y_ = in[2];                                                            \
    TYPE *O_ = out;                                                                                 \
    (void)arg;                                                                                      \
    if (s[0] && s[1] && s[2]) {                                                                     \
      for (int64_t i = 0; i < n; i++) O_[i] = C_[i] ? X_[i] : Y_[i];                                \
    } else if (!s[0]) {                                                                             \
      const TYPE *src = C_[0] ? X_ : Y_;                                                            \
      const int64_t ss = C_[0] ? s[1] : s[2];                                                       \
      for (int64_t i = 0; i < n; i++) O_[i] = src[i * ss];                                          \
    } else {                                                                                        \
      for (int64_t i = 0; i < n; i++) O_[i] = C_[i] ? X_[i * s[1]] : Y_[i * s[2]];                  \
    }                                                                                               \
  }
DEF_WHERE_ROW(uint8_t, 8)
DEF_WHERE_ROW(uint16_t, 16)
DEF_WHERE_ROW(uint32_t, 32)
DEF_WHERE_ROW(uint64_t, 64)

static drt_status k_where(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)n;
  if (in[0].dtype != DRT_DTYPE_BOOL) return unsupported_dtype(in[0].dtype);
  row_fn row;
  switch (drt_dtype_size(in[1].dtype)) {
    case 1: row = row_where_8; break;
    case 2: row = row_where_16; break;
    case 4: row = row_where_32; break;
    case 8: row = row_where_64; break;
    default: return unsupported_dtype(in[1].dtype);
  }
  const drt_tensor *ins[3] = {&in[0], &in[1], &in[2]};
  run_broadcast(ctx, ins, 3, &out[0], row, NULL);
  return DRT_OK;
}

/* ==== 5. Clip, Cast, Identity, Dropout ================================================= */

typedef struct clip_params {
  bool has_lo, has_hi;
  unsigned char lo[8], hi[8]; /* bounds in the data dtype */
} clip_params;

#define DEF_CLIP(TYPE, S)                                                                   \
  static void clip_##S(const void *xv, void *yv, int64_t n, const void *pv) {        \
    const clip_params *c = pv;                            \
    const TYPE *X_ = xv;                                                                    \
    TYPE *Y_ = yv;                                                                          \
    TYPE lo, hi;                                                                            \
    memcpy(&lo, c->lo, sizeof lo);                                                          \
    memcpy(&hi, c->hi, sizeof hi);                                                          \
    if (c->has_lo && c->has_hi) {                                                           \
      for (int64_t i = 0; i < n; i++) {                                                     \
        TYPE v = X_[i] < lo ? lo : X_[i];                                                   \
        Y_[i] = v > hi ? hi : v;                                                            \
      }                                                                                     \
    } else if (c->has_lo) {                                                                 \
      for (int64_t i = 0; i < n; i++) Y_[i] = X_[i] < lo ? lo : X_[i];                      \
    } else if (c->has_hi) {                                                                 \
      for (int64_t i = 0; i < n; i++) Y_[i] = X_[i] > hi ? hi : X_[i];                      \
    } else {                                                                                \
      for (int64_t i = 0; i < n; i++) Y_[i] = X_[i];                                        \
    }                                                                                       \
  }
DEF_CLIP(float, f32)
DEF_CLIP(double, f64)
DEF_CLIP(int8_t, i8)
DEF_CLIP(int16_t, i16)
DEF_CLIP(int32_t, i32)
DEF_CLIP(int64_t, i64)
DEF_CLIP(uint8_t, u8)
DEF_CLIP(uint16_t, u16)
DEF_CLIP(uint32_t, u32)
DEF_CLIP(uint64_t, u64)

/* SwiGLU: y = a / (1 + exp(-alpha a)) * b, the same expression as the fused program's
 * SWISH then MUL (passes/elementwise_fuse.c), so both give the same values. */
static drt_status k_swiglu(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  int64_t cnt = drt_shape_numel(&in[0].shape);
  if (in[0].dtype == DRT_DTYPE_FLOAT64) {
    const double *a = in[0].data, *b = in[1].data, al = drt_node_attr_float(n, "alpha", 1.0f);
    double *y = out[0].data;
    for (int64_t i = 0; i < cnt; i++) y[i] = a[i] / (1 + exp(-al * a[i])) * b[i];
  } else {
    const float *a = in[0].data, *b = in[1].data, al = drt_node_attr_float(n, "alpha", 1.0f);
    float *y = out[0].data;
    for (int64_t i = 0; i < cnt; i++) y[i] = a[i] / (1.0f + fast_expf(-al * a[i])) * b[i];
  }
  return DRT_OK;
}

/* BitCast: the same bytes (widths are equal; infer checked). */
static drt_status k_bit_cast(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  (void)n;
  memcpy(out[0].data, in[0].data, drt_tensor_nbytes(&in[0]));
  if (drt_dtype_bits(out[0].dtype) < 8) { /* sub-byte: keep the bits, in the target's byte form */
    uint8_t *y = out[0].data;
    for (int64_t i = 0, cnt = drt_shape_numel(&out[0].shape); i < cnt; i++)
      y[i] = drt_lowp_canonical(out[0].dtype, y[i]);
  }
  return DRT_OK;
}

static drt_status k_clip(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  drt_dtype dt = in[0].dtype;
  unary_loop_fn fn;
  switch (dt) {
    case DRT_DTYPE_FLOAT32: fn = clip_f32; break;
    case DRT_DTYPE_FLOAT64: fn = clip_f64; break;
    case DRT_DTYPE_INT8: fn = clip_i8; break;
    case DRT_DTYPE_INT16: fn = clip_i16; break;
    case DRT_DTYPE_INT32: fn = clip_i32; break;
    case DRT_DTYPE_INT64: fn = clip_i64; break;
    case DRT_DTYPE_UINT8: fn = clip_u8; break;
    case DRT_DTYPE_UINT16: fn = clip_u16; break;
    case DRT_DTYPE_UINT32: fn = clip_u32; break;
    case DRT_DTYPE_UINT64: fn = clip_u64; break;
    default: return unsupported_dtype(dt);
  }
  clip_params c;
  memset(&c, 0, sizeof c);
  if (n->opset < 11) { /* bounds are float attributes */
    const drt_attr *amin = drt_node_attr(n, "min"), *amax = drt_node_attr(n, "max");
    float lo = drt_node_attr_float(n, "min", -INFINITY), hi = drt_node_attr_float(n, "max", INFINITY);
    c.has_lo = amin != NULL;
    c.has_hi = amax != NULL;
    drt_convert(dt, c.lo, DRT_DTYPE_FLOAT32, &lo, 1);
    drt_convert(dt, c.hi, DRT_DTYPE_FLOAT32, &hi, 1);
  } else {
    size_t es = drt_dtype_size(dt);
    if (n->num_inputs > 1 && in[1].data) {
      if (in[1].dtype != dt) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 1 (min) dtype differs from input 0");
      memcpy(c.lo, in[1].data, es);
      c.has_lo = true;
    }
    if (n->num_inputs > 2 && in[2].data) {
      if (in[2].dtype != dt) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 2 (max) dtype differs from input 0");
      memcpy(c.hi, in[2].data, es);
      c.has_hi = true;
    }
  }
  run_unary(ctx, fn, &in[0], &out[0], &c);
  return DRT_OK;
}

typedef struct cast_job {
  drt_dtype src_dt, dst_dt;
  const char *src;
  char *dst;
  drt_cast_opts opts;
} cast_job;

static void cast_range(void *arg, int64_t b, int64_t e) {
  const cast_job *j = arg;
  size_t ss = drt_dtype_size(j->src_dt), ds = drt_dtype_size(j->dst_dt);
  const void *src = j->src + (size_t)b * ss;
  void *dst = j->dst + (size_t)b * ds;
  int64_t n = e - b;
  /* the casts mixed-precision models run on activations, without drt_convert's per-element
   * dtype dispatch (same results) */
  if (j->src_dt == DRT_DTYPE_FLOAT16 && j->dst_dt == DRT_DTYPE_FLOAT32) {
    const uint16_t *x = src;
    float *y = dst;
    for (int64_t i = 0; i < n; i++) y[i] = drt_f16_to_f32(x[i]);
  } else if (j->src_dt == DRT_DTYPE_FLOAT32 && j->dst_dt == DRT_DTYPE_FLOAT16) {
    const float *x = src;
    uint16_t *y = dst;
    for (int64_t i = 0; i < n; i++) y[i] = drt_f32_to_f16(x[i]);
  } else if (j->src_dt == DRT_DTYPE_BFLOAT16 && j->dst_dt == DRT_DTYPE_FLOAT32) {
    const uint16_t *x = src;
    float *y = dst;
    for (int64_t i = 0; i < n; i++) y[i] = drt_bf16_to_f32(x[i]);
  } else if (j->src_dt == DRT_DTYPE_FLOAT32 && j->dst_dt == DRT_DTYPE_BFLOAT16) {
    const float *x = src;
    uint16_t *y = dst;
    for (int64_t i = 0; i < n; i++) y[i] = drt_f32_to_bf16(x[i]);
  } else {
    drt_convert_ex(j->dst_dt, dst, j->src_dt, src, (size_t)n, &j->opts);
  }
}

/* Cast and CastLike: any supported dtype to any other (drt_convert semantics; `saturate`
 * and `round_mode` concern the float8 / float8e8m0 targets, see ir/dtype_lowp.c). */
static drt_status k_cast(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  if (!drt_dtype_is_supported(in[0].dtype)) return unsupported_dtype(in[0].dtype);
  if (!drt_dtype_is_supported(out[0].dtype))
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "output dtype %s is not supported", drt_dtype_name(out[0].dtype));
  if (in[0].dtype == out[0].dtype) {
    copy_tensor(&in[0], &out[0]);
    return DRT_OK;
  }
  const char *rm = drt_node_attr_string(n, "round_mode", "up");
  cast_job j = {in[0].dtype, out[0].dtype, in[0].data, out[0].data,
                {drt_node_attr_int(n, "saturate", 1) != 0,
                 !strcmp(rm, "down") ? DRT_ROUND_DOWN : !strcmp(rm, "nearest") ? DRT_ROUND_NEAREST : DRT_ROUND_UP}};
  drt_parallel_for(ctx, drt_shape_numel(&out[0].shape), GRAIN, cast_range, &j);
  return DRT_OK;
}

static drt_status k_optional_has_element(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  *(uint8_t *)out[0].data = n->num_inputs > 0 && n->inputs[0] && in[0].dtype != DRT_DTYPE_UNDEFINED;
  return DRT_OK;
}

static drt_status k_identity(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx, (void)n;
  if (out[0].data != in[0].data) copy_tensor(&in[0], &out[0]); /* the memory plan may alias them */
  return DRT_OK;
}

/* Dropout in inference mode: output = data, mask = all ones (bool from opset 10, the data
 * dtype before). */
static drt_status k_dropout(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  if (n->opset >= 12 && n->num_inputs > 2 && in[2].data && drt_load_i64(in[2].dtype, in[2].data, 0) != 0) {
    double ratio = n->num_inputs > 1 && in[1].data ? drt_load_f64(in[1].dtype, in[1].data, 0) : 0.5;
    if (ratio != 0)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "training mode (training_mode=true, ratio=%g) is not supported", ratio);
  }
  copy_tensor(&in[0], &out[0]);
  if (n->num_outputs > 1) {
    drt_tensor *m = &out[1];
    size_t es = drt_dtype_size(m->dtype);
    int64_t cnt = drt_shape_numel(&m->shape);
    unsigned char one[8];
    const float f1 = 1.0f;
    drt_convert(m->dtype, one, DRT_DTYPE_FLOAT32, &f1, 1);
    for (int64_t i = 0; i < cnt; i++) memcpy((char *)m->data + (size_t)i * es, one, es);
  }
  return DRT_OK;
}

#define F32_F64 (DRT_DT_BIT(DRT_DTYPE_FLOAT32) | DRT_DT_BIT(DRT_DTYPE_FLOAT64))

const drt_cpu_kernel_entry drt_cpu_kernels_elementwise[] = {
    /* unary */
    {DRT_OP_ABS, k_unary, F32_F64},
    {DRT_OP_NEG, k_unary, F32_F64},
    {DRT_OP_SQRT, k_unary, F32_F64},
    {DRT_OP_RECIPROCAL, k_unary, F32_F64},
    {DRT_OP_EXP, k_unary, F32_F64},
    {DRT_OP_LOG, k_unary, F32_F64},
    {DRT_OP_ERF, k_unary, F32_F64},
    {DRT_OP_TANH, k_unary, F32_F64},
    {DRT_OP_SIGMOID, k_unary, F32_F64},
    {DRT_OP_RELU, k_unary, F32_F64},
    {DRT_OP_LEAKY_RELU, k_unary, F32_F64},
    {DRT_OP_ELU, k_unary, F32_F64},
    {DRT_OP_SELU, k_unary, F32_F64},
    {DRT_OP_CELU, k_unary, F32_F64},
    {DRT_OP_SIN, k_unary, F32_F64},
    {DRT_OP_COS, k_unary, F32_F64},
    {DRT_OP_TAN, k_unary, F32_F64},
    {DRT_OP_ASIN, k_unary, F32_F64},
    {DRT_OP_ACOS, k_unary, F32_F64},
    {DRT_OP_ATAN, k_unary, F32_F64},
    {DRT_OP_SINH, k_unary, F32_F64},
    {DRT_OP_COSH, k_unary, F32_F64},
    {DRT_OP_ASINH, k_unary, F32_F64},
    {DRT_OP_ACOSH, k_unary, F32_F64},
    {DRT_OP_ATANH, k_unary, F32_F64},
    {DRT_OP_FLOOR, k_unary, F32_F64},
    {DRT_OP_CEIL, k_unary, F32_F64},
    {DRT_OP_ROUND, k_unary, F32_F64},
    {DRT_OP_SIGN, k_unary, F32_F64},
    {DRT_OP_NOT, k_not, 0},
    {DRT_OP_ISNAN, k_classify, F32_F64},
    {DRT_OP_ISINF, k_classify, F32_F64},
    {DRT_OP_GELU, k_unary, F32_F64},
    {DRT_OP_HARD_SIGMOID, k_unary, F32_F64},
    {DRT_OP_HARD_SWISH, k_unary, F32_F64},
    {DRT_OP_MISH, k_unary, F32_F64},
    {DRT_OP_SOFTPLUS, k_unary, F32_F64},
    {DRT_OP_SOFTSIGN, k_unary, F32_F64},
    {DRT_OP_SWISH, k_unary, F32_F64},
    {DRT_OP_THRESHOLDED_RELU, k_unary, F32_F64},
    {DRT_OP_SHRINK, k_unary, F32_F64},
    {DRT_OP_CLIP, k_clip, F32_F64},
    {DRT_OP_CAST, k_cast, DRT_DT_FLOATS},
    {DRT_OP_CAST_LIKE, k_cast, DRT_DT_FLOATS},
    {DRT_OP_IDENTITY, k_identity, DRT_DT_FLOATS},
    {DRT_OP_OPTIONAL_GET_ELEMENT, k_identity, DRT_DT_FLOATS},
    {DRT_OP_OPTIONAL_HAS_ELEMENT, k_optional_has_element, 0},
    {DRT_OP_DROPOUT, k_dropout, DRT_DT_FLOATS},
    /* binary / variadic with broadcasting */
    {DRT_OP_ADD, k_binary, F32_F64},
    {DRT_OP_SUB, k_binary, F32_F64},
    {DRT_OP_MUL, k_binary, F32_F64},
    {DRT_OP_DIV, k_binary, F32_F64},
    {DRT_OP_POW, k_pow, F32_F64},
    {DRT_OP_MOD, k_binary, F32_F64},
    {DRT_OP_PRELU, k_binary, F32_F64},
    {DRT_OP_EQUAL, k_binary, F32_F64},
    {DRT_OP_LESS, k_binary, F32_F64},
    {DRT_OP_LESS_OR_EQUAL, k_binary, F32_F64},
    {DRT_OP_GREATER, k_binary, F32_F64},
    {DRT_OP_GREATER_OR_EQUAL, k_binary, F32_F64},
    {DRT_OP_AND, k_binary, 0},
    {DRT_OP_OR, k_binary, 0},
    {DRT_OP_XOR, k_binary, 0},
    {DRT_OP_BITWISE_AND, k_binary, 0},
    {DRT_OP_BITWISE_OR, k_binary, 0},
    {DRT_OP_BITWISE_XOR, k_binary, 0},
    {DRT_OP_BIT_SHIFT, k_binary, 0},
    {DRT_OP_BITWISE_NOT, k_bitwise_not, 0},
    {DRT_OP_SWIGLU, k_swiglu, F32_F64},
    {DRT_OP_BIT_CAST, k_bit_cast, DRT_DT_FLOATS},
    {DRT_OP_MAX, k_variadic, F32_F64},
    {DRT_OP_MIN, k_variadic, F32_F64},
    {DRT_OP_SUM, k_variadic, F32_F64},
    {DRT_OP_MEAN, k_variadic, F32_F64},
    {DRT_OP_WHERE, k_where, DRT_DT_FLOATS},
    {DRT_OP_COUNT_, NULL, 0},
};
