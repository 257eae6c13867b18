/* The CUDA executor: one graph of a module with its device buffers (activation arena from the
 * memory plan, separate buffers for graph inputs/outputs and unplanned values, scratch, cuBLASLt
 * workspace), pinned staging, a stream and the CUDA graph of one evaluation. Every launch is
 * resolved once at creation (kernel argument slots, GEMM descriptors and algorithms, copy
 * addresses, host-fallback buffers), so an evaluation only enqueues. */
#include "runtime/cuda/cuda_internal.h"
#include "runtime/cuda/select.h"

#ifdef DRT_CUDA_ENABLED

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ir/infer_movement.h"
#include "runtime/cpu/cpu.h"

#define LT_WORKSPACE_BYTES (32ull << 20)

typedef struct host_call {
  drt_cuda_executor *e;
  const drt_node *node;
  void **in_pin;       /* [num_inputs] pinned staging in storage dtype (NULL: constant / absent / empty) */
  uint64_t *in_bytes;  /* storage bytes */
  CUdeviceptr *in_dev;
  void **out_pin;      /* [num_outputs] */
  uint64_t *out_bytes;
  CUdeviceptr *out_dev;
  drt_tensor *in_t, *out_t; /* host tensors in the value dtypes */
  bool *in_conv, *out_conv; /* storage dtype differs: convert between pin and tensor */
  void **owned;              /* host conversion buffers */
  int num_owned;
} host_call;

typedef struct prepared {
  uint64_t kargs[DRT_CUDA_MAX_ARGS]; /* KERNEL: the drt_kargs struct */
  int lt_entry;                      /* GEMM */
  drt_cuda_lt_problem prob;
  CUdeviceptr ga, gb, gc, gd, gbias; /* GEMM: cuBLASLt's A, B (the row-major B, A), C, D, bias */
  CUdeviceptr dst, src;              /* COPY */
  uint64_t bytes;
  host_call *host; /* HOST */
} prepared;

struct drt_cuda_executor {
  drt_cuda_module *m;
  drt_cuda_context *ctx;
  const drt_cuda_graph_code *code;
  const drt_graph *g;
  drt_cuda_executor_options opt;
  drt_dtype act; /* storage dtype of float32 values */
  CUstream stream;
  uint32_t num_ids;
  CUdeviceptr *addr; /* value id -> device address (0: none) */
  CUdeviceptr *allocs;
  size_t num_allocs, cap_allocs;
  CUdeviceptr arena, scratch, workspace;
  uint64_t scratch_bytes, workspace_bytes;
  CUdeviceptr *in_dptr, *out_dptr;
  void **in_stage, **out_stage; /* pinned */
  uint64_t *in_bytes, *out_bytes;
  prepared *prep;
  drt_cuda_lt_cache lt;
  host_call **hosts;
  size_t num_hosts;
  drt_threadpool *pool;
  drt_cpu_ctx cpu;
  drt_status host_error; /* first error of a host fallback, reported after the stream sync */
  CUgraph graph;
  CUgraphExec exec;
  bool graphs_off;
  bool pdl; /* kernels launched with programmatic stream serialization (see want_pdl) */
  uint64_t runs;
  bool check_nodes; /* DRT_CUDA_CHECK_NODES=1: sync after every node and check its float outputs */
  int nonfinite_kernel; /* -1: none */
  CUdeviceptr counters; /* u32 per output */
  uint32_t *counters_host; /* pinned */
  bool *resident; /* per input: written on the device by the caller; run() neither checks nor uploads it */
  uint8_t *variant; /* per node with variants (drt_cuda_launch.variant): the one that runs, 0: not chosen yet */
  bool variant_env_warned; /* a malformed DRT_CUDA_VARIANT was reported */
};

void drt_cuda_executor_options_init(drt_cuda_executor_options *o) {
  o->use_graphs = true;
  o->check_nonfinite = false;
}

static drt_dtype storage_dtype(const drt_cuda_executor *e, const drt_value *v) {
  return drt_cuda_value_storage(e->m->prog->precision, e->code, v);
}

static uint64_t storage_bytes(const drt_cuda_executor *e, const drt_value *v) {
  drt_tensor t = {storage_dtype(e, v), v->shape, NULL};
  return drt_tensor_nbytes(&t);
}

drt_dtype drt_cuda_executor_storage(const drt_cuda_executor *e, const drt_value *v) { return storage_dtype(e, v); }

static drt_status dev_alloc(drt_cuda_executor *e, uint64_t bytes, const char *what, const char *name,
                            CUdeviceptr *out) {
  *out = 0;
  if (e->num_allocs == e->cap_allocs) {
    size_t cap = e->cap_allocs ? 2 * e->cap_allocs : 64;
    CUdeviceptr *na = realloc(e->allocs, cap * sizeof *na);
    if (!na) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "allocation list");
    e->allocs = na;
    e->cap_allocs = cap;
  }
  drt_status st = DRT_CU_CALL(cuMemAlloc_v2, (out, (size_t)(bytes ? bytes : 1)));
  if (st) {
    size_t free_b = 0, total_b = 0;
    drt_cu.cuMemGetInfo_v2(&free_b, &total_b);
    return drt_status_annotate(st, "allocating %llu bytes on the GPU for %s%s%s%s (%.1f of %.1f MiB free)",
                               (unsigned long long)bytes, what, name ? " '" : "", name ? name : "", name ? "'" : "",
                               (double)free_b / 1048576.0, (double)total_b / 1048576.0);
  }
  e->allocs[e->num_allocs++] = *out;
  return DRT_OK;
}

static drt_status pinned_alloc(uint64_t bytes, void **out) {
  *out = NULL;
  drt_status st = DRT_CU_CALL(cuMemAllocHost_v2, (out, (size_t)(bytes ? bytes : 16)));
  if (st) *out = NULL;
  return st ? drt_status_annotate(st, "allocating %llu bytes of pinned host memory", (unsigned long long)bytes) : DRT_OK;
}

static CUdeviceptr value_addr(const drt_cuda_executor *e, const drt_value *v) {
  if (v->kind == DRT_VALUE_CONST) return drt_cuda_module_const(e->m, v);
  return v->id < e->num_ids ? e->addr[v->id] : 0;
}

static drt_status resolve(const drt_cuda_executor *e, const drt_cuda_arg *a, uint64_t *out) {
  *out = 0;
  switch (a->kind) {
    case DRT_CUDA_ARG_NONE:
      return DRT_OK;
    case DRT_CUDA_ARG_IMM:
      *out = a->imm;
      return DRT_OK;
    case DRT_CUDA_ARG_SCRATCH:
      if (a->offset > e->scratch_bytes)
        return DRT_ERROR(DRT_STATUS_INTERNAL, "scratch offset %llu beyond the %llu-byte scratch region",
                         (unsigned long long)a->offset, (unsigned long long)e->scratch_bytes);
      *out = e->scratch + a->offset;
      return DRT_OK;
    case DRT_CUDA_ARG_VALUE: {
      const drt_value *v = a->value;
      if (!v) return DRT_ERROR(DRT_STATUS_INTERNAL, "VALUE argument without a value");
      uint64_t nb = storage_bytes(e, v);
      CUdeviceptr base = value_addr(e, v);
      if (!base && nb) return DRT_ERROR(DRT_STATUS_INTERNAL, "value '%s' has no device buffer", v->name);
      if (a->offset > nb)
        return DRT_ERROR(DRT_STATUS_INTERNAL, "offset %llu beyond the %llu bytes of value '%s'",
                         (unsigned long long)a->offset, (unsigned long long)nb, v->name);
      *out = base + a->offset;
      return DRT_OK;
    }
    default:
      return DRT_ERROR(DRT_STATUS_INTERNAL, "argument kind %u", (unsigned)a->kind);
  }
}

