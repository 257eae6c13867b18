/* DRT_CUDA_ENABLED: this translation unit is built with the CUDA toolkit headers (the build
 * defines DRT_HAVE_CUDA and adds their directory to the include path). Private to runtime/cuda. */
#ifndef DRT_RUNTIME_CUDA_ENABLED_H
#define DRT_RUNTIME_CUDA_ENABLED_H

#if defined(DRT_HAVE_CUDA) && defined(__has_include)
#if __has_include(<cuda.h>) && __has_include(<cublasLt.h>)
#define DRT_CUDA_ENABLED 1
#endif
#endif

#endif
