/* MaxPool, AveragePool, GlobalAveragePool and GlobalMaxPool on the CPU.
 *
 * Spatial dims are normalized to 3 (leading dims of size 1). For every output index along
 * each axis the valid kernel taps [lo, hi) are precomputed once, so the inner loops touch
 * only in-bounds input elements. Work is split over output rows (plane, od, oh).
 * MaxPool: float32, float64, int8, uint8; the others: float32, float64. NaN inputs never win
 * a max (they compare false), matching onnxruntime. */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer_linalg.h"
#include "runtime/cpu/linalg.h"

typedef struct pool_job {
  int64_t in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
  int64_t in_sp, out_sp;
  int64_t *lo[3], *hi[3]; /* valid taps per output index, per axis */
  int64_t *npad[3];       /* taps inside the padded extent (count_include_pad) */
  int64_t *owlo, *owhi;   /* per kw: outputs along W whose tap kw is inside the input */
  const void *x;
  void *y;
  int64_t *indices; /* MaxPool second output, or NULL */
  bool col_major;   /* storage_order = 1 */
  bool include_pad;
} pool_job;

static void taps(int64_t base, int64_t step, int64_t limit, int64_t n, int64_t *lo, int64_t *hi) {
  int64_t a = base >= 0 ? 0 : (-base + step - 1) / step;
  int64_t b = base < limit ? (limit - 1 - base) / step + 1 : 0;
  if (b > n) b = n;
  if (a > b) a = b;
  *lo = a;
  *hi = b;
}

/* Fills the per-axis tap tables; the caller frees job->lo[0]. */
static drt_status pool_setup(const drt_node *n, const drt_tensor *x, pool_job *j) {
  drt_window_geom g;
  DRT_RETURN_IF_ERROR(drt_window_geom_compute(n, &x->shape, NULL, NULL, &g));
  if (g.nsp > 3) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%d spatial dims (the CPU kernel supports 1 to 3)", g.nsp);
  int off = 3 - g.nsp;
  for (int i = 0; i < 3; i++) {
    int a = i - off;
    j->in[i] = a >= 0 ? g.in[a] : 1;
    j->out[i] = a >= 0 ? g.out[a] : 1;
    j->k[i] = a >= 0 ? g.kernel[a] : 1;
    j->s[i] = a >= 0 ? g.stride[a] : 1;
    j->d[i] = a >= 0 ? g.dilation[a] : 1;
    j->pb[i] = a >= 0 ? g.pad_begin[a] : 0;
    j->pe[i] = a >= 0 ? g.pad_end[a] : 0;
  }
  j->include_pad = g.count_include_pad;
  j->in_sp = j->in[0] * j->in[1] * j->in[2];
  j->out_sp = j->out[0] * j->out[1] * j->out[2];
  int64_t total = 3 * (j->out[0] + j->out[1] + j->out[2]) + 2 * j->k[2];
  int64_t *buf = malloc((size_t)(total > 0 ? total : 1) * sizeof(int64_t));
  if (!buf) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "pool tables");
  for (int i = 0; i < 3; i++) {
    j->lo[i] = buf;
    j->hi[i] = buf + j->out[i];
    j->npad[i] = buf + 2 * j->out[i];
    buf += 3 * j->out[i];
    for (int64_t o = 0; o < j->out[i]; o++) {
      int64_t st = o * j->s[i] - j->pb[i], a, b;
      taps(st, j->d[i], j->in[i], j->k[i], &j->lo[i][o], &j->hi[i][o]);
      taps(st + j->pb[i], j->d[i], j->in[i] + j->pb[i] + j->pe[i], j->k[i], &a, &b);
      j->npad[i][o] = b - a;
    }
  }
  j->owlo = buf;
  j->owhi = buf + j->k[2];
  for (int64_t kw = 0; kw < j->k[2]; kw++)
    taps(kw * j->d[2] - j->pb[2], j->s[2], j->in[2], j->out[2], &j->owlo[kw], &j->owhi[kw]);
  return DRT_OK;
}

