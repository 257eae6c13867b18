/*
 * distilrt — compiler and runtime for distilled diffusion generators.
 * Public C API. This header is the same with or without CUDA support compiled in.
 *
 * Conventions
 *  - Every fallible function returns a drt_status_code; DRT_STATUS_OK (0) is success.
 *  - The library never prints and never exits: diagnostics go through the log callback
 *    installed with drt_log_set().
 *  - Handles are opaque; every create/load function has a destroy function that accepts NULL.
 */
#ifndef DISTILRT_H
#define DISTILRT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define DRT_API __attribute__((visibility("default")))
#else
#define DRT_API
#endif

#define DRT_VERSION_MAJOR 0
#define DRT_VERSION_MINOR 1
#define DRT_VERSION_PATCH 0
#define DRT_VERSION_STRING "0.1.0"

/* Status codes. Values are stable (they are part of the ABI and of CLI exit-code mapping). */
typedef enum drt_status_code {
  DRT_STATUS_OK = 0,
  DRT_STATUS_INVALID_ARGUMENT = 1, /* bad input: model, tensor, shape, option */
  DRT_STATUS_UNSUPPORTED = 2,      /* valid input we do not handle: op, dtype, domain, attribute */
  DRT_STATUS_NOT_FOUND = 3,        /* missing file, tensor name, input */
  DRT_STATUS_IO = 4,               /* read/write failure */
  DRT_STATUS_OUT_OF_MEMORY = 5,    /* allocation failed or memory budget exceeded */
  DRT_STATUS_CORRUPT = 6,          /* malformed file: truncated, bad checksum, bad protobuf */
  DRT_STATUS_UNAVAILABLE = 7,      /* backend not present on this machine (e.g. no GPU) */
  DRT_STATUS_INTERNAL = 8,         /* broken invariant inside distilrt */
  DRT_STATUS_UNIMPLEMENTED = 9,    /* feature not implemented yet */
} drt_status_code;

/* Returns a static string for a status code ("OK", "INVALID_ARGUMENT", ...). Thread-safe. */
DRT_API const char *drt_status_code_name(drt_status_code code);

/* Element types. Numeric values follow ONNX TensorProto.DataType. */
typedef enum drt_dtype {
  DRT_DTYPE_UNDEFINED = 0,
  DRT_DTYPE_FLOAT32 = 1,
  DRT_DTYPE_UINT8 = 2,
  DRT_DTYPE_INT8 = 3,
  DRT_DTYPE_UINT16 = 4,
  DRT_DTYPE_INT16 = 5,
  DRT_DTYPE_INT32 = 6,
  DRT_DTYPE_INT64 = 7,
  DRT_DTYPE_STRING = 8, /* not supported; listed for error messages */
  DRT_DTYPE_BOOL = 9,
  DRT_DTYPE_FLOAT16 = 10,
  DRT_DTYPE_FLOAT64 = 11,
  DRT_DTYPE_UINT32 = 12,
  DRT_DTYPE_UINT64 = 13,
  DRT_DTYPE_BFLOAT16 = 16,
  /* Low-precision storage types (the operands of Cast, CastLike, QuantizeLinear and
   * DequantizeLinear, and of the ops that only move data). In a drt_tensor every one of them
   * takes ONE BYTE PER ELEMENT, whatever its width in an ONNX file: a float8 or float4/float6
   * holds its bit pattern (float4/float6 in the low bits), int4/int2 a sign-extended int8 and
   * uint4/uint2 a uint8. Packing to 4, 2 or 6 bits happens only when reading or writing
   * ONNX tensors (see drt_onnx_tensor_read_file in frontend/onnx.h). */
  DRT_DTYPE_FLOAT8E4M3FN = 17,   /* no inf, NaN = S.1111.111, max 448 */
  DRT_DTYPE_FLOAT8E4M3FNUZ = 18, /* no inf, no -0, NaN = 0x80, max 240 */
  DRT_DTYPE_FLOAT8E5M2 = 19,     /* IEEE-like: inf and NaN, max 57344 */
  DRT_DTYPE_FLOAT8E5M2FNUZ = 20, /* no inf, no -0, NaN = 0x80, max 57344 */
  DRT_DTYPE_UINT4 = 21,
  DRT_DTYPE_INT4 = 22,
  DRT_DTYPE_FLOAT4E2M1 = 23,     /* no inf/NaN, max 6 */
  DRT_DTYPE_FLOAT8E8M0 = 24,     /* exponent only: 2^(e-127), NaN = 0xFF */
  DRT_DTYPE_UINT2 = 25,
  DRT_DTYPE_INT2 = 26,
  DRT_DTYPE_FLOAT6E2M3 = 27,     /* no inf/NaN, max 7.5 */
  DRT_DTYPE_FLOAT6E3M2 = 28,     /* no inf/NaN, max 28 */
} drt_dtype;

