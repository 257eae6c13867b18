#include "runtime/plan.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer.h"
#include "ir/infer_movement.h"
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

/* Constants placed in WEIGHTS while serializing: where each went (for provenance offsets), and
 * for extra shape buckets, reuse of an earlier constant with the same name, dtype, shape and
 * bytes, so that weights are stored once. */
typedef struct placed_const {
  const drt_value *v;
  uint64_t offset;
} placed_const;

typedef struct placer {
  drt_bytes_writer *weights;
  placed_const *items;
  size_t count, cap;
  bool dedupe;  /* reuse earlier constants by name + content */
  bool failed;
} placer;

static uint64_t place_const(void *user, const drt_value *v) {
  placer *p = user;
  if (p->dedupe) {
    for (size_t i = 0; i < p->count; i++) {
      const drt_value *u = p->items[i].v;
      if (u->nbytes == v->nbytes && u->dtype == v->dtype && drt_shape_equal(&u->shape, &v->shape) &&
          strcmp(u->name, v->name) == 0 && (v->nbytes == 0 || memcmp(u->data, v->data, v->nbytes) == 0))
        return p->items[i].offset;
    }
  }
  drt_bw_align(p->weights, DRT_PLAN_ALIGN);
  uint64_t off = p->weights->size;
  drt_bw_put(p->weights, v->data, v->nbytes);
  if (p->count == p->cap) {
    size_t nc = p->cap ? 2 * p->cap : 256;
    placed_const *ni = realloc(p->items, nc * sizeof *ni);
    if (!ni) {
      p->failed = true;
      return off;
    }
    p->items = ni;
    p->cap = nc;
  }
  p->items[p->count].v = v;
  p->items[p->count++].offset = off;
  return off;
}

/* WEIGHTS offset of a constant placed earlier (provenance targets), UINT64_MAX if none. */
static uint64_t placed_offset(void *user, const drt_value *v) {
  const placer *p = user;
  for (size_t i = p->count; i-- > 0;)
    if (p->items[i].v == v) return p->items[i].offset;
  return UINT64_MAX;
}

void drt_plan_write_graph(drt_bytes_writer *w, const drt_graph *g, drt_place_const_fn place, void *user) {
  uint64_t *const_off = calloc(g->num_values + 1, sizeof(uint64_t));
  if (!const_off) {
    w->failed = true;
    return;
  }
  for (size_t i = 0; i < g->num_values; i++) {
    const drt_value *v = g->values[i];
    if (v->kind == DRT_VALUE_CONST) const_off[i] = place(user, v);
  }
  /* GRAPH */
  drt_bw_u32(w, (uint32_t)g->opset);
  drt_bw_str(w, g->name);
  drt_bw_u32(w, (uint32_t)g->num_values);
  for (size_t i = 0; i < g->num_values; i++) {
    const drt_value *v = g->values[i];
    drt_bw_str(w, v->name);
    drt_bw_u8(w, (uint8_t)v->kind);
    drt_bw_u8(w, (uint8_t)v->dtype);
    drt_bw_u8(w, (uint8_t)v->shape.rank);
    drt_bw_u8(w, v->is_graph_output ? 1 : 0);
    for (int d = 0; d < v->shape.rank; d++) drt_bw_i64(w, v->shape.dims[d]);
    if (v->kind == DRT_VALUE_CONST) {
      drt_bw_u64(w, const_off[i]);
      drt_bw_u64(w, v->nbytes);
    }
  }
  drt_bw_u32(w, (uint32_t)g->num_nodes);
  for (size_t i = 0; i < g->num_nodes; i++) {
    const drt_node *n = g->nodes[i];
    drt_bw_str(w, n->name);
    drt_bw_str(w, drt_op_name(n->op));
    drt_bw_u32(w, (uint32_t)n->opset);
    drt_bw_u32(w, (uint32_t)n->num_inputs);
    for (int j = 0; j < n->num_inputs; j++)
      drt_bw_u32(w, n->inputs[j] ? value_index(g, n->inputs[j]) : UINT32_MAX);
    drt_bw_u32(w, (uint32_t)n->num_outputs);
    for (int j = 0; j < n->num_outputs; j++) drt_bw_u32(w, value_index(g, n->outputs[j]));
    drt_bw_u32(w, (uint32_t)n->num_attrs);
    for (int j = 0; j < n->num_attrs; j++) write_attr(w, &n->attrs[j]);
  }
  drt_bw_u32(w, (uint32_t)g->num_inputs);
  for (size_t i = 0; i < g->num_inputs; i++) drt_bw_u32(w, value_index(g, g->inputs[i]));
  drt_bw_u32(w, (uint32_t)g->num_outputs);
  for (size_t i = 0; i < g->num_outputs; i++) drt_bw_u32(w, value_index(g, g->outputs[i]));
  free(const_off);
}

/* The CUDA section (layout in plan_format.h). */
static drt_status write_cuda(drt_bytes_writer *w, const drt_plan_cuda *cu) {
  if (cu->num_images == 0 || cu->num_images > DRT_PLAN_MAX_CUDA_IMAGES || cu->precision > 3 ||
      strnlen(cu->options, sizeof cu->options) >= sizeof cu->options)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "serializing plan: CUDA section with %u images, precision %u",
                     cu->num_images, cu->precision);
  drt_bw_u8(w, cu->precision);
  drt_bw_u64(w, cu->source_hash);
  drt_bw_u32(w, cu->nvrtc_version);
  drt_bw_str(w, cu->options);
  drt_bw_u32(w, cu->num_images);
  size_t table = w->size;
  for (uint32_t i = 0; i < cu->num_images; i++) {
    const drt_plan_cuda_image *im = &cu->images[i];
    if (strnlen(im->arch, sizeof im->arch) >= sizeof im->arch || !im->arch[0] || !im->data || im->size == 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "serializing plan: CUDA image %u is empty or unnamed", i);
    drt_bw_str(w, im->arch);
    drt_bw_u64(w, 0); /* offset, patched below */
    drt_bw_u64(w, im->size);
  }
  size_t entry = table;
  for (uint32_t i = 0; i < cu->num_images && !w->failed; i++) {
    const drt_plan_cuda_image *im = &cu->images[i];
    drt_bw_align(w, DRT_PLAN_ALIGN);
    uint64_t off = w->size;
    entry += 4 + strlen(im->arch);
    for (int b = 0; b < 8 && !w->failed; b++) w->data[entry + (size_t)b] = (uint8_t)(off >> (8 * b));
    entry += 16;
    drt_bw_put(w, im->data, (size_t)im->size);
  }
  if (w->failed) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "serializing plan: CUDA section");
  return DRT_OK;
}