/* A GEMM operand must lie inside its value: extent of batch items of rows x cols (row stride ld). */
static drt_status check_extent(const drt_cuda_executor *e, const drt_cuda_arg *a, drt_dtype type, const char *what,
                               int64_t batch, int64_t stride, int64_t rows, int64_t cols, int64_t ld) {
  if (a->kind != DRT_CUDA_ARG_VALUE) return DRT_OK;
  uint64_t nb = storage_bytes(e, a->value);
  size_t es = drt_dtype_size(type);
  if (storage_dtype(e, a->value) != type)
    return DRT_ERROR(DRT_STATUS_INTERNAL, "GEMM %s has type %s, value '%s' is stored as %s", what,
                     drt_dtype_name(type), a->value->name, drt_dtype_name(storage_dtype(e, a->value)));
  uint64_t need = ((uint64_t)(batch - 1) * (uint64_t)stride + (uint64_t)(rows - 1) * (uint64_t)ld + (uint64_t)cols) * es;
  if (a->offset + need > nb)
    return DRT_ERROR(DRT_STATUS_INTERNAL, "GEMM %s reads %llu bytes at offset %llu of value '%s' (%llu bytes)", what,
                     (unsigned long long)need, (unsigned long long)a->offset, a->value->name,
                     (unsigned long long)nb);
  return DRT_OK;
}

static drt_status prepare_gemm(drt_cuda_executor *e, const drt_cuda_gemm *g, prepared *p) {
  DRT_RETURN_IF_ERROR(drt_cuda_gemm_to_lt(g, &p->prob));
  DRT_RETURN_IF_ERROR(check_extent(e, &g->a, g->a_type, "A", g->batch, g->stride_a, g->trans_a ? g->k : g->m,
                                   g->trans_a ? g->m : g->k, g->lda));
  DRT_RETURN_IF_ERROR(check_extent(e, &g->b, g->b_type, "B", g->batch, g->stride_b, g->trans_b ? g->n : g->k,
                                   g->trans_b ? g->k : g->n, g->ldb));
  DRT_RETURN_IF_ERROR(check_extent(e, &g->c, g->c_type, "C", g->batch, g->stride_c, g->m, g->n, g->ldc));
  DRT_RETURN_IF_ERROR(check_extent(e, &g->d, g->d_type, "D", g->batch, g->stride_d, g->m, g->n, g->ldd));
  uint64_t a, b, c = 0, d, bias = 0;
  DRT_RETURN_IF_ERROR(resolve(e, &g->a, &a));
  DRT_RETURN_IF_ERROR(resolve(e, &g->b, &b));
  DRT_RETURN_IF_ERROR(resolve(e, &g->d, &d));
  if (p->prob.has_c) DRT_RETURN_IF_ERROR(resolve(e, &g->c, &c));
  else c = d;
  DRT_RETURN_IF_ERROR(resolve(e, &g->bias, &bias));
  p->ga = b; /* cuBLASLt's A is the row-major B */
  p->gb = a;
  p->gc = c;
  p->gd = d;
  p->gbias = bias;
  uint32_t align[4] = {drt_cuda_alignment(b), drt_cuda_alignment(a), drt_cuda_alignment(c), drt_cuda_alignment(d)};
  return drt_cuda_lt_get(e->ctx, &e->lt, &p->prob, g->tf32, g->bias_type, align, e->workspace_bytes, &p->lt_entry);
}

static drt_status prepare_host(drt_cuda_executor *e, const drt_node *n, prepared *p) {
  host_call *h = calloc(1, sizeof *h);
  if (!h) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "host fallback");
  p->host = h;
  e->hosts[e->num_hosts++] = h;
  h->e = e;
  h->node = n;
  int ni = n->num_inputs, no = n->num_outputs;
  size_t cnt = (size_t)(ni + no + 1);
  h->in_pin = calloc(cnt, sizeof(void *));
  h->in_bytes = calloc(cnt, sizeof(uint64_t));
  h->in_dev = calloc(cnt, sizeof(CUdeviceptr));
  h->out_pin = calloc(cnt, sizeof(void *));
  h->out_bytes = calloc(cnt, sizeof(uint64_t));
  h->out_dev = calloc(cnt, sizeof(CUdeviceptr));
  h->in_t = calloc(cnt, sizeof(drt_tensor));
  h->out_t = calloc(cnt, sizeof(drt_tensor));
  h->in_conv = calloc(cnt, sizeof(bool));
  h->out_conv = calloc(cnt, sizeof(bool));
  h->owned = calloc(cnt, sizeof(void *));
  if (!h->in_pin || !h->in_bytes || !h->in_dev || !h->out_pin || !h->out_bytes || !h->out_dev || !h->in_t ||
      !h->out_t || !h->in_conv || !h->out_conv || !h->owned)
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "host fallback");
  for (int j = 0; j < ni + no; j++) {
    bool is_in = j < ni;
    int k = is_in ? j : j - ni;
    const drt_value *v = is_in ? n->inputs[k] : n->outputs[k];
    drt_tensor *t = is_in ? &h->in_t[k] : &h->out_t[k];
    if (!v) continue;
    t->dtype = v->dtype;
    t->shape = v->shape;
    if (is_in && v->kind == DRT_VALUE_CONST) {
      t->data = v->data; /* the exact host constant */
      continue;
    }
    uint64_t sb = storage_bytes(e, v);
    CUdeviceptr dev = value_addr(e, v);
    if (!dev && sb) return DRT_ERROR(DRT_STATUS_INTERNAL, "value '%s' has no device buffer", v->name);
    void *pin = NULL;
    DRT_RETURN_IF_ERROR(pinned_alloc(sb, &pin));
    if (is_in) {
      h->in_pin[k] = pin;
      h->in_bytes[k] = sb;
      h->in_dev[k] = dev;
    } else {
      h->out_pin[k] = pin;
      h->out_bytes[k] = sb;
      h->out_dev[k] = dev;
    }
    if (storage_dtype(e, v) == v->dtype) {
      t->data = pin;
    } else {
      size_t nb = drt_tensor_nbytes(t);
      void *buf = malloc(nb ? nb : 16);
      if (!buf) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "host fallback buffer of %zu bytes", nb);
      h->owned[h->num_owned++] = buf;
      t->data = buf;
      if (is_in) h->in_conv[k] = true;
      else h->out_conv[k] = true;
    }
  }
  if (!e->pool) {
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = nproc < 1 ? 1 : nproc > 64 ? 64 : (int)nproc;
    DRT_RETURN_IF_ERROR(drt_threadpool_create(threads, &e->pool));
    e->cpu.pool = e->pool;
    e->cpu.num_threads = threads;
  }
  return DRT_OK;
}

static void host_call_free(host_call *h) {
  if (!h) return;
  int cnt = h->node->num_inputs + h->node->num_outputs + 1;
  for (int j = 0; j < cnt; j++) {
    if (h->in_pin && h->in_pin[j]) drt_cu.cuMemFreeHost(h->in_pin[j]);
    if (h->out_pin && h->out_pin[j]) drt_cu.cuMemFreeHost(h->out_pin[j]);
  }
  for (int j = 0; j < h->num_owned; j++) free(h->owned[j]);
  free(h->in_pin);
  free(h->in_bytes);
  free(h->in_dev);
  free(h->out_pin);
  free(h->out_bytes);
  free(h->out_dev);
  free(h->in_t);
  free(h->out_t);
  free(h->in_conv);
  free(h->out_conv);
  free(h->owned);
  free(h);
}

