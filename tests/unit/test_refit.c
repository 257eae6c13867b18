/* Weight refit: a plan of the dit_student fixture refitted to a second checkpoint
 * (tests/models/gen_adapt_fixtures.py) gives bit-identical outputs to that checkpoint
 * compiled from scratch, from safetensors (through the weight map) and from ONNX, with and
 * without hoisted per-step tables; in well under a tenth of the compile time. Mismatched
 * checkpoints are refused with the list of differences; the C API swap leaves running sessions
 * on their weights. Also: weight-map recovery by content (transposed, across casts, ambiguous,
 * by name), and the CRC-32 used by every plan. */
#include "testutil.h"

#include <pthread.h>

#include "adapt_util.h"
#include "runtime/bytes.h"
#include "runtime/refit.h"

#define DIT_A "tests/models/fixtures/dit_student_op17/model.onnx"
#define DIT_B "tests/models/adapt/dit_b_op17.onnx"
#define CKPT_A "tests/models/adapt/dit_a.safetensors"
#define CKPT_B "tests/models/adapt/dit_b.safetensors"

/* ---- CRC-32 (slice-by-8 and carry-less multiply paths against the bitwise definition) ---- */
static uint32_t crc_bitwise(const uint8_t *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
  }
  return c ^ 0xFFFFFFFFu;
}

static void test_crc32(void **state) {
  (void)state;
  assert_int_equal(drt_crc32("123456789", 9), 0xCBF43926u);
  size_t n = 3000;
  uint8_t *b = malloc(n + 16);
  drt_test_rng r = {5};
  for (size_t i = 0; i < n + 16; i++) b[i] = (uint8_t)drt_test_next(&r);
  for (size_t len = 0; len <= n; len += len < 200 ? 1 : 61)
    for (int off = 0; off < 3; off++) assert_int_equal(drt_crc32(b + off, len), crc_bitwise(b + off, len));
  free(b);
}

/* ---- weight map ------------------------------------------------------------------------- */
static void test_weight_map_build(void **state) {
  (void)state;
  drt_test_rng r = {11};
  float w[6], wt[6], u[4], z1[3] = {0, 0, 0}, z2[3] = {0, 0, 0}, bias[4];
  drt_test_fill(&r, w, 6, -1, 1);
  drt_test_fill(&r, u, 4, -1, 1);
  drt_test_fill(&r, bias, 4, -1, 1);
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 3; j++) wt[j * 2 + i] = w[i * 3 + j]; /* [3,2] = transpose of [2,3] */
  uint16_t u16[4];
  float u_rounded[4];
  for (int i = 0; i < 4; i++) {
    u16[i] = drt_f32_to_f16(u[i]);
    u_rounded[i] = drt_f16_to_f32(u16[i]); /* the model holds the fp16 checkpoint cast to fp32 */
  }
  /* checkpoint: torch layout, one fp16 tensor, two identical zero tensors, one by-name tensor */
  adapt_st_entry ck[] = {
      {"lin.weight", DRT_DTYPE_FLOAT32, drt_test_shape(2, (int64_t[]){2, 3}), w},
      {"emb.weight", DRT_DTYPE_FLOAT16, drt_test_shape(2, (int64_t[]){2, 2}), u16},
      {"a.bias", DRT_DTYPE_FLOAT32, drt_test_shape(1, (int64_t[]){3}), z1},
      {"b.bias", DRT_DTYPE_FLOAT32, drt_test_shape(1, (int64_t[]){3}), z2},
      {"out.bias", DRT_DTYPE_FLOAT32, drt_test_shape(1, (int64_t[]){4}), bias},
      {"unused", DRT_DTYPE_FLOAT32, drt_test_shape(1, (int64_t[]){4}), u},
  };
  size_t size;
  void *bytes = adapt_safetensors(ck, 6, &size);
  drt_safetensors *st;
  DRT_ASSERT_OK(drt_safetensors_open_owned(bytes, size, "ck", &st));
  drt_named_tensor src[] = {
      {"onnx::MatMul_7", {DRT_DTYPE_FLOAT32, drt_test_shape(2, (int64_t[]){3, 2}), wt}},
      {"/emb/Constant", {DRT_DTYPE_FLOAT32, drt_test_shape(1, (int64_t[]){4}), u_rounded}},
      {"zeros", {DRT_DTYPE_FLOAT32, drt_test_shape(1, (int64_t[]){3}), z1}},
      {"out.bias", {DRT_DTYPE_FLOAT32, drt_test_shape(1, (int64_t[]){4}), bias}},
      {"nomatch", {DRT_DTYPE_FLOAT32, drt_test_shape(1, (int64_t[]){5}), w}},
  };
  drt_weight_map *m;
  drt_weight_map_stats ms;
  DRT_ASSERT_OK(drt_weight_map_build(src, 5, st, &m, &ms));
  assert_int_equal(ms.matched, 4);
  assert_int_equal(ms.transposed, 1);
  assert_int_equal(ms.cast, 1);
  assert_int_equal(ms.by_name, 1);
  assert_int_equal(ms.ambiguous, 1);
  assert_int_equal(ms.unmatched_sources, 1);
  const drt_wmap_entry *e = drt_weight_map_find_source(m, "onnx::MatMul_7");
  assert_non_null(e);
  assert_string_equal(e->param, "lin.weight");
  assert_int_equal(e->transform, DRT_WMAP_TRANSPOSE);
  e = drt_weight_map_find_param(m, "emb.weight");
  assert_non_null(e);
  assert_string_equal(e->source, "/emb/Constant");
  assert_int_equal(e->param_dtype, DRT_DTYPE_FLOAT16);
  e = drt_weight_map_find_source(m, "zeros");
  assert_non_null(e);
  assert_int_equal(e->num_alts, 1);
  assert_null(drt_weight_map_find_source(m, "nomatch"));
  /* round trip through the section encoding */
  drt_bytes_writer wr = {0};
  drt_weight_map_write(&wr, m);
  drt_weight_map *m2;
  DRT_ASSERT_OK(drt_weight_map_read(wr.data, wr.size, &m2));
  assert_int_equal(m2->count, m->count);
  assert_string_equal(drt_weight_map_find_source(m2, "onnx::MatMul_7")->param, "lin.weight");
  /* a truncated section is refused */
  for (size_t cut = 0; cut < wr.size; cut += 7) {
    drt_weight_map *m3 = NULL;
    drt_status s = drt_weight_map_read(wr.data, cut, &m3);
    assert_non_null(s);
    assert_int_equal(drt_status_code_of(s), DRT_STATUS_CORRUPT);
    drt_status_free(s);
  }
  drt_bw_free(&wr);
  drt_weight_map_destroy(m2);
  drt_weight_map_destroy(m);
  drt_safetensors_close(st);
}

