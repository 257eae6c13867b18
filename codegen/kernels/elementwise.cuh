/* codegen/kernels/elementwise.cuh: scalar functions the generated elementwise kernels call
 * (codegen/emit_elementwise.c writes one straight-line kernel per node; these helpers keep
 * the generated text short). Each mirrors runtime/cpu/elementwise.c (ONNX ops) and
 * runtime/cpu/ew_exec.c (drt.Elementwise programs):
 *   drt_u_*  unary float/double functions (float: fast exp/tanh/erf of prelude.cuh as on the
 *            CPU; double: the accurate libdevice functions, as the CPU's libm)
 *   drt_b_*  binary float/double functions (NaN-propagating Max/Min, numpy Mod, PRelu, Pow)
 *   drt_i_*  integer templates: two's complement wrapping, division and modulo by 0 give 0
 *   drt_cvt_* ONNX Cast from floating point to integers (NaN -> 0, truncate, saturate) */

/* ---- unary (float, double) --------------------------------------------------------------- */
__device__ __forceinline__ float drt_sat01(float v) {
  v = v < 0.0f ? 0.0f : v;
  return v > 1.0f ? 1.0f : v;
}
__device__ __forceinline__ double drt_sat01(double v) {
  v = v < 0.0 ? 0.0 : v;
  return v > 1.0 ? 1.0 : v;
}
__device__ __forceinline__ float drt_u_softplus(float x) { return x > 0.0f ? x + log1pf(expf(-x)) : log1pf(expf(x)); }
__device__ __forceinline__ double drt_u_softplus(double x) { return x > 0.0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

__device__ __forceinline__ float drt_u_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double drt_u_abs(double x) { return fabs(x); }
__device__ __forceinline__ float drt_u_neg(float x) { return -x; }
__device__ __forceinline__ double drt_u_neg(double x) { return -x; }
__device__ __forceinline__ float drt_u_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double drt_u_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float drt_u_recip(float x) { return 1.0f / x; }
__device__ __forceinline__ double drt_u_recip(double x) { return 1.0 / x; }
__device__ __forceinline__ float drt_u_exp(float x) { return drt_fast_exp(x); }
__device__ __forceinline__ double drt_u_exp(double x) { return exp(x); }
__device__ __forceinline__ float drt_u_log(float x) { return logf(x); }
__device__ __forceinline__ double drt_u_log(double x) { return log(x); }
__device__ __forceinline__ float drt_u_erf(float x) { return drt_fast_erf(x); }
__device__ __forceinline__ double drt_u_erf(double x) { return erf(x); }
__device__ __forceinline__ float drt_u_tanh(float x) { return drt_fast_tanh(x); }
__device__ __forceinline__ double drt_u_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float drt_u_sigmoid(float x) { return 1.0f / (1.0f + drt_fast_exp(-x)); }
__device__ __forceinline__ double drt_u_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
__device__ __forceinline__ float drt_u_relu(float x) { return x < 0.0f ? 0.0f : x; }
__device__ __forceinline__ double drt_u_relu(double x) { return x < 0.0 ? 0.0 : x; }
__device__ __forceinline__ float drt_u_sin(float x) { return sinf(x); }
__device__ __forceinline__ double drt_u_sin(double x) { return sin(x); }
__device__ __forceinline__ float drt_u_cos(float x) { return cosf(x); }
__device__ __forceinline__ double drt_u_cos(double x) { return cos(x); }
__device__ __forceinline__ float drt_u_tan(float x) { return tanf(x); }
__device__ __forceinline__ double drt_u_tan(double x) { return tan(x); }
__device__ __forceinline__ float drt_u_asin(float x) { return asinf(x); }
__device__ __forceinline__ double drt_u_asin(double x) { return asin(x); }
__device__ __forceinline__ float drt_u_acos(float x) { return acosf(x); }
__device__ __forceinline__ double drt_u_acos(double x) { return acos(x); }
__device__ __forceinline__ float drt_u_atan(float x) { return atanf(x); }
__device__ __forceinline__ double drt_u_atan(double x) { return atan(x); }
__device__ __forceinline__ float drt_u_sinh(float x) { return sinhf(x); }
__device__ __forceinline__ double drt_u_sinh(double x) { return sinh(x); }
__device__ __forceinline__ float drt_u_cosh(float x) { return coshf(x); }
__device__ __forceinline__ double drt_u_cosh(double x) { return cosh(x); }
__device__ __forceinline__ float drt_u_floor(float x) { return floorf(x); }
__device__ __forceinline__ double drt_u_floor(double x) { return floor(x); }
__device__ __forceinline__ float drt_u_ceil(float x) { return ceilf(x); }
__device__ __forceinline__ double drt_u_ceil(double x) { return ceil(x); }
__device__ __forceinline__ float drt_u_round(float x) { return rintf(x); } /* half to even */
__device__ __forceinline__ double drt_u_round(double x) { return rint(x); }
__device__ __forceinline__ float drt_u_sign(float x) { return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x); }
__device__ __forceinline__ double drt_u_sign(double x) { return x > 0.0 ? 1.0 : (x < 0.0 ? -1.0 : x); }
__device__ __forceinline__ float drt_u_gelu(float x) { return 0.5f * x * (1.0f + drt_fast_erf(x * 0.70710678118654752440f)); }
__device__ __forceinline__ double drt_u_gelu(double x) { return 0.5 * x * (1.0 + erf(x * 0.70710678118654752440)); }
__device__ __forceinline__ float drt_u_gelu_tanh(float x) {
  return 0.5f * x * (1.0f + drt_fast_tanh(0.79788456080286535588f * (x + 0.044715f * x * x * x)));
}
__device__ __forceinline__ double drt_u_gelu_tanh(double x) {
  return 0.5 * x * (1.0 + tanh(0.79788456080286535588 * (x + 0.044715 * x * x * x)));
}
__device__ __forceinline__ float drt_u_softsign(float x) { return x / (1.0f + fabsf(x)); }
__device__ __forceinline__ double drt_u_softsign(double x) { return x / (1.0 + fabs(x)); }
__device__ __forceinline__ float drt_u_mish(float x) { return x * tanhf(drt_u_softplus(x)); }
__device__ __forceinline__ double drt_u_mish(double x) { return x * tanh(drt_u_softplus(x)); }
__device__ __forceinline__ float drt_u_hard_swish(float x) { return x * drt_sat01(x * (float)(1.0 / 6.0) + 0.5f); }
__device__ __forceinline__ double drt_u_hard_swish(double x) { return x * drt_sat01(x * (1.0 / 6.0) + 0.5); }
__device__ __forceinline__ float drt_u_not(float x) { return x == 0.0f ? 1.0f : 0.0f; }
__device__ __forceinline__ float drt_u_silu(float x) { return x * (1.0f / (1.0f + drt_fast_exp(-x))); }
__device__ __forceinline__ double drt_u_silu(double x) { return x * (1.0 / (1.0 + exp(-x))); }
__device__ __forceinline__ float drt_u_leaky_relu(float x, float al) { return x < 0.0f ? al * x : x; }
__device__ __forceinline__ double drt_u_leaky_relu(double x, double al) { return x < 0.0 ? al * x : x; }
__device__ __forceinline__ float drt_u_elu(float x, float al) { return x < 0.0f ? al * expm1f(x) : x; }
__device__ __forceinline__ double drt_u_elu(double x, double al) { return x < 0.0 ? al * expm1(x) : x; }
__device__ __forceinline__ float drt_u_celu(float x, float al) { return x > 0.0f ? x : al * expm1f(x / al); }
__device__ __forceinline__ double drt_u_celu(double x, double al) { return x > 0.0 ? x : al * expm1(x / al); }
__device__ __forceinline__ float drt_u_selu(float x, float al, float ga) {
  return x > 0.0f ? ga * x : ga * (al * drt_fast_exp(x) - al);
}
__device__ __forceinline__ double drt_u_selu(double x, double al, double ga) {
  return x > 0.0 ? ga * x : ga * (al * exp(x) - al);
}
__device__ __forceinline__ float drt_u_hard_sigmoid(float x, float al, float be) { return drt_sat01(al * x + be); }
__device__ __forceinline__ float drt_u_asinh(float x) { return asinhf(x); }
__device__ __forceinline__ double drt_u_asinh(double x) { return asinh(x); }
__device__ __forceinline__ float drt_u_acosh(float x) { return acoshf(x); }
__device__ __forceinline__ double drt_u_acosh(double x) { return acosh(x); }
__device__ __forceinline__ float drt_u_atanh(float x) { return atanhf(x); }
__device__ __forceinline__ double drt_u_atanh(double x) { return atanh(x); }
__device__ __forceinline__ float drt_u_swish(float x, float al) { return x / (1.0f + drt_fast_exp(-al * x)); }
__device__ __forceinline__ double drt_u_swish(double x, double al) { return x / (1.0 + exp(-al * x)); }
__device__ __forceinline__ float drt_u_thresholded_relu(float x, float al) { return x > al ? x : 0.0f; }
__device__ __forceinline__ double drt_u_thresholded_relu(double x, double al) { return x > al ? x : 0.0; }
/* Shrink(bias, lambd) */
__device__ __forceinline__ float drt_u_shrink(float x, float bi, float la) {
  return x < -la ? x + bi : (x > la ? x - bi : 0.0f);
}
__device__ __forceinline__ double drt_u_shrink(double x, double bi, double la) {
  return x < -la ? x + bi : (x > la ? x - bi : 0.0);
}
__device__ __forceinline__ double drt_u_hard_sigmoid(double x, double al, double be) { return drt_sat01(al * x + be); }

