/* Memory plan views (passes/memory_plan.c): Split chunks, Slices, constant-index Gathers and
 * reshapes whose elements are one dense, aligned run of their input share its storage; strided or
 * misaligned regions keep a copy; roots live as long as their views and never take in-place
 * writes. Results are compared with the unplanned run (fresh seeded inputs); the views survive a
 * plan round trip, and a plan whose view list disagrees with the graph is refused as corrupt. */
#include "testutil.h"

#include "graph_testutil.h"
#include "ir/infer_movement.h"
#include "runtime/bytes.h"
#include "runtime/plan.h"
#include "runtime/plan_format.h"

static drt_status noop_pass(drt_graph *g, const drt_pass_ctx *ctx, bool *changed) {
  (void)g;
  (void)ctx;
  *changed = false;
  return DRT_OK;
}

static drt_value *out_value(tg *t) { return drt_graph_add_value(t->g, NULL, DRT_DTYPE_UNDEFINED, NULL); }

/* Split(x, axis) into `n` equal chunks: outputs in outs[] */
static void split(tg *t, drt_value *x, int axis, int n, drt_value **outs) {
  for (int i = 0; i < n; i++) outs[i] = out_value(t);
  drt_node *nd;
  DRT_ASSERT_OK(drt_graph_add_node(t->g, DRT_OP_SPLIT, NULL, &x, 1, outs, n, &nd));
  attr_i(t, outs[0], "axis", axis);
}

static drt_value *slice1(tg *t, drt_value *x, int64_t start, int64_t end, int64_t axis) {
  drt_value *ins[4] = {x, cst_i64(t, 1, &start), cst_i64(t, 1, &end), cst_i64(t, 1, &axis)};
  drt_value *y = out_value(t);
  DRT_ASSERT_OK(drt_graph_add_node(t->g, DRT_OP_SLICE, NULL, ins, 4, &y, 1, NULL));
  return y;
}

static drt_value *gather_scalar(tg *t, drt_value *x, int64_t index, int64_t axis) {
  drt_value *idx;
  drt_shape s0 = drt_test_shape(0, NULL);
  DRT_ASSERT_OK(drt_graph_add_const(t->g, NULL, DRT_DTYPE_INT64, &s0, &index, &idx));
  drt_value *y = op2(t, DRT_OP_GATHER, x, idx);
  attr_i(t, y, "axis", axis);
  return y;
}

static void add_output(tg *t, drt_value *v) { DRT_ASSERT_OK(drt_graph_add_output(t->g, v)); }

/* x: [3, 2, 4, 64]; s = x + 0.25 (read only by its Split), r = 1.5 x; views and non-views,
 * read early and late:
 *   out0 = Squeeze(chunk0) + Squeeze(chunk1)     Split(s) on axis 0: views at 0, 512, 1024
 *   out1 = Relu(Slice(r, 1:3 on axis 0))         view of r at 512
 *   out2 = Sigmoid(Gather(r, -1, axis 0))        view at 1024 (negative index)
 *   out3 = t0 - t1, Split(r, axis 3)             strided: copies (intermediates that would take
 *                                                s's block if it were freed at its Split)
 *   out4 = -Slice(Reshape(r, [1536]), 3:40)      contiguous but misaligned: a copy
 *   out5 = 2 chunk2 (read last)                  s must stay allocated until here
 *   out6 = -(r + Slice(r, 0:1 on axis 0))        r dies at the Add with its view: no in-place
 *                                                write into r while the view is read */
