/* CUDA code generation: turns a canonical graph (static shapes, topologically sorted, memory
 * planned or not) into a CUDA program: one translation unit of CUDA C (the kernel library in
 * codegen/kernels/<family>.cuh followed by thin generated wrappers with every shape baked in as a
 * compile-time constant) and, per graph node, the list of launches that compute it.
 *
 * The program is a pure function of (graphs, precision): `drt compile --target cuda` renders
 * it, compiles the source with NVRTC (codegen/nvrtc.h) and stores source, hash and binaries in
 * the plan; the runtime renders it again from the loaded graphs and checks the hash, so the
 * launch lists never have to be serialized and can never disagree with the binaries.
 *
 * Device storage (the contract between codegen and runtime/cuda):
 *   - a FLOAT32 value is stored on the device in the activation type of the precision
 *     (fp32/tf32: float, fp16: __half, bf16: __nv_bfloat16): drt_cuda_storage_dtype();
 *     every other dtype is stored as is (bool as one byte). Graph inputs/outputs and weights
 *     are converted by the runtime at the boundary (weights once, at upload).
 *     Exception: small float32 graph inputs that only elementwise kernels read (a timestep,
 *     sigma or guidance scale) stay float32 under fp16/bf16 (t = 999 is 1000 in bf16), with
 *     the reshapes of them: graph code's f32_values, drt_cuda_value_storage().
 *   - every kernel has the signature  extern "C" __global__ void NAME(drt_kargs a)  where
 *     drt_kargs (codegen/kernels/prelude.cuh) is a struct of DRT_CUDA_MAX_ARGS 64-bit slots;
 *     slot i holds the device address of a buffer (drt_cuda_arg kinds VALUE/SCRATCH) or the
 *     bits of an immediate.
 *   - scratch: one device region of program->graphs[g].scratch_bytes (256-byte aligned
 *     offsets), reused by every node (launches run in order on one stream).
 * Thread-safety: building is pure; a program is immutable once built. */
#ifndef DRT_CODEGEN_CODEGEN_H
#define DRT_CODEGEN_CODEGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/graph.h"
#include "ir/status.h"

/* Under tf32, a GEMM with m, n or k at most this many computes in full FP32: it is bandwidth-bound
 * either way (codegen.c, drt_cg_gemm). */
#define DRT_CG_TF32_MIN_DIM 16

/* The oldest GPU the kernel library compiles for (compute capability x 10): it uses Ampere
 * instructions throughout (cp.async, mma.sync m16n8k16, bf16 and tf32 tensor-core fragments).
 * drt_nvrtc_check_archs refuses older targets, the runtime older devices. */
#define DRT_CUDA_MIN_SM 80

typedef enum drt_cuda_precision {
  DRT_CUDA_PRECISION_FP32 = 0, /* float storage, fp32 math (cuBLASLt COMPUTE_32F) */
  DRT_CUDA_PRECISION_TF32 = 1, /* float storage, TF32 tensor cores for GEMM/conv/attention
                                   (GEMMs with a dimension <= DRT_CG_TF32_MIN_DIM: full FP32) */
  DRT_CUDA_PRECISION_FP16 = 2, /* __half storage, fp32 accumulation everywhere */
  DRT_CUDA_PRECISION_BF16 = 3, /* __nv_bfloat16 storage, fp32 accumulation everywhere */
} drt_cuda_precision;

const char *drt_cuda_precision_name(drt_cuda_precision p); /* "fp32" ... */
bool drt_cuda_precision_parse(const char *s, drt_cuda_precision *out);
/* Device storage dtype of a value of dtype dt under precision p (see above). */
drt_dtype drt_cuda_storage_dtype(drt_cuda_precision p, drt_dtype dt);
/* Float32 graph inputs that are per-sample scalars (shape [B] or [B, 1, ...]) with B at most
 * this keep float32 storage under fp16/bf16 when every reader is an elementwise kernel
 * (drt_cuda_program_build). */
#define DRT_CUDA_F32_INPUT_MAX 256

#define DRT_CUDA_MAX_ARGS 32

