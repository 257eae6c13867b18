#include "runtime/weights.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cpu/executor.h"
#include "runtime/plan.h"

#define CORRUPT(...) DRT_ERROR(DRT_STATUS_CORRUPT, __VA_ARGS__)

/* ---- hashing ---------------------------------------------------------------------------- */
#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv(uint64_t h, const void *data, size_t n) {
  const uint8_t *p = data;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * FNV_PRIME;
  return h;
}

uint64_t drt_weights_hash(const void *data, size_t n) { return fnv(FNV_OFFSET, data, n); }

static uint64_t fnv_str(uint64_t h, const char *s) { return fnv(h, s ? s : "", (s ? strlen(s) : 0) + 1); }
static uint64_t fnv_u64(uint64_t h, uint64_t v) { return fnv(h, &v, sizeof v); }

static uint64_t fnv_shape(uint64_t h, drt_dtype dt, const drt_shape *s, bool has_shape) {
  h = fnv_u64(h, (uint64_t)dt);
  if (!has_shape) return fnv_u64(h, UINT64_MAX);
  h = fnv_u64(h, (uint64_t)s->rank);
  for (int d = 0; d < s->rank; d++) h = fnv_u64(h, (uint64_t)s->dims[d]);
  return h;
}

/* Subgraphs (If/Loop/Scan bodies) with their constants' bytes: weights inside control flow are
 * part of the model's identity, since refit cannot replace them (they are unrolled and folded). */
static uint64_t fnv_subgraph(uint64_t h, const drt_graph *g, int depth) {
  if (!g || depth > 64) return h;
  h = fnv_u64(h, (uint64_t)g->num_nodes);
  for (size_t i = 0; i < g->num_nodes; i++) {
    const drt_node *n = g->nodes[i];
    h = fnv_str(h, drt_op_name(n->op));
    for (int j = 0; j < n->num_attrs; j++)
      if (n->attrs[j].type == DRT_ATTR_GRAPH) h = fnv_subgraph(h, n->attrs[j].graph, depth + 1);
  }
  for (size_t i = 0; i < g->num_values; i++) {
    const drt_value *v = g->values[i];
    if (v->kind != DRT_VALUE_CONST) continue;
    h = fnv_str(h, v->name);
    h = fnv(h, v->data, v->data ? v->nbytes : 0);
  }
  return h;
}

uint64_t drt_graph_fingerprint(const drt_graph *g) {
  uint64_t h = FNV_OFFSET;
  h = fnv_u64(h, (uint64_t)g->opset);
  for (size_t i = 0; i < g->num_nodes; i++) {
    const drt_node *n = g->nodes[i];
    h = fnv_str(h, drt_op_name(n->op));
    h = fnv_u64(h, (uint64_t)n->num_inputs);
    for (int j = 0; j < n->num_inputs; j++) h = fnv_str(h, n->inputs[j] ? n->inputs[j]->name : "");
    h = fnv_u64(h, (uint64_t)n->num_outputs);
    for (int j = 0; j < n->num_outputs; j++) h = fnv_str(h, n->outputs[j]->name);
    for (int j = 0; j < n->num_attrs; j++) {
      h = fnv_str(h, n->attrs[j].name);
      if (n->attrs[j].type == DRT_ATTR_GRAPH) h = fnv_subgraph(h, n->attrs[j].graph, 0);
    }
  }
  for (size_t i = 0; i < g->num_inputs; i++) h = fnv_str(h, g->inputs[i]->name);
  for (size_t i = 0; i < g->num_outputs; i++) h = fnv_str(h, g->outputs[i]->name);
  for (size_t i = 0; i < g->num_values; i++) {
    const drt_value *v = g->values[i];
    if (v->kind != DRT_VALUE_CONST) continue;
    h = fnv_str(h, v->name);
    h = fnv_shape(h, v->dtype, &v->shape, v->has_shape);
  }
  return h;
}

/* ---- reports ------------------------------------------------------------------------------ */
void drt_refit_report_free(drt_refit_report *r) {
  if (!r) return;
  for (size_t i = 0; i < r->num_lines; i++) free(r->lines[i]);
  free(r->lines);
  memset(r, 0, sizeof *r);
}

static void report_line(drt_refit_report *r, const char *fmt, ...) DRT_PRINTF(2, 3);
static void report_line(drt_refit_report *r, const char *fmt, ...) {
  if (!r) return;
  if (r->num_lines == r->cap_lines) {
    size_t nc = r->cap_lines ? 2 * r->cap_lines : 16;
    char **nl = realloc(r->lines, nc * sizeof *nl);
    if (!nl) return;
    r->lines = nl;
    r->cap_lines = nc;
  }
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  r->lines[r->num_lines] = strdup(buf);
  if (r->lines[r->num_lines]) r->num_lines++;
}

/* One status listing report lines [from, num_lines) (up to 40 of them). */
static drt_status report_error(const drt_refit_report *r, size_t from, drt_status_code code, const char *what) {
  size_t n = r->num_lines - from, cap = 256;
  for (size_t i = from; i < r->num_lines && i < from + 40; i++) cap += strlen(r->lines[i]) + 8;
  char *msg = malloc(cap);
  if (!msg) return DRT_ERROR(code, "%s: %zu differences", what, n);
  size_t off = (size_t)snprintf(msg, cap, "%s: %zu difference%s:", what, n, n == 1 ? "" : "s");
  for (size_t i = from; i < r->num_lines && i < from + 40; i++)
    off += (size_t)snprintf(msg + off, cap - off, "\n  - %s", r->lines[i]);
  if (n > 40) snprintf(msg + off, cap - off, "\n  ... and %zu more", n - 40);
  drt_status s = DRT_ERROR(code, "%s", msg);
  free(msg);
  return s;
}

static const char *shape_str(const drt_shape *s, char *buf, size_t n) { return drt_shape_str(s, buf, n); }

/* ---- provenance: serialization -------------------------------------------------------------- */
void drt_provenance_destroy(drt_plan_provenance *p) {
  if (!p) return;
  drt_graph *t = p->trace;
  free(p);
  drt_graph_destroy(t);
}

static void write_shape(drt_bytes_writer *w, drt_dtype dt, const drt_shape *s) {
  drt_bw_u8(w, (uint8_t)dt);
  drt_bw_u8(w, (uint8_t)s->rank);
  for (int d = 0; d < s->rank; d++) drt_bw_i64(w, s->dims[d]);
}

static drt_status read_shape(drt_bytes_reader *r, drt_dtype *dt, drt_shape *s) {
  *dt = (drt_dtype)drt_br_u8(r);
  unsigned rank = drt_br_u8(r);
  memset(s, 0, sizeof *s);
  if (rank > DRT_MAX_RANK) return CORRUPT("rank %u exceeds %d", rank, DRT_MAX_RANK);
  s->rank = (int)rank;
  for (unsigned d = 0; d < rank; d++) s->dims[d] = drt_br_i64(r);
  drt_tensor t = {*dt, *s, NULL};
  if (r->failed) return CORRUPT("truncated");
  if (!drt_dtype_is_supported(*dt) || drt_shape_numel(s) < 0 || (drt_shape_numel(s) > 0 && !drt_tensor_nbytes(&t)))
    return CORRUPT("invalid dtype or shape");
  return DRT_OK;
}

typedef struct blob_ctx {
  drt_bytes_writer *blob;
} blob_ctx;

static uint64_t place_in_blob(void *user, const drt_value *v) {
  blob_ctx *b = user;
  drt_bw_align(b->blob, 64);
  uint64_t off = b->blob->size;
  drt_bw_put(b->blob, v->data, v->nbytes);
  return off;
}

