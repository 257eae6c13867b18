/* Table-driven sampling schedules (see runtime/sampler.h for the model and the list).
 *
 * Each builder mirrors the diffusers scheduler it names: the timestep grid is computed with
 * the same numpy/torch arithmetic (float32 where diffusers stores float32), and the step
 * formulas are rewritten as the affine maps x0_hat/eps_hat/x_next of drt_sched_step. */
#include "runtime/sampler.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define MAX_TRAIN_TIMESTEPS 100000

/* ------------------------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------------------------ */
static const char *const k_kind_names[DRT_SCHED_COUNT] = {
    "flow-euler", "ddim", "euler-a", "lcm", "dmd2", "tcd", "cm", "scm",
};
static const int k_default_steps[DRT_SCHED_COUNT] = {4, 50, 1, 4, 4, 4, 1, 2};

const char *drt_sched_kind_name(drt_sched_kind kind) {
  if ((int)kind < 0 || kind >= DRT_SCHED_COUNT) return NULL;
  return k_kind_names[kind];
}

drt_status drt_sched_kind_from_name(const char *name, drt_sched_kind *out) {
  if (!name) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "schedule name is NULL");
  for (int k = 0; k < DRT_SCHED_COUNT; k++) {
    if (strcmp(name, k_kind_names[k]) == 0) {
      *out = (drt_sched_kind)k;
      return DRT_OK;
    }
  }
  return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                   "unknown schedule '%s' (known: flow-euler, ddim, euler-a, lcm, dmd2, tcd, cm, scm)", name);
}

int drt_sched_default_steps(drt_sched_kind kind) {
  if ((int)kind < 0 || kind >= DRT_SCHED_COUNT) return 0;
  return k_default_steps[kind];
}

static const char *prediction_name(drt_prediction p) {
  switch (p) {
    case DRT_PREDICTION_EPS: return "eps";
    case DRT_PREDICTION_V: return "v";
    case DRT_PREDICTION_X0: return "x0";
    case DRT_PREDICTION_FLOW: return "flow";
    case DRT_PREDICTION_TRIGFLOW: return "trigflow";
    case DRT_PREDICTION_DEFAULT: break;
  }
  return "default";
}

/* ------------------------------------------------------------------------------------------
 * Parameters
 * ------------------------------------------------------------------------------------------ */
void drt_schedule_params_init(drt_schedule_params *p, drt_sched_kind kind, int steps) {
  memset(p, 0, sizeof *p);
  p->kind = kind;
  p->num_steps = steps > 0 ? steps : drt_sched_default_steps(kind);
  p->prediction = DRT_PREDICTION_DEFAULT;
  p->spacing = DRT_SPACING_DEFAULT;
  p->num_train_timesteps = 1000;
  p->beta_schedule = DRT_BETA_SCALED_LINEAR;
  p->beta_start = 0.00085;
  p->beta_end = 0.012;
  p->set_alpha_to_one = true;
  p->steps_offset = 0;
  p->eta = kind == DRT_SCHED_TCD ? 0.3 : 0.0;
  p->original_steps = 50;
  p->timestep_scaling = 10.0;
  p->shift = 1.0;
  p->base_seq_len = 256;
  p->max_seq_len = 4096;
  p->base_shift = 0.5;
  p->max_shift = 1.15;
  p->sigma_min = 0.002;
  p->sigma_max = 80.0;
  p->sigma_data = 0.5;
  p->rho = 7.0;
  p->s_noise = 1.0;
  p->cm_train_steps = 40;
  p->max_t = 1.57080;
  p->mid_t = 1.3;
  p->grid_kind = DRT_GRID_NONE;
}

static int grid_steps(drt_sched_kind kind, int grid_len) {
  return kind == DRT_SCHED_SCM ? grid_len - 1 : grid_len;
}

drt_status drt_schedule_params_set_grid(drt_schedule_params *p, drt_grid_kind kind, const double *values, int n) {
  if (kind == DRT_GRID_NONE) {
    p->grid_kind = DRT_GRID_NONE;
    p->grid_len = 0;
    return DRT_OK;
  }
  int min_len = p->kind == DRT_SCHED_SCM ? 2 : 1;
  if (n < min_len || n > DRT_SCHED_MAX_GRID || grid_steps(p->kind, n) > DRT_SCHED_MAX_STEPS)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s grid has %d values, expected %d..%d",
                     kind == DRT_GRID_SIGMAS ? "sigmas" : "timesteps", n, min_len,
                     p->kind == DRT_SCHED_SCM ? DRT_SCHED_MAX_STEPS + 1 : DRT_SCHED_MAX_STEPS);
  for (int i = 0; i < n; i++) {
    if (!isfinite(values[i]))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s grid value %d is not finite",
                       kind == DRT_GRID_SIGMAS ? "sigmas" : "timesteps", i);
    p->grid[i] = values[i];
  }
  p->grid_kind = kind;
  p->grid_len = n;
  p->num_steps = grid_steps(p->kind, n);
  return DRT_OK;
}

/* Option table: key, type, field, schedules it applies to. */
typedef enum opt_type { OPT_DOUBLE, OPT_INT, OPT_BOOL, OPT_PREDICTION, OPT_SPACING, OPT_BETA, OPT_SHIFT_TYPE,
                        OPT_GRID, OPT_REFUSE_TRUE } opt_type;

#define K(k) (1u << (k))
#define KS_DDPM (K(DRT_SCHED_DDIM) | K(DRT_SCHED_EULER_A) | K(DRT_SCHED_LCM) | K(DRT_SCHED_DMD2) | K(DRT_SCHED_TCD))
#define KS_ALL ((1u << DRT_SCHED_COUNT) - 1u)

typedef struct opt_def {
  const char *key;
  opt_type type;
  size_t offset;
  unsigned kinds;
  double lo, hi; /* numeric range (inclusive); lo > hi: no range */
} opt_def;

