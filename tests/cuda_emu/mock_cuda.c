/* Mock libcuda + libcublasLt for the CUDA emulator (tests/cuda_emu/README.md).
 *
 * One shared library exporting exactly the entry points of runtime/cuda/symbols.def, so that
 *   DRT_CUDA_LIBRARY=libdrt_mock_cuda.so DRT_CUBLASLT_LIBRARY=libdrt_mock_cuda.so
 *   DRT_MOCK_CUDA_KERNELS=kernels.so drt run PLAN --backend cuda
 * runs the real runtime/cuda code on the CPU:
 *   - one device "Emulated GPU (drt cuda_emu)", sm_90, 132 SMs, 80 GiB;
 *   - device memory is host memory (each allocation ends at a PROT_NONE guard page, 256-byte
 *     aligned, filled with 0xFF = NaN so reads of never-written memory show up); copies and
 *     memsets are range-checked against the allocations;
 *   - every operation runs synchronously when enqueued; stream capture records the operations
 *     (kernel arguments, GEMM descriptors and scalars snapshotted as a real capture does) and
 *     cuGraphLaunch replays them in order; events time with CLOCK_MONOTONIC;
 *   - cuModuleLoadDataEx ignores the image and dlopens DRT_MOCK_CUDA_KERNELS (the program source
 *     compiled with emu.h); cuModuleGetFunction resolves a kernel by dlsym; cuLaunchKernel runs it
 *     through drt_emu_launch;
 *   - cuBLASLt: descriptors, column-major layouts with ld and strided batches, transposes, the
 *     BIAS/RELU/GELU epilogues, a reference GEMM accumulating in double over float/half/bf16
 *     (TF32 compute rounds the inputs to TF32); the heuristic returns one algorithm.
 * Anything not implemented fails with an error code (and a line on stderr), never silently.
 * Operations the real driver refuses during a thread-local stream capture (synchronous copies,
 * allocation, synchronization, copies from pageable host memory) fail the same way and
 * invalidate the capture. A failed kernel makes the context's error sticky, like a real fault. */
#define _GNU_SOURCE
#include <cublasLt.h>
#include <cuda.h>
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MOCK_API __attribute__((visibility("default")))
#define MOCK_SMEM_STATIC 49152
#define MOCK_SMEM_OPTIN 232448
#define MOCK_TOTAL_MEM (80ull << 30)

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...) {
  if (getenv("DRT_MOCK_CUDA_QUIET")) return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "mock_cuda: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
}

static pthread_mutex_t g_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
#define LOCK() pthread_mutex_lock(&g_lock)
#define UNLOCK() pthread_mutex_unlock(&g_lock)

static int g_init;
static CUresult g_sticky; /* set by a failed kernel: every later call fails like a faulted context */
static unsigned long long g_launches, g_gemms, g_copies;
static unsigned long long mock_pdl_launches; /* cuLaunchKernelEx with programmatic serialization */

/* ---- handles -------------------------------------------------------------------------------------- */
struct CUctx_st {
  int refs;
};
static struct CUctx_st g_ctx;
static __thread CUcontext t_current;

typedef struct emu_lib {
  void *handle;
  int (*launch)(const void *, const unsigned *, const unsigned *, size_t, const void *);
  const char *(*error)(void);
} emu_lib;

struct CUmod_st {
  emu_lib lib;
};
struct CUfunc_st {
  struct CUmod_st *mod;
  const void *fn;
  char name[128];
  int max_dyn_smem;
};

enum { OP_KERNEL, OP_COPY, OP_SET, OP_HOST, OP_EVENT, OP_GEMM };

typedef struct lt_layout_s {
  cudaDataType_t type;
  uint64_t rows, cols;
  int64_t ld;
  int32_t batch;
  int64_t stride;
} lt_layout_s;

typedef struct gemm_call {
  cublasComputeType_t compute;
  cudaDataType_t scale_type;
  int trans_a, trans_b;
  int epilogue;
  const void *bias;
  int bias_type; /* -1: D's type */
  lt_layout_s a, b, c, d;
  double alpha, beta;
  const void *A, *B, *C;
  void *D;
} gemm_call;

typedef struct op {
  int kind;
  struct CUfunc_st *f;
  unsigned grid[3], block[3], smem;
  unsigned long long kargs[32];
  void *dst;
  const void *src;
  size_t bytes;
  unsigned char value;
  CUhostFn fn;
  void *user;
  struct CUevent_st *ev;
  gemm_call gemm;
} op;

typedef struct op_list {
  op *v;
  size_t n, cap;
} op_list;

struct CUstream_st {
  int capturing;
  int invalidated;
  op_list ops;
};
static struct CUstream_st g_default_stream;

struct CUgraph_st {
  op_list ops;
};
struct CUgraphExec_st {
  op_list ops;
};
struct CUevent_st {
  int recorded;
  double ms;
};

static __thread int t_capturing; /* streams this thread is capturing (thread-local/global mode) */
static __thread struct CUstream_st *t_capture_streams[16];

static struct CUstream_st *stream_of(CUstream s) { return s ? (struct CUstream_st *)s : &g_default_stream; }

static int push_op(op_list *l, const op *o) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 64;
    op *nv = realloc(l->v, cap * sizeof *nv);
    if (!nv) return -1;
    l->v = nv;
    l->cap = cap;
  }
  l->v[l->n++] = *o;
  return 0;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* ---- allocations ---------------------------------------------------------------------------------- */
typedef struct alloc {
  char *base;     /* mmap base */
  size_t map_len; /* including the guard page */
  char *ptr;      /* user pointer (ends right before the guard page, 256-byte aligned) */
  size_t bytes;
  int host;       /* cuMemAllocHost */
} alloc;
static alloc *g_allocs;
static size_t g_nallocs, g_cap_allocs;
static uint64_t g_dev_bytes;

static const alloc *find_alloc(const void *p, size_t bytes, int host) {
  const char *c = p;
  for (size_t i = 0; i < g_nallocs; i++) {
    const alloc *a = &g_allocs[i];
    if (a->host != host) continue;
    if (c >= a->ptr && c <= a->ptr + a->bytes && bytes <= (size_t)(a->ptr + a->bytes - c)) return a;
  }
  return NULL;
}

