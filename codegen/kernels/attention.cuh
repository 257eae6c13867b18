/* codegen/kernels/attention.cuh: fused attention (drt.Attention; semantics in ir/ops.def and
 * runtime/cpu/fused_attention.c, geometry in ir/infer_fused.h).
 *
 * Flash-style: one block computes BQ query rows of one (batch, head); it walks the keys in tiles
 * of BK with an online softmax (running max m and sum l per row, the accumulator rescaled by
 * exp(m_old - m_new)), so no score matrix larger than BQ x BK exists. Each warp owns 16 query rows
 * for the whole kernel (scores, softmax, accumulator), so only the K/V tile loads need block-wide
 * barriers.
 *
 *   shared memory (dynamic, drt_smem; sizes mirrored by codegen/emit_attention.c attn_smem()):
 *     Q  [BQ][LDQ] T             the block's queries, head dim zero-padded to DP (multiple of 16)
 *     K  STAGES x [BK][LDK] T    key tiles (rows past the sequence zeroed)
 *     V  STAGES x [BK][LDV] T    value tiles, Dv zero-padded to DVP
 *     S  [BQ][LDS] f32           raw scores Q K^T; P (T) overwrites it row by row (stride LDP)
 *     O  [BQ][LDO] f32           output accumulator (TC with DVP <= 128: staging only; it lives
 *                                in wmma fragments)
 *     L  [BQ]      f32           1 / l per row for the final store
 *   With STAGES = 2 the next K/V tile is copied with cp.async while the current one is computed
 *   (16-byte copies when the head dim is contiguous and aligned; other layouts load synchronously).
 *
 *   TC: both products on tensor cores with nvcuda::wmma, fp32 accumulate: 16x16x16 on fp16/bf16
 *   storage, TF32 16x16x8 on fp32 storage (tf32 precision; P is then fp32 rounded to TF32). The
 *   per-row rescale of the accumulator goes through shared memory in SIMT code (fragments are only
 *   loaded/stored/filled/multiplied, plus the index-independent TF32 rounding: portable and
 *   emulatable).
 *   !TC (fp32 storage, fp32 precision): the same structure with SIMT products in fp32.
 *
 * Scores are accumulated in fp32, the softmax runs in base 2 (x * log2 e, exp2f). Masking follows
 * the CPU kernel: scale first, then the mask (add / keep where true / keep where false, others
 * mask_fill), then causal (key j > query i is -inf). Keys past the sequence are excluded; a row
 * whose keys are all -inf produces zeros. */

struct drt_attn_geom {
  long long heads;  /* H */
  long long group;  /* H / Hkv: query heads per key/value head */
  long long q_seq, kv_seq;
  long long qs[4], ks[4], vs[4], os[4]; /* element strides over (b, h, s, d) */
  long long ms[4];                      /* mask strides over (b, h, i, j), 0 on broadcast dims */
  float scale, fill;
};

#define DRT_ATTN_NEG_INF (__uint_as_float(0xff800000u))
#define DRT_ATTN_LOG2E 1.4426950408889634f

template <class T> struct drt_attn_cvt;
template <> struct drt_attn_cvt<float> {
  typedef float2 T2;
  static __device__ __forceinline__ float2 to2(float a, float b) { return make_float2(a, b); }
  static __device__ __forceinline__ float to(float x) { return x; }
  static __device__ __forceinline__ float from(float x) { return x; }
};
template <> struct drt_attn_cvt<double> {
  static __device__ __forceinline__ double to(float x) { return (double)x; }
  static __device__ __forceinline__ float from(double x) { return (float)x; }
};
template <> struct drt_attn_cvt<__half> {
  typedef __half2 T2;
  static __device__ __forceinline__ __half2 to2(float a, float b) { return __floats2half2_rn(a, b); }
  static __device__ __forceinline__ __half to(float x) { return __float2half_rn(x); }
  static __device__ __forceinline__ float from(__half x) { return __half2float(x); }
};
template <> struct drt_attn_cvt<__nv_bfloat16> {
  typedef __nv_bfloat162 T2;
  static __device__ __forceinline__ __nv_bfloat162 to2(float a, float b) { return __floats2bfloat162_rn(a, b); }
  static __device__ __forceinline__ __nv_bfloat16 to(float x) { return __float2bfloat16_rn(x); }
  static __device__ __forceinline__ float from(__nv_bfloat16 x) { return __bfloat162float(x); }
};

/* Tensor-core operand types: 16x16x16 on fp16/bf16, 16x16x8 TF32 on fp32 storage (operands
 * rounded to TF32 after each fragment load; an index-independent loop over x[]). */
template <class T> struct drt_attn_mma {
  static constexpr int K = 16;
  typedef T A;
  template <class F> static __device__ __forceinline__ void round(F &) {}
};
template <> struct drt_attn_mma<float> {
  static constexpr int K = 8;
  typedef nvcuda::wmma::precision::tf32 A;
  template <class F> static __device__ __forceinline__ void round(F &f) {
#pragma unroll
    for (int i = 0; i < f.num_elements; i++) f.x[i] = nvcuda::wmma::__float_to_tf32(f.x[i]);
  }
};

/* Shared-memory geometry of one configuration (emit_attention.c computes the same numbers). */
template <class T, int D, int DV, int BQ, int BK, bool TC, int STAGES = 1> struct drt_attn_cfg {
  static constexpr int DP = (D + 15) / 16 * 16;
  static constexpr int DVP = (DV + 15) / 16 * 16;
  static constexpr int LDQ = TC ? DP + 8 : DP + 4;
  static constexpr int LDK = TC ? DP + 8 : DP + 1; /* odd for fp32: conflict-free column reads */
  static constexpr int LDV = TC ? DVP + 8 : DVP + 4;
  static constexpr int LDS = BK + 4;
  static constexpr int LDP = LDS * (int)(sizeof(float) / sizeof(T));
  static constexpr int LDO = DVP + 4;
  static constexpr unsigned R(unsigned x) { return (x + 127u) & ~127u; }
  static constexpr unsigned OFF_Q = 0;
  static constexpr unsigned OFF_K = OFF_Q + R(BQ * LDQ * (unsigned)sizeof(T));
  static constexpr unsigned K_BYTES = R(BK * LDK * (unsigned)sizeof(T)); /* one stage */
  static constexpr unsigned V_BYTES = R(BK * LDV * (unsigned)sizeof(T));
  static constexpr unsigned OFF_V = OFF_K + STAGES * K_BYTES;
  static constexpr unsigned OFF_S = OFF_V + STAGES * V_BYTES;
  static constexpr unsigned OFF_O = OFF_S + R(BQ * LDS * 4u);
  static constexpr unsigned OFF_L = OFF_O + R(BQ * LDO * 4u);
  static constexpr unsigned SMEM = OFF_L + R(BQ * 4u);
};

/* 16-byte global -> shared copy, zero-filled when !valid: cp.async (sm_80+) on the device, a plain
 * copy in the emulator. drt_attn_cp_wait<N>: wait until at most N committed groups are pending. */
__device__ __forceinline__ void drt_attn_cp16(void *dst, const void *src, bool valid) {
#ifndef DRT_EMU
  unsigned d = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 16 : 0));
#else
  *(uint4 *)dst = valid ? *(const uint4 *)src : make_uint4(0u, 0u, 0u, 0u);