void drt_provenance_write(drt_bytes_writer *w, const drt_plan_provenance *p, drt_offset_of_fn offset_of, void *user) {
  drt_bytes_writer blob = {0}, graph = {0};
  blob_ctx bc = {&blob};
  drt_plan_write_graph(&graph, p->trace, place_in_blob, &bc);
  uint64_t *defaults = calloc(p->trace->num_inputs + 1, sizeof(uint64_t));
  if (!defaults) {
    w->failed = true;
    goto done;
  }
  for (size_t i = 0; i < p->trace->num_inputs; i++) {
    defaults[i] = UINT64_MAX;
    const drt_value *v = p->trace->inputs[i];
    if (!p->sources[i].default_data) continue;
    drt_tensor t = {v->dtype, v->shape, NULL};
    drt_bw_align(&blob, 64);
    defaults[i] = blob.size;
    drt_bw_put(&blob, p->sources[i].default_data, drt_tensor_nbytes(&t));
  }
  if (blob.failed || graph.failed) {
    w->failed = true;
    goto done;
  }
  size_t start = w->size;
  drt_bw_u32(w, p->bucket);
  drt_bw_u64(w, p->fingerprint);
  drt_bw_u64(w, blob.size);
  drt_bw_put(w, NULL, (64 - (w->size - start) % 64) % 64);
  drt_bw_put(w, blob.data, blob.size);
  drt_bw_u64(w, graph.size);
  drt_bw_put(w, graph.data, graph.size);
  drt_bw_u32(w, (uint32_t)p->trace->num_inputs);
  for (size_t i = 0; i < p->trace->num_inputs; i++) {
    drt_bw_u64(w, p->sources[i].hash);
    drt_bw_u64(w, defaults[i]);
    drt_bw_u64(w, p->sources[i].target.value ? offset_of(user, p->sources[i].target.value) : UINT64_MAX);
  }
  drt_bw_u32(w, (uint32_t)p->trace->num_outputs);
  for (size_t k = 0; k < p->trace->num_outputs; k++)
    drt_bw_u64(w, p->targets[k].value ? offset_of(user, p->targets[k].value) : UINT64_MAX);
  drt_bw_u32(w, (uint32_t)p->num_baked);
  for (size_t i = 0; i < p->num_baked; i++) {
    drt_bw_str(w, p->baked[i].name);
    write_shape(w, p->baked[i].dtype, &p->baked[i].shape);
    drt_bw_u64(w, p->baked[i].hash);
  }
  drt_bw_u32(w, (uint32_t)p->num_derived);
  for (size_t i = 0; i < p->num_derived; i++) {
    const drt_prov_derived *d = &p->derived[i];
    drt_bw_u64(w, offset_of(user, d->target.value));
    write_shape(w, d->dtype, &d->shape);
    drt_bw_u8(w, (uint8_t)d->kind);
    drt_bw_u32(w, d->factor);
    drt_bw_u32(w, d->num_candidates);
    for (uint32_t k = 0; k < d->num_candidates; k++) drt_bw_u32(w, d->candidates[k]);
  }
  drt_bw_u32(w, (uint32_t)p->num_opaque);
  for (size_t i = 0; i < p->num_opaque; i++) {
    drt_bw_u64(w, offset_of(user, p->opaque[i].target.value));
    drt_bw_str(w, p->opaque[i].name);
  }
done:
  free(defaults);
  drt_bw_free(&blob);
  drt_bw_free(&graph);
}

typedef struct const_index {
  const drt_value **v; /* constants of a plan graph sorted by data pointer */
  size_t n;
} const_index;

static int cmp_data_ptr(const void *a, const void *b) {
  const uint8_t *x = (*(const drt_value *const *)a)->data, *y = (*(const drt_value *const *)b)->data;
  return x < y ? -1 : x > y;
}

static drt_status index_consts(const drt_graph *const *graphs, size_t num_graphs, const_index *ix) {
  memset(ix, 0, sizeof *ix);
  size_t total = 0;
  for (size_t k = 0; k < num_graphs; k++) total += graphs[k] ? graphs[k]->num_values : 0;
  if (!num_graphs) return DRT_OK;
  ix->v = malloc((total + 1) * sizeof *ix->v);
  if (!ix->v) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "constant index");
  for (size_t k = 0; k < num_graphs; k++)
    for (size_t i = 0; graphs[k] && i < graphs[k]->num_values; i++)
      if (graphs[k]->values[i]->kind == DRT_VALUE_CONST && graphs[k]->values[i]->nbytes)
        ix->v[ix->n++] = graphs[k]->values[i];
  qsort(ix->v, ix->n, sizeof *ix->v, cmp_data_ptr);
  return DRT_OK;
}

