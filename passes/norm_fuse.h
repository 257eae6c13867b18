/* Pass "norm-fuse": every normalization (LayerNorm, RMSNorm, GroupNorm; op or decomposed)
 * becomes one drt.Norm node with the following affine, adaLN modulation and activation folded
 * in (see passes/norm_fuse.c). Needs a canonicalized graph. */
#ifndef DRT_PASSES_NORM_FUSE_H
#define DRT_PASSES_NORM_FUSE_H

#include "passes/pass.h"

drt_status drt_pass_norm_fuse(drt_graph *g, const drt_pass_ctx *ctx, bool *changed);

#endif
