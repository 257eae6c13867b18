/* NVRTC through dlopen, the compile cache, and compile errors mapped to kernels (codegen/nvrtc.h). */
#include "codegen/nvrtc.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char k_options[] = "--std=c++17 -default-device -lineinfo";

const char *drt_nvrtc_options(void) { return k_options; }

void drt_nvrtc_compile_options_init(drt_nvrtc_compile_options *o) {
  memset(o, 0, sizeof *o);
}

void drt_nvrtc_image_free(drt_nvrtc_image *img) {
  if (!img) return;
  free(img->data);
  memset(img, 0, sizeof *img);
}

bool drt_nvrtc_arch_parse(const char *s, int *sm, bool *ptx) {
  bool p;
  if (strncmp(s, "sm_", 3) == 0) {
    s += 3;
    p = false;
  } else if (strncmp(s, "compute_", 8) == 0) {
    s += 8;
    p = true;
  } else {
    return false;
  }
  int v = 0, digits = 0;
  while (isdigit((unsigned char)*s) && digits < 4) v = v * 10 + (*s++ - '0'), digits++;
  if (digits < 2 || digits > 3 || v < 10) return false;
  if (*s == 'a' || *s == 'f') s++;
  if (*s) return false;
  if (sm) *sm = v;
  if (ptx) *ptx = p;
  return true;
}

const char *drt_nvrtc_cache_dir(const drt_nvrtc_compile_options *o, char *buf, size_t size) {
  const char *d = o && o->cache_dir ? o->cache_dir : getenv("DRT_CACHE_DIR");
  if (d && *d) {
    if (strcmp(d, "off") == 0) return NULL;
    snprintf(buf, size, "%s", d);
    return buf;
  }
  const char *x = getenv("XDG_CACHE_HOME");
  if (x && *x) {
    snprintf(buf, size, "%s/distilrt", x);
    return buf;
  }
  const char *h = getenv("HOME");
  if (h && *h) {
    snprintf(buf, size, "%s/.cache/distilrt", h);
    return buf;
  }
  return NULL;
}

#ifndef DRT_HAVE_CUDA

static drt_status unavailable(void) {
  return DRT_ERROR(DRT_STATUS_UNAVAILABLE, "NVRTC: this distilrt was built without the CUDA toolkit headers "
                   "(configure with CUDA_HOME set to a CUDA toolkit to enable --target cuda)");
}
drt_status drt_nvrtc_version(int *major, int *minor) {
  *major = *minor = 0;
  return unavailable();
}
drt_status drt_nvrtc_supported_archs(int *archs, int max, int *n) {
  (void)archs;
  (void)max;
  *n = 0;
  return unavailable();
}
drt_status drt_nvrtc_check_archs(const char *list, char (*out)[16], int max, int *n) {
  (void)list;
  (void)out;
  (void)max;
  *n = 0;
  return unavailable();
}
drt_status drt_nvrtc_compile(const drt_cuda_program *p, const char *const *archs, size_t n,
                             const drt_nvrtc_compile_options *o, drt_nvrtc_image *images) {
  (void)p;
  (void)archs;
  (void)o;
  for (size_t i = 0; i < n; i++) memset(&images[i], 0, sizeof images[i]);
  return unavailable();
}

#else /* DRT_HAVE_CUDA */

#include <dlfcn.h>
#include <nvrtc.h>
#include <pthread.h>

/* ---- the library ------------------------------------------------------------------------ */
typedef struct nvrtc_lib {
  const char *(*GetErrorString)(nvrtcResult);
  nvrtcResult (*Version)(int *, int *);
  nvrtcResult (*GetNumSupportedArchs)(int *);
  nvrtcResult (*GetSupportedArchs)(int *);
  nvrtcResult (*CreateProgram)(nvrtcProgram *, const char *, const char *, int, const char *const *,
                               const char *const *);
  nvrtcResult (*DestroyProgram)(nvrtcProgram *);
  nvrtcResult (*CompileProgram)(nvrtcProgram, int, const char *const *);
  nvrtcResult (*GetPTXSize)(nvrtcProgram, size_t *);
  nvrtcResult (*GetPTX)(nvrtcProgram, char *);
  nvrtcResult (*GetCUBINSize)(nvrtcProgram, size_t *);
  nvrtcResult (*GetCUBIN)(nvrtcProgram, char *);
  nvrtcResult (*GetProgramLogSize)(nvrtcProgram, size_t *);
  nvrtcResult (*GetProgramLog)(nvrtcProgram, char *);
  int major, minor;
  char path[512];
} nvrtc_lib;

