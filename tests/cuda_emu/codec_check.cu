/* run_emu.py --selftest "minifloat codec": the device float8/float4/float6 codec of
 * codegen/kernels/elementwise.cuh (drt_mf_encode / drt_mf_decode, what the CUDA QuantizeLinear /
 * DequantizeLinear kernels run) compared code for code with ml_dtypes, the library that made
 * ONNX's reference data. Built with the kernel library's own headers. */
#include "prelude.cuh"
#include "elementwise.cuh"

template <int EB, int MB, int BIAS, int KIND>
__device__ void cc_run(const float *x, unsigned char *codes, float *dec, long long n, bool sat) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    codes[i] = drt_mf_encode<EB, MB, BIAS, KIND>(x[i], sat);
  for (long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x; c < 256; c += (long long)gridDim.x * blockDim.x)
    dec[c] = drt_mf_decode<EB, MB, BIAS, KIND>((unsigned char)c);
}

/* u[0] x (float), u[1] codes (uint8), u[2] decoded codes 0..255 (float), u[3] n, u[4] format,
 * u[5] saturate. Formats: 0 E4M3FN, 1 E4M3FNUZ, 2 E5M2, 3 E5M2FNUZ, 4 E2M1, 5 E2M3, 6 E3M2. */
extern "C" __global__ void cc_codec(drt_kargs a) {
  const float *x = (const float *)a.u[0];
  unsigned char *codes = (unsigned char *)a.u[1];
  float *dec = (float *)a.u[2];
  long long n = (long long)a.u[3];
  bool sat = a.u[5] != 0;
  switch ((int)a.u[4]) {
    case 0: cc_run<4, 3, 7, 1>(x, codes, dec, n, sat); break;
    case 1: cc_run<4, 3, 8, 2>(x, codes, dec, n, sat); break;
    case 2: cc_run<5, 2, 15, 0>(x, codes, dec, n, sat); break;
    case 3: cc_run<5, 2, 16, 2>(x, codes, dec, n, sat); break;
    case 4: cc_run<2, 1, 1, 3>(x, codes, dec, n, sat); break;
    case 5: cc_run<2, 3, 1, 3>(x, codes, dec, n, sat); break;
    default: cc_run<3, 2, 3, 3>(x, codes, dec, n, sat); break;
  }
}
