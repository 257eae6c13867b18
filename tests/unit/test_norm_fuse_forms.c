/* Pass norm-fuse on the RMSNorm / LayerNorm forms exporters write out as ops: every tail
 * (Div by Sqrt, Mul by Reciprocal(Sqrt) or Div(1, Sqrt), Mul by Pow -0.5, Sqrt as Pow 0.5),
 * square as Pow 2 or Mul(x, x), eps Add in either operand order or absent, axes as attribute
 * or input, keepdims=0 with an Unsqueeze / Reshape back, with and without the weight Mul, and
 * Casts to float32 and back around a float16 norm. Each graph is canonicalized and run on the
 * CPU executor, fused, checked for structure (no Pow / ReduceMean / Sqrt left, one drt.Norm
 * with the right kind, axis, epsilon and scale) and run again: the outputs must agree with the
 * unfused graph on seeded random data. Declined forms stay unfused and log the reason. */
#include "testutil.h"
#include "graph_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/canonicalize.h"
#include "passes/norm_fuse.h"
#include "runtime/cpu/executor.h"

/* op with at most two operands (the norm forms need no more) */
static drt_value *opn(tg *t, drt_op o, int n, drt_value *a, drt_value *b) { return op(t, o, n, a, b, NULL); }

static drt_value *cast(tg *t, drt_value *x, drt_dtype to) {
  drt_value *y = opn(t, DRT_OP_CAST, 1, x, NULL);
  attr_i(t, y, "to", (int64_t)to);
  return y;
}

/* ReduceMean over the last `naxes` axes of a rank-`rank` value: axes as attribute (opset < 18)
 * or as input (opset >= 18); keepdims as given. */
static drt_value *mean(tg *t, drt_value *x, int rank, int naxes, bool keepdims) {
  int64_t axes[2] = {rank - naxes, rank - 1};
  if (naxes == 1) axes[0] = -1;
  drt_value *m;
  if (t->g->opset >= 18) {
    m = opn(t, DRT_OP_REDUCE_MEAN, 2, x, cst_i64(t, naxes, axes));
  } else {
    m = opn(t, DRT_OP_REDUCE_MEAN, 1, x, NULL);
    attr_ints(t, m, "axes", naxes, axes);
  }
  if (!keepdims) attr_i(t, m, "keepdims", 0);
  return m;
}

/* keepdims=0 statistic of shape dims[0..rank-naxes) back to rank dims: Unsqueeze (opset 13+: axes
 * input) or Reshape. */
static drt_value *restore(tg *t, drt_value *v, int rank, const int64_t *dims, int naxes, bool use_reshape) {
  if (use_reshape) {
    int64_t kd[DRT_MAX_RANK];
    for (int d = 0; d < rank; d++) kd[d] = d < rank - naxes ? dims[d] : 1;
    return opn(t, DRT_OP_RESHAPE, 2, v, cst_i64(t, rank, kd));
  }
  int64_t ax[2] = {rank - naxes, rank - 1};
  return opn(t, DRT_OP_UNSQUEEZE, 2, v, cst_i64(t, naxes, ax));
}

/* The decline messages of the last pass run (INFO log). */
static char g_log[8192];
static void log_capture(drt_log_level level, const char *msg, void *user) {
  (void)level;
  (void)user;
  size_t n = strlen(g_log);
  if (n + strlen(msg) + 2 < sizeof g_log) snprintf(g_log + n, sizeof g_log - n, "%s\n", msg);
  if (getenv("DRT_TEST_VERBOSE")) fprintf(stderr, "%s\n", msg);
}

/* Canonicalizes, runs, applies norm-fuse, verifies, runs again; every output (float32) must agree
 * within tol (relative L2). Returns the number of fused norms. */
static int64_t fuse_and_compare(tg *t, double tol) {
  drt_pass_stats stats;
  g_log[0] = 0;
  bool changed = tg_pass_compare(t, drt_pass_norm_fuse, false, tol, &stats);
  assert_true(changed == (stats.fused_norm > 0));
  for (size_t i = 0; i < t->g->num_outputs; i++) assert_int_equal(t->g->outputs[i]->dtype, DRT_DTYPE_FLOAT32);
  return stats.fused_norm;
}

