/* Geometry shared by shape inference (ir/infer_linalg.c) and the CPU kernels of the linalg
 * family (runtime/cpu/linalg.c, conv.c, pool.c): sliding-window ops (Conv, ConvTranspose,
 * MaxPool, AveragePool) and the parsed form of an Einsum equation. Inference and kernels
 * call the same functions, so the output shape a kernel computes into is always the shape
 * inference assigned. Pure functions of the node attributes and input shapes; thread-safe. */
#ifndef DRT_IR_INFER_LINALG_H
#define DRT_IR_INFER_LINALG_H

#include "ir/graph.h"

#define DRT_WINDOW_MAX_SPATIAL (DRT_MAX_RANK - 2)

/* Resolved geometry of a Conv / ConvTranspose / pooling node. All spatial arrays hold nsp
 * entries. pad_begin/pad_end are the pads actually applied (auto_pad and output_shape
 * resolved). For Conv: out[i] = (in[i] + pad_begin[i] + pad_end[i] - dk) / stride[i] + 1
 * with dk = (kernel[i] - 1) * dilation[i] + 1. For ConvTranspose: input position x maps to
 * output position x * stride - pad_begin + k * dilation; positions outside [0, out) are
 * dropped. For pools, windows start at o * stride - pad_begin. */
typedef struct drt_window_geom {
  int nsp;                /* number of spatial dims */
  int64_t batch;          /* N */
  int64_t in_channels;    /* C of X */
  int64_t out_channels;   /* channels of Y (pools: = in_channels) */
  int64_t group;          /* conv group (pools: 1) */
  int64_t in[DRT_WINDOW_MAX_SPATIAL];
  int64_t out[DRT_WINDOW_MAX_SPATIAL];
  int64_t kernel[DRT_WINDOW_MAX_SPATIAL];
  int64_t stride[DRT_WINDOW_MAX_SPATIAL];
  int64_t dilation[DRT_WINDOW_MAX_SPATIAL];
  int64_t pad_begin[DRT_WINDOW_MAX_SPATIAL];
  int64_t pad_end[DRT_WINDOW_MAX_SPATIAL];
  bool ceil_mode;          /* pools */
  bool count_include_pad;  /* AveragePool */
} drt_window_geom;

/* Validates attributes and shapes of a Conv, ConvTranspose, MaxPool or AveragePool node and
 * resolves its geometry. x is the shape of input 0; w the shape of input 1 (Conv and
 * ConvTranspose, NULL for pools); b the shape of the optional bias (NULL when absent). */
drt_status drt_window_geom_compute(const drt_node *n, const drt_shape *x, const drt_shape *w, const drt_shape *b,
                                   drt_window_geom *out);
/* The output shape of the node (N, out_channels, out...). */
drt_shape drt_window_geom_out_shape(const drt_window_geom *g);
/* The spatial geometry normalized to 3 dims (D, H, W): leading dims of size 1 with kernel,
 * stride and dilation 1 and no padding, so 1-D and 2-D windows run through 3-D loops (the CPU
 * kernels and the CUDA emitters share it). False when g has more than 3 spatial dims. */
typedef struct drt_window3 {
  int64_t in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
} drt_window3;
bool drt_window_geom_to3(const drt_window_geom *g, drt_window3 *out);

/* ---- Einsum ---- */
#define DRT_EINSUM_MAX_OPERANDS 16
#define DRT_EINSUM_MAX_LABELS 64 /* 52 letters + up to DRT_MAX_RANK ellipsis dims */

/* A parsed equation. Labels are small integers: 0..51 for letters ('A'..'Z' then 'a'..'z',
 * i.e. ASCII order), 52.. for the dims covered by "..." (right-aligned across operands). */
typedef struct drt_einsum_spec {
  int num_operands;
  int num_labels;                        /* labels in use are < num_labels */
  int64_t label_size[DRT_EINSUM_MAX_LABELS]; /* broadcast size of each label */
  int op_rank[DRT_EINSUM_MAX_OPERANDS];
  int8_t op_labels[DRT_EINSUM_MAX_OPERANDS][DRT_MAX_RANK];
  int out_rank;
  int8_t out_labels[DRT_MAX_RANK];
} drt_einsum_spec;

/* Parses an Einsum equation against the operand shapes (explicit "->" or implicit output,
 * "...", repeated labels, size-1 broadcasting). */
drt_status drt_einsum_parse(const char *equation, int num_operands, const drt_shape *const *shapes,
                            drt_einsum_spec *out);

/* RNN / GRU / LSTM geometry and activations (runtime/cpu/rnn.c). */
typedef enum drt_rnn_act_kind {
  DRT_RNN_SIGMOID, DRT_RNN_TANH, DRT_RNN_RELU, DRT_RNN_AFFINE, DRT_RNN_LEAKY_RELU, DRT_RNN_THRESHOLDED_RELU,
  DRT_RNN_SCALED_TANH, DRT_RNN_HARD_SIGMOID, DRT_RNN_ELU, DRT_RNN_SOFTSIGN, DRT_RNN_SOFTPLUS
} drt_rnn_act_kind;
typedef struct drt_rnn_act {
  drt_rnn_act_kind kind;
  double alpha, beta;
} drt_rnn_act;
typedef struct drt_rnn_geom {
  int64_t seq, batch, input, hidden, gates, dirs;
  bool layout, reverse, lstm;
  double clip;             /* 0: none */
  drt_rnn_act acts[2][3]; /* per direction: f (, g (, h)) */
} drt_rnn_geom;
/* Validates an RNN/GRU/LSTM node; shapes[i] is input i's shape or NULL when absent. */
drt_status drt_rnn_resolve(const drt_node *n, const drt_shape *const shapes[8], drt_rnn_geom *g);

#endif
