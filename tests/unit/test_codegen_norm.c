/* CUDA code generation for the norm family (codegen/emit_norm.c, kernels/norm.cuh, cfg.cuh):
 * single-node graphs of every op and strategy (cached / streamed / split normalization,
 * parameter broadcast modes x activations x mod_one_plus, softmax rows and strided axes,
 * reductions over inner, outer and mixed axes incl. split reductions, arg-extrema, BatchNorm,
 * global pools, every guidance mode) are rendered in fp32, fp16 and bf16 without host fallback
 * and their launch lists checked; the programs are compiled with NVRTC (sm_80 / sm_90 / sm_86, one
 * per precision; skipped without NVRTC); and every graph is run through the CUDA emulator
 * (tests/cuda_emu/emu.h, g++; skipped without it) and compared with the CPU kernel on the same
 * storage-rounded inputs (relative L2: 1e-4 fp32, 3e-3 fp16, 2e-2 bf16; int64 outputs exact).
 * DRT_TEST_VERBOSE=1 prints every error, DRT_TEST_DUMP=FILE keeps the fp16 program. */
#include "testutil.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/codegen.h"
#include "codegen/nvrtc.h"
#include "ir/infer.h"

#define MAX_GRAPHS 96

typedef struct suite {
  drt_graph *g[MAX_GRAPHS];
  int n;
} suite;

/* one single-node graph under construction */
typedef struct tg {
  drt_graph *g;
  drt_node *n;
  drt_value *in[8];
  int nin;
} tg;

static void tg_begin(tg *t) {
  memset(t, 0, sizeof *t);
  DRT_ASSERT_OK(drt_graph_create(&t->g));
}

static void tg_in(tg *t, int rank, const int64_t *dims) {
  char name[16];
  snprintf(name, sizeof name, "in%d", t->nin);
  drt_shape s = drt_test_shape(rank, dims);
  drt_value *v = drt_graph_add_value(t->g, name, DRT_DTYPE_FLOAT32, &s);
  assert_non_null(v);
  DRT_ASSERT_OK(drt_graph_add_input(t->g, v));
  t->in[t->nin++] = v;
}

static void tg_const_i64(tg *t, int64_t count, const int64_t *v) {
  drt_shape s = drt_test_shape(1, (int64_t[]){count});
  drt_value *c;
  DRT_ASSERT_OK(drt_graph_add_const(t->g, NULL, DRT_DTYPE_INT64, &s, v, &c));
  t->in[t->nin++] = c;
}

static void tg_absent(tg *t) { t->in[t->nin++] = NULL; }

static void tg_node(tg *t, drt_op op, int opset, int nout) {
  drt_value *outs[4];
  for (int i = 0; i < nout; i++) outs[i] = drt_graph_add_value(t->g, NULL, DRT_DTYPE_UNDEFINED, NULL);
  DRT_ASSERT_OK(drt_graph_add_node(t->g, op, "node", t->in, t->nin, outs, nout, &t->n));
  t->n->opset = opset;
}

static void tg_int(tg *t, const char *name, int64_t v) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_INT;
  a.i = v;
  DRT_ASSERT_OK(drt_node_add_attr(t->g, t->n, &a));
}

static void tg_float(tg *t, const char *name, float v) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_FLOAT;
  a.f = v;
  DRT_ASSERT_OK(drt_node_add_attr(t->g, t->n, &a));
}

static void tg_str(tg *t, const char *name, const char *v) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_STRING;
  a.s = v;
  a.s_len = strlen(v);
  DRT_ASSERT_OK(drt_node_add_attr(t->g, t->n, &a));
}

static void tg_ints(tg *t, const char *name, int64_t count, const int64_t *v) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_INTS;
  a.count = count;
  a.ints = (int64_t *)v;
  DRT_ASSERT_OK(drt_node_add_attr(t->g, t->n, &a));
}

static void tg_end(suite *s, tg *t) {
  DRT_ASSERT_OK(drt_infer_node(t->g, t->n));
  for (int i = 0; i < t->n->num_outputs; i++) DRT_ASSERT_OK(drt_graph_add_output(t->g, t->n->outputs[i]));
  assert_true(s->n < MAX_GRAPHS);
  s->g[s->n++] = t->g;
}

#define D(...) (int64_t[]){__VA_ARGS__}

