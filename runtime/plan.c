#include "runtime/plan.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer.h"
#include "runtime/bytes.h"

/* ---- writing ---------------------------------------------------------------------- */
static uint32_t value_index(const drt_graph *g, const drt_value *v) {
  for (size_t i = 0; i < g->num_values; i++)
    if (g->values[i] == v) return (uint32_t)i;
  return UINT32_MAX;
}

static void write_attr(drt_bytes_writer *w, const drt_attr *a) {
  drt_bw_str(w, a->name);
  drt_bw_u8(w, (uint8_t)a->type);
  switch (a->type) {
    case DRT_ATTR_FLOAT: drt_bw_f32(w, a->f); break;
    case DRT_ATTR_INT: drt_bw_i64(w, a->i); break;
    case DRT_ATTR_STRING: drt_bw_str(w, a->s); break;
    case DRT_ATTR_INTS:
      drt_bw_u32(w, (uint32_t)a->count);
      for (int64_t i = 0; i < a->count; i++) drt_bw_i64(w, a->ints[i]);
      break;
    case DRT_ATTR_FLOATS:
      drt_bw_u32(w, (uint32_t)a->count);
      for (int64_t i = 0; i < a->count; i++) drt_bw_f32(w, a->floats[i]);
      break;
    case DRT_ATTR_STRINGS:
      drt_bw_u32(w, (uint32_t)a->count);
      for (int64_t i = 0; i < a->count; i++) drt_bw_str(w, a->strings[i]);
      break;
    case DRT_ATTR_TENSOR: {
      const drt_value *t = a->tensor;
      drt_bw_u8(w, (uint8_t)t->dtype);
      drt_bw_u8(w, (uint8_t)t->shape.rank);
      for (int i = 0; i < t->shape.rank; i++) drt_bw_i64(w, t->shape.dims[i]);
      drt_bw_u64(w, t->nbytes);
      drt_bw_put(w, t->data, t->nbytes);
      break;
    }
    default: break;
  }
}

