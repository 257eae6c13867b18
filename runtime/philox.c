/* Philox4x32-10 and the reproducible Box-Muller transform; the exact definition is in
 * runtime/philox.h. Every floating-point expression below is part of that definition: keep
 * the operation order, keep the literals, and never let the compiler contract a*b+c into an
 * FMA (C11 mode disables contraction on GCC; the pragma covers clang). */
#include "runtime/philox.h"

#include <math.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void drt_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int r = 0; r < 10; r++) {
    if (r > 0) {
      k0 += PHILOX_W0;
      k1 += PHILOX_W1;
    }
    uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
    uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

/* log(u) = e*ln2 + log(m), u = m * 2^e with m in [sqrt(1/2), sqrt(2)) (frexp is exact);
 * log(m) = 2*s*(1 + s^2/3 + s^4/5 + ... + s^24/25), s = (m-1)/(m+1), |s| < 0.1716, so the
 * truncation error is below 1e-20 relative. */
double drt_philox_log(double u) {
  int e;
  double m = frexp(u, &e); /* m in [0.5, 1) */
  if (m < 0.70710678118654757) {
    m = m * 2.0;
    e = e - 1;
  }
  double s = (m - 1.0) / (m + 1.0);
  double z = s * s;
  double p = 0.04;
  p = p * z + 0.043478260869565216;
  p = p * z + 0.047619047619047616;
  p = p * z + 0.05263157894736842;
  p = p * z + 0.058823529411764705;
  p = p * z + 0.06666666666666667;
  p = p * z + 0.07692307692307693;
  p = p * z + 0.09090909090909091;
  p = p * z + 0.1111111111111111;
  p = p * z + 0.14285714285714285;
  p = p * z + 0.2;
  p = p * z + 0.3333333333333333;
  p = p * z + 1.0;
  double logm = 2.0 * s * p;
  return (double)e * 0.6931471805599453 + logm;
}

/* Taylor polynomials on [0, pi/2] (terms through theta^23 / theta^22; truncation < 1e-19). */
void drt_philox_sincos_poly(double theta, double *s, double *c) {
  double z = theta * theta;
  double ps = -3.868170170630684e-23;
  ps = ps * z + 1.9572941063391263e-20;
  ps = ps * z + -8.22063524662433e-18;
  ps = ps * z + 2.8114572543455206e-15;
  ps = ps * z + -7.647163731819816e-13;
  ps = ps * z + 1.6059043836821613e-10;
  ps = ps * z + -2.505210838544172e-08;
  ps = ps * z + 2.7557319223985893e-06;
  ps = ps * z + -0.0001984126984126984;
  ps = ps * z + 0.008333333333333333;
  ps = ps * z + -0.16666666666666666;
  ps = ps * z + 1.0;
  *s = theta * ps;
  double pc = -8.896791392450574e-22;
  pc = pc * z + 4.110317623312165e-19;
  pc = pc * z + -1.5619206968586225e-16;
  pc = pc * z + 4.779477332387385e-14;
  pc = pc * z + -1.1470745597729725e-11;
  pc = pc * z + 2.08767569878681e-09;
  pc = pc * z + -2.755731922398589e-07;
  pc = pc * z + 2.48015873015873e-05;
  pc = pc * z + -0.001388888888888889;
  pc = pc * z + 0.041666666666666664;
  pc = pc * z + -0.5;
  pc = pc * z + 1.0;
  *c = pc;
}

/* Box-Muller of one pair of words -> two normals (lane a, lane b). */
static void box_muller(uint32_t xa, uint32_t xb, float *za, float *zb) {
  double u = ((double)xa + 0.5) * 2.3283064365386963e-10; /* 2^-32 */
  double r = sqrt(-2.0 * drt_philox_log(u));
  uint32_t q = xb >> 30;
  double f = (double)(xb & 0x3fffffffu) * 9.313225746154785e-10; /* 2^-30 */
  double theta = f * 1.5707963267948966;
  double s, c, cs, sn;
  drt_philox_sincos_poly(theta, &s, &c);
  switch (q) {
    case 0: cs = c; sn = s; break;
    case 1: cs = -s; sn = c; break;
    case 2: cs = -c; sn = -s; break;
    default: cs = s; sn = -c; break;
  }
  *za = (float)(r * cs);
  *zb = (float)(r * sn);
}

static void normal_block(uint64_t seed, uint64_t stream, uint64_t block, float z[4]) {
  uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  uint32_t x[4];
  drt_philox4x32_10(ctr, key, x);
  box_muller(x[0], x[1], &z[0], &z[1]);
  box_muller(x[2], x[3], &z[2], &z[3]);
}

void drt_philox_normal(uint64_t seed, uint64_t stream, uint64_t offset, float *out, size_t n) {
  size_t j = 0;
  float z[4];
  /* leading partial block */
  if (n > 0 && (offset & 3u)) {
    normal_block(seed, stream, offset >> 2, z);
    for (unsigned lane = (unsigned)(offset & 3u); lane < 4 && j < n; lane++) out[j++] = z[lane];
  }
  while (n - j >= 4) {
    normal_block(seed, stream, (offset + j) >> 2, &out[j]);
    j += 4;
  }
  if (j < n) {
    normal_block(seed, stream, (offset + j) >> 2, z);
    for (unsigned lane = 0; j < n; lane++) out[j++] = z[lane];
  }
}
