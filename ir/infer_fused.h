/* Geometry of the internal fused ops that passes introduce (drt.Attention, drt.Norm; see the
 * comment block at the end of ir/ops.def), shared by shape inference (ir/infer_fused.c), the
 * CPU kernels (runtime/cpu/fused_attention.c, fused_norm.c) and the fusion passes
 * (passes/attention_fuse.c, norm_fuse.c), so that all of them agree on what the attributes
 * mean. Pure functions of node attributes and shapes; thread-safe.
 *
 * Attention layouts. Every drt.Attention operand is a dense C-order tensor that holds a
 * logical 4-D array indexed by the letters b (batch), h (head), s (sequence), d (feature).
 * A layout string lists the tensor's dims from outermost to innermost, separated by '_';
 * each dim is a group of letters merged outer-to-inner, or "1" for a unit dim:
 *
 *   "b_h_s_d"  [B, H, S, D]          "b_s_h_d"  [B, S, H, D]
 *   "b_s_hd"   [B, S, H*D]           "bh_s_d"   [B*H, S, D]  (bmm form)
 *   "b_hd_s"   [B, H*D, S]           "b_d_s_s"  [B, D, Y, X] (S = Y*X, UNet/VAE form)
 *
 * Rules: a merged group holds at most one letter besides h (its size is the dim divided by
 * the head count); a letter may span several dims only as consecutive one-letter groups; a
 * letter that does not appear has size 1 (h may only be absent when there is one head). */
#ifndef DRT_IR_INFER_FUSED_H
#define DRT_IR_INFER_FUSED_H

#include "ir/graph.h"

/* ---- attention layouts ---------------------------------------------------------------- */
enum { DRT_ATTN_B = 0, DRT_ATTN_H = 1, DRT_ATTN_S = 2, DRT_ATTN_D = 3 };

#define DRT_ATTN_LAYOUT_MAX 48 /* longest layout string, NUL included */

typedef struct drt_attn_layout {
  int rank;
  int len[DRT_MAX_RANK];          /* letters in each group; 0 marks a unit ("1") group */
  int8_t letter[DRT_MAX_RANK][4]; /* DRT_ATTN_B.. outer to inner */
} drt_attn_layout;

/* Parses and checks a layout string. */
drt_status drt_attn_layout_parse(const char *text, drt_attn_layout *out);
/* Checks the structural rules above on an already built layout. */
drt_status drt_attn_layout_check(const drt_attn_layout *l);
/* Writes the layout as text ("b_s_hd"); returns buf. */
const char *drt_attn_layout_format(const drt_attn_layout *l, char *buf, size_t n);

/* One operand resolved against its tensor shape: logical sizes and element strides, indexed
 * by DRT_ATTN_B.. (a letter that does not appear has size 1 and stride 0). */
typedef struct drt_attn_view {
  int64_t size[4];
  int64_t stride[4];
} drt_attn_view;

/* Resolves a layout against a tensor shape with `heads` heads. Errors name the mismatch. */
drt_status drt_attn_layout_view(const drt_attn_layout *l, const drt_shape *shape, int64_t heads,
                                drt_attn_view *out);
/* The tensor shape a layout gives to logical sizes size[4]; fails when a letter that does not
 * appear has size > 1. */
drt_status drt_attn_layout_shape(const drt_attn_layout *l, const int64_t size[4], drt_shape *out);

/* ---- drt.Attention ---------------------------------------------------------------------- */
typedef enum drt_attn_mask_mode {
  DRT_ATTN_MASK_ADD = 0,        /* scores += mask (numeric) */
  DRT_ATTN_MASK_KEEP_TRUE = 1,  /* scores = mask ? scores : mask_fill (bool) */
  DRT_ATTN_MASK_KEEP_FALSE = 2, /* scores = mask ? mask_fill : scores (bool) */
} drt_attn_mask_mode;

typedef struct drt_fused_attention {
  int64_t batch, heads, kv_heads, q_seq, kv_seq, head_dim, v_head_dim;
  drt_attn_view q, k, v, out; /* out: strides into the output tensor */
  drt_shape out_shape;
  float scale;
  bool causal;   /* key j is allowed for query i iff j <= i */
  bool has_mask; /* input 3 present; its shape broadcasts to (B, H, Sq, Skv) */
  drt_attn_mask_mode mask_mode;
  float mask_fill;
} drt_fused_attention;

/* Validates a drt.Attention node against its input shapes (shapes[3] NULL without a mask)
 * and resolves its geometry. */
drt_status drt_fused_attention_resolve(const drt_node *n, const drt_shape *const shapes[4], drt_fused_attention *out);

/* ---- drt.Norm --------------------------------------------------------------------------- */
typedef enum drt_norm_kind { DRT_NORM_LAYER = 0, DRT_NORM_RMS = 1, DRT_NORM_GROUP = 2 } drt_norm_kind;
typedef enum drt_norm_act {
  DRT_NORM_ACT_NONE = 0,
  DRT_NORM_ACT_SILU = 1,      /* x * sigmoid(x) */
  DRT_NORM_ACT_GELU = 2,      /* 0.5 x (1 + erf(x / sqrt 2)) */
  DRT_NORM_ACT_GELU_TANH = 3, /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
} drt_norm_act;

#define DRT_NORM_PARAMS 4 /* inputs 1..4: scale, bias, mod_scale, mod_shift */

typedef struct drt_fused_norm {
  drt_norm_kind kind;
  drt_norm_act act;
  int split;               /* params vary per plane over dims [0, split), per element after */
  int64_t planes, plane;   /* planes = prod(x[:split]), plane = prod(x[split:]) */
  int64_t planes_per_stat; /* statistics cover this many consecutive planes (group: C/G) */
  double eps;
  bool mod_one_plus; /* input 3 multiplies as (1 + mod_scale) */
} drt_fused_norm;

/* Name <-> enum for the string attributes ("layer"/"rms"/"group", "none"/"silu"/"gelu"/
 * "gelu_tanh"); the parsers return false for an unknown name. */
const char *drt_norm_kind_name(drt_norm_kind k);
const char *drt_norm_act_name(drt_norm_act a);
bool drt_norm_kind_parse(const char *s, drt_norm_kind *out);
bool drt_norm_act_parse(const char *s, drt_norm_act *out);

/* Validates a drt.Norm node: x is the data shape, params[i] the shape of input i+1 or NULL
 * when absent; every present parameter must broadcast to x without enlarging it. */
drt_status drt_fused_norm_resolve(const drt_node *n, const drt_shape *x, const drt_shape *const params[DRT_NORM_PARAMS],
                                  drt_fused_norm *out);

#endif