/* Row r covers output (plane, od, oh, all ow). The fast kernels go tap by tap: for each
 * valid (kd, kh) input row and each kw, one branch-free strided pass over the outputs whose
 * tap kw lands inside the row (vectorizes for stride 1). */
#define ROW_SETUP(T)                                                                              \
  int64_t rows_per_plane = j->out[0] * j->out[1];                                                 \
  int64_t plane = r / rows_per_plane, od = (r / j->out[1]) % j->out[0], oh = r % j->out[1];       \
  const T *x = (const T *)j->x + plane * j->in_sp;                                                \
  T *y = (T *)j->y + plane * j->out_sp + (od * j->out[1] + oh) * j->out[2];                       \
  int64_t d0 = od * j->s[0] - j->pb[0], h0 = oh * j->s[1] - j->pb[1];                             \
  int64_t ow_n = j->out[2], sw = j->s[2], dw = j->d[2], pw = j->pb[2], kw_n = j->k[2]

#define DEFINE_MAX_POOL(NAME, T, LOWEST)                                                          \
  static void NAME(void *arg, int64_t begin, int64_t end) {                                       \
    const pool_job *j = arg;                                                                      \
    for (int64_t r = begin; r < end; r++) {                                                       \
      ROW_SETUP(T);                                                                               \
      for (int64_t ow = 0; ow < ow_n; ow++) y[ow] = LOWEST;                                       \
      for (int64_t kd = j->lo[0][od]; kd < j->hi[0][od]; kd++) {                                  \
        int64_t id = d0 + kd * j->d[0];                                                           \
        for (int64_t kh = j->lo[1][oh]; kh < j->hi[1][oh]; kh++) {                                \
          const T *row = x + (id * j->in[1] + h0 + kh * j->d[1]) * j->in[2];                      \
          for (int64_t kw = 0; kw < kw_n; kw++) {                                                 \
            int64_t a = j->owlo[kw], n = j->owhi[kw] - a;                                         \
            const T *restrict src = row + a * sw - pw + kw * dw;                                  \
            T *restrict dst = y + a;                                                              \
            if (sw == 1)                                                                          \
              for (int64_t i = 0; i < n; i++) dst[i] = src[i] > dst[i] ? src[i] : dst[i];         \
            else                                                                                  \
              for (int64_t i = 0; i < n; i++) dst[i] = src[i * sw] > dst[i] ? src[i * sw] : dst[i]; \
          }                                                                                       \
        }                                                                                         \
      }                                                                                           \
    }                                                                                             \
  }
DEFINE_MAX_POOL(max_pool_f32, float, -FLT_MAX)
DEFINE_MAX_POOL(max_pool_f64, double, -DBL_MAX)
DEFINE_MAX_POOL(max_pool_i8, int8_t, INT8_MIN)
DEFINE_MAX_POOL(max_pool_u8, uint8_t, 0)

