/* Sessions and the CUDA backend choice (include/distilrt.h, drt_backend) on a machine where the
 * GPU cannot be used: the test points DRT_CUDA_LIBRARY at a library that does not exist, so the
 * driver is "missing" even where one is installed.
 *
 * The plan: sample[1,4,8,8], timestep[1], cond[1,4,8,8] ->
 *   pred = Tanh(sample * W + cond * (timestep * 0.001))
 * compiled by the whole pass pipeline, with the roles generation needs, once as a CPU plan and
 * once with a CUDA section (the program rendered by codegen when it can be; the image is a
 * placeholder, since no driver loads it here).
 *
 *   - backend CUDA on the CUDA plan fails with UNAVAILABLE naming the missing driver and the
 *     hint "(use --backend cpu to run this plan on the CPU)";
 *   - AUTO on the CUDA plan falls back to the CPU with a warning through the log callback, and
 *     runs and generates exactly like a CPU session (bitwise: same kernels);
 *   - backend CUDA on the CPU-only plan fails with INVALID_ARGUMENT "compiled without --target
 *     cuda"; AUTO and CPU on either plan run on the CPU without a warning;
 *   - a plan whose header targets CUDA only never runs on the CPU (UNAVAILABLE, no fallback);
 *   - GPU-only calls answer clearly on a CPU session (profile: UNSUPPORTED; generation time < 0);
 *   - the CLI: drt run / generate / bench --backend cuda exit with code 3 and the same messages
 *     (drt run of an ONNX model with --backend cuda too);
 * With DRT_TEST_CUDA_EMU=<the emulator's mock libcuda, tests/cuda_emu> the CUDA path runs for real
 * on the CPU instead (the test compiles the plan's program with the emulator header): CUDA
 * sessions run and generate like CPU sessions (device-resident loop, Philox noise), a second
 * generation with another seed and other conditioning replays the captured CUDA graph, other
 * options capture a new one, and the host loop on the GPU (DRT_CUDA_DEVICE_LOOP=0) agrees too;
 * threads loading one plan's module at once and generating agree with the CPU as well. */
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codegen/codegen.h"
#include "distilrt.h"
#include "passes/pipeline.h"
#include "runtime/cuda/cuda.h"
#include "runtime/plan.h"

enum { C = 4, HW = 8, NUMEL = C * HW * HW };

static float g_w[NUMEL], g_cond[NUMEL], g_sample[NUMEL];
static void *g_cpu_bytes, *g_cuda_bytes, *g_cuda_only_bytes;
static size_t g_cpu_size, g_cuda_size, g_cuda_only_size;
static char g_cuda_path[256], g_cpu_path[256];

/* ---- log capture ---- */
static char g_log[8192];
static int g_warnings;
static void capture_log(drt_log_level level, const char *msg, void *user) {
  (void)user;
  if (level == DRT_LOG_WARN) g_warnings++;
  size_t n = strlen(g_log);
  snprintf(g_log + n, sizeof g_log - n, "%s\n", msg);
}
static void log_reset(void) {
  g_log[0] = 0;
  g_warnings = 0;
}

static drt_value *node(drt_graph *g, drt_op op, const char *name, drt_value *a, drt_value *b) {
  drt_value *out = drt_graph_add_value(g, name, DRT_DTYPE_UNDEFINED, NULL);
  drt_value *in[2] = {a, b};
  if (!out || drt_graph_add_node(g, op, name, in, b ? 2 : 1, &out, 1, NULL)) return NULL;
  return out;
}

