#include "tools/png.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/bytes.h"
#include "runtime/npy.h"

static void be32(drt_bytes_writer *w, uint32_t v) {
  uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
  drt_bw_put(w, b, 4);
}

static void chunk(drt_bytes_writer *w, const char *type, const uint8_t *data, size_t n) {
  be32(w, (uint32_t)n);
  size_t start = w->size;
  drt_bw_put(w, type, 4);
  drt_bw_put(w, data, n);
  uint32_t crc = w->failed ? 0 : drt_crc32(w->data + start, n + 4);
  be32(w, crc);
}

drt_status drt_png_write_tensor(const char *path, const drt_tensor *t) {
  int r = t->shape.rank;
  if (r != 3 && !(r == 4 && t->shape.dims[0] == 1))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "PNG output needs an image tensor [1,C,H,W], got rank %d", r);
  int64_t c = t->shape.dims[r - 3], h = t->shape.dims[r - 2], wd = t->shape.dims[r - 1];
  if ((c != 1 && c != 3) || h <= 0 || wd <= 0 || h > 65535 || wd > 65535)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "PNG output needs 1 or 3 channels and sane sizes, got %lldx%lldx%lld",
                     (long long)c, (long long)h, (long long)wd);
  size_t row = (size_t)wd * (size_t)c + 1, raw_n = row * (size_t)h;
  uint8_t *raw = malloc(raw_n);
  if (!raw) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "PNG buffer");
  for (int64_t y = 0; y < h; y++) {
    raw[(size_t)y * row] = 0; /* filter: none */
    for (int64_t x = 0; x < wd; x++)
      for (int64_t k = 0; k < c; k++) {
        double v = drt_load_f64(t->dtype, t->data, (size_t)((k * h + y) * wd + x));
        double u = (v + 1.0) * 127.5;
        u = u != u ? 0 : u < 0 ? 0 : u > 255 ? 255 : u;
        raw[(size_t)y * row + 1 + (size_t)(x * c + k)] = (uint8_t)lround(u);
      }
  }
  /* zlib stream of stored blocks */
  drt_bytes_writer z = {0};
  uint8_t hdr[2] = {0x78, 0x01};
  drt_bw_put(&z, hdr, 2);
  uint32_t a = 1, b = 0;
  for (size_t i = 0; i < raw_n; i++) {
    a = (a + raw[i]) % 65521;
    b = (b + a) % 65521;
  }
  for (size_t off = 0; off < raw_n || off == 0;) {
    size_t n = raw_n - off > 65535 ? 65535 : raw_n - off;
    uint8_t bh[5] = {(uint8_t)(off + n >= raw_n), (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)~n, (uint8_t)(~n >> 8)};
    drt_bw_put(&z, bh, 5);
    drt_bw_put(&z, raw + off, n);
    off += n;
    if (n == 0) break;
  }
  be32(&z, (b << 16) | a);
  free(raw);
  drt_bytes_writer w = {0};
  drt_bw_put(&w, "\x89PNG\r\n\x1a\n", 8);
  uint8_t ihdr[13] = {0};
  ihdr[0] = (uint8_t)(wd >> 24), ihdr[1] = (uint8_t)(wd >> 16), ihdr[2] = (uint8_t)(wd >> 8), ihdr[3] = (uint8_t)wd;
  ihdr[4] = (uint8_t)(h >> 24), ihdr[5] = (uint8_t)(h >> 16), ihdr[6] = (uint8_t)(h >> 8), ihdr[7] = (uint8_t)h;
  ihdr[8] = 8;
  ihdr[9] = c == 3 ? 2 : 0;
  chunk(&w, "IHDR", ihdr, 13);
  chunk(&w, "IDAT", z.data, z.size);
  chunk(&w, "IEND", NULL, 0);
  drt_status st = DRT_OK;
  if (w.failed || z.failed) st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "PNG encoding");
  else st = drt_write_file_atomic(path, w.data, w.size);
  drt_bw_free(&z);
  drt_bw_free(&w);
  return st;
}
