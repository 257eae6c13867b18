/* Evaluator of elementwise expression programs (see ew_exec.h).
 *
 *   output (merged dims)   [ row 0 ............ ][ row 1 ............ ] ...
 *   tiles (row mode)       [ t0 ][ t1 ][ t2 ]   [ t3 ][ t4 ][ t5 ]
 *   per tile:   LOAD x     -> register = pointer into x (contiguous) or a filled/gathered copy
 *               MUL/ADD/.. -> one loop over the tile per instruction, into the register's scratch
 *               STORE      -> copy the register into the output tile (stores come last)
 *
 * Row mode (innermost merged dim >= 32, or a single merged dim): tiles stay inside one row, so
 * every input is either contiguous along the tile (read in place) or constant along it (one
 * value, filled). Gather mode (short rows, e.g. [N, C, 2, 2] with a per-channel operand):
 * tiles span rows and broadcast inputs are gathered element by element; inputs laid out
 * like the output are still read in place. */
#if defined(__GNUC__) && !defined(__clang__)
/* if-conversion of float selects (x < 0 ? a : b) so those loops vectorize; nothing here reads
 * the floating-point exception flags */
#pragma GCC optimize("no-trapping-math")
#endif

#include "runtime/cpu/ew_exec.h"

#include <math.h>
#include <string.h>

#include "runtime/cpu/fastmath.h"
#include "runtime/cpu/linalg.h" /* drt_cpu_has_avx2_fma */

#if defined(__clang__)
/* no a*b+c -> fma contraction in the AVX2 clone: same results as the unfused kernels */
#pragma STDC FP_CONTRACT OFF
#endif

#if defined(__x86_64__) || defined(__i386__)
#define EW_X86 1
#define EW_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define EW_X86 0
#define EW_TARGET_AVX2
#endif
#define EW_INLINE static inline __attribute__((always_inline))

drt_status drt_ew_exec_prepare(drt_ew_exec *e, const drt_ew_program *prog, const drt_shape *out_shape,
                               const drt_tensor *in, float *const *out) {
  memset(e, 0, sizeof *e);
  e->prog = prog;
  e->total = drt_shape_numel(out_shape);
  if (e->total < 0) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "invalid output shape");
  int r = out_shape->rank;
  int64_t st[DRT_EW_MAX_INPUTS][DRT_MAX_RANK];
  char a[128], b[128];
  for (int i = 0; i < prog->num_inputs; i++) {
    if (in[i].dtype != DRT_DTYPE_FLOAT32)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "program input %d has dtype %s, expected float32", i,
                       drt_dtype_name(in[i].dtype));
    if (in[i].shape.rank > r)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "program input %d has shape %s, which does not broadcast into %s",
                       i, drt_shape_str(&in[i].shape, a, sizeof a), drt_shape_str(out_shape, b, sizeof b));
    for (int d = 0; d < in[i].shape.rank; d++) {
      int64_t id = in[i].shape.dims[d], od = out_shape->dims[r - in[i].shape.rank + d];
      if (id != od && id != 1)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "program input %d has shape %s, which does not broadcast into %s",
                         i, drt_shape_str(&in[i].shape, a, sizeof a), drt_shape_str(out_shape, b, sizeof b));
    }
    if (!in[i].data && e->total > 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "program input %d has no data", i);
    drt_broadcast_strides(&in[i].shape, out_shape, st[i]);
    e->in[i] = in[i].data;
    e->uniform[i] = drt_shape_numel(&in[i].shape) == 1;
  }
  for (int j = 0; j < prog->num_outputs; j++) e->out[j] = out[j];
  /* merge output dims: drop size-1 dims; join a dim to the previous one when every input is
     contiguous (or broadcast) across both */
  int nr = 0;
  for (int d = 0; d < r; d++) {
    int64_t size = out_shape->dims[d];
    if (size == 1) continue;
    bool join = nr > 0;
    for (int i = 0; join && i < prog->num_inputs; i++)
      if (e->strides[i][nr - 1] != st[i][d] * size) join = false;
    if (join) {
      e->dims[nr - 1] *= size;
      for (int i = 0; i < prog->num_inputs; i++) e->strides[i][nr - 1] = st[i][d];
    } else {
      e->dims[nr] = size;
      for (int i = 0; i < prog->num_inputs; i++) e->strides[i][nr] = st[i][d];
      nr++;
    }
  }
  if (nr == 0) {
    e->dims[0] = 1;
    nr = 1;
  }
  e->rank = nr;
  int64_t dense[DRT_MAX_RANK], s = 1;
  for (int d = nr - 1; d >= 0; d--) {
    dense[d] = s;
    s *= e->dims[d];
  }
  for (int i = 0; i < prog->num_inputs; i++) {
    bool dn = true;
    for (int d = 0; d < nr; d++)
      if (e->strides[i][d] != dense[d] && e->dims[d] != 1) dn = false;
    e->dense[i] = dn;
  }
  e->row_mode = nr == 1 || e->dims[nr - 1] >= 32;
  /* CONST and uniform LOADs whose register nothing else writes are filled once per range */
  int writes[DRT_EW_MAX_REGS] = {0};
  for (int k = 0; k < prog->num_insns; k++)
    if (prog->insns[k].op != DRT_EW_STORE) writes[prog->insns[k].d]++;
  e->compute_insns = 0;
  for (int k = 0; k < prog->num_insns; k++) {
    const drt_ew_insn *x = &prog->insns[k];
    if (x->op == DRT_EW_CONST || (x->op == DRT_EW_LOAD && e->uniform[x->a]))
      e->hoist[k] = writes[x->d] == 1;
    else if (x->op != DRT_EW_LOAD && x->op != DRT_EW_STORE)
      e->compute_insns++;
  }
  return DRT_OK;
}