/* Runs on a driver thread in stream order: storage -> value dtypes, the CPU kernel, back. */
static void CUDA_CB host_fn(void *user) {
  host_call *h = user;
  drt_cuda_executor *e = h->e;
  if (e->host_error) return;
  const drt_node *n = h->node;
  for (int k = 0; k < n->num_inputs; k++)
    if (h->in_conv[k]) {
      const drt_value *v = n->inputs[k];
      drt_convert(v->dtype, h->in_t[k].data, storage_dtype(e, v), h->in_pin[k],
                  (size_t)drt_shape_numel(&v->shape));
    }
  drt_status st = drt_cpu_run_node(&e->cpu, n, h->in_t, h->out_t);
  if (st) {
    char d[256];
    e->host_error = drt_status_annotate(st, "%s (CUDA host fallback)", drt_node_describe(n, d, sizeof d));
    return;
  }
  for (int k = 0; k < n->num_outputs; k++)
    if (h->out_conv[k]) {
      const drt_value *v = n->outputs[k];
      drt_convert(storage_dtype(e, v), h->out_pin[k], v->dtype, h->out_t[k].data,
                  (size_t)drt_shape_numel(&v->shape));
    }
}

static drt_status enqueue_host(drt_cuda_executor *e, host_call *h, CUstream s) {
  const drt_node *n = h->node;
  for (int k = 0; k < n->num_inputs; k++)
    if (h->in_pin[k] && h->in_bytes[k])
      DRT_RETURN_IF_ERROR(DRT_CU_CALL(cuMemcpyDtoHAsync_v2, (h->in_pin[k], h->in_dev[k], (size_t)h->in_bytes[k], s)));
  DRT_RETURN_IF_ERROR(DRT_CU_CALL(cuLaunchHostFunc, (s, host_fn, h)));
  for (int k = 0; k < n->num_outputs; k++)
    if (h->out_pin[k] && h->out_bytes[k])
      DRT_RETURN_IF_ERROR(DRT_CU_CALL(cuMemcpyHtoDAsync_v2, (h->out_dev[k], h->out_pin[k], (size_t)h->out_bytes[k], s)));
  return DRT_OK;
}

static drt_status prepare_kernel(drt_cuda_executor *e, const drt_cuda_launch *l, prepared *p) {
  const drt_cuda_program *prog = e->m->prog;
  if (l->kernel < 0 || (size_t)l->kernel >= prog->num_kernels)
    return DRT_ERROR(DRT_STATUS_INTERNAL, "launch names kernel %d of %zu", (int)l->kernel, prog->num_kernels);
  const char *name = prog->kernels[l->kernel].name;
  uint64_t threads = (uint64_t)l->block[0] * l->block[1] * l->block[2];
  if (!l->grid[0] || !l->grid[1] || !l->grid[2] || !threads)
    return DRT_ERROR(DRT_STATUS_INTERNAL, "kernel '%s' launched with grid %ux%ux%u, block %ux%ux%u", name, l->grid[0],
                     l->grid[1], l->grid[2], l->block[0], l->block[1], l->block[2]);
  if (threads > (uint64_t)e->m->func_max_threads[l->kernel])
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "kernel '%s' launched with %llu threads per block; on %s it allows %d",
                     name, (unsigned long long)threads, e->ctx->info.name, e->m->func_max_threads[l->kernel]);
  if (l->num_args < 0 || l->num_args > DRT_CUDA_MAX_ARGS)
    return DRT_ERROR(DRT_STATUS_INTERNAL, "kernel '%s' has %d arguments", name, l->num_args);
  for (int j = 0; j < l->num_args; j++) {
    drt_status st = resolve(e, &l->args[j], &p->kargs[j]);
    if (st) return drt_status_annotate(st, "kernel '%s' argument %d", name, j);
  }
  return DRT_OK;
}

static drt_status prepare(drt_cuda_executor *e) {
  const drt_cuda_graph_code *code = e->code;
  char d[256];
  for (size_t i = 0; i < code->num_launches; i++) {
    const drt_cuda_launch *l = &code->launches[i];
    prepared *p = &e->prep[i];
    if (l->node >= e->g->num_nodes)
      return DRT_ERROR(DRT_STATUS_INTERNAL, "launch %zu belongs to node %u of %zu", i, l->node, e->g->num_nodes);
    const drt_node *n = e->g->nodes[l->node];
    drt_status st = DRT_OK;
    switch (l->kind) {
      case DRT_CUDA_LAUNCH_KERNEL:
        st = prepare_kernel(e, l, p);
        break;
      case DRT_CUDA_LAUNCH_GEMM:
        st = prepare_gemm(e, &l->gemm, p);
        break;
      case DRT_CUDA_LAUNCH_COPY: {
        uint64_t dst = 0, src = 0;
        st = resolve(e, &l->dst, &dst);
        if (!st) st = resolve(e, &l->src, &src);
        p->dst = dst;
        p->src = src;
        p->bytes = l->bytes;
        break;
      }
      case DRT_CUDA_LAUNCH_HOST:
        st = prepare_host(e, n, p);
        break;
      default:
        st = DRT_ERROR(DRT_STATUS_INTERNAL, "launch kind %u", (unsigned)l->kind);
    }
    if (st) return drt_status_annotate(st, "%s", drt_node_describe(n, d, sizeof d));
  }
  return DRT_OK;
}

/* DRT_CUDA_CHECK_NODES=1 (debugging): waits for node n and fails on the first float output with
 * NaN/Inf, naming the node, so a bad kernel is found without bisecting by hand. */
static drt_status check_node(drt_cuda_executor *e, const drt_node *n, CUstream s) {
  DRT_RETURN_IF_ERROR(DRT_CU_CALL(cuStreamSynchronize, (s)));
  if (e->host_error) return DRT_OK; /* reported by the caller */
  char d[256];
  for (int j = 0; j < n->num_outputs; j++) {
    const drt_value *v = n->outputs[j];
    drt_dtype sdt = storage_dtype(e, v);
    if (sdt != DRT_DTYPE_FLOAT32 && sdt != DRT_DTYPE_FLOAT16 && sdt != DRT_DTYPE_BFLOAT16) continue;
    uint64_t nb = storage_bytes(e, v);
    int64_t cnt = drt_shape_numel(&v->shape);
    if (!nb || cnt <= 0) continue;
    void *h = malloc((size_t)nb);
    float *f = malloc((size_t)cnt * sizeof(float));
    if (!h || !f) {
      free(h);
      free(f);
      return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "node check");
    }
    drt_status st = DRT_CU_CALL(cuMemcpyDtoH_v2, (h, value_addr(e, v), (size_t)nb));
    if (!st) drt_convert(DRT_DTYPE_FLOAT32, f, sdt, h, (size_t)cnt);
    int64_t bad = 0, first = -1;
    float maxabs = 0;
    for (int64_t i = 0; !st && i < cnt; i++) {
      if (f[i] - f[i] != 0.0f) {
        if (first < 0) first = i;
        bad++;
      } else if (fabsf(f[i]) > maxabs) {
        maxabs = fabsf(f[i]);
      }
    }
    free(h);
    free(f);
    if (st) return st;
    drt_log(DRT_LOG_DEBUG, "%s: output '%s' max |x| %g", drt_node_describe(n, d, sizeof d), v->name, (double)maxabs);
    if (bad)
      return DRT_ERROR(DRT_STATUS_INTERNAL, "%s: output '%s' has %lld non-finite values (first at element %lld; "
                       "largest finite |x| %g) (DRT_CUDA_CHECK_NODES)", drt_node_describe(n, d, sizeof d), v->name,
                       (long long)bad, (long long)first, (double)maxabs);
  }
  return DRT_OK;
}

/* Programmatic dependent launch: on sm_90+ a kernel launched with programmatic stream
 * serialization may be scheduled while the kernel before it still runs; every generated kernel
 * begins with DRT_PDL_ENTRY() (griddepcontrol.wait, then launch_dependents), which the code only
 * contains when the image was compiled for sm_90 or newer. So: a device of compute capability 9+,
 * a module image for sm_90+ (a compute_80 PTX JIT-compiled there has no wait), and not disabled
 * with DRT_CUDA_PDL=0. */
