#include "ir/dtype.h"

#include <math.h>

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
    case DRT_DTYPE_UNDEFINED: return "undefined";
  }
  return "unknown";
}

size_t drt_dtype_size(drt_dtype dt) {
  switch (dt) {
    case DRT_DTYPE_BOOL:
    case DRT_DTYPE_UINT8:
    case DRT_DTYPE_INT8: return 1;
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
    default: return 0;
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

void drt_convert(drt_dtype dd, void *dst, drt_dtype sd, const void *src, size_t n) {
  if (dd == sd) {
    memcpy(dst, src, n * drt_dtype_size(dd));
    return;
  }
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
