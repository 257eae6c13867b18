/* CUDA code generation for drt.Attention, unfused lowering (codegen/emit_attention.c, the
 * drt_attn_softmax_rows kernel in codegen/kernels/attention.cuh): head sizes the fused kernel does
 * not take (> 256: UNet / VAE single-head spatial attention) become S = scale Q K^T (cuBLASLt, fp32
 * scores in scratch), a softmax kernel over the rows (mask, causal, P in the storage type over S)
 * and Y = P V (cuBLASLt, into the output layout). Tests: the launch structure (no HOST launch; one
 * GEMM per linear run of (batch, head) pairs: whole batches for b_h_s_d / channel-major, per batch
 * for b_s_hd, per key/value head for GQA), the GEMM descriptors of the channel-major form, chunking
 * over pairs and query rows when the scores exceed 256 MiB, an NVRTC compile of every softmax
 * variant (skipped without libnvrtc), and the numerics: every launch of single-node graphs run on
 * the CPU (GEMMs by a naive loop in double, the softmax kernel through the emulator, skipped
 * without g++) against the CPU kernel, in fp32 and fp16 (each mask mode, finite mask_fill, causal,
 * GQA, fully masked rows, channel-major and b_s_hd layouts). */
#define _GNU_SOURCE 1 /* mkdtemp */
#include "testutil.h"
#include "attn_testutil.h"

static size_t count_kind(const drt_cuda_graph_code *c, int kind) {
  size_t k = 0;
  for (size_t i = 0; i < c->num_launches; i++) k += c->launches[i].kind == kind;
  return k;
}

/* ---- launch structure ---------------------------------------------------------------------- */
/* UNet / VAE AttnBlock: [2, 640, 8, 8] channel-major, one head of 640, bf16. */
static void test_channel_major_d640(void **state) {
  (void)state;
  drt_graph *g = new_graph();
  attn_spec s = {DIMS4(2, 640, 8, 8), DIMS4(2, 640, 8, 8), DIMS4(2, 640, 8, 8), {0}, "b_d_s_s", "b_d_s_s", "b_d_s_s",
                 "b_hd_s", 1, 0, 0, 0, DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, NAN, 0, 0};
  add_attention(g, &s);
  drt_cuda_program *p = build(g, DRT_CUDA_PRECISION_BF16, false);
  const drt_cuda_graph_code *c = &p->graphs[0];
  assert_int_equal(c->num_host_nodes, 0);
  assert_int_equal(c->num_launches, 3);
  assert_true(c->scratch_bytes >= 2u * 64u * 64u * 4u);
  /* S = scale Q K^T: Q stored [D, S] (transposed), K^T stored [D, T] row-major; fp32 scores */
  const drt_cuda_gemm *g1 = &c->launches[0].gemm;
  assert_int_equal(c->launches[0].kind, DRT_CUDA_LAUNCH_GEMM);
  assert_int_equal(g1->m, 64);
  assert_int_equal(g1->n, 64);
  assert_int_equal(g1->k, 640);
  assert_int_equal(g1->batch, 2);
  assert_true(g1->trans_a);
  assert_false(g1->trans_b);
  assert_int_equal(g1->lda, 64);
  assert_int_equal(g1->ldb, 64);
  assert_int_equal(g1->ldd, 64);
  assert_int_equal(g1->stride_a, 640 * 64);
  assert_int_equal(g1->stride_b, 640 * 64);
  assert_int_equal(g1->stride_d, 64 * 64);
  assert_int_equal(g1->a_type, DRT_DTYPE_BFLOAT16);
  assert_int_equal(g1->d_type, DRT_DTYPE_FLOAT32);
  assert_int_equal(g1->d.kind, DRT_CUDA_ARG_SCRATCH);
  assert_true(fabsf(g1->alpha - (float)(1.0 / sqrt(640.0))) < 1e-7f);
  /* softmax: one block per score row */
  const drt_cuda_launch *k = &c->launches[1];
  assert_int_equal(k->kind, DRT_CUDA_LAUNCH_KERNEL);
  assert_int_equal(k->grid[0], 2 * 64);
  assert_int_equal(k->block[0], 256);
  assert_int_equal(k->num_args, 4);
  assert_int_equal(k->args[0].kind, DRT_CUDA_ARG_SCRATCH);
  assert_int_equal(k->args[1].kind, DRT_CUDA_ARG_NONE);
  char *t = kernel_text(p, k);
  assert_has(t, "drt_attn_softmax_rows<__nv_bfloat16, unsigned char, -1, false, 256>");
  assert_has(t, "{1LL, 64LL, 64LL, 64LL, {0LL, 0LL, 0LL, 0LL}");
  free(t);
  /* Y^T = V^T P^T: the output is channel-major ([D, S] per batch) */
  const drt_cuda_gemm *g2 = &c->launches[2].gemm;
  assert_int_equal(c->launches[2].kind, DRT_CUDA_LAUNCH_GEMM);
  assert_int_equal(g2->m, 640);
  assert_int_equal(g2->n, 64);
  assert_int_equal(g2->k, 64);
  assert_int_equal(g2->batch, 2);
  assert_false(g2->trans_a);
  assert_int_equal(g2->lda, 64);
  assert_true(g2->trans_b);
  assert_int_equal(g2->ldb, 128); /* bf16 P over fp32 rows of 64 */
  assert_int_equal(g2->stride_b, 64 * 128);
  assert_int_equal(g2->ldd, 64);
  assert_int_equal(g2->stride_d, 640 * 64);
  assert_int_equal(g2->b.kind, DRT_CUDA_ARG_SCRATCH);
  assert_int_equal(g2->d.kind, DRT_CUDA_ARG_VALUE);
  assert_int_equal(g2->d_type, DRT_DTYPE_BFLOAT16);
  drt_cuda_program_destroy(p);
  drt_graph_destroy(g);
}

