/* Shape and dtype inference. Each op family provides a table of (op, fn); the dispatcher
 * checks arity against the op table, calls the function and prefixes errors with the node,
 * op and opset. An infer function sets dtype and shape of every output of the node. It may
 * read constant inputs (drt_value_const_ints) for shape-like operands; when such an operand
 * is not a constant it fails with DRT_STATUS_UNSUPPORTED ("... must be a compile-time
 * constant"). Input values always have dtype and shape set when an infer function runs. */
#ifndef DRT_IR_INFER_H
#define DRT_IR_INFER_H

#include "ir/graph.h"

typedef drt_status (*drt_infer_fn)(drt_graph *g, drt_node *n);

typedef struct drt_infer_entry {
  drt_op op;
  drt_infer_fn fn;
} drt_infer_entry;

/* Family tables, each terminated by {DRT_OP_COUNT_, NULL}. */
extern const drt_infer_entry drt_infer_table_elementwise[]; /* ir/infer_elementwise.c */
extern const drt_infer_entry drt_infer_table_linalg[];      /* ir/infer_linalg.c */
extern const drt_infer_entry drt_infer_table_reduce[];      /* ir/infer_reduce.c */
extern const drt_infer_entry drt_infer_table_movement[];    /* ir/infer_movement.c */
extern const drt_infer_entry drt_infer_table_index[];       /* ir/infer_index.c */
extern const drt_infer_entry drt_infer_table_fused[];       /* ir/infer_fused.c (internal drt.* ops) */

drt_infer_fn drt_infer_find(drt_op op);
/* Runs inference for one node (arity check + dispatch + error context). */
drt_status drt_infer_node(drt_graph *g, drt_node *n);
/* The input/output counts of ops.def and the required inputs present (the first part of
 * drt_infer_node; control flow and sequence ops, lowered instead of inferred, check it alone). */
drt_status drt_infer_check_arity(const drt_node *n);

/* ---- helpers for infer functions ---- */
/* Sets output i's dtype and shape. */
void drt_infer_set(drt_node *n, int i, drt_dtype dt, const drt_shape *s);
/* Numpy-style multidirectional broadcast of shapes a and b into out. */
drt_status drt_broadcast_shapes(const drt_shape *a, const drt_shape *b, drt_shape *out);
/* Normalizes a possibly negative axis against rank (axis in [-rank, rank-1]). */
drt_status drt_normalize_axis(int64_t axis, int rank, int *out);
/* Requires input i to exist and have dtype in mask. */
drt_status drt_infer_check_dtype(const drt_node *n, int i, uint32_t mask);

/* QuantizeLinear / DequantizeLinear granularity (ir/infer_elementwise.c). Element e of x,
 * viewed as [outer, len, inner] at axis, uses scale (o * slen + a / block) * inner + i
 * (blocked), a (per axis) or 0 (per tensor). */
typedef enum drt_quant_mode { DRT_QUANT_TENSOR = 0, DRT_QUANT_AXIS = 1, DRT_QUANT_BLOCKED = 2 } drt_quant_mode;
typedef struct drt_quant_geom {
  drt_quant_mode mode;
  int axis;
  int64_t outer, len, inner, block, slen;
} drt_quant_geom;
drt_status drt_quant_layout(const drt_node *n, const drt_shape *x, const drt_shape *scale, drt_quant_geom *q);

/* Unique (ir/infer_index.c): the items of x (its elements when axis < 0, else its slices along
 * axis, compared element by element in C order) grouped by value; groups in value order
 * (sorted) or in order of first occurrence. len = number of items; first[u], counts[u] for
 * u < *num_unique, inverse[i] for every item (arrays of len entries, caller-allocated). */
drt_status drt_unique_compute(drt_dtype dt, const drt_shape *s, const void *data, int axis, bool sorted,
                              int64_t *num_unique, int64_t *first, int64_t *inverse, int64_t *counts);

/* DFT geometry (ir/infer_index.c): axis (normalized), transform length N, output length along
 * the axis (N, or N/2 + 1 for a onesided forward transform), real output (onesided inverse).
 * dft_length / axis are the node's optional inputs 1 and 2 (NULL or no data: absent; opset 17
 * takes axis from the attribute). */
typedef struct drt_dft_geom {
  int axis;
  int64_t length, out_len;
  bool inverse, onesided, real_out;
} drt_dft_geom;
drt_status drt_dft_resolve(const drt_node *n, const drt_shape *x, const drt_tensor *dft_length, const drt_tensor *axis,
                           drt_dft_geom *g);

/* NonMaxSuppression (ir/infer_index.c): boxes [B, N, 4], scores [B, C, N] and the optional
 * scalars (NULL: absent). *out (malloc'd, caller frees) gets *count (batch, class, box)
 * triples, per batch and class the boxes in descending score (ties: lower index) that pass
 * score_threshold and overlap no kept box by IoU > iou_threshold, at most max_output each. */
drt_status drt_nms_compute(const drt_tensor *boxes, const drt_tensor *scores, const drt_tensor *max_out,
                           const drt_tensor *iou, const drt_tensor *score_thr, bool center_box, int64_t **out,
                           int64_t *count);

#endif
