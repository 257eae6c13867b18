/* CUDA emulator: compiles a CUDA C translation unit (the generated program: codegen/kernels/*.cuh
 * followed by the generated wrappers) as C++17 with g++ and runs its kernels on the CPU.
 *
 *   g++ -std=c++17 -O1 -fPIC -shared -fvisibility=hidden -fno-strict-aliasing -fcf-protection=none \
 *       -I tests/cuda_emu/include -include tests/cuda_emu/emu.h -x c++ program.cu -o kernels.so
 *
 * (tests/cuda_emu/build_kernels.sh does exactly this.) Every __global__ function is exported; a
 * kernel `extern "C" __global__ void NAME(drt_kargs a)` is launched with
 *
 *   int drt_emu_launch(const void *kernel, const unsigned grid[3], const unsigned block[3],
 *                      size_t dynamic_smem, const void *kargs);   (0: ok, else drt_emu_error())
 *
 * where `kernel` = dlsym(handle, "NAME") and kargs points to the 256-byte drt_kargs.
 *
 * Execution model: blocks run one after the other on the calling OS thread; the threads of a block
 * are fibers (own stacks, 256 KB each by default, env DRT_EMU_STACK_KB) that switch only at
 * __syncthreads / __syncwarp / warp collectives (shuffles, votes), so everything in between runs
 * atomically and atomics are plain read-modify-writes. __shared__ is `thread_local` (per OS thread
 * = per block, since blocks run serially); `extern __shared__` dynamic shared memory must be the
 * one array `drt_smem` (defined here, 227 KB, filled with 0xFF = NaN at every launch so kernels
 * that read it before writing it show up). wmma fragments hold the WHOLE tile in every thread:
 * load/store/fill/mma_sync work on the full tile, x[] / num_elements span the full tile.
 * Not supported: inline PTX (guard it with #ifndef DRT_EMU), cooperative groups, cp.async,
 * textures. Deadlocks (a barrier not reached by every live thread) are reported as launch errors. */
#ifndef DRT_CUDA_EMU_H
#define DRT_CUDA_EMU_H

#ifndef __cplusplus
#error "emu.h is C++ (compile the CUDA source with g++ -x c++ -std=c++17)"
#endif

#define DRT_EMU 1
#ifndef __CUDA_ARCH__
#define __CUDA_ARCH__ 900
#endif

/* The real toolkit headers are never used: their guards are taken (tests/cuda_emu/include has
 * empty replacements too, for -I ordering). */
#define __CUDA_FP16_H__
#define __CUDA_FP16_HPP__
#define __CUDA_BF16_H__
#define __CUDA_BF16_HPP__
#define __CUDA_MMA_H__
#define __CUDA_MMA_HPP__
#define __CUDA_RUNTIME_H__
#define __VECTOR_TYPES_H__
#define __VECTOR_FUNCTIONS_H__
#define __DEVICE_FUNCTIONS_H__

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <dlfcn.h>
#include <link.h>

#include <cassert>
#include <cmath>
#include <type_traits>
#include <utility>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

/* ---- keywords ---------------------------------------------------------------------------------- */
#define __global__ __attribute__((visibility("default")))
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __grid_constant__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __inline__ inline
#define __launch_bounds__(...)
#define __maxnreg__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ thread_local
#define __CUDA_ALIGN__(n) __attribute__((aligned(n)))
#ifndef __builtin_assume
#define __builtin_assume(x) ((void)0)
#endif

#define DRT_EMU_API extern "C" __attribute__((visibility("default"), weak))

/* ---- vector types -------------------------------------------------------------------------------- */
#define DRT_EMU_VEC(T, N, A)                                                                               \
  struct __attribute__((aligned(A))) T##1 { N x; };                                                         \
  struct __attribute__((aligned(A * 2))) T##2 { N x, y; };                                                  \
  struct T##3 { N x, y, z; };                                                                               \
  struct __attribute__((aligned(A * 4 > 16 ? 16 : A * 4))) T##4 { N x, y, z, w; };                          \
  static inline T##1 make_##T##1(N x) { T##1 r = {x}; return r; }                                          \
  static inline T##2 make_##T##2(N x, N y) { T##2 r = {x, y}; return r; }                                   \
  static inline T##3 make_##T##3(N x, N y, N z) { T##3 r = {x, y, z}; return r; }                           \
  static inline T##4 make_##T##4(N x, N y, N z, N w) { T##4 r = {x, y, z, w}; return r; }
DRT_EMU_VEC(char, signed char, 1)
DRT_EMU_VEC(uchar, unsigned char, 1)
DRT_EMU_VEC(short, short, 2)
DRT_EMU_VEC(ushort, unsigned short, 2)
DRT_EMU_VEC(int, int, 4)
DRT_EMU_VEC(uint, unsigned int, 4)
DRT_EMU_VEC(long, long, 8)
DRT_EMU_VEC(ulong, unsigned long, 8)
DRT_EMU_VEC(longlong, long long, 8)
DRT_EMU_VEC(ulonglong, unsigned long long, 8)
DRT_EMU_VEC(float, float, 4)
DRT_EMU_VEC(double, double, 8)
#undef DRT_EMU_VEC

struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};

/* ---- builtin variables (set by the scheduler for the running fiber) ------------------------------ */
inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;
static constexpr int warpSize = 32;

/* ---- dynamic shared memory ----------------------------------------------------------------------- */
#define DRT_EMU_MAX_DYN_SMEM 232448 /* sm_90 opt-in maximum */
thread_local __attribute__((aligned(128))) unsigned char drt_smem[DRT_EMU_MAX_DYN_SMEM];

/* ---- fibers and the block scheduler -------------------------------------------------------------- */
#if defined(__x86_64__)
extern "C" __attribute__((visibility("hidden"))) void drt_emu_swap(void **save_sp, void *to_sp);
__asm__(".text\n"
        ".weak drt_emu_swap\n"
        ".hidden drt_emu_swap\n"
        ".type drt_emu_swap,@function\n"
        ".p2align 4\n"
        "drt_emu_swap:\n"
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  subq $8, %rsp\n"
        "  stmxcsr (%rsp)\n"
        "  fnstcw 4(%rsp)\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  ldmxcsr (%rsp)\n"
        "  fldcw 4(%rsp)\n"
        "  addq $8, %rsp\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  ret\n"
        ".size drt_emu_swap,.-drt_emu_swap\n");
#endif