/* With the Indices output: scalar, first maximum in scan order wins. */
#define DEFINE_MAX_POOL_IDX(NAME, T, LOWEST)                                                      \
  static void NAME(void *arg, int64_t begin, int64_t end) {                                       \
    const pool_job *j = arg;                                                                      \
    for (int64_t r = begin; r < end; r++) {                                                       \
      ROW_SETUP(T);                                                                               \
      int64_t *ind = j->indices + plane * j->out_sp + (od * j->out[1] + oh) * j->out[2];          \
      (void)kw_n;                                                                                 \
      for (int64_t ow = 0; ow < ow_n; ow++) {                                                     \
        int64_t w0 = ow * sw - pw;                                                                \
        T best = LOWEST;                                                                          \
        int64_t bd = -1, bh = 0, bw = 0;                                                          \
        for (int64_t kd = j->lo[0][od]; kd < j->hi[0][od]; kd++) {                                \
          int64_t id = d0 + kd * j->d[0];                                                         \
          for (int64_t kh = j->lo[1][oh]; kh < j->hi[1][oh]; kh++) {                              \
            int64_t ih = h0 + kh * j->d[1];                                                       \
            const T *row = x + (id * j->in[1] + ih) * j->in[2];                                   \
            for (int64_t kw = j->lo[2][ow]; kw < j->hi[2][ow]; kw++) {                            \
              int64_t iw = w0 + kw * dw;                                                          \
              T v = row[iw];                                                                      \
              if (v > best || (bd < 0 && v == v)) {                                               \
                best = v;                                                                         \
                bd = id;                                                                          \
                bh = ih;                                                                          \
                bw = iw;                                                                          \
              }                                                                                   \
            }                                                                                     \
          }                                                                                       \
        }                                                                                         \
        y[ow] = best;                                                                             \
        if (bd < 0)                                                                               \
          ind[ow] = -1;                                                                           \
        else                                                                                      \
          ind[ow] = plane * j->in_sp + (j->col_major ? bd + bh * j->in[0] + bw * j->in[0] * j->in[1] \
                                                     : (bd * j->in[1] + bh) * j->in[2] + bw);     \
      }                                                                                           \
    }                                                                                             \
  }
DEFINE_MAX_POOL_IDX(max_pool_idx_f32, float, -FLT_MAX)
DEFINE_MAX_POOL_IDX(max_pool_idx_f64, double, -DBL_MAX)
DEFINE_MAX_POOL_IDX(max_pool_idx_i8, int8_t, INT8_MIN)
DEFINE_MAX_POOL_IDX(max_pool_idx_u8, uint8_t, 0)

#define DEFINE_AVG_POOL(NAME, T)                                                                  \
  static void NAME(void *arg, int64_t begin, int64_t end) {                                       \
    const pool_job *j = arg;                                                                      \
    for (int64_t r = begin; r < end; r++) {                                                       \
      ROW_SETUP(T);                                                                               \
      for (int64_t ow = 0; ow < ow_n; ow++) y[ow] = 0;                                            \
      for (int64_t kd = j->lo[0][od]; kd < j->hi[0][od]; kd++) {                                  \
        int64_t id = d0 + kd * j->d[0];                                                           \
        for (int64_t kh = j->lo[1][oh]; kh < j->hi[1][oh]; kh++) {                                \
          const T *row = x + (id * j->in[1] + h0 + kh * j->d[1]) * j->in[2];                      \
          for (int64_t kw = 0; kw < kw_n; kw++) {                                                 \
            int64_t a = j->owlo[kw], n = j->owhi[kw] - a;                                         \
            const T *restrict src = row + a * sw - pw + kw * dw;                                  \
            T *restrict dst = y + a;                                                              \
            if (sw == 1)                                                                          \
              for (int64_t i = 0; i < n; i++) dst[i] += src[i];                                   \
            else                                                                                  \
              for (int64_t i = 0; i < n; i++) dst[i] += src[i * sw];                              \
          }                                                                                       \
        }                                                                                         \
      }                                                                                           \
      int64_t cdh = (j->hi[0][od] - j->lo[0][od]) * (j->hi[1][oh] - j->lo[1][oh]);                \
      int64_t pdh = j->npad[0][od] * j->npad[1][oh];                                              \
      for (int64_t ow = 0; ow < ow_n; ow++) {                                                     \
        int64_t cnt = j->include_pad ? pdh * j->npad[2][ow] : cdh * (j->hi[2][ow] - j->lo[2][ow]); \
        y[ow] = cnt > 0 ? (T)(y[ow] / (T)cnt) : (T)0;                                             \
      }                                                                                           \
    }                                                                                             \
  }
DEFINE_AVG_POOL(avg_pool_f32, float)
DEFINE_AVG_POOL(avg_pool_f64, double)

