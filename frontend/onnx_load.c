/* ONNX ModelProto -> drt_graph.
 *
 * Steps: read the file, check the protobuf nesting depth (protobuf-c recurses once per level),
 * unpack with protobuf-c, then build the graph in four passes over the GraphProto:
 *   1. initializers become constants;
 *   2. graph inputs that are not initializers become inputs (dtype + declared shape);
 *   3. every node's outputs are created (Constant nodes become constants right here);
 *   4. node inputs are wired by name, so producers may appear after consumers in the file.
 * Graph outputs are then looked up, the nodes sorted topologically and the protobuf freed.
 * Names are resolved through a hash map local to the load (the graph's own index is rebuilt on
 * every insertion, which would make loading quadratic). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frontend/onnx_internal.h"

/* Size limits, checked before anything is built. The per-node ones are those of the plan
 * format (runtime/plan.c), so every graph that loads can also be written as a plan. */
#define DRT_ONNX_MAX_NODES (1 << 22)        /* nodes in the graph */
#define DRT_ONNX_MAX_NODE_INPUTS 4096
#define DRT_ONNX_MAX_NODE_OUTPUTS 256
#define DRT_ONNX_MAX_NODE_ATTRS 1024
#define DRT_ONNX_MAX_STRING ((size_t)1 << 20) /* a name or string attribute, in bytes */

void drt_onnx_options_init(drt_onnx_options *o) { o->max_bytes = 0; }

/* ---- name -> value map -------------------------------------------------------------- */
typedef struct name_map {
  size_t cap; /* power of two */
  size_t used;
  drt_value **slots;
} name_map;

static uint64_t name_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  while (*s) {
    h ^= (unsigned char)*s++;
    h *= 1099511628211ull;
  }
  return h;
}

static bool map_init(name_map *m, size_t expected) {
  size_t cap = 64;
  while (cap < expected * 2 && cap < ((size_t)1 << 40)) cap *= 2;
  m->slots = calloc(cap, sizeof(drt_value *));
  m->cap = m->slots ? cap : 0;
  m->used = 0;
  return m->slots != NULL;
}

static drt_value *map_get(const name_map *m, const char *name) {
  size_t h = (size_t)name_hash(name) & (m->cap - 1);
  while (m->slots[h]) {
    if (strcmp(m->slots[h]->name, name) == 0) return m->slots[h];
    h = (h + 1) & (m->cap - 1);
  }
  return NULL;
}

/* The map is sized for every name the graph defines; names a subgraph captures from the
 * enclosing scope come on top, so it doubles when half full. False when out of memory. */
static bool map_put(name_map *m, drt_value *v) {
  if (m->used * 2 >= m->cap) {
    name_map bigger;
    if (!map_init(&bigger, m->cap)) return false;
    for (size_t i = 0; i < m->cap; i++)
      if (m->slots[i]) {
        size_t h = (size_t)name_hash(m->slots[i]->name) & (bigger.cap - 1);
        while (bigger.slots[h]) h = (h + 1) & (bigger.cap - 1);
        bigger.slots[h] = m->slots[i];
      }
    bigger.used = m->used;
    free(m->slots);
    *m = bigger;
  }
  size_t h = (size_t)name_hash(v->name) & (m->cap - 1);
  while (m->slots[h]) h = (h + 1) & (m->cap - 1);
  m->slots[h] = v;
  m->used++;
  return true;
}

/* ---- helpers ------------------------------------------------------------------------ */
static const char *str_or_empty(const char *s) { return s ? s : ""; }

static bool is_default_domain(const char *d) { return !d || !d[0] || strcmp(d, "ai.onnx") == 0; }

/* "node 'name'" or "node #index" when the node has no name. */
static const char *node_label(const Onnx__NodeProto *nd, size_t index, char *buf, size_t n) {
  if (nd->name && nd->name[0]) snprintf(buf, n, "node '%s'", nd->name);
  else snprintf(buf, n, "node #%zu", index);
  return buf;
}

static const char *attr_type_name(int t) {
  switch (t) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: return "FLOAT";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: return "INT";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING: return "STRING";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: return "TENSOR";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH: return "GRAPH";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSOR: return "SPARSE_TENSOR";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTO: return "TYPE_PROTO";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS: return "FLOATS";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS: return "INTS";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS: return "STRINGS";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS: return "TENSORS";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS: return "GRAPHS";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSORS: return "SPARSE_TENSORS";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTOS: return "TYPE_PROTOS";
    default: return "UNDEFINED";
  }
}

/* The attribute's type; IR version 1 files leave `type` unset and only fill one field. */
static int attr_type(const Onnx__AttributeProto *a) {
  if (a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED) return (int)a->type;
  if (a->has_f) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
  if (a->has_i) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
  if (a->has_s) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
  if (a->t) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
  if (a->g) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH;
  if (a->sparse_tensor) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSOR;
  if (a->tp) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTO;
  if (a->n_floats) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
  if (a->n_ints) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
  if (a->n_strings) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS;
  if (a->n_tensors) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS;
  if (a->n_graphs) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS;
  if (a->n_sparse_tensors) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSORS;
  if (a->n_type_protos) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTOS;
  return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED;
}

/* ---- scopes: a subgraph reads values of the enclosing graphs by name ---------------------
 * A name a subgraph does not define is looked up in the enclosing scopes; when found there, the
 * subgraph gets a placeholder input for it (a capture), and the node owning the subgraph gets
 * the outer value as an implicit input (drt_node.num_implicit_inputs). A value captured through
 * several levels is a placeholder at each level. */
typedef struct node_caps { /* the enclosing-scope values the subgraphs of one node read (union) */
  drt_value **outer;
  size_t n, cap;
} node_caps;