#endif
}
__device__ __forceinline__ void drt_attn_cp_commit() {
#ifndef DRT_EMU
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}
template <int N> __device__ __forceinline__ void drt_attn_cp_wait() {
#ifndef DRT_EMU
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

/* Loads a rows x cols tile (row r, column c at src[r * rs + c * cs]) into dst[ROWS][LD], zero
 * outside [0, nrows) x [0, ncols) up to ROWS x CP. Uses 16-byte loads when the columns are
 * contiguous and aligned, else coalesces along whichever of rows / columns is contiguous. */
template <class T, int ROWS, int CP, int LD, bool ASYNC = false>
__device__ __forceinline__ void drt_attn_load_tile(T *__restrict__ dst, const T *__restrict__ src, long long rs,
                                                   long long cs, int nrows, int ncols, int tid, int nthreads) {
  constexpr int V = 16 / (int)sizeof(T);
  const T zero = drt_attn_cvt<T>::to(0.0f);
  if (cs == 1 && ncols % V == 0 && rs % V == 0 && ((unsigned long long)src & 15ull) == 0) {
    constexpr int CH = CP / V;
    if constexpr (ASYNC && LD % V == 0) { /* completes at drt_attn_cp_wait */
      for (int e = tid; e < ROWS * CH; e += nthreads) {
        const int r = e / CH, c = (e - r * CH) * V;
        const bool in = r < nrows && c < ncols;
        drt_attn_cp16(dst + r * LD + c, in ? src + r * rs + c : src, in);
      }
    } else {
      for (int e = tid; e < ROWS * CH; e += nthreads) {
        const int r = e / CH, c = (e - r * CH) * V;
        uint4 x = make_uint4(0u, 0u, 0u, 0u);
        if (r < nrows && c < ncols) x = *(const uint4 *)(src + r * rs + c);
        if constexpr (LD % V == 0) {
          *(uint4 *)(dst + r * LD + c) = x;
        } else {
#pragma unroll
          for (int i = 0; i < V; i++) dst[r * LD + c + i] = drt_attn_cvt<T>::to(drt_vec_get(x, i, (const T *)0));
        }
      }
    }
  } else if (cs == 1 || rs != 1) {
    for (int e = tid; e < ROWS * CP; e += nthreads) {
      const int r = e / CP, c = e - r * CP;
      dst[r * LD + c] = r < nrows && c < ncols ? src[r * rs + c * cs] : zero;
    }
  } else { /* rows contiguous (e.g. "b_d_s_s"): consecutive threads take consecutive rows */
    for (int e = tid; e < ROWS * CP; e += nthreads) {
      const int c = e / ROWS, r = e - c * ROWS;
      dst[r * LD + c] = r < nrows && c < ncols ? src[r * rs + c * cs] : zero;
    }
  }
}

/* What block blockIdx.x of an attention launch covers: query rows i0 .. i0 + rows of batch b,
 * head h (key/value head kh). Grid: ceil(q_seq / BQ) * B * H blocks. */
template <int BQ> struct drt_attn_blk {
  long long b, h, kh, i0;
  int rows;
  __device__ __forceinline__ explicit drt_attn_blk(const drt_attn_geom &g) {
    const long long nqb = (g.q_seq + BQ - 1) / BQ, blk = (long long)blockIdx.x;
    const long long qb = blk % nqb, bh = blk / nqb;
    b = bh / g.heads;
    h = bh - b * g.heads;
    kh = h / g.group;
    i0 = qb * BQ;
    rows = g.q_seq - i0 < BQ ? (int)(g.q_seq - i0) : BQ;
  }
};

/* The kernel body. T: storage of Q/K/V/output; MT: mask storage (unsigned char for bool masks;
 * unused when MODE < 0); MODE: -1 no mask, 0 additive, 1 keep where true, 2 keep where false.
 * Launch: grid.x = ceil(q_seq / BQ) * B * H, block = BQ / 16 * 32 threads, dynamic shared memory
 * drt_attn_cfg<...>::SMEM bytes.
 *
 * Lazy rescaling: a row's reference max m only moves when a tile's max exceeds it by more than
 * DRT_ATTN_RESCALE (log2 units), so the probabilities stay <= 2^8 (exact in fp16/bf16/fp32 and far
 * from overflow) and the accumulator is rescaled rarely; the result is the same softmax. With the
 * accumulator in wmma fragments (TC, DVP <= 128) a rescale goes through shared memory. */
#define DRT_ATTN_RESCALE 8.0f

template <class T, class MT, int D, int DV, int BQ, int BK, int MODE, bool CAUSAL, bool TC, int STAGES = 1>
__device__ __forceinline__ void drt_attention(const drt_attn_geom &g, const T *__restrict__ q, const T *__restrict__ k,
                                              const T *__restrict__ v, const MT *__restrict__ mask,
                                              T *__restrict__ out) {
  typedef drt_attn_cfg<T, D, DV, BQ, BK, TC, STAGES> C;
  constexpr int NW = BQ / 16, NT = NW * 32;
  constexpr int DP = C::DP, DVP = C::DVP, LDQ = C::LDQ, LDK = C::LDK, LDV = C::LDV;
  constexpr int LDS = C::LDS, LDP = C::LDP, LDO = C::LDO;
  constexpr bool OREG = TC && DVP <= 128; /* O accumulator in wmma fragments */
  constexpr int NOF = OREG ? DVP / 16 : 1;
  static_assert(BQ % 16 == 0 && BK % 32 == 0, "tile sizes");
  static_assert(TC || sizeof(T) == 4, "the SIMT path is for fp32 storage");
  static_assert(!TC || BK % 16 == 0, "tensor-core key tiles");
  typedef drt_attn_mma<T> M; /* TC: operand types; float storage = TF32 */
  constexpr int MK = M::K;
  typedef typename M::A TA;
  static_assert(STAGES == 1 || STAGES == 2, "one or two K/V stages");

  T *Qs = (T *)(drt_smem + C::OFF_Q);
  float *S = (float *)(drt_smem + C::OFF_S);
  T *P = (T *)(drt_smem + C::OFF_S);
  float *O = (float *)(drt_smem + C::OFF_O);
  float *Linv = (float *)(drt_smem + C::OFF_L);

  const int tid = (int)threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const drt_attn_blk<BQ> pos(g);
  const long long b = pos.b, h = pos.h, kh = pos.kh, i0 = pos.i0;
  const int rows = pos.rows;

  drt_attn_load_tile<T, BQ, DP, LDQ>(Qs, q + b * g.qs[0] + h * g.qs[1] + i0 * g.qs[2], g.qs[2], g.qs[3], rows, D, tid,
                                     NT);
  if constexpr (!OREG)
    for (int e = tid; e < BQ * LDO; e += NT) O[e] = 0.0f;
  const T *kp = k + b * g.ks[0] + kh * g.ks[1];
  const T *vp = v + b * g.vs[0] + kh * g.vs[1];

  using namespace nvcuda;
  wmma::fragment<wmma::accumulator, 16, 16, MK, float> oacc[NOF];
  if constexpr (OREG)
#pragma unroll
    for (int n = 0; n < NOF; n++) wmma::fill_fragment(oacc[n], 0.0f);
  float *Ow = O + warp * 16 * LDO; /* this warp's 16 accumulator rows */

  /* softmax ownership: lanes 2r and 2r+1 of a warp share row r of its 16 rows */
  const int half = lane & 1;
  const int row = warp * 16 + (lane >> 1);
  const long long qi = i0 + row;
  const bool qvalid = qi < g.q_seq;
  const MT *mrow = mask;
  if constexpr (MODE >= 0) mrow = mask + b * g.ms[0] + h * g.ms[1] + (qvalid ? qi : 0) * g.ms[2];
  float m_run = DRT_ATTN_NEG_INF, l_run = 0.0f;

  /* causal: keys past the block's last query are never needed */
  const long long kend = CAUSAL && i0 + rows < g.kv_seq ? i0 + rows : g.kv_seq;
  /* K/V tiles: with two stages tile t + 1 is copied (cp.async) while tile t is computed */
  const int ntiles = (int)((kend + BK - 1) / BK);
  auto load_kv = [&](int t) {
    const long long j = (long long)t * BK;
    const int n = kend - j < BK ? (int)(kend - j) : BK;
    T *ks = (T *)(drt_smem + C::OFF_K + (t % STAGES) * C::K_BYTES);
    T *vs = (T *)(drt_smem + C::OFF_V + (t % STAGES) * C::V_BYTES);
    drt_attn_load_tile<T, BK, DP, LDK, true>(ks, kp + j * g.ks[2], g.ks[2], g.ks[3], n, D, tid, NT);
    drt_attn_load_tile<T, BK, DVP, LDV, true>(vs, vp + j * g.vs[2], g.vs[2], g.vs[3], n, DV, tid, NT);
    drt_attn_cp_commit();
  };
  if (STAGES == 2 && ntiles > 0) load_kv(0);
  for (int t = 0; t < ntiles; t++) {
    const long long j0 = (long long)t * BK;
    const int nk = kend - j0 < BK ? (int)(kend - j0) : BK;
    if (STAGES == 1) {
      load_kv(t);
      drt_attn_cp_wait<0>();
    } else if (t + 1 < ntiles) {
      load_kv(t + 1); /* its stage was released by the barrier that ended tile t - 1 */
      drt_attn_cp_wait<1>();
    } else {
      drt_attn_cp_wait<0>();
    }
    __syncthreads(); /* tile t (and, first pass, Q and O) visible to every warp */
    const T *Ks = (const T *)(drt_smem + C::OFF_K + (t % STAGES) * C::K_BYTES);
    const T *Vs = (const T *)(drt_smem + C::OFF_V + (t % STAGES) * C::V_BYTES);

    /* S[warp rows] = Q K^T (key rows past nk are zero; their scores are dropped below) */
    if constexpr (TC) {
      wmma::fragment<wmma::accumulator, 16, 16, MK, float> acc[BK / 16];
#pragma unroll
      for (int n = 0; n < BK / 16; n++) wmma::fill_fragment(acc[n], 0.0f);
#pragma unroll
      for (int kk = 0; kk < DP / MK; kk++) {
        wmma::fragment<wmma::matrix_a, 16, 16, MK, TA, wmma::row_major> fa;
        wmma::load_matrix_sync(fa, Qs + warp * 16 * LDQ + kk * MK, LDQ);
        M::round(fa);
#pragma unroll
        for (int n = 0; n < BK / 16; n++) {
          wmma::fragment<wmma::matrix_b, 16, 16, MK, TA, wmma::col_major> fb;
          wmma::load_matrix_sync(fb, Ks + n * 16 * LDK + kk * MK, LDK);
          M::round(fb);
          wmma::mma_sync(acc[n], fa, fb, acc[n]);
        }
      }
#pragma unroll
      for (int n = 0; n < BK / 16; n++)
        wmma::store_matrix_sync(S + warp * 16 * LDS + n * 16, acc[n], LDS, wmma::mem_row_major);
    } else {
      float acc[16][BK / 32];
#pragma unroll
      for (int r = 0; r < 16; r++)
#pragma unroll
        for (int u = 0; u < BK / 32; u++) acc[r][u] = 0.0f;
      const float *qw = (const float *)Qs + warp * 16 * LDQ;
      for (int d = 0; d < D; d++) {
        float kv[BK / 32];
#pragma unroll
        for (int u = 0; u < BK / 32; u++) kv[u] = ((const float *)Ks)[(lane + 32 * u) * LDK + d];
#pragma unroll
        for (int r = 0; r < 16; r++) {
          const float qv = qw[r * LDQ + d];
#pragma unroll
          for (int u = 0; u < BK / 32; u++) acc[r][u] += qv * kv[u];
        }
      }
#pragma unroll
      for (int r = 0; r < 16; r++)
#pragma unroll
        for (int u = 0; u < BK / 32; u++) S[(warp * 16 + r) * LDS + lane + 32 * u] = acc[r][u];
    }
    __syncwarp();

    /* online softmax of row `row`: lane half h takes the column pairs 4t + 2h, 4t + 2h + 1 */
    float sv[BK / 2];
    float mx = DRT_ATTN_NEG_INF;
#pragma unroll
    for (int t = 0; t < BK / 4; t++) {
      const int c0 = 4 * t + 2 * half;
      const float2 raw = *(const float2 *)(S + row * LDS + c0); /* scores exist (finite) up to BK */
#pragma unroll
      for (int e = 0; e < 2; e++) {
        const int c = c0 + e;
        float s = DRT_ATTN_NEG_INF;
        if (c < nk) {
          const long long j = j0 + c;
          s = (e ? raw.y : raw.x) * g.scale;
          if constexpr (MODE == 0) {
            if (qvalid) s += drt_attn_cvt<MT>::from(mrow[j * g.ms[3]]);
          } else if constexpr (MODE == 1 || MODE == 2) {
            if (qvalid && ((mrow[j * g.ms[3]] != 0) != (MODE == 1))) s = g.fill;
          }
          if (CAUSAL && j > qi) s = DRT_ATTN_NEG_INF;
          /* base 2; a finite score stays finite (mask_fill = -FLT_MAX rows stay uniform, as on the CPU) */
          if (s != DRT_ATTN_NEG_INF) s = fmaxf(s * DRT_ATTN_LOG2E, -3.402823466e38f);
        }
        sv[2 * t + e] = s;
        mx = fmaxf(mx, s);
      }
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    float corr = 1.0f;
    if (mx > m_run + DRT_ATTN_RESCALE || (m_run == DRT_ATTN_NEG_INF && mx != DRT_ATTN_NEG_INF)) {
      corr = m_run == DRT_ATTN_NEG_INF ? 0.0f : exp2f(m_run - mx);
      m_run = mx;
      l_run *= corr;
    }
    /* every key so far masked: P = 0 (m_run - m_run would be NaN) */
    const float m_use = m_run == DRT_ATTN_NEG_INF ? 0.0f : m_run;
    float sum = 0.0f;
#pragma unroll
    for (int t = 0; t < BK / 2; t++) {
      sv[t] = exp2f(sv[t] - m_use);
      sum += sv[t];
    }
    l_run += sum + __shfl_xor_sync(0xffffffffu, sum, 1); /* outside any branch: rows of a warp differ */
    __syncwarp(); /* every lane has read its scores before P overwrites them */
#pragma unroll
    for (int t = 0; t < BK / 4; t++) {
      typedef typename drt_attn_cvt<T>::T2 T2;
      *(T2 *)(P + row * LDP + 4 * t + 2 * half) = drt_attn_cvt<T>::to2(sv[2 * t], sv[2 * t + 1]);
    }

    /* rescale the accumulator rows whose reference max moved */
    if constexpr (OREG) {
      int any = corr != 1.0f;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) any |= __shfl_xor_sync(0xffffffffu, any, o);
      if (any) {
#pragma unroll
        for (int n = 0; n < NOF; n++) wmma::store_matrix_sync(Ow + n * 16, oacc[n], LDO, wmma::mem_row_major);
        __syncwarp();
        for (int c = half; c < DVP; c += 2) O[row * LDO + c] *= corr;
        __syncwarp();
#pragma unroll
        for (int n = 0; n < NOF; n++) wmma::load_matrix_sync(oacc[n], Ow + n * 16, LDO, wmma::mem_row_major);
      }
    } else if (corr != 1.0f) {
      for (int c = half; c < DVP; c += 2) O[row * LDO + c] *= corr;
    }
    __syncwarp();

    /* O[warp rows] += P V */
    if constexpr (TC) {
      constexpr int KF = BK / MK;
      const int kf = (nk + MK - 1) / MK; /* P is 0 and V zeroed past nk */
      wmma::fragment<wmma::matrix_a, 16, 16, MK, TA, wmma::row_major> fp[KF];
#pragma unroll
      for (int kk = 0; kk < KF; kk++) {
        wmma::load_matrix_sync(fp[kk], P + warp * 16 * LDP + kk * MK, LDP);
        M::round(fp[kk]);
      }
      if constexpr (OREG) {
#pragma unroll
        for (int n = 0; n < NOF; n++)
#pragma unroll
          for (int kk = 0; kk < KF; kk++) {
            if (kk >= kf) break;
            wmma::fragment<wmma::matrix_b, 16, 16, MK, TA, wmma::row_major> fb;
            wmma::load_matrix_sync(fb, Vs + kk * MK * LDV + n * 16, LDV);
            M::round(fb);
            wmma::mma_sync(oacc[n], fp[kk], fb, oacc[n]);
          }
      } else {
#pragma unroll 1
        for (int n = 0; n < DVP / 16; n++) {
          wmma::fragment<wmma::accumulator, 16, 16, MK, float> acc;
          wmma::load_matrix_sync(acc, Ow + n * 16, LDO, wmma::mem_row_major);
          __syncwarp(); /* every lane has loaded before any stores (the emulator's lanes hold whole tiles) */
#pragma unroll
          for (int kk = 0; kk < KF; kk++) {
            if (kk >= kf) break;
            wmma::fragment<wmma::matrix_b, 16, 16, MK, TA, wmma::row_major> fb;
            wmma::load_matrix_sync(fb, Vs + kk * MK * LDV + n * 16, LDV);
            M::round(fb);
            wmma::mma_sync(acc, fp[kk], fb, acc);
          }
          wmma::store_matrix_sync(Ow + n * 16, acc, LDO, wmma::mem_row_major);
        }
      }
    } else {
      const float *pw = (const float *)P + warp * 16 * LDP;
      const float *vs = (const float *)Vs;
      const int kmax = (nk + 3) & ~3; /* P is 0 and V zeroed past nk */
      for (int c0 = 0; c0 < DVP; c0 += 32) {
        const int c = c0 + lane;
        const bool cv = c < DVP;
        float acc[16];
#pragma unroll
        for (int r = 0; r < 16; r++) acc[r] = 0.0f;
        for (int kk = 0; kk < kmax; kk += 4) {
          const float v0 = cv ? vs[kk * LDV + c] : 0.0f, v1 = cv ? vs[(kk + 1) * LDV + c] : 0.0f;
          const float v2 = cv ? vs[(kk + 2) * LDV + c] : 0.0f, v3 = cv ? vs[(kk + 3) * LDV + c] : 0.0f;
#pragma unroll
          for (int r = 0; r < 16; r++) {
            const float4 p = *(const float4 *)(pw + r * LDP + kk);
            acc[r] += p.x * v0 + p.y * v1 + p.z * v2 + p.w * v3;
          }
        }
        if (cv)
#pragma unroll
          for (int r = 0; r < 16; r++) Ow[r * LDO + c] += acc[r];
      }
    }
    __syncthreads(); /* every warp is done with this stage before it is refilled */
  }

  /* Y = O / l (rows with no unmasked key: 0) */
  if (ntiles == 0) __syncthreads(); /* O zeroed by other warps (otherwise the loop's barriers did it) */
  if constexpr (OREG)
#pragma unroll
    for (int n = 0; n < NOF; n++) wmma::store_matrix_sync(Ow + n * 16, oacc[n], LDO, wmma::mem_row_major);
  __syncwarp();
  if (half == 0) Linv[row] = l_run > 0.0f ? 1.0f / l_run : 0.0f;
  __syncwarp();
  const int r0 = warp * 16;
  const long long os2 = g.os[2], os3 = g.os[3];
  T *op = out + b * g.os[0] + h * g.os[1] + (i0 + r0) * os2;
  const int wrows = rows - r0; /* valid rows of this warp (may be <= 0) */
  constexpr int V = 16 / (int)sizeof(T);
  if (os3 == 1 && DV % V == 0 && os2 % V == 0 && ((unsigned long long)out & 15ull) == 0 &&
      ((b * g.os[0] + h * g.os[1]) % V) == 0) {
    constexpr int CH = DV / V;
    for (int e = lane; e < 16 * CH; e += 32) {
      const int r = e / CH, c = (e - r * CH) * V;
      if (r >= wrows) break;
      const float inv = Linv[r0 + r];
      float tmp[V];
#pragma unroll
      for (int i = 0; i < V; i++) tmp[i] = O[(r0 + r) * LDO + c + i] * inv;
      drt_st_vec<T>(op + r * os2 + c, tmp);
    }
  } else if (os3 == 1 || os2 != 1) {
    for (int e = lane; e < 16 * DV; e += 32) {
      const int r = e / DV, c = e - r * DV;
      if (r >= wrows) break;
      op[r * os2 + c * os3] = drt_attn_cvt<T>::to(O[(r0 + r) * LDO + c] * Linv[r0 + r]);
    }
  } else { /* rows contiguous: consecutive lanes take consecutive rows */
    for (int e = lane; e < 16 * DV; e += 32) {
      const int c = e / 16, r = e - c * 16;
      if (r < wrows) op[r * os2 + c * os3] = drt_attn_cvt<T>::to(O[(r0 + r) * LDO + c] * Linv[r0 + r]);
    }
  }
}

/* ---- register-resident flash attention: fp16/bf16 storage, padded head dims up to 128 ----------
 * FlashAttention-2 structure on mma.sync.m16n8k16 (fp32 accumulate). One block of 4 warps takes
 * BQ = 64 WM query rows of one (batch, head); each warp owns WM 16-row tiles (rows
 * 16 WM warp .. + 16 WM) for the whole kernel. K/V tiles of BK keys stream through two
 * shared-memory stages with cp.async. The scores S = Q K^T, the online softmax (row max and
 * partial sums per lane, reduced over the 4 lanes of a quad) and the output accumulator all stay
 * in registers: the accumulator layout of two adjacent 16x8 score tiles is the A-operand layout of
 * a 16x16 P tile, so P feeds the P V product without touching shared memory. With WM = 2 every
 * K/V fragment read from shared memory feeds two MMAs (half the shared-memory traffic per FLOP of
 * WM = 1, as FlashAttention-2's 128-row blocks); Q is read once into A-operand registers (QREG)
 * unless the accumulators need the room, then again per tile with ldmatrix. Same semantics as
 * drt_attention (scale, mask, causal, base-2 softmax, rows without unmasked keys give 0).
 * The loop is written for issue slots (one instruction per clock per scheduler is the budget
 * next to mma.sync): contiguous K/V rows load through drt_attn_load_rows16 (no division, immediate
 * offsets); full key tiles and the last partial one are separate instantiations; without a mask
 * the row max is over raw scores and the scale folds into one FFMA per score before
 * ex2.approx.ftz; the accumulator is rescaled only when a row max moved; head dims 16 k + 8 end
 * Q K^T with m16n8k8 instead of a k16 step over 8 zero columns.
 *
 * mma.sync fragment layouts (PTX ISA, m16n8k16, .f16/.bf16), lane = 4 g + t:
 *   A 16x16 row-major: reg0 (g, 2t..2t+1), reg1 (g+8, 2t..), reg2 (g, 2t+8..), reg3 (g+8, 2t+8..)
 *   B 16x8 (k x n):    reg0 (k = 2t..2t+1, n = g), reg1 (k = 2t+8..2t+9, n = g)
 *   C 16x8 fp32:       c0, c1 (g, 2t..2t+1), c2, c3 (g+8, 2t..2t+1)
 * In the emulator (DRT_EMU) the warp-wide product gathers the fragments with shuffles.
 *
 * shared memory: Q [BQ][DP+8] T, then K 2 x [BK][DP+8] T, then V 2 x [BK][DVP+8] T (rows padded
 * by 8 elements: the 32-bit fragment loads and ldmatrix rows are bank-conflict free); size in
 * drt_attn_mma_cfg::SMEM, mirrored by codegen/emit_attention.c. Launch: grid.x =
 * ceil(q_seq / BQ) * B * H, 128 threads. */
template <int D, int DV, int WM = 1, int BK = 64, bool WG = false> struct drt_attn_mma_cfg {
  static constexpr int BQ = 64 * WM;
  static constexpr int DP = (D + 15) / 16 * 16, DVP = (DV + 15) / 16 * 16;
  /* WG: K / V stages in wgmma's no-swizzle core-matrix layout (8 rows x 16 bytes contiguous),
     no row padding; LDK / LDV then only size the stages */
  static constexpr int LDQ = DP + 8, LDK = WG ? DP : DP + 8, LDV = WG ? DVP : DVP + 8;
  static constexpr unsigned R(unsigned x) { return (x + 127u) & ~127u; }
  static constexpr unsigned Q_BYTES = R(BQ * LDQ * 2u), K_BYTES = R(BK * LDK * 2u), V_BYTES = R(BK * LDV * 2u);
  static constexpr unsigned OFF_K = Q_BYTES, OFF_V = OFF_K + 2u * K_BYTES, SMEM = OFF_V + 2u * V_BYTES;
  /* registers per thread for the accumulator, the scores and the Q fragments */
  static constexpr int ACC_REGS = WM * DVP / 2 + WM * BK / 2;
  static constexpr bool QREG = ACC_REGS + WM * DP / 4 <= 192;
};

/* Sum over the 4 lanes of a quad (the lanes that share a row of an mma fragment). */
__device__ __forceinline__ float drt_attn_quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

template <class T> __device__ __forceinline__ unsigned drt_attn_pack(float a, float b) {
  typename drt_attn_cvt<T>::T2 v = drt_attn_cvt<T>::to2(a, b);
  unsigned u;
  memcpy(&u, &v, 4);
  return u;
}
template <class T> __device__ __forceinline__ unsigned drt_attn_ld32(const T *p) { return *(const unsigned *)p; }

/* ldmatrix.x4 (.trans): four 8x8 16-bit matrices from shared memory; lane l gives the address of
 * row l % 8 of matrix l / 8 (16-byte aligned). Without .trans lane l receives, of matrix m, the
 * pair (row l / 4, columns 2 (l % 4), +1) in r[m]; with .trans the pair (rows 2 (l % 4), +1;
 * column l / 4). The emulator reads the rows through shuffled addresses. */
template <bool TRANS> __device__ __forceinline__ void drt_ldsm_x4(unsigned *r, const void *row) {
#ifndef DRT_EMU
  unsigned a = (unsigned)__cvta_generic_to_shared(row);
  if constexpr (TRANS)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
#else
  /* every lane's row address in one warp exchange (drt_emu::gather, tests/cuda_emu/emu.h) */
  const int l = (int)threadIdx.x & 31;
  unsigned long long rows[32];
  drt_emu::gather((unsigned long long)(uintptr_t)row, rows);
  for (int m = 0; m < 4; m++) {
    if constexpr (TRANS) {
      const unsigned short *r0 = (const unsigned short *)(uintptr_t)rows[8 * m + 2 * (l & 3)];
      const unsigned short *r1 = (const unsigned short *)(uintptr_t)rows[8 * m + 2 * (l & 3) + 1];
      r[m] = (unsigned)r0[l >> 2] | ((unsigned)r1[l >> 2] << 16);
    } else {
      const unsigned short *rp = (const unsigned short *)(uintptr_t)rows[8 * m + (l >> 2)];
      r[m] = (unsigned)rp[2 * (l & 3)] | ((unsigned)rp[2 * (l & 3) + 1] << 16);
    }
  }
#endif
}

#ifndef DRT_EMU
template <class T> __device__ __forceinline__ void drt_mma16816(float *c, const unsigned *a, const unsigned *b);
template <> __device__ __forceinline__ void drt_mma16816<__half>(float *c, const unsigned *a, const unsigned *b) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
               "{%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
template <> __device__ __forceinline__ void drt_mma16816<__nv_bfloat16>(float *c, const unsigned *a, const unsigned *b) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
               "{%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
/* m16n8k8: the first half (k = 0..7) of the m16n8k16 fragments: A reg0, reg1; B reg0 */
template <class T> __device__ __forceinline__ void drt_mma1688(float *c, const unsigned *a, unsigned b);
template <> __device__ __forceinline__ void drt_mma1688<__half>(float *c, const unsigned *a, unsigned b) {
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(b));
}
template <> __device__ __forceinline__ void drt_mma1688<__nv_bfloat16>(float *c, const unsigned *a, unsigned b) {
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(b));
}
#else
template <class T> inline void drt_attn_unpack(unsigned u, float &lo, float &hi) {
  T a, b;
  unsigned short x = (unsigned short)(u & 0xffffu), y = (unsigned short)(u >> 16);
  memcpy(&a, &x, 2);
  memcpy(&b, &y, 2);
  lo = drt_to_f32(a);
  hi = drt_to_f32(b);
}
template <class T> inline void drt_mma16816(float *c, const unsigned *a, const unsigned *b) {
  /* the warp's fragments in three exchanges (drt_emu::gather: one warp barrier each) */
  float A[16][16], B[16][8];
  unsigned long long a01[32], a23[32], b01[32];
  drt_emu::gather((unsigned long long)a[0] | (unsigned long long)a[1] << 32, a01);
  drt_emu::gather((unsigned long long)a[2] | (unsigned long long)a[3] << 32, a23);
  drt_emu::gather((unsigned long long)b[0] | (unsigned long long)b[1] << 32, b01);
  for (int src = 0; src < 32; src++) {
    const unsigned ra[4] = {(unsigned)a01[src], (unsigned)(a01[src] >> 32), (unsigned)a23[src],
                            (unsigned)(a23[src] >> 32)};
    const unsigned rb[2] = {(unsigned)b01[src], (unsigned)(b01[src] >> 32)};
    const int g = src >> 2, t = src & 3;
    drt_attn_unpack<T>(ra[0], A[g][2 * t], A[g][2 * t + 1]);
    drt_attn_unpack<T>(ra[1], A[g + 8][2 * t], A[g + 8][2 * t + 1]);
    drt_attn_unpack<T>(ra[2], A[g][2 * t + 8], A[g][2 * t + 9]);
    drt_attn_unpack<T>(ra[3], A[g + 8][2 * t + 8], A[g + 8][2 * t + 9]);
    drt_attn_unpack<T>(rb[0], B[2 * t][g], B[2 * t + 1][g]);
    drt_attn_unpack<T>(rb[1], B[2 * t + 8][g], B[2 * t + 9][g]);
  }
  const int lane = (int)threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  for (int e = 0; e < 4; e++) {
    const int r = g + 8 * (e >> 1), n = 2 * t + (e & 1);
    float acc = c[e];
    for (int kk = 0; kk < 16; kk++) acc += A[r][kk] * B[kk][n];
    c[e] = acc;
  }
}
/* k = 0..7 only: the m16n8k16 product with zero upper halves (+0 in fp16 and bf16) */
template <class T> inline void drt_mma1688(float *c, const unsigned *a, unsigned b) {
  const unsigned a4[4] = {a[0], a[1], 0u, 0u}, b2[2] = {b, 0u};
  drt_mma16816<T>(c, a4, b2);
}
#endif

