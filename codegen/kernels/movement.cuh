/* codegen/kernels/movement.cuh: data movement (codegen/emit_movement.c instantiates these).
 *
 * Every kernel moves elements by size (T is an unsigned integer type of the element size, or
 * drt_b16 for 16-byte groups); only Resize in linear/cubic mode does arithmetic (fp32 registers,
 * storage type T through drt_ld/drt_st). Geometry is a constexpr drt_nd<R> built by the wrapper,
 * so after unrolling every division is by a compile-time constant. I is the index type (int
 * when every offset fits in 31 bits, else long long). */

struct __align__(16) drt_b16 {
  unsigned long long lo, hi;
};

/* Iteration space of a strided copy: dims d, source strides s and destination strides t (in
 * elements, source strides may be 0 (broadcast) or negative (reversed slices)). */
template <int R>
struct drt_nd {
  long long d[R];
  long long s[R];
  long long t[R];
};

/* Element i of the iteration space -> source / destination offsets. */
template <typename I, int R>
__device__ __forceinline__ void drt_nd_offsets(const drt_nd<R> &g, I i, I &so, I &dof) {
  so = 0;
  dof = 0;
#pragma unroll
  for (int k = R - 1; k >= 0; k--) {
    I c = i % (I)g.d[k];
    i /= (I)g.d[k];
    so += c * (I)g.s[k];
    dof += c * (I)g.t[k];
  }
}

/* dst[t . c] = src[s . c] for every coordinate c of the n-element space. */
template <typename T, typename I, int R>
__device__ __forceinline__ void drt_copy_nd(T *__restrict__ dst, const T *__restrict__ src, I n, const drt_nd<R> &g) {
  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < n; i += (I)gridDim.x * (I)blockDim.x) {
    I so, dof;
    drt_nd_offsets<I, R>(g, i, so, dof);
    dst[dof] = src[so];
  }
}

/* Tiled transpose: axes 0..R-3 of g are batch axes, axis R-2 ("a") has source stride 1 and
 * axis R-1 ("b") has destination stride 1. A 32x32 tile goes through shared memory so both
 * the reads (along a) and the writes (along b) are coalesced. Block (32, 8); blockIdx.x is the
 * tile, blockIdx.y strides over the batch. */
template <typename T, typename I, int R>
__device__ __forceinline__ void drt_transpose_tiled(T *__restrict__ dst, const T *__restrict__ src, const drt_nd<R> &g,
                                                    I batch) {
  __shared__ T tile[32][33];
  const I A = (I)g.d[R - 2], B = (I)g.d[R - 1];
  const I sb = (I)g.s[R - 1], ta = (I)g.t[R - 2];
  const I tiles_a = (A + 31) / 32;
  const I a0 = ((I)blockIdx.x % tiles_a) * 32, b0 = ((I)blockIdx.x / tiles_a) * 32;
  const int tx = threadIdx.x, ty = threadIdx.y;
  for (I bi = blockIdx.y; bi < batch; bi += gridDim.y) {
    I so = 0, dof = 0, rem = bi;
#pragma unroll
    for (int k = R - 3; k >= 0; k--) {
      I c = rem % (I)g.d[k];
      rem /= (I)g.d[k];
      so += c * (I)g.s[k];
      dof += c * (I)g.t[k];
    }
#pragma unroll
    for (int j = 0; j < 32; j += 8) {
      I a = a0 + tx, b = b0 + ty + j;
      if (a < A && b < B) tile[ty + j][tx] = src[so + a + b * sb];
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < 32; j += 8) {
      I b = b0 + tx, a = a0 + ty + j;
      if (a < A && b < B) dst[dof + b + a * ta] = tile[tx][ty + j];
    }
    __syncthreads();
  }
}

/* Gather along one axis: data viewed as [outer, nax, inner], indices [m] (int or long long,
 * negative counts from the end, out-of-range clamped), output [outer, m, inner]. inner is in
 * units of T (the wrapper widens T when the row allows it). */
