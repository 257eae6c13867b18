/* codegen/kernels/movement.cuh */
