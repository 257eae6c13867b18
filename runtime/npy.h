/* .npy reader and writer (format versions 1.0, 2.0 and 3.0; C order, little endian).
 * Refused with a clear status: Fortran order, object/pickled arrays, big-endian or
 * unsupported dtypes, malformed headers, rank above DRT_MAX_RANK, data shorter or longer
 * than the shape says. Thread-safe (no shared state). */
#ifndef DRT_RUNTIME_NPY_H
#define DRT_RUNTIME_NPY_H

#include "ir/graph.h"

/* Parses .npy bytes; out->data is malloc'd (caller frees). `label` names the source in messages. */
drt_status drt_npy_parse(const void *bytes, size_t size, const char *label, drt_tensor *out);
drt_status drt_npy_read_file(const char *path, drt_tensor *out);
/* Serializes to a malloc'd buffer. */
drt_status drt_npy_serialize(const drt_tensor *t, void **bytes, size_t *size);
/* Writes path atomically: to "path.tmp.<pid>" then rename; on failure nothing is left behind. */
drt_status drt_npy_write_file(const char *path, const drt_tensor *t);

/* Reads a whole file into a malloc'd buffer (limit 0 = none). Missing file -> NOT_FOUND. */
drt_status drt_read_file(const char *path, uint64_t limit, void **data, size_t *size);
/* Writes bytes atomically (temporary file + fsync + rename). */
drt_status drt_write_file_atomic(const char *path, const void *data, size_t size);

#endif