static void *build_plan(bool cuda, bool cpu_target, size_t *size) {
  drt_graph *g;
  if (drt_graph_create(&g)) return NULL;
  g->opset = 17;
  drt_shape sl = drt_test_shape(4, (int64_t[]){1, C, HW, HW}), st = drt_test_shape(1, (int64_t[]){1});
  drt_shape s0 = drt_test_shape(0, NULL);
  drt_value *x = drt_graph_add_value(g, "sample", DRT_DTYPE_FLOAT32, &sl);
  drt_value *t = drt_graph_add_value(g, "timestep", DRT_DTYPE_FLOAT32, &st);
  drt_value *c = drt_graph_add_value(g, "cond", DRT_DTYPE_FLOAT32, &sl);
  assert_true(x && t && c);
  DRT_ASSERT_OK(drt_graph_add_input(g, x));
  DRT_ASSERT_OK(drt_graph_add_input(g, t));
  DRT_ASSERT_OK(drt_graph_add_input(g, c));
  drt_value *w = NULL, *k = NULL;
  float kv = 0.001f;
  DRT_ASSERT_OK(drt_graph_add_const(g, "W", DRT_DTYPE_FLOAT32, &sl, g_w, &w));
  DRT_ASSERT_OK(drt_graph_add_const(g, "k", DRT_DTYPE_FLOAT32, &s0, &kv, &k));
  drt_value *xw = node(g, DRT_OP_MUL, "xw", x, w);
  drt_value *tk = node(g, DRT_OP_MUL, "tk", t, k);
  drt_value *ct = node(g, DRT_OP_MUL, "ct", c, tk);
  drt_value *h = node(g, DRT_OP_ADD, "h", xw, ct);
  drt_value *pred = node(g, DRT_OP_TANH, "pred", h, NULL);
  assert_non_null(pred);
  DRT_ASSERT_OK(drt_graph_add_output(g, pred));
  drt_pass_ctx pc;
  memset(&pc, 0, sizeof pc);
  DRT_ASSERT_OK(drt_pipeline_run(g, &pc, NULL));

  drt_plan_contents pcn;
  memset(&pcn, 0, sizeof pcn);
  pcn.graph = g;
  pcn.targets = cpu_target ? DRT_PLAN_TARGET_CPU : 0;
  uint8_t in_roles[3], out_roles[1] = {DRT_PLAN_ROLE_PREDICTION};
  for (size_t i = 0; i < g->num_inputs; i++) {
    in_roles[i] = DRT_PLAN_ROLE_OTHER;
    if (strcmp(g->inputs[i]->name, "sample") == 0) in_roles[i] = DRT_PLAN_ROLE_LATENT;
    if (strcmp(g->inputs[i]->name, "timestep") == 0) in_roles[i] = DRT_PLAN_ROLE_TIMESTEP;
  }
  pcn.input_roles = in_roles;
  pcn.output_roles = out_roles;
  static const char image[] = "// placeholder PTX: no driver loads it in this test\n.version 8.0\n.target sm_90\n";
  if (cuda) {
    pcn.targets |= DRT_PLAN_TARGET_CUDA;
    pcn.cuda.present = true;
    pcn.cuda.precision = DRT_CUDA_PRECISION_FP32;
    const drt_graph *graphs[1] = {g};
    drt_cuda_codegen_options co;
    drt_cuda_codegen_options_init(&co);
    co.allow_host_fallback = true;
    drt_cuda_program *prog = NULL;
    drt_status s = drt_cuda_program_build(graphs, 1, &co, &prog);
    if (!s) pcn.cuda.source_hash = prog->source_hash;
    drt_status_free(s); /* a codegen gap does not matter here: the driver is missing first */
    drt_cuda_program_destroy(prog);
    pcn.cuda.num_images = 1;
    snprintf(pcn.cuda.images[0].arch, sizeof pcn.cuda.images[0].arch, "compute_90");
    pcn.cuda.images[0].data = image;
    pcn.cuda.images[0].size = sizeof image;
    snprintf(pcn.cuda_archs, sizeof pcn.cuda_archs, "compute_90");
  }
  void *bytes = NULL;
  DRT_ASSERT_OK(drt_plan_serialize(&pcn, &bytes, size));
  drt_graph_destroy(g);
  return bytes;
}

static void write_file(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, n, f), n);
  fclose(f);
}

static char g_kernels[256];