/* drt.Norm: x, then which of the four parameters are present with their shapes */
static void add_norm(suite *s, const char *kind, int rank, const int64_t *x, const int64_t *const pshape[4],
                     const int prank[4], int axis, int groups, const char *act, int one_plus) {
  tg t;
  tg_begin(&t);
  tg_in(&t, rank, x);
  int last = 0;
  for (int k = 0; k < 4; k++)
    if (pshape[k]) last = k + 1;
  for (int k = 0; k < last; k++) {
    if (pshape[k]) tg_in(&t, prank[k], pshape[k]);
    else tg_absent(&t);
  }
  tg_node(&t, DRT_OP_FUSED_NORM, 1, 1);
  tg_str(&t, "kind", kind);
  if (strcmp(kind, "group") == 0) tg_int(&t, "num_groups", groups);
  else tg_int(&t, "axis", axis);
  tg_float(&t, "epsilon", 1e-6f);
  tg_str(&t, "activation", act);
  tg_int(&t, "mod_one_plus", one_plus);
  tg_end(s, &t);
}

static void build_suite(suite *s) {
  memset(s, 0, sizeof *s);
  tg t;
  /* drt.Norm: DiT adaLN (mod [B,1,C], one_plus, every activation), rms, general broadcast,
   * short rows, odd planes, streamed rows, group norm cached and split */
  const char *acts[4] = {"none", "silu", "gelu", "gelu_tanh"};
  for (int a = 0; a < 4; a++) {
    const int64_t *ps[4] = {NULL, NULL, D(2, 1, 1152), D(2, 1, 1152)};
    int pr[4] = {0, 0, 3, 3};
    add_norm(s, "layer", 3, D(2, 77, 1152), ps, pr, -1, 0, acts[a], a & 1);
  }
  for (int a = 0; a < 4; a++) /* every activation x mod_one_plus, with and without scale / shift */
    for (int op = 0; op < 2; op++) {
      const int64_t *ps[4] = {a % 2 ? NULL : D(64), NULL, D(2, 1, 64), op ? D(2, 1, 64) : NULL};
      int pr[4] = {1, 0, 3, 3};
      add_norm(s, "layer", 3, D(2, 9, 64), ps, pr, -1, 0, acts[a], op);
    }
  {
    const int64_t *ps[4] = {D(64), NULL, NULL, NULL};
    int pr[4] = {1, 0, 0, 0};
    add_norm(s, "rms", 3, D(3, 5, 64), ps, pr, -1, 0, "none", 0);
  }
  {
    const int64_t *ps[4] = {D(48), NULL, D(2, 1, 1), D(2, 5, 1)};
    int pr[4] = {1, 0, 3, 3};
    add_norm(s, "rms", 3, D(2, 5, 48), ps, pr, -1, 0, "silu", 1);
  }
  {
    const int64_t *ps[4] = {D(64, 1, 1), D(64, 1, 1), D(2, 64, 1, 1), D(2, 64, 1, 1)};
    int pr[4] = {3, 3, 4, 4};
    add_norm(s, "group", 4, D(2, 64, 4, 4), ps, pr, 0, 16, "gelu", 1);
  }
  {
    const int64_t *ps[4] = {D(5, 1), D(7), D(2, 1, 1), D(2, 5, 7)};
    int pr[4] = {2, 1, 3, 3};
    add_norm(s, "layer", 3, D(2, 5, 7), ps, pr, 1, 0, "gelu", 1);
  }
  {
    const int64_t *ps[4] = {D(8, 16), D(2, 1, 1, 1), D(2, 3, 1, 16), D(3, 1, 1)};
    int pr[4] = {2, 4, 4, 3};
    add_norm(s, "layer", 4, D(2, 3, 8, 16), ps, pr, 2, 0, "gelu_tanh", 1);
  }
  {
    const int64_t *ps[4] = {D(999), D(999), D(3, 999), D(3, 1)};
    int pr[4] = {1, 1, 2, 2};
    add_norm(s, "layer", 2, D(3, 999), ps, pr, -1, 0, "silu", 0);
  }
  {
    const int64_t *ps[4] = {D(40000), NULL, NULL, NULL};
    int pr[4] = {1, 0, 0, 0};
    add_norm(s, "layer", 2, D(300, 40000), ps, pr, -1, 0, "none", 0);
  }
  {
    const int64_t *ps[4] = {D(64, 1, 1), D(64, 1, 1), NULL, NULL};
    int pr[4] = {3, 3, 0, 0};
    add_norm(s, "group", 4, D(2, 64, 9, 7), ps, pr, 0, 8, "silu", 0);
  }
  {
    const int64_t *ps[4] = {D(640, 1, 1), D(640, 1, 1), NULL, NULL};
    int pr[4] = {3, 3, 0, 0};
    add_norm(s, "group", 4, D(1, 640, 64, 64), ps, pr, 0, 32, "none", 0);
  }
  {
    const int64_t *ps[4] = {NULL, NULL, NULL, NULL};
    int pr[4] = {0, 0, 0, 0};
    add_norm(s, "rms", 2, D(2, 20000), ps, pr, -1, 0, "none", 0);
  }
  /* LayerNormalization with Mean / InvStdDev, RMSNormalization */
  tg_begin(&t);
  tg_in(&t, 3, D(4, 6, 10));
  tg_in(&t, 2, D(6, 10));
  tg_in(&t, 1, D(10));
  tg_node(&t, DRT_OP_LAYER_NORM, 17, 3);
  tg_int(&t, "axis", 1);
  tg_end(s, &t);
  tg_begin(&t);
  tg_in(&t, 3, D(2, 3, 4096));
  tg_in(&t, 1, D(4096));
  tg_node(&t, DRT_OP_RMS_NORM, 23, 1);
  tg_end(s, &t);
  /* GroupNormalization opset 18 (per-group parameters) and 21, InstanceNormalization */
  tg_begin(&t);
  tg_in(&t, 4, D(2, 12, 5, 5));
  tg_in(&t, 1, D(4));
  tg_in(&t, 1, D(4));
  tg_node(&t, DRT_OP_GROUP_NORM, 18, 1);
  tg_int(&t, "num_groups", 4);
  tg_end(s, &t);
  tg_begin(&t);
  tg_in(&t, 3, D(2, 12, 33));
  tg_in(&t, 1, D(12));
  tg_in(&t, 1, D(12));
  tg_node(&t, DRT_OP_GROUP_NORM, 21, 1);
  tg_int(&t, "num_groups", 3);
  tg_end(s, &t);
  tg_begin(&t);
  tg_in(&t, 4, D(2, 3, 6, 7));
  tg_in(&t, 1, D(3));
  tg_in(&t, 1, D(3));
  tg_node(&t, DRT_OP_INSTANCE_NORM, 6, 1);
  tg_end(s, &t);
  /* Softmax: rows (short, cached, streamed), strided axis, opset-11 flattening, LogSoftmax */
  const int64_t *sm_shapes[4] = {D(4, 77, 333), D(2, 5, 7), D(3, 4, 5), D(2, 50000)};
  const int sm_axis[4] = {-1, 1, 1, -1}, sm_opset[4] = {13, 13, 11, 13};
  for (int i = 0; i < 4; i++) {
    for (int lg = 0; lg < 2; lg++) {
      tg_begin(&t);
      tg_in(&t, i == 3 ? 2 : 3, sm_shapes[i]);
      tg_node(&t, lg ? DRT_OP_LOG_SOFTMAX : DRT_OP_SOFTMAX, sm_opset[i], 1);
      tg_int(&t, "axis", sm_axis[i]);
      tg_end(s, &t);
    }
  }
  /* Reductions: inner, outer, mixed and all axes; attribute and constant-input axes */
  const drt_op rops[10] = {DRT_OP_REDUCE_MEAN, DRT_OP_REDUCE_SUM, DRT_OP_REDUCE_MAX, DRT_OP_REDUCE_MIN,
                           DRT_OP_REDUCE_PROD, DRT_OP_REDUCE_L1, DRT_OP_REDUCE_L2, DRT_OP_REDUCE_SUM_SQUARE,
                           DRT_OP_REDUCE_LOG_SUM, DRT_OP_REDUCE_LOG_SUM_EXP};
  for (int i = 0; i < 10; i++) {
    tg_begin(&t);
    tg_in(&t, 4, D(2, 3, 4, 37));
    bool input_axes = i % 2 == 1;
    /* inner reduced, outer kept, outer reduced around a kept dim, inner + outer reduced */
    int64_t ax[4][2] = {{-1, 0}, {1, 0}, {0, 2}, {1, 3}};
    int64_t nax = i % 4 >= 2 ? 2 : 1;
    if (input_axes) tg_const_i64(&t, nax, ax[i % 4]);
    tg_node(&t, rops[i], input_axes ? 18 : 13, 1);
    if (!input_axes) tg_ints(&t, "axes", nax, ax[i % 4]);
    tg_int(&t, "keepdims", i % 4 != 0);
    tg_end(s, &t);
  }
  tg_begin(&t);
  tg_in(&t, 2, D(1000, 77));
  tg_node(&t, DRT_OP_REDUCE_SUM, 11, 1); /* everything (split over chunks) */
  tg_end(s, &t);
  /* split reductions: few long rows, few columns over many positions */
  tg_begin(&t);
  tg_in(&t, 2, D(2, 70000));
  tg_node(&t, DRT_OP_REDUCE_MAX, 13, 1);
  tg_ints(&t, "axes", 1, D(1));
  tg_end(s, &t);
  tg_begin(&t);
  tg_in(&t, 2, D(5000, 40));
  tg_node(&t, DRT_OP_REDUCE_MEAN, 13, 1);
  tg_ints(&t, "axes", 1, D(0));
  tg_end(s, &t);
  tg_begin(&t);
  tg_in(&t, 3, D(3, 9000, 7));
  tg_node(&t, DRT_OP_REDUCE_LOG_SUM_EXP, 13, 1);
  tg_ints(&t, "axes", 1, D(1));
  tg_int(&t, "keepdims", 0);
  tg_end(s, &t);
  tg_begin(&t);
  tg_in(&t, 3, D(2, 300, 288));
  tg_node(&t, DRT_OP_REDUCE_L2, 13, 1);
  tg_ints(&t, "axes", 2, D(1, 2));
  tg_end(s, &t);
  tg_begin(&t);
  tg_in(&t, 3, D(4, 5, 6));
  tg_node(&t, DRT_OP_REDUCE_SUM_SQUARE, 18, 1); /* no axes + noop_with_empty_axes: nothing reduced */
  tg_int(&t, "noop_with_empty_axes", 1);
  tg_end(s, &t);
  /* GlobalAveragePool / GlobalMaxPool, BatchNormalization */
  tg_begin(&t);
  tg_in(&t, 4, D(2, 6, 9, 9));
  tg_node(&t, DRT_OP_GLOBAL_AVERAGE_POOL, 1, 1);
  tg_end(s, &t);
  tg_begin(&t);
  tg_in(&t, 3, D(2, 6, 17));
  tg_node(&t, DRT_OP_GLOBAL_MAX_POOL, 1, 1);
  tg_end(s, &t);
  tg_begin(&t);
  tg_in(&t, 4, D(2, 6, 4, 8));
  for (int i = 0; i < 4; i++) tg_in(&t, 1, D(6));
  tg_node(&t, DRT_OP_BATCH_NORM, 15, 1);
  tg_end(s, &t);
  /* ArgMax / ArgMin */
  tg_begin(&t);
  tg_in(&t, 3, D(3, 9, 5));
  tg_node(&t, DRT_OP_ARGMAX, 13, 1);
  tg_int(&t, "axis", 1);
  tg_end(s, &t);
  tg_begin(&t);
  tg_in(&t, 2, D(3, 9));
  tg_node(&t, DRT_OP_ARGMIN, 13, 1);
  tg_int(&t, "axis", -1);
  tg_int(&t, "select_last_index", 1);
  tg_int(&t, "keepdims", 0);
  tg_end(s, &t);
  /* drt.CfgCombine, every mode */
  const char *modes[4] = {"standard", "rescale", "cfgpp", "apg"};
  for (int m = 0; m < 4; m++) {
    tg_begin(&t);
    tg_in(&t, 4, D(4, 4, 9, 8));
    tg_in(&t, 1, D(1));
    if (m == 3) tg_in(&t, 4, D(2, 4, 9, 8));
    tg_node(&t, DRT_OP_FUSED_CFG_COMBINE, 1, m >= 2 ? 2 : 1);
    tg_str(&t, "mode", modes[m]);
    if (m == 1) tg_float(&t, "phi", 0.7f);
    if (m == 3) {
      tg_float(&t, "eta", 0.5f);
      tg_float(&t, "norm_threshold", 2.0f);
      tg_float(&t, "momentum", -0.5f);
    }
    if (m == 2) tg_int(&t, "axis", 1);
    tg_end(s, &t);
  }
}