/* ---- refit of the DiT fixture ------------------------------------------------------------- */
static __attribute__((unused)) void *read_rel(const char *rel, size_t *size) {
  char p[1024];
  void *bytes;
  DRT_ASSERT_OK(drt_read_file(adapt_path(rel, p, sizeof p), 0, &bytes, size));
  return bytes;
}

static void *refit_from_checkpoint(const void *plan, size_t size, const char *ckpt_rel, size_t *out_size) {
  char p[1024];
  drt_plan_view v;
  DRT_ASSERT_OK(drt_plan_view_open(plan, size, "plan", &v));
  drt_safetensors *ck;
  DRT_ASSERT_OK(drt_safetensors_open_file(adapt_path(ckpt_rel, p, sizeof p), 0, &ck));
  drt_refit_report rep;
  memset(&rep, 0, sizeof rep);
  void *out = NULL;
  DRT_ASSERT_OK(drt_plan_refit_checkpoint(&v, ck, false, &out, out_size, &rep));
  assert_true(rep.updated >= 50); /* every parameter of the DiT */
  drt_refit_report_free(&rep);
  drt_safetensors_close(ck);
  drt_plan_view_close(&v);
  return out;
}

static void *refit_from_onnx(const void *plan, size_t size, const char *onnx_rel, size_t *out_size) {
  char p[1024];
  drt_plan_view v;
  DRT_ASSERT_OK(drt_plan_view_open(plan, size, "plan", &v));
  drt_graph *g;
  DRT_ASSERT_OK(drt_onnx_load_file(adapt_path(onnx_rel, p, sizeof p), NULL, &g));
  drt_source_table t;
  memset(&t, 0, sizeof t);
  DRT_ASSERT_OK(drt_source_table_from_graph(&t, g));
  drt_refit_report rep;
  memset(&rep, 0, sizeof rep);
  void *out = NULL;
  DRT_ASSERT_OK(drt_plan_refit(&v, &t, drt_graph_fingerprint(g), &out, out_size, &rep));
  drt_refit_report_free(&rep);
  drt_source_table_free(&t);
  drt_graph_destroy(g);
  drt_plan_view_close(&v);
  return out;
}

