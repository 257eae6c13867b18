/* codegen/kernels/attention.cuh */
