/* Plan contents in memory, and their (de)serialization to the .plan format
 * (runtime/plan_format.h). Parsing validates every offset, length, index and type, then
 * re-runs shape inference on the loaded graph and requires it to agree with the stored
 * shapes, so kernels never see a shape the plan merely claims. */
#ifndef DRT_RUNTIME_PLAN_H
#define DRT_RUNTIME_PLAN_H

#include "ir/graph.h"
#include "runtime/bytes.h"
#include "runtime/plan_format.h"
#include "runtime/weights.h"

#define DRT_SCHED_SCALARS 9

typedef struct drt_plan_sched {
  char name[64];
  char params[512];
  uint32_t num_steps;
  double init_noise_sigma;
  double (*steps)[DRT_SCHED_SCALARS]; /* malloc'd */
} drt_plan_sched;

/* A graph of the STAGES section (hoisting; runtime/plan_format.h). */
#define DRT_PLAN_MAX_STAGES 2
typedef struct drt_plan_stage {
  uint8_t kind;         /* drt_plan_stage_kind */
  drt_graph *graph;     /* owned after parsing; borrowed when serializing */
  uint32_t table_steps; /* rows of the per-step tables (0: none) */
  double *table_t;      /* [table_steps]; owned after parsing, borrowed when serializing */
  const void **tables;  /* per graph output: table_steps rows of the output's bytes. After
                           parsing the array is owned and the rows point into file_data. */
} drt_plan_stage;

/* The GUIDANCE section (CFG folding). */
typedef struct drt_plan_cfg {
  double default_scale;
  char mode[16]; /* standard | rescale | cfgpp | apg */
  double phi, eta, norm_threshold, momentum;
} drt_plan_cfg;

/* The CUDA section (drt compile --target cuda; codegen/codegen.h, codegen/nvrtc.h): the program's
 * precision and source hash (the runtime renders the program again from the graphs and requires
 * the same hash) and one binary per architecture: a cubin ("sm_90") or PTX ("compute_90"). */
typedef struct drt_plan_cuda_image {
  char arch[16];      /* "sm_80" (cubin) or "compute_90" (PTX, JIT-compiled by the driver) */
  const void *data;   /* points into file_data after parsing; borrowed when serializing */
  uint64_t size;
} drt_plan_cuda_image;

#define DRT_PLAN_MAX_CUDA_IMAGES 16
typedef struct drt_plan_cuda {
  bool present;
  uint8_t precision;      /* drt_cuda_precision */
  uint64_t source_hash;   /* drt_cuda_program.source_hash */
  uint32_t nvrtc_version; /* major * 1000 + minor * 10 */
  char options[256];      /* NVRTC options other than the arch, space separated */
  uint32_t num_images;
  drt_plan_cuda_image images[DRT_PLAN_MAX_CUDA_IMAGES];
} drt_plan_cuda;

/* One entry of the STATS section. */
#define DRT_PLAN_MAX_STATS 32
typedef struct drt_plan_stat {
  char key[32];
  double value;
} drt_plan_stat;

typedef struct drt_plan_contents {
  drt_graph *graph;      /* owned; constants point into file_data */
  uint32_t targets;      /* DRT_PLAN_TARGET_* */
  uint8_t *input_roles;  /* per graph input (malloc'd) */
  uint8_t *output_roles; /* per graph output */
  bool has_schedule;
  drt_plan_sched schedule;
  char cuda_archs[256]; /* TARGET section, e.g. "sm_80,sm_90" */
  uint32_t num_stages;  /* STAGES section */
  drt_plan_stage stages[DRT_PLAN_MAX_STAGES];
  drt_plan_cuda cuda;   /* CUDA section */
  bool has_guidance;    /* GUIDANCE section */
  drt_plan_cfg guidance;
  uint32_t num_stats;   /* STATS section */
  drt_plan_stat stats[DRT_PLAN_MAX_STATS];
  /* filled by drt_plan_parse, for inspection */
  uint32_t format_version, writer_version, num_sections;
  struct {
    uint32_t type, crc;
    uint64_t offset, size;
  } sections[DRT_PLAN_MAX_SECTIONS];
  void *file_data;      /* owned buffer the constants point into (NULL when serializing) */
  size_t file_size;
  /* Shape buckets (drt compile --shapes): bucket 0 is `graph`, with the roles above; buckets
   * 1..num_buckets-1 are further graphs with the same inputs and outputs (names, dtypes, ranks,
   * roles) and other dims. Their constants share WEIGHTS with earlier buckets wherever name,
   * dtype, shape and bytes agree, so weights are stored once. After parsing num_buckets >= 1
   * and buckets[0] == graph; when serializing, 0 or 1 both mean "graph only". Extra bucket
   * graphs are owned after parsing, borrowed when serializing. */
  uint32_t num_buckets;
  drt_graph **buckets;
  /* Weight provenance per bucket (index = bucket, entries may be NULL) and the weight map:
   * owned after parsing, borrowed when serializing. */
  uint32_t num_provenance;
  drt_plan_provenance **provenance;
  drt_weight_map *weight_map;
  /* parse only: the WEIGHTS section inside file_data */
  const uint8_t *weights;
  uint64_t weights_size;
} drt_plan_contents;

/* Serializes (graph must be canonical: static shapes, sorted). */
drt_status drt_plan_serialize(const drt_plan_contents *c, void **bytes, size_t *size);
/* Parses bytes; takes ownership of `bytes` (malloc'd) in every case. */
drt_status drt_plan_parse(void *bytes, size_t size, const char *label, drt_plan_contents *out);
void drt_plan_contents_free(drt_plan_contents *c);
const char *drt_plan_section_name(uint32_t type);

/* The GRAPH encoding of any graph (also used for trace graphs and buckets): `place` stores a
 * constant's bytes wherever the caller keeps them and returns their 64-aligned offset. */
typedef uint64_t (*drt_place_const_fn)(void *user, const drt_value *v);
void drt_plan_write_graph(drt_bytes_writer *w, const drt_graph *g, drt_place_const_fn place, void *user);
/* Parses a GRAPH encoding whose constants lie in weights[0, weights_size) (zero-copy), checks
 * structure and re-infers every shape. */
drt_status drt_plan_read_graph(const uint8_t *data, size_t size, const uint8_t *weights, uint64_t weights_size,
                               drt_graph **out);
/* The same for a graph at the start of data (encodings without a length prefix, as in STAGES);
 * *used receives the bytes it took. */
drt_status drt_plan_read_graph_prefix(const uint8_t *data, size_t size, const uint8_t *weights,
                                      uint64_t weights_size, drt_graph **out, size_t *used);

/* The graphs of the plan's CUDA program, in the order the program is rendered (by drt compile
 * and again by the runtime; codegen/codegen.h): the main graph, every STAGES graph in order,
 * then shape buckets 1, 2, ... Stores at most max pointers and returns how many there are. */
#define DRT_PLAN_MAX_CUDA_GRAPHS (1 + DRT_PLAN_MAX_STAGES + DRT_PLAN_MAX_SECTIONS)
size_t drt_plan_cuda_graphs(const drt_plan_contents *c, const drt_graph **out, size_t max);

/* Value of a STATS key, or `dflt` when absent. */
double drt_plan_stat_get(const drt_plan_contents *c, const char *key, double dflt);

#endif