/* ---- binary (float, double) -------------------------------------------------------------- */
__device__ __forceinline__ float drt_b_max(float a, float b) { return (a > b || a != a) ? a : b; }
__device__ __forceinline__ double drt_b_max(double a, double b) { return (a > b || a != a) ? a : b; }
__device__ __forceinline__ float drt_b_min(float a, float b) { return (a < b || a != a) ? a : b; }
__device__ __forceinline__ double drt_b_min(double a, double b) { return (a < b || a != a) ? a : b; }
__device__ __forceinline__ float drt_b_prelu(float x, float s) { return x < 0.0f ? s * x : x; }
__device__ __forceinline__ double drt_b_prelu(double x, double s) { return x < 0.0 ? s * x : x; }
__device__ __forceinline__ float drt_b_fmod(float a, float b) { return fmodf(a, b); }
__device__ __forceinline__ double drt_b_fmod(double a, double b) { return fmod(a, b); }
/* numpy mod: the result has the divisor's sign */
__device__ __forceinline__ float drt_b_mod(float a, float b) {
  float r = fmodf(a, b);
  if (r != 0.0f) {
    if ((r < 0.0f) != (b < 0.0f)) r += b;
  } else {
    r = b < 0.0f ? -0.0f : 0.0f;
  }
  return r;
}
__device__ __forceinline__ double drt_b_mod(double a, double b) {
  double r = fmod(a, b);
  if (r != 0.0) {
    if ((r < 0.0) != (b < 0.0)) r += b;
  } else {
    r = b < 0.0 ? -0.0 : 0.0;
  }
  return r;
}
/* Pow as the CPU's row kernel: exact squares and cubes, powf otherwise. */
__device__ __forceinline__ float drt_b_pow(float a, float b) {
  return b == 2.0f ? a * a : (b == 1.0f ? a : (b == 3.0f ? a * a * a : powf(a, b)));
}
__device__ __forceinline__ double drt_b_pow(double a, double b) {
  return b == 2.0 ? a * a : (b == 1.0 ? a : (b == 3.0 ? a * a * a : pow(a, b)));
}
/* The drt.Elementwise POW instruction (runtime/cpu/ew_exec.c: plain powf). */
__device__ __forceinline__ float drt_ew_pow(float a, float b) { return powf(a, b); }

