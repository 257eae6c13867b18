/* NVRTC (codegen/nvrtc.h): compiling for cubin and PTX targets, compile errors naming the kernel,
 * the disk cache (hits, corrupt entries, off), a missing libnvrtc, arch validation; and the plan's
 * CUDA section (runtime/plan.c): round trip and every corruption rejected.
 * The NVRTC tests skip() when libnvrtc cannot be loaded. */
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codegen/nvrtc.h"
#include "passes/canonicalize.h"
#include "runtime/plan.h"

/* ---- helpers ------------------------------------------------------------------------------- */
/* A program the way codegen.c lays it out: library part, then kernel wrappers whose byte ranges
 * are recorded. */
typedef struct test_program {
  drt_cuda_program p;
  drt_cuda_kernel k[4];
  char src[16384];
} test_program;

static void program_init(test_program *t, const char *library, const char *const *names, const char *const *wrappers,
                         int n) {
  memset(t, 0, sizeof *t);
  size_t len = (size_t)snprintf(t->src, sizeof t->src, "/* ---- codegen/kernels/test.cuh ---- */\n%s"
                                "/* ---- generated kernels ---- */\n", library);
  for (int i = 0; i < n; i++) {
    snprintf(t->k[i].name, sizeof t->k[i].name, "%s", names[i]);
    t->k[i].src_begin = (uint32_t)len;
    len += (size_t)snprintf(t->src + len, sizeof t->src - len, "%s\n", wrappers[i]);
    t->k[i].src_end = (uint32_t)len;
    t->k[i].max_threads = 128;
  }
  t->p.source = t->src;
  t->p.source_len = len;
  t->p.source_hash = drt_fnv1a64(t->src, len, 0);
  t->p.kernels = t->k;
  t->p.num_kernels = (size_t)n;
}

static const char k_library[] =
    "#include <cuda_fp16.h>\n"
    "template <int N> __device__ void drt_test_scale(__half *x, float s) {\n"
    "  int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
    "  if (i < N) x[i] = __float2half(__half2float(x[i]) * s);\n"
    "}\n";
static const char *const k_names[] = {"drt_ktest_a", "drt_ktest_b"};
static const char *const k_wrappers[] = {
    "extern \"C\" __global__ void __launch_bounds__(128) drt_ktest_a(__half *x) { drt_test_scale<1000>(x, 2.0f); }",
    "extern \"C\" __global__ void __launch_bounds__(128) drt_ktest_b(__half *x) { drt_test_scale<77>(x, 0.5f); }"};

static bool have_nvrtc(void) {
  int major, minor;
  drt_status s = drt_nvrtc_version(&major, &minor);
  if (s) {
    print_message("NVRTC unavailable: %s\n", drt_status_message(s));
    drt_status_free(s);
    return false;
  }
  return true;
}

static void make_tmpdir(char *buf, size_t size) {
  snprintf(buf, size, "/tmp/drt_test_nvrtc_XXXXXX");
  assert_non_null(mkdtemp(buf));
}

static void rm_rf(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    unlink(p);
  }
  closedir(d);
  rmdir(dir);
}

/* Paths of the cache entries in dir (sorted by name), returns the count. */
static int cache_entries(const char *dir, char (*out)[512], int max) {
  DIR *d = opendir(dir);
  int n = 0;
  if (!d) return 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL && n < max) {
    if (e->d_name[0] == '.') continue;
    snprintf(out[n++], 512, "%s/%s", dir, e->d_name);
  }
  closedir(d);
  return n;
}

/* ---- arch strings -------------------------------------------------------------------------- */
static void test_arch_parse(void **state) {
  (void)state;
  int sm = 0;
  bool ptx = true;
  assert_true(drt_nvrtc_arch_parse("sm_80", &sm, &ptx));
  assert_int_equal(sm, 80);
  assert_false(ptx);
  assert_true(drt_nvrtc_arch_parse("compute_90", &sm, &ptx));
  assert_int_equal(sm, 90);
  assert_true(ptx);
  assert_true(drt_nvrtc_arch_parse("sm_90a", &sm, &ptx));
  assert_true(drt_nvrtc_arch_parse("sm_100f", &sm, &ptx));
  assert_int_equal(sm, 100);
  const char *bad[] = {"", "sm_", "sm_8", "sm_8x", "sm80", "SM_80", "compute90", "sm_80b", "sm_90aa", "sm_1000",
                       "cubin_80", "sm_80 "};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (drt_nvrtc_arch_parse(bad[i], NULL, NULL)) print_error("accepted '%s'\n", bad[i]);
    assert_false(drt_nvrtc_arch_parse(bad[i], NULL, NULL));
  }
}

