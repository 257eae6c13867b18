/* CUDA runtime without a GPU: driver loading failures (no library, the toolkit's stub library),
 * image selection for devices sm_80..sm_100 against image lists, and the row-major ->
 * column-major GEMM mapping checked by running the mapped problem with cuBLASLt's column-major
 * semantics on the host against a naive row-major reference.
 *
 * With DRT_TEST_CUDA_EMU=<the emulator's mock libcuda (tests/cuda_emu)> the executor also runs
 * for real on the CPU: a graph with batched MatMuls (cuBLASLt), a bias, a Transpose, a CumSum
 * that falls back to the host, and two outputs, run through the whole pass pipeline (memory
 * plan) and compared with the CPU executor in fp32/fp16/bf16, three times (launch by launch, then
 * captured into a CUDA graph, then replayed) and without graphs; the non-finite check; mismatched source hash and arch;
 * bad inputs; device memory, copies, a captured CUDA graph of a fixed kernel, and timers. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <unistd.h>

#include "passes/pipeline.h"
#include "runtime/cpu/executor.h"
#include "runtime/cuda/cuda.h"
#include "runtime/cuda/select.h"

/* ---- driver loading ------------------------------------------------------------------------------ */
static void test_acquire_without_driver(void **state) {
  (void)state;
  setenv("DRT_CUDA_LIBRARY", "/nonexistent/libcuda.so.1", 1);
  drt_cuda_context *ctx = (drt_cuda_context *)1;
  if (drt_cuda_compiled()) {
    DRT_ASSERT_ERROR(drt_cuda_context_acquire(0, &ctx), DRT_STATUS_UNAVAILABLE, "no NVIDIA driver");
    assert_null(ctx);
    DRT_ASSERT_ERROR(drt_cuda_context_acquire(0, &ctx), DRT_STATUS_UNAVAILABLE, "/nonexistent/libcuda.so.1");
  } else {
    DRT_ASSERT_ERROR(drt_cuda_context_acquire(0, &ctx), DRT_STATUS_UNAVAILABLE, "this build has no CUDA support");
  }
  assert_null(ctx);
  unsetenv("DRT_CUDA_LIBRARY");
}

static void test_acquire_stub_library(void **state) {
  (void)state;
  static const char *const stubs[] = {"/usr/local/cuda/lib64/stubs/libcuda.so",
                                      "/usr/local/cuda/targets/x86_64-linux/lib/stubs/libcuda.so"};
  const char *stub = NULL;
  for (size_t i = 0; i < 2 && !stub; i++) {
    FILE *f = fopen(stubs[i], "rb");
    if (f) {
      fclose(f);
      stub = stubs[i];
    }
  }
  if (!stub || !drt_cuda_compiled()) {
    skip();
    return;
  }
  setenv("DRT_CUDA_LIBRARY", stub, 1);
  drt_cuda_context *ctx = (drt_cuda_context *)1;
  drt_status st = drt_cuda_context_acquire(0, &ctx);
  unsetenv("DRT_CUDA_LIBRARY");
  assert_null(ctx);
  assert_non_null(st);
  assert_int_equal(drt_status_code_of(st), DRT_STATUS_UNAVAILABLE);
  const char *msg = drt_status_message(st);
  if (!strstr(msg, "no CUDA GPU available") || !strstr(msg, "cuInit failed") ||
      !strstr(msg, "CUDA_ERROR_STUB_LIBRARY"))
    print_error("unexpected message: %s\n", msg);
  assert_non_null(strstr(msg, "no CUDA GPU available: cuInit failed: CUDA_ERROR_STUB_LIBRARY"));
  assert_non_null(strstr(msg, "driver.c:"));
  drt_status_free(st);
}

/* ---- image selection ------------------------------------------------------------------------------ */
static drt_plan_cuda make_bins(const char *archs) {
  static const char blob[] = "image";
  drt_plan_cuda b;
  memset(&b, 0, sizeof b);
  b.present = true;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", archs);
  for (char *tok = strtok(buf, ","); tok && b.num_images < DRT_PLAN_MAX_CUDA_IMAGES; tok = strtok(NULL, ",")) {
    snprintf(b.images[b.num_images].arch, sizeof b.images[0].arch, "%s", tok);
    b.images[b.num_images].data = blob;
    b.images[b.num_images].size = sizeof blob;
    b.num_images++;
  }
  return b;
}

/* Arch string chosen for a device, or NULL when selection fails. */
static const char *pick(const char *archs, int major, int minor) {
  static char out[16];
  drt_plan_cuda b = make_bins(archs);
  uint32_t idx = 999;
  drt_status st = drt_cuda_select_image(&b, major, minor, "Test GPU", &idx);
  if (st) {
    drt_status_free(st);
    return NULL;
  }
  assert_true(idx < b.num_images);
  snprintf(out, sizeof out, "%s", b.images[idx].arch);
  return out;
}

static void test_parse_arch(void **state) {
  (void)state;
  int num = 0;
  bool ptx = true, specific = true;
  assert_true(drt_cuda_parse_arch("sm_90", &num, &ptx, &specific));
  assert_int_equal(num, 90);
  assert_false(ptx);
  assert_false(specific);
  assert_true(drt_cuda_parse_arch("compute_100a", &num, &ptx, &specific));
  assert_int_equal(num, 100);
  assert_true(ptx);
  assert_true(specific);
  assert_true(drt_cuda_parse_arch("sm_120f", &num, &ptx, &specific));
  assert_int_equal(num, 120);
  assert_false(specific);
  assert_false(drt_cuda_parse_arch("sm_9", &num, &ptx, &specific));
  assert_false(drt_cuda_parse_arch("sm_", &num, &ptx, &specific));
  assert_false(drt_cuda_parse_arch("gfx90a", &num, &ptx, &specific));
  assert_false(drt_cuda_parse_arch("sm_90x", &num, &ptx, &specific));
}

