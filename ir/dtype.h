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

#endif
