/* CUDA code generation for drt.Attention (codegen/emit_attention.c, codegen/kernels/attention.cuh):
 * the launch geometry (grid over query tiles x batch x heads, warps per block, dynamic shared
 * memory mirroring drt_attn_cfg), the instantiated template (storage type, tensor-core or SIMT
 * variant, tile sizes, mask mode, causal, K/V stages), the baked strides of every layout and of broadcast
 * masks, the HOST fallback with its reason for what the device kernel does not handle, and an
 * NVRTC compile of a program holding every variant for sm_80/86/89/90 (skipped without libnvrtc),
 * and the numerics: single-node graphs (every layout family, GQA, each mask mode and broadcast
 * shape, causal, fully masked rows, head sizes 16..256, odd lengths) rendered in every precision,
 * built with the CPU emulator (tests/cuda_emu/build_kernels.sh; skipped without g++), launched
 * directly with drt_emu_launch and compared with the CPU kernel (relative L2 <= 1e-4 fp32,
 * 3e-3 tf32, 1e-2 fp16/bf16). */
#define _GNU_SOURCE 1 /* mkdtemp */
#include "testutil.h"
#include "attn_testutil.h"

/* ---- launch geometry ----------------------------------------------------------------------- */
/* The DiT benchmark shape: 16 heads of 72 at hidden 1152, [B, S, H*D] everywhere. */
static void test_dit_bf16(void **state) {
  (void)state;
  drt_graph *g = new_graph();
  attn_spec s = {DIMS3(2, 1024, 1152), DIMS3(2, 1024, 1152), DIMS3(2, 1024, 1152), {0}, "b_s_hd", "b_s_hd",
                 "b_s_hd", "b_s_hd", 16, 0, 0, 0, DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, NAN, 0, 0};
  add_attention(g, &s);
  drt_cuda_program *p = build(g, DRT_CUDA_PRECISION_BF16, false);
  const drt_cuda_graph_code *c = &p->graphs[0];
  assert_int_equal(c->num_launches, 1);
  const drt_cuda_launch *l = &c->launches[0];
  assert_int_equal(l->kind, DRT_CUDA_LAUNCH_KERNEL);
  /* 256 blocks of 128 rows: two m16 tiles per warp */
  assert_int_equal(l->grid[0], 1024 / 128 * 2 * 16);
  assert_int_equal(l->grid[1] * l->grid[2], 1);
  assert_int_equal(l->block[0], 128);
  /* the register-resident mma.sync kernel: Q [128][80 + 8] bf16, K/V 2 stages of [64][80 + 8] bf16 */
  assert_int_equal(l->smem, 128 * 88 * 2 + 64 * 88 * 2 * 4);
  assert_int_equal(l->num_args, 5);
  assert_int_equal(l->args[0].kind, DRT_CUDA_ARG_VALUE);
  assert_int_equal(l->args[3].kind, DRT_CUDA_ARG_NONE);
  assert_ptr_equal(l->args[4].value, g->nodes[0]->outputs[0]);
  char *t = kernel_text(p, l);
  assert_has(t, "drt_attention_mma<__nv_bfloat16, unsigned char, 72, 72, -1, false, 2, 64, 0>");
  assert_has(t, "{1179648LL, 72LL, 1152LL, 1LL}"); /* b_s_hd strides over (b, h, s, d) */
  assert_has(t, "{16LL, 1LL, 1024LL, 1024LL,");     /* heads, group, Sq, Skv */
  float sc = (float)(1.0 / sqrt(72.0)); /* as drt_fused_attention_resolve */
  uint32_t bits;
  memcpy(&bits, &sc, 4);
  char want[64];
  snprintf(want, sizeof want, "__uint_as_float(0x%08" PRIx32 "u)", bits);
  assert_has(t, want);
  assert_has(t, "__launch_bounds__(128)");
  free(t);
  drt_cuda_program_destroy(p);

  /* cuda_block_rows = 64 keeps one m16 tile per warp */
  attr_i(g, g->nodes[0], "cuda_block_rows", 64);
  p = build(g, DRT_CUDA_PRECISION_BF16, false);
  l = &p->graphs[0].launches[0];
  assert_int_equal(l->grid[0], 1024 / 64 * 2 * 16);
  assert_int_equal(l->smem, 64 * 88 * 2 * 5);
  t = kernel_text(p, l);
  assert_has(t, "drt_attention_mma<__nv_bfloat16, unsigned char, 72, 72, -1, false, 1, 64, 0>");
  free(t);
  drt_cuda_program_destroy(p);

  /* fp32 storage: SIMT variant, smaller key tile (fits the preferred shared-memory budget) */
  p = build(g, DRT_CUDA_PRECISION_FP32, false);
  l = &p->graphs[0].launches[0];
  t = kernel_text(p, l);
  assert_has(t, "drt_attention<float, unsigned char, 72, 72, 64, 32, -1, false, false, 1>");
  assert_int_equal(l->smem, 64 * 84 * 4 + 32 * 81 * 4 + 32 * 84 * 4 + 64 * 36 * 4 + 64 * 84 * 4 + 256);
  free(t);
  drt_cuda_program_destroy(p);
  drt_graph_destroy(g);
}