static void test_check_archs(void **state) {
  (void)state;
  if (!have_nvrtc()) skip();
  char a[16][16];
  int n = 0;
  DRT_ASSERT_OK(drt_nvrtc_check_archs(DRT_NVRTC_DEFAULT_ARCHS, a, 16, &n));
  assert_int_equal(n, 5);
  assert_string_equal(a[0], "sm_80");
  assert_string_equal(a[4], "compute_90");
  DRT_ASSERT_OK(drt_nvrtc_check_archs(" sm_86 , compute_80", a, 16, &n));
  assert_int_equal(n, 2);
  assert_string_equal(a[0], "sm_86");
  assert_string_equal(a[1], "compute_80");
  DRT_ASSERT_ERROR(drt_nvrtc_check_archs("sm_80,sm_81", a, 16, &n), DRT_STATUS_INVALID_ARGUMENT,
                   "arch sm_81: NVRTC");
  DRT_ASSERT_ERROR(drt_nvrtc_check_archs("sm80", a, 16, &n), DRT_STATUS_INVALID_ARGUMENT, "not of the form sm_XX");
  /* pre-Ampere targets: refused by name before NVRTC would fail on the kernel library */
  DRT_ASSERT_ERROR(drt_nvrtc_check_archs("sm_80,sm_75", a, 16, &n), DRT_STATUS_UNSUPPORTED,
                   "arch sm_75: distilrt's CUDA kernels need compute capability 8.0 or newer");
  DRT_ASSERT_ERROR(drt_nvrtc_check_archs("compute_70", a, 16, &n), DRT_STATUS_UNSUPPORTED, "--target cpu");
  DRT_ASSERT_ERROR(drt_nvrtc_check_archs("sm_80,,sm_90", a, 16, &n), DRT_STATUS_INVALID_ARGUMENT, "empty entry");
  DRT_ASSERT_ERROR(drt_nvrtc_check_archs("sm_80,sm_80", a, 16, &n), DRT_STATUS_INVALID_ARGUMENT, "listed twice");
  DRT_ASSERT_ERROR(drt_nvrtc_check_archs("sm_80,sm_86,sm_90", a, 2, &n), DRT_STATUS_INVALID_ARGUMENT,
                   "more than 2 archs");
  int sup[64], ns = 0;
  DRT_ASSERT_OK(drt_nvrtc_supported_archs(sup, 64, &ns));
  assert_true(ns > 0);
  for (int i = 1; i < ns; i++) assert_true(sup[i] > sup[i - 1]);
}

/* ---- compiling ---------------------------------------------------------------------------- */
static void test_compile_cubin_and_ptx(void **state) {
  (void)state;
  if (!have_nvrtc()) skip();
  test_program t;
  program_init(&t, k_library, k_names, k_wrappers, 2);
  const char *archs[] = {"sm_80", "compute_90"};
  drt_nvrtc_image im[2];
  drt_nvrtc_compile_options o;
  drt_nvrtc_compile_options_init(&o);
  o.cache_dir = "off";
  DRT_ASSERT_OK(drt_nvrtc_compile(&t.p, archs, 2, &o, im));
  assert_string_equal(im[0].arch, "sm_80");
  assert_true(im[0].size > 64);
  assert_memory_equal(im[0].data, "\x7f" "ELF", 4);
  assert_false(im[0].from_cache);
  assert_string_equal(im[1].arch, "compute_90");
  const char *ptx = im[1].data;
  assert_int_equal(ptx[im[1].size - 1], 0);
  assert_non_null(strstr(ptx, ".target sm_90"));
  assert_non_null(strstr(ptx, ".entry drt_ktest_a"));
  assert_non_null(strstr(ptx, ".entry drt_ktest_b"));
  /* the cubin holds both kernel names (extern "C": unmangled) */
  bool found = false;
  for (size_t i = 0; i + 11 <= im[0].size && !found; i++) found = memcmp((char *)im[0].data + i, "drt_ktest_b", 11) == 0;
  assert_true(found);
  drt_nvrtc_image_free(&im[0]);
  drt_nvrtc_image_free(&im[1]);
  assert_null(im[0].data);
  drt_nvrtc_image_free(NULL);
}

