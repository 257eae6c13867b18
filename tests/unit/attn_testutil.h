/* Shared by the drt.Attention codegen tests (test_codegen_attention.c, test_codegen_attention_unfused.c):
 * graph builders for single attention nodes, program building, and kernel-text helpers. */
#ifndef DRT_TEST_ATTN_TESTUTIL_H
#define DRT_TEST_ATTN_TESTUTIL_H


#include <dlfcn.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cg.h"
#include "codegen/nvrtc.h"
#include "ir/infer.h"

/* ---- graph building ------------------------------------------------------------------------ */
typedef struct attn_spec {
  int64_t q[5], k[5], v[5], m[5]; /* rank then dims; m rank 0: no mask (-1: scalar mask) */
  const char *ql, *kl, *vl, *ol;
  int64_t heads, kv_heads;
  int mask_mode, causal;
  drt_dtype dt, mask_dt;
  float scale; /* NAN: default */
  int has_fill;
  float fill;
} attn_spec;

static inline void attr_i(drt_graph *g, drt_node *n, const char *name, int64_t x) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_INT;
  a.i = x;
  DRT_ASSERT_OK(drt_node_add_attr(g, n, &a));
}

static inline void attr_s(drt_graph *g, drt_node *n, const char *name, const char *s) {
  if (!s) return;
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_STRING;
  a.s = s;
  a.s_len = strlen(s);
  DRT_ASSERT_OK(drt_node_add_attr(g, n, &a));
}

static inline drt_value *input(drt_graph *g, const char *name, drt_dtype dt, const int64_t *rd) {
  drt_shape s = drt_test_shape((int)rd[0], rd + 1);
  drt_value *v = drt_graph_add_value(g, name, dt, &s);
  assert_non_null(v);
  DRT_ASSERT_OK(drt_graph_add_input(g, v));
  return v;
}

/* Appends one drt.Attention node (inferred output) to g. */
static inline drt_node *add_attention(drt_graph *g, const attn_spec *s) {
  char nm[4][32];
  size_t id = g->num_nodes;
  snprintf(nm[0], sizeof nm[0], "q%zu", id);
  snprintf(nm[1], sizeof nm[1], "k%zu", id);
  snprintf(nm[2], sizeof nm[2], "v%zu", id);
  snprintf(nm[3], sizeof nm[3], "m%zu", id);
  drt_value *ins[4] = {input(g, nm[0], s->dt, s->q), input(g, nm[1], s->dt, s->k), input(g, nm[2], s->dt, s->v), NULL};
  int nin = 3;
  if (s->m[0] != 0) {
    int64_t scalar[1] = {0};
    ins[3] = input(g, nm[3], s->mask_dt, s->m[0] < 0 ? scalar : s->m);
    nin = 4;
  }
  drt_value *out = drt_graph_add_value(g, NULL, DRT_DTYPE_UNDEFINED, NULL);
  assert_non_null(out);
  drt_node *n;
  DRT_ASSERT_OK(drt_graph_add_node(g, DRT_OP_FUSED_ATTENTION, NULL, ins, nin, &out, 1, &n));
  attr_i(g, n, "num_heads", s->heads);
  if (s->kv_heads) attr_i(g, n, "kv_num_heads", s->kv_heads);
  attr_s(g, n, "q_layout", s->ql);
  attr_s(g, n, "k_layout", s->kl);
  attr_s(g, n, "v_layout", s->vl);
  attr_s(g, n, "out_layout", s->ol);
  if (nin == 4) attr_i(g, n, "mask_mode", s->mask_mode);
  if (s->causal) attr_i(g, n, "causal", 1);
  if (s->has_fill) {
    drt_attr a;
    memset(&a, 0, sizeof a);
    a.name = "mask_fill";
    a.type = DRT_ATTR_FLOAT;
    a.f = s->fill;
    DRT_ASSERT_OK(drt_node_add_attr(g, n, &a));
  }
  if (!isnan(s->scale)) {
    drt_attr a;
    memset(&a, 0, sizeof a);
    a.name = "scale";
    a.type = DRT_ATTR_FLOAT;
    a.f = s->scale;
    DRT_ASSERT_OK(drt_node_add_attr(g, n, &a));
  }
  DRT_ASSERT_OK(drt_infer_node(g, n));
  DRT_ASSERT_OK(drt_graph_add_output(g, out));
  return n;
}