static const struct {
  const char *name;
  size_t offset;
} k_symbols[] = {
#define SYM(f) {"nvrtc" #f, offsetof(nvrtc_lib, f)}
    SYM(GetErrorString), SYM(Version),        SYM(GetNumSupportedArchs), SYM(GetSupportedArchs),
    SYM(CreateProgram),  SYM(DestroyProgram), SYM(CompileProgram),       SYM(GetPTXSize),
    SYM(GetPTX),         SYM(GetCUBINSize),   SYM(GetCUBIN),             SYM(GetProgramLogSize),
    SYM(GetProgramLog),
#undef SYM
};

/* Fills the table from the first candidate that loads. The handle is never closed: dlopen is
 * reference counted, so loading again later is cheap and returns the same library. */
static bool try_load(nvrtc_lib *l, const char *path, char *tried, size_t tried_size) {
  size_t tl = strlen(tried);
  snprintf(tried + tl, tried_size - tl, "%s%s", tl ? ", " : "", path);
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *e = dlerror();
    /* the loader's reason matters only when it found the file */
    if (e && strchr(path, '/') && access(path, F_OK) == 0) {
      tl = strlen(tried);
      snprintf(tried + tl, tried_size - tl, " (%s)", e);
    }
    return false;
  }
  for (size_t i = 0; i < sizeof k_symbols / sizeof k_symbols[0]; i++) {
    void *f = dlsym(h, k_symbols[i].name);
    if (!f) {
      tl = strlen(tried);
      snprintf(tried + tl, tried_size - tl, " (no %s)", k_symbols[i].name);
      return false;
    }
    memcpy((char *)l + k_symbols[i].offset, &f, sizeof f);
  }
  if (l->Version(&l->major, &l->minor) != NVRTC_SUCCESS) return false;
  snprintf(l->path, sizeof l->path, "%s", path);
  return true;
}

static drt_status load_nvrtc(nvrtc_lib *l) {
  memset(l, 0, sizeof *l);
  char tried[2048] = "";
  const char *env = getenv("DRT_NVRTC_LIBRARY");
  if (env && *env) {
    if (try_load(l, env, tried, sizeof tried)) return DRT_OK;
    return DRT_ERROR(DRT_STATUS_UNAVAILABLE, "NVRTC: DRT_NVRTC_LIBRARY=%s could not be loaded%s%s", env,
                     strcmp(tried, env) ? ": " : " (no such library)", strcmp(tried, env) ? tried : "");
  }
  static const char *const names[] = {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (try_load(l, names[i], tried, sizeof tried)) return DRT_OK;
  const char *dirs[2] = {getenv("CUDA_HOME"), "/usr/local/cuda"};
  for (int d = 0; d < 2; d++) {
    if (!dirs[d] || !*dirs[d]) continue;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
      char path[1024];
      snprintf(path, sizeof path, "%s/lib64/%s", dirs[d], names[i]);
      if (try_load(l, path, tried, sizeof tried)) return DRT_OK;
    }
  }
  return DRT_ERROR(DRT_STATUS_UNAVAILABLE,
                   "NVRTC (libnvrtc, part of the CUDA toolkit) was not found; tried %s. Install the CUDA "
                   "toolkit, set CUDA_HOME, or point DRT_NVRTC_LIBRARY at libnvrtc.so", tried);
}

drt_status drt_nvrtc_version(int *major, int *minor) {
  nvrtc_lib l;
  *major = *minor = 0;
  DRT_RETURN_IF_ERROR(load_nvrtc(&l));
  *major = l.major;
  *minor = l.minor;
  return DRT_OK;
}