/* Head dim 128 with 4096 queries: 128-row blocks with 32-key tiles (the accumulators need the
 * registers); a cuda_block_rows other than 64 or 128 is an error naming the attribute. */
static void test_mma_tiles(void **state) {
  (void)state;
  drt_graph *g = new_graph();
  attn_spec s = {DIMS4(1, 16, 4096, 128), DIMS4(1, 16, 4096, 128), DIMS4(1, 16, 4096, 128), {0}, NULL, NULL, NULL,
                 NULL, 16, 0, 0, 0, DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, NAN, 0, 0};
  drt_node *n = add_attention(g, &s);
  drt_cuda_program *p = build(g, DRT_CUDA_PRECISION_FP16, false);
  const drt_cuda_launch *l = &p->graphs[0].launches[0];
  assert_int_equal(l->grid[0], 4096 / 128 * 16);
  assert_int_equal(l->smem, 128 * 136 * 2 + 32 * 136 * 2 * 4);
  char *t = kernel_text(p, l);
  assert_has(t, "drt_attention_mma<__half, unsigned char, 128, 128, -1, false, 2, 32, 0>");
  free(t);
  drt_cuda_program_destroy(p);
  attr_i(g, n, "cuda_block_rows", 96);
  drt_cuda_codegen_options o;
  drt_cuda_codegen_options_init(&o);
  o.precision = DRT_CUDA_PRECISION_FP16;
  o.allow_host_fallback = false;
  p = NULL;
  drt_status st = drt_cuda_program_build((const drt_graph *const *)&g, 1, &o, &p);
  assert_non_null(st);
  assert_non_null(strstr(drt_status_message(st), "cuda_block_rows"));
  drt_status_free(st);
  drt_graph_destroy(g);
}

/* Every precision and head size picks a configuration within the shared-memory limit; fp32 uses
 * the SIMT variant, tf32 the tensor-core one on float storage; fp16/bf16 with padded head dims up
 * to 128 the mma.sync kernel, larger ones the wmma kernel; fp16 storage is __half. */