/* ---- one instruction over n elements ------------------------------------------------- */

static inline float sat01(float v) {
  v = v < 0.0f ? 0.0f : v;
  return v > 1.0f ? 1.0f : v;
}
static inline float softplus(float x) { return x > 0.0f ? x + log1pf(expf(-x)) : log1pf(expf(x)); }

/* Copies n elements of input k starting at merged index idx (any strides) into dst. */
EW_INLINE void gather(const drt_ew_exec *e, int k, const int64_t *idx0, int64_t n, float *restrict dst) {
  int r = e->rank;
  int64_t idx[DRT_MAX_RANK], off = 0;
  const int64_t *st = e->strides[k];
  for (int d = 0; d < r; d++) {
    idx[d] = idx0[d];
    off += idx[d] * st[d];
  }
  const float *src = e->in[k];
  int64_t inner = e->dims[r - 1], is = st[r - 1];
  int64_t t = 0;
  while (t < n) {
    int64_t run = inner - idx[r - 1];
    if (run > n - t) run = n - t;
    if (is == 1) {
      memcpy(dst + t, src + off, (size_t)run * sizeof(float));
    } else {
      float v = src[off];
      for (int64_t i = 0; i < run; i++) dst[t + i] = is == 0 ? v : src[off + i * is];
    }
    t += run;
    off += run * is;
    idx[r - 1] += run;
    for (int d = r - 1; d > 0 && idx[d] == e->dims[d]; d--) {
      off -= idx[d] * st[d];
      idx[d] = 0;
      idx[d - 1]++;
      off += st[d - 1];
    }
  }
}

#define UNARY(EXPR)                                 \
  do {                                              \
    const float *restrict A_ = rp[x->a];            \
    for (int64_t i = 0; i < n; i++) {               \
      const float v = A_[i];                        \
      D_[i] = (EXPR);                               \
    }                                               \
  } while (0)

#define BINARY(EXPR)                                \
  do {                                              \
    const float *restrict A_ = rp[x->a];            \
    const float *restrict B_ = rp[x->b];            \
    for (int64_t i = 0; i < n; i++) {               \
      const float a = A_[i], b = B_[i];             \
      D_[i] = (EXPR);                               \
    }                                               \
  } while (0)

