/* The CUDA driver and cuBLASLt, loaded with dlopen: symbol tables, error conversion, the
 * refcounted per-device context, and the device-level helpers of runtime/cuda/cuda.h (memory,
 * copies, streams, CUDA graphs, timers). */
#include "runtime/cuda/cuda_internal.h"

#ifdef DRT_CUDA_ENABLED

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

drt_cu_api drt_cu;
drt_lt_api drt_lt;

/* Process-wide state: the libraries are process-wide by nature (libcuda keeps one state per
 * process), and contexts are shared by every plan and session of the process. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static bool g_cu_loaded;
static char g_cu_path[512]; /* what g_cu_loaded loaded */
static int g_lt_state;      /* 0: not tried, 1: loaded, -1: failed (g_lt_error) */
static char g_lt_env[512];  /* DRT_CUBLASLT_LIBRARY when g_lt_state was set */
static char g_lt_error[768];
static drt_cuda_context *g_contexts;

bool drt_cuda_compiled(void) { return true; }

/* ---- errors ------------------------------------------------------------------------------------ */
static const char *cu_fallback_name(CUresult r) {
  switch (r) {
#define N(x) \
  case x:    \
    return #x;
    N(CUDA_ERROR_INVALID_VALUE) N(CUDA_ERROR_OUT_OF_MEMORY) N(CUDA_ERROR_NOT_INITIALIZED)
    N(CUDA_ERROR_DEINITIALIZED) N(CUDA_ERROR_STUB_LIBRARY) N(CUDA_ERROR_NO_DEVICE) N(CUDA_ERROR_INVALID_DEVICE)
    N(CUDA_ERROR_SYSTEM_DRIVER_MISMATCH) N(CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER) N(CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE)
    N(CUDA_ERROR_DEVICE_UNAVAILABLE) N(CUDA_ERROR_NOT_SUPPORTED) N(CUDA_ERROR_UNKNOWN)
#undef N
    default:
      return NULL;
  }
}

static drt_status_code cu_code(CUresult r) {
  switch (r) {
    case CUDA_ERROR_OUT_OF_MEMORY:
      return DRT_STATUS_OUT_OF_MEMORY;
    case CUDA_ERROR_STUB_LIBRARY:
    case CUDA_ERROR_NO_DEVICE:
    case CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER:
    case CUDA_ERROR_SYSTEM_DRIVER_MISMATCH:
    case CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE:
    case CUDA_ERROR_DEVICE_UNAVAILABLE:
    case CUDA_ERROR_NOT_INITIALIZED:
    case CUDA_ERROR_DEINITIALIZED:
    case CUDA_ERROR_SYSTEM_NOT_READY:
      return DRT_STATUS_UNAVAILABLE;
    case CUDA_ERROR_NO_BINARY_FOR_GPU:
    case CUDA_ERROR_INVALID_PTX:
    case CUDA_ERROR_UNSUPPORTED_PTX_VERSION:
    case CUDA_ERROR_JIT_COMPILER_NOT_FOUND:
    case CUDA_ERROR_UNSUPPORTED_DEVSIDE_SYNC:
    case CUDA_ERROR_NOT_SUPPORTED:
      return DRT_STATUS_UNSUPPORTED;
    default:
      return DRT_STATUS_INTERNAL;
  }
}

static void cu_describe(CUresult r, const char **name, const char **desc) {
  *name = NULL;
  *desc = NULL;
  if (drt_cu.cuGetErrorName && drt_cu.cuGetErrorName(r, name) != CUDA_SUCCESS) *name = NULL;
  if (drt_cu.cuGetErrorString && drt_cu.cuGetErrorString(r, desc) != CUDA_SUCCESS) *desc = NULL;
  if (!*name) *name = cu_fallback_name(r);
  if (!*desc && r == CUDA_ERROR_STUB_LIBRARY)
    *desc = "the CUDA toolkit's stub libcuda.so was loaded instead of the NVIDIA driver's libcuda.so.1";
  if (!*desc && r == CUDA_ERROR_NO_DEVICE) *desc = "no CUDA-capable device is detected";
}