/* ---- integers ---------------------------------------------------------------------------- */
template <typename T> struct drt_signed_t { static constexpr bool value = false; };
template <> struct drt_signed_t<signed char> { static constexpr bool value = true; };
template <> struct drt_signed_t<short> { static constexpr bool value = true; };
template <> struct drt_signed_t<int> { static constexpr bool value = true; };
template <> struct drt_signed_t<long long> { static constexpr bool value = true; };

template <typename T> __device__ __forceinline__ T drt_i_add(T a, T b) {
  return (T)((unsigned long long)a + (unsigned long long)b);
}
template <typename T> __device__ __forceinline__ T drt_i_sub(T a, T b) {
  return (T)((unsigned long long)a - (unsigned long long)b);
}
template <typename T> __device__ __forceinline__ T drt_i_mul(T a, T b) {
  return (T)((unsigned long long)a * (unsigned long long)b);
}
template <typename T> __device__ __forceinline__ T drt_i_neg(T a) { return (T)(0ull - (unsigned long long)a); }
template <typename T> __device__ __forceinline__ T drt_i_abs(T a) {
  if constexpr (drt_signed_t<T>::value) return a < (T)0 ? drt_i_neg(a) : a;
  else return a;
}
template <typename T> __device__ __forceinline__ T drt_i_sign(T a) {
  if constexpr (drt_signed_t<T>::value) return (T)((a > (T)0) - (a < (T)0));
  else return (T)(a != (T)0);
}
template <typename T> __device__ __forceinline__ T drt_i_relu(T a) {
  if constexpr (drt_signed_t<T>::value) return a < (T)0 ? (T)0 : a;
  else return a;
}
/* C division (truncation toward zero), by zero 0, MIN / -1 wraps */
template <typename T> __device__ __forceinline__ T drt_i_div(T a, T b) {
  if (b == (T)0) return (T)0;
  if constexpr (drt_signed_t<T>::value) {
    if (b == (T)-1) return drt_i_neg(a);
  }
  return (T)(a / b);
}
template <typename T> __device__ __forceinline__ T drt_i_fmod(T a, T b) {
  if (b == (T)0) return (T)0;
  if constexpr (drt_signed_t<T>::value) {
    if (b == (T)-1) return (T)0;
  }
  return (T)(a % b);
}
template <typename T> __device__ __forceinline__ T drt_i_mod(T a, T b) {
  T r = drt_i_fmod(a, b);
  if constexpr (drt_signed_t<T>::value) {
    if (r != (T)0 && ((r < (T)0) != (b < (T)0))) r = (T)(r + b);
  }
  return r;
}
template <typename T> __device__ __forceinline__ T drt_i_max(T a, T b) { return a > b ? a : b; }
template <typename T> __device__ __forceinline__ T drt_i_min(T a, T b) { return a < b ? a : b; }
template <typename T> __device__ __forceinline__ T drt_i_prelu(T x, T s) {
  if constexpr (drt_signed_t<T>::value) return x < (T)0 ? drt_i_mul(s, x) : x;
  else return x;
}
/* integer power with wrapping; a negative exponent gives 0 unless the base is +-1 */
__device__ __forceinline__ long long drt_i_pow(long long a, long long b) {
  if (b < 0) return a == 1 ? 1 : (a == -1 ? ((b & 1) ? -1 : 1) : 0);
  unsigned long long r = 1, x = (unsigned long long)a;
  while (b) {
    if (b & 1) r *= x;
    x *= x;
    b >>= 1;
  }
  return (long long)r;
}
__device__ __forceinline__ long long drt_d2i64(double v) {
  if (v != v) return 0;
  if (v >= 9.2233720368547758e18) return 9223372036854775807ll;
  if (v <= -9.2233720368547758e18) return -9223372036854775807ll - 1;
  return (long long)v;
}