/* [B, S, H*D] with two batches and two heads: the pairs are linear per batch only (two GEMMs per
 * product); GQA 4 -> 2: one GEMM per key/value head (K batch stride 0); a bool mask, causal. */
static void test_runs_masks(void **state) {
  (void)state;
  drt_graph *g = new_graph();
  attn_spec bshd = {DIMS3(2, 24, 640), DIMS3(2, 30, 640), DIMS3(2, 30, 640), DIMS4(2, 1, 24, 30), "b_s_hd", "b_s_hd",
                    "b_s_hd", "b_s_hd", 2, 0, 0, 0, DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, NAN, 0, 0};
  attn_spec gqa = {DIMS4(1, 4, 20, 512), DIMS4(1, 2, 26, 512), DIMS4(1, 2, 26, 512), {2, 20, 26}, NULL, NULL, NULL,
                   NULL, 4, 2, 1, 1, DRT_DTYPE_FLOAT32, DRT_DTYPE_BOOL, NAN, 0, 0};
  add_attention(g, &bshd);
  add_attention(g, &gqa);
  drt_cuda_program *p = build(g, DRT_CUDA_PRECISION_FP16, false);
  const drt_cuda_graph_code *c = &p->graphs[0];
  assert_int_equal(c->num_host_nodes, 0);
  assert_int_equal(count_kind(c, DRT_CUDA_LAUNCH_HOST), 0);
  assert_int_equal(c->node_first[1], 5);
  assert_int_equal(c->node_first[2], 10);
  static const int kinds[5] = {DRT_CUDA_LAUNCH_GEMM, DRT_CUDA_LAUNCH_GEMM, DRT_CUDA_LAUNCH_KERNEL,
                               DRT_CUDA_LAUNCH_GEMM, DRT_CUDA_LAUNCH_GEMM};
  for (int i = 0; i < 10; i++) assert_int_equal(c->launches[i].kind, kinds[i % 5]);
  /* b_s_hd: per batch, the two heads 320 apart */
  const drt_cuda_gemm *g1 = &c->launches[1].gemm;
  assert_int_equal(g1->batch, 2);
  assert_int_equal(g1->stride_a, 320);
  assert_false(g1->trans_a);
  assert_int_equal(g1->lda, 640);
  assert_true(g1->trans_b);
  assert_int_equal(g1->ldb, 640);
  assert_int_equal(g1->a.offset, 24 * 640 * 2); /* batch 1 of fp16 Q */
  assert_int_equal(c->launches[4].gemm.d.offset, 24 * 640 * 2);
  assert_int_equal(c->launches[4].gemm.ldd, 640);
  assert_int_equal(c->launches[4].gemm.stride_d, 320);
  char *t = kernel_text(p, &c->launches[2]);
  assert_has(t, "drt_attn_softmax_rows<__half, __half, 0, false, 256>");
  assert_has(t, "{2LL, 24LL, 30LL, 24LL, {720LL, 0LL, 30LL, 1LL}");
  free(t);
  /* GQA: query heads 2h, 2h + 1 share key/value head h */
  for (int i = 5; i < 10; i++) {
    if (c->launches[i].kind != DRT_CUDA_LAUNCH_GEMM) continue;
    assert_int_equal(c->launches[i].gemm.batch, 2);
  }
  assert_int_equal(c->launches[5].gemm.stride_b, 0);
  assert_int_equal(c->launches[6].gemm.b.offset, 26 * 512 * 2);
  assert_int_equal(c->launches[8].gemm.stride_b, 0);
  t = kernel_text(p, &c->launches[7]);
  assert_has(t, "drt_attn_softmax_rows<__half, unsigned char, 1, true, 256>");
  free(t);
  drt_cuda_program_destroy(p);
  drt_graph_destroy(g);
}

