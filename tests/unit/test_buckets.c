/* Shape buckets: a two-bucket plan of the DiT fixture (batch 1 and 2) serves both shapes with
 * the outputs of single-shape plans, stores its weights once (plan size = one bucket's plan +
 * a small graph overhead), refuses a shape outside every bucket with the list of buckets, and
 * refits both buckets at once. With DRT_BIN set, `drt compile --shapes` and `--add-bucket`
 * are checked end to end. */
#include "testutil.h"

#include <inttypes.h>
#include <unistd.h>

#include "adapt_util.h"
#include "runtime/bytes.h"
#include "runtime/refit.h"

#define DIT "tests/models/fixtures/dit_student_op17/model.onnx"
#define DIT_B "tests/models/adapt/dit_b_op17.onnx"
#define CKPT_B "tests/models/adapt/dit_b.safetensors"

/* One graph of the DiT at batch `batch`, hoisting off (as with buckets), with its provenance. */
static drt_graph *compile_graph(const char *model, int64_t batch, uint32_t bucket, drt_plan_provenance **prov) {
  char p[1024];
  drt_graph *g;
  drt_weight_trace *tr;
  DRT_ASSERT_OK(drt_onnx_load_file(adapt_path(model, p, sizeof p), NULL, &g));
  DRT_ASSERT_OK(drt_weight_trace_begin(g, &tr));
  drt_shape s = drt_test_shape(4, (int64_t[]){batch, 4, 16, 16});
  DRT_ASSERT_OK(drt_graph_bind_input(g, "sample", &s));
  drt_pass_ctx pc;
  memset(&pc, 0, sizeof pc);
  drt_pipeline_options po;
  memset(&po, 0, sizeof po);
  po.disabled[po.num_disabled++] = "hoist";
  DRT_ASSERT_OK(drt_pipeline_run(g, &pc, &po));
  DRT_ASSERT_OK(drt_weight_trace_finish(tr, g, NULL, 0, bucket, prov));
  drt_weight_trace_destroy(tr);
  return g;
}

/* Plan bytes with one graph per batch size in `batches` (n of them). */
static void *compile_buckets(const char *model, const int64_t *batches, int n, size_t *size) {
  drt_graph *g[4];
  drt_plan_provenance *pv[4];
  for (int b = 0; b < n; b++) g[b] = compile_graph(model, batches[b], (uint32_t)b, &pv[b]);
  uint8_t in_roles[3] = {DRT_PLAN_ROLE_LATENT, DRT_PLAN_ROLE_TIMESTEP, 0}, out_roles[1] = {DRT_PLAN_ROLE_PREDICTION};
  drt_plan_contents c;
  memset(&c, 0, sizeof c);
  c.graph = g[0];
  c.targets = DRT_PLAN_TARGET_CPU;
  c.input_roles = in_roles;
  c.output_roles = out_roles;
  c.buckets = g;
  c.num_buckets = (uint32_t)n;
  c.provenance = pv;
  c.num_provenance = (uint32_t)n;
  void *bytes = NULL;
  DRT_ASSERT_OK(drt_plan_serialize(&c, &bytes, size));
  for (int b = 0; b < n; b++) {
    drt_provenance_destroy(pv[b]);
    drt_graph_destroy(g[b]);
  }
  return bytes;
}

static uint64_t weights_section(const void *bytes, size_t size) {
  drt_plan_view v;
  DRT_ASSERT_OK(drt_plan_view_open(bytes, size, "plan", &v));
  uint64_t w = v.weights_size;
  drt_plan_view_close(&v);
  return w;
}

/* Output 0 for the fixture's batch-1 ("inputs") or batch-2 ("inputs_b2") data through session s. */
static float *run_set(drt_session *s, const drt_plan *p, const char *set, size_t *n) {
  static const char *names[3] = {"sample", "timestep", "encoder_hidden_states"};
  drt_tensor held[3];
  for (int i = 0; i < 3; i++) {
    char rel[512], path[1024];
    snprintf(rel, sizeof rel, "tests/models/fixtures/dit_student_op17/%s/%s.npy", set, names[i]);
    DRT_ASSERT_OK(drt_npy_read_file(adapt_path(rel, path, sizeof path), &held[i]));
    assert_int_equal(drt_session_set_input(s, names[i], held[i].dtype, held[i].shape.rank, held[i].shape.dims,
                                           held[i].data, drt_tensor_nbytes(&held[i])),
                     DRT_STATUS_OK);
  }
  float *out = adapt_run_output(s, p, n);
  for (int i = 0; i < 3; i++) free(held[i].data);
  return out;
}

