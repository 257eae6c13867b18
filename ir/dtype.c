#include "ir/dtype.h"

#include <math.h>
#include <stdatomic.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define DRT_HAVE_X86 1
#else
#define DRT_HAVE_X86 0
#endif

const char *drt_dtype_name(drt_dtype dt) {
  switch (dt) {
    case DRT_DTYPE_FLOAT32: return "float32";
    case DRT_DTYPE_UINT8: return "uint8";
    case DRT_DTYPE_INT8: return "int8";
    case DRT_DTYPE_UINT16: return "uint16";
    case DRT_DTYPE_INT16: return "int16";
    case DRT_DTYPE_INT32: return "int32";
    case DRT_DTYPE_INT64: return "int64";
    case DRT_DTYPE_STRING: return "string";
    case DRT_DTYPE_BOOL: return "bool";
    case DRT_DTYPE_FLOAT16: return "float16";
    case DRT_DTYPE_FLOAT64: return "float64";
    case DRT_DTYPE_UINT32: return "uint32";
    case DRT_DTYPE_UINT64: return "uint64";
    case DRT_DTYPE_BFLOAT16: return "bfloat16";
    case DRT_DTYPE_FLOAT8E4M3FN: return "float8e4m3fn";
    case DRT_DTYPE_FLOAT8E4M3FNUZ: return "float8e4m3fnuz";
    case DRT_DTYPE_FLOAT8E5M2: return "float8e5m2";
    case DRT_DTYPE_FLOAT8E5M2FNUZ: return "float8e5m2fnuz";
    case DRT_DTYPE_UINT4: return "uint4";
    case DRT_DTYPE_INT4: return "int4";
    case DRT_DTYPE_FLOAT4E2M1: return "float4e2m1";
    case DRT_DTYPE_FLOAT8E8M0: return "float8e8m0";
    case DRT_DTYPE_UINT2: return "uint2";
    case DRT_DTYPE_INT2: return "int2";
    case DRT_DTYPE_FLOAT6E2M3: return "float6e2m3";
    case DRT_DTYPE_FLOAT6E3M2: return "float6e3m2";
    case DRT_DTYPE_UNDEFINED: return "undefined";
  }
  return "unknown";
}

size_t drt_dtype_size(drt_dtype dt) {
  switch (dt) {
    case DRT_DTYPE_BOOL:
    case DRT_DTYPE_UINT8:
    case DRT_DTYPE_INT8: return 1;
    case DRT_DTYPE_FLOAT8E4M3FN:
    case DRT_DTYPE_FLOAT8E4M3FNUZ:
    case DRT_DTYPE_FLOAT8E5M2:
    case DRT_DTYPE_FLOAT8E5M2FNUZ:
    case DRT_DTYPE_UINT4:
    case DRT_DTYPE_INT4:
    case DRT_DTYPE_FLOAT4E2M1:
    case DRT_DTYPE_FLOAT8E8M0:
    case DRT_DTYPE_UINT2:
    case DRT_DTYPE_INT2:
    case DRT_DTYPE_FLOAT6E2M3:
    case DRT_DTYPE_FLOAT6E3M2: return 1; /* one byte per element in memory (distilrt.h) */
    case DRT_DTYPE_UINT16:
    case DRT_DTYPE_INT16:
    case DRT_DTYPE_FLOAT16:
    case DRT_DTYPE_BFLOAT16: return 2;
    case DRT_DTYPE_FLOAT32:
    case DRT_DTYPE_INT32:
    case DRT_DTYPE_UINT32: return 4;
    case DRT_DTYPE_FLOAT64:
    case DRT_DTYPE_INT64:
    case DRT_DTYPE_UINT64: return 8;
    default: return 0;
  }
}

bool drt_dtype_is_supported(drt_dtype dt) { return dt != DRT_DTYPE_STRING && drt_dtype_size(dt) != 0; }
bool drt_dtype_is_float(drt_dtype dt) {
  return dt == DRT_DTYPE_FLOAT32 || dt == DRT_DTYPE_FLOAT16 || dt == DRT_DTYPE_BFLOAT16 ||
         dt == DRT_DTYPE_FLOAT64;
}
bool drt_dtype_is_signed_int(drt_dtype dt) {
  return dt == DRT_DTYPE_INT8 || dt == DRT_DTYPE_INT16 || dt == DRT_DTYPE_INT32 || dt == DRT_DTYPE_INT64;
}
bool drt_dtype_is_int(drt_dtype dt) {
  return drt_dtype_is_signed_int(dt) || dt == DRT_DTYPE_UINT8 || dt == DRT_DTYPE_UINT16 ||
         dt == DRT_DTYPE_UINT32 || dt == DRT_DTYPE_UINT64;
}

