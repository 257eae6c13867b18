/* Strided copies shared by the movement and linalg emitters (codegen/emit_movement.c). Internal
 * to codegen/. */
#ifndef DRT_CODEGEN_EMIT_MOVEMENT_H
#define DRT_CODEGEN_EMIT_MOVEMENT_H

#include "codegen/cg.h"

#define DRT_CG_VIEW_MAX (2 * DRT_MAX_RANK)

/* Appends launches that copy a strided view: for every coordinate c of dims[0..rank),
 *   dst[sum c_i * dst_strides[i]] = src[sum c_i * src_strides[i]]
 * in elements of es bytes (1, 2, 4, 8 or 16) relative to the dst / src arguments (whose
 * offsets may point into a buffer; src strides may be 0 or negative). A copy of a contiguous
 * run becomes a COPY launch, a transposition the tiled shared-memory kernel, anything else
 * the generic index kernel. Nothing is appended for an empty view. */
drt_status drt_cg_emit_view_copy(drt_cg *cg, drt_cuda_arg dst, drt_cuda_arg src, size_t es, int rank,
                                 const int64_t *dims, const int64_t *src_strides, const int64_t *dst_strides);

/* C-order element strides of a shape. */
void drt_cg_dense_strides(const drt_shape *s, int64_t *st);
/* Element strides of `in` read broadcast (numpy rules) into the shape `out` (0 on broadcast
 * dims), one per dim of out. */
void drt_cg_broadcast_strides(const drt_shape *in, const drt_shape *out, int64_t *st);

#endif