static const drt_value *find_const(const const_index *ix, const uint8_t *p) {
  size_t lo = 0, hi = ix->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const uint8_t *q = ix->v[mid]->data;
    if (q == p) return ix->v[mid];
    if (q < p) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

/* Checks a target offset against the weights and resolves it in the bucket graph. */
static drt_status check_target(uint64_t off, const uint8_t *weights, uint64_t wsize, const const_index *ix,
                               drt_dtype dt, const drt_shape *s, bool allow_none, drt_prov_target *t,
                               const char *what, size_t index) {
  t->offset = off;
  t->value = NULL;
  if (off == UINT64_MAX) {
    if (allow_none) return DRT_OK;
    return CORRUPT("%s %zu: no weights offset", what, index);
  }
  drt_tensor x = {dt, *s, NULL};
  uint64_t nb = drt_tensor_nbytes(&x);
  if (off % 64 || off > wsize || nb > wsize - off)
    return CORRUPT("%s %zu: weights range [%" PRIu64 ", +%" PRIu64 ") is outside the %" PRIu64 "-byte weights section",
                   what, index, off, nb, wsize);
  if (ix && ix->v) {
    const drt_value *v = find_const(ix, weights + off);
    if (!v || v->dtype != dt || v->nbytes != nb)
      return CORRUPT("%s %zu: weights offset %" PRIu64 " is not a constant of type %s[%zu bytes] of the plan graph",
                     what, index, off, drt_dtype_name(dt), (size_t)nb);
    t->value = v;
  }
  return DRT_OK;
}

drt_status drt_provenance_read(const uint8_t *data, size_t size, const uint8_t *weights, uint64_t weights_size,
                               const drt_graph *const *graphs, size_t num_graphs, drt_plan_provenance **out) {
  *out = NULL;
  drt_bytes_reader r = {data, size, 0, false};
  drt_plan_provenance *p = calloc(1, sizeof *p);
  const_index ix;
  drt_status st = index_consts(graphs, num_graphs, &ix);
  if (!p || st) {
    free(p);
    free(ix.v);
    return st ? st : DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "provenance");
  }
  p->bucket = drt_br_u32(&r);
  p->fingerprint = drt_br_u64(&r);
  uint64_t blob_size = drt_br_u64(&r);
  r.pos += (64 - r.pos % 64) % 64;
  if (r.failed || r.pos > size || blob_size > size - r.pos) {
    st = CORRUPT("provenance: blob truncated");
    goto fail;
  }
  const uint8_t *blob = data + r.pos;
  r.pos += (size_t)blob_size;
  uint64_t gsize = drt_br_u64(&r);
  if (r.failed || gsize > size - r.pos) {
    st = CORRUPT("provenance: trace graph truncated");
    goto fail;
  }
  st = drt_plan_read_graph(data + r.pos, (size_t)gsize, blob, blob_size, &p->trace);
  if (st) {
    st = drt_status_annotate(st, "provenance trace graph");
    goto fail;
  }
  r.pos += (size_t)gsize;
  drt_graph *tg = p->trace;
  drt_arena *a = tg->arena;
  uint32_t ns = drt_br_u32(&r);
  if (r.failed || ns != tg->num_inputs) {
    st = CORRUPT("provenance: %u sources for a trace graph with %zu inputs", ns, tg->num_inputs);
    goto fail;
  }
  p->sources = drt_arena_alloc_array(a, ns + 1, sizeof *p->sources);
  if (!p->sources) goto oom;
  for (uint32_t i = 0; i < ns; i++) {
    p->sources[i].hash = drt_br_u64(&r);
    uint64_t off = drt_br_u64(&r);
    const drt_value *v = tg->inputs[i];
    drt_tensor x = {v->dtype, v->shape, NULL};
    uint64_t nb = drt_tensor_nbytes(&x);
    if (r.failed || (off != UINT64_MAX && (off % 64 || off > blob_size || nb > blob_size - off))) {
      st = CORRUPT("provenance: source '%s': default data out of range", v->name);
      goto fail;
    }
    p->sources[i].default_data = off == UINT64_MAX ? NULL : blob + off;
    st = check_target(drt_br_u64(&r), weights, weights_size, &ix, v->dtype, &v->shape, true, &p->sources[i].target,
                      "provenance source", i);
    if (!st && r.failed) st = CORRUPT("provenance: sources truncated");
    if (st) goto fail;
  }
  uint32_t nt = drt_br_u32(&r);
  if (r.failed || nt != tg->num_outputs) {
    st = CORRUPT("provenance: %u targets for a trace graph with %zu outputs", nt, tg->num_outputs);
    goto fail;
  }
  p->targets = drt_arena_alloc_array(a, nt + 1, sizeof *p->targets);
  if (!p->targets) goto oom;
  for (uint32_t k = 0; k < nt; k++) {
    const drt_value *v = tg->outputs[k];
    uint64_t off = drt_br_u64(&r);
    if (r.failed) {
      st = CORRUPT("provenance: targets truncated");
      goto fail;
    }
    st = check_target(off, weights, weights_size, &ix, v->dtype, &v->shape, true, &p->targets[k], "provenance target", k);
    if (st) goto fail;
  }
  uint32_t nb = drt_br_u32(&r);
  if (r.failed || nb > size) {
    st = CORRUPT("provenance: baked list truncated");
    goto fail;
  }
  p->num_baked = nb;
  p->baked = drt_arena_alloc_array(a, nb + 1, sizeof *p->baked);
  if (!p->baked) goto oom;
  for (uint32_t i = 0; i < nb; i++) {
    uint32_t len;
    const char *s = drt_br_str(&r, DRT_PLAN_MAX_STRING, &len);
    if (!s || memchr(s, 0, len)) {
      st = CORRUPT("provenance: baked source %u: bad name", i);
      goto fail;
    }
    p->baked[i].name = drt_arena_strndup(a, s, len);
    st = read_shape(&r, &p->baked[i].dtype, &p->baked[i].shape);
    p->baked[i].hash = drt_br_u64(&r);
    if (st || r.failed || !p->baked[i].name) {
      drt_status_free(st);
      st = CORRUPT("provenance: baked source %u truncated", i);
      goto fail;
    }
  }
  uint32_t nd = drt_br_u32(&r);
  if (r.failed || nd > size) {
    st = CORRUPT("provenance: derived list truncated");
    goto fail;
  }
  p->num_derived = nd;
  p->derived = drt_arena_alloc_array(a, nd + 1, sizeof *p->derived);
  if (!p->derived) goto oom;
  for (uint32_t i = 0; i < nd; i++) {
    drt_prov_derived *d = &p->derived[i];
    uint64_t off = drt_br_u64(&r);
    st = read_shape(&r, &d->dtype, &d->shape);
    if (st) {
      st = drt_status_annotate(st, "provenance: derived constant %u", i);
      goto fail;
    }
    st = check_target(off, weights, weights_size, &ix, d->dtype, &d->shape, false, &d->target, "derived constant", i);
    if (st) goto fail;
    d->kind = (drt_derive_kind)drt_br_u8(&r);
    d->factor = drt_br_u32(&r);
    d->num_candidates = drt_br_u32(&r);
    if (r.failed || d->kind > DRT_DERIVE_TRANSPOSE || d->num_candidates == 0 ||
        d->num_candidates > DRT_PROV_MAX_CANDIDATES) {
      st = CORRUPT("provenance: derived constant %u: bad kind or candidates", i);
      goto fail;
    }
    int64_t numel = drt_shape_numel(&d->shape);
    for (uint32_t k = 0; k < d->num_candidates; k++) {
      d->candidates[k] = drt_br_u32(&r);
      uint32_t ci = d->candidates[k] & ~DRT_PROV_CAND_SOURCE;
      bool is_src = d->candidates[k] & DRT_PROV_CAND_SOURCE;
      if (r.failed || ci >= (is_src ? ns : nt)) {
        st = CORRUPT("provenance: derived constant %u: candidate out of range", i);
        goto fail;
      }
      const drt_value *c = is_src ? tg->inputs[ci] : tg->outputs[ci];
      int64_t cn = drt_shape_numel(&c->shape);
      bool ok;
      switch (d->kind) {
        case DRT_DERIVE_BYTES: ok = c->dtype == d->dtype && cn == numel; break;
        case DRT_DERIVE_CAST: ok = cn == numel; break;
        case DRT_DERIVE_REPEAT:
          ok = c->dtype == d->dtype && d->factor > 1 && cn > 0 && numel == cn * (int64_t)d->factor;
          break;
        default: ok = c->dtype == d->dtype && c->shape.rank == 2 && cn == numel; break;
      }
      if (!ok) {
        st = CORRUPT("provenance: derived constant %u: candidate %u does not fit the transform", i, k);
        goto fail;
      }
    }
  }
  uint32_t no = drt_br_u32(&r);
  if (r.failed || no > size) {
    st = CORRUPT("provenance: opaque list truncated");
    goto fail;
  }
  p->num_opaque = no;
  p->opaque = drt_arena_alloc_array(a, no + 1, sizeof *p->opaque);
  if (!p->opaque) goto oom;
  for (uint32_t i = 0; i < no; i++) {
    p->opaque[i].target.offset = drt_br_u64(&r);
    p->opaque[i].target.value = NULL;
    if (ix.v && p->opaque[i].target.offset != UINT64_MAX && p->opaque[i].target.offset < weights_size)
      p->opaque[i].target.value = find_const(&ix, weights + p->opaque[i].target.offset);
    uint32_t len;
    const char *s = drt_br_str(&r, DRT_PLAN_MAX_STRING, &len);
    if (!s || memchr(s, 0, len)) {
      st = CORRUPT("provenance: opaque constant %u truncated", i);
      goto fail;
    }
    p->opaque[i].name = drt_arena_strndup(a, s, len);
  }
  if (r.pos != r.size) {
    st = CORRUPT("provenance: %zu trailing bytes", r.size - r.pos);
    goto fail;
  }
  free(ix.v);
  *out = p;
  return DRT_OK;
oom:
  st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "provenance");
fail:
  free(ix.v);
  drt_provenance_destroy(p);
  return st;
}

/* ---- weight map ---------------------------------------------------------------------------- */
void drt_weight_map_destroy(drt_weight_map *m) {
  if (!m) return;
  drt_arena_destroy(m->arena);
  free(m->entries);
  free(m->by_param);
  free(m);
}

