/* Pass infrastructure: every pass has the same signature and a name, and runs from one
 * ordered pipeline (passes/pipeline.c). */
#ifndef DRT_PASSES_PASS_H
#define DRT_PASSES_PASS_H

#include "ir/graph.h"

typedef struct drt_pass_ctx {
  int num_threads;         /* for constant folding */
  uint64_t max_fold_bytes; /* largest constant a fold may create (0: default 64 MiB) */
  bool verify;             /* run the verifier after each pass */
} drt_pass_ctx;

typedef drt_status (*drt_pass_fn)(drt_graph *g, const drt_pass_ctx *ctx, bool *changed);

typedef struct drt_pass {
  const char *name;
  drt_pass_fn fn;
  const char *description;
} drt_pass;

#endif
