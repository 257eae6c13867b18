/* codegen/kernels/conv.cuh: implicit-GEMM convolution on tensor cores (codegen/emit_linalg.c).
 *
 * For one image n and group gi the convolution is the GEMM
 *     Y[m, p] = sum_r W[m, r] col[r, p]      m < Mg, r < Kc = Cg KD KH KW, p < P = OD OH OW
 * where col[r, p] is the input element tap r = ((c KD + kd) KH + kh) KW + kw reads for output
 * position p (0 in the padding). drt_conv_igemm computes it without writing col: each block
 * gathers its [BK x BN] slice of col straight from X into shared memory and multiplies it with
 * the [BM x BK] slice of W on mma.sync.m16n8k16 (fp16/bf16 operands, fp32 accumulation; the
 * fragment primitives drt_ldsm_x4 / drt_mma16816 / drt_attn_cp16 come from attention.cuh).
 * It is the alternative to im2col + cuBLASLt: the code generator emits both and the executor
 * times them on the device once and keeps the faster (runtime/cuda/executor.c, variants).
 *
 *   grid (ceil(P / BN), ceil(Mg / BM), N G), WARPS_M x WARPS_N warps, each owning a
 *   (BM / WARPS_M) x (BN / WARPS_N) tile of Y; BK = 32 (two k16 steps) per stage, two stages:
 *   W's slice goes by cp.async (AVEC: Kc % 8 == 0, rows of 16-byte chunks) or plain loads, the
 *   col slice through registers: the next stage's gather is issued before the current stage's
 *   MMAs and stored to shared memory after them.
 *   col gather: thread t owns 8 consecutive output positions (column group t % (BN / 8)) and
 *   the rows t / (BN / 8) + i (NT / (BN / 8)); with ROW8 (OW % 8 == 0) the 8 positions lie in
 *   one output row, so their (od, oh, ow) are computed once per kernel and a tap costs one
 *   bounds test per element. The column group is one 16-byte shared-memory store.
 *   shared memory (dynamic, drt_igemm_cfg::SMEM): A 2 x [BM][BK + 8], B 2 x [BK][BN + 8]
 *   (the 8-element pads make the ldmatrix rows bank-conflict free).
 *   Y (TY: the operand type, or float32 storage / scratch) = acc + bias[m] (bias may be NULL),
 *   two adjacent positions per store when P is even.
 * X may be stored in float32 (TX, codegen/codegen.c's float32 activations): it is rounded to
 * the operand type in the gather, as im2col does. Offsets inside one (image, group) slice of X,
 * inside W and inside one image of Y are int (the code generator checks they fit). */

template <int BM, int BN, int WARPS_M, int WARPS_N> struct drt_igemm_cfg {
  static constexpr int BK = 32, NT = 32 * WARPS_M * WARPS_N;
  static constexpr int LDA = BK + 8, LDB = BN + 8;
  static constexpr int WTM = BM / WARPS_M, WTN = BN / WARPS_N; /* a warp's tile of Y */
  static constexpr int MT = WTM / 16, NT8 = WTN / 8;           /* its m16 and n8 tiles */
  static constexpr int CG = BN / 8, RP = NT / CG, PASSES = BK / RP; /* col gather geometry */
  static constexpr unsigned A_BYTES = BM * LDA * 2u, B_BYTES = BK * LDB * 2u;
  static constexpr unsigned SMEM = 2u * (A_BYTES + B_BYTES);
  static_assert(WTM % 16 == 0 && WTN % 16 == 0 && NT % CG == 0 && BK % RP == 0 && (BM * BK / 8) % NT == 0,
                "implicit-GEMM tile geometry");
};

/* One element of X as the operand type's 16 bits (drt_col_elem of linalg.cuh: rounded from a
 * float32-storage X, copied otherwise). */
template <class T, class TX> __device__ __forceinline__ unsigned short drt_igemm_elem(const TX *p) {
  T v = drt_col_elem<T, TX>::get(p);
  unsigned short u;
  memcpy(&u, &v, 2);
  return u;
}