static void free_suite(suite *s) {
  for (int i = 0; i < s->n; i++) drt_graph_destroy(s->g[i]);
}

static void test_render_and_compile(void **state) {
  (void)state;
  suite s;
  build_suite(&s);
  bool nvrtc = false;
  int maj = 0, min = 0;
  drt_status vs = drt_nvrtc_version(&maj, &min);
  if (!vs) nvrtc = true;
  drt_status_free(vs);
  const drt_cuda_precision precs[3] = {DRT_CUDA_PRECISION_FP32, DRT_CUDA_PRECISION_FP16, DRT_CUDA_PRECISION_BF16};
  for (int p = 0; p < 3; p++) {
    drt_cuda_codegen_options o;
    drt_cuda_codegen_options_init(&o);
    o.precision = precs[p];
    o.allow_host_fallback = false;
    drt_cuda_program *prog = NULL;
    DRT_ASSERT_OK(drt_cuda_program_build((const drt_graph *const *)s.g, (size_t)s.n, &o, &prog));
    for (size_t gi = 0; gi < prog->num_graphs; gi++) {
      const drt_cuda_graph_code *gc = &prog->graphs[gi];
      assert_int_equal(gc->num_host_nodes, 0);
      assert_true(gc->num_launches >= 1);
      for (size_t l = 0; l < gc->num_launches; l++) assert_int_equal(gc->launches[l].kind, DRT_CUDA_LAUNCH_KERNEL);
    }
    /* the split group norm uses scratch for its partials */
    uint64_t scratch = 0;
    for (size_t gi = 0; gi < prog->num_graphs; gi++)
      if (prog->graphs[gi].scratch_bytes > scratch) scratch = prog->graphs[gi].scratch_bytes;
    assert_true(scratch > 0);
    if (nvrtc) {
      /* one arch per precision keeps the test short; all four are covered across precisions */
      const char *archs[3][1] = {{"sm_80"}, {"sm_90"}, {"sm_86"}};
      drt_nvrtc_image img[1];
      drt_nvrtc_compile_options co;
      drt_nvrtc_compile_options_init(&co);
      co.cache_dir = "off";
      DRT_ASSERT_OK(drt_nvrtc_compile(prog, archs[p], 1, &co, img));
      drt_nvrtc_image_free(&img[0]);
    }
    drt_cuda_program_destroy(prog);
  }
  free_suite(&s);
  if (!nvrtc) skip();
}