static void test_select_image(void **state) {
  (void)state;
  /* exact cubin first, even when PTX of the same arch and lower cubins exist */
  assert_string_equal(pick("sm_80,compute_90,sm_90", 9, 0), "sm_90");
  assert_string_equal(pick("sm_80,sm_86,sm_89,sm_90", 8, 6), "sm_86");
  /* same major, highest lower minor */
  assert_string_equal(pick("sm_80,sm_86,compute_80", 8, 9), "sm_86");
  assert_string_equal(pick("sm_80,sm_90", 8, 9), "sm_80");
  assert_string_equal(pick("sm_89,sm_80", 8, 6), "sm_80"); /* a higher minor never runs */
  /* cubins of another major never run: PTX of the highest arch <= the device */
  assert_string_equal(pick("sm_80,sm_90,compute_80,compute_90", 10, 0), "compute_90");
  assert_string_equal(pick("compute_80,compute_86,compute_90", 8, 9), "compute_86");
  assert_string_equal(pick("sm_90,compute_80", 8, 6), "compute_80");
  /* cubin of the same major beats PTX */
  assert_string_equal(pick("compute_90,sm_80", 8, 9), "sm_80");
  /* arch-specific images only on exactly their arch; the portable one preferred */
  assert_string_equal(pick("sm_90a,compute_80", 9, 0), "sm_90a");
  assert_string_equal(pick("sm_90a,sm_90", 9, 0), "sm_90");
  assert_string_equal(pick("sm_90a,compute_80", 10, 0), "compute_80");
  assert_null(pick("compute_90a", 10, 0));
  assert_null(pick("sm_86", 8, 0));
  assert_null(pick("sm_90,compute_90", 8, 9));
  assert_null(pick("sm_100,compute_100", 9, 0));
  assert_string_equal(pick("sm_100,compute_90", 12, 0), "compute_90");
  assert_string_equal(pick("sm_120,sm_100", 12, 1), "sm_120");
  /* images with no data are ignored */
  drt_plan_cuda b = make_bins("sm_86,sm_80");
  b.images[0].size = 0;
  uint32_t idx = 9;
  DRT_ASSERT_OK(drt_cuda_select_image(&b, 8, 6, "x", &idx));
  assert_int_equal(idx, 1);
}

static void test_select_image_errors(void **state) {
  (void)state;
  drt_plan_cuda b = make_bins("sm_80,sm_90,compute_90");
  uint32_t idx;
  /* a GPU older than the kernel library (DRT_CUDA_MIN_SM): said so, not "recompile for it" */
  DRT_ASSERT_ERROR(drt_cuda_select_image(&b, 7, 5, "Tesla T4", &idx), DRT_STATUS_UNSUPPORTED,
                   "Tesla T4, compute capability 7.5) is older than");
  DRT_ASSERT_ERROR(drt_cuda_select_image(&b, 7, 0, NULL, &idx), DRT_STATUS_UNSUPPORTED, "CPU backend");
  drt_plan_cuda h = make_bins("sm_90,compute_90");
  DRT_ASSERT_ERROR(drt_cuda_select_image(&h, 8, 6, "NVIDIA A10", &idx), DRT_STATUS_UNSUPPORTED, "NVIDIA A10, sm_86");
  DRT_ASSERT_ERROR(drt_cuda_select_image(&h, 8, 6, "NVIDIA A10", &idx), DRT_STATUS_UNSUPPORTED,
                   "compiled for sm_90, compute_90");
  DRT_ASSERT_ERROR(drt_cuda_select_image(&h, 8, 6, NULL, &idx), DRT_STATUS_UNSUPPORTED, "--arch sm_86");
  drt_plan_cuda none = make_bins("");
  DRT_ASSERT_ERROR(drt_cuda_select_image(&none, 9, 0, "H100", &idx), DRT_STATUS_UNSUPPORTED, "no architecture");
}