static void test_refit_matches_scratch_compile(void **state) {
  (void)state;
  adapt_compile ra = adapt_fixture(DIT_A, CKPT_A), rb = adapt_fixture(DIT_B, NULL);
  size_t sa, sb, s1, s2, n0, n1, n2, na;
  void *pa = adapt_compile_plan(&ra, &sa), *pb = adapt_compile_plan(&rb, &sb);
  assert_non_null(pa);
  assert_non_null(pb);
  void *p1 = refit_from_checkpoint(pa, sa, CKPT_B, &s1);
  void *p2 = refit_from_onnx(pa, sa, DIT_B, &s2);
  assert_int_equal(s1, sa); /* same layout */
  assert_int_equal(s2, sa);
  assert_memory_equal(p1, p2, s1); /* both routes give the same bytes */
  float *ob = adapt_plan_output(pb, sb, "dit_student_op17", &n0);
  float *o1 = adapt_plan_output(p1, s1, "dit_student_op17", &n1);
  float *o2 = adapt_plan_output(p2, s2, "dit_student_op17", &n2);
  float *oa = adapt_plan_output(pa, sa, "dit_student_op17", &na);
  assert_int_equal(n0, n1);
  assert_true(adapt_bits_equal(ob, o1, n0));
  assert_true(adapt_bits_equal(ob, o2, n0));
  assert_true(drt_test_rel_l2(oa, ob, n0) > 1e-3); /* the checkpoints really differ */
  free(ob);
  free(o1);
  free(o2);
  free(oa);
  free(p1);
  free(p2);
  free(pa);
  free(pb);
}

/* Hoisting with per-step tables: the tables are recomputed from the new weights. */
static void test_refit_recomputes_step_tables(void **state) {
  (void)state;
  static const double ts[4] = {999, 749, 499, 249};
  adapt_compile ra = adapt_fixture(DIT_A, CKPT_A), rb = adapt_fixture(DIT_B, NULL);
  ra.table_steps = rb.table_steps = 4;
  ra.table_t = rb.table_t = ts;
  size_t sa, sb, s1;
  void *pa = adapt_compile_plan(&ra, &sa), *pb = adapt_compile_plan(&rb, &sb);
  assert_non_null(pa);
  assert_non_null(pb);
  drt_plan_contents c;
  void *copy = malloc(sb);
  memcpy(copy, pb, sb);
  DRT_ASSERT_OK(drt_plan_parse(copy, sb, "b", &c));
  int with_tables = 0;
  for (uint32_t k = 0; k < c.num_stages; k++) with_tables += c.stages[k].table_steps > 0;
  assert_int_equal(with_tables, 1); /* the fixture does hoist timestep work into tables */
  void *p1 = refit_from_checkpoint(pa, sa, CKPT_B, &s1);
  drt_plan_contents c1;
  void *copy1 = malloc(s1);
  memcpy(copy1, p1, s1);
  DRT_ASSERT_OK(drt_plan_parse(copy1, s1, "refit", &c1));
  for (uint32_t k = 0; k < c.num_stages; k++) {
    if (!c.stages[k].table_steps) continue;
    for (size_t j = 0; j < c.stages[k].graph->num_outputs; j++) {
      const drt_value *o = c.stages[k].graph->outputs[j];
      drt_tensor t = {o->dtype, o->shape, NULL};
      assert_memory_equal(c.stages[k].tables[j], c1.stages[k].tables[j], drt_tensor_nbytes(&t) * 4);
    }
  }
  drt_plan_contents_free(&c);
  drt_plan_contents_free(&c1);
  free(p1);
  free(pa);
  free(pb);
}

