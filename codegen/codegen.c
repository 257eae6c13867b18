/* The CUDA program builder (codegen/codegen.h, codegen/cg.h).
 *
 * drt_cuda_program_build walks every node of every graph in order and hands it to the emitter
 * registered for its op (five family tables in codegen/emit_<family>.c, merged into one
 * op-indexed lookup per build). An emitter appends launches through the drt_cg_* builder:
 * kernels it renders from a printf-style wrapper text (deduplicated across nodes and graphs by
 * the FNV-1a 64 hash of the text, named drt_k<16 hex>), cuBLASLt GEMMs and copies. When an
 * emitter declines (DRT_STATUS_UNSUPPORTED) or no emitter exists, the builder drops whatever the
 * node appended and gives it one HOST launch carrying the reason (or fails, naming the node,
 * when allow_host_fallback is off).
 *
 * Program source = the kernel library (codegen/kernels/<family>.cuh in LIBRARY order, each behind a
 * banner) + the fixed runtime kernels (runtime.cuh templates instantiated for the precision's
 * activation type, under their fixed names) + the generated wrappers in first-seen order.
 * Everything is a pure function of (graphs, precision), so two builds give byte-identical
 * source. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cg.h"
#include "ir/infer_movement.h"

#define SCRATCH_ALIGN 256u
#define NAME_TOKEN "@NAME@"

/* ---- small helpers ---------------------------------------------------------------------------- */

uint64_t drt_fnv1a64(const void *data, size_t n, uint64_t seed) {
  uint64_t h = seed ? seed : 0xcbf29ce484222325ull;
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

static const char *const k_precision_names[] = {"fp32", "tf32", "fp16", "bf16"};

const char *drt_cuda_precision_name(drt_cuda_precision p) {
  return (unsigned)p < 4 ? k_precision_names[p] : "unknown";
}

bool drt_cuda_precision_parse(const char *s, drt_cuda_precision *out) {
  static const struct {
    const char *name;
    drt_cuda_precision p;
  } k_names[] = {
      {"fp32", DRT_CUDA_PRECISION_FP32},    {"float32", DRT_CUDA_PRECISION_FP32},
      {"tf32", DRT_CUDA_PRECISION_TF32},    {"fp16", DRT_CUDA_PRECISION_FP16},
      {"float16", DRT_CUDA_PRECISION_FP16}, {"half", DRT_CUDA_PRECISION_FP16},
      {"bf16", DRT_CUDA_PRECISION_BF16},    {"bfloat16", DRT_CUDA_PRECISION_BF16},
  };
  if (!s) return false;
  for (size_t i = 0; i < sizeof k_names / sizeof k_names[0]; i++)
    if (strcmp(s, k_names[i].name) == 0) {
      if (out) *out = k_names[i].p;
      return true;
    }
  return false;
}

drt_dtype drt_cuda_storage_dtype(drt_cuda_precision p, drt_dtype dt) {
  if (dt != DRT_DTYPE_FLOAT32) return dt;
  switch (p) {
    case DRT_CUDA_PRECISION_FP16: return DRT_DTYPE_FLOAT16;
    case DRT_CUDA_PRECISION_BF16: return DRT_DTYPE_BFLOAT16;
    default: return DRT_DTYPE_FLOAT32;
  }
}

static int cmp_value_ptr(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)*(const drt_value *const *)a, y = (uintptr_t)*(const drt_value *const *)b;
  return x < y ? -1 : x > y;
}

drt_dtype drt_cuda_value_storage(drt_cuda_precision p, const drt_cuda_graph_code *c, const drt_value *v) {
  /* f32_sorted holds f32_values ordered by address (choose_f32_storage) */
  if (c && v && v->dtype == DRT_DTYPE_FLOAT32 && c->num_f32_values &&
      bsearch(&v, c->f32_sorted, c->num_f32_values, sizeof *c->f32_sorted, cmp_value_ptr))
    return DRT_DTYPE_FLOAT32;
  return drt_cuda_storage_dtype(p, v ? v->dtype : DRT_DTYPE_UNDEFINED);
}

void drt_cuda_codegen_options_init(drt_cuda_codegen_options *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->precision = DRT_CUDA_PRECISION_FP32;
  o->allow_host_fallback = true;
}

uint32_t drt_cg_blocks(int64_t n, int64_t per_block, uint32_t max_blocks) {
  if (per_block < 1) per_block = 1;
  if (max_blocks == 0) max_blocks = 0x7fffffffu;
  if (n <= 0) return 1;
  int64_t b = n / per_block + (n % per_block != 0);
  if (b > (int64_t)max_blocks) b = max_blocks;
  return b < 1 ? 1 : (uint32_t)b;
}

drt_cuda_arg drt_cg_arg_f32(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  drt_cuda_arg a = {DRT_CUDA_ARG_IMM, NULL, 0, (uint64_t)u};
  return a;
}

drt_cuda_arg drt_cg_arg_f64(double x) {
  uint64_t u;
  memcpy(&u, &x, 8);
  drt_cuda_arg a = {DRT_CUDA_ARG_IMM, NULL, 0, u};
  return a;
}

/* ---- growable text buffer --------------------------------------------------------------------- */
typedef struct text {
  char *p;
  size_t len, cap;
  bool oom;
} text;

static bool text_reserve(text *t, size_t extra) {
  if (t->oom) return false;
  if (t->len + extra + 1 <= t->cap) return true;
  size_t cap = t->cap ? t->cap : 4096;
  while (cap < t->len + extra + 1) cap *= 2;
  char *p = realloc(t->p, cap);
  if (!p) {
    t->oom = true;
    return false;
  }
  t->p = p;
  t->cap = cap;
  return true;
}

static void text_append(text *t, const char *s, size_t n) {
  if (!text_reserve(t, n)) return;
  memcpy(t->p + t->len, s, n);
  t->len += n;
  t->p[t->len] = 0;
}

static void text_puts(text *t, const char *s) { text_append(t, s, strlen(s)); }