namespace drt_emu {

struct kargs_abi {
  unsigned long long u[32];
};
typedef void (*kernel_fn)(kargs_abi);

enum { F_NEW = 0, F_RUN = 1, F_WAIT_BLOCK = 2, F_WAIT_WARP = 3, F_DONE = 4 };

struct fiber {
#if defined(__x86_64__)
  void *sp;
#else
  ucontext_t uc;
#endif
  char *stack;
  int state;
  unsigned tid;
  uint3 idx;
  unsigned shfl_gen;  /* warp exchanges done (parity selects the slot bank) */
  unsigned mma_gen;   /* wmma::mma_sync calls done */
  unsigned bar_gen;   /* block barriers done */
};

/* wmma::mma_sync is warp-collective: the first lane computes the tile, the others check that
 * their fragments are the same and copy the result (largest shape: 32x8x16 / 16x16x16). */
struct mma_cache {
  unsigned tag; /* mma_gen + 1 of the cached call, 0: none */
  int m, n, k;
  float a[512], b[512], c[256], d[256];
};

struct warp {
  int live, arrived;
  unsigned long long slot[2][32];
  mma_cache mma;
};

/* Plain data, zero-initialized per OS thread (no TLS init function on every access). */
struct sched {
  fiber *fibers;
  int cap_fibers;
  int nthreads;
  warp *warps;
  int cap_warps;
  int nwarps;
  int live, arrived;
  int bar_acc[2]; /* __syncthreads_count/and/or, by barrier parity */
  char **free_stacks;
  int nfree, cap_free;
  size_t stack_size;
#if defined(__x86_64__)
  void *main_sp;
#else
  ucontext_t main_uc;
#endif
  fiber *cur;
  kernel_fn fn;
  kargs_abi args;
  size_t smem; /* the launch's dynamic shared memory bytes */
  int failed;
  char error[512];
};

inline thread_local sched S;
inline thread_local char last_error[512];

inline void set_error(const char *fmt, const char *a = "", long long b = 0, long long c = 0) {
  snprintf(S.error, sizeof S.error, fmt, a, b, c);
  S.failed = 1;
}

inline size_t stack_bytes() {
  if (!S.stack_size) {
    const char *e = getenv("DRT_EMU_STACK_KB");
    long kb = e ? atol(e) : 256;
    if (kb < 32) kb = 32;
    S.stack_size = (size_t)kb * 1024;
  }
  return S.stack_size;
}

/* Stacks are mmap'ed with a guard page at the bottom and recycled across threads, blocks and
 * launches (a thread that finishes without waiting hands its stack to the next one). */
inline char *get_stack() {
  if (S.nfree) return S.free_stacks[--S.nfree];
  size_t sz = stack_bytes() + 4096;
  void *p = mmap(nullptr, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  mprotect(p, 4096, PROT_NONE);
  return (char *)p;
}
inline void put_stack(char *s) {
  if (S.nfree == S.cap_free) {
    int cap = S.cap_free ? S.cap_free * 2 : 64;
    char **n = (char **)realloc(S.free_stacks, sizeof(char *) * (size_t)cap);
    if (!n) {
      munmap(s, stack_bytes() + 4096);
      return;
    }
    S.free_stacks = n;
    S.cap_free = cap;
  }
  S.free_stacks[S.nfree++] = s;
}

inline void set_builtins(const fiber *f) { threadIdx = f->idx; }

/* Switch from the running fiber back to the scheduler. */
inline void yield_to_main() {
  fiber *f = S.cur;
#if defined(__x86_64__)
  drt_emu_swap(&f->sp, S.main_sp);
#else
  swapcontext(&f->uc, &S.main_uc);
#endif
  /* resumed by the scheduler, which set S.cur and the builtins */
}

inline void release_block() {
  S.arrived = 0;
  for (int i = 0; i < S.nthreads; i++)
    if (S.fibers[i].state == F_WAIT_BLOCK) S.fibers[i].state = F_RUN;
}
inline void release_warp(int w) {
  S.warps[w].arrived = 0;
  int lo = w * 32, hi = lo + 32 < S.nthreads ? lo + 32 : S.nthreads;
  for (int i = lo; i < hi; i++)
    if (S.fibers[i].state == F_WAIT_WARP) S.fibers[i].state = F_RUN;
}

/* __syncthreads: every live thread of the block arrives (exited threads count as arrived). */
inline void block_barrier() {
  fiber *f = S.cur;
  f->bar_gen++;
  if (++S.arrived >= S.live) {
    release_block();
    return;
  }
  f->state = F_WAIT_BLOCK;
  yield_to_main();
}

/* Barrier among the live threads of the calling thread's warp. */
inline void warp_barrier() {
  fiber *f = S.cur;
  int w = (int)(f->tid / 32);
  warp &W = S.warps[w];
  if (++W.arrived >= W.live) {
    release_warp(w);
    return;
  }
  f->state = F_WAIT_WARP;
  yield_to_main();
}

[[noreturn]] inline void fail_here(const char *what) {
  if (!S.failed) set_error("%s (thread %lld of block)", what, (long long)S.cur->tid);
  S.cur->state = F_DONE;
#if defined(__x86_64__)
  void *dummy;
  drt_emu_swap(&dummy, S.main_sp);
#else
  setcontext(&S.main_uc);
#endif
  __builtin_unreachable();
}

inline void fiber_exit() {
  fiber *f = S.cur;
  f->state = F_DONE;
  S.live--;
  int w = (int)(f->tid / 32);
  S.warps[w].live--;
  if (S.arrived > 0 && S.arrived >= S.live) release_block();
  if (S.warps[w].arrived > 0 && S.warps[w].arrived >= S.warps[w].live) release_warp(w);
}

#if defined(__x86_64__)
[[noreturn]] inline void fiber_entry() {
  S.fn(S.args);
  fiber_exit();
  void *dummy;
  drt_emu_swap(&dummy, S.main_sp);
  __builtin_unreachable();
}
#else
inline void fiber_entry_uc() {
  S.fn(S.args);
  fiber_exit();
}
#endif

inline int start_fiber(fiber *f) {
  f->stack = get_stack();
  if (!f->stack) {
    set_error("out of memory for fiber stacks%s", "");
    return -1;
  }
  char *top = f->stack + 4096 + stack_bytes();
#if defined(__x86_64__)
  uint64_t *sp = (uint64_t *)((uintptr_t)top & ~(uintptr_t)15);
  *--sp = 0;                            /* fake return address of fiber_entry */
  *--sp = (uint64_t)(uintptr_t)&fiber_entry; /* popped by ret */
  for (int i = 0; i < 6; i++) *--sp = 0; /* rbp rbx r12 r13 r14 r15 */
  --sp;
  unsigned mx;
  unsigned short cw;
  __asm__ volatile("stmxcsr %0" : "=m"(mx));
  __asm__ volatile("fnstcw %0" : "=m"(cw));
  memcpy(sp, &mx, 4);
  memcpy((char *)sp + 4, &cw, 2);
  f->sp = sp;
#else
  getcontext(&f->uc);
  f->uc.uc_stack.ss_sp = f->stack + 4096;
  f->uc.uc_stack.ss_size = stack_bytes();
  f->uc.uc_link = &S.main_uc;
  makecontext(&f->uc, (void (*)())fiber_entry_uc, 0);
#endif
  f->state = F_RUN;
  return 0;
}

inline void switch_to(fiber *f) {
  S.cur = f;
  set_builtins(f);
#if defined(__x86_64__)
  drt_emu_swap(&S.main_sp, f->sp);
#else
  swapcontext(&S.main_uc, &f->uc);
#endif
  S.cur = nullptr;
}

inline int ensure_capacity(int nthreads) {
  if (nthreads > S.cap_fibers) {
    fiber *nf = (fiber *)realloc(S.fibers, sizeof(fiber) * (size_t)nthreads);
    if (!nf) return -1;
    S.fibers = nf;
    S.cap_fibers = nthreads;
  }
  int nw = (nthreads + 31) / 32;
  if (nw > S.cap_warps) {
    warp *nw_ = (warp *)realloc(S.warps, sizeof(warp) * (size_t)nw);
    if (!nw_) return -1;
    S.warps = nw_;
    S.cap_warps = nw;
  }
  return 0;
}

/* Runs one block to completion. Returns 0 or -1 (S.error set). */
inline int run_block(const dim3 &block) {
  int n = S.nthreads;
  for (int i = 0; i < n; i++) {
    fiber &f = S.fibers[i];
    f.stack = nullptr;
    f.state = F_NEW;
    f.tid = (unsigned)i;
    f.idx.x = (unsigned)i % block.x;
    f.idx.y = ((unsigned)i / block.x) % block.y;
    f.idx.z = (unsigned)i / (block.x * block.y);
    f.shfl_gen = 0;
    f.mma_gen = 0;
    f.bar_gen = 0;
  }
  for (int w = 0; w < S.nwarps; w++) {
    S.warps[w].arrived = 0;
    S.warps[w].mma.tag = 0;
    S.warps[w].live = (w + 1) * 32 <= n ? 32 : n - w * 32;
  }
  S.live = n;
  S.arrived = 0;
  int done = 0;
  int rc = 0;
  while (done < n) {
    bool progress = false;
    for (int i = 0; i < n; i++) {
      fiber *f = &S.fibers[i];
      if (f->state == F_NEW) {
        if (start_fiber(f)) {
          rc = -1;
          break;
        }
      }
      if (f->state != F_RUN) continue;
      progress = true;
      switch_to(f);
      if (S.failed) {
        rc = -1;
        break;
      }
      if (f->state == F_DONE) {
        put_stack(f->stack);
        f->stack = nullptr;
        done++;
      }
    }
    if (rc) break;
    if (!progress) {
      int wb = 0, ww = 0;
      for (int i = 0; i < n; i++) {
        wb += S.fibers[i].state == F_WAIT_BLOCK;
        ww += S.fibers[i].state == F_WAIT_WARP;
      }
      snprintf(S.error, sizeof S.error,
               "deadlock: %d threads wait at __syncthreads, %d at a warp collective, %d exited (block of %d)", wb, ww,
               n - S.live, n);
      S.failed = 1;
      rc = -1;
      break;
    }
  }
  if (rc) { /* abandon suspended fibers: nothing on their stacks needs destruction */
    for (int i = 0; i < n; i++)
      if (S.fibers[i].stack) {
        put_stack(S.fibers[i].stack);
        S.fibers[i].stack = nullptr;
      }
  }
  return rc;
}

/* Static __shared__ arrays are thread_local variables of this module: before every block, the
 * module's TLS block (minus drt_smem, poisoned per launch, and the emulator's own state) is filled
 * with 0xFF, so a kernel that reads shared memory it did not write in this block sees NaN / -1
 * instead of the previous block's data or zeros. DRT_EMU_SHARED_POISON=0 disables it. */
struct tls_info {
  unsigned char *block;
  size_t size;
};
inline int find_tls_phdr(struct dl_phdr_info *info, size_t, void *data) {
  uintptr_t *want = (uintptr_t *)data; /* [0]: our base in, [1]: p_memsz out */
  if ((uintptr_t)info->dlpi_addr != want[0]) return 0;
  for (int i = 0; i < info->dlpi_phnum; i++)
    if (info->dlpi_phdr[i].p_type == PT_TLS) want[1] = (uintptr_t)info->dlpi_phdr[i].p_memsz;
  return 1;
}
inline tls_info module_tls() {
  tls_info t = {nullptr, 0};
  const char *e = getenv("DRT_EMU_SHARED_POISON");
  if (e && e[0] == '0') return t;
  Dl_info di;
  if (!dladdr((const void *)&drt_smem, &di) || !di.dli_fname) {
    /* dladdr on a TLS variable may fail: use a function of this module instead */
    if (!dladdr((const void *)&module_tls, &di) || !di.dli_fname) return t;
  }
  void *h = dlopen(di.dli_fname, RTLD_NOW | RTLD_NOLOAD);
  if (!h) return t;
  void *blk = nullptr;
  uintptr_t want[2] = {(uintptr_t)di.dli_fbase, 0};
  if (dlinfo(h, RTLD_DI_TLS_DATA, &blk) == 0 && blk) {
    dl_iterate_phdr(find_tls_phdr, want);
    /* dli_fbase is the load address; dlpi_addr is the load bias: equal for shared objects linked at 0 */
    if (want[1]) {
      t.block = (unsigned char *)blk;
      t.size = (size_t)want[1];
    }
  }
  dlclose(h);
  return t;
}
inline void poison_static_shared(const tls_info &t) {
  if (!t.block) return;
  static_assert(sizeof(sched) < 8192, "sched too large to save on the stack");
  unsigned char save_s[sizeof(sched)], save_err[sizeof last_error];
  uint3 ti = threadIdx, bi = blockIdx;
  dim3 bd = blockDim, gd = gridDim;
  memcpy(save_s, (const void *)&S, sizeof S);
  memcpy(save_err, last_error, sizeof last_error);
  unsigned char *lo = drt_smem, *hi = drt_smem + sizeof drt_smem, *end = t.block + t.size;
  if (lo > t.block) memset(t.block, 0xFF, (size_t)((lo < end ? lo : end) - t.block));
  if (hi < end) memset(hi > t.block ? hi : t.block, 0xFF, (size_t)(end - (hi > t.block ? hi : t.block)));
  memcpy((void *)&S, save_s, sizeof S);
  memcpy(last_error, save_err, sizeof last_error);
  threadIdx = ti;
  blockIdx = bi;
  blockDim = bd;
  gridDim = gd;
}

inline int launch(const void *kernel, const unsigned grid[3], const unsigned block[3], size_t smem,
                  const void *kargs) {
  S.failed = 0;
  S.error[0] = 0;
  last_error[0] = 0;
  if (S.cur) {
    snprintf(last_error, sizeof last_error, "drt_emu_launch called from inside a kernel");
    return -1;
  }
  unsigned long long nthreads = (unsigned long long)block[0] * block[1] * block[2];
  if (!kernel || nthreads == 0 || nthreads > 1024 || block[2] > 64 || grid[0] == 0 || grid[1] == 0 ||
      grid[2] == 0 || grid[1] > 65535 || grid[2] > 65535) {
    snprintf(last_error, sizeof last_error, "invalid launch configuration: grid (%u,%u,%u) block (%u,%u,%u)%s",
             grid[0], grid[1], grid[2], block[0], block[1], block[2], kernel ? "" : " (NULL kernel)");
    return -1;
  }
  if (smem > DRT_EMU_MAX_DYN_SMEM) {
    snprintf(last_error, sizeof last_error, "dynamic shared memory %zu bytes exceeds the %d-byte maximum", smem,
             DRT_EMU_MAX_DYN_SMEM);
    return -1;
  }
  if (ensure_capacity((int)nthreads)) {
    snprintf(last_error, sizeof last_error, "out of memory");
    return -1;
  }
  S.nthreads = (int)nthreads;
  S.nwarps = (int)((nthreads + 31) / 32);
  S.fn = (kernel_fn)kernel;
  S.smem = smem;
  memcpy(&S.args, kargs, sizeof S.args);
  if (smem) memset(drt_smem, 0xFF, smem);
  dim3 g(grid[0], grid[1], grid[2]), b(block[0], block[1], block[2]);
  tls_info tls = module_tls();
  gridDim = g;
  blockDim = b;
  for (unsigned z = 0; z < g.z; z++)
    for (unsigned y = 0; y < g.y; y++)
      for (unsigned x = 0; x < g.x; x++) {
        poison_static_shared(tls);
        blockIdx = uint3{x, y, z};
        if (run_block(b)) {
          snprintf(last_error, sizeof last_error, "block (%u,%u,%u): %s", x, y, z, S.error);
          return -1;
        }
      }
  return 0;
}

/* ---- warp exchange ------------------------------------------------------------------------------- */
template <class T> inline unsigned long long to_bits(T v) {
  static_assert(sizeof(T) <= 8, "warp exchange of a type wider than 8 bytes");
  unsigned long long b = 0;
  memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T> inline T from_bits(unsigned long long b) {
  T v;
  memcpy((void *)&v, &b, sizeof(T));
  return v;
}

inline unsigned lane_id() { return S.cur->tid & 31u; }

/* Publishes `v` for the warp, waits for the warp, and returns lane src's value (own value when
 * src is outside the block). */
inline unsigned long long exchange(unsigned long long v, int src) {
  fiber *f = S.cur;
  warp &W = S.warps[f->tid / 32];
  int bank = (int)(f->shfl_gen++ & 1u);
  unsigned lane = f->tid & 31u;
  W.slot[bank][lane] = v;
  warp_barrier();
  int base = (int)(f->tid & ~31u);
  if (src < 0 || src > 31 || base + src >= S.nthreads ||
      S.fibers[base + src].shfl_gen < f->shfl_gen) /* exited before this exchange */
    return v;
  return W.slot[bank][src];
}

/* Gathers one 64-bit value from every live lane; returns the live-lane mask. Lanes that exited
 * or lie past the block give the caller's own value (as exchange()). */
inline unsigned gather(unsigned long long v, unsigned long long out[32]) {
  fiber *f = S.cur;
  warp &W = S.warps[f->tid / 32];
  int bank = (int)(f->shfl_gen++ & 1u);
  W.slot[bank][f->tid & 31u] = v;
  warp_barrier();
  unsigned base = f->tid & ~31u, mask = 0;
  for (unsigned l = 0; l < 32; l++) {
    unsigned t = base + l;
    out[l] = v;
    if ((int)t >= S.nthreads) continue;
    const fiber &g = S.fibers[t];
    if (g.shfl_gen < f->shfl_gen) continue; /* exited before this exchange */
    mask |= 1u << l;
    out[l] = W.slot[bank][l];
  }
  return mask;
}

} /* namespace drt_emu */

DRT_EMU_API int drt_emu_launch(const void *kernel, const unsigned grid[3], const unsigned block[3], size_t smem,
                               const void *kargs) {
  return drt_emu::launch(kernel, grid, block, smem, kargs);
}
DRT_EMU_API const char *drt_emu_error(void) { return drt_emu::last_error; }

/* ---- synchronization and warp intrinsics --------------------------------------------------------- */
static inline void __syncthreads() { drt_emu::block_barrier(); }
static inline int drt_emu_bar_reduce(int v, int op) {
  using namespace drt_emu;
  int p = (int)(S.cur->bar_gen & 1u);
  if (S.arrived == 0) S.bar_acc[p] = op == 1 ? 1 : 0;
  if (op == 0) S.bar_acc[p] += v != 0;
  else if (op == 1) S.bar_acc[p] &= v != 0;
  else S.bar_acc[p] |= v != 0;
  block_barrier();
  return S.bar_acc[p];
}
static inline int __syncthreads_count(int p) { return drt_emu_bar_reduce(p, 0); }
static inline int __syncthreads_and(int p) { return drt_emu_bar_reduce(p, 1); }
static inline int __syncthreads_or(int p) { return drt_emu_bar_reduce(p, 2); }
static inline void __syncwarp(unsigned mask = 0xffffffffu) {
  (void)mask;
  drt_emu::warp_barrier();
}
static inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __threadfence_block() {}
static inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __nanosleep(unsigned) {}
[[noreturn]] static inline void __trap() { drt_emu::fail_here("__trap() called"); }
[[noreturn]] static inline void __brkpt() { drt_emu::fail_here("__brkpt() called"); }
static inline long long clock64() {
  return (long long)__builtin_ia32_rdtsc();
}
static inline unsigned __activemask() {
  using namespace drt_emu;
  unsigned base = S.cur->tid & ~31u, m = 0;
  for (unsigned l = 0; l < 32 && (int)(base + l) < S.nthreads; l++)
    if (S.fibers[base + l].state != F_DONE) m |= 1u << l;
  return m;
}
static inline unsigned __lanemask_lt() { return (1u << (drt_emu::lane_id())) - 1u; }

template <class T> static inline T __shfl_sync(unsigned mask, T var, int src, int width = 32) {
  (void)mask;
  int lane = (int)drt_emu::lane_id();
  int s = (lane & ~(width - 1)) + (src & (width - 1));
  return drt_emu::from_bits<T>(drt_emu::exchange(drt_emu::to_bits(var), s));
}
template <class T> static inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32) {
  (void)mask;
  int lane = (int)drt_emu::lane_id();
  int s = lane ^ lane_mask;
  if ((s & ~(width - 1)) > (lane & ~(width - 1))) s = lane; /* never reads a later segment */
  return drt_emu::from_bits<T>(drt_emu::exchange(drt_emu::to_bits(var), s));
}
template <class T> static inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  (void)mask;
  int lane = (int)drt_emu::lane_id();
  int s = lane + (int)delta;
  if ((s & ~(width - 1)) != (lane & ~(width - 1))) s = lane;
  return drt_emu::from_bits<T>(drt_emu::exchange(drt_emu::to_bits(var), s));
}
template <class T> static inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  (void)mask;
  int lane = (int)drt_emu::lane_id();
  int s = lane - (int)delta;
  if (s < (lane & ~(width - 1))) s = lane;
  return drt_emu::from_bits<T>(drt_emu::exchange(drt_emu::to_bits(var), s));
}
static inline unsigned __ballot_sync(unsigned mask, int pred) {
  unsigned long long v[32];
  unsigned live = drt_emu::gather(pred != 0, v), r = 0;
  for (int l = 0; l < 32; l++)
    if ((live >> l & 1u) && v[l] && (mask >> l & 1u)) r |= 1u << l;
  return r;
}
static inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
static inline int __all_sync(unsigned mask, int pred) {
  unsigned long long v[32];
  unsigned live = drt_emu::gather(pred != 0, v);
  for (int l = 0; l < 32; l++)
    if ((live >> l & 1u) && (mask >> l & 1u) && !v[l]) return 0;
  return 1;
}
static inline unsigned __match_any_sync(unsigned mask, unsigned long long value) {
  unsigned long long v[32];
  unsigned live = drt_emu::gather(value, v) & mask, r = 0;
  for (int l = 0; l < 32; l++)
    if ((live >> l & 1u) && v[l] == value) r |= 1u << l;
  return r;
}
#define DRT_EMU_WARP_REDUCE(NAME, T, INIT, OP)                                                            \
  static inline T NAME(unsigned mask, T value) {                                                          \
    unsigned long long v[32];                                                                             \
    unsigned live = drt_emu::gather((unsigned long long)value, v) & mask;                                 \
    T r = INIT;                                                                                           \
    for (int l = 0; l < 32; l++)                                                                          \
      if (live >> l & 1u) {                                                                               \
        T x = (T)v[l];                                                                                    \
        r = OP;                                                                                           \
      }                                                                                                   \
    return r;                                                                                             \
  }