static void build(tg *t, drt_value **chunks, drt_value **strided) {
  tg_init(t, 20261126);
  drt_value *x = input(t, "x", 4, (int64_t[]){3, 2, 4, 64}, -2, 2);
  drt_value *s = op2(t, DRT_OP_ADD, x, scalar(t, 0.25f));
  drt_value *r = op2(t, DRT_OP_MUL, x, scalar(t, 1.5f));
  split(t, s, 0, 3, chunks);
  int64_t ax0 = 0;
  drt_value *q = op2(t, DRT_OP_SQUEEZE, chunks[0], cst_i64(t, 1, &ax0));
  drt_value *k = op2(t, DRT_OP_SQUEEZE, chunks[1], cst_i64(t, 1, &ax0));
  add_output(t, op2(t, DRT_OP_ADD, q, k));
  add_output(t, op1(t, DRT_OP_RELU, slice1(t, r, 1, 3, 0)));
  add_output(t, op1(t, DRT_OP_SIGMOID, gather_scalar(t, r, -1, 0)));
  split(t, r, 3, 2, strided);
  add_output(t, op2(t, DRT_OP_SUB, strided[0], strided[1]));
  drt_value *flat = reshape(t, r, 1, (int64_t[]){1536});
  add_output(t, op1(t, DRT_OP_NEG, slice1(t, flat, 3, 40, 0)));
  add_output(t, op2(t, DRT_OP_MUL, chunks[2], scalar(t, 2.0f)));
  add_output(t, op1(t, DRT_OP_NEG, op2(t, DRT_OP_ADD, r, slice1(t, r, 0, 1, 0))));
}

static drt_node *nth_op(const drt_graph *g, drt_op o, int nth) {
  for (size_t i = 0; i < g->num_nodes; i++)
    if (g->nodes[i]->op == o && nth-- == 0) return g->nodes[i];
  return NULL;
}

static void test_views_give_the_unplanned_results(void **state) {
  (void)state;
  tg t;
  drt_value *chunks[3], *strided[2];
  build(&t, chunks, strided);
  tg_pass_compare(&t, noop_pass, true, 0.0, NULL);
  const drt_graph *g = t.g;
  assert_true(g->mem_planned);
  /* Split on axis 0: three views of r, the node moves nothing */
  drt_node *sp0 = nth_op(g, DRT_OP_SPLIT, 0), *sp3 = nth_op(g, DRT_OP_SPLIT, 1);
  assert_non_null(sp0);
  assert_non_null(sp3);
  const drt_value *sv = sp0->inputs[0], *r = sp3->inputs[0];
  assert_null(sv->view_of);
  for (int i = 0; i < 3; i++) {
    assert_ptr_equal(sp0->outputs[i]->view_of, sv);
    assert_int_equal(sp0->outputs[i]->view_offset, 512 * i);
    assert_int_equal(sp0->outputs[i]->mem_offset, sv->mem_offset + 512 * 4 * i);
  }
  assert_true(drt_node_is_view_only(sp0));
  /* Split on the last axis is strided: real outputs */
  assert_false(drt_node_is_view_only(sp3));
  for (int i = 0; i < 2; i++) assert_null(sp3->outputs[i]->view_of);
  /* Slices: 1:3 and 0:1 on axis 0 are views; the misaligned one of the flattened r is not */
  int views = 0, copies = 0;
  for (int i = 0; nth_op(g, DRT_OP_SLICE, i); i++) {
    const drt_value *y = nth_op(g, DRT_OP_SLICE, i)->outputs[0];
    if (y->view_of) {
      assert_ptr_equal(y->view_of, r);
      assert_true(y->view_offset == 512 || y->view_offset == 0);
      views++;
    } else {
      assert_int_equal(drt_shape_numel(&y->shape), 37);
      copies++;
    }
  }
  assert_int_equal(views, 2);
  assert_int_equal(copies, 1);
  const drt_node *ga = find_op(g, DRT_OP_GATHER);
  assert_non_null(ga);
  assert_ptr_equal(ga->outputs[0]->view_of, r);
  assert_int_equal(ga->outputs[0]->view_offset, 1024);
  /* the last Add reads r and a view of r as they die: it has storage of its own */
  const drt_node *add = g->nodes[g->num_nodes - 1]->inputs[0]->producer;
  assert_int_equal(add->op, DRT_OP_ADD);
  assert_ptr_equal(add->inputs[0], r);
  assert_true(add->outputs[0]->mem_offset != r->mem_offset);
  tg_free(&t);
}

