/* Table-driven sampling schedules.
 *
 * Every supported sampler is reduced, once, to a few scalars per step (drt_sched_step); the
 * sampling loop is then the same for all of them:
 *
 *   x = init_noise_sigma * noise(stream 0)
 *   for k in 0..num_steps-1:
 *     model_out = network(c_in[k] * x, timestep = t_model[k])
 *     x0_hat  = p_x * x + p_m * model_out
 *     eps_hat = q_x * x + q_m * model_out
 *     x       = a * x0_hat + b * eps_hat + c * noise(stream k+1)      (drt_sched_update)
 *   x is the final latent.
 *
 * The scalars reproduce the diffusers schedulers named below (diffusers 0.3x-0.4x; the
 * reference tables in tests/sampler/tables are generated from them by
 * tests/sampler/gen_sampler_tables.py). Where diffusers stores a table in float32 (betas,
 * alphas_cumprod, sigmas, timesteps) the same float32 values are used here; everything
 * derived from them is computed in double.
 *
 * Schedules (name: diffusers class, defaults, options):
 *   flow-euler  FlowMatchEulerDiscreteScheduler; prediction flow (velocity v = eps - x0):
 *               x0 = x - sigma*v, eps = x + (1-sigma)*v, x' = (1-sigma')*x0 + sigma'*eps.
 *               t_model = 1000*sigma. Options: shift (1.0), spacing=linspace (diffusers
 *               default: linspace from the training table's sigma_max to sigma_min, the
 *               SD3 pipelines) | flux (sigmas = linspace(1, 1/N, N), the Flux pipelines);
 *               dynamic shifting with mu=M, or image_seq_len=L and base_seq_len (256),
 *               max_seq_len (4096), base_shift (0.5), max_shift (1.15) giving
 *               mu = base_shift + (L - base_seq_len) * (max_shift - base_shift) /
 *               (max_seq_len - base_seq_len); shift_type=exponential|linear;
 *               stochastic=1 (x' = (1-sigma')*x0 + sigma'*noise); sigmas=/timesteps= grids.
 *   ddim        DDIMScheduler; prediction eps|v|x0; spacing leading|trailing|linspace
 *               (leading), steps_offset (0), eta (0), set_alpha_to_one (1). Like diffusers the
 *               previous timestep is t - num_train_timesteps/N for every spacing; with a
 *               custom timesteps= grid it is the next grid entry.
 *   euler-a     EulerAncestralDiscreteScheduler, SD-Turbo style: spacing trailing by default,
 *               c_in = 1/sqrt(sigma^2+1), x_T = init_noise_sigma*noise, ancestral noise;
 *               prediction eps|v.
 *   lcm         LCMScheduler (multistep consistency with boundary condition c_skip/c_out,
 *               re-noising to the next timestep); original_steps (50), timestep_scaling (10).
 *   dmd2        DMD2 few-step sampling: x0 from the prediction, then DDPM forward noising
 *               x' = sqrt(abar')*x0 + sqrt(1-abar')*noise to the next timestep; the last
 *               step returns x0. Default timesteps: trailing, i.e. 999/749/499/249 for 4
 *               steps and 999 for 1 step (the DMD2 SDXL 1-step model wants timesteps=399).
 *   tcd         TCDScheduler; gamma (alias eta, 0.3), original_steps (50).
 *   cm          CMStochasticIterativeScheduler (consistency models, Karras sigmas):
 *               sigma_min (0.002), sigma_max (80), sigma_data (0.5), rho (7), s_noise (1),
 *               train_steps (40); c_in = 1/sqrt(sigma^2+sigma_data^2); t_model =
 *               250*ln(sigma+1e-44); model output F: x0 = c_skip*x + c_out*F.
 *   scm         SCMScheduler + the SANA-Sprint pipeline (sCM / TrigFlow, x_s = cos(s) x0 +
 *               sin(s) z with z ~ N(0, sigma_data^2)); sigma_data (0.5), max_t (1.5708),
 *               mid_t (1.3, used for 2 steps), timesteps= takes N+1 angles. The model is
 *               the flow-matching network: t_model = sin s/(cos s + sin s), its input and
 *               output are converted to TrigFlow by the affine maps of the pipeline (folded
 *               into c_in, p_*, q_*). x is the pipeline's latent (x_T = sigma_data*noise);
 *               the last step returns x0/sigma_data like the pipeline.
 *   DDPM-family schedules (ddim, euler-a, lcm, dmd2, tcd) share num_train_timesteps (1000),
 *   beta_schedule scaled_linear|linear (scaled_linear), beta_start (0.00085), beta_end (0.012).
 *
 * Not representable (refused with UNSUPPORTED): x0 clipping/thresholding (clip_sample,
 * clip_denoised), Karras/exponential/beta sigma conversions of flow-euler, rescale-zero-SNR.
 *
 * Options string: comma-separated key=value pairs ("shift=3.0,prediction=v,spacing=trailing");
 * lists (timesteps=, sigmas=) separate values with '/' or ':' ("timesteps=999/749/499/249").
 *
 * Ownership: drt_schedule_build allocates out->steps; drt_schedule_free releases it (NULL-
 * safe). Thread-safety: all functions are reentrant; a built schedule is read-only and can be
 * shared between threads.
 */
#ifndef DRT_RUNTIME_SAMPLER_H
#define DRT_RUNTIME_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>

#include "ir/status.h"

#define DRT_SCHED_MAX_STEPS 1000
#define DRT_SCHED_MAX_GRID (DRT_SCHED_MAX_STEPS + 1)