/* Scores above 256 MiB are chunked: over (batch, head) pairs (8192 x 8192 fp32 = 256 MiB per
 * pair: one pair per chunk) and, for one pair, over query rows (16384 x 16384: 4096 rows each). */
static void test_chunking(void **state) {
  (void)state;
  drt_graph *g = new_graph();
  attn_spec pairs = {DIMS4(1, 2, 8192, 512), DIMS4(1, 2, 8192, 512), DIMS4(1, 2, 8192, 512), {0}, NULL, NULL, NULL,
                     NULL, 2, 0, 0, 0, DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, NAN, 0, 0};
  add_attention(g, &pairs);
  drt_cuda_program *p = build(g, DRT_CUDA_PRECISION_FP16, false);
  const drt_cuda_graph_code *c = &p->graphs[0];
  assert_int_equal(c->num_launches, 6);
  assert_int_equal(c->scratch_bytes, 256ull << 20);
  assert_int_equal(c->launches[1].grid[0], 8192);
  assert_int_equal(c->launches[4].args[2].imm, 1); /* second pair */
  assert_int_equal(c->launches[3].gemm.a.offset, 8192ull * 512 * 2);
  assert_int_equal(c->launches[3].gemm.batch, 1);
  drt_cuda_program_destroy(p);
  drt_graph_destroy(g);

  g = new_graph();
  attn_spec rows = {DIMS4(1, 1, 16384, 320), DIMS4(1, 1, 16384, 320), DIMS4(1, 1, 16384, 320), {0}, NULL, NULL, NULL,
                    NULL, 1, 0, 0, 1, DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, NAN, 0, 0};
  add_attention(g, &rows);
  p = build(g, DRT_CUDA_PRECISION_BF16, false);
  c = &p->graphs[0];
  assert_int_equal(c->num_launches, 12);
  assert_int_equal(c->scratch_bytes, 256ull << 20);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(c->launches[3 * i].gemm.m, 4096);
    assert_int_equal(c->launches[3 * i].gemm.a.offset, (uint64_t)i * 4096 * 320 * 2);
    assert_int_equal(c->launches[3 * i + 1].args[3].imm, (uint64_t)i * 4096);
    assert_int_equal(c->launches[3 * i + 1].grid[0], 4096);
    assert_int_equal(c->launches[3 * i + 2].gemm.d.offset, (uint64_t)i * 4096 * 320 * 2);
  }
  /* one softmax kernel for every chunk */
  assert_int_equal(c->launches[1].kernel, c->launches[10].kernel);
  drt_cuda_program_destroy(p);
  drt_graph_destroy(g);
}

