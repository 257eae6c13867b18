#include "runtime/npy.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

drt_status drt_read_file(const char *path, uint64_t limit, void **data, size_t *size) {
  *data = NULL;
  *size = 0;
  /* O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return DRT_ERROR(DRT_STATUS_NOT_FOUND, "'%s': no such file", path);
    return DRT_ERROR(DRT_STATUS_IO, "'%s': cannot open: %s", path, strerror(errno));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return DRT_ERROR(DRT_STATUS_IO, "'%s' is not a regular file", path);
  }
  FILE *f = fdopen(fd, "rb");
  if (!f) {
    close(fd);
    return DRT_ERROR(DRT_STATUS_IO, "'%s': cannot open: %s", path, strerror(errno));
  }
  uint64_t n = (uint64_t)st.st_size;
  if ((limit && n > limit) || n > SIZE_MAX - 1) {
    fclose(f);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "'%s' is %" PRIu64 " bytes, above the limit", path, n);
  }
  char *buf = malloc((size_t)n + 1);
  if (!buf) {
    fclose(f);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "'%s': cannot allocate %" PRIu64 " bytes", path, n);
  }
  size_t got = n ? fread(buf, 1, (size_t)n, f) : 0;
  int err = ferror(f);
  fclose(f);
  if (got != n || err) {
    free(buf);
    return DRT_ERROR(DRT_STATUS_IO, "'%s': read failed", path);
  }
  buf[n] = 0;
  *data = buf;
  *size = (size_t)n;
  return DRT_OK;
}

drt_status drt_write_file_atomic(const char *path, const void *data, size_t size) {
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 32);
  if (!tmp) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "writing '%s'", path);
  snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
  /* O_EXCL | O_NOFOLLOW: never write through a file or link planted at the temporary name */
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
  FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
  if (!f) {
    drt_status s = DRT_ERROR(DRT_STATUS_IO, "cannot create '%s': %s", path, strerror(errno));
    if (fd >= 0) {
      close(fd);
      unlink(tmp);
    }
    free(tmp);
    return s;
  }
  size_t put = size ? fwrite(data, 1, size, f) : 0;
  int ok = put == size && fflush(f) == 0 && fsync(fileno(f)) == 0;
  int saved = errno;
  if (fclose(f) != 0) ok = 0;
  if (!ok || rename(tmp, path) != 0) {
    if (ok) saved = errno;
    unlink(tmp);
    free(tmp);
    return DRT_ERROR(DRT_STATUS_IO, "writing '%s' failed: %s", path, strerror(saved));
  }
  free(tmp);
  return DRT_OK;
}

static const struct {
  const char *descr;
  drt_dtype dt;
} k_descrs[] = {
    {"f4", DRT_DTYPE_FLOAT32}, {"f2", DRT_DTYPE_FLOAT16}, {"f8", DRT_DTYPE_FLOAT64}, {"i8", DRT_DTYPE_INT64},
    {"i4", DRT_DTYPE_INT32},   {"i2", DRT_DTYPE_INT16},   {"i1", DRT_DTYPE_INT8},    {"u1", DRT_DTYPE_UINT8},
    {"u2", DRT_DTYPE_UINT16},  {"u4", DRT_DTYPE_UINT32},  {"u8", DRT_DTYPE_UINT64},  {"b1", DRT_DTYPE_BOOL},
};

/* Finds 'key': in the header dict and returns a pointer after the colon (skipping spaces). */
static const char *find_key(const char *h, const char *end, const char *key) {
  size_t kl = strlen(key);
  for (const char *p = h; p + kl + 2 < end; p++) {
    if ((*p == '\'' || *p == '"') && memcmp(p + 1, key, kl) == 0 && p[kl + 1] == *p) {
      const char *q = p + kl + 2;
      while (q < end && (*q == ' ')) q++;
      if (q < end && *q == ':') {
        q++;
        while (q < end && *q == ' ') q++;
        return q;
      }
    }
  }
  return NULL;
}