typedef enum drt_sched_kind {
  DRT_SCHED_FLOW_EULER = 0,
  DRT_SCHED_DDIM,
  DRT_SCHED_EULER_A,
  DRT_SCHED_LCM,
  DRT_SCHED_DMD2,
  DRT_SCHED_TCD,
  DRT_SCHED_CM,
  DRT_SCHED_SCM,
  DRT_SCHED_COUNT
} drt_sched_kind;

typedef enum drt_prediction {
  DRT_PREDICTION_DEFAULT = 0, /* the schedule's own */
  DRT_PREDICTION_EPS,
  DRT_PREDICTION_V,
  DRT_PREDICTION_X0,
  DRT_PREDICTION_FLOW,
  DRT_PREDICTION_TRIGFLOW,
} drt_prediction;

typedef enum drt_spacing {
  DRT_SPACING_DEFAULT = 0,
  DRT_SPACING_LEADING,
  DRT_SPACING_TRAILING,
  DRT_SPACING_LINSPACE,
  DRT_SPACING_FLUX, /* flow-euler: sigmas = linspace(1, 1/N, N) */
} drt_spacing;

typedef enum drt_beta_schedule {
  DRT_BETA_SCALED_LINEAR = 0,
  DRT_BETA_LINEAR,
} drt_beta_schedule;

typedef enum drt_grid_kind {
  DRT_GRID_NONE = 0,
  DRT_GRID_TIMESTEPS,
  DRT_GRID_SIGMAS,
} drt_grid_kind;

/* Everything a schedule depends on. Fill with drt_schedule_params_init (defaults) or
 * drt_schedule_parse_params, then adjust fields if needed. */
typedef struct drt_schedule_params {
  drt_sched_kind kind;
  int num_steps;
  drt_prediction prediction;
  drt_spacing spacing;
  /* DDPM family */
  int num_train_timesteps;
  drt_beta_schedule beta_schedule;
  double beta_start, beta_end;
  bool set_alpha_to_one;
  int steps_offset;
  double eta;              /* ddim eta; tcd gamma */
  int original_steps;      /* lcm, tcd */
  double timestep_scaling; /* lcm */
  /* flow-euler */
  double shift;
  bool dynamic_shift;
  bool has_mu;
  double mu;
  double image_seq_len, base_seq_len, max_seq_len, base_shift, max_shift;
  bool linear_time_shift;
  bool stochastic;
  /* cm, scm */
  double sigma_min, sigma_max, sigma_data, rho, s_noise;
  int cm_train_steps;
  double max_t, mid_t;
  /* custom grid (timesteps= or sigmas=) */
  drt_grid_kind grid_kind;
  int grid_len;
  double grid[DRT_SCHED_MAX_GRID];
} drt_schedule_params;

typedef struct drt_sched_step {
  double t_model; /* timestep fed to the model (the schedule's own scaling included; a
                     caller-side timestep_scale override multiplies it) */
  double c_in;    /* model input = c_in * x */
  double p_x, p_m; /* x0_hat  = p_x * x + p_m * model_out */
  double q_x, q_m; /* eps_hat = q_x * x + q_m * model_out */
  double a, b, c;  /* x_next  = a * x0_hat + b * eps_hat + c * noise */
} drt_sched_step;

typedef struct drt_schedule {
  char name[32];
  drt_sched_kind kind;
  int num_steps;
  drt_sched_step *steps; /* num_steps entries, malloc'd */
  double init_noise_sigma; /* x_T = init_noise_sigma * noise */
  char prediction[16];     /* eps|v|x0|flow|trigflow */
} drt_schedule;

/* Schedule name ("flow-euler", ...) of a kind, NULL if out of range; kind from a name. */
const char *drt_sched_kind_name(drt_sched_kind kind);
drt_status drt_sched_kind_from_name(const char *name, drt_sched_kind *out);
/* Default step count of a schedule (e.g. 4 for dmd2, 1 for euler-a). */
int drt_sched_default_steps(drt_sched_kind kind);

/* Defaults of schedule `kind` with `steps` steps (0: the schedule's default). */
void drt_schedule_params_init(drt_schedule_params *p, drt_sched_kind kind, int steps);
/* name + steps (0: default, or the grid length) + options ("k=v,k=v"; NULL or "" for none).
 * Errors name the offending key or value. */
drt_status drt_schedule_parse_params(const char *name, int steps, const char *options, drt_schedule_params *out);
/* Sets a custom grid (replacing any); INVALID_ARGUMENT if n is out of range. */
drt_status drt_schedule_params_set_grid(drt_schedule_params *p, drt_grid_kind kind, const double *values, int n);

/* Builds the per-step scalars; on failure *out is left empty (steps NULL). */
drt_status drt_schedule_build(const drt_schedule_params *p, drt_schedule *out);
void drt_schedule_free(drt_schedule *s);

/* model input: out[i] = (float)(s->c_in * x[i]); out may alias x. */
void drt_sched_model_input(const drt_sched_step *s, const float *x, float *out, size_t n);
/* The fused per-step update, computed in double per element:
 *   x_next = (a*p_x + b*q_x) * x + (a*p_m + b*q_m) * model_out + c * noise.
 * noise is read only when c != 0 (and may then not be NULL); x_next may alias x. */
void drt_sched_update(const drt_sched_step *s, const float *x, const float *model_out, const float *noise,
                      float *x_next, size_t n);

#endif
