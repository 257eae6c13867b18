#include "runtime/refit.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/bytes.h"
#include "runtime/cpu/executor.h"
#include "runtime/plan.h"

#define CORRUPT(...) DRT_ERROR(DRT_STATUS_CORRUPT, __VA_ARGS__)

void drt_plan_view_close(drt_plan_view *v) {
  if (!v) return;
  for (uint32_t i = 0; i < v->num_provenance; i++) drt_provenance_destroy(v->provenance[i]);
  free(v->provenance);
  drt_weight_map_destroy(v->weight_map);
  memset(v, 0, sizeof *v);
}

static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

drt_status drt_plan_view_open(const void *bytes, size_t size, const char *label, drt_plan_view *out) {
  memset(out, 0, sizeof *out);
  const uint8_t *b = bytes;
  out->bytes = b;
  out->size = size;
  out->label = label;
  if (size < DRT_PLAN_HEADER_SIZE || memcmp(b, DRT_PLAN_MAGIC, 8) != 0)
    return CORRUPT("'%s' is not a distilrt plan (bad magic)", label);
  uint32_t version = rd32(b + 8), nsec = rd32(b + 24);
  uint64_t table = rd64(b + 32), fsize = rd64(b + 40);
  if (version < DRT_PLAN_FORMAT_VERSION_MIN || version > DRT_PLAN_FORMAT_VERSION)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "'%s' has plan format version %u; this distilrt reads versions %u to %u",
                     label, version, DRT_PLAN_FORMAT_VERSION_MIN, DRT_PLAN_FORMAT_VERSION);
  if (rd32(b + 48) != drt_crc32(b, 48)) return CORRUPT("'%s': header checksum mismatch", label);
  if (fsize != size) return CORRUPT("'%s' is truncated or padded: header says %" PRIu64 " bytes, file has %zu", label,
                                    fsize, size);
  if (nsec > DRT_PLAN_MAX_SECTIONS || table % DRT_PLAN_ALIGN || table > size ||
      (uint64_t)nsec * DRT_PLAN_SECTION_ENTRY_SIZE > size - table)
    return CORRUPT("'%s': section table out of range", label);
  out->num_sections = nsec;
  out->table_offset = table;
  out->provenance = calloc(nsec + 1, sizeof *out->provenance);
  if (!out->provenance) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "plan view");
  bool have_weights = false;
  drt_status st = DRT_OK;
  /* WEIGHTS first: provenance targets are checked against it */
  for (uint32_t pass = 0; pass < 2 && !st; pass++) {
    for (uint32_t i = 0; i < nsec && !st; i++) {
      const uint8_t *e = b + table + (size_t)i * DRT_PLAN_SECTION_ENTRY_SIZE;
      uint32_t type = rd32(e);
      uint64_t off = rd64(e + 8), sz = rd64(e + 16);
      uint32_t crc = rd32(e + 24);
      if (off % DRT_PLAN_ALIGN || off > size || sz > size - off) {
        st = CORRUPT("'%s': %s section [%" PRIu64 ", +%" PRIu64 ") is outside the file", label,
                     drt_plan_section_name(type), off, sz);
        break;
      }
      if (pass == 0 && type == DRT_PLAN_SECTION_WEIGHTS) {
        if (have_weights) {
          st = CORRUPT("'%s': duplicate weights section", label);
          break;
        }
        have_weights = true;
        out->weights_index = i;
        out->weights = b + off;
        out->weights_offset = off;
        out->weights_size = sz;
        /* the WEIGHTS checksum is checked too: a refit must not launder a corrupted plan */
        if (crc != drt_crc32(b + off, (size_t)sz)) st = CORRUPT("'%s': checksum mismatch in the weights section", label);
      }
      if (pass == 1 && (type == DRT_PLAN_SECTION_PROVENANCE || type == DRT_PLAN_SECTION_WEIGHTMAP ||
                        type == DRT_PLAN_SECTION_STAGES)) {
        if (crc != drt_crc32(b + off, (size_t)sz)) {
          st = CORRUPT("'%s': checksum mismatch in the %s section", label, drt_plan_section_name(type));
          break;
        }
        if (type == DRT_PLAN_SECTION_PROVENANCE) {
          st = drt_provenance_read(b + off, (size_t)sz, out->weights, out->weights_size, NULL, 0,
                                   &out->provenance[out->num_provenance]);
          if (!st) out->num_provenance++;
        } else if (type == DRT_PLAN_SECTION_WEIGHTMAP) {
          if (out->weight_map) st = CORRUPT("'%s': duplicate weight map section", label);
          else st = drt_weight_map_read(b + off, (size_t)sz, &out->weight_map);
        } else {
          out->has_tables = true; /* checked precisely when the tables are recomputed */
        }
        if (st) st = drt_status_annotate(st, "'%s': %s section", label, drt_plan_section_name(type));
      }
    }
    if (pass == 0 && !st && !have_weights) st = CORRUPT("'%s': no weights section", label);
  }
  if (st) drt_plan_view_close(out);
  return st;
}