/* Name of a dtype ("float32", "float16", ...); "unknown" for unknown values. Thread-safe. */
DRT_API const char *drt_dtype_name(drt_dtype dtype);
/* Size in bytes of one element in memory (1 for every low-precision type, see above); 0 for
 * unknown/unsupported dtypes. Thread-safe. */
DRT_API size_t drt_dtype_size(drt_dtype dtype);

/* Logging. The library emits messages only through this callback. */
typedef enum drt_log_level {
  DRT_LOG_ERROR = 0,
  DRT_LOG_WARN = 1,
  DRT_LOG_INFO = 2,
  DRT_LOG_DEBUG = 3,
} drt_log_level;

typedef void (*drt_log_fn)(drt_log_level level, const char *message, void *user_data);

/* Installs the process-wide log callback (NULL silences the library) and the most verbose
 * level delivered. Call it once at startup, before other threads use the library; the
 * callback itself may be invoked from any thread the library runs on. */
DRT_API void drt_log_set(drt_log_fn fn, void *user_data, drt_log_level max_level);

/* ======================================================================================
 * Errors
 * ====================================================================================== */

/* Message of the last error returned by a distilrt function on the calling thread ("" if
 * none). The pointer stays valid until the next failing call on the same thread. */
DRT_API const char *drt_last_error(void);

/* ======================================================================================
 * Tensors
 * ====================================================================================== */
#define DRT_MAX_DIMS 8

/* Describes a named tensor of a plan's signature. `name` points into the plan. */
typedef enum drt_tensor_role {
  DRT_ROLE_OTHER = 0,      /* conditioning input or plain output */
  DRT_ROLE_LATENT = 1,     /* the latent sample x_t fed to the network */
  DRT_ROLE_TIMESTEP = 2,   /* the network's timestep input */
  DRT_ROLE_PREDICTION = 3, /* the output the sampler consumes */
  /* classifier-free guidance folded into the plan (drt compile --cfg-scale) */
  DRT_ROLE_GUIDANCE_SCALE = 4,     /* input float32[1]; a session sets it to the plan's default */
  DRT_ROLE_GUIDANCE_STATE = 5,     /* input: APG momentum; sessions manage it (zero per generation) */
  DRT_ROLE_UNCOND_PREDICTION = 6,  /* output: the unconditional prediction (CFG++) */
  DRT_ROLE_GUIDANCE_STATE_OUT = 7, /* output: the next APG momentum state */
} drt_tensor_role;

typedef struct drt_tensor_desc {
  const char *name;
  drt_dtype dtype;
  int rank;
  int64_t dims[DRT_MAX_DIMS];
  drt_tensor_role role;
} drt_tensor_desc;

/* ======================================================================================
 * Plans: a compiled model (graph, weights, signature, default schedule) loaded from a
 * .plan file written by `drt compile`. A plan is immutable once loaded and may be shared by
 * any number of sessions on any threads.
 * ====================================================================================== */
typedef struct drt_plan drt_plan;

/* Loads and fully validates a plan (magic, version, checksums, ranges, shapes). */
DRT_API drt_status_code drt_plan_load_file(const char *path, drt_plan **out);
/* Same from memory; the bytes are copied, the caller keeps ownership of `data`. */
DRT_API drt_status_code drt_plan_load_memory(const void *data, size_t size, drt_plan **out);
DRT_API void drt_plan_destroy(drt_plan *plan); /* NULL-safe; no session of the plan may remain */

/* Inputs a caller may set (internal inputs that the plan's hoisted stages feed are not listed). */
DRT_API int drt_plan_num_inputs(const drt_plan *plan);
DRT_API int drt_plan_num_outputs(const drt_plan *plan);
/* Fills `out` for input/output `index`; INVALID_ARGUMENT if out of range. */
DRT_API drt_status_code drt_plan_input(const drt_plan *plan, int index, drt_tensor_desc *out);
DRT_API drt_status_code drt_plan_output(const drt_plan *plan, int index, drt_tensor_desc *out);

