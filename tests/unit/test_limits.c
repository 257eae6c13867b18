/* Resource limits and faults: sizes that overflow, the memory budget of constant folding, the
 * executor's peak estimate, atomic writes that fail without leaving files, and reads that refuse
 * anything but regular files without blocking. */
#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ir/infer.h"
#include "passes/canonicalize.h"
#include "runtime/cpu/executor.h"
#include "runtime/npy.h"

static drt_value *node1(drt_graph *g, drt_op op, drt_value *a, drt_value *b) {
  drt_value *out = drt_graph_add_value(g, NULL, DRT_DTYPE_UNDEFINED, NULL);
  drt_value *in[2] = {a, b};
  if (!out || drt_graph_add_node(g, op, NULL, in, b ? 2 : 1, &out, 1, NULL)) return NULL;
  return out;
}

/* ConstantOfShape asking for 2^61 float64 elements: the element count fits int64 but the byte
 * size does not fit size_t. Inference must refuse it (before this, folding allocated a 1-byte
 * buffer for it and the kernel wrote past the end). */
static void test_infer_refuses_byte_size_overflow(void **state) {
  (void)state;
  drt_graph *g;
  DRT_ASSERT_OK(drt_graph_create(&g));
  g->opset = 17;
  int64_t dims[1] = {(int64_t)1 << 61};
  drt_shape s1 = drt_test_shape(1, (int64_t[]){1});
  drt_value *shape;
  DRT_ASSERT_OK(drt_graph_add_const(g, "shape", DRT_DTYPE_INT64, &s1, dims, &shape));
  drt_value *y = node1(g, DRT_OP_CONSTANT_OF_SHAPE, shape, NULL);
  assert_non_null(y);
  double one = 1.0;
  drt_shape s0 = drt_test_shape(1, (int64_t[]){1});
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = "value";
  a.type = DRT_ATTR_TENSOR;
  a.tensor = drt_arena_alloc(g->arena, sizeof(drt_value));
  assert_non_null(a.tensor);
  a.tensor->name = "value";
  a.tensor->kind = DRT_VALUE_CONST;
  a.tensor->dtype = DRT_DTYPE_FLOAT64;
  a.tensor->has_shape = true;
  a.tensor->shape = s0;
  a.tensor->data = &one;
  a.tensor->nbytes = sizeof one;
  DRT_ASSERT_OK(drt_node_add_attr(g, y->producer, &a));
  DRT_ASSERT_OK(drt_graph_add_output(g, y));
  DRT_ASSERT_ERROR(drt_infer_node(g, y->producer), DRT_STATUS_INVALID_ARGUMENT, "overflowing shape");
  drt_graph_destroy(g);
}

/* x: [n] input; t = Tile(c, reps) of constants folds to `folded` floats; y = x * x + t */
static drt_graph *fold_graph(int64_t n, int64_t folded) {
  drt_graph *g;
  if (drt_graph_create(&g)) return NULL;
  g->opset = 17;
  drt_shape sx = drt_test_shape(1, (int64_t[]){n}), s1 = drt_test_shape(1, (int64_t[]){1});
  drt_value *x = drt_graph_add_value(g, "x", DRT_DTYPE_FLOAT32, &sx), *c, *reps;
  float cv = 0.5f;
  int64_t rv = folded;
  if (!x || drt_graph_add_input(g, x) || drt_graph_add_const(g, "c", DRT_DTYPE_FLOAT32, &s1, &cv, &c) ||
      drt_graph_add_const(g, "reps", DRT_DTYPE_INT64, &s1, &rv, &reps))
    return NULL;
  drt_value *t = node1(g, DRT_OP_TILE, c, reps);
  drt_value *sq = node1(g, DRT_OP_MUL, x, x);
  drt_value *y = t && sq ? node1(g, DRT_OP_ADD, sq, t) : NULL;
  if (!y || drt_graph_add_output(g, y)) return NULL;
  return g;
}

