/* drt bench: per-evaluation and whole-generation latency, NFE, memory; teacher vs student. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "distilrt.h"
#include "runtime/npy.h"
#include "tools/cli.h"
#include "tools/cli_lora.h"

#define MAX_STEPS_LIST 16

typedef struct {
  double min, median, mean, p90, p99;
  int n;
} stats;

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static stats summarize(double *ms, int n) {
  stats s = {0, 0, 0, 0, 0, n};
  if (n <= 0) return s;
  qsort(ms, (size_t)n, sizeof(double), cmp_double);
  double sum = 0;
  for (int i = 0; i < n; i++) sum += ms[i];
  s.min = ms[0];
  s.median = ms[n / 2];
  s.mean = sum / n;
  s.p90 = ms[(int)floor(0.9 * (n - 1))];
  s.p99 = ms[(int)floor(0.99 * (n - 1))];
  return s;
}

/* Fills every input of the plan: from --input files where given, else seeded random data
 * (latency does not depend on values). Buffers are owned by `bufs`. */
static int prepare_inputs(drt_session *s, const drt_plan *p, int bucket, const char **in_args, int n_in, void **bufs) {
  for (int i = 0; i < drt_plan_num_inputs(p); i++) {
    drt_tensor_desc d;
    drt_plan_bucket_input(p, bucket, i, &d);
    drt_tensor t;
    memset(&t, 0, sizeof t);
    bool from_file = false;
    for (int k = 0; k < n_in; k++) {
      char name[256];
      const char *file;
      if (!drt_cli_split_kv(in_args[k], name, sizeof name, &file) || strcmp(name, d.name) != 0) continue;
      drt_status st = drt_cli_read_tensor(file, &t);
      if (st) return drt_cli_fail("bench", drt_status_annotate(st, "input '%s'", name));
      from_file = true;
    }
    if (!from_file && (d.role == DRT_ROLE_GUIDANCE_SCALE || d.role == DRT_ROLE_GUIDANCE_STATE)) {
      bufs[i] = NULL; /* the session's default guidance scale and its own momentum state */
      continue;
    }
    if (!from_file) {
      t.dtype = d.dtype;
      t.shape.rank = d.rank;
      for (int k = 0; k < d.rank; k++) t.shape.dims[k] = d.dims[k];
      size_t nb = drt_tensor_nbytes(&t);
      t.data = malloc(nb ? nb : 1);
      if (!t.data) return drt_cli_fail("bench", DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "input '%s'", d.name));
      int64_t n = drt_shape_numel(&t.shape);
      uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t)i;
      for (int64_t k = 0; k < n; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        float v = d.role == DRT_ROLE_TIMESTEP ? 500.0f : (float)((x >> 40) / 16777216.0 * 2.0 - 1.0);
        if (d.dtype == DRT_DTYPE_FLOAT32) ((float *)t.data)[k] = v;
        else drt_convert(d.dtype, (char *)t.data + (size_t)k * drt_dtype_size(d.dtype), DRT_DTYPE_FLOAT32, &v, 1);
      }
    }
    bufs[i] = t.data;
    if (drt_session_set_input(s, d.name, t.dtype, t.shape.rank, t.shape.dims, t.data, drt_tensor_nbytes(&t)) !=
        DRT_STATUS_OK) {
      fprintf(stderr, "drt bench: error: %s\n", drt_last_error());
      return DRT_EXIT_BAD_INPUT;
    }
  }
  return 0;
}

typedef struct {
  const char *label;
  int steps;        /* 0 = one network evaluation */
  stats st;
  uint64_t nfe;     /* network evaluations per image */
  uint64_t passes;  /* forward passes per image (2x per step for unfolded CFG) */
  bool cfg;         /* classifier-free guidance folded into the plan: one pass per step */
} bench_row;

/* What the student plan is adapted with: LoRAs, and a shape (picks a bucket). */
typedef struct bench_adapt {
  drt_cli_loras *loras;
  const drt_cli_shape *shape; /* NULL: bucket 0 */
} bench_adapt;