drt_status drt_plan_view_sources(const drt_plan_view *v, drt_source_info **out, size_t *count) {
  return drt_provenance_sources(v->provenance, v->num_provenance, out, count);
}

/* ---- per-step tables --------------------------------------------------------------------------- */
/* Recomputes the per-step tables of a STAGES section from `weights` (the new WEIGHTS). */
static drt_status refresh_tables(const drt_plan_view *v, uint8_t *weights) {
  const uint8_t *b = v->bytes;
  for (uint32_t i = 0; i < v->num_sections; i++) {
    const uint8_t *e = b + v->table_offset + (size_t)i * DRT_PLAN_SECTION_ENTRY_SIZE;
    if (rd32(e) != DRT_PLAN_SECTION_STAGES) continue;
    drt_bytes_reader r = {b + rd64(e + 8), (size_t)rd64(e + 16), 0, false};
    uint32_t ns = drt_br_u32(&r);
    if (r.failed || ns > 16) return CORRUPT("'%s': stages section: bad stage count", v->label);
    for (uint32_t k = 0; k < ns; k++) {
      (void)drt_br_u8(&r); /* kind */
      drt_graph *sg = NULL;
      size_t used = 0;
      drt_status st = drt_plan_read_graph_prefix(r.data + r.pos, r.size - r.pos, weights, v->weights_size, &sg, &used);
      if (st) return drt_status_annotate(st, "'%s': stage %u", v->label, k);
      r.pos += used;
      uint32_t steps = drt_br_u32(&r);
      if (r.failed || (uint64_t)steps * 8 > r.size - r.pos) {
        drt_graph_destroy(sg);
        return CORRUPT("'%s': stage %u: bad table step count", v->label, k);
      }
      double *tv = malloc(((size_t)steps + 1) * sizeof(double));
      void **rows = calloc(sg->num_outputs + 1, sizeof *rows);
      if (!tv || !rows) st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "step tables");
      for (uint32_t q = 0; !st && q < steps; q++) tv[q] = drt_br_f64(&r);
      for (size_t j = 0; !st && steps && j < sg->num_outputs; j++) {
        uint64_t off = drt_br_u64(&r), nb = drt_br_u64(&r);
        drt_tensor t = {sg->outputs[j]->dtype, sg->outputs[j]->shape, NULL};
        if (r.failed || off % 64 || off > v->weights_size || nb > v->weights_size - off ||
            nb != (uint64_t)drt_tensor_nbytes(&t) * steps)
          st = CORRUPT("'%s': stage %u: table %zu out of range", v->label, k, j);
        else rows[j] = weights + off;
      }
      if (!st) st = drt_stage_tables_recompute(sg, steps, tv, rows);
      free(tv);
      free(rows);
      drt_graph_destroy(sg);
      if (st) return st;
    }
  }
  return DRT_OK;
}

/* ---- refit --------------------------------------------------------------------------------------- */
/* Refits into `w` (a copy of the WEIGHTS section). */
static drt_status refit_into(const drt_plan_view *v, drt_source_table *src, uint64_t fingerprint, uint8_t *w,
                             drt_refit_report *rep) {
  if (v->num_provenance == 0)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "'%s' records no weight provenance (compiled by an older distilrt): "
                     "recompile it to refit", v->label);
  for (uint32_t i = 0; fingerprint && i < v->num_provenance; i++)
    if (v->provenance[i]->fingerprint != fingerprint)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                       "the new model's structure (nodes, names, constant shapes, the weights inside If/Loop/Scan bodies) differs from the model '%s' was "
                       "compiled from: refit needs another checkpoint of the same architecture, exported the same way",
                       v->label);
  return drt_refit_apply(v->provenance, v->num_provenance, src, NULL, w, v->weights_size, rep);
}

drt_status drt_plan_refit_weights(const drt_plan_view *v, drt_source_table *src, uint64_t fingerprint,
                                  uint8_t **weights, drt_refit_report *rep) {
  *weights = NULL;
  uint8_t *w = NULL;
  if (posix_memalign((void **)&w, 64, v->weights_size ? v->weights_size : 64) != 0)
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "refit: %" PRIu64 " bytes of weights", v->weights_size);
  memcpy(w, v->weights, v->weights_size);
  drt_status st = refit_into(v, src, fingerprint, w, rep);
  if (st) {
    free(w);
    return st;
  }
  *weights = w;
  return DRT_OK;
}