static void test_region_geometry(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 3);
  drt_value *x = input(&t, "x", 3, (int64_t[]){1, 6, 64}, -1, 1);
  drt_value *r = op1(&t, DRT_OP_RELU, x);
  drt_value *parts[6];
  split(&t, r, 1, 6, parts); /* outer dims are 1: every chunk is dense */
  drt_value *y = slice1(&t, r, 2, 5, 1);
  drt_value *z = slice1(&t, r, 0, 32, 2); /* a column block: strided */
  drt_value *w = gather_scalar(&t, r, 4, 1);
  for (int i = 0; i < 6; i++) add_output(&t, parts[i]);
  add_output(&t, y);
  add_output(&t, z);
  add_output(&t, w);
  drt_pass_ctx ctx = {0};
  bool changed;
  DRT_ASSERT_OK(drt_pass_canonicalize(t.g, &ctx, &changed));
  int64_t off;
  const drt_node *sp = find_op(t.g, DRT_OP_SPLIT);
  for (int i = 0; i < 6; i++) {
    assert_true(drt_node_output_is_region(sp, i, &off));
    assert_int_equal(off, 64 * i);
  }
  assert_true(drt_node_output_is_region(nth_op(t.g, DRT_OP_SLICE, 0), 0, &off));
  assert_int_equal(off, 128);
  assert_false(drt_node_output_is_region(nth_op(t.g, DRT_OP_SLICE, 1), 0, &off));
  assert_true(drt_node_output_is_region(find_op(t.g, DRT_OP_GATHER), 0, &off));
  assert_int_equal(off, 256);
  /* alignment: 64 bytes in every storage type (floats may be 2 bytes) */
  assert_true(drt_view_offset_aligned(DRT_DTYPE_FLOAT32, 32));
  assert_false(drt_view_offset_aligned(DRT_DTYPE_FLOAT32, 16));
  assert_true(drt_view_offset_aligned(DRT_DTYPE_INT64, 8));
  assert_false(drt_view_offset_aligned(DRT_DTYPE_UINT8, 32));
  assert_false(drt_view_offset_aligned(DRT_DTYPE_FLOAT32, -32));
  /* graph outputs are not in the arena: no views for them even when planned */
  DRT_ASSERT_OK(drt_pass_memory_plan(t.g, &ctx, &changed));
  for (size_t i = 0; i < t.g->num_values; i++) assert_null(t.g->values[i]->view_of);
  tg_free(&t);
}

/* ---- plans ---------------------------------------------------------------------------------- */
static void *serialize(drt_graph *g, size_t *size) {
  drt_plan_contents c;
  memset(&c, 0, sizeof c);
  c.graph = g;
  c.targets = DRT_PLAN_TARGET_CPU;
  uint8_t in_roles[TG_MAX_IO] = {DRT_PLAN_ROLE_LATENT}, out_roles[TG_MAX_IO] = {0};
  c.input_roles = in_roles;
  c.output_roles = out_roles;
  void *bytes = NULL;
  DRT_ASSERT_OK(drt_plan_serialize(&c, &bytes, size));
  return bytes;
}

static uint32_t rd32(const uint8_t *p) { return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(uint8_t *p, uint32_t x) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(x >> (8 * i));
}

/* The MEMPLAN section's table entry */
static uint8_t *memplan_entry(uint8_t *b) {
  uint32_t n = rd32(b + 24);
  uint64_t table = rd64(b + 32);
  for (uint32_t i = 0; i < n; i++) {
    uint8_t *e = b + table + (uint64_t)i * DRT_PLAN_SECTION_ENTRY_SIZE;
    if (rd32(e) == DRT_PLAN_SECTION_MEMPLAN) return e;
  }
  return NULL;
}

static void fix_crc(uint8_t *b, uint8_t *entry) {
  wr32(entry + 24, drt_crc32(b + rd64(entry + 8), (size_t)rd64(entry + 16)));
}

