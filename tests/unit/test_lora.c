/* LoRA on compiled plans (tests/models/gen_adapt_fixtures.py makes the files): for the DiT and
 * the conv UNet fixtures and two key layouts each, merged (drt_plan_set_loras) and unmerged
 * (drt_session_set_loras) outputs equal those of the plan refitted to weights merged in torch
 * (relative L2 <= 1e-5); loading A, then B, then A gives bit-identical outputs to A alone and
 * removing them restores the base exactly; unknown keys are listed; sessions of one plan run
 * different LoRAs at once; an unmerged LoRA on a weight no GEMM reads directly is refused. */
#include "testutil.h"

#include <unistd.h>

#include "adapt_util.h"
#include "runtime/refit.h"

#define ADAPT "tests/models/adapt/"
#define DIT "tests/models/fixtures/dit_student_op17/model.onnx"
#define UNET "tests/models/fixtures/unet_op17/model.onnx"
#define STRENGTH 0.8f

typedef struct fixture {
  const char *model, *map, *inputs;
} fixture;
static const fixture k_dit = {DIT, ADAPT "dit_a.safetensors", "dit_student_op17"};
static const fixture k_unet = {UNET, ADAPT "unet_a.safetensors", "unet_op17"};

static void *compile_fixture(const fixture *f, size_t *size) {
  adapt_compile r = adapt_fixture(f->model, f->map);
  void *p = adapt_compile_plan(&r, size);
  assert_non_null(p);
  return p;
}

static drt_plan *load(const void *bytes, size_t size) {
  drt_plan *p = NULL;
  assert_int_equal(drt_plan_load_memory(bytes, size, &p), DRT_STATUS_OK);
  return p;
}

static drt_lora *load_lora(const drt_plan *p, const char *rel) {
  char path[1024];
  drt_lora *l = NULL;
  if (drt_lora_load_file(p, adapt_path(rel, path, sizeof path), &l) != DRT_STATUS_OK)
    print_error("%s: %s\n", rel, drt_last_error());
  assert_non_null(l);
  return l;
}

/* Output 0 of a new session of the plan, with unmerged LoRAs when n > 0. */
static float *run(const drt_plan *p, const fixture *f, const drt_lora *const *l, const float *s, int n, size_t *len) {
  drt_session_options o;
  drt_session_options_init(&o);
  o.num_threads = 1;
  drt_session *ss;
  assert_int_equal(drt_session_create(p, &o, &ss), DRT_STATUS_OK);
  if (n && drt_session_set_loras(ss, l, s, n) != DRT_STATUS_OK) print_error("set_loras: %s\n", drt_last_error());
  drt_tensor held[3];
  adapt_set_fixture_inputs(ss, f->inputs, held);
  float *out = adapt_run_output(ss, p, len);
  for (int i = 0; i < 3; i++) free(held[i].data);
  drt_session_destroy(ss);
  return out;
}

/* The reference: the plan refitted to the weights torch merged (only the touched parameters). */
static float *reference(const void *plan, size_t size, const fixture *f, const char *merged_rel, size_t *len) {
  char path[1024];
  drt_plan_view v;
  DRT_ASSERT_OK(drt_plan_view_open(plan, size, "plan", &v));
  drt_safetensors *ck;
  DRT_ASSERT_OK(drt_safetensors_open_file(adapt_path(merged_rel, path, sizeof path), 0, &ck));
  drt_refit_report rep;
  memset(&rep, 0, sizeof rep);
  void *out;
  size_t os;
  DRT_ASSERT_OK(drt_plan_refit_checkpoint(&v, ck, true, &out, &os, &rep));
  assert_int_equal(rep.updated, drt_safetensors_count(ck));
  drt_refit_report_free(&rep);
  drt_safetensors_close(ck);
  drt_plan_view_close(&v);
  float *o = adapt_plan_output(out, os, f->inputs, len);
  free(out);
  return o;
}

static void check_close(const float *got, const float *want, const float *base, size_t n, const char *what) {
  double e = drt_test_rel_l2(got, want, n), moved = drt_test_rel_l2(base, want, n);
  print_message("%s: rel L2 %.2g vs torch-merged (the LoRA moves the output by %.2g)\n", what, e, moved);
  if (e > 1e-5 || moved < 1e-3) print_error("%s: rel L2 %.3g vs torch-merged (the LoRA moves the output by %.3g)\n",
                                            what, e, moved);
  assert_true(e <= 1e-5);
  assert_true(moved > 1e-3); /* the LoRA changes the output: the comparison can fail */
}

