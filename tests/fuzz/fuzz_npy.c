/* libFuzzer target: .npy bytes -> drt_npy_parse. A parsed tensor must survive a round trip
 * through drt_npy_serialize unchanged (same dtype, shape and bytes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/npy.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  drt_tensor t;
  drt_status st = drt_npy_parse(data, size, "fuzz.npy", &t);
  if (st) {
    drt_status_free(st);
    return 0;
  }
  void *bytes = NULL;
  size_t n = 0;
  st = drt_npy_serialize(&t, &bytes, &n);
  if (st) {
    fprintf(stderr, "serializing a parsed .npy failed: %s\n", drt_status_message(st));
    abort();
  }
  drt_tensor u;
  st = drt_npy_parse(bytes, n, "roundtrip.npy", &u);
  if (st) {
    fprintf(stderr, "re-parsing a serialized .npy failed: %s\n", drt_status_message(st));
    abort();
  }
  size_t nb = drt_tensor_nbytes(&t);
  if (u.dtype != t.dtype || !drt_shape_equal(&u.shape, &t.shape) || (nb && memcmp(u.data, t.data, nb) != 0)) {
    fprintf(stderr, ".npy round trip changed the tensor\n");
    abort();
  }
  free(u.data);
  free(bytes);
  free(t.data);
  return 0;
}