/* Appends g in the GRAPH encoding to w and its constants to the placer's weights (64-aligned). */
static drt_status encode_graph(const drt_graph *g, drt_bytes_writer *w, placer *pl) {
  for (size_t i = 0; i < g->num_nodes; i++)
    for (int a = 0; a < g->nodes[i]->num_attrs; a++)
      if (g->nodes[i]->attrs[a].type == DRT_ATTR_GRAPH) {
        char d[256];
        return DRT_ERROR(DRT_STATUS_INTERNAL, "%s: a subgraph reached the plan (control flow is lowered before)",
                         drt_node_describe(g->nodes[i], d, sizeof d));
      }
  drt_plan_write_graph(w, g, place_const, pl);
  if (w->failed || pl->failed) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "serializing plan");
  return DRT_OK;
}

static void write_signature(drt_bytes_writer *sig, const drt_graph *g, const uint8_t *in_roles, const uint8_t *out_roles) {
  for (int list = 0; list < 2; list++) {
    size_t n = list ? g->num_outputs : g->num_inputs;
    drt_bw_u32(sig, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
      const drt_value *v = list ? g->outputs[i] : g->inputs[i];
      drt_bw_str(sig, v->name);
      drt_bw_u8(sig, list ? (out_roles ? out_roles[i] : 0) : (in_roles ? in_roles[i] : 0));
      drt_bw_u8(sig, (uint8_t)v->dtype);
      drt_bw_u8(sig, (uint8_t)v->shape.rank);
      for (int d = 0; d < v->shape.rank; d++) drt_bw_i64(sig, v->shape.dims[d]);
    }
  }
}

static void write_memplan(drt_bytes_writer *memplan, const drt_graph *g) {
  if (!g->mem_planned) return;
  drt_bw_u64(memplan, g->mem_arena_bytes);
  drt_bw_u32(memplan, (uint32_t)g->num_values);
  uint32_t nviews = 0;
  for (size_t i = 0; i < g->num_values; i++) {
    drt_bw_i64(memplan, g->values[i]->mem_offset);
    nviews += g->values[i]->view_of != NULL;
  }
  drt_bw_u32(memplan, nviews);
  for (size_t i = 0; i < g->num_values && nviews; i++) {
    const drt_value *v = g->values[i];
    if (!v->view_of) continue;
    uint32_t root = 0;
    while (root < g->num_values && g->values[root] != v->view_of) root++;
    drt_bw_u32(memplan, (uint32_t)i);
    drt_bw_u32(memplan, root);
    drt_bw_i64(memplan, v->view_offset);
  }
}

/* Sections beyond the fixed list: one BUCKET per extra bucket, one PROVENANCE per bucket, the
 * WEIGHTMAP. Written after the constants of every graph are placed. */
#define MAX_EXTRA_SECTIONS (DRT_PLAN_MAX_SECTIONS - 16)
typedef struct extra_sections {
  uint32_t n;
  uint32_t type[MAX_EXTRA_SECTIONS];
  drt_bytes_writer w[MAX_EXTRA_SECTIONS];
} extra_sections;

static drt_status write_extra_sections(const drt_plan_contents *c, placer *pl, extra_sections *x) {
  uint32_t nb = c->num_buckets > 1 ? c->num_buckets : 1;
  if (nb - 1 + (c->num_provenance) + 1 > MAX_EXTRA_SECTIONS)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "serializing plan: %u buckets is more than a plan holds", nb);
  for (uint32_t b = 1; b < nb; b++) {
    const drt_graph *bg = c->buckets[b];
    drt_bytes_writer gw = {0}, sw = {0}, mw = {0};
    pl->dedupe = true;
    drt_status st = encode_graph(bg, &gw, pl);
    pl->dedupe = false;
    write_signature(&sw, bg, c->input_roles, c->output_roles);
    write_memplan(&mw, bg);
    drt_bytes_writer *w = &x->w[x->n];
    x->type[x->n++] = DRT_PLAN_SECTION_BUCKET;
    drt_bw_u32(w, b);
    drt_bw_u64(w, gw.size);
    drt_bw_put(w, gw.data, gw.size);
    drt_bw_u64(w, sw.size);
    drt_bw_put(w, sw.data, sw.size);
    drt_bw_u64(w, mw.size);
    drt_bw_put(w, mw.data, mw.size);
    if (gw.failed || sw.failed || mw.failed) st = st ? st : DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "serializing plan");
    drt_bw_free(&gw);
    drt_bw_free(&sw);
    drt_bw_free(&mw);
    DRT_RETURN_IF_ERROR(st);
  }
  for (uint32_t b = 0; b < c->num_provenance; b++) {
    if (!c->provenance[b]) continue;
    drt_bytes_writer *w = &x->w[x->n];
    x->type[x->n++] = DRT_PLAN_SECTION_PROVENANCE;
    drt_provenance_write(w, c->provenance[b], placed_offset, pl);
  }
  if (c->weight_map) {
    drt_bytes_writer *w = &x->w[x->n];
    x->type[x->n++] = DRT_PLAN_SECTION_WEIGHTMAP;
    drt_weight_map_write(w, c->weight_map);
  }
  for (uint32_t i = 0; i < x->n; i++)
    if (x->w[i].failed) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "serializing plan");
  return DRT_OK;
}