/* ---- the builder ------------------------------------------------------------------------------ */
typedef struct kernel_rec {
  drt_cuda_kernel k;
  char *body;        /* wrapper text with @NAME@ unreplaced (for collision checks) */
  size_t wrap_begin; /* range inside cg->wrappers (final name substituted) */
  size_t wrap_end;
  bool fixed;        /* a runtime kernel (fixed name, lives in the runtime section) */
} kernel_rec;

struct drt_cg {
  drt_cuda_codegen_options opts;
  drt_cg_emit_fn by_op[DRT_OP_COUNT_];
  /* kernels */
  kernel_rec *kernels;
  size_t num_kernels, cap_kernels;
  text runtime;  /* fixed runtime kernel wrappers */
  text wrappers; /* generated wrappers */
  /* current graph / node */
  const drt_graph *graph;
  const drt_cuda_graph_code *code; /* its f32_values */
  const drt_node *node;
  drt_cuda_launch *launches;
  size_t num_launches, cap_launches;
  uint64_t node_scratch, scratch_max;
  uint8_t variant; /* stamped on new launches (drt_cg_variant) */
  drt_status err; /* deferred error of a builder call that cannot return one */
};

drt_cuda_precision drt_cg_precision(const drt_cg *cg) { return cg->opts.precision; }

const char *drt_cg_ctype(const drt_cg *cg, drt_dtype dt) {
  (void)cg;
  switch (dt) {
    case DRT_DTYPE_FLOAT32: return "float";
    case DRT_DTYPE_FLOAT16: return "__half";
    case DRT_DTYPE_BFLOAT16: return "__nv_bfloat16";
    case DRT_DTYPE_FLOAT64: return "double";
    case DRT_DTYPE_INT8: return "signed char";
    case DRT_DTYPE_INT16: return "short";
    case DRT_DTYPE_INT32: return "int";
    case DRT_DTYPE_INT64: return "long long";
    case DRT_DTYPE_UINT8: return "unsigned char";
    case DRT_DTYPE_UINT16: return "unsigned short";
    case DRT_DTYPE_UINT32: return "unsigned";
    case DRT_DTYPE_UINT64: return "unsigned long long";
    case DRT_DTYPE_BOOL: return "unsigned char";
    default: return "drt_unsupported_dtype";
  }
}

drt_dtype drt_cg_storage(const drt_cg *cg, const drt_value *v) {
  return drt_cuda_value_storage(cg->opts.precision, cg->code, v);
}

const char *drt_cg_act(const drt_cg *cg) {
  return drt_cg_ctype(cg, drt_cuda_storage_dtype(cg->opts.precision, DRT_DTYPE_FLOAT32));
}

static void cg_set_err(drt_cg *cg, drt_status s) {
  if (!cg->err)
    cg->err = s;
  else
    drt_status_free(s);
}

/* Appends the wrapper `body` with every @NAME@ replaced by `name` to t. */
static void append_named(text *t, const char *body, const char *name) {
  const char *p = body;
  for (;;) {
    const char *q = strstr(p, NAME_TOKEN);
    if (!q) break;
    text_append(t, p, (size_t)(q - p));
    text_puts(t, name);
    p = q + strlen(NAME_TOKEN);
  }
  text_puts(t, p);
  text_puts(t, "\n");
}

static int count_tokens(const char *s) {
  int c = 0;
  for (const char *q = strstr(s, NAME_TOKEN); q; q = strstr(q + 1, NAME_TOKEN)) c++;
  return c;
}

/* Puts DRT_PDL_ENTRY() (kernels/prelude.cuh) first in the body of the kernel `body` defines: the
 * opening brace after "@NAME@(" (the token also names the kernel's constant tables). Takes
 * `body`, returns the new text (NULL: out of memory). */
#define PDL_ENTRY " DRT_PDL_ENTRY();"
static char *with_pdl_entry(char *body) {
  const char *name = strstr(body, NAME_TOKEN "(");
  const char *brace = name ? strchr(name, '{') : NULL;
  if (!brace) return body;
  size_t at = (size_t)(brace - body) + 1, len = strlen(body), add = strlen(PDL_ENTRY);
  char *out = malloc(len + add + 1);
  if (!out) {
    free(body);
    return NULL;
  }
  memcpy(out, body, at);
  memcpy(out + at, PDL_ENTRY, add);
  memcpy(out + at + add, body + at, len - at + 1);
  free(body);
  return out;
}

/* Registers a kernel whose text is `body` (owned by the callee from here on). */
static drt_status add_kernel(drt_cg *cg, char *body, uint32_t max_threads, const char *fixed_name, int32_t *out) {
  body = with_pdl_entry(body);
  if (!body) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "kernel text");
  size_t blen = strlen(body);
  uint64_t h = drt_fnv1a64(body, blen, 0);
  for (;;) {
    bool collision = false;
    for (size_t i = 0; i < cg->num_kernels; i++) {
      kernel_rec *r = &cg->kernels[i];
      if (r->k.hash != h || r->fixed != (fixed_name != NULL)) continue;
      if (strcmp(r->body, body) == 0 && (!fixed_name || strcmp(r->k.name, fixed_name) == 0)) {
        if (max_threads > r->k.max_threads) r->k.max_threads = max_threads;
        free(body);
        *out = (int32_t)i;
        return DRT_OK;
      }
      collision = true;
    }
    if (!collision || fixed_name) break;
    h = drt_fnv1a64(body, blen, h); /* a true 64-bit collision: derive another name */
  }
  if (cg->num_kernels == cg->cap_kernels) {
    size_t cap = cg->cap_kernels ? 2 * cg->cap_kernels : 64;
    kernel_rec *k = realloc(cg->kernels, cap * sizeof *k);
    if (!k) {
      free(body);
      return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "growing the kernel list to %zu", cap);
    }
    cg->kernels = k;
    cg->cap_kernels = cap;
  }
  kernel_rec *r = &cg->kernels[cg->num_kernels];
  memset(r, 0, sizeof *r);
  if (fixed_name)
    snprintf(r->k.name, sizeof r->k.name, "%s", fixed_name);
  else
    snprintf(r->k.name, sizeof r->k.name, "drt_k%016" PRIx64, h);
  r->k.hash = h;
  r->k.max_threads = max_threads;
  r->body = body;
  r->fixed = fixed_name != NULL;
  text *t = fixed_name ? &cg->runtime : &cg->wrappers;
  r->wrap_begin = t->len;
  append_named(t, body, r->k.name);
  r->wrap_end = t->len;
  if (t->oom) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "kernel source of %zu bytes", t->len);
  *out = (int32_t)cg->num_kernels++;
  return DRT_OK;
}