static drt_status supported(const nvrtc_lib *l, int *archs, int max, int *n) {
  int k = 0;
  *n = 0;
  if (l->GetNumSupportedArchs(&k) != NVRTC_SUCCESS || k <= 0 || k > 1024)
    return DRT_ERROR(DRT_STATUS_INTERNAL, "NVRTC %d.%d: nvrtcGetNumSupportedArchs failed", l->major, l->minor);
  int *all = malloc((size_t)k * sizeof(int));
  if (!all) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "NVRTC archs");
  nvrtcResult r = l->GetSupportedArchs(all);
  for (int i = 0; i < k && i < max; i++) archs[i] = all[i];
  free(all);
  if (r != NVRTC_SUCCESS) return DRT_ERROR(DRT_STATUS_INTERNAL, "NVRTC: nvrtcGetSupportedArchs failed");
  *n = k < max ? k : max;
  return DRT_OK;
}

drt_status drt_nvrtc_supported_archs(int *archs, int max, int *n) {
  nvrtc_lib l;
  *n = 0;
  DRT_RETURN_IF_ERROR(load_nvrtc(&l));
  return supported(&l, archs, max, n);
}

drt_status drt_nvrtc_check_archs(const char *list, char (*out)[16], int max, int *n) {
  *n = 0;
  nvrtc_lib l;
  DRT_RETURN_IF_ERROR(load_nvrtc(&l));
  int sup[256], nsup = 0;
  DRT_RETURN_IF_ERROR(supported(&l, sup, 256, &nsup));
  char suplist[1024] = "";
  for (int i = 0; i < nsup; i++) {
    size_t sl = strlen(suplist);
    snprintf(suplist + sl, sizeof suplist - sl, "%s%d", i ? ", " : "", sup[i]);
  }
  char seen[64][16];
  int count = 0;
  const char *s = list;
  for (;;) {
    while (*s == ' ' || *s == '\t') s++;
    const char *e = s;
    while (*e && *e != ',') e++;
    const char *te = e;
    while (te > s && (te[-1] == ' ' || te[-1] == '\t')) te--;
    size_t len = (size_t)(te - s);
    char a[16];
    int sm = 0;
    bool ptx = false;
    if (len == 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "arch list '%s' has an empty entry", list);
    if (len >= sizeof a || (memcpy(a, s, len), a[len] = 0, !drt_nvrtc_arch_parse(a, &sm, &ptx)))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                       "arch '%.*s' is not of the form sm_XX (a cubin) or compute_XX (PTX), e.g. sm_90", (int)len, s);
    if (sm < DRT_CUDA_MIN_SM)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED,
                       "arch %s: distilrt's CUDA kernels need compute capability %d.%d or newer (Ampere and later: "
                       "sm_80, sm_86, sm_89, sm_90, ...; they use cp.async and bf16/tf32 tensor cores); on older GPUs "
                       "use the CPU backend (--target cpu)", a, DRT_CUDA_MIN_SM / 10, DRT_CUDA_MIN_SM % 10);
    bool ok = false;
    for (int i = 0; i < nsup; i++) ok |= sup[i] == sm;
    if (!ok)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "arch %s: NVRTC %d.%d compiles for SM %s only", a, l.major,
                       l.minor, suplist);
    for (int i = 0; i < count; i++)
      if (strcmp(seen[i], a) == 0) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "arch %s is listed twice", a);
    if (count >= max || count >= 64)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "more than %d archs in '%s'", max < 64 ? max : 64, list);
    memcpy(seen[count], a, sizeof a);
    if (out) memcpy(out[count], a, sizeof a);
    count++;
    if (!*e) break;
    s = e + 1;
  }
  *n = count;
  return DRT_OK;
}

/* ---- include directory -------------------------------------------------------------------- */
static bool has_fp16(const char *dir) {
  char p[1024];
  snprintf(p, sizeof p, "%s/cuda_fp16.h", dir);
  return access(p, R_OK) == 0;
}

