/* Concurrency: one plan shared by many sessions on several threads gives bit-identical outputs.
 *
 * The plan (MatMul/Add/Relu/MatMul/Softmax on one input, Conv/Sigmoid on another, compiled by the
 * whole pass pipeline, so fused kernels and the memory-planned arena are in it) is loaded once; 4 pthreads each create, run and destroy sessions over it with 1, 2 or 3 CPU threads
 * per session (so the per-session thread pools and the BLAS run side by side), and every
 * output must equal, byte for byte, the one a single session computed before the threads
 * started. Run under ThreadSanitizer with a -DDRT_SANITIZE=thread build (clang). */
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distilrt.h"
#include "passes/pipeline.h"
#include "runtime/plan.h"

#define NUM_THREADS 4
#define SESSIONS_PER_THREAD 6
#define RUNS_PER_SESSION 2

enum { M = 128, K = 96, H = 256, N = 64 }; /* x: MxK, W1: KxH, W2: HxN */
enum { CI = 8, CO = 16, S = 32 }; /* xi: 1xCIxSxS, conv weight COxCIx3x3 */

static float g_x[M * K], g_xi[CI * S * S];
#define MAX_SESSION_THREADS 3
/* reference outputs per session thread count (1..3), computed before the threads start: BLAS
 * and the thread pool may split a reduction differently for another thread count */
static float g_ref_y[MAX_SESSION_THREADS + 1][M * N], g_ref_z[MAX_SESSION_THREADS + 1][CO * S * S];
static drt_plan *g_plan;

static drt_value *node1(drt_graph *g, drt_op op, const char *name, drt_value *a, drt_value *b) {
  drt_value *out = drt_graph_add_value(g, name, DRT_DTYPE_UNDEFINED, NULL);
  drt_value *in[2] = {a, b};
  if (!out || drt_graph_add_node(g, op, name, in, b ? 2 : 1, &out, 1, NULL)) return NULL;
  return out;
}

static drt_value *add_const(drt_graph *g, const char *name, drt_shape s, drt_test_rng *r) {
  int64_t n = drt_shape_numel(&s);
  float *data = malloc((size_t)n * sizeof(float));
  drt_test_fill(r, data, (size_t)n, -0.5f, 0.5f);
  drt_value *v = NULL;
  drt_status st = drt_graph_add_const(g, name, DRT_DTYPE_FLOAT32, &s, data, &v);
  free(data);
  if (st) {
    drt_status_free(st);
    return NULL;
  }
  return v;
}