/* LpPool: (sum over the valid taps of |x|^p)^(1/p); padding contributes zeros. */
typedef struct lp_job {
  pool_job *j;
  double p;
} lp_job;

#define DEFINE_LP_POOL(NAME, T)                                                                   \
  static void NAME(void *arg, int64_t begin, int64_t end) {                                       \
    const lp_job *lj = arg;                                                                       \
    const pool_job *j = lj->j;                                                                    \
    const double p = lj->p;                                                                       \
    for (int64_t r = begin; r < end; r++) {                                                       \
      ROW_SETUP(T);                                                                               \
      (void)kw_n;                                                                                 \
      for (int64_t ow = 0; ow < ow_n; ow++) {                                                     \
        double s = 0;                                                                             \
        for (int64_t kd = j->lo[0][od]; kd < j->hi[0][od]; kd++)                                  \
          for (int64_t kh = j->lo[1][oh]; kh < j->hi[1][oh]; kh++) {                              \
            const T *row = x + ((d0 + kd * j->d[0]) * j->in[1] + h0 + kh * j->d[1]) * j->in[2];   \
            for (int64_t kw = j->lo[2][ow]; kw < j->hi[2][ow]; kw++) {                            \
              double v = fabs((double)row[ow * sw - pw + kw * dw]);                               \
              s += p == 2 ? v * v : p == 1 ? v : pow(v, p);                                       \
            }                                                                                     \
          }                                                                                       \
        y[ow] = (T)(p == 2 ? sqrt(s) : p == 1 ? s : pow(s, 1.0 / p));                             \
      }                                                                                           \
    }                                                                                             \
  }
DEFINE_LP_POOL(lp_pool_f32, float)
DEFINE_LP_POOL(lp_pool_f64, double)

drt_status drt_cpu_lp_pool(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  const drt_tensor *x = &in[0];
  if (x->dtype != DRT_DTYPE_FLOAT32 && x->dtype != DRT_DTYPE_FLOAT64)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input 0 has dtype %s, which the CPU kernel does not support",
                     drt_dtype_name(x->dtype));
  int64_t p = drt_node_attr_int(n, "p", 2);
  if (p < 1) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute p is %" PRId64 ", must be >= 1", p);
  pool_job j;
  memset(&j, 0, sizeof j);
  DRT_RETURN_IF_ERROR(pool_setup(n, x, &j));
  j.x = x->data;
  j.y = out[0].data;
  lp_job lj = {&j, (double)p};
  int64_t rows = x->shape.dims[0] * x->shape.dims[1] * j.out[0] * j.out[1];
  drt_parallel_for(ctx, rows, 1, x->dtype == DRT_DTYPE_FLOAT32 ? lp_pool_f32 : lp_pool_f64, &lj);
  free(j.lo[0]);
  return DRT_OK;
}

static drt_status run_pool(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out, bool is_max) {
  const drt_tensor *x = &in[0];
  drt_range_fn fn;
  bool idx = is_max && n->num_outputs > 1 && out[1].data;
  switch (x->dtype) {
    case DRT_DTYPE_FLOAT32: fn = idx ? max_pool_idx_f32 : is_max ? max_pool_f32 : avg_pool_f32; break;
    case DRT_DTYPE_FLOAT64: fn = idx ? max_pool_idx_f64 : is_max ? max_pool_f64 : avg_pool_f64; break;
    case DRT_DTYPE_INT8: fn = idx ? max_pool_idx_i8 : is_max ? max_pool_i8 : NULL; break;
    case DRT_DTYPE_UINT8: fn = idx ? max_pool_idx_u8 : is_max ? max_pool_u8 : NULL; break;
    default: fn = NULL; break;
  }
  if (!fn)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input 0 has dtype %s, which the CPU kernel does not support",
                     drt_dtype_name(x->dtype));
  pool_job j;
  memset(&j, 0, sizeof j);
  DRT_RETURN_IF_ERROR(pool_setup(n, x, &j));
  j.x = x->data;
  j.y = out[0].data;
  if (idx) {
    j.indices = out[1].data;
    j.col_major = drt_node_attr_int(n, "storage_order", 0) == 1;
  }
  int64_t planes = x->shape.dims[0] * x->shape.dims[1];
  int64_t rows = planes * j.out[0] * j.out[1];
  int64_t per_row = j.out[2] * j.k[0] * j.k[1] * j.k[2];
  int64_t grain = per_row >= 4096 ? 1 : 4096 / (per_row > 0 ? per_row : 1);
  drt_parallel_for(ctx, rows, grain, fn, &j);
  free(j.lo[0]);
  return DRT_OK;
}

