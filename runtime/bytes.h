/* Little-endian byte writer (growable) and bounds-checked reader used by the plan format. */
#ifndef DRT_RUNTIME_BYTES_H
#define DRT_RUNTIME_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct drt_bytes_writer {
  uint8_t *data;
  size_t size, cap;
  bool failed; /* allocation failed; further writes are ignored */
} drt_bytes_writer;

void drt_bw_put(drt_bytes_writer *w, const void *p, size_t n);
void drt_bw_u8(drt_bytes_writer *w, uint8_t v);
void drt_bw_u32(drt_bytes_writer *w, uint32_t v);
void drt_bw_u64(drt_bytes_writer *w, uint64_t v);
void drt_bw_i64(drt_bytes_writer *w, int64_t v);
void drt_bw_f32(drt_bytes_writer *w, float v);
void drt_bw_f64(drt_bytes_writer *w, double v);
void drt_bw_str(drt_bytes_writer *w, const char *s);
void drt_bw_align(drt_bytes_writer *w, size_t align);
void drt_bw_free(drt_bytes_writer *w);

typedef struct drt_bytes_reader {
  const uint8_t *data;
  size_t size, pos;
  bool failed; /* read past the end or a bad length; values read after that are 0 */
} drt_bytes_reader;

uint8_t drt_br_u8(drt_bytes_reader *r);
uint32_t drt_br_u32(drt_bytes_reader *r);
uint64_t drt_br_u64(drt_bytes_reader *r);
int64_t drt_br_i64(drt_bytes_reader *r);
float drt_br_f32(drt_bytes_reader *r);
double drt_br_f64(drt_bytes_reader *r);
/* Returns a pointer into the buffer (not NUL-terminated) and its length; NULL on failure. */
const char *drt_br_str(drt_bytes_reader *r, uint32_t max_len, uint32_t *len);
const void *drt_br_bytes(drt_bytes_reader *r, size_t n);

uint32_t drt_crc32(const void *data, size_t n);

#endif