/* ---- GEMM mapping ---------------------------------------------------------------------------------- */
static float gelu_tanh(float x) {
  return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

static float epilogue_act(uint8_t epi, float x) {
  if (epi == DRT_CUDA_EPI_GELU || epi == DRT_CUDA_EPI_GELU_BIAS) return gelu_tanh(x);
  if (epi == DRT_CUDA_EPI_RELU || epi == DRT_CUDA_EPI_RELU_BIAS) return x > 0 ? x : 0;
  return x;
}

static bool epilogue_bias(uint8_t epi) {
  return epi == DRT_CUDA_EPI_BIAS || epi == DRT_CUDA_EPI_GELU_BIAS || epi == DRT_CUDA_EPI_RELU_BIAS;
}

/* The row-major contract of drt_cuda_gemm (codegen/codegen.h), naively. */
static void ref_row_major(const drt_cuda_gemm *g, const float *A, const float *B, const float *C, const float *bias,
                          float *D) {
  for (int64_t bt = 0; bt < g->batch; bt++)
    for (int64_t i = 0; i < g->m; i++)
      for (int64_t j = 0; j < g->n; j++) {
        double acc = 0;
        for (int64_t p = 0; p < g->k; p++) {
          const float *a = A + bt * g->stride_a, *b = B + bt * g->stride_b;
          float av = g->trans_a ? a[p * g->lda + i] : a[i * g->lda + p];
          float bv = g->trans_b ? b[j * g->ldb + p] : b[p * g->ldb + j];
          acc += (double)av * bv;
        }
        float v = g->alpha * (float)acc;
        if (g->c.kind != DRT_CUDA_ARG_NONE) v += g->beta * C[bt * g->stride_c + i * g->ldc + j];
        if (epilogue_bias(g->epilogue)) v += bias[j];
        D[bt * g->stride_d + i * g->ldd + j] = epilogue_act(g->epilogue, v);
      }
}

/* cuBLASLt's column-major semantics for a mapped problem: D = alpha op(A) op(B) + beta C, bias
 * over the rows of D, per batch item. */
static void ref_col_major(const drt_cuda_lt_problem *p, const float *A, const float *B, const float *C,
                          const float *bias, float *D) {
  for (int32_t bt = 0; bt < p->batch; bt++)
    for (uint64_t i = 0; i < p->m; i++)
      for (uint64_t j = 0; j < p->n; j++) {
        double acc = 0;
        const float *a = A + bt * p->a.batch_stride, *b = B + bt * p->b.batch_stride;
        for (uint64_t q = 0; q < p->k; q++) {
          float av = p->trans_a ? a[i * p->a.ld + q] : a[q * p->a.ld + i];
          float bv = p->trans_b ? b[q * p->b.ld + j] : b[j * p->b.ld + q];
          acc += (double)av * bv;
        }
        float v = p->alpha * (float)acc;
        if (p->beta != 0.0f) v += p->beta * C[bt * p->c.batch_stride + j * p->c.ld + i];
        if (epilogue_bias(p->epilogue)) v += bias[i];
        D[bt * p->d.batch_stride + j * p->d.ld + i] = epilogue_act(p->epilogue, v);
      }
}

static drt_cuda_arg value_arg(void) {
  drt_cuda_arg a;
  memset(&a, 0, sizeof a);
  a.kind = DRT_CUDA_ARG_VALUE;
  return a;
}

static void check_gemm(drt_test_rng *rng, int64_t m, int64_t n, int64_t k, int64_t batch, bool ta, bool tb,
                       int pad, bool shared_b, bool with_c, uint8_t epi) {
  drt_cuda_gemm g;
  memset(&g, 0, sizeof g);
  g.a = value_arg();
  g.b = value_arg();
  g.d = value_arg();
  if (with_c) g.c = value_arg();
  if (epilogue_bias(epi)) g.bias = value_arg();
  g.a_type = g.b_type = g.c_type = g.d_type = g.bias_type = DRT_DTYPE_FLOAT32;
  g.m = m;
  g.n = n;
  g.k = k;
  g.batch = batch;
  g.trans_a = ta;
  g.trans_b = tb;
  g.lda = (ta ? m : k) + pad;
  g.ldb = (tb ? k : n) + pad;
  g.ldc = n + pad;
  g.ldd = n + 2 * pad;
  int64_t rows_a = ta ? k : m, rows_b = tb ? n : k;
  g.stride_a = rows_a * g.lda + pad;
  g.stride_b = shared_b ? 0 : rows_b * g.ldb + 3;
  g.stride_c = m * g.ldc;
  g.stride_d = m * g.ldd + pad;
  g.alpha = 0.75f;
  g.beta = with_c ? -0.5f : 0.0f;
  g.epilogue = epi;
  size_t na = (size_t)(batch * g.stride_a + rows_a * g.lda), nb = (size_t)(batch * g.stride_b + rows_b * g.ldb);
  size_t nc = (size_t)(batch * g.stride_c + m * g.ldc), nd = (size_t)(batch * g.stride_d + m * g.ldd);
  float *A = malloc(na * 4), *B = malloc(nb * 4), *C = malloc(nc * 4), *bias = malloc((size_t)n * 4);
  float *D1 = malloc(nd * 4), *D2 = malloc(nd * 4);
  assert_non_null(A);
  assert_non_null(B);
  assert_non_null(C);
  assert_non_null(bias);
  assert_non_null(D1);
  assert_non_null(D2);
  drt_test_fill(rng, A, na, -1, 1);
  drt_test_fill(rng, B, nb, -1, 1);
  drt_test_fill(rng, C, nc, -1, 1);
  drt_test_fill(rng, bias, (size_t)n, -1, 1);
  /* identical untouched padding in both outputs */
  for (size_t i = 0; i < nd; i++) D1[i] = D2[i] = 7.0f;
  ref_row_major(&g, A, B, C, bias, D1);
  drt_cuda_lt_problem p;
  DRT_ASSERT_OK(drt_cuda_gemm_to_lt(&g, &p));
  assert_true(p.lt_a_is_b);
  assert_int_equal(p.m, (uint64_t)n);
  assert_int_equal(p.n, (uint64_t)m);
  assert_int_equal(p.k, (uint64_t)k);
  assert_int_equal(p.has_c, with_c);
  /* the layouts must describe exactly the stored matrices' shapes, read column-major */
  assert_int_equal(p.a.rows * p.a.cols, (uint64_t)(k * n));
  assert_true((int64_t)p.a.rows <= p.a.ld && (int64_t)p.b.rows <= p.b.ld && (int64_t)p.d.rows <= p.d.ld);
  ref_col_major(&p, B, A, with_c ? C : D2, bias, D2); /* cuBLASLt's A is the row-major B */
  double err = drt_test_rel_l2(D2, D1, nd);
  if (err > 1e-6)
    print_error("m=%lld n=%lld k=%lld batch=%lld ta=%d tb=%d pad=%d epi=%u: rel err %g\n", (long long)m,
                (long long)n, (long long)k, (long long)batch, ta, tb, pad, epi, err);
  assert_true(err <= 1e-6);
  free(A);
  free(B);
  free(C);
  free(bias);
  free(D1);
  free(D2);
}

static void test_gemm_mapping(void **state) {
  (void)state;
  drt_test_rng rng = {20240611};
  static const int64_t dims[][4] = {{1, 1, 1, 1}, {3, 5, 7, 1}, {17, 9, 33, 2}, {8, 16, 4, 3}, {1, 31, 2, 1},
                                    {29, 1, 13, 2}};
  for (size_t s = 0; s < sizeof dims / sizeof dims[0]; s++)
    for (int t = 0; t < 4; t++) {
      bool ta = t & 1, tb = t >> 1;
      check_gemm(&rng, dims[s][0], dims[s][1], dims[s][2], dims[s][3], ta, tb, 0, false, false, DRT_CUDA_EPI_NONE);
      check_gemm(&rng, dims[s][0], dims[s][1], dims[s][2], dims[s][3], ta, tb, 3, true, true, DRT_CUDA_EPI_BIAS);
      check_gemm(&rng, dims[s][0], dims[s][1], dims[s][2], dims[s][3], ta, tb, 1, false, true,
                 DRT_CUDA_EPI_GELU_BIAS);
      check_gemm(&rng, dims[s][0], dims[s][1], dims[s][2], dims[s][3], ta, tb, 2, true, false,
                 DRT_CUDA_EPI_RELU_BIAS);
      check_gemm(&rng, dims[s][0], dims[s][1], dims[s][2], dims[s][3], ta, tb, 0, false, false, DRT_CUDA_EPI_GELU);
      check_gemm(&rng, dims[s][0], dims[s][1], dims[s][2], dims[s][3], ta, tb, 1, false, true, DRT_CUDA_EPI_RELU);
    }
}

static void test_gemm_mapping_errors(void **state) {
  (void)state;
  drt_cuda_gemm g;
  memset(&g, 0, sizeof g);
  g.a = value_arg();
  g.b = value_arg();
  g.d = value_arg();
  g.a_type = g.b_type = g.c_type = g.d_type = DRT_DTYPE_FLOAT16;
  g.m = 4;
  g.n = 5;
  g.k = 6;
  g.batch = 1;
  g.lda = 6;
  g.ldb = 5;
  g.ldd = 5;
  g.alpha = 1;
  drt_cuda_lt_problem p;
  DRT_ASSERT_OK(drt_cuda_gemm_to_lt(&g, &p));
  assert_int_equal(p.a.type, DRT_DTYPE_FLOAT16);
  assert_false(p.has_c);
  assert_int_equal(p.c.ld, p.d.ld);
  g.beta = 1;
  DRT_ASSERT_ERROR(drt_cuda_gemm_to_lt(&g, &p), DRT_STATUS_INTERNAL, "no C operand");
  g.beta = 0;
  g.lda = 5;
  DRT_ASSERT_ERROR(drt_cuda_gemm_to_lt(&g, &p), DRT_STATUS_INTERNAL, "leading dimensions");
  g.lda = 6;
  g.k = 0;
  DRT_ASSERT_ERROR(drt_cuda_gemm_to_lt(&g, &p), DRT_STATUS_INTERNAL, "k=0");
  g.k = 6;
  g.a_type = DRT_DTYPE_INT8;
  DRT_ASSERT_ERROR(drt_cuda_gemm_to_lt(&g, &p), DRT_STATUS_UNSUPPORTED, "int8");
  g.a_type = DRT_DTYPE_FLOAT16;
  g.epilogue = DRT_CUDA_EPI_BIAS;
  DRT_ASSERT_ERROR(drt_cuda_gemm_to_lt(&g, &p), DRT_STATUS_INTERNAL, "bias");
}


/* ---- execution through the emulator (DRT_TEST_CUDA_EMU) ------------------------------------------- */
enum { EB = 2, EM = 5, EK = 16, EN = 12 };

static drt_value *enode(drt_graph *g, drt_op op, drt_value *a, drt_value *b) {
  drt_value *out = drt_graph_add_value(g, NULL, DRT_DTYPE_UNDEFINED, NULL);
  drt_value *in[2] = {a, b};
  assert_non_null(out);
  DRT_ASSERT_OK(drt_graph_add_node(g, op, NULL, in, b ? 2 : 1, &out, 1, NULL));
  return out;
}

/* x[2,5,16] -> out0 = MatMul(Transpose(CumSum(Relu(x W + bias), axis 2)), x) [2,12,16],
 *              out1 = Sqrt(x) [2,5,16] (NaN where x < 0) */
static drt_graph *emu_graph(drt_test_rng *rng) {
  drt_graph *g;
  DRT_ASSERT_OK(drt_graph_create(&g));
  g->opset = 17;
  drt_shape sx = drt_test_shape(3, (int64_t[]){EB, EM, EK});
  drt_value *x = drt_graph_add_value(g, "x", DRT_DTYPE_FLOAT32, &sx);
  DRT_ASSERT_OK(drt_graph_add_input(g, x));
  float w[EK * EN], bias[EN];
  drt_test_fill(rng, w, EK * EN, -1, 1);
  drt_test_fill(rng, bias, EN, -1, 1);
  drt_shape sw = drt_test_shape(2, (int64_t[]){EK, EN}), sb = drt_test_shape(1, (int64_t[]){EN});
  drt_shape s0 = drt_test_shape(0, NULL);
  drt_value *wv, *bv, *axis;
  DRT_ASSERT_OK(drt_graph_add_const(g, "W", DRT_DTYPE_FLOAT32, &sw, w, &wv));
  DRT_ASSERT_OK(drt_graph_add_const(g, "bias", DRT_DTYPE_FLOAT32, &sb, bias, &bv));
  int64_t ax = 2;
  DRT_ASSERT_OK(drt_graph_add_const(g, "axis", DRT_DTYPE_INT64, &s0, &ax, &axis));
  drt_value *h = enode(g, DRT_OP_ADD, enode(g, DRT_OP_MATMUL, x, wv), bv);
  drt_value *c = enode(g, DRT_OP_CUMSUM, enode(g, DRT_OP_RELU, h, NULL), axis);
  drt_value *t = enode(g, DRT_OP_TRANSPOSE, c, NULL);
  drt_attr a;
  memset(&a, 0, sizeof a);
  int64_t pv[3] = {0, 2, 1};
  a.name = "perm";
  a.type = DRT_ATTR_INTS;
  a.count = 3;
  a.ints = pv;
  DRT_ASSERT_OK(drt_node_add_attr(g, t->producer, &a));
  drt_value *o0 = enode(g, DRT_OP_MATMUL, t, x);
  drt_value *o1 = enode(g, DRT_OP_SQRT, x, NULL);
  DRT_ASSERT_OK(drt_graph_add_output(g, o0));
  DRT_ASSERT_OK(drt_graph_add_output(g, o1));
  drt_pass_ctx pc;
  memset(&pc, 0, sizeof pc);
  DRT_ASSERT_OK(drt_pipeline_run(g, &pc, NULL));
  return g;
}

static bool g_emu_ready;
static char g_emu_kernels[8][256]; /* per precision, for emu_graph's programs; [4 + p]: the variants test's */

/* Compiles prog's source with the emulator header into a kernel library (once per slot) and
 * points the mock at it. */
static void emu_kernels_in(const drt_cuda_program *prog, int slot) {
  char *path = g_emu_kernels[slot];
  if (!path[0]) {
    char src[256], cmd[2048];
    const char *root = getenv("DRT_SOURCE_DIR") ? getenv("DRT_SOURCE_DIR") : ".";
    snprintf(src, sizeof src, "/tmp/drt_test_cuda_runtime_%d_%d.cu", (int)getpid(), slot);
    snprintf(path, 256, "/tmp/drt_test_cuda_runtime_%d_%d.so", (int)getpid(), slot);
    FILE *f = fopen(src, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(prog->source, 1, prog->source_len, f), prog->source_len);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "g++ -std=c++17 -O1 -fPIC -shared -fvisibility=hidden -fno-strict-aliasing -fcf-protection=none "
             "-I '%s/tests/cuda_emu/include' -include '%s/tests/cuda_emu/emu.h' -x c++ '%s' -o '%s'",
             root, root, src, path);
    int rc = system(cmd);
    unlink(src);
    assert_int_equal(rc, 0);
  }
  setenv("DRT_MOCK_CUDA_KERNELS", path, 1);
}

