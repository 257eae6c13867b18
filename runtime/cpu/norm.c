/* CPU kernels for Softmax/LogSoftmax and the normalizations (LayerNormalization,
 * RMSNormalization, GroupNormalization, InstanceNormalization, BatchNormalization in
 * inference form). float32 data; statistics accumulate in double. Rows (or groups, or
 * channel planes) are independent and run in parallel. */
#if defined(__GNUC__) && !defined(__clang__)
/* Lets GCC if-convert float selects so the row loops vectorize (see runtime/cpu/reduce.h);
 * nothing here reads floating-point exception flags. */
#pragma GCC optimize("no-trapping-math")
#endif

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer.h"
#include "ir/infer_reduce.h"
#include "runtime/cpu/reduce.h"

/* Grain (rows per chunk) so that one chunk touches about 16K elements. */
static int64_t grain_for(int64_t row_len) {
  int64_t g = 16384 / (row_len > 0 ? row_len : 1);
  return g > 0 ? g : 1;
}

/* ---- Softmax / LogSoftmax ------------------------------------------------------------ */
#define SM_CHUNK 256

typedef struct smjob {
  bool log;
  const float *x;
  float *y;
  int64_t len, inner, nchunks;
} smjob;

static void softmax_row(bool lg, const float *x, float *y, int64_t n) {
  float mx = drt_rd_max(x, n);
  double sum = drt_rd_exp_sum(x, y, n, mx);
  if (lg) {
    float ls = (float)log(sum);
    for (int64_t i = 0; i < n; i++) y[i] = x[i] - mx - ls;
  } else {
    drt_rd_scale(y, y, n, (float)(1.0 / sum));
  }
}

static void smjob_rows(void *arg, int64_t begin, int64_t end) {
  const smjob *j = arg;
  for (int64_t r = begin; r < end; r++) softmax_row(j->log, j->x + r * j->len, j->y + r * j->len, j->len);
}

/* Softmax along a strided axis: `cols` adjacent columns at a time, vectorized across them. */
static void smjob_cols(void *arg, int64_t begin, int64_t end) {
  const smjob *j = arg;
  float mx[SM_CHUNK];
  double sum[SM_CHUNK];
  for (int64_t t = begin; t < end; t++) {
    int64_t o = t / j->nchunks, c0 = (t % j->nchunks) * SM_CHUNK;
    int64_t w = j->inner - c0 < SM_CHUNK ? j->inner - c0 : SM_CHUNK;
    const float *x = j->x + o * j->len * j->inner + c0;
    float *y = j->y + o * j->len * j->inner + c0;
    for (int64_t k = 0; k < w; k++) {
      mx[k] = -INFINITY;
      sum[k] = 0;
    }
    for (int64_t a = 0; a < j->len; a++) {
      const float *xa = x + a * j->inner;
      for (int64_t k = 0; k < w; k++) mx[k] = xa[k] > mx[k] || xa[k] != xa[k] ? xa[k] : mx[k];
    }
    for (int64_t a = 0; a < j->len; a++) {
      const float *xa = x + a * j->inner;
      float *ya = y + a * j->inner;
      for (int64_t k = 0; k < w; k++) {
        float e = drt_fast_expf(xa[k] - mx[k]);
        if (!j->log) ya[k] = e;
        sum[k] += e;
      }
    }
    for (int64_t a = 0; a < j->len; a++) {
      const float *xa = x + a * j->inner;
      float *ya = y + a * j->inner;
      if (j->log) {
        for (int64_t k = 0; k < w; k++) ya[k] = xa[k] - mx[k] - (float)log(sum[k]);
      } else {
        for (int64_t k = 0; k < w; k++) ya[k] = (float)(ya[k] / sum[k]);
      }
    }
  }
}

