#include "runtime/bytes.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

void drt_bw_put(drt_bytes_writer *w, const void *p, size_t n) {
  if (w->failed || n == 0) return;
  if (w->size + n < w->size) {
    w->failed = true;
    return;
  }
  if (w->size + n > w->cap) {
    size_t nc = w->cap ? w->cap : 4096;
    while (nc < w->size + n) nc *= 2;
    uint8_t *d = realloc(w->data, nc);
    if (!d) {
      w->failed = true;
      return;
    }
    w->data = d;
    w->cap = nc;
  }
  if (p) memcpy(w->data + w->size, p, n);
  else memset(w->data + w->size, 0, n);
  w->size += n;
}

void drt_bw_u8(drt_bytes_writer *w, uint8_t v) { drt_bw_put(w, &v, 1); }
void drt_bw_u32(drt_bytes_writer *w, uint32_t v) {
  uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  drt_bw_put(w, b, 4);
}
void drt_bw_u64(drt_bytes_writer *w, uint64_t v) {
  drt_bw_u32(w, (uint32_t)v);
  drt_bw_u32(w, (uint32_t)(v >> 32));
}
void drt_bw_i64(drt_bytes_writer *w, int64_t v) { drt_bw_u64(w, (uint64_t)v); }
void drt_bw_f32(drt_bytes_writer *w, float v) {
  uint32_t u;
  memcpy(&u, &v, 4);
  drt_bw_u32(w, u);
}
void drt_bw_f64(drt_bytes_writer *w, double v) {
  uint64_t u;
  memcpy(&u, &v, 8);
  drt_bw_u64(w, u);
}
void drt_bw_str(drt_bytes_writer *w, const char *s) {
  size_t n = s ? strlen(s) : 0;
  drt_bw_u32(w, (uint32_t)n);
  drt_bw_put(w, s, n);
}
void drt_bw_align(drt_bytes_writer *w, size_t align) {
  size_t pad = (align - w->size % align) % align;
  drt_bw_put(w, NULL, pad);
}
void drt_bw_free(drt_bytes_writer *w) {
  free(w->data);
  memset(w, 0, sizeof *w);
}

static const uint8_t *take(drt_bytes_reader *r, size_t n) {
  if (r->failed || n > r->size - r->pos) {
    r->failed = true;
    return NULL;
  }
  const uint8_t *p = r->data + r->pos;
  r->pos += n;
  return p;
}

uint8_t drt_br_u8(drt_bytes_reader *r) {
  const uint8_t *p = take(r, 1);
  return p ? p[0] : 0;
}
uint32_t drt_br_u32(drt_bytes_reader *r) {
  const uint8_t *p = take(r, 4);
  return p ? (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24) : 0;
}
uint64_t drt_br_u64(drt_bytes_reader *r) {
  uint64_t lo = drt_br_u32(r);
  uint64_t hi = drt_br_u32(r);
  return lo | (hi << 32);
}
int64_t drt_br_i64(drt_bytes_reader *r) { return (int64_t)drt_br_u64(r); }
float drt_br_f32(drt_bytes_reader *r) {
  uint32_t u = drt_br_u32(r);
  float f;
  memcpy(&f, &u, 4);
  return f;
}
double drt_br_f64(drt_bytes_reader *r) {
  uint64_t u = drt_br_u64(r);
  double f;
  memcpy(&f, &u, 8);
  return f;
}
const char *drt_br_str(drt_bytes_reader *r, uint32_t max_len, uint32_t *len) {
  uint32_t n = drt_br_u32(r);
  if (n > max_len) {
    r->failed = true;
    *len = 0;
    return NULL;
  }
  const uint8_t *p = take(r, n);
  *len = p ? n : 0;
  return (const char *)p;
}
const void *drt_br_bytes(drt_bytes_reader *r, size_t n) { return take(r, n); }

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    crc_table[i] = c;
  }
}

uint32_t drt_crc32(const void *data, size_t n) {
  pthread_once(&crc_once, crc_init);
  const uint8_t *p = data;
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}