/* The CUDA program of g at precision prec, its kernels built for the emulator into kernel-library
 * slot `slot` (emu_kernels_in). */
static drt_cuda_program *emu_program_in(const drt_graph *g, drt_cuda_precision prec, int slot) {
  drt_cuda_codegen_options co;
  drt_cuda_codegen_options_init(&co);
  co.precision = prec;
  drt_cuda_program *prog = NULL;
  const drt_graph *gs[1] = {g};
  DRT_ASSERT_OK(drt_cuda_program_build(gs, 1, &co, &prog));
  emu_kernels_in(prog, slot);
  return prog;
}
static drt_cuda_program *emu_program(const drt_graph *g, drt_cuda_precision prec) {
  return emu_program_in(g, prec, (int)prec);
}

static int emu_setup(void **state) {
  (void)state;
  const char *mock = getenv("DRT_TEST_CUDA_EMU");
  if (!mock || !drt_cuda_compiled()) return 0;
  setenv("DRT_CUDA_LIBRARY", mock, 1);
  setenv("DRT_CUBLASLT_LIBRARY", mock, 1);
  setenv("DRT_MOCK_CUDA_QUIET", "1", 1);
  g_emu_ready = true;
  return 0;
}

static int emu_teardown(void **state) {
  (void)state;
  for (int i = 0; i < 8; i++)
    if (g_emu_kernels[i][0]) unlink(g_emu_kernels[i]);
  return 0;
}

