/* The ordered pass pipeline. Passes run in the order of the table in pipeline.c; any pass
 * can be disabled by name, the graph dumped after any pass, and with verbose on each pass
 * reports its node counts before/after and the ops it added or removed. */
#ifndef DRT_PASSES_PIPELINE_H
#define DRT_PASSES_PIPELINE_H

#include "passes/pass.h"

typedef struct drt_pipeline_options {
  const char *disabled[DRT_PASS_MAX_NAMED]; /* pass names to skip ("all-fusions" = every *-fuse pass) */
  int num_disabled;
  const char *dump_after; /* pass name, or NULL */
  drt_write_fn dump;      /* receives the graph text after `dump_after` */
  void *dump_user;
  bool verbose;           /* per-pass report through `report` */
  drt_write_fn report;
  void *report_user;
} drt_pipeline_options;

/* Number of passes and their table, in pipeline order. */
size_t drt_pipeline_num_passes(void);
const drt_pass *drt_pipeline_pass(size_t i);
/* Fails with NOT_FOUND for unknown names in opts->disabled / dump_after. */
drt_status drt_pipeline_check_names(const drt_pipeline_options *opts);
drt_status drt_pipeline_run(drt_graph *g, const drt_pass_ctx *ctx, const drt_pipeline_options *opts);

/* Whether `name` is disabled by o (--disable-pass NAME, or all-fusions for a *-fuse pass). */
bool drt_pipeline_disabled(const drt_pipeline_options *o, const char *name);

#endif