#define OFF(f) offsetof(drt_schedule_params, f)
static const opt_def k_opts[] = {
    {"prediction", OPT_PREDICTION, OFF(prediction), KS_ALL, 1, 0},
    {"spacing", OPT_SPACING, OFF(spacing), K(DRT_SCHED_FLOW_EULER) | KS_DDPM, 1, 0},
    {"num_train_timesteps", OPT_INT, OFF(num_train_timesteps), KS_DDPM, 1, MAX_TRAIN_TIMESTEPS},
    {"beta_schedule", OPT_BETA, OFF(beta_schedule), KS_DDPM, 1, 0},
    {"beta_start", OPT_DOUBLE, OFF(beta_start), KS_DDPM, 1e-12, 0.999999},
    {"beta_end", OPT_DOUBLE, OFF(beta_end), KS_DDPM, 1e-12, 0.999999},
    {"set_alpha_to_one", OPT_BOOL, OFF(set_alpha_to_one), K(DRT_SCHED_DDIM), 1, 0},
    {"steps_offset", OPT_INT, OFF(steps_offset), K(DRT_SCHED_DDIM) | K(DRT_SCHED_EULER_A), 0, 1000},
    {"eta", OPT_DOUBLE, OFF(eta), K(DRT_SCHED_DDIM) | K(DRT_SCHED_TCD), 0, 1},
    {"gamma", OPT_DOUBLE, OFF(eta), K(DRT_SCHED_TCD), 0, 1},
    {"original_steps", OPT_INT, OFF(original_steps), K(DRT_SCHED_LCM) | K(DRT_SCHED_TCD), 1, MAX_TRAIN_TIMESTEPS},
    {"timestep_scaling", OPT_DOUBLE, OFF(timestep_scaling), K(DRT_SCHED_LCM), 0, 1e6},
    {"shift", OPT_DOUBLE, OFF(shift), K(DRT_SCHED_FLOW_EULER), 1e-6, 1e6},
    {"dynamic_shift", OPT_BOOL, OFF(dynamic_shift), K(DRT_SCHED_FLOW_EULER), 1, 0},
    {"mu", OPT_DOUBLE, OFF(mu), K(DRT_SCHED_FLOW_EULER), -100, 100},
    {"image_seq_len", OPT_DOUBLE, OFF(image_seq_len), K(DRT_SCHED_FLOW_EULER), 1, 1e9},
    {"base_seq_len", OPT_DOUBLE, OFF(base_seq_len), K(DRT_SCHED_FLOW_EULER), 1, 1e9},
    {"max_seq_len", OPT_DOUBLE, OFF(max_seq_len), K(DRT_SCHED_FLOW_EULER), 1, 1e9},
    {"base_shift", OPT_DOUBLE, OFF(base_shift), K(DRT_SCHED_FLOW_EULER), -100, 100},
    {"max_shift", OPT_DOUBLE, OFF(max_shift), K(DRT_SCHED_FLOW_EULER), -100, 100},
    {"shift_type", OPT_SHIFT_TYPE, OFF(linear_time_shift), K(DRT_SCHED_FLOW_EULER), 1, 0},
    {"stochastic", OPT_BOOL, OFF(stochastic), K(DRT_SCHED_FLOW_EULER), 1, 0},
    {"sigma_min", OPT_DOUBLE, OFF(sigma_min), K(DRT_SCHED_CM), 1e-9, 1e9},
    {"sigma_max", OPT_DOUBLE, OFF(sigma_max), K(DRT_SCHED_CM), 1e-9, 1e9},
    {"sigma_data", OPT_DOUBLE, OFF(sigma_data), K(DRT_SCHED_CM) | K(DRT_SCHED_SCM), 1e-9, 1e9},
    {"rho", OPT_DOUBLE, OFF(rho), K(DRT_SCHED_CM), 1e-3, 1e3},
    {"s_noise", OPT_DOUBLE, OFF(s_noise), K(DRT_SCHED_CM), 0, 1e3},
    {"train_steps", OPT_INT, OFF(cm_train_steps), K(DRT_SCHED_CM), 2, MAX_TRAIN_TIMESTEPS},
    {"max_t", OPT_DOUBLE, OFF(max_t), K(DRT_SCHED_SCM), 0, 1.5708},
    {"mid_t", OPT_DOUBLE, OFF(mid_t), K(DRT_SCHED_SCM), 0, 1.5708},
    {"timesteps", OPT_GRID, DRT_GRID_TIMESTEPS, KS_ALL, 1, 0},
    {"sigmas", OPT_GRID, DRT_GRID_SIGMAS, K(DRT_SCHED_FLOW_EULER), 1, 0},
    {"clip_sample", OPT_REFUSE_TRUE, 0, K(DRT_SCHED_DDIM) | K(DRT_SCHED_LCM) | K(DRT_SCHED_TCD), 1, 0},
    {"clip_denoised", OPT_REFUSE_TRUE, 0, K(DRT_SCHED_CM), 1, 0},
    {"thresholding", OPT_REFUSE_TRUE, 0, K(DRT_SCHED_DDIM) | K(DRT_SCHED_LCM) | K(DRT_SCHED_TCD), 1, 0},
    {"rescale_betas_zero_snr", OPT_REFUSE_TRUE, 0, KS_DDPM, 1, 0},
};
#undef OFF

static drt_status parse_double(const char *key, const char *v, double *out) {
  char *end;
  errno = 0;
  double d = strtod(v, &end);
  if (end == v || *end != '\0' || errno == ERANGE || !isfinite(d))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "option '%s': '%s' is not a finite number", key, v);
  *out = d;
  return DRT_OK;
}

static drt_status parse_bool(const char *key, const char *v, bool *out) {
  if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on")) {
    *out = true;
  } else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off")) {
    *out = false;
  } else {
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "option '%s': '%s' is not a boolean (1/0/true/false)", key, v);
  }
  return DRT_OK;
}

static drt_status parse_grid(drt_schedule_params *p, drt_grid_kind gk, const char *key, char *v) {
  double *vals = malloc(sizeof(double) * DRT_SCHED_MAX_GRID);
  if (!vals) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "option '%s'", key);
  int n = 0;
  drt_status st = DRT_OK;
  char *s = v;
  for (;;) {
    size_t len = strcspn(s, "/:");
    char save = s[len];
    s[len] = '\0';
    if (n >= DRT_SCHED_MAX_GRID) {
      st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "option '%s': more than %d values", key, DRT_SCHED_MAX_GRID);
      break;
    }
    st = parse_double(key, s, &vals[n]);
    if (st) break;
    n++;
    if (!save) break;
    s += len + 1;
  }
  if (!st) st = drt_schedule_params_set_grid(p, gk, vals, n);
  free(vals);
  return st;
}