/* merged and unmerged, for the given LoRA files of one fixture */
static void check_layouts(const fixture *f, const char *const *files, int nfiles, const char *merged_rel,
                          int want_targets) {
  size_t size, n, nr;
  void *bytes = compile_fixture(f, &size);
  float *want = reference(bytes, size, f, merged_rel, &nr);
  drt_plan *p = load(bytes, size);
  float *base = run(p, f, NULL, NULL, 0, &n);
  const float one = STRENGTH;
  for (int i = 0; i < nfiles; i++) {
    drt_lora *l = load_lora(p, files[i]);
    assert_int_equal(drt_lora_num_targets(l), want_targets);
    const drt_lora *ls[1] = {l};
    float *un = run(p, f, ls, &one, 1, &n);
    char what[512];
    snprintf(what, sizeof what, "%s unmerged", files[i] + strlen(ADAPT));
    check_close(un, want, base, n, what);
    assert_int_equal(drt_plan_set_loras(p, ls, &one, 1), DRT_STATUS_OK);
    float *mg = run(p, f, NULL, NULL, 0, &n);
    snprintf(what, sizeof what, "%s merged", files[i] + strlen(ADAPT));
    check_close(mg, want, base, n, what);
    assert_int_equal(drt_plan_set_loras(p, NULL, NULL, 0), DRT_STATUS_OK);
    float *back = run(p, f, NULL, NULL, 0, &n);
    assert_true(adapt_bits_equal(back, base, n)); /* exact revert */
    free(back);
    free(un);
    free(mg);
    drt_lora_destroy(l);
  }
  free(base);
  free(want);
  drt_plan_destroy(p);
  free(bytes);
}

static void test_dit_kohya_and_peft(void **state) {
  (void)state;
  const char *files[] = {ADAPT "dit_lora1_kohya.safetensors", ADAPT "dit_lora1_peft.safetensors"};
  check_layouts(&k_dit, files, 2, ADAPT "dit_lora1_merged.safetensors", 6);
}

static void test_unet_kohya_and_diffusers(void **state) {
  (void)state;
  const char *files[] = {ADAPT "unet_lora1_kohya.safetensors", ADAPT "unet_lora1_diffusers.safetensors"};
  check_layouts(&k_unet, files, 2, ADAPT "unet_lora1_merged.safetensors", 6);
}

static void test_unknown_keys_listed(void **state) {
  (void)state;
  size_t size;
  void *bytes = compile_fixture(&k_dit, &size);
  drt_plan *p = load(bytes, size);
  drt_lora *k = load_lora(p, ADAPT "dit_lora1_kohya.safetensors");
  assert_int_equal(drt_lora_num_unknown_keys(k), 2);
  assert_string_equal(drt_lora_unknown_key(k, 0), "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight");
  assert_string_equal(drt_lora_unknown_key(k, 1), "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight");
  assert_null(drt_lora_unknown_key(k, 2));
  drt_lora *q = load_lora(p, ADAPT "dit_lora1_peft.safetensors");
  assert_int_equal(drt_lora_num_unknown_keys(q), 2);
  assert_non_null(strstr(drt_lora_unknown_key(q, 0), "transformer.blocks.7.attn.qkv.lora_"));
  drt_lora_destroy(k);
  drt_lora_destroy(q);
  /* a file with nothing for this plan is an error, not an empty LoRA */
  drt_lora *u = NULL;
  char path[1024];
  assert_int_equal(drt_lora_load_file(p, adapt_path(ADAPT "unet_lora1_kohya.safetensors", path, sizeof path), &u),
                   DRT_STATUS_INVALID_ARGUMENT);
  assert_null(u);
  assert_non_null(strstr(drt_last_error(), "matches a weight of the plan"));
  drt_plan_destroy(p);
  free(bytes);
}