static inline drt_graph *new_graph(void) {
  drt_graph *g;
  DRT_ASSERT_OK(drt_graph_create(&g));
  g->opset = 17;
  return g;
}

static inline drt_cuda_program *build(const drt_graph *g, drt_cuda_precision p, bool fallback) {
  drt_cuda_codegen_options o;
  drt_cuda_codegen_options_init(&o);
  o.precision = p;
  o.allow_host_fallback = fallback;
  drt_cuda_program *prog = NULL;
  DRT_ASSERT_OK(drt_cuda_program_build(&g, 1, &o, &prog));
  assert_non_null(prog);
  return prog;
}

/* The wrapper text of a kernel launch. */
static inline char *kernel_text(const drt_cuda_program *p, const drt_cuda_launch *l) {
  assert_int_equal(l->kind, DRT_CUDA_LAUNCH_KERNEL);
  const drt_cuda_kernel *k = &p->kernels[l->kernel];
  size_t n = k->src_end - k->src_begin;
  char *t = malloc(n + 1);
  assert_non_null(t);
  memcpy(t, p->source + k->src_begin, n);
  t[n] = 0;
  return t;
}

static inline void assert_has(const char *text, const char *needle) {
  if (!strstr(text, needle)) print_error("'%s' not found in:\n%s\n", needle, text);
  assert_non_null(strstr(text, needle));
}

#define DIMS3(a, b, c) {3, a, b, c}
#define DIMS4(a, b, c, d) {4, a, b, c, d}


/* ---- numerics through the CPU emulator (tests/cuda_emu) --------------------------------------- */
typedef int (*emu_launch_fn)(const void *, const unsigned[3], const unsigned[3], size_t, const void *);
typedef const char *(*emu_error_fn)(void);

/* One value's data: fp32 (what the CPU kernel reads) and the device storage bytes. */
typedef struct emu_buf {
  const drt_value *v;
  float *f;  /* float32 values (bool masks: 0/1) */
  void *dev; /* storage dtype */
  drt_dtype st;
  size_t n;
} emu_buf;

static inline emu_buf *find_buf(emu_buf *b, size_t n, const drt_value *v) {
  for (size_t i = 0; i < n; i++)
    if (b[i].v == v) return &b[i];
  return NULL;
}

/* Buffers for value v in the storage type of prec, appended to bufs (zeroed). */
static inline emu_buf *emu_buf_add(emu_buf *bufs, int *nb, const drt_value *v, drt_cuda_precision prec) {
  emu_buf *b = &bufs[(*nb)++];
  b->v = v;
  b->n = (size_t)drt_shape_numel(&v->shape);
  b->st = drt_cuda_storage_dtype(prec, v->dtype);
  b->f = calloc(b->n + 1, sizeof(float));
  b->dev = calloc(b->n + 1, drt_dtype_size(b->st));
  assert_non_null(b->f);
  assert_non_null(b->dev);
  return b;
}

/* After the caller filled b->f: the device bytes (bools 0/1, floats rounded to storage), and b->f
 * set back to what the device holds, so the CPU reference sees the same values. */
static inline void emu_buf_upload(emu_buf *b) {
  if (b->v->dtype == DRT_DTYPE_BOOL) {
    for (size_t e = 0; e < b->n; e++) ((uint8_t *)b->dev)[e] = b->f[e] != 0.0f;
  } else {
    drt_convert(b->st, b->dev, DRT_DTYPE_FLOAT32, b->f, b->n);
    drt_convert(DRT_DTYPE_FLOAT32, b->f, b->st, b->dev, b->n);
  }
}

/* The CPU kernel of node n on the buffers' values (bool masks as bytes). */
static inline void emu_reference(drt_graph *g, drt_node *n, emu_buf *bufs, int nb, drt_tensor *ref) {
  drt_tensor ins[8];
  memset(ins, 0, sizeof ins);
  assert_true(n->num_inputs <= 8);
  for (int i = 0; i < n->num_inputs; i++) {
    emu_buf *b = find_buf(bufs, (size_t)nb, n->inputs[i]);
    if (b) ins[i].data = n->inputs[i]->dtype == DRT_DTYPE_BOOL ? b->dev : (void *)b->f;
  }
  DRT_ASSERT_OK(drt_test_run_node(g, n, ins, ref));
}