/* The emulator: the mock driver, and the plan's program compiled with tests/cuda_emu/emu.h. */
static int setup_emulator(const char *mock) {
  drt_plan_contents c;
  void *copy = malloc(g_cuda_size);
  if (!copy) return -1;
  memcpy(copy, g_cuda_bytes, g_cuda_size);
  drt_status st = drt_plan_parse(copy, g_cuda_size, "emu", &c);
  drt_cuda_program *prog = NULL;
  const drt_graph *graphs[DRT_PLAN_MAX_CUDA_GRAPHS];
  size_t n = st ? 0 : drt_plan_cuda_graphs(&c, graphs, DRT_PLAN_MAX_CUDA_GRAPHS);
  drt_cuda_codegen_options co;
  drt_cuda_codegen_options_init(&co);
  co.allow_host_fallback = true;
  if (!st) st = drt_cuda_program_build(graphs, n, &co, &prog);
  if (st) {
    print_error("emulator setup: %s\n", drt_status_message(st));
    drt_status_free(st);
    drt_plan_contents_free(&c);
    return -1;
  }
  char src[256], cmd[2048];
  const char *root = getenv("DRT_SOURCE_DIR") ? getenv("DRT_SOURCE_DIR") : ".";
  snprintf(src, sizeof src, "/tmp/drt_test_cuda_session_%d.cu", (int)getpid());
  snprintf(g_kernels, sizeof g_kernels, "/tmp/drt_test_cuda_session_%d_kernels.so", (int)getpid());
  write_file(src, prog->source, prog->source_len);
  drt_cuda_program_destroy(prog);
  drt_plan_contents_free(&c);
  snprintf(cmd, sizeof cmd, "g++ -std=c++17 -O1 -fPIC -shared -fvisibility=hidden -fno-strict-aliasing "
           "-fcf-protection=none -I '%s/tests/cuda_emu/include' -include '%s/tests/cuda_emu/emu.h' -x c++ '%s' -o '%s'",
           root, root, src, g_kernels);
  int rc = system(cmd);
  unlink(src);
  if (rc != 0) return -1;
  setenv("DRT_CUDA_LIBRARY", mock, 1);
  setenv("DRT_CUBLASLT_LIBRARY", mock, 1);
  setenv("DRT_MOCK_CUDA_KERNELS", g_kernels, 1);
  setenv("DRT_MOCK_CUDA_QUIET", "1", 1);
  return 0;
}

static int setup(void **state) {
  (void)state;
  /* no driver, deterministically (the emulator test points it at the mock instead) */
  const char *mock = getenv("DRT_TEST_CUDA_EMU");
  if (!mock) setenv("DRT_CUDA_LIBRARY", "/nonexistent/distilrt-test/libcuda.so.1", 1);
  drt_test_rng r = {7};
  drt_test_fill(&r, g_w, NUMEL, -1.0f, 1.0f);
  drt_test_fill(&r, g_cond, NUMEL, -1.0f, 1.0f);
  drt_test_fill(&r, g_sample, NUMEL, -1.0f, 1.0f);
  g_cpu_bytes = build_plan(false, true, &g_cpu_size);
  g_cuda_bytes = build_plan(true, true, &g_cuda_size);
  g_cuda_only_bytes = build_plan(true, false, &g_cuda_only_size);
  if (!g_cpu_bytes || !g_cuda_bytes || !g_cuda_only_bytes) return -1;
  snprintf(g_cuda_path, sizeof g_cuda_path, "/tmp/drt_test_cuda_session_%d_cuda.plan", (int)getpid());
  snprintf(g_cpu_path, sizeof g_cpu_path, "/tmp/drt_test_cuda_session_%d_cpu.plan", (int)getpid());
  write_file(g_cuda_path, g_cuda_bytes, g_cuda_size);
  write_file(g_cpu_path, g_cpu_bytes, g_cpu_size);
  if (mock && setup_emulator(mock)) return -1;
  drt_log_set(capture_log, NULL, DRT_LOG_WARN);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  drt_log_set(NULL, NULL, DRT_LOG_ERROR);
  if (!getenv("DRT_TEST_KEEP")) {
    unlink(g_cuda_path);
    unlink(g_cpu_path);
  }
  if (g_kernels[0]) unlink(g_kernels);
  free(g_cpu_bytes);
  free(g_cuda_bytes);
  free(g_cuda_only_bytes);
  return 0;
}