float drt_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else { /* subnormal: normalize */
      int e = -1;
      do {
        e++;
        mant <<= 1;
      } while (!(mant & 0x400));
      mant &= 0x3ff;
      u = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (mant << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  memcpy(&f, &u, 4);
  return f;
}

uint16_t drt_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) { /* inf or nan */
    return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 | ((absx >> 13) & 0x3ff) : 0));
  }
  if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520 -> inf */
  if (absx < 0x38800000u) {                                    /* subnormal or zero in f16 */
    if (absx < 0x33000000u) return (uint16_t)sign;             /* < 2^-25 rounds to 0 */
    uint32_t e = absx >> 23;
    uint32_t m = (absx & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - e; /* 14..24 */
    uint32_t r = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1))) r++;
    return (uint16_t)(sign | r);
  }
  uint32_t r = ((absx >> 13) - (112u << 10));
  uint32_t rem = absx & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
  return (uint16_t)(sign | r);
}

uint16_t drt_f32_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  u += 0x7fff + ((u >> 16) & 1);
  return (uint16_t)(u >> 16);
}

double drt_load_f64(drt_dtype dt, const void *p, size_t i) {
  switch (dt) {
    case DRT_DTYPE_FLOAT32: return ((const float *)p)[i];
    case DRT_DTYPE_FLOAT64: return ((const double *)p)[i];
    case DRT_DTYPE_FLOAT16: return drt_f16_to_f32(((const uint16_t *)p)[i]);
    case DRT_DTYPE_BFLOAT16: return drt_bf16_to_f32(((const uint16_t *)p)[i]);
    case DRT_DTYPE_INT8: return ((const int8_t *)p)[i];
    case DRT_DTYPE_INT16: return ((const int16_t *)p)[i];
    case DRT_DTYPE_INT32: return ((const int32_t *)p)[i];
    case DRT_DTYPE_INT64: return (double)((const int64_t *)p)[i];
    case DRT_DTYPE_UINT8:
    case DRT_DTYPE_BOOL: return ((const uint8_t *)p)[i];
    case DRT_DTYPE_UINT16: return ((const uint16_t *)p)[i];
    case DRT_DTYPE_UINT32: return ((const uint32_t *)p)[i];
    case DRT_DTYPE_UINT64: return (double)((const uint64_t *)p)[i];
    default: return drt_dtype_is_lowp(dt) ? drt_lowp_to_f64(dt, ((const uint8_t *)p)[i]) : 0;
  }
}

int64_t drt_load_i64(drt_dtype dt, const void *p, size_t i) {
  switch (dt) {
    case DRT_DTYPE_INT8: return ((const int8_t *)p)[i];
    case DRT_DTYPE_INT16: return ((const int16_t *)p)[i];
    case DRT_DTYPE_INT32: return ((const int32_t *)p)[i];
    case DRT_DTYPE_INT64: return ((const int64_t *)p)[i];
    case DRT_DTYPE_UINT8:
    case DRT_DTYPE_BOOL: return ((const uint8_t *)p)[i];
    case DRT_DTYPE_UINT16: return ((const uint16_t *)p)[i];
    case DRT_DTYPE_UINT32: return ((const uint32_t *)p)[i];
    case DRT_DTYPE_UINT64: return (int64_t)((const uint64_t *)p)[i];
    case DRT_DTYPE_INT4:
    case DRT_DTYPE_INT2: return ((const int8_t *)p)[i];
    case DRT_DTYPE_UINT4:
    case DRT_DTYPE_UINT2: return ((const uint8_t *)p)[i];
    default: {
      double d = drt_load_f64(dt, p, i);
      if (d != d) return 0;
      if (d >= 9.2233720368547758e18) return INT64_MAX;
      if (d <= -9.2233720368547758e18) return INT64_MIN;
      return (int64_t)d;
    }
  }
}