static void test_syntax_error_names_kernel(void **state) {
  (void)state;
  if (!have_nvrtc()) skip();
  const char *w[] = {k_wrappers[0], "extern \"C\" __global__ void drt_ktest_b(__half *x) {\n  x[0] = ;\n}"};
  test_program t;
  program_init(&t, k_library, k_names, w, 2);
  const char *archs[] = {"sm_80", "sm_90"};
  drt_nvrtc_image im[2];
  drt_nvrtc_compile_options o;
  drt_nvrtc_compile_options_init(&o);
  o.cache_dir = "off";
  drt_status s = drt_nvrtc_compile(&t.p, archs, 2, &o, im);
  assert_non_null(s);
  const char *m = drt_status_message(s);
  assert_int_equal(drt_status_code_of(s), DRT_STATUS_INTERNAL);
  assert_non_null(strstr(m, "first error in kernel drt_ktest_b"));
  assert_null(strstr(m, "drt_ktest_a"));
  assert_non_null(strstr(m, "drt_program.cu(")); /* the log */
  assert_non_null(strstr(m, "expected an expression"));
  drt_status_free(s);
  for (int i = 0; i < 2; i++) assert_null(im[i].data); /* nothing left allocated */
}

static void test_library_error_names_instantiating_kernel(void **state) {
  (void)state;
  if (!have_nvrtc()) skip();
  /* a template that only fails when instantiated: the error line is in the library, the log's
   * "detected during instantiation ... at line N" names the wrapper */
  const char *lib = "template <typename T> __device__ void drt_test_bad(float *x) {\n"
                    "  T *p = x;\n"
                    "  p[0] = 1;\n"
                    "}\n";
  const char *w[] = {"extern \"C\" __global__ void drt_ktest_a(float *x) { x[0] = 1.f; }",
                     "extern \"C\" __global__ void drt_ktest_b(float *x) { drt_test_bad<float>(x); drt_test_bad<int>(x); }"};
  test_program t;
  program_init(&t, lib, k_names, w, 2);
  const char *archs[] = {"sm_80"};
  drt_nvrtc_image im[1];
  drt_nvrtc_compile_options o;
  drt_nvrtc_compile_options_init(&o);
  o.cache_dir = "off";
  drt_status s = drt_nvrtc_compile(&t.p, archs, 1, &o, im);
  assert_non_null(s);
  const char *m = drt_status_message(s);
  if (!strstr(m, "first error in codegen/kernels/test.cuh, instantiated by kernel drt_ktest_b"))
    print_error("%s\n", m);
  assert_non_null(strstr(m, "first error in codegen/kernels/test.cuh, instantiated by kernel drt_ktest_b"));
  drt_status_free(s);
}

static void test_long_log_is_trimmed(void **state) {
  (void)state;
  if (!have_nvrtc()) skip();
  /* many errors: the message keeps DRT_NVRTC_MAX_LOG bytes of the log */
  static char lib[8000];
  size_t len = 0;
  for (int i = 0; i < 120; i++)
    len += (size_t)snprintf(lib + len, sizeof lib - len, "__device__ int f%d() { return undefined_%d; }\n", i, i);
  const char *w[] = {"extern \"C\" __global__ void drt_ktest_a(float *x) { x[0] = 1.f; }"};
  test_program t;
  program_init(&t, lib, k_names, w, 1);
  const char *archs[] = {"sm_80"};
  drt_nvrtc_image im[1];
  drt_nvrtc_compile_options o;
  drt_nvrtc_compile_options_init(&o);
  o.cache_dir = "off";
  drt_status s = drt_nvrtc_compile(&t.p, archs, 1, &o, im);
  assert_non_null(s);
  const char *m = drt_status_message(s);
  assert_non_null(strstr(m, "first error in codegen/kernels/test.cuh"));
  assert_non_null(strstr(m, "undefined_0"));
  assert_non_null(strstr(m, "NVRTC log trimmed"));
  assert_true(strlen(m) < DRT_NVRTC_MAX_LOG + 1024);
  drt_status_free(s);
}