template <bool B> struct drt_attn_bool {
  static constexpr bool value = B;
};
template <int I> struct drt_attn_int {
  static constexpr int value = I;
};

/* 2^x on the SFU, denormal results flushed to zero: one MUFU.EX2 (exp2f without fast math adds a
 * range fixup of three more instructions around it). x = -inf gives +0. */
__device__ __forceinline__ float drt_attn_ex2(float x) {
#ifndef DRT_EMU
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
#else
  return exp2f(x);
#endif
}

/* Keys j .. j + n of K or V (row r at src + r rs, 16-byte aligned rows of DC 16-byte chunks) into
 * a [BK][LD] stage with cp.async. Thread tid copies chunk tid % CPT of rows tid / CPT + RPP i,
 * where CPT (DC rounded up to a power of two) threads share a row and RPP = NT / CPT rows go per
 * pass: each thread's addresses are one base plus constants, no division per chunk. Rows >= n
 * are zero-filled (src-size 0, from the tile's first row: never an address past the tensor); the pad columns past DC chunks are not written. */
template <class T, int BK, int DC, int LD, int NT>
__device__ __forceinline__ void drt_attn_load_rows16(T *__restrict__ dst, const T *__restrict__ src, long long rs,
                                                     int n, int tid) {
  constexpr int CPT = DC <= 1 ? 1 : DC <= 2 ? 2 : DC <= 4 ? 4 : DC <= 8 ? 8 : 16;
  constexpr int RPP = NT / CPT;
  constexpr int PASSES = BK >= RPP ? BK / RPP : 1; /* powers of two: RPP divides BK or exceeds it */
  static_assert(DC <= 16 && (BK % RPP == 0 || RPP % BK == 0), "row loader geometry");
  const int c = tid % CPT, r0 = tid / CPT;
  if (c >= DC || (RPP > BK && r0 >= BK)) return;
  T *d = dst + r0 * LD + 8 * c;
  const T *s = src + r0 * rs + 8 * c;
  if (n >= BK) { /* a full tile: every address is the thread's base plus a constant */
#pragma unroll
    for (int i = 0; i < PASSES; i++) drt_attn_cp16(d + i * RPP * LD, s + (long long)(i * RPP) * rs, true);
    return;
  }
#pragma unroll
  for (int i = 0; i < PASSES; i++) { /* the last tile: rows past n are zero-filled from a valid address */
    const bool in = r0 + i * RPP < n;
    drt_attn_cp16(d + i * RPP * LD, in ? s + (long long)(i * RPP) * rs : src, in);
  }
}