static drt_plan *load(bool cuda) {
  drt_plan *p = NULL;
  drt_status_code c = cuda ? drt_plan_load_memory(g_cuda_bytes, g_cuda_size, &p)
                           : drt_plan_load_memory(g_cpu_bytes, g_cpu_size, &p);
  if (c != DRT_STATUS_OK) print_error("load: %s\n", drt_last_error());
  assert_int_equal(c, DRT_STATUS_OK);
  return p;
}

static drt_status_code make_session(drt_plan *p, drt_backend b, drt_session **s) {
  drt_session_options o;
  drt_session_options_init(&o);
  o.backend = b;
  o.num_threads = 1;
  return drt_session_create(p, &o, s);
}

static float g_t; /* the timestep buffer (borrowed by the session until the run) */

static void set_inputs(drt_session *s, float t) {
  int64_t dl[4] = {1, C, HW, HW}, dt[1] = {1};
  g_t = t;
  assert_int_equal(drt_session_set_input(s, "sample", DRT_DTYPE_FLOAT32, 4, dl, g_sample, sizeof g_sample),
                   DRT_STATUS_OK);
  assert_int_equal(drt_session_set_input(s, "timestep", DRT_DTYPE_FLOAT32, 1, dt, &g_t, sizeof g_t), DRT_STATUS_OK);
  assert_int_equal(drt_session_set_input(s, "cond", DRT_DTYPE_FLOAT32, 4, dl, g_cond, sizeof g_cond), DRT_STATUS_OK);
}

/* tanh(sample * W + cond * t * 0.001), the naive reference */
static void reference(float t, float *out) {
  for (int i = 0; i < NUMEL; i++) out[i] = tanhf(g_sample[i] * g_w[i] + g_cond[i] * (t * 0.001f));
}

static void run_and_check(drt_session *s, float t, float *out) {
  set_inputs(s, t);
  drt_status_code c = drt_session_run(s);
  if (c != DRT_STATUS_OK) print_error("run: %s\n", drt_last_error());
  assert_int_equal(c, DRT_STATUS_OK);
  const void *data;
  size_t nb;
  assert_int_equal(drt_session_get_output(s, "pred", NULL, &data, &nb), DRT_STATUS_OK);
  assert_int_equal(nb, sizeof(float) * NUMEL);
  memcpy(out, data, nb);
  float ref[NUMEL];
  reference(t, ref);
  double err = drt_test_rel_l2(out, ref, NUMEL);
  if (!(err < 1e-5)) print_error("relative L2 error %g (%g vs %g, %g vs %g)\n", err, out[0], ref[0], out[1], ref[1]);
  assert_true(err < 1e-5);
}

/* A generation (cond as conditioning, the given seed); the final latent. */
static void generate_with(drt_session *s, const char *schedule, int steps, uint64_t seed, const float *cond,
                          float *latent) {
  int64_t dl[4] = {1, C, HW, HW};
  assert_int_equal(drt_session_set_input(s, "cond", DRT_DTYPE_FLOAT32, 4, dl, cond, sizeof g_cond), DRT_STATUS_OK);
  drt_generate_options go;
  drt_generate_options_init(&go);
  go.schedule = schedule;
  go.steps = steps;
  go.seed = seed;
  drt_status_code c = drt_session_generate(s, &go);
  if (c != DRT_STATUS_OK) print_error("generate: %s\n", drt_last_error());
  assert_int_equal(c, DRT_STATUS_OK);
  const void *data;
  size_t nb;
  assert_int_equal(drt_session_get_output(s, "sample", NULL, &data, &nb), DRT_STATUS_OK);
  assert_int_equal(nb, sizeof(float) * NUMEL);
  memcpy(latent, data, nb);
  bool finite = true;
  for (int i = 0; i < NUMEL; i++) finite &= isfinite(latent[i]) != 0;
  assert_true(finite);
}