static drt_status apply_option(drt_schedule_params *p, char *key, char *v) {
  const opt_def *d = NULL;
  for (size_t i = 0; i < sizeof k_opts / sizeof k_opts[0]; i++)
    if (!strcmp(k_opts[i].key, key)) d = &k_opts[i];
  if (!d) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "unknown option '%s'", key);
  if (!(d->kinds & K(p->kind)))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "option '%s' does not apply to schedule '%s'", key,
                     drt_sched_kind_name(p->kind));
  char *base = (char *)p;
  switch (d->type) {
    case OPT_DOUBLE: {
      double x = 0;
      DRT_RETURN_IF_ERROR(parse_double(key, v, &x));
      if (d->lo <= d->hi && (x < d->lo || x > d->hi))
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "option '%s': %g is outside [%g, %g]", key, x, d->lo, d->hi);
      *(double *)(base + d->offset) = x;
      if (!strcmp(key, "mu")) p->has_mu = true;
      if (!strcmp(key, "mu") || !strcmp(key, "image_seq_len")) p->dynamic_shift = true;
      return DRT_OK;
    }
    case OPT_INT: {
      double x = 0;
      DRT_RETURN_IF_ERROR(parse_double(key, v, &x));
      if (x != floor(x)) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "option '%s': '%s' is not an integer", key, v);
      if (x < d->lo || x > d->hi)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "option '%s': %g is outside [%g, %g]", key, x, d->lo, d->hi);
      *(int *)(base + d->offset) = (int)x;
      return DRT_OK;
    }
    case OPT_BOOL: return parse_bool(key, v, (bool *)(base + d->offset));
    case OPT_REFUSE_TRUE: {
      bool b;
      DRT_RETURN_IF_ERROR(parse_bool(key, v, &b));
      if (b)
        return DRT_ERROR(DRT_STATUS_UNSUPPORTED,
                         "option '%s': clipping/thresholding/rescaling is not supported (the update must stay affine "
                         "in x and the model output)",
                         key);
      return DRT_OK;
    }
    case OPT_PREDICTION: {
      drt_prediction pr;
      if (!strcmp(v, "eps") || !strcmp(v, "epsilon")) pr = DRT_PREDICTION_EPS;
      else if (!strcmp(v, "v") || !strcmp(v, "v_prediction")) pr = DRT_PREDICTION_V;
      else if (!strcmp(v, "x0") || !strcmp(v, "sample")) pr = DRT_PREDICTION_X0;
      else if (!strcmp(v, "flow")) pr = DRT_PREDICTION_FLOW;
      else if (!strcmp(v, "trigflow")) pr = DRT_PREDICTION_TRIGFLOW;
      else
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "option 'prediction': unknown value '%s' (eps|v|x0|flow|trigflow)",
                         v);
      p->prediction = pr;
      return DRT_OK;
    }
    case OPT_SPACING: {
      if (!strcmp(v, "leading")) p->spacing = DRT_SPACING_LEADING;
      else if (!strcmp(v, "trailing")) p->spacing = DRT_SPACING_TRAILING;
      else if (!strcmp(v, "linspace")) p->spacing = DRT_SPACING_LINSPACE;
      else if (!strcmp(v, "flux")) p->spacing = DRT_SPACING_FLUX;
      else
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "option 'spacing': unknown value '%s' (leading|trailing|linspace|flux)",
                         v);
      return DRT_OK;
    }
    case OPT_BETA: {
      if (!strcmp(v, "scaled_linear")) p->beta_schedule = DRT_BETA_SCALED_LINEAR;
      else if (!strcmp(v, "linear")) p->beta_schedule = DRT_BETA_LINEAR;
      else
        return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "option 'beta_schedule': '%s' is not supported (scaled_linear|linear)", v);
      return DRT_OK;
    }
    case OPT_SHIFT_TYPE: {
      if (!strcmp(v, "exponential")) p->linear_time_shift = false;
      else if (!strcmp(v, "linear")) p->linear_time_shift = true;
      else return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "option 'shift_type': unknown value '%s' (exponential|linear)", v);
      return DRT_OK;
    }
    case OPT_GRID: {
      if (p->grid_kind != DRT_GRID_NONE)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "option '%s': only one of timesteps= and sigmas= may be given", key);
      return parse_grid(p, (drt_grid_kind)d->offset, key, v);
    }
  }
  return DRT_ERROR(DRT_STATUS_INTERNAL, "option '%s': bad table entry", key);
}

drt_status drt_schedule_parse_params(const char *name, int steps, const char *options, drt_schedule_params *out) {
  drt_sched_kind kind = DRT_SCHED_FLOW_EULER;
  DRT_RETURN_IF_ERROR(drt_sched_kind_from_name(name, &kind));
  if (steps < 0 || steps > DRT_SCHED_MAX_STEPS)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "schedule '%s': %d steps, expected 1..%d (0: default)", name, steps,
                     DRT_SCHED_MAX_STEPS);
  drt_schedule_params_init(out, kind, steps);
  if (!options || !*options) return DRT_OK;
  size_t len = strlen(options);
  char *buf = malloc(len + 1);
  if (!buf) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "schedule options");
  memcpy(buf, options, len + 1);
  drt_status st = DRT_OK;
  char *s = buf;
  for (;;) {
    size_t n = strcspn(s, ",");
    char save = s[n];
    s[n] = '\0';
    char *next = s + n + 1; /* before s skips leading spaces */
    while (*s == ' ') s++;
    if (*s) {
      char *eq = strchr(s, '=');
      if (!eq || eq == s) {
        st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "schedule option '%s' is not key=value", s);
        break;
      }
      *eq = '\0';
      char *end = eq - 1;
      while (end > s && *end == ' ') *end-- = '\0';
      char *v = eq + 1;
      while (*v == ' ') v++;
      size_t vl = strlen(v);
      while (vl > 0 && v[vl - 1] == ' ') v[--vl] = '\0';
      st = apply_option(out, s, v);
      if (st) break;
    }
    if (!save) break;
    s = next;
  }
  free(buf);
  if (st) return drt_status_annotate(st, "schedule '%s'", name);
  if (out->grid_kind != DRT_GRID_NONE && steps > 0 && grid_steps(kind, out->grid_len) != steps)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "schedule '%s': %s grid of %d values gives %d steps, but %d steps requested",
                     name, out->grid_kind == DRT_GRID_SIGMAS ? "sigmas" : "timesteps", out->grid_len,
                     grid_steps(kind, out->grid_len), steps);
  return DRT_OK;
}

/* ------------------------------------------------------------------------------------------
 * Arithmetic helpers mirroring numpy / torch
 * ------------------------------------------------------------------------------------------ */