/* Repeated compiles and refits give the same bytes each time (timings printed only). */
static void test_refit_repeated(void **state) {
  (void)state;
  adapt_compile ra = adapt_fixture(DIT_A, CKPT_A);
  double compile_ms = 1e30, refit_ms = 1e30;
  size_t sa = 0;
  void *pa = NULL;
  for (int i = 0; i < 5; i++) {
    double t0 = adapt_now_ms();
    size_t sp = 0;
    void *p = adapt_compile_plan(&ra, &sp);
    double t1 = adapt_now_ms();
    assert_non_null(p);
    if (t1 - t0 < compile_ms) compile_ms = t1 - t0;
    if (pa) { /* compiling is deterministic: the same plan bytes every time */
      assert_int_equal(sp, sa);
      assert_memory_equal(p, pa, sa);
    }
    free(pa);
    pa = p;
    sa = sp;
  }
  void *first = NULL;
  size_t first_size = 0;
  char path[1024];
  adapt_path(CKPT_B, path, sizeof path);
  for (int i = 0; i < 20; i++) {
    double t0 = adapt_now_ms();
    drt_plan_view v;
    DRT_ASSERT_OK(drt_plan_view_open(pa, sa, "plan", &v));
    drt_safetensors *ck;
    DRT_ASSERT_OK(drt_safetensors_open_file(path, 0, &ck));
    drt_refit_report rep;
    memset(&rep, 0, sizeof rep);
    void *out;
    size_t os;
    DRT_ASSERT_OK(drt_plan_refit_checkpoint(&v, ck, false, &out, &os, &rep));
    double t1 = adapt_now_ms();
    if (t1 - t0 < refit_ms) refit_ms = t1 - t0;
    /* so is refitting: the same plan bytes from the same plan and checkpoint, and not the plan
       it started from (checkpoint B differs from A) */
    if (!first) {
      first = out;
      first_size = os;
      assert_true(os != sa || memcmp(out, pa, sa) != 0);
    } else {
      assert_int_equal(os, first_size);
      assert_memory_equal(out, first, os);
      free(out);
    }
    drt_refit_report_free(&rep);
    drt_safetensors_close(ck);
    drt_plan_view_close(&v);
  }
  /* compile: ONNX file -> plan bytes (load, passes, provenance, weight map, serialize);
     refit: plan bytes + checkpoint file -> plan bytes. Neither writes a file. */
  print_message("compile %.3f ms, refit %.3f ms (%.1fx faster)\n", compile_ms, refit_ms, compile_ms / refit_ms);
  free(pa);
  free(first);
  /* the timings are informational: a unit test asserts no speed (a loaded CI machine makes that
     flaky); scripts/bench_refit.py measures refit against compile */
  assert_true(compile_ms > 0 && refit_ms > 0);
}