drt_status drt_plan_refit(const drt_plan_view *v, drt_source_table *src, uint64_t fingerprint, void **out,
                          size_t *out_size, drt_refit_report *rep) {
  *out = NULL;
  *out_size = 0;
  /* same layout: a copy of the plan whose WEIGHTS section is refitted in place (the section is
     64-aligned in the file, so in a 64-aligned buffer too) */
  uint8_t *copy = NULL;
  if (posix_memalign((void **)&copy, 64, v->size ? v->size : 64) != 0)
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "refit: %zu bytes", v->size);
  memcpy(copy, v->bytes, v->size);
  uint8_t *w = copy + v->weights_offset;
  drt_status st = refit_into(v, src, fingerprint, w, rep);
  if (!st && v->has_tables) st = refresh_tables(v, w);
  /* sources the WEIGHTS section does not hold keep their (new) values in the provenance
     sections, so that a later refit starts from them */
  drt_source_table cur;
  memset(&cur, 0, sizeof cur);
  if (!st) st = drt_refit_current_sources(v->provenance, v->num_provenance, src, NULL, &cur);
  bool patched = false;
  for (uint32_t b = 0; !st && b < v->num_provenance; b++) {
    const drt_plan_provenance *p = v->provenance[b];
    for (size_t i = 0; p && i < p->trace->num_inputs; i++) {
      const drt_named_tensor *x = p->sources[i].default_data ? drt_source_table_find(&cur, p->trace->inputs[i]->name)
                                                             : NULL;
      if (!x) continue;
      memcpy(copy + ((const uint8_t *)p->sources[i].default_data - v->bytes), x->t.data, drt_tensor_nbytes(&x->t));
      patched = true;
    }
  }
  drt_source_table_free(&cur);
  if (st) {
    free(copy);
    return st;
  }
  for (uint32_t i = 0; i < v->num_sections; i++) {
    uint8_t *e = copy + v->table_offset + (size_t)i * DRT_PLAN_SECTION_ENTRY_SIZE;
    uint32_t type = rd32(e);
    if (i != v->weights_index && !(patched && type == DRT_PLAN_SECTION_PROVENANCE)) continue;
    uint64_t off = rd64(e + 8), sz = rd64(e + 16);
    uint32_t crc = drt_crc32(copy + off, (size_t)sz);
    e[24] = (uint8_t)crc, e[25] = (uint8_t)(crc >> 8), e[26] = (uint8_t)(crc >> 16), e[27] = (uint8_t)(crc >> 24);
  }
  *out = copy;
  *out_size = v->size;
  return DRT_OK;
}

drt_status drt_plan_refit_checkpoint(const drt_plan_view *v, const drt_safetensors *ckpt, bool partial, void **out,
                                     size_t *out_size, drt_refit_report *rep) {
  drt_source_info *si = NULL;
  size_t ns = 0;
  drt_source_table t;
  memset(&t, 0, sizeof t);
  DRT_RETURN_IF_ERROR(drt_plan_view_sources(v, &si, &ns));
  drt_status st = drt_source_table_from_checkpoint(&t, si, ns, v->weight_map, ckpt, partial, rep);
  if (!st) st = drt_plan_refit(v, &t, 0, out, out_size, rep);
  drt_source_table_free(&t);
  free(si);
  return st;
}