static void test_head_sizes(void **state) {
  (void)state;
  static const int64_t dims[] = {8, 32, 64, 72, 80, 96, 128, 160, 256};
  for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
    int64_t d = dims[i];
    drt_graph *g = new_graph();
    attn_spec s = {DIMS4(1, 2, 77, d), DIMS4(1, 2, 130, d), DIMS4(1, 2, 130, d), {0}, NULL, NULL, NULL, NULL,
                   2, 0, 0, 0, DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, NAN, 0, 0};
    add_attention(g, &s);
    for (int prec = 0; prec < 4; prec++) {
      drt_cuda_program *p = build(g, (drt_cuda_precision)prec, false);
      const drt_cuda_launch *l = &p->graphs[0].launches[0];
      char *t = kernel_text(p, l);
      assert_true(l->smem <= 160u * 1024u);
      uint32_t bq = l->block[0] / 32 * 16;
      assert_true(bq == 16 || bq == 32 || bq == 64);
      assert_int_equal(l->grid[0], (77 + bq - 1) / bq * 2);
      bool half = prec == DRT_CUDA_PRECISION_FP16 || prec == DRT_CUDA_PRECISION_BF16;
      bool mma = half && (d + 15) / 16 * 16 <= 128;
      char ty[64];
      snprintf(ty, sizeof ty, "%s<%s, ", mma ? "drt_attention_mma" : "drt_attention",
               prec == DRT_CUDA_PRECISION_FP16 ? "__half" : prec == DRT_CUDA_PRECISION_BF16 ? "__nv_bfloat16" : "float");
      assert_has(t, ty);
      if (mma)
        assert_int_equal(l->smem, 64u * (uint32_t)((d + 15) / 16 * 16 + 8) * 2u * 5u);
      else
        assert_has(t, prec != DRT_CUDA_PRECISION_FP32 ? ", true, " : ", false, 1>");
      free(t);
      drt_cuda_program_destroy(p);
    }
    drt_graph_destroy(g);
  }
}

/* Masks of each mode: element type, mode, broadcast strides over (b, h, i, j). GQA group, causal,
 * channel-major and bmm layouts, distinct V head size. */
static void test_masks_layouts(void **state) {
  (void)state;
  drt_graph *g = new_graph();
  /* additive fp32 mask [B, 1, Sq, Skv], GQA 4 -> 2 */
  attn_spec a = {DIMS4(2, 4, 33, 40), DIMS4(2, 2, 70, 40), DIMS4(2, 2, 70, 24), DIMS4(2, 1, 33, 70), NULL, NULL,
                 NULL, NULL, 4, 2, 0, 0, DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, 0.25f, 0, 0};
  add_attention(g, &a);
  /* bool key-padding mask [Skv], keep where true, causal, b_s_h_d */
  attn_spec b = {DIMS4(2, 9, 3, 16), DIMS4(2, 9, 3, 16), DIMS4(2, 9, 3, 16), {1, 9}, "b_s_h_d", "b_s_h_d", "b_s_h_d",
                 "b_s_h_d", 3, 0, 1, 1, DRT_DTYPE_FLOAT32, DRT_DTYPE_BOOL, NAN, 0, 0};
  add_attention(g, &b);
  /* bool [Sq, Skv] keep where false; UNet channel-major b_d_s_s in, bmm out */
  attn_spec c = {DIMS4(2, 8, 4, 5), DIMS4(2, 8, 3, 3), DIMS4(2, 8, 3, 3), {2, 20, 9}, "b_d_s_s", "b_d_s_s", "b_d_s_s",
                 "bh_s_d", 1, 0, 2, 0, DRT_DTYPE_FLOAT32, DRT_DTYPE_BOOL, NAN, 0, 0};
  add_attention(g, &c);
  /* scalar additive mask */
  attn_spec d = {DIMS3(2, 5, 8), DIMS3(2, 6, 8), DIMS3(2, 6, 8), {-1}, "bh_s_d", "bh_s_d", "bh_s_d", "bh_s_d", 1, 0,
                 0, 0, DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, NAN, 0, 0};
  add_attention(g, &d);
  drt_cuda_program *p = build(g, DRT_CUDA_PRECISION_FP16, false);
  const drt_cuda_graph_code *code = &p->graphs[0];
  assert_int_equal(code->num_launches, 4);
  char *t = kernel_text(p, &code->launches[0]);
  assert_has(t, "drt_attention_mma<__half, __half, 40, 24, 0, false, 1, 64, 0>");
  assert_has(t, "{4LL, 2LL, 33LL, 70LL,");
  assert_has(t, "{2310LL, 0LL, 70LL, 1LL}"); /* mask strides */
  assert_int_equal(code->launches[0].args[3].kind, DRT_CUDA_ARG_VALUE);
  free(t);
  t = kernel_text(p, &code->launches[1]);
  assert_has(t, "drt_attention_mma<__half, unsigned char, 16, 16, 1, true, 1, 64, 0>");
  assert_has(t, "{432LL, 16LL, 48LL, 1LL}"); /* b_s_h_d */
  assert_has(t, "{0LL, 0LL, 0LL, 1LL}");     /* key padding mask */
  free(t);
  t = kernel_text(p, &code->launches[2]);
  assert_has(t, "drt_attention_mma<__half, unsigned char, 8, 8, 2, false, 1, 64, 0>");
  assert_has(t, "{160LL, 0LL, 1LL, 20LL}"); /* b_d_s_s: s contiguous, d strided */
  assert_has(t, "{0LL, 0LL, 9LL, 1LL}");
  free(t);
  t = kernel_text(p, &code->launches[3]);
  assert_has(t, "{0LL, 0LL, 0LL, 0LL}, __uint_as_float"); /* scalar mask: every stride 0 */
  free(t);
  drt_cuda_program_destroy(p);
  drt_graph_destroy(g);
}