static float *single_output(const char *model, int64_t batch, const char *set, size_t *n, size_t *plan_size,
                            uint64_t *wsize) {
  size_t size;
  void *bytes = compile_buckets(model, &batch, 1, &size);
  if (plan_size) *plan_size = size;
  if (wsize) *wsize = weights_section(bytes, size);
  drt_plan *p;
  assert_int_equal(drt_plan_load_memory(bytes, size, &p), DRT_STATUS_OK);
  drt_session *s;
  assert_int_equal(drt_session_create(p, NULL, &s), DRT_STATUS_OK);
  float *o = run_set(s, p, set, n);
  drt_session_destroy(s);
  drt_plan_destroy(p);
  free(bytes);
  return o;
}

static void test_two_buckets_serve_both_shapes(void **state) {
  (void)state;
  size_t n1, n2, size, size1;
  uint64_t w1;
  float *want1 = single_output(DIT, 1, "inputs", &n1, &size1, &w1);
  float *want2 = single_output(DIT, 2, "inputs_b2", &n2, NULL, NULL);
  assert_int_equal(n2, 2 * n1);
  const int64_t batches[2] = {1, 2};
  void *bytes = compile_buckets(DIT, batches, 2, &size);
  /* weights stored once: the same WEIGHTS section as one bucket's plan (up to a few shape
     constants), and the second bucket costs a graph, not a copy of the weights */
  uint64_t w = weights_section(bytes, size);
  print_message("one bucket: plan %zu B (weights %" PRIu64 " B); two buckets: plan %zu B (weights %" PRIu64 " B)\n",
                size1, w1, size, w);
  assert_true(w <= w1 + 4096);
  assert_true(size < size1 + size1 / 10);
  drt_plan *p;
  assert_int_equal(drt_plan_load_memory(bytes, size, &p), DRT_STATUS_OK);
  assert_int_equal(drt_plan_num_buckets(p), 2);
  drt_tensor_desc d;
  assert_int_equal(drt_plan_bucket_input(p, 1, 0, &d), DRT_STATUS_OK);
  assert_string_equal(d.name, "sample");
  assert_int_equal(d.dims[0], 2);
  drt_memory_info m0, m1;
  assert_int_equal(drt_plan_bucket_memory(p, 0, &m0), DRT_STATUS_OK);
  assert_int_equal(drt_plan_bucket_memory(p, 1, &m1), DRT_STATUS_OK);
  assert_true(m1.activations > m0.activations);
  assert_int_equal(m1.weights, m0.weights);
  drt_session *s;
  assert_int_equal(drt_session_create(p, NULL, &s), DRT_STATUS_OK);
  size_t k;
  float *o1 = run_set(s, p, "inputs", &k);
  assert_int_equal(drt_session_bucket(s), 0);
  assert_true(adapt_bits_equal(o1, want1, n1));
  float *o2 = run_set(s, p, "inputs_b2", &k);
  assert_int_equal(k, n2);
  assert_int_equal(drt_session_bucket(s), 1);
  assert_true(adapt_bits_equal(o2, want2, n2));
  free(o1);
  o1 = run_set(s, p, "inputs", &k); /* and back */
  assert_true(adapt_bits_equal(o1, want1, n1));
  /* a shape outside every bucket: a clear error listing the buckets */
  float x[3 * 4 * 16 * 16] = {0};
  int64_t dims[4] = {3, 4, 16, 16};
  assert_int_equal(drt_session_set_input(s, "sample", DRT_DTYPE_FLOAT32, 4, dims, x, sizeof x),
                   DRT_STATUS_INVALID_ARGUMENT);
  assert_non_null(strstr(drt_last_error(), "fits no shape bucket"));
  assert_non_null(strstr(drt_last_error(), "bucket 0: 1x4x16x16, bucket 1: 2x4x16x16"));
  /* inputs of two different buckets at once */
  int64_t d2[4] = {2, 4, 16, 16};
  assert_int_equal(drt_session_set_input(s, "sample", DRT_DTYPE_FLOAT32, 4, d2, x, 2 * 4 * 16 * 16 * sizeof(float)),
                   DRT_STATUS_OK);
  float t1 = 500;
  int64_t td[1] = {1};
  assert_int_equal(drt_session_set_input(s, "timestep", DRT_DTYPE_FLOAT32, 1, td, &t1, sizeof t1), DRT_STATUS_OK);
  assert_int_equal(drt_session_run(s), DRT_STATUS_INVALID_ARGUMENT);
  assert_non_null(strstr(drt_last_error(), "fit no single shape bucket"));
  assert_int_equal(drt_session_select_bucket(s, 2), DRT_STATUS_INVALID_ARGUMENT);
  assert_int_equal(drt_session_select_bucket(s, 1), DRT_STATUS_OK);
  drt_session_destroy(s);
  drt_plan_destroy(p);
  free(o1);
  free(o2);
  free(want1);
  free(want2);
  free(bytes);
}