drt_status drt_plan_serialize(const drt_plan_contents *c, void **bytes, size_t *size) {
  const drt_graph *g = c->graph;
  drt_bytes_writer weights = {0}, graph = {0}, sig = {0}, sched = {0}, target = {0}, memplan = {0}, file = {0};
  drt_bytes_writer stats = {0}, guidance = {0}, stages = {0}, cuda = {0};
  uint64_t *const_off = NULL;
  placer pl = {&weights, NULL, 0, 0, false, false};
  extra_sections extra;
  memset(&extra, 0, sizeof extra);
  drt_status st = encode_graph(g, &graph, &pl);
  if (st) goto done;
  write_signature(&sig, g, c->input_roles, c->output_roles);
  if (c->has_schedule) {
    drt_bw_str(&sched, c->schedule.name);
    drt_bw_str(&sched, c->schedule.params);
    drt_bw_u32(&sched, c->schedule.num_steps);
    drt_bw_f64(&sched, c->schedule.init_noise_sigma);
    for (uint32_t s = 0; s < c->schedule.num_steps; s++)
      for (int k = 0; k < DRT_SCHED_SCALARS; k++) drt_bw_f64(&sched, c->schedule.steps[s][k]);
  }
  if (c->cuda_archs[0]) drt_bw_str(&target, c->cuda_archs);
  if (c->cuda.present) {
    st = write_cuda(&cuda, &c->cuda);
    if (st) goto done;
  }
  write_memplan(&memplan, g);
  if (c->num_stats) {
    drt_bw_u32(&stats, c->num_stats);
    for (uint32_t i = 0; i < c->num_stats; i++) {
      drt_bw_str(&stats, c->stats[i].key);
      drt_bw_f64(&stats, c->stats[i].value);
    }
  }
  if (c->has_guidance) {
    drt_bw_f64(&guidance, c->guidance.default_scale);
    drt_bw_str(&guidance, c->guidance.mode);
    drt_bw_f64(&guidance, c->guidance.phi);
    drt_bw_f64(&guidance, c->guidance.eta);
    drt_bw_f64(&guidance, c->guidance.norm_threshold);
    drt_bw_f64(&guidance, c->guidance.momentum);
  }
  if (c->num_stages) {
    if (c->num_stages > DRT_PLAN_MAX_STAGES) {
      st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "serializing plan: %u stages", c->num_stages);
      goto done;
    }
    drt_bw_u32(&stages, c->num_stages);
    for (uint32_t k = 0; k < c->num_stages; k++) {
      const drt_plan_stage *sg = &c->stages[k];
      drt_bw_u8(&stages, sg->kind);
      st = encode_graph(sg->graph, &stages, &pl);
      if (st) goto done;
      drt_bw_u32(&stages, sg->table_steps);
      for (uint32_t r = 0; r < sg->table_steps; r++) drt_bw_f64(&stages, sg->table_t[r]);
      for (size_t j = 0; j < sg->graph->num_outputs && sg->table_steps; j++) {
        const drt_value *o = sg->graph->outputs[j];
        drt_tensor t = {o->dtype, o->shape, NULL};
        uint64_t nb = (uint64_t)drt_tensor_nbytes(&t) * sg->table_steps;
        drt_bw_align(&weights, DRT_PLAN_ALIGN);
        drt_bw_u64(&stages, weights.size);
        drt_bw_u64(&stages, nb);
        drt_bw_put(&weights, sg->tables[j], (size_t)nb);
      }
    }
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
              {DRT_PLAN_SECTION_MEMPLAN, &memplan},
              {DRT_PLAN_SECTION_STATS, &stats},
              {DRT_PLAN_SECTION_GUIDANCE, &guidance},
              {DRT_PLAN_SECTION_STAGES, &stages},
              {DRT_PLAN_SECTION_CUDA, &cuda}};
  st = write_extra_sections(c, &pl, &extra);
  if (st) goto done;
  uint32_t nsec = 0;
  uint64_t offs[DRT_PLAN_MAX_SECTIONS], sizes[DRT_PLAN_MAX_SECTIONS];
  uint32_t types[DRT_PLAN_MAX_SECTIONS], crcs[DRT_PLAN_MAX_SECTIONS];
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
  for (uint32_t i = 0; i < extra.n && nsec < DRT_PLAN_MAX_SECTIONS; i++) {
    drt_bw_align(&file, DRT_PLAN_ALIGN);
    types[nsec] = extra.type[i];
    offs[nsec] = file.size;
    sizes[nsec] = extra.w[i].size;
    crcs[nsec] = drt_crc32(extra.w[i].data, extra.w[i].size);
    drt_bw_put(&file, extra.w[i].data, extra.w[i].size);
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
  free(pl.items);
  for (uint32_t i = 0; i < extra.n; i++) drt_bw_free(&extra.w[i]);
  drt_bw_free(&weights);
  drt_bw_free(&graph);
  drt_bw_free(&sig);
  drt_bw_free(&sched);
  drt_bw_free(&target);
  drt_bw_free(&memplan);
  drt_bw_free(&stats);
  drt_bw_free(&guidance);
  drt_bw_free(&stages);
  drt_bw_free(&cuda);
  drt_bw_free(&file);
  return st;
}

/* ---- reading ---------------------------------------------------------------------- */
static uint64_t sat_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

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

static int main_input(const drt_graph *g, const char *name) {
  for (size_t i = 0; i < g->num_inputs; i++)
    if (strcmp(g->inputs[i]->name, name) == 0) return (int)i;
  return -1;
}

/* The STAGES section (layout in plan_format.h); checks every stage input and output against
 * the main graph's inputs. */