/* The fused graph holds nothing of the written-out norm. */
static void assert_fully_fused(const drt_graph *g) {
  assert_int_equal(count_op(g, DRT_OP_FUSED_NORM), 1);
  static const drt_op gone[] = {DRT_OP_POW, DRT_OP_REDUCE_MEAN, DRT_OP_SQRT, DRT_OP_RECIPROCAL, DRT_OP_DIV,
                                DRT_OP_MUL, DRT_OP_ADD, DRT_OP_SUB, DRT_OP_UNSQUEEZE, DRT_OP_RESHAPE};
  for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++) {
    if (count_op(g, gone[i])) print_error("%s left after fusion\n", drt_op_name(gone[i]));
    assert_int_equal(count_op(g, gone[i]), 0);
  }
}

/* ================================ RMSNorm ================================================== */

enum { TAIL_DIV_SQRT, TAIL_MUL_RECIP_SQRT, TAIL_MUL_ONE_OVER_SQRT, TAIL_MUL_POW_M05, TAIL_DIV_POW_05,
       TAIL_MUL_RECIP_POW_05, TAIL_COUNT };

/* 1 / sqrt(s) or sqrt(s) in the given tail form, applied to num: y = num / sqrt(s). */
static drt_value *rms_tail(tg *t, int tail, drt_value *num, drt_value *s) {
  switch (tail) {
    case TAIL_DIV_SQRT: return opn(t, DRT_OP_DIV, 2, num, opn(t, DRT_OP_SQRT, 1, s, NULL));
    case TAIL_MUL_RECIP_SQRT:
      return opn(t, DRT_OP_MUL, 2, opn(t, DRT_OP_RECIPROCAL, 1, opn(t, DRT_OP_SQRT, 1, s, NULL), NULL), num);
    case TAIL_MUL_ONE_OVER_SQRT:
      return opn(t, DRT_OP_MUL, 2, num, opn(t, DRT_OP_DIV, 2, scalar(t, 1.0f), opn(t, DRT_OP_SQRT, 1, s, NULL)));
    case TAIL_MUL_POW_M05: return opn(t, DRT_OP_MUL, 2, opn(t, DRT_OP_POW, 2, s, scalar(t, -0.5f)), num);
    case TAIL_DIV_POW_05: return opn(t, DRT_OP_DIV, 2, num, opn(t, DRT_OP_POW, 2, s, scalar(t, 0.5f)));
    default:
      return opn(t, DRT_OP_MUL, 2, num,
                opn(t, DRT_OP_RECIPROCAL, 1, opn(t, DRT_OP_POW, 2, s, scalar(t, 0.5f)), NULL));
  }
}

/* Every tail x {square as Pow / Mul, eps Add operand order or no eps, axes attribute / input,
 * keepdims 1 / 0 (+ Unsqueeze or Reshape, at the mean or after the eps), weight or none, one or
 * two reduced axes}. */
