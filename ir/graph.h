/* The IR: a graph of values (dtype + static shape) and nodes (op + attributes), all owned by
 * one arena. Invariants after the frontend and every pass:
 *  - every value has exactly one producer (a node output) or is a graph input or a constant;
 *  - g->nodes is in topological order after drt_graph_topo_sort;
 *  - after shape inference every value has dtype != UNDEFINED and has_shape == true.
 * Nothing here knows about protobuf. Not thread-safe: one thread mutates a graph at a time;
 * a finished graph may be read from many threads. */
#ifndef DRT_IR_GRAPH_H
#define DRT_IR_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/arena.h"
#include "ir/dtype.h"
#include "ir/op.h"
#include "ir/status.h"

#define DRT_MAX_RANK 8

typedef struct drt_shape {
  int rank;
  int64_t dims[DRT_MAX_RANK];
} drt_shape;

/* Number of elements; -1 if a dim is negative or the product overflows int64. */
int64_t drt_shape_numel(const drt_shape *s);
bool drt_shape_equal(const drt_shape *a, const drt_shape *b);
/* "1x4x64x64" into buf; returns buf. */
const char *drt_shape_str(const drt_shape *s, char *buf, size_t n);

/* A non-owning view of a dense, C-order tensor. */
typedef struct drt_tensor {
  drt_dtype dtype;
  drt_shape shape;
  void *data;
} drt_tensor;

size_t drt_tensor_nbytes(const drt_tensor *t); /* 0 on overflow */

typedef enum drt_value_kind {
  DRT_VALUE_INTERMEDIATE = 0, /* produced by a node */
  DRT_VALUE_INPUT,            /* graph input, provided at run time */
  DRT_VALUE_CONST,            /* initializer or folded constant; data is set */
} drt_value_kind;

typedef struct drt_node drt_node;

typedef struct drt_value {
  uint32_t id;
  const char *name;
  drt_value_kind kind;
  drt_dtype dtype;
  bool has_shape;
  drt_shape shape;
  const char *dim_params[DRT_MAX_RANK]; /* graph inputs: symbolic dim names, NULL if fixed */
  void *data;                           /* DRT_VALUE_CONST: C-order data, arena-owned */
  size_t nbytes;
  drt_node *producer; /* DRT_VALUE_INTERMEDIATE only */
  int producer_output;
  bool is_graph_output;
  int64_t mem_offset; /* memory plan: byte offset in the activation arena, -1 if not planned */
  /* memory plan: a view shares the storage of view_of (an arena value that is itself no view)
   * from element view_offset on, in the same element order; its mem_offset is view_of's plus
   * view_offset elements of the dtype, and its producer runs no kernel (see
   * drt_node_is_view_only). A backend with another storage type for the dtype places it at
   * view_offset elements of that type. NULL when the value has storage of its own. */
  struct drt_value *view_of;
  int64_t view_offset;
  /* a sequence known at compile time (passes/control_flow.h lowers the sequence ops during
   * canonicalization): the tensors it holds, in order; such a value has no dtype or shape and
   * no node reads it once canonicalization is done */
  bool is_sequence;
  int seq_len;
  struct drt_value **seq;
} drt_value;

typedef enum drt_attr_type {
  DRT_ATTR_UNDEFINED = 0,
  DRT_ATTR_FLOAT = 1,
  DRT_ATTR_INT = 2,
  DRT_ATTR_STRING = 3,
  DRT_ATTR_TENSOR = 4,
  DRT_ATTR_GRAPH = 5,
  DRT_ATTR_FLOATS = 6,
  DRT_ATTR_INTS = 7,
  DRT_ATTR_STRINGS = 8,
} drt_attr_type;

typedef struct drt_attr {
  const char *name;
  drt_attr_type type;
  float f;
  int64_t i;
  const char *s; /* NUL-terminated; s_len excludes the NUL */
  size_t s_len;
  int64_t count; /* FLOATS / INTS / STRINGS */
  float *floats;
  int64_t *ints;
  const char **strings;
  drt_value *tensor; /* TENSOR: a detached constant value (not in g->values) */
  struct drt_graph *graph; /* GRAPH: a subgraph, owned by the enclosing graph (drt_graph.subgraphs) */
} drt_attr;

struct drt_node {
  uint32_t id;
  const char *name;
  drt_op op;
  int opset;           /* opset version of the node's domain in the source model */
  int num_inputs;
  drt_value **inputs;  /* an omitted optional input is NULL */
  int num_outputs;
  drt_value **outputs; /* never NULL; omitted optional outputs get anonymous values */
  int num_attrs;
  drt_attr *attrs;
  /* control flow (If/Loop/Scan): the last num_implicit_inputs inputs are values of the enclosing
   * scope that its subgraphs read; each subgraph's last num_implicit_inputs inputs stand for them */
  int num_implicit_inputs;
  bool dead; /* marked for removal by drt_graph_compact */
};