static void test_cache_hits_and_corrupt_entries(void **state) {
  (void)state;
  if (!have_nvrtc()) skip();
  char dir[64];
  make_tmpdir(dir, sizeof dir);
  char sub[128];
  snprintf(sub, sizeof sub, "%s/nested/cache", dir); /* created on demand */
  test_program t;
  program_init(&t, k_library, k_names, k_wrappers, 2);
  const char *archs[] = {"sm_80", "sm_86", "compute_90"};
  drt_nvrtc_image a[3], b[3], c[3];
  drt_nvrtc_compile_options o;
  drt_nvrtc_compile_options_init(&o);
  o.cache_dir = sub;
  DRT_ASSERT_OK(drt_nvrtc_compile(&t.p, archs, 3, &o, a));
  for (int i = 0; i < 3; i++) assert_false(a[i].from_cache);
  char entries[8][512];
  assert_int_equal(cache_entries(sub, entries, 8), 3); /* no temporary files left */
  /* second call: every image from the cache, byte-identical, and faster */
  DRT_ASSERT_OK(drt_nvrtc_compile(&t.p, archs, 3, &o, b));
  for (int i = 0; i < 3; i++) {
    assert_true(b[i].from_cache);
    assert_int_equal(a[i].size, b[i].size);
    assert_memory_equal(a[i].data, b[i].data, a[i].size);
    assert_true(b[i].ms < a[i].ms);
  }
  /* corrupt every entry in a different way: flipped payload byte, truncated, empty */
  int n = cache_entries(sub, entries, 8);
  assert_int_equal(n, 3);
  for (int i = 0; i < n; i++) {
    FILE *f = fopen(entries[i], "r+b");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    if (i == 0) {
      fseek(f, size - 3, SEEK_SET);
      int ch = fgetc(f);
      fseek(f, size - 3, SEEK_SET);
      fputc(ch ^ 0x5a, f);
    }
    fclose(f);
    if (i == 1) assert_int_equal(truncate(entries[i], size / 2), 0);
    if (i == 2) assert_int_equal(truncate(entries[i], 0), 0);
  }
  DRT_ASSERT_OK(drt_nvrtc_compile(&t.p, archs, 3, &o, c));
  for (int i = 0; i < 3; i++) {
    assert_false(c[i].from_cache); /* ignored and recompiled */
    assert_int_equal(a[i].size, c[i].size);
    assert_memory_equal(a[i].data, c[i].data, a[i].size);
    drt_nvrtc_image_free(&b[i]);
    drt_nvrtc_image_free(&c[i]);
  }
  /* ... and rewritten: hits again */
  DRT_ASSERT_OK(drt_nvrtc_compile(&t.p, archs, 3, &o, b));
  for (int i = 0; i < 3; i++) {
    assert_true(b[i].from_cache);
    drt_nvrtc_image_free(&b[i]);
  }
  /* another source: a miss */
  program_init(&t, k_library, k_names, k_wrappers, 1);
  DRT_ASSERT_OK(drt_nvrtc_compile(&t.p, archs, 1, &o, b));
  assert_false(b[0].from_cache);
  drt_nvrtc_image_free(&b[0]);
  /* DRT_CACHE_DIR from the environment, and "off" */
  setenv("DRT_CACHE_DIR", sub, 1);
  DRT_ASSERT_OK(drt_nvrtc_compile(&t.p, archs, 1, NULL, b));
  assert_true(b[0].from_cache);
  drt_nvrtc_image_free(&b[0]);
  setenv("DRT_CACHE_DIR", "off", 1);
  char buf[256];
  assert_null(drt_nvrtc_cache_dir(NULL, buf, sizeof buf));
  DRT_ASSERT_OK(drt_nvrtc_compile(&t.p, archs, 1, NULL, b));
  assert_false(b[0].from_cache);
  drt_nvrtc_image_free(&b[0]);
  unsetenv("DRT_CACHE_DIR");
  for (int i = 0; i < 3; i++) drt_nvrtc_image_free(&a[i]);
  /* an unwritable cache directory does not fail the compile */
  o.cache_dir = "/proc/drt_no_such_dir";
  DRT_ASSERT_OK(drt_nvrtc_compile(&t.p, archs, 1, &o, b));
  drt_nvrtc_image_free(&b[0]);
  n = cache_entries(sub, entries, 8);
  for (int i = 0; i < n; i++) unlink(entries[i]);
  rmdir(sub);
  snprintf(sub, sizeof sub, "%s/nested", dir);
  rmdir(sub);
  rm_rf(dir);
}