drt_status drt_cg_kernel(drt_cg *cg, uint32_t max_threads, int32_t *kernel, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) {
    va_end(ap2);
    return DRT_ERROR(DRT_STATUS_INTERNAL, "kernel wrapper format failed");
  }
  char *body = malloc((size_t)n + 1);
  if (!body) {
    va_end(ap2);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "kernel wrapper of %d bytes", n);
  }
  vsnprintf(body, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  if (count_tokens(body) < 1) {
    free(body);
    return DRT_ERROR(DRT_STATUS_INTERNAL, "kernel wrapper must contain %s", NAME_TOKEN);
  }
  if (max_threads < 1 || max_threads > 1024) {
    free(body);
    return DRT_ERROR(DRT_STATUS_INTERNAL, "kernel block size %u outside [1, 1024]", max_threads);
  }
  return add_kernel(cg, body, max_threads, NULL, kernel);
}

static drt_cuda_launch *new_launch(drt_cg *cg, uint8_t kind) {
  if (cg->num_launches == cg->cap_launches) {
    size_t cap = cg->cap_launches ? 2 * cg->cap_launches : 64;
    drt_cuda_launch *l = realloc(cg->launches, cap * sizeof *l);
    if (!l) return NULL;
    cg->launches = l;
    cg->cap_launches = cap;
  }
  drt_cuda_launch *l = &cg->launches[cg->num_launches++];
  memset(l, 0, sizeof *l);
  l->kind = kind;
  l->variant = cg->variant;
  l->kernel = -1;
  l->node = cg->node ? cg->node->id : 0;
  return l;
}

void drt_cg_variant(drt_cg *cg, uint8_t variant) { cg->variant = variant; }

static drt_status check_arg(const drt_cg *cg, const drt_cuda_arg *a, const char *what) {
  switch (a->kind) {
    case DRT_CUDA_ARG_NONE:
    case DRT_CUDA_ARG_IMM: return DRT_OK;
    case DRT_CUDA_ARG_VALUE:
      if (!a->value) return DRT_ERROR(DRT_STATUS_INTERNAL, "%s: VALUE argument without a value", what);
      return DRT_OK;
    case DRT_CUDA_ARG_SCRATCH:
      if (a->offset >= cg->node_scratch && !(a->offset == 0 && cg->node_scratch == 0))
        return DRT_ERROR(DRT_STATUS_INTERNAL, "%s: scratch offset %" PRIu64 " beyond the node's %" PRIu64 " bytes",
                         what, a->offset, cg->node_scratch);
      return DRT_OK;
    default: return DRT_ERROR(DRT_STATUS_INTERNAL, "%s: argument kind %u", what, (unsigned)a->kind);
  }
}

drt_status drt_cg_launch(drt_cg *cg, int32_t kernel, const uint32_t grid[3], const uint32_t block[3], uint32_t smem,
                         const drt_cuda_arg *args, int num_args) {
  if (kernel < 0 || (size_t)kernel >= cg->num_kernels)
    return DRT_ERROR(DRT_STATUS_INTERNAL, "launch of unknown kernel %d", (int)kernel);
  if (num_args < 0 || num_args > DRT_CUDA_MAX_ARGS)
    return DRT_ERROR(DRT_STATUS_INTERNAL, "%d kernel arguments (at most %d)", num_args, DRT_CUDA_MAX_ARGS);
  if (grid[0] < 1 || grid[1] < 1 || grid[2] < 1 || grid[0] > 0x7fffffffu || grid[1] > 65535 || grid[2] > 65535)
    return DRT_ERROR(DRT_STATUS_INTERNAL, "grid %ux%ux%u out of range", grid[0], grid[1], grid[2]);
  uint64_t threads = (uint64_t)block[0] * block[1] * block[2];
  if (block[0] < 1 || block[1] < 1 || block[2] < 1 || threads > cg->kernels[kernel].k.max_threads)
    return DRT_ERROR(DRT_STATUS_INTERNAL, "block %ux%ux%u exceeds the kernel's %u threads", block[0], block[1],
                     block[2], cg->kernels[kernel].k.max_threads);
  for (int i = 0; i < num_args; i++) {
    char what[32];
    snprintf(what, sizeof what, "kernel argument %d", i);
    DRT_RETURN_IF_ERROR(check_arg(cg, &args[i], what));
  }
  drt_cuda_launch *l = new_launch(cg, DRT_CUDA_LAUNCH_KERNEL);
  if (!l) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "growing the launch list");
  l->kernel = kernel;
  memcpy(l->grid, grid, sizeof l->grid);
  memcpy(l->block, block, sizeof l->block);
  l->smem = smem;
  l->num_args = num_args;
  if (num_args) memcpy(l->args, args, (size_t)num_args * sizeof *args);
  return DRT_OK;
}