/* Hopper (sm_90a, __CUDA_ARCH_FEAT_SM90_ALL): both products of drt_attention_mma run as warpgroup
 * MMAs (kernels/wgmma.cuh) when the head sizes are multiples of 8: the block's 128 threads are
 * one warpgroup, each m64 slice of query rows one wgmma per 16 columns of the reduction, with Q
 * and P as register A operands (the same fragments as mma.sync) and K / V read by the tensor
 * cores straight from shared memory in the core-matrix layout (drt_attn_load_core16). Every
 * other architecture, and the emulator unless it defines the macro, takes the mma.sync path. */
#if defined(__CUDA_ARCH_FEAT_SM90_ALL) && defined(DRT_HAVE_WGMMA)
#define DRT_ATTN_WGMMA 1
#else
#define DRT_ATTN_WGMMA 0
#endif

/* K or V rows into the core-matrix layout of wgmma (no swizzle): row r, 16-byte chunk c of a
 * [BK] x [CK chunks] stage at element ((r / 8) CK + c) 64 + (r % 8) 8, with cp.async. Item e
 * (of BK DC, DC the chunks that hold data) is row 8 (e / 8 / DC) + e % 8, chunk e / 8 % DC, so
 * the 32 copies of a warp fill four whole core matrices: 512 contiguous bytes of shared memory
 * (no bank conflicts; with one row per 16 threads, 9 chunks of a row would land in the same four
 * banks) from eight rows read as 64-byte runs. Rows >= n are zero-filled from a valid address. */