/* Generation with an ancestral schedule (noise every step) or a flow schedule; the final latent. */
static void generate(drt_session *s, const char *schedule, int steps, float *latent) {
  generate_with(s, schedule, steps, 1234, g_cond, latent);
}

static void test_cuda_backend_without_driver(void **state) {
  (void)state;
  if (getenv("DRT_TEST_CUDA_EMU")) skip();
  drt_plan *p = load(true);
  drt_session *s = NULL;
  log_reset();
  drt_status_code c = make_session(p, DRT_BACKEND_CUDA, &s);
  assert_null(s);
  assert_int_equal(c, DRT_STATUS_UNAVAILABLE);
  const char *e = drt_last_error();
  if (!strstr(e, "(use --backend cpu to run this plan on the CPU)")) print_error("message: %s\n", e);
  assert_non_null(strstr(e, "(use --backend cpu to run this plan on the CPU)"));
  /* the driver's own words: the missing library (or a build without CUDA) */
  if (drt_cuda_compiled()) assert_non_null(strstr(e, "libcuda"));
  else assert_non_null(strstr(e, "CUDA"));
  drt_plan_destroy(p);
}

static void test_auto_falls_back_to_cpu(void **state) {
  (void)state;
  if (getenv("DRT_TEST_CUDA_EMU")) skip();
  drt_plan *p = load(true);
  drt_session *a = NULL, *cpu = NULL;
  log_reset();
  assert_int_equal(make_session(p, DRT_BACKEND_AUTO, &a), DRT_STATUS_OK);
  assert_int_equal(drt_session_backend(a), DRT_BACKEND_CPU);
  assert_int_equal(g_warnings, 1);
  assert_non_null(strstr(g_log, "running on the CPU"));
  assert_non_null(strstr(g_log, "has CUDA code"));
  log_reset();
  assert_int_equal(make_session(p, DRT_BACKEND_CPU, &cpu), DRT_STATUS_OK);
  assert_int_equal(drt_session_backend(cpu), DRT_BACKEND_CPU);
  assert_int_equal(g_warnings, 0); /* asked for the CPU: nothing to warn about */
  float ya[NUMEL], yc[NUMEL];
  run_and_check(a, 500.0f, ya);
  run_and_check(cpu, 500.0f, yc);
  assert_memory_equal(ya, yc, sizeof ya);
  /* generations: the same loop on the same kernels */
  const char *scheds[2] = {"euler-a", "flow-euler"};
  for (int k = 0; k < 2; k++) {
    float la[NUMEL], lc[NUMEL];
    generate(a, scheds[k], 3, la);
    generate(cpu, scheds[k], 3, lc);
    assert_memory_equal(la, lc, sizeof la);
    assert_true(drt_session_generate_device_ms(a, NULL) < 0); /* host loop */
  }
  /* GPU-only calls on a CPU session */
  double ms[2];
  assert_int_equal(drt_session_profile_device(a, 2, ms), DRT_STATUS_UNSUPPORTED);
  assert_non_null(strstr(drt_last_error(), "CUDA session"));
  drt_session_destroy(a);
  drt_session_destroy(cpu);
  drt_plan_destroy(p);
}

