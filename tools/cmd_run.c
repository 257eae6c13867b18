/* drt run: one evaluation of an ONNX model on .npy inputs. */
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "codegen/nvrtc.h"
#include "runtime/cpu/executor.h"
#include "runtime/exec.h"
#include "runtime/npy.h"
#include "tools/cli.h"
#include "runtime/plan_format.h"

#define MAX_ARGS 1024 /* --input / --output options (merged test models, KV caches) */

static void run_usage(FILE *f) {
  fprintf(f,
          "usage: drt run MODEL.onnx [--input NAME=FILE ...] [--output NAME=FILE ... | --output-dir DIR\n"
          "               [--output-format npy|pb]] [--shape NAME=DIMS ...] [--threads N] [--repeat N] [--max-memory BYTES]\n"
          "               [--backend auto|cpu|cuda] [--cuda-source FILE] [-v]\n\n"
          "Runs one evaluation (plans on the backend chosen below; ONNX models on the CPU, or with\n"
          "--backend cuda rendered as a CUDA program and compiled by NVRTC for the GPU now, in fp32;\n"
          "--cuda-source FILE also writes that program's source, e.g. for tests/cuda_emu). Inputs are matched to the\n"
          "model's inputs by name; symbolic dims are bound from them. A tensor FILE is .npy (C order, little\n"
          "endian) or, named FILE.pb, an ONNX TensorProto (as in ONNX test data sets; the only form of\n"
          "bfloat16, float8, int4 and the other types numpy lacks). --shape binds an input shape or a\n"
          "symbolic dim by name (e.g. --shape batch=2). --output-dir writes every output as <name>.npy,\n"
          "or <name>.pb with --output-format pb (characters outside [A-Za-z0-9._-] become '_'). Outputs are written to a temporary file and\n"
          "renamed, so a failure never leaves a partial file. Without outputs, prints a summary.\n"
          "Inputs with at most 256 elements are specialized to constants for this run (so shape-like\n"
          "operands given as inputs fold); --no-specialize keeps every input dynamic.\n"
          "--cfg-scale W sets the guidance scale of a plan compiled with classifier-free guidance (default:\n"
          "the scale given to drt compile); no recompilation.\n"
          "--repeat N runs the evaluation N more times after the first and prints latency statistics\n"
          "(evaluation only, excluding model load) as: latency_ms min=.. median=.. mean=..\n"
          "--max-memory BYTES (suffix K, M, G or T) is a memory budget: the model or plan file, its external\n"
          "data, folded constants, the inputs and the evaluation's peak activations are checked against it\n"
          "before they are allocated; going over fails with exit code 4 naming the budget. A failed run\n"
          "removes the output files it had created.\n" DRT_CLI_BACKEND_USAGE);
}

static void sanitize(const char *name, char *out, size_t n) {
  size_t i = 0;
  for (; name[i] && i + 1 < n; i++) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-';
    out[i] = ok ? c : '_';
  }
  out[i] = 0;
  if (strcmp(out, ".") == 0 || strcmp(out, "..") == 0 || i == 0) snprintf(out, n, "output");
}

static void summarize(const char *name, const drt_tensor *t) {
  char s[128];
  int64_t n = drt_shape_numel(&t->shape);
  double mn = INFINITY, mx = -INFINITY, sum = 0;
  int64_t nonfinite = 0;
  for (int64_t i = 0; i < n; i++) {
    double v = drt_load_f64(t->dtype, t->data, (size_t)i);
    if (!isfinite(v)) {
      nonfinite++;
      continue;
    }
    mn = v < mn ? v : mn;
    mx = v > mx ? v : mx;
    sum += v;
  }
  printf("%s: %s[%s] min %.6g max %.6g mean %.6g%s\n", name, drt_dtype_name(t->dtype),
         drt_shape_str(&t->shape, s, sizeof s), n ? mn : 0, n ? mx : 0, n ? sum / (double)n : 0,
         nonfinite ? " (has NaN/Inf)" : "");
}


/* Output files created by this run. When the run fails they are removed again, so a failure
 * leaves no outputs behind (a file that existed before and was replaced cannot be restored). */