/* What the fused kernel does not take goes through the unfused lowering (GEMM, softmax kernel,
 * GEMM; tests/unit/test_codegen_attention_unfused.c) even without fallback; what no device path
 * handles falls back to HOST with a reason, or fails naming the node when fallback is off. */
static void test_fallback(void **state) {
  (void)state;
  drt_graph *g = new_graph();
  attn_spec big = {DIMS4(1, 1, 8, 320), DIMS4(1, 1, 8, 320), DIMS4(1, 1, 8, 320), {0}, NULL, NULL, NULL, NULL, 1, 0,
                   0, 0, DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, NAN, 0, 0};
  add_attention(g, &big);
  drt_cuda_program *p = build(g, DRT_CUDA_PRECISION_BF16, false);
  assert_int_equal(p->graphs[0].num_launches, 3);
  assert_int_equal(p->graphs[0].launches[0].kind, DRT_CUDA_LAUNCH_GEMM);
  assert_int_equal(p->graphs[0].launches[1].kind, DRT_CUDA_LAUNCH_KERNEL);
  assert_int_equal(p->graphs[0].launches[2].kind, DRT_CUDA_LAUNCH_GEMM);
  assert_int_equal(p->graphs[0].num_host_nodes, 0);
  drt_cuda_program_destroy(p);
  drt_graph_destroy(g);

  /* float64 storage */
  g = new_graph();
  attn_spec dbl = {DIMS4(1, 1, 8, 16), DIMS4(1, 1, 8, 16), DIMS4(1, 1, 8, 16), {0}, NULL, NULL, NULL, NULL, 1, 0, 0,
                   0, DRT_DTYPE_FLOAT64, DRT_DTYPE_FLOAT32, NAN, 0, 0};
  add_attention(g, &dbl);
  p = build(g, DRT_CUDA_PRECISION_FP16, true);
  assert_int_equal(p->graphs[0].launches[0].kind, DRT_CUDA_LAUNCH_HOST);
  assert_non_null(strstr(p->graphs[0].launches[0].reason, "storage type"));
  drt_cuda_program_destroy(p);
  drt_graph_destroy(g);

  /* no keys, with a forced key split (a plan's attribute): renders, no split */
  g = new_graph();
  attn_spec nokeys = {DIMS4(1, 2, 64, 64), DIMS4(1, 2, 0, 64), DIMS4(1, 2, 0, 64), {0}, NULL, NULL, NULL, NULL, 2, 0,
                      0, 0, DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, NAN, 0, 0};
  attr_i(g, add_attention(g, &nokeys), "cuda_kv_splits", 2);
  p = build(g, DRT_CUDA_PRECISION_BF16, true);
  assert_int_equal(p->graphs[0].num_host_nodes, 0);
  drt_cuda_program_destroy(p);
  drt_graph_destroy(g);
}

