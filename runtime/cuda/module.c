/* A plan's CUDA program loaded on the device: image selection, module load (with the JIT log of
 * PTX), kernel handles, and the constants of every program graph uploaded once in storage dtype. */
#include "runtime/cuda/cuda_internal.h"

#ifdef DRT_CUDA_ENABLED

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATIC_SMEM_LIMIT (48u * 1024u)

static size_t ptr_hash(const void *p, size_t cap) {
  uint64_t x = (uint64_t)(uintptr_t)p;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return (size_t)(x & (cap - 1));
}

CUdeviceptr drt_cuda_module_const(const drt_cuda_module *m, const drt_value *v) {
  if (!m->map_cap) return 0;
  for (size_t i = ptr_hash(v, m->map_cap);; i = (i + 1) & (m->map_cap - 1)) {
    if (!m->map_keys[i]) return 0;
    if (m->map_keys[i] == v) return m->map_vals[i];
  }
}

/* Constants referenced by the launches of every graph (and constant graph outputs), in first-seen
 * order, deduplicated through an open-addressing set. */
typedef struct const_set {
  size_t n, cap;         /* entries in v, capacity of the hash table (power of two) */
  const drt_value **v;   /* [cap / 2] in order */
  const drt_value **tab; /* [cap] */
} const_set;

static drt_status set_add(const_set *s, const drt_value *v) {
  if (!v || v->kind != DRT_VALUE_CONST) return DRT_OK;
  if (2 * (s->n + 1) > s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 256;
    const drt_value **tab = calloc(cap, sizeof *tab);
    const drt_value **nv = realloc(s->v, cap / 2 * sizeof *nv);
    if (!tab || !nv) {
      free(tab);
      if (nv) s->v = nv;
      return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "constant list");
    }
    s->v = nv;
    for (size_t i = 0; i < s->n; i++) {
      size_t h = ptr_hash(s->v[i], cap);
      while (tab[h]) h = (h + 1) & (cap - 1);
      tab[h] = s->v[i];
    }
    free(s->tab);
    s->tab = tab;
    s->cap = cap;
  }
  size_t h = ptr_hash(v, s->cap);
  while (s->tab[h]) {
    if (s->tab[h] == v) return DRT_OK;
    h = (h + 1) & (s->cap - 1);
  }
  s->tab[h] = v;
  s->v[s->n++] = v;
  return DRT_OK;
}

static drt_status collect_arg(const_set *s, const drt_cuda_arg *a) {
  return a->kind == DRT_CUDA_ARG_VALUE ? set_add(s, a->value) : DRT_OK;
}

static drt_status collect(const drt_cuda_program *p, const_set *s) {
  for (size_t gi = 0; gi < p->num_graphs; gi++) {
    const drt_cuda_graph_code *gc = &p->graphs[gi];
    for (size_t i = 0; i < gc->num_launches; i++) {
      const drt_cuda_launch *l = &gc->launches[i];
      switch (l->kind) {
        case DRT_CUDA_LAUNCH_KERNEL:
          for (int j = 0; j < l->num_args && j < DRT_CUDA_MAX_ARGS; j++) DRT_RETURN_IF_ERROR(collect_arg(s, &l->args[j]));
          break;
        case DRT_CUDA_LAUNCH_GEMM:
          DRT_RETURN_IF_ERROR(collect_arg(s, &l->gemm.a));
          DRT_RETURN_IF_ERROR(collect_arg(s, &l->gemm.b));
          DRT_RETURN_IF_ERROR(collect_arg(s, &l->gemm.c));
          DRT_RETURN_IF_ERROR(collect_arg(s, &l->gemm.bias));
          break;
        case DRT_CUDA_LAUNCH_COPY:
          DRT_RETURN_IF_ERROR(collect_arg(s, &l->src));
          break;
        default:
          break;
      }
    }
    for (size_t i = 0; i < gc->graph->num_outputs; i++) DRT_RETURN_IF_ERROR(set_add(s, gc->graph->outputs[i]));
  }
  return DRT_OK;
}

/* a constant's storage type: the activation type, or float32 where a graph keeps it so (the bias
   of a GEMM with a float32 output, codegen/codegen.c) */
static drt_dtype const_storage(const drt_cuda_program *p, const drt_value *v) {
  for (size_t g = 0; g < p->num_graphs; g++)
    if (drt_cuda_value_storage(p->precision, &p->graphs[g], v) == DRT_DTYPE_FLOAT32) return DRT_DTYPE_FLOAT32;
  return drt_cuda_storage_dtype(p->precision, v->dtype);
}