/* A plan whose header targets CUDA only never runs on the CPU. */
static void test_cuda_only_plan(void **state) {
  (void)state;
  if (getenv("DRT_TEST_CUDA_EMU")) skip();
  drt_plan *p = NULL;
  assert_int_equal(drt_plan_load_memory(g_cuda_only_bytes, g_cuda_only_size, &p), DRT_STATUS_OK);
  drt_session *s = NULL;
  log_reset();
  assert_int_equal(make_session(p, DRT_BACKEND_CPU, &s), DRT_STATUS_UNAVAILABLE);
  assert_non_null(strstr(drt_last_error(), "compiled for CUDA only (compute_90) and cannot run on the CPU"));
  assert_int_equal(make_session(p, DRT_BACKEND_AUTO, &s), DRT_STATUS_UNAVAILABLE); /* no fallback */
  assert_non_null(strstr(drt_last_error(), drt_cuda_compiled() ? "libcuda" : "CUDA"));
  assert_non_null(strstr(drt_last_error(), "was compiled for CUDA only"));
  assert_null(s);
  assert_int_equal(g_warnings, 0);
  drt_plan_destroy(p);
}

static void test_cpu_plan_backends(void **state) {
  (void)state;
  drt_plan *p = load(false);
  drt_session *s = NULL;
  log_reset();
  assert_int_equal(make_session(p, DRT_BACKEND_CUDA, &s), DRT_STATUS_INVALID_ARGUMENT);
  assert_null(s);
  assert_non_null(strstr(drt_last_error(), "compiled without --target cuda"));
  log_reset();
  assert_int_equal(make_session(p, DRT_BACKEND_AUTO, &s), DRT_STATUS_OK);
  assert_int_equal(drt_session_backend(s), DRT_BACKEND_CPU);
  assert_int_equal(g_warnings, 0); /* a CPU plan on AUTO is the normal case */
  float y[NUMEL];
  run_and_check(s, 250.0f, y);
  drt_session_destroy(s);
  /* options out of range */
  drt_session_options o;
  drt_session_options_init(&o);
  o.backend = (drt_backend)7;
  assert_int_equal(drt_session_create(p, &o, &s), DRT_STATUS_INVALID_ARGUMENT);
  assert_non_null(strstr(drt_last_error(), "unknown backend 7"));
  drt_session_options_init(&o);
  o.device = -1;
  assert_int_equal(drt_session_create(p, &o, &s), DRT_STATUS_INVALID_ARGUMENT);
  assert_string_equal(drt_backend_name(DRT_BACKEND_CUDA), "cuda");
  assert_string_equal(drt_backend_name(DRT_BACKEND_AUTO), "auto");
  drt_plan_destroy(p);
}

