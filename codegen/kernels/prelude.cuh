/* codegen/kernels/prelude.cuh: what every kernel of a distilrt CUDA program may use.
 *
 * Compiled by NVRTC (--std=c++17 -default-device, sm_80..sm_90, no host headers) and by the
 * CPU emulator (tests/cuda_emu: g++ -include emu.h, one fiber per thread), so: no inline PTX
 * outside `#ifndef DRT_EMU`, no cooperative groups, __shared__ arrays only at function scope.
 *
 * Contents
 *   drt_kargs                 the one kernel parameter: 32 64-bit slots (pointers/immediates)
 *   drt_smem                  THE dynamic shared memory array (declare it nowhere else)
 *   drt_imm_f32/f64/i64       decode an immediate slot
 *   DRT_GRID_STRIDE(i, n)     grid-stride loop over [0, n) with a long long index
 *   drt_to_f32 / drt_from_f32<T>, drt_ld<T>(p) -> float, drt_st<T>(p, float)
 *                             conversions for float, __half, __nv_bfloat16, double and the
 *                             integer storage types (bool = unsigned char: drt_st_bool)
 *   drt_vec<T>::N, drt_ld_vec<T>(p, float v[N]), drt_st_vec<T>(p, const float v[N]),
 *   drt_ld_vecn<N>(p, v), drt_st_vecn<N>(p, v) (N elements of 8 or 16 bytes)
 *                             16-byte vector load/store (4 floats, 8 halves/bf16); p must be
 *                             16-byte aligned
 *   drt_warp_sum/max          full-warp butterfly reductions (every lane gets the result)
 *   drt_block_sum/max<BLOCK>  block reductions (BLOCK a multiple of 32; every thread gets the
 *                             result; contains __syncthreads, so call it from every thread)
 *   drt_fast_exp/tanh/erf     the float approximations of runtime/cpu/fastmath.h (same
 *                             polynomials, so fused device code tracks the CPU backend)
 *   drt_sigmoid, drt_gelu, drt_gelu_tanh  built on them, as runtime/cpu/elementwise.c */
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <mma.h>

struct drt_kargs {
  unsigned long long u[32];
};

extern __shared__ __align__(16) unsigned char drt_smem[];

#define DRT_GRID_STRIDE(i, n)                                                             \
  for (long long i = (long long)blockIdx.x * (long long)blockDim.x + (long long)threadIdx.x; \
       i < (long long)(n); i += (long long)gridDim.x * (long long)blockDim.x)

#ifndef DRT_INF_F32
#define DRT_INF_F32 __int_as_float(0x7f800000)
#define DRT_NAN_F32 __int_as_float(0x7fc00000)
#endif

/* Programmatic dependent launch (sm_90+). The code generator puts DRT_PDL_ENTRY() first in every
 * kernel: wait until the kernels this one depends on have completed and their writes are visible
 * (a no-op when it was launched without a programmatic dependency), then allow the next kernel
 * of the stream to be scheduled, so its blocks start on the SMs this grid's last wave frees
 * instead of after the whole grid has drained. The runtime launches with the attribute only
 * from sm_90+ images (runtime/cuda/executor.c). */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && !defined(DRT_EMU)
