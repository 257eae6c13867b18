/* Hand-written kernels for run_emu.py --selftest: the emulator's barriers, shuffles, votes,
 * atomics, dynamic shared memory, wmma and fp16/bf16 conversions against numpy. */
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <mma.h>

struct drt_kargs {
  unsigned long long u[32];
};
extern __shared__ __align__(16) unsigned char drt_smem[];
using namespace nvcuda;

__device__ __forceinline__ float st_warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <int BLOCK> __device__ float st_block_sum(float v) {
  __shared__ float red[32];
  v = st_warp_sum(v);
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  if (lane == 0) red[w] = v;
  __syncthreads();
  float t = threadIdx.x < BLOCK / 32 ? red[threadIdx.x] : 0.f;
  t = st_warp_sum(t);
  __syncthreads();
  return t;
}
extern "C" __global__ void __launch_bounds__(128) st_rowsum(drt_kargs a) {
  const float *x = (const float *)a.u[0];
  float *y = (float *)a.u[1];
  long long n = (long long)a.u[2];
  const float *row = x + blockIdx.x * n;
  float s = 0;
  for (long long i = threadIdx.x; i < n; i += blockDim.x) s += row[i];
  s = st_block_sum<128>(s);
  if (threadIdx.x == 0) y[blockIdx.x] = s;
}
extern "C" __global__ void st_reverse(drt_kargs a) {
  float *x = (float *)a.u[0];
  float *s = (float *)drt_smem;
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  s[threadIdx.x] = x[i];
  __syncthreads();
  x[i] = s[blockDim.x - 1 - threadIdx.x];
}
extern "C" __global__ void st_wmma_h(drt_kargs a) {
  const __half *A = (const __half *)a.u[0];
  const __half *B = (const __half *)a.u[1];
  float *C = (float *)a.u[2];
  int N = (int)a.u[4], K = (int)a.u[5];
  int tm = blockIdx.y, tn = blockIdx.x;
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fill_fragment(acc, 0.0f);
  __shared__ __half bt[16 * 16];
  for (int k = 0; k < K; k += 16) {
    wmma::load_matrix_sync(fa, A + tm * 16 * K + k, K);
    for (int i = threadIdx.x; i < 256; i += 32) bt[(i % 16) * 16 + i / 16] = B[(k + i / 16) * N + tn * 16 + i % 16];
    __syncwarp();
    wmma::load_matrix_sync(fb, bt, 16); /* col_major view of the transposed copy */
    wmma::mma_sync(acc, fa, fb, acc);
    __syncwarp();
  }
  wmma::store_matrix_sync(C + tm * 16 * N + tn * 16, acc, N, wmma::mem_row_major);
}
extern "C" __global__ void st_wmma_tf32(drt_kargs a) {
  const float *A = (const float *)a.u[0];
  const float *B = (const float *)a.u[1];
  float *C = (float *)a.u[2];
  int N = (int)a.u[4], K = (int)a.u[5];
  wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
  wmma::fill_fragment(acc, 0.0f);
  for (int k = 0; k < K; k += 8) {
    wmma::load_matrix_sync(fa, A + k, K);
    wmma::load_matrix_sync(fb, B + k * N + blockIdx.x * 16, N);
    for (int i = 0; i < fa.num_elements; i++) fa.x[i] = wmma::__float_to_tf32(fa.x[i]);
    for (int i = 0; i < fb.num_elements; i++) fb.x[i] = wmma::__float_to_tf32(fb.x[i]);
    wmma::mma_sync(acc, fa, fb, acc);
  }
  wmma::store_matrix_sync(C + blockIdx.x * 16, acc, N, wmma::mem_row_major);
}
extern "C" __global__ void st_convert(drt_kargs a) {
  const float *x = (const float *)a.u[0];
  __half *h = (__half *)a.u[1];
  __nv_bfloat16 *b = (__nv_bfloat16 *)a.u[2];
  int n = (int)a.u[3];
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
    h[i] = __float2half(x[i]);
    b[i] = __float2bfloat16(x[i]);
    /* round trips and arithmetic must compile and be exact where they should be */
    if (__half2float(__float2half(0.5f)) != 0.5f || __bfloat162float(__float2bfloat16(-2.0f)) != -2.0f) __trap();
    __half2 p = __floats2half2_rn(1.0f, 2.0f);
    p = __hadd2(p, p);
    if (__low2float(p) != 2.0f || __high2float(p) != 4.0f) __trap();
    if (max(3, 4) != 4 || min(2.5f, 1.5f) != 1.5f || max(7ll, 3) != 7ll) __trap();
  }
}
extern "C" __global__ void st_scan(drt_kargs a) {
  int *y = (int *)a.u[0];
  int v = threadIdx.x + 1;
  for (int d = 1; d < 32; d <<= 1) {
    int t = __shfl_up_sync(0xffffffffu, v, d);
    if ((threadIdx.x & 31) >= (unsigned)d) v += t;
  }
  y[threadIdx.x] = v;
  atomicAdd(&y[1000], 1);
}
extern "C" __global__ void st_vote(drt_kargs a) {
  unsigned *y = (unsigned *)a.u[0];
  unsigned lane = threadIdx.x & 31;
  unsigned b = __ballot_sync(0xffffffffu, lane & 1);
  int any3 = __any_sync(0xffffffffu, lane == 3);
  int all = __all_sync(0xffffffffu, lane < 31);
  if (threadIdx.x == 0) {
    y[0] = b;
    y[2] = (unsigned)any3;
    y[3] = (unsigned)all;
  }
  if (threadIdx.x == 32) y[1] = b;
}
extern "C" __global__ void st_deadlock(drt_kargs a) {
  (void)a;
  if (threadIdx.x < 5) __syncthreads();
  else {
    __syncwarp();
    __syncwarp();
  }
}
/* A fragment updated per lane (not portable: real fragments are distributed): must be reported. */
extern "C" __global__ void st_wmma_diverge(drt_kargs a) {
  const __half *A = (const __half *)a.u[0];
  float *C = (float *)a.u[1];
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fill_fragment(acc, 0.0f);
  wmma::load_matrix_sync(fa, A, 16);
  wmma::load_matrix_sync(fb, A, 16);
  if ((threadIdx.x & 31) == 5) fa.x[3] = __float2half(7.0f);
  wmma::mma_sync(acc, fa, fb, acc);
  wmma::store_matrix_sync(C, acc, 16, wmma::mem_row_major);
}
/* Reads a static __shared__ array before writing it: must see the 0xFF poison in every block. */
extern "C" __global__ void st_shared_poison(drt_kargs a) {
  unsigned *y = (unsigned *)a.u[0];
  __shared__ unsigned s[64];
  unsigned before = s[threadIdx.x];
  __syncthreads();
  s[threadIdx.x] = 0x12345678u;
  __syncthreads();
  y[blockIdx.x * 64 + threadIdx.x] = before;
}
