/* The parts of `drt compile` that make plans adaptable without recompiling (issue 8): the weight
 * provenance every plan records (for `drt refit`), `--weights-map CHECKPOINT.safetensors`, and
 * shape buckets (`--shapes`, `--add-bucket`). Kept apart from cmd_compile.c, which calls in at
 * four points: options, after loading, after the passes, before writing. */
#ifndef DRT_TOOLS_COMPILE_ADAPT_H
#define DRT_TOOLS_COMPILE_ADAPT_H

#include "frontend/onnx.h"
#include "passes/pipeline.h"
#include "passes/weight_trace.h"
#include "runtime/plan.h"
#include "tools/cli.h"

#define DRT_MAX_BUCKETS 16
#define DRT_MAX_BUCKET_INPUTS 8

typedef struct drt_compile_adapt {
  /* options */
  const char *weights_map;  /* --weights-map CHECKPOINT.safetensors */
  const char *add_bucket;   /* --add-bucket EXISTING.plan */
  int num_buckets;          /* --shapes: bucket count (0: none; set once every option is read) */
  int num_bucket_inputs;
  int bucket_counts[DRT_MAX_BUCKET_INPUTS]; /* shapes given per input (1: the same in every bucket) */
  drt_cli_shape buckets[DRT_MAX_BUCKETS][DRT_MAX_BUCKET_INPUTS];
  int verbose;
  /* state */
  drt_weight_trace *trace;
  drt_plan_provenance *prov;
  drt_weight_map *map;
  /* buckets 1.. (--shapes): graphs and provenance; bucket 0 is the main compile's graph */
  drt_graph *bucket_graphs[DRT_MAX_BUCKETS];
  drt_plan_provenance *bucket_prov[DRT_MAX_BUCKETS];
  drt_graph *graph_list[DRT_MAX_BUCKETS + 1];
  drt_plan_provenance *prov_list[DRT_MAX_BUCKETS + 1];
  /* --add-bucket: the existing plan, and the plan bytes that replace the main serialization */
  bool have_existing;
  drt_plan_contents existing;
  void *out_bytes;
  size_t out_size;
} drt_compile_adapt;

/* Handles --weights-map, --shapes and --add-bucket at argv[*i]. Returns 1 when the option was
 * consumed, 0 when it is not one of these, or a negative exit code (usage error printed). */
int drt_compile_adapt_option(drt_compile_adapt *a, int argc, char **argv, int *i);
/* Help text for the options above. */
const char *drt_compile_adapt_usage(void);

/* After loading the model, before binding shapes: snapshot for the provenance, and the shapes of
 * bucket 0 bound. */
drt_status drt_compile_adapt_loaded(drt_compile_adapt *a, drt_graph *g);
/* Before the pipeline: with shape buckets, hoisting is disabled (a plan's stages serve one
 * shape). */
drt_status drt_compile_adapt_pipeline(drt_compile_adapt *a, drt_pipeline_options *po);
/* After the pipeline of bucket 0, with the same context: compiles buckets 1.. (each from the
 * model file, with `shapes` bound as for bucket 0). */
drt_status drt_compile_adapt_buckets(drt_compile_adapt *a, const char *model, const drt_onnx_options *oo,
                                     const drt_cli_shape *shapes, int num_shapes, const drt_pass_ctx *pc,
                                     const drt_pipeline_options *po);
/* After the passes: records provenance (and the weight map) and the buckets in `c` for
 * serialization; with --add-bucket, serializes the existing plan plus this bucket into
 * a->out_bytes instead. `extra` are graphs split off g (hoisted stages). */
drt_status drt_compile_adapt_compiled(drt_compile_adapt *a, const drt_graph *g, const drt_graph *const *extra,
                                      size_t num_extra, drt_plan_contents *c);
/* Prints the shape buckets (and, with --add-bucket, the plan's) after a successful compile. */
void drt_compile_adapt_report(const drt_compile_adapt *a, const drt_graph *g);
void drt_compile_adapt_free(drt_compile_adapt *a);

#endif
