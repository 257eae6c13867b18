/* The CPU evaluator of elementwise expression programs (ir/ew_program.h), shared by the
 * drt.Elementwise kernel (runtime/cpu/fused_elementwise.c) and the epilogues of drt.Gemm /
 * drt.Conv (runtime/cpu/fused_gemm.c).
 *
 * drt_ew_exec_prepare binds a decoded program to an output shape and to the data of its
 * inputs and outputs: it computes each input's broadcast strides and merges output dims
 * where every input is contiguous (or broadcast) across them. drt_ew_exec_range then
 * evaluates any flat range of the output in tiles of DRT_EW_TILE elements: per tile every
 * instruction runs as one tight loop over the tile (compiled for AVX2/FMA where the CPU has
 * it), inputs that are contiguous along the tile are read in place, broadcast ones are
 * filled or gathered into the register, and the stores copy the tile out last. An output may
 * share memory with a same-shape input (in-place planning, or the epilogue's accumulator):
 * within a tile every input element is read before any output element is written.
 *
 * A prepared exec is read-only during evaluation: disjoint ranges may run on several threads
 * at once. Each call uses about DRT_EW_MAX_REGS * DRT_EW_TILE * 4 bytes of stack. */
#ifndef DRT_RUNTIME_CPU_EW_EXEC_H
#define DRT_RUNTIME_CPU_EW_EXEC_H

#include "ir/ew_program.h"
#include "runtime/cpu/cpu.h"

#define DRT_EW_TILE 256

typedef struct drt_ew_exec {
  const drt_ew_program *prog;
  int rank;                    /* merged output dims */
  int64_t dims[DRT_MAX_RANK];
  int64_t total;               /* output elements */
  bool row_mode;               /* tiles never cross the innermost merged dim */
  const float *in[DRT_EW_MAX_INPUTS];
  int64_t strides[DRT_EW_MAX_INPUTS][DRT_MAX_RANK]; /* per merged dim, 0 = broadcast */
  bool uniform[DRT_EW_MAX_INPUTS]; /* one value for the whole output */
  bool dense[DRT_EW_MAX_INPUTS];   /* same layout as the output: read at the flat position */
  float *out[DRT_EW_MAX_OUTPUTS];
  bool hoist[DRT_EW_MAX_INSNS]; /* CONST / uniform LOAD whose register is never rewritten */
  int compute_insns;            /* instructions other than LOAD/CONST/STORE */
} drt_ew_exec;

/* Binds prog to an output shape, input tensors in[0..prog->num_inputs) (float32, each
 * broadcasting into out_shape; in[i].data may alias an output for same-shape inputs) and
 * output buffers out[0..prog->num_outputs) (float32, out_shape, dense). */
drt_status drt_ew_exec_prepare(drt_ew_exec *e, const drt_ew_program *prog, const drt_shape *out_shape,
                               const drt_tensor *in, float *const *out);

/* Evaluates output elements [begin, end) (flat C-order indices). Thread-safe for disjoint
 * ranges. */
void drt_ew_exec_range(const drt_ew_exec *e, int64_t begin, int64_t end);

/* Evaluates the whole output on ctx's thread pool. */
void drt_ew_exec_run(drt_cpu_ctx *ctx, const drt_ew_exec *e);

#endif