typedef struct out_files {
  char **created;
  int n, cap;
} out_files;

static const char *g_out_ext = ".npy"; /* --output-format npy|pb, for --output-dir */

static drt_status write_output(out_files *w, const char *path, const char *name, const drt_tensor *t) {
  struct stat sb;
  bool existed = stat(path, &sb) == 0;
  if (!existed && w->n == w->cap) {
    int cap = w->cap ? 2 * w->cap : 16;
    char **p = realloc(w->created, (size_t)cap * sizeof(char *));
    if (!p) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "writing '%s'", path);
    w->created = p;
    w->cap = cap;
  }
  char *copy = existed ? NULL : strdup(path);
  if (!existed && !copy) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "writing '%s'", path);
  drt_status st = drt_cli_write_tensor(path, name, t);
  if (st || existed) free(copy);
  else w->created[w->n++] = copy;
  return st;
}

static void out_files_finish(out_files *w, bool failed) {
  for (int i = 0; i < w->n; i++) {
    if (failed) unlink(w->created[i]);
    free(w->created[i]);
  }
  free(w->created);
  memset(w, 0, sizeof *w);
}

/* Bytes of the .npy files named by --input NAME=FILE (stat only), for --max-memory. */
static uint64_t input_file_bytes(const char **in_args, int n_in) {
  uint64_t total = 0;
  for (int i = 0; i < n_in; i++) {
    const char *eq = strchr(in_args[i], '=');
    struct stat sb;
    if (eq && stat(eq + 1, &sb) == 0 && S_ISREG(sb.st_mode)) total += (uint64_t)sb.st_size;
  }
  return total;
}

bool drt_cli_is_plan(const char *path) {
  /* non-blocking and regular files only: a FIFO named as the model must not hang the peek */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat sb;
  char m[8] = {0};
  bool plan = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && read(fd, m, 8) == 8 && memcmp(m, DRT_PLAN_MAGIC, 8) == 0;
  close(fd);
  return plan;
}

static int write_outputs_api(drt_session *s, const drt_plan *p, const char *out_dir, const char **out_args, int n_out,
                             out_files *written) {
  for (int k = 0; k < drt_plan_num_outputs(p); k++) {
    drt_tensor_desc d;
    drt_plan_output(p, k, &d);
    const void *data;
    size_t nb;
    if (drt_session_get_output(s, d.name, &d, &data, &nb) != DRT_STATUS_OK) {
      fprintf(stderr, "drt run: error: %s\n", drt_last_error());
      return DRT_EXIT_INTERNAL;
    }
    drt_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = d.dtype;
    t.shape.rank = d.rank;
    for (int i = 0; i < d.rank; i++) t.shape.dims[i] = d.dims[i];
    t.data = (void *)data;
    drt_status st = DRT_OK;
    if (out_dir) {
      char fn[256], path[4096];
      sanitize(d.name, fn, sizeof fn);
      snprintf(path, sizeof path, "%s/%s%s", out_dir, fn, g_out_ext);
      st = write_output(written, path, d.name, &t);
    } else if (n_out) {
      for (int i = 0; i < n_out && !st; i++) {
        char oname[256];
        const char *file;
        if (drt_cli_split_kv(out_args[i], oname, sizeof oname, &file) && strcmp(oname, d.name) == 0)
          st = write_output(written, file, d.name, &t);
      }
    } else {
      summarize(d.name, &t);
    }
    if (st) return drt_cli_fail("run", st);
  }
  return 0;
}

/* --backend cuda on an ONNX model: the graph rendered as a CUDA program (fp32) and compiled by
 * NVRTC for the device's architecture (the disk cache of codegen/nvrtc.h makes repeats fast). */
typedef struct cuda_jit {
  drt_cuda_context *ctx;
  drt_cuda_program *prog;
  drt_nvrtc_image img;
  drt_cuda_module *mod;
} cuda_jit;

static const char *g_cuda_source; /* --cuda-source FILE */