template <typename T, typename IDX, typename I>
__device__ __forceinline__ void drt_gather_axis(T *__restrict__ dst, const T *__restrict__ src,
                                                const IDX *__restrict__ idx, I n, I m, I nax, I inner) {
  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < n; i += (I)gridDim.x * (I)blockDim.x) {
    I e = i % inner, t = i / inner;
    I k = t % m, o = t / m;
    long long v = (long long)idx[k];
    if (v < 0) v += (long long)nax;
    if (v < 0) v = 0;
    if (v >= (long long)nax) v = (long long)nax - 1;
    dst[i] = src[(o * nax + (I)v) * inner + e];
  }
}

/* Pad: dims of the output d, input dims in (d), leading pads in s, input strides in t (the
 * drt_nd fields are reused: d = output dims, s = pad begin, t = input strides) plus input dims
 * `in`. MODE 0 constant, 1 reflect, 2 edge, 3 wrap. */
template <int R>
struct drt_pad_geom {
  long long out[R];
  long long in[R];
  long long begin[R];
  long long stride[R];
};

template <int MODE>
__device__ __forceinline__ long long drt_pad_map(long long o, long long begin, long long in) {
  long long i = o - begin;
  if (i >= 0 && i < in) return i;
  if (MODE == 0) return -1;
  if (MODE == 2) return i < 0 ? 0 : in - 1;
  if (MODE == 3) {
    long long m = i % in;
    return m < 0 ? m + in : m;
  }
  if (in == 1) return 0;
  long long period = 2 * (in - 1), m = i % period;
  if (m < 0) m += period;
  return m < in ? m : period - m;
}

template <typename T, typename I, int R, int MODE>
__device__ __forceinline__ void drt_pad(T *__restrict__ dst, const T *__restrict__ src, I n, const drt_pad_geom<R> &g,
                                        const T *value_ptr, T value) {
  T fill = value_ptr ? *value_ptr : value;
  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < n; i += (I)gridDim.x * (I)blockDim.x) {
    I rem = i;
    long long so = 0;
    bool out_of = false;
#pragma unroll
    for (int k = R - 1; k >= 0; k--) {
      long long c = (long long)(rem % (I)g.out[k]);
      rem /= (I)g.out[k];
      long long v = drt_pad_map<MODE>(c, g.begin[k], g.in[k]);
      if (v < 0) out_of = true;
      so += v * g.stride[k];
    }
    dst[i] = out_of ? fill : src[so];
  }
}

/* ---- Resize (runtime/cpu/resize.c, onnx/reference/ops/op_resize.py) ----------------------
 * Per-axis tables are computed on the fly in double, exactly as the CPU kernel builds them.
 * Products are kept out of fused multiply-adds so the coordinates round as on the host. */
#ifdef DRT_EMU
#define DRT_DMUL(a, b) ((a) * (b))
#define DRT_DADD(a, b) ((a) + (b))
#else
#define DRT_DMUL(a, b) __dmul_rn((a), (b))
#define DRT_DADD(a, b) __dadd_rn((a), (b))
#endif

struct drt_rz_axis {
  long long in_w, out_w;
  double scale;
  float roi_lo, roi_hi;
  int identity; /* 1: output position y reads input position y */
  int active;   /* interpolated (linear/cubic) axis with taps */
  int taps;     /* antialiased linear/cubic: taps of this axis (<= NT); 0 otherwise */
};

/* Resize modes: MODE 0 nearest, 1 linear, 2 cubic. COORD as rz_coord in resize.c: 0
 * half_pixel, 1 half_pixel_symmetric, 2 pytorch_half_pixel, 3 align_corners, 4 asymmetric,
 * 5 tf_crop_and_resize. NEAREST: 0 round_prefer_floor, 1 round_prefer_ceil, 2 floor, 3 ceil,
 * 4 simple (Upsample / Resize-10). */
template <int COORD>
__device__ __forceinline__ double drt_rz_x_ori(const drt_rz_axis &ax, double y) {
  double scale = ax.scale, ow = DRT_DMUL(scale, (double)ax.in_w), iw = (double)ax.in_w;
  if (COORD == 3) return ow == 1 ? 0.0 : DRT_DMUL(y, iw - 1) / (ow - 1);
  if (COORD == 4) return y / scale;
  if (COORD == 5) {
    float span = ax.roi_hi - ax.roi_lo;
    double x = ow == 1 ? (double)(span * (float)(ax.in_w - 1) / 2.0f)
                       : DRT_DMUL(DRT_DMUL(y, (double)span), iw - 1) / (ow - 1);
    return DRT_DADD(x, (double)(ax.roi_lo * (float)(ax.in_w - 1)));
  }
  if (COORD == 2) return ow == 1 ? -0.5 : (y + 0.5) / scale - 0.5;
  if (COORD == 0) return (y + 0.5) / scale - 0.5;
  double adjustment = (double)ax.out_w / ow, center = iw / 2, offset = DRT_DMUL(center, 1 - adjustment);
  return offset + (y + 0.5) / scale - 0.5;
}