static drt_plan_cuda emu_bins(const drt_cuda_program *prog, const char *arch) {
  static const char image[] = "// placeholder (the mock loads DRT_MOCK_CUDA_KERNELS)\n.version 8.0\n.target sm_90\n";
  drt_plan_cuda b;
  memset(&b, 0, sizeof b);
  b.present = true;
  b.precision = (uint8_t)prog->precision;
  b.source_hash = prog->source_hash;
  b.num_images = 1;
  snprintf(b.images[0].arch, sizeof b.images[0].arch, "%s", arch);
  b.images[0].data = image;
  b.images[0].size = sizeof image;
  return b;
}

/* relative L2 over finite reference entries; NaN positions must agree */
static double compare(const drt_tensor *got, const drt_tensor *want) {
  assert_int_equal(got->dtype, want->dtype);
  assert_true(drt_shape_equal(&got->shape, &want->shape));
  size_t n = (size_t)drt_shape_numel(&want->shape);
  const float *a = got->data, *b = want->data;
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    if (isnan(b[i])) {
      assert_true(isnan(a[i]));
      continue;
    }
    num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    den += (double)b[i] * b[i];
  }
  return sqrt(num / (den > 1e-30 ? den : 1e-30));
}

static int g_capture_failures;
static void count_capture_failures(drt_log_level level, const char *message, void *user) {
  (void)user;
  if (level <= DRT_LOG_WARN && strstr(message, "capture failed")) {
    print_error("%s\n", message);
    g_capture_failures++;
  }
}

static void emu_run_precision(drt_cuda_precision prec, double tol) {
  drt_test_rng rng = {99 + (uint64_t)prec};
  drt_graph *g = emu_graph(&rng);
  assert_true(g->mem_planned);
  drt_cuda_program *prog = emu_program(g, prec);
  /* the CumSum has no device kernel: it must be a host fallback, and some launch a GEMM */
  bool gemm = false;
  for (size_t i = 0; i < prog->graphs[0].num_launches; i++) gemm |= prog->graphs[0].launches[i].kind == DRT_CUDA_LAUNCH_GEMM;
  assert_true(prog->graphs[0].num_host_nodes >= 1);
  if (!gemm) print_message("note: no GEMM launch in this program (codegen used kernels)\n");
  drt_plan_cuda bins = emu_bins(prog, "sm_90");

  drt_cuda_context *ctx = NULL;
  DRT_ASSERT_OK(drt_cuda_context_acquire(0, &ctx));
  const drt_cuda_device_info *info = drt_cuda_context_device(ctx);
  assert_int_equal(info->cc_major, 9);
  assert_true(info->total_memory > 0);
  drt_cuda_module *m = NULL;
  DRT_ASSERT_OK(drt_cuda_module_load(ctx, prog, &bins, &m));
  drt_cuda_context_release(ctx); /* the module holds its own reference */

  float xs[EB * EM * EK], xneg[EB * EM * EK];
  drt_test_fill(&rng, xs, EB * EM * EK, 0.05f, 1.0f);
  memcpy(xneg, xs, sizeof xs);
  xneg[7] = -1.0f;
  drt_tensor in = {DRT_DTYPE_FLOAT32, g->inputs[0]->shape, xs};
  drt_tensor want[2], got[2];
  drt_cpu_executor *cpu = NULL;
  DRT_ASSERT_OK(drt_cpu_executor_create(g, NULL, &cpu));
  DRT_ASSERT_OK(drt_cpu_executor_run(cpu, &in, want));

  g_capture_failures = 0;
  drt_log_set(count_capture_failures, NULL, DRT_LOG_WARN);
  for (int graphs = 1; graphs >= 0; graphs--) {
    drt_cuda_executor_options eo;
    drt_cuda_executor_options_init(&eo);
    assert_true(eo.use_graphs);
    eo.use_graphs = graphs;
    drt_cuda_executor *e = NULL;
    DRT_ASSERT_OK(drt_cuda_executor_create(m, 0, &eo, &e));
    assert_true(drt_cuda_executor_pdl(e)); /* sm_90 image on a compute capability 9 device */
    for (int rep = 0; rep < 3; rep++) {
      DRT_ASSERT_OK(drt_cuda_executor_run(e, &in, got));
      for (int o = 0; o < 2; o++) {
        double err = compare(&got[o], &want[o]);
        if (err > tol) print_error("%s graphs=%d run %d output %d: rel err %g\n", drt_cuda_precision_name(prec), graphs, rep, o, err);
        assert_true(err <= tol);
        free(got[o].data);
      }
    }
    /* bad inputs are refused before anything is enqueued */
    drt_tensor bad = in;
    bad.shape.dims[1] = 4;
    DRT_ASSERT_ERROR(drt_cuda_executor_run(e, &bad, got), DRT_STATUS_INVALID_ARGUMENT, "model was prepared for");
    bad = in;
    bad.dtype = DRT_DTYPE_FLOAT16;
    DRT_ASSERT_ERROR(drt_cuda_executor_run(e, &bad, got), DRT_STATUS_INVALID_ARGUMENT, "dtype float16");
    assert_true(drt_cuda_executor_pdl(e)); /* still on after the capture and the replays */
    assert_true(drt_cuda_executor_input_dptr(e, 0) != 0);
    assert_true(drt_cuda_executor_output_dptr(e, 1) != 0);
    assert_int_equal(drt_cuda_executor_output_dptr(e, 2), 0);
    drt_cuda_executor_destroy(e);
  }
  drt_log_set(NULL, NULL, DRT_LOG_ERROR);
  assert_int_equal(g_capture_failures, 0); /* the CUDA graph was captured, not skipped */
  for (int o = 0; o < 2; o++) free(want[o].data);

  /* non-finite check: clean inputs pass, a negative under the Sqrt is reported by output name */
  drt_cuda_executor_options eo;
  drt_cuda_executor_options_init(&eo);
  eo.check_nonfinite = true;
  drt_cuda_executor *e = NULL;
  DRT_ASSERT_OK(drt_cuda_executor_create(m, 0, &eo, &e));
  DRT_ASSERT_OK(drt_cuda_executor_run(e, &in, got));
  free(got[0].data);
  free(got[1].data);
  drt_tensor in_neg = {DRT_DTYPE_FLOAT32, g->inputs[0]->shape, xneg};
  char needle[160];
  snprintf(needle, sizeof needle, "'%s' has 1 non-finite", g->outputs[1]->name);
  DRT_ASSERT_ERROR(drt_cuda_executor_run(e, &in_neg, got), DRT_STATUS_INTERNAL, needle);
  DRT_ASSERT_OK(drt_cuda_executor_run(e, &in, got)); /* the counter is reset per run */
  free(got[0].data);
  free(got[1].data);
  drt_cuda_executor_destroy(e);
  DRT_ASSERT_ERROR(drt_cuda_executor_create(m, 1, NULL, &e), DRT_STATUS_INVALID_ARGUMENT, "graph 1");

  drt_cuda_module_destroy(m);
  drt_cpu_executor_destroy(cpu);
  drt_cuda_program_destroy(prog);
  drt_graph_destroy(g);
}

