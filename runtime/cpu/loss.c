/* CPU kernels for the loss ops: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss.
 *
 *   x [N, C, d1..dk]   target [N, d1..dk]   weight [C] (optional)
 *   loss[i, d] = -w[t] * lp[i, t, d]   with t = target[i, d], w[t] = weight[t] (or 1),
 *                                      and w = 0, loss = 0 where t == ignore_index
 *   lp = x (NegativeLogLikelihoodLoss) or log_softmax(x, axis 1) (SoftmaxCrossEntropyLoss,
 *        whose optional output 1 is lp itself)
 *   reduction: none -> loss [N, d1..dk];  sum -> sum(loss);  mean -> sum(loss) / sum(w)
 *
 * Sums run in double; a target outside [0, C) that is not ignore_index is an error naming it. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cpu/cpu.h"

typedef struct lossjob {
  const void *x;
  void *lp;         /* SoftmaxCrossEntropyLoss: log-probabilities (output 1 or a scratch buffer) */
  drt_dtype dt;     /* FLOAT32 or FLOAT64 */
  int64_t C, D;
} lossjob;

/* log_softmax over axis 1 for the (i, d) columns [begin, end) */
static void logsoftmax_run(void *arg, int64_t begin, int64_t end) {
  const lossjob *j = arg;
  for (int64_t t = begin; t < end; t++) {
    int64_t i = t / j->D, d = t % j->D, base = i * j->C * j->D + d;
    double m = -INFINITY, s = 0;
    for (int64_t c = 0; c < j->C; c++) {
      double v = drt_load_f64(j->dt, j->x, (size_t)(base + c * j->D));
      if (v > m) m = v;
    }
    for (int64_t c = 0; c < j->C; c++) s += exp(drt_load_f64(j->dt, j->x, (size_t)(base + c * j->D)) - m);
    double lse = m + log(s);
    for (int64_t c = 0; c < j->C; c++) {
      size_t k = (size_t)(base + c * j->D);
      double v = drt_load_f64(j->dt, j->x, k) - lse;
      if (j->dt == DRT_DTYPE_FLOAT64) ((double *)j->lp)[k] = v;
      else ((float *)j->lp)[k] = (float)v;
    }
  }
}

static drt_status k_loss(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  const drt_tensor *x = &in[0], *t = &in[1], *w = n->num_inputs > 2 && in[2].data ? &in[2] : NULL;
  const char *red = drt_node_attr_string(n, "reduction", "mean");
  bool none = strcmp(red, "none") == 0, mean = strcmp(red, "mean") == 0;
  const drt_attr *ii_attr = drt_node_attr(n, "ignore_index");
  bool has_ii = ii_attr != NULL;
  int64_t ii = drt_node_attr_int(n, "ignore_index", 0);
  int64_t N = x->shape.dims[0], C = x->shape.dims[1], D = 1;
  for (int d = 2; d < x->shape.rank; d++) D *= x->shape.dims[d];
  lossjob j = {x->data, NULL, x->dtype, C, D};
  const void *lp = x->data;
  void *scratch = NULL;
  if (n->op == DRT_OP_SCE_LOSS) {
    if (n->num_outputs > 1 && out[1].data) {
      j.lp = out[1].data;
    } else {
      size_t cnt = (size_t)(N * C * D);
      scratch = malloc((cnt ? cnt : 1) * drt_dtype_size(x->dtype));
      if (!scratch) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "log-probability buffer");
      j.lp = scratch;
    }
    if (N * D > 0) {
      int64_t grain = C > 0 ? 4096 / C : 1;
      drt_parallel_for(ctx, N * D, grain > 0 ? grain : 1, logsoftmax_run, &j);
    }
    lp = j.lp;
  }
  double sum = 0, wsum = 0;
  drt_status st = DRT_OK;
  for (int64_t i = 0; i < N && !st; i++) {
    for (int64_t d = 0; d < D; d++) {
      size_t k = (size_t)(i * D + d);
      int64_t c = drt_load_i64(t->dtype, t->data, k);
      double l = 0, wt = 0;
      if (!(has_ii && c == ii)) {
        if (c < 0 || c >= C) {
          st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                         "target (input 1) holds %" PRId64 " at flat index %zu: outside [0, %" PRId64 ")%s", c, k, C,
                         has_ii ? " and not ignore_index" : "");
          break;
        }
        wt = w ? drt_load_f64(w->dtype, w->data, (size_t)c) : 1.0;
        l = -wt * drt_load_f64(x->dtype, lp, (size_t)((i * C + c) * D + d));
      }
      if (none) {
        if (x->dtype == DRT_DTYPE_FLOAT64) ((double *)out[0].data)[k] = l;
        else ((float *)out[0].data)[k] = (float)l;
      }
      sum += l;
      wsum += wt;
    }
  }
  free(scratch);
  if (st || none) return st;
  double r = mean ? sum / wsum : sum; /* mean over nothing (all ignored) is 0/0 = NaN, as numpy */
  if (x->dtype == DRT_DTYPE_FLOAT64) *(double *)out[0].data = r;
  else *(float *)out[0].data = (float)r;
  return DRT_OK;
}

#define F32 DRT_DT_BIT(DRT_DTYPE_FLOAT32)
#define F64 DRT_DT_BIT(DRT_DTYPE_FLOAT64)

const drt_cpu_kernel_entry drt_cpu_kernels_loss[] = {
    {DRT_OP_NLL_LOSS, k_loss, F32 | F64},
    {DRT_OP_SCE_LOSS, k_loss, F32 | F64},
    {DRT_OP_COUNT_, NULL, 0},
};
