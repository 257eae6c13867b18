/* LoRA (low-rank adapters) on compiled plans: reading adapter files, mapping their modules onto
 * a plan's weights, and the two ways of applying them (include/distilrt.h):
 *
 *  merged     W' = W + sum_i s_i * scale_i * up_i @ down_i, computed in double from the base
 *             weights and rounded once, then replayed through the plan's provenance like a refit
 *             (every constant derived from W follows). Loading A, B, then A again gives exactly
 *             the weights of A alone.
 *  unmerged   the plan's constant C (W or W^T) is left alone; every GEMM / convolution reading it
 *             gets the low-rank product as an extra epilogue input of a fused drt.Gemm /
 *             drt.Conv (plain MatMul / Gemm / Conv nodes become fused ones):
 *                  t = x @ down^T          (Conv: t = conv(x, down), same strides / pads)
 *                  d = t @ (s*scale*up)^T  (Conv: d = conv1x1(t, s*scale*up))
 *                  y = epilogue(x @ C + d, ...)
 *             t and d live in a region added after the memory plan's arena. Several LoRAs on one
 *             weight are concatenated along the rank into one branch.
 *
 * Key layouts (module names may carry the prefixes unet., transformer., base_model.model.,
 * model.diffusion_model., diffusion_model., and ".processor" segments, all dropped):
 *   kohya       lora_unet_<module with _>.lora_down.weight / .lora_up.weight / .alpha
 *               (also lora_transformer_, lora_te*_: text encoders are reported unknown)
 *   PEFT        <module>.lora_A.weight / .lora_B.weight (also .lora_A.<adapter>.weight), and an
 *               optional <module>.alpha
 *   diffusers   <module>_lora.down.weight / _lora.up.weight, <module>.lora.down.weight /
 *               .lora.up.weight, optional alpha keys next to them
 * down is [r, in] (conv: [r, in, kh, kw]), up is [out, r] (conv: [out, r, 1, 1]); scale is
 * alpha / r when an alpha is present, else 1.
 *
 * Thread-safety: a drt_lora is immutable after loading. */
#ifndef DRT_RUNTIME_LORA_H
#define DRT_RUNTIME_LORA_H

#include "runtime/safetensors.h"
#include "runtime/weights.h"

typedef struct drt_lora_target {
  const char *param;   /* the weight's parameter name (through the weight map) or constant name */
  const char *source;  /* the model constant (provenance source) */
  drt_wmap_transform transform; /* source = transform(param) */
  drt_shape param_shape;        /* W: [out, in] or [out, in, kh, kw] */
  int rank;
  float scale;         /* alpha / rank, or 1 */
  float *down;         /* [rank, in * kh * kw] */
  float *up;           /* [out, rank] */
} drt_lora_target;

struct drt_lora {
  char *label;
  const void *plan;    /* the plan it was mapped onto (identity only) */
  size_t num_targets;
  drt_lora_target *targets;
  size_t num_unknown;
  char **unknown;      /* keys that map to nothing, in file order */
};

/* Maps the adapter in `st` onto a plan's sources (drt_provenance_sources) through its weight
 * map (may be NULL: parameters are then the constants' own names). Refuses shapes that do not
 * fit the weight they target. */
drt_status drt_lora_parse(const drt_safetensors *st, const drt_weight_map *map, const drt_source_info *sources,
                          size_t num_sources, struct drt_lora **out);
void drt_lora_free(struct drt_lora *l);

/* Merged mode: new values of the sources the LoRAs touch, in `t` (owned buffers), computed from
 * the current source values that `get_source` returns (source name -> data in its dtype and
 * layout, or NULL when the plan cannot recover it). */
typedef const void *(*drt_lora_source_fn)(void *user, const char *source, drt_dtype *dtype, drt_shape *shape);
drt_status drt_lora_merge_sources(const struct drt_lora *const *loras, const float *strengths, int n,
                                  drt_lora_source_fn get_source, void *user, drt_source_table *t);

/* Unmerged mode: adds the branches to the graphs of one bucket (its graph and its hoisted stage
 * graphs: copies the caller owns; constants are found by name through the provenance p). Every
 * adapted weight must be read by at least one GEMM / convolution of these graphs. */
drt_status drt_lora_rewrite(drt_graph *const *graphs, size_t num_graphs, const drt_plan_provenance *p,
                            const struct drt_lora *const *loras, const float *strengths, int n);

#endif