/* The bucket whose input `shape->name` has shape->shape; -1 (error printed) when none. */
static int find_bucket(const drt_plan *p, const drt_cli_shape *shape) {
  char want[128];
  drt_shape_str(&shape->shape, want, sizeof want);
  for (int b = 0; b < drt_plan_num_buckets(p); b++)
    for (int i = 0; i < drt_plan_num_inputs(p); i++) {
      drt_tensor_desc d;
      drt_plan_bucket_input(p, b, i, &d);
      if (strcmp(d.name, shape->name) != 0) continue;
      bool eq = d.rank == shape->shape.rank;
      for (int k = 0; eq && k < d.rank; k++) eq = d.dims[k] == shape->shape.dims[k];
      if (eq) return b;
    }
  fprintf(stderr, "drt bench: error: --shape %s=%s matches no shape bucket of the plan (see drt inspect)\n",
          shape->name, want);
  return -1;
}

/* GPU rows (CUDA sessions): device time of one evaluation and of whole generations. */
typedef struct bench_gpu {
  drt_backend backend;        /* of the measured plan's session (student) */
  bench_row rows[2 * MAX_STEPS_LIST + 2];
  int n_rows;
  int replayed;               /* generations that replayed a captured CUDA graph */
  bool profile;               /* --profile: the launch profile of one evaluation */
  drt_profile_row prof[48];
  int n_prof;
  double prof_total_ms;
} bench_gpu;