typedef struct drt_memory_info {
  uint64_t weights;     /* bytes of constants */
  uint64_t activations; /* peak bytes of intermediates in one evaluation (largest bucket) */
  uint64_t workspace;   /* scratch bytes */
} drt_memory_info;
DRT_API drt_status_code drt_plan_memory(const drt_plan *plan, drt_memory_info *out);
/* Name of the default schedule stored in the plan, or NULL; its step count in *steps. */
DRT_API const char *drt_plan_schedule(const drt_plan *plan, int *steps);
/* Classifier-free guidance compiled into the plan: the mode ("standard", "rescale", "cfgpp",
 * "apg") and the default guidance scale in *default_scale, or NULL when the plan was compiled
 * without --cfg-scale. One network evaluation then computes the conditional and unconditional
 * predictions as one doubled batch and returns the guided prediction. */
DRT_API const char *drt_plan_guidance(const drt_plan *plan, double *default_scale);

/* ======================================================================================
 * Sessions: per-thread execution state over a plan. A session is used by one thread at a
 * time; create one session per concurrent request.
 * ====================================================================================== */
typedef struct drt_session drt_session;

/* Where a session runs. The plan's CUDA code (drt compile --target cuda) is loaded on the
 * device by the first CUDA session of the plan (for its current weights) and shared by later
 * ones; a plan serves one device.
 *   DRT_BACKEND_CPU   always the CPU (any plan: a plan compiled for CUDA keeps its graphs).
 *   DRT_BACKEND_CUDA  the plan's CUDA code, or an error: INVALID_ARGUMENT "compiled without
 *                     --target cuda" for a plan without CUDA code; when the GPU cannot run it
 *                     (no driver, no device, no binary for the device's architecture) the
 *                     error of the driver (UNAVAILABLE / UNSUPPORTED) followed by "(use
 *                     --backend cpu to run this plan on the CPU)". Never falls back silently.
 *   DRT_BACKEND_AUTO  CUDA when the plan has CUDA code and the GPU can run it; otherwise the
 *                     CPU, with a warning through the log callback saying why when the plan
 *                     has CUDA code (the user compiled for CUDA, the machine could not run it).
 * A plan whose header targets CUDA only (no CPU target) is never run on the CPU: CPU sessions
 * and AUTO fallbacks fail with UNAVAILABLE "compiled for CUDA only" (drt compile --target cuda
 * keeps the CPU target).
 * Unmerged LoRAs (drt_session_set_loras) change the network, which the plan's CUDA code does
 * not cover: a CUDA session refuses them (UNSUPPORTED; merged LoRAs and weight swaps work), an
 * AUTO session runs on the CPU while they are set (with a warning). */
typedef enum drt_backend {
  DRT_BACKEND_AUTO = 0, /* CUDA when the plan has CUDA code and a GPU can run it, else CPU */
  DRT_BACKEND_CPU = 1,
  DRT_BACKEND_CUDA = 2,
} drt_backend;

typedef struct drt_session_options {
  drt_backend backend;
  int num_threads; /* CPU threads; 0 = all online CPUs */
  int device;      /* CUDA device ordinal */
} drt_session_options;

DRT_API void drt_session_options_init(drt_session_options *opts);
/* The plan must outlive the session. */
DRT_API drt_status_code drt_session_create(const drt_plan *plan, const drt_session_options *opts, drt_session **out);
DRT_API void drt_session_destroy(drt_session *session); /* NULL-safe */
/* The backend the session runs on now: DRT_BACKEND_CPU or DRT_BACKEND_CUDA (AUTO resolved). */
DRT_API drt_backend drt_session_backend(const drt_session *session);
/* Name of a backend: "auto", "cpu", "cuda". */
DRT_API const char *drt_backend_name(drt_backend backend);

/* Sets a named input from host memory. dtype and dims must equal the signature's. The
 * buffer is borrowed (zero-copy) and must stay valid and unchanged until the next
 * drt_session_run/generate returns. */
DRT_API drt_status_code drt_session_set_input(drt_session *session, const char *name, drt_dtype dtype, int rank,
                                      const int64_t *dims, const void *data, size_t nbytes);
/* Sets the guidance scale of a CFG-folded plan for the following runs and generations (no
 * recompilation; the session starts with the plan's default). Equivalent to setting the input
 * with role DRT_ROLE_GUIDANCE_SCALE. INVALID_ARGUMENT if the plan has no guidance. */
DRT_API drt_status_code drt_session_set_guidance_scale(drt_session *session, double scale);
/* Runs one evaluation of the network (the plan's hoisted stages included: the prologue and the
 * timestep stage run on the current inputs first; they do not count as evaluations). For an
 * APG plan the momentum state is zero unless the caller set the state input. */
