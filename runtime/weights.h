/* Plan weights that can change without recompiling: where every constant of a plan comes
 * from (provenance), which checkpoint parameter each model initializer is (weight map), and
 * the refit that recomputes a plan's WEIGHTS section from new initializers.
 *
 * Vocabulary
 *  - source: a constant of the model as loaded (an ONNX initializer or Constant node), named
 *    as in the model. Sources are what a new checkpoint replaces.
 *  - trace graph: the constant-folding steps that turned sources into plan constants (for
 *    example the Transpose of a weight, a Cast, a Reshape), kept as a small drt_graph whose
 *    inputs are sources and whose outputs are plan constants. Refit runs it on the CPU
 *    executor with the new sources, so folded constants are recomputed bit for bit as the
 *    compiler computed them.
 *  - derived constant: a constant a fusion pass created from a traced value without a node
 *    (a per-channel copy of a norm scale, say). Found by content at compile time and replayed
 *    as one of a few transforms (same bytes, cast, repeat, 2-D transpose). When several traced
 *    values have the content, all are recorded and must still agree after a refit.
 *  - baked source: a source whose value the optimized graph depends on without holding it
 *    (an identity scale a fusion dropped, a scale moved into an attribute). Only its hash is
 *    kept; a refit that changes it is refused ("recompile").
 *  - opaque constant: a pass-created constant found nowhere else; a refit keeps it.
 *  - weight map: for a source, the checkpoint parameter with the same content (recovered at
 *    compile time with `drt compile --weights-map CKPT.safetensors`), with the transform
 *    (identity or 2-D transpose) and the parameter's dtype and shape. Casts are implied by the
 *    dtypes.
 *
 * Thread-safety: the structures are immutable once built or parsed; functions that take
 * them const may run concurrently. */
#ifndef DRT_RUNTIME_WEIGHTS_H
#define DRT_RUNTIME_WEIGHTS_H

#include "ir/graph.h"
#include "runtime/bytes.h"
#include "runtime/safetensors.h"

#define DRT_PROV_MAX_CANDIDATES 8

/* 64-bit FNV-1a of bytes (for baked sources and fingerprints). */
uint64_t drt_weights_hash(const void *data, size_t n);
/* Fingerprint of a model's structure as loaded (before any pass): nodes (op, input and output
 * names, attribute names), graph inputs/outputs, constant names, dtypes and shapes. Two
 * exports of the same architecture agree; another architecture does not. */
uint64_t drt_graph_fingerprint(const drt_graph *g);

typedef enum drt_derive_kind {
  DRT_DERIVE_BYTES = 0,     /* same dtype and bytes, any shape of the same size */
  DRT_DERIVE_CAST = 1,      /* same element count, converted to the target dtype */
  DRT_DERIVE_REPEAT = 2,    /* every element repeated `factor` times */
  DRT_DERIVE_TRANSPOSE = 3, /* the candidate is [a, b]; the target holds its transpose */
} drt_derive_kind;

/* A plan constant: the value in a plan graph (compile time and after parsing) and its byte
 * offset in the WEIGHTS section (after parsing or serializing). */
typedef struct drt_prov_target {
  const drt_value *value; /* in the plan graph of the provenance's bucket */
  uint64_t offset;        /* UINT64_MAX: not a plan constant (a candidate only) */
} drt_prov_target;

typedef struct drt_prov_source {
  uint64_t hash;            /* of the compile-time bytes */
  const void *default_data; /* small sources: the compile-time bytes, used when a refit does not
                               provide the source; NULL otherwise */
  drt_prov_target target;   /* the plan constant the source is itself (offset UINT64_MAX: none) */
} drt_prov_source;

typedef struct drt_prov_baked {
  const char *name;
  drt_dtype dtype;
  drt_shape shape;
  uint64_t hash;
} drt_prov_baked;

typedef struct drt_prov_derived {
  drt_prov_target target;
  drt_dtype dtype;
  drt_shape shape;
  drt_derive_kind kind;
  uint32_t factor;                                /* DRT_DERIVE_REPEAT */
  uint32_t num_candidates;
  /* candidate k: trace graph output index, or with DRT_PROV_CAND_SOURCE set, source index */
  uint32_t candidates[DRT_PROV_MAX_CANDIDATES];
} drt_prov_derived;
#define DRT_PROV_CAND_SOURCE 0x80000000u