template <class T, int BK, int DC, int CK, int NT>
__device__ __forceinline__ void drt_attn_load_core16(T *__restrict__ dst, const T *__restrict__ src, long long rs,
                                                     int n, int tid) {
  static_assert(BK % 8 == 0 && DC >= 1 && DC <= CK, "core loader geometry");
#pragma unroll
  for (int i = 0; i < (BK * DC + NT - 1) / NT; i++) {
    const int e = tid + i * NT;
    if ((BK * DC) % NT != 0 && e >= BK * DC) break;
    const int g8 = e >> 3, rb = g8 / DC, c = g8 - rb * DC, r = 8 * rb + (e & 7);
    const bool in = r < n;
    drt_attn_cp16(dst + (rb * CK + c) * 64 + (e & 7) * 8, in ? src + (long long)r * rs + 8 * c : src, in);
  }
}

/* Any other K / V layout into the core-matrix layout, element by element (synchronous), zero
 * outside [0, n) x [0, ncols) up to BK x 8 CK. */
template <class T, int BK, int CK, int NT>
__device__ __forceinline__ void drt_attn_load_core_any(T *__restrict__ dst, const T *__restrict__ src, long long rs,
                                                       long long cs, int n, int ncols, int tid) {
  const T zero = drt_attn_cvt<T>::to(0.0f);
  for (int e = tid; e < BK * CK * 8; e += NT) {
    const int r = e / (CK * 8), col = e - r * (CK * 8);
    dst[((r >> 3) * CK + (col >> 3)) * 64 + (r & 7) * 8 + (col & 7)] =
        r < n && col < ncols ? src[(long long)r * rs + (long long)col * cs] : zero;
  }
}

/* Split keys (KSPLIT > 0, a multiple of BK): block (x, y) takes keys y KSPLIT .. (y + 1) KSPLIT
 * of its query rows and writes its unnormalized accumulator, running max (base 2) and sum to
 * `part` (drt_attn_split_part); drt_attn_split_combine then merges the splits into the output.
 * More blocks when a launch has too few to fill the GPU (short sequences, few heads). */
struct drt_attn_split_part {
  float *o;  /* [splits][rows][DV], rows = B H Sq: row (b H + h) Sq + i */
  float *ml; /* [splits][rows][2]: running max (base 2, -inf: no unmasked key) and sum */
};