static drt_status include_dir(char *buf, size_t size) {
  char tried[1536] = "";
  const char *cands[3];
  char home_inc[1024] = "";
  int nc = 0;
#ifdef DRT_CUDA_INCLUDE_DIR
  cands[nc++] = DRT_CUDA_INCLUDE_DIR;
#endif
  const char *home = getenv("CUDA_HOME");
  if (home && *home) {
    snprintf(home_inc, sizeof home_inc, "%s/include", home);
    cands[nc++] = home_inc;
  }
  cands[nc++] = "/usr/local/cuda/include";
  for (int i = 0; i < nc; i++) {
    if (has_fp16(cands[i])) {
      snprintf(buf, size, "%s", cands[i]);
      return DRT_OK;
    }
    size_t tl = strlen(tried);
    snprintf(tried + tl, sizeof tried - tl, "%s%s", tl ? ", " : "", cands[i]);
  }
  return DRT_ERROR(DRT_STATUS_UNAVAILABLE,
                   "NVRTC: cuda_fp16.h (CUDA toolkit headers, needed by the kernel library) was not found in %s; "
                   "set CUDA_HOME to a CUDA toolkit", tried);
}

/* ---- cache ---------------------------------------------------------------------------------- */
#define CACHE_MAGIC "DRTNVRC1"
#define CACHE_HEADER 48 /* magic 8, key 8, size 8, checksum 8, arch 16 */

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static void cache_path(const char *dir, uint64_t key, bool ptx, char *buf, size_t size) {
  snprintf(buf, size, "%s/%016" PRIx64 ".%s", dir, key, ptx ? "ptx" : "cubin");
}

/* Reads an entry; false (and nothing allocated) when missing, unreadable or corrupt. */
static bool cache_read(const char *path, uint64_t key, const char *arch, void **data, size_t *size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat stt;
  bool ok = false;
  uint8_t *buf = NULL;
  if (fstat(fd, &stt) == 0 && S_ISREG(stt.st_mode) && stt.st_size > CACHE_HEADER && stt.st_size < (1ll << 32)) {
    size_t n = (size_t)stt.st_size, got = 0;
    buf = malloc(n);
    while (buf && got < n) {
      ssize_t r = read(fd, buf + got, n - got);
      if (r <= 0) break;
      got += (size_t)r;
    }
    if (buf && got == n && memcmp(buf, CACHE_MAGIC, 8) == 0 && get64(buf + 8) == key &&
        get64(buf + 16) == n - CACHE_HEADER && strncmp((const char *)buf + 32, arch, 16) == 0 &&
        get64(buf + 24) == drt_fnv1a64(buf + CACHE_HEADER, n - CACHE_HEADER, 0)) {
      memmove(buf, buf + CACHE_HEADER, n - CACHE_HEADER);
      *data = buf;
      *size = n - CACHE_HEADER;
      buf = NULL;
      ok = true;
    }
  }
  free(buf);
  close(fd);
  if (!ok) drt_log(DRT_LOG_DEBUG, "nvrtc cache: ignoring unreadable or corrupt entry %s", path);
  return ok;
}

static void mkdir_p(const char *dir) {
  char p[1024];
  snprintf(p, sizeof p, "%s", dir);
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = 0;
    (void)mkdir(p, 0755);
    *s = '/';
  }
  (void)mkdir(p, 0755);
}

static bool write_all(int fd, const void *data, size_t n) {
  const uint8_t *b = data;
  while (n) {
    ssize_t w = write(fd, b, n);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      return false;
    }
    b += w;
    n -= (size_t)w;
  }
  return true;
}

/* Best effort: a failure leaves no file and is only logged. */
static void cache_write(const char *dir, const char *path, uint64_t key, const char *arch, const void *data,
                        size_t size) {
  mkdir_p(dir);
  char tmp[1200];
  snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    drt_log(DRT_LOG_DEBUG, "nvrtc cache: cannot write in %s: %s", dir, strerror(errno));
    return;
  }
  uint8_t h[CACHE_HEADER] = {0};
  memcpy(h, CACHE_MAGIC, 8);
  put64(h + 8, key);
  put64(h + 16, size);
  put64(h + 24, drt_fnv1a64(data, size, 0));
  memcpy(h + 32, arch, strnlen(arch, 15));
  bool ok = write_all(fd, h, sizeof h) && write_all(fd, data, size);
  (void)fchmod(fd, 0644);
  ok = close(fd) == 0 && ok;
  if (!ok || rename(tmp, path) != 0) {
    drt_log(DRT_LOG_DEBUG, "nvrtc cache: writing %s failed: %s", path, strerror(errno));
    unlink(tmp);
  }
}

