/* Kernel lookup and the dtype-promotion wrapper around every CPU kernel call. */
#include <stdlib.h>
#include <string.h>

#include "runtime/cpu/cpu.h"

static const drt_cpu_kernel_entry *const k_tables[] = {
    drt_cpu_kernels_elementwise,
    drt_cpu_kernels_linalg,
    drt_cpu_kernels_reduce,
    drt_cpu_kernels_movement,
    drt_cpu_kernels_index,
    drt_cpu_kernels_fused,
    drt_cpu_kernels_loss,
    drt_cpu_kernels_select,
    drt_cpu_kernels_quantize,
    drt_cpu_kernels_grid_sample,
    drt_cpu_kernels_recurrent,
    drt_cpu_kernels_reorder,
    drt_cpu_kernels_rnn,
    drt_cpu_kernels_signal,
    drt_cpu_kernels_text,
};

const drt_cpu_kernel_entry *drt_cpu_kernel_find(drt_op op) {
  for (size_t t = 0; t < sizeof(k_tables) / sizeof(k_tables[0]); t++)
    for (const drt_cpu_kernel_entry *e = k_tables[t]; e->op != DRT_OP_COUNT_; e++)
      if (e->op == op) return e;
  return NULL;
}

static bool needs_promotion(drt_dtype dt, uint32_t native) {
  return (dt == DRT_DTYPE_FLOAT16 || dt == DRT_DTYPE_BFLOAT16 || dt == DRT_DTYPE_FLOAT64) &&
         !(native & DRT_DT_BIT(dt));
}

#define MAX_IO 64

drt_status drt_cpu_run_node(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  char d[256];
  const drt_cpu_kernel_entry *e = drt_cpu_kernel_find(n->op);
  if (!e || !e->fn)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: no CPU kernel for op %s", drt_node_describe(n, d, sizeof d),
                     drt_op_name(n->op));
  bool promote = false;
  for (int i = 0; i < n->num_inputs; i++)
    if (in[i].data && needs_promotion(in[i].dtype, e->float_dtypes)) promote = true;
  for (int i = 0; i < n->num_outputs; i++)
    if (needs_promotion(out[i].dtype, e->float_dtypes)) promote = true;
  drt_status st;
  if (!promote) {
    st = e->fn(ctx, n, in, out);
  } else {
    if (n->num_inputs > MAX_IO || n->num_outputs > MAX_IO)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: too many inputs/outputs", drt_node_describe(n, d, sizeof d));
    drt_tensor pin[MAX_IO], pout[MAX_IO];
    void *bufs[2 * MAX_IO];
    int nb = 0;
    st = DRT_OK;
    for (int i = 0; i < n->num_inputs && !st; i++) {
      pin[i] = in[i];
      if (in[i].data && needs_promotion(in[i].dtype, e->float_dtypes)) {
        int64_t cnt = drt_shape_numel(&in[i].shape);
        float *b = malloc((size_t)(cnt > 0 ? cnt : 1) * sizeof(float));
        if (!b) {
          st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "converting input %d to float32", i);
          break;
        }
        bufs[nb++] = b;
        drt_convert(DRT_DTYPE_FLOAT32, b, in[i].dtype, in[i].data, (size_t)cnt);
        pin[i].dtype = DRT_DTYPE_FLOAT32;
        pin[i].data = b;
      }
    }
    for (int i = 0; i < n->num_outputs && !st; i++) {
      pout[i] = out[i];
      if (needs_promotion(out[i].dtype, e->float_dtypes)) {
        int64_t cnt = drt_shape_numel(&out[i].shape);
        float *b = malloc((size_t)(cnt > 0 ? cnt : 1) * sizeof(float));
        if (!b) {
          st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "allocating float32 output %d", i);
          break;
        }
        bufs[nb++] = b;
        pout[i].dtype = DRT_DTYPE_FLOAT32;
        pout[i].data = b;
      }
    }
    if (!st) st = e->fn(ctx, n, pin, pout);
    if (!st)
      for (int i = 0; i < n->num_outputs; i++)
        if (pout[i].data != out[i].data)
          drt_convert(out[i].dtype, out[i].data, DRT_DTYPE_FLOAT32, pout[i].data,
                      (size_t)drt_shape_numel(&out[i].shape));
    for (int i = 0; i < nb; i++) free(bufs[i]);
  }
  if (st) return drt_status_annotate(st, "%s", drt_node_describe(n, d, sizeof d));
  return DRT_OK;
}

void drt_broadcast_strides(const drt_shape *in, const drt_shape *out, int64_t *strides) {
  int off = out->rank - in->rank;
  int64_t s = 1;
  for (int i = out->rank - 1; i >= 0; i--) {
    int j = i - off;
    if (j < 0) {
      strides[i] = 0;
      continue;
    }
    strides[i] = in->dims[j] == 1 && out->dims[i] != 1 ? 0 : s;
    s *= in->dims[j];
  }
}
