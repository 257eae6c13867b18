/* CFG folding (pass "cfg-fold", passes/cfg_fold.c): one evaluation computes the conditional and
 * the unconditional prediction as a single batch-2B pass and returns the guided prediction. */
#ifndef DRT_PASSES_CFG_FOLD_H
#define DRT_PASSES_CFG_FOLD_H

#include "passes/pass.h"

/* Name of the guidance-scale input the pass adds (another name is chosen when the model already
 * has a value with this name; see drt_pass_results.cfg_scale_input). */
#define DRT_CFG_SCALE_INPUT "guidance_scale"

drt_status drt_pass_cfg_fold(drt_graph *g, const drt_pass_ctx *ctx, bool *changed);

#endif
