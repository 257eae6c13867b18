/* CPU kernels for DFT (opsets 17, 20) and STFT, after onnx/reference/ops/op_dft.py and op_stft.py.
 * Direct O(N^2) sums in double (signal ops are rare in generators; exactness over speed).
 * Geometry (lengths, axis, output shape) comes from ir/infer_index.c's drt_dft_resolve. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer.h"
#include "runtime/cpu/cpu.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* DFT: x [..., L, ..., 1|2] along axis -> [..., K, ..., 2|1]. Forward: X[k] = sum_n z[n]
 * e^{-2 pi i k n / N} over the first N inputs (zero-padded), k < K (N, or N/2 + 1 onesided).
 * Inverse: z[n] = 1/N sum_k Z[k] e^{2 pi i k n / N}; onesided inverse (irfft) extends the first
 * N/2 + 1 inputs Hermitian-symmetrically and returns the real part. */
static drt_status k_dft(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  drt_dft_geom g;
  DRT_RETURN_IF_ERROR(drt_dft_resolve(n, &in[0].shape, n->num_inputs > 1 ? &in[1] : NULL,
                                      n->num_inputs > 2 ? &in[2] : NULL, &g));
  const drt_tensor *x = &in[0];
  int64_t L = x->shape.dims[g.axis], outer = 1, inner = 1, N = g.length, K = g.out_len;
  for (int d = 0; d < g.axis; d++) outer *= x->shape.dims[d];
  for (int d = g.axis + 1; d < x->shape.rank - 1; d++) inner *= x->shape.dims[d];
  int64_t ci = x->shape.dims[x->shape.rank - 1], co = g.real_out ? 1 : 2;
  const double sign = g.inverse ? 1.0 : -1.0;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      for (int64_t k = 0; k < K; k++) {
        double re = 0, im = 0;
        for (int64_t t = 0; t < N; t++) {
          double zr, zi;
          int64_t src = t;
          bool conj = false;
          if (g.inverse && g.onesided && t > N / 2) { /* Hermitian extension of the half spectrum */
            src = N - t;
            conj = true;
          }
          if (src >= L) continue;
          size_t at = (size_t)(((o * L + src) * inner + i) * ci);
          zr = drt_load_f64(x->dtype, x->data, at);
          zi = ci == 2 ? drt_load_f64(x->dtype, x->data, at + 1) : 0.0;
          if (conj) zi = -zi;
          double a = sign * 2.0 * M_PI * (double)((k * t) % N) / (double)N, c = cos(a), s = sin(a);
          re += zr * c - zi * s;
          im += zr * s + zi * c;
        }
        if (g.inverse) re /= (double)N, im /= (double)N;
        size_t ot = (size_t)(((o * K + k) * inner + i) * co);
        drt_convert(out[0].dtype, (char *)out[0].data + ot * drt_dtype_size(out[0].dtype), DRT_DTYPE_FLOAT64, &re, 1);
        if (co == 2)
          drt_convert(out[0].dtype, (char *)out[0].data + (ot + 1) * drt_dtype_size(out[0].dtype), DRT_DTYPE_FLOAT64, &im, 1);
      }
    }
  return DRT_OK;
}

/* STFT: signal [B, L, 1|2] -> [B, frames, bins, 2], frame f = samples [f * step, f * step +
 * frame_length) times the window (ones when absent), each transformed as DFT forward. */
static drt_status k_stft(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const drt_tensor *x = &in[0], *w = n->num_inputs > 2 && in[2].data ? &in[2] : NULL;
  int64_t B = x->shape.dims[0], L = x->shape.dims[1], ci = x->shape.dims[2];
  int64_t frames = out[0].shape.dims[1], bins = out[0].shape.dims[2];
  int64_t step = drt_load_i64(in[1].dtype, in[1].data, 0);
  int64_t fl = n->num_inputs > 3 && in[3].data ? drt_load_i64(in[3].dtype, in[3].data, 0) : w ? w->shape.dims[0] : L;
  for (int64_t b = 0; b < B; b++)
    for (int64_t f = 0; f < frames; f++)
      for (int64_t k = 0; k < bins; k++) {
        double re = 0, im = 0;
        for (int64_t t = 0; t < fl; t++) {
          size_t at = (size_t)((b * L + f * step + t) * ci);
          double wt = w ? drt_load_f64(w->dtype, w->data, (size_t)t) : 1.0;
          double zr = wt * drt_load_f64(x->dtype, x->data, at), zi = ci == 2 ? wt * drt_load_f64(x->dtype, x->data, at + 1) : 0;
          double a = -2.0 * M_PI * (double)((k * t) % fl) / (double)fl, c = cos(a), s = sin(a);
          re += zr * c - zi * s;
          im += zr * s + zi * c;
        }
        size_t ot = (size_t)(((b * frames + f) * bins + k) * 2);
        size_t es = drt_dtype_size(out[0].dtype);
        drt_convert(out[0].dtype, (char *)out[0].data + ot * es, DRT_DTYPE_FLOAT64, &re, 1);
        drt_convert(out[0].dtype, (char *)out[0].data + (ot + 1) * es, DRT_DTYPE_FLOAT64, &im, 1);
      }
  return DRT_OK;
}

const drt_cpu_kernel_entry drt_cpu_kernels_signal[] = {
    {DRT_OP_DFT, k_dft, DRT_DT_FLOATS},
    {DRT_OP_STFT, k_stft, DRT_DT_FLOATS},
    {DRT_OP_COUNT_, NULL, 0},
};