typedef struct scope {
  struct scope *parent; /* NULL for the model's graph */
  name_map *map;
  drt_graph *g;
  node_caps *caps; /* of the node owning this subgraph */
  drt_value **ph_outer, **ph_local; /* placeholders made here: outer value -> local input */
  size_t n_ph, cap_ph;
} scope;

static drt_status caps_add(node_caps *c, drt_value *v) {
  for (size_t i = 0; i < c->n; i++)
    if (c->outer[i] == v) return DRT_OK;
  if (c->n == c->cap) {
    size_t cap = c->cap ? 2 * c->cap : 8;
    drt_value **p = realloc(c->outer, cap * sizeof *p);
    if (!p) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "subgraph captures");
    c->outer = p;
    c->cap = cap;
  }
  c->outer[c->n++] = v;
  return DRT_OK;
}

/* The value `name` in scope s or an enclosing one (*out NULL when undefined). */
static drt_status scope_lookup(scope *s, const char *name, drt_value **out) {
  *out = map_get(s->map, name);
  if (*out || !s->parent) return DRT_OK;
  drt_value *outer;
  DRT_RETURN_IF_ERROR(scope_lookup(s->parent, name, &outer));
  if (!outer) return DRT_OK;
  if (s->n_ph == s->cap_ph) {
    size_t cap = s->cap_ph ? 2 * s->cap_ph : 8;
    drt_value **a = realloc(s->ph_outer, cap * sizeof *a), **b = a ? realloc(s->ph_local, cap * sizeof *b) : NULL;
    if (a) s->ph_outer = a;
    if (!a || !b) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "subgraph captures");
    s->ph_local = b;
    s->cap_ph = cap;
  }
  drt_value *p = drt_graph_add_value(s->g, name, DRT_DTYPE_UNDEFINED, NULL);
  if (!p || !map_put(s->map, p)) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "subgraph capture '%s'", name);
  DRT_RETURN_IF_ERROR(drt_graph_add_input(s->g, p));
  DRT_RETURN_IF_ERROR(caps_add(s->caps, outer));
  s->ph_outer[s->n_ph] = outer;
  s->ph_local[s->n_ph++] = p;
  *out = p;
  return DRT_OK;
}

/* One GRAPH attribute of a node: the subgraph, its formal input count and its captures. */
typedef struct sub_info {
  drt_graph *g;
  size_t n_formal;
  drt_value **ph_outer, **ph_local;
  size_t n_ph;
} sub_info;

#define MAX_NODE_SUBGRAPHS 8

/* What converting a node's attributes needs to parse its subgraphs. */
typedef struct node_env {
  const Onnx__ModelProto *m;
  drt_op op;
  int opset;
  scope *sc; /* the scope the node is in */
  node_caps caps;
  sub_info subs[MAX_NODE_SUBGRAPHS];
  int n_subs;
} node_env;

static drt_status build_graph_proto(drt_onnx_ctx *ctx, const Onnx__ModelProto *m, const Onnx__GraphProto *gp,
                                    int opset, scope *parent, node_caps *caps, sub_info *info);

static drt_status parse_subgraph(drt_onnx_ctx *ctx, node_env *env, const Onnx__GraphProto *gp, const char *attr,
                                 drt_graph **out) {
  if (env->n_subs == MAX_NODE_SUBGRAPHS)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "more than %d subgraph attributes", MAX_NODE_SUBGRAPHS);
  drt_graph *sub;
  DRT_RETURN_IF_ERROR(drt_graph_create(&sub));
  drt_status st = drt_graph_adopt_subgraph(ctx->g, sub);
  if (st) {
    drt_graph_destroy(sub);
    return st;
  }
  sub->opset = env->opset;
  drt_onnx_ctx sctx = *ctx;
  sctx.g = sub;
  sub_info *info = &env->subs[env->n_subs++];
  memset(info, 0, sizeof *info);
  info->g = sub;
  st = build_graph_proto(&sctx, env->m, gp, env->opset, env->sc, &env->caps, info);
  ctx->total_bytes = sctx.total_bytes;
  if (st) return drt_status_annotate(st, "subgraph '%s'", attr);
  *out = sub;
  return DRT_OK;
}

/* After a node's attributes: its captures become implicit inputs, and each subgraph's inputs are
 * its formal inputs followed by one input per capture, in the node's order (a subgraph that
 * does not read a capture gets an unused input for it). */
static drt_status finish_node_captures(drt_graph *g, drt_node *n, node_env *env) {
  if (env->n_subs == 0) return DRT_OK;
  size_t nc = env->caps.n;
  if ((size_t)n->num_inputs + nc > DRT_ONNX_MAX_NODE_INPUTS)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%zu implicit inputs are too many", nc);
  drt_value **ins = drt_arena_alloc_array(g->arena, (size_t)n->num_inputs + nc + 1, sizeof(drt_value *));
  if (!ins) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "implicit inputs");
  if (n->num_inputs) memcpy(ins, n->inputs, (size_t)n->num_inputs * sizeof *ins);
  for (size_t j = 0; j < nc; j++) ins[n->num_inputs + j] = env->caps.outer[j];
  n->inputs = ins;
  n->num_inputs += (int)nc;
  n->num_implicit_inputs = (int)nc;
  for (int k = 0; k < env->n_subs; k++) {
    sub_info *si = &env->subs[k];
    drt_graph *sub = si->g;
    drt_value **order = malloc((si->n_formal + nc + 1) * sizeof *order);
    if (!order) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "implicit inputs");
    if (si->n_formal) memcpy(order, sub->inputs, si->n_formal * sizeof *order);
    for (size_t j = 0; j < nc; j++) {
      drt_value *local = NULL;
      for (size_t q = 0; q < si->n_ph && !local; q++)
        if (si->ph_outer[q] == env->caps.outer[j]) local = si->ph_local[q];
      if (!local) {
        local = drt_graph_add_value(sub, NULL, DRT_DTYPE_UNDEFINED, NULL);
        if (!local) {
          free(order);
          return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "implicit inputs");
        }
        local->kind = DRT_VALUE_INPUT;
      }
      order[si->n_formal + j] = local;
    }
    free(sub->inputs);
    sub->inputs = order;
    sub->num_inputs = sub->cap_inputs = si->n_formal + nc;
    sub->num_implicit_inputs = (int)nc;
  }
  return DRT_OK;
}