const drt_wmap_entry *drt_weight_map_find_source(const drt_weight_map *m, const char *source) {
  if (!m || !source) return NULL;
  size_t lo = 0, hi = m->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(m->entries[mid].source, source);
    if (c == 0) return &m->entries[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

const drt_wmap_entry *drt_weight_map_find_param(const drt_weight_map *m, const char *param) {
  if (!m || !param) return NULL;
  size_t lo = 0, hi = m->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(m->entries[m->by_param[mid]].param, param);
    if (c == 0) return &m->entries[m->by_param[mid]];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

static int cmp_entry_source(const void *a, const void *b) {
  return strcmp(((const drt_wmap_entry *)a)->source, ((const drt_wmap_entry *)b)->source);
}

/* Sorts entries by source, builds the by-param index; refuses duplicates. */
static drt_status finish_map(drt_weight_map *m) {
  qsort(m->entries, m->count, sizeof *m->entries, cmp_entry_source);
  m->by_param = malloc((m->count + 1) * sizeof(size_t));
  if (!m->by_param) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "weight map");
  for (size_t i = 0; i < m->count; i++) m->by_param[i] = i;
  /* insertion sort is fine for the sizes involved (hundreds to a few thousand) when nearly
     sorted; use a merge sort to stay O(n log n) */
  size_t n = m->count;
  size_t *tmp = malloc((n + 1) * sizeof(size_t));
  if (!tmp) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "weight map");
  for (size_t w = 1; w < n; w *= 2) {
    for (size_t lo = 0; lo < n; lo += 2 * w) {
      size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n, i = lo, k = mid, o = lo;
      while (i < mid && k < hi)
        tmp[o++] = strcmp(m->entries[m->by_param[i]].param, m->entries[m->by_param[k]].param) <= 0 ? m->by_param[i++]
                                                                                                   : m->by_param[k++];
      while (i < mid) tmp[o++] = m->by_param[i++];
      while (k < hi) tmp[o++] = m->by_param[k++];
    }
    memcpy(m->by_param, tmp, n * sizeof(size_t));
  }
  free(tmp);
  for (size_t i = 1; i < n; i++) {
    if (strcmp(m->entries[i - 1].source, m->entries[i].source) == 0)
      return CORRUPT("weight map: source '%s' appears twice", m->entries[i].source);
    if (strcmp(m->entries[m->by_param[i - 1]].param, m->entries[m->by_param[i]].param) == 0)
      return CORRUPT("weight map: parameter '%s' is mapped to two sources ('%s' and '%s')",
                     m->entries[m->by_param[i]].param, m->entries[m->by_param[i - 1]].source,
                     m->entries[m->by_param[i]].source);
  }
  return DRT_OK;
}

void drt_weight_map_write(drt_bytes_writer *w, const drt_weight_map *m) {
  drt_bw_u32(w, (uint32_t)m->count);
  for (size_t i = 0; i < m->count; i++) {
    const drt_wmap_entry *e = &m->entries[i];
    drt_bw_str(w, e->source);
    drt_bw_str(w, e->param);
    drt_bw_u8(w, (uint8_t)e->transform);
    write_shape(w, e->source_dtype, &e->source_shape);
    write_shape(w, e->param_dtype, &e->param_shape);
    drt_bw_u32(w, e->num_alts);
    for (uint32_t k = 0; k < e->num_alts; k++) drt_bw_str(w, e->alts[k]);
  }
}

static const char *read_str(drt_bytes_reader *r, drt_arena *a) {
  uint32_t len;
  const char *s = drt_br_str(r, DRT_PLAN_MAX_STRING, &len);
  if (!s || memchr(s, 0, len)) return NULL;
  return drt_arena_strndup(a, s, len);
}

static bool transform_fits(drt_wmap_transform tr, const drt_shape *src, const drt_shape *par) {
  if (drt_shape_numel(src) != drt_shape_numel(par)) return false;
  if (tr == DRT_WMAP_SAME) return true;
  return tr == DRT_WMAP_TRANSPOSE && par->rank == 2 && src->rank == 2 && src->dims[0] == par->dims[1] &&
         src->dims[1] == par->dims[0];
}

drt_status drt_weight_map_read(const uint8_t *data, size_t size, drt_weight_map **out) {
  *out = NULL;
  drt_bytes_reader r = {data, size, 0, false};
  drt_weight_map *m = calloc(1, sizeof *m);
  if (!m) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "weight map");
  m->arena = drt_arena_create();
  uint32_t n = drt_br_u32(&r);
  drt_status st = DRT_OK;
  if (!m->arena || r.failed || n > size) {
    st = m->arena ? CORRUPT("weight map: truncated") : DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "weight map");
    goto fail;
  }
  m->entries = calloc(n + 1, sizeof *m->entries);
  if (!m->entries) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "weight map");
    goto fail;
  }
  for (uint32_t i = 0; i < n; i++) {
    drt_wmap_entry *e = &m->entries[i];
    e->source = read_str(&r, m->arena);
    e->param = read_str(&r, m->arena);
    e->transform = (drt_wmap_transform)drt_br_u8(&r);
    if (!e->source || !e->param || r.failed || e->transform > DRT_WMAP_TRANSPOSE) {
      st = CORRUPT("weight map: entry %u truncated or bad transform", i);
      goto fail;
    }
    st = read_shape(&r, &e->source_dtype, &e->source_shape);
    if (!st) st = read_shape(&r, &e->param_dtype, &e->param_shape);
    if (st) {
      st = drt_status_annotate(st, "weight map: entry '%s'", e->source);
      goto fail;
    }
    if (!transform_fits(e->transform, &e->source_shape, &e->param_shape)) {
      st = CORRUPT("weight map: entry '%s': parameter shape does not fit the source through the transform", e->source);
      goto fail;
    }
    e->num_alts = drt_br_u32(&r);
    if (r.failed || e->num_alts > 64) {
      st = CORRUPT("weight map: entry '%s': bad alternative count", e->source);
      goto fail;
    }
    e->alts = drt_arena_alloc_array(m->arena, e->num_alts + 1, sizeof(char *));
    if (!e->alts) {
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "weight map");
      goto fail;
    }
    for (uint32_t k = 0; k < e->num_alts; k++)
      if (!(e->alts[k] = read_str(&r, m->arena))) {
        st = CORRUPT("weight map: entry '%s': alternative truncated", e->source);
        goto fail;
      }
    m->count++;
  }
  if (r.pos != r.size) {
    st = CORRUPT("weight map: %zu trailing bytes", r.size - r.pos);
    goto fail;
  }
  st = finish_map(m);
  if (st) goto fail;
  *out = m;
  return DRT_OK;
fail:
  drt_weight_map_destroy(m);
  return st;
}

/* Element i of a possibly unaligned buffer, as double. */
static double load_any(drt_dtype dt, const uint8_t *p, size_t i) {
  _Alignas(8) uint8_t b[8];
  size_t es = drt_dtype_size(dt);
  memcpy(b, p + i * es, es);
  return drt_load_f64(dt, b, 0);
}

/* Stores v converted to dt into b (es bytes). */
static void store_as(drt_dtype dt, uint8_t *b, double v) {
  if (drt_dtype_is_int(dt) || dt == DRT_DTYPE_BOOL) {
    int64_t iv = (int64_t)v;
    drt_convert(dt, b, DRT_DTYPE_INT64, &iv, 1);
  } else {
    drt_convert(dt, b, DRT_DTYPE_FLOAT64, &v, 1);
  }
}

