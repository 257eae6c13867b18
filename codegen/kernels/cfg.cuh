/* codegen/kernels/cfg.cuh */