static void node_env_free(node_env *env) {
  free(env->caps.outer);
  for (int k = 0; k < env->n_subs; k++) {
    free(env->subs[k].ph_outer);
    free(env->subs[k].ph_local);
  }
  memset(env, 0, sizeof *env);
}

/* A value that is not in g->values (TENSOR attributes). */
static drt_status detached_const(drt_onnx_ctx *ctx, const Onnx__TensorProto *t, const char *name, const char *what,
                                 drt_value **out) {
  drt_graph *g = ctx->g;
  drt_dtype dt;
  drt_shape shape;
  void *data;
  size_t nbytes;
  DRT_RETURN_IF_ERROR(drt_onnx_tensor_decode(ctx, t, what, &dt, &shape, &data, &nbytes));
  drt_value *v = drt_arena_alloc(g->arena, sizeof(*v));
  if (!v) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "%s: allocating value", what);
  v->id = g->next_id++;
  v->name = drt_arena_strdup(g->arena, t->name && t->name[0] ? t->name : name);
  if (!v->name) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "%s: allocating value", what);
  v->kind = DRT_VALUE_CONST;
  v->dtype = dt;
  v->has_shape = true;
  v->shape = shape;
  v->data = data;
  v->nbytes = nbytes;
  *out = v;
  return DRT_OK;
}

/* Copies one attribute into arena-owned storage. */
static drt_status convert_attr(drt_onnx_ctx *ctx, const Onnx__AttributeProto *a, drt_attr *out, node_env *env) {
  drt_arena *ar = ctx->g->arena;
  const char *name = str_or_empty(a->name);
  if (!name[0]) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute without a name");
  if (a->ref_attr_name && a->ref_attr_name[0])
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                     "attribute '%s' refers to function attribute '%s' outside a function", name, a->ref_attr_name);
  memset(out, 0, sizeof(*out));
  out->name = drt_arena_strdup(ar, name);
  if (!out->name) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "attribute '%s'", name);
  int type = attr_type(a);
  switch (type) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT:
      out->type = DRT_ATTR_FLOAT;
      out->f = a->f;
      return DRT_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT:
      out->type = DRT_ATTR_INT;
      out->i = a->i;
      return DRT_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
      out->type = DRT_ATTR_STRING;
      out->s = drt_arena_strndup(ar, a->s.data ? (const char *)a->s.data : "", a->s.len);
      out->s_len = a->s.len;
      if (!out->s) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "attribute '%s'", name);
      return DRT_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: {
      out->type = DRT_ATTR_TENSOR;
      char what[160];
      snprintf(what, sizeof what, "attribute '%s'", name);
      if (!a->t) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s has type TENSOR but no tensor", what);
      return detached_const(ctx, a->t, name, what, &out->tensor);
    }
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
      out->type = DRT_ATTR_FLOATS;
      out->count = (int64_t)a->n_floats;
      if (a->n_floats) {
        out->floats = drt_arena_alloc_array(ar, a->n_floats, sizeof(float));
        if (!out->floats) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "attribute '%s'", name);
        memcpy(out->floats, a->floats, a->n_floats * sizeof(float));
      }
      return DRT_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
      out->type = DRT_ATTR_INTS;
      out->count = (int64_t)a->n_ints;
      if (a->n_ints) {
        out->ints = drt_arena_alloc_array(ar, a->n_ints, sizeof(int64_t));
        if (!out->ints) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "attribute '%s'", name);
        memcpy(out->ints, a->ints, a->n_ints * sizeof(int64_t));
      }
      return DRT_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS:
      out->type = DRT_ATTR_STRINGS;
      out->count = (int64_t)a->n_strings;
      if (a->n_strings) {
        out->strings = drt_arena_alloc_array(ar, a->n_strings, sizeof(char *));
        if (!out->strings) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "attribute '%s'", name);
        for (size_t i = 0; i < a->n_strings; i++) {
          const ProtobufCBinaryData *b = &a->strings[i];
          out->strings[i] = drt_arena_strndup(ar, b->data ? (const char *)b->data : "", b->len);
          if (!out->strings[i]) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "attribute '%s'", name);
        }
      }
      return DRT_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH:
      out->type = DRT_ATTR_GRAPH;
      if (!a->g) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute '%s' has type GRAPH but no graph", name);
      if (env->op != DRT_OP_IF && env->op != DRT_OP_LOOP && env->op != DRT_OP_SCAN && env->op != DRT_OP_FLEX_ATTENTION)
        return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "attribute '%s' is a subgraph, which %s does not take (only If, "
                         "Loop, Scan and FlexAttention do)", name, drt_op_name(env->op));
      return parse_subgraph(ctx, env, a->g, name, &out->graph);
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS:
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "attribute '%s' has type %s: lists of subgraphs are not supported",
                       name, attr_type_name(type));
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED:
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute '%s' has no type and no value", name);
    default:
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "attribute '%s' has type %s, which is not supported", name,
                       attr_type_name(type));
  }
}

