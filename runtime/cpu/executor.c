#include "runtime/cpu/executor.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct drt_cpu_executor {
  const drt_graph *g;
  drt_cpu_ctx ctx;
  drt_threadpool *pool;
  uint32_t num_ids;
  int64_t *last_use;   /* value id -> index of last consuming node (-1: none) */
  void **bufs;         /* value id -> current buffer of an intermediate */
  drt_tensor *in, *out; /* scratch arrays sized to the largest arity */
  int max_in, max_out;
  uint8_t *arena; /* activation arena when the graph has a memory plan */
  bool poison;    /* fill outputs with 0xff before each kernel (catches kernels that read them) */
};

void drt_cpu_executor_options_init(drt_cpu_executor_options *o) { o->num_threads = 0; }

drt_status drt_cpu_executor_create(const drt_graph *g, const drt_cpu_executor_options *opts, drt_cpu_executor **out) {
  *out = NULL;
  drt_cpu_executor *e = calloc(1, sizeof(*e));
  if (!e) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "executor");
  e->g = g;
  int threads = opts && opts->num_threads > 0 ? opts->num_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (threads < 1) threads = 1;
  if (threads > 256) threads = 256;
  drt_status st = drt_threadpool_create(threads, &e->pool);
  if (st) {
    free(e);
    return st;
  }
  e->ctx.pool = e->pool;
#ifndef NDEBUG
  e->poison = true;
#endif
  e->ctx.num_threads = threads;
  e->num_ids = g->next_id;
  e->last_use = malloc((size_t)e->num_ids * sizeof(int64_t));
  e->bufs = calloc(e->num_ids ? e->num_ids : 1, sizeof(void *));
  if (!e->last_use || !e->bufs) {
    drt_cpu_executor_destroy(e);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "executor");
  }
  for (uint32_t i = 0; i < e->num_ids; i++) e->last_use[i] = -1;
  char d[256];
  for (size_t i = 0; i < g->num_nodes; i++) {
    const drt_node *n = g->nodes[i];
    if (!drt_cpu_kernel_find(n->op)) {
      drt_cpu_executor_destroy(e);
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: op %s has no CPU kernel", drt_node_describe(n, d, sizeof d),
                       drt_op_name(n->op));
    }
    for (int j = 0; j < n->num_inputs; j++)
      if (n->inputs[j]) e->last_use[n->inputs[j]->id] = (int64_t)i;
    if (n->num_inputs > e->max_in) e->max_in = n->num_inputs;
    if (n->num_outputs > e->max_out) e->max_out = n->num_outputs;
    for (int j = 0; j < n->num_outputs; j++) {
      if (!n->outputs[j]->has_shape) {
        drt_cpu_executor_destroy(e);
        return DRT_ERROR(DRT_STATUS_INTERNAL, "%s: output '%s' has no inferred shape",
                         drt_node_describe(n, d, sizeof d), n->outputs[j]->name);
      }
    }
  }
  for (size_t i = 0; i < g->num_outputs; i++) e->last_use[g->outputs[i]->id] = INT64_MAX;
  if (g->mem_planned) {
    /* validate the plan against the arena before trusting it */
    for (size_t i = 0; i < g->num_values; i++) {
      const drt_value *v = g->values[i];
      if (v->kind != DRT_VALUE_INTERMEDIATE || v->is_graph_output) continue;
      drt_tensor t = {v->dtype, v->shape, NULL};
      uint64_t nb = drt_tensor_nbytes(&t);
      if (v->view_of && v->view_of->kind == DRT_VALUE_INPUT) { /* a view of a graph input */
        if (v->view_offset < 0 || v->view_offset + drt_shape_numel(&v->shape) > drt_shape_numel(&v->view_of->shape) ||
            v->dtype != v->view_of->dtype) {
          drt_cpu_executor_destroy(e);
          return DRT_ERROR(DRT_STATUS_CORRUPT, "memory plan: view '%s' lies outside input '%s'", v->name,
                           v->view_of->name);
        }
        continue;
      }
      if (v->mem_offset < 0 || (uint64_t)v->mem_offset > g->mem_arena_bytes || nb > g->mem_arena_bytes - (uint64_t)v->mem_offset) {
        drt_cpu_executor_destroy(e);
        return DRT_ERROR(DRT_STATUS_CORRUPT, "memory plan places '%s' outside the %llu-byte arena", v->name,
                         (unsigned long long)g->mem_arena_bytes);
      }
    }
    if (posix_memalign((void **)&e->arena, 64, g->mem_arena_bytes ? g->mem_arena_bytes : 64) != 0) {
      e->arena = NULL;
      drt_cpu_executor_destroy(e);
      return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "activation arena of %llu bytes",
                       (unsigned long long)g->mem_arena_bytes);
    }
  }
  e->in = calloc((size_t)e->max_in + 1, sizeof(drt_tensor));
  e->out = calloc((size_t)e->max_out + 1, sizeof(drt_tensor));
  if (!e->in || !e->out) {
    drt_cpu_executor_destroy(e);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "executor");
  }
  *out = e;
  return DRT_OK;
}

