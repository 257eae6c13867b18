/* Branch-free float32 exp, tanh and erf that vectorize, for the CPU kernels. These are the
 * approximations runtime/cpu/elementwise.c uses for Exp, Tanh, Erf (and Sigmoid, Gelu), kept
 * identical so that fused kernels give the same values as the ops run one by one. Pure
 * functions; thread-safe. */
#ifndef DRT_RUNTIME_CPU_FASTMATH_H
#define DRT_RUNTIME_CPU_FASTMATH_H

#include <stdint.h>
#include <string.h>

static inline float drt_bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static inline uint32_t drt_f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

/* exp(x): Cody-Waite range reduction, degree-7 polynomial (Cephes expf), 2^n applied as two
 * factors so results from subnormal to overflow are exact scalings. About 2 ulp. NaN
 * propagates, exp(inf) = inf, exp(-inf) = 0. */
static inline float drt_fast_expf(float x) {
  x = x > 89.0f ? 89.0f : x;
  x = x < -104.0f ? -104.0f : x;
  float t = x * 1.44269504088896341f + 12582912.0f;
  float nf = t - 12582912.0f;
  int32_t ni = (int32_t)(drt_f32_bits(t) - 0x4b400000u);
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
  return p * drt_bits_f32((uint32_t)(n1 + 127) << 23) * drt_bits_f32((uint32_t)(n2 + 127) << 23);
}

/* tanh(x): rational approximation (Eigen's float coefficients), ~4e-7 relative error. */
static inline float drt_fast_tanhf(float x) {
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
  return (x < 0.0004f && x > -0.0004f) ? x : y;
}

/* erf(x): rational approximation on [-4, 4] (Eigen's float coefficients), ~4e-7 error. */
static inline float drt_fast_erff(float x) {
  float c = x > 4.0f ? 4.0f : x;
  c = c < -4.0f ? -4.0f : c;
  float x2 = c * c;
  float p = -2.72614225801306e-10f;
  p = p * x2 + 2.77068142495902e-08f;
  p = p * x2 - 2.10102402082508e-06f;
  p = p * x2 - 5.69250639462346e-05f;
  p = p * x2 - 7.34990630326855e-04f;
  p = p * x2 - 2.95459980854025e-03f;
  p = p * x2 - 1.60960333262415e-02f;
  p = p * c;
  float q = -1.45660718464996e-05f;
  q = q * x2 - 2.13374055278905e-04f;
  q = q * x2 - 1.68282697438203e-03f;
  q = q * x2 - 7.37332916720468e-03f;
  q = q * x2 - 1.42647390514189e-02f;
  return p / q;
}

#endif