static bool want_pdl(const drt_cuda_module *m) {
  const char *env = getenv("DRT_CUDA_PDL");
  if (env && strcmp(env, "0") == 0) return false;
  const drt_cuda_device_info *d = drt_cuda_context_device(m->ctx);
  int num = 0;
  bool ptx = false, specific = false;
  return d && d->cc_major >= 9 && drt_cuda_parse_arch(m->arch, &num, &ptx, &specific) && num >= 90;
}

static drt_status launch_kernel(drt_cuda_executor *e, const drt_cuda_launch *l, void **params, CUstream s) {
  CUfunction f = e->m->funcs[l->kernel];
  if (e->pdl) {
    CUlaunchAttribute at;
    memset(&at, 0, sizeof at);
    at.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
    at.value.programmaticStreamSerializationAllowed = 1;
    CUlaunchConfig c;
    memset(&c, 0, sizeof c);
    c.gridDimX = l->grid[0];
    c.gridDimY = l->grid[1];
    c.gridDimZ = l->grid[2];
    c.blockDimX = l->block[0];
    c.blockDimY = l->block[1];
    c.blockDimZ = l->block[2];
    c.sharedMemBytes = l->smem;
    c.hStream = s;
    c.attrs = &at;
    c.numAttrs = 1;
    CUresult r = drt_cu.cuLaunchKernelEx(&c, f, params, NULL);
    if (r == CUDA_SUCCESS) return DRT_OK;
    /* a driver or capture that refuses the attribute: without it from now on; any other error
       (a fault of an earlier kernel, resources) is the launch's own and is reported */
    if (r != CUDA_ERROR_NOT_SUPPORTED && r != CUDA_ERROR_INVALID_VALUE && r != CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED)
      return drt_cu_check(r, "cuLaunchKernelEx", __FILE__, __LINE__);
    const char *name = NULL;
    if (drt_cu.cuGetErrorName(r, &name) != CUDA_SUCCESS) name = NULL;
    drt_log(DRT_LOG_WARN, "programmatic dependent launch refused (%s), launching without it from now on",
            name ? name : "error");
    e->pdl = false;
  }
  return DRT_CU_CALL(cuLaunchKernel, (f, l->grid[0], l->grid[1], l->grid[2], l->block[0], l->block[1], l->block[2],
                                      l->smem, s, params, NULL));
}

/* Enqueues launch i on stream s. */
static drt_status enqueue_one(drt_cuda_executor *e, size_t i, CUstream s) {
  const drt_cuda_launch *l = &e->code->launches[i];
  prepared *p = &e->prep[i];
  drt_status st = DRT_OK;
  switch (l->kind) {
    case DRT_CUDA_LAUNCH_KERNEL: {
      void *params[1] = {p->kargs};
      st = launch_kernel(e, l, params, s);
      if (st) st = drt_status_annotate(st, "kernel '%s'", e->m->prog->kernels[l->kernel].name);
      break;
    }
    case DRT_CUDA_LAUNCH_GEMM:
      st = drt_cuda_lt_run(e->ctx, &e->lt, p->lt_entry, &p->prob, p->ga, p->gb, p->gc, p->gd, p->gbias, e->workspace,
                           e->workspace_bytes, s);
      break;
    case DRT_CUDA_LAUNCH_COPY:
      if (p->bytes && p->dst != p->src) st = DRT_CU_CALL(cuMemcpyDtoDAsync_v2, (p->dst, p->src, (size_t)p->bytes, s));
      break;
    case DRT_CUDA_LAUNCH_HOST:
      st = enqueue_host(e, p->host, s);
      break;
    default:
      break;
  }
  if (st) {
    char d[256];
    return drt_status_annotate(st, "%s", drt_node_describe(e->g->nodes[l->node], d, sizeof d));
  }
  return DRT_OK;
}

/* ---- variants: a node computed in more than one way (drt_cuda_launch.variant) -------------------
 * The first evaluation outside stream capture runs each variant of such a node once, then three
 * more times between CUDA events, and keeps the fastest for the executor's lifetime (the CUDA
 * graphs captured later contain only it). DRT_CUDA_VARIANT=k forces variant k wherever a node
 * has it, DRT_CUDA_VARIANT=last each node's last one (a convolution's im2col + cuBLASLt). During
 * capture, with nothing timed yet, variant 1 runs (not recorded). */
static int node_variants(const drt_cuda_executor *e, uint32_t node) {
  int nv = 0;
  for (uint32_t i = e->code->node_first[node]; i < e->code->node_first[node + 1]; i++)
    if (e->code->launches[i].variant > nv) nv = e->code->launches[i].variant;
  return nv;
}

static drt_status enqueue_variant(drt_cuda_executor *e, uint32_t node, int v, CUstream s) {
  for (uint32_t i = e->code->node_first[node]; i < e->code->node_first[node + 1]; i++)
    if (e->code->launches[i].variant == v) DRT_RETURN_IF_ERROR(enqueue_one(e, i, s));
  return DRT_OK;
}

static drt_status time_variant(drt_cuda_executor *e, uint32_t node, int v, CUstream s, CUevent ev[2], float *ms) {
  DRT_RETURN_IF_ERROR(enqueue_variant(e, node, v, s));
  DRT_RETURN_IF_ERROR(DRT_CU_CALL(cuEventRecord, (ev[0], s)));
  for (int r = 0; r < 3; r++) DRT_RETURN_IF_ERROR(enqueue_variant(e, node, v, s));
  DRT_RETURN_IF_ERROR(DRT_CU_CALL(cuEventRecord, (ev[1], s)));
  DRT_RETURN_IF_ERROR(DRT_CU_CALL(cuEventSynchronize, (ev[1])));
  return DRT_CU_CALL(cuEventElapsedTime_v2, (ms, ev[0], ev[1]));
}

/* Decides node's variant into e->variant[node]; *use is the variant to enqueue now. */
static drt_status choose_variant(drt_cuda_executor *e, uint32_t node, CUstream s, int *use) {
  const int nv = node_variants(e, node);
  *use = 1;
  const char *env = getenv("DRT_CUDA_VARIANT");
  if (env && *env) {
    char *end = NULL;
    long k = strcmp(env, "last") == 0 ? nv : strtol(env, &end, 10);
    if ((!end || *end == 0) && k >= 1 && k <= nv) {
      e->variant[node] = (uint8_t)k;
      *use = (int)k;
      return DRT_OK;
    }
    if (end && (*end != 0 || k < 1) && !e->variant_env_warned) { /* a node lacking variant k is timed */
      e->variant_env_warned = true;
      drt_log(DRT_LOG_WARN, "DRT_CUDA_VARIANT='%s' is neither a variant number (1, 2, ...) nor 'last': ignored, "
              "variants are timed", env);
    }
  }
  CUstreamCaptureStatus cs = CU_STREAM_CAPTURE_STATUS_NONE;
  if (nv < 2 || drt_cu.cuStreamIsCapturing(s, &cs) != CUDA_SUCCESS || cs != CU_STREAM_CAPTURE_STATUS_NONE) {
    if (nv < 2) e->variant[node] = 1;
    return DRT_OK;
  }
  CUevent ev[2] = {NULL, NULL};
  DRT_RETURN_IF_ERROR(DRT_CU_CALL(cuEventCreate, (&ev[0], CU_EVENT_DEFAULT)));
  drt_status st = DRT_CU_CALL(cuEventCreate, (&ev[1], CU_EVENT_DEFAULT));
  int best = 0;
  float best_ms = 0, t[8] = {0};
  drt_status first_err = DRT_OK;
  for (int v = 1; v <= nv && !st; v++) {
    float ms = 0;
    drt_status vs = time_variant(e, node, v, s, ev, &ms);
    if (vs) { /* e.g. a kernel the device cannot launch: the other variants may still run */
      char d[256];
      drt_log(DRT_LOG_WARN, "%s: variant %d of %d failed, trying the others: %s",
              drt_node_describe(e->g->nodes[node], d, sizeof d), v, nv, drt_status_message(vs));
      drt_cu.cuStreamSynchronize(s);
      if (!first_err) first_err = vs;
      else drt_status_free(vs);
      continue;
    }
    if (v <= 8) t[v - 1] = ms / 3;
    if (!best || ms < best_ms) best = v, best_ms = ms;
  }
  if (ev[0]) drt_cu.cuEventDestroy_v2(ev[0]);
  if (ev[1]) drt_cu.cuEventDestroy_v2(ev[1]);
  if (st || !best) {
    drt_status_free(st ? first_err : NULL);
    return st ? st : first_err;
  }
  drt_status_free(first_err);
  e->variant[node] = (uint8_t)best;
  *use = best;
  char d[256];
  drt_log(DRT_LOG_INFO, "%s: variant %d of %d (%.4f ms; variants 1-3: %.4f %.4f %.4f ms)",
          drt_node_describe(e->g->nodes[node], d, sizeof d), best, nv, best_ms / 3, t[0], t[1], t[2]);
  return DRT_OK;
}