/* ---- generations of a loaded plan ---------------------------------------------------------------- */
drt_status drt_graph_clone_rebased(const drt_graph *g, const uint8_t *old_base, uint64_t size, const uint8_t *new_base,
                                   drt_graph **out) {
  *out = NULL;
  drt_graph *ng;
  DRT_RETURN_IF_ERROR(drt_graph_create(&ng));
  ng->opset = g->opset;
  ng->name = drt_arena_strdup(ng->arena, g->name ? g->name : "");
  drt_value **map = calloc((size_t)g->next_id + 1, sizeof *map);
  int max_io = 1;
  for (size_t i = 0; i < g->num_nodes; i++) {
    if (g->nodes[i]->num_inputs > max_io) max_io = g->nodes[i]->num_inputs;
    if (g->nodes[i]->num_outputs > max_io) max_io = g->nodes[i]->num_outputs;
  }
  drt_value **io = malloc((size_t)max_io * sizeof *io);
  drt_status st = DRT_OK;
  if (!map || !io || !ng->name) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "cloning a graph");
    goto done;
  }
  for (size_t i = 0; i < g->num_values && !st; i++) {
    const drt_value *v = g->values[i];
    drt_value *nv = drt_graph_add_value(ng, v->name, v->dtype, v->has_shape ? &v->shape : NULL);
    if (!nv) {
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "cloning a graph");
      break;
    }
    nv->kind = v->kind;
    memcpy(nv->dim_params, v->dim_params, sizeof nv->dim_params);
    nv->data = v->data;
    const uint8_t *d = v->data;
    if (d && old_base && d >= old_base && d < old_base + size) nv->data = (void *)(new_base + (d - old_base));
    nv->nbytes = v->nbytes;
    nv->mem_offset = v->mem_offset;
    nv->view_offset = v->view_offset;
    map[v->id] = nv;
  }
  for (size_t i = 0; i < g->num_values && !st; i++)
    if (g->values[i]->view_of) map[g->values[i]->id]->view_of = map[g->values[i]->view_of->id];
  for (size_t i = 0; i < g->num_nodes && !st; i++) {
    const drt_node *n = g->nodes[i];
    for (int j = 0; j < n->num_inputs; j++) io[j] = n->inputs[j] ? map[n->inputs[j]->id] : NULL;
    drt_value *outs[256];
    if (n->num_outputs > 256) {
      st = DRT_ERROR(DRT_STATUS_INTERNAL, "cloning a graph: node '%s' has too many outputs", n->name);
      break;
    }
    for (int j = 0; j < n->num_outputs; j++) outs[j] = map[n->outputs[j]->id];
    drt_node *nn;
    st = drt_graph_add_node(ng, n->op, n->name, io, n->num_inputs, outs, n->num_outputs, &nn);
    if (st) break;
    nn->opset = n->opset;
    nn->attrs = n->attrs; /* shared: the source graph outlives its clones */
    nn->num_attrs = n->num_attrs;
  }
  for (size_t i = 0; i < g->num_inputs && !st; i++) st = drt_graph_add_input(ng, map[g->inputs[i]->id]);
  for (size_t i = 0; i < g->num_outputs && !st; i++) st = drt_graph_add_output(ng, map[g->outputs[i]->id]);
  ng->mem_planned = g->mem_planned;
  ng->mem_arena_bytes = g->mem_arena_bytes;
done:
  free(map);
  free(io);
  if (st) {
    drt_graph_destroy(ng);
    return st;
  }
  *out = ng;
  return DRT_OK;
}

drt_status drt_stage_tables_recompute(const drt_graph *sg, uint32_t steps, const double *t, void *const *rows) {
  if (!steps) return DRT_OK;
  if (sg->num_inputs != 1) return DRT_ERROR(DRT_STATUS_CORRUPT, "a stage with tables has %zu inputs", sg->num_inputs);
  drt_tensor *outs = calloc(sg->num_outputs + 1, sizeof *outs);
  drt_cpu_executor *ex = NULL;
  const drt_value *iv = sg->inputs[0];
  drt_tensor in = {iv->dtype, iv->shape, NULL};
  void *in_buf = malloc(drt_tensor_nbytes(&in) + 8);
  drt_status st = DRT_OK;
  if (!outs || !in_buf) st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "step tables");
  drt_cpu_executor_options eo;
  drt_cpu_executor_options_init(&eo);
  if (!st) st = drt_cpu_executor_create(sg, &eo, &ex);
  in.data = in_buf;
  int64_t n = drt_shape_numel(&in.shape);
  size_t es = drt_dtype_size(in.dtype);
  for (uint32_t s = 0; !st && s < steps; s++) {
    double tv = t[s];
    /* the conversion the generation loop applies to the timestep */
    for (int64_t q = 0; q < n; q++) {
      if (drt_dtype_is_int(in.dtype)) {
        int64_t ival = (int64_t)llround(tv);
        drt_convert(in.dtype, (char *)in_buf + (size_t)q * es, DRT_DTYPE_INT64, &ival, 1);
      } else {
        drt_convert(in.dtype, (char *)in_buf + (size_t)q * es, DRT_DTYPE_FLOAT64, &tv, 1);
      }
    }
    st = drt_cpu_executor_run(ex, &in, outs);
    for (size_t j = 0; !st && j < sg->num_outputs; j++) {
      size_t nb = drt_tensor_nbytes(&outs[j]);
      memcpy((uint8_t *)rows[j] + (size_t)s * nb, outs[j].data, nb);
    }
    for (size_t j = 0; !st && j < sg->num_outputs; j++) free(outs[j].data);
  }
  drt_cpu_executor_destroy(ex);
  free(in_buf);
  free(outs);
  return st ? drt_status_annotate(st, "recomputing the per-step tables") : DRT_OK;
}