/* Runs the drt CLI; returns its exit code and stderr in err. */
static int run_cli(const char *args, char *err, size_t n) {
  const char *bin = getenv("DRT_BIN");
  char cmd[2048], errf[256];
  snprintf(errf, sizeof errf, "/tmp/drt_test_cuda_session_%d.err", (int)getpid());
  snprintf(cmd, sizeof cmd, "'%s' %s >/dev/null 2>'%s'", bin, args, errf);
  int rc = system(cmd);
  FILE *f = fopen(errf, "rb");
  size_t got = f ? fread(err, 1, n - 1, f) : 0;
  err[got] = 0;
  if (f) fclose(f);
  unlink(errf);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_cli_backend(void **state) {
  (void)state;
  if (!getenv("DRT_BIN") || getenv("DRT_TEST_CUDA_EMU")) skip();
  char err[4096], args[1024];
  snprintf(args, sizeof args, "generate %s --backend cuda --schedule flow-euler --steps 2 -o /dev/null", g_cuda_path);
  assert_int_equal(run_cli(args, err, sizeof err), 3);
  assert_non_null(strstr(err, "use --backend cpu to run this plan on the CPU"));
  snprintf(args, sizeof args, "run %s --backend cuda", g_cpu_path);
  assert_int_equal(run_cli(args, err, sizeof err), 2);
  assert_non_null(strstr(err, "compiled without --target cuda"));
  snprintf(args, sizeof args, "run %s --backend tpu", g_cpu_path);
  assert_int_equal(run_cli(args, err, sizeof err), 1);
  assert_non_null(strstr(err, "--backend must be auto, cpu or cuda"));
  snprintf(args, sizeof args, "bench %s --backend cuda --iterations 1 --warmup 0 --steps 1", g_cuda_path);
  assert_int_equal(run_cli(args, err, sizeof err), 3);
  /* an ONNX model with --backend cuda is compiled for the GPU on the spot: the driver is missing */
  const char *root = getenv("DRT_SOURCE_DIR") ? getenv("DRT_SOURCE_DIR") : ".";
  snprintf(args, sizeof args, "run '%s/tests/models/fixtures/dit_student_op17/model.onnx' --backend cuda "
           "--input 'sample=%s/tests/models/fixtures/dit_student_op17/inputs/sample.npy' "
           "--input 'timestep=%s/tests/models/fixtures/dit_student_op17/inputs/timestep.npy' "
           "--input 'encoder_hidden_states=%s/tests/models/fixtures/dit_student_op17/inputs/encoder_hidden_states.npy'",
           root, root, root, root);
  assert_int_equal(run_cli(args, err, sizeof err), 3);
  assert_non_null(strstr(err, "(drop --backend cuda to run the model on the CPU)"));
}

/* Several threads create CUDA sessions of one fresh plan at once (the first ones race to load
 * its module) and generate; every result equals the CPU's. */
typedef struct emu_thread {
  drt_plan *plan;
  uint64_t seed;
  float latent[NUMEL];
  drt_status_code code;
  drt_backend backend;
} emu_thread;

static void *emu_thread_main(void *arg) {
  emu_thread *t = arg;
  drt_session *s = NULL;
  t->code = make_session(t->plan, DRT_BACKEND_CUDA, &s);
  int64_t dl[4] = {1, C, HW, HW};
  if (t->code == DRT_STATUS_OK) {
    t->backend = drt_session_backend(s);
    t->code = drt_session_set_input(s, "cond", DRT_DTYPE_FLOAT32, 4, dl, g_cond, sizeof g_cond);
  }
  drt_generate_options go;
  drt_generate_options_init(&go);
  go.schedule = "euler-a";
  go.steps = 2;
  go.seed = t->seed;
  for (int r = 0; r < 2 && t->code == DRT_STATUS_OK; r++) t->code = drt_session_generate(s, &go);
  const void *data = NULL;
  size_t nb = 0;
  if (t->code == DRT_STATUS_OK) t->code = drt_session_get_output(s, "sample", NULL, &data, &nb);
  if (t->code == DRT_STATUS_OK) memcpy(t->latent, data, sizeof t->latent);
  drt_session_destroy(s);
  return NULL;
}

static void test_cuda_emulated_threads(void **state) {
  (void)state;
  if (!getenv("DRT_TEST_CUDA_EMU")) skip();
  enum { T = 3 };
  drt_plan *p = load(true), *pc = load(true);
  static emu_thread th[T];
  pthread_t id[T];
  for (int i = 0; i < T; i++) {
    th[i].plan = p;
    th[i].seed = 100 + (uint64_t)i;
    assert_int_equal(pthread_create(&id[i], NULL, emu_thread_main, &th[i]), 0);
  }
  for (int i = 0; i < T; i++) pthread_join(id[i], NULL);
  drt_session *cpu = NULL;
  assert_int_equal(make_session(pc, DRT_BACKEND_CPU, &cpu), DRT_STATUS_OK);
  for (int i = 0; i < T; i++) {
    assert_int_equal(th[i].code, DRT_STATUS_OK);
    assert_int_equal(th[i].backend, DRT_BACKEND_CUDA);
    float lc[NUMEL];
    generate_with(cpu, "euler-a", 2, th[i].seed, g_cond, lc);
    assert_true(drt_test_rel_l2(th[i].latent, lc, NUMEL) < 1e-5);
  }
  drt_session_destroy(cpu);
  drt_plan_destroy(p);
  drt_plan_destroy(pc);
}

/* The CUDA path under the emulator (DRT_TEST_CUDA_EMU). */
static void test_cuda_emulated(void **state) {
  (void)state;
  if (!getenv("DRT_TEST_CUDA_EMU")) skip();
  drt_plan *p = load(true);
  drt_session *g = NULL, *cpu = NULL, *a = NULL;
  log_reset();
  drt_status_code c = make_session(p, DRT_BACKEND_CUDA, &g);
  if (c != DRT_STATUS_OK) print_error("CUDA session: %s\n", drt_last_error());
  assert_int_equal(c, DRT_STATUS_OK);
  assert_int_equal(drt_session_backend(g), DRT_BACKEND_CUDA);
  assert_int_equal(make_session(p, DRT_BACKEND_AUTO, &a), DRT_STATUS_OK);
  assert_int_equal(drt_session_backend(a), DRT_BACKEND_CUDA); /* the module is shared */
  assert_int_equal(make_session(p, DRT_BACKEND_CPU, &cpu), DRT_STATUS_OK);
  assert_int_equal(g_warnings, 0);
  /* one evaluation (and its GPU time) */
  float yg[NUMEL], yc[NUMEL];
  run_and_check(g, 500.0f, yg);
  run_and_check(cpu, 500.0f, yc);
  assert_true(drt_test_rel_l2(yg, yc, NUMEL) < 1e-5);
  double ms[3] = {-1, -1, -1};
  assert_int_equal(drt_session_profile_device(g, 3, ms), DRT_STATUS_OK);
  assert_true(ms[0] >= 0 && ms[1] >= 0 && ms[2] >= 0);
  /* generations: captured, then replayed with another seed and other conditioning, then
     captured again for other options; each equal to the CPU's */
  float cond2[NUMEL];
  for (int i = 0; i < NUMEL; i++) cond2[i] = 0.5f - g_cond[i];
  struct {
    const char *sched;
    int steps;
    uint64_t seed;
    const float *cond;
    int replayed;
  } cases[] = {
      {"euler-a", 3, 1234, g_cond, 0},
      {"euler-a", 3, 99, cond2, 1},
      {"euler-a", 3, 5, g_cond, 1},
      {"flow-euler", 4, 5, g_cond, 0},
      {"euler-a", 3, 7, cond2, 0},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    float lg[NUMEL], lc[NUMEL];
    generate_with(g, cases[k].sched, cases[k].steps, cases[k].seed, cases[k].cond, lg);
    int replayed = -1;
    assert_true(drt_session_generate_device_ms(g, &replayed) >= 0);
    assert_int_equal(replayed, cases[k].replayed);
    generate_with(cpu, cases[k].sched, cases[k].steps, cases[k].seed, cases[k].cond, lc);
    double err = drt_test_rel_l2(lg, lc, NUMEL);
    if (!(err < 1e-5)) print_error("case %zu: relative L2 error %g\n", k, err);
    assert_true(err < 1e-5);
  }
  assert_int_equal(drt_session_nfe(g), 1 + 3 + 3 + 3 + 3 + 4 + 3);
  /* the host loop on the GPU session agrees too */
  setenv("DRT_CUDA_DEVICE_LOOP", "0", 1);
  float lh[NUMEL], lc[NUMEL];
  generate_with(a, "euler-a", 3, 1234, g_cond, lh);
  unsetenv("DRT_CUDA_DEVICE_LOOP");
  assert_true(drt_session_generate_device_ms(a, NULL) < 0);
  generate_with(cpu, "euler-a", 3, 1234, g_cond, lc);
  assert_true(drt_test_rel_l2(lh, lc, NUMEL) < 1e-5);
  drt_session_destroy(g);
  drt_session_destroy(a);
  drt_session_destroy(cpu);
  drt_plan_destroy(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cuda_backend_without_driver),
      cmocka_unit_test(test_auto_falls_back_to_cpu),
      cmocka_unit_test(test_cuda_only_plan),
      cmocka_unit_test(test_cpu_plan_backends),
      cmocka_unit_test(test_cli_backend),
      cmocka_unit_test(test_cuda_emulated),
      cmocka_unit_test(test_cuda_emulated_threads),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