DRT_API drt_status_code drt_session_run(drt_session *session);
/* Output of the last run/generate: *data points into the session and stays valid until the
 * next run/generate or destroy. desc may be NULL. */
DRT_API drt_status_code drt_session_get_output(drt_session *session, const char *name, drt_tensor_desc *desc,
                                       const void **data, size_t *nbytes);

/* ======================================================================================
 * Generation: the whole sampling loop (noise, every step, sampler updates).
 * ====================================================================================== */
typedef struct drt_generate_options {
  const char *schedule;  /* NULL: the plan's default schedule */
  int steps;             /* 0: the plan's default */
  const char *schedule_params; /* e.g. "shift=3.0,prediction=v"; NULL: plan's/defaults */
  uint64_t seed;         /* Philox seed for the initial and per-step noise */
  const float *noise;    /* optional initial noise (latent shape), overrides the seed for x_T */
  double timestep_scale; /* 0: schedule default; K: the model receives K * t */
} drt_generate_options;

DRT_API void drt_generate_options_init(drt_generate_options *opts);
/* Runs the whole sampling loop. The final latent is then available through
 * drt_session_get_output under the latent input's name (e.g. "sample"; the name of the
 * input whose role is DRT_ROLE_LATENT), and the last network outputs under their own
 * names. Inputs other than the latent and timestep must have been set (the guidance scale has
 * a default). A plan with hoisted stages runs its prologue once, before the first step, and
 * takes timestep-only values from its per-step tables when the generation's timesteps are the
 * ones they were computed for (else it runs the step stage). With CFG++ the step update takes
 * x0 from the guided prediction and the noise estimate from the unconditional one; with APG
 * the momentum starts at zero and carries from step to step.
 * On a CUDA session the whole loop stays on the device (latent, noise, stage values, momentum)
 * and is captured once into a CUDA graph that later generations with the same schedule, steps,
 * timestep scale, bucket and noise source replay (seed, conditioning and guidance scale may
 * change); results equal the CPU loop's within the precision's tolerance and use the same
 * Philox noise. Where it cannot run (latent or prediction not float32, a stage on the CPU, the
 * environment variable DRT_CUDA_DEVICE_LOOP=0, a failed capture) the loop runs on the host with
 * one GPU evaluation per step, saying why through the log callback. */
DRT_API drt_status_code drt_session_generate(drt_session *session, const drt_generate_options *opts);
/* Network evaluations performed by this session since creation. */
DRT_API uint64_t drt_session_nfe(const drt_session *session);

/* GPU timing (CUDA sessions; benchmarks). drt_session_profile_device evaluates the network
 * `iters` times on the device on the inputs of the last successful drt_session_run (which
 * stay on the device) and stores the GPU time of each evaluation, measured with CUDA events
 * around it (host transfers and hoisted stages excluded), in ms[0..iters); it counts as iters
 * evaluations. UNSUPPORTED on a CPU session; INVALID_ARGUMENT before a run. */
DRT_API drt_status_code drt_session_profile_device(drt_session *session, int iters, double *ms);
/* Launch profile (CUDA sessions; benchmarks): where one evaluation of the network (the per-step
 * graph, on the inputs of the last drt_session_run) spends its GPU time. The launches run one by
 * one with a CUDA event after each, `iters` times; launches of the same kind (library routine or
 * GEMM shape) and op are summed into one row. Rows are sorted by time, at most `capacity` written
 * (*count says how many; *total_ms is the sum over all launches). */
typedef struct drt_profile_row {
  char name[80]; /* "cublasLt gemm MxNxK", the kernel routine (e.g. "drt_attention"), "elementwise" */
  char op[32];   /* the op of the nodes (first seen) */
  int calls;     /* launches per evaluation */
  double ms;     /* GPU time per evaluation, all calls */
  double flops;  /* GEMM rows: floating-point operations per evaluation (2mnk per call); else 0 */
} drt_profile_row;
DRT_API drt_status_code drt_session_profile_launches(drt_session *session, int iters, drt_profile_row *rows,
                                                     int capacity, int *count, double *total_ms);
/* GPU time in ms of the last drt_session_generate when it ran as the device-resident loop (the
 * whole generation, one CUDA graph launch, timed with events), or a negative value when it
 * did not (CPU session, host loop, no generation yet). *replayed (may be NULL) tells whether
 * it replayed a CUDA graph captured by an earlier call with the same options. */
DRT_API double drt_session_generate_device_ms(const drt_session *session, int *replayed);

/* ======================================================================================
 * Adapting a loaded plan without recompiling: new weights, LoRA adapters, shape buckets.
 * ====================================================================================== */