/* The program loaded for a single image of `arch` (the mock runs DRT_MOCK_CUDA_KERNELS whatever
 * the image); the module holds its own context reference. */
static drt_cuda_module *emu_module_for(const drt_cuda_program *prog, const char *arch) {
  drt_plan_cuda bins = emu_bins(prog, arch);
  drt_cuda_context *ctx = NULL;
  DRT_ASSERT_OK(drt_cuda_context_acquire(0, &ctx));
  drt_cuda_module *m = NULL;
  DRT_ASSERT_OK(drt_cuda_module_load(ctx, prog, &bins, &m));
  drt_cuda_context_release(ctx);
  return m;
}

/* Programmatic dependent launch only where the kernels wait for it: an sm_90+ image (a compute_80
 * PTX JIT-compiled on the device has no griddepcontrol.wait), and not with DRT_CUDA_PDL=0. */
static void test_emu_pdl(void **state) {
  (void)state;
  if (!g_emu_ready) {
    skip();
    return;
  }
  drt_test_rng rng = {7};
  drt_graph *g = emu_graph(&rng);
  drt_cuda_program *prog = emu_program(g, DRT_CUDA_PRECISION_FP32);
  static const struct {
    const char *arch, *env;
    bool want;
  } cases[] = {{"sm_90", NULL, true}, {"compute_90", NULL, true}, {"compute_80", NULL, false},
               {"sm_90", "0", false}, {"sm_90", "1", true}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    drt_cuda_module *m = emu_module_for(prog, cases[i].arch);
    if (cases[i].env) setenv("DRT_CUDA_PDL", cases[i].env, 1);
    drt_cuda_executor *e = NULL;
    DRT_ASSERT_OK(drt_cuda_executor_create(m, 0, NULL, &e));
    unsetenv("DRT_CUDA_PDL");
    if (drt_cuda_executor_pdl(e) != cases[i].want) print_error("case %zu (%s)\n", i, cases[i].arch);
    assert_true(drt_cuda_executor_pdl(e) == cases[i].want);
    drt_cuda_executor_destroy(e);
    drt_cuda_module_destroy(m);
  }
  /* a driver that refuses the attribute: the first launch falls back, and stays without it */
  drt_cuda_module *m = emu_module_for(prog, "sm_90");
  drt_cuda_executor *e = NULL;
  DRT_ASSERT_OK(drt_cuda_executor_create(m, 0, NULL, &e));
  assert_true(drt_cuda_executor_pdl(e));
  float xs[EB * EM * EK];
  drt_test_fill(&rng, xs, EB * EM * EK, 0.05f, 1.0f);
  drt_tensor in = {DRT_DTYPE_FLOAT32, g->inputs[0]->shape, xs}, want[2], got[2];
  drt_cpu_executor *cpu = NULL;
  DRT_ASSERT_OK(drt_cpu_executor_create(g, NULL, &cpu));
  DRT_ASSERT_OK(drt_cpu_executor_run(cpu, &in, want));
  setenv("DRT_MOCK_CUDA_NO_PDL", "1", 1);
  drt_log_set(NULL, NULL, DRT_LOG_ERROR); /* the fallback's warning */
  for (int rep = 0; rep < 3; rep++) { /* eager, captured, replayed */
    DRT_ASSERT_OK(drt_cuda_executor_run(e, &in, got));
    for (int o = 0; o < 2; o++) {
      assert_true(compare(&got[o], &want[o]) <= 1e-5);
      free(got[o].data);
    }
  }
  unsetenv("DRT_MOCK_CUDA_NO_PDL");
  assert_false(drt_cuda_executor_pdl(e));
  for (int o = 0; o < 2; o++) free(want[o].data);
  drt_cpu_executor_destroy(cpu);
  drt_cuda_executor_destroy(e);
  drt_cuda_module_destroy(m);
  drt_cuda_program_destroy(prog);
  drt_graph_destroy(g);
}

/* A node computed in more than one way (a bf16 3x3 convolution: implicit GEMM, im2col +
 * cuBLASLt): DRT_CUDA_VARIANT forces a variant, otherwise the first evaluation times them and
 * keeps one; every choice gives the CPU's result (eager, captured and replayed), and
 * drt_cuda_executor_tune decides before anything runs (as the device loop does before capture). */
