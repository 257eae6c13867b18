/* Liveness-based activation memory planning (see memory_plan.h).
 *
 *   node order:  n0   n1   n2   n3          block reuse:  [ a ][ b ]      a dies at n2,
 *   a = n0(x)    def  use  use                            [ c ][ b ]      c takes its block
 *   b = n1(a)         def       use
 *   c = n2(a)              def  use (in place when n2 is elementwise and a dies there)
 *
 * A view op (Reshape, Flatten, Squeeze, Unsqueeze, Identity) whose input dies at it gets the
 * input's block for its output: the bytes are the same, so its kernel (CPU k_copy, CUDA COPY
 * launch) sees source == destination and does nothing.
 */
#include "passes/memory_plan.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN 64u

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
  for (size_t i = 0; i < g->num_values; i++) g->values[i]->mem_offset = -1;
  g->mem_planned = false;
  g->mem_arena_bytes = 0;
}

static uint64_t value_bytes(const drt_value *v) {
  drt_tensor t = {v->dtype, v->shape, NULL};
  return align_up(drt_tensor_nbytes(&t) ? drt_tensor_nbytes(&t) : 1);
}

static bool plannable(const drt_value *v) { return v && v->kind == DRT_VALUE_INTERMEDIATE && !v->is_graph_output; }

drt_status drt_pass_memory_plan(drt_graph *g, const drt_pass_ctx *ctx, bool *changed) {
  *changed = false;
  drt_memory_plan_clear(g);
  uint32_t nid = g->next_id ? g->next_id : 1;
  int64_t *last = malloc((size_t)nid * sizeof(int64_t));
  allocator a = {NULL, 0, 0, 0};
  if (!last) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "memory planning");
  for (uint32_t i = 0; i < nid; i++) last[i] = -1;
  for (size_t i = 0; i < g->num_nodes; i++)
    for (int j = 0; j < g->nodes[i]->num_inputs; j++)
      if (g->nodes[i]->inputs[j]) last[g->nodes[i]->inputs[j]->id] = (int64_t)i;
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
    bool view = n->op == DRT_OP_RESHAPE || n->op == DRT_OP_FLATTEN || n->op == DRT_OP_SQUEEZE ||
                n->op == DRT_OP_UNSQUEEZE || n->op == DRT_OP_IDENTITY;
    bool used_inplace[64] = {0};
    for (int j = 0; j < n->num_outputs; j++) {
      drt_value *o = n->outputs[j];
      if (!plannable(o)) continue;
      total += value_bytes(o);
      /* in place: an input of the same dtype and shape that dies here */
      if (elementwise && j == 0 && n->op != DRT_OP_CAST) {
        for (int k = 0; k < n->num_inputs && k < 64; k++) {
          drt_value *in = n->inputs[k];
          if (!plannable(in) || used_inplace[k] || last[in->id] != (int64_t)i || in->dtype != o->dtype ||
              !drt_shape_equal(&in->shape, &o->shape) || in->mem_offset < 0)
            continue;
          bool dup = false; /* the same value twice as input is fine, but take it once */
          for (int m = 0; m < k; m++) dup |= n->inputs[m] == in;
          if (dup) continue;
          o->mem_offset = in->mem_offset;
          used_inplace[k] = true;
          inplace++;
          break;
        }
      }
      if (view && j == 0 && o->mem_offset < 0) {
        drt_value *in = n->inputs[0];
        if (plannable(in) && last[in->id] == (int64_t)i && in->dtype == o->dtype && in->mem_offset >= 0 &&
            value_bytes(in) == value_bytes(o)) {
          o->mem_offset = in->mem_offset;
          used_inplace[0] = true;
          inplace++;
        }
      }
      if (o->mem_offset < 0) o->mem_offset = (int64_t)alloc_block(&a, value_bytes(o), &peak);
    }
    /* free inputs dying here (unless their block went to an output in place) */
    for (int k = 0; k < n->num_inputs; k++) {
      drt_value *in = n->inputs[k];
      if (!plannable(in) || last[in->id] != (int64_t)i || (k < 64 && used_inplace[k])) continue;
      bool dup = false;
      for (int m = 0; m < k; m++) dup |= n->inputs[m] == in;
      if (dup) continue;
      if (!push_free(&a, (uint64_t)in->mem_offset, value_bytes(in))) st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "memory planning");
    }
    /* outputs nobody reads are freed at once */
    for (int j = 0; j < n->num_outputs && !st; j++) {
      drt_value *o = n->outputs[j];
      if (plannable(o) && last[o->id] < 0 && !push_free(&a, (uint64_t)o->mem_offset, value_bytes(o)))
        st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "memory planning");
    }
  }
  free(last);
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
  drt_log(DRT_LOG_INFO, "memory-plan: arena %" PRIu64 " bytes for %" PRIu64 " bytes of intermediates (%zu in place)",
          peak, total, inplace);
  *changed = true;
  return DRT_OK;
}