/* Replaces the weights of a loaded plan with those of another checkpoint of the same
 * architecture (a .safetensors file): parameters are found through the plan's weight map
 * (drt compile --weights-map) or by equal names; dtypes and shapes are checked and a mismatch
 * is refused with the list of what differs (nothing changes then). Constants the compiler
 * derived from weights (transposes, folds, per-step tables) are recomputed; LoRAs merged with
 * drt_plan_set_loras are merged again onto the new weights. Sessions created afterwards use
 * the new weights; existing sessions keep the weights they were created with (the old
 * weights are freed with the last session that uses them). Thread-safe with respect to
 * sessions and other swaps; the plan must stay alive. */
DRT_API drt_status_code drt_plan_swap_weights(drt_plan *plan, const char *safetensors_path);
/* The same from safetensors bytes in memory (copied; the caller keeps `data`). */
DRT_API drt_status_code drt_plan_swap_weights_memory(drt_plan *plan, const void *data, size_t size);

/* A low-rank adapter (LoRA) read from a .safetensors file and mapped onto a plan's weights.
 * Layouts: kohya ("lora_unet_<module>.lora_down.weight" / ".lora_up.weight" / ".alpha"),
 * diffusers/PEFT ("<prefix><module>.lora_A.weight" / ".lora_B.weight", with "unet.",
 * "transformer.", "base_model.model." prefixes), the "_A/_B" and ".lora.down/.lora.up"
 * variants (Hyper-SD, LCM-LoRA, DMD2), linear and conv (LoCon) weights. The scale of an
 * adapter is alpha / rank when the file has an alpha, else 1. Modules are matched through the
 * plan's weight map (parameter names) or, without one, the plan's constant names. Keys that
 * match nothing are kept in a list (drt_lora_unknown_key), never dropped silently. A LoRA is
 * bound to the plan it was loaded for and immutable: it may be used by several sessions. */
typedef struct drt_lora drt_lora;
DRT_API drt_status_code drt_lora_load_file(const drt_plan *plan, const char *path, drt_lora **out);
DRT_API void drt_lora_destroy(drt_lora *lora); /* NULL-safe; not while a plan or session uses it */
DRT_API int drt_lora_num_targets(const drt_lora *lora);     /* weights the LoRA changes */
DRT_API int drt_lora_num_unknown_keys(const drt_lora *lora);
DRT_API const char *drt_lora_unknown_key(const drt_lora *lora, int index); /* NULL if out of range */

/* Merged mode: the plan's weights become W + sum_i strength_i * scale_i * B_i A_i for the
 * given LoRAs, computed from the base weights each time (so loading A, then B, then A again
 * gives exactly the weights of A alone); count 0 restores the base weights exactly. Like a
 * weight swap, sessions created afterwards see the result and existing ones are undisturbed.
 * The LoRAs must stay alive until replaced. */
DRT_API drt_status_code drt_plan_set_loras(drt_plan *plan, const drt_lora *const *loras, const float *strengths,
                                           int count);
/* Unmerged mode, per session: the plan's weights stay untouched and each adapted GEMM or
 * convolution gets its low-rank product added (y += strength * scale * (x A^T) B^T), so that
 * sessions of one plan can use different LoRAs and strengths at once. Fused kernels stay
 * fused. count 0 removes them. The LoRAs must outlive their use by the session. */
DRT_API drt_status_code drt_session_set_loras(drt_session *session, const drt_lora *const *loras,
                                              const float *strengths, int count);

/* Shape buckets (drt compile --shapes): one plan holds graphs for several input shapes over
 * one copy of the weights. drt_plan_input describes bucket 0; a session picks the bucket
 * whose shapes match the inputs it was given (drt_session_set_input accepts the shapes of any
 * bucket; a shape outside every bucket is an error that lists the buckets), or the one chosen
 * with drt_session_select_bucket. */
DRT_API int drt_plan_num_buckets(const drt_plan *plan);
DRT_API drt_status_code drt_plan_bucket_input(const drt_plan *plan, int bucket, int index, drt_tensor_desc *out);
DRT_API drt_status_code drt_plan_bucket_memory(const drt_plan *plan, int bucket, drt_memory_info *out);
DRT_API drt_status_code drt_session_select_bucket(drt_session *session, int bucket);
DRT_API int drt_session_bucket(const drt_session *session); /* current bucket, -1 for NULL */

/* Version string of the linked library. */
DRT_API const char *drt_version(void);

#ifdef __cplusplus
}
#endif
#endif /* DISTILRT_H */