static drt_status convert_attrs(drt_onnx_ctx *ctx, const Onnx__NodeProto *nd, drt_node *n, node_env *env) {
  if (nd->n_attribute == 0) return DRT_OK;
  if (nd->n_attribute > DRT_ONNX_MAX_NODE_ATTRS)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%zu attributes, at most %d are supported", nd->n_attribute,
                     DRT_ONNX_MAX_NODE_ATTRS);
  drt_attr *attrs = drt_arena_alloc_array(ctx->g->arena, nd->n_attribute, sizeof(drt_attr));
  if (!attrs) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "allocating attributes");
  for (size_t i = 0; i < nd->n_attribute; i++) {
    DRT_RETURN_IF_ERROR(convert_attr(ctx, nd->attribute[i], &attrs[i], env));
    for (size_t j = 0; j < i; j++)
      if (strcmp(attrs[j].name, attrs[i].name) == 0)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute '%s' appears twice", attrs[i].name);
  }
  n->attrs = attrs;
  n->num_attrs = (int)nd->n_attribute;
  return finish_node_captures(ctx->g, n, env);
}

/* ---- Constant nodes ------------------------------------------------------------------ */
/* Creates the constant a Constant node defines, named after its output. */
static drt_status constant_node_value(drt_onnx_ctx *ctx, const Onnx__NodeProto *nd, const char *out_name,
                                      drt_value **out) {
  drt_graph *g = ctx->g;
  if (nd->n_attribute != 1)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "Constant must have exactly one value attribute, found %zu",
                     nd->n_attribute);
  const Onnx__AttributeProto *a = nd->attribute[0];
  const char *an = str_or_empty(a->name);
  int type = attr_type(a);
  char what[200];
  snprintf(what, sizeof what, "attribute '%s'", an);
  drt_dtype dt = DRT_DTYPE_UNDEFINED;
  drt_shape shape = {0, {0}};
  const void *src = NULL;
  size_t nbytes = 0;
  float f;
  int64_t i64;
  int expected = -1;
  if (strcmp(an, "value") == 0) {
    expected = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
    if (type == expected && a->t) {
      void *data;
      DRT_RETURN_IF_ERROR(drt_onnx_tensor_decode(ctx, a->t, what, &dt, &shape, &data, &nbytes));
      drt_value *v = drt_graph_add_value(g, out_name, dt, &shape);
      if (!v) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "adding constant");
      v->kind = DRT_VALUE_CONST;
      v->data = data;
      v->nbytes = nbytes;
      *out = v;
      return DRT_OK;
    }
  } else if (strcmp(an, "value_float") == 0) {
    expected = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    f = a->f;
    dt = DRT_DTYPE_FLOAT32;
    src = &f;
    nbytes = sizeof f;
  } else if (strcmp(an, "value_floats") == 0) {
    expected = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
    dt = DRT_DTYPE_FLOAT32;
    shape.rank = 1;
    shape.dims[0] = (int64_t)a->n_floats;
    src = a->floats;
    nbytes = a->n_floats * sizeof(float);
  } else if (strcmp(an, "value_int") == 0) {
    expected = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    i64 = a->i;
    dt = DRT_DTYPE_INT64;
    src = &i64;
    nbytes = sizeof i64;
  } else if (strcmp(an, "value_ints") == 0) {
    expected = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    dt = DRT_DTYPE_INT64;
    shape.rank = 1;
    shape.dims[0] = (int64_t)a->n_ints;
    src = a->ints;
    nbytes = a->n_ints * sizeof(int64_t);
  } else if (strcmp(an, "value_string") == 0 || strcmp(an, "value_strings") == 0) {
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "Constant attribute '%s': string constants are not supported", an);
  } else if (strcmp(an, "sparse_value") == 0) {
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "Constant attribute '%s': sparse constants are not supported", an);
  } else {
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "Constant has unknown attribute '%s'", an);
  }
  if (type != expected)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "Constant attribute '%s' has type %s, expected %s", an,
                     attr_type_name(type), attr_type_name(expected));
  drt_value *v = drt_graph_add_value(g, out_name, dt, &shape);
  if (!v) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "adding constant");
  DRT_RETURN_IF_ERROR(drt_value_make_const(g, v, src, nbytes));
  *out = v;
  return DRT_OK;
}

/* ---- graph inputs ------------------------------------------------------------------- */
static drt_status add_graph_input(drt_onnx_ctx *ctx, const Onnx__ValueInfoProto *vi, const char *name,
                                  drt_value **out) {
  drt_graph *g = ctx->g;
  const Onnx__TypeProto *tp = vi->type;
  if (!tp || tp->value_case == ONNX__TYPE_PROTO__VALUE__NOT_SET)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "graph input '%s' has no type", name);
  switch (tp->value_case) {
    case ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE: break;
    case ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE:
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "graph input '%s' is a sequence; only tensors are supported", name);
    case ONNX__TYPE_PROTO__VALUE_MAP_TYPE:
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "graph input '%s' is a map; only tensors are supported", name);
    case ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE:
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "graph input '%s' is an optional; only tensors are supported", name);
    case ONNX__TYPE_PROTO__VALUE_SPARSE_TENSOR_TYPE:
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "graph input '%s' is a sparse tensor; only dense tensors are supported",
                       name);
    default:
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "graph input '%s' has an unsupported type; only tensors are supported",
                       name);
  }
  const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
  int32_t et = tt && tt->has_elem_type ? tt->elem_type : 0;
  if (et == 0) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "graph input '%s' has no element type", name);
  if (et == DRT_DTYPE_STRING)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "graph input '%s': string tensors are not supported", name);
  drt_dtype dt;
  if (!drt_onnx_dtype(et, &dt))
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "graph input '%s': dtype %s (%d) is not supported", name,
                     drt_onnx_dtype_name(et), (int)et);
  drt_value *v;
  if (!tt->shape) {
    v = drt_graph_add_value(g, name, dt, NULL);
    if (!v) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "adding graph input '%s'", name);
  } else {
    const Onnx__TensorShapeProto *sp = tt->shape;
    if (sp->n_dim > DRT_MAX_RANK)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "graph input '%s' has rank %zu, at most %d is supported", name,
                       sp->n_dim, DRT_MAX_RANK);
    drt_shape shape = {(int)sp->n_dim, {0}};
    const char *params[DRT_MAX_RANK] = {0};
    for (size_t i = 0; i < sp->n_dim; i++) {
      const Onnx__TensorShapeProto__Dimension *d = sp->dim[i];
      shape.dims[i] = -1;
      if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
        if (d->dim_value < 0)
          return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "graph input '%s' has negative dimension %" PRId64
                           " at axis %zu", name, d->dim_value, i);
        shape.dims[i] = d->dim_value;
      } else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && d->dim_param &&
                 d->dim_param[0]) {
        params[i] = d->dim_param;
      }
    }
    v = drt_graph_add_value(g, name, dt, &shape);
    if (!v) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "adding graph input '%s'", name);
    for (int i = 0; i < shape.rank; i++) {
      if (!params[i]) continue;
      v->dim_params[i] = drt_arena_strdup(g->arena, params[i]);
      if (!v->dim_params[i]) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "adding graph input '%s'", name);
    }
  }
  DRT_RETURN_IF_ERROR(drt_graph_add_input(g, v));
  *out = v;
  return DRT_OK;
}

