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

/* A graph that runs before the per-step graph (pass "hoist"): the prologue runs once per
 * generation on the invariant inputs, the step stage once per step on the timestep alone.
 * Stage inputs are named after inputs of the main graph; stage outputs are named after the
 * main-graph inputs they feed (appended to g->inputs by the pass). */
typedef enum drt_stage_kind {
  DRT_STAGE_PROLOGUE = 1,
  DRT_STAGE_STEP = 2,
} drt_stage_kind;

typedef struct drt_pass_stage {
  drt_stage_kind kind;
  drt_graph *graph;     /* owned by the results (drt_pass_results_free) */
  int table_steps;      /* step stage with a fixed schedule: rows of the tables (0: none) */
  double *table_t;      /* [table_steps] timestep value of each row (malloc'd) */
  void **tables;        /* per graph output: table_steps x the output's bytes (malloc'd) */
  double flops;         /* MatMul/Gemm/Conv FLOPs of one run of the stage */
} drt_pass_stage;

#define DRT_PASS_MAX_STAGES 2
#define DRT_PASS_NAME_MAX 256

typedef struct drt_pass_results {
  /* cfg-fold: names of what it added ("" when absent) */
  char cfg_scale_input[DRT_PASS_NAME_MAX];   /* float32[1] guidance scale */
  char cfg_state_input[DRT_PASS_NAME_MAX];   /* apg: momentum state in */
  char cfg_state_output[DRT_PASS_NAME_MAX];  /* apg: momentum state out */
  char cfg_uncond_output[DRT_PASS_NAME_MAX]; /* cfgpp: unconditional prediction */
  /* half-promote: the model's half type when it was computed in float32 (DRT_DTYPE_UNDEFINED:
     not a half-precision model) */
  drt_dtype half_type;
  /* hoist */
  int num_stages;
  drt_pass_stage stages[DRT_PASS_MAX_STAGES]; /* their outputs name the main-graph inputs they feed */
} drt_pass_results;

/* Frees the stage graphs and tables; leaves *r zeroed. NULL-safe. */
void drt_pass_results_free(drt_pass_results *r);

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
  /* step-invariant hoisting (pass "hoist"; skipped unless `results` is set) */
  int num_invariant;                                /* 0: every input but latent, timestep and the */
  const char *invariant_inputs[DRT_PASS_MAX_NAMED]; /*    inputs cfg-fold adds */
  int sched_steps;             /* a schedule fixed at compile time: its step count and the value */
  const double *sched_t;       /* fed to the timestep input per step (0 / NULL: none) */
  drt_pass_stats *stats; /* may be NULL */
  drt_pass_results *results; /* may be NULL: what passes hand back besides the graph */
} drt_pass_ctx;

typedef drt_status (*drt_pass_fn)(drt_graph *g, const drt_pass_ctx *ctx, bool *changed);

typedef struct drt_pass {
  const char *name;
  drt_pass_fn fn;
  const char *description;
} drt_pass;

#endif
