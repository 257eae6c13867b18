/* codegen/kernels/linalg.cuh: convolution and pooling helpers (codegen/emit_linalg.c). GEMMs
 * themselves are cuBLASLt launches; these kernels prepare their operands (im2col) or compute the
 * shapes a GEMM does badly (depthwise / few-channel convolutions, ConvTranspose, pools).
 * Storage type T (float, __half, __nv_bfloat16), fp32 accumulation. Spatial dims are 3 (D, H,
 * W); 1-D and 2-D ops come with leading dims of size 1, which fold away since the geometry is
 * a constexpr drt_conv_geom built by the wrapper. */

struct drt_conv_geom {
  long long N, C, H, W; /* input */
  long long M, OH, OW;  /* output channels and spatial size */
  long long KH, KW, SH, SW, DH, DW, PH, PW; /* kernel, stride, dilation, leading pads */
  long long G;          /* groups */
  long long D, OD, KD, SD, DD, PD; /* depth: input, output, kernel, stride, dilation, leading pad */
};

/* Direct convolution: one thread per output element (n, m, od, oh, ow), bias included; y in TY
 * (float32 storage of an fp16/bf16 convolution's output, codegen/codegen.c). */
template <typename T, typename I, typename TY = T>
__device__ __forceinline__ void drt_conv_direct(TY *__restrict__ y, const T *__restrict__ x, const T *__restrict__ w,
                                                const T *__restrict__ bias, I total, const drt_conv_geom &g) {
  const I Cg = (I)(g.C / g.G), Mg = (I)(g.M / g.G);
  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < total; i += (I)gridDim.x * (I)blockDim.x) {
    I ow = i % (I)g.OW, t = i / (I)g.OW;
    I oh = t % (I)g.OH;
    t /= (I)g.OH;
    I od = t % (I)g.OD;
    t /= (I)g.OD;
    I m = t % (I)g.M, n = t / (I)g.M;
    I gi = m / Mg;
    float acc = bias ? drt_ld<T>(bias + m) : 0.0f;
    for (I c = 0; c < Cg; c++) {
      const T *vol = x + (n * (I)g.C + gi * Cg + c) * (I)(g.D * g.H * g.W);
      const T *wk = w + (m * Cg + c) * (I)(g.KD * g.KH * g.KW);
      for (I kd = 0; kd < (I)g.KD; kd++) {
        I id = od * (I)g.SD - (I)g.PD + kd * (I)g.DD;
        if (id < 0 || id >= (I)g.D) continue;
#pragma unroll 4
        for (I kh = 0; kh < (I)g.KH; kh++) {
          I ih = oh * (I)g.SH - (I)g.PH + kh * (I)g.DH;
          if (ih < 0 || ih >= (I)g.H) continue;
#pragma unroll 4
          for (I kw = 0; kw < (I)g.KW; kw++) {
            I iw = ow * (I)g.SW - (I)g.PW + kw * (I)g.DW;
            if (iw < 0 || iw >= (I)g.W) continue;
            acc += drt_ld<T>(vol + (id * (I)g.H + ih) * (I)g.W + iw) * drt_ld<T>(wk + (kd * (I)g.KH + kh) * (I)g.KW + kw);
          }
        }
      }
    }
    drt_st<TY>(y + i, acc);
  }
}

/* im2col of images [n0, n0 + nb) and output positions [p0, p0 + pt): col holds, per image,
 * C*KD*KH*KW rows of `ld` columns (row r = ((c*KD + kd)*KH + kh)*KW + kw, column p - p0, p the
 * flat output position (od, oh, ow)). total = nb * C*KD*KH*KW * pt. */
/* an element of x (TX) as a column element (T): a float32-storage activation (codegen/codegen.c)
   is rounded to the operand type here, for free */
template <typename T, typename TX> struct drt_col_elem {
  static __device__ __forceinline__ T get(const TX *p) { return drt_from_f32<T>(drt_ld<TX>(p)); }
};
template <typename T> struct drt_col_elem<T, T> {
  static __device__ __forceinline__ T get(const T *p) { return *p; }
};

template <typename T, typename I, typename TX = T>
__device__ __forceinline__ void drt_im2col(T *__restrict__ col, const TX *__restrict__ x, I total, I n0, I p0, I pt,
                                           I ld, const drt_conv_geom &g) {
  const I R = (I)(g.C * g.KD * g.KH * g.KW);
  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < total; i += (I)gridDim.x * (I)blockDim.x) {
    I pp = i % pt, t = i / pt;
    I r = t % R, ni = t / R;
    I p = p0 + pp;
    I kw = r % (I)g.KW, kh = (r / (I)g.KW) % (I)g.KH, kd = (r / (I)(g.KW * g.KH)) % (I)g.KD;
    I c = r / (I)(g.KW * g.KH * g.KD);
    I ow = p % (I)g.OW, oh = (p / (I)g.OW) % (I)g.OH, od = p / (I)(g.OW * g.OH);
    I id = od * (I)g.SD - (I)g.PD + kd * (I)g.DD;
    I ih = oh * (I)g.SH - (I)g.PH + kh * (I)g.DH;
    I iw = ow * (I)g.SW - (I)g.PW + kw * (I)g.DW;
    T v = drt_from_f32<T>(0.0f);
    if (id >= 0 && id < (I)g.D && ih >= 0 && ih < (I)g.H && iw >= 0 && iw < (I)g.W)
      v = drt_col_elem<T, TX>::get(x + ((((n0 + ni) * (I)g.C + c) * (I)g.D + id) * (I)g.H + ih) * (I)g.W + iw);
    col[(ni * R + r) * ld + pp] = v;
  }
}