DRT_EMU_WARP_REDUCE(__reduce_add_sync, unsigned, 0u, r + x)
DRT_EMU_WARP_REDUCE(__reduce_min_sync, unsigned, 0xffffffffu, x < r ? x : r)
DRT_EMU_WARP_REDUCE(__reduce_max_sync, unsigned, 0u, x > r ? x : r)
DRT_EMU_WARP_REDUCE(__reduce_and_sync, unsigned, 0xffffffffu, r &x)
DRT_EMU_WARP_REDUCE(__reduce_or_sync, unsigned, 0u, r | x)
DRT_EMU_WARP_REDUCE(__reduce_xor_sync, unsigned, 0u, r ^ x)
#undef DRT_EMU_WARP_REDUCE
static inline int __reduce_add_sync(unsigned mask, int value) { return (int)__reduce_add_sync(mask, (unsigned)value); }

/* ---- memory access hints ------------------------------------------------------------------------- */
template <class T> static inline T __ldg(const T *p) { return *p; }
template <class T> static inline T __ldcg(const T *p) { return *p; }
template <class T> static inline T __ldca(const T *p) { return *p; }
template <class T> static inline T __ldcs(const T *p) { return *p; }
template <class T> static inline T __ldlu(const T *p) { return *p; }
template <class T> static inline T __ldcv(const T *p) { return *p; }
template <class T> static inline void __stcg(T *p, T v) { *p = v; }
template <class T> static inline void __stcs(T *p, T v) { *p = v; }
template <class T> static inline void __stwb(T *p, T v) { *p = v; }
template <class T> static inline void __stwt(T *p, T v) { *p = v; }
template <class T> static inline void __prefetch_global_L2(const T *) {}

