/* Helpers shared by the cmocka unit tests. Include after <cmocka.h> prerequisites. */
#ifndef DRT_TESTUTIL_H
#define DRT_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the above first */
#include <cmocka.h>

#include "ir/graph.h"
#include "runtime/cpu/cpu.h"

/* Deterministic PRNG (splitmix64) for test data. */
typedef struct {
  uint64_t s;
} drt_test_rng;
uint64_t drt_test_next(drt_test_rng *r);
float drt_test_uniform(drt_test_rng *r, float lo, float hi);
void drt_test_fill(drt_test_rng *r, float *x, size_t n, float lo, float hi);

/* Relative L2 error ||a-b|| / max(||b||, tiny). */
double drt_test_rel_l2(const float *a, const float *b, size_t n);

/* Fails the test with the status message when s != OK. */
#define DRT_ASSERT_OK(expr)                                                              \
  do {                                                                                   \
    drt_status s_ = (expr);                                                              \
    if (s_) {                                                                            \
      print_error("%s failed: %s\n", #expr, drt_status_message(s_));                     \
      drt_status_free(s_);                                                               \
      fail();                                                                            \
    }                                                                                    \
  } while (0)

/* Asserts that expr fails with `code` and that the message contains `needle`. */
#define DRT_ASSERT_ERROR(expr, code, needle)                                             \
  do {                                                                                   \
    drt_status s_ = (expr);                                                              \
    assert_non_null(s_);                                                                 \
    if (drt_status_code_of(s_) != (code) || !strstr(drt_status_message(s_), (needle)))  \
      print_error("unexpected error %s: %s\n", drt_status_code_name(drt_status_code_of(s_)), \
                  drt_status_message(s_));                                               \
    assert_int_equal(drt_status_code_of(s_), (code));                                    \
    assert_non_null(strstr(drt_status_message(s_), (needle)));                           \
    drt_status_free(s_);                                                                 \
  } while (0)

/* Builds a shape from a list of dims: drt_test_shape(3, (int64_t[]){2,3,4}). */
drt_shape drt_test_shape(int rank, const int64_t *dims);

/* Adds the INTS attribute `name` (count values) to node n of g; fails the test on error. */
void drt_test_attr_ints(drt_graph *g, drt_node *n, const char *name, int64_t count, const int64_t *v);

/* Runs a single-node graph on the CPU executor path (infer + kernel) for op tests:
 * creates values for inputs (constants when const_mask bit i is set, else plain inputs),
 * runs inference, allocates outputs and calls drt_cpu_run_node. Output buffers are malloc'd
 * and returned in outs[i].data (caller frees). The node is returned for inspection; the
 * graph must be destroyed by the caller. */
drt_status drt_test_run_node(drt_graph *g, drt_node *n, const drt_tensor *ins, drt_tensor *outs);

#endif
