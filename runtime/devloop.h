/* The device-resident sampling loop of a CUDA session (drt_session_generate on the GPU).
 *
 * The latent x (float32, as on the CPU), the network's inputs and outputs, the per-step noise and
 * the hoisted stages' values stay on the device. One generation is, on the main executor's
 * stream:
 *
 *   [prologue stage; its outputs copied into the network's inputs]      once
 *   APG state input = 0                                                  (guidance_state plans)
 *   x = init_sigma * noise(stream 0) ; latent input = c_in[0] * x        (fused sampler kernel)
 *   for k in steps:
 *     timestep input      <- row k of a device table of the fed timesteps
 *     step-stage values   <- a device copy of the plan's table row, or the step stage run
 *     the network (drt_cuda_executor_enqueue)
 *     APG state input     <- state output
 *     x = kx*x + km*pred (+ ku*uncond) + kn*noise(stream k+1) ; latent input = c_in[k+1]*x
 *
 * with the coefficients of runtime/sampler.h (drt_sched_update; CFG++ as in runtime/api.c), so
 * the result equals the host loop's within the precision's tolerance and the noise is the
 * same Philox bits (runtime/philox.h). The whole generation is captured once into a CUDA graph
 * and replayed by later generations with the same schedule, options, executors and buckets;
 * what changes between replays (conditioning inputs, guidance scale, seed, user noise) lives in
 * device buffers written before the launch.
 *
 * DRT_CUDA_DEVICE_LOOP=0 in the environment turns the loop off (drt_devloop_supported says no),
 * for comparisons with the host loop.
 *
 * Ownership: a loop borrows the module and the executors of its spec; the session drops the
 * loop (drt_devloop_destroy) before it destroys or replaces any of them.
 * Thread-safety: used by one thread at a time (the session's). */
#ifndef DRT_RUNTIME_DEVLOOP_H
#define DRT_RUNTIME_DEVLOOP_H

#include <stdbool.h>
#include <stddef.h>

#include "runtime/exec.h"
#include "runtime/plan.h"
#include "runtime/sampler.h"

typedef struct drt_devloop drt_devloop;

typedef struct drt_devloop_stage {
  drt_exec *ex;         /* CUDA executor of the stage graph */
  bool prologue;        /* else the per-step (timestep) stage */
  const int *in_map;    /* stage input -> main input index */
  const int *out_map;   /* stage output -> main input index */
  uint32_t table_steps; /* per-step tables (step stage): rows and their timesteps, host bytes in */
  const double *table_t;/* each output's dtype */
  const void *const *tables;
} drt_devloop_stage;

/* What the session hands over: its executors and the host values of the main graph's inputs
 * (conditioning, guidance scale; the latent, timestep, state and hoisted inputs are the loop's). */
typedef struct drt_devloop_spec {
  drt_exec *main;              /* CUDA executor of the current bucket */
  const drt_tensor *inputs;    /* per main input: host values where input_set */
  const bool *input_set;
  int latent, timestep;        /* main input indexes */
  int state;                   /* APG state input, -1 */
  int prediction;              /* main output index */
  int uncond;                  /* CFG++ unconditional prediction output, -1 */
  int state_out;               /* APG state output, -1 */
  int num_stages;
  drt_devloop_stage stages[DRT_PLAN_MAX_STAGES];
} drt_devloop_spec;

typedef struct drt_devloop_gen {
  const drt_sched_step *steps;
  uint32_t nsteps;
  double init_sigma;
  double timestep_scale; /* 0: none */
  uint64_t seed;
  const float *noise;    /* optional x_T noise (float32, latent shape) */
} drt_devloop_gen;

/* Whether the device loop can run generations of this spec; when not, a reason in why. */
bool drt_devloop_supported(const drt_devloop_spec *sp, char *why, size_t why_size);

drt_status drt_devloop_create(drt_cuda_module *m, drt_devloop **out);
void drt_devloop_destroy(drt_devloop *dl); /* NULL-safe */

/* Runs one generation. latent receives the final x (float32, numel of the latent input);
 * outputs[i] (per main output, malloc'd host buffers in the graph's dtypes, owned by the
 * caller; none left allocated on failure) the last network evaluation's outputs. *gpu_ms is
 * the GPU time of the generation (events around the graph launch); tabled/computed count the
 * step-stage values taken from tables / computed by the step stage. */
drt_status drt_devloop_generate(drt_devloop *dl, const drt_devloop_spec *sp, const drt_devloop_gen *gp, float *latent,
                                drt_tensor *outputs, double *gpu_ms, uint32_t *tabled, uint32_t *computed);
/* Whether the last generation replayed a graph captured by an earlier one. */
bool drt_devloop_replayed(const drt_devloop *dl);

#endif
