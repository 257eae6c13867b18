/* Liveness-based activation memory planning (see memory_plan.h).
 *
 *   node order:  n0   n1   n2   n3          block reuse:  [ a ][ b ]      a dies at n2,
 *   a = n0(x)    def  use  use                            [ c ][ b ]      c takes its block
 *   b = n1(a)         def       use
 *   c = n2(a)              def  use (in place when n2 is elementwise and a dies there)
 *
 * Views: an output that is a dense run of its input's elements (a reshape, a Split chunk or a
 * Slice/Gather along the outermost non-unit axis; drt_node_output_is_region) shares the input's
 * storage when the input is itself in the arena and the start is 64-byte aligned in every
 * storage type (drt_view_offset_aligned). The view records its root (value->view_of, never a
 * view itself: chains collapse) and element offset; the root stays allocated until the last
 * reader of any of its views, and neither roots with views nor views take part in in-place
 * reuse (an in-place write to the root would clobber what a view still reads). Nodes whose
 * outputs are all views run no kernel on any backend. A graph input can be a root too (its
 * views have no arena offset: mem_offset -1, the address is the input's plus the offset): a
 * hoisted stage hands main its outputs whole and main's Split/Slice/Reshape of them cost
 * nothing.
 *
 *   qkv [3, B, H, S, D] --Split(axis 0)--> q | k | v      one block, three views at 0, n, 2n
 */
#include "passes/memory_plan.h"

#include "ir/infer_movement.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN 64u
#define DRT_MEMPLAN_INPLACE_MIN_BYTES 4096u /* smaller outputs never take an input's block */

typedef struct {
  uint64_t off, size;
} block;

typedef struct {
  block *free;
  size_t n, cap;
  uint64_t end;
} allocator;

static uint64_t align_up(uint64_t x) { return (x + ALIGN - 1) & ~(uint64_t)(ALIGN - 1); }

static bool push_free(allocator *a, uint64_t off, uint64_t size) {
  if (a->n == a->cap) {
    size_t nc = a->cap ? a->cap * 2 : 64;
    block *f = realloc(a->free, nc * sizeof(block));
    if (!f) return false;
    a->free = f;
    a->cap = nc;
  }
  /* keep sorted by offset and merge neighbours */
  size_t i = 0;
  while (i < a->n && a->free[i].off < off) i++;
  memmove(&a->free[i + 1], &a->free[i], (a->n - i) * sizeof(block));
  a->free[i] = (block){off, size};
  a->n++;
  if (i + 1 < a->n && a->free[i].off + a->free[i].size == a->free[i + 1].off) {
    a->free[i].size += a->free[i + 1].size;
    memmove(&a->free[i + 1], &a->free[i + 2], (a->n - i - 2) * sizeof(block));
    a->n--;
  }
  if (i > 0 && a->free[i - 1].off + a->free[i - 1].size == a->free[i].off) {
    a->free[i - 1].size += a->free[i].size;
    memmove(&a->free[i], &a->free[i + 1], (a->n - i - 1) * sizeof(block));
    a->n--;
  }
  /* a free block touching the end shrinks the arena frontier */
  if (a->n && a->free[a->n - 1].off + a->free[a->n - 1].size == a->end) {
    a->end = a->free[a->n - 1].off;
    a->n--;
  }
  return true;
}

static uint64_t alloc_block(allocator *a, uint64_t size, uint64_t *peak) {
  size_t best = SIZE_MAX;
  for (size_t i = 0; i < a->n; i++)
    if (a->free[i].size >= size && (best == SIZE_MAX || a->free[i].size < a->free[best].size)) best = i;
  if (best != SIZE_MAX) {
    uint64_t off = a->free[best].off;
    a->free[best].off += size;
    a->free[best].size -= size;
    if (a->free[best].size == 0) {
      memmove(&a->free[best], &a->free[best + 1], (a->n - best - 1) * sizeof(block));
      a->n--;
    }
    return off;
  }
  /* extend; a free block at the end could be grown, but blocks at the end are merged away */
  uint64_t off = a->end;
  a->end += size;
  if (a->end > *peak) *peak = a->end;
  return off;
}

void drt_memory_plan_clear(drt_graph *g) {
  for (size_t i = 0; i < g->num_values; i++) {
    g->values[i]->mem_offset = -1;
    g->values[i]->view_of = NULL;
    g->values[i]->view_offset = 0;
  }
  g->mem_planned = false;
  g->mem_arena_bytes = 0;
}

static uint64_t value_bytes(const drt_value *v) {
  drt_tensor t = {v->dtype, v->shape, NULL};
  return align_up(drt_tensor_nbytes(&t) ? drt_tensor_nbytes(&t) : 1);
}

static bool plannable(const drt_value *v) { return v && v->kind == DRT_VALUE_INTERMEDIATE && !v->is_graph_output; }

static drt_value *root_of(drt_value *v) { return v->view_of ? v->view_of : v; }

/* A value that views may share: an arena value, or a graph input (never written). */
static bool view_root_ok(const drt_value *v) {
  return plannable(v) || (v && v->kind == DRT_VALUE_INPUT && v->has_shape && !v->is_graph_output);
}

/* Marks the outputs that can be views (see the file comment); returns how many. */
static size_t mark_views(drt_graph *g, bool *has_views) {
  size_t n_views = 0;
  for (size_t i = 0; i < g->num_nodes; i++) {
    drt_node *n = g->nodes[i];
    drt_value *in = n->num_inputs > 0 ? n->inputs[0] : NULL;
    if (!view_root_ok(in)) continue;
    for (int j = 0; j < n->num_outputs; j++) {
      drt_value *o = n->outputs[j];
      int64_t off;
      if (!plannable(o) || o == in || !drt_node_output_is_region(n, j, &off)) continue;
      drt_value *root = root_of(in);
      off += in->view_of ? in->view_offset : 0;
      if (!drt_view_offset_aligned(o->dtype, off)) continue;
      o->view_of = root;
      o->view_offset = off;
      has_views[root->id] = true;
      n_views++;
    }
  }
  return n_views;
}