/* A layout with neither contiguous rows nor columns is not lowered: HOST with the reason. */
static void test_declines(void **state) {
  (void)state;
  drt_graph *g = new_graph();
  attn_spec s = {DIMS3(1, 8, 640), DIMS3(1, 8, 640), DIMS3(1, 8, 640), {0}, "b_s_dh", "b_s_hd", "b_s_hd", "b_s_hd", 2,
                 0, 0, 0, DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, NAN, 0, 0};
  add_attention(g, &s);
  drt_cuda_program *p = build(g, DRT_CUDA_PRECISION_FP32, true);
  assert_int_equal(p->graphs[0].num_launches, 1);
  assert_int_equal(p->graphs[0].launches[0].kind, DRT_CUDA_LAUNCH_HOST);
  assert_non_null(strstr(p->graphs[0].launches[0].reason, "neither contiguous"));
  drt_cuda_program_destroy(p);
  drt_cuda_codegen_options o;
  drt_cuda_codegen_options_init(&o);
  o.precision = DRT_CUDA_PRECISION_FP32;
  o.allow_host_fallback = false;
  DRT_ASSERT_ERROR(drt_cuda_program_build((const drt_graph *const *)&g, 1, &o, &p), DRT_STATUS_UNSUPPORTED,
                   "neither contiguous");
  drt_graph_destroy(g);
}

/* ---- NVRTC ----------------------------------------------------------------------------------- */
static drt_graph *variants_graph(void) {
  drt_graph *g = new_graph();
  attn_spec specs[] = {
      {DIMS4(2, 320, 4, 5), DIMS4(2, 320, 4, 5), DIMS4(2, 320, 4, 5), {0}, "b_d_s_s", "b_d_s_s", "b_d_s_s", "b_hd_s",
       1, 0, 0, 0, DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, NAN, 0, 0},
      {DIMS4(1, 4, 20, 512), DIMS4(1, 2, 26, 512), DIMS4(1, 2, 26, 512), {0}, NULL, NULL, NULL, NULL, 4, 2, 0, 1,
       DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, NAN, 0, 0},
      {DIMS3(2, 24, 640), DIMS3(2, 30, 640), DIMS3(2, 30, 640), DIMS4(2, 1, 24, 30), "b_s_hd", "b_s_hd", "b_s_hd",
       "b_s_hd", 2, 0, 0, 0, DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, NAN, 0, 0},
      {DIMS4(1, 3, 17, 320), DIMS4(1, 3, 23, 320), DIMS4(1, 3, 23, 384), DIMS4(1, 3, 17, 23), NULL, NULL, NULL, NULL,
       3, 0, 1, 0, DRT_DTYPE_FLOAT32, DRT_DTYPE_BOOL, NAN, 0, 0},
      {DIMS4(1, 2, 19, 300), DIMS4(1, 2, 21, 300), DIMS4(1, 2, 21, 300), {2, 19, 21}, NULL, NULL, NULL, NULL, 2, 0, 2,
       1, DRT_DTYPE_FLOAT32, DRT_DTYPE_BOOL, 0.5f, 1, -5.0f},
      {DIMS3(2, 33, 264), DIMS3(2, 40, 264), DIMS3(2, 40, 264), {-1}, "bh_s_d", "bh_s_d", "bh_s_d", "bh_s_d", 1, 0, 0,
       0, DRT_DTYPE_FLOAT32, DRT_DTYPE_FLOAT32, NAN, 0, 0},
  };
  for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) add_attention(g, &specs[i]);
  return g;
}