/* torch.linspace(start, end, steps, dtype=float32)[i], scalar CPU path. */
static float torch_linspace_f32(float start, float end, int steps, int i) {
  if (steps == 1) return start;
  float step = (end - start) / (float)(steps - 1);
  int half = steps / 2;
  return i < half ? start + step * (float)i : end - step * (float)(steps - i - 1);
}

/* np.linspace(start, stop, num)[i] (float64, endpoint=True). */
static double np_linspace(double start, double stop, int num, int i) {
  if (num == 1) return start;
  double step = (stop - start) / (double)(num - 1);
  if (i == num - 1) return stop;
  return (double)i * step + start;
}

/* np.round (half to even) */
static double np_round(double x) { return nearbyint(x); }

/* diffusers DDPM-family alphas_cumprod: float32 betas (torch.linspace), float32 alphas, and
 * torch.cumprod (double accumulation on the CPU, float32 results). */
static drt_status alphas_cumprod(const drt_schedule_params *p, double **out) {
  int n = p->num_train_timesteps;
  double *ac = malloc(sizeof(double) * (size_t)n);
  if (!ac) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "alphas_cumprod table of %d entries", n);
  float s, e;
  if (p->beta_schedule == DRT_BETA_SCALED_LINEAR) {
    s = (float)sqrt(p->beta_start);
    e = (float)sqrt(p->beta_end);
  } else {
    s = (float)p->beta_start;
    e = (float)p->beta_end;
  }
  double acc = 1.0;
  for (int i = 0; i < n; i++) {
    float b = torch_linspace_f32(s, e, n, i);
    if (p->beta_schedule == DRT_BETA_SCALED_LINEAR) b = b * b;
    float a = 1.0f - b;
    acc *= (double)a;
    ac[i] = (double)(float)acc;
  }
  *out = ac;
  return DRT_OK;
}

/* x0/eps from the model output of a variance-preserving model at alpha_bar = a. */
static void vp_prediction(drt_prediction pr, double a, drt_sched_step *st) {
  double sa = sqrt(a), sb = sqrt(1.0 - a);
  switch (pr) {
    case DRT_PREDICTION_V:
      st->p_x = sa;
      st->p_m = -sb;
      st->q_x = sb;
      st->q_m = sa;
      break;
    case DRT_PREDICTION_X0:
      st->p_x = 0.0;
      st->p_m = 1.0;
      st->q_x = 1.0 / sb;
      st->q_m = -sa / sb;
      break;
    default: /* eps */
      st->p_x = 1.0 / sa;
      st->p_m = -sb / sa;
      st->q_x = 0.0;
      st->q_m = 1.0;
      break;
  }
}

/* DDPM-family integer timesteps for the spacing (diffusers set_timesteps). */
static drt_status ddpm_timesteps(const drt_schedule_params *p, drt_spacing sp, double *ts) {
  int n = p->num_steps, N = p->num_train_timesteps;
  if (p->grid_kind == DRT_GRID_TIMESTEPS) {
    for (int i = 0; i < n; i++) ts[i] = p->grid[i];
    return DRT_OK;
  }
  if (n > N) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%d steps exceed num_train_timesteps %d", n, N);
  switch (sp) {
    case DRT_SPACING_LEADING: {
      int ratio = N / n;
      for (int i = 0; i < n; i++) ts[i] = (double)((n - 1 - i) * ratio + p->steps_offset);
      break;
    }
    case DRT_SPACING_TRAILING: {
      /* np.round(np.arange(N, 0, -N/n)) - 1; numpy's arange steps by (N + d) - N */
      double d = -(double)N / (double)n;
      double dd = ((double)N + d) - (double)N;
      for (int i = 0; i < n; i++) ts[i] = np_round((double)N + (double)i * dd) - 1.0;
      break;
    }
    case DRT_SPACING_LINSPACE:
      for (int i = 0; i < n; i++) ts[i] = np_round(np_linspace(0.0, (double)(N - 1), n, n - 1 - i));
      break;
    default: return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "spacing is not one of leading|trailing|linspace");
  }
  return DRT_OK;
}

/* Checks integer timesteps: integers in [0, N), strictly descending. */
static drt_status check_int_timesteps(const double *ts, int n, int N, bool descending) {
  for (int i = 0; i < n; i++) {
    if (ts[i] != floor(ts[i]) || ts[i] < 0 || ts[i] >= N)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "timestep %d (%g) is not an integer in [0, %d)", i, ts[i], N);
    if (descending && i > 0 && ts[i] >= ts[i - 1])
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "timesteps must be strictly descending (%g after %g)", ts[i],
                       ts[i - 1]);
  }
  return DRT_OK;
}

/* LCM/TCD default grid: every k-th of the original_steps schedule. */
static drt_status lcm_timesteps(const drt_schedule_params *p, double *ts) {
  int n = p->num_steps, N = p->num_train_timesteps, orig = p->original_steps;
  if (p->grid_kind == DRT_GRID_TIMESTEPS) {
    for (int i = 0; i < n; i++) ts[i] = p->grid[i];
    return DRT_OK;
  }
  if (orig > N) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "original_steps %d exceeds num_train_timesteps %d", orig, N);
  if (n > orig) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%d steps exceed original_steps %d", n, orig);
  int k = N / orig;
  double step = (double)orig / (double)n; /* np.linspace(0, orig, n, endpoint=False) */
  for (int i = 0; i < n; i++) {
    int idx = (int)floor((double)i * step);
    /* reversed origin schedule: entry idx is (orig - idx) * k - 1 */
    ts[i] = (double)((orig - idx) * k - 1);
  }
  return DRT_OK;
}

/* ------------------------------------------------------------------------------------------
 * Builders
 * ------------------------------------------------------------------------------------------ */