drt_status drt_plan_serialize(const drt_plan_contents *c, void **bytes, size_t *size) {
  const drt_graph *g = c->graph;
  drt_bytes_writer weights = {0}, graph = {0}, sig = {0}, sched = {0}, target = {0}, memplan = {0}, file = {0};
  uint64_t *const_off = calloc(g->num_values + 1, sizeof(uint64_t));
  drt_status st = DRT_OK;
  if (!const_off) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "serializing plan");
  for (size_t i = 0; i < g->num_values; i++) {
    const drt_value *v = g->values[i];
    if (v->kind != DRT_VALUE_CONST) continue;
    drt_bw_align(&weights, DRT_PLAN_ALIGN);
    const_off[i] = weights.size;
    drt_bw_put(&weights, v->data, v->nbytes);
  }
  /* GRAPH */
  drt_bw_u32(&graph, (uint32_t)g->opset);
  drt_bw_str(&graph, g->name);
  drt_bw_u32(&graph, (uint32_t)g->num_values);
  for (size_t i = 0; i < g->num_values; i++) {
    const drt_value *v = g->values[i];
    drt_bw_str(&graph, v->name);
    drt_bw_u8(&graph, (uint8_t)v->kind);
    drt_bw_u8(&graph, (uint8_t)v->dtype);
    drt_bw_u8(&graph, (uint8_t)v->shape.rank);
    drt_bw_u8(&graph, v->is_graph_output ? 1 : 0);
    for (int d = 0; d < v->shape.rank; d++) drt_bw_i64(&graph, v->shape.dims[d]);
    if (v->kind == DRT_VALUE_CONST) {
      drt_bw_u64(&graph, const_off[i]);
      drt_bw_u64(&graph, v->nbytes);
    }
  }
  drt_bw_u32(&graph, (uint32_t)g->num_nodes);
  for (size_t i = 0; i < g->num_nodes; i++) {
    const drt_node *n = g->nodes[i];
    drt_bw_str(&graph, n->name);
    drt_bw_str(&graph, drt_op_name(n->op));
    drt_bw_u32(&graph, (uint32_t)n->opset);
    drt_bw_u32(&graph, (uint32_t)n->num_inputs);
    for (int j = 0; j < n->num_inputs; j++)
      drt_bw_u32(&graph, n->inputs[j] ? value_index(g, n->inputs[j]) : UINT32_MAX);
    drt_bw_u32(&graph, (uint32_t)n->num_outputs);
    for (int j = 0; j < n->num_outputs; j++) drt_bw_u32(&graph, value_index(g, n->outputs[j]));
    drt_bw_u32(&graph, (uint32_t)n->num_attrs);
    for (int j = 0; j < n->num_attrs; j++) write_attr(&graph, &n->attrs[j]);
  }
  drt_bw_u32(&graph, (uint32_t)g->num_inputs);
  for (size_t i = 0; i < g->num_inputs; i++) drt_bw_u32(&graph, value_index(g, g->inputs[i]));
  drt_bw_u32(&graph, (uint32_t)g->num_outputs);
  for (size_t i = 0; i < g->num_outputs; i++) drt_bw_u32(&graph, value_index(g, g->outputs[i]));
  /* SIGNATURE */
  for (int list = 0; list < 2; list++) {
    size_t n = list ? g->num_outputs : g->num_inputs;
    drt_bw_u32(&sig, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
      const drt_value *v = list ? g->outputs[i] : g->inputs[i];
      drt_bw_str(&sig, v->name);
      drt_bw_u8(&sig, list ? (c->output_roles ? c->output_roles[i] : 0) : (c->input_roles ? c->input_roles[i] : 0));
      drt_bw_u8(&sig, (uint8_t)v->dtype);
      drt_bw_u8(&sig, (uint8_t)v->shape.rank);
      for (int d = 0; d < v->shape.rank; d++) drt_bw_i64(&sig, v->shape.dims[d]);
    }
  }
  if (c->has_schedule) {
    drt_bw_str(&sched, c->schedule.name);
    drt_bw_str(&sched, c->schedule.params);
    drt_bw_u32(&sched, c->schedule.num_steps);
    drt_bw_f64(&sched, c->schedule.init_noise_sigma);
    for (uint32_t s = 0; s < c->schedule.num_steps; s++)
      for (int k = 0; k < DRT_SCHED_SCALARS; k++) drt_bw_f64(&sched, c->schedule.steps[s][k]);
  }
  if (c->cuda_archs[0]) drt_bw_str(&target, c->cuda_archs);
  if (g->mem_planned) {
    drt_bw_u64(&memplan, g->mem_arena_bytes);
    drt_bw_u32(&memplan, (uint32_t)g->num_values);
    for (size_t i = 0; i < g->num_values; i++) drt_bw_i64(&memplan, g->values[i]->mem_offset);
  }

  /* assemble: header, sections, table */
  struct {
    uint32_t type;
    drt_bytes_writer *w;
  } secs[] = {{DRT_PLAN_SECTION_WEIGHTS, &weights},
              {DRT_PLAN_SECTION_GRAPH, &graph},
              {DRT_PLAN_SECTION_SIGNATURE, &sig},
              {DRT_PLAN_SECTION_SCHEDULE, &sched},
              {DRT_PLAN_SECTION_TARGET, &target},
              {DRT_PLAN_SECTION_MEMPLAN, &memplan}};
  uint32_t nsec = 0;
  uint64_t offs[8], sizes[8];
  uint32_t types[8], crcs[8];
  drt_bw_put(&file, NULL, DRT_PLAN_HEADER_SIZE);
  for (size_t i = 0; i < sizeof secs / sizeof secs[0]; i++) {
    if (secs[i].type != DRT_PLAN_SECTION_WEIGHTS && secs[i].type != DRT_PLAN_SECTION_GRAPH &&
        secs[i].type != DRT_PLAN_SECTION_SIGNATURE && secs[i].w->size == 0)
      continue;
    if (secs[i].w->failed) {
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "serializing plan");
      goto done;
    }
    drt_bw_align(&file, DRT_PLAN_ALIGN);
    types[nsec] = secs[i].type;
    offs[nsec] = file.size;
    sizes[nsec] = secs[i].w->size;
    crcs[nsec] = drt_crc32(secs[i].w->data, secs[i].w->size);
    drt_bw_put(&file, secs[i].w->data, secs[i].w->size);
    nsec++;
  }
  drt_bw_align(&file, DRT_PLAN_ALIGN);
  uint64_t table_off = file.size;
  for (uint32_t i = 0; i < nsec; i++) {
    drt_bw_u32(&file, types[i]);
    drt_bw_u32(&file, 0);
    drt_bw_u64(&file, offs[i]);
    drt_bw_u64(&file, sizes[i]);
    drt_bw_u32(&file, crcs[i]);
    drt_bw_u32(&file, 0);
  }
  if (file.failed) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "serializing plan");
    goto done;
  }
  {
    drt_bytes_writer h = {0};
    drt_bw_put(&h, DRT_PLAN_MAGIC, 8);
    drt_bw_u32(&h, DRT_PLAN_FORMAT_VERSION);
    drt_bw_u32(&h, DRT_PLAN_HEADER_SIZE);
    drt_bw_u32(&h, (DRT_VERSION_MAJOR << 16) | (DRT_VERSION_MINOR << 8) | DRT_VERSION_PATCH);
    drt_bw_u32(&h, c->targets ? c->targets : DRT_PLAN_TARGET_CPU);
    drt_bw_u32(&h, nsec);
    drt_bw_u32(&h, 0);
    drt_bw_u64(&h, table_off);
    drt_bw_u64(&h, file.size);
    if (h.failed) {
      drt_bw_free(&h);
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "serializing plan");
      goto done;
    }
    drt_bw_u32(&h, drt_crc32(h.data, 48));
    drt_bw_put(&h, NULL, 12);
    memcpy(file.data, h.data, DRT_PLAN_HEADER_SIZE);
    drt_bw_free(&h);
  }
  *bytes = file.data;
  *size = file.size;
  file.data = NULL;
