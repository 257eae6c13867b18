/* codegen/kernels/prelude.cuh */