drt_status drt_cg_gemm(drt_cg *cg, const drt_cuda_gemm *gemm) {
  if (gemm->m < 1 || gemm->n < 1 || gemm->k < 1 || gemm->batch < 1)
    return DRT_ERROR(DRT_STATUS_INTERNAL, "GEMM m=%" PRId64 " n=%" PRId64 " k=%" PRId64 " batch=%" PRId64, gemm->m,
                     gemm->n, gemm->k, gemm->batch);
  DRT_RETURN_IF_ERROR(check_arg(cg, &gemm->a, "GEMM A"));
  DRT_RETURN_IF_ERROR(check_arg(cg, &gemm->b, "GEMM B"));
  DRT_RETURN_IF_ERROR(check_arg(cg, &gemm->c, "GEMM C"));
  DRT_RETURN_IF_ERROR(check_arg(cg, &gemm->d, "GEMM D"));
  DRT_RETURN_IF_ERROR(check_arg(cg, &gemm->bias, "GEMM bias"));
  drt_cuda_launch *l = new_launch(cg, DRT_CUDA_LAUNCH_GEMM);
  if (!l) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "growing the launch list");
  l->gemm = *gemm;
  /* TF32 only where tensor cores pay: with a dimension of at most DRT_CG_TF32_MIN_DIM the GEMM
     does at most 8 FLOPs per float32 byte it must move, so it is bandwidth-bound even on the
     FP32 cores (H100: 67 TFLOP/s FP32 vs 3.35 TB/s x 8 = 27 TFLOP/s) and TF32 rounding would buy
     nothing. These are the per-sample projections (time embedding MLP, adaLN / ResBlock time
     projections: m = batch) whose rounding reaches every block through the modulation. */
  if (l->gemm.tf32 && (gemm->m <= DRT_CG_TF32_MIN_DIM || gemm->n <= DRT_CG_TF32_MIN_DIM || gemm->k <= DRT_CG_TF32_MIN_DIM))
    l->gemm.tf32 = false;
  return DRT_OK;
}

drt_status drt_cg_copy(drt_cg *cg, drt_cuda_arg dst, drt_cuda_arg src, uint64_t bytes) {
  DRT_RETURN_IF_ERROR(check_arg(cg, &dst, "copy destination"));
  DRT_RETURN_IF_ERROR(check_arg(cg, &src, "copy source"));
  if (dst.kind == DRT_CUDA_ARG_NONE || dst.kind == DRT_CUDA_ARG_IMM || src.kind == DRT_CUDA_ARG_NONE ||
      src.kind == DRT_CUDA_ARG_IMM)
    return DRT_ERROR(DRT_STATUS_INTERNAL, "copy operands must be buffers");
  drt_cuda_launch *l = new_launch(cg, DRT_CUDA_LAUNCH_COPY);
  if (!l) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "growing the launch list");
  l->dst = dst;
  l->src = src;
  l->bytes = bytes;
  return DRT_OK;
}

drt_cuda_arg drt_cg_scratch(drt_cg *cg, uint64_t bytes) {
  uint64_t off = (cg->node_scratch + SCRATCH_ALIGN - 1) / SCRATCH_ALIGN * SCRATCH_ALIGN;
  uint64_t size = bytes ? bytes : 1;
  if (off + size < off) {
    cg_set_err(cg, DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "scratch request of %" PRIu64 " bytes", bytes));
    size = 0;
  }
  cg->node_scratch = off + size;
  if (cg->node_scratch > cg->scratch_max) cg->scratch_max = cg->node_scratch;
  drt_cuda_arg a = {DRT_CUDA_ARG_SCRATCH, NULL, off, 0};
  return a;
}

/* ---- fixed runtime kernels (codegen/kernels/runtime.cuh) --------------------------------------- */
typedef struct fixed_kernel {
  const char *name;
  const char *impl; /* template in runtime.cuh, instantiated with the act type */
  uint32_t threads;
} fixed_kernel;

static const fixed_kernel k_fixed[] = {
    {DRT_CUDA_KERNEL_F32_TO_ACT, "drt_rt_f32_to_act", 256},
    {DRT_CUDA_KERNEL_ACT_TO_F32, "drt_rt_act_to_f32", 256},
    {DRT_CUDA_KERNEL_PHILOX, "drt_rt_philox_normal", 256},
    {DRT_CUDA_KERNEL_SAMPLER, "drt_rt_sampler_step", 256},
    {DRT_CUDA_KERNEL_FILL, "drt_rt_fill_scalar", 256},
    {DRT_CUDA_KERNEL_NONFINITE, "drt_rt_count_nonfinite", 256},
};

static drt_status add_fixed_kernels(drt_cg *cg) {
  for (size_t i = 0; i < sizeof k_fixed / sizeof k_fixed[0]; i++) {
    const fixed_kernel *f = &k_fixed[i];
    char buf[512];
    int n = snprintf(buf, sizeof buf,
                     "extern \"C\" __global__ void __launch_bounds__(%u) @NAME@(drt_kargs a) { %s<%s, %u>(a); }",
                     f->threads, f->impl, drt_cg_act(cg), f->threads);
    if (n < 0 || (size_t)n >= sizeof buf) return DRT_ERROR(DRT_STATUS_INTERNAL, "runtime kernel wrapper too long");
    char *body = malloc((size_t)n + 1);
    if (!body) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "runtime kernel wrapper");
    memcpy(body, buf, (size_t)n + 1);
    int32_t idx;
    DRT_RETURN_IF_ERROR(add_kernel(cg, body, f->threads, f->name, &idx));
  }
  return DRT_OK;
}

/* ---- node dispatch ---------------------------------------------------------------------------- */
static void build_op_table(drt_cg *cg) {
  const drt_cg_emitter *const tables[] = {drt_cg_emitters_elementwise, drt_cg_emitters_movement,
                                          drt_cg_emitters_linalg, drt_cg_emitters_norm, drt_cg_emitters_attention};
  for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
    for (const drt_cg_emitter *e = tables[t]; e->op != DRT_OP_COUNT_; e++)
      if ((unsigned)e->op < DRT_OP_COUNT_ && !cg->by_op[e->op]) cg->by_op[e->op] = e->fn;
}

static bool node_has_work(const drt_graph *g, const drt_node *n) {
  if (n->dead || drt_node_is_view_only(n)) return false; /* views share input 0's storage */
  if (!g->mem_planned && drt_node_is_unplanned_alias(n)) return false; /* aliases, as the executor places them */
  bool any = false;
  for (int i = 0; i < n->num_outputs; i++) {
    const drt_value *v = n->outputs[i];
    if (!v || v->kind == DRT_VALUE_CONST) continue;
    if (!v->has_shape || drt_shape_numel(&v->shape) != 0) any = true;
  }
  return any;
}