/* ---- model --------------------------------------------------------------------------- */
/* The default-domain opset; 0 when the model imports other domains only. */
static drt_status model_opset(const Onnx__ModelProto *m, int *opset) {
  int64_t version = 0;
  if (m->n_opset_import == 0) {
    *opset = 1; /* IR version < 3 files predate opset_import and mean opset 1 */
    return DRT_OK;
  }
  for (size_t i = 0; i < m->n_opset_import; i++) {
    const Onnx__OperatorSetIdProto *imp = m->opset_import[i];
    if (!is_default_domain(imp->domain)) continue;
    int64_t v = imp->has_version ? imp->version : 0;
    if (v < 1 || v > DRT_ONNX_MAX_OPSET)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "default-domain opset %" PRId64 " is not supported (supported: 1..%d)",
                       v, DRT_ONNX_MAX_OPSET);
    if (version && version != v)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "conflicting default-domain opset imports %" PRId64 " and %" PRId64,
                       version, v);
    version = v;
  }
  *opset = (int)version;
  return DRT_OK;
}

static const Onnx__FunctionProto *find_function(const Onnx__ModelProto *m, const char *domain, const char *op) {
  for (size_t i = 0; i < m->n_functions; i++) {
    const Onnx__FunctionProto *f = m->functions[i];
    if (strcmp(str_or_empty(f->name), op) == 0 &&
        (strcmp(str_or_empty(f->domain), domain) == 0 ||
         (is_default_domain(f->domain) && is_default_domain(domain))))
      return f;
  }
  return NULL;
}

/* Checks that a node's op can be loaded; *op receives it (Constant included). */
static drt_status check_node_op(const Onnx__ModelProto *m, const Onnx__NodeProto *nd, const char *label, int opset,
                                drt_op *op) {
  const char *op_type = str_or_empty(nd->op_type);
  const char *domain = str_or_empty(nd->domain);
  if (strcmp(domain, "ai.onnx.preview") == 0 && strcmp(op_type, "FlexAttention") == 0 &&
      !find_function(m, domain, op_type)) {
    *op = DRT_OP_FLEX_ATTENTION;
    return DRT_OK;
  }
  if (!is_default_domain(domain)) {
    if (find_function(m, domain, op_type))
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED,
                       "unsupported domain '%s' (%s, op '%s'): model-local functions are not supported", domain,
                       label, op_type);
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "unsupported domain '%s' (%s, op '%s')", domain, label, op_type);
  }
  if (find_function(m, domain, op_type))
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s calls model-local function '%s', which is not supported", label,
                     op_type);
  if (!op_type[0]) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s has no op_type", label);
  if (opset == 0)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s (op '%s') is in the default domain, which the model does not "
                     "import", label, op_type);
  if (strncmp(op_type, "drt.", 4) == 0 || !drt_op_from_name(op_type, op) || *op == DRT_OP_FLEX_ATTENTION)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "unsupported op '%s' (%s, opset %d)", op_type, label, opset);
  return DRT_OK;
}

/* `where` says which definition came second ("initializer", "output 0 of node 'n'"). */
static drt_status dup_error(const char *name, const char *where) {
  return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "duplicate definition of '%s' (again as %s)", name, where);
}

/* Refuses names and string attributes longer than DRT_ONNX_MAX_STRING (a plan stores none longer). */
static drt_status check_str(const char *s, size_t len, const char *what, size_t index) {
  if (s && len > DRT_ONNX_MAX_STRING)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s #%zu is %zu bytes long, at most %zu are supported", what, index,
                     len, DRT_ONNX_MAX_STRING);
  return DRT_OK;
}
#define CHECK_CSTR(s, what, index) \
  DRT_RETURN_IF_ERROR(check_str((s), (s) ? strnlen((s), DRT_ONNX_MAX_STRING + 1) : 0, (what), (index)))

