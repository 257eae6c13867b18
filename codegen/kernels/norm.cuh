/* codegen/kernels/norm.cuh: normalizations (drt.Norm, LayerNormalization, RMSNormalization,
 * GroupNormalization, InstanceNormalization), Softmax/LogSoftmax, Reduce* and ArgMax/ArgMin.
 * Emitted by codegen/emit_norm.c; the CPU kernels in runtime/cpu/{fused_norm,norm,reduce}.c are
 * the reference semantics.
 *
 * Every template takes a configuration class C that the generated wrapper defines locally inside
 * the kernel (so each wrapper is self-contained and deduplicates by its text): types as typedefs,
 * integers as enumerators (local classes cannot hold static data members), and index maps as
 * static member functions with every shape folded in as a constant. Floating-point constants
 * (epsilon, ...) are passed by the wrapper as literal arguments.
 *
 * Statistics, sums and softmax accumulate in fp32 registers; row statistics are two-pass (mean,
 * then the sum of squared deviations), either over a row held in registers or, for long rows, by
 * re-reading it; very long rows with few statistic groups are split over several blocks and the
 * per-chunk (sum, M2) partials combined with Chan's formula. Vector accesses are 16 bytes
 * (VEC elements) when the emitter proved every access of the form aligned. */

/* ---- conversions and vector access --------------------------------------------------------------- */
__device__ __forceinline__ float drt_nrm_f(float v) { return v; }
__device__ __forceinline__ float drt_nrm_f(double v) { return (float)v; }
__device__ __forceinline__ float drt_nrm_f(__half v) { return __half2float(v); }
__device__ __forceinline__ float drt_nrm_f(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class T> __device__ __forceinline__ T drt_nrm_t(float v);
template <> __device__ __forceinline__ float drt_nrm_t<float>(float v) { return v; }
template <> __device__ __forceinline__ double drt_nrm_t<double>(float v) { return (double)v; }
template <> __device__ __forceinline__ __half drt_nrm_t<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 drt_nrm_t<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

template <class T, int V> struct alignas(sizeof(T) * V) drt_nrm_vec {
  T v[V];
};

/* out[0..V) = p[0..V) (p aligned to V elements) */
template <class T, int V> __device__ __forceinline__ void drt_nrm_load(const T *p, float *out) {
  drt_nrm_vec<T, V> w = *reinterpret_cast<const drt_nrm_vec<T, V> *>(p);
#pragma unroll
  for (int k = 0; k < V; k++) out[k] = drt_nrm_f(w.v[k]);
}
template <class T, int V> __device__ __forceinline__ void drt_nrm_store(T *p, const float *in) {
  drt_nrm_vec<T, V> w;
#pragma unroll
  for (int k = 0; k < V; k++) w.v[k] = drt_nrm_t<T>(in[k]);
  *reinterpret_cast<drt_nrm_vec<T, V> *>(p) = w;
}

/* comparison value: half/bf16 compare as float, other types as themselves */
template <class T> __device__ __forceinline__ T drt_nrm_c(T v) { return v; }
__device__ __forceinline__ float drt_nrm_c(__half v) { return __half2float(v); }
__device__ __forceinline__ float drt_nrm_c(__nv_bfloat16 v) { return __bfloat162float(v); }

__device__ __forceinline__ float drt_nrm_max2(float a, float b) { return (b > a || b != b) ? b : a; }
__device__ __forceinline__ float drt_nrm_min2(float a, float b) { return (b < a || b != b) ? b : a; }

/* ---- reductions over groups of TPR consecutive threads (TPR a power of two <= 32, or TPR == BLOCK)
 * Every thread of the block must call them (they synchronize when TPR > 32). All lanes of a group
 * get the same, bitwise identical result. */
enum { DRT_NRM_SUM = 0, DRT_NRM_MAX = 1, DRT_NRM_MIN = 2, DRT_NRM_PROD = 3 };

template <int OP> __device__ __forceinline__ float drt_nrm_comb(float a, float b) {
  if constexpr (OP == DRT_NRM_SUM) return a + b;
  else if constexpr (OP == DRT_NRM_MAX) return drt_nrm_max2(a, b);
  else if constexpr (OP == DRT_NRM_MIN) return drt_nrm_min2(a, b);
  else return a * b;
}

template <int OP, int TPR, int BLOCK> __device__ __forceinline__ float drt_nrm_all(float v) {
  if constexpr (TPR <= 32) {
#pragma unroll
    for (int o = TPR / 2; o > 0; o >>= 1) v = drt_nrm_comb<OP>(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
  } else {
    static_assert(TPR == BLOCK, "a row spans the whole block when TPR > 32");
    __shared__ float red[32];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = drt_nrm_comb<OP>(v, __shfl_xor_sync(0xffffffffu, v, o));
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    __syncthreads(); /* the previous call's readers are done with red */
    if (lane == 0) red[w] = v;
    __syncthreads();
    float t = red[lane < BLOCK / 32 ? lane : 0];
    if (lane >= BLOCK / 32) t = OP == DRT_NRM_SUM ? 0.0f : OP == DRT_NRM_PROD ? 1.0f : red[0];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) t = drt_nrm_comb<OP>(t, __shfl_xor_sync(0xffffffffu, t, o));
    return t;
  }
}

template <int TPR, int BLOCK> __device__ __forceinline__ float drt_nrm_sum(float v) {
  return drt_nrm_all<DRT_NRM_SUM, TPR, BLOCK>(v);
}

/* ---- drt.Norm and the ONNX normalizations ----------------------------------------------------------
 * Data x is viewed as GROUPS statistic groups of L = PER * PLANE contiguous elements (layer/rms:
 * PER = 1, one row; group: the PER = C/G channel planes of a group). Element j of group g lies in
 * plane r = g * PER + j / PLANE at position i = j % PLANE; parameter k (0 scale, 1 bias, 2
 * mod_scale, 3 mod_shift) of that element is p_k[C::off(k, r, i)] and its mode C::Mk is
 *   0 absent, 1 one value per plane (off(k, r, 0)), 2 contiguous over the plane and aligned to VEC
 *   (off(k, r, i + t) = off(k, r, i) + t), 3 anything else (off per element).
 * y = act(((x - mean) * inv * s + b) * (ONEPLUS ? 1 + m : m) + t)   (rms: mean = 0)
 * Config C: typedefs T (data), TP (parameters), TS (mean / inv-std outputs); enumerators BLOCK,
 * TPR (threads per group), VEC, ITEMS (vectors per thread, cached mode), L, PER, PLANE, GROUPS,
 * RMS, ACT (0 none, 1 silu, 2 gelu, 3 gelu_tanh), ONEPLUS, M0..M3, MEAN, INV (outputs present),
 * NCH (split mode: chunks per group). Kernel args: u[0] x, u[1] y, u[2..5] parameters, u[6] mean,
 * u[7] inv-std, u[8] partials (split mode). */
template <int ACT> __device__ __forceinline__ float drt_norm_act(float v) {
  if constexpr (ACT == 1) return v / (1.0f + expf(-v));
  else if constexpr (ACT == 2) return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
  else if constexpr (ACT == 3) return 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
  else return v;
}

template <class C, int K, int M, int V>
__device__ __forceinline__ void drt_norm_param(const typename C::TP *p, long long r, long long i, float *out,
                                               float dflt) {
  if constexpr (M == 0) {
#pragma unroll
    for (int t = 0; t < V; t++) out[t] = dflt;
  } else if constexpr (M == 1) {
    float s = drt_nrm_f(p[C::off(K, r, 0)]);
#pragma unroll
    for (int t = 0; t < V; t++) out[t] = s;
  } else if constexpr (M == 2) {
    drt_nrm_load<typename C::TP, V>(p + C::off(K, r, i), out);
  } else {
#pragma unroll
    for (int t = 0; t < V; t++) out[t] = drt_nrm_f(p[C::off(K, r, i + t)]);
  }
}

/* Normalizes, modulates, activates and stores V elements starting at element j of group g. */
template <class C, int V>
__device__ __forceinline__ void drt_norm_apply(const drt_kargs &a, long long g, long long j, float *v, float mean,
                                               float inv) {
  long long r = g * (long long)C::PER + j / (long long)C::PLANE, i = j % (long long)C::PLANE;
  float s[V], b[V], m[V], t[V];
  drt_norm_param<C, 0, C::M0, V>((const typename C::TP *)a.u[2], r, i, s, 1.0f);
  drt_norm_param<C, 1, C::M1, V>((const typename C::TP *)a.u[3], r, i, b, 0.0f);
  drt_norm_param<C, 2, C::M2, V>((const typename C::TP *)a.u[4], r, i, m, C::M2 == 0 ? 1.0f : 0.0f);
  drt_norm_param<C, 3, C::M3, V>((const typename C::TP *)a.u[5], r, i, t, 0.0f);
#pragma unroll
  for (int k = 0; k < V; k++) {
    float u = (v[k] - mean) * inv * s[k] + b[k];
    if constexpr (C::M2 != 0) u = u * (C::ONEPLUS ? 1.0f + m[k] : m[k]);
    u = u + t[k];
    v[k] = drt_norm_act<C::ACT>(u);
  }
  drt_nrm_store<typename C::TY, V>((typename C::TY *)a.u[1] + g * (long long)C::L + j, v);
}

template <class C>
__device__ __forceinline__ void drt_norm_stats_out(const drt_kargs &a, long long g, float mean, float inv) {
  if constexpr (C::MEAN != 0) ((typename C::TS *)a.u[6])[g] = drt_nrm_t<typename C::TS>(mean);
  if constexpr (C::INV != 0) ((typename C::TS *)a.u[7])[g] = drt_nrm_t<typename C::TS>(inv);
}

/* One group per TPR threads, the group held in registers (ITEMS * VEC floats per thread). */
template <class C> __device__ __forceinline__ void drt_norm_cached(const drt_kargs &a, float eps) {
  enum { V = C::VEC, RPB = C::BLOCK / C::TPR };
  long long g = (long long)blockIdx.x * RPB + threadIdx.x / C::TPR;
  int lane = threadIdx.x % C::TPR;
  bool valid = g < (long long)C::GROUPS;
  long long gg = valid ? g : (long long)C::GROUPS - 1;
  const typename C::T *x = (const typename C::T *)a.u[0] + gg * (long long)C::L;
  float v[C::ITEMS][V];
  float s = 0.0f;
#pragma unroll
  for (int it = 0; it < C::ITEMS; it++) {
    long long j = ((long long)it * C::TPR + lane) * V;
    if (j < (long long)C::L) {
      drt_nrm_load<typename C::T, V>(x + j, v[it]);
#pragma unroll
      for (int k = 0; k < V; k++) s += v[it][k];
    } else {
#pragma unroll
      for (int k = 0; k < V; k++) v[it][k] = 0.0f;
    }
  }
  float mean = 0.0f;
  if constexpr (!C::RMS) mean = drt_nrm_sum<C::TPR, C::BLOCK>(s) * (1.0f / (float)C::L);
  float q = 0.0f;
#pragma unroll
  for (int it = 0; it < C::ITEMS; it++) {
    long long j = ((long long)it * C::TPR + lane) * V;
    if (j < (long long)C::L) {
#pragma unroll
      for (int k = 0; k < V; k++) q += (v[it][k] - mean) * (v[it][k] - mean);
    }
  }
  float var = drt_nrm_sum<C::TPR, C::BLOCK>(q) * (1.0f / (float)C::L);
  float inv = 1.0f / sqrtf(var + eps);
  if (!valid) return;
  if (lane == 0) drt_norm_stats_out<C>(a, g, mean, inv);
#pragma unroll
  for (int it = 0; it < C::ITEMS; it++) {
    long long j = ((long long)it * C::TPR + lane) * V;
    if (j < (long long)C::L) drt_norm_apply<C, V>(a, g, j, v[it], mean, inv);
  }
}

/* One group per block (TPR == BLOCK), re-read from memory: sum, squared deviations, apply. */
template <class C> __device__ __forceinline__ void drt_norm_stream(const drt_kargs &a, float eps) {
  enum { V = C::VEC };
  long long g = blockIdx.x;
  const typename C::T *x = (const typename C::T *)a.u[0] + g * (long long)C::L;
  float mean = 0.0f;
  if constexpr (!C::RMS) {
    float s = 0.0f;
    for (long long j = (long long)threadIdx.x * V; j < (long long)C::L; j += (long long)C::BLOCK * V) {
      float v[V];
      drt_nrm_load<typename C::T, V>(x + j, v);
#pragma unroll
      for (int k = 0; k < V; k++) s += v[k];
    }
    mean = drt_nrm_sum<C::BLOCK, C::BLOCK>(s) * (1.0f / (float)C::L);
  }
  float q = 0.0f;
  for (long long j = (long long)threadIdx.x * V; j < (long long)C::L; j += (long long)C::BLOCK * V) {
    float v[V];
    drt_nrm_load<typename C::T, V>(x + j, v);
#pragma unroll
    for (int k = 0; k < V; k++) q += (v[k] - mean) * (v[k] - mean);
  }
  float var = drt_nrm_sum<C::BLOCK, C::BLOCK>(q) * (1.0f / (float)C::L);
  float inv = 1.0f / sqrtf(var + eps);
  if (threadIdx.x == 0) drt_norm_stats_out<C>(a, g, mean, inv);
  for (long long j = (long long)threadIdx.x * V; j < (long long)C::L; j += (long long)C::BLOCK * V) {
    float v[V];
    drt_nrm_load<typename C::T, V>(x + j, v);
    drt_norm_apply<C, V>(a, g, j, v, mean, inv);
  }
}

/* Split mode, kernel 1: grid (NCH, GROUPS); block c of group g reduces its chunk of
 * CH = BLOCK * ITEMS * VEC elements to (sum, M2 about the chunk mean) (rms: (sum of squares, 0))
 * into partials[g * NCH + c]. */
template <class C> __device__ __forceinline__ void drt_norm_split_stats(const drt_kargs &a) {
  enum { V = C::VEC };
  const long long CH = (long long)C::BLOCK * C::ITEMS * V;
  long long g = blockIdx.y, c = blockIdx.x, j0 = c * CH;
  long long n = (long long)C::L - j0 < CH ? (long long)C::L - j0 : CH;
  const typename C::T *x = (const typename C::T *)a.u[0] + g * (long long)C::L + j0;
  float v[C::ITEMS][V];
  float s = 0.0f;
#pragma unroll
  for (int it = 0; it < C::ITEMS; it++) {
    long long j = ((long long)it * C::BLOCK + threadIdx.x) * V;
    if (j < n) {
      drt_nrm_load<typename C::T, V>(x + j, v[it]);
#pragma unroll
      for (int k = 0; k < V; k++) s += C::RMS ? v[it][k] * v[it][k] : v[it][k];
    }
  }
  s = drt_nrm_sum<C::BLOCK, C::BLOCK>(s);
  float m2 = 0.0f;
  if constexpr (!C::RMS) {
    float cm = s / (float)n, q = 0.0f;
#pragma unroll
    for (int it = 0; it < C::ITEMS; it++) {
      long long j = ((long long)it * C::BLOCK + threadIdx.x) * V;
      if (j < n) {
#pragma unroll
        for (int k = 0; k < V; k++) q += (v[it][k] - cm) * (v[it][k] - cm);
      }
    }
    m2 = drt_nrm_sum<C::BLOCK, C::BLOCK>(q);
  }
  if (threadIdx.x == 0) {
    float *part = (float *)a.u[8] + 2 * (g * (long long)C::NCH + c);
    part[0] = s;
    part[1] = m2;
  }
}

/* Split mode, kernel 2: grid (NCH, GROUPS); every block combines its group's partials and
 * normalizes its chunk. */
template <class C> __device__ __forceinline__ void drt_norm_split_apply(const drt_kargs &a, float eps) {
  enum { V = C::VEC };
  const long long CH = (long long)C::BLOCK * C::ITEMS * V;
  long long g = blockIdx.y, c = blockIdx.x, j0 = c * CH;
  const float *part = (const float *)a.u[8] + 2 * g * (long long)C::NCH;
  float s = 0.0f;
  for (int k = threadIdx.x; k < C::NCH; k += C::BLOCK) s += part[2 * k];
  s = drt_nrm_sum<C::BLOCK, C::BLOCK>(s);
  float mean = 0.0f, var;
  if constexpr (C::RMS != 0) {
    var = s * (1.0f / (float)C::L);
  } else {
    mean = s * (1.0f / (float)C::L);
    float q = 0.0f;
    for (int k = threadIdx.x; k < C::NCH; k += C::BLOCK) {
      long long nk = (long long)C::L - (long long)k * CH < CH ? (long long)C::L - (long long)k * CH : CH;
      float d = part[2 * k] / (float)nk - mean;
      q += part[2 * k + 1] + (float)nk * d * d;
    }
    var = drt_nrm_sum<C::BLOCK, C::BLOCK>(q) * (1.0f / (float)C::L);
  }
  float inv = 1.0f / sqrtf(var + eps);
  if (c == 0 && threadIdx.x == 0) drt_norm_stats_out<C>(a, g, mean, inv);
  long long n = (long long)C::L - j0 < CH ? (long long)C::L - j0 : CH;
  const typename C::T *x = (const typename C::T *)a.u[0] + g * (long long)C::L;
#pragma unroll
  for (int it = 0; it < C::ITEMS; it++) {
    long long j = ((long long)it * C::BLOCK + threadIdx.x) * V;
    if (j < n) {
      float v[V];
      drt_nrm_load<typename C::T, V>(x + j0 + j, v);
      drt_norm_apply<C, V>(a, g, j0 + j, v, mean, inv);
    }
  }
}

/* ---- Softmax / LogSoftmax ----------------------------------------------------------------------------
 * Rows: ROWS rows of L contiguous elements, TPR threads per row; cached (ITEMS vectors of VEC per
 * thread) or streamed (online max/sum, then a write pass). Config: T, BLOCK, TPR, VEC, ITEMS, L,
 * ROWS, LOG. Args u[0] x, u[1] y. */
template <class C> __device__ __forceinline__ void drt_softmax_cached(const drt_kargs &a) {
  enum { V = C::VEC, RPB = C::BLOCK / C::TPR };
  long long row = (long long)blockIdx.x * RPB + threadIdx.x / C::TPR;
  int lane = threadIdx.x % C::TPR;
  bool valid = row < (long long)C::ROWS;
  long long rr = valid ? row : (long long)C::ROWS - 1;
  const typename C::T *x = (const typename C::T *)a.u[0] + rr * (long long)C::L;
  float v[C::ITEMS][V];
  float m = -DRT_INF_F32;
#pragma unroll
  for (int it = 0; it < C::ITEMS; it++) {
    long long j = ((long long)it * C::TPR + lane) * V;
    if (j < (long long)C::L) {
      drt_nrm_load<typename C::T, V>(x + j, v[it]);
#pragma unroll
      for (int k = 0; k < V; k++) m = drt_nrm_max2(m, v[it][k]);
    }
  }
  m = drt_nrm_all<DRT_NRM_MAX, C::TPR, C::BLOCK>(m);
  float s = 0.0f;
#pragma unroll
  for (int it = 0; it < C::ITEMS; it++) {
    long long j = ((long long)it * C::TPR + lane) * V;
    if (j < (long long)C::L) {
#pragma unroll
      for (int k = 0; k < V; k++) s += expf(v[it][k] - m);
    }
  }
  s = drt_nrm_sum<C::TPR, C::BLOCK>(s);
  if (!valid) return;
  float ls = logf(s), rs = 1.0f / s;
  typename C::T *y = (typename C::T *)a.u[1] + row * (long long)C::L;
#pragma unroll
  for (int it = 0; it < C::ITEMS; it++) {
    long long j = ((long long)it * C::TPR + lane) * V;
    if (j < (long long)C::L) {
      float o[V];
#pragma unroll
      for (int k = 0; k < V; k++) o[k] = C::LOG ? v[it][k] - m - ls : expf(v[it][k] - m) * rs;
      drt_nrm_store<typename C::T, V>(y + j, o);
    }
  }
}

/* online (max, sum of exp(x - max)) */
__device__ __forceinline__ void drt_nrm_lse_add(float &m, float &s, float x) {
  if (x > m) {
    s = (m == -DRT_INF_F32 ? 0.0f : s * expf(m - x)) + 1.0f;
    m = x;
  } else if (x != x) {
    m = x;
    s = x;
  } else if (m != -DRT_INF_F32) {
    s += expf(x - m);
  }
}

template <int TPR, int BLOCK> __device__ __forceinline__ void drt_nrm_lse_all(float &m, float &s) {
  float mm = drt_nrm_all<DRT_NRM_MAX, TPR, BLOCK>(m);
  float t = (m == -DRT_INF_F32 || mm == -DRT_INF_F32) ? 0.0f : s * expf(m - mm);
  if (m != m) t = m;
  s = drt_nrm_sum<TPR, BLOCK>(t);
  m = mm;
}

template <class C> __device__ __forceinline__ void drt_softmax_stream(const drt_kargs &a) {
  enum { V = C::VEC };
  long long row = blockIdx.x;
  const typename C::T *x = (const typename C::T *)a.u[0] + row * (long long)C::L;
  float m = -DRT_INF_F32, s = 0.0f;
  for (long long j = (long long)threadIdx.x * V; j < (long long)C::L; j += (long long)C::BLOCK * V) {
    float v[V];
    drt_nrm_load<typename C::T, V>(x + j, v);
#pragma unroll
    for (int k = 0; k < V; k++) drt_nrm_lse_add(m, s, v[k]);
  }
  drt_nrm_lse_all<C::BLOCK, C::BLOCK>(m, s);
  float ls = logf(s), rs = 1.0f / s;
  typename C::T *y = (typename C::T *)a.u[1] + row * (long long)C::L;
  for (long long j = (long long)threadIdx.x * V; j < (long long)C::L; j += (long long)C::BLOCK * V) {
    float v[V];
    drt_nrm_load<typename C::T, V>(x + j, v);
#pragma unroll
    for (int k = 0; k < V; k++) v[k] = C::LOG ? v[k] - m - ls : expf(v[k] - m) * rs;
    drt_nrm_store<typename C::T, V>(y + j, v);
  }
}

/* Softmax along a strided axis: one thread per (outer, inner) column of LEN elements INNER apart.
 * Config: T, BLOCK, OUTER, LEN, INNER, LOG. */
template <class C> __device__ __forceinline__ void drt_softmax_cols(const drt_kargs &a) {
  long long t = (long long)blockIdx.x * C::BLOCK + threadIdx.x;
  if (t >= (long long)C::OUTER * C::INNER) return;
  long long o = t / (long long)C::INNER, k = t % (long long)C::INNER;
  long long base = o * (long long)C::LEN * C::INNER + k;
  const typename C::T *x = (const typename C::T *)a.u[0] + base;
  typename C::T *y = (typename C::T *)a.u[1] + base;
  float m = -DRT_INF_F32, s = 0.0f;
  for (long long i = 0; i < (long long)C::LEN; i++) drt_nrm_lse_add(m, s, drt_nrm_f(x[i * C::INNER]));
  float ls = logf(s), rs = 1.0f / s;
  for (long long i = 0; i < (long long)C::LEN; i++) {
    float v = drt_nrm_f(x[i * C::INNER]);
    y[i * C::INNER] = drt_nrm_t<typename C::T>(C::LOG ? v - m - ls : expf(v - m) * rs);
  }
}

/* ---- Reduce* -----------------------------------------------------------------------------------------
 * The emitter drops size-1 dims and merges neighbours (as runtime/cpu/reduce.c): the input is
 * NK kept positions (input offset C::ko(o)) x NR reduced positions (C::ro(r)) x an innermost
 * block of INNER contiguous elements, reduced (INNER_RED: each output reduces NR runs of INNER)
 * or kept (output (o, e) reduces x[ko(o) + ro(r) + e] over r).
 * OP: 0 sum 1 mean 2 max 3 min 4 prod 5 l1 6 l2 7 sum-square 8 log-sum 9 log-sum-exp.
 * Config: T, BLOCK, TPR, VEC (rows), BX (cols: threads along INNER; BLOCK / BX along NR), NK, NR,
 * INNER, OP, static ko(o), ro(r). Args u[0] x, u[1] y. */
enum {
  DRT_RED_SUM = 0, DRT_RED_MEAN, DRT_RED_MAX, DRT_RED_MIN, DRT_RED_PROD,
  DRT_RED_L1, DRT_RED_L2, DRT_RED_SUMSQ, DRT_RED_LOGSUM, DRT_RED_LSE
};

template <int OP> struct drt_red_acc {
  float a, b; /* LSE: (max, sum); others: a */
  __device__ __forceinline__ void init() {
    b = 0.0f;
    a = (OP == DRT_RED_MAX || OP == DRT_RED_LSE) ? -DRT_INF_F32
        : OP == DRT_RED_MIN                      ? DRT_INF_F32
        : OP == DRT_RED_PROD                     ? 1.0f
                                                 : 0.0f;
  }
  __device__ __forceinline__ void add(float x) {
    if constexpr (OP == DRT_RED_MAX) a = drt_nrm_max2(a, x);
    else if constexpr (OP == DRT_RED_MIN) a = drt_nrm_min2(a, x);
    else if constexpr (OP == DRT_RED_PROD) a *= x;
    else if constexpr (OP == DRT_RED_L1) a += fabsf(x);
    else if constexpr (OP == DRT_RED_L2 || OP == DRT_RED_SUMSQ) a += x * x;
    else if constexpr (OP == DRT_RED_LSE) drt_nrm_lse_add(a, b, x);
    else a += x;
  }
  /* combines another accumulator (the LSE pair, or a plain value) */
  __device__ __forceinline__ void merge(float oa, float ob) {
    if constexpr (OP == DRT_RED_MAX) a = drt_nrm_max2(a, oa);
    else if constexpr (OP == DRT_RED_MIN) a = drt_nrm_min2(a, oa);
    else if constexpr (OP == DRT_RED_PROD) a *= oa;
    else if constexpr (OP == DRT_RED_LSE) {
      float m = drt_nrm_max2(a, oa);
      if (m != m) {
        a = m;
        b = m;
      } else if (m != -DRT_INF_F32) {
        b = (a == -DRT_INF_F32 ? 0.0f : b * expf(a - m)) + (oa == -DRT_INF_F32 ? 0.0f : ob * expf(oa - m));
        a = m;
      }
    } else a += oa;
  }
  template <int TPR, int BLOCK> __device__ __forceinline__ void all() {
    if constexpr (OP == DRT_RED_MAX) a = drt_nrm_all<DRT_NRM_MAX, TPR, BLOCK>(a);
    else if constexpr (OP == DRT_RED_MIN) a = drt_nrm_all<DRT_NRM_MIN, TPR, BLOCK>(a);
    else if constexpr (OP == DRT_RED_PROD) a = drt_nrm_all<DRT_NRM_PROD, TPR, BLOCK>(a);
    else if constexpr (OP == DRT_RED_LSE) drt_nrm_lse_all<TPR, BLOCK>(a, b);
    else a = drt_nrm_sum<TPR, BLOCK>(a);
  }
  __device__ __forceinline__ float fin(long long count) const {
    if constexpr (OP == DRT_RED_MEAN) return a / (float)count;
    else if constexpr (OP == DRT_RED_L2) return sqrtf(a);
    else if constexpr (OP == DRT_RED_LOGSUM) return logf(a);
    else if constexpr (OP == DRT_RED_LSE) return (a == -DRT_INF_F32 || a == DRT_INF_F32 || a != a) ? a : a + logf(b);
    else return a;
  }
};

template <class C> __device__ __forceinline__ void drt_reduce_rows(const drt_kargs &a) {
  enum { V = C::VEC, RPB = C::BLOCK / C::TPR };
  const long long N = (long long)C::NR * C::INNER;
  long long o = (long long)blockIdx.x * RPB + threadIdx.x / C::TPR;
  int lane = threadIdx.x % C::TPR;
  bool valid = o < (long long)C::NK;
  long long oo = valid ? o : (long long)C::NK - 1;
  const typename C::T *x = (const typename C::T *)a.u[0] + C::ko(oo);
  drt_red_acc<C::OP> acc;
  acc.init();
  for (long long t = (long long)lane * V; t < N; t += (long long)C::TPR * V) {
    long long r = t / (long long)C::INNER, e = t % (long long)C::INNER;
    float v[V];
    drt_nrm_load<typename C::T, V>(x + C::ro(r) + e, v);
#pragma unroll
    for (int k = 0; k < V; k++) acc.add(v[k]);
  }
  acc.template all<C::TPR, C::BLOCK>();
  if (valid && lane == 0) ((typename C::T *)a.u[1])[o] = drt_nrm_t<typename C::T>(acc.fin(N));
}

template <class C> __device__ __forceinline__ void drt_reduce_cols(const drt_kargs &a) {
  enum { BY = C::BLOCK / C::BX, EB = (C::INNER + C::BX - 1) / C::BX };
  __shared__ float sa[C::BLOCK], sb[C::BLOCK];
  long long o = blockIdx.x / EB;
  long long e = (long long)(blockIdx.x % EB) * C::BX + threadIdx.x % C::BX;
  int ry = threadIdx.x / C::BX;
  drt_red_acc<C::OP> acc;
  acc.init();
  if (e < (long long)C::INNER) {
    const typename C::T *x = (const typename C::T *)a.u[0] + C::ko(o) + e;
    for (long long r = ry; r < (long long)C::NR; r += BY) acc.add(drt_nrm_f(x[C::ro(r)]));
  }
  if constexpr (BY > 1) {
    sa[threadIdx.x] = acc.a;
    sb[threadIdx.x] = acc.b;
    __syncthreads();
    if (ry == 0) {
      for (int k = 1; k < BY; k++) acc.merge(sa[threadIdx.x + k * C::BX], sb[threadIdx.x + k * C::BX]);
    }
  }
  if (ry == 0 && e < (long long)C::INNER)
    ((typename C::T *)a.u[1])[o * (long long)C::INNER + e] = drt_nrm_t<typename C::T>(acc.fin(C::NR));
}

/* Split reductions, for few outputs over many elements: kernel 1 reduces chunk s of every output
 * into a partial accumulator (two floats) in scratch (u[2]); kernel 2 merges the S partials of
 * each output in order. Extra config: S (chunks), CH (rows: elements per chunk, a multiple of
 * VEC; cols: reduced positions per chunk).
 * rows, kernel 1: grid (S, NK), TPR == BLOCK; partial of (o, s) at 2 * (o * S + s). */
template <class C> __device__ __forceinline__ void drt_reduce_rows_part(const drt_kargs &a) {
  enum { V = C::VEC };
  const long long N = (long long)C::NR * C::INNER;
  long long o = blockIdx.y, s = blockIdx.x;
  long long end = (s + 1) * (long long)C::CH < N ? (s + 1) * (long long)C::CH : N;
  const typename C::T *x = (const typename C::T *)a.u[0] + C::ko(o);
  drt_red_acc<C::OP> acc;
  acc.init();
  for (long long t = s * (long long)C::CH + (long long)threadIdx.x * V; t < end; t += (long long)C::BLOCK * V) {
    long long r = t / (long long)C::INNER, e = t % (long long)C::INNER;
    float v[V];
    drt_nrm_load<typename C::T, V>(x + C::ro(r) + e, v);
#pragma unroll
    for (int k = 0; k < V; k++) acc.add(v[k]);
  }
  acc.template all<C::BLOCK, C::BLOCK>();
  if (threadIdx.x == 0) {
    float *p = (float *)a.u[2] + 2 * (o * (long long)C::S + s);
    p[0] = acc.a;
    p[1] = acc.b;
  }
}

/* cols, kernel 1: grid (NK * ceil(INNER / BX), S); reduced positions [s * CH, (s + 1) * CH);
 * partial of output (o, e) and chunk s at 2 * ((o * INNER + e) * S + s). */
template <class C> __device__ __forceinline__ void drt_reduce_cols_part(const drt_kargs &a) {
  enum { BY = C::BLOCK / C::BX, EB = (C::INNER + C::BX - 1) / C::BX };
  __shared__ float sa[C::BLOCK], sb[C::BLOCK];
  long long o = blockIdx.x / EB, s = blockIdx.y;
  long long e = (long long)(blockIdx.x % EB) * C::BX + threadIdx.x % C::BX;
  int ry = threadIdx.x / C::BX;
  long long end = (s + 1) * (long long)C::CH < (long long)C::NR ? (s + 1) * (long long)C::CH : (long long)C::NR;
  drt_red_acc<C::OP> acc;
  acc.init();
  if (e < (long long)C::INNER) {
    const typename C::T *x = (const typename C::T *)a.u[0] + C::ko(o) + e;
    for (long long r = s * (long long)C::CH + ry; r < end; r += BY) acc.add(drt_nrm_f(x[C::ro(r)]));
  }
  if constexpr (BY > 1) {
    sa[threadIdx.x] = acc.a;
    sb[threadIdx.x] = acc.b;
    __syncthreads();
    if (ry == 0) {
      for (int k = 1; k < BY; k++) acc.merge(sa[threadIdx.x + k * C::BX], sb[threadIdx.x + k * C::BX]);
    }
  }
  if (ry == 0 && e < (long long)C::INNER) {
    float *p = (float *)a.u[2] + 2 * ((o * (long long)C::INNER + e) * C::S + s);
    p[0] = acc.a;
    p[1] = acc.b;
  }
}

/* kernel 2 (both): one thread per output; OUTS outputs, each reducing COUNT elements. */
template <class C> __device__ __forceinline__ void drt_reduce_merge(const drt_kargs &a) {
  long long o = (long long)blockIdx.x * C::BLOCK + threadIdx.x;
  if (o >= (long long)C::OUTS) return;
  const float *p = (const float *)a.u[2] + 2 * o * (long long)C::S;
  drt_red_acc<C::OP> acc;
  acc.a = p[0];
  acc.b = p[1];
  for (int s = 1; s < C::S; s++) acc.merge(p[2 * s], p[2 * s + 1]);
  ((typename C::T *)a.u[1])[o] = drt_nrm_t<typename C::T>(acc.fin(C::COUNT));
}

/* ---- ArgMax / ArgMin: one thread per (outer, inner) column. Config: T, BLOCK, OUTER, LEN, INNER,
 * MAX, LAST. Args u[0] x, u[1] y (long long). NaN wins at its first occurrence (numpy). */
template <class C> __device__ __forceinline__ void drt_argext_cols(const drt_kargs &a) {
  long long t = (long long)blockIdx.x * C::BLOCK + threadIdx.x;
  if (t >= (long long)C::OUTER * C::INNER) return;
  long long o = t / (long long)C::INNER, k = t % (long long)C::INNER;
  const typename C::T *x = (const typename C::T *)a.u[0] + o * (long long)C::LEN * C::INNER + k;
  auto best = drt_nrm_c(x[0]);
  long long bi = 0;
  if (!(best != best)) {
    for (long long i = 1; i < (long long)C::LEN; i++) {
      auto v = drt_nrm_c(x[i * C::INNER]);
      if (v != v) {
        bi = i;
        break;
      }
      bool better = C::MAX ? (C::LAST ? v >= best : v > best) : (C::LAST ? v <= best : v < best);
      if (better) {
        best = v;
        bi = i;
      }
    }
  }
  ((long long *)a.u[1])[t] = bi;
}

/* ---- BatchNormalization (inference): y = (x - mean) * scale / sqrt(var + eps) + bias, channel
 * (t / SPATIAL) % CH. Config: T, TP, BLOCK, VEC (divides SPATIAL), CH, SPATIAL, TOTAL.
 * Args u[0] x, u[1] y, u[2] scale, u[3] bias, u[4] mean, u[5] var. */
template <class C> __device__ __forceinline__ void drt_batchnorm(const drt_kargs &a, float eps) {
  enum { V = C::VEC };
  const typename C::TP *sc = (const typename C::TP *)a.u[2], *bi = (const typename C::TP *)a.u[3];
  const typename C::TP *mu = (const typename C::TP *)a.u[4], *va = (const typename C::TP *)a.u[5];
  const long long step = (long long)gridDim.x * C::BLOCK * V;
  for (long long t = ((long long)blockIdx.x * C::BLOCK + threadIdx.x) * V; t < (long long)C::TOTAL; t += step) {
    long long ch = (t / (long long)C::SPATIAL) % (long long)C::CH;
    float s = drt_nrm_f(sc[ch]) / sqrtf(drt_nrm_f(va[ch]) + eps);
    float b = drt_nrm_f(bi[ch]) - drt_nrm_f(mu[ch]) * s;
    float v[V];
    drt_nrm_load<typename C::T, V>((const typename C::T *)a.u[0] + t, v);
#pragma unroll
    for (int k = 0; k < V; k++) v[k] = v[k] * s + b;
    drt_nrm_store<typename C::T, V>((typename C::T *)a.u[1] + t, v);
  }
}
