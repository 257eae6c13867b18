/* dtype helpers: sizes, names, classification, fp16/bf16 conversion. */
#ifndef DRT_IR_DTYPE_H
#define DRT_IR_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "distilrt.h"

/* Bit for a dtype in a uint32 dtype mask. */
#define DRT_DT_BIT(dt) (1u << (unsigned)(dt))
#define DRT_DT_FLOATS (DRT_DT_BIT(DRT_DTYPE_FLOAT32) | DRT_DT_BIT(DRT_DTYPE_FLOAT16) | \
                       DRT_DT_BIT(DRT_DTYPE_BFLOAT16) | DRT_DT_BIT(DRT_DTYPE_FLOAT64))
#define DRT_DT_SINTS (DRT_DT_BIT(DRT_DTYPE_INT8) | DRT_DT_BIT(DRT_DTYPE_INT16) | \
                      DRT_DT_BIT(DRT_DTYPE_INT32) | DRT_DT_BIT(DRT_DTYPE_INT64))
#define DRT_DT_UINTS (DRT_DT_BIT(DRT_DTYPE_UINT8) | DRT_DT_BIT(DRT_DTYPE_UINT16) | \
                      DRT_DT_BIT(DRT_DTYPE_UINT32) | DRT_DT_BIT(DRT_DTYPE_UINT64))
#define DRT_DT_INTS (DRT_DT_SINTS | DRT_DT_UINTS)
#define DRT_DT_NUMERIC (DRT_DT_FLOATS | DRT_DT_INTS)
#define DRT_DT_ALL (DRT_DT_NUMERIC | DRT_DT_BIT(DRT_DTYPE_BOOL))
/* The low-precision storage types (one byte per element in memory, see distilrt.h). They are
 * not in DRT_DT_ALL: only the ops in drt_op_takes_lowp (ir/op.c) accept them. */
#define DRT_DT_LOWP_INTS (DRT_DT_BIT(DRT_DTYPE_INT4) | DRT_DT_BIT(DRT_DTYPE_UINT4) | \
                          DRT_DT_BIT(DRT_DTYPE_INT2) | DRT_DT_BIT(DRT_DTYPE_UINT2))
#define DRT_DT_FLOAT8 (DRT_DT_BIT(DRT_DTYPE_FLOAT8E4M3FN) | DRT_DT_BIT(DRT_DTYPE_FLOAT8E4M3FNUZ) | \
                       DRT_DT_BIT(DRT_DTYPE_FLOAT8E5M2) | DRT_DT_BIT(DRT_DTYPE_FLOAT8E5M2FNUZ))
#define DRT_DT_LOWP_FLOATS (DRT_DT_FLOAT8 | DRT_DT_BIT(DRT_DTYPE_FLOAT8E8M0) | DRT_DT_BIT(DRT_DTYPE_FLOAT4E2M1) | \
                            DRT_DT_BIT(DRT_DTYPE_FLOAT6E2M3) | DRT_DT_BIT(DRT_DTYPE_FLOAT6E3M2))
#define DRT_DT_LOWP (DRT_DT_LOWP_INTS | DRT_DT_LOWP_FLOATS)
#define DRT_DT_ANY (DRT_DT_ALL | DRT_DT_LOWP)

bool drt_dtype_is_supported(drt_dtype dt); /* everything but STRING/UNDEFINED/unknown */
bool drt_dtype_is_float(drt_dtype dt);
bool drt_dtype_is_int(drt_dtype dt);      /* signed or unsigned integer, not bool */
bool drt_dtype_is_signed_int(drt_dtype dt);

float drt_f16_to_f32(uint16_t h);
uint16_t drt_f32_to_f16(float f); /* round to nearest even, handles inf/nan/subnormals */
static inline float drt_bf16_to_f32(uint16_t b) {
  uint32_t u = (uint32_t)b << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
uint16_t drt_f32_to_bf16(float f); /* round to nearest even, NaN preserved */

/* Reads element i of a buffer of dtype dt as double / int64 (any numeric dtype or bool). */
double drt_load_f64(drt_dtype dt, const void *data, size_t i);
int64_t drt_load_i64(drt_dtype dt, const void *data, size_t i);
/* Converts n elements between any two supported dtypes (ONNX Cast semantics, saturating
 * float->int is NOT applied: out-of-range float->int follows C truncation on the value
 * clamped to the target range). */
void drt_convert(drt_dtype dst_dt, void *dst, drt_dtype src_dt, const void *src, size_t n);

/* ---- low-precision types (ir/dtype_lowp.c; conversion rules there) ---- */
typedef enum { DRT_ROUND_UP = 0, DRT_ROUND_DOWN = 1, DRT_ROUND_NEAREST = 2 } drt_round_mode;
typedef struct drt_cast_opts {
  bool saturate;             /* Cast's `saturate` (default true): float8 overflow -> +-max */
  drt_round_mode round_mode; /* Cast's `round_mode` for float8e8m0 targets (default up) */
} drt_cast_opts;

bool drt_dtype_is_lowp(drt_dtype dt);     /* float8/e8m0/float4/float6, int4/uint4/int2/uint2 */
bool drt_dtype_is_lowp_int(drt_dtype dt); /* int4/uint4/int2/uint2 */
static inline bool drt_lowp_is_signed(drt_dtype dt) { return dt == DRT_DTYPE_INT4 || dt == DRT_DTYPE_INT2; }
int drt_dtype_bits(drt_dtype dt);         /* bits per element in an ONNX file (4, 2, 6 or 8 * size) */
double drt_lowp_to_f64(drt_dtype dt, uint8_t code);
uint8_t drt_lowp_from_f64(drt_dtype dt, double x, const drt_cast_opts *o); /* o NULL: defaults */
uint8_t drt_lowp_from_i64(drt_dtype dt, int64_t v, const drt_cast_opts *o);
/* The in-memory byte of a sub-byte element given its raw bits (masked; int4/int2 sign-extended). */
uint8_t drt_lowp_canonical(drt_dtype dt, uint8_t bits);
/* ONNX packing of n elements (sub-byte types LSB first; 8-bit types are a copy). */
size_t drt_lowp_packed_bytes(drt_dtype dt, size_t n);
void drt_lowp_unpack(drt_dtype dt, uint8_t *dst, const uint8_t *src, size_t n);
void drt_lowp_pack(drt_dtype dt, uint8_t *dst, const uint8_t *src, size_t n);
/* drt_convert with Cast's options; handles the low-precision types on either side. */
void drt_convert_ex(drt_dtype dst_dt, void *dst, drt_dtype src_dt, const void *src, size_t n,
                    const drt_cast_opts *o);

#endif