/* y = Softmax(Relu(x @ W1 + b1) @ W2); z = Sigmoid(Conv(xi, Wc, bc, pads 1)) */
static void *build_plan_bytes(size_t *size) {
  drt_graph *g;
  if (drt_graph_create(&g)) return NULL;
  g->opset = 17;
  drt_test_rng r = {42};
  drt_shape sx = drt_test_shape(2, (int64_t[]){M, K}), sxi = drt_test_shape(4, (int64_t[]){1, CI, S, S});
  drt_value *x = drt_graph_add_value(g, "x", DRT_DTYPE_FLOAT32, &sx);
  drt_value *xi = drt_graph_add_value(g, "xi", DRT_DTYPE_FLOAT32, &sxi);
  assert_non_null(x);
  assert_non_null(xi);
  DRT_ASSERT_OK(drt_graph_add_input(g, x));
  DRT_ASSERT_OK(drt_graph_add_input(g, xi));
  drt_value *w1 = add_const(g, "W1", drt_test_shape(2, (int64_t[]){K, H}), &r);
  drt_value *b1 = add_const(g, "b1", drt_test_shape(1, (int64_t[]){H}), &r);
  drt_value *w2 = add_const(g, "W2", drt_test_shape(2, (int64_t[]){H, N}), &r);
  drt_value *wc = add_const(g, "Wc", drt_test_shape(4, (int64_t[]){CO, CI, 3, 3}), &r);
  drt_value *bc = add_const(g, "bc", drt_test_shape(1, (int64_t[]){CO}), &r);
  assert_true(w1 && b1 && w2 && wc && bc);
  drt_value *m1 = node1(g, DRT_OP_MATMUL, "m1", x, w1);
  drt_value *a1 = node1(g, DRT_OP_ADD, "a1", m1, b1);
  drt_value *r1 = node1(g, DRT_OP_RELU, "r1", a1, NULL);
  drt_value *m2 = node1(g, DRT_OP_MATMUL, "m2", r1, w2);
  drt_value *y = node1(g, DRT_OP_SOFTMAX, "y", m2, NULL);
  drt_value *cv = drt_graph_add_value(g, "cv", DRT_DTYPE_UNDEFINED, NULL);
  drt_value *cin[3] = {xi, wc, bc};
  drt_node *conv = NULL;
  assert_true(y && cv);
  DRT_ASSERT_OK(drt_graph_add_node(g, DRT_OP_CONV, "conv", cin, 3, &cv, 1, &conv));
  int64_t pads[4] = {1, 1, 1, 1};
  drt_attr pa;
  memset(&pa, 0, sizeof pa);
  pa.name = "pads";
  pa.type = DRT_ATTR_INTS;
  pa.count = 4;
  pa.ints = pads;
  DRT_ASSERT_OK(drt_node_add_attr(g, conv, &pa));
  drt_value *z = node1(g, DRT_OP_SIGMOID, "z", cv, NULL);
  assert_non_null(z);
  DRT_ASSERT_OK(drt_graph_add_output(g, y));
  DRT_ASSERT_OK(drt_graph_add_output(g, z));
  drt_pass_ctx pc = {0};
  DRT_ASSERT_OK(drt_pipeline_run(g, &pc, NULL)); /* as drt compile: fusions, memory plan */
  assert_true(g->mem_planned);

  drt_plan_contents c;
  memset(&c, 0, sizeof c);
  c.graph = g;
  c.targets = DRT_PLAN_TARGET_CPU;
  uint8_t in_roles[2] = {0, 0}, out_roles[2] = {0, 0};
  c.input_roles = in_roles;
  c.output_roles = out_roles;
  void *bytes = NULL;
  DRT_ASSERT_OK(drt_plan_serialize(&c, &bytes, size));
  drt_graph_destroy(g);
  return bytes;
}

/* One session: set inputs, run, copy outputs. Returns a status code; fills y and z. */
static drt_status_code run_session(int threads, int runs, float *y, float *z, char *err, size_t err_size) {
  drt_session_options o;
  drt_session_options_init(&o);
  o.backend = DRT_BACKEND_CPU;
  o.num_threads = threads;
  drt_session *s = NULL;
  drt_status_code c = drt_session_create(g_plan, &o, &s);
  int64_t dx[2] = {M, K}, dxi[4] = {1, CI, S, S};
  for (int r = 0; r < runs && c == DRT_STATUS_OK; r++) {
    c = drt_session_set_input(s, "x", DRT_DTYPE_FLOAT32, 2, dx, g_x, sizeof g_x);
    if (c == DRT_STATUS_OK) c = drt_session_set_input(s, "xi", DRT_DTYPE_FLOAT32, 4, dxi, g_xi, sizeof g_xi);
    if (c == DRT_STATUS_OK) c = drt_session_run(s);
    const void *p;
    size_t nb;
    if (c == DRT_STATUS_OK) c = drt_session_get_output(s, "y", NULL, &p, &nb);
    if (c == DRT_STATUS_OK) {
      if (nb != sizeof g_ref_y[0]) c = DRT_STATUS_INTERNAL;
      else memcpy(y, p, nb);
    }
    if (c == DRT_STATUS_OK) c = drt_session_get_output(s, "z", NULL, &p, &nb);
    if (c == DRT_STATUS_OK) {
      if (nb != sizeof g_ref_z[0]) c = DRT_STATUS_INTERNAL;
      else memcpy(z, p, nb);
    }
  }
  if (c != DRT_STATUS_OK) snprintf(err, err_size, "%s", drt_last_error());
  drt_session_destroy(s);
  return c;
}

typedef struct worker_result {
  int index;
  int sessions, runs, mismatches, errors;
  char err[256];
} worker_result;

