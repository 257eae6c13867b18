/* Parameter resolution shared by reduce-family shape inference (ir/infer_reduce.c) and the
 * CPU kernels (runtime/cpu/reduce.c, norm.c, attention.c), so both agree exactly on axes,
 * keepdims and attention geometry. Pure functions of the node and shapes; thread-safe. */
#ifndef DRT_IR_INFER_REDUCE_H
#define DRT_IR_INFER_REDUCE_H

#include "ir/graph.h"

/* Resolves which axes a Reduce* node reduces. `x` is the data shape; `axes` is the optional
 * axes input (ReduceSum opset >= 13, the other Reduce* opset >= 18) viewed as a tensor, or
 * NULL when the input is absent; older opsets read the `axes` attribute. Empty axes reduce
 * everything unless noop_with_empty_axes is set (then nothing is reduced). Fills
 * reduced[0..rank) and the output shape (keepdims applied). Errors: out-of-range or
 * repeated axis, non-integer axes tensor. */
drt_status drt_reduce_resolve(const drt_node *n, const drt_shape *x, const drt_tensor *axes, bool *reduced,
                              drt_shape *out);

/* The normalized axis of a Softmax/LogSoftmax node (default 1 before opset 13, -1 after). */
drt_status drt_softmax_axis(const drt_node *n, int rank, int *axis);
/* Softmax/LogSoftmax/Hardmax extent: x viewed as [outer, len, inner], normalized over len (before
 * opset 13 the input is 2-D at axis: len spans dims axis.., inner = 1). */
drt_status drt_softmax_extent(const drt_node *n, const drt_shape *x, int64_t *outer, int64_t *len, int64_t *inner);

/* Resolved geometry of an Attention node (opset 23+). Inputs are viewed as
 * Q (batch, q_heads, q_seq, head) K (batch, kv_heads, kv_seq, head) V (..., v_head), either
 * directly (4-D) or from 3-D (batch, seq, heads*head) tensors. total_seq = past_seq + kv_seq. */
typedef struct drt_attention_geom {
  bool is_3d;
  int64_t batch, q_heads, kv_heads;
  int64_t q_seq, kv_seq, past_seq, total_seq;
  int64_t head, v_head;
  bool has_past, has_mask, has_nonpad;
  drt_shape mask; /* attn_mask shape when has_mask */
} drt_attention_geom;

/* Validates shapes/attributes of an Attention node. shapes[i] is the shape of input i or
 * NULL when that optional input is absent (num_inputs entries). */
drt_status drt_attention_resolve(const drt_node *n, const drt_shape *const *shapes, int num_inputs,
                                 drt_attention_geom *g);

/* RotaryEmbedding geometry (ir/infer_reduce.c; the CPU kernel in runtime/cpu/attention.c). */
typedef struct drt_rotary_geom {
  int64_t batch, heads, seq, head; /* head = head size D */
  int64_t rot;                     /* rotated features R (even, <= D) */
  int64_t positions;               /* cache rows when position_ids index them, else 0 */
  bool is_3d, interleaved, cache_per_batch;
} drt_rotary_geom;
drt_status drt_rotary_resolve(const drt_node *n, const drt_shape *x, const drt_shape *cache, const drt_shape *pos,
                              drt_rotary_geom *g);

/* LinearAttention geometry (opset 27): query [B, T, Hq*dk], key [B, T, Hkv*dk], value
 * [B, T, Hkv*dv], past_state [B, Hkv, dk, dv], decay [B, T, Hkv*dk or Hkv], beta [B, T, Hkv
 * or 1]; shapes[i] NULL for an absent input. */
typedef struct drt_linattn_geom {
  int64_t batch, seq, q_heads, kv_heads, dk, dv, decay_last, beta_last;
  float scale;
} drt_linattn_geom;
drt_status drt_linattn_resolve(const drt_node *n, const drt_shape *const shapes[6], drt_linattn_geom *g);

#endif