drt_status drt_cpu_softmax(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  const drt_tensor *x = &in[0];
  int64_t outer, len, inner;
  DRT_RETURN_IF_ERROR(drt_softmax_extent(n, &x->shape, &outer, &len, &inner));
  if (outer * len * inner == 0) return DRT_OK;
  smjob j = {n->op == DRT_OP_LOG_SOFTMAX, x->data, out[0].data, len, inner, 1};
  if (inner == 1) {
    drt_parallel_for(ctx, outer, grain_for(len), smjob_rows, &j);
  } else {
    j.nchunks = (inner + SM_CHUNK - 1) / SM_CHUNK;
    drt_parallel_for(ctx, outer * j.nchunks, grain_for(len * SM_CHUNK), smjob_cols, &j);
  }
  return DRT_OK;
}

/* ---- parameter broadcasting ---------------------------------------------------------- */
/* A scale/bias tensor p, unidirectionally broadcastable to x, viewed per row of x split at
 * `axis` (rows = prod(x[:axis]), cols = prod(x[axis:])). If p does not vary across rows,
 * `data` holds cols values (row_stride 0); otherwise rows*cols values (row_stride cols).
 * `data` points into p itself when p already has exactly that layout. */
typedef struct rowparam {
  const float *data;
  int64_t row_stride;
  float *owned;
} rowparam;

static drt_status rowparam_make(const drt_tensor *p, const drt_shape *x, int axis, rowparam *rp) {
  memset(rp, 0, sizeof *rp);
  int64_t strides[DRT_MAX_RANK];
  drt_broadcast_strides(&p->shape, x, strides);
  bool per_row = false;
  for (int d = 0; d < axis; d++)
    if (strides[d] != 0 && x->dims[d] != 1) per_row = true;
  int d0 = per_row ? 0 : axis;
  int64_t cnt = 1;
  for (int d = d0; d < x->rank; d++) cnt *= x->dims[d];
  if (per_row) {
    int64_t cols = 1;
    for (int d = axis; d < x->rank; d++) cols *= x->dims[d];
    rp->row_stride = cols;
  }
  if (drt_shape_numel(&p->shape) == cnt) { /* no broadcasting inside the used range */
    rp->data = p->data;
    return DRT_OK;
  }
  rp->owned = malloc((size_t)(cnt > 0 ? cnt : 1) * sizeof(float));
  if (!rp->owned) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "broadcast parameter buffer");
  int64_t idx[DRT_MAX_RANK] = {0};
  int64_t src = 0;
  const float *pd = p->data;
  for (int64_t k = 0; k < cnt; k++) {
    rp->owned[k] = pd[src];
    for (int d = x->rank - 1; d >= d0; d--) {
      if (++idx[d] < x->dims[d]) {
        src += strides[d];
        break;
      }
      src -= strides[d] * (x->dims[d] - 1);
      idx[d] = 0;
    }
  }
  rp->data = rp->owned;
  return DRT_OK;
}

/* ---- LayerNormalization / RMSNormalization --------------------------------------------- */
typedef struct lnjob {
  bool rms;
  const float *x;
  float *y, *mean, *inv_std;
  rowparam scale, bias; /* bias.data NULL when absent */
  int64_t cols;
  double eps;
} lnjob;

static void lnjob_run(void *arg, int64_t begin, int64_t end) {
  const lnjob *j = arg;
  int64_t n = j->cols;
  for (int64_t r = begin; r < end; r++) {
    const float *x = j->x + r * n;
    float *y = j->y + r * n;
    const float *sc = j->scale.data + r * j->scale.row_stride;
    const float *bi = j->bias.data ? j->bias.data + r * j->bias.row_stride : NULL;
    double mean = j->rms ? 0.0 : drt_rd_sum(x, n, false, 0.0f) / (double)n;
    float fm = (float)mean;
    double var = drt_rd_sum(x, n, true, fm) / (double)n;
    float fi = (float)(1.0 / sqrt(var + j->eps));
    if (bi) {
      for (int64_t i = 0; i < n; i++) y[i] = (x[i] - fm) * fi * sc[i] + bi[i];
    } else {
      for (int64_t i = 0; i < n; i++) y[i] = (x[i] - fm) * fi * sc[i];
    }
    if (j->mean) j->mean[r] = fm;
    if (j->inv_std) j->inv_std[r] = fi;
  }
}

