/* Example: embed distilrt in a C program.
 *
 *   generate MODEL.plan OUT.npy [STEPS] [SEED] [NAME=FILE.npy ...]
 *
 * Loads a compiled plan, sets the conditioning inputs (from .npy files, or zeros), runs the
 * plan's sampling schedule and writes the final latent as a float32 .npy file. Uses only the
 * public header <distilrt.h>. */
#include <distilrt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void log_cb(drt_log_level level, const char *msg, void *user) {
  (void)user;
  if (level <= DRT_LOG_WARN) fprintf(stderr, "distilrt: %s\n", msg);
}

/* Reads a little-endian float32 .npy (version 1.0) into a malloc'd buffer. */
static float *read_npy_f32(const char *path, size_t *count) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  unsigned char head[10];
  float *data = NULL;
  if (fread(head, 1, 10, f) == 10 && memcmp(head, "\x93NUMPY", 6) == 0 && head[6] == 1) {
    size_t hlen = (size_t)head[8] | ((size_t)head[9] << 8);
    char *h = malloc(hlen + 1);
    if (h && fread(h, 1, hlen, f) == hlen) {
      h[hlen] = 0;
      if (strstr(h, "'<f4'") && strstr(h, "'fortran_order': False")) {
        long start = ftell(f);
        fseek(f, 0, SEEK_END);
        long end = ftell(f);
        fseek(f, start, SEEK_SET);
        *count = (size_t)(end - start) / 4;
        data = malloc(*count * 4 + 4);
        if (data && fread(data, 4, *count, f) != *count) {
          free(data);
          data = NULL;
        }
      }
    }
    free(h);
  }
  fclose(f);
  return data;
}

static int write_npy_f32(const char *path, const drt_tensor_desc *d, const void *data, size_t nbytes) {
  char shape[256] = "";
  size_t off = 0;
  for (int i = 0; i < d->rank; i++)
    off += (size_t)snprintf(shape + off, sizeof shape - off, "%lld,", (long long)d->dims[i]);
  char header[512];
  int n = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", shape);
  int pad = 64 - (10 + n + 1) % 64;
  if (pad == 64) pad = 0;
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  unsigned short hl = (unsigned short)(n + pad + 1);
  fwrite("\x93NUMPY\x01\x00", 1, 8, f);
  fputc(hl & 0xff, f);
  fputc(hl >> 8, f);
  fwrite(header, 1, (size_t)n, f);
  for (int i = 0; i < pad; i++) fputc(' ', f);
  fputc('\n', f);
  size_t w = fwrite(data, 1, nbytes, f);
  return fclose(f) == 0 && w == nbytes ? 0 : -1;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL.plan OUT.npy [STEPS] [SEED] [NAME=FILE.npy ...]\n", argv[0]);
    return 1;
  }
  drt_log_set(log_cb, NULL, DRT_LOG_WARN);
  int steps = argc > 3 ? atoi(argv[3]) : 0;
  uint64_t seed = argc > 4 ? strtoull(argv[4], NULL, 10) : 0;
  drt_plan *plan = NULL;
  drt_session *session = NULL;
  void *buffers[64] = {0};
  int rc = 1;
  if (drt_plan_load_file(argv[1], &plan) != DRT_STATUS_OK) goto fail;
  if (drt_session_create(plan, NULL, &session) != DRT_STATUS_OK) goto fail;
  /* conditioning inputs: from NAME=FILE.npy arguments, else zeros */
  for (int i = 0; i < drt_plan_num_inputs(plan) && i < 64; i++) {
    drt_tensor_desc d;
    drt_plan_input(plan, i, &d);
    if (d.role == DRT_ROLE_LATENT || d.role == DRT_ROLE_TIMESTEP) continue;
    size_t count = 1;
    for (int k = 0; k < d.rank; k++) count *= (size_t)d.dims[k];
    void *data = NULL;
    for (int a = 5; a < argc; a++) {
      size_t nl = strlen(d.name);
      if (strncmp(argv[a], d.name, nl) == 0 && argv[a][nl] == '=') {
        size_t got = 0;
        data = read_npy_f32(argv[a] + nl + 1, &got);
        if (!data || got != count) {
          fprintf(stderr, "%s: expected %zu float32 values\n", argv[a], count);
          free(data);
          goto done;
        }
      }
    }
    if (!data) data = calloc(count, 4);
    buffers[i] = data;
    if (d.dtype != DRT_DTYPE_FLOAT32) {
      fprintf(stderr, "input %s: this example only feeds float32 inputs\n", d.name);
      goto done;
    }
    if (drt_session_set_input(session, d.name, d.dtype, d.rank, d.dims, data, count * 4) != DRT_STATUS_OK) goto fail;
  }
  drt_generate_options go;
  drt_generate_options_init(&go);
  go.steps = steps;
  go.seed = seed;
  if (drt_session_generate(session, &go) != DRT_STATUS_OK) goto fail;
  const char *latent = NULL;
  for (int i = 0; i < drt_plan_num_inputs(plan); i++) {
    drt_tensor_desc d;
    drt_plan_input(plan, i, &d);
    if (d.role == DRT_ROLE_LATENT) latent = d.name;
  }
  drt_tensor_desc out;
  const void *data;
  size_t nbytes;
  if (!latent || drt_session_get_output(session, latent, &out, &data, &nbytes) != DRT_STATUS_OK) goto fail;
  if (write_npy_f32(argv[2], &out, data, nbytes) != 0) {
    fprintf(stderr, "cannot write %s\n", argv[2]);
    goto done;
  }
  printf("wrote %s after %llu network evaluations\n", argv[2], (unsigned long long)drt_session_nfe(session));
  rc = 0;
  goto done;
fail:
  fprintf(stderr, "error: %s\n", drt_last_error());
done:
  for (int i = 0; i < 64; i++) free(buffers[i]);
  drt_session_destroy(session);
  drt_plan_destroy(plan);
  return rc;
}