/* Taps of output position y on one axis: idx[0..NT) (clamped), w[0..NT); returns the fill
 * flag (0 none, 1 extrapolation, 2 zero). Nearest: NT 1, w unused. With ax.taps > 0 (antialias)
 * the axis has ax.taps <= NT taps of the scaled, normalized kernel; unused taps get weight 0. */
__device__ __forceinline__ double drt_rz_cubic(double x, double a) {
  x = fabs(x);
  double x2 = DRT_DMUL(x, x), x3 = DRT_DMUL(x, x2);
  if (x <= 1) return DRT_DADD(DRT_DMUL(a + 2, x3), -DRT_DMUL(a + 3, x2)) + 1;
  if (x < 2) return DRT_DADD(DRT_DADD(DRT_DMUL(a, x3), -DRT_DMUL(5 * a, x2)), DRT_DMUL(8 * a, x)) - 4 * a;
  return 0.0;
}

template <int MODE, int COORD, int NEAREST, int NT>
__device__ __forceinline__ int drt_rz_taps(const drt_rz_axis &ax, long long y, double a, bool exclude, long long *idx,
                                           float *w) {
  const long long in_w = ax.in_w;
  if (ax.identity) {
    idx[0] = y;
    w[0] = 1.0f;
#pragma unroll
    for (int k = 1; k < NT; k++) {
      idx[k] = y;
      w[k] = 0.0f;
    }
    return 0;
  }
  constexpr int NC = MODE == 0 ? 2 : NT; /* coefficient slots */
  const bool aa = MODE != 0 && ax.taps > 0;
  const int n = aa ? ax.taps : (MODE == 2 ? 4 : 2);
  int fill = 0;
  double x = drt_rz_x_ori<COORD>(ax, (double)y);
  if (COORD == 5 && !(x >= 0 && x <= (double)(in_w - 1))) fill = 1;
  double lim = (double)(in_w + n + 2);
  if (x != x) x = 0;
  x = x < -lim ? -lim : (x > lim ? lim : x);
  if (MODE == 0 && NEAREST == 4) {
    double t = ax.scale < 1.0 ? ceil(x) : trunc(x);
    long long i = (long long)t;
    idx[0] = i < 0 ? 0 : (i >= in_w ? in_w - 1 : i);
    return fill;
  }
  double xf = floor(x);
  double ratio = x == xf ? 1.0 : x - xf;
  double c[NC > 4 ? NC : 4];
  if (MODE == 0) {
    bool second;
    if (ratio == 1.0) second = true;
    else if (NEAREST == 0) second = ratio > 0.5;
    else if (NEAREST == 1) second = ratio >= 0.5;
    else second = NEAREST == 3;
    c[0] = second ? 0.0 : 1.0;
    c[1] = second ? 1.0 : 0.0;
  } else if (aa) {
    double s = ax.scale < 1.0 ? ax.scale : 1.0, sum = 0;
    long long st = 1 - n / 2;
    for (int k = 0; k < n; k++) {
      double arg = DRT_DMUL((double)(st + k) - ratio, s), v;
      if (MODE == 1) {
        v = 1 - fabs(arg);
        v = v < 0 ? 0 : (v > 1 ? 1 : v);
      } else {
        v = drt_rz_cubic(arg, a);
      }
      c[k] = v;
      sum += v;
    }
    for (int k = 0; k < n; k++) c[k] /= sum;
  } else if (MODE == 1) {
    c[0] = 1 - ratio;
    c[1] = ratio;
  } else {
    double r1 = ratio + 1, q = 1 - ratio, q1 = q + 1;
    c[0] = DRT_DADD(DRT_DMUL(DRT_DADD(DRT_DMUL(DRT_DMUL(a, r1) - 5 * a, r1), 8 * a), r1), -4 * a);
    c[1] = DRT_DADD(DRT_DMUL(DRT_DMUL(DRT_DMUL(a + 2, ratio) - (a + 3), ratio), ratio), 1.0);
    c[2] = DRT_DADD(DRT_DMUL(DRT_DMUL(DRT_DMUL(a + 2, q) - (a + 3), q), q), 1.0);
    c[3] = DRT_DADD(DRT_DMUL(DRT_DADD(DRT_DMUL(DRT_DMUL(a, q1) - 5 * a, q1), 8 * a), q1), -4 * a);
  }
  const int pad = (n + 1) / 2;
  double xp = x + pad, pf = floor(xp);
  long long start = (long long)pf + (xp == pf ? -(n / 2) : -(n / 2) + 1) - pad;
  if (exclude) {
    double sum = 0;
    for (int k = 0; k < n; k++) {
      long long i = start + k;
      if (i < 0 || i >= in_w) c[k] = 0;
      sum += c[k];
    }
    if (sum != 0)
      for (int k = 0; k < n; k++) c[k] /= sum;
  }
  bool any = false;
  for (int k = 0; k < n; k++) any |= c[k] != 0;
  if (!any && !fill) fill = 2;
  if (MODE == 0) {
    long long i = start + (c[1] != 0 ? 1 : 0);
    idx[0] = i < 0 ? 0 : (i >= in_w ? in_w - 1 : i);
  } else {
#pragma unroll
    for (int k = 0; k < NT; k++) {
      long long i = start + k;
      idx[k] = i < 0 ? 0 : (i >= in_w ? in_w - 1 : i);
      w[k] = k < n ? (float)c[k] : 0.0f;
    }
  }
  return fill;
}

