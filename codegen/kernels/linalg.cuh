/* codegen/kernels/linalg.cuh */