#define DRT_PDL_ENTRY()                                       \
  do {                                                        \
    asm volatile("griddepcontrol.wait;\n" ::: "memory");      \
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory"); \
  } while (0)
#else
#define DRT_PDL_ENTRY() ((void)0)
#endif

__device__ __forceinline__ float drt_imm_f32(unsigned long long u) { return __uint_as_float((unsigned)u); }
__device__ __forceinline__ double drt_imm_f64(unsigned long long u) { return __longlong_as_double((long long)u); }
__device__ __forceinline__ long long drt_imm_i64(unsigned long long u) { return (long long)u; }

/* ---- scalar conversions ----------------------------------------------------------------- */
__device__ __forceinline__ float drt_to_f32(float x) { return x; }
__device__ __forceinline__ float drt_to_f32(__half x) { return __half2float(x); }
__device__ __forceinline__ float drt_to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float drt_to_f32(double x) { return (float)x; }
__device__ __forceinline__ float drt_to_f32(signed char x) { return (float)x; }
__device__ __forceinline__ float drt_to_f32(unsigned char x) { return (float)x; }
__device__ __forceinline__ float drt_to_f32(short x) { return (float)x; }
__device__ __forceinline__ float drt_to_f32(unsigned short x) { return (float)x; }
__device__ __forceinline__ float drt_to_f32(int x) { return (float)x; }
__device__ __forceinline__ float drt_to_f32(unsigned x) { return (float)x; }
__device__ __forceinline__ float drt_to_f32(long long x) { return (float)x; }
__device__ __forceinline__ float drt_to_f32(unsigned long long x) { return (float)x; }

template <typename T> __device__ __forceinline__ T drt_from_f32(float x) { return (T)x; }
template <> __device__ __forceinline__ __half drt_from_f32<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 drt_from_f32<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

template <typename T> __device__ __forceinline__ float drt_ld(const T *p) { return drt_to_f32(*p); }
template <typename T> __device__ __forceinline__ void drt_st(T *p, float x) { *p = drt_from_f32<T>(x); }
/* bool storage: any non-zero value is true. */
__device__ __forceinline__ void drt_st_bool(unsigned char *p, float x) { *p = x != 0.0f ? 1 : 0; }

/* ---- 16-byte vectors -------------------------------------------------------------------- */
template <typename T> struct drt_vec {
  static constexpr int N = 16 / (int)sizeof(T);
};

/* Element j of a 16-byte word as T, and back (bit moves only, no aliasing tricks). */
__device__ __forceinline__ unsigned drt_vec_word(const uint4 &r, int w) {
  return w == 0 ? r.x : (w == 1 ? r.y : (w == 2 ? r.z : r.w));
}
__device__ __forceinline__ void drt_vec_set_word(uint4 &r, int w, unsigned v) {
  if (w == 0) r.x = v;
  else if (w == 1) r.y = v;
  else if (w == 2) r.z = v;
  else r.w = v;
}
__device__ __forceinline__ float drt_vec_get(const uint4 &r, int j, const float *) {
  return __uint_as_float(drt_vec_word(r, j));
}
__device__ __forceinline__ float drt_vec_get(const uint4 &r, int j, const __half *) {
  return __half2float(__ushort_as_half((unsigned short)(drt_vec_word(r, j >> 1) >> ((j & 1) * 16))));
}
__device__ __forceinline__ float drt_vec_get(const uint4 &r, int j, const __nv_bfloat16 *) {
  return __uint_as_float((drt_vec_word(r, j >> 1) >> ((j & 1) * 16)) << 16);
}
__device__ __forceinline__ void drt_vec_put(uint4 &r, int j, float v, const float *) {
  drt_vec_set_word(r, j, __float_as_uint(v));
}
__device__ __forceinline__ void drt_vec_put(uint4 &r, int j, float v, const __half *) {
  unsigned h = (unsigned)__half_as_ushort(__float2half_rn(v));
  unsigned w = drt_vec_word(r, j >> 1);
  w = (j & 1) ? ((w & 0xffffu) | (h << 16)) : ((w & 0xffff0000u) | h);
  drt_vec_set_word(r, j >> 1, w);
}
__device__ __forceinline__ void drt_vec_put(uint4 &r, int j, float v, const __nv_bfloat16 *) {
  unsigned h = (unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(v));
  unsigned w = drt_vec_word(r, j >> 1);
  w = (j & 1) ? ((w & 0xffffu) | (h << 16)) : ((w & 0xffff0000u) | h);
  drt_vec_set_word(r, j >> 1, w);
}

/* v[0..N) = p[0..N) as floats; T is float, __half or __nv_bfloat16. */
template <typename T> __device__ __forceinline__ void drt_ld_vec(const T *p, float *v) {
  uint4 raw = *reinterpret_cast<const uint4 *>(p);
#pragma unroll
  for (int j = 0; j < drt_vec<T>::N; j++) v[j] = drt_vec_get(raw, j, (const T *)0);
}

/* p[0..N) = v[0..N) rounded to T (round to nearest even). */
template <typename T> __device__ __forceinline__ void drt_st_vec(T *p, const float *v) {
  uint4 raw = make_uint4(0u, 0u, 0u, 0u);
#pragma unroll
  for (int j = 0; j < drt_vec<T>::N; j++) drt_vec_put(raw, j, v[j], (const T *)0);
  *reinterpret_cast<uint4 *>(p) = raw;
}

/* N elements (N * sizeof(T) is 16 or 8 bytes, p aligned to it): the vector path of an elementwise
   kernel whose operands have different element sizes (float32 next to fp16/bf16 storage) moves
   N = 4 elements per operand. */
template <int N, typename T> __device__ __forceinline__ void drt_ld_vecn(const T *p, float *v) {
  static_assert(N * sizeof(T) == 16 || N * sizeof(T) == 8, "8 or 16 bytes");
  if constexpr (N * sizeof(T) == 16) {
    drt_ld_vec<T>(p, v);
  } else {
    uint2 h = *reinterpret_cast<const uint2 *>(p);
    uint4 raw = make_uint4(h.x, h.y, 0u, 0u);
#pragma unroll
    for (int j = 0; j < N; j++) v[j] = drt_vec_get(raw, j, (const T *)0);
  }
}
template <int N, typename T> __device__ __forceinline__ void drt_st_vecn(T *p, const float *v) {
  static_assert(N * sizeof(T) == 16 || N * sizeof(T) == 8, "8 or 16 bytes");
  if constexpr (N * sizeof(T) == 16) {
    drt_st_vec<T>(p, v);
  } else {
    uint4 raw = make_uint4(0u, 0u, 0u, 0u);
#pragma unroll
    for (int j = 0; j < N; j++) drt_vec_put(raw, j, v[j], (const T *)0);
    *reinterpret_cast<uint2 *>(p) = make_uint2(raw.x, raw.y);
  }
}

/* ---- warp / block reductions ------------------------------------------------------------- */
__device__ __forceinline__ float drt_warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float drt_warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ double drt_warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/* Sum over the block (BLOCK threads, a multiple of 32). Every thread gets the same value
 * (partials are added in warp order, so the result is deterministic). */
template <int BLOCK> __device__ __forceinline__ float drt_block_sum(float v) {
  static_assert(BLOCK % 32 == 0 && BLOCK <= 1024, "drt_block_sum: BLOCK must be a multiple of 32");
  __shared__ float drt_red[BLOCK / 32];
  v = drt_warp_sum(v);
  __syncthreads(); /* a previous call may still be reading drt_red */
  if ((threadIdx.x & 31) == 0) drt_red[threadIdx.x >> 5] = v;
  __syncthreads();
  float r = 0.0f;
#pragma unroll
  for (int w = 0; w < BLOCK / 32; w++) r += drt_red[w];
  return r;
}

template <int BLOCK> __device__ __forceinline__ float drt_block_max(float v) {
  static_assert(BLOCK % 32 == 0 && BLOCK <= 1024, "drt_block_max: BLOCK must be a multiple of 32");
  __shared__ float drt_red[BLOCK / 32];
  v = drt_warp_max(v);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) drt_red[threadIdx.x >> 5] = v;
  __syncthreads();
  float r = drt_red[0];
#pragma unroll
  for (int w = 1; w < BLOCK / 32; w++) r = fmaxf(r, drt_red[w]);
  return r;
}

