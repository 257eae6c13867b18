/* The low-precision storage types: float8 (E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ), float8 E8M0,
 * float4 E2M1, float6 (E2M3, E3M2) and the 4- and 2-bit integers.
 *
 * In memory one element is one byte (include/distilrt.h): a minifloat holds its code in the
 * low bits, int4/int2 a sign-extended int8, uint4/uint2 a uint8. ONNX files pack the sub-byte
 * types (drt_lowp_pack / drt_lowp_unpack).
 *
 * Conversions follow ONNX Cast (the reference implementation in onnx/reference and
 * ml_dtypes, which generated the backend test data):
 *  - to a minifloat: round to nearest, ties to even, from the value rounded to float32 (a
 *    float64 source rounds twice, as in ml_dtypes). Past the largest finite value, `saturate` (Cast's default)
 *    gives +-max; without it, E5M2 gives +-inf, the FN/FNUZ types NaN. float4/float6 have no
 *    inf or NaN and always saturate; NaN becomes a zero (-0 for +NaN, as ml_dtypes writes).
 *    The FNUZ types have no negative zero: -0 and negatives rounding to 0 give +0;
 *  - to E8M0: the exponent of the float32 value, rounded per round_mode (up, down, nearest:
 *    Cast-24's rules, which look at the float32 bits), NaN and inf give NaN (0xFF); the sign
 *    is dropped; `saturate` keeps 2^127 from rounding into NaN;
 *  - to int4/uint4/int2/uint2: truncate toward zero, then wrap modulo 2^bits (numpy's
 *    astype); NaN, inf and values outside int32 give 0. Integers wrap. */
#include <math.h>
#include <stdint.h>

#include "ir/dtype.h"

typedef enum { MF_IEEE, MF_FN, MF_FNUZ, MF_FINITE } mf_kind;

typedef struct {
  int ebits, mbits, bias;
  mf_kind kind;
} mf_fmt;

static bool mf_format(drt_dtype dt, mf_fmt *f) {
  switch (dt) {
    case DRT_DTYPE_FLOAT8E4M3FN: *f = (mf_fmt){4, 3, 7, MF_FN}; return true;
    case DRT_DTYPE_FLOAT8E4M3FNUZ: *f = (mf_fmt){4, 3, 8, MF_FNUZ}; return true;
    case DRT_DTYPE_FLOAT8E5M2: *f = (mf_fmt){5, 2, 15, MF_IEEE}; return true;
    case DRT_DTYPE_FLOAT8E5M2FNUZ: *f = (mf_fmt){5, 2, 16, MF_FNUZ}; return true;
    case DRT_DTYPE_FLOAT4E2M1: *f = (mf_fmt){2, 1, 1, MF_FINITE}; return true;
    case DRT_DTYPE_FLOAT6E2M3: *f = (mf_fmt){2, 3, 1, MF_FINITE}; return true;
    case DRT_DTYPE_FLOAT6E3M2: *f = (mf_fmt){3, 2, 3, MF_FINITE}; return true;
    default: return false;
  }
}

bool drt_dtype_is_lowp(drt_dtype dt) { return dt >= DRT_DTYPE_FLOAT8E4M3FN && dt <= DRT_DTYPE_FLOAT6E3M2; }

bool drt_dtype_is_lowp_int(drt_dtype dt) {
  return dt == DRT_DTYPE_INT4 || dt == DRT_DTYPE_UINT4 || dt == DRT_DTYPE_INT2 || dt == DRT_DTYPE_UINT2;
}

int drt_dtype_bits(drt_dtype dt) {
  switch (dt) {
    case DRT_DTYPE_INT4:
    case DRT_DTYPE_UINT4:
    case DRT_DTYPE_FLOAT4E2M1: return 4;
    case DRT_DTYPE_INT2:
    case DRT_DTYPE_UINT2: return 2;
    case DRT_DTYPE_FLOAT6E2M3:
    case DRT_DTYPE_FLOAT6E3M2: return 6;
    default: return (int)(8 * drt_dtype_size(dt));
  }
}

static uint8_t mf_sign_bit(const mf_fmt *f) { return (uint8_t)(1u << (f->ebits + f->mbits)); }

static uint8_t mf_max_code(const mf_fmt *f) {
  unsigned emask = (1u << f->ebits) - 1, mmask = (1u << f->mbits) - 1;
  switch (f->kind) {
    case MF_IEEE: return (uint8_t)(((emask - 1) << f->mbits) | mmask);
    case MF_FN: return (uint8_t)((emask << f->mbits) | (mmask - 1));
    default: return (uint8_t)((emask << f->mbits) | mmask);
  }
}

static uint8_t mf_nan_code(const mf_fmt *f, bool neg) {
  switch (f->kind) {
    case MF_FNUZ: return 0x80;
    case MF_FN: return (uint8_t)((neg ? 0x80 : 0) | 0x7f);
    case MF_IEEE: return (uint8_t)((neg ? 0x80 : 0) | 0x7f);
    default: return neg ? 0 : mf_sign_bit(f); /* no NaN: ml_dtypes writes -0 for +NaN, +0 for -NaN */
  }
}

