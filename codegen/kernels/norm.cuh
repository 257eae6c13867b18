/* codegen/kernels/norm.cuh */