/* ---- compile errors -> kernels ------------------------------------------------------------ */
#define PROGRAM_NAME "drt_program.cu"

/* Byte offset where 1-based line `line` starts, or SIZE_MAX. */
static size_t line_offset(const char *src, size_t len, long line) {
  if (line < 1) return SIZE_MAX;
  size_t off = 0;
  for (long l = 1; l < line; l++) {
    const char *nl = memchr(src + off, '\n', len - off);
    if (!nl) return SIZE_MAX;
    off = (size_t)(nl - src) + 1;
  }
  return off < len ? off : SIZE_MAX;
}

/* The part of the program holding offset off: codegen/codegen.c starts each with a comment line
 * "/\* ---- codegen/kernels/norm.cuh ---- *\/" (or "runtime kernels", "generated kernels"). */
static void part_at(const drt_cuda_program *p, size_t off, char *buf, size_t size) {
  static const char mark[] = "/* ---- ";
  const char *best = NULL;
  for (const char *s = p->source; (s = strstr(s, mark)) != NULL && (size_t)(s - p->source) <= off; s++) best = s;
  buf[0] = 0;
  if (!best) return;
  best += strlen(mark);
  const char *e = strstr(best, " ----");
  const char *nl = strchr(best, '\n');
  if (!e || (nl && nl < e)) return;
  snprintf(buf, size, "%.*s", (int)(e - best), best);
}

static void add_kernel_at(const drt_cuda_program *p, long line, char *names, size_t size, bool *outside) {
  size_t off = line_offset(p->source, p->source_len, line);
  if (off == SIZE_MAX) return;
  for (size_t k = 0; k < p->num_kernels; k++) {
    const drt_cuda_kernel *kk = &p->kernels[k];
    if (kk->src_begin <= off && off < kk->src_end) {
      if (strstr(names, kk->name)) return;
      size_t l = strlen(names);
      snprintf(names + l, size - l, "%s%s", l ? ", " : "", kk->name);
      return;
    }
  }
  *outside = true;
}

/* Names the kernels involved in the first error of the log: the wrapper holding the error line,
 * or, for an error in the kernel library, the wrappers whose instantiation led there
 * ("detected during instantiation of ... at line N"). */
static void error_kernels(const drt_cuda_program *p, const char *log, char *names, size_t size) {
  names[0] = 0;
  const char *e = NULL;
  for (const char *s = log; (s = strstr(s, PROGRAM_NAME "(")) != NULL; s++) {
    const char *q = s + strlen(PROGRAM_NAME "(");
    while (isdigit((unsigned char)*q)) q++;
    if (strncmp(q, "): error", 8) == 0 || strncmp(q, "): catastrophic error", 21) == 0) {
      e = s;
      break;
    }
  }
  if (!e) return;
  bool outside = false, ignored = false;
  long line = strtol(e + strlen(PROGRAM_NAME "("), NULL, 10);
  add_kernel_at(p, line, names, size, &outside);
  /* the context lines of this error, up to the next diagnostic */
  const char *end = strstr(e + 1, PROGRAM_NAME "(");
  for (const char *s = e; (s = strstr(s, " at line ")) != NULL && (!end || s < end); s++) {
    char *q;
    long l = strtol(s + 9, &q, 10);
    if (strncmp(q, " of ", 4) != 0) add_kernel_at(p, l, names, size, &ignored);
  }
  char tmp[768], part[128] = "";
  size_t eoff = line_offset(p->source, p->source_len, line);
  if (outside && eoff != SIZE_MAX) part_at(p, eoff, part, sizeof part);
  if (!part[0]) snprintf(part, sizeof part, "the kernel library");
  if (outside && names[0])
    snprintf(tmp, sizeof tmp, "%s, instantiated by %s %s", part, strchr(names, ',') ? "kernels" : "kernel", names);
  else if (outside)
    snprintf(tmp, sizeof tmp, "%s", part);
  else if (names[0])
    snprintf(tmp, sizeof tmp, "%s %s", strchr(names, ',') ? "kernels" : "kernel", names);
  else
    tmp[0] = 0;
  snprintf(names, size, "%s", tmp);
}