/* ---- atomics (fibers never switch inside them, so plain read-modify-write is atomic) ------------ */
#define DRT_EMU_ATOMIC(T)                                                                                 \
  static inline T atomicAdd(T *p, T v) { T o = *p; *p = (T)(o + v); return o; }                           \
  static inline T atomicSub(T *p, T v) { T o = *p; *p = (T)(o - v); return o; }                           \
  static inline T atomicExch(T *p, T v) { T o = *p; *p = v; return o; }                                   \
  static inline T atomicMin(T *p, T v) { T o = *p; *p = v < o ? v : o; return o; }                        \
  static inline T atomicMax(T *p, T v) { T o = *p; *p = v > o ? v : o; return o; }                        \
  static inline T atomicCAS(T *p, T cmp, T v) { T o = *p; if (o == cmp) *p = v; return o; }               \
  static inline T atomicAdd_block(T *p, T v) { return atomicAdd(p, v); }                                  \
  static inline T atomicAdd_system(T *p, T v) { return atomicAdd(p, v); }
DRT_EMU_ATOMIC(int)
DRT_EMU_ATOMIC(unsigned int)
DRT_EMU_ATOMIC(long long)
DRT_EMU_ATOMIC(unsigned long long)
#undef DRT_EMU_ATOMIC
#define DRT_EMU_ATOMIC_BITS(T)                                                                            \
  static inline T atomicAnd(T *p, T v) { T o = *p; *p = o & v; return o; }                                \
  static inline T atomicOr(T *p, T v) { T o = *p; *p = o | v; return o; }                                 \
  static inline T atomicXor(T *p, T v) { T o = *p; *p = o ^ v; return o; }
DRT_EMU_ATOMIC_BITS(int)
DRT_EMU_ATOMIC_BITS(unsigned int)
DRT_EMU_ATOMIC_BITS(unsigned long long)
#undef DRT_EMU_ATOMIC_BITS
static inline float atomicAdd(float *p, float v) { float o = *p; *p = o + v; return o; }
static inline double atomicAdd(double *p, double v) { double o = *p; *p = o + v; return o; }
static inline float atomicExch(float *p, float v) { float o = *p; *p = v; return o; }
static inline unsigned short atomicCAS(unsigned short *p, unsigned short cmp, unsigned short v) {
  unsigned short o = *p;
  if (o == cmp) *p = v;
  return o;
}
static inline unsigned atomicInc(unsigned *p, unsigned lim) {
  unsigned o = *p;
  *p = o >= lim ? 0 : o + 1;
  return o;
}
static inline unsigned atomicDec(unsigned *p, unsigned lim) {
  unsigned o = *p;
  *p = (o == 0 || o > lim) ? lim : o - 1;
  return o;
}

/* ---- integer / float intrinsics ------------------------------------------------------------------ */
template <class To, class From> static inline To drt_emu_bitcast(From f) {
  static_assert(sizeof(To) == sizeof(From), "bit cast size");
  To t;
  memcpy(&t, &f, sizeof t);
  return t;
}
static inline unsigned __float_as_uint(float x) { return drt_emu_bitcast<unsigned>(x); }
static inline int __float_as_int(float x) { return drt_emu_bitcast<int>(x); }
static inline float __uint_as_float(unsigned x) { return drt_emu_bitcast<float>(x); }
static inline float __int_as_float(int x) { return drt_emu_bitcast<float>(x); }
static inline long long __double_as_longlong(double x) { return drt_emu_bitcast<long long>(x); }
static inline double __longlong_as_double(long long x) { return drt_emu_bitcast<double>(x); }
static inline int __double2hiint(double x) { return (int)(drt_emu_bitcast<unsigned long long>(x) >> 32); }
static inline int __double2loint(double x) { return (int)(unsigned)drt_emu_bitcast<unsigned long long>(x); }
static inline double __hiloint2double(int hi, int lo) {
  return drt_emu_bitcast<double>(((unsigned long long)(unsigned)hi << 32) | (unsigned)lo);
}
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
static inline int __clzll(long long x) { return x ? __builtin_clzll((unsigned long long)x) : 64; }
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int __ffsll(long long x) { return __builtin_ffsll(x); }
static inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; i++) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
static inline unsigned long long __brevll(unsigned long long x) {
  unsigned long long r = 0;
  for (int i = 0; i < 64; i++) r |= ((x >> i) & 1ull) << (63 - i);
  return r;
}
static inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
  unsigned long long v = ((unsigned long long)y << 32) | x;
  unsigned r = 0;
  for (int i = 0; i < 4; i++) r |= (unsigned)((v >> (8 * ((s >> (4 * i)) & 7u))) & 0xffu) << (8 * i);
  return r;
}
static inline unsigned __funnelshift_l(unsigned lo, unsigned hi, unsigned sh) {
  unsigned long long v = ((unsigned long long)hi << 32) | lo;
  return (unsigned)((v << (sh & 31u)) >> 32);
}
static inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned sh) {
  unsigned long long v = ((unsigned long long)hi << 32) | lo;
  return (unsigned)(v >> (sh & 31u));
}
static inline unsigned __funnelshift_lc(unsigned lo, unsigned hi, unsigned sh) {
  return __funnelshift_l(lo, hi, sh > 32 ? 32 : sh);
}
static inline unsigned __funnelshift_rc(unsigned lo, unsigned hi, unsigned sh) {
  unsigned long long v = ((unsigned long long)hi << 32) | lo;
  return (unsigned)(v >> (sh > 32 ? 32 : sh));
}
static inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
static inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
static inline long long __mul64hi(long long a, long long b) { return (long long)(((__int128)a * b) >> 64); }
static inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
static inline int __mul24(int a, int b) { return (int)((long long)((a << 8) >> 8) * ((b << 8) >> 8)); }
static inline unsigned __umul24(unsigned a, unsigned b) { return (a & 0xffffffu) * (b & 0xffffffu); }
static inline int __hadd(int a, int b) { return (int)(((long long)a + b) >> 1); }
static inline int __rhadd(int a, int b) { return (int)(((long long)a + b + 1) >> 1); }
static inline unsigned __uhadd(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a + b) >> 1); }
static inline unsigned __urhadd(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a + b + 1) >> 1); }
static inline unsigned __sad(int a, int b, unsigned c) { return c + (unsigned)(a > b ? a - b : b - a); }
static inline unsigned __usad(unsigned a, unsigned b, unsigned c) { return c + (a > b ? a - b : b - a); }

/* min / max for every arithmetic mix (CUDA's overload set, common-type semantics). */
template <class A, class B>
static inline typename std::enable_if<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value,
                                      typename std::common_type<A, B>::type>::type
min(A a, B b) {
  typedef typename std::common_type<A, B>::type C;
  return (C)a < (C)b ? (C)a : (C)b;
}
template <class A, class B>
static inline typename std::enable_if<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value,
                                      typename std::common_type<A, B>::type>::type