static drt_status emit_node(drt_cg *cg, uint32_t index, const drt_node *n) {
  cg->node = n;
  cg->node_scratch = 0;
  size_t first = cg->num_launches, first_kernel = cg->num_kernels, wrappers_len = cg->wrappers.len;
  uint64_t scratch_max = cg->scratch_max;
  (void)index;
  if (!node_has_work(cg->graph, n)) return DRT_OK;
  drt_cg_emit_fn fn = (unsigned)n->op < DRT_OP_COUNT_ ? cg->by_op[n->op] : NULL;
  drt_status st;
  const drt_value *lowp = NULL; /* float8/int4/...: no kernel reads them yet, the host runs the node */
  bool takes_lowp = n->op == DRT_OP_QUANTIZE_LINEAR || n->op == DRT_OP_DEQUANTIZE_LINEAR; /* checks its own */
  for (int i = 0; i < n->num_inputs && !lowp && !takes_lowp; i++)
    if (n->inputs[i] && drt_dtype_is_lowp(n->inputs[i]->dtype)) lowp = n->inputs[i];
  for (int i = 0; i < n->num_outputs && !lowp && !takes_lowp; i++)
    if (n->outputs[i] && drt_dtype_is_lowp(n->outputs[i]->dtype)) lowp = n->outputs[i];
  if (lowp) {
    st = DRT_ERROR(DRT_STATUS_UNSUPPORTED, "'%s' has dtype %s, which no CUDA kernel takes yet", lowp->name,
                   drt_dtype_name(lowp->dtype));
  } else if (fn) {
    cg->variant = 0;
    st = fn(cg, n);
    cg->variant = 0;
    if (!st && cg->err) {
      st = cg->err;
      cg->err = DRT_OK;
    }
  } else {
    st = DRT_ERROR(DRT_STATUS_UNSUPPORTED, "no CUDA emitter for op %s", drt_op_name(n->op));
  }
  char desc[256];
  if (!st) return DRT_OK;
  /* roll back whatever the node appended: launches, scratch, and the kernels it added (new
     kernels come last and nothing else refers to them yet) */
  cg->num_launches = first;
  while (cg->num_kernels > first_kernel) free(cg->kernels[--cg->num_kernels].body);
  cg->wrappers.len = wrappers_len;
  if (cg->wrappers.p) cg->wrappers.p[wrappers_len] = 0;
  drt_status_free(cg->err);
  cg->err = DRT_OK;
  cg->node_scratch = 0;
  cg->scratch_max = scratch_max;
  drt_status_code code = drt_status_code_of(st);
  if (code != DRT_STATUS_UNSUPPORTED || !cg->opts.allow_host_fallback) {
    drt_status e = code == DRT_STATUS_UNSUPPORTED
                       ? DRT_ERROR(code, "%s: no CUDA kernel (host fallback disabled): %s",
                                   drt_node_describe(n, desc, sizeof desc), drt_status_message(st))
                       : DRT_ERROR(code, "%s: CUDA codegen: %s", drt_node_describe(n, desc, sizeof desc),
                                   drt_status_message(st));
    drt_status_free(st);
    return e;
  }
  drt_cuda_launch *l = new_launch(cg, DRT_CUDA_LAUNCH_HOST);
  if (!l) {
    drt_status_free(st);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "growing the launch list");
  }
  snprintf(l->reason, sizeof l->reason, "%s", drt_status_message(st));
  drt_status_free(st);
  return DRT_OK;
}

static drt_status build_graph(drt_cg *cg, const drt_graph *g, drt_cuda_graph_code *code) {
  cg->graph = g;
  cg->code = code;
  cg->launches = NULL;
  cg->num_launches = cg->cap_launches = 0;
  cg->scratch_max = 0;
  code->graph = g;
  code->node_first = calloc(g->num_nodes + 1, sizeof *code->node_first);
  if (!code->node_first) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "node index of %zu nodes", g->num_nodes);
  drt_status st = DRT_OK;
  for (size_t i = 0; i < g->num_nodes && !st; i++) {
    code->node_first[i] = (uint32_t)cg->num_launches;
    st = emit_node(cg, (uint32_t)i, g->nodes[i]);
    /* launches record the node's index in graph->nodes */
    for (size_t j = code->node_first[i]; j < cg->num_launches; j++) cg->launches[j].node = (uint32_t)i;
  }
  code->node_first[g->num_nodes] = (uint32_t)cg->num_launches;
  code->launches = cg->launches;
  code->num_launches = cg->num_launches;
  code->scratch_bytes = (cg->scratch_max + SCRATCH_ALIGN - 1) / SCRATCH_ALIGN * SCRATCH_ALIGN;
  for (size_t j = 0; j < code->num_launches; j++)
    if (code->launches[j].kind == DRT_CUDA_LAUNCH_HOST) code->num_host_nodes++;
  cg->launches = NULL;
  cg->num_launches = cg->cap_launches = 0;
  cg->node = NULL;
  cg->code = NULL;
  return st;
}

/* ---- float32 storage of small graph inputs (fp16/bf16) -----------------------------------------
 * A timestep, sigma or guidance scale fed as a float32 graph input would be rounded to the
 * 16-bit storage type on upload: t = 999 becomes 1000 in bf16, and sin(t * freq) of the timestep
 * embedding is then off by radians at the high frequencies. Such inputs keep float32 storage when
 * they are per-sample scalars (shape [B] or [B, 1, ...], B <= DRT_CUDA_F32_INPUT_MAX) and every
 * reader is an elementwise kernel (those load each operand in its own storage type and compute
 * in float) or a reshape whose output is kept the same way. Decided by name over all graphs of the program (main, stages,
 * buckets): the runtime copies an input between graphs' buffers byte for byte, so every graph
 * with that input must keep it, and no graph may produce it as an output. */