static double mf_decode(const mf_fmt *f, uint8_t code) {
  unsigned emask = (1u << f->ebits) - 1, mmask = (1u << f->mbits) - 1;
  unsigned sign = code & mf_sign_bit(f), e = (code >> f->mbits) & emask, m = code & mmask;
  /* NaN keeps its sign, as ml_dtypes decodes it (FNUZ's one NaN, 0x80, is -NaN) */
  if (f->kind == MF_FNUZ && code == 0x80) return copysign(NAN, -1.0);
  if (f->kind == MF_FN && e == emask && m == mmask) return copysign(NAN, sign ? -1.0 : 1.0);
  if (f->kind == MF_IEEE && e == emask) return m ? copysign(NAN, sign ? -1.0 : 1.0) : (sign ? -INFINITY : INFINITY);
  double v = e ? ldexp(1.0 + (double)m / (double)(1u << f->mbits), (int)e - f->bias)
               : ldexp((double)m, 1 - f->bias - f->mbits);
  return sign ? -v : v;
}

/* Round half to even of y >= 0 (y < 2^53). */
static double round_half_even(double y) {
  double r = floor(y), d = y - r;
  if (d > 0.5 || (d == 0.5 && fmod(r, 2.0) != 0)) r += 1;
  return r;
}

static uint8_t mf_encode(const mf_fmt *f, double x, bool saturate) {
  bool neg = signbit(x) != 0;
  uint8_t sbit = neg ? mf_sign_bit(f) : 0;
  if (isnan(x)) return mf_nan_code(f, neg);
  double a = fabs(x);
  double maxv = mf_decode(f, mf_max_code(f));
  if (isinf(a)) {
    if (saturate || f->kind == MF_FINITE) return (uint8_t)(sbit | mf_max_code(f));
    if (f->kind == MF_IEEE) return (uint8_t)(sbit | (((1u << f->ebits) - 1) << f->mbits));
    return mf_nan_code(f, neg);
  }
  int emin = 1 - f->bias, e2 = 0;
  if (a == 0) return f->kind == MF_FNUZ ? 0 : sbit;
  frexp(a, &e2); /* a = m * 2^e2, m in [0.5, 1): floor(log2 a) = e2 - 1 */
  int qexp = (e2 - 1 > emin ? e2 - 1 : emin) - f->mbits;
  double k = round_half_even(ldexp(a, -qexp));
  if (ldexp(k, qexp) > maxv) {
    if (saturate || f->kind == MF_FINITE) return (uint8_t)(sbit | mf_max_code(f));
    if (f->kind == MF_IEEE) return (uint8_t)(sbit | (((1u << f->ebits) - 1) << f->mbits));
    return mf_nan_code(f, neg);
  }
  if (k == 0) return f->kind == MF_FNUZ ? 0 : sbit;
  unsigned ki = (unsigned)k, one = 1u << f->mbits, code;
  if (ki < one) {
    code = ki; /* subnormal (exponent field 0) */
  } else {
    unsigned e = (unsigned)(qexp + f->mbits + f->bias), m = ki - one;
    if (m == one) e++, m = 0; /* rounding carried into the next binade */
    code = (e << f->mbits) | m;
  }
  return (uint8_t)(sbit | code);
}

static uint8_t e8m0_encode(float x, bool saturate, drt_round_mode mode) {
  uint32_t u;
  memcpy(&u, &x, 4);
  uint32_t e = (u >> 23) & 0xff;
  if (e == 0xff) return 0xff;
  bool up = false;
  if (mode == DRT_ROUND_NEAREST) {
    bool g = (u & 0x400000u) != 0, r = (u & 0x200000u) != 0, s = (u & 0x1fffffu) != 0, lsb = e > 0;
    up = g && (r || s || lsb);
  } else if (mode == DRT_ROUND_UP) {
    up = (u & 0x7fffffu) != 0;
  }
  if (up && !(saturate && e == 0xfe)) e++;
  return (uint8_t)e;
}

static int64_t wrap_int(drt_dtype dt, int64_t v) {
  switch (dt) {
    case DRT_DTYPE_INT4: return (int64_t)((uint64_t)v & 15u) - ((uint64_t)v & 8u ? 16 : 0);
    case DRT_DTYPE_UINT4: return (int64_t)((uint64_t)v & 15u);
    case DRT_DTYPE_INT2: return (int64_t)((uint64_t)v & 3u) - ((uint64_t)v & 2u ? 4 : 0);
    case DRT_DTYPE_UINT2: return (int64_t)((uint64_t)v & 3u);
    default: return v;
  }
}

double drt_lowp_to_f64(drt_dtype dt, uint8_t code) {
  mf_fmt f;
  if (mf_format(dt, &f)) return mf_decode(&f, code);
  if (dt == DRT_DTYPE_FLOAT8E8M0) return code == 0xff ? NAN : ldexp(1.0, (int)code - 127);
  if (dt == DRT_DTYPE_INT4 || dt == DRT_DTYPE_INT2) return (int8_t)code;
  return code;
}