static drt_status parse_stages(drt_bytes_reader *r, const uint8_t *weights, uint64_t weights_size,
                               drt_plan_contents *out) {
  const drt_graph *mg = out->graph;
  uint32_t n = drt_br_u32(r);
  if (r->failed || n == 0 || n > DRT_PLAN_MAX_STAGES) return CORRUPT("%u stages (1..%d allowed)", n, DRT_PLAN_MAX_STAGES);
  uint32_t *fed = calloc(mg->num_inputs + 1, sizeof(uint32_t));
  if (!fed) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "plan stages");
  drt_status st = DRT_OK;
  for (uint32_t k = 0; k < n && !st; k++) {
    drt_plan_stage *sg = &out->stages[k];
    sg->kind = drt_br_u8(r);
    if (r->failed || (sg->kind != DRT_PLAN_STAGE_PROLOGUE && sg->kind != DRT_PLAN_STAGE_STEP)) {
      st = CORRUPT("stage %u has kind %u", k, sg->kind);
      break;
    }
    for (uint32_t j = 0; j < k; j++)
      if (out->stages[j].kind == sg->kind) st = CORRUPT("two stages of kind %u", sg->kind);
    if (st) break;
    st = parse_graph(r, weights, weights_size, &sg->graph);
    if (st) break;
    out->num_stages = k + 1;
    const drt_graph *g = sg->graph;
    uint32_t rows = drt_br_u32(r);
    if (r->failed || rows > 100000 || (rows && sg->kind != DRT_PLAN_STAGE_STEP) ||
        (uint64_t)rows * 8 > r->size - r->pos) {
      st = CORRUPT("stage %u: bad table row count %u", k, rows);
      break;
    }
    sg->table_t = malloc((size_t)rows * sizeof(double) + 8);
    sg->tables = calloc(g->num_outputs + 1, sizeof(void *));
    if (!sg->table_t || !sg->tables) {
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "plan stages");
      break;
    }
    for (uint32_t i = 0; i < rows; i++) sg->table_t[i] = drt_br_f64(r);
    sg->table_steps = rows;
    for (size_t j = 0; j < g->num_outputs && rows && !st; j++) {
      drt_tensor t = {g->outputs[j]->dtype, g->outputs[j]->shape, NULL};
      uint64_t off = drt_br_u64(r), nb = drt_br_u64(r);
      if (r->failed || off % DRT_PLAN_ALIGN || off > weights_size || nb > weights_size - off ||
          nb != (uint64_t)drt_tensor_nbytes(&t) * rows)
        st = CORRUPT("stage %u: table of '%s' is outside the weights section or has the wrong size", k,
                     g->outputs[j]->name);
      else sg->tables[j] = weights + off;
    }
    /* wiring against the main graph */
    for (size_t i = 0; i < g->num_inputs && !st; i++) {
      const drt_value *v = g->inputs[i];
      int m = main_input(mg, v->name);
      uint8_t role = m >= 0 ? out->input_roles[m] : 0;
      if (m < 0 || role == DRT_PLAN_ROLE_HOISTED || v->dtype != mg->inputs[m]->dtype ||
          !drt_shape_equal(&v->shape, &mg->inputs[m]->shape) ||
          (sg->kind == DRT_PLAN_STAGE_STEP && role != DRT_PLAN_ROLE_TIMESTEP))
        st = CORRUPT("stage %u input '%s' does not match a user input of the graph%s", k, v->name,
                     sg->kind == DRT_PLAN_STAGE_STEP ? " (a step stage reads only the timestep)" : "");
    }
    for (size_t i = 0; i < g->num_outputs && !st; i++) {
      const drt_value *v = g->outputs[i];
      int m = main_input(mg, v->name);
      if (m < 0 || out->input_roles[m] != DRT_PLAN_ROLE_HOISTED || v->dtype != mg->inputs[m]->dtype ||
          !drt_shape_equal(&v->shape, &mg->inputs[m]->shape) || fed[m]++)
        st = CORRUPT("stage %u output '%s' does not feed exactly one hoisted graph input", k, v->name);
    }
  }
  if (!st && r->pos != r->size) st = CORRUPT("%zu trailing bytes", r->size - r->pos);
  bool hoisted_seen = false;
  for (size_t i = 0; i < mg->num_inputs && !st; i++) {
    bool h = out->input_roles[i] == DRT_PLAN_ROLE_HOISTED;
    if (h && !fed[i]) st = CORRUPT("hoisted input '%s' is fed by no stage", mg->inputs[i]->name);
    if (!h && hoisted_seen) st = CORRUPT("user input '%s' follows a hoisted input", mg->inputs[i]->name);
    hoisted_seen |= h;
  }
  free(fed);
  return st;
}

drt_status drt_plan_read_graph_prefix(const uint8_t *data, size_t size, const uint8_t *weights,
                                      uint64_t weights_size, drt_graph **out, size_t *used) {
  *out = NULL;
  drt_bytes_reader r = {data, size, 0, false};
  DRT_RETURN_IF_ERROR(parse_graph(&r, weights ? weights : data, weights ? weights_size : 0, out));
  *used = r.pos;
  return DRT_OK;
}

drt_status drt_plan_read_graph(const uint8_t *data, size_t size, const uint8_t *weights, uint64_t weights_size,
                               drt_graph **out) {
  size_t used;
  DRT_RETURN_IF_ERROR(drt_plan_read_graph_prefix(data, size, weights, weights_size, out, &used));
  if (used != size) {
    drt_graph_destroy(*out);
    *out = NULL;
    return CORRUPT("graph encoding followed by %zu unexpected bytes", size - used);
  }
  return DRT_OK;
}

/* SIGNATURE: names, dtypes and shapes must match the graph's inputs/outputs in order. Roles go
 * to in_roles/out_roles (malloc'd) or, when `want_in`/`want_out` are given (shape buckets), must
 * equal them. */
static drt_status parse_signature(drt_bytes_reader *sr, const drt_graph *g, const char *label, uint8_t **in_roles,
                                  uint8_t **out_roles, const uint8_t *want_in, const uint8_t *want_out) {
  for (int list = 0; list < 2; list++) {
    uint32_t n = drt_br_u32(sr);
    size_t want = list ? g->num_outputs : g->num_inputs;
    if (sr->failed || n != want)
      return CORRUPT("'%s': signature lists %u %s, the graph has %zu", label, n, list ? "outputs" : "inputs", want);
    uint8_t *roles = calloc(n + 1, 1);
    if (!roles) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "plan signature");
    const uint8_t *expect_roles = list ? want_out : want_in;
    if (!expect_roles) {
      if (list) *out_roles = roles;
      else *in_roles = roles;
    }
    for (uint32_t i = 0; i < n; i++) {
      uint32_t len;
      const char *name = drt_br_str(sr, DRT_PLAN_MAX_STRING, &len);
      roles[i] = drt_br_u8(sr);
      drt_dtype dt;
      drt_shape s;
      drt_status st = read_shape(sr, &dt, &s);
      const drt_value *v = list ? g->outputs[i] : g->inputs[i];
      if (st || !name || len != strlen(v->name) || memcmp(name, v->name, len) != 0 || dt != v->dtype ||
          !drt_shape_equal(&s, &v->shape) || roles[i] > DRT_PLAN_ROLE_MAX_ ||
          (expect_roles && roles[i] != expect_roles[i])) {
        drt_status_free(st);
        if (expect_roles) free(roles);
        return CORRUPT("'%s': signature entry %u does not match the graph", label, i);
      }
    }
    if (expect_roles) free(roles);
  }
  return DRT_OK;
}