static void test_cache_dir_from_environment(void **state) {
  (void)state;
  char buf[256];
  const char *old_xdg = getenv("XDG_CACHE_HOME");
  char saved[256] = "";
  if (old_xdg) snprintf(saved, sizeof saved, "%s", old_xdg);
  unsetenv("DRT_CACHE_DIR");
  setenv("XDG_CACHE_HOME", "/x/cache", 1);
  assert_string_equal(drt_nvrtc_cache_dir(NULL, buf, sizeof buf), "/x/cache/distilrt");
  unsetenv("XDG_CACHE_HOME");
  char home[512] = "";
  if (getenv("HOME")) snprintf(home, sizeof home, "%s", getenv("HOME"));
  setenv("HOME", "/home/u", 1);
  assert_string_equal(drt_nvrtc_cache_dir(NULL, buf, sizeof buf), "/home/u/.cache/distilrt");
  setenv("DRT_CACHE_DIR", "/c", 1);
  assert_string_equal(drt_nvrtc_cache_dir(NULL, buf, sizeof buf), "/c");
  drt_nvrtc_compile_options o;
  drt_nvrtc_compile_options_init(&o);
  o.cache_dir = "off";
  assert_null(drt_nvrtc_cache_dir(&o, buf, sizeof buf));
  unsetenv("DRT_CACHE_DIR");
  if (saved[0]) setenv("XDG_CACHE_HOME", saved, 1);
  if (home[0]) setenv("HOME", home, 1);
  else unsetenv("HOME");
}

static void test_missing_nvrtc(void **state) {
  (void)state;
#ifndef DRT_HAVE_CUDA
  skip(); /* every function is UNAVAILABLE in this build */
#endif
  setenv("DRT_NVRTC_LIBRARY", "/nonexistent/libnvrtc.so.13", 1);
  int major, minor;
  DRT_ASSERT_ERROR(drt_nvrtc_version(&major, &minor), DRT_STATUS_UNAVAILABLE, "/nonexistent/libnvrtc.so.13");
  test_program t;
  program_init(&t, k_library, k_names, k_wrappers, 2);
  const char *archs[] = {"sm_80"};
  drt_nvrtc_image im[1];
  DRT_ASSERT_ERROR(drt_nvrtc_compile(&t.p, archs, 1, NULL, im), DRT_STATUS_UNAVAILABLE, "NVRTC");
  assert_null(im[0].data);
  char a[4][16];
  int n;
  DRT_ASSERT_ERROR(drt_nvrtc_check_archs("sm_80", a, 4, &n), DRT_STATUS_UNAVAILABLE, "could not be loaded");
  /* not a library at all */
  setenv("DRT_NVRTC_LIBRARY", "/etc/hostname", 1);
  DRT_ASSERT_ERROR(drt_nvrtc_version(&major, &minor), DRT_STATUS_UNAVAILABLE, "could not be loaded");
  unsetenv("DRT_NVRTC_LIBRARY");
}

/* ---- the plan's CUDA section --------------------------------------------------------------- */
/* y = Relu(x + c), x: 2x3 */
static drt_graph *small_graph(void) {
  drt_graph *g;
  if (drt_graph_create(&g)) return NULL;
  g->opset = 17;
  drt_shape sx = drt_test_shape(2, (int64_t[]){2, 3});
  float cv[6] = {1, -2, 3, -4, 5, -6};
  drt_value *x = drt_graph_add_value(g, "x", DRT_DTYPE_FLOAT32, &sx), *c;
  drt_graph_add_input(g, x);
  if (drt_graph_add_const(g, "c", DRT_DTYPE_FLOAT32, &sx, cv, &c)) return NULL;
  drt_value *a = drt_graph_add_value(g, "a", DRT_DTYPE_UNDEFINED, NULL);
  drt_value *y = drt_graph_add_value(g, "y", DRT_DTYPE_UNDEFINED, NULL);
  drt_value *in[2] = {x, c};
  if (drt_graph_add_node(g, DRT_OP_ADD, "add", in, 2, &a, 1, NULL) ||
      drt_graph_add_node(g, DRT_OP_RELU, "relu", &a, 1, &y, 1, NULL) || drt_graph_add_output(g, y))
    return NULL;
  drt_pass_ctx pc = {0};
  bool changed;
  drt_status s = drt_pass_canonicalize(g, &pc, &changed);
  if (s) {
    drt_status_free(s);
    return NULL;
  }
  return g;
}

#define NIMG 4
static uint8_t k_cubin[200], k_ptx[77], k_cubin2[64], k_cubin3[128];
static const char *const k_archs[NIMG] = {"sm_80", "compute_90", "sm_86", "sm_90a"};
static const void *const k_data[NIMG] = {k_cubin, k_ptx, k_cubin2, k_cubin3};
static const uint64_t k_sizes[NIMG] = {sizeof k_cubin, sizeof k_ptx, sizeof k_cubin2, sizeof k_cubin3};