/* A refit updates the weights every bucket reads: both match the new checkpoint's plans. */
static void test_refit_two_buckets(void **state) {
  (void)state;
  size_t n1, n2, size;
  float *want1 = single_output(DIT_B, 1, "inputs", &n1, NULL, NULL);
  float *want2 = single_output(DIT_B, 2, "inputs_b2", &n2, NULL, NULL);
  const int64_t batches[2] = {1, 2};
  void *bytes = compile_buckets(DIT, batches, 2, &size);
  drt_plan *p;
  assert_int_equal(drt_plan_load_memory(bytes, size, &p), DRT_STATUS_OK);
  char path[1024];
  /* compiled without a weight map: the ONNX names are not the checkpoint's */
  assert_int_equal(drt_plan_swap_weights(p, adapt_path(CKPT_B, path, sizeof path)), DRT_STATUS_INVALID_ARGUMENT);
  drt_plan_destroy(p);
  /* from the ONNX export of the second checkpoint */
  drt_plan_view v;
  DRT_ASSERT_OK(drt_plan_view_open(bytes, size, "plan", &v));
  assert_int_equal(v.num_provenance, 2);
  drt_graph *g;
  DRT_ASSERT_OK(drt_onnx_load_file(adapt_path(DIT_B, path, sizeof path), NULL, &g));
  drt_source_table t;
  memset(&t, 0, sizeof t);
  DRT_ASSERT_OK(drt_source_table_from_graph(&t, g));
  drt_refit_report rep;
  memset(&rep, 0, sizeof rep);
  void *out;
  size_t os;
  DRT_ASSERT_OK(drt_plan_refit(&v, &t, drt_graph_fingerprint(g), &out, &os, &rep));
  assert_int_equal(drt_plan_load_memory(out, os, &p), DRT_STATUS_OK);
  drt_session *s;
  assert_int_equal(drt_session_create(p, NULL, &s), DRT_STATUS_OK);
  size_t k;
  float *o1 = run_set(s, p, "inputs", &k), *o2 = run_set(s, p, "inputs_b2", &k);
  assert_true(adapt_bits_equal(o1, want1, n1));
  assert_true(adapt_bits_equal(o2, want2, n2));
  drt_session_destroy(s);
  drt_plan_destroy(p);
  drt_refit_report_free(&rep);
  drt_source_table_free(&t);
  drt_graph_destroy(g);
  drt_plan_view_close(&v);
  free(out);
  free(o1);
  free(o2);
  free(want1);
  free(want2);
  free(bytes);
}