done:
  free(const_off);
  drt_bw_free(&weights);
  drt_bw_free(&graph);
  drt_bw_free(&sig);
  drt_bw_free(&sched);
  drt_bw_free(&target);
  drt_bw_free(&memplan);
  drt_bw_free(&file);
  return st;
}

/* ---- reading ---------------------------------------------------------------------- */
#define CORRUPT(...) DRT_ERROR(DRT_STATUS_CORRUPT, __VA_ARGS__)

static char *arena_str(drt_graph *g, drt_bytes_reader *r) {
  uint32_t n;
  const char *s = drt_br_str(r, DRT_PLAN_MAX_STRING, &n);
  if (!s) return NULL;
  if (memchr(s, 0, n)) {
    r->failed = true;
    return NULL;
  }
  return drt_arena_strndup(g->arena, s, n);
}

static drt_status read_shape(drt_bytes_reader *r, drt_dtype *dt, drt_shape *s) {
  *dt = (drt_dtype)drt_br_u8(r);
  unsigned rank = drt_br_u8(r);
  if (rank > DRT_MAX_RANK) return CORRUPT("rank %u exceeds %d", rank, DRT_MAX_RANK);
  memset(s, 0, sizeof *s);
  s->rank = (int)rank;
  for (unsigned d = 0; d < rank; d++) s->dims[d] = drt_br_i64(r);
  if (r->failed) return CORRUPT("truncated");
  if (drt_shape_numel(s) < 0) return CORRUPT("invalid dimensions");
  if (!drt_dtype_is_supported(*dt)) return CORRUPT("invalid dtype %d", (int)*dt);
  return DRT_OK;
}