typedef struct value_list {
  const drt_value **v;
  size_t n, cap;
} value_list;

static bool list_push(value_list *l, const drt_value *v) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 8;
    const drt_value **nv = realloc(l->v, cap * sizeof *nv);
    if (!nv) return false;
    l->v = nv;
    l->cap = cap;
  }
  l->v[l->n++] = v;
  return true;
}

static bool reads_per_operand(drt_op op) {
  switch (op) {
    case DRT_OP_FUSED_ELEMENTWISE:
    case DRT_OP_CAST:
    case DRT_OP_ADD:
    case DRT_OP_SUB:
    case DRT_OP_MUL:
    case DRT_OP_DIV:
    case DRT_OP_NEG:
    case DRT_OP_ABS:
    case DRT_OP_SQRT:
    case DRT_OP_RECIPROCAL:
    case DRT_OP_EXP:
    case DRT_OP_LOG:
    case DRT_OP_SIN:
    case DRT_OP_COS:
      return true;
    default:
      return false;
  }
}

static bool is_reshape(drt_op op) {
  return op == DRT_OP_RESHAPE || op == DRT_OP_FLATTEN || op == DRT_OP_SQUEEZE || op == DRT_OP_UNSQUEEZE ||
         op == DRT_OP_IDENTITY;
}

static bool is_output_of(const drt_graph *g, const drt_value *v) {
  if (v->is_graph_output) return true;
  for (size_t i = 0; i < g->num_outputs; i++)
    if (g->outputs[i] == v) return true;
  return false;
}

/* Appends v and the reshapes of it to l. 1: every reader qualifies; 0: not; -1: out of memory. */
static int f32_closure(const drt_graph *g, const drt_value *v, value_list *l, int depth) {
  if (depth > 8 || v->dtype != DRT_DTYPE_FLOAT32 || is_output_of(g, v)) return 0;
  if (!list_push(l, v)) return -1;
  for (size_t i = 0; i < g->num_nodes; i++) {
    const drt_node *n = g->nodes[i];
    if (n->dead) continue;
    for (int j = 0; j < n->num_inputs; j++) {
      if (n->inputs[j] != v) continue;
      if (reads_per_operand(n->op)) continue;
      if (!is_reshape(n->op) || j != 0 || n->num_outputs < 1 || !n->outputs[0]) return 0;
      int r = f32_closure(g, n->outputs[0], l, depth + 1);
      if (r <= 0) return r;
    }
  }
  return 1;
}

/* a per-sample scalar: shape [], [B], [B, 1], [B, 1, 1, 1], ... with B <= DRT_CUDA_F32_INPUT_MAX */
static bool f32_candidate(const drt_value *v) {
  if (v->dtype != DRT_DTYPE_FLOAT32 || !v->has_shape) return false;
  for (int d = 1; d < v->shape.rank; d++)
    if (v->shape.dims[d] != 1) return false;
  int64_t numel = drt_shape_numel(&v->shape);
  return numel > 0 && numel <= DRT_CUDA_F32_INPUT_MAX;
}

/* 1: another graph g keeps input `name` too (or has no such input); 0: it cannot; -1: out of
   memory */
static int graph_keeps(const drt_graph *g, const char *name) {
  for (size_t i = 0; i < g->num_outputs; i++)
    if (g->outputs[i]->name && strcmp(g->outputs[i]->name, name) == 0) return 0;
  for (size_t i = 0; i < g->num_inputs; i++) {
    const drt_value *v = g->inputs[i];
    if (!v->name || strcmp(v->name, name) != 0) continue;
    if (!f32_candidate(v)) return 0;
    value_list l = {0};
    int r = f32_closure(g, v, &l, 0);
    free(l.v);
    return r;
  }
  return 1;
}

/* ---- float32 storage of accumulating activations (fp16/bf16) ------------------------------------
 * fp16/bf16 storage exists for the tensor cores: GEMM, convolution and attention operands. A value
 * that no such operand reads keeps float32 storage: the residual stream that a norm and the next
 * residual add read, a convolution output that only its GroupNorm reads. Each rounding to bf16
 * costs about 2^-9 relative, and a diffusion UNet's residual stream is rounded at every block.
 * Values that share bytes are decided together, as one class (union-find): the data inputs and
 * outputs of copies and views (Reshape, Transpose, Slice, Concat, Split, ...: they move elements
 * of one size), a view and its root, and an in-place output and the input at its offset (the
 * memory plan planned both in float32 bytes, but a kernel reading 2-byte and writing 4-byte
 * elements in place would overrun its own input). A class is float32 when every member is a
 * float32 intermediate of a static shape and no graph input or output (the runtime converts
 * those), every producer writes any storage type (drt.Elementwise, drt.Gemm, drt.Conv, drt.Norm,
 * MatMul, Conv, or a copy within the class) and every reader takes any storage type per operand
 * (elementwise kernels, the epilogue inputs of drt.Gemm/drt.Conv, drt.Norm's input, the input of
 * a convolution that goes through im2col, or a copy within the class). */
static bool moves_elements(drt_op op) {
  return is_reshape(op) || op == DRT_OP_TRANSPOSE || op == DRT_OP_SLICE || op == DRT_OP_CONCAT || op == DRT_OP_SPLIT;
}

/* the inputs of a copy that are element data (not shapes, starts, axes, split sizes) */
static bool moved_input(const drt_node *n, int j) { return j == 0 || n->op == DRT_OP_CONCAT; }

static bool writes_any_storage(drt_op op) {
  return op == DRT_OP_FUSED_ELEMENTWISE || op == DRT_OP_FUSED_GEMM || op == DRT_OP_FUSED_CONV ||
         op == DRT_OP_FUSED_NORM || op == DRT_OP_MATMUL || op == DRT_OP_CONV || op == DRT_OP_GRID_SAMPLE ||
         op == DRT_OP_AFFINE_GRID || op == DRT_OP_ROTARY_EMBEDDING || op == DRT_OP_DEQUANTIZE_LINEAR;
}

