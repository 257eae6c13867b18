/* Plan contents in memory, and their (de)serialization to the .plan format
 * (runtime/plan_format.h). Parsing validates every offset, length, index and type, then
 * re-runs shape inference on the loaded graph and requires it to agree with the stored
 * shapes, so kernels never see a shape the plan merely claims. */
#ifndef DRT_RUNTIME_PLAN_H
#define DRT_RUNTIME_PLAN_H

#include "ir/graph.h"
#include "runtime/plan_format.h"

#define DRT_SCHED_SCALARS 9

typedef struct drt_plan_sched {
  char name[64];
  char params[512];
  uint32_t num_steps;
  double init_noise_sigma;
  double (*steps)[DRT_SCHED_SCALARS]; /* malloc'd */
} drt_plan_sched;

typedef struct drt_plan_contents {
  drt_graph *graph;      /* owned; constants point into file_data */
  uint32_t targets;      /* DRT_PLAN_TARGET_* */
  uint8_t *input_roles;  /* per graph input (malloc'd) */
  uint8_t *output_roles; /* per graph output */
  bool has_schedule;
  drt_plan_sched schedule;
  char cuda_archs[256]; /* TARGET section, e.g. "sm_80,sm_90" */
  /* filled by drt_plan_parse, for inspection */
  uint32_t format_version, writer_version, num_sections;
  struct {
    uint32_t type, crc;
    uint64_t offset, size;
  } sections[8];
  void *file_data;      /* owned buffer the constants point into (NULL when serializing) */
  size_t file_size;
} drt_plan_contents;

/* Serializes (graph must be canonical: static shapes, sorted). */
drt_status drt_plan_serialize(const drt_plan_contents *c, void **bytes, size_t *size);
/* Parses bytes; takes ownership of `bytes` (malloc'd) in every case. */
drt_status drt_plan_parse(void *bytes, size_t size, const char *label, drt_plan_contents *out);
void drt_plan_contents_free(drt_plan_contents *c);
const char *drt_plan_section_name(uint32_t type);

#endif