/* ---- Cast from floating point (ir/dtype.c drt_convert) ------------------------------------ */
__device__ __forceinline__ double drt_cvt_tc(double v, double lo, double hi) {
  double t = v != v ? 0.0 : trunc(v);
  return t < lo ? lo : (t > hi ? hi : t);
}
__device__ __forceinline__ signed char drt_cvt_i8(double v) { return (signed char)drt_cvt_tc(v, -128.0, 127.0); }
__device__ __forceinline__ short drt_cvt_i16(double v) { return (short)drt_cvt_tc(v, -32768.0, 32767.0); }
__device__ __forceinline__ int drt_cvt_i32(double v) { return (int)drt_cvt_tc(v, -2147483648.0, 2147483647.0); }
__device__ __forceinline__ long long drt_cvt_i64(double v) { return drt_d2i64(v != v ? 0.0 : trunc(v)); }
__device__ __forceinline__ unsigned char drt_cvt_u8(double v) { return (unsigned char)drt_cvt_tc(v, 0.0, 255.0); }
__device__ __forceinline__ unsigned short drt_cvt_u16(double v) { return (unsigned short)drt_cvt_tc(v, 0.0, 65535.0); }
__device__ __forceinline__ unsigned drt_cvt_u32(double v) { return (unsigned)drt_cvt_tc(v, 0.0, 4294967295.0); }
__device__ __forceinline__ unsigned long long drt_cvt_u64(double v) {
  double t = v != v ? 0.0 : trunc(v);
  return t <= 0.0 ? 0ull : (t >= 1.8446744073709552e19 ? 18446744073709551615ull : (unsigned long long)t);
}