/* Whether launch i runs: common launches always, a variant's once the node's choice is known
 * (choosing it if need be). */
static drt_status launch_runs(drt_cuda_executor *e, size_t i, CUstream s, bool *runs) {
  const drt_cuda_launch *l = &e->code->launches[i];
  int use = e->variant[l->node];
  if (l->variant && !use) DRT_RETURN_IF_ERROR(choose_variant(e, l->node, s, &use));
  *runs = !l->variant || l->variant == use;
  return DRT_OK;
}

drt_status drt_cuda_executor_tune(drt_cuda_executor *e) {
  DRT_RETURN_IF_ERROR(drt_cuda_ctx_enter(e->ctx));
  for (size_t i = 0; i < e->code->num_launches; i++) {
    const drt_cuda_launch *l = &e->code->launches[i];
    bool runs;
    DRT_RETURN_IF_ERROR(launch_runs(e, i, e->stream, &runs)); /* times the node's variants once */
    /* a GEMM's first run times cuBLASLt's candidates (runtime/cuda/gemm.c) */
    if (runs && l->kind == DRT_CUDA_LAUNCH_GEMM && !drt_cuda_lt_tuned(&e->lt, e->prep[i].lt_entry))
      DRT_RETURN_IF_ERROR(enqueue_one(e, i, e->stream));
  }
  return DRT_CU_CALL(cuStreamSynchronize, (e->stream));
}

int drt_cuda_executor_variant(const drt_cuda_executor *e, size_t node) {
  return node < e->g->num_nodes ? e->variant[node] : 0;
}

static drt_status enqueue_launches(drt_cuda_executor *e, CUstream s, bool check) {
  const drt_cuda_graph_code *code = e->code;
  for (size_t i = 0; i < code->num_launches; i++) {
    bool runs;
    DRT_RETURN_IF_ERROR(launch_runs(e, i, s, &runs));
    if (runs) DRT_RETURN_IF_ERROR(enqueue_one(e, i, s));
    const drt_cuda_launch *l = &code->launches[i];
    if (check && (i + 1 == code->num_launches || code->launches[i + 1].node != l->node))
      DRT_RETURN_IF_ERROR(check_node(e, e->g->nodes[l->node], s));
  }
  return DRT_OK;
}

/* ---- launch profile ------------------------------------------------------------------------------ */
static drt_status evaluate(drt_cuda_executor *e);

/* What launch i is, for the profile: the node's op and, for a kernel, the library routine its
 * wrapper calls (the first drt_* template it names), "elementwise" for a fused pointwise program. */
static void launch_label(const drt_cuda_executor *e, size_t i, char *name, size_t name_size, char *op, size_t op_size) {
  const drt_cuda_launch *l = &e->code->launches[i];
  const prepared *p = &e->prep[i];
  snprintf(op, op_size, "%s", drt_op_name(e->g->nodes[l->node]->op));
  switch (l->kind) {
    case DRT_CUDA_LAUNCH_GEMM:
      snprintf(name, name_size, "cublasLt gemm %llux%llux%llu%s", (unsigned long long)p->prob.n,
               (unsigned long long)p->prob.m, (unsigned long long)p->prob.k, p->prob.batch > 1 ? " batched" : "");
      if (p->prob.batch > 1)
        snprintf(name, name_size, "cublasLt gemm %llux%llux%llu x%d", (unsigned long long)p->prob.n,
                 (unsigned long long)p->prob.m, (unsigned long long)p->prob.k, (int)p->prob.batch);
      return;
    case DRT_CUDA_LAUNCH_COPY:
      snprintf(name, name_size, "device copy");
      return;
    case DRT_CUDA_LAUNCH_HOST:
      snprintf(name, name_size, "host fallback");
      return;
    default:
      break;
  }
  const drt_cuda_kernel *k = &e->m->prog->kernels[l->kernel];
  const char *src = e->m->prog->source, *b = src + k->src_begin, *end = src + k->src_end;
  const char *body = b;
  while (body < end && *body != '{') body++;
  static const char *skip[] = {"drt_kargs", "drt_nd", "drt_ld", "drt_ld_vec", "drt_st", "drt_st_vec", "drt_conv_geom"};
  for (const char *q = body; q + 4 < end; q++) {
    if (strncmp(q, "drt_", 4) != 0 || (q > src && (q[-1] == '_' || (q[-1] >= 'a' && q[-1] <= 'z')))) continue;
    size_t len = 0;
    while (q + len < end && (q[len] == '_' || (q[len] >= 'a' && q[len] <= 'z') || (q[len] >= '0' && q[len] <= '9')))
      len++;
    if (q[len] != '<' && q[len] != '(') continue;
    bool skipped = false;
    for (size_t j = 0; j < sizeof skip / sizeof skip[0]; j++)
      skipped |= strlen(skip[j]) == len && strncmp(q, skip[j], len) == 0;
    if (skipped) continue;
    if (len > 6 && (strncmp(q, "drt_u_", 6) == 0 || strncmp(q, "drt_b_", 6) == 0)) break; /* pointwise helpers */
    snprintf(name, name_size, "%.*s", (int)len, q);
    return;
  }
  snprintf(name, name_size, "%s", k->src_end > k->src_begin && strstr(k->name, "drt_k") == k->name ? "elementwise"
                                                                                                   : k->name);
}