static drt_status build_ddim(const drt_schedule_params *p, const double *ac, drt_sched_step *steps) {
  int n = p->num_steps, N = p->num_train_timesteps;
  double ts[DRT_SCHED_MAX_STEPS] = {0};
  drt_spacing sp = p->spacing == DRT_SPACING_DEFAULT ? DRT_SPACING_LEADING : p->spacing;
  DRT_RETURN_IF_ERROR(ddpm_timesteps(p, sp, ts));
  DRT_RETURN_IF_ERROR(check_int_timesteps(ts, n, N, p->grid_kind == DRT_GRID_TIMESTEPS));
  double final_ac = p->set_alpha_to_one ? 1.0 : ac[0];
  for (int i = 0; i < n; i++) {
    drt_sched_step *st = &steps[i];
    int t = (int)ts[i];
    int prev;
    if (p->grid_kind == DRT_GRID_TIMESTEPS) prev = i + 1 < n ? (int)ts[i + 1] : -1;
    else prev = t - N / n;
    double a_t = ac[t], a_prev = prev >= 0 ? ac[prev] : final_ac;
    double b_t = 1.0 - a_t, b_prev = 1.0 - a_prev;
    double var = (b_prev / b_t) * (1.0 - a_t / a_prev);
    double std = p->eta * sqrt(var > 0 ? var : 0.0);
    double dir = 1.0 - a_prev - std * std;
    st->t_model = (double)t;
    st->c_in = 1.0;
    vp_prediction(p->prediction, a_t, st);
    st->a = sqrt(a_prev);
    st->b = sqrt(dir > 0 ? dir : 0.0);
    st->c = std;
  }
  return DRT_OK;
}

/* np.interp(x, arange(len), table) */
static double np_interp_index(double x, const double *table, int len) {
  if (x <= 0) return table[0];
  if (x >= (double)(len - 1)) return table[len - 1];
  int j = (int)floor(x);
  double slope = (table[j + 1] - table[j]) / 1.0;
  return slope * (x - (double)j) + table[j];
}

static drt_status build_euler_a(const drt_schedule_params *p, const double *ac, drt_sched_step *steps,
                                double *init_sigma) {
  int n = p->num_steps, N = p->num_train_timesteps;
  drt_spacing sp = p->spacing == DRT_SPACING_DEFAULT ? DRT_SPACING_TRAILING : p->spacing;
  double ts[DRT_SCHED_MAX_STEPS] = {0}, sig[DRT_SCHED_MAX_STEPS + 1] = {0};
  if (p->grid_kind == DRT_GRID_TIMESTEPS) {
    for (int i = 0; i < n; i++) {
      ts[i] = (double)(float)p->grid[i];
      if (ts[i] < 0 || ts[i] > N - 1)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "timestep %d (%g) is outside [0, %d]", i, ts[i], N - 1);
    }
  } else if (sp == DRT_SPACING_LINSPACE) {
    if (n > N) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%d steps exceed num_train_timesteps %d", n, N);
    for (int i = 0; i < n; i++) ts[i] = (double)(float)np_linspace(0.0, (double)(N - 1), n, n - 1 - i);
  } else {
    DRT_RETURN_IF_ERROR(ddpm_timesteps(p, sp, ts));
    if (sp == DRT_SPACING_LEADING)
      for (int i = 0; i < n; i++) ts[i] = (double)((float)ts[i]); /* offset already added */
    for (int i = 0; i < n; i++)
      if (ts[i] < 0 || ts[i] > N - 1)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "timestep %d (%g) is outside [0, %d]", i, ts[i], N - 1);
  }
  /* sigma table in float32 as torch computes it: ((1 - ac) / ac) ** 0.5 */
  double *table = malloc(sizeof(double) * (size_t)N);
  if (!table) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "sigma table");
  for (int i = 0; i < N; i++) {
    float a = (float)ac[i];
    table[i] = (double)sqrtf((1.0f - a) / a);
  }
  for (int i = 0; i < n; i++) sig[i] = (double)(float)np_interp_index(ts[i], table, N);
  sig[n] = 0.0;
  free(table);
  double smax = 0;
  for (int i = 0; i < n; i++) smax = sig[i] > smax ? sig[i] : smax;
  /* diffusers: init_noise_sigma is sigma_max for linspace/trailing, sqrt(sigma_max^2+1) for leading */
  *init_sigma = sp == DRT_SPACING_LEADING ? sqrt(smax * smax + 1.0) : smax;
  for (int i = 0; i < n; i++) {
    drt_sched_step *st = &steps[i];
    double s = sig[i], sn = sig[i + 1];
    st->t_model = ts[i];
    st->c_in = 1.0 / sqrt(s * s + 1.0);
    if (p->prediction == DRT_PREDICTION_V) {
      st->p_x = 1.0 / (s * s + 1.0);
      st->p_m = -s / sqrt(s * s + 1.0);
    } else {
      st->p_x = 1.0;
      st->p_m = -s;
    }
    st->q_x = (1.0 - st->p_x) / s;
    st->q_m = -st->p_m / s;
    double up2 = sn * sn * (s * s - sn * sn) / (s * s);
    double up = sqrt(up2 > 0 ? up2 : 0.0);
    double down2 = sn * sn - up * up;
    st->a = 1.0;
    st->b = sqrt(down2 > 0 ? down2 : 0.0);
    st->c = up;
  }
  return DRT_OK;
}

static drt_status build_lcm(const drt_schedule_params *p, const double *ac, drt_sched_step *steps) {
  int n = p->num_steps, N = p->num_train_timesteps;
  double ts[DRT_SCHED_MAX_STEPS] = {0};
  DRT_RETURN_IF_ERROR(lcm_timesteps(p, ts));
  DRT_RETURN_IF_ERROR(check_int_timesteps(ts, n, N, true));
  for (int i = 0; i < n; i++) {
    drt_sched_step *st = &steps[i];
    int t = (int)ts[i];
    bool last = i == n - 1;
    int prev = last ? t : (int)ts[i + 1];
    double a_prev = ac[prev];
    double sd = 0.5, scaled = (double)t * p->timestep_scaling;
    double c_skip = sd * sd / (scaled * scaled + sd * sd);
    double c_out = scaled / sqrt(scaled * scaled + sd * sd);
    vp_prediction(p->prediction, ac[t], st);
    st->t_model = (double)t;
    st->c_in = 1.0;
    st->p_x = c_out * st->p_x + c_skip;
    st->p_m = c_out * st->p_m;
    st->a = last ? 1.0 : sqrt(a_prev);
    st->b = 0.0;
    st->c = last ? 0.0 : sqrt(1.0 - a_prev);
  }
  return DRT_OK;
}

