/* codegen/kernels/runtime.cuh */