static uint64_t storage_bytes(const drt_cuda_program *p, const drt_value *v) {
  drt_tensor t = {const_storage(p, v), v->shape, NULL};
  return drt_tensor_nbytes(&t);
}

static drt_status upload_constants(drt_cuda_module *m) {
  const drt_cuda_program *p = m->prog;
  const_set s = {0, 0, NULL, NULL};
  drt_status st = collect(p, &s);
  free(s.tab);
  if (st) {
    free(s.v);
    return st;
  }
  size_t cap = 16;
  while (cap < 2 * s.n + 1) cap *= 2;
  m->map_keys = calloc(cap, sizeof *m->map_keys);
  m->map_vals = calloc(cap, sizeof *m->map_vals);
  uint64_t *offs = calloc(s.n ? s.n : 1, sizeof *offs);
  bool *first = calloc(s.n ? s.n : 1, sizeof *first);
  size_t *by_data = malloc(cap * sizeof *by_data); /* data pointer -> index of its first value */
  if (!m->map_keys || !m->map_vals || !offs || !first || !by_data) {
    free(s.v);
    free(offs);
    free(first);
    free(by_data);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "constant map");
  }
  m->map_cap = cap;
  for (size_t i = 0; i < cap; i++) by_data[i] = SIZE_MAX;
  /* layout: constants with the same bytes (the buckets of a plan share weights) share storage */
  uint64_t total = 0;
  for (size_t i = 0; i < s.n; i++) {
    const drt_value *v = s.v[i];
    if (v->data) {
      size_t h = ptr_hash(v->data, cap);
      size_t same = SIZE_MAX;
      for (; by_data[h] != SIZE_MAX; h = (h + 1) & (cap - 1)) {
        const drt_value *o = s.v[by_data[h]];
        if (o->data == v->data && o->dtype == v->dtype && o->nbytes == v->nbytes &&
            const_storage(p, o) == const_storage(p, v)) {
          same = by_data[h];
          break;
        }
      }
      if (same != SIZE_MAX) {
        offs[i] = offs[same];
        continue;
      }
      by_data[h] = i;
    }
    first[i] = true;
    uint64_t nb = storage_bytes(p, v);
    offs[i] = total;
    total += (nb + 255) & ~(uint64_t)255;
  }
  free(by_data);
  if (total) {
    st = DRT_CU_CALL(cuMemAlloc_v2, (&m->weights, (size_t)total));
    if (st) {
      free(s.v);
      free(offs);
      free(first);
      return drt_status_annotate(st, "allocating %llu bytes for the weights on the GPU", (unsigned long long)total);
    }
    m->weights_bytes = total;
  }
  void *tmp = NULL;
  size_t tmp_size = 0;
  for (size_t i = 0; i < s.n && !st; i++) {
    const drt_value *v = s.v[i];
    CUdeviceptr d = m->weights + offs[i];
    size_t h = ptr_hash(v, cap);
    while (m->map_keys[h]) h = (h + 1) & (cap - 1);
    m->map_keys[h] = v;
    m->map_vals[h] = d;
    if (!first[i]) continue;
    uint64_t nb = storage_bytes(p, v);
    if (!nb) continue;
    drt_dtype sdt = const_storage(p, v);
    int64_t numel = drt_shape_numel(&v->shape);
    if (!v->data || numel < 0) {
      st = DRT_ERROR(DRT_STATUS_INTERNAL, "constant '%s' has no data", v->name);
      break;
    }
    const void *src = v->data;
    if (sdt != v->dtype) {
      if (tmp_size < nb) {
        free(tmp);
        tmp = malloc((size_t)nb);
        tmp_size = tmp ? (size_t)nb : 0;
        if (!tmp) {
          st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "converting constant '%s'", v->name);
          break;
        }
      }
      drt_convert(sdt, tmp, v->dtype, v->data, (size_t)numel);
      src = tmp;
    }
    st = DRT_CU_CALL(cuMemcpyHtoD_v2, (d, src, (size_t)nb));
    if (st) st = drt_status_annotate(st, "uploading constant '%s'", v->name);
  }
  free(tmp);
  free(s.v);
  free(offs);
  free(first);
  return st;
}