static drt_status read_attr(drt_graph *g, drt_bytes_reader *r, drt_attr *a) {
  memset(a, 0, sizeof *a);
  a->name = arena_str(g, r);
  a->type = (drt_attr_type)drt_br_u8(r);
  if (!a->name) return CORRUPT("truncated attribute");
  switch (a->type) {
    case DRT_ATTR_FLOAT: a->f = drt_br_f32(r); break;
    case DRT_ATTR_INT: a->i = drt_br_i64(r); break;
    case DRT_ATTR_STRING: {
      uint32_t n;
      const char *s = drt_br_str(r, DRT_PLAN_MAX_STRING, &n);
      if (!s) return CORRUPT("truncated attribute '%s'", a->name);
      a->s = drt_arena_strndup(g->arena, s, n);
      a->s_len = n;
      break;
    }
    case DRT_ATTR_INTS:
    case DRT_ATTR_FLOATS:
    case DRT_ATTR_STRINGS: {
      uint32_t n = drt_br_u32(r);
      size_t es = a->type == DRT_ATTR_INTS ? 8 : a->type == DRT_ATTR_FLOATS ? 4 : 4;
      if (r->failed || (uint64_t)n * es > r->size - r->pos) return CORRUPT("attribute '%s' count %u out of range", a->name, n);
      a->count = n;
      if (a->type == DRT_ATTR_INTS) {
        a->ints = drt_arena_alloc_array(g->arena, n ? n : 1, 8);
        if (!a->ints) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "attribute");
        for (uint32_t i = 0; i < n; i++) a->ints[i] = drt_br_i64(r);
      } else if (a->type == DRT_ATTR_FLOATS) {
        a->floats = drt_arena_alloc_array(g->arena, n ? n : 1, 4);
        if (!a->floats) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "attribute");
        for (uint32_t i = 0; i < n; i++) a->floats[i] = drt_br_f32(r);
      } else {
        a->strings = drt_arena_alloc_array(g->arena, n ? n : 1, sizeof(char *));
        if (!a->strings) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "attribute");
        for (uint32_t i = 0; i < n; i++) {
          a->strings[i] = arena_str(g, r);
          if (!a->strings[i]) return CORRUPT("truncated attribute '%s'", a->name);
        }
      }
      break;
    }
    case DRT_ATTR_TENSOR: {
      drt_dtype dt;
      drt_shape s;
      DRT_RETURN_IF_ERROR_CTX(read_shape(r, &dt, &s), "attribute '%s'", a->name);
      uint64_t nb = drt_br_u64(r);
      drt_tensor t = {dt, s, NULL};
      if (r->failed || nb != drt_tensor_nbytes(&t)) return CORRUPT("attribute '%s': tensor size mismatch", a->name);
      const void *p = drt_br_bytes(r, nb);
      if (!p) return CORRUPT("attribute '%s': truncated tensor", a->name);
      drt_value *v = drt_arena_alloc(g->arena, sizeof(drt_value));
      if (!v) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "attribute");
      v->name = a->name;
      v->dtype = dt;
      v->has_shape = true;
      v->shape = s;
      v->kind = DRT_VALUE_CONST;
      v->nbytes = nb;
      v->data = drt_arena_alloc(g->arena, nb ? nb : 1);
      if (!v->data) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "attribute");
      memcpy(v->data, p, nb);
      a->tensor = v;
      break;
    }
    default: return CORRUPT("attribute '%s' has invalid type %d", a->name, (int)a->type);
  }
  if (r->failed) return CORRUPT("truncated attribute '%s'", a->name);
  return DRT_OK;
}