static void test_emu_variants(void **state) {
  (void)state;
  if (!g_emu_ready) {
    skip();
    return;
  }
  drt_test_rng rng = {11};
  drt_graph *g;
  DRT_ASSERT_OK(drt_graph_create(&g));
  g->opset = 17;
  drt_shape sx = drt_test_shape(4, (int64_t[]){1, 8, 10, 16});
  drt_value *x = drt_graph_add_value(g, "x", DRT_DTYPE_FLOAT32, &sx);
  DRT_ASSERT_OK(drt_graph_add_input(g, x));
  float w[16 * 8 * 9], bias[16];
  drt_test_fill(&rng, w, 16 * 8 * 9, -0.3f, 0.3f);
  drt_test_fill(&rng, bias, 16, -1, 1);
  drt_shape sw = drt_test_shape(4, (int64_t[]){16, 8, 3, 3}), sb = drt_test_shape(1, (int64_t[]){16});
  drt_value *wv, *bv;
  DRT_ASSERT_OK(drt_graph_add_const(g, "W", DRT_DTYPE_FLOAT32, &sw, w, &wv));
  DRT_ASSERT_OK(drt_graph_add_const(g, "B", DRT_DTYPE_FLOAT32, &sb, bias, &bv));
  drt_value *out = drt_graph_add_value(g, NULL, DRT_DTYPE_UNDEFINED, NULL);
  drt_value *in[3] = {x, wv, bv};
  DRT_ASSERT_OK(drt_graph_add_node(g, DRT_OP_CONV, "conv", in, 3, &out, 1, NULL));
  drt_test_attr_ints(g, out->producer, "pads", 4, (int64_t[]){1, 1, 1, 1});
  DRT_ASSERT_OK(drt_graph_add_output(g, out));
  drt_pass_ctx pc;
  memset(&pc, 0, sizeof pc);
  DRT_ASSERT_OK(drt_pipeline_run(g, &pc, NULL));
  drt_cuda_program *prog = emu_program_in(g, DRT_CUDA_PRECISION_BF16, 4 + (int)DRT_CUDA_PRECISION_BF16);
  /* the convolution's node and its variant count */
  const drt_cuda_graph_code *c = &prog->graphs[0];
  size_t conv = g->num_nodes;
  int nv = 0;
  for (size_t i = 0; i < c->num_launches; i++)
    if (c->launches[i].variant > nv) nv = c->launches[i].variant, conv = c->launches[i].node;
  assert_int_equal(nv, 2); /* 64x64 implicit GEMM, im2col + cuBLASLt */
  float xs[8 * 10 * 16];
  drt_test_fill(&rng, xs, 8 * 10 * 16, -1, 1);
  drt_tensor tin = {DRT_DTYPE_FLOAT32, g->inputs[0]->shape, xs}, want, got;
  drt_cpu_executor *cpu = NULL;
  DRT_ASSERT_OK(drt_cpu_executor_create(g, NULL, &cpu));
  DRT_ASSERT_OK(drt_cpu_executor_run(cpu, &tin, &want));
  drt_cuda_module *m = emu_module_for(prog, "sm_90");
  static const struct {
    const char *env;
    int want; /* 0: any */
    bool tune;
  } cases[] = {{"1", 1, false}, {"2", 2, false}, {"last", 2, false}, {NULL, 0, false}, {NULL, 0, true},
               {"7", 0, false}, {"x1", 0, false}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    if (cases[k].env) setenv("DRT_CUDA_VARIANT", cases[k].env, 1);
    drt_cuda_executor *e = NULL;
    DRT_ASSERT_OK(drt_cuda_executor_create(m, 0, NULL, &e));
    assert_int_equal(drt_cuda_executor_variant(e, conv), 0);
    if (cases[k].tune) {
      DRT_ASSERT_OK(drt_cuda_executor_tune(e));
      assert_true(drt_cuda_executor_variant(e, conv) >= 1);
    }
    for (int rep = 0; rep < 3; rep++) { /* eager, captured, replayed */
      DRT_ASSERT_OK(drt_cuda_executor_run(e, &tin, &got));
      double err = compare(&got, &want);
      if (!(err <= 1e-2)) print_error("case %zu rep %d: rel L2 %g\n", k, rep, err);
      assert_true(err <= 1e-2);
      free(got.data);
    }
    int v = drt_cuda_executor_variant(e, conv);
    if (cases[k].want) assert_int_equal(v, cases[k].want);
    else assert_true(v >= 1 && v <= nv);
    unsetenv("DRT_CUDA_VARIANT");
    drt_cuda_executor_destroy(e);
  }
  free(want.data);
  drt_cpu_executor_destroy(cpu);
  drt_cuda_module_destroy(m);
  drt_cuda_program_destroy(prog);
  drt_graph_destroy(g);
}

static void test_emu_executor_fp32(void **state) {
  (void)state;
  if (!g_emu_ready) {
    skip();
    return;
  }
  emu_run_precision(DRT_CUDA_PRECISION_FP32, 1e-5);
}

static void test_emu_executor_fp16(void **state) {
  (void)state;
  if (!g_emu_ready) {
    skip();
    return;
  }
  emu_run_precision(DRT_CUDA_PRECISION_FP16, 5e-3);
}

static void test_emu_executor_bf16(void **state) {
  (void)state;
  if (!g_emu_ready) {
    skip();
    return;
  }
  emu_run_precision(DRT_CUDA_PRECISION_BF16, 3e-2);
}

/* Sessions of one plan on several threads share the context and the module; each has its own
 * executor. */
typedef struct emu_thread {
  drt_cuda_module *m;
  const drt_tensor *in, *want;
  int failures;
} emu_thread;

static void *emu_thread_main(void *arg) {
  emu_thread *t = arg;
  drt_cuda_context *ctx = NULL;
  drt_status st = drt_cuda_context_acquire(0, &ctx);
  drt_cuda_executor *e = NULL;
  if (!st) st = drt_cuda_executor_create(t->m, 0, NULL, &e);
  for (int rep = 0; rep < 4 && !st; rep++) {
    drt_tensor got[2];
    st = drt_cuda_executor_run(e, t->in, got);
    if (st) break;
    for (int o = 0; o < 2; o++) {
      if (compare(&got[o], &t->want[o]) > 1e-5) t->failures++;
      free(got[o].data);
    }
  }
  if (st) {
    print_error("thread: %s\n", drt_status_message(st));
    drt_status_free(st);
    t->failures++;
  }
  drt_cuda_executor_destroy(e);
  drt_cuda_context_release(ctx);
  return NULL;
}

static void test_emu_threads(void **state) {
  (void)state;
  if (!g_emu_ready) {
    skip();
    return;
  }
  drt_test_rng rng = {77};
  drt_graph *g = emu_graph(&rng);
  drt_cuda_program *prog = emu_program(g, DRT_CUDA_PRECISION_FP32);
  drt_plan_cuda bins = emu_bins(prog, "sm_90");
  drt_cuda_context *ctx = NULL;
  DRT_ASSERT_OK(drt_cuda_context_acquire(0, &ctx));
  drt_cuda_module *m = NULL;
  DRT_ASSERT_OK(drt_cuda_module_load(ctx, prog, &bins, &m));
  float xs[EB * EM * EK];
  drt_test_fill(&rng, xs, EB * EM * EK, 0.05f, 1.0f);
  drt_tensor in = {DRT_DTYPE_FLOAT32, g->inputs[0]->shape, xs}, want[2];
  drt_cpu_executor *cpu = NULL;
  DRT_ASSERT_OK(drt_cpu_executor_create(g, NULL, &cpu));
  DRT_ASSERT_OK(drt_cpu_executor_run(cpu, &in, want));
  enum { NT = 3 };
  pthread_t th[NT];
  emu_thread args[NT];
  for (int i = 0; i < NT; i++) {
    args[i] = (emu_thread){m, &in, want, 0};
    assert_int_equal(pthread_create(&th[i], NULL, emu_thread_main, &args[i]), 0);
  }
  for (int i = 0; i < NT; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(args[i].failures, 0);
  }
  free(want[0].data);
  free(want[1].data);
  drt_cpu_executor_destroy(cpu);
  drt_cuda_module_destroy(m);
  drt_cuda_context_release(ctx);
  drt_cuda_program_destroy(prog);
  drt_graph_destroy(g);
}