drt_status drt_pass_memory_plan(drt_graph *g, const drt_pass_ctx *ctx, bool *changed) {
  *changed = false;
  drt_memory_plan_clear(g);
  uint32_t nid = g->next_id ? g->next_id : 1;
  int64_t *last = malloc((size_t)nid * sizeof(int64_t));
  bool *has_views = calloc(nid, sizeof(bool)), *freed = calloc(nid, sizeof(bool));
  allocator a = {NULL, 0, 0, 0};
  if (!last || !has_views || !freed) {
    free(last);
    free(has_views);
    free(freed);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "memory planning");
  }
  size_t n_views = mark_views(g, has_views);
  /* a value lives until its last reader, a root until the last reader of any of its views */
  for (uint32_t i = 0; i < nid; i++) last[i] = -1;
  for (size_t i = 0; i < g->num_nodes; i++)
    for (int j = 0; j < g->nodes[i]->num_inputs; j++) {
      drt_value *in = g->nodes[i]->inputs[j];
      if (!in) continue;
      last[in->id] = (int64_t)i;
      last[root_of(in)->id] = (int64_t)i;
    }
  uint64_t peak = 0, total = 0;
  size_t inplace = 0;
  drt_status st = DRT_OK;
  for (size_t i = 0; i < g->num_nodes && !st; i++) {
    drt_node *n = g->nodes[i];
    drt_fusion_class fc = drt_op_get_info(n->op)->fusion;
    /* Variadic ops (Sum, Mean, Max, Min) may accumulate into their output, so they never
       write in place; every other elementwise kernel reads element i before writing it. */
    bool variadic = drt_op_get_info(n->op)->max_inputs < 0;
    bool elementwise = (fc == DRT_FUSION_ELEMWISE || fc == DRT_FUSION_BROADCAST) && !variadic;
    bool used_inplace[64] = {0};
    for (int j = 0; j < n->num_outputs; j++) {
      drt_value *o = n->outputs[j];
      if (!plannable(o)) continue;
      if (o->view_of) {
        o->mem_offset = o->view_of->kind == DRT_VALUE_INPUT
                            ? -1
                            : o->view_of->mem_offset + o->view_offset * (int64_t)drt_dtype_size(o->dtype);
        continue;
      }
      total += value_bytes(o);
      /* in place: an input of the same dtype and shape that dies here (and shares no storage).
         Not for tiny values (nothing to save): under fp16/bf16 the CUDA backend keeps per-sample
         scalar inputs and their reshapes (at most 256 floats) in float32 storage, and an output
         stored in 16 bits must not overwrite such an input while other threads still read it. */
      if (elementwise && j == 0 && n->op != DRT_OP_CAST && value_bytes(o) >= DRT_MEMPLAN_INPLACE_MIN_BYTES) {
        for (int k = 0; k < n->num_inputs && k < 64; k++) {
          drt_value *in = n->inputs[k];
          if (!plannable(in) || in->view_of || has_views[in->id] || used_inplace[k] || last[in->id] != (int64_t)i ||
              in->dtype != o->dtype || !drt_shape_equal(&in->shape, &o->shape) || in->mem_offset < 0)
            continue;
          bool dup = false; /* the same value twice as input is fine, but take it once */
          for (int m = 0; m < k; m++) dup |= n->inputs[m] == in;
          if (dup) continue;
          o->mem_offset = in->mem_offset;
          used_inplace[k] = true;
          freed[in->id] = true; /* its block now belongs to o */
          inplace++;
          break;
        }
      }
      if (o->mem_offset < 0) o->mem_offset = (int64_t)alloc_block(&a, value_bytes(o), &peak);
    }
    /* free the storage of inputs dying here (a view's root when its last reader is here) */
    for (int k = 0; k < n->num_inputs && !st; k++) {
      if (!n->inputs[k]) continue;
      drt_value *r = root_of(n->inputs[k]);
      if (!plannable(r) || last[r->id] != (int64_t)i || freed[r->id]) continue;
      freed[r->id] = true;
      if (!push_free(&a, (uint64_t)r->mem_offset, value_bytes(r))) st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "memory planning");
    }
    /* outputs nobody reads are freed at once */
    for (int j = 0; j < n->num_outputs && !st; j++) {
      drt_value *o = n->outputs[j];
      if (plannable(o) && !o->view_of && last[o->id] < 0 && !freed[o->id]) {
        freed[o->id] = true;
        if (!push_free(&a, (uint64_t)o->mem_offset, value_bytes(o))) st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "memory planning");
      }
    }
  }
  free(last);
  free(has_views);
  free(freed);
  free(a.free);
  if (st) {
    drt_memory_plan_clear(g);
    return st;
  }
  g->mem_planned = true;
  g->mem_arena_bytes = peak;
  if (ctx && ctx->stats) {
    ctx->stats->peak_activation_bytes = peak;
    ctx->stats->total_intermediate_bytes = total;
  }
  drt_log(DRT_LOG_INFO,
          "memory-plan: arena %" PRIu64 " bytes for %" PRIu64 " bytes of intermediates (%zu in place, %zu views)", peak,
          total, inplace, n_views);
  *changed = true;
  return DRT_OK;
}