drt_status drt_cuda_executor_profile(drt_cuda_executor *e, int iters, drt_cuda_profile *out) {
  memset(out, 0, sizeof *out);
  size_t n = e->code->num_launches;
  if (iters < 1) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "profile: iters must be positive");
  DRT_RETURN_IF_ERROR(drt_cuda_ctx_enter(e->ctx));
  CUevent *ev = calloc(n + 1, sizeof *ev);
  double *ms = calloc(n + 1, sizeof *ms);
  out->launches = calloc(n + 1, sizeof *out->launches);
  if (!ev || !ms || !out->launches) {
    free(ev);
    free(ms);
    drt_cuda_profile_free(out);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "profile of %zu launches", n);
  }
  drt_status st = DRT_OK;
  for (size_t i = 0; i <= n && !st; i++) st = DRT_CU_CALL(cuEventCreate, (&ev[i], CU_EVENT_DEFAULT));
  for (int it = 0; it < iters && !st; it++) {
    /* a head start: three evaluations from the captured graph keep the GPU busy while the host
       enqueues the profiled launches, so the events measure GPU time rather than enqueue time */
    for (int w = 0; w < 3 && !st; w++) st = evaluate(e);
    if (!st) st = DRT_CU_CALL(cuEventRecord, (ev[0], e->stream));
    for (size_t i = 0; i < n && !st; i++) {
      bool runs = false;
      st = launch_runs(e, i, e->stream, &runs); /* a variant not chosen: 0 ms, not listed */
      if (!st && runs) st = enqueue_one(e, i, e->stream);
      if (!st && it == 0) out->launches[i].ran = runs;
      if (!st) st = DRT_CU_CALL(cuEventRecord, (ev[i + 1], e->stream));
    }
    drt_status sync = DRT_CU_CALL(cuStreamSynchronize, (e->stream));
    if (!st) st = sync;
    else drt_status_free(sync);
    if (!st && e->host_error) {
      st = e->host_error;
      e->host_error = NULL;
    }
    for (size_t i = 0; i < n && !st; i++) {
      float f = 0;
      st = DRT_CU_CALL(cuEventElapsedTime_v2, (&f, ev[i], ev[i + 1]));
      ms[i] += f;
    }
  }
  for (size_t i = 0; i <= n; i++)
    if (ev[i]) drt_cu.cuEventDestroy_v2(ev[i]);
  free(ev);
  if (st) {
    free(ms);
    drt_cuda_profile_free(out);
    return st;
  }
  for (size_t i = 0; i < n; i++) {
    drt_cuda_profile_launch *pl = &out->launches[i];
    launch_label(e, i, pl->name, sizeof pl->name, pl->op, sizeof pl->op);
    pl->ms = ms[i] / iters;
    pl->node = e->code->launches[i].node;
    if (e->code->launches[i].kind == DRT_CUDA_LAUNCH_GEMM) {
      const drt_cuda_lt_problem *pb = &e->prep[i].prob;
      pl->flops = 2.0 * (double)pb->m * (double)pb->n * (double)pb->k * (pb->batch > 1 ? pb->batch : 1);
    }
    out->total_ms += pl->ms;
  }
  out->num_launches = n;
  free(ms);
  return DRT_OK;
}

void drt_cuda_profile_free(drt_cuda_profile *p) {
  if (!p) return;
  free(p->launches);
  memset(p, 0, sizeof *p);
}

void drt_cuda_executor_destroy(drt_cuda_executor *e) {
  if (!e) return;
  drt_cu.cuCtxSetCurrent(e->ctx->cu);
  if (e->stream) drt_cu.cuStreamSynchronize(e->stream);
  if (e->exec) drt_cu.cuGraphExecDestroy(e->exec);
  if (e->graph) drt_cu.cuGraphDestroy(e->graph);
  drt_cuda_lt_cache_free(&e->lt);
  for (size_t i = 0; i < e->num_hosts; i++) host_call_free(e->hosts[i]);
  free(e->hosts);
  drt_threadpool_destroy(e->pool);
  for (size_t i = 0; i < e->num_allocs; i++) drt_cu.cuMemFree_v2(e->allocs[i]);
  free(e->allocs);
  size_t ni = e->g->num_inputs, no = e->g->num_outputs;
  for (size_t i = 0; e->in_stage && i < ni; i++)
    if (e->in_stage[i]) drt_cu.cuMemFreeHost(e->in_stage[i]);
  for (size_t i = 0; e->out_stage && i < no; i++)
    if (e->out_stage[i]) drt_cu.cuMemFreeHost(e->out_stage[i]);
  if (e->counters_host) drt_cu.cuMemFreeHost(e->counters_host);
  if (e->stream) drt_cu.cuStreamDestroy_v2(e->stream);
  drt_status_free(e->host_error);
  free(e->in_stage);
  free(e->out_stage);
  free(e->in_bytes);
  free(e->out_bytes);
  free(e->resident);
  free(e->in_dptr);
  free(e->out_dptr);
  free(e->addr);
  free(e->prep);
  free(e->variant);
  free(e);
}

static bool program_graph_has(const drt_cuda_graph_code *c, uint8_t kind) {
  for (size_t i = 0; i < c->num_launches; i++)
    if (c->launches[i].kind == kind) return true;
  return false;
}

static drt_status create(drt_cuda_executor *e) {
  const drt_graph *g = e->g;
  const drt_cuda_graph_code *code = e->code;
  DRT_RETURN_IF_ERROR(DRT_CU_CALL(cuStreamCreate, (&e->stream, CU_STREAM_NON_BLOCKING)));
  e->num_ids = g->next_id;
  size_t ni = g->num_inputs, no = g->num_outputs;
  e->addr = calloc(e->num_ids ? e->num_ids : 1, sizeof *e->addr);
  e->in_dptr = calloc(ni + 1, sizeof *e->in_dptr);
  e->out_dptr = calloc(no + 1, sizeof *e->out_dptr);
  e->in_stage = calloc(ni + 1, sizeof *e->in_stage);
  e->out_stage = calloc(no + 1, sizeof *e->out_stage);
  e->in_bytes = calloc(ni + 1, sizeof *e->in_bytes);
  e->out_bytes = calloc(no + 1, sizeof *e->out_bytes);
  e->resident = calloc(ni + 1, sizeof *e->resident);
  e->variant = calloc(g->num_nodes + 1, sizeof *e->variant);
  e->prep = calloc(code->num_launches + 1, sizeof *e->prep);
  e->hosts = calloc(code->num_launches + 1, sizeof *e->hosts);
  if (!e->addr || !e->in_dptr || !e->out_dptr || !e->in_stage || !e->out_stage || !e->in_bytes || !e->out_bytes ||
      !e->resident || !e->variant || !e->prep || !e->hosts)
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "CUDA executor");
  for (size_t i = 0; i < g->num_values; i++)
    if (g->values[i]->id >= e->num_ids) return DRT_ERROR(DRT_STATUS_INTERNAL, "value id beyond next_id");
  /* graph inputs: one buffer each, fixed for the executor's lifetime */
  for (size_t i = 0; i < ni; i++) {
    const drt_value *v = g->inputs[i];
    e->in_bytes[i] = storage_bytes(e, v);
    DRT_RETURN_IF_ERROR(dev_alloc(e, e->in_bytes[i], "graph input", v->name, &e->in_dptr[i]));
    e->addr[v->id] = e->in_dptr[i];
    DRT_RETURN_IF_ERROR(pinned_alloc(e->in_bytes[i], &e->in_stage[i]));
  }
  /* the activation arena of the memory plan (offsets were planned for the value dtypes; storage
   * is never larger, so every value still fits its slot) */
  if (g->mem_planned) {
    for (size_t i = 0; i < g->num_values; i++) {
      const drt_value *v = g->values[i];
      if (v->kind != DRT_VALUE_INTERMEDIATE || v->is_graph_output || v->mem_offset < 0 || v->view_of) continue;
      uint64_t nb = storage_bytes(e, v);
      if ((uint64_t)v->mem_offset > g->mem_arena_bytes || nb > g->mem_arena_bytes - (uint64_t)v->mem_offset)
        return DRT_ERROR(DRT_STATUS_CORRUPT, "memory plan places '%s' outside the %llu-byte arena", v->name,
                         (unsigned long long)g->mem_arena_bytes);
    }
    DRT_RETURN_IF_ERROR(dev_alloc(e, g->mem_arena_bytes, "the activation arena", NULL, &e->arena));
  }
  for (size_t i = 0; i < g->num_values; i++) {
    const drt_value *v = g->values[i];
    if (v->kind != DRT_VALUE_INTERMEDIATE || e->addr[v->id]) continue;
    if (g->mem_planned && !v->is_graph_output && v->view_of) {
      /* a view: view_offset elements of the storage type into its root (checked by the plan
         loader and the memory plan: inside the root, 64-byte aligned) */
      const drt_value *r = v->view_of;
      uint64_t es = drt_dtype_size(storage_dtype(e, v));
      bool input_root = r->kind == DRT_VALUE_INPUT;
      if ((!input_root && r->mem_offset < 0) || v->view_offset < 0 || es != drt_dtype_size(storage_dtype(e, r)) ||
          ((uint64_t)v->view_offset + (uint64_t)drt_shape_numel(&v->shape)) * es > storage_bytes(e, r))
        return DRT_ERROR(DRT_STATUS_CORRUPT, "memory plan: view '%s' lies outside '%s'", v->name, r->name);
      e->addr[v->id] = (input_root ? e->addr[r->id] : e->arena + (uint64_t)r->mem_offset) + (uint64_t)v->view_offset * es;
    } else if (g->mem_planned && !v->is_graph_output && v->mem_offset >= 0) {
      e->addr[v->id] = e->arena + (uint64_t)v->mem_offset;
    } else if (!g->mem_planned && drt_unplanned_alias(v, &(const drt_value *){NULL}, &(int64_t){0})) {
      continue; /* placed below, into its root */
    } else {
      uint64_t nb = storage_bytes(e, v);
      if (!nb && drt_shape_numel(&v->shape) != 0)
        return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "'%s': the size of shape and dtype does not fit in memory",
                         v->name);
      DRT_RETURN_IF_ERROR(dev_alloc(e, nb, v->is_graph_output ? "graph output" : "value", v->name, &e->addr[v->id]));
    }
  }
  /* graphs without a memory plan (hoisted stages): reshapes and dense Split/Slice regions point
     into their root, as the code generator assumed when it left their nodes without launches */
  for (size_t i = 0; i < g->num_values && !g->mem_planned; i++) {
    const drt_value *v = g->values[i], *r;
    int64_t off;
    if (e->addr[v->id] || !drt_unplanned_alias(v, &r, &off)) continue;
    uint64_t es = drt_dtype_size(storage_dtype(e, v));
    if (!e->addr[r->id] || es != drt_dtype_size(storage_dtype(e, r)) ||
        ((uint64_t)off + (uint64_t)drt_shape_numel(&v->shape)) * es > storage_bytes(e, r))
      return DRT_ERROR(DRT_STATUS_INTERNAL, "'%s' cannot alias '%s' at element %" PRId64, v->name, r->name, off);
    e->addr[v->id] = e->addr[r->id] + (uint64_t)off * es;
  }
  for (size_t i = 0; i < no; i++) {
    const drt_value *v = g->outputs[i];
    e->out_bytes[i] = storage_bytes(e, v);
    e->out_dptr[i] = value_addr(e, v);
    if (!e->out_dptr[i] && e->out_bytes[i])
      return DRT_ERROR(DRT_STATUS_INTERNAL, "graph output '%s' has no device buffer", v->name);
    DRT_RETURN_IF_ERROR(pinned_alloc(e->out_bytes[i], &e->out_stage[i]));
  }
  e->scratch_bytes = code->scratch_bytes;
  if (e->scratch_bytes) DRT_RETURN_IF_ERROR(dev_alloc(e, e->scratch_bytes, "scratch", NULL, &e->scratch));
  if (program_graph_has(code, DRT_CUDA_LAUNCH_GEMM)) {
    e->workspace_bytes = LT_WORKSPACE_BYTES;
    DRT_RETURN_IF_ERROR(dev_alloc(e, e->workspace_bytes, "the cuBLASLt workspace", NULL, &e->workspace));
  }
  e->nonfinite_kernel = drt_cuda_program_find_kernel(e->m->prog, DRT_CUDA_KERNEL_NONFINITE);
  if (e->opt.check_nonfinite) {
    if (e->nonfinite_kernel < 0)
      return DRT_ERROR(DRT_STATUS_INTERNAL, "the CUDA program has no %s kernel", DRT_CUDA_KERNEL_NONFINITE);
    DRT_RETURN_IF_ERROR(dev_alloc(e, 4 * (no + 1), "non-finite counters", NULL, &e->counters));
    DRT_RETURN_IF_ERROR(pinned_alloc(4 * (no + 1), (void **)&e->counters_host));
  }
  return prepare(e);
}