/* ---- emulator numerics -------------------------------------------------------------------------
 * The rendered program is compiled with g++ against tests/cuda_emu/emu.h (one fiber per CUDA
 * thread), every launch of a graph is run on host buffers in device storage, and the outputs are
 * compared with the CPU kernel run on the same (storage-rounded) inputs. */
static uint16_t f2h(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u, e = (x >> 23) & 0xffu, m = x & 0x7fffffu;
  if (e == 0xff) return (uint16_t)(sign | 0x7c00u | (m ? 0x200u : 0));
  int ee = (int)e - 127 + 15;
  if (ee >= 31) return (uint16_t)(sign | 0x7c00u);
  if (ee <= 0) {
    if (ee < -10) return (uint16_t)sign;
    m |= 0x800000u;
    int shift = 14 - ee;
    uint32_t hm = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (hm & 1))) hm++;
    return (uint16_t)(sign | hm);
  }
  uint32_t hm = m >> 13, rem = m & 0x1fffu;
  uint32_t h = sign | ((uint32_t)ee << 10) | hm;
  if (rem > 0x1000u || (rem == 0x1000u && (hm & 1))) h++;
  return (uint16_t)h;
}

static float h2f(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
  if (e == 0) {
    if (m == 0) {
      x = sign;
    } else {
      e = 127 - 15 + 1;
      while (!(m & 0x400u)) {
        m <<= 1;
        e--;
      }
      x = sign | (e << 23) | ((m & 0x3ffu) << 13);
    }
  } else if (e == 31) {
    x = sign | 0x7f800000u | (m << 13);
  } else {
    x = sign | ((e - 15 + 127) << 23) | (m << 13);
  }
  float f;
  memcpy(&f, &x, 4);
  return f;
}