typedef struct drt_graph {
  drt_arena *arena;
  const char *name;
  int opset; /* default-domain opset */
  drt_value **values;
  size_t num_values, cap_values;
  drt_node **nodes;
  size_t num_nodes, cap_nodes;
  drt_value **inputs;
  size_t num_inputs, cap_inputs;
  drt_value **outputs;
  size_t num_outputs, cap_outputs;
  uint32_t next_id;
  /* name -> value index (open addressing), rebuilt lazily */
  int64_t *name_index;
  size_t name_index_cap;
  bool name_index_dirty;
  /* memory plan (passes/memory_plan.c): when mem_planned, every intermediate that is not a
   * graph output lives at value->mem_offset inside one arena of mem_arena_bytes */
  bool mem_planned;
  uint64_t mem_arena_bytes;
  /* subgraphs of GRAPH attributes, destroyed with this graph; a subgraph's last
   * num_implicit_inputs inputs are the enclosing-scope values it reads (see drt_node) */
  struct drt_graph **subgraphs;
  size_t num_subgraphs, cap_subgraphs;
  int num_implicit_inputs;
  /* passes/half_promote.h: the half type a float16/bfloat16 model was widened from (at load,
     before the weight trace), DRT_DTYPE_UNDEFINED otherwise */
  drt_dtype half_promoted_from;
} drt_graph;

drt_status drt_graph_create(drt_graph **out);
void drt_graph_destroy(drt_graph *g); /* NULL-safe; frees everything in the arena */

/* Creates a value. name NULL makes a unique anonymous name. shape may be NULL (unknown). */
drt_value *drt_graph_add_value(drt_graph *g, const char *name, drt_dtype dt, const drt_shape *shape);
/* Creates a constant; data (nbytes must equal numel*dtype size) is copied unless data is NULL,
 * in which case zeroed storage is allocated for the caller to fill. */
drt_status drt_graph_add_const(drt_graph *g, const char *name, drt_dtype dt, const drt_shape *shape,
                               const void *data, drt_value **out);
/* Turns an existing value into a constant with the given data (copied). */
drt_status drt_value_make_const(drt_graph *g, drt_value *v, const void *data, size_t nbytes);
/* Creates a node wired to existing values; the node is appended to g->nodes. Outputs get
 * producer set. Copies the input/output arrays. */
drt_status drt_graph_add_node(drt_graph *g, drt_op op, const char *name, drt_value *const *inputs,
                              int num_inputs, drt_value *const *outputs, int num_outputs, drt_node **out);
drt_status drt_graph_add_input(drt_graph *g, drt_value *v);
/* Hands a subgraph to g, which destroys it with itself. */
drt_status drt_graph_adopt_subgraph(drt_graph *g, drt_graph *sub);
drt_status drt_graph_add_output(drt_graph *g, drt_value *v);

drt_value *drt_graph_find_value(drt_graph *g, const char *name);

/* Attributes (values copied into the arena). */
drt_status drt_node_add_attr(drt_graph *g, drt_node *n, const drt_attr *a);
const drt_attr *drt_node_attr(const drt_node *n, const char *name);
int64_t drt_node_attr_int(const drt_node *n, const char *name, int64_t dflt);
float drt_node_attr_float(const drt_node *n, const char *name, float dflt);
const char *drt_node_attr_string(const drt_node *n, const char *name, const char *dflt);
/* INTS/FLOATS attribute data and count; NULL (count 0) when absent. */
const int64_t *drt_node_attr_ints(const drt_node *n, const char *name, int64_t *count);
const float *drt_node_attr_floats(const drt_node *n, const char *name, int64_t *count);

/* Number of inputs actually present (trailing NULLs excluded), and input i or NULL. */
static inline drt_value *drt_node_input(const drt_node *n, int i) {
  return i < n->num_inputs ? n->inputs[i] : NULL;
}
/* Memory plan: every output of n is a view (drt_value.view_of), so running n moves no data. */
bool drt_node_is_view_only(const drt_node *n);
/* "node 'name' (Op, opset N)" for messages. */
const char *drt_node_describe(const drt_node *n, char *buf, size_t size);

/* Reads an integer constant (int32/int64/any int) as int64s. count receives the element
 * count; fails if v is not a constant, not integral, or has more than max elements. */
drt_status drt_value_const_ints(const drt_value *v, int64_t *out, int64_t max, int64_t *count);
/* Reads a scalar (any numeric) constant as double. */
drt_status drt_value_const_scalar(const drt_value *v, double *out);
drt_tensor drt_value_tensor(const drt_value *v); /* view of a constant's data */

/* ---- graph-level operations ---- */
/* Replaces every use of old_v (node inputs, graph outputs) by new_v. */
void drt_graph_replace_uses(drt_graph *g, drt_value *old_v, drt_value *new_v);
/* Drops nodes marked dead and values no longer referenced. */
void drt_graph_compact(drt_graph *g);
/* Orders g->nodes topologically (stable for already sorted graphs). Fails on a cycle,
 * naming a node on it, or on a node input with no producer. */
drt_status drt_graph_topo_sort(drt_graph *g);
/* Removes nodes whose outputs do not reach a graph output; returns the number removed. */
size_t drt_graph_dce(drt_graph *g);
/* Number of node inputs + graph outputs referring to v. O(nodes). */
size_t drt_graph_count_uses(const drt_graph *g, const drt_value *v);

/* Verifier: dangling values, cycles, duplicate names, missing dtypes/shapes (require_shapes),
 * arity against the op table. */
drt_status drt_graph_verify(drt_graph *g, bool require_shapes);

/* Text printer (one line per node) through a write callback. */
typedef void (*drt_write_fn)(void *user, const char *text);
void drt_graph_print(const drt_graph *g, drt_write_fn write, void *user);
void drt_graph_print_dot(const drt_graph *g, drt_write_fn write, void *user);

#endif
