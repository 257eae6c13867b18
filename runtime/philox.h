/* Philox4x32-10 counter-based random numbers and the standard-normal noise of the sampler.
 *
 * Every noise value is a pure function of (seed, stream, element index), so the CPU and the
 * GPU produce the same tensor bit for bit, in any order and from any number of threads.
 *
 * ---- Philox4x32-10 (Salmon et al., SC'11; Random123) --------------------------------------
 *   counter ctr[4], key key[2], all uint32. One round:
 *     (hi0, lo0) = 64-bit product 0xD2511F53 * ctr[0]     (hi = upper 32 bits, lo = lower)
 *     (hi1, lo1) = 64-bit product 0xCD9E8D57 * ctr[2]
 *     ctr = { hi1 ^ ctr[1] ^ key[0], lo1, hi0 ^ ctr[3] ^ key[1], lo0 }
 *   10 rounds; between two rounds key[0] += 0x9E3779B9, key[1] += 0xBB67AE85 (mod 2^32).
 *   The four words after the 10th round are the output. Known answers (Random123 kat_vectors):
 *     ctr 0 0 0 0, key 0 0                   -> 6627e8d5 e169c58d bc57ac4c 9b00dbd8
 *     ctr ffffffff x4, key ffffffff x2       -> 408f276d 41c83b0e a20bc7c6 6d5451fd
 *     ctr 243f6a88 85a308d3 13198a2e 03707344, key a4093822 299f31d0
 *                                            -> d16cfe09 94fdcceb 5001e420 24126ea1
 *
 * ---- Noise layout ---------------------------------------------------------------------------
 *   A noise tensor is filled in C order; element i (0-based, flattened) of stream `stream`
 *   under seed `seed` comes from the Philox block
 *     block = i / 4, lane = i % 4,
 *     ctr = { (uint32)block, (uint32)(block >> 32), (uint32)stream, (uint32)(stream >> 32) },
 *     key = { (uint32)seed,  (uint32)(seed >> 32) },
 *     x[0..3] = philox4x32_10(ctr, key).
 *   Streams: DRT_PHILOX_STREAM_INIT (0) is the initial latent x_T; the noise injected by
 *   sampling step k (0-based) is stream DRT_PHILOX_STREAM_STEP(k) = k + 1. Batch items are
 *   part of the flattened tensor (they are not separate streams).
 *
 * ---- Box-Muller (exactly reproducible) ------------------------------------------------------
 *   Lanes (0, 1) form one pair and lanes (2, 3) another: for a pair (xa, xb)
 *     u = ((double)xa + 0.5) * 2^-32                in (0, 1), exact in binary64
 *     r = sqrt(-2 * drt_philox_log(u))              sqrt correctly rounded (IEEE-754)
 *     q = xb >> 30 (quadrant), f = (double)(xb & 0x3fffffff) * 2^-30 in [0, 1) (exact)
 *     theta = f * DRT_PHILOX_PIO2, (s, c) = drt_philox_sincos_poly(theta)
 *     angle 2*pi*xb/2^32 = q*pi/2 + theta, so (cos, sin) of it is
 *       q = 0: ( c,  s)   q = 1: (-s,  c)   q = 2: (-c, -s)   q = 3: ( s, -c)
 *     lane a = (float)(r * cos), lane b = (float)(r * sin)  (binary64 -> binary32, nearest)
 *   drt_philox_log and the sin/cos polynomials are written out in philox.c using only
 *   binary64 +, -, *, / with round-to-nearest-even, evaluated strictly left to right as
 *   written and WITHOUT fused multiply-add. A GPU port reproduces every bit by using the
 *   same sequence (CUDA: __dadd_rn/__dmul_rn/__ddiv_rn/__dsqrt_rn, or NVRTC --fmad=false);
 *   no libm transcendental is involved, so the result does not depend on the math library.
 *   The constants are the binary64 values nearest to the decimal literals in philox.c.
 *
 * Thread-safety: every function is pure (no global state) and may run on any thread.
 */
#ifndef DRT_RUNTIME_PHILOX_H
#define DRT_RUNTIME_PHILOX_H

#include <stddef.h>
#include <stdint.h>

#define DRT_PHILOX_STREAM_INIT 0u
#define DRT_PHILOX_STREAM_STEP(k) ((uint64_t)(k) + 1u)

/* One Philox4x32-10 block: out = philox(ctr, key). out may alias ctr. */
void drt_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* Standard normals of `stream` for elements [offset, offset + n) into out[0..n) (layout
 * above); offset need not be a multiple of 4, so a tensor may be split among threads at any
 * element. */
void drt_philox_normal(uint64_t seed, uint64_t stream, uint64_t offset, float *out, size_t n);

/* The deterministic natural logarithm used by Box-Muller, for u in (0, 1] (exported for the
 * tests and for GPU code generators that want to check their port). */
double drt_philox_log(double u);
/* sin and cos of theta in [0, pi/2] with the documented polynomial. */
void drt_philox_sincos_poly(double theta, double *s, double *c);

#endif