drt_status drt_cuda_executor_create(drt_cuda_module *m, size_t graph_index, const drt_cuda_executor_options *o,
                                    drt_cuda_executor **out) {
  *out = NULL;
  if (graph_index >= m->prog->num_graphs)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "CUDA program graph %zu requested, the program has %zu", graph_index,
                     m->prog->num_graphs);
  DRT_RETURN_IF_ERROR(drt_cuda_ctx_enter(m->ctx));
  drt_cuda_executor *e = calloc(1, sizeof *e);
  if (!e) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "CUDA executor");
  e->m = m;
  e->ctx = m->ctx;
  e->code = &m->prog->graphs[graph_index];
  e->g = e->code->graph;
  if (o) e->opt = *o;
  else drt_cuda_executor_options_init(&e->opt);
  const char *env = getenv("DRT_CUDA_GRAPHS");
  if (env && strcmp(env, "0") == 0) e->opt.use_graphs = false;
  env = getenv("DRT_CUDA_CHECK_NODES");
  if (env && strcmp(env, "1") == 0) {
    e->check_nodes = true;
    e->opt.use_graphs = false; /* synchronizing inside a capture is not allowed */
  }
  e->act = drt_cuda_storage_dtype(m->prog->precision, DRT_DTYPE_FLOAT32);
  e->nonfinite_kernel = -1;
  e->pdl = want_pdl(m);
  drt_status st = create(e);
  if (st) {
    drt_cuda_executor_destroy(e);
    return st;
  }
  drt_log(DRT_LOG_INFO, "CUDA executor for graph %zu: %zu launches (%u nodes on the host), %zu GEMM algorithms, "
          "arena %.1f MiB, scratch %.1f MiB, CUDA graphs %s, programmatic dependent launch %s", graph_index,
          e->code->num_launches, e->code->num_host_nodes, e->lt.n, (double)e->g->mem_arena_bytes / 1048576.0,
          (double)e->scratch_bytes / 1048576.0, e->opt.use_graphs ? "on" : "off", e->pdl ? "on" : "off");
  *out = e;
  return DRT_OK;
}

void *drt_cuda_executor_stream(drt_cuda_executor *e) { return e->stream; }
bool drt_cuda_executor_pdl(const drt_cuda_executor *e) { return e->pdl; }
uint64_t drt_cuda_executor_input_dptr(const drt_cuda_executor *e, size_t i) {
  return i < e->g->num_inputs ? e->in_dptr[i] : 0;
}
uint64_t drt_cuda_executor_output_dptr(const drt_cuda_executor *e, size_t i) {
  return i < e->g->num_outputs ? e->out_dptr[i] : 0;
}

drt_status drt_cuda_executor_enqueue(drt_cuda_executor *e, void *stream) {
  DRT_RETURN_IF_ERROR(drt_cuda_ctx_enter(e->ctx));
  return enqueue_launches(e, stream ? (CUstream)stream : e->stream, false);
}

drt_status drt_cuda_executor_take_host_error(drt_cuda_executor *e) {
  drt_status st = e->host_error;
  e->host_error = NULL;
  return st;
}

/* Captures one evaluation into a CUDA graph; any failure turns graphs off for this executor
 * (the evaluation then runs launch by launch). */