template <class T, class MT, int D, int DV, int MODE, bool CAUSAL, int WM = 1, int BK = 64, int KSPLIT = 0>
__device__ __forceinline__ void drt_attention_mma(const drt_attn_geom &g, const T *__restrict__ q,
                                                  const T *__restrict__ k, const T *__restrict__ v,
                                                  const MT *__restrict__ mask, T *__restrict__ out,
                                                  drt_attn_split_part part = drt_attn_split_part{nullptr, nullptr}) {
  /* warpgroup MMAs on sm_90a for head sizes that are multiples of 8 (see DRT_ATTN_WGMMA) */
  constexpr bool WG = DRT_ATTN_WGMMA && D % 8 == 0 && DV % 8 == 0;
  typedef drt_attn_mma_cfg<D, DV, WM, BK, WG> C;
  constexpr int BQ = C::BQ, NT = 128;
  constexpr int DP = C::DP, DVP = C::DVP, LDQ = C::LDQ, LDK = C::LDK, LDV = C::LDV;
  constexpr bool QREG = C::QREG;
  static_assert(sizeof(T) == 2 && DP <= 128 && DVP <= 128, "fp16/bf16, head dims up to 128");
  static_assert((WM == 1 || WM == 2) && BK % 16 == 0 && BK <= 64 && KSPLIT % BK == 0, "tile shape");
  static_assert(D % 16 != 8 || BK % 32 == 0, "the m16n8k8 tail takes key tiles four at a time");
  T *Qs = (T *)drt_smem;
  const int tid = (int)threadIdx.x, warp = tid >> 5, lane = tid & 31, gq = lane >> 2, tq = lane & 3;
  const int lm = lane >> 3, lr = lane & 7; /* ldmatrix: this lane addresses row lr of matrix lm */
  const drt_attn_blk<BQ> pos(g);
  const long long b = pos.b, h = pos.h, kh = pos.kh, i0 = pos.i0;
  const int rows = pos.rows;
  const T *kp = k + b * g.ks[0] + kh * g.ks[1];
  const T *vp = v + b * g.vs[0] + kh * g.vs[1];
  long long kend = CAUSAL && i0 + rows < g.kv_seq ? i0 + rows : g.kv_seq;
  long long kbeg = 0; /* this block's keys: kbeg .. kend */
  if constexpr (KSPLIT > 0) {
    kbeg = (long long)blockIdx.y * KSPLIT;
    if (kbeg + KSPLIT < kend) kend = kbeg + KSPLIT;
  }
  const int ntiles = kend > kbeg ? (int)((kend - kbeg + BK - 1) / BK) : 0;
  /* every key tile full: a constant of the launch (the geometry is folded into the wrapper), so
     the partial-tile instantiation is not even compiled for key counts that are multiples of BK
     (splits start at multiples of BK; causal blocks end anywhere) */
  const bool all_full = !CAUSAL && g.kv_seq % BK == 0;
  /* K / V with contiguous, 16-byte aligned rows (the usual layouts) take the row loader; V's pad
     columns (DV .. DVP: they feed only accumulator columns never stored) are zeroed here once */
  constexpr int DC = D % 8 == 0 ? D / 8 : 0, DVC = DV % 8 == 0 ? DV / 8 : 0;
  const bool krows = DC > 0 && g.ks[3] == 1 && g.ks[2] % 8 == 0 && ((unsigned long long)kp & 15ull) == 0;
  const bool vrows = DVC > 0 && g.vs[3] == 1 && g.vs[2] % 8 == 0 && ((unsigned long long)vp & 15ull) == 0;
  /* mma.sync: K's pad columns (D .. DP) are never read (a head size 16 k + 8 ends Q K^T with
     m16n8k8); V's pad columns feed accumulator columns never stored, zeroed here once */
  if constexpr (!WG && DVP / 8 > DVC && DVC > 0) {
    if (vrows)
      for (int e = tid; e < 2 * BK * (DVP / 8 - DVC); e += NT) {
        const int st = e / (BK * (DVP / 8 - DVC)), rc = e - st * (BK * (DVP / 8 - DVC)), r = rc / (DVP / 8 - DVC);
        T *row = (T *)(drt_smem + C::OFF_V + st * C::V_BYTES) + r * LDV;
        *(uint4 *)(row + 8 * (DVC + rc - r * (DVP / 8 - DVC))) = make_uint4(0u, 0u, 0u, 0u);
      }
  }
  /* wgmma reads K's pad chunks (D .. DP, multiplied by Q's zero columns): zero them once */
  if constexpr (WG && DP / 8 > DC) {
    constexpr int PC = DP / 8 - DC;
    if (krows)
      for (int e = tid; e < 2 * BK * PC; e += NT) {
        const int st = e / (BK * PC), rc = e - st * (BK * PC), r = rc / PC, c = DC + rc - r * PC;
        T *base = (T *)(drt_smem + C::OFF_K + st * C::K_BYTES);
        *(uint4 *)(base + ((r >> 3) * (DP / 8) + c) * 64 + (r & 7) * 8) = make_uint4(0u, 0u, 0u, 0u);
      }
  }
  auto load_kv = [&](int t) {
    const long long j = kbeg + (long long)t * BK;
    const int n = kend - j < BK ? (int)(kend - j) : BK;
    T *ks = (T *)(drt_smem + C::OFF_K + (t & 1) * C::K_BYTES);
    T *vs = (T *)(drt_smem + C::OFF_V + (t & 1) * C::V_BYTES);
    if constexpr (WG) {
      if (krows) drt_attn_load_core16<T, BK, DC, DP / 8, NT>(ks, kp + j * g.ks[2], g.ks[2], n, tid);
      else drt_attn_load_core_any<T, BK, DP / 8, NT>(ks, kp + j * g.ks[2], g.ks[2], g.ks[3], n, D, tid);
      if (vrows) drt_attn_load_core16<T, BK, DVC, DVP / 8, NT>(vs, vp + j * g.vs[2], g.vs[2], n, tid);
      else drt_attn_load_core_any<T, BK, DVP / 8, NT>(vs, vp + j * g.vs[2], g.vs[2], g.vs[3], n, DV, tid);
      drt_attn_cp_commit();
      return;
    }
    if constexpr (DC > 0) {
      if (krows) drt_attn_load_rows16<T, BK, DC, LDK, NT>(ks, kp + j * g.ks[2], g.ks[2], n, tid);
      else drt_attn_load_tile<T, BK, DP, LDK, true>(ks, kp + j * g.ks[2], g.ks[2], g.ks[3], n, D, tid, NT);
    } else {
      drt_attn_load_tile<T, BK, DP, LDK, true>(ks, kp + j * g.ks[2], g.ks[2], g.ks[3], n, D, tid, NT);
    }
    if constexpr (DVC > 0) {
      if (vrows) drt_attn_load_rows16<T, BK, DVC, LDV, NT>(vs, vp + j * g.vs[2], g.vs[2], n, tid);
      else drt_attn_load_tile<T, BK, DVP, LDV, true>(vs, vp + j * g.vs[2], g.vs[2], g.vs[3], n, DV, tid, NT);
    } else {
      drt_attn_load_tile<T, BK, DVP, LDV, true>(vs, vp + j * g.vs[2], g.vs[2], g.vs[3], n, DV, tid, NT);
    }
    drt_attn_cp_commit();
  };
  drt_attn_load_tile<T, BQ, DP, LDQ>(Qs, q + b * g.qs[0] + h * g.qs[1] + i0 * g.qs[2], g.qs[2], g.qs[3], rows, D, tid,
                                     NT);
  if (ntiles > 0) load_kv(0);
  __syncthreads(); /* Q visible */
  /* first row (in the block) of this warp's m16 tile w: warps take WM consecutive tiles, or,
     with warpgroup MMAs, tile w of every warp lies in the m64 slice w */
  auto wrow = [&](int w) { return WG ? 64 * w + 16 * warp : 16 * WM * warp + 16 * w; };
  /* A fragment of Q rows wrow(w) .., columns 16 kk .. (ldmatrix.x4: matrix m = rows
     8 (m % 2) .., columns 8 (m / 2) ..) */
  auto q_frag = [&](int w, int kk, unsigned *a) {
    drt_ldsm_x4<false>(a, Qs + (wrow(w) + lr + 8 * (lm & 1)) * LDQ + 16 * kk + 8 * (lm >> 1));
  };
  unsigned qf[QREG ? WM : 1][QREG ? DP / 16 : 1][4];
  if constexpr (QREG)
#pragma unroll
    for (int w = 0; w < WM; w++)
#pragma unroll
      for (int kk = 0; kk < DP / 16; kk++) q_frag(w, kk, qf[w][kk]);
  float o[WM][DVP / 8][4];
#pragma unroll
  for (int w = 0; w < WM; w++)
#pragma unroll
    for (int n = 0; n < DVP / 8; n++) o[w][n][0] = o[w][n][1] = o[w][n][2] = o[w][n][3] = 0.0f;
  float m_run[WM][2], l_part[WM][2];
  long long qi[WM][2];
  bool qvalid[WM][2];
  const MT *mrow[WM][2];
#pragma unroll
  for (int w = 0; w < WM; w++)
#pragma unroll
    for (int r = 0; r < 2; r++) {
      m_run[w][r] = DRT_ATTN_NEG_INF;
      l_part[w][r] = 0.0f;
      qi[w][r] = i0 + wrow(w) + gq + 8 * r;
      qvalid[w][r] = qi[w][r] < g.q_seq;
      mrow[w][r] = mask;
      if constexpr (MODE >= 0) mrow[w][r] = mask + b * g.ms[0] + h * g.ms[1] + (qvalid[w][r] ? qi[w][r] : 0) * g.ms[2];
    }
  const float sl2 = g.scale * DRT_ATTN_LOG2E;
  /* no mask, not causal, positive scale (a constant of the launch: the branches fold) */
  const bool plain = MODE < 0 && !CAUSAL && sl2 > 0.0f;

  for (int t = 0; t < ntiles; t++) {
    const long long j0 = kbeg + (long long)t * BK;
    const int nk = kend - j0 < BK ? (int)(kend - j0) : BK;
    if (t + 1 < ntiles) {
      load_kv(t + 1); /* its stage was released by the barrier that ended tile t - 1 */
      drt_attn_cp_wait<1>();
    } else {
      drt_attn_cp_wait<0>();
    }
#if DRT_ATTN_WGMMA
    if constexpr (WG) drt_wgmma_proxy_fence(); /* this thread's smem writes, visible to wgmma */
#endif
    __syncthreads();
    const T *Ks = (const T *)(drt_smem + C::OFF_K + (t & 1) * C::K_BYTES);
    const T *Vs = (const T *)(drt_smem + C::OFF_V + (t & 1) * C::V_BYTES);
    /* the tile's work, instantiated for full tiles (no key bounds) and for the last, partial one */
    auto tile = [&](auto full_tag) {
      constexpr bool FULL = decltype(full_tag)::value;

      float s[WM][BK / 8][4];
      if constexpr (!WG) /* wgmma overwrites its first product (scale-d 0) */
#pragma unroll
        for (int w = 0; w < WM; w++)
#pragma unroll
          for (int n = 0; n < BK / 8; n++) s[w][n][0] = s[w][n][1] = s[w][n][2] = s[w][n][3] = 0.0f;
#if DRT_ATTN_WGMMA
      if constexpr (WG) {
        /* S (64 x BK per slice w) = Q K^T: K is B in K-major core matrices, LBO = the next 8
           columns (128 bytes), SBO = the next 8 keys (DP / 8 chunks); 16 columns per wgmma */
        const unsigned long long dk = drt_wgmma_desc(Ks, 128u, (unsigned)(DP / 8) * 128u);
        drt_wgmma_fence();
        /* slice by slice, one commit group each: slice 0's softmax runs while slice 1's product
           is still on the tensor cores (waits in the softmax / P V part below) */
#pragma unroll
        for (int w = 0; w < WM; w++) {
#pragma unroll
          for (int kk = 0; kk < DP / 16; kk++) {
            if constexpr (QREG) { /* the fragments themselves: no register written between wgmmas */
              drt_wgmma_rs<T, BK>::template mma<0>(&s[w][0][0], qf[w][kk], dk + (unsigned long long)(16 * kk),
                                                   kk > 0);
            } else {
              unsigned qa[4];
              q_frag(w, kk, qa);
              drt_wgmma_fence(); /* A registers written since the last fence (PTX: wgmma.fence) */
              drt_wgmma_rs<T, BK>::template mma<0>(&s[w][0][0], qa, dk + (unsigned long long)(16 * kk), kk > 0);
            }
          }
          drt_wgmma_commit();
        }
      } else
#endif
      {
      /* K as B fragments, two key tiles per ldmatrix.x4: matrix m = rows 8 (n + m / 2) .., columns
         16 kk + 8 (m % 2) .. (reg0 / reg1 of tile n, then of tile n + 1); each feeds WM MMAs */
#pragma unroll
      for (int kk = 0; kk < DP / 16; kk++) {
        unsigned qa[WM][4];
#pragma unroll
        for (int w = 0; w < WM; w++) {
          if constexpr (QREG) {
#pragma unroll
            for (int i = 0; i < 4; i++) qa[w][i] = qf[w][kk][i];
          } else {
            q_frag(w, kk, qa[w]);
          }
        }
        if (D % 16 == 8 && kk == DP / 16 - 1) {
          /* the last 8 columns of a head size 16 k + 8: m16n8k8 on the first half of the fragment
             (the second half is padding); one ldmatrix.x4 gives the k = 0..7 half of 4 key tiles */
#pragma unroll
          for (int n = 0; n < BK / 8; n += 4) {
            unsigned bf[4];
            drt_ldsm_x4<false>(bf, Ks + (8 * (n + lm) + lr) * LDK + 16 * kk);
#pragma unroll
            for (int w = 0; w < WM; w++)
#pragma unroll
              for (int m = 0; m < 4; m++) drt_mma1688<T>(s[w][n + m], qa[w], bf[m]);
          }
          continue;
        }
#pragma unroll
        for (int n = 0; n < BK / 8; n += 2) {
          unsigned bf[4];
          drt_ldsm_x4<false>(bf, Ks + (8 * (n + (lm >> 1)) + lr) * LDK + 16 * kk + 8 * (lm & 1));
#pragma unroll
          for (int w = 0; w < WM; w++) {
            drt_mma16816<T>(s[w][n], qa[w], bf);
            drt_mma16816<T>(s[w][n + 1], qa[w], bf + 2);
          }
        }
      }
      }

      /* scale, mask, causal; base 2. Without a mask the row max is taken over the raw scores and
         the scale folds into the exponent (one FFMA per score: 2^(s sl2 - m)); the accumulator is
         rescaled only when some row of the warp has a new max. */
      auto smx = [&](auto w_tag) {
        constexpr int w = decltype(w_tag)::value;
        float mx[2] = {DRT_ATTN_NEG_INF, DRT_ATTN_NEG_INF};
        if (plain) {
          if constexpr (!FULL) {
#pragma unroll
            for (int n = 0; n < BK / 8; n++)
#pragma unroll
              for (int e = 0; e < 4; e++)
                if (8 * n + 2 * tq + (e & 1) >= nk) s[w][n][e] = DRT_ATTN_NEG_INF;
          }
#pragma unroll
          for (int n = 0; n < BK / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) mx[e >> 1] = fmaxf(mx[e >> 1], s[w][n][e]);
        } else {
#pragma unroll
          for (int n = 0; n < BK / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
              const int r = e >> 1, c = 8 * n + 2 * tq + (e & 1);
              float x = DRT_ATTN_NEG_INF;
              if (c < nk) {
                const long long j = j0 + c;
                x = s[w][n][e] * g.scale;
                if constexpr (MODE == 0) {
                  if (qvalid[w][r]) x += drt_attn_cvt<MT>::from(mrow[w][r][j * g.ms[3]]);
                } else if constexpr (MODE == 1 || MODE == 2) {
                  if (qvalid[w][r] && ((mrow[w][r][j * g.ms[3]] != 0) != (MODE == 1))) x = g.fill;
                }
                if (CAUSAL && j > qi[w][r]) x = DRT_ATTN_NEG_INF;
                if (x != DRT_ATTN_NEG_INF) x = fmaxf(x * DRT_ATTN_LOG2E, -3.402823466e38f);
              }
              s[w][n][e] = x;
              mx[r] = fmaxf(mx[r], x);
            }
        }
        float m_use[2], corr[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
          mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
          mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
          if (plain) mx[r] *= sl2; /* -inf stays -inf (sl2 > 0) */
          const float m_new = fmaxf(m_run[w][r], mx[r]);
          corr[r] = m_new == DRT_ATTN_NEG_INF ? 1.0f : drt_attn_ex2(m_run[w][r] - m_new);
          m_run[w][r] = m_new;
          l_part[w][r] *= corr[r];
          m_use[r] = m_new == DRT_ATTN_NEG_INF ? 0.0f : m_new; /* every key so far masked: P = 0 */
        }
        if (__any_sync(0xffffffffu, corr[0] != 1.0f || corr[1] != 1.0f)) {
#pragma unroll
          for (int n = 0; n < DVP / 8; n++) {
            o[w][n][0] *= corr[0];
            o[w][n][1] *= corr[0];
            o[w][n][2] *= corr[1];
            o[w][n][3] *= corr[1];
          }
        }
#pragma unroll
        for (int n = 0; n < BK / 8; n++)
#pragma unroll
          for (int e = 0; e < 4; e++) {
            const float p = plain ? drt_attn_ex2(fmaf(s[w][n][e], sl2, -m_use[e >> 1]))
                                  : drt_attn_ex2(s[w][n][e] - m_use[e >> 1]);
            l_part[w][e >> 1] += p;
            s[w][n][e] = p;
          }
      };

#if DRT_ATTN_WGMMA
      if constexpr (WG) {
        /* O (64 x DV per slice w) += P V: V is B in MN-major core matrices, LBO = the next 8
           keys (DVP / 8 chunks), SBO = the next 8 value columns (128 bytes). Per slice: wait for
           its scores (commit groups complete in order: QK0 [QK1] PV0 [PV1]), softmax, issue its
           P V; slice 1's softmax overlaps slice 0's P V. */
        const unsigned long long dv = drt_wgmma_desc(Vs, (unsigned)(DVP / 8) * 128u, 128u);
        auto slice = [&](auto w_tag) {
          constexpr int w = decltype(w_tag)::value;
          drt_wgmma_wait<w == 0 ? WM - 1 : 1>();
          drt_wgmma_fence_operands<BK / 2>(&s[w][0][0]);
          smx(w_tag);
          /* every P fragment packed before the fence: no register writes between the wgmmas
             (ptxas would otherwise wait for the earlier ones before each) */
          unsigned pa[BK / 16][4];
#pragma unroll
          for (int kk = 0; kk < BK / 16; kk++) {
            pa[kk][0] = drt_attn_pack<T>(s[w][2 * kk][0], s[w][2 * kk][1]);
            pa[kk][1] = drt_attn_pack<T>(s[w][2 * kk][2], s[w][2 * kk][3]);
            pa[kk][2] = drt_attn_pack<T>(s[w][2 * kk + 1][0], s[w][2 * kk + 1][1]);
            pa[kk][3] = drt_attn_pack<T>(s[w][2 * kk + 1][2], s[w][2 * kk + 1][3]);
          }
          drt_wgmma_fence_operands<DV / 2>(&o[w][0][0]);
          drt_wgmma_fence();
          /* every 16-key step, also past nk in a partial tile (P is 0 there and V zero-filled): a
             branch between the wgmmas would make ptxas serialize them */
#pragma unroll
          for (int kk = 0; kk < BK / 16; kk++) {
            drt_wgmma_rs<T, DV>::template mma<1>(&o[w][0][0], pa[kk],
                                                 dv + (unsigned long long)((2 * (DVP / 8) * 128 * kk) >> 4), 1);
          }
          drt_wgmma_commit();
        };
        slice(drt_attn_int<0>());
        if constexpr (WM == 2) slice(drt_attn_int<1>());
        drt_wgmma_wait<0>();
#pragma unroll
        for (int w = 0; w < WM; w++) drt_wgmma_fence_operands<DV / 2>(&o[w][0][0]);
      } else
#endif
      {
      smx(drt_attn_int<0>());
      if constexpr (WM == 2) smx(drt_attn_int<1>());
      /* O += P V: P from the score registers, V as B fragments (k = key, n = value dim) */
#pragma unroll
      for (int kk = 0; kk < BK / 16; kk++) {
        if (!FULL && 16 * kk >= nk) break; /* P is 0 and V zeroed past nk */
        unsigned pa[WM][4];
#pragma unroll
        for (int w = 0; w < WM; w++) {
          pa[w][0] = drt_attn_pack<T>(s[w][2 * kk][0], s[w][2 * kk][1]);
          pa[w][1] = drt_attn_pack<T>(s[w][2 * kk][2], s[w][2 * kk][3]);
          pa[w][2] = drt_attn_pack<T>(s[w][2 * kk + 1][0], s[w][2 * kk + 1][1]);
          pa[w][3] = drt_attn_pack<T>(s[w][2 * kk + 1][2], s[w][2 * kk + 1][3]);
        }
        /* V as B fragments with ldmatrix.x4.trans: matrix m = keys 16 kk + 8 (m % 2) .., value
           columns 8 (n + m / 2) .. */
#pragma unroll
        for (int n = 0; n < DVP / 8; n += 2) {
          unsigned bf[4];
          drt_ldsm_x4<true>(bf, Vs + (16 * kk + 8 * (lm & 1) + lr) * LDV + 8 * (n + (lm >> 1)));
#pragma unroll
          for (int w = 0; w < WM; w++) {
            drt_mma16816<T>(o[w][n], pa[w], bf);
            drt_mma16816<T>(o[w][n + 1], pa[w], bf + 2);
          }
        }
      }
      }
    };
    if (all_full || nk == BK) tile(drt_attn_bool<true>());
    else tile(drt_attn_bool<false>());
    __syncthreads(); /* every warp is done with this stage before it is refilled */
  }

  if constexpr (KSPLIT > 0) { /* this split's partial result, merged by drt_attn_split_combine */
    const long long nrows = (long long)gridDim.x / ((g.q_seq + BQ - 1) / BQ) * g.q_seq;
    const long long base = (long long)blockIdx.y * nrows + (b * g.heads + h) * g.q_seq;
#pragma unroll
    for (int w = 0; w < WM; w++)
#pragma unroll
      for (int r = 0; r < 2; r++) {
        const float l = drt_attn_quad_sum(l_part[w][r]);
        if (!qvalid[w][r]) continue;
        const long long row = base + qi[w][r];
        if (tq == 0) {
          part.ml[2 * row] = m_run[w][r];
          part.ml[2 * row + 1] = l;
        }
        float *orow = part.o + row * DV;
#pragma unroll
        for (int n = 0; n < DVP / 8; n++) {
          const int c = 8 * n + 2 * tq;
          if (c < DV) orow[c] = o[w][n][2 * r];
          if (c + 1 < DV) orow[c + 1] = o[w][n][2 * r + 1];
        }
      }
    return;
  }
  /* Y = O / l (rows with no unmasked key: 0) */
  const long long os2 = g.os[2], os3 = g.os[3];
  T *op = out + b * g.os[0] + h * g.os[1];
#pragma unroll
  for (int w = 0; w < WM; w++)
#pragma unroll
    for (int r = 0; r < 2; r++) {
      const float l = drt_attn_quad_sum(l_part[w][r]);
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
      if (!qvalid[w][r]) continue;
      T *orow = op + qi[w][r] * os2;
#pragma unroll
      for (int n = 0; n < DVP / 8; n++) {
        const int c = 8 * n + 2 * tq;
        if (c >= DV) break;
        const float y0 = o[w][n][2 * r] * inv, y1 = o[w][n][2 * r + 1] * inv;
        if (os3 == 1 && c + 1 < DV && (((unsigned long long)(orow + c)) & 3ull) == 0) {
          *(typename drt_attn_cvt<T>::T2 *)(orow + c) = drt_attn_cvt<T>::to2(y0, y1);
        } else {
          orow[c * os3] = drt_attn_cvt<T>::to(y0);
          if (c + 1 < DV) orow[(c + 1) * os3] = drt_attn_cvt<T>::to(y1);
        }
      }
    }
}

