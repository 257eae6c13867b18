#include "tools/cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "frontend/onnx.h"
#include "passes/canonicalize.h"
#include "passes/pipeline.h"
#include "runtime/npy.h"
#include "runtime/plan.h"

int drt_cli_exit_code(drt_status_code code) {
  switch (code) {
    case DRT_STATUS_OK: return DRT_EXIT_OK;
    case DRT_STATUS_INVALID_ARGUMENT:
    case DRT_STATUS_NOT_FOUND:
    case DRT_STATUS_CORRUPT:
    case DRT_STATUS_IO: return DRT_EXIT_BAD_INPUT;
    case DRT_STATUS_UNSUPPORTED:
    case DRT_STATUS_UNIMPLEMENTED:
    case DRT_STATUS_UNAVAILABLE: return DRT_EXIT_UNSUPPORTED;
    default: return DRT_EXIT_INTERNAL;
  }
}

drt_status drt_cli_read_plan(const char *path, drt_plan_contents *out) {
  void *bytes;
  size_t size;
  DRT_RETURN_IF_ERROR(drt_read_file(path, 0, &bytes, &size));
  return drt_plan_parse(bytes, size, path, out); /* owns bytes from here */
}

int drt_cli_fail(const char *cmd, drt_status s) {
  int code = drt_cli_exit_code(drt_status_code_of(s));
  fprintf(stderr, "drt %s: error: %s\n", cmd, drt_status_message(s));
  drt_status_free(s);
  return code;
}

bool drt_cli_parse_backend(const char *text, drt_backend *out) {
  if (strcmp(text, "auto") == 0) *out = DRT_BACKEND_AUTO;
  else if (strcmp(text, "cpu") == 0) *out = DRT_BACKEND_CPU;
  else if (strcmp(text, "cuda") == 0 || strcmp(text, "gpu") == 0) *out = DRT_BACKEND_CUDA;
  else return false;
  return true;
}

int drt_cli_usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "drt %s: ", cmd);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n(see 'drt %s --help')\n", cmd);
  va_end(ap);
  return DRT_EXIT_USAGE;
}

static void log_to_stderr(drt_log_level level, const char *msg, void *user) {
  (void)user;
  static const char *names[] = {"error", "warning", "info", "debug"};
  fprintf(stderr, "[drt %s] %s\n", names[level <= DRT_LOG_DEBUG ? level : 0], msg);
}

void drt_cli_install_logger(int verbosity) {
  drt_log_level lvl = verbosity >= 2 ? DRT_LOG_DEBUG : verbosity == 1 ? DRT_LOG_INFO : DRT_LOG_WARN;
  drt_log_set(log_to_stderr, NULL, lvl);
}

drt_status drt_cli_parse_dims(const char *text, drt_shape *out) {
  memset(out, 0, sizeof *out);
  if (!*text || strcmp(text, "scalar") == 0) return DRT_OK;
  const char *p = text;
  for (;;) {
    if (out->rank >= DRT_MAX_RANK)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "shape '%s' has more than %d dims", text, DRT_MAX_RANK);
    char *end;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (end == p || errno || v < 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "bad shape '%s': expected dims like 1x4x64x64", text);
    out->dims[out->rank++] = v;
    if (*end == 0) break;
    if (*end != 'x' && *end != ',' && *end != 'X')
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "bad shape '%s': expected dims like 1x4x64x64", text);
    p = end + 1;
  }
  return DRT_OK;
}

drt_status drt_cli_parse_bytes(const char *text, uint64_t *out) {
  const char *p = text;
  uint64_t v = 0;
  if (*p < '0' || *p > '9')
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "bad byte count '%s': expected a number like 512M or 4G", text);
  for (; *p >= '0' && *p <= '9'; p++) {
    uint64_t d = (uint64_t)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "byte count '%s' is too large", text);
    v = v * 10 + d;
  }
  unsigned shift = 0;
  switch (*p) {
    case 0: break;
    case 'b': case 'B':
      if (p[1] == 0) p++;
      break;
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    case 't': case 'T': shift = 40; break;
    default:
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "bad byte count '%s': the suffix must be K, M, G or T", text);
  }
  if (*p && !shift)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "bad byte count '%s': the suffix must be K, M, G or T", text);
  if (*p) {
    p++;
    if (*p == 'i' || *p == 'I') p++;
    if (*p == 'b' || *p == 'B') p++;
    if (*p)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "bad byte count '%s': the suffix must be K, M, G or T", text);
  }
  if (shift && v > (UINT64_MAX >> shift))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "byte count '%s' is too large", text);
  *out = v << shift;
  return DRT_OK;
}

bool drt_cli_split_kv(const char *arg, char *name, size_t name_size, const char **value) {
  const char *eq = strchr(arg, '=');
  if (!eq || (size_t)(eq - arg) >= name_size) return false;
  memcpy(name, arg, (size_t)(eq - arg));
  name[eq - arg] = 0;
  *value = eq + 1;
  return true;
}

bool drt_cli_opt(int argc, char **argv, int *i, const char *opt, const char **value, int *err) {
  size_t ol = strlen(opt);
  const char *a = argv[*i];
  if (strncmp(a, opt, ol) != 0) return false;
  if (a[ol] == '=') {
    *value = a + ol + 1;
    return true;
  }
  if (a[ol] != 0) return false;
  if (*i + 1 >= argc) {
    fprintf(stderr, "drt: option %s needs a value\n", opt);
    *err = 1;
    return true;
  }
  *value = argv[++*i];
  return true;
}