/* Does source s equal parameter p converted to s's dtype, through transform tr? */
static bool content_equal(const drt_named_tensor *s, const drt_st_tensor *p, drt_wmap_transform tr) {
  if (!transform_fits(tr, &s->t.shape, &p->shape)) return false;
  size_t n = (size_t)drt_shape_numel(&s->t.shape), es = drt_dtype_size(s->t.dtype);
  const uint8_t *sd = s->t.data, *pd = p->data;
  bool same_dt = s->t.dtype == p->dtype;
  int64_t rows = tr == DRT_WMAP_TRANSPOSE ? p->shape.dims[0] : 0, cols = tr == DRT_WMAP_TRANSPOSE ? p->shape.dims[1] : 0;
  for (size_t i = 0; i < n; i++) {
    /* source element i; in the transposed case source [cols, rows] holds p[r][c] at c*rows + r */
    size_t pi = i;
    if (tr == DRT_WMAP_TRANSPOSE) {
      size_t c = i / (size_t)rows, r = i % (size_t)rows;
      pi = r * (size_t)cols + c;
    }
    if (same_dt) {
      if (memcmp(sd + i * es, pd + pi * es, es) != 0) return false;
    } else {
      _Alignas(8) uint8_t b[8];
      store_as(s->t.dtype, b, load_any(p->dtype, pd, pi));
      if (memcmp(sd + i * es, b, es) != 0) return false;
    }
  }
  return true;
}

typedef struct numel_ix {
  int64_t numel;
  size_t idx;
} numel_ix;

static int cmp_numel(const void *a, const void *b) {
  const numel_ix *x = a, *y = b;
  if (x->numel != y->numel) return x->numel < y->numel ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

drt_status drt_weight_map_build(const drt_named_tensor *sources, size_t num_sources, const drt_safetensors *ckpt,
                                drt_weight_map **out, drt_weight_map_stats *stats) {
  *out = NULL;
  drt_weight_map_stats s0;
  memset(&s0, 0, sizeof s0);
  size_t np = drt_safetensors_count(ckpt);
  drt_weight_map *m = calloc(1, sizeof *m);
  numel_ix *ix = malloc((np + 1) * sizeof *ix);
  bool *used = calloc(np + 1, 1);
  drt_status st = DRT_OK;
  if (!m || !ix || !used || !(m->arena = drt_arena_create()) ||
      !(m->entries = calloc(num_sources + 1, sizeof *m->entries))) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "weight map");
    goto done;
  }
  for (size_t i = 0; i < np; i++) {
    ix[i].numel = drt_shape_numel(&drt_safetensors_at(ckpt, i)->shape);
    ix[i].idx = i;
  }
  qsort(ix, np, sizeof *ix, cmp_numel);
  for (size_t si = 0; si < num_sources; si++) {
    const drt_named_tensor *s = &sources[si];
    int64_t numel = drt_shape_numel(&s->t.shape);
    if (numel < 0 || !s->t.data) continue;
    const drt_st_tensor *hits[65];
    drt_wmap_transform hit_tr[65];
    int nh = 0;
    const drt_st_tensor *same_name = drt_safetensors_find(ckpt, s->name);
    if (numel >= 2) {
      size_t lo = 0, hi = np;
      while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix[mid].numel < numel) lo = mid + 1;
        else hi = mid;
      }
      for (size_t k = lo; k < np && ix[k].numel == numel && nh < 65; k++) {
        const drt_st_tensor *p = drt_safetensors_at(ckpt, ix[k].idx);
        for (int tr = DRT_WMAP_SAME; tr <= DRT_WMAP_TRANSPOSE && nh < 65; tr++) {
          if (!content_equal(s, p, (drt_wmap_transform)tr)) continue;
          hits[nh] = p;
          hit_tr[nh++] = (drt_wmap_transform)tr;
          break;
        }
      }
    } else if (same_name && content_equal(s, same_name, DRT_WMAP_SAME)) {
      hits[nh] = same_name;
      hit_tr[nh++] = DRT_WMAP_SAME;
    }
    if (nh == 0) {
      s0.unmatched_sources++;
      continue;
    }
    int best = 0;
    for (int k = 0; k < nh; k++)
      if (hits[k] == same_name) best = k;
    drt_wmap_entry *e = &m->entries[m->count];
    e->source = drt_arena_strdup(m->arena, s->name);
    e->param = drt_arena_strdup(m->arena, hits[best]->name);
    e->transform = hit_tr[best];
    e->source_dtype = s->t.dtype;
    e->source_shape = s->t.shape;
    e->param_dtype = hits[best]->dtype;
    e->param_shape = hits[best]->shape;
    e->num_alts = (uint32_t)(nh - 1);
    e->alts = drt_arena_alloc_array(m->arena, (size_t)nh, sizeof(char *));
    if (!e->source || !e->param || !e->alts) {
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "weight map");
      goto done;
    }
    for (int k = 0, a = 0; k < nh; k++)
      if (k != best) e->alts[a++] = drt_arena_strdup(m->arena, hits[k]->name);
    used[hits[best] - drt_safetensors_at(ckpt, 0)] = true;
    s0.matched++;
    s0.by_name += hits[best] == same_name;
    s0.transposed += e->transform == DRT_WMAP_TRANSPOSE;
    s0.cast += e->param_dtype != e->source_dtype;
    s0.ambiguous += nh > 1;
    m->count++;
  }
  for (size_t i = 0; i < np; i++) s0.unused_params += !used[i];
  /* two sources with the same parameter: keep the map only where it is unique (content
     duplicates such as tied weights stay resolvable through the alternatives) */
  st = finish_map(m);
  if (st && drt_status_code_of(st) == DRT_STATUS_CORRUPT) {
    drt_status_free(st);
    st = DRT_OK;
    /* drop later duplicates of a parameter */
    size_t w = 0;
    for (size_t i = 0; i < m->count; i++) {
      bool dup = false;
      for (size_t k = 0; k < w && !dup; k++) dup = strcmp(m->entries[k].param, m->entries[i].param) == 0;
      if (!dup) m->entries[w++] = m->entries[i];
    }
    s0.matched -= m->count - w;
    m->count = w;
    free(m->by_param);
    m->by_param = NULL;
    st = finish_map(m);
  }
done:
  free(ix);
  free(used);
  if (st) {
    drt_weight_map_destroy(m);
    return st;
  }
  if (stats) *stats = s0;
  *out = m;
  return DRT_OK;
}

/* ---- source tables -------------------------------------------------------------------------- */
void drt_source_table_free(drt_source_table *t) {
  if (!t) return;
  for (size_t i = 0; i < t->count; i++) {
    free((char *)t->items[i].name);
    free(t->owned[i]);
  }
  free(t->items);
  free(t->owned);
  memset(t, 0, sizeof *t);
}

drt_status drt_source_table_add(drt_source_table *t, const char *name, const drt_tensor *x, bool own) {
  if (t->count == t->cap) {
    size_t nc = t->cap ? 2 * t->cap : 64;
    drt_named_tensor *ni = realloc(t->items, nc * sizeof *ni);
    if (ni) t->items = ni;
    void **no = ni ? realloc(t->owned, nc * sizeof *no) : NULL;
    if (no) t->owned = no;
    if (!ni || !no) {
      if (own) free(x->data);
      return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "source table");
    }
    t->cap = nc;
  }
  char *nm = strdup(name);
  if (!nm) {
    if (own) free(x->data);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "source table");
  }
  t->items[t->count].name = nm;
  t->items[t->count].t = *x;
  t->owned[t->count] = own ? x->data : NULL;
  t->count++;
  t->sorted = false;
  return DRT_OK;
}