static drt_status parse_graph(drt_bytes_reader *r, const uint8_t *weights, uint64_t weights_size, drt_graph **out) {
  drt_graph *g;
  DRT_RETURN_IF_ERROR(drt_graph_create(&g));
  drt_status st = DRT_OK;
  drt_value **vals = NULL;
  char d[256];
  g->opset = (int)drt_br_u32(r);
  g->name = arena_str(g, r);
  uint32_t nv = drt_br_u32(r);
  if (r->failed || !g->name || nv > r->size) {
    st = CORRUPT("graph header truncated");
    goto fail;
  }
  vals = calloc(nv ? nv : 1, sizeof(drt_value *));
  if (!vals) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "plan graph");
    goto fail;
  }
  for (uint32_t i = 0; i < nv; i++) {
    char *name = arena_str(g, r);
    unsigned kind = drt_br_u8(r);
    drt_dtype dt = (drt_dtype)drt_br_u8(r);
    unsigned rank = drt_br_u8(r);
    unsigned flags = drt_br_u8(r);
    if (!name || r->failed || kind > DRT_VALUE_CONST || rank > DRT_MAX_RANK || !drt_dtype_is_supported(dt)) {
      st = CORRUPT("value %u: bad name, kind, dtype or rank", i);
      goto fail;
    }
    drt_shape s;
    memset(&s, 0, sizeof s);
    s.rank = (int)rank;
    for (unsigned k = 0; k < rank; k++) s.dims[k] = drt_br_i64(r);
    drt_tensor st_t = {dt, s, NULL};
    int64_t numel = drt_shape_numel(&s);
    if (r->failed || numel < 0 || (numel > 0 && drt_tensor_nbytes(&st_t) == 0)) {
      st = CORRUPT("value '%s': invalid shape", name);
      goto fail;
    }
    drt_value *v = drt_graph_add_value(g, name, dt, &s);
    if (!v) {
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "plan graph");
      goto fail;
    }
    v->is_graph_output = false;
    (void)flags;
    if (kind == DRT_VALUE_CONST) {
      uint64_t off = drt_br_u64(r), nb = drt_br_u64(r);
      drt_tensor t = {dt, s, NULL};
      size_t want = drt_tensor_nbytes(&t);
      if (r->failed || nb != want || (want == 0 && drt_shape_numel(&s) != 0) || off > weights_size ||
          nb > weights_size - off || off % DRT_PLAN_ALIGN) {
        st = CORRUPT("constant '%s': data range [%" PRIu64 ", +%" PRIu64 ") is outside the weights section or does "
                     "not match its shape", name, off, nb);
        goto fail;
      }
      v->kind = DRT_VALUE_CONST;
      v->data = (void *)(weights + off); /* zero-copy: points into the plan buffer */
      v->nbytes = nb;
    }
    v->kind = (drt_value_kind)kind;
    vals[i] = v;
  }
  /* duplicate names: one pass over the name index (built once, not per value) */
  for (uint32_t i = 0; i < nv; i++) {
    if (drt_graph_find_value(g, vals[i]->name) != vals[i]) {
      st = CORRUPT("duplicate value name '%s'", vals[i]->name);
      goto fail;
    }
  }
  uint32_t nn = drt_br_u32(r);
  if (r->failed || nn > r->size) {
    st = CORRUPT("node count truncated");
    goto fail;
  }
  for (uint32_t i = 0; i < nn; i++) {
    char *name = arena_str(g, r);
    uint32_t oplen;
    const char *opname = drt_br_str(r, 128, &oplen);
    char opbuf[129];
    if (!name || !opname) {
      st = CORRUPT("node %u truncated", i);
      goto fail;
    }
    memcpy(opbuf, opname, oplen);
    opbuf[oplen] = 0;
    drt_op op;
    if (!drt_op_from_name(opbuf, &op)) {
      st = DRT_ERROR(DRT_STATUS_UNSUPPORTED, "node '%s': op '%s' is unknown to this distilrt version", name, opbuf);
      goto fail;
    }
    uint32_t opset = drt_br_u32(r);
    uint32_t nin = drt_br_u32(r);
    if (r->failed || nin > 4096) {
      st = CORRUPT("node '%s': bad input count", name);
      goto fail;
    }
    drt_value *ins[4096], *outs[256];
    for (uint32_t j = 0; j < nin; j++) {
      uint32_t idx = drt_br_u32(r);
      if (idx != UINT32_MAX && idx >= nv) {
        st = CORRUPT("node '%s': input %u refers to value %u of %u", name, j, idx, nv);
        goto fail;
      }
      ins[j] = idx == UINT32_MAX ? NULL : vals[idx];
    }
    uint32_t nout = drt_br_u32(r);
    if (r->failed || nout > 256 || nout == 0) {
      st = CORRUPT("node '%s': bad output count", name);
      goto fail;
    }
    for (uint32_t j = 0; j < nout; j++) {
      uint32_t idx = drt_br_u32(r);
      if (idx >= nv || vals[idx]->kind != DRT_VALUE_INTERMEDIATE || vals[idx]->producer) {
        st = CORRUPT("node '%s': output %u is not a fresh intermediate value", name, j);
        goto fail;
      }
      outs[j] = vals[idx];
    }
    drt_node *n;
    st = drt_graph_add_node(g, op, name, ins, (int)nin, outs, (int)nout, &n);
    if (st) goto fail;
    n->opset = (int)opset;
    uint32_t na = drt_br_u32(r);
    if (r->failed || na > 1024) {
      st = CORRUPT("node '%s': bad attribute count", name);
      goto fail;
    }
    /* read straight into the node's array (drt_node_add_attr copies the array per call) */
    n->attrs = na ? drt_arena_alloc_array(g->arena, na, sizeof(drt_attr)) : NULL;
    if (na && !n->attrs) {
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "plan graph");
      goto fail;
    }
    for (uint32_t j = 0; j < na; j++) {
      st = read_attr(g, r, &n->attrs[j]);
      if (st) {
        st = drt_status_annotate(st, "node '%s'", name);
        goto fail;
      }
      for (uint32_t k = 0; k < j; k++)
        if (strcmp(n->attrs[k].name, n->attrs[j].name) == 0) {
          st = CORRUPT("node '%s': attribute '%s' appears twice", name, n->attrs[j].name);
          goto fail;
        }
      n->num_attrs = (int)j + 1;
    }
  }
  for (int list = 0; list < 2; list++) {
    uint32_t n = drt_br_u32(r);
    if (r->failed || n > nv) {
      st = CORRUPT("graph %s list truncated", list ? "output" : "input");
      goto fail;
    }
    for (uint32_t j = 0; j < n; j++) {
      uint32_t idx = drt_br_u32(r);
      if (r->failed || idx >= nv) {
        st = CORRUPT("graph %s %u refers to a missing value", list ? "output" : "input", j);
        goto fail;
      }
      if (list) {
        st = drt_graph_add_output(g, vals[idx]);
      } else {
        if (vals[idx]->kind != DRT_VALUE_INPUT) {
          st = CORRUPT("graph input %u is not an input value", j);
          goto fail;
        }
        st = drt_graph_add_input(g, vals[idx]);
      }
      if (st) goto fail;
    }
  }
  for (uint32_t i = 0; i < nv; i++) {
    if (vals[i]->kind == DRT_VALUE_INTERMEDIATE && !vals[i]->producer) {
      st = CORRUPT("value '%s' has no producer", vals[i]->name);
      goto fail;
    }
    if (vals[i]->kind == DRT_VALUE_INPUT) {
      bool listed = false;
      for (size_t k = 0; k < g->num_inputs; k++) listed |= g->inputs[k] == vals[i];
      if (!listed) {
        st = CORRUPT("input value '%s' is not a graph input", vals[i]->name);
        goto fail;
      }
    }
  }
  /* Structure, order, and shapes: recompute every node's output types and require equality. */
  st = drt_graph_topo_sort(g);
  if (!st) st = drt_graph_verify(g, true);
  for (size_t i = 0; i < g->num_nodes && !st; i++) {
    drt_node *n = g->nodes[i];
    drt_shape saved[256];
    drt_dtype saved_dt[256];
    for (int j = 0; j < n->num_outputs; j++) {
      saved[j] = n->outputs[j]->shape;
      saved_dt[j] = n->outputs[j]->dtype;
    }
    st = drt_infer_node(g, n);
    for (int j = 0; j < n->num_outputs && !st; j++) {
      if (!drt_shape_equal(&saved[j], &n->outputs[j]->shape) || saved_dt[j] != n->outputs[j]->dtype)
        st = CORRUPT("%s: stored type of output '%s' disagrees with shape inference", drt_node_describe(n, d, sizeof d),
                     n->outputs[j]->name);
    }
  }
  if (st) goto fail;
  free(vals);
  *out = g;
  return DRT_OK;
