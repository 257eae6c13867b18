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

/* CRC-32 (IEEE, reflected), slice-by-8: eight table lookups per 8 bytes (about 8x the
 * byte-at-a-time loop; the plan loader checksums every section, weights included). */
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    crc_table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++)
    for (int t = 1; t < 8; t++) crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

static uint32_t crc32_slice8(uint32_t c, const uint8_t *p, size_t n) {
  while (n >= 8) {
    uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
    uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
    c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^ crc_table[5][(lo >> 16) & 0xff] ^
        crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
        crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
  return c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DRT_HAVE_CRC_PCLMUL 1
/* CRC-32 by carry-less multiplication (Intel, "Fast CRC Computation for Generic Polynomials
 * Using PCLMULQDQ"; the folding constants of Linux's crc32-pclmul for the reflected IEEE
 * polynomial): four 128-bit lanes folded 64 bytes at a time, then one lane, then a Barrett
 * reduction. n >= 64 and a multiple of 16; c is the running (pre-inverted) CRC. */
__attribute__((target("pclmul,sse4.1"))) static uint32_t crc32_pclmul(uint32_t c, const uint8_t *p, size_t n) {
  const __m128i k1k2 = _mm_set_epi64x(0x00000001c6e41596LL, 0x0000000154442bd4LL);
  const __m128i k3k4 = _mm_set_epi64x(0x00000000ccaa009eLL, 0x00000001751997d0LL);
  const __m128i k5 = _mm_set_epi64x(0, 0x0000000163cd6124LL);
  const __m128i mask32 = _mm_set_epi32(0, 0, 0, -1);
  const __m128i poly = _mm_set_epi64x(0x00000001f7011641LL, 0x00000001db710641LL);
  __m128i x1 = _mm_loadu_si128((const __m128i *)(const void *)p);
  __m128i x2 = _mm_loadu_si128((const __m128i *)(const void *)(p + 16));
  __m128i x3 = _mm_loadu_si128((const __m128i *)(const void *)(p + 32));
  __m128i x4 = _mm_loadu_si128((const __m128i *)(const void *)(p + 48));
  x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int)c));
  p += 64;
  n -= 64;
  while (n >= 64) {
    __m128i y1 = _mm_clmulepi64_si128(x1, k1k2, 0x11), y2 = _mm_clmulepi64_si128(x2, k1k2, 0x11);
    __m128i y3 = _mm_clmulepi64_si128(x3, k1k2, 0x11), y4 = _mm_clmulepi64_si128(x4, k1k2, 0x11);
    x1 = _mm_xor_si128(_mm_clmulepi64_si128(x1, k1k2, 0x00), y1);
    x2 = _mm_xor_si128(_mm_clmulepi64_si128(x2, k1k2, 0x00), y2);
    x3 = _mm_xor_si128(_mm_clmulepi64_si128(x3, k1k2, 0x00), y3);
    x4 = _mm_xor_si128(_mm_clmulepi64_si128(x4, k1k2, 0x00), y4);
    x1 = _mm_xor_si128(x1, _mm_loadu_si128((const __m128i *)(const void *)p));
    x2 = _mm_xor_si128(x2, _mm_loadu_si128((const __m128i *)(const void *)(p + 16)));
    x3 = _mm_xor_si128(x3, _mm_loadu_si128((const __m128i *)(const void *)(p + 32)));
    x4 = _mm_xor_si128(x4, _mm_loadu_si128((const __m128i *)(const void *)(p + 48)));
    p += 64;
    n -= 64;
  }
#define DRT_FOLD16(x, next)                                                                      \
  do {                                                                                           \
    __m128i hi_ = _mm_clmulepi64_si128((x), k3k4, 0x11);                                         \
    (x) = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128((x), k3k4, 0x00), hi_), (next));      \
  } while (0)
  DRT_FOLD16(x1, x2);
  DRT_FOLD16(x1, x3);
  DRT_FOLD16(x1, x4);
  while (n >= 16) {
    DRT_FOLD16(x1, _mm_loadu_si128((const __m128i *)(const void *)p));
    p += 16;
    n -= 16;
  }
#undef DRT_FOLD16
  /* 128 -> 64 bits (adds 32 zero bits), 64 -> 32, then Barrett reduction */
  x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), _mm_clmulepi64_si128(k3k4, x1, 0x01));
  x2 = _mm_srli_si128(x1, 4);
  x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, mask32), k5, 0x00), x2);
  x2 = x1;
  x1 = _mm_and_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, mask32), poly, 0x10), mask32);
  x1 = _mm_xor_si128(_mm_clmulepi64_si128(x1, poly, 0x00), x2);
  return (uint32_t)_mm_extract_epi32(x1, 1);
}

static int g_have_pclmul = -1; /* written once under crc_once */
#endif

static void crc_setup(void) {
  crc_init();
#ifdef DRT_HAVE_CRC_PCLMUL
  __builtin_cpu_init();
  g_have_pclmul = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
#endif
}

uint32_t drt_crc32(const void *data, size_t n) {
  pthread_once(&crc_once, crc_setup);
  const uint8_t *p = data;
  uint32_t c = 0xFFFFFFFFu;
#ifdef DRT_HAVE_CRC_PCLMUL
  if (g_have_pclmul && n >= 64) {
    size_t main = n & ~(size_t)15;
    c = crc32_pclmul(c, p, main);
    p += main;
    n -= main;
  }
#endif
  c = crc32_slice8(c, p, n);
  return c ^ 0xFFFFFFFFu;
}