/* ---- one arch --------------------------------------------------------------------------------- */
typedef struct job {
  const nvrtc_lib *lib;
  const drt_cuda_program *p;
  const char *arch;
  const char *incl;   /* "-I<dir>" */
  const char *cache;  /* directory or NULL */
  uint64_t key;
  drt_nvrtc_image *img;
  drt_status st;
} job;

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static drt_status compile_one(job *j) {
  const nvrtc_lib *l = j->lib;
  drt_nvrtc_image *img = j->img;
  int sm = 0;
  bool ptx = false;
  double t0 = now_ms();
  memset(img, 0, sizeof *img);
  if (!drt_nvrtc_arch_parse(j->arch, &sm, &ptx))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "arch '%s' is not of the form sm_XX or compute_XX", j->arch);
  snprintf(img->arch, sizeof img->arch, "%s", j->arch);
  char path[1100];
  if (j->cache) {
    cache_path(j->cache, j->key, ptx, path, sizeof path);
    if (cache_read(path, j->key, j->arch, &img->data, &img->size)) {
      img->from_cache = true;
      img->ms = now_ms() - t0;
      return DRT_OK;
    }
  }
  char archopt[64];
  snprintf(archopt, sizeof archopt, "--gpu-architecture=%s", j->arch);
  const char *opts[] = {"--std=c++17", "-default-device", "-lineinfo", j->incl, archopt};
  nvrtcProgram prog = NULL;
  nvrtcResult r = l->CreateProgram(&prog, j->p->source, PROGRAM_NAME, 0, NULL, NULL);
  if (r != NVRTC_SUCCESS)
    return DRT_ERROR(r == NVRTC_ERROR_OUT_OF_MEMORY ? DRT_STATUS_OUT_OF_MEMORY : DRT_STATUS_INTERNAL,
                     "NVRTC: creating the program for %s: %s", j->arch, l->GetErrorString(r));
  r = l->CompileProgram(prog, (int)(sizeof opts / sizeof opts[0]), opts);
  drt_status st = DRT_OK;
  if (r != NVRTC_SUCCESS) {
    size_t ls = 0;
    char *log = NULL;
    if (l->GetProgramLogSize(prog, &ls) == NVRTC_SUCCESS && ls > 0 && (log = malloc(ls + 1)) != NULL) {
      if (l->GetProgramLog(prog, log) != NVRTC_SUCCESS) log[0] = 0;
      log[ls] = 0;
    }
    char kernels[512];
    error_kernels(j->p, log ? log : "", kernels, sizeof kernels);
    size_t len = log ? strlen(log) : 0;
    while (len && (log[len - 1] == '\n' || log[len - 1] == ' ')) len--;
    int shown = len > DRT_NVRTC_MAX_LOG ? DRT_NVRTC_MAX_LOG : (int)len;
    st = DRT_ERROR(DRT_STATUS_INTERNAL,
                   "NVRTC %d.%d could not compile the generated CUDA program for %s (%s)%s%s; this is a bug in "
                   "distilrt's code generation, please report it with the log:\n%.*s%s",
                   l->major, l->minor, j->arch, l->GetErrorString(r), kernels[0] ? ": first error in " : "", kernels,
                   shown, log ? log : "", len > (size_t)shown ? "\n[... NVRTC log trimmed]" : "");
    free(log);
  } else {
    size_t n = 0;
    r = ptx ? l->GetPTXSize(prog, &n) : l->GetCUBINSize(prog, &n);
    if (r != NVRTC_SUCCESS || n == 0) {
      st = DRT_ERROR(DRT_STATUS_INTERNAL, "NVRTC: no %s for %s (%s)", ptx ? "PTX" : "cubin", j->arch,
                     l->GetErrorString(r));
    } else if (!(img->data = malloc(n))) {
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "NVRTC: %zu bytes of %s for %s", n, ptx ? "PTX" : "cubin", j->arch);
    } else {
      r = ptx ? l->GetPTX(prog, img->data) : l->GetCUBIN(prog, img->data);
      if (r != NVRTC_SUCCESS) st = DRT_ERROR(DRT_STATUS_INTERNAL, "NVRTC: reading the image for %s", j->arch);
      img->size = n;
    }
  }
  l->DestroyProgram(&prog);
  if (st) {
    drt_nvrtc_image_free(img);
    return st;
  }
  if (j->cache) cache_write(j->cache, path, j->key, j->arch, img->data, img->size);
  img->ms = now_ms() - t0;
  return DRT_OK;
}

