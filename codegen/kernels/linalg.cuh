/* codegen/kernels/linalg.cuh: convolution helpers (codegen/emit_linalg.c). GEMMs themselves
 * are cuBLASLt launches; these kernels prepare their operands (im2col) or compute the shapes a
 * GEMM does badly (depthwise / few-channel convolutions, ConvTranspose). Storage type T
 * (float, __half, __nv_bfloat16), fp32 accumulation. 1-D convolutions come as 2-D with H = 1.
 * Geometry is a constexpr drt_conv_geom built by the wrapper. */

struct drt_conv_geom {
  long long N, C, H, W; /* input */
  long long M, OH, OW;  /* output channels and spatial size */
  long long KH, KW, SH, SW, DH, DW, PH, PW; /* kernel, stride, dilation, leading pads */
  long long G;          /* groups */
};

/* Direct convolution: one thread per output element (n, m, oh, ow), bias included. */
template <typename T, typename I>
__device__ __forceinline__ void drt_conv_direct(T *__restrict__ y, const T *__restrict__ x, const T *__restrict__ w,
                                                const T *__restrict__ bias, I total, const drt_conv_geom &g) {
  const I Cg = (I)(g.C / g.G), Mg = (I)(g.M / g.G);
  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < total; i += (I)gridDim.x * (I)blockDim.x) {
    I ow = i % (I)g.OW, t = i / (I)g.OW;
    I oh = t % (I)g.OH;
    t /= (I)g.OH;
    I m = t % (I)g.M, n = t / (I)g.M;
    I gi = m / Mg;
    float acc = bias ? drt_ld<T>(bias + m) : 0.0f;
    for (I c = 0; c < Cg; c++) {
      const T *plane = x + ((n * (I)g.C + gi * Cg + c) * (I)g.H) * (I)g.W;
      const T *wk = w + (m * Cg + c) * (I)(g.KH * g.KW);
#pragma unroll 4
      for (I kh = 0; kh < (I)g.KH; kh++) {
        I ih = oh * (I)g.SH - (I)g.PH + kh * (I)g.DH;
        if (ih < 0 || ih >= (I)g.H) continue;
#pragma unroll 4
        for (I kw = 0; kw < (I)g.KW; kw++) {
          I iw = ow * (I)g.SW - (I)g.PW + kw * (I)g.DW;
          if (iw < 0 || iw >= (I)g.W) continue;
          acc += drt_ld<T>(plane + ih * (I)g.W + iw) * drt_ld<T>(wk + kh * (I)g.KW + kw);
        }
      }
    }
    drt_st<T>(y + i, acc);
  }
}

/* im2col of images [n0, n0 + nb) and output positions [p0, p0 + pt): col holds, per image,
 * C*KH*KW rows of `ld` columns (row r = (c*KH + kh)*KW + kw, column p - p0). total =
 * nb * C*KH*KW * pt. */
template <typename T, typename I>
__device__ __forceinline__ void drt_im2col(T *__restrict__ col, const T *__restrict__ x, I total, I n0, I p0, I pt,
                                           I ld, const drt_conv_geom &g) {
  const I R = (I)(g.C * g.KH * g.KW);
  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < total; i += (I)gridDim.x * (I)blockDim.x) {
    I pp = i % pt, t = i / pt;
    I r = t % R, ni = t / R;
    I p = p0 + pp;
    I kw = r % (I)g.KW, kh = (r / (I)g.KW) % (I)g.KH, c = r / (I)(g.KW * g.KH);
    I ow = p % (I)g.OW, oh = p / (I)g.OW;
    I ih = oh * (I)g.SH - (I)g.PH + kh * (I)g.DH;
    I iw = ow * (I)g.SW - (I)g.PW + kw * (I)g.DW;
    T v = drt_from_f32<T>(0.0f);
    if (ih >= 0 && ih < (I)g.H && iw >= 0 && iw < (I)g.W) v = x[(((n0 + ni) * (I)g.C + c) * (I)g.H + ih) * (I)g.W + iw];
    col[(ni * R + r) * ld + pp] = v;
  }
}

/* ConvTranspose by gathering: y[n, m, oh, ow] = bias[m] + sum over the group's input channels
 * c and taps (kh, kw) with oh = ih*SH - PH + kh*DH (ow likewise) of x[n, c, ih, iw] *
 * w[c, m % Mg, kh, kw]. Here H, W are the input size and OH, OW the output size. */
template <typename T, typename I>
__device__ __forceinline__ void drt_conv_transpose_direct(T *__restrict__ y, const T *__restrict__ x,
                                                          const T *__restrict__ w, const T *__restrict__ bias,
                                                          I total, const drt_conv_geom &g) {
  const I Cg = (I)(g.C / g.G), Mg = (I)(g.M / g.G);
  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < total; i += (I)gridDim.x * (I)blockDim.x) {
    I ow = i % (I)g.OW, t = i / (I)g.OW;
    I oh = t % (I)g.OH;
    t /= (I)g.OH;
    I m = t % (I)g.M, n = t / (I)g.M;
    I gi = m / Mg, mg = m % Mg;
    float acc = bias ? drt_ld<T>(bias + m) : 0.0f;
    for (I kh = 0; kh < (I)g.KH; kh++) {
      I nh = oh + (I)g.PH - kh * (I)g.DH;
      if (nh < 0 || nh % (I)g.SH != 0) continue;
      I ih = nh / (I)g.SH;
      if (ih >= (I)g.H) continue;
      for (I kw = 0; kw < (I)g.KW; kw++) {
        I nw = ow + (I)g.PW - kw * (I)g.DW;
        if (nw < 0 || nw % (I)g.SW != 0) continue;
        I iw = nw / (I)g.SW;
        if (iw >= (I)g.W) continue;
        for (I c = 0; c < Cg; c++) {
          I ci = gi * Cg + c;
          acc += drt_ld<T>(x + ((n * (I)g.C + ci) * (I)g.H + ih) * (I)g.W + iw) *
                 drt_ld<T>(w + ((ci * Mg + mg) * (I)g.KH + kh) * (I)g.KW + kw);
        }
      }
    }
    drt_st<T>(y + i, acc);
  }
}