static void capture(drt_cuda_executor *e) {
  const bool pdl = e->pdl; /* a failed launch inside the capture may have turned it off already */
  drt_status st = DRT_CU_CALL(cuStreamBeginCapture_v2, (e->stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
  if (!st) {
    drt_status est = enqueue_launches(e, e->stream, false);
    CUgraph g = NULL;
    st = DRT_CU_CALL(cuStreamEndCapture, (e->stream, &g));
    if (est) {
      drt_status_free(st);
      st = est;
    }
    CUgraphExec x = NULL;
    if (!st) st = DRT_CU_CALL(cuGraphInstantiateWithFlags, (&x, g, 0));
    if (!st) {
      e->graph = g;
      e->exec = x;
      return;
    }
    if (g) drt_cu.cuGraphDestroy(g);
  }
  if (pdl) { /* a driver that cannot capture programmatic dependencies: once more without them */
    drt_log(DRT_LOG_WARN, "CUDA graph capture with programmatic dependent launch failed, capturing without it: %s",
            drt_status_message(st));
    drt_status_free(st);
    e->pdl = false;
    capture(e);
    if (e->graphs_off) e->pdl = true; /* not the cause: launches by themselves keep it */
    return;
  }
  drt_log(DRT_LOG_WARN, "CUDA graph capture failed, running launch by launch: %s", drt_status_message(st));
  drt_status_free(st);
  e->graphs_off = true;
}

/* The first evaluation runs launch by launch (lazy module loading, first-call initialization of
 * cuBLASLt and clear error attribution happen outside any capture); the second is captured into a
 * CUDA graph, which every later one replays. */
static drt_status evaluate(drt_cuda_executor *e) {
  bool first = e->runs++ == 0;
  if (e->opt.use_graphs && !e->graphs_off && !first) {
    if (!e->exec) capture(e);
    if (e->exec) return DRT_CU_CALL(cuGraphLaunch, (e->exec, e->stream));
  }
  return enqueue_launches(e, e->stream, e->check_nodes);
}

static drt_status check_inputs(const drt_cuda_executor *e, const drt_tensor *inputs) {
  const drt_graph *g = e->g;
  char a[128], b[128];
  for (size_t i = 0; i < g->num_inputs; i++) {
    const drt_value *v = g->inputs[i];
    if (e->resident[i]) continue;
    if (inputs[i].dtype != v->dtype)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s' has dtype %s, the model expects %s", v->name,
                       drt_dtype_name(inputs[i].dtype), drt_dtype_name(v->dtype));
    if (!drt_shape_equal(&inputs[i].shape, &v->shape))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s' has shape %s, the model was prepared for %s",
                       v->name, drt_shape_str(&inputs[i].shape, a, sizeof a), drt_shape_str(&v->shape, b, sizeof b));
    if (!inputs[i].data && drt_shape_numel(&v->shape) > 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s' has no data", v->name);
  }
  return DRT_OK;
}

/* Stages the host inputs (all but the resident ones) and enqueues their uploads. */
static drt_status upload_inputs(drt_cuda_executor *e, const drt_tensor *inputs) {
  const drt_graph *g = e->g;
  drt_status st = DRT_OK;
  for (size_t i = 0; i < g->num_inputs && !st; i++) {
    const drt_value *v = g->inputs[i];
    if (!e->in_bytes[i] || e->resident[i]) continue;
    drt_dtype sdt = storage_dtype(e, v);
    if (sdt == v->dtype) memcpy(e->in_stage[i], inputs[i].data, (size_t)e->in_bytes[i]);
    else drt_convert(sdt, e->in_stage[i], v->dtype, inputs[i].data, (size_t)drt_shape_numel(&v->shape));
    st = DRT_CU_CALL(cuMemcpyHtoDAsync_v2, (e->in_dptr[i], e->in_stage[i], (size_t)e->in_bytes[i], e->stream));
  }
  return st;
}

void drt_cuda_executor_set_resident(drt_cuda_executor *e, size_t i, bool resident) {
  if (i < e->g->num_inputs) e->resident[i] = resident;
}

uint64_t drt_cuda_executor_input_bytes(const drt_cuda_executor *e, size_t i) {
  return i < e->g->num_inputs ? e->in_bytes[i] : 0;
}

uint64_t drt_cuda_executor_output_bytes(const drt_cuda_executor *e, size_t i) {
  return i < e->g->num_outputs ? e->out_bytes[i] : 0;
}

drt_status drt_cuda_executor_submit(drt_cuda_executor *e, const drt_tensor *inputs) {
  DRT_RETURN_IF_ERROR(check_inputs(e, inputs));
  DRT_RETURN_IF_ERROR(drt_cuda_ctx_enter(e->ctx));
  DRT_RETURN_IF_ERROR(upload_inputs(e, inputs));
  return evaluate(e);
}

drt_status drt_cuda_executor_replay(drt_cuda_executor *e) {
  DRT_RETURN_IF_ERROR(drt_cuda_ctx_enter(e->ctx));
  return evaluate(e);
}

drt_status drt_cuda_executor_run(drt_cuda_executor *e, const drt_tensor *inputs, drt_tensor *outputs) {
  const drt_graph *g = e->g;
  DRT_RETURN_IF_ERROR(check_inputs(e, inputs));
  DRT_RETURN_IF_ERROR(drt_cuda_ctx_enter(e->ctx));
  drt_status st = upload_inputs(e, inputs);
  if (!st) st = evaluate(e);
  if (!st && e->opt.check_nonfinite && g->num_outputs) {
    st = DRT_CU_CALL(cuMemsetD8Async, (e->counters, 0, 4 * g->num_outputs, e->stream));
    uint32_t block = e->m->prog->kernels[e->nonfinite_kernel].max_threads;
    if (!block) block = 256;
    for (size_t i = 0; i < g->num_outputs && !st; i++) {
      const drt_value *v = g->outputs[i];
      uint64_t n = (uint64_t)drt_shape_numel(&v->shape);
      if (storage_dtype(e, v) != e->act || !n) continue;
      /* a grid-stride kernel: a few waves of blocks are plenty */
      uint64_t blocks = (n + block - 1) / block, cap = (uint64_t)(e->ctx->info.sm_count > 0 ? e->ctx->info.sm_count : 1) * 8;
      uint32_t grid = (uint32_t)(blocks < cap ? blocks : cap);
      uint64_t args[3] = {e->out_dptr[i], n, e->counters + 4 * i};
      st = drt_cuda_module_launch(e->m, e->stream, DRT_CUDA_KERNEL_NONFINITE, grid, block, args, 3);
    }
    if (!st)
      st = DRT_CU_CALL(cuMemcpyDtoHAsync_v2, (e->counters_host, e->counters, 4 * g->num_outputs, e->stream));
  }
  for (size_t i = 0; i < g->num_outputs && !st; i++)
    if (e->out_bytes[i])
      st = DRT_CU_CALL(cuMemcpyDtoHAsync_v2, (e->out_stage[i], e->out_dptr[i], (size_t)e->out_bytes[i], e->stream));
  drt_status sync = DRT_CU_CALL(cuStreamSynchronize, (e->stream));
  if (!st) st = sync;
  else drt_status_free(sync);
  if (e->host_error) {
    drt_status_free(st);
    st = e->host_error;
    e->host_error = NULL;
  }
  if (st) return st;
  if (e->opt.check_nonfinite)
    for (size_t i = 0; i < g->num_outputs; i++)
      if (e->counters_host[i])
        return DRT_ERROR(DRT_STATUS_INTERNAL, "graph output '%s' has %u non-finite values (NaN or Inf) on the GPU",
                         g->outputs[i]->name, e->counters_host[i]);
  for (size_t i = 0; i < g->num_outputs; i++) {
    const drt_value *v = g->outputs[i];
    outputs[i].dtype = v->dtype;
    outputs[i].shape = v->shape;
    outputs[i].data = NULL;
  }
  for (size_t i = 0; i < g->num_outputs; i++) {
    const drt_value *v = g->outputs[i];
    size_t nb = drt_tensor_nbytes(&outputs[i]);
    void *p = malloc(nb ? nb : 1);
    if (!p) {
      for (size_t k = 0; k < i; k++) {
        free(outputs[k].data);
        outputs[k].data = NULL;
      }
      return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "output '%s'", v->name);
    }
    drt_dtype sdt = storage_dtype(e, v);
    if (sdt == v->dtype) {
      if (nb) memcpy(p, e->out_stage[i], nb);
    } else {
      drt_convert(v->dtype, p, sdt, e->out_stage[i], (size_t)drt_shape_numel(&v->shape));
    }
    outputs[i].data = p;
  }
  return DRT_OK;
}

#endif /* DRT_CUDA_ENABLED */