typedef struct drt_prov_opaque {
  drt_prov_target target;
  const char *name;
} drt_prov_opaque;

/* Provenance of the constants of one plan graph (one shape bucket). Everything is allocated
 * in trace->arena and freed with drt_provenance_destroy. */
typedef struct drt_plan_provenance {
  uint32_t bucket;
  uint64_t fingerprint;   /* drt_graph_fingerprint of the source model */
  drt_graph *trace;       /* inputs: sources; outputs: folded values (targets[k] for output k) */
  drt_prov_source *sources; /* per trace input */
  drt_prov_target *targets; /* per trace output: the plan constant it is (offset UINT64_MAX: a
                               candidate of a derived constant only) */
  size_t num_baked, num_derived, num_opaque;
  drt_prov_baked *baked;
  drt_prov_derived *derived;
  drt_prov_opaque *opaque;
} drt_plan_provenance;

void drt_provenance_destroy(drt_plan_provenance *p); /* NULL-safe */

/* A float16/bfloat16 source i that the plan holds only widened to float32 (a traced Cast, pass
 * half-promote): the trace output index of that Cast when its plan constant exists, else -1. */
int64_t drt_provenance_widened_target(const drt_plan_provenance *p, size_t i);
/* That constant (in `weights`, the WEIGHTS section) narrowed back to the source's type, which is
 * exact: malloc'd (the caller frees it), NULL when there is none or out of memory. */
void *drt_provenance_narrow_source(const drt_plan_provenance *p, size_t i, const uint8_t *weights);

/* Serialization (PROVENANCE section, layout in runtime/plan_format.h). `offset_of` gives the
 * WEIGHTS offset of a plan constant (UINT64_MAX if it is none). */
typedef uint64_t (*drt_offset_of_fn)(void *user, const drt_value *v);
void drt_provenance_write(drt_bytes_writer *w, const drt_plan_provenance *p, drt_offset_of_fn offset_of,
                          void *user);
/* Parses a PROVENANCE section. Every target offset must be a constant of the given size inside
 * weights[0, weights_size); with graphs (the bucket's graph and its stage graphs; may be none),
 * each target is also resolved to the constant value of those graphs at weights + offset. */
drt_status drt_provenance_read(const uint8_t *data, size_t size, const uint8_t *weights, uint64_t weights_size,
                               const drt_graph *const *graphs, size_t num_graphs, drt_plan_provenance **out);

/* ---- weight map ---------------------------------------------------------------------- */
typedef enum drt_wmap_transform {
  DRT_WMAP_SAME = 0,      /* source = parameter (same element order; cast by dtype) */
  DRT_WMAP_TRANSPOSE = 1, /* source [b, a] = transpose of parameter [a, b] (cast by dtype) */
} drt_wmap_transform;

typedef struct drt_wmap_entry {
  const char *source;  /* model constant name */
  const char *param;   /* checkpoint parameter name */
  drt_wmap_transform transform;
  drt_dtype source_dtype, param_dtype;
  drt_shape source_shape, param_shape;
  uint32_t num_alts;   /* other parameters with identical content (ambiguity) */
  const char **alts;
} drt_wmap_entry;

typedef struct drt_weight_map {
  drt_arena *arena;
  size_t count;
  drt_wmap_entry *entries; /* sorted by source name */
  size_t *by_param;        /* entry indices sorted by param name */
} drt_weight_map;

void drt_weight_map_destroy(drt_weight_map *m); /* NULL-safe */
const drt_wmap_entry *drt_weight_map_find_source(const drt_weight_map *m, const char *source);
const drt_wmap_entry *drt_weight_map_find_param(const drt_weight_map *m, const char *param);
void drt_weight_map_write(drt_bytes_writer *w, const drt_weight_map *m);
drt_status drt_weight_map_read(const uint8_t *data, size_t size, drt_weight_map **out);

/* A named tensor (a source with its data). */
typedef struct drt_named_tensor {
  const char *name;
  drt_tensor t;
} drt_named_tensor;

typedef struct drt_weight_map_stats {
  size_t matched, by_name, transposed, cast, ambiguous, unmatched_sources, unused_params;
} drt_weight_map_stats;