/* Sorts items (and their owned buffers with them) by name: merge sort over an index array. */
static bool sort_table(drt_source_table *t) {
  size_t n = t->count;
  if (n == 0) {
    t->sorted = true;
    return true;
  }
  size_t *ix = malloc((n + 1) * sizeof *ix), *tmp = malloc((n + 1) * sizeof *tmp);
  drt_named_tensor *items = malloc((n + 1) * sizeof *items);
  void **owned = malloc((n + 1) * sizeof *owned);
  bool ok = ix && tmp && items && owned;
  if (ok) {
    for (size_t i = 0; i < n; i++) ix[i] = i;
    for (size_t w = 1; w < n; w *= 2) {
      for (size_t lo = 0; lo < n; lo += 2 * w) {
        size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n, i = lo, k = mid, o = lo;
        while (i < mid && k < hi) tmp[o++] = strcmp(t->items[ix[i]].name, t->items[ix[k]].name) <= 0 ? ix[i++] : ix[k++];
        while (i < mid) tmp[o++] = ix[i++];
        while (k < hi) tmp[o++] = ix[k++];
      }
      memcpy(ix, tmp, n * sizeof *ix);
    }
    for (size_t i = 0; i < n; i++) {
      items[i] = t->items[ix[i]];
      owned[i] = t->owned[ix[i]];
    }
    memcpy(t->items, items, n * sizeof *items);
    memcpy(t->owned, owned, n * sizeof *owned);
    t->sorted = true;
  }
  free(ix);
  free(tmp);
  free(items);
  free(owned);
  return ok;
}

const drt_named_tensor *drt_source_table_find(drt_source_table *t, const char *name) {
  if (!t->sorted && !sort_table(t)) {
    for (size_t i = 0; i < t->count; i++)
      if (strcmp(t->items[i].name, name) == 0) return &t->items[i];
    return NULL;
  }
  size_t lo = 0, hi = t->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(t->items[mid].name, name);
    if (c == 0) return &t->items[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

drt_status drt_source_table_from_graph(drt_source_table *t, const drt_graph *g) {
  for (size_t i = 0; i < g->num_values; i++) {
    const drt_value *v = g->values[i];
    if (v->kind != DRT_VALUE_CONST || !v->has_shape || !drt_dtype_is_float(v->dtype)) continue;
    drt_tensor x = {v->dtype, v->shape, v->data};
    DRT_RETURN_IF_ERROR(drt_source_table_add(t, v->name, &x, false));
  }
  return DRT_OK;
}

/* ---- sources of provenances ----------------------------------------------------------------- */
static int cmp_info(const void *a, const void *b) {
  return strcmp(((const drt_source_info *)a)->name, ((const drt_source_info *)b)->name);
}

drt_status drt_provenance_sources(drt_plan_provenance *const *prov, uint32_t n, drt_source_info **out, size_t *count) {
  size_t total = 0;
  for (uint32_t i = 0; i < n; i++)
    if (prov[i]) total += prov[i]->trace->num_inputs + prov[i]->num_baked;
  drt_source_info *s = calloc(total + 1, sizeof *s);
  if (!s) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "provenance sources");
  size_t k = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (!prov[i]) continue;
    for (size_t j = 0; j < prov[i]->trace->num_inputs; j++) {
      const drt_value *v = prov[i]->trace->inputs[j];
      s[k++] = (drt_source_info){v->name, v->dtype, v->shape, false};
    }
    for (size_t j = 0; j < prov[i]->num_baked; j++) {
      const drt_prov_baked *b = &prov[i]->baked[j];
      s[k++] = (drt_source_info){b->name, b->dtype, b->shape, true};
    }
  }
  qsort(s, k, sizeof *s, cmp_info);
  size_t w = 0;
  for (size_t i = 0; i < k; i++) {
    if (w && strcmp(s[w - 1].name, s[i].name) == 0) {
      s[w - 1].baked |= s[i].baked;
      continue;
    }
    s[w++] = s[i];
  }
  *out = s;
  *count = w;
  return DRT_OK;
}

/* Transposes a [rows, cols] matrix of element size es into dst [cols, rows]. */
static void transpose2d(uint8_t *dst, const uint8_t *src, size_t rows, size_t cols, size_t es) {
#define DRT_TRANSPOSE_AS(T)                                                     \
  do {                                                                          \
    T *d = (T *)(void *)dst;                                                    \
    const T *s = (const T *)(const void *)src;                                  \
    for (size_t r0 = 0; r0 < rows; r0 += 16)                                    \
      for (size_t c0 = 0; c0 < cols; c0 += 16)                                  \
        for (size_t r = r0; r < rows && r < r0 + 16; r++)                       \
          for (size_t c = c0; c < cols && c < c0 + 16; c++) d[c * rows + r] = s[r * cols + c]; \
  } while (0)
  /* dst and src are element-aligned (plan constants and malloc'd buffers) */
  if (es == 4) DRT_TRANSPOSE_AS(uint32_t);
  else if (es == 2) DRT_TRANSPOSE_AS(uint16_t);
  else if (es == 8) DRT_TRANSPOSE_AS(uint64_t);
  else if (es == 1) DRT_TRANSPOSE_AS(uint8_t);
  else
    for (size_t r = 0; r < rows; r++)
      for (size_t c = 0; c < cols; c++) memcpy(dst + (c * rows + r) * es, src + (r * cols + c) * es, es);
#undef DRT_TRANSPOSE_AS
}