/* A, then B, then A: bit-identical to A alone, merged and unmerged; stacked merged == unmerged. */
static void test_swap_order_and_stacking(void **state) {
  (void)state;
  size_t size, n;
  void *bytes = compile_fixture(&k_dit, &size);
  drt_plan *p = load(bytes, size);
  drt_lora *a = load_lora(p, ADAPT "dit_lora1_kohya.safetensors"), *b = load_lora(p, ADAPT "dit_lora2_kohya.safetensors");
  const drt_lora *la[1] = {a}, *lb[1] = {b}, *lab[2] = {a, b};
  const float s1 = 0.8f, s2[2] = {0.8f, -0.5f};
  assert_int_equal(drt_plan_set_loras(p, la, &s1, 1), DRT_STATUS_OK);
  float *only_a = run(p, &k_dit, NULL, NULL, 0, &n);
  assert_int_equal(drt_plan_set_loras(p, lb, &s1, 1), DRT_STATUS_OK);
  float *only_b = run(p, &k_dit, NULL, NULL, 0, &n);
  assert_int_equal(drt_plan_set_loras(p, la, &s1, 1), DRT_STATUS_OK);
  float *a_again = run(p, &k_dit, NULL, NULL, 0, &n);
  assert_true(adapt_bits_equal(only_a, a_again, n));
  assert_false(adapt_bits_equal(only_a, only_b, n));
  assert_int_equal(drt_plan_set_loras(p, NULL, NULL, 0), DRT_STATUS_OK);
  /* unmerged: one session switching A, B, A */
  drt_session_options o;
  drt_session_options_init(&o);
  o.num_threads = 1;
  drt_session *ss;
  assert_int_equal(drt_session_create(p, &o, &ss), DRT_STATUS_OK);
  drt_tensor held[3];
  adapt_set_fixture_inputs(ss, k_dit.inputs, held);
  assert_int_equal(drt_session_set_loras(ss, la, &s1, 1), DRT_STATUS_OK);
  float *ua = adapt_run_output(ss, p, &n);
  assert_int_equal(drt_session_set_loras(ss, lb, &s1, 1), DRT_STATUS_OK);
  float *ub = adapt_run_output(ss, p, &n);
  assert_int_equal(drt_session_set_loras(ss, la, &s1, 1), DRT_STATUS_OK);
  float *ua2 = adapt_run_output(ss, p, &n);
  assert_true(adapt_bits_equal(ua, ua2, n));
  assert_true(drt_test_rel_l2(ua, only_a, n) <= 1e-5);
  assert_true(drt_test_rel_l2(ub, only_b, n) <= 1e-5);
  /* stacked with their own strengths */
  assert_int_equal(drt_session_set_loras(ss, lab, s2, 2), DRT_STATUS_OK);
  float *u_ab = adapt_run_output(ss, p, &n);
  assert_int_equal(drt_plan_set_loras(p, lab, s2, 2), DRT_STATUS_OK);
  float *m_ab = run(p, &k_dit, NULL, NULL, 0, &n);
  assert_true(drt_test_rel_l2(u_ab, m_ab, n) <= 1e-5);
  assert_true(drt_test_rel_l2(m_ab, only_a, n) > 1e-4);
  /* a session with no LoRAs on a plan with merged ones sees the merged weights; removing the
     session's LoRAs gives the plan's generation back */
  assert_int_equal(drt_session_set_loras(ss, NULL, NULL, 0), DRT_STATUS_OK);
  float *none = adapt_run_output(ss, p, &n);
  float *base = NULL;
  assert_int_equal(drt_plan_set_loras(p, NULL, NULL, 0), DRT_STATUS_OK);
  base = run(p, &k_dit, NULL, NULL, 0, &n);
  assert_true(adapt_bits_equal(none, base, n)); /* ss was created before the merges */
  drt_session_destroy(ss);
  for (int i = 0; i < 3; i++) free(held[i].data);
  free(only_a);
  free(only_b);
  free(a_again);
  free(ua);
  free(ub);
  free(ua2);
  free(u_ab);
  free(m_ab);
  free(none);
  free(base);
  drt_lora_destroy(a);
  drt_lora_destroy(b);
  drt_plan_destroy(p);
  free(bytes);
}

