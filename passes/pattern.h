/* Small graph-matching helpers shared by the fusion passes: a use map (who consumes a value),
 * producer lookup by op, constant inspection and a dependence check that keeps rewrites
 * acyclic. A use map is a snapshot: rebuild it after the graph changes. Not thread-safe. */
#ifndef DRT_PASSES_PATTERN_H
#define DRT_PASSES_PATTERN_H

#include "ir/graph.h"

typedef struct drt_use_map {
  uint32_t num_ids;
  uint32_t *count;     /* value id -> uses by live nodes, plus one per graph output slot */
  drt_node **consumer; /* value id -> the last live consumer node (any one of them) */
  bool *is_output;     /* value id -> is a graph output */
} drt_use_map;

drt_status drt_use_map_build(const drt_graph *g, drt_use_map *m);
void drt_use_map_free(drt_use_map *m);

/* Uses of v (0 for values created after the map was built). */
uint32_t drt_use_count(const drt_use_map *m, const drt_value *v);
/* The only consumer of v when v has exactly one use and is not a graph output, else NULL. */
drt_node *drt_use_single(const drt_use_map *m, const drt_value *v);
/* Whether v is a graph output. */
bool drt_use_is_output(const drt_use_map *m, const drt_value *v);

/* The live node producing v when its op is `op`, else NULL. */
drt_node *drt_producer_is(const drt_value *v, drt_op op);
/* The live node producing v, or NULL (inputs, constants, dead producers). */
drt_node *drt_producer_of(const drt_value *v);

/* Whether v is a constant holding exactly one number (any rank); its value in *out. */
bool drt_const_scalar(const drt_value *v, double *out);
/* Whether v is a constant whose every element equals x (within tol, relative to max(1,|x|)). */
bool drt_const_all(const drt_value *v, double x, double tol);

/* Whether v depends on (is, or is computed from) any of the values in avoid[0..n). */
bool drt_depends_on(const drt_graph *g, const drt_value *v, drt_value *const *avoid, int n);

/* Index of the input of a two-input node that is not v (the first one equal to v is skipped);
 * -1 when v is not an input. */
int drt_other_input(const drt_node *n, const drt_value *v);

/* Whether the broadcast of a with b is exactly a's shape (b does not enlarge a). */
bool drt_broadcasts_into(const drt_shape *a, const drt_shape *b);

#endif