/* The views of a MEMPLAN (format version 2; absent in version 1): u32 n, then n x (u32 value,
 * u32 root, i64 element offset). Each must be what the memory plan pass would make of the
 * graph: the producer's output is that region of its input 0 (drt_node_output_is_region), the
 * root is that input's root, the offset 64-byte aligned in every storage type, and the value's
 * planned offset the root's plus the region's bytes. Anything else is a corrupt plan. */
static drt_status parse_memplan_views(drt_bytes_reader *mr, drt_graph *g, const char *label) {
  if (mr->pos == mr->size) return DRT_OK;
  uint32_t n = drt_br_u32(mr);
  if (mr->failed || n > g->num_values || (uint64_t)n * 16 != mr->size - mr->pos)
    return CORRUPT("'%s': malformed view list in the memory plan section", label);
  for (uint32_t k = 0; k < n; k++) {
    uint32_t vi = drt_br_u32(mr), ri = drt_br_u32(mr);
    int64_t off = drt_br_i64(mr);
    if (mr->failed || vi >= g->num_values || ri >= g->num_values || vi == ri)
      return CORRUPT("'%s': memory plan view %u names no value", label, k);
    drt_value *v = g->values[vi], *r = g->values[ri];
    bool input_root = r->kind == DRT_VALUE_INPUT;
    if (v->is_graph_output)
      return CORRUPT("'%s': memory plan makes graph output '%s' a view", label, v->name);
    if (v->view_of || (input_root ? v->mem_offset != -1 : v->mem_offset < 0 || r->mem_offset < 0))
      return CORRUPT("'%s': memory plan view of '%s' on '%s': both must be planned (or the root a graph input), once",
                     label, v->name, r->name);
    v->view_of = r;
    v->view_offset = off;
  }
  for (size_t i = 0; i < g->num_nodes; i++) {
    const drt_node *nd = g->nodes[i];
    for (int j = 0; j < nd->num_outputs; j++) {
      drt_value *v = nd->outputs[j];
      if (!v->view_of) continue;
      const drt_value *in = nd->num_inputs > 0 ? nd->inputs[0] : NULL;
      int64_t off;
      bool ok = in && (in->mem_offset >= 0 || in->kind == DRT_VALUE_INPUT || in->view_of) &&
                drt_node_output_is_region(nd, j, &off);
      if (ok) {
        off += in->view_of ? in->view_offset : 0;
        const drt_value *root = in->view_of ? in->view_of : in;
        ok = root == v->view_of && off == v->view_offset && !root->view_of &&
             drt_view_offset_aligned(v->dtype, off) &&
             (root->kind == DRT_VALUE_INPUT
                  ? v->mem_offset == -1 && off + drt_shape_numel(&v->shape) <= drt_shape_numel(&root->shape)
                  : root->mem_offset + off * (int64_t)drt_dtype_size(v->dtype) == v->mem_offset);
      }
      if (!ok)
        return CORRUPT("'%s': memory plan makes '%s' a view of '%s' at element %" PRId64
                       ", which its producer '%s' (%s) does not give",
                       label, v->name, v->view_of->name, v->view_offset, nd->name, drt_op_name(nd->op));
    }
  }
  for (size_t i = 0; i < g->num_values; i++) {
    const drt_value *v = g->values[i];
    if (v->view_of && (v->kind != DRT_VALUE_INTERMEDIATE || !v->producer))
      return CORRUPT("'%s': memory plan makes '%s', which no node produces, a view", label, v->name);
  }
  return DRT_OK;
}

/* MEMPLAN for graph g (sets mem_offset / mem_planned / mem_arena_bytes). */
static drt_status parse_memplan(drt_bytes_reader *mr, drt_graph *g, const char *label) {
  uint64_t arena = drt_br_u64(mr), planned_bytes = 0;
  uint32_t nv = drt_br_u32(mr);
  if (mr->failed || nv != g->num_values || (uint64_t)nv * 8 > mr->size - mr->pos)
    return CORRUPT("'%s': malformed memory plan section", label);
  for (uint32_t i = 0; i < nv; i++) {
    drt_value *v = g->values[i];
    int64_t off = drt_br_i64(mr);
    drt_tensor vt = {v->dtype, v->shape, NULL};
    uint64_t nb = drt_tensor_nbytes(&vt);
    bool planned = v->kind == DRT_VALUE_INTERMEDIATE && !v->is_graph_output;
    if (planned && off == -1) { /* a view of a graph input: the view list must say so (checked below) */
      v->mem_offset = -1;
      continue;
    }
    if (planned && (off < 0 || (uint64_t)off > arena || nb > arena - (uint64_t)off))
      return CORRUPT("'%s': memory plan places '%s' outside the %" PRIu64 "-byte arena", label, v->name, arena);
    v->mem_offset = planned ? off : -1;
    if (planned) planned_bytes = sat_add(planned_bytes, ((nb ? nb : 1) + 63) & ~(uint64_t)63);
  }
  /* a planner never needs more than every value side by side: refuse bigger claims before the
     session allocates the arena */
  if (arena > planned_bytes)
    return CORRUPT("'%s': memory plan arena of %" PRIu64 " bytes exceeds the %" PRIu64 " bytes of all its values",
                   label, arena, planned_bytes);
  DRT_RETURN_IF_ERROR(parse_memplan_views(mr, g, label));
  for (uint32_t i = 0; i < nv; i++) {
    const drt_value *v = g->values[i];
    if (v->kind == DRT_VALUE_INTERMEDIATE && !v->is_graph_output && v->mem_offset < 0 &&
        !(v->view_of && v->view_of->kind == DRT_VALUE_INPUT))
      return CORRUPT("'%s': memory plan leaves '%s' without storage", label, v->name);
  }
  g->mem_planned = true;
  g->mem_arena_bytes = arena;
  return DRT_OK;
}