static void test_rms_forms(void **state) {
  (void)state;
  int cases = 0;
  for (int tail = 0; tail < TAIL_COUNT; tail++) {
    for (int variant = 0; variant < 8; variant++) {
      const bool mul_square = variant & 1, eps_first = variant & 2, axes_input = variant & 4;
      const bool no_eps = (tail + variant) % 5 == 4;
      const int keep = (tail + variant) % 3;  /* 0: keepdims, 1: keepdims=0 + Unsqueeze, 2: + Reshape */
      const bool restore_late = (variant >> 1) & 1; /* give the axes back after the eps Add */
      const bool weight = (tail + variant) % 4 != 3;
      const int naxes = (tail + variant) % 7 == 6 ? 2 : 1;
      tg t;
      tg_init_opset(&t, 100 + (uint64_t)(tail * 8 + variant), axes_input ? 18 : 13);
      const int64_t dims[3] = {2, 5, 12};
      drt_value *x = input(&t, "x", 3, dims, -2, 2);
      drt_value *sq = mul_square ? opn(&t, DRT_OP_MUL, 2, x, x) : opn(&t, DRT_OP_POW, 2, x, scalar(&t, 2.0f));
      drt_value *ms = mean(&t, sq, 3, naxes, keep == 0);
      if (keep && !restore_late) ms = restore(&t, ms, 3, dims, naxes, keep == 2);
      const float eps = no_eps ? 0.0f : 1e-5f * (float)(1 + tail);
      if (!no_eps)
        ms = eps_first ? opn(&t, DRT_OP_ADD, 2, scalar(&t, eps), ms) : opn(&t, DRT_OP_ADD, 2, ms, scalar(&t, eps));
      if (keep && restore_late) ms = restore(&t, ms, 3, dims, naxes, keep == 2);
      drt_value *y = rms_tail(&t, tail, x, ms);
      drt_value *w = NULL;
      if (weight) {
        w = cst_rand(&t, 1, (int64_t[]){dims[2]}, 0.5f, 1.5f);
        y = (variant & 1) ? opn(&t, DRT_OP_MUL, 2, w, y) : opn(&t, DRT_OP_MUL, 2, y, w);
      }
      DRT_ASSERT_OK(drt_graph_add_output(t.g, y));
      int64_t n = fuse_and_compare(&t, 1e-5);
      if (n != 1) print_error("tail %d variant %d: %s", tail, variant, g_log);
      assert_int_equal(n, 1);
      assert_fully_fused(t.g);
      assert_int_equal(t.g->num_nodes, 1);
      drt_node *f = find_op(t.g, DRT_OP_FUSED_NORM);
      assert_string_equal(drt_node_attr_string(f, "kind", ""), "rms");
      assert_int_equal(drt_node_attr_int(f, "axis", -1), 3 - naxes);
      assert_true(fabsf(drt_node_attr_float(f, "epsilon", -1.0f) - eps) <= 1e-12f);
      assert_ptr_equal(drt_node_input(f, 0), x);
      if (weight) assert_ptr_equal(drt_node_input(f, 1), w);
      else assert_int_equal(f->num_inputs, 1);
      tg_free(&t);
      cases++;
    }
  }
  assert_int_equal(cases, TAIL_COUNT * 8);
}

/* float16 activations: x16 -> Cast f32 -> square -> mean -> eps -> rsqrt -> Mul(Cast f32 (the
 * same or a second Cast node), .) -> Cast f16 -> Mul w16, as torch exports HF / diffusers
 * RMSNorm at half precision; also the form without the cast back (the norm then stays in
 * float32 on the up-cast value). The fused norm reads x16 directly. */
static void test_rms_cast_fp16(void **state) {
  (void)state;
  for (int form = 0; form < 4; form++) {
    const bool two_casts = form & 1, cast_back = form != 2;
    const bool weight = form != 3; /* diffusers RMSNorm without weight: .to(input_dtype) only */
    tg t;
    tg_init_opset(&t, 200 + (uint64_t)form, 17);
    const int64_t dims[3] = {2, 7, 16};
    drt_value *xin = input(&t, "x", 3, dims, -3, 3);
    drt_value *x16 = cast(&t, xin, DRT_DTYPE_FLOAT16);
    drt_value *xf = cast(&t, x16, DRT_DTYPE_FLOAT32);
    drt_value *ms = mean(&t, opn(&t, DRT_OP_POW, 2, xf, scalar(&t, 2.0f)), 3, 1, true);
    drt_value *sd = opn(&t, DRT_OP_SQRT, 1, opn(&t, DRT_OP_ADD, 2, ms, scalar(&t, 1e-6f)), NULL);
    drt_value *r = opn(&t, DRT_OP_RECIPROCAL, 1, sd, NULL);
    drt_value *num = two_casts ? cast(&t, x16, DRT_DTYPE_FLOAT32) : xf;
    drt_value *y = opn(&t, DRT_OP_MUL, 2, num, r);
    drt_value *w = NULL;
    if (cast_back) {
      y = cast(&t, y, DRT_DTYPE_FLOAT16);
      if (weight) {
        w = cast(&t, cst_rand(&t, 1, (int64_t[]){dims[2]}, 0.5f, 1.5f), DRT_DTYPE_FLOAT16); /* folds */
        y = opn(&t, DRT_OP_MUL, 2, y, w);
      }
      y = cast(&t, y, DRT_DTYPE_FLOAT32);
    }
    DRT_ASSERT_OK(drt_graph_add_output(t.g, y));
    /* float16 storage: one rounding of the result either way, at most an ulp apart */
    int64_t n = fuse_and_compare(&t, cast_back ? 2e-3 : 1e-5);
    if (n != 1) print_error("form %d: %s", form, g_log);
    assert_int_equal(n, 1);
    assert_int_equal(count_op(t.g, DRT_OP_FUSED_NORM), 1);
    assert_int_equal(count_op(t.g, DRT_OP_POW) + count_op(t.g, DRT_OP_REDUCE_MEAN) + count_op(t.g, DRT_OP_SQRT) +
                         count_op(t.g, DRT_OP_RECIPROCAL) + count_op(t.g, DRT_OP_MUL) + count_op(t.g, DRT_OP_ADD),
                     0);
    drt_node *f = find_op(t.g, DRT_OP_FUSED_NORM);
    if (cast_back) {
      assert_ptr_equal(drt_node_input(f, 0), x16); /* the norm reads float16 directly */
      assert_int_equal(f->outputs[0]->dtype, DRT_DTYPE_FLOAT16);
      if (weight) {
        assert_non_null(drt_node_input(f, 1));
        assert_int_equal(drt_node_input(f, 1)->dtype, DRT_DTYPE_FLOAT16);
      } else {
        assert_int_equal(f->num_inputs, 1);
      }
      assert_int_equal(count_op(t.g, DRT_OP_CAST), 2); /* the graph's own x -> f16 and the output -> f32 */
    } else {
      assert_int_equal(f->outputs[0]->dtype, DRT_DTYPE_FLOAT32);
      assert_int_equal(drt_node_input(f, 0)->dtype, DRT_DTYPE_FLOAT32);
    }
    tg_free(&t);
  }
}