/* ---- NVRTC ----------------------------------------------------------------------------------- */
static void test_nvrtc_compiles(void **state) {
  (void)state;
  int major, minor;
  drt_status st = drt_nvrtc_version(&major, &minor);
  if (st) {
    drt_status_free(st);
    skip();
  }
  drt_graph *g = new_graph();
  attn_spec specs[] = {
      {DIMS3(2, 100, 1152), DIMS3(2, 100, 1152), DIMS3(2, 100, 1152), {0}, "b_s_hd", "b_s_hd", "b_s_hd", "b_s_hd",
       16, 0, 0, 0, DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, NAN, 0, 0},
      {DIMS4(2, 4, 33, 128), DIMS4(2, 2, 70, 128), DIMS4(2, 2, 70, 128), DIMS4(2, 1, 33, 70), NULL, NULL, NULL, NULL,
       4, 2, 0, 1, DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, NAN, 0, 0},
      {DIMS4(2, 256, 4, 5), DIMS4(2, 256, 3, 3), DIMS4(2, 256, 3, 3), {2, 20, 9}, "b_d_s_s", "b_d_s_s", "b_d_s_s",
       "b_hd_s", 1, 0, 2, 0, DRT_DTYPE_FLOAT32, DRT_DTYPE_BOOL, NAN, 0, 0},
      {DIMS4(1, 2, 77, 40), DIMS4(1, 2, 130, 40), DIMS4(1, 2, 130, 24), {1, 130}, NULL, NULL, NULL, NULL, 2, 0, 1, 1,
       DRT_DTYPE_FLOAT32, DRT_DTYPE_BOOL, NAN, 0, 0},
  };
  for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) add_attention(g, &specs[i]);
  drt_nvrtc_compile_options co;
  drt_nvrtc_compile_options_init(&co);
  co.cache_dir = "off";
  /* each arch once (NVRTC parses the whole library per compile): bf16, the benchmark precision,
   * for sm_90 and sm_90a (warpgroup MMAs), fp16 for sm_86 and sm_90a, fp32 (SIMT variant) for sm_89,
   * tf32 for sm_80 */
  static const struct {
    drt_cuda_precision prec;
    const char *archs[2];
    size_t n;
  } runs[] = {{DRT_CUDA_PRECISION_BF16, {"sm_90", "sm_90a"}, 2},
              {DRT_CUDA_PRECISION_FP16, {"sm_86", "sm_90a"}, 2},
              {DRT_CUDA_PRECISION_FP32, {"sm_89", NULL}, 1},
              {DRT_CUDA_PRECISION_TF32, {"sm_80", NULL}, 1}};
  for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
    drt_cuda_program *p = build(g, runs[r].prec, false);
    drt_nvrtc_image img[2];
    memset(img, 0, sizeof img);
    DRT_ASSERT_OK(drt_nvrtc_compile(p, runs[r].archs, runs[r].n, &co, img));
    for (size_t a = 0; a < runs[r].n; a++) {
      assert_true(img[a].size > 0);
      drt_nvrtc_image_free(&img[a]);
    }
    drt_cuda_program_destroy(p);
  }
  drt_graph_destroy(g);
}

/* ---- numerics through the CPU emulator ------------------------------------------------------ */

