/* The .plan file: byte layout, field by field. All integers little endian.
 *
 *  offset  size  field
 *  ------  ----  ---------------------------------------------------------------------
 *  File header (64 bytes, at offset 0)
 *   0       8    magic "DRTPLAN\0"
 *   8       4    format_version (DRT_PLAN_FORMAT_VERSION); readers refuse any other value
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
 *   SIGNATURE inputs/outputs with role (latent / timestep / conditioning / guidance)
 *   SCHEDULE  default sampling schedule: name, parameters, per-step scalars
 *   TARGET    target details: CUDA SM architectures and toolkit version (CUDA plans)
 *   MEMPLAN   activation memory plan: u64 arena_bytes, u32 num_values, then per graph value
 *             (GRAPH order) i64 byte offset in the arena (-1: not in the arena). The loader
 *             checks every planned tensor lies inside the arena.
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
#define DRT_PLAN_FORMAT_VERSION 1u
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
} drt_plan_section_type;

typedef enum drt_plan_role {
  DRT_PLAN_ROLE_OTHER = 0,        /* conditioning input or plain output */
  DRT_PLAN_ROLE_LATENT = 1,       /* the latent sample x_t */
  DRT_PLAN_ROLE_TIMESTEP = 2,     /* the model's timestep input */
  DRT_PLAN_ROLE_PREDICTION = 3,   /* the output the sampler consumes */
} drt_plan_role;

#endif