static void *serialize_cuda(drt_graph *g, size_t *size, uint32_t targets) {
  memcpy(k_cubin, "\x7f" "ELF", 4);
  for (size_t i = 4; i < sizeof k_cubin; i++) k_cubin[i] = (uint8_t)(i * 7);
  memcpy(k_cubin2, "\x7f" "ELF", 4);
  for (size_t i = 4; i < sizeof k_cubin2; i++) k_cubin2[i] = (uint8_t)(i * 3 + 1);
  memcpy(k_cubin3, "\x7f" "ELF", 4);
  for (size_t i = 4; i < sizeof k_cubin3; i++) k_cubin3[i] = (uint8_t)(i * 5 + 2);
  memset(k_ptx, 'p', sizeof k_ptx);
  k_ptx[sizeof k_ptx - 1] = 0;
  drt_plan_contents c;
  memset(&c, 0, sizeof c);
  c.graph = g;
  c.targets = targets;
  snprintf(c.cuda_archs, sizeof c.cuda_archs, "sm_80,compute_90,sm_86,sm_90a");
  c.cuda.present = true;
  c.cuda.precision = DRT_CUDA_PRECISION_BF16;
  c.cuda.source_hash = 0x0123456789abcdefull;
  c.cuda.nvrtc_version = 13000;
  snprintf(c.cuda.options, sizeof c.cuda.options, "%s", drt_nvrtc_options());
  c.cuda.num_images = NIMG;
  for (int i = 0; i < NIMG; i++) {
    snprintf(c.cuda.images[i].arch, sizeof c.cuda.images[i].arch, "%s", k_archs[i]);
    c.cuda.images[i].data = k_data[i];
    c.cuda.images[i].size = k_sizes[i];
  }
  void *bytes = NULL;
  drt_status s = drt_plan_serialize(&c, &bytes, size);
  if (s) {
    print_error("%s\n", drt_status_message(s));
    drt_status_free(s);
  }
  return bytes;
}

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void wr64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* The section table entry of the CUDA section. */
static uint8_t *cuda_entry(uint8_t *b) {
  uint64_t table = rd64(b + 32);
  uint32_t n = rd32(b + 24);
  for (uint32_t i = 0; i < n; i++)
    if (rd32(b + table + 32 * i) == DRT_PLAN_SECTION_CUDA) return b + table + 32 * i;
  return NULL;
}

/* Recomputes the CUDA section's checksum (and the header's). */
static void fix_crcs(uint8_t *b) {
  uint8_t *e = cuda_entry(b);
  wr32(e + 24, drt_crc32(b + rd64(e + 8), (size_t)rd64(e + 16)));
  wr32(b + 48, drt_crc32(b, 48));
}

static drt_status parse_copy(const uint8_t *bytes, size_t size, drt_plan_contents *c) {
  void *copy = malloc(size);
  memcpy(copy, bytes, size);
  return drt_plan_parse(copy, size, "mem", c);
}

static void test_plan_cuda_roundtrip(void **state) {
  (void)state;
  drt_graph *g = small_graph();
  assert_non_null(g);
  size_t size;
  uint8_t *bytes = serialize_cuda(g, &size, DRT_PLAN_TARGET_CPU | DRT_PLAN_TARGET_CUDA);
  assert_non_null(bytes);
  drt_plan_contents c;
  DRT_ASSERT_OK(parse_copy(bytes, size, &c));
  assert_true(c.cuda.present);
  assert_int_equal(c.targets, DRT_PLAN_TARGET_CPU | DRT_PLAN_TARGET_CUDA);
  assert_string_equal(c.cuda_archs, "sm_80,compute_90,sm_86,sm_90a");
  assert_int_equal(c.cuda.precision, DRT_CUDA_PRECISION_BF16);
  assert_true(c.cuda.source_hash == 0x0123456789abcdefull);
  assert_int_equal(c.cuda.nvrtc_version, 13000);
  assert_string_equal(c.cuda.options, drt_nvrtc_options());
  assert_int_equal(c.cuda.num_images, NIMG);
  for (int i = 0; i < NIMG; i++) {
    assert_string_equal(c.cuda.images[i].arch, k_archs[i]);
    assert_int_equal(c.cuda.images[i].size, k_sizes[i]);
    assert_memory_equal(c.cuda.images[i].data, k_data[i], k_sizes[i]);
    /* zero-copy into the file, 64-aligned */
    uintptr_t off = (uintptr_t)c.cuda.images[i].data - (uintptr_t)c.file_data;
    assert_true(off < c.file_size);
    assert_int_equal(off % 64, 0);
  }
  const drt_graph *gs[4];
  assert_int_equal(drt_plan_cuda_graphs(&c, gs, 4), 1);
  assert_ptr_equal(gs[0], c.graph);
  assert_string_equal(drt_plan_section_name(DRT_PLAN_SECTION_CUDA), "cuda");
  drt_plan_contents_free(&c);
  free(bytes);
  drt_graph_destroy(g);
  /* a plan without the section parses with present = false */
  g = small_graph();
  drt_plan_contents e;
  memset(&e, 0, sizeof e);
  e.graph = g;
  e.targets = DRT_PLAN_TARGET_CPU;
  void *b2;
  size_t s2;
  DRT_ASSERT_OK(drt_plan_serialize(&e, &b2, &s2));
  DRT_ASSERT_OK(drt_plan_parse(b2, s2, "mem", &c));
  assert_false(c.cuda.present);
  drt_plan_contents_free(&c);
  /* the writer refuses an empty section, an empty image, an unknown precision */
  e.cuda.present = true;
  DRT_ASSERT_ERROR(drt_plan_serialize(&e, &b2, &s2), DRT_STATUS_INVALID_ARGUMENT, "CUDA section with 0 images");
  e.cuda.num_images = 1;
  DRT_ASSERT_ERROR(drt_plan_serialize(&e, &b2, &s2), DRT_STATUS_INVALID_ARGUMENT, "empty or unnamed");
  e.cuda.precision = 7;
  DRT_ASSERT_ERROR(drt_plan_serialize(&e, &b2, &s2), DRT_STATUS_INVALID_ARGUMENT, "precision 7");
  drt_graph_destroy(g);
}