static drt_status run_row_norm(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out, bool rms) {
  const drt_tensor *x = &in[0];
  int axis;
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_node_attr_int(n, "axis", -1), x->shape.rank, &axis),
                          "attribute axis");
  int64_t rows = 1, cols = 1;
  for (int d = 0; d < axis; d++) rows *= x->shape.dims[d];
  for (int d = axis; d < x->shape.rank; d++) cols *= x->shape.dims[d];
  if (rows * cols == 0) return DRT_OK;
  lnjob j;
  memset(&j, 0, sizeof j);
  j.rms = rms;
  j.x = x->data;
  j.y = out[0].data;
  j.cols = cols;
  j.eps = drt_node_attr_float(n, "epsilon", 1e-5f);
  if (!rms) {
    if (n->num_outputs > 1) j.mean = out[1].data;
    if (n->num_outputs > 2) j.inv_std = out[2].data;
  }
  DRT_RETURN_IF_ERROR(rowparam_make(&in[1], &x->shape, axis, &j.scale));
  drt_status st = DRT_OK;
  if (!rms && n->num_inputs > 2 && in[2].data) st = rowparam_make(&in[2], &x->shape, axis, &j.bias);
  if (!st) drt_parallel_for(ctx, rows, grain_for(cols), lnjob_run, &j);
  free(j.scale.owned);
  free(j.bias.owned);
  return st;
}

drt_status drt_cpu_layer_norm(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  return run_row_norm(ctx, n, in, out, false);
}

drt_status drt_cpu_rms_norm(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  return run_row_norm(ctx, n, in, out, true);
}

/* ---- GroupNormalization / InstanceNormalization -------------------------------------- */
typedef struct gnjob {
  const float *x, *scale, *bias;
  float *y;
  int64_t groups, ch_per_group, spatial;
  bool per_group_params;
  double eps;
} gnjob;

static void gnjob_run(void *arg, int64_t begin, int64_t end) {
  const gnjob *j = arg;
  int64_t block = j->ch_per_group * j->spatial;
  for (int64_t t = begin; t < end; t++) {
    int64_t g = t % j->groups;
    const float *x = j->x + t * block;
    float *y = j->y + t * block;
    double mean = drt_rd_sum(x, block, false, 0.0f) / (double)block;
    double var = drt_rd_sum(x, block, true, (float)mean) / (double)block;
    double inv = 1.0 / sqrt(var + j->eps);
    for (int64_t c = 0; c < j->ch_per_group; c++) {
      int64_t pc = j->per_group_params ? g : g * j->ch_per_group + c;
      float a = (float)(inv * j->scale[pc]), b = j->bias[pc], m = (float)mean;
      const float *xc = x + c * j->spatial;
      float *yc = y + c * j->spatial;
      for (int64_t i = 0; i < j->spatial; i++) yc[i] = (xc[i] - m) * a + b;
    }
  }
}

static drt_status run_group_norm(drt_cpu_ctx *ctx, const drt_tensor *in, drt_tensor *out, int64_t groups, double eps) {
  const drt_tensor *x = &in[0];
  int64_t nb = x->shape.dims[0], c = x->shape.dims[1], spatial = 1;
  for (int d = 2; d < x->shape.rank; d++) spatial *= x->shape.dims[d];
  if (groups <= 0 || c % groups)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "num_groups %lld does not divide the %lld channels",
                     (long long)groups, (long long)c);
  if (nb * c * spatial == 0) return DRT_OK;
  gnjob j = {x->data, in[1].data, in[2].data, out[0].data, groups, c / groups, spatial,
             drt_shape_numel(&in[1].shape) != c, eps};
  drt_parallel_for(ctx, nb * groups, grain_for(j.ch_per_group * spatial), gnjob_run, &j);
  return DRT_OK;
}

drt_status drt_cpu_group_norm(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  return run_group_norm(ctx, in, out, drt_node_attr_int(n, "num_groups", 0), drt_node_attr_float(n, "epsilon", 1e-5f));
}

drt_status drt_cpu_instance_norm(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  return run_group_norm(ctx, in, out, in[0].shape.dims[1], drt_node_attr_float(n, "epsilon", 1e-5f));
}