static int bench_plan(const char *path, const char *label, const int *steps_list, int n_steps, const char *schedule,
                      const char **in_args, int n_in, int warmup, int iters, int threads, bench_row *rows, int *n_rows,
                      drt_memory_info *mem, const bench_adapt *ad, drt_backend backend, bench_gpu *gpu) {
  drt_plan *p = NULL;
  drt_session *s = NULL;
  void *bufs[256] = {0};
  double *ms = NULL, *gms = NULL;
  int rc = 0;
  if (drt_plan_load_file(path, &p) != DRT_STATUS_OK) {
    fprintf(stderr, "drt bench: error: %s\n", drt_last_error());
    return DRT_EXIT_BAD_INPUT;
  }
  int bucket = 0;
  if (ad && ad->shape && (bucket = find_bucket(p, ad->shape)) < 0) {
    rc = DRT_EXIT_BAD_INPUT;
    goto done;
  }
  drt_plan_bucket_memory(p, bucket, mem);
  if (ad && ad->loras && (rc = drt_cli_loras_load(ad->loras, "bench", p)) != 0) goto done;
  double cfg_scale = 0;
  const char *cfg_mode = drt_plan_guidance(p, &cfg_scale);
  if (cfg_mode)
    fprintf(stderr, "drt bench: %s: classifier-free guidance folded into the plan (%s, scale %g): one batched network "
            "pass per step\n", label, cfg_mode, cfg_scale);
  drt_session_options so;
  drt_session_options_init(&so);
  so.num_threads = threads;
  so.backend = backend;
  drt_status_code sc = drt_session_create(p, &so, &s);
  if (sc != DRT_STATUS_OK || drt_plan_num_inputs(p) > 256) {
    fprintf(stderr, "drt bench: error: %s\n", drt_last_error());
    rc = sc != DRT_STATUS_OK ? drt_cli_exit_code(sc) : DRT_EXIT_INTERNAL;
    goto done;
  }
  bool on_gpu = drt_session_backend(s) == DRT_BACKEND_CUDA;
  if (gpu && !strcmp(label, "student")) gpu->backend = drt_session_backend(s);
  if (gpu && gpu->profile && !on_gpu)
    fprintf(stderr, "drt bench: --profile times CUDA launches; this session runs on the CPU, so there is no "
            "launch profile (use --backend cuda on a machine with a GPU)\n");
  if (ad && ad->loras && (rc = drt_cli_loras_session(ad->loras, "bench", s)) != 0) goto done;
  if (bucket && drt_session_select_bucket(s, bucket) != DRT_STATUS_OK) {
    fprintf(stderr, "drt bench: error: %s\n", drt_last_error());
    rc = DRT_EXIT_INTERNAL;
    goto done;
  }
  rc = prepare_inputs(s, p, bucket, in_args, n_in, bufs);
  if (rc) goto done;
  /* drt_session_profile_device fills one entry per warm-up and timed run */
  ms = calloc((size_t)warmup + (size_t)iters + 1, sizeof(double));
  gms = calloc((size_t)warmup + (size_t)iters + 1, sizeof(double));
  if (!ms || !gms) {
    rc = DRT_EXIT_INTERNAL;
    goto done;
  }
  /* one network evaluation */
  for (int i = 0; i < warmup + iters; i++) {
    double t0 = now_ms();
    if (drt_session_run(s) != DRT_STATUS_OK) {
      fprintf(stderr, "drt bench: error: %s\n", drt_last_error());
      rc = DRT_EXIT_INTERNAL;
      goto done;
    }
    if (i >= warmup) ms[i - warmup] = now_ms() - t0;
  }
  rows[*n_rows] = (bench_row){label, 0, summarize(ms, iters), 1, 1, cfg_mode != NULL};
  (*n_rows)++;
  if (on_gpu && gpu) { /* device time of one evaluation: CUDA events around it, transfers excluded */
    if (drt_session_profile_device(s, warmup + iters, ms) != DRT_STATUS_OK) {
      fprintf(stderr, "drt bench: error: %s\n", drt_last_error());
      rc = DRT_EXIT_INTERNAL;
      goto done;
    }
    gpu->rows[gpu->n_rows++] = (bench_row){label, 0, summarize(ms + warmup, iters), 1, 1, cfg_mode != NULL};
    if (gpu->profile && drt_session_profile_launches(s, iters < 5 ? iters : 5, gpu->prof, 48, &gpu->n_prof,
                                                     &gpu->prof_total_ms) != DRT_STATUS_OK) {
      fprintf(stderr, "drt bench: error: %s\n", drt_last_error());
      rc = DRT_EXIT_INTERNAL;
      goto done;
    }
  }
  for (int k = 0; k < n_steps; k++) {
    drt_generate_options go;
    drt_generate_options_init(&go);
    go.schedule = schedule;
    go.steps = steps_list[k];
    for (int i = 0; i < warmup + iters; i++) {
      go.seed = (uint64_t)i;
      uint64_t nfe0 = drt_session_nfe(s);
      double t0 = now_ms();
      if (drt_session_generate(s, &go) != DRT_STATUS_OK) {
        fprintf(stderr, "drt bench: error: %s\n", drt_last_error());
        rc = DRT_EXIT_BAD_INPUT;
        goto done;
      }
      if (i >= warmup) ms[i - warmup] = now_ms() - t0;
      rows[*n_rows].nfe = drt_session_nfe(s) - nfe0;
      int replayed = 0;
      double g = drt_session_generate_device_ms(s, &replayed);
      if (i >= warmup) gms[i - warmup] = g;
      if (gpu && replayed) gpu->replayed++;
    }
    if (on_gpu && gpu && gms[0] >= 0) {
      gpu->rows[gpu->n_rows] = (bench_row){label, steps_list[k], summarize(gms, iters), rows[*n_rows].nfe,
                                           rows[*n_rows].nfe, cfg_mode != NULL};
      gpu->n_rows++;
    }
    rows[*n_rows].label = label;
    rows[*n_rows].steps = steps_list[k];
    rows[*n_rows].st = summarize(ms, iters);
    rows[*n_rows].passes = rows[*n_rows].nfe;
    rows[*n_rows].cfg = cfg_mode != NULL;
    (*n_rows)++;
  }
done:
  for (int i = 0; i < 256; i++) free(bufs[i]);
  free(ms);
  free(gms);
  drt_session_destroy(s);
  drt_plan_destroy(p);
  if (ad && ad->loras) drt_cli_loras_free(ad->loras);
  return rc;
}

static int parse_steps(const char *v, int *out, int *n) {
  *n = 0;
  const char *p = v;
  while (*p) {
    char *end;
    long x = strtol(p, &end, 10);
    if (end == p || x < 1 || x > 10000 || *n >= MAX_STEPS_LIST) return -1;
    out[(*n)++] = (int)x;
    p = *end == ',' ? end + 1 : end;
    if (*end && *end != ',') return -1;
  }
  return *n ? 0 : -1;
}

