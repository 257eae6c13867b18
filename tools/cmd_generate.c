/* drt generate: the whole sampling loop of a compiled plan. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "distilrt.h"
#include "runtime/npy.h"
#include "runtime/plan.h"
#include "tools/cli.h"
#include "tools/cli_lora.h"
#include "tools/png.h"

static void gen_usage(FILE *f) {
  fprintf(f,
          "usage: drt generate PLAN [--schedule NAME] [--steps N] [--schedule-params K=V,...]\n"
          "                    [--timesteps T1,T2,... | --sigmas S1,S2,...] [--timestep-scale K]\n"
          "                    [--seed S | --noise FILE.npy] [--input NAME=FILE.npy ...] [--threads N]\n"
          "                    [--cfg-scale W] [--lora FILE[:STRENGTH] ...] [--lora-mode merged|unmerged]\n"
          "                    [--backend auto|cpu|cuda]\n"
          "                    -o OUT.npy [--decoder VAE.plan --png OUT.png]\n\n"
          "Runs the sampling loop: x_T from the seeded Philox generator (or --noise), then per step the\n"
          "network on the scaled latent and the schedule's update. Schedules: flow-euler, ddim, euler-a,\n"
          "lcm, dmd2, tcd, cm, scm (default: the plan's, from drt compile --schedule). --timesteps/--sigmas\n"
          "give a custom grid. --timestep-scale K feeds the model K times the schedule's time. Inputs other\n"
          "than the latent and the timestep are conditioning and must be given. With --decoder the final\n"
          "latent is decoded by a second plan and written as a PNG. --cfg-scale W overrides the guidance\n"
          "scale of a plan compiled with classifier-free guidance (one batched evaluation per step).\n"
          DRT_CLI_BACKEND_USAGE
          "On the GPU the whole loop stays on the device (one CUDA graph, replayed by later generations\n"
          "with the same options); the GPU time is printed after the NFE count. The --decoder plan runs on\n"
          "the GPU when it has CUDA code and the GPU can run it, else on the CPU.\n");
  fputs(drt_cli_lora_usage(), f);
}

static int set_inputs_from_files(drt_session *s, const drt_plan *p, const char **args, int n, drt_tensor *held,
                                 int *n_held) {
  for (int i = 0; i < n; i++) {
    char name[256];
    const char *file;
    if (!drt_cli_split_kv(args[i], name, sizeof name, &file))
      return drt_cli_usage_error("generate", "--input expects NAME=FILE.npy, got '%s'", args[i]);
    drt_status st = drt_cli_read_tensor(file, &held[*n_held]);
    if (st) return drt_cli_fail("generate", drt_status_annotate(st, "input '%s'", name));
    drt_tensor *t = &held[(*n_held)++];
    if (drt_session_set_input(s, name, t->dtype, t->shape.rank, t->shape.dims, t->data, drt_tensor_nbytes(t)) !=
        DRT_STATUS_OK) {
      fprintf(stderr, "drt generate: error: %s\n", drt_last_error());
      return DRT_EXIT_BAD_INPUT;
    }
  }
  (void)p;
  return 0;
}

int drt_cmd_generate(int argc, char **argv) {
  const char *plan = NULL, *out = NULL, *schedule = NULL, *params = NULL, *noise_file = NULL, *decoder = NULL,
             *png = NULL, *grid = NULL, *grid_kind = NULL;
  const char *in_args[256];
  int n_in = 0, steps = 0, threads = 0, verbose = 0;
  drt_backend backend = DRT_BACKEND_AUTO;
  uint64_t seed = 0;
  double ts_scale = 0, cfg_scale = NAN;
  static drt_cli_loras loras;
  memset(&loras, 0, sizeof loras);
  for (int i = 1; i < argc; i++) {
    const char *v;
    int err = 0;
    int lr = drt_cli_lora_option(&loras, "generate", argc, argv, &i);
    if (lr < 0) return -lr;
    if (lr > 0) continue;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      gen_usage(stdout);
      return 0;
    } else if (drt_cli_opt(argc, argv, &i, "--schedule", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      schedule = v;
    } else if (drt_cli_opt(argc, argv, &i, "--schedule-params", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      params = v;
    } else if (drt_cli_opt(argc, argv, &i, "--steps", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      char *end;
      long s = strtol(v, &end, 10);
      if (*end || s < 1 || s > 1000) return drt_cli_usage_error("generate", "--steps expects 1..1000, got '%s'", v);
      steps = (int)s;
    } else if (drt_cli_opt(argc, argv, &i, "--timesteps", &v, &err) ||
               drt_cli_opt(argc, argv, &i, "--sigmas", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      grid = v;
      grid_kind = strstr(argv[i - 1], "sigmas") || strstr(argv[i], "sigmas") ? "sigmas" : "timesteps";
    } else if (drt_cli_opt(argc, argv, &i, "--timestep-scale", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      char *end;
      ts_scale = strtod(v, &end);
      if (*end || !(ts_scale > 0)) return drt_cli_usage_error("generate", "--timestep-scale expects K > 0, got '%s'", v);
    } else if (drt_cli_opt(argc, argv, &i, "--cfg-scale", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      char *end;
      cfg_scale = strtod(v, &end);
      if (*end || end == v || !isfinite(cfg_scale))
        return drt_cli_usage_error("generate", "--cfg-scale expects a number, got '%s'", v);
    } else if (drt_cli_opt(argc, argv, &i, "--seed", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      char *end;
      seed = strtoull(v, &end, 10);
      if (*end) return drt_cli_usage_error("generate", "--seed expects an integer, got '%s'", v);
    } else if (drt_cli_opt(argc, argv, &i, "--noise", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      noise_file = v;
    } else if (drt_cli_opt(argc, argv, &i, "--input", &v, &err) || drt_cli_opt(argc, argv, &i, "-i", &v, &err)) {
      if (err || n_in >= 256) return DRT_EXIT_USAGE;
      in_args[n_in++] = v;
    } else if (drt_cli_opt(argc, argv, &i, "--threads", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      threads = atoi(v);
    } else if (drt_cli_opt(argc, argv, &i, "--backend", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      if (!drt_cli_parse_backend(v, &backend))
        return drt_cli_usage_error("generate", "--backend must be auto, cpu or cuda, got '%s'", v);
    } else if (drt_cli_opt(argc, argv, &i, "-o", &v, &err) || drt_cli_opt(argc, argv, &i, "--output", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      out = v;
    } else if (drt_cli_opt(argc, argv, &i, "--decoder", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      decoder = v;
    } else if (drt_cli_opt(argc, argv, &i, "--png", &v, &err)) {
      if (err) return DRT_EXIT_USAGE;
      png = v;
    } else if (strcmp(argv[i], "-v") == 0) {
      verbose++;
    } else if (argv[i][0] == '-') {
      return drt_cli_usage_error("generate", "unknown option '%s'", argv[i]);
    } else if (!plan) {
      plan = argv[i];
    } else {
      return drt_cli_usage_error("generate", "unexpected argument '%s'", argv[i]);
    }
  }
  if (!plan) return drt_cli_usage_error("generate", "missing PLAN");
  if (!out && !png) return drt_cli_usage_error("generate", "missing -o OUT.npy (or --png with --decoder)");
  if ((png != NULL) != (decoder != NULL)) return drt_cli_usage_error("generate", "--png and --decoder go together");
  drt_cli_install_logger(verbose);
  /* grid "a,b,c" -> schedule params "timesteps=a/b/c" */
  char param_buf[8192] = "";
  if (grid) {
    size_t off = (size_t)snprintf(param_buf, sizeof param_buf, "%s%s%s=", params ? params : "", params ? "," : "",
                                  grid_kind);
    for (const char *c = grid; *c && off + 1 < sizeof param_buf; c++) param_buf[off++] = *c == ',' ? '/' : *c;
    param_buf[off] = 0;
    params = param_buf;
  }
  drt_plan *p = NULL;
  drt_session *s = NULL;
  drt_tensor held[257];
  int n_held = 0, rc = 0;
  float *noise = NULL;
  if (drt_plan_load_file(plan, &p) != DRT_STATUS_OK) {
    fprintf(stderr, "drt generate: error: %s\n", drt_last_error());
    drt_cli_loras_free(&loras);
    return DRT_EXIT_BAD_INPUT;
  }
  drt_session_options so;
  drt_session_options_init(&so);
  so.num_threads = threads;
  so.backend = backend;
  rc = drt_cli_loras_load(&loras, "generate", p);
  if (rc) goto done;
  drt_status_code sc = drt_session_create(p, &so, &s);
  if (sc != DRT_STATUS_OK) {
    fprintf(stderr, "drt generate: error: %s\n", drt_last_error());
    rc = drt_cli_exit_code(sc);
    goto done;
  }
  if (verbose) fprintf(stderr, "drt generate: running on %s\n", drt_backend_name(drt_session_backend(s)));
  rc = drt_cli_loras_session(&loras, "generate", s);
  if (rc) goto done;
  rc = set_inputs_from_files(s, p, in_args, n_in, held, &n_held);
  if (rc) goto done;
  if (!isnan(cfg_scale) && drt_session_set_guidance_scale(s, cfg_scale) != DRT_STATUS_OK) {
    fprintf(stderr, "drt generate: error: %s\n", drt_last_error());
    rc = DRT_EXIT_BAD_INPUT;
    goto done;
  }
  const char *latent = NULL;
  drt_tensor_desc ld;
  memset(&ld, 0, sizeof ld);
  for (int i = 0; i < drt_plan_num_inputs(p); i++) {
    drt_tensor_desc d;
    drt_plan_input(p, i, &d);
    if (d.role == DRT_ROLE_LATENT) {
      latent = d.name;
      ld = d;
    }
  }
  if (noise_file && latent) {
    drt_tensor t;
    drt_status st = drt_cli_read_tensor(noise_file, &t);
    if (st) {
      rc = drt_cli_fail("generate", drt_status_annotate(st, "--noise"));
      goto done;
    }
    bool ok = t.dtype == DRT_DTYPE_FLOAT32 && t.shape.rank == ld.rank;
    for (int k = 0; ok && k < ld.rank; k++) ok = t.shape.dims[k] == ld.dims[k];
    if (!ok) {
      char a[128];
      free(t.data);
      rc = drt_cli_fail("generate", DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                                              "--noise %s: expected float32 with the latent's shape, got %s[%s]",
                                              noise_file, drt_dtype_name(t.dtype), drt_shape_str(&t.shape, a, sizeof a)));
      goto done;
    }
    noise = t.data;
  }
  drt_generate_options go;
  drt_generate_options_init(&go);
  go.schedule = schedule;
  go.steps = steps;
  go.schedule_params = params;
  go.seed = seed;
  go.noise = noise;
  go.timestep_scale = ts_scale;
  if (drt_session_generate(s, &go) != DRT_STATUS_OK) {
    fprintf(stderr, "drt generate: error: %s\n", drt_last_error());
    rc = DRT_EXIT_BAD_INPUT;
    goto done;
  }
  drt_tensor_desc d;
  const void *data;
  size_t nb;
  if (!latent || drt_session_get_output(s, latent, &d, &data, &nb) != DRT_STATUS_OK) {
    fprintf(stderr, "drt generate: error: %s\n", drt_last_error());
    rc = DRT_EXIT_INTERNAL;
    goto done;
  }
  drt_tensor res;
  memset(&res, 0, sizeof res);
  res.dtype = d.dtype;
  res.shape.rank = d.rank;
  for (int k = 0; k < d.rank; k++) res.shape.dims[k] = d.dims[k];
  res.data = (void *)data;
  if (out) {
    drt_status st = drt_cli_write_tensor(out, "sample", &res);
    if (st) {
      rc = drt_cli_fail("generate", st);
      goto done;
    }
  }
  double gpu_ms = drt_session_generate_device_ms(s, NULL);
  if (gpu_ms >= 0)
    printf("generated %s: %" PRIu64 " network evaluations (GPU %.3f ms)\n", out ? out : "(png only)",
           drt_session_nfe(s), gpu_ms);
  else
    printf("generated %s: %" PRIu64 " network evaluations\n", out ? out : "(png only)", drt_session_nfe(s));
  if (decoder) {
    drt_plan *vp = NULL;
    drt_session *vs = NULL;
    drt_tensor_desc vin, vout;
    const void *img;
    size_t img_nb;
    drt_status_code c = drt_plan_load_file(decoder, &vp);
    /* the decoder follows --backend, except that a decoder compiled for the CPU only still runs
       after a --backend cuda generation */
    drt_session_options vo = so;
    if (vo.backend == DRT_BACKEND_CUDA) vo.backend = DRT_BACKEND_AUTO;
    if (c == DRT_STATUS_OK) c = drt_session_create(vp, &vo, &vs);
    if (c == DRT_STATUS_OK && drt_plan_num_inputs(vp) != 1) {
      fprintf(stderr, "drt generate: error: decoder plan '%s' must have exactly one input (the latent)\n", decoder);
      rc = DRT_EXIT_BAD_INPUT;
    } else {
      if (c == DRT_STATUS_OK) c = drt_plan_input(vp, 0, &vin);
      if (c == DRT_STATUS_OK) c = drt_session_set_input(vs, vin.name, res.dtype, res.shape.rank, res.shape.dims, data, nb);
      if (c == DRT_STATUS_OK) c = drt_session_run(vs);
      if (c == DRT_STATUS_OK) c = drt_plan_output(vp, 0, &vout);
      if (c == DRT_STATUS_OK) c = drt_session_get_output(vs, vout.name, &vout, &img, &img_nb);
      if (c != DRT_STATUS_OK) {
        fprintf(stderr, "drt generate: error: decoder '%s': %s\n", decoder, drt_last_error());
        rc = drt_cli_exit_code(c);
      } else {
        drt_tensor it;
        memset(&it, 0, sizeof it);
        it.dtype = vout.dtype;
        it.shape.rank = vout.rank;
        for (int k = 0; k < vout.rank; k++) it.shape.dims[k] = vout.dims[k];
        it.data = (void *)img;
        drt_status st = drt_png_write_tensor(png, &it);
        if (st) rc = drt_cli_fail("generate", st);
        else printf("decoded with %s -> %s\n", decoder, png);
      }
    }
    drt_session_destroy(vs);
    drt_plan_destroy(vp);
  }
done:
  for (int i = 0; i < n_held; i++) free(held[i].data);
  free(noise);
  drt_session_destroy(s);
  drt_plan_destroy(p);
  drt_cli_loras_free(&loras);
  return rc;
}