/* ---- refusals ------------------------------------------------------------------------------ */
static void test_refit_refuses_mismatch(void **state) {
  (void)state;
  adapt_compile ra = adapt_fixture(DIT_A, CKPT_A);
  size_t sa;
  void *pa = adapt_compile_plan(&ra, &sa);
  assert_non_null(pa);
  char p[1024];
  drt_safetensors *b;
  DRT_ASSERT_OK(drt_safetensors_open_file(adapt_path(CKPT_B, p, sizeof p), 0, &b));
  /* checkpoint B with one tensor reshaped, one cast to fp16, one missing */
  size_t n = drt_safetensors_count(b), k = 0;
  adapt_st_entry *e = calloc(n, sizeof *e);
  uint16_t *half = NULL;
  for (size_t i = 0; i < n; i++) {
    const drt_st_tensor *t = drt_safetensors_at(b, i);
    if (strcmp(t->name, "blocks.0.mlp.2.weight") == 0) continue;
    e[k].name = t->name;
    e[k].dtype = t->dtype;
    e[k].shape = t->shape;
    e[k].data = t->data;
    if (strcmp(t->name, "blocks.0.attn.proj.weight") == 0) e[k].shape = drt_test_shape(2, (int64_t[]){32, 128});
    if (strcmp(t->name, "final.weight") == 0) {
      size_t m = (size_t)drt_shape_numel(&t->shape);
      half = malloc(m * 2);
      drt_safetensors_read(t, DRT_DTYPE_FLOAT16, half);
      e[k].dtype = DRT_DTYPE_FLOAT16;
      e[k].data = half;
    }
    k++;
  }
  size_t size;
  void *bytes = adapt_safetensors(e, (int)k, &size);
  drt_safetensors *bad;
  DRT_ASSERT_OK(drt_safetensors_open_owned(bytes, size, "bad.safetensors", &bad));
  drt_plan_view v;
  DRT_ASSERT_OK(drt_plan_view_open(pa, sa, "plan", &v));
  drt_refit_report rep;
  memset(&rep, 0, sizeof rep);
  void *out = NULL;
  size_t os;
  drt_status s = drt_plan_refit_checkpoint(&v, bad, false, &out, &os, &rep);
  assert_null(out);
  assert_non_null(s);
  const char *msg = drt_status_message(s);
  assert_int_equal(drt_status_code_of(s), DRT_STATUS_INVALID_ARGUMENT);
  assert_non_null(strstr(msg, "3 differences"));
  assert_non_null(strstr(msg, "parameter 'blocks.0.attn.proj.weight' is float32[32x128], the plan was compiled with "
                              "float32[64x64]"));
  assert_non_null(strstr(msg, "parameter 'final.weight' is float16"));
  assert_non_null(strstr(msg, "parameter 'blocks.0.mlp.2.weight'"));
  assert_non_null(strstr(msg, "is missing"));
  drt_status_free(s);
  drt_refit_report_free(&rep);
  /* a model of another structure is refused from ONNX */
  drt_graph *g;
  DRT_ASSERT_OK(drt_onnx_load_file(adapt_path("tests/models/fixtures/unet_op17/model.onnx", p, sizeof p), NULL, &g));
  drt_source_table t;
  memset(&t, 0, sizeof t);
  DRT_ASSERT_OK(drt_source_table_from_graph(&t, g));
  DRT_ASSERT_ERROR(drt_plan_refit(&v, &t, drt_graph_fingerprint(g), &out, &os, &rep), DRT_STATUS_INVALID_ARGUMENT,
                   "structure");
  drt_source_table_free(&t);
  drt_graph_destroy(g);
  /* a changed baked constant (the optimized graph depends on its value) is refused */
  drt_plan_provenance *pv = v.provenance[0];
  const drt_prov_baked *bk = NULL;
  for (size_t i = 0; i < pv->num_baked && !bk; i++)
    if (drt_dtype_is_float(pv->baked[i].dtype)) bk = &pv->baked[i];
  assert_non_null(bk);
  drt_tensor x = {bk->dtype, bk->shape, NULL};
  x.data = calloc(1, drt_tensor_nbytes(&x) + 4);
  memset(x.data, 0x3f, drt_tensor_nbytes(&x));
  memset(&t, 0, sizeof t);
  DRT_ASSERT_OK(drt_source_table_add(&t, bk->name, &x, true));
  memset(&rep, 0, sizeof rep);
  DRT_ASSERT_ERROR(drt_plan_refit(&v, &t, 0, &out, &os, &rep), DRT_STATUS_INVALID_ARGUMENT, "recompile");
  drt_refit_report_free(&rep);
  drt_source_table_free(&t);
  drt_plan_view_close(&v);
  drt_safetensors_close(bad);
  drt_safetensors_close(b);
  free(half);
  free(e);
  free(pa);
}