static drt_status build_dmd2(const drt_schedule_params *p, const double *ac, drt_sched_step *steps) {
  int n = p->num_steps, N = p->num_train_timesteps;
  double ts[DRT_SCHED_MAX_STEPS] = {0};
  drt_spacing sp = p->spacing == DRT_SPACING_DEFAULT ? DRT_SPACING_TRAILING : p->spacing;
  DRT_RETURN_IF_ERROR(ddpm_timesteps(p, sp, ts));
  DRT_RETURN_IF_ERROR(check_int_timesteps(ts, n, N, true));
  for (int i = 0; i < n; i++) {
    drt_sched_step *st = &steps[i];
    bool last = i == n - 1;
    vp_prediction(p->prediction, ac[(int)ts[i]], st);
    st->t_model = ts[i];
    st->c_in = 1.0;
    double a_next = last ? 1.0 : ac[(int)ts[i + 1]];
    st->a = sqrt(a_next);
    st->b = 0.0;
    st->c = last ? 0.0 : sqrt(1.0 - a_next);
  }
  return DRT_OK;
}

static drt_status build_tcd(const drt_schedule_params *p, const double *ac, drt_sched_step *steps) {
  int n = p->num_steps, N = p->num_train_timesteps;
  double ts[DRT_SCHED_MAX_STEPS] = {0};
  DRT_RETURN_IF_ERROR(lcm_timesteps(p, ts));
  DRT_RETURN_IF_ERROR(check_int_timesteps(ts, n, N, true));
  for (int i = 0; i < n; i++) {
    drt_sched_step *st = &steps[i];
    bool last = i == n - 1;
    int prev = last ? 0 : (int)ts[i + 1];
    /* torch: floor((1 - eta) * prev) in float32 */
    int s_t = (int)floorf((float)(1.0 - p->eta) * (float)prev);
    double a_prev = ac[prev], a_s = ac[s_t];
    vp_prediction(p->prediction, ac[(int)ts[i]], st);
    st->t_model = ts[i];
    st->c_in = 1.0;
    double sa_s = sqrt(a_s), sb_s = sqrt(1.0 - a_s);
    if (p->eta > 0 && !last) {
      double r = a_prev / a_s;
      double k = sqrt(r);
      st->a = k * sa_s;
      st->b = k * sb_s;
      st->c = sqrt(1.0 - r > 0 ? 1.0 - r : 0.0);
    } else {
      st->a = sa_s;
      st->b = sb_s;
      st->c = 0.0;
    }
  }
  return DRT_OK;
}

static drt_status build_cm(const drt_schedule_params *p, drt_sched_step *steps, double *init_sigma) {
  int n = p->num_steps, T = p->cm_train_steps;
  if (!(p->sigma_max > p->sigma_min))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "sigma_max %g must exceed sigma_min %g", p->sigma_max, p->sigma_min);
  double ts[DRT_SCHED_MAX_STEPS] = {0};
  if (p->grid_kind == DRT_GRID_TIMESTEPS) {
    for (int i = 0; i < n; i++) ts[i] = p->grid[i];
    DRT_RETURN_IF_ERROR(check_int_timesteps(ts, n, T, true));
  } else {
    if (n > T) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%d steps exceed train_steps %d", n, T);
    int ratio = T / n;
    for (int i = 0; i < n; i++) ts[i] = (double)((n - 1 - i) * ratio);
  }
  double min_inv = pow(p->sigma_min, 1.0 / p->rho), max_inv = pow(p->sigma_max, 1.0 / p->rho);
  double sig64[DRT_SCHED_MAX_STEPS], sig[DRT_SCHED_MAX_STEPS + 1];
  for (int j = 0; j < n; j++) {
    double ramp = ts[n - 1 - j] / (double)(T - 1);
    sig64[j] = pow(max_inv + ramp * (min_inv - max_inv), p->rho);
    sig[j] = (double)(float)sig64[j];
  }
  sig[n] = (double)(float)p->sigma_min;
  *init_sigma = p->sigma_max;
  float smin_f = (float)p->sigma_min, smax_f = (float)p->sigma_max;
  double sd = p->sigma_data, smin = p->sigma_min;
  for (int i = 0; i < n; i++) {
    drt_sched_step *st = &steps[i];
    double s = sig[i];
    st->t_model = 1000.0 * 0.25 * log(sig64[i] + 1e-44);
    st->c_in = 1.0 / sqrt(s * s + sd * sd);
    double c_skip = sd * sd / ((s - smin) * (s - smin) + sd * sd);
    double c_out = (s - smin) * sd / sqrt(s * s + sd * sd);
    st->p_x = c_skip;
    st->p_m = c_out;
    st->q_x = (1.0 - c_skip) / s;
    st->q_m = -c_out / s;
    st->a = 1.0;
    st->b = 0.0;
    if (n > 1) {
      /* float32 as torch: sigma_hat = clamp(sigma_next); (sigma_hat**2 - sigma_min**2) ** 0.5 */
      float sh = (float)sig[i + 1];
      sh = sh < smin_f ? smin_f : sh > smax_f ? smax_f : sh;
      float d = sh * sh - (float)(p->sigma_min * p->sigma_min);
      st->c = p->s_noise * (double)sqrtf(d > 0 ? d : 0.0f);
    } else {
      st->c = 0.0;
    }
  }
  return DRT_OK;
}

static drt_status build_scm(const drt_schedule_params *p, drt_sched_step *steps, double *init_sigma) {
  int n = p->num_steps;
  double g[DRT_SCHED_MAX_STEPS + 1];
  if (p->grid_kind == DRT_GRID_TIMESTEPS) {
    for (int i = 0; i <= n; i++) {
      g[i] = (double)(float)p->grid[i];
      if (g[i] < 0 || g[i] > 1.5708)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "timestep %d (%g) is outside [0, 1.5708] (TrigFlow angle)", i, g[i]);
    }
  } else if (n == 2) {
    g[0] = (double)(float)p->max_t;
    g[1] = (double)(float)p->mid_t;
    g[2] = 0.0;
  } else {
    for (int i = 0; i <= n; i++) g[i] = (double)torch_linspace_f32((float)p->max_t, 0.0f, n + 1, i);
  }
  double sd = p->sigma_data;
  *init_sigma = sd;
  for (int i = 0; i < n; i++) {
    drt_sched_step *st = &steps[i];
    double s = g[i], t = g[i + 1];
    double cs = cos(s), sn = sin(s);
    if (!(cs + sn > 0))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "timestep %d (%g) gives cos+sin <= 0", i, s);
    double u = sn / (cs + sn);
    double r = sqrt(u * u + (1.0 - u) * (1.0 - u));
    double k = sd * (1.0 - 2.0 * u + 2.0 * u * u) / r; /* F = (1-2u) x + k m */
    st->t_model = u;
    st->c_in = r / sd;
    st->p_x = cs - sn * (1.0 - 2.0 * u);
    st->p_m = -sn * k;
    st->q_x = sn + cs * (1.0 - 2.0 * u);
    st->q_m = cs * k;
    st->b = 0.0;
    if (i == n - 1) {
      st->a = 1.0 / sd;
      st->c = 0.0;
    } else {
      st->a = cos(t);
      st->c = sin(t) * sd;
    }
  }
  return DRT_OK;
}