/* Two sessions of one plan at once, one with a LoRA, one without. */
static void test_sessions_with_different_loras(void **state) {
  (void)state;
  size_t size, n;
  void *bytes = compile_fixture(&k_dit, &size);
  drt_plan *p = load(bytes, size);
  drt_lora *a = load_lora(p, ADAPT "dit_lora1_peft.safetensors");
  const drt_lora *la[1] = {a};
  const float s1 = STRENGTH;
  drt_session_options o;
  drt_session_options_init(&o);
  o.num_threads = 1;
  drt_session *s_l, *s_b;
  assert_int_equal(drt_session_create(p, &o, &s_l), DRT_STATUS_OK);
  assert_int_equal(drt_session_create(p, &o, &s_b), DRT_STATUS_OK);
  assert_int_equal(drt_session_set_loras(s_l, la, &s1, 1), DRT_STATUS_OK);
  drt_tensor h1[3], h2[3];
  adapt_set_fixture_inputs(s_l, k_dit.inputs, h1);
  adapt_set_fixture_inputs(s_b, k_dit.inputs, h2);
  float *ol = adapt_run_output(s_l, p, &n), *ob = adapt_run_output(s_b, p, &n);
  float *base = run(p, &k_dit, NULL, NULL, 0, &n);
  assert_true(adapt_bits_equal(ob, base, n));
  assert_true(drt_test_rel_l2(ol, base, n) > 1e-3);
  drt_session_destroy(s_l);
  drt_session_destroy(s_b);
  for (int i = 0; i < 3; i++) {
    free(h1[i].data);
    free(h2[i].data);
  }
  free(ol);
  free(ob);
  free(base);
  drt_lora_destroy(a);
  drt_plan_destroy(p);
  free(bytes);
}

/* blocks.0.cross.kv reads only the text conditioning, so hoisting moves it to the prologue
 * graph: unmerged LoRAs adapt the stage graphs too. A LoRA on a weight no GEMM reads as such
 * (the adaLN scale-shift table, added to the timestep embedding) is refused unmerged and works
 * merged. Shapes that do not fit are refused at load; a LoRA of another plan is refused. */
static void write_kohya(const char *path, const char *module, int64_t out, int64_t in, drt_test_rng *r) {
  float *down = malloc((size_t)(4 * in) * sizeof(float)), *up = malloc((size_t)(out * 4) * sizeof(float)), alpha = 4;
  drt_test_fill(r, down, (size_t)(4 * in), -0.2f, 0.2f);
  drt_test_fill(r, up, (size_t)(out * 4), -0.2f, 0.2f);
  char kd[256], ku[256], ka[256];
  snprintf(kd, sizeof kd, "lora_unet_%s.lora_down.weight", module);
  snprintf(ku, sizeof ku, "lora_unet_%s.lora_up.weight", module);
  snprintf(ka, sizeof ka, "lora_unet_%s.alpha", module);
  adapt_st_entry e[] = {
      {kd, DRT_DTYPE_FLOAT32, drt_test_shape(2, (int64_t[]){4, in}), down},
      {ku, DRT_DTYPE_FLOAT32, drt_test_shape(2, (int64_t[]){out, 4}), up},
      {ka, DRT_DTYPE_FLOAT32, drt_test_shape(0, NULL), &alpha},
  };
  size_t fsize;
  void *fbytes = adapt_safetensors(e, 3, &fsize);
  DRT_ASSERT_OK(drt_write_file_atomic(path, fbytes, fsize));
  free(fbytes);
  free(down);
  free(up);
}

