/* The program builder that the per-family emitters (codegen/emit_<family>.c) use. Internal to
 * codegen/. An emitter gets one node and either appends launches for it (kernels it renders,
 * cuBLASLt GEMMs, copies) or returns DRT_STATUS_UNSUPPORTED with a reason, which makes the node a
 * HOST launch when fallback is allowed. An emitter must not leave launches behind when it fails
 * (the builder rolls back launches and scratch of a failed node). */
#ifndef DRT_CODEGEN_CG_H
#define DRT_CODEGEN_CG_H

#include <stdarg.h>

#include "codegen/codegen.h"
#include "ir/ew_program.h"
#include "ir/op.h"

typedef struct drt_cg drt_cg;

/* The precision and storage types of this build. */
drt_cuda_precision drt_cg_precision(const drt_cg *cg);
/* CUDA C type name of a value's device storage: "float", "__half", "__nv_bfloat16", "double",
 * "long long", "int", "short", "signed char", "unsigned char" (uint8 and bool), ... */
const char *drt_cg_ctype(const drt_cg *cg, drt_dtype storage_dtype);
drt_dtype drt_cg_storage(const drt_cg *cg, const drt_value *v);
/* "act" type name of the precision (float / __half / __nv_bfloat16). */
const char *drt_cg_act(const drt_cg *cg);

/* Adds a generated kernel. `fmt` (printf-style) renders the complete wrapper: it must contain
 * the token @NAME@ exactly where the kernel's name goes, e.g.
 *   extern "C" __global__ void __launch_bounds__(256) @NAME@(drt_kargs a) {
 *     drt_layernorm<__half, 1152, 256>((const __half *)a.u[0], ...);
 *   }
 * The builder hashes the text (with @NAME@ unreplaced), deduplicates, names it drt_k<hash> and
 * returns its index in *kernel. max_threads is the block size the wrapper was written for. */
drt_status drt_cg_kernel(drt_cg *cg, uint32_t max_threads, int32_t *kernel, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Appends a KERNEL launch of `kernel` for the current node. */
drt_status drt_cg_launch(drt_cg *cg, int32_t kernel, const uint32_t grid[3], const uint32_t block[3], uint32_t smem,
                         const drt_cuda_arg *args, int num_args);
/* Appends a cuBLASLt GEMM / a device-to-device copy for the current node. Under tf32, one with
 * a dimension of at most DRT_CG_TF32_MIN_DIM is recorded without TF32. */
drt_status drt_cg_gemm(drt_cg *cg, const drt_cuda_gemm *gemm);
drt_status drt_cg_copy(drt_cg *cg, drt_cuda_arg dst, drt_cuda_arg src, uint64_t bytes);
/* Launches appended from now on belong to the current node's variant `variant` (1, 2, ...; see
 * drt_cuda_launch.variant), 0: to every variant. Emitters set it back to 0 before returning. */
void drt_cg_variant(drt_cg *cg, uint8_t variant);
/* Reserves node-local scratch (256-byte aligned) and returns an arg for it. */
drt_cuda_arg drt_cg_scratch(drt_cg *cg, uint64_t bytes);

static inline drt_cuda_arg drt_cg_arg_value(const drt_value *v) {
  drt_cuda_arg a = {DRT_CUDA_ARG_VALUE, v, 0, 0};
  return a;
}
static inline drt_cuda_arg drt_cg_arg_none(void) {
  drt_cuda_arg a = {DRT_CUDA_ARG_NONE, NULL, 0, 0};
  return a;
}
static inline drt_cuda_arg drt_cg_arg_i64(int64_t x) {
  drt_cuda_arg a = {DRT_CUDA_ARG_IMM, NULL, 0, (uint64_t)x};
  return a;
}
drt_cuda_arg drt_cg_arg_f32(float x);  /* bits in the low 32 bits */
drt_cuda_arg drt_cg_arg_f64(double x);

/* Emitter tables, one per family file. An emitter returns DRT_STATUS_UNSUPPORTED (with a message
 * saying why) for a form it does not handle. */
typedef drt_status (*drt_cg_emit_fn)(drt_cg *cg, const drt_node *n);
typedef struct drt_cg_emitter {
  drt_op op;
  drt_cg_emit_fn fn;
} drt_cg_emitter;

extern const drt_cg_emitter drt_cg_emitters_elementwise[]; /* codegen/emit_elementwise.c */
extern const drt_cg_emitter drt_cg_emitters_movement[];    /* codegen/emit_movement.c */
extern const drt_cg_emitter drt_cg_emitters_linalg[];      /* codegen/emit_linalg.c (MatMul, Gemm, Conv, drt.Gemm, drt.Conv, Einsum) */
extern const drt_cg_emitter drt_cg_emitters_norm[];        /* codegen/emit_norm.c (drt.Norm, LayerNorm, GroupNorm, RMS, Softmax, reductions, drt.CfgCombine) */
extern const drt_cg_emitter drt_cg_emitters_attention[];   /* codegen/emit_attention.c (drt.Attention) */
/* each table ends with {DRT_OP_COUNT_, NULL} */

/* Shared by emitters (implemented in codegen/emit_elementwise.c): renders and launches the
 * elementwise program `p` of node n over the shape of `out`. Program input 0 is `in0` (a buffer of
 * out's shape in storage dtype in0_dtype, e.g. a GEMM or convolution result) when in0.kind is not
 * NONE; the remaining program inputs are node inputs first_extra, first_extra+1, ... (broadcasting
 * into out's shape). Writes program output 0 to `out` (in0 may be the same buffer: in place). */
drt_status drt_cg_emit_ew_program(drt_cg *cg, const drt_node *n, const drt_ew_program *p, drt_cuda_arg in0,
                                  drt_dtype in0_dtype, int first_extra, const drt_value *out);
/* Whether a Conv / drt.Conv node's convolution reads X through im2col (codegen/emit_linalg.c):
 * then X may be stored in float32 under fp16/bf16, rounded into the column buffer. */
bool drt_cg_conv_im2col(const drt_node *n);

/* The same, with a per-channel vector `bias` (shape [C], C = out's dim 1) added to program input
 * 0 where the program loads it: a convolution's bias that its GEMM did not add (NULL: none). */
drt_status drt_cg_emit_ew_program_bias(drt_cg *cg, const drt_node *n, const drt_ew_program *p, drt_cuda_arg in0,
                                       drt_dtype in0_dtype, int first_extra, const drt_value *bias,
                                       const drt_value *out);

/* The kernel library: codegen/kernels/<family>.cuh embedded at build time (cmake/embed.cmake), in the
 * order listed in codegen/kernels/LIBRARY (prelude first). */
typedef struct drt_cg_library_file {
  const char *name;
  const unsigned char *data;
  size_t size;
} drt_cg_library_file;
extern const drt_cg_library_file drt_cg_library[];
extern const size_t drt_cg_library_count;

/* Generated kernels index with `int` only below this many elements (inputs and outputs): grid-stride
 * loops add gridDim.x * blockDim.x (up to 2^28) to an index, which must not overflow int32. */
#define DRT_CG_INT_INDEX_LIMIT (1LL << 30)

/* Grid helper: number of blocks for n items of `per_block`, clamped to [1, 65535*... ) for x. */
uint32_t drt_cg_blocks(int64_t n, int64_t per_block, uint32_t max_blocks);

#endif