/* ================================ LayerNorm ================================================ */

/* mean -> Sub -> square -> mean -> eps -> (tail) -> Mul g -> Add b, in the RMS tails, with the
 * first mean keepdims=0 + Unsqueeze, Mul(d, d), axes input, Casts from float16. */
static void test_layer_forms(void **state) {
  (void)state;
  for (int form = 0; form < 6; form++) {
    const int tail = form;
    const bool keep0 = form & 1, mul_square = form & 2, fp16 = form == 4 || form == 5;
    tg t;
    tg_init_opset(&t, 300 + (uint64_t)form, form >= 3 ? 18 : 13);
    const int64_t dims[3] = {3, 4, 20};
    drt_value *xin = input(&t, "x", 3, dims, -1, 4);
    drt_value *x16 = fp16 ? cast(&t, xin, DRT_DTYPE_FLOAT16) : NULL;
    drt_value *x = fp16 ? cast(&t, x16, DRT_DTYPE_FLOAT32) : xin;
    drt_value *m = mean(&t, x, 3, 1, !keep0);
    if (keep0) m = restore(&t, m, 3, dims, 1, false);
    drt_value *d = opn(&t, DRT_OP_SUB, 2, fp16 && form == 5 ? cast(&t, x16, DRT_DTYPE_FLOAT32) : x, m);
    drt_value *sq = mul_square ? opn(&t, DRT_OP_MUL, 2, d, d) : opn(&t, DRT_OP_POW, 2, d, scalar(&t, 2.0f));
    drt_value *var = opn(&t, DRT_OP_ADD, 2, mean(&t, sq, 3, 1, true), scalar(&t, 1e-5f));
    drt_value *y = rms_tail(&t, tail, d, var);
    if (fp16) y = cast(&t, y, DRT_DTYPE_FLOAT16);
    drt_value *g = cst_rand(&t, 1, (int64_t[]){dims[2]}, 0.5f, 1.5f), *b = cst_rand(&t, 1, (int64_t[]){dims[2]}, -1, 1);
    if (fp16) {
      g = cast(&t, g, DRT_DTYPE_FLOAT16);
      b = cast(&t, b, DRT_DTYPE_FLOAT16);
    }
    y = opn(&t, DRT_OP_ADD, 2, opn(&t, DRT_OP_MUL, 2, y, g), b);
    if (fp16) y = cast(&t, y, DRT_DTYPE_FLOAT32);
    DRT_ASSERT_OK(drt_graph_add_output(t.g, y));
    int64_t n = fuse_and_compare(&t, fp16 ? 2e-3 : 1e-5);
    if (n != 1) print_error("form %d: %s", form, g_log);
    assert_int_equal(n, 1);
    drt_node *f = find_op(t.g, DRT_OP_FUSED_NORM);
    assert_non_null(f);
    assert_string_equal(drt_node_attr_string(f, "kind", ""), "layer");
    assert_int_equal(drt_node_attr_int(f, "axis", -1), 2);
    assert_non_null(drt_node_input(f, 1));
    assert_non_null(drt_node_input(f, 2));
    if (fp16) {
      assert_ptr_equal(drt_node_input(f, 0), x16);
      assert_int_equal(count_op(t.g, DRT_OP_CAST), 2);
      assert_int_equal(t.g->num_nodes, 3);
    } else {
      assert_fully_fused(t.g);
      assert_int_equal(t.g->num_nodes, 1);
    }
    tg_free(&t);
  }
}