static drt_status jit_create(cuda_jit *j, const drt_graph *g, const char *model, drt_exec **out) {
  drt_status cs = drt_cuda_context_acquire(0, &j->ctx);
  if (cs) {
    drt_status e = DRT_ERROR(drt_status_code_of(cs), "%s (drop --backend cuda to run the model on the CPU)",
                             drt_status_message(cs));
    drt_status_free(cs);
    return e;
  }
  const drt_cuda_device_info *dev = drt_cuda_context_device(j->ctx);
  drt_cuda_codegen_options co;
  drt_cuda_codegen_options_init(&co);
  co.precision = DRT_CUDA_PRECISION_FP32;
  co.allow_host_fallback = true;
  const drt_graph *graphs[1] = {g};
  DRT_RETURN_IF_ERROR_CTX(drt_cuda_program_build(graphs, 1, &co, &j->prog), "%s: CUDA code generation", model);
  if (g_cuda_source) {
    FILE *f = fopen(g_cuda_source, "wb");
    bool ok = f && fwrite(j->prog->source, 1, j->prog->source_len, f) == j->prog->source_len;
    if (f && fclose(f) != 0) ok = false;
    if (!ok) return DRT_ERROR(DRT_STATUS_IO, "--cuda-source: cannot write '%s'", g_cuda_source);
  }
  char arch[16];
  snprintf(arch, sizeof arch, "sm_%d%d", dev->cc_major, dev->cc_minor);
  const char *archs[1] = {arch};
  drt_nvrtc_compile_options no;
  drt_nvrtc_compile_options_init(&no);
  DRT_RETURN_IF_ERROR_CTX(drt_nvrtc_compile(j->prog, archs, 1, &no, &j->img), "%s: compiling for %s (%s)", model,
                          arch, dev->name);
  drt_plan_cuda bins;
  memset(&bins, 0, sizeof bins);
  bins.present = true;
  bins.precision = DRT_CUDA_PRECISION_FP32;
  bins.source_hash = j->prog->source_hash;
  bins.num_images = 1;
  snprintf(bins.images[0].arch, sizeof bins.images[0].arch, "%s", j->img.arch);
  bins.images[0].data = j->img.data;
  bins.images[0].size = j->img.size;
  DRT_RETURN_IF_ERROR(drt_cuda_module_load(j->ctx, j->prog, &bins, &j->mod));
  drt_cuda_executor_options eo;
  drt_cuda_executor_options_init(&eo);
  return drt_exec_create_cuda(j->mod, 0, &eo, out);
}

static void jit_free(cuda_jit *j) { /* after the executor */
  drt_cuda_module_destroy(j->mod);
  drt_nvrtc_image_free(&j->img);
  drt_cuda_program_destroy(j->prog);
  drt_cuda_context_release(j->ctx);
}

/* --cfg-scale W of a plan run (NAN: not given) */
static double g_cfg_scale = NAN;
/* --backend of a plan run */
static drt_backend g_backend = DRT_BACKEND_AUTO;
static int g_verbose;