/* Copies the image (aligned; PTX NUL-terminated) and loads it, with the JIT log on failure. */
static drt_status load_image(drt_cuda_module *m, const drt_plan_cuda_image *im, bool ptx) {
  char *buf = malloc((size_t)im->size + 1);
  if (!buf) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "CUDA image of %llu bytes", (unsigned long long)im->size);
  memcpy(buf, im->data, (size_t)im->size);
  buf[im->size] = 0;
  enum { LOG_SIZE = 8192 };
  char *log = malloc(LOG_SIZE);
  if (!log) {
    free(buf);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "JIT log");
  }
  log[0] = 0;
  CUjit_option opts[2] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *vals[2] = {log, (void *)(uintptr_t)(LOG_SIZE - 1)};
  drt_status st = DRT_CU_CALL(cuModuleLoadDataEx, (&m->mod, buf, 2, opts, vals));
  if (st) {
    log[LOG_SIZE - 1] = 0;
    st = drt_status_annotate(st, "loading the %s for %s%s%s", ptx ? "PTX (JIT compilation by the driver)" : "cubin",
                             im->arch, log[0] ? ": JIT log: " : "", log[0] ? log : "");
    m->mod = NULL;
  }
  free(log);
  free(buf);
  return st;
}

static drt_status resolve_kernels(drt_cuda_module *m) {
  const drt_cuda_program *p = m->prog;
  m->funcs = calloc(p->num_kernels ? p->num_kernels : 1, sizeof *m->funcs);
  m->func_max_threads = calloc(p->num_kernels ? p->num_kernels : 1, sizeof *m->func_max_threads);
  uint32_t *smem = calloc(p->num_kernels ? p->num_kernels : 1, sizeof *smem);
  if (!m->funcs || !m->func_max_threads || !smem) {
    free(smem);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "kernel table");
  }
  drt_status st = DRT_OK;
  for (size_t gi = 0; gi < p->num_graphs && !st; gi++) {
    const drt_cuda_graph_code *gc = &p->graphs[gi];
    for (size_t i = 0; i < gc->num_launches; i++) {
      const drt_cuda_launch *l = &gc->launches[i];
      if (l->kind != DRT_CUDA_LAUNCH_KERNEL) continue;
      if (l->kernel < 0 || (size_t)l->kernel >= p->num_kernels) {
        st = DRT_ERROR(DRT_STATUS_INTERNAL, "launch %zu of graph %zu names kernel %d of %zu", i, gi, (int)l->kernel,
                       p->num_kernels);
        break;
      }
      if (l->smem > smem[l->kernel]) smem[l->kernel] = l->smem;
    }
  }
  for (size_t k = 0; k < p->num_kernels && !st; k++) {
    const char *name = p->kernels[k].name;
    st = DRT_CU_CALL(cuModuleGetFunction, (&m->funcs[k], m->mod, name));
    if (st) {
      st = drt_status_annotate(st, "kernel '%s' of the plan's CUDA module", name);
      break;
    }
    if (smem[k] > STATIC_SMEM_LIMIT) {
      if ((int64_t)smem[k] > (int64_t)m->ctx->max_smem_optin) {
        st = DRT_ERROR(DRT_STATUS_UNSUPPORTED, "kernel '%s' needs %u bytes of shared memory; %s allows %d per block",
                       name, smem[k], m->ctx->info.name, m->ctx->max_smem_optin);
        break;
      }
      st = DRT_CU_CALL(cuFuncSetAttribute, (m->funcs[k], CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, (int)smem[k]));
      if (st) break;
    }
    st = DRT_CU_CALL(cuFuncGetAttribute, (&m->func_max_threads[k], CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, m->funcs[k]));
  }
  free(smem);
  return st;
}

static bool program_has_gemm(const drt_cuda_program *p) {
  for (size_t gi = 0; gi < p->num_graphs; gi++)
    for (size_t i = 0; i < p->graphs[gi].num_launches; i++)
      if (p->graphs[gi].launches[i].kind == DRT_CUDA_LAUNCH_GEMM) return true;
  return false;
}