template <int R>
struct drt_rz_geom {
  drt_rz_axis ax[R];
  long long in_stride[R];
  int order[R]; /* processing order (a fill of a later axis wins) */
  int norder;
  double cubic_a;
  int exclude;
  float extrapolation;
};

/* Nearest: any dtype by element size. */
template <typename T, typename I, int R, int COORD, int NEAREST>
__device__ __forceinline__ void drt_resize_nearest(T *__restrict__ dst, const T *__restrict__ src, I n,
                                                   const drt_rz_geom<R> &g, T extrap) {
  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < n; i += (I)gridDim.x * (I)blockDim.x) {
    I rem = i;
    long long so = 0;
    int flags[R];
#pragma unroll
    for (int k = R - 1; k >= 0; k--) {
      long long y = (long long)(rem % (I)g.ax[k].out_w);
      rem /= (I)g.ax[k].out_w;
      long long idx[1];
      float w[1];
      flags[k] = drt_rz_taps<0, COORD, NEAREST, 1>(g.ax[k], y, g.cubic_a, g.exclude != 0, idx, w);
      so += idx[0] * g.in_stride[k];
    }
    int f = 0;
    for (int o = 0; o < g.norder; o++)
      if (flags[g.order[o]]) f = flags[g.order[o]];
    dst[i] = f == 0 ? src[so] : (f == 1 ? extrap : T());
  }
}

/* Nearest upsampling by integer factors (drt_up_geom::f[k] = out / in, 1 on untouched axes),
 * the modes where the exact Resize map reduces to input index = output index / f (the code
 * generator checks which: e.g. half_pixel with round_prefer_floor, asymmetric with floor; the
 * usual 2x upsampling of UNets and VAE decoders). Each thread writes V consecutive outputs of
 * the last axis (V divides its size; V elements of T make at most 16 bytes, one store), so the
 * kernel runs at write bandwidth instead of per-element double-precision coordinate math. */
template <int R> struct drt_up_geom {
  long long out[R], f[R], in_stride[R];
};