drt_status drt_source_table_from_checkpoint(drt_source_table *t, const drt_source_info *sources, size_t num_sources,
                                            const drt_weight_map *map, const drt_safetensors *ckpt, bool partial,
                                            drt_refit_report *rep) {
  size_t np = drt_safetensors_count(ckpt), first = rep->num_lines, provided = 0;
  bool *used = calloc(np + 1, 1);
  if (!used) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "checkpoint");
  const drt_st_tensor *base = drt_safetensors_at(ckpt, 0);
  const char *label = drt_safetensors_label(ckpt);
  drt_status st = DRT_OK;
  char a[128], b[128];
  for (size_t i = 0; i < num_sources && !st; i++) {
    const drt_source_info *s = &sources[i];
    const drt_wmap_entry *e = drt_weight_map_find_source(map, s->name);
    const drt_st_tensor *p = NULL;
    drt_wmap_transform tr = DRT_WMAP_SAME;
    if (e) {
      p = drt_safetensors_find(ckpt, e->param);
      if (!p) {
        if (!partial) report_line(rep, "parameter '%s' (model constant '%s') is missing", e->param, s->name);
        continue;
      }
      if (p->dtype != e->param_dtype || !drt_shape_equal(&p->shape, &e->param_shape)) {
        report_line(rep, "parameter '%s' is %s[%s], the plan was compiled with %s[%s]", e->param,
                    drt_dtype_name(p->dtype), shape_str(&p->shape, a, sizeof a), drt_dtype_name(e->param_dtype),
                    shape_str(&e->param_shape, b, sizeof b));
        continue;
      }
      tr = e->transform;
      /* content duplicates at compile time must still agree, else the map is ambiguous */
      for (uint32_t k = 0; k < e->num_alts; k++) {
        const drt_st_tensor *q = drt_safetensors_find(ckpt, e->alts[k]);
        if (q && (q->dtype != p->dtype || q->nbytes != p->nbytes || memcmp(q->data, p->data, p->nbytes) != 0))
          report_line(rep, "parameter '%s' had the content of '%s' at compile time and now differs from it: which one "
                      "'%s' is cannot be told (recompile with --weights-map)", e->param, e->alts[k], s->name);
      }
    } else {
      p = drt_safetensors_find(ckpt, s->name);
      if (!p) continue; /* not provided: kept */
      if (p->dtype != s->dtype || !drt_shape_equal(&p->shape, &s->shape)) {
        report_line(rep, "'%s' is %s[%s], the plan has %s[%s]", s->name, drt_dtype_name(p->dtype),
                    shape_str(&p->shape, a, sizeof a), drt_dtype_name(s->dtype), shape_str(&s->shape, b, sizeof b));
        continue;
      }
    }
    used[p - base] = true;
    drt_tensor x = {s->dtype, s->shape, NULL};
    size_t nb = drt_tensor_nbytes(&x);
    size_t es = drt_dtype_size(s->dtype);
    if (tr == DRT_WMAP_SAME && p->dtype == s->dtype && (uintptr_t)p->data % (es ? es : 1) == 0) {
      /* same bytes, aligned for the dtype: borrow the checkpoint's data */
      x.data = (void *)p->data;
      st = drt_source_table_add(t, s->name, &x, false);
      provided++;
      continue;
    }
    void *buf = NULL;
    if (posix_memalign(&buf, 64, nb ? nb : 64) != 0) buf = NULL;
    bool direct = tr == DRT_WMAP_TRANSPOSE && p->dtype == s->dtype && (uintptr_t)p->data % (es ? es : 1) == 0;
    void *tmp = tr == DRT_WMAP_TRANSPOSE && !direct ? malloc(nb ? nb : 1) : NULL;
    if (!buf || (tr == DRT_WMAP_TRANSPOSE && !direct && !tmp)) {
      free(buf);
      free(tmp);
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "converting '%s'", p->name);
      break;
    }
    if (direct) {
      transpose2d(buf, p->data, (size_t)p->shape.dims[0], (size_t)p->shape.dims[1], es);
    } else if (tr == DRT_WMAP_TRANSPOSE) {
      drt_safetensors_read(p, s->dtype, tmp);
      transpose2d(buf, tmp, (size_t)p->shape.dims[0], (size_t)p->shape.dims[1], drt_dtype_size(s->dtype));
      free(tmp);
    } else {
      drt_safetensors_read(p, s->dtype, buf);
    }
    x.data = buf;
    st = drt_source_table_add(t, s->name, &x, true);
    provided++;
  }
  for (size_t i = 0; i < np; i++) rep->unused += !used[i];
  free(used);
  if (st) return st;
  if (rep->num_lines > first)
    return report_error(rep, first, DRT_STATUS_INVALID_ARGUMENT, "the checkpoint does not fit the plan");
  if (provided == 0)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                     "no tensor of '%s' corresponds to a weight of the plan (%s): compile the plan with "
                     "--weights-map CHECKPOINT.safetensors, or refit from the ONNX export", label,
                     map ? "none of the mapped parameters is present" : "the plan has no weight map and no name matches");
  return DRT_OK;
}

/* ---- refit ---------------------------------------------------------------------------------- */
static void derive(const drt_prov_derived *d, const drt_tensor *c, uint8_t *dst) {
  size_t n = (size_t)drt_shape_numel(&d->shape), es = drt_dtype_size(d->dtype);
  switch (d->kind) {
    case DRT_DERIVE_BYTES: memmove(dst, c->data, n * es); break; /* may be the value itself */
    case DRT_DERIVE_CAST: drt_convert(d->dtype, dst, c->dtype, c->data, n); break;
    case DRT_DERIVE_REPEAT:
      for (size_t i = 0; i < n; i++) memcpy(dst + i * es, (const uint8_t *)c->data + (i / d->factor) * es, es);
      break;
    case DRT_DERIVE_TRANSPOSE:
      transpose2d(dst, c->data, (size_t)c->shape.dims[0], (size_t)c->shape.dims[1], es);
      break;
  }
}

int64_t drt_provenance_widened_target(const drt_plan_provenance *p, size_t i) {
  const drt_graph *tg = p->trace;
  if (!tg || i >= tg->num_inputs) return -1;
  const drt_value *v = tg->inputs[i];
  if (v->dtype != DRT_DTYPE_FLOAT16 && v->dtype != DRT_DTYPE_BFLOAT16) return -1;
  for (size_t k = 0; k < tg->num_nodes; k++) {
    const drt_node *nd = tg->nodes[k];
    if (nd->op != DRT_OP_CAST || nd->num_inputs < 1 || nd->inputs[0] != v || nd->outputs[0]->dtype != DRT_DTYPE_FLOAT32)
      continue;
    for (size_t o = 0; o < tg->num_outputs; o++)
      if (tg->outputs[o] == nd->outputs[0] && p->targets[o].offset != UINT64_MAX) return (int64_t)o;
  }
  return -1;
}

void *drt_provenance_narrow_source(const drt_plan_provenance *p, size_t i, const uint8_t *weights) {
  int64_t o = drt_provenance_widened_target(p, i);
  if (o < 0) return NULL;
  const drt_value *v = p->trace->inputs[i];
  size_t n = (size_t)drt_shape_numel(&v->shape);
  void *buf = malloc(n * drt_dtype_size(v->dtype) + 1);
  if (buf) drt_convert(v->dtype, buf, DRT_DTYPE_FLOAT32, weights + p->targets[o].offset, n);
  return buf;
}