static void test_fold_respects_memory_budget(void **state) {
  (void)state;
  drt_graph *g = fold_graph(1 << 16, 1 << 16); /* the fold creates 256 KiB */
  assert_non_null(g);
  drt_pass_ctx pc;
  memset(&pc, 0, sizeof pc);
  pc.max_memory = 128 << 10;
  bool changed;
  DRT_ASSERT_ERROR(drt_pass_canonicalize(g, &pc, &changed), DRT_STATUS_OUT_OF_MEMORY,
                   "over the memory budget of 131072 bytes (--max-memory)");
  drt_graph_destroy(g);
  g = fold_graph(1 << 16, 1 << 16);
  pc.max_memory = 1 << 20;
  DRT_ASSERT_OK(drt_pass_canonicalize(g, &pc, &changed));
  assert_true(changed);
  drt_graph_destroy(g);
}

/* The peak counts a value read twice by one node once. It used to be released twice: here the
 * running total then went below zero at ReduceSum and wrapped around to ~2^64.
 *   sq = x * x; p = sq * sq; r = ReduceSum(p); y = r + 1 */
static void test_peak_bytes(void **state) {
  (void)state;
  drt_graph *g;
  DRT_ASSERT_OK(drt_graph_create(&g));
  g->opset = 17;
  drt_shape sx = drt_test_shape(1, (int64_t[]){1024}), s1 = drt_test_shape(1, (int64_t[]){1});
  drt_value *x = drt_graph_add_value(g, "x", DRT_DTYPE_FLOAT32, &sx), *one;
  float onev = 1.0f;
  DRT_ASSERT_OK(drt_graph_add_input(g, x));
  DRT_ASSERT_OK(drt_graph_add_const(g, "one", DRT_DTYPE_FLOAT32, &s1, &onev, &one));
  drt_value *sq = node1(g, DRT_OP_MUL, x, x);
  drt_value *p = node1(g, DRT_OP_MUL, sq, sq);
  drt_value *r = node1(g, DRT_OP_REDUCE_SUM, p, NULL);
  drt_value *y = node1(g, DRT_OP_ADD, r, one);
  assert_non_null(y);
  DRT_ASSERT_OK(drt_graph_add_output(g, y));
  drt_pass_ctx pc;
  memset(&pc, 0, sizeof pc);
  bool changed;
  DRT_ASSERT_OK(drt_pass_canonicalize(g, &pc, &changed));
  assert_false(g->mem_planned);
  /* sq and p (4 KiB each) are live together; everything after is smaller */
  assert_int_equal(drt_cpu_executor_peak_bytes(g), 2 * 1024 * sizeof(float));
  /* and the executor runs it: y = sum(x^4) + 1 */
  float xs[1024];
  double want = 1;
  for (int i = 0; i < 1024; i++) {
    xs[i] = (float)(i % 7) * 0.25f;
    want += (double)xs[i] * xs[i] * xs[i] * xs[i];
  }
  drt_cpu_executor *e;
  DRT_ASSERT_OK(drt_cpu_executor_create(g, NULL, &e));
  drt_tensor in = {DRT_DTYPE_FLOAT32, sx, xs}, out;
  DRT_ASSERT_OK(drt_cpu_executor_run(e, &in, &out));
  assert_true(fabs(((float *)out.data)[0] - want) < 1e-4 * want);
  free(out.data);
  drt_cpu_executor_destroy(e);
  drt_graph_destroy(g);
}

static char g_dir[256];

static int make_dir(void **state) {
  (void)state;
  snprintf(g_dir, sizeof g_dir, "/tmp/drt-limits-XXXXXX");
  return mkdtemp(g_dir) ? 0 : -1;
}

static int count_entries(const char *dir) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
  FILE *p = popen(cmd, "r");
  int n = -1;
  if (p) {
    if (fscanf(p, "%d", &n) != 1) n = -1;
    pclose(p);
  }
  return n;
}