/* One BUCKET section: graph, signature (same names, dtypes, ranks and roles as bucket 0) and
 * memory plan. */
static drt_status parse_bucket(const uint8_t *data, size_t size, const uint8_t *wdata, uint64_t wsize,
                               const drt_plan_contents *c, uint32_t want_index, const char *label, drt_graph **out) {
  *out = NULL;
  drt_bytes_reader r = {data, size, 0, false};
  uint32_t index = drt_br_u32(&r);
  uint64_t gs = drt_br_u64(&r);
  if (r.failed || index != want_index || gs > r.size - r.pos)
    return CORRUPT("'%s': bucket section %u: bad index or truncated graph", label, want_index);
  drt_graph *g;
  DRT_RETURN_IF_ERROR_CTX(drt_plan_read_graph(data + r.pos, (size_t)gs, wdata, wsize, &g), "'%s': bucket %u", label,
                          index);
  r.pos += (size_t)gs;
  drt_status st = DRT_OK;
  const drt_graph *g0 = c->graph;
  if (g->num_inputs != g0->num_inputs || g->num_outputs != g0->num_outputs)
    st = CORRUPT("'%s': bucket %u has other inputs or outputs than bucket 0", label, index);
  for (int list = 0; list < 2 && !st; list++) {
    size_t n = list ? g->num_outputs : g->num_inputs;
    for (size_t i = 0; i < n && !st; i++) {
      const drt_value *a = list ? g->outputs[i] : g->inputs[i], *b = list ? g0->outputs[i] : g0->inputs[i];
      if (strcmp(a->name, b->name) != 0 || a->dtype != b->dtype || a->shape.rank != b->shape.rank)
        st = CORRUPT("'%s': bucket %u: %s %zu ('%s') differs from bucket 0 in name, dtype or rank", label, index,
                     list ? "output" : "input", i, a->name);
    }
  }
  uint64_t ss = st ? 0 : drt_br_u64(&r);
  if (!st && (r.failed || ss > r.size - r.pos)) st = CORRUPT("'%s': bucket %u: truncated signature", label, index);
  if (!st) {
    drt_bytes_reader sr = {data + r.pos, (size_t)ss, 0, false};
    st = parse_signature(&sr, g, label, NULL, NULL, c->input_roles, c->output_roles);
    if (!st && sr.pos != sr.size) st = CORRUPT("'%s': bucket %u: trailing signature bytes", label, index);
    r.pos += (size_t)ss;
  }
  uint64_t ms = st ? 0 : drt_br_u64(&r);
  if (!st && (r.failed || ms != r.size - r.pos)) st = CORRUPT("'%s': bucket %u: truncated memory plan", label, index);
  if (!st && ms) {
    drt_bytes_reader mr = {data + r.pos, (size_t)ms, 0, false};
    st = parse_memplan(&mr, g, label);
  }
  if (st) {
    drt_graph_destroy(g);
    return drt_status_annotate(st, "bucket %u", index);
  }
  *out = g;
  return DRT_OK;
}

/* The CUDA section (layout in plan_format.h); images point into the section. */
static drt_status parse_cuda(const uint8_t *data, size_t size, drt_plan_cuda *cu) {
  drt_bytes_reader r = {data, size, 0, false};
  memset(cu, 0, sizeof *cu);
  cu->precision = drt_br_u8(&r);
  cu->source_hash = drt_br_u64(&r);
  cu->nvrtc_version = drt_br_u32(&r);
  uint32_t l;
  const char *opt = drt_br_str(&r, sizeof cu->options - 1, &l);
  uint32_t n = drt_br_u32(&r);
  if (r.failed || !opt) return CORRUPT("truncated header");
  if (cu->precision > 3) return CORRUPT("precision %u (0..3 allowed)", cu->precision);
  if (memchr(opt, 0, l)) return CORRUPT("options contain a NUL byte");
  memcpy(cu->options, opt, l);
  if (n == 0 || n > DRT_PLAN_MAX_CUDA_IMAGES) return CORRUPT("%u images (1..%d allowed)", n, DRT_PLAN_MAX_CUDA_IMAGES);
  uint64_t offs[DRT_PLAN_MAX_CUDA_IMAGES];
  for (uint32_t i = 0; i < n; i++) {
    drt_plan_cuda_image *im = &cu->images[i];
    const char *a = drt_br_str(&r, sizeof im->arch - 1, &l);
    offs[i] = drt_br_u64(&r);
    im->size = drt_br_u64(&r);
    if (r.failed || !a) return CORRUPT("truncated image table (image %u)", i);
    memcpy(im->arch, a, l);
    /* well formed: sm_XX or compute_XX, XX 2-3 digits, optional a/f suffix */
    const char *d = strncmp(im->arch, "sm_", 3) == 0 ? im->arch + 3 : strncmp(im->arch, "compute_", 8) == 0 ? im->arch + 8 : NULL;
    size_t nd = 0;
    while (d && d[nd] >= '0' && d[nd] <= '9') nd++;
    if (!d || nd < 2 || nd > 3 || memchr(a, 0, l) || (d[nd] && ((d[nd] != 'a' && d[nd] != 'f') || d[nd + 1])))
      return CORRUPT("image %u: malformed arch '%.*s'", i, (int)l, a);
    for (uint32_t j = 0; j < i; j++)
      if (strcmp(cu->images[j].arch, im->arch) == 0) return CORRUPT("arch %s appears twice", im->arch);
  }
  uint64_t pos = r.pos;
  for (uint32_t i = 0; i < n; i++) {
    drt_plan_cuda_image *im = &cu->images[i];
    if (offs[i] % DRT_PLAN_ALIGN || offs[i] < pos || offs[i] > size || im->size == 0 || im->size > size - offs[i])
      return CORRUPT("image %u (%s): [%" PRIu64 ", +%" PRIu64 ") is outside the section or overlaps", i, im->arch,
                     offs[i], im->size);
    im->data = data + offs[i];
    pos = offs[i] + im->size;
    bool ptx = im->arch[0] == 'c';
    if (ptx ? data[pos - 1] != 0 : (im->size < 4 || memcmp(im->data, "\x7f" "ELF", 4) != 0))
      return CORRUPT("image %u (%s) is not %s", i, im->arch, ptx ? "NUL-terminated PTX" : "a cubin (ELF)");
  }
  if (pos != size) return CORRUPT("%" PRIu64 " trailing bytes", (uint64_t)size - pos);
  cu->num_images = n;
  cu->present = true;
  return DRT_OK;
}