static double clampd(double v, double lo, double hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* ---- bulk float32 <-> float16 / bfloat16 (inputs and outputs of every fp16/bf16 GPU run) ----
 * The same bits as the element functions above, without their per-element dispatch: bf16 with a
 * branch-free loop the compiler vectorizes, fp16 with the F16C instructions where the CPU has
 * them (IEEE round to nearest even, NaN quieted keeping the top payload bits: what
 * drt_f32_to_f16 computes), else element by element. */
static bool has_f16c(void) {
#if DRT_HAVE_X86
  static atomic_int cached = -1; /* racing threads compute and store the same value */
  int v = atomic_load_explicit(&cached, memory_order_relaxed);
  if (v < 0) {
    /* CPUID leaf 1: ECX bit 29 F16C, 28 AVX, 27 OSXSAVE; XCR0 bits 1-2: the OS saves the YMM
       state (clang 14 knows no "f16c" for __builtin_cpu_supports, so ask the CPU directly) */
    unsigned a = 0, b = 0, c = 0, d = 0;
    v = 0;
    if (__get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 27)) && (c & (1u << 28)) && (c & (1u << 29))) {
      unsigned lo, hi;
      __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
      (void)hi;
      v = (lo & 6u) == 6u;
    }
    atomic_store_explicit(&cached, v, memory_order_relaxed);
  }
  return v != 0;
#else
  return false;
#endif
}

#if DRT_HAVE_X86
__attribute__((target("avx,f16c"))) static size_t f32_to_f16_f16c(uint16_t *d, const float *s, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128((__m128i *)(d + i), _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT));
  return i;
}
/* vcvtph2ps quiets signalling NaNs; drt_f16_to_f32 keeps their bits, so blocks with a NaN go
   element by element */
__attribute__((target("avx,f16c"))) static size_t f16_to_f32_f16c(float *d, const uint16_t *s, size_t n) {
  size_t i = 0;
  const __m128i exp = _mm_set1_epi16(0x7c00), man = _mm_set1_epi16(0x3ff), zero = _mm_setzero_si128();
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm_loadu_si128((const __m128i *)(s + i));
    __m128i nan = _mm_andnot_si128(_mm_cmpeq_epi16(_mm_and_si128(h, man), zero),
                                   _mm_cmpeq_epi16(_mm_and_si128(h, exp), exp));
    if (_mm_movemask_epi8(nan)) {
      for (size_t k = i; k < i + 8; k++) d[k] = drt_f16_to_f32(s[k]);
      continue;
    }
    _mm256_storeu_ps(d + i, _mm256_cvtph_ps(h));
  }
  return i;
}
#endif

static bool convert_fast(drt_dtype dd, void *dst, drt_dtype sd, const void *src, size_t n) {
  /* float32 bits through memcpy (no type punning through pointers); compilers still vectorize */
  if (sd == DRT_DTYPE_FLOAT32 && dd == DRT_DTYPE_BFLOAT16) {
    const unsigned char *s = src;
    uint16_t *d = dst;
    for (size_t i = 0; i < n; i++) {
      uint32_t u;
      memcpy(&u, s + 4 * i, 4);
      uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16, q = (u >> 16) | 0x40u;
      d[i] = (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? q : r);
    }
    return true;
  }
  if (sd == DRT_DTYPE_BFLOAT16 && dd == DRT_DTYPE_FLOAT32) {
    const uint16_t *s = src;
    unsigned char *d = dst;
    for (size_t i = 0; i < n; i++) {
      uint32_t u = (uint32_t)s[i] << 16;
      memcpy(d + 4 * i, &u, 4);
    }
    return true;
  }
  if (sd == DRT_DTYPE_FLOAT32 && dd == DRT_DTYPE_FLOAT16) {
    const float *s = src;
    uint16_t *d = dst;
    size_t i = 0;
#if DRT_HAVE_X86
    if (has_f16c()) i = f32_to_f16_f16c(d, s, n);
#endif
    for (; i < n; i++) d[i] = drt_f32_to_f16(s[i]);
    return true;
  }
  if (sd == DRT_DTYPE_FLOAT16 && dd == DRT_DTYPE_FLOAT32) {
    const uint16_t *s = src;
    float *d = dst;
    size_t i = 0;
#if DRT_HAVE_X86
    if (has_f16c()) i = f16_to_f32_f16c(d, s, n);
#endif
    for (; i < n; i++) d[i] = drt_f16_to_f32(s[i]);
    return true;
  }
  return false;
}