template <class T, class TX, class TY, int BM, int BN, int WARPS_M, int WARPS_N, bool AVEC, bool ROW8>
__device__ __forceinline__ void drt_conv_igemm(TY *__restrict__ y, const TX *__restrict__ x, const T *__restrict__ w,
                                               const T *__restrict__ bias, const drt_conv_geom &g) {
  typedef drt_igemm_cfg<BM, BN, WARPS_M, WARPS_N> C;
  constexpr int BK = C::BK, NT = C::NT, LDA = C::LDA, LDB = C::LDB;
  const int Cg = (int)(g.C / g.G), Mg = (int)(g.M / g.G);
  const int KHW = (int)(g.KH * g.KW), KPROD = (int)(g.KD * g.KH * g.KW), Kc = Cg * KPROD;
  const int P = (int)(g.OD * g.OH * g.OW), HWD = (int)(g.D * g.H * g.W);
  const int tid = (int)threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / WARPS_N, wn = warp % WARPS_N;
  const int p0 = (int)blockIdx.x * BN, m0 = (int)blockIdx.y * BM;
  const long long img = (long long)blockIdx.z / g.G, gi = (long long)blockIdx.z % g.G;
  T *As = (T *)drt_smem;
  T *Bs = (T *)(drt_smem + 2u * C::A_BYTES);
  const T *wgp = w + gi * Mg * (long long)Kc;
  const TX *xg = x + (img * g.C + gi * Cg) * (long long)HWD;

  /* this thread's 8 output positions of the col gather */
  const int cgp = tid % C::CG, krow = tid / C::CG;
  const int pc = p0 + 8 * cgp;
  int id0 = 0, ih0 = 0, iw0 = 0;
  if (ROW8) {
    const int ow = pc % (int)g.OW, t = pc / (int)g.OW;
    const int oh = t % (int)g.OH, od = t / (int)g.OH;
    id0 = od * (int)g.SD - (int)g.PD;
    ih0 = oh * (int)g.SH - (int)g.PH;
    iw0 = ow * (int)g.SW - (int)g.PW;
  }
  unsigned short gv[C::PASSES][8];
  auto gather = [&](int k0) {
#pragma unroll
    for (int ps = 0; ps < C::PASSES; ps++) {
      const int r = k0 + krow + ps * C::RP;
      const int c = r / KPROD, rem = r % KPROD;
      const int kd = rem / KHW, kh = (rem / (int)g.KW) % (int)g.KH, kw = rem % (int)g.KW;
      if (ROW8) {
        const int id = id0 + kd * (int)g.DD, ih = ih0 + kh * (int)g.DH, iwb = iw0 + kw * (int)g.DW;
        const bool ok = r < Kc && pc < P && id >= 0 && id < (int)g.D && ih >= 0 && ih < (int)g.H;
        const TX *row = xg + (ok ? c * HWD + (id * (int)g.H + ih) * (int)g.W : 0);
#pragma unroll
        for (int e = 0; e < 8; e++) {
          const int iw = iwb + e * (int)g.SW;
          gv[ps][e] = ok && iw >= 0 && iw < (int)g.W ? drt_igemm_elem<T, TX>(row + iw) : (unsigned short)0;
        }
      } else {
#pragma unroll
        for (int e = 0; e < 8; e++) {
          const int p = pc + e;
          const int ow = p % (int)g.OW, t = p / (int)g.OW;
          const int oh = t % (int)g.OH, od = t / (int)g.OH;
          const int id = od * (int)g.SD - (int)g.PD + kd * (int)g.DD;
          const int ih = oh * (int)g.SH - (int)g.PH + kh * (int)g.DH;
          const int iw = ow * (int)g.SW - (int)g.PW + kw * (int)g.DW;
          const bool ok = r < Kc && p < P && id >= 0 && id < (int)g.D && ih >= 0 && ih < (int)g.H && iw >= 0 &&
                          iw < (int)g.W;
          gv[ps][e] = ok ? drt_igemm_elem<T, TX>(xg + c * HWD + (id * (int)g.H + ih) * (int)g.W + iw)
                         : (unsigned short)0;
        }
      }
    }
  };
  auto store_gather = [&](int st) {
    T *b = Bs + st * (BK * LDB);
#pragma unroll
    for (int ps = 0; ps < C::PASSES; ps++) {
      uint4 v;
      v.x = (unsigned)gv[ps][0] | ((unsigned)gv[ps][1] << 16);
      v.y = (unsigned)gv[ps][2] | ((unsigned)gv[ps][3] << 16);
      v.z = (unsigned)gv[ps][4] | ((unsigned)gv[ps][5] << 16);
      v.w = (unsigned)gv[ps][6] | ((unsigned)gv[ps][7] << 16);
      *(uint4 *)(b + (krow + ps * C::RP) * LDB + 8 * cgp) = v;
    }
  };
  /* W's [BM][BK] slice at k0 into stage st: cp.async chunks (AVEC) or plain loads */
  auto load_w = [&](int st, int k0) {
    T *a = As + st * (BM * LDA);
    if (AVEC) {
#pragma unroll
      for (int i = 0; i < BM * BK / 8 / NT; i++) {
        const int ch = tid + i * NT, row = ch >> 2, col = (ch & 3) * 8;
        const bool ok = m0 + row < Mg && k0 + col < Kc;
        drt_attn_cp16(a + row * LDA + col, ok ? wgp + (m0 + row) * Kc + k0 + col : wgp, ok);
      }
      drt_attn_cp_commit();
    } else { /* rows of Kc % 8 != 0 elements (a network's first convolution: 3 or 4 channels) */
      for (int i = tid; i < BM * BK; i += NT) {
        const int row = i / BK, col = i % BK;
        const bool ok = m0 + row < Mg && k0 + col < Kc;
        a[row * LDA + col] = ok ? wgp[(m0 + row) * Kc + k0 + col] : drt_from_f32<T>(0.0f);
      }
    }
  };

  float acc[C::MT][C::NT8][4];
#pragma unroll
  for (int i = 0; i < C::MT; i++)
#pragma unroll
    for (int j = 0; j < C::NT8; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

  const int KT = (Kc + BK - 1) / BK;
  load_w(0, 0);
  gather(0);
  store_gather(0);
  for (int kt = 0; kt < KT; kt++) {
    const int st = kt & 1;
    drt_attn_cp_wait<0>();
    __syncthreads();
    const bool more = kt + 1 < KT;
    if (more) {
      load_w(st ^ 1, (kt + 1) * BK);
      gather((kt + 1) * BK);
    }
    const T *a = As + st * (BM * LDA), *b = Bs + st * (BK * LDB);
#pragma unroll
    for (int ks = 0; ks < BK / 16; ks++) {
      unsigned af[C::MT][4];
#pragma unroll
      for (int i = 0; i < C::MT; i++)
        drt_ldsm_x4<false>(af[i], a + (wm * C::WTM + i * 16 + (lane & 15)) * LDA + ks * 16 + (lane >> 4) * 8);
#pragma unroll
      for (int j = 0; j < C::NT8 / 2; j++) {
        unsigned bf[4];
        drt_ldsm_x4<true>(bf, b + (ks * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDB + wn * C::WTN +
                                  (2 * j + (lane >> 4)) * 8);
#pragma unroll
        for (int i = 0; i < C::MT; i++) {
          drt_mma16816<T>(acc[i][2 * j], af[i], bf);
          drt_mma16816<T>(acc[i][2 * j + 1], af[i], bf + 2);
        }
      }
    }
    if (more) store_gather(st ^ 1);
  }

  /* Y = acc + bias: c0, c1 at (row g, columns 2t, 2t + 1), c2, c3 at row g + 8 */
  const int gq = lane >> 2, tq = lane & 3;
  TY *yb = y + (img * g.M + gi * Mg) * (long long)P;
#pragma unroll
  for (int i = 0; i < C::MT; i++) {
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const int m = m0 + wm * C::WTM + i * 16 + gq + 8 * h;
      if (m >= Mg) continue;
      const float bv = bias ? drt_ld<T>(bias + gi * Mg + m) : 0.0f;
      TY *yr = yb + m * P;
#pragma unroll
      for (int j = 0; j < C::NT8; j++) {
        const int p = p0 + wn * C::WTN + j * 8 + 2 * tq; /* even */
        const float v0 = acc[i][j][2 * h] + bv, v1 = acc[i][j][2 * h + 1] + bv;
        if (P % 2 == 0) { /* both or neither in range, and the pair aligned: one store */
          if (p < P) *(typename drt_attn_cvt<TY>::T2 *)(yr + p) = drt_attn_cvt<TY>::to2(v0, v1);
        } else {
          if (p < P) drt_st<TY>(yr + p, v0);
          if (p + 1 < P) drt_st<TY>(yr + p + 1, v1);
        }
      }
    }
  }
}
