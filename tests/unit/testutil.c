#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer.h"

uint64_t drt_test_next(drt_test_rng *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

float drt_test_uniform(drt_test_rng *r, float lo, float hi) {
  return lo + (hi - lo) * (float)((drt_test_next(r) >> 40) / 16777216.0);
}

void drt_test_fill(drt_test_rng *r, float *x, size_t n, float lo, float hi) {
  for (size_t i = 0; i < n; i++) x[i] = drt_test_uniform(r, lo, hi);
}

double drt_test_rel_l2(const float *a, const float *b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - (double)b[i];
    num += d * d;
    den += (double)b[i] * (double)b[i];
  }
  if (den < 1e-30) den = 1e-30;
  return sqrt(num / den);
}

drt_shape drt_test_shape(int rank, const int64_t *dims) {
  drt_shape s;
  memset(&s, 0, sizeof s);
  s.rank = rank;
  for (int i = 0; i < rank; i++) s.dims[i] = dims[i];
  return s;
}

drt_status drt_test_run_node(drt_graph *g, drt_node *n, const drt_tensor *ins, drt_tensor *outs) {
  (void)ins;
  DRT_RETURN_IF_ERROR(drt_infer_node(g, n));
  drt_tensor in[64];
  for (int i = 0; i < n->num_inputs; i++) {
    drt_value *v = n->inputs[i];
    if (!v) {
      memset(&in[i], 0, sizeof in[i]);
      continue;
    }
    in[i].dtype = v->dtype;
    in[i].shape = v->shape;
    in[i].data = v->kind == DRT_VALUE_CONST ? v->data : ins[i].data;
  }
  for (int i = 0; i < n->num_outputs; i++) {
    outs[i].dtype = n->outputs[i]->dtype;
    outs[i].shape = n->outputs[i]->shape;
    size_t nb = drt_tensor_nbytes(&outs[i]);
    outs[i].data = calloc(nb ? nb : 1, 1);
    if (!outs[i].data) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "test output");
  }
  drt_cpu_ctx ctx = {NULL, 1};
  return drt_cpu_run_node(&ctx, n, in, outs);
}

void drt_test_attr_ints(drt_graph *g, drt_node *n, const char *name, int64_t count, const int64_t *v) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_INTS;
  a.count = count;
  a.ints = (int64_t *)v; /* copied by drt_node_add_attr */
  DRT_ASSERT_OK(drt_node_add_attr(g, n, &a));
}