static drt_status refit_one(drt_plan_provenance *p, drt_source_table *src, drt_source_table *current,
                            uint8_t *weights, bool *used, bool count_kept, drt_refit_report *rep) {
  drt_graph *tg = p->trace;
  size_t first = rep->num_lines;
  char a[128], b[128];
  drt_tensor *in = calloc(tg->num_inputs + 1, sizeof *in), *out = calloc(tg->num_outputs + 1, sizeof *out);
  void **narrowed = calloc(tg->num_inputs + 1, sizeof *narrowed);
  uint8_t *scratch = NULL;
  drt_cpu_executor *ex = NULL;
  drt_status st = DRT_OK;
  if (!in || !out || !narrowed) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "refit");
    goto done;
  }
  for (size_t i = 0; i < tg->num_inputs; i++) {
    const drt_value *v = tg->inputs[i];
    const drt_prov_source *ps = &p->sources[i];
    in[i].dtype = v->dtype;
    in[i].shape = v->shape;
    const drt_named_tensor *x = drt_source_table_find(src, v->name);
    if (x) {
      if (x->t.dtype != v->dtype || !drt_shape_equal(&x->t.shape, &v->shape)) {
        report_line(rep, "'%s' is %s[%s], the plan was compiled with %s[%s]", v->name, drt_dtype_name(x->t.dtype),
                    shape_str(&x->t.shape, a, sizeof a), drt_dtype_name(v->dtype), shape_str(&v->shape, b, sizeof b));
        continue;
      }
      in[i].data = x->t.data;
      used[x - src->items] = true;
      continue;
    }
    /* the current value: the plan constant, a value an earlier refit gave it, a byte copy the plan
       holds (constants hoisted into a stage graph), or the compile-time default */
    if (ps->target.offset != UINT64_MAX) in[i].data = weights + ps->target.offset;
    const drt_named_tensor *cur = !in[i].data && current ? drt_source_table_find(current, v->name) : NULL;
    if (cur && cur->t.dtype == v->dtype && drt_shape_equal(&cur->t.shape, &v->shape)) in[i].data = cur->t.data;
    for (size_t k = 0; k < p->num_derived && !in[i].data; k++)
      for (uint32_t q = 0; q < p->derived[k].num_candidates && !in[i].data; q++)
        if (p->derived[k].kind == DRT_DERIVE_BYTES && p->derived[k].candidates[q] == (DRT_PROV_CAND_SOURCE | (uint32_t)i))
          in[i].data = weights + p->derived[k].target.offset;
    if (!in[i].data && ps->default_data) in[i].data = (void *)ps->default_data;
    if (!in[i].data) {
      /* a half weight the plan holds widened to float32 (pass half-promote): narrowed back, exact */
      in[i].data = narrowed[i] = drt_provenance_narrow_source(p, i, weights);
    }
    if (in[i].data) {
      rep->kept += count_kept;
      continue;
    }
    report_line(rep, "'%s' (%s[%s]) is needed to recompute folded constants and is neither provided nor stored in "
                "the plan", v->name, drt_dtype_name(v->dtype), shape_str(&v->shape, a, sizeof a));
  }
  for (size_t i = 0; i < p->num_baked; i++) {
    const drt_prov_baked *bk = &p->baked[i];
    const drt_named_tensor *x = drt_source_table_find(src, bk->name);
    if (!x) continue;
    used[x - src->items] = true;
    drt_tensor t = {bk->dtype, bk->shape, NULL};
    if (x->t.dtype != bk->dtype || !drt_shape_equal(&x->t.shape, &bk->shape))
      report_line(rep, "'%s' is %s[%s], the plan was compiled with %s[%s]", bk->name, drt_dtype_name(x->t.dtype),
                  shape_str(&x->t.shape, a, sizeof a), drt_dtype_name(bk->dtype), shape_str(&bk->shape, b, sizeof b));
    else if (drt_weights_hash(x->t.data, drt_tensor_nbytes(&t)) != bk->hash)
      report_line(rep, "'%s' changed, but the optimized graph depends on its compile-time value (a fusion dropped or "
                  "absorbed it): recompile the model with the new weights", bk->name);
  }
  if (rep->num_lines > first) goto done;
  /* folded constants: the trace graph on the CPU executor, as the compiler folded them */
  if (tg->num_outputs) {
    drt_cpu_executor_options eo;
    drt_cpu_executor_options_init(&eo);
    eo.num_threads = 1;
    st = drt_cpu_executor_create(tg, &eo, &ex);
    if (!st) st = drt_cpu_executor_run(ex, in, out);
    if (st) {
      st = drt_status_annotate(st, "recomputing folded constants");
      goto done;
    }
  }
  /* sources the plan holds, then folded outputs, then derived constants (which read sources and
     outputs; every target is a distinct plan constant, so no write lands on what a later one reads) */
  for (size_t i = 0; i < tg->num_inputs; i++) {
    const drt_prov_source *ps = &p->sources[i];
    if (ps->target.offset == UINT64_MAX) continue;
    uint8_t *dst = weights + ps->target.offset;
    if (dst != in[i].data) memmove(dst, in[i].data, drt_tensor_nbytes(&in[i]));
  }
  for (size_t k = 0; k < tg->num_outputs; k++) {
    if (p->targets[k].offset == UINT64_MAX || !out[k].data) continue;
    memcpy(weights + p->targets[k].offset, out[k].data, drt_tensor_nbytes(&out[k]));
    rep->recomputed++;
  }
  size_t max_nb = 0;
  for (size_t i = 0; i < p->num_derived; i++) {
    drt_tensor t = {p->derived[i].dtype, p->derived[i].shape, NULL};
    size_t nb = drt_tensor_nbytes(&t);
    if (nb > max_nb && p->derived[i].num_candidates > 1) max_nb = nb;
  }
  scratch = malloc(max_nb + 1);
  if (!scratch) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "refit");
    goto done;
  }
  for (size_t i = 0; i < p->num_derived; i++) {
    const drt_prov_derived *d = &p->derived[i];
    drt_tensor t = {d->dtype, d->shape, NULL};
    size_t nb = drt_tensor_nbytes(&t);
    uint8_t *dst = weights + d->target.offset;
    bool agree = true;
    for (uint32_t k = 0; k < d->num_candidates && agree; k++) {
      uint32_t ci = d->candidates[k] & ~DRT_PROV_CAND_SOURCE;
      const drt_tensor *c = d->candidates[k] & DRT_PROV_CAND_SOURCE ? &in[ci] : &out[ci];
      derive(d, c, k ? scratch : dst);
      agree = !k || memcmp(scratch, dst, nb) == 0;
    }
    if (!agree) {
      report_line(rep, "constant '%s' was created by an optimization from a value that several weights had at "
                  "compile time; the new weights differ between them: recompile",
                  d->target.value ? d->target.value->name : "(derived)");
      continue;
    }
    rep->derived++;
  }
  if (rep->num_lines > first) goto done;
  rep->opaque += p->num_opaque;
done:
  if (ex) {
    for (size_t k = 0; k < tg->num_outputs; k++) free(out[k].data);
  }
  drt_cpu_executor_destroy(ex);
  free(scratch);
  for (size_t i = 0; narrowed && i < tg->num_inputs; i++) free(narrowed[i]);
  free(narrowed);
  free(in);
  free(out);
  return st;
}

drt_status drt_refit_apply(drt_plan_provenance *const *prov, uint32_t num_prov, drt_source_table *src,
                           drt_source_table *current, uint8_t *weights, uint64_t size, drt_refit_report *rep) {
  (void)size;
  size_t first = rep->num_lines;
  if (num_prov == 0)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED,
                     "the plan records no weight provenance (it was written by an older drt compile): recompile it");
  bool *used = calloc(src->count + 1, 1);
  if (!used) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "refit");
  (void)drt_source_table_find(src, ""); /* sort once, before indices are taken */
  drt_status st = DRT_OK;
  for (uint32_t i = 0; i < num_prov && !st; i++)
    if (prov[i]) st = refit_one(prov[i], src, current, weights, used, i == 0, rep);
  size_t updated = 0;
  for (size_t i = 0; i < src->count; i++) updated += used[i];
  rep->updated += updated;
  rep->unused += src->count - updated;
  free(used);
  if (st) return st;
  if (rep->num_lines > first) return report_error(rep, first, DRT_STATUS_INVALID_ARGUMENT, "refit refused");
  return DRT_OK;
}

drt_status drt_refit_current_sources(drt_plan_provenance *const *prov, uint32_t num_prov, drt_source_table *src,
                                     drt_source_table *current, drt_source_table *out) {
  for (uint32_t b = 0; b < num_prov; b++) {
    const drt_plan_provenance *p = prov[b];
    if (!p) continue;
    for (size_t i = 0; i < p->trace->num_inputs; i++) {
      const drt_value *v = p->trace->inputs[i];
      if (!p->sources[i].default_data || drt_source_table_find(out, v->name)) continue;
      const drt_named_tensor *x = drt_source_table_find(src, v->name);
      if (!x && current) x = drt_source_table_find(current, v->name);
      if (!x || x->t.dtype != v->dtype || !drt_shape_equal(&x->t.shape, &v->shape)) continue;
      drt_tensor t = x->t;
      size_t nb = drt_tensor_nbytes(&t);
      if (memcmp(t.data, p->sources[i].default_data, nb) == 0) continue;
      void *copy = malloc(nb ? nb : 1);
      if (!copy) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "refit");
      memcpy(copy, t.data, nb);
      t.data = copy;
      DRT_RETURN_IF_ERROR(drt_source_table_add(out, v->name, &t, true));
    }
  }
  return DRT_OK;
}