/* ---- RotaryEmbedding (opset 23) ------------------------------------------------------------
 * One thread per output element. x/y are [B, S, H*D] (IS3D) or [B, H, S, D]; features f < R are
 * rotated in pairs (f, f + R/2), or (2i, 2i + 1) when INTER, by cache row p = pos[b, s] (pos
 * given), b * S + s (per-token caches) or s; the others are copied. A position outside the P
 * cache rows makes the rotated features NaN, so the bad input shows (the CPU backend reports it
 * as an error naming the position; a kernel cannot). */
template <typename TY, typename TX, typename TC, typename I, bool IS3D, bool INTER>
__device__ __forceinline__ void drt_rotary(TY *__restrict__ y, const TX *__restrict__ x, const TC *__restrict__ cosc,
                                           const TC *__restrict__ sinc, const long long *__restrict__ pos, I n, I S,
                                           I H, I D, I R, bool per_batch, long long P) {
  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < n; i += (I)gridDim.x * (I)blockDim.x) {
    I f = i % D, r = i / D, s, b;
    if (IS3D) {
      s = (r / H) % S;
      b = r / (H * S);
    } else {
      s = r % S;
      b = r / (S * H);
    }
    if (f >= R) {
      drt_st(y + i, drt_ld(x + i));
      continue;
    }
    I half = R / 2, pair = INTER ? f / 2 : (f < half ? f : f - half);
    bool first = INTER ? (f % 2) == 0 : f < half;
    I partner = INTER ? (first ? i + 1 : i - 1) : (first ? i + half : i - half);
    long long row = pos ? pos[b * S + s] : (per_batch ? (long long)(b * S + s) : (long long)s);
    if (row < 0 || row >= P) {
      drt_st(y + i, __int_as_float(0x7fc00000));
      continue;
    }
    float c = drt_ld(cosc + row * half + pair), sn = drt_ld(sinc + row * half + pair);
    float xs = drt_ld(x + i), xp = drt_ld(x + partner);
    drt_st(y + i, first ? c * xs - sn * xp : sn * xp + c * xs);
  }
}