void drt_convert(drt_dtype dd, void *dst, drt_dtype sd, const void *src, size_t n) {
  if (drt_dtype_is_lowp(dd) || drt_dtype_is_lowp(sd)) {
    drt_convert_ex(dd, dst, sd, src, n, NULL);
    return;
  }
  if (dd == sd) {
    memcpy(dst, src, n * drt_dtype_size(dd));
    return;
  }
  if (convert_fast(dd, dst, sd, src, n)) return;
  bool src_int = drt_dtype_is_int(sd) || sd == DRT_DTYPE_BOOL;
  for (size_t i = 0; i < n; i++) {
    if (src_int && (drt_dtype_is_int(dd))) {
      int64_t v = drt_load_i64(sd, src, i);
      switch (dd) {
        case DRT_DTYPE_INT8: ((int8_t *)dst)[i] = (int8_t)v; break;
        case DRT_DTYPE_INT16: ((int16_t *)dst)[i] = (int16_t)v; break;
        case DRT_DTYPE_INT32: ((int32_t *)dst)[i] = (int32_t)v; break;
        case DRT_DTYPE_INT64: ((int64_t *)dst)[i] = v; break;
        case DRT_DTYPE_UINT8: ((uint8_t *)dst)[i] = (uint8_t)v; break;
        case DRT_DTYPE_UINT16: ((uint16_t *)dst)[i] = (uint16_t)v; break;
        case DRT_DTYPE_UINT32: ((uint32_t *)dst)[i] = (uint32_t)v; break;
        case DRT_DTYPE_UINT64: ((uint64_t *)dst)[i] = (uint64_t)v; break;
        default: break;
      }
      continue;
    }
    double v = drt_load_f64(sd, src, i);
    switch (dd) {
      case DRT_DTYPE_FLOAT32: ((float *)dst)[i] = (float)v; break;
      case DRT_DTYPE_FLOAT64: ((double *)dst)[i] = v; break;
      case DRT_DTYPE_FLOAT16:
        ((uint16_t *)dst)[i] = sd == DRT_DTYPE_FLOAT64 ? drt_f32_to_f16((float)v) : drt_f32_to_f16((float)v);
        break;
      case DRT_DTYPE_BFLOAT16: ((uint16_t *)dst)[i] = drt_f32_to_bf16((float)v); break;
      case DRT_DTYPE_BOOL: ((uint8_t *)dst)[i] = v != 0; break;
      default: {
        /* float -> int: truncate toward zero; NaN -> 0; clamp to the target range */
        double t = v != v ? 0 : trunc(v);
        switch (dd) {
          case DRT_DTYPE_INT8: ((int8_t *)dst)[i] = (int8_t)clampd(t, -128, 127); break;
          case DRT_DTYPE_INT16: ((int16_t *)dst)[i] = (int16_t)clampd(t, -32768, 32767); break;
          case DRT_DTYPE_INT32: ((int32_t *)dst)[i] = (int32_t)clampd(t, -2147483648.0, 2147483647.0); break;
          case DRT_DTYPE_INT64:
            ((int64_t *)dst)[i] = t >= 9.2233720368547758e18 ? INT64_MAX
                                  : t <= -9.2233720368547758e18 ? INT64_MIN : (int64_t)t;
            break;
          case DRT_DTYPE_UINT8: ((uint8_t *)dst)[i] = (uint8_t)clampd(t, 0, 255); break;
          case DRT_DTYPE_UINT16: ((uint16_t *)dst)[i] = (uint16_t)clampd(t, 0, 65535); break;
          case DRT_DTYPE_UINT32: ((uint32_t *)dst)[i] = (uint32_t)clampd(t, 0, 4294967295.0); break;
          case DRT_DTYPE_UINT64:
            ((uint64_t *)dst)[i] = t <= 0 ? 0 : t >= 1.8446744073709552e19 ? UINT64_MAX : (uint64_t)t;
            break;
          default: break;
        }
      }
    }
  }
}
