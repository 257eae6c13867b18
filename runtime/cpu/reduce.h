/* Internals of the CPU reduce family, shared by runtime/cpu/{reduce,norm,attention}.c only:
 * the kernels that reduce.c lists in its table but that live in norm.c (softmax and the
 * normalizations) and attention.c, and branch-free float32 row helpers that vectorize.
 *
 * The row helpers are written so that GCC vectorizes them when the including file enables
 * `#pragma GCC optimize("no-trapping-math")` (as norm.c and attention.c do): selects are
 * plain ternaries and sums use explicit lanes. Thread-safe (pure functions). */
#ifndef DRT_RUNTIME_CPU_REDUCE_H
#define DRT_RUNTIME_CPU_REDUCE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "runtime/cpu/cpu.h"

/* norm.c (float32; other float dtypes are promoted by the executor) */
drt_status drt_cpu_softmax(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);
drt_status drt_cpu_layer_norm(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);
drt_status drt_cpu_rms_norm(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);
drt_status drt_cpu_group_norm(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);
drt_status drt_cpu_instance_norm(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);
drt_status drt_cpu_batch_norm(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);

/* attention.c (float32) */
drt_status drt_cpu_attention(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);

/* ---- float32 math ---------------------------------------------------------------------- */
#define DRT_RD_LANES 8
#define DRT_RD_FLUSH 1024 /* lane sums are flushed into double this often */

static inline float drt_rd_bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static inline uint32_t drt_rd_f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

/* exp(x) to about 2 ulp: x = n*ln2 + r (Cody-Waite), Cephes polynomial for exp(r), 2^n
 * applied as two exact factors. exp(-inf) = 0, exp(inf) = inf, NaN propagates. */
static inline float drt_rd_expf(float x) {
  x = x > 89.0f ? 89.0f : x; /* NaN passes through both clamps */
  x = x < -104.0f ? -104.0f : x;
  float t = x * 1.44269504088896341f + 12582912.0f; /* 1.5 * 2^23 rounds to an integer */
  float nf = t - 12582912.0f;
  int32_t ni = (int32_t)(drt_rd_f32_bits(t) - 0x4b400000u);
  float r = x - nf * 0.693359375f;
  r = r + nf * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  int32_t n1 = ni / 2, n2 = ni - n1;
  return p * drt_rd_bits_f32((uint32_t)(n1 + 127) << 23) * drt_rd_bits_f32((uint32_t)(n2 + 127) << 23);
}

/* tanh(x) with ~4e-7 relative error (Eigen's float rational approximation). */
static inline float drt_rd_tanhf(float x) {
  float c = x > 7.90531110763549805f ? 7.90531110763549805f : x;
  c = c < -7.90531110763549805f ? -7.90531110763549805f : c;
  float x2 = c * c;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 - 8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = p * c;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  float y = p / q;
  float ax = x < 0 ? -x : x;
  return ax < 0.0004f ? x : y;
}

/* ---- row helpers ----------------------------------------------------------------------- */
/* Largest element of x[0..n) (-inf for n == 0; NaN if any element is NaN). */
static inline float drt_rd_max(const float *x, int64_t n) {
  float m[DRT_RD_LANES];
  int32_t nan[DRT_RD_LANES] = {0};
  for (int k = 0; k < DRT_RD_LANES; k++) m[k] = -INFINITY;
  int64_t i = 0;
  for (; i + DRT_RD_LANES <= n; i += DRT_RD_LANES)
    for (int k = 0; k < DRT_RD_LANES; k++) {
      float v = x[i + k];
      m[k] = v > m[k] ? v : m[k];
      nan[k] |= v != v;
    }
  for (; i < n; i++) {
    m[0] = x[i] > m[0] ? x[i] : m[0];
    nan[0] |= x[i] != x[i];
  }
  float r = m[0];
  int32_t any_nan = nan[0];
  for (int k = 1; k < DRT_RD_LANES; k++) {
    r = m[k] > r ? m[k] : r;
    any_nan |= nan[k];
  }
  return any_nan ? NAN : r;
}

/* Sum of x[0..n) (shift == 0) or of (x[i] - shift)^2 (square), accumulated in float lanes
 * flushed into double every DRT_RD_FLUSH elements. */
static inline double drt_rd_sum(const float *x, int64_t n, bool square, float shift) {
  double total = 0;
  for (int64_t b = 0; b < n; b += DRT_RD_FLUSH) {
    int64_t e = b + DRT_RD_FLUSH < n ? b + DRT_RD_FLUSH : n;
    float s[DRT_RD_LANES] = {0};
    int64_t i = b;
    if (square) {
      for (; i + DRT_RD_LANES <= e; i += DRT_RD_LANES)
        for (int k = 0; k < DRT_RD_LANES; k++) {
          float d = x[i + k] - shift;
          s[k] += d * d;
        }
      for (; i < e; i++) s[0] += (x[i] - shift) * (x[i] - shift);
    } else {
      for (; i + DRT_RD_LANES <= e; i += DRT_RD_LANES)
        for (int k = 0; k < DRT_RD_LANES; k++) s[k] += x[i + k];
      for (; i < e; i++) s[0] += x[i];
    }
    double part = 0;
    for (int k = 0; k < DRT_RD_LANES; k++) part += s[k];
    total += part;
  }
  return total;
}

/* y[i] = exp(x[i] - m) for i < n (y may alias x); returns the sum of the y[i]. */
static inline double drt_rd_exp_sum(const float *x, float *y, int64_t n, float m) {
  double total = 0;
  for (int64_t b = 0; b < n; b += DRT_RD_FLUSH) {
    int64_t e = b + DRT_RD_FLUSH < n ? b + DRT_RD_FLUSH : n;
    float s[DRT_RD_LANES] = {0};
    int64_t i = b;
    for (; i + DRT_RD_LANES <= e; i += DRT_RD_LANES)
      for (int k = 0; k < DRT_RD_LANES; k++) {
        float v = drt_rd_expf(x[i + k] - m);
        y[i + k] = v;
        s[k] += v;
      }
    for (; i < e; i++) {
      float v = drt_rd_expf(x[i] - m);
      y[i] = v;
      s[0] += v;
    }
    double part = 0;
    for (int k = 0; k < DRT_RD_LANES; k++) part += s[k];
    total += part;
  }
  return total;
}

/* y[i] = x[i] * a for i < n (y may alias x). */
static inline void drt_rd_scale(const float *x, float *y, int64_t n, float a) {
  for (int64_t i = 0; i < n; i++) y[i] = x[i] * a;
}

#endif