static uint16_t f2b(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
  return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

static float b2f(uint16_t b) {
  uint32_t x = (uint32_t)b << 16;
  float f;
  memcpy(&f, &x, 4);
  return f;
}

/* float data -> storage bytes (and back, rounding `f` in place to what the device sees) */
static void *to_storage(drt_dtype st, float *f, size_t n) {
  size_t es = st == DRT_DTYPE_FLOAT32 ? 4 : 2;
  unsigned char *b = malloc(n * es + 16);
  assert_non_null(b);
  for (size_t i = 0; i < n; i++) {
    if (st == DRT_DTYPE_FLOAT32) {
      memcpy(b + 4 * i, &f[i], 4);
    } else {
      uint16_t h = st == DRT_DTYPE_FLOAT16 ? f2h(f[i]) : f2b(f[i]);
      f[i] = st == DRT_DTYPE_FLOAT16 ? h2f(h) : b2f(h);
      memcpy(b + 2 * i, &h, 2);
    }
  }
  return b;
}

static float from_storage(drt_dtype st, const void *b, size_t i) {
  uint16_t h;
  float f;
  if (st == DRT_DTYPE_FLOAT32) {
    memcpy(&f, (const char *)b + 4 * i, 4);
    return f;
  }
  memcpy(&h, (const char *)b + 2 * i, 2);
  return st == DRT_DTYPE_FLOAT16 ? h2f(h) : b2f(h);
}

typedef int (*emu_launch_fn)(const void *, const unsigned *, const unsigned *, size_t, const void *);
typedef const char *(*emu_error_fn)(void);

/* value -> device (host) buffer of one graph run */
typedef struct vbuf {
  const drt_value *v;
  void *dev;
  float *host; /* float data (inputs: storage-rounded; outputs: CPU reference) */
} vbuf;

static vbuf *vb_find(vbuf *vb, int n, const drt_value *v) {
  for (int i = 0; i < n; i++)
    if (vb[i].v == v) return &vb[i];
  return NULL;
}

static int g_failures;

static void run_graph_emu(void *so, const drt_cuda_program *prog, size_t gi, drt_test_rng *rng) {
  const drt_cuda_graph_code *gc = &prog->graphs[gi];
  const drt_graph *g = gc->graph;
  const drt_node *n = g->nodes[0];
  emu_launch_fn launch = (emu_launch_fn)dlsym(so, "drt_emu_launch");
  emu_error_fn err = (emu_error_fn)dlsym(so, "drt_emu_error");
  assert_non_null(launch);
  vbuf vb[16];
  int nv = 0;
  drt_tensor in[8], out[4];
  memset(in, 0, sizeof in);
  memset(out, 0, sizeof out);
  float lo = -2.0f, hi = 2.0f;
  if (n->op == DRT_OP_REDUCE_PROD) lo = 0.8f, hi = 1.2f;
  if (n->op == DRT_OP_REDUCE_LOG_SUM) lo = 0.1f, hi = 2.0f;
  for (int i = 0; i < n->num_inputs; i++) {
    const drt_value *v = n->inputs[i];
    if (!v) continue;
    in[i].dtype = v->dtype;
    in[i].shape = v->shape;
    if (v->kind == DRT_VALUE_CONST) {
      in[i].data = v->data;
      continue;
    }
    size_t cnt = (size_t)drt_shape_numel(&v->shape);
    float *h = malloc((cnt ? cnt : 1) * sizeof(float));
    assert_non_null(h);
    drt_test_fill(rng, h, cnt, lo, hi);
    if (n->op == DRT_OP_FUSED_CFG_COMBINE && i == 1) h[0] = 5.0f;
    if (n->op == DRT_OP_BATCH_NORM && i == 4)
      for (size_t e = 0; e < cnt; e++) h[e] = fabsf(h[e]) + 0.1f;
    vb[nv].v = v;
    vb[nv].dev = to_storage(drt_cuda_storage_dtype(prog->precision, v->dtype), h, cnt);
    vb[nv].host = h;
    in[i].data = h;
    nv++;
  }
  for (int i = 0; i < n->num_outputs; i++) {
    const drt_value *v = n->outputs[i];
    size_t cnt = (size_t)drt_shape_numel(&v->shape);
    drt_dtype st = drt_cuda_storage_dtype(prog->precision, v->dtype);
    out[i].dtype = v->dtype;
    out[i].shape = v->shape;
    out[i].data = malloc(drt_tensor_nbytes(&out[i]) + 8);
    vb[nv].v = v;
    vb[nv].dev = malloc(cnt * drt_dtype_size(st) + 16);
    memset(vb[nv].dev, 0xA5, cnt * drt_dtype_size(st) + 16); /* poison: every element must be written */
    vb[nv].host = out[i].data;
    nv++;
  }
  drt_cpu_ctx ctx = {NULL, 1};
  DRT_ASSERT_OK(drt_cpu_run_node(&ctx, n, in, out));
  void *scratch = malloc(gc->scratch_bytes + 16);
  for (size_t l = 0; l < gc->num_launches; l++) {
    const drt_cuda_launch *la = &gc->launches[l];
    assert_int_equal(la->kind, DRT_CUDA_LAUNCH_KERNEL);
    unsigned long long kargs[32];
    memset(kargs, 0, sizeof kargs);
    for (int a = 0; a < la->num_args; a++) {
      const drt_cuda_arg *ar = &la->args[a];
      if (ar->kind == DRT_CUDA_ARG_VALUE) {
        vbuf *b = vb_find(vb, nv, ar->value);
        assert_non_null(b);
        kargs[a] = (unsigned long long)(uintptr_t)((char *)b->dev + ar->offset);
      } else if (ar->kind == DRT_CUDA_ARG_SCRATCH) {
        kargs[a] = (unsigned long long)(uintptr_t)((char *)scratch + ar->offset);
      } else if (ar->kind == DRT_CUDA_ARG_IMM) {
        kargs[a] = ar->imm;
      }
    }
    const void *fn = dlsym(so, prog->kernels[la->kernel].name);
    assert_non_null(fn);
    unsigned grid[3] = {la->grid[0], la->grid[1], la->grid[2]}, block[3] = {la->block[0], la->block[1], la->block[2]};
    if (launch(fn, grid, block, la->smem, kargs) != 0) {
      print_error("launch failed: %s\n", err());
      fail();
    }
  }
  for (int i = 0; i < n->num_outputs; i++) {
    const drt_value *v = n->outputs[i];
    vbuf *b = vb_find(vb, nv, v);
    size_t cnt = (size_t)drt_shape_numel(&v->shape);
    drt_dtype st = drt_cuda_storage_dtype(prog->precision, v->dtype);
    char desc[96];
    drt_node_describe(n, desc, sizeof desc);
    if (v->dtype == DRT_DTYPE_INT64) {
      if (memcmp(b->dev, b->host, cnt * 8) != 0) {
        print_error("%s output %d (%s): indices differ\n", desc, i, drt_cuda_precision_name(prog->precision));
        g_failures++;
      }
      continue;
    }
    float *dv = malloc((cnt ? cnt : 1) * sizeof(float));
    for (size_t e = 0; e < cnt; e++) dv[e] = from_storage(st, b->dev, e);
    double rel = drt_test_rel_l2(dv, b->host, cnt);
    double tol = prog->precision == DRT_CUDA_PRECISION_FP32   ? 1e-4
                 : prog->precision == DRT_CUDA_PRECISION_FP16 ? 3e-3
                                                              : 2e-2;
    if (getenv("DRT_TEST_VERBOSE"))
      fprintf(stderr, "%-40s out %d %-5s rel L2 %.3g (%zu launches)\n", desc, i,
              drt_cuda_precision_name(prog->precision), rel, gc->num_launches);
    if (!(rel <= tol)) {
      size_t worst = 0;
      for (size_t e = 0; e < cnt; e++)
        if (!(fabsf(dv[e] - b->host[e]) <= fabsf(dv[worst] - b->host[worst]))) worst = e;
      print_error("%s output %d (%s): rel L2 %.3g > %.3g; element %zu: device %g, cpu %g\n", desc, i,
                  drt_cuda_precision_name(prog->precision), rel, tol, worst, (double)dv[worst], (double)b->host[worst]);
      g_failures++;
    }
    free(dv);
  }
  for (int i = 0; i < nv; i++) {
    free(vb[i].dev);
    free(vb[i].host);
  }
  free(scratch);
}

static void test_emulator_numerics(void **state) {
  (void)state;
  const char *src = getenv("DRT_SOURCE_DIR");
  char emu[1024];
  snprintf(emu, sizeof emu, "%s/tests/cuda_emu/emu.h", src ? src : ".");
  if (getenv("DRT_TEST_NO_EMU") || access(emu, R_OK) != 0 || system("g++ --version > /dev/null 2>&1") != 0) {
    skip();
    return;
  }
  suite s;
  build_suite(&s);
  g_failures = 0;
  const drt_cuda_precision precs[3] = {DRT_CUDA_PRECISION_FP32, DRT_CUDA_PRECISION_FP16, DRT_CUDA_PRECISION_BF16};
  for (int p = 0; p < 3; p++) {
    drt_cuda_codegen_options o;
    drt_cuda_codegen_options_init(&o);
    o.precision = precs[p];
    o.allow_host_fallback = false;
    drt_cuda_program *prog = NULL;
    DRT_ASSERT_OK(drt_cuda_program_build((const drt_graph *const *)s.g, (size_t)s.n, &o, &prog));
    char dir[] = "/tmp/drt_norm_emu_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cu[1100], so_path[1100], cmd[4096];
    snprintf(cu, sizeof cu, "%s/program.cu", dir);
    snprintf(so_path, sizeof so_path, "%s/kernels.so", dir);
    const char *dump = getenv("DRT_TEST_DUMP"); /* keep the fp16 program for reading */
    if (dump && precs[p] == DRT_CUDA_PRECISION_FP16) {
      FILE *df = fopen(dump, "wb");
      if (df) {
        fwrite(prog->source, 1, prog->source_len, df);
        fclose(df);
      }
    }
    FILE *f = fopen(cu, "wb");
    assert_non_null(f);
    fwrite(prog->source, 1, prog->source_len, f);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "g++ -std=c++17 -O1 -fPIC -shared -fvisibility=hidden -fno-strict-aliasing -fcf-protection=none "
             "-I %s/tests/cuda_emu/include -include %s -x c++ %s -o %s",
             src ? src : ".", emu, cu, so_path);
    if (system(cmd) != 0) {
      print_error("emulator build failed: %s\n", cmd);
      fail();
    }
    void *so = dlopen(so_path, RTLD_NOW | RTLD_LOCAL);
    if (!so) print_error("dlopen: %s\n", dlerror());
    assert_non_null(so);
    drt_test_rng rng = {1234u + (uint64_t)p};
    for (size_t gi = 0; gi < prog->num_graphs; gi++) run_graph_emu(so, prog, gi, &rng);
    /* the emulated kernels .so stays loaded: its per-thread block state would be reported by
         LeakSanitizer once the module is gone */
    (void)so;
    unlink(cu);
    unlink(so_path);
    rmdir(dir);
    drt_cuda_program_destroy(prog);
  }
  free_suite(&s);
  assert_int_equal(g_failures, 0);
}