static void *worker(void *arg) {
  worker_result *w = arg;
  float *y = malloc(sizeof g_ref_y[0]), *z = malloc(sizeof g_ref_z[0]);
  if (!y || !z) {
    w->errors++;
    free(y);
    free(z);
    return NULL;
  }
  for (int k = 0; k < SESSIONS_PER_THREAD; k++) {
    int threads = 1 + (w->index + k) % MAX_SESSION_THREADS;
    memset(y, 0, sizeof g_ref_y[0]);
    memset(z, 0, sizeof g_ref_z[0]);
    drt_status_code c = run_session(threads, RUNS_PER_SESSION, y, z, w->err, sizeof w->err);
    w->sessions++;
    if (c != DRT_STATUS_OK) {
      w->errors++;
      continue;
    }
    w->runs += RUNS_PER_SESSION;
    if (memcmp(y, g_ref_y[threads], sizeof g_ref_y[0]) != 0 || memcmp(z, g_ref_z[threads], sizeof g_ref_z[0]) != 0)
      w->mismatches++;
  }
  free(y);
  free(z);
  return NULL;
}

static void test_sessions_on_threads_agree(void **state) {
  (void)state;
  size_t size = 0;
  void *bytes = build_plan_bytes(&size);
  assert_non_null(bytes);
  assert_int_equal(drt_plan_load_memory(bytes, size, &g_plan), DRT_STATUS_OK);
  free(bytes);
  drt_test_rng r = {7};
  drt_test_fill(&r, g_x, M * K, -1, 1);
  drt_test_fill(&r, g_xi, CI * S * S, -1, 1);
  char err[256] = "";
  for (int t = 1; t <= MAX_SESSION_THREADS; t++) {
    assert_int_equal(run_session(t, 1, g_ref_y[t], g_ref_z[t], err, sizeof err), DRT_STATUS_OK);
    /* a real result: softmax rows sum to 1, sigmoid in (0, 1) */
    for (int i = 0; i < M; i++) {
      double sum = 0;
      for (int j = 0; j < N; j++) sum += g_ref_y[t][i * N + j];
      assert_true(sum > 0.999 && sum < 1.001);
    }
    for (int i = 0; i < CO * S * S; i++) assert_true(g_ref_z[t][i] > 0 && g_ref_z[t][i] < 1);
    /* and close to the single-threaded one */
    assert_true(drt_test_rel_l2(g_ref_y[t], g_ref_y[1], M * N) < 1e-5);
    assert_true(drt_test_rel_l2(g_ref_z[t], g_ref_z[1], CO * S * S) < 1e-5);
    if (memcmp(g_ref_y[t], g_ref_y[1], sizeof g_ref_y[0]) || memcmp(g_ref_z[t], g_ref_z[1], sizeof g_ref_z[0]))
      print_message("note: %d session threads round differently from 1 (within 1e-5)\n", t);
  }

  pthread_t th[NUM_THREADS];
  worker_result res[NUM_THREADS];
  memset(res, 0, sizeof res);
  for (int i = 0; i < NUM_THREADS; i++) {
    res[i].index = i;
    assert_int_equal(pthread_create(&th[i], NULL, worker, &res[i]), 0);
  }
  for (int i = 0; i < NUM_THREADS; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
  int runs = 0;
  for (int i = 0; i < NUM_THREADS; i++) {
    if (res[i].errors) print_error("thread %d: %d failed sessions: %s\n", i, res[i].errors, res[i].err);
    assert_int_equal(res[i].errors, 0);
    assert_int_equal(res[i].mismatches, 0);
    assert_int_equal(res[i].sessions, SESSIONS_PER_THREAD);
    runs += res[i].runs;
  }
  assert_int_equal(runs, NUM_THREADS * SESSIONS_PER_THREAD * RUNS_PER_SESSION);
  drt_plan_destroy(g_plan);
  g_plan = NULL;
}

/* Errors are per thread: a failing call on one thread does not change another's last error. */
static void *error_worker(void *arg) {
  char *out = arg;
  drt_plan *p = NULL;
  drt_status_code c = drt_plan_load_file("/nonexistent/thread.plan", &p);
  snprintf(out, 128, "%d %s", (int)c, drt_last_error());
  return NULL;
}

static void test_last_error_is_per_thread(void **state) {
  (void)state;
  drt_plan *p = NULL;
  assert_int_equal(drt_plan_load_memory("nope", 4, &p), DRT_STATUS_CORRUPT);
  char before[256];
  snprintf(before, sizeof before, "%s", drt_last_error());
  char msg[128] = "";
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, error_worker, msg), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_non_null(strstr(msg, "/nonexistent/thread.plan"));
  assert_string_equal(drt_last_error(), before);
  assert_non_null(strstr(before, "not a distilrt plan"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sessions_on_threads_agree),
      cmocka_unit_test(test_last_error_is_per_thread),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