template <typename T, typename I, int R, int V>
__device__ __forceinline__ void drt_upsample_nearest(T *__restrict__ dst, const T *__restrict__ src, I groups,
                                                     const drt_up_geom<R> &g) {
  for (I q = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; q < groups; q += (I)gridDim.x * (I)blockDim.x) {
    I rem = q * (I)V, so = 0, last = 0;
#pragma unroll
    for (int k = R - 1; k >= 0; k--) {
      const I y = rem % (I)g.out[k];
      rem /= (I)g.out[k];
      if (k == R - 1) last = y;
      else so += y / (I)g.f[k] * (I)g.in_stride[k];
    }
    T v[V];
#pragma unroll
    for (int e = 0; e < V; e++) v[e] = src[so + (last + e) / (I)g.f[R - 1]];
    if constexpr (V * sizeof(T) == 16) {
      drt_b16 w;
      memcpy(&w, v, 16);
      *(drt_b16 *)(dst + q * (I)V) = w;
    } else if constexpr (V * sizeof(T) == 8) {
      unsigned long long w;
      memcpy(&w, v, 8);
      *(unsigned long long *)(dst + q * (I)V) = w;
    } else if constexpr (V * sizeof(T) == 4) {
      unsigned w;
      memcpy(&w, v, 4);
      *(unsigned *)(dst + q * (I)V) = w;
    } else {
#pragma unroll
      for (int e = 0; e < V; e++) dst[q * (I)V + e] = v[e];
    }
  }
}

/* Linear / cubic: float storage types, fp32 math; the taps of every active axis are combined
 * (tensor product of up to NA active axes with NT taps each: 2 linear, 4 cubic, more when
 * antialiased downscaling widens the kernel). */
template <typename T, typename I, int R, int MODE, int COORD, int NA, int NT>
__device__ __forceinline__ void drt_resize_interp(T *__restrict__ dst, const T *__restrict__ src, I n,
                                                  const drt_rz_geom<R> &g) {
  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < n; i += (I)gridDim.x * (I)blockDim.x) {
    I rem = i;
    long long base = 0;
    int flags[R];
    long long toff[NA > 0 ? NA : 1][NT];
    float tw[NA > 0 ? NA : 1][NT];
    int na = 0;
#pragma unroll
    for (int k = R - 1; k >= 0; k--) {
      long long y = (long long)(rem % (I)g.ax[k].out_w);
      rem /= (I)g.ax[k].out_w;
      long long idx[NT];
      float w[NT];
      flags[k] = drt_rz_taps<MODE, COORD, 0, NT>(g.ax[k], y, g.cubic_a, g.exclude != 0, idx, w);
      if (g.ax[k].active && na < NA) {
#pragma unroll
        for (int t = 0; t < NT; t++) {
          toff[na][t] = idx[t] * g.in_stride[k];
          tw[na][t] = w[t];
        }
        na++;
      } else {
        base += idx[0] * g.in_stride[k];
      }
    }
    int f = 0;
    for (int o = 0; o < g.norder; o++)
      if (flags[g.order[o]]) f = flags[g.order[o]];
    float acc = 0.0f;
    if (f == 0) {
      int combos = 1;
      for (int a = 0; a < na; a++) combos *= NT;
      for (int cmb = 0; cmb < combos; cmb++) {
        int r = cmb;
        long long off = base;
        float wt = 1.0f;
        for (int a = 0; a < na; a++) {
          int t = r % NT;
          r /= NT;
          off += toff[a][t];
          wt *= tw[a][t];
        }
        if (wt != 0.0f) acc += wt * drt_ld<T>(src + off);
      }
    } else {
      acc = f == 1 ? g.extrapolation : 0.0f;
    }
    drt_st<T>(dst + i, acc);
  }
}

/* ---- Trilu, GatherElements, ScatterND --------------------------------------------------------- */
/* Trilu over [batch, rows, cols]: keeps column j of row i when UPPER ? j >= i + k : j <= i + k,
 * zero elsewhere (k is clamped by the wrapper). */
template <typename T, typename I, bool UPPER>
__device__ __forceinline__ void drt_trilu(T *__restrict__ dst, const T *__restrict__ src, I n, I rows, I cols,
                                          long long k) {
  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < n; i += (I)gridDim.x * (I)blockDim.x) {
    long long c = (long long)(i % cols), r = (long long)((i / cols) % rows);
    bool keep = UPPER ? c >= r + k : c <= r + k;
    dst[i] = keep ? src[i] : T();
  }
}

/* GatherElements: out[c] = data[c with coordinate `axis` replaced by idx[c]] (negative counts
 * from the end, out-of-range clamped). g.d = output dims, g.s = data strides, g.t unused. */
