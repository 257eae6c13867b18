/* Pass infrastructure: every pass has the same signature and a name, and runs from one
 * ordered pipeline (passes/pipeline.c). A pass mutates the graph, sets *changed, and logs
 * (drt_log, DRT_LOG_INFO) what it matched and why it declined a candidate. */
#ifndef DRT_PASSES_PASS_H
#define DRT_PASSES_PASS_H

#include "ir/graph.h"

#define DRT_PASS_MAX_NAMED 32

/* Counters that passes fill in (what `drt compile -v` and `drt inspect --json` report). */
typedef struct drt_pass_stats {
  int64_t fused_attention, fused_norm, fused_elementwise, fused_gemm_epilogue;
  bool cfg_folded;
  double hoisted_flops;      /* FLOPs per step moved out of the per-step graph */
  uint64_t peak_activation_bytes, total_intermediate_bytes; /* memory planning */
} drt_pass_stats;

typedef struct drt_pass_ctx {
  int num_threads;         /* for constant folding */
  uint64_t max_fold_bytes; /* largest constant a fold may create (0: default 256 MiB) */
  uint64_t max_memory;     /* memory budget (--max-memory): folding fails with OUT_OF_MEMORY
                              rather than grow the graph's constants past it (0: none) */
  bool verify;             /* run the verifier after each pass */
  /* CFG folding (pass "cfg-fold"; off unless cfg_enabled) */
  bool cfg_enabled;
  double cfg_scale;                      /* default guidance scale (a runtime input of the plan) */
  const char *cfg_mode;                  /* "standard", "rescale:PHI", "cfgpp", "apg:ETA,R,BETA" */
  int cfg_num_uncond;                    /* conditioning inputs given an unconditional value */
  const char *cfg_uncond_names[DRT_PASS_MAX_NAMED];
  const drt_tensor *cfg_uncond_values[DRT_PASS_MAX_NAMED]; /* NULL: zeros */
  const char *latent_input, *timestep_input;               /* roles, when known */
  /* step-invariant hoisting (pass "hoist") */
  int num_invariant;
  const char *invariant_inputs[DRT_PASS_MAX_NAMED];
  drt_pass_stats *stats; /* may be NULL */
} drt_pass_ctx;

typedef drt_status (*drt_pass_fn)(drt_graph *g, const drt_pass_ctx *ctx, bool *changed);

typedef struct drt_pass {
  const char *name;
  drt_pass_fn fn;
  const char *description;
} drt_pass;

#endif