static drt_status check_strings(const Onnx__GraphProto *gp) {
  CHECK_CSTR(gp->name, "graph name", (size_t)0);
  for (size_t i = 0; i < gp->n_initializer; i++) CHECK_CSTR(gp->initializer[i]->name, "initializer name", i);
  for (size_t i = 0; i < gp->n_input; i++) CHECK_CSTR(gp->input[i]->name, "graph input name", i);
  for (size_t i = 0; i < gp->n_output; i++) CHECK_CSTR(gp->output[i]->name, "graph output name", i);
  for (size_t k = 0; k < gp->n_node; k++) {
    const Onnx__NodeProto *nd = gp->node[k];
    CHECK_CSTR(nd->name, "node name", k);
    CHECK_CSTR(nd->op_type, "node op_type", k);
    for (size_t j = 0; j < nd->n_input; j++) CHECK_CSTR(nd->input[j], "node input name", j);
    for (size_t j = 0; j < nd->n_output; j++) CHECK_CSTR(nd->output[j], "node output name", j);
    for (size_t j = 0; j < nd->n_attribute; j++) {
      const Onnx__AttributeProto *a = nd->attribute[j];
      CHECK_CSTR(a->name, "attribute name", j);
      DRT_RETURN_IF_ERROR(check_str((const char *)a->s.data, a->s.len, "string attribute", j));
      for (size_t q = 0; q < a->n_strings; q++)
        DRT_RETURN_IF_ERROR(check_str((const char *)a->strings[q].data, a->strings[q].len, "string attribute", j));
    }
  }
  return DRT_OK;
}

/* A subgraph's formal input: typed when its ValueInfo says so (Loop and Scan bodies often leave
 * shapes, sometimes types, to the node's inputs). */
static drt_status add_subgraph_input(drt_onnx_ctx *ctx, const Onnx__ValueInfoProto *vi, const char *name,
                                     drt_value **out) {
  const Onnx__TypeProto *tp = vi->type;
  bool seq = tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE; /* bound to a compile-time sequence */
  if (tp && !seq && tp->value_case != ONNX__TYPE_PROTO__VALUE__NOT_SET &&
      tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
    return add_graph_input(ctx, vi, name, out); /* its message for maps, optionals, ... */
  const Onnx__TypeProto__Tensor *tt = tp && !seq ? tp->tensor_type : NULL;
  if (tt && tt->has_elem_type && tt->elem_type != 0) return add_graph_input(ctx, vi, name, out);
  drt_value *v = drt_graph_add_value(ctx->g, name, DRT_DTYPE_UNDEFINED, NULL);
  if (!v) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "adding subgraph input '%s'", name);
  DRT_RETURN_IF_ERROR(drt_graph_add_input(ctx->g, v));
  *out = v;
  return DRT_OK;
}

static drt_status build_graph(drt_onnx_ctx *ctx, const Onnx__ModelProto *m) {
  int opset = 0;
  DRT_RETURN_IF_ERROR(model_opset(m, &opset));
  return build_graph_proto(ctx, m, m->graph, opset, NULL, NULL, NULL);
}

/* Builds ctx->g from gp. parent is the enclosing scope of a subgraph (NULL for the model's
 * graph); caps the captures of the node owning it; info receives its formal input count and
 * the placeholders it made (the caller owns their arrays). */