/* ---- QuantizeLinear / DequantizeLinear -------------------------------------------------------
 * Element i, viewed as [outer, len, inner] at the quantization axis, uses scale index 0 (MODE
 * 0, per tensor), a (1, per axis) or (o * slen + a / block) * inner + in (2, blocked), as
 * ir/infer.h's drt_quant_geom. Quantize: rint(x / s) + zp saturated to [LO, HI] (NaN -> 0);
 * dequantize: (q - zp) * s. */
template <int MODE, typename I>
__device__ __forceinline__ I drt_quant_index(I i, I inner, I len, I slen, I block) {
  if (MODE == 0) return 0;
  I a = (i / inner) % len;
  if (MODE == 1) return a;
  return ((i / (inner * len)) * slen + a / block) * inner + i % inner;
}

/* ---- minifloats: float8 (E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ), float4 E2M1, float6 --------------
 * One byte per element holding the code (include/distilrt.h), the rules of ir/dtype_lowp.c:
 * round to nearest even; past the largest finite value SAT gives +-max, otherwise E5M2 gives
 * +-inf and the FN/FNUZ kinds NaN; float4/float6 (KIND 3) always saturate and write a zero
 * for NaN (-0 for +NaN); FNUZ has no -0. KIND: 0 IEEE-like (E5M2), 1 FN, 2 FNUZ, 3 finite. */
template <int EB, int MB, int BIAS, int KIND>
__device__ __forceinline__ float drt_mf_decode(unsigned char c) {
  const unsigned emask = (1u << EB) - 1, mmask = (1u << MB) - 1, sbit = 1u << (EB + MB);
  unsigned e = (c >> MB) & emask, m = c & mmask;
  /* NaN keeps its sign (FNUZ's 0x80 is -NaN), as on the host */
  if (KIND == 2 && c == 0x80) return __int_as_float((int)0xffc00000u);
  if (KIND == 1 && e == emask && m == mmask) return __int_as_float((c & sbit) ? (int)0xffc00000u : 0x7fc00000);
  if (KIND == 0 && e == emask)
    return __int_as_float(m ? ((c & sbit) ? (int)0xffc00000u : 0x7fc00000) : ((c & sbit) ? (int)0xff800000u : 0x7f800000));
  /* value = (e ? 2^MB + m : m) * 2^((e ? e : 1) - BIAS - MB), a power of two built from bits */
  float mag = (float)(e ? (1u << MB) + m : m) * __int_as_float((127 + (int)(e ? e : 1) - BIAS - MB) << 23);
  return (c & sbit) ? -mag : mag;
}

template <int EB, int MB, int BIAS, int KIND>
__device__ __forceinline__ unsigned char drt_mf_encode(float x, bool sat) {
  const unsigned emask = (1u << EB) - 1, mmask = (1u << MB) - 1, sbit = 1u << (EB + MB);
  const unsigned maxc = KIND == 0 ? (((emask - 1) << MB) | mmask) : KIND == 1 ? ((emask << MB) | (mmask - 1))
                                                                                : ((emask << MB) | mmask);
  unsigned u = __float_as_uint(x);
  bool neg = (u >> 31) != 0;
  unsigned s = neg ? sbit : 0u;
  unsigned a_bits = u & 0x7fffffffu;
  unsigned char nan_c = KIND == 2 ? 0x80 : KIND == 3 ? (unsigned char)(neg ? 0u : sbit) : (unsigned char)(s | 0x7f);
  unsigned char inf_c = (unsigned char)(s | (emask << MB));
  unsigned char max_c = (unsigned char)(s | maxc);
  unsigned char over_c = (sat || KIND == 3) ? max_c : KIND == 0 ? inf_c : (KIND == 2 ? (unsigned char)0x80 : nan_c);
  if (a_bits > 0x7f800000u) return nan_c;
  if (a_bits == 0x7f800000u) return over_c;
  if (a_bits == 0) return KIND == 2 ? (unsigned char)0 : (unsigned char)s;
  const int emin = 1 - BIAS;
  int e = (int)(a_bits >> 23) - 127; /* floor(log2 |x|) for normal x; float32 subnormals are far below emin */
  int qexp = (e > emin ? e : emin) - MB;
  float a = __uint_as_float(a_bits);
  float k = rintf(a * __int_as_float((127 - qexp) << 23)); /* exact scaling, ties to even */
  if (k == 0.0f) return KIND == 2 ? (unsigned char)0 : (unsigned char)s;
  unsigned ki = (unsigned)k, one = 1u << MB, code;
  if (ki < one) {
    code = ki;
  } else {
    unsigned ef = (unsigned)(qexp + MB + BIAS), m = ki - one;
    if (m == one) ef++, m = 0;
    code = (ef << MB) | m;
  }
  if (code > maxc || (KIND == 0 && ((code >> MB) & emask) == emask)) return over_c;
  return (unsigned char)(s | code);
}