/* Output 0 of node ni (device storage) against the CPU reference: every value finite, rel L2 <=
 * tol. Frees the reference and the buffers. */
static inline void emu_check_output(emu_buf *bufs, int nb, const drt_node *n, size_t ni, drt_tensor *ref, double tol,
                                    drt_cuda_precision prec) {
  emu_buf *ob = find_buf(bufs, (size_t)nb, n->outputs[0]);
  assert_non_null(ob);
  drt_convert(DRT_DTYPE_FLOAT32, ob->f, ob->st, ob->dev, ob->n);
  for (size_t e = 0; e < ob->n; e++) assert_true(isfinite(ob->f[e]));
  double err = drt_test_rel_l2(ob->f, ref->data, ob->n);
  if (!(err <= tol)) print_error("%s node %zu: rel L2 %.3g > %.g\n", drt_cuda_precision_name(prec), ni, err, tol);
  assert_true(err <= tol);
  free(ref->data);
  for (int i = 0; i < nb; i++) {
    free(bufs[i].f);
    free(bufs[i].dev);
  }
}

/* Compiles p->source with tests/cuda_emu/build_kernels.sh into dir/<tag>.so and opens it; NULL
 * (test skipped) when no compiler is available. flags: extra g++ flags ("" for none), e.g.
 * "-D__CUDA_ARCH_FEAT_SM90_ALL" to take the sm_90a code paths (warpgroup MMAs). */
static inline void *build_emu_flags(const drt_cuda_program *p, const char *dir, const char *tag, const char *flags) {
  char src[512], so[512], cmd[1600];
  snprintf(src, sizeof src, "%s/%s.cu", dir, tag);
  snprintf(so, sizeof so, "%s/%s.so", dir, tag);
  FILE *f = fopen(src, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(p->source, 1, p->source_len, f), p->source_len);
  fclose(f);
  const char *root = getenv("DRT_SOURCE_DIR");
  snprintf(cmd, sizeof cmd, "%s/tests/cuda_emu/build_kernels.sh '%s' '%s' %s", root ? root : ".", src, so, flags);
  int rc = system(cmd);
  if (rc != 0) {
    print_error("emulator build failed (%d): %s\n", rc, cmd);
    return NULL;
  }
  void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
  if (!h) print_error("dlopen %s: %s\n", so, dlerror());
  assert_non_null(h);
  return h;
}
static inline void *build_emu(const drt_cuda_program *p, const char *dir, const char *tag) {
  return build_emu_flags(p, dir, tag, "");
}


/* An opened emulated kernels .so and its entry points. */
typedef struct emu_module {
  void *h;
  emu_launch_fn launch;
  emu_error_fn error;
} emu_module;

/* Builds and opens the program's kernels for the emulator; false (test to be skipped) when no
 * compiler is available. The .so stays loaded: its per-thread block state would be reported by
 * LeakSanitizer once the module is gone. */
static inline bool emu_open_flags(const drt_cuda_program *p, const char *dir, const char *tag, const char *flags,
                                  emu_module *m) {
  m->h = build_emu_flags(p, dir, tag, flags);
  if (!m->h) return false;
  m->launch = (emu_launch_fn)dlsym(m->h, "drt_emu_launch");
  m->error = (emu_error_fn)dlsym(m->h, "drt_emu_error");
  assert_non_null(m->launch);
  assert_non_null(m->error);
  return true;
}
static inline bool emu_open(const drt_cuda_program *p, const char *dir, const char *tag, emu_module *m) {
  return emu_open_flags(p, dir, tag, "", m);
}

/* Runs KERNEL launch l of node ni with the given argument slots; fails the test on an emulator error. */
static inline void emu_run_kernel(const emu_module *m, const drt_cuda_program *p, const drt_cuda_launch *l,
                                  const unsigned long long *kargs, size_t ni) {
  void *fn = dlsym(m->h, p->kernels[l->kernel].name);
  assert_non_null(fn);
  unsigned grid[3] = {l->grid[0], l->grid[1], l->grid[2]}, block[3] = {l->block[0], l->block[1], l->block[2]};
  if (m->launch(fn, grid, block, l->smem, kargs) != 0) {
    print_error("node %zu: launch failed: %s\n", ni, m->error());
    fail();
  }
}

#endif