static drt_status parse_copy(const uint8_t *bytes, size_t size, drt_plan_contents *c) {
  void *copy = malloc(size);
  assert_non_null(copy);
  memcpy(copy, bytes, size);
  return drt_plan_parse(copy, size, "tampered.plan", c); /* takes the buffer */
}

static void expect_corrupt(const uint8_t *bytes, size_t size, const char *needle) {
  drt_plan_contents c;
  drt_status st = parse_copy(bytes, size, &c);
  assert_non_null(st);
  assert_int_equal(drt_status_code_of(st), DRT_STATUS_CORRUPT);
  if (!strstr(drt_status_message(st), needle)) print_error("message: %s\n", drt_status_message(st));
  assert_non_null(strstr(drt_status_message(st), needle));
  drt_status_free(st);
}

static void test_plan_keeps_and_checks_views(void **state) {
  (void)state;
  tg t;
  drt_value *chunks[3], *strided[2];
  build(&t, chunks, strided);
  drt_pass_ctx ctx = {0};
  bool changed;
  DRT_ASSERT_OK(drt_pass_canonicalize(t.g, &ctx, &changed));
  DRT_ASSERT_OK(drt_pass_memory_plan(t.g, &ctx, &changed));
  size_t nv = 0;
  for (size_t i = 0; i < t.g->num_values; i++) nv += t.g->values[i]->view_of != NULL;
  assert_true(nv >= 6);
  size_t size;
  uint8_t *bytes = serialize(t.g, &size);
  assert_int_equal(rd32(bytes + 8), DRT_PLAN_FORMAT_VERSION);
  /* round trip: the same views, and the same results as the builder's graph */
  drt_plan_contents c;
  DRT_ASSERT_OK(parse_copy(bytes, size, &c));
  size_t nv2 = 0;
  for (size_t i = 0; i < c.graph->num_values; i++) {
    const drt_value *v = c.graph->values[i];
    if (!v->view_of) continue;
    nv2++;
    const drt_value *o = drt_graph_find_value(t.g, v->name);
    assert_non_null(o);
    assert_non_null(o->view_of);
    assert_string_equal(o->view_of->name, v->view_of->name);
    assert_int_equal(o->view_offset, v->view_offset);
    assert_int_equal(o->mem_offset, v->mem_offset);
  }
  assert_int_equal(nv2, nv);
  drt_tensor a[TG_MAX_IO], b[TG_MAX_IO];
  run(&t, a);
  drt_cpu_executor *e;
  DRT_ASSERT_OK(drt_cpu_executor_create(c.graph, NULL, &e));
  DRT_ASSERT_OK(drt_cpu_executor_run(e, t.in, b));
  drt_cpu_executor_destroy(e);
  for (size_t i = 0; i < t.g->num_outputs; i++) {
    assert_memory_equal(a[i].data, b[i].data, drt_tensor_nbytes(&a[i]));
    free(a[i].data);
    free(b[i].data);
  }
  drt_plan_contents_free(&c);

  /* tampering with the view list: the last entry is (u32 value, u32 root, i64 offset) */
  uint8_t *m = malloc(size);
  assert_non_null(m);
  memcpy(m, bytes, size);
  uint8_t *entry = memplan_entry(m);
  assert_non_null(entry);
  uint8_t *sec = m + rd64(entry + 8);
  uint64_t ssize = rd64(entry + 16);
  uint8_t *lastv = sec + ssize - 16;
  uint64_t off = rd64(lastv + 8);
  wr32(lastv + 8, (uint32_t)(off + 32)); /* aligned, but not the producer's region */
  fix_crc(m, entry);
  expect_corrupt(m, size, "does not give");
  memcpy(m, bytes, size);
  wr32(lastv + 4, rd32(lastv)); /* its own root */
  fix_crc(m, entry);
  expect_corrupt(m, size, "names no value");
  memcpy(m, bytes, size);
  wr32(lastv, 100000); /* no such value */
  fix_crc(m, entry);
  expect_corrupt(m, size, "names no value");
  memcpy(m, bytes, size);
  wr32(sec + ssize - 16 * nv - 4, (uint32_t)nv + 1); /* count beyond the entries */
  fix_crc(m, entry);
  expect_corrupt(m, size, "malformed view list");
  /* the loader reads format versions 1 (written before views; its MEMPLAN ends after the
     offsets) and 2, and refuses newer ones */
  memcpy(m, bytes, size);
  wr32(m + 8, 1);
  wr32(m + 48, drt_crc32(m, 48));
  DRT_ASSERT_OK(parse_copy(m, size, &c));
  drt_plan_contents_free(&c);
  wr32(m + 8, DRT_PLAN_FORMAT_VERSION + 1);
  wr32(m + 48, drt_crc32(m, 48));
  drt_status st = parse_copy(m, size, &c);
  assert_int_equal(drt_status_code_of(st), DRT_STATUS_UNSUPPORTED);
  drt_status_free(st);
  free(m);
  free(bytes);
  tg_free(&t);
}