drt_status drt_cu_check(CUresult r, const char *call, const char *file, int line) {
  if (r == CUDA_SUCCESS) return DRT_OK;
  const char *name, *desc;
  cu_describe(r, &name, &desc);
  char num[32];
  if (!name) {
    snprintf(num, sizeof num, "CUresult %d", (int)r);
    name = num;
  }
  /* the location is in the message already: no second " [file:line]" */
  return drt_status_make(cu_code(r), NULL, line, "%s failed: %s (%s) at %s:%d", call, name,
                         desc ? desc : "no description", file, line);
}

drt_status drt_lt_check(cublasStatus_t r, const char *call, const char *file, int line) {
  if (r == CUBLAS_STATUS_SUCCESS) return DRT_OK;
  const char *name = drt_lt.cublasLtGetStatusName ? drt_lt.cublasLtGetStatusName(r) : NULL;
  const char *desc = drt_lt.cublasLtGetStatusString ? drt_lt.cublasLtGetStatusString(r) : NULL;
  drt_status_code code = r == CUBLAS_STATUS_ALLOC_FAILED                                    ? DRT_STATUS_OUT_OF_MEMORY
                         : r == CUBLAS_STATUS_NOT_SUPPORTED || r == CUBLAS_STATUS_ARCH_MISMATCH ? DRT_STATUS_UNSUPPORTED
                                                                                           : DRT_STATUS_INTERNAL;
  char num[40];
  if (!name) {
    snprintf(num, sizeof num, "cublasStatus_t %d", (int)r);
    name = num;
  }
  return drt_status_make(code, NULL, line, "%s failed: %s (%s) at %s:%d", call, name, desc ? desc : "no description",
                         file, line);
}

/* ---- library loading ---------------------------------------------------------------------------- */
static void append(char *buf, size_t size, const char *fmt, const char *a, const char *b) {
  size_t len = strlen(buf);
  if (len + 1 >= size) return;
  snprintf(buf + len, size - len, fmt, a, b ? b : "");
}

static const char *cu_path(void) {
  const char *path = getenv("DRT_CUDA_LIBRARY");
  return path && path[0] ? path : "libcuda.so.1";
}

static const char *lt_env(void) {
  const char *env = getenv("DRT_CUBLASLT_LIBRARY");
  return env ? env : "";
}

/* Loads every symbol of one table; on failure names the missing symbol. */
static drt_status load_cu(void) {
  const char *path = cu_path();
  dlerror();
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *e = dlerror();
    return DRT_ERROR(DRT_STATUS_UNAVAILABLE, "no NVIDIA driver: %s could not be loaded (%s)", path,
                     e ? e : "unknown error");
  }
  drt_cu_api api;
  memset(&api, 0, sizeof api);