drt_status drt_cli_prepare_model(const char *path, const drt_cli_shape *shapes, int num_shapes,
                                 const char *const *input_names, const drt_tensor *inputs, int num_inputs,
                                 int64_t specialize_max, uint64_t max_memory, drt_graph **out) {
  *out = NULL;
  drt_onnx_options oo;
  drt_onnx_options_init(&oo);
  oo.max_bytes = max_memory;
  drt_graph *g = NULL;
  DRT_RETURN_IF_ERROR(drt_cli_check_file_size(max_memory, path));
  drt_status ls = drt_onnx_load_file(path, &oo, &g);
  if (ls && max_memory && drt_status_code_of(ls) == DRT_STATUS_OUT_OF_MEMORY)
    ls = drt_status_annotate(ls, "memory budget of %" PRIu64 " bytes (--max-memory)", max_memory);
  if (ls) return ls;
  drt_status st = DRT_OK;
  for (int i = 0; i < num_inputs && !st; i++) {
    drt_value *v = NULL;
    for (size_t k = 0; k < g->num_inputs; k++)
      if (strcmp(g->inputs[k]->name, input_names[i]) == 0) v = g->inputs[k];
    if (v && v->dtype != inputs[i].dtype) {
      st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input '%s' has dtype %s, the model expects %s", input_names[i],
                     drt_dtype_name(inputs[i].dtype), drt_dtype_name(v->dtype));
      break;
    }
    int64_t numel = drt_shape_numel(&inputs[i].shape);
    if (v && numel >= 0 && numel <= specialize_max)
      st = drt_graph_specialize_input(g, input_names[i], &inputs[i]);
    else
      st = drt_graph_bind_input(g, input_names[i], &inputs[i].shape);
  }
  for (int i = 0; i < num_shapes && !st; i++) {
    bool is_input = false;
    for (size_t k = 0; k < g->num_inputs; k++) is_input |= strcmp(g->inputs[k]->name, shapes[i].name) == 0;
    if (is_input) {
      st = drt_graph_bind_input(g, shapes[i].name, &shapes[i].shape);
    } else if (shapes[i].shape.rank == 1) {
      st = drt_graph_bind_dim(g, shapes[i].name, shapes[i].shape.dims[0]);
    } else {
      st = DRT_ERROR(DRT_STATUS_NOT_FOUND, "--shape %s: no input or symbolic dimension has this name", shapes[i].name);
    }
  }
  if (!st) {
    drt_pass_ctx pc = {0};
    pc.max_memory = max_memory;
    st = drt_pipeline_run(g, &pc, NULL);
  }
  if (!st) st = drt_graph_verify(g, true);
  if (st) {
    drt_graph_destroy(g);
    return drt_status_annotate(st, "%s", path);
  }
  *out = g;
  return DRT_OK;
}

static double mib(uint64_t b) { return (double)b / 1048576.0; }

drt_status drt_cli_check_memory(uint64_t budget, const char *what, uint64_t weights, uint64_t activations,
                                uint64_t other, const char *other_what) {
  if (!budget) return DRT_OK;
  uint64_t need = weights;
  need = activations > UINT64_MAX - need ? UINT64_MAX : need + activations;
  need = other > UINT64_MAX - need ? UINT64_MAX : need + other;
  if (need <= budget) return DRT_OK;
  if (need == UINT64_MAX)
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "%s needs more memory than can be counted, over the memory budget of "
                     "%" PRIu64 " bytes (--max-memory)", what, budget);
  return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY,
                   "%s needs %" PRIu64 " bytes (%.1f MiB: weights %.1f MiB, peak activations %.1f MiB, %s %.1f MiB), "
                   "over the memory budget of %" PRIu64 " bytes (--max-memory)",
                   what, need, mib(need), mib(weights), mib(activations), other_what, mib(other), budget);
}

static bool has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

bool drt_cli_is_tensor_proto_path(const char *path) { return has_suffix(path, ".pb"); }

drt_status drt_cli_read_tensor(const char *path, drt_tensor *out) {
  if (drt_cli_is_tensor_proto_path(path)) return drt_onnx_tensor_read_file(path, 0, out, NULL);
  return drt_npy_read_file(path, out);
}

drt_status drt_cli_write_tensor(const char *path, const char *name, const drt_tensor *t) {
  if (!drt_cli_is_tensor_proto_path(path)) {
    drt_status st = drt_npy_write_file(path, t);
    if (st && drt_status_code_of(st) == DRT_STATUS_UNSUPPORTED)
      st = drt_status_annotate(st, "output '%s': write it as an ONNX TensorProto instead (a FILE.pb name, or "
                               "--output-format pb)", name);
    return st;
  }
  void *bytes;
  size_t size;
  DRT_RETURN_IF_ERROR_CTX(drt_onnx_tensor_serialize(name, t, &bytes, &size), "'%s'", path);
  drt_status st = drt_write_file_atomic(path, bytes, size);
  free(bytes);
  return st;
}

drt_status drt_cli_check_file_size(uint64_t budget, const char *path) {
  struct stat sb;
  if (!budget || stat(path, &sb) != 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size <= budget) return DRT_OK;
  return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "'%s' is %" PRIu64 " bytes, over the memory budget of %" PRIu64
                   " bytes (--max-memory)", path, (uint64_t)sb.st_size, budget);
}
