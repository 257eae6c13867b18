/* CPU kernels for the stateful sequence ops of opset 27: LinearAttention and
 * CausalConvWithState, after onnx/reference/ops (the recurrence run token by token in float32;
 * float16/bfloat16 operands are promoted by the executor). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer_reduce.h"
#include "runtime/cpu/cpu.h"

/* LinearAttention: per (batch, kv head) a state S [d_k, d_v] (past_state or zeros); for each
 * token t: S *= exp(g_t) (gated: per key row or per head), v' = beta_t (v_t - S^T k_t) (delta),
 * S += k_t v'^T, and every query head h of the group reads o_t = scale q_t^T S. */
static drt_status k_linear_attention(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  drt_linattn_geom g;
  const drt_shape *shapes[6];
  for (int i = 0; i < 6; i++) shapes[i] = i < n->num_inputs && in[i].data ? &in[i].shape : NULL;
  DRT_RETURN_IF_ERROR(drt_linattn_resolve(n, shapes, &g));
  const float *q = in[0].data, *k = in[1].data, *v = in[2].data;
  const float *past = shapes[3] ? in[3].data : NULL, *decay = shapes[4] ? in[4].data : NULL,
              *beta = shapes[5] ? in[5].data : NULL;
  float *o = out[0].data;
  float *present = n->num_outputs > 1 && out[1].data ? out[1].data : NULL;
  const int64_t B = g.batch, T = g.seq, Hq = g.q_heads, Hk = g.kv_heads, dk = g.dk, dv = g.dv, grp = Hq / Hk;
  float *S = malloc((size_t)(dk * dv) * sizeof(float)), *vt = malloc((size_t)dv * sizeof(float));
  if (!S || !vt) {
    free(S);
    free(vt);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "LinearAttention state");
  }
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < Hk; h++) {
      if (past) memcpy(S, past + (b * Hk + h) * dk * dv, (size_t)(dk * dv) * sizeof(float));
      else memset(S, 0, (size_t)(dk * dv) * sizeof(float));
      for (int64_t t = 0; t < T; t++) {
        const float *kt = k + (b * T + t) * Hk * dk + h * dk, *vin = v + (b * T + t) * Hk * dv + h * dv;
        if (decay) {
          const float *gt = decay + (b * T + t) * g.decay_last + (g.decay_last == Hk ? h : h * dk);
          for (int64_t i = 0; i < dk; i++) {
            float e = expf(gt[g.decay_last == Hk ? 0 : i]);
            for (int64_t j = 0; j < dv; j++) S[i * dv + j] *= e;
          }
        }
        if (beta) {
          float bt = beta[(b * T + t) * g.beta_last + (g.beta_last == 1 ? 0 : h)];
          for (int64_t j = 0; j < dv; j++) {
            float r = 0;
            for (int64_t i = 0; i < dk; i++) r += S[i * dv + j] * kt[i];
            vt[j] = bt * (vin[j] - r);
          }
        } else {
          memcpy(vt, vin, (size_t)dv * sizeof(float));
        }
        for (int64_t i = 0; i < dk; i++)
          for (int64_t j = 0; j < dv; j++) S[i * dv + j] += kt[i] * vt[j];
        for (int64_t hq = h * grp; hq < (h + 1) * grp; hq++) {
          const float *qt = q + (b * T + t) * Hq * dk + hq * dk;
          float *ot = o + (b * T + t) * Hq * dv + hq * dv;
          for (int64_t j = 0; j < dv; j++) {
            float acc = 0;
            for (int64_t i = 0; i < dk; i++) acc += qt[i] * S[i * dv + j];
            ot[j] = g.scale * acc;
          }
        }
      }
      if (present) memcpy(present + (b * Hk + h) * dk * dv, S, (size_t)(dk * dv) * sizeof(float));
    }
  free(S);
  free(vt);
  return DRT_OK;
}

/* CausalConvWithState: padded = [past_state or zeros (k - 1) | input] along the length;
 * y[b, c, t] = bias[c] + sum_j w[c, 0, j] padded[b, c, t + j], then SiLU if asked;
 * present_state = the last k - 1 positions of padded. */
static drt_status k_causal_conv(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const drt_tensor *x = &in[0], *w = &in[1];
  const float *bias = n->num_inputs > 2 && in[2].data ? in[2].data : NULL;
  const float *past = n->num_inputs > 3 && in[3].data ? in[3].data : NULL;
  const char *act = drt_node_attr_string(n, "activation", "none");
  bool silu = !strcmp(act, "silu") || !strcmp(act, "swish");
  int64_t B = x->shape.dims[0], C = x->shape.dims[1], L = x->shape.dims[2], K = w->shape.dims[2], P = L + K - 1;
  float *pad = malloc((size_t)(P > 0 ? P : 1) * sizeof(float));
  if (!pad) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "CausalConvWithState row");
  const float *xs = x->data, *ws = w->data;
  float *y = out[0].data, *present = n->num_outputs > 1 && out[1].data ? out[1].data : NULL;
  for (int64_t b = 0; b < B; b++)
    for (int64_t c = 0; c < C; c++) {
      for (int64_t j = 0; j < K - 1; j++) pad[j] = past ? past[(b * C + c) * (K - 1) + j] : 0.0f;
      memcpy(pad + K - 1, xs + (b * C + c) * L, (size_t)L * sizeof(float));
      for (int64_t t = 0; t < L; t++) {
        float acc = bias ? bias[c] : 0.0f;
        for (int64_t j = 0; j < K; j++) acc += ws[c * K + j] * pad[t + j];
        y[(b * C + c) * L + t] = silu ? acc * (1.0f / (1.0f + expf(-acc))) : acc;
      }
      if (present) memcpy(present + (b * C + c) * (K - 1), pad + L, (size_t)(K - 1) * sizeof(float));
    }
  free(pad);
  return DRT_OK;
}

const drt_cpu_kernel_entry drt_cpu_kernels_recurrent[] = {
    {DRT_OP_LINEAR_ATTENTION, k_linear_attention, DRT_DT_BIT(DRT_DTYPE_FLOAT32)},
    {DRT_OP_CAUSAL_CONV_WITH_STATE, k_causal_conv, DRT_DT_BIT(DRT_DTYPE_FLOAT32)},
    {DRT_OP_COUNT_, NULL, 0},
};