const char *drt_plan_section_name(uint32_t t) {
  switch (t) {
    case DRT_PLAN_SECTION_WEIGHTS: return "weights";
    case DRT_PLAN_SECTION_GRAPH: return "graph";
    case DRT_PLAN_SECTION_SIGNATURE: return "signature";
    case DRT_PLAN_SECTION_SCHEDULE: return "schedule";
    case DRT_PLAN_SECTION_TARGET: return "target";
    case DRT_PLAN_SECTION_MEMPLAN: return "memplan";
    case DRT_PLAN_SECTION_STATS: return "stats";
    case DRT_PLAN_SECTION_GUIDANCE: return "guidance";
    case DRT_PLAN_SECTION_STAGES: return "stages";
    case DRT_PLAN_SECTION_PROVENANCE: return "provenance";
    case DRT_PLAN_SECTION_WEIGHTMAP: return "weightmap";
    case DRT_PLAN_SECTION_BUCKET: return "bucket";
    case DRT_PLAN_SECTION_CUDA: return "cuda";
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
  if (version < DRT_PLAN_FORMAT_VERSION_MIN || version > DRT_PLAN_FORMAT_VERSION) {
    st = DRT_ERROR(DRT_STATUS_UNSUPPORTED, "'%s' has plan format version %u (written by distilrt %u.%u.%u); this "
                   "distilrt %s reads versions %u to %u: recompile the model", label, version, writer >> 16,
                   (writer >> 8) & 0xff, writer & 0xff, DRT_VERSION_STRING, DRT_PLAN_FORMAT_VERSION_MIN,
                   DRT_PLAN_FORMAT_VERSION);
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
  const uint8_t *sec_data[16] = {0};
  uint64_t sec_size[16] = {0};
  /* repeatable sections (buckets, provenance) and the weight map, in table order */
  uint32_t n_bucket_secs = 0, n_prov_secs = 0;
  const uint8_t *bucket_data[DRT_PLAN_MAX_SECTIONS], *prov_data[DRT_PLAN_MAX_SECTIONS], *wmap_data = NULL;
  uint64_t bucket_size[DRT_PLAN_MAX_SECTIONS], prov_size[DRT_PLAN_MAX_SECTIONS], wmap_size = 0;
  const uint8_t *cuda_data = NULL;
  uint64_t cuda_size = 0;
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
    if (type == DRT_PLAN_SECTION_BUCKET) {
      bucket_data[n_bucket_secs] = b + off;
      bucket_size[n_bucket_secs++] = sz;
    } else if (type == DRT_PLAN_SECTION_PROVENANCE) {
      prov_data[n_prov_secs] = b + off;
      prov_size[n_prov_secs++] = sz;
    } else if (type == DRT_PLAN_SECTION_WEIGHTMAP) {
      if (wmap_data) {
        st = CORRUPT("'%s': duplicate weightmap section", label);
        goto fail;
      }
      wmap_data = b + off;
      wmap_size = sz;
    } else if (type == DRT_PLAN_SECTION_CUDA) {
      if (cuda_data) {
        st = CORRUPT("'%s': duplicate cuda section", label);
        goto fail;
      }
      cuda_data = b + off;
      cuda_size = sz;
    }
    if (out->num_sections < DRT_PLAN_MAX_SECTIONS) {
      out->sections[out->num_sections].type = type;
      out->sections[out->num_sections].crc = crc;
      out->sections[out->num_sections].offset = off;
      out->sections[out->num_sections].size = sz;
      out->num_sections++;
    }
    if (type >= 1 && type < 16) {
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
  {
    drt_bytes_reader sr = {sec_data[DRT_PLAN_SECTION_SIGNATURE], (size_t)sec_size[DRT_PLAN_SECTION_SIGNATURE], 0,
                           false};
    st = parse_signature(&sr, out->graph, label, &out->input_roles, &out->output_roles, NULL, NULL);
    if (st) goto fail_owned;
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
    st = parse_memplan(&mr, out->graph, label);
    if (st) goto fail_owned;
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
  if (sec_data[DRT_PLAN_SECTION_STATS]) {
    drt_bytes_reader xr = {sec_data[DRT_PLAN_SECTION_STATS], (size_t)sec_size[DRT_PLAN_SECTION_STATS], 0, false};
    uint32_t n = drt_br_u32(&xr);
    for (uint32_t i = 0; i < n && !xr.failed; i++) {
      uint32_t l;
      const char *k = drt_br_str(&xr, sizeof out->stats[0].key - 1, &l);
      double v = drt_br_f64(&xr);
      if (!k || xr.failed) break;
      if (out->num_stats < DRT_PLAN_MAX_STATS) {
        memcpy(out->stats[out->num_stats].key, k, l);
        out->stats[out->num_stats].key[l] = 0;
        out->stats[out->num_stats++].value = v;
      }
    }
    if (xr.failed || xr.pos != xr.size) {
      st = CORRUPT("'%s': malformed stats section", label);
      goto fail_owned;
    }
  }
  if (sec_data[DRT_PLAN_SECTION_GUIDANCE]) {
    drt_bytes_reader gr2 = {sec_data[DRT_PLAN_SECTION_GUIDANCE], (size_t)sec_size[DRT_PLAN_SECTION_GUIDANCE], 0, false};
    drt_plan_cfg *gd = &out->guidance;
    uint32_t l;
    gd->default_scale = drt_br_f64(&gr2);
    const char *m = drt_br_str(&gr2, sizeof gd->mode - 1, &l);
    if (m) memcpy(gd->mode, m, l);
    gd->phi = drt_br_f64(&gr2);
    gd->eta = drt_br_f64(&gr2);
    gd->norm_threshold = drt_br_f64(&gr2);
    gd->momentum = drt_br_f64(&gr2);
    int gi = -1;
    for (size_t i = 0; i < out->graph->num_inputs; i++)
      if (out->input_roles[i] == DRT_PLAN_ROLE_GUIDANCE_SCALE) gi = (int)i;
    if (!m || gr2.failed || gr2.pos != gr2.size || gi < 0 || out->graph->inputs[gi]->dtype != DRT_DTYPE_FLOAT32 ||
        drt_shape_numel(&out->graph->inputs[gi]->shape) != 1) {
      st = CORRUPT("'%s': malformed guidance section (or no float32[1] guidance-scale input)", label);
      goto fail_owned;
    }
    out->has_guidance = true;
  }
  if (sec_data[DRT_PLAN_SECTION_STAGES]) {
    drt_bytes_reader pr = {sec_data[DRT_PLAN_SECTION_STAGES], (size_t)sec_size[DRT_PLAN_SECTION_STAGES], 0, false};
    st = parse_stages(&pr, wdata, sec_data[DRT_PLAN_SECTION_WEIGHTS] ? sec_size[DRT_PLAN_SECTION_WEIGHTS] : 0, out);
    if (st) {
      st = drt_status_annotate(st, "'%s': stages section", label);
      goto fail_owned;
    }
  } else {
    for (size_t i = 0; i < out->graph->num_inputs; i++)
      if (out->input_roles[i] == DRT_PLAN_ROLE_HOISTED) {
        st = CORRUPT("'%s': input '%s' is fed by a stage but the plan has no stages section", label,
                     out->graph->inputs[i]->name);
        goto fail_owned;
      }
  }
  out->weights = sec_data[DRT_PLAN_SECTION_WEIGHTS];
  out->weights_size = sec_data[DRT_PLAN_SECTION_WEIGHTS] ? sec_size[DRT_PLAN_SECTION_WEIGHTS] : 0;
  out->buckets = calloc(n_bucket_secs + 1, sizeof *out->buckets);
  out->provenance = calloc(n_prov_secs + 1, sizeof *out->provenance);
  if (!out->buckets || !out->provenance) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "plan buckets");
    goto fail_owned;
  }
  out->buckets[0] = out->graph;
  out->num_buckets = 1;
  if (n_bucket_secs && out->num_stages) {
    st = CORRUPT("'%s': a plan with shape buckets cannot have hoisted stages", label);
    goto fail_owned;
  }
  for (uint32_t i = 0; i < n_bucket_secs; i++) {
    st = parse_bucket(bucket_data[i], (size_t)bucket_size[i], wdata, out->weights_size, out, i + 1, label,
                      &out->buckets[i + 1]);
    if (st) goto fail_owned;
    out->num_buckets++;
  }
  for (uint32_t i = 0; i < n_prov_secs; i++) {
    drt_plan_provenance *pv = NULL;
    /* the bucket index is the section's first field */
    uint32_t bi = prov_size[i] >= 4 ? (uint32_t)prov_data[i][0] | (uint32_t)prov_data[i][1] << 8 |
                                          (uint32_t)prov_data[i][2] << 16 | (uint32_t)prov_data[i][3] << 24
                                    : UINT32_MAX;
    if (bi >= out->num_buckets || out->provenance[bi]) {
      st = CORRUPT("'%s': provenance section for bucket %u: no such bucket, or a second one", label, bi);
      goto fail_owned;
    }
    const drt_graph *pg[1 + DRT_PLAN_MAX_STAGES];
    size_t npg = 0;
    pg[npg++] = out->buckets[bi];
    for (uint32_t k = 0; bi == 0 && k < out->num_stages && k < DRT_PLAN_MAX_STAGES; k++) pg[npg++] = out->stages[k].graph;
    st = drt_provenance_read(prov_data[i], (size_t)prov_size[i], out->weights, out->weights_size, pg, npg, &pv);
    if (st) {
      st = drt_status_annotate(st, "'%s': provenance section", label);
      goto fail_owned;
    }
    out->provenance[bi] = pv;
    if (bi + 1 > out->num_provenance) out->num_provenance = bi + 1;
  }
  if (cuda_data) {
    st = parse_cuda(cuda_data, (size_t)cuda_size, &out->cuda);
    if (!st && !(targets & DRT_PLAN_TARGET_CUDA)) st = CORRUPT("the header's targets do not include CUDA");
    if (st) {
      st = drt_status_annotate(st, "'%s': cuda section", label);
      goto fail_owned;
    }
  }
  if (wmap_data) {
    st = drt_weight_map_read(wmap_data, (size_t)wmap_size, &out->weight_map);
    if (st) {
      st = drt_status_annotate(st, "'%s': weightmap section", label);
      goto fail_owned;
    }
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
  for (uint32_t i = 1; c->buckets && i < c->num_buckets; i++) drt_graph_destroy(c->buckets[i]);
  free(c->buckets);
  for (uint32_t i = 0; c->provenance && i < c->num_provenance; i++) drt_provenance_destroy(c->provenance[i]);
  free(c->provenance);
  drt_weight_map_destroy(c->weight_map);
  drt_graph_destroy(c->graph);
  free(c->input_roles);
  free(c->output_roles);
  free(c->schedule.steps);
  for (uint32_t i = 0; i < c->num_stages && i < DRT_PLAN_MAX_STAGES; i++) {
    drt_graph_destroy(c->stages[i].graph);
    free(c->stages[i].table_t);
    free((void *)c->stages[i].tables);
  }
  free(c->file_data);
  memset(c, 0, sizeof *c);
}

size_t drt_plan_cuda_graphs(const drt_plan_contents *c, const drt_graph **out, size_t max) {
  size_t n = 0;
#define PUT(gr)                \
  do {                         \
    if (n < max) out[n] = (gr); \
    n++;                       \
  } while (0)
  PUT(c->graph);
  for (uint32_t k = 0; k < c->num_stages && k < DRT_PLAN_MAX_STAGES; k++) PUT(c->stages[k].graph);
  for (uint32_t b = 1; c->buckets && b < c->num_buckets; b++) PUT(c->buckets[b]);
#undef PUT
  return n;
}

double drt_plan_stat_get(const drt_plan_contents *c, const char *key, double dflt) {
  for (uint32_t i = 0; i < c->num_stats; i++)
    if (strcmp(c->stats[i].key, key) == 0) return c->stats[i].value;
  return dflt;
}