static int run_plan(const char *path, const char **in_args, int n_in, const char **out_args, int n_out,
                    const char *out_dir, int threads, int repeat, uint64_t max_memory) {
  drt_plan *p = NULL;
  drt_session *s = NULL;
  drt_tensor tensors[MAX_ARGS];
  int loaded = 0, rc = 0;
  out_files written = {NULL, 0, 0};
  drt_status bst = drt_cli_check_file_size(max_memory, path);
  if (bst) return drt_cli_fail("run", bst);
  drt_status_code lc = drt_plan_load_file(path, &p);
  if (lc != DRT_STATUS_OK) {
    fprintf(stderr, "drt run: error: %s\n", drt_last_error());
    return drt_cli_exit_code(lc);
  }
  /* --output names and --output-dir are checked before anything runs */
  for (int i = 0; i < n_out; i++) {
    char oname[256];
    const char *file;
    bool known = false;
    if (!drt_cli_split_kv(out_args[i], oname, sizeof oname, &file)) {
      rc = drt_cli_usage_error("run", "--output expects NAME=FILE (.npy or .pb), got '%s'", out_args[i]);
      goto done;
    }
    for (int k = 0; k < drt_plan_num_outputs(p); k++) {
      drt_tensor_desc d;
      if (drt_plan_output(p, k, &d) == DRT_STATUS_OK && strcmp(d.name, oname) == 0) known = true;
    }
    if (!known) {
      rc = drt_cli_fail("run", DRT_ERROR(DRT_STATUS_NOT_FOUND, "%s: the plan has no output named '%s'", path, oname));
      goto done;
    }
  }
  if (out_dir) {
    struct stat sb;
    if (stat(out_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
      rc = drt_cli_fail("run", DRT_ERROR(DRT_STATUS_NOT_FOUND, "--output-dir '%s' is not a directory", out_dir));
      goto done;
    }
  }
  if (max_memory) {
    drt_memory_info mi;
    drt_plan_memory(p, &mi);
    bst = drt_cli_check_memory(max_memory, path, mi.weights, mi.activations + mi.workspace,
                               input_file_bytes(in_args, n_in), "inputs");
    if (bst) {
      rc = drt_cli_fail("run", bst);
      goto done;
    }
  }
  drt_session_options so;
  drt_session_options_init(&so);
  so.num_threads = threads;
  so.backend = g_backend;
  drt_status_code c = drt_session_create(p, &so, &s);
  if (c == DRT_STATUS_OK && g_verbose)
    fprintf(stderr, "drt run: running on %s\n", drt_backend_name(drt_session_backend(s)));
  if (c == DRT_STATUS_OK && !isnan(g_cfg_scale)) c = drt_session_set_guidance_scale(s, g_cfg_scale);
  for (int i = 0; i < n_in && c == DRT_STATUS_OK; i++) {
    char name[256];
    const char *file;
    if (!drt_cli_split_kv(in_args[i], name, sizeof name, &file)) {
      rc = drt_cli_usage_error("run", "--input expects NAME=FILE (.npy or .pb), got '%s'", in_args[i]);
      goto done;
    }
    drt_status st = drt_cli_read_tensor(file, &tensors[i]);
    if (st) {
      rc = drt_cli_fail("run", drt_status_annotate(st, "input '%s'", name));
      goto done;
    }
    loaded = i + 1;
    c = drt_session_set_input(s, name, tensors[i].dtype, tensors[i].shape.rank, tensors[i].shape.dims,
                              tensors[i].data, drt_tensor_nbytes(&tensors[i]));
  }
  if (c == DRT_STATUS_OK) c = drt_session_run(s);
  if (c == DRT_STATUS_OK && repeat > 0) {
    double sum = 0, mn = 1e30;
    double *ms = calloc((size_t)repeat, sizeof(double));
    for (int r = 0; r < repeat && c == DRT_STATUS_OK && ms; r++) {
      struct timespec t0, t1;
      clock_gettime(CLOCK_MONOTONIC, &t0);
      c = drt_session_run(s);
      clock_gettime(CLOCK_MONOTONIC, &t1);
      ms[r] = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
      sum += ms[r];
      mn = ms[r] < mn ? ms[r] : mn;
    }
    if (ms && c == DRT_STATUS_OK) {
      for (int a = 1; a < repeat; a++)
        for (int b = a; b > 0 && ms[b - 1] > ms[b]; b--) {
          double x = ms[b];
          ms[b] = ms[b - 1];
          ms[b - 1] = x;
        }
      printf("latency_ms min=%.3f median=%.3f mean=%.3f runs=%d\n", mn, ms[repeat / 2], sum / repeat, repeat);
    }
    /* on the GPU also the device time of one evaluation (CUDA events, transfers excluded) */
    if (ms && c == DRT_STATUS_OK && drt_session_backend(s) == DRT_BACKEND_CUDA) {
      c = drt_session_profile_device(s, repeat, ms);
      if (c == DRT_STATUS_OK) {
        sum = 0;
        for (int a = 0; a < repeat; a++) sum += ms[a];
        for (int a = 1; a < repeat; a++)
          for (int b = a; b > 0 && ms[b - 1] > ms[b]; b--) {
            double x = ms[b];
            ms[b] = ms[b - 1];
            ms[b - 1] = x;
          }
        printf("gpu_ms min=%.3f median=%.3f mean=%.3f runs=%d\n", ms[0], ms[repeat / 2], sum / repeat, repeat);
      }
    }
    free(ms);
  }
  if (c != DRT_STATUS_OK) {
    fprintf(stderr, "drt run: error: %s\n", drt_last_error());
    rc = drt_cli_exit_code(c);
    goto done;
  }
  rc = write_outputs_api(s, p, out_dir, out_args, n_out, &written);
done:
  out_files_finish(&written, rc != 0);
  for (int i = 0; i < loaded; i++) free(tensors[i].data);
  drt_session_destroy(s);
  drt_plan_destroy(p);
  return rc;
}

int drt_cmd_run(int argc, char **argv) {
  const char *model = NULL, *out_dir = NULL;
  const char *in_args[MAX_ARGS], *out_args[MAX_ARGS];
  int n_in = 0, n_out = 0, n_shapes = 0, threads = 0, verbose = 0, repeat = 0;
  int64_t specialize = 256;
  uint64_t max_memory = 0;
  static drt_cli_shape shapes[64];
  for (int i = 1; i < argc; i++) {
    const char *v;
    int err = 0;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      run_usage(stdout);
      return 0;
    } else if (drt_cli_opt(argc, argv, &i, "--input", &v, &err) || drt_cli_opt(argc, argv, &i, "-i", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      if (n_in >= MAX_ARGS) return drt_cli_usage_error("run", "too many --input options");
      in_args[n_in++] = v;
    } else if (drt_cli_opt(argc, argv, &i, "--output", &v, &err) || drt_cli_opt(argc, argv, &i, "-o", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      if (n_out >= MAX_ARGS) return drt_cli_usage_error("run", "too many --output options");
      out_args[n_out++] = v;
    } else if (drt_cli_opt(argc, argv, &i, "--output-dir", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      out_dir = v;
    } else if (drt_cli_opt(argc, argv, &i, "--output-format", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      if (strcmp(v, "npy") && strcmp(v, "pb"))
        return drt_cli_usage_error("run", "--output-format expects npy or pb, got '%s'", v);
      g_out_ext = strcmp(v, "pb") ? ".npy" : ".pb";
    } else if (drt_cli_opt(argc, argv, &i, "--shape", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      if (n_shapes >= 64) return drt_cli_usage_error("run", "too many --shape options");
      const char *dims;
      if (!drt_cli_split_kv(v, shapes[n_shapes].name, sizeof shapes[n_shapes].name, &dims))
        return drt_cli_usage_error("run", "--shape expects NAME=DIMS, got '%s'", v);
      drt_status s = drt_cli_parse_dims(dims, &shapes[n_shapes].shape);
      if (s) {
        fprintf(stderr, "drt run: %s\n", drt_status_message(s));
        drt_status_free(s);
        return DRT_EXIT_USAGE;
      }
      n_shapes++;
    } else if (drt_cli_opt(argc, argv, &i, "--threads", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      char *end;
      long t = strtol(v, &end, 10);
      if (*end || t < 0 || t > 1024) return drt_cli_usage_error("run", "--threads expects a number, got '%s'", v);
      threads = (int)t;
    } else if (drt_cli_opt(argc, argv, &i, "--repeat", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      char *end;
      long t = strtol(v, &end, 10);
      if (*end || t < 0 || t > 1000000) return drt_cli_usage_error("run", "--repeat expects a count, got '%s'", v);
      repeat = (int)t;
    } else if (drt_cli_opt(argc, argv, &i, "--max-memory", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      drt_status s = drt_cli_parse_bytes(v, &max_memory);
      if (s) {
        int rc = drt_cli_usage_error("run", "--max-memory: %s", drt_status_message(s));
        drt_status_free(s);
        return rc;
      }
    } else if (drt_cli_opt(argc, argv, &i, "--cfg-scale", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      char *end;
      g_cfg_scale = strtod(v, &end);
      if (*end || end == v || !isfinite(g_cfg_scale))
        return drt_cli_usage_error("run", "--cfg-scale expects a number, got '%s'", v);
    } else if (drt_cli_opt(argc, argv, &i, "--backend", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      if (!drt_cli_parse_backend(v, &g_backend))
        return drt_cli_usage_error("run", "--backend must be auto, cpu or cuda, got '%s'", v);
    } else if (drt_cli_opt(argc, argv, &i, "--cuda-source", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      g_cuda_source = v;
    } else if (strcmp(argv[i], "--no-specialize") == 0) {
      specialize = -1;
    } else if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0) {
      verbose++;
    } else if (argv[i][0] == '-') {
      return drt_cli_usage_error("run", "unknown option '%s'", argv[i]);
    } else if (!model) {
      model = argv[i];
    } else {
      return drt_cli_usage_error("run", "unexpected argument '%s'", argv[i]);
    }
  }
  if (!model) return drt_cli_usage_error("run", "missing MODEL.onnx");
  if (n_out && out_dir) return drt_cli_usage_error("run", "use either --output or --output-dir, not both");
  drt_cli_install_logger(verbose);
  g_verbose = verbose;
  if (drt_cli_is_plan(model))
    return run_plan(model, in_args, n_in, out_args, n_out, out_dir, threads, repeat, max_memory);
  if (!isnan(g_cfg_scale))
    return drt_cli_usage_error("run", "--cfg-scale applies to plans compiled with --cfg-scale (drt compile), not to "
                               "ONNX models");

  int rc = DRT_EXIT_OK;
  drt_status st = DRT_OK;
  char in_names[MAX_ARGS][256];
  const char *in_name_ptrs[MAX_ARGS];
  drt_tensor in_tensors[MAX_ARGS];
  memset(in_tensors, 0, sizeof in_tensors);
  drt_graph *g = NULL;
  drt_exec *ex = NULL;
  cuda_jit jit;
  memset(&jit, 0, sizeof jit);
  drt_tensor *graph_in = NULL, *graph_out = NULL;
  int loaded = 0;
  out_files written = {NULL, 0, 0};

  for (int i = 0; i < n_in; i++) {
    const char *file;
    if (!drt_cli_split_kv(in_args[i], in_names[i], sizeof in_names[i], &file)) {
      rc = drt_cli_usage_error("run", "--input expects NAME=FILE (.npy or .pb), got '%s'", in_args[i]);
      goto done;
    }
    for (int k = 0; k < i; k++)
      if (strcmp(in_names[k], in_names[i]) == 0) {
        rc = drt_cli_usage_error("run", "input '%s' given twice", in_names[i]);
        goto done;
      }
    in_name_ptrs[i] = in_names[i];
    st = drt_cli_check_file_size(max_memory, file);
    if (!st) st = drt_cli_read_tensor(file, &in_tensors[i]);
    if (st) {
      st = drt_status_annotate(st, "input '%s'", in_names[i]);
      goto done;
    }
    loaded = i + 1;
  }
  st = drt_cli_prepare_model(model, shapes, n_shapes, in_name_ptrs, in_tensors, n_in, specialize, max_memory, &g);
  if (st) goto done;
  /* every graph input must be provided */
  graph_in = calloc(g->num_inputs + 1, sizeof(drt_tensor));
  graph_out = calloc(g->num_outputs + 1, sizeof(drt_tensor));
  if (!graph_in || !graph_out) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "allocating run state");
    goto done;
  }
  for (size_t k = 0; k < g->num_inputs; k++) {
    int found = -1;
    for (int i = 0; i < n_in; i++)
      if (strcmp(in_names[i], g->inputs[k]->name) == 0) found = i;
    if (found < 0) {
      char s[128];
      /* specialized inputs are constants now and no longer graph inputs */
      st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: input '%s' (%s[%s]) was not provided: pass --input %s=FILE.npy",
                     model, g->inputs[k]->name, drt_dtype_name(g->inputs[k]->dtype),
                     drt_shape_str(&g->inputs[k]->shape, s, sizeof s), g->inputs[k]->name);
      goto done;
    }
    graph_in[k] = in_tensors[found];
  }
  for (int i = 0; i < n_out; i++) {
    char name[256];
    const char *file;
    if (!drt_cli_split_kv(out_args[i], name, sizeof name, &file)) {
      rc = drt_cli_usage_error("run", "--output expects NAME=FILE (.npy or .pb), got '%s'", out_args[i]);
      goto done;
    }
    bool ok = false;
    for (size_t k = 0; k < g->num_outputs; k++) ok |= strcmp(g->outputs[k]->name, name) == 0;
    if (!ok) {
      st = DRT_ERROR(DRT_STATUS_NOT_FOUND, "%s: model has no output named '%s'", model, name);
      goto done;
    }
  }
  if (out_dir) {
    struct stat sb;
    if (stat(out_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
      st = DRT_ERROR(DRT_STATUS_NOT_FOUND, "--output-dir '%s' is not a directory", out_dir);
      goto done;
    }
  }
  if (max_memory) {
    /* everything the evaluation holds at its peak, computed before anything is allocated */
    uint64_t weights = 0, inputs = 0;
    for (size_t i = 0; i < g->num_values; i++)
      if (g->values[i]->kind == DRT_VALUE_CONST) weights += g->values[i]->nbytes;
    for (int i = 0; i < loaded; i++) inputs += drt_tensor_nbytes(&in_tensors[i]);
    st = drt_cli_check_memory(max_memory, model, weights, drt_cpu_executor_peak_bytes(g), inputs, "inputs");
    if (st) goto done;
  }
  drt_cpu_executor_options eo;
  drt_cpu_executor_options_init(&eo);
  eo.num_threads = threads;
  if (g_backend == DRT_BACKEND_CUDA) st = jit_create(&jit, g, model, &ex);
  else st = drt_exec_create_cpu(g, &eo, &ex);
  if (st) goto done;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  st = drt_exec_run(ex, graph_in, graph_out);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (st) {
    st = drt_status_annotate(st, "%s", model);
    goto done;
  }
  if (verbose)
    fprintf(stderr, "drt run: evaluation took %.3f ms\n",
            (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
  if (repeat > 0) {
    double *ms = malloc((size_t)repeat * sizeof(double));
    if (!ms) {
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "latency samples");
      goto done;
    }
    drt_tensor *tmp = calloc(g->num_outputs + 1, sizeof(drt_tensor));
    if (!tmp) st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "latency samples");
    for (int r = 0; r < repeat && !st; r++) {
      clock_gettime(CLOCK_MONOTONIC, &t0);
      st = drt_exec_run(ex, graph_in, tmp);
      clock_gettime(CLOCK_MONOTONIC, &t1);
      ms[r] = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
      for (size_t k = 0; k < g->num_outputs && !st; k++) free(tmp[k].data);
    }
    free(tmp);
    if (!st) {
      for (int a = 1; a < repeat; a++)
        for (int b = a; b > 0 && ms[b - 1] > ms[b]; b--) {
          double x = ms[b];
          ms[b] = ms[b - 1];
          ms[b - 1] = x;
        }
      double sum = 0;
      for (int r = 0; r < repeat; r++) sum += ms[r];
      printf("latency_ms min=%.3f median=%.3f mean=%.3f runs=%d\n", ms[0], ms[repeat / 2], sum / repeat, repeat);
    }
    free(ms);
    if (st) goto done;
  }
  for (size_t k = 0; k < g->num_outputs && !st; k++) {
    const char *name = g->outputs[k]->name;
    if (out_dir) {
      char fn[256], path[4096];
      sanitize(name, fn, sizeof fn);
      snprintf(path, sizeof path, "%s/%s%s", out_dir, fn, g_out_ext);
      st = write_output(&written, path, name, &graph_out[k]);
    } else if (n_out) {
      for (int i = 0; i < n_out && !st; i++) {
        char oname[256];
        const char *file;
        drt_cli_split_kv(out_args[i], oname, sizeof oname, &file);
        if (strcmp(oname, name) == 0) st = write_output(&written, file, name, &graph_out[k]);
      }
    } else {
      summarize(name, &graph_out[k]);
    }
  }
done:
  if (st) rc = drt_cli_fail("run", st);
  out_files_finish(&written, rc != 0);
  if (graph_out && g)
    for (size_t k = 0; k < g->num_outputs; k++) free(graph_out[k].data);
  for (int i = 0; i < loaded; i++) free(in_tensors[i].data);
  free(graph_in);
  free(graph_out);
  drt_exec_destroy(ex);
  jit_free(&jit);
  drt_graph_destroy(g);
  return rc;
}