static void test_emu_module_errors(void **state) {
  (void)state;
  if (!g_emu_ready) {
    skip();
    return;
  }
  /* a device older than the kernel library (DRT_CUDA_MIN_SM) is refused when the context opens */
  drt_cuda_context *old = NULL;
  setenv("DRT_MOCK_CUDA_CC", "75", 1);
  drt_status ost = drt_cuda_context_acquire(0, &old);
  unsetenv("DRT_MOCK_CUDA_CC");
  DRT_ASSERT_ERROR(ost, DRT_STATUS_UNSUPPORTED, "compute capability 7.5) is older than");
  assert_null(old);
  drt_test_rng rng = {5};
  drt_graph *g = emu_graph(&rng);
  drt_cuda_program *prog = emu_program(g, DRT_CUDA_PRECISION_FP32);
  drt_cuda_context *ctx = NULL;
  DRT_ASSERT_OK(drt_cuda_context_acquire(0, &ctx));
  drt_cuda_module *m = (drt_cuda_module *)1;
  drt_plan_cuda bins = emu_bins(prog, "sm_90");
  bins.source_hash ^= 1;
  DRT_ASSERT_ERROR(drt_cuda_module_load(ctx, prog, &bins, &m), DRT_STATUS_UNSUPPORTED,
                   "does not match this build's code generator");
  assert_null(m);
  bins = emu_bins(prog, "sm_80");
  bins.num_images = 2;
  bins.images[1] = bins.images[0];
  snprintf(bins.images[1].arch, sizeof bins.images[1].arch, "compute_100");
  DRT_ASSERT_ERROR(drt_cuda_module_load(ctx, prog, &bins, &m), DRT_STATUS_UNSUPPORTED,
                   "sm_90): it was compiled for sm_80, compute_100");
  bins = emu_bins(prog, "sm_90");
  bins.precision = DRT_CUDA_PRECISION_FP16;
  DRT_ASSERT_ERROR(drt_cuda_module_load(ctx, prog, &bins, &m), DRT_STATUS_INVALID_ARGUMENT, "precision fp16");
  bins.present = false;
  DRT_ASSERT_ERROR(drt_cuda_module_load(ctx, prog, &bins, &m), DRT_STATUS_INVALID_ARGUMENT, "--target cuda");

  /* device memory, copies, a captured graph of a fixed kernel, timers */
  bins = emu_bins(prog, "compute_90");
  DRT_ASSERT_OK(drt_cuda_module_load(ctx, prog, &bins, &m));
  assert_ptr_equal(drt_cuda_module_context(m), ctx);
  assert_ptr_equal(drt_cuda_module_program(m), prog);
  drt_cuda_executor *e = NULL;
  DRT_ASSERT_OK(drt_cuda_executor_create(m, 0, NULL, &e));
  void *stream = drt_cuda_executor_stream(e);
  assert_non_null(stream);
  enum { NF = 1000 };
  float h[NF], back[NF];
  drt_test_fill(&rng, h, NF, -1, 1);
  uint64_t d1 = 0, d2 = 0;
  DRT_ASSERT_OK(drt_cuda_malloc(ctx, sizeof h, &d1));
  DRT_ASSERT_OK(drt_cuda_malloc(ctx, sizeof h, &d2));
  DRT_ASSERT_OK(drt_cuda_memcpy_htod(ctx, d1, h, sizeof h, NULL));
  DRT_ASSERT_OK(drt_cuda_memcpy_dtod(ctx, d2, d1, sizeof h, stream));
  DRT_ASSERT_OK(drt_cuda_memcpy_dtoh(ctx, back, d2, sizeof h, stream));
  DRT_ASSERT_OK(drt_cuda_stream_sync(ctx, stream));
  assert_memory_equal(back, h, sizeof h);
  drt_cuda_timer *t = NULL;
  DRT_ASSERT_OK(drt_cuda_timer_create(ctx, &t));
  DRT_ASSERT_OK(drt_cuda_timer_start(t, stream));
  DRT_ASSERT_OK(drt_cuda_graph_begin(ctx, stream));
  double val = 2.5;
  uint64_t bits;
  memcpy(&bits, &val, 8);
  uint64_t args[3] = {d2, NF, bits};
  DRT_ASSERT_OK(drt_cuda_module_launch(m, stream, DRT_CUDA_KERNEL_FILL, 4, 256, args, 3));
  drt_cuda_graph *cg = NULL;
  DRT_ASSERT_OK(drt_cuda_graph_end(ctx, stream, &cg));
  DRT_ASSERT_OK(drt_cuda_memcpy_dtoh(ctx, back, d2, sizeof h, NULL));
  assert_memory_equal(back, h, sizeof h); /* captured, not run */
  DRT_ASSERT_OK(drt_cuda_graph_launch(cg, stream));
  DRT_ASSERT_OK(drt_cuda_memcpy_dtoh(ctx, back, d2, sizeof h, stream));
  double ms = -1;
  DRT_ASSERT_OK(drt_cuda_timer_stop(t, stream, &ms));
  assert_true(ms >= 0);
  for (int i = 0; i < NF; i++) assert_true(back[i] == 2.5f);
  DRT_ASSERT_ERROR(drt_cuda_module_launch(m, stream, "no_such_kernel", 1, 1, args, 3), DRT_STATUS_INTERNAL,
                   "no_such_kernel");
  DRT_ASSERT_ERROR(drt_cuda_graph_begin(ctx, NULL), DRT_STATUS_INVALID_ARGUMENT, "needs a stream");
  drt_cuda_graph_destroy(cg);
  drt_cuda_timer_destroy(t);
  drt_cuda_free(ctx, d1);
  drt_cuda_free(ctx, d2);
  /* the enqueue interface runs one evaluation on the caller's stream */
  DRT_ASSERT_OK(drt_cuda_executor_enqueue(e, stream));
  DRT_ASSERT_OK(drt_cuda_stream_sync(ctx, stream));
  drt_cuda_executor_destroy(e);
  drt_cuda_module_destroy(m);
  drt_cuda_context_release(ctx);
  drt_cuda_program_destroy(prog);
  drt_graph_destroy(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_acquire_without_driver), cmocka_unit_test(test_acquire_stub_library),
      cmocka_unit_test(test_parse_arch),             cmocka_unit_test(test_select_image),
      cmocka_unit_test(test_select_image_errors),    cmocka_unit_test(test_gemm_mapping),
      cmocka_unit_test(test_gemm_mapping_errors),    cmocka_unit_test_setup(test_emu_executor_fp32, emu_setup),
      cmocka_unit_test_setup(test_emu_executor_fp16, emu_setup),
      cmocka_unit_test_setup(test_emu_executor_bf16, emu_setup),
      cmocka_unit_test_setup(test_emu_module_errors, emu_setup),
      cmocka_unit_test_setup(test_emu_pdl, emu_setup),
      cmocka_unit_test_setup(test_emu_variants, emu_setup),
      cmocka_unit_test_setup(test_emu_threads, emu_setup),
  };
  /* the emulator tests run last: the driver tests before them point DRT_CUDA_LIBRARY elsewhere */
  return cmocka_run_group_tests(tests, NULL, emu_teardown);
}