static bool reads_any_storage(const drt_node *n, int j) {
  if (reads_per_operand(n->op)) return true;
  switch (n->op) {
    case DRT_OP_FUSED_GEMM: return j >= 2; /* epilogue program inputs */
    case DRT_OP_FUSED_CONV: return j >= 3 || (j == 0 && drt_cg_conv_im2col(n));
    case DRT_OP_CONV: return j == 0 && drt_cg_conv_im2col(n);
    case DRT_OP_FUSED_NORM: return j == 0;
    /* their kernels load each operand through its own storage type (drt_ld) */
    case DRT_OP_GRID_SAMPLE: return true; /* a computed grid keeps float32 sample coordinates */
    case DRT_OP_ROTARY_EMBEDDING: return j < 3;
    case DRT_OP_QUANTIZE_LINEAR: return j < 2;
    case DRT_OP_DEQUANTIZE_LINEAR: return j == 1;
    default: return false;
  }
}

static uint32_t uf_find(uint32_t *parent, uint32_t x) {
  while (parent[x] != x) {
    parent[x] = parent[parent[x]];
    x = parent[x];
  }
  return x;
}

static void uf_join(uint32_t *parent, uint32_t a, uint32_t b) {
  a = uf_find(parent, a);
  b = uf_find(parent, b);
  if (a != b) parent[a < b ? b : a] = a < b ? a : b;
}

static drt_status choose_f32_activations(const drt_graph *g, value_list *keep) {
  size_t nid = g->next_id;
  for (size_t i = 0; i < g->num_values; i++)
    if (g->values[i]->id >= nid) nid = (size_t)g->values[i]->id + 1;
  uint32_t *parent = malloc((nid ? nid : 1) * sizeof *parent);
  uint8_t *ok = malloc(nid ? nid : 1);
  if (!parent || !ok) {
    free(parent);
    free(ok);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "float32 activation list");
  }
  for (size_t i = 0; i < nid; i++) parent[i] = (uint32_t)i, ok[i] = 1;
  /* classes */
  for (size_t i = 0; i < g->num_values; i++)
    if (g->values[i]->view_of) uf_join(parent, g->values[i]->id, g->values[i]->view_of->id);
  for (size_t i = 0; i < g->num_nodes; i++) {
    const drt_node *n = g->nodes[i];
    if (n->dead) continue;
    for (int o = 0; o < n->num_outputs; o++) {
      const drt_value *y = n->outputs[o];
      if (!y) continue;
      for (int j = 0; j < n->num_inputs; j++) {
        const drt_value *x = n->inputs[j];
        if (!x) continue;
        bool moved = moves_elements(n->op) && moved_input(n, j);
        bool in_place = x->kind == DRT_VALUE_INTERMEDIATE && y->mem_offset >= 0 && x->mem_offset == y->mem_offset;
        if (moved || in_place) uf_join(parent, x->id, y->id);
      }
    }
  }
  /* what keeps a class in the 16-bit type */
  for (size_t i = 0; i < g->num_values; i++) {
    const drt_value *v = g->values[i];
    if (v->kind != DRT_VALUE_INTERMEDIATE || v->dtype != DRT_DTYPE_FLOAT32 || !v->has_shape || is_output_of(g, v) ||
        !v->producer || !(writes_any_storage(v->producer->op) || moves_elements(v->producer->op)))
      ok[uf_find(parent, v->id)] = 0;
  }
  for (size_t i = 0; i < g->num_nodes; i++) {
    const drt_node *n = g->nodes[i];
    if (n->dead) continue;
    for (int j = 0; j < n->num_inputs; j++) {
      const drt_value *x = n->inputs[j];
      if (x && !reads_any_storage(n, j) && !(moves_elements(n->op) && moved_input(n, j)))
        ok[uf_find(parent, x->id)] = 0;
    }
  }
  drt_status st = DRT_OK;
  for (size_t i = 0; i < g->num_values && !st; i++)
    if (ok[uf_find(parent, g->values[i]->id)] && !list_push(keep, g->values[i]))
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "float32 activation list");
  /* Constants that only the epilogues of drt.Gemm nodes with a float32 output read (their bias
     vectors) are stored in float32 too: cuBLASLt's bias epilogue takes D's type, so the bias and
     residual epilogue still maps onto the GEMM. 1: candidate, 2: another reader. */
  uint8_t *cb = calloc(nid ? nid : 1, 1);
  if (!cb && !st) st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "float32 constant list");
  for (size_t i = 0; i < g->num_nodes && !st; i++) {
    const drt_node *n = g->nodes[i];
    if (n->dead) continue;
    bool f32_out = n->op == DRT_OP_FUSED_GEMM && n->num_outputs == 1 && n->outputs[0] &&
                   ok[uf_find(parent, n->outputs[0]->id)];
    for (int j = 0; j < n->num_inputs; j++) {
      const drt_value *v = n->inputs[j];
      if (!v || v->kind != DRT_VALUE_CONST || v->dtype != DRT_DTYPE_FLOAT32) continue;
      if (f32_out && j >= 2 && !is_output_of(g, v)) {
        if (cb[v->id] == 0) cb[v->id] = 1;
      } else {
        cb[v->id] = 2;
      }
    }
  }
  for (size_t i = 0; i < g->num_values && !st; i++)
    if (g->values[i]->kind == DRT_VALUE_CONST && cb[g->values[i]->id] == 1 && !list_push(keep, g->values[i]))
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "float32 constant list");
  free(cb);
  free(parent);
  free(ok);
  return st;
}

