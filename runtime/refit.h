/* Refit: new weights for a compiled plan without recompiling (`drt refit`, and the C API's
 * drt_plan_swap_weights). Only the WEIGHTS section changes (same size, same offsets, new
 * checksum): every graph, memory plan and bucket of the plan stays as compiled, so a refitted
 * plan runs exactly like a plan compiled from the new weights, and is as fast.
 *
 * A refit reads the plan through a light view (header, section table, WEIGHTS, PROVENANCE,
 * WEIGHTMAP, STAGES); the main graph is not parsed. Its cost is a copy of the weights, the
 * replay of the folded constants (runtime/weights.h) and one checksum. Plans with per-step
 * tables (hoisting with a compile-time schedule) also recompute the tables from the new
 * weights.
 *
 * Thread-safety: no shared state; the view borrows the plan bytes. */
#ifndef DRT_RUNTIME_REFIT_H
#define DRT_RUNTIME_REFIT_H

#include "runtime/safetensors.h"
#include "runtime/weights.h"

typedef struct drt_plan_view {
  const uint8_t *bytes;
  size_t size;
  const char *label;
  uint32_t num_sections;
  uint64_t table_offset;      /* section table */
  uint32_t weights_index;     /* index of the WEIGHTS entry in the table */
  const uint8_t *weights;     /* WEIGHTS section inside bytes */
  uint64_t weights_offset, weights_size;
  bool has_tables;            /* a STAGES section with per-step tables */
  uint32_t num_provenance;
  drt_plan_provenance **provenance; /* owned, per PROVENANCE section */
  drt_weight_map *weight_map;       /* owned, NULL without a WEIGHTMAP section */
} drt_plan_view;

/* Checks the header and section table, the checksums of the sections it reads, and parses
 * PROVENANCE and WEIGHTMAP. */
drt_status drt_plan_view_open(const void *bytes, size_t size, const char *label, drt_plan_view *out);
void drt_plan_view_close(drt_plan_view *v);

/* The plan's sources (union over buckets), see drt_provenance_sources. */
drt_status drt_plan_view_sources(const drt_plan_view *v, drt_source_info **out, size_t *count);

/* New plan bytes (malloc'd) with the weights recomputed from `src`. `fingerprint`, when
 * non-zero, must equal the fingerprint recorded at compile time (a refit from an ONNX export
 * checks that the model has the same structure). */
drt_status drt_plan_refit(const drt_plan_view *v, drt_source_table *src, uint64_t fingerprint, void **out,
                          size_t *out_size, drt_refit_report *rep);

/* The same from a safetensors checkpoint, through the plan's weight map (or equal names).
 * `partial`: parameters the checkpoint lacks keep their values instead of being refused. */
drt_status drt_plan_refit_checkpoint(const drt_plan_view *v, const drt_safetensors *ckpt, bool partial, void **out,
                                     size_t *out_size, drt_refit_report *rep);

/* New WEIGHTS bytes only (malloc'd, 64-aligned, v->weights_size bytes), for swapping the
 * weights of a loaded plan. Tables are not recomputed here (the caller refreshes them). */
drt_status drt_plan_refit_weights(const drt_plan_view *v, drt_source_table *src, uint64_t fingerprint,
                                  uint8_t **weights, drt_refit_report *rep);

/* A copy of graph g (same values, nodes, memory plan) whose constants inside
 * old_base[0, size) point to the same offsets of new_base instead. Attributes are shared with
 * g, which must outlive the clone. */
drt_status drt_graph_clone_rebased(const drt_graph *g, const uint8_t *old_base, uint64_t size, const uint8_t *new_base,
                                   drt_graph **out);
/* Runs a step stage graph (one timestep input) for each t[s] and writes its outputs to
 * rows[j] + s x (output j's bytes), as the compiler built the tables. */
drt_status drt_stage_tables_recompute(const drt_graph *sg, uint32_t steps, const double *t, void *const *rows);

#endif