static CUresult do_alloc(void **out, size_t bytes, int host) {
  if (!bytes) return CUDA_ERROR_INVALID_VALUE;
  size_t page = 4096, rounded = (bytes + 255) & ~(size_t)255;
  size_t len = ((rounded + page - 1) & ~(page - 1)) + page;
  char *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
  mprotect(base + len - page, page, PROT_NONE);
  char *ptr = base + len - page - rounded;
  memset(ptr, 0xFF, rounded);
  if (g_nallocs == g_cap_allocs) {
    size_t cap = g_cap_allocs ? 2 * g_cap_allocs : 256;
    alloc *na = realloc(g_allocs, cap * sizeof *na);
    if (!na) {
      munmap(base, len);
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
    g_allocs = na;
    g_cap_allocs = cap;
  }
  alloc a = {base, len, ptr, bytes, host};
  g_allocs[g_nallocs++] = a;
  if (!host) g_dev_bytes += bytes;
  *out = ptr;
  return CUDA_SUCCESS;
}

static CUresult do_free(void *p, int host) {
  for (size_t i = 0; i < g_nallocs; i++)
    if (g_allocs[i].ptr == p && g_allocs[i].host == host) {
      if (!host) g_dev_bytes -= g_allocs[i].bytes;
      munmap(g_allocs[i].base, g_allocs[i].map_len);
      g_allocs[i] = g_allocs[--g_nallocs];
      return CUDA_SUCCESS;
    }
  note("%s(%p): not an allocation of this context", host ? "cuMemFreeHost" : "cuMemFree", p);
  return CUDA_ERROR_INVALID_VALUE;
}

static CUresult check_dev(const char *call, const void *p, size_t bytes) {
  if (find_alloc(p, bytes, 0)) return CUDA_SUCCESS;
  note("%s: device range [%p, +%zu) is not inside a device allocation", call, p, bytes);
  return CUDA_ERROR_INVALID_VALUE;
}

/* ---- entry checks ----------------------------------------------------------------------------------- */
#define ENTER()                                         \
  do {                                                  \
    if (!g_init) return CUDA_ERROR_NOT_INITIALIZED;     \
    if (g_sticky) return g_sticky;                      \
  } while (0)
#define NEED_CTX()                                      \
  do {                                                  \
    if (!t_current) return CUDA_ERROR_INVALID_CONTEXT;  \
  } while (0)

/* A call the real driver refuses while this thread captures a stream (thread-local mode). */
static CUresult capture_forbidden(const char *call) {
  if (!t_capturing) return CUDA_SUCCESS;
  note("%s is not permitted while this thread captures a stream (the capture is invalidated)", call);
  for (int i = 0; i < 16; i++)
    if (t_capture_streams[i]) t_capture_streams[i]->invalidated = 1;
  return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
}

/* ---- errors ------------------------------------------------------------------------------------------ */
typedef struct err_name {
  CUresult code;
  const char *name, *desc;
} err_name;
static const err_name g_errs[] = {
    {CUDA_SUCCESS, "CUDA_SUCCESS", "no error"},
    {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {CUDA_ERROR_NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {CUDA_ERROR_INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {CUDA_ERROR_INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {CUDA_ERROR_INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {CUDA_ERROR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {CUDA_ERROR_NOT_READY, "CUDA_ERROR_NOT_READY", "device not ready"},
    {CUDA_ERROR_INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {CUDA_ERROR_LAUNCH_FAILED, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"},
    {CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", "too many resources requested for launch"},
    {CUDA_ERROR_NOT_SUPPORTED, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported"},
    {CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED",
     "operation not permitted when stream is capturing"},
    {CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED",
     "operation failed due to a previous error during capture"},
    {CUDA_ERROR_ILLEGAL_STATE, "CUDA_ERROR_ILLEGAL_STATE", "the operation is not permitted in this state"},
    {CUDA_ERROR_UNKNOWN, "CUDA_ERROR_UNKNOWN", "unknown error"},
};

MOCK_API CUresult cuGetErrorName(CUresult error, const char **pStr) {
  for (size_t i = 0; i < sizeof g_errs / sizeof g_errs[0]; i++)
    if (g_errs[i].code == error) {
      *pStr = g_errs[i].name;
      return CUDA_SUCCESS;
    }
  *pStr = NULL;
  return CUDA_ERROR_INVALID_VALUE;
}
MOCK_API CUresult cuGetErrorString(CUresult error, const char **pStr) {
  for (size_t i = 0; i < sizeof g_errs / sizeof g_errs[0]; i++)
    if (g_errs[i].code == error) {
      *pStr = g_errs[i].desc;
      return CUDA_SUCCESS;
    }
  *pStr = NULL;
  return CUDA_ERROR_INVALID_VALUE;
}

/* ---- init, devices ---------------------------------------------------------------------------------- */
MOCK_API CUresult cuInit(unsigned int Flags) {
  if (Flags != 0) return CUDA_ERROR_INVALID_VALUE;
  g_init = 1;
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuDriverGetVersion(int *driverVersion) {
  if (!driverVersion) return CUDA_ERROR_INVALID_VALUE;
  *driverVersion = 13000;
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuDeviceGetCount(int *count) {
  ENTER();
  if (!count) return CUDA_ERROR_INVALID_VALUE;
  *count = 1;
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuDeviceGet(CUdevice *device, int ordinal) {
  ENTER();
  if (!device) return CUDA_ERROR_INVALID_VALUE;
  if (ordinal != 0) return CUDA_ERROR_INVALID_DEVICE;
  *device = 0;
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuDeviceGetName(char *name, int len, CUdevice dev) {
  ENTER();
  if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
  if (!name || len <= 0) return CUDA_ERROR_INVALID_VALUE;
  snprintf(name, (size_t)len, "%s", "Emulated GPU (drt cuda_emu)");
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev) {
  ENTER();
  if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
  if (!pi) return CUDA_ERROR_INVALID_VALUE;
  switch (attrib) {
    /* DRT_MOCK_CUDA_CC=75 poses as compute capability 7.5 (tests of the minimum); default 9.0 */
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR:
      *pi = getenv("DRT_MOCK_CUDA_CC") ? atoi(getenv("DRT_MOCK_CUDA_CC")) / 10 : 9;
      break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR:
      *pi = getenv("DRT_MOCK_CUDA_CC") ? atoi(getenv("DRT_MOCK_CUDA_CC")) % 10 : 0;
      break;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *pi = 132; break;
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *pi = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X: *pi = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y: *pi = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z: *pi = 64; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X: *pi = 2147483647; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y: *pi = 65535; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z: *pi = 65535; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK: *pi = MOCK_SMEM_STATIC; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: *pi = MOCK_SMEM_OPTIN; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR: *pi = 233472; break;
    case CU_DEVICE_ATTRIBUTE_WARP_SIZE: *pi = 32; break;
    case CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK: *pi = 65536; break;
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR: *pi = 2048; break;
    case CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE: *pi = 50 << 20; break;
    case CU_DEVICE_ATTRIBUTE_CLOCK_RATE: *pi = 1980000; break;
    case CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE: *pi = 2619000; break;
    case CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH: *pi = 5120; break;
    case CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING: *pi = 1; break;
    case CU_DEVICE_ATTRIBUTE_INTEGRATED: *pi = 0; break;
    case CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY: *pi = 1; break;
    case CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS: *pi = 1; break;
    case CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT: *pi = 2; break;
    case CU_DEVICE_ATTRIBUTE_PCI_BUS_ID: *pi = 0; break;
    case CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID: *pi = 0; break;
    case CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID: *pi = 0; break;
    case CU_DEVICE_ATTRIBUTE_ECC_ENABLED: *pi = 0; break;
    case CU_DEVICE_ATTRIBUTE_TCC_DRIVER: *pi = 0; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_MODE: *pi = CU_COMPUTEMODE_DEFAULT; break;
    default:
      note("cuDeviceGetAttribute: attribute %d is not emulated", (int)attrib);
      return CUDA_ERROR_NOT_SUPPORTED;
  }
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev) {
  ENTER();
  if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
  if (!bytes) return CUDA_ERROR_INVALID_VALUE;
  *bytes = (size_t)MOCK_TOTAL_MEM;
  return CUDA_SUCCESS;
}

/* ---- contexts ---------------------------------------------------------------------------------------- */
MOCK_API CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev) {
  ENTER();
  if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
  if (!pctx) return CUDA_ERROR_INVALID_VALUE;
  LOCK();
  g_ctx.refs++;
  UNLOCK();
  *pctx = &g_ctx;
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev) {
  ENTER();
  if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
  LOCK();
  CUresult r = g_ctx.refs > 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
  if (g_ctx.refs > 0) g_ctx.refs--;
  UNLOCK();
  if (r) note("cuDevicePrimaryCtxRelease: released more often than retained");
  return r;
}
MOCK_API CUresult cuCtxSetCurrent(CUcontext ctx) {
  ENTER();
  if (ctx && ctx != &g_ctx) return CUDA_ERROR_INVALID_CONTEXT;
  if (ctx && g_ctx.refs <= 0) return CUDA_ERROR_INVALID_CONTEXT;
  t_current = ctx;
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuCtxGetCurrent(CUcontext *pctx) {
  ENTER();
  if (!pctx) return CUDA_ERROR_INVALID_VALUE;
  *pctx = t_current;
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuCtxSynchronize(void) {
  ENTER();
  NEED_CTX();
  return capture_forbidden("cuCtxSynchronize");
}

/* ---- modules ----------------------------------------------------------------------------------------- */
MOCK_API CUresult cuModuleLoadDataEx(CUmodule *module, const void *image, unsigned int numOptions,
                                     CUjit_option *options, void **optionValues) {
  ENTER();
  NEED_CTX();
  if (!module || !image) return CUDA_ERROR_INVALID_VALUE;
  if (numOptions && (!options || !optionValues)) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = capture_forbidden("cuModuleLoadDataEx");
  if (r) return r;
  const unsigned char *im = image;
  int elf = im[0] == 0x7f && im[1] == 'E' && im[2] == 'L' && im[3] == 'F';
  int ptx = strstr((const char *)image, ".version") != NULL || strstr((const char *)image, ".target") != NULL;
  if (!elf && !ptx) {
    note("cuModuleLoadDataEx: the image is neither a cubin (ELF) nor PTX text");
    return CUDA_ERROR_INVALID_IMAGE;
  }
  const char *path = getenv("DRT_MOCK_CUDA_KERNELS");
  if (!path || !path[0]) {
    note("cuModuleLoadDataEx: DRT_MOCK_CUDA_KERNELS is not set (build the program source with "
         "tests/cuda_emu/build_kernels.sh and point it at the .so)");
    return CUDA_ERROR_INVALID_IMAGE;
  }
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    note("cuModuleLoadDataEx: cannot load DRT_MOCK_CUDA_KERNELS=%s: %s", path, dlerror());
    return CUDA_ERROR_INVALID_IMAGE;
  }
  struct CUmod_st *m = calloc(1, sizeof *m);
  if (!m) {
    dlclose(h);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  m->lib.handle = h;
  void *l = dlsym(h, "drt_emu_launch"), *e = dlsym(h, "drt_emu_error");
  if (!l || !e) {
    note("cuModuleLoadDataEx: %s was not built with tests/cuda_emu/emu.h (no drt_emu_launch)", path);
    dlclose(h);
    free(m);
    return CUDA_ERROR_INVALID_IMAGE;
  }
  memcpy(&m->lib.launch, &l, sizeof l);
  memcpy(&m->lib.error, &e, sizeof e);
  *module = m;
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuModuleUnload(CUmodule hmod) {
  ENTER();
  if (!hmod) return CUDA_ERROR_INVALID_HANDLE;
  dlclose(hmod->lib.handle);
  free(hmod);
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod, const char *name) {
  ENTER();
  NEED_CTX();
  if (!hfunc || !name) return CUDA_ERROR_INVALID_VALUE;
  if (!hmod) return CUDA_ERROR_INVALID_HANDLE;
  void *fn = dlsym(hmod->lib.handle, name);
  if (!fn) {
    note("cuModuleGetFunction: kernel '%s' is not in DRT_MOCK_CUDA_KERNELS (stale kernels .so?)", name);
    return CUDA_ERROR_NOT_FOUND;
  }
  struct CUfunc_st *f = calloc(1, sizeof *f);
  if (!f) return CUDA_ERROR_OUT_OF_MEMORY;
  f->mod = hmod;
  f->fn = fn;
  snprintf(f->name, sizeof f->name, "%s", name);
  f->max_dyn_smem = MOCK_SMEM_STATIC;
  *hfunc = f; /* leaked with the module, as handles of a real module live as long as it */
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuFuncSetAttribute(CUfunction hfunc, CUfunction_attribute attrib, int value) {
  ENTER();
  if (!hfunc) return CUDA_ERROR_INVALID_HANDLE;
  switch (attrib) {
    case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES:
      if (value < 0 || value > MOCK_SMEM_OPTIN) return CUDA_ERROR_INVALID_VALUE;
      hfunc->max_dyn_smem = value;
      return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT:
      return value >= -1 && value <= 100 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
    default:
      note("cuFuncSetAttribute: attribute %d is not emulated", (int)attrib);
      return CUDA_ERROR_NOT_SUPPORTED;
  }
}
MOCK_API CUresult cuFuncGetAttribute(int *pi, CUfunction_attribute attrib, CUfunction hfunc) {
  ENTER();
  if (!hfunc) return CUDA_ERROR_INVALID_HANDLE;
  if (!pi) return CUDA_ERROR_INVALID_VALUE;
  switch (attrib) {
    case CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *pi = 1024; return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: *pi = hfunc->max_dyn_smem; return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES: *pi = 0; return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_NUM_REGS: *pi = 32; return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES: *pi = 0; return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_PTX_VERSION: *pi = 90; return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_BINARY_VERSION: *pi = 90; return CUDA_SUCCESS;
    default:
      note("cuFuncGetAttribute: attribute %d is not emulated", (int)attrib);
      return CUDA_ERROR_NOT_SUPPORTED;
  }
}

/* ---- cuBLASLt reference (declared here, used by the op executor) ------------------------------------- */
static CUresult gemm_exec(const gemm_call *g);

/* ---- non-finite tracking (DRT_MOCK_CUDA_CHECK=half|bf16|float) ------------------------------------------
 * After every kernel and GEMM, counts the Inf and NaN values (other than the 0xFF.. poison) in every
 * device allocation, read as the given type, and reports each operation that raised the count:
 * finds the first kernel that overflows or produces NaN. Slow (scans all device memory). */
static int g_check = -1; /* -1 unknown, 0 off, 2 half, 3 bf16, 4 float */
static unsigned long long g_check_count;
static int g_check_reports;

static unsigned long long count_nonfinite(void) {
  unsigned long long n = 0;
  for (size_t i = 0; i < g_nallocs; i++) {
    const alloc *a = &g_allocs[i];
    if (a->host) continue;
    if (g_check == 4) {
      const uint32_t *w = (const uint32_t *)(const void *)a->ptr;
      for (size_t j = 0; j < a->bytes / 4; j++) n += (w[j] & 0x7f800000u) == 0x7f800000u && w[j] != 0xffffffffu;
    } else {
      const uint16_t *w = (const uint16_t *)(const void *)a->ptr;
      uint16_t e = g_check == 2 ? 0x7c00u : 0x7f80u;
      for (size_t j = 0; j < a->bytes / 2; j++) n += (w[j] & e) == e && w[j] != 0xffffu;
    }
  }
  return n;
}

static void check_after(const char *what) {
  if (g_check < 0) {
    const char *e = getenv("DRT_MOCK_CUDA_CHECK");
    g_check = !e ? 0 : !strcmp(e, "half") ? 2 : !strcmp(e, "bf16") ? 3 : !strcmp(e, "float") ? 4 : 0;
    if (e && !g_check) note("DRT_MOCK_CUDA_CHECK must be half, bf16 or float (got '%s')", e);
  }
  if (!g_check) return;
  unsigned long long n = count_nonfinite();
  if (n > g_check_count && g_check_reports < 20) {
    note("check: %s raised the Inf/NaN count of device memory from %llu to %llu", what, g_check_count, n);
    g_check_reports++;
  }
  g_check_count = n;
}

/* ---- operation execution ------------------------------------------------------------------------------ */
static CUresult exec_op(const op *o) {
  switch (o->kind) {
    case OP_KERNEL: {
      const struct CUfunc_st *f = o->f;
      g_launches++;
      if (f->mod->lib.launch(f->fn, o->grid, o->block, o->smem, o->kargs)) {
        note("kernel %s grid (%u,%u,%u) block (%u,%u,%u) smem %u failed: %s", f->name, o->grid[0], o->grid[1],
             o->grid[2], o->block[0], o->block[1], o->block[2], o->smem, f->mod->lib.error());
        g_sticky = CUDA_ERROR_LAUNCH_FAILED;
        return CUDA_ERROR_LAUNCH_FAILED;
      }
      if (g_check) {
        char what[200];
        snprintf(what, sizeof what, "kernel %s (launch %llu)", f->name, g_launches);
        check_after(what);
      }
      return CUDA_SUCCESS;
    }
    case OP_COPY:
      g_copies++;
      if (o->bytes) memmove(o->dst, o->src, o->bytes);
      return CUDA_SUCCESS;
    case OP_SET:
      if (o->bytes) memset(o->dst, o->value, o->bytes);
      return CUDA_SUCCESS;
    case OP_HOST:
      o->fn(o->user);
      return CUDA_SUCCESS;
    case OP_EVENT:
      o->ev->recorded = 1;
      o->ev->ms = now_ms();
      return CUDA_SUCCESS;
    case OP_GEMM: {
      g_gemms++;
      CUresult r = gemm_exec(&o->gemm);
      if (g_check) {
        char what[200];
        snprintf(what, sizeof what, "GEMM %llu (m=%llu n=%llu k=%llu)", g_gemms, (unsigned long long)o->gemm.d.rows,
                 (unsigned long long)o->gemm.d.cols,
                 (unsigned long long)(o->gemm.trans_a ? o->gemm.a.rows : o->gemm.a.cols));
        check_after(what);
      }
      return r;
    }
    default:
      return CUDA_ERROR_UNKNOWN;
  }
}

/* Runs an operation now, or records it when the stream is capturing. */
static CUresult enqueue(CUstream hs, const op *o) {
  struct CUstream_st *s = stream_of(hs);
  if (s->capturing) {
    if (s->invalidated) return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
    return push_op(&s->ops, o) ? CUDA_ERROR_OUT_OF_MEMORY : CUDA_SUCCESS;
  }
  return exec_op(o);
}

MOCK_API CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,
                                 unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,
                                 unsigned int sharedMemBytes, CUstream hStream, void **kernelParams, void **extra) {
  ENTER();
  NEED_CTX();
  if (!f) return CUDA_ERROR_INVALID_HANDLE;
  unsigned long long threads = (unsigned long long)blockDimX * blockDimY * blockDimZ;
  if (!gridDimX || !gridDimY || !gridDimZ || !threads || threads > 1024 || blockDimZ > 64 || gridDimY > 65535 ||
      gridDimZ > 65535 || gridDimX > 2147483647u) {
    note("cuLaunchKernel %s: invalid configuration grid (%u,%u,%u) block (%u,%u,%u)", f->name, gridDimX, gridDimY,
         gridDimZ, blockDimX, blockDimY, blockDimZ);
    return CUDA_ERROR_INVALID_VALUE;
  }
  if ((int)sharedMemBytes > f->max_dyn_smem) {
    note("cuLaunchKernel %s: %u bytes of dynamic shared memory but the kernel allows %d "
         "(cuFuncSetAttribute MAX_DYNAMIC_SHARED_SIZE_BYTES)",
         f->name, sharedMemBytes, f->max_dyn_smem);
    return CUDA_ERROR_INVALID_VALUE;
  }
  op o;
  memset(&o, 0, sizeof o);
  o.kind = OP_KERNEL;
  o.f = f;
  o.grid[0] = gridDimX;
  o.grid[1] = gridDimY;
  o.grid[2] = gridDimZ;
  o.block[0] = blockDimX;
  o.block[1] = blockDimY;
  o.block[2] = blockDimZ;
  o.smem = sharedMemBytes;
  if (kernelParams && !extra) {
    if (!kernelParams[0]) return CUDA_ERROR_INVALID_VALUE;
    memcpy(o.kargs, kernelParams[0], sizeof o.kargs); /* every kernel takes one drt_kargs */
  } else if (extra && !kernelParams) {
    const void *buf = NULL;
    size_t size = 0;
    for (int i = 0; extra[i] != CU_LAUNCH_PARAM_END; i += 2) {
      if (extra[i] == CU_LAUNCH_PARAM_BUFFER_POINTER) buf = extra[i + 1];
      else if (extra[i] == CU_LAUNCH_PARAM_BUFFER_SIZE) size = *(const size_t *)extra[i + 1];
      else return CUDA_ERROR_INVALID_VALUE;
    }
    if (!buf || size != sizeof o.kargs) return CUDA_ERROR_INVALID_VALUE;
    memcpy(o.kargs, buf, sizeof o.kargs);
  } else {
    return CUDA_ERROR_INVALID_VALUE;
  }
  LOCK();
  CUresult r = enqueue(hStream, &o);
  UNLOCK();
  return r;
}

/* The one launch attribute the runtime sets: programmatic stream serialization (the kernels wait
 * with griddepcontrol.wait, a no-op here since launches run in order). */
MOCK_API CUresult cuLaunchKernelEx(const CUlaunchConfig *config, CUfunction f, void **kernelParams, void **extra) {
  ENTER();
  NEED_CTX();
  if (!config || (config->numAttrs && !config->attrs)) return CUDA_ERROR_INVALID_VALUE;
  /* a driver without programmatic dependent launch (tests of the runtime's fallback) */
  if (config->numAttrs && getenv("DRT_MOCK_CUDA_NO_PDL")) return CUDA_ERROR_NOT_SUPPORTED;
  for (unsigned i = 0; i < config->numAttrs; i++) {
    const CUlaunchAttribute *at = &config->attrs[i];
    if (at->id != CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION) {
      note("cuLaunchKernelEx: launch attribute %d is not emulated", (int)at->id);
      return CUDA_ERROR_NOT_SUPPORTED;
    }
    if ((unsigned)at->value.programmaticStreamSerializationAllowed > 1u) return CUDA_ERROR_INVALID_VALUE;
  }
  mock_pdl_launches += config->numAttrs > 0;
  return cuLaunchKernel(f, config->gridDimX, config->gridDimY, config->gridDimZ, config->blockDimX,
                        config->blockDimY, config->blockDimZ, config->sharedMemBytes, config->hStream, kernelParams,
                        extra);
}

MOCK_API CUresult cuLaunchHostFunc(CUstream hStream, CUhostFn fn, void *userData) {
  ENTER();
  NEED_CTX();
  if (!fn) return CUDA_ERROR_INVALID_VALUE;
  op o;
  memset(&o, 0, sizeof o);
  o.kind = OP_HOST;
  o.fn = fn;
  o.user = userData;
  LOCK();
  CUresult r = enqueue(hStream, &o);
  UNLOCK();
  return r;
}

/* ---- memory ------------------------------------------------------------------------------------------- */
MOCK_API CUresult cuMemGetInfo_v2(size_t *free_, size_t *total) {
  ENTER();
  NEED_CTX();
  if (!free_ || !total) return CUDA_ERROR_INVALID_VALUE;
  LOCK();
  *total = (size_t)MOCK_TOTAL_MEM;
  *free_ = (size_t)(MOCK_TOTAL_MEM - g_dev_bytes);
  UNLOCK();
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize) {
  ENTER();
  NEED_CTX();
  if (!dptr) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = capture_forbidden("cuMemAlloc");
  if (r) return r;
  LOCK();
  void *p = NULL;
  r = g_dev_bytes + bytesize > MOCK_TOTAL_MEM ? CUDA_ERROR_OUT_OF_MEMORY : do_alloc(&p, bytesize, 0);
  UNLOCK();
  if (!r) *dptr = (CUdeviceptr)(uintptr_t)p;
  return r;
}
MOCK_API CUresult cuMemFree_v2(CUdeviceptr dptr) {
  ENTER();
  NEED_CTX();
  CUresult r = capture_forbidden("cuMemFree");
  if (r) return r;
  if (!dptr) return CUDA_SUCCESS;
  LOCK();
  r = do_free((void *)(uintptr_t)dptr, 0);
  UNLOCK();
  return r;
}
MOCK_API CUresult cuMemAllocHost_v2(void **pp, size_t bytesize) {
  ENTER();
  NEED_CTX();
  if (!pp) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = capture_forbidden("cuMemAllocHost");
  if (r) return r;
  LOCK();
  r = do_alloc(pp, bytesize, 1);
  UNLOCK();
  return r;
}
MOCK_API CUresult cuMemFreeHost(void *p) {
  ENTER();
  CUresult r = capture_forbidden("cuMemFreeHost");
  if (r) return r;
  if (!p) return CUDA_SUCCESS;
  LOCK();
  r = do_free(p, 1);
  UNLOCK();
  return r;
}

static CUresult copy_op(const char *call, CUstream hs, void *dst, const void *src, size_t bytes, int dst_dev,
                        int src_dev, int async) {
  ENTER();
  NEED_CTX();
  if (!async) {
    CUresult r = capture_forbidden(call);
    if (r) return r;
  }
  if (bytes && (!dst || !src)) return CUDA_ERROR_INVALID_VALUE;
  LOCK();
  CUresult r = CUDA_SUCCESS;
  if (bytes && dst_dev) r = check_dev(call, dst, bytes);
  if (!r && bytes && src_dev) r = check_dev(call, src, bytes);
  struct CUstream_st *s = stream_of(hs);
  if (!r && async && s->capturing && bytes) {
    const void *host = dst_dev ? (src_dev ? NULL : src) : dst;
    if (host && !find_alloc(host, bytes, 1)) {
      note("%s: host memory %p is pageable (not from cuMemAllocHost): not capturable", call, host);
      s->invalidated = 1;
      r = CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    }
  }
  if (!r) {
    op o;
    memset(&o, 0, sizeof o);
    o.kind = OP_COPY;
    o.dst = dst;
    o.src = src;
    o.bytes = bytes;
    r = async ? enqueue(hs, &o) : exec_op(&o);
  }
  UNLOCK();
  return r;
}

MOCK_API CUresult cuMemcpyHtoD_v2(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount) {
  return copy_op("cuMemcpyHtoD", NULL, (void *)(uintptr_t)dstDevice, srcHost, ByteCount, 1, 0, 0);
}
MOCK_API CUresult cuMemcpyDtoH_v2(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount) {
  return copy_op("cuMemcpyDtoH", NULL, dstHost, (const void *)(uintptr_t)srcDevice, ByteCount, 0, 1, 0);
}
MOCK_API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount,
                                       CUstream hStream) {
  return copy_op("cuMemcpyHtoDAsync", hStream, (void *)(uintptr_t)dstDevice, srcHost, ByteCount, 1, 0, 1);
}
MOCK_API CUresult cuMemcpyDtoHAsync_v2(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount, CUstream hStream) {
  return copy_op("cuMemcpyDtoHAsync", hStream, dstHost, (const void *)(uintptr_t)srcDevice, ByteCount, 0, 1, 1);
}
MOCK_API CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dstDevice, CUdeviceptr srcDevice, size_t ByteCount,
                                       CUstream hStream) {
  return copy_op("cuMemcpyDtoDAsync", hStream, (void *)(uintptr_t)dstDevice, (const void *)(uintptr_t)srcDevice,
                 ByteCount, 1, 1, 1);
}
MOCK_API CUresult cuMemsetD8Async(CUdeviceptr dstDevice, unsigned char uc, size_t N, CUstream hStream) {
  ENTER();
  NEED_CTX();
  LOCK();
  CUresult r = N ? check_dev("cuMemsetD8Async", (void *)(uintptr_t)dstDevice, N) : CUDA_SUCCESS;
  if (!r) {
    op o;
    memset(&o, 0, sizeof o);
    o.kind = OP_SET;
    o.dst = (void *)(uintptr_t)dstDevice;
    o.bytes = N;
    o.value = uc;
    r = enqueue(hStream, &o);
  }
  UNLOCK();
  return r;
}

/* ---- streams, graphs, events ----------------------------------------------------------------------- */
MOCK_API CUresult cuStreamCreate(CUstream *phStream, unsigned int Flags) {
  ENTER();
  NEED_CTX();
  if (!phStream || (Flags & ~(unsigned)CU_STREAM_NON_BLOCKING)) return CUDA_ERROR_INVALID_VALUE;
  struct CUstream_st *s = calloc(1, sizeof *s);
  if (!s) return CUDA_ERROR_OUT_OF_MEMORY;
  *phStream = s;
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuStreamDestroy_v2(CUstream hStream) {
  ENTER();
  if (!hStream) return CUDA_ERROR_INVALID_HANDLE;
  if (hStream->capturing) {
    note("cuStreamDestroy: the stream is capturing");
    return CUDA_ERROR_ILLEGAL_STATE;
  }
  free(hStream->ops.v);
  free(hStream);
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuStreamSynchronize(CUstream hStream) {
  ENTER();
  NEED_CTX();
  struct CUstream_st *s = stream_of(hStream);
  if (s->capturing || t_capturing) {
    note("cuStreamSynchronize during stream capture");
    s->invalidated = s->capturing;
    return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  }
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuStreamBeginCapture_v2(CUstream hStream, CUstreamCaptureMode mode) {
  ENTER();
  NEED_CTX();
  if (!hStream) {
    note("cuStreamBeginCapture on the legacy default stream");
    return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  }
  if (hStream->capturing) return CUDA_ERROR_ILLEGAL_STATE;
  if (mode != CU_STREAM_CAPTURE_MODE_THREAD_LOCAL && mode != CU_STREAM_CAPTURE_MODE_GLOBAL &&
      mode != CU_STREAM_CAPTURE_MODE_RELAXED)
    return CUDA_ERROR_INVALID_VALUE;
  hStream->capturing = 1;
  hStream->invalidated = 0;
  hStream->ops.n = 0;
  hStream->capturing = mode == CU_STREAM_CAPTURE_MODE_RELAXED ? 2 : 1;
  if (hStream->capturing == 1) {
    int i = 0;
    while (i < 16 && t_capture_streams[i]) i++;
    if (i == 16) {
      hStream->capturing = 0;
      return CUDA_ERROR_NOT_SUPPORTED;
    }
    t_capture_streams[i] = hStream;
    t_capturing++;
  }
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuStreamEndCapture(CUstream hStream, CUgraph *phGraph) {
  ENTER();
  if (!hStream || !phGraph) return CUDA_ERROR_INVALID_VALUE;
  if (!hStream->capturing) return CUDA_ERROR_ILLEGAL_STATE;
  if (hStream->capturing == 1) {
    t_capturing--;
    for (int i = 0; i < 16; i++)
      if (t_capture_streams[i] == hStream) t_capture_streams[i] = NULL;
  }
  hStream->capturing = 0;
  if (hStream->invalidated) {
    hStream->invalidated = 0;
    hStream->ops.n = 0;
    *phGraph = NULL;
    return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
  }
  struct CUgraph_st *g = calloc(1, sizeof *g);
  if (!g) return CUDA_ERROR_OUT_OF_MEMORY;
  g->ops = hStream->ops; /* hand the list over */
  memset(&hStream->ops, 0, sizeof hStream->ops);
  *phGraph = g;
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuStreamIsCapturing(CUstream hStream, CUstreamCaptureStatus *captureStatus) {
  ENTER();
  if (!captureStatus) return CUDA_ERROR_INVALID_VALUE;
  struct CUstream_st *s = stream_of(hStream);
  *captureStatus = !s->capturing     ? CU_STREAM_CAPTURE_STATUS_NONE
                   : s->invalidated ? CU_STREAM_CAPTURE_STATUS_INVALIDATED
                                    : CU_STREAM_CAPTURE_STATUS_ACTIVE;
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuGraphInstantiateWithFlags(CUgraphExec *phGraphExec, CUgraph hGraph, unsigned long long flags) {
  ENTER();
  if (!phGraphExec) return CUDA_ERROR_INVALID_VALUE;
  if (!hGraph) return CUDA_ERROR_INVALID_HANDLE;
  if (flags != 0) {
    note("cuGraphInstantiateWithFlags: flags %llu are not emulated", flags);
    return CUDA_ERROR_NOT_SUPPORTED;
  }
  struct CUgraphExec_st *x = calloc(1, sizeof *x);
  if (!x) return CUDA_ERROR_OUT_OF_MEMORY;
  if (hGraph->ops.n) {
    x->ops.v = malloc(hGraph->ops.n * sizeof *x->ops.v);
    if (!x->ops.v) {
      free(x);
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
    memcpy(x->ops.v, hGraph->ops.v, hGraph->ops.n * sizeof *x->ops.v);
  }
  x->ops.n = x->ops.cap = hGraph->ops.n;
  *phGraphExec = x;
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream) {
  ENTER();
  NEED_CTX();
  if (!hGraphExec) return CUDA_ERROR_INVALID_HANDLE;
  struct CUstream_st *s = stream_of(hStream);
  if (s->capturing) {
    note("cuGraphLaunch into a capturing stream is not emulated");
    return CUDA_ERROR_NOT_SUPPORTED;
  }
  LOCK();
  CUresult r = CUDA_SUCCESS;
  for (size_t i = 0; i < hGraphExec->ops.n && !r; i++) r = exec_op(&hGraphExec->ops.v[i]);
  UNLOCK();
  return r;
}
MOCK_API CUresult cuGraphExecDestroy(CUgraphExec hGraphExec) {
  ENTER();
  if (!hGraphExec) return CUDA_ERROR_INVALID_HANDLE;
  free(hGraphExec->ops.v);
  free(hGraphExec);
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuGraphDestroy(CUgraph hGraph) {
  ENTER();
  if (!hGraph) return CUDA_ERROR_INVALID_HANDLE;
  free(hGraph->ops.v);
  free(hGraph);
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuEventCreate(CUevent *phEvent, unsigned int Flags) {
  ENTER();
  NEED_CTX();
  if (!phEvent) return CUDA_ERROR_INVALID_VALUE;
  (void)Flags;
  struct CUevent_st *e = calloc(1, sizeof *e);
  if (!e) return CUDA_ERROR_OUT_OF_MEMORY;
  *phEvent = e;
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuEventDestroy_v2(CUevent hEvent) {
  ENTER();
  if (!hEvent) return CUDA_ERROR_INVALID_HANDLE;
  free(hEvent);
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuEventRecord(CUevent hEvent, CUstream hStream) {
  ENTER();
  NEED_CTX();
  if (!hEvent) return CUDA_ERROR_INVALID_HANDLE;
  op o;
  memset(&o, 0, sizeof o);
  o.kind = OP_EVENT;
  o.ev = hEvent;
  LOCK();
  CUresult r = enqueue(hStream, &o);
  UNLOCK();
  return r;
}
MOCK_API CUresult cuEventSynchronize(CUevent hEvent) {
  ENTER();
  if (!hEvent) return CUDA_ERROR_INVALID_HANDLE;
  CUresult r = capture_forbidden("cuEventSynchronize");
  if (r) return r;
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuEventElapsedTime_v2(float *pMilliseconds, CUevent hStart, CUevent hEnd) {
  ENTER();
  if (!pMilliseconds) return CUDA_ERROR_INVALID_VALUE;
  if (!hStart || !hEnd) return CUDA_ERROR_INVALID_HANDLE;
  if (!hStart->recorded || !hEnd->recorded) return CUDA_ERROR_INVALID_HANDLE;
  *pMilliseconds = (float)(hEnd->ms - hStart->ms);
  return CUDA_SUCCESS;
}

/* ==== cuBLASLt ======================================================================================== */
struct cublasLtContext {
  int magic;
};
typedef struct lt_desc {
  int magic;
  cublasComputeType_t compute;
  cudaDataType_t scale_type;
  int trans_a, trans_b;
  int epilogue;
  const void *bias;
  int bias_type;
} lt_desc;
typedef struct lt_pref {
  int magic;
  uint64_t workspace;
} lt_pref;
#define LT_MAGIC_HANDLE 0x4c54484e
#define LT_MAGIC_DESC 0x4c544453
#define LT_MAGIC_LAYOUT 0x4c544c59
#define LT_MAGIC_PREF 0x4c545052
#define LT_MAGIC_ALGO 0x4c54414cull
typedef struct lt_layout {
  int magic;
  lt_layout_s l;
} lt_layout;

static const char *lt_status_names[] = {
    "CUBLAS_STATUS_SUCCESS",          "CUBLAS_STATUS_NOT_INITIALIZED",   "?2", "CUBLAS_STATUS_ALLOC_FAILED", "?4", "?5",
    "?6",                             "CUBLAS_STATUS_INVALID_VALUE",     "CUBLAS_STATUS_ARCH_MISMATCH", "?9", "?10",
    "CUBLAS_STATUS_MAPPING_ERROR",    "?12", "CUBLAS_STATUS_EXECUTION_FAILED", "?14", "CUBLAS_STATUS_NOT_SUPPORTED",
};

MOCK_API size_t cublasLtGetVersion(void) { return 130000; }
MOCK_API const char *cublasLtGetStatusName(cublasStatus_t status) {
  if ((unsigned)status < sizeof lt_status_names / sizeof lt_status_names[0]) return lt_status_names[status];
  return "CUBLAS_STATUS_UNKNOWN";
}
MOCK_API const char *cublasLtGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid value was used as an argument (mock cuBLASLt)";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "feature not supported (mock cuBLASLt)";
    case CUBLAS_STATUS_ALLOC_FAILED: return "resource allocation failed";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "GPU program failed to execute";
    default: return "unknown error";
  }
}
MOCK_API cublasStatus_t cublasLtCreate(cublasLtHandle_t *lightHandle) {
  if (!lightHandle) return CUBLAS_STATUS_INVALID_VALUE;
  if (!g_init || !t_current) return CUBLAS_STATUS_NOT_INITIALIZED;
  struct cublasLtContext *h = calloc(1, sizeof *h);
  if (!h) return CUBLAS_STATUS_ALLOC_FAILED;
  h->magic = LT_MAGIC_HANDLE;
  *lightHandle = h;
  return CUBLAS_STATUS_SUCCESS;
}
MOCK_API cublasStatus_t cublasLtDestroy(cublasLtHandle_t lightHandle) {
  if (!lightHandle || lightHandle->magic != LT_MAGIC_HANDLE) return CUBLAS_STATUS_NOT_INITIALIZED;
  lightHandle->magic = 0;
  free(lightHandle);
  return CUBLAS_STATUS_SUCCESS;
}
MOCK_API cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *matmulDesc, cublasComputeType_t computeType,
                                                 cudaDataType_t scaleType) {
  if (!matmulDesc) return CUBLAS_STATUS_INVALID_VALUE;
  if (computeType != CUBLAS_COMPUTE_32F && computeType != CUBLAS_COMPUTE_32F_FAST_TF32 &&
      computeType != CUBLAS_COMPUTE_32F_FAST_16F && computeType != CUBLAS_COMPUTE_32F_FAST_16BF) {
    note("cublasLtMatmulDescCreate: compute type %d is not emulated", (int)computeType);
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (scaleType != CUDA_R_32F) {
    note("cublasLtMatmulDescCreate: scale type %d is not emulated (only CUDA_R_32F)", (int)scaleType);
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  lt_desc *d = calloc(1, sizeof *d);
  if (!d) return CUBLAS_STATUS_ALLOC_FAILED;
  d->magic = LT_MAGIC_DESC;
  d->compute = computeType;
  d->scale_type = scaleType;
  d->epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  d->bias_type = -1;
  *matmulDesc = (cublasLtMatmulDesc_t)(void *)d;
  return CUBLAS_STATUS_SUCCESS;
}
static lt_desc *desc_of(cublasLtMatmulDesc_t d) {
  lt_desc *x = (lt_desc *)(void *)d;
  return x && x->magic == LT_MAGIC_DESC ? x : NULL;
}
static lt_layout *layout_of(cublasLtMatrixLayout_t l) {
  lt_layout *x = (lt_layout *)(void *)l;
  return x && x->magic == LT_MAGIC_LAYOUT ? x : NULL;
}
MOCK_API cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t matmulDesc) {
  lt_desc *d = desc_of(matmulDesc);
  if (!d) return CUBLAS_STATUS_INVALID_VALUE;
  d->magic = 0;
  free(d);
  return CUBLAS_STATUS_SUCCESS;
}
static int get_int(const void *buf, size_t size, int32_t *out) {
  if (!buf || size != sizeof(int32_t)) return -1;
  memcpy(out, buf, sizeof *out);
  return 0;
}
MOCK_API cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t matmulDesc,
                                                       cublasLtMatmulDescAttributes_t attr, const void *buf,
                                                       size_t sizeInBytes) {
  lt_desc *d = desc_of(matmulDesc);
  if (!d || !buf) return CUBLAS_STATUS_INVALID_VALUE;
  int32_t v;
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
    case CUBLASLT_MATMUL_DESC_TRANSB:
      if (get_int(buf, sizeInBytes, &v) || (v != CUBLAS_OP_N && v != CUBLAS_OP_T)) return CUBLAS_STATUS_INVALID_VALUE;
      if (attr == CUBLASLT_MATMUL_DESC_TRANSA) d->trans_a = v == CUBLAS_OP_T;
      else d->trans_b = v == CUBLAS_OP_T;
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
      if (get_int(buf, sizeInBytes, &v)) return CUBLAS_STATUS_INVALID_VALUE;
      if (v != CUBLASLT_EPILOGUE_DEFAULT && v != CUBLASLT_EPILOGUE_BIAS && v != CUBLASLT_EPILOGUE_RELU &&
          v != CUBLASLT_EPILOGUE_RELU_BIAS && v != CUBLASLT_EPILOGUE_GELU && v != CUBLASLT_EPILOGUE_GELU_BIAS) {
        note("cublasLtMatmulDescSetAttribute: epilogue %d is not emulated", v);
        return CUBLAS_STATUS_NOT_SUPPORTED;
      }
      d->epilogue = v;
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
      if (sizeInBytes != sizeof(void *)) return CUBLAS_STATUS_INVALID_VALUE;
      memcpy(&d->bias, buf, sizeof d->bias);
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE:
      if (get_int(buf, sizeInBytes, &v)) return CUBLAS_STATUS_INVALID_VALUE;
      if (v != CUDA_R_32F && v != CUDA_R_16F && v != CUDA_R_16BF) return CUBLAS_STATUS_NOT_SUPPORTED;
      d->bias_type = v;
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_POINTER_MODE:
      if (get_int(buf, sizeInBytes, &v)) return CUBLAS_STATUS_INVALID_VALUE;
      if (v != CUBLASLT_POINTER_MODE_HOST) {
        note("cublasLtMatmulDescSetAttribute: only host pointer mode is emulated");
        return CUBLAS_STATUS_NOT_SUPPORTED;
      }
      return CUBLAS_STATUS_SUCCESS;
    default:
      note("cublasLtMatmulDescSetAttribute: attribute %d is not emulated", (int)attr);
      return CUBLAS_STATUS_NOT_SUPPORTED;
  }
}
MOCK_API cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *matLayout, cudaDataType type,
                                                   uint64_t rows, uint64_t cols, int64_t ld) {
  if (!matLayout) return CUBLAS_STATUS_INVALID_VALUE;
  if (type != CUDA_R_32F && type != CUDA_R_16F && type != CUDA_R_16BF) {
    note("cublasLtMatrixLayoutCreate: data type %d is not emulated", (int)type);
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (ld < (int64_t)(rows ? rows : 1)) {
    note("cublasLtMatrixLayoutCreate: ld %lld < rows %llu", (long long)ld, (unsigned long long)rows);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  lt_layout *l = calloc(1, sizeof *l);
  if (!l) return CUBLAS_STATUS_ALLOC_FAILED;
  l->magic = LT_MAGIC_LAYOUT;
  l->l.type = type;
  l->l.rows = rows;
  l->l.cols = cols;
  l->l.ld = ld;
  l->l.batch = 1;
  l->l.stride = 0;
  *matLayout = (cublasLtMatrixLayout_t)(void *)l;
  return CUBLAS_STATUS_SUCCESS;
}
MOCK_API cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t matLayout) {
  lt_layout *l = layout_of(matLayout);
  if (!l) return CUBLAS_STATUS_INVALID_VALUE;
  l->magic = 0;
  free(l);
  return CUBLAS_STATUS_SUCCESS;
}
MOCK_API cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t matLayout,
                                                         cublasLtMatrixLayoutAttribute_t attr, const void *buf,
                                                         size_t sizeInBytes) {
  lt_layout *l = layout_of(matLayout);
  if (!l || !buf) return CUBLAS_STATUS_INVALID_VALUE;
  int32_t v;
  switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT:
      if (get_int(buf, sizeInBytes, &v) || v < 1) return CUBLAS_STATUS_INVALID_VALUE;
      l->l.batch = v;
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET:
      if (sizeInBytes != sizeof(int64_t)) return CUBLAS_STATUS_INVALID_VALUE;
      memcpy(&l->l.stride, buf, sizeof l->l.stride);
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATRIX_LAYOUT_ORDER:
      if (get_int(buf, sizeInBytes, &v)) return CUBLAS_STATUS_INVALID_VALUE;
      if (v != CUBLASLT_ORDER_COL) {
        note("cublasLtMatrixLayoutSetAttribute: only column-major order is emulated");
        return CUBLAS_STATUS_NOT_SUPPORTED;
      }
      return CUBLAS_STATUS_SUCCESS;
    default:
      note("cublasLtMatrixLayoutSetAttribute: attribute %d is not emulated", (int)attr);
      return CUBLAS_STATUS_NOT_SUPPORTED;
  }
}
MOCK_API cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref) {
  if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
  lt_pref *p = calloc(1, sizeof *p);
  if (!p) return CUBLAS_STATUS_ALLOC_FAILED;
  p->magic = LT_MAGIC_PREF;
  *pref = (cublasLtMatmulPreference_t)(void *)p;
  return CUBLAS_STATUS_SUCCESS;
}
static lt_pref *pref_of(cublasLtMatmulPreference_t p) {
  lt_pref *x = (lt_pref *)(void *)p;
  return x && x->magic == LT_MAGIC_PREF ? x : NULL;
}
MOCK_API cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  lt_pref *p = pref_of(pref);
  if (!p) return CUBLAS_STATUS_INVALID_VALUE;
  p->magic = 0;
  free(p);
  return CUBLAS_STATUS_SUCCESS;
}
MOCK_API cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                             cublasLtMatmulPreferenceAttributes_t attr,
                                                             const void *buf, size_t sizeInBytes) {
  lt_pref *p = pref_of(pref);
  if (!p || !buf) return CUBLAS_STATUS_INVALID_VALUE;
  switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
      if (sizeInBytes != sizeof(uint64_t)) return CUBLAS_STATUS_INVALID_VALUE;
      memcpy(&p->workspace, buf, sizeof p->workspace);
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: {
      uint32_t a;
      if (sizeInBytes != sizeof a) return CUBLAS_STATUS_INVALID_VALUE;
      memcpy(&a, buf, sizeof a);
      if (a == 0 || (a & (a - 1))) return CUBLAS_STATUS_INVALID_VALUE;
      return CUBLAS_STATUS_SUCCESS;
    }
    default:
      note("cublasLtMatmulPreferenceSetAttribute: attribute %d is not emulated", (int)attr);
      return CUBLAS_STATUS_NOT_SUPPORTED;
  }
}

static size_t lt_type_size(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }

/* Checks the operand shapes of D = op(A) op(B) (+ C): A is m x k after op, B k x n, C and D m x n. */
static cublasStatus_t check_problem(const lt_desc *d, const lt_layout_s *a, const lt_layout_s *b,
                                    const lt_layout_s *c, const lt_layout_s *dd) {
  uint64_t m = dd->rows, n = dd->cols;
  uint64_t am = d->trans_a ? a->cols : a->rows, ak = d->trans_a ? a->rows : a->cols;
  uint64_t bk = d->trans_b ? b->cols : b->rows, bn = d->trans_b ? b->rows : b->cols;
  if (am != m || bn != n || ak != bk || c->rows != m || c->cols != n) {
    note("cuBLASLt: inconsistent shapes: op(A) %llux%llu, op(B) %llux%llu, C %llux%llu, D %llux%llu",
         (unsigned long long)am, (unsigned long long)ak, (unsigned long long)bk, (unsigned long long)bn,
         (unsigned long long)c->rows, (unsigned long long)c->cols, (unsigned long long)m, (unsigned long long)n);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (a->batch != dd->batch || b->batch != dd->batch || c->batch != dd->batch) {
    note("cuBLASLt: batch counts differ: A %d, B %d, C %d, D %d", a->batch, b->batch, c->batch, dd->batch);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (c->type != dd->type) {
    note("cuBLASLt: C type %d differs from D type %d", (int)c->type, (int)dd->type);
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  int f32 = a->type == CUDA_R_32F && b->type == CUDA_R_32F;
  int lowp = (a->type == CUDA_R_16F && b->type == CUDA_R_16F) || (a->type == CUDA_R_16BF && b->type == CUDA_R_16BF);
  if (!f32 && !lowp) {
    note("cuBLASLt: A type %d with B type %d is not a supported combination", (int)a->type, (int)b->type);
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (f32 && dd->type != CUDA_R_32F) {
    note("cuBLASLt: float inputs need a float output");
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (lowp && dd->type != a->type && dd->type != CUDA_R_32F) {
    note("cuBLASLt: %d inputs with output type %d is not supported", (int)a->type, (int)dd->type);
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (d->compute == CUBLAS_COMPUTE_32F_FAST_TF32 && !f32) {
    note("cuBLASLt: COMPUTE_32F_FAST_TF32 with non-float inputs");
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  return CUBLAS_STATUS_SUCCESS;
}

MOCK_API cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t lightHandle,
                                                       cublasLtMatmulDesc_t operationDesc,
                                                       cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                                                       cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                                                       cublasLtMatmulPreference_t preference, int requestedAlgoCount,
                                                       cublasLtMatmulHeuristicResult_t heuristicResultsArray[],
                                                       int *returnAlgoCount) {
  if (!lightHandle || lightHandle->magic != LT_MAGIC_HANDLE) return CUBLAS_STATUS_NOT_INITIALIZED;
  lt_desc *d = desc_of(operationDesc);
  lt_layout *a = layout_of(Adesc), *b = layout_of(Bdesc), *c = layout_of(Cdesc), *dd = layout_of(Ddesc);
  if (!d || !a || !b || !c || !dd || !pref_of(preference) || requestedAlgoCount < 1 || !heuristicResultsArray ||
      !returnAlgoCount)
    return CUBLAS_STATUS_INVALID_VALUE;
  cublasStatus_t s = check_problem(d, &a->l, &b->l, &c->l, &dd->l);
  if (s) return s;
  /* up to three candidates (the same algorithm), so the runtime's tuning runs here too */
  int n = requestedAlgoCount < 3 ? requestedAlgoCount : 3;
  for (int i = 0; i < n; i++) {
    memset(&heuristicResultsArray[i], 0, sizeof heuristicResultsArray[i]);
    heuristicResultsArray[i].algo.data[0] = LT_MAGIC_ALGO;
    heuristicResultsArray[i].algo.data[1] = (uint64_t)i;
    heuristicResultsArray[i].workspaceSize = 0;
    heuristicResultsArray[i].state = CUBLAS_STATUS_SUCCESS;
    heuristicResultsArray[i].wavesCount = 1.0f;
  }
  *returnAlgoCount = n;
  return CUBLAS_STATUS_SUCCESS;
}

static double lt_load(cudaDataType_t t, const void *p, size_t i) {
  if (t == CUDA_R_32F) return ((const float *)p)[i];
  uint16_t h = ((const uint16_t *)p)[i];
  if (t == CUDA_R_16BF) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
  }
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
  if (e == 0) {
    double v = ldexp((double)m, -24);
    return sign ? -v : v;
  }
  if (e == 31) u = sign | 0x7f800000u | (m << 13);
  else u = sign | ((e + 112u) << 23) | (m << 13);
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static uint16_t f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return (uint16_t)(sign | (ax > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
  if (ax < 0x38800000u) {
    if (ax < 0x33000000u) return (uint16_t)sign;
    uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u, shift = 126u - e;
    uint32_t r = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (r & 1u))) r++;
    return (uint16_t)(sign | r);
  }
  uint32_t r = (ax - 0x38000000u) >> 13, rem = ax & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++;
  return (uint16_t)(sign | r);
}
static uint16_t f32_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1u);
  return (uint16_t)(x >> 16);
}
static void lt_store(cudaDataType_t t, void *p, size_t i, double v) {
  float f = (float)v;
  if (t == CUDA_R_32F) ((float *)p)[i] = f;
  else if (t == CUDA_R_16F) ((uint16_t *)p)[i] = f32_to_f16(f);
  else ((uint16_t *)p)[i] = f32_to_bf16(f);
}
static float tf32_round(float f) { /* cvt.rna.tf32.f32 */
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  memcpy(&f, &u, 4);
  return f;
}

/* Extent in bytes of a batched column-major operand. */
static size_t lt_extent(const lt_layout_s *l) {
  if (!l->rows || !l->cols) return 0;
  uint64_t last = (uint64_t)(l->batch - 1) * (uint64_t)(l->stride < 0 ? 0 : l->stride) +
                  (l->cols - 1) * (uint64_t)l->ld + l->rows;
  return (size_t)last * lt_type_size(l->type);
}

static CUresult gemm_exec(const gemm_call *g) {
  uint64_t m = g->d.rows, n = g->d.cols, k = g->trans_a ? g->a.rows : g->a.cols;
  int tf32 = g->compute == CUBLAS_COMPUTE_32F_FAST_TF32;
  double *A = malloc((size_t)(m * k + 1) * sizeof *A), *B = malloc((size_t)(n * k + 1) * sizeof *B);
  if (!A || !B) {
    free(A);
    free(B);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  int bias = g->epilogue == CUBLASLT_EPILOGUE_BIAS || g->epilogue == CUBLASLT_EPILOGUE_RELU_BIAS ||
             g->epilogue == CUBLASLT_EPILOGUE_GELU_BIAS;
  int relu = g->epilogue == CUBLASLT_EPILOGUE_RELU || g->epilogue == CUBLASLT_EPILOGUE_RELU_BIAS;
  int gelu = g->epilogue == CUBLASLT_EPILOGUE_GELU || g->epilogue == CUBLASLT_EPILOGUE_GELU_BIAS;
  cudaDataType_t bt = g->bias_type < 0 ? g->d.type : (cudaDataType_t)g->bias_type;
  for (int32_t bi = 0; bi < g->d.batch; bi++) {
    const char *pa = (const char *)g->A + (size_t)bi * (size_t)g->a.stride * lt_type_size(g->a.type);
    const char *pb = (const char *)g->B + (size_t)bi * (size_t)g->b.stride * lt_type_size(g->b.type);
    const char *pc = g->C ? (const char *)g->C + (size_t)bi * (size_t)g->c.stride * lt_type_size(g->c.type) : NULL;
    char *pd = (char *)g->D + (size_t)bi * (size_t)g->d.stride * lt_type_size(g->d.type);
    /* A[i][kk] = op(A)(i, kk); B[j][kk] = op(B)(kk, j) */
    for (uint64_t i = 0; i < m; i++)
      for (uint64_t kk = 0; kk < k; kk++) {
        size_t idx = g->trans_a ? (size_t)(kk + i * (uint64_t)g->a.ld) : (size_t)(i + kk * (uint64_t)g->a.ld);
        double v = lt_load(g->a.type, pa, idx);
        A[i * k + kk] = tf32 ? (double)tf32_round((float)v) : v;
      }
    for (uint64_t j = 0; j < n; j++)
      for (uint64_t kk = 0; kk < k; kk++) {
        size_t idx = g->trans_b ? (size_t)(j + kk * (uint64_t)g->b.ld) : (size_t)(kk + j * (uint64_t)g->b.ld);
        double v = lt_load(g->b.type, pb, idx);
        B[j * k + kk] = tf32 ? (double)tf32_round((float)v) : v;
      }
    for (uint64_t j = 0; j < n; j++)
      for (uint64_t i = 0; i < m; i++) {
        const double *ra = A + i * k, *rb = B + j * k;
        double acc = 0;
        for (uint64_t kk = 0; kk < k; kk++) acc += ra[kk] * rb[kk];
        double v = g->alpha * acc;
        if (g->beta != 0.0) v += g->beta * lt_load(g->c.type, pc, (size_t)(i + j * (uint64_t)g->c.ld));
        if (bias) v += lt_load(bt, g->bias, (size_t)i);
        if (relu) v = v > 0 ? v : 0;
        if (gelu) v = 0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
        lt_store(g->d.type, pd, (size_t)(i + j * (uint64_t)g->d.ld), v);
      }
  }
  free(A);
  free(B);
  return CUDA_SUCCESS;
}

MOCK_API cublasStatus_t cublasLtMatmul(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc,
                                       const void *alpha, const void *A, cublasLtMatrixLayout_t Adesc, const void *B,
                                       cublasLtMatrixLayout_t Bdesc, const void *beta, const void *C,
                                       cublasLtMatrixLayout_t Cdesc, void *D, cublasLtMatrixLayout_t Ddesc,
                                       const cublasLtMatmulAlgo_t *algo, void *workspace,
                                       size_t workspaceSizeInBytes, cudaStream_t stream) {
  if (!g_init || g_sticky) return CUBLAS_STATUS_EXECUTION_FAILED;
  if (!lightHandle || lightHandle->magic != LT_MAGIC_HANDLE) return CUBLAS_STATUS_NOT_INITIALIZED;
  lt_desc *d = desc_of(computeDesc);
  lt_layout *a = layout_of(Adesc), *b = layout_of(Bdesc), *c = layout_of(Cdesc), *dd = layout_of(Ddesc);
  if (!d || !a || !b || !c || !dd || !alpha || !beta || !A || !B || !D) {
    note("cublasLtMatmul: NULL or invalid argument");
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (algo && algo->data[0] != LT_MAGIC_ALGO) {
    note("cublasLtMatmul: the algorithm does not come from cublasLtMatmulAlgoGetHeuristic");
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (workspaceSizeInBytes && !workspace) return CUBLAS_STATUS_INVALID_VALUE;
  cublasStatus_t s = check_problem(d, &a->l, &b->l, &c->l, &dd->l);
  if (s) return s;
  gemm_call g;
  memset(&g, 0, sizeof g);
  g.compute = d->compute;
  g.scale_type = d->scale_type;
  g.trans_a = d->trans_a;
  g.trans_b = d->trans_b;
  g.epilogue = d->epilogue;
  g.bias = d->bias;
  g.bias_type = d->bias_type;
  g.a = a->l;
  g.b = b->l;
  g.c = c->l;
  g.d = dd->l;
  g.alpha = *(const float *)alpha;
  g.beta = *(const float *)beta;
  g.A = A;
  g.B = B;
  g.C = g.beta != 0.0 ? C : NULL;
  g.D = D;
  int has_bias = d->epilogue == CUBLASLT_EPILOGUE_BIAS || d->epilogue == CUBLASLT_EPILOGUE_RELU_BIAS ||
                 d->epilogue == CUBLASLT_EPILOGUE_GELU_BIAS;
  LOCK();
  CUresult r = CUDA_SUCCESS;
  const char *what = "A";
  if (lt_extent(&g.a)) r = check_dev("cublasLtMatmul operand A", A, lt_extent(&g.a));
  if (!r && lt_extent(&g.b)) r = check_dev("cublasLtMatmul operand B", B, lt_extent(&g.b)), what = "B";
  if (!r && g.C && lt_extent(&g.c)) r = check_dev("cublasLtMatmul operand C", C, lt_extent(&g.c)), what = "C";
  if (!r && lt_extent(&g.d)) r = check_dev("cublasLtMatmul operand D", D, lt_extent(&g.d)), what = "D";
  if (!r && has_bias) {
    cudaDataType_t bt = d->bias_type < 0 ? g.d.type : (cudaDataType_t)d->bias_type;
    what = "bias";
    r = g.bias ? check_dev("cublasLtMatmul bias", g.bias, (size_t)g.d.rows * lt_type_size(bt))
               : CUDA_ERROR_INVALID_VALUE;
  }
  if (!r) {
    op o;
    memset(&o, 0, sizeof o);
    o.kind = OP_GEMM;
    o.gemm = g;
    r = enqueue((CUstream)stream, &o);
  }
  UNLOCK();
  if (r) {
    note("cublasLtMatmul failed (operand %s, CUresult %d)", what, (int)r);
    return r == CUDA_ERROR_OUT_OF_MEMORY ? CUBLAS_STATUS_ALLOC_FAILED
           : r == CUDA_ERROR_INVALID_VALUE ? CUBLAS_STATUS_INVALID_VALUE
                                           : CUBLAS_STATUS_EXECUTION_FAILED;
  }
  return CUBLAS_STATUS_SUCCESS;
}

/* Statistics for the test scripts: printed at exit when DRT_MOCK_CUDA_STATS is set. */
__attribute__((destructor)) static void mock_stats(void) {
  if (getenv("DRT_MOCK_CUDA_STATS"))
    fprintf(stderr, "mock_cuda: %llu kernel launches (%llu with programmatic dependent launch), %llu GEMMs, %llu "
            "copies, %zu live allocations\n", g_launches, mock_pdl_launches, g_gemms, g_copies, g_nallocs);
}

/* Every symbol of runtime/cuda/symbols.def, with the exact type: a mismatch fails the build. */
#define DRT_CU_SYM(name, ret, params) __attribute__((unused)) static ret(*const check_##name) params = name;
#define DRT_CUBLASLT_SYM(name, ret, params) __attribute__((unused)) static ret(*const check_##name) params = name;
#include "runtime/cuda/symbols.def"