template <int BLOCK> __device__ __forceinline__ double drt_block_sum(double v) {
  static_assert(BLOCK % 32 == 0 && BLOCK <= 1024, "drt_block_sum: BLOCK must be a multiple of 32");
  __shared__ double drt_red[BLOCK / 32];
  v = drt_warp_sum(v);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) drt_red[threadIdx.x >> 5] = v;
  __syncthreads();
  double r = 0.0;
#pragma unroll
  for (int w = 0; w < BLOCK / 32; w++) r += drt_red[w];
  return r;
}

/* ---- fast math: a device copy of runtime/cpu/fastmath.h (the same formulas and constants, so a
 * kernel gives the CPU backend's values; the program is embedded CUDA text and cannot include the
 * host header). Change both together. ---------------------------------------------------------- */
/* exp(x): Cody-Waite reduction + Cephes degree-7 polynomial, 2^n applied as two factors. */
__device__ __forceinline__ float drt_fast_exp(float x) {
  x = x > 89.0f ? 89.0f : x;
  x = x < -104.0f ? -104.0f : x;
  float t = x * 1.44269504088896341f + 12582912.0f;
  float nf = t - 12582912.0f;
  int ni = (int)(__float_as_uint(t) - 0x4b400000u);
  float r = x - nf * 0.693359375f;
  r = r + nf * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  int n1 = ni / 2, n2 = ni - n1;
  return p * __uint_as_float((unsigned)(n1 + 127) << 23) * __uint_as_float((unsigned)(n2 + 127) << 23);
}

/* tanh(x): Eigen's float rational approximation. */
__device__ __forceinline__ float drt_fast_tanh(float x) {
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

/* erf(x): Eigen's float rational approximation on [-4, 4]. */
__device__ __forceinline__ float drt_fast_erf(float x) {
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

__device__ __forceinline__ float drt_sigmoid(float x) { return 1.0f / (1.0f + drt_fast_exp(-x)); }
__device__ __forceinline__ float drt_gelu(float x) { return 0.5f * x * (1.0f + drt_fast_erf(x * 0.70710678118654752440f)); }
__device__ __forceinline__ float drt_gelu_tanh(float x) {
  return 0.5f * x * (1.0f + drt_fast_tanh(0.79788456080286535588f * (x + 0.044715f * x * x * x)));
}