/* Flow matching: shift functions (diffusers FlowMatchEulerDiscreteScheduler). */
static double flow_shift(const drt_schedule_params *p, double mu, double s) {
  if (p->dynamic_shift) {
    if (p->linear_time_shift) return mu / (mu + (1.0 / s - 1.0));
    return exp(mu) / (exp(mu) + (1.0 / s - 1.0));
  }
  return p->shift * s / (1.0 + (p->shift - 1.0) * s);
}

static drt_status build_flow(const drt_schedule_params *p, drt_sched_step *steps) {
  int n = p->num_steps;
  double mu = 0;
  if (p->dynamic_shift) {
    if (p->has_mu) {
      mu = p->mu;
    } else if (p->image_seq_len > 0) {
      if (p->max_seq_len == p->base_seq_len)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "max_seq_len must differ from base_seq_len");
      double m = (p->max_shift - p->base_shift) / (p->max_seq_len - p->base_seq_len);
      double b = p->base_shift - m * p->base_seq_len;
      mu = p->image_seq_len * m + b;
    } else {
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "dynamic shifting needs mu= or image_seq_len=");
    }
    if (p->linear_time_shift && !(mu > 0))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "linear time shift needs mu > 0 (got %g)", mu);
  }
  double sig[DRT_SCHED_MAX_STEPS + 1], tm[DRT_SCHED_MAX_STEPS];
  bool custom_t = p->grid_kind == DRT_GRID_TIMESTEPS;
  if (p->grid_kind == DRT_GRID_SIGMAS) {
    for (int i = 0; i < n; i++) {
      double s = (double)(float)p->grid[i];
      if (!(s > 0 && s <= 1)) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "sigma %d (%g) is outside (0, 1]", i, s);
      sig[i] = s;
    }
  } else if (custom_t) {
    for (int i = 0; i < n; i++) {
      float t = (float)p->grid[i];
      if (!(t > 0 && t <= 1000.0f))
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "timestep %d (%g) is outside (0, 1000]", i, p->grid[i]);
      tm[i] = (double)t;
      sig[i] = (double)(t / 1000.0f);
    }
  } else {
    drt_spacing sp = p->spacing == DRT_SPACING_DEFAULT ? DRT_SPACING_LINSPACE : p->spacing;
    if (sp == DRT_SPACING_FLUX) {
      for (int i = 0; i < n; i++) sig[i] = (double)(float)np_linspace(1.0, 1.0 / (double)n, n, i);
    } else if (sp == DRT_SPACING_LINSPACE) {
      /* training-table end points, float32 as in __init__ (static shift applied there) */
      float s_hi = 1.0f, s_lo = 1.0f / 1000.0f;
      if (!p->dynamic_shift) {
        float sh = (float)p->shift, shm1 = (float)(p->shift - 1.0);
        s_hi = sh * s_hi / (1.0f + shm1 * s_hi);
        s_lo = sh * s_lo / (1.0f + shm1 * s_lo);
      }
      double t_hi = (double)s_hi * 1000.0, t_lo = (double)s_lo * 1000.0;
      for (int i = 0; i < n; i++) sig[i] = np_linspace(t_hi, t_lo, n, i) / 1000.0;
    } else {
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "spacing must be linspace or flux for flow-euler");
    }
  }
  for (int i = 0; i < n; i++) {
    sig[i] = (double)(float)flow_shift(p, mu, sig[i]);
    if (!custom_t) tm[i] = (double)((float)sig[i] * 1000.0f);
  }
  sig[n] = 0.0;
  for (int i = 0; i < n; i++) {
    drt_sched_step *st = &steps[i];
    double s = sig[i], sn = sig[i + 1];
    st->t_model = tm[i];
    st->c_in = 1.0;
    st->p_x = 1.0;
    st->p_m = -s;
    st->q_x = 1.0;
    st->q_m = 1.0 - s;
    st->a = 1.0 - sn;
    st->b = p->stochastic ? 0.0 : sn;
    st->c = p->stochastic ? sn : 0.0;
  }
  return DRT_OK;
}

/* ------------------------------------------------------------------------------------------
 * Build
 * ------------------------------------------------------------------------------------------ */
static drt_status check_prediction(const drt_schedule_params *p, drt_prediction *out) {
  static const drt_prediction k_default[DRT_SCHED_COUNT] = {
      DRT_PREDICTION_FLOW, DRT_PREDICTION_EPS, DRT_PREDICTION_EPS, DRT_PREDICTION_EPS,
      DRT_PREDICTION_EPS,  DRT_PREDICTION_EPS, DRT_PREDICTION_X0,  DRT_PREDICTION_TRIGFLOW,
  };
  static const unsigned k_allowed[DRT_SCHED_COUNT] = {
      1u << DRT_PREDICTION_FLOW,
      (1u << DRT_PREDICTION_EPS) | (1u << DRT_PREDICTION_V) | (1u << DRT_PREDICTION_X0),
      (1u << DRT_PREDICTION_EPS) | (1u << DRT_PREDICTION_V),
      (1u << DRT_PREDICTION_EPS) | (1u << DRT_PREDICTION_V) | (1u << DRT_PREDICTION_X0),
      (1u << DRT_PREDICTION_EPS) | (1u << DRT_PREDICTION_V) | (1u << DRT_PREDICTION_X0),
      (1u << DRT_PREDICTION_EPS) | (1u << DRT_PREDICTION_V) | (1u << DRT_PREDICTION_X0),
      1u << DRT_PREDICTION_X0,
      1u << DRT_PREDICTION_TRIGFLOW,
  };
  drt_prediction pr = p->prediction == DRT_PREDICTION_DEFAULT ? k_default[p->kind] : p->prediction;
  if ((unsigned)pr > DRT_PREDICTION_TRIGFLOW || !(k_allowed[p->kind] & (1u << pr)))
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "prediction '%s' is not supported by schedule '%s'", prediction_name(pr),
                     drt_sched_kind_name(p->kind));
  *out = pr;
  return DRT_OK;
}