/* Recovers the checkpoint parameter of each source by content: equal after converting the
 * parameter to the source's dtype, in the same element order or transposed (2-D). A parameter
 * with the source's own name wins; other parameters with the same content are kept as
 * alternatives. Sources with fewer than 2 elements match by name only. */
drt_status drt_weight_map_build(const drt_named_tensor *sources, size_t num_sources, const drt_safetensors *ckpt,
                                drt_weight_map **out, drt_weight_map_stats *stats);

/* ---- refit ---------------------------------------------------------------------------- */
/* New values of sources, sorted by name (drt_source_table_*). Data is in the source's dtype
 * and layout, aligned. */
typedef struct drt_source_table {
  size_t count, cap;
  drt_named_tensor *items;
  void **owned; /* per item: malloc'd buffer to free, or NULL when borrowed */
  bool sorted;
} drt_source_table;

void drt_source_table_free(drt_source_table *t);
/* Adds a tensor; `own` transfers a malloc'd data buffer (freed with the table). The name is
 * copied. */
drt_status drt_source_table_add(drt_source_table *t, const char *name, const drt_tensor *x, bool own);
const drt_named_tensor *drt_source_table_find(drt_source_table *t, const char *name);
/* Every floating-point constant of a model graph as loaded (integer constants are structure,
 * not weights). Borrowed: the graph must outlive the table. */
drt_status drt_source_table_from_graph(drt_source_table *t, const drt_graph *g);

/* What a refit did; lines describe refusals (mismatches) or warnings. */
typedef struct drt_refit_report {
  size_t updated;      /* sources given a new value */
  size_t kept;         /* sources kept as compiled (not provided) */
  size_t recomputed;   /* folded plan constants recomputed by the trace graphs */
  size_t derived;      /* derived constants recomputed */
  size_t opaque;       /* pass-created constants of unknown origin, kept */
  size_t unused;       /* provided tensors that no source uses */
  size_t num_lines, cap_lines;
  char **lines;
} drt_refit_report;

void drt_refit_report_free(drt_refit_report *r);

/* Sources of a set of provenances, by name, with their compile-time dtype and shape (the union
 * over buckets; baked sources included). */
typedef struct drt_source_info {
  const char *name;
  drt_dtype dtype;
  drt_shape shape;
  bool baked;
} drt_source_info;
drt_status drt_provenance_sources(drt_plan_provenance *const *prov, uint32_t n, drt_source_info **out, size_t *count);

/* Converts checkpoint tensors into source values through the weight map (or, for sources the
 * map does not cover, by equal name). Refuses with the list of every missing parameter (unless
 * `partial`: then parameters absent from the checkpoint keep their values) and every dtype or
 * shape mismatch. Unused checkpoint tensors are counted in the report. */
drt_status drt_source_table_from_checkpoint(drt_source_table *t, const drt_source_info *sources, size_t num_sources,
                                            const drt_weight_map *map, const drt_safetensors *ckpt, bool partial,
                                            drt_refit_report *rep);

/* Rewrites `weights` (a copy of a plan's WEIGHTS section, `size` bytes) from the provenance of
 * every bucket and the new sources: provided sources are checked (dtype, shape; baked ones by
 * hash) and written, folded constants recomputed, derived constants replayed. A source that is
 * not provided keeps its current value: the plan constant it is, else its value in `current`
 * (the values of sources the WEIGHTS section does not hold, as left by an earlier refit; may be
 * NULL), else a byte copy the plan holds, else its compile-time default. Refuses with every
 * mismatch listed; `weights` is then unspecified. */
drt_status drt_refit_apply(drt_plan_provenance *const *prov, uint32_t num_prov, drt_source_table *src,
                           drt_source_table *current, uint8_t *weights, uint64_t size, drt_refit_report *rep);
/* After a refit: the values of the sources that have a compile-time default (the ones the WEIGHTS
 * section does not hold), as that refit left them: provided, else `current`, else unchanged.
 * `out` receives owned copies, keyed by source name; only sources whose value differs from the
 * compile-time default are listed. */
drt_status drt_refit_current_sources(drt_plan_provenance *const *prov, uint32_t num_prov, drt_source_table *src,
                                     drt_source_table *current, drt_source_table *out);

#endif
