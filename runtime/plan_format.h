/* The .plan file: byte layout, field by field. All integers little endian.
 *
 *  offset  size  field
 *  ------  ----  ---------------------------------------------------------------------
 *  File header (64 bytes, at offset 0)
 *   0       8    magic "DRTPLAN\0"
 *   8       4    format_version (DRT_PLAN_FORMAT_VERSION); readers refuse values outside
 *                [DRT_PLAN_FORMAT_VERSION_MIN, DRT_PLAN_FORMAT_VERSION] (version 1 lacks MEMPLAN views)
 *  12       4    header_size (64)
 *  16       4    distilrt version that wrote it: major<<16 | minor<<8 | patch
 *  20       4    targets: bit 0 CPU, bit 1 CUDA
 *  24       4    num_sections (<= DRT_PLAN_MAX_SECTIONS)
 *  28       4    flags (0)
 *  32       8    section_table_offset (64-aligned, inside the file)
 *  40       8    file_size (must equal the actual size)
 *  48       4    header_crc32: CRC-32 (IEEE) of bytes 0..47
 *  52      12    reserved (0)
 *  Section table (num_sections entries of 32 bytes at section_table_offset)
 *   0       4    type (drt_plan_section_type)
 *   4       4    flags (0)
 *   8       8    offset (64-aligned; offset + size <= file_size)
 *  16       8    size
 *  24       4    crc32 of the section bytes
 *  28       4    reserved (0)
 *  Sections (each 64-aligned; unknown types are skipped, so new optional sections keep the
 *  format version)
 *   WEIGHTS   raw constant data, each tensor 64-aligned inside the section (mmap-able)
 *   GRAPH     the optimized graph, serialized as below
 *   SIGNATURE inputs/outputs with role (drt_plan_role: latent / timestep / conditioning /
 *             guidance / hoisted ...)
 *   SCHEDULE  default sampling schedule: name, parameters, per-step scalars
 *   TARGET    target details (CUDA plans): str archs, the comma-separated architectures of the
 *             CUDA section's images in order ("sm_80,sm_86,sm_89,sm_90,compute_90")
 *   MEMPLAN   activation memory plan: u64 arena_bytes, u32 num_values, then per graph value
 *             (GRAPH order) i64 byte offset in the arena (-1: not in the arena); then (version 2)
 *             u32 num_views and per view u32 value, u32 root (GRAPH value indices), i64 element
 *             offset: the value shares the root's storage from that element on (a Split chunk,
 *             Slice, Gather or reshape whose elements are one dense run of its input; its
 *             producer runs no kernel; a backend that stores the dtype in fewer bytes places it
 *             at offset elements of its storage type). The loader checks every planned tensor
 *             lies inside the arena and that each view is exactly the region its producer gives
 *             (passes/memory_plan.c), 64-byte aligned, at the root's offset plus its bytes.
 *   STATS     what the compiler's passes did (drt inspect --json "fused"): u32 n, then n x
 *             (str key, f64 value). Keys written today: fused_attention, fused_norm,
 *             fused_elementwise, fused_gemm_epilogue, cfg_folded (0/1), hoisted_flops
 *             (MatMul/Gemm/Conv FLOPs moved out of the per-step graph: the prologue's plus, when
 *             step tables exist, the step stage's). Unknown keys are kept and ignored.
 *   GUIDANCE  CFG folding (passes/cfg_fold.c; present iff the plan was compiled with
 *             --cfg-scale): f64 default_scale, str mode (standard | rescale | cfgpp | apg), f64
 *             phi, f64 eta, f64 norm_threshold, f64 momentum. The graph then has a float32[1]
 *             input with role GUIDANCE_SCALE that a session sets to default_scale unless the
 *             caller sets it; apg adds an input GUIDANCE_STATE and an output GUIDANCE_STATE_OUT
 *             (momentum; the session zeroes the state at the start of each generation and feeds
 *             each step's output back); cfgpp adds an output UNCOND_PREDICTION that the
 *             generation loop uses for the noise estimate (x0 from the guided prediction, eps
 *             from the unconditional one).
 *   STAGES    graphs that run before the per-step GRAPH (passes/hoist.c): u32 num_stages (<= 2);
 *             per stage: u8 kind (1 prologue: once per generation / drt_session_run, on the
 *             invariant inputs; 2 step: once per step, on the timestep alone), a graph in the
 *             GRAPH encoding (its constants in WEIGHTS), u32 table_steps, f64 t[table_steps]
 *             (the timestep value each table row was computed for, as the generation loop feeds
 *             it), then per stage graph output u64 offset (64-aligned, in WEIGHTS) and u64 nbytes
 *             (= table_steps x the output's bytes): row k holds the outputs for timestep t[k].
 *             Each stage input has the name, dtype and shape of a GRAPH input with a user role;
 *             each stage output those of a GRAPH input with role HOISTED, and every HOISTED
 *             input is produced by exactly one stage output. HOISTED inputs follow all user
 *             inputs in the GRAPH input list and are hidden from the public API.
 *   PROVENANCE  where the constants of one bucket come from, for refits without recompiling
 *             (runtime/weights.h; one section per bucket, optional):
 *               u32 bucket, u64 fingerprint (drt_graph_fingerprint of the model as loaded),
 *               u64 blob_size, zero padding to a 64-byte boundary of the section, blob (the
 *               trace graph's constants and the default bytes of small sources, 64-aligned),
 *               u64 graph_size, trace graph in the GRAPH encoding (constant offsets into blob;
 *               inputs are the sources, outputs the traced values),
 *               u32 n = trace inputs; n x (u64 hash (FNV-1a 64 of the compile-time bytes),
 *                 u64 default offset in blob or 2^64-1, u64 WEIGHTS offset of the plan constant
 *                 the source is itself or 2^64-1),
 *               u32 m = trace outputs (folded values only); m x u64 WEIGHTS offset of the plan
 *                 constant the output is (2^64-1: kept only as a candidate of a derived constant),
 *               u32 num_baked; per: str name, u8 dtype, u8 rank, i64 dims[rank], u64 hash,
 *               u32 num_derived; per: u64 WEIGHTS offset, u8 dtype, u8 rank, i64 dims[rank],
 *                 u8 kind (0 same bytes, 1 cast, 2 repeat, 3 2-D transpose), u32 factor,
 *                 u32 k (1..8), k x u32 candidate: a trace output index, or with bit 31 set a
 *                 source (trace input) index; all candidates must agree,
 *               u32 num_opaque; per: u64 WEIGHTS offset, str name.
 *             The loader checks that every offset is 64-aligned and names a constant of the
 *             bucket's graph of the trace output's dtype and size.
 *   WEIGHTMAP the checkpoint parameter of each model constant (drt compile --weights-map):
 *             u32 n; per entry: str source (model constant), str param (checkpoint name),
 *             u8 transform (0 same element order, 1 2-D transpose), u8 source dtype, u8 rank,
 *             i64 dims[rank], u8 param dtype, u8 rank, i64 dims[rank], u32 num_alts (<= 64),
 *             str alts[] (parameters that had identical content at compile time).
 *   BUCKET    one more shape bucket (drt compile --shapes / --add-bucket; one section per
 *             bucket beyond the first, which is GRAPH/SIGNATURE/MEMPLAN): u32 bucket (1, 2, ...
 *             in order), u64 n + GRAPH encoding (constants in the shared WEIGHTS), u64 n +
 *             SIGNATURE encoding, u64 n + MEMPLAN encoding (n = 0: no memory plan). Inputs and
 *             outputs have the names, dtypes, ranks and roles of bucket 0; only dims differ.
 *             Readers that do not know the type serve bucket 0 only.
 *   CUDA      the CUDA program's binaries (drt compile --target cuda; codegen/codegen.h renders
 *             the program, codegen/nvrtc.h compiles it; at most one section):
 *               u8 precision (drt_cuda_precision: 0 fp32, 1 tf32, 2 fp16, 3 bf16),
 *               u64 source_hash (FNV-1a 64 of the program source: the runtime renders the
 *                 program again from the loaded graphs, in the order main GRAPH, STAGES graphs
 *                 in order, BUCKET graphs 1, 2, ..., and refuses a plan whose hash differs),
 *               u32 nvrtc_version (major * 1000 + minor * 10 of the NVRTC that compiled it),
 *               str options (NVRTC options other than -I and the arch; at most 255 bytes),
 *               u32 num_images (1..DRT_PLAN_MAX_CUDA_IMAGES), then per image: str arch
 *                 ("sm_XX": a cubin, "compute_XX": PTX; XX two or three digits, an optional
 *                 'a' or 'f' suffix; at most 15 bytes; no arch twice), u64 offset (from the
 *                 start of the section, 64-aligned, after this table and after the previous
 *                 image), u64 size (> 0),
 *               then the image bytes at their offsets (zero padding between them); the last
 *                 image ends the section. A cubin starts with the ELF magic "\x7fELF", PTX ends
 *                 with its NUL terminator (so the driver can load it in place).
 *             The plan's header targets include bit 1 (CUDA) and the TARGET section lists the archs.
 *
 *  Encoding inside GRAPH / SIGNATURE / SCHEDULE: u8/u32/u64/i64/f32/f64 fixed width;
 *  str = u32 length + bytes (no NUL, length <= DRT_PLAN_MAX_STRING).
 *  GRAPH:
 *    u32 opset, str name
 *    u32 num_values; per value: str name, u8 kind (0 intermediate, 1 input, 2 const),
 *        u8 dtype, u8 rank, u8 flags (bit0 graph output), i64 dims[rank],
 *        const only: u64 offset into WEIGHTS, u64 nbytes
 *    u32 num_nodes; per node (topological order): str name, str op (ONNX op_type),
 *        u32 opset, u32 num_inputs, i32 value index[] (-1 = omitted),
 *        u32 num_outputs, u32 value index[], u32 num_attrs, attrs[]
 *    attr: str name, u8 type (drt_attr_type), payload: FLOAT f32 | INT i64 | STRING str |
 *        INTS u32 n + i64[n] | FLOATS u32 n + f32[n] | STRINGS u32 n + str[n] |
 *        TENSOR u8 dtype, u8 rank, i64 dims[rank], u64 nbytes, bytes
 *    u32 num_inputs, u32 value index[]; u32 num_outputs, u32 value index[]
 *  SIGNATURE: u32 n; per tensor: str name, u8 role, u8 dtype, u8 rank, i64 dims[rank],
 *    for inputs then outputs (two lists).
 *  SCHEDULE: str name, str params, u32 num_steps, f64 init_noise_sigma,
 *    per step 9 x f64 (t_model, c_in, p_x, p_m, q_x, q_m, a, b, c).
 */