/* Merges the SPLITS partial results of drt_attention_mma<..., KSPLIT> into the output: per row,
 * M = max_s m_s, w_s = 2^(m_s - M), Y = sum_s w_s o_s / sum_s w_s l_s (0 when no split saw an
 * unmasked key). One thread per output element, grid-stride; rows = B H Sq. */
template <class T, int DV, int SPLITS>
__device__ __forceinline__ void drt_attn_split_combine(const drt_attn_geom &g, drt_attn_split_part part,
                                                       long long rows, T *__restrict__ out) {
  const long long total = rows * DV;
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
       e += (long long)gridDim.x * blockDim.x) {
    const long long row = e / DV;
    const int c = (int)(e - row * DV);
    float m = DRT_ATTN_NEG_INF;
#pragma unroll
    for (int s = 0; s < SPLITS; s++) m = fmaxf(m, part.ml[2 * (s * rows + row)]);
    float l = 0.0f, y = 0.0f;
    if (m != DRT_ATTN_NEG_INF)
#pragma unroll
      for (int s = 0; s < SPLITS; s++) {
        const float ms = part.ml[2 * (s * rows + row)];
        const float w = ms == DRT_ATTN_NEG_INF ? 0.0f : exp2f(ms - m);
        l += w * part.ml[2 * (s * rows + row) + 1];
        y += w * part.o[(s * rows + row) * DV + c];
      }
    const long long bh = row / g.q_seq, i = row - bh * g.q_seq, b = bh / g.heads, h = bh - b * g.heads;
    out[b * g.os[0] + h * g.os[1] + i * g.os[2] + c * g.os[3]] = drt_attn_cvt<T>::to(l > 0.0f ? y / l : 0.0f);
  }
}