static void test_emulated_numerics(void **state) {
  (void)state;
  if (getenv("DRT_TEST_NO_EMU") || system("command -v g++ >/dev/null 2>&1") != 0) skip();
  const float NI = -INFINITY;
  (void)NI;
  attn_spec specs[] = {
      /* DiT form, D = 72 (padded to 80), Sq = Skv = 77 */
      {DIMS3(1, 77, 144), DIMS3(1, 77, 144), DIMS3(1, 77, 144), {0}, "b_s_hd", "b_s_hd", "b_s_hd", "b_s_hd", 2, 0, 0,
       0, DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, NAN, 0, 0},
      /* GQA 4 -> 2, causal, three key tiles */
      {DIMS4(1, 4, 130, 64), DIMS4(1, 2, 130, 64), DIMS4(1, 2, 130, 64), {0}, NULL, NULL, NULL, NULL, 4, 2, 0, 1,
       DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, NAN, 0, 0},
      /* additive mask [B, 1, Sq, Skv] with -inf entries, V head size 24 */
      {DIMS4(2, 2, 33, 32), DIMS4(2, 2, 70, 32), DIMS4(2, 2, 70, 24), DIMS4(2, 1, 33, 70), NULL, NULL, NULL, NULL, 2,
       0, 0, 0, DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, 0.2f, 0, 0},
      /* key-padding bool mask (keep true), causal, b_s_h_d, D = 80 */
      {DIMS4(1, 50, 2, 80), DIMS4(1, 100, 2, 80), DIMS4(1, 100, 2, 80), {1, 100}, "b_s_h_d", "b_s_h_d", "b_s_h_d",
       "b_s_h_d", 2, 0, 1, 1, DRT_DTYPE_FLOAT32, DRT_DTYPE_BOOL, NAN, 0, 0},
      /* UNet channel-major, D = 128, bool [Sq, Skv] keep where false */
      {DIMS4(1, 128, 4, 5), DIMS4(1, 128, 3, 3), DIMS4(1, 128, 3, 3), {2, 20, 9}, "b_d_s_s", "b_d_s_s", "b_d_s_s",
       "b_hd_s", 1, 0, 2, 0, DRT_DTYPE_FLOAT32, DRT_DTYPE_BOOL, NAN, 0, 0},
      /* D = 256, bmm form, scalar additive mask */
      {DIMS3(2, 40, 256), DIMS3(2, 50, 256), DIMS3(2, 50, 256), {-1}, "bh_s_d", "bh_s_d", "bh_s_d", "bh_s_d", 1, 0, 0,
       0, DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, NAN, 0, 0},
      /* three keys: rows with every key masked -> 0 */
      {DIMS4(1, 3, 20, 40), DIMS4(1, 1, 3, 40), DIMS4(1, 1, 3, 24), DIMS4(1, 3, 20, 3), NULL, NULL, NULL, NULL, 3, 1,
       1, 0, DRT_DTYPE_FLOAT32, DRT_DTYPE_BOOL, 0.3f, 0, 0},
      /* the same with mask_fill = -FLT_MAX: such rows average every key, as on the CPU */
      {DIMS4(1, 3, 20, 40), DIMS4(1, 1, 3, 40), DIMS4(1, 1, 3, 24), DIMS4(1, 3, 20, 3), NULL, NULL, NULL, NULL, 3, 1,
       1, 0, DRT_DTYPE_FLOAT32, DRT_DTYPE_BOOL, 0.3f, 1, -3.4028235e38f},
      /* one key, tiny head */
      {DIMS4(1, 1, 17, 16), DIMS4(1, 1, 1, 16), DIMS4(1, 1, 1, 8), {0}, NULL, NULL, NULL, NULL, 1, 0, 0, 0,
       DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, NAN, 0, 0},
      /* large scores: the lazy rescale moves its reference max several times */
      {DIMS4(1, 2, 100, 32), DIMS4(1, 1, 300, 32), DIMS4(1, 1, 300, 32), {0}, NULL, NULL, NULL, NULL, 2, 1, 0, 0,
       DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, 3.0f, 0, 0},
      /* a negative scale (legal for ONNX Attention): the mma kernel's maskless fast path, which
         takes the row max over raw scores, must not apply; 70 keys: a full and a partial tile */
      {DIMS4(1, 2, 40, 72), DIMS4(1, 2, 70, 72), DIMS4(1, 2, 70, 72), {0}, NULL, NULL, NULL, NULL, 2, 0, 0, 0,
       DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, -0.25f, 0, 0},
  };
  const size_t nspec = sizeof specs / sizeof specs[0];
  drt_graph *g = new_graph();
  for (size_t i = 0; i < nspec; i++) add_attention(g, &specs[i]);
  /* the mma.sync kernel's 128-row blocks (two m16 tiles per warp) on the cases it takes in
     fp16/bf16: D = 72, GQA causal over two query blocks, additive mask with Dv = 24, key padding
     with D = 80, D = 128 (Q fragments reloaded per tile, 32-key tiles), one key, large scores,
     negative scale */
  static const int wm2[] = {0, 1, 2, 3, 4, 8, 9, 10};
  for (size_t i = 0; i < sizeof wm2 / sizeof wm2[0]; i++) attr_i(g, add_attention(g, &specs[wm2[i]]), "cuda_block_rows", 128);
  /* keys split over blockIdx.y, merged by a second kernel: 2 splits of D = 72; 3 over the causal
     GQA case (splits past the diagonal see no key); 2 with the additive -inf mask; 2 with key
     padding + causal; 3 of the large-score case; and the automatic choice for a launch of 2
     blocks over 400 keys (3 splits); these variants exist in fp16/bf16 only */
  static const int split_spec[][2] = {{0, 2}, {1, 3}, {2, 2}, {3, 2}, {9, 3}};
  for (size_t i = 0; i < sizeof split_spec / sizeof split_spec[0]; i++)
    attr_i(g, add_attention(g, &specs[split_spec[i][0]]), "cuda_kv_splits", split_spec[i][1]);
  attn_spec few = {DIMS4(1, 2, 40, 32), DIMS4(1, 2, 400, 32), DIMS4(1, 2, 400, 32), {0}, NULL, NULL, NULL, NULL, 2, 0,
                   0, 0, DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, NAN, 0, 0};
  add_attention(g, &few);
  const size_t nwm2 = sizeof wm2 / sizeof wm2[0];

  /* fp32 data and CPU references (inputs rounded to each storage type below) */
  char dir[] = "/tmp/drt_attn_emu_XXXXXX";
  assert_non_null(mkdtemp(dir));
  /* fp16/bf16 twice: the mma.sync path, then the sm_90a path (warpgroup MMAs with K / V read
     from shared memory through descriptors; kernels/wgmma.cuh) */
  static const drt_cuda_precision precs[] = {DRT_CUDA_PRECISION_FP32, DRT_CUDA_PRECISION_TF32,
                                             DRT_CUDA_PRECISION_FP16, DRT_CUDA_PRECISION_BF16,
                                             DRT_CUDA_PRECISION_FP16, DRT_CUDA_PRECISION_BF16};
  for (size_t pi = 0; pi < sizeof precs / sizeof precs[0]; pi++) {
    drt_cuda_precision prec = precs[pi];
    const bool sm90a = pi >= 4;
    drt_cuda_program *p = build(g, prec, false);
    emu_module em = {NULL, NULL, NULL};
    char tag[32];
    snprintf(tag, sizeof tag, "%s%s", drt_cuda_precision_name(prec), sm90a ? "_sm90a" : "");
    if (!emu_open_flags(p, dir, tag, sm90a ? "-D__CUDA_ARCH_FEAT_SM90_ALL" : "", &em)) {
      drt_cuda_program_destroy(p);
      skip();
    }
    drt_test_rng rng = {1234};
    for (size_t ni = 0; ni < g->num_nodes; ni++) {
      drt_node *n = g->nodes[ni];
      if (ni >= nspec && prec != DRT_CUDA_PRECISION_FP16 && prec != DRT_CUDA_PRECISION_BF16) break;
      emu_buf bufs[5];
      memset(bufs, 0, sizeof bufs);
      int nb = 0;
      for (int i = 0; i < n->num_inputs; i++) {
        const drt_value *v = n->inputs[i];
        if (!v) continue;
        emu_buf *b = emu_buf_add(bufs, &nb, v, prec);
        for (size_t e = 0; e < b->n; e++) {
          float x;
          if (v->dtype == DRT_DTYPE_BOOL) x = drt_test_uniform(&rng, 0, 1) < 0.7f ? 1.0f : 0.0f;
          else if (i == 3) x = drt_test_uniform(&rng, 0, 1) < 0.2f ? -INFINITY : drt_test_uniform(&rng, -3, 3);
          else x = drt_test_uniform(&rng, i < 2 ? -2.0f : -1.0f, i < 2 ? 2.0f : 1.0f);
          b->f[e] = x;
        }
        emu_buf_upload(b);
      }
      emu_buf_add(bufs, &nb, n->outputs[0], prec);
      drt_tensor ref;
      emu_reference(g, n, bufs, nb, &ref);
      /* device run: one kernel, or the split kernel and its combine */
      bool half = prec == DRT_CUDA_PRECISION_FP16 || prec == DRT_CUDA_PRECISION_BF16;
      uint32_t nl = p->graphs[0].node_first[ni + 1] - p->graphs[0].node_first[ni];
      const drt_cuda_launch *l = &p->graphs[0].launches[p->graphs[0].node_first[ni]];
      assert_int_equal(nl, l->grid[1] > 1 ? 2 : 1); /* a split launch comes with its combine */
      if (half && ni >= nspec + nwm2) assert_int_equal(nl, 2);
      if (!half || (ni >= nspec && ni < nspec + nwm2)) assert_int_equal(nl, 1);
      if (half && ni >= nspec && ni < nspec + nwm2) {
        char *t = kernel_text(p, l);
        assert_true(strstr(t, ", 2, 64, 0>(g") || strstr(t, ", 2, 32, 0>(g"));
        free(t);
      }
      if (half && ni >= nspec + nwm2)
        assert_int_equal(l->grid[1], ni == g->num_nodes - 1 ? 3 : (uint32_t)split_spec[ni - nspec - nwm2][1]);
      void *scratch = calloc(1, p->graphs[0].scratch_bytes + 64);
      assert_non_null(scratch);
      for (uint32_t li = 0; li < nl; li++, l++) {
        assert_int_equal(l->kind, DRT_CUDA_LAUNCH_KERNEL);
        unsigned long long kargs[DRT_CUDA_MAX_ARGS];
        memset(kargs, 0, sizeof kargs);
        for (int a = 0; a < l->num_args; a++) {
          if (l->args[a].kind == DRT_CUDA_ARG_VALUE) {
            emu_buf *b = find_buf(bufs, (size_t)nb, l->args[a].value);
            assert_non_null(b);
            kargs[a] = (unsigned long long)(uintptr_t)((char *)b->dev + l->args[a].offset);
          } else if (l->args[a].kind == DRT_CUDA_ARG_SCRATCH) {
            kargs[a] = (unsigned long long)(uintptr_t)((char *)scratch + l->args[a].offset);
          } else {
            assert_int_equal(l->args[a].kind, DRT_CUDA_ARG_NONE);
          }
        }
        emu_run_kernel(&em, p, l, kargs, ni);
      }
      free(scratch);
      /* tf32: operands keep 10 mantissa bits (the large-score case reaches ~1.5e-3) */
      double tol = prec == DRT_CUDA_PRECISION_FP32 ? 1e-4 : prec == DRT_CUDA_PRECISION_TF32 ? 3e-3 : 1e-2;
      emu_check_output(bufs, nb, n, ni, &ref, tol, prec);
    }
    /* the sm_90a modules really ran warpgroup MMAs (not the mma.sync fallback), the others none */
    unsigned long long (*wgmma_count)(void) = (unsigned long long (*)(void))dlsym(em.h, "drt_emu_wgmma_count");
    assert_non_null(wgmma_count);
    if (sm90a) assert_true(wgmma_count() > 0);
    else assert_int_equal(wgmma_count(), 0);
    drt_cuda_program_destroy(p);
  }
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
  drt_graph_destroy(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dit_bf16),
      cmocka_unit_test(test_head_sizes),
      cmocka_unit_test(test_mma_tiles),
      cmocka_unit_test(test_masks_layouts),
      cmocka_unit_test(test_fallback),
      cmocka_unit_test(test_nvrtc_compiles),
      cmocka_unit_test(test_emulated_numerics),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