static void test_nvrtc_compiles(void **state) {
  (void)state;
  int major, minor;
  drt_status st = drt_nvrtc_version(&major, &minor);
  if (st) {
    drt_status_free(st);
    skip();
  }
  drt_graph *g = variants_graph();
  drt_nvrtc_compile_options co;
  drt_nvrtc_compile_options_init(&co);
  co.cache_dir = "off";
  static const struct {
    drt_cuda_precision prec;
    const char *arch;
  } runs[] = {{DRT_CUDA_PRECISION_BF16, "sm_90"}, {DRT_CUDA_PRECISION_FP16, "sm_80"},
              {DRT_CUDA_PRECISION_FP32, "sm_86"}};
  for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
    drt_cuda_program *p = build(g, runs[r].prec, false);
    assert_int_equal(p->graphs[0].num_host_nodes, 0);
    drt_nvrtc_image img;
    memset(&img, 0, sizeof img);
    DRT_ASSERT_OK(drt_nvrtc_compile(p, &runs[r].arch, 1, &co, &img));
    assert_true(img.size > 0);
    drt_nvrtc_image_free(&img);
    drt_cuda_program_destroy(p);
  }
  drt_graph_destroy(g);
}

/* ---- numerics through the CPU emulator ------------------------------------------------------ */

/* Storage element i of a buffer as float, and back. */
static float ld_el(drt_dtype t, const void *p, int64_t i) {
  float f;
  drt_convert(DRT_DTYPE_FLOAT32, &f, t, (const char *)p + (size_t)i * drt_dtype_size(t), 1);
  return f;
}
static void st_el(drt_dtype t, void *p, int64_t i, double x) {
  float f = (float)x;
  drt_convert(t, (char *)p + (size_t)i * drt_dtype_size(t), DRT_DTYPE_FLOAT32, &f, 1);
}

/* The row-major GEMM of codegen.h (no C, no epilogue), naively in double. */
static void run_gemm(const drt_cuda_gemm *g, const void *a, const void *b, void *d) {
  assert_int_equal(g->c.kind, DRT_CUDA_ARG_NONE);
  assert_int_equal(g->epilogue, DRT_CUDA_EPI_NONE);
  for (int64_t t = 0; t < g->batch; t++)
    for (int64_t i = 0; i < g->m; i++)
      for (int64_t j = 0; j < g->n; j++) {
        double s = 0.0;
        for (int64_t k = 0; k < g->k; k++) {
          int64_t ia = t * g->stride_a + (g->trans_a ? k * g->lda + i : i * g->lda + k);
          int64_t ib = t * g->stride_b + (g->trans_b ? j * g->ldb + k : k * g->ldb + j);
          s += (double)ld_el(g->a_type, a, ia) * ld_el(g->b_type, b, ib);
        }
        st_el(g->d_type, d, t * g->stride_d + i * g->ldd + j, g->alpha * s);
      }
}