/* ================================ declined ================================================= */

/* Near misses stay as they are (and still compute the same), each with its logged reason. */
static void test_declined(void **state) {
  (void)state;
  static const char *const why[] = {
      "epsilon is added after the square root",      /* x / (sqrt(mean x^2) + eps) */
      "not a mean over trailing axes",                /* mean over a middle axis */
      "not of a scalar constant",                     /* eps is a graph input */
      "the mean (+ eps) has more than one use",       /* the statistic is also an output */
      "the square root does not divide the data",     /* z / sqrt(mean(x^2)) */
      "not followed by Sqrt, Pow 0.5 or Pow -0.5",    /* Pow(., -1) */
      "the reciprocal square root does not multiply", /* z * rsqrt(mean(x^2)) */
      "epsilon is negative",
  };
  const int ncase = (int)(sizeof why / sizeof why[0]);
  for (int kase = 0; kase < ncase; kase++) {
    tg t;
    tg_init_opset(&t, 400 + (uint64_t)kase, 13);
    const int64_t dims[3] = {2, 6, 8};
    drt_value *x = input(&t, "x", 3, dims, -2, 2);
    drt_value *z = kase == 4 || kase == 6 ? input(&t, "z", 3, dims, -2, 2) : x;
    drt_value *ms = opn(&t, DRT_OP_REDUCE_MEAN, 1, opn(&t, DRT_OP_POW, 2, x, scalar(&t, 2.0f)), NULL);
    attr_ints(&t, ms, "axes", 1, (int64_t[]){kase == 1 ? 1 : -1});
    drt_value *y;
    if (kase == 0) {
      y = opn(&t, DRT_OP_DIV, 2, x, opn(&t, DRT_OP_ADD, 2, opn(&t, DRT_OP_SQRT, 1, ms, NULL), scalar(&t, 1e-5f)));
    } else if (kase == 5) {
      drt_value *s = opn(&t, DRT_OP_ADD, 2, ms, scalar(&t, 1e-5f));
      y = opn(&t, DRT_OP_MUL, 2, x, opn(&t, DRT_OP_POW, 2, s, scalar(&t, -1.0f)));
    } else if (kase == 6) {
      y = rms_tail(&t, TAIL_MUL_POW_M05, z, opn(&t, DRT_OP_ADD, 2, ms, scalar(&t, 1e-5f)));
    } else {
      drt_value *e = kase == 2 ? input(&t, "eps", 0, NULL, 1e-6f, 1e-5f) : scalar(&t, kase == 7 ? -1e-3f : 1e-5f);
      drt_value *s = opn(&t, DRT_OP_ADD, 2, ms, e);
      y = rms_tail(&t, TAIL_DIV_SQRT, z, s);
      if (kase == 3) DRT_ASSERT_OK(drt_graph_add_output(t.g, s));
    }
    DRT_ASSERT_OK(drt_graph_add_output(t.g, y));
    assert_int_equal(fuse_and_compare(&t, 1e-6), 0);
    assert_true(t.g->num_nodes >= 4);
    assert_int_equal(count_op(t.g, DRT_OP_FUSED_NORM), 0);
    assert_int_equal(count_op(t.g, DRT_OP_REDUCE_MEAN), 1);
    assert_int_equal(count_op(t.g, DRT_OP_POW), kase == 5 || kase == 6 ? 2 : 1);
    const char *want = why[kase];
    bool found = strstr(g_log, want) != NULL;
    if (!found) print_error("case %d: expected '%s' in the log:\n%s", kase, want ? want : "", g_log);
    assert_true(found);
    tg_free(&t);
  }
}

int main(void) {
  drt_log_set(log_capture, NULL, DRT_LOG_INFO);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rms_forms),
      cmocka_unit_test(test_rms_cast_fp16),
      cmocka_unit_test(test_layer_forms),
      cmocka_unit_test(test_declined),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