/* ---- unfused attention (head sizes the fused kernel does not take) ----------------------------
 * codegen/emit_attention.c lowers such a node to S = scale Q K^T (cuBLASLt, fp32 scores in
 * scratch), drt_attn_softmax_rows over the rows of S, and O = P V (cuBLASLt), chunked over
 * (batch, head) pairs and query rows. One block per row of S: row r of the chunk is query
 * q0 + r % qn of pair bh0 + r / qn; scores are read at S + r * kv_seq (fp32) and the
 * probabilities P are written in the storage type T over the same bytes (row r at
 * (T *)S + r * kv_seq * (4 / sizeof(T))). Masking follows the CPU kernel (mask after the scale,
 * then causal); a row whose keys are all -inf becomes 0. */
struct drt_attn_smx_geom {
  long long heads;  /* H */
  long long q_seq;  /* Sq (causal: key j > query i is masked) */
  long long kv_seq; /* row length */
  long long qn;     /* query rows per (batch, head) pair in the chunk */
  long long ms[4];  /* mask strides over (b, h, i, j), 0 on broadcast dims */
  float fill;
};

template <class T, class MT, int MODE, bool CAUSAL, int BLOCK>
__device__ __forceinline__ void drt_attn_softmax_rows(const drt_attn_smx_geom &g, float *S, const MT *__restrict__ mask,
                                                      long long bh0, long long q0) {
  static_assert(BLOCK % 32 == 0 && BLOCK <= 1024, "block size");
  const long long r = (long long)blockIdx.x;
  const long long bhl = r / g.qn, i = q0 + (r - bhl * g.qn);
  const long long bh = bh0 + bhl, b = bh / g.heads, h = bh - b * g.heads;
  const long long n = g.kv_seq;
  const int tid = (int)threadIdx.x;
  float *srow = S + r * n;
  const MT *mrow = mask;
  if constexpr (MODE >= 0) mrow = mask + b * g.ms[0] + h * g.ms[1] + i * g.ms[2];
  (void)mrow;
  (void)i;
  /* pass 1: masked scores (written back, each thread its own elements) and the row max */
  float mx = DRT_ATTN_NEG_INF;
  for (long long j = tid; j < n; j += BLOCK) {
    float s = srow[j];
    if constexpr (MODE == 0) {
      s += drt_attn_cvt<MT>::from(mrow[j * g.ms[3]]);
    } else if constexpr (MODE == 1 || MODE == 2) {
      if ((mrow[j * g.ms[3]] != 0) != (MODE == 1)) s = g.fill;
    }
    if (CAUSAL && j > i) s = DRT_ATTN_NEG_INF;
    if constexpr (MODE >= 0 || CAUSAL) srow[j] = s;
    mx = fmaxf(mx, s);
  }
  mx = drt_block_max<BLOCK>(mx);
  const bool dead = mx == DRT_ATTN_NEG_INF; /* every key masked: P = 0 */
  /* pass 2: exponentials (in place) and their sum */
  float sum = 0.0f;
  if (!dead)
    for (long long j = tid; j < n; j += BLOCK) {
      const float e = expf(srow[j] - mx);
      srow[j] = e;
      sum += e;
    }
  sum = drt_block_sum<BLOCK>(sum);
  const float inv = dead ? 0.0f : 1.0f / sum;
  /* pass 3: P = e / sum in T over the same bytes. P[j] overlaps fp32 element j * sizeof(T) / 4 <= j:
   * every thread reads its element of a chunk before any thread writes the chunk. */
  T *prow = (T *)S + r * n * (long long)(4 / sizeof(T));
  if constexpr (sizeof(T) == 4) {
    for (long long j = tid; j < n; j += BLOCK) prow[j] = drt_attn_cvt<T>::to(dead ? 0.0f : srow[j] * inv);
  } else {
    for (long long c = 0; c < n; c += BLOCK) {
      const long long j = c + tid;
      const float p = j < n && !dead ? srow[j] * inv : 0.0f;
      __syncthreads();
      if (j < n) prow[j] = drt_attn_cvt<T>::to(p);
    }
  }
}
