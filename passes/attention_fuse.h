/* Pass "attention-fuse": every attention site becomes one drt.Attention node (see
 * passes/attention_fuse.c for the recognized forms). Needs a canonicalized graph. */
#ifndef DRT_PASSES_ATTENTION_FUSE_H
#define DRT_PASSES_ATTENTION_FUSE_H

#include "passes/pass.h"

drt_status drt_pass_attention_fuse(drt_graph *g, const drt_pass_ctx *ctx, bool *changed);

#endif