template <typename T, typename IDX, typename I, int R>
__device__ __forceinline__ void drt_gather_elements(T *__restrict__ dst, const T *__restrict__ src,
                                                    const IDX *__restrict__ idx, I n, const drt_nd<R> &g, int axis,
                                                    long long bound) {
  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < n; i += (I)gridDim.x * (I)blockDim.x) {
    long long v = (long long)idx[i];
    if (v < 0) v += bound;
    v = v < 0 ? 0 : (v >= bound ? bound - 1 : v);
    I rem = i;
    long long so = 0;
#pragma unroll
    for (int k = R - 1; k >= 0; k--) {
      long long c = (long long)(rem % (I)g.d[k]);
      rem /= (I)g.d[k];
      so += (k == axis ? v : c) * g.s[k];
    }
    dst[i] = src[so];
  }
}

/* ScatterND without reduction: for tuple t of K indices, dst[offset(t) + e] = upd[t * slice + e]
 * (dst already holds data). dims[0..K) are the indexed data dims, strides their element strides. */
template <typename T, typename IDX, typename I, int K>
__device__ __forceinline__ void drt_scatter_nd(T *__restrict__ dst, const T *__restrict__ upd,
                                               const IDX *__restrict__ idx, I n, I slice, const drt_nd<K> &g) {
  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < n; i += (I)gridDim.x * (I)blockDim.x) {
    I t = i / slice, e = i % slice;
    long long off = 0;
#pragma unroll
    for (int k = 0; k < K; k++) {
      long long v = (long long)idx[(long long)t * K + k];
      if (v < 0) v += g.d[k];
      v = v < 0 ? 0 : (v >= g.d[k] ? g.d[k] - 1 : v);
      off += v * g.s[k];
    }
    dst[off + e] = upd[i];
  }
}

/* ---- GridSample (after onnx/reference/ops/op_grid_sample.py, as runtime/cpu/grid_sample.c) ------
 * One thread per output element (n, c, o1..oR). MODE 0 nearest, 1 linear, 2 cubic (Keys -0.75);
 * PAD 0 zeros, 1 border, 2 reflection. dims: input spatial sizes; osp: output positions per
 * plane. Coordinates and weights in float. */
__device__ __forceinline__ float drt_gs_reflect(float x, float lo, float hi) {
  float rng = hi - lo;
  if (x < lo) {
    float dx = lo - x;
    long long n = (long long)(dx / rng);
    float r = dx - (float)n * rng;
    return (n % 2 == 0) ? lo + r : hi - r;
  }
  if (x > hi) {
    float dx = x - hi;
    long long n = (long long)(dx / rng);
    float r = dx - (float)n * rng;
    return (n % 2 == 0) ? hi - r : lo + r;
  }
  return x;
}

template <int PAD>
__device__ __forceinline__ long long drt_gs_index(long long i, long long d, float lo, float hi) {
  if (PAD == 0) return (i >= 0 && i < d) ? i : -1;
  if (PAD == 1) return i < 0 ? 0 : (i >= d ? d - 1 : i);
  long long r = (long long)drt_gs_reflect((float)i, lo, hi);
  return r < 0 ? 0 : (r >= d ? d - 1 : r);
}