#ifndef DRT_RUNTIME_PLAN_FORMAT_H
#define DRT_RUNTIME_PLAN_FORMAT_H

#define DRT_PLAN_MAGIC "DRTPLAN"
#define DRT_PLAN_FORMAT_VERSION 2u
#define DRT_PLAN_FORMAT_VERSION_MIN 1u
#define DRT_PLAN_HEADER_SIZE 64u
#define DRT_PLAN_SECTION_ENTRY_SIZE 32u
#define DRT_PLAN_ALIGN 64u
#define DRT_PLAN_MAX_SECTIONS 64u
#define DRT_PLAN_MAX_STRING (1u << 20)

#define DRT_PLAN_TARGET_CPU 1u
#define DRT_PLAN_TARGET_CUDA 2u

typedef enum drt_plan_section_type {
  DRT_PLAN_SECTION_WEIGHTS = 1,
  DRT_PLAN_SECTION_GRAPH = 2,
  DRT_PLAN_SECTION_SIGNATURE = 3,
  DRT_PLAN_SECTION_SCHEDULE = 4,
  DRT_PLAN_SECTION_TARGET = 5,
  DRT_PLAN_SECTION_MEMPLAN = 6,
  DRT_PLAN_SECTION_STATS = 7,
  DRT_PLAN_SECTION_GUIDANCE = 8,
  DRT_PLAN_SECTION_STAGES = 9,
  DRT_PLAN_SECTION_PROVENANCE = 16, /* repeatable: one per bucket */
  DRT_PLAN_SECTION_WEIGHTMAP = 17,
  DRT_PLAN_SECTION_BUCKET = 18,     /* repeatable: one per bucket after the first */
  DRT_PLAN_SECTION_CUDA = 19,       /* CUDA binaries; at most one */
} drt_plan_section_type;

