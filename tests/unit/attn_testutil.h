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

#endif