max(A a, B b) {
  typedef typename std::common_type<A, B>::type C;
  return (C)a > (C)b ? (C)a : (C)b;
}
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline double min(double a, double b) { return fmin(a, b); }
static inline double max(double a, double b) { return fmax(a, b); }
static inline unsigned umin(unsigned a, unsigned b) { return a < b ? a : b; }
static inline unsigned umax(unsigned a, unsigned b) { return a > b ? a : b; }
static inline long long llmin(long long a, long long b) { return a < b ? a : b; }
static inline long long llmax(long long a, long long b) { return a > b ? a : b; }
static inline unsigned long long ullmin(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
static inline unsigned long long ullmax(unsigned long long a, unsigned long long b) { return a > b ? a : b; }

/* ---- float math intrinsics ----------------------------------------------------------------------- */
/* glibc declares __expf & co. as its own internal names: map the CUDA intrinsics with macros. */
#define __expf(x) expf(x)
#define __exp10f(x) exp10f(x)
#define __logf(x) logf(x)
#define __log2f(x) log2f(x)
#define __log10f(x) log10f(x)
#define __sinf(x) sinf(x)
#define __cosf(x) cosf(x)
#define __tanf(x) tanf(x)
#define __sincosf(x, s, c) sincosf(x, s, c)
#define __powf(x, y) powf(x, y)
static inline float __fdividef(float a, float b) { return a / b; }
static inline float fdividef(float a, float b) { return a / b; }
static inline float __saturatef(float x) { return x != x ? 0.0f : (x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x)); }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline float rcbrtf(float x) { return 1.0f / cbrtf(x); }
static inline double rcbrt(double x) { return 1.0 / cbrt(x); }
static inline float sinpif(float x) { return sinf((float)M_PI * x); }
static inline float cospif(float x) { return cosf((float)M_PI * x); }
static inline double sinpi(double x) { return sin(M_PI * x); }
static inline double cospi(double x) { return cos(M_PI * x); }
static inline void sincospif(float x, float *s, float *c) {
  *s = sinpif(x);
  *c = cospif(x);
}
static inline float normcdff(float x) { return 0.5f * erfcf(-x * (float)M_SQRT1_2); }
static inline double normcdf(double x) { return 0.5 * erfc(-x * M_SQRT1_2); }
static inline double erfinv(double y) {
  if (y <= -1.0) return y == -1.0 ? -HUGE_VAL : NAN;
  if (y >= 1.0) return y == 1.0 ? HUGE_VAL : NAN;
  double w = -log((1.0 - y) * (1.0 + y)), x;
  if (w < 6.25) { /* Giles' approximation, refined by Newton steps below */
    w -= 3.125;
    x = -3.6444120640178196996e-21;
    x = -1.685059138182016589e-19 + x * w;
    x = 1.2858480715256400167e-18 + x * w;
    x = 1.115787767802518096e-17 + x * w;
    x = -1.333171662854620906e-16 + x * w;
    x = 2.0972767875968561637e-17 + x * w;
    x = 6.6376381343583238325e-15 + x * w;
    x = -4.0545662729752068639e-14 + x * w;
    x = -8.1519341976054721522e-14 + x * w;
    x = 2.6335093153082322977e-12 + x * w;
    x = -1.2975133253453532498e-11 + x * w;
    x = -5.4154120542946279317e-11 + x * w;
    x = 1.051212273321532285e-09 + x * w;
    x = -4.1126339803469836976e-09 + x * w;
    x = -2.9070369957882005086e-08 + x * w;
    x = 4.2347877827932403518e-07 + x * w;
    x = -1.3654692000834678645e-06 + x * w;
    x = -1.3882523362786468719e-05 + x * w;
    x = 0.0001867342080340571352 + x * w;
    x = -0.00074070253416626697512 + x * w;
    x = -0.0060336708714301490533 + x * w;
    x = 0.24015818242558961693 + x * w;
    x = 1.6536545626831027356 + x * w;
  } else {
    w = sqrt(w) - 3.0;
    x = 0.00015200173062591072 ;
    x = -0.00037722141049300005 + x * w;
    x = 0.0029064812791154563 + x * w;
    x = -0.0052498503779566396 + x * w;
    x = 0.0099685506094848693 + x * w;
    x = -0.023602602040617312 + x * w;
    x = -0.0096847742128015698 + x * w;
    x = 1.000167000063011 + x * w;
    x = 2.8329774569713693 + x * w;
  }
  x *= y;
  for (int i = 0; i < 2; i++) x -= (erf(x) - y) / (2.0 / sqrt(M_PI) * exp(-x * x));
  return x;
}
static inline float erfinvf(float y) { return (float)erfinv((double)y); }
static inline float erfcinvf(float y) { return (float)erfinv(1.0 - (double)y); }
static inline double erfcinv(double y) { return erfinv(1.0 - y); }
static inline double normcdfinv(double y) { return M_SQRT2 * erfinv(2.0 * y - 1.0); }
static inline float normcdfinvf(float y) { return (float)normcdfinv((double)y); }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fadd_rz(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fmul_rz(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline float __fmaf_rz(float a, float b, float c) { return fmaf(a, b, c); }
static inline float __frcp_rn(float a) { return 1.0f / a; }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }
static inline float __frsqrt_rn(float a) { return 1.0f / sqrtf(a); }
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline double __dsub_rn(double a, double b) { return a - b; }
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline double __ddiv_rn(double a, double b) { return a / b; }
static inline double __drcp_rn(double a) { return 1.0 / a; }
static inline double __dsqrt_rn(double a) { return sqrt(a); }
static inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
static inline int __float2int_rn(float x) { return (int)nearbyintf(x); }
static inline int __float2int_rz(float x) { return (int)x; }
static inline int __float2int_rd(float x) { return (int)floorf(x); }
static inline int __float2int_ru(float x) { return (int)ceilf(x); }
static inline unsigned __float2uint_rn(float x) { return (unsigned)nearbyintf(x); }
static inline unsigned __float2uint_rz(float x) { return (unsigned)x; }
static inline long long __float2ll_rn(float x) { return (long long)nearbyintf(x); }
static inline long long __float2ll_rz(float x) { return (long long)x; }
static inline unsigned long long __float2ull_rn(float x) { return (unsigned long long)nearbyintf(x); }
static inline int __double2int_rn(double x) { return (int)nearbyint(x); }
static inline int __double2int_rz(double x) { return (int)x; }
static inline long long __double2ll_rn(double x) { return (long long)nearbyint(x); }
static inline long long __double2ll_rz(double x) { return (long long)x; }
static inline float __double2float_rn(double x) { return (float)x; }
static inline float __int2float_rn(int x) { return (float)x; }
static inline float __uint2float_rn(unsigned x) { return (float)x; }
static inline float __ll2float_rn(long long x) { return (float)x; }
static inline float __ull2float_rn(unsigned long long x) { return (float)x; }
static inline double __int2double_rn(int x) { return (double)x; }
static inline double __ll2double_rn(long long x) { return (double)x; }
static inline double __ull2double_rn(unsigned long long x) { return (double)x; }
/* __isnanf, __isinff, __finitef: glibc provides them. */

/* ---- fp16 / bf16 ----------------------------------------------------------------------------------- */
namespace drt_emu {
inline unsigned short f2h(float f) { /* round to nearest even, IEEE binary16 */
  unsigned x = __float_as_uint(f);
  unsigned sign = (x >> 16) & 0x8000u;
  unsigned absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) return (unsigned short)(sign | (absx > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (absx >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u); /* rounds to >= 65520: inf */
  if (absx < 0x38800000u) {                                          /* subnormal or zero half */
    if (absx < 0x33000000u) return (unsigned short)sign;              /* < 2^-25: rounds to 0 */
    unsigned e = absx >> 23;
    unsigned m = (absx & 0x7fffffu) | 0x800000u;
    unsigned shift = 126u - e; /* 14 + (112 - e) ... yields subnormal mantissa */
    unsigned r = m >> shift;
    unsigned rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (r & 1u))) r++;
    return (unsigned short)(sign | r);
  }
  unsigned r = ((absx - 0x38000000u) >> 13);
  unsigned rem = absx & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++;
  return (unsigned short)(sign | r);
}
inline float h2f(unsigned short h) {
  unsigned sign = (unsigned)(h & 0x8000u) << 16;
  unsigned e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  unsigned x;
  if (e == 0) {
    if (m == 0) x = sign;
    else {
      float v = (float)m * 5.9604644775390625e-8f; /* 2^-24 */
      x = sign | __float_as_uint(v);
    }
  } else if (e == 31) x = sign | 0x7f800000u | (m << 13) | (m ? 0x400000u : 0u);
  else x = sign | ((e + 112u) << 23) | (m << 13);
  return __uint_as_float(x);
}
inline unsigned short f2bf(float f) {
  unsigned x = __float_as_uint(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((x >> 16) | 0x40u);
  unsigned lsb = (x >> 16) & 1u;
  x += 0x7fffu + lsb;
  return (unsigned short)(x >> 16);
}
inline float bf2f(unsigned short b) { return __uint_as_float((unsigned)b << 16); }
} /* namespace drt_emu */

struct __half_raw {
  unsigned short x;
};
struct __half2_raw {
  unsigned short x, y;
};
struct __nv_bfloat16_raw {
  unsigned short x;
};
struct __nv_bfloat162_raw {
  unsigned short x, y;
};
struct __nv_bfloat16;

struct __attribute__((aligned(2))) __half {
  unsigned short __x;
  __half() = default;
  constexpr __half(const __half_raw &r) : __x(r.x) {}
  __half &operator=(const __half_raw &r) {
    __x = r.x;
    return *this;
  }
  operator __half_raw() const { return __half_raw{__x}; }
  explicit __half(const __nv_bfloat16 b);
  __half(float f) : __x(drt_emu::f2h(f)) {}
  __half(double f) : __x(drt_emu::f2h((float)f)) {}
  __half(short v) : __x(drt_emu::f2h((float)v)) {}
  __half(unsigned short v) : __x(drt_emu::f2h((float)v)) {}
  __half(int v) : __x(drt_emu::f2h((float)v)) {}
  __half(unsigned int v) : __x(drt_emu::f2h((float)v)) {}
  __half(long v) : __x(drt_emu::f2h((float)v)) {}
  __half(unsigned long v) : __x(drt_emu::f2h((float)v)) {}
  __half(long long v) : __x(drt_emu::f2h((float)v)) {}
  __half(unsigned long long v) : __x(drt_emu::f2h((float)v)) {}
  operator float() const { return drt_emu::h2f(__x); }
  __half &operator=(float f) {
    __x = drt_emu::f2h(f);
    return *this;
  }
  __half &operator=(double f) {
    __x = drt_emu::f2h((float)f);
    return *this;
  }
  explicit operator signed char() const { return (signed char)drt_emu::h2f(__x); }
  explicit operator unsigned char() const { return (unsigned char)drt_emu::h2f(__x); }
  explicit operator char() const { return (char)drt_emu::h2f(__x); }
  explicit operator short() const { return (short)drt_emu::h2f(__x); }
  explicit operator unsigned short() const { return (unsigned short)drt_emu::h2f(__x); }
  explicit operator int() const { return (int)drt_emu::h2f(__x); }
  explicit operator unsigned int() const { return (unsigned int)drt_emu::h2f(__x); }
  explicit operator long() const { return (long)drt_emu::h2f(__x); }
  explicit operator unsigned long() const { return (unsigned long)drt_emu::h2f(__x); }
  explicit operator long long() const { return (long long)drt_emu::h2f(__x); }
  explicit operator unsigned long long() const { return (unsigned long long)drt_emu::h2f(__x); }
  explicit operator bool() const { return (__x & 0x7fffu) != 0; }
};
struct __attribute__((aligned(2))) __nv_bfloat16 {
  unsigned short __x;
  __nv_bfloat16() = default;
  constexpr __nv_bfloat16(const __nv_bfloat16_raw &r) : __x(r.x) {}
  __nv_bfloat16 &operator=(const __nv_bfloat16_raw &r) {
    __x = r.x;
    return *this;
  }
  operator __nv_bfloat16_raw() const { return __nv_bfloat16_raw{__x}; }
  explicit __nv_bfloat16(const __half h) : __x(drt_emu::f2bf(drt_emu::h2f(h.__x))) {}
  __nv_bfloat16(float f) : __x(drt_emu::f2bf(f)) {}
  __nv_bfloat16(double f) : __x(drt_emu::f2bf((float)f)) {}
  __nv_bfloat16(short v) : __x(drt_emu::f2bf((float)v)) {}
  __nv_bfloat16(unsigned short v) : __x(drt_emu::f2bf((float)v)) {}
  __nv_bfloat16(int v) : __x(drt_emu::f2bf((float)v)) {}
  __nv_bfloat16(unsigned int v) : __x(drt_emu::f2bf((float)v)) {}
  __nv_bfloat16(long v) : __x(drt_emu::f2bf((float)v)) {}
  __nv_bfloat16(unsigned long v) : __x(drt_emu::f2bf((float)v)) {}
  __nv_bfloat16(long long v) : __x(drt_emu::f2bf((float)v)) {}
  __nv_bfloat16(unsigned long long v) : __x(drt_emu::f2bf((float)v)) {}
  operator float() const { return drt_emu::bf2f(__x); }
  __nv_bfloat16 &operator=(float f) {
    __x = drt_emu::f2bf(f);
    return *this;
  }
  __nv_bfloat16 &operator=(double f) {
    __x = drt_emu::f2bf((float)f);
    return *this;
  }
  explicit operator signed char() const { return (signed char)drt_emu::bf2f(__x); }
  explicit operator unsigned char() const { return (unsigned char)drt_emu::bf2f(__x); }
  explicit operator char() const { return (char)drt_emu::bf2f(__x); }
  explicit operator short() const { return (short)drt_emu::bf2f(__x); }
  explicit operator unsigned short() const { return (unsigned short)drt_emu::bf2f(__x); }
  explicit operator int() const { return (int)drt_emu::bf2f(__x); }
  explicit operator unsigned int() const { return (unsigned int)drt_emu::bf2f(__x); }
  explicit operator long() const { return (long)drt_emu::bf2f(__x); }
  explicit operator unsigned long() const { return (unsigned long)drt_emu::bf2f(__x); }
  explicit operator long long() const { return (long long)drt_emu::bf2f(__x); }
  explicit operator unsigned long long() const { return (unsigned long long)drt_emu::bf2f(__x); }
  explicit operator bool() const { return (__x & 0x7fffu) != 0; }
};
inline __half::__half(const __nv_bfloat16 b) : __x(drt_emu::f2h(drt_emu::bf2f(b.__x))) {}

struct __attribute__((aligned(4))) __half2 {
  __half x, y;
  __half2() = default;
  constexpr __half2(const __half &a, const __half &b) : x(a), y(b) {}
  __half2(const __half2_raw &r) {
    x.__x = r.x;
    y.__x = r.y;
  }
  __half2 &operator=(const __half2_raw &r) {
    x.__x = r.x;
    y.__x = r.y;
    return *this;
  }
  operator __half2_raw() const { return __half2_raw{x.__x, y.__x}; }
};
struct __attribute__((aligned(4))) __nv_bfloat162 {
  __nv_bfloat16 x, y;
  __nv_bfloat162() = default;
  constexpr __nv_bfloat162(const __nv_bfloat16 &a, const __nv_bfloat16 &b) : x(a), y(b) {}
  __nv_bfloat162(const __nv_bfloat162_raw &r) {
    x.__x = r.x;
    y.__x = r.y;
  }
  __nv_bfloat162 &operator=(const __nv_bfloat162_raw &r) {
    x.__x = r.x;
    y.__x = r.y;
    return *this;
  }
  operator __nv_bfloat162_raw() const { return __nv_bfloat162_raw{x.__x, y.__x}; }
};
typedef __half half;
typedef __half2 half2;
typedef __nv_bfloat16 nv_bfloat16;
typedef __nv_bfloat162 nv_bfloat162;

/* Conversions. */
static inline __half __float2half(float f) { return __half_raw{drt_emu::f2h(f)}; }
static inline __half __float2half_rn(float f) { return __float2half(f); }
static inline __half __double2half(double d) { return __float2half((float)d); }
static inline float __half2float(__half h) { return drt_emu::h2f(h.__x); }
static inline __half2 __float2half2_rn(float f) { return __half2(__float2half(f), __float2half(f)); }
static inline __half2 __floats2half2_rn(float a, float b) { return __half2(__float2half(a), __float2half(b)); }
static inline __half2 __float22half2_rn(float2 f) { return __floats2half2_rn(f.x, f.y); }
static inline float2 __half22float2(__half2 h) { return make_float2(__half2float(h.x), __half2float(h.y)); }
static inline float __low2float(__half2 h) { return __half2float(h.x); }
static inline float __high2float(__half2 h) { return __half2float(h.y); }
static inline __half __low2half(__half2 h) { return h.x; }
static inline __half __high2half(__half2 h) { return h.y; }
static inline __half2 __halves2half2(__half a, __half b) { return __half2(a, b); }
static inline __half2 __half2half2(__half a) { return __half2(a, a); }
static inline __half2 __lowhigh2highlow(__half2 h) { return __half2(h.y, h.x); }
static inline __half2 __lows2half2(__half2 a, __half2 b) { return __half2(a.x, b.x); }
static inline __half2 __highs2half2(__half2 a, __half2 b) { return __half2(a.y, b.y); }
static inline __half2 __low2half2(__half2 a) { return __half2(a.x, a.x); }
static inline __half2 __high2half2(__half2 a) { return __half2(a.y, a.y); }
static inline __half2 make_half2(__half a, __half b) { return __half2(a, b); }
static inline unsigned short __half_as_ushort(__half h) { return h.__x; }
static inline short __half_as_short(__half h) { return (short)h.__x; }
static inline __half __ushort_as_half(unsigned short x) { return __half_raw{x}; }
static inline __half __short_as_half(short x) { return __half_raw{(unsigned short)x}; }
static inline __half __int2half_rn(int x) { return __float2half((float)x); }
static inline __half __float2half_rz(float f) {
  __half r = __float2half(f);
  if (fabsf(__half2float(r)) > fabsf(f) && !std::isinf(f)) r.__x = (unsigned short)(r.__x - 1);
  return r;
}
static inline int __half2int_rn(__half h) { return (int)nearbyintf(__half2float(h)); }
static inline int __half2int_rz(__half h) { return (int)__half2float(h); }

static inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16_raw{drt_emu::f2bf(f)}; }
static inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __float2bfloat16(f); }
static inline __nv_bfloat16 __float2bfloat16_rz(float f) {
  return __nv_bfloat16_raw{(unsigned short)(__float_as_uint(f) >> 16)};
}
static inline __nv_bfloat16 __double2bfloat16(double d) { return __float2bfloat16((float)d); }
static inline float __bfloat162float(__nv_bfloat16 b) { return drt_emu::bf2f(b.__x); }
static inline __nv_bfloat162 __float2bfloat162_rn(float f) {
  return __nv_bfloat162(__float2bfloat16(f), __float2bfloat16(f));
}
static inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) {
  return __nv_bfloat162(__float2bfloat16(a), __float2bfloat16(b));
}
static inline __nv_bfloat162 __float22bfloat162_rn(float2 f) { return __floats2bfloat162_rn(f.x, f.y); }
static inline float2 __bfloat1622float2(__nv_bfloat162 h) {
  return make_float2(__bfloat162float(h.x), __bfloat162float(h.y));
}
static inline float __low2float(__nv_bfloat162 h) { return __bfloat162float(h.x); }
static inline float __high2float(__nv_bfloat162 h) { return __bfloat162float(h.y); }
static inline __nv_bfloat16 __low2bfloat16(__nv_bfloat162 h) { return h.x; }
static inline __nv_bfloat16 __high2bfloat16(__nv_bfloat162 h) { return h.y; }
static inline __nv_bfloat162 __halves2bfloat162(__nv_bfloat16 a, __nv_bfloat16 b) { return __nv_bfloat162(a, b); }
static inline __nv_bfloat162 __bfloat162bfloat162(__nv_bfloat16 a) { return __nv_bfloat162(a, a); }
static inline __nv_bfloat162 __lowhigh2highlow(__nv_bfloat162 h) { return __nv_bfloat162(h.y, h.x); }
static inline __nv_bfloat162 make_bfloat162(__nv_bfloat16 a, __nv_bfloat16 b) { return __nv_bfloat162(a, b); }
static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
static inline short __bfloat16_as_short(__nv_bfloat16 h) { return (short)h.__x; }
static inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short x) { return __nv_bfloat16_raw{x}; }
static inline __nv_bfloat16 __short_as_bfloat16(short x) { return __nv_bfloat16_raw{(unsigned short)x}; }
static inline __nv_bfloat16 __int2bfloat16_rn(int x) { return __float2bfloat16((float)x); }
static inline int __bfloat162int_rn(__nv_bfloat16 h) { return (int)nearbyintf(__bfloat162float(h)); }
static inline int __bfloat162int_rz(__nv_bfloat16 h) { return (int)__bfloat162float(h); }
static inline __half __bfloat162half(__nv_bfloat16 b) { return __half(b); }

