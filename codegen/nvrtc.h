/* NVRTC: compiles a CUDA program (codegen/codegen.h) to a cubin ("sm_90") or PTX ("compute_90").
 *
 * libnvrtc is never linked: it is loaded with dlopen through a table of function pointers, so
 * the tools run (and the CPU path works) where it is absent. Search order: $DRT_NVRTC_LIBRARY
 * (a path or a soname; when set, nothing else is tried), then libnvrtc.so.13, libnvrtc.so.12,
 * libnvrtc.so through the dynamic loader, then $CUDA_HOME/lib64 and /usr/local/cuda/lib64.
 *
 * Options (the same for every program; drt_nvrtc_options() returns them without the include
 * directory and the arch): --std=c++17 -default-device -lineinfo -I<dir> --gpu-architecture=A.
 * <dir> is the first of DRT_CUDA_INCLUDE_DIR (set by CMake at build time), $CUDA_HOME/include,
 * /usr/local/cuda/include that holds cuda_fp16.h (the kernel library includes cuda_fp16.h,
 * cuda_bf16.h and mma.h).
 *
 * Disk cache: every image is stored under a key FNV-1a 64 of (source hash, arch, options with
 * the include directory, NVRTC version) in $DRT_CACHE_DIR, else $XDG_CACHE_HOME/distilrt, else
 * ~/.cache/distilrt (DRT_CACHE_DIR=off disables it). Entries are written atomically (temporary
 * file + rename) and carry a header with the key, size and checksum; a corrupt or unreadable
 * entry is ignored (and overwritten). Failing to write the cache never fails a compile.
 *
 * Built without DRT_HAVE_CUDA (no CUDA headers at build time) every function returns
 * DRT_STATUS_UNAVAILABLE. Thread-safety: every function is thread-safe (no shared mutable
 * state; NVRTC programs are per call). */
#ifndef DRT_CODEGEN_NVRTC_H
#define DRT_CODEGEN_NVRTC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codegen/codegen.h"
#include "ir/status.h"

/* Default targets of `drt compile --target cuda`: cubins for Ampere, Ada and Hopper and PTX of
 * the newest for later GPUs (the driver JIT-compiles it). */
#define DRT_NVRTC_DEFAULT_ARCHS "sm_80,sm_86,sm_89,sm_90,compute_90"
#define DRT_NVRTC_MAX_LOG 8192 /* bytes of the NVRTC log kept in an error message */

/* An architecture string: "sm_XX" (cubin) or "compute_XX" (PTX), XX two or three digits with an
 * optional 'a' or 'f' suffix ("sm_90a"). Returns false when malformed. */
bool drt_nvrtc_arch_parse(const char *s, int *sm, bool *ptx);

/* Loads NVRTC (see above) and returns its version. UNAVAILABLE with the paths tried when it is
 * absent. */
drt_status drt_nvrtc_version(int *major, int *minor);
/* The SM numbers NVRTC can compile for (75, 80, ...), ascending; *n receives the count (at most
 * max are stored). */
drt_status drt_nvrtc_supported_archs(int *archs, int max, int *n);
/* Checks every entry of a comma-separated arch list: well formed and supported by the loaded
 * NVRTC (INVALID_ARGUMENT naming the entry and the supported list), no duplicates, at most
 * `max` entries. Splits it into out[*n] when out is non-NULL. */
drt_status drt_nvrtc_check_archs(const char *list, char (*out)[16], int max, int *n);
/* The options other than the include directory and the arch (stored in plans). */
const char *drt_nvrtc_options(void);

/* One compiled image. */
typedef struct drt_nvrtc_image {
  char arch[16];
  void *data;        /* malloc'd; PTX images include their terminating NUL */
  size_t size;
  bool from_cache;   /* found in the disk cache: NVRTC did not run */
  double ms;         /* wall time of this image (NVRTC or cache read) */
} drt_nvrtc_image;

typedef struct drt_nvrtc_compile_options {
  const char *cache_dir; /* NULL: from the environment as above; "off": no cache */
  int max_threads;       /* 0: number of online CPUs (capped at the number of archs) */
} drt_nvrtc_compile_options;
void drt_nvrtc_compile_options_init(drt_nvrtc_compile_options *o);

/* Compiles p->source for archs[0..n) (in parallel, one thread per arch up to max_threads) into
 * images[0..n) (the caller frees them with drt_nvrtc_image_free; on error none are left
 * allocated). A compile error (generated code is never user input: a distilrt bug) returns
 * DRT_STATUS_INTERNAL whose message names the arch, where the first error is: "kernel drt_k..."
 * when its line lies in a wrapper (drt_cuda_kernel.src_begin/src_end), or the library part
 * ("codegen/kernels/norm.cuh, instantiated by kernel drt_k...", from the log's "detected during
 * instantiation ... at line N" lines), and the NVRTC log, trimmed to DRT_NVRTC_MAX_LOG bytes.
 * NVRTC not loadable: UNAVAILABLE. Only p->source (NUL-terminated), source_len, source_hash,
 * kernels and num_kernels are read. */
drt_status drt_nvrtc_compile(const drt_cuda_program *p, const char *const *archs, size_t n,
                             const drt_nvrtc_compile_options *o, drt_nvrtc_image *images);
void drt_nvrtc_image_free(drt_nvrtc_image *img); /* NULL-safe; leaves it zeroed */

/* The cache directory that drt_nvrtc_compile would use (NULL: disabled), for messages. Writes
 * into buf. */
const char *drt_nvrtc_cache_dir(const drt_nvrtc_compile_options *o, char *buf, size_t size);

#endif