/* A Split whose chunk 2 is a graph output keeps running for it while chunks 0 and 1 are views:
 * the views must survive the node (debug builds poison the outputs a node writes). */
static void test_split_with_some_views(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 11);
  drt_value *x = input(&t, "x", 2, (int64_t[]){3, 32}, -2, 2);
  drt_value *s = op2(&t, DRT_OP_ADD, x, scalar(&t, 0.25f)), *c[3];
  split(&t, s, 0, 3, c);
  add_output(&t, op2(&t, DRT_OP_SUB, c[0], op1(&t, DRT_OP_NEG, c[1])));
  add_output(&t, c[2]);
  tg_pass_compare(&t, noop_pass, true, 0.0, NULL);
  const drt_node *sp = find_op(t.g, DRT_OP_SPLIT);
  assert_non_null(sp);
  assert_false(drt_node_is_view_only(sp));
  assert_non_null(sp->outputs[1]->view_of);
  assert_int_equal(sp->outputs[1]->view_offset, 32);
  assert_null(sp->outputs[2]->view_of);
  tg_free(&t);
}

/* Views of a graph input: a Split chunk and a reshape of x share x's storage (mem_offset -1,
 * view_of x) and give the unplanned results; the plan keeps them, and a plan that makes a graph
 * output such a view is corrupt. */
static void test_views_of_graph_inputs(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 12);
  drt_value *x = input(&t, "x", 2, (int64_t[]){4, 32}, -2, 2), *c[2];
  split(&t, x, 0, 2, c);
  drt_value *flat = reshape(&t, x, 1, (int64_t[]){128});
  add_output(&t, op2(&t, DRT_OP_SUB, c[0], op1(&t, DRT_OP_NEG, c[1])));
  add_output(&t, op1(&t, DRT_OP_RELU, flat));
  tg_pass_compare(&t, noop_pass, true, 0.0, NULL);
  assert_ptr_equal(c[1]->view_of, x);
  assert_int_equal(c[1]->view_offset, 64);
  assert_int_equal(c[1]->mem_offset, -1);
  assert_ptr_equal(flat->view_of, x);
  assert_true(drt_node_is_view_only(c[0]->producer));
  size_t size;
  uint8_t *bytes = serialize(t.g, &size);
  drt_plan_contents pc;
  DRT_ASSERT_OK(parse_copy(bytes, size, &pc));
  const drt_value *v = drt_graph_find_value(pc.graph, c[1]->name);
  assert_non_null(v);
  assert_string_equal(v->view_of->name, "x");
  drt_plan_contents_free(&pc);
  /* point the last view entry at graph output 0 instead */
  uint32_t oi = 0;
  while (oi < t.g->num_values && t.g->values[oi] != t.g->outputs[0]) oi++;
  uint8_t *entry = memplan_entry(bytes);
  assert_non_null(entry);
  uint8_t *lastv = bytes + rd64(entry + 8) + rd64(entry + 16) - 16;
  wr32(lastv, oi);
  fix_crc(bytes, entry);
  expect_corrupt(bytes, size, "a view");
  free(bytes);
  tg_free(&t);
}

