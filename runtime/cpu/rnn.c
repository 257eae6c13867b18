/* CPU kernels for the recurrent ops RNN, GRU and LSTM (ONNX operator spec; float32, other float
 * dtypes promoted by the executor).
 *
 *   X [seq, batch, input] (layout 0) or [batch, seq, input] (layout 1); W [dirs, G*hid, input];
 *   R [dirs, G*hid, hid]; B [dirs, 2*G*hid] (Wb then Rb); sequence_lens [batch]; initial_h
 *   [dirs, batch, hid] (layout 1: [batch, dirs, hid]); LSTM: initial_c as initial_h, P [dirs,
 *   3*hid] (peepholes i, o, f).  Gates: RNN 1 (f), GRU 3 (z, r, h; f, g), LSTM 4 (i, o, f, c;
 *   f, g, h). Outputs Y [seq, dirs, batch, hid] (layout 1: [batch, seq, dirs, hid]), Y_h (and
 *   Y_c) [dirs, batch, hid] (layout 1: [batch, dirs, hid]).
 *
 * Time steps at or past sequence_lens[b] produce zeros in Y and leave the state as it was, so
 * Y_h holds each sequence's last valid state. clip bounds every gate pre-activation. Sums run
 * in double over the input and hidden features. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer_linalg.h"
#include "runtime/cpu/cpu.h"

static double act_apply(const drt_rnn_act *a, double x) {
  switch (a->kind) {
    case DRT_RNN_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case DRT_RNN_TANH: return tanh(x);
    case DRT_RNN_RELU: return x > 0 ? x : 0;
    case DRT_RNN_AFFINE: return a->alpha * x + a->beta;
    case DRT_RNN_LEAKY_RELU: return x >= 0 ? x : a->alpha * x;
    case DRT_RNN_THRESHOLDED_RELU: return x > a->alpha ? x : 0;
    case DRT_RNN_SCALED_TANH: return a->alpha * tanh(a->beta * x);
    case DRT_RNN_HARD_SIGMOID: {
      double v = a->alpha * x + a->beta;
      return v < 0 ? 0 : v > 1 ? 1 : v;
    }
    case DRT_RNN_ELU: return x >= 0 ? x : a->alpha * (exp(x) - 1);
    case DRT_RNN_SOFTSIGN: return x / (1 + fabs(x));
    case DRT_RNN_SOFTPLUS: return log1p(exp(x));
  }
  return x;
}

static drt_status k_rnn(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  drt_rnn_geom g;
  const drt_shape *shapes[8] = {NULL};
  for (int i = 0; i < n->num_inputs && i < 8; i++) shapes[i] = in[i].data ? &in[i].shape : NULL;
  DRT_RETURN_IF_ERROR(drt_rnn_resolve(n, shapes, &g));
  const int64_t S = g.seq, B = g.batch, I = g.input, H = g.hidden, G = g.gates, D = g.dirs;
  const float *X = in[0].data, *W = in[1].data, *R = in[2].data;
  const float *Bias = n->num_inputs > 3 && in[3].data ? in[3].data : NULL;
  const float *H0 = n->num_inputs > 5 && in[5].data ? in[5].data : NULL;
  const float *C0 = g.lstm && n->num_inputs > 6 && in[6].data ? in[6].data : NULL;
  const float *P = g.lstm && n->num_inputs > 7 && in[7].data ? in[7].data : NULL;
  const drt_tensor *lens = n->num_inputs > 4 && in[4].data ? &in[4] : NULL;
  float *Y = n->num_outputs > 0 && out[0].data ? out[0].data : NULL;
  float *Yh = n->num_outputs > 1 && out[1].data ? out[1].data : NULL;
  float *Yc = g.lstm && n->num_outputs > 2 && out[2].data ? out[2].data : NULL;
  bool lbr = drt_node_attr_int(n, "linear_before_reset", 0) != 0;
  bool couple = g.lstm && drt_node_attr_int(n, "input_forget", 0) != 0;
  double clip = g.clip;
  double *h = malloc((size_t)(B * H) * sizeof(double)), *c = malloc((size_t)(B * H) * sizeof(double));
  double *gx = malloc((size_t)(G * H) * sizeof(double)), *gh = malloc((size_t)(G * H) * sizeof(double));
  double *hn = malloc((size_t)H * sizeof(double));
  if (!h || !c || !gx || !gh || !hn) {
    free(h), free(c), free(gx), free(gh), free(hn);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "recurrent state");
  }
  drt_status st = DRT_OK;
  for (int64_t b = 0; b < B && lens && !st; b++) {
    int64_t l = drt_load_i64(lens->dtype, lens->data, (size_t)b);
    if (l < 0 || l > S)
      st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "sequence_lens[%" PRId64 "] = %" PRId64 " is outside [0, %" PRId64 "]", b, l, S);
  }
  if (Y) memset(Y, 0, (size_t)(S * D * B * H) * sizeof(float));
  for (int64_t d = 0; d < D && !st; d++) {
    bool reverse = g.reverse || d == 1;
    const float *w = W + d * G * H * I, *rr = R + d * G * H * H;
    const float *wb = Bias ? Bias + d * 2 * G * H : NULL, *rb = Bias ? wb + G * H : NULL;
    const float *p = P ? P + d * 3 * H : NULL;
    const drt_rnn_act *acts = g.acts[d];
    for (int64_t b = 0; b < B; b++)
      for (int64_t k = 0; k < H; k++) {
        int64_t hi = g.layout ? (b * D + d) * H + k : (d * B + b) * H + k;
        h[b * H + k] = H0 ? H0[hi] : 0;
        c[b * H + k] = C0 ? C0[hi] : 0;
      }
    for (int64_t b = 0; b < B; b++) {
      int64_t len = lens ? drt_load_i64(lens->dtype, lens->data, (size_t)b) : S;
      double *hb = h + b * H, *cb = c + b * H;
      for (int64_t step = 0; step < len; step++) {
        int64_t t = reverse ? len - 1 - step : step;
        const float *x = X + (g.layout ? (b * S + t) * I : (t * B + b) * I);
        for (int64_t j = 0; j < G * H; j++) {
          double sx = wb ? wb[j] : 0, sh = rb ? rb[j] : 0;
          for (int64_t q = 0; q < I; q++) sx += (double)w[j * I + q] * x[q];
          for (int64_t q = 0; q < H; q++) sh += (double)rr[j * H + q] * hb[q];
          gx[j] = sx;
          gh[j] = sh;
        }
#define CLIP(v) (clip > 0 ? ((v) < -clip ? -clip : (v) > clip ? clip : (v)) : (v))
        if (G == 1) {
          for (int64_t k = 0; k < H; k++) hn[k] = act_apply(&acts[0], CLIP(gx[k] + gh[k]));
        } else if (G == 3) { /* GRU: z, r, h; z and r overwrite their input sums in gx */
          for (int64_t k = 0; k < H; k++) {
            gx[k] = act_apply(&acts[0], CLIP(gx[k] + gh[k]));
            gx[H + k] = act_apply(&acts[0], CLIP(gx[H + k] + gh[H + k]));
          }
          for (int64_t k = 0; k < H; k++) {
            double hh;
            if (lbr) { /* g(Wh x + Wbh + r . (Rh h + Rbh)) */
              hh = gx[2 * H + k] + gx[H + k] * gh[2 * H + k];
            } else { /* g(Wh x + Wbh + Rh (r . h) + Rbh) */
              double sr = rb ? rb[2 * H + k] : 0;
              for (int64_t q = 0; q < H; q++) sr += (double)rr[(2 * H + k) * H + q] * gx[H + q] * hb[q];
              hh = gx[2 * H + k] + sr;
            }
            hh = act_apply(&acts[1], CLIP(hh));
            hn[k] = (1 - gx[k]) * hh + gx[k] * hb[k];
          }
        } else { /* LSTM: i, o, f, c */
          for (int64_t k = 0; k < H; k++) {
            double ig = gx[k] + gh[k] + (p ? p[k] * cb[k] : 0);
            double fg = gx[2 * H + k] + gh[2 * H + k] + (p ? p[2 * H + k] * cb[k] : 0);
            double cg = gx[3 * H + k] + gh[3 * H + k];
            double iv = act_apply(&acts[0], CLIP(ig));
            double fv = couple ? 1 - iv : act_apply(&acts[0], CLIP(fg));
            double cn = fv * cb[k] + iv * act_apply(&acts[1], CLIP(cg));
            double og = gx[H + k] + gh[H + k] + (p ? p[H + k] * cn : 0);
            double ov = act_apply(&acts[0], CLIP(og));
            cb[k] = cn;
            hn[k] = ov * act_apply(&acts[2], cn);
          }
        }
#undef CLIP
        for (int64_t k = 0; k < H; k++) {
          hb[k] = hn[k];
          if (Y) Y[(g.layout ? ((b * S + t) * D + d) * H : ((t * D + d) * B + b) * H) + k] = (float)hn[k];
        }
      }
    }
    for (int64_t b = 0; b < B; b++)
      for (int64_t k = 0; k < H; k++) {
        int64_t oi = g.layout ? (b * D + d) * H + k : (d * B + b) * H + k;
        if (Yh) Yh[oi] = (float)h[b * H + k];
        if (Yc) Yc[oi] = (float)c[b * H + k];
      }
  }
  free(h), free(c), free(gx), free(gh), free(hn);
  return st;
}

const drt_cpu_kernel_entry drt_cpu_kernels_rnn[] = {
    {DRT_OP_RNN, k_rnn, DRT_DT_BIT(DRT_DTYPE_FLOAT32)},
    {DRT_OP_GRU, k_rnn, DRT_DT_BIT(DRT_DTYPE_FLOAT32)},
    {DRT_OP_LSTM, k_rnn, DRT_DT_BIT(DRT_DTYPE_FLOAT32)},
    {DRT_OP_COUNT_, NULL, 0},
};