/* The CLI: drt compile --shapes, drt compile --add-bucket, drt inspect (needs DRT_BIN). */
static void test_cli_shapes_and_add_bucket(void **state) {
  (void)state;
  const char *bin = getenv("DRT_BIN");
  if (!bin) {
    print_message("DRT_BIN not set: skipping the CLI checks\n");
    skip();
  }
  char model[1024], cmd[4096];
  adapt_path(DIT, model, sizeof model);
  snprintf(cmd, sizeof cmd, "%s compile %s --shapes 'sample=1..2x4x16x16' -o /tmp/drt_test_b12.plan > /dev/null", bin,
           model);
  assert_int_equal(system(cmd), 0);
  snprintf(cmd, sizeof cmd, "%s compile %s --shape sample=1x4x16x16 --disable-pass hoist -o /tmp/drt_test_b1.plan "
           "> /dev/null && %s compile %s --add-bucket /tmp/drt_test_b1.plan --shape sample=2x4x16x16 "
           "-o /tmp/drt_test_b1p2.plan > /dev/null", bin, model, bin, model);
  assert_int_equal(system(cmd), 0);
  void *a, *b;
  size_t sa, sb;
  DRT_ASSERT_OK(drt_read_file("/tmp/drt_test_b12.plan", 0, &a, &sa));
  DRT_ASSERT_OK(drt_read_file("/tmp/drt_test_b1p2.plan", 0, &b, &sb));
  drt_plan *pa, *pb;
  assert_int_equal(drt_plan_load_memory(a, sa, &pa), DRT_STATUS_OK);
  assert_int_equal(drt_plan_load_memory(b, sb, &pb), DRT_STATUS_OK);
  assert_int_equal(drt_plan_num_buckets(pa), 2);
  assert_int_equal(drt_plan_num_buckets(pb), 2);
  assert_int_equal(weights_section(a, sa), weights_section(b, sb));
  drt_session *s1, *s2;
  assert_int_equal(drt_session_create(pa, NULL, &s1), DRT_STATUS_OK);
  assert_int_equal(drt_session_create(pb, NULL, &s2), DRT_STATUS_OK);
  size_t n;
  float *o1 = run_set(s1, pa, "inputs_b2", &n), *o2 = run_set(s2, pb, "inputs_b2", &n);
  assert_true(adapt_bits_equal(o1, o2, n));
  /* the same bucket twice is refused */
  snprintf(cmd, sizeof cmd, "%s compile %s --add-bucket /tmp/drt_test_b1p2.plan --shape sample=2x4x16x16 "
           "-o /tmp/drt_test_x.plan 2> /tmp/drt_test_err.txt", bin, model);
  assert_int_not_equal(system(cmd), 0);
  snprintf(cmd, sizeof cmd, "%s inspect /tmp/drt_test_b1p2.plan | grep -q 'buckets:  2'", bin);
  assert_int_equal(system(cmd), 0);
  drt_session_destroy(s1);
  drt_session_destroy(s2);
  drt_plan_destroy(pa);
  drt_plan_destroy(pb);
  free(o1);
  free(o2);
  free(a);
  free(b);
  unlink("/tmp/drt_test_b12.plan");
  unlink("/tmp/drt_test_b1.plan");
  unlink("/tmp/drt_test_b1p2.plan");
  unlink("/tmp/drt_test_err.txt");
}

/* Corrupted bucket / provenance / weight-map sections (checksums fixed up so the parsers see
 * them): every single-byte change is refused or parsed into a consistent plan, never a crash. */
static void test_adapt_sections_mutations(void **state) {
  (void)state;
  size_t size;
  const int64_t batches[2] = {1, 2};
  uint8_t *bytes = compile_buckets(DIT, batches, 2, &size);
  uint32_t nsec = (uint32_t)bytes[24] | (uint32_t)bytes[25] << 8;
  uint64_t table = 0;
  for (int k = 7; k >= 0; k--) table = table << 8 | bytes[32 + k];
  int checked = 0, accepted = 0;
  drt_test_rng r = {17};
  for (uint32_t i = 0; i < nsec; i++) {
    uint8_t *e = bytes + table + (size_t)i * 32;
    uint32_t type = (uint32_t)e[0] | (uint32_t)e[1] << 8;
    if (type != DRT_PLAN_SECTION_BUCKET && type != DRT_PLAN_SECTION_PROVENANCE && type != DRT_PLAN_SECTION_WEIGHTMAP)
      continue;
    uint64_t off = 0, sz = 0;
    for (int k = 7; k >= 0; k--) off = off << 8 | e[8 + k];
    for (int k = 7; k >= 0; k--) sz = sz << 8 | e[16 + k];
    for (int trial = 0; trial < 300; trial++) {
      uint8_t *copy = malloc(size);
      memcpy(copy, bytes, size);
      size_t pos = (size_t)(off + drt_test_next(&r) % sz);
      copy[pos] ^= (uint8_t)(1u << (drt_test_next(&r) % 8));
      uint32_t crc = drt_crc32(copy + off, (size_t)sz);
      uint8_t *ce = copy + table + (size_t)i * 32 + 24;
      ce[0] = (uint8_t)crc, ce[1] = (uint8_t)(crc >> 8), ce[2] = (uint8_t)(crc >> 16), ce[3] = (uint8_t)(crc >> 24);
      drt_plan *p = NULL;
      drt_status_code code = drt_plan_load_memory(copy, size, &p);
      if (code == DRT_STATUS_OK) {
        accepted++;
        drt_plan_destroy(p);
      } else {
        assert_true(code == DRT_STATUS_CORRUPT || code == DRT_STATUS_UNSUPPORTED || code == DRT_STATUS_INVALID_ARGUMENT);
      }
      free(copy);
      checked++;
    }
  }
  print_message("%d mutations of adaptable-plan sections: %d still valid plans, the rest refused\n", checked, accepted);
  assert_int_equal(checked, 3 * 300); /* the bucket and two provenance sections */
  free(bytes);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_two_buckets_serve_both_shapes),
      cmocka_unit_test(test_refit_two_buckets),
      cmocka_unit_test(test_cli_shapes_and_add_bucket),
      cmocka_unit_test(test_adapt_sections_mutations),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