/* ---- C API: swap weights under running sessions -------------------------------------------- */
static void test_swap_weights_api(void **state) {
  (void)state;
  adapt_compile ra = adapt_fixture(DIT_A, CKPT_A), rb = adapt_fixture(DIT_B, NULL);
  size_t sa, sb, n;
  void *pa = adapt_compile_plan(&ra, &sa), *pb = adapt_compile_plan(&rb, &sb);
  float *want_a = adapt_plan_output(pa, sa, "dit_student_op17", &n);
  float *want_b = adapt_plan_output(pb, sb, "dit_student_op17", &n);
  drt_plan *plan;
  assert_int_equal(drt_plan_load_memory(pa, sa, &plan), DRT_STATUS_OK);
  drt_session_options o;
  drt_session_options_init(&o);
  o.num_threads = 1;
  drt_session *s1, *s2, *s3;
  drt_tensor h1[3], h2[3], h3[3];
  assert_int_equal(drt_session_create(plan, &o, &s1), DRT_STATUS_OK);
  adapt_set_fixture_inputs(s1, "dit_student_op17", h1);
  char p[1024];
  assert_int_equal(drt_plan_swap_weights(plan, adapt_path(CKPT_B, p, sizeof p)), DRT_STATUS_OK);
  assert_int_equal(drt_session_create(plan, &o, &s2), DRT_STATUS_OK);
  adapt_set_fixture_inputs(s2, "dit_student_op17", h2);
  size_t n1, n2;
  float *o1 = adapt_run_output(s1, plan, &n1), *o2 = adapt_run_output(s2, plan, &n2);
  assert_true(adapt_bits_equal(o1, want_a, n)); /* the running session kept its weights */
  assert_true(adapt_bits_equal(o2, want_b, n)); /* the new one has B's, exactly */
  /* a checkpoint of another model is refused and changes nothing */
  assert_int_equal(drt_plan_swap_weights(plan, adapt_path("tests/models/adapt/unet_a.safetensors", p, sizeof p)),
                   DRT_STATUS_INVALID_ARGUMENT);
  assert_non_null(strstr(drt_last_error(), "the checkpoint does not fit the plan"));
  assert_int_equal(drt_plan_swap_weights(plan, adapt_path("no/such.safetensors", p, sizeof p)), DRT_STATUS_NOT_FOUND);
  assert_int_equal(drt_session_create(plan, &o, &s3), DRT_STATUS_OK);
  adapt_set_fixture_inputs(s3, "dit_student_op17", h3);
  size_t n3;
  float *o3 = adapt_run_output(s3, plan, &n3);
  assert_true(adapt_bits_equal(o3, want_b, n));
  /* swapping back to A while s2 and s3 run on B */
  assert_int_equal(drt_plan_swap_weights(plan, adapt_path(CKPT_A, p, sizeof p)), DRT_STATUS_OK);
  drt_session_destroy(s1); /* the last user of generation 0's... session; the plan still holds it */
  free(o2);
  o2 = adapt_run_output(s2, plan, &n2);
  assert_true(adapt_bits_equal(o2, want_b, n));
  drt_session *s4;
  drt_tensor h4[3];
  assert_int_equal(drt_session_create(plan, &o, &s4), DRT_STATUS_OK);
  adapt_set_fixture_inputs(s4, "dit_student_op17", h4);
  size_t n4;
  float *o4 = adapt_run_output(s4, plan, &n4);
  assert_true(adapt_bits_equal(o4, want_a, n));
  drt_session_destroy(s2);
  drt_session_destroy(s3);
  drt_session_destroy(s4);
  drt_plan_destroy(plan);
  for (int i = 0; i < 3; i++) {
    free(h1[i].data);
    free(h2[i].data);
    free(h3[i].data);
    free(h4[i].data);
  }
  free(o1);
  free(o2);
  free(o3);
  free(o4);
  free(want_a);
  free(want_b);
  free(pa);
  free(pb);
}

/* Swaps from one thread while another creates sessions and runs them: every run sees exactly
 * one of the two weight sets (never a mix), and nothing leaks or races (run under TSan/ASan). */
typedef struct swap_race {
  drt_plan *plan;
  const float *want_a, *want_b;
  size_t n;
  int runs, bad;
} swap_race;

static void *race_runner(void *arg) {
  swap_race *r = arg;
  for (int i = 0; i < r->runs; i++) {
    drt_session_options o;
    drt_session_options_init(&o);
    o.num_threads = 1;
    drt_session *s;
    if (drt_session_create(r->plan, &o, &s) != DRT_STATUS_OK) {
      r->bad++;
      continue;
    }
    static const char *names[3] = {"sample", "timestep", "encoder_hidden_states"};
    drt_tensor held[3];
    for (int k = 0; k < 3; k++) {
      char rel[256], path[1024];
      snprintf(rel, sizeof rel, "tests/models/fixtures/dit_student_op17/inputs/%s.npy", names[k]);
      if (drt_npy_read_file(adapt_path(rel, path, sizeof path), &held[k])) r->bad++;
      drt_session_set_input(s, names[k], held[k].dtype, held[k].shape.rank, held[k].shape.dims, held[k].data,
                            drt_tensor_nbytes(&held[k]));
    }
    const void *data;
    size_t nb;
    drt_tensor_desc d;
    if (drt_session_run(s) != DRT_STATUS_OK || drt_session_get_output(s, "out", &d, &data, &nb) != DRT_STATUS_OK ||
        nb != r->n * sizeof(float) ||
        (memcmp(data, r->want_a, nb) != 0 && memcmp(data, r->want_b, nb) != 0))
      r->bad++;
    for (int k = 0; k < 3; k++) free(held[k].data);
    drt_session_destroy(s);
  }
  return NULL;
}