static void test_emulated_numerics(void **state) {
  (void)state;
  if (getenv("DRT_TEST_NO_EMU") || system("command -v g++ >/dev/null 2>&1") != 0) skip();
  drt_graph *g = variants_graph();
  char dir[] = "/tmp/drt_attn_unfused_XXXXXX";
  assert_non_null(mkdtemp(dir));
  static const drt_cuda_precision precs[] = {DRT_CUDA_PRECISION_FP32, DRT_CUDA_PRECISION_FP16};
  for (size_t pi = 0; pi < sizeof precs / sizeof precs[0]; pi++) {
    drt_cuda_precision prec = precs[pi];
    drt_cuda_program *p = build(g, prec, false);
    emu_module em = {NULL, NULL, NULL};
    if (!emu_open(p, dir, drt_cuda_precision_name(prec), &em)) {
      drt_cuda_program_destroy(p);
      skip();
    }
    unsigned char *scratch = malloc(p->graphs[0].scratch_bytes + 16);
    assert_non_null(scratch);
    drt_test_rng rng = {4321};
    for (size_t ni = 0; ni < g->num_nodes; ni++) {
      drt_node *n = g->nodes[ni];
      emu_buf bufs[5];
      memset(bufs, 0, sizeof bufs);
      int nb = 0;
      for (int i = 0; i < n->num_inputs; i++) {
        const drt_value *v = n->inputs[i];
        if (!v) continue;
        emu_buf *b = emu_buf_add(bufs, &nb, v, prec);
        for (size_t e = 0; e < b->n; e++) {
          float x;
          if (v->dtype == DRT_DTYPE_BOOL) x = drt_test_uniform(&rng, 0, 1) < 0.6f ? 1.0f : 0.0f;
          else if (i == 3 && b->n > 1) x = drt_test_uniform(&rng, 0, 1) < 0.2f ? -INFINITY : drt_test_uniform(&rng, -3, 3);
          else if (i == 3) x = drt_test_uniform(&rng, -3, 3); /* a scalar mask: finite */
          else x = drt_test_uniform(&rng, -1.0f, 1.0f);
          b->f[e] = x;
        }
        if (v->dtype == DRT_DTYPE_BOOL) {
          /* row 3 all false: a fully masked row (keep-where-true masks with the -inf fill) */
          int64_t last = v->shape.dims[v->shape.rank - 1];
          if (b->n >= (size_t)(4 * last))
            for (int64_t e = 0; e < last; e++) b->f[3 * last + e] = 0.0f;
        }
        emu_buf_upload(b);
      }
      emu_buf_add(bufs, &nb, n->outputs[0], prec);
      drt_tensor ref;
      emu_reference(g, n, bufs, nb, &ref);
      /* device run: every launch of the node */
      memset(scratch, 0xff, p->graphs[0].scratch_bytes + 16);
      for (uint32_t li = p->graphs[0].node_first[ni]; li < p->graphs[0].node_first[ni + 1]; li++) {
        const drt_cuda_launch *l = &p->graphs[0].launches[li];
        const drt_cuda_arg *gargs[3] = {&l->gemm.a, &l->gemm.b, &l->gemm.d};
        void *ptr[DRT_CUDA_MAX_ARGS];
        const drt_cuda_arg *args = l->args;
        int na = l->num_args;
        if (l->kind == DRT_CUDA_LAUNCH_GEMM) na = 3;
        else assert_int_equal(l->kind, DRT_CUDA_LAUNCH_KERNEL);
        unsigned long long kargs[DRT_CUDA_MAX_ARGS];
        memset(kargs, 0, sizeof kargs);
        for (int a = 0; a < na; a++) {
          const drt_cuda_arg *x = l->kind == DRT_CUDA_LAUNCH_GEMM ? gargs[a] : &args[a];
          ptr[a] = NULL;
          if (x->kind == DRT_CUDA_ARG_VALUE) {
            emu_buf *b = find_buf(bufs, (size_t)nb, x->value);
            assert_non_null(b);
            ptr[a] = (char *)b->dev + x->offset;
          } else if (x->kind == DRT_CUDA_ARG_SCRATCH) {
            ptr[a] = scratch + x->offset;
          } else if (x->kind == DRT_CUDA_ARG_IMM) {
            kargs[a] = x->imm;
            continue;
          }
          kargs[a] = (unsigned long long)(uintptr_t)ptr[a];
        }
        if (l->kind == DRT_CUDA_LAUNCH_GEMM) {
          run_gemm(&l->gemm, ptr[0], ptr[1], ptr[2]);
          continue;
        }
        emu_run_kernel(&em, p, l, kargs, ni);
      }
      emu_check_output(bufs, nb, n, ni, &ref, prec == DRT_CUDA_PRECISION_FP32 ? 1e-5 : 1e-2, prec);
    }
    free(scratch);
    drt_cuda_program_destroy(p);
  }
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
  drt_graph_destroy(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_channel_major_d640), cmocka_unit_test(test_runs_masks),
      cmocka_unit_test(test_chunking),           cmocka_unit_test(test_declines),
      cmocka_unit_test(test_nvrtc_compiles),     cmocka_unit_test(test_emulated_numerics),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