void drt_cpu_executor_destroy(drt_cpu_executor *e) {
  if (!e) return;
  drt_threadpool_destroy(e->pool);
  free(e->last_use);
  free(e->bufs);
  free(e->in);
  free(e->out);
  free(e->arena);
  free(e);
}

/* Bytes of a value's buffer; UINT64_MAX when the size does not fit. */
static uint64_t value_bytes(const drt_value *v) {
  drt_tensor t = {v->dtype, v->shape, NULL};
  int64_t numel = drt_shape_numel(&v->shape);
  size_t nb = drt_tensor_nbytes(&t);
  if (numel < 0 || (numel > 0 && nb == 0)) return UINT64_MAX;
  return (uint64_t)nb;
}

static uint64_t add_sat(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

uint64_t drt_cpu_executor_peak_bytes(const drt_graph *g) {
  if (g->mem_planned) {
    /* one arena for the planned intermediates, plus the graph outputs handed to the caller */
    uint64_t total = g->mem_arena_bytes;
    for (size_t i = 0; i < g->num_outputs; i++) {
      bool dup = false;
      for (size_t k = 0; k < i; k++) dup |= g->outputs[k] == g->outputs[i];
      if (!dup) total = add_sat(total, value_bytes(g->outputs[i]));
    }
    return total;
  }
  int64_t *last = malloc((size_t)(g->next_id ? g->next_id : 1) * sizeof(int64_t));
  if (!last) return UINT64_MAX;
  for (uint32_t i = 0; i < g->next_id; i++) last[i] = -1;
  for (size_t i = 0; i < g->num_nodes; i++)
    for (int j = 0; j < g->nodes[i]->num_inputs; j++)
      if (g->nodes[i]->inputs[j]) last[g->nodes[i]->inputs[j]->id] = (int64_t)i;
  for (size_t i = 0; i < g->num_outputs; i++) last[g->outputs[i]->id] = INT64_MAX;
  uint64_t cur = 0, peak = 0;
  for (size_t i = 0; i < g->num_nodes && peak != UINT64_MAX; i++) {
    const drt_node *n = g->nodes[i];
    for (int j = 0; j < n->num_outputs; j++) cur = add_sat(cur, value_bytes(n->outputs[j]));
    if (cur > peak) peak = cur;
    /* release each value once, even when the node reads it several times */
    for (int j = 0; j < n->num_inputs; j++) {
      const drt_value *v = n->inputs[j];
      if (v && v->kind == DRT_VALUE_INTERMEDIATE && last[v->id] == (int64_t)i) {
        cur -= value_bytes(v);
        last[v->id] = -2;
      }
    }
    for (int j = 0; j < n->num_outputs; j++)
      if (last[n->outputs[j]->id] == -1) cur -= value_bytes(n->outputs[j]);
  }
  free(last);
  return peak;
}

static void release_all(drt_cpu_executor *e) {
  for (uint32_t i = 0; i < e->num_ids; i++) {
    free(e->bufs[i]);
    e->bufs[i] = NULL;
  }
}

static bool in_arena(const drt_cpu_executor *e, const drt_value *v) {
  return e->arena && v->kind == DRT_VALUE_INTERMEDIATE && !v->is_graph_output && v->mem_offset >= 0;
}

static const void *value_data(drt_cpu_executor *e, const drt_value *v, const drt_tensor *inputs) {
  if (v->kind == DRT_VALUE_CONST) return v->data;
  if (v->kind == DRT_VALUE_INPUT) {
    for (size_t i = 0; i < e->g->num_inputs; i++)
      if (e->g->inputs[i] == v) return inputs[i].data;
    return NULL;
  }
  if (e->arena && v->view_of && v->view_of->kind == DRT_VALUE_INPUT && !v->is_graph_output) {
    const char *root = value_data(e, v->view_of, inputs); /* a view of a graph input */
    return root ? root + (size_t)v->view_offset * drt_dtype_size(v->dtype) : NULL;
  }
  if (in_arena(e, v)) return e->arena + v->mem_offset;
  return e->bufs[v->id];
}

drt_status drt_cpu_executor_run(drt_cpu_executor *e, const drt_tensor *inputs, drt_tensor *outputs) {
  const drt_graph *g = e->g;
  char a[128], b[128];
  for (size_t i = 0; i < g->num_inputs; i++) {
    const drt_value *v = g->inputs[i];
    if (inputs[i].dtype != v->dtype)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s' has dtype %s, the model expects %s", v->name,
                       drt_dtype_name(inputs[i].dtype), drt_dtype_name(v->dtype));
    if (!drt_shape_equal(&inputs[i].shape, &v->shape))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s' has shape %s, the model was prepared for %s",
                       v->name, drt_shape_str(&inputs[i].shape, a, sizeof a), drt_shape_str(&v->shape, b, sizeof b));
    if (!inputs[i].data && drt_shape_numel(&v->shape) > 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s' has no data", v->name);
  }
  drt_status st = DRT_OK;
  for (size_t i = 0; i < g->num_nodes && !st; i++) {
    const drt_node *n = g->nodes[i];
    if (e->arena && drt_node_is_view_only(n)) continue; /* its outputs share input 0's storage */
    for (int j = 0; j < n->num_inputs; j++) {
      const drt_value *v = n->inputs[j];
      if (!v) {
        memset(&e->in[j], 0, sizeof(drt_tensor));
        continue;
      }
      e->in[j].dtype = v->dtype;
      e->in[j].shape = v->shape;
      e->in[j].data = (void *)value_data(e, v, inputs);
    }
    for (int j = 0; j < n->num_outputs; j++) {
      const drt_value *v = n->outputs[j];
      drt_tensor *t = &e->out[j];
      t->dtype = v->dtype;
      t->shape = v->shape;
      size_t nb = drt_tensor_nbytes(t);
      if (nb == 0 && drt_shape_numel(&t->shape) != 0) {
        st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "'%s': the size of shape and dtype does not fit in memory", v->name);
        break;
      }
      if (in_arena(e, v)) {
        t->data = e->arena + v->mem_offset;
        continue;
      }
      void *p = NULL;
      if (posix_memalign(&p, 64, nb ? nb : 64) != 0) p = NULL;
      if (!p) {
        st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "allocating %zu bytes for '%s'", nb, v->name);
        break;
      }
      free(e->bufs[v->id]);
      e->bufs[v->id] = p;
      t->data = p;
    }
    if (st) break;
    if (e->poison) {
      /* Poison outputs, except ones the memory plan placed in place of a dying input and views
         (a Split with some view chunks still runs for the others: its views lie inside the
         input, anywhere, not only at its start) */
      for (int j = 0; j < n->num_outputs; j++) {
        bool aliased = n->outputs[j] && n->outputs[j]->view_of;
        for (int k = 0; k < n->num_inputs; k++) aliased |= e->in[k].data == e->out[j].data;
        if (!aliased) memset(e->out[j].data, 0xff, drt_tensor_nbytes(&e->out[j]));
      }
    }
    st = drt_cpu_run_node(&e->ctx, n, e->in, e->out);
    if (st) break;
    /* free intermediates whose last use was this node, and unused outputs */
    for (int j = 0; j < n->num_inputs; j++) {
      const drt_value *v = n->inputs[j];
      if (v && v->kind == DRT_VALUE_INTERMEDIATE && e->last_use[v->id] == (int64_t)i) {
        free(e->bufs[v->id]);
        e->bufs[v->id] = NULL;
      }
    }
    for (int j = 0; j < n->num_outputs; j++) {
      const drt_value *v = n->outputs[j];
      if (e->last_use[v->id] < 0) {
        free(e->bufs[v->id]);
        e->bufs[v->id] = NULL;
      }
    }
  }
  if (st) {
    release_all(e);
    return st;
  }
  /* Hand outputs to the caller: intermediates by pointer, constants/inputs by copy. */
  for (size_t i = 0; i < g->num_outputs; i++) {
    const drt_value *v = g->outputs[i];
    outputs[i].dtype = v->dtype;
    outputs[i].shape = v->shape;
    outputs[i].data = NULL;
  }
  for (size_t i = 0; i < g->num_outputs && !st; i++) {
    const drt_value *v = g->outputs[i];
    size_t nb = drt_tensor_nbytes(&outputs[i]);
    bool owned_elsewhere = false;
    for (size_t k = 0; k < i; k++) owned_elsewhere |= g->outputs[k] == v;
    if (v->kind == DRT_VALUE_INTERMEDIATE && !owned_elsewhere && e->bufs[v->id]) {
      outputs[i].data = e->bufs[v->id];
      e->bufs[v->id] = NULL;
    } else {
      void *p = malloc(nb ? nb : 1);
      if (!p) {
        st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "output '%s'", v->name);
        break;
      }
      const void *src = NULL;
      if (owned_elsewhere) {
        for (size_t k = 0; k < i; k++)
          if (g->outputs[k] == v) src = outputs[k].data;
      } else {
        src = value_data(e, v, inputs);
      }
      if (nb && src) memcpy(p, src, nb);
      outputs[i].data = p;
    }
  }
  release_all(e);
  if (st) {
    for (size_t i = 0; i < g->num_outputs; i++) {
      free(outputs[i].data);
      outputs[i].data = NULL;
    }
  }
  return st;
}