static void test_atomic_write_failures_leave_nothing(void **state) {
  (void)state;
  char path[1024];
  /* nonexistent folder */
  snprintf(path, sizeof path, "%s/no/such/out.npy", g_dir);
  DRT_ASSERT_ERROR(drt_write_file_atomic(path, "abc", 3), DRT_STATUS_IO, "cannot create");
  /* a file where a folder should be */
  snprintf(path, sizeof path, "%s/afile", g_dir);
  DRT_ASSERT_OK(drt_write_file_atomic(path, "x", 1));
  snprintf(path, sizeof path, "%s/afile/out.npy", g_dir);
  DRT_ASSERT_ERROR(drt_write_file_atomic(path, "abc", 3), DRT_STATUS_IO, "Not a directory");
  assert_int_equal(count_entries(g_dir), 1);
  /* a symlink planted at the temporary name is not written through */
  char target[512], tmp[1100];
  snprintf(target, sizeof target, "%s/victim", g_dir);
  DRT_ASSERT_OK(drt_write_file_atomic(target, "keep", 4));
  snprintf(path, sizeof path, "%s/out.npy", g_dir);
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  assert_int_equal(symlink(target, tmp), 0);
  DRT_ASSERT_ERROR(drt_write_file_atomic(path, "evil", 4), DRT_STATUS_IO, "cannot create");
  void *data;
  size_t size;
  DRT_ASSERT_OK(drt_read_file(target, 0, &data, &size));
  assert_int_equal(size, 4);
  assert_memory_equal(data, "keep", 4);
  free(data);
  unlink(tmp);
  struct stat sb;
  assert_int_not_equal(stat(path, &sb), 0);
  /* success replaces atomically and leaves no temporary file */
  DRT_ASSERT_OK(drt_write_file_atomic(path, "good", 4));
  assert_int_equal(count_entries(g_dir), 3); /* afile, victim, out.npy */
  /* unwritable folder (skipped as root, where permissions do not apply) */
  if (geteuid() != 0) {
    char ro[400];
    snprintf(ro, sizeof ro, "%s/ro", g_dir);
    assert_int_equal(mkdir(ro, 0555), 0);
    snprintf(path, sizeof path, "%s/out.plan", ro);
    DRT_ASSERT_ERROR(drt_write_file_atomic(path, "abc", 3), DRT_STATUS_IO, "Permission denied");
    assert_int_equal(count_entries(ro), 0);
    rmdir(ro);
  }
}

static void test_reads_refuse_non_regular_files(void **state) {
  (void)state;
  char fifo[512];
  snprintf(fifo, sizeof fifo, "%s/fifo", g_dir);
  assert_int_equal(mkfifo(fifo, 0600), 0);
  void *data = NULL;
  size_t size;
  /* returns at once (no writer needed) */
  DRT_ASSERT_ERROR(drt_read_file(fifo, 0, &data, &size), DRT_STATUS_IO, "not a regular file");
  drt_tensor t;
  DRT_ASSERT_ERROR(drt_npy_read_file(fifo, &t), DRT_STATUS_IO, "not a regular file");
  DRT_ASSERT_ERROR(drt_read_file(g_dir, 0, &data, &size), DRT_STATUS_IO, "not a regular file");
  unlink(fifo);
  char missing[512];
  snprintf(missing, sizeof missing, "%s/missing.npy", g_dir);
  DRT_ASSERT_ERROR(drt_npy_read_file(missing, &t), DRT_STATUS_NOT_FOUND, "missing.npy");
  /* over the read limit: refused before allocating */
  char big[512];
  snprintf(big, sizeof big, "%s/big.bin", g_dir);
  DRT_ASSERT_OK(drt_write_file_atomic(big, "0123456789", 10));
  DRT_ASSERT_ERROR(drt_read_file(big, 9, &data, &size), DRT_STATUS_OUT_OF_MEMORY, "above the limit");
  DRT_ASSERT_OK(drt_read_file(big, 10, &data, &size));
  free(data);
}

static int remove_dir(void **state) {
  (void)state;
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_infer_refuses_byte_size_overflow),
      cmocka_unit_test(test_fold_respects_memory_budget),
      cmocka_unit_test(test_peak_bytes),
      cmocka_unit_test(test_atomic_write_failures_leave_nothing),
      cmocka_unit_test(test_reads_refuse_non_regular_files),
  };
  return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