/* ---- BatchNormalization (inference) ---------------------------------------------------- */
typedef struct bnjob {
  const float *x, *a, *b; /* y = x * a + b per parameter index */
  float *y;
  int64_t c, spatial;
  bool per_element; /* spatial=0 (opset < 9): parameters per element of a sample */
} bnjob;

static void bnjob_run(void *arg, int64_t begin, int64_t end) {
  const bnjob *j = arg;
  for (int64_t t = begin; t < end; t++) {
    const float *x = j->x + t * j->spatial;
    float *y = j->y + t * j->spatial;
    int64_t ch = t % j->c;
    if (j->per_element) {
      const float *a = j->a + ch * j->spatial, *b = j->b + ch * j->spatial;
      for (int64_t i = 0; i < j->spatial; i++) y[i] = x[i] * a[i] + b[i];
    } else {
      float a = j->a[ch], b = j->b[ch];
      for (int64_t i = 0; i < j->spatial; i++) y[i] = x[i] * a + b;
    }
  }
}

drt_status drt_cpu_batch_norm(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  const drt_tensor *x = &in[0];
  if (n->opset >= 14 && drt_node_attr_int(n, "training_mode", 0) != 0)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "training_mode=1 is not supported; distilrt runs inference only");
  int64_t nb = x->shape.dims[0], c = x->shape.dims[1], spatial = 1;
  for (int d = 2; d < x->shape.rank; d++) spatial *= x->shape.dims[d];
  bool per_element = n->opset < 9 && drt_node_attr_int(n, "spatial", 1) == 0;
  int64_t np = per_element ? c * spatial : c;
  for (int i = 1; i < 5; i++)
    if (drt_shape_numel(&in[i].shape) != np)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input %d has %lld values, expected %lld", i,
                       (long long)drt_shape_numel(&in[i].shape), (long long)np);
  if (nb * c * spatial == 0) return DRT_OK;
  float *ab = malloc((size_t)np * 2 * sizeof(float));
  if (!ab) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "batchnorm coefficients");
  double eps = drt_node_attr_float(n, "epsilon", 1e-5f);
  const float *scale = in[1].data, *bias = in[2].data, *mean = in[3].data, *var = in[4].data;
  for (int64_t i = 0; i < np; i++) {
    double a = scale[i] / sqrt((double)var[i] + eps);
    ab[i] = (float)a;
    ab[np + i] = (float)(bias[i] - mean[i] * a);
  }
  bnjob j = {x->data, ab, ab + np, out[0].data, c, spatial, per_element};
  drt_parallel_for(ctx, nb * c, grain_for(spatial), bnjob_run, &j);
  free(ab);
  return DRT_OK;
}

/* ---- LpNormalization, MeanVarianceNormalization, LRN ----------------------------------- */
/* Statistics in double; rare in generators, so written for clarity over speed. */

/* y = x / ||x||_p along axis (p = 1: sum |x|; p = 2: sqrt of the sum of squares); 0 where
 * the norm is 0. */
drt_status drt_cpu_lp_normalization(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const drt_tensor *x = &in[0];
  int axis;
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_node_attr_int(n, "axis", -1), x->shape.rank, &axis),
                          "attribute axis");
  bool l1 = drt_node_attr_int(n, "p", 2) == 1;
  int64_t outer = 1, len = x->shape.dims[axis], inner = 1;
  for (int d = 0; d < axis; d++) outer *= x->shape.dims[d];
  for (int d = axis + 1; d < x->shape.rank; d++) inner *= x->shape.dims[d];
  const float *xs = x->data;
  float *ys = out[0].data;
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t i = 0; i < inner; i++) {
      const float *xp = xs + o * len * inner + i;
      float *yp = ys + o * len * inner + i;
      double s = 0;
      for (int64_t a = 0; a < len; a++) s += l1 ? fabs((double)xp[a * inner]) : (double)xp[a * inner] * xp[a * inner];
      double norm = l1 ? s : sqrt(s);
      for (int64_t a = 0; a < len; a++) yp[a * inner] = norm == 0 ? 0.0f : (float)(xp[a * inner] / norm);
    }
  }
  return DRT_OK;
}