/* ConvTranspose by gathering: y[n, m, od, oh, ow] = bias[m] + sum over the group's input
 * channels c and taps (kd, kh, kw) with oh = ih*SH - PH + kh*DH (od, ow likewise) of
 * x[n, c, id, ih, iw] * w[c, m % Mg, kd, kh, kw]. Here D, H, W are the input size and OD, OH, OW
 * the output size. */
template <typename T, typename I>
__device__ __forceinline__ void drt_conv_transpose_direct(T *__restrict__ y, const T *__restrict__ x,
                                                          const T *__restrict__ w, const T *__restrict__ bias,
                                                          I total, const drt_conv_geom &g) {
  const I Cg = (I)(g.C / g.G), Mg = (I)(g.M / g.G);
  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < total; i += (I)gridDim.x * (I)blockDim.x) {
    I ow = i % (I)g.OW, t = i / (I)g.OW;
    I oh = t % (I)g.OH;
    t /= (I)g.OH;
    I od = t % (I)g.OD;
    t /= (I)g.OD;
    I m = t % (I)g.M, n = t / (I)g.M;
    I gi = m / Mg, mg = m % Mg;
    float acc = bias ? drt_ld<T>(bias + m) : 0.0f;
    for (I kd = 0; kd < (I)g.KD; kd++) {
      I nd = od + (I)g.PD - kd * (I)g.DD;
      if (nd < 0 || nd % (I)g.SD != 0) continue;
      I id = nd / (I)g.SD;
      if (id >= (I)g.D) continue;
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
            acc += drt_ld<T>(x + (((n * (I)g.C + ci) * (I)g.D + id) * (I)g.H + ih) * (I)g.W + iw) *
                   drt_ld<T>(w + (((ci * Mg + mg) * (I)g.KD + kd) * (I)g.KH + kh) * (I)g.KW + kw);
          }
        }
      }
    }
    drt_st<T>(y + i, acc);
  }
}

/* MaxPool / AveragePool: one thread per output element. MaxPool starts at -FLT_MAX and takes
 * valid taps only (a NaN never wins, as on the CPU); AveragePool divides by the valid taps, or
 * with INCLUDE_PAD by the taps inside the padded extent. Geometry in a drt_conv_geom (C = M =
 * channels, G = 1) plus the trailing pads ED, EH, EW. */
template <typename T, typename I, bool MAX, bool INCLUDE_PAD>
__device__ __forceinline__ void drt_pool(T *__restrict__ y, const T *__restrict__ x, I total, const drt_conv_geom &g,
                                         long long ED, long long EH, long long EW) {
  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < total; i += (I)gridDim.x * (I)blockDim.x) {
    I ow = i % (I)g.OW, t = i / (I)g.OW;
    I oh = t % (I)g.OH;
    t /= (I)g.OH;
    I od = t % (I)g.OD, plane = t / (I)g.OD;
    const T *p = x + plane * (I)(g.D * g.H * g.W);
    float acc = MAX ? -3.402823466e38f : 0.0f;
    int valid = 0, padded = 0;
    for (I kd = 0; kd < (I)g.KD; kd++) {
      I pd = od * (I)g.SD + kd * (I)g.DD, id = pd - (I)g.PD;
      bool din = id >= 0 && id < (I)g.D, dpad = pd < (I)(g.D + g.PD + ED);
      for (I kh = 0; kh < (I)g.KH; kh++) {
        I ph = oh * (I)g.SH + kh * (I)g.DH, ih = ph - (I)g.PH;
        bool hin = din && ih >= 0 && ih < (I)g.H, hpad = dpad && ph < (I)(g.H + g.PH + EH);
        for (I kw = 0; kw < (I)g.KW; kw++) {
          I pw = ow * (I)g.SW + kw * (I)g.DW, iw = pw - (I)g.PW;
          if (hpad && pw < (I)(g.W + g.PW + EW)) padded++;
          if (!hin || iw < 0 || iw >= (I)g.W) continue;
          float v = drt_ld<T>(p + (id * (I)g.H + ih) * (I)g.W + iw);
          valid++;
          if (MAX) {
            if (v > acc) acc = v;
          } else {
            acc += v;
          }
        }
      }
    }
    if (!MAX) {
      int cnt = INCLUDE_PAD ? padded : valid;
      acc = cnt > 0 ? acc / (float)cnt : 0.0f;
    }
    drt_st<T>(y + i, acc);
  }
}