/* Graphs without a memory plan (hoisted stages): reshapes and dense Split/Slice regions alias
 * their root; a strided Split chunk and a graph output do not. */
static void test_unplanned_aliases(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 13);
  drt_value *x = input(&t, "x", 3, (int64_t[]){2, 4, 16}, -2, 2);
  drt_value *s = op2(&t, DRT_OP_ADD, x, scalar(&t, 1.0f)), *c[2], *d[2];
  drt_value *r = reshape(&t, s, 2, (int64_t[]){8, 16});
  split(&t, r, 0, 2, c);
  split(&t, s, 2, 2, d);
  add_output(&t, op1(&t, DRT_OP_RELU, c[1]));
  add_output(&t, op1(&t, DRT_OP_NEG, d[0]));
  add_output(&t, c[0]);
  bool changed;
  drt_pass_ctx ctx = {0};
  DRT_ASSERT_OK(drt_pass_canonicalize(t.g, &ctx, &changed));
  assert_false(t.g->mem_planned);
  const drt_value *root;
  int64_t off;
  assert_true(drt_unplanned_alias(r, &root, &off));
  assert_ptr_equal(root, s);
  assert_int_equal(off, 0);
  assert_true(drt_unplanned_alias(c[1], &root, &off)); /* through the reshape to s */
  assert_ptr_equal(root, s);
  assert_int_equal(off, 64);
  assert_false(drt_unplanned_alias(c[0], &root, &off)); /* a graph output */
  assert_false(drt_unplanned_alias(d[0], &root, &off)); /* strided */
  assert_false(drt_unplanned_alias(s, &root, &off));
  assert_false(drt_node_is_unplanned_alias(c[0]->producer));
  assert_true(drt_node_is_unplanned_alias(r->producer));
  tg_free(&t);
}

/* In place: an elementwise output takes the block of an input of its dtype and shape that dies
 * there, but not when it is tiny (< 4 KiB): a per-sample scalar kept in float32 by the CUDA
 * backend under fp16/bf16 must not be overwritten by a 16-bit output while it is being read. */
static void test_in_place_only_for_large_values(void **state) {
  (void)state;
  tg t;
  tg_init(&t, 7);
  drt_value *a = input(&t, "a", 4, (int64_t[]){8, 1, 1, 1}, -2, 2); /* 32 bytes */
  drt_value *b = input(&t, "b", 2, (int64_t[]){32, 64}, -2, 2);    /* 8 KiB */
  drt_value *a1 = op2(&t, DRT_OP_MUL, a, a), *b1 = op2(&t, DRT_OP_MUL, b, b);
  drt_value *a2 = op1(&t, DRT_OP_NEG, a1), *b2 = op1(&t, DRT_OP_NEG, b1);
  add_output(&t, op2(&t, DRT_OP_MUL, a2, a));
  add_output(&t, op2(&t, DRT_OP_MUL, b2, b));
  tg_pass_compare(&t, noop_pass, true, 0.0, NULL); /* canonicalize, plan, same results */
  assert_true(t.g->mem_planned);
  assert_true(a1->mem_offset >= 0 && a2->mem_offset >= 0 && b1->mem_offset >= 0 && b2->mem_offset >= 0);
  assert_int_equal(b2->mem_offset, b1->mem_offset);
  assert_true(a2->mem_offset != a1->mem_offset);
  tg_free(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_views_give_the_unplanned_results),
      cmocka_unit_test(test_region_geometry),
      cmocka_unit_test(test_plan_keeps_and_checks_views),
      cmocka_unit_test(test_in_place_only_for_large_values),
      cmocka_unit_test(test_views_of_graph_inputs),
      cmocka_unit_test(test_unplanned_aliases),
      cmocka_unit_test(test_split_with_some_views),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
