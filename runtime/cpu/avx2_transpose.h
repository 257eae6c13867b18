/* 8 x 8 float transpose in AVX registers, shared by the AVX2/FMA kernels (conv_avx2.c weight
 * packing, sgemm_avx2.c one-row GEMM with a transposed B). Include only where <immintrin.h> is
 * available (x86); callers are compiled with target("avx2,fma"). */
#ifndef DRT_RUNTIME_CPU_AVX2_TRANSPOSE_H
#define DRT_RUNTIME_CPU_AVX2_TRANSPOSE_H

#include <immintrin.h>
#include <stdint.h>

/* t[x] lane i = r[i][k + x] for x, i in 0..7 (rows r[i] hold at least k + 8 floats). */
__attribute__((target("avx2,fma"), always_inline)) static inline void drt_avx2_transpose8(const float *const *r,
                                                                                         int64_t k, __m256 t[8]) {
  __m256 a0 = _mm256_loadu_ps(r[0] + k), a1 = _mm256_loadu_ps(r[1] + k), a2 = _mm256_loadu_ps(r[2] + k),
         a3 = _mm256_loadu_ps(r[3] + k), a4 = _mm256_loadu_ps(r[4] + k), a5 = _mm256_loadu_ps(r[5] + k),
         a6 = _mm256_loadu_ps(r[6] + k), a7 = _mm256_loadu_ps(r[7] + k);
  __m256 t0 = _mm256_unpacklo_ps(a0, a1), t1 = _mm256_unpackhi_ps(a0, a1), t2 = _mm256_unpacklo_ps(a2, a3),
         t3 = _mm256_unpackhi_ps(a2, a3), t4 = _mm256_unpacklo_ps(a4, a5), t5 = _mm256_unpackhi_ps(a4, a5),
         t6 = _mm256_unpacklo_ps(a6, a7), t7 = _mm256_unpackhi_ps(a6, a7);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
         u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
         u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
         u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  t[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  t[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  t[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  t[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  t[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  t[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  t[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  t[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

#endif
