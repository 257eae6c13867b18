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
#include "runtime/cpu/fastmath.h"

/* norm.c (float32; other float dtypes are promoted by the executor) */
drt_status drt_cpu_softmax(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);
drt_status drt_cpu_layer_norm(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);
drt_status drt_cpu_rms_norm(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);
drt_status drt_cpu_group_norm(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);
drt_status drt_cpu_instance_norm(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);
drt_status drt_cpu_batch_norm(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);
drt_status drt_cpu_lp_normalization(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);
drt_status drt_cpu_mvn(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);
drt_status drt_cpu_lrn(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);

/* attention.c (float32) */
drt_status drt_cpu_attention(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);
drt_status drt_cpu_rotary_embedding(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out);

/* ---- float32 math ---------------------------------------------------------------------- */
#define DRT_RD_LANES 8
#define DRT_RD_FLUSH 1024 /* lane sums are flushed into double this often */

/* exp and tanh: drt_fast_expf / drt_fast_tanhf (runtime/cpu/fastmath.h), shared with the
 * elementwise kernels and mirrored on the device in codegen/kernels/prelude.cuh. */

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
        float v = drt_fast_expf(x[i + k] - m);
        y[i + k] = v;
        s[k] += v;
      }
    for (; i < e; i++) {
      float v = drt_fast_expf(x[i] - m);
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