typedef struct pool {
  pthread_mutex_t mu;
  job *jobs;
  size_t n, next;
} pool;

static void *worker(void *arg) {
  pool *pl = arg;
  for (;;) {
    pthread_mutex_lock(&pl->mu);
    size_t i = pl->next++;
    pthread_mutex_unlock(&pl->mu);
    if (i >= pl->n) return NULL;
    pl->jobs[i].st = compile_one(&pl->jobs[i]);
  }
}

drt_status drt_nvrtc_compile(const drt_cuda_program *p, const char *const *archs, size_t n,
                             const drt_nvrtc_compile_options *o, drt_nvrtc_image *images) {
  for (size_t i = 0; i < n; i++) memset(&images[i], 0, sizeof images[i]);
  if (!p || !p->source) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "NVRTC: no program source");
  if (n == 0) return DRT_OK;
  nvrtc_lib lib;
  DRT_RETURN_IF_ERROR(load_nvrtc(&lib));
  char inc[1024], incl[1040];
  DRT_RETURN_IF_ERROR(include_dir(inc, sizeof inc));
  snprintf(incl, sizeof incl, "-I%s", inc);
  char cdir[1024];
  const char *cache = drt_nvrtc_cache_dir(o, cdir, sizeof cdir);
  job *jobs = calloc(n, sizeof *jobs);
  if (!jobs) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "NVRTC jobs");
  /* the key: source, arch, every option and the compiler version */
  uint32_t ver = (uint32_t)(lib.major * 1000 + lib.minor * 10);
  for (size_t i = 0; i < n; i++) {
    uint64_t k = drt_fnv1a64(&p->source_hash, sizeof p->source_hash, 0);
    k = drt_fnv1a64(archs[i], strlen(archs[i]) + 1, k);
    k = drt_fnv1a64(k_options, sizeof k_options, k);
    k = drt_fnv1a64(incl, strlen(incl) + 1, k);
    k = drt_fnv1a64(&ver, sizeof ver, k);
    jobs[i] = (job){&lib, p, archs[i], incl, cache, k, &images[i], DRT_OK};
  }
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  size_t nt = cpus > 0 ? (size_t)cpus : 1;
  if (o && o->max_threads > 0 && (size_t)o->max_threads < nt) nt = (size_t)o->max_threads;
  if (nt > n) nt = n;
  if (lib.major < 12) nt = 1; /* older NVRTC is not documented as thread-safe */
  pool pl = {.jobs = jobs, .n = n, .next = 0};
  pthread_mutex_init(&pl.mu, NULL);
  pthread_t th[64];
  size_t started = 0;
  for (size_t t = 1; t < nt && t < 64; t++) {
    if (pthread_create(&th[started], NULL, worker, &pl) != 0) break;
    started++;
  }
  worker(&pl); /* this thread works too */
  for (size_t t = 0; t < started; t++) pthread_join(th[t], NULL);
  pthread_mutex_destroy(&pl.mu);
  drt_status st = DRT_OK;
  for (size_t i = 0; i < n; i++) {
    if (jobs[i].st && !st) st = jobs[i].st;
    else drt_status_free(jobs[i].st);
  }
  free(jobs);
  if (st)
    for (size_t i = 0; i < n; i++) drt_nvrtc_image_free(&images[i]);
  return st;
}

#endif /* DRT_HAVE_CUDA */