/* Section layout of serialize_cuda's plan (offsets inside the section). */
enum {
  OFF_PRECISION = 0,
  OFF_HASH = 1,
  OFF_VERSION = 9,
  OFF_OPTIONS = 13, /* u32 length + bytes */
};

typedef struct layout {
  size_t num_images;          /* position of u32 num_images */
  size_t arch[NIMG], off[NIMG], sz[NIMG]; /* positions of each image's table fields */
} layout;

static layout section_layout(const uint8_t *s) {
  layout l;
  size_t p = OFF_OPTIONS + 4 + rd32(s + OFF_OPTIONS);
  l.num_images = p;
  p += 4;
  for (int i = 0; i < NIMG; i++) {
    l.arch[i] = p;
    p += 4 + rd32(s + p);
    l.off[i] = p;
    l.sz[i] = p + 8;
    p += 16;
  }
  return l;
}

static void test_plan_cuda_corruptions(void **state) {
  (void)state;
  drt_graph *g = small_graph();
  assert_non_null(g);
  size_t size;
  uint8_t *good = serialize_cuda(g, &size, DRT_PLAN_TARGET_CPU | DRT_PLAN_TARGET_CUDA);
  assert_non_null(good);
  uint8_t *b = malloc(size);
  const uint8_t *gs = good + rd64(cuda_entry(good) + 8);
  uint64_t gsize = rd64(cuda_entry(good) + 16);
  layout L = section_layout(gs);
  struct {
    const char *what, *needle;
  } cases[] = {
      {"precision 4", "precision 4"},
      {"no images", "0 images"},
      {"17 images", "17 images"},
      {"malformed arch", "malformed arch 'sm_8x'"},
      {"arch prefix", "malformed arch 'xm_80'"},
      {"arch suffix", "malformed arch 'sm_80b'"},
      {"duplicate arch", "arch sm_80 appears twice"},
      {"image past the section", "outside the section"},
      {"huge image", "outside the section"},
      {"unaligned image", "outside the section"},
      {"image inside the table", "outside the section"},
      {"overlapping images", "overlaps"},
      {"empty image", "outside the section"},
      {"cubin without ELF magic", "is not a cubin (ELF)"},
      {"PTX without NUL", "is not NUL-terminated PTX"},
      {"trailing bytes", "trailing bytes"},
      {"truncated table", "truncated image table"},
      {"truncated header", "truncated header"},
      {"options too long", "truncated header"},
      {"targets without CUDA", "targets do not include CUDA"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    memcpy(b, good, size);
    uint8_t *e = cuda_entry(b);
    uint8_t *s = b + rd64(e + 8);
    switch (k) {
      case 0: s[OFF_PRECISION] = 4; break;
      case 1: wr32(s + L.num_images, 0); break;
      case 2: wr32(s + L.num_images, 17); break;
      case 3: s[L.arch[0] + 4 + 3] = '8', s[L.arch[0] + 4 + 4] = 'x'; break;
      case 4: s[L.arch[0] + 4] = 'x'; break;
      case 5: memcpy(s + L.arch[3] + 4, "sm_80b", 6); break; /* "sm_90a" -> "sm_80b" */
      case 6: memcpy(s + L.arch[2] + 4, "sm_80", 5); break;  /* "sm_86" -> "sm_80" */
      case 7: wr64(s + L.off[3], gsize); break;
      case 8: wr64(s + L.sz[1], UINT64_MAX - 8); break;
      case 9: wr64(s + L.off[1], rd64(s + L.off[1]) + 8); break;
      case 10: wr64(s + L.off[0], 0); break;
      case 11: wr64(s + L.off[1], rd64(s + L.off[0])); break;
      case 12: wr64(s + L.sz[0], 0); break;
      case 13: s[rd64(s + L.off[2]) + 1] = 'X'; break;
      case 14: s[rd64(s + L.off[1]) + rd64(s + L.sz[1]) - 1] = 'p'; break;
      case 15: wr64(s + L.sz[3], rd64(s + L.sz[3]) - 1); break;
      case 16: wr64(e + 16, L.off[1]); break;          /* section ends inside the image table */
      case 17: wr64(e + 16, OFF_VERSION + 2); break;   /* ends inside the header */
      case 18: wr32(s + OFF_OPTIONS, 300); break;      /* longer than the 255 bytes allowed */
      case 19: wr32(b + 20, DRT_PLAN_TARGET_CPU); break;
    }
    fix_crcs(b);
    drt_plan_contents c;
    drt_status st = parse_copy(b, size, &c);
    if (!st) {
      print_error("case '%s' was accepted\n", cases[k].what);
      drt_plan_contents_free(&c);
      fail();
    }
    if (drt_status_code_of(st) != DRT_STATUS_CORRUPT || !strstr(drt_status_message(st), cases[k].needle))
      print_error("case '%s': %s\n", cases[k].what, drt_status_message(st));
    assert_int_equal(drt_status_code_of(st), DRT_STATUS_CORRUPT);
    assert_non_null(strstr(drt_status_message(st), cases[k].needle));
    assert_non_null(strstr(drt_status_message(st), "cuda section"));
    drt_status_free(st);
  }
  /* a bit flip without fixing the checksum */
  memcpy(b, good, size);
  b[rd64(cuda_entry(b) + 8) + L.num_images + 8] ^= 1;
  drt_plan_contents c;
  DRT_ASSERT_ERROR(parse_copy(b, size, &c), DRT_STATUS_CORRUPT, "checksum mismatch in the cuda section");
  /* every truncation of the section (the table entry shrunk) is refused */
  for (uint64_t n = 0; n < gsize; n += (n < 200 ? 1 : 29)) {
    memcpy(b, good, size);
    wr64(cuda_entry(b) + 16, n);
    fix_crcs(b);
    drt_status st = parse_copy(b, size, &c);
    assert_non_null(st);
    assert_int_equal(drt_status_code_of(st), DRT_STATUS_CORRUPT);
    drt_status_free(st);
  }
  /* random byte changes in the section never crash and never load with a changed image table */
  drt_test_rng r = {99};
  for (int it = 0; it < 300; it++) {
    memcpy(b, good, size);
    uint8_t *s = b + rd64(cuda_entry(b) + 8);
    size_t at = (size_t)(drt_test_next(&r) % (L.sz[NIMG - 1] + 8));
    s[at] = (uint8_t)drt_test_next(&r);
    fix_crcs(b);
    drt_status st = parse_copy(b, size, &c);
    if (st) {
      drt_status_free(st);
      continue;
    }
    for (uint32_t i = 0; i < c.cuda.num_images; i++) {
      uintptr_t off = (uintptr_t)c.cuda.images[i].data - (uintptr_t)c.file_data;
      assert_true(off + c.cuda.images[i].size <= c.file_size);
    }
    drt_plan_contents_free(&c);
  }
  free(b);
  free(good);
  drt_graph_destroy(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_arch_parse),
      cmocka_unit_test(test_check_archs),
      cmocka_unit_test(test_compile_cubin_and_ptx),
      cmocka_unit_test(test_syntax_error_names_kernel),
      cmocka_unit_test(test_library_error_names_instantiating_kernel),
      cmocka_unit_test(test_long_log_is_trimmed),
      cmocka_unit_test(test_cache_hits_and_corrupt_entries),
      cmocka_unit_test(test_cache_dir_from_environment),
      cmocka_unit_test(test_missing_nvrtc),
      cmocka_unit_test(test_plan_cuda_roundtrip),
      cmocka_unit_test(test_plan_cuda_corruptions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