drt_status drt_cpu_max_pool(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  return run_pool(ctx, n, in, out, true);
}

drt_status drt_cpu_average_pool(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  return run_pool(ctx, n, in, out, false);
}

/* ---------------------------------------------------------------- global pools */

typedef struct global_job {
  const void *x;
  void *y;
  int64_t plane;
} global_job;

/* Sums use 8 independent partial sums (vectorizable without reassociation flags), combined
 * in double. */
#define DEFINE_GLOBAL(NAME_AVG, NAME_MAX, T)                                      \
  static void NAME_AVG(void *arg, int64_t begin, int64_t end) {                   \
    const global_job *j = arg;                                                    \
    for (int64_t p = begin; p < end; p++) {                                       \
      const T *x = (const T *)j->x + p * j->plane;                                \
      T part[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                       \
      int64_t i = 0;                                                              \
      for (; i + 8 <= j->plane; i += 8)                                           \
        for (int l = 0; l < 8; l++) part[l] += x[i + l];                          \
      double s = 0;                                                               \
      for (; i < j->plane; i++) s += (double)x[i];                                \
      for (int l = 0; l < 8; l++) s += (double)part[l];                           \
      ((T *)j->y)[p] = j->plane > 0 ? (T)(s / (double)j->plane) : (T)0;           \
    }                                                                             \
  }                                                                               \
  static void NAME_MAX(void *arg, int64_t begin, int64_t end) {                   \
    const global_job *j = arg;                                                    \
    for (int64_t p = begin; p < end; p++) {                                       \
      const T *x = (const T *)j->x + p * j->plane;                                \
      T m = -INFINITY;                                                            \
      for (int64_t i = 0; i < j->plane; i++) m = x[i] > m ? x[i] : m;             \
      ((T *)j->y)[p] = m;                                                         \
    }                                                                             \
  }
DEFINE_GLOBAL(global_avg_f32, global_max_f32, float)
DEFINE_GLOBAL(global_avg_f64, global_max_f64, double)

static drt_status run_global(drt_cpu_ctx *ctx, const drt_tensor *in, drt_tensor *out, bool is_max) {
  const drt_tensor *x = &in[0];
  drt_range_fn fn;
  if (x->dtype == DRT_DTYPE_FLOAT32)
    fn = is_max ? global_max_f32 : global_avg_f32;
  else if (x->dtype == DRT_DTYPE_FLOAT64)
    fn = is_max ? global_max_f64 : global_avg_f64;
  else
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input 0 has dtype %s, which the CPU kernel does not support",
                     drt_dtype_name(x->dtype));
  int64_t planes = x->shape.dims[0] * x->shape.dims[1];
  global_job j = {x->data, out[0].data, 1};
  for (int i = 2; i < x->shape.rank; i++) j.plane *= x->shape.dims[i];
  int64_t grain = j.plane >= 4096 ? 1 : 4096 / (j.plane > 0 ? j.plane : 1);
  drt_parallel_for(ctx, planes, grain, fn, &j);
  return DRT_OK;
}

drt_status drt_cpu_global_average_pool(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)n;
  return run_global(ctx, in, out, false);
}

drt_status drt_cpu_global_max_pool(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)n;
  return run_global(ctx, in, out, true);
}