drt_status drt_npy_parse(const void *bytes, size_t size, const char *label, drt_tensor *out) {
  const unsigned char *b = bytes;
  memset(out, 0, sizeof *out);
  if (size < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "'%s' is not a .npy file (bad magic)", label);
  unsigned major = b[6];
  size_t hlen, hoff;
  if (major == 1) {
    hlen = (size_t)b[8] | ((size_t)b[9] << 8);
    hoff = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "'%s': truncated .npy header", label);
    hlen = (size_t)b[8] | ((size_t)b[9] << 8) | ((size_t)b[10] << 16) | ((size_t)b[11] << 24);
    hoff = 12;
  } else {
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "'%s': .npy format version %u is not supported", label, major);
  }
  if (hlen > size - hoff) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "'%s': truncated .npy header", label);
  const char *h = (const char *)b + hoff, *hend = h + hlen;
  const char *d = find_key(h, hend, "descr");
  const char *fo = find_key(h, hend, "fortran_order");
  const char *sh = find_key(h, hend, "shape");
  if (!d || !fo || !sh)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "'%s': malformed .npy header (descr/fortran_order/shape)", label);
  if (hend - fo >= 4 && memcmp(fo, "True", 4) == 0)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "'%s': Fortran-order arrays are not supported; save with C order", label);
  if (!(hend - fo >= 5 && memcmp(fo, "False", 5) == 0))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "'%s': malformed fortran_order in .npy header", label);
  if (d >= hend || (*d != '\'' && *d != '"'))
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "'%s': structured or object dtype is not supported", label);
  char quote = *d++;
  const char *dend = memchr(d, quote, (size_t)(hend - d));
  if (!dend || dend - d < 2 || dend - d > 8)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "'%s': malformed descr in .npy header", label);
  char order = d[0];
  const char *code = d + 1;
  size_t code_len = (size_t)(dend - code);
  if (order != '<' && order != '|' && order != '=') {
    if (order == '>')
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "'%s': big-endian arrays are not supported", label);
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "'%s': dtype '%.*s' is not supported", label, (int)(dend - d), d);
  }
  drt_dtype dt = DRT_DTYPE_UNDEFINED;
  for (size_t i = 0; i < sizeof k_descrs / sizeof k_descrs[0]; i++)
    if (code_len == 2 && memcmp(code, k_descrs[i].descr, 2) == 0) dt = k_descrs[i].dt;
  if (dt == DRT_DTYPE_UNDEFINED) {
    if (code_len >= 1 && code[0] == 'O')
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "'%s': pickled object arrays are not supported", label);
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "'%s': dtype '%.*s' is not supported", label, (int)(dend - d), d);
  }
  if (sh >= hend || *sh != '(') return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "'%s': malformed shape in .npy header", label);
  drt_shape s;
  memset(&s, 0, sizeof s);
  const char *p = sh + 1;
  for (;;) {
    while (p < hend && (*p == ' ' || *p == ',')) p++;
    if (p >= hend) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "'%s': malformed shape in .npy header", label);
    if (*p == ')') break;
    if (*p < '0' || *p > '9') return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "'%s': malformed shape in .npy header", label);
    if (s.rank >= DRT_MAX_RANK)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "'%s': rank above %d is not supported", label, DRT_MAX_RANK);
    int64_t v = 0;
    while (p < hend && *p >= '0' && *p <= '9') {
      if (v > (INT64_MAX - 9) / 10) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "'%s': dimension too large", label);
      v = v * 10 + (*p++ - '0');
    }
    if (p < hend && *p == 'L') p++;
    s.dims[s.rank++] = v;
  }
  drt_tensor t = {dt, s, NULL};
  int64_t numel = drt_shape_numel(&s);
  size_t nbytes = drt_tensor_nbytes(&t);
  if (numel < 0 || (numel > 0 && nbytes == 0))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "'%s': shape too large", label);
  size_t doff = hoff + hlen;
  if (size - doff != nbytes)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "'%s': expected %zu data bytes for shape and dtype %s, file has %zu",
                     label, nbytes, drt_dtype_name(dt), size - doff);
  void *data = malloc(nbytes ? nbytes : 1);
  if (!data) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "'%s': %zu bytes", label, nbytes);
  if (nbytes) memcpy(data, b + doff, nbytes);
  if (dt == DRT_DTYPE_BOOL)
    for (size_t i = 0; i < nbytes; i++) ((uint8_t *)data)[i] = ((uint8_t *)data)[i] != 0;
  t.data = data;
  *out = t;
  return DRT_OK;
}

drt_status drt_npy_read_file(const char *path, drt_tensor *out) {
  void *bytes;
  size_t size;
  DRT_RETURN_IF_ERROR(drt_read_file(path, 0, &bytes, &size));
  drt_status s = drt_npy_parse(bytes, size, path, out);
  free(bytes);
  return s;
}

drt_status drt_npy_serialize(const drt_tensor *t, void **bytes, size_t *size) {
  const char *code = NULL;
  for (size_t i = 0; i < sizeof k_descrs / sizeof k_descrs[0]; i++)
    if (k_descrs[i].dt == t->dtype) code = k_descrs[i].descr;
  if (!code)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "dtype %s cannot be written as .npy", drt_dtype_name(t->dtype));
  char shape[256] = "";
  size_t off = 0;
  for (int i = 0; i < t->shape.rank; i++)
    off += (size_t)snprintf(shape + off, sizeof shape - off, "%" PRId64 ",%s", t->shape.dims[i],
                            (i + 1 < t->shape.rank) ? " " : "");
  if (t->shape.rank > 1 && off > 0) shape[--off] = 0; /* numpy writes (2, 3) but (2,) */
  char header[512];
  char order = (t->dtype == DRT_DTYPE_BOOL || t->dtype == DRT_DTYPE_UINT8 || t->dtype == DRT_DTYPE_INT8) ? '|' : '<';
  int hl = snprintf(header, sizeof header, "{'descr': '%c%s', 'fortran_order': False, 'shape': (%s), }", order, code,
                    shape);
  size_t total_h = 10 + (size_t)hl + 1;
  size_t pad = (64 - total_h % 64) % 64;
  size_t hlen = (size_t)hl + pad + 1;
  size_t nbytes = drt_tensor_nbytes(t);
  size_t sz = 10 + hlen + nbytes;
  unsigned char *buf = malloc(sz);
  if (!buf) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "serializing .npy");
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  buf[8] = (unsigned char)(hlen & 0xff);
  buf[9] = (unsigned char)(hlen >> 8);
  memcpy(buf + 10, header, (size_t)hl);
  memset(buf + 10 + hl, ' ', pad);
  buf[10 + hlen - 1] = '\n';
  if (nbytes) memcpy(buf + 10 + hlen, t->data, nbytes);
  *bytes = buf;
  *size = sz;
  return DRT_OK;
}

drt_status drt_npy_write_file(const char *path, const drt_tensor *t) {
  void *bytes;
  size_t size;
  DRT_RETURN_IF_ERROR(drt_npy_serialize(t, &bytes, &size));
  drt_status s = drt_write_file_atomic(path, bytes, size);
  free(bytes);
  return s;
}