static drt_status build_graph_proto(drt_onnx_ctx *ctx, const Onnx__ModelProto *m, const Onnx__GraphProto *gp,
                                    int opset, scope *parent, node_caps *caps, sub_info *info) {
  drt_graph *g = ctx->g;
  g->opset = opset;
  if (gp->name && gp->name[0]) {
    g->name = drt_arena_strdup(g->arena, gp->name);
    if (!g->name) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "graph name");
  }
  if (gp->n_sparse_initializer)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "sparse initializers are not supported (%zu found)",
                     gp->n_sparse_initializer);

  /* Limits first; then every name the graph can define sizes the map and the output table. */
  if (gp->n_node > DRT_ONNX_MAX_NODES)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "the graph has %zu nodes, at most %d are supported", gp->n_node,
                     DRT_ONNX_MAX_NODES);
  DRT_RETURN_IF_ERROR(check_strings(gp));
  size_t total_outputs = 0;
  for (size_t k = 0; k < gp->n_node; k++) {
    const Onnx__NodeProto *nd = gp->node[k];
    if (nd->n_output > DRT_ONNX_MAX_NODE_OUTPUTS || nd->n_input > DRT_ONNX_MAX_NODE_INPUTS) {
      char lb[160];
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s has %zu inputs and %zu outputs, at most %d and %d are "
                       "supported", node_label(nd, k, lb, sizeof lb), nd->n_input, nd->n_output,
                       DRT_ONNX_MAX_NODE_INPUTS, DRT_ONNX_MAX_NODE_OUTPUTS);
    }
    total_outputs += nd->n_output;
  }
  name_map map = {0, 0, NULL};
  scope sc = {parent, &map, g, caps, NULL, NULL, 0, 0};
  drt_value **outs = malloc((total_outputs ? total_outputs : 1) * sizeof(drt_value *));
  drt_value **ins = NULL;
  drt_op *ops = malloc((gp->n_node ? gp->n_node : 1) * sizeof(drt_op));
  drt_status st = DRT_OK;
  if (!outs || !ops || !map_init(&map, gp->n_initializer + gp->n_input + total_outputs)) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "allocating loader tables");
    goto done;
  }

  /* 1. initializers */
  for (size_t i = 0; i < gp->n_initializer; i++) {
    const Onnx__TensorProto *t = gp->initializer[i];
    const char *name = str_or_empty(t->name);
    if (!name[0]) {
      st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "initializer #%zu has no name", i);
      goto done;
    }
    if (map_get(&map, name)) {
      st = dup_error(name, "an initializer");
      goto done;
    }
    char what[200];
    snprintf(what, sizeof what, "initializer '%s'", name);
    drt_dtype dt;
    drt_shape shape;
    void *data;
    size_t nbytes;
    st = drt_onnx_tensor_decode(ctx, t, what, &dt, &shape, &data, &nbytes);
    if (st) goto done;
    drt_value *v = drt_graph_add_value(g, name, dt, &shape);
    if (!v) {
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "adding %s", what);
      goto done;
    }
    v->kind = DRT_VALUE_CONST;
    v->data = data;
    v->nbytes = nbytes;
    if (!map_put(&map, v)) {
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "adding %s", what);
      goto done;
    }
  }

  /* 2. graph inputs (an input with an initializer is that constant: IR < 4 lists both) */
  for (size_t i = 0; i < gp->n_input; i++) {
    const Onnx__ValueInfoProto *vi = gp->input[i];
    const char *name = str_or_empty(vi->name);
    if (!name[0]) {
      st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "graph input #%zu has no name", i);
      goto done;
    }
    drt_value *prev = map_get(&map, name);
    if (prev) {
      if (prev->kind == DRT_VALUE_CONST) continue;
      st = dup_error(name, "a graph input");
      goto done;
    }
    drt_value *v = NULL;
    st = parent ? add_subgraph_input(ctx, vi, name, &v) : add_graph_input(ctx, vi, name, &v);
    if (st) goto done;
    if (!map_put(&map, v)) {
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "adding graph input '%s'", name);
      goto done;
    }
  }
  if (info) info->n_formal = g->num_inputs;

  /* 3. node outputs; Constant nodes become constants */
  size_t off = 0;
  size_t max_inputs = 0;
  for (size_t k = 0; k < gp->n_node; k++) {
    const Onnx__NodeProto *nd = gp->node[k];
    char lb[200];
    node_label(nd, k, lb, sizeof lb);
    st = check_node_op(m, nd, lb, opset, &ops[k]);
    if (st) goto done;
    if (nd->n_input > max_inputs) max_inputs = nd->n_input;
    if (ops[k] == DRT_OP_CONSTANT) {
      if (nd->n_input != 0 || nd->n_output != 1) {
        st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s (Constant) has %zu inputs and %zu outputs, expected 0 and 1",
                       lb, nd->n_input, nd->n_output);
        goto done;
      }
    }
    for (size_t j = 0; j < nd->n_output; j++) {
      const char *name = str_or_empty(nd->output[j]);
      if (name[0] && map_get(&map, name)) { /* a subgraph may reuse a name of the enclosing scope */
        char where[240];
        snprintf(where, sizeof where, "output %zu of %s", j, lb);
        st = dup_error(name, where);
        goto done;
      }
      drt_value *v = NULL;
      if (ops[k] == DRT_OP_CONSTANT) {
        st = constant_node_value(ctx, nd, name, &v);
        if (st) {
          st = drt_status_annotate(st, "%s (Constant, opset %d)", lb, opset);
          goto done;
        }
      } else {
        v = drt_graph_add_value(g, name, DRT_DTYPE_UNDEFINED, NULL);
        if (!v) {
          st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "adding outputs of %s", lb);
          goto done;
        }
      }
      if (name[0] && !map_put(&map, v)) {
        st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "adding outputs of %s", lb);
        goto done;
      }
      outs[off + j] = v;
    }
    off += nd->n_output;
  }

  /* 4. wire inputs by name and create the nodes */
  ins = malloc((max_inputs ? max_inputs : 1) * sizeof(drt_value *));
  if (!ins) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "allocating loader tables");
    goto done;
  }
  off = 0;
  for (size_t k = 0; k < gp->n_node; k++) {
    const Onnx__NodeProto *nd = gp->node[k];
    size_t node_off = off;
    off += nd->n_output;
    if (ops[k] == DRT_OP_CONSTANT) continue;
    char lb[200];
    node_label(nd, k, lb, sizeof lb);
    size_t nin = nd->n_input;
    /* trailing omitted inputs are dropped, except on control flow, whose inputs count by position
       (Loop's cond, Scan's states) before the implicit inputs are appended */
    if (!drt_op_is_control_flow(ops[k]))
      while (nin > 0 && !str_or_empty(nd->input[nin - 1])[0]) nin--;
    for (size_t j = 0; j < nin; j++) {
      const char *name = str_or_empty(nd->input[j]);
      ins[j] = NULL;
      if (!name[0]) continue;
      st = scope_lookup(&sc, name, &ins[j]);
      if (st) goto done;
      if (!ins[j]) {
        st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s (%s, opset %d): input %zu '%s' is not defined", lb,
                       drt_op_name(ops[k]), opset, j, name);
        goto done;
      }
    }
    drt_node *n;
    st = drt_graph_add_node(g, ops[k], nd->name, ins, (int)nin, outs + node_off, (int)nd->n_output, &n);
    if (st) goto done;
    n->opset = opset;
    node_env env = {m, ops[k], opset, &sc, {NULL, 0, 0}, {{0}}, 0};
    st = convert_attrs(ctx, nd, n, &env);
    node_env_free(&env);
    if (st) {
      st = drt_status_annotate(st, "%s (%s, opset %d)", lb, drt_op_name(ops[k]), opset);
      goto done;
    }
  }

  /* graph outputs */
  for (size_t i = 0; i < gp->n_output; i++) {
    const char *name = str_or_empty(gp->output[i]->name);
    drt_value *v = NULL;
    if (name[0]) {
      st = scope_lookup(&sc, name, &v);
      if (st) goto done;
    }
    if (!v) {
      st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                     "graph output '%s' is not produced by any node, graph input or initializer", name);
      goto done;
    }
    /* the declared element type of a computed output, until inference gives the actual one
       (passes/half_promote.c reads it to keep a half model's outputs in the half type) */
    const Onnx__TypeProto *otp = gp->output[i]->type;
    drt_dtype odt;
    if (v->kind == DRT_VALUE_INTERMEDIATE && v->dtype == DRT_DTYPE_UNDEFINED && otp &&
        otp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && otp->tensor_type &&
        otp->tensor_type->has_elem_type && drt_onnx_dtype(otp->tensor_type->elem_type, &odt))
      v->dtype = odt;
    st = drt_graph_add_output(g, v);
    if (st) goto done;
  }
  st = drt_graph_topo_sort(g);