drt_status drt_cuda_module_load(drt_cuda_context *ctx, const drt_cuda_program *prog, const drt_plan_cuda *bins,
                                drt_cuda_module **out) {
  *out = NULL;
  if (!bins || !bins->present || bins->num_images == 0)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "the plan has no CUDA code: compile it with drt compile --target cuda");
  if (prog->source_hash != bins->source_hash)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED,
                     "the plan's CUDA program does not match this build's code generator (plan source hash %016llx, "
                     "rendered %016llx): recompile the plan with this version of drt",
                     (unsigned long long)bins->source_hash, (unsigned long long)prog->source_hash);
  if (bins->precision != (uint8_t)prog->precision)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "the plan's CUDA binaries are for precision %s, the program for %s",
                     drt_cuda_precision_name((drt_cuda_precision)bins->precision),
                     drt_cuda_precision_name(prog->precision));
  DRT_RETURN_IF_ERROR(drt_cuda_ctx_enter(ctx));
  if (program_has_gemm(prog)) DRT_RETURN_IF_ERROR(drt_cuda_ctx_require_lt(ctx));
  uint32_t idx = 0;
  DRT_RETURN_IF_ERROR(drt_cuda_select_image(bins, ctx->info.cc_major, ctx->info.cc_minor, ctx->info.name, &idx));
  int num;
  bool ptx = false, specific;
  drt_cuda_parse_arch(bins->images[idx].arch, &num, &ptx, &specific);
  drt_cuda_module *m = calloc(1, sizeof *m);
  if (!m) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "CUDA module");
  m->prog = prog;
  snprintf(m->arch, sizeof m->arch, "%.15s", bins->images[idx].arch);
  /* take a context reference: acquire by ordinal bumps the count of this very context */
  drt_cuda_context *c2 = NULL;
  drt_status st = drt_cuda_context_acquire(ctx->ordinal, &c2);
  if (st) {
    free(m);
    return st;
  }
  m->ctx = c2;
  st = load_image(m, &bins->images[idx], ptx);
  if (!st) st = resolve_kernels(m);
  if (!st) st = upload_constants(m);
  if (st) {
    drt_cuda_module_destroy(m);
    return st;
  }
  drt_log(DRT_LOG_INFO, "CUDA module: %s image for %s (sm_%d%d), %zu kernels, %.1f MiB of weights", m->arch,
          ctx->info.name, ctx->info.cc_major, ctx->info.cc_minor, prog->num_kernels,
          (double)m->weights_bytes / (1024.0 * 1024.0));
  *out = m;
  return DRT_OK;
}

void drt_cuda_module_destroy(drt_cuda_module *m) {
  if (!m) return;
  if (m->ctx) {
    drt_cu.cuCtxSetCurrent(m->ctx->cu);
    if (m->weights) drt_cu.cuMemFree_v2(m->weights);
    if (m->mod) drt_cu.cuModuleUnload(m->mod);
  }
  free(m->funcs);
  free(m->func_max_threads);
  free(m->map_keys);
  free(m->map_vals);
  drt_cuda_context_release(m->ctx);
  free(m);
}

drt_cuda_context *drt_cuda_module_context(const drt_cuda_module *m) { return m->ctx; }
const drt_cuda_program *drt_cuda_module_program(const drt_cuda_module *m) { return m->prog; }

drt_status drt_cuda_module_launch(drt_cuda_module *m, void *stream, const char *kernel, uint32_t grid, uint32_t block,
                                  const uint64_t *args, int num_args) {
  int k = drt_cuda_program_find_kernel(m->prog, kernel);
  if (k < 0) return DRT_ERROR(DRT_STATUS_INTERNAL, "the CUDA program has no kernel '%s'", kernel);
  if (num_args < 0 || num_args > DRT_CUDA_MAX_ARGS)
    return DRT_ERROR(DRT_STATUS_INTERNAL, "kernel '%s' launched with %d arguments (at most %d)", kernel, num_args,
                     DRT_CUDA_MAX_ARGS);
  if (grid == 0 || block == 0 || (int64_t)block > (int64_t)m->func_max_threads[k])
    return DRT_ERROR(DRT_STATUS_INTERNAL, "kernel '%s' launched with grid %u, block %u (at most %d threads)", kernel,
                     grid, block, m->func_max_threads[k]);
  DRT_RETURN_IF_ERROR(drt_cuda_ctx_enter(m->ctx));
  struct {
    uint64_t u[DRT_CUDA_MAX_ARGS];
  } kargs;
  memset(&kargs, 0, sizeof kargs);
  if (num_args) memcpy(kargs.u, args, (size_t)num_args * sizeof(uint64_t));
  void *params[1] = {&kargs};
  drt_status st = DRT_CU_CALL(cuLaunchKernel, (m->funcs[k], grid, 1, 1, block, 1, 1, 0, (CUstream)stream, params, NULL));
  return st ? drt_status_annotate(st, "kernel '%s'", kernel) : DRT_OK;
}

#endif /* DRT_CUDA_ENABLED */