typedef enum drt_plan_stage_kind {
  DRT_PLAN_STAGE_PROLOGUE = 1, /* once per generation (and per drt_session_run) */
  DRT_PLAN_STAGE_STEP = 2,     /* once per step, reads only the timestep; may have tables */
} drt_plan_stage_kind;

typedef enum drt_plan_role {
  DRT_PLAN_ROLE_OTHER = 0,        /* conditioning input or plain output */
  DRT_PLAN_ROLE_LATENT = 1,       /* the latent sample x_t */
  DRT_PLAN_ROLE_TIMESTEP = 2,     /* the model's timestep input */
  DRT_PLAN_ROLE_PREDICTION = 3,   /* the output the sampler consumes */
  DRT_PLAN_ROLE_GUIDANCE_SCALE = 4,     /* input: CFG guidance scale, float32[1] */
  DRT_PLAN_ROLE_GUIDANCE_STATE = 5,     /* input: guidance state (APG momentum) */
  DRT_PLAN_ROLE_UNCOND_PREDICTION = 6,  /* output: unconditional prediction (CFG++) */
  DRT_PLAN_ROLE_GUIDANCE_STATE_OUT = 7, /* output: next guidance state */
  DRT_PLAN_ROLE_HOISTED = 8,            /* input fed by a STAGES graph (internal) */
  DRT_PLAN_ROLE_MAX_ = 8,
} drt_plan_role;

#endif