int drt_cmd_bench(int argc, char **argv) {
  const char *plan = NULL, *teacher = NULL, *schedule = NULL, *teacher_schedule = NULL;
  const char *in_args[256];
  int n_in = 0, warmup = 2, iters = 10, threads = 0, n_steps = 0, n_tsteps = 1;
  int steps_list[MAX_STEPS_LIST], tsteps[MAX_STEPS_LIST] = {50};
  bool json = false;
  drt_backend backend = DRT_BACKEND_AUTO;
  static bench_gpu gpu;
  memset(&gpu, 0, sizeof gpu);
  gpu.backend = DRT_BACKEND_CPU;
  static drt_cli_loras loras;
  memset(&loras, 0, sizeof loras);
  drt_cli_shape shape;
  bool have_shape = false;
  for (int i = 1; i < argc; i++) {
    const char *v;
    int err = 0;
    int lr = drt_cli_lora_option(&loras, "bench", argc, argv, &i);
    if (lr < 0) return -lr;
    if (lr > 0) continue;
    if (drt_cli_opt(argc, argv, &i, "--shape", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      const char *dims;
      if (!drt_cli_split_kv(v, shape.name, sizeof shape.name, &dims))
        return drt_cli_usage_error("bench", "--shape expects NAME=DIMS, got '%s'", v);
      drt_status ss = drt_cli_parse_dims(dims, &shape.shape);
      if (ss) {
        int rc = drt_cli_usage_error("bench", "--shape %s", drt_status_message(ss));
        drt_status_free(ss);
        return rc;
      }
      have_shape = true;
      continue;
    }
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      printf("usage: drt bench PLAN [--steps 1,2,4] [--schedule NAME] [--warmup N] [--iterations N] [--threads N]\n"
             "                 [--input NAME=FILE.npy ...] [--json] [--shape NAME=DIMS] [--backend auto|cpu|cuda]\n"
             "                 [--lora FILE[:STRENGTH] ...] [--lora-mode merged|unmerged] [--profile]\n"
             "                 [--teacher TEACHER.plan [--teacher-steps 50] [--teacher-schedule NAME]]\n\n"
             "Reports latency of one network evaluation and of whole generations (min/median/mean/p90/p99,\n"
             "host wall time), network evaluations (NFE) and forward passes per image, and peak memory.\n"
             "Inputs not given are filled with seeded random data. With --teacher the teacher is measured\n"
             "the same way and the student's speedup per image is printed. --shape picks the shape bucket\n"
             "whose input NAME has these dims (plans compiled with --shapes). On the GPU the table also has 'gpu'\n"
             "rows: the device time of one evaluation (CUDA events around it, host transfers excluded) and of\n"
             "whole generations (one captured CUDA graph per generation); the other rows stay host latency.\n"
             "--profile (CUDA) adds where one evaluation spends its GPU time: launches run one by one with an\n"
             "event after each, summed by kernel routine or GEMM shape (TFLOP/s for GEMMs).\n"
             DRT_CLI_BACKEND_USAGE
             "--lora applies to the plan measured (not the teacher):\n%s", drt_cli_lora_usage());
      return 0;
    } else if (drt_cli_opt(argc, argv, &i, "--steps", &v, &err)) {
      if (err || parse_steps(v, steps_list, &n_steps)) return drt_cli_usage_error("bench", "--steps expects e.g. 1,2,4");
    } else if (drt_cli_opt(argc, argv, &i, "--teacher-steps", &v, &err)) {
      if (err || parse_steps(v, tsteps, &n_tsteps)) return drt_cli_usage_error("bench", "--teacher-steps expects e.g. 50");
    } else if (drt_cli_opt(argc, argv, &i, "--teacher-schedule", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      teacher_schedule = v;
    } else if (drt_cli_opt(argc, argv, &i, "--schedule", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      schedule = v;
    } else if (drt_cli_opt(argc, argv, &i, "--teacher", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      teacher = v;
    } else if (drt_cli_opt(argc, argv, &i, "--warmup", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      warmup = atoi(v);
      if (warmup < 0 || warmup > 100000) return drt_cli_usage_error("bench", "bad --warmup");
    } else if (drt_cli_opt(argc, argv, &i, "--iterations", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      iters = atoi(v);
      if (iters < 1 || iters > 1000000) return drt_cli_usage_error("bench", "bad --iterations");
    } else if (drt_cli_opt(argc, argv, &i, "--threads", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      threads = atoi(v);
    } else if (drt_cli_opt(argc, argv, &i, "--input", &v, &err)) {
      if (err || n_in >= 256) return DRT_EXIT_USAGE;
      in_args[n_in++] = v;
    } else if (drt_cli_opt(argc, argv, &i, "--backend", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      if (!drt_cli_parse_backend(v, &backend))
        return drt_cli_usage_error("bench", "--backend must be auto, cpu or cuda, got '%s'", v);
    } else if (strcmp(argv[i], "--json") == 0) {
      json = true;
    } else if (strcmp(argv[i], "--profile") == 0) {
      gpu.profile = true;
    } else if (argv[i][0] == '-') {
      return drt_cli_usage_error("bench", "unknown option '%s'", argv[i]);
    } else if (!plan) {
      plan = argv[i];
    } else {
      return drt_cli_usage_error("bench", "unexpected argument '%s'", argv[i]);
    }
  }
  if (!plan) return drt_cli_usage_error("bench", "missing PLAN");
  if (n_steps == 0) {
    steps_list[0] = 1, steps_list[1] = 2, steps_list[2] = 4;
    n_steps = 3;
  }
  drt_cli_install_logger(0);
  bench_row rows[2 * MAX_STEPS_LIST + 2];
  int n_rows = 0;
  drt_memory_info mem, tmem = {0, 0, 0};
  bench_adapt ad = {&loras, have_shape ? &shape : NULL};
  int rc = bench_plan(plan, "student", steps_list, n_steps, schedule, in_args, n_in, warmup, iters, threads, rows,
                      &n_rows, &mem, &ad, backend, &gpu);
  if (rc) return rc;
  int student_rows = n_rows;
  if (teacher) {
    rc = bench_plan(teacher, "teacher", tsteps, n_tsteps, teacher_schedule, in_args, n_in, warmup,
                    iters > 3 ? 3 : iters, threads, rows, &n_rows, &tmem, NULL, backend, NULL);
    if (rc) return rc;
  }
  bool noisy = false;
  for (int i = 0; i < n_rows; i++) noisy |= rows[i].st.n >= 5 && rows[i].st.p90 > 1.25 * rows[i].st.median;
  if (json) {
    printf("{\"plan\": \"%s\", \"iterations\": %d, \"memory\": {\"weights\": %" PRIu64 ", \"activations\": %" PRIu64
           ", \"workspace\": %" PRIu64 "}, \"rows\": [",
           plan, iters, mem.weights, mem.activations, mem.workspace);
    for (int i = 0; i < n_rows; i++)
      printf("%s{\"model\": \"%s\", \"cfg\": %s, \"steps\": %d, \"nfe\": %" PRIu64 ", \"forward_passes\": %" PRIu64
             ", \"min_ms\": %.4f, \"median_ms\": %.4f, \"mean_ms\": %.4f, \"p90_ms\": %.4f, \"p99_ms\": %.4f}",
             i ? ", " : "", rows[i].label, rows[i].cfg ? "true" : "false", rows[i].steps, rows[i].nfe, rows[i].passes,
             rows[i].st.min, rows[i].st.median, rows[i].st.mean, rows[i].st.p90, rows[i].st.p99);
    printf("]");
    if (gpu.backend == DRT_BACKEND_CUDA) {
      printf(", \"backend\": \"cuda\", \"gpu_rows\": [");
      for (int i = 0; i < gpu.n_rows; i++)
        printf("%s{\"model\": \"%s\", \"steps\": %d, \"nfe\": %" PRIu64 ", \"min_ms\": %.4f, \"median_ms\": %.4f, "
               "\"mean_ms\": %.4f, \"p90_ms\": %.4f, \"p99_ms\": %.4f}",
               i ? ", " : "", gpu.rows[i].label, gpu.rows[i].steps, gpu.rows[i].nfe, gpu.rows[i].st.min,
               gpu.rows[i].st.median, gpu.rows[i].st.mean, gpu.rows[i].st.p90, gpu.rows[i].st.p99);
      printf("], \"graph_replays\": %d", gpu.replayed);
      if (gpu.n_prof) {
        printf(", \"profile\": {\"total_ms\": %.4f, \"rows\": [", gpu.prof_total_ms);
        for (int i = 0; i < gpu.n_prof; i++)
          printf("%s{\"name\": \"%s\", \"op\": \"%s\", \"calls\": %d, \"ms\": %.4f, \"flops\": %.0f}", i ? ", " : "",
                 gpu.prof[i].name, gpu.prof[i].op, gpu.prof[i].calls, gpu.prof[i].ms, gpu.prof[i].flops);
        printf("]}");
      }
    }
    printf(", \"noisy\": %s}\n", noisy ? "true" : "false");
    return 0;
  }
  printf("%-8s %-10s %5s %7s %10s %10s %10s %10s %10s\n", "model", "what", "NFE", "passes", "min ms", "median", "mean",
         "p90", "p99");
  for (int i = 0; i < n_rows; i++) {
    char what[32];
    if (rows[i].steps) snprintf(what, sizeof what, "%d-step", rows[i].steps);
    else snprintf(what, sizeof what, "1 eval");
    printf("%-8s %-10s %5" PRIu64 " %7" PRIu64 " %10.3f %10.3f %10.3f %10.3f %10.3f\n", rows[i].label, what,
           rows[i].nfe, rows[i].passes, rows[i].st.min, rows[i].st.median, rows[i].st.mean, rows[i].st.p90,
           rows[i].st.p99);
  }
  for (int i = 0; i < gpu.n_rows; i++) { /* CUDA sessions: device time from events */
    char what[32];
    if (gpu.rows[i].steps) snprintf(what, sizeof what, "gpu %d-step", gpu.rows[i].steps);
    else snprintf(what, sizeof what, "gpu 1 eval");
    printf("%-8s %-10s %5" PRIu64 " %7" PRIu64 " %10.3f %10.3f %10.3f %10.3f %10.3f\n", gpu.rows[i].label, what,
           gpu.rows[i].nfe, gpu.rows[i].passes, gpu.rows[i].st.min, gpu.rows[i].st.median, gpu.rows[i].st.mean,
           gpu.rows[i].st.p90, gpu.rows[i].st.p99);
  }
  if (gpu.backend == DRT_BACKEND_CUDA)
    printf("backend: cuda (rows without 'gpu': host latency; 'gpu' rows: device time from CUDA events; %d generations "
           "replayed a captured CUDA graph)\n", gpu.replayed);
  if (gpu.n_prof) {
    printf("\nlaunch profile of one evaluation (GPU %.3f ms in launches, one by one):\n", gpu.prof_total_ms);
    printf("%8s %6s %5s %8s  %-16s %s\n", "ms", "%", "calls", "TFLOP/s", "op", "what");
    for (int i = 0; i < gpu.n_prof; i++) {
      char tf[16] = "";
      if (gpu.prof[i].flops > 0 && gpu.prof[i].ms > 0)
        snprintf(tf, sizeof tf, "%.1f", gpu.prof[i].flops / (gpu.prof[i].ms * 1e-3) / 1e12);
      printf("%8.3f %5.1f%% %5d %8s  %-16s %s\n", gpu.prof[i].ms,
             gpu.prof_total_ms > 0 ? 100.0 * gpu.prof[i].ms / gpu.prof_total_ms : 0.0, gpu.prof[i].calls, tf,
             gpu.prof[i].op, gpu.prof[i].name);
    }
  }
  printf("memory: weights %.2f MiB, peak activations %.2f MiB, workspace %.2f MiB\n", mem.weights / 1048576.0,
         mem.activations / 1048576.0, mem.workspace / 1048576.0);
  if (teacher && n_rows > student_rows + 1) {
    const bench_row *t = &rows[n_rows - 1];
    for (int i = 1; i < student_rows; i++)
      printf("speedup: student %d-step vs teacher %d-step: %.1fx per image (%" PRIu64 " vs %" PRIu64
             " network evaluations)\n",
             rows[i].steps, t->steps, t->st.median / rows[i].st.median, rows[i].nfe, t->nfe);
  }
  if (noisy) printf("warning: run-to-run spread is high (p90 > 1.25 x median); results are noisy\n");
  return 0;
}