EW_INLINE void range_body(const drt_ew_exec *e, int64_t begin, int64_t end) {
  const drt_ew_program *p = e->prog;
  _Alignas(64) float sc[DRT_EW_MAX_REGS][DRT_EW_TILE];
  const float *rp[DRT_EW_MAX_REGS];
  for (int k = 0; k < p->num_insns; k++) {
    if (!e->hoist[k]) continue;
    const drt_ew_insn *x = &p->insns[k];
    float v = x->op == DRT_EW_CONST ? p->consts[x->a] : e->in[x->a][0];
    for (int i = 0; i < DRT_EW_TILE; i++) sc[x->d][i] = v;
    rp[x->d] = sc[x->d];
  }
  int r = e->rank;
  int64_t idx[DRT_MAX_RANK];
  int64_t rem = begin;
  for (int d = r - 1; d >= 0; d--) {
    idx[d] = rem % e->dims[d];
    rem /= e->dims[d];
  }
  int64_t pos = begin;
  while (pos < end) {
    int64_t n = end - pos;
    if (n > DRT_EW_TILE) n = DRT_EW_TILE;
    if (e->row_mode && n > e->dims[r - 1] - idx[r - 1]) n = e->dims[r - 1] - idx[r - 1];
    for (int k = 0; k < p->num_insns; k++) {
      if (e->hoist[k]) continue;
      const drt_ew_insn *x = &p->insns[k];
      float *restrict D_ = sc[x->d];
      switch ((drt_ew_op)x->op) {
        case DRT_EW_LOAD: {
          int a = x->a;
          const float *src = e->in[a];
          if (e->uniform[a]) {
            for (int64_t i = 0; i < n; i++) D_[i] = src[0];
            rp[x->d] = D_;
            continue;
          }
          if (e->dense[a]) {
            rp[x->d] = src + pos;
            continue;
          }
          if (e->row_mode) {
            int64_t off = 0;
            for (int d = 0; d < r; d++) off += idx[d] * e->strides[a][d];
            int64_t is = e->strides[a][r - 1];
            if (is == 1) {
              rp[x->d] = src + off;
              continue;
            }
            if (is == 0) {
              float v = src[off];
              for (int64_t i = 0; i < n; i++) D_[i] = v;
              rp[x->d] = D_;
              continue;
            }
          }
          gather(e, a, idx, n, D_);
          rp[x->d] = D_;
          continue;
        }
        case DRT_EW_CONST: {
          float v = p->consts[x->a];
          for (int64_t i = 0; i < n; i++) D_[i] = v;
          break;
        }
        case DRT_EW_STORE: memmove(e->out[x->d] + pos, rp[x->a], (size_t)n * sizeof(float)); continue;
        case DRT_EW_NEG: UNARY(-v); break;
        case DRT_EW_ABS: UNARY(fabsf(v)); break;
        case DRT_EW_SQRT: UNARY(sqrtf(v)); break;
        case DRT_EW_RECIP: UNARY(1.0f / v); break;
        case DRT_EW_EXP: UNARY(drt_fast_expf(v)); break;
        case DRT_EW_LOG: UNARY(logf(v)); break;
        case DRT_EW_ERF: UNARY(drt_fast_erff(v)); break;
        case DRT_EW_TANH: UNARY(drt_fast_tanhf(v)); break;
        case DRT_EW_SIGMOID: UNARY(1.0f / (1.0f + drt_fast_expf(-v))); break;
        case DRT_EW_RELU: UNARY(v < 0 ? 0.0f : v); break;
        case DRT_EW_SIN: UNARY(sinf(v)); break;
        case DRT_EW_COS: UNARY(cosf(v)); break;
        case DRT_EW_TAN: UNARY(tanf(v)); break;
        case DRT_EW_ASIN: UNARY(asinf(v)); break;
        case DRT_EW_ACOS: UNARY(acosf(v)); break;
        case DRT_EW_ATAN: UNARY(atanf(v)); break;
        case DRT_EW_SINH: UNARY(sinhf(v)); break;
        case DRT_EW_COSH: UNARY(coshf(v)); break;
        case DRT_EW_ASINH: UNARY(asinhf(v)); break;
        case DRT_EW_ACOSH: UNARY(acoshf(v)); break;
        case DRT_EW_ATANH: UNARY(atanhf(v)); break;
        case DRT_EW_FLOOR: UNARY(floorf(v)); break;
        case DRT_EW_CEIL: UNARY(ceilf(v)); break;
        case DRT_EW_ROUND: UNARY(rintf(v)); break;
        case DRT_EW_SIGN: UNARY(v > 0 ? 1.0f : (v < 0 ? -1.0f : v)); break;
        case DRT_EW_GELU: UNARY(0.5f * v * (1.0f + drt_fast_erff(v * 0.70710678118654752440f))); break;
        case DRT_EW_GELU_TANH:
          UNARY(0.5f * v * (1.0f + drt_fast_tanhf(0.79788456080286535588f * (v + 0.044715f * v * v * v))));
          break;
        case DRT_EW_SOFTPLUS: UNARY(softplus(v)); break;
        case DRT_EW_SOFTSIGN: UNARY(v / (1.0f + fabsf(v))); break;
        case DRT_EW_MISH: UNARY(v * tanhf(softplus(v))); break;
        case DRT_EW_HARD_SWISH: UNARY(v * sat01(v * (float)(1.0 / 6.0) + 0.5f)); break;
        case DRT_EW_NOT: UNARY(v == 0 ? 1.0f : 0.0f); break;
        case DRT_EW_SILU: UNARY(v * (1.0f / (1.0f + drt_fast_expf(-v)))); break;
        case DRT_EW_LEAKY_RELU: {
          const float al = p->consts[x->b];
          UNARY(v < 0 ? al * v : v);
          break;
        }
        case DRT_EW_ELU: {
          const float al = p->consts[x->b];
          UNARY(v < 0 ? al * expm1f(v) : v);
          break;
        }
        case DRT_EW_CELU: {
          const float al = p->consts[x->b];
          UNARY(v > 0 ? v : al * expm1f(v / al));
          break;
        }
        case DRT_EW_SELU: {
          const float al = p->consts[x->b], ga = p->consts[x->c];
          UNARY(v > 0 ? ga * v : ga * (al * drt_fast_expf(v) - al));
          break;
        }
        case DRT_EW_HARD_SIGMOID: {
          const float al = p->consts[x->b], be = p->consts[x->c];
          UNARY(sat01(al * v + be));
          break;
        }
        case DRT_EW_SWISH: {
          const float al = p->consts[x->b];
          UNARY(v / (1.0f + drt_fast_expf(-al * v)));
          break;
        }
        case DRT_EW_THRESHOLDED_RELU: {
          const float al = p->consts[x->b];
          UNARY(v > al ? v : 0.0f);
          break;
        }
        case DRT_EW_SHRINK: {
          const float bias = p->consts[x->b], la = p->consts[x->c];
          UNARY(v < -la ? v + bias : (v > la ? v - bias : 0.0f));
          break;
        }
        case DRT_EW_ADD: BINARY(a + b); break;
        case DRT_EW_SUB: BINARY(a - b); break;
        case DRT_EW_MUL: BINARY(a * b); break;
        case DRT_EW_DIV: BINARY(a / b); break;
        case DRT_EW_POW: BINARY(powf(a, b)); break;
        case DRT_EW_MAX: BINARY((a > b || isnan(a)) ? a : b); break;
        case DRT_EW_MIN: BINARY((a < b || isnan(a)) ? a : b); break;
        case DRT_EW_PRELU: BINARY(a < 0 ? b * a : a); break;
        case DRT_EW_EQ: BINARY(a == b ? 1.0f : 0.0f); break;
        case DRT_EW_LT: BINARY(a < b ? 1.0f : 0.0f); break;
        case DRT_EW_LE: BINARY(a <= b ? 1.0f : 0.0f); break;
        case DRT_EW_GT: BINARY(a > b ? 1.0f : 0.0f); break;
        case DRT_EW_GE: BINARY(a >= b ? 1.0f : 0.0f); break;
        case DRT_EW_AND: BINARY(((a != 0) & (b != 0)) ? 1.0f : 0.0f); break;
        case DRT_EW_OR: BINARY(((a != 0) | (b != 0)) ? 1.0f : 0.0f); break;
        case DRT_EW_XOR: BINARY(((a != 0) ^ (b != 0)) ? 1.0f : 0.0f); break;
        case DRT_EW_WHERE: {
          const float *restrict A_ = rp[x->a], *restrict B_ = rp[x->b], *restrict C_ = rp[x->c];
          for (int64_t i = 0; i < n; i++) D_[i] = A_[i] != 0 ? B_[i] : C_[i];
          break;
        }
        case DRT_EW_CLIP: {
          const float *restrict A_ = rp[x->a];
          const float *lo = x->b >= 0 ? rp[x->b] : NULL, *hi = x->c >= 0 ? rp[x->c] : NULL;
          if (lo && hi) {
            for (int64_t i = 0; i < n; i++) {
              float v = A_[i] < lo[i] ? lo[i] : A_[i];
              D_[i] = v > hi[i] ? hi[i] : v;
            }
          } else if (lo) {
            for (int64_t i = 0; i < n; i++) D_[i] = A_[i] < lo[i] ? lo[i] : A_[i];
          } else if (hi) {
            for (int64_t i = 0; i < n; i++) D_[i] = A_[i] > hi[i] ? hi[i] : A_[i];
          } else {
            for (int64_t i = 0; i < n; i++) D_[i] = A_[i];
          }
          break;
        }
        default: break; /* rejected by drt_ew_program_decode */
      }
      rp[x->d] = D_;
    }
    /* advance the merged index by n (row mode: at most to the end of the row) */
    pos += n;
    idx[r - 1] += n;
    if (e->row_mode) {
      for (int d = r - 1; d > 0 && idx[d] == e->dims[d]; d--) {
        idx[d] = 0;
        idx[d - 1]++;
      }
    } else {
      for (int d = r - 1; d > 0 && idx[d] >= e->dims[d]; d--) {
        idx[d - 1] += idx[d] / e->dims[d];
        idx[d] %= e->dims[d];
      }
    }
  }
}

