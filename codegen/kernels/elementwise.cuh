/* codegen/kernels/elementwise.cuh */