template <typename TY, typename TX, typename TG, typename I, int R, int MODE, int PAD, bool ALIGN>
__device__ __forceinline__ void drt_grid_sample(TY *__restrict__ y, const TX *__restrict__ x, const TG *__restrict__ grid,
                                                I n, I C, I osp, const drt_nd<R> &dims) {
  constexpr int TAPS = MODE == 0 ? 1 : (MODE == 1 ? 2 : 4);
  for (I t = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; t < n; t += (I)gridDim.x * (I)blockDim.x) {
    I o = t % osp, nc = t / osp, b = nc / C;
    long long idx[R][4];
    float w[R][4];
    long long isp = 1;
#pragma unroll
    for (int i = 0; i < R; i++) isp *= dims.d[i];
#pragma unroll
    for (int i = 0; i < R; i++) {
      float d = (float)dims.d[i];
      float g = drt_ld(grid + ((long long)b * osp + o) * R + (R - 1 - i));
      float v = ALIGN ? (g + 1.0f) * 0.5f * (d - 1.0f) : ((g + 1.0f) * d - 1.0f) * 0.5f;
      float lo = ALIGN ? 0.0f : -0.5f, hi = ALIGN ? d - 1.0f : d - 0.5f;
      if (MODE == 0) v = rintf(v);
      if (v < lo || v > hi) {
        if (PAD == 1) v = fminf(fmaxf(v, 0.0f), d - 1.0f);
        else if (PAD == 2) v = drt_gs_reflect(v, lo, hi);
      }
      if (MODE == 0) {
        idx[i][0] = drt_gs_index<PAD>((long long)v, dims.d[i], lo, hi);
        w[i][0] = 1.0f;
        continue;
      }
      float f = floorf(v), u = v - f;
      long long i0 = (long long)f;
      if (MODE == 1) {
        w[i][0] = 1.0f - u;
        w[i][1] = u;
        idx[i][0] = drt_gs_index<PAD>(i0, dims.d[i], lo, hi);
        idx[i][1] = drt_gs_index<PAD>(i0 + 1, dims.d[i], lo, hi);
      } else {
        const float a = -0.75f, p = u + 1.0f, q = 1.0f - u, r = 2.0f - u;
        w[i][0] = ((a * p - 5.0f * a) * p + 8.0f * a) * p - 4.0f * a;
        w[i][1] = ((a + 2.0f) * u - (a + 3.0f)) * u * u + 1.0f;
        w[i][2] = ((a + 2.0f) * q - (a + 3.0f)) * q * q + 1.0f;
        w[i][3] = ((a * r - 5.0f * a) * r + 8.0f * a) * r - 4.0f * a;
#pragma unroll
        for (int k = 0; k < 4; k++) idx[i][k] = drt_gs_index<PAD>(i0 - 1 + k, dims.d[i], lo, hi);
      }
    }
    const TX *xp = x + (long long)nc * isp;
    float acc = 0.0f;
    int corners = 1;
#pragma unroll
    for (int i = 0; i < R; i++) corners *= TAPS;
    for (int k = 0; k < corners; k++) {
      int rem = k;
      long long off = 0, st = 1;
      float wt = 1.0f;
#pragma unroll
      for (int i = R - 1; i >= 0; i--) {
        int tp = rem % TAPS;
        rem /= TAPS;
        if (idx[i][tp] < 0) { /* zeros padding: this neighbour adds nothing (not even a NaN weight) */
          wt = 0.0f;
          break;
        }
        off += idx[i][tp] * st;
        wt *= w[i][tp];
        st *= dims.d[i];
      }
      if (wt != 0.0f) acc += wt * drt_ld(xp + off);
    }
    drt_st(y + t, acc);
  }
}

/* AffineGrid (after onnx/reference/ops/op_affine_grid.py): grid[n, (d,) h, w, i] = sum_k
 * theta[n, i, k] * base_k, base = (x_w, y_h, (z_d,) 1) evenly spaced in [-1, 1]. R = 2 or 3;
 * sz = (D,) H, W. */
template <typename TY, typename TT, typename I, int R, bool ALIGN>
__device__ __forceinline__ void drt_affine_grid(TY *__restrict__ y, const TT *__restrict__ th, I n,
                                                const drt_nd<R> &sz) {
  for (I t = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; t < n; t += (I)gridDim.x * (I)blockDim.x) {
    I i = t % R, rem = t / R;
    float base[R + 1];
#pragma unroll
    for (int k = R - 1; k >= 0; k--) { /* spatial dims innermost last: W, H, (D) -> base 0, 1, (2) */
      long long len = sz.d[k], pos = (long long)(rem % (I)len);
      rem /= (I)len;
      int b = R - 1 - k;
      base[b] = ALIGN ? (len > 1 ? -1.0f + 2.0f * (float)pos / (float)(len - 1) : -1.0f)
                      : -1.0f + (2.0f * (float)pos + 1.0f) / (float)len;
    }
    base[R] = 1.0f;
    const TT *row = th + ((long long)rem * R + i) * (R + 1);
    float acc = 0.0f;
#pragma unroll
    for (int k = 0; k <= R; k++) acc += drt_ld(row + k) * base[k];
    drt_st(y + t, acc);
  }
}
