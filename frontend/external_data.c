/* ONNX external data: tensors whose bytes live in a file next to the model.
 *
 * A location is trusted only as far as it stays inside the model's folder: absolute paths,
 * '..' components and symlinks that resolve elsewhere are refused, and so is anything that is
 * not a regular file (a FIFO or device could block or never end). Reads use 64-bit offsets and
 * bounded chunks so weights past 2 GB load like any other. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frontend/onnx_internal.h"

_Static_assert(sizeof(off_t) >= 8, "64-bit file offsets are required for external data");

#define DRT_EXTERNAL_CHUNK ((size_t)1 << 26) /* 64 MiB per read call */

bool drt_external_parse_u64(const char *s, uint64_t *out) {
  if (!s || !*s) return false;
  uint64_t v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9') return false;
    uint64_t d = (uint64_t)(*p - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

/* True when `location` has a '..' component ('/' and '\\' both count as separators, so a
 * Windows-written path cannot smuggle one through). */
static bool has_dotdot(const char *location) {
  const char *p = location;
  while (*p) {
    const char *end = p;
    while (*end && *end != '/' && *end != '\\') end++;
    if (end - p == 2 && p[0] == '.' && p[1] == '.') return true;
    p = *end ? end + 1 : end;
  }
  return false;
}

drt_status drt_external_open(const char *base_dir, const char *location, const char *what, int *fd,
                             uint64_t *file_size) {
  *fd = -1;
  if (!location || !location[0])
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: external data has an empty 'location'", what);
  if (!base_dir)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                     "%s: external data '%s' cannot be resolved: the model was loaded from memory "
                     "without a base folder", what, location);
  if (location[0] == '/' || location[0] == '\\' ||
      (((location[0] >= 'A' && location[0] <= 'Z') || (location[0] >= 'a' && location[0] <= 'z')) &&
       location[1] == ':'))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                     "%s: external data location '%s' is an absolute path; only paths relative to "
                     "the model's folder are accepted", what, location);
  if (has_dotdot(location))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                     "%s: external data location '%s' contains a '..' component; only paths inside "
                     "the model's folder are accepted", what, location);

  size_t blen = strlen(base_dir), llen = strlen(location);
  char *joined = malloc(blen + llen + 2);
  char *base_real = NULL, *real = NULL;
  drt_status st = DRT_OK;
  if (!joined) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "%s: resolving external data path", what);
  memcpy(joined, base_dir, blen);
  joined[blen] = '/';
  memcpy(joined + blen + 1, location, llen + 1);

  base_real = realpath(base_dir[0] ? base_dir : ".", NULL);
  if (!base_real) {
    st = DRT_ERROR(DRT_STATUS_NOT_FOUND, "%s: model folder '%s' for external data '%s': %s", what, base_dir,
                   location, strerror(errno));
    goto done;
  }
  real = realpath(joined, NULL);
  if (!real) {
    int e = errno;
    st = DRT_ERROR(e == ENOENT || e == ENOTDIR ? DRT_STATUS_NOT_FOUND : DRT_STATUS_IO,
                   "%s: external data file '%s' (location '%s'): %s", what, joined, location, strerror(e));
    goto done;
  }
  size_t rlen = strlen(base_real);
  /* "/" as the base folder: every absolute path is below it. */
  bool inside = rlen == 1 ? real[0] == '/' && real[1] != 0
                          : strncmp(real, base_real, rlen) == 0 && real[rlen] == '/' && real[rlen + 1] != 0;
  if (!inside) {
    st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                   "%s: external data location '%s' resolves to '%s', outside the model's folder '%s'",
                   what, location, real, base_real);
    goto done;
  }
  struct stat sb;
  if (stat(real, &sb) != 0) {
    st = DRT_ERROR(DRT_STATUS_IO, "%s: external data '%s': %s", what, location, strerror(errno));
    goto done;
  }
  if (!S_ISREG(sb.st_mode)) {
    st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: external data location '%s' is not a regular file", what,
                   location);
    goto done;
  }
  int f = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (f < 0) {
    st = DRT_ERROR(errno == ENOENT ? DRT_STATUS_NOT_FOUND : DRT_STATUS_IO, "%s: opening external data '%s': %s",
                   what, location, strerror(errno));
    goto done;
  }
  /* Re-check on the descriptor: the path may have been swapped since stat(). */
  if (fstat(f, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size < 0) {
    close(f);
    st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: external data location '%s' is not a regular file", what,
                   location);
    goto done;
  }
  *fd = f;
  *file_size = (uint64_t)sb.st_size;
done:
  free(joined);
  free(base_real);
  free(real);
  return st;
}

drt_status drt_external_read(int fd, uint64_t offset, uint64_t length, void *dst, const char *location,
                             const char *what) {
  if (length > SIZE_MAX || offset > (uint64_t)INT64_MAX || length > (uint64_t)INT64_MAX - offset)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: external data range %" PRIu64 "+%" PRIu64 " in '%s' is too large",
                     what, offset, length, location);
  unsigned char *p = dst;
  uint64_t done = 0;
  while (done < length) {
    uint64_t left = length - done;
    size_t chunk = left < DRT_EXTERNAL_CHUNK ? (size_t)left : DRT_EXTERNAL_CHUNK;
    ssize_t r = pread(fd, p + done, chunk, (off_t)(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return DRT_ERROR(DRT_STATUS_IO, "%s: reading '%s' at offset %" PRIu64 ": %s", what, location,
                       offset + done, strerror(errno));
    }
    if (r == 0)
      return DRT_ERROR(DRT_STATUS_IO, "%s: '%s' ended at offset %" PRIu64 " (file shrank while loading?)",
                       what, location, offset + done);
    done += (uint64_t)r;
  }
  return DRT_OK;
}