fail:
  free(vals);
  drt_graph_destroy(g);
  return st;
}

const char *drt_plan_section_name(uint32_t t) {
  switch (t) {
    case DRT_PLAN_SECTION_WEIGHTS: return "weights";
    case DRT_PLAN_SECTION_GRAPH: return "graph";
    case DRT_PLAN_SECTION_SIGNATURE: return "signature";
    case DRT_PLAN_SECTION_SCHEDULE: return "schedule";
    case DRT_PLAN_SECTION_TARGET: return "target";
    case DRT_PLAN_SECTION_MEMPLAN: return "memplan";
    default: return "unknown";
  }
}

drt_status drt_plan_parse(void *bytes, size_t size, const char *label, drt_plan_contents *out) {
  memset(out, 0, sizeof *out);
  const uint8_t *b = bytes;
  drt_status st = DRT_OK;
  if (size < DRT_PLAN_HEADER_SIZE || memcmp(b, DRT_PLAN_MAGIC, 8) != 0) {
    free(bytes);
    return CORRUPT("'%s' is not a distilrt plan (bad magic)", label);
  }
  drt_bytes_reader h = {b, DRT_PLAN_HEADER_SIZE, 8, false};
  uint32_t version = drt_br_u32(&h), hsize = drt_br_u32(&h), writer = drt_br_u32(&h), targets = drt_br_u32(&h);
  uint32_t nsec = drt_br_u32(&h);
  (void)drt_br_u32(&h);
  uint64_t table = drt_br_u64(&h), fsize = drt_br_u64(&h);
  uint32_t hcrc = drt_br_u32(&h);
  if (version != DRT_PLAN_FORMAT_VERSION) {
    st = DRT_ERROR(DRT_STATUS_UNSUPPORTED, "'%s' has plan format version %u (written by distilrt %u.%u.%u); this "
                   "distilrt %s reads version %u: recompile the model", label, version, writer >> 16,
                   (writer >> 8) & 0xff, writer & 0xff, DRT_VERSION_STRING, DRT_PLAN_FORMAT_VERSION);
    goto fail;
  }
  if (hcrc != drt_crc32(b, 48)) {
    st = CORRUPT("'%s': header checksum mismatch", label);
    goto fail;
  }
  if (hsize != DRT_PLAN_HEADER_SIZE || fsize != size) {
    st = CORRUPT("'%s' is truncated or padded: header says %" PRIu64 " bytes, file has %zu", label, fsize, size);
    goto fail;
  }
  if (nsec > DRT_PLAN_MAX_SECTIONS || table % DRT_PLAN_ALIGN || table > size ||
      (uint64_t)nsec * DRT_PLAN_SECTION_ENTRY_SIZE > size - table) {
    st = CORRUPT("'%s': section table out of range", label);
    goto fail;
  }
  const uint8_t *sec_data[8] = {0};
  uint64_t sec_size[8] = {0};
  drt_bytes_reader t = {b + table, (size_t)nsec * DRT_PLAN_SECTION_ENTRY_SIZE, 0, false};
  for (uint32_t i = 0; i < nsec; i++) {
    uint32_t type = drt_br_u32(&t);
    (void)drt_br_u32(&t);
    uint64_t off = drt_br_u64(&t), sz = drt_br_u64(&t);
    uint32_t crc = drt_br_u32(&t);
    (void)drt_br_u32(&t);
    if (off % DRT_PLAN_ALIGN || off > size || sz > size - off) {
      st = CORRUPT("'%s': %s section [%" PRIu64 ", +%" PRIu64 ") is outside the file", label, drt_plan_section_name(type), off, sz);
      goto fail;
    }
    if (crc != drt_crc32(b + off, (size_t)sz)) {
      st = CORRUPT("'%s': checksum mismatch in the %s section", label, drt_plan_section_name(type));
      goto fail;
    }
    if (out->num_sections < 8) {
      out->sections[out->num_sections].type = type;
      out->sections[out->num_sections].crc = crc;
      out->sections[out->num_sections].offset = off;
      out->sections[out->num_sections].size = sz;
      out->num_sections++;
    }
    if (type >= 1 && type < 8) {
      if (sec_data[type]) {
        st = CORRUPT("'%s': duplicate %s section", label, drt_plan_section_name(type));
        goto fail;
      }
      sec_data[type] = b + off;
      sec_size[type] = sz;
    }
  }
  if (!sec_data[DRT_PLAN_SECTION_GRAPH] || !sec_data[DRT_PLAN_SECTION_SIGNATURE]) {
    st = CORRUPT("'%s': missing graph or signature section", label);
    goto fail;
  }
  out->targets = targets;
  out->format_version = version;
  out->writer_version = writer;
  out->file_data = bytes;
  out->file_size = size;
  const uint8_t *wdata = sec_data[DRT_PLAN_SECTION_WEIGHTS] ? sec_data[DRT_PLAN_SECTION_WEIGHTS] : b;
  drt_bytes_reader gr = {sec_data[DRT_PLAN_SECTION_GRAPH], (size_t)sec_size[DRT_PLAN_SECTION_GRAPH], 0, false};
  st = parse_graph(&gr, wdata, sec_data[DRT_PLAN_SECTION_WEIGHTS] ? sec_size[DRT_PLAN_SECTION_WEIGHTS] : 0, &out->graph);
  if (st) {
    st = drt_status_annotate(st, "'%s': graph section", label);
    goto fail_owned;
  }
  /* signature: names must match graph inputs/outputs in order; keep roles */
  drt_bytes_reader sr = {sec_data[DRT_PLAN_SECTION_SIGNATURE], (size_t)sec_size[DRT_PLAN_SECTION_SIGNATURE], 0, false};
  for (int list = 0; list < 2; list++) {
    drt_graph *g = out->graph;
    uint32_t n = drt_br_u32(&sr);
    size_t want = list ? g->num_outputs : g->num_inputs;
    if (sr.failed || n != want) {
      st = CORRUPT("'%s': signature lists %u %s, the graph has %zu", label, n, list ? "outputs" : "inputs", want);
      goto fail_owned;
    }
    uint8_t *roles = calloc(n + 1, 1);
    if (!roles) {
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "plan signature");
      goto fail_owned;
    }
    if (list) out->output_roles = roles;
    else out->input_roles = roles;
    for (uint32_t i = 0; i < n; i++) {
      uint32_t len;
      const char *name = drt_br_str(&sr, DRT_PLAN_MAX_STRING, &len);
      roles[i] = drt_br_u8(&sr);
      drt_dtype dt;
      drt_shape s;
      st = read_shape(&sr, &dt, &s);
      const drt_value *v = list ? g->outputs[i] : g->inputs[i];
      if (st || !name || len != strlen(v->name) || memcmp(name, v->name, len) != 0 || dt != v->dtype ||
          !drt_shape_equal(&s, &v->shape) || roles[i] > DRT_PLAN_ROLE_PREDICTION) {
        drt_status_free(st);
        st = CORRUPT("'%s': signature entry %u does not match the graph", label, i);
        goto fail_owned;
      }
    }
  }
  if (sec_data[DRT_PLAN_SECTION_SCHEDULE]) {
    drt_bytes_reader cr = {sec_data[DRT_PLAN_SECTION_SCHEDULE], (size_t)sec_size[DRT_PLAN_SECTION_SCHEDULE], 0, false};
    uint32_t l1, l2;
    const char *nm = drt_br_str(&cr, sizeof out->schedule.name - 1, &l1);
    const char *pm = drt_br_str(&cr, sizeof out->schedule.params - 1, &l2);
    uint32_t ns = drt_br_u32(&cr);
    double sigma = drt_br_f64(&cr);
    if (!nm || !pm || cr.failed || ns == 0 || ns > 100000 ||
        (uint64_t)ns * DRT_SCHED_SCALARS * 8 != cr.size - cr.pos) {
      st = CORRUPT("'%s': malformed schedule section", label);
      goto fail_owned;
    }
    memcpy(out->schedule.name, nm, l1);
    memcpy(out->schedule.params, pm, l2);
    out->schedule.num_steps = ns;
    out->schedule.init_noise_sigma = sigma;
    out->schedule.steps = malloc((size_t)ns * sizeof *out->schedule.steps);
    if (!out->schedule.steps) {
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "plan schedule");
      goto fail_owned;
    }
    for (uint32_t s = 0; s < ns; s++)
      for (int k = 0; k < DRT_SCHED_SCALARS; k++) out->schedule.steps[s][k] = drt_br_f64(&cr);
    out->has_schedule = true;
  }
  if (sec_data[DRT_PLAN_SECTION_MEMPLAN]) {
    drt_bytes_reader mr = {sec_data[DRT_PLAN_SECTION_MEMPLAN], (size_t)sec_size[DRT_PLAN_SECTION_MEMPLAN], 0, false};
    drt_graph *g = out->graph;
    uint64_t arena = drt_br_u64(&mr);
    uint32_t nv = drt_br_u32(&mr);
    if (mr.failed || nv != g->num_values || (uint64_t)nv * 8 != mr.size - mr.pos) {
      st = CORRUPT("'%s': malformed memory plan section", label);
      goto fail_owned;
    }
    for (uint32_t i = 0; i < nv; i++) {
      drt_value *v = g->values[i];
      int64_t off = drt_br_i64(&mr);
      drt_tensor vt = {v->dtype, v->shape, NULL};
      uint64_t nb = drt_tensor_nbytes(&vt);
      bool planned = v->kind == DRT_VALUE_INTERMEDIATE && !v->is_graph_output;
      if (planned && (off < 0 || (uint64_t)off > arena || nb > arena - (uint64_t)off)) {
        st = CORRUPT("'%s': memory plan places '%s' outside the %" PRIu64 "-byte arena", label, v->name, arena);
        goto fail_owned;
      }
      v->mem_offset = planned ? off : -1;
    }
    g->mem_planned = true;
    g->mem_arena_bytes = arena;
  }
  if (sec_data[DRT_PLAN_SECTION_TARGET]) {
    drt_bytes_reader tr = {sec_data[DRT_PLAN_SECTION_TARGET], (size_t)sec_size[DRT_PLAN_SECTION_TARGET], 0, false};
    uint32_t l;
    const char *a = drt_br_str(&tr, sizeof out->cuda_archs - 1, &l);
    if (!a) {
      st = CORRUPT("'%s': malformed target section", label);
      goto fail_owned;
    }
    memcpy(out->cuda_archs, a, l);
  }
  return DRT_OK;
fail:
  free(bytes);
  return st;
fail_owned:
  drt_plan_contents_free(out);
  return st;
}

void drt_plan_contents_free(drt_plan_contents *c) {
  if (!c) return;
  drt_graph_destroy(c->graph);
  free(c->input_roles);
  free(c->output_roles);
  free(c->schedule.steps);
  free(c->file_data);
  memset(c, 0, sizeof *c);
}