/* Arithmetic: computed in float, rounded once (as the hardware's fp16/bf16 instructions do). */
#define DRT_EMU_LOWP_OPS(H, H2, TOF, FROMF)                                                               \
  static inline H __hadd(H a, H b) { return FROMF(TOF(a) + TOF(b)); }                                     \
  static inline H __hsub(H a, H b) { return FROMF(TOF(a) - TOF(b)); }                                     \
  static inline H __hmul(H a, H b) { return FROMF(TOF(a) * TOF(b)); }                                     \
  static inline H __hdiv(H a, H b) { return FROMF(TOF(a) / TOF(b)); }                                     \
  static inline H __hadd_rn(H a, H b) { return __hadd(a, b); }                                            \
  static inline H __hsub_rn(H a, H b) { return __hsub(a, b); }                                            \
  static inline H __hmul_rn(H a, H b) { return __hmul(a, b); }                                            \
  static inline H __hfma(H a, H b, H c) { return FROMF(fmaf(TOF(a), TOF(b), TOF(c))); }                   \
  static inline H __hneg(H a) { H r = a; r.__x ^= 0x8000u; return r; }                                    \
  static inline H __habs(H a) { H r = a; r.__x &= 0x7fffu; return r; }                                    \
  static inline H __hmax(H a, H b) { return FROMF(fmaxf(TOF(a), TOF(b))); }                               \
  static inline H __hmin(H a, H b) { return FROMF(fminf(TOF(a), TOF(b))); }                               \
  static inline H __hmax_nan(H a, H b) { return (TOF(a) != TOF(a) || TOF(b) != TOF(b)) ? FROMF(NAN) : __hmax(a, b); } \
  static inline H __hmin_nan(H a, H b) { return (TOF(a) != TOF(a) || TOF(b) != TOF(b)) ? FROMF(NAN) : __hmin(a, b); } \
  static inline H __hadd_sat(H a, H b) { return FROMF(__saturatef(TOF(a) + TOF(b))); }                    \
  static inline H __hmul_sat(H a, H b) { return FROMF(__saturatef(TOF(a) * TOF(b))); }                    \
  static inline H __hfma_sat(H a, H b, H c) { return FROMF(__saturatef(fmaf(TOF(a), TOF(b), TOF(c)))); }  \
  static inline H __hfma_relu(H a, H b, H c) { float r = fmaf(TOF(a), TOF(b), TOF(c)); return FROMF(r < 0.0f ? 0.0f : r); } \
  static inline bool __heq(H a, H b) { return TOF(a) == TOF(b); }                                         \
  static inline bool __hne(H a, H b) { return TOF(a) != TOF(b); }                                         \
  static inline bool __hlt(H a, H b) { return TOF(a) < TOF(b); }                                          \
  static inline bool __hle(H a, H b) { return TOF(a) <= TOF(b); }                                         \
  static inline bool __hgt(H a, H b) { return TOF(a) > TOF(b); }                                          \
  static inline bool __hge(H a, H b) { return TOF(a) >= TOF(b); }                                         \
  static inline bool __hisnan(H a) { return TOF(a) != TOF(a); }                                           \
  static inline int __hisinf(H a) { float f = TOF(a); return std::isinf(f) ? (f < 0 ? -1 : 1) : 0; }     \
  static inline H hexp(H a) { return FROMF(expf(TOF(a))); }                                               \
  static inline H hexp2(H a) { return FROMF(exp2f(TOF(a))); }                                             \
  static inline H hlog(H a) { return FROMF(logf(TOF(a))); }                                               \
  static inline H hlog2(H a) { return FROMF(log2f(TOF(a))); }                                             \
  static inline H hsqrt(H a) { return FROMF(sqrtf(TOF(a))); }                                             \
  static inline H hrsqrt(H a) { return FROMF(1.0f / sqrtf(TOF(a))); }                                     \
  static inline H hrcp(H a) { return FROMF(1.0f / TOF(a)); }                                              \
  static inline H hsin(H a) { return FROMF(sinf(TOF(a))); }                                               \
  static inline H hcos(H a) { return FROMF(cosf(TOF(a))); }                                               \
  static inline H htanh(H a) { return FROMF(tanhf(TOF(a))); }                                             \
  static inline H hfloor(H a) { return FROMF(floorf(TOF(a))); }                                           \
  static inline H hceil(H a) { return FROMF(ceilf(TOF(a))); }                                             \
  static inline H htrunc(H a) { return FROMF(truncf(TOF(a))); }                                           \
  static inline H hrint(H a) { return FROMF(rintf(TOF(a))); }                                             \
  static inline H operator+(const H &a, const H &b) { return __hadd(a, b); }                              \
  static inline H operator-(const H &a, const H &b) { return __hsub(a, b); }                              \
  static inline H operator*(const H &a, const H &b) { return __hmul(a, b); }                              \
  static inline H operator/(const H &a, const H &b) { return __hdiv(a, b); }                              \
  static inline H &operator+=(H &a, const H &b) { a = __hadd(a, b); return a; }                           \
  static inline H &operator-=(H &a, const H &b) { a = __hsub(a, b); return a; }                           \
  static inline H &operator*=(H &a, const H &b) { a = __hmul(a, b); return a; }                           \
  static inline H &operator/=(H &a, const H &b) { a = __hdiv(a, b); return a; }                           \
  static inline H &operator++(H &a) { a = FROMF(TOF(a) + 1.0f); return a; }                               \
  static inline H &operator--(H &a) { a = FROMF(TOF(a) - 1.0f); return a; }                               \
  static inline H operator++(H &a, int) { H o = a; ++a; return o; }                                       \
  static inline H operator--(H &a, int) { H o = a; --a; return o; }                                       \
  static inline H operator+(const H &a) { return a; }                                                     \
  static inline H operator-(const H &a) { return __hneg(a); }                                             \
  static inline bool operator==(const H &a, const H &b) { return __heq(a, b); }                           \
  static inline bool operator!=(const H &a, const H &b) { return __hne(a, b); }                           \
  static inline bool operator<(const H &a, const H &b) { return __hlt(a, b); }                            \
  static inline bool operator<=(const H &a, const H &b) { return __hle(a, b); }                           \
  static inline bool operator>(const H &a, const H &b) { return __hgt(a, b); }                            \
  static inline bool operator>=(const H &a, const H &b) { return __hge(a, b); }                           \
  static inline H2 __hadd2(H2 a, H2 b) { return H2(__hadd(a.x, b.x), __hadd(a.y, b.y)); }                  \
  static inline H2 __hsub2(H2 a, H2 b) { return H2(__hsub(a.x, b.x), __hsub(a.y, b.y)); }                  \
  static inline H2 __hmul2(H2 a, H2 b) { return H2(__hmul(a.x, b.x), __hmul(a.y, b.y)); }                  \
  static inline H2 __h2div(H2 a, H2 b) { return H2(__hdiv(a.x, b.x), __hdiv(a.y, b.y)); }                  \
  static inline H2 __hfma2(H2 a, H2 b, H2 c) { return H2(__hfma(a.x, b.x, c.x), __hfma(a.y, b.y, c.y)); }   \
  static inline H2 __hneg2(H2 a) { return H2(__hneg(a.x), __hneg(a.y)); }                                  \
  static inline H2 __habs2(H2 a) { return H2(__habs(a.x), __habs(a.y)); }                                  \
  static inline H2 __hmax2(H2 a, H2 b) { return H2(__hmax(a.x, b.x), __hmax(a.y, b.y)); }                  \
  static inline H2 __hmin2(H2 a, H2 b) { return H2(__hmin(a.x, b.x), __hmin(a.y, b.y)); }                  \
  static inline H2 h2exp(H2 a) { return H2(hexp(a.x), hexp(a.y)); }                                        \
  static inline H2 h2sqrt(H2 a) { return H2(hsqrt(a.x), hsqrt(a.y)); }                                     \
  static inline H2 h2rsqrt(H2 a) { return H2(hrsqrt(a.x), hrsqrt(a.y)); }                                  \
  static inline H2 operator+(const H2 &a, const H2 &b) { return __hadd2(a, b); }                          \
  static inline H2 operator-(const H2 &a, const H2 &b) { return __hsub2(a, b); }                          \
  static inline H2 operator*(const H2 &a, const H2 &b) { return __hmul2(a, b); }                          \
  static inline H2 operator/(const H2 &a, const H2 &b) { return __h2div(a, b); }                          \
  static inline H2 &operator+=(H2 &a, const H2 &b) { a = __hadd2(a, b); return a; }                       \
  static inline H2 &operator-=(H2 &a, const H2 &b) { a = __hsub2(a, b); return a; }                       \
  static inline H2 &operator*=(H2 &a, const H2 &b) { a = __hmul2(a, b); return a; }                       \
  static inline H2 &operator/=(H2 &a, const H2 &b) { a = __h2div(a, b); return a; }                       \
  static inline H2 operator-(const H2 &a) { return __hneg2(a); }                                          \
  static inline bool operator==(const H2 &a, const H2 &b) { return __heq(a.x, b.x) && __heq(a.y, b.y); }  \
  static inline bool operator!=(const H2 &a, const H2 &b) { return !(a == b); }