/* y = (x - mean) / (sqrt(mean(x^2) - mean^2) + 1e-9) over attribute axes (default 0, 2, 3). */
drt_status drt_cpu_mvn(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const drt_tensor *x = &in[0];
  const int rank = x->shape.rank;
  bool red[DRT_MAX_RANK] = {false};
  int64_t cnt;
  const int64_t *axes = drt_node_attr_ints(n, "axes", &cnt);
  static const int64_t dflt[3] = {0, 2, 3};
  if (!axes) axes = dflt, cnt = 3;
  for (int64_t i = 0; i < cnt; i++) {
    int a;
    DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(axes[i], rank, &a), "attribute axes[%" PRId64 "]", i);
    red[a] = true;
  }
  /* kstride: stride of each dim in the array of kept positions (0 for reduced dims) */
  int64_t kstride[DRT_MAX_RANK], nkept = 1;
  for (int d = rank - 1; d >= 0; d--) {
    kstride[d] = red[d] ? 0 : nkept;
    if (!red[d]) nkept *= x->shape.dims[d];
  }
  int64_t total = drt_shape_numel(&x->shape);
  if (total == 0) return DRT_OK;
  double *acc = calloc((size_t)nkept * 2, sizeof(double));
  int64_t *kidx = malloc((size_t)total * sizeof(int64_t));
  if (!acc || !kidx) {
    free(acc);
    free(kidx);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "MeanVarianceNormalization statistics");
  }
  const float *xs = x->data;
  float *ys = out[0].data;
  int64_t coord[DRT_MAX_RANK] = {0};
  for (int64_t e = 0; e < total; e++) {
    int64_t k = 0;
    for (int d = 0; d < rank; d++) k += coord[d] * kstride[d];
    kidx[e] = k;
    acc[2 * k] += xs[e];
    acc[2 * k + 1] += (double)xs[e] * xs[e];
    for (int d = rank - 1; d >= 0 && ++coord[d] == x->shape.dims[d]; d--) coord[d] = 0;
  }
  double per = (double)(total / nkept);
  for (int64_t k = 0; k < nkept; k++) {
    double mean = acc[2 * k] / per, var = acc[2 * k + 1] / per - mean * mean;
    acc[2 * k] = mean;
    acc[2 * k + 1] = sqrt(var > 0 ? var : 0) + 1e-9;
  }
  for (int64_t e = 0; e < total; e++) ys[e] = (float)((xs[e] - acc[2 * kidx[e]]) / acc[2 * kidx[e] + 1]);
  free(acc);
  free(kidx);
  return DRT_OK;
}

/* y = x / (bias + alpha / size * sum of x^2 over channels [c - floor((size-1)/2),
 * c + ceil((size-1)/2)])^beta, for x [N, C, ...]. */
drt_status drt_cpu_lrn(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const drt_tensor *x = &in[0];
  int64_t size = drt_node_attr_int(n, "size", 1);
  double alpha = drt_node_attr_float(n, "alpha", 1e-4f), beta = drt_node_attr_float(n, "beta", 0.75f),
         bias = drt_node_attr_float(n, "bias", 1.0f);
  int64_t nb = x->shape.dims[0], c = x->shape.dims[1], sp = 1;
  for (int d = 2; d < x->shape.rank; d++) sp *= x->shape.dims[d];
  int64_t lo = (size - 1) / 2, hi = size / 2; /* floor((size-1)/2), ceil((size-1)/2) */
  const float *xs = x->data;
  float *ys = out[0].data;
  for (int64_t b = 0; b < nb; b++)
    for (int64_t ch = 0; ch < c; ch++)
      for (int64_t s = 0; s < sp; s++) {
        double sum = 0;
        for (int64_t k = ch - lo < 0 ? 0 : ch - lo; k <= ch + hi && k < c; k++) {
          double v = xs[(b * c + k) * sp + s];
          sum += v * v;
        }
        size_t at = (size_t)((b * c + ch) * sp + s);
        ys[at] = (float)(xs[at] / pow(bias + alpha / (double)size * sum, beta));
      }
  return DRT_OK;
}