#define DRT_CU_SYM(name, ret, params)                                                             \
  {                                                                                               \
    void *p = dlsym(h, #name);                                                                    \
    if (!p && strcmp(#name, "cuEventElapsedTime_v2") == 0) p = dlsym(h, "cuEventElapsedTime");    \
    if (!p) {                                                                                     \
      dlclose(h);                                                                                 \
      return DRT_ERROR(DRT_STATUS_UNAVAILABLE, "the NVIDIA driver %s is too old or incomplete: it has no %s (a " \
                       "driver for CUDA 12 or newer is needed)", path, #name);                    \
    }                                                                                             \
    memcpy(&api.name, &p, sizeof p);                                                              \
  }
#include "runtime/cuda/symbols.def"
  drt_cu = api; /* a library loaded before (another DRT_CUDA_LIBRARY) stays mapped, unused */
  snprintf(g_cu_path, sizeof g_cu_path, "%s", path);
  return DRT_OK;
}

static bool try_lt(const char *path, char *why, size_t why_size) {
  dlerror();
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *e = dlerror();
    append(why, why_size, "%s%s; ", e ? e : path, NULL);
    return false;
  }
  drt_lt_api api;
  memset(&api, 0, sizeof api);
#define DRT_CUBLASLT_SYM(name, ret, params)                \
  {                                                        \
    void *p = dlsym(h, #name);                             \
    if (!p) {                                              \
      append(why, why_size, "%s has no %s; ", path, #name); \
      dlclose(h);                                          \
      return false;                                        \
    }                                                      \
    memcpy(&api.name, &p, sizeof p);                       \
  }
#include "runtime/cuda/symbols.def"
  drt_lt = api;
  return true;
}

static void load_lt(void) {
  char why[768] = "";
  const char *env = getenv("DRT_CUBLASLT_LIBRARY");
  bool ok = false;
  if (env && env[0]) {
    ok = try_lt(env, why, sizeof why);
  } else {
    static const char *const names[] = {"libcublasLt.so.13", "libcublasLt.so.12"};
    const char *home = getenv("CUDA_HOME");
    for (size_t i = 0; i < 2 && !ok; i++) ok = try_lt(names[i], why, sizeof why);
    for (size_t i = 0; i < 2 && !ok; i++) {
      char path[600];
      if (home && home[0]) {
        snprintf(path, sizeof path, "%s/lib64/%s", home, names[i]);
        ok = try_lt(path, why, sizeof why);
      }
      if (!ok) {
        snprintf(path, sizeof path, "/usr/local/cuda/lib64/%s", names[i]);
        ok = try_lt(path, why, sizeof why);
      }
    }
  }
  snprintf(g_lt_env, sizeof g_lt_env, "%s", lt_env());
  if (ok) {
    g_lt_state = 1;
  } else {
    g_lt_state = -1;
    snprintf(g_lt_error, sizeof g_lt_error,
             "cuBLASLt could not be loaded (set DRT_CUBLASLT_LIBRARY or CUDA_HOME, or install the CUDA toolkit's "
             "libcublasLt.so.13): %.600s", why);
  }
}

/* ---- contexts ------------------------------------------------------------------------------------- */
drt_status drt_cuda_ctx_enter(drt_cuda_context *ctx) { return DRT_CU_CALL(cuCtxSetCurrent, (ctx->cu)); }

drt_status drt_cuda_ctx_require_lt(drt_cuda_context *ctx) {
  if (ctx->lt) return DRT_OK;
  return DRT_ERROR(DRT_STATUS_UNAVAILABLE, "%s", ctx->lt_error[0] ? ctx->lt_error : "cuBLASLt is not available");
}

static drt_status open_context(int ordinal, drt_cuda_context **out) {
  CUresult r = drt_cu.cuInit(0);
  if (r != CUDA_SUCCESS) {
    /* whatever the reason (stub library, no device, driver/kernel module mismatch), there is no
     * usable GPU: UNAVAILABLE, so callers fall back to the CPU */
    drt_status s = drt_cu_check(r, "cuInit", __FILE__, __LINE__);
    drt_status u = DRT_ERROR(DRT_STATUS_UNAVAILABLE, "no CUDA GPU available: %s", drt_status_message(s));
    drt_status_free(s);
    return u;
  }
  int count = 0;
  DRT_RETURN_IF_ERROR(DRT_CU_CALL(cuDeviceGetCount, (&count)));
  if (count <= 0) return DRT_ERROR(DRT_STATUS_UNAVAILABLE, "no CUDA GPU available: the driver reports no device");
  if (ordinal < 0 || ordinal >= count)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "CUDA device %d requested, but the machine has %d (0..%d)", ordinal,
                     count, count - 1);
  drt_cuda_context *c = calloc(1, sizeof *c);
  if (!c) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "CUDA context");
  c->ordinal = ordinal;
  c->info.ordinal = ordinal;
  drt_status st = DRT_CU_CALL(cuDeviceGet, (&c->dev, ordinal));
  if (!st) st = DRT_CU_CALL(cuDeviceGetName, (c->info.name, (int)sizeof c->info.name - 1, c->dev));
  if (!st) st = DRT_CU_CALL(cuDeviceGetAttribute, (&c->info.cc_major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, c->dev));
  if (!st) st = DRT_CU_CALL(cuDeviceGetAttribute, (&c->info.cc_minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, c->dev));
  if (!st) st = DRT_CU_CALL(cuDeviceGetAttribute, (&c->info.sm_count, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, c->dev));
  if (!st)
    st = DRT_CU_CALL(cuDeviceGetAttribute,
                     (&c->max_smem_optin, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, c->dev));
  size_t total = 0;
  if (!st) st = DRT_CU_CALL(cuDeviceTotalMem_v2, (&total, c->dev));
  c->info.total_memory = total;
  if (!st) st = DRT_CU_CALL(cuDriverGetVersion, (&c->info.driver_version));
  if (st) {
    free(c);
    return st;
  }
  if (c->info.cc_major * 10 + c->info.cc_minor < DRT_CUDA_MIN_SM) { /* the kernel library's minimum */
    st = DRT_ERROR(DRT_STATUS_UNSUPPORTED,
                   "CUDA device %d (%s, compute capability %d.%d) is older than distilrt's CUDA backend supports "
                   "(%d.%d and newer: Ampere, Ada, Hopper, ...); use the CPU backend", ordinal, c->info.name,
                   c->info.cc_major, c->info.cc_minor, DRT_CUDA_MIN_SM / 10, DRT_CUDA_MIN_SM % 10);
    free(c);
    return st;
  }
  st = DRT_CU_CALL(cuDevicePrimaryCtxRetain, (&c->cu, c->dev));
  if (st) {
    free(c);
    return st;
  }
  st = drt_cuda_ctx_enter(c);
  if (st) {
    drt_cu.cuDevicePrimaryCtxRelease_v2(c->dev);
    free(c);
    return st;
  }
  if (g_lt_state == 0) load_lt();
  if (g_lt_state == 1) {
    drt_status ls = DRT_LT_CALL(cublasLtCreate, (&c->lt));
    if (ls) {
      c->lt = NULL;
      snprintf(c->lt_error, sizeof c->lt_error, "cuBLASLt could not be initialized: %s", drt_status_message(ls));
      drt_status_free(ls);
    }
  } else {
    snprintf(c->lt_error, sizeof c->lt_error, "%s", g_lt_error);
  }
  c->refs = 1;
  *out = c;
  return DRT_OK;
}

drt_status drt_cuda_context_acquire(int ordinal, drt_cuda_context **out) {
  *out = NULL;
  pthread_mutex_lock(&g_lock);
  drt_status st = DRT_OK;
  /* while no context is open, a changed DRT_CUDA_LIBRARY / DRT_CUBLASLT_LIBRARY loads the new
   * library (tests switch between a missing driver, the stub and the emulator's mock) */
  if (!g_contexts) {
    if (g_cu_loaded && strcmp(cu_path(), g_cu_path) != 0) g_cu_loaded = false;
    if (g_lt_state != 0 && strcmp(lt_env(), g_lt_env) != 0) g_lt_state = 0;
  }
  if (!g_cu_loaded) {
    st = load_cu();
    if (!st) g_cu_loaded = true;
  }
  if (!st) {
    drt_cuda_context *c = g_contexts;
    while (c && c->ordinal != ordinal) c = c->next;
    if (c) {
      c->refs++;
      *out = c;
    } else {
      st = open_context(ordinal, &c);
      if (!st) {
        c->next = g_contexts;
        g_contexts = c;
        *out = c;
      }
    }
  }
  pthread_mutex_unlock(&g_lock);
  if (!st && *out) {
    st = drt_cuda_ctx_enter(*out);
    if (st) {
      drt_cuda_context_release(*out);
      *out = NULL;
    }
  }
  return st;
}

void drt_cuda_context_release(drt_cuda_context *ctx) {
  if (!ctx) return;
  pthread_mutex_lock(&g_lock);
  if (--ctx->refs == 0) {
    drt_cuda_context **pp = &g_contexts;
    while (*pp && *pp != ctx) pp = &(*pp)->next;
    if (*pp) *pp = ctx->next;
    drt_cu.cuCtxSetCurrent(ctx->cu);
    if (ctx->lt) drt_lt.cublasLtDestroy(ctx->lt);
    drt_cu.cuCtxSetCurrent(NULL);
    drt_cu.cuDevicePrimaryCtxRelease_v2(ctx->dev);
    free(ctx);
  }
  pthread_mutex_unlock(&g_lock);
}

const drt_cuda_device_info *drt_cuda_context_device(const drt_cuda_context *ctx) { return &ctx->info; }

/* ---- memory and copies ---------------------------------------------------------------------------- */
drt_status drt_cuda_malloc(drt_cuda_context *ctx, uint64_t bytes, uint64_t *dptr) {
  *dptr = 0;
  DRT_RETURN_IF_ERROR(drt_cuda_ctx_enter(ctx));
  CUdeviceptr p = 0;
  drt_status st = DRT_CU_CALL(cuMemAlloc_v2, (&p, bytes ? (size_t)bytes : 1));
  if (st) return drt_status_annotate(st, "allocating %llu bytes on the GPU", (unsigned long long)bytes);
  *dptr = (uint64_t)p;
  return DRT_OK;
}

void drt_cuda_free(drt_cuda_context *ctx, uint64_t dptr) {
  if (!ctx || !dptr) return;
  drt_cu.cuCtxSetCurrent(ctx->cu);
  drt_cu.cuMemFree_v2((CUdeviceptr)dptr);
}

drt_status drt_cuda_memcpy_htod(drt_cuda_context *ctx, uint64_t dst, const void *src, uint64_t bytes, void *stream) {
  if (!bytes) return DRT_OK;
  DRT_RETURN_IF_ERROR(drt_cuda_ctx_enter(ctx));
  if (!stream) return DRT_CU_CALL(cuMemcpyHtoD_v2, ((CUdeviceptr)dst, src, (size_t)bytes));
  return DRT_CU_CALL(cuMemcpyHtoDAsync_v2, ((CUdeviceptr)dst, src, (size_t)bytes, (CUstream)stream));
}

drt_status drt_cuda_memcpy_dtoh(drt_cuda_context *ctx, void *dst, uint64_t src, uint64_t bytes, void *stream) {
  if (!bytes) return DRT_OK;
  DRT_RETURN_IF_ERROR(drt_cuda_ctx_enter(ctx));
  if (!stream) return DRT_CU_CALL(cuMemcpyDtoH_v2, (dst, (CUdeviceptr)src, (size_t)bytes));
  return DRT_CU_CALL(cuMemcpyDtoHAsync_v2, (dst, (CUdeviceptr)src, (size_t)bytes, (CUstream)stream));
}

drt_status drt_cuda_memcpy_dtod(drt_cuda_context *ctx, uint64_t dst, uint64_t src, uint64_t bytes, void *stream) {
  if (!bytes || dst == src) return DRT_OK;
  DRT_RETURN_IF_ERROR(drt_cuda_ctx_enter(ctx));
  DRT_RETURN_IF_ERROR(
      DRT_CU_CALL(cuMemcpyDtoDAsync_v2, ((CUdeviceptr)dst, (CUdeviceptr)src, (size_t)bytes, (CUstream)stream)));
  if (!stream) return DRT_CU_CALL(cuStreamSynchronize, (NULL));
  return DRT_OK;
}

drt_status drt_cuda_stream_sync(drt_cuda_context *ctx, void *stream) {
  DRT_RETURN_IF_ERROR(drt_cuda_ctx_enter(ctx));
  return DRT_CU_CALL(cuStreamSynchronize, ((CUstream)stream));
}

/* ---- CUDA graphs ------------------------------------------------------------------------------------ */
struct drt_cuda_graph {
  drt_cuda_context *ctx;
  CUgraph graph;
  CUgraphExec exec;
};

drt_status drt_cuda_graph_begin(drt_cuda_context *ctx, void *stream) {
  if (!stream) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "CUDA graph capture needs a stream (not the default one)");
  DRT_RETURN_IF_ERROR(drt_cuda_ctx_enter(ctx));
  return DRT_CU_CALL(cuStreamBeginCapture_v2, ((CUstream)stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
}

drt_status drt_cuda_graph_end(drt_cuda_context *ctx, void *stream, drt_cuda_graph **out) {
  *out = NULL;
  DRT_RETURN_IF_ERROR(drt_cuda_ctx_enter(ctx));
  CUgraph g = NULL;
  DRT_RETURN_IF_ERROR(DRT_CU_CALL(cuStreamEndCapture, ((CUstream)stream, &g)));
  CUgraphExec x = NULL;
  drt_status st = DRT_CU_CALL(cuGraphInstantiateWithFlags, (&x, g, 0));
  if (st) {
    drt_cu.cuGraphDestroy(g);
    return st;
  }
  drt_cuda_graph *r = calloc(1, sizeof *r);
  if (!r) {
    drt_cu.cuGraphExecDestroy(x);
    drt_cu.cuGraphDestroy(g);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "CUDA graph");
  }
  r->ctx = ctx;
  r->graph = g;
  r->exec = x;
  *out = r;
  return DRT_OK;
}

drt_status drt_cuda_graph_launch(drt_cuda_graph *g, void *stream) {
  DRT_RETURN_IF_ERROR(drt_cuda_ctx_enter(g->ctx));
  return DRT_CU_CALL(cuGraphLaunch, (g->exec, (CUstream)stream));
}

void drt_cuda_graph_destroy(drt_cuda_graph *g) {
  if (!g) return;
  drt_cu.cuCtxSetCurrent(g->ctx->cu);
  drt_cu.cuGraphExecDestroy(g->exec);
  drt_cu.cuGraphDestroy(g->graph);
  free(g);
}

/* ---- timers ----------------------------------------------------------------------------------------- */
struct drt_cuda_timer {
  drt_cuda_context *ctx;
  CUevent start, stop;
};

drt_status drt_cuda_timer_create(drt_cuda_context *ctx, drt_cuda_timer **out) {
  *out = NULL;
  DRT_RETURN_IF_ERROR(drt_cuda_ctx_enter(ctx));
  drt_cuda_timer *t = calloc(1, sizeof *t);
  if (!t) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "CUDA timer");
  t->ctx = ctx;
  drt_status st = DRT_CU_CALL(cuEventCreate, (&t->start, CU_EVENT_DEFAULT));
  if (!st) st = DRT_CU_CALL(cuEventCreate, (&t->stop, CU_EVENT_DEFAULT));
  if (st) {
    drt_cuda_timer_destroy(t);
    return st;
  }
  *out = t;
  return DRT_OK;
}

drt_status drt_cuda_timer_start(drt_cuda_timer *t, void *stream) {
  DRT_RETURN_IF_ERROR(drt_cuda_ctx_enter(t->ctx));
  return DRT_CU_CALL(cuEventRecord, (t->start, (CUstream)stream));
}

drt_status drt_cuda_timer_stop(drt_cuda_timer *t, void *stream, double *ms) {
  *ms = 0;
  DRT_RETURN_IF_ERROR(drt_cuda_ctx_enter(t->ctx));
  DRT_RETURN_IF_ERROR(DRT_CU_CALL(cuEventRecord, (t->stop, (CUstream)stream)));
  DRT_RETURN_IF_ERROR(DRT_CU_CALL(cuEventSynchronize, (t->stop)));
  float f = 0;
  DRT_RETURN_IF_ERROR(DRT_CU_CALL(cuEventElapsedTime_v2, (&f, t->start, t->stop)));
  *ms = f;
  return DRT_OK;
}

void drt_cuda_timer_destroy(drt_cuda_timer *t) {
  if (!t) return;
  drt_cu.cuCtxSetCurrent(t->ctx->cu);
  if (t->start) drt_cu.cuEventDestroy_v2(t->start);
  if (t->stop) drt_cu.cuEventDestroy_v2(t->stop);
  free(t);
}

#endif /* DRT_CUDA_ENABLED */