/* unsupported forms fall back with a reason (and fail without fallback) */
static void test_unsupported(void **state) {
  (void)state;
  tg t;
  tg_begin(&t);
  tg_in(&t, 2, D(3, 4));
  drt_shape s = drt_test_shape(1, D(1));
  drt_value *axes = drt_graph_add_value(t.g, "axes", DRT_DTYPE_INT64, &s);
  DRT_ASSERT_OK(drt_graph_add_input(t.g, axes));
  t.in[t.nin++] = axes;
  tg_node(&t, DRT_OP_REDUCE_MAX, 18, 1);
  drt_value *out = t.n->outputs[0];
  out->dtype = DRT_DTYPE_FLOAT32;
  out->has_shape = true;
  out->shape = drt_test_shape(2, D(3, 1));
  DRT_ASSERT_OK(drt_graph_add_output(t.g, out));
  drt_cuda_codegen_options o;
  drt_cuda_codegen_options_init(&o);
  o.allow_host_fallback = false;
  drt_cuda_program *prog = NULL;
  const drt_graph *gs[1] = {t.g};
  DRT_ASSERT_ERROR(drt_cuda_program_build(gs, 1, &o, &prog), DRT_STATUS_UNSUPPORTED, "compile-time constant");
  o.allow_host_fallback = true;
  DRT_ASSERT_OK(drt_cuda_program_build(gs, 1, &o, &prog));
  assert_int_equal(prog->graphs[0].num_host_nodes, 1);
  assert_int_equal(prog->graphs[0].launches[0].kind, DRT_CUDA_LAUNCH_HOST);
  assert_non_null(strstr(prog->graphs[0].launches[0].reason, "compile-time constant"));
  drt_cuda_program_destroy(prog);
  drt_graph_destroy(t.g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_render_and_compile),
      cmocka_unit_test(test_unsupported),
      cmocka_unit_test(test_emulator_numerics),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