static void range_generic(const drt_ew_exec *e, int64_t begin, int64_t end) { range_body(e, begin, end); }
#if EW_X86
EW_TARGET_AVX2 static void range_avx2(const drt_ew_exec *e, int64_t begin, int64_t end) {
  range_body(e, begin, end);
}
#endif

void drt_ew_exec_range(const drt_ew_exec *e, int64_t begin, int64_t end) {
  if (begin >= end) return;
#if EW_X86
  if (drt_cpu_has_avx2_fma()) {
    range_avx2(e, begin, end);
    return;
  }
#endif
  range_generic(e, begin, end);
}

static void range_fn(void *arg, int64_t begin, int64_t end) {
  const drt_ew_exec *e = arg;
  /* chunks are counted in tiles */
  int64_t b = begin * DRT_EW_TILE, en = end * DRT_EW_TILE;
  if (en > e->total) en = e->total;
  drt_ew_exec_range(e, b, en);
}

void drt_ew_exec_run(drt_cpu_ctx *ctx, const drt_ew_exec *e) {
  if (e->total <= 0) return;
  int64_t tiles = (e->total + DRT_EW_TILE - 1) / DRT_EW_TILE;
  /* about 16K element-instructions per chunk before going parallel */
  int64_t per_tile = (int64_t)(e->compute_insns + 1) * DRT_EW_TILE;
  int64_t grain = (int64_t)(16384 * 4) / per_tile;
  if (grain < 4) grain = 4;
  if (grain > 64) grain = 64;
  drt_parallel_for(ctx, tiles, grain, range_fn, (void *)e);
}