static void test_hoisted_and_unreadable_weights(void **state) {
  (void)state;
  size_t size, n;
  void *bytes = compile_fixture(&k_dit, &size);
  drt_plan *p = load(bytes, size);
  drt_test_rng r = {3};
  const char *path = "/tmp/drt_test_lora_kv.safetensors";
  write_kohya(path, "blocks_0_cross_kv", 128, 64, &r);
  drt_lora *l = NULL;
  assert_int_equal(drt_lora_load_file(p, path, &l), DRT_STATUS_OK);
  const drt_lora *ls[1] = {l};
  const float s1 = 1.0f;
  float *base = run(p, &k_dit, NULL, NULL, 0, &n);
  float *un = run(p, &k_dit, ls, &s1, 1, &n);
  assert_int_equal(drt_plan_set_loras(p, ls, &s1, 1), DRT_STATUS_OK);
  float *mg = run(p, &k_dit, NULL, NULL, 0, &n);
  assert_true(drt_test_rel_l2(mg, base, n) > 1e-4);
  assert_true(drt_test_rel_l2(un, mg, n) <= 1e-5);
  assert_int_equal(drt_plan_set_loras(p, NULL, NULL, 0), DRT_STATUS_OK);
  /* the scale-shift table: folded into an unsqueezed copy that an Add reads */
  write_kohya(path, "blocks_0_scale_shift_table", 6, 64, &r);
  drt_lora *t = NULL;
  assert_int_equal(drt_lora_load_file(p, path, &t), DRT_STATUS_OK);
  const drt_lora *lt[1] = {t};
  drt_session_options o;
  drt_session_options_init(&o);
  drt_session *ss;
  assert_int_equal(drt_session_create(p, &o, &ss), DRT_STATUS_OK);
  assert_int_equal(drt_session_set_loras(ss, lt, &s1, 1), DRT_STATUS_UNSUPPORTED);
  assert_non_null(strstr(drt_last_error(), "use merged mode"));
  drt_session_destroy(ss);
  assert_int_equal(drt_plan_set_loras(p, lt, &s1, 1), DRT_STATUS_OK);
  float *mt = run(p, &k_dit, NULL, NULL, 0, &n);
  assert_true(drt_test_rel_l2(mt, base, n) > 1e-4);
  /* wrong shapes are refused at load, naming the module */
  write_kohya(path, "blocks_0_cross_kv", 64, 64, &r);
  drt_lora *bad = NULL;
  assert_int_equal(drt_lora_load_file(p, path, &bad), DRT_STATUS_INVALID_ARGUMENT);
  assert_non_null(strstr(drt_last_error(), "module 'blocks_0_cross_kv'"));
  /* a LoRA of another plan is refused */
  drt_plan *p2 = load(bytes, size);
  assert_int_equal(drt_plan_set_loras(p2, ls, &s1, 1), DRT_STATUS_INVALID_ARGUMENT);
  drt_plan_destroy(p2);
  unlink(path);
  free(base);
  free(un);
  free(mg);
  free(mt);
  drt_plan_destroy(p);
  drt_lora_destroy(l);
  drt_lora_destroy(t);
  free(bytes);
}

/* Merged LoRAs follow a weight swap: plan(A) + LoRA, swapped to B, equals plan(B) + LoRA. */
static void test_merged_lora_follows_swap(void **state) {
  (void)state;
  size_t sa, sb, n;
  void *pa = compile_fixture(&k_dit, &sa);
  adapt_compile rb = adapt_fixture("tests/models/adapt/dit_b_op17.onnx", ADAPT "dit_b.safetensors");
  void *pb = adapt_compile_plan(&rb, &sb);
  assert_non_null(pb);
  drt_plan *a = load(pa, sa), *b = load(pb, sb);
  drt_lora *la = load_lora(a, ADAPT "dit_lora1_kohya.safetensors"), *lb = load_lora(b, ADAPT "dit_lora1_kohya.safetensors");
  const drt_lora *xa[1] = {la}, *xb[1] = {lb};
  const float s1 = STRENGTH;
  assert_int_equal(drt_plan_set_loras(a, xa, &s1, 1), DRT_STATUS_OK);
  char path[1024];
  assert_int_equal(drt_plan_swap_weights(a, adapt_path(ADAPT "dit_b.safetensors", path, sizeof path)), DRT_STATUS_OK);
  assert_int_equal(drt_plan_set_loras(b, xb, &s1, 1), DRT_STATUS_OK);
  float *oa = run(a, &k_dit, NULL, NULL, 0, &n), *ob = run(b, &k_dit, NULL, NULL, 0, &n);
  if (!adapt_bits_equal(oa, ob, n)) print_error("rel L2 %.3g\n", drt_test_rel_l2(oa, ob, n));
  assert_true(adapt_bits_equal(oa, ob, n));
  free(oa);
  free(ob);
  drt_plan_destroy(a);
  drt_plan_destroy(b);
  drt_lora_destroy(la);
  drt_lora_destroy(lb);
  free(pa);
  free(pb);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dit_kohya_and_peft),
      cmocka_unit_test(test_unet_kohya_and_diffusers),
      cmocka_unit_test(test_unknown_keys_listed),
      cmocka_unit_test(test_swap_order_and_stacking),
      cmocka_unit_test(test_sessions_with_different_loras),
      cmocka_unit_test(test_hoisted_and_unreadable_weights),
      cmocka_unit_test(test_merged_lora_follows_swap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
