/* Half-precision exports computed in float32 (pass "half-promote").
 *
 * A model exported in float16 or bfloat16 (`model.half()` before export, an ONNX float16
 * converter) has every activation and weight in the half type. Computed op by op in that type it
 * rounds every intermediate, and the fusion passes, which work on float32 values, leave it
 * unfused. This pass turns such a model into a float32 graph with the half type at its border:
 *
 *   x (f16 input) -> Cast(f32) -> ... float32 graph ... -> Cast(f16) -> y (f16 output)
 *
 * Weights go through Casts to float32 (folded by canonicalize; the weight trace replays them on a
 * refit), attributes naming the half type (Cast's `to`, `dtype`, `output_dtype`,
 * `output_datatype`, `softmax_precision`, ConstantOfShape's value) name float32, so the model's
 * own Casts to the half type become no-ops that canonicalize drops. The CUDA backend then
 * stores what the tensor cores read in the half type again (`--precision`, whose default for
 * such a model is the model's half type: drt_pass_results.half_type).
 *
 * It runs first, before canonicalize folds anything (a timestep embedding folded from a
 * specialized input is computed in float32 too). Models with control-flow subgraphs are left
 * alone. Which models: every floating-point graph input and output has the same half type H, and the
 * model's floating-point constants are mostly H (at least 4096 elements, at least 90 %). Single-op
 * models such as ONNX's node tests (no weights) keep their op-by-op half semantics. */
#ifndef DRT_PASSES_HALF_PROMOTE_H
#define DRT_PASSES_HALF_PROMOTE_H

#include "passes/pass.h"

/* Widens g when it is such a model (no-op otherwise, and when done before: sets
 * g->half_promoted_from). Tools call it right after loading, before drt_weight_trace_begin, so
 * that the weight Casts are part of the model the trace sees (a refit replays them). */
drt_status drt_half_promote(drt_graph *g);

/* The pipeline row: drt_half_promote when the tools did not run it (--disable-pass
 * half-promote skips both), and results->half_type. */
drt_status drt_pass_half_promote(drt_graph *g, const drt_pass_ctx *ctx, bool *changed);

#endif