DRT_EMU_LOWP_OPS(__half, __half2, __half2float, __float2half)
DRT_EMU_LOWP_OPS(__nv_bfloat16, __nv_bfloat162, __bfloat162float, __float2bfloat16)
#undef DRT_EMU_LOWP_OPS
static inline __half atomicAdd(__half *p, __half v) { __half o = *p; *p = __hadd(o, v); return o; }
static inline __half2 atomicAdd(__half2 *p, __half2 v) { __half2 o = *p; *p = __hadd2(o, v); return o; }
static inline __nv_bfloat16 atomicAdd(__nv_bfloat16 *p, __nv_bfloat16 v) {
  __nv_bfloat16 o = *p;
  *p = __hadd(o, v);
  return o;
}
static inline __nv_bfloat162 atomicAdd(__nv_bfloat162 *p, __nv_bfloat162 v) {
  __nv_bfloat162 o = *p;
  *p = __hadd2(o, v);
  return o;
}

/* ---- wmma: every thread holds the whole tile ----------------------------------------------------- */
namespace nvcuda {
namespace wmma {
struct row_major;
struct col_major;
struct matrix_a;
struct matrix_b;
struct accumulator;
namespace precision {
struct tf32;
}
enum layout_t { mem_row_major, mem_col_major };

template <class T> struct helper_traits {
  typedef T element_type;
  typedef T storage_element_type;
  typedef T fill_argument_type;
};
template <> struct helper_traits<precision::tf32> {
  typedef precision::tf32 element_type;
  typedef float storage_element_type;
  typedef float fill_argument_type;
};

template <class Use, int M, int N, int K> struct frag_shape;
template <int M, int N, int K> struct frag_shape<matrix_a, M, N, K> {
  enum { rows = M, cols = K };
};
template <int M, int N, int K> struct frag_shape<matrix_b, M, N, K> {
  enum { rows = K, cols = N };
};
template <int M, int N, int K> struct frag_shape<accumulator, M, N, K> {
  enum { rows = M, cols = N };
};

template <class Use, int M, int N, int K, class T, class Layout = void> class fragment {
 public:
  typedef typename helper_traits<T>::storage_element_type storage_element_type;
  typedef T element_type;
  enum {
    rows = frag_shape<Use, M, N, K>::rows,
    cols = frag_shape<Use, M, N, K>::cols,
    num_elements = rows * cols,
    num_storage_elements = rows * cols
  };
  storage_element_type x[num_elements];
};

inline float __float_to_tf32(float in) { /* cvt.rna.tf32.f32: round to nearest, ties away */
  unsigned u = __float_as_uint(in);
  if ((u & 0x7f800000u) == 0x7f800000u) return in;
  u = (u + 0x1000u) & 0xffffe000u;
  return __uint_as_float(u);
}

template <class T> inline float drt_wmma_in(const T &v) { return (float)v; }
inline float drt_wmma_in(const __half &v) { return __half2float(v); }
inline float drt_wmma_in(const __nv_bfloat16 &v) { return __bfloat162float(v); }
template <class T> inline void drt_wmma_out(T &d, float v) { d = (T)v; }
inline void drt_wmma_out(__half &d, float v) { d = __float2half(v); }
inline void drt_wmma_out(__nv_bfloat16 &d, float v) { d = __float2bfloat16(v); }

template <class L> struct is_row_major : std::false_type {};
template <> struct is_row_major<row_major> : std::true_type {};

template <class Use, int M, int N, int K, class T, class L, class S>
inline void load_matrix_sync(fragment<Use, M, N, K, T, L> &f, const S *p, unsigned ldm) {
  typedef fragment<Use, M, N, K, T, L> F;
  for (int r = 0; r < (int)F::rows; r++)
    for (int c = 0; c < (int)F::cols; c++)
      f.x[r * F::cols + c] = is_row_major<L>::value ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r];
}
template <int M, int N, int K, class T, class S>
inline void load_matrix_sync(fragment<accumulator, M, N, K, T> &f, const S *p, unsigned ldm, layout_t layout) {
  typedef fragment<accumulator, M, N, K, T> F;
  for (int r = 0; r < (int)F::rows; r++)
    for (int c = 0; c < (int)F::cols; c++)
      f.x[r * F::cols + c] = layout == mem_row_major ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r];
}
template <int M, int N, int K, class T, class S>
inline void store_matrix_sync(S *p, const fragment<accumulator, M, N, K, T> &f, unsigned ldm, layout_t layout) {
  typedef fragment<accumulator, M, N, K, T> F;
  for (int r = 0; r < (int)F::rows; r++)
    for (int c = 0; c < (int)F::cols; c++) {
      S &d = layout == mem_row_major ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r];
      d = f.x[r * F::cols + c];
    }
}
template <class Use, int M, int N, int K, class T, class L, class V>
inline void fill_fragment(fragment<Use, M, N, K, T, L> &f, const V &v) {
  typedef fragment<Use, M, N, K, T, L> F;
  typedef typename F::storage_element_type E;
  E e = (E)v;
  for (int i = 0; i < (int)F::num_elements; i++) f.x[i] = e;
}