static void test_swap_while_running(void **state) {
  (void)state;
  adapt_compile ra = adapt_fixture(DIT_A, CKPT_A), rb = adapt_fixture(DIT_B, NULL);
  size_t sa, sb, n;
  void *pa = adapt_compile_plan(&ra, &sa), *pb = adapt_compile_plan(&rb, &sb);
  float *want_a = adapt_plan_output(pa, sa, "dit_student_op17", &n);
  float *want_b = adapt_plan_output(pb, sb, "dit_student_op17", &n);
  drt_plan *plan;
  assert_int_equal(drt_plan_load_memory(pa, sa, &plan), DRT_STATUS_OK);
  swap_race r = {plan, want_a, want_b, n, 12, 0};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, race_runner, &r), 0);
  char path_a[1024], path_b[1024];
  adapt_path(CKPT_A, path_a, sizeof path_a);
  adapt_path(CKPT_B, path_b, sizeof path_b);
  for (int i = 0; i < 6; i++) assert_int_equal(drt_plan_swap_weights(plan, i % 2 ? path_a : path_b), DRT_STATUS_OK);
  pthread_join(th, NULL);
  assert_int_equal(r.bad, 0);
  drt_plan_destroy(plan);
  free(want_a);
  free(want_b);
  free(pa);
  free(pb);
}

/* Refits chain: A -> B -> A gives back plan A byte for byte (weights, and the values of the
 * small sources kept in the provenance), and a partial refit after a full one starts from the
 * full one's values. */
static void test_refit_chain(void **state) {
  (void)state;
  adapt_compile ra = adapt_fixture(DIT_A, CKPT_A);
  size_t sa, s1, s2, s3;
  void *pa = adapt_compile_plan(&ra, &sa);
  assert_non_null(pa);
  void *p_ab = refit_from_checkpoint(pa, sa, CKPT_B, &s1);
  void *p_aba = refit_from_checkpoint(p_ab, s1, CKPT_A, &s2);
  assert_int_equal(s2, sa);
  assert_memory_equal(p_aba, pa, sa);
  /* B, then a partial checkpoint of one parameter: everything else stays B's */
  char p[1024];
  drt_safetensors *ck;
  DRT_ASSERT_OK(drt_safetensors_open_file(adapt_path(CKPT_A, p, sizeof p), 0, &ck));
  const drt_st_tensor *t = drt_safetensors_find(ck, "blocks.0.attn.proj.weight");
  assert_non_null(t);
  adapt_st_entry e[1] = {{t->name, t->dtype, t->shape, t->data}};
  size_t fsize;
  void *fbytes = adapt_safetensors(e, 1, &fsize);
  drt_safetensors *one;
  DRT_ASSERT_OK(drt_safetensors_open_owned(fbytes, fsize, "one", &one));
  drt_plan_view v;
  DRT_ASSERT_OK(drt_plan_view_open(p_ab, s1, "ab", &v));
  drt_refit_report rep;
  memset(&rep, 0, sizeof rep);
  void *p_part;
  DRT_ASSERT_ERROR(drt_plan_refit_checkpoint(&v, one, false, &p_part, &s3, &rep), DRT_STATUS_INVALID_ARGUMENT,
                   "is missing");
  drt_refit_report_free(&rep);
  memset(&rep, 0, sizeof rep);
  DRT_ASSERT_OK(drt_plan_refit_checkpoint(&v, one, true, &p_part, &s3, &rep));
  assert_int_equal(rep.updated, 1);
  size_t n0, n1, n2;
  float *o_ab = adapt_plan_output(p_ab, s1, "dit_student_op17", &n0);
  float *o_part = adapt_plan_output(p_part, s3, "dit_student_op17", &n1);
  float *o_a = adapt_plan_output(pa, sa, "dit_student_op17", &n2);
  double d_ab = drt_test_rel_l2(o_part, o_ab, n0), d_a = drt_test_rel_l2(o_part, o_a, n0);
  assert_true(d_ab > 0 && d_ab < d_a); /* one parameter of A in B's weights: close to B, not to A */
  drt_refit_report_free(&rep);
  drt_plan_view_close(&v);
  drt_safetensors_close(one);
  drt_safetensors_close(ck);
  free(o_ab);
  free(o_part);
  free(o_a);
  free(p_part);
  free(p_aba);
  free(p_ab);
  free(pa);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crc32),
      cmocka_unit_test(test_weight_map_build),
      cmocka_unit_test(test_refit_matches_scratch_compile),
      cmocka_unit_test(test_refit_recomputes_step_tables),
      cmocka_unit_test(test_refit_repeated),
      cmocka_unit_test(test_refit_chain),
      cmocka_unit_test(test_refit_refuses_mismatch),
      cmocka_unit_test(test_swap_weights_api),
      cmocka_unit_test(test_swap_while_running),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