static drt_status check_params(const drt_schedule_params *p) {
  if (p->num_steps < 1 || p->num_steps > DRT_SCHED_MAX_STEPS)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%d steps, expected 1..%d", p->num_steps, DRT_SCHED_MAX_STEPS);
  if (p->grid_kind != DRT_GRID_NONE) {
    if (p->grid_len < 1 || p->grid_len > DRT_SCHED_MAX_GRID || grid_steps(p->kind, p->grid_len) != p->num_steps)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "grid of %d values does not match %d steps", p->grid_len,
                       p->num_steps);
    if (p->grid_kind == DRT_GRID_SIGMAS && p->kind != DRT_SCHED_FLOW_EULER)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "a sigmas grid is only supported by flow-euler");
  }
  if (p->num_train_timesteps < 1 || p->num_train_timesteps > MAX_TRAIN_TIMESTEPS)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "num_train_timesteps %d outside 1..%d", p->num_train_timesteps,
                     MAX_TRAIN_TIMESTEPS);
  if (!(p->beta_start > 0 && p->beta_start < 1 && p->beta_end > 0 && p->beta_end < 1))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "beta_start %g / beta_end %g must be in (0, 1)", p->beta_start,
                     p->beta_end);
  if (!(p->eta >= 0 && p->eta <= 1)) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "eta/gamma %g outside [0, 1]", p->eta);
  if (p->steps_offset < 0 || p->steps_offset >= p->num_train_timesteps)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "steps_offset %d outside [0, %d)", p->steps_offset,
                     p->num_train_timesteps);
  if (p->original_steps < 1) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "original_steps %d < 1", p->original_steps);
  if (!(p->shift > 0)) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "shift %g must be positive", p->shift);
  if (!(p->sigma_data > 0) || !(p->sigma_min > 0) || !(p->rho > 0) || p->cm_train_steps < 2)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "sigma_data, sigma_min, rho must be positive and train_steps >= 2");
  if (p->kind == DRT_SCHED_DDIM && p->grid_kind == DRT_GRID_NONE && p->num_steps > p->num_train_timesteps)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%d steps exceed num_train_timesteps %d", p->num_steps,
                     p->num_train_timesteps);
  return DRT_OK;
}

drt_status drt_schedule_build(const drt_schedule_params *params, drt_schedule *out) {
  memset(out, 0, sizeof *out);
  if (!params) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "schedule params are NULL");
  const char *name = drt_sched_kind_name(params->kind);
  if (!name) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "schedule kind %d is unknown", (int)params->kind);
  drt_schedule_params p = *params;
  drt_status st = check_params(&p);
  if (!st) st = check_prediction(&p, &p.prediction);
  if (st) return drt_status_annotate(st, "schedule '%s'", name);

  drt_sched_step *steps = calloc((size_t)p.num_steps, sizeof *steps);
  if (!steps) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "schedule '%s': %d steps", name, p.num_steps);
  double init_sigma = 1.0;
  double *ac = NULL;
  bool ddpm = p.kind == DRT_SCHED_DDIM || p.kind == DRT_SCHED_EULER_A || p.kind == DRT_SCHED_LCM ||
              p.kind == DRT_SCHED_DMD2 || p.kind == DRT_SCHED_TCD;
  if (ddpm) st = alphas_cumprod(&p, &ac);
  if (!st) {
    switch (p.kind) {
      case DRT_SCHED_FLOW_EULER: st = build_flow(&p, steps); break;
      case DRT_SCHED_DDIM: st = build_ddim(&p, ac, steps); break;
      case DRT_SCHED_EULER_A: st = build_euler_a(&p, ac, steps, &init_sigma); break;
      case DRT_SCHED_LCM: st = build_lcm(&p, ac, steps); break;
      case DRT_SCHED_DMD2: st = build_dmd2(&p, ac, steps); break;
      case DRT_SCHED_TCD: st = build_tcd(&p, ac, steps); break;
      case DRT_SCHED_CM: st = build_cm(&p, steps, &init_sigma); break;
      case DRT_SCHED_SCM: st = build_scm(&p, steps, &init_sigma); break;
      case DRT_SCHED_COUNT: st = DRT_ERROR(DRT_STATUS_INTERNAL, "bad kind"); break;
    }
  }
  free(ac);
  for (int i = 0; !st && i < p.num_steps; i++) {
    const drt_sched_step *s = &steps[i];
    const double v[9] = {s->t_model, s->c_in, s->p_x, s->p_m, s->q_x, s->q_m, s->a, s->b, s->c};
    for (int k = 0; k < 9 && !st; k++)
      if (!isfinite(v[k]))
        st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                       "step %d: scalar %d (t_model, c_in, p_x, p_m, q_x, q_m, a, b, c) is not finite; "
                       "the parameters are out of the schedule's numeric range", i, k);
  }
  if (st) {
    free(steps);
    return drt_status_annotate(st, "schedule '%s'", name);
  }
  snprintf(out->name, sizeof out->name, "%s", name);
  snprintf(out->prediction, sizeof out->prediction, "%s", prediction_name(p.prediction));
  out->kind = p.kind;
  out->num_steps = p.num_steps;
  out->steps = steps;
  out->init_noise_sigma = init_sigma;
  return DRT_OK;
}

void drt_schedule_free(drt_schedule *s) {
  if (!s) return;
  free(s->steps);
  s->steps = NULL;
  s->num_steps = 0;
}

/* ------------------------------------------------------------------------------------------
 * Per-step arithmetic
 * ------------------------------------------------------------------------------------------ */
void drt_sched_model_input(const drt_sched_step *s, const float *x, float *out, size_t n) {
  double c = s->c_in;
  for (size_t i = 0; i < n; i++) out[i] = (float)(c * (double)x[i]);
}

void drt_sched_update(const drt_sched_step *s, const float *x, const float *model_out, const float *noise,
                      float *x_next, size_t n) {
  double kx = s->a * s->p_x + s->b * s->q_x;
  double km = s->a * s->p_m + s->b * s->q_m;
  double kn = s->c;
  if (kn != 0.0 && noise) {
    for (size_t i = 0; i < n; i++)
      x_next[i] = (float)(kx * (double)x[i] + km * (double)model_out[i] + kn * (double)noise[i]);
  } else {
    for (size_t i = 0; i < n; i++) x_next[i] = (float)(kx * (double)x[i] + km * (double)model_out[i]);
  }
}