/* ---- launches --------------------------------------------------------------------------------- */
typedef enum drt_cuda_arg_kind {
  DRT_CUDA_ARG_NONE = 0,   /* a NULL pointer (absent optional operand) */
  DRT_CUDA_ARG_VALUE = 1,  /* device address of `value` + offset (bytes) */
  DRT_CUDA_ARG_SCRATCH = 2,/* device address of the graph's scratch region + offset */
  DRT_CUDA_ARG_IMM = 3,    /* the 64 bits `imm` (an integer, or a float/double bit pattern) */
} drt_cuda_arg_kind;

typedef struct drt_cuda_arg {
  uint8_t kind;
  const drt_value *value; /* VALUE */
  uint64_t offset;        /* VALUE, SCRATCH */
  uint64_t imm;           /* IMM */
} drt_cuda_arg;

/* cuBLASLt GEMM in ROW-MAJOR terms (the runtime maps it to column-major):
 *   for b in [0, batch): D_b[m, n] = alpha * op(A_b)[m, k] op(B_b)[k, n] (+ beta * C_b[m, n])
 *                                    (+ bias[n] broadcast over rows) then the epilogue act.
 *   X_b lives at X + b * stride_x elements (stride 0: shared by every batch); lda/ldb/ldc/ldd are
 *   row strides in elements of the stored (untransposed) matrices; A stored [m, k] (trans_a 0)
 *   or [k, m] (trans_a 1); B stored [k, n] or [n, k]. Types are storage dtypes. */
typedef enum drt_cuda_gemm_epilogue {
  DRT_CUDA_EPI_NONE = 0,
  DRT_CUDA_EPI_BIAS = 1,      /* + bias[n] */
  DRT_CUDA_EPI_GELU = 2,      /* gelu_tanh (cuBLASLt's GELU) */
  DRT_CUDA_EPI_GELU_BIAS = 3,
  DRT_CUDA_EPI_RELU = 4,
  DRT_CUDA_EPI_RELU_BIAS = 5,
} drt_cuda_gemm_epilogue;

typedef struct drt_cuda_gemm {
  drt_cuda_arg a, b, c, d, bias; /* c: kind NONE unless beta != 0 (C may be D: residual add) */
  drt_dtype a_type, b_type, c_type, d_type, bias_type;
  int64_t m, n, k, batch;
  bool trans_a, trans_b;
  int64_t lda, ldb, ldc, ldd;
  int64_t stride_a, stride_b, stride_c, stride_d;
  float alpha, beta;
  uint8_t epilogue;       /* drt_cuda_gemm_epilogue */
  bool tf32;              /* allow TF32 for fp32 operands */
} drt_cuda_gemm;

typedef enum drt_cuda_launch_kind {
  DRT_CUDA_LAUNCH_KERNEL = 0, /* kernel `kernel` with grid/block/smem and args */
  DRT_CUDA_LAUNCH_GEMM = 1,   /* cuBLASLt matmul `gemm` */
  DRT_CUDA_LAUNCH_COPY = 2,   /* cuMemcpyDtoDAsync(dst, src, bytes); skipped when equal */
  DRT_CUDA_LAUNCH_HOST = 3,   /* fallback: run node `node` with the CPU kernels (runtime copies
                                 its inputs to host, converts, runs, copies outputs back) */
} drt_cuda_launch_kind;

typedef struct drt_cuda_launch {
  uint8_t kind;
  /* 0: always runs. k >= 1: part of the node's k-th way of computing the same result (e.g. a
     convolution as an implicit-GEMM kernel or as im2col + cuBLASLt); the executor times the
     node's variants on the device once and runs only the fastest (DRT_CUDA_VARIANT=k forces
     one). Variant launches come before the node's common ones and must be re-runnable: they
     read only the node's inputs and write what the common launches read. */
  uint8_t variant;
  uint32_t node;       /* index in graph->nodes */
  /* KERNEL */
  int32_t kernel;      /* index in program->kernels */
  uint32_t grid[3], block[3];
  uint32_t smem;       /* dynamic shared memory bytes (runtime raises the opt-in limit) */
  int num_args;
  drt_cuda_arg args[DRT_CUDA_MAX_ARGS];
  /* GEMM */
  drt_cuda_gemm gemm;
  /* COPY */
  drt_cuda_arg dst, src;
  uint64_t bytes;
  /* HOST: why the node has no device kernel (for logs and `drt inspect`) */
  char reason[160];
} drt_cuda_launch;