static drt_status choose_f32_storage(drt_cuda_precision prec, const drt_graph *const *graphs, size_t n,
                                     drt_cuda_program *p) {
  if (prec != DRT_CUDA_PRECISION_FP16 && prec != DRT_CUDA_PRECISION_BF16) return DRT_OK;
  for (size_t g = 0; g < n; g++) {
    value_list keep = {0};
    for (size_t i = 0; i < graphs[g]->num_inputs; i++) {
      const drt_value *v = graphs[g]->inputs[i];
      if (!v->name || !f32_candidate(v)) continue;
      size_t before = keep.n;
      int r = f32_closure(graphs[g], v, &keep, 0);
      for (size_t h = 0; h < n && r == 1; h++)
        if (h != g) r = graph_keeps(graphs[h], v->name);
      if (r < 0) {
        free(keep.v);
        return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "float32 storage list");
      }
      if (r == 0) keep.n = before;
    }
    drt_status st = choose_f32_activations(graphs[g], &keep);
    if (st) {
      free(keep.v);
      return st;
    }
    p->graphs[g].f32_values = keep.v;
    p->graphs[g].num_f32_values = keep.n;
    if (keep.n) {
      const drt_value **sorted = malloc(keep.n * sizeof *sorted);
      if (!sorted) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "float32 storage list");
      memcpy(sorted, keep.v, keep.n * sizeof *sorted);
      qsort(sorted, keep.n, sizeof *sorted, cmp_value_ptr);
      p->graphs[g].f32_sorted = sorted;
    }
  }
  return DRT_OK;
}

/* ---- program ---------------------------------------------------------------------------------- */
static drt_status assemble(drt_cg *cg, drt_cuda_program *p) {
  text src = {0};
  char line[160];
  snprintf(line, sizeof line, "/* distilrt CUDA program (precision %s) */\n",
           drt_cuda_precision_name(cg->opts.precision));
  text_puts(&src, line);
  for (size_t i = 0; i < drt_cg_library_count; i++) {
    snprintf(line, sizeof line, "/* ---- codegen/kernels/%s ---- */\n", drt_cg_library[i].name);
    text_puts(&src, line);
    text_append(&src, (const char *)drt_cg_library[i].data, drt_cg_library[i].size);
    if (drt_cg_library[i].size && drt_cg_library[i].data[drt_cg_library[i].size - 1] != '\n') text_puts(&src, "\n");
  }
  text_puts(&src, "/* ---- runtime kernels ---- */\n");
  size_t runtime_at = src.len;
  text_append(&src, cg->runtime.p ? cg->runtime.p : "", cg->runtime.len);
  text_puts(&src, "/* ---- generated kernels ---- */\n");
  size_t wrappers_at = src.len;
  text_append(&src, cg->wrappers.p ? cg->wrappers.p : "", cg->wrappers.len);
  if (src.oom || !src.p) {
    free(src.p);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "program source");
  }
  if (src.len > UINT32_MAX) {
    free(src.p);
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "program source of %zu bytes exceeds 4 GiB", src.len);
  }
  p->source = src.p;
  p->source_len = src.len;
  p->source_hash = drt_fnv1a64(src.p, src.len, 0);
  p->kernels = calloc(cg->num_kernels ? cg->num_kernels : 1, sizeof *p->kernels);
  if (!p->kernels) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "kernel table");
  p->num_kernels = cg->num_kernels;
  for (size_t i = 0; i < cg->num_kernels; i++) {
    const kernel_rec *r = &cg->kernels[i];
    size_t base = r->fixed ? runtime_at : wrappers_at;
    p->kernels[i] = r->k;
    p->kernels[i].src_begin = (uint32_t)(base + r->wrap_begin);
    p->kernels[i].src_end = (uint32_t)(base + r->wrap_end);
  }
  return DRT_OK;
}

drt_status drt_cuda_program_build(const drt_graph *const *graphs, size_t n, const drt_cuda_codegen_options *o,
                                  drt_cuda_program **out) {
  *out = NULL;
  drt_cuda_codegen_options opts;
  drt_cuda_codegen_options_init(&opts);
  if (o) opts = *o;
  if ((unsigned)opts.precision > DRT_CUDA_PRECISION_BF16)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "unknown CUDA precision %d", (int)opts.precision);
  if (n > 0 && !graphs) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "no graphs");
  drt_cg *cg = calloc(1, sizeof *cg);
  drt_cuda_program *p = calloc(1, sizeof *p);
  drt_status st = DRT_OK;
  if (!cg || !p) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "codegen state");
    goto done;
  }
  cg->opts = opts;
  p->precision = opts.precision;
  build_op_table(cg);
  st = add_fixed_kernels(cg);
  if (st) goto done;
  p->graphs = calloc(n ? n : 1, sizeof *p->graphs);
  if (!p->graphs) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "graph table");
    goto done;
  }
  p->num_graphs = n;
  for (size_t g = 0; g < n && !st; g++)
    if (!graphs[g]) st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "graph %zu is NULL", g);
  if (!st) st = choose_f32_storage(opts.precision, graphs, n, p);
  for (size_t g = 0; g < n && !st; g++) {
    st = build_graph(cg, graphs[g], &p->graphs[g]);
    if (st && n > 1)
      st = drt_status_annotate(st, "graph %zu '%s'", g, graphs[g]->name ? graphs[g]->name : "");
  }
  if (!st) st = assemble(cg, p);
done:
  if (cg) {
    for (size_t i = 0; i < cg->num_kernels; i++) free(cg->kernels[i].body);
    free(cg->kernels);
    free(cg->runtime.p);
    free(cg->wrappers.p);
    free(cg->launches);
    drt_status_free(cg->err);
    free(cg);
  }
  if (st) {
    drt_cuda_program_destroy(p);
    return st;
  }
  *out = p;
  return DRT_OK;
}

void drt_cuda_program_destroy(drt_cuda_program *p) {
  if (!p) return;
  free(p->source);
  free(p->kernels);
  if (p->graphs)
    for (size_t g = 0; g < p->num_graphs; g++) {
      free(p->graphs[g].launches);
      free(p->graphs[g].node_first);
      free(p->graphs[g].f32_values);
      free(p->graphs[g].f32_sorted);
    }
  free(p->graphs);
  free(p);
}

int drt_cuda_program_find_kernel(const drt_cuda_program *p, const char *name) {
  if (!p || !name) return -1;
  for (size_t i = 0; i < p->num_kernels; i++)
    if (strcmp(p->kernels[i].name, name) == 0) return (int)i;
  return -1;
}
