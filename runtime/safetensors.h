/* A small, strict reader for .safetensors files (the format of Hugging Face checkpoints and
 * LoRA adapters). Layout:
 *
 *   u64 N (little endian)      length of the header
 *   N bytes                    JSON object (UTF-8; may end with spaces as padding):
 *                                "__metadata__": {"key": "value", ...}      (optional)
 *                                "<tensor name>": {"dtype": "F32", "shape": [2, 3],
 *                                                  "data_offsets": [BEGIN, END]}
 *   data                       tensor bytes, little endian, C order; BEGIN/END are byte
 *                              offsets relative to the start of data
 *
 * Checked, each failure naming the file and, where there is one, the tensor:
 *  - the header length fits the file and is at most DRT_ST_MAX_HEADER bytes; the header is one
 *    JSON object parsed by a bounds-checked parser (depth, escapes, UTF-8 surrogates, integer
 *    overflow), with nothing but spaces after it;
 *  - every tensor has exactly the fields dtype, shape and data_offsets; names are unique and
 *    non-empty; dtype is one of F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL (F8 and
 *    other types are refused as unsupported); rank <= DRT_MAX_RANK; dims are non-negative
 *    integers;
 *  - END - BEGIN equals numel x element size; the ranges, sorted, tile the data area exactly:
 *    no overlap, no hole, and the last END is the end of the file;
 *  - __metadata__ maps strings to strings.
 *
 * Tensor data inside the file need not be aligned for its element type: read it with memcpy
 * or drt_safetensors_read (which converts to any dtype into a caller buffer).
 * Thread-safety: a drt_safetensors is immutable after opening and may be read from several
 * threads; opening shares no state. */
#ifndef DRT_RUNTIME_SAFETENSORS_H
#define DRT_RUNTIME_SAFETENSORS_H

#include "ir/graph.h"

#define DRT_ST_MAX_HEADER (100u << 20) /* the same limit as the reference implementation */

typedef struct drt_st_tensor {
  const char *name;  /* NUL-terminated, owned by the drt_safetensors */
  drt_dtype dtype;
  drt_shape shape;
  const void *data;  /* inside the file bytes; possibly unaligned */
  size_t nbytes;
} drt_st_tensor;

typedef struct drt_safetensors drt_safetensors;

/* Reads and validates a whole file (limit 0: no size limit). */
drt_status drt_safetensors_open_file(const char *path, uint64_t limit, drt_safetensors **out);
/* Validates bytes; takes ownership of `bytes` (malloc'd) in every case. `label` names the
 * source in messages. */
drt_status drt_safetensors_open_owned(void *bytes, size_t size, const char *label, drt_safetensors **out);
void drt_safetensors_close(drt_safetensors *st); /* NULL-safe */

/* Tensors in file order of their data (ascending BEGIN). */
size_t drt_safetensors_count(const drt_safetensors *st);
const drt_st_tensor *drt_safetensors_at(const drt_safetensors *st, size_t i);
/* NULL if absent. O(log n). */
const drt_st_tensor *drt_safetensors_find(const drt_safetensors *st, const char *name);
/* Metadata entries (may be 0). */
size_t drt_safetensors_metadata_count(const drt_safetensors *st);
void drt_safetensors_metadata_at(const drt_safetensors *st, size_t i, const char **key, const char **value);
/* Value of a metadata key or NULL. */
const char *drt_safetensors_metadata(const drt_safetensors *st, const char *key);
const char *drt_safetensors_label(const drt_safetensors *st);

/* Converts a tensor's elements into dst (numel elements of dst_dtype), handling unaligned
 * source data. */
void drt_safetensors_read(const drt_st_tensor *t, drt_dtype dst_dtype, void *dst);

/* "F32" etc. for a dtype this reader supports, NULL otherwise. */
const char *drt_safetensors_dtype_name(drt_dtype dt);

#endif