typedef struct drt_cuda_kernel {
  char name[40];       /* "drt_k<16 hex of hash>" for generated kernels, fixed names for runtime ones */
  uint64_t hash;       /* FNV-1a 64 of the wrapper source */
  uint32_t src_begin, src_end; /* the wrapper's byte range inside program->source */
  uint32_t max_threads;        /* block size the kernel was written for (launch_bounds) */
} drt_cuda_kernel;

typedef struct drt_cuda_graph_code {
  const drt_graph *graph;
  size_t num_launches;
  drt_cuda_launch *launches;   /* in node order; node_first[i]..node_first[i+1] belong to node i */
  uint32_t *node_first;        /* [graph->num_nodes + 1] */
  uint64_t scratch_bytes;
  uint32_t num_host_nodes;     /* nodes that fell back to HOST */
  /* values stored in float32 although the precision stores float32 as fp16/bf16: small float32
     graph inputs read only by elementwise kernels (timestep, sigma, guidance scale), and the
     reshapes of them; activations no tensor-core operand reads (residual streams, norm inputs)
     and the biases of GEMMs writing such activations; see drt_cuda_value_storage */
  const drt_value **f32_values;
  size_t num_f32_values;
  const drt_value **f32_sorted; /* the same values ordered by address, for lookups */
} drt_cuda_graph_code;

/* Storage dtype of value v of graph code c (NULL: none) under precision p: that of its dtype,
 * except for the values c keeps in float32 (c->f32_values). */
drt_dtype drt_cuda_value_storage(drt_cuda_precision p, const drt_cuda_graph_code *c, const drt_value *v);

typedef struct drt_cuda_program {
  drt_cuda_precision precision;
  char *source;                /* NUL-terminated translation unit */
  size_t source_len;
  uint64_t source_hash;        /* FNV-1a 64 of source */
  size_t num_kernels;
  drt_cuda_kernel *kernels;    /* generated kernels first-seen order, deduplicated by hash */
  size_t num_graphs;
  drt_cuda_graph_code *graphs;
} drt_cuda_program;

/* Names of the fixed runtime kernels every program contains (codegen/kernels/runtime.cuh);
 * argument slots documented there. */
#define DRT_CUDA_KERNEL_F32_TO_ACT "drt_f32_to_act"     /* (dst act*, src float*, n) */
#define DRT_CUDA_KERNEL_ACT_TO_F32 "drt_act_to_f32"     /* (dst float*, src act*, n) */
#define DRT_CUDA_KERNEL_PHILOX "drt_philox_normal"      /* (dst act*, n, seed_ptr u64*, stream, scale f32 bits) */
#define DRT_CUDA_KERNEL_SAMPLER "drt_sampler_step"      /* see runtime.cuh */
#define DRT_CUDA_KERNEL_FILL "drt_fill_scalar"          /* (dst act*, n, value f64 bits) */
#define DRT_CUDA_KERNEL_NONFINITE "drt_count_nonfinite" /* (src act*, n, counter u32*) */

typedef struct drt_cuda_codegen_options {
  drt_cuda_precision precision;
  bool allow_host_fallback; /* false: a node without a device kernel is an error */
} drt_cuda_codegen_options;

void drt_cuda_codegen_options_init(drt_cuda_codegen_options *o);

/* Renders the program for graphs[0..n) (a plan's main graph, hoisted stages and buckets share one
 * program so identical kernels are compiled once). The graphs must outlive the program.
 * For a plan the order is fixed, because the source (and its hash, stored in the plan's CUDA
 * section) depends on it: graphs[0] is the main graph, then every STAGES graph in order, then
 * shape buckets 1, 2, ... (drt_plan_cuda_graphs in runtime/plan.h lists them; `drt compile
 * --target cuda` and the runtime both use it). */
drt_status drt_cuda_program_build(const drt_graph *const *graphs, size_t n, const drt_cuda_codegen_options *o,
                                  drt_cuda_program **out);
void drt_cuda_program_destroy(drt_cuda_program *p); /* NULL-safe */
/* Index of a kernel by name, -1 when absent. */
int drt_cuda_program_find_kernel(const drt_cuda_program *p, const char *name);

uint64_t drt_fnv1a64(const void *data, size_t n, uint64_t seed); /* seed 0: standard offset basis */

#endif