done:
  if (info) {
    info->ph_outer = sc.ph_outer;
    info->ph_local = sc.ph_local;
    info->n_ph = sc.n_ph;
  } else {
    free(sc.ph_outer);
    free(sc.ph_local);
  }
  free(map.slots);
  free(outs);
  free(ins);
  free(ops);
  return st;
}

/* ---- entry points ------------------------------------------------------------------- */
/* Loads from bytes; `owned`, when not NULL, is the caller's heap buffer holding them, freed as
 * soon as protobuf-c has copied what it needs (so a file's bytes and the unpacked message do
 * not stay alive next to the graph's constants). */
static drt_status load_bytes(const void *data, size_t size, void *owned, const char *base_dir, const char *label,
                             const drt_onnx_options *opts, drt_graph **out) {
  drt_onnx_options defaults;
  if (!opts) {
    drt_onnx_options_init(&defaults);
    opts = &defaults;
  }
  if (!label) label = "<memory>";
  *out = NULL;
  drt_status st = DRT_OK;
  Onnx__ModelProto *m = NULL;
  if (size == 0 || !data)
    st = DRT_ERROR(DRT_STATUS_CORRUPT, "'%s' is not a valid ONNX model (protobuf parse failed: empty)", label);
  else if (opts->max_bytes && (uint64_t)size > opts->max_bytes)
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "'%s' is %zu bytes, over the limit of %" PRIu64 " bytes (max_bytes)",
                   label, size, opts->max_bytes);
  else
    st = drt_onnx_proto_check_depth(data, size, label);
  if (!st) {
    m = onnx__model_proto__unpack(NULL, size, data);
    if (!m) st = DRT_ERROR(DRT_STATUS_CORRUPT, "'%s' is not a valid ONNX model (protobuf parse failed)", label);
    else if (!m->graph)
      st = DRT_ERROR(DRT_STATUS_CORRUPT, "'%s' is not a valid ONNX model (protobuf parse failed: no graph)", label);
  }
  free(owned);
  drt_graph *g = NULL;
  if (!st) st = drt_graph_create(&g);
  if (!st) {
    drt_onnx_ctx ctx = {g, label, base_dir, opts->max_bytes, (uint64_t)size};
    st = build_graph(&ctx, m);
    if (st) st = drt_status_annotate(st, "'%s'", label);
  }
  if (m) onnx__model_proto__free_unpacked(m, NULL);
  if (st) {
    drt_graph_destroy(g);
    return st;
  }
  *out = g;
  return DRT_OK;
}

drt_status drt_onnx_load_memory(const void *data, size_t size, const char *base_dir, const char *label,
                                const drt_onnx_options *opts, drt_graph **out) {
  return load_bytes(data, size, NULL, base_dir, label, opts, out);
}

drt_status drt_onnx_read_file_bytes(const char *path, uint64_t max_bytes, unsigned char **out, size_t *size) {
  *out = NULL;
  *size = 0;
  if (!path || !path[0]) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "empty path");
  struct stat sb;
  if (stat(path, &sb) != 0) {
    int e = errno;
    return DRT_ERROR(e == ENOENT || e == ENOTDIR ? DRT_STATUS_NOT_FOUND : DRT_STATUS_IO, "'%s': %s", path,
                     strerror(e));
  }
  if (!S_ISREG(sb.st_mode)) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "'%s' is not a regular file", path);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int e = errno;
    return DRT_ERROR(e == ENOENT ? DRT_STATUS_NOT_FOUND : DRT_STATUS_IO, "'%s': %s", path, strerror(e));
  }
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size < 0) {
    close(fd);
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "'%s' is not a regular file", path);
  }
  uint64_t fsize = (uint64_t)sb.st_size;
  if (max_bytes && fsize > max_bytes) {
    close(fd);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "'%s' is %" PRIu64 " bytes, over the limit of %" PRIu64
                     " bytes (max_bytes)", path, fsize, max_bytes);
  }
  if (fsize > SIZE_MAX - 1) {
    close(fd);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "'%s' is too large (%" PRIu64 " bytes)", path, fsize);
  }
  unsigned char *buf = malloc(fsize ? (size_t)fsize : 1);
  if (!buf) {
    close(fd);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "'%s': allocating %" PRIu64 " bytes", path, fsize);
  }
  drt_status st = fsize ? drt_external_read(fd, 0, fsize, buf, path, "file") : DRT_OK;
  close(fd);
  if (st) {
    free(buf);
    return st;
  }
  *out = buf;
  *size = (size_t)fsize;
  return DRT_OK;
}

drt_status drt_onnx_dir_of(const char *path, char **dir_out) {
  size_t plen = strlen(path);
  char *dir = malloc(plen + 2);
  *dir_out = NULL;
  if (!dir) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "'%s'", path);
  const char *slash = strrchr(path, '/');
  if (!slash) {
    strcpy(dir, ".");
  } else if (slash == path) {
    strcpy(dir, "/");
  } else {
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = 0;
  }
  *dir_out = dir;
  return DRT_OK;
}

drt_status drt_onnx_load_file(const char *path, const drt_onnx_options *opts, drt_graph **out) {
  *out = NULL;
  if (!path || !path[0]) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "empty model path");
  unsigned char *buf;
  size_t fsize;
  DRT_RETURN_IF_ERROR(drt_onnx_read_file_bytes(path, opts ? opts->max_bytes : 0, &buf, &fsize));
  /* external data is relative to the model's folder */
  char *dir;
  drt_status st = drt_onnx_dir_of(path, &dir);
  if (st) {
    free(buf);
    return st;
  }
  st = load_bytes(buf, fsize, buf, dir, path, opts, out); /* frees buf */
  free(dir);
  return st;
}