uint8_t drt_lowp_from_f64(drt_dtype dt, double x, const drt_cast_opts *o) {
  bool saturate = o ? o->saturate : true;
  mf_fmt f;
  /* through float32, as ml_dtypes converts a double (rounding twice) */
  if (mf_format(dt, &f)) return mf_encode(&f, (double)(float)x, saturate);
  if (dt == DRT_DTYPE_FLOAT8E8M0) return e8m0_encode((float)x, saturate, o ? o->round_mode : DRT_ROUND_UP);
  /* truncate, then wrap modulo 2^bits; NaN, inf and values outside int32 give 0 (ml_dtypes
     converts through a 32-bit integer, whose out-of-range result has no low bits) */
  double t = trunc(x);
  if (!(t >= -2147483648.0 && t < 2147483648.0)) return 0;
  return (uint8_t)wrap_int(dt, (int64_t)t);
}

uint8_t drt_lowp_from_i64(drt_dtype dt, int64_t v, const drt_cast_opts *o) {
  if (drt_dtype_is_lowp_int(dt)) return (uint8_t)wrap_int(dt, v);
  return drt_lowp_from_f64(dt, (double)v, o);
}

uint8_t drt_lowp_canonical(drt_dtype dt, uint8_t bits) {
  int b = drt_dtype_bits(dt);
  if (b >= 8) return bits;
  bits &= (uint8_t)((1u << b) - 1);
  if (dt == DRT_DTYPE_INT4 || dt == DRT_DTYPE_INT2) return (uint8_t)wrap_int(dt, bits);
  return bits;
}

size_t drt_lowp_packed_bytes(drt_dtype dt, size_t n) {
  size_t b = (size_t)drt_dtype_bits(dt);
  if (b < 8) return (n / 8) * b + ((n % 8) * b + 7) / 8; /* ceil(n * b / 8) without overflow */
  return n * drt_dtype_size(dt);
}

void drt_lowp_unpack(drt_dtype dt, uint8_t *dst, const uint8_t *src, size_t n) {
  int b = drt_dtype_bits(dt);
  if (b >= 8) {
    memcpy(dst, src, n);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    size_t bit = i * (size_t)b;
    unsigned w = src[bit / 8];
    if (bit % 8 + (size_t)b > 8) w |= (unsigned)src[bit / 8 + 1] << 8; /* 6-bit codes cross bytes */
    dst[i] = drt_lowp_canonical(dt, (uint8_t)(w >> (bit % 8)));
  }
}

void drt_lowp_pack(drt_dtype dt, uint8_t *dst, const uint8_t *src, size_t n) {
  int b = drt_dtype_bits(dt);
  if (b >= 8) {
    memcpy(dst, src, n);
    return;
  }
  memset(dst, 0, drt_lowp_packed_bytes(dt, n));
  unsigned mask = (1u << b) - 1;
  for (size_t i = 0; i < n; i++) {
    size_t bit = i * (size_t)b;
    unsigned v = (src[i] & mask) << (bit % 8);
    dst[bit / 8] |= (uint8_t)v;
    if (v >> 8) dst[bit / 8 + 1] |= (uint8_t)(v >> 8);
  }
}

void drt_convert_ex(drt_dtype dd, void *dst, drt_dtype sd, const void *src, size_t n, const drt_cast_opts *o) {
  if (!drt_dtype_is_lowp(dd) && !drt_dtype_is_lowp(sd)) {
    drt_convert(dd, dst, sd, src, n);
    return;
  }
  if (dd == sd) {
    memcpy(dst, src, n);
    return;
  }
  if (!drt_dtype_is_lowp(dd)) { /* from a low-precision type: exact through double / int64 */
    const uint8_t *s = src;
    for (size_t i = 0; i < n; i++) {
      size_t es = drt_dtype_size(dd);
      if (drt_dtype_is_lowp_int(sd)) {
        int64_t v = drt_lowp_is_signed(sd) ? (int8_t)s[i] : s[i];
        drt_convert(dd, (char *)dst + i * es, DRT_DTYPE_INT64, &v, 1);
      } else {
        double v = drt_lowp_to_f64(sd, s[i]);
        drt_convert(dd, (char *)dst + i * es, DRT_DTYPE_FLOAT64, &v, 1);
      }
    }
    return;
  }
  uint8_t *d = dst;
  bool src_int = drt_dtype_is_int(sd) || sd == DRT_DTYPE_BOOL || drt_dtype_is_lowp_int(sd);
  /* integers wrap into the 4- and 2-bit types; into a minifloat they convert by value (a uint64
     above INT64_MAX through double, not through int64) */
  bool wrap = src_int && drt_dtype_is_lowp_int(dd);
  for (size_t i = 0; i < n; i++) {
    if (wrap || (src_int && sd != DRT_DTYPE_UINT64)) d[i] = drt_lowp_from_i64(dd, drt_load_i64(sd, src, i), o);
    else d[i] = drt_lowp_from_f64(dd, drt_load_f64(sd, src, i), o);
  }
}