template <class T> inline float drt_wmma_operand(const T &v) { return drt_wmma_in(v); }
/* tf32 operands: the tensor core ignores the low 13 mantissa bits */
template <class T> inline float drt_wmma_operand_tf32(const T &v) {
  return __uint_as_float(__float_as_uint((float)v) & 0xffffe000u);
}

template <int M, int N, int K, class TA, class LA, class TB, class LB, class TC, class TD>
inline void mma_sync(fragment<accumulator, M, N, K, TD> &d, const fragment<matrix_a, M, N, K, TA, LA> &a,
                     const fragment<matrix_b, M, N, K, TB, LB> &b, const fragment<accumulator, M, N, K, TC> &c,
                     bool satf = false) {
  static_assert(M * K <= 512 && K * N <= 512 && M * N <= 256, "wmma shape too large for the emulator");
  const bool tf32 = std::is_same<TA, precision::tf32>::value;
  float A[M * K], B[K * N], C[M * N];
  for (int i = 0; i < M * K; i++) A[i] = tf32 ? drt_wmma_operand_tf32(a.x[i]) : drt_wmma_operand(a.x[i]);
  for (int i = 0; i < K * N; i++) B[i] = tf32 ? drt_wmma_operand_tf32(b.x[i]) : drt_wmma_operand(b.x[i]);
  for (int i = 0; i < M * N; i++) C[i] = drt_wmma_in(c.x[i]);
  drt_emu::warp_barrier(); /* collective: every live lane of the warp, converged */
  drt_emu::fiber *f = drt_emu::S.cur;
  drt_emu::mma_cache &mc = drt_emu::S.warps[f->tid / 32].mma;
  unsigned tag = ++f->mma_gen;
  if (mc.tag != tag) {
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) {
        float acc = C[i * N + j];
        for (int k = 0; k < K; k++) acc += A[i * K + k] * B[k * N + j];
        if (satf) acc = __saturatef(acc);
        mc.d[i * N + j] = acc;
      }
    memcpy(mc.a, A, sizeof A);
    memcpy(mc.b, B, sizeof B);
    memcpy(mc.c, C, sizeof C);
    mc.m = M;
    mc.n = N;
    mc.k = K;
    mc.tag = tag;
  } else if (mc.m != M || mc.n != N || mc.k != K || memcmp(mc.a, A, sizeof A) || memcmp(mc.b, B, sizeof B) ||
             memcmp(mc.c, C, sizeof C)) {
    drt_emu::fail_here("wmma::mma_sync: the lanes of a warp hold different fragments (whole-tile emulation: a "
                       "fragment must be loaded/filled identically by every lane, x[i] updated uniformly)");
  }
  for (int i = 0; i < M * N; i++) drt_wmma_out(d.x[i], mc.d[i]);
}
} /* namespace wmma */
} /* namespace nvcuda */


/* ---- Hopper warpgroup MMA (codegen/kernels/wgmma.cuh) ------------------------------------------ */
/* Shared-window address of a pointer into drt_smem (the descriptor's start address). */
static inline unsigned long long __cvta_generic_to_shared(const void *p) {
  const unsigned char *c = (const unsigned char *)p;
  if (c < drt_smem || c >= drt_smem + sizeof drt_smem)
    drt_emu::fail_here("__cvta_generic_to_shared: the pointer is not in dynamic shared memory (drt_smem)");
  return (unsigned long long)(c - drt_smem);
}

/* wgmma.mma_async m64nNk16 with fp32 accumulators, A from registers (the mma.sync m16n8k16
 * fragment layout, warp w of the warpgroup holding rows 16 w ..), B from shared memory through
 * a no-swizzle matrix descriptor (K-major when trans == 0, MN-major when 1; the canonical
 * layouts of the PTX ISA, see wgmma.cuh). The block must be one warpgroup (128 threads): the A
 * fragments are exchanged through a per-block buffer between two barriers, so every thread of
 * the block must call it, as on the device. */
namespace drt_emu {
inline unsigned long long wgmma_count; /* warpgroup MMAs executed by this module (blocks run serially) */
}
/* How many warpgroup MMAs this kernels module has executed: tests check that the sm_90a path ran. */
DRT_EMU_API unsigned long long drt_emu_wgmma_count(void) { return drt_emu::wgmma_count; }

template <class T>
inline void drt_emu_wgmma(float *d, const unsigned *a, unsigned long long desc, int N, int trans, int scale_d) {
  static_assert(sizeof(T) == 2, "wgmma emulation: fp16/bf16 operands");
  static thread_local unsigned stage[128][4];
  if (blockDim.x * blockDim.y * blockDim.z != 128u)
    drt_emu::fail_here("wgmma: the emulator takes blocks of exactly one warpgroup (128 threads)");
  if (N < 8 || N > 256 || N % 8 != 0) drt_emu::fail_here("wgmma: N must be a multiple of 8 in 8..256");
  if ((desc >> 62) != 0ull) drt_emu::fail_here("wgmma: only the no-swizzle descriptor layout is emulated");
  const int tid = (int)(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
  if (tid == 0) drt_emu::wgmma_count++;
  for (int i = 0; i < 4; i++) stage[tid][i] = a[i];
  __syncthreads();
  const unsigned long long start = (desc & 0x3FFFull) << 4, lbo = ((desc >> 16) & 0x3FFFull) << 4,
                           sbo = ((desc >> 32) & 0x3FFFull) << 4;
  const int warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  for (int j = 0; j < N / 8; j++)
    for (int r = 0; r < 2; r++)
      for (int e = 0; e < 2; e++) {
        const int row = 16 * warp + g + 8 * r, col = 8 * j + 2 * t + e;
        float acc = scale_d ? d[4 * j + 2 * r + e] : 0.0f;
        for (int k = 0; k < 16; k++) {
          /* A[row][k]: lane (row % 8) * 4 + (k % 8) / 2 of warp row / 16, register
             (row % 16 >= 8) + 2 (k >= 8), half k % 2 */
          const unsigned u = stage[(row >> 4) * 32 + (row & 7) * 4 + ((k & 7) >> 1)][((row & 15) >> 3) + 2 * (k >> 3)];
          const unsigned short ha = (unsigned short)((k & 1) ? u >> 16 : u & 0xffffu);
          T av, bv;
          memcpy(&av, &ha, 2);
          const unsigned long long off =
              start + (unsigned long long)(col >> 3) * sbo + (unsigned long long)(k >> 3) * lbo +
              (trans ? (unsigned long long)((k & 7) * 16 + (col & 7) * 2) : (unsigned long long)((col & 7) * 16 + (k & 7) * 2));
          if (off + 2 > drt_emu::S.smem)
            drt_emu::fail_here("wgmma: the B operand reaches past the launch's dynamic shared memory");
          memcpy(&bv, drt_smem + off, 2);
          acc += nvcuda::wmma::drt_wmma_in(av) * nvcuda::wmma::drt_wmma_in(bv);
        }
        d[4 * j + 2 * r + e] = acc;
      }
  __syncthreads();
}

#endif /* DRT_CUDA_EMU_H */