template <int MODE, typename TQ, typename TX, typename TS, typename TZ, typename I>
__device__ __forceinline__ void drt_quantize(TQ *__restrict__ y, const TX *__restrict__ x, const TS *__restrict__ s,
                                             const TZ *__restrict__ zp, I n, I inner, I len, I slen, I block, float lo,
                                             float hi) {
  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < n; i += (I)gridDim.x * (I)blockDim.x) {
    I k = drt_quant_index<MODE>(i, inner, len, slen, block);
    float v = rintf(drt_ld(x + i) / drt_ld(s + k)) + (zp ? drt_to_f32(zp[k]) : 0.0f);
    v = v != v ? 0.0f : fminf(fmaxf(v, lo), hi);
    y[i] = (TQ)v;
  }
}

/* Minifloat y: y = encode(x / s (+ zp for float4/float6, ZP)), the code of drt_mf_encode. */
template <int MODE, int EB, int MB, int BIAS, int KIND, bool ZP, typename TX, typename TS, typename I>
__device__ __forceinline__ void drt_quantize_mf(unsigned char *__restrict__ y, const TX *__restrict__ x,
                                                const TS *__restrict__ s, const unsigned char *__restrict__ zp, I n,
                                                I inner, I len, I slen, I block, bool sat) {
  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < n; i += (I)gridDim.x * (I)blockDim.x) {
    I k = drt_quant_index<MODE>(i, inner, len, slen, block);
    float v = drt_ld(x + i) / drt_ld(s + k);
    if (ZP) v += drt_mf_decode<EB, MB, BIAS, KIND>(zp[k]);
    y[i] = drt_mf_encode<EB, MB, BIAS, KIND>(v, sat);
  }
}

/* Minifloat x: y = (decode(q) (- decode(zp), ZP)) * s. */
template <int MODE, int EB, int MB, int BIAS, int KIND, bool ZP, typename TY, typename TS, typename I>
__device__ __forceinline__ void drt_dequantize_mf(TY *__restrict__ y, const unsigned char *__restrict__ q,
                                                  const TS *__restrict__ s, const unsigned char *__restrict__ zp, I n,
                                                  I inner, I len, I slen, I block) {
  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < n; i += (I)gridDim.x * (I)blockDim.x) {
    I k = drt_quant_index<MODE>(i, inner, len, slen, block);
    float d = drt_mf_decode<EB, MB, BIAS, KIND>(q[i]);
    if (ZP) d -= drt_mf_decode<EB, MB, BIAS, KIND>(zp[k]);
    drt_st(y + i, d * drt_ld(s + k));
  }
}

template <int MODE, typename TY, typename TQ, typename TS, typename I>
__device__ __forceinline__ void drt_dequantize(TY *__restrict__ y, const TQ *__restrict__ q, const TS *__restrict__ s,
                                               const TQ *__restrict__ zp, I n, I inner, I len, I slen, I block) {
  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < n; i += (I)gridDim.x * (I)blockDim.x) {
    I k = drt_quant_index<MODE>(i, inner, len, slen, block);
    long long d = (long long)q[i] - (zp ? (long long)zp[k] : 0ll);
    drt_st(y + i, (float)d * drt_ld(s + k));
  }
}
